-- The non-interactive pieces of the prompt (lua/nn/repl.lua), tested
-- directly: the pretty printer, completion candidates, the help lookup,
-- %time and ?x rewriting, and that every public name of nn is documented.
local nn = require "nn"
local repl = nn.repl

local function contains(list, value)
  for _, v in ipairs(list) do if v == value then return true end end
  return false
end

describe("nn.repl loads on first use", function()
  it("is reached through nn.repl and nn.help", function()
    assert.is_table(repl)
    assert.is_function(nn.help)
    assert.is_function(repl.show)
  end)
end)

describe("nn.repl.show", function()
  it("shows numbers, strings, booleans and several values as print would", function()
    assert.are.equal("2", repl.show(1 + 1))
    assert.are.equal("0.5", repl.show(0.5))
    assert.are.equal("3.0", repl.show(3.0))
    assert.are.equal("hello", repl.show("hello"))
    assert.are.equal("nil", repl.show(nil))
    assert.are.equal("1\ttwo\ttrue", repl.show(1, "two", true))
    assert.are.equal("", repl.show())
  end)

  it("shows a tensor as tostring does, then its dtype and shape", function()
    local t = nn.ones(4, 1)
    assert.are.equal(tostring(t) .. "\n[float32 of size 4x1]", repl.show(t))
    assert.are.equal(tostring(nn.tensor(3.5, {dtype = "float64"})) .. "\n[float64 scalar]",
                     repl.show(nn.tensor(3.5, {dtype = "float64"})))
    assert.truthy(repl.show(nn.zeros(2, 3, 5, {dtype = "int64"})):find("[int64 of size 2x3x5]", 1, true))
  end)

  it("elides large tensors with ... and still names the shape", function()
    local text = repl.show(nn.zeros(2000))
    assert.truthy(text:find("...", 1, true))
    assert.truthy(text:find("[float32 of size 2000]", 1, true))
  end)

  it("shows a module as a tree with parameter counts", function()
    local model = nn.Sequential(nn.Linear(2, 10), nn.Sigmoid(), nn.Linear(10, 1))
    local text = repl.show(model)
    local lines = {}
    for line in text:gmatch("[^\n]+") do lines[#lines + 1] = line end
    assert.are.equal("Sequential(  -- 41 parameters", lines[1])
    assert.are.equal("  (1): Linear(in_features=2, out_features=10, bias=True)  -- 30 parameters", lines[2])
    assert.are.equal("  (2): Sigmoid()", lines[3])
    assert.are.equal("  (3): Linear(in_features=10, out_features=1, bias=True)  -- 11 parameters", lines[4])
    assert.are.equal(")", lines[5])
    assert.are.equal("[41 parameters]", lines[6])
  end)

  it("nests modules with indentation", function()
    local inner = nn.Sequential(nn.Linear(3, 1))
    local text = repl.show(nn.Sequential(inner, nn.ReLU()))
    assert.truthy(text:find("\n  (1): Sequential(  -- 4 parameters\n    (1): Linear(", 1, true))
  end)

  it("shows tables with sorted keys, the list part first, short ones on one line", function()
    assert.are.equal('{"z", "y", a = 1, b = {2, 3}, c = "text"}',
                     repl.show({"z", "y", c = "text", b = {2, 3}, a = 1}))
    assert.are.equal("{}", repl.show({}))
    assert.are.equal('{[1.5] = true, ["two words"] = 2}', repl.show({[1.5] = true, ["two words"] = 2}))
  end)

  it("indents a long table, one entry a line", function()
    local t = {}
    for i = 1, 12 do t["key_number_" .. i] = i * 1000 end
    local text = repl.show(t)
    assert.truthy(text:find("^{\n  key_number_1 = 1000,\n  key_number_10 = 10000,\n"))
    assert.truthy(text:find("\n}$"))
  end)

  it("marks cycles instead of following them", function()
    local t = {name = "loop"}
    t.self = t
    local text = repl.show(t)
    assert.truthy(text:find("self = <cycle: " .. tostring(t) .. ">", 1, true))
  end)

  it("cuts deep nesting and long tables", function()
    local deep = {{{{{{1}}}}}}
    assert.truthy(repl.show(deep):find("{...}", 1, true))
    local long = {}
    for i = 1, 100 do long[i] = i end
    assert.truthy(repl.show(long):find("... (60 more)", 1, true))
  end)

  it("uses __tostring where a table has one", function()
    local obj = setmetatable({}, {__tostring = function() return "<my object>" end})
    assert.are.equal("<my object>", repl.show(obj))
  end)
end)

describe("nn.repl.complete", function()
  local saved
  before_each(function()
    saved = {t = rawget(_G, "t"), m = rawget(_G, "m"), my_global_value = rawget(_G, "my_global_value"),
             nn = rawget(_G, "nn")}
    _G.nn = nn -- a global at the prompt
  end)
  after_each(function()
    for k, v in pairs(saved) do rawset(_G, k, v) end
  end)

  it("offers a tensor's methods after ':'", function()
    _G.t = nn.ones(2)
    local list = repl.complete("t:su", "su")
    assert.is_true(contains(list, "sub"))
    assert.is_true(contains(list, "sum"))
    for _, name in ipairs(list) do assert.are.equal("su", name:sub(1, 2)) end
    assert.is_true(contains(repl.complete("x = t:sig", "sig"), "sigmoid"))
  end)

  it("offers a module's methods through its class chain", function()
    _G.m = nn.Sequential(nn.Linear(2, 2))
    local list = repl.complete("m:", "")
    assert.is_true(contains(list, "add"))           -- Sequential's own
    assert.is_true(contains(list, "parameters"))    -- from nn.Module
    assert.is_true(contains(list, "zero_grad"))
    assert.is_false(contains(list, "_apply"))       -- private names stay hidden
    assert.are.same({"named_parameters"}, repl.complete("m:named_p", "named_p"))
  end)

  it("offers table fields after '.'", function()
    assert.are.same({"Linear"}, repl.complete("nn.Lin", "Lin"))
    assert.is_true(contains(repl.complete("nn.optim.", ""), "Adam"))
    assert.is_true(contains(repl.complete("nn.optim.lr_scheduler.St", "St"), "StepLR"))
    assert.is_true(contains(repl.complete("string.fo", "fo"), "format"))
  end)

  it("offers globals and keywords for a bare word", function()
    _G.my_global_value = 1
    assert.is_true(contains(repl.complete("my_glo", "my_glo"), "my_global_value"))
    assert.is_true(contains(repl.complete("x = fun", "fun"), "function"))
    assert.is_true(contains(repl.complete("pri", "pri"), "print"))
    assert.is_true(contains(repl.complete("n", "n"), "nn"))
  end)

  it("offers nothing for an unknown table", function()
    assert.are.same({}, repl.complete("no_such_table.fi", "fi"))
    assert.are.same({}, repl.complete("no_such_table:fi", "fi"))
  end)
end)

describe("help", function()
  local function capture(fn)
    local lines = {}
    local real_print = print
    _G.print = function(...)
      local parts = {}
      for i = 1, select("#", ...) do parts[i] = tostring((select(i, ...))) end
      lines[#lines + 1] = table.concat(parts, "\t")
    end
    local ok, err = pcall(fn)
    _G.print = real_print
    assert(ok, err)
    return table.concat(lines, "\n")
  end

  it("finds documentation by value and by name", function()
    local text = assert(repl.doc(nn.zeros))
    assert.are.equal("nn.zeros", text:match("^[^\n]+"))
    assert.truthy(text:find("dtype", 1, true))
    assert.are.equal(text, repl.doc("nn.zeros"))
    assert.are.equal(text, repl.doc("zeros"))
  end)

  it("documents classes, their methods, tensor methods and namespaces", function()
    assert.truthy(assert(repl.doc(nn.Linear)):find("in_features", 1, true))
    assert.truthy(assert(repl.doc(nn.Module.parameters)):find("parameters", 1, true))
    assert.truthy(assert(repl.doc("Module:parameters")):find("learnable", 1, true))
    assert.are.equal("Tensor:sum", assert(repl.doc("Tensor:sum")):match("^[^\n]+"))
    assert.are.equal("Tensor:sum", assert(repl.doc("t:sum")):match("^[^\n]+"))
    assert.are.equal("nn.optim", assert(repl.doc(nn.optim)):match("^[^\n]+"))
    assert.truthy(repl.doc(nn.F.relu))
    assert.truthy(repl.doc(nn.optim.lr_scheduler.StepLR))
  end)

  it("documents an instance through its class", function()
    assert.are.equal("nn.Tensor", assert(repl.doc(nn.ones(2))):match("^[^\n]+"))
    assert.are.equal("nn.Linear", assert(repl.doc(nn.Linear(2, 3))):match("^[^\n]+"))
  end)

  it("says so for what is not part of nn", function()
    local text, message = repl.doc(function() end)
    assert.is_nil(text)
    assert.truthy(message:find("no documentation", 1, true))
    assert.is_nil((repl.doc("nn.no_such_thing")))
  end)

  it("prints through nn.help, with an overview when called bare", function()
    assert.truthy(capture(function() nn.help(nn.zeros) end):find("^nn.zeros\n"))
    assert.truthy(capture(function() nn.help() end):find("help(x)", 1, true))
    assert.truthy(capture(function() nn.help("nn.nothing_here") end):find("no documentation", 1, true))
    assert.truthy(capture(function() repl.help_line(" nn.Linear ") end):find("^nn.Linear\n"))
  end)

  it("has documentation for every public name of nn", function()
    local missing = repl.undocumented()
    assert.are.equal(0, #missing, "public names without documentation:\n  " .. table.concat(missing, "\n  "))
  end)

  it("walks all the namespaces the issue names", function()
    local names = {}
    for _, entry in ipairs(repl.public_names()) do names[entry.name] = true end
    for _, name in ipairs {"nn.zeros", "nn.F.relu", "nn.init.xavier_uniform_", "nn.optim.SGD",
                           "nn.optim.lr_scheduler.StepLR", "nn.utils.clip_grad_norm_",
                           "nn.Tensor.sum", "nn.Module.parameters", "nn.Sequential.add", "nn.Linear"} do
      assert.is_true(names[name] == true, name)
    end
  end)
end)

describe("help that answers", function()
  local support = dofile((os.getenv("NN_ROOT") or ".") .. "/tests/lua/support.lua")

  local function heading(text) return (assert(text)):match("^[^\n]+") end

  it("is a global in nnlua scripts, as at the prompt", function()
    local script = os.tmpname()
    support.write(script, "help(nn.Linear)\nhelp('Tensor:add')\nprint(help == nn.help)\n")
    local p = io.popen(os.getenv("NNLUA") .. " " .. script .. " 2>&1")
    local out = p:read("a")
    p:close()
    os.remove(script)
    assert.truthy(out:find("^nn.Linear\n"), out)
    assert.truthy(out:find("\nTensor:add\n", 1, true), out)
    assert.truthy(out:find("\ntrue\n$"), out)
  end)

  it("resolves every way of writing a name", function()
    local cases = {
      ["nn.Linear"] = "nn.Linear", ["Linear"] = "nn.Linear", ["Tensor:add"] = "Tensor:add",
      ["t:add"] = "Tensor:add", ["nn.Tensor.add"] = "Tensor:add", ["DataLoader:set_epoch"] = "DataLoader:set_epoch",
      ["nn.data.DataLoader:set_epoch"] = "DataLoader:set_epoch", ["data.DataLoader.iter"] = "DataLoader:iter",
      ["TensorDataset:get"] = "TensorDataset:get", ["Module:parameters"] = "Module:parameters",
      ["m:parameters"] = "Module:parameters", ["Sequential:add"] = "Sequential:add",
      ["optim.Adam:step"] = "Optimizer:step", ["Adam"] = "nn.optim.Adam", ["StepLR:step"] = "StepLR:step",
      ["Bar:update"] = "Bar:update", ["F.relu"] = "nn.F.relu", ["zeros"] = "nn.zeros",
      ["nn.plot.image"] = "nn.plot.image", ["sweep.uniform"] = "nn.sweep.uniform",
    }
    for name, expected in pairs(cases) do
      assert.are.equal(expected, heading(repl.doc(name)), name)
    end
  end)

  it("documents values: functions, classes, instances, and a user's own class", function()
    assert.are.equal("nn.Linear", heading(repl.doc(nn.Linear)))
    assert.are.equal("nn.data.DataLoader", heading(repl.doc(nn.data.DataLoader)))
    local loader = nn.data.DataLoader(nn.data.TensorDataset(nn.ones(4, 2)), {batch_size = 2})
    local text = repl.doc(loader)
    assert.are.equal("nn.data.DataLoader", heading(text))
    assert.truthy(text:find("an instance of nn.data.DataLoader", 1, true), text)
    assert.truthy(text:find("DataLoader:set_epoch", 1, true), text) -- its methods, listed
    local model = nn.Sequential(nn.Linear(2, 3))
    assert.are.equal("nn.Sequential", heading(repl.doc(model)))
    local Net = nn.Module:extend("Net")
    function Net:forward(x) return x end
    text = repl.doc(Net())
    assert.are.equal("nn.Module", heading(text))
    assert.truthy(text:find("an instance of Net, built on nn.Module", 1, true), text)
  end)

  it("searches every name and text for a word, names first", function()
    local hits = repl.search("dropout")
    assert.is_true(#hits >= 3)
    local names, seen_text_only = {}, false
    for _, h in ipairs(hits) do
      names[h.name] = true
      local in_name = h.name:lower():find("dropout", 1, true) ~= nil
      if not in_name then seen_text_only = true end
      assert.is_false(in_name and seen_text_only, "a name match after a text match: " .. h.name)
    end
    assert.is_true(names["nn.Dropout"] and names["nn.F.dropout"])
    assert.is_true(seen_text_only) -- nn.Module:train's text mentions dropout
    local text = repl.doc("dropou") -- not a name: a search
    assert.truthy(text:find("^help: %d+ names in nn match 'dropou'"), text)
    assert.truthy(text:find("nn.Dropout", 1, true))
    local none, message = repl.doc("zzqqxx")
    assert.is_nil(none)
    assert.truthy(message:find("nothing in nn is named or documented with 'zzqqxx'", 1, true), message)
  end)

  it("lists the families for help(nn), and a family's names for help(family)", function()
    local text = assert(repl.doc(nn))
    for _, family in ipairs {"tensors", "autograd", "modules", "activations", "losses", "optimizers",
                             "schedulers", "init", "data", "plot", "progress", "sweep", "save/load", "cuda",
                             "utils"} do
      assert.truthy(text:find("\n  " .. family .. " ", 1, true), family .. " is not listed:\n" .. text)
    end
    local losses = assert(repl.doc("losses"))
    assert.truthy(losses:find("nn.MSELoss", 1, true))
    assert.truthy(losses:find("nn.F.cross_entropy", 1, true))
    assert.falsy(losses:find("nn.Linear", 1, true))
    local activations = assert(repl.doc("activations"))
    assert.truthy(activations:find("nn.ReLU", 1, true))
    assert.truthy(activations:find("Tensor:sigmoid", 1, true))
  end)

  it("documents every namespace and class with its contents, none pointing elsewhere", function()
    local checked = 0
    for _, entry in ipairs(repl.public_names()) do
      local v = entry.value
      if type(v) == "table" and entry.name ~= "nn" then
        local text = assert(repl.doc(v))
        assert.falsy(text:find("this file", 1, true), entry.name .. " sends the reader to a file:\n" .. text)
        -- each direct member is listed
        for _, other in ipairs(repl.public_names()) do
          local rest = other.name:sub(#entry.name + 2)
          if other.name:sub(1, #entry.name + 1) == entry.name .. "." and not rest:find(".", 1, true) then
            assert.truthy(text:find("\n  [^\n]*" .. rest:gsub("%p", "%%%0") .. "%f[^%w_]"),
                          entry.name .. " does not list " .. other.name .. ":\n" .. text)
          end
        end
        checked = checked + 1
      end
    end
    assert.is_true(checked >= 15, checked)
    for _, name in ipairs {"nn.plot", "nn.sweep", "nn.data"} do
      assert.truthy(repl.doc(name):find("\nContents:\n", 1, true), name)
    end
  end)
end)

describe("the prompt's own syntax", function()
  it("rewrites ?x into a help call", function()
    assert.are.equal('nn.repl.help_line("nn.zeros")', repl.rewrite("?nn.zeros"))
    assert.are.equal('nn.repl.help_line(" nn.Linear")', repl.rewrite("  ? nn.Linear"))
  end)

  it("rewrites %time for an expression and for a statement", function()
    local expression = repl.rewrite("%time 1 + 1")
    assert.truthy(expression:find("^return nn.repl.time"))
    assert.truthy(load(expression))
    local statement = repl.rewrite("%time for i = 1, 10 do end")
    assert.truthy(statement:find("^nn.repl.time"))
    assert.truthy(load(statement))
    local text, message = repl.rewrite("%nosuch 1")
    assert.is_nil(text)
    assert.truthy(message:find("unknown magic %nosuch", 1, true))
    assert.is_nil((repl.rewrite("%time")))
  end)

  it("rewrites %timeit, for an expression and for a statement", function()
    local expression = repl.rewrite("%timeit 1 + 1")
    assert.are.equal("nn.repl.timeit(function() return 1 + 1\nend)", expression)
    local statement = repl.rewrite("%timeit local t = {}")
    assert.are.equal("nn.repl.timeit(function() local t = {}\nend)", statement)
    assert.truthy(load(statement))
    local _, message = repl.rewrite("%timeit")
    assert.truthy(message:find("%timeit: give an expression", 1, true))
  end)

  it("chooses how many calls %timeit makes from how long one takes, and reports the median", function()
    -- a clock that each call of fn moves on by exactly 1 ms
    local now, calls = 0, 0
    local real_clock, real_print = repl.clock, print
    local printed
    repl.clock = function() return now end
    _G.print = function(s) printed = s end
    local ok, result = pcall(repl.timeit, function() now = now + 0.001; calls = calls + 1 end)
    repl.clock, _G.print = real_clock, real_print
    assert(ok, result)
    assert.are.equal(100, result.calls) -- 0.1 s a run
    assert.are.equal(7, result.runs)
    assert.are.equal(1 + 10 + 100 + 7 * 100, calls) -- 1, 10, 100 calls to learn the time, then the runs
    assert.is_true(math.abs(result.median - 0.001) < 1e-12)
    assert.are.equal("1.00 ms per call (median of 7 runs of 100 calls; fastest 1.00 ms, slowest 1.00 ms)", printed)
    -- a slow call: fewer runs, about a second in all
    now, calls = 0, 0
    repl.clock = function() return now end
    _G.print = function() end
    ok, result = pcall(repl.timeit, function() now = now + 0.3; calls = calls + 1 end)
    repl.clock, _G.print = real_clock, real_print
    assert(ok, result)
    assert.are.same({1, 3}, {result.calls, result.runs})
  end)

  it("keeps the locals a line declares, as the prompt runs it", function()
    local code = assert(repl.keep_locals("local kept_one, kept_two <const> = 1, 2; local function kept_f() return 3 end"))
    assert(load(code))()
    assert.are.same({1, 2, 3}, {kept_one, kept_two, kept_f()})
    -- nothing to keep, or a line that returns: as it was
    assert.is_nil(repl.keep_locals("x = 1"))
    assert.is_nil(repl.keep_locals("local s = 1 return s"))
    assert.is_nil(repl.keep_locals("print('local x = 1')"))
    -- a string or a comment that looks like code is not
    code = assert(repl.keep_locals("local kept_s = '<const> local' -- local kept_t <close>"))
    assert(load(code))()
    assert.are.equal("<const> local", kept_s)
    -- a <close> variable is closed at the end of its line and not kept
    code = assert(repl.keep_locals("local kept_h <close> = setmetatable({}, {__close = function() end})"))
    assert(load(code))()
    assert.is_nil(kept_h)
    _G.kept_one, _G.kept_two, _G.kept_f, _G.kept_s = nil, nil, nil, nil
  end)

  it("times a function, printing wall time and passing its results on", function()
    local printed
    local real_print = print
    _G.print = function(s) printed = s end
    local a, b = repl.time(function(x) return x * 2, "done" end, 21)
    _G.print = real_print
    assert.are.equal(42, a)
    assert.are.equal("done", b)
    assert.truthy(printed:match("^Wall time: [%d.]+ [um]?s$"))
  end)

  it("saves and restores grad mode around a line", function()
    local state = repl.save_state()
    nn.set_grad_enabled(false)
    repl.restore_state(state)
    assert.is_true(nn.is_grad_enabled())
  end)
end)

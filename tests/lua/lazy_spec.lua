-- The layer families and the rest of nn's Lua files load on first use
-- (lua/nn/init.lua's families): a bare `require "nn"` loads none of them,
-- touching any name of one loads it, and every name stays where it was,
-- listed, documented and checked as when nn loaded them all.
local support = dofile(os.getenv("NN_ROOT") .. "/tests/lua/support.lua")
local root = os.getenv("NN_ROOT") or "."

-- What nn loads with itself; every other file of lua/nn loads on first use.
local EAGER = {init = true}
-- The core every model uses, loaded together at the first of its names
-- (with nn.checks, the count checks it adds).
local CORE = {functional = true, module = true, layers = true, checks = true}

-- Runs code in a fresh nnlua (nn not loaded yet); its output, which must
-- end in "ok".
local function fresh(code)
  local out, ok = support.nnlua_output(code .. "\nprint('ok')")
  assert(ok and out:match("ok\n$"), out)
  return out
end

local function lua_files()
  local files = {}
  local p = assert(io.popen("ls " .. support.quote(root .. "/lua/nn")))
  for name in p:lines() do
    local module = name:match("^(.+)%.lua$")
    if module then files[#files + 1] = module end
  end
  p:close()
  return files
end

describe("require 'nn'", function()
  it("loads no file of lua/nn but what every script uses", function()
    local out = fresh([==[
      local _ = nn
      for name in pairs(package.loaded) do
        if name:match("^nn%.") then print("loaded " .. name) end
      end]==])
    -- nn.init ran (it made nn), and left package.loaded (misuse_spec)
    local loaded = {init = true}
    for name in out:gmatch("loaded nn%.([%w_]+)") do loaded[name] = true end
    for _, module in ipairs(lua_files()) do
      if EAGER[module] then
        assert.is_true(loaded[module], module)
      else
        assert.is_nil(loaded[module], "nn." .. module .. " is loaded by a bare require \"nn\"")
      end
    end
  end)

  -- nn.F, nn.Module, nn.Linear...: the first of the core's names loads all
  -- three files (and nothing else), with their count checks.
  it("loads the core at the first of its names", function()
    for _, name in ipairs {"F", "Module", "Parameter", "is_module", "_torch_name", "Sequential", "Linear",
                           "Sigmoid", "Tanh", "ReLU", "Step", "Identity"} do
      local out = fresh(string.format([==[
        assert(rawget(nn, %q) == nil)
        local _ = nn[%q]
        for name in pairs(package.loaded) do
          if name:match("^nn%%.") then print("loaded " .. name) end
        end
        assert(rawget(nn, "Linear") and rawget(nn, "Module") and rawget(nn, "F"))
        local ok, err = pcall(nn.Sequential().add, nn.Sequential(), nn.ReLU(), 2)
        assert(not ok and err:find("Sequential:add: takes at most 1 argument (m), got 2", 1, true), err)
        ok, err = pcall(nn.F.relu, nn.ones(1), 2)
        assert(not ok and err:find("relu: takes at most 1 argument (x), got 2", 1, true), err)]==], name, name))
      local loaded = {init = true} -- as above
      for module in out:gmatch("loaded nn%.([%w_]+)") do loaded[module] = true end
      for _, module in ipairs(lua_files()) do
        if EAGER[module] or CORE[module] then
          assert.is_true(loaded[module], module .. " after nn." .. name)
        else
          assert.is_nil(loaded[module], "nn." .. module .. " loaded by nn." .. name)
        end
      end
    end
  end)

  -- Every name a family puts in nn (nn.F, nn.optim, nn.utils, tensors) is
  -- in its list: a name that is not would be missing until something else
  -- loaded its file.
  it("lists every name each family defines", function()
    local out = fresh([==[
      local homes = {[""] = nn, F = nn.F, optim = nn.optim, utils = nn.utils, Tensor = nn.Tensor,
                     properties = getmetatable(nn.zeros(1)).properties}
      local before = {}
      for where, home in pairs(homes) do
        before[where] = {}
        for k, v in next, home do before[where][k] = v end
      end
      local listed = {}
      for _, family in ipairs(nn._family_list()) do
        for _, place in ipairs(family.places) do listed[place[1] .. "." .. place[2]] = family[1] end
      end
      nn._load_all()
      for where, home in pairs(homes) do
        for k, v in next, home do
          local name = where .. "." .. k
          if before[where][k] ~= v and not listed[name] then print("unlisted " .. name) end
          listed[name] = nil
        end
      end
      for name, family in pairs(listed) do print("missing " .. name .. " of " .. family) end]==])
    assert.is_nil(out:match("unlisted [^\n]*"), "a name no family lists (add it to init.lua's families)")
    assert.is_nil(out:match("missing [^\n]*"), "a listed name that its family does not define")
  end)

  -- Touching one name of a family gives every name of it the value it has
  -- when all are loaded (in the order nn loaded them, where a later file
  -- may replace an earlier one's function).
  it("loads a family on first use of any of its names", function()
    local families = {}
    local listing = fresh([==[for _, f in ipairs(nn._families) do io.write(f[1], "\n") end]==])
    for module in listing:gmatch("(nn%.[%w_]+)\n") do families[#families + 1] = module end
    assert.is_true(#families >= 10)
    for i, module in ipairs(families) do
      local out = fresh(string.format([==[
        local family = nn._families[%d]
        local homes = {Tensor = nn.Tensor, properties = getmetatable(nn.zeros(1)).properties}
        local function home(where) if where == "" then return nn end return homes[where] or nn[where] end
        -- the last name, before nn indexed the lists: a stand-in's call for
        -- a tensor's method or property
        local where, name = "", family[2]:match("(%%S+)$")
        if name:find(".", 1, true) then where, name = name:match("^(.-)%%.(.*)$") end
        if where == "Tensor" or where == "properties" then pcall(home(where)[name], nn.zeros(1)) end
        local _ = home(where)[name]
        assert(package.loaded[family[1]], family[1] .. " did not load on touching " .. name)
        local places = nn._family_list()[%d].places
        local got = {}
        for j, place in ipairs(places) do got[j] = rawget(home(place[1]), place[2]) end
        nn._load_all()
        for j, place in ipairs(places) do
          if got[j] == nil or got[j] ~= rawget(home(place[1]), place[2]) then
            print("differs " .. place[1] .. "." .. place[2])
          end
        end]==], i, i))
      assert.is_nil(out:match("differs [^\n]*"), module)
    end
  end)

  -- Splitting the lists into names waits for the first name nn lacks: a
  -- bare require "nn", and one that uses only nn.cli, never does it.
  it("indexes the families' names only at the first name it lacks", function()
    fresh([==[
      local _ = nn.Sequential(nn.ReLU())(nn.ones(2)) and nn.cli and nn.F.relu
      assert(nn._families[1].places == nil, "require 'nn' split the families' lists")
      assert(getmetatable(nn.zeros(1)).properties.glu == nil, "glu is a method, not a property")
      assert(nn._families[1].places ~= nil, "a tensor's miss indexes the families")
      assert(nn.Tensor.glu and nn.Tensor.retain_grad, "nn.Tensor finds a family's methods")
      local y = nn.tensor({1, 2, 3, 4}):glu()
      assert(y:size(1) == 2 and nn._families[1].places ~= nil)
      assert(rawget(nn, "MSELoss") == nil and nn.MSELoss ~= nil)]==])
  end)

  -- The count checks nn adds as it loads leave nn.Tensor out (270-odd C
  -- functions to walk for nothing): so neither nn nor its core may add a
  -- Lua method to tensors. (pairs would load every family: next looks at
  -- what is there.)
  it("adds no tensor method as it loads, nor with its core", function()
    local out = fresh([==[
      local _ = nn.Linear
      for _, home in ipairs {nn.Tensor, getmetatable(nn.zeros(1)).properties} do
        for k, v in next, home do
          if type(v) == "function" and debug.getinfo(v, "S").what == "Lua" then
            print("unchecked " .. k)
          end
        end
      end]==])
    assert.is_nil(out:match("unchecked [^\n]*"), "a tensor method added as nn loads: walk nn.Tensor in init.lua")
  end)

  -- Module's state_dict and load_state_dict live in nn.module_state, which
  -- their first call loads; they are documented and checked as before.
  it("loads Module's state functions at their first call", function()
    local out = fresh([==[
      local m = nn.Sequential(nn.ReLU())
      assert(package.loaded["nn.module_state"] == nil and package.loaded["nn.ordered_table"] == nil)
      local ok, err = pcall(m.state_dict, m, "extra")
      assert(not ok and err:find("Sequential:state_dict: takes no arguments, got 1", 1, true), err)
      assert(next(m:state_dict()) == nil and package.loaded["nn.module_state"])
      ok, err = pcall(m.load_state_dict, m, {x = nn.ones(1)})
      assert(not ok and err:find('Unexpected key(s) in state_dict: "x"', 1, true), err)
      nn.help(m.load_state_dict)]==])
    assert.truthy(out:find("missing_keys", 1, true), out)
  end)

  it("lists and documents every name, loaded or not", function()
    local out = fresh([==[
      local names = {}
      for _, entry in ipairs(nn.repl.public_names()) do names[entry.name] = true end
      for _, name in ipairs {"nn.Conv2d", "nn.LSTM", "nn.F.conv2d", "nn.optim.lr_scheduler.StepLR",
                             "nn.utils.rnn.pad_sequence", "nn.Tensor.glu", "nn.init.xavier_uniform_",
                             "nn.no_grad", "nn.data.DataLoader"} do
        if not names[name] then print("unlisted " .. name) end
      end
      for _, name in ipairs(nn.repl.undocumented()) do print("undocumented " .. name) end]==])
    assert.is_nil(out:match("unlisted [^\n]*"))
    assert.is_nil(out:match("undocumented [^\n]*"))
  end)

  it("lists every name in pairs(nn), as when all were loaded", function()
    local out = fresh([==[
      local seen = {}
      for k in pairs(nn) do seen[k] = true end
      for k in pairs(nn.F) do seen["F." .. k] = true end
      for _, name in ipairs {"Conv2d", "MultiheadAttention", "save", "F.max_pool2d", "F.one_hot"} do
        if not seen[name] then print("unlisted " .. name) end
      end]==])
    assert.is_nil(out:match("unlisted [^\n]*"))
  end)

  it("keeps the stand-ins of tensor methods and properties working before their file loads", function()
    fresh([==[
      local x = nn.tensor({1, 2, 3, 4})
      assert(package.loaded["nn.small_layers"] == nil)
      local y = x:glu()
      assert(y:size(1) == 2)
      assert(x.retains_grad == false)
      local z = nn.tensor({1, 2}, {requires_grad = true}) * 2
      z:retain_grad()
      assert(z.retains_grad == true)
      local ok, err = pcall(x.glu, x, 1, 2, 3, 4)
      assert(not ok and err:find("glu"), err)]==])
  end)

  it("checks argument counts of the names it loads later", function()
    fresh([==[
      local ok, err = pcall(nn.F.conv2d, nn.zeros(1, 1, 3, 3), nn.zeros(1, 1, 2, 2), nil, {}, "extra")
      assert(not ok and err:find("conv2d: takes at most 4 arguments", 1, true), err)
      local ok2, err2 = pcall(nn.optim.lr_scheduler.StepLR, nil, nil, nil, nil, nil, "x")
      assert(not ok2 and err2:find("StepLR", 1, true), err2)]==])
  end)

  -- nn.optim is a family's namespace and a home of names itself (the
  -- schedulers): touching a scheduler's name first must load both.
  it("loads nn.optim under the names of a family that goes in it", function()
    fresh([==[
      local clip = nn.utils.clip_grad_norm_
      assert(package.loaded["nn.lr_scheduler"] and clip)
      assert(rawget(nn, "optim") and nn.optim.SGD and nn.optim.lr_scheduler.StepLR)
      local loss = nn.MSELoss()(nn.ones(2), nn.zeros(2))
      assert(loss:item() == 1)
      local ok, err = pcall(nn.optim.SGD, {}, {lr = 1}, "extra")
      assert(not ok and err:find("SGD", 1, true), err)]==])
  end)

  -- nn stops the collector while it loads (nothing it makes is garbage).
  it("leaves the garbage collector running, or stopped, as it found it", function()
    fresh([==[
      assert(collectgarbage("isrunning"))
      local _ = nn
      assert(collectgarbage("isrunning"), "loading nn left the collector stopped")
      local _ = nn.MSELoss
      assert(collectgarbage("isrunning"), "loading a family left the collector stopped")]==])
    fresh([==[
      collectgarbage("stop")
      local _ = nn
      assert(not collectgarbage("isrunning"), "loading nn restarted a stopped collector")
      collectgarbage("restart")]==])
  end)

  it("lets help name a stand-in", function()
    local out = fresh([==[local glu = nn.Tensor.glu; nn.help(glu)]==])
    assert.truthy(out:find("glu", 1, true), out)
    assert.is_nil(out:find("no documentation", 1, true), out)
  end)
end)

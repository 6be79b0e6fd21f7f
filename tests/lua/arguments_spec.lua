-- Every function nn makes reachable from Lua checks what it is given: a
-- C function called with anything (a number, a table, a file, a closed
-- tensor) works or raises a Lua error, never crashes the process; and a
-- public function given more arguments than it takes says so, instead of
-- silently dropping them.
local nn = require "nn"
local support = dofile((os.getenv("NN_ROOT") or ".") .. "/tests/lua/support.lua")
local expect_error = support.expect_error

-- The C functions of Lua's own libraries and of every other loaded
-- module: not nn's to check.
local function foreign_functions()
  local set = {}
  local function add(t, depth, seen)
    if seen[t] then return end
    seen[t] = true
    for _, v in pairs(t) do
      if type(v) == "function" then set[v] = true
      elseif type(v) == "table" and depth < 2 then add(v, depth + 1, seen) end
    end
    local mt = getmetatable(t)
    if type(mt) == "table" then add(mt, depth + 1, seen) end
  end
  -- nn's own tables are reachable from some of those: never walked here
  local seen = {[package.preload] = true, [package.loaded] = true, [nn] = true}
  for name, module in pairs(package.loaded) do
    if type(module) == "table" and name ~= "nn" and not name:match("^nn%.") then add(module, 0, seen) end
  end
  add(getmetatable(io.stdout), 0, seen)
  add(getmetatable(""), 0, seen)
  return set
end

-- Every C function reachable from nn: through its tables and their
-- metatables, the tensor's and a size list's metatables, the upvalues of
-- nn's own Lua functions (and of its C closures), and the registry's
-- entries for nn. Returns a list of {name =, fn =}.
local function reachable_c_functions()
  for _, lazy in ipairs({"plot", "progress", "sweep", "repl", "help"}) do local _ = nn[lazy] end
  local foreign = foreign_functions()
  local found, list, seen = {}, {}, {}
  local visit
  local function visit_function(f, name)
    if seen[f] then return end
    seen[f] = true
    local info = debug.getinfo(f, "S")
    if info.what == "C" then
      if not foreign[f] and not found[f] then
        found[f] = true
        list[#list + 1] = {name = name, fn = f}
      end
    elseif not info.source:match("^@%[nn%]/") then
      return -- a user's or a test framework's function
    end
    for i = 1, math.huge do
      local up_name, value = debug.getupvalue(f, i)
      if up_name == nil then break end
      visit(value, name .. "^" .. (up_name ~= "" and up_name or tostring(i)))
    end
  end
  visit = function(v, name)
    local tv = type(v)
    if tv == "function" then
      visit_function(v, name)
    elseif tv == "table" or tv == "userdata" then
      if seen[v] then return end
      seen[v] = true
      if tv == "table" and v ~= _G and v ~= package.loaded then
        for k, x in pairs(v) do visit(x, name .. "." .. tostring(k)) end
      end
      local mt = debug.getmetatable(v)
      if mt then visit(mt, name .. "<mt>") end
    end
  end
  visit(nn, "nn")
  visit(nn.ones(1), "tensor")
  visit(nn.ones(1):size(), "size")
  for k, v in pairs(debug.getregistry()) do
    if type(k) == "string" and k:match("^nn") then visit(v, "registry." .. k) end
  end
  for k, v in pairs(package.preload) do
    if k == "nn" or k:match("^nn%.") then visit(v, "preload." .. k) end
  end
  return list
end

-- Functions the sweep does not call, and why: each reads its arguments
-- with luaL_check* (or checks them as the others do), but calling it with
-- a real number or file acts on the test process itself.
local side_effects = {
  sys_fork = "forks the test process",
  sys_exit = "ends the test process",
  sys_kill = "signals whatever process 42 or -1 is",
  sys_waitpid = "reaps child processes of the test process",
  sys_sleep = "would sleep 42 seconds",
  sys_close = "closes the test process's descriptors",
  sys_write = "writes to the test process's descriptors",
  sys_read = "reads the test process's descriptors",
  sys_poll = "blocks for ever on an empty set of descriptors",
  sys_redirect = "redirects the test process's descriptors",
  sys_sync_later = "starts the background sync thread",
  sys_lock = "locks the test process's files",
  mpi_init = "loads libmpi and initializes MPI in the test process",
  write_file_atomic = "writes files named by its arguments",
  safetensors_write = "writes files named by its arguments",
  pt_write = "writes files named by its arguments (torch_file_spec gives it bad ones in a scratch dir)",
}

-- The functions not called, by value: those above.
local function skip_list()
  local skip = {}
  for name, why in pairs(side_effects) do
    assert(nn._C[name], "no nn._C." .. name)
    skip[nn._C[name]] = why
  end
  return skip
end

-- The loaders of nn's modules: they ignore their arguments and compile a
-- module, so one argument is enough.
local function loaders()
  local set = {}
  for k, v in pairs(package.preload) do
    if k == "nn" or k:match("^nn%.") then set[v] = true end
  end
  return set
end

describe("every C function reachable from Lua", function()
  local functions = reachable_c_functions()

  it("are found by walking nn's tables, metatables and upvalues", function()
    local found = {}
    for _, e in ipairs(functions) do found[e.fn] = true end
    -- a few from each place, so that the walk cannot silently find nothing
    local C, mt = nn._C, getmetatable(nn.ones(1))
    for name, f in pairs({zeros = nn.zeros, tensor = nn.tensor, add = nn.Tensor.add, __gc = mt.__gc,
                          __close = mt.__close, __index = mt.__index, __lt = mt.__lt,
                          size_tostring = getmetatable(nn.ones(1):size()).__tostring,
                          sequential_forward = C.sequential_forward, optim_sgd = C.optim_sgd,
                          activation = C.activation, cross_entropy = C.cross_entropy,
                          safetensors_read = C.safetensors_read, sys_fork = C.sys_fork,
                          loader = package.preload["nn.init"]}) do
      assert(found[f], "the walk did not find " .. name)
    end
    assert(#functions > 150, "only " .. #functions .. " C functions found")
  end)

  it("work or raise a Lua error, whatever they are given", function()
    local grad_enabled, threads = nn.is_grad_enabled(), nn.get_num_threads()
    local closed = nn.ones(2)
    getmetatable(closed).__close(closed)
    -- nil (absent), a number, a table, a file, a closed tensor, and a few
    -- values that reach further into the functions
    local junk = {n = 9, nil, 42, {}, io.stdout, closed, "x", true, -1, "live"}
    local function value(i)
      local v = junk[i]
      if v == "live" then return nn.ones(2) end -- a fresh one: some calls change or close it
      return v
    end
    local calls = 0
    local function call(f, ...)
      local ok, err = pcall(f, ...)
      if not ok then
        assert(type(err) == "string", "a non-string error: " .. tostring(err))
      end
      calls = calls + 1
    end
    local skip, loader = skip_list(), loaders()
    for _, entry in ipairs(functions) do
      if not skip[entry.fn] then
        local f = entry.fn
        local deep = not loader[f]
        call(f)
        for a = 1, junk.n do
          call(f, value(a))
          for b = 1, deep and junk.n or 0 do
            call(f, value(a), value(b))
            for c = 1, junk.n do call(f, value(a), value(b), value(c)) end
          end
        end
        nn.set_grad_enabled(grad_enabled)
        nn.set_num_threads(threads)
      end
    end
    assert(calls > 100000, calls)
    -- and the process still works
    assert.are.equal(6, (nn.ones(2, 3) * 1):sum():item())
  end)

  it("the tensor's __gc and __close refuse what is not a tensor", function()
    local mt = getmetatable(nn.ones(1))
    expect_error(function() mt.__close(42) end, "__close", "tensor", "number")
    expect_error(function() mt.__gc({}) end, "__gc", "tensor", "table")
    expect_error(function() mt.__gc(io.stdout) end, "__gc", "tensor", "userdata")
    local t = nn.ones(2)
    mt.__close(t)
    expect_error(function() return t + 1 end, "closed")
  end)

  it("nnlua's own global lookup refuses what is not a table", function()
    local out = support.nnlua_output('print(pcall(getmetatable(_G).__index, 42, "nn"))')
    assert.truthy(out:find("^false"), out)
    assert.truthy(out:find("table expected"), out)
  end)
end)

-- Functions that take any number of arguments by design, and why.
local variadic = {
  ["nn.zeros"] = "sizes", ["nn.ones"] = "sizes", ["nn.empty"] = "sizes", ["nn.rand"] = "sizes",
  ["nn.randn"] = "sizes", ["nn.full"] = "sizes, then the value",
  ["nn.Tensor.view"] = "sizes", ["nn.Tensor.reshape"] = "sizes", ["nn.Tensor.expand"] = "sizes",
  ["nn.Tensor.permute"] = "dims",
  ["nn.Tensor.new_zeros"] = "sizes", ["nn.Tensor.new_ones"] = "sizes", ["nn.einsum"] = "operands",
  ["nn.Sequential"] = "modules", ["nn.data.TensorDataset"] = "tensors",
  ["nn.no_grad"] = "fn's arguments", ["nn.enable_grad"] = "fn's arguments",
  ["nn.autograd.detect_anomaly"] = "fn's arguments",
  ["nn.repl.show"] = "values to show", ["nn.repl.time"] = "fn's arguments",
  ["nn.progress.Bar.print"] = "values to print, as print",
  ["nn.Module.forward"] = "the base's only job is to say that a class has no forward",
  ["nn.Tensor.backward"] = "its argument checks are the autograd part of issue 10",
}

describe("a public function given arguments it does not take", function()
  it("raises 'takes', for every public function (nn.repl.public_names)", function()
    local t = nn.ones(2)
    local many = {}
    for i = 1, 12 do many[i] = 42 end
    local silent = {}
    for _, entry in ipairs(nn.repl.public_names()) do
      local f = entry.value
      if type(f) == "table" and getmetatable(f) and getmetatable(f).__call then
        f = function(...) return entry.value(...) end
      end
      if type(f) == "function" and not variadic[entry.name] then
        local ok, err = pcall(f, t, table.unpack(many))
        if ok or not tostring(err):find("takes", 1, true) then
          silent[#silent + 1] = entry.name .. " (" .. (ok and "accepted" or tostring(err)) .. ")"
        end
      end
    end
    assert(#silent == 0, "these do not refuse extra arguments:\n  " .. table.concat(silent, "\n  "))
  end)
end)

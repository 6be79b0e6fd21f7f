-- Misuse through the Lua API: nn's public Lua functions, tensor methods,
-- module constructors, modules, their methods, optimizers and schedulers,
-- each called with arguments drawn from a pool of wrong and odd values
-- (nil, negative and huge numbers, NaN, strings, tables, functions,
-- tensors of other shapes and dtypes, a module), the same draws every run.
-- Whatever a call is given, it works or raises an error of nn's own, which
-- names the operation: never a Lua runtime error from inside nn's code
-- ("[nn]/nn.x.lua:12: attempt to index a nil value"), which tells a user
-- nothing of what they did wrong. arguments_spec does the same for every C
-- function; this is the Lua half, where such errors come from.
local nn = require "nn"
local support = dofile((os.getenv("NN_ROOT") or ".") .. "/tests/lua/support.lua")
local expect_error = support.expect_error

-- An error raised by nn itself names the user's line (or none); one from
-- the Lua VM inside nn's code names nn's, or says "attempt to".
local function internal_error(err)
  err = tostring(err)
  return err:match("^%[nn%]") or err:match("attempt to ") or err:match("stack overflow")
end

-- Functions whose call acts on the test process or the machine, not on
-- their arguments: writing files, spawning, plotting, printing help,
-- changing the thread count.
local side_effects = {save = true, sweep = true, plot = true, repl = true, progress = true, help = true,
                      set_num_threads = true, trace = true, set_rng_state = true}

local function sorted_functions(t, accept)
  local names = {}
  for k, v in pairs(t) do
    if type(k) == "string" and type(v) == "function" and not k:match("^_") and not side_effects[k] and
       (not accept or accept(k, v)) then
      names[#names + 1] = k
    end
  end
  table.sort(names)
  return names
end

describe("nn's Lua functions given wrong arguments", function()
  local failures, calls = {}, 0
  local pool, npool

  local function describe_value(v)
    if nn.is_tensor(v) then return "tensor " .. v.dtype .. " (" .. table.concat(v:size(), ", ") .. ")" end
    if type(v) == "string" then return string.format("%q", v) end
    if type(v) == "table" then return nn.is_module(v) and "a module" or "a table" end
    return tostring(v)
  end

  -- n calls of f (with self first when given) on draws from the pool
  local function sweep(name, f, n, self_)
    for _ = 1, n do
      local count, args = math.random(0, 4), {}
      for i = 1, count do args[i] = pool[math.random(1, npool)] end
      local ok, err
      if self_ ~= nil then
        ok, err = pcall(f, self_, table.unpack(args, 1, count))
      else
        ok, err = pcall(f, table.unpack(args, 1, count))
      end
      calls = calls + 1
      if not ok and internal_error(err) and #failures < 40 then
        local shown = {}
        for i = 1, count do shown[i] = describe_value(args[i]) end
        failures[#failures + 1] = name .. "(" .. table.concat(shown, ", ") .. "): " .. tostring(err)
      end
    end
  end

  setup(function()
    math.randomseed(20261207)
    nn.manual_seed(7)
    pool = {
      nil, true, false, 0, 1, 2, 3, -1, 7, 0.5, -0.5, 1e300, 0 / 0, math.huge, 2 ^ 62, math.mininteger,
      "", "mean", "none", "abc", "float64", "same", {}, {1, 2}, {{1, 2}, {3, 4}}, {-1}, {2, 3},
      {1, {2, 3}}, {a = 1}, function() return 1 end,
      nn.tensor(3.5), nn.zeros(0), nn.randn(2, 3), nn.randn(3, 2):t(), nn.tensor({1, 2, 0}, {dtype = "int64"}),
      nn.tensor({{true, false, true}, {false, false, true}}), nn.randn(2, 3, 4, {dtype = "float64"}),
      nn.tensor({-1, 5}, {dtype = "int64"}), nn.zeros(2, 3, {dtype = "uint8"}), nn.randn(1, 1, 5, 5),
      nn.randn(2, 3):to("float16"), nn.randn(4), nn.randn(2, 3):requires_grad_(), nn.randn(5, 5),
      nn.zeros(2, 0, 3), nn.randn(1, 3):expand(4, 3), nn.Linear(3, 2),
    }
    npool = 47
    assert(pool[npool] ~= nil and pool[npool + 1] == nil)
  end)

  it("nn.* and nn.F.* raise errors of their own", function()
    for _, k in ipairs(sorted_functions(nn)) do sweep("nn." .. k, nn[k], 20) end
    for _, k in ipairs(sorted_functions(nn.F)) do sweep("nn.F." .. k, nn.F[k], 20) end
    for _, k in ipairs(sorted_functions(nn.init)) do sweep("nn.init." .. k, nn.init[k], 8) end
    for _, k in ipairs(sorted_functions(nn.utils)) do sweep("nn.utils." .. k, nn.utils[k], 8) end
    for _, k in ipairs(sorted_functions(nn.utils.rnn)) do sweep("nn.utils.rnn." .. k, nn.utils.rnn[k], 20) end
    for _, k in ipairs(sorted_functions(nn.autograd)) do sweep("nn.autograd." .. k, nn.autograd[k], 20) end
    nn.autograd.set_detect_anomaly(false)
    for _, k in ipairs({"whole", "parser", "device"}) do sweep("nn.cli." .. k, nn.cli[k], 20) end
    -- nn.data's makers that read no file
    for _, k in ipairs({"TensorDataset", "Subset", "DataLoader", "random_split"}) do sweep("nn.data." .. k, nn.data[k], 20) end
  end)

  it("tensor methods raise errors of their own", function()
    local selves = {function() return nn.randn(2, 3) end, function() return nn.tensor({1, 2, 0}, {dtype = "int64"}) end,
                    function() return nn.zeros(0) end, function() return nn.tensor(2.0) end,
                    function() return nn.randn(2, 3, 4, {dtype = "float64"}):transpose(1, 3) end,
                    function() return nn.tensor({{true, false}, {true, true}}) end}
    for _, k in ipairs(sorted_functions(nn.Tensor)) do
      for _, make in ipairs(selves) do sweep("Tensor:" .. k, nn.Tensor[k], 8, make()) end
    end
  end)

  it("module constructors, modules and their methods raise errors of their own", function()
    local classes = {}
    for k, v in pairs(nn) do
      if type(k) == "string" and k:match("^%u") and type(v) == "table" and getmetatable(v) and
         getmetatable(v).__call and k ~= "Tensor" then
        classes[#classes + 1] = k
      end
    end
    table.sort(classes)
    assert(#classes > 100, #classes)
    local sizes = {1, 2, 3, 4, 0, -1, true, "same", {2, 2}}
    for _, k in ipairs(classes) do
      sweep("nn." .. k, nn[k], 8)
      -- made with small arguments, then called with the pool
      for _ = 1, 8 do
        local count, args = math.random(0, 3), {}
        for i = 1, count do args[i] = sizes[math.random(1, #sizes)] end
        local ok, m = pcall(nn[k], table.unpack(args, 1, count))
        if ok and nn.is_module(m) then sweep("nn." .. k .. "(...)", m, 8) end
      end
    end
    -- a module's methods, the same module all along: what one call
    -- accepts must not break the next
    local methods = sorted_functions(nn.Module, function(k) return k ~= "extend" and k ~= "new" end)
    for _, make in ipairs({function() return nn.Linear(3, 2) end,
                           function() return nn.Sequential(nn.Linear(3, 2), nn.ReLU()) end,
                           function() return nn.BatchNorm1d(3) end, function() return nn.LSTM(3, 4) end}) do
      local m = make()
      for _, k in ipairs(methods) do sweep("Module:" .. k, m[k], 6, m) end
      for _, k in ipairs({"train", "zero_grad", "state_dict", "parameters", "float"}) do sweep("Module:" .. k, m[k], 1, m) end
    end
  end)

  it("optimizers and schedulers raise errors of their own", function()
    for _, k in ipairs(sorted_functions(nn.optim, function(_, v) return true end)) do sweep("nn.optim." .. k, nn.optim[k], 8) end
    local classes = {}
    for k, v in pairs(nn.optim) do
      if type(k) == "string" and k:match("^%u") and type(v) == "table" and k ~= "Optimizer" then classes[#classes + 1] = k end
    end
    table.sort(classes)
    for _, k in ipairs(classes) do
      sweep("nn.optim." .. k, nn.optim[k], 8)
      local opt = nn.optim[k](nn.Linear(2, 2):parameters(), {lr = 0.1})
      for _, method in ipairs({"step", "zero_grad", "state_dict", "load_state_dict", "add_param_group"}) do
        sweep(k .. ":" .. method, opt[method], 6, opt)
      end
    end
    local schedulers = {}
    for k, v in pairs(nn.optim.lr_scheduler) do
      if type(k) == "string" and k:match("^%u") and type(v) == "table" then schedulers[#schedulers + 1] = k end
    end
    table.sort(schedulers)
    assert(#schedulers >= 10, #schedulers)
    for _, k in ipairs(schedulers) do
      sweep("lr_scheduler." .. k, nn.optim.lr_scheduler[k], 6, nn.optim.SGD(nn.Linear(2, 2):parameters(), {lr = 0.1}))
    end
  end)

  it("made no call that failed inside nn", function()
    assert(calls > 20000, "only " .. calls .. " calls")
    assert(#failures == 0, #failures .. " calls failed inside nn, among them:\n" .. table.concat(failures, "\n"))
    -- and the process still works
    assert.are.equal(6, (nn.ones(2, 3) * 1):sum():item())
  end)
end)

describe("the misuses the sweep found", function()
  it("GroupNorm without num_channels, or with a weight that is not one a channel", function()
    expect_error(function() return nn.GroupNorm(2) end, "GroupNorm", "num_channels", "positive integer", "nil")
    expect_error(function() return nn.GroupNorm(nil, 4) end, "GroupNorm", "num_groups", "positive integer")
    expect_error(function() return nn.GroupNorm(false, 4) end, "GroupNorm", "num_groups", "positive integer")
    local x = nn.randn(2, 4, 3)
    expect_error(function() return nn.F.group_norm(x, 2, nn.ones(3)) end, "group_norm", "weight", "(3)", "(2, 4, 3)")
    expect_error(function() return nn.F.group_norm(x, 2, 0.5) end, "group_norm", "weight", "tensor", "number")
    expect_error(function() return nn.F.group_norm(x, 2, nil, nn.ones(4, 1)) end, "group_norm", "bias", "(4, 1)")
    local y = nn.F.group_norm(x, 2, nn.ones(4), nn.zeros(4))
    assert.are.same({2, 4, 3}, {y:size(1), y:size(2), y:size(3)})
  end)

  it("instance_norm's statistics, weight and bias: one a channel", function()
    local x = nn.randn(2, 4, 3)
    expect_error(function() return nn.F.instance_norm(x, nn.zeros(3), nn.ones(4)) end, "instance_norm", "running_mean", "(3)")
    expect_error(function() return nn.F.instance_norm(x, nn.zeros(4), "x") end, "instance_norm", "running_var", "string")
    expect_error(function() return nn.F.instance_norm(x, nil, nil, nn.ones(5)) end, "instance_norm", "weight", "(5)")
  end)

  it("Upsample's scale_factor: a number or a table of numbers", function()
    expect_error(function() return nn.Upsample(nil, {{}}) end, "Upsample", "scale_factor", "table at 1")
    expect_error(function() return nn.Upsample(nil, "2") end, "Upsample", "scale_factor", "string")
    assert.are.equal(2.0, nn.Upsample(nil, 2).scale_factor)
  end)

  it("RNNBase takes PyTorch's modes; RNNCellBase is not made on its own", function()
    expect_error(function() return nn.RNNBase("FOO", 3, 4) end, "RNNBase", "mode", "RNN_TANH", "FOO")
    expect_error(function() return nn.RNNBase(3, 4) end, "RNNBase", "mode")
    expect_error(function() return nn.RNNCellBase(3, 4) end, "RNNCellBase", "nn.LSTMCell")
    expect_error(function() return nn.RNNCellBase() end, "RNNCellBase")
    -- RNN_RELU: the same parameters and outputs as nn.RNN with relu
    nn.manual_seed(3)
    local base = nn.RNNBase("RNN_RELU", 3, 4)
    nn.manual_seed(3)
    local rnn = nn.RNN(3, 4, {nonlinearity = "relu"})
    local x = nn.randn(5, 2, 3)
    local out_base, h_base = base(x)
    local out_rnn, h_rnn = rnn(x)
    assert.is_true(nn.equal(out_base, out_rnn) and nn.equal(h_base, h_rnn))
    assert.are.equal("relu", base.nonlinearity)
    assert.are.equal("tanh", nn.RNNBase("RNN_TANH", 3, 4).nonlinearity)
    assert.are.equal("RNNBase(3, 4, num_layers=2)", tostring(nn.RNNBase("LSTM", 3, 4, 2)))
  end)

  it("gradcheck and gradgradcheck check fn, its results and the options", function()
    local x = nn.randn(3, {dtype = "float64", requires_grad = true})
    expect_error(function() return nn.gradcheck(function(a) return a:tanh() end, {x}, 5) end,
      "gradcheck", "options must be a table", "number")
    expect_error(function() return nn.gradgradcheck(2, {x}) end, "gradgradcheck", "fn must be callable", "number")
    expect_error(function() return nn.gradgradcheck(function() return 1 end, {x}) end,
      "gradgradcheck", "must return a tensor")
    expect_error(function() return nn.gradgradcheck(function(a) return a:tanh() end, {x}, "x") end,
      "gradgradcheck", "options must be a table", "string")
    assert.is_true(nn.gradgradcheck(function(a) return a:tanh() end, {x}))
  end)

  it("a function called without a name is not named after nn.init or nn.core", function()
    -- Lua names it from package.loaded, where nn.init (nn itself) and
    -- nn.core stayed after loading: "bad argument #2 to 'nn.init.roll'"
    assert.is_nil(package.loaded["nn.init"])
    assert.is_nil(package.loaded["nn.core"])
    assert.are.equal(nn, package.loaded.nn)
    local ok, err = pcall(nn.roll, nn.ones(2, 2))
    assert.is_false(ok)
    assert.is_nil(err:find("nn.init", 1, true))
    assert.is_nil(err:find("nn.core", 1, true))
    assert.is_truthy(err:find("'nn.roll'", 1, true))
    assert.are.equal(nn.init.xavier_uniform_, require("nn").init.xavier_uniform_)
  end)

  it("nn.cli.device needs a parser", function()
    expect_error(function() return nn.cli.device() end, "nn.cli.device", "parser", "nil")
    expect_error(function() return nn.cli.device({}) end, "nn.cli.device", "parser", "table")
  end)

  it("register_parameter and register_buffer check the name and the value as PyTorch does", function()
    local m = nn.Linear(2, 2)
    expect_error(function() m:register_buffer(1, nn.zeros(1)) end, "register_buffer", "name", "string", "number")
    expect_error(function() m:register_buffer("", nil) end, "register_buffer", "empty")
    expect_error(function() m:register_buffer("a.b", nil) end, "register_buffer", ".")
    expect_error(function() m:register_buffer("weight", nn.zeros(1)) end, "register_buffer", "'weight' already exists")
    expect_error(function() m:register_buffer("_modules", nil) end, "register_buffer", "'_modules' already exists")
    expect_error(function() m:register_parameter("forward", nn.zeros(1)) end, "register_parameter", "'forward' already exists")
    expect_error(function() m:register_buffer("x", 3) end, "register_buffer", "number", "'x'", "tensor or nil")
    expect_error(function() m:register_parameter("training", nil) end, "register_parameter", "'training' already exists")
    -- what stays allowed: a new name, nil, and registering the same name again
    m:register_buffer("x", nn.zeros(1))
    m:register_buffer("x", nn.ones(1))
    m:register_buffer("empty", nil)
    m:register_parameter("weight", nn.zeros(2, 2))
    m:register_parameter("p", nil)
    assert.are.same({"weight", "bias", "p"}, m._parameters)
    assert.are.same({"x", "empty"}, m._buffers)
    m:train()
    m:zero_grad()
    assert.are.equal(1, m:state_dict().x:sum():item())
  end)
end)

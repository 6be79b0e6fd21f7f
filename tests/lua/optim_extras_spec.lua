-- Issue 13's optimizers, schedulers and initialisers against PyTorch 1.13
-- (tests/fixtures/optim_extras_reference.lua, written by gen_optim_extras.py):
-- 10-step trajectories in float32 and float64, L-BFGS on the Rosenbrock
-- function with and without its line search, and misuse errors.
local nn = require "nn"
local support = dofile((os.getenv("NN_ROOT") or ".") .. "/tests/lua/support.lua")
local flat = support.flat

local root = os.getenv("NN_ROOT") or "."
local reference = dofile(root .. "/tests/fixtures/optim_extras_reference.lua")

local RTOL = {float32 = 1e-4, float64 = 1e-9}

local function assert_close(expected, t, dtype, what, rtol)
  local got = nn.is_tensor(t) and flat(t) or t
  rtol = rtol or RTOL[dtype]
  assert.are.equal(#expected, #got, what .. ": number of elements")
  for i = 1, #expected do
    local e, a = expected[i], got[i]
    assert(math.abs(a - e) <= rtol * (math.abs(e) + 1e-3),
      string.format("%s: element %d: expected %.17g, got %.17g", what, i, e, a))
  end
end

local data = reference.data

local function loss_of(x, y, w, b)
  return ((x:matmul(w) + b - y) ^ 2):mean() + 0.1 * (w ^ 4):sum()
end

describe("optimizers follow PyTorch's trajectories", function()
  for _, case in ipairs(reference.optimizers) do
    for _, dtype in ipairs {"float32", "float64"} do
      it(case.name .. " " .. dtype, function()
        local x = nn.tensor(data.x, {dtype = dtype}):view(5, 3)
        local y = nn.tensor(data.y, {dtype = dtype}):view(5, 2)
        local w = nn.tensor(data.w, {dtype = dtype}):view(3, 2):requires_grad_(true)
        local b = nn.tensor(data.b, {dtype = dtype}):requires_grad_(true)
        local class = case.name:match("^%S+")
        local opt = nn.optim[class]({w, b}, case.options)
        for step, expected in ipairs(case[dtype]) do
          opt:zero_grad()
          loss_of(x, y, w, b):backward()
          opt:step()
          assert_close(expected.w, w, dtype, string.format("%s step %d w", case.name, step))
          assert_close(expected.b, b, dtype, string.format("%s step %d b", case.name, step))
        end
        -- the state saves and loads: a copy continues the same way
        local sd = opt:state_dict()
        local w2, b2 = w:detach():clone():requires_grad_(true), b:detach():clone():requires_grad_(true)
        local opt2 = nn.optim[class]({w2, b2}, case.options)
        opt2:load_state_dict(sd)
        for _, pair in ipairs {{opt, w, b}, {opt2, w2, b2}} do
          pair[1]:zero_grad()
          loss_of(x, y, pair[2], pair[3]):backward()
          pair[1]:step()
        end
        assert.are.same(flat(w), flat(w2))
      end)
    end
  end
end)

-- One configuration of each, with every option away from its default.
local ENGINE_STEPS = {
  {"Adadelta", {lr = 0.5, rho = 0.8, weight_decay = 0.1, maximize = true}},
  {"Adamax", {lr = 0.05, betas = {0.8, 0.99}, weight_decay = 0.1, maximize = true}},
  {"NAdam", {lr = 0.05, weight_decay = 0.1, momentum_decay = 0.01}},
  {"RAdam", {lr = 0.05, betas = {0.5, 0.6}, weight_decay = 0.1}},
  {"ASGD", {lr = 0.05, lambd = 0.01, t0 = 3, weight_decay = 0.1, maximize = true}},
  {"Rprop", {lr = 0.05, etas = {0.3, 1.5}, step_sizes = {1e-3, 0.2}, maximize = true}},
}

describe("issue 13's optimizers step in the engine", function()
  local function parameters(dtype)
    nn.manual_seed(7)
    local w = nn.randn(64, 33, {dtype = dtype}):requires_grad_(true)
    local b = nn.randn(33, {dtype = dtype}):requires_grad_(true)
    w.grad, b.grad = nn.randn(64, 33, {dtype = dtype}), nn.randn(33, {dtype = dtype})
    return w, b
  end

  for _, c in ipairs(ENGINE_STEPS) do
    it(c[1] .. " allocates nothing once its state exists", function()
      local w, b = parameters("float32")
      local opt = nn.optim[c[1]]({w, b}, c[2])
      opt:step()
      opt:step()
      collectgarbage()
      collectgarbage("stop")
      local before = nn._C.memory_in_use()
      for _ = 1, 20 do opt:step() end
      local after = nn._C.memory_in_use()
      collectgarbage("restart")
      assert.are.equal(before, after)
    end)
  end

  for _, name in ipairs {"Adadelta", "Adamax", "ASGD", "Rprop"} do
    it(name .. ": maximize steps along the gradient as minimizing the negated one", function()
      local runs = {}
      for _, maximize in ipairs {false, true} do
        local w = parameters("float64")
        local g = w.grad:clone()
        local opt = nn.optim[name]({w}, {maximize = maximize})
        for _ = 1, 4 do
          w.grad = maximize and g or -g
          opt:step()
        end
        runs[#runs + 1] = flat(w)
      end
      assert.are.same(runs[1], runs[2])
    end)
  end

  for _, c in ipairs(ENGINE_STEPS) do
    it(c[1] .. " steps a half parameter in float32, rounding it once", function()
      for _, half in ipairs {"float16", "bfloat16"} do
        local w = parameters("float32")
        local p16 = w:detach():to(half):requires_grad_(true)
        p16.grad = w.grad:to(half)
        local p32 = p16:detach():float():requires_grad_(true)
        p32.grad = p16.grad:float()
        nn.optim[c[1]]({p16}, c[2]):step()
        nn.optim[c[1]]({p32}, c[2]):step()
        assert.are.equal(half, p16.dtype)
        assert.are.same(flat(p32:detach():to(half)), flat(p16))
      end
    end)
  end

  it("keeps PyTorch's state names, numbers where PyTorch has scalars", function()
    local expected = {
      Adadelta = {"acc_delta", "square_avg"}, Adamax = {"exp_avg", "exp_inf"},
      NAdam = {"exp_avg", "exp_avg_sq", "mu_product"}, RAdam = {"exp_avg", "exp_avg_sq"},
      ASGD = {"ax", "eta", "mu"}, Rprop = {"prev", "step_size"},
    }
    for _, c in ipairs(ENGINE_STEPS) do
      local w, b = parameters("float64")
      local opt = nn.optim[c[1]]({w, b}, c[2])
      opt:step()
      opt:step()
      local st = opt.state[1][1]
      local keys = {}
      for k, v in pairs(st) do
        if k ~= "step" then
          keys[#keys + 1] = k
          assert(nn.is_tensor(v) or type(v) == "number", c[1] .. " " .. k)
        end
      end
      table.sort(keys)
      assert.are.same(expected[c[1]], keys)
      assert.are.equal(2, st.step)
      assert.are.equal(math.type(2), math.type(st.step))
    end
  end)

  it("names the optimizer and the buffer when a state buffer does not match its parameter", function()
    local buffer = {Adadelta = "square_avg", Adamax = "exp_avg", NAdam = "exp_avg", RAdam = "exp_avg_sq",
                    ASGD = "ax", Rprop = "step_size"}
    for _, c in ipairs(ENGINE_STEPS) do
      local p = nn.zeros(3):requires_grad_(true)
      p.grad = nn.ones(3)
      local opt = nn.optim[c[1]]({p}, c[2])
      opt:step()
      opt.state[1][1][buffer[c[1]]] = nn.zeros(2)
      support.expect_error(function() opt:step() end, string.format(
        "%s: the %s buffer (2 float32) does not match its parameter (3 float32)", c[1]:lower(), buffer[c[1]]))
      assert.are.equal(1, opt.state[1][1].step)
    end
  end)
end)

describe("LBFGS", function()
  local function rosenbrock(p) return (1 - p[1]) ^ 2 + 100 * (p[2] - p[1] ^ 2) ^ 2 end
  for _, case in ipairs(reference.lbfgs) do
    it("follows PyTorch on the Rosenbrock function: " .. case.name, function()
      local p = nn.tensor({-1.5, 2.0}, {dtype = "float64"}):requires_grad_(true)
      local opt = nn.optim.LBFGS({p}, case.options)
      local function closure()
        opt:zero_grad()
        local loss = rosenbrock(p)
        loss:backward()
        return loss
      end
      for step, expected in ipairs(case.steps) do
        local loss = opt:step(closure)
        assert_close({case.losses[step]}, {loss:item()}, "float64", "loss " .. step)
        assert_close(expected, p, "float64", case.name .. " step " .. step)
      end
      assert.are.equal(case.func_evals, opt.state[1][1].func_evals)
      assert.are.equal(case.n_iter, opt.state[1][1].n_iter)
    end)
  end
  it("refuses a missing closure, parameter groups and unknown line searches", function()
    local p = nn.zeros(2):requires_grad_(true)
    support.expect_error(function() nn.optim.LBFGS({p}):step() end, "LBFGS: step needs a closure")
    support.expect_error(function() nn.optim.LBFGS({p}, {line_search_fn = "backtracking"}) end,
      "LBFGS: line_search_fn must be nil or 'strong_wolfe', got backtracking")
    local q = nn.zeros(2):requires_grad_(true)
    support.expect_error(function() nn.optim.LBFGS({{params = {p}}, {params = {q}}}) end,
      "LBFGS: it takes one parameter group")
  end)
end)

describe("optimizer options are checked", function()
  it("names the optimizer and the option", function()
    local p = nn.zeros(2):requires_grad_(true)
    support.expect_error(function() nn.optim.Rprop({p}, {etas = {1.5, 1.2}}) end,
      "Rprop: etas must be {etaminus, etaplus} with 0 < etaminus < 1 < etaplus, got {1.5, 1.2}")
    support.expect_error(function() nn.optim.NAdam({p}, {betas = {1, 0.9}}) end, "NAdam: betas[1] must be a number in [0, 1)")
    support.expect_error(function() nn.optim.Adadelta({p}, {rho = 2}) end, "Adadelta: rho must be in [0, 1], got 2")
    support.expect_error(function() nn.optim.ASGD({p}, {lr = -1}) end, "ASGD: lr must be a non-negative number, got -1")
    support.expect_error(function() nn.optim.RAdam({p}, {momentum = 0.9}) end, "RAdam: unknown option 'momentum'")
  end)
end)

describe("schedulers give PyTorch's learning rates", function()
  local S = nn.optim.lr_scheduler
  local function two_groups(kind)
    local a, b = nn.zeros(2):requires_grad_(true), nn.zeros(2):requires_grad_(true)
    local groups = {{params = {a}}, {params = {b}, lr = 0.05}}
    if kind == "adam" then return nn.optim.Adam(groups, {lr = 0.1}) end
    return nn.optim.SGD(groups, {lr = 0.1, momentum = 0.9})
  end
  local make = {
    LambdaLR = function(o) return S.LambdaLR(o, {lr_lambda = function(e) return 0.9 ^ e + 0.01 * e end}) end,
    ["LambdaLR per group"] = function(o)
      return S.LambdaLR(o, {lr_lambda = {function(e) return 1 / (e + 1) end, function(e) return 0.5 ^ e end}})
    end,
    MultiplicativeLR = function(o)
      return S.MultiplicativeLR(o, {lr_lambda = function(e) return e % 2 == 1 and 0.95 or 0.8 end})
    end,
    LinearLR = function(o) return S.LinearLR(o) end,
    ["LinearLR warm"] = function(o) return S.LinearLR(o, {start_factor = 0.1, end_factor = 0.6, total_iters = 7}) end,
    ConstantLR = function(o) return S.ConstantLR(o) end,
    ["ConstantLR 0.5"] = function(o) return S.ConstantLR(o, {factor = 0.5, total_iters = 3}) end,
    PolynomialLR = function(o) return S.PolynomialLR(o) end,
    ["PolynomialLR power 2"] = function(o) return S.PolynomialLR(o, {total_iters = 8, power = 2.0}) end,
    CosineAnnealingWarmRestarts = function(o) return S.CosineAnnealingWarmRestarts(o, {T_0 = 3}) end,
    ["CosineAnnealingWarmRestarts mult"] = function(o)
      return S.CosineAnnealingWarmRestarts(o, {T_0 = 2, T_mult = 2, eta_min = 0.001})
    end,
    OneCycleLR = function(o) return S.OneCycleLR(o, {max_lr = 1.0, total_steps = 12}) end,
    ["OneCycleLR linear three_phase adam"] = function(o)
      return S.OneCycleLR(o, {max_lr = {1.0, 0.5}, epochs = 3, steps_per_epoch = 4, anneal_strategy = "linear",
        three_phase = true, pct_start = 0.25})
    end,
    CyclicLR = function(o) return S.CyclicLR(o, {base_lr = 0.01, max_lr = 0.1, step_size_up = 3}) end,
    ["CyclicLR triangular2"] = function(o)
      return S.CyclicLR(o, {base_lr = {0.01, 0.02}, max_lr = 0.1, step_size_up = 2, step_size_down = 3,
        mode = "triangular2"})
    end,
    ["CyclicLR exp_range"] = function(o)
      return S.CyclicLR(o, {base_lr = 0.01, max_lr = 0.1, step_size_up = 2, mode = "exp_range", gamma = 0.9,
        cycle_momentum = false})
    end,
    SequentialLR = function(o)
      return S.SequentialLR(o, {schedulers = {S.LinearLR(o, {start_factor = 0.2, total_iters = 3}),
        S.ExponentialLR(o, {gamma = 0.8})}, milestones = {4}})
    end,
    ["SequentialLR three"] = function(o)
      return S.SequentialLR(o, {schedulers = {S.ConstantLR(o, {factor = 0.5, total_iters = 2}),
        S.StepLR(o, {step_size = 2, gamma = 0.5}), S.CosineAnnealingLR(o, {T_max = 4})}, milestones = {3, 7}})
    end,
    ChainedScheduler = function(o)
      return S.ChainedScheduler {S.ConstantLR(o, {factor = 0.5, total_iters = 3}), S.ExponentialLR(o, {gamma = 0.9})}
    end,
  }
  for _, case in ipairs(reference.schedulers) do
    it(case.name, function()
      local opt = two_groups(case.name:find("adam") and "adam" or "sgd")
      local sched = make[case.name](opt)
      local function check(k)
        for i, g in ipairs(opt.param_groups) do
          assert_close({case.lrs[k][i]}, {g.lr}, "float64", string.format("%s step %d group %d lr", case.name, k - 1, i))
          local m = g.betas and g.betas[1] or g.momentum
          assert_close({case.momenta[k][i]}, {m}, "float64", string.format("%s step %d group %d momentum", case.name, k - 1, i))
        end
      end
      check(1)
      for k = 2, #case.lrs do
        opt:step()
        sched:step()
        check(k)
      end
    end)
  end
  it("checks its options", function()
    local opt = two_groups()
    support.expect_error(function() S.OneCycleLR(opt, {max_lr = 0.1}) end,
      "OneCycleLR: give total_steps, or epochs and steps_per_epoch")
    support.expect_error(function() S.LinearLR(opt, {start_factor = 0}) end,
      "LinearLR: start_factor must be a number in (0, 1], got 0")
    support.expect_error(function() S.CyclicLR(opt, {base_lr = 0.1, max_lr = 1, mode = "sine"}) end,
      "CyclicLR: mode must be \"triangular\", \"triangular2\" or \"exp_range\"")
    support.expect_error(function() S.SequentialLR(opt, {schedulers = {S.ConstantLR(opt)}, milestones = {2}}) end,
      "SequentialLR: 1 schedulers need 0 milestones, got 1")
    support.expect_error(function() S.LambdaLR(opt, {lr_lambda = 3}) end, "LambdaLR: lr_lambda must be a function")
    local s = S.OneCycleLR(opt, {max_lr = 0.1, total_steps = 2})
    s:step()
    s:step() -- PyTorch allows steps 0..total_steps
    support.expect_error(function() s:step() end, "OneCycleLR: tried to step 3 times; total_steps is 2")
  end)
end)

describe("nn.utils.parameters_to_vector and vector_to_parameters", function()
  it("flatten the parameters in order and copy a vector back", function()
    local model = nn.Sequential(nn.Linear(2, 3), nn.Linear(3, 1))
    local v = nn.utils.parameters_to_vector(model:parameters())
    assert.are.same({13}, v:size())
    local expected = {}
    for _, p in ipairs(model:parameters()) do for _, x in ipairs(flat(p)) do expected[#expected + 1] = x end end
    assert.are.same(expected, flat(v))
    nn.utils.vector_to_parameters(nn.arange(13):float(), model)
    assert.are.same({0, 1, 2, 3, 4, 5}, flat(model[1].weight))
    assert.are.same({12}, flat(model[2].bias))
    support.expect_error(function() nn.utils.vector_to_parameters(nn.zeros(12), model) end,
      "vector_to_parameters: vec has 12 elements, the parameters 13")
  end)
end)

describe("nn.init draws PyTorch's numbers", function()
  local init = nn.init
  -- the calls of gen_optim_extras.py's init_cases, in its order
  local calls = {
    function(t) return init.orthogonal_(t) end,
    function(t) return init.orthogonal_(t, 2.0) end,
    function(t) return init.orthogonal_(t) end,
    function(t) return init.trunc_normal_(t) end,
    function(t) return init.trunc_normal_(t, 1.0, 0.5, 0.0, 1.5) end,
    function(t) return init.sparse_(t, 0.5) end,
    function(t) return init.sparse_(t, 0.2, 1.0) end,
    function(t) return init.dirac_(t, 2) end,
    function(t) return init.dirac_(t) end,
    function(t) return init.eye_(t) end,
  }
  for _, case in ipairs(reference.init) do
    it(string.format("%s %s %s", case.name, table.concat(case.size, "x"), case.dtype), function()
      nn.manual_seed(case.seed)
      local t = nn.empty(case.size, {dtype = case.dtype})
      assert.are.equal(t, calls[case.index](t))
      -- orthogonal_'s QR runs in float64 here, in float32 in LAPACK for float32
      assert_close(case.values, t, case.dtype, case.name, case.dtype == "float32" and 2e-5 or 1e-12)
    end)
  end
  it("orthogonal_ gives orthonormal rows or columns", function()
    local w = init.orthogonal_(nn.empty(6, 4, {dtype = "float64"}))
    assert.is_true(nn.allclose(w:t():matmul(w), nn.eye(4, {dtype = "float64"}), 1e-12, 1e-12))
  end)
  it("refuses what PyTorch refuses", function()
    support.expect_error(function() init.orthogonal_(nn.empty(3)) end,
      "orthogonal_: only tensors with 2 or more dimensions are supported")
    support.expect_error(function() init.eye_(nn.empty(2, 2, 2)) end, "eye_: only 2-dimensional tensors are supported")
    support.expect_error(function() init.dirac_(nn.empty(3, 2, 3), 2) end, "dirac_: dim 1 (3) must be divisible by groups (2)")
    support.expect_error(function() init.sparse_(nn.empty(3, 2), 1.5) end, "sparse_: sparsity must be in [0, 1], got 1.5")
    support.expect_error(function() init.trunc_normal_(nn.empty(3), 0, 1, 2, 1) end, "trunc_normal_: a (2) must be below b (1)")
  end)
end)

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

local function assert_close(expected, t, dtype, what)
  local got = nn.is_tensor(t) and flat(t) or t
  assert.are.equal(#expected, #got, what .. ": number of elements")
  for i = 1, #expected do
    local e, a = expected[i], got[i]
    assert(math.abs(a - e) <= RTOL[dtype] * (math.abs(e) + 1e-3),
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

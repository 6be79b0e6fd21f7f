-- Optimizers, learning-rate schedulers and gradient clipping against
-- PyTorch 1.13 (tests/fixtures/optim_reference.lua, written by
-- tests/fixtures/gen_optim.py), state_dict round trips, and bad options.
local nn = require "nn"
local support = dofile((os.getenv("NN_ROOT") or ".") .. "/tests/lua/support.lua")
local flat = support.flat
local expect_error = support.expect_error

local root = os.getenv("NN_ROOT") or "."
local ref = dofile(root .. "/tests/fixtures/optim_reference.lua")

local TOL = {float32 = 1e-5, float64 = 1e-10}


-- |expected - actual| <= tol * max(1, |expected|)
local function assert_close(expected, actual, tol, what)
  assert(math.abs(expected - actual) <= tol * math.max(1, math.abs(expected)),
    string.format("%s: expected %.17g, got %.17g", what or "value", expected, actual))
end

local function assert_list(expected, got, tol, what)
  assert.are.equal(#expected, #got, (what or "list") .. ": number of elements")
  for i = 1, #expected do assert_close(expected[i], got[i], tol, string.format("%s[%d]", what or "element", i)) end
end


-- Nested rows from a flat list.
local function rows(list, ncol)
  local out = {}
  for i = 1, #list, ncol do
    local row = {}
    for j = 0, ncol - 1 do row[#row + 1] = list[i + j] end
    out[#out + 1] = row
  end
  return out
end

---------------------------------------------------------------------------
-- The fixed least-squares problem of the fixture.
local function problem(dtype)
  local P = ref.problem
  return {
    X = nn.tensor(rows(P.X, 4), {dtype = dtype}),
    Y = nn.tensor(rows(P.Y, 3), {dtype = dtype}),
    W = nn.Parameter(nn.tensor(rows(P.W, 4), {dtype = dtype})),
    b = nn.Parameter(nn.tensor(P.b, {dtype = dtype})),
  }
end

local function loss_of(pr)
  return ((pr.X:matmul(pr.W:t()) + pr.b - pr.Y) ^ 2):mean()
end

local function make_optimizer(case, pr)
  local params
  if case.groups then
    params = {}
    for i, g in ipairs(case.groups) do
      local group = {}
      for k, v in pairs(g) do group[k] = v end
      group.params = {}
      for j, name in ipairs(g.params) do group.params[j] = pr[name] end
      params[i] = group
    end
  else
    params = {pr.W, pr.b}
  end
  return nn.optim[case.optimizer](params, case.options)
end

-- steps of opt on pr; returns the loss before each step
local function train(case, pr, opt, steps)
  local losses = {}
  for k = 1, steps do
    opt:zero_grad()
    local loss = loss_of(pr)
    losses[k] = loss:item()
    local objective = case.options.maximize and -loss or loss
    objective:backward()
    opt:step()
  end
  return losses
end

local function case_named(name)
  for _, case in ipairs(ref.optimizers) do if case.name == name then return case end end
  error("no fixture case " .. name)
end

describe("optimizers against PyTorch 1.13, 20 steps of least squares", function()
  for _, case in ipairs(ref.optimizers) do
    for _, dtype in ipairs({"float32", "float64"}) do
      it(case.name .. " (" .. dtype .. ")", function()
        local expected, tol = case[dtype], TOL[dtype]
        local pr = problem(dtype)
        local opt = make_optimizer(case, pr)
        local losses = train(case, pr, opt, ref.steps)
        assert_list(expected.losses, losses, tol, "loss")
        assert_list(expected.W, flat(pr.W), tol, "W")
        assert_list(expected.b, flat(pr.b), tol, "b")
        -- the state of W (first parameter of the first group), under PyTorch's names
        local state = opt.state[1][1] or {} -- SGD without momentum keeps none
        for key, value in pairs(expected.state_W) do
          if key == "step" then
            assert.are.equal(value, state.step)
          else
            assert.is_truthy(state[key], "state has no " .. key)
            assert_list(value, flat(state[key]), tol, key)
          end
        end
        for key, value in pairs(state) do
          if nn.is_tensor(value) then assert.is_truthy(expected.state_W[key], "unexpected state " .. key) end
        end
      end)
    end
  end
end)

---------------------------------------------------------------------------
describe("optimizer state_dict / load_state_dict", function()
  local round_trip_cases = {
    "sgd nesterov weight_decay", "sgd momentum groups", "adam betas eps amsgrad weight_decay maximize",
    "adam groups", "adamw weight_decay amsgrad", "rmsprop all", "adagrad lr_decay",
    "adagrad weight_decay initial_accumulator_value",
  }
  for _, name in ipairs(round_trip_cases) do
    for _, dtype in ipairs({"float32", "float64"}) do
      it("a restored optimizer continues exactly: " .. name .. " (" .. dtype .. ")", function()
        local case = case_named(name)
        local pr = problem(dtype)
        local opt = make_optimizer(case, pr)
        train(case, pr, opt, 10)
        local sd = opt:state_dict()
        -- a second problem at the same point, with an optimizer made with other options
        local pr2 = problem(dtype)
        nn.no_grad(function()
          pr2.W:copy_(pr.W)
          pr2.b:copy_(pr.b)
        end)
        local other = {}
        for k, v in pairs(case) do other[k] = v end
        other.options = {lr = 0.5}
        local opt2 = make_optimizer(other, pr2)
        opt2:load_state_dict(sd)
        for i, g in ipairs(opt.param_groups) do
          for k, v in pairs(g) do
            if k ~= "params" then assert.are.same(v, opt2.param_groups[i][k], "param_groups[" .. i .. "]." .. k) end
          end
        end
        train(case, pr, opt, 10)
        train(case, pr2, opt2, 10)
        assert.are.same(flat(pr.W), flat(pr2.W))
        assert.are.same(flat(pr.b), flat(pr2.b))
        -- and both agree with PyTorch's 20 steps
        assert_list(case[dtype].W, flat(pr2.W), TOL[dtype], "W")
        assert_list(case[dtype].b, flat(pr2.b), TOL[dtype], "b")
      end)
    end
  end

  it("holds hyperparameters, parameter positions, step counts and copies of the buffers", function()
    local case = case_named("adam amsgrad")
    local pr = problem("float64")
    local opt = make_optimizer(case, pr)
    train(case, pr, opt, 3)
    local sd = opt:state_dict()
    assert.are.equal(0.05, sd.param_groups[1].lr)
    assert.are.same({0.9, 0.999}, sd.param_groups[1].betas)
    assert.are.equal(true, sd.param_groups[1].amsgrad)
    assert.are.same({1, 2}, sd.param_groups[1].params)
    assert.are.equal(3, sd.state[1][1].step)
    assert.are.equal(3, sd.state[1][2].step)
    local saved = flat(sd.state[1][1].exp_avg)
    assert.are.same(saved, flat(opt.state[1][1].exp_avg))
    train(case, pr, opt, 1)
    assert.are.same(saved, flat(sd.state[1][1].exp_avg)) -- a snapshot
    assert.are_not.same(saved, flat(opt.state[1][1].exp_avg))
    -- changing the state_dict's betas does not change the optimizer
    sd.param_groups[1].betas[1] = 0.5
    assert.are.equal(0.9, opt.param_groups[1].betas[1])
  end)

  it("a loaded state is a copy: later steps do not change the state_dict", function()
    local case = case_named("rmsprop all")
    local pr = problem("float64")
    local opt = make_optimizer(case, pr)
    train(case, pr, opt, 2)
    local sd = opt:state_dict()
    local saved = flat(sd.state[1][1].square_avg)
    local opt2 = make_optimizer(case, problem("float64"))
    opt2:load_state_dict(sd)
    opt2.state[1][1].square_avg:mul_(2)
    assert.are.same(saved, flat(sd.state[1][1].square_avg))
  end)

  it("converts buffers to the parameters' dtype", function()
    local case = case_named("adam defaults")
    local pr32 = problem("float32")
    local opt32 = make_optimizer(case, pr32)
    train(case, pr32, opt32, 2)
    local opt64 = make_optimizer(case, problem("float64"))
    opt64:load_state_dict(opt32:state_dict())
    assert.are.equal("float64", opt64.state[1][1].exp_avg.dtype)
  end)

  it("refuses a state of another shape, another number of groups or parameters, or bad options", function()
    local case = case_named("adam defaults")
    local pr = problem("float64")
    local opt = make_optimizer(case, pr)
    train(case, pr, opt, 1)
    local sd = opt:state_dict()
    local swapped = nn.optim.Adam({pr.b, pr.W})
    expect_error(function() swapped:load_state_dict(sd) end, "Adam", "load_state_dict", "3x4")
    local one = nn.optim.Adam({pr.W})
    expect_error(function() one:load_state_dict(sd) end, "Adam", "load_state_dict", "parameters")
    local two = nn.optim.Adam({{params = {pr.W}}, {params = {pr.b}}})
    expect_error(function() two:load_state_dict(sd) end, "Adam", "load_state_dict", "parameter groups")
    sd.param_groups[1].lr = -1
    expect_error(function() opt:load_state_dict(sd) end, "Adam", "lr")
    assert.are.equal(1e-3, opt.param_groups[1].lr) -- nothing changed
    expect_error(function() opt:load_state_dict("x") end, "Adam", "load_state_dict")
  end)

  it("SGD's state is the momentum buffer itself, and a saved one loads", function()
    local case = case_named("sgd momentum")
    local pr = problem("float64")
    local opt = make_optimizer(case, pr)
    train(case, pr, opt, 2)
    local sd = opt:state_dict()
    assert.is_true(nn.is_tensor(sd.state[1][1]))
    assert.are.same(flat(opt.state[1][1].momentum_buffer), flat(sd.state[1][1]))
    local opt2 = make_optimizer(case, problem("float64"))
    opt2:load_state_dict(sd)
    assert.are.same(flat(sd.state[1][2]), flat(opt2.state[1][2].momentum_buffer))
  end)
end)

---------------------------------------------------------------------------
describe("parameter groups", function()
  it("each group keeps its own options, the rest from the constructor", function()
    local pr = problem("float64")
    local opt = nn.optim.Adam({{params = {pr.W}}, {params = pr.b, lr = 0.5, amsgrad = true}}, {lr = 0.01})
    assert.are.equal(0.01, opt.param_groups[1].lr)
    assert.are.equal(false, opt.param_groups[1].amsgrad)
    assert.are.equal(0.5, opt.param_groups[2].lr)
    assert.are.equal(true, opt.param_groups[2].amsgrad)
    assert.are.same({0.9, 0.999}, opt.param_groups[2].betas)
    assert.are.equal(1e-8, opt.param_groups[2].eps)
  end)

  it("a changed param_groups[i].lr takes effect at the next step", function()
    local pr = problem("float64")
    local opt = nn.optim.SGD({{params = {pr.W}}, {params = {pr.b}}}, {lr = 0.1})
    opt.param_groups[2].lr = 0
    local before_b, before_W = flat(pr.b), flat(pr.W)
    loss_of(pr):backward()
    opt:step()
    assert.are.same(before_b, flat(pr.b))
    assert.are_not.same(before_W, flat(pr.W))
  end)

  it("add_param_group adds a group; a parameter may not be in two", function()
    local pr = problem("float64")
    local opt = nn.optim.RMSprop({pr.W}, {lr = 0.01})
    opt:add_param_group({params = {pr.b}, momentum = 0.9})
    assert.are.equal(2, #opt.param_groups)
    assert.are.equal(0.9, opt.param_groups[2].momentum)
    assert.are.equal(0.01, opt.param_groups[2].lr)
    expect_error(function() opt:add_param_group({params = {pr.W}}) end, "RMSprop", "more than one parameter group")
    expect_error(function() opt:add_param_group({pr.b}) end, "RMSprop", "parameter group")
    expect_error(function() nn.optim.Adam({pr.W, pr.W}) end, "Adam", "params[2]", "twice")
    expect_error(function() opt:add_param_group({params = {nn.Parameter(nn.zeros(2))}, lr = -1}) end, "RMSprop", "lr")
  end)

  it("a parameter without a gradient is skipped and gets no state", function()
    local pr = problem("float64")
    local unused = nn.Parameter(nn.ones(3, {dtype = "float64"}))
    for _, name in ipairs({"SGD", "Adam", "AdamW", "RMSprop", "Adagrad"}) do
      local opt = nn.optim[name]({pr.W, unused}, {lr = 0.1})
      loss_of(pr):backward()
      opt:step()
      assert.is_nil(opt.state[1][2], name)
      assert.are.same({1, 1, 1}, unused:totable(), name)
      opt:zero_grad()
    end
  end)

  it("takes a module, and step(closure) returns the closure's loss", function()
    nn.manual_seed(3)
    local model = nn.Linear(4, 3):double()
    local pr = problem("float64")
    local opt = nn.optim.AdamW(model, {lr = 0.01})
    assert.are.equal(2, #opt.param_groups[1].params)
    local loss = opt:step(function()
      opt:zero_grad()
      local l = ((model(pr.X) - pr.Y) ^ 2):mean()
      l:backward()
      return l
    end)
    assert.is_true(nn.is_tensor(loss))
    assert.are.equal(1, opt.state[1][1].step)
  end)

  it("print(opt) shows the optimizer and its groups", function()
    local pr = problem("float32")
    local s = tostring(nn.optim.Adagrad({pr.W}, {lr = 0.1}))
    assert.is_truthy(s:find("Adagrad", 1, true))
    assert.is_truthy(s:find("lr_decay: 0", 1, true))
  end)

  it("works on float32 parameters with a float32 fast path as well as float64", function()
    -- a large parameter: every element is updated, in both dtypes alike
    for _, dtype in ipairs({"float32", "float64"}) do
      local p = nn.Parameter(nn.ones(1000, {dtype = dtype}))
      local opt = nn.optim.Adam({p}, {lr = 0.1})
      local l = (p * p):sum()
      l:backward()
      opt:step()
      -- the first Adam step moves every element by lr g / (|g| + eps), g = 2
      for _, v in ipairs(flat(p)) do assert_close(1 - 0.1 * 2 / (2 + 1e-8), v, TOL[dtype]) end
    end
  end)
end)

---------------------------------------------------------------------------
describe("learning-rate schedulers against PyTorch 1.13", function()
  local function make(case)
    local w1 = nn.Parameter(nn.zeros(2))
    local w2 = nn.Parameter(nn.zeros(2))
    local opt = nn.optim.SGD({{params = {w1}, lr = ref.scheduler_lrs[1]}, {params = {w2}, lr = ref.scheduler_lrs[2]}},
      {lr = ref.scheduler_lrs[1]})
    return opt, nn.optim.lr_scheduler[case.scheduler](opt, case.options)
  end

  local function step(case, sched, k)
    if case.metrics then sched:step(case.metrics[k]) else sched:step() end
  end

  local function describe_case(case)
    local parts = {}
    for k, v in pairs(case.options) do
      if type(v) == "table" then v = "{" .. table.concat(v, ",") .. "}" end
      parts[#parts + 1] = k .. "=" .. tostring(v)
    end
    table.sort(parts)
    return case.scheduler .. "{" .. table.concat(parts, ", ") .. "}"
  end

  for _, case in ipairs(ref.schedulers) do
    it(describe_case(case) .. " over " .. ref.scheduler_steps .. " steps", function()
      local opt, sched = make(case)
      assert_list(case.lrs[1], sched:get_last_lr(), 1e-15, "lr at step 0")
      for k = 1, ref.scheduler_steps do
        opt:step()
        step(case, sched, k)
        assert_list(case.lrs[k + 1], sched:get_last_lr(), 1e-15, "lr at step " .. k)
        assert_close(case.lrs[k + 1][1], opt.param_groups[1].lr, 1e-15, "param_groups[1].lr")
        assert_close(case.lrs[k + 1][2], opt.param_groups[2].lr, 1e-15, "param_groups[2].lr")
      end
    end)

    it(describe_case(case) .. ": state_dict round trip continues identically", function()
      local opt, sched = make(case)
      for k = 1, 12 do step(case, sched, k) end
      local opt_sd, sched_sd = opt:state_dict(), sched:state_dict()
      local opt2, sched2 = make(case)
      opt2:load_state_dict(opt_sd)
      sched2:load_state_dict(sched_sd)
      for k = 13, ref.scheduler_steps do
        step(case, sched, k)
        step(case, sched2, k)
        assert.are.same(sched:get_last_lr(), sched2:get_last_lr())
        assert_list(case.lrs[k + 1], sched2:get_last_lr(), 1e-15, "lr at step " .. k)
      end
    end)
  end

  it("a scheduler sets initial_lr in each group and get_last_lr returns a copy", function()
    local p = nn.Parameter(nn.zeros(1))
    local opt = nn.optim.Adam({p}, {lr = 0.2})
    local sched = nn.optim.lr_scheduler.ExponentialLR(opt, {gamma = 0.5})
    assert.are.equal(0.2, opt.param_groups[1].initial_lr)
    local lrs = sched:get_last_lr()
    lrs[1] = 7
    assert.are.equal(0.2, sched:get_last_lr()[1])
    sched:step()
    assert.are.equal(0.1, opt.param_groups[1].lr)
    assert.is_truthy(tostring(sched):find("ExponentialLR", 1, true))
  end)

  it("ReduceLROnPlateau takes a one-element tensor as the metric", function()
    local p = nn.Parameter(nn.zeros(1))
    local opt = nn.optim.SGD({p}, {lr = 1})
    local sched = nn.optim.lr_scheduler.ReduceLROnPlateau(opt, {patience = 0, factor = 0.5})
    sched:step(nn.tensor(1.0))
    sched:step(nn.tensor({1.0}))
    assert.are.equal(0.5, opt.param_groups[1].lr)
    assert.are.same({0.5}, sched:get_last_lr())
  end)
end)

---------------------------------------------------------------------------
describe("gradient clipping against PyTorch 1.13", function()
  local shapes = {{2, 3}, {4}, {1}}
  local function params(dtype)
    local list = {}
    for i, values in ipairs(ref.clip.grads) do
      local p = nn.Parameter(nn.zeros(shapes[i], {dtype = dtype}))
      local g = nn.tensor(values, {dtype = dtype})
      p.grad = #shapes[i] == 2 and g:view(2, 3) or g
      list[i] = p
    end
    list[#list + 1] = nn.Parameter(nn.zeros(2, {dtype = dtype})) -- no grad: skipped
    return list
  end

  for _, case in ipairs(ref.clip.norm) do
    for _, dtype in ipairs({"float32", "float64"}) do
      it(string.format("clip_grad_norm_(max_norm = %g, norm_type = %g) (%s)", case.max_norm, case.norm_type, dtype), function()
        local list = params(dtype)
        local total = nn.utils.clip_grad_norm_(list, case.max_norm, case.norm_type)
        assert.is_true(nn.is_tensor(total))
        assert.are.equal(dtype, total.dtype)
        assert.are.equal(0, total:dim())
        assert_close(case[dtype].total_norm, total:item(), TOL[dtype], "total norm")
        for i = 1, 3 do assert_list(case[dtype].grads[i], flat(list[i].grad), TOL[dtype], "grad " .. i) end
        assert.is_nil(list[4].grad)
      end)
    end
  end

  for _, case in ipairs(ref.clip.value) do
    for _, dtype in ipairs({"float32", "float64"}) do
      it(string.format("clip_grad_value_(%g) (%s)", case.clip_value, dtype), function()
        local list = params(dtype)
        nn.utils.clip_grad_value_(list, case.clip_value)
        for i = 1, 3 do assert_list(case[dtype].grads[i], flat(list[i].grad), TOL[dtype], "grad " .. i) end
      end)
    end
  end

  it("takes a module or a tensor, and 'inf' for the norm", function()
    local model = nn.Linear(2, 2):double()
    model(nn.ones(3, 2, {dtype = "float64"})):sum():backward()
    local largest = 0
    for _, p in ipairs(model:parameters()) do
      for _, v in ipairs(flat(p.grad)) do largest = math.max(largest, math.abs(v)) end
    end
    local total = nn.utils.clip_grad_norm_(model, 1, "inf")
    assert_close(largest, total:item(), 1e-15)
    for _, p in ipairs(model:parameters()) do
      for _, v in ipairs(flat(p.grad)) do assert.is_true(math.abs(v) <= 1 + 1e-9) end
    end
    local p = nn.Parameter(nn.zeros(3))
    p.grad = nn.tensor({3, -4, 0})
    assert_close(5, nn.utils.clip_grad_norm_(p, 10):item(), 1e-7)
    nn.utils.clip_grad_value_(p, 1)
    assert.are.same({1, -1, 0}, p.grad:totable())
    -- nothing with a gradient: a norm of 0, as PyTorch
    assert.are.equal(0, nn.utils.clip_grad_norm_({nn.Parameter(nn.zeros(2))}, 1):item())
  end)

  it("error_if_nonfinite refuses a non-finite total norm", function()
    local p = nn.Parameter(nn.zeros(2))
    p.grad = nn.tensor({1 / 0, 1})
    expect_error(function() nn.utils.clip_grad_norm_(p, 1, 2, true) end, "clip_grad_norm_", "non-finite")
    assert.are.same({1 / 0, 1}, p.grad:totable()) -- untouched
  end)

  it("refuses bad arguments", function()
    local p = nn.Parameter(nn.zeros(2))
    p.grad = nn.ones(2)
    expect_error(function() nn.utils.clip_grad_norm_(p, -1) end, "clip_grad_norm_", "max_norm", "-1")
    expect_error(function() nn.utils.clip_grad_norm_(p, "a") end, "clip_grad_norm_", "max_norm")
    expect_error(function() nn.utils.clip_grad_norm_(p, 1, 0) end, "clip_grad_norm_", "norm_type")
    expect_error(function() nn.utils.clip_grad_norm_(p, 1, "l2") end, "clip_grad_norm_", "norm_type", "l2")
    expect_error(function() nn.utils.clip_grad_norm_({p, 3}, 1) end, "clip_grad_norm_", "params[2]")
    expect_error(function() nn.utils.clip_grad_norm_(5, 1) end, "clip_grad_norm_", "params")
    expect_error(function() nn.utils.clip_grad_value_(p, -0.5) end, "clip_grad_value_", "clip_value")
    expect_error(function() nn.utils.clip_grad_value_(p) end, "clip_grad_value_", "clip_value")
  end)
end)

---------------------------------------------------------------------------
describe("bad hyperparameters raise clear errors", function()
  local function params() return {nn.Parameter(nn.zeros(2))} end

  local cases = {
    {"SGD", {lr = "abc"}, "lr", "abc"},
    {"SGD", {lr = -0.1}, "lr", "-0.1"},
    {"SGD", {lr = 0 / 0}, "lr"},
    {"SGD", {lr = 0.1, momentum = -1}, "momentum"},
    {"SGD", {lr = 0.1, weight_decay = -1}, "weight_decay"},
    {"SGD", {lr = 0.1, nesterov = true}, "nesterov"},
    {"SGD", {lr = 0.1, momentum = 0.9, dampening = 0.1, nesterov = true}, "nesterov"},
    {"SGD", {lr = 0.1, nesterov = "yes"}, "nesterov", "boolean"},
    {"SGD", {}, "lr", "required"},
    {"Adam", {lr = "fast"}, "lr", "fast"},
    {"Adam", {lr = -1}, "lr"},
    {"Adam", {betas = {1, 0.999}}, "betas[1]", "[0, 1)"},
    {"Adam", {betas = {0.9, 1.5}}, "betas[2]", "1.5"},
    {"Adam", {betas = {-0.1, 0.9}}, "betas[1]"},
    {"Adam", {betas = 0.9}, "betas"},
    {"Adam", {betas = {0.9}}, "betas"},
    {"Adam", {eps = -1e-8}, "eps"},
    {"Adam", {weight_decay = -0.1}, "weight_decay"},
    {"Adam", {amsgrad = 1}, "amsgrad", "boolean"},
    {"Adam", {beta1 = 0.9}, "unknown option", "beta1"},
    {"AdamW", {lr = {}}, "lr"},
    {"AdamW", {betas = {0.9, 1}}, "betas[2]"},
    {"AdamW", {weight_decay = -1}, "weight_decay"},
    {"RMSprop", {alpha = -0.5}, "alpha"},
    {"RMSprop", {eps = -1}, "eps"},
    {"RMSprop", {momentum = -0.9}, "momentum"},
    {"RMSprop", {weight_decay = -1}, "weight_decay"},
    {"RMSprop", {centered = "no"}, "centered"},
    {"RMSprop", {lr = -0.01}, "lr"},
    {"Adagrad", {lr_decay = -1}, "lr_decay"},
    {"Adagrad", {initial_accumulator_value = -1}, "initial_accumulator_value"},
    {"Adagrad", {eps = -1}, "eps"},
    {"Adagrad", {weight_decay = -1}, "weight_decay"},
    {"Adagrad", {maximize = "true"}, "maximize"},
  }
  for _, case in ipairs(cases) do
    local name, opts = case[1], case[2]
    local keys = {}
    for k, v in pairs(opts) do keys[#keys + 1] = k .. "=" .. tostring(v) end
    it(name .. " {" .. table.concat(keys, ", ") .. "}", function()
      expect_error(function() return nn.optim[name](params(), opts) end, name, table.unpack(case, 3))
    end)
  end

  it("params that are not a list of leaf tensors that require grad", function()
    expect_error(function() nn.optim.Adam({}) end, "Adam", "params")
    expect_error(function() nn.optim.Adam({1}) end, "Adam", "params[1]")
    expect_error(function() nn.optim.Adam({nn.zeros(2)}) end, "Adam", "params[1]", "require grad")
    local p = nn.Parameter(nn.zeros(2))
    expect_error(function() nn.optim.Adam({p * 2}) end, "Adam", "params[1]", "leaf")
    expect_error(function() nn.optim.Adam({p}, 0.1) end, "Adam", "options")
    expect_error(function() nn.optim.Adam({p}):step(3) end, "Adam", "closure")
  end)

  it("errors point at the caller's line", function()
    local err = expect_error(function() nn.optim.Adam(params(), {lr = -1}) end, "Adam")
    assert.is_truthy(err:find("optim_spec.lua", 1, true), err)
  end)

  it("schedulers check their options", function()
    local opt = nn.optim.SGD(params(), {lr = 0.1})
    local S = nn.optim.lr_scheduler
    expect_error(function() S.StepLR(opt, {}) end, "StepLR", "step_size", "required")
    expect_error(function() S.StepLR(opt, {step_size = 0}) end, "StepLR", "step_size")
    expect_error(function() S.StepLR(opt, {step_size = 2.5}) end, "StepLR", "step_size", "2.5")
    expect_error(function() S.StepLR(opt, {step_size = 2, gamma = "x"}) end, "StepLR", "gamma")
    expect_error(function() S.StepLR(opt, {step_size = 2, gama = 0.5}) end, "StepLR", "unknown option", "gama")
    expect_error(function() S.StepLR({}, {step_size = 2}) end, "StepLR", "optimizer")
    expect_error(function() S.StepLR(opt, {step_size = 2}):step(3) end, "StepLR", "step()")
    expect_error(function() S.MultiStepLR(opt, {milestones = 5}) end, "MultiStepLR", "milestones")
    expect_error(function() S.MultiStepLR(opt, {milestones = {1.5}}) end, "MultiStepLR", "milestones")
    expect_error(function() S.ExponentialLR(opt, {}) end, "ExponentialLR", "gamma", "required")
    expect_error(function() S.CosineAnnealingLR(opt, {T_max = 0}) end, "CosineAnnealingLR", "T_max")
    expect_error(function() S.CosineAnnealingLR(opt, {T_max = 10, eta_min = "0"}) end, "CosineAnnealingLR", "eta_min")
    local R = S.ReduceLROnPlateau
    expect_error(function() R(opt, {factor = 1}) end, "ReduceLROnPlateau", "factor")
    expect_error(function() R(opt, {mode = "lowest"}) end, "ReduceLROnPlateau", "mode", "lowest")
    expect_error(function() R(opt, {threshold_mode = "pct"}) end, "ReduceLROnPlateau", "threshold_mode", "pct")
    expect_error(function() R(opt, {patience = -1}) end, "ReduceLROnPlateau", "patience")
    expect_error(function() R(opt, {cooldown = 0.5}) end, "ReduceLROnPlateau", "cooldown")
    expect_error(function() R(opt, {min_lr = {0.1, 0.2}}) end, "ReduceLROnPlateau", "min_lr", "2 values")
    expect_error(function() R(opt, {min_lr = -1}) end, "ReduceLROnPlateau", "min_lr")
    expect_error(function() R(opt, {eps = -1}) end, "ReduceLROnPlateau", "eps")
    expect_error(function() R(opt):step("low") end, "ReduceLROnPlateau", "metric")
    expect_error(function() R(opt):step(nn.ones(2)) end, "ReduceLROnPlateau", "metric", "2 elements")
    expect_error(function() S.StepLR(opt, {step_size = 2}):load_state_dict({step_size = -1}) end, "StepLR", "step_size")
  end)

  it("the engine refuses a gradient it cannot use, and the state stays as it was", function()
    local p = nn.Parameter(nn.zeros(2, 3))
    p.grad = nn.ones(3, 2):t()
    for _, name in ipairs({"SGD", "Adam", "AdamW", "RMSprop", "Adagrad"}) do
      local opt = nn.optim[name]({p}, {lr = 0.1, momentum = name == "SGD" and 0.9 or nil})
      expect_error(function() opt:step() end, name:lower(), "contiguous")
      assert.is_nil(opt.state[1][1], name)
      assert.are.same({{0, 0, 0}, {0, 0, 0}}, p:totable())
    end
  end)
end)

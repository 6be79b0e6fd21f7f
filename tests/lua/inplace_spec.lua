-- In-place ops on tensors in a graph, as PyTorch 1.13 records them: values,
-- gradients and grad_fn names against PyTorch's
-- (tests/fixtures/inplace_reference.lua, written by gen_inplace.py), a
-- finite-difference check of each op, and what is refused.
local nn = require "nn"
local root = os.getenv("NN_ROOT") or "."
local support = dofile(root .. "/tests/lua/support.lua")
local reference = dofile(root .. "/tests/fixtures/inplace_reference.lua")
local flat, expect_error = support.flat, support.expect_error

local function f64(values, requires_grad)
  return nn.tensor(values, {dtype = "float64", requires_grad = requires_grad})
end

local function assert_values(expected, t, what)
  local got = flat(t)
  assert.are.equal(#expected, #got, what .. ": number of elements")
  for i = 1, #expected do
    assert(math.abs(expected[i] - got[i]) <= 1e-12 * math.max(1, math.abs(expected[i])),
      string.format("%s[%d]: PyTorch %.17g, nnlua %.17g", what, i, expected[i], got[i]))
  end
end

-- The fixture's arguments: "w" is the operand tensor, "nil" a missing bound.
local function arguments(args, operand)
  local out = {n = #args}
  for i, a in ipairs(args) do
    if a == "w" then out[i] = operand
    elseif a ~= "nil" then out[i] = a end
  end
  return out
end

local function describe_case(case)
  local parts = {}
  for i, a in ipairs(case.args) do parts[i] = tostring(a) end
  return string.format("%s(%s)%s", case.op, table.concat(parts, ", "), case.view and " on a view" or "")
end

describe("in-place ops in a graph, against PyTorch", function()
  for _, case in ipairs(reference.cases) do
    it(describe_case(case), function()
      local x, w = f64(case.x, true), f64(reference.w, true)
      local y = x * 1
      local target = case.view and y:narrow(1, 2, 2) or y
      local operand = case.view and w:narrow(1, 2, 2) or w
      local args = arguments(case.args, operand)
      local returned = target[case.op](target, table.unpack(args, 1, args.n))
      assert.are.equal(target, returned)
      assert.are.equal(case.grad_fn, y.grad_fn)
      assert.are.equal(case.target_grad_fn, target.grad_fn)
      ;(y * f64(reference.c)):sum():backward()
      if case.y then assert_values(case.y, y, "y") end
      if case.x_grad then assert_values(case.x_grad, x.grad, "x.grad") else assert.is_nil(x.grad) end
      if case.w_grad then assert_values(case.w_grad, w.grad, "w.grad") end
    end)
  end
end)

describe("in-place ops, as PyTorch allows and refuses them", function()
  for _, b in ipairs(reference.behaviour) do
    local label = describe_case({op = b.op, args = b.args})
    it(label .. (b.expanded_ok and " writes into" or " refuses") .. " an expanded tensor", function()
      local wide = nn.zeros(3, {dtype = "float64"}):expand(2, 3)
      local args = arguments(b.args, nn.ones(2, 3, {dtype = "float64"}))
      local call = function() return wide[b.op](wide, table.unpack(args, 1, args.n)) end
      if b.expanded_ok then
        call()
      else
        expect_error(call, b.op, "more than one element of the written-to tensor")
      end
    end)
    it(label .. " refuses a leaf that requires grad", function()
      assert.is_true(b.leaf_refused)
      local x = f64({0.5, 1.25, 2.0, 0.75}, true)
      local args = arguments(b.args, f64(reference.w))
      expect_error(function() return x[b.op](x, table.unpack(args, 1, args.n)) end,
        b.op, "leaf tensor that requires grad")
      -- inside no_grad it is allowed, and the leaf stays a leaf
      nn.no_grad(function() x[b.op](x, table.unpack(args, 1, args.n)) end)
      assert.is_true(x.is_leaf and x.requires_grad)
    end)
  end
end)

-- Every in-place op with a gradient, by finite differences: into y = x * 1,
-- and into a view of it.
describe("nn.gradcheck of in-place ops (float64)", function()
  local ops = {
    {"add_", "w"}, {"sub_", "w"}, {"mul_", "w"}, {"div_", "w"}, {"pow_", "w"},
    {"maximum_", "w"}, {"minimum_", "w"},
    {"add_", 1.5}, {"sub_", 1.5}, {"mul_", -2}, {"div_", 4}, {"pow_", 3},
    {"neg_"}, {"exp_"}, {"log_"}, {"sqrt_"}, {"abs_"}, {"sigmoid_"}, {"tanh_"}, {"relu_"},
    {"step_"}, {"sin_"}, {"cos_"}, {"sign_"}, {"floor_"}, {"ceil_"}, {"round_"},
    {"clamp_", 0.8, 1.6}, {"gt_", 1}, {"le_", "w"}, {"fill_", 3}, {"zero_"}, {"copy_", "w"},
  }
  -- positive, away from the kinks of abs, relu, floor, clamp and comparisons
  local x_values, w_values = {0.55, 1.3, 2.15, 0.9}, {1.45, 0.7, 1.9, 1.05}
  for _, spec in ipairs(ops) do
    local op = spec[1]
    for _, view in ipairs({false, true}) do
      it(op .. "(" .. tostring(spec[2] or "") .. ")" .. (view and " on a view" or ""), function()
        local x, w = f64(x_values, true), f64(w_values, true)
        assert.is_true(nn.gradcheck(function(a, b)
          local y = a * 1
          local target = view and y:narrow(1, 2, 2) or y
          local operand = view and b:narrow(1, 2, 2) or b
          local args = {}
          for i = 2, #spec do args[i - 1] = spec[i] == "w" and operand or spec[i] end
          target[op](target, table.unpack(args))
          return y
        end, {x, w}))
      end)
    end
  end
end)

describe("in-place ops and the graph", function()
  it("index assignment into a tensor in a graph goes through CopySlices", function()
    local x = f64({0.5, -1, 2}, true)
    local y = x * 1
    y[2] = 7
    assert.are.equal("CopySlices", y.grad_fn)
    ;(y * y):sum():backward()
    assert.are.same({1, 0, 4}, x.grad:totable())
    local z = x * 1
    z[1] = x[3] * 3
    z:sum():backward()
    assert.are.same({1, 1, 8}, x.grad:totable())
  end)

  it("index assignment refuses a leaf that requires grad", function()
    local x = f64({0.5, -1, 2}, true)
    expect_error(function() x[1] = 3 end, "index assignment", "view of a leaf")
    nn.no_grad(function() x[1] = 3 end)
    assert.are.same({3, -1, 2}, x:totable())
  end)

  it("a view taken before the change follows its base's new history", function()
    -- PyTorch regenerates such a view's grad_fn (AsStridedBackward0)
    local x = f64({0.5, -1, 2}, true)
    local y = x * 1
    local whole, part = y:view(3), y[2]
    y:mul_(2)
    assert.are.equal("AsStridedBackward0", whole.grad_fn)
    whole:sum():backward(true)
    assert.are.same({2, 2, 2}, x.grad:totable())
    x.grad = nil
    ;(part * 1):backward()
    assert.are.same({0, 2, 0}, x.grad:totable())
  end)

  it("a tensor without a history gets one through a view", function()
    local x = f64({0.5, -1, 2}, true)
    local a = nn.zeros(3, {dtype = "float64"})
    local early = a:narrow(1, 3, 1)
    a:narrow(1, 1, 2):add_(x:narrow(1, 1, 2))
    assert.is_true(a.requires_grad)
    assert.are.equal("CopySlices", a.grad_fn)
    assert.is_true(early.requires_grad) -- as PyTorch: a view of a tensor that now requires grad
    a:sum():backward()
    assert.are.same({1, 1, 0}, x.grad:totable())
  end)

  it("a change under no_grad leaves the history as it was", function()
    local x = f64({0.5, -1, 2}, true)
    local y = x * 2
    nn.no_grad(function() y:mul_(3) end)
    assert.are.equal("MulBackward0", y.grad_fn)
    y:sum():backward()
    assert.are.same({2, 2, 2}, x.grad:totable())
  end)

  it("backward refuses a saved value changed in place, naming the op", function()
    local x = f64({0.5, -1, 2}, true)
    local s = (x * 1):sigmoid()
    s:mul_(2)
    expect_error(function() s:sum():backward() end, "SigmoidBackward0", "in-place")
    local y = x * 1
    local z = y * y
    y:add_(1)
    expect_error(function() z:sum():backward() end, "MulBackward0", "in-place")
    -- the operand of mul_ is the tensor itself: PyTorch refuses it too
    local u = x * 1
    u:mul_(u)
    expect_error(function() u:sum():backward() end, "MulBackward0", "in-place")
    -- a change through detach() shares the storage, and is caught the same way
    local v = x * 1
    local vv = v * v
    v:detach():mul_(2)
    expect_error(function() vv:sum():backward() end, "MulBackward0", "in-place")
  end)

  it("refuses a view taken under no_grad of a tensor that requires grad", function()
    local y = f64({0.5, -1, 2}, true) * 1
    local part = nn.no_grad(function() return y:narrow(1, 1, 2) end)
    expect_error(function() part:exp_() end, "exp_", "inside nn.no_grad")
  end)

  it("dropout in place works on a tensor in a graph", function()
    nn.manual_seed(7)
    local x = f64({1, 2, 3, 4, 5, 6}, true)
    local y = nn.F.dropout(x * 1, 0.5, true, true)
    y:sum():backward()
    for i, g in ipairs(x.grad:totable()) do
      assert(g == 0 or g == 2, "gradient " .. i .. " is " .. g)
      assert.are.equal(g * (i), y[i]:item())
    end
  end)
end)

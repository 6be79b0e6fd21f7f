-- The elementwise ops, activations, clamp and norm against PyTorch at the
-- inputs where engines disagree (NaN, infinities, signed zeros, ties,
-- overflow), the result dtype of every binary op for every pair of
-- operands (tests/fixtures/ops_reference.lua, written by gen_ops.py), and
-- in-place ops whose source overlaps what they write.
local nn = require "nn"
local support = dofile((os.getenv("NN_ROOT") or ".") .. "/tests/lua/support.lua")
local flat, expect_error = support.flat, support.expect_error
local F = nn.F

local root = os.getenv("NN_ROOT") or "."
local ref = dofile(root .. "/tests/fixtures/ops_reference.lua")

local INF, NAN = math.huge, 0 / 0

-- |got - expected| <= rtol |expected| + atol, NaN where NaN, infinities
-- exactly. float32's atol is its smallest normal number: the engine's
-- float32 exp flushes results below it to 0 where PyTorch keeps subnormals.
-- (PyTorch's float32 transcendental functions are a few ulp from the
-- correctly rounded ones; float32's 1e-5 is the activation spec's.)
local RTOL = {float32 = 1e-5, float64 = 1e-12}
local ATOL = {float32 = 1.1754943508222875e-38, float64 = 1e-300}
-- Where PyTorch's formula cancels and the engine's does not, looser
-- tolerances: GELU computes 1 + erf(x / sqrt 2), which cancels in the left
-- tail (to exactly 0 in float64 below -8; the engine uses erfc, see
-- activations_spec.lua), compared absolutely; softsign's float32 gradient is
-- autograd through x / (1 + |x|), two terms that cancel to 1e-5 relative
-- error at |x| = 710 (the engine computes 1 / (1 + |x|)^2).
local CANCELS = {
  gelu = {float32 = {atol = 1e-6}, float64 = {atol = 1e-13}},
  ["gelu tanh"] = {float32 = {atol = 1e-6}, float64 = {atol = 1e-13}},
  softsign = {float32 = {rtol = 1e-4}},
}

-- The deliberate differences: where PyTorch's formula computes inf - inf or
-- 0 * inf at an infinite input and gives NaN, the engine gives the
-- function's limit. Keyed by case name, then "output" or "grad", then the
-- input; every entry must be a NaN in PyTorch's values.
local LIMITS = {
  mish = {grad = {[INF] = 2}},              -- mish'(x) -> 1, times the upstream 2
  softsign = {grad = {[INF] = 0, [-INF] = 0}}, -- 1 / (1 + |x|)^2 -> 0
}

local function close(e, a, dtype, tol)
  if e ~= e then return a ~= a end
  if e == INF or e == -INF then return a == e end
  tol = tol or {}
  return math.abs(a - e) <= (tol.rtol or RTOL[dtype]) * math.abs(e) + (tol.atol or ATOL[dtype])
end

-- Compares a fixture list with a tensor; inputs label each element.
local function check(expected, got, dtype, what, inputs, limits, tol)
  if expected == "none" then
    assert(got == nil, what .. ": PyTorch has no gradient here, but one was computed")
    return
  end
  assert(got ~= nil, what .. ": no gradient was computed")
  local values = flat(got)
  assert.are.equal(#expected, #values, what .. ": number of elements")
  for i = 1, #expected do
    local e, a = expected[i], values[i]
    local limit = limits and inputs and limits[inputs[i]]
    if limit ~= nil then
      assert(e ~= e, string.format("%s: PyTorch is no longer NaN at %s", what, tostring(inputs[i])))
      e = limit
    end
    assert(close(e, a, dtype, tol), string.format("%s: element %d (input %s): expected %.17g, got %.17g",
      what, i, inputs and tostring(inputs[i]) or "?", e, a))
  end
end

local function upstream(y)
  return y:detach():clone():fill_(ref.upstream)
end

-- y = fn(x) from values, backward with the fixture's upstream gradient.
local function run(fn, values, dtype)
  local x = nn.tensor(values, {dtype = dtype, requires_grad = true})
  local y = fn(x)
  y:backward(upstream(y))
  return y, x.grad
end

local function limits_of(name, part)
  return LIMITS[name] and LIMITS[name][part]
end

describe("unary ops agree with PyTorch at NaN, infinities and zeros", function()
  for _, case in ipairs(ref.unary) do
    for _, dtype in ipairs {"float32", "float64"} do
      it(case.name .. " " .. dtype, function()
        local y, g = run(function(x) return x[case.name](x) end, ref.special, dtype)
        check(case[dtype].output, y, dtype, case.name .. " value", ref.special,
          limits_of(case.name, "output"))
        check(case[dtype].grad, g, dtype, case.name .. " gradient", ref.special,
          limits_of(case.name, "grad"))
        -- in place, on a copy that needs no grad
        local x = nn.tensor(ref.special, {dtype = dtype})
        x[case.name .. "_"](x)
        check(case[dtype].output, x, dtype, case.name .. "_ value", ref.special,
          limits_of(case.name, "output"))
      end)
    end
  end
end)

-- PyTorch 1.13's float64 hardsigmoid backward multiplies by float32's 1/6;
-- the engine uses the exact 1/6 (see activations_spec.lua).
local function expected_grad(case, dtype)
  local grad = case[dtype].grad
  if case.fn ~= "hardsigmoid" or dtype ~= "float64" then return grad end
  local exact = {}
  for i, v in ipairs(grad) do exact[i] = v == ref.upstream * 0.1666666716337204 and ref.upstream / 6 or v end
  return exact
end

describe("activations agree with PyTorch at NaN, infinities and zeros", function()
  for _, case in ipairs(ref.activations) do
    for _, dtype in ipairs {"float32", "float64"} do
      it(case.name .. " " .. dtype, function()
        local y, g = run(function(x) return F[case.fn](x, table.unpack(case.args)) end,
          ref.special, dtype)
        local tol = CANCELS[case.name] and CANCELS[case.name][dtype]
        check(case[dtype].output, y, dtype, case.name .. " value", ref.special,
          limits_of(case.name, "output"), tol)
        check(expected_grad(case, dtype), g, dtype, case.name .. " gradient", ref.special,
          limits_of(case.name, "grad"), tol)
      end)
    end
  end

  for _, case in ipairs(ref.softmax) do
    for _, dtype in ipairs {"float32", "float64"} do
      it(case.fn .. " of rows holding NaN and infinities " .. dtype, function()
        local x = nn.tensor(case.input, {dtype = dtype, requires_grad = true})
        local y = F[case.fn](x, 2)
        ;(y * nn.tensor(case.weight, {dtype = dtype})):sum():backward()
        check(case[dtype].output, y, dtype, case.fn .. " value")
        check(case[dtype].grad, x.grad, dtype, case.fn .. " gradient")
      end)
    end
  end

  for _, dtype in ipairs {"float32", "float64"} do
    it("cross_entropy of logits holding NaN and infinities " .. dtype, function()
      local case = ref.cross_entropy
      local labels = {}
      for i, t in ipairs(case.target) do labels[i] = t + 1 end
      for _, reduction in ipairs {"none", "mean"} do
        local x = nn.tensor(case.input, {dtype = dtype, requires_grad = true})
        local y = F.cross_entropy(x, nn.tensor(labels, {dtype = "int64"}), {reduction = reduction})
        y:sum():backward()
        check(case[dtype][reduction].output, y, dtype, "cross_entropy " .. reduction .. " value")
        check(case[dtype][reduction].grad, x.grad, dtype, "cross_entropy " .. reduction .. " gradient")
      end
    end)
  end
end)

describe("binary ops agree with PyTorch on every pair of special values", function()
  for _, case in ipairs(ref.binary) do
    for _, dtype in ipairs {"float32", "float64"} do
      it(case.name .. " " .. dtype, function()
        local a = nn.tensor(ref.pairs.a, {dtype = dtype, requires_grad = true})
        local b = nn.tensor(ref.pairs.b, {dtype = dtype, requires_grad = true})
        local y = a[case.name](a, b)
        y:backward(upstream(y))
        check(case[dtype].output, y, dtype, case.name .. " value")
        check(case[dtype].grad_a, a.grad, dtype, case.name .. " gradient of a")
        check(case[dtype].grad_b, b.grad, dtype, case.name .. " gradient of b")
      end)
    end
  end
end)

describe("ops with a number agree with PyTorch", function()
  local operators = {
    sub = function(s, x) return s - x end,
    div = function(s, x) return s / x end,
    pow = function(s, x) return s ^ x end,
  }
  for _, case in ipairs(ref.scalar) do
    for _, dtype in ipairs {"float32", "float64"} do
      local label = case.scalar_first and string.format("%s %s x", tostring(case.scalar), case.name)
        or string.format("x %s %s", case.name, tostring(case.scalar))
      it(label .. " " .. dtype, function()
        local fn
        if case.scalar_first then
          fn = function(x) return operators[case.name](case.scalar, x) end
        else
          fn = function(x) return x[case.name](x, case.scalar) end
        end
        local y, g = run(fn, ref.scalar_input, dtype)
        check(case[dtype].output, y, dtype, label .. " value", ref.scalar_input)
        check(case[dtype].grad, g, dtype, label .. " gradient", ref.scalar_input)
      end)
    end
  end
end)

describe("clamp agrees with PyTorch", function()
  for _, case in ipairs(ref.clamp) do
    local lo = case.min ~= "none" and case.min or nil
    local hi = case.max ~= "none" and case.max or nil
    for _, dtype in ipairs {"float32", "float64"} do
      it(string.format("clamp(%s, %s) %s", tostring(lo), tostring(hi), dtype), function()
        local y, g = run(function(x) return x:clamp(lo, hi) end, ref.clamp_input, dtype)
        check(case[dtype].output, y, dtype, "clamp value", ref.clamp_input)
        check(case[dtype].grad, g, dtype, "clamp gradient", ref.clamp_input)
        assert.are.equal("ClampBackward1", y.grad_fn)
        local x = nn.tensor(ref.clamp_input, {dtype = dtype})
        x:clamp_(lo, hi)
        check(case[dtype].output, x, dtype, "clamp_ value", ref.clamp_input)
      end)
    end
  end

  it("needs at least one bound", function()
    expect_error(function() nn.tensor({1, 2}):clamp() end, "clamp", "min", "max")
    expect_error(function() nn.tensor({1, 2}):clamp(nil, nil) end, "clamp", "min", "max")
  end)
end)

describe("norm agrees with PyTorch", function()
  for _, case in ipairs(ref.norm) do
    for _, dtype in ipairs {"float32", "float64"} do
      local label = string.format("p = %s, %s, dim %s%s %s", tostring(case.p), case.input_name,
        tostring(case.dim), case.keepdim and " keepdim" or "", dtype)
      it(label, function()
        local fn
        if case.dim == "all" then
          fn = function(x) return x:norm(case.p) end
        else
          fn = function(x) return x:norm(case.p, case.dim, case.keepdim) end
        end
        local y, g = run(fn, case.input, dtype)
        assert.are.same(case[dtype].shape, y:size())
        assert.are.equal(dtype, y.dtype)
        assert.are.equal(case.dim == "all" and ref.norm_names.all or ref.norm_names.dim, y.grad_fn)
        check(case[dtype].output, y, dtype, "value")
        check(case[dtype].grad, g, dtype, "gradient")
      end)
    end
  end

  it("takes 'inf', '-inf' and 'fro' by name", function()
    local x = nn.tensor({{3, -4}, {1, 0}})
    assert.are.equal(4, x:norm("inf"):item())
    assert.are.equal(0, x:norm("-inf"):item())
    assert.are.same(flat(x:norm(2, 2)), flat(x:norm("fro", 2)))
    assert.are.same({4, 1}, flat(x:norm("inf", 2)))
  end)

  it("is 0 over nothing, whatever p (PyTorch's value)", function()
    for _, p in ipairs {-INF, -1, 0, 0.5, 2, INF} do
      assert.are.same({0, 0, 0}, flat(nn.zeros(3, 0):norm(p, 2)), "p = " .. p)
      assert.are.equal(0, nn.zeros(0):norm(p):item(), "p = " .. p)
    end
    assert.are.same({1, 1}, nn.tensor({{1, 2}, {3, 4}}):norm(2, nil, true):size())
  end)

  it("passes gradcheck over a dimension", function()
    for _, p in ipairs {0.5, 1, 1.5, 2, 3} do
      local x = nn.tensor({{1.5, -0.7, 2.2}, {-0.3, 0.9, -1.1}}, {dtype = "float64", requires_grad = true})
      assert.is_true(nn.gradcheck(function(t) return t:norm(p, 2) end, {x}), "p = " .. p)
      assert.is_true(nn.gradcheck(function(t) return t:norm(p, 1, true) end, {x}), "p = " .. p)
    end
  end)

  it("refuses what it does not take, naming the argument", function()
    local x = nn.tensor({{1, 2}, {3, 4}})
    assert.are.equal(x:norm():item(), x:norm(2, {1, 2}):item()) -- several dims (issue 12)
    expect_error(function() return x:norm(2, {1, 1}) end, "norm", "twice")
    expect_error(function() return x:norm("nuc") end, "norm", "nuc")
    expect_error(function() return x:norm(2, 3) end, "norm", "dimension")
    expect_error(function() return x:norm(0 / 0) end, "norm", "nan")
    expect_error(function() return x:norm(2, 1, "yes") end, "norm", "keepdim")
    expect_error(function() return nn.tensor({1, 2}, {dtype = "int64"}):norm() end, "norm", "int64")
  end)
end)

-- ---- result dtypes ----------------------------------------------------------
local function operand(kind)
  if kind == "integer" then return 2 end
  if kind == "float" then return 2.0 end
  local dtype, zero = kind:match("^(%w+)( 0%-d)$")
  dtype = dtype or kind
  local one = dtype == "bool" and true or 1
  return nn.tensor(zero and one or {one, one}, {dtype = dtype})
end

local number_first = {
  add = function(s, t) return s + t end, sub = function(s, t) return s - t end,
  mul = function(s, t) return s * t end, div = function(s, t) return s / t end,
  pow = function(s, t) return s ^ t end, gt = function(s, t) return t:lt(s) end,
  eq = function(s, t) return t:eq(s) end,
  maximum = function(s, t) return t:maximum(s) end, minimum = function(s, t) return t:minimum(s) end,
}

-- The rows of a dtype table where nn's result (apply's dtype, or "error")
-- differs from PyTorch's, one line each.
local function dtype_mismatches(rows, apply, label)
  local wrong = {}
  for _, row in ipairs(rows) do
    local ok, result = pcall(apply, row.op, operand(row.a), operand(row.b))
    local got = ok and result or "error"
    if got ~= row.result then
      wrong[#wrong + 1] = string.format("%s(%s, %s): PyTorch %s, nn %s%s", label(row.op), row.a,
        row.b, row.result, got, ok and "" or " (" .. tostring(result) .. ")")
    end
  end
  return #wrong .. " differ:\n" .. table.concat(wrong, "\n"), #wrong == 0
end

describe("result dtypes follow PyTorch's promotion", function()
  it("for every binary op and every pair of operands", function()
    local report, ok = dtype_mismatches(ref.dtypes, function(op, a, b)
      if type(a) == "number" then return number_first[op](a, b).dtype end
      return a[op](a, b).dtype
    end, function(op) return op end)
    assert(ok, report)
  end)

  it("in place, for every op, target dtype and operand", function()
    local report, ok = dtype_mismatches(ref.inplace_dtypes, function(op, a, b)
      a[op .. "_"](a, b)
      return a.dtype
    end, function(op) return op .. "_" end)
    assert(ok, report)
  end)

  it("an operator is the method: the operators follow the same table", function()
    local f = nn.tensor({1, 2})
    assert.are.equal("float32", (f + nn.tensor(1, {dtype = "float64"})).dtype)
    assert.are.equal("float32", (nn.tensor(1, {dtype = "float64"}) + f).dtype)
    assert.are.equal("float64", (nn.tensor(1, {dtype = "float64"}) + nn.tensor(1)).dtype)
    assert.are.equal("float32", (nn.tensor({1, 2}, {dtype = "int64"}) + 2.0).dtype)
    assert.are.equal("int64", (nn.tensor({1, 2}, {dtype = "int64"}) + 2).dtype)
  end)
end)

describe("arithmetic on bool tensors is refused as PyTorch refuses it", function()
  local b = nn.tensor({true, false})
  it("negation", function()
    expect_error(function() return -b end, "neg", "bool", "mask:eq(0)")
    expect_error(function() return b:neg() end, "neg", "bool")
    expect_error(function() return nn.tensor({true}):neg_() end, "neg_", "bool")
  end)
  it("subtraction of two bool tensors", function()
    expect_error(function() return b - b end, "sub", "two bool tensors", "a:ne(b)")
    expect_error(function() return b:sub(nn.tensor(true, {dtype = "bool"})) end, "sub", "two bool")
  end)
  it("subtraction with one bool tensor or a number", function()
    expect_error(function() return b - 1 end, "sub", "a bool tensor")
    expect_error(function() return 1 - b end, "sub", "a bool tensor")
    expect_error(function() return b - nn.tensor({1, 2}) end, "sub", "a bool tensor")
    expect_error(function() return nn.tensor({1, 2}, {dtype = "int64"}) - b end, "sub", "a bool tensor")
    expect_error(function() return nn.tensor({true}):sub_(1) end, "sub_", "a bool tensor")
  end)
  it("what PyTorch allows stays allowed", function()
    assert.are.same({true, false}, (b + b):totable())
    assert.are.same({true, false}, (b * b):totable())
    assert.are.same({1, 0}, (b * 1):totable())
    assert.are.equal("float32", (b / b).dtype)
  end)
end)

-- ---- overlap ------------------------------------------------------------------
describe("an in-place op whose source overlaps what it writes", function()
  local function matrix() return nn.tensor({{1, 2}, {3, 4}}) end

  it("is refused, naming the op and the overlap (PyTorch refuses these too)", function()
    local r = matrix()
    expect_error(function() r:add_(r:t()) end, "add_", "overlap", "clone()")
    assert.are.same({{1, 2}, {3, 4}}, r:totable()) -- nothing was written
    local q = nn.tensor({1, 2, 3, 4, 5})
    expect_error(function() q:narrow(1, 2, 3):copy_(q:narrow(1, 1, 3)) end, "copy_", "overlap")
    assert.are.same({1, 2, 3, 4, 5}, q:totable())
    expect_error(function() r:mul_(r[1]) end, "mul_", "overlap")
    expect_error(function() r[1]:copy_(r[1][1]) end, "copy_", "overlap")
    expect_error(function() r:copy_(r:t()) end, "copy_", "overlap")
    expect_error(function() r:sub_(r:narrow(1, 1, 1)) end, "sub_", "overlap")
    expect_error(function() r:maximum_(r:t()) end, "maximum_", "overlap")
  end)

  it("is allowed when source and target are the very same elements", function()
    local r = matrix()
    r:add_(r)
    assert.are.same({{2, 4}, {6, 8}}, r:totable())
    r:copy_(r)
    assert.are.same({{2, 4}, {6, 8}}, r:totable())
    local t = r:t()
    t:mul_(r:t())
    assert.are.same({{4, 16}, {36, 64}}, r:totable())
  end)

  it("is allowed when the two views share storage but no element", function()
    local r = matrix()
    r[1]:add_(r[2])
    assert.are.same({{4, 6}, {3, 4}}, r:totable())
    -- columns interleave in memory without sharing an element
    local m = matrix()
    m:select(2, 1):add_(m:select(2, 2))
    assert.are.same({{3, 2}, {7, 4}}, m:totable())
    local q = nn.tensor({1, 2, 3, 4, 5, 6})
    q:narrow(1, 1, 3):copy_(q:narrow(1, 4, 3))
    assert.are.same({4, 5, 6, 4, 5, 6}, q:totable())
  end)
end)

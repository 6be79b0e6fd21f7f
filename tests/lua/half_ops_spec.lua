-- float16 and bfloat16 in products, losses and optimizer steps: computed in
-- float32 and rounded once (half.c). Against PyTorch 1.13 where its CPU
-- computes the half dtype, and against the float32 computation rounded where
-- it refuses (tests/fixtures/half_ops_reference.lua, from gen_half_ops.py).
local nn = require "nn"
local support = dofile((os.getenv("NN_ROOT") or ".") .. "/tests/lua/support.lua")
local flat = support.flat
local expect_error = support.expect_error

local ref = dofile((os.getenv("NN_ROOT") or ".") .. "/tests/fixtures/half_ops_reference.lua")

-- one unit in the last place of a half dtype at v (bits: 11 for float16, 8 for bfloat16)
local BITS = {float16 = 11, bfloat16 = 8}
local function ulp(dtype, v)
  local e = v == 0 and -14 or math.max(math.floor(math.log(math.abs(v), 2)), -14)
  return 2.0 ^ (e - BITS[dtype] + 1)
end

-- Within `units` of the dtype's ulp of each reference value; with `scaled`,
-- of the ulp of the largest one: PyTorch 1.13 rounds some intermediate
-- results to the half dtype (its CPU bfloat16 GEMM accumulates some layouts
-- in bfloat16), nnlua only the final one, and a sum that cancels keeps the
-- error of its largest terms.
local function assert_close(dtype, want, got, what, units, scaled)
  assert.are.equal(#want, #got, what .. ": length")
  local largest = 0
  for i = 1, #want do largest = math.max(largest, math.abs(want[i])) end
  for i = 1, #want do
    local tol = units * ulp(dtype, scaled and largest or want[i])
    assert(math.abs(want[i] - got[i]) <= tol,
      string.format("%s: element %d is %.9g, reference %.9g (tolerance %.3g)", what, i, got[i], want[i], tol))
  end
end

local function make(entry, dtype, requires_grad)
  if entry.dtype == "int64" then
    local labels = {}
    for i, v in ipairs(entry.values) do labels[i] = math.tointeger(v) + 1 end
    return nn.tensor(labels, {dtype = "int64"}):view(table.unpack(entry.shape))
  end
  local t = nn.tensor(entry.values):view(table.unpack(entry.shape)):to(dtype)
  if requires_grad then t:requires_grad_(true) end
  return t
end

local PRODUCTS = {mm = nn.mm, bmm = nn.bmm, matmul = function(a, b) return a:matmul(b) end, mv = nn.mv, dot = nn.dot,
                  linear = nn.F.linear, linear_nobias = nn.F.linear}

local function check_case(case, fn)
  local wants_grad = {}
  for _, k in ipairs(case.grad_of) do wants_grad[k] = true end
  local inputs = {}
  for k, entry in ipairs(case.inputs) do inputs[k] = make(entry, case.dtype, wants_grad[k]) end
  local out = fn(table.unpack(inputs))
  local what = string.format("%s %s (%s)", case.name, case.dtype, case.source)
  assert.are.equal(case.dtype, out.dtype, what)
  assert.are.same(case.result.shape, out:size(), what)
  -- nnlua computes in float32 and rounds once: the float32 reference rounded,
  -- but for a float32 result at a tie of the half dtype
  assert_close(case.dtype, case.float32.result, flat(out), what .. " against float32", 1)
  assert_close(case.dtype, case.result.values, flat(out), what, 2, true)
  local n = out:numel()
  local w = nn.linspace(-1, 1, n):bfloat16():to(case.dtype):view(table.unpack(case.result.shape))
  ;(out * w):sum():backward()
  for j, k in ipairs(case.grad_of) do
    assert.are.equal(case.dtype, inputs[k].grad.dtype, what .. " gradient dtype")
    local got = flat(inputs[k].grad)
    assert_close(case.dtype, case.float32.grads[j], got, what .. " gradient " .. k .. " against float32", 1)
    assert_close(case.dtype, case.grads[j].values, got, what .. " gradient " .. k, 2, true)
  end
end

describe("half products", function()
  it("mm, bmm, matmul, mv, dot and linear give the half dtype, with its gradients", function()
    for _, case in ipairs(ref.products) do check_case(case, assert(PRODUCTS[case.name], case.name)) end
  end)

  it("read strided operands, accumulate in float32 and round once, as PyTorch names the nodes", function()
    nn.manual_seed(4)
    for _, d in ipairs({"float16", "bfloat16"}) do
      local a = nn.randn(2, 6, 3):to(d):requires_grad_(true)
      local b = nn.randn(2, 5, 6):to(d)
      local want = a:float():transpose(2, 3):bmm(b:float():transpose(2, 3)):to(d)
      local got = a:transpose(2, 3):bmm(b:transpose(2, 3))
      assert.are.same(flat(want), flat(got), d)
      assert.are.equal("MmBackward0", nn.mm(a[1]:t(), b[1]:t()).grad_fn, d)
      local x, w, bias = nn.randn(4, 6):to(d), nn.randn(5, 6):to(d):requires_grad_(true), nn.randn(5):to(d)
      local y = nn.F.linear(x, w, bias)
      assert.are.same(flat(nn.F.linear(x:float(), w:float(), bias:float()):to(d)), flat(y), d .. " linear")
      assert.are.equal("AddmmBackward0", y.grad_fn, d)
      y:sum():backward()
      y = nn.F.linear(x, w, bias) -- accumulates into w.grad: float32 sum, one rounding
      y:sum():backward()
      local once = nn.ones(4, 5):t():matmul(x:float()) * 2
      assert.are.same(flat(once:to(d)), flat(w.grad), d .. " accumulated gradient")
    end
  end)

  it("refuse operands of two dtypes, naming them", function()
    local b = nn.ones(2, 2, {dtype = "bfloat16"})
    expect_error(function() return b:matmul(nn.ones(2, 2)) end, "matmul", "same floating dtype", "bfloat16", "float32")
    expect_error(function() return b:matmul(nn.ones(2, 2, {dtype = "float16"})) end, "matmul", "bfloat16", "float16")
    expect_error(function() return nn.F.linear(b, nn.ones(3, 2)) end, "linear", "bfloat16", "float32")
    expect_error(function() return nn.F.linear(b, nn.ones(3, 2, {dtype = "bfloat16"}), nn.ones(3)) end,
      "linear", "bias is float32", "input bfloat16")
  end)

  it("train a half Linear layer", function()
    nn.manual_seed(1)
    local layer = nn.Linear(3, 2):to("bfloat16")
    assert.are.equal("bfloat16", layer.weight.dtype)
    local y = layer(nn.ones(4, 3, {dtype = "bfloat16"}))
    assert.are.equal("bfloat16", y.dtype)
    y:sum():backward()
    assert.are.equal("bfloat16", layer.bias.grad.dtype)
    assert.are.same({4, 4}, flat(layer.bias.grad))
  end)
end)

describe("half losses", function()
  it("give PyTorch's values and input gradients in the half dtype", function()
    for _, case in ipairs(ref.losses) do
      local f = nn.F[case.name]
      check_case(case, function(a, b) return f(a, b, case.options) end)
    end
  end)

  it("refuse a target of another floating dtype", function()
    local x = nn.ones(3, {dtype = "float16"})
    expect_error(function() return nn.F.mse_loss(x, nn.ones(3)) end, "mse_loss", "float16", "float32")
    expect_error(function() return nn.F.l1_loss(x, nn.ones(3, {dtype = "bfloat16"})) end, "l1_loss", "bfloat16")
    local p = nn.full({3}, 0.5, {dtype = "bfloat16"})
    expect_error(function() return nn.F.binary_cross_entropy(p, p, {weight = nn.ones(3)}) end,
      "binary_cross_entropy: operands must have one floating dtype, got bfloat16 and float32")
    expect_error(function() return nn.F.mse_loss(nn.ones(3), x) end, "mse_loss", "float32 and float16")
  end)
end)

describe("half optimizer steps", function()
  it("keep the parameter and the state in its dtype and follow PyTorch", function()
    for _, case in ipairs(ref.optimizers) do
      local what = string.format("%s %s", case.optimizer, case.dtype)
      local p = nn.tensor(case.param):to(case.dtype):requires_grad_(true)
      local opt = nn.optim[case.optimizer]({p}, case.options)
      for _, g in ipairs(case.grads) do
        p.grad = nn.tensor(g):to(case.dtype)
        opt:step()
      end
      assert.are.equal(case.dtype, p.dtype, what)
      -- what nnlua computes: float32 steps, each value rounded once per step
      assert_close(case.dtype, case.float32_each_step, flat(p), what, 0)
      -- PyTorch rounds after each tensor op: a few units apart after 3 steps
      assert_close(case.dtype, case.result, flat(p), what .. " against " .. case.source, 2, true)
      local state = opt.state[1][1]
      for key, buf in pairs(state or {}) do
        if nn.is_tensor(buf) then assert.are.equal(case.dtype, buf.dtype, what .. " " .. key) end
      end
    end
  end)

  it("clip half gradients as PyTorch, by norm (orders 2, 1, inf) and by value", function()
    for _, case in ipairs(ref.clipping) do
      local what = string.format("%s clip by %s %s", case.dtype, case.kind, tostring(case.norm_type))
      local params = {}
      for k, g in ipairs(case.grads) do
        local p = nn.zeros(table.unpack(case.shapes[k])):to(case.dtype):requires_grad_(true)
        p.grad = nn.tensor(g):view(table.unpack(case.shapes[k])):to(case.dtype)
        params[k] = p
      end
      if case.kind == "norm" then
        local total = nn.utils.clip_grad_norm_(params, 1.5, case.norm_type)
        assert.are.equal(case.dtype, total.dtype, what)
        -- PyTorch's norm of a half tensor may round a sum of squares where
        -- nnlua's sums in double: one unit apart at most
        assert_close(case.dtype, {case.total}, {total:item()}, what .. " total", 1)
      else
        nn.utils.clip_grad_value_(params, 0.75)
      end
      for k, p in ipairs(params) do
        assert.are.equal(case.dtype, p.grad.dtype, what)
        assert_close(case.dtype, case.result[k], flat(p.grad), what .. " gradient " .. k, 1)
      end
    end
  end)
end)

-- The fused paths that the Transformer layer and the LSTM take (issue 13's
-- speed): dropout's noise made in one pass after its draws (activations.c)
-- and layer norm as one front with its own backward (statistics.c) give
-- the values of the ops they replace (their bits at one and two threads,
-- and the LSTM's step kernels cut among threads: threads_spec.lua).
local nn = require "nn"
local F = nn.F

local function max_diff(a, b) return (a:double() - b:double()):abs():max():item() end

describe("dropout's noise", function()
  -- the noise as the ops made it before: compare, convert, divide
  local function noise_from_ops(size, p, dtype)
    local keep = nn.rand(size, {dtype = "float64"}):lt(1 - p):to(dtype)
    return keep:div_(nn.tensor(1 - p, {dtype = dtype}))
  end

  for _, dtype in ipairs({"float32", "float64"}) do
    it("is the ops' noise value for value, and draws as many numbers (" .. dtype .. ")", function()
      for _, case in ipairs({{{7}, 0.1}, {{3, 5, 11}, 0.5}, {{2, 33}, 0.9}, {{4097}, 0.3}}) do
        local size, p = case[1], case[2]
        nn.manual_seed(11)
        local x = nn.randn(size, {dtype = dtype}) * 3
        nn.manual_seed(5)
        local want = x * noise_from_ops(size, p, dtype)
        local after_ops = nn.rand(3, {dtype = "float64"})
        nn.manual_seed(5)
        local got = F.dropout(x, p, true)
        local after = nn.rand(3, {dtype = "float64"})
        assert.are.equal(0, got:ne(want):sum():item(), "dropout " .. p)
        assert.are.equal(0, after:ne(after_ops):sum():item(), "the generator's position after it")
      end
    end)
  end

  it("passes the gradient through the same noise, and keeps infinities' zeros as the ops did", function()
    local x = nn.tensor({1, -2, math.huge, -math.huge, 0, 5, -0.0, 7}):requires_grad_()
    nn.manual_seed(3)
    local want = x:detach() * noise_from_ops({8}, 0.5, "float32")
    nn.manual_seed(3)
    local y = F.dropout(x, 0.5, true)
    local same = y:eq(want):logical_or(y:ne(y):logical_and(want:ne(want)))
    assert.is_true(same:all():item())
    y:backward(nn.ones(8))
    nn.manual_seed(3)
    assert.are.equal(0, x.grad:ne(noise_from_ops({8}, 0.5, "float32")):sum():item())
  end)

  it("of a module in training mode and on a view that is not contiguous", function()
    local m = nn.Dropout(0.25)
    local x = nn.randn(6, 9):t()
    nn.manual_seed(8)
    local want = x * noise_from_ops({9, 6}, 0.25, "float32")
    nn.manual_seed(8)
    assert.are.equal(0, m(x):ne(want):sum():item())
  end)
end)

describe("layer norm's fused front", function()
  -- the ops the Lua layer composed it from, in float64
  local function by_ops(x, n, w, b, eps)
    local rows = x:numel() // n
    local flat = x:double():reshape(rows, n)
    local mean = flat:mean(2, true)
    local centered = flat - mean
    local var = (centered * centered):mean(2, true)
    local y = (centered / (var + eps):sqrt()):reshape(x:size())
    if w then y = y * w:double() end
    if b then y = y + b:double() end
    return y
  end

  local cases = {
    {{5, 7}, {7}}, {{2, 3, 4}, {3, 4}}, {{3, 1}, {1}}, {{4, 257}, {257}}, {{33, 6}, {6}},
  }
  for _, dtype in ipairs({"float32", "float64"}) do
    local tol = dtype == "float32" and 2e-5 or 1e-12
    it("gives the ops' values and gradients, affine or not (" .. dtype .. ")", function()
      nn.manual_seed(4)
      for _, case in ipairs(cases) do
        local size, shape = case[1], case[2]
        local n = 1
        for _, s in ipairs(shape) do n = n * s end
        for _, affine in ipairs({"both", "weight", "none"}) do
          local x = (nn.randn(size, {dtype = dtype}) * 2 + 1):requires_grad_()
          local w = affine ~= "none" and nn.randn(shape, {dtype = dtype}):requires_grad_() or nil
          local b = affine == "both" and nn.randn(shape, {dtype = dtype}):requires_grad_() or nil
          local g = nn.randn(size, {dtype = dtype})
          local y = F.layer_norm(x, shape, w, b, 1e-5)
          assert.are.equal(dtype, y.dtype)
          y:backward(g)
          local x64 = x:detach():double():requires_grad_()
          local w64 = w and w:detach():double():requires_grad_()
          local b64 = b and b:detach():double():requires_grad_()
          local want = by_ops(x64, n, w64, b64, 1e-5)
          want:backward(g:double())
          local what = affine .. " " .. table.concat(size, "x")
          assert(max_diff(y, want) < tol * 10, what .. ": values")
          assert(max_diff(x.grad, x64.grad) < tol * 100, what .. ": input gradient")
          if w then assert(max_diff(w.grad, w64.grad) < tol * 100, what .. ": weight gradient") end
          if b then assert(max_diff(b.grad, b64.grad) < tol * 100, what .. ": bias gradient") end
        end
      end
    end)
  end

  it("takes a view that is not contiguous, and a weight that needs no gradient", function()
    nn.manual_seed(9)
    local base = nn.randn(6, 5, {dtype = "float64"}):requires_grad_()
    local x = base:t() -- (5, 6), not contiguous
    local w = nn.randn(6, {dtype = "float64"})
    local y = F.layer_norm(x, 6, w, nil, 1e-5)
    y:backward(nn.ones(5, 6, {dtype = "float64"}) * 0.5)
    local b2 = base:detach():requires_grad_()
    local want = by_ops(b2:t(), 6, w, nil, 1e-5)
    want:backward(nn.ones(5, 6, {dtype = "float64"}) * 0.5)
    assert(max_diff(y, want) < 1e-12)
    assert(max_diff(base.grad, b2.grad) < 1e-12)
  end)

  it("has second derivatives (create_graph) as the ops do", function()
    nn.manual_seed(2)
    local x = nn.randn(3, 5, {dtype = "float64"}):requires_grad_()
    local w = nn.randn(5, {dtype = "float64"}):requires_grad_()
    local b = nn.randn(5, {dtype = "float64"}):requires_grad_()
    local function second(f)
      local gx, gw = table.unpack(nn.autograd.grad((f(x, w, b) ^ 3):sum(), {x, w}, {create_graph = true}))
      return nn.autograd.grad((gx * gx):sum() + (gw * gw):sum(), {x, w, b})
    end
    local got = second(function(a, c, d) return F.layer_norm(a, 5, c, d, 1e-5) end)
    local want = second(function(a, c, d) return by_ops(a, 5, c, d, 1e-5) end)
    for i = 1, 3 do assert(max_diff(got[i], want[i]) < 1e-9, "second derivative " .. i) end
    assert.is_true(nn.gradgradcheck(function(a, c, d) return F.layer_norm(a, 5, c, d, 1e-5) end,
      {nn.randn(2, 5, {dtype = "float64"}):requires_grad_(), nn.randn(5, {dtype = "float64"}):requires_grad_(),
       nn.randn(5, {dtype = "float64"}):requires_grad_()}))
  end)
end)

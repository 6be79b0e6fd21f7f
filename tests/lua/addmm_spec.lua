-- addmm where nothing needs a gradient is one GEMM whose beta adds the
-- input (matmul.c's nn_addmm_one_gemm); each form is checked here against
-- the same sum written out element by element in float64.
local nn = require "nn"
local support = dofile(os.getenv("NN_ROOT") .. "/tests/lua/support.lua")

-- beta input + alpha a b, element by element, input broadcast to (m, n)
local function reference(input, a, b, beta, alpha)
  local m, k, n = a:size(1), a:size(2), b:size(2)
  local A, B = a:double():totable(), b:double():totable()
  local full = input:double():expand(m, n):contiguous():totable()
  local out = {}
  for i = 1, m do
    out[i] = {}
    for j = 1, n do
      local s = 0
      for p = 1, k do s = s + A[i][p] * B[p][j] end
      out[i][j] = (beta == 0 and 0 or beta * full[i][j]) + alpha * s
    end
  end
  return out
end

local function close(got, want, tol)
  local g = got:double():totable()
  for i = 1, #want do
    for j = 1, #want[i] do
      local d = math.abs(g[i][j] - want[i][j])
      assert(d <= tol * (1 + math.abs(want[i][j])),
        string.format("(%d, %d): got %.9g, want %.9g", i, j, g[i][j], want[i][j]))
    end
  end
end

describe("addmm as one GEMM", function()
  -- shapes on both of gemm.c's paths: the small kernels and OpenBLAS
  for _, shape in ipairs({{3, 4, 5}, {70, 90, 80}}) do
    local m, k, n = shape[1], shape[2], shape[3]
    local label = m .. "x" .. k .. " by " .. k .. "x" .. n

    it("adds a full, a row and a column input, with beta and alpha (" .. label .. ")", function()
      nn.manual_seed(3)
      local a, b = nn.randn(m, k), nn.randn(k, n)
      for _, input in ipairs({nn.randn(m, n), nn.randn(n), nn.randn(m, 1), nn.randn(1, n), nn.tensor(2.5)}) do
        for _, ba in ipairs({{1, 1}, {0.5, 2}, {-1, 0.25}}) do
          local got = input:addmm(a, b, {beta = ba[1], alpha = ba[2]})
          assert.are.same({m, n}, got:size())
          close(got, reference(input, a, b, ba[1], ba[2]), 1e-5)
        end
      end
    end)

    it("ignores the input at beta 0, NaN included (" .. label .. ")", function()
      nn.manual_seed(4)
      local a, b = nn.randn(m, k), nn.randn(k, n)
      local input = nn.full({m, n}, 0 / 0)
      local got = input:addmm(a, b, {beta = 0})
      close(got, reference(input, a, b, 0, 1), 1e-5)
    end)

    it("reads transposed and strided operands, in float64 (" .. label .. ")", function()
      nn.manual_seed(5)
      local a = nn.randn(k, m, {dtype = "float64"}):t()
      local b = nn.randn(n, 2 * k, {dtype = "float64"})[{{}, {1, k}}]:t()
      local input = nn.randn(n, {dtype = "float64"})
      local got = input:addmm(a, b, {beta = 0.5, alpha = 3})
      assert.are.equal("float64", got.dtype)
      close(got, reference(input, a, b, 0.5, 3), 1e-12)
    end)

    it("leaves its input unchanged (" .. label .. ")", function()
      nn.manual_seed(6)
      local a, b, input = nn.randn(m, k), nn.randn(k, n), nn.randn(m, n)
      local before = support.flat(input)
      input:addmm(a, b)
      assert.are.same(before, support.flat(input))
    end)
  end

  it("still records the product where a gradient is needed", function()
    nn.manual_seed(7)
    local a = nn.randn(3, 4, {requires_grad = true})
    local b, input = nn.randn(4, 2), nn.randn(2, {requires_grad = true})
    local out = input:addmm(a, b, {beta = 2})
    out:sum():backward()
    close(out, reference(input, a, b, 2, 1), 1e-5)
    assert.are.same({6, 6}, support.flat(input.grad)) -- beta times the 3 rows
    assert.are.same({3, 4}, a.grad:size())
  end)

  it("still refuses an input that does not broadcast", function()
    local m = nn.randn(3, 3)
    support.expect_error(function() return nn.randn(5):addmm(m, m) end, "addmm", "broadcast")
    support.expect_error(function() return nn.randn(2, 3, 3):addmm(m, m) end, "addmm", "broadcast")
  end)
end)

-- Issue 12's math ops and reductions against PyTorch 1.13: values, result
-- dtypes and gradients of every case of tests/fixtures/toolkit_math_reference.lua
-- (written by gen_toolkit_math.py), in float32 and float64, on contiguous,
-- strided, broadcast and 0-sized inputs; then the misuses, each an error
-- naming the op.
local nn = require "nn"
local support = dofile((os.getenv("NN_ROOT") or ".") .. "/tests/lua/support.lua")
local flat, expect_error = support.flat, support.expect_error

local root = os.getenv("NN_ROOT") or "."
local ref = dofile(root .. "/tests/fixtures/toolkit_math_reference.lua")

local INF = math.huge
-- PyTorch's float32 kernels are a few ulp from the correctly rounded
-- results (and sum in other orders); float64 agrees to rounding.
local RTOL = {float32 = 2e-5, float64 = 1e-10}
local ATOL = {float32 = 2e-6, float64 = 1e-12}

local function close(e, a, dtype)
  if type(e) == "boolean" then return a == e end
  if e ~= e then return a ~= a end
  if e == INF or e == -INF then return a == e end
  return math.abs(a - e) <= RTOL[dtype] * math.abs(e) + ATOL[dtype]
end

local function check(expected, got, dtype, what)
  assert(got ~= nil, what .. ": missing")
  local shape = got:size()
  assert.are.same(expected.shape, shape, what .. ": shape")
  if expected.kind == "bool" then assert.are.equal("bool", got.dtype, what .. ": dtype")
  elseif expected.kind == "int" then assert.are.equal("int64", got.dtype, what .. ": dtype")
  else assert.are.equal(dtype, got.dtype, what .. ": dtype") end
  local values = flat(got)
  assert.are.equal(#expected.values, #values, what .. ": number of elements")
  for i, e in ipairs(expected.values) do
    assert(close(e, values[i], dtype),
      string.format("%s: element %d: expected %s, got %s", what, i, tostring(e), tostring(values[i])))
  end
end

local function make_input(spec, dtype)
  local t = nn.tensor(spec.values, {dtype = dtype})
  if #spec.shape ~= 1 or spec.shape[1] ~= #spec.values then t = t:view(spec.shape) end
  if spec.grad then t:requires_grad_() end
  return t
end

describe("issue 12 math and reductions against PyTorch", function()
  for _, case in ipairs(ref) do
    for _, dtype in ipairs {"float32", "float64"} do
      it(case.name .. " " .. dtype, function()
        local fn = assert(load("local nn = ...; return " .. case.fn, case.name, "t"))(nn)
        local inputs = {}
        for i, spec in ipairs(case.inputs) do inputs[i] = make_input(spec, dtype) end
        local outs = table.pack(fn(table.unpack(inputs)))
        local want = case[dtype]
        for i, e in ipairs(want.outputs) do check(e, outs[i], dtype, case.name .. " output " .. i) end
        if #want.grads == 0 then return end
        local y = outs[1]
        local g = (nn.arange(y:numel(), {dtype = dtype}) * 0.1 + 1):view(y:size())
        y:backward(g)
        for i, e in ipairs(want.grads) do
          local what = case.name .. " gradient " .. i
          if e == "none" then assert(inputs[i].grad == nil, what .. ": PyTorch has none")
          else check(e, inputs[i].grad, dtype, what) end
        end
      end)
    end
  end
end)

describe("issue 12 math: dtypes and misuse", function()
  it("keeps integers where PyTorch does and refuses what it refuses", function()
    local i = nn.tensor({-3, 4}, {dtype = "int64"})
    assert.are.equal("int64", i:square().dtype)
    assert.are.equal("int64", i:trunc().dtype)
    assert.are.equal("float32", i:log1p().dtype)
    assert.are.equal("int64", i:fmod(3).dtype)
    assert.are.same({0, -2}, i:remainder(-3):totable())
    assert.are.same({0, 1}, i:fmod(3):totable())
    assert.are.equal("float32", i:atan2(i).dtype)
    assert.are.equal("int64", i:prod().dtype)
    assert.are.same({-3, -12}, i:cumprod(1):totable())
    expect_error(function() return i:frac() end, "frac", "int64")
    expect_error(function() return i:fmod(0) end, "fmod", "division by zero")
    expect_error(function() return i:remainder(nn.tensor({1, 0}, {dtype = "int64"})) end, "remainder",
      "division by zero")
    expect_error(function() return nn.tensor({true}):fmod(nn.tensor({true})) end, "fmod", "bool")
  end)

  it("names the op in every misuse", function()
    local x = nn.randn(2, 3)
    expect_error(function() return x:atan2(2) end, "atan2", "tensor")
    expect_error(function() return x:logical_and(1) end, "logical_and", "tensor")
    expect_error(function() return x:atan2(nn.randn(4)) end, "atan2")
    expect_error(function() return x:lerp(x, "a") end, "lerp", "weight")
    expect_error(function() return x:lerp(x:double(), 0.5) end, "lerp", "dtype")
    expect_error(function() return x:clamp_min("a") end, "clamp_min", "bound")
    expect_error(function() return x:nan_to_num("a") end, "nan_to_num", "nan")
    expect_error(function() return x:allclose(x:double()) end, "allclose", "float64")
    expect_error(function() return x:allclose(x, -1) end, "allclose", "non-negative")
    expect_error(function() return x:var(3) end, "var", "out of range")
    expect_error(function() return x:var({1, 1}) end, "var", "twice")
    expect_error(function() return x:var(1, 2) end, "var", "unbiased")
    expect_error(function() return x:std({1}, true, 1) end, "std", "keepdim")
    expect_error(function() return x:amax(0) end, "amax", "dimension 0")
    expect_error(function() return nn.zeros(0, 3):amax(1) end, "amax", "empty")
    expect_error(function() return x:long():var() end, "var", "float()")
    expect_error(function() return x:logsumexp({2, "a"}) end, "logsumexp", "integer")
    expect_error(function() return x:prod(1.5) end, "prod", "integer")
    expect_error(function() return x:cumsum() end, "cumsum", "dim")
    expect_error(function() return x:cumprod(5) end, "cumprod", "out of range")
    expect_error(function() return x:sort(1, 1) end, "sort", "descending")
    expect_error(function() return x:topk(4) end, "topk", "out of range")
    expect_error(function() return x:topk(-1) end, "topk", "out of range")
    expect_error(function() return x:kthvalue(0) end, "kthvalue", "out of range")
    expect_error(function() return nn.zeros(0):median() end, "median", "empty")
    expect_error(function() return x:bool():sort() end, "sort", "bool")
    expect_error(function() return x:dist(nn.randn(5)) end, "dist")
    expect_error(function() return x:dist(x, "a") end, "dist", "p")
    expect_error(function() return nn.log1p(3) end, "log1p", "tensor")
    expect_error(function() return x:log1p(1) end, "log1p", "no arguments")
    expect_error(function() return x:norm(2, {1, 3}) end, "norm", "out of range")
  end)

  it("gives bmm its own node, as PyTorch's BmmBackward0", function()
    local a = nn.randn(2, 3, 4, {requires_grad = true})
    local b = nn.randn(2, 4, 5, {requires_grad = true})
    local y = a:bmm(b)
    assert.are.equal("BmmBackward0", y.grad_fn)
    assert.are.same(y:totable(), a:detach():matmul(b:detach()):totable())
    y:sum():backward()
    assert.are.same(a.grad:totable(), nn.ones(2, 3, 5):bmm(b:detach():transpose(2, 3)):totable())
    assert.are.same(b.grad:totable(), a:detach():transpose(2, 3):bmm(nn.ones(2, 3, 5)):totable())
  end)

  it("names the op in every misuse of linear algebra and creation", function()
    local m, v = nn.randn(2, 3), nn.randn(3)
    expect_error(function() return v:mm(m) end, "mm", "2-dimensional")
    expect_error(function() return m:mm(m) end, "mm", "cannot be multiplied")
    expect_error(function() return m:bmm(m) end, "bmm", "3-dimensional")
    expect_error(function() return nn.randn(2, 2, 3):bmm(nn.randn(3, 3, 2)) end, "bmm", "batch sizes")
    expect_error(function() return nn.randn(2, 2, 3):bmm(nn.randn(2, 3, 2):double()) end, "bmm", "same floating dtype")
    expect_error(function() return m:mv(m) end, "mv", "1-dimensional")
    expect_error(function() return v:dot(nn.randn(4)) end, "dot", "cannot be multiplied")
    expect_error(function() return v:outer(m) end, "outer", "1-dimensional")
    expect_error(function() return nn.randn(5):addmm(m, m:t()) end, "addmm", "broadcast")
    expect_error(function() return m:addmm(m, m:t(), 2) end, "addmm", "options")
    expect_error(function() return v:tril() end, "tril", "2 dimensions")
    expect_error(function() return m:triu(0.5) end, "triu", "integer")
    expect_error(function() return nn.randn(2, 2, 2):diag() end, "diag", "1- or 2-dimensional")
    expect_error(function() return m:diagonal(0, 1, 1) end, "diagonal", "both dimension 1")
    expect_error(function() return m:diagonal(0, 1, 3) end, "diagonal", "out of range")
    expect_error(function() return v:trace() end, "trace", "2-dimensional")
    expect_error(function() return nn.einsum("ij,jk", m) end, "einsum", "2 operands")
    expect_error(function() return nn.einsum("ijk", m) end, "einsum", "3 letters")
    expect_error(function() return nn.einsum("i...", m) end, "einsum", "...")
    expect_error(function() return nn.einsum("ij->iz", m) end, "einsum", "'z'")
    expect_error(function() return nn.einsum("ij,ij", m, v:view(1, 3):expand(3, 3)) end, "einsum")
    expect_error(function() return nn.einsum("ij", "x") end, "einsum", "tensor")
    expect_error(function() return nn.randint(5, 2, {3}) end, "randint", "low < high")
    expect_error(function() return nn.randint(0.5, {3}) end, "randint", "integers")
    expect_error(function() return nn.randint(5, 3) end, "randint", "sizes a table")
    expect_error(function() return nn.randperm(-1) end, "randperm", "non-negative")
    expect_error(function() return nn.randperm("a") end, "randperm", "integer")
    expect_error(function() return nn.rand_like(nn.zeros(2, {dtype = "int64"})) end, "rand_like", "float")
    expect_error(function() return nn.zeros_like(3) end, "zeros_like", "tensor")
    expect_error(function() return nn.full_like(m) end, "full_like")
    expect_error(function() return m:new_full(3, 1) end, "new_full", "table of sizes")
    expect_error(function() return m:new_zeros(-1) end, "new_zeros", "negative")
    expect_error(function() return nn.as_tensor(m, 3) end, "as_tensor", "options")
  end)

  it("keeps a tensor as it is in as_tensor, and lists it in tolist", function()
    local x = nn.randn(2, 2, {requires_grad = true})
    assert.are.equal(x, nn.as_tensor(x))
    assert.are.equal("float64", nn.as_tensor(x, {dtype = "float64"}).dtype)
    assert.are.same({1, 2}, nn.as_tensor({1, 2}):tolist())
    assert.are.same(x:totable(), x:tolist())
  end)

  it("answers allclose and equal as PyTorch", function()
    local a = nn.tensor({1, INF, 0 / 0})
    assert.is_true(a:allclose(a + 1e-7, 1e-5, 1e-8, true))
    assert.is_false(a:allclose(a))
    assert.is_false(nn.tensor({1}):allclose(nn.tensor({1.1})))
    assert.is_true(nn.tensor({{1, 2}}):equal(nn.tensor({{1, 2}})))
    assert.is_false(nn.tensor({{1, 2}}):equal(nn.tensor({1, 2})))
    assert.is_false(a:equal(a))
    assert.is_true(nn.equal(nn.zeros(0), nn.zeros(0)))
  end)

  it("gives finite-difference gradients in float64", function()
    local x = nn.tensor({{0.3, -0.7, 1.1}, {0.2, 0.5, -0.4}}, {dtype = "float64", requires_grad = true})
    for _, f in ipairs {
      function(t) return t:prod(2) end, function(t) return t:cumprod(2) end,
      function(t) return t:std(2) end, function(t) return t:logsumexp({1, 2}) end,
      function(t) return (t * 0.5):erfinv() end, function(t) return t:atan2(t * 2 + 3) end,
      function(t) return t:sort(2) end, function(t) return t:var({1, 2}, false) end,
    } do
      assert.is_true(nn.gradcheck(f, {x}))
    end
  end)
end)

-- The CPU's fused kernels (topk's partial selection, logsumexp in one pass,
-- fmod and trunc without libm calls) against the general paths they stand
-- in for: the same values to the bit (float32 logsumexp: see there).
describe("fused kernels give the general paths' values exactly", function()
  local function same(expected, got, what)
    local e, g = flat(expected), flat(got)
    assert.are.equal(#e, #g, what)
    for i = 1, #e do
      local ok = (e[i] ~= e[i] and g[i] ~= g[i]) or (e[i] == g[i] and 1 / e[i] == 1 / g[i])
      assert(ok, string.format("%s: element %d is %s, expected %s", what, i, tostring(g[i]), tostring(e[i])))
    end
  end

  it("topk is sort's first k: ties, NaN, every k, both orders, both dims", function()
    nn.manual_seed(3)
    -- few distinct values: many ties; a NaN in some lines
    local x = (nn.rand(7, 90) * 6):floor()
    x[2][5], x[4][1], x[4][90] = 0 / 0, 0 / 0, 1 / 0
    x[5][3] = -1 / 0
    for _, dim in ipairs {1, 2} do
      local n = x.shape[dim]
      for _, k in ipairs {0, 1, 3, 7, 64, 65, n} do
        if k <= n then
          for _, largest in ipairs {true, false} do
            local sv, si = x:sort(dim, largest)
            local v, i = x:topk(k, dim, largest)
            local what = string.format("topk(%d, %d, %s)", k, dim, tostring(largest))
            same(sv:narrow(dim, 1, k), v, what .. " values")
            same(si:narrow(dim, 1, k), i, what .. " indices")
          end
        end
      end
    end
  end)

  it("topk's gradient lands at the picked positions", function()
    local x = nn.tensor({{3, 1, 2}, {0, 5, 4}}, {requires_grad = true})
    local v = x:topk(2, 2)
    assert.are.equal("TopkBackward0", v.grad_fn)
    local loss = (v * nn.tensor({{1, 2}, {3, 4}})):sum()
    loss:backward()
    same(nn.tensor({{1, 0, 2}, {0, 3, 4}}), x.grad, "gradient")
  end)

  -- float32's fused kernel takes its exps by nn_exp_f32 (under 2 ulp, as
  -- the float32 softmax), the fronts by expf: equal within 1e-6 relative,
  -- and equal where a line is infinite or NaN. float64 to the bit.
  it("logsumexp without a graph equals the fronts' value (taken with one)", function()
    nn.manual_seed(4)
    local function close(expected, got, what)
      local e, g = flat(expected), flat(got)
      assert.are.equal(#e, #g, what)
      for i = 1, #e do
        local ok = (e[i] ~= e[i] and g[i] ~= g[i]) or e[i] == g[i]
                   or math.abs(e[i] - g[i]) <= 1e-6 * math.max(1, math.abs(e[i]))
        assert(ok, string.format("%s: element %d is %s, expected %s", what, i, tostring(g[i]), tostring(e[i])))
      end
    end
    for _, dtype in ipairs {"float32", "float64"} do
      local check = dtype == "float64" and same or close
      local x = (nn.randn(6, 50) * 30):to(dtype)
      x[2]:fill_(-1 / 0)
      x[3][7] = 1 / 0
      x[4][9] = 0 / 0
      for _, dims in ipairs {1, 2, {1, 2}} do
        local with_graph = x:clone():requires_grad_(true):logsumexp(dims)
        check(with_graph:detach(), x:logsumexp(dims), dtype .. " logsumexp")
        check(x:clone():requires_grad_(true):logsumexp(dims, true):detach(), x:logsumexp(dims, true),
              dtype .. " logsumexp keepdim")
      end
    end
  end)

  it("float32 fmod and trunc equal float64's, rounded; remainder is fmod moved by y", function()
    nn.manual_seed(5)
    local x = (nn.randn(4000) * (nn.randn(4000) * 6):exp()):float()
    local y = (nn.randn(4000) * (nn.randn(4000) * 6):exp()):float()
    x[1], y[2], x[3], y[4], x[5], y[6], x[7] = 0, 0, 1 / 0, 1 / 0, 0 / 0, 0 / 0, -0.0
    x[8], y[8] = 7, 3.5
    x[9], y[9] = -7, 3.5
    x[10], y[10] = 5e7, 3
    local f = x:double():fmod(y:double()):float()
    same(f, x:fmod(y), "fmod")
    same(x:double():fmod(0.375):float(), x:fmod(0.375), "fmod by a number")
    local moved = f:ne(0):logical_and(f:lt(0):ne(y:lt(0)))
    same(nn.where(moved, f + y, f), x:remainder(y), "remainder")
    same(x:double():trunc():float(), x:trunc(), "trunc")
  end)

  -- contiguous float32 runs those ops through loops of their own (vectorised):
  -- the strided loop's values, to the bit (NaN, infinities, -0, subnormals)
  it("float32 neg, abs, sqrt, rsqrt, reciprocal and square: contiguous equals strided", function()
    nn.manual_seed(6)
    local x = (nn.randn(1003) * (nn.randn(1003) * 8):exp()):float()
    x[1], x[2], x[3], x[4], x[5], x[6] = 0 / 0, 1 / 0, -1 / 0, -0.0, 1e-40, -3
    local strided = nn.zeros(1003, 2):float()
    strided:select(2, 1):copy_(x)
    local view = strided:select(2, 1)
    for _, op in ipairs({"neg", "abs", "sqrt", "rsqrt", "reciprocal", "square", "trunc", "frac", "log2",
                         "log1p", "expm1", "tan", "atan", "erf", "erfinv"}) do
      same(view[op](view), x[op](x), op)
      local inplace = x:clone()
      inplace[op .. "_"](inplace)
      same(view[op](view), inplace, op .. "_ in place")
    end
    same(view:nan_to_num(), x:nan_to_num(), "nan_to_num")
    for _, op in ipairs({"isnan", "isinf", "isfinite"}) do same(view[op](view):float(), x[op](x):float(), op) end
    -- erfinv inside (-1, 1), tan past its quick range (|x| >= 2^20)
    local t = (x / 4):tanh()
    strided:select(2, 1):copy_(t)
    same(view:erfinv(), t:erfinv(), "erfinv of tanh")
    local big = x * 3e6
    strided:select(2, 1):copy_(big)
    same(view:tan(), big:tan(), "tan of large values")
  end)

  it("float32 sub, div, fmod, remainder, comparisons, logical ops: contiguous equals strided", function()
    nn.manual_seed(7)
    local x = (nn.randn(1003) * (nn.randn(1003) * 8):exp()):float()
    local y = (nn.randn(1003) * (nn.randn(1003) * 8):exp()):float()
    x[1], x[2], x[3], x[4], x[5], x[6], x[7] = 0 / 0, 1 / 0, -1 / 0, -0.0, 1e-40, -3, 5e9
    y[8], y[9], y[10], y[11], y[12], y[7] = 0, 1 / 0, 0 / 0, -0.0, 1e-40, 1e-3
    local sx, sy = nn.zeros(1003, 2):float(), nn.zeros(1003, 3):float()
    sx:select(2, 1):copy_(x)
    sy:select(2, 2):copy_(y)
    local vx, vy = sx:select(2, 1), sy:select(2, 2)
    same(vx:atan2(vy), x:atan2(y), "atan2")
    for _, op in ipairs({"sub", "div", "fmod", "remainder"}) do
      same(vx[op](vx, vy), x[op](x, y), op)
      same(vx[op](vx, 0.7), x[op](x, 0.7), op .. " by a number")
    end
    for _, op in ipairs({"eq", "ne", "gt", "ge", "lt", "le"}) do
      same(vx[op](vx, vy):float(), x[op](x, y):float(), op)
    end
    local a, b, sa = x:gt(0), y:gt(0), vx:gt(0)
    for _, op in ipairs({"logical_and", "logical_or", "logical_xor", "eq", "ne"}) do
      same(sa[op](sa, y:gt(0)):float(), a[op](a, b):float(), op .. " of bools")
    end
  end)

  -- a row broadcast against one value of b (x - mean over rows) takes the
  -- number form's loop: the same op on the same values as the strided loop
  it("float32 with b broadcast along the row equals strided, special values too", function()
    nn.manual_seed(8)
    local x = (nn.randn(7, 131) * (nn.randn(7, 131) * 8):exp()):float()
    x[1][1], x[1][2], x[1][3], x[1][4], x[1][5] = 0 / 0, 1 / 0, -1 / 0, -0.0, 1e-40
    local m = nn.tensor({{0.7}, {0}, {-0.0}, {1 / 0}, {0 / 0}, {1e-40}, {-3}}):float()
    local wide = m:expand(7, 131):contiguous()
    local sx = nn.zeros(7, 131, 2):float()
    sx:select(3, 1):copy_(x)
    local vx = sx:select(3, 1)
    for _, op in ipairs({"add", "sub", "mul", "div", "fmod", "remainder", "pow", "atan2", "maximum"}) do
      local expected = vx[op](vx, wide) -- strided x: the per-element loop
      same(x[op](x, m), expected, op)
    end
  end)
end)

-- The reductions and products of cpu/reduce.c and cpu/band.c that work in
-- lanes or whole rows (issue 12's speed): prod, var, std, the 1- and
-- 2-norms, dist, amax, amin, max, min, count_nonzero, all, any, dot, mv,
-- outer, tril and triu. Each checked against a plain Lua loop over the
-- same values, on long lines of odd length (the lanes' tail), with NaN
-- in the tail, in float32, float64 and the integer dtypes; the same line
-- strided or contiguous gives the same bits, and one thread the same bits
-- as two.
local nn = require "nn"

local N = 1000 * 3 + 37 -- lanes of 16 and 32, and a tail

local function values(n, seed)
  nn.manual_seed(seed)
  return (nn.rand(n) * 0.2 + 0.9):totable() -- in [0.9, 1.1): products stay in float32's range
end

local function close(expected, got, rel, what)
  local tol = rel * math.max(1, math.abs(expected))
  assert(math.abs(expected - got) <= tol,
    string.format("%s: got %.17g, expected %.17g", what, got, expected))
end

-- fn() at one thread and at two, each result equal to the bit
local function same_at_both(what, fn)
  local saved = nn.get_num_threads()
  nn.set_num_threads(1)
  local one = fn():reshape(-1):totable()
  nn.set_num_threads(2)
  local two = fn():reshape(-1):totable()
  nn.set_num_threads(saved)
  assert.are.equal(#one, #two, what)
  for k = 1, #one do
    assert(one[k] == two[k] or (one[k] ~= one[k] and two[k] ~= two[k]),
      string.format("%s: element %d is %s at one thread, %s at two", what, k, one[k], two[k]))
  end
end

describe("long lines in lanes", function()
  for _, dtype in ipairs {"float32", "float64"} do
    local rel = dtype == "float32" and 1e-5 or 1e-12

    it(dtype .. ": prod, var, std, norms and dist against a plain sum", function()
      local v = values(N, 3)
      local x = nn.tensor(v, {dtype = dtype})
      local w = x:totable() -- the values as the tensor holds them
      local prod, sum, abs, sq = 1, 0, 0, 0
      for _, e in ipairs(w) do prod, sum, abs, sq = prod * e, sum + e, abs + math.abs(e), sq + e * e end
      local mean, dev = sum / #w, 0
      for _, e in ipairs(w) do dev = dev + (e - mean) ^ 2 end
      -- the product of 3037 terms around 1: compare logs
      close(math.log(prod), math.log(x:prod():item()), 1e-4, "prod")
      close(dev / (#w - 1), x:var():item(), rel, "var")
      close(math.sqrt(dev / (#w - 1)), x:std():item(), rel, "std")
      close(abs, x:norm(1):item(), rel, "1-norm")
      close(math.sqrt(sq), x:norm():item(), rel, "2-norm")
      local y = nn.zeros(N, {dtype = dtype})
      close(math.sqrt(sq), x:dist(y):item(), rel, "dist")
    end)

    it(dtype .. ": NaN in the tail wins prod, var, std, norm, amax, amin, max, min", function()
      local x = nn.tensor(values(N, 4), {dtype = dtype})
      x[N - 2] = 0 / 0
      for _, name in ipairs {"prod", "var", "std", "norm", "amax", "amin"} do
        local r = x[name](x):item()
        assert(r ~= r, name .. " of a line with NaN is " .. tostring(r))
      end
      local m, i = x:max(1)
      assert(m:item() ~= m:item(), "max's value")
      assert.are.equal(N - 2, i:item())
      local _, j = x:min(1)
      assert.are.equal(N - 2, j:item())
      -- rows: only the row holding the NaN gives NaN
      local rows = nn.tensor(values(3 * N, 5), {dtype = dtype}):view(3, N)
      rows[2][N] = 0 / 0
      local amax = rows:amax(2):totable()
      assert(amax[1] == amax[1] and amax[2] ~= amax[2] and amax[3] == amax[3])
      local p = rows:prod(2):totable()
      assert(p[1] == p[1] and p[2] ~= p[2] and p[3] == p[3])
    end)

    it(dtype .. ": amax, amin and the first index of the extreme, ties and signed zeros", function()
      local v = values(N, 6)
      v[1000], v[2001], v[N] = 7, 7, 7 -- the first of equal maxima wins
      v[17], v[3001] = -3, -3
      local x = nn.tensor(v, {dtype = dtype})
      assert.are.equal(7, x:amax():item())
      assert.are.equal(-3, x:amin():item())
      local _, i = x:max(1)
      assert.are.equal(1000, i:item())
      local _, j = x:min(1)
      assert.are.equal(17, j:item())
      local zeros = nn.zeros(N, {dtype = dtype})
      zeros[5] = -0.0
      local _, k = zeros:min(1)
      assert.are.equal(1, k:item())
    end)

    it(dtype .. ": amax and amin (no indices) give max's and min's element, zeros and NaN", function()
      -- amax/amin ask the kernel for the values alone: the lanes' extreme,
      -- searched only when it is a zero (the first of +0 and -0) or NaN
      local function same_bits(a, b, what)
        a, b = a:reshape(-1):totable(), b:reshape(-1):totable()
        assert.are.equal(#a, #b, what)
        for k = 1, #a do
          local ok = (a[k] ~= a[k] and b[k] ~= b[k]) or (a[k] == b[k] and (a[k] ~= 0 or 1 / a[k] == 1 / b[k]))
          assert(ok, string.format("%s: element %d is %s, expected %s", what, k, tostring(a[k]), tostring(b[k])))
        end
      end
      for _, n in ipairs {1, 63, 64, 65, 1000, N} do
        local v = values(n, 9)
        local rows = nn.tensor({v, v, v, v, v}, {dtype = dtype})
        -- rows 2 and 3: negative but for two zeros of opposite signs, at 9
        -- and 34, which the lanes meet in the other order; row 4: NaN;
        -- row 5: -0 last
        for j = 1, n do rows[2][j], rows[3][j], rows[5][j] = -v[j], -v[j], -v[j] end
        rows[2][math.min(9, n)], rows[2][math.min(34, n)] = -0.0, 0.0
        rows[3][math.min(9, n)], rows[3][math.min(34, n)] = 0.0, -0.0
        rows[5][n] = -0.0
        rows[4][math.max(1, n - 3)] = 0 / 0
        for _, t in ipairs {rows, rows:t():contiguous():t(), rows:repeatTensor(1, 2):narrow(2, 1, n)} do
          same_bits(t:amax(2), t:max(2), "amax n=" .. n)
          same_bits(t:amin(2), t:min(2), "amin n=" .. n)
          same_bits(t:amax(1), t:max(1), "amax down n=" .. n)
          same_bits(t:amin(1), t:min(1), "amin down n=" .. n)
          same_bits((-t):amin(2), (-t):min(2), "amin of the negated n=" .. n)
        end
        same_bits(rows[2]:amax(), rows[2]:max(), "amax of a line whose max is a zero")
        same_bits(rows[5]:amax(), rows[5]:max(), "amax of a line whose max is -0")
        same_bits(rows[3]:amin(), rows[3]:min(), "amin of a line whose min is a zero")
        same_bits(rows:amax(), rows:max(), "amax of all")
      end
      local s = nn.tensor(-0.0, {dtype = dtype})
      same_bits(s:amax(), s, "amax of a 0-dim tensor")
      local empty = nn.zeros(3, 0, {dtype = dtype})
      assert.are.same({0}, empty:amax(1):size())
      assert.has_error(function() empty:amax(2) end, "amax: the tensor is empty along the reduced dimension 2")
    end)

    it(dtype .. ": a strided line gives the bits of the same line contiguous", function()
      nn.manual_seed(7)
      local x = (nn.randn(N, 5) * 2):to(dtype)
      local rows = x:t():contiguous()
      for _, name in ipairs {"prod", "var", "std"} do
        local a, b = x[name](x, 1):totable(), rows[name](rows, 2):totable()
        for k = 1, #a do assert(a[k] == b[k], name .. " column " .. k) end
      end
      for _, p in ipairs {1, 2} do
        local a, b = x:norm(p, 1):totable(), rows:norm(p, 2):totable()
        for k = 1, #a do assert(a[k] == b[k], p .. "-norm column " .. k) end
      end
    end)

    it(dtype .. ": one thread and two give the same bits", function()
      nn.manual_seed(8)
      local x = nn.randn(300, 999):to(dtype)
      local v = nn.randn(999):to(dtype)
      same_at_both("prod", function() return (x * 0.1 + 1):prod(2) end)
      same_at_both("var", function() return x:var(2) end)
      same_at_both("std", function() return x:std() end)
      same_at_both("norm", function() return x:norm(2, 2) end)
      same_at_both("amax", function() return x:amax(2) end)
      same_at_both("mv", function() return x:mv(v) end)
      same_at_both("dot", function() return x:view(-1):dot(x:view(-1)) end)
      same_at_both("tril", function() return x:tril(3) end)
    end)
  end
end)

describe("count_nonzero, all and any of long lines", function()
  for _, dtype in ipairs {"bool", "uint8", "int8", "int32", "int64", "float32", "float64"} do
    it(dtype, function()
      local t, count = {}, 0
      for k = 1, N do
        t[k] = (k % 7 == 0 or k == N) and 1 or 0
        count = count + t[k]
      end
      local x = nn.tensor(t, {dtype = dtype})
      assert.are.equal(count, x:count_nonzero():item())
      assert.is_true(x:any():item())
      assert.is_false(x:all():item())
      local ones = nn.ones(N, {dtype = dtype})
      assert.is_true(ones:all():item())
      assert.are.equal(N, ones:count_nonzero():item())
      assert.is_false(nn.zeros(N, {dtype = dtype}):any():item())
      assert.are.same({count, count}, nn.stack({x, x}):count_nonzero(2):totable())
      if dtype == "bool" then -- a mask's sum is its count, through the same lanes
        assert.are.equal(count, x:sum():item())
        assert.are.same({count, count}, nn.stack({x, x}):sum(2):totable())
        assert.are.equal(2 * count, nn.stack({x, x}):sum():item())
      end
    end)
  end

  it("NaN counts as nonzero", function()
    local x = nn.zeros(N)
    x[N] = 0 / 0
    assert.are.equal(1, x:count_nonzero():item())
    assert.is_true(x:any():item())
  end)
end)

describe("dot, mv and outer", function()
  for _, dtype in ipairs {"float32", "float64"} do
    local rel = dtype == "float32" and 1e-6 or 1e-13
    it(dtype .. ": against a plain sum of the products", function()
      nn.manual_seed(9)
      local a, b = nn.randn(N):to(dtype), nn.randn(N):to(dtype)
      local at, bt, sum = a:totable(), b:totable(), 0
      for k = 1, N do sum = sum + at[k] * bt[k] end
      close(sum, a:dot(b):item(), rel, "dot")
      local m = nn.randn(5, N):to(dtype)
      local mt, got = m:totable(), m:mv(b):totable()
      for i = 1, 5 do
        local s = 0
        for k = 1, N do s = s + mt[i][k] * bt[k] end
        close(s, got[i], rel, "mv row " .. i)
      end
      -- a strided matrix and vector: the general loop
      local mts = m:t():contiguous():t()
      local got2 = mts:mv(b):totable()
      for i = 1, 5 do close(got[i], got2[i], rel, "strided mv row " .. i) end
      local o = a:narrow(1, 1, 7):outer(b:narrow(1, 1, 9))
      assert.are.same({7, 9}, o:size())
      local ot = o:totable()
      for i = 1, 7 do
        for j = 1, 9 do
          local e = nn.tensor({at[i] * bt[j]}, {dtype = dtype}):item() -- one rounding
          assert.are.equal(e, ot[i][j])
        end
      end
    end)
  end

  it("keep their autograd through the general fronts", function()
    local a = nn.tensor({1, 2, 3}, {requires_grad = true})
    local b = nn.tensor({4, 5, 6})
    local o = a:outer(b)
    assert.are.equal("MulBackward0", o.grad_fn)
    o:sum():backward()
    assert.are.same({15, 15, 15}, a.grad:totable())
    local d = a:dot(b)
    d:backward()
    assert.are.same({19, 20, 21}, a.grad:totable())
  end)
end)

describe("tril and triu", function()
  local function reference(t, k, upper)
    local out = {}
    for i, row in ipairs(t) do
      out[i] = {}
      for j, v in ipairs(row) do
        local keep = upper and (j - i >= k) or (not upper and j - i <= k)
        out[i][j] = keep and v or 0
      end
    end
    return out
  end

  for _, dtype in ipairs {"float32", "float64", "int64", "int16", "bool"} do
    it(dtype .. ": every k, against the definition", function()
      nn.manual_seed(10)
      local x = nn.rand(5, 7):gt(0.3):to(dtype)
      if dtype ~= "bool" then x = (nn.rand(5, 7) * 10):to(dtype) + 1 end
      local t = x:totable()
      for _, k in ipairs {-9, -5, -2, -1, 0, 1, 3, 6, 7, 20} do
        local lower, upper = reference(t, k, false), reference(t, k, true)
        if dtype == "bool" then
          for _, m in ipairs {lower, upper} do
            for _, row in ipairs(m) do
              for j, v in ipairs(row) do row[j] = v == true end
            end
          end
        end
        assert.are.same(lower, x:tril(k):totable(), "tril " .. k)
        assert.are.same(upper, x:triu(k):totable(), "triu " .. k)
      end
    end)
  end

  it("a batch of matrices, a transposed view, NaN and inf outside the band become 0", function()
    local x = nn.tensor({{{1, 2, 3}, {4, 5, 6}}, {{7, 8, 9}, {0 / 0, 1 / 0, 12}}})
    local low = x:tril():totable()
    assert.are.same({{1, 0, 0}, {4, 5, 0}}, low[1])
    assert.are.same({7, 0, 0}, low[2][1])
    assert(low[2][2][1] ~= low[2][2][1] and low[2][2][2] == 1 / 0 and low[2][2][3] == 0)
    local tri = x:triu(1):totable()
    assert.are.same({{{0, 2, 3}, {0, 0, 6}}, {{0, 8, 9}, {0, 0, 12}}}, tri)
    local t = nn.tensor({{1, 2}, {3, 4}, {5, 6}}):t() -- {{1, 3, 5}, {2, 4, 6}}
    assert.are.same({{1, 0, 0}, {2, 4, 0}}, t:tril():totable())
    assert.are.same({{0, 0}, {0, 0}}, nn.ones(2, 2):tril(-2):totable())
  end)

  it("keep their gradient", function()
    local x = nn.ones(3, 3, {requires_grad = true})
    local y = x:triu()
    assert.are.equal("TriuBackward0", y.grad_fn)
    y:sum():backward()
    assert.are.same({{1, 1, 1}, {0, 1, 1}, {0, 0, 1}}, x.grad:totable())
  end)
end)

describe("reductions of empty tensors", function()
  -- a size 0 among several reduced dims once divided by zero (SIGFPE)
  it("give PyTorch's identities over lines of no elements", function()
    local z = nn.zeros(4, 0)
    assert.are.equal(0, z:ne(0):sum():item())
    assert.are.equal(0, z:count_nonzero():item())
    assert.is_true(z:all():item())
    assert.are.same({false, false, false, false}, z:any(2):totable())
    assert.are.equal(0, nn.zeros(2, 0, 3):norm():item())
    assert.are.equal(0, nn.zeros(2, 0, 3):sum():item())
    assert.are.equal(1, nn.zeros(2, 0, 3):prod():item())
    assert.are.same({{1, 1, 1}, {1, 1, 1}}, nn.zeros(2, 0, 3):prod(2):totable())
  end)

  it("make var and std NaN with no more elements than the correction, as PyTorch's max(0, n - correction)", function()
    local function is_nan(v) return v ~= v end
    assert.is_true(is_nan(nn.zeros(4, 0):var():item()))
    assert.is_true(is_nan(nn.zeros(1):var():item()))
    assert.is_true(is_nan(nn.zeros(1, {dtype = "float64"}):std():item()))
    for _, v in ipairs(nn.zeros(4, 0):std(2):totable()) do assert.is_true(is_nan(v)) end
    assert.are.equal(0, nn.zeros(1):var(false):item())
  end)
end)

describe("amax, amin, max and min of float32 runs through the vector table's max and min", function()
  -- the processor's max and min instructions over blocks of 4 vectors (32
  -- or 64 floats), the last block read twice: every length around them,
  -- NaN, infinities and zeros anywhere, against a plain loop
  local function reference(v, want_max)
    local best, at = nil, nil
    for j = 1, #v do
      if v[j] ~= v[j] then return v[j], j end
      if best == nil or (want_max and v[j] > best) or (not want_max and v[j] < best) then best, at = v[j], j end
    end
    return best, at
  end
  local function same(expected, got, what)
    assert((expected ~= expected and got ~= got) or
      (expected == got and (expected ~= 0 or 1 / expected == 1 / got)),
      string.format("%s: got %s, expected %s", what, tostring(got), tostring(expected)))
  end
  it("every length from 64 to 200 and a long one, the extreme anywhere", function()
    local lengths = {}
    for n = 64, 200 do lengths[#lengths + 1] = n end
    lengths[#lengths + 1] = 4099
    for _, n in ipairs(lengths) do
      nn.manual_seed(n)
      local base = (nn.rand(n) * 2 - 1):totable()
      local cases = {{}, {[1] = 5}, {[n] = -5}, {[n // 2] = 1 / 0, [n - 1] = -1 / 0},
                     {[n] = 0 / 0}, {[1] = 0 / 0}, {[(n * 7) // 11] = 0 / 0}}
      for c, change in ipairs(cases) do
        local v = {table.unpack(base)}
        for j, x in pairs(change) do v[j] = x end
        local x = nn.tensor(v)
        for _, want_max in ipairs {true, false} do
          local e, at = reference(x:totable(), want_max)
          local what = string.format("n=%d case %d %s", n, c, want_max and "max" or "min")
          same(e, (want_max and x:amax() or x:amin()):item(), what .. " amax/amin")
          local value, index
          if want_max then value, index = x:max(1) else value, index = x:min(1) end
          same(e, value:item(), what .. " max/min value")
          assert.are.equal(at, index:item(), what .. " index")
        end
      end
    end
  end)
  it("zeros of both signs, all NaN, all equal, and rows of a matrix", function()
    for _, n in ipairs {64, 65, 100, 129} do
      local z = nn.zeros(n)
      z[n // 3] = -0.0
      same(0.0, z:amax():item(), "zeros, +0 first, amax n=" .. n)
      local m = nn.zeros(n)
      m[1] = -0.0
      same(-0.0, m:amin():item(), "zeros, -0 first, amin n=" .. n)
      local nan = nn.full({n}, 0 / 0)
      local v, i = nan:max(1)
      assert(v:item() ~= v:item(), "all NaN n=" .. n)
      assert.are.equal(1, i:item())
      same(3, nn.full({n}, 3):amin():item(), "all equal n=" .. n)
      nn.manual_seed(n)
      local rows = nn.rand(7, n)
      rows[3][n] = 0 / 0
      rows[5][1] = -1 / 0
      local mx, mn = rows:amax(2):totable(), rows:amin(2):totable()
      for r = 1, 7 do
        same((reference(rows[r]:totable(), true)), mx[r], "row " .. r .. " amax n=" .. n)
        same((reference(rows[r]:totable(), false)), mn[r], "row " .. r .. " amin n=" .. n)
      end
    end
  end)
end)

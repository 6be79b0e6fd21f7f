-- The CPU's sort (insertion sort up to 32 elements, a radix sort of order
-- keys beyond), its selection for kthvalue and median, topk, and the
-- reductions that walk rows when they reduce over the outer dim, checked
-- against a reference written here: a stable sort with NaN last (first when
-- descending), -0 tied with +0, in every dtype, at line lengths around the
-- kernels' thresholds (32: insertion/radix; 256 and 341: stack/heap
-- scratch), on contiguous and strided lines.
local nn = require "nn"

local DTYPES = {"float32", "float64", "int64", "int32", "int16", "int8", "uint8", "float16", "bfloat16"}
local LENGTHS = {1, 2, 17, 31, 32, 33, 300, 1000}

local function isnan(v) return v ~= v end
local function floating(dtype) return dtype:find("float") ~= nil end

-- Deterministic values with many ties, every value exact in every dtype
-- given; floats also get NaN, -0 and +0, and infinities.
local function line_values(n, dtype, seed)
  local t, s = {}, seed
  for j = 1, n do
    s = (s * 1103515245 + 12345) % 2147483648
    local r = s % 13
    local v = r - 6
    if dtype == "uint8" then v = r * 19 end
    if floating(dtype) then
      v = v / 2
      if r == 0 and j % 3 == 0 then v = 0 / 0 end
      if r == 6 then v = (j % 2 == 0) and -0.0 or 0.0 end
      if r == 12 and j % 5 == 0 then v = (j % 2 == 0) and 1 / 0 or -1 / 0 end
    end
    t[j] = v
  end
  return t
end

-- a before b in sort's order (strictly)
local function before(a, b, descending)
  if descending then
    if isnan(b) then return false end
    if isnan(a) then return true end
    return a > b
  end
  if isnan(a) then return false end
  if isnan(b) then return true end
  return a < b
end

-- the positions (1-based) of a stable sort of list
local function ref_order(list, descending)
  local order = {}
  for i = 1, #list do order[i] = i end
  table.sort(order, function(i, j)
    local a, b = list[i], list[j]
    if before(a, b, descending) then return true end
    if before(b, a, descending) then return false end
    return i < j
  end)
  return order
end

local function same_value(expected, got)
  if isnan(expected) then return isnan(got) end
  return expected == got and (expected ~= 0 or 1 / expected == 1 / got)
end

local function check_line(what, list, values, indices, order, count)
  for j = 1, count do
    local i = order[j]
    assert(indices[j] == i, string.format("%s: index %d is %s, expected %d", what, j, tostring(indices[j]), i))
    assert(same_value(list[i], values[j]),
           string.format("%s: value %d is %s, expected %s", what, j, tostring(values[j]), tostring(list[i])))
  end
end

-- a 3 x n tensor of three lines, and the lines as Lua lists
local function lines(n, dtype)
  local rows = {}
  for l = 1, 3 do rows[l] = line_values(n, dtype, 7 * l + n) end
  return nn.tensor(rows, {dtype = dtype}), rows
end

describe("sort, argsort, topk against a stable reference", function()
  for _, dtype in ipairs(DTYPES) do
    it(dtype .. ": every length around the thresholds, both orders, contiguous and strided", function()
      for _, n in ipairs(LENGTHS) do
        local x, rows = lines(n, dtype)
        for _, descending in ipairs {false, true} do
          local v, i = x:sort(2, descending)
          -- the same lines down the columns of the transpose: strided lines
          local vt, it_ = x:t():sort(1, descending)
          local ai = x:argsort(2, descending)
          for l = 1, 3 do
            local order = ref_order(rows[l], descending)
            local what = string.format("%s n=%d desc=%s line %d", dtype, n, tostring(descending), l)
            check_line(what, rows[l], v[l]:totable(), i[l]:totable(), order, n)
            check_line(what .. " strided", rows[l], vt:select(2, l):totable(), it_:select(2, l):totable(), order, n)
            assert.are.same(i[l]:totable(), ai[l]:totable())
          end
          for _, k in ipairs {1, math.min(3, n), n} do
            local tv, ti = x:topk(k, 2, descending)
            for l = 1, 3 do
              check_line(string.format("%s topk(%d) n=%d line %d", dtype, k, n, l), rows[l],
                         tv[l]:totable(), ti[l]:totable(), ref_order(rows[l], descending), k)
            end
          end
        end
      end
    end)
  end

  it("topk selects past its chunks of keys: k around the insertion limit, long and strided lines", function()
    -- topk (k <= 64) makes keys 256 at a time and keeps a sorted run of k
    for _, dtype in ipairs {"float32", "float64", "int32", "float16"} do
      for _, n in ipairs {255, 256, 257, 700} do
        local x, rows = lines(n, dtype)
        for _, descending in ipairs {false, true} do
          for _, k in ipairs {0, 2, 63, 64, 65} do
            local tv, ti = x:topk(k, 2, descending)
            local sv, si = x:t():topk(k, 1, descending)
            for l = 1, 3 do
              local what = string.format("%s topk(%d) n=%d desc=%s line %d", dtype, k, n, tostring(descending), l)
              local order = ref_order(rows[l], descending)
              check_line(what, rows[l], tv[l]:totable(), ti[l]:totable(), order, k)
              check_line(what .. " strided", rows[l], sv:select(2, l):totable(), si:select(2, l):totable(), order, k)
            end
          end
        end
      end
    end
    local v, i = nn.tensor(2.5):topk(1)
    assert.are.equal(2.5, v:item())
    assert.are.equal(1, i:item())
  end)

  it("keeps int64 exact beyond 2^53", function()
    local big = nn.full({1}, 2 ^ 53, {dtype = "int64"})
    local x = nn.cat({big + 1, big, big + 3, big + 2})
    local v, i = x:sort(1, true)
    assert.are.same({3, 4, 1, 2}, i:totable())
    assert.are.equal(1, (v[1] - v[2]):item())
    assert.are.equal(3, (v[1] - v[4]):item())
  end)

  it("keeps -0 and +0 in their places (ties)", function()
    local v, i = nn.tensor({0.0, -0.0, 0.0, -0.0, -1}):sort()
    assert.are.same({5, 1, 2, 3, 4}, i:totable())
    local t = v:totable()
    assert.are.equal(1 / 0, 1 / t[2])
    assert.are.equal(-1 / 0, 1 / t[3])
  end)
end)

describe("kthvalue and median by selection", function()
  for _, dtype in ipairs(DTYPES) do
    it(dtype .. ": the stable sort's element at rank k, NaN rules, strided lines", function()
      for _, n in ipairs(LENGTHS) do
        local x, rows = lines(n, dtype)
        for l = 1, 3 do
          local order = ref_order(rows[l], false)
          for _, k in ipairs {1, (n + 1) // 2, n} do
            local what = string.format("%s kthvalue(%d) n=%d line %d", dtype, k, n, l)
            local v, i = x:kthvalue(k, 2)
            assert.are.equal(order[k], i:totable()[l], what)
            assert(same_value(rows[l][order[k]], v:totable()[l]), what .. " value")
            local vt, itt = x:t():kthvalue(k, 1, true)
            assert.are.equal(order[k], itt:totable()[1][l], what .. " strided")
            assert(same_value(rows[l][order[k]], vt:totable()[1][l]), what .. " strided value")
          end
          -- median: the lower median; a line holding NaN gives its first NaN
          local first_nan
          for j = 1, n do
            if first_nan == nil and isnan(rows[l][j]) then first_nan = j end
          end
          local expected = first_nan or order[(n - 1) // 2 + 1]
          local mv, mi = x:median(2)
          local what = string.format("%s median n=%d line %d", dtype, n, l)
          assert.are.equal(expected, mi:totable()[l], what)
          assert(same_value(rows[l][expected], mv:totable()[l]), what .. " value")
        end
      end
    end)
  end

  it("sends the gradient to the picked element, with PyTorch's node names", function()
    local x = nn.tensor({{3, 1, 2}, {0, 5, 4}}, {requires_grad = true})
    local v = x:kthvalue(2, 2)
    assert.are.equal("KthvalueBackward0", v.grad_fn)
    local loss = (v * nn.tensor({1, 2})):sum()
    loss:backward()
    assert.are.same({{0, 0, 1}, {0, 0, 2}}, x.grad:totable())
    local y = nn.tensor({{3, 1, 2}, {0, 5, 4}}, {requires_grad = true})
    local m = y:median(1, true)
    assert.are.equal("MedianBackward1", m.grad_fn)
    m:sum():backward()
    assert.are.same({{0, 1, 1}, {1, 0, 0}}, y.grad:totable())
  end)
end)

-- A reduction over the outer dim walks rows (the loops swapped); over the
-- inner dim of the transpose made contiguous it walks each line: the
-- results must agree to the bit (the same order per output).
describe("reductions over the outer dim equal the line-by-line ones", function()
  local function same(expected, got, what)
    local e, g = expected:reshape(-1):totable(), got:reshape(-1):totable()
    assert.are.equal(#e, #g, what)
    for k = 1, #e do
      assert(same_value(e[k], g[k]), string.format("%s: element %d is %s, expected %s", what, k,
                                                    tostring(g[k]), tostring(e[k])))
    end
  end

  for _, dtype in ipairs {"float32", "float64"} do
    it(dtype .. ": sum, mean, prod, var, std, norms, amax, amin, max, min, logsumexp", function()
      nn.manual_seed(5)
      for _, shape in ipairs {{2, 3}, {40, 300}, {300, 17}} do
        local x = (nn.randn(shape[1], shape[2]) * 3):to(dtype)
        x[2][1], x[1][2] = 0 / 0, -0.0
        if shape[2] > 2 then x[1][3] = 1 / 0 end
        local rows = x:t():contiguous() -- the same lines, each contiguous
        local what = dtype .. " " .. shape[1] .. "x" .. shape[2]
        same(rows:sum(2), x:sum(1), what .. " sum")
        same(rows:mean(2), x:mean(1), what .. " mean")
        same(rows:prod(2), x:prod(1), what .. " prod")
        same(rows:var(2), x:var(1), what .. " var")
        same(rows:std(2), x:std(1), what .. " std")
        for _, p in ipairs {0, 1, 2, 3, 1 / 0, -1 / 0} do
          same(rows:norm(p, 2), x:norm(p, 1), what .. " norm " .. p)
        end
        same(rows:amax(2), x:amax(1), what .. " amax")
        same(rows:amin(2), x:amin(1), what .. " amin")
        local v1, i1 = rows:max(2)
        local v2, i2 = x:max(1)
        same(v1, v2, what .. " max")
        same(i1, i2, what .. " max indices")
        v1, i1 = rows:min(2)
        v2, i2 = x:min(1)
        same(v1, v2, what .. " min")
        same(i1, i2, what .. " min indices")
        -- logsumexp: float64 to the bit; float32's exps are nn_exp_f32's
        -- (under 2 ulp), summed in lanes along a contiguous line
        local a, b = rows:logsumexp(2), x:logsumexp(1)
        if dtype == "float64" then
          same(a, b, what .. " logsumexp")
        else
          local exact = rows:double():logsumexp(2):totable()
          for k, got in ipairs(b:totable()) do
            local e = exact[k]
            assert(isnan(e) and isnan(got) or e == got or math.abs(e - got) <= 1e-6 * math.max(1, math.abs(e)),
                   string.format("%s logsumexp %d: %s, expected %s", what, k, tostring(got), tostring(e)))
            assert(same_value(a:totable()[k], got) or math.abs(a:totable()[k] - got) <= 1e-6 * math.max(1, math.abs(e)))
          end
        end
      end
    end)
  end
end)

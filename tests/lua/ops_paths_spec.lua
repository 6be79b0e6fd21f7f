-- The one-pass paths of issue 12's toolkit ops (equal, full_like, clamp_min,
-- lerp, mv, outer, rand_like, take): each gives what the general path
-- gives (the ops it was made of, a strided copy of the operands, a plain
-- Lua loop), on contiguous, strided, broadcast, empty and 0-dim operands,
-- with NaN, and at one thread and two.
local nn = require "nn"

local BIG = 3 * 32 * 1024 + 37 -- past the pool's two grains, past a block, with a tail

-- fn() at one thread and at two
local function at_threads(fn)
  local saved = nn.get_num_threads()
  local results = {}
  for n = 1, 2 do
    nn.set_num_threads(n)
    results[n] = fn()
  end
  nn.set_num_threads(saved)
  return results[1], results[2]
end

-- what eq then all answers: the definition equal keeps
local function equal_by_eq(a, b)
  if #a:size() ~= #b:size() then return false end
  for d = 1, a:dim() do if a:size(d) ~= b:size(d) then return false end end
  return a:numel() == 0 or a:eq(b):all():item()
end

describe("equal's one pass", function()
  it("answers as eq and all, contiguous, strided, expanded, empty and 0-dim", function()
    nn.manual_seed(3)
    local x = nn.rand(BIG)
    local cases = {
      {x, x:clone()}, {nn.zeros(0), nn.zeros(0)}, {nn.zeros(0, 3), nn.zeros(0, 3)},
      {nn.tensor(2.5), nn.tensor(2.5)}, {nn.tensor(2.5), nn.tensor(-2.5)},
      {nn.tensor({0.0}), nn.tensor({-0.0})}, {nn.tensor({0 / 0}), nn.tensor({0 / 0})},
    }
    local m = nn.rand(300, 301)
    cases[#cases + 1] = {m:t(), m:t():contiguous()}
    cases[#cases + 1] = {m:t():contiguous(), m:t()}
    local row = nn.rand(1, 301)
    cases[#cases + 1] = {row:expand(300, 301), row:expand(300, 301):contiguous()}
    for _, where in ipairs({1, 2, BIG // 2, BIG - 1, BIG}) do -- a difference anywhere, the tail too
      local y = x:clone()
      y[where] = y[where] + 1
      cases[#cases + 1] = {x, y}
      local z = x:clone()
      z[where] = 0 / 0
      cases[#cases + 1] = {z, z}
    end
    for i, c in ipairs(cases) do
      local one, two = at_threads(function() return c[1]:equal(c[2]) end)
      local expected = equal_by_eq(c[1], c[2])
      assert(one == expected and two == expected, "case " .. i .. ": expected " .. tostring(expected))
    end
  end)

  it("compares every dtype by value", function()
    for _, dtype in ipairs({"float64", "float16", "bfloat16", "int64", "int32", "int16", "int8", "uint8", "bool"}) do
      nn.manual_seed(4)
      local x = (nn.rand(BIG) * 100):to(dtype)
      local y = x:clone()
      assert.is_true(x:equal(y), dtype)
      if dtype == "bool" then y[BIG] = not y[BIG]:item() else y[BIG] = y[BIG] - 1 end
      assert.is_false(x:equal(y), dtype .. " last element")
      local s = nn.zeros(BIG, 2, {dtype = dtype})
      s:select(2, 1):copy_(x)
      assert.is_true(s:select(2, 1):equal(x), dtype .. " strided")
    end
    local h = nn.tensor({0.0, 1 / 0}, {dtype = "float16"})
    assert.is_true(h:equal(nn.tensor({-0.0, 1 / 0}, {dtype = "float16"})))
    assert.is_false(nn.tensor({0 / 0}, {dtype = "float64"}):equal(nn.tensor({0 / 0}, {dtype = "float64"})))
  end)

  it("compares mixed dtypes in their common type, as before", function()
    assert.is_true(nn.tensor({1, 2}):equal(nn.tensor({1, 2}, {dtype = "float64"})))
    assert.is_true(nn.tensor({1, 2}, {dtype = "int64"}):equal(nn.tensor({1, 2})))
    assert.is_false(nn.tensor({1, 2.5}):equal(nn.tensor({1, 2}, {dtype = "int64"})))
  end)
end)

-- a tensor of n float32 whose elements lie 2 apart: the draws' walk takes
-- them in the same order as a contiguous tensor's, through the general loop
local function strided(n, dtype)
  return nn.zeros(n, 2, {dtype = dtype}):select(2, 1)
end

describe("rand_like's runs of draws", function()
  it("draws what the strided loop draws, across twists, for any from and to", function()
    -- float64 takes two words a draw: 312 draws a twist, 1024 a run
    for _, dtype in ipairs({"float32", "float64"}) do
      for _, sizes in ipairs({{7, 623, 1, 624, 2049, 5000}, {624}, {1, 1, 625}, {0, 3, BIG},
                              {311, 1, 312, 1023, 1025, 313}}) do
        for _, range in ipairs({{0, 1}, {-2.5, 7}, {3, 3}}) do
          nn.manual_seed(11)
          local fast = {}
          for i, n in ipairs(sizes) do fast[i] = nn.empty(n, {dtype = dtype}):uniform_(range[1], range[2]) end
          local after = nn.rand(3)
          nn.manual_seed(11)
          for i, n in ipairs(sizes) do
            local slow = strided(n, dtype):uniform_(range[1], range[2])
            assert.is_true(fast[i]:equal(slow), string.format("%s run %d of %d, [%g, %g)", dtype, i, n,
              range[1], range[2]))
          end
          assert.is_true(after:equal(strided(3):uniform_(0, 1)), "the generator after them")
        end
      end
    end
    nn.manual_seed(12)
    local like = nn.rand_like(nn.zeros(30, 40))
    nn.manual_seed(12)
    assert.is_true(like:equal(strided(1200):uniform_(0, 1):view(30, 40)))
  end)
end)

describe("mv and dot without views", function()
  it("give the same bits for strided, transposed, one-row and empty operands", function()
    nn.manual_seed(13)
    local a, v = nn.rand(37, 301), nn.rand(301)
    local expected = a:mv(v)
    assert.are.same({37}, expected:size())
    local sv = nn.zeros(301, 3)
    sv:select(2, 2):copy_(v)
    assert.is_true(a:mv(sv:select(2, 2)):equal(expected), "strided v")
    local at = a:t():contiguous():t()
    assert.is_true(at:mv(v):equal(expected), "transposed a")
    for i = 1, 37 do
      local row = a:narrow(1, i, 1)
      assert.is_true(row:mv(v):equal(expected:narrow(1, i, 1)), "row " .. i)
      local d = a[i]:dot(v)
      assert.are.same({}, d:size())
      assert.are.equal(expected[i]:item(), d:item(), "dot of row " .. i)
    end
    nn.manual_seed(14)
    local big, bv = nn.rand(3000, 70), nn.rand(70)
    local one, two = at_threads(function() return big:mv(bv) end)
    assert.is_true(one:equal(two), "one thread and two")
    assert.are.same({0}, nn.zeros(0, 3):mv(nn.zeros(3)):size())
    assert.are.same({0, 0}, {nn.zeros(2, 0):mv(nn.zeros(0)):sum():item(), nn.zeros(0):dot(nn.zeros(0)):item()})
    assert.are.same({2}, nn.zeros(2, 0):mv(nn.zeros(0)):size())
    local d = nn.rand(5, {dtype = "float64"})
    assert.are.equal(d:dot(d):item(), d:view(1, 5):mv(d)[1]:item(), "float64")
  end)
end)

describe("lerp's one pass", function()
  -- the ops lerp was made of, each rounded to the dtype
  local function composed(s, e, w)
    if w < 0.5 then return s + (e - s) * w end
    return e - (e - s) * (1 - w)
  end

  it("gives the bits of sub, mul and add, contiguous, strided, at one thread and two", function()
    for _, dtype in ipairs({"float32", "float64"}) do
      nn.manual_seed(15)
      local s, e = (nn.randn(BIG) * 1e3):to(dtype), nn.randn(BIG):to(dtype)
      s[1], s[2], e[3], e[4] = 0 / 0, 1 / 0, -1 / 0, 1e-40
      for _, w in ipairs({0.3, 0, 0.5, 1, -2, 7.25, 0 / 0, 1 / 3}) do
        local expected = composed(s, e, w)
        local one, two = at_threads(function() return s:lerp(e, w) end)
        local what = string.format("%s w = %g", dtype, w)
        assert.is_true(one:eq(expected):logical_or(one:isnan():logical_and(expected:isnan())):all():item(), what)
        assert.is_true(one:eq(two):logical_or(one:isnan()):all():item(), what .. ", two threads")
        local ss = nn.zeros(BIG, 2, {dtype = dtype})
        ss:select(2, 2):copy_(s)
        local strided = ss:select(2, 2):lerp(e, w)
        assert.is_true(strided:eq(one):logical_or(one:isnan()):all():item(), what .. ", strided")
      end
    end
  end)

  it("keeps the composed path for broadcast, half, empty and 0-dim operands and for autograd", function()
    local s, e = nn.rand(4, 5), nn.rand(5)
    assert.is_true(s:lerp(e, 0.3):equal(composed(s, e, 0.3)))
    local h = nn.rand(9):half()
    assert.is_true(h:lerp(h * 2, 0.7):equal(composed(h, h * 2, 0.7)))
    assert.are.same({0, 3}, nn.zeros(0, 3):lerp(nn.zeros(0, 3), 0.3):size())
    assert.are.equal(2.5, nn.tensor(1):lerp(nn.tensor(6), 0.3):item())
    local x = nn.rand(3, {requires_grad = true})
    local y = x:lerp(nn.ones(3), 0.25)
    assert.is_not_nil(y.grad_fn)
    y:sum():backward()
    assert.is_true(x.grad:equal(nn.full({3}, 0.75)))
  end)
end)

describe("clamp's contiguous float32 loop", function()
  -- min(max(x, lo), hi) element by element in Lua: NaN stays NaN, -0 stays -0
  local function clamp_ref(v, lo, hi)
    if v ~= v then return v end
    if v < lo then v = lo end
    if v > hi then v = hi end
    return v
  end
  local function check(got, x, lo, hi, what)
    local g, xv = got:tolist(), x:tolist()
    assert.are.equal(#xv, #g, what)
    for i = 1, #xv do
      local w = clamp_ref(xv[i], lo, hi)
      local same = (w ~= w and g[i] ~= g[i]) or (g[i] == w and 1 / g[i] == 1 / w)
      if not same then error(string.format("%s: element %d is %s, expected %s", what, i, g[i], w)) end
    end
  end

  it("gives the strided loop's values, in place and not, on every length to past a vector", function()
    for _, n in ipairs({1, 7, 8, 15, 16, 17, 31, 33, 64, 67, BIG}) do
      nn.manual_seed(n)
      local x = nn.randn(n) * 2
      if n >= 4 then x[1], x[2], x[3], x[4] = 0 / 0, -0.0, 1 / 0, -1 / 0 end
      for _, b in ipairs({{0.5, 1 / 0}, {-1 / 0, 0.25}, {-0.5, 0.5}, {0, 0}}) do
        local lo, hi = b[1], b[2]
        local what = string.format("n = %d, [%g, %g]", n, lo, hi)
        local one, two = at_threads(function() return x:clamp(lo, hi) end)
        check(one, x, lo, hi, what)
        assert.is_true(one:eq(two):logical_or(one:isnan()):all():item(), what .. ", two threads")
        -- the strided loop: the same elements every other one of a wider tensor
        local wide = nn.zeros(n, 2)
        wide:select(2, 1):copy_(x)
        check(wide:select(2, 1):clamp(lo, hi), x, lo, hi, what .. ", strided")
        local y = x:clone()
        y:clamp_(lo, hi)
        check(y, x, lo, hi, what .. ", in place")
      end
      check(x:clamp_min(0.5), x, 0.5, 1 / 0, "clamp_min n = " .. n)
      check(x:clamp_max(0.5), x, -1 / 0, 0.5, "clamp_max n = " .. n)
    end
  end)
end)

describe("bool results of contiguous runs (compiled for each vector width)", function()
  it("logical ops of bools and comparisons of float32 give the strided loop's bools, every length", function()
    local lengths = {}
    for n = 0, 130 do lengths[#lengths + 1] = n end
    lengths[#lengths + 1] = BIG
    for _, n in ipairs(lengths) do
      nn.manual_seed(n + 1)
      local x, y = nn.rand(2, n), nn.rand(2, n)
      if n > 3 then x[1][n], y[1][n - 1], x[2][2] = 0 / 0, 0 / 0, 1 / 0 end
      local a, b = x:gt(0.5), y:le(0.5)
      -- row 1 contiguous, the same values strided (every other column of a copy)
      local as = nn.cat({a, a}, 1):t():contiguous():t():narrow(1, 1, 2)
      local bs = nn.cat({b, b}, 1):t():contiguous():t():narrow(1, 1, 2)
      local xs, ys = x:t():contiguous():t(), y:t():contiguous():t()
      for _, op in ipairs {"logical_and", "logical_or", "logical_xor", "eq", "ne"} do
        local fast, slow = a[op](a, b), as[op](as, bs)
        assert.are.same(slow:totable(), fast:totable(), op .. " n=" .. n)
        assert.are.equal("bool", fast.dtype)
      end
      for _, op in ipairs {"eq", "ne", "gt", "ge", "lt", "le"} do
        assert.are.same(xs[op](xs, ys):totable(), x[op](x, y):totable(), op .. " n=" .. n)
      end
      local one, two = at_threads(function() return a:logical_and(b):totable() end)
      assert.are.same(one, two, "threads n=" .. n)
    end
  end)
end)

describe("totable and tolist", function()
  -- the reference: element by element through indexing and item()
  local function by_items(t)
    if t:dim() == 0 then return t:item() end
    local out = {}
    for i = 1, t:size(1) do out[i] = by_items(t[i]) end
    return out
  end
  local function same(a, b, what)
    if type(a) == "table" then
      assert.are.equal("table", type(b), what)
      assert.are.equal(#a, #b, what)
      for k = 1, #a do same(a[k], b[k], what .. "[" .. k .. "]") end
      return
    end
    assert.are.equal(math.type(a), math.type(b), what .. " type")
    assert((a ~= a and b ~= b) or (a == b and (a ~= 0 or type(a) ~= "number" or 1 / a == 1 / b)),
      string.format("%s: %s, expected %s", what, tostring(b), tostring(a)))
  end

  it("gives each element's value for every dtype, strided, 0-sized and 0-dim", function()
    nn.manual_seed(3)
    local x = nn.rand(3, 4, 5) * 10 - 5
    x[1][1][1], x[2][2][2], x[3][3][3] = 0 / 0, -0.0, 1 / 0
    for _, dtype in ipairs {"float32", "float64", "float16", "int64", "int32", "uint8", "bool"} do
      local t = dtype == "bool" and x:gt(0) or x:to(dtype)
      for _, v in ipairs {t, t:transpose(1, 3), t:narrow(2, 2, 2), t[2], t:view(-1), t:narrow(1, 1, 0),
                          t[1][2][3], t[{{}, {1, 3}, 2}], t:narrow(3, 1, 1)} do
        local what = dtype .. " " .. table.concat(v:size(), "x")
        same(by_items(v), v:totable(), what)
        same(by_items(v), v:tolist(), what .. " tolist")
      end
    end
    assert.are.same({{}, {}}, nn.zeros(2, 0, 3):tolist())
    local ok, err = pcall(function() return nn.zeros(2):tolist(1) end)
    assert.is_false(ok)
    assert.truthy(tostring(err):find("tolist", 1, true), err)
  end)
end)

describe("randperm's pieces of draws", function()
  it("is the Fisher-Yates walk over the generator's 32-bit words, across pieces and twists", function()
    for _, n in ipairs {0, 1, 2, 3, 623, 1024, 1025, 1026, 2049, 5000} do
      nn.manual_seed(21)
      local got = nn.randperm(n):totable()
      local after = nn.rand(2)
      nn.manual_seed(21) -- the same words, each below 2^32 - 1 (randint's range) for this seed
      local words = n > 1 and nn.randint(0, 4294967295, {n - 1}):totable() or {}
      local perm = {}
      for i = 1, n do perm[i] = i end
      for i = 1, n - 1 do
        local z = i + words[i] % (n - i + 1)
        perm[i], perm[z] = perm[z], perm[i]
      end
      assert.are.same(perm, got, "randperm(" .. n .. ")")
      assert.is_true(after:equal(nn.rand(2)), "the generator after randperm(" .. n .. ")")
    end
  end)
end)

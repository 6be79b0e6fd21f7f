-- The indexing ops' fast paths against plain Lua loops: gather, scatter,
-- scatter_add, take and index_select read the index tensor in one pass
-- when no gradient is needed (index_checked), a mask over a block of dims
-- becomes flat positions, t[mask] = value is one masked pass, nonzero walks
-- each run with a loop of its dtype, and copies move bytes. Each is checked
-- in every dtype the op takes, on odd sizes, non-contiguous inputs,
-- negative dims, repeated indices and empty tensors, and against the path
-- a gradient takes (which makes an offsets tensor first).
local nn = require "nn"
local support = dofile((os.getenv("NN_ROOT") or ".") .. "/tests/lua/support.lua")
local flat, expect_error = support.flat, support.expect_error

local DTYPES = {"float32", "float64", "float16", "bfloat16", "int64", "int32", "int16", "int8",
                "uint8", "bool"}
local FLOATS = {float32 = true, float64 = true, float16 = true, bfloat16 = true}

local function long(t) return nn.tensor(t, {dtype = "int64"}) end

-- small whole numbers (exact in every dtype, sums too) of a shape
local function values(shape, dtype, seed)
  nn.manual_seed(seed or 1)
  local t = nn.randint(0, 6, shape)
  if dtype == "bool" then return t:gt(2) end
  return t:to(dtype)
end

local function numel(size) local n = 1; for _, s in ipairs(size) do n = n * s end; return n end

-- 1-based coordinates of the 0-based flat position i, and back
local function coords(i, size)
  local c = {}
  for d = #size, 1, -1 do c[d] = i % size[d] + 1; i = i // size[d] end
  return c
end
local function position(c, size)
  local i = 0
  for d = 1, #size do i = i * size[d] + (c[d] - 1) end
  return i + 1
end

local function sizes(t) local s = {}; for d = 1, t:dim() do s[d] = t:size(d) end; return s end

local function same(got, want, what)
  local g, w = flat(got), want
  assert.are.equal(#w, #g, what .. ": element count")
  for i = 1, #w do
    if g[i] ~= w[i] then error(string.format("%s: element %d is %s, expected %s", what, i, tostring(g[i]), tostring(w[i]))) end
  end
end

local function ref_gather(x, dim, idx)
  local xs, is, xv, iv, out = sizes(x), sizes(idx), flat(x), flat(idx), {}
  for i = 0, numel(is) - 1 do
    local c = coords(i, is)
    c[dim] = iv[i + 1]
    out[i + 1] = xv[position(c, xs)]
  end
  return out
end

local function ref_scatter(x, dim, idx, src, add)
  local xs, is, ss, out, iv, sv = sizes(x), sizes(idx), sizes(src), flat(x), flat(idx), flat(src)
  for i = 0, numel(is) - 1 do
    local c = coords(i, is)
    local v = sv[position(c, ss)]
    c[dim] = iv[i + 1]
    local at = position(c, xs)
    out[at] = add and out[at] + v or v
  end
  return out
end

local function wrap(dim, n) return dim < 0 and dim + n + 1 or dim end

describe("gather, scatter and scatter_add in one pass", function()
  -- x's shape, the dim, the index's shape (odd sizes, a negative dim, 3-d)
  local SHAPES = {
    {{5, 7}, 2, {5, 9}}, {{5, 7}, 1, {3, 7}}, {{3, 4, 5}, -1, {3, 2, 11}},
    {{3, 4, 5}, 2, {2, 6, 5}}, {{1, 13}, -2, {4, 13}}, {{4, 3}, 2, {4, 0}},
  }
  for _, dtype in ipairs(DTYPES) do
    it("match plain loops in " .. dtype .. " (repeated indices, non-contiguous inputs)", function()
      for k, case in ipairs(SHAPES) do
        local xs, dim, is = case[1], case[2], case[3]
        local d = wrap(dim, #xs)
        local x = values(xs, dtype, k)
        nn.manual_seed(10 + k)
        local idx = nn.randint(1, xs[d] + 1, is)
        local src = values(is, dtype, 20 + k)
        local what = dtype .. " case " .. k
        same(x:gather(dim, idx), ref_gather(x, d, idx), what .. " gather")
        same(x:scatter(dim, idx, src), ref_scatter(x, d, idx, src), what .. " scatter")
        if dtype ~= "bool" then
          same(x:scatter_add(dim, idx, src), ref_scatter(x, d, idx, src, true), what .. " scatter_add")
        end
        -- transposed copies: the same values through other strides
        if #xs == 2 and is[2] > 0 then
          local xt, it_, st = x:t():contiguous():t(), idx:t():contiguous():t(), src:t():contiguous():t()
          if xs[1] > 1 then assert.is_false(xt:is_contiguous()) end
          same(xt:gather(dim, it_), ref_gather(x, d, idx), what .. " gather, strided")
          same(xt:scatter(dim, it_, st), ref_scatter(x, d, idx, src), what .. " scatter, strided")
        end
      end
    end)
  end

  it("keep the last write of a repeated index and sum in order, as the gradient path does", function()
    -- (rows of 1030 indices: two blocks of 512 and a tail the unrolled loops leave)
    for _, dtype in ipairs({"float32", "float64", "float16", "bfloat16"}) do
     for _, shape in ipairs({{6, 33, 40}, {3, 700, 1030}}) do
      nn.manual_seed(3)
      local x = nn.randn(shape[1], shape[2]):mul(4):to(dtype)
      local src = nn.randn(shape[1], shape[3]):mul(4):to(dtype)
      local idx = nn.randint(1, shape[2] + 1, {shape[1], shape[3]})
      local xg = x:clone():requires_grad_(true)
      -- with a gradient: offsets first; without: one pass; to the bit
      same(x:scatter_add(2, idx, src), flat(xg:scatter_add(2, idx, src):detach()), dtype .. " scatter_add")
      same(x:scatter(2, idx, src), flat(xg:scatter(2, idx, src):detach()), dtype .. " scatter")
      same(x:gather(2, idx), flat(xg:gather(2, idx):detach()), dtype .. " gather")
      same(x:take(idx), flat(xg:take(idx):detach()), dtype .. " take")
     end
    end
  end)

  it("scatter a number over the index's shape", function()
    local x = nn.zeros(3, 4)
    same(x:scatter(2, long({{1, 1}, {4, 2}, {3, 3}}), 7.5),
         {7.5, 0, 0, 0, 0, 7.5, 0, 7.5, 0, 0, 7.5, 0}, "scatter of a number")
  end)

  it("refuse an index out of range with the same message on either path", function()
    local x = nn.rand(3, 4)
    local xg = x:clone():requires_grad_(true)
    for _, t in ipairs({x, xg}) do
      expect_error(function() return t:gather(2, long({{1, 5}, {1, 1}, {1, 1}})) end,
                   "gather: index 5 is out of range for dimension 2 of size 4")
      expect_error(function() return t:gather(2, long({{1, 2}, {0, 1}, {1, 1}})) end,
                   "gather: index 0 is out of range (indices count from 1)")
      expect_error(function() return t:gather(2, long({{1, 2}, {1, 1}, {-1, 1}})) end,
                   "gather: index -1 is out of range for dimension 2 of size 4")
      expect_error(function() return t:scatter(1, long({{1, 4}}), nn.ones(1, 2)) end,
                   "scatter: index 4 is out of range for dimension 1 of size 3")
      expect_error(function() return t:scatter_add(1, long({{2, 0}}), nn.ones(1, 2)) end,
                   "scatter_add: index 0 is out of range (indices count from 1)")
      expect_error(function() return t:take(long({13})) end,
                   "take: index 13 is out of range for a tensor of 12 elements")
      expect_error(function() return t:take(long({-13})) end,
                   "take: index -13 is out of range for a tensor of 12 elements")
      expect_error(function() return t:index_select(2, long({2, 5})) end,
                   "index_select: index 5 is out of range for dimension 2 of size 4")
    end
    -- the first one out of range in order is named, past a block's end too
    local big = nn.zeros(2, 1000)
    local idx = nn.ones({2, 1000}, {dtype = "int64"})
    idx[{2, 700}] = 1001
    idx[{2, 900}] = 0
    expect_error(function() return big:gather(2, idx) end, "index 1001 is out of range")
  end)
end)

describe("take and index_select in one pass", function()
  for _, dtype in ipairs(DTYPES) do
    it("match plain loops in " .. dtype, function()
      local x = values({5, 7}, dtype, 4)
      local xv = flat(x)
      local idx = long({{1, 35, -1}, {-35, 17, 17}})
      local want = {xv[1], xv[35], xv[35], xv[1], xv[17], xv[17]}
      same(x:take(idx), want, dtype .. " take")
      same(x:t():take(idx), flat(x:t():contiguous():take(idx)), dtype .. " take of a transposed tensor")
      local cols = long({7, 1, 7, 3})
      local got = x:index_select(2, cols)
      local w = {}
      for r = 1, 5 do for _, c in ipairs({7, 1, 7, 3}) do w[#w + 1] = xv[(r - 1) * 7 + c] end end
      same(got, w, dtype .. " index_select")
      local row5 = {table.unpack(xv, 29, 35)}
      same(x:index_select(-2, long({5, 5})), {table.unpack(table.move(row5, 1, 7, 8, {table.unpack(row5)}))},
           dtype .. " index_select rows")
      assert.are.same({5, 0}, sizes(x:index_select(2, long({}))))
      assert.are.same({0}, sizes(x:take(long({}))))
    end)
  end
end)

describe("masks", function()
  local function ref_select(x, m)
    local xv, mv, out = flat(x), flat(m), {}
    for i = 1, #xv do if mv[i] then out[#out + 1] = xv[i] end end
    return out
  end

  for _, dtype in ipairs(DTYPES) do
    it("t[mask], masked_select and t[mask] = v in " .. dtype, function()
      local x = values({7, 9}, dtype, 5)
      nn.manual_seed(6)
      local m = nn.rand(7, 9):gt(0.4)
      same(x[m], ref_select(x, m), dtype .. " t[mask]")
      same(x:masked_select(m), ref_select(x, m), dtype .. " masked_select")
      -- a transposed tensor and mask: the same elements in its own order
      same(x:t()[m:t()], ref_select(x:t():contiguous(), m:t():contiguous()), dtype .. " t[mask] strided")
      local fill = dtype == "bool" and true or 3
      local y = x:clone()
      y[m] = fill
      local want, xv, mv = {}, flat(x), flat(m)
      for i = 1, #xv do want[i] = mv[i] and (dtype == "bool" and true or 3) or xv[i] end
      same(y, want, dtype .. " t[mask] = number")
      -- into a transposed view (its dims do not lie as one block)
      local z = x:clone():t()
      z[m:t()] = fill
      same(z:t(), want, dtype .. " t[mask] = number through a transposed view")
      -- a tensor of the selected count
      local n = #ref_select(x, m)
      local v = values({n}, dtype, 7)
      local w = x:clone()
      w[m] = v
      local vv, j = flat(v), 0
      for i = 1, #xv do if mv[i] then j = j + 1; want[i] = vv[j] else want[i] = xv[i] end end
      same(w, want, dtype .. " t[mask] = tensor")
    end)
  end

  it("a mask over the leading dims selects whole rows", function()
    local x = nn.arange(1, 25):view(2, 3, 4)
    local m = nn.tensor({{true, false, true}, {false, false, true}}, {dtype = "bool"})
    same(x[m], {1, 2, 3, 4, 9, 10, 11, 12, 21, 22, 23, 24}, "rows")
    local y = x:clone()
    y[m] = 0
    same(y[m], {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, "rows assigned")
    same(y[m:logical_not()], flat(x[m:logical_not()]), "rows left")
    local z = x:clone():transpose(1, 2):contiguous():transpose(1, 2) -- strided over the mask
    z[m] = -1
    same(z[m], {-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1}, "strided rows assigned")
    same(z, flat(y:masked_fill(m:unsqueeze(3), -1)), "strided rows against masked_fill")
  end)

  it("a value of another dtype is converted, an all-false or empty mask writes nothing", function()
    local x = nn.tensor({{1.5, 2.5}, {3.5, 4.5}})
    local y = x:clone()
    y[x:gt(2)] = nn.tensor(7, {dtype = "int64"})
    same(y, {1.5, 7, 7, 7}, "an int64 value into float32")
    local z = x:clone()
    z[x:gt(10)] = 0
    same(z, flat(x), "all false")
    local e = nn.zeros(0, 3)
    e[e:gt(0)] = 1
    assert.are.same({0}, sizes(e[e:gt(0)]))
    -- t[mask] = v refuses a mask of another shape, as before
    expect_error(function() x[nn.ones(3, {dtype = "bool"})] = 0 end, "does not match the tensor's")
  end)

  it("t[mask] = value bumps the version that backward checks", function()
    local a = nn.rand(3, 3):requires_grad_(true)
    local b = a * 1
    local c = b * b
    nn.no_grad(function() b[b:gt(2)] = 0 end)
    expect_error(function() c:sum():backward() end, "changed by an in-place operation")
  end)
end)

describe("nonzero", function()
  local function ref_nonzero(t)
    local s, v, out = sizes(t), flat(t), {}
    for i = 1, #v do
      local x = v[i]
      if x ~= 0 and x ~= false then
        for _, c in ipairs(coords(i - 1, s)) do out[#out + 1] = c end
      end
    end
    return out
  end

  for _, dtype in ipairs(DTYPES) do
    it("finds the nonzero elements in " .. dtype .. " (odd sizes, strided, 1-d to 3-d)", function()
      for k, shape in ipairs({{17}, {5, 7}, {3, 1, 9}, {4, 0}, {1, 1}}) do
        local t = values(shape, dtype, 30 + k)
        same(t:nonzero(), ref_nonzero(t), dtype .. " shape " .. k)
        if #shape >= 2 then
          local tt = t:transpose(1, #shape)
          same(tt:nonzero(), ref_nonzero(tt:contiguous()), dtype .. " transposed " .. k)
        end
      end
    end)
  end

  it("counts -0 as zero and NaN as nonzero in every float dtype", function()
    for dtype in pairs(FLOATS) do
      local t = nn.tensor({0, -0.0, 0 / 0, 1, -1e-3}):to(dtype)
      same(t:nonzero(), {3, 4, 5}, dtype)
    end
  end)

  it("of a 0-d tensor is one empty row or none", function()
    assert.are.same({1, 0}, sizes(nn.tensor(3):nonzero()))
    assert.are.same({0, 0}, sizes(nn.tensor(0):nonzero()))
  end)
end)

describe("copies", function()
  for _, dtype in ipairs(DTYPES) do
    it("cat, flip, roll and repeat in " .. dtype, function()
      local x = values({3, 5}, dtype, 40)
      local y = values({2, 5}, dtype, 41)
      local xv, yv = flat(x), flat(y)
      local want = {}
      for i = 1, 15 do want[i] = xv[i] end
      for i = 1, 10 do want[15 + i] = yv[i] end
      same(nn.cat({x, y}), want, dtype .. " cat")
      local f, r, p = {}, {}, {}
      for row = 0, 2 do
        for c = 1, 5 do
          f[row * 5 + c] = xv[row * 5 + 6 - c]
          r[row * 5 + c] = xv[row * 5 + (c - 2) % 5 + 1]
        end
      end
      same(x:flip(2), f, dtype .. " flip")
      same(x:roll(1, 2), r, dtype .. " roll")
      for k = 1, 2 do for i = 1, 15 do p[#p + 1] = xv[i] end end
      same(x:repeatTensor(2, 1), p, dtype .. " repeat")
      same(x:t():flip(1), flat(x:t():contiguous():flip(1)), dtype .. " flip of a transposed tensor")
    end)
  end
end)

describe("the one-pass loops' cases", function()
  -- along the last dim (a scale of 1: a loop without a multiply) and along
  -- the first (any scale); rows of every length around the loop's turn of
  -- 8 and a block of 512; take's negative indices in 4- and 8-byte dtypes
  it("match plain loops along either dim, on rows of every length to past a block", function()
    for _, dtype in ipairs({"float32", "float64", "int64", "int32", "float16"}) do
      for _, n in ipairs({1, 7, 8, 9, 15, 16, 17, 511, 512, 513, 1031}) do
        for _, dim in ipairs({2, 1}) do
          local xs = dim == 2 and {3, 5} or {5, 3}
          local is = dim == 2 and {3, n} or {n, 3}
          local x = values(xs, dtype, n)
          nn.manual_seed(100 + n)
          local idx = nn.randint(1, 6, is)
          local src = values(is, dtype, 200 + n)
          local what = string.format("%s n = %d dim %d", dtype, n, dim)
          same(x:gather(dim, idx), ref_gather(x, dim, idx), what .. " gather")
          same(x:scatter(dim, idx, src), ref_scatter(x, dim, idx, src), what .. " scatter")
          same(x:scatter_add(dim, idx, src), ref_scatter(x, dim, idx, src, true), what .. " scatter_add")
        end
        local x = values({4, 5}, dtype, n)
        local xv = flat(x)
        nn.manual_seed(300 + n)
        local idx = nn.randint(-20, 21, {n})
        idx[idx:eq(0)] = 20
        local want = {}
        for i, v in ipairs(flat(idx)) do want[i] = xv[v < 0 and v + 21 or v] end
        same(x:take(idx), want, dtype .. " take n = " .. n)
      end
    end
  end)

  it("name the first index out of range in a later block and leave the input as it was", function()
    for _, dtype in ipairs({"float32", "float64", "int64"}) do
      local x = nn.zeros({2, 1000}, {dtype = dtype})
      local src = nn.ones({2, 1000}, {dtype = dtype})
      local idx = nn.ones({2, 1000}, {dtype = "int64"})
      idx[{2, 700}] = 1001
      idx[{2, 900}] = 0
      expect_error(function() return x:scatter(2, idx, src) end,
                   "scatter: index 1001 is out of range for dimension 2 of size 1000")
      expect_error(function() return x:scatter_add(2, idx, src) end,
                   "scatter_add: index 1001 is out of range for dimension 2 of size 1000")
      expect_error(function() return x:t():scatter(1, idx:t(), src:t()) end,
                   "scatter: index 1001 is out of range for dimension 1 of size 1000")
      assert.is_true(x:eq(0):all():item(), dtype .. ": the input is untouched")
      local flat_idx = nn.ones({1500}, {dtype = "int64"})
      flat_idx[1400] = -2001
      expect_error(function() return x:take(flat_idx) end,
                   "take: index -2001 is out of range for a tensor of 2000 elements")
    end
  end)
end)

describe("reads at offsets made beforehand", function()
  -- index_select (the offsets once, every row reads at them) and a gather
  -- that keeps its gradient (offsets first), on runs around the loops'
  -- turn of 8, against plain loops
  it("match plain loops on runs of every length around the turn", function()
    for _, dtype in ipairs({"float32", "float64", "int16", "int8"}) do
      for _, n in ipairs({1, 7, 8, 9, 16, 17, 23, 515}) do
        local x = values({3, 11}, dtype, n)
        local xv = flat(x)
        nn.manual_seed(400 + n)
        local cols = nn.randint(1, 12, {n})
        local want = {}
        for r = 1, 3 do for _, c in ipairs(flat(cols)) do want[#want + 1] = xv[(r - 1) * 11 + c] end end
        same(x:index_select(2, cols), want, dtype .. " index_select n = " .. n)
        if dtype == "float32" or dtype == "float64" then
          for _, dim in ipairs({1, 2}) do
            local xs = dim == 2 and {3, 11} or {11, 3}
            local is = dim == 2 and {3, n} or {n, 3}
            local xg = values(xs, dtype, n):requires_grad_(true)
            local idx = nn.randint(1, 4, is)
            local got = xg:gather(dim, idx)
            same(got:detach(), ref_gather(xg:detach(), dim, idx), dtype .. " gather with a gradient n = " .. n)
          end
        end
      end
    end
  end)
end)

-- unique and mode against PyTorch 1.13 (tests/fixtures/unique_mode_reference.lua,
-- written by gen_unique_mode.py): values, 1-based indices, counts and mode's
-- gradient in float32, float64 and int64, 0-sized input; then the misuses,
-- each an error naming the op.
local nn = require "nn"
local support = dofile((os.getenv("NN_ROOT") or ".") .. "/tests/lua/support.lua")
local flat, expect_error = support.flat, support.expect_error

local root = os.getenv("NN_ROOT") or "."
local ref = dofile(root .. "/tests/fixtures/unique_mode_reference.lua")

local function flatten(v, out)
  out = out or {}
  for _, x in ipairs(v) do
    if type(x) == "table" then flatten(x, out) else out[#out + 1] = x end
  end
  return out
end

local function check(expected, got, dtype, what)
  assert.are.equal(dtype, got.dtype, what .. ": dtype")
  assert.are.same(flatten(expected), flat(got), what .. ": values")
end

local INPUTS = {
  vector = {3, 1, 2, 3, -1, 2, 3, 0},
  matrix = {{2, 5, 2, 7}, {4, 4, 1, 1}, {9, 8, 7, 6}},
}

for _, dtype in ipairs({"float32", "float64", "int64"}) do
  describe("unique (" .. dtype .. ")", function()
    for name, data in pairs(INPUTS) do
      it("matches PyTorch on the " .. name, function()
        local x = nn.tensor(data, {dtype = dtype})
        local e = ref[name].unique
        check(e.values, x:unique(), dtype, "values")
        local v, inverse, counts = x:unique({return_inverse = true, return_counts = true})
        check(e.values, v, dtype, "values")
        check(e.inverse, inverse, "int64", "inverse")
        assert.are.same(e.inverse_shape, inverse:size())
        check(e.counts, counts, "int64", "counts")
        local v2, counts2 = nn.unique(x, {return_counts = true, sorted = false})
        check(e.values, v2, dtype, "values")
        check(e.counts, counts2, "int64", "counts alone")
        local _, inverse3 = x:unique({return_inverse = true})
        check(e.inverse, inverse3, "int64", "inverse alone")
      end)
    end

    it("gives empty results for a 0-sized tensor", function()
      local v, inverse, counts = nn.zeros({0}, {dtype = dtype}):unique({return_inverse = true, return_counts = true})
      assert.are.same({0}, v:size())
      assert.are.same({0}, inverse:size())
      assert.are.same({0}, counts:size())
    end)
  end)

  describe("mode (" .. dtype .. ")", function()
    for name, data in pairs(INPUTS) do
      it("matches PyTorch on the " .. name, function()
        for _, e in ipairs(ref[name].mode) do
          local x = nn.tensor(data, {dtype = dtype})
          local v, i
          if e.dim then v, i = x:mode(e.dim, e.keepdim) else v, i = nn.mode(x) end
          local what = string.format("mode(%s, %s)", tostring(e.dim), tostring(e.keepdim))
          check(e.values, v, dtype, what .. " values")
          assert.are.same(e.shape, v:size(), what .. " shape")
          check(e.indices, i, "int64", what .. " indices")
        end
      end)
    end
  end)
end

describe("mode", function()
  it("sends the gradient to the chosen position, as PyTorch", function()
    for name, data in pairs(INPUTS) do
      for _, e in ipairs(ref[name].mode) do
        if e.grad then
          for _, dtype in ipairs({"float32", "float64"}) do
            local x = nn.tensor(data, {dtype = dtype, requires_grad = true})
            x:mode(e.dim, e.keepdim):sum():backward()
            assert.are.same(e.grad, flat(x.grad), name .. " dim " .. e.dim)
          end
        end
      end
    end
  end)

  it("takes a 0-dimensional tensor as a line of one", function()
    local v, i = nn.tensor(5.0):mode()
    assert.are.same({}, v:size())
    assert.are.equal(5, v:item())
    assert.are.equal(1, i:item())
  end)

  it("gives empty results where only the other dims are empty", function()
    local v, i = nn.zeros({0, 3}):mode(2)
    assert.are.same({0}, v:size())
    assert.are.same({0}, i:size())
  end)
end)

describe("unique", function()
  it("records no gradient, as PyTorch", function()
    local x = nn.tensor({1.0, 2.0, 1.0}, {requires_grad = true})
    assert.is_false(x:unique().requires_grad)
  end)
end)

describe("unique and mode misuse", function()
  it("errors naming the op", function()
    local x = nn.tensor({1.0, 2.0, 2.0})
    expect_error(function() x:unique({dim = 1}) end, "unique:", "dim")
    expect_error(function() x:unique({sorted = 1}) end, "unique:", "sorted must be a boolean")
    expect_error(function() x:unique({return_count = true}) end, "unique:", "unknown option return_count")
    expect_error(function() x:unique(true) end, "unique:", "options must be a table")
    expect_error(function() x:unique({}, 2) end, "unique:")
    expect_error(function() nn.unique(3) end, "unique")
    expect_error(function() nn.tensor({true, false}):unique() end, "unique:", "bool")
    expect_error(function() x:mode(3) end, "mode:")
    expect_error(function() x:mode(1, 1) end, "mode:", "keepdim must be a boolean")
    expect_error(function() x:mode(1.5) end, "mode:", "dim must be an integer")
    expect_error(function() nn.zeros({0}):mode() end, "mode:", "empty")
    expect_error(function() nn.zeros({2, 0}):mode(2) end, "mode:", "empty")
    expect_error(function() nn.tensor({true, false}):mode() end, "mode:", "bool")
    expect_error(function() nn.mode("x") end, "mode")
  end)
end)

describe("unique on the CPU, every path", function()
  -- without inverse, long inputs sort keys alone and decode them (the zero
  -- copied from the first zero, each NaN from the input); with inverse, or
  -- short, keys and indices: the same values and counts, against a plain
  -- stable sort (NaN last, each its own; of -0 and +0 the first)
  local function reference(v)
    local order = {}
    for i = 1, #v do order[i] = i end
    table.sort(order, function(a, b)
      local x, y = v[a], v[b]
      if x ~= x or y ~= y then
        if x ~= x and y ~= y then return a < b end
        return y ~= y
      end
      if x ~= y then return x < y end
      return a < b
    end)
    local values, counts, inverse = {}, {}, {}
    for k, i in ipairs(order) do
      local x = v[i]
      if k == 1 or x ~= x or x ~= v[order[k - 1]] then
        values[#values + 1], counts[#counts + 1] = x, 0
      end
      counts[#counts] = counts[#counts] + 1
      inverse[i] = #values
    end
    return values, counts, inverse
  end
  local function same_list(expected, got, what)
    assert.are.equal(#expected, #got, what .. ": length")
    for k = 1, #expected do
      local e, g = expected[k], got[k]
      assert((e ~= e and g ~= g) or (e == g and (e ~= 0 or 1 / e == 1 / g)),
        string.format("%s: element %d is %s, expected %s", what, k, tostring(g), tostring(e)))
    end
  end
  local RANGES = {float32 = 100, float64 = 100, float16 = 100, bfloat16 = 50, int64 = 1000,
                  int32 = 1000, int16 = 1000, int8 = 200, uint8 = 256}
  for _, dtype in ipairs {"float32", "float64", "float16", "bfloat16", "int64", "int32", "int16", "int8", "uint8"} do
    it(dtype .. ": short, long, with NaN, infinities and signed zeros, strided", function()
      local floating = dtype:sub(1, 1) ~= "i" and dtype ~= "uint8"
      for _, n in ipairs {1, 40, 1000, 4095, 4096, 5001} do
        nn.manual_seed(n)
        local range = RANGES[dtype]
        local q = (nn.rand(n) * range):floor()
        if dtype == "int8" then q = q - 100 end
        if floating then q = (q - range / 2) / 4 end
        local v = q:totable()
        if floating and n >= 40 then
          v[3], v[n], v[n // 2] = 0 / 0, 0 / 0, 1 / 0
          v[7], v[n - 1] = -1 / 0, 0 / 0
          for j = 1, n do if v[j] == 0 then v[j] = (j % 3 == 0) and 0.0 or -0.0 end end
        end
        local x = nn.tensor(v, {dtype = dtype})
        v = x:totable() -- the values as the dtype holds them
        local values, counts, inverse = reference(v)
        local what = dtype .. " n=" .. n
        local got = x:unique()
        assert.are.equal(dtype, got.dtype, what)
        same_list(values, got:totable(), what .. " values")
        local v2, c2 = x:unique({return_counts = true})
        same_list(values, v2:totable(), what .. " values with counts")
        assert.are.same(counts, c2:totable(), what .. " counts")
        local v3, i3, c3 = x:unique({return_inverse = true, return_counts = true})
        same_list(values, v3:totable(), what .. " values with inverse")
        assert.are.same(inverse, i3:totable(), what .. " inverse")
        assert.are.same(counts, c3:totable(), what .. " counts with inverse")
        if n % 5 == 0 then -- a transposed view of the same elements, row-major order differs
          local m = x:view(5, n // 5):t()
          local mv, mi = m:unique({return_inverse = true})
          local rv, _, ri = reference(m:contiguous():view(-1):totable())
          same_list(rv, mv:totable(), what .. " strided values")
          same_list(rv, m:unique():totable(), what .. " strided values alone")
          assert.are.same(ri, mi:contiguous():view(-1):totable(), what .. " strided inverse")
          assert.are.same({n // 5, 5}, mi:size())
        end
      end
    end)
  end
  it("keeps int64 values beyond 2^53 apart", function()
    local big = 1 << 53
    local v = {}
    for j = 1, 5000 do v[j] = j % 3 end
    -- added in int64 (Lua numbers reach a tensor's elements through doubles)
    local x = nn.tensor(v, {dtype = "int64"}) + big
    assert.are.same({3}, x:unique():size())
    local _, inverse, counts = x:unique({return_inverse = true, return_counts = true})
    assert.are.same({2, 3, 1}, inverse:narrow(1, 1, 3):totable())
    assert.are.same({1666, 1667, 1667}, counts:totable())
    assert.are.same({1666, 1667, 1667}, select(2, x:unique({return_counts = true})):totable())
  end)
  it("gives empty results for a 0-sized matrix, and a 0-dim tensor's one value", function()
    local v, c = nn.zeros(3, 0):unique({return_counts = true})
    assert.are.same({0}, v:size())
    assert.are.same({0}, c:size())
    local s, i = nn.tensor(-0.0):unique({return_inverse = true})
    same_list({-0.0}, s:totable(), "0-dim")
    assert.are.same({}, i:size())
    assert.are.equal(1, i:item())
  end)
end)

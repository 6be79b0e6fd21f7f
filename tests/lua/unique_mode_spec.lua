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

-- floor_divide, Lua's // on tensors, and div's rounding modes against
-- PyTorch 1.13 (tests/fixtures/floor_divide_reference.lua, written by
-- gen_floor_divide.py): values bit for bit in every dtype, promotion, the
-- gradient (zero), and the errors.
local nn = require "nn"
local support = dofile((os.getenv("NN_ROOT") or ".") .. "/tests/lua/support.lua")
local flat = support.flat
local expect_error = support.expect_error

local ref = dofile((os.getenv("NN_ROOT") or ".") .. "/tests/fixtures/floor_divide_reference.lua")

-- NaN equals NaN, and -0 is not 0
local function same(want, got)
  if want ~= want then return got ~= got end
  if want == 0 and got == 0 then return (1 / want > 0) == (1 / got > 0) end
  return want == got
end

local function assert_same(want, got, what, inputs)
  assert.are.equal(#want, #got, what .. ": length")
  for i = 1, #want do
    assert(same(want[i], got[i]), string.format("%s: element %d (%s) is %s, PyTorch's is %s", what, i,
      inputs and inputs(i) or "", tostring(got[i]), tostring(want[i])))
  end
end

local function as(values, dtype, shape)
  local t = nn.tensor(values, {dtype = "float64"}):to(dtype)
  return shape and t:view(table.unpack(shape)) or t
end

describe("floor_divide", function()
  it("gives PyTorch's values in every dtype, as t // t, floor_divide and div's rounding modes", function()
    for _, case in ipairs(ref.grids) do
      local a, b = as(case.a, case.dtype, case.shape), as(case.b, case.dtype, case.shape)
      local function inputs(i) return tostring(case.a[i]) .. " // " .. tostring(case.b[i]) end
      local r = a // b
      assert.are.equal(case.dtype, r.dtype)
      assert_same(case.floor, flat(r:double()), case.dtype .. " //", inputs)
      assert_same(case.floor, flat(a:floor_divide(b):double()), case.dtype .. " floor_divide", inputs)
      assert_same(case.floor, flat(nn.div(a, b, {rounding_mode = "floor"}):double()), case.dtype .. " floor", inputs)
      assert_same(case.trunc, flat(a:div(b, {rounding_mode = "trunc"}):double()), case.dtype .. " trunc", inputs)
      local c = a:clone()
      c:floor_divide_(b)
      assert_same(case.floor, flat(c:double()), case.dtype .. " floor_divide_", inputs)
      c = a:clone()
      c:div_(b, {rounding_mode = "trunc"})
      assert_same(case.trunc, flat(c:double()), case.dtype .. " div_ trunc", inputs)
    end
  end)

  it("takes a number on either side, promoting as PyTorch", function()
    for _, case in ipairs(ref.numbers) do
      local t = as(case.values, case.dtype)
      local r = case.number_first and case.number // t or t // case.number
      local what = string.format("%s %s %s", case.dtype, case.number_first and "number //" or "// number",
        tostring(case.number))
      assert.are.equal(case.result_dtype, r.dtype, what)
      assert_same(case.result, flat(r:double()), what)
    end
    for _, case in ipairs(ref.promotion) do
      local a = case.a == "bool" and nn.ones(2, {dtype = "bool"}) or nn.ones(2, {dtype = case.a})
      assert.are.equal(case.result_dtype, (a // nn.full({2}, 3, {dtype = case.b})).dtype, case.a .. " // " .. case.b)
    end
  end)

  it("wraps the lowest integer over -1 instead of trapping", function()
    local low = nn.tensor({math.mininteger}, {dtype = "int64"})
    assert.are.same({math.mininteger}, flat(low // -1))
    assert.are.same({math.mininteger}, flat(low:div(-1, {rounding_mode = "trunc"})))
    assert.are.same({-128}, flat(nn.tensor({-128}, {dtype = "int8"}) // nn.tensor({-1}, {dtype = "int8"})))
  end)

  it("has a zero gradient, as div with a rounding mode", function()
    local x = nn.tensor({3, -3, 0.5}, {requires_grad = true})
    local w = nn.tensor({2, 2, -1}, {requires_grad = true})
    local y = x // w + x:div(2, {rounding_mode = "trunc"}) + 5 // x
    assert.are.same({1 + 1 + 1, -2 - 1 - 2, -1 + 0 + 10}, flat(y))
    y:sum():backward()
    assert.are.same({0, 0, 0}, flat(x.grad))
    assert.are.same({0, 0, 0}, flat(w.grad))
    assert.are.equal("DivBackward2", (x // w).grad_fn)
  end)

  it("names the op in its errors", function()
    local i = nn.tensor({7, -7}, {dtype = "int64"})
    expect_error(function() return i // 0 end, "floor_divide: integer division by zero")
    expect_error(function() return i // nn.tensor({1, 0}, {dtype = "int64"}) end, "floor_divide: integer division by zero")
    expect_error(function() return 7 // nn.zeros(2, {dtype = "int32"}) end, "floor_divide: integer division by zero")
    expect_error(function() return i:div(0, {rounding_mode = "trunc"}) end, "div: integer division by zero")
    expect_error(function() i:floor_divide_(0) end, "floor_divide", "integer division by zero")
    expect_error(function() return i:div(2, {rounding_mode = "round"}) end,
      "div: rounding_mode must be nil, \"trunc\" or \"floor\", got \"round\"")
    expect_error(function() return i:div(2, "floor") end, "div: options must be a table")
    expect_error(function() return i // "2" end, "floor_divide: the other operand must be a tensor or a number, got string")
    local b = nn.ones(2, {dtype = "bool"})
    expect_error(function() return b // b end, "floor_divide: not supported for two bool operands")
    expect_error(function() i:floor_divide_(2.5) end, "floor_divide_: the result is float32", "int64")
    expect_error(function() return i // nn.ones(3, {dtype = "int64"}) end, "floor_divide")
  end)
end)

-- Lua's operators on tensors beyond + - * / ^ //: % is PyTorch's % (remainder,
-- the divisor's sign), and &, |, ~ (Lua's xor) and unary ~ are PyTorch's &,
-- |, ^ and ~ on bool tensors. PyTorch's are bitwise on integer tensors,
-- which nn has not: those are errors, never the logical op's answer.
local nn = require "nn"
local support = dofile((os.getenv("NN_ROOT") or ".") .. "/tests/lua/support.lua")
local expect_error, flat = support.expect_error, support.flat

describe("t % other", function()
  it("is remainder, with the divisor's sign, for tensors and numbers on either side", function()
    local a = nn.tensor({-7, -1.5, 0, 2.5, 7})
    assert.are.same(flat(a:remainder(3)), flat(a % 3))
    assert.are.same({2, 1.5, 0, 2.5, 1}, flat(a % 3))
    assert.are.same({-1, -1.5, 0, -0.5, -2}, flat(a % -3))
    local b = nn.tensor({2, -2, 4, -4, 3})
    assert.are.same(flat(a:remainder(b)), flat(a % b))
    assert.are.same(flat(nn.full({5}, 5):remainder(b)), flat(5 % b))
    -- a Lua float is PyTorch's float scalar: 5.0 % an int64 tensor is float32, 5 % it int64
    local k = nn.tensor({2, 3}, {dtype = "int64"})
    assert.are.equal("float32", (5.0 % k).dtype)
    assert.are.same({1, 2}, flat(5.0 % k))
    assert.are.equal("int64", (5 % k).dtype)
    assert.are.same({1, 2}, flat(5 % k))
    local i = nn.tensor({-7, 7}, {dtype = "int64"})
    local r = i % 3
    assert.are.equal("int64", r.dtype)
    assert.are.same({2, 1}, flat(r))
  end)

  it("broadcasts and carries remainder's gradient", function()
    local a = nn.tensor({{5.5, -3.25}, {1.0, 9.0}}, {dtype = "float64", requires_grad = true})
    local b = nn.tensor({2.0, -4.0}, {dtype = "float64", requires_grad = true})
    local y = (a % b):sum()
    y:backward()
    local ga, gb = a.grad:clone(), b.grad:clone()
    a.grad, b.grad = nil, nil
    a:remainder(b):sum():backward()
    assert.are.same(flat(a.grad), flat(ga))
    assert.are.same(flat(b.grad), flat(gb))
  end)

  it("names the op when the other operand is neither tensor nor number", function()
    expect_error(function() return nn.ones(2) % "x" end, "remainder", "tensor or a number", "string")
    expect_error(function() return {} % nn.ones(2) end, "remainder", "table")
  end)
end)

describe("&, |, ~ on bool tensors", function()
  local p = nn.tensor({true, true, false, false})
  local q = nn.tensor({true, false, true, false})

  it("are logical and, or, xor and not", function()
    assert.are.same(flat(p:logical_and(q)), flat(p & q))
    assert.are.same(flat(p:logical_or(q)), flat(p | q))
    assert.are.same(flat(p:logical_xor(q)), flat(p ~ q))
    assert.are.same({false, false, true, true}, flat(~p))
    assert.are.equal("bool", (p & q).dtype)
    -- broadcast, and a mask from comparisons, as PyTorch users write them
    local x = nn.tensor({{-2, -1, 0}, {1, 2, 3}})
    local m = x:gt(-2) & x:lt(2)
    assert.are.same({false, true, true, true, false, false}, flat(m))
    assert.are.same({true, true, true, false, false, true},
      flat(nn.tensor({{true}, {false}}) | nn.tensor({false, false, true})))
  end)

  it("refuse integer and float tensors (PyTorch's would be bitwise) and other values", function()
    local i = nn.tensor({1, 2}, {dtype = "int64"})
    expect_error(function() return i & i end, "&", "logical_and", "bool tensors", "int64", "bitwise")
    expect_error(function() return p | nn.ones(4) end, "|", "logical_or", "float32")
    expect_error(function() return p ~ true end, "~", "logical_xor", "boolean")
    expect_error(function() return ~nn.ones(2) end, "~", "logical_not", "float32")
    expect_error(function() return p & 1.5 end, "&", "number")
  end)
end)

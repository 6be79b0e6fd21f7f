-- Tensors as a Lua user sees them: creation, fields, views, arithmetic,
-- reductions, matmul, indexing, printing and lifetime.
local nn = require "nn"
local support = dofile((os.getenv("NN_ROOT") or ".") .. "/tests/lua/support.lua")
local flat = support.flat
local expect_error = support.expect_error

local root = os.getenv("NN_ROOT") or "."
local reference = dofile(root .. "/tests/fixtures/torch_reference.lua")


local function assert_close(expected, actual, tol, what)
  tol = tol or 1e-6
  assert(type(actual) == "number", (what or "value") .. " is not a number: " .. tostring(actual))
  assert(math.abs(expected - actual) <= tol * math.max(1, math.abs(expected)),
    string.format("%s: expected %.10g, got %.10g", what or "value", expected, actual))
end

local function assert_values(expected, t, tol)
  local got = flat(t)
  assert.are.equal(#expected, #got, "number of elements")
  for i = 1, #expected do
    if tol then assert_close(expected[i], got[i], tol, "element " .. i)
    else assert.are.equal(expected[i], got[i], "element " .. i) end
  end
end

local function assert_shape(expected, t)
  assert.are.same(expected, t:size())
end

-- A float32 rounding of x, as the engine stores it.
local function f32(x) return nn.tensor(x):item() end

describe("nn.tensor from Lua tables", function()
  it("takes its shape and values from a nested table, float32 by default", function()
    local t = nn.tensor({{1, 2, 3}, {4, 5, 6}})
    assert_shape({2, 3}, t)
    assert.are.equal("float32", t.dtype)
    assert.are.same({{1, 2, 3}, {4, 5, 6}}, t:totable())
  end)

  it("builds 1-d and 3-d tensors", function()
    assert_shape({4}, nn.tensor({1, 2, 3, 4}))
    local t = nn.tensor({{{1, 2}, {3, 4}}, {{5, 6}, {7, 8}}, {{9, 10}, {11, 12}}})
    assert_shape({3, 2, 2}, t)
    assert.are.equal(12, t:numel())
    assert.are.same({11, 12}, t[3][2]:totable())
  end)

  it("rounds to float32 by default and keeps doubles with dtype = float64", function()
    local single = nn.tensor({0.1})
    local double = nn.tensor({0.1}, {dtype = "float64"})
    assert.are.equal("float64", double.dtype)
    assert.are.equal(0.1, double[1]:item())
    assert.are_not.equal(0.1, single[1]:item())
    assert_close(0.1, single[1]:item(), 1e-7)
  end)

  it("makes a bool tensor from a table of booleans", function()
    local t = nn.tensor({{true, false}, {false, true}})
    assert.are.equal("bool", t.dtype)
    assert.are.same({{true, false}, {false, true}}, t:totable())
  end)

  it("makes an int64 tensor whose values come back as Lua integers", function()
    local t = nn.tensor({1, -2, 3}, {dtype = "int64"})
    assert.are.equal("int64", t.dtype)
    assert.are.same({1, -2, 3}, t:totable())
    assert.are.equal("integer", math.type(t[2]:item()))
  end)

  it("makes a 0-dimensional tensor from a number", function()
    local t = nn.tensor(3.5)
    assert.are.equal(0, t:dim())
    assert.are.equal(1, t:numel())
    assert.are.same({}, t:size())
    assert.are.equal(3.5, t:item())
  end)

  it("copies a tensor given to nn.tensor instead of sharing it", function()
    local a = nn.tensor({1, 2})
    local b = nn.tensor(a)
    b[1] = 10
    assert.are.same({1, 2}, a:totable())
    assert.are.same({10, 2}, b:totable())
  end)

  it("honours requires_grad in the options", function()
    assert.is_true(nn.tensor({1, 2}, {requires_grad = true}).requires_grad)
    assert.is_false(nn.tensor({1, 2}).requires_grad)
  end)
end)

describe("factories", function()
  it("zeros and ones fill a shape", function()
    local z, o = nn.zeros(2, 3), nn.ones(3, 2)
    assert_shape({2, 3}, z)
    assert_shape({3, 2}, o)
    assert_values({0, 0, 0, 0, 0, 0}, z)
    assert_values({1, 1, 1, 1, 1, 1}, o)
    assert.are.equal("float32", z.dtype)
  end)

  it("accepts sizes as varargs or as one table, with options after either", function()
    assert.are.same(nn.zeros(2, 3, 4):size(), nn.zeros({2, 3, 4}):size())
    assert.are.equal("float64", nn.ones(2, 3, {dtype = "float64"}).dtype)
    assert.are.equal("float64", nn.ones({2, 3}, {dtype = "float64"}).dtype)
    assert_shape({2, 3}, nn.ones({2, 3}, {dtype = "float64"}))
    assert.is_true(nn.zeros({2}, {requires_grad = true}).requires_grad)
  end)

  it("accepts the 0-d size table {} followed by options", function()
    for _, name in ipairs({"zeros", "ones", "empty", "rand", "randn"}) do
      local t = nn[name]({}, {dtype = "float64"})
      assert.are.equal(0, t:dim(), name)
      assert.are.equal("float64", t.dtype, name)
    end
    local f = nn.full({}, 7, {dtype = "int64"})
    assert.are.equal(0, f:dim())
    assert.are.equal(7, f:item())
    assert.are.equal(1, nn.ones(nn.tensor(3):size(), {requires_grad = true}):sum():item())
    assert.are.equal(0, nn.zeros({}):dim())
    assert.are.equal("float64", nn.zeros({dtype = "float64"}).dtype) -- a lone table is options
  end)

  it("full fills with a value, sizes as varargs or a table", function()
    local a = nn.full(2, 3, 7.5)
    assert_shape({2, 3}, a)
    assert_values({7.5, 7.5, 7.5, 7.5, 7.5, 7.5}, a)
    local b = nn.full({2}, 1.5)
    assert_shape({2}, b)
    assert_values({1.5, 1.5}, b)
    assert.are.equal("float64", nn.full(2, 2, 0.25, {dtype = "float64"}).dtype)
  end)

  it("rand draws uniformly from [0, 1)", function()
    nn.manual_seed(1)
    local t = nn.rand(50, 40)
    assert_shape({50, 40}, t)
    local lo, hi, sum = math.huge, -math.huge, 0
    for _, v in ipairs(flat(t)) do
      lo, hi, sum = math.min(lo, v), math.max(hi, v), sum + v
    end
    assert.is_true(lo >= 0 and hi < 1)
    assert_close(0.5, sum / 2000, 0.05, "mean of rand")
    assert.are.equal("float64", nn.rand(3, {dtype = "float64"}).dtype)
  end)

  it("randn draws from a standard normal", function()
    nn.manual_seed(2)
    local t = nn.randn({100, 100}, {dtype = "float64"})
    assert_shape({100, 100}, t)
    assert.are.equal("float64", t.dtype)
    local mean = t:mean():item()
    local var = ((t - mean) ^ 2):mean():item()
    assert.is_true(math.abs(mean) < 0.05, "mean " .. mean)
    assert.is_true(math.abs(var - 1) < 0.05, "variance " .. var)
  end)

  it("arange counts from start (default 0) up to but excluding end", function()
    assert_values({0, 1, 2, 3, 4}, nn.arange(5))
    assert_values({2, 3, 4}, nn.arange(2, 5))
    assert_values({1, 1.25, 1.5, 1.75}, nn.arange(1, 2, 0.25))
    assert_values({5, 3.5, 2, 0.5}, nn.arange(5, 0, -1.5))
    assert_shape({4}, nn.arange(1, 2, 0.25))
  end)

  it("linspace has evenly spaced values with exact ends", function()
    assert_values({0, 0.25, 0.5, 0.75, 1}, nn.linspace(0, 1, 5))
    local t = nn.linspace(-3, 7, 11)
    assert_shape({11}, t)
    assert_values({-3, -2, -1, 0, 1, 2, 3, 4, 5, 6, 7}, t)
    local u = nn.linspace(0.1, 0.7, 7)
    assert.are.equal(f32(0.1), u[1]:item())
    assert.are.equal(f32(0.7), u[7]:item())
    local d = nn.linspace(0.1, 0.7, 7, {dtype = "float64"})
    assert.are.equal(0.1, d[1]:item())
    assert.are.equal(0.7, d[-1]:item())
    assert_close(0.4, d[4]:item(), 1e-15)
  end)

  it("linspace with one step is the start, as in PyTorch", function()
    assert_shape({1}, nn.linspace(2, 9, 1))
    assert.are.equal(2, nn.linspace(2, 9, 1)[1]:item())
    assert_shape({0}, nn.linspace(2, 9, 0))
  end)

  it("eye is the identity, square or rectangular", function()
    assert.are.same({{1, 0, 0}, {0, 1, 0}, {0, 0, 1}}, nn.eye(3):totable())
    assert.are.same({{1, 0, 0}, {0, 1, 0}}, nn.eye(2, 3):totable())
    assert.are.same({{1, 0}, {0, 1}, {0, 0}}, nn.eye(3, 2):totable())
  end)
end)

describe("fields and sizes", function()
  local t = nn.tensor({{1, 2, 3}, {4, 5, 6}})

  it("size() is a table, size(d) one dimension (1-based, negative from the end)", function()
    assert.are.same({2, 3}, t:size())
    assert.are.equal(2, t:size(1))
    assert.are.equal(3, t:size(2))
    assert.are.equal(3, t:size(-1))
    assert.are.same({2, 3}, t.shape)
  end)

  it("a size prints as it does at the prompt, and is still a list", function()
    local size = t:size()
    assert.are.equal("{2, 3}", tostring(size))
    assert.are.equal(nn.repl.show(size), tostring(size))
    assert.are.equal("{}", tostring(nn.tensor(1):size()))
    assert.are.equal("{2, 3}", tostring(t.shape))
    assert.are.equal("{3, 1}", tostring(t:stride()))
    assert.are.equal(1, t:stride(2))
    assert.are.equal(2, #size)
    assert.are.equal(3, size[2])
    assert.are.equal("2x3", table.concat(size, "x"))
    assert.are.same({3, 2}, nn.zeros(6):view(size):t():size())
  end)

  it("print(t:size()) in a script prints {2, 3}", function()
    assert.are.equal("{2, 3}\n", support.nnlua_output("print(nn.ones(2, 3):size())"))
  end)

  it("dim, numel and # count dimensions, elements and the first size", function()
    assert.are.equal(2, t:dim())
    assert.are.equal(6, t:numel())
    assert.are.equal(2, #t)
    assert.are.equal(4, #nn.zeros(4, 7))
  end)

  it("dtype and device are strings", function()
    assert.are.equal("float32", t.dtype)
    assert.are.equal("cpu", t.device)
    assert.are.equal("float64", t:double().dtype)
  end)

  it("item returns the value of a one-element tensor", function()
    assert.are.equal(5, t[2][2]:item())
    assert.are.equal(7, nn.tensor({{7}}):item())
    assert.are.equal(true, nn.tensor({true}):item())
  end)

  it("totable returns nested tables, a number for a 0-d tensor", function()
    assert.are.same({{1, 2, 3}, {4, 5, 6}}, t:totable())
    assert.are.equal(2.5, nn.tensor(2.5):totable())
  end)
end)

describe("views share storage with their base", function()
  local function base() return nn.tensor({{1, 2, 3}, {4, 5, 6}}) end

  it("view: a write through the view changes the base", function()
    local t = base()
    local v = t:view(6)
    assert_shape({6}, v)
    v[4] = 40
    assert.are.equal(40, t[2][1]:item())
    v:fill_(0)
    assert_values({0, 0, 0, 0, 0, 0}, t)
  end)

  it("view accepts a table and one -1", function()
    local t = base()
    assert_shape({3, 2}, t:view({3, 2}))
    assert_shape({3, 2}, t:view(-1, 2))
    t:view({3, -1})[1][1] = -1
    assert.are.equal(-1, t[1][1]:item())
  end)

  it("reshape of a contiguous tensor is a view", function()
    local t = base()
    local r = t:reshape(3, 2)
    r[3]:copy_(nn.tensor({50, 60}))
    assert.are.same({{1, 2, 3}, {4, 50, 60}}, t:totable())
  end)

  it("reshape of a non-contiguous tensor gives the right values", function()
    local t = base():t()
    assert.are.same({{1, 4, 2}, {5, 3, 6}}, t:reshape(2, 3):totable())
  end)

  it("transpose swaps dimensions without copying", function()
    local t = base()
    local tt = t:transpose(1, 2)
    assert_shape({3, 2}, tt)
    assert.are.same({{1, 4}, {2, 5}, {3, 6}}, tt:totable())
    assert.is_false(tt:is_contiguous())
    tt[3][1] = 30
    assert.are.equal(30, t[1][3]:item())
  end)

  it("t() transposes a matrix and shares storage", function()
    local t = base()
    local tt = t:t()
    assert.are.same({{1, 4}, {2, 5}, {3, 6}}, tt:totable())
    tt[1]:fill_(9)
    assert.are.same({{9, 2, 3}, {9, 5, 6}}, t:totable())
  end)

  it("permute reorders dimensions: p[k][i][j] == x[i][j][k]", function()
    local x = nn.arange(24):view(2, 3, 4)
    local p = x:permute(3, 1, 2)
    assert_shape({4, 2, 3}, p)
    for i = 1, 2 do for j = 1, 3 do for k = 1, 4 do
      assert.are.equal(x[i][j][k]:item(), p[k][i][j]:item())
    end end end
    p[4][2][3] = -5
    assert.are.equal(-5, x[2][3][4]:item())
    assert_shape({4, 2, 3}, x:permute({3, 1, 2}))
  end)

  it("narrow selects a range (1-based start) and writes through", function()
    local t = base()
    local n = t:narrow(2, 2, 2)
    assert.are.same({{2, 3}, {5, 6}}, n:totable())
    n:fill_(0)
    assert.are.same({{1, 0, 0}, {4, 0, 0}}, t:totable())
  end)

  it("select removes a dimension and writes through", function()
    local t = base()
    local col = t:select(2, 3)
    assert.are.same({3, 6}, col:totable())
    col:copy_(nn.tensor({-3, -6}))
    assert.are.same({{1, 2, -3}, {4, 5, -6}}, t:totable())
    assert.are.same({4, 5, -6}, t:select(1, -1):totable())
  end)

  it("unsqueeze adds a size-1 dimension and writes through", function()
    local t = base()
    assert_shape({1, 2, 3}, t:unsqueeze(1))
    assert_shape({2, 1, 3}, t:unsqueeze(2))
    assert_shape({2, 3, 1}, t:unsqueeze(3))
    assert_shape({2, 3, 1}, t:unsqueeze(-1))
    local u = t:unsqueeze(1)
    u[1][2][2] = 55
    assert.are.equal(55, t[2][2]:item())
  end)

  it("squeeze removes size-1 dimensions (all, or one) and writes through", function()
    local t = nn.zeros(1, 3, 1)
    assert_shape({3}, t:squeeze())
    assert_shape({3, 1}, t:squeeze(1))
    assert_shape({1, 3}, t:squeeze(3))
    assert_shape({1, 3}, t:squeeze(-1))
    assert_shape({1, 3, 1}, t:squeeze(2)) -- size 3: unchanged
    t:squeeze()[2] = 8
    assert.are.equal(8, t[1][2][1]:item())
  end)

  it("expand repeats size-1 dimensions without copying", function()
    local col = nn.tensor({{1}, {2}})
    local e = col:expand(2, 3)
    assert_shape({2, 3}, e)
    assert.are.same({{1, 1, 1}, {2, 2, 2}}, e:totable())
    col[1][1] = 7 -- a write to the base shows in every expanded copy
    assert.are.same({7, 7, 7}, e[1]:totable())
    assert_shape({3, 2, 3}, col:expand({3, 2, 3}))
    assert_shape({4, 2}, nn.tensor({1, 2}):expand(4, -1))
  end)

  it("copy_ into a view broadcasts the source", function()
    local t = base()
    t:narrow(1, 1, 1):copy_(nn.tensor({9, 8, 7}))
    assert.are.same({{9, 8, 7}, {4, 5, 6}}, t:totable())
    t:select(2, 1):copy_(nn.tensor(0))
    assert.are.same({{0, 8, 7}, {0, 5, 6}}, t:totable())
  end)
end)

describe("contiguous and clone", function()
  it("clone is a copy that does not share storage", function()
    local t = nn.tensor({1, 2, 3})
    local c = t:clone()
    c[1] = 100
    assert.are.same({1, 2, 3}, t:totable())
    t[2] = 200
    assert.are.same({100, 2, 3}, c:totable())
  end)

  it("contiguous of a transposed tensor is a contiguous copy", function()
    local t = nn.tensor({{1, 2, 3}, {4, 5, 6}})
    local c = t:t():contiguous()
    assert.is_true(c:is_contiguous())
    assert.are.same({{1, 4}, {2, 5}, {3, 6}}, c:totable())
    c[1][1] = -1
    assert.are.equal(1, t[1][1]:item())
  end)
end)

describe("arithmetic", function()
  local a = nn.tensor({{1, 2, 3}, {4, 5, 6}})

  it("operators + - * / ^ work elementwise between tensors", function()
    local b = nn.tensor({{2, 2, 2}, {1, 2, 4}})
    assert.are.same({{3, 4, 5}, {5, 7, 10}}, (a + b):totable())
    assert.are.same({{-1, 0, 1}, {3, 3, 2}}, (a - b):totable())
    assert.are.same({{2, 4, 6}, {4, 10, 24}}, (a * b):totable())
    assert.are.same({{0.5, 1, 1.5}, {4, 2.5, 1.5}}, (a / b):totable())
    assert.are.same({{1, 4, 9}, {4, 25, 1296}}, (a ^ b):totable())
  end)

  it("broadcasts a row, a column and a scalar tensor", function()
    local row = nn.tensor({10, 20, 30})
    assert.are.same({{11, 22, 33}, {14, 25, 36}}, (a + row):totable())
    local col = nn.tensor({{1}, {2}})
    assert.are.same({{1, 2, 3}, {8, 10, 12}}, (a * col):totable())
    assert.are.same({{0, 1, 2}, {3, 4, 5}}, (a - nn.tensor(1)):totable())
    local outer = nn.tensor({{1}, {2}, {3}}) * nn.tensor({{1, 10}})
    assert_shape({3, 2}, outer)
    assert.are.same({{1, 10}, {2, 20}, {3, 30}}, outer:totable())
  end)

  it("takes a number on either side", function()
    assert.are.same({{3, 4, 5}, {6, 7, 8}}, (a + 2):totable())
    assert.are.same({{3, 4, 5}, {6, 7, 8}}, (2 + a):totable())
    assert.are.same({{-1, 0, 1}, {2, 3, 4}}, (a - 2):totable())
    assert.are.same({{1, 0, -1}, {-2, -3, -4}}, (2 - a):totable())
    assert.are.same({{2, 4, 6}, {8, 10, 12}}, (a * 2):totable())
    assert.are.same({{2, 4, 6}, {8, 10, 12}}, (2 * a):totable())
    assert.are.same({{0.5, 1, 1.5}, {2, 2.5, 3}}, (a / 2):totable())
    assert_values({12, 6, 4, 3, 2.4, 2}, 12 / a, 1e-6)
    assert.are.same({{1, 4, 9}, {16, 25, 36}}, (a ^ 2):totable())
    assert.are.same({{2, 4, 8}, {16, 32, 64}}, (2 ^ a):totable())
  end)

  it("unary minus negates", function()
    assert.are.same({{-1, -2, -3}, {-4, -5, -6}}, (-a):totable())
  end)

  it("method forms match the operators", function()
    assert.are.same((a + 1):totable(), a:add(1):totable())
    assert.are.same((a - a):totable(), a:sub(a):totable())
    assert.are.same((a * a):totable(), a:mul(a):totable())
    assert.are.same((a / 4):totable(), a:div(4):totable())
    assert.are.same((a ^ 3):totable(), a:pow(3):totable())
    assert.are.same((-a):totable(), a:neg():totable())
  end)

  it("float32 op float64 gives float64", function()
    assert.are.equal("float64", (nn.ones(2) + nn.ones(2, {dtype = "float64"})).dtype)
  end)

  it("unary math functions agree with Lua's math library", function()
    local x = nn.tensor({0.25, 1, 2.5}, {dtype = "float64"})
    local xs = {0.25, 1, 2.5}
    local cases = {
      exp = math.exp, log = math.log, sqrt = math.sqrt, sin = math.sin, cos = math.cos,
      tanh = function(v) return (math.exp(v) - math.exp(-v)) / (math.exp(v) + math.exp(-v)) end,
      sigmoid = function(v) return 1 / (1 + math.exp(-v)) end,
    }
    for name, f in pairs(cases) do
      local got = flat(x[name](x))
      for i, v in ipairs(xs) do assert_close(f(v), got[i], 1e-12, name .. "(" .. v .. ")") end
    end
    assert.are.same({3, 0, 2}, nn.tensor({-3, 0, 2}):abs():totable())
    assert.are.same({0, 0, 2}, nn.tensor({-3, 0, 2}):relu():totable())
  end)

  it("clamp bounds values from below, above or both", function()
    local x = nn.tensor({-2, 0.5, 3})
    assert.are.same({-1, 0.5, 1}, x:clamp(-1, 1):totable())
    assert.are.same({0, 0.5, 3}, x:clamp(0):totable())
    assert.are.same({-2, 0.5, 2}, x:clamp(nil, 2):totable())
  end)
end)

describe("comparisons", function()
  local t = nn.tensor({1, 2, 3})

  it("gt ge lt le eq ne against a number give bool tensors", function()
    assert.are.equal("bool", t:gt(2).dtype)
    assert.are.same({false, false, true}, t:gt(2):totable())
    assert.are.same({false, true, true}, t:ge(2):totable())
    assert.are.same({true, false, false}, t:lt(2):totable())
    assert.are.same({true, true, false}, t:le(2):totable())
    assert.are.same({false, true, false}, t:eq(2):totable())
    assert.are.same({true, false, true}, t:ne(2):totable())
  end)

  it("compare two tensors with broadcasting", function()
    local other = nn.tensor({3, 2, 1})
    assert.are.same({false, false, true}, t:gt(other):totable())
    assert.are.same({false, true, false}, t:eq(other):totable())
    local m = nn.tensor({{1}, {3}}):lt(t)
    assert.are.equal("bool", m.dtype)
    assert.are.same({{false, true, true}, {false, false, false}}, m:totable())
  end)

  it("<, <=, >, >= on a tensor say which method to use", function()
    local h = nn.tensor({0.2, 0.7})
    expect_error(function() return h > 0.5 end, "comparison", "use t:gt(0.5) for t > 0.5",
      "cannot return a tensor")
    expect_error(function() return h >= 0.5 end, "use t:ge(0.5) for t >= 0.5")
    expect_error(function() return h < 0.5 end, "use t:lt(0.5) for t < 0.5")
    expect_error(function() return h <= 1 end, "use t:le(1) for t <= 1")
    expect_error(function() return 0.5 < h end, "use t:gt(0.5) for t > 0.5") -- the same comparison
    expect_error(function() return h < h end, "use a:lt(b) for a < b, a:gt(b) for a > b")
    expect_error(function() return h >= h end, "use a:le(b) for a <= b, a:ge(b) for a >= b")
    expect_error(function() return "x" < h end, "comparison", "gt, ge, lt, le", "string")
  end)

  it("== on tensors is identity, not elementwise", function()
    local a = nn.tensor({1})
    assert.is_true(a == a)
    assert.is_false(a == nn.tensor({1}))
  end)
end)

describe("dtype conversions", function()
  it("float, double and long convert and keep values", function()
    local t = nn.tensor({1.5, -2.75, 3})
    assert.are.equal("float64", t:double().dtype)
    assert.are.same({1.5, -2.75, 3}, t:double():totable())
    assert.are.equal("float32", t:double():float().dtype)
    local l = t:long()
    assert.are.equal("int64", l.dtype)
    assert.are.same({1, -2, 3}, l:totable()) -- truncation toward zero
    assert.are.equal("float32", nn.tensor({true, false}):float().dtype)
    assert.are.same({1, 0}, nn.tensor({true, false}):float():totable())
  end)

  it("to() takes a dtype name", function()
    assert.are.equal("float64", nn.ones(2):to("float64").dtype)
    assert.are.equal("int64", nn.ones(2):to("int64").dtype)
    assert.are.equal("cpu", nn.ones(2):to("cpu").device)
  end)
end)

describe("reductions", function()
  local t = nn.tensor({{1, 5, 3}, {4, 2, 6}})

  it("sum and mean over everything give a 0-d tensor", function()
    assert.are.equal(0, t:sum():dim())
    assert.are.equal(21, t:sum():item())
    assert.are.equal(3.5, t:mean():item())
  end)

  it("sum and mean over a dimension (1-based, negative from the end)", function()
    assert.are.same({5, 7, 9}, t:sum(1):totable())
    assert.are.same({9, 12}, t:sum(2):totable())
    assert.are.same({9, 12}, t:sum(-1):totable())
    assert.are.same({2.5, 3.5, 4.5}, t:mean(1):totable())
    assert.are.same({3, 4}, t:mean(2):totable())
  end)

  it("keepdim keeps the reduced dimension with size 1", function()
    assert_shape({1, 3}, t:sum(1, true))
    assert_shape({2, 1}, t:sum(2, true))
    assert.are.same({{9}, {12}}, t:sum(2, true):totable())
    assert_shape({2, 1}, t:mean(2, true))
    assert_shape({2, 1}, (t:max(2, true)))
  end)

  it("max and min over everything", function()
    assert.are.equal(6, t:max():item())
    assert.are.equal(1, t:min():item())
  end)

  it("max and min over a dimension return values and 1-based indices", function()
    local v, i = t:max(2)
    assert.are.same({5, 6}, v:totable())
    assert.are.same({2, 3}, i:totable())
    assert.are.equal("int64", i.dtype)
    v, i = t:min(1)
    assert.are.same({1, 2, 3}, v:totable())
    assert.are.same({1, 2, 1}, i:totable())
    v, i = t:max(1, true)
    assert_shape({1, 3}, v)
    assert_shape({1, 3}, i)
    assert.are.same({{2, 1, 2}}, i:totable())
  end)

  it("argmax and argmin are 1-based, flat over everything", function()
    assert.are.equal(6, t:argmax():item())
    assert.are.equal(1, t:argmin():item())
    assert.are.same({2, 3}, t:argmax(2):totable())
    assert.are.same({1, 2}, t:argmin(2):totable())
    assert.are.same({2, 1, 2}, t:argmax(1):totable())
    assert_shape({2, 1}, t:argmax(2, true))
    assert.are.equal(2, nn.tensor({1, 9, 3}):argmax():item())
  end)

  it("norm: 2-norm by default, and p = 1, 3 and inf", function()
    local v = nn.tensor({3, -4}, {dtype = "float64"})
    assert_close(5, v:norm():item(), 1e-12)
    assert_close(5, v:norm(2):item(), 1e-12)
    assert_close(7, v:norm(1):item(), 1e-12)
    assert_close((27 + 64) ^ (1 / 3), v:norm(3):item(), 1e-12)
    assert_close(4, v:norm("inf"):item(), 1e-12)
    assert_close(math.sqrt(91), t:norm():item(), 1e-6)
  end)
end)

describe("matmul", function()
  -- C = A B by three loops, on Lua tables.
  local function naive(A, B)
    local n, k, m = #A, #B, #B[1]
    local C = {}
    for i = 1, n do
      C[i] = {}
      for j = 1, m do
        local s = 0
        for l = 1, k do s = s + A[i][l] * B[l][j] end
        C[i][j] = s
      end
    end
    return C
  end

  local function assert_matrix_close(expected, actual, tol)
    assert.are.equal(#expected, #actual)
    for i = 1, #expected do
      assert.are.equal(#expected[i], #actual[i])
      for j = 1, #expected[i] do assert_close(expected[i][j], actual[i][j], tol, "C[" .. i .. "][" .. j .. "]") end
    end
  end

  it("agrees with a naive loop for random 2-d shapes (float64)", function()
    nn.manual_seed(11)
    local shapes = {{1, 1, 1}, {2, 3, 4}, {5, 1, 7}, {7, 8, 3}, {16, 17, 15}, {33, 64, 9}, {3, 100, 2}}
    for _, s in ipairs(shapes) do
      local A = nn.randn(s[1], s[2], {dtype = "float64"})
      local B = nn.randn(s[2], s[3], {dtype = "float64"})
      local C = A:matmul(B)
      assert_shape({s[1], s[3]}, C)
      assert_matrix_close(naive(A:totable(), B:totable()), C:totable(), 1e-12)
    end
  end)

  it("agrees with a naive loop in float32 and on transposed (non-contiguous) operands", function()
    nn.manual_seed(12)
    local A = nn.randn(6, 5)
    local B = nn.randn(4, 5):t()
    local C = A:matmul(B)
    assert.are.equal("float32", C.dtype)
    assert_matrix_close(naive(A:totable(), B:totable()), C:totable(), 1e-5)
  end)

  it("1-d by 1-d is a dot product (0-d)", function()
    local d = nn.tensor({1, 2, 3}):matmul(nn.tensor({4, 5, 6}))
    assert.are.equal(0, d:dim())
    assert.are.equal(32, d:item())
  end)

  it("2-d by 1-d is a matrix-vector product", function()
    local r = nn.tensor({{1, 2, 3}, {4, 5, 6}}):matmul(nn.tensor({1, 0, -1}))
    assert.are.same({-2, -2}, r:totable())
  end)

  it("1-d by 2-d is a vector-matrix product", function()
    local r = nn.tensor({1, -1}):matmul(nn.tensor({{1, 2, 3}, {4, 5, 6}}))
    assert.are.same({-3, -3, -3}, r:totable())
  end)

  it("batched 3-d by 3-d multiplies each pair", function()
    nn.manual_seed(13)
    local A = nn.randn(3, 4, 5, {dtype = "float64"})
    local B = nn.randn(3, 5, 2, {dtype = "float64"})
    local C = A:matmul(B)
    assert_shape({3, 4, 2}, C)
    for b = 1, 3 do assert_matrix_close(naive(A[b]:totable(), B[b]:totable()), C[b]:totable(), 1e-12) end
  end)

  it("3-d by 2-d broadcasts the matrix over the batch", function()
    nn.manual_seed(14)
    local A = nn.randn(2, 3, 4, {dtype = "float64"})
    local B = nn.randn(4, 5, {dtype = "float64"})
    local C = A:matmul(B)
    assert_shape({2, 3, 5}, C)
    for b = 1, 2 do assert_matrix_close(naive(A[b]:totable(), B:totable()), C[b]:totable(), 1e-12) end
  end)
end)

describe("in-place operations", function()
  it("add_ sub_ mul_ div_ pow_ change the tensor and return it", function()
    local t = nn.tensor({1, 2, 4})
    assert.is_true(rawequal(t, t:add_(1)))
    assert.are.same({2, 3, 5}, t:totable())
    t:sub_(nn.tensor({1, 1, 1}))
    assert.are.same({1, 2, 4}, t:totable())
    t:mul_(3)
    assert.are.same({3, 6, 12}, t:totable())
    t:div_(nn.tensor({3, 2, 4}))
    assert.are.same({1, 3, 3}, t:totable())
    t:pow_(2)
    assert.are.same({1, 9, 9}, t:totable())
  end)

  it("broadcasts the other operand into the tensor", function()
    local t = nn.zeros(2, 3)
    t:add_(nn.tensor({1, 2, 3}))
    assert.are.same({{1, 2, 3}, {1, 2, 3}}, t:totable())
  end)

  it("unary in-place forms, clamp_, fill_ and zero_", function()
    local t = nn.tensor({-1, 4, 9})
    t:abs_()
    assert.are.same({1, 4, 9}, t:totable())
    t:sqrt_()
    assert.are.same({1, 2, 3}, t:totable())
    t:clamp_(1.5, 2.5)
    assert.are.same({1.5, 2, 2.5}, t:totable())
    t:fill_(7)
    assert.are.same({7, 7, 7}, t:totable())
    t:zero_()
    assert.are.same({0, 0, 0}, t:totable())
  end)

  it("an in-place op on a view changes the base", function()
    local t = nn.ones(2, 2)
    t:select(1, 2):mul_(5)
    assert.are.same({{1, 1}, {5, 5}}, t:totable())
  end)
end)

describe("t[i] indexing", function()
  local t = nn.tensor({{1, 2, 3}, {4, 5, 6}, {7, 8, 9}})

  it("is 1-based along the first dimension", function()
    assert.are.same({1, 2, 3}, t[1]:totable())
    assert.are.same({7, 8, 9}, t[3]:totable())
    assert.are.equal(6, t[2][3]:item())
  end)

  it("counts negative indices from the end", function()
    assert.are.same({7, 8, 9}, t[-1]:totable())
    assert.are.same({1, 2, 3}, t[-3]:totable())
    assert.are.equal(8, t[-1][-2]:item())
  end)

  it("assignment fills with a number or copies a tensor", function()
    local u = nn.zeros(3, 2)
    u[1] = 5
    u[-1] = nn.tensor({1, 2})
    u[2][2] = 9
    assert.are.same({{5, 5}, {0, 9}, {1, 2}}, u:totable())
  end)

  it("a selected row is a view", function()
    local u = nn.zeros(2, 2)
    local row = u[2]
    row[1] = 3
    assert.are.equal(3, u[2][1]:item())
  end)
end)

-- A fixture case's tensor: nested tables built from its flat values, with
-- its dtype and requires_grad as options (an empty shape goes through view).
local function from_flat(case)
  local shape = case.shape
  local opts = {dtype = case.dtype, requires_grad = case.requires_grad or nil}
  if #shape == 0 then return nn.tensor(case.values[1], opts) end
  for _, n in ipairs(shape) do
    if n == 0 then return nn.tensor(case.values, {dtype = case.dtype}):view(shape) end
  end
  local pos = 0
  local function nest(d)
    local level = {}
    for i = 1, shape[d] do
      if d == #shape then
        pos = pos + 1
        level[i] = case.values[pos]
      else
        level[i] = nest(d + 1)
      end
    end
    return level
  end
  local t = nn.tensor(nest(1), opts)
  assert.are.same(shape, t:size())
  return t
end

describe("tostring matches PyTorch", function()
  for _, case in ipairs(reference.printing) do
    it(case.name, function()
      local t
      if case.build then
        -- "ones(2, requires_grad=true) * 2"
        t = nn.ones(2, {requires_grad = true}) * 2
        assert.are.equal(case.grad_fn, t.grad_fn)
      else
        t = from_flat(case)
      end
      assert.are.equal(case.expected, tostring(t))
    end)
  end
end)

describe("lifetime", function()
  it("a <close> tensor is released at the end of its block", function()
    local escaped
    do
      local t <close> = nn.zeros(2)
      escaped = t
      assert.are.equal(2, t:numel())
    end
    local ok, err = pcall(function() return escaped + 1 end)
    assert.is_false(ok)
    assert.is_truthy(tostring(err):find("closed"), err)
    ok, err = pcall(function() return escaped:sum() end)
    assert.is_false(ok)
    assert.is_truthy(tostring(err):find("closed"), err)
    assert.are.equal("tensor(closed)", tostring(escaped))
  end)

  it("memory stays bounded making many tensors without collectgarbage", function()
    local in_use = nn._C.memory_in_use
    local limit = 8 * 1024 * 1024 -- 200k tensors of 4 KB would be 800 MB if none were freed
    collectgarbage() -- start from a clean heap; nothing below collects by hand
    local peak = 0
    for i = 1, 200000 do
      local t = nn.zeros(1000)
      t = t + 1
      if i % 500 == 0 then peak = math.max(peak, in_use()) end
    end
    assert.is_true(peak < limit, string.format("peak %.1f MB of tensor storage in use", peak / 2 ^ 20))
  end)

  it("tensors the engine frees before they reach Lua bring on no collection", function()
    -- Each forward makes a 256 KB intermediate that Sequential frees itself
    -- and boxes a 256-byte output: no garbage worth a step of the collector
    -- (a step costs a young collection, whatever it finds). The collector
    -- is stopped, so only a step from tensor memory would run the finalizer.
    local model = nn.Sequential(nn.Sigmoid(), nn.Linear(1024, 1))
    local x = nn.rand(64, 1024)
    collectgarbage()
    collectgarbage("stop")
    local finalized = false
    setmetatable({}, {__gc = function() finalized = true end})
    nn.no_grad(function()
      for _ = 1, 200 do model(x) end
    end)
    local ran = finalized
    collectgarbage("restart")
    assert.is_false(ran)
    -- growth of what is held still steps it: garbage boxes of 256 KB
    collectgarbage("stop")
    setmetatable({}, {__gc = function() finalized = true end})
    finalized = false
    for _ = 1, 20 do local _ = x + 1 end
    ran = finalized
    collectgarbage("restart")
    assert.is_true(ran)
  end)
end)

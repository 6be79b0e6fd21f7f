-- Automatic differentiation: recording, backward, gradient modes, and a
-- finite-difference check (nn.gradcheck, float64) of every differentiable op.
local nn = require "nn"
local support = dofile((os.getenv("NN_ROOT") or ".") .. "/tests/lua/support.lua")
local flat, expect_error = support.flat, support.expect_error
local F = nn.F


local function assert_close(expected, actual, tol, what)
  tol = tol or 1e-10
  assert(math.abs(expected - actual) <= tol * math.max(1, math.abs(expected)),
    string.format("%s: expected %.12g, got %.12g", what or "value", expected, actual))
end

local function assert_values(expected, t, tol)
  local got = flat(t)
  assert.are.equal(#expected, #got, "number of elements")
  for i = 1, #expected do assert_close(expected[i], got[i], tol, "element " .. i) end
end

local function f64(...) return nn.tensor(..., {dtype = "float64"}) end

-- A float64 leaf of the given shape that requires grad, from randn.
-- Sizes come as varargs or one table; options are appended after them.
local function with_options(options, ...)
  local args = type(...) == "table" and {table.unpack((...))} or {...}
  return {args, options}
end
local function leaf(...)
  local a = with_options({dtype = "float64", requires_grad = true}, ...)
  return nn.randn(a[1], a[2])
end

-- A leaf whose values are kept at least `gap` away from 0 (for abs, relu,
-- norm(1), ...), where a finite difference across the kink would be wrong.
local function away_from_zero(gap, ...)
  local a = with_options({dtype = "float64"}, ...)
  local t = nn.randn(a[1], a[2])
  local s = t:sign()
  t = (t:abs() + gap) * s + s:eq(0):double() * gap
  return t:detach():requires_grad_(true)
end

-- A positive float64 leaf in [lo, lo + 1).
local function positive(lo, ...)
  local a = with_options({dtype = "float64"}, ...)
  return (nn.rand(a[1], a[2]) + lo):detach():requires_grad_(true)
end

local function check(fn, inputs)
  assert.is_true(nn.gradcheck(fn, inputs))
end

-- For ops whose result is a view of (or is) the input: first the op's
-- backward with the result copied out (so that a finite difference cannot
-- alias the input), then gradcheck of the op itself.
local function check_view(fn, inputs)
  assert.is_true(nn.gradcheck(function(...) return fn(...) * 1 end, inputs), "the op's backward")
  assert.is_true(nn.gradcheck(fn, inputs), "gradcheck of a function returning a view of its input")
end

describe("requires_grad and leaves", function()
  it("is off by default and set by the option, the field or requires_grad_", function()
    assert.is_false(nn.ones(2).requires_grad)
    assert.is_true(nn.ones(2, {requires_grad = true}).requires_grad)
    local t = nn.ones(2)
    t.requires_grad = true
    assert.is_true(t.requires_grad)
    local u = nn.ones(2):requires_grad_()
    assert.is_true(u.requires_grad)
    u:requires_grad_(false)
    assert.is_false(u.requires_grad)
  end)

  it("a result of a recorded op requires grad and is not a leaf", function()
    local x = nn.ones(2, {requires_grad = true})
    local y = x * 3
    assert.is_true(y.requires_grad)
    assert.is_true(x.is_leaf)
    assert.is_false(y.is_leaf)
    assert.is_nil(x.grad_fn)
    assert.is_string(y.grad_fn)
  end)

  it("names grad_fn as PyTorch (1.13) does", function()
    local x = nn.ones(2, 2, {requires_grad = true})
    local cases = {
      {"x + x", "AddBackward0", function() return x + x end},
      {"x + 2 (a Lua number is wrapped, as a Python scalar is)", "AddBackward0", function() return x + 2 end},
      {"x - x", "SubBackward0", function() return x - x end},
      {"x - 2", "SubBackward0", function() return x - 2 end},
      {"2 - x", "RsubBackward1", function() return 2 - x end},
      {"x / 2", "DivBackward0", function() return x / 2 end},
      {"x * x", "MulBackward0", function() return x * x end},
      {"x * 2", "MulBackward0", function() return x * 2 end},
      {"x / x", "DivBackward0", function() return x / x end},
      {"-x", "NegBackward0", function() return -x end},
      {"x ^ 2", "PowBackward0", function() return x ^ 2 end},
      {"x ^ x", "PowBackward1", function() return x ^ x end},
      {"2 ^ x", "PowBackward2", function() return 2 ^ x end},
      {"x:exp()", "ExpBackward0", function() return x:exp() end},
      {"x:sigmoid()", "SigmoidBackward0", function() return x:sigmoid() end},
      {"x:relu()", "ReluBackward0", function() return x:relu() end},
      {"x:sum()", "SumBackward0", function() return x:sum() end},
      {"x:sum(1)", "SumBackward1", function() return x:sum(1) end},
      {"x:mean()", "MeanBackward0", function() return x:mean() end},
      {"x:mean(1)", "MeanBackward1", function() return x:mean(1) end},
      {"x:max()", "MaxBackward1", function() return x:max() end},
      {"x:max(1)", "MaxBackward0", function() return (x:max(1)) end},
      {"x:matmul(x)", "MmBackward0", function() return x:matmul(x) end},
      {"F.linear(x, w, b)", "AddmmBackward0", function() return F.linear(x, nn.ones(3, 2), nn.ones(3)) end},
      {"x:t()", "TBackward0", function() return x:t() end},
      {"x:transpose(1, 2)", "TransposeBackward0", function() return x:transpose(1, 2) end},
      {"x:view(4)", "ViewBackward0", function() return x:view(4) end},
      {"x:expand(3, 2, 2)", "ExpandBackward0", function() return x:expand(3, 2, 2) end},
      {"x:double()", "ToCopyBackward0", function() return x:double() end},
    }
    local wrong = {}
    for _, c in ipairs(cases) do
      local got = c[3]().grad_fn
      if got ~= c[2] then wrong[#wrong + 1] = string.format("%s: %s, expected %s", c[1], tostring(got), c[2]) end
    end
    assert(#wrong == 0, "grad_fn names differ from PyTorch's:\n  " .. table.concat(wrong, "\n  "))
  end)

  it("a tensor computed only from tensors without requires_grad needs no grad", function()
    local y = nn.ones(2) * nn.ones(2)
    assert.is_false(y.requires_grad)
    assert.is_nil(y.grad_fn)
    assert.is_true(y.is_leaf)
  end)
end)

describe("backward", function()
  it("from a scalar fills .grad of the leaves", function()
    local x = f64({1, 2, 3}):requires_grad_()
    local y = (x * x):sum()
    assert.is_nil(x.grad)
    y:backward()
    assert_values({2, 4, 6}, x.grad)
    assert.are.equal("float64", x.grad.dtype)
    assert.are.same({3}, x.grad:size())
  end)

  it("accumulates into .grad across two backward calls", function()
    local x = f64({1, 2}):requires_grad_()
    ;(x * 3):sum():backward()
    ;(x * x):sum():backward()
    assert_values({3 + 2, 3 + 4}, x.grad)
  end)

  it("takes an explicit gradient for a non-scalar output", function()
    local x = f64({1, 2, 3}):requires_grad_()
    local y = x * x
    y:backward(f64({1, 0.5, -1}))
    assert_values({2, 2, -6}, x.grad)
  end)

  it("does not give .grad to non-leaves", function()
    local x = f64({1, 2}):requires_grad_()
    local h = x * 2
    h:sum():backward()
    assert.is_nil(h.grad)
    assert_values({2, 2}, x.grad)
  end)

  it("retain_graph: backward(true) keeps the graph for a second backward", function()
    local x = f64({1, 2}):requires_grad_()
    local y = (x:exp()):sum()
    y:backward(true)
    y:backward()
    assert_values({2 * math.exp(1), 2 * math.exp(2)}, x.grad, 1e-12)
  end)

  it("gives a leaf used twice the sum of both paths", function()
    local x = f64({3}):requires_grad_()
    local y = x * x * x + x * 2 -- 3x^2 + 2
    y:sum():backward()
    assert_values({29}, x.grad)
  end)

  it("sums a broadcast operand's gradient down to its own shape", function()
    local a = nn.ones(2, 3, {dtype = "float64", requires_grad = true})
    local row = f64({1, 2, 3}):requires_grad_()
    local col = f64({{10}, {20}}):requires_grad_()
    local s = f64(5):requires_grad_()
    ;(a * row + col * a + s):sum():backward()
    assert.are.same({3}, row.grad:size())
    assert_values({2, 2, 2}, row.grad)
    assert.are.same({2, 1}, col.grad:size())
    assert_values({3, 3}, col.grad)
    assert.are.same({}, s.grad:size())
    assert_values({6}, s.grad)
    assert_values({11, 12, 13, 21, 22, 23}, a.grad)
  end)

  it("computes simple derivatives by hand", function()
    local x = f64({0.5, 2}):requires_grad_()
    local function grad_of(fn)
      x.grad = nil
      fn(x):sum():backward()
      return flat(x.grad)
    end
    local g = grad_of(function(v) return v * v end)
    assert_close(1, g[1]); assert_close(4, g[2])
    g = grad_of(function(v) return v:exp() end)
    assert_close(math.exp(0.5), g[1]); assert_close(math.exp(2), g[2])
    g = grad_of(function(v) return v:log() end)
    assert_close(2, g[1]); assert_close(0.5, g[2])
    g = grad_of(function(v) return 1 / v end)
    assert_close(-4, g[1]); assert_close(-0.25, g[2])
    g = grad_of(function(v) return v:sqrt() end)
    assert_close(0.5 / math.sqrt(0.5), g[1]); assert_close(0.5 / math.sqrt(2), g[2])
    g = grad_of(function(v) return v:sigmoid() end)
    local s = 1 / (1 + math.exp(-2))
    assert_close(s * (1 - s), g[2])
    g = grad_of(function(v) return v ^ 3 end)
    assert_close(0.75, g[1]); assert_close(12, g[2])
  end)
end)

describe("backward's arguments", function()
  local function loss()
    local x = f64({1, 2}):requires_grad_()
    return (x * x):sum(), x
  end

  it("takes retain_graph as a boolean or in an options table, after an optional gradient", function()
    local y, x = loss()
    y:backward(nil, true)
    y:backward({retain_graph = true})
    y:backward(f64(1), {retain_graph = true, create_graph = false})
    y:backward(f64(1), true)
    y:backward(nil, nil)
    assert_values({10, 20}, x.grad)
    expect_error(function() y:backward() end, "backward", "freed")
  end)

  it("takes create_graph = true, which keeps the graph (higher_order_spec checks the values)", function()
    local y, x = loss()
    y:backward(nil, {create_graph = true})
    assert.is_truthy(x.grad)
    y:backward({create_graph = true}) -- retain_graph defaulted to true
  end)

  it("refuses anything else", function()
    local y, x = loss()
    expect_error(function() y:backward(1) end, "backward", "number")
    expect_error(function() y:backward("yes") end, "backward", "string")
    expect_error(function() y:backward(nil, 1) end, "backward", "number")
    expect_error(function() y:backward(f64(1), "x") end, "backward", "string")
    expect_error(function() y:backward(nil, true, 3) end, "backward", "arguments")
    expect_error(function() y:backward(true, true) end, "backward", "arguments")
    expect_error(function() y:backward({retain = true}) end, "backward", "unknown option", "retain")
    expect_error(function() y:backward({retain_graph = 1}) end, "backward", "retain_graph", "boolean")
    expect_error(function() y:backward({inputs = {x}}) end, "backward", "inputs")
    assert.is_nil(x.grad)
  end)
end)

-- Graphs deeper than the C stack could follow by recursion: freeing them
-- and differentiating them are loops (tests/c/test_autograd.c goes deeper).
describe("graphs of a million nodes", function()
  it("are freed without a backward", function()
    local x = nn.ones(1, {requires_grad = true})
    local y = x
    for _ = 1, 1e6 do y = y * 1 end
    y = nil -- luacheck: ignore
    collectgarbage()
    collectgarbage()
    assert.is_true(x.requires_grad)
  end)

  it("are differentiated, and freed after", function()
    -- the mistake of summing losses without item(): one long chain
    local x = nn.ones(1, {requires_grad = true})
    local total = 0
    for _ = 1, 5e5 do total = total + x end
    total:backward(nil, true)
    assert.are.equal(5e5, x.grad:item())
    total = nil -- luacheck: ignore
    collectgarbage()
    collectgarbage()
  end)
end)

describe("gradients at ties and kinks follow PyTorch's conventions", function()
  local function grad_of(values, fn)
    local x = f64(values):requires_grad_()
    fn(x):sum():backward()
    return x.grad:totable()
  end

  it("max over everything splits the gradient evenly between tied maxima", function()
    assert.are.same({{0.5, 0.5}, {0, 0}}, grad_of({{4, 4}, {3, 1}}, function(x) return x:max() end))
  end)

  it("maximum of two equal values gives each half", function()
    local x = f64({2, 2}):requires_grad_()
    x:maximum(f64({2, 1})):sum():backward()
    assert.are.same({0.5, 1}, x.grad:totable())
  end)

  it("max and min over a dimension send the gradient to the chosen element", function()
    assert.are.same({{0, 1}, {1, 0}}, grad_of({{1, 5}, {7, 2}}, function(x) return (x:max(2)) end))
    assert.are.same({{1, 0}, {0, 1}}, grad_of({{1, 5}, {7, 2}}, function(x) return (x:min(2, true)) end))
    assert.are.same({{0, 1}, {1, 0}}, grad_of({{1, 5}, {7, 2}}, function(x) return (x:max(1)) end))
  end)

  it("relu and abs have derivative 0 at 0", function()
    assert.are.same({0, 1}, grad_of({0, 1}, function(x) return x:relu() end))
    assert.are.same({0, -1}, grad_of({0, -1}, function(x) return x:abs() end))
  end)

  it("the 2-norm of zeros has gradient 0, not NaN", function()
    assert.are.same({0, 0}, grad_of({0, 0}, function(x) return x:norm() end))
  end)

  it("clamp passes the gradient at the bounds themselves", function()
    assert.are.same({1, 1, 0}, grad_of({0, 5, 6}, function(x) return x:clamp(0, 5) end))
  end)

  it("a view's gradient reaches its base", function()
    local x = f64({1, 2, 3}):requires_grad_()
    ;(x:view(3, 1) * nn.ones(1, 2, {dtype = "float64"})):sum():backward()
    assert.are.same({2, 2, 2}, x.grad:totable())
  end)
end)

describe("detach and no_grad", function()
  it("detach shares values but leaves the graph", function()
    local x = f64({1, 2}):requires_grad_()
    local d = (x * 2):detach()
    assert.is_false(d.requires_grad)
    assert.is_nil(d.grad_fn)
    assert_values({2, 4}, d)
    local xd = x:detach()
    nn.no_grad(function() x:mul_(10) end)
    assert_values({10, 20}, xd) -- same storage
  end)

  it("no_grad records nothing and returns what the function returns", function()
    local x = nn.ones(2, {requires_grad = true})
    local y, extra = nn.no_grad(function()
      assert.is_false(nn.is_grad_enabled())
      return x * 2, "extra"
    end)
    assert.is_false(y.requires_grad)
    assert.is_nil(y.grad_fn)
    assert.are.equal("extra", extra)
    assert.is_true(nn.is_grad_enabled())
  end)

  it("no_grad restores the mode after an error inside and passes the error on", function()
    assert.is_true(nn.is_grad_enabled())
    local ok, err = pcall(nn.no_grad, function() error("inside no_grad") end)
    assert.is_false(ok)
    assert.is_truthy(tostring(err):find("inside no_grad", 1, true))
    assert.is_true(nn.is_grad_enabled())
    local x = nn.ones(2, {requires_grad = true})
    assert.is_true((x * 2).requires_grad)
  end)

  it("nests with enable_grad", function()
    local x = nn.ones(2, {requires_grad = true})
    nn.no_grad(function()
      local y = nn.enable_grad(function() return x * 2 end)
      assert.is_true(y.requires_grad)
      assert.is_false(nn.is_grad_enabled())
    end)
    assert.is_true(nn.is_grad_enabled())
  end)

  it("a coroutine that yields inside no_grad does not take the mode with it", function()
    local x = nn.ones(2, {requires_grad = true})
    local seen = {}
    local co = coroutine.create(function(a)
      local r = nn.no_grad(function(b)
        seen[#seen + 1] = nn.is_grad_enabled()
        local c = coroutine.yield(b + 1) -- out of the no_grad body
        seen[#seen + 1] = nn.is_grad_enabled()
        assert.is_false((x * 2).requires_grad)
        return c * 10, "done"
      end, a)
      seen[#seen + 1] = nn.is_grad_enabled()
      return r
    end)
    local ok, v = coroutine.resume(co, 1)
    assert.is_true(ok)
    assert.are.equal(2, v)
    assert.is_true(nn.is_grad_enabled()) -- the resumer records again
    assert.is_true((x * 2).requires_grad)
    ok, v = coroutine.resume(co, 4)
    assert.is_true(ok)
    assert.are.equal(40, v)
    assert.are.same({false, false, true}, seen)
    assert.is_true(nn.is_grad_enabled())
  end)

  it("a coroutine left suspended inside no_grad leaves recording on", function()
    local gen = coroutine.wrap(function() nn.no_grad(function() coroutine.yield(1) end) end)
    assert.are.equal(1, gen())
    assert.is_true(nn.is_grad_enabled())
  end)

  it("a coroutine resumed with recording off keeps it off after no_grad ends", function()
    local co = coroutine.create(function()
      nn.no_grad(function() coroutine.yield() end)
      return nn.is_grad_enabled()
    end)
    coroutine.resume(co)
    nn.set_grad_enabled(false)
    local ok, after = coroutine.resume(co)
    nn.set_grad_enabled(true)
    assert.is_true(ok)
    assert.is_false(after) -- the resumer's mode, not the one no_grad was entered with
  end)

  it("an error inside no_grad in a coroutine restores the mode and is passed on", function()
    local co = coroutine.create(function()
      nn.no_grad(function() coroutine.yield() error("inside no_grad") end)
    end)
    assert.is_true(coroutine.resume(co))
    local ok, err = coroutine.resume(co)
    assert.is_false(ok)
    assert.is_truthy(tostring(err):find("inside no_grad", 1, true))
    assert.is_true(nn.is_grad_enabled())
    local thrown = {}
    local co2 = coroutine.create(function() nn.enable_grad(function() error(thrown) end) end)
    nn.set_grad_enabled(false)
    local ok2, err2 = coroutine.resume(co2)
    assert.is_false(nn.is_grad_enabled())
    nn.set_grad_enabled(true)
    assert.is_false(ok2)
    assert.are.equal(thrown, err2) -- an error value that is not a string stays itself
  end)

  it("an in-place change inside no_grad is allowed on a leaf", function()
    local x = f64({1, 2}):requires_grad_()
    nn.no_grad(function() x:sub_(1) end)
    assert_values({0, 1}, x)
    assert.is_true(x.requires_grad)
    assert.is_true(x.is_leaf)
  end)
end)

describe("to float64 and back", function()
  it("a float32 leaf gets a float32 gradient through double()", function()
    local x = nn.tensor({1, 2}, {requires_grad = true})
    local y = x:double()
    assert.are.equal("float64", y.dtype)
    ;(y * y):sum():backward()
    assert.are.equal("float32", x.grad.dtype)
    assert_values({2, 4}, x.grad)
  end)
end)

describe("nn.gradcheck of every differentiable op (float64)", function()
  before_each(function() nn.manual_seed(1234) end)

  describe("elementwise binary", function()
    it("add", function()
      check(function(a, b) return a + b end, {leaf(2, 3), leaf(2, 3)})
      check(function(a, b) return a + b end, {leaf(2, 3), leaf(3)})
      check(function(a) return a + 2 end, {leaf(3)})
      check(function(a) return 2 + a end, {leaf(3)})
      check(function(a, b) return a:add(b) end, {leaf(2, 1), leaf(1, 3)})
    end)
    it("sub", function()
      check(function(a, b) return a - b end, {leaf(2, 3), leaf(2, 1)})
      check(function(a) return a - 2 end, {leaf(3)})
      check(function(a) return 2 - a end, {leaf(3)})
      check(function(a, b) return a:sub(b) end, {leaf(3), leaf(2, 3)})
    end)
    it("mul", function()
      check(function(a, b) return a * b end, {leaf(2, 3), leaf(2, 3)})
      check(function(a, b) return a * b end, {leaf(4, 1), leaf(3)})
      check(function(a) return a * 3 end, {leaf(3)})
      check(function(a) return 3 * a end, {leaf(3)})
      check(function(a) return a * a end, {leaf(2, 2)})
    end)
    it("div", function()
      check(function(a, b) return a / b end, {leaf(2, 3), positive(0.5, 2, 3)})
      check(function(a, b) return a / b end, {leaf(2, 3), positive(0.5, 3)})
      check(function(a) return a / 4 end, {leaf(3)})
      check(function(a) return 2 / a end, {positive(0.5, 3)})
    end)
    it("pow: tensor ^ tensor, tensor ^ number, number ^ tensor", function()
      check(function(a, b) return a ^ b end, {positive(0.5, 2, 3), leaf(2, 3)})
      check(function(a, b) return a:pow(b) end, {positive(0.5, 3), leaf(2, 3)})
      check(function(a) return a ^ 3 end, {leaf(4)})
      check(function(a) return a ^ 2 end, {leaf(4)})
      check(function(a) return a ^ 0.5 end, {positive(0.5, 4)})
      check(function(a) return a ^ -1.5 end, {positive(0.5, 4)})
      check(function(a) return 2 ^ a end, {leaf(4)})
      check(function(a) return 0.5 ^ a end, {leaf(4)})
    end)
    it("maximum and minimum (and max/min of two tensors)", function()
      local a, b = leaf(2, 3), leaf(2, 3)
      check(function(x, y) return x:maximum(y) end, {a, b})
      check(function(x, y) return x:minimum(y) end, {a, b})
      check(function(x, y) return x:max(y) end, {a, b})
      check(function(x, y) return x:min(y) end, {a, b})
      check(function(x, y) return x:maximum(y) end, {leaf(2, 3), leaf(3)})
    end)
  end)

  describe("elementwise unary", function()
    it("neg", function() check(function(a) return -a end, {leaf(2, 3)}) end)
    it("exp", function() check(function(a) return a:exp() end, {leaf(2, 3)}) end)
    it("log", function() check(function(a) return a:log() end, {positive(0.2, 2, 3)}) end)
    it("sqrt", function() check(function(a) return a:sqrt() end, {positive(0.2, 2, 3)}) end)
    it("abs", function() check(function(a) return a:abs() end, {away_from_zero(0.1, 2, 3)}) end)
    it("sigmoid", function() check(function(a) return a:sigmoid() end, {leaf(2, 3)}) end)
    it("tanh", function() check(function(a) return a:tanh() end, {leaf(2, 3)}) end)
    it("relu", function() check(function(a) return a:relu() end, {away_from_zero(0.1, 2, 3)}) end)
    it("sin", function() check(function(a) return a:sin() end, {leaf(2, 3)}) end)
    it("cos", function() check(function(a) return a:cos() end, {leaf(2, 3)}) end)
    it("clamp (both bounds, lower only, upper only)", function()
      -- values at +-0.25, +-0.75, +-1.5: none within eps of a bound at +-0.5 or 1
      local x = f64({{-1.5, -0.75, -0.25}, {0.25, 0.75, 1.5}}):requires_grad_()
      check(function(a) return a:clamp(-0.5, 1) end, {x})
      check(function(a) return a:clamp(-0.5) end, {x})
      check(function(a) return a:clamp(nil, 0.5) end, {x})
    end)
    it("activations as functions of nn.F", function()
      check(F.sigmoid, {leaf(3)})
      check(F.tanh, {leaf(3)})
      check(F.relu, {away_from_zero(0.1, 3)})
    end)
  end)

  describe("reductions", function()
    it("sum over everything and over each dimension, with and without keepdim", function()
      check(function(a) return a:sum() end, {leaf(2, 3)})
      check(function(a) return a:sum(1) end, {leaf(2, 3)})
      check(function(a) return a:sum(2) end, {leaf(2, 3)})
      check(function(a) return a:sum(-1, true) end, {leaf(2, 3)})
      check(function(a) return a:sum(2, true) end, {leaf(2, 3, 2)})
    end)
    it("mean over everything and over each dimension, with and without keepdim", function()
      check(function(a) return a:mean() end, {leaf(2, 3)})
      check(function(a) return a:mean(1) end, {leaf(2, 3)})
      check(function(a) return a:mean(2, true) end, {leaf(2, 3)})
      check(function(a) return a:mean(3) end, {leaf(2, 3, 2)})
    end)
    it("max and min over everything", function()
      check(function(a) return a:max() end, {leaf(2, 3)})
      check(function(a) return a:min() end, {leaf(2, 3)})
    end)
    it("max over a dimension (values), with and without keepdim", function()
      check(function(a) return (a:max(1)) end, {leaf(3, 4)})
      check(function(a) return (a:max(2, true)) end, {leaf(3, 4)})
    end)
    it("min over a dimension (values), with and without keepdim", function()
      check(function(a) return (a:min(2)) end, {leaf(3, 4)})
      check(function(a) return (a:min(1, true)) end, {leaf(3, 4)})
    end)
    it("norm with p = 1, 2 and 3", function()
      check(function(a) return a:norm() end, {leaf(2, 3)})
      check(function(a) return a:norm(2) end, {leaf(5)})
      check(function(a) return a:norm(1) end, {away_from_zero(0.1, 2, 3)})
      check(function(a) return a:norm(3) end, {away_from_zero(0.1, 2, 3)})
    end)
  end)

  describe("matmul", function()
    local cases = {
      {"1-d by 1-d", {3}, {3}},
      {"2-d by 2-d", {2, 3}, {3, 4}},
      {"2-d by 1-d", {2, 3}, {3}},
      {"1-d by 2-d", {3}, {3, 4}},
      {"3-d by 3-d", {2, 2, 3}, {2, 3, 2}},
      {"3-d by 2-d", {2, 2, 3}, {3, 2}},
      {"2-d by 3-d", {2, 3}, {2, 3, 2}},
      {"3-d by 1-d", {2, 2, 3}, {3}},
      {"1-d by 3-d", {3}, {2, 3, 2}},
      {"broadcast batch 1 by 2", {1, 2, 3}, {2, 3, 2}},
    }
    for _, c in ipairs(cases) do
      it(c[1], function()
        check(function(a, b) return a:matmul(b) end, {leaf(c[2]), leaf(c[3])})
      end)
    end
    it("a transposed (non-contiguous) operand", function()
      check(function(a, b) return a:matmul(b:t()) end, {leaf(2, 3), leaf(4, 3)})
    end)
  end)

  describe("linear", function()
    it("F.linear with bias", function()
      check(F.linear, {leaf(4, 3), leaf(2, 3), leaf(2)})
    end)
    it("F.linear without bias", function()
      check(function(x, w) return F.linear(x, w) end, {leaf(4, 3), leaf(2, 3)})
    end)
    it("F.linear of a 1-d input", function()
      check(F.linear, {leaf(3), leaf(2, 3), leaf(2)})
    end)
    it("F.linear of a 3-d input", function()
      check(F.linear, {leaf(2, 2, 3), leaf(2, 3), leaf(2)})
    end)
  end)

  describe("views and copies", function()
    it("view and reshape", function()
      check_view(function(a) return a:view(3, 2) end, {leaf(2, 3)})
      check_view(function(a) return a:view(-1) end, {leaf(2, 3)})
      check_view(function(a) return a:reshape(6) end, {leaf(2, 3)})
      check_view(function(a) return a:t():reshape(6) end, {leaf(2, 3)})
    end)
    it("transpose, t and permute", function()
      check_view(function(a) return a:transpose(1, 2) end, {leaf(2, 3)})
      check_view(function(a) return a:transpose(1, 3) end, {leaf(2, 3, 2)})
      check_view(function(a) return a:t() end, {leaf(2, 3)})
      check_view(function(a) return a:permute(3, 1, 2) end, {leaf(2, 3, 2)})
    end)
    it("narrow and select", function()
      check_view(function(a) return a:narrow(2, 2, 2) end, {leaf(2, 4)})
      check_view(function(a) return a:narrow(1, 1, 1) end, {leaf(2, 4)})
      check_view(function(a) return a:select(1, 2) end, {leaf(2, 3)})
      check_view(function(a) return a:select(2, -1) end, {leaf(2, 3)})
      check_view(function(a) return a[2] end, {leaf(3, 2)})
    end)
    it("unsqueeze and squeeze", function()
      check_view(function(a) return a:unsqueeze(1) end, {leaf(3)})
      check_view(function(a) return a:unsqueeze(2) end, {leaf(2, 3)})
      check_view(function(a) return a:squeeze() end, {leaf(1, 3, 1)})
      check_view(function(a) return a:squeeze(1) end, {leaf(1, 3)})
    end)
    it("expand sums the gradient over the repeats", function()
      check_view(function(a) return a:expand(3, 4) end, {leaf(3, 1)})
      check_view(function(a) return a:expand(2, 3) end, {leaf(3)})
    end)
    it("contiguous and clone", function()
      check_view(function(a) return a:t():contiguous() end, {leaf(2, 3)})
      check_view(function(a) return a:clone() end, {leaf(2, 3)})
    end)
    it("to float64 (and double())", function()
      check_view(function(a) return a:to("float64") end, {leaf(2, 3)})
      check_view(function(a) return a:double() * 2 end, {leaf(3)})
    end)
    it("a chain of views", function()
      check_view(function(a) return a:view(2, 6):t():narrow(1, 2, 3):unsqueeze(1):squeeze(1):select(2, 2) end,
        {leaf(3, 4)})
    end)
  end)

  describe("losses", function()
    for _, reduction in ipairs({"mean", "sum", "none"}) do
      it("mse_loss, reduction = " .. reduction, function()
        check(function(x, y) return F.mse_loss(x, y, {reduction = reduction}) end, {leaf(3, 2), leaf(3, 2)})
        check(function(x, y) return nn.MSELoss({reduction = reduction})(x, y) end, {leaf(4), leaf(4)})
      end)
      it("binary_cross_entropy, reduction = " .. reduction, function()
        local target = nn.rand(3, 2, {dtype = "float64"})
        check(function(z) return F.binary_cross_entropy(z:sigmoid(), target, {reduction = reduction}) end,
          {leaf(3, 2)})
        check(function(z) return nn.BCELoss({reduction = reduction})(z:sigmoid(), target) end, {leaf(3, 2)})
        local weight = nn.rand(3, 2, {dtype = "float64"})
        check(function(z) return F.binary_cross_entropy(z:sigmoid(), target, {weight = weight, reduction = reduction}) end,
          {leaf(3, 2)})
      end)
    end
    it("binary_cross_entropy refuses a target that requires grad, as PyTorch does", function()
      local p = nn.rand(4, {dtype = "float64"}) * 0.8 + 0.1
      local ok, err = pcall(F.binary_cross_entropy, p, positive(0, 4))
      assert.is_false(ok)
      assert.is_truthy(tostring(err):find("target", 1, true), err)
    end)
  end)

  describe("a whole model", function()
    it("Sequential of Linear + Sigmoid in float64, with respect to the input", function()
      nn.manual_seed(5)
      local model = nn.Sequential(nn.Linear(3, 4), nn.Sigmoid(), nn.Linear(4, 2), nn.Sigmoid()):double()
      for _, p in ipairs(model:parameters()) do assert.are.equal("float64", p.dtype) end
      check(function(x) return model(x) end, {leaf(5, 3)})
    end)
    it("Sequential of Linear + Sigmoid in float64, with respect to its parameters", function()
      nn.manual_seed(6)
      local model = nn.Sequential(nn.Linear(3, 4), nn.Sigmoid(), nn.Linear(4, 1), nn.Sigmoid()):double()
      local x = nn.randn(5, 3, {dtype = "float64"})
      local y = nn.rand(5, 1, {dtype = "float64"}):gt(0.5):double()
      local criterion = nn.BCELoss()
      check(function() return criterion(model(x), y) end, model:parameters())
    end)
  end)
end)

describe("nn.gradcheck itself", function()
  it("returns true for a correct gradient", function()
    assert.is_true(nn.gradcheck(function(a) return a * a end, leaf(3)))
  end)

  it("refuses float32 inputs with a clear error", function()
    local ok, err = pcall(nn.gradcheck, function(a) return a * 2 end, {nn.ones(3, {requires_grad = true})})
    assert.is_false(ok)
    assert.is_truthy(tostring(err):find("gradcheck", 1, true), err)
    assert.is_truthy(tostring(err):find("float64", 1, true), err)
  end)

  it("refuses inputs none of which requires grad", function()
    local ok, err = pcall(nn.gradcheck, function(a) return a * 2 end, {nn.ones(3, {dtype = "float64"})})
    assert.is_false(ok)
    assert.is_truthy(tostring(err):find("gradcheck", 1, true), err)
    assert.is_truthy(tostring(err):find("requires grad", 1, true), err)
  end)

  it("with raise = false returns false and a message instead of raising", function()
    local ok, msg = nn.gradcheck(function(a) return a * 2 end, {nn.ones(3, {requires_grad = true})}, {raise = false})
    assert.is_false(ok)
    assert.is_string(msg)
  end)

  it("catches a gradient that disagrees with the function's values", function()
    -- step() has a zero derivative, but near the jump its finite difference is
    -- huge: gradcheck must report the disagreement.
    local x = f64({1e-7, -1e-7}):requires_grad_()
    local ok, msg = nn.gradcheck(function(a) return a:step() + a end, {x}, {raise = false})
    assert.is_false(ok)
    assert.is_truthy(msg:find("finite differences", 1, true), msg)
    local raised, err = pcall(nn.gradcheck, function(a) return a:step() + a end, {x})
    assert.is_false(raised)
    assert.is_truthy(tostring(err):find("gradcheck", 1, true), err)
  end)

  it("handles a function whose output is a view of its input (PyTorch clones outputs)", function()
    assert.is_true(nn.gradcheck(function(a) return a:view(-1) end, {leaf(2, 2)}))
    assert.is_true(nn.gradcheck(function(a) return a end, {leaf(3)}))
  end)

  it("leaves the inputs' values and gradients as they were", function()
    local x = f64({0.5, -1}):requires_grad_()
    nn.gradcheck(function(a) return a:exp() end, {x})
    assert_values({0.5, -1}, x)
    assert.is_nil(x.grad)
  end)
end)

-- Activations: each against PyTorch's values and gradients
-- (tests/fixtures/activations_reference.lua, written by gen_activations.py),
-- gradcheck in float64, stability at +-1000, nn.F.derivative, printing and
-- the errors bad arguments raise.
local nn = require "nn"
local support = dofile((os.getenv("NN_ROOT") or ".") .. "/tests/lua/support.lua")
local flat = support.flat
local F = nn.F

local root = os.getenv("NN_ROOT") or "."
local reference = dofile(root .. "/tests/fixtures/activations_reference.lua")

-- Agreement: |got - expected| <= rtol |expected| + atol. The absolute part
-- matters only for values near 0. In float32 it is 1e-6 (torch.testing's own
-- float32 atol is 1e-5) because PyTorch's float32 GELU computes
-- 1 + erf(x / sqrt 2), which cancels in the left tail: its values there are
-- off by up to |x| float32 rounding steps (5e-7), where the engine's erfc form
-- is exact; every other float32 activation agrees to 1e-5 relative alone.
local RTOL = {float32 = 1e-5, float64 = 1e-10}
local ATOL = {float32 = 1e-6, float64 = 1e-13}
local TOLERANCE = RTOL


local function assert_values(expected, t, rtol, what, atol)
  local got = flat(t)
  atol = atol or (rtol == RTOL.float32 and ATOL.float32 or rtol * 1e-3)
  assert.are.equal(#expected, #got, (what or "") .. ": number of elements")
  for i = 1, #expected do
    local e, a = expected[i], got[i]
    local ok = (e ~= e and a ~= a) or e == a or math.abs(a - e) <= rtol * math.abs(e) + atol
    assert(ok, string.format("%s: element %d: expected %.17g, got %.17g", what or "value", i, e, a))
  end
end

-- PyTorch 1.13's float64 hardsigmoid backward multiplies by float32's 1/6
-- (0.1666666716337204); the engine uses the exact 1/6, and is compared
-- with that. Every other value is PyTorch's own.
local function expected_grad(case, dtype)
  local grad = case[dtype].grad
  if case.fn ~= "hardsigmoid" or dtype ~= "float64" then return grad end
  local exact = {}
  for i, v in ipairs(grad) do exact[i] = v == 0.1666666716337204 and 1 / 6 or v end
  return exact
end

-- A fixture tensor: flat values, a shape, a dtype.
local function from_flat(values, shape, dtype, requires_grad)
  local t = nn.tensor(values, {dtype = dtype}):view(shape)
  if requires_grad then t = t:detach():requires_grad_(true) end
  return t
end

local CLASS = {
  leaky_relu = "LeakyReLU", elu = "ELU", selu = "SELU", silu = "SiLU", gelu = "GELU",
  softplus = "Softplus", mish = "Mish", hardtanh = "Hardtanh", hardsigmoid = "Hardsigmoid",
  logsigmoid = "LogSigmoid", softsign = "Softsign",
}

-- The three ways to call an elementwise activation.
local function ways(case)
  local args = case.args
  return {
    ["nn.F." .. case.fn] = function(x) return F[case.fn](x, table.unpack(args)) end,
    ["x:" .. case.fn] = function(x) return x[case.fn](x, table.unpack(args)) end,
    ["nn." .. CLASS[case.fn]] = function(x) return nn[CLASS[case.fn]](table.unpack(args))(x) end,
  }
end

describe("elementwise activations agree with PyTorch", function()
  for _, case in ipairs(reference.elementwise) do
    for _, dtype in ipairs {"float32", "float64"} do
      local expected = case[dtype]
      it(case.name .. " " .. dtype .. ": values and gradients, three ways", function()
        for how, f in pairs(ways(case)) do
          local x = nn.tensor(reference.input, {dtype = dtype, requires_grad = true})
          local y = f(x)
          assert.are.equal(dtype, y.dtype)
          assert_values(expected.output, y, TOLERANCE[dtype], how .. " value")
          y:sum():backward()
          assert_values(expected_grad(case, dtype), x.grad, TOLERANCE[dtype], how .. " gradient")
        end
      end)
    end
  end

  it("named parameters work like positional ones", function()
    local x = nn.tensor(reference.input, {dtype = "float64"})
    local function same(a, b) assert_values(flat(a), b, 0, "named") end
    same(F.leaky_relu(x, 0.2), F.leaky_relu(x, {negative_slope = 0.2}))
    same(F.softplus(x, 2, 10), x:softplus {beta = 2, threshold = 10})
    same(F.hardtanh(x, -2, 3), nn.Hardtanh {min_val = -2, max_val = 3}(x))
    same(F.gelu(x, "tanh"), nn.GELU {approximate = "tanh"}(x))
    same(F.softplus(x, 1, 5), F.softplus(x, {threshold = 5}))
  end)

  it("a non-contiguous input gives the same values as its contiguous copy", function()
    local x = nn.randn(4, 6, {dtype = "float64"}):t()
    assert.is_false(x:is_contiguous())
    for _, fn in ipairs {"leaky_relu", "elu", "gelu", "softplus", "mish", "logsigmoid", "softsign"} do
      assert_values(flat(F[fn](x:contiguous())), F[fn](x), 0, fn)
    end
    assert_values(flat(x:contiguous():softmax(1)), x:softmax(1), 0, "softmax")
  end)

  it("keeps the input's shape and dtype, and the aliases name the same functions", function()
    local x = nn.randn(2, 3, 4)
    local y = x:selu()
    assert.are.same({2, 3, 4}, y:size())
    assert.are.equal("float32", y.dtype)
    assert.are.equal(F.logsigmoid, F.log_sigmoid)
    assert_values(flat(x:logsigmoid()), x:log_sigmoid(), 0, "log_sigmoid")
  end)

  it("records PyTorch's grad_fn names", function()
    local x = nn.randn(3, {dtype = "float64", requires_grad = true})
    assert.are.equal("LeakyReluBackward0", x:leaky_relu().grad_fn)
    assert.are.equal("EluBackward0", x:selu().grad_fn)
    assert.are.equal("GeluBackward0", x:gelu("tanh").grad_fn)
    assert.are.equal("SoftmaxBackward0", x:softmax(1).grad_fn)
    assert.are.equal("LogSoftmaxBackward0", x:log_softmax(1).grad_fn)
  end)

  it("run inside a Sequential and train through backward", function()
    nn.manual_seed(3)
    local model = nn.Sequential(nn.Linear(2, 4), nn.GELU(), nn.Linear(4, 4), nn.Mish(),
      nn.Linear(4, 3), nn.LogSoftmax(2))
    local y = model(nn.randn(5, 2))
    assert.are.same({5, 3}, y:size())
    y:sum():backward()
    for _, p in ipairs(model:parameters()) do assert.is_not_nil(p.grad) end
  end)
end)

describe("softmax and log_softmax agree with PyTorch", function()
  for _, case in ipairs(reference.softmax) do
    for _, dtype in ipairs {"float32", "float64"} do
      it(case.name .. " " .. dtype, function()
        local expected = case[dtype]
        local weight = from_flat(case.weight, case.shape, dtype)
        local calls = {
          function(x) return F[case.fn](x, case.dim) end,
          function(x) return x[case.fn](x, case.dim) end,
          function(x) return nn[case.fn == "softmax" and "Softmax" or "LogSoftmax"](case.dim)(x) end,
          function(x) return F[case.fn](x, case.dim - #case.shape - 1) end, -- the same dim, from the end
        }
        for k, f in ipairs(calls) do
          local x = from_flat(case.input, case.shape, dtype, true)
          local y = f(x)
          assert_values(expected.output, y, TOLERANCE[dtype], "call " .. k .. " value")
          ;(y * weight):sum():backward()
          assert_values(expected.grad, x.grad, TOLERANCE[dtype], "call " .. k .. " gradient")
        end
      end)
    end
  end
end)

describe("PReLU agrees with PyTorch", function()
  for _, case in ipairs(reference.prelu) do
    for _, dtype in ipairs {"float32", "float64"} do
      it(case.name .. " " .. dtype .. ": values and gradients of input and weight", function()
        local expected = case[dtype]
        local seed = from_flat(case.seed, case.shape, dtype)
        local x = from_flat(case.input, case.shape, dtype, true)
        local w = nn.tensor(case.weight, {dtype = dtype, requires_grad = true})
        local y = F.prelu(x, w)
        assert_values(expected.output, y, TOLERANCE[dtype], "value")
        ;(y * seed):sum():backward()
        assert_values(expected.grad, x.grad, TOLERANCE[dtype], "input gradient")
        assert_values(expected.grad_weight, w.grad, TOLERANCE[dtype], "weight gradient")

        -- the module, its weight set to the case's
        local m = nn.PReLU(#case.weight, 0.25, {dtype = dtype})
        nn.no_grad(function() m.weight:copy_(nn.tensor(case.weight, {dtype = dtype})) end)
        local x2 = from_flat(case.input, case.shape, dtype, true)
        local y2 = m(x2)
        assert_values(expected.output, y2, TOLERANCE[dtype], "module value")
        ;(y2 * seed):sum():backward()
        assert_values(expected.grad, x2.grad, TOLERANCE[dtype], "module input gradient")
        assert_values(expected.grad_weight, m.weight.grad, TOLERANCE[dtype], "module weight gradient")
      end)
    end
  end

  it("has one learnable weight per channel, initialised to init", function()
    local m = nn.PReLU()
    assert.are.same({1}, m.weight:size())
    assert.are.equal(0.25, m.weight[1]:item())
    assert.is_true(m.weight.requires_grad)
    local m3 = nn.PReLU(3, 0.1)
    assert.are.equal(1, #m3:parameters())
    assert_values({0.1, 0.1, 0.1}, m3.weight, 1e-7, "init")
    local named = nn.PReLU {num_parameters = 2, init = -0.5, dtype = "float64"}
    assert.are.equal("float64", named.weight.dtype)
    assert_values({-0.5, -0.5}, named.weight, 0, "named init")
    -- one weight applies to any shape, a scalar included
    assert_values({-0.5, 2}, nn.PReLU(1, 0.25)(nn.tensor({-2, 2})), 0, "vector")
    assert.are.equal(-0.25, nn.PReLU()(nn.tensor(-1.0)):item())
  end)
end)

describe("Maxout", function()
  local case = reference.maxout

  local function load_case(m, dtype)
    nn.no_grad(function()
      m.linear.weight:copy_(from_flat(case.weight, {case.out_features * case.pieces, case.in_features}, dtype))
      m.linear.bias:copy_(nn.tensor(case.bias, {dtype = dtype}))
    end)
  end

  for _, dtype in ipairs {"float32", "float64"} do
    it("agrees with PyTorch's linear-view-max " .. dtype, function()
      local expected = case[dtype]
      local m = nn.Maxout(case.in_features, case.out_features, case.pieces, {dtype = dtype})
      load_case(m, dtype)
      local x = from_flat(case.input, {case.batch, case.in_features}, dtype, true)
      local y = m(x)
      assert.are.same({case.batch, case.out_features}, y:size())
      assert_values(expected.output, y, TOLERANCE[dtype], "value")
      ;(y * from_flat(case.seed, {case.batch, case.out_features}, dtype)):sum():backward()
      assert_values(expected.grad, x.grad, TOLERANCE[dtype], "input gradient")
      assert_values(expected.grad_weight, m.linear.weight.grad, TOLERANCE[dtype], "weight gradient")
      assert_values(expected.grad_bias, m.linear.bias.grad, TOLERANCE[dtype], "bias gradient")
    end)
  end

  it("initialises its Linear as nn.Linear does and names its parameters", function()
    nn.manual_seed(42)
    local m = nn.Maxout(4, 3, 2)
    nn.manual_seed(42)
    local l = nn.Linear(4, 6)
    assert_values(flat(l.weight), m.linear.weight, 0, "weight")
    assert_values(flat(l.bias), m.linear.bias, 0, "bias")
    local names = {}
    for name in m:named_parameters() do names[#names + 1] = name end
    assert.are.same({"linear.weight", "linear.bias"}, names)
    assert.are.equal(1, #nn.Maxout(4, 3, 2, {bias = false}):parameters())
  end)

  it("takes a single sample, and F.maxout groups consecutive features", function()
    local m = nn.Maxout(3, 2, 4)
    assert.are.same({2}, m(nn.randn(3)):size())
    local x = nn.tensor({{1, 5, 2, 3, 9, 0}})
    assert_values({5, 3, 9}, F.maxout(x, 2), 0, "pieces 2")
    assert_values({5, 9}, x:maxout(3), 0, "pieces 3")
  end)
end)

describe("gradcheck in float64", function()
  -- kept away from every kink: 0, +-3, -2 and 3 (hardtanh -2 3), 5 (softplus 2 10)
  local function input()
    return nn.tensor({{-3.7, -1.3, -0.4, 0.35}, {1.2, 2.6, 4.1, -5.3}}, {dtype = "float64", requires_grad = true})
  end
  for _, case in ipairs(reference.elementwise) do
    it(case.name, function()
      for how, f in pairs(ways(case)) do
        assert.is_true(nn.gradcheck(f, input()), how)
      end
      -- through a non-contiguous view of the input
      assert.is_true(nn.gradcheck(function(x) return F[case.fn](x:t(), table.unpack(case.args)) end, input()))
    end)
  end

  it("softmax and log_softmax along every dim", function()
    nn.manual_seed(5)
    local x = nn.randn(2, 3, 4, {dtype = "float64", requires_grad = true})
    for _, fn in ipairs {"softmax", "log_softmax"} do
      for _, dim in ipairs {1, 2, 3, -1} do
        assert.is_true(nn.gradcheck(function(t) return F[fn](t, dim) end, x), fn .. " dim " .. dim)
      end
      assert.is_true(nn.gradcheck(function(t) return F[fn](t:transpose(1, 3), 2) end, x), fn .. " transposed")
    end
  end)

  it("PReLU, its input and its weight, as a function and as a module", function()
    nn.manual_seed(6)
    local x = nn.randn(2, 3, 4, {dtype = "float64", requires_grad = true})
    local w = nn.tensor({0.1, -0.3, 0.5}, {dtype = "float64", requires_grad = true})
    assert.is_true(nn.gradcheck(F.prelu, {x, w}))
    local one = nn.tensor({0.25}, {dtype = "float64", requires_grad = true})
    assert.is_true(nn.gradcheck(F.prelu, {x, one}))
    local m = nn.PReLU(3, 0.2, {dtype = "float64"})
    -- the parameter is an input: gradcheck perturbs it in place
    assert.is_true(nn.gradcheck(function(t) return m(t) end, {x, m.weight}))
  end)

  it("Maxout, its input and its parameters", function()
    nn.manual_seed(8)
    local m = nn.Maxout(4, 3, 2, {dtype = "float64"})
    local x = nn.randn(5, 4, {dtype = "float64", requires_grad = true})
    assert.is_true(nn.gradcheck(function(t) return m(t) end, {x, m.linear.weight, m.linear.bias}))
  end)
end)

describe("stability at the extremes", function()
  for _, dtype in ipairs {"float32", "float64"} do
    it(dtype .. ": sigmoid, softplus, log_sigmoid and log_softmax of +-1000 are finite and right", function()
      local x = nn.tensor({-1000, 1000}, {dtype = dtype, requires_grad = true})
      assert_values({0, 1}, x:sigmoid(), 0, "sigmoid")
      assert_values({0, 1000}, x:softplus(), 0, "softplus")
      assert_values({-1000, 0}, x:log_sigmoid(), 0, "log_sigmoid")
      assert_values({-2000, 0}, x:log_softmax(1), 0, "log_softmax")
      assert_values({0, 1}, x:softmax(1), 0, "softmax")
      for _, fn in ipairs {"softplus", "logsigmoid", "silu", "mish", "gelu", "elu", "selu", "softsign"} do
        local t = x:detach():requires_grad_(true)
        local y = F[fn](t)
        y:sum():backward()
        for _, v in ipairs(flat(y)) do assert(v == v and math.abs(v) < math.huge, fn .. " value " .. v) end
        for _, v in ipairs(flat(t.grad)) do assert(v == v and math.abs(v) < math.huge, fn .. " gradient " .. v) end
      end
      local t = x:detach():requires_grad_(true)
      t:log_softmax(1):sum():backward()
      assert_values({1, -1}, t.grad, 0, "log_softmax gradient")
    end)

    it(dtype .. ": softmax({1000, 1050, 1100}) equals softmax({-100, -50, 0})", function()
      local big = nn.tensor({1000, 1050, 1100}, {dtype = dtype}):softmax(1)
      local small = nn.tensor({-100, -50, 0}, {dtype = dtype}):softmax(1)
      assert.are.same(flat(small), flat(big))
      local lbig = nn.tensor({1000, 1050, 1100}, {dtype = dtype}):log_softmax(1)
      assert.are.same(flat(nn.tensor({-100, -50, 0}, {dtype = dtype}):log_softmax(1)), flat(lbig))
      assert_values({-100, -50, 0}, lbig, 1e-7, "log_softmax")
    end)
  end

  it("a NaN in a softmax line makes that line NaN and leaves the others alone", function()
    local y = nn.tensor({{0, 0 / 0}, {1, 1}}):softmax(2)
    local v = flat(y)
    assert(v[1] ~= v[1] and v[2] ~= v[2])
    assert_values({0.5, 0.5}, y[2], 1e-7, "second row")
  end)
end)

describe("nn.F.derivative", function()
  local x = nn.linspace(-5, 5, 101, {dtype = "float64"})

  it("has the textbook maxima", function()
    assert.are.equal(0.25, F.derivative("sigmoid", x):max():item())
    assert.are.equal(1, F.derivative("tanh", x):max():item())
    assert.are.equal(1, F.derivative("relu", x):max():item())
    assert.are.equal(0, F.derivative("relu", x):min():item())
    assert.are.equal(0, F.derivative("step", x):abs():max():item())
    assert.are.equal(1, F.derivative("identity", x):min():item())
    assert.are.equal(1, F.derivative("softsign", x):max():item())
    assert.are.equal(1, F.derivative("hardtanh", x):max():item())
    assert_values({1 / 6}, F.derivative("hardsigmoid", x):max(), 1e-15, "hardsigmoid")
    assert_values({0.01}, F.derivative("leaky_relu", x):min(), 1e-15, "leaky_relu")
    assert_values({0.2}, F.derivative("leaky_relu", x, {negative_slope = 0.2}):min(), 1e-15, "slope 0.2")
    assert_values({0.2}, F.derivative("leaky_relu", x, 0.2):min(), 1e-15, "slope as a number")
    assert_values({0.25}, F.derivative("prelu", x):min(), 1e-15, "prelu")
    assert_values({0.5}, F.derivative("softplus", nn.zeros(1, {dtype = "float64"})), 1e-15, "softplus(0)")
    assert_values({0.5}, F.derivative("logsigmoid", nn.zeros(1, {dtype = "float64"})), 1e-15, "log_sigmoid(0)")
    -- selu'(0) is alpha * scale, from the left, as PyTorch's elu_backward
    assert_values({1.6732632423543772 * 1.0507009873554805}, F.derivative("selu", x):max(), 1e-15, "selu")
    -- GELU's slope peaks at 1.1289 near x = 1.41
    local g = F.derivative("gelu", nn.linspace(0, 3, 3001, {dtype = "float64"}))
    local peak, at = g:max(1)
    assert_values({1.1289}, peak, 1e-4, "gelu peak")
    assert.is_true(math.abs((at:item() - 1) * 0.001 - 1.414) < 0.01)
  end)

  it("is exactly the gradient backward computes, PyTorch's at every fixture point", function()
    for _, case in ipairs(reference.elementwise) do
      for _, dtype in ipairs {"float32", "float64"} do
        local opts = {}
        if case.fn == "gelu" then opts.approximate = case.args[1] end
        if case.fn == "softplus" then opts.beta, opts.threshold = case.args[1], case.args[2] end
        if case.fn == "hardtanh" then opts.min_val, opts.max_val = case.args[1], case.args[2] end
        if case.fn == "leaky_relu" then opts.negative_slope = case.args[1] end
        if case.fn == "elu" then opts.alpha = case.args[1] end
        local input = nn.tensor(reference.input, {dtype = dtype})
        local d = F.derivative(case.fn, input, opts)
        assert.are.equal(dtype, d.dtype)
        assert_values(expected_grad(case, dtype), d, TOLERANCE[dtype], case.name .. " " .. dtype)
        assert.is_false(input.requires_grad)
      end
    end
  end)

  it("keeps x's shape, and leaves x alone", function()
    local t = nn.randn(3, 4)
    local d = F.derivative("silu", t)
    assert.are.same({3, 4}, d:size())
    assert.is_nil(t.grad)
    assert.is_false(t.requires_grad)
    assert.are.same({}, F.derivative("tanh", nn.tensor(0.5)):size())
    -- inside no_grad too
    assert.are.equal(0.25, nn.no_grad(function() return F.derivative("sigmoid", nn.zeros(1)) end):item())
  end)

  it("gives the diagonal of the Jacobian of softmax and log_softmax along dim", function()
    nn.manual_seed(9)
    local t = nn.randn(3, 4, {dtype = "float64"})
    for _, fn in ipairs {"softmax", "log_softmax"} do
      for _, dim in ipairs {1, 2} do
        local d = F.derivative(fn, t, {dim = dim})
        -- the diagonal, one backward per element with a one-hot seed
        for i = 1, 3 do
          for j = 1, 4 do
            local leaf = t:detach():requires_grad_(true)
            local seed = nn.zeros(3, 4, {dtype = "float64"})
            seed[i][j] = 1
            F[fn](leaf, dim):backward(seed)
            assert_values({leaf.grad[i][j]:item()}, d[i][j], 1e-12, fn .. " dim " .. dim)
          end
        end
      end
    end
    assert_values(flat(F.derivative("softmax", t, {dim = 2})), F.derivative("softmax", t, 2), 0, "dim as a number")
  end)

  it("refuses unknown names, listing the known ones, and a softmax without dim", function()
    local ok, err = pcall(F.derivative, "swishy", x)
    assert.is_false(ok)
    assert.is_truthy(err:find("derivative: unknown activation 'swishy'", 1, true), err)
    for _, name in ipairs {"sigmoid", "relu", "leaky_relu", "gelu", "softmax", "log_softmax", "identity", "step"} do
      assert.is_truthy(err:find(name, 1, true), name)
    end
    ok, err = pcall(F.derivative, "softmax", x)
    assert.is_false(ok)
    assert.is_truthy(err:find("dim is required", 1, true), err)
    ok, err = pcall(F.derivative, "sigmoid", nn.tensor({1, 2}, {dtype = "int64"}))
    assert.is_false(ok)
    assert.is_truthy(err:find("derivative: x must be float32 or float64, got int64", 1, true), err)
  end)
end)

describe("printing", function()
  it("shows the parameters the way PyTorch's extra_repr does", function()
    assert.are.equal("LeakyReLU(negative_slope=0.01)", tostring(nn.LeakyReLU()))
    assert.are.equal("LeakyReLU(negative_slope=0.2)", tostring(nn.LeakyReLU(0.2)))
    assert.are.equal("ELU(alpha=1.0)", tostring(nn.ELU()))
    assert.are.equal("SELU()", tostring(nn.SELU()))
    assert.are.equal("SiLU()", tostring(nn.SiLU()))
    assert.are.equal("GELU(approximate='none')", tostring(nn.GELU()))
    assert.are.equal("GELU(approximate='tanh')", tostring(nn.GELU("tanh")))
    assert.are.equal("Softplus(beta=1, threshold=20)", tostring(nn.Softplus()))
    assert.are.equal("Mish()", tostring(nn.Mish()))
    assert.are.equal("Hardtanh(min_val=-1.0, max_val=1.0)", tostring(nn.Hardtanh()))
    assert.are.equal("Hardsigmoid()", tostring(nn.Hardsigmoid()))
    assert.are.equal("LogSigmoid()", tostring(nn.LogSigmoid()))
    assert.are.equal("Softsign()", tostring(nn.Softsign()))
    assert.are.equal("PReLU(num_parameters=1)", tostring(nn.PReLU()))
    assert.are.equal("Softmax(dim=2)", tostring(nn.Softmax(2)))
    assert.are.equal("LogSoftmax(dim=-1)", tostring(nn.LogSoftmax(-1)))
    local maxout = tostring(nn.Maxout(4, 3, 2))
    assert.are.equal("Maxout(in_features=4, out_features=3, pieces=2", maxout:match("^[^\n]*"))
    assert.is_truthy(maxout:find("(linear): Linear(in_features=4, out_features=6", 1, true), maxout)
  end)
end)

describe("bad arguments raise clear errors", function()
  local x = nn.randn(2, 3)

  local function fails(expected, f, ...)
    local ok, err = pcall(f, ...)
    assert.is_false(ok, "expected an error: " .. expected)
    assert.is_truthy(tostring(err):find(expected, 1, true), "got: " .. tostring(err))
    -- reported at the caller's line, here
    assert.is_truthy(tostring(err):find("activations_spec.lua:", 1, true), "position: " .. tostring(err))
  end

  it("a negative or non-number slope", function()
    fails("LeakyReLU: negative_slope must be a non-negative number, got -0.1", nn.LeakyReLU, -0.1)
    fails("LeakyReLU: negative_slope must be a non-negative number, got 'steep'", nn.LeakyReLU, "steep")
    fails("leaky_relu: negative_slope must be a non-negative number, got -1", F.leaky_relu, x, -1)
    fails("leaky_relu: negative_slope must be a non-negative number, got boolean", function() return x:leaky_relu(true) end)
    fails("ELU: alpha must be a non-negative number, got -1", nn.ELU, -1)
    fails("elu: alpha must be a non-negative number, got 'big'", F.elu, x, "big")
    fails("Softplus: beta must be a positive number, got 0", nn.Softplus, 0)
    fails("softplus: threshold must be a number, got 'high'", F.softplus, x, 1, "high")
    fails("Hardtanh: min_val (2) must not exceed max_val (1)", nn.Hardtanh, 2, 1)
    fails("hardtanh: max_val must be a number, got boolean", F.hardtanh, x, -1, true)
  end)

  it("options and parameter counts", function()
    fails("leaky_relu: unknown option 'slope' (it takes negative_slope)", F.leaky_relu, x, {slope = 0.1})
    fails("selu: takes 0 parameters, got 1", F.selu, x, 2)
    fails("LeakyReLU: takes 1 parameter, got 2", nn.LeakyReLU, 0.1, 0.2)
  end)

  it("GELU approximate not 'none' or 'tanh'", function()
    fails("GELU: approximate must be 'none' or 'tanh', got 'fast'", nn.GELU, "fast")
    fails("gelu: approximate must be 'none' or 'tanh', got 1", F.gelu, x, 1)
  end)

  it("Maxout with 0 pieces or sizes that are not positive integers", function()
    fails("Maxout: pieces must be a positive integer, got 0", nn.Maxout, 4, 3, 0)
    fails("Maxout: in_features must be a positive integer, got 4.5", nn.Maxout, 4.5, 3, 2)
    fails("Maxout: out_features must be a positive integer, got '3'", nn.Maxout, 4, "3", 2)
    fails("Maxout: pieces must be a positive integer, got nil", nn.Maxout, 4, 3)
    fails("maxout: the last dim has 3 features, not a multiple of pieces = 2", F.maxout, x, 2)
    fails("linear:", function() return nn.Maxout(4, 3, 2)(nn.randn(2, 5)) end)
  end)

  it("a Softmax dim missing or out of range", function()
    fails("Softmax: dim is required", nn.Softmax)
    fails("LogSoftmax: dim is required", nn.LogSoftmax)
    fails("softmax: dim is required", F.softmax, x)
    fails("log_softmax: dim is required", function() return x:log_softmax() end)
    fails("Softmax: dim 0 does not exist; dims count from 1", nn.Softmax, 0)
    fails("Softmax: dim must be an integer, got 1.5", nn.Softmax, 1.5)
    fails("Softmax: dim 3 is out of range for a tensor with 2 dimensions (use 1..2 or -2..-1)",
      function() return nn.Softmax(3)(x) end)
    fails("log_softmax: dim -3 is out of range for a tensor with 2 dimensions", F.log_softmax, x, -3)
    fails("softmax: dim 2 is out of range for a tensor with 1 dimension", function() return nn.ones(3):softmax(2) end)
  end)

  it("PReLU num_parameters not matching the input's channels", function()
    fails("PReLU: num_parameters = 3, but the input (2x4) has 4 channels in dim 2", function() return nn.PReLU(3)(nn.ones(2, 4)) end)
    fails("PReLU: num_parameters = 3, but the input (3) has no channel dim", function() return nn.PReLU(3)(nn.ones(3)) end)
    fails("prelu: the weight has 3 values but the input (2x4) has 4 channels in dim 2",
      F.prelu, nn.ones(2, 4), nn.ones(3))
    fails("prelu: the weight is float64 but the input is float32", F.prelu, nn.ones(2, 3), nn.ones(3, {dtype = "float64"}))
    fails("prelu: weight must be a tensor, got number", F.prelu, x, 0.25)
    fails("PReLU: num_parameters must be a positive integer, got 0", nn.PReLU, 0)
    fails("PReLU: init must be a number, got 'a'", nn.PReLU, 1, "a")
  end)

  it("an input that is not a floating-point tensor", function()
    local ints = nn.tensor({1, 2, 3}, {dtype = "int64"})
    fails("leaky_relu: input must be float32 or float64, got int64", function() return ints:leaky_relu() end)
    fails("gelu: input must be float32 or float64, got int64", F.gelu, ints, "tanh")
    fails("softmax: input must be float32 or float64, got int64", F.softmax, ints, 1)
    fails("prelu: input must be float32 or float64, got int64", F.prelu, ints, nn.ones(1))
    fails("Mish: expected a tensor input, got number", nn.Mish(), 3)
    fails("softsign: expected a tensor input, got nil", F.softsign)
  end)
end)

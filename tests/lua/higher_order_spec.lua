-- Issue 12's autograd: nn.autograd.grad, higher-order gradients
-- (create_graph), nn.gradgradcheck, nn.autograd.Function, anomaly mode and
-- the autograd properties. Values against PyTorch 1.13:
-- tests/fixtures/gen_higher_order.py.
local nn = require "nn"
local root = os.getenv("NN_ROOT") or "."
local support = dofile(root .. "/tests/lua/support.lua")
local flat, expect_error = support.flat, support.expect_error
local ref = dofile(root .. "/tests/fixtures/higher_order_reference.lua")

local function f64(values, grad)
  return nn.tensor(values, {dtype = "float64", requires_grad = grad or false})
end

local function assert_close(expected, actual, tol, what)
  local a = nn.is_tensor(actual) and flat(actual) or actual
  local e = nn.is_tensor(expected) and flat(expected) or expected
  if type(e[1]) == "table" then -- nested lists: flatten them
    e = flat(nn.tensor(e, {dtype = "float64"}))
  end
  assert.are.equal(#e, #a, (what or "") .. ": lengths")
  for i = 1, #e do
    local d = math.abs(e[i] - a[i])
    if not (d <= (tol or 1e-10) * (1 + math.abs(e[i]))) then
      error(string.format("%s: element %d is %.17g, PyTorch gives %.17g", what or "", i, a[i], e[i]), 2)
    end
  end
end

local unary_call = {
  softplus = function(x) return nn.F.softplus(x) end, elu = function(x) return nn.F.elu(x) end,
  selu = function(x) return nn.F.selu(x) end, silu = function(x) return nn.F.silu(x) end,
  gelu = function(x) return nn.F.gelu(x) end, mish = function(x) return nn.F.mish(x) end,
  logsigmoid = function(x) return nn.F.logsigmoid(x) end, softsign = function(x) return nn.F.softsign(x) end,
  leaky_relu = function(x) return nn.F.leaky_relu(x) end, hardtanh = function(x) return nn.F.hardtanh(x) end,
}
local function unary(name)
  return unary_call[name] or function(x) return x[name](x) end
end

describe("nn.autograd.grad", function()
  it("returns gradients without touching .grad", function()
    local x, w = f64({1, 2, 3}, true), f64({0.5, -1, 2}, true)
    local y = (x * w):sum()
    local g = nn.autograd.grad(y, {x, w})
    assert.are.same({0.5, -1, 2}, flat(g[1]))
    assert.are.same({1, 2, 3}, flat(g[2]))
    assert.is_nil(x.grad)
    assert.is_nil(w.grad)
    assert.is_nil(g[1].grad_fn)
  end)

  it("takes grad_outputs, several outputs, and non-leaf inputs", function()
    local x = f64({1, 2}, true)
    local h = x * 3
    local a, b = h * h, h:sum()
    local g = nn.autograd.grad({a, b}, {h, x}, {grad_outputs = {f64({1, 1}), nil}})
    assert.are.same({7, 13}, flat(g[1]))   -- 2h + 1
    assert.are.same({21, 39}, flat(g[2]))  -- 3 (2h + 1)
  end)

  it("refuses an unused input unless allow_unused, naming it", function()
    local x, z = f64({1, 2}, true), f64({3}, true)
    local y = (x * 2):sum()
    expect_error(function() nn.autograd.grad(y, {x, z}, {retain_graph = true}) end,
                 "input 2 appears not to have been used in the graph", "allow_unused")
    local g = nn.autograd.grad(y, {x, z}, {allow_unused = true})
    assert.are.same({2, 2}, flat(g[1]))
    assert.is_nil(g[2])
    assert.are.equal(2, g.n)
  end)

  it("names misuse as PyTorch does", function()
    local x = f64({1, 2}, true)
    expect_error(function() nn.autograd.grad(x * 2, x) end, "grad: output 1", "one-element")
    expect_error(function() nn.autograd.grad((x * 2):sum(), f64({1})) end,
                 "input 1 does not require grad")
    expect_error(function() nn.autograd.grad(f64({1}), x) end, "output 1 does not require grad")
    expect_error(function() nn.autograd.grad((x * 2):sum(), x, {bogus = 1}) end, "unknown option bogus")
    expect_error(function() nn.autograd.grad(x * 2, x, {grad_outputs = f64({1, 2, 3})}) end,
                 "grad: output 1: gradient is", "the tensor is")
    local y = (x * x):sum()
    nn.autograd.grad(y, x)
    expect_error(function() nn.autograd.grad(y, x) end, "already freed")
  end)
end)

describe("higher-order gradients", function()
  it("gives second derivatives of x^3 through grad and through backward", function()
    local x = f64({1, 2, 3}, true)
    local g = nn.autograd.grad((x ^ 3):sum(), x, {create_graph = true})[1]
    assert.are.same({3, 12, 27}, flat(g))
    assert.are.same({6, 12, 18}, flat(nn.autograd.grad(g:sum(), x)[1]))
    local y = (x * x * x):sum()
    y:backward{create_graph = true}
    assert.are.same({3, 12, 27}, flat(x.grad))
    local gx = x.grad
    x.grad = nil
    gx:sum():backward()
    assert.are.same({6, 12, 18}, flat(x.grad))
  end)

  for _, case in ipairs(ref.unary) do
    it("matches PyTorch's second derivative of " .. case.name, function()
      local x = f64(case.x, true)
      local g = nn.autograd.grad(unary(case.name)(x):sum(), x, {create_graph = true})[1]
      assert_close(case.grad, g, 1e-10, case.name .. "'")
      local h = g.requires_grad and nn.autograd.grad(g:sum(), x, {allow_unused = true})[1]
      assert_close(case.grad2, h or nn.zeros(#case.x, {dtype = "float64"}), 1e-9, case.name .. "''")
    end)
  end

  for _, case in ipairs(ref.softmax) do
    it("matches PyTorch's Hessian-vector product of " .. case.name, function()
      local x = f64(case.x, true)
      local loss = (nn.F[case.name](x, 2) * f64(case.w)):sum()
      local g = nn.autograd.grad(loss, x, {create_graph = true})[1]
      assert_close(case.grad, g, 1e-10, case.name)
      assert_close(case.hv, nn.autograd.grad((g * f64(case.v)):sum(), x)[1], 1e-9, case.name .. " Hv")
    end)
  end

  for _, case in ipairs(ref.mlp) do
    it("gives a Hessian-vector product of an MLP with " .. case.act .. " as PyTorch", function()
      local params = {f64(case.w1, true), f64(case.b1, true), f64(case.w2, true), f64(case.b2, true)}
      local act = case.act == "softplus" and nn.F.softplus or function(t) return t[case.act](t) end
      local h = act(nn.F.linear(f64(case.x), params[1], params[2]))
      local loss = nn.F.mse_loss(nn.F.linear(h, params[3], params[4]), f64(case.y))
      assert_close({case.loss}, {loss:item()}, 1e-12, "loss")
      local grads = nn.autograd.grad(loss, params, {create_graph = true})
      local dot
      for i, g in ipairs(grads) do
        local term = (g * f64(case.v[i])):sum()
        dot = dot and dot + term or term
      end
      local hv = nn.autograd.grad(dot, params)
      for i = 1, 4 do assert_close(case.hv[i], hv[i], 1e-9, case.act .. " Hv " .. i) end
    end)
  end

  it("computes a WGAN-GP gradient penalty's gradient as PyTorch", function()
    local gp = ref.gp
    local params = {f64(gp.w1, true), f64(gp.b1, true), f64(gp.w2, true), f64(gp.b2, true)}
    local alpha = f64(gp.alpha)
    local interp = (alpha * f64(gp.real) + (1 - alpha) * f64(gp.fake)):requires_grad_()
    local hidden = nn.F.leaky_relu(nn.F.linear(interp, params[1], params[2]), 0.2)
    local critic = nn.F.linear(hidden, params[3], params[4])
    local grad = nn.autograd.grad(critic:sum(), interp, {create_graph = true})[1]
    local penalty = ((grad:norm(2, 2) - 1) ^ 2):mean()
    assert_close({gp.penalty}, {penalty:item()}, 1e-12, "penalty")
    penalty:backward()
    for i = 1, 4 do
      -- the penalty does not depend on the biases: PyTorch leaves b2's
      -- gradient unset (None) and gives b1 zeros; nnlua leaves both unset
      if gp.grads[i] then
        assert_close(gp.grads[i], params[i].grad or params[i]:detach() * 0, 1e-9, "critic grad " .. i)
      else
        assert.is_nil(params[i].grad)
      end
    end
  end)

  it("builds graph when backward{create_graph} adds into an existing .grad", function()
    local x = f64({1, 2}, true)
    x.grad = f64({10, 10})
    ;(x * x):sum():backward{create_graph = true}
    assert.are.same({12, 14}, flat(x.grad))
    assert.is_truthy(x.grad.grad_fn)
    local g = x.grad
    x.grad = nil
    g:sum():backward()
    assert.are.same({2, 2}, flat(x.grad))
  end)
end)

-- Each op's second derivatives against finite differences of its first.
local function input(values) return f64(values, true) end
local gradgrad_ops = {
  {"add", function(a, b) return a + b end, 2}, {"sub", function(a, b) return a - b end, 2},
  {"mul", function(a, b) return a * b end, 2}, {"div", function(a, b) return a / (b * b + 1) end, 2},
  {"pow", function(a, b) return (a * a + 1) ^ b end, 2}, {"pow number", function(a) return a ^ 3 end},
  {"number pow", function(a) return nn.tensor(2, {dtype = "float64"}) ^ a end},
  {"broadcast mul", function(a, b) return a * b:sum(1) end, 2},
  {"maximum", function(a, b) return a:maximum(b) * a end, 2},
  {"clamp", function(a) return a:clamp(-0.5, 0.5) * a end},
  {"exp", function(a) return a:exp() end}, {"tanh", function(a) return a:tanh() end},
  {"sigmoid", function(a) return a:sigmoid() end}, {"sqrt", function(a) return (a * a + 1):sqrt() end},
  {"sin", function(a) return a:sin() end}, {"log", function(a) return (a * a + 1):log() end},
  {"softplus", function(a) return nn.F.softplus(a) end}, {"gelu", function(a) return nn.F.gelu(a) end},
  {"gelu tanh", function(a) return nn.F.gelu(a, {approximate = "tanh"}) end},
  {"elu", function(a) return nn.F.elu(a) end}, {"silu", function(a) return nn.F.silu(a) end},
  {"mish", function(a) return nn.F.mish(a) end},
  {"softmax", function(a) return nn.F.softmax(a, 2) end},
  {"log_softmax", function(a) return nn.F.log_softmax(a, 1) end},
  {"sum", function(a) return (a * a):sum(1) end}, {"mean", function(a) return (a * a):mean() end},
  {"max dim", function(a) return (a * a):max(2) end}, {"max all", function(a) return (a * a):max() end},
  {"norm", function(a) return a:norm() end}, {"norm dim", function(a) return a:norm(2, 2) end},
  {"norm 3", function(a) return a:norm(3) end},
  {"matmul", function(a, b) return a:matmul(b:t()) end, 2},
  {"linear", function(a, b) return nn.F.linear(a, b) end, 2},
  {"transpose view narrow", function(a) return (a:t():narrow(1, 1, 2) * a:t():narrow(1, 2, 2)) end},
  {"select", function(a) return a[1] * a[2] end},
  {"cat", function(a, b) return nn.cat({a * a, b}, 1) end, 2},
  {"mse_loss", function(a, b) return nn.F.mse_loss(a * a, b) end, 2},
  {"smooth_l1_loss", function(a, b) return nn.F.smooth_l1_loss(a * a, b) end, 2},
  {"bce_with_logits", function(a, b) return nn.F.binary_cross_entropy_with_logits(a * a, b:sigmoid()) end, 2},
  {"sort", function(a) return (a * a):sort(2) end},
  {"gather", function(a) return (a * a):gather(2, nn.tensor({{1, 1}, {2, 1}}, {dtype = "int64"})) end},
  -- the activations of issue 13, scaled to reach every piece of their formulas
  {"hardswish", function(a) return (a * 4):hardswish() end},
  {"celu", function(a) return nn.F.celu(a * 2, 0.7) end},
  {"tanhshrink", function(a) return nn.F.tanhshrink(a * 2) end},
  {"softshrink (flat)", function(a) return nn.F.softshrink(a * a * 2, 0.3) end},
}

describe("nn.gradgradcheck", function()
  for _, op in ipairs(gradgrad_ops) do
    it("passes " .. op[1], function()
      local inputs = {input({{0.3, -0.7, 1.1}, {0.9, 0.2, -0.4}})}
      if op[3] == 2 then inputs[2] = input({{-0.6, 0.5, 0.8}, {0.1, -1.2, 0.7}}) end
      assert.is_true(nn.gradgradcheck(op[2], inputs))
    end)
  end

  it("fails where a second derivative is wrong", function()
    -- x * detach(x): the first derivative 2x is right only along the graph
    local ok, msg = nn.gradgradcheck(function(a) return a * a:detach() end, {input({0.5, -1})},
                                     {raise = false})
    assert.is_false(ok)
    assert.is_truthy(msg:find("backward gives", 1, true))
  end)
end)

describe("nn.autograd.Function", function()
  local Cube = nn.autograd.Function("Cube")
  function Cube.forward(ctx, x) ctx:save_for_backward(x); return x ^ 3 end
  function Cube.backward(ctx, g) local x = ctx.saved_tensors[1]; return g * 3 * x ^ 2 end

  local Exp = nn.autograd.Function("Exp") -- saves its output
  function Exp.forward(ctx, x) local y = x:exp(); ctx:save_for_backward(y); return y end
  function Exp.backward(ctx, g) return g * ctx.saved_tensors[1] end

  -- two tensors and a number in, two tensors out
  local Mix = nn.autograd.Function("Mix")
  function Mix.forward(ctx, a, k, b)
    ctx:save_for_backward(a, b)
    ctx.k = k
    return a * b * k, a + b
  end
  function Mix.backward(ctx, g1, g2)
    local a, b = table.unpack(ctx.saved_tensors)
    assert(ctx.needs_input_grad[1] and not ctx.needs_input_grad[2])
    return g1 * b * ctx.k + g2, nil, g1 * a * ctx.k + g2
  end
  local function mix(a, b) return {Mix.apply(a, 2, b)} end

  it("records a node named after it and gives its gradient", function()
    local x = f64({1, 2}, true)
    local y = Cube.apply(x)
    assert.are.equal("CubeBackward", y.grad_fn)
    y:sum():backward()
    assert.are.same({3, 12}, flat(x.grad))
  end)

  it("passes gradcheck and gradgradcheck, with a saved output, several inputs and outputs", function()
    local x, b = f64({1, -2}, true), f64({3, 0.5}, true)
    for _, fn in ipairs({Cube.apply, Exp.apply}) do
      assert.is_true(nn.gradcheck(fn, {x}))
      assert.is_true(nn.gradgradcheck(fn, {x}))
    end
    assert.is_true(nn.gradcheck(mix, {x, b}))
    assert.is_true(nn.gradgradcheck(mix, {x, b}))
  end)

  it("returns plain results when nothing needs a gradient, and marks non-differentiable outputs", function()
    assert.is_nil(Cube.apply(f64({2})).grad_fn)
    local Argmax = nn.autograd.Function("ArgmaxWithValue")
    function Argmax.forward(ctx, x)
      local v, i = x:max(1)
      ctx:mark_non_differentiable(i)
      return v, i
    end
    function Argmax.backward(ctx, g, gi) return nil end
    local v, i = Argmax.apply(f64({1, 3}, true))
    assert.is_truthy(v.grad_fn)
    assert.is_nil(i.grad_fn)
  end)

  it("names itself when backward returns the wrong number or shape of gradients", function()
    local x, b = f64({1, 2}, true), f64({3, 4}, true)
    local Bad = nn.autograd.Function("Bad")
    function Bad.forward(ctx, p, q) return p + q end
    function Bad.backward(ctx, g) return g end
    expect_error(function() Bad.apply(x, b):sum():backward() end,
                 "Bad.backward returned 1 gradient, expected 2")
    function Bad.backward(ctx, g) return g:sum(), g end
    expect_error(function() Bad.apply(x, b):sum():backward() end,
                 "Bad.backward: gradient 1 has shape {}, but input 1 has shape {2}")
  end)
end)

describe("anomaly mode", function()
  it("names the first op whose gradient is NaN and the line that called it", function()
    local x = nn.tensor({-1, 4}, {requires_grad = true})
    local msg = expect_error(function()
      nn.autograd.detect_anomaly(function()
        local y = x:sqrt() -- the line named
        local loss = (y * 2):sum()
        loss:backward()
      end)
    end, "SqrtBackward0 returned nan values", "higher_order_spec.lua:")
    local line = tonumber(msg:match("called at .-higher_order_spec%.lua:(%d+)"))
    local source = {}
    for l in io.lines(root .. "/tests/lua/higher_order_spec.lua") do source[#source + 1] = l end
    assert.is_truthy(source[line]:find("the line named", 1, true))
    assert.is_false(nn.autograd.is_anomaly_enabled()) -- the function form put it back
    -- off: the same NaN passes silently, as in PyTorch
    x:sqrt():sum():backward()
    nn.autograd.set_detect_anomaly(true)
    assert.is_true(nn.autograd.is_anomaly_enabled())
    nn.autograd.set_detect_anomaly(false)
  end)
end)

describe("autograd properties", function()
  it("has is_leaf, grad_fn and retains_grad as PyTorch", function()
    local x = f64({1, 2}, true)
    local y = x * 2
    assert.is_true(x.is_leaf)
    assert.is_false(y.is_leaf)
    assert.are.equal("MulBackward0", y.grad_fn)
    assert.is_false(y.retains_grad)
    y:retain_grad()
    assert.is_true(y.retains_grad)
    assert.is_false(x.retains_grad)
  end)
end)

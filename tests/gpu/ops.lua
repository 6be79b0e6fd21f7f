-- ops.lua: the ops tests/gpu/op_check.lua runs on CUDA and on the CPU with
-- the same inputs, comparing values and gradients. A new op joins the GPU
-- check by being added here; nothing else changes.
--
-- Each entry:
--   name     what the check prints
--   shapes   the inputs' shapes; broadcast (optional): other shapes that
--            broadcast together, checked too
--   fn       function(inputs...) -> a tensor (or a number: a loss's item)
--   domain   "positive" (inputs in [0.1, 2]), "unit" (in [0.05, 0.95]);
--            default: uniform in [-2, 2]
--   grad     false when the op has no gradient (comparisons, argmax)
--   labels   cross-entropy's and NLL's: an int64 target of that many
--            classes, given after the inputs
--   dtypes   default {"float32", "float64"}
-- Every input is also checked strided (a transposed view) when it has two
-- dims or more.
local F = nn.F

local ops = {}
local function op(e) ops[#ops + 1] = e end

-- elementwise, unary
for _, name in ipairs {"neg", "exp", "abs", "sigmoid", "tanh", "relu", "sin", "cos", "sign", "floor"} do
  op {name = name, shapes = {{5, 7}}, fn = function(x) return x[name](x) end,
      grad = name ~= "sign" and name ~= "floor"}
end
for _, name in ipairs {"log", "sqrt"} do
  op {name = name, shapes = {{5, 7}}, domain = "positive", fn = function(x) return x[name](x) end}
end
op {name = "clamp", shapes = {{5, 7}}, fn = function(x) return x:clamp(-0.5, 0.7) end}
op {name = "pow number", shapes = {{5, 7}}, domain = "positive", fn = function(x) return x ^ 2.5 end}
op {name = "number pow", shapes = {{5, 7}}, fn = function(x) return nn.tensor(1.5, {dtype = x.dtype, device = x.device}) ^ x end}

-- elementwise, binary (broadcast too)
local function binary(name, fn, extra)
  local e = {name = name, shapes = {{4, 6}, {4, 6}}, broadcast = {{{4, 6}, {6}}, {{4, 1}, {1, 6}}}, fn = fn}
  for k, v in pairs(extra or {}) do e[k] = v end
  op(e)
end
binary("add", function(a, b) return a + b end)
binary("sub", function(a, b) return a - b end)
binary("mul", function(a, b) return a * b end)
binary("div", function(a, b) return a / b end, {domain = "positive"})
binary("pow", function(a, b) return a ^ b end, {domain = "positive"})
binary("maximum", function(a, b) return a:maximum(b) end)
binary("minimum", function(a, b) return a:minimum(b) end)
binary("gt", function(a, b) return a:gt(b) end, {grad = false})
binary("eq", function(a, b) return a:eq(b) end, {grad = false})
op {name = "add number", shapes = {{5, 7}}, fn = function(x) return 3 - x * 2 + 1 end}

-- activations
for _, name in ipairs {"gelu", "elu", "silu", "softplus", "leaky_relu", "hardtanh", "mish", "selu",
                       "logsigmoid", "softsign", "hardsigmoid"} do
  op {name = name, shapes = {{6, 9}}, fn = function(x) return F[name](x) end}
end
op {name = "prelu", shapes = {{6, 4}, {4}}, fn = function(x, w) return F.prelu(x, w) end}
op {name = "softmax", shapes = {{6, 9}}, fn = function(x) return x:softmax(2) end}
op {name = "softmax dim 1", shapes = {{6, 9}}, fn = function(x) return x:softmax(1) end}
op {name = "log_softmax", shapes = {{6, 9}}, fn = function(x) return x:log_softmax(2) end}

-- reductions
op {name = "sum", shapes = {{6, 9}}, fn = function(x) return x:sum() end}
op {name = "sum dim", shapes = {{6, 9}}, fn = function(x) return x:sum(2) end}
op {name = "mean dim keepdim", shapes = {{6, 9}}, fn = function(x) return x:mean(1, true) end}
op {name = "max", shapes = {{6, 9}}, fn = function(x) return x:max() end}
op {name = "max dim", shapes = {{6, 9}}, fn = function(x) return (x:max(2)) end}
op {name = "min dim", shapes = {{6, 9}}, fn = function(x) return (x:min(1)) end}
op {name = "argmax", shapes = {{6, 9}}, grad = false, fn = function(x) return x:argmax(2) end}
op {name = "norm", shapes = {{6, 9}}, fn = function(x) return x:norm() end}
op {name = "norm p=1 dim", shapes = {{6, 9}}, fn = function(x) return x:norm(1, 2) end}

-- products
op {name = "matmul", shapes = {{5, 7}, {7, 3}}, fn = function(a, b) return a:matmul(b) end}
op {name = "matmul batched", shapes = {{2, 5, 7}, {2, 7, 3}}, fn = function(a, b) return a:matmul(b) end}
op {name = "matmul vector", shapes = {{5, 7}, {7}}, fn = function(a, b) return a:matmul(b) end}
op {name = "linear", shapes = {{8, 5}, {3, 5}, {3}}, fn = function(x, w, b) return F.linear(x, w, b) end}
op {name = "linear large", shapes = {{64, 300}, {200, 300}, {200}},
    fn = function(x, w, b) return F.linear(x, w, b) end}

-- losses
op {name = "mse_loss", shapes = {{6, 4}, {6, 4}}, fn = function(x, y) return F.mse_loss(x, y) end}
op {name = "l1_loss sum", shapes = {{6, 4}, {6, 4}}, fn = function(x, y) return F.l1_loss(x, y, {reduction = "sum"}) end}
op {name = "smooth_l1_loss", shapes = {{6, 4}, {6, 4}}, fn = function(x, y) return F.smooth_l1_loss(x, y) end}
op {name = "huber_loss", shapes = {{6, 4}, {6, 4}}, fn = function(x, y) return F.huber_loss(x, y) end}
op {name = "binary_cross_entropy", shapes = {{6, 4}, {6, 4}}, domain = "unit",
    fn = function(x, y) return F.binary_cross_entropy(x, y:detach()) end}
op {name = "bce_with_logits", shapes = {{6, 4}, {6, 4}}, domain = "unit",
    fn = function(x, y) return F.binary_cross_entropy_with_logits(x, y) end}
op {name = "kl_div", shapes = {{6, 4}, {6, 4}}, domain = "unit",
    fn = function(x, y) return F.kl_div(x, y, {reduction = "batchmean"}) end}
op {name = "cross_entropy", shapes = {{8, 5}}, labels = 5,
    fn = function(x, t) return F.cross_entropy(x, t) end}
op {name = "cross_entropy smoothing", shapes = {{8, 5}}, labels = 5,
    fn = function(x, t) return F.cross_entropy(x, t, {label_smoothing = 0.1}) end}
op {name = "nll_loss", shapes = {{8, 5}}, labels = 5,
    fn = function(x, t) return F.nll_loss(x:log_softmax(2), t) end}

-- views and copies
op {name = "contiguous of a transpose", shapes = {{5, 7}}, fn = function(x) return x:t():contiguous() end}
op {name = "to float64", shapes = {{5, 7}}, dtypes = {"float32"}, fn = function(x) return x:double() end}
op {name = "expand", shapes = {{5, 1}}, fn = function(x) return x:expand(5, 4) * 1 end}

-- issue 13's engine activations (the formulas of math/activation.h)
for _, name in ipairs {"hardswish", "celu", "softshrink", "hardshrink", "tanhshrink", "relu6"} do
  op {name = name, shapes = {{6, 9}}, fn = function(x) return F[name](x) end}
end
op {name = "threshold", shapes = {{6, 9}}, fn = function(x) return F.threshold(x, 0.1, -2) end}

return ops

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
--   tolerance  {rel =, abs =} in place of the dtype's (half results: GPU
--            sums in another order may round to a neighbouring half value)
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

-- pooling, upsampling, batch normalisation (engine/src/pool.c, cuda/pool.cu)
op {name = "max_pool2d", shapes = {{2, 3, 7, 6}}, fn = function(x) return F.max_pool2d(x, 3, 2, 1) end}
op {name = "max_pool2d dilation ceil", shapes = {{2, 2, 8, 7}},
    fn = function(x) return F.max_pool2d(x, {3, 2}, {2, 1}, {1, 0}, {2, 1}, true) end}
op {name = "max_pool2d indices", shapes = {{2, 3, 6, 6}}, grad = false,
    fn = function(x) local _, i = F.max_pool2d(x, 2, nil, 0, 1, false, true) return i end}
op {name = "avg_pool2d", shapes = {{2, 3, 7, 6}}, fn = function(x) return F.avg_pool2d(x, 3, 2, 1, true, false) end}
op {name = "avg_pool2d divisor", shapes = {{2, 3, 5, 5}}, fn = function(x) return F.avg_pool2d(x, 2, 1, 1, false, true, 3) end}
op {name = "adaptive_avg_pool2d", shapes = {{2, 3, 7, 9}}, fn = function(x) return F.adaptive_avg_pool2d(x, {3, 4}) end}
op {name = "adaptive_max_pool2d", shapes = {{2, 3, 7, 9}}, fn = function(x) return F.adaptive_max_pool2d(x, {3, 4}) end}
op {name = "interpolate nearest", shapes = {{2, 3, 3, 4}}, fn = function(x) return F.interpolate(x, {5, 7}) end}
op {name = "interpolate bilinear", shapes = {{2, 3, 3, 4}},
    fn = function(x) return F.interpolate(x, nil, 1.5, "bilinear") end}
op {name = "interpolate bilinear align_corners", shapes = {{2, 3, 3, 4}},
    fn = function(x) return F.interpolate(x, {5, 7}, nil, "bilinear", true) end}
op {name = "batch_norm training", shapes = {{4, 3, 5, 6}, {3}, {3}},
    fn = function(x, w, b) return F.batch_norm(x, nil, nil, w, b, true) end}
op {name = "batch_norm eval", shapes = {{4, 3, 5, 6}, {3}, {3}},
    fn = function(x, w, b)
      local rm = nn.zeros(3, {dtype = x.dtype, device = x.device}) + 0.3
      local rv = nn.ones(3, {dtype = x.dtype, device = x.device}) * 1.7
      return F.batch_norm(x, rm, rv, w, b, false)
    end}
op {name = "group_norm", shapes = {{2, 6, 3, 5}}, fn = function(x) return F.group_norm(x, 3) end}

-- convolution (engine/src/conv.c, cuda/conv.cu: im2col, col2im and cuBLAS)
op {name = "conv2d", shapes = {{3, 4, 7, 6}, {6, 2, 3, 2}, {6}},
    fn = function(x, w, b) return F.conv2d(x, w, b, {stride = {2, 1}, padding = 1, dilation = {1, 2}, groups = 2}) end}
op {name = "conv2d same", shapes = {{2, 3, 6, 5}, {4, 3, 4, 3}},
    fn = function(x, w) return F.conv2d(x, w, nil, {padding = "same"}) end}
op {name = "conv2d 1x1", shapes = {{2, 4, 5, 5}, {6, 2, 1, 1}, {6}},
    fn = function(x, w, b) return F.conv2d(x, w, b, {groups = 2}) end}
op {name = "conv1d", shapes = {{2, 3, 11}, {5, 3, 3}, {5}},
    fn = function(x, w, b) return F.conv1d(x, w, b, {stride = 2, padding = 1}) end}
op {name = "conv_transpose2d", shapes = {{2, 4, 5, 4}, {4, 3, 3, 3}, {6}},
    fn = function(x, w, b) return F.conv_transpose2d(x, w, b, {stride = 2, padding = 1, output_padding = 1, groups = 2}) end}
op {name = "unfold", shapes = {{2, 3, 6, 7}}, fn = function(x) return F.unfold(x, {2, 3}, {padding = 1, stride = {2, 1}}) end}
op {name = "fold", shapes = {{2, 12, 20}}, fn = function(x) return F.fold(x, {5, 6}, 2) end}
-- (F.pad's reflect, replicate and circular modes go through index_select,
-- which CUDA lacks yet: they join when the toolkit's index kernels do)
-- recurrent layers (the rnn_step kernels): the same weights on both devices
-- (drawn after one seed, then moved), a bidirectional 2-layer stack, and a
-- packed batch (lengths sorted: no index kernels needed)
for _, kind in ipairs {"LSTM", "GRU", "RNN"} do
  op {name = kind .. " layer", shapes = {{5, 3, 4}}, fn = function(x)
    nn.manual_seed(11)
    local m = nn[kind](4, 3, 2, {bidirectional = true, dtype = x.dtype}):to(x.device)
    local out, state = m(x)
    local h_n = kind == "LSTM" and state[1] + state[2] or state
    return out:sum(3) + h_n:sum(1):sum(2):view(1, 3)
  end}
end
op {name = "GRU packed", shapes = {{5, 3, 4}}, fn = function(x)
  nn.manual_seed(12)
  local m = nn.GRU(4, 3, {dtype = x.dtype}):to(x.device)
  local out = m(nn.utils.rnn.pack_padded_sequence(x, {5, 3, 2}))
  return out.data
end}

-- embedding (labels: indices into the weight's rows) and attention
op {name = "embedding", shapes = {{6, 4}}, labels = 6, fn = function(w, idx) return F.embedding(idx, w) end}
op {name = "embedding padding, by frequency", shapes = {{6, 4}}, labels = 6,
    fn = function(w, idx) return F.embedding(idx, w, {padding_idx = 2, scale_grad_by_freq = true}) end}
op {name = "scaled_dot_product_attention causal", shapes = {{2, 5, 4}, {2, 5, 4}, {2, 5, 3}},
    fn = function(q, k, v) return F.scaled_dot_product_attention(q, k, v, {is_causal = true}) end}

-- the tensor toolkit (issue 12): an index tensor or a mask made inside fn
-- lands on the input's device
local function long(x, values) return nn.tensor(values, {dtype = "int64", device = x.device}) end
local function mask(x) return x:gt(0) end
op {name = "cat", shapes = {{4, 6}, {3, 6}}, fn = function(a, b) return nn.cat({a, b}) end}
op {name = "stack", shapes = {{4, 6}, {4, 6}}, fn = function(a, b) return nn.stack({a, b}, 2) end}
op {name = "split", shapes = {{5, 6}}, fn = function(x) return x:split(2, 2)[2] * 1 end}
op {name = "flip", shapes = {{5, 6}}, fn = function(x) return x:flip(1, 2) end}
op {name = "roll", shapes = {{5, 6}}, fn = function(x) return x:roll(2, 2) end}
op {name = "repeat", shapes = {{3, 4}}, fn = function(x) return x:repeatTensor(2, 3) end}
op {name = "index_select", shapes = {{5, 6}}, fn = function(x) return x:index_select(2, long(x, {3, 1, 3, 6})) end}
op {name = "gather", shapes = {{4, 5}}, fn = function(x) return x:gather(2, long(x, {{1, 2}, {5, 5}, {3, 1}, {2, 4}})) end}
op {name = "take", shapes = {{4, 5}}, fn = function(x) return x:take(long(x, {20, 1, 7, 7})) end}
op {name = "scatter", shapes = {{4, 5}, {4, 2}},
    fn = function(x, s) return x:scatter(2, long(x, {{1, 2}, {5, 4}, {3, 1}, {2, 4}}), s) end}
op {name = "scatter_add repeated", shapes = {{4, 5}, {4, 3}},
    fn = function(x, s) return x:scatter_add(2, long(x, {{1, 1, 1}, {5, 4, 5}, {3, 1, 3}, {2, 2, 2}}), s) end}
op {name = "index_add repeated", shapes = {{5, 3}, {4, 3}},
    fn = function(x, s) return x:index_add(1, long(x, {2, 5, 2, 2}), s) end}
op {name = "masked_fill", shapes = {{5, 6}}, fn = function(x) return x:masked_fill(mask(x:detach()), -1.5) end}
op {name = "masked_select", shapes = {{5, 6}}, fn = function(x) return x:masked_select(mask(x:detach())) end}
op {name = "mask index", shapes = {{5, 6}}, fn = function(x) return x[mask(x:detach())] end}
op {name = "table index", shapes = {{5, 6}}, fn = function(x) return x[{{2, -1, 2}, {3, 5}}] end}
op {name = "index put", shapes = {{5, 6}, {2}}, fn = function(x, v)
  local y = x * 1
  y[long(x, {4, 4})] = v:view(2, 1):expand(2, 6)
  return y
end}
op {name = "where", shapes = {{5, 6}, {5, 6}}, broadcast = {{{5, 6}, {6}}},
    fn = function(a, b) return nn.where(a:detach():gt(b:detach()), a, b) end}
op {name = "nonzero", shapes = {{5, 6}}, grad = false, fn = function(x) return x:gt(0.5):nonzero() end}
op {name = "nan_to_num", shapes = {{5, 6}},
    fn = function(x) return (x:log()):nan_to_num(0, 9, -9) end}
op {name = "prod", shapes = {{4, 6}}, fn = function(x) return x:prod(2) end}
op {name = "prod with a zero", shapes = {{4, 6}}, fn = function(x)
  return x:masked_fill(x:detach():lt(-1.5), 0):prod(2)
end}
op {name = "prod all", shapes = {{3, 4}}, domain = "positive", fn = function(x) return x:prod() end}
op {name = "prod long line", shapes = {{2, 300}}, domain = "positive", fn = function(x) return (x ^ 0.01):prod(2) end}
op {name = "cumsum", shapes = {{5, 6}}, fn = function(x) return x:cumsum(2) end}
op {name = "cumsum long line", shapes = {{3, 2000}}, fn = function(x) return x:cumsum(2) end}
op {name = "cumsum dim 1", shapes = {{5, 6}}, fn = function(x) return x:cumsum(1) end}
op {name = "cumprod", shapes = {{5, 6}}, fn = function(x) return x:cumprod(2) end}
op {name = "cumprod with a zero", shapes = {{5, 6}}, fn = function(x)
  return x:masked_fill(x:detach():lt(-1.2), 0):cumprod(2)
end}
op {name = "sort", shapes = {{5, 9}}, fn = function(x) return (x:sort(2)) end}
op {name = "sort descending dim 1", shapes = {{9, 5}}, fn = function(x) return (x:sort(1, true)) end}
op {name = "sort ties", shapes = {{4, 9}}, grad = false, fn = function(x)
  local _, i = x:detach():mul(2):round():sort(2)
  return i
end}
op {name = "sort long line", shapes = {{2, 3000}}, fn = function(x) return (x:sort(2)) end}
op {name = "argsort", shapes = {{5, 9}}, grad = false, fn = function(x) return x:argsort(2, true) end}
op {name = "topk", shapes = {{5, 9}}, fn = function(x) return (x:topk(3, 2)) end}
op {name = "kthvalue", shapes = {{5, 9}}, fn = function(x) return (x:kthvalue(4, 2)) end}
op {name = "median", shapes = {{5, 9}}, fn = function(x) return (x:median(2)) end}
op {name = "mode", shapes = {{5, 9}}, fn = function(x) return (x:mul(2):round():mode(2)) end, grad = false}
op {name = "unique", shapes = {{5, 9}}, grad = false, fn = function(x) return x:detach():mul(2):round():unique() end}
op {name = "var", shapes = {{5, 9}}, fn = function(x) return x:var(2) end}
op {name = "std all", shapes = {{5, 9}}, fn = function(x) return x:std() end}
op {name = "logsumexp", shapes = {{5, 9}}, fn = function(x) return x:logsumexp(2) end}
op {name = "amax", shapes = {{5, 9}}, fn = function(x) return x:amax(1) end}
op {name = "amin", shapes = {{5, 9}}, fn = function(x) return x:amin(2, true) end}
op {name = "all any", shapes = {{5, 9}}, grad = false, fn = function(x) return x:gt(-1.9):all(2):logical_and(x:gt(1.9):any(2)) end}
op {name = "count_nonzero", shapes = {{5, 9}}, grad = false, fn = function(x) return x:gt(0):count_nonzero(2) end}
op {name = "dist", shapes = {{5, 9}, {5, 9}}, fn = function(a, b) return a:dist(b, 3) end}
for _, name in ipairs {"expm1", "square", "tan", "atan", "sinh", "cosh", "erf", "trunc", "frac"} do
  op {name = name, shapes = {{5, 7}}, fn = function(x) return x[name](x) end,
      grad = name ~= "trunc"}
end
for _, name in ipairs {"log1p", "log2", "log10", "rsqrt", "reciprocal"} do
  op {name = name, shapes = {{5, 7}}, domain = "positive", fn = function(x) return x[name](x) end}
end
for _, name in ipairs {"asin", "acos", "erfinv"} do
  op {name = name, shapes = {{5, 7}}, domain = "unit", fn = function(x) return x[name](x) end}
end
binary("atan2", function(a, b) return a:atan2(b) end)
binary("fmod", function(a, b) return a:fmod(b) end, {domain = "positive"})
binary("remainder", function(a, b) return a:remainder(b) end, {domain = "positive"})
binary("logical_xor", function(a, b) return a:gt(0):logical_xor(b:gt(0)) end, {grad = false})
op {name = "lerp", shapes = {{5, 6}, {5, 6}, {5, 6}}, domain = "unit",
    fn = function(a, b, w) return a:lerp(b, w) end}
op {name = "clamp_min", shapes = {{5, 6}}, fn = function(x) return x:clamp_min(0.3) end}
op {name = "isfinite", shapes = {{5, 6}}, grad = false, fn = function(x) return x:log():isfinite() end}
op {name = "mm", shapes = {{5, 7}, {7, 3}}, fn = function(a, b) return a:mm(b) end}
op {name = "bmm", shapes = {{2, 5, 7}, {2, 7, 3}}, fn = function(a, b) return a:bmm(b) end}
op {name = "mv", shapes = {{5, 7}, {7}}, fn = function(a, b) return a:mv(b) end}
op {name = "dot", shapes = {{7}, {7}}, fn = function(a, b) return a:dot(b) end}
op {name = "outer", shapes = {{5}, {7}}, fn = function(a, b) return a:outer(b) end}
op {name = "addmm", shapes = {{5, 3}, {5, 7}, {7, 3}},
    fn = function(c, a, b) return c:addmm(a, b, {beta = 0.5, alpha = 2}) end}
op {name = "baddbmm", shapes = {{2, 5, 3}, {2, 5, 7}, {2, 7, 3}},
    fn = function(c, a, b) return c:baddbmm(a, b) end}
op {name = "matmul broadcast", shapes = {{2, 1, 5, 7}, {3, 7, 4}}, fn = function(a, b) return a:matmul(b) end}
op {name = "einsum", shapes = {{2, 5, 7}, {2, 7, 3}}, fn = function(a, b) return nn.einsum("bij,bjk->bik", a, b) end}
op {name = "tril", shapes = {{5, 6}}, fn = function(x) return x:tril(-1) end}
op {name = "triu", shapes = {{5, 6}}, fn = function(x) return x:triu(1) end}
op {name = "diag", shapes = {{6}}, fn = function(x) return x:diag(1) end}
op {name = "diagonal", shapes = {{5, 6}}, fn = function(x) return x:diagonal(1) * 1 end}
op {name = "trace", shapes = {{5, 6}}, fn = function(x) return x:trace() end}
op {name = "randint", shapes = {{3}}, grad = false, fn = function(x)
  nn.cuda.manual_seed(5)
  return nn.randint(0, 1, {4, 5}, {device = x.device})
end}
op {name = "randperm sorted", shapes = {{3}}, grad = false, fn = function(x)
  return nn.randperm(2000, {device = x.device}):sort()
end}

-- the dtypes of issue 12: conversions both ways (the copy kernels, strided
-- too), integer arithmetic that wraps and half types computing in float32
for _, d in ipairs {"float16", "bfloat16", "int32", "int16", "int8", "uint8"} do
  op {name = "to " .. d .. " and back", shapes = {{5, 7}}, grad = false,
      fn = function(x) return (x * 200):to(d):to(x.dtype) end}
  op {name = d .. " arithmetic", shapes = {{5, 7}, {5, 7}}, grad = false,
      fn = function(x, y) return ((x * 100):to(d) * (y * 100):to(d) + 7):to(x.dtype) end}
end
op {name = "int8 + uint8", shapes = {{5, 7}, {5, 7}}, grad = false,
    fn = function(x, y) return ((x * 60):char() + (y * 60 + 128):byte()):to(x.dtype) end}
op {name = "half sigmoid", shapes = {{5, 7}}, fn = function(x) return x:half():sigmoid():to(x.dtype) end}

-- issue 13's engine activations (the formulas of math/activation.h)
for _, name in ipairs {"hardswish", "celu", "softshrink", "hardshrink", "tanhshrink", "relu6"} do
  op {name = name, shapes = {{6, 9}}, fn = function(x) return F[name](x) end}
end
op {name = "threshold", shapes = {{6, 9}}, fn = function(x) return F.threshold(x, 0.1, -2) end}

-- half products, losses and optimizer steps (issue 12: half.c takes the
-- operands to float32, so CUDA's half products are float32 cuBLAS GEMMs)
local HALF_TOLERANCE = {float16 = {rel = 2e-3, abs = 1e-3}, bfloat16 = {rel = 1.6e-2, abs = 1e-2}}
for _, d in ipairs {"float16", "bfloat16"} do
  local function op_half(e) e.tolerance = HALF_TOLERANCE[d]; op(e) end
  op_half {name = d .. " matmul", shapes = {{5, 7}, {7, 3}},
      fn = function(a, b) return a:to(d):matmul(b:to(d)):to(a.dtype) end}
  op_half {name = d .. " bmm", shapes = {{2, 5, 7}, {2, 7, 3}},
      fn = function(a, b) return nn.bmm(a:to(d), b:to(d)):to(a.dtype) end}
  op_half {name = d .. " linear", shapes = {{5, 7}, {4, 7}, {4}},
      fn = function(x, w, b) return F.linear(x:to(d), w:to(d), b:to(d)):to(x.dtype) end}
  op_half {name = d .. " mse_loss", shapes = {{5, 7}, {5, 7}},
      fn = function(x, y) return F.mse_loss(x:to(d), y:to(d)):to(x.dtype) end}
  op_half {name = d .. " cross_entropy", shapes = {{6, 4}}, labels = 4,
      fn = function(x, t) return F.cross_entropy(x:to(d), t):to(x.dtype) end}
  op_half {name = d .. " adam step", shapes = {{5, 7}, {5, 7}}, grad = false, fn = function(x, g)
    local p = x:detach():to(d):requires_grad_(true)
    local opt = nn.optim.Adam({p}, {lr = 0.01})
    for _ = 1, 2 do p.grad = g:detach():to(d); opt:step() end
    return p:detach():to(x.dtype)
  end}
end

-- floor division (issue 12): floats, integers, half types (a truncating
-- division rounds its quotient to the half type first)
op {name = "floor_divide", shapes = {{4, 6}, {4, 6}}, grad = false, fn = function(a, b) return a // (b + 3) end}
op {name = "number // tensor", shapes = {{4, 6}}, grad = false, fn = function(a) return 7 // (a + 3) end}
op {name = "int64 floor_divide", shapes = {{4, 6}, {4, 6}}, grad = false,
    fn = function(a, b) return ((a * 50):long() // ((b + 3) * 3):long()):to(a.dtype) end}
op {name = "float16 div trunc", shapes = {{4, 6}, {4, 6}}, grad = false,
    fn = function(a, b) return (a * 9):half():div((b + 3):half(), {rounding_mode = "trunc"}):to(a.dtype) end}

-- issue 13's LSTM projections and attention's added keys (modules made on
-- the CPU after one seed, then moved)
op {name = "lstm proj_size", shapes = {{4, 2, 3}}, fn = function(x)
  nn.manual_seed(3)
  local m = nn.LSTM(3, 5, {proj_size = 2, bidirectional = true, dtype = x.dtype}):to(x.device)
  local out, state = m(x)
  return out:sum() + state[1]:sum() + state[2]:sum()
end}
op {name = "multihead add_bias_kv add_zero_attn", shapes = {{3, 2, 4}}, fn = function(x)
  nn.manual_seed(5)
  local m = nn.MultiheadAttention(4, 2, {add_bias_kv = true, add_zero_attn = true, dtype = x.dtype}):to(x.device)
  return (m(x, x, x))
end}

-- second order (issues 12 and 13): each fn is a gradient taken with
-- create_graph, so the check compares it and its own gradient; the fused
-- kernels' backward passes take their recorded forms
local function gradient_of(f)
  return function(...)
    local inputs = {...}
    local wrt = {}
    for _, t in ipairs(inputs) do if t.requires_grad then wrt[#wrt + 1] = t end end
    -- the check sizes its upstream gradient from a call without gradients
    if #wrt == 0 or not nn.is_grad_enabled() then return f(...):sum() end
    local grads = nn.autograd.grad(f(...), wrt, {create_graph = true})
    local total
    for _, g in ipairs(grads) do
      local term = (g * g):sum()
      total = total and total + term or term
    end
    return total
  end
end
op {name = "second order cross_entropy", shapes = {{8, 5}}, labels = 5,
    fn = gradient_of(function(x, t) return F.cross_entropy(x * x, t, {label_smoothing = 0.1}) end)}
op {name = "second order conv2d", shapes = {{2, 4, 6, 5}, {6, 2, 3, 2}},
    fn = gradient_of(function(x, w) return (F.conv2d(x, w, nil, {stride = {2, 1}, padding = 1, groups = 2}) ^ 2):mean() end)}
op {name = "second order conv_transpose2d", shapes = {{2, 4, 3, 4}, {4, 3, 2, 3}},
    fn = gradient_of(function(x, w) return (F.conv_transpose2d(x, w, nil, {stride = 2, padding = 1}) ^ 2):mean() end)}
op {name = "second order pooling and upsampling", shapes = {{2, 3, 7, 6}},
    fn = gradient_of(function(x)
      local y = F.max_pool2d(x * x, 3, 2, 1) + F.avg_pool2d(x * x, 3, 2, 1)
      return (F.interpolate(y, nil, 2, "bilinear") ^ 2):mean()
    end)}
op {name = "second order batch_norm", shapes = {{4, 3, 5, 6}, {3}, {3}},
    fn = gradient_of(function(x, w, b) return (F.batch_norm(x, nil, nil, w, b, true) ^ 3):mean() end)}
op {name = "second order prod cumprod", shapes = {{4, 5}},
    fn = gradient_of(function(x) return x:prod(2):sum() + x:cumprod(2):sum() end)}


-- issue 13's optimizer steps (cuda/optim.cu over math/optim.h): three
-- steps of each from the same parameter and gradient on both devices
for _, c in ipairs {
  {"Adadelta", {lr = 0.5, weight_decay = 0.1, maximize = true}}, {"Adamax", {lr = 0.05, weight_decay = 0.1}},
  {"NAdam", {lr = 0.05, weight_decay = 0.1}}, {"RAdam", {lr = 0.05, betas = {0.5, 0.6}}},
  {"ASGD", {lr = 0.05, t0 = 1, weight_decay = 0.1}}, {"Rprop", {lr = 0.05, step_sizes = {1e-3, 0.2}}},
} do
  op {name = c[1]:lower() .. " step", shapes = {{5, 7}, {5, 7}}, grad = false, fn = function(x, g)
    local p = x:detach():clone():requires_grad_(true)
    local opt = nn.optim[c[1]]({p}, c[2])
    for k = 1, 3 do p.grad = g:detach() * (k == 2 and -1 or 1); opt:step() end
    return p:detach()
  end}
end

-- CTC: the CPU's engine node (CtcLossBackward0) against CUDA's composed path
-- (CUDA lacks the ctc_loss kernels); repeated labels, an impossible alignment
do
  local targets = nn.tensor({{2, 4, 3}, {3, 3, 1}, {5, 5, 5}}, {dtype = "int64"})
  op {name = "ctc_loss", shapes = {{7, 3, 5}}, fn = function(x)
    return F.ctc_loss(x:log_softmax(3), targets, {7, 6, 4}, {3, 2, 3}, {reduction = "sum", zero_infinity = true})
  end}
end

return ops

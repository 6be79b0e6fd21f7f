-- Small modules composed from the engine's fronts: Unflatten, Bilinear,
-- CosineSimilarity, PairwiseDistance, Softmax2d, GLU, Softmin, RReLU, and
-- the functions F.normalize, F.cosine_similarity, F.pairwise_distance,
-- F.gumbel_softmax, F.glu, F.softmin, F.rrelu. The elementwise activations
-- with a formula of their own (ReLU6, Hardswish, CELU, the shrinks,
-- Threshold) are engine ops, in activations.lua. Dims count from 1.
return function(nn)
  local raise = nn._raise
  local F, Module, Tensor = nn.F, nn.Module, nn.Tensor
  local is_tensor = nn.is_tensor

  local function show(v)
    if type(v) == "string" then return "'" .. v .. "'" end
    if type(v) == "number" then return tostring(v) end
    return type(v)
  end

  local function check_input(x, who, what)
    if not is_tensor(x) then
      raise(string.format("%s: %s must be a tensor, got %s", who, what or "input", type(x)))
    end
  end

  local function number(v, who, name, default)
    if v == nil then v = default end
    if math.type(v) == nil or v ~= v then raise(string.format("%s: %s must be a number, got %s", who, name, show(v))) end
    return v
  end

  local function integer(v, who, name, default)
    if v == nil then v = default end
    if math.type(v) == "float" and v == math.floor(v) and math.abs(v) < 2 ^ 53 then v = math.tointeger(v) end
    if math.type(v) ~= "integer" then raise(string.format("%s: %s must be an integer, got %s", who, name, show(v))) end
    return v
  end

  local function boolean(v, who, name, default)
    if v == nil then v = default end
    if type(v) ~= "boolean" then raise(string.format("%s: %s must be a boolean, got %s", who, name, show(v))) end
    return v
  end

  -- dim (1-based, negative from the end) as a positive dim of x, or an error.
  local function dim_of(x, dim, who)
    local n = math.max(x:dim(), 1)
    if dim == 0 or dim > n or dim < -n then
      raise(string.format("%s: dim %d is out of range for a tensor with %d dimension%s (use 1..%d or -%d..-1)",
        who, dim, x:dim(), x:dim() == 1 and "" or "s", n, n))
    end
    return dim < 0 and dim + n + 1 or dim
  end

  -- Options given as a table {name = v} or positionally: the values in order.
  local function options(who, names, first, ...)
    if type(first) == "table" and not is_tensor(first) and select("#", ...) == 0 then
      nn._options(who, first, names)
      local values = {}
      for i, name in ipairs(names) do values[i] = first[name] end
      return table.unpack(values, 1, #names)
    end
    nn._check_count(who, #names, table.concat(names, ", "), first, ...)
    return first, ...
  end

  local function sizes_text(size) return "(" .. table.concat(size, ", ") .. ")" end

  ---------------------------------------------------------------------------
  --- nn.Unflatten(dim, unflattened_size): splits dim of the input into the
  -- sizes of unflattened_size (a list; one may be -1), Flatten's inverse.
  --   nn.Unflatten(2, {2, 5})(nn.zeros(3, 10)):size()   -- {3, 2, 5}
  local Unflatten = Module:extend("Unflatten")
  nn.Unflatten = Unflatten

  function Unflatten:init(dim, unflattened_size)
    self.dim = integer(dim, "Unflatten", "dim")
    if type(unflattened_size) ~= "table" or is_tensor(unflattened_size) or #unflattened_size == 0 then
      raise("Unflatten: unflattened_size must be a list of sizes such as {2, 5}, got " .. show(unflattened_size))
    end
    local size = {}
    for i, s in ipairs(unflattened_size) do
      size[i] = integer(s, "Unflatten", "unflattened_size[" .. i .. "]")
      if size[i] < -1 then raise("Unflatten: each size must be -1 or non-negative, got " .. size[i]) end
    end
    self.unflattened_size = size
  end

  function Unflatten:forward(x)
    check_input(x, "Unflatten")
    local d = dim_of(x, self.dim, "Unflatten")
    local size, known, free = x:size(), 1, nil
    for i, s in ipairs(self.unflattened_size) do
      if s == -1 then
        if free then raise("Unflatten: only one size may be -1") end
        free = i
      else
        known = known * s
      end
    end
    local have = size[d]
    if (free and (known == 0 or have % known ~= 0)) or (not free and known ~= have) then
      raise(string.format("Unflatten: unflattened_size %s does not match dim %d of size %d",
        sizes_text(self.unflattened_size), self.dim, have))
    end
    local out = {}
    for i = 1, d - 1 do out[#out + 1] = size[i] end
    for _, s in ipairs(self.unflattened_size) do out[#out + 1] = s == -1 and have // known or s end
    for i = d + 1, #size do out[#out + 1] = size[i] end
    return x:reshape(out)
  end

  function Unflatten:extra_repr()
    return string.format("dim=%d, unflattened_size=%s", self.dim, sizes_text(self.unflattened_size))
  end

  ---------------------------------------------------------------------------
  --- nn.Bilinear(in1_features, in2_features, out_features [, bias = true] [, {bias =, dtype =}]):
  -- y_o = x1^T W_o x2 + b_o for inputs x1 (..., in1_features) and x2
  -- (..., in2_features) with the same leading dims; weight (out, in1, in2)
  -- and bias (out) uniform in +-1/sqrt(in1_features), as PyTorch's.
  --   local b = nn.Bilinear(3, 4, 2); b(nn.randn(5, 3), nn.randn(5, 4)):size()   -- {5, 2}
  local Bilinear = Module:extend("Bilinear")
  nn.Bilinear = Bilinear

  function Bilinear:init(in1, in2, out, bias, opts)
    if type(bias) == "table" and opts == nil then bias, opts = nil, bias end
    opts = nn._options("Bilinear", opts, {"bias", "dtype"})
    if bias == nil then bias = opts.bias end
    bias = boolean(bias, "Bilinear", "bias", true)
    for _, p in ipairs {{"in1_features", in1}, {"in2_features", in2}, {"out_features", out}} do
      local v = integer(p[2], "Bilinear", p[1])
      if v < 1 then raise(string.format("Bilinear: %s must be positive, got %d", p[1], v)) end
    end
    self.in1_features, self.in2_features, self.out_features = in1, in2, out
    local dtype = opts.dtype or "float32"
    self.weight = nn.Parameter(nn.empty(out, in1, in2, {dtype = dtype}))
    if bias then
      self.bias = nn.Parameter(nn.empty(out, {dtype = dtype}))
    else
      self:register_parameter("bias", nil)
    end
    self:reset_parameters()
  end

  --- m:reset_parameters(): draws weight and bias again, uniform in +-1/sqrt(in1_features).
  function Bilinear:reset_parameters()
    local bound = 1 / math.sqrt(self.weight:size(2))
    nn.init.uniform_(self.weight, -bound, bound)
    if self.bias then nn.init.uniform_(self.bias, -bound, bound) end
  end

  --- F.bilinear(x1, x2, weight [, bias]): nn.Bilinear's computation.
  function F.bilinear(x1, x2, weight, bias)
    check_input(x1, "bilinear", "input1")
    check_input(x2, "bilinear", "input2")
    check_input(weight, "bilinear", "weight")
    if weight:dim() ~= 3 then raise("bilinear: weight must have 3 dims (out, in1, in2), got " .. weight:dim()) end
    local out, in1, in2 = weight:size(1), weight:size(2), weight:size(3)
    local s1, s2 = x1:size(), x2:size()
    if #s1 == 0 or s1[#s1] ~= in1 then
      raise(string.format("bilinear: input1 has %s features in its last dim, the layer expects %d", tostring(s1[#s1] or 0), in1))
    end
    if #s2 == 0 or s2[#s2] ~= in2 then
      raise(string.format("bilinear: input2 has %s features in its last dim, the layer expects %d", tostring(s2[#s2] or 0), in2))
    end
    if table.concat(s1, "x", 1, #s1 - 1) ~= table.concat(s2, "x", 1, #s2 - 1) or #s1 ~= #s2 then
      raise(string.format("bilinear: input1 (%s) and input2 (%s) must have the same leading dims",
        table.concat(s1, "x"), table.concat(s2, "x")))
    end
    local lead = {}
    for i = 1, #s1 - 1 do lead[i] = s1[i] end
    local a = x1:reshape(-1, in1)
    local b = x2:reshape(-1, in2)
    -- (N, in1) @ (in1, out * in2) -> (N, out, in2), then the dot with x2 over in2
    local w = weight:permute(2, 1, 3):reshape(in1, out * in2)
    local y = (a:matmul(w):reshape(-1, out, in2) * b:unsqueeze(2)):sum(3)
    if bias ~= nil then y = y + bias end
    lead[#lead + 1] = out
    return y:reshape(lead)
  end

  function Bilinear:forward(x1, x2) return F.bilinear(x1, x2, self.weight, self.bias) end

  function Bilinear:extra_repr()
    return string.format("in1_features=%d, in2_features=%d, out_features=%d, bias=%s", self.in1_features,
      self.in2_features, self.out_features, self.bias ~= nil and "True" or "False")
  end

  ---------------------------------------------------------------------------
  --- F.normalize(x [, p = 2 [, dim = 2 [, eps = 1e-12]]]) or F.normalize(x, {p =, dim =, eps =}):
  -- x divided by its p-norm along dim, the norm clamped below at eps.
  --   nn.F.normalize(nn.tensor{{3, 4}})   -- {{0.6, 0.8}}
  function F.normalize(x, ...)
    check_input(x, "normalize")
    local p, dim, eps = options("normalize", {"p", "dim", "eps"}, ...)
    p = number(p, "normalize", "p", 2)
    dim = dim_of(x, integer(dim, "normalize", "dim", 2), "normalize")
    eps = number(eps, "normalize", "eps", 1e-12)
    return x / x:norm(p, dim, true):clamp_min(eps):expand_as(x)
  end

  -- x1 and x2 broadcast to one shape, or an error naming who.
  local function broadcast_pair(x1, x2, who)
    local ok, a, b = pcall(function()
      local t = x1 + x2
      return x1:expand_as(t), x2:expand_as(t)
    end)
    if not ok then
      raise(string.format("%s: x1 (%s) and x2 (%s) do not broadcast to one shape", who,
        table.concat(x1:size(), "x"), table.concat(x2:size(), "x")))
    end
    return a, b
  end

  --- F.cosine_similarity(x1, x2 [, dim = 2 [, eps = 1e-8]]): the cosine of the
  -- angle between x1 and x2 along dim (they broadcast), each norm clamped below at eps.
  --   nn.F.cosine_similarity(nn.tensor{{1, 0}}, nn.tensor{{1, 1}})   -- {0.7071}
  function F.cosine_similarity(x1, x2, ...)
    local dim, eps = options("cosine_similarity", {"dim", "eps"}, ...)
    check_input(x1, "cosine_similarity", "x1")
    check_input(x2, "cosine_similarity", "x2")
    local a, b = broadcast_pair(x1, x2, "cosine_similarity")
    dim = dim_of(a, integer(dim, "cosine_similarity", "dim", 2), "cosine_similarity")
    eps = number(eps, "cosine_similarity", "eps", 1e-8)
    local na = a:norm(2, dim, true):clamp_min(eps)
    local nb = b:norm(2, dim, true):clamp_min(eps)
    return ((a / na) * (b / nb)):sum(dim)
  end

  --- F.pairwise_distance(x1, x2 [, p = 2 [, eps = 1e-6 [, keepdim = false]]]):
  -- the p-norm of x1 - x2 + eps along the last dim (PyTorch adds eps to
  -- the difference, so that the norm's gradient is finite at x1 == x2).
  --   nn.F.pairwise_distance(nn.zeros(2, 3), nn.ones(2, 3))
  function F.pairwise_distance(x1, x2, ...)
    local p, eps, keepdim = options("pairwise_distance", {"p", "eps", "keepdim"}, ...)
    check_input(x1, "pairwise_distance", "x1")
    check_input(x2, "pairwise_distance", "x2")
    p = number(p, "pairwise_distance", "p", 2)
    eps = number(eps, "pairwise_distance", "eps", 1e-6)
    keepdim = boolean(keepdim, "pairwise_distance", "keepdim", false)
    local a, b = broadcast_pair(x1, x2, "pairwise_distance")
    local d = a - b + eps
    if d:dim() == 0 then return d:abs() end
    return d:norm(p, -1, keepdim)
  end

  --- nn.CosineSimilarity([dim = 2 [, eps = 1e-8]]) or nn.CosineSimilarity{dim =, eps =}:
  -- the module of F.cosine_similarity; forward(x1, x2).
  local CosineSimilarity = Module:extend("CosineSimilarity")
  nn.CosineSimilarity = CosineSimilarity
  function CosineSimilarity:init(...)
    local dim, eps = options("CosineSimilarity", {"dim", "eps"}, ...)
    self.dim = integer(dim, "CosineSimilarity", "dim", 2)
    self.eps = number(eps, "CosineSimilarity", "eps", 1e-8)
  end
  function CosineSimilarity:forward(x1, x2) return F.cosine_similarity(x1, x2, self.dim, self.eps) end

  --- nn.PairwiseDistance([p = 2 [, eps = 1e-6 [, keepdim = false]]]) or
  -- nn.PairwiseDistance{p =, eps =, keepdim =}: the module of F.pairwise_distance.
  local PairwiseDistance = Module:extend("PairwiseDistance")
  nn.PairwiseDistance = PairwiseDistance
  function PairwiseDistance:init(...)
    local p, eps, keepdim = options("PairwiseDistance", {"p", "eps", "keepdim"}, ...)
    self.norm = number(p, "PairwiseDistance", "p", 2)
    self.eps = number(eps, "PairwiseDistance", "eps", 1e-6)
    self.keepdim = boolean(keepdim, "PairwiseDistance", "keepdim", false)
  end
  function PairwiseDistance:forward(x1, x2)
    return F.pairwise_distance(x1, x2, self.norm, self.eps, self.keepdim)
  end

  ---------------------------------------------------------------------------
  --- F.softmin(x, dim), x:softmin(dim): softmax(-x) along dim (required, 1-based).
  --   nn.F.softmin(nn.tensor{1, 2, 3}, 1)
  function F.softmin(x, dim)
    check_input(x, "softmin")
    if type(dim) == "table" then dim = dim.dim end
    if dim == nil then raise("softmin: dim is required (the dimension the probabilities sum to 1 along)") end
    return F.softmax(-x, integer(dim, "softmin", "dim"))
  end
  Tensor.softmin = F.softmin

  --- nn.Softmin(dim): the module of F.softmin.
  local Softmin = Module:extend("Softmin")
  nn.Softmin = Softmin
  function Softmin:init(dim)
    if dim == nil then raise("Softmin: dim is required (the dimension the probabilities sum to 1 along)") end
    self.dim = integer(dim, "Softmin", "dim")
  end
  function Softmin:forward(x) return F.softmin(x, self.dim) end
  function Softmin:extra_repr() return "dim=" .. self.dim end

  --- nn.Softmax2d(): softmax over the channels (dim -3) of an input (C, H, W) or (N, C, H, W).
  --   nn.Softmax2d()(nn.randn(2, 3, 4, 4)):sum(2)   -- all ones
  local Softmax2d = Module:extend("Softmax2d")
  nn.Softmax2d = Softmax2d
  function Softmax2d:forward(x)
    check_input(x, "Softmax2d")
    if x:dim() ~= 3 and x:dim() ~= 4 then
      raise(string.format("Softmax2d: input must have 3 or 4 dims (C, H, W) or (N, C, H, W), got %d", x:dim()))
    end
    return F.softmax(x, -3)
  end

  --- F.glu(x [, dim = -1]), x:glu([dim]): the gated linear unit a * sigmoid(b),
  -- a and b the two halves of x along dim (whose size must be even).
  --   nn.F.glu(nn.randn(4, 6)):size()   -- {4, 3}
  function F.glu(x, dim)
    check_input(x, "glu")
    if type(dim) == "table" then dim = dim.dim end
    dim = integer(dim, "glu", "dim", -1)
    if x:dim() == 0 then raise("glu: a 0-dimensional tensor cannot be halved") end
    local d = dim_of(x, dim, "glu")
    local n = x:size(d)
    if n % 2 ~= 0 then
      raise(string.format("glu: halving dimension must be even, but dim %d is size %d", dim, n))
    end
    local a, b = x:narrow(d, 1, n // 2), x:narrow(d, n // 2 + 1, n // 2)
    return a * b:sigmoid()
  end
  Tensor.glu = F.glu

  --- nn.GLU([dim = -1]): the module of F.glu.
  local GLU = Module:extend("GLU")
  nn.GLU = GLU
  function GLU:init(dim)
    if type(dim) == "table" then dim = dim.dim end
    self.dim = integer(dim, "GLU", "dim", -1)
  end
  function GLU:forward(x) return F.glu(x, self.dim) end
  function GLU:extra_repr() return "dim=" .. self.dim end

  ---------------------------------------------------------------------------
  -- RReLU's slopes for training: one draw per element x <= 0, in order,
  -- uniform in [lower, upper) from the generator's 64-bit draws (PyTorch
  -- draws doubles even for float32 input and rounds each slope to it).
  local function rrelu_train(x, lower, upper)
    local negative = x:le(0)
    local count = negative:sum():item()
    local noise = nn.ones(x:numel(), {dtype = x.dtype, device = x.device})
    if count > 0 then
      local slopes = nn.empty(count, {dtype = "float64"}):uniform_(lower, upper)
      local where = negative:reshape(-1):nonzero():reshape(-1)
      noise = noise:scatter(1, where, slopes:to(x.dtype):to(x.device))
    end
    return x * noise:reshape(x:size())
  end

  --- F.rrelu(x [, lower = 1/8 [, upper = 1/3 [, training = false]]]) or
  -- F.rrelu(x, {lower =, upper =, training =}): randomized leaky ReLU (Xu et
  -- al., 2015). Training: each x <= 0 is multiplied by its own slope drawn
  -- uniform in [lower, upper) (the numbers PyTorch draws after the same seed);
  -- otherwise by the fixed slope (lower + upper) / 2.
  --   nn.F.rrelu(nn.randn(5), 0.1, 0.3, true)
  function F.rrelu(x, ...)
    check_input(x, "rrelu")
    local lower, upper, training = options("rrelu", {"lower", "upper", "training"}, ...)
    lower = number(lower, "rrelu", "lower", 1 / 8)
    upper = number(upper, "rrelu", "upper", 1 / 3)
    training = boolean(training, "rrelu", "training", false)
    if lower > upper then
      raise(string.format("rrelu: lower (%s) must not exceed upper (%s)", show(lower), show(upper)))
    end
    if training then return rrelu_train(x, lower, upper) end
    if lower < 0 then return x:where(x:gt(0), x * ((lower + upper) / 2)) end
    return F.leaky_relu(x, (lower + upper) / 2)
  end
  Tensor.rrelu = F.rrelu

  --- nn.RReLU([lower = 1/8 [, upper = 1/3]]) or nn.RReLU{lower =, upper =}: F.rrelu,
  -- with random slopes in training mode and the mean slope after m:eval().
  local RReLU = Module:extend("RReLU")
  nn.RReLU = RReLU
  function RReLU:init(...)
    local lower, upper = options("RReLU", {"lower", "upper"}, ...)
    self.lower = number(lower, "RReLU", "lower", 1 / 8)
    self.upper = number(upper, "RReLU", "upper", 1 / 3)
    if self.lower > self.upper then
      raise(string.format("RReLU: lower (%s) must not exceed upper (%s)", show(self.lower), show(self.upper)))
    end
  end
  function RReLU:forward(x)
    check_input(x, "RReLU")
    return F.rrelu(x, self.lower, self.upper, self.training)
  end
  function RReLU:extra_repr()
    return string.format("lower=%s, upper=%s", nn._python_number(self.lower), nn._python_number(self.upper))
  end

  ---------------------------------------------------------------------------
  --- F.gumbel_softmax(logits [, tau = 1 [, hard = false [, dim = -1]]]) or
  -- F.gumbel_softmax(logits, {tau =, hard =, dim =}): a sample from the
  -- Gumbel-softmax distribution (Jang et al., 2016): softmax((logits + g) / tau)
  -- along dim, g = -log(E) with E exponential draws (PyTorch's after the same
  -- seed). hard = true returns one-hot vectors whose gradient is the soft
  -- sample's (the straight-through estimator).
  --   local y = nn.F.gumbel_softmax(logits, {tau = 0.5, hard = true})
  function F.gumbel_softmax(logits, ...)
    check_input(logits, "gumbel_softmax", "logits")
    local tau, hard, dim = options("gumbel_softmax", {"tau", "hard", "dim"}, ...)
    tau = number(tau, "gumbel_softmax", "tau", 1)
    hard = boolean(hard, "gumbel_softmax", "hard", false)
    dim = integer(dim, "gumbel_softmax", "dim", -1)
    local d = dim_of(logits, dim, "gumbel_softmax")
    -- exponential_ as PyTorch's CPU kernel: -log(1 - u), u a double uniform
    local u = nn.empty(logits:size(), {dtype = "float64"}):uniform_()
    local exponential = (-(1 - u):log()):to(logits.dtype):to(logits.device)
    local gumbels = -exponential:log()
    local y = F.softmax((logits + gumbels) / tau, d)
    if not hard then return y end
    local index = y:argmax(d, true)
    local one_hot = nn.zeros(logits:size(), {dtype = logits.dtype, device = logits.device}):scatter(d, index, 1)
    return one_hot - y:detach() + y
  end
end

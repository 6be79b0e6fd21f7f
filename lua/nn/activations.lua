-- Activations beyond the foundation's (Step, Sigmoid, Tanh, ReLU and Identity
-- are in layers.lua). Each comes three ways, as in PyTorch:
--
--   nn.LeakyReLU(0.2)(x)          a module (also nn.LeakyReLU{negative_slope = 0.2})
--   nn.F.leaky_relu(x, 0.2)       a function (also F.leaky_relu(x, {negative_slope = 0.2}))
--   x:leaky_relu(0.2)             a tensor method
--
-- The math, with each backward beside its forward, is engine/src/activations.c.
-- Also here: Maxout, and nn.F.derivative(name, x) for plotting the slope of
-- any activation.
return function(nn)
  local raise = nn._raise
  local C = nn._C
  local F, Module, Tensor = nn.F, nn.Module, nn.Tensor
  local ops = C.activation_ops
  local activation, softmax, prelu = C.activation, C.softmax, C.prelu
  local is_tensor = nn.is_tensor

  -- How a parameter's value reads in print(m): PyTorch's repr.
  local function format_value(v)
    if type(v) == "string" then return "'" .. v .. "'" end
    return tostring(v)
  end

  -- How a bad value reads in a message.
  local function show(v)
    if type(v) == "string" then return "'" .. v .. "'" end
    if type(v) == "number" then return tostring(v) end
    return type(v)
  end

  ---------------------------------------------------------------------------
  -- Parameter checks: each returns the value, or raises "Who: cause".
  local function any_number(v, who, name)
    if math.type(v) == nil or v ~= v then
      raise(string.format("%s: %s must be a number, got %s", who, name, show(v)))
    end
    return v
  end
  local function non_negative(v, who, name)
    if math.type(v) == nil or not (v >= 0) or v == math.huge then
      raise(string.format("%s: %s must be a non-negative number, got %s", who, name, show(v)))
    end
    return v
  end
  local function positive(v, who, name)
    if math.type(v) == nil or not (v > 0) or v == math.huge then
      raise(string.format("%s: %s must be a positive number, got %s", who, name, show(v)))
    end
    return v
  end
  local function approximation(v, who, name)
    if v ~= "none" and v ~= "tanh" then
      raise(string.format("%s: %s must be 'none' or 'tanh', got %s", who, name, show(v)))
    end
    return v
  end
  local function positive_integer(v, who, name)
    if math.type(v) == "float" and v == math.floor(v) and v >= 1 and v < 2 ^ 53 then v = math.tointeger(v) end
    if math.type(v) ~= "integer" or v < 1 then
      raise(string.format("%s: %s must be a positive integer, got %s", who, name, show(v)))
    end
    return v
  end

  local function check_input(x, who)
    if not is_tensor(x) then raise(string.format("%s: expected a tensor input, got %s", who, type(x))) end
  end

  ---------------------------------------------------------------------------
  -- The elementwise activations, one entry each: the F name (also the tensor
  -- method's), the module's class name, its parameters {name, default,
  -- check} in PyTorch's order, and how to call the engine.
  local elementwise = {
    --- nn.LeakyReLU([negative_slope = 0.01]), F.leaky_relu(x [, negative_slope]),
    -- x:leaky_relu([negative_slope]): x where x > 0, negative_slope * x elsewhere.
    -- The slope must be >= 0. The derivative at 0 is the slope (PyTorch's choice).
    {fn = "leaky_relu", class = "LeakyReLU", params = {{"negative_slope", 0.01, non_negative}}},

    --- nn.ELU([alpha = 1.0]), F.elu(x [, alpha]), x:elu([alpha]):
    -- x where x > 0, alpha (exp(x) - 1) elsewhere; alpha >= 0. Derivative at 0: alpha.
    {fn = "elu", class = "ELU", params = {{"alpha", 1.0, non_negative}}},

    --- nn.SELU(), F.selu(x), x:selu(): scale * elu(x, alpha) with the constants of
    -- Klambauer et al. (2017), alpha = 1.6732632423543772, scale = 1.0507009873554805.
    {fn = "selu", class = "SELU", params = {}},

    --- nn.SiLU(), F.silu(x), x:silu(): x * sigmoid(x), also called Swish.
    {fn = "silu", class = "SiLU", params = {}},

    --- nn.GELU([approximate = "none"]), F.gelu(x [, approximate]), x:gelu([approximate]):
    -- x * Phi(x), Phi the standard normal CDF ("none": the exact erf form), or
    -- 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) ("tanh").
    {fn = "gelu", class = "GELU", params = {{"approximate", "none", approximation}},
     apply = function(x, approximate)
       return activation(approximate == "tanh" and ops.gelu_tanh or ops.gelu, x)
     end},

    --- nn.Softplus([beta = 1 [, threshold = 20]]), F.softplus(x [, beta [, threshold]]),
    -- x:softplus(...): log(1 + exp(beta x)) / beta, and x itself where beta x > threshold.
    -- beta must be > 0. Finite for any finite x (softplus(-1000) = 0, softplus(1000) = 1000).
    {fn = "softplus", class = "Softplus", params = {{"beta", 1, positive}, {"threshold", 20, any_number}}},

    --- nn.Mish(), F.mish(x), x:mish(): x * tanh(softplus(x)) (Misra, 2019).
    {fn = "mish", class = "Mish", params = {}},

    --- nn.Hardtanh([min_val = -1.0 [, max_val = 1.0]]), F.hardtanh(x [, min_val [, max_val]]),
    -- x:hardtanh(...): x clamped to [min_val, max_val]. Its derivative is 1 strictly
    -- between the bounds and 0 at them (PyTorch's choice; clamp's passes them).
    {fn = "hardtanh", class = "Hardtanh", params = {{"min_val", -1.0, any_number}, {"max_val", 1.0, any_number}},
     validate = function(values, who)
       if values[1] > values[2] then
         raise(string.format("%s: min_val (%s) must not exceed max_val (%s)", who, show(values[1]), show(values[2])))
       end
     end},

    --- nn.Hardsigmoid(), F.hardsigmoid(x), x:hardsigmoid(): min(max(x + 3, 0), 6) / 6.
    {fn = "hardsigmoid", class = "Hardsigmoid", params = {}},

    --- nn.LogSigmoid(), F.logsigmoid(x) (or F.log_sigmoid), x:log_sigmoid() (or x:logsigmoid()):
    -- log(1 / (1 + exp(-x))), computed as min(x, 0) - log1p(exp(-|x|)): -1000 at -1000, 0 at 1000.
    {fn = "logsigmoid", class = "LogSigmoid", params = {}, op = "log_sigmoid"},

    --- nn.Softsign(), F.softsign(x), x:softsign(): x / (1 + |x|).
    {fn = "softsign", class = "Softsign", params = {}},

    --- nn.ReLU6(), F.relu6(x), x:relu6(): min(max(x, 0), 6) (hardtanh from 0 to 6);
    -- its derivative is 1 strictly between 0 and 6, 0 elsewhere.
    --   nn.ReLU6()(nn.tensor{-1, 3, 9})   -- {0, 3, 6}
    {fn = "relu6", class = "ReLU6", params = {},
     apply = function(x) return activation(ops.hardtanh, x, 0, 6) end},

    --- nn.Hardswish(), F.hardswish(x), x:hardswish(): x * min(max(x + 3, 0), 6) / 6
    -- (Howard et al., "Searching for MobileNetV3", 2019).
    --   nn.F.hardswish(nn.tensor{-4, 1, 4})   -- {0, 0.6667, 4}
    {fn = "hardswish", class = "Hardswish", params = {}},

    --- nn.CELU([alpha = 1.0]), F.celu(x [, alpha]), x:celu([alpha]): x where x > 0,
    -- alpha (exp(x / alpha) - 1) elsewhere (Barron, 2017); alpha must not be 0.
    --   nn.CELU(2.0)(nn.tensor{-1, 1})
    {fn = "celu", class = "CELU", params = {{"alpha", 1.0, any_number}},
     validate = function(values, who)
       if values[1] == 0 or values[1] == math.huge or values[1] == -math.huge then
         raise(string.format("%s: alpha must be a finite non-zero number, got %s", who, show(values[1])))
       end
     end},

    --- nn.Softshrink([lambd = 0.5]), F.softshrink(x [, lambd]), x:softshrink([lambd]):
    -- x - lambd above lambd, x + lambd below -lambd, 0 between; lambd >= 0.
    --   nn.Softshrink(1)(nn.tensor{-3, 0.5, 2})   -- {-2, 0, 1}
    {fn = "softshrink", class = "Softshrink", params = {{"lambd", 0.5, non_negative}},
     repr = function(self) return format_value(self.lambd) end},

    --- nn.Hardshrink([lambd = 0.5]), F.hardshrink(x [, lambd]), x:hardshrink([lambd]):
    -- x outside [-lambd, lambd], 0 inside (bounds included).
    --   nn.Hardshrink()(nn.tensor{-1, 0.5, 2})   -- {-1, 0, 2}
    {fn = "hardshrink", class = "Hardshrink", params = {{"lambd", 0.5, any_number}},
     repr = function(self) return format_value(self.lambd) end},

    --- nn.Tanhshrink(), F.tanhshrink(x), x:tanhshrink(): x - tanh(x).
    --   nn.Tanhshrink()(nn.linspace(-2, 2, 5))
    {fn = "tanhshrink", class = "Tanhshrink", params = {}},

    --- nn.Threshold(threshold, value), F.threshold(x, threshold, value),
    -- x:threshold(threshold, value): x where x > threshold, else value. Both
    -- numbers are required, as in PyTorch; the derivative is 0 at and below threshold.
    --   nn.Threshold(0.1, 20)(nn.tensor{0, 0.1, 0.5})   -- {20, 20, 0.5}
    {fn = "threshold", class = "Threshold", params = {{"threshold", nil, any_number}, {"value", nil, any_number}}},
  }

  -- The values of spec's parameters from a call's arguments: positional
  -- (0.2), or one table of named ones ({negative_slope = 0.2}); defaults
  -- fill the rest.
  local function read_params(spec, who, ...)
    local params, first = spec.params, ...
    local named = type(first) == "table" and not is_tensor(first)
    local values = {}
    if named then
      if select("#", ...) > 1 then nn._check_count(who, 1, "options", ...) end
      for key in pairs(first) do
        local known = false
        for _, p in ipairs(params) do known = known or p[1] == key end
        if not known then
          local names = {}
          for _, p in ipairs(params) do names[#names + 1] = p[1] end
          raise(string.format("%s: unknown option %s (%s)", who, show(key),
            #names > 0 and "it takes " .. table.concat(names, ", ") or "it takes none"))
        end
      end
    elseif select("#", ...) > #params then
      raise(string.format("%s: takes %d parameter%s, got %d", who, #params, #params == 1 and "" or "s",
        select("#", ...)))
    end
    for i, p in ipairs(params) do
      local v
      if named then v = first[p[1]] else v = (select(i, ...)) end
      if v == nil then v = p[2] end
      values[i] = p[3](v, who, p[1])
    end
    if spec.validate then spec.validate(values, who) end
    return values
  end


  for _, spec in ipairs(elementwise) do
    local fn, params = spec.fn, spec.params
    local apply = spec.apply
    if not apply then
      local op = ops[spec.op or fn]
      apply = function(x, a, b) return activation(op, x, a, b) end
    end
    local function call(x, ...)
      check_input(x, fn)
      local values = read_params(spec, fn, ...)
      return apply(x, values[1], values[2])
    end
    F[fn] = call
    Tensor[fn] = call

    local cls = Module:extend(spec.class)
    nn[spec.class] = cls
    local name1, name2 = params[1] and params[1][1], params[2] and params[2][1]
    function cls:init(...)
      local values = read_params(spec, spec.class, ...)
      for i, p in ipairs(params) do self[p[1]] = values[i] end
    end
    local who = spec.class
    function cls:forward(x)
      check_input(x, who)
      return apply(x, name1 and self[name1], name2 and self[name2])
    end
    -- PyTorch's extra_repr: "negative_slope=0.01", "beta=1, threshold=20"
    cls.extra_repr = spec.repr or function(self)
      local parts = {}
      for _, p in ipairs(params) do parts[#parts + 1] = p[1] .. "=" .. format_value(self[p[1]]) end
      return table.concat(parts, ", ")
    end
  end
  F.log_sigmoid = F.logsigmoid
  Tensor.log_sigmoid = F.logsigmoid

  ---------------------------------------------------------------------------
  -- Softmax and LogSoftmax. As in PyTorch, dim is required: the implicit
  -- choice PyTorch once made is deprecated there and absent here.

  -- A dim argument as an integer (1-based; negative counts from the end).
  local function read_dim(dim, who)
    if type(dim) == "table" and not is_tensor(dim) then dim = dim.dim end
    if dim == nil then
      raise(who .. ": dim is required (the dimension the probabilities sum to 1 along), "
        .. "e.g. 2 for the rows of a batch (N, C), or -1 for the last")
    end
    if math.type(dim) == "float" and dim == math.floor(dim) and math.abs(dim) < 2 ^ 53 then
      dim = math.tointeger(dim)
    end
    if math.type(dim) ~= "integer" then raise(string.format("%s: dim must be an integer, got %s", who, show(dim))) end
    if dim == 0 then raise(who .. ": dim 0 does not exist; dims count from 1 (negative dims from the end)") end
    return dim
  end

  local function check_dim_range(x, dim, who)
    local n = x:dim()
    if n == 0 then n = 1 end -- a scalar has one dim for this purpose, as in PyTorch
    if dim > n or dim < -n then
      raise(string.format("%s: dim %d is out of range for a tensor with %d dimension%s (use 1..%d or -%d..-1)",
        who, dim, x:dim(), x:dim() == 1 and "" or "s", n, n))
    end
  end

  local function softmax_function(who, log_form)
    return function(x, dim)
      check_input(x, who)
      dim = read_dim(dim, who)
      check_dim_range(x, dim, who)
      return softmax(x, dim, log_form)
    end
  end

  --- F.softmax(x, dim), x:softmax(dim): exp(x) / sum(exp(x)) along dim (1-based,
  -- negative from the end; required), computed as exp(x - max) / sum(exp(x - max))
  -- so that no exp overflows: softmax({1000, 1050, 1100}) == softmax({-100, -50, 0}).
  F.softmax = softmax_function("softmax", false)
  Tensor.softmax = F.softmax
  --- F.log_softmax(x, dim), x:log_softmax(dim): log(softmax(x)) along dim, as
  -- x - max - log(sum(exp(x - max))): finite even at +-1000.
  F.log_softmax = softmax_function("log_softmax", true)
  Tensor.log_softmax = F.log_softmax

  local function softmax_module(class_name, who, log_form)
    local cls = Module:extend(class_name)
    nn[class_name] = cls
    function cls:init(dim) self.dim = read_dim(dim, class_name) end
    function cls:forward(x)
      check_input(x, who)
      check_dim_range(x, self.dim, class_name)
      return softmax(x, self.dim, log_form)
    end
    function cls:extra_repr() return "dim=" .. tostring(self.dim) end
    return cls
  end

  --- nn.Softmax(dim): the module of F.softmax; dim is required (1-based).
  softmax_module("Softmax", "softmax", false)
  --- nn.LogSoftmax(dim): the module of F.log_softmax; dim is required (1-based).
  softmax_module("LogSoftmax", "log_softmax", true)

  ---------------------------------------------------------------------------
  --- F.prelu(x, weight), x:prelu(weight): x where x > 0, weight * x elsewhere.
  -- weight is a vector: one value for every element, or one per channel, the
  -- channel being dim 2 of an x with at least 2 dims (PyTorch's dim 1).
  function F.prelu(x, weight)
    check_input(x, "prelu")
    if not is_tensor(weight) then raise("prelu: weight must be a tensor, got " .. type(weight)) end
    return prelu(x, weight)
  end
  Tensor.prelu = F.prelu

  --- nn.PReLU([num_parameters = 1 [, init = 0.25 [, {dtype = "float32"}]]]), or
  -- nn.PReLU{num_parameters =, init =, dtype =}: F.prelu with a learnable weight
  -- (an nn.Parameter of num_parameters values, all init). With num_parameters > 1
  -- each channel (dim 2 of the input) has its own slope, and the input must
  -- have that many channels.
  local PReLU = Module:extend("PReLU")
  nn.PReLU = PReLU

  function PReLU:init(num_parameters, init, opts)
    if type(num_parameters) == "table" and init == nil and opts == nil then
      opts = nn._options("PReLU", num_parameters, {"num_parameters", "init", "dtype"})
      num_parameters, init = opts.num_parameters, opts.init
    else
      opts = nn._options("PReLU", opts, {"dtype"})
    end
    if num_parameters == nil then num_parameters = 1 end
    if init == nil then init = 0.25 end
    self.num_parameters = positive_integer(num_parameters, "PReLU", "num_parameters")
    any_number(init, "PReLU", "init")
    self.weight = nn.Parameter(nn.full(self.num_parameters, init, {dtype = opts.dtype or "float32"}))
  end

  function PReLU:forward(x)
    check_input(x, "PReLU")
    local n = self.num_parameters
    if n > 1 and (x:dim() < 2 or x:size(2) ~= n) then
      raise(string.format("PReLU: num_parameters = %d, but the input (%s) has %s", n,
        table.concat(x:size(), "x"), x:dim() < 2 and "no channel dim (channels are dim 2)"
          or string.format("%d channels in dim 2", x:size(2))))
    end
    return prelu(x, self.weight)
  end

  function PReLU:extra_repr() return "num_parameters=" .. tostring(self.num_parameters) end

  ---------------------------------------------------------------------------
  --- F.maxout(x, pieces), x:maxout(pieces): the largest of every `pieces`
  -- consecutive features of x's last dim, whose size must be a multiple of
  -- pieces: (..., out * pieces) -> (..., out).
  function F.maxout(x, pieces)
    check_input(x, "maxout")
    pieces = positive_integer(pieces, "maxout", "pieces")
    local size = x:size()
    local last = size[#size]
    if #size == 0 or last % pieces ~= 0 then
      raise(string.format("maxout: the last dim has %s features, not a multiple of pieces = %d",
        tostring(last or 1), pieces))
    end
    size[#size] = last // pieces
    size[#size + 1] = pieces
    local values = x:reshape(size):max(-1)
    return values
  end
  Tensor.maxout = F.maxout

  --- nn.Maxout(in_features, out_features, pieces [, {bias = true, dtype = "float32"}]):
  -- Goodfellow et al. (2013): a linear layer to out_features * pieces units
  -- (self.linear, an nn.Linear initialised as any), then the max over each run
  -- of `pieces` consecutive units. Input (N, in_features) or (in_features).
  local Maxout = Module:extend("Maxout")
  nn.Maxout = Maxout

  function Maxout:init(in_features, out_features, pieces, opts)
    opts = nn._options("Maxout", opts, {"bias", "dtype"})
    self.in_features = positive_integer(in_features, "Maxout", "in_features")
    self.out_features = positive_integer(out_features, "Maxout", "out_features")
    self.pieces = positive_integer(pieces, "Maxout", "pieces")
    self.linear = nn.Linear(self.in_features, self.out_features * self.pieces,
      {bias = opts.bias, dtype = opts.dtype})
  end

  function Maxout:forward(x)
    check_input(x, "Maxout")
    return F.maxout(self.linear(x), self.pieces)
  end

  function Maxout:extra_repr()
    return string.format("in_features=%d, out_features=%d, pieces=%d", self.in_features,
      self.out_features, self.pieces)
  end

  ---------------------------------------------------------------------------
  -- nn.F.derivative: what each name computes, given x (a leaf that requires
  -- grad) and the options of F.derivative.
  local derivable = {
    step = function(x) return x:step() end,
    sigmoid = function(x) return x:sigmoid() end,
    tanh = function(x) return x:tanh() end,
    relu = function(x) return x:relu() end,
    identity = function(x) return x:clone() end,
    prelu = function(x, opts)
      local w = type(opts) == "table" and opts.weight or opts
      if w == nil then w = 0.25 end
      if not is_tensor(w) then w = nn.full(1, any_number(w, "derivative", "weight"), {dtype = x.dtype, device = x.device}) end
      return F.prelu(x, w)
    end,
  }
  for _, spec in ipairs(elementwise) do
    local f = F[spec.fn]
    derivable[spec.fn] = function(x, opts)
      if opts == nil then return f(x) end
      return f(x, opts)
    end
  end
  derivable.log_sigmoid = derivable.logsigmoid

  -- softmax and log_softmax couple the elements of a line: their Jacobian
  -- is not diagonal, and derivative() gives its diagonal.
  local coupled = {softmax = true, log_softmax = true}

  local known = {}
  for name in pairs(derivable) do known[#known + 1] = name end
  for name in pairs(coupled) do known[#known + 1] = name end
  table.sort(known)
  local known_list = table.concat(known, ", ")

  --- nn.F.derivative(name, x [, opts]): the derivative of the activation `name`
  -- at every element of x, as a tensor of x's shape and dtype, for plotting and
  -- teaching: nn.F.derivative("sigmoid", nn.linspace(-5, 5, 101)).
  -- name: step, sigmoid, tanh, relu, identity, leaky_relu, prelu, elu, selu, silu,
  -- gelu, softplus, mish, hardtanh, hardsigmoid, logsigmoid (log_sigmoid),
  -- softsign, softmax, log_softmax.
  -- opts: the activation's parameters, named as in its F function
  -- ({negative_slope = 0.2}, {approximate = "tanh"}, {beta = 2, threshold = 10}),
  -- or a number for the first one; prelu takes {weight = tensor or number}
  -- (default 0.25); softmax and log_softmax require {dim = d} (or the number d).
  -- For an elementwise activation the result is exactly what backward uses:
  -- it is computed by autograd (x.grad after f(x):backward(ones)), so a kink
  -- takes the value PyTorch's backward takes there (relu'(0) = 0,
  -- leaky_relu'(0) = slope, hardtanh' = 0 at its bounds).
  -- For softmax and log_softmax, whose outputs along dim each depend on the
  -- whole line, it is the diagonal of the Jacobian along dim: with s = softmax(x),
  -- d softmax_i / d x_i = s_i (1 - s_i) and d log_softmax_i / d x_i = 1 - s_i.
  function F.derivative(name, x, opts)
    if type(name) ~= "string" or not (derivable[name] or coupled[name]) then
      raise(string.format("derivative: unknown activation %s; known: %s", show(name), known_list))
    end
    if not is_tensor(x) then raise("derivative: x must be a tensor, got " .. type(x)) end
    if x.dtype ~= "float32" and x.dtype ~= "float64" then
      raise("derivative: x must be float32 or float64, got " .. x.dtype)
    end
    if coupled[name] then
      return nn.no_grad(function()
        local s = F.softmax(x, read_dim(opts, "derivative"))
        if name == "softmax" then return s * (1 - s) end
        return 1 - s
      end)
    end
    local f = derivable[name]
    return nn.enable_grad(function()
      local leaf = x:detach():requires_grad_(true)
      local y = f(leaf, opts)
      if y:dim() == 0 then y:backward() else y:backward(nn.ones(y:size(), {dtype = y.dtype, device = y.device})) end
      return leaf.grad or nn.zeros(x:size(), {dtype = x.dtype, device = x.device})
    end)
  end
end

-- Dropout, Flatten, BatchNorm1d and LayerNorm: modules, and their
-- functional forms nn.F.dropout, nn.F.flatten and nn.F.layer_norm
-- (PyTorch's names and argument orders, dims 1-based; nn.F.batch_norm is
-- pool_layers.lua's fused front).
--
-- Each is composed of the engine's tensor ops, which record the graph, so
-- backward comes from the ops' own backward passes; the formulas and the
-- order of operations follow PyTorch 1.13 (torch/nn/modules/dropout.py,
-- flatten.py, batchnorm.py, normalization.py and ATen's Dropout.cpp,
-- Normalization.cpp, layer_norm.cpp).
return function(nn)
  local raise = nn._raise
  local Module, F = nn.Module, nn.F

  ---------------------------------------------------------------------------
  -- Helpers

  local function check_tensor(x, op)
    if not nn.is_tensor(x) then raise(op .. ": expected a tensor, got " .. type(x)) end
  end

  local function check_floating(x, op)
    if x.dtype ~= "float32" and x.dtype ~= "float64" then
      raise(op .. ": expected a floating-point tensor (float32 or float64), got " .. x.dtype)
    end
  end

  local function shape_text(sizes)
    return "(" .. table.concat(sizes, ", ") .. ")"
  end

  -- Python's repr of a float (shortest round trip; positional between 1e-4
  -- and 1e16), so that print(model) reads as PyTorch's: eps=1e-05, p=0.5.
  local function python_float(v)
    if v ~= v then return "nan" end
    if v == math.huge then return "inf" end
    if v == -math.huge then return "-inf" end
    local text
    for precision = 1, 17 do
      text = string.format("%." .. precision .. "g", v)
      if tonumber(text) == v then break end
    end
    local exponent = text:match("e([-+]%d+)$")
    if exponent then
      -- %g went scientific because the exponent reached the precision;
      -- Python stays positional up to 1e16, where such a value is whole
      local e = tonumber(exponent)
      if e >= 0 and e < 16 then return string.format("%.0f", v) .. ".0" end
      return text
    end
    if not text:find(".", 1, true) then text = text .. ".0" end
    return text
  end

  -- An integer prints as Python's int, a float as its float: Dropout(0)
  -- shows p=0 and Dropout(0.0) shows p=0.0, as in PyTorch.
  local function python_number(v)
    if math.type(v) == "integer" then return string.format("%d", v) end
    return python_float(v)
  end
  nn._python_number = python_number -- for the other layer files' extra_repr

  local function python_bool(b) return b and "True" or "False" end
  nn._python_number, nn._python_bool = python_number, python_bool -- for the other layer files' reprs

  -- A user's dim (1-based, negative from the end) as a positive 1-based
  -- dim of an ndim-dimensional tensor; a 0-d tensor counts as 1-d, as in
  -- PyTorch's dim wrapping.
  local function wrap_dim(d, ndim, op, what)
    local n = math.max(ndim, 1)
    if math.type(d) ~= "integer" then
      raise(string.format("%s: %s must be an integer, got %s", op, what, tostring(d)))
    end
    local wrapped = d < 0 and d + n + 1 or d
    if d == 0 or wrapped < 1 or wrapped > n then
      raise(string.format("%s: %s %d is out of range for a %d-dimensional input (expected %d..%d or %d..-1)",
        op, what, d, ndim, 1, n, -n))
    end
    return wrapped
  end

  local function check_probability(p, op)
    if type(p) ~= "number" or not (p >= 0 and p <= 1) then
      raise(string.format("%s: dropout probability p must be a number between 0 and 1, got %s",
        op, tostring(p)))
    end
  end

  local function check_positive_integer(v, what, op)
    if math.type(v) ~= "integer" or v < 1 then
      raise(string.format("%s: %s must be a positive integer, got %s", op, what, tostring(v)))
    end
  end

  local function check_eps(eps, op)
    if type(eps) ~= "number" or not (eps >= 0) then
      raise(op .. ": eps must be a non-negative number, got " .. tostring(eps))
    end
  end

  local function flag(v, default, what, op)
    if v == nil then return default end
    if type(v) ~= "boolean" then raise(string.format("%s: %s must be a boolean, got %s", op, what, tostring(v))) end
    return v
  end

  ---------------------------------------------------------------------------
  -- Dropout

  -- PyTorch's _dropout_impl (ATen/native/Dropout.cpp) on the CPU: noise =
  -- bernoulli(1 - p) / (1 - p), output = input * noise. Each Bernoulli draw
  -- is one double uniform u (53 bits of a 64-bit draw), kept when
  -- u < 1 - p (bernoulli_distribution<double>), and the division is
  -- float by float in the input's dtype: drawing the mask with
  -- nn.rand(float64) gives PyTorch's very mask after the same manual_seed.
  local function dropout(x, p, training, inplace, op)
    check_tensor(x, op)
    check_probability(p, op)
    if not training or p == 0 or x:numel() == 0 then return x end
    if p == 1 then
      if inplace then return x:mul_(0) end
      return x * 0
    end
    check_floating(x, op)
    local noise = nn.no_grad(function()
      -- one pass after the draws (activations.c); nil while a capture records
      local scaled = nn._C.dropout_noise(x, p)
      if scaled == nil then
        local keep = nn.rand(x:size(), {dtype = "float64"}):lt(1 - p):to(x.dtype)
        scaled = keep:div_(nn.tensor(1 - p, {dtype = x.dtype}))
      end
      if x.device ~= "cpu" then scaled = scaled:to(x.device) end
      return scaled
    end)
    if inplace then return x:mul_(noise) end
    return x * noise
  end

  --- nn.F.dropout(x [, p = 0.5, training = true, inplace = false]): zeroes
  -- each element with probability p and scales the rest by 1 / (1 - p)
  -- when training; returns x itself when not training or p = 0.
  function F.dropout(x, p, training, inplace)
    if p == nil then p = 0.5 end
    training = flag(training, true, "training", "dropout")
    return dropout(x, p, training, flag(inplace, false, "inplace", "dropout"), "dropout")
  end

  --- nn.Dropout([p = 0.5 [, inplace = false]]) or nn.Dropout({p =, inplace =}):
  -- in training mode zeroes each element with probability p and scales the
  -- others by 1 / (1 - p), so that the expected output is the input
  -- (Srivastava et al., 2014, inverted dropout); in eval mode (m:eval())
  -- returns its input. p must lie in [0, 1]; p = 1 gives zeros. The mask
  -- comes from the shared generator, as PyTorch's does.
  local Dropout = Module:extend("Dropout")
  nn.Dropout = Dropout

  function Dropout:init(p, inplace)
    if type(p) == "table" and inplace == nil then
      local opts = nn._options("Dropout", p, {"p", "inplace"})
      p, inplace = opts.p, opts.inplace
    end
    if p == nil then p = 0.5 end
    check_probability(p, "Dropout")
    self.p = p
    self.inplace = flag(inplace, false, "inplace", "Dropout")
  end

  function Dropout:forward(x)
    return dropout(x, self.p, self.training, self.inplace, "Dropout")
  end

  function Dropout:extra_repr()
    return "p=" .. python_number(self.p) .. ", inplace=" .. python_bool(self.inplace)
  end

  ---------------------------------------------------------------------------
  -- Flatten

  local function flatten(x, start_dim, end_dim, op)
    check_tensor(x, op)
    local ndim = x:dim()
    local first = wrap_dim(start_dim, ndim, op, "start_dim")
    local last = wrap_dim(end_dim, ndim, op, "end_dim")
    if first > last then
      raise(string.format("%s: start_dim cannot come after end_dim (start_dim=%d, end_dim=%d for a %d-dimensional input)",
        op, start_dim, end_dim, ndim))
    end
    if ndim == 0 then return x:reshape({1}) end
    if first == last then return x end
    local sizes, merged = {}, 1
    for d = 1, first - 1 do sizes[#sizes + 1] = x:size(d) end
    for d = first, last do merged = merged * x:size(d) end
    sizes[#sizes + 1] = merged
    for d = last + 1, ndim do sizes[#sizes + 1] = x:size(d) end
    return x:reshape(sizes)
  end

  --- nn.F.flatten(x [, start_dim = 1, end_dim = -1]) and x:flatten(...):
  -- merges dims start_dim..end_dim (1-based, negative from the end) into
  -- one; a view when the layout allows, as reshape.
  function F.flatten(x, start_dim, end_dim)
    return flatten(x, start_dim == nil and 1 or start_dim, end_dim == nil and -1 or end_dim, "flatten")
  end
  if nn.Tensor.flatten == nil then nn.Tensor.flatten = F.flatten end

  --- nn.Flatten([start_dim = 2, end_dim = -1]): flattens dims start_dim..end_dim
  -- (1-based: the default keeps the batch dim 1 and merges the rest, as
  -- PyTorch's Flatten(1, -1)).
  local Flatten = Module:extend("Flatten")
  nn.Flatten = Flatten

  function Flatten:init(start_dim, end_dim)
    if start_dim == nil then start_dim = 2 end
    if end_dim == nil then end_dim = -1 end
    for what, d in pairs({start_dim = start_dim, end_dim = end_dim}) do
      if math.type(d) ~= "integer" or d == 0 then
        raise(string.format("Flatten: %s must be a non-zero integer (dims are 1-based), got %s", what, tostring(d)))
      end
    end
    self.start_dim, self.end_dim = start_dim, end_dim
  end

  function Flatten:forward(x) return flatten(x, self.start_dim, self.end_dim, "Flatten") end

  function Flatten:extra_repr()
    return string.format("start_dim=%d, end_dim=%d", self.start_dim, self.end_dim)
  end

  ---------------------------------------------------------------------------
  -- BatchNorm1d

  -- Batch normalisation (Ioffe & Szegedy, 2015) of (N, C) or (N, C, L)
  -- input over every dim but C. In training: y = (x - mean) / sqrt(var +
  -- eps) * weight + bias with the batch's mean and biased variance, and
  -- running_mean / running_var (when given) move by momentum towards the
  -- batch's mean and unbiased variance, as PyTorch's
  -- batch_norm_cpu_update_stats_template: r = momentum * stat + (1 -
  -- momentum) * r. Otherwise the running statistics normalise.
  local function batch_norm(x, running_mean, running_var, weight, bias, training, momentum, eps, op)
    check_tensor(x, op)
    check_floating(x, op)
    local ndim = x:dim()
    if ndim ~= 2 and ndim ~= 3 then
      raise(string.format("%s: expected 2D or 3D input (N, C) or (N, C, L), got %dD input of shape %s",
        op, ndim, shape_text(x:size())))
    end
    local channels = x:size(2)
    local function check_per_channel(t, what)
      if t == nil then return end
      check_tensor(t, op)
      if t:numel() ~= channels then
        raise(string.format("%s: input has %d features (dim 2 of shape %s), but %s has %d",
          op, channels, shape_text(x:size()), what, t:numel()))
      end
    end
    check_per_channel(running_mean, "running_mean")
    check_per_channel(running_var, "running_var")
    check_per_channel(weight, "weight")
    check_per_channel(bias, "bias")
    if (running_mean == nil) ~= (running_var == nil) then
      raise(op .. ": give both running_mean and running_var, or neither")
    end
    check_eps(eps, op)
    local shape = ndim == 2 and {1, channels} or {1, channels, 1}

    local mean, var
    if training then
      local count = x:numel() // channels
      if count <= 1 then
        raise(string.format("%s: expected more than 1 value per channel when training, got input of shape %s",
          op, shape_text(x:size())))
      end
      if type(momentum) ~= "number" then raise(op .. ": momentum must be a number, got " .. type(momentum)) end
      local function over_batch(t)
        local m = t:mean(1, true)
        if ndim == 3 then m = m:mean(3, true) end
        return m
      end
      mean = over_batch(x)
      local centered = x - mean
      var = over_batch(centered * centered)
      if running_mean ~= nil then
        nn.no_grad(function()
          local batch_mean = mean:detach():reshape({channels})
          local unbiased_var = var:detach():reshape({channels}) * (count / (count - 1))
          running_mean:copy_(batch_mean * momentum + running_mean * (1 - momentum))
          running_var:copy_(unbiased_var * momentum + running_var * (1 - momentum))
        end)
      end
      local y = centered / (var + eps):sqrt()
      if weight ~= nil then y = y * weight:view(shape) end
      if bias ~= nil then y = y + bias:view(shape) end
      return y
    end
    if running_mean == nil then
      raise(op .. ": running_mean and running_var are needed when not training")
    end
    local y = (x - running_mean:view(shape)) / (running_var:view(shape) + eps):sqrt()
    if weight ~= nil then y = y * weight:view(shape) end
    if bias ~= nil then y = y + bias:view(shape) end
    return y
  end

  --- nn.BatchNorm1d(num_features [, {eps = 1e-5, momentum = 0.1, affine = true,
  -- track_running_stats = true, dtype = "float32"}]): normalises each of the
  -- C features of an (N, C) or (N, C, L) input. In training mode it uses the
  -- batch's mean and biased variance and updates the buffers running_mean
  -- and running_var (with the unbiased variance) by momentum, and counts
  -- num_batches_tracked; in eval mode it uses the running statistics.
  -- momentum = false is PyTorch's momentum=None: a cumulative average,
  -- momentum 1 / num_batches_tracked. affine = true learns weight (ones) and
  -- bias (zeros); track_running_stats = false keeps no running statistics
  -- and always uses the batch's.
  local BatchNorm1d = Module:extend("BatchNorm1d")
  nn.BatchNorm1d = BatchNorm1d
  BatchNorm1d._version = 2 -- PyTorch's: version 2 added num_batches_tracked

  function BatchNorm1d:init(num_features, opts)
    local op = self.__name -- BatchNorm2d and BatchNorm3d share it
    check_positive_integer(num_features, "num_features", op)
    opts = nn._options(op, opts, {"eps", "momentum", "affine", "track_running_stats", "dtype"})
    local eps = opts.eps == nil and 1e-5 or opts.eps
    check_eps(eps, op)
    local momentum = opts.momentum
    if momentum == nil then
      momentum = 0.1
    elseif momentum == false then
      momentum = nil -- cumulative moving average
    elseif type(momentum) ~= "number" then
      raise(op .. ": momentum must be a number, or false for a cumulative average; got " .. tostring(momentum))
    end
    local dtype = opts.dtype or "float32"
    self.num_features = num_features
    self.eps = eps
    self.momentum = momentum
    self.affine = flag(opts.affine, true, "affine", op)
    self.track_running_stats = flag(opts.track_running_stats, true, "track_running_stats", op)
    if self.affine then
      self.weight = nn.Parameter(nn.ones(num_features, {dtype = dtype}))
      self.bias = nn.Parameter(nn.zeros(num_features, {dtype = dtype}))
    else
      self:register_parameter("weight", nil)
      self:register_parameter("bias", nil)
    end
    if self.track_running_stats then
      self:register_buffer("running_mean", nn.zeros(num_features, {dtype = dtype}))
      self:register_buffer("running_var", nn.ones(num_features, {dtype = dtype}))
      self:register_buffer("num_batches_tracked", nn.tensor(0, {dtype = "int64"}))
    else
      self:register_buffer("running_mean", nil)
      self:register_buffer("running_var", nil)
      self:register_buffer("num_batches_tracked", nil)
    end
  end

  --- bn:reset_running_stats(): running_mean 0, running_var 1, no batches tracked.
  function BatchNorm1d:reset_running_stats()
    if not self.track_running_stats then return end
    nn.no_grad(function()
      self.running_mean:fill_(0)
      self.running_var:fill_(1)
      self.num_batches_tracked:fill_(0)
    end)
  end

  --- bn:reset_parameters(): the running statistics, and weight 1, bias 0.
  function BatchNorm1d:reset_parameters()
    self:reset_running_stats()
    if self.affine then
      nn.init.ones_(self.weight)
      nn.init.zeros_(self.bias)
    end
  end

  -- What torch/nn/modules/batchnorm.py's _BatchNorm.forward hands to
  -- batch_norm: the running statistics (or nil), whether to use the
  -- batch's, and the momentum (counting the batch as it goes). BatchNorm2d
  -- and BatchNorm3d share it.
  function BatchNorm1d:_statistics(x, op)
    local factor = self.momentum or 0.0
    if self.training and self.track_running_stats and self.num_batches_tracked ~= nil then
      if x:numel() // x:size(2) <= 1 then
        -- refuse before counting the batch, as F.batch_norm would
        raise(string.format("%s: expected more than 1 value per channel when training, got input of shape %s",
          op, shape_text(x:size())))
      end
      nn.no_grad(function() self.num_batches_tracked:add_(1) end)
      if self.momentum == nil then factor = 1.0 / self.num_batches_tracked:item() end
    end
    local use_batch_stats = self.training or (self.running_mean == nil and self.running_var == nil)
    local running_mean, running_var
    if not self.training or self.track_running_stats then
      running_mean, running_var = self.running_mean, self.running_var
    end
    return running_mean, running_var, use_batch_stats, factor
  end

  function BatchNorm1d:forward(x)
    local op = "BatchNorm1d"
    check_tensor(x, op)
    check_floating(x, op)
    if x:dim() ~= 2 and x:dim() ~= 3 then
      raise(string.format("%s: expected 2D or 3D input (N, C) or (N, C, L), got %dD input of shape %s",
        op, x:dim(), shape_text(x:size())))
    end
    if x:size(2) ~= self.num_features then
      raise(string.format("%s: input has %d features (dim 2 of shape %s), layer expects %d",
        op, x:size(2), shape_text(x:size()), self.num_features))
    end
    local running_mean, running_var, use_batch_stats, factor = self:_statistics(x, op)
    return batch_norm(x, running_mean, running_var, self.weight, self.bias, use_batch_stats,
      factor, self.eps, op)
  end

  function BatchNorm1d:extra_repr()
    return string.format("%d, eps=%s, momentum=%s, affine=%s, track_running_stats=%s",
      self.num_features, python_number(self.eps),
      self.momentum == nil and "None" or python_number(self.momentum),
      python_bool(self.affine), python_bool(self.track_running_stats))
  end

  ---------------------------------------------------------------------------
  -- LayerNorm

  local function normalized_sizes(normalized_shape, op)
    local sizes = {}
    if type(normalized_shape) == "number" then
      sizes[1] = normalized_shape
    elseif type(normalized_shape) == "table" then
      for i, s in ipairs(normalized_shape) do sizes[i] = s end
      if #sizes == 0 then raise(op .. ": normalized_shape must not be empty") end
    else
      raise(op .. ": normalized_shape must be a number or a table of sizes, got " .. type(normalized_shape))
    end
    for _, s in ipairs(sizes) do check_positive_integer(s, "each size of normalized_shape", op) end
    return sizes
  end

  -- Layer normalisation (Ba, Kiros & Hinton, 2016) over the trailing dims
  -- given by sizes: y = (x - mean) / sqrt(var + eps) * weight + bias, mean
  -- and biased variance over those dims (ATen's layer_norm: one row per
  -- leading index).
  local function layer_norm(x, sizes, weight, bias, eps, op)
    check_tensor(x, op)
    check_floating(x, op)
    local k, ndim = #sizes, x:dim()
    local matches = ndim >= k
    if matches then
      for i = 1, k do
        if x:size(ndim - k + i) ~= sizes[i] then matches = false end
      end
    end
    if not matches then
      raise(string.format("%s: expected input with shape (*, %s), got input of shape %s",
        op, table.concat(sizes, ", "), shape_text(x:size())))
    end
    local row = 1
    for _, s in ipairs(sizes) do row = row * s end
    -- one pass over a row forward and one backward (statistics.c); nil
    -- where that does not run (another device, a capture recording)
    local fused = nn._C.layer_norm(x, row, weight, bias, eps)
    if fused ~= nil then return fused end
    local rows = x:numel() // row
    local flat = x:reshape({rows, row})
    local mean = flat:mean(2, true)
    local centered = flat - mean
    local var = (centered * centered):mean(2, true)
    local y = (centered / (var + eps):sqrt()):reshape(x:size())
    if weight ~= nil then y = y * weight end
    if bias ~= nil then y = y + bias end
    return y
  end

  -- weight and bias, when given, must have the normalized shape.
  local function check_affine(t, what, sizes, op)
    if t == nil then return end
    check_tensor(t, op)
    local same = t:dim() == #sizes
    if same then
      for i, s in ipairs(sizes) do
        if t:size(i) ~= s then same = false end
      end
    end
    if not same then
      raise(string.format("%s: %s has shape %s, expected the normalized shape (%s)",
        op, what, shape_text(t:size()), table.concat(sizes, ", ")))
    end
  end

  --- nn.F.layer_norm(x, normalized_shape [, weight, bias, eps = 1e-5]):
  -- normalises x over its trailing dims normalized_shape (a size or a
  -- table of sizes), then scales by weight and shifts by bias (each nil or
  -- of the normalized shape).
  function F.layer_norm(x, normalized_shape, weight, bias, eps)
    local op = "layer_norm"
    local sizes = normalized_sizes(normalized_shape, op)
    check_affine(weight, "weight", sizes, op)
    check_affine(bias, "bias", sizes, op)
    if eps == nil then eps = 1e-5 end
    check_eps(eps, op)
    return layer_norm(x, sizes, weight, bias, eps, op)
  end

  --- nn.LayerNorm(normalized_shape [, {eps = 1e-5, elementwise_affine = true,
  -- dtype = "float32"}]): normalises each sample over its trailing dims
  -- normalized_shape (a number, or a table of sizes) to mean 0 and
  -- variance 1, then, with elementwise_affine, multiplies by weight (ones)
  -- and adds bias (zeros), both learnable and of the normalized shape.
  -- The same in training and eval mode.
  local LayerNorm = Module:extend("LayerNorm")
  nn.LayerNorm = LayerNorm

  function LayerNorm:init(normalized_shape, opts)
    local op = "LayerNorm"
    self.normalized_shape = normalized_sizes(normalized_shape, op)
    opts = nn._options(op, opts, {"eps", "elementwise_affine", "dtype"})
    self.eps = opts.eps == nil and 1e-5 or opts.eps
    check_eps(self.eps, op)
    self.elementwise_affine = flag(opts.elementwise_affine, true, "elementwise_affine", op)
    local dtype = opts.dtype or "float32"
    if self.elementwise_affine then
      self.weight = nn.Parameter(nn.ones(self.normalized_shape, {dtype = dtype}))
      self.bias = nn.Parameter(nn.zeros(self.normalized_shape, {dtype = dtype}))
    else
      self:register_parameter("weight", nil)
      self:register_parameter("bias", nil)
    end
  end

  --- ln:reset_parameters(): weight 1, bias 0.
  function LayerNorm:reset_parameters()
    if self.elementwise_affine then
      nn.init.ones_(self.weight)
      nn.init.zeros_(self.bias)
    end
  end

  function LayerNorm:forward(x)
    return layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps, "LayerNorm")
  end

  function LayerNorm:extra_repr()
    local sizes = self.normalized_shape
    local tuple = #sizes == 1 and "(" .. sizes[1] .. ",)" or shape_text(sizes)
    return string.format("%s, eps=%s, elementwise_affine=%s", tuple, python_number(self.eps),
      python_bool(self.elementwise_affine))
  end
end

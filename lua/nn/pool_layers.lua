-- Pooling, upsampling, normalisation over channels and channel dropout:
-- MaxPool1d/2d, AvgPool1d/2d, AdaptiveAvgPool1d/2d, AdaptiveMaxPool1d/2d,
-- MaxUnpool2d, Upsample, BatchNorm2d/3d, GroupNorm, InstanceNorm1d/2d,
-- LocalResponseNorm, Dropout1d/2d, AlphaDropout, and their nn.F forms
-- (PyTorch 1.13's names, defaults, argument orders and printing).
--
-- Pooling, upsampling and batch normalisation are fused C fronts (one
-- kernel per pass, lua/nn_pool.c over engine/src/pool.c); the 1-d forms
-- run the 2-d ones over a height of 1; GroupNorm and InstanceNorm are
-- batch normalisation of a reshaped input, as ATen computes them;
-- LocalResponseNorm and the dropouts compose tensor ops. Indices that
-- max pooling returns count from 1 within each H x W plane, like every
-- index a Lua user sees.
return function(nn)
  local C, raise = nn._C, nn._raise
  local Module, F = nn.Module, nn.F
  local pool2d, upsample2d, batch_norm, batch_norm_relu = C.pool2d, C.upsample2d, C.batch_norm, C.batch_norm_relu
  local python_number, python_bool = nn._python_number, nn._python_bool
  local POOL_MAX, POOL_AVG, POOL_ADAPTIVE_MAX, POOL_ADAPTIVE_AVG = 0, 1, 2, 3

  ---------------------------------------------------------------------------
  -- Helpers

  local function check_tensor(x, op)
    if not nn.is_tensor(x) then raise(op .. ": expected a tensor, got " .. type(x)) end
  end

  local function shape_text(sizes) return "(" .. table.concat(sizes, ", ") .. ")" end

  local function check_rank(x, op, ranks, names)
    check_tensor(x, op)
    local d = x:dim()
    for _, r in ipairs(ranks) do
      if d == r then return d end
    end
    raise(string.format("%s: expected %s input, got %dD input of shape %s", op, names, d, shape_text(x:size())))
  end

  local function flag(v, default, what, op)
    if v == nil then return default end
    if type(v) ~= "boolean" then raise(string.format("%s: %s must be a boolean, got %s", op, what, tostring(v))) end
    return v
  end

  -- A size argument: one integer for every dim, or a table of n of them
  -- (PyTorch's int or tuple). Returns the n values.
  local function sizes_of(v, n, what, op)
    if math.type(v) == "integer" then
      local out = {}
      for i = 1, n do out[i] = v end
      return out
    end
    if type(v) == "table" and not nn.is_tensor(v) and #v == n then
      local ok = true
      for i = 1, n do ok = ok and math.type(v[i]) == "integer" end
      if ok then return {table.unpack(v, 1, n)} end
    end
    raise(string.format("%s: %s must be an integer or a table of %d integers, got %s", op, what, n,
      type(v) == "table" and "a table" or tostring(v)))
  end

  -- Python's repr of an int, a float or a tuple of them, None for nil.
  local function python_repr(v)
    if v == nil then return "None" end
    if type(v) ~= "table" then return python_number(v) end
    local parts = {}
    for i = 1, v.n or #v do parts[i] = python_repr(v[i]) end
    if #parts == 1 then return "(" .. parts[1] .. ",)" end
    return "(" .. table.concat(parts, ", ") .. ")"
  end

  local function kw(...)
    local args, parts = table.pack(...), {}
    for i = 1, args.n, 2 do parts[#parts + 1] = args[i] .. "=" .. args[i + 1] end
    return table.concat(parts, ", ")
  end

  -- Runs a 2-d pooling over an input whose last dim is seen as (1, L):
  -- the 1-d forms (N, C, L) or (C, L).
  local function as_1d(x, op, fn)
    check_rank(x, op, {2, 3}, "2D (C, L) or 3D (N, C, L)")
    local out, indices = fn(x:unsqueeze(-2))
    if indices then return out:squeeze(-2), indices:squeeze(-2) end
    return out:squeeze(-2)
  end

  -- The arguments of a pooling module or function, in the order of known:
  -- positional as PyTorch's (Class(3, 2)), or the first then a table of
  -- options (Class(3, {stride = 2})), or one table of them all
  -- (Class{kernel_size = 3}). A table of options is never taken for a size.
  local function pool_options(op, known, first, ...)
    local rest = table.pack(...)
    local function is_options(t) return type(t) == "table" and not nn.is_tensor(t) and t[1] == nil and next(t) ~= nil end
    if rest.n == 0 and is_options(first) and first[known[1]] ~= nil then
      local opts = nn._options(op, first, known)
      local values = {}
      for i, key in ipairs(known) do values[i] = opts[key] end
      return values
    end
    if rest.n == 1 and is_options(rest[1]) then
      local opts = nn._options(op, rest[1], known)
      local values = {first}
      for i = 2, #known do values[i] = opts[known[i]] end
      return values
    end
    if rest.n > #known - 1 then
      raise(string.format("%s: takes at most %d arguments (%s), got %d", op, #known, table.concat(known, ", "), rest.n + 1))
    end
    return {first, table.unpack(rest, 1, rest.n)}
  end

  ---------------------------------------------------------------------------
  -- Max pooling

  local function max_pool(x, n, kernel_size, stride, padding, dilation, ceil_mode, return_indices, op)
    check_tensor(x, op)
    local k = sizes_of(kernel_size, n, "kernel_size", op)
    local s = (stride == nil or (type(stride) == "table" and next(stride) == nil)) and k
      or sizes_of(stride, n, "stride", op)
    local p = sizes_of(padding == nil and 0 or padding, n, "padding", op)
    local d = sizes_of(dilation == nil and 1 or dilation, n, "dilation", op)
    ceil_mode = flag(ceil_mode, false, "ceil_mode", op)
    return_indices = flag(return_indices, false, "return_indices", op)
    if n == 1 then
      return as_1d(x, op, function(x2)
        return pool2d(x2, POOL_MAX, 1, k[1], 1, s[1], 0, p[1], 1, d[1], ceil_mode, false, nil, return_indices)
      end)
    end
    return pool2d(x, POOL_MAX, k[1], k[2], s[1], s[2], p[1], p[2], d[1], d[2], ceil_mode, false, nil, return_indices)
  end

  --- nn.F.max_pool2d(x, kernel_size [, stride = kernel_size, padding = 0,
  -- dilation = 1, ceil_mode = false, return_indices = false]): the largest
  -- value of each window over the last two dims of x (C, H, W) or
  -- (N, C, H, W); sizes are an integer or a table {h, w}. With
  -- return_indices also each maximum's position in its H x W plane
  -- (1-based, row-major), what F.max_unpool2d takes. NaN counts as largest.
  -- The arguments after kernel_size may also be a table of options:
  --   nn.F.max_pool2d(x, 3, {stride = 2, padding = 1})
  local MAX_POOL_ARGUMENTS = {"kernel_size", "stride", "padding", "dilation", "ceil_mode", "return_indices"}
  function F.max_pool2d(x, ...)
    local v = pool_options("max_pool2d", MAX_POOL_ARGUMENTS, ...)
    return max_pool(x, 2, v[1], v[2], v[3], v[4], v[5], v[6], "max_pool2d")
  end

  --- nn.F.max_pool1d(x, kernel_size [, stride, padding, dilation, ceil_mode,
  -- return_indices]): max_pool2d's 1-d form over the last dim of (C, L) or
  -- (N, C, L).
  function F.max_pool1d(x, ...)
    local v = pool_options("max_pool1d", MAX_POOL_ARGUMENTS, ...)
    return max_pool(x, 1, v[1], v[2], v[3], v[4], v[5], v[6], "max_pool1d")
  end

  local function define_max_pool(name, n)
    local class = Module:extend(name)
    nn[name] = class
    local known = {"kernel_size", "stride", "padding", "dilation", "return_indices", "ceil_mode"}
    function class:init(...)
      local v = pool_options(name, known, ...)
      sizes_of(v[1], n, "kernel_size", name)
      self.kernel_size = v[1]
      self.stride = v[2] == nil and v[1] or v[2]
      self.padding = v[3] == nil and 0 or v[3]
      self.dilation = v[4] == nil and 1 or v[4]
      self.return_indices = flag(v[5], false, "return_indices", name)
      self.ceil_mode = flag(v[6], false, "ceil_mode", name)
      for i = 2, 4 do sizes_of(self[known[i]], n, known[i], name) end
    end
    function class:forward(x)
      return max_pool(x, n, self.kernel_size, self.stride, self.padding, self.dilation, self.ceil_mode,
        self.return_indices, name)
    end
    function class:extra_repr()
      return kw("kernel_size", python_repr(self.kernel_size), "stride", python_repr(self.stride),
        "padding", python_repr(self.padding), "dilation", python_repr(self.dilation),
        "ceil_mode", python_bool(self.ceil_mode))
    end
    return class
  end

  --- nn.MaxPool2d(kernel_size [, {stride = kernel_size, padding = 0, dilation = 1,
  -- return_indices = false, ceil_mode = false}]), or those positionally as
  -- PyTorch's (nn.MaxPool2d(3, 2, 1)): F.max_pool2d as a module; with
  -- return_indices its forward returns the output and the indices. Every
  -- pooling module takes its arguments either way.
  define_max_pool("MaxPool2d", 2)
  --- nn.MaxPool1d(kernel_size [, {stride, padding, dilation, return_indices,
  -- ceil_mode}]): F.max_pool1d as a module.
  define_max_pool("MaxPool1d", 1)

  ---------------------------------------------------------------------------
  -- Average pooling

  local function avg_pool(x, n, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override, op)
    check_tensor(x, op)
    local k = sizes_of(kernel_size, n, "kernel_size", op)
    local s = (stride == nil or (type(stride) == "table" and next(stride) == nil)) and k
      or sizes_of(stride, n, "stride", op)
    local p = sizes_of(padding == nil and 0 or padding, n, "padding", op)
    ceil_mode = flag(ceil_mode, false, "ceil_mode", op)
    count_include_pad = flag(count_include_pad, true, "count_include_pad", op)
    if divisor_override ~= nil and (math.type(divisor_override) ~= "integer" or divisor_override < 1) then
      raise(op .. ": divisor_override must be a positive integer, got " .. tostring(divisor_override))
    end
    if n == 1 then
      return as_1d(x, op, function(x2)
        return pool2d(x2, POOL_AVG, 1, k[1], 1, s[1], 0, p[1], 1, 1, ceil_mode, count_include_pad, divisor_override)
      end)
    end
    return pool2d(x, POOL_AVG, k[1], k[2], s[1], s[2], p[1], p[2], 1, 1, ceil_mode, count_include_pad, divisor_override)
  end

  --- nn.F.avg_pool2d(x, kernel_size [, stride = kernel_size, padding = 0,
  -- ceil_mode = false, count_include_pad = true, divisor_override]): the mean
  -- of each window over the last two dims of (C, H, W) or (N, C, H, W);
  -- count_include_pad counts the zero padding in the divisor, which
  -- divisor_override replaces. The arguments after kernel_size may also be a
  -- table of options, as max_pool2d's.
  local AVG_POOL_ARGUMENTS = {"kernel_size", "stride", "padding", "ceil_mode", "count_include_pad", "divisor_override"}
  function F.avg_pool2d(x, ...)
    local v = pool_options("avg_pool2d", AVG_POOL_ARGUMENTS, ...)
    return avg_pool(x, 2, v[1], v[2], v[3], v[4], v[5], v[6], "avg_pool2d")
  end

  --- nn.F.avg_pool1d(x, kernel_size [, stride, padding, ceil_mode,
  -- count_include_pad]): avg_pool2d's 1-d form over (C, L) or (N, C, L).
  local AVG_POOL1D_ARGUMENTS = {"kernel_size", "stride", "padding", "ceil_mode", "count_include_pad"}
  function F.avg_pool1d(x, ...)
    local v = pool_options("avg_pool1d", AVG_POOL1D_ARGUMENTS, ...)
    return avg_pool(x, 1, v[1], v[2], v[3], v[4], v[5], nil, "avg_pool1d")
  end

  local function define_avg_pool(name, n)
    local class = Module:extend(name)
    nn[name] = class
    local known = {"kernel_size", "stride", "padding", "ceil_mode", "count_include_pad"}
    if n == 2 then known[6] = "divisor_override" end
    function class:init(...)
      local v = pool_options(name, known, ...)
      sizes_of(v[1], n, "kernel_size", name)
      -- PyTorch's AvgPool1d keeps its sizes as 1-tuples, AvgPool2d as given
      local function keep(value) return n == 1 and {value} or value end
      self.kernel_size = keep(v[1])
      self.stride = keep(v[2] == nil and v[1] or v[2])
      self.padding = keep(v[3] == nil and 0 or v[3])
      self.ceil_mode = flag(v[4], false, "ceil_mode", name)
      self.count_include_pad = flag(v[5], true, "count_include_pad", name)
      self.divisor_override = v[6]
      sizes_of(v[2] == nil and v[1] or v[2], n, "stride", name)
      sizes_of(v[3] == nil and 0 or v[3], n, "padding", name)
    end
    function class:forward(x)
      local function first(value) return n == 1 and value[1] or value end
      return avg_pool(x, n, first(self.kernel_size), first(self.stride), first(self.padding), self.ceil_mode,
        self.count_include_pad, self.divisor_override, name)
    end
    function class:extra_repr()
      return kw("kernel_size", python_repr(self.kernel_size), "stride", python_repr(self.stride),
        "padding", python_repr(self.padding))
    end
    return class
  end

  --- nn.AvgPool2d(kernel_size [, {stride = kernel_size, padding = 0, ceil_mode = false,
  -- count_include_pad = true, divisor_override}]): F.avg_pool2d as a module.
  define_avg_pool("AvgPool2d", 2)
  --- nn.AvgPool1d(kernel_size [, {stride, padding, ceil_mode, count_include_pad}]):
  -- F.avg_pool1d as a module.
  define_avg_pool("AvgPool1d", 1)

  ---------------------------------------------------------------------------
  -- Adaptive pooling

  -- output_size: an integer or a table of n entries, each an integer or
  -- nil/false (keep the input's size there: PyTorch's None).
  local function adaptive_sizes(output_size, n, x, op)
    local out = {}
    for i = 1, n do
      local v = output_size
      if type(output_size) == "table" then v = output_size[i] end
      if v == nil or v == false then
        if type(output_size) ~= "table" then
          raise(op .. ": output_size must be an integer or a table of " .. n .. " integers, got nil")
        end
        v = x:size(x:dim() - n + i)
      end
      if math.type(v) ~= "integer" then
        raise(string.format("%s: output_size must be an integer or a table of %d integers, got %s", op, n, tostring(v)))
      end
      out[i] = v
    end
    return out
  end

  local function adaptive_pool(x, n, kind, output_size, return_indices, op)
    check_tensor(x, op)
    return_indices = flag(return_indices, false, "return_indices", op)
    if n == 1 then
      check_rank(x, op, {2, 3}, "2D (C, L) or 3D (N, C, L)")
      local o = adaptive_sizes(output_size, 1, x, op)
      return as_1d(x, op, function(x2) return pool2d(x2, kind, 1, o[1], nil, nil, nil, nil, nil, nil, nil, nil, nil, return_indices) end)
    end
    check_rank(x, op, {3, 4}, "3D (C, H, W) or 4D (N, C, H, W)")
    local o = adaptive_sizes(output_size, 2, x, op)
    return pool2d(x, kind, o[1], o[2], nil, nil, nil, nil, nil, nil, nil, nil, nil, return_indices)
  end

  --- nn.F.adaptive_avg_pool2d(x, output_size): averages over windows chosen
  -- so that the output has output_size (an integer, or {h, w} where nil
  -- keeps the input's size) over the last two dims.
  function F.adaptive_avg_pool2d(x, output_size)
    return adaptive_pool(x, 2, POOL_ADAPTIVE_AVG, output_size, false, "adaptive_avg_pool2d")
  end
  --- nn.F.adaptive_avg_pool1d(x, output_size): the 1-d form over (C, L) or (N, C, L).
  function F.adaptive_avg_pool1d(x, output_size)
    return adaptive_pool(x, 1, POOL_ADAPTIVE_AVG, output_size, false, "adaptive_avg_pool1d")
  end
  --- nn.F.adaptive_max_pool2d(x, output_size [, return_indices = false]): the
  -- largest value of each adaptive window (indices 1-based in each plane).
  function F.adaptive_max_pool2d(x, output_size, return_indices)
    return adaptive_pool(x, 2, POOL_ADAPTIVE_MAX, output_size, return_indices, "adaptive_max_pool2d")
  end
  --- nn.F.adaptive_max_pool1d(x, output_size [, return_indices = false]): the 1-d form.
  function F.adaptive_max_pool1d(x, output_size, return_indices)
    return adaptive_pool(x, 1, POOL_ADAPTIVE_MAX, output_size, return_indices, "adaptive_max_pool1d")
  end

  local function define_adaptive(name, n, kind)
    local class = Module:extend(name)
    nn[name] = class
    local is_max = kind == POOL_ADAPTIVE_MAX
    function class:init(output_size, return_indices)
      if type(output_size) == "table" and output_size.output_size ~= nil and return_indices == nil then
        local opts = nn._options(name, output_size, is_max and {"output_size", "return_indices"} or {"output_size"})
        output_size, return_indices = opts.output_size, opts.return_indices
      end
      if math.type(output_size) ~= "integer" and type(output_size) ~= "table" then
        raise(string.format("%s: output_size must be an integer or a table of %d integers, got %s", name, n, tostring(output_size)))
      end
      self.output_size = output_size
      self.return_indices = flag(return_indices, false, "return_indices", name)
    end
    function class:forward(x)
      return adaptive_pool(x, n, kind, self.output_size, self.return_indices, name)
    end
    function class:extra_repr()
      local v = self.output_size
      if type(v) == "table" then v = {n = n, table.unpack(v, 1, n)} end
      if type(v) == "table" then
        for i = 1, n do if v[i] == false then v[i] = nil end end
      end
      return "output_size=" .. python_repr(v)
    end
  end

  --- nn.AdaptiveAvgPool2d(output_size): F.adaptive_avg_pool2d as a module.
  define_adaptive("AdaptiveAvgPool2d", 2, POOL_ADAPTIVE_AVG)
  --- nn.AdaptiveAvgPool1d(output_size): F.adaptive_avg_pool1d as a module.
  define_adaptive("AdaptiveAvgPool1d", 1, POOL_ADAPTIVE_AVG)
  --- nn.AdaptiveMaxPool2d(output_size [, return_indices = false]): F.adaptive_max_pool2d as a module.
  define_adaptive("AdaptiveMaxPool2d", 2, POOL_ADAPTIVE_MAX)
  --- nn.AdaptiveMaxPool1d(output_size [, return_indices = false]): F.adaptive_max_pool1d as a module.
  define_adaptive("AdaptiveMaxPool1d", 1, POOL_ADAPTIVE_MAX)

  ---------------------------------------------------------------------------
  -- Batch normalisation over channels

  --- nn.F.batch_norm(x, running_mean, running_var [, weight, bias, training = false,
  -- momentum = 0.1, eps = 1e-5]): PyTorch's functional batch norm over every
  -- dim of x (N, C, ...) but C, in one fused pass; the running tensors (or
  -- nil) move by momentum towards the batch's statistics when training.
  function F.batch_norm(x, running_mean, running_var, weight, bias, training, momentum, eps)
    check_tensor(x, "batch_norm")
    return batch_norm(x, weight, bias, running_mean, running_var, training and true or false,
      momentum == nil and 0.1 or momentum, eps == nil and 1e-5 or eps)
  end

  -- BatchNorm1d's forward over the fused front, for any rank; `front` is
  -- batch_norm, or batch_norm_relu for the forward of the layer and a ReLU
  -- after it.
  local function batch_norm_forward(self, x, op, rank, names, front)
    check_rank(x, op, {rank}, names)
    if x:size(2) ~= self.num_features then
      raise(string.format("%s: expected %d channels, got %d (input of shape %s)", op, self.num_features,
        x:size(2), shape_text(x:size())))
    end
    local running_mean, running_var, use_batch_stats, factor = self:_statistics(x, op)
    return front(x, self.weight, self.bias, running_mean, running_var, use_batch_stats, factor, self.eps)
  end

  --- nn.BatchNorm2d(num_features [, {eps = 1e-5, momentum = 0.1, affine = true,
  -- track_running_stats = true, dtype = "float32"}]): batch normalisation
  -- (Ioffe & Szegedy, 2015) of each of the C channels of an (N, C, H, W)
  -- input over N, H and W: in training mode with the batch's mean and biased
  -- variance, moving running_mean and running_var (unbiased) by momentum
  -- (false: a cumulative average) and counting num_batches_tracked; in eval
  -- mode with the running statistics. BatchNorm1d's options and buffers.
  local BatchNorm2d = nn.BatchNorm1d:extend("BatchNorm2d")
  nn.BatchNorm2d = BatchNorm2d
  function BatchNorm2d:forward(x)
    return batch_norm_forward(self, x, "BatchNorm2d", 4, "4D (N, C, H, W)", batch_norm)
  end
  -- Sequential's forward of this layer and the ReLU after it, in one pass
  -- (nn_batch_norm_relu: the same bits as the two, relu's grad_fn).
  function BatchNorm2d:_forward_relu(x)
    return batch_norm_forward(self, x, "BatchNorm2d", 4, "4D (N, C, H, W)", batch_norm_relu)
  end

  --- nn.BatchNorm3d(num_features [, options]): BatchNorm2d over (N, C, D, H, W).
  local BatchNorm3d = nn.BatchNorm1d:extend("BatchNorm3d")
  nn.BatchNorm3d = BatchNorm3d
  function BatchNorm3d:forward(x)
    return batch_norm_forward(self, x, "BatchNorm3d", 5, "5D (N, C, D, H, W)", batch_norm)
  end

  ---------------------------------------------------------------------------
  -- Upsampling

  local linear_modes = {linear = 1, bilinear = 2}

  --- nn.F.interpolate(x [, size, scale_factor, mode = "nearest", align_corners]):
  -- resizes the last dims of (N, C, L) (modes nearest, linear) or
  -- (N, C, H, W) (nearest, bilinear) to size (an integer or a table), or
  -- by scale_factor (a number or a table), the output size being
  -- floor(input size * scale_factor). align_corners (linear modes only,
  -- default false) maps the corner pixels' centres onto each other.
  function F.interpolate(x, size, scale_factor, mode, align_corners)
    local op = "interpolate"
    check_tensor(x, op)
    mode = mode == nil and "nearest" or mode
    local dims = x:dim() - 2
    if dims ~= 1 and dims ~= 2 then
      raise(string.format("%s: expected a 3D (N, C, L) or 4D (N, C, H, W) input, got %dD input of shape %s",
        op, x:dim(), shape_text(x:size())))
    end
    if mode ~= "nearest" and linear_modes[mode] ~= dims then
      raise(string.format("%s: mode '%s' does not fit a %dD input (nearest, or %s)", op, tostring(mode), x:dim(),
        dims == 1 and "linear" or "bilinear"))
    end
    if align_corners ~= nil and mode == "nearest" then
      raise(op .. ": align_corners option can only be set with the interpolating modes: linear | bilinear")
    end
    align_corners = flag(align_corners, false, "align_corners", op)
    if (size == nil) == (scale_factor == nil) then
      raise(op .. ": give either size or scale_factor, not both nor neither")
    end
    local out, scales = {}, {}
    if size ~= nil then
      out = sizes_of(size, dims, "size", op)
    else
      for i = 1, dims do
        local s = type(scale_factor) == "table" and scale_factor[i] or scale_factor
        if type(s) ~= "number" or not (s > 0) then
          raise(op .. ": scale_factor must be a positive number or a table of them, got " .. tostring(s))
        end
        scales[i] = s
        out[i] = math.floor(x:size(2 + i) * s)
      end
    end
    local bilinear = mode ~= "nearest"
    if dims == 1 then
      return upsample2d(x:unsqueeze(3), bilinear, 1, out[1], 0, scales[1] or 0, align_corners):squeeze(3)
    end
    return upsample2d(x, bilinear, out[1], out[2], scales[1] or 0, scales[2] or 0, align_corners)
  end

  --- nn.Upsample({size =, scale_factor =, mode = "nearest", align_corners =}) or
  -- nn.Upsample(size, scale_factor, mode, align_corners): F.interpolate as a module.
  local Upsample = Module:extend("Upsample")
  nn.Upsample = Upsample
  function Upsample:init(size, scale_factor, mode, align_corners)
    if type(size) == "table" and scale_factor == nil and (size.size ~= nil or size.scale_factor ~= nil) then
      local opts = nn._options("Upsample", size, {"size", "scale_factor", "mode", "align_corners"})
      size, scale_factor, mode, align_corners = opts.size, opts.scale_factor, opts.mode, opts.align_corners
    end
    self.size = size
    -- PyTorch keeps a scale factor as a float (a table of them)
    if type(scale_factor) == "number" then
      scale_factor = scale_factor + 0.0
    elseif type(scale_factor) == "table" then
      local floats = {}
      for i, v in ipairs(scale_factor) do
        if type(v) ~= "number" then
          raise("Upsample: scale_factor must be a number or a table of numbers, got " .. type(v) .. " at " .. i)
        end
        floats[i] = v + 0.0
      end
      scale_factor = floats
    elseif scale_factor ~= nil then
      raise("Upsample: scale_factor must be a number or a table of numbers, got " .. type(scale_factor))
    end
    self.scale_factor = scale_factor
    self.mode = mode == nil and "nearest" or mode
    self.align_corners = align_corners
  end
  function Upsample:forward(x)
    return F.interpolate(x, self.size, self.scale_factor, self.mode, self.align_corners)
  end
  function Upsample:extra_repr()
    local info = self.scale_factor ~= nil and "scale_factor=" .. python_repr(self.scale_factor)
      or "size=" .. python_repr(self.size)
    return info .. ", mode=" .. self.mode
  end

  ---------------------------------------------------------------------------
  -- Normalisation through the batch-norm front

  local function affine_view(t, x)
    local shape = {1, x:size(2)}
    for _ = 3, x:dim() do shape[#shape + 1] = 1 end
    return t:view(shape)
  end

  -- A per-channel tensor a normalisation is given (weight, bias, a running
  -- statistic): nil, or a tensor of one element for each of x's channels.
  local function check_channels(t, what, x, op)
    if t == nil then return end
    if not nn.is_tensor(t) then
      raise(string.format("%s: %s must be a tensor, got %s", op, what, type(t)))
    end
    if t:dim() ~= 1 or t:size(1) ~= x:size(2) then
      raise(string.format("%s: expected %s to be a vector of size equal to the number of channels in " ..
        "input (%d), but got %s of shape %s and input of shape %s", op, what, x:size(2), what,
        shape_text(t:size()), shape_text(x:size())))
    end
  end

  --- nn.F.group_norm(x, num_groups [, weight, bias, eps = 1e-5]): normalises
  -- x (N, C, ...) over each group of C / num_groups channels and the other
  -- dims (Wu & He, 2018), then scales and shifts each channel.
  function F.group_norm(x, num_groups, weight, bias, eps)
    local op = "group_norm"
    check_tensor(x, op)
    if x:dim() < 2 then raise(op .. ": expected an input of 2 or more dims (N, C, ...), got " .. x:dim() .. "D") end
    local n, c = x:size(1), x:size(2)
    if math.type(num_groups) ~= "integer" or num_groups < 1 or c % num_groups ~= 0 then
      raise(string.format("%s: Expected number of channels in input (%d) to be divisible by num_groups, got %s",
        op, c, tostring(num_groups)))
    end
    check_channels(weight, "weight", x, op)
    check_channels(bias, "bias", x, op)
    local y = batch_norm(x:reshape({1, n * num_groups, -1}), nil, nil, nil, nil, true, 0, eps == nil and 1e-5 or eps)
    y = y:view(x:size())
    if weight ~= nil then y = y * affine_view(weight, x) end
    if bias ~= nil then y = y + affine_view(bias, x) end
    return y
  end

  --- nn.GroupNorm(num_groups, num_channels [, {eps = 1e-5, affine = true, dtype}]):
  -- F.group_norm with a learnable per-channel weight (ones) and bias (zeros).
  local GroupNorm = Module:extend("GroupNorm")
  nn.GroupNorm = GroupNorm
  function GroupNorm:init(num_groups, num_channels, opts)
    local op = "GroupNorm"
    opts = nn._options(op, opts, {"eps", "affine", "dtype"})
    -- in order, a missing one too (pairs would skip it)
    local given = {num_groups, num_channels}
    for i, what in ipairs {"num_groups", "num_channels"} do
      local v = given[i]
      if math.type(v) ~= "integer" or v < 1 then raise(op .. ": " .. what .. " must be a positive integer, got " .. tostring(v)) end
    end
    if num_channels % num_groups ~= 0 then raise(op .. ": num_channels must be divisible by num_groups") end
    self.num_groups, self.num_channels = num_groups, num_channels
    self.eps = opts.eps == nil and 1e-5 or opts.eps
    self.affine = flag(opts.affine, true, "affine", op)
    if self.affine then
      self.weight = nn.Parameter(nn.ones(num_channels, {dtype = opts.dtype}))
      self.bias = nn.Parameter(nn.zeros(num_channels, {dtype = opts.dtype}))
    else
      self:register_parameter("weight", nil)
      self:register_parameter("bias", nil)
    end
  end
  function GroupNorm:forward(x) return F.group_norm(x, self.num_groups, self.weight, self.bias, self.eps) end
  function GroupNorm:extra_repr()
    return string.format("%d, %d, eps=%s, affine=%s", self.num_groups, self.num_channels, python_number(self.eps),
      python_bool(self.affine))
  end

  --- nn.F.instance_norm(x [, running_mean, running_var, weight, bias,
  -- use_input_stats = true, momentum = 0.1, eps = 1e-5]): normalises each
  -- channel of each sample of x (N, C, ...) over its other dims (Ulyanov et
  -- al., 2016); the running statistics, when given, move by momentum
  -- towards the samples' average statistics.
  function F.instance_norm(x, running_mean, running_var, weight, bias, use_input_stats, momentum, eps)
    local op = "instance_norm"
    check_tensor(x, op)
    if x:dim() < 3 then raise(op .. ": expected an input of 3 or more dims (N, C, ...), got " .. x:dim() .. "D") end
    if use_input_stats == nil then use_input_stats = true end
    local n, c = x:size(1), x:size(2)
    check_channels(running_mean, "running_mean", x, op)
    check_channels(running_var, "running_var", x, op)
    check_channels(weight, "weight", x, op)
    check_channels(bias, "bias", x, op)
    -- ATen's _instance_norm: batch norm of (1, N C, ...) with the per-channel
    -- tensors repeated for each sample, the running statistics averaged back
    local function repeated(t) return t ~= nil and t:view({1, c}):expand({n, c}):reshape({n * c}) or nil end
    local rm, rv = repeated(running_mean), repeated(running_var)
    local y = batch_norm(x:reshape({1, n * c, -1}), repeated(weight), repeated(bias), rm, rv,
      use_input_stats and true or false, momentum == nil and 0.1 or momentum, eps == nil and 1e-5 or eps)
    if running_mean ~= nil and use_input_stats then
      nn.no_grad(function()
        running_mean:copy_(rm:view({n, c}):mean(1))
        running_var:copy_(rv:view({n, c}):mean(1))
      end)
    end
    return y:view(x:size())
  end

  local function define_instance_norm(name, rank)
    local class = Module:extend(name)
    nn[name] = class
    function class:init(num_features, opts)
      if math.type(num_features) ~= "integer" or num_features < 1 then
        raise(name .. ": num_features must be a positive integer, got " .. tostring(num_features))
      end
      opts = nn._options(name, opts, {"eps", "momentum", "affine", "track_running_stats", "dtype"})
      self.num_features = num_features
      self.eps = opts.eps == nil and 1e-5 or opts.eps
      self.momentum = opts.momentum == nil and 0.1 or opts.momentum
      self.affine = flag(opts.affine, false, "affine", name)
      self.track_running_stats = flag(opts.track_running_stats, false, "track_running_stats", name)
      if self.affine then
        self.weight = nn.Parameter(nn.ones(num_features, {dtype = opts.dtype}))
        self.bias = nn.Parameter(nn.zeros(num_features, {dtype = opts.dtype}))
      else
        self:register_parameter("weight", nil)
        self:register_parameter("bias", nil)
      end
      if self.track_running_stats then
        self:register_buffer("running_mean", nn.zeros(num_features, {dtype = opts.dtype}))
        self:register_buffer("running_var", nn.ones(num_features, {dtype = opts.dtype}))
        self:register_buffer("num_batches_tracked", nn.tensor(0, {dtype = "int64"}))
      else
        self:register_buffer("running_mean", nil)
        self:register_buffer("running_var", nil)
        self:register_buffer("num_batches_tracked", nil)
      end
    end
    function class:forward(x)
      check_rank(x, name, {rank, rank + 1}, rank == 2 and "2D (C, L) or 3D (N, C, L)" or "3D (C, H, W) or 4D (N, C, H, W)")
      local unbatched = x:dim() == rank
      if unbatched then x = x:unsqueeze(1) end
      if x:size(2) ~= self.num_features and (self.affine or self.track_running_stats) then
        raise(string.format("%s: expected input's size at dim=2 to match num_features (%d), but got: %d.",
          name, self.num_features, x:size(2)))
      end
      local y = F.instance_norm(x, self.running_mean, self.running_var, self.weight, self.bias,
        self.training or not self.track_running_stats, self.momentum, self.eps)
      if unbatched then y = y:squeeze(1) end
      return y
    end
    function class:extra_repr()
      return string.format("%d, eps=%s, momentum=%s, affine=%s, track_running_stats=%s", self.num_features,
        python_number(self.eps), python_number(self.momentum), python_bool(self.affine),
        python_bool(self.track_running_stats))
    end
  end

  --- nn.InstanceNorm1d(num_features [, {eps = 1e-5, momentum = 0.1, affine = false,
  -- track_running_stats = false, dtype}]): F.instance_norm over (N, C, L) or (C, L).
  define_instance_norm("InstanceNorm1d", 2)
  --- nn.InstanceNorm2d(num_features [, options]): F.instance_norm over (N, C, H, W) or (C, H, W).
  define_instance_norm("InstanceNorm2d", 3)

  --- nn.F.local_response_norm(x, size [, alpha = 1e-4, beta = 0.75, k = 1]):
  -- divides each element of x (N, C, ...) by (k + alpha / size * the sum of
  -- squares over size neighbouring channels)^beta (Krizhevsky et al., 2012).
  function F.local_response_norm(x, size, alpha, beta, k)
    local op = "local_response_norm"
    check_tensor(x, op)
    if x:dim() < 3 then
      raise(string.format("%s: expected 3D or higher dimensionality input (got %dD)", op, x:dim()))
    end
    if math.type(size) ~= "integer" or size < 1 then raise(op .. ": size must be a positive integer, got " .. tostring(size)) end
    alpha, beta, k = alpha or 1e-4, beta or 0.75, k or 1.0
    local n, c = x:size(1), x:size(2)
    -- the mean of the squares over a window of channels: an average pool
    -- with zero padding counted, size // 2 channels before each
    local squares = (x * x):reshape({n, 1, c, -1})
    local div = pool2d(squares, POOL_AVG, size, 1, 1, 1, size // 2, 0, 1, 1, false, true, nil)
    div = div:narrow(3, 1, c):reshape(x:size())
    return x / (div * alpha + k) ^ beta
  end

  --- nn.LocalResponseNorm(size [, alpha = 1e-4, beta = 0.75, k = 1]): F.local_response_norm as a module.
  local LocalResponseNorm = Module:extend("LocalResponseNorm")
  nn.LocalResponseNorm = LocalResponseNorm
  function LocalResponseNorm:init(size, alpha, beta, k)
    if math.type(size) ~= "integer" or size < 1 then
      raise("LocalResponseNorm: size must be a positive integer, got " .. tostring(size))
    end
    self.size, self.alpha, self.beta, self.k = size, alpha or 1e-4, beta or 0.75, k or 1.0
  end
  function LocalResponseNorm:forward(x) return F.local_response_norm(x, self.size, self.alpha, self.beta, self.k) end
  function LocalResponseNorm:extra_repr()
    return string.format("%d, alpha=%s, beta=%s, k=%s", self.size, python_number(self.alpha),
      python_number(self.beta), python_number(self.k + 0.0))
  end

  ---------------------------------------------------------------------------
  -- Max unpooling

  --- nn.F.max_unpool2d(x, indices, kernel_size [, stride = kernel_size, padding = 0,
  -- output_size]): puts each value of x (N, C, H, W) or (C, H, W) at the
  -- position in its plane that indices (max_pool2d's, 1-based) name, zeros
  -- elsewhere; the plane is (H - 1) stride - 2 padding + kernel_size, or
  -- output_size ({h, w}, or a full shape whose last two sizes count); those
  -- after kernel_size may be a table of options.
  local MAX_UNPOOL_ARGUMENTS = {"kernel_size", "stride", "padding", "output_size"}
  function F.max_unpool2d(x, indices, ...)
    local op = "max_unpool2d"
    local kernel_size, stride, padding, output_size = table.unpack(pool_options(op, MAX_UNPOOL_ARGUMENTS, ...), 1, 4)
    local rank = check_rank(x, op, {3, 4}, "3D (C, H, W) or 4D (N, C, H, W)")
    if not nn.is_tensor(indices) or indices.dtype ~= "int64" then
      raise(op .. ": indices must be an int64 tensor (max_pool2d's, with return_indices)")
    end
    if not indices:size() or #indices:size() ~= rank then
      raise(op .. ": indices must have the input's shape " .. shape_text(x:size()))
    end
    for d = 1, rank do
      if indices:size(d) ~= x:size(d) then raise(op .. ": indices must have the input's shape " .. shape_text(x:size())) end
    end
    local k = sizes_of(kernel_size, 2, "kernel_size", op)
    local s = stride == nil and k or sizes_of(stride, 2, "stride", op)
    local p = sizes_of(padding == nil and 0 or padding, 2, "padding", op)
    local h = (x:size(rank - 1) - 1) * s[1] - 2 * p[1] + k[1]
    local w = (x:size(rank) - 1) * s[2] - 2 * p[2] + k[2]
    if output_size ~= nil then
      if type(output_size) ~= "table" or #output_size < 2 then
        raise(op .. ": output_size must be a table {h, w} (or a full shape)")
      end
      h, w = output_size[#output_size - 1], output_size[#output_size]
    end
    if h < 1 or w < 1 then raise(string.format("%s: the output plane would be %dx%d", op, h, w)) end
    local lead = {}
    for d = 1, rank - 2 do lead[d] = x:size(d) end
    local plane = h * w
    local flat_shape = {table.unpack(lead)}
    flat_shape[#flat_shape + 1] = -1
    local flat_indices = indices:reshape(flat_shape)
    if flat_indices:numel() > 0 and (flat_indices:min():item() < 1 or flat_indices:max():item() > plane) then
      raise(string.format("%s: an index lies outside the %dx%d output plane (indices count from 1)", op, h, w))
    end
    local zeros_shape = {table.unpack(lead)}
    zeros_shape[#zeros_shape + 1] = plane
    local out = nn.zeros(zeros_shape, {dtype = x.dtype, device = x.device})
    out = out:scatter(rank - 1, flat_indices, x:reshape(flat_shape))
    local shape = {table.unpack(lead)}
    shape[#shape + 1], shape[#shape + 2] = h, w
    return out:view(shape)
  end

  --- nn.MaxUnpool2d(kernel_size [, {stride = kernel_size, padding = 0}]):
  -- F.max_unpool2d as a module: m(x, indices [, output_size]).
  local MaxUnpool2d = Module:extend("MaxUnpool2d")
  nn.MaxUnpool2d = MaxUnpool2d
  function MaxUnpool2d:init(...)
    local v = pool_options("MaxUnpool2d", {"kernel_size", "stride", "padding"}, ...)
    self.kernel_size = sizes_of(v[1], 2, "kernel_size", "MaxUnpool2d")
    self.stride = sizes_of(v[2] == nil and v[1] or v[2], 2, "stride", "MaxUnpool2d")
    self.padding = sizes_of(v[3] == nil and 0 or v[3], 2, "padding", "MaxUnpool2d")
  end
  function MaxUnpool2d:forward(x, indices, output_size)
    return F.max_unpool2d(x, indices, self.kernel_size, self.stride, self.padding, output_size)
  end
  function MaxUnpool2d:extra_repr()
    return kw("kernel_size", python_repr(self.kernel_size), "stride", python_repr(self.stride),
      "padding", python_repr(self.padding))
  end

  ---------------------------------------------------------------------------
  -- Channel dropout and alpha dropout

  local function check_p(p, op)
    if type(p) ~= "number" or not (p >= 0 and p <= 1) then
      raise(string.format("%s: dropout probability p must be a number between 0 and 1, got %s", op, tostring(p)))
    end
  end

  -- Keep masks drawn as nn.Dropout draws them (one float64 uniform per
  -- Bernoulli draw, kept below 1 - p: PyTorch's bernoulli_ after the same
  -- seed), of the given shape, on x's device.
  local function keep_mask(shape, p, x)
    local keep = nn.rand(shape, {dtype = "float64"}):lt(1 - p):to(x.dtype)
    if x.device ~= "cpu" then keep = keep:to(x.device) end
    return keep
  end

  -- ATen's feature dropout: one draw per (sample, channel), over every
  -- element of that channel; batched is the rank of a batched input.
  local function feature_dropout(x, p, training, inplace, op, batched)
    check_tensor(x, op)
    check_p(p, op)
    if not training or p == 0 or x:numel() == 0 then return x end
    local lead = x:dim() == batched and 2 or 1
    local shape = {}
    for d = 1, x:dim() do shape[d] = d <= lead and x:size(d) or 1 end
    local noise = nn.no_grad(function()
      if p == 1 then return nn.zeros(shape, {dtype = x.dtype, device = x.device}) end
      return keep_mask(shape, p, x):div_(nn.tensor(1 - p, {dtype = x.dtype, device = x.device}))
    end)
    if inplace then return x:mul_(noise) end
    return x * noise
  end

  local function dropout_rank(x, op, ranks, names)
    check_tensor(x, op)
    check_rank(x, op, ranks, names)
  end

  --- nn.F.dropout2d(x [, p = 0.5, training = true, inplace = false]): zeroes
  -- whole channels of (N, C, H, W) or (C, H, W) with probability p, scaling
  -- the others by 1 / (1 - p) (Tompson et al., 2015).
  function F.dropout2d(x, p, training, inplace)
    dropout_rank(x, "dropout2d", {3, 4}, "3D (C, H, W) or 4D (N, C, H, W)")
    return feature_dropout(x, p == nil and 0.5 or p, flag(training, true, "training", "dropout2d"),
      flag(inplace, false, "inplace", "dropout2d"), "dropout2d", 4)
  end

  --- nn.F.dropout1d(x [, p = 0.5, training = true, inplace = false]): dropout2d
  -- for (N, C, L) or (C, L).
  function F.dropout1d(x, p, training, inplace)
    dropout_rank(x, "dropout1d", {2, 3}, "2D (C, L) or 3D (N, C, L)")
    return feature_dropout(x, p == nil and 0.5 or p, flag(training, true, "training", "dropout1d"),
      flag(inplace, false, "inplace", "dropout1d"), "dropout1d", 3)
  end

  -- SELU's fixed point (Klambauer et al., 2017): alpha' = -lambda alpha
  local SELU_ALPHA = 1.7580993408473766

  --- nn.F.alpha_dropout(x [, p = 0.5, training = false, inplace = false]):
  -- dropout for SELU networks: dropped elements take SELU's negative
  -- saturation value and an affine correction keeps mean and variance.
  function F.alpha_dropout(x, p, training, inplace)
    local op = "alpha_dropout"
    check_tensor(x, op)
    p = p == nil and 0.5 or p
    check_p(p, op)
    training = flag(training, false, "training", op)
    inplace = flag(inplace, false, "inplace", op)
    if not training or p == 0 or x:numel() == 0 then return x end
    if p == 1 then
      if inplace then return x:mul_(0) end
      return x * 0
    end
    -- ATen's _dropout_impl with alpha_dropout
    local a = 1 / math.sqrt((SELU_ALPHA * SELU_ALPHA * p + 1) * (1 - p))
    local noise, shift = nn.no_grad(function()
      local keep = keep_mask(x:size(), p, x)
      return keep * a, (keep - 1) * (SELU_ALPHA * a) + SELU_ALPHA * a * p
    end)
    if inplace then return x:mul_(noise):add_(shift) end
    return x * noise + shift
  end

  local function define_dropout(name, fn)
    local class = Module:extend(name)
    nn[name] = class
    function class:init(p, inplace)
      if type(p) == "table" and inplace == nil then
        local opts = nn._options(name, p, {"p", "inplace"})
        p, inplace = opts.p, opts.inplace
      end
      if p == nil then p = 0.5 end
      check_p(p, name)
      self.p = p
      self.inplace = flag(inplace, false, "inplace", name)
    end
    function class:forward(x) return fn(x, self.p, self.training, self.inplace) end
    function class:extra_repr()
      return "p=" .. python_number(self.p) .. ", inplace=" .. python_bool(self.inplace)
    end
  end

  --- nn.Dropout2d([p = 0.5 [, inplace = false]]): F.dropout2d as a module (training mode only).
  define_dropout("Dropout2d", F.dropout2d)
  --- nn.Dropout1d([p = 0.5 [, inplace = false]]): F.dropout1d as a module (training mode only).
  define_dropout("Dropout1d", F.dropout1d)
  --- nn.AlphaDropout([p = 0.5 [, inplace = false]]): F.alpha_dropout as a module (training mode only).
  define_dropout("AlphaDropout", F.alpha_dropout)
end

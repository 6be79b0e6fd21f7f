-- Convolution and padding: nn.Conv1d, nn.Conv2d, nn.ConvTranspose2d,
-- nn.Unfold, nn.Fold, the padding modules, and their functional forms
-- nn.F.conv1d, conv2d, conv_transpose2d, unfold, fold and pad. Arguments,
-- defaults, initial weights and print(model) follow PyTorch 1.13
-- (torch/nn/modules/conv.py, fold.py, padding.py).
--
-- The convolutions are one C front over 2-D images (engine/src/conv.c: the
-- patches of a chunk of samples, then one GEMM per group); a 1-D
-- convolution is a 2-D one of height 1, an unbatched input a batch of one.
-- Padding other than zeros pads the input first, as PyTorch does.
return function(nn)
  local raise = nn._raise
  local Module, F, C = nn.Module, nn.F, nn._C

  ---------------------------------------------------------------------------
  -- Arguments: an int or a table of `dims` ints, as PyTorch's _pair/_single

  local function tuple(v, dims, op, what, least)
    local t = {}
    if math.type(v) == "integer" then
      for i = 1, dims do t[i] = v end
    elseif type(v) == "table" and not nn.is_tensor(v) and #v == dims then
      for i = 1, dims do
        if math.type(v[i]) ~= "integer" then
          raise(string.format("%s: %s must hold integers, got %s", op, what, tostring(v[i])))
        end
        t[i] = v[i]
      end
    else
      raise(string.format("%s: %s must be an integer or a table of %d integers, got %s", op, what, dims,
        type(v) == "table" and "a table of " .. #v or tostring(v)))
    end
    for i = 1, dims do
      if t[i] < least then
        raise(string.format("%s: %s must be %s, got %d", op, what, least > 0 and "positive" or "non-negative", t[i]))
      end
    end
    return t
  end

  local function python_tuple(t)
    if #t == 1 then return "(" .. t[1] .. ",)" end
    return "(" .. table.concat(t, ", ") .. ")"
  end

  local function check_tensor(x, op, what)
    if not nn.is_tensor(x) then
      raise(string.format("%s: %s must be a tensor, got %s", op, what or "input", type(x)))
    end
  end

  -- The padding of "same": the total d (k - 1) split with the odd one after,
  -- as PyTorch's _conv_forward does.
  local function same_padding(kernel, dilation)
    local before, after = {}, {}
    for i = 1, #kernel do
      local total = dilation[i] * (kernel[i] - 1)
      before[i] = total // 2
      after[i] = total - before[i]
    end
    return before, after
  end

  -- A padding argument: an int, a table, "same" or "valid"; returns the
  -- pads before and after each dim (and the text to print).
  local function read_padding(padding, dims, op, kernel, dilation, stride)
    if padding == "valid" then
      local z = {}
      for i = 1, dims do z[i] = 0 end
      return z, z
    elseif padding == "same" then
      for i = 1, dims do
        if stride and stride[i] ~= 1 then raise(op .. ": padding='same' is not supported for strided convolutions") end
      end
      return same_padding(kernel, dilation)
    elseif type(padding) == "string" then
      raise(string.format("%s: invalid padding string '%s', should be one of {'valid', 'same'}", op, padding))
    end
    local p = tuple(padding, dims, op, "padding", 0)
    return p, p
  end

  ---------------------------------------------------------------------------
  -- F.pad

  local pad_modes = {constant = true, reflect = true, replicate = true, circular = true}

  -- The source index (1-based) of position i (1-based, -before+1 .. size+after)
  local source_of = {
    reflect = function(i, size) -- mirrored around the edges, edges not repeated
      if i < 1 then return 2 - i end
      if i > size then return 2 * size - i end
      return i
    end,
    replicate = function(i, size) return math.max(1, math.min(size, i)) end,
    circular = function(i, size) return (i - 1) % size + 1 end,
  }

  --- F.pad(x, pad [, mode = "constant" [, value = 0]]): pads the last dims of x,
  -- pad = {left, right [, top, bottom [, front, back]]} from the last dim
  -- backwards (PyTorch's order); mode "constant", "reflect", "replicate" or
  -- "circular". A negative pad crops (constant mode).
  --   F.pad(x, {1, 1, 2, 2}, "reflect")
  function F.pad(x, pad, mode, value)
    check_tensor(x, "pad")
    mode = mode or "constant"
    if not pad_modes[mode] then
      raise("pad: mode must be 'constant', 'reflect', 'replicate' or 'circular', got " .. tostring(mode))
    end
    if type(pad) ~= "table" or #pad % 2 ~= 0 or #pad == 0 then
      raise("pad: pad must be a table of an even number of integers (left, right, top, bottom, ...)")
    end
    local dims = #pad // 2
    if dims > x:dim() then
      raise(string.format("pad: %d pads (%d dims) for a %d-D input", #pad, dims, x:dim()))
    end
    for i = 1, #pad do
      if math.type(pad[i]) ~= "integer" then raise("pad: pad must hold integers, got " .. tostring(pad[i])) end
    end
    if mode ~= "constant" then
      if value ~= nil and value ~= 0 then
        raise("pad: padding mode '" .. mode .. "' doesn't take in value argument")
      end
      if x:dim() < dims + 1 or x:dim() > dims + 2 then
        raise(string.format("pad: %s padding of %d dims expects a %d-D or %d-D input, got %d-D", mode, dims,
          dims + 1, dims + 2, x:dim()))
      end
    end
    value = value or 0
    local y = x
    for k = 1, dims do
      local d = x:dim() - k + 1
      local before, after = pad[2 * k - 1], pad[2 * k]
      local size = y:size(d)
      if size + before + after < 0 or (mode ~= "constant" and size + before + after < 1) then
        raise(string.format("pad: padding (%d, %d) of dim %d (size %d) leaves nothing", before, after, d, size))
      end
      if mode == "constant" then
        if before < 0 then y, size, before = y:narrow(d, 1 - before, size + before), size + before, 0 end
        if after < 0 then y, size, after = y:narrow(d, 1, size + after), size + after, 0 end
        local parts = {}
        local function block(n)
          local shape = y:size()
          shape[d] = n
          parts[#parts + 1] = nn.full(shape, value, {dtype = y.dtype, device = y.device})
        end
        if before > 0 then block(before) end
        parts[#parts + 1] = y
        if after > 0 then block(after) end
        if #parts > 1 then y = nn.cat(parts, d) end
      else
        if mode == "reflect" and (before >= size or after >= size) then
          raise(string.format("pad: padding size should be less than the corresponding input dimension, " ..
            "but got padding (%d, %d) at dimension %d of input of size %d", before, after, d, size))
        end
        if mode == "circular" and (before > size or after > size) then
          raise(string.format("pad: circular padding (%d, %d) may be at most the size %d of dimension %d",
            before, after, size, d))
        end
        local index, source = {}, source_of[mode]
        for i = 1 - before, size + after do index[#index + 1] = source(i, size) end
        y = y:index_select(d, nn.tensor(index, {dtype = "int64", device = y.device}))
      end
    end
    return y
  end

  ---------------------------------------------------------------------------
  -- F.conv1d, F.conv2d, F.conv_transpose2d

  -- f(x, w, b, opts) or f(x, w, opts)
  local function split_bias(b, opts)
    if opts == nil and type(b) == "table" and not nn.is_tensor(b) then return nil, b end
    return b, opts
  end

  -- x as a batch (N, C, H, W) and whether it was unbatched
  local function as_batch(x, dims, op)
    check_tensor(x, op)
    local rank = x:dim()
    if rank ~= dims + 1 and rank ~= dims + 2 then
      raise(string.format("%s: expected a %d-D (unbatched) or %d-D (batched) input, got %d-D", op, dims + 1,
        dims + 2, rank))
    end
    local unbatched = rank == dims + 1
    if unbatched then x = x:unsqueeze(1) end
    if dims == 1 then x = x:unsqueeze(3) end
    return x, unbatched
  end

  local function as_output(y, dims, unbatched)
    if dims == 1 then y = y:squeeze(3) end
    if unbatched then y = y:squeeze(1) end
    return y
  end

  local function conv(op, dims, x, w, b, opts)
    b, opts = split_bias(b, opts)
    opts = nn._options(op, opts, {"stride", "padding", "dilation", "groups"})
    check_tensor(w, op, "weight")
    if b ~= nil then check_tensor(b, op, "bias") end
    if w:dim() ~= dims + 2 then
      raise(string.format("%s: the weight must be %d-D, got %d-D", op, dims + 2, w:dim()))
    end
    local stride = tuple(opts.stride or 1, dims, op, "stride", 1)
    local dilation = tuple(opts.dilation or 1, dims, op, "dilation", 1)
    local kernel = {}
    for i = 1, dims do kernel[i] = w:size(2 + i) end
    local before, after = read_padding(opts.padding or 0, dims, op, kernel, dilation, stride)
    local groups = opts.groups or 1
    if math.type(groups) ~= "integer" or groups < 1 then
      raise(op .. ": groups must be a positive integer, got " .. tostring(groups))
    end
    local xb, unbatched = as_batch(x, dims, op)
    if dims == 1 then
      w = w:unsqueeze(3)
      stride, dilation = {1, stride[1]}, {1, dilation[1]}
      before, after = {0, before[1]}, {0, after[1]}
    end
    local y = C.conv2d(op, xb, w, b, stride[1], stride[2], before[1], before[2], after[1], after[2],
      dilation[1], dilation[2], groups)
    return as_output(y, dims, unbatched)
  end

  --- F.conv2d(x, weight [, bias] [, {stride = 1, padding = 0, dilation = 1, groups = 1}]):
  -- 2-D convolution (cross-correlation, as PyTorch) of x (N, C, H, W) or
  -- (C, H, W) by weight (O, C / groups, kh, kw); padding is an int, a pair,
  -- "same" or "valid".
  function F.conv2d(x, weight, bias, opts) return conv("conv2d", 2, x, weight, bias, opts) end
  --- F.conv1d(x, weight [, bias] [, {stride = 1, padding = 0, dilation = 1, groups = 1}]):
  -- 1-D convolution of x (N, C, L) or (C, L) by weight (O, C / groups, k).
  function F.conv1d(x, weight, bias, opts) return conv("conv1d", 1, x, weight, bias, opts) end

  --- F.conv_transpose2d(x, weight [, bias] [, {stride = 1, padding = 0, output_padding = 0, groups = 1, dilation = 1}]):
  -- the transposed convolution (the gradient of conv2d for its input) of x
  -- (N, Cin, H, W) by weight (Cin, Cout / groups, kh, kw).
  function F.conv_transpose2d(x, weight, bias, opts)
    local op = "conv_transpose2d"
    bias, opts = split_bias(bias, opts)
    opts = nn._options(op, opts, {"stride", "padding", "output_padding", "groups", "dilation"})
    check_tensor(weight, op, "weight")
    if bias ~= nil then check_tensor(bias, op, "bias") end
    if weight:dim() ~= 4 then raise(string.format("%s: the weight must be 4-D, got %d-D", op, weight:dim())) end
    local stride = tuple(opts.stride or 1, 2, op, "stride", 1)
    local padding = tuple(opts.padding or 0, 2, op, "padding", 0)
    local output_padding = tuple(opts.output_padding or 0, 2, op, "output_padding", 0)
    local dilation = tuple(opts.dilation or 1, 2, op, "dilation", 1)
    local groups = opts.groups or 1
    if math.type(groups) ~= "integer" or groups < 1 then
      raise(op .. ": groups must be a positive integer, got " .. tostring(groups))
    end
    local xb, unbatched = as_batch(x, 2, op)
    local y = C.conv_transpose2d(op, xb, weight, bias, stride[1], stride[2], padding[1], padding[2],
      output_padding[1], output_padding[2], dilation[1], dilation[2], groups)
    return as_output(y, 2, unbatched)
  end

  ---------------------------------------------------------------------------
  -- F.unfold, F.fold

  local function patch_options(op, kernel_size, opts)
    opts = nn._options(op, opts, {"dilation", "padding", "stride"})
    return tuple(kernel_size, 2, op, "kernel_size", 1), tuple(opts.dilation or 1, 2, op, "dilation", 1),
      tuple(opts.padding or 0, 2, op, "padding", 0), tuple(opts.stride or 1, 2, op, "stride", 1)
  end

  --- F.unfold(x, kernel_size [, {dilation = 1, padding = 0, stride = 1}]): the
  -- sliding blocks of x (N, C, H, W) as columns (N, C kh kw, L), PyTorch's im2col.
  function F.unfold(x, kernel_size, opts)
    check_tensor(x, "unfold")
    local k, d, p, s = patch_options("unfold", kernel_size, opts)
    local unbatched = x:dim() == 3
    if unbatched then x = x:unsqueeze(1) end
    local y = C.unfold(x, k[1], k[2], d[1], d[2], p[1], p[2], s[1], s[2])
    return unbatched and y:squeeze(1) or y
  end

  --- F.fold(x, output_size, kernel_size [, {dilation = 1, padding = 0, stride = 1}]):
  -- sums columns (N, C kh kw, L) back into (N, C, output_size), F.unfold's
  -- adjoint (overlapping blocks add up).
  function F.fold(x, output_size, kernel_size, opts)
    check_tensor(x, "fold")
    local k, d, p, s = patch_options("fold", kernel_size, opts)
    local o = tuple(output_size, 2, "fold", "output_size", 1)
    local unbatched = x:dim() == 2
    if unbatched then x = x:unsqueeze(1) end
    local y = C.fold(x, o[1], o[2], k[1], k[2], d[1], d[2], p[1], p[2], s[1], s[2])
    return unbatched and y:squeeze(1) or y
  end

  ---------------------------------------------------------------------------
  -- Modules

  local padding_modes = {zeros = true, reflect = true, replicate = true, circular = true}

  -- What Conv1d, Conv2d and ConvTranspose2d share (PyTorch's _ConvNd).
  local function conv_init(self, name, dims, transposed, in_channels, out_channels, kernel_size, opts)
    local known = transposed and {"stride", "padding", "output_padding", "groups", "bias", "dilation", "padding_mode", "dtype"}
      or {"stride", "padding", "dilation", "groups", "bias", "padding_mode", "dtype"}
    opts = nn._options(name, opts, known)
    if math.type(in_channels) ~= "integer" or in_channels < 1 then
      raise(name .. ": in_channels must be a positive integer, got " .. tostring(in_channels))
    end
    if math.type(out_channels) ~= "integer" or out_channels < 1 then
      raise(name .. ": out_channels must be a positive integer, got " .. tostring(out_channels))
    end
    local groups = opts.groups or 1
    if math.type(groups) ~= "integer" or groups < 1 then
      raise(name .. ": groups must be a positive integer, got " .. tostring(groups))
    end
    if in_channels % groups ~= 0 then
      raise(string.format("%s: in_channels (%d) must be divisible by groups (%d)", name, in_channels, groups))
    end
    if out_channels % groups ~= 0 then
      raise(string.format("%s: out_channels (%d) must be divisible by groups (%d)", name, out_channels, groups))
    end
    local padding_mode = opts.padding_mode or "zeros"
    if not padding_modes[padding_mode] then
      raise(name .. ": padding_mode must be 'zeros', 'reflect', 'replicate' or 'circular', got " .. tostring(padding_mode))
    end
    if transposed and padding_mode ~= "zeros" then
      raise(name .. ": only 'zeros' padding mode is supported for " .. name)
    end
    local bias = opts.bias
    if bias == nil then bias = true end
    if type(bias) ~= "boolean" then raise(name .. ": bias must be a boolean, got " .. type(bias)) end
    self.in_channels, self.out_channels, self.groups = in_channels, out_channels, groups
    self.kernel_size = tuple(kernel_size, dims, name, "kernel_size", 1)
    self.stride = tuple(opts.stride or 1, dims, name, "stride", 1)
    self.dilation = tuple(opts.dilation or 1, dims, name, "dilation", 1)
    self.padding_mode, self.transposed = padding_mode, transposed
    local padding = opts.padding or 0
    if type(padding) == "string" then
      if transposed then raise(name .. ": padding must be an integer or a table of integers") end
      read_padding(padding, dims, name, self.kernel_size, self.dilation, self.stride)
      self.padding = padding
    else
      self.padding = tuple(padding, dims, name, "padding", 0)
    end
    self.output_padding = tuple(opts.output_padding or 0, dims, name, "output_padding", 0)
    local shape = transposed and {in_channels, out_channels // groups} or {out_channels, in_channels // groups}
    for i = 1, dims do shape[#shape + 1] = self.kernel_size[i] end
    local dtype = opts.dtype or "float32"
    self.weight = nn.Parameter(nn.empty(shape, {dtype = dtype}))
    if bias then
      self.bias = nn.Parameter(nn.empty(out_channels, {dtype = dtype}))
    else
      self:register_parameter("bias", nil)
    end
    self:reset_parameters()
  end

  -- PyTorch's _ConvNd.reset_parameters is Linear's: Kaiming uniform with
  -- a = sqrt(5), the bias uniform in +-1/sqrt(fan_in), fan_in from the weight.
  local conv_reset = nn.Linear.reset_parameters

  local function all_equal(t, v)
    for i = 1, #t do if t[i] ~= v then return false end end
    return true
  end

  local function conv_repr(self)
    local s = string.format("%d, %d, kernel_size=%s, stride=%s", self.in_channels, self.out_channels,
      python_tuple(self.kernel_size), python_tuple(self.stride))
    if type(self.padding) == "string" then
      s = s .. ", padding=" .. self.padding
    elseif not all_equal(self.padding, 0) then
      s = s .. ", padding=" .. python_tuple(self.padding)
    end
    if not all_equal(self.dilation, 1) then s = s .. ", dilation=" .. python_tuple(self.dilation) end
    if not all_equal(self.output_padding, 0) then s = s .. ", output_padding=" .. python_tuple(self.output_padding) end
    if self.groups ~= 1 then s = s .. ", groups=" .. self.groups end
    if not self.bias then s = s .. ", bias=False" end
    if self.padding_mode ~= "zeros" then s = s .. ", padding_mode=" .. self.padding_mode end
    return s
  end

  -- The forward of Conv1d and Conv2d: a padding mode other than zeros pads
  -- the input first (PyTorch's _reversed_padding_repeated_twice), then a
  -- convolution without padding.
  local function conv_forward(self, x, dims, fn)
    local opts = {stride = self.stride, dilation = self.dilation, groups = self.groups, padding = self.padding}
    if self.padding_mode ~= "zeros" then
      local before, after
      if type(self.padding) == "string" then
        before, after = read_padding(self.padding, dims, self.__name, self.kernel_size, self.dilation)
      else
        before, after = self.padding, self.padding
      end
      local pad = {}
      for i = dims, 1, -1 do
        pad[#pad + 1] = before[i]
        pad[#pad + 1] = after[i]
      end
      check_tensor(x, self.__name)
      if x:dim() == dims + 1 or x:dim() == dims + 2 then x = F.pad(x, pad, self.padding_mode) end
      opts.padding = 0
    end
    return fn(x, self.weight, self.bias, opts)
  end

  local function conv_module(name, dims, fn)
    local cls = Module:extend(name)
    nn[name] = cls
    function cls:init(in_channels, out_channels, kernel_size, opts)
      conv_init(self, name, dims, false, in_channels, out_channels, kernel_size, opts)
    end
    cls.reset_parameters = conv_reset
    cls.extra_repr = conv_repr
    function cls:forward(x) return conv_forward(self, x, dims, fn) end
    return cls
  end

  --- nn.Conv2d(in_channels, out_channels, kernel_size [, {stride = 1, padding = 0, dilation = 1,
  -- groups = 1, bias = true, padding_mode = "zeros", dtype = "float32"}]): a 2-D convolution
  -- layer over (N, C, H, W) or (C, H, W); padding an int, a pair, "same" or
  -- "valid"; padding_mode "zeros", "reflect", "replicate" or "circular".
  -- m:reset_parameters() draws the weights again as at construction.
  --   local conv = nn.Conv2d(1, 8, 3, {padding = 1})
  conv_module("Conv2d", 2, F.conv2d)
  --- nn.Conv1d(in_channels, out_channels, kernel_size [, {stride = 1, padding = 0, dilation = 1,
  -- groups = 1, bias = true, padding_mode = "zeros", dtype = "float32"}]): a 1-D convolution
  -- layer over (N, C, L) or (C, L).
  conv_module("Conv1d", 1, F.conv1d)

  --- nn.ConvTranspose2d(in_channels, out_channels, kernel_size [, {stride = 1, padding = 0,
  -- output_padding = 0, groups = 1, bias = true, dilation = 1, dtype = "float32"}]): the
  -- transposed convolution (a learned upsampling); its output is
  -- (H - 1) stride - 2 padding + dilation (kernel - 1) + output_padding + 1 high.
  local ConvTranspose2d = Module:extend("ConvTranspose2d")
  nn.ConvTranspose2d = ConvTranspose2d
  function ConvTranspose2d:init(in_channels, out_channels, kernel_size, opts)
    conv_init(self, "ConvTranspose2d", 2, true, in_channels, out_channels, kernel_size, opts)
  end
  ConvTranspose2d.reset_parameters = conv_reset
  ConvTranspose2d.extra_repr = conv_repr
  function ConvTranspose2d:forward(x)
    return F.conv_transpose2d(x, self.weight, self.bias, {stride = self.stride, padding = self.padding,
      output_padding = self.output_padding, groups = self.groups, dilation = self.dilation})
  end

  -- Python's repr of an argument as given: an int, or a tuple
  local function given_repr(v)
    if type(v) == "table" then return python_tuple(v) end
    return tostring(v)
  end

  --- nn.Unfold(kernel_size [, {dilation = 1, padding = 0, stride = 1}]): F.unfold as a module.
  local Unfold = Module:extend("Unfold")
  nn.Unfold = Unfold
  function Unfold:init(kernel_size, opts)
    opts = nn._options("Unfold", opts, {"dilation", "padding", "stride"})
    patch_options("Unfold", kernel_size, opts)
    self.kernel_size, self.dilation = kernel_size, opts.dilation or 1
    self.padding, self.stride = opts.padding or 0, opts.stride or 1
  end
  function Unfold:forward(x)
    return F.unfold(x, self.kernel_size, {dilation = self.dilation, padding = self.padding, stride = self.stride})
  end
  function Unfold:extra_repr()
    return string.format("kernel_size=%s, dilation=%s, padding=%s, stride=%s", given_repr(self.kernel_size),
      given_repr(self.dilation), given_repr(self.padding), given_repr(self.stride))
  end

  --- nn.Fold(output_size, kernel_size [, {dilation = 1, padding = 0, stride = 1}]): F.fold as a module.
  local Fold = Module:extend("Fold")
  nn.Fold = Fold
  function Fold:init(output_size, kernel_size, opts)
    opts = nn._options("Fold", opts, {"dilation", "padding", "stride"})
    patch_options("Fold", kernel_size, opts)
    tuple(output_size, 2, "Fold", "output_size", 1)
    self.output_size, self.kernel_size, self.dilation = output_size, kernel_size, opts.dilation or 1
    self.padding, self.stride = opts.padding or 0, opts.stride or 1
  end
  function Fold:forward(x)
    return F.fold(x, self.output_size, self.kernel_size,
      {dilation = self.dilation, padding = self.padding, stride = self.stride})
  end
  function Fold:extra_repr()
    return string.format("output_size=%s, kernel_size=%s, dilation=%s, padding=%s, stride=%s",
      given_repr(self.output_size), given_repr(self.kernel_size), given_repr(self.dilation),
      given_repr(self.padding), given_repr(self.stride))
  end

  -- The padding modules: padding an int (every side) or a table of 2 dims
  -- entries, PyTorch's (left, right[, top, bottom]).
  local function pad_module(name, mode, dims, doc)
    local cls = Module:extend(name)
    nn[name] = cls
    cls.__doc = doc
    function cls:init(padding, value)
      if mode ~= "constant" and value ~= nil then
        raise(nn._too_many_arguments(name, 1, "padding", 2))
      end
      if mode == "constant" and name ~= "ZeroPad2d" then
        if type(value) ~= "number" then raise(name .. ": value must be a number, got " .. tostring(value)) end
      elseif value ~= nil then
        raise(nn._too_many_arguments(name, 1, "padding", 2))
      end
      self.padding = tuple(padding, 2 * dims, name, "padding", -math.huge)
      self.value = mode == "constant" and (value or 0) or nil
    end
    function cls:forward(x) return F.pad(x, self.padding, mode, self.value) end
    function cls:extra_repr()
      local s = python_tuple(self.padding)
      if mode == "constant" and name ~= "ZeroPad2d" then
        return "padding=" .. s .. ", value=" .. nn._python_number(self.value)
      end
      return s
    end
    return cls
  end
  --- nn.ZeroPad2d(padding): pads (N, C, H, W) or (C, H, W) with zeros; padding an int or {left, right, top, bottom}.
  pad_module("ZeroPad2d", "constant", 2, "pads the last two dims with zeros")
  --- nn.ConstantPad1d(padding, value), nn.ConstantPad2d(padding, value): pads with value.
  pad_module("ConstantPad1d", "constant", 1, "pads the last dim with a value")
  pad_module("ConstantPad2d", "constant", 2, "pads the last two dims with a value")
  --- nn.ReflectionPad1d(padding), nn.ReflectionPad2d(padding): pads with the input mirrored at its edges.
  pad_module("ReflectionPad1d", "reflect", 1, "pads the last dim with its reflection")
  pad_module("ReflectionPad2d", "reflect", 2, "pads the last two dims with their reflection")
  --- nn.ReplicationPad1d(padding), nn.ReplicationPad2d(padding): pads with the edge values repeated.
  pad_module("ReplicationPad1d", "replicate", 1, "pads the last dim with its edge values")
  pad_module("ReplicationPad2d", "replicate", 2, "pads the last two dims with their edge values")
end

-- Layers: Linear and the activations, as modules.
return function(nn)
  local raise = nn._raise
  local Module, F = nn.Module, nn.F

  local function check_count(value, what, op)
    if math.type(value) ~= "integer" or value < 0 then
      raise(string.format("%s: %s must be a non-negative integer, got %s", op, what, tostring(value)))
    end
  end

  --- nn.Linear(in_features, out_features [, bias = true] [, {bias =, dtype = "float32"}]):
  -- y = x W^T + b, initialised as PyTorch does (Kaiming uniform, a = sqrt(5)).
  -- bias is a boolean: nn.Linear(2, 1, false) or nn.Linear(2, 1, {bias = false}).
  local Linear = Module:extend("Linear")
  nn.Linear = Linear

  function Linear:init(in_features, out_features, bias, opts)
    if type(bias) == "table" and opts == nil then bias, opts = nil, bias end
    opts = nn._options("Linear", opts, {"bias", "dtype"})
    if bias == nil then bias = opts.bias end
    if bias == nil then bias = true end
    if type(bias) ~= "boolean" then
      raise("Linear: bias must be a boolean (true or false, as PyTorch's bias=False), got " ..
        (type(bias) == "string" and "'" .. bias .. "'" or type(bias)))
    end
    check_count(in_features, "in_features", "Linear")
    check_count(out_features, "out_features", "Linear")
    self.in_features, self.out_features = in_features, out_features
    local dtype = opts.dtype or "float32"
    self.weight = nn.Parameter(nn.empty(out_features, in_features, {dtype = dtype}))
    if bias then
      self.bias = nn.Parameter(nn.empty(out_features, {dtype = dtype}))
    else
      self:register_parameter("bias", nil)
    end
    self:reset_parameters()
  end

--- m:reset_parameters(): draws the weights again as at construction.
  function Linear:reset_parameters()
    nn.init.kaiming_uniform_(self.weight, {a = math.sqrt(5)})
    if self.bias then
      local fan_in = nn.init.calculate_fan_in_and_fan_out(self.weight)
      local bound = fan_in > 0 and 1 / math.sqrt(fan_in) or 0
      nn.init.uniform_(self.bias, -bound, bound)
    end
  end

  function Linear:forward(x) return F.linear(x, self.weight, self.bias) end
  Linear._native = nn._C.native_op("linear") -- Sequential may run it without a Lua call

  function Linear:extra_repr()
    return string.format("in_features=%d, out_features=%d, bias=%s", self.in_features,
      self.out_features, self.bias ~= nil and "True" or "False") -- as PyTorch prints it
  end

  -- Activations: a module per function, each a one-liner over the tensor method.
  local function activation(name, method, doc)
    local cls = Module:extend(name)
    local fn = nn.Tensor[method]
    cls.forward = function(_, x) return fn(x) end
    cls._native = nn._C.native_op(method)
    cls.__doc = doc
    nn[name] = cls
    return cls
  end

--- nn.Sigmoid(): 1 / (1 + exp(-x)), as F.sigmoid(x) and x:sigmoid().
  activation("Sigmoid", "sigmoid", "1 / (1 + exp(-x))")
--- nn.Tanh(): tanh(x), as F.tanh(x) and x:tanh().
  activation("Tanh", "tanh", "tanh(x)")
--- nn.ReLU(): max(0, x), as F.relu(x) and x:relu().
  activation("ReLU", "relu", "max(0, x)")
--- nn.Step(): 1 where x > 0, else 0 (gradient 0), as F.step(x) and x:step().
  activation("Step", "step", "Heaviside step: 1 for x > 0, else 0 (its derivative is 0)")

  --- nn.Identity(): returns its input.
  local Identity = Module:extend("Identity")
  nn.Identity = Identity
  function Identity:forward(x) return x end
end

-- nn.init: in-place initialisers with PyTorch's formulas and order of
-- operations (torch/nn/init.py, PyTorch 1.13), so that after the same
-- nn.manual_seed a tensor starts from the very numbers PyTorch's would:
-- the generator is PyTorch's draw for draw, and each initialiser here
-- computes its bound or std exactly as init.py does before one uniform_ or
-- normal_ call.
--
-- Every initialiser fills its tensor in place without recording a graph,
-- and returns it.
return function(nn)
  local raise = nn._raise
--- nn.init: in-place initialisers (uniform_, normal_, xavier_uniform_,
-- kaiming_uniform_...) with PyTorch's formulas; each returns its tensor.
--   nn.init.xavier_uniform_(layer.weight)
  local init = {}
  nn.init = init

  local function check_tensor(t, op)
    if not nn.is_tensor(t) then raise(op .. ": expected a tensor, got " .. type(t)) end
  end

  local function check_number(v, what, op)
    if type(v) ~= "number" then
      raise(string.format("%s: %s must be a number, got %s", op, what, type(v)))
    end
  end

  -- calculate_gain's table (init.py): the functions whose gain is 1.
  local unit_gain = {
    linear = true, identity = true, sigmoid = true,
    conv1d = true, conv2d = true, conv3d = true,
    conv_transpose1d = true, conv_transpose2d = true, conv_transpose3d = true,
  }

  -- The gain, or an error naming op.
  local function gain_of(nonlinearity, param, op)
    if unit_gain[nonlinearity] then return 1 end
    if nonlinearity == "tanh" then return 5.0 / 3 end
    if nonlinearity == "relu" then return math.sqrt(2.0) end
    if nonlinearity == "leaky_relu" then
      local negative_slope = 0.01
      if param ~= nil then
        if type(param) ~= "number" then
          raise(op .. ": negative_slope " .. tostring(param) .. " is not a valid number")
        end
        negative_slope = param
      end
      return math.sqrt(2.0 / (1 + negative_slope ^ 2))
    end
    -- PyTorch's empirical value (pytorch/pytorch#50664)
    if nonlinearity == "selu" then return 3.0 / 4 end
    raise(op .. ": unsupported nonlinearity " ..
      (type(nonlinearity) == "string" and "'" .. nonlinearity .. "'" or tostring(nonlinearity)))
  end

  --- nn.init.calculate_gain(nonlinearity [, param]): the recommended gain for
  -- a nonlinearity (a string, PyTorch's functional name): 1 for "linear",
  -- "identity", "sigmoid", "conv1d/2d/3d" and "conv_transpose1d/2d/3d"; 5/3
  -- for "tanh"; sqrt(2) for "relu"; sqrt(2 / (1 + slope^2)) for
  -- "leaky_relu", where param is the negative slope (default 0.01); 3/4 for
  -- "selu". Anything else is an error.
  function init.calculate_gain(nonlinearity, param)
    return gain_of(nonlinearity, param, "calculate_gain")
  end

  -- fan_in = size(2) * receptive field, fan_out = size(1) * receptive field,
  -- where the receptive field is the product of the sizes after the second
  -- (init.py, _calculate_fan_in_and_fan_out).
  local function fans(t, op)
    check_tensor(t, op)
    if t:dim() < 2 then
      raise(string.format("%s: fan in and fan out can not be computed for a tensor with fewer " ..
        "than 2 dimensions (got %d)", op, t:dim()))
    end
    local receptive_field = 1
    for d = 3, t:dim() do receptive_field = receptive_field * t:size(d) end
    return t:size(2) * receptive_field, t:size(1) * receptive_field
  end

  --- fan_in, fan_out = nn.init.calculate_fan_in_and_fan_out(t): for a weight
  -- of at least 2 dimensions (out x in x kernel...).
  function init.calculate_fan_in_and_fan_out(t)
    return fans(t, "calculate_fan_in_and_fan_out")
  end

  -- fan_in or fan_out as mode says ("fan_in" or "fan_out", any case).
  local function correct_fan(t, mode, op)
    if type(mode) ~= "string" or (mode:lower() ~= "fan_in" and mode:lower() ~= "fan_out") then
      raise(string.format("%s: mode %s not supported, use 'fan_in' or 'fan_out'", op,
        type(mode) == "string" and "'" .. mode .. "'" or tostring(mode)))
    end
    local fan_in, fan_out = fans(t, op)
    if mode:lower() == "fan_in" then return fan_in end
    return fan_out
  end

  local function has_zero_size(t)
    for d = 1, t:dim() do
      if t:size(d) == 0 then return true end
    end
    return false
  end

  local function fill_uniform(t, a, b) return nn.no_grad(function() return t:uniform_(a, b) end) end
  local function fill_normal(t, mean, std) return nn.no_grad(function() return t:normal_(mean, std) end) end

  --- nn.init.uniform_(t [, a = 0, b = 1]): fills t with draws from U(a, b).
  function init.uniform_(t, a, b)
    check_tensor(t, "uniform_")
    a, b = a == nil and 0.0 or a, b == nil and 1.0 or b
    check_number(a, "a", "uniform_")
    check_number(b, "b", "uniform_")
    return fill_uniform(t, a, b)
  end

  --- nn.init.normal_(t [, mean = 0, std = 1]): fills t with draws from N(mean, std^2).
  function init.normal_(t, mean, std)
    check_tensor(t, "normal_")
    mean, std = mean == nil and 0.0 or mean, std == nil and 1.0 or std
    check_number(mean, "mean", "normal_")
    check_number(std, "std", "normal_")
    if not (std >= 0) then raise("normal_: std must be non-negative, got " .. tostring(std)) end
    return fill_normal(t, mean, std)
  end

  --- nn.init.constant_(t, value): fills t with value.
  function init.constant_(t, value)
    check_tensor(t, "constant_")
    check_number(value, "value", "constant_")
    return nn.no_grad(function() return t:fill_(value) end)
  end

  --- nn.init.zeros_(t), nn.init.ones_(t)
  function init.zeros_(t)
    check_tensor(t, "zeros_")
    return nn.no_grad(function() return t:fill_(0) end)
  end
  function init.ones_(t)
    check_tensor(t, "ones_")
    return nn.no_grad(function() return t:fill_(1) end)
  end

  -- gain defaults to 1 and must be a number.
  local function xavier_std(t, gain, op)
    local fan_in, fan_out = fans(t, op)
    if gain == nil then gain = 1.0 end
    check_number(gain, "gain", op)
    return gain * math.sqrt(2.0 / (fan_in + fan_out))
  end

  --- nn.init.xavier_uniform_(t [, gain = 1]): Glorot & Bengio (2010), U(-a, a)
  -- with a = gain * sqrt(6 / (fan_in + fan_out)). t needs 2 or more dimensions.
  function init.xavier_uniform_(t, gain)
    local std = xavier_std(t, gain, "xavier_uniform_")
    if has_zero_size(t) then return t end
    local a = math.sqrt(3.0) * std -- the uniform bound with that std
    return fill_uniform(t, -a, a)
  end

  --- nn.init.xavier_normal_(t [, gain = 1]): Glorot & Bengio (2010),
  -- N(0, std^2) with std = gain * sqrt(2 / (fan_in + fan_out)).
  function init.xavier_normal_(t, gain)
    local std = xavier_std(t, gain, "xavier_normal_")
    if has_zero_size(t) then return t end
    return fill_normal(t, 0.0, std)
  end

  -- Kaiming's options: a table {a =, mode =, nonlinearity =}, or PyTorch's
  -- positional order (a, mode, nonlinearity).
  local function kaiming_std(t, op, a, mode, nonlinearity)
    check_tensor(t, op)
    if type(a) == "table" then
      if mode ~= nil or nonlinearity ~= nil then
        raise(op .. ": give the options as a table or positionally (a, mode, nonlinearity), not both")
      end
      local opts = nn._options(op, a, {"a", "mode", "nonlinearity"})
      a, mode, nonlinearity = opts.a, opts.mode, opts.nonlinearity
    end
    if a == nil then a = 0 end
    check_number(a, "a", op)
    if mode == nil then mode = "fan_in" end
    if nonlinearity == nil then nonlinearity = "leaky_relu" end
    local fan = correct_fan(t, mode, op)
    return gain_of(nonlinearity, a, op) / math.sqrt(fan)
  end

  --- nn.init.kaiming_uniform_(t [, {a = 0, mode = "fan_in", nonlinearity = "leaky_relu"}]):
  -- He et al. (2015), U(-bound, bound) with bound = gain * sqrt(3 / fan),
  -- gain = calculate_gain(nonlinearity, a) and fan the mode's fan ("fan_in"
  -- keeps the forward pass's variance, "fan_out" the backward's). The
  -- options may also be given positionally: kaiming_uniform_(t, a, mode, nonlinearity).
  -- A tensor with a zero size is left as it is, as in PyTorch.
  function init.kaiming_uniform_(t, a, mode, nonlinearity)
    check_tensor(t, "kaiming_uniform_")
    if has_zero_size(t) then return t end
    local std = kaiming_std(t, "kaiming_uniform_", a, mode, nonlinearity)
    local bound = math.sqrt(3.0) * std -- the uniform bound with that std
    return fill_uniform(t, -bound, bound)
  end

  --- nn.init.kaiming_normal_(t [, {a = 0, mode = "fan_in", nonlinearity = "leaky_relu"}]):
  -- He et al. (2015), N(0, std^2) with std = gain / sqrt(fan); options as
  -- kaiming_uniform_'s.
  function init.kaiming_normal_(t, a, mode, nonlinearity)
    check_tensor(t, "kaiming_normal_")
    if has_zero_size(t) then return t end
    local std = kaiming_std(t, "kaiming_normal_", a, mode, nonlinearity)
    return fill_normal(t, 0.0, std)
  end
end

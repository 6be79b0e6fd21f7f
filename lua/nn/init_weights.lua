-- nn.init: in-place initialisers, with PyTorch's formulas (torch/nn/init.py)
-- so that a seeded model starts from the same numbers.
return function(nn)
  local raise = nn._raise
  local init = {}
  nn.init = init

  local function check_tensor(t, op)
    if not nn.is_tensor(t) then raise(op .. ": expected a tensor, got " .. type(t)) end
  end

  --- nn.init.calculate_gain(nonlinearity [, param]): the recommended gain.
  function init.calculate_gain(nonlinearity, param)
    local linear = {linear = true, identity = true, conv1d = true, conv2d = true, conv3d = true, sigmoid = true}
    if linear[nonlinearity] then return 1 end
    if nonlinearity == "tanh" then return 5 / 3 end
    if nonlinearity == "relu" then return math.sqrt(2.0) end
    if nonlinearity == "leaky_relu" then
      local slope = param == nil and 0.01 or param
      if type(slope) ~= "number" then raise("calculate_gain: negative_slope must be a number") end
      return math.sqrt(2.0 / (1 + slope ^ 2))
    end
    if nonlinearity == "selu" then return 3.0 / 4 end
    raise("calculate_gain: unsupported nonlinearity '" .. tostring(nonlinearity) .. "'")
  end

  --- fan_in, fan_out = nn.init.calculate_fan_in_and_fan_out(t)
  function init.calculate_fan_in_and_fan_out(t)
    check_tensor(t, "calculate_fan_in_and_fan_out")
    if t:dim() < 2 then
      raise("calculate_fan_in_and_fan_out: needs a tensor of at least 2 dimensions")
    end
    local receptive = 1
    for d = 3, t:dim() do receptive = receptive * t:size(d) end
    return t:size(2) * receptive, t:size(1) * receptive
  end

  --- nn.init.uniform_(t [, a = 0, b = 1]) and normal_(t [, mean = 0, std = 1])
  function init.uniform_(t, a, b)
    check_tensor(t, "uniform_")
    return nn.no_grad(function() return t:uniform_(a or 0, b or 1) end)
  end
  function init.normal_(t, mean, std)
    check_tensor(t, "normal_")
    return nn.no_grad(function() return t:normal_(mean or 0, std or 1) end)
  end
  --- nn.init.constant_(t, v), zeros_(t), ones_(t)
  function init.constant_(t, v)
    check_tensor(t, "constant_")
    return nn.no_grad(function() return t:fill_(v) end)
  end
  function init.zeros_(t) return init.constant_(t, 0) end
  function init.ones_(t) return init.constant_(t, 1) end

  --- nn.init.kaiming_uniform_(t [, {a = 0, mode = "fan_in", nonlinearity = "leaky_relu"}])
  function init.kaiming_uniform_(t, opts)
    check_tensor(t, "kaiming_uniform_")
    opts = opts or {}
    local fan_in, fan_out = init.calculate_fan_in_and_fan_out(t)
    local fan = (opts.mode or "fan_in") == "fan_in" and fan_in or fan_out
    local gain = init.calculate_gain(opts.nonlinearity or "leaky_relu", opts.a or 0)
    local std = gain / math.sqrt(fan)
    local bound = math.sqrt(3.0) * std
    return init.uniform_(t, -bound, bound)
  end
end

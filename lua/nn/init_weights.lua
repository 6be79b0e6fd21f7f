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
  ---------------------------------------------------------------------------
  -- Issue 13's initialisers, each drawing what torch/nn/init.py draws.

  local function number_or(v, default, what, op)
    if v == nil then return default end
    check_number(v, what, op)
    return v
  end

  --- nn.init.trunc_normal_(t [, mean = 0, std = 1, a = -2, b = 2]): draws from
  -- N(mean, std^2) truncated to [a, b], by the inverse CDF of a uniform draw
  -- (PyTorch's method, so the same numbers after the same seed).
  --   nn.init.trunc_normal_(layer.weight, 0, 0.02)
  function init.trunc_normal_(t, mean, std, a, b)
    check_tensor(t, "trunc_normal_")
    mean = number_or(mean, 0.0, "mean", "trunc_normal_")
    std = number_or(std, 1.0, "std", "trunc_normal_")
    a = number_or(a, -2.0, "a", "trunc_normal_")
    b = number_or(b, 2.0, "b", "trunc_normal_")
    if not (std > 0) then raise("trunc_normal_: std must be positive, got " .. tostring(std)) end
    if not (a < b) then raise(string.format("trunc_normal_: a (%s) must be below b (%s)", tostring(a), tostring(b))) end
    local function cdf(x) return (1 + nn.tensor(x / math.sqrt(2), {dtype = "float64"}):erf():item()) / 2 end
    local lo, hi = cdf((a - mean) / std), cdf((b - mean) / std)
    return nn.no_grad(function()
      t:uniform_(2 * lo - 1, 2 * hi - 1)
      t:erfinv_()
      t:mul_(std * math.sqrt(2))
      t:add_(mean)
      return t:clamp_(a, b)
    end)
  end

  --- nn.init.eye_(t): a 2-dimensional t set to the identity (ones on the diagonal).
  --   nn.init.eye_(nn.empty(3, 5))
  function init.eye_(t)
    check_tensor(t, "eye_")
    if t:dim() ~= 2 then raise("eye_: only 2-dimensional tensors are supported, got " .. t:dim() .. " dimensions") end
    return nn.no_grad(function()
      t:copy_(nn.eye(t:size(1), t:size(2), {dtype = t.dtype}))
      return t
    end)
  end

  --- nn.init.dirac_(t [, groups = 1]): a convolution weight (3, 4 or 5 dims:
  -- out, in, kernel...) that passes its input through: 1 at the kernel's
  -- centre where out channel = in channel (within each of groups), 0 elsewhere.
  --   nn.init.dirac_(nn.empty(8, 8, 3, 3))
  function init.dirac_(t, groups)
    check_tensor(t, "dirac_")
    groups = groups == nil and 1 or groups
    if math.type(groups) ~= "integer" or groups < 1 then raise("dirac_: groups must be a positive integer, got " .. tostring(groups)) end
    local dims = t:dim()
    if dims < 3 or dims > 5 then raise("dirac_: only 3, 4 and 5-dimensional tensors are supported, got " .. dims) end
    local size = t:size()
    if size[1] % groups ~= 0 then raise(string.format("dirac_: dim 1 (%d) must be divisible by groups (%d)", size[1], groups)) end
    local per_group = size[1] // groups
    local min_dim = math.min(per_group, size[2])
    return nn.no_grad(function()
      t:zero_()
      for g = 0, groups - 1 do
        for d = 1, min_dim do
          local cell = t[g * per_group + d][d]
          for k = 3, dims do cell = cell[size[k] // 2 + 1] end
          cell:fill_(1)
        end
      end
      return t
    end)
  end

  --- nn.init.sparse_(t, sparsity [, std = 0.01]): a 2-dimensional t drawn from
  -- N(0, std^2), then in each column ceil(sparsity * rows) entries, chosen by
  -- a random permutation, set to 0 (Martens, 2010).
  --   nn.init.sparse_(nn.empty(10, 4), 0.3)
  function init.sparse_(t, sparsity, std)
    check_tensor(t, "sparse_")
    if t:dim() ~= 2 then raise("sparse_: only 2-dimensional tensors are supported, got " .. t:dim() .. " dimensions") end
    check_number(sparsity, "sparsity", "sparse_")
    if sparsity < 0 or sparsity > 1 then raise("sparse_: sparsity must be in [0, 1], got " .. tostring(sparsity)) end
    std = number_or(std, 0.01, "std", "sparse_")
    local rows, cols = t:size(1), t:size(2)
    local num_zeros = math.ceil(sparsity * rows)
    return nn.no_grad(function()
      t:normal_(0, std)
      for col = 1, cols do
        local order = nn.randperm(rows)
        local column = t:narrow(2, col, 1)
        for i = 1, num_zeros do column[order[i]:item()]:fill_(0) end -- randperm counts from 1
      end
      return t
    end)
  end

  -- The Q of the reduced QR of a (m x n, m >= n) whose R has a positive
  -- diagonal, by Gram-Schmidt orthogonalised twice (Giraud et al., "twice is
  -- enough"): that Q is unique, so it is LAPACK's Householder Q after
  -- PyTorch's sign correction, to rounding.
  local function orthonormal_columns(a)
    local m, n = a:size(1), a:size(2)
    local q = nn.zeros(m, n, {dtype = "float64"})
    for j = 1, n do
      local v = a:narrow(2, j, 1)
      if j > 1 then
        local previous = q:narrow(2, 1, j - 1)
        for _ = 1, 2 do v = v - previous:matmul(previous:t():matmul(v)) end
      end
      q:narrow(2, j, 1):copy_(v / v:norm():item())
    end
    return q
  end

  --- nn.init.orthogonal_(t [, gain = 1]): a (semi-)orthogonal matrix (Saxe et
  -- al., 2013): t viewed as (size(1), rest) gets the Q factor of a matrix of
  -- normal draws (PyTorch's draws and sign convention: R's diagonal positive),
  -- times gain. t needs at least 2 dims.
  --   nn.init.orthogonal_(lstm.weight_hh_l0)
  function init.orthogonal_(t, gain)
    check_tensor(t, "orthogonal_")
    gain = number_or(gain, 1, "gain", "orthogonal_")
    if t:dim() < 2 then raise("orthogonal_: only tensors with 2 or more dimensions are supported") end
    if t:numel() == 0 then return t end
    local rows = t:size(1)
    local cols = t:numel() // rows
    return nn.no_grad(function()
      local flattened = nn.empty(rows, cols, {dtype = t.dtype}):normal_(0, 1):to("float64")
      if rows < cols then flattened = flattened:t() end
      local q = orthonormal_columns(flattened)
      if rows < cols then q = q:t() end
      t:copy_((q * gain):reshape(t:size()))
      return t
    end)
  end
end

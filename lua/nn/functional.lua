-- nn.F: the stateless functions behind the modules.
return function(nn)
  local raise = nn._raise
  local C = nn._C
--- nn.F: the stateless functions behind the modules (F.linear, F.relu,
-- F.mse_loss, F.cross_entropy...): what a module's forward calls.
--   local y = nn.F.relu(nn.F.linear(x, w, b))
  local F = {}
  nn.F = F

  local function reduction_of(opts, op)
    if opts == nil then return "mean" end
    if type(opts) == "string" then return opts end
    if type(opts) == "table" then return opts.reduction or "mean" end
    raise(op .. ": options must be a table like {reduction = 'sum'}, got " .. type(opts))
  end

  --- F.linear(x, weight [, bias]): x weight^T + bias.
  F.linear = C.linear
  --- F.sigmoid(x), F.tanh(x), F.relu(x), F.step(x): activations.
  local Tensor = nn.Tensor
  function F.sigmoid(x) return Tensor.sigmoid(x) end
  function F.tanh(x) return Tensor.tanh(x) end
  function F.relu(x) return Tensor.relu(x) end
  function F.step(x) return Tensor.step(x) end
  --- F.mse_loss(input, target [, {reduction = "mean"}]): nn.MSELoss as a function.
  function F.mse_loss(input, target, opts) return C.mse_loss(input, target, reduction_of(opts, "mse_loss")) end
  --- F.binary_cross_entropy(input, target [, {weight =, reduction = "mean"}]): nn.BCELoss as a function.
  function F.binary_cross_entropy(input, target, opts)
    local weight = type(opts) == "table" and opts.weight or nil
    return C.binary_cross_entropy(input, target, weight, reduction_of(opts, "binary_cross_entropy"))
  end
end

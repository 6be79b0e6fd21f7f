-- Losses as modules: criterion(input, target).
return function(nn)
  local raise = nn._raise
  local Module, C = nn.Module, nn._C
  local reductions = {mean = true, sum = true, none = true}

  local function read_options(self, opts, name)
    if opts ~= nil and type(opts) ~= "table" then
      raise(name .. ": options must be a table like {reduction = 'sum'}, got " .. type(opts))
    end
    opts = opts or {}
    local r = opts.reduction or "mean"
    if not reductions[r] then
      raise(name .. ": reduction must be 'mean', 'sum' or 'none', got '" .. tostring(r) .. "'")
    end
    self.reduction = r
    return opts
  end

  --- nn.MSELoss({reduction = "mean"}): mean of (input - target)^2.
  local MSELoss = Module:extend("MSELoss")
  nn.MSELoss = MSELoss
  function MSELoss:init(opts) read_options(self, opts, "MSELoss") end
  function MSELoss:forward(input, target) return C.mse_loss(input, target, self.reduction) end
  function MSELoss:extra_repr() return "reduction=" .. self.reduction end

  --- nn.BCELoss({weight =, reduction = "mean"}): binary cross-entropy of
  -- probabilities, logs clamped at -100 as in PyTorch.
  local BCELoss = Module:extend("BCELoss")
  nn.BCELoss = BCELoss
  function BCELoss:init(opts)
    opts = read_options(self, opts, "BCELoss")
    if opts.weight ~= nil and not nn.is_tensor(opts.weight) then
      raise("BCELoss: weight must be a tensor, got " .. type(opts.weight))
    end
    self.weight = opts.weight
  end
  function BCELoss:forward(input, target)
    return C.binary_cross_entropy(input, target, self.weight, self.reduction)
  end
  function BCELoss:extra_repr() return "reduction=" .. self.reduction end
end

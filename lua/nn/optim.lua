-- nn.optim: optimizers over a list of parameters. The update itself is
-- one fused C loop per parameter.
return function(nn)
  local raise = nn._raise
  local C = nn._C
  local optim = {}
  nn.optim = optim

  local function param_list(params, name)
    if nn.is_module(params) then params = params:parameters() end
    if type(params) ~= "table" or #params == 0 then
      raise(name .. ": params must be a non-empty list of tensors (model:parameters())")
    end
    for i, p in ipairs(params) do
      if not nn.is_tensor(p) then raise(string.format("%s: params[%d] is a %s, not a tensor", name, i, type(p))) end
      if not p.requires_grad then raise(string.format("%s: params[%d] does not require grad", name, i)) end
    end
    return params
  end

  local function number_option(opts, key, default, name, check, why)
    local v = opts[key]
    if v == nil then v = default end
    if type(v) ~= "number" or v ~= v or not check(v) then
      raise(string.format("%s: %s must be %s, got %s", name, key, why, tostring(v)))
    end
    return v
  end
  local function non_negative(v) return v >= 0 end

  local Optimizer = {}
  Optimizer.__index = Optimizer
  optim.Optimizer = Optimizer

  --- opt:zero_grad([set_to_none = false])
  function Optimizer:zero_grad(set_to_none)
    for _, group in ipairs(self.param_groups) do C.zero_grads(group.params, set_to_none) end
  end

  ---------------------------------------------------------------------------
  --- nn.optim.SGD(params, {lr, momentum = 0, dampening = 0, weight_decay = 0,
  -- nesterov = false, maximize = false})
  local SGD = setmetatable({}, {__index = Optimizer})
  SGD.__index = SGD
  optim.SGD = SGD

  setmetatable(SGD, {__index = Optimizer, __call = function(cls, params, opts)
    local name = "SGD"
    params = param_list(params, name)
    if type(opts) ~= "table" then raise("SGD: options must be a table like {lr = 0.1}") end
    if opts.lr == nil then raise("SGD: lr is required") end
    local group = {
      params = params,
      lr = number_option(opts, "lr", nil, name, non_negative, "a non-negative number"),
      momentum = number_option(opts, "momentum", 0, name, non_negative, "a non-negative number"),
      dampening = number_option(opts, "dampening", 0, name, function() return true end, "a number"),
      weight_decay = number_option(opts, "weight_decay", 0, name, non_negative, "a non-negative number"),
      nesterov = opts.nesterov and true or false,
      maximize = opts.maximize and true or false,
    }
    if group.nesterov and (group.momentum <= 0 or group.dampening ~= 0) then
      raise("SGD: nesterov needs a positive momentum and zero dampening")
    end
    return setmetatable({param_groups = {group}, buffers = {{}}}, cls)
  end})

  --- opt:step([closure]): one update; closure() recomputes and returns the loss.
  function SGD:step(closure)
    local loss
    if closure then loss = nn.enable_grad(closure) end
    for i, g in ipairs(self.param_groups) do
      C.sgd_step(g.params, self.buffers[i], g.lr, g.momentum, g.dampening, g.weight_decay,
                 g.nesterov, g.maximize)
    end
    return loss
  end

  --- opt:state_dict() / opt:load_state_dict(sd): hyperparameters and buffers.
  function SGD:state_dict()
    local groups, state = {}, {}
    for i, g in ipairs(self.param_groups) do
      local copy = {}
      for k, v in pairs(g) do if k ~= "params" then copy[k] = v end end
      groups[i] = copy
      state[i] = {}
      for j, b in pairs(self.buffers[i]) do state[i][j] = b:clone() end
    end
    return {param_groups = groups, state = state}
  end

  function SGD:load_state_dict(sd)
    if type(sd) ~= "table" or type(sd.param_groups) ~= "table" or #sd.param_groups ~= #self.param_groups then
      raise("load_state_dict: the state has a different number of parameter groups")
    end
    for i, g in ipairs(self.param_groups) do
      for k, v in pairs(sd.param_groups[i]) do g[k] = v end
      self.buffers[i] = {}
      for j, b in pairs(sd.state and sd.state[i] or {}) do self.buffers[i][j] = b:clone() end
    end
  end
end

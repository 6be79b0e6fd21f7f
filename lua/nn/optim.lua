-- nn.optim: optimizers over parameter groups, as in torch.optim.
--
--   local opt = nn.optim.Adam(model:parameters(), {lr = 1e-3})
--   opt:zero_grad(); loss:backward(); opt:step()
--
-- Each step is one fused C loop per parameter (engine/src/optim.c) that
-- follows PyTorch 1.13's single-tensor implementation operation for
-- operation. Hyperparameters live in opt.param_groups[i] (lr, betas, ...),
-- where learning-rate schedulers and users may change them between steps.
-- Per-parameter state (step counts, moment buffers) lives in
-- opt.state[i][j] for parameter j of group i, under PyTorch's names.
return function(nn)
  local raise = nn._raise
  local C = nn._C
--- nn.optim: optimizers (SGD, Adam, AdamW, RMSprop, Adagrad) built on
-- nn.optim.Optimizer, and the schedulers in nn.optim.lr_scheduler.
--   local opt = nn.optim.Adam(model:parameters(), {lr = 1e-3})
--   opt:zero_grad(); loss:backward(); opt:step()
  local optim = {}
  nn.optim = optim

  ---------------------------------------------------------------------------
  -- Options: each optimizer lists {name, default, kind}; a default of nil
  -- means the option is required. Kinds check a value and say what it must be.
  local function is_number(v) return type(v) == "number" and v == v end
  local kinds = {
    number = function(v) return is_number(v) or nil, "a number" end,
    non_negative = function(v) return is_number(v) and v >= 0 or nil, "a non-negative number" end,
    boolean = function(v) return type(v) == "boolean" or nil, "a boolean (true or false)" end,
  }

  -- Checks betas = {beta1, beta2}, each in [0, 1), as torch.optim.Adam does.
  local function check_betas(name, v)
    if type(v) ~= "table" or nn.is_tensor(v) or #v ~= 2 then
      raise(string.format("%s: betas must be a table of two numbers {beta1, beta2}, got %s", name, tostring(v)))
    end
    for i = 1, 2 do
      local b = v[i]
      if not (is_number(b) and b >= 0 and b < 1) then
        raise(string.format("%s: betas[%d] must be a number in [0, 1), got %s", name, i, tostring(b)))
      end
    end
  end

  local function copy_value(v)
    if type(v) == "table" and not nn.is_tensor(v) then
      local c = {}
      for k, x in pairs(v) do c[k] = copy_value(x) end
      return c
    end
    return v
  end

  -- Checks a parameter group's hyperparameters; partial (the constructor's
  -- options) lets a required one be missing, for the groups to give.
  local function check_group(cls, g, partial)
    local name = cls.__name
    for _, o in ipairs(cls._options) do
      local key, kind = o[1], o[3]
      local v = g[key]
      if v == nil then
        if not partial then raise(string.format("%s: %s is required", name, key)) end
      elseif kind == "betas" then
        check_betas(name, v)
      else
        local ok, what = kinds[kind](v)
        if not ok then raise(string.format("%s: %s must be %s, got %s", name, key, what, tostring(v))) end
      end
    end
    if cls._check then cls._check(g, name, partial) end
  end

  -- A list of parameters from a module, a tensor or a list of tensors.
  local function param_list(params, name)
    if nn.is_module(params) then params = params:parameters() end
    if nn.is_tensor(params) then params = {params} end
    if type(params) ~= "table" or #params == 0 then
      raise(name .. ": params must be a non-empty list of tensors (model:parameters())")
    end
    local list, seen = {}, {}
    for i, p in ipairs(params) do
      if not nn.is_tensor(p) then raise(string.format("%s: params[%d] is a %s, not a tensor", name, i, type(p))) end
      if not p.requires_grad then raise(string.format("%s: params[%d] does not require grad", name, i)) end
      if not p.is_leaf then
        raise(string.format("%s: params[%d] is not a leaf tensor (it was computed from others); "
          .. "optimize the tensors it was computed from", name, i))
      end
      if seen[p] then raise(string.format("%s: params[%d] appears twice in the list", name, i)) end
      seen[p] = true
      list[i] = p
    end
    return list
  end

  ---------------------------------------------------------------------------
  --- nn.optim.Optimizer: what every optimizer shares.
  -- opt.param_groups: list of groups {params = {...}, lr = ..., <option> = ...}
  -- opt.defaults: the options given to the constructor (with defaults filled in)
  -- opt.state: opt.state[i][j], the state of parameter j of group i
  local Optimizer = {}
  Optimizer.__index = Optimizer
  Optimizer.__name = "Optimizer"
  optim.Optimizer = Optimizer

  -- A table that is a list of parameter groups rather than of tensors.
  local function is_group_list(params)
    return type(params) == "table" and not nn.is_tensor(params) and not nn.is_module(params)
      and type(params[1]) == "table" and not nn.is_tensor(params[1]) and not nn.is_module(params[1])
  end

  function Optimizer.new(cls, params, opts)
    local name = cls.__name
    if opts == nil then opts = {} end
    if type(opts) ~= "table" then
      raise(string.format("%s: options must be a table like {lr = 0.1}, got %s", name, type(opts)))
    end
    local known = {}
    for _, o in ipairs(cls._options) do known[o[1]] = o end
    for k in pairs(opts) do
      if not known[k] then raise(string.format("%s: unknown option '%s'", name, tostring(k))) end
    end
    local defaults = {}
    for _, o in ipairs(cls._options) do
      local v = opts[o[1]]
      if v == nil then v = o[2] end
      defaults[o[1]] = copy_value(v)
    end
    local self = setmetatable({defaults = defaults, param_groups = {}, state = {}}, cls)
    -- the options given are checked even when every group overrides them
    check_group(cls, defaults, true)
    if is_group_list(params) then
      for _, group in ipairs(params) do self:add_param_group(group) end
    else
      self:add_param_group({params = params})
    end
    return self
  end

  --- opt:add_param_group(group): adds {params = {...}, <option> = value, ...};
  -- options not given take the constructor's. A parameter may be in one group only.
  function Optimizer:add_param_group(group)
    local name = self.__name
    if type(group) ~= "table" or nn.is_tensor(group) or nn.is_module(group) or group.params == nil then
      raise(name .. ": a parameter group must be a table {params = {...}, <option> = value, ...}")
    end
    local g = {}
    for k, v in pairs(group) do if k ~= "params" then g[k] = copy_value(v) end end
    for k, v in pairs(self.defaults) do if g[k] == nil then g[k] = copy_value(v) end end
    g.params = param_list(group.params, name)
    check_group(getmetatable(self), g)
    for _, other in ipairs(self.param_groups) do
      local theirs = {}
      for _, p in ipairs(other.params) do theirs[p] = true end
      for _, p in ipairs(g.params) do
        if theirs[p] then raise(name .. ": some parameters appear in more than one parameter group") end
      end
    end
    self.param_groups[#self.param_groups + 1] = g
    self.state[#self.param_groups] = {}
  end

  -- zero_grad and step are C (lua/nn_optim.c): every training step calls them.
  --- opt:zero_grad([set_to_none = false]): zeros (or removes) every parameter's .grad.
  Optimizer.zero_grad = C.optimizer_zero_grad

  --- opt:step([closure]): one update of every parameter that has a .grad;
  -- closure(), when given, is called first (with gradients enabled) to
  -- recompute the loss, which step returns.
  Optimizer.step = C.optimizer_step(nn.enable_grad)

  -- One parameter's state as state_dict gives it: a copy, tensors cloned.
  local function pack_state(s)
    local copy = {}
    for k, v in pairs(s) do copy[k] = nn.is_tensor(v) and v:detach():clone() or copy_value(v) end
    return copy
  end

  local function same_shape(a, b)
    if a:dim() ~= b:dim() then return false end
    for d = 1, a:dim() do if a:size(d) ~= b:size(d) then return false end end
    return true
  end

  -- A saved state for parameter p: tensors cloned to p's dtype and device.
  local function unpack_state(name, saved, p, where)
    if type(saved) ~= "table" or nn.is_tensor(saved) then
      raise(string.format("%s: load_state_dict: the state of %s must be a table", name, where))
    end
    local s = {}
    for k, v in pairs(saved) do
      if nn.is_tensor(v) then
        if not same_shape(v, p) then
          raise(string.format("%s: load_state_dict: %s of %s is %s, the parameter %s", name, tostring(k),
            where, table.concat(v:size(), "x"), table.concat(p:size(), "x")))
        end
        s[k] = v:detach():to(p.dtype):to(p.device):clone()
      else
        s[k] = copy_value(v)
      end
    end
    return s
  end

  --- opt:state_dict(): {param_groups = {...}, state = {...}}, a snapshot:
  -- param_groups[i] holds group i's hyperparameters (params replaced by
  -- the parameters' positions, counted across groups as PyTorch does);
  -- state[i][j] a copy of the state of parameter j of group i.
  function Optimizer:state_dict()
    local groups, state, index = {}, {}, 0
    local pack = self._pack_state or pack_state
    for i, g in ipairs(self.param_groups) do
      local copy = {}
      for k, v in pairs(g) do if k ~= "params" then copy[k] = copy_value(v) end end
      local ids = {}
      for j = 1, #g.params do
        index = index + 1
        ids[j] = index
      end
      copy.params = ids
      groups[i] = copy
      state[i] = {}
      for j, s in pairs(self.state[i]) do state[i][j] = pack(s) end
    end
    return {param_groups = groups, state = state}
  end

  --- opt:load_state_dict(sd): takes hyperparameters and state from sd (a
  -- state_dict() of an optimizer of the same kind over parameters of the
  -- same shapes), so that the optimizer continues exactly where that one
  -- was. Checks everything before changing anything.
  function Optimizer:load_state_dict(sd)
    local name = self.__name
    if type(sd) ~= "table" or type(sd.param_groups) ~= "table" then
      raise(name .. ": load_state_dict: expected a table {param_groups = ..., state = ...} from state_dict()")
    end
    if #sd.param_groups ~= #self.param_groups then
      raise(string.format("%s: load_state_dict: the state has %d parameter groups, the optimizer %d",
        name, #sd.param_groups, #self.param_groups))
    end
    local unpack = self._unpack_state or unpack_state
    local groups, states = {}, {}
    for i, g in ipairs(self.param_groups) do
      local saved = sd.param_groups[i]
      if type(saved) ~= "table" then raise(string.format("%s: load_state_dict: param_groups[%d] is not a table", name, i)) end
      if type(saved.params) == "table" and #saved.params ~= #g.params then
        raise(string.format("%s: load_state_dict: parameter group %d has %d parameters in the state, %d in the optimizer",
          name, i, #saved.params, #g.params))
      end
      local merged = {}
      for k, v in pairs(g) do if k ~= "params" then merged[k] = v end end
      for k, v in pairs(saved) do if k ~= "params" then merged[k] = copy_value(v) end end
      check_group(getmetatable(self), merged)
      groups[i] = merged
      states[i] = {}
      local saved_state = sd.state and sd.state[i] or {}
      if type(saved_state) ~= "table" then raise(string.format("%s: load_state_dict: state[%d] is not a table", name, i)) end
      for j, s in pairs(saved_state) do
        local p = type(j) == "number" and g.params[j] or nil
        if p == nil then
          raise(string.format("%s: load_state_dict: state[%d] has an entry %s, but group %d has %d parameters",
            name, i, tostring(j), i, #g.params))
        end
        states[i][j] = unpack(name, s, p, string.format("parameter %d of group %d", j, i))
      end
    end
    -- the group tables stay the same tables: whoever holds one sees the change
    for i, g in ipairs(self.param_groups) do
      for k in pairs(g) do if k ~= "params" then g[k] = nil end end
      for k, v in pairs(groups[i]) do g[k] = v end
      self.state[i] = states[i]
    end
  end

  --- print(opt): the optimizer's name and each group's hyperparameters.
  function Optimizer:__tostring()
    local lines = {self.__name .. " ("}
    for i, g in ipairs(self.param_groups) do
      lines[#lines + 1] = string.format("Parameter Group %d", i)
      local keys = {}
      for k in pairs(g) do if k ~= "params" then keys[#keys + 1] = tostring(k) end end
      table.sort(keys)
      for _, k in ipairs(keys) do
        local v = g[k]
        if type(v) == "table" then
          local parts = {}
          for _, x in ipairs(v) do parts[#parts + 1] = tostring(x) end
          v = "{" .. table.concat(parts, ", ") .. "}"
        end
        lines[#lines + 1] = string.format("    %s: %s", k, tostring(v))
      end
    end
    lines[#lines + 1] = ")"
    return table.concat(lines, "\n")
  end

  -- A new optimizer class: options, an extra check of a group, and the
  -- C update of one group.
  local function define(name, options, update, check)
    local cls = {}
    for k, v in pairs(Optimizer) do
      if type(k) == "string" and k:sub(1, 2) == "__" then cls[k] = v end
    end
    cls.__index = cls
    cls.__name = name
    cls._options = options
    cls._update = update
    cls._check = check
    optim[name] = setmetatable(cls, {__index = Optimizer, __call = function(c, params, opts) return c:new(params, opts) end,
                                     __tostring = function(c) return "class " .. c.__name end})
    return cls
  end

  ---------------------------------------------------------------------------
  --- nn.optim.SGD(params, {lr, momentum = 0, dampening = 0, weight_decay = 0,
  -- nesterov = false, maximize = false}): stochastic gradient descent, with
  -- momentum as PyTorch has it (the first step's buffer is the gradient
  -- itself, undamped). lr is required. params: model:parameters(), a
  -- module, or a list of groups {{params = ..., lr = ...}, ...}.
  -- state_dict().state[i][j] is the momentum buffer itself (a tensor).
  local SGD = define("SGD", {
    {"lr", nil, "non_negative"},
    {"momentum", 0, "non_negative"},
    {"dampening", 0, "number"},
    {"weight_decay", 0, "non_negative"},
    {"nesterov", false, "boolean"},
    {"maximize", false, "boolean"},
  }, C.optim_sgd, function(g, name)
    if g.nesterov and (g.momentum <= 0 or g.dampening ~= 0) then
      raise(name .. ": nesterov needs a positive momentum and zero dampening")
    end
  end)
  function SGD._pack_state(s)
    return s.momentum_buffer and s.momentum_buffer:detach():clone() or nil
  end
  function SGD._unpack_state(name, saved, p, where)
    if nn.is_tensor(saved) then saved = {momentum_buffer = saved} end
    return unpack_state(name, saved, p, where)
  end

  --- nn.optim.Adam(params, {lr = 1e-3, betas = {0.9, 0.999}, eps = 1e-8,
  -- weight_decay = 0, amsgrad = false, maximize = false}): Adam (Kingma and
  -- Ba, 2015); weight_decay adds wd * p to the gradient (L2). State per
  -- parameter: step, exp_avg, exp_avg_sq (and max_exp_avg_sq with amsgrad).
  define("Adam", {
    {"lr", 1e-3, "non_negative"},
    {"betas", {0.9, 0.999}, "betas"},
    {"eps", 1e-8, "non_negative"},
    {"weight_decay", 0, "non_negative"},
    {"amsgrad", false, "boolean"},
    {"maximize", false, "boolean"},
  }, function(group, states) C.optim_adam(group, states, false) end)

  --- nn.optim.AdamW(params, {lr = 1e-3, betas = {0.9, 0.999}, eps = 1e-8,
  -- weight_decay = 1e-2, amsgrad = false, maximize = false}): Adam with
  -- decoupled weight decay (Loshchilov and Hutter, 2019): p *= 1 - lr * wd
  -- before each update. State as Adam's.
  define("AdamW", {
    {"lr", 1e-3, "non_negative"},
    {"betas", {0.9, 0.999}, "betas"},
    {"eps", 1e-8, "non_negative"},
    {"weight_decay", 1e-2, "non_negative"},
    {"amsgrad", false, "boolean"},
    {"maximize", false, "boolean"},
  }, function(group, states) C.optim_adam(group, states, true) end)

  --- nn.optim.RMSprop(params, {lr = 1e-2, alpha = 0.99, eps = 1e-8,
  -- weight_decay = 0, momentum = 0, centered = false, maximize = false}):
  -- divides by a running root mean square of the gradient (centered: of
  -- its variance). eps is added after the square root, as in PyTorch.
  -- State per parameter: step, square_avg (and momentum_buffer, grad_avg).
  define("RMSprop", {
    {"lr", 1e-2, "non_negative"},
    {"alpha", 0.99, "non_negative"},
    {"eps", 1e-8, "non_negative"},
    {"weight_decay", 0, "non_negative"},
    {"momentum", 0, "non_negative"},
    {"centered", false, "boolean"},
    {"maximize", false, "boolean"},
  }, C.optim_rmsprop)

  --- nn.optim.Adagrad(params, {lr = 1e-2, lr_decay = 0, weight_decay = 0,
  -- initial_accumulator_value = 0, eps = 1e-10, maximize = false}): divides
  -- by the root of the sum of squared gradients; the step size at step t is
  -- lr / (1 + (t - 1) * lr_decay). State per parameter: step, sum.
  define("Adagrad", {
    {"lr", 1e-2, "non_negative"},
    {"lr_decay", 0, "non_negative"},
    {"weight_decay", 0, "non_negative"},
    {"initial_accumulator_value", 0, "non_negative"},
    {"eps", 1e-10, "non_negative"},
    {"maximize", false, "boolean"},
  }, C.optim_adagrad)
end

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
  Optimizer.step = C.optimizer_step(function(closure) return nn.enable_grad(closure) end)
  -- (nn.enable_grad is looked up at each call: autograd.lua loads on first use)

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
  ---------------------------------------------------------------------------
  -- Issue 13's optimizers, each one fused C loop per parameter as the ones
  -- above (engine/src/optim.c), PyTorch 1.13's single-tensor updates
  -- operation for operation. State under PyTorch's names; a step counter,
  -- NAdam's mu_product and ASGD's eta and mu are numbers (the last three
  -- rounded to float32, as PyTorch keeps them in float32 tensors).

  --- nn.optim.Adadelta(params, {lr = 1.0, rho = 0.9, eps = 1e-6, weight_decay = 0,
  -- maximize = false}): Zeiler's ADADELTA (2012): a step of
  -- sqrt(acc_delta + eps) / sqrt(square_avg + eps) * grad, both running
  -- averages with rate rho, times lr. State: step, square_avg, acc_delta.
  --   local opt = nn.optim.Adadelta(model:parameters())
  define("Adadelta", {
    {"lr", 1.0, "non_negative"},
    {"rho", 0.9, "non_negative"},
    {"eps", 1e-6, "non_negative"},
    {"weight_decay", 0, "non_negative"},
    {"maximize", false, "boolean"},
  }, C.optim_adadelta, function(g, name)
    if g.rho ~= nil and g.rho > 1 then raise(name .. ": rho must be in [0, 1], got " .. tostring(g.rho)) end
  end)

  --- nn.optim.Adamax(params, {lr = 2e-3, betas = {0.9, 0.999}, eps = 1e-8,
  -- weight_decay = 0, maximize = false}): Adam with the infinity norm
  -- (Kingma and Ba, 2015, section 7). State: step, exp_avg, exp_inf.
  --   local opt = nn.optim.Adamax(model:parameters(), {lr = 2e-3})
  define("Adamax", {
    {"lr", 2e-3, "non_negative"},
    {"betas", {0.9, 0.999}, "betas"},
    {"eps", 1e-8, "non_negative"},
    {"weight_decay", 0, "non_negative"},
    {"maximize", false, "boolean"},
  }, C.optim_adamax)

  --- nn.optim.NAdam(params, {lr = 2e-3, betas = {0.9, 0.999}, eps = 1e-8,
  -- weight_decay = 0, momentum_decay = 4e-3}): Adam with Nesterov momentum
  -- (Dozat, 2016), PyTorch 1.13's form (its mu_product kept in float32, as
  -- there). State: step, mu_product, exp_avg, exp_avg_sq.
  --   local opt = nn.optim.NAdam(model:parameters())
  define("NAdam", {
    {"lr", 2e-3, "non_negative"},
    {"betas", {0.9, 0.999}, "betas"},
    {"eps", 1e-8, "non_negative"},
    {"weight_decay", 0, "non_negative"},
    {"momentum_decay", 4e-3, "non_negative"},
  }, C.optim_nadam)

  --- nn.optim.RAdam(params, {lr = 1e-3, betas = {0.9, 0.999}, eps = 1e-8,
  -- weight_decay = 0}): rectified Adam (Liu et al., 2019): momentum SGD until
  -- the variance estimate is reliable (rho_t > 5), then Adam scaled by the
  -- rectification term. State: step, exp_avg, exp_avg_sq.
  --   local opt = nn.optim.RAdam(model:parameters())
  define("RAdam", {
    {"lr", 1e-3, "non_negative"},
    {"betas", {0.9, 0.999}, "betas"},
    {"eps", 1e-8, "non_negative"},
    {"weight_decay", 0, "non_negative"},
  }, C.optim_radam)

  --- nn.optim.ASGD(params, {lr = 1e-2, lambd = 1e-4, alpha = 0.75, t0 = 1e6,
  -- weight_decay = 0, maximize = false}): averaged SGD (Polyak and Juditsky,
  -- 1992): SGD with a decaying step eta, and in state.ax the running average
  -- of the parameters from step t0 on. State: step, eta, mu, ax.
  --   local opt = nn.optim.ASGD(model:parameters(), {lr = 0.01, t0 = 100})
  define("ASGD", {
    {"lr", 1e-2, "non_negative"},
    {"lambd", 1e-4, "non_negative"},
    {"alpha", 0.75, "non_negative"},
    {"t0", 1e6, "non_negative"},
    {"weight_decay", 0, "non_negative"},
    {"maximize", false, "boolean"},
  }, C.optim_asgd)

  -- etas = {etaminus, etaplus} with 0 < etaminus < 1 < etaplus; step_sizes = {min, max}.
  local function check_pair(name, key, v, ok, what)
    if type(v) ~= "table" or nn.is_tensor(v) or #v ~= 2 or type(v[1]) ~= "number" or type(v[2]) ~= "number"
      or not ok(v[1], v[2]) then
      raise(string.format("%s: %s must be %s, got %s", name, key, what, type(v) == "table" and
        "{" .. tostring(v[1]) .. ", " .. tostring(v[2]) .. "}" or tostring(v)))
    end
  end

  --- nn.optim.Rprop(params, {lr = 1e-2, etas = {0.5, 1.2}, step_sizes = {1e-6, 50},
  -- maximize = false}): resilient backpropagation (Riedmiller and Braun,
  -- 1993): each weight moves by its own step size against the gradient's
  -- sign; the step grows by etaplus while the sign stays, shrinks by
  -- etaminus when it flips (and that step is skipped). State: step, prev, step_size.
  --   local opt = nn.optim.Rprop(model:parameters())
  define("Rprop", {
    {"lr", 1e-2, "non_negative"},
    {"etas", {0.5, 1.2}, "pair"},
    {"step_sizes", {1e-6, 50}, "pair"},
    {"maximize", false, "boolean"},
  }, C.optim_rprop, function(g, name)
    if g.etas ~= nil then
      check_pair(name, "etas", g.etas, function(a, b) return 0 < a and a < 1 and 1 < b end,
        "{etaminus, etaplus} with 0 < etaminus < 1 < etaplus")
    end
    if g.step_sizes ~= nil then
      check_pair(name, "step_sizes", g.step_sizes, function(a, b) return 0 <= a and a <= b end,
        "{min, max} with 0 <= min <= max")
    end
  end)
  kinds.pair = function() return true end -- checked by Rprop's own check
  ---------------------------------------------------------------------------
  -- L-BFGS, PyTorch 1.13's (itself after Schmidt's minFunc): the parameters
  -- as one flat vector, a history of steps s and gradient changes y, and a
  -- fixed step or a strong-Wolfe line search.

  -- The minimiser of the cubic through (x1, f1, g1) and (x2, f2, g2), within bounds.
  local function cubic_interpolate(x1, f1, g1, x2, f2, g2, lo, hi)
    if lo == nil then lo, hi = math.min(x1, x2), math.max(x1, x2) end
    local d1 = g1 + g2 - 3 * (f1 - f2) / (x1 - x2)
    local d2_square = d1 * d1 - g1 * g2
    if d2_square >= 0 then
      local d2 = math.sqrt(d2_square)
      local min_pos
      if x1 <= x2 then
        min_pos = x2 - (x2 - x1) * ((g2 + d2 - d1) / (g2 - g1 + 2 * d2))
      else
        min_pos = x1 - (x1 - x2) * ((g1 + d2 - d1) / (g1 - g2 + 2 * d2))
      end
      return math.min(math.max(min_pos, lo), hi)
    end
    return (lo + hi) / 2
  end

  -- A line search along d from x satisfying the strong Wolfe conditions
  -- (Nocedal and Wright, algorithms 3.5 and 3.6): returns f, g, t, evaluations.
  local function strong_wolfe(obj, x, t, d, f, g, gtd)
    local c1, c2, tolerance_change, max_ls = 1e-4, 0.9, 1e-9, 25
    local d_norm = d:abs():max():item()
    g = g:clone()
    local f_new, g_new = obj(x, t, d)
    local evals = 1
    local gtd_new = g_new:dot(d):item()
    local t_prev, f_prev, g_prev, gtd_prev = 0, f, g, gtd
    local done, ls_iter = false, 0
    local bracket, bracket_f, bracket_g, bracket_gtd
    while ls_iter < max_ls do
      if f_new > f + c1 * t * gtd or (ls_iter > 1 and f_new >= f_prev) then
        bracket, bracket_f, bracket_g, bracket_gtd = {t_prev, t}, {f_prev, f_new}, {g_prev, g_new:clone()}, {gtd_prev, gtd_new}
        break
      end
      if math.abs(gtd_new) <= -c2 * gtd then
        bracket, bracket_f, bracket_g, done = {t}, {f_new}, {g_new}, true
        break
      end
      if gtd_new >= 0 then
        bracket, bracket_f, bracket_g, bracket_gtd = {t_prev, t}, {f_prev, f_new}, {g_prev, g_new:clone()}, {gtd_prev, gtd_new}
        break
      end
      local min_step, max_step, tmp = t + 0.01 * (t - t_prev), t * 10, t
      t = cubic_interpolate(t_prev, f_prev, gtd_prev, t, f_new, gtd_new, min_step, max_step)
      t_prev, f_prev, g_prev, gtd_prev = tmp, f_new, g_new:clone(), gtd_new
      f_new, g_new = obj(x, t, d)
      evals = evals + 1
      gtd_new = g_new:dot(d):item()
      ls_iter = ls_iter + 1
    end
    if ls_iter == max_ls then bracket, bracket_f, bracket_g = {0, t}, {f, f_new}, {g, g_new} end
    local insuf_progress = false
    local low, high = 1, 2
    if bracket_f[1] > bracket_f[#bracket_f] then low, high = 2, 1 end
    while not done and ls_iter < max_ls do
      if math.abs(bracket[2] - bracket[1]) * d_norm < tolerance_change then break end
      t = cubic_interpolate(bracket[1], bracket_f[1], bracket_gtd[1], bracket[2], bracket_f[2], bracket_gtd[2])
      local bmax, bmin = math.max(bracket[1], bracket[2]), math.min(bracket[1], bracket[2])
      local eps = 0.1 * (bmax - bmin)
      if math.min(bmax - t, t - bmin) < eps then
        if insuf_progress or t >= bmax or t <= bmin then
          if math.abs(t - bmax) < math.abs(t - bmin) then t = bmax - eps else t = bmin + eps end
          insuf_progress = false
        else
          insuf_progress = true
        end
      else
        insuf_progress = false
      end
      f_new, g_new = obj(x, t, d)
      evals = evals + 1
      gtd_new = g_new:dot(d):item()
      ls_iter = ls_iter + 1
      if f_new > f + c1 * t * gtd or f_new >= bracket_f[low] then
        bracket[high], bracket_f[high], bracket_g[high], bracket_gtd[high] = t, f_new, g_new:clone(), gtd_new
        if bracket_f[1] <= bracket_f[2] then low, high = 1, 2 else low, high = 2, 1 end
      else
        if math.abs(gtd_new) <= -c2 * gtd then
          done = true
        elseif gtd_new * (bracket[high] - bracket[low]) >= 0 then
          bracket[high], bracket_f[high], bracket_g[high], bracket_gtd[high] =
            bracket[low], bracket_f[low], bracket_g[low], bracket_gtd[low]
        end
        bracket[low], bracket_f[low], bracket_g[low], bracket_gtd[low] = t, f_new, g_new:clone(), gtd_new
      end
    end
    return bracket_f[low], bracket_g[low], bracket[low], evals
  end

  --- nn.optim.LBFGS(params, {lr = 1, max_iter = 20, max_eval = max_iter * 5 // 4,
  -- tolerance_grad = 1e-7, tolerance_change = 1e-9, history_size = 100,
  -- line_search_fn = nil}): limited-memory BFGS, PyTorch 1.13's. step needs
  -- a closure that zeros the gradients, computes the loss, calls backward and
  -- returns the loss; one step runs up to max_iter iterations.
  -- line_search_fn: nil (a fixed step lr) or "strong_wolfe". One parameter
  -- group only. State (of the first parameter, as PyTorch's): func_evals,
  -- n_iter, d, t, old_dirs, old_stps, ro, H_diag, prev_flat_grad, prev_loss.
  --   local opt = nn.optim.LBFGS(model:parameters(), {line_search_fn = "strong_wolfe"})
  --   opt:step(function() opt:zero_grad(); local l = loss_fn(model(x), y); l:backward(); return l end)
  local LBFGS = define("LBFGS", {
    {"lr", 1, "non_negative"},
    {"max_iter", 20, "non_negative"},
    {"max_eval", false, "any"},
    {"tolerance_grad", 1e-7, "non_negative"},
    {"tolerance_change", 1e-9, "non_negative"},
    {"history_size", 100, "non_negative"},
    {"line_search_fn", false, "any"},
  }, nil, function(g, name)
    if g.line_search_fn ~= nil and g.line_search_fn ~= false and g.line_search_fn ~= "strong_wolfe" then
      raise(name .. ": line_search_fn must be nil or 'strong_wolfe', got " .. tostring(g.line_search_fn))
    end
    if g.max_eval ~= nil and g.max_eval ~= false and math.type(g.max_eval) == nil then
      raise(name .. ": max_eval must be a number, got " .. type(g.max_eval))
    end
  end)
  kinds.any = function() return true end

  function LBFGS.new(cls, params, opts)
    local self = Optimizer.new(cls, params, opts)
    if #self.param_groups ~= 1 then raise("LBFGS: it takes one parameter group, not per-parameter options") end
    local g = self.param_groups[1]
    if not g.max_eval then g.max_eval = g.max_iter * 5 // 4 end
    return self
  end

  function LBFGS:add_param_group(group)
    if #self.param_groups > 0 then raise("LBFGS: it takes one parameter group, not per-parameter options") end
    Optimizer.add_param_group(self, group)
  end

  local function flat_grad_of(params)
    local views = {}
    for i, p in ipairs(params) do
      views[i] = p.grad and p.grad:reshape(-1) or nn.zeros(p:numel(), {dtype = p.dtype, device = p.device})
    end
    return nn.cat(views, 1)
  end

  local function add_flat(params, step, update)
    local offset = 0
    for _, p in ipairs(params) do
      local n = p:numel()
      p:add_(update:narrow(1, offset + 1, n):view(p:size()) * step)
      offset = offset + n
    end
  end

  local function number_of(loss)
    if nn.is_tensor(loss) then return loss:item() end
    if type(loss) ~= "number" then raise("LBFGS: the closure must return the loss (a tensor or a number), got " .. type(loss)) end
    return loss
  end

  --- opt:step(closure): up to max_iter L-BFGS iterations; returns the loss the
  -- closure gave first.
  function LBFGS:step(closure)
    if type(closure) ~= "function" then
      raise("LBFGS: step needs a closure that computes the loss, calls backward and returns the loss")
    end
    local group = self.param_groups[1]
    local params = group.params
    local lr, max_iter, max_eval = group.lr, group.max_iter, group.max_eval
    local tolerance_grad, tolerance_change = group.tolerance_grad, group.tolerance_change
    local history_size = group.history_size
    local line_search = group.line_search_fn
    local state = self.state[1][1]
    if state == nil then
      state = {func_evals = 0, n_iter = 0}
      self.state[1][1] = state
    end
    local function evaluate() return nn.enable_grad(closure) end
    return nn.no_grad(function()
      local orig_loss = evaluate()
      local loss = number_of(orig_loss)
      local current_evals = 1
      state.func_evals = state.func_evals + 1
      local flat_grad = flat_grad_of(params)
      if flat_grad:abs():max():item() <= tolerance_grad then return orig_loss end
      local d, t, old_dirs, old_stps, ro, H_diag = state.d, state.t, state.old_dirs, state.old_stps, state.ro, state.H_diag
      local prev_flat_grad, prev_loss = state.prev_flat_grad, state.prev_loss
      local n_iter = 0
      while n_iter < max_iter do
        n_iter = n_iter + 1
        state.n_iter = state.n_iter + 1
        if state.n_iter == 1 then
          d = -flat_grad
          old_dirs, old_stps, ro, H_diag = {}, {}, {}, 1
        else
          local y = flat_grad - prev_flat_grad
          local s = d * t
          local ys = y:dot(s):item()
          if ys > 1e-10 then
            if #old_dirs == history_size then
              table.remove(old_dirs, 1)
              table.remove(old_stps, 1)
              table.remove(ro, 1)
            end
            old_dirs[#old_dirs + 1], old_stps[#old_stps + 1], ro[#ro + 1] = y, s, 1 / ys
            H_diag = ys / y:dot(y):item()
          end
          local al = {}
          local q = -flat_grad
          for i = #old_dirs, 1, -1 do
            al[i] = old_stps[i]:dot(q):item() * ro[i]
            q = q - old_dirs[i] * al[i]
          end
          local r = q * H_diag
          for i = 1, #old_dirs do
            local be_i = old_dirs[i]:dot(r):item() * ro[i]
            r = r + old_stps[i] * (al[i] - be_i)
          end
          d = r
        end
        prev_flat_grad = flat_grad:clone()
        prev_loss = loss
        if state.n_iter == 1 then
          t = math.min(1, 1 / flat_grad:abs():sum():item()) * lr
        else
          t = lr
        end
        local gtd = flat_grad:dot(d):item()
        if gtd > -tolerance_change then break end
        local ls_evals = 0
        local opt_cond = false
        if line_search then
          local x_init = {}
          for i, p in ipairs(params) do x_init[i] = p:clone() end
          local function obj(x, step, dir)
            add_flat(params, step, dir)
            local value = number_of(evaluate())
            local grad = flat_grad_of(params)
            for i, p in ipairs(params) do p:copy_(x[i]) end
            return value, grad
          end
          loss, flat_grad, t, ls_evals = strong_wolfe(obj, x_init, t, d, loss, flat_grad, gtd)
          add_flat(params, t, d)
          opt_cond = flat_grad:abs():max():item() <= tolerance_grad
        else
          add_flat(params, t, d)
          if n_iter ~= max_iter then
            loss = number_of(evaluate())
            flat_grad = flat_grad_of(params)
            opt_cond = flat_grad:abs():max():item() <= tolerance_grad
            ls_evals = 1
          end
        end
        current_evals = current_evals + ls_evals
        state.func_evals = state.func_evals + ls_evals
        if n_iter == max_iter or current_evals >= max_eval or opt_cond then break end
        if (d * t):abs():max():item() <= tolerance_change then break end
        if math.abs(loss - prev_loss) < tolerance_change then break end
      end
      state.d, state.t, state.old_dirs, state.old_stps, state.ro, state.H_diag = d, t, old_dirs, old_stps, ro, H_diag
      state.prev_flat_grad, state.prev_loss = prev_flat_grad, prev_loss
      return orig_loss
    end)
  end
end

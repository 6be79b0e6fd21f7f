-- Learning-rate schedulers (nn.optim.lr_scheduler) and gradient clipping
-- (nn.utils.clip_grad_norm_, nn.utils.clip_grad_value_), as in PyTorch 1.13.
--
--   local opt = nn.optim.SGD(model:parameters(), {lr = 0.1, momentum = 0.9})
--   local sched = nn.optim.lr_scheduler.StepLR(opt, {step_size = 30, gamma = 0.1})
--   for epoch = 1, 100 do
--     train_one_epoch(opt)    -- opt:step() inside
--     sched:step()            -- after the optimizer's steps, as in PyTorch
--   end
--
-- A scheduler writes the learning rate into each of the optimizer's
-- param_groups[i].lr. Like PyTorch's, it takes its first step when it is
-- made (so group.initial_lr and get_last_lr() hold the starting rates), and
-- the chainable schedulers compute each rate from the group's current one,
-- the recursive formulas of torch/optim/lr_scheduler.py, so the sequences
-- agree with PyTorch's value for value.
return function(nn)
  local raise = nn._raise
  local C = nn._C
--- nn.optim.lr_scheduler: changes an optimizer's learning rate as training
-- goes (StepLR, MultiStepLR, ExponentialLR, CosineAnnealingLR,
-- ReduceLROnPlateau); call sched:step() once an epoch.
--   local sched = nn.optim.lr_scheduler.StepLR(opt, {step_size = 30, gamma = 0.1})
  local lr_scheduler = {}
  nn.optim.lr_scheduler = lr_scheduler
--- nn.utils: helpers for training loops (clip_grad_norm_, clip_grad_value_).
  nn.utils = nn.utils or {}

  local function is_number(v) return type(v) == "number" and v == v end
  local function is_integer(v) return math.type(v) == "integer" or (is_number(v) and v == math.floor(v) and v > -math.huge and v < math.huge) end

  local function copy_value(v)
    if type(v) == "table" and not nn.is_tensor(v) then
      local c = {}
      for k, x in pairs(v) do c[k] = copy_value(x) end
      return c
    end
    return v
  end

  -- Option kinds: a check, and what a value must be.
  local kinds = {
    number = {function(v) return is_number(v) end, "a number"},
    non_negative = {function(v) return is_number(v) and v >= 0 end, "a non-negative number"},
    positive = {function(v) return is_number(v) and v > 0 end, "a positive number"},
    positive_integer = {function(v) return is_integer(v) and v > 0 end, "a positive integer"},
    non_negative_integer = {function(v) return is_integer(v) and v >= 0 end, "a non-negative integer"},
    factor = {function(v) return is_number(v) and v >= 0 and v < 1 end, "a number in [0, 1)"},
    mode = {function(v) return v == "min" or v == "max" end, '"min" or "max"'},
    threshold_mode = {function(v) return v == "rel" or v == "abs" end, '"rel" or "abs"'},
    milestones = {function(v)
      if type(v) ~= "table" or nn.is_tensor(v) then return false end
      for _, m in ipairs(v) do if not is_integer(m) then return false end end
      return true
    end, "a list of integers (epochs)"},
    min_lr = true, -- a number or one per parameter group: checked by ReduceLROnPlateau
  }

  local function check_optimizer(name, opt)
    if type(opt) ~= "table" or type(rawget(opt, "param_groups")) ~= "table" then
      raise(name .. ": the first argument must be an optimizer (nn.optim.SGD(...), nn.optim.Adam(...), ...)")
    end
  end

  -- Reads opts into self by the class's option list {name, default, kind}
  -- (a default of nil: required).
  local function read_options(cls, self, opts)
    local name = cls.__name
    if opts == nil then opts = {} end
    if type(opts) ~= "table" then raise(string.format("%s: options must be a table, got %s", name, type(opts))) end
    local known = {}
    for _, o in ipairs(cls._options) do known[o[1]] = true end
    for k in pairs(opts) do
      if not known[k] then raise(string.format("%s: unknown option '%s'", name, tostring(k))) end
    end
    for _, o in ipairs(cls._options) do
      local key, kind = o[1], kinds[o[3]]
      local v = opts[key]
      if v == nil then v = o[2] end
      if v == nil then raise(string.format("%s: %s is required", name, key)) end
      if kind ~= true and not kind[1](v) then
        raise(string.format("%s: %s must be %s, got %s", name, key, kind[2], tostring(v)))
      end
      self[key] = copy_value(v)
    end
  end

  local function current_lrs(optimizer)
    local lrs = {}
    for i, g in ipairs(optimizer.param_groups) do lrs[i] = g.lr end
    return lrs
  end

  -- What every scheduler shares.
  local function scheduler_methods(cls)
    --- sched:get_last_lr(): the learning rates (one per parameter group) the last step set.
    function cls:get_last_lr() return copy_value(self._last_lr) end

    --- sched:state_dict(): everything but the optimizer, copied.
    function cls:state_dict()
      local sd = {}
      for k, v in pairs(self) do if k ~= "optimizer" then sd[k] = copy_value(v) end end
      return sd
    end

    --- sched:load_state_dict(sd): takes the state a state_dict() gave (its
    -- options checked as the constructor checks them).
    function cls:load_state_dict(sd)
      local c = getmetatable(self)
      if type(sd) ~= "table" then
        raise(string.format("%s: load_state_dict: expected a table from state_dict(), got %s", c.__name, type(sd)))
      end
      local opts = {}
      for _, o in ipairs(c._options) do
        local v = sd[o[1]]
        if v == nil then v = self[o[1]] end
        opts[o[1]] = v
      end
      read_options(c, {}, opts)
      for k, v in pairs(sd) do if k ~= "optimizer" then self[k] = copy_value(v) end end
    end

    function cls:__tostring()
      local parts = {}
      for _, o in ipairs(getmetatable(self)._options) do
        local v = self[o[1]]
        if type(v) == "table" then
          local items = {}
          for _, x in ipairs(v) do items[#items + 1] = tostring(x) end
          v = "{" .. table.concat(items, ", ") .. "}"
        end
        parts[#parts + 1] = string.format("%s = %s", o[1], tostring(v))
      end
      return string.format("%s(%s)", self.__name, table.concat(parts, ", "))
    end
  end

  local function new_class(name, options)
    local cls = {__name = name, _options = options}
    cls.__index = cls
    lr_scheduler[name] = setmetatable(cls, {__call = function(c, ...) return c.new(c, ...) end,
                                            __tostring = function(c) return "class " .. c.__name end})
    scheduler_methods(cls)
    return cls
  end

  ---------------------------------------------------------------------------
  -- The epoch-driven schedulers: step() advances last_epoch and sets each
  -- group's lr to get_lr()'s value, as torch.optim.lr_scheduler._LRScheduler.
--- sched:get_lr(): the learning rates (one per parameter group) the
-- scheduler sets at the current epoch; step() applies them.
  local function epoch_scheduler(name, options, get_lr)
    local cls = new_class(name, options)
    cls.get_lr = get_lr

    cls.new = function(c, optimizer, opts)
      check_optimizer(name, optimizer)
      local self = setmetatable({optimizer = optimizer}, c)
      read_options(c, self, opts)
      for _, g in ipairs(optimizer.param_groups) do
        if g.initial_lr == nil then g.initial_lr = g.lr end
      end
      self.base_lrs = {}
      for i, g in ipairs(optimizer.param_groups) do self.base_lrs[i] = g.initial_lr end
      self.last_epoch = -1
      self._step_count = 0
      self:step()
      return self
    end

    --- sched:step(): the next epoch's learning rates.
    function cls:step(...)
      if select("#", ...) > 0 then
        raise(name .. ": step() takes no argument (PyTorch's step(epoch) is deprecated)")
      end
      self._step_count = self._step_count + 1
      self.last_epoch = self.last_epoch + 1
      local values = self:get_lr()
      for i, g in ipairs(self.optimizer.param_groups) do g.lr = values[i] end
      self._last_lr = current_lrs(self.optimizer)
    end
    return cls
  end

  --- nn.optim.lr_scheduler.StepLR(opt, {step_size, gamma = 0.1}): multiplies
  -- each group's lr by gamma every step_size epochs.
  epoch_scheduler("StepLR", {
    {"step_size", nil, "positive_integer"},
    {"gamma", 0.1, "number"},
  }, function(self)
    local lrs = current_lrs(self.optimizer)
    if self.last_epoch == 0 or self.last_epoch % self.step_size ~= 0 then return lrs end
    for i = 1, #lrs do lrs[i] = lrs[i] * self.gamma end
    return lrs
  end)

  --- nn.optim.lr_scheduler.MultiStepLR(opt, {milestones, gamma = 0.1}):
  -- multiplies each group's lr by gamma at each epoch in milestones (by
  -- gamma^k for an epoch listed k times).
  epoch_scheduler("MultiStepLR", {
    {"milestones", nil, "milestones"},
    {"gamma", 0.1, "number"},
  }, function(self)
    local lrs = current_lrs(self.optimizer)
    local count = 0
    for _, m in ipairs(self.milestones) do if m == self.last_epoch then count = count + 1 end end
    if count == 0 then return lrs end
    for i = 1, #lrs do lrs[i] = lrs[i] * self.gamma ^ count end
    return lrs
  end)

  --- nn.optim.lr_scheduler.ExponentialLR(opt, {gamma}): multiplies each
  -- group's lr by gamma every epoch.
  epoch_scheduler("ExponentialLR", {
    {"gamma", nil, "number"},
  }, function(self)
    local lrs = current_lrs(self.optimizer)
    if self.last_epoch == 0 then return lrs end
    for i = 1, #lrs do lrs[i] = lrs[i] * self.gamma end
    return lrs
  end)

  --- nn.optim.lr_scheduler.CosineAnnealingLR(opt, {T_max, eta_min = 0}):
  -- anneals each group's lr from its initial value to eta_min along half a
  -- cosine over T_max epochs (SGDR, Loshchilov and Hutter, 2017, without
  -- restarts: past T_max it climbs back). Computed with PyTorch's recursive
  -- formula from the current lr, so the values match PyTorch's exactly.
  epoch_scheduler("CosineAnnealingLR", {
    {"T_max", nil, "positive"},
    {"eta_min", 0, "number"},
  }, function(self)
    local lrs = current_lrs(self.optimizer)
    local e, T, eta_min = self.last_epoch, self.T_max, self.eta_min
    if e == 0 then return lrs end
    if (e - 1 - T) % (2 * T) == 0 then
      for i = 1, #lrs do
        lrs[i] = lrs[i] + (self.base_lrs[i] - eta_min) * (1 - math.cos(math.pi / T)) / 2
      end
      return lrs
    end
    for i = 1, #lrs do
      lrs[i] = (1 + math.cos(math.pi * e / T)) / (1 + math.cos(math.pi * (e - 1) / T)) * (lrs[i] - eta_min) + eta_min
    end
    return lrs
  end)

  ---------------------------------------------------------------------------
  --- nn.optim.lr_scheduler.ReduceLROnPlateau(opt, {mode = "min", factor = 0.1,
  -- patience = 10, threshold = 1e-4, threshold_mode = "rel", cooldown = 0,
  -- min_lr = 0, eps = 1e-8}): sched:step(metric) multiplies each group's lr
  -- by factor (not below min_lr, a number or one per group) once the metric
  -- has not improved for more than patience steps; then waits cooldown
  -- steps. "Improved" is metric < best * (1 - threshold) for mode "min" and
  -- threshold_mode "rel" (best - threshold with "abs"; mirrored for "max").
  -- A reduction smaller than eps is skipped.
  local Plateau = new_class("ReduceLROnPlateau", {
    {"mode", "min", "mode"},
    {"factor", 0.1, "factor"},
    {"patience", 10, "non_negative_integer"},
    {"threshold", 1e-4, "non_negative"},
    {"threshold_mode", "rel", "threshold_mode"},
    {"cooldown", 0, "non_negative_integer"},
    {"min_lr", 0, "min_lr"},
    {"eps", 1e-8, "non_negative"},
  })

  local function check_min_lr(name, v, groups)
    if is_number(v) then
      if v < 0 then raise(string.format("%s: min_lr must be non-negative, got %s", name, tostring(v))) end
      local list = {}
      for i = 1, groups do list[i] = v end
      return list
    end
    if type(v) ~= "table" or nn.is_tensor(v) then
      raise(string.format("%s: min_lr must be a number or a list of one per parameter group, got %s", name, tostring(v)))
    end
    if #v ~= groups then
      raise(string.format("%s: min_lr has %d values, the optimizer %d parameter groups", name, #v, groups))
    end
    for i, x in ipairs(v) do
      if not (is_number(x) and x >= 0) then
        raise(string.format("%s: min_lr[%d] must be a non-negative number, got %s", name, i, tostring(x)))
      end
    end
    return copy_value(v)
  end

  function Plateau.new(c, optimizer, opts)
    local name = c.__name
    check_optimizer(name, optimizer)
    local self = setmetatable({optimizer = optimizer}, c)
    read_options(c, self, opts)
    self.min_lrs = check_min_lr(name, self.min_lr, #optimizer.param_groups)
    self.best = self.mode == "min" and math.huge or -math.huge
    self.num_bad_epochs = 0
    self.cooldown_counter = 0
    self.last_epoch = 0
    self._last_lr = current_lrs(optimizer)
    return self
  end

  function Plateau:_is_better(a)
    local best, threshold = self.best, self.threshold
    if self.mode == "min" and self.threshold_mode == "rel" then return a < best * (1 - threshold) end
    if self.mode == "min" then return a < best - threshold end
    if self.threshold_mode == "rel" then return a > best * (threshold + 1) end
    return a > best + threshold
  end

  --- sched:step(metric): metric is a number or a one-element tensor (a loss).
  function Plateau:step(metric)
    if nn.is_tensor(metric) then
      if metric:numel() ~= 1 then
        raise(string.format("ReduceLROnPlateau: step(metric): the metric must be a number or a one-element tensor, got %d elements", metric:numel()))
      end
      metric = metric:item()
    end
    if type(metric) ~= "number" then
      raise("ReduceLROnPlateau: step(metric): the metric must be a number or a one-element tensor, got " .. type(metric))
    end
    self.last_epoch = self.last_epoch + 1
    if self:_is_better(metric) then
      self.best = metric
      self.num_bad_epochs = 0
    else
      self.num_bad_epochs = self.num_bad_epochs + 1
    end
    if self.cooldown_counter > 0 then
      self.cooldown_counter = self.cooldown_counter - 1
      self.num_bad_epochs = 0 -- bad epochs in cooldown do not count
    end
    if self.num_bad_epochs > self.patience then
      for i, g in ipairs(self.optimizer.param_groups) do
        local old = g.lr
        local new = math.max(old * self.factor, self.min_lrs[i])
        if old - new > self.eps then g.lr = new end
      end
      self.cooldown_counter = self.cooldown
      self.num_bad_epochs = 0
    end
    self._last_lr = current_lrs(self.optimizer)
  end

  ---------------------------------------------------------------------------
  -- The tensors whose gradients a clipping function changes.
  local function tensors_of(params, name)
    if nn.is_module(params) then return params:parameters() end
    if nn.is_tensor(params) then return {params} end
    if type(params) ~= "table" then
      raise(string.format("%s: params must be a module, a tensor or a list of tensors, got %s", name, type(params)))
    end
    for i, p in ipairs(params) do
      if not nn.is_tensor(p) then raise(string.format("%s: params[%d] is a %s, not a tensor", name, i, type(p))) end
    end
    return params
  end

  --- nn.utils.clip_grad_norm_(params, max_norm [, norm_type = 2 [, error_if_nonfinite = false]]):
  -- scales the gradients of params (a module, a tensor or a list) together,
  -- in place, so that their joint norm is at most max_norm: each is
  -- multiplied by min(1, max_norm / (total_norm + 1e-6)). norm_type is a
  -- positive number or math.huge / "inf" (the largest magnitude).
  -- Parameters without .grad are skipped. Returns the total norm before
  -- clipping, as a 0-dim tensor (float64 if a gradient is, the half type
  -- when every gradient is that one, else float32).
  function nn.utils.clip_grad_norm_(params, max_norm, norm_type, error_if_nonfinite)
    local name = "clip_grad_norm_"
    local list = tensors_of(params, name)
    if not (is_number(max_norm) and max_norm >= 0) then
      raise(string.format("%s: max_norm must be a non-negative number, got %s", name, tostring(max_norm)))
    end
    if norm_type == nil then norm_type = 2 end
    if norm_type == "inf" then norm_type = math.huge end
    if not (is_number(norm_type) and norm_type > 0) then
      raise(string.format("%s: norm_type must be a positive number or math.huge (\"inf\"), got %s", name, tostring(norm_type)))
    end
    return C.clip_grad_norm(list, max_norm, norm_type, error_if_nonfinite and true or false)
  end

  --- nn.utils.clip_grad_value_(params, clip_value): clamps every gradient of
  -- params (a module, a tensor or a list) to [-clip_value, clip_value], in
  -- place. Parameters without .grad are skipped.
  function nn.utils.clip_grad_value_(params, clip_value)
    local name = "clip_grad_value_"
    local list = tensors_of(params, name)
    if not (is_number(clip_value) and clip_value >= 0) then
      raise(string.format("%s: clip_value must be a non-negative number, got %s", name, tostring(clip_value)))
    end
    C.clip_grad_value(list, clip_value)
  end
  ---------------------------------------------------------------------------
  -- Issue 13's schedulers, PyTorch 1.13's formulas (the chainable ones from
  -- the group's current lr, as torch/optim/lr_scheduler.py computes them).

  kinds.callable = {function(v)
    if type(v) == "function" then return true end
    if type(v) ~= "table" or nn.is_tensor(v) or #v == 0 then return false end
    for _, f in ipairs(v) do if type(f) ~= "function" then return false end end
    return true
  end, "a function of the epoch, or a list of one per parameter group"}
  kinds.unit = {function(v) return is_number(v) and v >= 0 and v <= 1 end, "a number in [0, 1]"}
  kinds.start_factor = {function(v) return is_number(v) and v > 0 and v <= 1 end, "a number in (0, 1]"}
  kinds.lr_or_list = {function(v)
    if is_number(v) then return v >= 0 end
    if type(v) ~= "table" or nn.is_tensor(v) or #v == 0 then return false end
    for _, x in ipairs(v) do if not (is_number(x) and x >= 0) then return false end end
    return true
  end, "a non-negative number or a list of one per parameter group"}
  kinds.optional_positive_integer = {function(v) return v == false or (is_integer(v) and v > 0) end,
    "a positive integer"}
  kinds.anneal = {function(v) return v == "cos" or v == "linear" end, '"cos" or "linear"'}
  kinds.cyclic_mode = {function(v) return v == "triangular" or v == "triangular2" or v == "exp_range" end,
    '"triangular", "triangular2" or "exp_range"'}
  kinds.scale_mode = {function(v) return v == "cycle" or v == "iterations" end, '"cycle" or "iterations"'}
  kinds.optional_function = {function(v) return v == false or type(v) == "function" end, "a function"}
  kinds.boolean = {function(v) return type(v) == "boolean" end, "a boolean"}
  kinds.optional_positive = {function(v) return v == false or (is_number(v) and v > 0) end, "a positive number"}

  -- One value per parameter group from a value or a list (named what, for errors).
  local function per_group(name, what, v, groups)
    if type(v) ~= "table" then
      local list = {}
      for i = 1, groups do list[i] = v end
      return list
    end
    if #v ~= groups then
      raise(string.format("%s: %s has %d values, the optimizer %d parameter groups", name, what, #v, groups))
    end
    return copy_value(v)
  end

  -- The functions of lr_lambda, one per group.
  local function lambdas(self)
    return per_group(self.__name, "lr_lambda", self.lr_lambda, #self.optimizer.param_groups)
  end

  --- nn.optim.lr_scheduler.LambdaLR(opt, {lr_lambda}): each group's lr is its
  -- initial lr times lr_lambda(epoch) (a function, or a list of one per group).
  --   LambdaLR(opt, {lr_lambda = function(epoch) return 0.95 ^ epoch end})
  epoch_scheduler("LambdaLR", {
    {"lr_lambda", nil, "callable"},
  }, function(self)
    local fs, lrs = lambdas(self), {}
    for i, base in ipairs(self.base_lrs) do lrs[i] = base * fs[i](self.last_epoch) end
    return lrs
  end)

  --- nn.optim.lr_scheduler.MultiplicativeLR(opt, {lr_lambda}): each epoch
  -- multiplies each group's lr by lr_lambda(epoch).
  --   MultiplicativeLR(opt, {lr_lambda = function() return 0.95 end})
  epoch_scheduler("MultiplicativeLR", {
    {"lr_lambda", nil, "callable"},
  }, function(self)
    local lrs = current_lrs(self.optimizer)
    if self.last_epoch <= 0 then return lrs end
    local fs = lambdas(self)
    for i = 1, #lrs do lrs[i] = lrs[i] * fs[i](self.last_epoch) end
    return lrs
  end)

  --- nn.optim.lr_scheduler.LinearLR(opt, {start_factor = 1/3, end_factor = 1,
  -- total_iters = 5}): multiplies the lr by a factor going linearly from
  -- start_factor to end_factor over total_iters epochs (a warm-up), then keeps it.
  --   LinearLR(opt, {start_factor = 0.1, total_iters = 10})
  local LinearLR = epoch_scheduler("LinearLR", {
    {"start_factor", 1 / 3, "start_factor"},
    {"end_factor", 1.0, "unit"},
    {"total_iters", 5, "positive_integer"},
  }, function(self)
    local lrs = current_lrs(self.optimizer)
    local e, a, b, n = self.last_epoch, self.start_factor, self.end_factor, self.total_iters
    if e == 0 then
      for i = 1, #lrs do lrs[i] = lrs[i] * a end
    elseif e <= n then
      for i = 1, #lrs do lrs[i] = lrs[i] * (1 + (b - a) / (n * a + (e - 1) * (b - a))) end
    end
    return lrs
  end)
  function LinearLR:_lr_at_zero(base) return base * self.start_factor end

  --- nn.optim.lr_scheduler.ConstantLR(opt, {factor = 1/3, total_iters = 5}):
  -- multiplies the lr by factor for the first total_iters epochs.
  --   ConstantLR(opt, {factor = 0.5, total_iters = 4})
  local ConstantLR = epoch_scheduler("ConstantLR", {
    {"factor", 1 / 3, "unit"},
    {"total_iters", 5, "positive_integer"},
  }, function(self)
    local lrs = current_lrs(self.optimizer)
    if self.last_epoch == 0 then
      for i = 1, #lrs do lrs[i] = lrs[i] * self.factor end
    elseif self.last_epoch == self.total_iters then
      for i = 1, #lrs do lrs[i] = lrs[i] * (1 / self.factor) end
    end
    return lrs
  end)
  function ConstantLR:_lr_at_zero(base) return base * self.factor end

  --- nn.optim.lr_scheduler.PolynomialLR(opt, {total_iters = 5, power = 1}):
  -- decays the lr as (1 - epoch / total_iters)^power, to 0 at total_iters.
  --   PolynomialLR(opt, {total_iters = 100, power = 2})
  epoch_scheduler("PolynomialLR", {
    {"total_iters", 5, "positive_integer"},
    {"power", 1.0, "number"},
  }, function(self)
    local lrs = current_lrs(self.optimizer)
    local e, n = self.last_epoch, self.total_iters
    if e == 0 or e > n then return lrs end
    local factor = ((1 - e / n) / (1 - (e - 1) / n)) ^ self.power
    for i = 1, #lrs do lrs[i] = lrs[i] * factor end
    return lrs
  end)

  --- nn.optim.lr_scheduler.CosineAnnealingWarmRestarts(opt, {T_0, T_mult = 1, eta_min = 0}):
  -- SGDR (Loshchilov and Hutter, 2017): the lr follows half a cosine from its
  -- initial value to eta_min over T_i epochs, then restarts, T_i starting at
  -- T_0 and multiplied by T_mult at each restart. sched:step([epoch]) also
  -- takes a fractional epoch (epoch + batch / batches) to anneal within an epoch.
  --   CosineAnnealingWarmRestarts(opt, {T_0 = 10, T_mult = 2})
  local WarmRestarts = epoch_scheduler("CosineAnnealingWarmRestarts", {
    {"T_0", nil, "positive_integer"},
    {"T_mult", 1, "positive_integer"},
    {"eta_min", 0, "number"},
  }, function(self)
    local lrs = {}
    for i, base in ipairs(self.base_lrs) do
      lrs[i] = self.eta_min + (base - self.eta_min) * (1 + math.cos(math.pi * self.T_cur / self.T_i)) / 2
    end
    return lrs
  end)

  function WarmRestarts:step(epoch)
    if self.T_i == nil then self.T_i, self.T_cur = self.T_0, -1 end
    if epoch == nil and self.last_epoch < 0 then epoch = 0 end
    if epoch == nil then
      epoch = self.last_epoch + 1
      self.T_cur = self.T_cur + 1
      if self.T_cur >= self.T_i then
        self.T_cur = self.T_cur - self.T_i
        self.T_i = self.T_i * self.T_mult
      end
    else
      if not is_number(epoch) or epoch < 0 then
        raise("CosineAnnealingWarmRestarts: epoch must be a non-negative number, got " .. tostring(epoch))
      end
      if epoch >= self.T_0 then
        if self.T_mult == 1 then
          self.T_cur = epoch % self.T_0
        else
          local n = math.floor(math.log(epoch / self.T_0 * (self.T_mult - 1) + 1) / math.log(self.T_mult))
          self.T_cur = epoch - self.T_0 * (self.T_mult ^ n - 1) / (self.T_mult - 1)
          self.T_i = self.T_0 * self.T_mult ^ n
        end
      else
        self.T_i, self.T_cur = self.T_0, epoch
      end
    end
    self._step_count = self._step_count + 1
    self.last_epoch = math.floor(epoch)
    local values = self:get_lr()
    for i, g in ipairs(self.optimizer.param_groups) do g.lr = values[i] end
    self._last_lr = current_lrs(self.optimizer)
  end

  -- The momentum of a group: its momentum, or Adam's beta1.
  local function set_momentum(group, use_beta1, m)
    if use_beta1 then group.betas = {m, group.betas[2]} else group.momentum = m end
  end

  --- nn.optim.lr_scheduler.OneCycleLR(opt, {max_lr, total_steps | epochs and
  -- steps_per_epoch, pct_start = 0.3, anneal_strategy = "cos", cycle_momentum = true,
  -- base_momentum = 0.85, max_momentum = 0.95, div_factor = 25,
  -- final_div_factor = 1e4, three_phase = false}): Smith's one-cycle policy,
  -- stepped once per batch: the lr climbs from max_lr / div_factor to max_lr
  -- over pct_start of the steps, then anneals to initial / final_div_factor;
  -- the momentum (SGD's momentum or Adam's beta1) cycles the other way.
  --   OneCycleLR(opt, {max_lr = 0.1, epochs = 10, steps_per_epoch = #loader})
  local OneCycle = new_class("OneCycleLR", {
    {"max_lr", nil, "lr_or_list"},
    {"total_steps", false, "optional_positive_integer"},
    {"epochs", false, "optional_positive_integer"},
    {"steps_per_epoch", false, "optional_positive_integer"},
    {"pct_start", 0.3, "unit"},
    {"anneal_strategy", "cos", "anneal"},
    {"cycle_momentum", true, "boolean"},
    {"base_momentum", 0.85, "lr_or_list"},
    {"max_momentum", 0.95, "lr_or_list"},
    {"div_factor", 25.0, "positive"},
    {"final_div_factor", 1e4, "positive"},
    {"three_phase", false, "boolean"},
  })

  local function anneal(strategy, start, stop, pct)
    if strategy == "cos" then return stop + (start - stop) / 2 * (math.cos(math.pi * pct) + 1) end
    return (stop - start) * pct + start
  end

  function OneCycle.new(c, optimizer, opts)
    local name = c.__name
    check_optimizer(name, optimizer)
    local self = setmetatable({optimizer = optimizer}, c)
    read_options(c, self, opts)
    if self.total_steps then
      self._total = self.total_steps
    elseif self.epochs and self.steps_per_epoch then
      self._total = self.epochs * self.steps_per_epoch
    else
      raise(name .. ": give total_steps, or epochs and steps_per_epoch")
    end
    local total, pct = self._total, self.pct_start
    if self.three_phase then
      self._phases = {
        {pct * total - 1, "initial_lr", "max_lr", "max_momentum", "base_momentum"},
        {2 * pct * total - 2, "max_lr", "initial_lr", "base_momentum", "max_momentum"},
        {total - 1, "initial_lr", "min_lr", "max_momentum", "max_momentum"},
      }
    else
      self._phases = {
        {pct * total - 1, "initial_lr", "max_lr", "max_momentum", "base_momentum"},
        {total - 1, "max_lr", "min_lr", "base_momentum", "max_momentum"},
      }
    end
    local groups = optimizer.param_groups
    local max_lrs = per_group(name, "max_lr", self.max_lr, #groups)
    for i, g in ipairs(groups) do
      g.initial_lr = max_lrs[i] / self.div_factor
      g.max_lr = max_lrs[i]
      g.min_lr = g.initial_lr / self.final_div_factor
    end
    if self.cycle_momentum then
      local defaults = optimizer.defaults or {}
      if defaults.momentum == nil and defaults.betas == nil then
        raise(name .. ": the optimizer has no momentum (nor betas) to cycle; set cycle_momentum = false")
      end
      self._use_beta1 = defaults.betas ~= nil
      local maxs = per_group(name, "max_momentum", self.max_momentum, #groups)
      local bases = per_group(name, "base_momentum", self.base_momentum, #groups)
      for i, g in ipairs(groups) do
        set_momentum(g, self._use_beta1, maxs[i])
        g.max_momentum, g.base_momentum = maxs[i], bases[i]
      end
    end
    self.base_lrs = {}
    for i, g in ipairs(groups) do self.base_lrs[i] = g.initial_lr end
    self.last_epoch = -1
    self._step_count = 0
    self:step()
    return self
  end

  function OneCycle:get_lr()
    local step = self.last_epoch
    if step > self._total then
      raise(string.format("OneCycleLR: tried to step %d times; total_steps is %d", step, self._total))
    end
    local lrs = {}
    for i, g in ipairs(self.optimizer.param_groups) do
      local start = 0
      for k, phase in ipairs(self._phases) do
        local stop = phase[1]
        if step <= stop or k == #self._phases then
          local pct = (step - start) / (stop - start)
          lrs[i] = anneal(self.anneal_strategy, g[phase[2]], g[phase[3]], pct)
          if self.cycle_momentum then
            set_momentum(g, self._use_beta1, anneal(self.anneal_strategy, g[phase[4]], g[phase[5]], pct))
          end
          break
        end
        start = stop
      end
    end
    return lrs
  end

  --- sched:step(): the next batch's learning rate (and momentum).
  function OneCycle:step()
    self._step_count = self._step_count + 1
    self.last_epoch = self.last_epoch + 1
    local values = self:get_lr()
    for i, g in ipairs(self.optimizer.param_groups) do g.lr = values[i] end
    self._last_lr = current_lrs(self.optimizer)
  end

  --- nn.optim.lr_scheduler.CyclicLR(opt, {base_lr, max_lr, step_size_up = 2000,
  -- step_size_down = step_size_up, mode = "triangular", gamma = 1, scale_fn,
  -- scale_mode, cycle_momentum = true, base_momentum = 0.8, max_momentum = 0.9}):
  -- Smith's cyclical learning rates, stepped once per batch: the lr goes from
  -- base_lr up to max_lr in step_size_up steps and back in step_size_down;
  -- "triangular2" halves the amplitude each cycle, "exp_range" scales it by
  -- gamma^step; scale_fn(x) replaces the mode (x the cycle, or the step with
  -- scale_mode = "iterations"). The momentum (SGD's) cycles the other way.
  --   CyclicLR(opt, {base_lr = 0.001, max_lr = 0.1, step_size_up = 500})
  local Cyclic = new_class("CyclicLR", {
    {"base_lr", nil, "lr_or_list"},
    {"max_lr", nil, "lr_or_list"},
    {"step_size_up", 2000, "positive"},
    {"step_size_down", false, "optional_positive"},
    {"mode", "triangular", "cyclic_mode"},
    {"gamma", 1.0, "number"},
    {"scale_fn", false, "optional_function"},
    {"scale_mode", "cycle", "scale_mode"},
    {"cycle_momentum", true, "boolean"},
    {"base_momentum", 0.8, "lr_or_list"},
    {"max_momentum", 0.9, "lr_or_list"},
  })

  function Cyclic.new(c, optimizer, opts)
    local name = c.__name
    check_optimizer(name, optimizer)
    local self = setmetatable({optimizer = optimizer}, c)
    local given_scale_mode = type(opts) == "table" and opts.scale_mode
    read_options(c, self, opts)
    local groups = optimizer.param_groups
    self.base_lrs = per_group(name, "base_lr", self.base_lr, #groups)
    for i, g in ipairs(groups) do
      g.lr = self.base_lrs[i]
      g.initial_lr = g.initial_lr or g.lr
    end
    self.max_lrs = per_group(name, "max_lr", self.max_lr, #groups)
    local up = self.step_size_up
    local down = self.step_size_down or up
    self._total_size = up + down
    self._step_ratio = up / self._total_size
    if self.cycle_momentum then
      if (optimizer.defaults or {}).momentum == nil then
        raise(name .. ": the optimizer has no momentum to cycle; set cycle_momentum = false")
      end
      self.base_momentums = per_group(name, "base_momentum", self.base_momentum, #groups)
      self.max_momentums = per_group(name, "max_momentum", self.max_momentum, #groups)
      for i, g in ipairs(groups) do g.momentum = self.base_momentums[i] end
    end
    if not self.scale_fn then
      self._scale_mode = self.mode == "exp_range" and "iterations" or "cycle"
    else
      self._scale_mode = given_scale_mode or "cycle"
    end
    self.last_epoch = -1
    self._step_count = 0
    self:step()
    return self
  end

  function Cyclic:_scale(x)
    if self.scale_fn then return self.scale_fn(x) end
    if self.mode == "triangular" then return 1.0 end
    if self.mode == "triangular2" then return 1 / 2.0 ^ (x - 1) end
    return self.gamma ^ x
  end

  function Cyclic:get_lr()
    local e = self.last_epoch
    local cycle = math.floor(1 + e / self._total_size)
    local x = 1 + e / self._total_size - cycle
    local scale_factor
    if x <= self._step_ratio then scale_factor = x / self._step_ratio else scale_factor = (x - 1) / (self._step_ratio - 1) end
    local scale = self:_scale(self._scale_mode == "cycle" and cycle or e)
    local lrs = {}
    for i, base in ipairs(self.base_lrs) do lrs[i] = base + (self.max_lrs[i] - base) * scale_factor * scale end
    if self.cycle_momentum then
      for i, g in ipairs(self.optimizer.param_groups) do
        g.momentum = self.max_momentums[i] - (self.max_momentums[i] - self.base_momentums[i]) * scale_factor * scale
      end
    end
    return lrs
  end
  Cyclic.step = OneCycle.step

  -- A scheduler's lr for each group at epoch 0 when SequentialLR restarts it:
  -- PyTorch's closed form there (base lr, or its factor), or get_lr at 0.
  local function restart(s)
    s.last_epoch = 0
    s._step_count = (s._step_count or 0) + 1
    local values
    if s._lr_at_zero then
      values = {}
      for i, base in ipairs(s.base_lrs) do values[i] = s:_lr_at_zero(base) end
    elseif s.__name == "LambdaLR" or s.__name == "MultiplicativeLR" or s.__name == "CyclicLR"
      or s.__name == "OneCycleLR" then
      values = s:get_lr()
    else
      values = copy_value(s.base_lrs)
    end
    for i, g in ipairs(s.optimizer.param_groups) do g.lr = values[i] end
    s._last_lr = current_lrs(s.optimizer)
  end

  local function check_schedulers(name, list)
    if type(list) ~= "table" or #list == 0 then raise(name .. ": schedulers must be a non-empty list of schedulers") end
    for i, s in ipairs(list) do
      if type(s) ~= "table" or type(s.step) ~= "function" or type(s.optimizer) ~= "table" then
        raise(string.format("%s: schedulers[%d] is not a scheduler", name, i))
      end
      if s.optimizer ~= list[1].optimizer then
        raise(string.format("%s: schedulers[%d] has another optimizer than schedulers[1]", name, i))
      end
    end
  end

  --- nn.optim.lr_scheduler.SequentialLR(opt, {schedulers, milestones}): runs
  -- schedulers[1] until epoch milestones[1], then schedulers[2] (restarted at
  -- its epoch 0), and so on; #milestones = #schedulers - 1.
  --   local warm = LinearLR(opt, {start_factor = 0.1, total_iters = 5})
  --   local decay = ExponentialLR(opt, {gamma = 0.9})
  --   SequentialLR(opt, {schedulers = {warm, decay}, milestones = {5}})
  local Sequential = new_class("SequentialLR", {
    {"milestones", nil, "milestones"},
  })

  function Sequential.new(c, optimizer, opts)
    local name = c.__name
    check_optimizer(name, optimizer)
    local self = setmetatable({optimizer = optimizer}, c)
    if type(opts) ~= "table" then raise(name .. ": options must be a table {schedulers =, milestones =}") end
    local list = opts.schedulers
    read_options(c, self, {milestones = opts.milestones})
    check_schedulers(name, list)
    self.schedulers = list
    if list[1].optimizer ~= optimizer then raise(name .. ": the schedulers must drive this optimizer") end
    if #self.milestones ~= #list - 1 then
      raise(string.format("%s: %d schedulers need %d milestones, got %d", name, #list, #list - 1, #self.milestones))
    end
    self.last_epoch = 0
    for _, g in ipairs(optimizer.param_groups) do g.lr = g.initial_lr end
    for _, s in ipairs(list) do s.last_epoch = s.last_epoch - 1 end
    local first = list[1]
    first._step_count = 0
    first:step()
    self._last_lr = first:get_last_lr()
    return self
  end

  --- sched:step(): steps the scheduler whose turn it is.
  function Sequential:step()
    self.last_epoch = self.last_epoch + 1
    local idx = 0
    for _, m in ipairs(self.milestones) do if m <= self.last_epoch then idx = idx + 1 end end
    local s = self.schedulers[idx + 1]
    if idx > 0 and self.milestones[idx] == self.last_epoch then restart(s) else s:step() end
    self._last_lr = s:get_last_lr()
  end

  --- nn.optim.lr_scheduler.ChainedScheduler(schedulers): steps every scheduler
  -- of the list at each step, their factors multiplying.
  --   ChainedScheduler{ConstantLR(opt, {factor = 0.5, total_iters = 2}), ExponentialLR(opt, {gamma = 0.9})}
  local Chained = new_class("ChainedScheduler", {})
  function Chained.new(c, schedulers)
    check_schedulers(c.__name, schedulers)
    local self = setmetatable({schedulers = schedulers, optimizer = schedulers[1].optimizer}, c)
    self._last_lr = current_lrs(schedulers[#schedulers].optimizer)
    return self
  end
  function Chained:step()
    for _, s in ipairs(self.schedulers) do s:step() end
    self._last_lr = current_lrs(self.schedulers[#self.schedulers].optimizer)
  end

  ---------------------------------------------------------------------------
  --- nn.utils.parameters_to_vector(params): the parameters (a list, or a
  -- module's) flattened and joined into one vector, a copy.
  --   local v = nn.utils.parameters_to_vector(model:parameters())
  function nn.utils.parameters_to_vector(params)
    if nn.is_module(params) then params = params:parameters() end
    if type(params) ~= "table" or nn.is_tensor(params) then
      raise("parameters_to_vector: expected a list of tensors (model:parameters()), got " .. type(params))
    end
    local views = {}
    for i, p in ipairs(params) do
      if not nn.is_tensor(p) then raise(string.format("parameters_to_vector: params[%d] is a %s, not a tensor", i, type(p))) end
      if p.device ~= params[1].device then
        raise(string.format("parameters_to_vector: params[%d] is on %s, params[1] on %s", i, p.device, params[1].device))
      end
      views[i] = p:reshape(-1)
    end
    if #views == 0 then raise("parameters_to_vector: the list of parameters is empty") end
    return nn.cat(views, 1)
  end

  --- nn.utils.vector_to_parameters(vec, params): copies consecutive pieces of
  -- the vector vec into the parameters (in place), parameters_to_vector's inverse.
  --   nn.utils.vector_to_parameters(v, model:parameters())
  function nn.utils.vector_to_parameters(vec, params)
    if not nn.is_tensor(vec) or vec:dim() ~= 1 then
      raise("vector_to_parameters: vec must be a 1-dimensional tensor, got "
        .. (nn.is_tensor(vec) and vec:dim() .. " dimensions" or type(vec)))
    end
    if nn.is_module(params) then params = params:parameters() end
    if type(params) ~= "table" or nn.is_tensor(params) then
      raise("vector_to_parameters: expected a list of tensors (model:parameters()), got " .. type(params))
    end
    local total = 0
    for i, p in ipairs(params) do
      if not nn.is_tensor(p) then raise(string.format("vector_to_parameters: params[%d] is a %s, not a tensor", i, type(p))) end
      total = total + p:numel()
    end
    if total ~= vec:numel() then
      raise(string.format("vector_to_parameters: vec has %d elements, the parameters %d", vec:numel(), total))
    end
    nn.no_grad(function()
      local offset = 0
      for _, p in ipairs(params) do
        local n = p:numel()
        p:copy_(vec:narrow(1, offset + 1, n):view(p:size()))
        offset = offset + n
      end
    end)
  end
end

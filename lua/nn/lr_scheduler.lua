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
  -- clipping, as a 0-dim tensor (float32 unless a gradient is float64).
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
end

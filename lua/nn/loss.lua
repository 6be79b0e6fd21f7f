-- Losses as modules: criterion(input, target).
--
-- A loss's forward is C.loss_forward(fn, class, field...): a C function that
-- calls fn(input, target, self.field...), since a training step calls it
-- every time (no Lua call, and it checks its own arguments).
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
  MSELoss.forward = C.loss_forward(C.mse_loss, "MSELoss", "reduction")
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
  BCELoss.forward = C.loss_forward(C.binary_cross_entropy, "BCELoss", "weight", "reduction")
  function BCELoss:extra_repr() return "reduction=" .. self.reduction end

  ---------------------------------------------------------------------------
  -- The other losses: each a module (nn.L1Loss{...}) and a function
  -- (nn.F.l1_loss(input, target, {...})), both over one C function.

  local F = nn.F
  local with_batchmean = {mean = true, sum = true, none = true, batchmean = true}

  -- Checks an options table against the keys a loss knows, so that a
  -- misspelt option is an error rather than silently ignored.
  local function options_of(opts, name, keys, allowed_reductions)
    if opts == nil then opts = {} end
    if type(opts) ~= "table" then
      raise(name .. ": options must be a table like {reduction = 'sum'}, got " .. type(opts))
    end
    for key in pairs(opts) do
      if key ~= "reduction" and not keys[key] then
        local known = {"reduction"}
        for k in pairs(keys) do known[#known + 1] = k end
        table.sort(known)
        raise(string.format("%s: unknown option '%s' (known: %s)", name, tostring(key),
          table.concat(known, ", ")))
      end
    end
    local r = opts.reduction or "mean"
    local allowed = allowed_reductions or reductions
    if not allowed[r] then
      raise(string.format("%s: reduction must be %s, got '%s'", name,
        allowed == with_batchmean and "'mean', 'batchmean', 'sum' or 'none'" or "'mean', 'sum' or 'none'",
        tostring(r)))
    end
    return opts, r
  end

  local function tensor_option(opts, key, name)
    local v = opts[key]
    if v ~= nil and not nn.is_tensor(v) then raise(name .. ": " .. key .. " must be a tensor, got " .. type(v)) end
    return v
  end

  local function number_option(opts, key, name, default, ok, requirement)
    local v = opts[key]
    if v == nil then return default end
    if type(v) ~= "number" then raise(name .. ": " .. key .. " must be a number, got " .. type(v)) end
    if not ok(v) then raise(string.format("%s: %s must be %s, got %s", name, key, requirement, tostring(v))) end
    return v
  end

  local function non_negative(v) return v >= 0 and v < math.huge end
  local function positive(v) return v > 0 and v < math.huge end
  local function fraction(v) return v >= 0 and v <= 1 end

  -- ignore_index is a label as the user writes it: an integer.
  local function ignore_index_option(opts, name)
    local v = opts.ignore_index
    if v == nil then return -100 end
    if math.type(v) == "float" and v == math.floor(v) and math.abs(v) < 2^53 then v = math.tointeger(v) end
    if math.type(v) ~= "integer" then
      raise(name .. ": ignore_index must be an integer, got " .. (type(v) == "number" and tostring(v) or type(v)))
    end
    return v
  end

  local function boolean_option(opts, key, name)
    local v = opts[key]
    if v == nil then return false end
    if type(v) ~= "boolean" then raise(name .. ": " .. key .. " must be a boolean, got " .. type(v)) end
    return v
  end

  local function fmt(v) return string.format("%g", v) end

  -- A function (nn.F.*) also takes the reduction alone, as a string, as
  -- F.mse_loss does.
  local function function_options(opts)
    if type(opts) == "string" then return {reduction = opts} end
    return opts
  end

  --- nn.L1Loss({reduction = "mean"}): |input - target|, reduced.
  -- nn.F.l1_loss(input, target [, {reduction = "mean"}]).
  local L1Loss = Module:extend("L1Loss")
  nn.L1Loss = L1Loss
  function L1Loss:init(opts) local _, r = options_of(opts, "L1Loss", {}); self.reduction = r end
  L1Loss.forward = C.loss_forward(C.l1_loss, "L1Loss", "reduction")
  function L1Loss:extra_repr() return "reduction=" .. self.reduction end
  function F.l1_loss(input, target, opts)
    local _, r = options_of(function_options(opts), "l1_loss", {})
    return C.l1_loss(input, target, r)
  end

  --- nn.SmoothL1Loss({beta = 1, reduction = "mean"}): with d = input - target,
  -- 0.5 d^2 / beta where |d| < beta, else |d| - 0.5 beta (beta >= 0; 0 is L1).
  -- nn.F.smooth_l1_loss(input, target [, {beta = 1, reduction = "mean"}]).
  local SmoothL1Loss = Module:extend("SmoothL1Loss")
  nn.SmoothL1Loss = SmoothL1Loss
  local smooth_l1_keys = {beta = true}
  local function smooth_l1_options(opts, name)
    local o, r = options_of(opts, name, smooth_l1_keys)
    return r, number_option(o, "beta", name, 1.0, non_negative, "a finite number >= 0")
  end
  function SmoothL1Loss:init(opts) self.reduction, self.beta = smooth_l1_options(opts, "SmoothL1Loss") end
  SmoothL1Loss.forward = C.loss_forward(C.smooth_l1_loss, "SmoothL1Loss", "reduction", "beta")
  function SmoothL1Loss:extra_repr() return "beta=" .. fmt(self.beta) .. ", reduction=" .. self.reduction end
  function F.smooth_l1_loss(input, target, opts)
    local r, beta = smooth_l1_options(function_options(opts), "smooth_l1_loss")
    return C.smooth_l1_loss(input, target, r, beta)
  end

  --- nn.HuberLoss({delta = 1, reduction = "mean"}): with d = input - target,
  -- 0.5 d^2 where |d| < delta, else delta (|d| - 0.5 delta) (delta > 0).
  -- nn.F.huber_loss(input, target [, {delta = 1, reduction = "mean"}]).
  local HuberLoss = Module:extend("HuberLoss")
  nn.HuberLoss = HuberLoss
  local huber_keys = {delta = true}
  local function huber_options(opts, name)
    local o, r = options_of(opts, name, huber_keys)
    return r, number_option(o, "delta", name, 1.0, positive, "a finite number > 0")
  end
  function HuberLoss:init(opts) self.reduction, self.delta = huber_options(opts, "HuberLoss") end
  HuberLoss.forward = C.loss_forward(C.huber_loss, "HuberLoss", "reduction", "delta")
  function HuberLoss:extra_repr() return "delta=" .. fmt(self.delta) .. ", reduction=" .. self.reduction end
  function F.huber_loss(input, target, opts)
    local r, delta = huber_options(function_options(opts), "huber_loss")
    return C.huber_loss(input, target, r, delta)
  end

  --- nn.BCEWithLogitsLoss({weight =, pos_weight =, reduction = "mean"}): a
  -- sigmoid and binary cross-entropy in one, stable for any logit:
  -- weight * ((1 - y) x + (1 + (pos_weight - 1) y) log(1 + exp(-x))), which
  -- is max(x, 0) - x y + log(1 + exp(-|x|)) without pos_weight. weight
  -- broadcasts to the input's shape; pos_weight (often one value per class,
  -- the last dimension) weighs the positive term, as in PyTorch.
  -- nn.F.binary_cross_entropy_with_logits(input, target [, {weight =, pos_weight =, reduction =}]).
  local BCEWithLogitsLoss = Module:extend("BCEWithLogitsLoss")
  nn.BCEWithLogitsLoss = BCEWithLogitsLoss
  local bce_logits_keys = {weight = true, pos_weight = true}
  local function bce_logits_options(opts, name)
    local o, r = options_of(opts, name, bce_logits_keys)
    return r, tensor_option(o, "weight", name), tensor_option(o, "pos_weight", name)
  end
  function BCEWithLogitsLoss:init(opts)
    local r, weight, pos_weight = bce_logits_options(opts, "BCEWithLogitsLoss")
    self.reduction = r
    -- buffers, as in PyTorch: they follow m:to() and appear in state_dict()
    self:register_buffer("weight", weight)
    self:register_buffer("pos_weight", pos_weight)
  end
  BCEWithLogitsLoss.forward = C.loss_forward(C.binary_cross_entropy_with_logits, "BCEWithLogitsLoss",
    "weight", "pos_weight", "reduction")
  function BCEWithLogitsLoss:extra_repr() return "reduction=" .. self.reduction end
--- F.binary_cross_entropy_with_logits(input, target [, {weight =, pos_weight =, reduction = "mean"}]): nn.BCEWithLogitsLoss as a function.
  function F.binary_cross_entropy_with_logits(input, target, opts)
    local r, weight, pos_weight = bce_logits_options(function_options(opts), "binary_cross_entropy_with_logits")
    return C.binary_cross_entropy_with_logits(input, target, weight, pos_weight, r)
  end

  --- nn.CrossEntropyLoss({weight =, ignore_index = -100, label_smoothing = 0,
  -- reduction = "mean"}): log_softmax over the classes and the negative
  -- log-likelihood, in one. input: logits (N, C), (C) or (N, C, d1, ...).
  -- target: class labels 1..C (an int64 tensor, or whole numbers in a float
  -- tensor) of shape (N), () or (N, d1, ...); or class probabilities of the
  -- input's shape. weight: (C), each class's weight; the mean over labels is
  -- then sum(w_t l) / sum(w_t), as in PyTorch (over probabilities it divides
  -- by the number of positions). ignore_index: a label, as you write it, whose
  -- positions add nothing to the loss, its mean or its gradient; so it is
  -- 1-based like the labels (ignore_index = 3 skips class 3), and 0, never
  -- a class, is a handy padding label. The default -100 matches no label.
  -- label_smoothing: mixes the target with the uniform distribution, as
  -- PyTorch 1.13 does, for labels and probabilities alike.
  -- nn.F.cross_entropy(input, target [, {the same options}]).
  local CrossEntropyLoss = Module:extend("CrossEntropyLoss")
  nn.CrossEntropyLoss = CrossEntropyLoss
  local cross_entropy_keys = {weight = true, ignore_index = true, label_smoothing = true}
  local function cross_entropy_options(opts, name)
    local o, r = options_of(opts, name, cross_entropy_keys)
    return r, tensor_option(o, "weight", name), ignore_index_option(o, name),
      number_option(o, "label_smoothing", name, 0.0, fraction, "between 0 and 1")
  end
  function CrossEntropyLoss:init(opts)
    local r, weight
    r, weight, self.ignore_index, self.label_smoothing = cross_entropy_options(opts, "CrossEntropyLoss")
    self.reduction = r
    self:register_buffer("weight", weight)
  end
  CrossEntropyLoss.forward = C.loss_forward(C.cross_entropy, "CrossEntropyLoss", "weight", "reduction",
    "ignore_index", "label_smoothing")
  function CrossEntropyLoss:extra_repr()
    local parts = {}
    if self.ignore_index ~= -100 then parts[#parts + 1] = "ignore_index=" .. self.ignore_index end
    if self.label_smoothing ~= 0 then parts[#parts + 1] = "label_smoothing=" .. fmt(self.label_smoothing) end
    parts[#parts + 1] = "reduction=" .. self.reduction
    return table.concat(parts, ", ")
  end
--- F.cross_entropy(input, target [, {weight =, ignore_index = -100, label_smoothing = 0, reduction = "mean"}]): nn.CrossEntropyLoss as a function (labels 1..C).
  function F.cross_entropy(input, target, opts)
    local r, weight, ignore_index, label_smoothing = cross_entropy_options(function_options(opts), "cross_entropy")
    return C.cross_entropy(input, target, weight, r, ignore_index, label_smoothing)
  end

  --- nn.NLLLoss({weight =, ignore_index = -100, reduction = "mean"}): the
  -- negative log-likelihood of class labels under log-probabilities (say, a
  -- LogSoftmax's output): -w_t input[t] at each position, reduced as
  -- CrossEntropyLoss is. Labels and ignore_index as in CrossEntropyLoss
  -- (1-based); no class probabilities.
  -- nn.F.nll_loss(input, target [, {weight =, ignore_index = -100, reduction =}]).
  local NLLLoss = Module:extend("NLLLoss")
  nn.NLLLoss = NLLLoss
  local nll_keys = {weight = true, ignore_index = true}
  local function nll_options(opts, name)
    local o, r = options_of(opts, name, nll_keys)
    return r, tensor_option(o, "weight", name), ignore_index_option(o, name)
  end
  function NLLLoss:init(opts)
    local r, weight
    r, weight, self.ignore_index = nll_options(opts, "NLLLoss")
    self.reduction = r
    self:register_buffer("weight", weight)
  end
  NLLLoss.forward = C.loss_forward(C.nll_loss, "NLLLoss", "weight", "reduction", "ignore_index")
  function NLLLoss:extra_repr()
    local head = self.ignore_index ~= -100 and ("ignore_index=" .. self.ignore_index .. ", ") or ""
    return head .. "reduction=" .. self.reduction
  end
--- F.nll_loss(input, target [, {weight =, ignore_index = -100, reduction = "mean"}]): nn.NLLLoss as a function.
  function F.nll_loss(input, target, opts)
    local r, weight, ignore_index = nll_options(function_options(opts), "nll_loss")
    return C.nll_loss(input, target, weight, r, ignore_index)
  end

  --- nn.KLDivLoss({reduction = "mean", log_target = false}): the
  -- Kullback-Leibler divergence of the target distribution from the
  -- input's, pointwise: target (log target - input), input being
  -- log-probabilities (and target too when log_target). reduction:
  -- "mean" averages over every element, as PyTorch does (its default,
  -- though the mathematically right one is "batchmean": the sum divided by
  -- the batch size, input's first size), "sum" or "none".
  -- nn.F.kl_div(input, target [, {reduction = "mean", log_target = false}]).
  local KLDivLoss = Module:extend("KLDivLoss")
  nn.KLDivLoss = KLDivLoss
  local kl_keys = {log_target = true}
  local function kl_options(opts, name)
    local o, r = options_of(opts, name, kl_keys, with_batchmean)
    return r, boolean_option(o, "log_target", name)
  end
  function KLDivLoss:init(opts) self.reduction, self.log_target = kl_options(opts, "KLDivLoss") end
  KLDivLoss.forward = C.loss_forward(C.kl_div, "KLDivLoss", "reduction", "log_target")
  function KLDivLoss:extra_repr()
    return "reduction=" .. self.reduction .. (self.log_target and ", log_target=true" or "")
  end
--- F.kl_div(input, target [, {reduction = "mean", log_target = false}]): nn.KLDivLoss as a function.
  function F.kl_div(input, target, opts)
    local r, log_target = kl_options(function_options(opts), "kl_div")
    return C.kl_div(input, target, r, log_target)
  end
end

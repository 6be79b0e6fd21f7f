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
  ---------------------------------------------------------------------------
  -- Issue 13's losses, composed from tensor ops (each backward is autograd's
  -- over them). PyTorch 1.13's formulas; reduction "mean" averages every
  -- element of the unreduced loss, "sum" adds them, "none" returns them.
  -- Their modules print as PyTorch's do, with nothing in the parentheses.

  local function reduce(loss, r)
    if r == "mean" then return loss:mean() end
    if r == "sum" then return loss:sum() end
    return loss
  end

  local function tensor_argument(v, name, what)
    if not nn.is_tensor(v) then
      raise(string.format("%s: %s must be a tensor, got %s", name, what, type(v)))
    end
    if what ~= "target" and what ~= "y" and v.dtype ~= "float32" and v.dtype ~= "float64" then
      raise(string.format("%s: %s must be float32 or float64, got %s", name, what, v.dtype))
    end
    return v
  end

  local function shape_text(t) return "(" .. table.concat(t:size(), ", ") .. ")" end

  local function same_dims(name, ...)
    local ts = {...}
    for i = 2, #ts do
      if ts[i]:dim() ~= ts[1]:dim() then
        local shapes = {}
        for j, t in ipairs(ts) do shapes[j] = shape_text(t) end
        raise(string.format("%s: all inputs must have the same number of dimensions, got sizes %s", name,
          table.concat(shapes, ", ")))
      end
    end
  end

  local function same_shape(name, a, b, what_a, what_b)
    if table.concat(a:size(), ",") ~= table.concat(b:size(), ",") or a:dim() ~= b:dim() then
      raise(string.format("%s: %s %s and %s %s must have the same shape", name, what_a, shape_text(a),
        what_b, shape_text(b)))
    end
  end

  -- Defines nn[class] and F[fn] over compute(self_or_options, ...tensors),
  -- the options read by read(opts, name) into fields of the module.
  local function define_loss(class, fn, arity, read, compute)
    local cls = Module:extend(class)
    nn[class] = cls
    function cls:init(opts) read(self, opts or {}, class) end
    if arity == 2 then
      function cls:forward(a, b) return compute(self, class, a, b) end
      F[fn] = function(a, b, opts)
        local o = {}
        read(o, function_options(opts) or {}, fn)
        return compute(o, fn, a, b)
      end
    else
      function cls:forward(a, b, c) return compute(self, class, a, b, c) end
      F[fn] = function(a, b, c, opts)
        local o = {}
        read(o, function_options(opts) or {}, fn)
        return compute(o, fn, a, b, c)
      end
    end
    return cls
  end

  local function any_number(v) return v == v and v > -math.huge and v < math.huge end

  -- A class weight: a buffer of a module (it follows m:to() and saves), a
  -- field of a function's options.
  local function weight_option(self, o, name)
    if self.register_buffer then
      self:register_buffer("weight", tensor_option(o, "weight", name))
    else
      self.weight = tensor_option(o, "weight", name)
    end
  end

  -- Options of a loss with only a margin.
  local function margin_reader(default)
    return function(self, opts, name)
      local o, r = options_of(opts, name, {margin = true})
      self.reduction = r
      self.margin = number_option(o, "margin", name, default, any_number, "a finite number")
    end
  end

  --- nn.MarginRankingLoss({margin = 0, reduction = "mean"}): for x1, x2 and a
  -- target y of 1 or -1 (one shape), max(0, -y (x1 - x2) + margin): y = 1 asks
  -- x1 to rank above x2 by margin. criterion(x1, x2, y);
  -- nn.F.margin_ranking_loss(x1, x2, y [, {margin =, reduction =}]).
  --   nn.MarginRankingLoss{margin = 0.1}(nn.tensor{1, 2}, nn.tensor{2, 1}, nn.tensor{1, 1})
  define_loss("MarginRankingLoss", "margin_ranking_loss", 3, margin_reader(0),
    function(self, name, x1, x2, y)
      tensor_argument(x1, name, "input1")
      tensor_argument(x2, name, "input2")
      tensor_argument(y, name, "target")
      same_dims(name, x1, x2, y)
      return reduce((-y * (x1 - x2) + self.margin):clamp_min(0), self.reduction)
    end)

  --- nn.HingeEmbeddingLoss({margin = 1, reduction = "mean"}): for input x and a
  -- target y of 1 or -1, x where y = 1 and max(0, margin - x) where y = -1
  -- (x is typically a distance).
  -- nn.F.hinge_embedding_loss(x, y [, {margin =, reduction =}]).
  --   nn.HingeEmbeddingLoss()(nn.tensor{0.3, 2}, nn.tensor{1, -1})
  define_loss("HingeEmbeddingLoss", "hinge_embedding_loss", 2, margin_reader(1),
    function(self, name, x, y)
      tensor_argument(x, name, "input")
      tensor_argument(y, name, "target")
      local zeros = nn.zeros(x:size(), {dtype = x.dtype, device = x.device})
      local margin_part = nn.where(y:ne(1), (self.margin - x):clamp_min(0), zeros)
      local self_part = nn.where(y:ne(-1), x, zeros)
      return reduce(margin_part + self_part, self.reduction)
    end)

  local function no_options(self, opts, name)
    local _, r = options_of(opts, name, {})
    self.reduction = r
  end

  --- nn.SoftMarginLoss({reduction = "mean"}): the two-class logistic loss
  -- log(1 + exp(-y x)) for a target y of 1 or -1. nn.F.soft_margin_loss(x, y [, {reduction =}]).
  --   nn.SoftMarginLoss()(nn.tensor{0.5, -2}, nn.tensor{1, -1})
  define_loss("SoftMarginLoss", "soft_margin_loss", 2, no_options,
    function(self, name, x, y)
      tensor_argument(x, name, "input")
      tensor_argument(y, name, "target")
      same_shape(name, x, y, "input", "target")
      return reduce(F.softplus(-y * x), self.reduction)
    end)

  -- Labels as a 0-based int64 tensor for gather, checked against classes.
  local function label_index(name, target, classes)
    if not nn.is_tensor(target) then raise(name .. ": target must be a tensor of class labels, got " .. type(target)) end
    local labels = target:to("int64")
    if labels:numel() > 0 then
      local lo, hi = labels:min():item(), labels:max():item()
      if lo < 1 or hi > classes then
        raise(string.format("%s: target holds label %d, outside 1..%d (labels count from 1)", name,
          lo < 1 and lo or hi, classes))
      end
    end
    return labels
  end

  --- nn.MultiMarginLoss({p = 1, margin = 1, weight =, reduction = "mean"}): the
  -- multi-class hinge loss: for logits x (N, C) or (C) and labels y (1..C),
  -- sum over i ~= y of max(0, margin - x[y] + x[i])^p / C, times weight[y]
  -- when a weight (C) is given; p is 1 or 2.
  -- nn.F.multi_margin_loss(x, y [, {p =, margin =, weight =, reduction =}]).
  --   nn.MultiMarginLoss()(nn.tensor{{0.1, 0.2, 0.4, 0.8}}, nn.tensor({4}, {dtype = "int64"}))
  define_loss("MultiMarginLoss", "multi_margin_loss", 2,
    function(self, opts, name)
      local o, r = options_of(opts, name, {p = true, margin = true, weight = true})
      self.reduction = r
      self.p = number_option(o, "p", name, 1, function(v) return v == 1 or v == 2 end, "1 or 2")
      self.margin = number_option(o, "margin", name, 1, any_number, "a finite number")
      weight_option(self, o, name)
    end,
    function(self, name, x, y)
      tensor_argument(x, name, "input")
      if x:dim() ~= 1 and x:dim() ~= 2 then
        raise(string.format("%s: input must be (N, C) or (C), got %s", name, shape_text(x)))
      end
      local x2 = x:dim() == 1 and x:unsqueeze(1) or x
      local n, classes = x2:size(1), x2:size(2)
      local labels = label_index(name, y, classes)
      if labels:numel() ~= n or (x:dim() == 2 and labels:dim() ~= 1) then
        raise(string.format("%s: target %s does not match input %s (one label per row)", name,
          shape_text(y), shape_text(x)))
      end
      local index = labels:reshape(n, 1)
      local picked = x2:gather(2, index)
      local terms = (x2 - picked + self.margin):clamp_min(0)
      if self.p == 2 then terms = terms * terms end
      local weight = self.weight
      if weight ~= nil then
        if weight:dim() ~= 1 or weight:numel() ~= classes then
          raise(string.format("%s: weight must be a vector of %d values (one per class), got %s", name, classes,
            shape_text(weight)))
        end
        terms = terms * weight:gather(1, labels:reshape(n)):reshape(n, 1)
      end
      -- the label's own term is margin^p (times its weight): leave it out
      local own = nn.zeros(n, classes, {dtype = "bool"}):scatter(2, index, true)
      terms = nn.where(own, terms * 0, terms)
      local loss = terms:sum(2) / classes
      if x:dim() == 1 then loss = loss:reshape({}) end
      return reduce(loss, self.reduction)
    end)

  --- nn.MultiLabelSoftMarginLoss({weight =, reduction = "mean"}): for logits x
  -- (N, C) and targets y (N, C) of 0 or 1, the mean over the C classes of
  -- -(y log sigmoid(x) + (1 - y) log sigmoid(-x)) (times weight (C)), one
  -- loss per row.
  -- nn.F.multilabel_soft_margin_loss(x, y [, {weight =, reduction =}]).
  --   nn.MultiLabelSoftMarginLoss()(nn.randn(2, 3), nn.tensor{{1, 0, 1}, {0, 0, 1}})
  define_loss("MultiLabelSoftMarginLoss", "multilabel_soft_margin_loss", 2,
    function(self, opts, name)
      local o, r = options_of(opts, name, {weight = true})
      self.reduction = r
      weight_option(self, o, name)
    end,
    function(self, name, x, y)
      tensor_argument(x, name, "input")
      tensor_argument(y, name, "target")
      same_shape(name, x, y, "input", "target")
      local loss = -(y * F.logsigmoid(x) + (1 - y) * F.logsigmoid(-x))
      if self.weight ~= nil then loss = loss * self.weight end
      local classes = x:dim() == 0 and 1 or x:size(x:dim())
      loss = loss:sum(x:dim() == 0 and nil or x:dim()) / classes
      return reduce(loss, self.reduction)
    end)

  --- nn.CosineEmbeddingLoss({margin = 0, reduction = "mean"}): for x1, x2 (N, D)
  -- or (D) and y (N) or () of 1 or -1: 1 - cos(x1, x2) where y = 1,
  -- max(0, cos(x1, x2) - margin) where y = -1.
  -- nn.F.cosine_embedding_loss(x1, x2, y [, {margin =, reduction =}]).
  --   nn.CosineEmbeddingLoss()(nn.randn(2, 3), nn.randn(2, 3), nn.tensor{1, -1})
  define_loss("CosineEmbeddingLoss", "cosine_embedding_loss", 3, margin_reader(0),
    function(self, name, x1, x2, y)
      tensor_argument(x1, name, "input1")
      tensor_argument(x2, name, "input2")
      tensor_argument(y, name, "target")
      same_shape(name, x1, x2, "input1", "input2")
      if x1:dim() ~= 1 and x1:dim() ~= 2 then
        raise(string.format("%s: inputs must be (N, D) or (D), got %s", name, shape_text(x1)))
      end
      if y:dim() ~= x1:dim() - 1 or (y:dim() == 1 and y:size(1) ~= x1:size(1)) then
        raise(string.format("%s: target %s must hold one value per row of the inputs %s", name,
          shape_text(y), shape_text(x1)))
      end
      local dim = x1:dim()
      local EPSILON = 1e-12
      local dot = (x1 * x2):sum(dim)
      local m1 = (x1 * x1):sum(dim) + EPSILON
      local m2 = (x2 * x2):sum(dim) + EPSILON
      local cos = dot / (m1 * m2):sqrt()
      local zeros = cos * 0
      local loss = nn.where(y:eq(1), 1 - cos, zeros) + nn.where(y:eq(-1), (cos - self.margin):clamp_min(0), zeros)
      return reduce(loss, self.reduction)
    end)

  --- nn.TripletMarginLoss({margin = 1, p = 2, eps = 1e-6, swap = false, reduction = "mean"}): for
  -- anchors a, positives p and negatives n (N, D) or (D),
  -- max(0, margin + d(a, p) - d(a, n)), d the pairwise p-norm distance
  -- (F.pairwise_distance with eps); swap uses min(d(a, n), d(p, n)) as the
  -- negative distance (Balntas et al., 2016).
  -- nn.F.triplet_margin_loss(a, p, n [, {margin =, p =, eps =, swap =, reduction =}]).
  --   nn.TripletMarginLoss{margin = 0.5}(nn.randn(4, 8), nn.randn(4, 8), nn.randn(4, 8))
  define_loss("TripletMarginLoss", "triplet_margin_loss", 3,
    function(self, opts, name)
      local o, r = options_of(opts, name, {margin = true, p = true, eps = true, swap = true})
      self.reduction = r
      self.margin = number_option(o, "margin", name, 1, any_number, "a finite number")
      self.p = number_option(o, "p", name, 2, positive, "a positive number")
      self.eps = number_option(o, "eps", name, 1e-6, non_negative, "a number >= 0")
      self.swap = boolean_option(o, "swap", name)
    end,
    function(self, name, a, pos, neg)
      tensor_argument(a, name, "anchor")
      tensor_argument(pos, name, "positive")
      tensor_argument(neg, name, "negative")
      same_dims(name, a, pos, neg)
      if a:dim() ~= 1 and a:dim() ~= 2 then
        raise(string.format("%s: inputs must be (N, D) or (D), got %s", name, shape_text(a)))
      end
      local d_pos = F.pairwise_distance(a, pos, self.p, self.eps)
      local d_neg = F.pairwise_distance(a, neg, self.p, self.eps)
      if self.swap then d_neg = d_neg:minimum(F.pairwise_distance(pos, neg, self.p, self.eps)) end
      return reduce((self.margin + d_pos - d_neg):clamp_min(0), self.reduction)
    end)

  --- nn.PoissonNLLLoss({log_input = true, full = false, eps = 1e-8, reduction = "mean"}): the
  -- negative log-likelihood of a Poisson target: exp(input) - target input
  -- (log_input), or input - target log(input + eps); full adds Stirling's
  -- term target log target - target + log(2 pi target) / 2 where target > 1.
  -- nn.F.poisson_nll_loss(input, target [, {log_input =, full =, eps =, reduction =}]).
  --   nn.PoissonNLLLoss()(nn.randn(5), nn.tensor{0, 1, 2, 3, 4})
  define_loss("PoissonNLLLoss", "poisson_nll_loss", 2,
    function(self, opts, name)
      local o, r = options_of(opts, name, {log_input = true, full = true, eps = true})
      self.reduction = r
      self.log_input = o.log_input == nil and true or o.log_input
      if type(self.log_input) ~= "boolean" then raise(name .. ": log_input must be a boolean, got " .. type(self.log_input)) end
      self.full = boolean_option(o, "full", name)
      self.eps = number_option(o, "eps", name, 1e-8, non_negative, "a number >= 0")
    end,
    function(self, name, x, y)
      tensor_argument(x, name, "input")
      tensor_argument(y, name, "target")
      local loss
      if self.log_input then loss = x:exp() - y * x else loss = x - y * (x + self.eps):log() end
      if self.full then
        local yt = y:detach()
        local safe = nn.where(yt:gt(1), yt, yt * 0 + 1)
        local stirling = safe * safe:log() - safe + 0.5 * (2 * math.pi * safe):log()
        loss = loss + nn.where(yt:gt(1), stirling, stirling * 0)
      end
      return reduce(loss, self.reduction)
    end)

  --- nn.GaussianNLLLoss({full = false, eps = 1e-6, reduction = "mean"}): the
  -- negative log-likelihood of target under a normal with mean input and
  -- variance var: (log(var) + (input - target)^2 / var) / 2, var clamped below
  -- at eps (its gradient taken at the clamped value, as PyTorch's); full adds
  -- log(2 pi) / 2. var has input's shape, or that shape without its last dim,
  -- or with last dim 1 (one variance for the features of a row).
  -- criterion(input, target, var); nn.F.gaussian_nll_loss(input, target, var [, {full =, eps =, reduction =}]).
  --   nn.GaussianNLLLoss()(nn.randn(4, 2), nn.randn(4, 2), nn.ones(4, 1))
  define_loss("GaussianNLLLoss", "gaussian_nll_loss", 3,
    function(self, opts, name)
      local o, r = options_of(opts, name, {full = true, eps = true})
      self.reduction = r
      self.full = boolean_option(o, "full", name)
      self.eps = number_option(o, "eps", name, 1e-6, non_negative, "a number >= 0")
    end,
    function(self, name, x, y, var)
      tensor_argument(x, name, "input")
      tensor_argument(y, name, "target")
      tensor_argument(var, name, "var")
      local xs, vs = x:size(), var:size()
      if table.concat(xs, ",") ~= table.concat(vs, ",") or x:dim() ~= var:dim() then
        local lead = table.concat(xs, ",", 1, math.max(#xs - 1, 0))
        if #xs - 1 == #vs and lead == table.concat(vs, ",") then
          var = var:unsqueeze(-1)
        elseif not (#xs == #vs and lead == table.concat(vs, ",", 1, math.max(#vs - 1, 0)) and vs[#vs] == 1) then
          raise(string.format("%s: var %s does not fit input %s (same shape, without the last dim, or with last dim 1)",
            name, shape_text(var), shape_text(x)))
        end
      end
      if var:lt(0):any():item() then raise(name .. ": var has negative entries") end
      -- clamped for stability; the gradient flows as through the clamped copy
      local clamped = var + (var:detach():clamp_min(self.eps) - var:detach())
      local loss = 0.5 * (clamped:log() + (x - y) ^ 2 / clamped)
      if self.full then loss = loss + 0.5 * math.log(2 * math.pi) end
      return reduce(loss, self.reduction)
    end)
  ---------------------------------------------------------------------------
  -- CTC: the forward (alpha) recursion in log space over the extended label
  -- sequence blank, l1, blank, l2, ..., blank, one time step of tensor ops
  -- for the whole batch; autograd gives the backward.

  local NEG_INF = -math.huge

  -- log(e^a + e^b + e^c) elementwise, -inf where all three are, with a
  -- finite (zero) gradient there: the all -inf entries are unreachable states.
  local function logsumexp3(a, b, c)
    local m = a:maximum(b)
    if c then m = m:maximum(c) end
    local dead = m:eq(NEG_INF)
    -- constants, not m * 0: -inf * 0 is NaN, and a NaN in a branch where()
    -- does not take still poisons that branch's gradient
    local zeros = nn.zeros(m:size(), {dtype = m.dtype, device = m.device})
    local shift = nn.where(dead, zeros, m:detach())
    local sum = (a - shift):exp() + (b - shift):exp()
    if c then sum = sum + (c - shift):exp() end
    local safe = nn.where(dead, zeros + 1, sum)
    return nn.where(dead, m, shift + safe:log())
  end

  local function integer_list(name, what, v, n)
    if nn.is_tensor(v) then v = v:to("int64"):reshape(-1):totable() end
    if type(v) ~= "table" then raise(string.format("%s: %s must be a tensor or a list of integers", name, what)) end
    if #v ~= n then raise(string.format("%s: %s has %d entries for a batch of %d", name, what, #v, n)) end
    local out = {}
    for i, x in ipairs(v) do
      if math.type(x) == "float" and x == math.floor(x) then x = math.tointeger(x) end
      if math.type(x) ~= "integer" or x < 0 then
        raise(string.format("%s: %s[%d] must be a non-negative integer, got %s", name, what, i, tostring(x)))
      end
      out[i] = x
    end
    return out
  end

  -- the checks both CTC paths share: log_probs as (T, N, C), the lengths as
  -- lists and each sample's labels as a Lua list (1-based)
  local function ctc_inputs(self, name, log_probs, targets, input_lengths, target_lengths)
    tensor_argument(log_probs, name, "log_probs")
    if not nn.is_tensor(targets) then raise(name .. ": targets must be a tensor of labels, got " .. type(targets)) end
    local unbatched = log_probs:dim() == 2
    if log_probs:dim() ~= 3 and not unbatched then
      raise(string.format("%s: log_probs must be (T, N, C) or (T, C), got %s", name, shape_text(log_probs)))
    end
    if unbatched then
      log_probs = log_probs:unsqueeze(2)
      if targets:dim() <= 1 then targets = targets:reshape(1, -1) end
      if type(input_lengths) == "number" then input_lengths = {input_lengths} end
      if type(target_lengths) == "number" then target_lengths = {target_lengths} end
      if nn.is_tensor(input_lengths) then input_lengths = input_lengths:reshape(-1) end
      if nn.is_tensor(target_lengths) then target_lengths = target_lengths:reshape(-1) end
    end
    local T, N, C = log_probs:size(1), log_probs:size(2), log_probs:size(3)
    local blank = self.blank
    if blank > C then raise(string.format("%s: blank %d is not a class of the %d in log_probs", name, blank, C)) end
    local in_len = integer_list(name, "input_lengths", input_lengths, N)
    local tg_len = integer_list(name, "target_lengths", target_lengths, N)
    local labels = targets:to("int64")
    -- the targets of each sample, as Lua lists of labels (1-based)
    local per_sample, offset = {}, 0
    local rows = labels:dim() == 2 and labels:totable() or nil
    local concatenated = labels:dim() == 1 and labels:totable() or nil
    if not rows and not concatenated then
      raise(string.format("%s: targets must be (N, S) or the concatenated (sum(target_lengths)), got %s", name,
        shape_text(targets)))
    end
    for n = 1, N do
      if in_len[n] > T then
        raise(string.format("%s: input_lengths[%d] = %d exceeds the %d time steps of log_probs", name, n, in_len[n], T))
      end
      local seq = {}
      for s = 1, tg_len[n] do
        local v
        if rows then
          if tg_len[n] > #rows[n] then
            raise(string.format("%s: target_lengths[%d] = %d exceeds the %d columns of targets", name, n, tg_len[n], #rows[n]))
          end
          v = rows[n][s]
        else
          v = concatenated[offset + s]
          if v == nil then raise(name .. ": the target lengths add up to more than the concatenated targets hold") end
        end
        if v < 1 or v > C or v == blank then
          raise(string.format("%s: target label %d of sample %d is %d; labels are 1..%d without blank (%d)", name, s, n,
            v, C, blank))
        end
        seq[s] = v
      end
      offset = offset + tg_len[n]
      per_sample[n] = seq
    end
    return log_probs, unbatched, T, N, C, blank, in_len, tg_len, per_sample
  end

  -- the losses before reduction
  local function ctc_reduce(self, loss, tg_len, unbatched)
    local N = #tg_len
    if self.reduction == "mean" then
      local lengths = {}
      for n = 1, N do lengths[n] = math.max(tg_len[n], 1) end
      return (loss / nn.tensor(lengths, {dtype = loss.dtype}):to(loss.device)):mean()
    end
    if self.reduction == "sum" then return loss:sum() end
    if unbatched then return loss:reshape({}) end
    return loss
  end

  local ctc_composed -- (below)
  -- the engine's CTC (one node, CtcLossBackward0): the targets padded to
  -- (N, S) with 0-based labels. CUDA lacks its kernels: there the loss is
  -- composed of tensor ops, as before.
  local function ctc(self, name, log_probs, targets, input_lengths, target_lengths)
    if nn.is_tensor(log_probs) and log_probs.device ~= "cpu" then
      return ctc_composed(self, name, log_probs, targets, input_lengths, target_lengths)
    end
    local lp, unbatched, _, N, _, blank, in_len, tg_len, per_sample =
      ctc_inputs(self, name, log_probs, targets, input_lengths, target_lengths)
    local S = 1
    for n = 1, N do S = math.max(S, tg_len[n]) end
    local rows = {}
    for n = 1, N do
      local row, seq = {}, per_sample[n]
      for s = 1, S do row[s] = (seq[s] or 1) - 1 end
      rows[n] = row
    end
    local device = lp.device
    local loss = C.ctc_loss(lp, nn.tensor(rows, {dtype = "int64"}):to(device),
      nn.tensor(in_len, {dtype = "int64"}):to(device), nn.tensor(tg_len, {dtype = "int64"}):to(device), blank - 1,
      self.zero_infinity)
    return ctc_reduce(self, loss, tg_len, unbatched)
  end

  -- the same loss composed of tensor ops (the gradient of its gradient
  -- exists here): the reference the engine's path is tested against
  function ctc_composed(self, name, log_probs, targets, input_lengths, target_lengths)
    local unbatched, T, N, C, blank, in_len, tg_len, per_sample
    log_probs, unbatched, T, N, C, blank, in_len, tg_len, per_sample =
      ctc_inputs(self, name, log_probs, targets, input_lengths, target_lengths)
    local S = 0
    for n = 1, N do S = math.max(S, tg_len[n]) end
    local L = 2 * S + 1
    -- extended labels (class indices for gather), the skip mask, the final states
    local ext, skip, last = {}, {}, {}
    for n = 1, N do
      local e, k = {}, {}
      for s = 1, L do
        local label = blank
        if s % 2 == 0 and s // 2 <= tg_len[n] then label = per_sample[n][s // 2] end
        e[s] = label
        k[s] = s % 2 == 0 and s > 2 and label ~= blank and s // 2 <= tg_len[n] and label ~= per_sample[n][s // 2 - 1]
      end
      ext[n], skip[n] = e, k
      last[n] = 2 * tg_len[n] + 1
    end
    local dtype, device = log_probs.dtype, log_probs.device
    local index = nn.tensor(ext, {dtype = "int64"}):to(device)
    local lp = log_probs:gather(3, index:unsqueeze(1):expand(T, N, L)) -- (T, N, L)
    local skip_mask = nn.tensor(skip, {dtype = "bool"}):to(device)
    local minus_inf = nn.full({N, L}, NEG_INF, {dtype = dtype, device = device})
    local minus_inf_col = nn.full({N, 1}, NEG_INF, {dtype = dtype, device = device})
    -- alpha at t = 1: the first blank or the first label
    local start = {}
    for n = 1, N do
      local row = {}
      for s = 1, L do row[s] = (s == 1 or (s == 2 and tg_len[n] > 0)) and in_len[n] > 0 end
      start[n] = row
    end
    local alpha = nn.where(nn.tensor(start, {dtype = "bool"}):to(device), lp[1], minus_inf)
    for t = 2, T do
      local shift1 = nn.cat({minus_inf_col, alpha:narrow(2, 1, L - 1)}, 2)
      local shift2 = L > 2 and nn.cat({minus_inf_col, minus_inf_col, alpha:narrow(2, 1, L - 2)}, 2) or minus_inf
      shift2 = nn.where(skip_mask, shift2, minus_inf)
      local nxt = logsumexp3(alpha, shift1, shift2) + lp[t]
      local active = {}
      for n = 1, N do active[n] = {t <= in_len[n]} end
      alpha = nn.where(nn.tensor(active, {dtype = "bool"}):to(device), nxt, alpha)
    end
    local final_index, before_index = {}, {}
    for n = 1, N do
      final_index[n] = {last[n]}
      before_index[n] = {math.max(last[n] - 1, 1)}
    end
    local a_last = alpha:gather(2, nn.tensor(final_index, {dtype = "int64"}):to(device))
    local a_before = alpha:gather(2, nn.tensor(before_index, {dtype = "int64"}):to(device))
    local has_label = {}
    for n = 1, N do has_label[n] = {tg_len[n] > 0} end
    a_before = nn.where(nn.tensor(has_label, {dtype = "bool"}):to(device), a_before, minus_inf_col)
    local loss = -logsumexp3(a_last, a_before):reshape(N)
    if self.zero_infinity then
      loss = nn.where(loss:eq(math.huge), nn.zeros(N, {dtype = dtype, device = device}), loss)
    end
    return ctc_reduce(self, loss, tg_len, unbatched)
  end

  local CTCLoss = Module:extend("CTCLoss")
  nn.CTCLoss = CTCLoss
  local function ctc_options(self, opts, name)
    local o, r = options_of(opts, name, {blank = true, zero_infinity = true})
    self.reduction = r
    local blank = o.blank == nil and 1 or o.blank
    if math.type(blank) == "float" and blank == math.floor(blank) then blank = math.tointeger(blank) end
    if math.type(blank) ~= "integer" or blank < 1 then
      raise(string.format("%s: blank must be a positive integer (a 1-based class), got %s", name, tostring(blank)))
    end
    self.blank = blank
    self.zero_infinity = boolean_option(o, "zero_infinity", name)
  end

  --- nn.CTCLoss({blank = 1, reduction = "mean", zero_infinity = false}): the
  -- connectionist temporal classification loss (Graves et al., 2006):
  -- -log of the total probability of every alignment of a target sequence
  -- to the inputs. criterion(log_probs, targets, input_lengths, target_lengths):
  -- log_probs (T, N, C) (log_softmax over C; or (T, C) unbatched), targets
  -- (N, S) padded or the concatenated (sum of target_lengths) labels 1..C
  -- without blank (labels count from 1, so PyTorch's blank=0 is blank = 1),
  -- lengths as tensors or lists. "mean" divides each loss by its target
  -- length, then averages over the batch (PyTorch's); zero_infinity sets the
  -- loss (and gradient) of impossible alignments to 0. The gradient is the
  -- true one w.r.t. log_probs; PyTorch's differs by a term that a
  -- log_softmax before the loss cancels, so logits' gradients agree.
  --   local loss = nn.CTCLoss()(logits:log_softmax(3), targets, {50, 48}, {12, 9})
  function CTCLoss:init(opts) ctc_options(self, opts or {}, "CTCLoss") end
  function CTCLoss:forward(log_probs, targets, input_lengths, target_lengths)
    return ctc(self, "CTCLoss", log_probs, targets, input_lengths, target_lengths)
  end
  function CTCLoss:extra_repr() return "" end
  --- F.ctc_loss(log_probs, targets, input_lengths, target_lengths [, {blank = 1, reduction = "mean", zero_infinity = false}]):
  -- nn.CTCLoss as a function.
  function F.ctc_loss(log_probs, targets, input_lengths, target_lengths, opts)
    local o = {}
    ctc_options(o, function_options(opts) or {}, "ctc_loss")
    return ctc(o, "ctc_loss", log_probs, targets, input_lengths, target_lengths)
  end
  -- F.ctc_loss composed of tensor ops (tests and benchmarks compare the two)
  function F._ctc_loss_composed(log_probs, targets, input_lengths, target_lengths, opts)
    local o = {}
    ctc_options(o, function_options(opts) or {}, "ctc_loss")
    return ctc_composed(o, "ctc_loss", log_probs, targets, input_lengths, target_lengths)
  end
end

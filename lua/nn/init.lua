-- nn: the table `require "nn"` returns. The C core (tensors, autograd,
-- the math) comes in as "nn.core"; the Lua modules here compose it.
local C = require "nn.core"
-- (luaopen_nn, lua/nn_module.c, stops the collector while nn loads: what
-- it makes meanwhile lives as long as nn does.)

--- nn: the deep learning engine, as `require "nn"` gives it (a global in nnlua).
-- Tensors (nn.tensor, nn.zeros...), autograd (t:backward(), nn.no_grad),
-- modules (nn.Linear, nn.Sequential, nn.Module:extend), losses, and the
-- namespaces nn.F, nn.init, nn.optim, nn.optim.lr_scheduler, nn.utils,
-- nn.data, nn.plot, nn.progress, nn.sweep, nn.distributed, nn.cli. help(x) documents each,
-- help("word") searches every name and text, and the families follow.
--   local nn = require "nn"
--   local model = nn.Sequential(nn.Linear(2, 10), nn.Sigmoid(), nn.Linear(10, 1))
local nn = {_VERSION = "nnlua 0.1.0", _C = C}

-- Raises msg at the first caller outside nn's own modules, so that a
-- mistake is reported at the user's line, not at the library's.
function nn._raise(msg)
  local level = 2
  while true do
    local info = debug.getinfo(level, "S")
    if not info then return error(msg, 0) end
    if info.what ~= "C" and info.source:sub(1, 6) ~= "@[nn]/" then break end
    level = level + 1
  end
  error(msg, level)
end


-- Tensor creation and the generator, straight from C.
for _, name in ipairs {"tensor", "zeros", "ones", "empty", "full", "rand", "randn", "arange",
                       "linspace", "eye", "is_tensor", "manual_seed", "initial_seed",
                       "get_rng_state", "set_rng_state", "is_grad_enabled", "set_grad_enabled",
                       "clock", "set_num_threads", "get_num_threads", "config"} do
  nn[name] = C[name]
end
nn.Tensor = C.tensor_methods -- methods added here reach every tensor
-- issue 12's toolkit: nn.log1p(t), nn.sort(t, ...) ... are t's methods (lua/nn_math.c)
for name, fn in pairs(C.math_functions) do nn[name] = fn end

-- Joining, splitting and indexing (issue 12): nn.cat, nn.stack and nn.where
-- from C; the torch.* forms of the methods call them with the tensor first.
nn.cat, nn.stack, nn.where = C.cat, C.stack, C.where
nn.promote_types = C.promote_types -- the dtypes (issue 12)
for _, name in ipairs {"split", "chunk", "unbind", "tile", "flip", "roll", "movedim", "swapaxes",
                       "swapdims", "index_select", "gather", "scatter", "scatter_add",
                       "index_add", "masked_fill", "masked_select", "take", "nonzero"} do
  nn[name] = C.tensor_methods[name]
end

--- nn.cuda: the CUDA device: is_available, why_unavailable, device_count,
-- current_device, get_device_name, synchronize, manual_seed, manual_seed_all,
-- initial_seed, memory_allocated, memory_reserved, empty_cache (see their help).
nn.cuda = {}
for _, name in ipairs {"is_available", "why_unavailable", "device_count", "current_device",
                       "get_device_name", "synchronize", "manual_seed", "initial_seed",
                       "memory_allocated", "memory_reserved", "empty_cache"} do
  nn.cuda[name] = C["cuda_" .. name]
end
nn.cuda.manual_seed_all = C.cuda_manual_seed -- one GPU: all of them is that one

-- The activations beyond layers.lua's, the losses, the optimizers
-- (nn.optim), the layer families and the rest load on first use: nn.GELU,
-- nn.MSELoss, nn.optim, nn.Conv2d, nn.F.conv2d
-- or nn.optim.lr_scheduler loads the file that defines it, so that a script
-- that never convolves does not pay to load convolution (require "nn" took
-- 31.6M instructions loading them all, 10M without them). Each file is
-- listed with every name it puts in nn, nn.F, nn.optim, nn.utils, on
-- tensors ("Tensor.") and as tensor properties ("properties."), in the
-- order `require "nn"` loaded them when it loaded them all (a later file
-- may replace an earlier one's function). tests/lua/lazy_spec.lua checks
-- that the lists are whole and right.
local families = {
  {"nn.activations", "CELU ELU F.celu F.derivative F.elu F.gelu F.hardshrink F.hardsigmoid F.hardswish "
                     .. "F.hardtanh F.leaky_relu F.log_sigmoid F.log_softmax F.logsigmoid F.maxout F.mish "
                     .. "F.prelu F.relu6 F.selu F.silu F.softmax F.softplus F.softshrink F.softsign F.tanhshrink "
                     .. "F.threshold GELU Hardshrink Hardsigmoid Hardswish Hardtanh LeakyReLU LogSigmoid "
                     .. "LogSoftmax Maxout Mish PReLU ReLU6 SELU SiLU Softmax Softplus Softshrink Softsign "
                     .. "Tanhshrink Tensor.celu Tensor.elu Tensor.gelu Tensor.hardshrink Tensor.hardsigmoid "
                     .. "Tensor.hardswish Tensor.hardtanh Tensor.leaky_relu Tensor.log_sigmoid "
                     .. "Tensor.log_softmax Tensor.logsigmoid Tensor.maxout Tensor.mish Tensor.prelu "
                     .. "Tensor.relu6 Tensor.selu Tensor.silu Tensor.softmax Tensor.softplus Tensor.softshrink "
                     .. "Tensor.softsign Tensor.tanhshrink Tensor.threshold Threshold"},
  {"nn.loss", "BCELoss BCEWithLogitsLoss CTCLoss CosineEmbeddingLoss CrossEntropyLoss GaussianNLLLoss "
              .. "HingeEmbeddingLoss HuberLoss KLDivLoss L1Loss MSELoss MarginRankingLoss "
              .. "MultiLabelSoftMarginLoss MultiMarginLoss NLLLoss PoissonNLLLoss SmoothL1Loss "
              .. "SoftMarginLoss TripletMarginLoss F.binary_cross_entropy_with_logits "
              .. "F.cosine_embedding_loss F.cross_entropy F.ctc_loss F.gaussian_nll_loss "
              .. "F.hinge_embedding_loss F.huber_loss F.kl_div F.l1_loss F.margin_ranking_loss "
              .. "F.multi_margin_loss F.multilabel_soft_margin_loss F.nll_loss F.poisson_nll_loss "
              .. "F.smooth_l1_loss F.soft_margin_loss F.triplet_margin_loss F._ctc_loss_composed"},
  {"nn.optim", "optim"},
  {"nn.autograd", "autograd no_grad enable_grad gradcheck gradgradcheck Tensor.register_hook Tensor.retain_grad "
                  .. "properties.retains_grad"},
  {"nn.init_weights", "init"},
  {"nn.norm_layers", "BatchNorm1d Dropout Flatten LayerNorm _python_bool _python_number F.dropout F.flatten "
                     .. "F.layer_norm Tensor.flatten"},
  {"nn.conv_layers", "Conv1d Conv2d ConvTranspose2d Fold Unfold ConstantPad1d ConstantPad2d ReflectionPad1d "
                     .. "ReflectionPad2d ReplicationPad1d ReplicationPad2d ZeroPad2d F.conv1d F.conv2d "
                     .. "F.conv_transpose2d F.fold F.unfold F.pad"},
  {"nn.pool_layers", "AdaptiveAvgPool1d AdaptiveAvgPool2d AdaptiveMaxPool1d AdaptiveMaxPool2d AlphaDropout "
                     .. "AvgPool1d AvgPool2d BatchNorm2d BatchNorm3d Dropout1d Dropout2d GroupNorm InstanceNorm1d "
                     .. "InstanceNorm2d LocalResponseNorm MaxPool1d MaxPool2d MaxUnpool2d Upsample "
                     .. "F.adaptive_avg_pool1d F.adaptive_avg_pool2d F.adaptive_max_pool1d F.adaptive_max_pool2d "
                     .. "F.alpha_dropout F.avg_pool1d F.avg_pool2d F.batch_norm F.dropout1d F.dropout2d "
                     .. "F.group_norm F.instance_norm F.interpolate F.local_response_norm F.max_pool1d "
                     .. "F.max_pool2d F.max_unpool2d"},
  {"nn.containers", "ModuleDict ModuleList ParameterDict ParameterList"},
  {"nn.small_layers", "Bilinear CosineSimilarity GLU PairwiseDistance RReLU Softmax2d Softmin Unflatten "
                      .. "F.bilinear F.cosine_similarity F.glu F.gumbel_softmax F.normalize F.pairwise_distance "
                      .. "F.rrelu F.softmin Tensor.glu Tensor.rrelu Tensor.softmin"},
  {"nn.lr_scheduler", "optim.lr_scheduler utils.clip_grad_norm_ utils.clip_grad_value_ "
                      .. "utils.parameters_to_vector utils.vector_to_parameters"},
  {"nn.data", "data"},
  {"nn.serialize", "load save _json_decode _old_key_tables"},
  {"nn.rnn_layers", "GRU GRUCell LSTM LSTMCell RNN RNNBase RNNCell RNNCellBase F.one_hot utils.rnn"},
  {"nn.attention_layers", "Embedding MultiheadAttention Transformer TransformerDecoder TransformerDecoderLayer "
                          .. "TransformerEncoder TransformerEncoderLayer F.embedding F.scaled_dot_product_attention"},
}
-- The tools around the engine load on first use too (nn.plot, nn.progress,
-- nn.sweep...), but unlike the families a walk over nn's names leaves them
-- out until they are used.
local on_first_use = {plot = "nn.plot", progress = "nn.progress", sweep = "nn.sweep",
                      repl = "nn.repl", help = "nn.repl", cli = "nn.cli", distributed = "nn.distributed"}
-- nn's own helpers that only some families use (nn._ordered: the ordered
-- tables of state dicts and .pt files); private, so no count checks to add.
-- nn.checks: the count checks' wrappers and the helpers that check
-- arguments, needed first when the core or a family loads.
local helpers_on_first_use = {_ordered = "nn.ordered_table", _unwrapped = "nn.checks",
                              _too_many_arguments = "nn.checks", _check_count = "nn.checks",
                              _options = "nn.checks", _check_counts = "nn.checks"}
-- What every model uses: nn.F, nn.Module, nn.Sequential, nn.Linear and the
-- plain activations (functional.lua, module.lua, layers.lua). They load
-- together at the first of their names, found here without the families'
-- index: a bare require "nn" (every script's nn.cli, a tensor-only script)
-- no longer undumps, runs and count-checks them (a third of its instructions).
local core_names = {F = true, Module = true, Parameter = true, is_module = true, _torch_name = true,
                    Sequential = true, Linear = true, Sigmoid = true, Tanh = true, ReLU = true,
                    Step = true, Identity = true}
local load_core -- (below)

nn.utils = {} -- lr_scheduler's and rnn_layers' names share it
local tensor_metatable = getmetatable(C.zeros(1))
local tensor_properties = tensor_metatable.properties or {}
tensor_metatable.properties = tensor_properties
-- The tables a family's names go in; each finds a missing name through
-- __index (a tensor's too: below).
local homes = {[""] = nn, utils = nn.utils, Tensor = nn.Tensor, properties = tensor_properties}
local pending = {} -- home's path ("" for nn, "F"...) -> {name -> family}: families not loaded yet
local path_of = {} -- nn, nn.F, nn.optim, nn.utils -> their paths in homes
-- stand-in -> {home, name}: none now (tensors find a family's names through
-- __index, below); help() still resolves one it is given
nn._stand_ins = setmetatable({}, {__mode = "k"})
-- Namespaces of nn that a family makes (nn.optim, where lr_scheduler's names
-- go): they become homes, lazy themselves, once that family has loaded.
local late_homes = {optim = true}
local make_lazy -- (below) lets a home find a missing name through its families

-- Loads family (its entry in families) unless loaded; its names leave
-- pending first, so that the file finds them free.
local index_families -- (below) fills pending and each family's places
local function load_family(family)
  if family.loaded then return end
  load_core() -- every family builds on it: loaded first, so that its walk finds no half-made file
  index_families()
  family.loaded = true
  for _, place in ipairs(family.places) do pending[place[1]][place[2]] = nil end
  require(family[1])(nn)
  for where in pairs(late_homes) do
    if not homes[where] and rawget(nn, where) then
      homes[where] = rawget(nn, where)
      make_lazy(where)
    end
  end
  nn._check_counts(nn)
end

nn._families = families -- for lazy_spec: {module, names, places (once indexed: nn._family_list()) = {{home's path, name}...}, loaded}

--- nn._load_all(): loads every family that loads on first use, as a walk
-- over every name (help, the reference, pairs(nn)) needs.
function nn._load_all()
  load_core()
  for _, family in ipairs(families) do load_family(family) end
end

-- (The tools come first: their names are in no family, and nn.cli, which
-- every script uses, then loads without the families' index.)
local function lazy_index(t, key)
  if t == nn then
    if core_names[key] then
      load_core()
      return rawget(t, key)
    end
    local name = on_first_use[key]
    if name then
      on_first_use[key] = nil
      require(name)(nn)
      nn._check_counts(nn)
      return rawget(t, key)
    end
    name = helpers_on_first_use[key]
    if name then
      helpers_on_first_use[key] = nil
      require(name)(nn)
      return rawget(t, key)
    end
  end
  index_families()
  local family = pending[path_of[t]][key]
  if family then
    load_family(family)
    return rawget(t, key)
  end
end
-- pairs over one of them lists every name, as when all were loaded
local function lazy_pairs(t)
  nn._load_all()
  return next, t, nil
end

-- The index of the families' names, pending and places, is made at the
-- first name nn, nn.F, nn.optim or nn.utils lacks (or the first family
-- that loads), not as nn loads: splitting the lists into some 230 names
-- was a fifth of what require "nn" cost.
function index_families()
  if pending[""] then return end
  for _, family in ipairs(families) do
    family.places = {}
    for path in family[2]:gmatch("%S+") do
      -- "F.relu" is F's relu, "MSELoss" nn's own (find, not a pattern with
      -- `.-`, which backtracks over every name: 0.37M instructions a load)
      local dot, where, name = path:find(".", 1, true), "", path
      if dot then where, name = path:sub(1, dot - 1), path:sub(dot + 1) end
      pending[where] = pending[where] or {}
      if not family.loaded then pending[where][name] = family end
      family.places[#family.places + 1] = {where, name}
    end
  end
end

--- nn._family_list(): the families with their places, indexed (lazy_spec).
function nn._family_list()
  index_families()
  return families
end

-- A tensor looks a name up in C (mt_index in lua/nn_tensor.c): its methods
-- raw, then its properties and, for a name in neither, its methods with
-- their __index; so a family's "Tensor." and "properties." names load it
-- at a tensor's first use of one, through these two tables' __index, as
-- nn's own names do. (Each name had a stand-in function made as nn
-- loaded: 0.3M instructions.)
local function lazy_property(props, key)
  index_families()
  local family = pending.properties and pending.properties[key]
  if family then
    load_family(family)
    return rawget(props, key)
  end
end
setmetatable(tensor_properties, {__index = lazy_property, __pairs = lazy_pairs})
local lazy_namespace = {__index = lazy_index, __pairs = lazy_pairs}
function make_lazy(where)
  path_of[homes[where]] = where
  setmetatable(homes[where], lazy_namespace)
end
make_lazy("")
make_lazy("utils")
make_lazy("Tensor")

-- The core (core_names): modules, the plain layers and the plain
-- activations (layers.lua's Sigmoid, Tanh, ReLU...). The other activations,
-- the losses and the optimizers came with them once, half of require "nn";
-- they are families, loaded by their first name used.
local core_loaded = false
function load_core()
  if core_loaded then return end
  core_loaded = true
  -- what the core makes lives as long as nn does: the collector's steps
  -- meanwhile would be work for nothing (as in luaopen_nn)
  local collecting = collectgarbage("isrunning")
  collectgarbage("stop")
  require "nn.functional" (nn)
  require "nn.module" (nn)
  require "nn.layers" (nn)
  homes.F = nn.F
  make_lazy("F")
  -- The core adds no method to tensors: the walk leaves nn.Tensor's
  -- 270-odd C functions out this once (lazy_spec checks that nothing
  -- needs it).
  nn._check_counts(nn, {[nn._C] = true, [nn.Tensor] = true, [tensor_properties] = true})
  if collecting then collectgarbage("restart") end
end

nn.capture = C.capture -- a training step recorded once, replayed (lua/nn_capture.c)
-- Nothing public in nn is Lua yet (init.lua's own functions are private,
-- "_"): no count checks to add until the core or a family loads.

return nn

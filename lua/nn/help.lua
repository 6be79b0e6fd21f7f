-- nn.help: the documentation behind help(x) (in scripts and at the prompt),
-- `?x` at the prompt, and docs/reference.md. The text is the documentation
-- comments of lua/ (`---` blocks in lua/nn/*.lua, `/*** */` blocks in
-- lua/*.c), which cmake/embed_lua.cmake compiles into the binding as the
-- module "nn.docs"; this file matches them to the public names of nn, groups
-- those names into families, searches them, and writes the reference.
-- nn.repl loads it and hands it its table; nn.help is defined here.
return function(nn, repl)
  -------------------------------------------------------------------------
  -- The documentation comments

  -- The text of a doc comment, without its comment marks.
  local function strip(entry)
    local lines = {}
    for line in entry.text:gmatch("([^\n]*)\n?") do
      if entry.file:match("%.c$") then
        line = line:gsub("^%s*/%*%*%*%s?", ""):gsub("%s*%*/%s*$", ""):gsub("^%s*%*%s?", "")
      else
        line = line:gsub("^%s*%-%-%-?%s?", "")
      end
      lines[#lines + 1] = line
    end
    while #lines > 0 and lines[#lines]:match("^%s*$") do lines[#lines] = nil end
    while #lines > 0 and lines[1]:match("^%s*$") do table.remove(lines, 1) end
    return table.concat(lines, "\n")
  end

  local index -- built on first use: {by_location =, by_name =}

  -- The names a doc's signature lines mention: "nn.Linear(", "F.relu(",
  -- "x:relu(", "m:train(", or a heading "nn.optim: ...". The signature is
  -- the first line, and the next ones while a bracket is open, a line ends
  -- with ',' or starts with a call ("t:add(other), t:add_(other)"); it ends
  -- at the first ': ' outside brackets, where the prose begins (a name the
  -- prose mentions is not the doc's); in the rest of the first paragraph, a
  -- line that starts with a call is a signature too ("nn.F.l1_loss(input,
  -- target)" under nn.L1Loss's).
  local function signature_names(text)
    local names = {}
    local head = text:match("^([%a_][%w_%.]*):%s") or text:match("^([%a_][%w_%.]*)$")
    if head then names[#names + 1] = head end
    local first, continues, depth, prose = true, false, 0, false
    for line in (text .. "\n"):gmatch("([^\n]*)\n") do
      if not line:match("%S") then break end -- the first paragraph only
      local call = line:match("^%s*[%a_][%w_%.:]*%(") ~= nil
      if not (first or continues or call) then
        if not prose then break end
        goto next_line
      end
      local cut
      for k = 1, #line do
        local c = line:sub(k, k)
        if c == "(" or c == "{" or c == "[" then depth = depth + 1
        elseif c == ")" or c == "}" or c == "]" then depth = depth - 1
        elseif c == ":" and depth <= 0 and line:sub(k + 1, k + 1) == " " then cut = k break end
      end
      local signature = cut and line:sub(1, cut - 1) or line
      for name in signature:gmatch("([%a_][%w_%.:]*)%s*[%(%[{\"]") do names[#names + 1] = name end
      for name in signature:gmatch("([%a_][%w_]*[%.:][%a_][%w_%.:]*)") do names[#names + 1] = name end
      if cut then depth, prose = 0, true end
      first, continues = false, not cut and (line:match(",%s*$") ~= nil or depth > 0)
      ::next_line::
    end
    return names
  end

  local function build_index()
    local ok, docs = pcall(require, "nn.docs")
    if not ok then docs = {} end
    index = {by_location = {}, by_name = {}}
    local docs_list = {}
    for _, entry in ipairs(docs) do
      local doc = {file = entry.file, line = entry.line, text = strip(entry)}
      index.by_location[entry.file .. ":" .. entry.line] = doc
      doc.names = signature_names(doc.text)
      docs_list[#docs_list + 1] = doc
    end
    -- a doc's first name is its own: it wins over a mention in another's
    -- signature ("nn.progress(opts)" inside nn.progress.Bar's)
    for _, doc in ipairs(docs_list) do
      local name = doc.names[1]
      if name and index.by_name[name] == nil then index.by_name[name] = doc end
    end
    for _, doc in ipairs(docs_list) do
      for _, name in ipairs(doc.names) do
        if index.by_name[name] == nil then index.by_name[name] = doc end
      end
    end
    return index
  end

  local function docs_index() return index or build_index() end

  -- lua/nn/x.lua for a function defined in the embedded module nn.x.
  local function defined_at(fn)
    local info = debug.getinfo(nn._unwrapped[fn] or fn, "S")
    if info.what ~= "Lua" then return nil end
    local module = info.source:match("^@%[nn%]/(.+)%.lua$")
    if not module then return nil end
    return "lua/" .. module:gsub("%.", "/") .. ".lua", info.linedefined
  end

  local function is_class(v)
    return type(v) == "table" and rawget(v, "__index") == v and type(rawget(v, "__name")) == "string"
  end

  local function parent_of(cls)
    local p = rawget(cls, "super")
    if p == nil then
      local mt = getmetatable(cls)
      if type(mt) == "table" and type(rawget(mt, "__index")) == "table" then p = rawget(mt, "__index") end
    end
    return p
  end

  -- Receivers a doc may write a tensor's method with (t:add, x:relu).
  local TENSOR_RECEIVERS = {"Tensor", "t", "x", "tensor", "input", "self"}
  local CLASS_RECEIVERS = {"m", "module", "model", "s", "self", "opt", "optimizer", "optim",
                           "sched", "scheduler", "bar", "p", "obj", "loader", "ds", "dataset"}
  -- The receiver a base class's docs use, for the names several classes
  -- share (m:zero_grad, opt:zero_grad): a method written in C (Optimizer's
  -- step and zero_grad) has no definition line to find its doc by.
  local RECEIVER_OF_CLASS = {Module = "m", Optimizer = "opt"}

  -- The doc of a public name (a dotted path from nn: "nn.F.relu",
  -- "nn.Tensor.add" for a tensor method, "nn.Linear.forward" for a method).
  local function lookup(path, value, owner_class)
    local idx = docs_index()
    if type(value) == "function" then
      local file, line = defined_at(value)
      if file then
        local doc = idx.by_location[file .. ":" .. line]
        if doc then return doc end
      end
    end
    local parts = {}
    for p in path:gmatch("[^%.]+") do parts[#parts + 1] = p end
    local last = parts[#parts]
    -- every dotted suffix: nn.optim.lr_scheduler.StepLR, optim.lr_scheduler.StepLR, ...
    for first = 1, #parts - 1 do
      local doc = idx.by_name[table.concat(parts, ".", first)]
      if doc then return doc end
    end
    if #parts >= 2 and parts[#parts - 1] == "Tensor" then
      for _, r in ipairs(TENSOR_RECEIVERS) do
        local doc = idx.by_name[r .. ":" .. last] or idx.by_name[r .. "." .. last]
        if doc then return doc end
      end
      return nil
    end
    if owner_class then
      local cls = owner_class
      while type(cls) == "table" do
        local name = rawget(cls, "__name")
        if name then
          local doc = idx.by_name[name .. ":" .. last] or idx.by_name[name .. "." .. last]
          if doc then return doc end
          local receiver = RECEIVER_OF_CLASS[name]
          doc = receiver and idx.by_name[receiver .. ":" .. last]
          if doc then return doc end
        end
        cls = parent_of(cls)
      end
      -- the receiver a doc names the object with: "loader:set_epoch", "ds:get"
      local short = path:match("([%a_][%w_]*)%.[%a_][%w_]*$")
      local receivers = {short and short:lower() or nil}
      for _, r in ipairs(CLASS_RECEIVERS) do receivers[#receivers + 1] = r end
      for _, r in ipairs(receivers) do
        local doc = idx.by_name[r .. ":" .. last]
        if doc then return doc end
      end
      return nil
    end
    if #parts == 1 or is_class(value) then return idx.by_name[last] end
    return nil
  end

  -------------------------------------------------------------------------
  -- The public names

  -- A namespace holds functions or classes; a table of data (a list of
  -- class names) is not one.
  local function has_code(t)
    for _, v in pairs(t) do
      if type(v) == "function" or is_class(v) or
         (type(v) == "table" and getmetatable(v) and getmetatable(v).__call) then return true end
    end
    return false
  end

  local NAMESPACES = {"F", "init", "optim", "utils", "data", "cuda", "plot", "progress", "sweep", "distributed",
                      "cli"}

  local names_cache

  --- nn.repl.public_names(): every public name of nn, as a sorted list of
  -- {name =, value =, class =} (class: the class a method belongs to):
  -- nn.*, the namespaces (nn.F, nn.init, nn.optim, nn.optim.lr_scheduler,
  -- nn.utils, nn.data...), tensor methods (nn.Tensor.*), and the methods each
  -- class introduces (an override shares its ancestor's documentation).
  function repl.public_names()
    local list, seen = {}, {}
    local function add(name, value, class)
      list[#list + 1] = {name = name, value = value, class = class}
    end
    local function public(k) return type(k) == "string" and k:sub(1, 1) ~= "_" end
    local function methods_of(path, cls)
      for k, v in pairs(cls) do
        -- new: the constructor, documented with the class (Class(...))
        if public(k) and type(v) == "function" and k ~= "new" then
          local parent, inherited = parent_of(cls), false
          while type(parent) == "table" do
            if rawget(parent, k) ~= nil then inherited = true break end
            parent = parent_of(parent)
          end
          if not inherited then add(path .. "." .. k, v, cls) end
        end
      end
    end
    local function walk(path, t, depth)
      if seen[t] then return end
      seen[t] = true
      for k, v in pairs(t) do
        if public(k) then
          local name = path .. "." .. k
          if type(v) == "function" then
            add(name, v)
          elseif is_class(v) then
            add(name, v)
            methods_of(name, v)
          elseif type(v) == "table" and v ~= nn.Tensor and depth < 3 and not seen[v] and
                 has_code(v) then
            add(name, v)
            walk(name, v, depth + 1)
          elseif type(v) == "table" and getmetatable(v) and getmetatable(v).__call then
            add(name, v)
          end
        end
      end
    end
    for _, k in ipairs(NAMESPACES) do local _ = nn[k] end -- loads those loaded on first use
    seen[nn._C] = true
    walk("nn", nn, 1)
    add("nn", nn)
    add("nn.Tensor", nn.Tensor)
    for k, v in pairs(nn.Tensor) do
      if public(k) and type(v) == "function" then add("nn.Tensor." .. k, v) end
    end
    table.sort(list, function(a, b) return a.name < b.name end)
    names_cache = list
    return list
  end

  -- The public names, walked once: a help() that searches every name and
  -- a reference that lists them all would otherwise walk nn many times.
  local function names()
    return names_cache or repl.public_names()
  end

  local function doc_of(entry)
    if entry.doc == nil then entry.doc = lookup(entry.name, entry.value, entry.class) or false end
    return entry.doc or nil
  end

  --- nn.repl.undocumented(): the public names (see public_names) that have no
  -- documentation comment; a test keeps this list empty.
  function repl.undocumented()
    local missing = {}
    for _, entry in ipairs(repl.public_names()) do
      if not doc_of(entry) then missing[#missing + 1] = entry.name end
    end
    return missing
  end

  -- "Tensor:sum", "Module:parameters", "DataLoader:set_epoch" for methods;
  -- the dotted path otherwise.
  local function display_name(entry)
    local method = entry.name:match("^nn%.Tensor%.([%a_][%w_]*)$")
    if method then return "Tensor:" .. method end
    if entry.class then
      local class_name = entry.name:match("([%a_][%w_]*)%.[%a_][%w_]*$")
      return class_name .. ":" .. entry.name:match("([%a_][%w_]*)$")
    end
    return entry.name
  end

  -- The part of a doc that says what a thing does, on one line: the text
  -- after its signature ("nn.zeros(size...): a tensor of zeros" gives "a
  -- tensor of zeros"), up to the end of its first sentence. A signature goes
  -- on to the next line while a bracket is open or the line ends with ','; it
  -- ends at the first ': ' outside brackets, or with its line (a C doc's
  -- first line is its signature).
  local function summary(doc)
    if not doc then return "" end
    local lines = {}
    for line in (doc.text .. "\n"):gmatch("([^\n]*)\n") do lines[#lines + 1] = line end
    local depth, description = 0, nil
    local i = 1
    while i <= #lines and not description do
      local line = lines[i]
      for k = 1, #line do
        local c = line:sub(k, k)
        if c == "(" or c == "{" or c == "[" then depth = depth + 1
        elseif c == ")" or c == "}" or c == "]" then depth = depth - 1
        elseif c == ":" and depth <= 0 and line:sub(k + 1, k + 1) == " " then
          description = {line:sub(k + 2)}
          break
        end
      end
      i = i + 1
      -- "... height =} -> the path written": what it returns, still the signature
      if not description and lines[i] and lines[i]:match("^%s*%->") then i = i + 1 end
      if not description and not (depth > 0 or line:match(",%s*$")) then break end
    end
    description = description or {}
    -- the rest of the paragraph, or the next one when the signature took it all
    while i <= #lines and lines[i]:match("%S") do description[#description + 1] = lines[i]; i = i + 1 end
    if not table.concat(description):match("%S") then
      while i <= #lines and not lines[i]:match("%S") do i = i + 1 end
      while i <= #lines and lines[i]:match("%S") do description[#description + 1] = lines[i]; i = i + 1 end
    end
    local text = table.concat(description, " "):gsub("%s+", " "):gsub("^ ", "")
    local sentence = text:match("^(.-[%.;])%s") or text
    if #sentence > 88 then sentence = sentence:sub(1, 85):gsub("%s+%S*$", "") .. "..." end
    return sentence
  end

  -------------------------------------------------------------------------
  -- Families: what help(nn) lists

  -- In the order help(nn) and the reference show them. A public name goes to
  -- the first family whose test accepts it (see family_of).
  local FAMILIES = {
    {key = "tensors", title = "Tensors",
     about = "making tensors, their views, arithmetic, comparisons and reductions"},
    {key = "autograd", title = "Autograd",
     about = "gradients: requires_grad, t:backward(), t.grad, nn.no_grad, nn.gradcheck"},
    {key = "modules", title = "Modules and layers",
     about = "nn.Module, nn.Sequential, nn.Linear, normalisation, dropout; nn.F's functions"},
    {key = "activations", title = "Activations",
     about = "sigmoid, tanh, ReLU and their kin, as modules, functions and tensor methods"},
    {key = "losses", title = "Losses", about = "MSE, cross-entropy, BCE and more, as modules and functions"},
    {key = "optimizers", title = "Optimizers", about = "nn.optim: SGD, Adam, AdamW, RMSprop, Adagrad"},
    {key = "schedulers", title = "Learning-rate schedulers",
     about = "nn.optim.lr_scheduler: StepLR, CosineAnnealingLR, ReduceLROnPlateau..."},
    {key = "init", title = "Initialisation", about = "nn.init: filling weights (xavier, kaiming, ...)"},
    {key = "data", title = "Data", about = "nn.data: data sets, files (IDX, CSV), the DataLoader"},
    {key = "plot", title = "Pictures", about = "nn.plot: lines, scatter, heat maps, histograms, bars, images, panels"},
    {key = "progress", title = "Progress bars", about = "nn.progress: a bar for a loop"},
    {key = "sweep", title = "Sweeps", about = "nn.sweep: hyperparameter sweeps, in parallel and under MPI"},
    {key = "distributed", title = "Distributed training",
     about = "nn.distributed: data-parallel training over MPI ranks (DataParallel, Sampler, collectives)"},
    {key = "save/load", title = "Saving and loading", about = "nn.save, nn.load: tensors and state dicts in files"},
    {key = "cuda", title = "CUDA", about = "nn.cuda: the GPU, where there is one"},
    {key = "utils", title = "Utilities",
     about = "nn.utils (gradient clipping), nn.capture (captured steps), the random generator, threads, the clock"},
    {key = "scripts", title = "Scripts", about = "nn.cli: a script's options, through lua-argparse"},
    {key = "prompt", title = "The prompt and help", about = "help, nn.repl: what the nnlua prompt is made of"},
  }
  local FAMILY = {}
  for _, f in ipairs(FAMILIES) do FAMILY[f.key] = f end

  -- Namespaces with a family of their own.
  local NAMESPACE_FAMILY = {["nn.optim.lr_scheduler"] = "schedulers", ["nn.optim"] = "optimizers",
                            ["nn.init"] = "init", ["nn.data"] = "data", ["nn.plot"] = "plot",
                            ["nn.progress"] = "progress", ["nn.sweep"] = "sweep", ["nn.cuda"] = "cuda",
                            ["nn.distributed"] = "distributed",
                            ["nn.utils"] = "utils", ["nn.cli"] = "scripts", ["nn.repl"] = "prompt",
                            ["nn.help"] = "prompt", ["nn.Tensor"] = "tensors", ["nn.F"] = "modules"}
  -- Where a name's family is its file's.
  local FILE_FAMILY = {["lua/nn/autograd.lua"] = "autograd", ["lua/nn/activations.lua"] = "activations",
                       ["lua/nn_activations.c"] = "activations", ["lua/nn/loss.lua"] = "losses",
                       ["lua/nn_losses.c"] = "losses", ["lua/nn/serialize.lua"] = "save/load",
                       ["lua/nn/init_weights.lua"] = "init", ["lua/nn_tensor.c"] = "tensors",
                       ["lua/nn_math.c"] = "tensors",
                       ["lua/nn/module.lua"] = "modules", ["lua/nn/layers.lua"] = "modules",
                       ["lua/nn/norm_layers.lua"] = "modules", ["lua/nn/functional.lua"] = "modules",
                       ["lua/nn_module.c"] = "modules", ["lua/nn/optim.lua"] = "optimizers",
                       ["lua/nn_optim.c"] = "optimizers", ["lua/nn/lr_scheduler.lua"] = "schedulers",
                       ["lua/nn/data.lua"] = "data", ["lua/nn_data.c"] = "data", ["lua/nn/plot.lua"] = "plot",
                       ["lua/nn/progress.lua"] = "progress", ["lua/nn/sweep.lua"] = "sweep",
                       ["lua/nn/distributed.lua"] = "distributed",
                       ["lua/nn/cli.lua"] = "scripts", ["lua/nn/repl.lua"] = "prompt", ["lua/nn/help.lua"] = "prompt",
                       ["lua/nn_capture.c"] = "utils"}
  for _, file in ipairs {"conv_layers", "pool_layers", "rnn_layers", "attention_layers", "containers",
                         "small_layers"} do
    FILE_FAMILY["lua/nn/" .. file .. ".lua"] = "modules"
  end
  for _, file in ipairs {"nn_conv", "nn_pool", "nn_rnn", "nn_embedding"} do
    FILE_FAMILY["lua/" .. file .. ".c"] = "modules"
  end
  local AUTOGRAD = {backward = true, detach = true, detach_ = true, requires_grad_ = true, retain_grad = true,
                    register_hook = true, no_grad = true, enable_grad = true, set_grad_enabled = true,
                    is_grad_enabled = true, gradcheck = true}
  -- Activations whose documentation lives beside the layers or the tensor's math.
  local ACTIVATION_NAMES = {sigmoid = true, tanh = true, relu = true, step = true}
  local function is_activation_name(name)
    return ACTIVATION_NAMES[name:lower():gsub("_$", "")] == true
  end
  local UTILS = {manual_seed = true, initial_seed = true, get_rng_state = true, set_rng_state = true,
                 clock = true, set_num_threads = true, get_num_threads = true, is_tensor = true, is_module = true,
                 config = true}

  local function is_module_class(v)
    local cls = v
    while type(cls) == "table" do
      if cls == nn.Module then return true end
      cls = parent_of(cls)
    end
    return false
  end

  -- The family key of a public entry.
  local function family_of(entry)
    local name = entry.name
    if name == "nn" then return nil end
    -- the longest namespace prefix with a family
    local best, best_length = nil, 0
    for prefix, key in pairs(NAMESPACE_FAMILY) do
      if (name == prefix or name:sub(1, #prefix + 1) == prefix .. ".") and #prefix > best_length then
        best, best_length = key, #prefix
      end
    end
    local last = name:match("([%a_][%w_]*)$")
    if best == "tensors" or best == "modules" then
      -- tensor methods and nn.F's functions: by what they compute
      if AUTOGRAD[last] then return "autograd" end
      if is_activation_name(last) then return "activations" end
      local doc = doc_of(entry)
      local by_file = doc and FILE_FAMILY[doc.file]
      if by_file == "activations" or by_file == "losses" then return by_file end
      if best == "modules" and (last:match("loss$") or last:match("cross_entropy")) then return "losses" end
      return best
    end
    if best then return best end
    -- a class and its methods: by the class
    local cls = entry.class or (is_class(entry.value) and entry.value) or nil
    if cls and is_module_class(cls) then
      local class_name = (entry.class and name:match("([%a_][%w_]*)%.[%a_][%w_]*$")) or last
      if class_name:match("Loss$") then return "losses" end
      if not entry.class and is_activation_name(class_name) then return "activations" end
      local doc = lookup("nn." .. class_name, cls)
      if doc and FILE_FAMILY[doc.file] == "activations" then return "activations" end
      return "modules"
    end
    if AUTOGRAD[last] then return "autograd" end
    if UTILS[last] then return "utils" end
    -- a namespace that is not listed above gets a family of its own
    local namespace = name:match("^nn%.([%a_][%w_]*)%.") or (type(entry.value) == "table" and name:match("^nn%.([%a_][%w_]*)$"))
    if namespace and type(rawget(nn, namespace)) == "table" and not is_class(rawget(nn, namespace)) then
      return "nn." .. namespace
    end
    local doc = doc_of(entry)
    return doc and FILE_FAMILY[doc.file] or "tensors"
  end

  -- The families, each with its entries: {family, entries} in order; a
  -- namespace no family names comes last, as a family of its own.
  local function families()
    local by_key, order = {}, {}
    for _, f in ipairs(FAMILIES) do
      by_key[f.key] = {family = f, entries = {}}
      order[#order + 1] = by_key[f.key]
    end
    for _, entry in ipairs(names()) do
      local key = family_of(entry)
      if key then
        if not by_key[key] then
          local doc = lookup(key, rawget(nn, key:sub(4)))
          by_key[key] = {family = {key = key, title = key, about = summary(doc)}, entries = {}}
          order[#order + 1] = by_key[key]
        end
        local list = by_key[key].entries
        list[#list + 1] = entry
      end
    end
    local result = {}
    for _, f in ipairs(order) do
      if #f.entries > 0 then result[#result + 1] = f end
    end
    return result
  end

  local function family_named(text)
    local key = text:lower():gsub("^%s+", ""):gsub("%s+$", "")
    local aliases = {layers = "modules", module = "modules", layer = "modules", activation = "activations",
                     loss = "losses", optimizer = "optimizers", optim = "optimizers", scheduler = "schedulers",
                     tensor = "tensors", saving = "save/load", files = "save/load", pictures = "plot",
                     gpu = "cuda"}
    key = aliases[key] or key
    for _, f in ipairs(families()) do
      if f.family.key == key then return f end
    end
    return nil
  end

  -------------------------------------------------------------------------
  -- Finding what help(x) names

  local function safe_index(v, k)
    if type(v) ~= "table" and not nn.is_tensor(v) then return nil end
    local ok, r = pcall(function() return v[k] end)
    if ok then return r end
    return nil
  end

  local function entry_named(name)
    for _, entry in ipairs(names()) do if entry.name == name then return entry end end
    return nil
  end

  local find_value

  -- The entry for a method name on a class entry: its own, or the one of
  -- the ancestor that defines it.
  local function method_entry(class_entry, method)
    local own = entry_named(class_entry.name .. "." .. method)
    if own then return own end
    local v = safe_index(class_entry.value, method)
    if type(v) == "function" then return find_value(v) end
    return nil
  end

  -- The entries whose last name is short ("DataLoader", "zeros").
  local function entries_ending(short)
    local list = {}
    for _, entry in ipairs(names()) do
      if entry.name:match("([%a_][%w_]*)$") == short then list[#list + 1] = entry end
    end
    return list
  end

  -- Resolves a written name: "nn.Linear", "Linear", "Tensor:add", "t:add",
  -- "DataLoader:set_epoch", "optim.Adam:step", "F.relu". Returns the entry,
  -- or nil and a list of candidates when the name is ambiguous.
  local function find_name(text)
    local path = text:gsub("^%s+", ""):gsub("%s+$", ""):gsub("^nn[%.:]", "")
    if path == "nn" or path == "" then return entry_named("nn") end
    if not path:match("^[%a_][%w_%.:]*$") or path:find("[%.:][%.:]") or path:find("[%.:]$") then return nil end
    local parts = {}
    for part in path:gmatch("[^%.:]+") do parts[#parts + 1] = part end
    -- the dotted path from nn, the last part possibly a method
    local function walk(from_entry, first)
      local entry = from_entry
      for i = first, #parts do
        local next_entry = entry_named(entry.name .. "." .. parts[i])
        if not next_entry and (is_class(entry.value) or entry.name == "nn.Tensor") then
          next_entry = method_entry(entry, parts[i])
        end
        if not next_entry then
          local v = safe_index(entry.value, parts[i])
          if v == nil or i < #parts then return nil end
          next_entry = find_value(v)
        end
        if not next_entry then return nil end
        entry = next_entry
      end
      return entry
    end
    local entry = walk(entry_named("nn"), 1)
    if entry then return entry end
    -- a class or namespace by its own name: DataLoader, StepLR, Adam, Bar
    local candidates = {}
    for _, start in ipairs(entries_ending(parts[1])) do
      if #parts == 1 or type(start.value) == "table" then
        local found = walk(start, 2)
        if found then candidates[#candidates + 1] = found end
      end
    end
    -- a method written with the object's name: t:add, x:relu, m:parameters
    if #candidates == 0 and #parts == 2 and parts[1]:match("^[a-z]") then
      for _, class_name in ipairs {"nn.Tensor", "nn.Module"} do
        local found = method_entry(entry_named(class_name), parts[2])
        if found then candidates[#candidates + 1] = found break end
      end
    end
    if #candidates == 1 then return candidates[1] end
    if #candidates == 0 then return nil end
    -- several: the same documentation is one answer; else prefer the
    -- shortest name, when it is the only one that short
    local first_doc, same = doc_of(candidates[1]), true
    for _, c in ipairs(candidates) do same = same and doc_of(c) == first_doc end
    table.sort(candidates, function(a, b)
      local da, db = select(2, a.name:gsub("%.", "")), select(2, b.name:gsub("%.", ""))
      if da ~= db then return da < db end
      return a.name < b.name
    end)
    if same then return candidates[1] end
    local d1, d2 = select(2, candidates[1].name:gsub("%.", "")), select(2, candidates[2].name:gsub("%.", ""))
    if d1 < d2 then return candidates[1] end
    return nil, candidates
  end

  -- The entry of a value: a public function, class or namespace; a tensor
  -- (nn.Tensor); a module or another object (its class); a class of the
  -- user's own, or an instance of one (its nearest ancestor nn documents).
  find_value = function(x)
    local best
    for _, entry in ipairs(names()) do
      if rawequal(entry.value, x) and (best == nil or #entry.name < #best.name) then best = entry end
    end
    if best then return best end
    if type(x) == "function" and nn._unwrapped[x] then return find_value(nn._unwrapped[x]) end
    local stand_in = nn._stand_ins[x] -- t.glu before small_layers.lua loaded: what now holds its place
    if stand_in and stand_in[1][stand_in[2]] ~= x then return find_value(stand_in[1][stand_in[2]]) end
    if nn.is_tensor(x) then return entry_named("nn.Tensor") end
    if type(x) ~= "table" then return nil end
    local cls = is_class(x) and parent_of(x) or getmetatable(x)
    for _ = 1, 100 do -- a chain of classes, never a loop
      if not is_class(cls) then return nil end
      for _, entry in ipairs(names()) do
        if rawequal(entry.value, cls) then return entry end
      end
      cls = parent_of(cls)
    end
    return nil
  end

  -------------------------------------------------------------------------
  -- Searching

  --- nn.repl.search(text) -> list: the public names whose name or
  -- documentation holds text (any case), best first: a name that is text,
  -- then names that hold it, then documentation that mentions it. Each item
  -- is {name =, summary =, family =}.
  --   for _, hit in ipairs(nn.repl.search("dropout")) do print(hit.name) end
  local search_hits
  function repl.search(text)
    if type(text) ~= "string" then nn._raise("nn.repl.search: expected a string, got " .. type(text)) end
    names_cache = nil
    return search_hits(text)
  end

  search_hits = function(text)
    local needle = text:lower():gsub("^%s+", ""):gsub("%s+$", "")
    if needle == "" then return {} end
    local hits, seen_doc = {}, {}
    for _, entry in ipairs(names()) do
      local doc = doc_of(entry)
      local shown = display_name(entry)
      local last = shown:match("([%a_][%w_]*)$"):lower()
      local rank
      if last == needle or shown:lower() == needle then rank = 1
      elseif shown:lower():find(needle, 1, true) then rank = 2
      elseif doc and doc.text:lower():find(needle, 1, true) then rank = 3 end
      -- one line per documentation mentioned only in text ("t:add, t:sub...")
      if rank == 3 and seen_doc[doc] then rank = nil end
      if rank then
        if doc then seen_doc[doc] = true end
        hits[#hits + 1] = {name = shown, summary = summary(doc), family = family_of(entry), rank = rank}
      end
    end
    table.sort(hits, function(a, b)
      if a.rank ~= b.rank then return a.rank < b.rank end
      return a.name < b.name
    end)
    for _, h in ipairs(hits) do h.rank = nil end
    return hits
  end

  -------------------------------------------------------------------------
  -- The text help prints

  local function column_list(rows, indent)
    local width = 0
    for _, r in ipairs(rows) do width = math.max(width, #r[1]) end
    width = math.min(width, 34)
    local lines = {}
    for _, r in ipairs(rows) do
      local pad = #r[1] < width and string.rep(" ", width - #r[1]) or ""
      lines[#lines + 1] = (indent or "  ") .. r[1] .. (r[2] ~= "" and (pad .. "  " .. r[2]) or "")
    end
    return table.concat(lines, "\n")
  end

  -- What a namespace or class holds, one line each: "Contents:" /
  -- "Methods:", and the class it inherits the rest from.
  local function contents_text(entry)
    local v = entry.value
    if type(v) ~= "table" or entry.name == "nn" then return nil end
    local rows = {}
    local prefix = entry.name .. "."
    for _, e in ipairs(names()) do
      local rest = e.name:sub(#prefix + 1)
      if e.name:sub(1, #prefix) == prefix and not rest:find(".", 1, true) then
        rows[#rows + 1] = {display_name(e), summary(doc_of(e))}
      end
    end
    local classy = is_class(v) or entry.name == "nn.Tensor"
    local parts = {}
    if #rows > 0 then parts[#parts + 1] = (classy and "Methods:" or "Contents:") .. "\n" .. column_list(rows) end
    if is_class(v) then
      local parent = parent_of(v)
      local parent_entry = parent and find_value(parent)
      if parent_entry then
        parts[#parts + 1] = "Inherits the methods of " .. parent_entry.name .. ": help(" .. parent_entry.name .. ")"
      end
    end
    if #parts == 0 then return nil end
    return table.concat(parts, "\n\n")
  end

  local function families_text()
    local rows = {}
    for _, f in ipairs(families()) do rows[#rows + 1] = {f.family.key, f.family.about} end
    return "Families (help(\"losses\") lists one; help(\"word\") searches every name and text):\n"
           .. column_list(rows)
  end

  local function family_text(f)
    local rows = {}
    for _, entry in ipairs(f.entries) do
      if not entry.class then rows[#rows + 1] = {display_name(entry), summary(doc_of(entry))} end
    end
    return f.family.title .. ": " .. f.family.about .. "\n\n" .. column_list(rows)
  end

  local function search_text(text, hits, limit)
    if #hits == 0 then
      return "help: nothing in nn is named or documented with '" .. text .. "'; help(nn) lists the families"
    end
    local rows = {}
    for i, h in ipairs(hits) do
      if i > limit then break end
      rows[#rows + 1] = {h.name, h.summary}
    end
    local more = #hits > limit and string.format("\n  ... and %d more: nn.repl.search(%q) lists them all",
                                                 #hits - limit, text) or ""
    return string.format("help: %d name%s in nn match '%s' (names first; help(name) for one):\n", #hits,
                         #hits == 1 and "" or "s", text) .. column_list(rows) .. more
  end

  -- The help of an entry; note, under its name, says what was asked about
  -- when the entry stands for it (an instance, or a class of the user's own).
  local function entry_text(entry, note)
    local doc = doc_of(entry)
    if doc == nil then return nil, "help: " .. display_name(entry) .. " is not documented" end
    local parts = {display_name(entry), doc.text}
    if note then table.insert(parts, 2, "(" .. note .. ")") end
    if entry.name == "nn" then parts[#parts + 1] = families_text() end
    local contents = contents_text(entry)
    if contents then parts[#parts + 1] = contents end
    return table.concat(parts, "\n\n")
  end

  -- What x is, when help shows its class's documentation instead.
  local function stand_in_note(x, entry)
    if type(x) ~= "table" or rawequal(entry.value, x) then return nil end
    if is_class(x) then
      return string.format("%s: a class of your own, built on %s (its documentation follows)",
                           tostring(rawget(x, "__name")), entry.name)
    end
    local mt = getmetatable(x)
    local class_name = type(mt) == "table" and rawget(mt, "__name") or entry.name
    if rawequal(mt, entry.value) then
      return string.format("an instance of %s (the documentation of its class follows)", entry.name)
    end
    return string.format("an instance of %s, built on %s (its documentation follows)", tostring(class_name),
                         entry.name)
  end

  --- nn.repl.doc(x): the documentation of x (a value of nn, or a name as a
  -- string: "nn.Linear", "Tensor:sum", "DataLoader:set_epoch", a family
  -- such as "losses", or any word, which is searched for) as a string
  -- headed by its name, or nil and a message when there is none.
  --   print(nn.repl.doc(nn.zeros))
  function repl.doc(x)
    names_cache = nil -- nn may have grown since (a namespace loaded, a class added)
    if type(x) == "string" then
      local f = family_named(x)
      if f then return family_text(f) end
      local entry, candidates = find_name(x)
      if entry then return entry_text(entry) end
      local hits = search_hits(x)
      if candidates then
        hits = {}
        for _, c in ipairs(candidates) do hits[#hits + 1] = {name = display_name(c), summary = summary(doc_of(c))} end
      end
      if #hits == 0 then return nil, search_text(x, hits, 0):gsub("^help: nothing", "help: no documentation for "
                                                                  .. x .. ": nothing") end
      return search_text(x, hits, 30)
    end
    local entry = find_value(x)
    if entry == nil then
      return nil, "help: no documentation for " .. tostring(x) .. " (it is not part of nn)"
    end
    return entry_text(entry, stand_in_note(x, entry))
  end

  -- For ?x at the prompt: whether x is something help knows by its value.
  function repl._documents_value(x) return find_value(x) ~= nil end

  --- nn.help([x]): prints the documentation of x: a function, class,
  -- module or namespace of nn, an instance (a tensor, a model: its class),
  -- or a name ("nn.Linear", "Tensor:sum", "DataLoader:set_epoch"); a family
  -- ("losses", "optimizers") lists its names; any other word is searched
  -- for in every name and text (help("dropout")). With no argument, or
  -- help(nn), the families. In nnlua, help is also a global, in scripts as
  -- at the prompt, where `?x` is short for help(x).
  --   nn.help(nn.Linear)
  --   nn.help("Tensor:sum")
  --   help("conv")
  function nn.help(...)
    nn._check_count("help", 1, "[x]", ...)
    if select("#", ...) == 0 then
      print((repl.doc(nn)))
      return
    end
    local text, message = repl.doc((...))
    print(text or message)
  end

  -------------------------------------------------------------------------
  -- The reference manual

  local function anchor(title)
    return (title:lower():gsub("[^%w%- ]", ""):gsub(" ", "-"))
  end

  --- nn.repl.reference() -> text: the reference manual (Markdown), every
  -- documented name of nn by family, from the same documentation help()
  -- shows. The build writes it (build/reference.md) and docs/reference.md
  -- is that file, committed.
  function repl.reference()
    names_cache = nil
    local out = {}
    local function add(s) out[#out + 1] = s end
    add("# nnlua reference")
    add("")
    add("Every public name of `nn`, by family, with the documentation `help(x)` prints (the same")
    add("comments in `lua/`). Generated by the build from those comments: do not edit; after")
    add("changing a comment, `cmake --build build --target reference` rewrites this file.")
    add("")
    local nn_doc = doc_of(entry_named("nn"))
    add("```text")
    add(nn_doc and nn_doc.text or "nn")
    add("```")
    add("")
    local list = families()
    for _, f in ipairs(list) do
      add(string.format("- [%s](#%s): %s", f.family.title, anchor(f.family.title), f.family.about))
    end
    for _, f in ipairs(list) do
      add("")
      add("## " .. f.family.title)
      add("")
      add(f.family.about:sub(1, 1):upper() .. f.family.about:sub(2) .. ".")
      -- one section per documentation comment, headed by every name it documents
      local sections, by_doc = {}, {}
      for _, entry in ipairs(f.entries) do
        local doc = doc_of(entry)
        if doc then
          if not by_doc[doc] then
            by_doc[doc] = {doc = doc, names = {}}
            sections[#sections + 1] = by_doc[doc]
          end
          local n = by_doc[doc].names
          n[#n + 1] = display_name(entry)
        end
      end
      for _, s in ipairs(sections) do
        table.sort(s.names)
        add("")
        add("### " .. table.concat(s.names, ", "))
        add("")
        add("```text")
        add(s.doc.text)
        add("```")
      end
    end
    return table.concat(out, "\n") .. "\n"
  end
end

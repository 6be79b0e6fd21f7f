-- Containers: modules that hold other modules or parameters and have no
-- forward of their own (ModuleList, ModuleDict, ParameterList,
-- ParameterDict), as PyTorch's. A list's k-th entry is self[k] (Lua counts
-- from 1) and is named "k-1" in a state_dict, as PyTorch names it; a
-- dict's entries are fields named by their keys.
return function(nn)
  local raise = nn._raise
  local Module = nn.Module

  local function show(v)
    if type(v) == "string" then return "'" .. v .. "'" end
    return type(v)
  end

  -- The position argument of insert: an integer 1..n+1, or -n..-1 counted from the end.
  local function position(who, i, n)
    if math.type(i) == "float" and i == math.floor(i) then i = math.tointeger(i) end
    if math.type(i) ~= "integer" then raise(string.format("%s: index must be an integer, got %s", who, show(i))) end
    if i < 0 then i = n + 2 + i end
    if i < 1 or i > n + 1 then
      raise(string.format("%s: index %d is out of range 1..%d", who, i, n + 1))
    end
    return i
  end

  local function no_forward(self, ...) -- takes any arguments, so that this is the message
    raise(self.__name .. ": a container has no forward; call the modules it holds")
  end

  ---------------------------------------------------------------------------
  --- nn.ModuleList([modules]): a list of modules, registered so that
  -- parameters(), state_dict() ("0.weight", ...), to(), train()/eval() and
  -- print reach them. ml[i] is the i-th (from 1), #ml the count; iterate with
  -- ipairs(ml). It has no forward: a model's forward calls the modules.
  --   local layers = nn.ModuleList{nn.Linear(2, 8), nn.Linear(8, 1)}
  --   layers:append(nn.Tanh())
  --   for i, layer in ipairs(layers) do x = layer(x) end
  local ModuleList = Module:extend("ModuleList")
  nn.ModuleList = ModuleList

  local function check_module(who, m, i)
    if not nn.is_module(m) then
      raise(string.format("%s: %s is %s, not a module", who, i and ("entry " .. i) or "the argument",
        nn.is_tensor(m) and "a tensor" or type(m)))
    end
  end

  function ModuleList:init(modules)
    if modules ~= nil then self:extend(modules) end
  end

  --- ml:append(m): adds module m at the end; returns ml.
  function ModuleList:append(m)
    check_module("ModuleList:append", m)
    self[#self._modules + 1] = m
    return self
  end

  --- ml:extend(modules): appends each module of a list (or of another ModuleList); returns ml.
  function ModuleList:extend(modules)
    if type(modules) ~= "table" or nn.is_tensor(modules) then
      raise("ModuleList:extend: expected a list of modules, got " .. (nn.is_tensor(modules) and "a tensor" or type(modules)))
    end
    local list = {}
    if getmetatable(modules) == ModuleList then
      for i = 1, #modules._modules do list[i] = rawget(modules, i) end
    else
      if nn.is_module(modules) then raise("ModuleList:extend: expected a list of modules, got a single module (use append)") end
      for i, m in ipairs(modules) do
        check_module("ModuleList:extend", m, i)
        list[i] = m
      end
    end
    for _, m in ipairs(list) do self[#self._modules + 1] = m end
    return self
  end

  --- ml:insert(i, m): puts module m at position i (1..#ml+1; -1 is before the
  -- last), moving the modules from i on one place up, as table.insert.
  function ModuleList:insert(i, m)
    local n = #self._modules
    i = position("ModuleList:insert", i, n)
    check_module("ModuleList:insert", m)
    if n > 0 then self[n + 1] = rawget(self, n) end -- registers the new last key
    for j = n, i + 1, -1 do rawset(self, j, rawget(self, j - 1)) end
    if i <= n then rawset(self, i, m) else self[i] = m end
    return self
  end

  function ModuleList:__len() return #self._modules end
  ModuleList.forward = no_forward

  ---------------------------------------------------------------------------
  --- nn.ModuleDict([modules]): modules under string keys, registered as
  -- ModuleList's, and named by their keys in a state_dict ("encoder.weight").
  -- modules is a list of {key, module} pairs (kept in that order) or a table
  -- key -> module (in sorted key order). md[key] or md.key reads one, md[key] = m
  -- adds or replaces one; #md counts them; md:keys(), md:values(), md:items()
  -- (an iterator of key, module) and md:pop(key) as PyTorch's.
  --   local heads = nn.ModuleDict{{"mean", nn.Linear(8, 1)}, {"logvar", nn.Linear(8, 1)}}
  --   for key, head in heads:items() do print(key, head) end
  local ModuleDict = Module:extend("ModuleDict")
  nn.ModuleDict = ModuleDict

  -- The entries of a dict argument as a list of {key, value}: a list of pairs
  -- in its order, or a table's keys sorted.
  local function entries_of(who, t)
    if type(t) ~= "table" or nn.is_tensor(t) or nn.is_module(t) then
      raise(string.format("%s: expected a table of entries, got %s", who,
        nn.is_module(t) and "a module" or nn.is_tensor(t) and "a tensor" or type(t)))
    end
    local list = {}
    if #t > 0 then
      for i, pair in ipairs(t) do
        if type(pair) ~= "table" or #pair ~= 2 then
          raise(string.format("%s: entry %d must be a {key, value} pair", who, i))
        end
        list[i] = {pair[1], pair[2]}
      end
    else
      for k, v in pairs(t) do list[#list + 1] = {k, v} end
      table.sort(list, function(a, b) return tostring(a[1]) < tostring(b[1]) end)
    end
    return list
  end

  local function check_key(who, cls, key)
    if type(key) ~= "string" or key == "" then
      raise(string.format("%s: keys must be non-empty strings, got %s", who, show(key)))
    end
    if key:find(".", 1, true) then raise(string.format("%s: key '%s' must not contain '.'", who, key)) end
    if cls[key] ~= nil or key == "training" or key:sub(1, 1) == "_" then
      raise(string.format("%s: key '%s' is taken by a method or field of %s", who, key, cls.__name))
    end
  end

  function ModuleDict:init(modules)
    if modules ~= nil then self:update(modules) end
  end

  function ModuleDict:__newindex(key, value)
    if rawget(self, "_modules") and not (type(key) == "string" and (key:match("^_") or key == "training")) then
      check_key("ModuleDict", ModuleDict, key)
      check_module("ModuleDict", value, "'" .. key .. "'")
    end
    Module.__newindex(self, key, value)
  end

  --- md:update(modules): adds or replaces the entries of modules (as for nn.ModuleDict).
  function ModuleDict:update(modules)
    for _, e in ipairs(entries_of("ModuleDict:update", modules)) do
      self[e[1]] = e[2]
    end
    return self
  end

  -- What a dict removes: key from its list of keys (field) and the field itself.
  local function remove_key(self, field, key)
    local list = self[field]
    for i, k in ipairs(list) do
      if k == key then
        table.remove(list, i)
        break
      end
    end
    rawset(self, key, nil)
  end

  --- md:pop(key): removes the entry and returns its module.
  function ModuleDict:pop(key)
    local m = type(key) == "string" and rawget(self, key) or nil
    if m == nil then raise(string.format("ModuleDict:pop: no entry %s", show(key))) end
    remove_key(self, "_modules", key)
    return m
  end

  --- md:clear(): removes every entry.
  function ModuleDict:clear()
    for _, key in ipairs(self:keys()) do remove_key(self, "_modules", key) end
  end

  --- md:keys(): the keys, in insertion order.
  function ModuleDict:keys()
    local keys = {}
    for i, k in ipairs(self._modules) do keys[i] = k end
    return keys
  end
  --- md:values(): the modules, in insertion order.
  function ModuleDict:values()
    local values = {}
    for i, k in ipairs(self._modules) do values[i] = rawget(self, k) end
    return values
  end
  --- for key, m in md:items() do ... end, in insertion order.
  function ModuleDict:items() return self:children() end
  --- md:contains(key): whether there is an entry under key (Python's `key in md`).
  function ModuleDict:contains(key) return type(key) == "string" and rawget(self, key) ~= nil end

  function ModuleDict:__len() return #self._modules end
  ModuleDict.forward = no_forward

  ---------------------------------------------------------------------------
  -- PyTorch's line for a parameter in a ParameterList:
  -- "Parameter containing: [torch.float32 of size 2x3]".
  local function parameter_line(p, legacy)
    local size = p:dim() == 0 and "" or " of size " .. table.concat(p:size(), "x")
    local dtype = legacy and ({float32 = "FloatTensor", float64 = "DoubleTensor", int64 = "LongTensor"})[p.dtype]
      or p.dtype
    local device = p.device ~= "cpu" and " (" .. p.device .. ")" or ""
    return "Parameter containing: [torch." .. dtype .. size .. device .. "]"
  end

  -- PyTorch 1.13's repr of the two parameter containers: their lines are
  -- the module's extra_repr, so one line stays on the head's line and
  -- several go below it, indented twice.
  local function container_repr(name, lines)
    if #lines == 0 then return name .. "()" end
    if #lines == 1 then return name .. "(" .. lines[1] .. ")" end
    return name .. "(\n  " .. table.concat(lines, "\n  ") .. "\n)"
  end

  local function as_parameter(who, t, label)
    if not nn.is_tensor(t) then
      raise(string.format("%s: %s is %s, not a tensor", who, label, nn.is_module(t) and "a module" or type(t)))
    end
    if not t.is_leaf then t = t:detach() end
    return nn.Parameter(t)
  end

  --- nn.ParameterList([tensors]): a list of parameters (each tensor made an
  -- nn.Parameter), registered so that parameters() and state_dict() ("0",
  -- "1", ...) find them; pl[i], #pl, ipairs(pl), pl:append(t), pl:extend(list).
  --   local pl = nn.ParameterList{nn.zeros(3), nn.ones(2, 2)}
  --   pl:append(nn.randn(4))
  local ParameterList = Module:extend("ParameterList")
  nn.ParameterList = ParameterList

  function ParameterList:init(tensors)
    if tensors ~= nil then self:extend(tensors) end
  end

  --- pl:append(t): adds t (made an nn.Parameter) at the end; returns pl.
  function ParameterList:append(t)
    local p = as_parameter("ParameterList:append", t, "the argument")
    self[#self._parameters + 1] = p
    return self
  end

  --- pl:extend(tensors): appends each tensor of a list; returns pl.
  function ParameterList:extend(tensors)
    if type(tensors) ~= "table" or nn.is_tensor(tensors) or nn.is_module(tensors) and getmetatable(tensors) ~= ParameterList then
      raise("ParameterList:extend: expected a list of tensors, got " .. (nn.is_tensor(tensors) and "a tensor" or type(tensors)))
    end
    local list = {}
    local n = getmetatable(tensors) == ParameterList and #tensors._parameters or #tensors
    for i = 1, n do list[i] = as_parameter("ParameterList", rawget(tensors, i), "entry " .. i) end
    for _, p in ipairs(list) do self[#self._parameters + 1] = p end
    return self
  end

  function ParameterList:__len() return #self._parameters end
  ParameterList.forward = no_forward

  function ParameterList:__tostring()
    local lines = {}
    for i, key in ipairs(self._parameters) do
      lines[i] = "  (" .. tostring(key) .. "): " .. parameter_line(rawget(self, key))
    end
    return container_repr("ParameterList", lines)
  end

  --- nn.ParameterDict([tensors]): parameters under string keys, named by
  -- them in a state_dict; tensors as for nn.ModuleDict (a list of {key, t}
  -- pairs, or a table key -> t). pd[key], pd[key] = t, #pd, pd:keys(),
  -- pd:values(), pd:items(), pd:pop(key), pd:update(t).
  --   local pd = nn.ParameterDict{scale = nn.ones(3), shift = nn.zeros(3)}
  local ParameterDict = Module:extend("ParameterDict")
  nn.ParameterDict = ParameterDict

  function ParameterDict:init(tensors)
    if tensors ~= nil then self:update(tensors) end
  end

  function ParameterDict:__newindex(key, value)
    if rawget(self, "_parameters") and not (type(key) == "string" and (key:match("^_") or key == "training")) then
      check_key("ParameterDict", ParameterDict, key)
      value = as_parameter("ParameterDict", value, "'" .. key .. "'")
    end
    Module.__newindex(self, key, value)
  end

  --- pd:update(tensors): adds or replaces entries.
  function ParameterDict:update(tensors)
    for _, e in ipairs(entries_of("ParameterDict:update", tensors)) do
      self[e[1]] = e[2]
    end
    return self
  end

  --- pd:pop(key): removes the entry and returns its parameter.
  function ParameterDict:pop(key)
    local p = type(key) == "string" and rawget(self, key) or nil
    if p == nil then raise(string.format("ParameterDict:pop: no entry %s", show(key))) end
    remove_key(self, "_parameters", key)
    return p
  end
  --- pd:keys(): the keys, in insertion order.
  function ParameterDict:keys()
    local keys = {}
    for i, k in ipairs(self._parameters) do keys[i] = k end
    return keys
  end
  --- pd:values(): the parameters, in insertion order.
  function ParameterDict:values()
    local values = {}
    for i, k in ipairs(self._parameters) do values[i] = rawget(self, k) end
    return values
  end
  --- for key, p in pd:items() do ... end, in insertion order.
  function ParameterDict:items()
    local i, list = 0, self._parameters
    return function()
      i = i + 1
      local key = list[i]
      if key ~= nil then return key, rawget(self, key) end
    end
  end
  --- pd:contains(key): whether there is an entry under key.
  function ParameterDict:contains(key) return type(key) == "string" and rawget(self, key) ~= nil end
  function ParameterDict:__len() return #self._parameters end
  ParameterDict.forward = no_forward

  function ParameterDict:__tostring()
    local lines = {}
    for i, key in ipairs(self._parameters) do
      lines[i] = "  (" .. key .. "): " .. parameter_line(rawget(self, key), true)
    end
    return container_repr("ParameterDict", lines)
  end
end

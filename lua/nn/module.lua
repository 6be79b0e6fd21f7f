-- nn.Module: the base of every layer, and of a user's own models.
--
--   local Net = nn.Module:extend("Net")
--   function Net:init(hidden) self.fc1 = nn.Linear(2, hidden); self.fc2 = nn.Linear(hidden, 1) end
--   function Net:forward(x) return self.fc2(self.fc1(x):tanh()):sigmoid() end
--   local net = Net(10)        -- net(x) calls net:forward(x)
--
-- Assigning a module or an nn.Parameter to a field registers it, so
-- parameters(), state_dict() and print() find it; the value itself stays a
-- plain field, read without any indirection on the hot path.
return function(nn)
  local raise = nn._raise
--- nn.Module: the base class of every layer and of a user's own models.
-- Define a class with nn.Module:extend("Name"), set it up in init and
-- compute in forward; m(x) calls m:forward(x). Modules and nn.Parameter
-- tensors assigned to fields are registered (parameters(), print, state_dict).
--   local Net = nn.Module:extend("Net")
--   function Net:init(h) self.fc = nn.Linear(2, h) end
--   function Net:forward(x) return self.fc(x):tanh() end
  local Module = {}
  Module.__index = Module
  Module.__name = "Module"
  nn.Module = Module

  local parameter_marks = setmetatable({}, {__mode = "k"})

  --- nn.Parameter(t): marks a tensor as a module's learnable parameter (requires grad).
  function nn.Parameter(t)
    if not nn.is_tensor(t) then raise("Parameter: expected a tensor, got " .. type(t)) end
    t:requires_grad_(true)
    parameter_marks[t] = true
    return t
  end

--- nn.is_module(v): true when v is a module (an instance of an nn.Module class).
  function nn.is_module(v)
    return type(v) == "table" and rawget(v, "_modules") ~= nil
  end

  local function register(list, key)
    for _, k in ipairs(list) do if k == key then return end end
    list[#list + 1] = key
  end

  local function newindex(self, key, value)
    if nn.is_module(value) then
      register(rawget(self, "_modules"), key)
    elseif nn.is_tensor(value) and parameter_marks[value] then
      register(rawget(self, "_parameters"), key)
    end
    rawset(self, key, value)
  end

  local function instance_call(self, ...) return self:forward(...) end

  local copy_metamethods = nn._C.copy_metamethods
  local function class_tostring(cls) return "class " .. cls.__name end

  --- Module:extend(name): a new class deriving from this one.
  function Module:extend(name)
    if type(name) ~= "string" then raise("extend: the class needs a name (a string)") end
    local cls = {}
    copy_metamethods(self, cls) -- self's "__" keys (in C: every class of nn extends one as nn loads)
    cls.__index = cls
    cls.__name = name
    cls.super = self
    return setmetatable(cls, {__index = self, __call = function(c, ...) return c:new(...) end,
                              __tostring = class_tostring})
  end

  --- Class(...): a new instance; the class's init(...) sets it up.
  function Module:new(...)
    local obj = {_parameters = {}, _modules = {}, _buffers = {}, training = true}
    setmetatable(obj, self)
    obj:init(...)
    return obj
  end

  Module.__newindex = newindex
  Module.__call = instance_call
  setmetatable(Module, {__call = function(c, ...) return c:new(...) end, __tostring = class_tostring})

--- Module:init(...): sets a new instance up (a class defines it); called by
-- Class(...) with the same arguments. The base one does nothing.
  function Module:init() end

--- Module:forward(...): the computation, defined by each class; m(...) calls
-- it. The base one raises (it takes any arguments, so that this is the
-- message a class without forward gets).
  function Module:forward(...)
    raise(self.__name .. ": forward is not defined (define " .. self.__name .. ":forward(x))")
  end

  -- PyTorch's checks of a name and value given to register_parameter or
  -- register_buffer (op): a string with no ".", not empty, not already
  -- another attribute (a field, a method, a parameter that is to become a
  -- buffer), and a tensor or nil.
  local function check_registration(self, op, kind, list, name, t)
    if type(name) ~= "string" then raise(op .. ": " .. kind .. " name should be a string, got " .. type(name)) end
    if name == "" then raise(op .. ": " .. kind .. " name can't be empty string \"\"") end
    if name:find(".", 1, true) then raise(op .. ": " .. kind .. " name can't contain \".\", got '" .. name .. "'") end
    local registered = false
    for _, k in ipairs(list) do if k == name then registered = true end end
    if not registered and self[name] ~= nil then raise(op .. ": attribute '" .. name .. "' already exists") end
    if t ~= nil and not nn.is_tensor(t) then
      raise(string.format("%s: cannot assign a %s to %s '%s' (a tensor or nil required)", op, type(t), kind, name))
    end
  end

  --- m:register_parameter(name, t) / m:register_buffer(name, t): adds t (a
  -- tensor, or nil: the name is kept, the value absent) under name, a
  -- string, as a parameter or a buffer; a name that is already another
  -- attribute is an error, as in PyTorch.
  function Module:register_parameter(name, t)
    check_registration(self, "register_parameter", "parameter", self._parameters, name, t)
    if t ~= nil then nn.Parameter(t) end
    register(self._parameters, name)
    rawset(self, name, t)
  end
  function Module:register_buffer(name, t)
    check_registration(self, "register_buffer", "buffer", self._buffers, name, t)
    register(self._buffers, name)
    rawset(self, name, t)
  end

  --- for name, child in m:children() do ... end (in registration order)
  function Module:children()
    local i, list = 0, self._modules
    return function()
      i = i + 1
      local key = list[i]
      if key ~= nil then return key, rawget(self, key) end
    end
  end

  -- The name PyTorch gives the child under key: a positive integer key k
  -- (a Sequential's k-th module, self[k]) is "k-1", PyTorch's 0-based
  -- index; any other key is its own name. So model[1].weight is
  -- "0.weight" in a state_dict, as in PyTorch's, while Lua indexes from 1.
  local function torch_name(key)
    if math.type(key) == "integer" and key >= 1 then return string.format("%d", key - 1) end
    return tostring(key)
  end
  nn._torch_name = torch_name

  local function joined(prefix, name)
    if prefix == "" then return name end
    return prefix .. "." .. name
  end

  -- Every module once, depth first, each before its children, with its
  -- dotted name ("" for self): PyTorch's named_modules.
  local function named_module_lists(self)
    local names, modules, seen = {}, {}, {}
    local function visit(m, prefix)
      if seen[m] then return end
      seen[m] = true
      names[#names + 1], modules[#modules + 1] = prefix, m
      for _, key in ipairs(m._modules) do
        local child = rawget(m, key)
        if child then visit(child, joined(prefix, torch_name(key))) end
      end
    end
    visit(self, "")
    return names, modules
  end

  local function pairs_of(names, values)
    local i = 0
    return function()
      i = i + 1
      if names[i] ~= nil then return names[i], values[i] end
    end
  end

  -- The parameters (field "_parameters") or buffers ("_buffers") of every
  -- module, each once, as PyTorch's _named_members lists them.
  local function named_members(self, field)
    local prefixes, modules = named_module_lists(self)
    local names, values, seen = {}, {}, {}
    for i, m in ipairs(modules) do
      for _, key in ipairs(m[field]) do
        local v = rawget(m, key)
        if v ~= nil and not seen[v] then
          seen[v] = true
          names[#names + 1], values[#values + 1] = joined(prefixes[i], torch_name(key)), v
        end
      end
    end
    return names, values
  end

  --- for name, m in model:named_modules() do ... end: this module (name "")
  -- and every descendant once, depth first, each before its children,
  -- named as PyTorch names them ("0", "0.fc1"; model[1] is "0").
  function Module:named_modules() return pairs_of(named_module_lists(self)) end

  --- for name, child in m:named_children() do ... end: the direct children
  -- in registration order, with PyTorch's names (a Sequential's first is
  -- "0"); m:children() gives the Lua keys (1, "fc1") instead.
  function Module:named_children()
    local names, children = {}, {}
    for _, key in ipairs(self._modules) do
      local child = rawget(self, key)
      if child then names[#names + 1], children[#children + 1] = torch_name(key), child end
    end
    return pairs_of(names, children)
  end

  --- for name, p in m:named_parameters() do ... end: every parameter once,
  -- in PyTorch's order and with its names ("0.weight" for model[1].weight).
  function Module:named_parameters() return pairs_of(named_members(self, "_parameters")) end

  --- for name, b in m:named_buffers() do ... end: every buffer once
  -- (running statistics, a loss's class weights), named as PyTorch does.
  function Module:named_buffers() return pairs_of(named_members(self, "_buffers")) end

  --- m:parameters(): the list of learnable tensors, in a stable order.
  function Module:parameters()
    local _, params = named_members(self, "_parameters")
    return params
  end

  --- m:buffers(): the list of buffers, in named_buffers' order.
  function Module:buffers()
    local _, buffers = named_members(self, "_buffers")
    return buffers
  end

  --- m:modules(): this module and every descendant, depth first.
  function Module:modules()
    local _, modules = named_module_lists(self)
    return modules
  end

  --- m:num_parameters(): how many numbers the model learns.
  function Module:num_parameters()
    local n = 0
    for _, p in ipairs(self:parameters()) do n = n + p:numel() end
    return n
  end

  --- m:train([mode = true]) / m:eval(): sets training mode on every module.
  function Module:train(mode)
    if mode == nil then mode = true end
    for _, m in ipairs(self:modules()) do rawset(m, "training", mode and true or false) end
    return self
  end
  function Module:eval() return self:train(false) end

  --- m:zero_grad([set_to_none = false])
  function Module:zero_grad(set_to_none)
    nn._C.zero_grads(self:parameters(), set_to_none)
  end

  -- Applies fn to each parameter, its gradient and each buffer. A parameter
  -- takes the new value in place, as PyTorch's does (param.data = ...), so
  -- that an optimizer made before m:to(device) still holds it, and a weight
  -- shared by two modules stays shared; a buffer is replaced.
  function Module:_apply(fn)
    local done = {}
    for _, m in ipairs(self:modules()) do
      for _, key in ipairs(m._parameters) do
        local p = rawget(m, key)
        if p ~= nil and not done[p] then
          done[p] = true
          local q = fn(p)
          if q ~= p then nn._C.tensor_set_data(p, q:detach()) end
          local g = p.grad
          if g ~= nil then
            local h = fn(g)
            if h ~= g then p.grad = h:detach() end
          end
        end
      end
      for _, key in ipairs(m._buffers) do
        local b = rawget(m, key)
        if b ~= nil then rawset(m, key, fn(b)) end
      end
    end
    return self
  end

  local floating = {float32 = true, float64 = true, float = true, double = true}

  --- m:to(device_or_dtype), m:float(), m:double(), m:cuda(), m:cpu(): a dtype
  -- converts the floating-point parameters and buffers only (a step counter
  -- stays an integer), a device moves them all.
  function Module:to(where)
    return self:_apply(function(t)
      if floating[where] and not floating[t.dtype] then return t end
      return t:to(where)
    end)
  end
  function Module:float() return self:to("float32") end
  function Module:double() return self:to("float64") end
  function Module:cuda() return self:to("cuda") end
  function Module:cpu() return self:to("cpu") end

  --- Module._version: the layout version of a class's state_dict entries,
  -- recorded in a state_dict's _metadata as PyTorch records it (1 unless
  -- a class changed its entries: BatchNorm1d's is 2).
  Module._version = 1

  -- state_dict and load_state_dict, and all they need, are in
  -- nn.module_state, loaded at the first call of either: a script that
  -- never saves nor loads weights does not pay to load them.
  local state
  local function state_functions()
    state = state or require "nn.module_state" (nn)
    return state
  end

  --- m:state_dict(): PyTorch's state_dict: name -> tensor (sharing storage)
  -- for every parameter and buffer, named and ordered as PyTorch's
  -- (a module's own parameters, then its buffers, then each child's, a
  -- Sequential's first child being "0": "0.weight", "0.bias",
  -- "1.running_mean", ...). pairs() visits them in that order. Like
  -- PyTorch's OrderedDict it carries _metadata (each module's _version),
  -- kept beside the table, not in it: nn.save writes it into a .pt file.
  function Module:state_dict() return state_functions().state_dict(self) end

  --- m:load_state_dict(sd [, strict = true]) -> {missing_keys =, unexpected_keys =}:
  -- copies the tensors of sd (a state_dict, from nnlua or PyTorch: nn.load
  -- of a .pt or safetensors file) into the module's parameters and buffers,
  -- converting dtype and device as copy_ does. With strict, a missing or
  -- unexpected key is an error worded as PyTorch's ("Missing key(s) in
  -- state_dict: "0.weight". "); strict = false skips them and returns them
  -- in the two lists. A tensor of another shape is an error either way.
  -- Unlike PyTorch, nothing is copied when any error is raised.
  -- sd from nn.load of a safetensors file an earlier nnlua saved (when a
  -- Sequential's first child was "1") loads too: its keys are renumbered
  -- when that, and only that, makes them match.
  function Module:load_state_dict(sd, strict) return state_functions().load_state_dict(self, sd, strict) end

  --- m:extra_repr(): what print(m) shows inside the parentheses.
  function Module:extra_repr() return "" end

  function Module:__tostring()
    local lines = {}
    for _, key in ipairs(self._modules) do
      local child = rawget(self, key)
      local text = tostring(child):gsub("\n", "\n  ")
      lines[#lines + 1] = "  (" .. tostring(key) .. "): " .. text
    end
    local head = self.__name .. "(" .. self:extra_repr()
    if #lines == 0 then return head .. ")" end
    return head .. "\n" .. table.concat(lines, "\n") .. "\n)"
  end

  ---------------------------------------------------------------------------
  --- nn.Sequential(m1, m2, ...): applies its modules in order; s[i] is the i-th.
  local Sequential = Module:extend("Sequential")
  nn.Sequential = Sequential

  function Sequential:init(...)
    for i = 1, select("#", ...) do
      local m = select(i, ...)
      if not nn.is_module(m) then
        raise(string.format("Sequential: argument %d is a %s, not a module", i, type(m)))
      end
      self[i] = m
    end
  end

  --- s:add(m): appends a module.
  function Sequential:add(m)
    if not nn.is_module(m) then raise("Sequential:add: expected a module, got " .. type(m)) end
    self[#self._modules + 1] = m
    return self
  end

  function Sequential:__len() return #self._modules end

  -- s:forward(x): built-in layers run back to back in C, without a Lua call
  -- between them; any other child's forward is called in turn. Written in C
  -- (lua/nn_module.c), which checks its own arguments.
  Sequential.forward = nn._C.sequential_forward
  -- s(x): s:forward(x), found as a method call finds it (an instance's or a
  -- subclass's own forward runs); Sequential's own runs without a Lua call.
  Sequential.__call = nn._C.sequential_call
end

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

  local function class_tostring(cls) return "class " .. cls.__name end

  --- Module:extend(name): a new class deriving from this one.
  function Module:extend(name)
    if type(name) ~= "string" then raise("extend: the class needs a name (a string)") end
    local cls = {}
    for k, v in pairs(self) do
      if type(k) == "string" and k:sub(1, 2) == "__" then cls[k] = v end
    end
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

  --- m:register_parameter(name, t) / m:register_buffer(name, t)
  function Module:register_parameter(name, t)
    if t ~= nil then nn.Parameter(t) end
    register(self._parameters, name)
    rawset(self, name, t)
  end
  function Module:register_buffer(name, t)
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

  -- Visits (prefix, module) depth first, the module before its children.
  local function walk(m, prefix, visit, seen)
    if seen[m] then return end
    seen[m] = true
    visit(prefix, m)
    for _, key in ipairs(m._modules) do
      local child = rawget(m, key)
      if child then walk(child, prefix .. tostring(key) .. ".", visit, seen) end
    end
  end

  --- for name, p in m:named_parameters() do ... end, names like "1.weight"
  function Module:named_parameters()
    local names, params, seen = {}, {}, {}
    walk(self, "", function(prefix, m)
      for _, key in ipairs(m._parameters) do
        local p = rawget(m, key)
        if p ~= nil and not seen[p] then
          seen[p] = true
          names[#names + 1] = prefix .. tostring(key)
          params[#params + 1] = p
        end
      end
    end, {})
    local i = 0
    return function()
      i = i + 1
      if names[i] then return names[i], params[i] end
    end
  end

  --- m:parameters(): the list of learnable tensors, in a stable order.
  function Module:parameters()
    local list = {}
    for _, p in self:named_parameters() do list[#list + 1] = p end
    return list
  end

  --- m:modules(): this module and every descendant, depth first.
  function Module:modules()
    local list = {}
    walk(self, "", function(_, m) list[#list + 1] = m end, {})
    return list
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

  --- m:state_dict(): name -> tensor (sharing storage) for parameters and buffers.
  function Module:state_dict()
    local sd = {}
    walk(self, "", function(prefix, m)
      for _, key in ipairs(m._parameters) do
        local p = rawget(m, key)
        if p ~= nil then sd[prefix .. tostring(key)] = p:detach() end
      end
      for _, key in ipairs(m._buffers) do
        local b = rawget(m, key)
        if b ~= nil then sd[prefix .. tostring(key)] = b end
      end
    end, {})
    return sd
  end

  --- m:load_state_dict(sd [, strict = true]): copies values in; refuses
  -- missing, unexpected or mis-shaped entries (strict = false skips the
  -- missing and unexpected ones, never a mis-shaped one).
  function Module:load_state_dict(sd, strict)
    if type(sd) ~= "table" then raise("load_state_dict: expected a table of tensors, got " .. type(sd)) end
    if strict == nil then strict = true end
    local own = self:state_dict()
    local missing, unexpected, mismatched = {}, {}, {}
    for name, t in pairs(own) do
      local v = sd[name]
      if v == nil then
        missing[#missing + 1] = name
      elseif not nn.is_tensor(v) then
        mismatched[#mismatched + 1] = name .. " (not a tensor)"
      elseif table.concat(v:size(), "x") ~= table.concat(t:size(), "x") then
        mismatched[#mismatched + 1] = string.format("%s (checkpoint %s, model %s)", name,
          table.concat(v:size(), "x"), table.concat(t:size(), "x"))
      end
    end
    for name in pairs(sd) do
      if own[name] == nil then unexpected[#unexpected + 1] = tostring(name) end
    end
    table.sort(missing); table.sort(unexpected); table.sort(mismatched)
    local problems = {}
    if #mismatched > 0 then problems[#problems + 1] = "shape mismatch: " .. table.concat(mismatched, ", ") end
    if strict and #missing > 0 then problems[#problems + 1] = "missing: " .. table.concat(missing, ", ") end
    if strict and #unexpected > 0 then problems[#problems + 1] = "unexpected: " .. table.concat(unexpected, ", ") end
    if #problems > 0 then raise("load_state_dict: " .. table.concat(problems, "; ")) end
    nn.no_grad(function()
      for name, t in pairs(own) do
        if sd[name] ~= nil then t:copy_(sd[name]) end
      end
    end)
    return {missing_keys = missing, unexpected_keys = unexpected}
  end

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

  local native_forward = nn._C.sequential_forward

  function Sequential:forward(x)
    -- Built-in layers run back to back in C; anything else, one by one here.
    local y = native_forward(self, x)
    if y then return y end
    for i = 1, #self._modules do
      local m = self[i]
      x = m:forward(x)
    end
    return x
  end
end

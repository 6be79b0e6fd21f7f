-- The argument-count checks of nn's public Lua functions, and the helpers
-- that check arguments (nn._options, nn._check_count). Loaded with the core
-- or a family (lua/nn/init.lua), or at the first of these names: a bare
-- require "nn" makes no wrapper and needs none of this.
return function(nn)
  local C = nn._C
  -- Arguments a function does not take are an error, never dropped in
  -- silence: a Torch7 habit such as nn.Linear(2, 1, "nobias") or a
  -- PyTorch-style extra argument must not quietly compute something else.
  -- Every public Lua function of nn is wrapped, once, in a check of its
  -- argument count made from its own parameter list; a function with `...`
  -- checks its arguments itself. (The C functions call nnl_check_nargs.)
  local wrapped_from = {} -- wrapper -> the function it checks (both live as long as nn)
  nn._unwrapped = wrapped_from

  --- nn._too_many_arguments(op, max, names, got [, or_more]): the message of a
  -- call given more arguments than the max it takes, worded as the C
  -- functions word it.
  function nn._too_many_arguments(op, max, names, got, or_more)
    local count = got .. (or_more and " or more" or "")
    if max == 0 then return string.format("%s: takes no arguments, got %s", op, count) end
    return string.format("%s: takes at most %d argument%s (%s), got %s", op, max, max == 1 and "" or "s",
      names, count)
  end

  --- nn._check_count(op, max, names, ...): raises that message when ... (a
  -- function's arguments) holds more than max of them, trailing nils aside:
  -- for the functions that take `...` and count for themselves.
  function nn._check_count(op, max, names, ...)
    local n = select("#", ...)
    if n <= max then return end
    while n > max and select(n, ...) == nil do n = n - 1 end
    if n > max then nn._raise(nn._too_many_arguments(op, max, names, n)) end
  end

  --- nn._options(op, opts, known): opts (a new {} for nil) once checked to be a
  -- table whose keys are all in the list known: a misspelt option is an
  -- error, not silently ignored.
  function nn._options(op, opts, known)
    if opts == nil then return {} end
    if type(opts) ~= "table" or nn.is_tensor(opts) then
      nn._raise(string.format("%s: options must be a table like {%s = ...}, got %s", op, known[1], type(opts)))
    end
    for key in pairs(opts) do
      local ok = false
      for _, name in ipairs(known) do ok = ok or key == name end
      if not ok then
        nn._raise(string.format("%s: unknown option '%s' (it takes %s)", op, tostring(key), table.concat(known, ", ")))
      end
    end
    return opts
  end

  -- The name a message gives a function: the class's for its constructor and
  -- forward (what a user calls as Linear(...) and model(x)), Class:method for
  -- the other methods, the key alone for a namespace's function.
  local function op_name(key, receiver, self, owner)
    if receiver ~= "class" then return key end
    local class = type(self) == "table" and type(self.__name) == "string" and self.__name or owner
    if key == "init" or key == "new" or key == "forward" or key == "__call" then return class end
    return class .. ":" .. key
  end

  -- refuse(fn, site, or_more, ...): raises the error for a call of a wrapped
  -- fn that failed the check, given its arguments (or_more: some may have
  -- been dropped past the last one). site says where fn was found,
  -- "key\0receiver\0owner": one string, so that a wrapper holds one value
  -- for it (nn wraps some two hundred functions as it loads).
  local arity = C.arity
  local function refuse(fn, site, or_more, ...)
    local key, receiver, owner = site:match("^([^\0]*)\0([^\0]*)\0(.*)$")
    if receiver == "" then receiver = nil end
    local max = arity(fn)
    local skip = receiver and 1 or 0
    local method = receiver == "class"
    if method and (...) == nil then -- m.train() for m:train()
      nn._raise(string.format("%s: call it on its object with a colon, as obj:%s(...)",
        op_name(key, receiver, nil, owner), key))
    end
    local n = select("#", ...)
    while n > max and select(n, ...) == nil do n = n - 1 end
    local names = {}
    for i = 1 + skip, max do names[#names + 1] = debug.getlocal(fn, i) end
    nn._raise(nn._too_many_arguments(op_name(key, receiver, (...), owner), max - skip,
      table.concat(names, ", "), n - skip, or_more))
  end

  -- The check itself, in the form that costs least: the function's own
  -- parameters plus three more, e1..e3, where an argument it does not take
  -- lands; no `...`, no select(), no type(). (An epoch of the XOR loop calls
  -- four wrapped functions: with `...` and select() the checks cost 7% of its
  -- instructions, this way 3%; the functions a training step calls every
  -- time are now C, which checks for itself.) Past e3 a count is reported as
  -- "or more", and an argument after three nils goes unseen. A method's
  -- object must not be nil (m.train() for m:train()). fixed_arity[n](fn,
  -- method, site) makes the wrapper of a function of n parameters;
  -- any_arity serves longer ones.
  local function any_arity(fn, method, site, max)
    return function(...)
      if select("#", ...) > max or (method and (...) == nil) then refuse(fn, site, false, ...) end
      return fn(...)
    end
  end
  local fixed_arity = {
    [0] = function(fn, _, site)
      return function(e1, e2, e3)
        if e1 ~= nil or e2 ~= nil or e3 ~= nil then refuse(fn, site, e3 ~= nil, e1, e2, e3) end
        return fn()
      end
    end,
    [1] = function(fn, method, site)
      return function(a, e1, e2, e3)
        if e1 ~= nil or e2 ~= nil or e3 ~= nil or (method and a == nil) then
          refuse(fn, site, e3 ~= nil, a, e1, e2, e3)
        end
        return fn(a)
      end
    end,
    [2] = function(fn, method, site)
      return function(a, b, e1, e2, e3)
        if e1 ~= nil or e2 ~= nil or e3 ~= nil or (method and a == nil) then
          refuse(fn, site, e3 ~= nil, a, b, e1, e2, e3)
        end
        return fn(a, b)
      end
    end,
    [3] = function(fn, method, site)
      return function(a, b, c, e1, e2, e3)
        if e1 ~= nil or e2 ~= nil or e3 ~= nil or (method and a == nil) then
          refuse(fn, site, e3 ~= nil, a, b, c, e1, e2, e3)
        end
        return fn(a, b, c)
      end
    end,
    [4] = function(fn, method, site)
      return function(a, b, c, d, e1, e2, e3)
        if e1 ~= nil or e2 ~= nil or e3 ~= nil or (method and a == nil) then
          refuse(fn, site, e3 ~= nil, a, b, c, d, e1, e2, e3)
        end
        return fn(a, b, c, d)
      end
    end,
  }

  -- fn wrapped in the count check; receiver ("class", "tensor" or nil) says
  -- whether the first parameter is the object the method is called on, owner
  -- names the table fn was found in. A function that takes `...` (and every
  -- C function) checks its own arguments and stays as it is.
  local wrappers = {class = {}, tensor = {}, plain = {}}
  local function count_checked(fn, key, receiver, owner)
    if wrapped_from[fn] then return fn end
    local memo = wrappers[receiver or "plain"]
    local wrapper = memo[fn]
    if wrapper then return wrapper end
    local max, vararg = arity(fn)
    if vararg then
      wrapper = fn
    else
      local site = key .. "\0" .. (receiver or "") .. "\0" .. owner
      wrapper = (fixed_arity[max] or any_arity)(fn, receiver == "class", site, max)
      wrapped_from[wrapper] = fn
    end
    memo[fn] = wrapper
    return wrapper
  end

  -- Wraps the public functions of t and of the tables below it (namespaces,
  -- classes), and the __call of their metatables. The walk is C's
  -- (check_counts_walk in lua/nn_module.c: in Lua it cost 3M instructions at
  -- every load); it calls back here for each function that needs a wrapper.
  local function wrap_in_place(t, key, fn, receiver, owner)
    rawset(t, key, count_checked(fn, key, receiver, owner))
  end
  local check_counts_walk = C.check_counts_walk
  local function check_counts(t, seen, name)
    check_counts_walk(t, seen, wrapped_from, nn.Tensor, wrap_in_place, name)
  end

  --- nn._check_counts(t [, seen]): adds the count check to the public functions of t
  -- (a class or namespace a module keeps to itself, as nn.data's classes),
  -- leaving out the tables seen holds (nn._C when not given).
  function nn._check_counts(t, seen)
    check_counts(t, seen or {[nn._C] = true}, rawget(t, "__name") or "nn")
  end
end

-- Tables that keep the order of their keys, as Python's dicts do: a
-- state_dict (PyTorch's is an OrderedDict, whose order is that of the
-- model's modules and parameters) and every dict nn.load reads from a .pt
-- file. pairs() visits the keys in that order, then any key added since
-- (sorted), so that a state_dict prints, iterates and saves in PyTorch's
-- order; indexing and assignment are those of a plain table.
--
-- What else a file said of a table is kept beside it (never in it, where
-- it would look like an entry): whether a dict was an OrderedDict or a
-- dict, a list or a tuple, and an OrderedDict's attributes (a state_dict's
-- _metadata), so that a table loaded from a .pt file saves as it was.
return function(nn)
  -- table -> {kind = "OrderedDict" | "dict" | "list" | "tuple", keys = {...}, state = {...}}
  local info = setmetatable({}, {__mode = "k"})

  -- Booleans, then numbers, then strings (each in its own order): a total
  -- order over the keys a file can hold.
  local function key_before(a, b)
    local ta, tb = type(a), type(b)
    if ta ~= tb then return ta < tb end
    if ta == "boolean" then return (not a) and b end
    return a < b
  end

  -- The keys of t: those of its recorded order still present, then the rest, sorted.
  local function ordered_keys(t)
    local known = info[t] and info[t].keys or {}
    local keys, listed = {}, {}
    for _, k in ipairs(known) do
      if not listed[k] and rawget(t, k) ~= nil then
        keys[#keys + 1] = k
        listed[k] = true
      end
    end
    local extra = {}
    for k in next, t do
      if not listed[k] then extra[#extra + 1] = k end
    end
    table.sort(extra, key_before)
    for _, k in ipairs(extra) do keys[#keys + 1] = k end
    return keys
  end

  local metatable = {
    __pairs = function(t)
      local keys, i = ordered_keys(t), 0
      return function()
        i = i + 1
        local k = keys[i]
        if k ~= nil then return k, rawget(t, k) end
      end, t, nil
    end,
  }

  nn._ordered = {
    info = info,
    metatable = metatable,
    keys = ordered_keys,
    key_before = key_before,
    -- A new empty ordered table of that kind ("OrderedDict" or "dict").
    new = function(kind, state)
      local t = setmetatable({}, metatable)
      info[t] = {kind = kind, keys = {}, state = state}
      return t
    end,
    -- t[k] = v, k going last in t's order when it is new.
    set = function(t, k, v)
      if rawget(t, k) == nil then
        local keys = info[t].keys
        keys[#keys + 1] = k
      end
      rawset(t, k, v)
    end,
  }
end

-- PyTorch's .pt files (torch.save's zip format), for nn.load and nn.save.
--
-- Reading is the engine's (engine/src/torch_file.c: a restricted pickle
-- reader that runs nothing from the file). Writing makes here the pickle
-- torch.save would write for the same value (protocol 2, memo and all,
-- so that a state_dict gives byte for byte the data.pkl PyTorch 1.13
-- gives), and the engine writes it with the tensors' storages into the
-- zip, atomically.
return function(nn)
  local raise, C = nn._raise, nn._C
  local ordered = nn._ordered
  local info = ordered.info

  -- What the pickle's values may nest to: what the reader accepts.
  local MAX_DEPTH = 200

  local storage_types = {float32 = "FloatStorage", float64 = "DoubleStorage", int64 = "LongStorage",
                         bool = "BoolStorage", float16 = "HalfStorage", bfloat16 = "BFloat16Storage",
                         int32 = "IntStorage", int16 = "ShortStorage", int8 = "CharStorage",
                         uint8 = "ByteStorage"}

  -- Whether t is written as a list (or a tuple), and its length: keys 1..n
  -- and nothing else; holes (a None read from a file) are allowed in a
  -- table that was read as a list or tuple.
  local function sequence_length(t)
    local n, count = 0, 0
    for k in next, t do
      if math.type(k) ~= "integer" or k < 1 then return false end
      count = count + 1
      if k > n then n = k end
    end
    local read_as_list = info[t] and (info[t].kind == "list" or info[t].kind == "tuple")
    return read_as_list or (count > 0 and count == n), n
  end

  -- Python interns strings that look like identifiers (a dict's "lr", a
  -- state_dict's "_metadata", "version"), so its pickler writes them once
  -- and refers back to them; other strings are new objects each time.
  local function interned(s) return s:match("^[%a_][%w_]*$") ~= nil end

  -- The storages of the tensors in v: for each, the elements its tensors
  -- reach, so that a storage is written once, from its first element any
  -- of them uses to its last.
  local function storage_extents(root)
    local extents, seen = {}, {}
    local function visit(v, depth)
      if depth > MAX_DEPTH + 1 then return end -- save refuses it, with the path
      if nn.is_tensor(v) then
        if seen[v] or v:numel() == 0 then return end
        seen[v] = true
        local id, offset = C.tensor_storage(v)
        local last = offset
        local sizes, strides = v:size(), v:stride()
        for d = 1, #sizes do last = last + (sizes[d] - 1) * strides[d] end
        local e = extents[id]
        if not e then extents[id] = {first = offset, last = last}
        else
          if offset < e.first then e.first = offset end
          if last > e.last then e.last = last end
        end
      elseif nn.is_module(v) then
        visit(v:state_dict(), depth)
      elseif type(v) == "table" and not seen[v] then
        seen[v] = true
        for k, x in next, v do visit(k, depth + 1); visit(x, depth + 1) end
        if info[v] and info[v].state then visit(info[v].state, depth + 1) end
      end
    end
    visit(root, 0)
    return extents
  end

  -- The pickle of value, and the storages it refers to ({tensor, first, count}).
  local function pickle(value)
    local out, n = {"\128\2"}, 1 -- PROTO 2
    local function emit(s) n = n + 1; out[n] = s end
    local memo_count = 0
    local memo, globals, strings, storage_keys = {}, {}, {}, {}
    local function put()
      local i = memo_count
      memo_count = i + 1
      if i < 256 then emit("q" .. string.char(i)) else emit("r" .. string.pack("<I4", i)) end
      return i
    end
    local function get(i)
      if i < 256 then emit("h" .. string.char(i)) else emit("j" .. string.pack("<I4", i)) end
    end
    local function global(module, name)
      local key = module .. "\n" .. name
      if globals[key] then return get(globals[key]) end
      emit("c" .. key .. "\n")
      globals[key] = put()
    end
    -- fresh: a string Python makes anew (never one it interned)
    local function save_string(s, fresh)
      local shared = not fresh and interned(s)
      if shared and strings[s] then return get(strings[s]) end
      emit("X" .. string.pack("<s4", s)) -- BINUNICODE
      local i = put()
      if shared then strings[s] = i end
    end
    -- Python's save_long: the smallest opcode that holds x
    local function save_int(x)
      if x >= 0 and x <= 0xff then emit("K" .. string.char(x))
      elseif x >= 0 and x <= 0xffff then emit("M" .. string.pack("<I2", x))
      elseif x >= -0x80000000 and x <= 0x7fffffff then emit("J" .. string.pack("<i4", x))
      else
        -- LONG1: the fewest bytes of two's complement that keep the sign
        local bytes = string.pack("<i8", x)
        local len = 8
        while len > 1 do
          local top, below = bytes:byte(len), bytes:byte(len - 1)
          if (top == 0 and below < 0x80) or (top == 0xff and below >= 0x80) then len = len - 1 else break end
        end
        emit("\138" .. string.char(len) .. bytes:sub(1, len))
      end
    end
    local function save_int_tuple(list)
      if #list == 0 then return emit(")") end
      if #list > 3 then emit("(") end
      for _, x in ipairs(list) do save_int(x) end
      emit(#list > 3 and "t" or string.char(0x84 + #list)) -- TUPLE, or TUPLE1..3
      put()
    end

    local extents = storage_extents(value)
    local storages = {}
    local save

    local function save_tensor(t, path)
      if memo[t] then return get(memo[t]) end
      local dtype = t.dtype
      if not storage_types[dtype] then raise("save: a tensor of dtype " .. dtype .. " at '" .. path .. "'") end
      local id, offset = C.tensor_storage(t)
      global("torch._utils", "_rebuild_tensor_v2")
      emit("(")
      -- the persistent id: ('storage', torch.<Type>Storage, key, location, numel)
      emit("(")
      save_string("storage")
      global("torch", storage_types[dtype])
      -- an empty tensor gets a storage of its own, of no elements
      local empty = t:numel() == 0
      local e = empty and {first = offset, last = offset - 1} or extents[id]
      local key = not empty and storage_keys[id]
      if key then
        get(key.memo)
      else
        storages[#storages + 1] = {t, empty and 0 or e.first, e.last - e.first + 1}
        emit("X" .. string.pack("<s4", string.format("%d", #storages - 1)))
        key = {memo = put()}
        if not empty then storage_keys[id] = key end
      end
      save_string("cpu") -- a file loads on any machine: its data comes from the host
      save_int(e.last - e.first + 1)
      emit("t")
      put()
      emit("Q") -- BINPERSID
      save_int(offset - e.first)
      save_int_tuple(t:size())
      save_int_tuple(t:stride())
      emit(t.requires_grad and "\136" or "\137")
      global("collections", "OrderedDict") -- backward_hooks: none
      emit(")R")
      put()
      emit("t")
      put()
      emit("R")
      memo[t] = put()
    end

    -- Python's _batch_setitems / _batch_appends: runs of up to 1000
    local function save_items(list, each, one, many)
      for first = 1, #list, 1000 do
        local last = math.min(first + 999, #list)
        if last > first then emit("(") end
        for i = first, last do each(list[i]) end
        emit(last > first and many or one)
      end
    end

    local function save_table(t, path, depth, active)
      -- (before the memo, which holds a table from its first byte on)
      if active[t] then raise("save: the value at '" .. path .. "' contains itself") end
      if memo[t] then return get(memo[t]) end
      active[t] = true
      local function child(k) return path == "" and tostring(k) or path .. "." .. tostring(k) end
      local kind = info[t] and info[t].kind
      local list, count = sequence_length(t)
      if list then
        local tuple = kind == "tuple"
        if tuple then
          if count == 0 then emit(")") else
            if count > 3 then emit("(") end
            for i = 1, count do save(t[i], child(i), depth + 1, active) end
            emit(count > 3 and "t" or string.char(0x84 + count))
            memo[t] = put()
          end
        else
          emit("]")
          memo[t] = put()
          local indices = {}
          for i = 1, count do indices[i] = i end
          save_items(indices, function(i) save(t[i], child(i), depth + 1, active) end, "a", "e")
        end
      else
        local keys = ordered.keys(t)
        for _, k in ipairs(keys) do
          local tk = type(k)
          if tk ~= "string" and tk ~= "number" and tk ~= "boolean" then
            raise("save: a table at '" .. path .. "' has a " .. tk .. " key")
          end
        end
        local state = info[t] and info[t].state
        if kind == "OrderedDict" then
          global("collections", "OrderedDict")
          emit(")R")
        else
          emit("}")
        end
        memo[t] = put()
        save_items(keys, function(k)
          save(k, child(k), depth + 1, active)
          save(t[k], child(k), depth + 1, active)
        end, "s", "u")
        if kind == "OrderedDict" and type(state) == "table" and next(state) ~= nil then
          save(state, path, depth + 1, active)
          emit("b") -- BUILD: the OrderedDict's attributes
        end
      end
      active[t] = nil
    end

    function save(v, path, depth, active)
      if depth >= MAX_DEPTH then
        raise(string.format("save: the value at '%s' is nested deeper than the %d levels nn.load reads",
          path, MAX_DEPTH))
      end
      local tv = type(v)
      if v == nil then emit("N")
      elseif tv == "boolean" then emit(v and "\136" or "\137")
      elseif math.type(v) == "integer" then save_int(v)
      elseif tv == "number" then emit("G" .. string.pack(">d", v)) -- BINFLOAT
      elseif tv == "string" then
        if utf8.len(v) then return save_string(v) end
        -- bytes, as protocol 2 writes them: _codecs.encode(latin-1 text, 'latin1')
        if v == "" then
          global("__builtin__", "bytes")
          emit(")R")
          return put()
        end
        global("_codecs", "encode")
        local text = v:gsub("[\128-\255]", function(c) return utf8.char(c:byte()) end)
        save_string(text, true)
        save_string("latin1")
        emit("\134")
        put()
        emit("R")
        put()
      elseif nn.is_tensor(v) then save_tensor(v, path)
      elseif nn.is_module(v) then save(v:state_dict(), path, depth, active)
      elseif tv == "table" then save_table(v, path, depth, active)
      else raise(string.format("save: cannot store a %s (at '%s')", tv, path)) end
    end

    save(value, "", 0, {})
    emit(".")
    return table.concat(out), storages
  end

  nn._torch = {
    pickle = pickle,
    load = function(path) return C.pt_read(path, info, ordered.metatable) end,
    save = function(path, value)
      local bytes, storages = pickle(value)
      C.pt_write(path, bytes, storages)
    end,
  }
end

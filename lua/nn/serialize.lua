-- nn.save / nn.load: tensors, models and training checkpoints in the
-- safetensors format (github.com/huggingface/safetensors), which PyTorch's
-- ecosystem reads and writes:
--
--   8 bytes   N, the header's length, unsigned little-endian
--   N bytes   a JSON object {name: {"dtype": "F32", "shape": [2, 3],
--             "data_offsets": [begin, end]}, ..., "__metadata__": {string: string}}
--   the rest  every tensor's bytes, row-major, little-endian; offsets are
--             relative to the end of the header
--
-- Loading never runs code: the header is parsed by the strict JSON reader
-- below (data only), and the C side (engine/src/io.c) checks every entry's
-- dtype, shape and offsets against the file before it copies a byte.
-- Saving is atomic (a temporary file beside the target, fsync, rename).
--
-- PyTorch's own .pt files (torch.save's zip format) are handed to
-- lua/nn/torch_file.lua and engine/src/torch_file.c.
return function(nn)
  local raise = nn._raise
  local C = nn._C

  ---------------------------------------------------------------------------
  -- JSON, the little that safetensors headers and checkpoints need.

  local escapes = {['"'] = '\\"', ["\\"] = "\\\\", ["\b"] = "\\b", ["\f"] = "\\f",
                   ["\n"] = "\\n", ["\r"] = "\\r", ["\t"] = "\\t"}
  local function json_string(s)
    return '"' .. s:gsub('[%c"\\]', function(c)
      return escapes[c] or string.format("\\u%04x", c:byte())
    end) .. '"'
  end

  -- How deep JSON may nest, for nn.load's reader and nn.save's writer
  -- alike: a checkpoint nn.save writes is one nn.load reads.
  local MAX_DEPTH = 200

  -- Decodes text as one JSON value; raises "what: ..." on anything else.
  local function json_decode(text, what)
    local pos = 1
    local function fail(msg)
      raise(string.format("%s: %s at byte %d", what, msg, pos))
    end
    local function skip()
      pos = text:find("[^ \t\r\n]", pos) or #text + 1
    end
    local value
    local function string_value()
      local parts = {}
      pos = pos + 1 -- the opening quote
      while true do
        local stop = text:find('["\\\0-\31]', pos)
        if not stop then fail("unterminated string") end
        parts[#parts + 1] = text:sub(pos, stop - 1)
        local c = text:sub(stop, stop)
        if c == '"' then pos = stop + 1; break end
        if c ~= "\\" then pos = stop; fail("control character in a string") end
        local e = text:sub(stop + 1, stop + 1)
        local simple = ({['"'] = '"', ["\\"] = "\\", ["/"] = "/", b = "\b", f = "\f", n = "\n", r = "\r", t = "\t"})[e]
        if simple then
          parts[#parts + 1] = simple
          pos = stop + 2
        elseif e == "u" then
          local hex = text:match("^%x%x%x%x", stop + 2)
          if not hex then pos = stop; fail("bad \\u escape") end
          local code = tonumber(hex, 16)
          pos = stop + 6
          if code >= 0xD800 and code <= 0xDBFF then -- a surrogate pair
            local low = text:match("^\\u(%x%x%x%x)", pos)
            local lcode = low and tonumber(low, 16)
            if not lcode or lcode < 0xDC00 or lcode > 0xDFFF then fail("unpaired surrogate") end
            code = 0x10000 + (code - 0xD800) * 0x400 + (lcode - 0xDC00)
            pos = pos + 6
          elseif code >= 0xDC00 and code <= 0xDFFF then
            fail("unpaired surrogate")
          end
          parts[#parts + 1] = utf8.char(code)
        else
          pos = stop; fail("bad escape")
        end
      end
      return table.concat(parts)
    end
    -- -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][-+]?[0-9]+)?, JSON's grammar
    local function number_value()
      local start = pos
      if text:sub(pos, pos) == "-" then pos = pos + 1 end
      local int = text:match("^%d+", pos)
      if not int or (#int > 1 and int:sub(1, 1) == "0") then fail("bad number") end
      pos = pos + #int
      local frac = text:match("^%.%d+", pos)
      if text:sub(pos, pos) == "." and not frac then fail("bad number") end
      pos = pos + (frac and #frac or 0)
      local exp = text:match("^[eE][-+]?%d+", pos)
      if text:sub(pos, pos):match("[eE]") and not exp then fail("bad number") end
      pos = pos + (exp and #exp or 0)
      local num = tonumber(text:sub(start, pos - 1))
      if not frac and not exp then return num end -- an integer, or a float when too large for one
      return num + 0.0
    end
    function value(depth)
      if depth > MAX_DEPTH then fail("nesting deeper than " .. MAX_DEPTH) end
      skip()
      local c = text:sub(pos, pos)
      if c == "{" then
        pos = pos + 1
        local obj, seen = {}, {}
        skip()
        if text:sub(pos, pos) == "}" then pos = pos + 1; return obj end
        while true do
          skip()
          if text:sub(pos, pos) ~= '"' then fail("expected a string key") end
          local key = string_value()
          if seen[key] then fail("duplicate key '" .. key .. "'") end
          seen[key] = true
          skip()
          if text:sub(pos, pos) ~= ":" then fail("expected ':'") end
          pos = pos + 1
          obj[key] = value(depth + 1)
          skip()
          c = text:sub(pos, pos)
          pos = pos + 1
          if c == "}" then return obj end
          if c ~= "," then pos = pos - 1; fail("expected ',' or '}'") end
        end
      elseif c == "[" then
        pos = pos + 1
        local arr, n = {}, 0
        skip()
        if text:sub(pos, pos) == "]" then pos = pos + 1; return arr end
        while true do
          -- a null leaves a hole where it stood, rather than closing up
          n = n + 1
          arr[n] = value(depth + 1)
          skip()
          c = text:sub(pos, pos)
          pos = pos + 1
          if c == "]" then return arr end
          if c ~= "," then pos = pos - 1; fail("expected ',' or ']'") end
        end
      elseif c == '"' then
        return string_value()
      elseif c == "-" or c:match("%d") then
        return number_value()
      elseif text:sub(pos, pos + 3) == "true" then
        pos = pos + 4; return true
      elseif text:sub(pos, pos + 4) == "false" then
        pos = pos + 5; return false
      elseif text:sub(pos, pos + 3) == "null" then
        -- null has no Lua value that a table can hold: a marker
        pos = pos + 4; return nil
      end
      fail(c == "" and "unexpected end" or "unexpected character '" .. c .. "'")
    end
    local result = value(0)
    skip()
    if pos <= #text then fail("trailing characters") end
    return result
  end

  ---------------------------------------------------------------------------
  -- Checkpoint structure: any Lua value made of tables, tensors, numbers,
  -- strings and booleans becomes JSON; tensors become {"$tensor": name},
  -- their bytes going into the safetensors data under that name.

  local function float_text(x)
    if x ~= x then return '{"$number":"nan"}' end
    if x == math.huge then return '{"$number":"inf"}' end
    if x == -math.huge then return '{"$number":"-inf"}' end
    local s = string.format("%.17g", x)
    if not s:find("[%.eEn]") then s = s .. ".0" end -- stays a float when read back
    return s
  end

  local function is_sequence(t)
    local n = #t
    if n == 0 then return false end
    local count = 0
    for _ in pairs(t) do count = count + 1 end
    return count == n
  end

  -- depth is the JSON depth of v's text (the root's is 0), which must
  -- stay within what json_decode accepts: checked while encoding, so that
  -- a value too deep is refused before anything is written.
  local function encode_structure(root, add_tensor)
    local active = {}
    local function encode(v, path, depth)
      -- a tensor, bytes and nan/inf are written as an object holding a string
      local boxed = nn.is_tensor(v) or (type(v) == "string" and not utf8.len(v))
                    or (math.type(v) == "float" and (v ~= v or v == math.huge or v == -math.huge))
      if (boxed and depth + 1 or depth) > MAX_DEPTH then
        raise(string.format("save: the value at '%s' is nested deeper than the %d levels nn.load reads",
          path, MAX_DEPTH))
      end
      local tv = type(v)
      if nn.is_tensor(v) then
        return '{"$tensor":' .. json_string(add_tensor(v, path)) .. "}"
      elseif nn.is_module and nn.is_module(v) then
        return encode(v:state_dict(), path, depth)
      elseif tv == "number" then
        if math.type(v) == "integer" then return string.format("%d", v) end
        return float_text(v)
      elseif tv == "boolean" then
        return v and "true" or "false"
      elseif tv == "string" then
        if utf8.len(v) then return json_string(v) end
        -- bytes (an RNG state): hex, so that the JSON stays text
        return '{"$bytes":"' .. v:gsub(".", function(c) return string.format("%02x", c:byte()) end) .. '"}'
      elseif tv == "table" then
        if active[v] then raise("save: the value at '" .. path .. "' contains itself") end
        active[v] = true
        local out
        local function child(key) return path == "" and tostring(key) or path .. "." .. tostring(key) end
        if is_sequence(v) then
          local items = {}
          for i = 1, #v do items[i] = encode(v[i], child(i), depth + 1) end
          out = "[" .. table.concat(items, ",") .. "]"
        else
          local plain, keys = true, {}
          for k in pairs(v) do
            if type(k) ~= "string" or k:sub(1, 1) == "$" then plain = false end
            keys[#keys + 1] = k
          end
          table.sort(keys, function(a, b)
            if type(a) == type(b) and (type(a) == "string" or type(a) == "number") then return a < b end
            return type(a) < type(b)
          end)
          local items = {}
          for _, k in ipairs(keys) do
            if plain then
              items[#items + 1] = json_string(k) .. ":" .. encode(v[k], child(k), depth + 1)
            else
              local tk = type(k)
              if tk ~= "string" and tk ~= "number" and tk ~= "boolean" then
                raise("save: a table at '" .. path .. "' has a " .. tk .. " key")
              end
              -- {"$pairs": [[key, value], ...]}: the pair's items are 3 deeper
              items[#items + 1] = "[" .. encode(k, child(k), depth + 3) .. "," .. encode(v[k], child(k), depth + 3) .. "]"
            end
          end
          if plain then out = "{" .. table.concat(items, ",") .. "}"
          else out = '{"$pairs":[' .. table.concat(items, ",") .. "]}" end
        end
        active[v] = nil
        return out
      end
      raise(string.format("save: cannot store a %s (at '%s')", tv, path))
    end
    return encode(root, "", 0)
  end

  local function decode_structure(v, tensors, path)
    if type(v) ~= "table" then return v end
    if v["$tensor"] ~= nil then
      local t = tensors[v["$tensor"]]
      if not t then raise("load: the checkpoint refers to a tensor '" .. tostring(v["$tensor"]) .. "' the file lacks") end
      return t
    elseif v["$bytes"] ~= nil then
      local hex = v["$bytes"]
      if type(hex) ~= "string" or #hex % 2 ~= 0 or hex:find("[^%x]") then raise("load: bad bytes in the checkpoint at '" .. path .. "'") end
      return (hex:gsub("%x%x", function(h) return string.char(tonumber(h, 16)) end))
    elseif v["$number"] ~= nil then
      local n = ({nan = 0 / 0, inf = math.huge, ["-inf"] = -math.huge})[v["$number"]]
      if not n then raise("load: bad number in the checkpoint at '" .. path .. "'") end
      return n
    elseif v["$pairs"] ~= nil then
      local out = {}
      for _, pair in ipairs(v["$pairs"]) do
        if type(pair) ~= "table" or pair[1] == nil then raise("load: bad table in the checkpoint at '" .. path .. "'") end
        local k = decode_structure(pair[1], tensors, path)
        out[k] = decode_structure(pair[2], tensors, path .. "." .. tostring(k))
      end
      return out
    end
    local out = {}
    for k, x in pairs(v) do out[k] = decode_structure(x, tensors, path .. "." .. tostring(k)) end
    return out
  end

  ---------------------------------------------------------------------------
  local STRUCTURE_KEY = "nnlua.structure"

  -- Whether v is a JSON array of non-negative integers: a string ("12"), a
  -- float (12.0, 1e1), a negative number, a null or an object in it is a
  -- malformed header, as for the reference reader.
  local function is_count_list(v)
    if type(v) ~= "table" then return false end
    local n = 0
    for _ in pairs(v) do n = n + 1 end
    for i = 1, n do
      if math.type(v[i]) ~= "integer" or v[i] < 0 then return false end
    end
    return true
  end

  -- A flat table of tensors under string keys (what state_dict gives).
  local function is_tensor_table(t)
    for k, v in pairs(t) do
      if type(k) ~= "string" or not nn.is_tensor(v) then return false end
    end
    return true
  end

  -- The metadata entry that says a file's state_dict keys are PyTorch's
  -- ("0.weight" for a Sequential's first child). A safetensors file nnlua
  -- wrote before it did has none: its "1.weight" means model[1].weight.
  local KEYS_KEY, KEYS_PYTORCH = "nnlua.keys", "pytorch"

  -- Tables nn.load read from a file that lacks that entry: load_state_dict
  -- may renumber their keys (lua/nn/module.lua).
  nn._old_key_tables = setmetatable({}, {__mode = "k"})

  local torch_file -- lua/nn/torch_file.lua, loaded at the first .pt file
  local function torch()
    if not torch_file then
      require "nn.torch_file" (nn)
      torch_file = nn._torch
    end
    return torch_file
  end

  --- nn.save(path, value [, {format =, metadata =}]): writes value to path,
  -- atomically (the file at path is the old one or the whole new one,
  -- never a part: the new one is written beside it and renamed over it),
  -- in one of two formats:
  --  * "pt": PyTorch's own (torch.save's zip format, pickle protocol 2),
  --    chosen by a path ending in .pt or .pth, or by {format = "pt"}.
  --    torch.load(path) reads it in PyTorch, and so does
  --    torch.load(path, weights_only=True) when the value holds no floats
  --    or bytes (PyTorch 1.13's weights_only reader lacks their opcodes;
  --    later ones read them): a module's state_dict (an OrderedDict, keys
  --    and _metadata as PyTorch's, so that the pickle is byte for byte the
  --    one PyTorch writes), a tensor, or any table of tensors, numbers,
  --    strings, booleans and tables (a table with keys 1..n is a list;
  --    one read from a .pt file keeps what it was: dict, OrderedDict,
  --    list or tuple). Tensors sharing storage share it in the file too;
  --    a GPU tensor is saved as a CPU one ("cpu" location), so the file
  --    loads anywhere. No metadata.
  --  * "safetensors" (any other path, or {format = "safetensors"}): the
  --    format of github.com/huggingface/safetensors, which PyTorch's
  --    ecosystem reads and writes; value is
  --     - a module: its state_dict() (model:load_state_dict(nn.load(path)) restores it);
  --     - a table {name = tensor, ...}: those tensors, under those names;
  --     - any other table of tensors, modules, numbers, strings (bytes too),
  --       booleans and tables, e.g. a training checkpoint
  --         nn.save(path, {model = model, optimizer = opt:state_dict(),
  --                        epoch = epoch, rng = nn.get_rng_state()})
  --       Its tensors go into the file under dotted names
  --       ("model.0.weight", "optimizer.state.1.1.exp_avg"), readable by any
  --       safetensors reader, and the rest of its structure into the
  --       metadata entry "nnlua.structure" as JSON, from which nn.load
  --       rebuilds the table (integers stay integers, floats round-trip exactly).
  --    metadata: optional {string = string}, stored as the header's
  --    __metadata__ with nnlua's own entry "nnlua.keys" (which says that
  --    state_dict keys are PyTorch's). The old form nn.save(path, value,
  --    metadata) still works: a third argument with keys other than
  --    format and metadata is the metadata itself (so metadata that is
  --    just {format = "pt"} must be written {metadata = {format = "pt"}}).
  --    dtypes: float32 (F32), float64 (F64), int64 (I64), bool (BOOL).
  -- A symbolic link at path is followed: the file it leads to is
  -- replaced and the link stays. A device, FIFO, socket or directory at
  -- path is an error, and is left as it was. The temporary file of a save
  -- killed outright (SIGKILL, the OOM killer) is removed by the next save
  -- or load of path, once its process is gone. A value nested deeper than
  -- nn.load reads (200 levels) or holding itself is an error before
  -- anything is written.
  --   nn.save("model.pt", model)                      -- torch.load("model.pt") in PyTorch
  --   nn.save("model.safetensors", model)
  --   nn.save("weights.bin", model, {format = "pt"})
  function nn.save(path, value, options)
    if type(path) ~= "string" then raise("save: expected a file name, got " .. type(path)) end
    local format, metadata
    if options ~= nil then
      if type(options) ~= "table" or nn.is_tensor(options) then
        raise("save: the third argument must be a table ({format =, metadata =}), got " .. type(options))
      end
      local is_options = next(options) ~= nil
      for k in pairs(options) do
        if k ~= "format" and k ~= "metadata" then is_options = false end
      end
      if is_options then format, metadata = options.format, options.metadata else metadata = options end
    end
    if format == nil then format = (path:match("%.pt$") or path:match("%.pth$")) and "pt" or "safetensors" end
    if format ~= "pt" and format ~= "safetensors" then
      raise("save: format must be \"pt\" or \"safetensors\", got " .. tostring(format))
    end
    if format == "pt" then
      if metadata ~= nil then raise("save: a .pt file has no metadata (a safetensors file has)") end
      if value == nil then raise("save: nothing to save (the value is nil)") end
      return torch().save(path, value)
    end
    if nn.is_module(value) then value = value:state_dict() end
    if type(value) ~= "table" or nn.is_tensor(value) then
      raise("save: expected a module or a table of tensors, got " .. (nn.is_tensor(value) and "a tensor (wrap it: {name = t}, or save a .pt file)" or type(value)))
    end
    local meta = {}
    if metadata ~= nil then
      if type(metadata) ~= "table" then raise("save: metadata must be a table of strings") end
      for k, v in pairs(metadata) do
        if type(k) ~= "string" or type(v) ~= "string" then raise("save: metadata keys and values must be strings") end
        if k == STRUCTURE_KEY or k == KEYS_KEY then raise("save: the metadata key '" .. k .. "' is nnlua's own") end
        meta[k] = v
      end
    end
    meta[KEYS_KEY] = KEYS_PYTORCH
    local names, by_name = {}, {}
    if is_tensor_table(value) then
      for name, t in pairs(value) do
        if name == "__metadata__" then raise("save: the name '__metadata__' is the format's own") end
        names[#names + 1] = name; by_name[name] = t
      end
    else
      local name_of = {}
      meta[STRUCTURE_KEY] = encode_structure(value, function(t, path)
        if name_of[t] then return name_of[t] end
        local name, k = path, 1
        while by_name[name] or name == "__metadata__" do k = k + 1; name = path .. "#" .. k end
        name_of[t], by_name[name] = name, t
        names[#names + 1] = name
        return name
      end)
    end
    table.sort(names)
    local entries, tensors, offset = {}, {}, 0
    if next(meta) then
      local keys, items = {}, {}
      for k in pairs(meta) do keys[#keys + 1] = k end
      table.sort(keys)
      for _, k in ipairs(keys) do items[#items + 1] = json_string(k) .. ":" .. json_string(meta[k]) end
      entries[1] = '"__metadata__":{' .. table.concat(items, ",") .. "}"
    end
    for i, name in ipairs(names) do
      local t = by_name[name]
      local dtype, esize = C.safetensors_dtype(t)
      local nbytes = t:numel() * esize
      local shape = {}
      for d = 1, t:dim() do shape[d] = string.format("%d", t:size(d)) end
      entries[#entries + 1] = string.format('%s:{"dtype":"%s","shape":[%s],"data_offsets":[%d,%d]}',
        json_string(name), dtype, table.concat(shape, ","), offset, offset + nbytes)
      offset = offset + nbytes
      tensors[i] = t
    end
    local header = "{" .. table.concat(entries, ",") .. "}"
    -- padded with spaces to a multiple of 8, as the reference writer does,
    -- so that the data starts aligned
    header = header .. string.rep(" ", (8 - #header % 8) % 8)
    C.safetensors_write(path, header, tensors)
  end

  -- Marks every table of v (a value nn.load made) as one whose state_dict
  -- keys may be nnlua's old ones.
  local function mark_old_keys(v, seen)
    if type(v) ~= "table" or seen[v] then return end
    seen[v] = true
    nn._old_key_tables[v] = true
    for _, x in pairs(v) do mark_old_keys(x, seen) end
  end

  --- nn.load(path [, {device = "cpu"}]) -> value [, metadata]: reads a file nn.save, PyTorch or
  -- any other writer wrote, in either format (told by its first bytes, not
  -- its name):
  --  * a torch.save file (PyTorch 1.6 and later: a zip holding a pickle
  --    and the tensors' storages): the value saved. A state_dict or any
  --    dict is a table whose pairs() keep the file's order; lists and
  --    tuples are sequences (a None leaves a hole: nil); tensors, numbers
  --    (Python's ints as integers), strings, bytes (as strings), booleans.
  --    Tensors load on the CPU in their own dtypes (float32, float64,
  --    float16, bfloat16, int64, int32, int16, int8, uint8, bool); views keep their strides and offsets, and tensors saved
  --    over one storage share it again. Nothing in the file is run: the
  --    pickle is read by a restricted reader in the engine that knows only
  --    what a tensor file needs (OrderedDict, torch's tensor and parameter
  --    rebuilders, storages, torch.Size, bytes) and refuses, naming it,
  --    any other function or class the file names (os.system, eval, ...),
  --    any opcode that builds an object, a cycle, nesting deeper than 200
  --    levels, a tensor reaching past its storage, a compressed, damaged
  --    or truncated zip, and a dtype nnlua lacks (complex, quantized).
  --    torch.save's legacy format (before PyTorch 1.6, or
  --    _use_new_zipfile_serialization=False) is refused with that advice:
  --    load it in PyTorch and save it again.
  --  * a safetensors file: a table {name = tensor} (F32, F64, F16, BF16,
  --    I64, I32, I16, I8, U8 and BOOL as those dtypes; U16 widens to int32
  --    and U32 to int64, which PyTorch 1.13 lacks), or, for a file nn.save wrote from a nested table, that
  --    table rebuilt; and the header's __metadata__ ({string = string};
  --    nnlua's own entries left out). Anything malformed (bad header
  --    length, a header that is not JSON, shapes or offsets that are not
  --    lists of JSON integers, offsets outside the file, overlapping
  --    tensors, an unknown dtype) is an error naming the file and the cause.
  -- A path that is not a regular file is an error. opts.device ("cpu", the
  -- default, or "cuda") places every tensor: a file saved from the GPU
  -- (nn.save copies tensors to the host) loads on a machine without one.
  --   model:load_state_dict(nn.load("resnet.pt"))   -- written by torch.save(model.state_dict())
  -- nn.load's options: the device its tensors go to.
  local function load_device(opts)
    if opts == nil then return "cpu" end
    if type(opts) ~= "table" or nn.is_tensor(opts) then
      raise("load: options must be a table {device = ...}, got " .. type(opts))
    end
    for k in pairs(opts) do
      if k ~= "device" then raise("load: unknown option '" .. tostring(k) .. "' (device)") end
    end
    local device = opts.device or "cpu"
    if device ~= "cpu" and device ~= "cuda" and device ~= "cuda:0" then
      raise("load: unknown device " .. tostring(device) .. " (cpu or cuda)")
    end
    return device
  end

  -- v with every tensor in it moved to device (a tensor met twice, once).
  local function place(v, device, path, moved)
    if nn.is_tensor(v) then
      if not moved[v] then
        local ok, t = pcall(v.to, v, device)
        if not ok then raise("load: " .. path .. ": " .. tostring(t):gsub("^.-to: ", "")) end
        moved[v] = t
      end
      return moved[v]
    end
    if type(v) ~= "table" or moved[v] then return v end
    moved[v] = v
    for k, x in pairs(v) do v[k] = place(x, device, path, moved) end
    return v
  end

  local load_file

  function nn.load(path, opts)
    if type(path) ~= "string" then raise("load: expected a file name, got " .. type(path)) end
    local device = load_device(opts)
    local value, metadata = load_file(path)
    if device ~= "cpu" then value = place(value, device, path, {}) end
    return value, metadata
  end

  function load_file(path)
    local kind = C.file_kind(path)
    if kind == "zip" then return torch().load(path) end
    if kind == "pickle" then
      raise("load: " .. path .. " is a torch.save file in the legacy format (PyTorch before 1.6, or "
        .. "_use_new_zipfile_serialization=False), which nnlua does not read: load it in PyTorch and "
        .. "torch.save it again")
    end
    local header = C.safetensors_read_header(path)
    local what = "load: " .. path .. ": the header is not valid JSON"
    local doc = json_decode(header, what)
    if type(doc) ~= "table" or header:match("^%s*%[") then raise("load: " .. path .. ": the header is not a JSON object") end
    local metadata = {}
    local entries = {}
    for name, e in pairs(doc) do
      if name == "__metadata__" then
        if type(e) ~= "table" then raise("load: " .. path .. ": __metadata__ is not an object") end
        for k, v in pairs(e) do
          if type(v) ~= "string" then raise("load: " .. path .. ": __metadata__ entry '" .. k .. "' is not a string") end
          metadata[k] = v
        end
      else
        local function bad(msg) raise(string.format("load: %s: tensor '%s': %s", path, name, msg)) end
        if type(e) ~= "table" then bad("not an object") end
        if type(e.dtype) ~= "string" then bad("no dtype") end
        if type(e.shape) ~= "table" then bad("no shape") end
        if not is_count_list(e.shape) then bad("the shape must be a list of non-negative integers") end
        if not is_count_list(e.data_offsets) or #e.data_offsets ~= 2 then
          bad("data_offsets must be [begin, end], two non-negative integers")
        end
        entries[#entries + 1] = {name, e.dtype, e.shape, e.data_offsets[1], e.data_offsets[2]}
      end
    end
    table.sort(entries, function(a, b) return a[1] < b[1] end)
    local list = C.safetensors_read(path, #header, entries)
    local tensors = {}
    for i, e in ipairs(entries) do tensors[e[1]] = list[i] end
    local old_keys = metadata[KEYS_KEY] ~= KEYS_PYTORCH
    metadata[KEYS_KEY] = nil
    local structure = metadata[STRUCTURE_KEY]
    local value = tensors
    if structure then
      metadata[STRUCTURE_KEY] = nil
      local tree = json_decode(structure, "load: " .. path .. ": the checkpoint structure is not valid JSON")
      value = decode_structure(tree, tensors, "")
    end
    if old_keys then mark_old_keys(value, {}) end
    return value, metadata
  end

  nn._json_decode = json_decode -- for the specs
end

-- state_dict and load_state_dict of nn.Module (lua/nn/module.lua, which
-- documents them and loads this file at the first call of either).
return function(nn)
  local raise = nn._raise
  local torch_name = nn._torch_name
  local ordered = nn._ordered
  local state = {}

  function state.state_dict(self)
    local metadata = ordered.new("OrderedDict")
    local sd = ordered.new("OrderedDict", {_metadata = metadata})
    local active = {}
    local function save(m, prefix)
      if active[m] then raise("state_dict: the module '" .. prefix:sub(1, -2) .. "' contains itself") end
      active[m] = true
      ordered.set(metadata, prefix:sub(1, -2), {version = m._version})
      for _, key in ipairs(m._parameters) do
        local p = rawget(m, key)
        if p ~= nil then ordered.set(sd, prefix .. torch_name(key), p:detach()) end
      end
      for _, key in ipairs(m._buffers) do
        local b = rawget(m, key)
        if b ~= nil then ordered.set(sd, prefix .. torch_name(key), b) end
      end
      for _, key in ipairs(m._modules) do
        local child = rawget(m, key)
        if child then save(child, prefix .. torch_name(key) .. ".") end
      end
      active[m] = nil
    end
    save(self, "")
    return sd
  end

  -- The keys of sd in its order: a state_dict's, a loaded file's, or a
  -- plain table's sorted.
  local function keys_of(sd)
    local keys = {}
    for k in pairs(sd) do keys[#keys + 1] = k end
    if not ordered.info[sd] then table.sort(keys, ordered.key_before) end
    return keys
  end

  local function size_text(t)
    return "{" .. table.concat(t:size(), ", ") .. "}"
  end

  -- PyTorch's Module.load_state_dict and _load_from_state_dict: each module
  -- takes the entries under its prefix, reports its own missing ones, and
  -- those under its prefix that name neither a child nor one of its
  -- parameters or buffers as unexpected. Returns the copies to make and
  -- the three lists.
  local function plan_load(self, sd, keys)
    local copies, missing, unexpected, errors = {}, {}, {}, {}
    local metadata = ordered.info[sd] and ordered.info[sd].state and ordered.info[sd].state._metadata
    local active = {}
    local function load(m, prefix, local_keys)
      if active[m] then raise("load_state_dict: the module '" .. prefix:sub(1, -2) .. "' contains itself") end
      active[m] = true
      local own, own_names = {}, {}
      for _, field in ipairs({"_parameters", "_buffers"}) do
        for _, key in ipairs(m[field]) do
          local t = rawget(m, key)
          if t ~= nil and own[torch_name(key)] == nil then
            own[torch_name(key)] = t
            own_names[#own_names + 1] = torch_name(key)
          end
        end
      end
      local version = type(metadata) == "table" and type(metadata[prefix:sub(1, -2)]) == "table"
        and metadata[prefix:sub(1, -2)].version or nil
      for _, name in ipairs(own_names) do
        local key, t = prefix .. name, own[name]
        local v = sd[key]
        -- torch/nn/modules/batchnorm.py: a checkpoint older than version 2
        -- (or one without _metadata) has no num_batches_tracked; it counts 0
        if v == nil and name == "num_batches_tracked" and (math.type(version) ~= "integer" or version < 2) then
          v = nn.tensor(0, {dtype = "int64"})
        end
        if v == nil then
          missing[#missing + 1] = key
        elseif not nn.is_tensor(v) then
          errors[#errors + 1] = string.format('While copying the parameter named "%s", expected a tensor '
            .. "from checkpoint but received %s", key, type(v))
        else
          -- PyTorch's compatibility for 0.3 files: a 1-element vector into a 0-d tensor
          if t:dim() == 0 and v:dim() == 1 then v = v[1] end
          if table.concat(v:size(), ",") ~= table.concat(t:size(), ",") then
            errors[#errors + 1] = string.format("size mismatch for %s: copying a param with shape %s "
              .. "from checkpoint, the shape in current model is %s.", key, size_text(v), size_text(t))
          else
            copies[#copies + 1] = {t, v}
          end
        end
      end
      local children = {}
      for _, key in ipairs(m._modules) do
        if rawget(m, key) then children[torch_name(key)] = rawget(m, key) end
      end
      for _, key in ipairs(local_keys) do
        local first = key:sub(#prefix + 1):match("^[^.]*")
        if children[first] == nil and own[first] == nil then unexpected[#unexpected + 1] = key end
      end
      for _, key in ipairs(m._modules) do
        local child = rawget(m, key)
        if child then
          local child_prefix = prefix .. torch_name(key) .. "."
          local child_keys = {}
          for _, k in ipairs(local_keys) do
            if k:sub(1, #child_prefix) == child_prefix then child_keys[#child_keys + 1] = k end
          end
          load(child, child_prefix, child_keys)
        end
      end
      active[m] = nil
    end
    local string_keys = {}
    for _, k in ipairs(keys) do
      if type(k) == "string" then string_keys[#string_keys + 1] = k else unexpected[#unexpected + 1] = tostring(k) end
    end
    load(self, "", string_keys)
    return copies, missing, unexpected, errors
  end

  -- The keys an nnlua file saved before state_dict names followed
  -- PyTorch's has: a child's integer key k as "k", where it is now "k-1".
  local function renumbered(sd)
    local out = ordered.new("OrderedDict")
    for k, v in pairs(sd) do
      if type(k) ~= "string" then return nil end
      local name = k:gsub("[^.]+", function(part)
        if part:match("^%d+$") then return string.format("%d", tonumber(part) - 1) end
      end)
      if name:find("-1", 1, true) or rawget(out, name) ~= nil then return nil end
      ordered.set(out, name, v)
    end
    return out
  end

  local function quoted(keys)
    local parts = {}
    for i, k in ipairs(keys) do parts[i] = '"' .. k .. '"' end
    return table.concat(parts, ", ")
  end

  function state.load_state_dict(self, sd, strict)
    if type(sd) ~= "table" or nn.is_tensor(sd) then
      raise("load_state_dict: expected a table of tensors, got " .. (nn.is_tensor(sd) and "a tensor" or type(sd)))
    end
    if strict == nil then strict = true end
    local copies, missing, unexpected, errors = plan_load(self, sd, keys_of(sd))
    if strict and (#missing > 0 or #unexpected > 0) and nn._old_key_tables[sd] then
      local renamed = renumbered(sd)
      if renamed then
        local c2, m2, u2, e2 = plan_load(self, renamed, keys_of(renamed))
        if #m2 == 0 and #u2 == 0 and #e2 == 0 then copies, missing, unexpected, errors = c2, m2, u2, e2 end
      end
    end
    if strict then
      if #unexpected > 0 then
        table.insert(errors, 1, "Unexpected key(s) in state_dict: " .. quoted(unexpected) .. ". ")
      end
      if #missing > 0 then table.insert(errors, 1, "Missing key(s) in state_dict: " .. quoted(missing) .. ". ") end
    end
    if #errors > 0 then
      raise(string.format("load_state_dict: Error(s) in loading state_dict for %s:\n\t%s", self.__name,
        table.concat(errors, "\n\t")))
    end
    nn.no_grad(function()
      for _, c in ipairs(copies) do c[1]:copy_(c[2]) end
    end)
    return {missing_keys = missing, unexpected_keys = unexpected}
  end

  return state
end

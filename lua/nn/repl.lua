-- nn.repl: the pieces of the nnlua prompt that are plain Lua, so that busted
-- can test them without a terminal: the pretty printer (show), completion
-- candidates (complete), the documentation lookup behind help(x) and `?x`,
-- the `%time` and `?` line rewriting, and the state the prompt restores after
-- an error. lua/nnlua.c drives them; from a stock lua5.4, nn.help(x) works
-- the same (the documentation is compiled into the binding as "nn.docs").
return function(nn)
--- nn.repl: the nnlua prompt's pieces written in Lua: show (the pretty
-- printer), complete (Tab), doc and nn.help, time (%time), rewrite (?x).
  local repl = {}
  nn.repl = repl

  local KEYWORDS = {"and", "break", "do", "else", "elseif", "end", "false", "for", "function",
                    "goto", "if", "in", "local", "nil", "not", "or", "repeat", "return", "then",
                    "true", "until", "while"}

  -------------------------------------------------------------------------
  -- The pretty printer

  local MAX_DEPTH = 4      -- deeper tables show as {...}
  local MAX_ITEMS = 40     -- entries of one table shown before "... (n more)"
  local LINE_WIDTH = 72    -- a table that fits on one line is shown on one line

  local function size_text(t)
    local dims = t:size()
    if #dims == 0 then return " scalar" end
    local parts = {}
    for i, d in ipairs(dims) do parts[i] = tostring(d) end
    return " of size " .. table.concat(parts, "x")
  end

  -- A tensor as print shows it, then its dtype and shape as Torch7 did:
  -- "[float32 of size 4x1]" (and the device when it is not the CPU).
  local function show_tensor(t)
    local where = t.device ~= "cpu" and (" on " .. tostring(t.device)) or ""
    return tostring(t) .. "\n[" .. tostring(t.dtype) .. size_text(t) .. where .. "]"
  end

  local function count_text(n)
    return n == 1 and "1 parameter" or (tostring(n) .. " parameters")
  end

  -- The parameters a module holds itself (not its children's).
  local function own_parameter_count(m)
    local n = 0
    for _, key in ipairs(rawget(m, "_parameters") or {}) do
      local p = rawget(m, key)
      if p ~= nil then n = n + p:numel() end
    end
    return n
  end

  local function module_lines(m, lines, indent, label)
    local extra = m:extra_repr()
    local head = indent .. label .. (m.__name or "Module") .. "(" .. extra
    local children = {}
    for key, child in m:children() do children[#children + 1] = {key, child} end
    local total = m:num_parameters()
    if #children == 0 then
      local line = head .. ")"
      if total > 0 then line = line .. "  -- " .. count_text(total) end
      lines[#lines + 1] = line
      return
    end
    lines[#lines + 1] = head .. "  -- " .. count_text(total)
    if own_parameter_count(m) > 0 then
      lines[#lines] = lines[#lines] .. " (" .. own_parameter_count(m) .. " its own)"
    end
    for _, entry in ipairs(children) do
      module_lines(entry[2], lines, indent .. "  ", "(" .. tostring(entry[1]) .. "): ")
    end
    lines[#lines + 1] = indent .. ")"
  end

  -- A module as a tree, each line with its parameter count.
  local function show_module(m)
    local lines = {}
    module_lines(m, lines, "", "")
    lines[#lines + 1] = "[" .. count_text(m:num_parameters()) .. "]"
    return table.concat(lines, "\n")
  end

  local type_order = {number = 1, string = 2, boolean = 3}

  local function key_less(a, b)
    local ta, tb = type(a), type(b)
    if ta ~= tb then return (type_order[ta] or 9) < (type_order[tb] or 9) or
                            ((type_order[ta] or 9) == (type_order[tb] or 9) and ta < tb) end
    if ta == "number" or ta == "string" then return a < b end
    return tostring(a) < tostring(b)
  end

  local function key_text(k)
    if type(k) == "string" and k:match("^[%a_][%w_]*$") then return k end
    if type(k) == "string" then return "[" .. string.format("%q", k) .. "]" end
    return "[" .. tostring(k) .. "]"
  end

  local show_value

  local function show_table(t, indent, seen, depth)
    if seen[t] then return "<cycle: " .. tostring(t) .. ">" end
    if depth > MAX_DEPTH then return "{...}" end
    seen[t] = true
    local items, n = {}, #t
    local keys = {}
    for k in pairs(t) do
      if not (math.type(k) == "integer" and k >= 1 and k <= n) then keys[#keys + 1] = k end
    end
    table.sort(keys, key_less)
    local inner = indent .. "  "
    local shown, total = 0, n + #keys
    for i = 1, n do
      if shown >= MAX_ITEMS then break end
      items[#items + 1] = show_value(t[i], inner, seen, depth + 1)
      shown = shown + 1
    end
    for _, k in ipairs(keys) do
      if shown >= MAX_ITEMS then break end
      items[#items + 1] = key_text(k) .. " = " .. show_value(t[k], inner, seen, depth + 1)
      shown = shown + 1
    end
    if shown < total then items[#items + 1] = "... (" .. (total - shown) .. " more)" end
    seen[t] = nil
    if #items == 0 then return "{}" end
    local one_line = "{" .. table.concat(items, ", ") .. "}"
    if #one_line + #indent <= LINE_WIDTH and not one_line:find("\n") then return one_line end
    return "{\n" .. inner .. table.concat(items, ",\n" .. inner) .. "\n" .. indent .. "}"
  end

  show_value = function(v, indent, seen, depth)
    local tv = type(v)
    if tv == "string" then
      return depth == 0 and v or string.format("%q", v):gsub("\\\n", "\\n")
    elseif nn.is_tensor(v) then
      local text = depth == 0 and show_tensor(v) or tostring(v)
      return (text:gsub("\n", "\n" .. indent))
    elseif tv == "table" then
      if depth == 0 and nn.is_module(v) then return show_module(v) end
      local mt = getmetatable(v)
      if mt ~= nil and (type(mt) ~= "table" or mt.__tostring ~= nil) then
        return (tostring(v):gsub("\n", "\n" .. indent))
      end
      return show_table(v, indent, seen, depth)
    elseif tv == "number" and math.type(v) == "float" then
      return string.format("%.14g", v):gsub("^(-?%d+)$", "%1.0")
    end
    return tostring(v)
  end

  --- nn.repl.show(...): the text the prompt prints for these values: tensors
  -- with a "[float32 of size 4x1]" line, modules as a tree with parameter
  -- counts, tables nested with sorted keys (cycles marked), several values
  -- separated by tabs.
  --   print(nn.repl.show({b = 1, a = {2, 3}}))   --> {a = {2, 3}, b = 1}
  function repl.show(...)
    local n = select("#", ...)
    local parts = {}
    for i = 1, n do parts[i] = show_value((select(i, ...)), "", {}, 0) end
    return table.concat(parts, "\t")
  end

  -------------------------------------------------------------------------
  -- Completion

  local function safe_index(v, k)
    local ok, r = pcall(function() return v[k] end)
    if ok then return r end
    return nil
  end

  local function add_keys(set, t, only_functions, seen)
    seen = seen or {}
    if type(t) ~= "table" or seen[t] then return end
    seen[t] = true
    for k, v in pairs(t) do
      if type(k) == "string" and k:match("^[%a_][%w_]*$") and
         (not only_functions or type(v) == "function" or
          (type(v) == "table" and getmetatable(v) and getmetatable(v).__call)) then
        set[k] = true
      end
    end
    local mt = getmetatable(t)
    if type(mt) == "table" and type(rawget(mt, "__index")) == "table" then
      add_keys(set, rawget(mt, "__index"), only_functions, seen)
    end
  end

  local TENSOR_FIELDS = {"dtype", "device", "grad", "requires_grad", "is_leaf", "grad_fn"}

  -- The names after `v.` (fields) or `v:` (methods).
  local function members(v, methods)
    local set = {}
    if nn.is_tensor(v) then
      if methods then add_keys(set, nn.Tensor, true)
      else
        for _, k in ipairs(TENSOR_FIELDS) do set[k] = true end
      end
    elseif type(v) == "string" then
      if methods then add_keys(set, string, true) end
    elseif type(v) == "table" then
      if methods then
        add_keys(set, v, true)
      else
        add_keys(set, v, false)
      end
      local mt = getmetatable(v)
      if type(mt) == "table" then
        add_keys(set, mt, methods)
        if type(rawget(mt, "__index")) == "table" then add_keys(set, rawget(mt, "__index"), methods) end
      end
    end
    return set
  end

  --- nn.repl.complete(line, word): what Tab offers. line is the input up to
  -- the cursor, word its last word (the part after the last `.` or `:`).
  -- Gives the sorted list of names that complete word: globals and keywords,
  -- a table's fields after `t.`, methods after `t:` (a tensor's from
  -- nn.Tensor, a module's from its class chain).
  --   nn.repl.complete("x = nn.Lin", "Lin")   --> {"Linear"}
  function repl.complete(line, word)
    word = word or line:match("[%a_][%w_]*$") or ""
    local before = line:sub(1, #line - #word)
    local set
    local chain, sep = before:match("([%a_][%w_%.]*)([%.:])$")
    if sep then
      local v = _G
      for name in chain:gmatch("[^%.]+") do
        if v == _G then v = _G[name] else v = safe_index(v, name) end
        if v == nil then return {} end
      end
      set = members(v, sep == ":")
    elseif before:match("[%w_%.:]$") then
      return {}
    else
      set = {}
      add_keys(set, _G, false)
      set.nn = true
      for _, k in ipairs(KEYWORDS) do set[k] = true end
    end
    local list = {}
    local hidden = word:sub(1, 1) ~= "_"
    for k in pairs(set) do
      if k:sub(1, #word) == word and not (hidden and k:sub(1, 1) == "_") then
        list[#list + 1] = k
      end
    end
    table.sort(list)
    return list
  end

  -------------------------------------------------------------------------
  -- Documentation: help(x), nn.repl.doc, search, the reference (nn/help.lua)

  require "nn.help" (nn, repl)

  -------------------------------------------------------------------------
  -- The prompt's own syntax: ?x and %time

  local function seconds_text(s)
    if s < 1e-3 then return string.format("%.1f us", s * 1e6) end
    if s < 1 then return string.format("%.2f ms", s * 1e3) end
    return string.format("%.3f s", s)
  end

  --- nn.repl.time(fn, ...): runs fn(...), prints "Wall time: 12.3 ms" and
  -- returns what fn returns. At the prompt, `%time expr` (or a statement).
  function repl.time(fn, ...)
    local start = nn.clock()
    local results = table.pack(fn(...))
    print("Wall time: " .. seconds_text(nn.clock() - start))
    return table.unpack(results, 1, results.n)
  end

  --- nn.repl.help_line(text): `?text` at the prompt: the documentation of
  -- what text evaluates to, else of the name text.
  function repl.help_line(text)
    text = text:match("^%s*(.-)%s*$")
    if text == "" then return nn.help() end
    local chunk = load("return " .. text, "=?")
    local ok, value = false, nil
    if chunk then ok, value = pcall(chunk) end
    if ok and value ~= nil and repl._documents_value(value) then return nn.help(value) end
    return nn.help(text)
  end

  --- nn.repl.rewrite(line): the Lua code for a prompt line that starts with
  -- `?` (help) or `%` (a magic: %time), or nil and an error message.
  function repl.rewrite(line)
    local rest = line:match("^%s*%?(.*)$")
    if rest then return "nn.repl.help_line(" .. string.format("%q", rest) .. ")" end
    local magic, body = line:match("^%s*%%([%a_]+)%s*(.-)%s*$")
    if magic == "time" then
      if body == "" then return nil, "%time: give an expression or a statement to time" end
      local expression = "return nn.repl.time(function() return " .. body .. "\nend)"
      if load(expression, "=stdin") then return expression end
      return "nn.repl.time(function() " .. body .. "\nend)"
    end
    return nil, "unknown magic %" .. tostring(magic) .. " (there is %time)"
  end

  -------------------------------------------------------------------------
  -- What the prompt puts back after an error or Ctrl-C

  --- nn.repl.save_state(): the engine state a line may change and an error
  -- must not leave changed (grad mode: an interrupted nn.no_grad).
  function repl.save_state()
    return {grad_enabled = nn.is_grad_enabled()}
  end

  --- nn.repl.restore_state(state): puts back what save_state saw.
  function repl.restore_state(state)
    nn.set_grad_enabled(state.grad_enabled)
  end

  return repl
end

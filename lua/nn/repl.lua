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
  -- The prompt's own syntax: ?x, %time and %timeit

  local function seconds_text(s)
    if s < 1e-6 then return string.format("%.1f ns", s * 1e9) end
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

  --- nn.repl.clock: the clock %timeit reads (nn.clock; a test may replace it).
  repl.clock = nn.clock

  local TIMEIT_RUN = 0.1     -- seconds one run of the calls should take
  local TIMEIT_RUNS = 7      -- runs when the calls are quick (IPython's default)
  local TIMEIT_BUDGET = 1.0  -- seconds the runs may take in all, for slow code

  --- nn.repl.timeit(fn) -> {median =, fastest =, slowest =, runs =, calls =}:
  -- times fn, as IPython's %timeit does: first calls it 1, 10, 100, ...
  -- times until that takes 0.02 s, to choose a number of calls that takes
  -- about 0.1 s, then runs that many calls up to 7 times (fewer where one
  -- call is slow: about a second in all), and prints the median time per
  -- call with the fastest and slowest runs. The times are per call, in
  -- seconds. At the prompt, `%timeit expr` (or a statement).
  --   nn.repl.timeit(function() return a:matmul(b) end)
  function repl.timeit(fn)
    local clock = repl.clock
    local function run(calls)
      local start = clock()
      for _ = 1, calls do fn() end
      return clock() - start
    end
    local calls, took = 1, run(1)
    while took < 0.02 and calls < 1e9 do
      calls = calls * 10
      took = run(calls)
    end
    local per_call = took / calls
    -- the most calls of the form 1, 2 or 5 times a power of ten that fit in a run
    local target = TIMEIT_RUN / math.max(per_call, 1e-12)
    calls = 1
    for power = 0, 12 do
      for _, leading in ipairs {1, 2, 5} do
        local c = leading * 10 ^ power
        if c <= target * (1 + 1e-9) then calls = math.floor(c) end -- a hair over is rounding
      end
    end
    local runs = math.max(1, math.min(TIMEIT_RUNS, math.floor(TIMEIT_BUDGET / math.max(per_call * calls, 1e-12))))
    local times = {}
    for r = 1, runs do times[r] = run(calls) / calls end
    table.sort(times)
    local median = runs % 2 == 1 and times[(runs + 1) // 2] or (times[runs // 2] + times[runs // 2 + 1]) / 2
    local result = {median = median, fastest = times[1], slowest = times[runs], runs = runs, calls = calls}
    print(string.format("%s per call (median of %d run%s of %d call%s; fastest %s, slowest %s)",
      seconds_text(median), runs, runs == 1 and "" or "s", calls, calls == 1 and "" or "s",
      seconds_text(times[1]), seconds_text(times[runs])))
    return result
  end

  local MAGICS = {time = "nn.repl.time", timeit = "nn.repl.timeit"}

  --- nn.repl.rewrite(line): the Lua code for a prompt line that starts with
  -- `?` (help) or `%` (a magic: %time, %timeit), or nil and an error message.
  function repl.rewrite(line)
    local rest = line:match("^%s*%?(.*)$")
    if rest then return "nn.repl.help_line(" .. string.format("%q", rest) .. ")" end
    local magic, body = line:match("^%s*%%([%a_]+)%s*(.-)%s*$")
    local runner = MAGICS[magic]
    if runner then
      if body == "" then return nil, "%" .. magic .. ": give an expression or a statement to time" end
      -- %time passes the expression's values on, to be printed; %timeit discards them
      local expression = (magic == "time" and "return " or "") .. runner .. "(function() return " .. body .. "\nend)"
      if load(expression, "=stdin") then return expression end
      return runner .. "(function() " .. body .. "\nend)"
    end
    return nil, "unknown magic %" .. tostring(magic) .. " (there are %time and %timeit)"
  end

  -------------------------------------------------------------------------
  -- Locals that outlive their line

  -- text with the insides of its strings and comments blanked (spaces; the
  -- quotes and brackets stay), so that what looks like code in it is code:
  -- the same length, so that a position means the same in both. nil when a
  -- string or comment does not end.
  local function code_only(text)
    local out, i, n = {}, 1, #text
    while i <= n do
      local at = text:find("[-\"'%[]", i)
      if not at then out[#out + 1] = text:sub(i); break end
      out[#out + 1] = text:sub(i, at - 1)
      local c = text:sub(at, at)
      local stop -- the last character of the string or comment at `at`
      local long = text:match("^%[(=*)%[", c == "-" and at + 2 or at)
      if c == "-" and text:sub(at, at + 1) ~= "--" or c == "[" and not long then
        stop = nil -- an operator or an index, not a string
      elseif long and (c == "[" or text:sub(at, at + 1) == "--") then
        local close = text:find("]" .. long .. "]", at, true)
        if not close then return nil end
        stop = close + #long + 1
      elseif c == "-" then
        stop = (text:find("\n", at, true) or n + 1) - 1
      else
        local j = at + 1
        while true do
          local e = text:find("[" .. c .. "\\\n]", j)
          if not e or text:sub(e, e) == "\n" then return nil end
          if text:sub(e, e) == c then stop = e break end
          j = e + 2 -- an escape: the next character is not the end
        end
      end
      if stop then
        out[#out + 1] = c == "-" and string.rep(" ", stop - at + 1)
                        or (c .. string.rep(" ", stop - at - 1) .. text:sub(stop, stop))
        i = stop + 1
      else
        out[#out + 1] = c
        i = at + 1
      end
    end
    return table.concat(out)
  end

  --- nn.repl.keep_locals(text) -> code or nil: at the prompt each line is
  -- a chunk of its own, so `local x = 5` would be gone on the next line.
  -- This gives the code that runs text and then keeps its chunk's locals
  -- (those in scope at its end: `local x`, `local a, b`, `local function
  -- f`) as globals, or nil when text declares none or ends in a return.
  -- <const> is dropped (a global cannot be one); a <close> variable is
  -- closed at the end of its line, as Lua closes it, and not kept.
  function repl.keep_locals(text)
    local code = code_only(text)
    if not code or not code:find("%f[%w_]local%f[^%w_]") then return nil end
    -- the text without its <const> attributes (a constant may not even
    -- have a register that debug.getlocal could read)
    local parts, from = {}, 1
    for first, last in code:gmatch("()<%s*const%s*>()") do
      parts[#parts + 1] = text:sub(from, first - 1)
      from = last
    end
    parts[#parts + 1] = text:sub(from)
    local closed = {}
    for name in code:gmatch("([%a_][%w_]*)%s*<%s*close%s*>") do closed[#closed + 1] = string.format("%q", name) end
    -- the keeper is a local made first, so that no name the line declares hides it
    local kept = "local __nnlua_keep = require('nn').repl._keep_locals; " .. table.concat(parts)
                 .. "\n;__nnlua_keep(" .. table.concat(closed, ", ") .. ")"
    if not load(kept, "=stdin") then return nil end -- a line that ends in `return`
    return kept
  end

  -- Called at the end of a line that keep_locals rewrote: its locals in
  -- scope there become globals, but for the names given (<close> ones).
  function repl._keep_locals(...)
    local skip = {__nnlua_keep = true}
    for i = 1, select("#", ...) do skip[select(i, ...)] = true end
    for i = 1, math.huge do
      local name, value = debug.getlocal(2, i)
      if name == nil then break end
      if name:sub(1, 1) ~= "(" and not skip[name] then _G[name] = value end
    end
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

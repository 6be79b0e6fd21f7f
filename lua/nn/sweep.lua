-- nn.sweep: hyperparameter sweeps, in parallel on one machine and across
-- machines with MPI.
--
--   local result = nn.sweep {
--     parameters = {
--       lr = nn.sweep.log_uniform(1e-3, 1),   -- a distribution: random search
--       hidden = {2, 4, 8},                    -- a list: every value (grid)
--       activation = {"sigmoid", "tanh"},
--     },
--     trials = 10,            -- random settings in all (grid values taken in turn)
--     seeds = 3,              -- seeds 1, 2, 3 for every setting (30 runs in all)
--     metric = "loss", mode = "min",
--     file = "sweep.jsonl",   -- one JSON line per finished trial
--     time_limit = 60,        -- seconds per trial (optional)
--     run = function(config)  -- config.lr, config.hidden, ..., config.seed
--       ...train...
--       return {loss = final_loss, epochs = n}
--     end,
--   }
--   print(result.best.config.lr, result.best.mean, result.best.std)
--
-- How it runs. The calling process schedules; each trial runs in its own
-- forked copy of the process (so run, its upvalues and everything the
-- script loaded before are there), one trial per worker slot, with BLAS
-- limited to one thread and its printed output discarded (show_output =
-- true keeps it). Before each trial nn.manual_seed(seed) is called. A trial
-- that raises an error, crashes its process or passes the time limit is
-- recorded as failed or timed out and the sweep goes on. (A GPU must not be
-- used by the scheduling process before nn.sweep: CUDA does not survive
-- fork; each trial may use it.)
--
-- The results file is written by the scheduler alone: a header line naming
-- the sweep definition (a hash of parameters, seeds, trials, metric, mode,
-- search_seed), then one JSON line per finished trial, written and flushed
-- as the trial finishes (a kill -9 of the sweep then loses only the trials
-- in flight) and synced to the disk by a background thread (a slow disk
-- does not slow the sweep; nn.sweep returns once all is synced). Running the
-- same sweep again skips the trials already in the file (a trial is its
-- config and seed; failed and timed-out trials count as done: delete their
-- lines to run them again); a file from another definition is refused, and
-- so is a file that another running sweep holds.
--
-- Under mpirun (Open MPI), every rank runs the same script: rank 0 schedules
-- and writes the file, every rank (rank 0 included) runs trials, one at a
-- time unless `workers` says otherwise. The other ranks end their process
-- when the sweep is over, so code after nn.sweep runs on rank 0 only.
--
-- What is checked before any trial starts: the table's fields, the
-- parameters (an empty list, an unknown distribution, bad bounds), run,
-- metric, and the results file. A run that returns no number for the metric
-- can only be seen when a trial returns: the sweep then stops at once (the
-- trials in flight are killed, nothing is recorded for them) and raises,
-- since every other trial would fail the same way; after the fix, running
-- again resumes.
return function(nn)
  local C = nn._C
  local raise = nn._raise

  local sweep = {}

  ---------------------------------------------------------------------------
  -- JSON: what the results file and the MPI messages are written in, through
  -- lua-cjson (Debian's lua-cjson). Two things cjson 2.1.0 cannot do are
  -- done here, so that files stay byte for byte what earlier nnlua wrote:
  -- - numbers: cjson writes at most 14 digits and reads every number as a
  --   float; here numbers keep Lua's subtypes (1 is an integer, 1.0 a float)
  --   and round-trip exactly (the shortest of %.15g, %.16g, %.17g that reads
  --   back the same), NaN and infinities written NaN / Infinity as Python's
  --   json module does;
  -- - order: objects are written with sorted keys, so that equal tables
  --   give equal text (the trial keys and the definition hash use this).
  -- Strings, escapes, and all the reading are cjson's.
--- nn.sweep.json: JSON encoding and decoding for the sweep's files (json.encode, json.decode), on lua-cjson.
  local json = {}
  sweep.json = json

  --- nn.sweep.json.null: decodes from null where a value must be kept (never in arrays or objects).
  json.null = setmetatable({}, {__tostring = function() return "null" end})

  -- A cjson of the sweep's own, so that its settings are not the user's.
  local cjson_instance
  local function cjson()
    if cjson_instance then return cjson_instance end
    local ok, module = pcall(require, "cjson")
    if not ok then
      error("json: nn.sweep needs the Lua module cjson: apt-get install lua-cjson (tools/setup.sh does)", 0)
    end
    cjson_instance = module.new()
    cjson_instance.decode_invalid_numbers(true) -- NaN, Infinity
    cjson_instance.decode_max_depth(200)
    return cjson_instance
  end

  local function number_text(x)
    if math.type(x) == "integer" then return string.format("%d", x) end
    if x ~= x then return "NaN" end
    if x == math.huge then return "Infinity" end
    if x == -math.huge then return "-Infinity" end
    local s = string.format("%.15g", x)
    if tonumber(s) ~= x then s = string.format("%.16g", x) end
    if tonumber(s) ~= x then s = string.format("%.17g", x) end
    if not s:find("[.eE]") then s = s .. ".0" end -- still a float when read back
    return s
  end

  -- cjson escapes '/' as '\/', which JSON allows but earlier files lack;
  -- a '/' in its output always follows the backslash of that escape.
  local function string_text(s)
    return (cjson().encode(s):gsub("\\/", "/"))
  end

  local function is_array(t)
    local n = #t
    if n == 0 then return false end
    local count = 0
    for _ in pairs(t) do count = count + 1 end
    return count == n
  end

  local encode_into
  local function encode_object(t, out, depth, keys)
    if not keys then
      keys = {}
      for k in pairs(t) do
        local kind = type(k)
        if kind ~= "string" and kind ~= "number" then error("json: cannot encode a key of type " .. kind, 0) end
        keys[#keys + 1] = k
      end
      table.sort(keys, function(a, b) return tostring(a) < tostring(b) end)
    end
    out[#out + 1] = "{"
    local first = true
    for _, k in ipairs(keys) do
      local v = t[k]
      if v ~= nil then
        if not first then out[#out + 1] = "," end
        first = false
        out[#out + 1] = string_text(tostring(k))
        out[#out + 1] = ":"
        encode_into(v, out, depth + 1)
      end
    end
    out[#out + 1] = "}"
  end

  encode_into = function(v, out, depth)
    local kind = type(v)
    if v == nil or v == json.null then
      out[#out + 1] = "null"
    elseif kind == "boolean" then
      out[#out + 1] = v and "true" or "false"
    elseif kind == "number" then
      out[#out + 1] = number_text(v)
    elseif kind == "string" then
      out[#out + 1] = string_text(v)
    elseif kind == "table" then
      if depth > 64 then error("json: tables nested too deeply (a cycle?)", 0) end
      if is_array(v) then
        out[#out + 1] = "["
        for i = 1, #v do
          if i > 1 then out[#out + 1] = "," end
          encode_into(v[i], out, depth + 1)
        end
        out[#out + 1] = "]"
      else
        encode_object(v, out, depth)
      end
    else
      error("json: cannot encode a " .. kind, 0)
    end
  end

  --- nn.sweep.json.encode(value [, keys]) -> text: numbers, strings, booleans,
  --- nil (null), arrays and objects (sorted keys, or the top level's keys in
  --- the order of the list keys). Raises "json: ..." for functions, userdata, cycles.
  function json.encode(v, keys)
    local out = {}
    if keys then encode_object(v, out, 0, keys) else encode_into(v, out, 0) end
    return table.concat(out)
  end

  -- The text with every number put in a string marked "n" and every string
  -- marked "s" (a string's text follows its mark): cjson then hands back
  -- each number's own digits, for tonumber, which keeps integers apart from
  -- floats and reads 19-digit integers exactly. Only the quotes of strings
  -- are found here; the grammar is cjson's. Returns nil for a string that
  -- never ends.
  local function mark_numbers(text)
    local out, pos = {}, 1
    while true do
      local open = text:find('"', pos, true)
      local plain = text:sub(pos, open and open - 1 or #text)
      out[#out + 1] = plain:gsub("%-?%d[%w.+-]*", '"n%0"')
      if not open then return table.concat(out) end
      local close, at = nil, open + 1
      while true do
        local stop = text:find('["\\]', at)
        if not stop then return nil end
        if text:byte(stop) == 34 then close = stop break end
        at = stop + 2 -- an escape: its next character is not a closing quote
      end
      out[#out + 1] = '"s' .. text:sub(open + 1, close)
      pos = close + 1
    end
  end

  local NULL = nil -- cjson.null, known once cjson is loaded

  -- The decoded value with the marks taken off; null leaves an entry out.
  local function unmark(v)
    local kind = type(v)
    if kind == "string" then
      if v:byte(1) == 115 then return v:sub(2) end -- "s"
      local digits = v:sub(2)
      local number = (digits:match("^%-?%d+%.?%d*$") or digits:match("^%-?%d+%.?%d*[eE][-+]?%d+$"))
                     and tonumber(digits)
      if not number then error("json: bad number '" .. digits .. "'", 0) end
      return number
    elseif kind == "table" then
      local t = {}
      for k, x in pairs(v) do
        if x ~= NULL then
          if type(k) == "string" then k = k:sub(2) end
          t[k] = unmark(x)
        end
      end
      return t
    end
    return v
  end

  --- nn.sweep.json.decode(text) -> value: the inverse of encode; null in an
  --- array or object leaves the entry out. Raises "json: ... at character N".
  function json.decode(text)
    if type(text) ~= "string" then error("json: expected a string to decode, got " .. type(text), 0) end
    local decoder = cjson()
    NULL = decoder.null
    local marked = mark_numbers(text)
    if not marked then
      error(string.format("json: unterminated string at character %d", #text + 1), 0)
    end
    local ok, v = pcall(decoder.decode, marked)
    if not ok then
      -- the message and the position, as they are in the text given
      local plain_ok, message = pcall(decoder.decode, text)
      if plain_ok then message = "a number that is not JSON's" end
      error("json: " .. tostring(message), 0)
    end
    if v == NULL then return nil end
    return unmark(v)
  end

  -- FNV-1a, 64 bits (Fowler, Noll, Vo): a stable name for a definition.
  -- Lua's integers wrap around on overflow, which is the arithmetic it needs.
  local function fnv1a64(s)
    local h = 0xcbf29ce484222325
    for i = 1, #s do h = (h ~ s:byte(i)) * 0x100000001b3 end
    return string.format("%016x", h)
  end

  ---------------------------------------------------------------------------
  -- Distributions for random search.
  local distribution_names = {"choice", "int", "log_uniform", "uniform"}
  local known_distribution = {}
  for _, name in ipairs(distribution_names) do known_distribution[name] = true end

  --- nn.sweep.uniform(low, high): a number drawn uniformly from [low, high).
  function sweep.uniform(low, high) return {distribution = "uniform", low = low, high = high} end
  --- nn.sweep.log_uniform(low, high): a number whose log is uniform: for learning rates (0 < low < high).
  function sweep.log_uniform(low, high) return {distribution = "log_uniform", low = low, high = high} end
  --- nn.sweep.int(low, high): an integer drawn uniformly from low..high, both included.
  function sweep.int(low, high) return {distribution = "int", low = low, high = high} end
  --- nn.sweep.choice(values): one of values (a list), drawn uniformly.
  function sweep.choice(values) return {distribution = "choice", values = values} end

  -- splitmix64 (Steele, Lea, Flood 2014): the draws must be the same in
  -- every process and every run, whatever the user does with nn's or
  -- math's generators, so the sweep has its own.
  local function new_generator(seed)
    local state = seed
    return function()
      state = state + 0x9e3779b97f4a7c15
      local z = state
      z = (z ~ (z >> 30)) * 0xbf58476d1ce4e5b9
      z = (z ~ (z >> 27)) * 0x94d049bb133111eb
      z = z ~ (z >> 31)
      return (z >> 11) * 2.0 ^ -53 -- uniform on [0, 1)
    end
  end

  -- Drawn reals are rounded to 6 significant digits: tables stay readable
  -- and nothing a training run could tell apart is lost.
  local function round6(x, low, high)
    local r = tonumber(string.format("%.6g", x))
    if r < low then r = low end
    if r > high then r = high end
    return r
  end

  local function draw(spec, uniform)
    local u = uniform()
    local d = spec.distribution
    if d == "uniform" then
      return round6(spec.low + u * (spec.high - spec.low), spec.low, spec.high)
    elseif d == "log_uniform" then
      local a, b = math.log(spec.low), math.log(spec.high)
      return round6(math.exp(a + u * (b - a)), spec.low, spec.high)
    elseif d == "int" then
      return math.tointeger(spec.low + math.floor(u * (spec.high - spec.low + 1)))
    end
    return spec.values[1 + math.floor(u * #spec.values)]
  end

  ---------------------------------------------------------------------------
  -- The definition: checked whole before anything runs.
  local known_fields = {}
  for _, k in ipairs {"parameters", "run", "metric", "mode", "trials", "seeds", "file", "workers",
                      "time_limit", "search_seed", "quiet", "show_output", "plot", "show", "mpi",
                      "name"} do
    known_fields[k] = true
  end

  local function describe(v)
    if type(v) == "string" then return string.format("%q", v) end
    return tostring(v)
  end

  local function is_scalar(v)
    local kind = type(v)
    return kind == "string" or kind == "boolean" or (kind == "number" and v == v)
  end

  local function is_integer(v) return math.type(v) == "integer" or (type(v) == "number" and v == math.floor(v) and v > -2 ^ 53 and v < 2 ^ 53) end

  local function check_values(name, values, what)
    if #values == 0 or not is_array(values) then
      raise(string.format("sweep: parameter '%s' has an empty %s", name, what))
    end
    local seen = {}
    for i, v in ipairs(values) do
      if not is_scalar(v) then
        raise(string.format("sweep: parameter '%s': value %d is %s; values must be numbers, strings or booleans",
                            name, i, v ~= v and "NaN" or "a " .. type(v)))
      end
      local key = json.encode(v)
      if seen[key] then raise(string.format("sweep: parameter '%s' lists %s twice", name, describe(v))) end
      seen[key] = true
    end
  end

  -- A parameter's definition in canonical form: {values = {...}} for a
  -- grid, or the distribution's table.
  local function check_parameter(name, p)
    if type(name) ~= "string" then
      raise("sweep: parameters must map names to values, as parameters = {lr = {0.1, 1}}; got a key "
            .. describe(name))
    end
    if name == "seed" then
      raise("sweep: 'seed' cannot be a parameter: seeds come from the seeds field (run sees config.seed)")
    end
    if is_scalar(p) then return {values = {p}} end
    if type(p) ~= "table" or nn.is_tensor(p) then
      raise(string.format("sweep: parameter '%s' must be a list of values or a distribution "
                          .. "(nn.sweep.uniform, log_uniform, int, choice), got a %s", name, type(p)))
    end
    local d = p.distribution
    if d == nil then
      if next(p) == nil then raise(string.format("sweep: parameter '%s' has an empty list of values", name)) end
      if not is_array(p) then
        raise(string.format("sweep: parameter '%s' is neither a list of values nor a distribution "
                            .. "(nn.sweep.uniform(low, high), ...)", name))
      end
      check_values(name, p, "list of values")
      local values = {}
      for i, v in ipairs(p) do values[i] = v end
      return {values = values}
    end
    if not known_distribution[d] then
      raise(string.format("sweep: parameter '%s' has an unknown distribution %s (known: %s)", name,
                          describe(d), table.concat(distribution_names, ", ")))
    end
    if d == "choice" then
      if type(p.values) ~= "table" then
        raise(string.format("sweep: parameter '%s': choice needs a list of values", name))
      end
      check_values(name, p.values, "list of choices")
      local values = {}
      for i, v in ipairs(p.values) do values[i] = v end
      return {distribution = d, values = values}
    end
    local low, high = p.low, p.high
    if type(low) ~= "number" or type(high) ~= "number" or low ~= low or high ~= high
       or math.abs(low) == math.huge or math.abs(high) == math.huge then
      raise(string.format("sweep: parameter '%s': %s needs finite numbers low and high, got %s and %s",
                          name, d, describe(low), describe(high)))
    end
    if d == "int" then
      if not is_integer(low) or not is_integer(high) or low > high then
        raise(string.format("sweep: parameter '%s': int needs integers low <= high, got %s and %s",
                            name, describe(low), describe(high)))
      end
      return {distribution = d, low = math.tointeger(low), high = math.tointeger(high)}
    end
    if not (low < high) then
      raise(string.format("sweep: parameter '%s': %s needs low < high, got %s and %s", name, d, describe(low),
                          describe(high)))
    end
    if d == "log_uniform" and low <= 0 then
      raise(string.format("sweep: parameter '%s': log_uniform needs 0 < low, got %s", name, describe(low)))
    end
    return {distribution = d, low = low + 0.0, high = high + 0.0}
  end

  local function check_positive_integer(field, v)
    if not (is_integer(v) and v >= 1) then
      raise(string.format("sweep: %s must be a positive integer, got %s", field, describe(v)))
    end
    return math.tointeger(v)
  end

  local function check_definition(def)
    if type(def) ~= "table" then
      raise("sweep: expected a table describing the sweep (parameters, run, metric, file), got " .. type(def))
    end
    for k in pairs(def) do
      if not known_fields[k] then
        local names = {}
        for name in pairs(known_fields) do names[#names + 1] = name end
        table.sort(names)
        raise(string.format("sweep: unknown field %s (known: %s)", describe(k), table.concat(names, ", ")))
      end
    end
    local spec = {}

    if type(def.parameters) ~= "table" then
      raise("sweep: parameters must be a table of settings, as parameters = {lr = {0.1, 1}}, got "
            .. type(def.parameters))
    end
    if next(def.parameters) == nil then raise("sweep: parameters is empty: there is nothing to sweep") end
    spec.names, spec.parameters = {}, {}
    local has_distribution = false
    for name, p in pairs(def.parameters) do
      spec.parameters[name] = check_parameter(name, p)
      spec.names[#spec.names + 1] = name
      has_distribution = has_distribution or spec.parameters[name].distribution ~= nil
    end
    table.sort(spec.names)

    local run = def.run
    local mt = getmetatable(run)
    if type(run) ~= "function" and not (mt and mt.__call) then
      raise("sweep: run must be a function run(config) that trains and returns a table of metrics, got "
            .. type(run))
    end
    spec.run = run

    if type(def.metric) ~= "string" or def.metric == "" then
      raise("sweep: metric must name the metric that run returns, as metric = \"loss\", got "
            .. describe(def.metric))
    end
    spec.metric = def.metric
    spec.mode = def.mode or "min"
    if spec.mode ~= "min" and spec.mode ~= "max" then
      raise("sweep: mode must be \"min\" (lower is better) or \"max\", got " .. describe(def.mode))
    end

    if has_distribution then
      if def.trials == nil then
        raise("sweep: trials must say how many random settings to draw, since some parameters are distributions")
      end
      spec.trials = check_positive_integer("trials", def.trials)
    elseif def.trials ~= nil and def.trials ~= 1 then
      raise("sweep: trials counts random draws, but every parameter is a list of values: "
            .. "every combination is run once per seed already")
    else
      spec.trials = 1
    end

    local seeds = def.seeds or 1
    spec.seeds = {}
    if type(seeds) == "number" then
      for s = 1, check_positive_integer("seeds", seeds) do spec.seeds[s] = s end
    elseif type(seeds) == "table" and is_array(seeds) then
      local seen = {}
      for i, s in ipairs(seeds) do
        if not is_integer(s) then raise(string.format("sweep: seeds[%d] must be an integer, got %s", i, describe(s))) end
        s = math.tointeger(s)
        if seen[s] then raise(string.format("sweep: seeds lists %d twice", s)) end
        seen[s] = true
        spec.seeds[i] = s
      end
    else
      raise("sweep: seeds must be a count (3 means seeds 1, 2, 3) or a list of integers, got " .. describe(seeds))
    end

    if type(def.file) ~= "string" or def.file == "" then
      raise("sweep: file must name the results file (one JSON line per trial), as file = \"sweep.jsonl\", got "
            .. describe(def.file))
    end
    spec.file = def.file

    if def.workers ~= nil then spec.workers = check_positive_integer("workers", def.workers) end
    if def.time_limit ~= nil then
      local t = def.time_limit
      if type(t) ~= "number" or not (t > 0) then
        raise("sweep: time_limit must be a positive number of seconds, got " .. describe(t))
      end
      spec.time_limit = t
    end
    spec.search_seed = def.search_seed == nil and 1 or def.search_seed
    if not is_integer(spec.search_seed) then
      raise("sweep: search_seed must be an integer, got " .. describe(def.search_seed))
    end
    spec.search_seed = math.tointeger(spec.search_seed)
    if def.plot ~= nil and type(def.plot) ~= "boolean" and type(def.plot) ~= "string" then
      raise("sweep: plot must be false, true or a file name prefix, got " .. describe(def.plot))
    end
    spec.plot = def.plot
    if def.show ~= nil then spec.show = check_positive_integer("show", def.show) end
    spec.quiet = def.quiet and true or false
    spec.show_output = def.show_output and true or false
    spec.mpi = def.mpi
    spec.name = def.name and tostring(def.name) or spec.file

    -- What makes two sweeps the same sweep, hence the results file's header.
    spec.definition = {parameters = spec.parameters, seeds = spec.seeds, trials = spec.trials,
                       metric = spec.metric, mode = spec.mode, search_seed = spec.search_seed}
    spec.hash = fnv1a64(json.encode(spec.definition))
    return spec
  end

  -- Every trial of the sweep, in a fixed order: each setting with each seed.
  -- The settings are the grid's combinations (first parameter slowest), or,
  -- where some parameters are distributions, `trials` settings in all: each
  -- takes the next combination of the grid in turn (so a grid of 2 values
  -- and trials = 4 gives each value twice) and fresh draws of the
  -- distributions. A draw that repeats a setting adds nothing and is drawn
  -- again, up to 100 draws a setting: a space with fewer settings than
  -- `trials` (int(1, 2), trials = 4) gives the settings it has.
  local function enumerate(spec)
    local grid, drawn = {}, {}
    for _, name in ipairs(spec.names) do
      if spec.parameters[name].distribution then drawn[#drawn + 1] = name else grid[#grid + 1] = name end
    end
    local combinations = {{}}
    for _, name in ipairs(grid) do
      local next_combinations = {}
      for _, partial in ipairs(combinations) do
        for _, v in ipairs(spec.parameters[name].values) do
          local c = {}
          for k, x in pairs(partial) do c[k] = x end
          c[name] = v
          next_combinations[#next_combinations + 1] = c
        end
      end
      combinations = next_combinations
    end
    local settings, seen = {}, {}
    local function add(config)
      local setting = json.encode(config)
      if seen[setting] then return end
      seen[setting] = true
      settings[#settings + 1] = {config = config, setting = setting}
    end
    if #drawn == 0 then
      for _, combination in ipairs(combinations) do add(combination) end
    else
      local uniform = new_generator(spec.search_seed)
      local draws = 0
      while #settings < spec.trials and draws < 100 * spec.trials do
        draws = draws + 1
        local config = {}
        for k, v in pairs(combinations[#settings % #combinations + 1]) do config[k] = v end
        for _, name in ipairs(drawn) do config[name] = draw(spec.parameters[name], uniform) end
        add(config)
      end
    end
    local trials = {}
    for _, s in ipairs(settings) do
      for _, seed in ipairs(spec.seeds) do
        local index = #trials + 1
        trials[index] = {index = index, config = s.config, seed = seed, setting = s.setting,
                         key = s.setting .. "#" .. seed}
      end
    end
    return trials, #settings
  end

  ---------------------------------------------------------------------------
  -- The results file.
  local record_keys = {"trial", "status", "metrics", "config", "seed", "duration", "worker", "rank",
                       "host", "error", "traceback"}
  local header_keys = {"nnlua_sweep", "hash", "name", "created", "definition"}

  local function definition_difference(old, new)
    if type(old) ~= "table" then return "its definition is missing" end
    local parts = {}
    for _, k in ipairs {"parameters", "seeds", "trials", "metric", "mode", "search_seed"} do
      if json.encode(old[k]) ~= json.encode(new[k]) then parts[#parts + 1] = k end
    end
    if #parts == 0 then return "its definition differs" end
    return "it differs in " .. table.concat(parts, ", ")
  end

  -- Opens (or creates) the results file; returns {file, records, done} with
  -- the finished trials found in it, keyed by trial key.
  local function open_results(spec, trials)
    local path = spec.file
    local f, err = io.open(path, "a+b")
    if not f then raise("sweep: cannot open the results file: " .. err) end
    -- A file system without locks (some network ones) goes without.
    local locked = C.sys_lock(f)
    if locked == false then
      f:close()
      raise("sweep: the results file " .. path .. " is in use by another sweep that is running now")
    end
    f:seek("set", 0)
    local text = f:read("a") or ""
    f:seek("end") -- C streams need a seek between reading and writing
    local by_key = {}
    for _, t in ipairs(trials) do by_key[t.key] = t end
    local results = {file = f, path = path, records = {}, done = {}, damaged = 0}
    if text:find("%S") then
      local lines = {}
      for line in text:gmatch("[^\n]+") do
        if line:find("%S") then lines[#lines + 1] = line end
      end
      local ok, header = pcall(json.decode, lines[1])
      if not ok or type(header) ~= "table" or header.nnlua_sweep == nil then
        f:close()
        raise("sweep: " .. path .. " is not a results file of nn.sweep (its first line is not a sweep header); "
              .. "name another file")
      end
      if header.hash ~= spec.hash then
        f:close()
        raise(string.format("sweep: %s holds the results of a different sweep (%s); name another file, "
                            .. "or delete it to start over", path,
                            definition_difference(header.definition, spec.definition)))
      end
      for i = 2, #lines do
        local good, record = pcall(json.decode, lines[i])
        local trial
        if good and type(record) == "table" and type(record.config) == "table" and math.type(record.seed) == "integer"
           and type(record.status) == "string" then
          trial = by_key[json.encode(record.config) .. "#" .. record.seed]
        end
        if trial and not results.done[trial.key] then
          record.trial, record.config = trial.index, trial.config
          results.done[trial.key] = record
          results.records[#results.records + 1] = record
        elseif not trial then
          results.damaged = results.damaged + 1
        end
      end
      -- A line cut short by a crash must not swallow the next record.
      if text:sub(-1) ~= "\n" then f:write("\n") end
    else
      f:write(json.encode({nnlua_sweep = 1, hash = spec.hash, name = spec.name,
                           created = os.date("!%Y-%m-%dT%H:%M:%SZ"), definition = spec.definition},
                          header_keys), "\n")
    end
    local synced, sync_err = C.sys_fsync(f)
    if not synced then f:close(); raise("sweep: cannot write the results file " .. path .. ": " .. sync_err) end
    return results
  end

  local function append_record(results, record)
    local line = json.encode(record, record_keys)
    local ok, err = results.file:write(line, "\n")
    -- Flushed now (a killed sweep loses nothing written); synced to the disk
    -- by a background thread, so that a slow disk does not slow the sweep.
    if ok then ok, err = C.sys_sync_later(results.file) end
    if not ok then raise("sweep: cannot write the results file " .. results.path .. ": " .. tostring(err)) end
  end

  ---------------------------------------------------------------------------
  -- Trials in forked processes. A runner holds the trials in flight on this
  -- process's worker slots; wait() returns those that have finished.

  -- A trial's outcome, as the trial process reports it to its parent.
  -- "invalid" means run broke the sweep's contract (no metric): the sweep stops.
  local function outcome_of(spec, ok, result)
    if not ok then
      return {status = "failed", error = result.message, traceback = result.traceback}
    end
    if type(result) == "number" or nn.is_tensor(result) then result = {[spec.metric] = result} end
    if type(result) ~= "table" then
      return {status = "invalid", error = string.format("run returned %s instead of a table of metrics "
                                                        .. "(as {%s = ...})", type(result), spec.metric)}
    end
    local metrics, names = {}, {}
    for k, v in pairs(result) do
      if type(k) ~= "string" then
        return {status = "invalid", error = "run returned a metric with a " .. type(k) .. " key; metrics are named"}
      end
      if nn.is_tensor(v) then
        if v:numel() ~= 1 then
          return {status = "invalid", error = string.format("run returned metric '%s' as a tensor of %d "
                                                            .. "elements; a metric is one number", k, v:numel())}
        end
        v = v:item()
      end
      local kind = type(v)
      if kind ~= "number" and kind ~= "string" and kind ~= "boolean" then
        return {status = "invalid", error = string.format("run returned metric '%s' as a %s; metrics are numbers, "
                                                          .. "strings or booleans", k, kind)}
      end
      metrics[k] = v
      names[#names + 1] = k
    end
    if type(metrics[spec.metric]) ~= "number" then
      table.sort(names)
      local got = #names > 0 and "it returned " .. table.concat(names, ", ") or "it returned no metrics"
      if metrics[spec.metric] ~= nil then got = "it returned a " .. type(metrics[spec.metric]) end
      return {status = "invalid", error = string.format("run returned no number for the metric '%s' (%s); "
                                                        .. "return it in every trial (math.huge or 0/0 for a run "
                                                        .. "that has no value)", spec.metric, got)}
    end
    return {status = "ok", metrics = metrics}
  end

  local function error_report(e)
    local message = type(e) == "string" and e or tostring(e)
    if type(e) == "table" and getmetatable(e) == nil and e.message then message = tostring(e.message) end
    return {message = message, traceback = debug.traceback(nil, 2)}
  end

  -- The body of a trial's process: it never returns.
  local function trial_process(spec, trial, fd)
    pcall(function()
      -- The results file is the scheduler's: closing this copy leaves its
      -- lock to the scheduler alone, so a killed sweep frees it at once.
      if spec.results_file then spec.results_file:close() end
      nn.set_num_threads(1) -- one core per trial: the workers share the machine
      if not spec.show_output then C.sys_redirect(1, "/dev/null") end
      nn.manual_seed(trial.seed)
      local config = {}
      for k, v in pairs(trial.config) do config[k] = v end
      config.seed = trial.seed
      local outcome = outcome_of(spec, xpcall(spec.run, error_report, config))
      local ok, text = pcall(json.encode, outcome)
      if not ok then
        text = json.encode({status = "invalid", error = "run's metrics cannot be written: " .. text})
      end
      C.sys_write(fd, text .. "\n")
    end)
    C.sys_exit(0)
  end

  local function new_runner(spec, slots, rank)
    local runner = {count = 0, free = {}, host = C.sys_hostname() or "?"}
    local jobs = {} -- by read descriptor
    for s = slots, 1, -1 do runner.free[#runner.free + 1] = s end

    function runner.start(trial)
      local slot = table.remove(runner.free)
      local r, w = C.sys_pipe()
      if not r then raise("sweep: cannot start a trial: " .. w) end
      local now = nn.clock()
      -- Each trial leads its own process group, which ends with it: nothing
      -- a trial started (os.execute("server &"), a DataLoader's helpers)
      -- outlives it.
      local pid, err = C.sys_fork(true)
      if pid == 0 then
        C.sys_close(r)
        trial_process(spec, trial, w)
      end
      C.sys_close(w)
      if not pid then
        C.sys_close(r)
        raise("sweep: cannot start a trial process: " .. err)
      end
      jobs[r] = {trial = trial, pid = pid, fd = r, slot = slot, chunks = {}, start = now,
                 deadline = spec.time_limit and now + spec.time_limit}
      runner.count = runner.count + 1
    end

    -- Ends a job (its process has closed the pipe, or ran out of time) and
    -- returns its record.
    local function finish(job, timed_out)
      jobs[job.fd] = nil
      runner.count = runner.count - 1
      runner.free[#runner.free + 1] = job.slot
      C.sys_close(job.fd)
      -- The group's id stays reserved while its leader is unreaped: end the
      -- group (the leader too, if it ran out of time) before reaping it.
      C.sys_kill(-job.pid, "KILL")
      local how, code, signal_name = C.sys_waitpid(job.pid, true)
      local trial = job.trial
      local record = {trial = trial.index, config = trial.config, seed = trial.seed,
                      duration = tonumber(string.format("%.4f", nn.clock() - job.start)),
                      worker = job.slot, rank = rank, host = runner.host}
      local text = table.concat(job.chunks)
      local ok, outcome = pcall(json.decode, (text:match("^[^\n]*")))
      if timed_out then
        record.status = "timeout"
        record.error = string.format("the trial ran past its time limit of %g s and was killed", spec.time_limit)
      elseif ok and type(outcome) == "table" and outcome.status then
        record.status, record.metrics = outcome.status, outcome.metrics
        record.error, record.traceback = outcome.error, outcome.traceback
      else
        record.status = "failed"
        if how == "signal" then
          record.error = string.format("the trial's process died: signal %d (%s)", code, signal_name)
        else
          record.error = string.format("the trial's process exited with code %s before reporting a result",
                                       tostring(code))
        end
      end
      return record
    end

    --- wait(timeout) -> the records of trials that finished, waiting at most
    --- timeout seconds (nil: until one finishes or passes its time limit).
    function runner.wait(timeout)
      local fds, soonest = {}, nil
      for fd, job in pairs(jobs) do
        fds[#fds + 1] = fd
        if job.deadline and (not soonest or job.deadline < soonest) then soonest = job.deadline end
      end
      if soonest then
        local left = math.max(0, soonest - nn.clock())
        if not timeout or left < timeout then timeout = left end
      end
      if #fds == 0 and not timeout then return {} end
      local ready = C.sys_poll(fds, timeout) or {}
      local finished = {}
      for _, fd in ipairs(ready) do
        local job = jobs[fd]
        while job do
          local data = C.sys_read(fd)
          if data == false then break end
          if data == nil or data == "" then
            finished[#finished + 1] = finish(job, false)
            break
          end
          job.chunks[#job.chunks + 1] = data
        end
      end
      local now = nn.clock()
      for _, job in pairs(jobs) do
        if job.deadline and now >= job.deadline then finished[#finished + 1] = finish(job, true) end
      end
      return finished
    end

    function runner.kill_all()
      for _, job in pairs(jobs) do
        C.sys_kill(-job.pid, "KILL")
        C.sys_close(job.fd)
        C.sys_waitpid(job.pid, true)
      end
      jobs = {}
      runner.count = 0
    end

    return runner
  end

  ---------------------------------------------------------------------------
  -- MPI: rank 0 schedules; every rank runs trials. Messages are JSON text.
  local TAG_READY, TAG_TRIAL, TAG_RESULT, TAG_STOP = 1, 2, 3, 4

  local function mpi_context(spec)
    if spec.mpi == false then return nil end
    local under_mpirun = os.getenv("OMPI_COMM_WORLD_SIZE") or os.getenv("PMIX_RANK")
    if not under_mpirun and not spec.mpi then return nil end
    local rank, size = C.mpi_init()
    if not rank then raise("sweep: this process was started by mpirun, but MPI cannot start: " .. size) end
    return {rank = rank, size = size}
  end

  -- A rank other than 0: runs the trials rank 0 sends until told to stop,
  -- then ends the process.
  local function serve_trials(spec, mpi)
    local slots = spec.workers or 1
    local runner = new_runner(spec, slots, mpi.rank)
    C.mpi_send(0, TAG_READY, json.encode({hash = spec.hash, slots = slots, host = runner.host}))
    local stopping = false
    while not stopping do
      local text, _, tag = C.mpi_recv(false)
      if tag == TAG_TRIAL then
        local message = json.decode(text)
        runner.start({index = message.trial, config = message.config, seed = message.seed})
      elseif tag == TAG_STOP then
        stopping = true
      end
      if runner.count > 0 then
        for _, record in ipairs(runner.wait(0.002)) do C.mpi_send(0, TAG_RESULT, json.encode(record)) end
      elseif not text then
        C.sys_sleep(0.001)
      end
    end
    runner.kill_all()
    io.stdout:flush()
    C.mpi_finalize()
    os.exit(0, true)
  end

  ---------------------------------------------------------------------------
  -- Progress and the report.
  local function metric_text(v)
    if type(v) ~= "number" then return v == nil and "" or tostring(v) end
    if math.type(v) == "integer" then return tostring(v) end
    return string.format("%.4g", v)
  end

  local function value_text(v)
    if type(v) == "number" then return metric_text(v) end
    return tostring(v)
  end

  -- Sorts by the metric: best first, NaN after numbers, failed trials last.
  local function better(spec)
    return function(a, b)
      local x, y = a.value, b.value
      if (x == nil) ~= (y == nil) then return x ~= nil end
      if x == nil then return a.order < b.order end
      if (x ~= x) ~= (y ~= y) then return x == x end
      if x ~= x or x == y then return a.order < b.order end
      if spec.mode == "min" then return x < y end
      return x > y
    end
  end

  -- Progress: nn.progress's bar when it is there, plain lines otherwise.
  local function progress_reporter(spec, total, already)
    if spec.quiet or total == already then return {update = function() end, close = function() end} end
    local reporter = {}
    local P = nn.progress
    local pmt = getmetatable(P)
    if type(P) == "function" or (pmt and pmt.__call) then
      local ok, bar = pcall(P, {total = total - already, desc = "sweep"})
      if ok and type(bar) == "table" and bar.update then
        function reporter.update(_, failed, best)
          local info = {["best " .. spec.metric] = best}
          if failed > 0 then info.failed = failed end
          pcall(bar.update, bar, 1, info)
        end
        function reporter.close() if bar.close then pcall(bar.close, bar) end end
        return reporter
      end
    end
    local start, last_print = nn.clock(), -math.huge
    function reporter.update(done, failed, best)
      local now = nn.clock()
      if now - last_print < 1 and done < total then return end
      last_print = now
      local elapsed = now - start
      local rate = (done - already) / math.max(elapsed, 1e-9)
      local left = rate > 0 and (total - done) / rate or 0
      io.stderr:write(string.format("sweep: %d/%d trials%s, best %s %s, %.1f s elapsed, ~%.1f s left\n", done, total,
                                    failed > 0 and string.format(" (%d failed)", failed) or "", spec.metric,
                                    best and metric_text(best) or "-", elapsed, left))
      io.stderr:flush()
    end
    function reporter.close() end
    return reporter
  end

  -- s less its trailing white space, in one pass from the end: a column
  -- padded to the width of a long metric makes s:gsub("%s+$", "") retry
  -- the whole run of padding at each of its positions (quadratic).
  local function without_trailing_space(s)
    local last = #s
    while last > 0 do
      local b = s:byte(last)
      if b ~= 32 and (b < 9 or b > 13) then break end -- %s: space, \t \n \v \f \r
      last = last - 1
    end
    return s:sub(1, last)
  end

  local function print_table(header, rows)
    local widths = {}
    for i, h in ipairs(header) do widths[i] = #h end
    for _, row in ipairs(rows) do
      for i, cell in ipairs(row) do widths[i] = math.max(widths[i], #cell) end
    end
    local function line(cells)
      local parts = {}
      for i, cell in ipairs(cells) do parts[i] = cell .. string.rep(" ", widths[i] - #cell) end
      print(without_trailing_space("  " .. table.concat(parts, "  ")))
    end
    line(header)
    for _, row in ipairs(rows) do line(row) end
  end

  local function mean_and_std(values)
    local n = #values
    if n == 0 then return nil, nil end
    local sum = 0
    for _, v in ipairs(values) do sum = sum + v end
    local mean = sum / n
    if n < 2 then return mean, nil end
    local squares = 0
    for _, v in ipairs(values) do squares = squares + (v - mean) ^ 2 end
    return mean, math.sqrt(squares / (n - 1)) -- the unbiased estimate, as torch.std
  end

  -- Groups the trials of each setting over its seeds.
  local function summarize(spec, trials, records)
    local by_setting, settings = {}, {}
    for _, t in ipairs(trials) do
      if not by_setting[t.setting] then
        by_setting[t.setting] = {config = t.config, trials = {}, values = {}, seeds = 0, ok = 0,
                                 order = #settings + 1}
        settings[#settings + 1] = by_setting[t.setting]
      end
      by_setting[t.setting].seeds = by_setting[t.setting].seeds + 1
    end
    for _, r in ipairs(records) do
      local s = by_setting[trials[r.trial].setting]
      s.trials[#s.trials + 1] = r
      if r.status == "ok" then
        s.ok = s.ok + 1
        s.values[#s.values + 1] = r.metrics[spec.metric]
      end
    end
    for _, s in ipairs(settings) do
      table.sort(s.trials, function(a, b) return a.seed < b.seed end)
      s.mean, s.std = mean_and_std(s.values)
      s.value = s.mean
    end
    table.sort(settings, better(spec))
    return settings
  end

  local function config_text(spec, config)
    local parts = {}
    for _, name in ipairs(spec.names) do parts[#parts + 1] = name .. "=" .. value_text(config[name]) end
    return table.concat(parts, " ")
  end

  local function print_report(spec, result, elapsed, workers)
    local counts = result.counts
    -- a trial is a setting run with one seed: say so where the count is a product
    local product = #spec.seeds > 1 and string.format("%d settings x %d seeds; ", #result.settings, #spec.seeds) or ""
    print(string.format("\nsweep: %d trials (%s%d ok, %d failed, %d timed out) in %.1f s with %d worker%s; results in %s",
                        #result.trials, product, counts.ok, counts.failed, counts.timeout, elapsed, workers,
                        workers == 1 and "" or "s", spec.file))
    local extra, seen = {}, {[spec.metric] = true}
    for _, r in ipairs(result.trials) do
      for k in pairs(r.metrics or {}) do
        if not seen[k] then seen[k] = true; extra[#extra + 1] = k end
      end
    end
    table.sort(extra)
    local show = spec.show or 20
    local header = {"#"}
    for _, name in ipairs(spec.names) do header[#header + 1] = name end
    for _, h in ipairs {"seed", spec.metric} do header[#header + 1] = h end
    for _, k in ipairs(extra) do header[#header + 1] = k end
    for _, h in ipairs {"status", "time"} do header[#header + 1] = h end
    local rows = {}
    for i, r in ipairs(result.trials) do
      if i > show then break end
      local row = {tostring(i)}
      for _, name in ipairs(spec.names) do row[#row + 1] = value_text(r.config[name]) end
      row[#row + 1] = tostring(r.seed)
      local m = r.metrics or {}
      row[#row + 1] = metric_text(m[spec.metric])
      for _, k in ipairs(extra) do row[#row + 1] = metric_text(m[k]) end
      row[#row + 1] = r.status
      row[#row + 1] = string.format("%.2fs", r.duration or 0)
      rows[#rows + 1] = row
    end
    print("\ntrials, best " .. spec.metric .. " first:")
    print_table(header, rows)
    if #result.trials > show then
      print(string.format(" ... and %d more in %s", #result.trials - show, spec.file))
    end

    if #spec.seeds > 1 then
      header = {"#"}
      for _, name in ipairs(spec.names) do header[#header + 1] = name end
      for _, h in ipairs {spec.metric .. " mean", "std", "seeds ok"} do header[#header + 1] = h end
      rows = {}
      for i, s in ipairs(result.settings) do
        if i > show then break end
        local row = {tostring(i)}
        for _, name in ipairs(spec.names) do row[#row + 1] = value_text(s.config[name]) end
        row[#row + 1] = s.mean and metric_text(s.mean) or "-"
        row[#row + 1] = s.std and metric_text(s.std) or "-"
        row[#row + 1] = string.format("%d/%d", s.ok, s.seeds)
        rows[#rows + 1] = row
      end
      print("\nsettings over seeds, best mean first:")
      print_table(header, rows)
    end

    local failures = 0
    for _, r in ipairs(result.trials) do
      if r.status ~= "ok" then
        if failures == 0 then print("\ntrials that did not finish:") end
        failures = failures + 1
        if failures <= 10 then
          print(string.format(" %s seed=%d: %s: %s", config_text(spec, r.config), r.seed, r.status,
                              (tostring(r.error or "")):match("^[^\n]*")))
        end
      end
    end
    if failures > 10 then print(string.format(" ... and %d more", failures - 10)) end

    local best = result.best
    if best and best.mean then
      print(string.format("\nbest: %s: %s %s%s over %d seed%s", config_text(spec, best.config), spec.metric,
                          metric_text(best.mean), best.std and " ± " .. metric_text(best.std) or "", best.ok,
                          best.ok == 1 and "" or "s"))
    else
      print("\nbest: none (no trial finished)")
    end
  end

  -- One picture per parameter: the metric of every finished trial against
  -- the parameter's value (categories at 1, 2, ..., coloured, and named on
  -- the axis), through nn.plot.scatter when it is there.
  local function draw_pictures(spec, result)
    if spec.plot == false then return end
    local scatter = type(nn.plot) == "table" and nn.plot.scatter
    if not scatter then
      print("(no pictures: nn.plot.scatter is not available)")
      return
    end
    local prefix = type(spec.plot) == "string" and spec.plot or spec.file:gsub("%.[^./]*$", "")
    for _, name in ipairs(spec.names) do
      local p = spec.parameters[name]
      local values = p.values
      local categories = values and type(values[1]) ~= "number"
      local position = {}
      if categories then
        for i, v in ipairs(values) do position[json.encode(v)] = i end
      end
      local xs, ys, class = {}, {}, categories and {} or nil
      for _, r in ipairs(result.trials) do
        local y = r.metrics and r.metrics[spec.metric]
        local x = r.config[name]
        if categories then x = position[json.encode(x)] end
        if r.status == "ok" and type(x) == "number" and type(y) == "number" and y == y and math.abs(y) < math.huge then
          xs[#xs + 1], ys[#ys + 1] = x, y
          if class then class[#class + 1] = x end
        end
      end
      if #xs > 0 then
        local labels
        if categories then
          labels = {}
          for i, v in ipairs(values) do labels[i] = tostring(v) end
        end
        -- Log axes where the values span orders of magnitude (learning
        -- rates, losses); a margin so that no point sits on the frame.
        local function extent(list)
          local lo, hi = math.huge, -math.huge
          for _, v in ipairs(list) do lo, hi = math.min(lo, v), math.max(hi, v) end
          return lo, hi
        end
        local x_lo, x_hi = extent(xs)
        local y_lo, y_hi = extent(ys)
        local logx = not categories and x_lo > 0 and (p.distribution == "log_uniform" or x_hi / x_lo >= 10)
        local logy = y_lo > 0 and y_hi / y_lo >= 100
        local xrange
        if categories then
          xrange = {0.5, #values + 0.5}
        elseif logx then
          xrange = {x_lo / 1.25, x_hi * 1.25}
        else
          local margin = x_hi > x_lo and (x_hi - x_lo) * 0.05 or math.max(math.abs(x_lo) * 0.05, 1)
          xrange = {x_lo - margin, x_hi + margin}
        end
        local path = prefix .. "_" .. name .. ".png"
        local legend -- the default, unless the axis names the categories
        if categories then legend = false end
        local ok, err = pcall(scatter, {
          x = xs, y = ys, class = class, labels = labels, out = path, xrange = xrange,
          title = string.format("%s: %s against %s (%s is better)", spec.name, spec.metric, name,
                                spec.mode == "min" and "lower" or "higher"),
          xlabel = name, ylabel = spec.metric, xcategories = labels,
          legend = legend,
          logx = logx or nil, logy = logy or nil})
        if ok then print("picture: " .. path) else print("(no picture for " .. name .. ": " .. tostring(err) .. ")") end
      end
    end
  end

  ---------------------------------------------------------------------------
  -- The scheduler.
  local function schedule(spec, mpi)
    local trials, setting_count = enumerate(spec)
    if setting_count < spec.trials and not spec.quiet then
      io.stderr:write(string.format("sweep: the parameters hold only %d different setting%s, not the %d trials "
                                    .. "asked for\n", setting_count, setting_count == 1 and "" or "s", spec.trials))
    end
    local results = open_results(spec, trials)
    spec.results_file = results.file
    if results.damaged > 0 and not spec.quiet then
      io.stderr:write(string.format("sweep: ignoring %d damaged or foreign line%s in %s\n", results.damaged,
                                    results.damaged == 1 and "" or "s", spec.file))
    end
    local pending = {}
    for _, t in ipairs(trials) do
      if not results.done[t.key] then pending[#pending + 1] = t end
    end
    local next_pending = 1
    local rank = mpi and 0 or nil
    local local_slots = spec.workers or (mpi and 1) or C.sys_cpu_count()
    local runner = new_runner(spec, math.max(1, math.min(local_slots, #pending)), rank)
    local remote, remote_count, stopped = {}, mpi and mpi.size - 1 or 0, 0
    local counts = {ok = 0, failed = 0, timeout = 0}
    local best
    for _, r in ipairs(results.records) do
      counts[r.status] = (counts[r.status] or 0) + 1
      local v = r.status == "ok" and r.metrics and r.metrics[spec.metric]
      if type(v) == "number" and v == v and (not best or (spec.mode == "min" and v < best)
                                             or (spec.mode == "max" and v > best)) then best = v end
    end
    local progress = progress_reporter(spec, #trials, #results.records)
    local start = nn.clock()

    local function record(r)
      local trial = trials[r.trial]
      if not trial or results.done[trial.key] then return end
      if r.status == "invalid" then raise("sweep: " .. tostring(r.error)) end
      r.config, r.seed = trial.config, trial.seed -- the scheduler's own copy is the reference
      append_record(results, r)
      results.done[trial.key] = r
      results.records[#results.records + 1] = r
      counts[r.status] = (counts[r.status] or 0) + 1
      local v = r.status == "ok" and r.metrics[spec.metric]
      if type(v) == "number" and v == v and (not best or (spec.mode == "min" and v < best)
                                             or (spec.mode == "max" and v > best)) then best = v end
      progress.update(#results.records, counts.failed + counts.timeout, best)
    end

    local function handle_message(text, source, tag)
      local message = json.decode(text)
      if tag == TAG_READY then
        if message.hash ~= spec.hash then
          raise(string.format("sweep: rank %d runs a different sweep definition than rank 0 "
                              .. "(every rank must run the same script)", source))
        end
        remote[source] = {free = message.slots, busy = 0}
      elseif tag == TAG_RESULT then
        remote[source].free = remote[source].free + 1
        remote[source].busy = remote[source].busy - 1
        record(message)
      end
    end

    local function stop_remote()
      for r = 1, remote_count do
        if not (remote[r] and remote[r].stopped) then
          C.mpi_send(r, TAG_STOP, "")
          remote[r] = remote[r] or {free = 0, busy = 0}
          remote[r].stopped = true
        end
      end
    end

    local function loop()
      while true do
        while next_pending <= #pending and #runner.free > 0 do
          runner.start(pending[next_pending])
          next_pending = next_pending + 1
        end
        for r, w in pairs(remote) do
          while next_pending <= #pending and w.free > 0 and not w.stopped do
            local t = pending[next_pending]
            next_pending = next_pending + 1
            C.mpi_send(r, TAG_TRIAL, json.encode({trial = t.index, config = t.config, seed = t.seed}))
            w.free, w.busy = w.free - 1, w.busy + 1
          end
          if next_pending > #pending and w.busy == 0 and not w.stopped then
            C.mpi_send(r, TAG_STOP, "")
            w.stopped = true
            stopped = stopped + 1
          end
        end
        if runner.count == 0 and next_pending > #pending and stopped == remote_count then break end
        local finished = runner.wait(remote_count > stopped and 0.002 or nil)
        for _, r in ipairs(finished) do record(r) end
        if remote_count > 0 then
          while true do
            local text, source, tag = C.mpi_recv(false)
            if not text then break end
            handle_message(text, source, tag)
          end
        end
      end
    end

    local ok, err = xpcall(loop, function(e) return e end)
    if not ok then
      runner.kill_all()
      if remote_count > 0 then pcall(stop_remote) end
      progress.close()
      C.sys_sync_wait()
      results.file:close()
      error(err, 0)
    end
    progress.close()
    local synced, sync_err = C.sys_sync_wait()
    results.file:close()
    if not synced then raise("sweep: cannot write the results file " .. spec.file .. ": " .. sync_err) end

    -- The result: every trial (sorted by the metric) and every setting.
    local elapsed = nn.clock() - start
    local order = {}
    for _, r in ipairs(results.records) do
      r.order = r.trial
      r.value = r.status == "ok" and r.metrics and r.metrics[spec.metric] or nil
      order[#order + 1] = r
    end
    table.sort(order, better(spec))
    for _, r in ipairs(order) do r.order, r.value = nil, nil end
    local settings = summarize(spec, trials, order)
    for _, s in ipairs(settings) do s.values, s.order, s.value = nil, nil, nil end
    local result = {trials = order, settings = settings, best = settings[1] and settings[1].mean and settings[1] or nil,
                    counts = counts, file = spec.file, metric = spec.metric, mode = spec.mode}
    if not spec.quiet then
      print_report(spec, result, elapsed, runner.count + #runner.free + remote_count * (spec.workers or 1))
      local drew, plot_err = pcall(draw_pictures, spec, result)
      if not drew then print("(no pictures: " .. tostring(plot_err) .. ")") end
    end
    return result
  end

  --- nn.sweep(definition) -> result: runs a hyperparameter sweep: every
  --- setting of the parameters, each with every seed (a trial), in parallel
  --- worker processes (under mpirun, on every rank), appending one JSON line
  --- per finished trial to a results file; run again, it resumes. Then it
  --- prints a table of the trials and settings and draws the metric against
  --- each parameter.
  ---   local result = nn.sweep {
  ---     parameters = {lr = nn.sweep.log_uniform(1e-3, 1), hidden = {4, 8}},
  ---     trials = 10, seeds = 3, metric = "loss", mode = "min",
  ---     file = "sweep.jsonl",
  ---     run = function(config) ... return {loss = final_loss} end,
  ---   }
  --- The definition's fields:
  ---   parameters  name -> a list of values (every value is tried: a grid) or
  ---               a distribution (nn.sweep.uniform, log_uniform, int,
  ---               choice: random search); required
  ---   run         run(config) trains with config.<name> and config.seed and
  ---               returns a table of metrics (numbers, strings, booleans);
  ---               it runs in a forked copy of the process, after
  ---               nn.manual_seed(seed), its printing discarded; required
  ---   metric      the metric to compare settings by; required
  ---   file        the results file (one JSON line per trial); required
  ---   mode        "min" (lower is better, the default) or "max"
  ---   trials      with distributions, how many settings to draw in all (the
  ---               grid's values are taken in turn); required with them
  ---   seeds       a count (3: seeds 1, 2, 3) or a list of integers; default 1
  ---   workers     trials at once (default: the cores; 1 per rank under mpirun)
  ---   time_limit  seconds a trial may take before it is killed and recorded
  ---               as timed out
  ---   search_seed the seed of the random draws (default 1)
  ---   show        rows of the printed tables (default 20)
  ---   quiet       print nothing; show_output: let the trials print
  ---   plot        false (no pictures), or the prefix of the pictures' names
  ---               (default: the results file's name without its extension)
  ---   name        the sweep's name, in titles
  --- A trial that raises, crashes or runs out of time is recorded as failed
  --- or timed out and the sweep goes on. The result is {trials = records,
  --- best first, settings = {config, mean, std (std nil for one seed), ok,
  --- seeds, trials} per setting, best first, best = settings[1], counts =
  --- {ok, failed, timeout}, file}; a record is {trial, config, seed, status
  --- = "ok"|"failed"|"timeout", metrics, duration, worker, host, error}.
  local function run_sweep(definition)
    local spec = check_definition(definition)
    local mpi = mpi_context(spec)
    if mpi and mpi.rank > 0 then return serve_trials(spec, mpi) end
    return schedule(spec, mpi)
  end

  --- nn.sweep.read(file) -> header, records: the results file of a sweep, decoded.
  function sweep.read(path)
    local f, err = io.open(path, "rb")
    if not f then raise("sweep.read: " .. err) end
    local header, records = nil, {}
    for line in f:lines() do
      if line:find("%S") then
        local ok, v = pcall(json.decode, line)
        if ok and type(v) == "table" then
          if not header then header = v else records[#records + 1] = v end
        end
      end
    end
    f:close()
    if not header or header.nnlua_sweep == nil then raise("sweep.read: " .. path .. " is not a results file of nn.sweep") end
    return header, records
  end

  nn.sweep = setmetatable(sweep, {__call = function(_, definition) return run_sweep(definition) end})
end

-- nn.plot: pictures from tensors and Lua tables, drawn by gnuplot.
--
--   nn.plot.lines{x = xs, y = {{label = "sigmoid", y = s}, {label = "tanh", y = t}},
--                 title = "activations", xlabel = "x", ylabel = "f(x)", out = "act.png"}
--   nn.plot.scatter{x = X:select(2, 1), y = X:select(2, 2), class = labels, out = "data.svg"}
--   nn.plot.heatmap{z = probabilities, x = {-2, 2}, y = {-2, 2}, points = {...}, out = "regions.png"}
--   nn.plot.lines{y = losses, out = "term"}     -- a text picture at the prompt
--   nn.plot.histogram{x = model[1].weight, bins = 40, out = "weights.png"}
--   nn.plot.bar{y = accuracies, categories = {"sigmoid", "tanh"}, out = "acc.png"}
--   nn.plot.image{image = batch, labels = names, out = "images.png"}   -- N x C x H x W
--   nn.plot.panels{{kind = "lines", ...}, {kind = "histogram", ...}, out = "both.png"}
--
-- A file picture (out = "name.png" or "name.svg") is written under a temporary
-- name in the same directory and renamed once gnuplot has finished it, so a
-- failure never leaves half a picture behind; the function returns the path.
--
-- gnuplot runs as a subprocess on a script file that holds the data inline.
-- User text (titles, labels) reaches gnuplot only inside single-quoted
-- strings, where gnuplot substitutes nothing (no `command`, no @macro); paths
-- reach the shell only inside shell single quotes.
return function(nn)
  local raise = nn._raise

--- nn.plot: pictures from tensors and Lua tables, drawn by gnuplot:
-- nn.plot.lines (curves), scatter (points by class), heatmap (a grid of
-- values, decision regions), histogram, bar (named categories), image (a
-- tensor H x W, C x H x W or a batch, the right way up) and panels (several
-- of these in one picture). Each takes one table of options; out =
-- "name.png" or "name.svg" writes a file and returns its path, out = "term"
-- (the default) prints a text picture. help(nn.plot.lines) and the others
-- list their options.
--   nn.plot.lines{y = {{label = "train", y = train_loss}, {label = "test", y = test_loss}},
--                 logy = true, xlabel = "epoch", out = "loss.png"}
  local plot = {}
  nn.plot = plot

  --- nn.plot.gnuplot: the gnuplot program nn.plot runs (default "gnuplot", found on PATH).
  plot.gnuplot = "gnuplot"

  -- matplotlib's "tab10" colours, which a learner has likely seen already;
  -- LIGHT holds the pale version of each, for regions under points.
  local COLORS = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
                  "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"}
  local LIGHT = {"#aec7e8", "#ffbb78", "#98df8a", "#ff9896", "#c5b0d5",
                 "#c49c94", "#f7b6d2", "#c7c7c7", "#dbdb8d", "#9edae5"}
  -- Filled point shapes (circle, square, triangle, diamond, down triangle)
  -- and their outlines, so that classes differ by shape as well as colour.
  local FILLED = {7, 5, 9, 13, 11}
  local OUTLINE = {6, 4, 8, 12, 10}
  -- The marks of the series of a text picture with more than 8 of them.
  local SERIES_MARKS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
  -- The marks of classes in a text picture; none is among heatmap's shades.
  local POINT_CHARS = {"o", "x", "#", "&", "$", "v", "^", "s", "z", "w"}

  local LEGENDS = {
    ["outside"] = "set key outside right top reverse Left",
    ["top left"] = "set key inside left top reverse Left opaque",
    ["top right"] = "set key inside right top reverse Left opaque",
    ["bottom left"] = "set key inside left bottom reverse Left opaque",
    ["bottom right"] = "set key inside right bottom reverse Left opaque",
    ["below"] = "set key below",
  }

  local PALETTES = {
    diverging = "set palette defined (0 '#6fa8dc', 0.5 '#f7f7f7', 1 '#f6b26b')",
    viridis = "set palette defined (0 '#440154', 0.25 '#3b528b', 0.5 '#21918c', "
      .. "0.75 '#5ec962', 1 '#fde725')",
    gray = "set palette gray",
  }

  ---------------------------------------------------------------------------
  -- Quoting

  local function shell_quote(s)
    return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
  end

  -- A gnuplot string expression holding s literally: single-quoted pieces
  -- (a quote doubled inside), joined by "\n" where s has line breaks. Other
  -- control characters become spaces: they would end a script line.
  local function gp_string_only(s)
    s = tostring(s):gsub("\r\n", "\n"):gsub("%c", function(c) return c == "\n" and c or " " end)
    local pieces = {}
    for line in (s .. "\n"):gmatch("(.-)\n") do
      pieces[#pieces + 1] = "'" .. line:gsub("'", "''") .. "'"
    end
    return table.concat(pieces, ' . "\\n" . ')
  end

  -- The same, shown as written: '_' and '^' stay characters, not sub- and
  -- superscripts (the terminals are "enhanced" only for the tick labels).
  local function gp_string(s)
    return gp_string_only(s) .. " noenhanced"
  end

  ---------------------------------------------------------------------------
  -- Checking the data

  local function shape_of(t)
    local dims = {}
    for d = 1, t:dim() do dims[d] = tostring(t:size(d)) end
    return "(" .. table.concat(dims, ", ") .. ")"
  end

  local function check_numbers(list, what, fname)
    for i = 1, #list do
      local v = list[i]
      if type(v) ~= "number" then
        raise(string.format("%s: %s[%d] is a %s, not a number", fname, what, i, type(v)))
      end
    end
  end

  -- A list of numbers from a tensor (any shape with one long side: (N),
  -- (N, 1), (1, N)) or a Lua list.
  local function numbers(v, what, fname)
    local list
    if nn.is_tensor(v) then
      local long = 0
      for d = 1, v:dim() do if v:size(d) ~= 1 then long = long + 1 end end
      if long > 1 then
        raise(string.format("%s: %s must be a vector, got a tensor of shape %s", fname, what, shape_of(v)))
      end
      if v.device ~= "cpu" then v = v:cpu() end
      if v.dtype == "bool" then v = v:float() end
      list = v:numel() > 0 and v:reshape(v:numel()):totable() or {}
    elseif type(v) == "table" then
      list = v
      check_numbers(list, what, fname)
    else
      raise(string.format("%s: %s must be a tensor or a list of numbers, got %s", fname, what, type(v)))
    end
    if #list == 0 then raise(string.format("%s: %s is empty", fname, what)) end
    return list
  end

  -- Rows of numbers from a 2-D tensor or a list of equally long lists.
  local function matrix(v, what, fname)
    local rows
    if nn.is_tensor(v) then
      if v:dim() ~= 2 then
        raise(string.format("%s: %s must be a 2-D tensor, got shape %s", fname, what, shape_of(v)))
      end
      if v:numel() == 0 then raise(string.format("%s: %s is empty", fname, what)) end
      if v.device ~= "cpu" then v = v:cpu() end
      if v.dtype == "bool" then v = v:float() end
      rows = v:totable()
    elseif type(v) == "table" then
      rows = v
      if #rows == 0 or type(rows[1]) ~= "table" or #rows[1] == 0 then
        raise(string.format("%s: %s must be a 2-D tensor or a non-empty list of rows", fname, what))
      end
      for i = 1, #rows do
        if type(rows[i]) ~= "table" then
          raise(string.format("%s: %s[%d] is a %s, not a row of numbers", fname, what, i, type(rows[i])))
        end
        if #rows[i] ~= #rows[1] then
          raise(string.format("%s: %s[%d] has %d values but %s[1] has %d", fname, what, i,
            #rows[i], what, #rows[1]))
        end
        check_numbers(rows[i], string.format("%s[%d]", what, i), fname)
      end
    else
      raise(string.format("%s: %s must be a 2-D tensor or a list of rows, got %s", fname, what, type(v)))
    end
    return rows
  end

  local function same_length(a, b, a_what, b_what, fname)
    if #a ~= #b then
      raise(string.format("%s: %s has %d values but %s has %d", fname, a_what, #a, b_what, #b))
    end
  end

  local function check_range(v, what, fname)
    if v == nil then return nil end
    if type(v) ~= "table" or type(v[1]) ~= "number" or type(v[2]) ~= "number"
        or v[1] ~= v[1] or v[2] ~= v[2] or not (v[1] < v[2]) then
      raise(string.format("%s: %s must be {low, high} with low < high", fname, what))
    end
    return v
  end

  local function check_string(v, what, fname)
    if v ~= nil and type(v) ~= "string" and type(v) ~= "number" then
      raise(string.format("%s: %s must be a string, got %s", fname, what, type(v)))
    end
    return v
  end

  ---------------------------------------------------------------------------
  -- Writing data

  -- A number as gnuplot reads it; anything not finite becomes NaN, which
  -- gnuplot skips (a line breaks there). So does a value a log axis cannot show.
  local function fmt(v, log)
    if v ~= v or v == math.huge or v == -math.huge or (log and v <= 0) then return "NaN" end
    return string.format("%.10g", v)
  end

  -- The smallest and largest positive value in the lists (for a log axis);
  -- nil when there is none.
  local function positive_extent(lists, fname, axis)
    local lo, hi = math.huge, 0
    for _, list in ipairs(lists) do
      for i = 1, #list do
        local v = list[i]
        if v > 0 and v < math.huge then lo, hi = math.min(lo, v), math.max(hi, v) end
      end
    end
    if hi == 0 then
      raise(string.format("%s: log%s needs positive %s values; every %s is zero or negative",
        fname, axis, axis, axis))
    end
    return {lo, hi}
  end

  -- Appends an inline data block named $name holding the given columns.
  local function datablock(script, name, columns, logs)
    script[#script + 1] = "$" .. name .. " << EOD"
    local n = #columns[1]
    local row = {}
    for i = 1, n do
      for c = 1, #columns do row[c] = fmt(columns[c][i], logs and logs[c]) end
      script[#script + 1] = table.concat(row, " ")
    end
    script[#script + 1] = "EOD"
  end

  ---------------------------------------------------------------------------
  -- Output

  local gnuplot_found = {}

  local function check_gnuplot(fname)
    local program = plot.gnuplot
    if type(program) ~= "string" or program == "" then
      raise(fname .. ": nn.plot.gnuplot must name the gnuplot program, got " .. tostring(program))
    end
    if gnuplot_found[program] == nil then
      gnuplot_found[program] = os.execute("command -v " .. shell_quote(program) .. " >/dev/null 2>&1") == true
    end
    if not gnuplot_found[program] then
      raise(string.format("%s: gnuplot not found (nn.plot.gnuplot = '%s'); install it: "
        .. "apt-get install gnuplot-nox", fname, program))
    end
  end

  -- The size of the terminal as columns, rows; 80, 24 when there is none.
  local function terminal_size()
    local cols, rows = tonumber(os.getenv("COLUMNS") or ""), tonumber(os.getenv("LINES") or "")
    if not (cols and rows) then
      local c, r = nn._C.sys_terminal_width(1)
      rows, cols = rows or r, cols or c
    end
    if not cols or cols < 20 then cols = 80 end
    if not rows or rows < 8 then rows = 24 end
    return cols, rows
  end

  local function stdout_is_colour_terminal()
    if os.getenv("NO_COLOR") or os.getenv("TERM") == "dumb" or not os.getenv("TERM") then return false end
    return nn._C.sys_isatty(1)
  end

  local function picture_kind(out, fname)
    if type(out) ~= "string" or out == "" then
      raise(fname .. ": out must be a file name ending in .png or .svg, or \"term\", got " .. tostring(out))
    end
    if out == "term" then return "term" end
    local ext = out:match("%.([%w]+)$")
    ext = ext and ext:lower()
    if ext ~= "png" and ext ~= "svg" then
      raise(string.format("%s: cannot write '%s': unknown picture type '%s' (use .png, .svg or out = \"term\")",
        fname, out, ext and ("." .. ext) or "(no extension)"))
    end
    return ext
  end

  local function size_option(v, default, what, fname)
    if v == nil then return default end
    if type(v) ~= "number" or v ~= math.floor(v) or v < 1 or v > 20000 then
      raise(string.format("%s: %s must be a whole number from 1 to 20000, got %s", fname, what, tostring(v)))
    end
    return math.tointeger(v)
  end

  local function file_bytes(path)
    local f = io.open(path, "rb")
    if not f then return nil end
    local text = f:read("a")
    f:close()
    return text
  end

  -- gnuplot's own words, when it fails: its last few lines.
  local function gnuplot_message(output)
    local lines = {}
    for line in output:gmatch("[^\n]+") do
      if line:match("%S") then lines[#lines + 1] = line end
    end
    local first = math.max(1, #lines - 2)
    return table.concat(lines, "\n", first, #lines)
  end

  -- Runs gnuplot on the script; returns true, or false and its message.
  local function run_gnuplot(script_path, text)
    local f = assert(io.open(script_path, "wb"))
    f:write(text)
    f:close()
    local p = io.popen(shell_quote(plot.gnuplot) .. " " .. shell_quote(script_path) .. " 2>&1", "r")
    if not p then return false, "could not start gnuplot" end
    local output = p:read("a") or ""
    local ok, how, status = p:close()
    if not ok then
      local message = gnuplot_message(output)
      if message == "" then message = string.format("it %s with status %s and said nothing",
        how == "signal" and "was killed" or "exited", tostring(status)) end
      return false, message
    end
    return true
  end

  -- A base-10 log axis. Where the values span two decades or more, a file
  -- picture labels the powers of ten as 10^k (superscript), with minor ticks
  -- between them; otherwise the labels are plain numbers.
  local function log_axis(lines, axis, extent, range, kind)
    lines[#lines + 1] = string.format("set logscale %s 10", axis)
    lines[#lines + 1] = string.format("set format %s '%%g'", axis)
    local lo, hi = extent[1], extent[2]
    if range then lo, hi = range[1], range[2] end
    if kind == "term" or not (lo and hi and lo > 0 and hi > 0) then return end
    local first, last = math.floor(math.log(lo, 10) + 1e-9), math.ceil(math.log(hi, 10) - 1e-9)
    if last - first < 2 then return end
    local step = math.max(1, math.ceil((last - first) / 10))
    local ticks = {}
    for k = first, last, step do
      ticks[#ticks + 1] = string.format("'10^{%d}' 1e%d", k, k)
    end
    lines[#lines + 1] = string.format("set %stics (%s)", axis, table.concat(ticks, ", "))
    if step == 1 then lines[#lines + 1] = string.format("set m%stics 10", axis) end
  end

  -- The terminal and the output of a picture. Also says whether the
  -- picture has colours (not so for text off a terminal).
  local function terminal_lines(o, kind, fname, output_path, default_size)
    local lines = {}
    local colour = true
    if kind == "term" then
      local cols, rows = terminal_size()
      local width = size_option(o.width, cols, "width", fname)
      local height = size_option(o.height, math.min(rows - 1, 40), "height", fname)
      colour = stdout_is_colour_terminal()
      lines[#lines + 1] = string.format("set terminal dumb noenhanced nofeed size %d,%d %s",
        width, height, colour and "ansi256" or "mono")
    else
      local width = size_option(o.width, default_size and default_size[1] or 800, "width", fname)
      local height = size_option(o.height, default_size and default_size[2] or 500, "height", fname)
      if kind == "png" then
        -- pngcairo draws smooth lines and text; the libgd png terminal is the fallback.
        lines[#lines + 1] = string.format("if (strstrt(GPVAL_TERMINALS, 'pngcairo') > 0) "
          .. "{ set terminal pngcairo enhanced size %d,%d font 'sans,11' } "
          .. "else { set terminal png enhanced size %d,%d }", width, height, width, height)
      else
        lines[#lines + 1] = string.format("set terminal svg enhanced size %d,%d font 'sans,11' "
          .. "background '#ffffff'", width, height)
      end
    end
    lines[#lines + 1] = "set output " .. gp_string_only(output_path)
    return lines, colour
  end

  -- Category names on the x axis: the values 1, 2, ..., K are named.
  local function category_tics(names)
    local tics = {}
    for k, name in ipairs(names) do tics[k] = gp_string_only(name) .. " " .. k end
    local long = 0
    for _, name in ipairs(names) do long = math.max(long, #tostring(name)) end
    -- long names, or many, lean so that they do not run into each other
    local rotate = (long * #names > 60) and " rotate by -30" or ""
    return "set xtics (" .. table.concat(tics, ", ") .. ") nomirror noenhanced" .. rotate
  end

  -- What every plot of a picture (each panel) sets: titles, axes, grid.
  local function axes_lines(lines, o, kind, extent)
    if o.title ~= nil then lines[#lines + 1] = "set title " .. gp_string(o.title) end
    if o.xlabel ~= nil then lines[#lines + 1] = "set xlabel " .. gp_string(o.xlabel) end
    if o.ylabel ~= nil then lines[#lines + 1] = "set ylabel " .. gp_string(o.ylabel) end
    if o.logx then log_axis(lines, "x", extent.x, o.xrange, kind) end
    if o.logy then log_axis(lines, "y", extent.y, o.yrange, kind) end
    if o.xrange then lines[#lines + 1] = string.format("set xrange [%s:%s]", fmt(o.xrange[1]), fmt(o.xrange[2])) end
    if o.yrange then lines[#lines + 1] = string.format("set yrange [%s:%s]", fmt(o.yrange[1]), fmt(o.yrange[2])) end
    if o.xcategories then lines[#lines + 1] = category_tics(o.xcategories) end
    if kind ~= "term" then
      lines[#lines + 1] = "set grid back linecolor rgb '#e5e5e5' linewidth 1"
      lines[#lines + 1] = "set border linecolor rgb '#404040'"
    end
  end

  local function legend_line(o, kind, fname)
    local legend = o.legend
    if legend == false or legend == "none" then return "unset key" end
    if legend == nil then return kind == "term" and LEGENDS["below"] or LEGENDS["outside"] end
    local line = LEGENDS[legend]
    if not line then
      raise(string.format("%s: legend must be one of \"outside\", \"top left\", \"top right\", "
        .. "\"bottom left\", \"bottom right\", \"below\", \"none\" or false, got %s", fname, tostring(legend)))
    end
    return line
  end

  -- Names for the values 1..K of an axis: a list of strings (or numbers).
  local function check_categories(v, what, fname)
    if v == nil then return nil end
    if type(v) ~= "table" or nn.is_tensor(v) or #v == 0 then
      raise(string.format("%s: %s must be a list of names, one for each value 1, 2, ..., K", fname, what))
    end
    for i = 1, #v do check_string(v[i], string.format("%s[%d]", what, i), fname) end
    return v
  end

  local function check_common(o, fname)
    if type(o) ~= "table" then
      raise(fname .. ": expected a table of options, like " .. fname .. "{y = values, out = \"plot.png\"}")
    end
    for _, key in ipairs {"title", "xlabel", "ylabel"} do check_string(o[key], key, fname) end
    check_range(o.xrange, "xrange", fname)
    check_range(o.yrange, "yrange", fname)
    check_categories(o.xcategories, "xcategories", fname)
    local kind = picture_kind(o.out == nil and "term" or o.out, fname)
    check_gnuplot(fname)
    return kind
  end

  -- Draws: builds the script from the terminal lines, then each panel's
  -- axes, data and plot command (a panel: {o =, body =, extent =}; body
  -- appends to the script), runs gnuplot, and puts the picture in place.
  -- One panel is a plain picture; several share it in a grid (layout =
  -- {rows, columns}) under o.title, through gnuplot's multiplot.
  -- default_size: {width, height} in pixels when o does not say.
  local function draw(o, kind, fname, panels, layout, default_size)
    local out = o.out == nil and "term" or o.out
    local script_path = os.tmpname() -- a unique name, created empty by mkstemp
    local token = script_path:match("([^/]+)$"):gsub("[^%w]", "")
    local picture_path, cleanup

    if kind == "term" then
      picture_path = script_path .. ".txt"
      cleanup = function() os.remove(script_path); os.remove(picture_path) end
    else
      local dir, base = out:match("^(.*)/([^/]*)$")
      if not dir then dir, base = ".", out end
      if dir == "" then dir = "/" end
      if base == "" then
        os.remove(script_path)
        raise(string.format("%s: cannot write '%s': it names a directory, not a file", fname, out))
      end
      picture_path = (dir == "/" and "/" or dir .. "/") .. "." .. base .. "." .. token .. ".part"
      local probe, err = io.open(picture_path, "wb")
      if not probe then
        os.remove(script_path)
        raise(string.format("%s: cannot write '%s': %s", fname, out, (err or ""):match(": ([^:]*)$") or err))
      end
      probe:close()
      cleanup = function() os.remove(script_path); os.remove(picture_path) end
    end

    local ok_script, script = pcall(function()
      local lines, colour = terminal_lines(o, kind, fname, picture_path, default_size)
      if not layout then
        axes_lines(lines, panels[1].o, kind, panels[1].extent or {})
        panels[1].body(lines, colour)
        return lines
      end
      local title = o.title ~= nil and (" title " .. gp_string(o.title)) or ""
      lines[#lines + 1] = string.format("set multiplot layout %d,%d%s", layout[1], layout[2], title)
      for _, panel in ipairs(panels) do
        -- each panel starts from gnuplot's defaults (reset keeps the terminal and output)
        lines[#lines + 1] = "reset"
        axes_lines(lines, panel.o, kind, panel.extent or {})
        panel.body(lines, colour)
      end
      lines[#lines + 1] = "unset multiplot"
      return lines
    end)
    if not ok_script then cleanup(); error(script, 0) end
    script[#script + 1] = "unset output"
    local ok, message = run_gnuplot(script_path, table.concat(script, "\n") .. "\n")
    if not ok then
      cleanup()
      raise(string.format("%s: gnuplot failed: %s", fname, message))
    end

    local bytes = file_bytes(picture_path) or ""
    local valid
    if kind == "png" then valid = bytes:sub(1, 4) == "\137PNG"
    elseif kind == "svg" then valid = bytes:find("</svg>", 1, true) ~= nil
    else valid = bytes:match("%S") ~= nil end
    if not valid then
      cleanup()
      raise(string.format("%s: gnuplot wrote no picture for '%s'", fname, out))
    end

    if kind == "term" then
      cleanup()
      -- The dumb terminal pads every line with spaces to the full width.
      local text = (bytes .. "\n"):gsub("\f", ""):gsub("[ \t]+\n", "\n"):gsub("\n+$", "\n")
      -- Blank lines on top (with only colour codes in them, in colour).
      repeat
        local first = text:match("^([^\n]*)\n")
        local blank = first ~= nil and first:gsub("\27%[[%d;]*m", ""):match("^%s*$") ~= nil
        if blank then text = text:sub(#first + 2) end
      until not blank
      io.stdout:write(text)
      io.stdout:flush()
      return nil
    end
    os.remove(script_path)
    local renamed, err = os.rename(picture_path, out)
    if not renamed then
      os.remove(picture_path)
      raise(string.format("%s: cannot write '%s': %s", fname, out, (err or ""):match(": ([^:]*)$") or err))
    end
    return out
  end

  ---------------------------------------------------------------------------
  -- The series of a line plot: {{label =, x =, y =}, ...} with number lists.

  local function series_list(o, fname)
    local y = o.y
    if y == nil then raise(fname .. ": y is required (a tensor, a list of numbers, or a list of series)") end
    local raw
    if type(y) == "table" and not nn.is_tensor(y) and #y > 0 and type(y[1]) ~= "number" then
      raw = y
    else
      raw = {{label = o.label, y = y}}
    end
    local shared_x = o.x ~= nil and numbers(o.x, "x", fname) or nil
    local list = {}
    for i, s in ipairs(raw) do
      if nn.is_tensor(s) or (type(s) == "table" and s.y == nil) then s = {y = s} end
      if type(s) ~= "table" then
        raise(string.format("%s: series %d is a %s; give {label = ..., y = ...}", fname, i, type(s)))
      end
      local name = #raw == 1 and "y" or string.format("y of series %d", i)
      check_string(s.label, "label", fname)
      local ys = numbers(s.y, name, fname)
      local xs
      if s.x ~= nil then
        xs = numbers(s.x, #raw == 1 and "x" or string.format("x of series %d", i), fname)
        same_length(xs, ys, #raw == 1 and "x" or string.format("x of series %d", i), name, fname)
      elseif shared_x then
        xs = shared_x
        same_length(xs, ys, "x", name, fname)
      else
        xs = {}
        for k = 1, #ys do xs[k] = k end
      end
      list[i] = {label = s.label, x = xs, y = ys}
    end
    return list
  end

  local STYLES = {lines = true, points = true, linespoints = true}

  -- The panel of nn.plot.lines (checked; see draw).
  local function lines_panel(o, fname, kind)
    local series = series_list(o, fname)
    local style = o.style
    if style ~= nil and not STYLES[style] then
      raise(fname .. ": style must be \"lines\", \"points\" or \"linespoints\", got " .. tostring(style))
    end
    if style == nil then
      style = "lines"
      local longest = 0
      for _, s in ipairs(series) do longest = math.max(longest, #s.y) end
      if longest <= 30 then style = "linespoints" end
    end
    local extent, all_x, all_y = {}, {}, {}
    for i, s in ipairs(series) do all_x[i], all_y[i] = s.x, s.y end
    if o.logx then extent.x = positive_extent(all_x, fname, "x") end
    if o.logy then extent.y = positive_extent(all_y, fname, "y") end
    local legend = legend_line(o, kind, fname)
    local labelled = false
    for _, s in ipairs(series) do labelled = labelled or s.label ~= nil end

    return {o = o, extent = extent, body = function(script)
      script[#script + 1] = labelled and legend or "unset key"
      local elements = {}
      for i, s in ipairs(series) do
        datablock(script, "s" .. i, {s.x, s.y}, {o.logx, o.logy})
        local colour = COLORS[(i - 1) % #COLORS + 1]
        local dash = (i - 1) // #COLORS + 1
        local how
        if kind == "term" and #series > 8 then
          -- text has 8 line characters and no dashes: past 8 series, each
          -- gets a letter of its own, about 8 times along its line
          local every = math.max(1, #s.y // 8)
          how = string.format("with linespoints pointtype '%s' pointinterval %d",
            SERIES_MARKS:sub((i - 1) % #SERIES_MARKS + 1, (i - 1) % #SERIES_MARKS + 1), every)
        elseif style == "lines" then
          how = string.format("with lines linewidth 2 dashtype %d", dash)
        elseif style == "points" then
          how = string.format("with points pointtype %d pointsize 1", FILLED[(i - 1) % #FILLED + 1])
        else
          how = string.format("with linespoints linewidth 2 dashtype %d pointtype %d pointsize 0.9",
            dash, FILLED[(i - 1) % #FILLED + 1])
        end
        elements[i] = string.format("$s%d using 1:2 %s linecolor rgb '%s' %s", i, how, colour,
          s.label ~= nil and ("title " .. gp_string(s.label)) or "notitle")
      end
      script[#script + 1] = "plot " .. table.concat(elements, ", \\\n  ")
    end}
  end

  --- nn.plot.lines{y = ..., x = ..., label =, title =, xlabel =, ylabel =,
  -- logx = false, logy = false, xrange = {lo, hi}, yrange = {lo, hi},
  -- style = "lines"|"points"|"linespoints", legend = "outside", out = "term",
  -- width =, height =} -> the path written (nothing for out = "term")
  --
  -- Draws one or more curves. y is a tensor or a list of numbers (one curve,
  -- named by label), or a list of series {label = "tanh", y = ..., x = ...}.
  -- x (shared by the series without their own) defaults to 1, 2, 3, ...
  -- out: "name.png" or "name.svg" writes a file (800x500 pixels unless width
  -- and height say otherwise) and returns its path; "term" (the default)
  -- prints a text picture sized to the terminal. Short series (30 points or
  -- fewer) get a mark on each point. logx/logy use a base-10 log axis and
  -- leave out values that are zero or negative. legend: "outside" (right of
  -- the plot, the default for files), "top left", "top right", "bottom left",
  -- "bottom right", "below" (the default in the terminal), or false.
  function plot.lines(o)
    local fname = "nn.plot.lines"
    local kind = check_common(o, fname)
    return draw(o, kind, fname, {lines_panel(o, fname, kind)})
  end

  ---------------------------------------------------------------------------
  -- Points coloured by class, shared by scatter and heatmap.

  -- Checks {x =, y =, class =, labels =}; returns x, y, class (or nil), the
  -- number of classes and the class names.
  local function point_set(p, fname, prefix)
    local x = numbers(p.x, prefix .. "x", fname)
    local y = numbers(p.y, prefix .. "y", fname)
    same_length(x, y, prefix .. "x", prefix .. "y", fname)
    local class, count = nil, 1
    if p.class ~= nil then
      class = numbers(p.class, prefix .. "class", fname)
      same_length(class, x, prefix .. "class", prefix .. "x", fname)
      for i, c in ipairs(class) do
        if c ~= math.floor(c) or c < 1 then
          raise(string.format("%s: %sclass[%d] is %s; classes are whole numbers 1, 2, ..., K",
            fname, prefix, i, tostring(c)))
        end
        count = math.max(count, math.floor(c))
      end
    end
    local labels = p.labels
    if labels ~= nil then
      if type(labels) ~= "table" then
        raise(string.format("%s: %slabels must be a list of class names, got %s", fname, prefix, type(labels)))
      end
      for k = 1, count do
        if labels[k] == nil and class ~= nil then
          raise(string.format("%s: %slabels has no name for class %d", fname, prefix, k))
        end
        check_string(labels[k], prefix .. "labels[" .. k .. "]", fname)
      end
    end
    return x, y, class, count, labels
  end

  -- Appends the data blocks of a point set and returns its plot elements.
  local function point_elements(script, name, x, y, class, count, labels, logs, single_label, text)
    local elements = {}
    for k = 1, count do
      local xs, ys = {}, {}
      for i = 1, #x do
        if class == nil or class[i] == k then xs[#xs + 1], ys[#ys + 1] = x[i], y[i] end
      end
      if #xs > 0 then
        local block = name .. k
        datablock(script, block, {xs, ys}, logs)
        local shape = (k - 1) % #FILLED + 1
        local title
        if class == nil then
          title = single_label ~= nil and ("title " .. gp_string(single_label)) or "notitle"
        else
          title = "title " .. gp_string(labels and labels[k] or ("class " .. k))
        end
        if text then
          -- In text, each class is a character of its own.
          elements[#elements + 1] = string.format("$%s using 1:2 with points pointtype '%s' linecolor rgb '%s' %s",
            block, POINT_CHARS[(k - 1) % #POINT_CHARS + 1], COLORS[(k - 1) % #COLORS + 1], title)
        else
          elements[#elements + 1] = string.format(
            "$%s using 1:2 with points pointtype %d pointsize 1.3 linecolor rgb '%s' %s",
            block, FILLED[shape], COLORS[(k - 1) % #COLORS + 1], title)
          -- A dark outline keeps each point visible on any background.
          elements[#elements + 1] = string.format(
            "$%s using 1:2 with points pointtype %d pointsize 1.3 linecolor rgb '#303030' notitle",
            block, OUTLINE[shape])
        end
      end
    end
    return elements
  end

  -- Lines drawn over points or a heat map (a decision boundary, say):
  -- {x =, y =, label =} or a list of them.
  local function overlay_lines(v, fname)
    if v == nil then return {} end
    local usage = fname .. ": lines must be {x = ..., y = ..., label = ...} or a list of them"
    if type(v) ~= "table" or nn.is_tensor(v) then raise(usage) end
    if v.y ~= nil or v.x ~= nil then v = {v} end
    local list = {}
    for i, s in ipairs(v) do
      if type(s) ~= "table" or nn.is_tensor(s) or s.x == nil or s.y == nil then raise(usage) end
      local what = #v == 1 and "lines." or string.format("lines[%d].", i)
      local xs, ys = numbers(s.x, what .. "x", fname), numbers(s.y, what .. "y", fname)
      same_length(xs, ys, what .. "x", what .. "y", fname)
      check_string(s.label, what .. "label", fname)
      list[i] = {x = xs, y = ys, label = s.label}
    end
    return list
  end

  -- Dark lines, told apart by their dashes.
  local function overlay_elements(script, lines, logs, elements)
    for i, s in ipairs(lines) do
      datablock(script, "l" .. i, {s.x, s.y}, logs)
      elements[#elements + 1] = string.format(
        "$l%d using 1:2 with lines linewidth 2.5 linecolor rgb '#202020' dashtype %d %s", i, i,
        s.label ~= nil and ("title " .. gp_string(s.label)) or "notitle")
    end
  end

  local function any_label(lines)
    for _, s in ipairs(lines) do if s.label ~= nil then return true end end
    return false
  end

  -- The panel of nn.plot.scatter (checked; see draw).
  local function scatter_panel(o, fname, kind)
    if o.x == nil or o.y == nil then raise(fname .. ": x and y are required") end
    local x, y, class, count, labels = point_set(o, fname, "")
    local lines = overlay_lines(o.lines, fname)
    local extent, all_x, all_y = {}, {x}, {y}
    for _, s in ipairs(lines) do all_x[#all_x + 1], all_y[#all_y + 1] = s.x, s.y end
    if o.logx then extent.x = positive_extent(all_x, fname, "x") end
    if o.logy then extent.y = positive_extent(all_y, fname, "y") end
    check_string(o.label, "label", fname)
    local legend = legend_line(o, kind, fname)
    return {o = o, extent = extent, body = function(script)
      local keyed = class ~= nil or o.label ~= nil or any_label(lines)
      script[#script + 1] = keyed and legend or "unset key"
      local elements = point_elements(script, "c", x, y, class, count, labels, {o.logx, o.logy}, o.label,
        kind == "term")
      overlay_elements(script, lines, {o.logx, o.logy}, elements)
      script[#script + 1] = "plot " .. table.concat(elements, ", \\\n  ")
    end}
  end

  --- nn.plot.scatter{x = ..., y = ..., class = nil, labels = nil, label =,
  -- lines = nil, title =, xlabel =, ylabel =, logx =, logy =, xrange =,
  -- yrange =, legend =, out = "term", width =, height =} -> the path written
  --
  -- Draws points (x[i], y[i]). class (a tensor or list of whole numbers
  -- 1..K, one per point) colours each point by its class, named in the
  -- legend by labels[k] ("class k" without labels). lines = {x =, y =,
  -- label =} (or a list of them) draws lines over the points, such as a
  -- perceptron's decision line. The other options are those of nn.plot.lines.
  function plot.scatter(o)
    local fname = "nn.plot.scatter"
    local kind = check_common(o, fname)
    return draw(o, kind, fname, {scatter_panel(o, fname, kind)})
  end

  ---------------------------------------------------------------------------
  -- Heat maps

  -- The coordinates of n grid columns (or rows): given values, a range
  -- {first, last} spread evenly, or 1..n.
  local function grid_axis(v, n, what, fname)
    local list = {}
    if v == nil then
      for i = 1, n do list[i] = i end
      return list
    end
    local given = numbers(v, what, fname)
    if #given == n then
      -- Cells of one size: gnuplot draws an image on a regular grid.
      local step = n > 1 and (given[n] - given[1]) / (n - 1) or 0
      for i = 2, n do
        local gap = given[i] - given[i - 1]
        if step == 0 or math.abs(gap - step) > 1e-3 * math.abs(step) then
          raise(string.format("%s: %s must be evenly spaced and all different (like nn.linspace gives); "
            .. "%s[%d] - %s[%d] = %g but the average step is %g", fname, what, what, i, what, i - 1, gap, step))
        end
      end
      return given
    end
    if #given == 2 then
      for i = 1, n do list[i] = n == 1 and given[1] or given[1] + (given[2] - given[1]) * (i - 1) / (n - 1) end
      return list
    end
    raise(string.format("%s: %s has %d values; give %d (one per grid %s) or a range {first, last}",
      fname, what, #given, n, what == "x" and "column" or "row"))
  end

  -- Characters from light to dark, for the text picture without colour.
  local RAMP = {" ", ".", ":", "-", "=", "+", "*", "%", "@"}
  local CLASS_MARKS = {".", "+", "o", "=", ":", "~", "^", "x", "-", "*"}

  -- The panel of nn.plot.heatmap (checked; see draw).
  local function heatmap_panel(o, fname, kind)
    if o.z == nil then raise(fname .. ": z is required (a 2-D tensor or a list of rows)") end
    local rows = matrix(o.z, "z", fname)
    local ny, nx = #rows, #rows[1]
    local xs = grid_axis(o.x, nx, "x", fname)
    local ys = grid_axis(o.y, ny, "y", fname)
    check_range(o.zrange, "zrange", fname)
    check_string(o.zlabel, "zlabel", fname)
    local palette = o.palette or "diverging"
    if palette ~= "classes" and not PALETTES[palette] then
      raise(fname .. ": palette must be \"diverging\", \"viridis\", \"gray\" or \"classes\", got " .. tostring(palette))
    end
    local px, py, pclass, pcount, plabels
    if o.points ~= nil then
      if type(o.points) ~= "table" or nn.is_tensor(o.points) then
        raise(fname .. ": points must be a table {x =, y =, class =}")
      end
      px, py, pclass, pcount, plabels = point_set(o.points, fname, "points.")
    end
    local lines = overlay_lines(o.lines, fname)
    if o.logx or o.logy then raise(fname .. ": log scales are not available for heat maps") end

    local zlo, zhi = math.huge, -math.huge
    for i = 1, ny do
      for j = 1, nx do
        local v = rows[i][j]
        if v == v and v ~= math.huge and v ~= -math.huge then
          zlo, zhi = math.min(zlo, v), math.max(zhi, v)
        end
      end
    end
    if zlo > zhi then raise(fname .. ": z has no finite value") end
    local classes
    if palette == "classes" then
      classes = math.max(1, math.floor(zhi + 0.5), pcount or 1)
    end
    local legend = legend_line(o, kind, fname)

    return {o = o, body = function(script, colour)
      if palette == "classes" then
        -- Sharp steps: class k covers [k - 0.5, k + 0.5].
        local stops = {}
        for k = 1, classes do
          local c = LIGHT[(k - 1) % #LIGHT + 1]
          stops[#stops + 1] = string.format("%d '%s', %d '%s'", k - 1, c, k, c)
        end
        script[#script + 1] = "set palette defined (" .. table.concat(stops, ", ") .. ")"
        script[#script + 1] = string.format("set cbrange [0.5:%d.5]", classes)
        script[#script + 1] = "unset colorbox"
      else
        script[#script + 1] = PALETTES[palette]
        local lo, hi = zlo, zhi
        if o.zrange then lo, hi = o.zrange[1], o.zrange[2] end
        if hi <= lo then lo, hi = lo - 0.5, hi + 0.5 end
        script[#script + 1] = string.format("set cbrange [%s:%s]", fmt(lo), fmt(hi))
        if o.zlabel ~= nil then script[#script + 1] = "set cblabel " .. gp_string(o.zlabel) end
      end
      -- The picture spans the grid's cells, half a cell beyond the outer points.
      local function extent(list)
        local lo, hi = list[1], list[#list]
        local half = #list > 1 and (hi - lo) / (#list - 1) / 2 or 0.5
        if half == 0 then half = 0.5 end
        if lo > hi then lo, hi, half = hi, lo, -half end
        return lo - half, hi + half
      end
      if not o.xrange then
        local lo, hi = extent(xs)
        script[#script + 1] = string.format("set xrange [%s:%s]", fmt(lo), fmt(hi))
      end
      if not o.yrange then
        local lo, hi = extent(ys)
        script[#script + 1] = string.format("set yrange [%s:%s]", fmt(lo), fmt(hi))
      end
      if kind ~= "term" then script[#script + 1] = "set grid front" end
      if o._text_image then -- nn.plot.image in text: its rows are not y values
        script[#script + 1] = "unset xtics"
        script[#script + 1] = "unset ytics"
      end
      script[#script + 1] = (pclass ~= nil or any_label(lines)) and legend or "unset key"

      local gx, gy, gz = {}, {}, {}
      for i = 1, ny do
        for j = 1, nx do
          gx[#gx + 1], gy[#gy + 1], gz[#gz + 1] = xs[j], ys[i], rows[i][j]
        end
      end
      local elements = {}
      if not colour then
        -- The dumb terminal cannot colour cells without colour, so each cell
        -- gets a character: a darker one for a higher value, or the mark of
        -- its class.
        local lo, hi = zlo, zhi
        if o.zrange then lo, hi = o.zrange[1], o.zrange[2] end
        local mx, my, mc = {}, {}, {}
        for k = 1, #gz do
          local v = gz[k]
          if v == v then
            local mark
            if palette == "classes" then
              local c = math.floor(v + 0.5)
              mark = CLASS_MARKS[(math.max(c, 1) - 1) % #CLASS_MARKS + 1]
            else
              local t = hi > lo and (v - lo) / (hi - lo) or 0.5
              t = math.max(0, math.min(1, t))
              mark = RAMP[math.floor(t * (#RAMP - 1) + 0.5) + 1]
            end
            if mark ~= " " then
              mx[#mx + 1], my[#my + 1], mc[#mc + 1] = gx[k], gy[k], mark
            end
          end
        end
        if #mx > 0 then
          script[#script + 1] = "$marks << EOD"
          for k = 1, #mx do
            script[#script + 1] = string.format("%s %s \"%s\"", fmt(mx[k]), fmt(my[k]), mc[k])
          end
          script[#script + 1] = "EOD"
          elements[#elements + 1] = "$marks using 1:2:3 with labels notitle"
        end
      else
        datablock(script, "grid", {gx, gy, gz})
        elements[#elements + 1] = "$grid using 1:2:3 with image notitle"
      end
      if px then
        for _, e in ipairs(point_elements(script, "p", px, py, pclass, pcount, plabels, nil, nil,
          kind == "term")) do
          elements[#elements + 1] = e
        end
      end
      overlay_elements(script, lines, nil, elements)
      if #elements == 0 then
        -- Every cell was blank in the text picture: draw the empty frame.
        elements[1] = "NaN notitle"
      end
      script[#script + 1] = "plot " .. table.concat(elements, ", \\\n  ")
    end}
  end

  --- nn.plot.heatmap{z = ..., x = nil, y = nil, points = nil, lines = nil, zrange = nil,
  -- palette = "diverging", zlabel =, title =, xlabel =, ylabel =, legend =,
  -- out = "term", width =, height =} -> the path written
  --
  -- Colours a grid of values: z[i][j] (a 2-D tensor or list of rows) is the
  -- value at (x[j], y[i]), so a row of z is a row of the picture, the first
  -- row at the bottom. x and y are the grid's coordinates, one per column
  -- (row), or a range {first, last} spread evenly; 1, 2, 3, ... by default.
  -- For decision regions, z is the model's output on the grid, and points =
  -- {x =, y =, class =, labels =} draws the data on top, as nn.plot.scatter;
  -- lines = {x =, y =, label =} (or a list) draws lines on top too.
  -- palette: "diverging" (class 1's blue for low values, through white, to
  -- class 2's orange for high ones), "viridis", "gray", or "classes" (z holds
  -- class numbers 1..K, each drawn in the pale colour of its class).
  -- zrange = {lo, hi} fixes the colour scale (for probabilities, {0, 1}).
  function plot.heatmap(o)
    local fname = "nn.plot.heatmap"
    local kind = check_common(o, fname)
    return draw(o, kind, fname, {heatmap_panel(o, fname, kind)})
  end
  ---------------------------------------------------------------------------
  -- Histograms and bar charts

  -- The series of a histogram or a bar chart: o[field] is one (a tensor or
  -- a list of numbers, named by o.label) or a list of {label =, [field] =};
  -- read(value, what) gives each one's numbers. Also says whether any
  -- series is named (then the legend shows).
  local function series_of(o, field, fname, read)
    local v = o[field]
    if v == nil then
      raise(string.format("%s: %s is required (a tensor or a list of values, or a list of series)", fname, field))
    end
    local raw = v
    if nn.is_tensor(v) or type(v) ~= "table" or #v == 0 or type(v[1]) == "number" then
      raw = {{label = o.label, [field] = v}}
    end
    local list, labelled = {}, false
    for i, s in ipairs(raw) do
      if nn.is_tensor(s) or (type(s) == "table" and s[field] == nil) then s = {[field] = s} end
      if type(s) ~= "table" then
        raise(string.format("%s: series %d is a %s; give {label = ..., %s = ...}", fname, i, type(s), field))
      end
      check_string(s.label, "label", fname)
      list[i] = {label = s.label, values = read(s[field], #raw == 1 and field or (field .. " of series " .. i))}
      labelled = labelled or s.label ~= nil
    end
    return list, labelled
  end

  -- Each series' boxes (bins or bars) at xs_of(i), their heights its values.
  local function box_elements(script, name, series, xs_of, logy)
    local elements = {}
    for i, s in ipairs(series) do
      datablock(script, name .. i, {xs_of(i), s.heights or s.values}, {false, logy})
      elements[i] = string.format("$%s%d using 1:2 with boxes linecolor rgb '%s' %s", name, i,
        COLORS[(i - 1) % #COLORS + 1], s.label ~= nil and ("title " .. gp_string(s.label)) or "notitle")
    end
    script[#script + 1] = "plot " .. table.concat(elements, ", \\\n  ")
  end

  -- Every value of a tensor of any shape (or a list of numbers), for a
  -- histogram: the finite ones, and how many were not.
  local function all_values(v, what, fname)
    local list
    if nn.is_tensor(v) then
      if v.device ~= "cpu" then v = v:cpu() end
      if v.dtype == "bool" then v = v:float() end
      list = v:numel() > 0 and v:reshape(v:numel()):totable() or {}
    elseif type(v) == "table" then
      check_numbers(v, what, fname)
      list = v
    else
      raise(string.format("%s: %s must be a tensor or a list of numbers, got %s", fname, what, type(v)))
    end
    local finite, skipped = {}, 0
    for i = 1, #list do
      local x = list[i]
      if x == x and x ~= math.huge and x ~= -math.huge then finite[#finite + 1] = x else skipped = skipped + 1 end
    end
    if #finite == 0 then raise(string.format("%s: %s has no finite value", fname, what)) end
    return finite, skipped
  end

  -- The panel of nn.plot.histogram (checked; see draw).
  local function histogram_panel(o, fname, kind)
    local series, labelled = series_of(o, "x", fname, function(v, what) return (all_values(v, what, fname)) end)
    local bins = o.bins == nil and 30 or o.bins
    if math.type(bins) ~= "integer" or bins < 1 or bins > 10000 then
      raise(fname .. ": bins must be a whole number from 1 to 10000, got " .. tostring(bins))
    end
    local lo, hi
    if o.range ~= nil then
      check_range(o.range, "range", fname)
      lo, hi = o.range[1], o.range[2]
    else
      lo, hi = math.huge, -math.huge
      for _, s in ipairs(series) do
        for _, v in ipairs(s.values) do lo, hi = math.min(lo, v), math.max(hi, v) end
      end
      if lo == hi then lo, hi = lo - 0.5, hi + 0.5 end
    end
    local width = (hi - lo) / bins
    for _, s in ipairs(series) do
      local counts = {}
      for b = 1, bins do counts[b] = 0 end
      for _, v in ipairs(s.values) do
        if v >= lo and v <= hi then
          local b = math.min(bins, math.floor((v - lo) / width) + 1) -- hi falls in the last bin
          counts[b] = counts[b] + 1
        end
      end
      if o.density then
        for b = 1, bins do counts[b] = counts[b] / (#s.values * width) end
      end
      s.heights = counts
    end
    local centres = {}
    for b = 1, bins do centres[b] = lo + (b - 0.5) * width end
    local extent = {}
    if o.logy then
      local all = {}
      for i, s in ipairs(series) do all[i] = s.heights end
      extent.y = positive_extent(all, fname, "y")
    end
    local legend = legend_line(o, kind, fname)
    local panel_o = setmetatable({ylabel = o.ylabel == nil and (o.density and "density" or "count") or o.ylabel},
                                 {__index = o})
    return {o = panel_o, extent = extent, body = function(script)
      script[#script + 1] = labelled and legend or "unset key"
      script[#script + 1] = string.format("set boxwidth %s absolute", fmt(width))
      -- overlapping series show through each other
      script[#script + 1] = #series > 1 and "set style fill transparent solid 0.45 border"
                                        or "set style fill solid 0.6 border"
      if not o.yrange and not o.logy then
        script[#script + 1] = "set yrange [0:*]"
        script[#script + 1] = "set offsets 0, 0, graph 0.05, 0" -- room above the tallest bin
      end
      if not o.xrange then
        script[#script + 1] = string.format("set xrange [%s:%s]", fmt(lo - width / 2), fmt(hi + width / 2))
      end
      box_elements(script, "h", series, function() return centres end, o.logy)
    end}
  end

  --- nn.plot.histogram{x = ..., bins = 30, range = {lo, hi}, density = false,
  -- label =, title =, xlabel =, ylabel =, logy =, xrange =, yrange =,
  -- legend =, out = "term", width =, height =} -> the path written
  --
  -- Counts values in bins of equal width. x is a tensor of any shape (every
  -- element counts: weights, activations, gradients) or a list of numbers,
  -- or a list of series {label = "layer 1", x = ...} drawn over each other
  -- in the same bins. range (default: from the smallest to the largest
  -- value) sets the bins' span; density = true divides each count by the
  -- number of values and the bin width, so that the bars' area is 1.
  -- Values that are not finite (NaN, inf) are left out.
  --   nn.plot.histogram{x = model[1].weight, bins = 40, title = "weights", out = "w.png"}
  function plot.histogram(o)
    local fname = "nn.plot.histogram"
    local kind = check_common(o, fname)
    return draw(o, kind, fname, {histogram_panel(o, fname, kind)})
  end

  ---------------------------------------------------------------------------
  -- Bar charts

  -- The panel of nn.plot.bar (checked; see draw).
  local function bar_panel(o, fname, kind)
    local series, labelled = series_of(o, "y", fname, function(v, what) return numbers(v, what, fname) end)
    for i = 2, #series do
      same_length(series[i].values, series[1].values, "y of series " .. i, "y of series 1", fname)
    end
    local count = #series[1].values
    local categories = o.categories
    if categories ~= nil then
      check_categories(categories, "categories", fname)
      if #categories ~= count then
        raise(string.format("%s: categories has %d names but there are %d bars", fname, #categories, count))
      end
    else
      categories = {}
      for k = 1, count do categories[k] = tostring(k) end
    end
    local legend = legend_line(o, kind, fname)
    local extent = {}
    if o.logy then
      local all = {}
      for i, s in ipairs(series) do all[i] = s.values end
      extent.y = positive_extent(all, fname, "y")
    end
    local panel_o = setmetatable({xcategories = categories}, {__index = o})
    return {o = panel_o, extent = extent, body = function(script)
      script[#script + 1] = labelled and legend or "unset key"
      -- a group of bars per category, 0.8 wide in all
      local width = 0.8 / #series
      script[#script + 1] = string.format("set boxwidth %s absolute", fmt(width))
      script[#script + 1] = "set style fill solid 0.85 border rgb '#303030'"
      if not o.xrange then script[#script + 1] = string.format("set xrange [0.4:%s]", fmt(count + 0.6)) end
      local lowest = 0
      for _, s in ipairs(series) do for _, v in ipairs(s.values) do lowest = math.min(lowest, v) end end
      if not o.yrange and not o.logy then
        if lowest >= 0 then script[#script + 1] = "set yrange [0:*]" end
        script[#script + 1] = "set offsets 0, 0, graph 0.05, 0" -- room above the tallest bar
      end
      script[#script + 1] = "set grid noxtics ytics"
      box_elements(script, "b", series, function(i)
        local xs = {}
        for k = 1, count do xs[k] = k - 0.4 + (i - 0.5) * width end
        return xs
      end, o.logy)
    end}
  end

  --- nn.plot.bar{y = ..., categories = {...}, label =, title =, xlabel =,
  -- ylabel =, logy =, yrange =, legend =, out = "term", width =,
  -- height =} -> the path written
  --
  -- A bar per value of y (a tensor or a list of numbers), named on the x
  -- axis by categories (a list of names, one per bar; 1, 2, ... without
  -- it), or a list of series {label = "train", y = ...}, one bar of each
  -- series per category, side by side.
  --   nn.plot.bar{y = {0.91, 0.84}, categories = {"relu", "tanh"}, ylabel = "accuracy", out = "acc.png"}
  function plot.bar(o)
    local fname = "nn.plot.bar"
    local kind = check_common(o, fname)
    return draw(o, kind, fname, {bar_panel(o, fname, kind)})
  end

  ---------------------------------------------------------------------------
  -- Images

  -- An image argument as {n, c, h, w, at = function(k, ch, i, j)}: a tensor
  -- of H x W, C x H x W (C = 1 or 3) or N x C x H x W, or a list of rows.
  local function image_data(v, fname)
    if type(v) == "table" and not nn.is_tensor(v) then
      local rows = matrix(v, "image", fname)
      return {n = 1, c = 1, h = #rows, w = #rows[1], at = function(_, _, i, j) return rows[i][j] end}
    end
    if not nn.is_tensor(v) then
      raise(fname .. ": image must be a tensor (H x W, C x H x W or N x C x H x W) or a list of rows, got "
            .. type(v))
    end
    local dims = v:dim()
    if dims < 2 or dims > 4 then
      raise(string.format("%s: image must be H x W, C x H x W or N x C x H x W, got a tensor of shape %s",
        fname, shape_of(v)))
    end
    local size = v:size()
    local n, c = 1, 1
    if dims == 4 then n, c = size[1], size[2] elseif dims == 3 then c = size[1] end
    local h, w = size[dims - 1], size[dims]
    if c ~= 1 and c ~= 3 then
      raise(string.format("%s: an image has 1 channel (gray) or 3 (red, green, blue) first, C x H x W; "
        .. "got a tensor of shape %s%s", fname, shape_of(v),
        dims == 3 and " (for a batch of N gray images, give N x 1 x H x W)" or ""))
    end
    if n * c * h * w == 0 then raise(string.format("%s: image is empty (shape %s)", fname, shape_of(v))) end
    if v.device ~= "cpu" then v = v:cpu() end
    if v.dtype ~= "float64" then v = v:double() end
    local flat = v:reshape(n * c * h * w):totable()
    return {n = n, c = c, h = h, w = w, at = function(k, ch, i, j)
      return flat[(((k - 1) * c + ch - 1) * h + i - 1) * w + j]
    end}
  end

  -- The panel of nn.plot.image (checked; see draw).
  local function image_panel(o, fname, kind)
    if o.image == nil then raise(fname .. ": image is required (a tensor H x W, C x H x W or N x C x H x W)") end
    local img = image_data(o.image, fname)
    local n, c, h, w = img.n, img.c, img.h, img.w
    check_range(o.zrange, "zrange", fname)
    check_string(o.zlabel, "zlabel", fname)
    local palette = o.palette or "gray"
    if not PALETTES[palette] then
      raise(fname .. ": palette must be \"gray\", \"viridis\" or \"diverging\", got " .. tostring(palette))
    end
    local captions = o.labels
    if captions ~= nil then
      if type(captions) ~= "table" or #captions ~= n then
        raise(string.format("%s: labels must be a list of %d caption%s, one per image", fname, n, n == 1 and "" or "s"))
      end
      for k = 1, n do check_string(captions[k], string.format("labels[%d]", k), fname) end
    end
    local columns = o.columns
    if columns ~= nil and (math.type(columns) ~= "integer" or columns < 1) then
      raise(fname .. ": columns must be a whole number >= 1, got " .. tostring(columns))
    end
    columns = math.min(n, columns or (n <= 8 and n or math.ceil(math.sqrt(2 * n))))
    local rows_of_images = math.ceil(n / columns)
    -- the grid: images with a gap between them, more above each for its caption
    local gap = n > 1 and math.max(1, math.floor(h / 20 + 0.5)) or 0
    local top = captions and math.max(gap, math.ceil(h / 3)) or gap
    local side = captions and n > 1 and math.max(gap, math.ceil(w / 6)) or gap -- room for wide captions
    local height = rows_of_images * (h + top) - (captions and 0 or gap)
    local width = columns * (w + side) - side
    local function origin(k) -- the canvas position of image k's top left pixel, 0-based
      local r, col = (k - 1) // columns, (k - 1) % columns
      return r * (h + top) + (captions and top or 0), col * (w + side)
    end
    -- the value range: given, or the data's
    local lo, hi = math.huge, -math.huge
    for k = 1, n do for ch = 1, c do for i = 1, h do for j = 1, w do
      local v = img.at(k, ch, i, j)
      if v == v and v ~= math.huge and v ~= -math.huge then lo, hi = math.min(lo, v), math.max(hi, v) end
    end end end end
    if lo > hi then raise(fname .. ": image has no finite value") end
    if o.zrange then
      lo, hi = o.zrange[1], o.zrange[2]
    elseif c == 3 then
      -- colours in [0, 1] or [0, 255] are taken as such
      if lo >= 0 and hi <= 1 then lo, hi = 0, 1 elseif lo >= 0 and hi <= 255 then lo, hi = 0, 255 end
    end
    if hi <= lo then lo, hi = lo - 0.5, hi + 0.5 end

    if kind == "term" then
      -- Text has no image: a heat map of the gray (or luminance) values,
      -- its rows given last first, since a heat map draws row 1 at the bottom.
      local z = {}
      for y = 1, height do
        local row = {}
        for x = 1, width do row[x] = 0 / 0 end
        z[height - y + 1] = row
      end
      for k = 1, n do
        local y0, x0 = origin(k)
        for i = 1, h do
          local row = z[height - (y0 + i) + 1]
          for j = 1, w do
            row[x0 + j] = c == 1 and img.at(k, 1, i, j)
              or 0.299 * img.at(k, 1, i, j) + 0.587 * img.at(k, 2, i, j) + 0.114 * img.at(k, 3, i, j)
          end
        end
      end
      return heatmap_panel(setmetatable({z = z, zrange = {lo, hi}, palette = c == 1 and palette or "gray",
                                         _text_image = true}, {__index = o}), fname, kind)
    end

    local panel_o = setmetatable({xrange = false, yrange = false, xlabel = o.xlabel, ylabel = o.ylabel},
                                 {__index = o})
    return {o = panel_o, canvas = {height, width}, body = function(script)
      script[#script + 1] = "unset key"
      script[#script + 1] = "set size ratio -1" -- square pixels
      -- row 1 at the top, as an image is read
      script[#script + 1] = string.format("set xrange [-0.5:%s]", fmt(width - 0.5))
      script[#script + 1] = string.format("set yrange [%s:-0.5]", fmt(height - 0.5))
      script[#script + 1] = "unset grid"
      if n == 1 then
        -- pixel coordinates, 1-based as a tensor's indices
        script[#script + 1] = "set xtics out nomirror ('1' 0)"
        script[#script + 1] = string.format("set xtics add ('%d' %d)", w, w - 1)
        script[#script + 1] = "set ytics out nomirror ('1' 0)"
        script[#script + 1] = string.format("set ytics add ('%d' %d)", h, h - 1)
      else
        script[#script + 1] = "unset xtics"
        script[#script + 1] = "unset ytics"
        script[#script + 1] = "unset border"
      end
      if captions then
        for k = 1, n do
          local y0, x0 = origin(k)
          script[#script + 1] = string.format("set label %s at %s,%s center front font ',9'",
            gp_string(captions[k]), fmt(x0 + (w - 1) / 2), fmt(y0 - top / 2 - 0.5))
        end
      end
      if c == 1 then
        script[#script + 1] = PALETTES[palette]
        script[#script + 1] = string.format("set cbrange [%s:%s]", fmt(lo), fmt(hi))
        script[#script + 1] = "set colorbox"
        if o.zlabel ~= nil then script[#script + 1] = "set cblabel " .. gp_string(o.zlabel) end
        -- one line of the canvas per line of data (gnuplot's matrix form); NaN between the images
        local canvas = {}
        for y = 1, height do
          local row = {}
          for x = 1, width do row[x] = "NaN" end
          canvas[y] = row
        end
        for k = 1, n do
          local y0, x0 = origin(k)
          for i = 1, h do
            local row = canvas[y0 + i]
            for j = 1, w do row[x0 + j] = fmt(img.at(k, 1, i, j)) end
          end
        end
        script[#script + 1] = "$image << EOD"
        for y = 1, height do script[#script + 1] = table.concat(canvas[y], " ") end
        script[#script + 1] = "EOD"
        script[#script + 1] = "plot $image matrix with image notitle"
      else
        script[#script + 1] = "unset colorbox"
        script[#script + 1] = "$image << EOD"
        local scale = 255 / (hi - lo)
        local function byte(v)
          if v ~= v then return 0 end
          return math.max(0, math.min(255, math.floor((v - lo) * scale + 0.5)))
        end
        for k = 1, n do
          local y0, x0 = origin(k)
          for i = 1, h do
            for j = 1, w do
              script[#script + 1] = string.format("%d %d %d %d %d", x0 + j - 1, y0 + i - 1,
                byte(img.at(k, 1, i, j)), byte(img.at(k, 2, i, j)), byte(img.at(k, 3, i, j)))
            end
          end
        end
        script[#script + 1] = "EOD"
        script[#script + 1] = "plot $image using 1:2:3:4:5 with rgbimage notitle"
      end
    end}
  end

  --- nn.plot.image{image = ..., labels = nil, columns = nil, palette = "gray",
  -- zrange = nil, zlabel =, title =, out = "term", width =,
  -- height =} -> the path written
  --
  -- Draws a tensor as a picture, the right way up: row 1 at the top, column
  -- 1 at the left. image is H x W (gray), C x H x W (C = 1: gray; C = 3:
  -- red, green, blue), or a batch N x C x H x W, drawn as a grid of columns
  -- images a row (default: all of up to 8, else about twice as many columns
  -- as rows), each captioned by labels[k] when labels is given. Gray images
  -- are coloured by palette ("gray", "viridis", "diverging") over zrange
  -- (default: the smallest to the largest value), with a colour bar;
  -- colours over zrange (default [0, 1] or [0, 255] when the values fit,
  -- else the data's range).
  --   nn.plot.image{image = x_test[{{1, 16}}]:view(16, 1, 28, 28), labels = names, out = "samples.png"}
  function plot.image(o)
    local fname = "nn.plot.image"
    local kind = check_common(o, fname)
    local panel = image_panel(o, fname, kind)
    -- a picture shaped as the image, with room for the title and the colour bar
    local aspect = panel.canvas and panel.canvas[1] / panel.canvas[2] or 1
    local size = {760, math.max(240, math.min(1400, math.floor(640 * aspect + 0.5) + 110))}
    return draw(o, kind, fname, {panel}, nil, size)
  end

  ---------------------------------------------------------------------------
  -- Panels: several plots in one picture

  local PANEL_KINDS = {lines = lines_panel, scatter = scatter_panel, heatmap = heatmap_panel,
                       histogram = histogram_panel, bar = bar_panel, image = image_panel}
  local PANEL_KIND_NAMES = "\"lines\", \"scatter\", \"heatmap\", \"histogram\", \"bar\" or \"image\""

  --- nn.plot.panels{{kind = "lines", ...}, {kind = "histogram", ...}, ...,
  -- columns = nil, title =, out = "term", width =,
  -- height =} -> the path written
  --
  -- A grid of plots in one picture, filled row by row: each entry of the
  -- list is the table one of nn.plot.lines, scatter, heatmap, histogram,
  -- bar or image takes, with kind naming which (and no out, width or
  -- height: those are the picture's). columns: plots a row (default: up to
  -- 3 in one row, 4 as 2 x 2, else 3 a row). title heads the picture; each
  -- plot keeps its own. A plot's legend goes inside it ("top left") unless
  -- its table says otherwise.
  --   nn.plot.panels{columns = 2, out = "training.png",
  --     {kind = "lines", y = losses, title = "loss"},
  --     {kind = "histogram", x = model[1].weight, title = "weights"}}
  function plot.panels(o)
    local fname = "nn.plot.panels"
    if type(o) ~= "table" then
      raise(fname .. ": expected a table: a list of plots, as {{kind = \"lines\", y = ...}, ..., out = \"p.png\"}")
    end
    check_string(o.title, "title", fname)
    local count = #o
    if count == 0 then raise(fname .. ": no plots: give a list of tables {kind = \"lines\", y = ...}") end
    local columns = o.columns
    if columns ~= nil and (math.type(columns) ~= "integer" or columns < 1) then
      raise(fname .. ": columns must be a whole number >= 1, got " .. tostring(columns))
    end
    columns = math.min(count, columns or (count <= 3 and count or (count == 4 and 2 or 3)))
    local rows = math.ceil(count / columns)
    local kind = picture_kind(o.out == nil and "term" or o.out, fname)
    check_gnuplot(fname)
    local panels = {}
    for i = 1, count do
      local spec = o[i]
      local where = string.format("%s: plot %d", fname, i)
      if type(spec) ~= "table" or nn.is_tensor(spec) then
        raise(string.format("%s is a %s; give a table {kind = ..., ...}", where, type(spec)))
      end
      local builder = PANEL_KINDS[spec.kind]
      if not builder then
        raise(string.format("%s: kind must be %s, got %s", where, PANEL_KIND_NAMES, tostring(spec.kind)))
      end
      for _, key in ipairs {"out", "width", "height"} do
        if spec[key] ~= nil then
          raise(string.format("%s: %s belongs to the whole picture (nn.plot.panels{..., %s = ...}), not to a plot",
            where, key, key))
        end
      end
      for _, key in ipairs {"title", "xlabel", "ylabel"} do check_string(spec[key], key, where) end
      check_range(spec.xrange, "xrange", where)
      check_range(spec.yrange, "yrange", where)
      check_categories(spec.xcategories, "xcategories", where)
      local with_legend = spec
      if spec.legend == nil then with_legend = setmetatable({legend = "top left"}, {__index = spec}) end
      panels[i] = builder(with_legend, where .. " (" .. spec.kind .. ")", kind)
    end
    return draw(o, kind, fname, panels, {rows, columns},
                {math.min(2400, 120 + 460 * columns), math.min(2400, 60 + 360 * rows)})
  end
end

-- nn.progress: progress bars for training loops.
--
--   local bar = nn.progress{total = epochs, desc = "training"}
--   for epoch = 1, epochs do
--     ...
--     bar:update(1, {loss = cost})     -- one step done; cost may be a tensor
--     -- or bar:update(1, cost): the same, shown as loss=...
--   end
--   bar:close()
--
-- or, letting the bar count:
--
--   local bar = nn.progress{total = epochs, desc = "training"}
--   for epoch in bar:iter() do ...; bar:set{loss = cost} end
--
-- The bar draws on stderr: in place on a terminal (redrawn at most ten times
-- a second), as an occasional plain line otherwise (a log file, CI), so that
-- logs stay readable. An update that does not draw costs a few field updates
-- and one comparison: the clock is read only every k updates, with k adapted
-- to the loop's speed, and nothing is formatted until a line is drawn. That
-- is the price of about two Lua function calls, 50 to 150 ns
-- (scripts/bench/progress.lua measures it): under 1% of a step of 15 us or
-- more. For a tinier step (XOR's is 4 us), count several at once:
-- `if epoch % 100 == 0 then bar:update(100, cost) end`.
return function(nn)
  local raise = nn._raise
  local clock = nn.clock

  local REDRAW_SECONDS = 0.1  -- a terminal bar is redrawn at most this often
  local CHECK_SECONDS = 0.02  -- the clock is read about this often
  local LOG_SECONDS = 30      -- off a terminal, a plain line at least this often

--- nn.progress.Bar: the class of the bars nn.progress(opts) makes (bar:update, bar:finish...).
  local Bar = {}
  Bar.__index = Bar
  Bar.__name = "nn.progress"

  local progress = {Bar = Bar}
  setmetatable(progress, {__call = function(_, opts) return progress.new(opts) end})
  nn.progress = progress

  ---------------------------------------------------------------------------
  -- The terminal, asked once per process.

  local stderr_terminal, terminal_columns, unicode

  local function terminal_facts()
    if stderr_terminal == nil then
      stderr_terminal = nn._C.sys_isatty(2)
      terminal_columns = tonumber(os.getenv("COLUMNS") or "")
      if stderr_terminal and not terminal_columns then terminal_columns = nn._C.sys_terminal_width(2) end
      if not terminal_columns or terminal_columns < 20 then terminal_columns = 80 end
      local locale = os.getenv("LC_ALL") or os.getenv("LC_CTYPE") or os.getenv("LANG") or ""
      unicode = locale:upper():find("UTF%-?8") ~= nil
    end
    return stderr_terminal, terminal_columns, unicode
  end

  ---------------------------------------------------------------------------
  -- Formatting (only when a line is drawn)

  local function clock_time(seconds)
    if seconds ~= seconds or seconds == math.huge then return "?" end
    seconds = math.floor(seconds + 0.5)
    local h, m, s = seconds // 3600, seconds % 3600 // 60, seconds % 60
    if h > 0 then return string.format("%d:%02d:%02d", h, m, s) end
    return string.format("%02d:%02d", m, s)
  end

  local function rate_text(rate)
    if rate <= 0 or rate ~= rate or rate == math.huge then return "? it/s" end
    if rate < 1 then return string.format("%.2f s/it", 1 / rate) end
    if rate >= 1e6 then return string.format("%.2fM it/s", rate / 1e6) end
    if rate >= 1e4 then return string.format("%.1fk it/s", rate / 1e3) end
    if rate >= 100 then return string.format("%.0f it/s", rate) end
    return string.format("%.2f it/s", rate)
  end

  local function value_text(v)
    if nn.is_tensor(v) then
      if v:numel() ~= 1 then return string.format("(a tensor of %d values)", v:numel()) end
      v = v:item()
    end
    if math.type(v) == "integer" then return tostring(v) end
    if type(v) == "number" then return string.format("%.4g", v) end
    return tostring(v)
  end

  local function info_text(info)
    if info == nil then return nil end
    if type(info) ~= "table" then return "loss=" .. value_text(info) end
    local keys = {}
    for k in pairs(info) do keys[#keys + 1] = k end
    if #keys == 0 then return nil end
    table.sort(keys, function(a, b) return tostring(a) < tostring(b) end)
    local parts = {}
    for i, k in ipairs(keys) do parts[i] = tostring(k) .. "=" .. value_text(info[k]) end
    return table.concat(parts, " ")
  end

  local function count_text(n)
    return math.type(n) == "integer" and tostring(n) or string.format("%.0f", n)
  end

  -- The parts of a line: percent (or nil), counts, times and rate, info.
  local function parts(self, now)
    local elapsed = now - self.start
    local rate = elapsed > 0 and self.n / elapsed or 0
    local total = self.total
    local counts, percent, times
    if total then
      local fraction = total > 0 and math.min(self.n / total, 1) or 1
      percent = string.format("%3d%%", math.floor(fraction * 100))
      counts = count_text(self.n) .. "/" .. count_text(total)
      if self.closed or self.n >= total then -- done: how long it took
        times = string.format("[%s, %s]", clock_time(elapsed), rate_text(rate))
      else
        local left = rate > 0 and (total - self.n) / rate or math.huge
        times = string.format("[%s<%s, %s]", clock_time(elapsed), clock_time(left), rate_text(rate))
      end
      return percent, counts, times, info_text(self.info), fraction
    end
    counts = count_text(self.n)
    times = string.format("[%s, %s]", clock_time(elapsed), rate_text(rate))
    return nil, counts, times, info_text(self.info), nil
  end

  -- The plain line, for logs: "desc: 420/1000 42% [00:03<00:04, 132.50 it/s] loss=0.1234".
  local function plain_line(self, now)
    local percent, counts, times, info = parts(self, now)
    local pieces = {}
    if self.desc then pieces[#pieces + 1] = self.desc .. ":" end
    pieces[#pieces + 1] = counts
    if percent then pieces[#pieces + 1] = (percent:gsub("^ +", "")) end
    pieces[#pieces + 1] = times
    if info then pieces[#pieces + 1] = info end
    return table.concat(pieces, " ")
  end

  local function display_length(s) return utf8.len(s) or #s end

  local function cut(s, width)
    if display_length(s) <= width then return s end
    local stop = utf8.len(s) and utf8.offset(s, width + 1) or width + 1
    return s:sub(1, stop - 1)
  end

  local EIGHTHS = {"", "▏", "▎", "▍", "▌", "▋", "▊", "▉"}

  local function bar_text(fraction, width, use_unicode)
    if not use_unicode then
      local filled = math.floor(fraction * width)
      return string.rep("#", filled) .. string.rep(" ", width - filled)
    end
    local eighths = math.floor(fraction * width * 8)
    local full, part = eighths // 8, eighths % 8
    local text = string.rep("█", full)
    if full < width then text = text .. EIGHTHS[part + 1] .. string.rep(" ", width - full - (part > 0 and 1 or 0)) end
    return text
  end

  -- The terminal line: "desc:  42%|████▍     | 420/1000 [00:03<00:04, 132.50 it/s] loss=0.1234",
  -- at most as wide as the terminal.
  local function terminal_line(self, now)
    local percent, counts, times, info, fraction = parts(self, now)
    local width = self.columns - 1
    local left = (self.desc and (self.desc .. ":" .. (percent and " " or "")) or "") .. (percent or "")
    local right = " " .. counts .. " " .. times .. (info and (" " .. info) or "")
    if not percent and not self.desc then right = right:sub(2) end
    if fraction then
      local room = width - display_length(left) - display_length(right) - 2
      if room >= 10 then
        return left .. "|" .. bar_text(fraction, math.min(room, 40), self.unicode) .. "|" .. right
      end
    end
    return cut(left .. right, width)
  end

  ---------------------------------------------------------------------------
  -- Drawing

  local function write(self, text)
    self.out:write(text)
    self.out:flush()
  end

  local function draw(self, now)
    if self.terminal then
      write(self, "\r" .. terminal_line(self, now) .. "\27[K")
    else
      write(self, plain_line(self, now) .. "\n")
      self.lines = self.lines + 1
      self.line_n = self.n
      self.line_info = self.info
    end
    self.last_draw = now
  end

  -- Off a terminal, the next count that earns a line: each tenth of the total.
  local function advance_mark(self)
    local total = self.total
    if not total or self.terminal then self.next_mark = math.huge; return end
    while self.mark <= 10 and math.ceil(total * self.mark / 10) <= self.n do self.mark = self.mark + 1 end
    self.next_mark = self.mark <= 10 and math.ceil(total * self.mark / 10) or math.huge
  end

  -- update stores info unchecked (a check costs time on every step); it is
  -- checked here, when the bar next reads the clock, and at close.
  local function check_info(self)
    local info = self.info
    if info ~= nil and type(info) ~= "table" and type(info) ~= "number" and not nn.is_tensor(info) then
      self.info = nil
      raise("nn.progress: update(n, info): info must be a table like {loss = 0.1} or a number, got "
        .. type(info))
    end
  end

  -- Runs every k updates: reads the clock, draws if it is time, and picks
  -- the next k so that the clock is read about every CHECK_SECONDS.
  local function check(self)
    if self.closed then raise("nn.progress: update after close") end
    check_info(self)
    local now = clock()
    local dt, dn = now - self.checked_at, self.n - self.checked_n
    local every = self.every
    local estimate = dt > 0 and math.floor(dn * CHECK_SECONDS / dt) or every * 2
    -- Grow at most twofold per check, so that a burst of quick steps before
    -- slow ones cannot stop the bar for long; shrink at once.
    every = math.max(1, math.min(estimate, every * 2 + 1))
    self.every, self.checked_at, self.checked_n = every, now, self.n

    if self.terminal then
      if now - self.last_draw >= REDRAW_SECONDS then draw(self, now) end
    elseif self.n >= self.next_mark or now - self.last_draw >= self.interval then
      draw(self, now)
      advance_mark(self)
    end
    local next_check = self.n + every
    if next_check > self.next_mark then next_check = self.next_mark end
    self.next_check = next_check
  end

  ---------------------------------------------------------------------------
  -- The public API

  local function whole_count(v)
    return type(v) == "number" and v >= 0 and v < math.huge and v == math.floor(v)
  end

  --- nn.progress{total = nil, desc = nil, interval = 30, terminal = nil, out = io.stderr}
  -- (or nn.progress(total)) -> a bar
  --
  -- total: the number of steps (nil when unknown: the bar then shows the
  -- count and rate only). desc: a short text before the bar ("epoch 3").
  -- On a terminal the bar is drawn in place; elsewhere a plain line is
  -- printed at each tenth of the total and at least every `interval` seconds,
  -- plus a last one at the end. terminal = true/false forces either way;
  -- out is the file the bar writes to.
  function progress.new(opts)
    if opts == nil then opts = {} end
    if type(opts) == "number" then opts = {total = opts} end
    if type(opts) ~= "table" then
      raise("nn.progress: expected a table of options like {total = 100, desc = \"training\"}, got " .. type(opts))
    end
    local total = opts.total
    if total ~= nil and not whole_count(total) then
      raise("nn.progress: total must be a whole number >= 0 (or nil when unknown), got " .. tostring(total))
    end
    if opts.desc ~= nil and type(opts.desc) ~= "string" and type(opts.desc) ~= "number" then
      raise("nn.progress: desc must be a string, got " .. type(opts.desc))
    end
    local interval = opts.interval
    if interval == nil then interval = LOG_SECONDS end
    if type(interval) ~= "number" or not (interval > 0) then
      raise("nn.progress: interval must be a positive number of seconds, got " .. tostring(interval))
    end
    if opts.terminal ~= nil and type(opts.terminal) ~= "boolean" then
      raise("nn.progress: terminal must be true or false, got " .. tostring(opts.terminal))
    end
    if opts.out ~= nil and io.type(opts.out) ~= "file" then
      raise("nn.progress: out must be an open file (io.stderr, io.stdout or one from io.open)")
    end
    local is_terminal, columns, use_unicode = terminal_facts()
    if opts.terminal ~= nil then is_terminal = opts.terminal end
    local now = clock()
    local self = setmetatable({
      total = total and math.tointeger(total) or total,
      desc = opts.desc ~= nil and tostring(opts.desc) or nil,
      n = 0,
      info = nil,
      out = opts.out or io.stderr,
      terminal = is_terminal,
      columns = columns,
      unicode = use_unicode,
      interval = interval,
      start = now,
      last_draw = now,
      checked_at = now,
      checked_n = 0,
      every = 1,
      next_check = 1,
      mark = 1,
      next_mark = math.huge,
      lines = 0,
      closed = false,
      -- Found in the bar itself, update skips the metatable lookup (a few ns
      -- of a step).
      update = Bar.update,
    }, Bar)
    advance_mark(self)
    if self.next_check > self.next_mark then self.next_check = self.next_mark end
    if is_terminal then draw(self, now) end
    return self
  end

  -- The rare forms of update's arguments: update(), update{...}, update(5).
  local function checked_step(n, info)
    if n == nil then return 1, info end
    if type(n) == "table" and info == nil then return 1, n end
    if not whole_count(n) then
      raise("nn.progress: update(n, info): n must be a whole number of steps >= 0, got " .. tostring(n))
    end
    return n, info
  end

  --- bar:update([n = 1], [info]): n more steps are done. info (a table, like
  -- {loss = 0.25, acc = 0.9}) is shown beside the counts; its values may be
  -- numbers, strings or one-element tensors, read only when the bar draws (so
  -- a loss tensor costs no copy to the CPU on the steps that are not drawn).
  -- A number or tensor alone is shown as the loss: bar:update(1, cost), the
  -- cheapest form, as it builds no table. bar:update{loss = l} counts one step.
  function Bar:update(n, info)
    if n ~= 1 then
      if n == nil then n = 1 else n, info = checked_step(n, info) end
    end
    if info ~= nil then self.info = info end -- checked in check(), off the hot path
    local count = self.n + n
    self.n = count
    if count >= self.next_check then check(self) end
  end

  --- bar:set(info): shows info (a table like {loss = 0.25}, or the loss alone) without counting a step.
  function Bar:set(info)
    if type(info) ~= "table" and type(info) ~= "number" and not nn.is_tensor(info) then
      raise("nn.progress: set(info): info must be a table like {loss = 0.1} or a number, got " .. type(info))
    end
    self.info = info
  end

  --- bar:iter() -> an iterator over the steps 1..total: `for step in bar:iter() do ... end`.
  -- Each step is counted when the next one begins; the bar closes after the last.
  function Bar:iter()
    if self.total == nil then raise("nn.progress: iter() needs a total: nn.progress{total = n}") end
    local started = false
    return function()
      if started then self:update(1) else started = true end
      if self.n >= self.total then
        self:close()
        return nil
      end
      return self.n + 1
    end
  end

  --- bar:print(...): prints a line (as print does, to stdout) without
  -- breaking the bar: on a terminal the bar is cleared, the line printed and
  -- the bar drawn again below it.
  function Bar:print(...)
    local pieces = table.pack(...)
    for i = 1, pieces.n do pieces[i] = tostring(pieces[i]) end
    local text = table.concat(pieces, "\t", 1, pieces.n) .. "\n"
    if self.terminal and not self.closed then
      write(self, "\r\27[K")
      io.stdout:write(text)
      io.stdout:flush()
      draw(self, clock())
    else
      io.stdout:write(text)
      io.stdout:flush()
    end
  end

  --- bar:close(): draws the final state (on a terminal, ends the line).
  -- Closing twice does nothing; updating after close is an error. A bar
  -- declared `local bar <close> = nn.progress{...}` closes itself, even when
  -- the loop ends by an error.
  function Bar:close()
    if self.closed then return end
    check_info(self)
    self.closed = true
    self.next_check = -math.huge -- the next update reports the misuse
    local now = clock()
    if self.terminal then
      draw(self, now)
      write(self, "\n")
    elseif self.lines == 0 or self.line_n ~= self.n or self.line_info ~= self.info then
      draw(self, now)
    end
  end

  Bar.__close = Bar.close

  function Bar:__tostring()
    return plain_line(self, clock())
  end
end

-- The nnlua prompt, driven for real: nnlua runs in a tmux pane (a
-- pseudo-terminal, so readline is live) and the spec types into it with
-- send-keys and reads the screen with capture-pane. HOME points at a
-- temporary directory, so the history file is the spec's own.
local NNLUA = os.getenv("NNLUA")

local function quote(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

local function shell(cmd)
  local p = assert(io.popen(cmd .. " 2>&1", "r"))
  local out = p:read("a")
  local ok = p:close()
  return out, ok
end

local function sleep(seconds) os.execute("sleep " .. seconds) end

local function have_tmux()
  local _, ok = shell("command -v tmux")
  return ok
end

local home = os.tmpname()
os.remove(home)
assert(os.execute("mkdir -p " .. quote(home)))

-- The spec's own tmux server, its socket in home: nothing of it outlives
-- the spec (a -L socket would stay behind in /tmp/tmux-UID).
local socket = home .. "/tmux"
local function tmux(args) return shell("tmux -S " .. quote(socket) .. " " .. args) end

-- Last, after every describe below: the server and the files of the spec.
teardown(function()
  tmux("kill-server")
  os.execute("rm -rf " .. quote(home))
end)

local session_count = 0

-- A fresh prompt in its own tmux session; returns its controls.
local function start(args)
  session_count = session_count + 1
  local name = "s" .. session_count
  -- under a sanitizer build, its reports go to files the spec checks
  local sanitizer = "ASAN_OPTIONS=" .. quote((os.getenv("ASAN_OPTIONS") or "detect_leaks=0") ..
                                             ":log_path=" .. home .. "/sanitizer") ..
                    " UBSAN_OPTIONS=" .. quote((os.getenv("UBSAN_OPTIONS") or "print_stacktrace=1") ..
                                               ":log_path=" .. home .. "/sanitizer")
  local cmd = "env HOME=" .. quote(home) .. " TERM=xterm " .. sanitizer .. " " .. quote(NNLUA) ..
              " " .. (args or "")
  local _, ok = tmux("new-session -d -s " .. name .. " -x 150 -y 50 " .. quote(cmd))
  assert(ok, "tmux could not start nnlua")
  local p = {name = name}

  function p.screen()
    return (tmux("capture-pane -p -J -S -300 -t " .. name))
  end

  function p.lines()
    local list = {}
    for line in (p.screen() .. "\n"):gmatch("([^\n]*)\n") do list[#list + 1] = line:gsub("%s+$", "") end
    return list
  end

  -- Waits until check(screen) holds; fails with the screen after timeout.
  function p.wait(check, timeout, what)
    local waited = 0
    timeout = timeout or 5
    while waited < timeout do
      local screen = p.screen()
      if check(screen) then return screen end
      sleep(0.05)
      waited = waited + 0.05
    end
    error("timed out waiting for " .. (what or "the prompt") .. "; the screen:\n" .. p.screen(), 2)
  end

  -- Waits for a screen line equal to text (output, not the echoed input).
  function p.wait_line(text, timeout)
    return p.wait(function()
      for _, line in ipairs(p.lines()) do if line == text then return true end end
      return false
    end, timeout, "a line " .. string.format("%q", text))
  end

  function p.wait_text(text, timeout)
    return p.wait(function(s) return s:find(text, 1, true) ~= nil end, timeout,
                  string.format("%q", text))
  end

  -- The number of lines that are a fresh prompt "> ".
  function p.prompts()
    local n = 0
    for _, line in ipairs(p.lines()) do if line == ">" or line:match("^> ") then n = n + 1 end end
    return n
  end

  -- Types text literally (tmux would read a trailing ';' as its own separator).
  function p.type(text)
    local escaped = text:gsub(";$", "\\;")
    tmux("send-keys -t " .. name .. " -l " .. quote(escaped))
  end

  function p.key(...)
    tmux("send-keys -t " .. name .. " " .. table.concat({...}, " "))
  end

  -- Types a line, presses Enter and waits until the next prompt is shown.
  function p.enter(text)
    local before = p.prompts()
    p.type(text)
    p.key("Enter")
    p.wait(function() return p.prompts() > before end, 10, "the prompt after " .. text)
  end

  function p.alive()
    local _, ok = tmux("has-session -t " .. name)
    return ok
  end

  function p.close()
    if p.alive() then tmux("kill-session -t " .. name) end
  end

  p.wait(function(s) return s:match("\n> ") or s:match("^> ") end, 10, "the first prompt")
  return p
end

describe("the nnlua prompt under a terminal", function()
  setup(function()
    assert(NNLUA and NNLUA ~= "", "NNLUA is not set (ctest sets it)")
    assert(have_tmux(), "tmux is not installed: tools/setup.sh installs it (apt-get install tmux)")
  end)

  local p
  before_each(function() p = start() end)
  after_each(function()
    p.close()
    local reports = shell("ls " .. quote(home) .. " | grep '^sanitizer' || true")
    assert.are.equal("", reports, "sanitizer reports in " .. home)
  end)

  it("prints an expression's value, runs a statement, keeps _ and honours a trailing ;", function()
    p.enter("6 * 7")
    p.wait_line("42")
    p.enter("answer = 40 + 2")
    p.enter("answer + 100")
    p.wait_line("142")
    p.enter("1000 + 1;")
    for _, line in ipairs(p.lines()) do assert.are_not.equal("1001", line) end
    p.enter("_ * 2")
    p.wait_line("2002")
    p.enter("'one', 2")
    p.wait(function()
      for _, line in ipairs(p.lines()) do if line:match("^one%s+2$") then return true end end
      return false
    end, 5, "two values on one line")
  end)

  it("shows tensors with dtype and shape, modules as trees, tables sorted", function()
    p.enter("nn.ones(4, 1)")
    p.wait_line("[float32 of size 4x1]")
    p.enter("nn.Sequential(nn.Linear(2, 3), nn.ReLU())")
    p.wait_line("[9 parameters]")
    p.wait_text("(1): Linear(in_features=2, out_features=3, bias=True)  -- 9 parameters")
    p.enter("t = {zeta = 1, alpha = {2, 3}}; t.self = t")
    p.enter("t")
    p.wait_text("alpha = {2, 3}")
    p.wait_text("<cycle: table:")
  end)

  it("continues an incomplete statement on a second prompt", function()
    p.type("for i = 1, 3 do")
    p.key("Enter")
    p.wait(function(s) return s:find("\n>> ", 1, true) ~= nil end, 5, "the second prompt")
    p.type("print(i * 10)")
    p.key("Enter")
    p.type("end")
    p.key("Enter")
    p.wait_line("30")
    p.wait_line("10")
    p.wait_line("20")
  end)

  it("prints an error with its traceback and keeps the state", function()
    p.enter("kept = 5")
    p.enter("error('boom here')")
    p.wait_text("boom here")
    p.wait_text("stack traceback:")
    p.enter("kept + 1")
    p.wait_line("6")
    p.enter("nn.zeros(2, 2) + nn.zeros(3)")
    p.wait_text("stack traceback:")
    p.enter("kept * 3")
    p.wait_line("15")
  end)

  it("completes globals, fields, tensors' and modules' methods, file names in strings", function()
    p.enter("t = nn.ones(2)")
    p.type("t:su")
    p.key("Tab", "Tab")
    p.wait(function(s) return s:match("%f[%w]sub%f[^%w]") and s:match("%f[%w]sum%f[^%w]") end, 5,
           "sub and sum offered")
    p.key("C-u")
    p.type("nn.Lin")
    p.key("Tab")
    p.wait_text("> nn.Linear")
    p.key("C-u")
    p.enter("m = nn.Linear(2, 2)")
    p.type("m:named_par")
    p.key("Tab")
    p.wait_text("> m:named_parameters")
    p.key("C-u")
    local dir = home .. "/files"
    os.execute("mkdir -p " .. quote(dir) .. " && touch " .. quote(dir .. "/weights_epoch_17.bin"))
    p.type("f = '" .. dir .. "/weights_ep")
    p.key("Tab")
    p.wait_text("weights_epoch_17.bin")
    p.key("C-u")
  end)

  it("interrupts a running loop with Ctrl-C and stays usable", function()
    p.type("n = 0; while true do n = n + 1 end")
    p.key("Enter")
    sleep(0.3)
    local before = p.prompts()
    p.key("C-c")
    p.wait_text("interrupted!", 1)
    p.wait(function() return p.prompts() > before end, 1, "the prompt back")
    p.enter("n > 0")
    p.wait_line("true")
    -- an interrupted nn.no_grad leaves recording on
    p.type("nn.no_grad(function() while true do end end)")
    p.key("Enter")
    sleep(0.3)
    p.key("C-c")
    p.wait(function(s) local _, k = s:gsub("interrupted!", "") return k >= 2 end, 1, "a second interrupt")
    p.enter("nn.is_grad_enabled()")
    p.wait_line("true")
    p.enter("(nn.ones(2, {requires_grad = true}) * 3):sum().requires_grad")
    p.wait_line("true")
  end)

  it("clears the line on Ctrl-C at the prompt and exits on Ctrl-D", function()
    p.type("this is not lua")
    p.key("C-c")
    p.type("cleared")
    p.key("C-u")
    p.enter("'fresh' .. 'line'")
    p.wait_line("freshline")
    assert.is_nil(p.screen():find("syntax error", 1, true))
    p.type("for i = 1, 2 do")
    p.key("Enter")
    p.key("C-c")
    p.enter("'after' .. 'cancel'")
    p.wait_line("aftercancel")
    p.key("C-d")
    p.wait(function() return not p.alive() end, 5, "nnlua to exit")
  end)

  it("documents with ?x and help(x), and times with %time", function()
    p.enter("?nn.zeros")
    p.wait_line("nn.zeros")
    p.enter("help(nn.Linear)")
    p.wait_text("in_features")
    p.enter("%time 20 + 22")
    p.wait_text("Wall time: ")
    p.wait_line("42")
  end)

  it("keeps a line's locals for the lines after it, as a learner expects", function()
    p.enter("local kept_x = 5")
    p.enter("kept_x + 1")
    p.wait_line("6")
    p.enter("local function kept_sq(v) return v * v end")
    p.enter("kept_sq(kept_x)")
    p.wait_line("25")
    p.enter("local kept_a, kept_b <const> = 1, 2; local kept_c")
    p.enter("kept_a + kept_b")
    p.wait_line("3")
    p.enter("kept_c == nil")
    p.wait_line("true")
    p.enter("do local kept_inner = 7 end")
    p.enter("kept_inner == nil") -- a block's own local ends with its block, as in Lua
    p.wait_line("true")
    p.enter("local kept_f <close> = setmetatable({}, {__close = function() kept_closed = true end})")
    p.enter("kept_closed and kept_f == nil")
    p.wait_line("true")
  end)

  it("times an expression with %timeit, choosing how many calls", function()
    p.enter("%timeit 20 + 22")
    p.wait(function(s) return s:find("per call %(median of %d+ runs? of %d+ calls?; fastest") end, 10,
           "the %timeit line")
    p.enter("%timeit")
    p.wait_text("%timeit: give an expression or a statement to time")
  end)

  it("keeps history across sessions in ~/.nnlua_history", function()
    p.enter("history_marker = 271828")
    p.key("C-d")
    p.wait(function() return not p.alive() end, 5, "nnlua to exit")
    local f = assert(io.open(home .. "/.nnlua_history", "r"))
    local text = f:read("a")
    f:close()
    assert.truthy(text:find("history_marker = 271828", 1, true))
    local q = start()
    q.key("Up")
    q.wait_text("> history_marker = 271828")
    q.close()
  end)
end)

describe("nnlua -i script.lua", function()
  it("runs the script, then stays at the prompt with its globals", function()
    assert(have_tmux(), "tmux is not installed: tools/setup.sh installs it (apt-get install tmux)")
    local script = home .. "/script.lua"
    local f = assert(io.open(script, "w"))
    f:write("from_script = 123\nprint('script ran')\n")
    f:close()
    local p = start("-i " .. quote(script))
    p.wait_line("script ran")
    p.enter("from_script * 2")
    p.wait_line("246")
    p.close()
    os.remove(script)
  end)
end)

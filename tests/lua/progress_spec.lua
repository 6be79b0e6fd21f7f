-- nn.progress: the lines a bar prints off a terminal (a log, CI) and on one,
-- its counts, its end, and the errors of misuse.
local nn = require "nn"
local support = dofile((os.getenv("NN_ROOT") or ".") .. "/tests/lua/support.lua")
local expect_error = support.expect_error

local NNLUA = os.getenv("NNLUA")

local function quote(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

local function read(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local text = f:read("a")
  f:close()
  return text
end

local function lines_of(text)
  local list = {}
  for line in text:gmatch("([^\n]*)\n") do list[#list + 1] = line end
  return list
end

-- Runs Lua code in nnlua with stderr going to a file (not a terminal);
-- returns stdout, stderr and the exit status.
local function nnlua(code)
  assert(NNLUA and NNLUA ~= "", "NNLUA is not set: ctest sets it (by hand: NNLUA=build/nnlua busted ...)")
  local errfile = os.tmpname()
  local p = assert(io.popen(quote(NNLUA) .. " -e " .. quote(code) .. " 2>" .. quote(errfile)))
  local out = p:read("a")
  local _, _, status = p:close()
  local err = read(errfile) or ""
  os.remove(errfile)
  return out, err, status
end

-- A bar writing to a temporary file; returns the bar and a function that
-- returns what was written.
local function captured(opts)
  local path = os.tmpname()
  local f = assert(io.open(path, "w+b"))
  local removed = false
  local function done()
    if removed then return end
    removed = true
    f:close()
    os.remove(path)
  end
  finally(done) -- the file goes when the test ends, even when it fails
  opts.out = f
  local bar = nn.progress(opts)
  return bar, function()
    f:flush()
    local text = read(path)
    return text
  end, done
end


describe("nn.progress off a terminal", function()
  it("prints a plain line at each tenth of the total, on stderr only", function()
    local out, err, status = nnlua([[
      local bar = nn.progress{total = 100, desc = "epoch 1"}
      for i = 1, 100 do bar:update(1, {loss = 1 / i}) end
      bar:close()
    ]])
    assert.are.equal(0, status, err)
    assert.are.equal("", out)
    assert.is_nil(err:find("\r", 1, true), "no carriage return in a log")
    assert.is_nil(err:find("\27", 1, true), "no escape sequence in a log")
    local lines = lines_of(err)
    assert.are.equal(10, #lines, err)
    for k = 1, 9 do
      local count, total, percent, elapsed, left, loss =
        lines[k]:match("^epoch 1: (%d+)/(%d+) (%d+)%% %[(%d%d:%d%d)<(%d%d:%d%d), [%d%.]+[kM]? it/s%] loss=(%S+)$")
      assert.is_not_nil(count, lines[k])
      assert.are.equal(10 * k, tonumber(count))
      assert.are.equal(100, tonumber(total))
      assert.are.equal(10 * k, tonumber(percent))
      assert.is_truthy(elapsed and left)
      assert.are.equal(string.format("%.4g", 1 / (10 * k)), loss)
    end
    assert.is_truthy(lines[10]:match("^epoch 1: 100/100 100%% %[%d%d:%d%d, [%d%.]+[kM]? it/s%] loss=0%.01$"),
      lines[10])
  end)

  it("counts steps of more than one", function()
    local _, err = nnlua([[
      local bar = nn.progress{total = 50}
      for i = 1, 10 do bar:update(5) end
      bar:close()
    ]])
    local lines = lines_of(err)
    assert.are.equal(10, #lines, err)
    for k = 1, 10 do assert.is_truthy(lines[k]:find("^" .. 5 * k .. "/50 "), lines[k]) end
  end)

  it("close prints the final count when the loop stops early", function()
    local _, err = nnlua([[
      local bar = nn.progress{total = 100, desc = "stopped"}
      for i = 1, 37 do bar:update() end
      bar:close()
      bar:close()
    ]])
    local lines = lines_of(err)
    assert.are.equal(4, #lines, err)
    assert.is_truthy(lines[3]:find("^stopped: 30/100 30%% "), lines[3])
    assert.is_truthy(lines[4]:find("^stopped: 37/100 37%% %["), lines[4])
  end)

  it("handles an unknown total: the count and rate, one line at the end", function()
    local _, err = nnlua([[
      local bar = nn.progress{desc = "reading"}
      for i = 1, 1000 do bar:update(1, {batch = i}) end
      bar:close()
    ]])
    local lines = lines_of(err)
    assert.are.equal(1, #lines, err)
    assert.is_truthy(lines[1]:match("^reading: 1000 %[%d%d:%d%d, [%d%.]+[kM]? it/s%] batch=1000$"), lines[1])
  end)

  it("prints a line every interval seconds on a slow loop", function()
    local _, err = nnlua([[
      local bar = nn.progress{desc = "slow", interval = 0.02}
      for i = 1, 10 do
        local t = nn.clock()
        while nn.clock() - t < 0.01 do end
        bar:update()
      end
      bar:close()
    ]])
    local lines = lines_of(err)
    assert.is_true(#lines >= 3 and #lines <= 11, err)
    assert.is_truthy(lines[#lines]:find("^slow: 10 %["), lines[#lines])
  end)

  it("iter() yields 1..total and closes the bar after the last step", function()
    local out, err = nnlua([[
      local bar = nn.progress{total = 5, desc = "iter"}
      local seen = {}
      for step in bar:iter() do seen[#seen + 1] = step; bar:set{step = step} end
      print(table.concat(seen, ","))
    ]])
    assert.are.equal("1,2,3,4,5\n", out)
    local lines = lines_of(err)
    assert.are.equal(5, #lines, err)
    assert.is_truthy(lines[5]:find("^iter: 5/5 100%% %[.*%] step=5$"), lines[5])
  end)

  it("bar:print writes to stdout, beside the bar", function()
    local out, err = nnlua([[
      local bar = nn.progress{total = 2}
      bar:update()
      bar:print("epoch", 1, "cost", 0.5)
      bar:update()
      bar:close()
    ]])
    assert.are.equal("epoch\t1\tcost\t0.5\n", out)
    assert.is_truthy(err:find("2/2 100%", 1, true), err)
  end)

  it("closes a <close> bar when its block ends, even by an error", function()
    local _, err = nnlua([[
      pcall(function()
        local bar <close> = nn.progress{total = 100, desc = "failing"}
        for i = 1, 3 do bar:update() end
        error("boom")
      end)
    ]])
    local lines = lines_of(err)
    assert.are.equal(1, #lines, err)
    assert.is_truthy(lines[1]:find("^failing: 3/100 3%% "), lines[1])
  end)
end)

describe("nn.progress in process", function()
  it("reads a one-element tensor only when it draws", function()
    local bar, text, done = captured{total = 4, terminal = false}
    for _ = 1, 4 do bar:update(1, {loss = nn.tensor(0.25)}) end
    bar:close()
    assert.is_truthy(text():find("loss=0.25\n", 1, true), text())
    done()
  end)

  it("nn.progress(n) is nn.progress{total = n}; update{...} counts one step", function()
    local bar, text, done = captured{total = 3, terminal = false}
    bar:update{acc = 1}
    bar:update{acc = 2}
    bar:update{acc = 3}
    bar:close()
    assert.is_truthy(text():find("3/3 100% [", 1, true), text())
    assert.is_truthy(text():find("acc=3\n", 1, true), text())
    done()
    assert.are.equal(7, nn.progress(7).total)
  end)

  it("shows a number or tensor alone as the loss", function()
    local bar, text, done = captured{total = 2, terminal = false}
    bar:update(1, 0.5)
    bar:update(1, nn.tensor(0.125))
    bar:close()
    local lines = lines_of(text())
    assert.is_truthy(lines[1]:find("loss=0.5$"), lines[1])
    assert.is_truthy(lines[2]:find("loss=0.125$"), lines[2])
    done()
  end)

  it("shows several values in name order", function()
    local bar, text, done = captured{total = 1, terminal = false}
    bar:update(1, {loss = 0.5, acc = 0.75, epoch = 3})
    bar:close()
    assert.is_truthy(text():find("acc=0.75 epoch=3 loss=0.5\n", 1, true), text())
    done()
  end)

  it("draws in place on a terminal: carriage returns, a bar, a newline at the end", function()
    local bar, text, done = captured{total = 40, desc = "train", terminal = true}
    for i = 1, 40 do bar:update(1, {loss = i}) end
    bar:close()
    local t = text()
    assert.are.equal("\r", t:sub(1, 1))
    assert.are.equal("\n", t:sub(-1))
    assert.is_nil(t:sub(1, -2):find("\n", 1, true), "one line, redrawn")
    local last = t:match("\r([^\r]*)\n$")
    assert.is_truthy(last:find("^train: 100%%|"), last)
    assert.is_truthy(last:find("| 40/40 [", 1, true), last)
    assert.is_truthy(last:find("loss=40\27[K", 1, true), last)
    assert.is_true((utf8.len(last) or #last) - 3 <= bar.columns, last)
    done()
  end)

  it("redraws a terminal bar at most about ten times a second", function()
    local bar, text, done = captured{total = 200000, terminal = true}
    local t0 = nn.clock()
    for _ = 1, 200000 do bar:update() end
    bar:close()
    local seconds = nn.clock() - t0
    local _, draws = text():gsub("\r", "")
    assert.is_true(draws <= 3 + seconds * 10 * 1.5, draws .. " draws in " .. seconds .. " s")
    done()
  end)

  it("keeps a terminal line within the terminal's width", function()
    local bar, text, done = captured{total = 10, desc = string.rep("long description ", 10), terminal = true}
    bar:update(1, {loss = 1})
    bar:close()
    for line in text():gmatch("\r([^\r\n]*)") do
      local visible = line:gsub("\27%[K", "")
      assert.is_true((utf8.len(visible) or #visible) < bar.columns, visible)
    end
    done()
  end)

  it("does not read the clock on every update of a fast loop", function()
    local bar, _, done = captured{total = 100000, terminal = false}
    for _ = 1, 100000 do bar:update() end
    assert.is_true(bar.every > 10, "checks every " .. bar.every .. " updates")
    bar:close()
    done()
  end)

  it("handles total = 0", function()
    local bar, text, done = captured{total = 0, terminal = false}
    bar:close()
    assert.is_truthy(text():find("0/0 100%", 1, true), text())
    done()
  end)
end)

describe("nn.progress errors", function()
  it("names bad options", function()
    expect_error(function() nn.progress{total = -1} end, "nn.progress", "total", "-1")
    expect_error(function() nn.progress{total = 2.5} end, "nn.progress", "total", "2.5")
    expect_error(function() nn.progress{total = "ten"} end, "nn.progress", "total", "ten")
    expect_error(function() nn.progress{total = 1 / 0} end, "nn.progress", "total")
    expect_error(function() nn.progress{desc = {}} end, "nn.progress", "desc")
    expect_error(function() nn.progress{interval = 0} end, "nn.progress", "interval")
    expect_error(function() nn.progress{terminal = "yes"} end, "nn.progress", "terminal")
    expect_error(function() nn.progress{out = "log.txt"} end, "nn.progress", "out")
    expect_error(function() nn.progress("ten") end, "nn.progress", "string")
  end)

  it("names bad updates", function()
    local bar = nn.progress{total = 10, terminal = false, out = io.open("/dev/null", "w")}
    expect_error(function() bar:update(-1) end, "nn.progress", "update", "-1")
    expect_error(function() bar:update(0.5) end, "nn.progress", "update", "0.5")
    expect_error(function() bar:update("x") end, "nn.progress", "update", "x")
    expect_error(function() bar:update(1, "high") end, "nn.progress", "info must be a table")
    -- Checked when the bar next reads the clock, at the latest when it closes.
    local later = nn.progress{total = 1000, terminal = false, out = io.open("/dev/null", "w")}
    for _ = 1, 500 do later:update() end
    expect_error(function() later:update(1, "x"); later:close() end, "nn.progress", "info must be a table")
    expect_error(function() bar:set("loss") end, "nn.progress", "set", "table")
    expect_error(function() nn.progress{}:iter() end, "nn.progress", "iter", "total")
    bar:close()
    expect_error(function() bar:update() end, "nn.progress", "update after close")
  end)

  it("reports errors at the caller's line", function()
    local ok, err = pcall(function() nn.progress{total = -1} end)
    assert.is_false(ok)
    assert.is_truthy(tostring(err):find("progress_spec.lua:%d+: nn.progress"), err)
  end)
end)

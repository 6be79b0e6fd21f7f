-- nn.sweep: trials in parallel worker processes, failures and time limits
-- recorded, resuming after a kill -9, the same results under mpirun, and
-- malformed sweeps refused before anything runs.
local nn = require "nn"
local support = dofile((os.getenv("NN_ROOT") or ".") .. "/tests/lua/support.lua")
local expect_error = support.expect_error

local NNLUA = os.getenv("NNLUA")

local quote, run = support.quote, support.run

local function temp_name(suffix)
  local name = os.tmpname()
  os.remove(name)
  return name .. (suffix or "")
end

local function write_file(path, text)
  local f = assert(io.open(path, "wb"))
  f:write(text)
  f:close()
end

local function exists(path)
  local f = io.open(path, "rb")
  if f then f:close() end
  return f ~= nil
end

local function lines_of(path)
  local lines = {}
  local f = io.open(path, "rb")
  if not f then return lines end
  for line in f:lines() do lines[#lines + 1] = line end
  f:close()
  return lines
end

-- Whether a process runs (a zombie, which nobody may reap in a container, does not).
local function alive(pid)
  local f = io.open("/proc/" .. pid .. "/stat", "rb")
  if not f then return false end
  local state = f:read("a"):match("%) (%a)")
  f:close()
  return state ~= "Z" and state ~= "X"
end

local function require_nnlua()
  assert(NNLUA and NNLUA ~= "", "NNLUA is not set: run this spec with NNLUA=/path/to/build/nnlua "
    .. "(ctest sets it; by hand: NNLUA=build/nnlua busted ...)")
  assert(exists(NNLUA), "NNLUA=" .. NNLUA .. " does not exist; build it first")
end

-- Runs fn, which must raise; each fragment must appear in the message.

-- The trial records of a results file, keyed "config#seed", each checked
-- to appear once.
local function records_by_key(path)
  local header, records = nn.sweep.read(path)
  local by_key, count = {}, 0
  for _, r in ipairs(records) do
    local key = nn.sweep.json.encode(r.config) .. "#" .. r.seed
    assert(by_key[key] == nil, "trial " .. key .. " is in " .. path .. " twice")
    by_key[key] = r
    count = count + 1
  end
  return by_key, count, header
end

-- The script the subprocess tests run: 12 trials (x × y, one seed) whose
-- metrics depend on the config and on nn's generator, seeded by the sweep.
--   nnlua sweep_script.lua FILE SLEEP_SECONDS [WORKERS]
local SCRIPT = [[
local nn = require "nn"
local file, sleep, workers = arg[1], tonumber(arg[2]), tonumber(arg[3] or "")
nn.sweep {
  parameters = {x = {1, 2, 3, 4}, y = {"a", "bb", "ccc"}},
  seeds = {7},
  metric = "score", mode = "max",
  file = file, workers = workers, quiet = true, plot = false,
  run = function(config)
    if sleep > 0 then nn._C.sys_sleep(sleep) end
    return {score = config.x * 10 + #config.y + nn.rand(1):item(), noise = nn.randn(2):sum()}
  end,
}
]]

describe("nn.sweep.json", function()
  local json = nn.sweep.json

  it("round-trips numbers, keeping integers and floats apart", function()
    for _, v in ipairs {0, 1, -7, 2 ^ 53, 1.0, 0.1, -2.5e-300, 1e300, 1 / 3, math.pi, math.maxinteger,
                        math.mininteger} do
      local back = json.decode(json.encode(v))
      assert.are.equal(v, back)
      assert.are.equal(math.type(v), math.type(back))
    end
    assert.are.equal("1.0", json.encode(1.0))
    assert.are.equal("0.1", json.encode(0.1))
    assert.are.equal("NaN", json.encode(0 / 0))
    assert.are.equal("Infinity", json.encode(math.huge))
    assert.are.equal(-math.huge, json.decode("-Infinity"))
    local nan = json.decode("NaN")
    assert.is_true(nan ~= nan)
  end)

  it("round-trips strings with escapes and unicode", function()
    local s = 'quote " backslash \\ newline \n tab \t bell \a nul \0 é ∞'
    assert.are.equal(s, json.decode(json.encode(s)))
    assert.are.equal("é∞😀", json.decode('"\\u00e9\\u221e\\ud83d\\ude00"'))
  end)

  it("writes objects with sorted keys and reads nested tables", function()
    assert.are.equal('{"a":[1,2,{"b":true}],"c":"x","d":false}',
                     json.encode({d = false, c = "x", a = {1, 2, {b = true}}}))
    assert.are.same({a = {1, 2, {b = true}}, c = "x"}, json.decode(' { "a" : [1, 2, {"b": true}], "c":"x", "n": null } '))
  end)

  it("reports malformed text and values it cannot write", function()
    expect_error(function() json.decode('{"a": }') end, "json:", "character")
    expect_error(function() json.decode('[1, 2') end, "json:")
    expect_error(function() json.decode('"abc') end, "json:", "unterminated string")
    expect_error(function() json.encode({f = print}) end, "json:", "function")
    local cycle = {}
    cycle.self = cycle
    expect_error(function() json.encode(cycle) end, "json:", "cycle")
  end)
end)

describe("nn.sweep.json on lua-cjson, against the files of its own earlier encoder", function()
  local json = nn.sweep.json
  local root = os.getenv("NN_ROOT") or "."

  it("writes byte for byte what the earlier encoder wrote, and reads that text back exactly", function()
    -- so a file written now reads in an earlier nnlua, and one written then reads now
    for _, case in ipairs(dofile(root .. "/tests/fixtures/json_v1.lua")) do
      local v = assert(load("return " .. case.lua))()
      assert.are.equal(case.json, json.encode(v), case.lua)
      local back = json.decode(case.json)
      if type(v) == "number" then
        assert.are.equal(math.type(v), math.type(back), case.lua)
        if v == v then assert.are.equal(v, back, case.lua) else assert.is_true(back ~= back) end
        if v == 0 then assert.are.equal(1 / v, 1 / back, case.lua) end -- -0.0 stays negative
      elseif v == nil then
        assert.is_nil(back)
      elseif type(v) == "string" then
        assert.are.equal(v, back, case.lua)
      else -- keys come back as strings, as JSON has them: compare the text
        assert.are.equal(case.json, json.encode(back), case.lua)
      end
    end
  end)

  it("resumes a results file the earlier encoder wrote: same definition, nothing to run again", function()
    local fixture = root .. "/tests/fixtures/sweep_v1.jsonl"
    local file = temp_name(".jsonl")
    local original = support.read(fixture)
    support.write(file, original)
    local ok, result = pcall(nn.sweep, {
      name = "fixture: written by the hand-written encoder",
      parameters = {lr = {0.1, 1.0, 2}, act = {"tanh", "a/b \"q\""}},
      seeds = 2, metric = "val/loss", mode = "min",
      file = file, workers = 1, quiet = true, plot = false,
      run = function() error("every trial is in the file: none may run again") end,
    })
    local after = support.read(file)
    os.remove(file)
    assert(ok, result)
    assert.are.equal(original, after) -- nothing appended, nothing rewritten
    assert.are.equal(12, #result.trials)
    assert.are.same({ok = 11, failed = 1, timeout = 0}, result.counts)
    local best = result.trials[1]
    assert.are.equal(0.1, best.config.lr)
    assert.are.equal(1, best.seed)
    assert.are.equal(0.3476190476190476, best.metrics["val/loss"])
    assert.are.equal("integer", math.type(best.metrics.steps))
    assert.are.equal("float", math.type(best.metrics.whole))
    assert.are.equal("é\t∞", best.metrics.note)
  end)

  it("uses the cjson module a stock lua5.4 and nnlua both find", function()
    assert.are.equal("[1,\"a\"]", require("cjson").encode({1, "a"}))
    require_nnlua()
    local out = support.nnlua_output('print(require("cjson").encode({1, "a"}))')
    assert.are.equal('[1,"a"]\n', out)
  end)
end)

describe("nn.sweep, on this machine", function()
  local file

  before_each(function() file = temp_name(".jsonl") end)
  after_each(function() os.remove(file) end)

  it("runs a 12-trial sweep with 2 workers and records 12 results", function()
    local result = nn.sweep {
      parameters = {x = {1, 2, 3}, y = {"a", "b"}},
      seeds = 2, metric = "loss", file = file, workers = 2, quiet = true, plot = false,
      run = function(config)
        return {loss = config.x + (config.y == "b" and 0.5 or 0) + config.seed / 100, pid = nn._C.sys_getpid()}
      end,
    }
    assert.are.equal(12, #result.trials)
    assert.are.equal(12, result.counts.ok)
    local by_key, count, header = records_by_key(file)
    assert.are.equal(12, count)
    assert.are.equal(12, #lines_of(file) - 1)
    assert.are.equal("loss", header.definition.metric)
    local pids, workers = {}, {}
    for _, r in pairs(by_key) do
      assert.are.equal("ok", r.status)
      assert.are.equal(r.config.x + (r.config.y == "b" and 0.5 or 0) + r.seed / 100, r.metrics.loss)
      assert.is_number(r.duration)
      pids[r.metrics.pid] = true
      workers[r.worker] = true
    end
    local distinct = 0
    for _ in pairs(pids) do distinct = distinct + 1 end
    assert.are.equal(12, distinct) -- each trial ran in a process of its own
    assert.is_true(workers[1] and workers[2])
    assert.is_nil(workers[3])
    -- Sorted best first, and the best setting over its two seeds.
    assert.are.equal(1.01, result.trials[1].metrics.loss)
    assert.are.same({x = 1, y = "a"}, result.best.config)
    assert.are.equal(2, result.best.ok)
    assert.is_true(math.abs(result.best.mean - 1.015) < 1e-12)
    assert.is_true(math.abs(result.best.std - math.sqrt(0.00005)) < 1e-12)
  end)

  it("records a failing trial and a crashing one, and completes the others", function()
    local result = nn.sweep {
      parameters = {x = {1, 2, 3, 4, 5, 6}},
      metric = "loss", file = file, workers = 2, quiet = true, plot = false,
      run = function(config)
        if config.x == 3 then error("deliberate failure at x = 3") end
        if config.x == 5 then nn._C.sys_kill(nn._C.sys_getpid(), "KILL") end -- as the OOM killer would
        return {loss = config.x}
      end,
    }
    assert.are.same({ok = 4, failed = 2, timeout = 0}, result.counts)
    local by_key, count = records_by_key(file)
    assert.are.equal(6, count)
    local failed = by_key['{"x":3}#1']
    assert.are.equal("failed", failed.status)
    assert.truthy(failed.error:find("deliberate failure at x = 3", 1, true))
    assert.truthy(failed.traceback)
    local crashed = by_key['{"x":5}#1']
    assert.are.equal("failed", crashed.status)
    assert.truthy(crashed.error:find("signal 9", 1, true))
    for _, x in ipairs {1, 2, 4, 6} do assert.are.equal("ok", by_key['{"x":' .. x .. '}#1'].status) end
    -- Failed trials sort last.
    assert.are.equal("ok", result.trials[4].status)
    assert.are.equal("failed", result.trials[5].status)
  end)

  it("records a trial that passes its time limit as timed out", function()
    local t0 = nn.clock()
    local result = nn.sweep {
      parameters = {x = {1, 2, 3}},
      -- the limit leaves the quick trials time to start and finish even on a
      -- loaded machine (at 0.3 s they timed out too at a load of 30 on 2 cores)
      metric = "loss", file = file, workers = 3, quiet = true, plot = false, time_limit = 4,
      run = function(config)
        if config.x == 2 then nn._C.sys_sleep(60) end
        return {loss = config.x}
      end,
    }
    assert.is_true(nn.clock() - t0 < 40)
    local by_key = records_by_key(file)
    assert.are.equal("timeout", by_key['{"x":2}#1'].status)
    assert.truthy(by_key['{"x":2}#1'].error:find("time limit of 4 s", 1, true))
    assert.is_true(by_key['{"x":2}#1'].duration >= 4)
    assert.are.same({ok = 2, failed = 0, timeout = 1}, result.counts)
  end)

  it("resumes: a second run skips the trials already in the file", function()
    local marker = temp_name(".marker")
    finally(function() os.remove(marker) end)
    local definition = {
      parameters = {x = {1, 2, 3, 4}}, metric = "loss", file = file, workers = 2, quiet = true, plot = false,
      run = function(config)
        local f = io.open(marker, "a"); f:write(config.x, "\n"); f:close()
        return {loss = -config.x}
      end,
    }
    nn.sweep(definition)
    assert.are.equal(4, #lines_of(marker))
    local result = nn.sweep(definition)
    assert.are.equal(4, #lines_of(marker)) -- nothing ran again
    assert.are.equal(4, #result.trials)
    assert.are.equal(-4, result.trials[1].metrics.loss)
    assert.are.equal(5, #lines_of(file))
  end)

  it("draws random settings that are the same in every run and within their bounds", function()
    local definition = {
      parameters = {lr = nn.sweep.log_uniform(1e-4, 1), units = nn.sweep.int(2, 5), p = nn.sweep.uniform(-1, 1),
                    act = nn.sweep.choice {"tanh", "relu"}, depth = {1, 2}},
      trials = 10, metric = "loss", file = file, workers = 2, quiet = true, plot = false,
      run = function(c) return {loss = c.lr} end,
    }
    local first = nn.sweep(definition)
    assert.are.equal(10, #first.trials)
    local depths = {0, 0}
    for _, r in ipairs(first.trials) do
      local c = r.config
      depths[c.depth] = depths[c.depth] + 1
      assert.is_true(c.lr >= 1e-4 and c.lr <= 1)
      assert.are.equal("integer", math.type(c.units))
      assert.is_true(c.units >= 2 and c.units <= 5)
      assert.is_true(c.p >= -1 and c.p <= 1)
      assert.is_true(c.act == "tanh" or c.act == "relu")
    end
    os.remove(file)
    local second = nn.sweep(definition)
    local a, b = {}, {}
    for i = 1, 10 do
      a[i] = nn.sweep.json.encode(first.trials[i].config)
      b[i] = nn.sweep.json.encode(second.trials[i].config)
    end
    assert.are.same(a, b)
    assert.are.same({5, 5}, depths) -- the grid's values taken in turn
  end)

  it("runs as many settings as trials says, in all, each with every seed", function()
    local function count(definition)
      os.remove(file)
      definition.metric, definition.file, definition.workers = "loss", file, 2
      definition.quiet, definition.plot = true, false
      definition.run = function(c) return {loss = c.lr} end
      local result = nn.sweep(definition)
      return #result.trials, #result.settings
    end
    -- a grid of two values beside a distribution: 4 trials, not 4 of each value
    assert.are.same({4, 4}, {count {parameters = {lr = nn.sweep.log_uniform(1e-3, 1), act = {"tanh", "relu"}},
                                    trials = 4}})
    assert.are.same({4, 4}, {count {parameters = {lr = nn.sweep.log_uniform(1e-3, 1)}, trials = 4}})
    -- each setting with each seed
    assert.are.same({8, 4}, {count {parameters = {lr = nn.sweep.log_uniform(1e-3, 1)}, trials = 4, seeds = 2}})
    -- a space of two settings gives two, whatever trials asks
    assert.are.same({2, 2}, {count {parameters = {lr = nn.sweep.int(1, 2)}, trials = 4}})
  end)

  it("draws the metric against each parameter, naming categories on the axis", function()
    local pictures = temp_name("")
    local wrapper, scripts = pictures .. "-gnuplot.sh", pictures .. "-scripts"
    finally(function() os.execute("rm -rf " .. quote(pictures) .. "* ") end)
    assert(os.execute("mkdir -p " .. quote(scripts)))
    -- a gnuplot that keeps a copy of each script it runs
    write_file(wrapper, "#!/bin/sh\ncp \"$1\" " .. quote(scripts) .. "/$(basename \"$1\").gp\nexec gnuplot \"$1\"\n")
    assert(os.execute("chmod +x " .. quote(wrapper)))
    local real_print = print
    nn.plot.gnuplot, _G.print = wrapper, function() end
    local ok, err = pcall(nn.sweep, {
      parameters = {act = {"tanh", "relu"}, lr = {0.1, 1}}, metric = "loss", file = file, workers = 2,
      plot = pictures, run = function(c) return {loss = c.lr * (c.act == "tanh" and 1 or 2)} end,
    })
    nn.plot.gnuplot, _G.print = "gnuplot", real_print
    assert(ok, err)
    local p = io.popen("cat " .. quote(scripts) .. "/*.gp")
    local all = p:read("a")
    p:close()
    assert.truthy(all:find("set xtics ('tanh' 1, 'relu' 2)", 1, true), all)
    assert.truthy(all:find("set xlabel 'act'", 1, true), all)
    assert.truthy(exists(pictures .. "_act.png"))
    assert.truthy(exists(pictures .. "_lr.png"))
  end)

  it("refuses a results file from a different sweep", function()
    nn.sweep {parameters = {x = {1, 2}}, metric = "loss", file = file, quiet = true, plot = false,
              run = function(c) return {loss = c.x} end}
    expect_error(function()
      nn.sweep {parameters = {x = {1, 2, 3}}, metric = "loss", file = file, quiet = true, plot = false,
                run = function(c) return {loss = c.x} end}
    end, "sweep:", file, "different sweep", "parameters")
    expect_error(function()
      nn.sweep {parameters = {x = {1, 2}}, seeds = 2, metric = "loss", file = file, quiet = true, plot = false,
                run = function(c) return {loss = c.x} end}
    end, "different sweep", "seeds")
    assert.are.equal(3, #lines_of(file)) -- untouched
    local holder = assert(io.open(file, "a")) -- as a sweep that is running holds it
    assert.is_true(nn._C.sys_lock(holder))
    expect_error(function()
      nn.sweep {parameters = {x = {1, 2}}, metric = "loss", file = file, quiet = true, plot = false,
                run = function(c) return {loss = c.x} end}
    end, "in use by another sweep")
    holder:close()
    write_file(file, "x,y\n1,2\n")
    expect_error(function()
      nn.sweep {parameters = {x = {1, 2}}, metric = "loss", file = file, quiet = true, plot = false,
                run = function(c) return {loss = c.x} end}
    end, "not a results file of nn.sweep")
  end)
end)

describe("the processes of a sweep's trials", function()
  local file, pidfile, marker

  -- The pid a trial's background shell command wrote, once it is there.
  local function pid_in(path)
    local f = io.open(path, "rb")
    local pid = f and tonumber(f:read("a"):match("%d+"))
    if f then f:close() end
    return pid
  end

  -- Whether pid still runs once a SIGKILL sent to it had time to land.
  local function survives(pid)
    for _ = 1, 400 do
      if not alive(pid) then return false end
      nn._C.sys_sleep(0.05)
    end
    return true
  end

  before_each(function()
    file, pidfile, marker = temp_name(".jsonl"), temp_name(".pid"), temp_name(".marker")
  end)
  after_each(function()
    -- whatever the outcome, no sleep 1000 is left behind by this spec
    local pid = pid_in(pidfile)
    if pid and alive(pid) then nn._C.sys_kill(pid, "KILL") end
    for _, path in ipairs {file, pidfile, marker} do os.remove(path) end
  end)

  -- A trial that starts a background process and records its pid.
  local function start_sleeper()
    assert(os.execute("sleep 1000 </dev/null >/dev/null 2>&1 & echo $! > " .. quote(pidfile)))
  end

  local function check_sleeper_ended(whom)
    local pid = pid_in(pidfile)
    assert.is_number(pid, "the trial started no process")
    assert.is_false(survives(pid), "the trial's child " .. pid .. " outlived " .. whom)
  end

  it("ends what a trial started when the trial passes its time limit", function()
    local result = nn.sweep {
      -- the limit leaves the trial time to start its child even on a loaded machine
      parameters = {x = {1}}, metric = "loss", file = file, quiet = true, plot = false, time_limit = 5,
      run = function() start_sleeper(); nn._C.sys_sleep(1000) end,
    }
    assert.are.equal("timeout", result.trials[1].status)
    check_sleeper_ended("it")
  end)

  it("ends what a trial left running when it returned", function()
    local result = nn.sweep {
      parameters = {x = {1}}, metric = "loss", file = file, quiet = true, plot = false,
      run = function() start_sleeper(); return {loss = 1} end,
    }
    assert.are.equal("ok", result.trials[1].status)
    check_sleeper_ended("it")
  end)

  it("ends what the trials in flight started when the sweep stops", function()
    expect_error(function()
      nn.sweep {
        parameters = {x = {1, 2}}, metric = "loss", file = file, workers = 2, quiet = true, plot = false,
        run = function(config)
          if config.x == 1 then start_sleeper(); nn._C.sys_sleep(1000) end
          -- the other trial breaks the sweep's contract, once the first runs its
          -- child (the bound only keeps a broken first trial from hanging the spec)
          for _ = 1, 12000 do
            if pid_in(pidfile) then break end
            nn._C.sys_sleep(0.01)
          end
          return {accuracy = 1}
        end,
      }
    end, "run returned no number for the metric 'loss'")
    check_sleeper_ended("the sweep")
  end)

  it("runs trials forked while a DataLoader was prefetching a batch", function()
    -- Large batches, so that the copy of the second one is still running
    -- when the trials fork: each trial must still get that batch.
    local X = nn.randn(8192, 1024)
    local Y = nn.arange(1, 8193):view(8192, 1)
    local batches = nn.data.DataLoader(nn.data.TensorDataset(X, Y), {batch_size = 4096}):iter()
    local first = batches()
    assert.are.equal(4096, first:size(1))
    local result = nn.sweep {
      parameters = {x = {1, 2}}, metric = "loss", file = file, workers = 2, quiet = true, plot = false,
      time_limit = 30, -- a trial left waiting for the parent's copy is timed out, not hung
      run = function()
        local x, y = batches()
        return {loss = (x - X:narrow(1, 4097, 4096)):abs():max():item(), first_label = y[1][1]:item()}
      end,
    }
    for _, r in ipairs(result.trials) do
      assert.are.equal("ok", r.status, r.error)
      assert.are.equal(0, r.metrics.loss)
      assert.are.equal(4097, r.metrics.first_label)
    end
  end)

  it("prints a report with a 1 MiB string metric", function()
    require_nnlua()
    local script = temp_name(".lua")
    finally(function() os.remove(script) end)
    write_file(script, string.format([[
      nn.sweep {
        parameters = {x = {1, 2}}, metric = "loss", file = %q, workers = 1, plot = false,
        run = function(config) return {loss = config.x, text = config.x == 1 and string.rep("x", 1 << 20) or "short"} end,
      }
    ]], file))
    local out, code = run(string.format("%s %s 2>/dev/null", quote(NNLUA), quote(script)))
    assert.are.equal(0, code, out:sub(1, 2000))
    local long_row, short_row
    for line in out:gmatch("[^\n]*") do
      assert.is_nil(line:find("%s$"), "a line of the report ends in white space")
      if line:find(string.rep("x", 1 << 20), 1, true) then long_row = line end
      if line:find(" short ", 1, true) then short_row = line end
    end
    assert.truthy(long_row, "the report lacks the long metric")
    assert.truthy(short_row, "the report lacks the short metric")
    -- the columns after it line up
    assert.are.equal(long_row:find(" ok "), short_row:find(" ok "))
  end)
end)

describe("a malformed sweep", function()
  local file, marker

  before_each(function()
    file = temp_name(".jsonl")
    marker = temp_name(".marker")
  end)
  after_each(function()
    os.remove(file)
    os.remove(marker)
  end)

  -- A definition whose run leaves a mark, with fields replaced by changes.
  local function definition(changes)
    local d = {parameters = {lr = {0.1, 1}}, metric = "loss", file = file, quiet = true, plot = false,
               run = function() write_file(marker, "ran"); return {loss = 1} end}
    for k, v in pairs(changes) do d[k] = v end
    return d
  end

  -- Must raise before any trial starts: no trial ran, no file was written.
  local function refused(changes, ...)
    local err = expect_error(function() nn.sweep(definition(changes)) end, "sweep:", ...)
    assert.is_false(exists(marker), "a trial ran before the error")
    assert.is_false(exists(file), "the results file was written before the error")
    return err
  end

  it("an empty parameter table or an empty list of values", function()
    refused({parameters = {}}, "parameters is empty")
    refused({parameters = {lr = {}}}, "parameter 'lr' has an empty list of values")
    refused({parameters = {lr = nn.sweep.choice {}}}, "parameter 'lr' has an empty list of choices")
  end)

  it("an unknown distribution, or bad bounds", function()
    refused({parameters = {lr = {distribution = "gaussian", low = 0, high = 1}}},
            "parameter 'lr' has an unknown distribution \"gaussian\"", "log_uniform")
    refused({parameters = {lr = nn.sweep.log_uniform(0, 1)}, trials = 3}, "log_uniform needs 0 < low")
    refused({parameters = {lr = nn.sweep.uniform(1, 1)}, trials = 3}, "uniform needs low < high")
    refused({parameters = {n = nn.sweep.int(1.5, 3)}, trials = 3}, "int needs integers")
    refused({parameters = {lr = nn.sweep.uniform(0, 1)}}, "trials must say how many")
  end)

  it("values a results file cannot hold, duplicates, and a reserved name", function()
    refused({parameters = {lr = {0.1, {}}}}, "parameter 'lr': value 2 is a table")
    refused({parameters = {lr = {0.1, 0.1}}}, "parameter 'lr' lists 0.1 twice")
    refused({parameters = {seed = {1, 2}}}, "'seed' cannot be a parameter")
    refused({parameters = {{0.1, 1}}}, "parameters must map names to values")
  end)

  it("a missing run, metric or file, and unknown fields", function()
    refused({run = 42}, "run must be a function")
    refused({metric = false}, "metric must name the metric")
    refused({mode = "lowest"}, "mode must be \"min\"")
    refused({file = false}, "file must name the results file")
    refused({workers = 0}, "workers must be a positive integer")
    refused({time_limit = -1}, "time_limit must be a positive number")
    refused({paramters = {}}, "unknown field \"paramters\"")
    expect_error(function() nn.sweep(nil) end, "sweep: expected a table")
  end)

  it("a run that returns no metric stops the sweep at its first trial, recording nothing", function()
    local err = expect_error(function()
      nn.sweep(definition {workers = 1, run = function() return {accuracy = 1} end})
    end, "sweep: run returned no number for the metric 'loss'", "accuracy")
    assert.is_nil(err:find("\n")) -- one clear line
    local _, records = nn.sweep.read(file)
    assert.are.equal(0, #records)
    expect_error(function()
      nn.sweep(definition {run = function() end})
    end, "run returned nil instead of a table of metrics")
    expect_error(function()
      nn.sweep(definition {run = function() return {loss = "low"} end})
    end, "run returned no number for the metric 'loss' (it returned a string)")
    -- After the fix, the sweep runs.
    local result = nn.sweep(definition {run = function(c) return {loss = c.lr} end})
    assert.are.equal(2, result.counts.ok)
  end)
end)

describe("nn.sweep in separate processes", function()
  local script, files

  setup(function()
    require_nnlua()
    script = temp_name(".lua")
    write_file(script, SCRIPT)
  end)
  teardown(function() os.remove(script) end)

  before_each(function() files = {} end)
  after_each(function() for _, f in ipairs(files) do os.remove(f) end end)

  local function results_file()
    files[#files + 1] = temp_name(".jsonl")
    return files[#files]
  end

  it("scripts/sweep_xor.lua --quick: the example runs, reports and draws", function()
    local file = results_file()
    local stem = file:gsub("%.jsonl$", "")
    local pictures = {}
    for _, name in ipairs {"activation", "hidden", "lr"} do
      pictures[name] = stem .. "_" .. name .. ".png"
      files[#files + 1] = pictures[name] -- removed even when a check below fails
    end
    local root = os.getenv("NN_ROOT") or "."
    local out, code = run(string.format("%s %s --quick --workers 2 --file %s", quote(NNLUA),
                                        quote(root .. "/scripts/sweep_xor.lua"), quote(file)))
    assert.are.equal(0, code, out)
    local by_key, count = records_by_key(file)
    assert.are.equal(24, count) -- 2 lr × 2 hidden × 3 activations × 2 seeds
    for _, r in pairs(by_key) do
      assert.are.equal("ok", r.status)
      assert.is_number(r.metrics.loss)
    end
    assert.truthy(out:find("settings over seeds, best mean first", 1, true), out)
    assert.truthy(out:find("\nbest: activation=%a+ hidden=%d+ lr=[%d.]+: loss [%d.e+-]+ ± [%d.e+-]+ over 2 seeds"), out)
    assert.truthy(out:find("settings reached accuracy 1.0 with every seed and kept it to the end", 1, true), out)
    -- the summary's lowest final loss is the sweep's best setting
    local activation, hidden, lr = out:match("\nbest: activation=(%a+) hidden=(%d+) lr=([%d.]+):")
    assert.truthy(activation, out)
    assert.truthy(out:find(string.format("\nlowest final loss: lr=%s hidden=%s activation=%s,", lr, hidden,
                                         activation), 1, true), out)
    -- and its fastest setting, if any, ended solved with every seed
    lr, hidden, activation = out:match("\nfastest to learn for good: lr=([%d.]+) hidden=(%d+) activation=(%a+),")
    for _, r in pairs(by_key) do
      if r.config.activation == activation and r.config.hidden == tonumber(hidden) and r.config.lr == tonumber(lr) then
        assert.are.equal(1, r.metrics.accuracy)
        assert.is_number(r.metrics.solved_from)
      end
    end
    for _, name in ipairs {"activation", "hidden", "lr"} do
      local picture = pictures[name]
      if out:find("picture: " .. picture, 1, true) then
        local f = assert(io.open(picture, "rb"))
        assert.are.equal("\137PNG", f:read(4))
        f:close()
      else
        assert.truthy(out:find("no picture", 1, true), out) -- gnuplot missing: said so, not an error
      end
    end
  end)

  it("scripts/sweep_xor.lua --out DIR: the results file and the pictures go there", function()
    local dir = temp_name("")
    finally(function() os.execute("rm -rf " .. quote(dir)) end)
    local root = os.getenv("NN_ROOT") or "."
    local out, code = run(string.format("%s %s --quick --workers 2 --out %s", quote(NNLUA),
                                        quote(root .. "/scripts/sweep_xor.lua"), quote(dir .. "/results")))
    assert.are.equal(0, code, out)
    local _, count = records_by_key(dir .. "/results/sweep_xor_quick.jsonl")
    assert.are.equal(24, count)
    assert.truthy(out:find("results in " .. dir .. "/results/sweep_xor_quick.jsonl", 1, true), out)
    assert.truthy(out:find("24 trials (12 settings x 2 seeds; 24 ok", 1, true), out)
  end)

  it("a sweep killed with SIGKILL midway, then run again, has every trial exactly once", function()
    local file = results_file()
    local p = assert(io.popen(string.format("%s %s %s 0.25 2 >/dev/null 2>&1 & echo $!", quote(NNLUA),
                                            quote(script), quote(file))))
    local pid = tonumber(p:read("a"):match("%d+"))
    p:close()
    assert.is_number(pid)
    local t0 = nn.clock()
    while #lines_of(file) < 4 and nn.clock() - t0 < 20 do nn._C.sys_sleep(0.02) end
    assert.is_true(#lines_of(file) >= 4, "the sweep wrote no results within 20 s")
    nn._C.sys_kill(pid, "KILL")
    while alive(pid) and nn.clock() - t0 < 20 do nn._C.sys_sleep(0.01) end
    local _, before = records_by_key(file)
    assert.is_true(before >= 3 and before < 12, "killed with " .. before .. " of 12 trials recorded")

    local out, code = run(string.format("%s %s %s 0 2", quote(NNLUA), quote(script), quote(file)))
    assert.are.equal(0, code, out)
    local by_key, count = records_by_key(file) -- fails on any trial recorded twice
    assert.are.equal(12, count)
    for _, r in pairs(by_key) do assert.are.equal("ok", r.status) end
  end)

  it("under mpirun with 2 ranks writes the same results as 2 local workers", function()
    local out, code = run("command -v mpirun")
    assert(code == 0, "mpirun is not installed: the MPI sweep cannot be tested. "
                      .. "Install Open MPI (apt-get install openmpi-bin libopenmpi-dev; tools/setup.sh does)")
    local local_file, mpi_file = results_file(), results_file()
    out, code = run(string.format("%s %s %s 0.05 2", quote(NNLUA), quote(script), quote(local_file)))
    assert.are.equal(0, code, out)
    out, code = run(string.format("mpirun --oversubscribe --allow-run-as-root -np 2 %s %s %s 0.05",
                                  quote(NNLUA), quote(script), quote(mpi_file)))
    assert.are.equal(0, code, out)
    local local_records, local_count, local_header = records_by_key(local_file)
    local mpi_records, mpi_count, mpi_header = records_by_key(mpi_file)
    assert.are.equal(12, local_count)
    assert.are.equal(12, mpi_count)
    assert.are.equal(local_header.hash, mpi_header.hash)
    local ranks = {}
    for key, r in pairs(local_records) do
      local m = mpi_records[key]
      assert.truthy(m, "the MPI run lacks trial " .. key)
      assert.are.equal(r.status, m.status)
      assert.are.same(r.metrics, m.metrics) -- same seeds, same generator draws
      assert.is_nil(r.rank)
      ranks[m.rank] = true
    end
    assert.is_true(ranks[0] and ranks[1], "trials ran on both ranks")
  end)
end)

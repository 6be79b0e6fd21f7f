-- Benchmark: the cost of nn.sweep's machinery, and its parallel speed-up.
--   nnlua scripts/bench/sweep.lua [--trials N] [--long-trials M] [--seconds S]
-- 1. Overhead per trial: a sweep of N trials whose run does nothing, with
--    one worker; everything it takes (a forked process per trial, the pipe,
--    the JSON line written and synced) divided by N. Target: under 5 ms.
-- 2. Speed-up: M trials of about S seconds of training each (the XOR
--    network, single-threaded), with 1 worker and then with 2. Target: 2
--    workers at least 1.9x faster (on a machine with 2 idle cores).
local nn = require "nn"

local parser = nn.cli.parser("Benchmark: the cost of nn.sweep's machinery, and its parallel speed-up.")
parser:option("--trials", "empty trials for the overhead", "200", nn.cli.whole(1, "--trials"))
parser:option("--long-trials", "trials for the speed-up", "6", nn.cli.whole(1, "--long-trials"))
parser:option("--seconds", "the length of a trial of the speed-up, in seconds", "2.0", function(text)
  local v = tonumber(text)
  if not v or not (v > 0) then return nil, "--seconds needs a positive number, got '" .. text .. "'" end
  return v
end)
local args = parser:parse()
local trials, long_trials, seconds = args.trials, args.long_trials, args.seconds

local dir = os.tmpname()
os.remove(dir)
local function results_file(name) return dir .. "-" .. name .. ".jsonl" end

local function timed_sweep(definition)
  definition.quiet, definition.plot = true, false
  os.remove(definition.file)
  local t0 = nn.clock()
  local result = nn.sweep(definition)
  local elapsed = nn.clock() - t0
  os.remove(definition.file)
  assert(result.counts.ok == #result.trials, "a benchmark trial failed")
  return elapsed, result
end

-- 1. Overhead.
local elapsed = timed_sweep {
  parameters = {i = nn.sweep.int(1, 1000000000)}, trials = trials, metric = "loss",
  file = results_file("empty"), workers = 1,
  run = function() return {loss = 0} end,
}
print(string.format("overhead per trial (empty run, 1 worker, %d trials): %.2f ms  (target < 5 ms)", trials,
                    elapsed / trials * 1000))
elapsed = timed_sweep {
  parameters = {i = nn.sweep.int(1, 1000000000)}, trials = trials, metric = "loss",
  file = results_file("empty2"), workers = 2,
  run = function() return {loss = 0} end,
}
print(string.format("overhead per trial (empty run, 2 workers, %d trials): %.2f ms", trials, elapsed / trials * 1000))

-- 2. Speed-up on trials of about `seconds` each.
local function train(epochs)
  local X = nn.tensor({{0, 0}, {0, 1}, {1, 0}, {1, 1}})
  local Y = nn.tensor({{0}, {1}, {1}, {0}})
  local model = nn.Sequential(nn.Linear(2, 10), nn.Sigmoid(), nn.Linear(10, 10), nn.Sigmoid(),
                              nn.Linear(10, 1), nn.Sigmoid())
  local criterion = nn.BCELoss()
  local optimizer = nn.optim.SGD(model:parameters(), {lr = 1})
  local cost
  for _ = 1, epochs do
    optimizer:zero_grad()
    cost = criterion(model(X), Y)
    cost:backward()
    optimizer:step()
  end
  return cost:item()
end

-- Epochs for a trial of about `seconds`, from the best of three timings
-- (single-threaded, as the trials are).
nn.set_num_threads(1)
local best = math.huge
for _ = 1, 3 do
  local t0 = nn.clock()
  train(2000)
  best = math.min(best, nn.clock() - t0)
end
local epochs = math.max(1, math.floor(2000 * seconds / best))

local timings = {}
for _, workers in ipairs {1, 2} do
  timings[workers] = timed_sweep {
    parameters = {lr = nn.sweep.uniform(0.5, 1.5)}, trials = long_trials, metric = "loss",
    file = results_file("long" .. workers), workers = workers,
    run = function(config)
      return {loss = train(epochs), lr = config.lr}
    end,
  }
  print(string.format("%d trials of ~%.1f s (%d XOR epochs) with %d worker%s: %.2f s", long_trials, seconds, epochs,
                      workers, workers == 1 and "" or "s", timings[workers]))
end
-- Other processes on the cores make the speed-up meaningless: say so.
local function load_average()
  local f = io.open("/proc/loadavg")
  if not f then return nil end
  local load = tonumber(f:read("a"):match("^(%S+)"))
  f:close()
  return load
end
local load = load_average()
print(string.format("speed-up with 2 workers: %.2fx  (target >= 1.9x; cores here: %d%s)", timings[1] / timings[2],
                    nn._C.sys_cpu_count(), load and string.format(", load average %.1f", load) or ""))
if load and load > nn._C.sys_cpu_count() then
  print("note: the machine was busy with other work; run again on idle cores for a meaningful speed-up")
end

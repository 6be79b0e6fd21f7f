-- Benchmark: the engine's pool (engine/src/cpu/parallel.c, OpenBLAS's
-- threads) on one and on two threads, and OpenBLAS's idle policy.
--
-- Part 1, for each operation, the median time at one thread and at two,
-- interleaved round by round so that both see the same load, and their
-- ratio (1 thread / 2 threads: 2.0 is both cores fully used):
--   * elementwise ops over 10M float32 (x + y, sigmoid, ReLU's gradient),
--   * a reduction along rows (sum over the last dim of 4096 x 2560) and a
--     row softmax,
--   * an Adam step over 10M parameters, zero_grad of 10M gradients,
--   * a training step of a 32-layer MLP (width 256, batch 128, ReLU,
--     SGD) and of the Fashion-MNIST network (784-512-10, RMSprop).
-- Part 2, the 32-layer step at two threads in fresh processes, one per
-- OPENBLAS_THREAD_TIMEOUT (OpenBLAS reads it once, as it starts): wall
-- time per step, the process's CPU time per step (what idle spinning
-- costs the machine's other work: the data loader's prefetch thread), and
-- the voluntary context switches per step of all its threads (how often
-- a thread went to sleep and had to be woken).
--
--   nnlua scripts/bench/threads.lua [--quick] [--rounds R] [--timeouts 4,18,22,26]
--                                   [--no-timeouts]
local nn = require "nn"

local parser = nn.cli.parser("Benchmark: large ops, optimizer steps and MLP steps on one and two "
                             .. "threads, and OpenBLAS's thread timeout.")
parser:flag("--quick", "small sizes, one short round: to see that it runs")
parser:option("--rounds", "rounds per figure (the median is reported)", "7", nn.cli.whole(1, "--rounds"))
parser:option("--timeouts", "OPENBLAS_THREAD_TIMEOUT values for part 2, comma-separated", "4,18,20,22,24,26")
parser:flag("--no-timeouts", "skip part 2")
parser:option("--child-steps", "(internal) time the 32-layer step alone, this many steps")
local args = parser:parse()

local quick = args.quick
local ROUNDS = quick and 1 or args.rounds
local N = quick and 200000 or 10 * 1000 * 1000       -- elements of the elementwise ops, Adam's parameters
local ROWS, COLS = quick and 200 or 4096, quick and 500 or 2560
local DEPTH, WIDTH, BATCH = quick and 4 or 32, quick and 64 or 256, quick and 16 or 128

local median = dofile((debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or ".") .. "/lib/median.lua")

-- A classifier's training step on one fixed batch of inputs x: labels
-- 1..10, cross-entropy, the optimizer's step.
local function training_step(model, optimizer, x)
  local labels = {}
  for i = 1, x:size(1) do labels[i] = i % 10 + 1 end
  local y = nn.tensor(labels, {dtype = "int64"})
  local criterion = nn.CrossEntropyLoss()
  return function()
    optimizer:zero_grad()
    criterion(model(x), y):backward()
    optimizer:step()
  end
end

-- The 32-layer MLP's training step.
local function deep_step()
  nn.manual_seed(1)
  local layers = {}
  for _ = 1, DEPTH - 1 do
    layers[#layers + 1] = nn.Linear(WIDTH, WIDTH)
    layers[#layers + 1] = nn.ReLU()
  end
  layers[#layers + 1] = nn.Linear(WIDTH, 10)
  local model = nn.Sequential(table.unpack(layers))
  return training_step(model, nn.optim.SGD(model:parameters(), {lr = 0.01}), nn.randn(BATCH, WIDTH))
end

-- ---- part 2's child: the deep step alone, at the inherited timeout -------
if args.child_steps then
  local steps = math.tointeger(tonumber(args.child_steps)) or 50
  nn.set_num_threads(2)
  local step = deep_step()
  for _ = 1, 10 do step() end
  local stat = io.open("/proc/self/stat")
  local pid = stat and stat:read("n")
  if stat then stat:close() end
  -- every thread's count of times it went to sleep (0 where /proc is not)
  local function switches()
    local total = 0
    local p = pid and io.popen("cat /proc/" .. pid .. "/task/*/status 2>/dev/null")
    if p then
      for line in p:lines() do
        local n = line:match("^voluntary_ctxt_switches:%s*(%d+)")
        if n then total = total + tonumber(n) end
      end
      p:close()
    end
    return total
  end
  local s0, c0, t0 = switches(), os.clock(), nn.clock()
  for _ = 1, steps do step() end
  local wall, cpu, sw = nn.clock() - t0, os.clock() - c0, switches() - s0
  print(string.format("%.6f %.6f %.2f", wall / steps, cpu / steps, sw / steps))
  return
end

-- ---- part 1 ----------------------------------------------------------------
local function rmsprop_step()
  nn.manual_seed(2)
  local model = nn.Sequential(nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 10))
  return training_step(model, nn.optim.RMSprop(model:parameters(), {lr = 0.001}), nn.rand(BATCH, 784))
end

-- Each case: a name, a setup returning the function to time, and how many
-- calls make one round.
local cases = {
  {"x + y (10M float32)", function()
    local x, y = nn.randn(N), nn.randn(N)
    return function() return x + y end
  end, 5},
  {"sigmoid (10M)", function()
    local x = nn.randn(N)
    return function() return x:sigmoid() end
  end, 5},
  {"ReLU forward and backward (10M)", function()
    local x, g = nn.randn(N):requires_grad_(), nn.randn(N)
    return function()
      x.grad = nil
      x:relu():backward(g)
    end
  end, 5},
  {"sum over rows (4096 x 2560 -> 4096)", function()
    local x = nn.randn(ROWS, COLS)
    return function() return x:sum(2) end
  end, 5},
  {"softmax over rows (4096 x 2560)", function()
    local x = nn.randn(ROWS, COLS)
    return function() return x:softmax(2) end
  end, 3},
  {"Adam step (10M parameters)", function()
    local p = nn.randn(N):requires_grad_()
    p.grad = nn.randn(N)
    local opt = nn.optim.Adam({p}, {lr = 1e-3})
    return function() opt:step() end
  end, 5},
  {"zero_grad (10M gradients)", function()
    local model = nn.Linear(N // 1000, 1000)
    model(nn.ones(1, N // 1000)):sum():backward()
    local opt = nn.optim.SGD(model:parameters(), {lr = 0})
    return function() opt:zero_grad() end
  end, 5},
  {string.format("MLP step, %d layers of %d, batch %d (SGD)", DEPTH, WIDTH, BATCH), deep_step, 10},
  {string.format("MLP step, 784-512-10, batch %d (RMSprop)", BATCH), rmsprop_step, 10},
}

print(string.format("nnlua threads benchmark%s: median of %d rounds, each figure per call",
  quick and " (--quick: small sizes)" or "", ROUNDS))
print(string.format("%-44s %11s %11s %8s", "operation", "1 thread", "2 threads", "1t / 2t"))
for _, case in ipairs(cases) do
  local name, setup, calls = case[1], case[2], case[3]
  local fns, times = {}, {[1] = {}, [2] = {}}
  for _, t in ipairs({1, 2}) do
    nn.set_num_threads(t)
    fns[t] = setup()
    fns[t]() -- warm: pool, caches, the storage pool's blocks
  end
  for r = 1, ROUNDS do
    for _, t in ipairs({1, 2}) do
      nn.set_num_threads(t)
      fns[t]()
      local t0 = nn.clock()
      for _ = 1, calls do fns[t]() end
      times[t][r] = (nn.clock() - t0) / calls
    end
  end
  local one, two = median(times[1]), median(times[2])
  print(string.format("%-44s %8.3f ms %8.3f ms %8.2f", name, one * 1e3, two * 1e3, one / two))
  collectgarbage()
end

-- ---- part 2 ----------------------------------------------------------------
if args.no_timeouts then return end
local timeouts = {}
for t in args.timeouts:gmatch("[^,]+") do
  local n = math.tointeger(tonumber(t))
  if not n or n < 4 or n > 30 then
    parser:error("--timeouts needs whole numbers from 4 to 30 separated by commas, got '" .. args.timeouts .. "'")
  end
  timeouts[#timeouts + 1] = n
end
-- this nnlua, for the children
local exe = io.popen("readlink /proc/" .. (io.open("/proc/self/stat"):read("n")) .. "/exe")
local interpreter = exe:read("l") or "nnlua"
exe:close()
local script = arg[0]
local steps = quick and 3 or 100
print()
print(string.format("%d-layer step at 2 threads, by OPENBLAS_THREAD_TIMEOUT (2^n cycles idle spin; "
  .. "median of %d processes of %d steps)", DEPTH, ROUNDS, steps))
print(string.format("%-10s %12s %14s %18s %10s", "timeout", "wall/step", "CPU time/step", "thread sleeps/step", "vs first"))
local first
local results = {}
for _ = 1, ROUNDS do -- processes interleaved across timeouts, as the rounds above
  for _, t in ipairs(timeouts) do
    local cmd = string.format("OPENBLAS_THREAD_TIMEOUT=%d %q %q --child-steps %d%s", t, interpreter, script,
      steps, quick and " --quick" or "")
    local p = assert(io.popen(cmd))
    local out = p:read("a")
    p:close()
    local wall, cpu, sw = out:match("([%d.]+) ([%d.]+) ([%d.]+)")
    if not wall then error("the child for timeout " .. t .. " printed: " .. out) end
    results[t] = results[t] or {wall = {}, cpu = {}, sw = {}}
    table.insert(results[t].wall, tonumber(wall))
    table.insert(results[t].cpu, tonumber(cpu))
    table.insert(results[t].sw, tonumber(sw))
  end
end
for _, t in ipairs(timeouts) do
  local wall, cpu, sw = median(results[t].wall), median(results[t].cpu), median(results[t].sw)
  first = first or wall
  print(string.format("%-10d %9.3f ms %11.3f ms %18.1f %10.3f", t, wall * 1e3, cpu * 1e3, sw, wall / first))
end

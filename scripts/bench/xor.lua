-- Benchmark: the XOR training loop of scripts/xor.lua, alone.
-- Prints microseconds per epoch, peak memory after 1,000 and 10,000 epochs,
-- the start-up time of `nnlua -e ''`, and, where Debian's python3-torch is
-- installed, the same loop in PyTorch (xor_torch.py, one thread) and the ratio.
-- With --instructions, also the instructions of one epoch under callgrind
-- (valgrind): two runs of different lengths, the difference per epoch, so
-- start-up and set-up cancel out; a figure the machine's load leaves alone.
-- Each figure is given for the eager loop and for the same step captured
-- (nn.capture: recorded once, replayed); the target is 1.0 us captured.
--   nnlua scripts/bench/xor.lua [--epochs N] [--runs R] [--instructions]
local nn = require "nn"

local parser = nn.cli.parser("Benchmark: the XOR training loop of scripts/xor.lua, alone.")
parser:option("--epochs", "epochs per run", "10000", nn.cli.whole(1, "--epochs"))
parser:option("--runs", "runs (the median is reported)", "5", nn.cli.whole(1, "--runs"))
parser:flag("--instructions", "also count one epoch's instructions with valgrind --tool=callgrind")
parser:option("--train-only", "train this many epochs and exit (what --instructions runs)", nil,
  nn.cli.whole(1, "--train-only"))
parser:flag("--captured", "with --train-only: train through nn.capture")
local args = parser:parse()
local epochs, runs = args.epochs, args.runs

local function peak_rss_kib()
  local f = io.open("/proc/self/status")
  if not f then return nil end
  local text = f:read("a")
  f:close()
  return tonumber(text:match("VmHWM:%s*(%d+)"))
end

-- One training run; returns seconds per epoch and the peak RSS seen after
-- epoch 1,000 and at the end.
local function train(n, captured)
  nn.manual_seed(777)
  local X = nn.tensor({{0, 0}, {0, 1}, {1, 0}, {1, 1}})
  local Y = nn.tensor({{0}, {1}, {1}, {0}})
  local model = nn.Sequential(
    nn.Linear(2, 10), nn.Sigmoid(), nn.Linear(10, 10), nn.Sigmoid(),
    nn.Linear(10, 10), nn.Sigmoid(), nn.Linear(10, 1), nn.Sigmoid())
  local criterion = nn.BCELoss()
  local optimizer = nn.optim.SGD(model:parameters(), {lr = 1})
  local function train_step(x, y)
    optimizer:zero_grad()
    local cost = criterion(model(x), y)
    cost:backward()
    optimizer:step()
    return cost
  end
  local step = captured and nn.capture(train_step) or train_step
  local rss_1k
  local t0 = nn.clock()
  for epoch = 1, n do
    step(X, Y)
    if epoch == 1000 then rss_1k = peak_rss_kib() end
  end
  local seconds = nn.clock() - t0
  return seconds / n, rss_1k, peak_rss_kib()
end

if args.train_only then
  nn.set_num_threads(1)
  train(args.train_only, args.captured)
  os.exit(0)
end

-- Memory first, in a fresh run: peak RSS after 1,000 epochs and after 10,000.
local _, rss_1k, rss_10k = train(10000)
local function median_time(captured)
  local times = {}
  for r = 1, runs do times[r] = train(epochs, captured) end
  table.sort(times)
  return times[(#times + 1) // 2], times[1]
end
local median, best = median_time(false)
print(string.format("nnlua   XOR epoch: %.2f us (median of %d runs of %d epochs; best %.2f us)",
  median * 1e6, runs, epochs, best * 1e6))
local captured_median, captured_best = median_time(true)
print(string.format("nnlua   XOR epoch, captured (nn.capture): %.2f us (best %.2f us; %.1fx faster than eager)",
  captured_median * 1e6, captured_best * 1e6, median / captured_median))
if rss_1k and rss_10k then
  print(string.format("nnlua   peak RSS: %d KiB after 1,000 epochs, %d KiB after 10,000 (growth %d KiB)",
    rss_1k, rss_10k, rss_10k - rss_1k))
end

-- Start-up: `nnlua -e ''`, less the cost of starting any process (`true`).
local nnlua = arg[-1] or "nnlua"
local function time_command(cmd, n)
  local t0 = nn.clock()
  for _ = 1, n do os.execute(cmd) end
  return (nn.clock() - t0) / n
end
local base = time_command("true", 20)
-- (as from a fresh shell: without the OpenBLAS setting nnlua adds for itself)
local start = time_command(string.format("env -u OPENBLAS_THREAD_TIMEOUT %q -e ''", nnlua), 20)
print(string.format("nnlua   start-up (nnlua -e ''): %.2f ms", (start - base) * 1e3))

if args.instructions then
  local function instructions(n, captured)
    local p = io.popen(string.format("valgrind --tool=callgrind --callgrind-out-file=/dev/null %q %q --train-only %d%s 2>&1",
      nnlua, arg[0], n, captured and " --captured" or ""))
    local out = p:read("a")
    p:close()
    local count = out:match("Collected : (%d+)")
    if not count then error("xor: no instruction count from valgrind:\n" .. out) end
    return tonumber(count)
  end
  local short, long = 1000, 3000
  local per_epoch = (instructions(long) - instructions(short)) / (long - short)
  print(string.format("nnlua   XOR epoch: %.0f instructions (callgrind, one thread)", per_epoch))
  local captured = (instructions(long, true) - instructions(short, true)) / (long - short)
  print(string.format("nnlua   XOR epoch, captured: %.0f instructions (callgrind, one thread)", captured))
end

-- PyTorch, where it is installed: the same loop, one thread.
local here = arg[0]:match("^(.*)/[^/]*$") or "."
local probe = io.popen("/usr/bin/python3 -c 'import torch' 2>/dev/null && echo yes")
local has_torch = probe and probe:read("a"):find("yes")
if probe then probe:close() end
if has_torch then
  local p = io.popen(string.format("%s /usr/bin/python3 %q --epochs %d --runs %d",
    dofile(here .. "/lib/peer.lua").environment(1), here .. "/xor_torch.py", epochs, runs))
  local out = p:read("a")
  p:close()
  io.write(out)
  local torch_us = tonumber(out:match("epoch:%s*([%d%.]+) us"))
  if torch_us then
    print(string.format("ratio   PyTorch / nnlua: %.1fx", torch_us / (median * 1e6)))
  end
else
  print("PyTorch (python3-torch) is not installed: no comparison")
end

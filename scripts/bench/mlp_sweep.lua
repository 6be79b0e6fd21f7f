-- Benchmark: MLP training steps over a grid of widths (16 to 4096), batches
-- (1 to 2048) and depths (2 to 32 layers), at one and two threads, each
-- row beside its bounds and PyTorch 1.13 (mlp_sweep_torch.py, the same
-- networks and steps, run as a subprocess with the same thread count).
--
-- PyTorch's rows, at every thread count, run first, each count in a
-- process of its own that has ended before nnlua times anything (and
-- before nnlua's OpenBLAS starts its threads): nothing of PyTorch's runs
-- beside nnlua's rows, and nnlua's part of the run is the same as with
-- --no-torch. (The twin used to run between nnlua's one-thread and
-- two-thread rows.)
--
-- The network: `depth` layers nn.Linear(width, width) with a ReLU between
-- them, MSE loss against a fixed target, SGD (lr 0.01). A step is
-- zero_grad, forward, loss, backward, step.
--
-- Each row prints
--   * nnlua's time per step;
--   * the GEMM bound: the step's matrix products alone, on tensors of the
--     step's shapes, in the same process at the same thread count (through
--     nn.matmul: the path the step's products take, OpenBLAS's sgemm, or
--     sgemv and the kernels of engine/src/cpu/gemm_kernels.h for one row,
--     tiny and skinny products), and step / bound (target <= 1.05 where
--     products dominate: width >= 256 and batch >= 64);
--   * for batch 1, the gemv bound: each layer's products as matrix-vector
--     products (w x and w^T g through sgemv) and an outer product for the
--     weight gradient, and step / bound (target <= 1.2);
--   * PyTorch's time per step, and PyTorch / nnlua (target >= 1).
-- A row that misses a target ends with its name.
--
--   nnlua scripts/bench/mlp_sweep.lua [--quick] [--threads 1,2] [--rounds R]
--                                     [--seconds S] [--no-torch]
--                                     [--rows W,B,D;W,B,D...] [--phases]
--
-- --quick runs a few small rows in short rounds: to see that it works.
-- --rows times only the rows given (width, batch, depth each).
-- --phases adds a line under each row: the step's time split into
-- zero_grad, forward with the loss, backward and the optimizer's step
-- (medians over the rounds), to show where a step's time beyond its
-- products goes.
-- Each figure is the median of R rounds, each about S seconds of steps,
-- the steps and the bare products interleaved round by round so that both
-- see the same load. Times on a loaded machine say little: run it on a
-- quiet one.
local nn = require "nn"

local parser = nn.cli.parser("Benchmark: MLP training steps over widths, batches and depths, beside their "
                             .. "GEMM and gemv bounds and PyTorch 1.13.")
parser:flag("--quick", "a few small rows in short rounds: to see that it works")
parser:option("--threads", "the thread counts to time, comma-separated", "1,2")
parser:option("--rounds", "rounds per figure (the median is reported)", "7", nn.cli.whole(1, "--rounds"))
parser:option("--seconds", "the length of a round, in seconds", "0.05")
parser:flag("--no-torch", "skip PyTorch's figures")
parser:option("--rows", "only these rows: width,batch,depth separated by semicolons")
parser:flag("--phases", "split each row's step into zero_grad, forward, backward and step")
local args = parser:parse()
local threads_list = {}
for t in args.threads:gmatch("[^,]+") do
  local n = math.tointeger(tonumber(t))
  if not n or n < 1 then parser:error("--threads needs whole numbers >= 1 separated by commas, got '" .. args.threads .. "'") end
  threads_list[#threads_list + 1] = n
end
local ROUNDS, ROUND_SECONDS = args.rounds, tonumber(args.seconds)
if not ROUND_SECONDS or ROUND_SECONDS <= 0 then parser:error("--seconds needs a positive number, got '" .. args.seconds .. "'") end

-- The grid: {width, batch, depth}. Not the full product (a 32-layer
-- 4096-wide step at batch 2048 is 6.6 TFLOP): each width at batch 64 and
-- depth 2; each batch at width 1024 (and the small ones at 256 and 4096,
-- where the bounds are sgemv's); each depth at width 256, batch 64; and
-- the corners of many small layers and few large ones.
local GRID = {
  {16, 64, 2}, {64, 64, 2}, {256, 64, 2}, {1024, 64, 2}, {4096, 64, 2},
  {1024, 1, 2}, {1024, 2, 2}, {1024, 4, 2}, {1024, 8, 2}, {1024, 16, 2}, {1024, 256, 2}, {1024, 2048, 2},
  {256, 1, 2}, {256, 8, 2}, {4096, 1, 2}, {4096, 8, 2},
  {256, 64, 8}, {256, 64, 32}, {256, 512, 8},
  {16, 1, 32}, {16, 2048, 2}, {64, 8, 8}, {4096, 512, 2},
}
if args.quick then
  GRID = {{16, 4, 2}, {64, 1, 2}, {128, 64, 3}}
  ROUNDS, ROUND_SECONDS = math.min(ROUNDS, 2), 0.002
end
if args.rows then
  GRID = {}
  for row in args.rows:gmatch("[^;]+") do
    local w, b, d = row:match("^%s*(%d+)%s*,%s*(%d+)%s*,%s*(%d+)%s*$")
    if not w or tonumber(w) < 1 or tonumber(b) < 1 or tonumber(d) < 1 then
      parser:error("--rows needs width,batch,depth (whole numbers >= 1) separated by semicolons, got '" .. args.rows .. "'")
    end
    GRID[#GRID + 1] = {tonumber(w), tonumber(b), tonumber(d)}
  end
end

local median = dofile((debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or ".") .. "/lib/median.lua")

-- A step function; with `phases` (a table), each call adds the seconds of
-- its four parts to phases[1..4].
local function new_step(width, batch, depth, phases)
  nn.manual_seed(1)
  local layers = {}
  for i = 1, depth do
    layers[#layers + 1] = nn.Linear(width, width)
    if i < depth then layers[#layers + 1] = nn.ReLU() end
  end
  local model = nn.Sequential(table.unpack(layers))
  local criterion = nn.MSELoss()
  local optimizer = nn.optim.SGD(model:parameters(), {lr = 0.01})
  local x, y = nn.rand(batch, width), nn.rand(batch, width)
  if phases then
    local clock = nn.clock
    return function()
      local t0 = clock()
      optimizer:zero_grad()
      local t1 = clock()
      local loss = criterion(model(x), y)
      local t2 = clock()
      loss:backward()
      local t3 = clock()
      optimizer:step()
      local t4 = clock()
      phases[1], phases[2] = phases[1] + (t1 - t0), phases[2] + (t2 - t1)
      phases[3], phases[4] = phases[3] + (t3 - t2), phases[4] + (t4 - t3)
    end
  end
  return function()
    optimizer:zero_grad()
    local loss = criterion(model(x), y)
    loss:backward()
    optimizer:step()
  end
end

-- Median seconds of each part of a step over ROUNDS rounds of `count` steps.
local function phase_times(width, batch, depth, count)
  local sums = {0, 0, 0, 0}
  local step = new_step(width, batch, depth, sums)
  for _ = 1, 3 do step() end
  local rounds = {{}, {}, {}, {}}
  for r = 1, ROUNDS do
    for i = 1, 4 do sums[i] = 0 end
    for _ = 1, count do step() end
    for i = 1, 4 do rounds[i][r] = sums[i] / count end
  end
  local out = {}
  for i = 1, 4 do out[i] = median(rounds[i]) end
  return out
end

-- The step's products alone, outputs from the engine's pool as in the
-- step: each layer's x w^T and g^T x, and g w for all but the first (the
-- input needs no gradient). Each layer has its own weight, input and
-- gradient, as in the step: a 32-layer step walks 32 weights through the
-- caches, where one weight used 32 times stays in L2 and times products
-- the step cannot have.
local function gemm_products(width, batch, depth)
  local xs, ws, gs = {}, {}, {}
  for i = 1, depth do xs[i], ws[i], gs[i] = nn.rand(batch, width), nn.rand(width, width), nn.rand(batch, width) end
  local wts, gts = {}, {}
  for i = 1, depth do wts[i], gts[i] = ws[i]:t(), gs[i]:t() end
  return function()
    nn.no_grad(function()
      for i = 1, depth do xs[i]:matmul(wts[i]) end
      for i = depth, 1, -1 do
        gts[i]:matmul(xs[i])
        if i > 1 then gs[i]:matmul(ws[i]) end
      end
    end)
  end
end

-- The same as matrix-vector products (batch 1): w x and w^T g (g^T w)
-- through sgemv, the weight gradient g x^T an outer product.
local function gemv_products(width, depth)
  local x, w, g = nn.rand(width), nn.rand(width, width), nn.rand(width)
  local column, row = g:view(width, 1), x:view(1, width)
  return function()
    nn.no_grad(function()
      for i = 1, depth do
        w:matmul(x)
        column:matmul(row)
        if i > 1 then g:matmul(w) end
      end
    end)
  end
end

-- How many calls of fn make a round of about ROUND_SECONDS.
local function calls_per_round(fn)
  fn()
  local t0 = nn.clock()
  fn()
  local once = math.max(nn.clock() - t0, 1e-7)
  return math.max(1, math.floor(ROUND_SECONDS / once))
end

-- Median seconds per call of each function, rounds interleaved.
local function time_interleaved(fns)
  local counts, times = {}, {}
  for i, fn in ipairs(fns) do
    for _ = 1, 3 do fn() end -- warm: pool, caches, BLAS threads
    counts[i], times[i] = calls_per_round(fn), {}
  end
  for r = 1, ROUNDS do
    for i, fn in ipairs(fns) do
      local t0 = nn.clock()
      for _ = 1, counts[i] do fn() end
      times[i][r] = (nn.clock() - t0) / counts[i]
    end
  end
  local out = {}
  for i = 1, #fns do out[i] = median(times[i]) end
  return out, counts
end

-- PyTorch's step times for every row at one thread count, keyed
-- "width batch depth"; nil when PyTorch is not installed.
local function torch_times(threads)
  local here = arg[0]:match("^(.*)/[^/]*$") or "."
  local probe = io.popen("/usr/bin/python3 -c 'import torch' 2>/dev/null && echo yes")
  local has_torch = probe and probe:read("a"):find("yes")
  if probe then probe:close() end
  if not has_torch then return nil end
  local rows = {}
  for _, r in ipairs(GRID) do rows[#rows + 1] = table.concat(r, ",") end
  -- the same threads and OpenBLAS kernels as nnlua's (lib/peer.lua)
  local cmd = string.format("%s /usr/bin/python3 %q --threads %d --rounds %d --seconds %s --grid %q",
    dofile(here .. "/lib/peer.lua").environment(threads), here .. "/mlp_sweep_torch.py", threads, ROUNDS,
    tostring(ROUND_SECONDS),
    table.concat(rows, ";"))
  local p = io.popen(cmd)
  local out = p:read("a")
  p:close()
  local times = {}
  for w, b, d, ms in out:gmatch("(%d+) (%d+) (%d+) step ([%d%.e%-+]+) ms") do
    times[w .. " " .. b .. " " .. d] = tonumber(ms) / 1e3
  end
  return times, out:match("torch ([^,%s]+)")
end

local function ratio_text(x) return x and string.format("%5.2f", x) or "    -" end

-- PyTorch's figures for every thread count before any of nnlua's, then a
-- pause, so that the machine is as quiet for nnlua's rows as without it.
local torch_by_threads, version_by_threads = {}, {}
if not args.no_torch then
  for _, threads in ipairs(threads_list) do
    torch_by_threads[threads], version_by_threads[threads] = torch_times(threads)
  end
  os.execute("sleep 1")
end

for _, threads in ipairs(threads_list) do
  nn.set_num_threads(threads)
  local torch, version = torch_by_threads[threads], version_by_threads[threads]
  print(string.format("%d thread%s; times in ms per step (median of %d rounds); PyTorch %s", threads,
    threads == 1 and "" or "s", ROUNDS, torch and version or (args.no_torch and "skipped" or "not installed")))
  print(string.format("%5s %5s %5s %10s %10s %6s %10s %6s %10s %6s  %s", "width", "batch", "depth",
    "nnlua", "gemm bound", "ratio", "gemv bound", "ratio", "PyTorch", "torch/", "misses"))
  for _, row in ipairs(GRID) do
    local width, batch, depth = row[1], row[2], row[3]
    local fns = {new_step(width, batch, depth), gemm_products(width, batch, depth)}
    if batch == 1 then fns[3] = gemv_products(width, depth) end
    local t, counts = time_interleaved(fns)
    local step, gemm, gemv = t[1], t[2], t[3]
    local torch_step = torch and torch[width .. " " .. batch .. " " .. depth]
    local misses = {}
    if width >= 256 and batch >= 64 and step / gemm > 1.05 then misses[#misses + 1] = "gemm bound" end
    if gemv and step / gemv > 1.2 then misses[#misses + 1] = "gemv bound" end
    if torch_step and torch_step < step then misses[#misses + 1] = "PyTorch" end
    print(string.format("%5d %5d %5d %10.4f %10.4f %6s %10s %6s %10s %6s  %s", width, batch, depth,
      step * 1e3, gemm * 1e3, ratio_text(step / gemm), gemv and string.format("%.4f", gemv * 1e3) or "-",
      ratio_text(gemv and step / gemv), torch_step and string.format("%.4f", torch_step * 1e3) or "-",
      ratio_text(torch_step and torch_step / step), table.concat(misses, ", ")))
    if args.phases then
      local p = phase_times(width, batch, depth, counts[1])
      print(string.format("%17s phases (ms): zero_grad %.4f, forward+loss %.4f, backward %.4f, step %.4f", "",
        p[1] * 1e3, p[2] * 1e3, p[3] * 1e3, p[4] * 1e3))
    end
    collectgarbage()
  end
end

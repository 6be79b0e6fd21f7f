-- Benchmark: training steps of the convolutional network of
-- scripts/cnn_fashion_mnist.lua (two blocks conv 3x3 - BatchNorm2d - ReLU -
-- MaxPool2d, then 3136 -> 128 -> 10 with dropout; cross-entropy; Adam) at
-- batch 128, on one and on two threads.
--
-- For each thread count it prints
--   * nnlua's time per training step;
--   * the GEMM bound: the time OpenBLAS needs, in the same process, for
--     just the matrix products of the step in im2col form (each
--     convolution's forward W x columns, timed in two arrangements, one
--     product per sample and one per chunk of samples whose columns fit a
--     core's L2 (the step's, conv.c's chunk_of), the faster of the two
--     taken as the bound; its weight gradient g x columns^T
--     and, for the second, its input gradient W^T x g, each one product
--     over the whole batch; the dense layers' products; an operand is a
--     transposed view where the step's is, W^T and g^T, since OpenBLAS
--     packs it with another copy), and the ratio step / bound (the
--     target: within 1.15);
--   * where Debian's python3-torch is installed, PyTorch 1.13's time for the
--     same step (cnn_torch.py, run with the same thread count) and the
--     ratio nnlua / PyTorch (the target: no slower);
-- and the peak resident memory of this process and of PyTorch's.
--
--   nnlua scripts/bench/cnn.lua [--threads 1,2] [--rounds R] [--steps S] [--no-torch]
--
-- Each figure is the median of R rounds of S steps; the steps and the bare
-- products alternate round by round, so that both see the machine's load.
local nn = require "nn"

local parser = nn.cli.parser("Benchmark: training steps of the lesson's CNN at batch 128, beside the "
                             .. "GEMM bound and PyTorch, on one and on two threads.")
parser:option("--threads", "the thread counts to time, comma-separated", "1,2")
parser:option("--rounds", "rounds per figure (the median is reported)", "7", nn.cli.whole(1, "--rounds"))
parser:option("--steps", "training steps per round", "5", nn.cli.whole(1, "--steps"))
parser:flag("--no-torch", "skip PyTorch's figures")
local args = parser:parse()
local thread_counts = {}
for t in args.threads:gmatch("[^,]+") do
  local n = math.tointeger(tonumber(t))
  if not n or n < 1 then parser:error("--threads needs whole numbers >= 1 separated by commas, got '" .. args.threads .. "'") end
  thread_counts[#thread_counts + 1] = n
end

local BATCH = 128

local median = dofile((debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or ".") .. "/lib/median.lua")

local function new_step()
  nn.manual_seed(1)
  local model = nn.Sequential(
    nn.Conv2d(1, 32, 3, {padding = 1, bias = false}), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
    nn.Conv2d(32, 64, 3, {padding = 1, bias = false}), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(2),
    nn.Flatten(),
    nn.Linear(64 * 7 * 7, 128), nn.ReLU(), nn.Dropout(0.3),
    nn.Linear(128, 10))
  local criterion = nn.CrossEntropyLoss()
  local optimizer = nn.optim.Adam(model:parameters(), {lr = 0.001})
  return function(x, y)
    optimizer:zero_grad()
    local loss = criterion(model(x), y)
    loss:backward()
    optimizer:step()
    return loss
  end
end

-- The step's products in im2col form: a convolution of C -> O channels,
-- kernel 3x3, over L positions per image is W (O, 9C) x columns (9C, L)
-- forward, for each of the N samples (per_sample) or for each chunk of
-- samples side by side (otherwise: the step's layout, chunks of columns
-- and output within 1 MB, as conv.c's chunk_of), g (O, N L) x columns^T
-- for the weight, W^T (9C, O) x g (O, N L) for the input (the first
-- convolution's input needs none), the last two over the whole batch.
-- Returns the function running them all, and their multiply-adds.
local operands = {} -- shared by products of one shape (as the step's chunks share one scratch)
local function bare_products(per_sample)
  local list, macs = {}, 0
  local function product(m, k, n, trans_b, batch, trans_a)
    local key = table.concat({m, k, n, tostring(trans_b), batch or 1, tostring(trans_a)}, " ")
    operands[key] = operands[key] or {trans_a and nn.rand(k, m):t() or nn.rand(m, k),
      trans_b and nn.rand(n, k):t() or batch and nn.rand(batch, k, n) or nn.rand(k, n)}
    local a, b = operands[key][1], operands[key][2]
    list[#list + 1] = function() return a:matmul(b) end
    macs = macs + m * k * n * (batch or 1)
  end
  local function conv(c, o, positions, input_grad)
    local rows, width = 9 * c, BATCH * positions
    if per_sample then
      product(o, rows, positions, false, BATCH)
    else
      local chunk = math.max(1, math.min(BATCH, (1 << 20) // ((rows + o) * positions * 4)))
      for first = 1, BATCH, chunk do product(o, rows, math.min(chunk, BATCH - first + 1) * positions) end
    end
    product(o, width, rows, true)  -- weight gradient
    if input_grad then product(rows, o, width, false, nil, true) end -- W^T, a view of the weight
  end
  conv(1, 32, 28 * 28, false)
  conv(32, 64, 14 * 14, true)
  local function linear(i, o)
    product(BATCH, i, o, true) -- x W^T
    product(o, BATCH, i, false, nil, true) -- g^T x, g^T a view
    product(BATCH, o, i)       -- g W
  end
  linear(3136, 128)
  linear(128, 10)
  return function() nn.no_grad(function() for _, f in ipairs(list) do f() end end) end, macs
end

local function peak_rss_mib()
  local f = io.open("/proc/self/status")
  if not f then return nil end
  local kb = f:read("a"):match("VmHWM:%s*(%d+)")
  f:close()
  return kb and tonumber(kb) / 1024
end

local labels = {}
for i = 1, BATCH do labels[i] = (i * 7) % 10 + 1 end
local x, y = nn.rand(BATCH, 1, 28, 28), nn.tensor(labels, {dtype = "int64"})
local step = new_step()
local by_sample, macs = bare_products(true)
local by_chunk = bare_products(false)
print(string.format("the lesson's CNN, batch %d: %.2f GFLOP of matrix products per step", BATCH, 2 * macs / 1e9))

local results = {}
for _, threads in ipairs(thread_counts) do
  nn.set_num_threads(threads)
  for _ = 1, 3 do step(x, y) by_sample() by_chunk() collectgarbage() end -- warm: scratch, pools, BLAS buffers
  local step_times, sample_times, chunk_times = {}, {}, {}
  for r = 1, args.rounds do
    local t0 = nn.clock()
    for _ = 1, args.steps do step(x, y):item() end
    step_times[r] = (nn.clock() - t0) / args.steps
    t0 = nn.clock()
    for _ = 1, args.steps do by_sample() end
    sample_times[r] = (nn.clock() - t0) / args.steps
    t0 = nn.clock()
    for _ = 1, args.steps do by_chunk() end
    chunk_times[r] = (nn.clock() - t0) / args.steps
    collectgarbage() -- the products' results, untimed: two lists of them would raise the peak RSS printed below
  end
  local t, bs, bc = median(step_times), median(sample_times), median(chunk_times)
  local b = math.min(bs, bc)
  results[threads] = t
  print(string.format("nnlua %d thread%s: step %.2f ms; GEMM bound %.2f ms (%.1f GFLOP/s; forward per sample %.2f, "
    .. "per chunk %.2f); step / bound %.2f", threads, threads == 1 and " " or "s", t * 1e3, b * 1e3,
    2 * macs / b / 1e9, bs * 1e3, bc * 1e3, t / b))
end
print(string.format("nnlua peak RSS: %.0f MiB", peak_rss_mib() or 0))

if not args.no_torch then
  local here = (arg and arg[0] or "scripts/bench/cnn.lua"):match("^(.*)/[^/]*$") or "."
  dofile(here .. "/lib/peer.lua").compare {script = here .. "/cnn_torch.py", threads = thread_counts,
    args = string.format("--rounds %d --steps %d", args.rounds, args.steps), results = results,
    nnlua_over_torch = true, target = " (target <= 1)"}
end

-- Benchmark: training steps of the Fashion-MNIST network (784-512-10:
-- Linear, ReLU, Linear, cross-entropy, RMSprop lr 0.001) at batch 128, and
-- one epoch of Fashion-MNIST, on one and on two threads.
--
-- For each thread count it prints
--   * nnlua's time per training step, and the GFLOP/s that time makes of
--     the step's matrix-product work;
--   * the time of those matrix products alone, through the same OpenBLAS in
--     the same process (the floor a step cannot go under), and the step's
--     overhead over it (the target: within 15%);
--   * an epoch over Fashion-MNIST's 60,000 training images (nn.data's
--     DataLoader, shuffled, batch 128), and the share of it spent loading
--     and batching (the target: under 2%), and the epoch over its GEMM
--     bound: as many rounds of the five products alone as it has steps
--     (the target: within 1.1x);
--   * where Debian's python3-torch is installed, the same in PyTorch 1.13
--     (mlp_torch.py, run with the same thread count).
--
--   nnlua scripts/bench/mlp.lua [--threads 1,2] [--rounds R] [--steps S]
--                               [--no-epoch] [--no-torch] [--gc incremental|generational]
--
-- --gc switches Lua's collector before anything runs (nnlua starts in
-- generational mode): tensors that outlive two minor collections, as the
-- loader's batches do (they live through their step), are only freed by a
-- major collection, which the tensors' memory does not bring on, so new
-- batches come from fresh pages. The loading share shows the difference.
--
-- The machine's other work shows in the times: each figure is the median
-- of R rounds of S steps, with the steps and the bare products interleaved
-- round by round so that both see the same load.
local nn = require "nn"

local parser = nn.cli.parser("Benchmark: training steps of the Fashion-MNIST network, and an epoch, "
                             .. "on one and on two threads.")
parser:option("--threads", "the thread counts to time, comma-separated", "1,2")
parser:option("--rounds", "rounds per figure (the median is reported)", "15", nn.cli.whole(1, "--rounds"))
parser:option("--steps", "training steps per round", "40", nn.cli.whole(1, "--steps"))
parser:flag("--no-epoch", "skip the epoch over Fashion-MNIST")
parser:flag("--no-torch", "skip PyTorch's figures")
parser:option("--gc", "Lua's collector mode"):choices({"incremental", "generational"})
local args = parser:parse()
local opts = {threads = {}, rounds = args.rounds, steps = args.steps, epoch = not args.no_epoch,
              torch = not args.no_torch, gc = args.gc}
for t in args.threads:gmatch("[^,]+") do
  local n = math.tointeger(tonumber(t))
  if not n or n < 1 then parser:error("--threads needs whole numbers >= 1 separated by commas, got '" .. args.threads .. "'") end
  opts.threads[#opts.threads + 1] = n
end

if opts.gc then collectgarbage(opts.gc) end

local BATCH, IN, HIDDEN, OUT = 128, 784, 512, 10
-- The matrix products of one step. The first layer's input needs no
-- gradient, so its input-gradient product is never computed.
local FLOPS = 2 * BATCH * IN * HIDDEN      -- forward, layer 1: x W1^T
            + 2 * BATCH * HIDDEN * OUT     -- forward, layer 2: h W2^T
            + 2 * BATCH * HIDDEN * OUT     -- dW2 = g2^T h
            + 2 * BATCH * HIDDEN * OUT     -- dh  = g2 W2
            + 2 * BATCH * IN * HIDDEN      -- dW1 = g1^T x

local median = dofile((debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or ".") .. "/lib/median.lua")

local function new_model()
  local model = nn.Sequential(nn.Linear(IN, HIDDEN), nn.ReLU(), nn.Linear(HIDDEN, OUT))
  local criterion = nn.CrossEntropyLoss()
  local optimizer = nn.optim.RMSprop(model:parameters(), {lr = 0.001})
  local function step(x, y)
    optimizer:zero_grad()
    local loss = criterion(model(x), y)
    loss:backward()
    optimizer:step()
    return loss
  end
  return step
end

-- A batch of the right shape: pixel-like values in [0, 1], labels 1..10.
local function random_batch()
  local labels = {}
  for i = 1, BATCH do labels[i] = (i * 7) % OUT + 1 end
  return nn.rand(BATCH, IN), nn.tensor(labels, {dtype = "int64"})
end

-- The five products of a step on tensors of the step's shapes, alone:
-- each is one cblas_sgemm call with the layout the step uses (x W^T, g W,
-- g^T x), outputs from the engine's storage pool as in the step. Returns
-- a function running all five, and the list of {name, function}.
local function bare_products()
  local x, w1, h, w2 = nn.rand(BATCH, IN), nn.rand(HIDDEN, IN), nn.rand(BATCH, HIDDEN), nn.rand(OUT, HIDDEN)
  local g2, g1 = nn.rand(BATCH, OUT), nn.rand(BATCH, HIDDEN)
  local w1t, w2t, g2t, g1t = w1:t(), w2:t(), g2:t(), g1:t()
  local list = {
    {"x W1^T (128x784 by 784x512)", function() return x:matmul(w1t) end},
    {"h W2^T (128x512 by 512x10)", function() return h:matmul(w2t) end},
    {"g2^T h (10x128 by 128x512)", function() return g2t:matmul(h) end},
    {"g2 W2 (128x10 by 10x512)", function() return g2:matmul(w2) end},
    {"g1^T x (512x128 by 128x784)", function() return g1t:matmul(x) end},
  }
  local all = function()
    nn.no_grad(function()
      for i = 1, #list do list[i][2]() end
    end)
  end
  return all, list
end

-- Each product alone (median of rounds of 50 calls), in microseconds.
local function time_each_product(threads)
  nn.set_num_threads(threads)
  local _, list = bare_products()
  local parts = {}
  nn.no_grad(function()
    for _, p in ipairs(list) do
      for _ = 1, 20 do p[2]() end
      local times = {}
      for r = 1, opts.rounds do
        local t0 = nn.clock()
        for _ = 1, 50 do p[2]() end
        times[r] = (nn.clock() - t0) / 50
      end
      parts[#parts + 1] = string.format("%s %.0f us", p[1], median(times) * 1e6)
    end
  end)
  return parts
end

local function time_steps(threads)
  nn.set_num_threads(threads)
  nn.manual_seed(1)
  local step = new_model()
  local x, y = random_batch()
  local products = bare_products()
  for _ = 1, 20 do step(x, y); products() end -- warm: pool, caches, BLAS threads
  local step_times, product_times = {}, {}
  for r = 1, opts.rounds do
    local t0 = nn.clock()
    for _ = 1, opts.steps do step(x, y) end
    step_times[r] = (nn.clock() - t0) / opts.steps
    t0 = nn.clock()
    for _ = 1, opts.steps do products() end
    product_times[r] = (nn.clock() - t0) / opts.steps
  end
  return median(step_times), median(product_times)
end

-- The training set, from nn.data (Debian's dataset-fashion-mnist), and an
-- iterator over its shuffled batches of 128 from nn.data.DataLoader.
local function training_set()
  local t0 = nn.clock()
  local train = nn.data.fashion_mnist()
  return {dataset = train, images = train.images, seconds = nn.clock() - t0}
end

local function batches(set, seed)
  local loader = nn.data.DataLoader(set.dataset, {batch_size = BATCH, shuffle = true, seed = seed})
  return loader:iter()
end

-- One epoch of training; the loader's time is measured inside it (the
-- clock around each call of its iterator), so that it counts what loading
-- costs beside the steps: cache misses, page faults of new batches, the
-- collector's work on them.
local function time_epoch(set, threads)
  nn.set_num_threads(threads)
  nn.manual_seed(1)
  local step = new_model()
  local clock = nn.clock
  local next_batch = batches(set, 7)
  local loading, steps = 0, 0
  local t0 = clock()
  while true do
    local t1 = clock()
    local x, y = next_batch()
    loading = loading + (clock() - t1)
    if not x then break end
    step(x, y)
    steps = steps + 1
  end
  return clock() - t0, loading, steps
end

print(string.format("nnlua   784-512-10 MLP, batch %d, RMSprop: %.1f MFLOP of matrix products per step (Lua collector: %s)",
  BATCH, FLOPS / 1e6, opts.gc or "nnlua's default"))
local results, bounds = {}, {}
for _, threads in ipairs(opts.threads) do
  local step, products = time_steps(threads)
  results[threads], bounds[threads] = step, products
  print(string.format("nnlua   %d thread%s: step %.3f ms (%.1f GFLOP/s); the five sgemm alone %.3f ms (%.1f GFLOP/s); step / sgemm %.3f (target <= 1.15)",
    threads, threads == 1 and " " or "s", step * 1e3, FLOPS / step / 1e9, products * 1e3,
    FLOPS / products / 1e9, step / products))
end
for _, threads in ipairs(opts.threads) do
  print(string.format("nnlua   %d thread%s, each product: %s", threads, threads == 1 and " " or "s",
    table.concat(time_each_product(threads), ", ")))
end
if results[1] and results[2] then
  print(string.format("nnlua   two threads / one thread: %.3f (target <= 1)", results[2] / results[1]))
end

if opts.epoch then
  local set = training_set()
  print(string.format("nnlua   data: Fashion-MNIST's %d training images, read in %.2f s (not part of the epoch)",
    set.images:size(1), set.seconds))
  for _, threads in ipairs(opts.threads) do
    local epoch, loading, steps = time_epoch(set, threads)
    print(string.format("nnlua   %d thread%s: epoch %.2f s (%d steps, %.3f ms/step); loading and batching %.3f s = %.2f%% (target < 2%%); epoch / GEMM bound (%d x the five sgemm) %.3f (target <= 1.1)",
      threads, threads == 1 and " " or "s", epoch, steps, epoch / steps * 1e3, loading, loading / epoch * 100,
      steps, epoch / (steps * bounds[threads])))
  end
end

-- PyTorch, where it is installed: the same network, steps and epoch, at the
-- same thread counts, in a separate process each.
if opts.torch then
  local here = arg[0]:match("^(.*)/[^/]*$") or "."
  dofile(here .. "/lib/peer.lua").compare {script = here .. "/mlp_torch.py", threads = opts.threads,
    args = string.format("--rounds %d --steps %d%s", opts.rounds, opts.steps, opts.epoch and "" or " --no-epoch"),
    results = results}
end

-- Benchmark: data-parallel training on this machine's cores (nn.distributed).
--
-- It prints
--   * the epoch time of Fashion-MNIST's lesson network (784-512-10, RMSprop,
--     128 images a step) on 1 rank and on 2 ranks (1 BLAS thread each),
--     against the machine's ceiling: two independent single-rank epochs run
--     at once show what two cores give together; 2 ranks at best do the
--     epoch in half that time (the target: 95% of it);
--   * the time and bus bandwidth of nn.distributed.all_reduce on a 25 MB
--     float32 gradient bucket over 2 ranks, against Open MPI's own
--     MPI_Allreduce called from C (allreduce_mpi.c, built here with mpicc)
--     (the target: no more than 5% slower);
--   * the share of the gradient exchange hidden behind backward: a
--     DataParallel backward's extra time over a backward without exchange
--     (no_sync), set against the exchange of the same buckets alone.
--
--   nnlua scripts/bench/distributed.lua [--rounds R] [--mb 25] [--images N] [--no-epoch]
--
-- Each figure is a median of R rounds; the machine's other work shows in
-- them. The ranks are started with mpirun (--oversubscribe, so that the
-- figures come also where mpirun counts fewer slots than processes).
local nn = require "nn"

local parser = nn.cli.parser("Benchmark: data-parallel training on this machine's cores (nn.distributed).")
parser:option("--rounds", "rounds per figure (the median is reported)", "9", nn.cli.whole(1, "--rounds"))
parser:option("--mb", "the all_reduce's bucket, in megabytes", "25", nn.cli.whole(1, "--mb"))
parser:option("--images", "training images in the timed epoch (at most 60000)", "60000", nn.cli.whole(128, "--images"))
parser:flag("--no-epoch", "skip the epoch times")
parser:option("--worker", "(internal) what a rank started by this benchmark measures"):choices({"epoch", "allreduce", "overlap"})
local opts = parser:parse()

local function median(list)
  local sorted = {table.unpack(list)}
  table.sort(sorted)
  return sorted[(#sorted + 1) // 2]
end

---------------------------------------------------------------------------
-- The workers: each prints "result NAME VALUE" lines on rank 1.
if opts.worker then
  local dist = nn.distributed
  local rank, size = dist.init({timeout = 300})
  nn.set_num_threads(1)
  local function result(name, value) if rank == 1 then print(string.format("result %s %.9f", name, value)) end end

  if opts.worker == "epoch" then
    local train_set = nn.data.fashion_mnist()
    local n = math.min(opts.images, train_set.images:size(1))
    local train = nn.data.TensorDataset(train_set.images:narrow(1, 1, n), train_set.labels:narrow(1, 1, n))
    local loader = nn.data.DataLoader(train, {batch_size = 128 // size, sampler = dist.Sampler(train, {seed = 1})})
    nn.manual_seed(1)
    local model = dist.DataParallel(nn.Sequential(nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 10)))
    local optimizer = nn.optim.RMSprop(model:parameters(), {lr = 0.001, alpha = 0.9, eps = 1e-7})
    local criterion = nn.CrossEntropyLoss()
    dist.barrier()
    local t0 = nn.clock()
    for x, y in loader:iter() do
      optimizer:zero_grad()
      criterion(model(x), y):backward()
      optimizer:step()
    end
    dist.barrier()
    result("epoch", nn.clock() - t0)
  elseif opts.worker == "allreduce" then
    local t = nn.ones(opts.mb * 1024 * 1024 // 4)
    dist.all_reduce(t) -- warm-up
    local times = {}
    for r = 1, opts.rounds do
      dist.barrier()
      local t0 = nn.clock()
      dist.all_reduce(t)
      times[r] = nn.clock() - t0
    end
    result("allreduce", median(times))
  else -- overlap: a network whose gradients fill several buckets
    nn.manual_seed(1)
    local net = nn.Sequential(nn.Linear(1024, 1024), nn.ReLU(), nn.Linear(1024, 1024), nn.ReLU(),
                              nn.Linear(1024, 1024), nn.ReLU(), nn.Linear(1024, 10))
    local model = dist.DataParallel(net, {bucket_mb = 4})
    local labels = {}
    for i = 1, 64 do labels[i] = (i - 1) % 10 + 1 end
    local x, y = nn.randn(64, 1024), nn.tensor(labels, {dtype = "int64"})
    local criterion = nn.CrossEntropyLoss()
    local function backward(sync)
      local loss = criterion(model(x), y)
      model:zero_grad()
      dist.barrier()
      local t0 = nn.clock()
      if sync then loss:backward() else model:no_sync(function() loss:backward() end) end
      return nn.clock() - t0
    end
    local grads = {}
    for _, p in ipairs(net:parameters()) do grads[#grads + 1] = nn.zeros(p:numel()) end
    local function exchange()
      dist.barrier()
      local t0 = nn.clock()
      local works = {}
      for i, g in ipairs(grads) do works[i] = dist.all_reduce(g, "mean", {async = true}) end
      for _, w in ipairs(works) do w:wait() end
      return nn.clock() - t0
    end
    backward(true); backward(false); exchange()
    local with, without, alone = {}, {}, {}
    for r = 1, opts.rounds do
      with[r], without[r], alone[r] = backward(true), backward(false), exchange()
    end
    result("backward_sync", median(with))
    result("backward_local", median(without))
    result("exchange", median(alone))
  end
  return
end

---------------------------------------------------------------------------
-- The driver.
local function quote(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end
local function capture(cmd)
  local p = assert(io.popen(cmd .. " 2>&1"))
  local out = p:read("a")
  local ok = p:close()
  if not ok then error("failed: " .. cmd .. "\n" .. out, 0) end
  return out
end
local NNLUA = arg[-1] or "nnlua"
local SCRIPT = arg[0]
-- mpirun refuses root unless told (containers often run as root)
local MPIRUN = "mpirun --oversubscribe" .. (capture("id -u"):match("%d+") == "0" and " --allow-run-as-root" or "")

local function results(out)
  local r = {}
  for name, value in out:gmatch("result (%S+) (%S+)") do r[name] = tonumber(value) end
  return r
end

local function worker(ranks, what)
  local cmd = string.format("%s -np %d %s %s --worker %s --rounds %d --mb %d --images %d", MPIRUN, ranks,
    quote(NNLUA), quote(SCRIPT), what, opts.rounds, opts.mb, opts.images)
  return results(capture(cmd))
end

print(string.format("nn.distributed on %d cores", nn._C.sys_cpu_count()))

if not opts.no_epoch then
  local one, two, pair = {}, {}, {}
  local rounds = math.max(1, math.min(opts.rounds, 3))
  for r = 1, rounds do
    one[r] = worker(1, "epoch").epoch
    two[r] = worker(2, "epoch").epoch
    -- two single-rank epochs at once: what the machine gives two ranks
    local a = io.popen(string.format("%s -np 1 %s %s --worker epoch --images %d 2>&1", MPIRUN, quote(NNLUA), quote(SCRIPT), opts.images))
    local b = io.popen(string.format("%s -np 1 %s %s --worker epoch --images %d 2>&1", MPIRUN, quote(NNLUA), quote(SCRIPT), opts.images))
    local ta, tb = results(a:read("a")).epoch, results(b:read("a")).epoch
    a:close(); b:close()
    pair[r] = math.max(ta, tb)
  end
  local t1, t2, tp = median(one), median(two), median(pair)
  print(string.format("epoch (%d images, 128 a step): 1 rank %.2f s, 2 ranks %.2f s (speed-up %.2fx)", opts.images,
    t1, t2, t1 / t2))
  print(string.format("ceiling: two single-rank epochs at once take %.2f s, so 2 ranks at best %.2f s: "
    .. "2 ranks reach %.0f%% of it (target 95%%)", tp, tp / 2, 100 * (tp / 2) / t2))
end

local bytes = opts.mb * 1024 * 1024
local ours = worker(2, "allreduce").allreduce
local mpicc = capture("command -v mpicc || true"):match("%S+")
local theirs
if mpicc then
  local dir = capture("mktemp -d"):match("%S+")
  local source = SCRIPT:gsub("[^/]*$", "") .. "allreduce_mpi.c"
  capture(string.format("%s -O2 -o %s/allreduce_mpi %s", mpicc, dir, quote(source)))
  theirs = tonumber(capture(string.format("%s -np 2 %s/allreduce_mpi %d %d", MPIRUN, dir, bytes, opts.rounds))
    :match("seconds (%S+)"))
  os.execute("rm -rf " .. quote(dir))
end
-- a ring all_reduce moves 2 (n - 1) / n of the buffer through each rank
local function bus(seconds) return bytes / seconds / 1e9 end
print(string.format("all_reduce of %d MB over 2 ranks: nn.distributed %.1f ms (%.2f GB/s)", opts.mb, ours * 1e3,
  bus(ours)))
if theirs then
  print(string.format("  Open MPI's MPI_Allreduce from C: %.1f ms (%.2f GB/s); nn.distributed costs %+.1f%% "
    .. "(target <= +5%%)", theirs * 1e3, bus(theirs), 100 * (ours / theirs - 1)))
else
  print("  (mpicc not found: install libopenmpi-dev for Open MPI's own figure)")
end

local o = worker(2, "overlap")
local extra = o.backward_sync - o.backward_local
local hidden = math.max(0, math.min(1, 1 - extra / o.exchange))
print(string.format("backward with the exchange %.1f ms, without %.1f ms; the exchange alone %.1f ms: "
  .. "%.0f%% of it hidden behind backward", o.backward_sync * 1e3, o.backward_local * 1e3, o.exchange * 1e3,
  100 * hidden))

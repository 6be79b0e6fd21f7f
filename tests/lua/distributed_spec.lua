-- nn.distributed: collectives, DataParallel training that matches a single
-- process step by step, ranks that fail, under mpirun with 2 and 3 ranks
-- (shared memory and TCP); a group of one without mpirun; Sampler and
-- DataLoader's sampler option; misuse.
local nn = require "nn"
local support = dofile((os.getenv("NN_ROOT") or ".") .. "/tests/lua/support.lua")
local expect_error = support.expect_error

local NNLUA = os.getenv("NNLUA")
local DIR = (os.getenv("NN_ROOT") or ".") .. "/tests/lua/distributed/"

local quote, run = support.quote, support.run

local function require_mpirun()
  local _, code = run("command -v mpirun")
  assert(code == 0, "mpirun is not installed: nn.distributed cannot be tested. Install Open MPI "
                    .. "(apt-get install openmpi-bin; tools/setup.sh does)")
end

-- `mpirun -np ranks nnlua script args...` (extra: mpirun's own options),
-- stopped after `limit` seconds (status 124): a hang is a failure, not a
-- stuck suite.
local function mpirun(ranks, extra, script, args, limit, env)
  require_mpirun()
  return run(string.format("%stimeout -k 5 %d mpirun --oversubscribe --allow-run-as-root %s -np %d %s %s %s",
    env or "", limit or 60, extra or "", ranks, quote(NNLUA), quote(DIR .. script), args or ""))
end

-- The test device (tests/c/fake_cuda.c) as every rank's "cuda": it has no
-- NCCL, so its tensors travel through host memory over MPI.
local function on_test_device()
  local fake = assert(os.getenv("NN_FAKE_CUDA_LIBRARY"), "ctest sets NN_FAKE_CUDA_LIBRARY")
  return "NN_CUDA_LIBRARY=" .. quote(fake) .. " NN_FAKE_CUDA=1 "
end

local function nnlua(script, args)
  return run(string.format("%s %s %s", quote(NNLUA), quote(DIR .. script), args or ""))
end

local function assert_ranks_say(out, ranks, text)
  for r = 1, ranks do
    local line = string.format("rank %d of %d: %s", r, ranks, text)
    assert(out:find(line, 1, true), "no line '" .. line .. "' in:\n" .. out)
  end
end

local TRAINING = "4 0.0005 sgd:1 sgd:2 adam:1 adam:2" -- steps, bucket_mb (several buckets), runs

describe("nn.distributed under mpirun", function()
  for _, ranks in ipairs({2, 3}) do
    it("gives every collective's result on " .. ranks .. " ranks, and misuse is an error naming it", function()
      local out, code = mpirun(ranks, nil, "collectives.lua")
      assert.are.equal(0, code, out)
      assert_ranks_say(out, ranks, "collectives agree")
    end)

    it("trains like a single process on " .. ranks .. " ranks: SGD and Adam, with and without no_sync", function()
      local out, code = mpirun(ranks, nil, "train.lua", TRAINING)
      assert.are.equal(0, code, out)
      for _, run_name in ipairs({"sgd, 1", "sgd, 2", "adam, 1", "adam, 2"}) do
        assert_ranks_say(out, ranks, run_name .. " batches a step: 4 steps agree")
      end
    end)

    it("trains like a single process on " .. ranks .. " ranks over TCP only (as between machines)", function()
      local out, code = mpirun(ranks, "--mca btl tcp,self", "train.lua", "3 25 sgd:2 adam:1")
      assert.are.equal(0, code, out)
      assert_ranks_say(out, ranks, "sgd, 2 batches a step: 3 steps agree")
      assert_ranks_say(out, ranks, "adam, 1 batches a step: 3 steps agree")
    end)
  end

  it("gives every collective's result on CUDA tensors without NCCL (through host memory), 3 ranks", function()
    local out, code = mpirun(3, nil, "collectives.lua", "cuda", nil, on_test_device())
    assert.are.equal(0, code, out)
    assert_ranks_say(out, 3, "collectives agree on cuda")
  end)

  it("trains a model on CUDA like a single process, 2 ranks, without NCCL", function()
    local out, code = mpirun(2, nil, "train.lua", "3 0.0005 sgd:2 adam:1 device=cuda", nil, on_test_device())
    assert.are.equal(0, code, out)
    assert_ranks_say(out, 2, "sgd, 2 batches a step: 3 steps agree on cuda")
    assert_ranks_say(out, 2, "adam, 1 batches a step: 3 steps agree on cuda")
  end)

  -- Within 30 s: timeout stops mpirun then, and its status is 124.
  it("stops the other ranks, naming it, when a rank is killed", function()
    local out, code = mpirun(3, nil, "fail.lua", "kill", 30)
    assert.are_not.equal(0, code, out)
    assert.are_not.equal(124, code, "the ranks did not stop within 30 s:\n" .. out)
    assert(out:find("distributed: rank 3 %(pid %d+%) died") or out:find("after rank 3 %(pid %d+%) died"),
      "no rank named rank 3 as dead:\n" .. out)
    assert.is_nil(out:find("finished, which it must not", 1, true), out)
  end)

  it("stops the other ranks with its error when a rank raises one", function()
    local out, code = mpirun(2, nil, "fail.lua", "raise", 30)
    assert.are_not.equal(0, code, out)
    assert.are_not.equal(124, code, "the ranks did not stop within 30 s:\n" .. out)
    assert(out:find("distributed: rank 2 failed: [^\n]*fail.lua:%d+: rank 2 gives up on purpose %(rank 1 was waiting"),
      "rank 1 did not name rank 2 and its error:\n" .. out)
  end)
end)

describe("scripts/distributed_fashion_mnist.lua --quick", function()
  local ROOT = os.getenv("NN_ROOT") or "."
  local script = quote(ROOT .. "/scripts/distributed_fashion_mnist.lua")
  local function accuracy(out) return tonumber(out:match("test accuracy: (%d%.%d+)")) end

  it("reaches the single process's accuracy on 2 ranks", function()
    local f = io.open("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz", "rb")
    if not f then
      pending("Debian's dataset-fashion-mnist is not installed")
      return
    end
    f:close()
    require_mpirun()
    local alone, code = run(string.format("%s %s --quick --threads 1", quote(NNLUA), script))
    assert.are.equal(0, code, alone)
    local two
    two, code = run(string.format("timeout -k 5 60 mpirun --oversubscribe --allow-run-as-root -np 2 %s %s --quick",
      quote(NNLUA), script))
    assert.are.equal(0, code, two)
    assert(two:find("2 ranks, batches of 64 per rank (128 a step)", 1, true), two)
    local a, b = accuracy(alone), accuracy(two)
    assert(a and b, "no test accuracy printed:\n" .. alone .. "\n" .. two)
    assert(a > 0.6, "the single process learned little: " .. a)
    -- rank r's batch k holds the epoch order's positions r, r + 2, ... of
    -- the single process's batch k: the same global batches
    assert(math.abs(a - b) <= 0.01, string.format("accuracy %.4f alone, %.4f on 2 ranks", a, b))
  end)
end)

describe("nn.distributed without mpirun", function()
  local dist = nn.distributed

  it("names the call made before init()", function()
    local out = support.nnlua_output("nn.distributed.rank()")
    assert(out:find("distributed.rank: call nn.distributed.init() first", 1, true), out)
    out = support.nnlua_output("nn.distributed.all_reduce(nn.tensor({1}))")
    assert(out:find("distributed.all_reduce: call nn.distributed.init() first", 1, true), out)
  end)

  it("is a group of one where every collective keeps its tensor", function()
    assert.are.same({1, 1}, {dist.init()})
    assert.are.equal(1, dist.rank())
    assert.are.equal(1, dist.size())
    assert.is_true(dist.is_initialized())
    local t = nn.tensor({1, 2, 3})
    assert.are.equal(t, dist.all_reduce(t, "mean"))
    assert.are.same({1, 2, 3}, t:totable())
    assert.are.same({{1, 2, 3}}, dist.all_gather(t):totable())
    assert.are.same({4, 5}, dist.reduce_scatter(nn.tensor({{4, 5}})):totable())
    assert.are.same({1, 2, 3}, dist.broadcast(t, 1):totable())
    assert.are.same({1, 2, 3}, dist.all_reduce(t, {async = true}):wait():totable())
    dist.barrier()
    expect_error(function() dist.init({timeout = -1}) end, "distributed.init: timeout must be a positive number")
    expect_error(function() dist.init({time = 3}) end, "distributed.init", "time")
    expect_error(function() dist.broadcast(t, 2) end, "distributed.broadcast: rank 2 is not in the group (1..1)")
    expect_error(function() dist.broadcast(t, 1.5) end, "distributed.broadcast: src must be a rank")
    expect_error(function() dist.all_reduce(t, 3) end, "distributed.all_reduce: the operation must be a string")
    expect_error(function() dist.reduce_scatter(nn.zeros(2, 2)) end, "distributed.reduce_scatter: the tensor's first dimension")
    expect_error(function() dist.all_gather("x") end, "distributed.all_gather: expected a tensor, got string")
    assert.are.equal("none", dist.get_backend())
    assert.are.equal("none", dist.get_backend("cuda"))
    expect_error(function() dist.get_backend("cpu", 2) end, "distributed.get_backend: takes one argument")
    expect_error(function() dist.get_backend(1) end, "distributed.get_backend: device must be \"cpu\" or \"cuda\"")
  end)

  it("runs the training script alone as a single process", function()
    local out, code = nnlua("train.lua", "2 25 sgd:2 adam:1")
    assert.are.equal(0, code, out)
    assert_ranks_say(out, 1, "sgd, 2 batches a step: 2 steps agree")
  end)

  it("DataParallel: the module's state dict without prefix, no_sync's results, misuse named", function()
    dist.init()
    nn.manual_seed(3)
    local inner = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1))
    local model = dist.DataParallel(inner, {bucket_mb = 1})
    assert.are.equal(inner, model.module)
    local keys = {}
    for k in pairs(model:state_dict()) do keys[#keys + 1] = k end
    table.sort(keys)
    assert.are.same({"0.bias", "0.weight", "2.bias", "2.weight"}, keys)
    local x = nn.randn(4, 2)
    assert.are.same(support.flat(inner(x)), support.flat(model(x)))
    local a, b = model:no_sync(function() return 1, 2 end)
    assert.are.same({1, 2}, {a, b})
    expect_error(function() model:no_sync(function() error("inside") end) end, "inside")
    assert.is_true(model.require_sync) -- restored after the error
    expect_error(function() dist.DataParallel({}) end, "DataParallel: expected a module, got table")
    expect_error(function() dist.DataParallel(inner, {bucket_mb = 0}) end, "DataParallel: bucket_mb must be a positive number")
    expect_error(function() dist.DataParallel(inner, {bucketmb = 1}) end, "DataParallel", "bucketmb")
    expect_error(function() model:no_sync(3) end, "DataParallel:no_sync: expected a function, got number")
  end)

  describe("Sampler", function()
    local data = nn.data.TensorDataset(nn.arange(1, 11):view(10, 1))

    local function shards(opts, epoch)
      local all = {}
      for rank = 1, opts.size do
        local o = {}
        for k, v in pairs(opts) do o[k] = v end
        o.rank = rank
        local s = dist.Sampler(data, o)
        if epoch then s:set_epoch(epoch) end
        all[rank] = s:indices():totable()
      end
      return all
    end

    it("gives each rank its interleaved share, padded with the first samples to equal lengths", function()
      assert.are.same({{1, 4, 7, 10}, {2, 5, 8, 1}, {3, 6, 9, 2}}, shards({size = 3, shuffle = false}))
      assert.are.same({{1, 4, 7}, {2, 5, 8}, {3, 6, 9}}, shards({size = 3, shuffle = false, drop_last = true}))
      assert.are.equal(4, #dist.Sampler(data, {size = 3, rank = 2}))
      assert.are.equal(3, #dist.Sampler(data, {size = 3, rank = 2, drop_last = true}))
    end)

    it("shuffles by seed and epoch, the same on every rank, covering the dataset", function()
      local e1, e2 = shards({size = 2, seed = 5}, 1), shards({size = 2, seed = 5}, 2)
      assert.are.same(e1, shards({size = 2, seed = 5}, 1))
      assert.are_not.same(e1, e2)
      for _, epoch in ipairs({e1, e2}) do
        local seen = {}
        for _, shard in ipairs(epoch) do
          assert.are.equal(5, #shard)
          for _, i in ipairs(shard) do seen[i] = (seen[i] or 0) + 1 end
        end
        for i = 1, 10 do assert.are.equal(1, seen[i]) end
      end
    end)

    it("drives a DataLoader, which sets its epoch", function()
      local sampler = dist.Sampler(data, {size = 2, rank = 2, seed = 9})
      local loader = nn.data.DataLoader(data, {batch_size = 2, sampler = sampler})
      assert.are.equal(3, #loader)
      for epoch = 1, 2 do
        loader:set_epoch(epoch)
        local got = {}
        for x in loader:iter() do
          for _, v in ipairs(support.flat(x)) do got[#got + 1] = v end
        end
        sampler:set_epoch(epoch)
        assert.are.same(sampler:indices():totable(), got)
      end
      expect_error(function() nn.data.DataLoader(data, {sampler = sampler, shuffle = true}) end,
        "DataLoader: give sampler or shuffle, not both")
      expect_error(function() nn.data.DataLoader(data, {sampler = {}}) end, "DataLoader: sampler must have sampler:indices()")
      local bad = {indices = function() return {11} end}
      setmetatable(bad, {__len = function() return 1 end})
      expect_error(function() for _ in nn.data.DataLoader(data, {sampler = bad}):iter() do end end,
        "DataLoader: the sampler gave an index outside 1..10")
    end)

    it("names its misuse", function()
      expect_error(function() dist.Sampler(data, {size = 2, rank = 3}) end, "Sampler: rank must be an integer in 1..2, got 3")
      expect_error(function() dist.Sampler(data, {size = 0, rank = 1}) end, "Sampler: size must be a positive integer")
      expect_error(function() dist.Sampler(5) end, "Sampler: expected a dataset")
      expect_error(function() dist.Sampler(data, {seed = 1.5, size = 1, rank = 1}) end, "Sampler: seed must be an integer")
      expect_error(function() dist.Sampler(data, {size = 1, rank = 1}):set_epoch(-1) end, "Sampler:set_epoch: expected a non-negative integer")
      expect_error(function() dist.Sampler(data, {size = 1, rank = 1, shufle = true}) end, "Sampler", "shufle")
    end)
  end)
end)

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
local function mpirun(ranks, extra, script, args, limit)
  require_mpirun()
  return run(string.format("timeout -k 5 %d mpirun --oversubscribe --allow-run-as-root %s -np %d %s %s %s",
    limit or 60, extra or "", ranks, quote(NNLUA), quote(DIR .. script), args or ""))
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

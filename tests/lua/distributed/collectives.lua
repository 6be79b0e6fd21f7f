-- Run by distributed_spec.lua under mpirun: each collective's result on
-- every rank, for each dtype and operation, and the errors of misuse; on
-- the device arg[1] names ("cpu" unless given; "cuda": the test device,
-- whose tensors travel through host memory, or a GPU's, over NCCL).
local dist = nn.distributed
local rank, size = dist.init()
local device = arg[1] or "cpu"
local function on(t) return device == "cpu" and t or t:to(device) end
assert(dist.rank() == rank and dist.size() == size and rank >= 1 and rank <= size)

local function check(cond, what) if not cond then error(string.format("rank %d: %s", rank, what), 2) end end
local function flat(v, out)
  out = out or {}
  if type(v) == "table" then for _, x in ipairs(v) do flat(x, out) end else out[#out + 1] = v end
  return out
end
local function same(t, expected, what)
  local got, want = flat(t:totable()), flat(expected)
  local equal = #got == #want
  for i = 1, #got do equal = equal and got[i] == want[i] end
  if not equal then
    local function text(list)
      local parts = {}
      for i, x in ipairs(list) do parts[i] = tostring(x) end
      return table.concat(parts, ",")
    end
    check(false, string.format("%s: got {%s}, expected {%s}", what, text(got), text(want)))
  end
end
local function expect_error(fn, fragment)
  local ok, err = pcall(fn)
  check(not ok, "expected an error containing " .. fragment)
  check(tostring(err):find(fragment, 1, true), string.format("error %q lacks %q", tostring(err), fragment))
end

-- rank r holds {r, 10 r, -r}
local sum_r = size * (size + 1) // 2
for _, dtype in ipairs({"float32", "float64", "int64"}) do
  local function mine() return on(nn.tensor({rank, 10 * rank, -rank}, {dtype = dtype})) end
  local t = mine()
  check(dist.all_reduce(t) == t, "all_reduce returns its tensor")
  same(t, {sum_r, 10 * sum_r, -sum_r}, dtype .. " sum")
  same(dist.all_reduce(mine(), "max"), {size, 10 * size, -1}, dtype .. " max")
  same(dist.all_reduce(mine(), "min"), {1, 10, -size}, dtype .. " min")
  if dtype ~= "int64" then
    local m = dist.all_reduce(mine(), "mean")
    check(math.abs(m[1]:item() - sum_r / size) < 1e-6, dtype .. " mean")
    -- a gradient bucket's size (the vector loops and their tails):
    -- every element the sum (exact: integers) divided by size, to the bit
    local n = 3 * 65536 + 7
    local function bucket(r) return nn.arange(n, {dtype = dtype}):remainder(1000):add(1):mul(r):view(n, 1) end
    local expected = bucket(sum_r):div(size)
    local mean = dist.all_reduce(on(bucket(rank)), "mean"):cpu()
    check(mean:eq(expected):all():item(), dtype .. " mean of " .. n .. " elements")
  end
  same(dist.broadcast(mine(), size), {size, 10 * size, -size}, dtype .. " broadcast from the last rank")
  local all = dist.all_gather(mine())
  check(all:dim() == 2 and all:size(1) == size and all:size(2) == 3, "all_gather's shape")
  check(all.device == device, "all_gather's result is on the tensor's device")
  for r = 1, size do same(all[r], {r, 10 * r, -r}, dtype .. " all_gather row " .. r) end
  -- block b of rank r is {r + b, b}: rank b gets {sum_r + size b, size b}
  local blocks = {}
  for b = 1, size do blocks[b] = {rank + b, b} end
  same(dist.reduce_scatter(on(nn.tensor(blocks, {dtype = dtype}))), {sum_r + size * rank, size * rank},
    dtype .. " reduce_scatter")
end
-- bool: sum and max are an or, min an and
same(dist.all_reduce(on(nn.tensor({rank == 1, true, false}, {dtype = "bool"}))), {true, true, false}, "bool sum")
same(dist.all_reduce(on(nn.tensor({rank == 1, true, false}, {dtype = "bool"})), "min"),
  {size == 1, true, false}, "bool min")

-- a view that is not contiguous: the result lands in the view
local base = on(nn.tensor({{rank, 0}, {rank, 0}}))
dist.all_reduce(base:t()[1])
same(base, {{sum_r, 0}, {sum_r, 0}}, "all_reduce into a column view")

-- async: a Work per collective, waited in any order
local a, b = on(nn.full({1000}, rank)), on(nn.full({7}, 2 * rank))
local wa, wb = dist.all_reduce(a, {async = true}), dist.all_reduce(b, "max", {async = true})
check(wb:wait() == b and wa:wait() == a, "work:wait() returns the tensor")
check(wa:is_completed(), "a waited work is completed")
check(a[1000]:item() == sum_r and b[1]:item() == 2 * size, "async results")
check(a.device == device and base.device == device, "results stay on the tensors' device")
-- how the device's tensors travel: over MPI, or NCCL's where every rank has it
local transport = dist.get_backend(device)
if device == "cpu" then
  check(transport == "mpi", "CPU tensors go over MPI, not " .. transport)
else
  local expected = os.getenv("NN_EXPECT_TRANSPORT") or "mpi through host memory"
  check(transport == expected, device .. " tensors go over " .. transport .. ", expected " .. expected)
end
dist.barrier()
dist.barrier({async = true}):wait()

-- misuse: a Lua error naming the operation, and the group goes on
expect_error(function() dist.all_reduce(nn.tensor({1}, {dtype = "int64"}), "mean") end, "distributed.all_reduce: mean needs a floating-point tensor")
expect_error(function() dist.all_reduce(nn.tensor({1}), "product") end, "distributed.all_reduce: unknown operation \"product\"")
expect_error(function() dist.all_reduce({1, 2}) end, "distributed.all_reduce: expected a tensor")
expect_error(function() dist.broadcast(nn.tensor({1}), size + 1) end, "distributed.broadcast: rank " .. (size + 1) .. " is not in the group")
expect_error(function() dist.broadcast(nn.tensor({1}), 0) end, "distributed.broadcast: rank 0 is not in the group")
expect_error(function() dist.reduce_scatter(nn.zeros(size + 1, 2)) end, "distributed.reduce_scatter: the tensor's first dimension must be the number of ranks")
expect_error(function() dist.all_gather(nn.tensor({1}), {sync = true}) end, "distributed.all_gather")
-- a captured step cannot replay a collective: the capture is refused and
-- every call runs eagerly, so every rank still takes part in each
local step = nn.capture(function(x) return dist.all_reduce(x * 1) end)
for call = 1, 3 do
  same(step(on(nn.tensor({rank, 1}))), {sum_r, size}, "a step with a collective, call " .. call)
end
check(tostring(step:why()):find("distributed.all_reduce exchanges tensors with the other ranks", 1, true),
  "capture's reason: " .. tostring(step:why()))
expect_error(function() dist.get_backend("tpu") end, "distributed.get_backend: device must be \"cpu\" or \"cuda\"")
expect_error(function() dist.all_reduce(on(nn.tensor({1}, {dtype = "int32"}))) end, "distributed.all_reduce: the collectives take float32")
same(dist.all_reduce(nn.tensor({1})), {size}, "the group works after misuse")
print(string.format("rank %d of %d: collectives agree%s", rank, size, device == "cpu" and "" or " on " .. device))

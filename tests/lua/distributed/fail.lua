-- Run by distributed_spec.lua under mpirun: the ranks exchange gradients
-- step after step until, at step 5, the last rank dies (kill) or raises an
-- error (raise). The others must stop, naming it.
--   mpirun -np N nnlua fail.lua kill|raise
local dist = nn.distributed
local rank, size = dist.init()
local model = dist.DataParallel(nn.Linear(20, 20))
local x = nn.randn(8, 20)
for step = 1, 1000 do
  if rank == size and step == 5 then
    if arg[1] == "kill" then nn._C.sys_kill(nn._C.sys_getpid(), "KILL") end
    error("rank " .. rank .. " gives up on purpose")
  end
  model(x):sum():backward()
end
print("rank " .. rank .. " finished, which it must not")

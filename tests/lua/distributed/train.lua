-- Run by distributed_spec.lua under mpirun: every rank trains a
-- DataParallel model on its share of each global batch while, beside it, a
-- plain copy of the model trains on the whole global batch (what a single
-- process would do). After every step their parameters must agree, to
-- float32 rounding.
--   mpirun -np N nnlua train.lua STEPS BUCKET_MB sgd:1 adam:2 ... [device=cuda]
-- Each run is an optimizer and a number of batches per step: with more
-- than one, all but the last run backward under model:no_sync. With
-- device=cuda the DataParallel model lives there (the single process's
-- copy stays on the CPU).
local dist = nn.distributed
local rank, size = dist.init()
local steps, bucket_mb = tonumber(arg[1]), tonumber(arg[2])
local loss_fn = nn.MSELoss()
local device = "cpu"
local runs = {}
for i = 3, #arg do
  local named = arg[i]:match("^device=(%a+)$")
  if named then device = named else runs[#runs + 1] = arg[i] end
end

local function net() return nn.Sequential(nn.Linear(5, 16), nn.Tanh(), nn.Linear(16, 8), nn.Tanh(), nn.Linear(8, 3)) end

local function optimizer(name, params)
  if name == "adam" then return nn.optim.Adam(params, {lr = 0.01}) end
  return nn.optim.SGD(params, {lr = 0.1, momentum = 0.9})
end

local function train(optimizer_name, accumulate)
  nn.manual_seed(1)
  local reference = net()
  -- The ranks start from different weights: DataParallel must copy rank 1's.
  nn.manual_seed(100 + rank)
  local module = net()
  if rank == 1 then module:load_state_dict(reference:state_dict()) end
  local model = dist.DataParallel(module:to(device), {bucket_mb = bucket_mb})
  local opt, ref_opt = optimizer(optimizer_name, model:parameters()), optimizer(optimizer_name, reference:parameters())

  local per_rank = 3
  local global = per_rank * size
  nn.manual_seed(7)
  local X = nn.randn(steps * accumulate * global, 5)
  local Y = nn.randn(steps * accumulate * global, 3)

  local function compare(step)
    local theirs = reference:state_dict()
    for name, p in pairs(model:state_dict()) do
      local diff = (p:cpu() - theirs[name]):abs():max():item()
      local scale = math.max(1, theirs[name]:abs():max():item())
      if diff > 2e-5 * scale then
        error(string.format("rank %d, %s with %d batches a step, step %d: %s differs from the single "
          .. "process's by %g", rank, optimizer_name, accumulate, step, name, diff))
      end
    end
  end

  local batch = 0
  for step = 1, steps do
    opt:zero_grad()
    ref_opt:zero_grad()
    for micro = 1, accumulate do
      local first = batch * global
      batch = batch + 1
      local mine = first + (rank - 1) * per_rank + 1
      local x, y = X:narrow(1, mine, per_rank):to(device), Y:narrow(1, mine, per_rank):to(device)
      if micro < accumulate then
        model:no_sync(function() loss_fn(model(x), y):backward() end)
        -- not averaged: each rank's gradient is its own batches'
        local g = dist.all_gather(model.module[1].weight.grad)
        if g.device ~= device then error("all_gather's result left the gradients' device") end
        if size > 1 and (g[1] - g[2]):abs():max():item() == 0 then
          error("no_sync: the ranks' gradients were averaged")
        end
      else
        loss_fn(model(x), y):backward()
      end
      -- the single process: the mean over the global batch, accumulated alike
      loss_fn(reference(X:narrow(1, first + 1, global)), Y:narrow(1, first + 1, global)):backward()
    end
    opt:step()
    ref_opt:step()
    compare(step)
  end
end

for _, run in ipairs(runs) do
  local name, accumulate = run:match("^(%a+):(%d+)$")
  train(name, tonumber(accumulate))
  print(string.format("rank %d of %d: %s, %s batches a step: %d steps agree%s", rank, size, name, accumulate,
    steps, device == "cpu" and "" or " on " .. device))
end

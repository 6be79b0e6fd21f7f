-- collectives.lua: nn.distributed's collectives on CUDA tensors through
-- NCCL, device to device, in a group of one (init{cuda = "nccl"}: one GPU
-- is enough to run NCCL's path end to end; several ranks need one GPU
-- each). On the test device (NN_FAKE_CUDA=1), which has no NCCL, it checks
-- that asking for NCCL names what is missing instead.
--   nnlua tests/gpu/collectives.lua      (from the repository's root)
local h = dofile("tests/gpu/harness.lua")
local check, same = h.check, h.same
local dist = nn.distributed

if not nn.cuda.is_available() then
  check("cuda is available", function() error(nn.cuda.why_unavailable()) end)
  h.finish("collectives")
end

dist.init{cuda = "nccl"}

if os.getenv("NN_FAKE_CUDA") == "1" then
  check("asking for NCCL where there is none names what is missing", function()
    h.raises(function() dist.get_backend("cuda") end, "distributed.get_backend: NCCL was asked for",
      "the test device has no collectives")
  end)
  h.finish("collectives")
end

check("CUDA tensors go over NCCL", function()
  local backend = dist.get_backend("cuda")
  assert(backend == "nccl", "get_backend(\"cuda\"): " .. tostring(backend))
end)

check("all_reduce: sum, mean, max, min in place, for each dtype", function()
  for _, dtype in ipairs({"float32", "float64", "int64"}) do
    local t = nn.tensor({1, -2, 3}, {dtype = dtype, device = "cuda"})
    for _, op in ipairs(dtype == "int64" and {"sum", "max", "min"} or {"sum", "mean", "max", "min"}) do
      assert(dist.all_reduce(t, op) == t, "all_reduce returns its tensor")
      same(t:cpu():totable(), {1, -2, 3}, dtype .. " " .. op .. " of one rank")
    end
  end
  local b = nn.tensor({true, false}, {dtype = "bool", device = "cuda"})
  same(dist.all_reduce(b):cpu():totable(), {true, false}, "bool sum")
end)

check("a column view, a large tensor, async works", function()
  local base = nn.tensor({{1, 0}, {2, 0}}, {device = "cuda"})
  dist.all_reduce(base:t()[1])
  same(base:cpu():totable(), {{1, 0}, {2, 0}}, "a column view")
  local big = nn.arange(0, 3000000, 1, {device = "cuda"})
  local w = dist.all_reduce(big, "sum", {async = true})
  assert(w:wait() == big and w:is_completed(), "work:wait()")
  assert(big[3000000]:item() == 2999999, "the last element")
end)

check("broadcast, all_gather, reduce_scatter", function()
  same(dist.broadcast(nn.tensor({4, 5}, {device = "cuda"}), 1):cpu():totable(), {4, 5}, "broadcast")
  local all = dist.all_gather(nn.tensor({6, 7}, {device = "cuda"}))
  assert(all.device == "cuda", "all_gather's result on " .. all.device)
  same(all:cpu():totable(), {{6, 7}}, "all_gather")
  same(dist.reduce_scatter(nn.tensor({{8, 9}}, {device = "cuda"}), "mean"):cpu():totable(), {8, 9}, "reduce_scatter")
end)

check("DataParallel on CUDA over NCCL trains as the plain model does", function()
  nn.manual_seed(3)
  local plain = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 2)):to("cuda")
  local copy = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 2)):to("cuda")
  copy:load_state_dict(plain:state_dict())
  local model = dist.DataParallel(copy, {bucket_mb = 0.0001})
  local opt, plain_opt = nn.optim.SGD(model:parameters(), {lr = 0.1}), nn.optim.SGD(plain:parameters(), {lr = 0.1})
  local x, y = nn.randn(16, 4):to("cuda"), nn.randn(16, 2):to("cuda")
  local loss_fn = nn.MSELoss()
  for _ = 1, 3 do
    opt:zero_grad(); plain_opt:zero_grad()
    loss_fn(model(x), y):backward(); loss_fn(plain(x), y):backward()
    opt:step(); plain_opt:step()
  end
  local theirs = plain:state_dict()
  for name, p in pairs(model:state_dict()) do
    assert((p - theirs[name]):abs():max():item() == 0, name .. " differs")
  end
end)

h.finish("collectives")

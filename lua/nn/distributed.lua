-- nn.distributed: data-parallel training across processes and machines.
--
--   local dist = nn.distributed
--   dist.init()                                  -- under mpirun: rank, size from MPI; alone: a group of one
--   local model = dist.DataParallel(Net())       -- the same parameters on every rank from the start
--   local loader = nn.data.DataLoader(train, {batch_size = 64, sampler = dist.Sampler(train, {shuffle = true})})
--   for epoch = 1, epochs do
--     loader:set_epoch(epoch)
--     for x, y in loader:iter() do
--       opt:zero_grad(); loss_fn(model(x), y):backward(); opt:step()   -- gradients averaged across ranks
--     end
--   end
--   if dist.rank() == 1 then nn.save("model.safetensors", model:state_dict()) end
--
-- `mpirun -np N nnlua script.lua` runs N ranks (processes); `nnlua
-- script.lua` alone is a group of one, where every collective is the
-- identity, so the same script runs either way. The collectives are Open
-- MPI's non-blocking ones, driven from C (lua/nn_distributed.c): a wait
-- never hangs for ever, and a rank that fails, dies or ends early makes the
-- others stop with an error that names it.
--
-- DataParallel keeps each parameter's gradient in a flat bucket (p.grad is
-- a view of it, so backward adds straight into the bucket). A hook on every
-- parameter runs once backward has finished its gradient; when a bucket's
-- gradients are all there, its all_reduce starts while backward goes on
-- with the layers below, and the end of the pass waits for every bucket, so
-- that after loss:backward() each p.grad holds the mean over the ranks.
-- Buckets follow the parameters in reverse order (backward reaches the last
-- layers first); the first holds at most 1 MB, so that communication
-- starts early, the others up to bucket_mb.
return function(nn)
  local C = nn._C
  local raise = nn._raise

--- nn.distributed: data-parallel training over MPI ranks (init, rank, size, the collectives, DataParallel, Sampler).
-- Ranks count from 1, as everything a Lua user sees does. A script runs
-- under `mpirun -np N nnlua script.lua` (N ranks on this machine) or
-- `mpirun -H host1,host2 -np 2 nnlua script.lua` (one rank on each), and
-- alone as a group of one.
--   local dist = nn.distributed
--   dist.init()
--   print(dist.rank(), dist.size())
  local dist = {}
  nn.distributed = dist

  local state = {rank = nil, size = nil, over_mpi = false}

  local function initialized(op)
    if not state.rank then raise("distributed." .. op .. ": call nn.distributed.init() first") end
  end

  --- nn.distributed.init([{timeout = 30, cuda}]) -> rank, size: joins the group.
  -- Under mpirun, every rank of the job (MPI is loaded then, and only then);
  -- started otherwise, a group of one. Calling it again changes the
  -- timeout only. timeout: the seconds a collective may wait for the other
  -- ranks before it raises an error that says which ranks did not arrive
  -- (a rank that works alone longer, say evaluating while the others wait
  -- at a barrier, needs a longer one). A rank that fails or dies is named
  -- at once, whatever the timeout. cuda: how CUDA tensors travel; by
  -- default over NCCL, device to device, when every rank has it, else
  -- through host memory over MPI (see get_backend); "nccl" requires NCCL
  -- (an error names what is missing), and makes even a group of one send
  -- its CUDA tensors through NCCL (which checks NCCL on one GPU); "host"
  -- always goes through host memory.
  --   local rank, size = nn.distributed.init{timeout = 120}
  function dist.init(opts)
    opts = nn._options("distributed.init", opts, {"timeout", "cuda"})
    if opts.timeout ~= nil and (type(opts.timeout) ~= "number" or not (opts.timeout > 0)) then
      raise("distributed.init: timeout must be a positive number of seconds, got " .. tostring(opts.timeout))
    end
    local rank, size, over_mpi = C.dist_init(opts.timeout, opts.cuda)
    state.rank, state.size, state.over_mpi = rank + 1, size, over_mpi
    return state.rank, state.size
  end

  --- nn.distributed.is_initialized(): whether init() was called.
  function dist.is_initialized() return state.rank ~= nil end

  --- nn.distributed.rank(): this process's rank, 1..size().
  function dist.rank()
    initialized("rank")
    return state.rank
  end

  --- nn.distributed.size(): the number of ranks (1 without mpirun).
  function dist.size()
    initialized("size")
    return state.size
  end

  -- (op, opts) or (opts) after a tensor: op a string, opts {async =}
  local function op_and_async(name, op, opts)
    if type(op) == "table" and opts == nil then op, opts = nil, op end
    if op ~= nil and type(op) ~= "string" then
      raise(string.format("distributed.%s: the operation must be a string (\"sum\", \"mean\", \"max\", \"min\"), got %s",
        name, type(op)))
    end
    opts = nn._options("distributed." .. name, opts, {"async"})
    return op, opts.async and true or false
  end

  local function tensor_arg(name, t)
    if not nn.is_tensor(t) then raise(string.format("distributed.%s: expected a tensor, got %s", name, type(t))) end
  end

  --- nn.distributed.barrier([{async = false}]): returns once every rank has
  -- called it (async: a Work to wait on).
  function dist.barrier(opts)
    opts = nn._options("distributed.barrier", opts, {"async"})
    initialized("barrier")
    return C.dist_barrier(opts.async)
  end

  --- nn.distributed.all_reduce(t [, op = "sum"] [, {async = false}]) -> t:
  -- replaces t, on every rank, with the sum (or "mean", "max", "min") of
  -- the ranks' t, element by element, in place (as PyTorch's all_reduce).
  -- Every dtype: a mean needs float32 or float64; on bool tensors sum and
  -- max are a logical or, min a logical and. With async = true it returns
  -- at once a Work: work:wait() waits and returns t, work:is_completed()
  -- says whether it is done; t must not be used until then. Every rank must
  -- make the same collective calls in the same order, with tensors of the
  -- same shape and dtype.
  --   local loss_sum = nn.distributed.all_reduce(nn.tensor(local_loss), "sum")
  function dist.all_reduce(t, op, opts)
    tensor_arg("all_reduce", t)
    local async
    op, async = op_and_async("all_reduce", op, opts)
    initialized("all_reduce")
    return C.dist_all_reduce(t, op, async)
  end

  --- nn.distributed.broadcast(t [, src = 1] [, {async = false}]) -> t:
  -- copies rank src's t into t on every other rank, in place.
  function dist.broadcast(t, src, opts)
    tensor_arg("broadcast", t)
    if type(src) == "table" and opts == nil then src, opts = nil, src end
    src = src == nil and 1 or src
    if math.type(src) ~= "integer" then
      raise("distributed.broadcast: src must be a rank (an integer from 1), got " .. tostring(src))
    end
    opts = nn._options("distributed.broadcast", opts, {"async"})
    initialized("broadcast")
    return C.dist_broadcast(t, src - 1, opts.async)
  end

  --- nn.distributed.all_gather(t [, {async = false}]) -> a new tensor of
  -- size() rows of t's shape (size() x ...), row r holding rank r's t.
  --   local all = nn.distributed.all_gather(nn.tensor({accuracy}))   -- all[r]: rank r's
  function dist.all_gather(t, opts)
    tensor_arg("all_gather", t)
    opts = nn._options("distributed.all_gather", opts, {"async"})
    initialized("all_gather")
    return C.dist_all_gather(t, opts.async)
  end

  --- nn.distributed.reduce_scatter(x [, op = "sum"] [, {async = false}]) ->
  -- a new tensor: x[rank()] reduced over the ranks (sum, mean, max, min).
  -- x's first dimension is size(), one block per rank: all_gather's inverse.
  function dist.reduce_scatter(x, op, opts)
    tensor_arg("reduce_scatter", x)
    local async
    op, async = op_and_async("reduce_scatter", op, opts)
    initialized("reduce_scatter")
    return C.dist_reduce_scatter(x, op, async)
  end

  --- nn.distributed.get_backend([device = "cpu"]) -> how that device's
  -- tensors travel between ranks: "mpi" (CPU tensors), "nccl" (CUDA tensors,
  -- device to device, when every rank has NCCL: libnccl.so.2, or the file
  -- NN_NCCL_LIBRARY names), "mpi through host memory" (CUDA tensors where a
  -- rank has no NCCL: copied to the host and back), "none" in a group of
  -- one. For "cuda" the choice is made at the first collective on CUDA
  -- tensors, which this call may be: every rank must call it then.
  --   print(nn.distributed.get_backend("cuda"))   -- nccl
  function dist.get_backend(device, ...)
    if select("#", ...) > 0 then raise("distributed.get_backend: takes one argument (a device), got more") end
    device = device == nil and "cpu" or device
    if device ~= "cpu" and device ~= "cuda" then
      raise("distributed.get_backend: device must be \"cpu\" or \"cuda\", got " .. tostring(device))
    end
    initialized("get_backend")
    return C.dist_transport(device)
  end

  ---------------------------------------------------------------------------
  -- DataParallel

--- nn.distributed.DataParallel(module [, {bucket_mb = 25, broadcast_buffers = true}]):
-- module, trained by every rank on its own data with the gradients
-- averaged across ranks (PyTorch's DistributedDataParallel). At
-- construction rank 1's parameters and buffers are copied to every rank (a
-- rank whose model has other parameters is an error). model(x) runs
-- module(x) (and, with broadcast_buffers, copies rank 1's buffers, such as
-- batch-norm statistics, first); after loss:backward() every parameter's
-- .grad holds the mean over the ranks. The gradients travel in buckets of
-- up to bucket_mb megabytes, each sent as soon as backward has computed it,
-- while backward goes on. state_dict() and load_state_dict() are the
-- module's (no prefix); model.module is the module itself; to(device) and
-- the dtype conversions move it and its buckets. Every rank must run
-- forward and backward the same number of times.
--   local model = nn.distributed.DataParallel(nn.Sequential(nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 10)))
  local DataParallel = nn.Module:extend("DataParallel")
  dist.DataParallel = DataParallel

  -- The reducer that owns each parameter's hook (weak keys): a new
  -- DataParallel of the same module takes the parameters over, and an old
  -- one's hooks then do nothing.
  local owner = setmetatable({}, {__mode = "k"})

  -- A bucket: one flat tensor (dtype, device) for some parameters' gradients.
  local function new_bucket(key, first)
    return {key = key, params = {}, offsets = {}, numel = 0, first = first}
  end

  local FIRST_BUCKET_BYTES = 1024 * 1024
  local ELEMENT_BYTES = {float32 = 4, float64 = 8, int64 = 8, bool = 1}

  local function remove_hooks(R)
    for i, p in ipairs(R.params) do
      if R.hook_ids[i] then C.remove_hook(p, R.hook_ids[i]) end
      if owner[p] == R then owner[p] = nil end
    end
    R.hook_ids = {}
  end

  -- The bucket's views as the parameters' .grad: backward adds into them.
  local function adopt_gradient(bucket, slot)
    local p, view = bucket.params[slot], bucket.views[slot]
    local g = p.grad
    if g == view then return end
    if g ~= nil then view:copy_(g) else view:zero_() end
    p.grad = view
  end

  -- Starts, in bucket order (the same on every rank), the all_reduce of
  -- every bucket whose gradients are all there.
  local function launch_ready(R)
    while R.next_launch <= #R.buckets do
      local bucket = R.buckets[R.next_launch]
      if bucket.ready < #bucket.params then return end
      bucket.work = C.dist_all_reduce(bucket.flat, "mean", true)
      R.next_launch = R.next_launch + 1
    end
  end

  local function reset_pass(R)
    R.in_pass = false
    R.next_launch = 1
    for _, bucket in ipairs(R.buckets) do
      bucket.ready, bucket.work = 0, nil
      for slot in pairs(bucket.seen) do bucket.seen[slot] = nil end
    end
  end

  -- The end of a backward pass: a parameter that got no gradient in it
  -- counts with what its .grad holds (zero when none), every bucket is
  -- started, and all are waited for.
  local function finish_pass(R, failed)
    if failed or not R.sync then
      reset_pass(R)
      return
    end
    for _, bucket in ipairs(R.buckets) do
      for slot = 1, #bucket.params do
        if not bucket.seen[slot] then
          adopt_gradient(bucket, slot)
          bucket.seen[slot] = true
          bucket.ready = bucket.ready + 1
        end
      end
    end
    launch_ready(R)
    local ok, err = pcall(function()
      for _, bucket in ipairs(R.buckets) do bucket.work:wait() end
    end)
    reset_pass(R)
    if not ok then error(err, 0) end
  end

  -- A parameter's gradient is complete in this pass (its hook).
  local function gradient_ready(R, b, slot)
    if owner[R.buckets[b].params[slot]] ~= R then return end
    if not R.in_pass then
      R.in_pass = true
      C.queue_backward_callback(function(failed) finish_pass(R, failed) end)
    end
    if not R.sync then return end
    local bucket = R.buckets[b]
    if bucket.seen[slot] then return end
    adopt_gradient(bucket, slot)
    bucket.seen[slot] = true
    bucket.ready = bucket.ready + 1
    if bucket.ready == #bucket.params then launch_ready(R) end
    C.dist_progress() -- MPI moves the buckets in flight only inside its calls
  end

  -- Buckets over the module's parameters as they are now (after a move to
  -- another device or dtype too), and a hook on each.
  local function build_reducer(self)
    local old = rawget(self, "_reducer")
    if old then remove_hooks(old) end
    local R = {buckets = {}, params = {}, hook_ids = {}, sync = true, in_pass = false, next_launch = 1}
    local cap = self.bucket_bytes
    local params = self.module:parameters()
    local open = {} -- the bucket being filled, per dtype and device
    for i = #params, 1, -1 do
      local p = params[i]
      if p.requires_grad then
        local key = p.dtype .. "@" .. p.device
        local bucket = open[key]
        local bytes = p:numel() * (ELEMENT_BYTES[p.dtype] or 8)
        if bucket then
          local limit = bucket.first and math.min(cap, FIRST_BUCKET_BYTES) or cap
          if bucket.numel > 0 and bucket.bytes + bytes > limit then bucket = nil end
        end
        if not bucket then
          bucket = new_bucket(key, #R.buckets == 0)
          bucket.bytes, bucket.dtype, bucket.device = 0, p.dtype, p.device
          R.buckets[#R.buckets + 1] = bucket
          open[key] = bucket
        end
        bucket.params[#bucket.params + 1] = p
        bucket.offsets[#bucket.params] = bucket.numel
        bucket.numel = bucket.numel + p:numel()
        bucket.bytes = bucket.bytes + bytes
      end
    end
    for b, bucket in ipairs(R.buckets) do
      bucket.flat = nn.zeros(bucket.numel, {dtype = bucket.dtype, device = bucket.device})
      bucket.views, bucket.seen, bucket.ready = {}, {}, 0
      for slot, p in ipairs(bucket.params) do
        bucket.views[slot] = bucket.flat:narrow(1, bucket.offsets[slot] + 1, p:numel()):view(p:size())
        adopt_gradient(bucket, slot)
        R.params[#R.params + 1] = p
        owner[p] = R
        -- the hook reaches R weakly: a DataParallel dropped is not kept alive by its parameters
        local weak = setmetatable({R}, {__mode = "v"})
        R.hook_ids[#R.params] = C.add_hook(p, "post_accumulate", function()
          local r = weak[1]
          if r then gradient_ready(r, b, slot) end
        end)
      end
    end
    rawset(self, "_reducer", R)
  end

  -- Every rank's model must have the same parameters: a signature of their
  -- shapes and dtypes, gathered.
  local function check_same_model(self)
    local text = {}
    for name, p in self.module:named_parameters() do text[#text + 1] = name .. table.concat(p:size(), "x") .. p.dtype end
    for name, b in self.module:named_buffers() do text[#text + 1] = name .. table.concat(b:size(), "x") .. b.dtype end
    local s = table.concat(text, ";")
    local hash = 5381
    for i = 1, #s do hash = (hash * 33 + s:byte(i)) % 2147483647 end
    local numel = 0
    for _, p in ipairs(self.module:parameters()) do numel = numel + p:numel() end
    local all = dist.all_gather(nn.tensor({#self.module:parameters(), numel, hash}, {dtype = "int64"}))
    local mine = all[state.rank]:totable()
    for r = 1, state.size do
      local theirs = all[r]:totable()
      if theirs[1] ~= mine[1] or theirs[2] ~= mine[2] or theirs[3] ~= mine[3] then
        raise(string.format("DataParallel: the ranks' models differ: rank %d's has %d parameters (%d numbers), "
          .. "rank %d's %d (%d numbers)%s", r, theirs[1], theirs[2], state.rank, mine[1], mine[2],
          theirs[1] == mine[1] and theirs[2] == mine[2] and ", of other names, shapes or dtypes" or ""))
      end
    end
  end

  local function broadcast_all(tensors)
    local works = {}
    for i, t in ipairs(tensors) do works[i] = C.dist_broadcast(t, 0, true) end
    for _, w in ipairs(works) do w:wait() end
  end

  function DataParallel:init(module, opts)
    if not nn.is_module(module) then raise("DataParallel: expected a module, got " .. type(module)) end
    opts = nn._options("DataParallel", opts, {"bucket_mb", "broadcast_buffers"})
    if opts.bucket_mb ~= nil and (type(opts.bucket_mb) ~= "number" or not (opts.bucket_mb > 0)) then
      raise("DataParallel: bucket_mb must be a positive number, got " .. tostring(opts.bucket_mb))
    end
    initialized("DataParallel")
    self.module = module
    rawset(self, "bucket_bytes", math.floor((opts.bucket_mb or 25) * 1024 * 1024))
    rawset(self, "broadcast_buffers", opts.broadcast_buffers ~= false)
    rawset(self, "require_sync", true)
    if state.size > 1 then
      check_same_model(self)
      broadcast_all(module:parameters())
      broadcast_all(module:buffers())
      build_reducer(self)
    end
  end

  function DataParallel:forward(...)
    local R = rawget(self, "_reducer")
    if R then
      -- as PyTorch's: whether the next backward averages is decided here
      R.sync = self.require_sync
      if self.require_sync and self.broadcast_buffers and self.training then
        local buffers = self.module:buffers()
        if #buffers > 0 then broadcast_all(buffers) end
      end
    end
    return self.module(...)
  end

  --- model:no_sync(fn) -> fn's results: runs fn (forward and backward of
  -- some batches) without averaging gradients: they add up on each rank, and
  -- the first backward after (outside no_sync) averages the sum. Gradient
  -- accumulation over k batches costs one exchange instead of k.
  --   model:no_sync(function() loss_fn(model(x1), y1):backward() end)
  --   loss_fn(model(x2), y2):backward()   -- averages both batches' gradients
  --   opt:step()
  function DataParallel:no_sync(fn)
    if type(fn) ~= "function" then raise("DataParallel:no_sync: expected a function, got " .. type(fn)) end
    local previous = self.require_sync
    rawset(self, "require_sync", false)
    local results = table.pack(pcall(fn))
    rawset(self, "require_sync", previous)
    if not results[1] then error(results[2], 0) end
    return table.unpack(results, 2, results.n)
  end

  -- The module's own names and state: no "module." prefix.
  function DataParallel:state_dict() return self.module:state_dict() end
  function DataParallel:load_state_dict(sd, strict) return self.module:load_state_dict(sd, strict) end
  function DataParallel:named_parameters() return self.module:named_parameters() end
  function DataParallel:named_buffers() return self.module:named_buffers() end

  -- to(device), float(), double(): the buckets follow the parameters.
  function DataParallel:_apply(fn)
    nn.Module._apply(self, fn)
    if rawget(self, "_reducer") then build_reducer(self) end
    return self
  end

  ---------------------------------------------------------------------------
  -- Sampler

--- nn.distributed.Sampler(dataset [, {shuffle = true, seed = 0, drop_last = false, rank =, size =}]):
-- the share of dataset's samples one rank trains on (PyTorch's
-- DistributedSampler), for DataLoader's sampler option. Each epoch's order
-- (a shuffle that is a function of seed and the epoch alone, the same on
-- every rank) is cut into size() interleaved shards, rank r taking
-- positions r, r + size(), ...; without drop_last the order is first padded
-- with its own first samples to a multiple of size(), so that every rank
-- takes the same number of steps; with it, the last samples are left out
-- instead. rank and size default to the group's. #sampler is the number of
-- samples of one rank's epoch.
--   local loader = nn.data.DataLoader(train, {batch_size = 64, sampler = nn.distributed.Sampler(train)})
  local Sampler = {}
  Sampler.__index = Sampler
  Sampler.__name = "Sampler"
  dist.Sampler = setmetatable(Sampler, {__call = function(_, dataset, opts)
    local ok, n = pcall(function() return #dataset end)
    if type(dataset) ~= "table" or not ok or math.type(n) ~= "integer" then
      raise("Sampler: expected a dataset (a table with a length, #dataset), got " .. type(dataset))
    end
    opts = nn._options("Sampler", opts, {"shuffle", "seed", "drop_last", "rank", "size"})
    if opts.seed ~= nil and math.type(opts.seed) ~= "integer" then
      raise("Sampler: seed must be an integer, got " .. tostring(opts.seed))
    end
    local size = opts.size
    if size == nil then initialized("Sampler"); size = state.size end
    if math.type(size) ~= "integer" or size < 1 then raise("Sampler: size must be a positive integer, got " .. tostring(size)) end
    local rank = opts.rank
    if rank == nil then initialized("Sampler"); rank = state.rank end
    if math.type(rank) ~= "integer" or rank < 1 or rank > size then
      raise(string.format("Sampler: rank must be an integer in 1..%d, got %s", size, tostring(rank)))
    end
    local self = setmetatable({dataset = dataset, shuffle = opts.shuffle ~= false, seed = opts.seed or 0,
                               drop_last = opts.drop_last and true or false, rank = rank, size = size,
                               epoch = 1}, Sampler)
    if n == 0 then raise("Sampler: the dataset is empty") end
    return self
  end})

  --- #sampler: the samples one rank takes in an epoch (the same on every rank).
  function Sampler:__len()
    local n = #self.dataset
    if self.drop_last then return n // self.size end
    return (n + self.size - 1) // self.size
  end

  --- sampler:set_epoch(e): the epoch whose order indices() gives; a
  -- DataLoader with this sampler sets it at every iter() (loader:set_epoch).
  function Sampler:set_epoch(e)
    if math.type(e) ~= "integer" or e < 0 then raise("Sampler:set_epoch: expected a non-negative integer, got " .. tostring(e)) end
    self.epoch = e
  end

  --- sampler:indices() -> an int64 tensor of this rank's dataset indices
  -- (1-based) for the current epoch, in order.
  function Sampler:indices()
    local n, size, rank = #self.dataset, self.size, self.rank
    local order = self.shuffle and C.data_permutation(n, self.seed, self.epoch):totable() or nil
    local count = #self
    local out = {}
    for k = 0, count - 1 do
      local position = (rank - 1) + k * size -- in the order padded by wrapping around
      local i = position % n
      out[k + 1] = order and order[i + 1] + 1 or i + 1
    end
    return nn.tensor(out, {dtype = "int64"})
  end

  function Sampler:__tostring()
    return string.format("Sampler(rank %d of %d, %d of %d samples, shuffle = %s)", self.rank, self.size, #self,
      #self.dataset, tostring(self.shuffle))
  end

  nn._check_counts(Sampler)
end

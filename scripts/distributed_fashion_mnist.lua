-- Fashion-MNIST's lesson network trained with data parallelism.
--
-- The dense network of scripts/fashion_mnist.lua (784 -> 512 ReLU -> 10,
-- RMSprop lr 0.001, Keras's initialisation, batches of 128, 5 epochs),
-- wrapped in nn.distributed.DataParallel: every rank trains on its own
-- share of each epoch (nn.distributed.Sampler) with batches of 128 / ranks
-- images, so that one step of all ranks together sees 128 images, as one
-- step of the single process does, and the gradients are averaged across
-- ranks while backward runs. The test accuracy matches the single-process
-- run's. Each rank evaluates its share of the test set; the counts are
-- summed across ranks; rank 1 prints, and saves the model.
--
--   nnlua scripts/distributed_fashion_mnist.lua [options]            (one process)
--   mpirun -np 2 nnlua scripts/distributed_fashion_mnist.lua [options]
--   mpirun -H host1,host2 -np 2 nnlua scripts/distributed_fashion_mnist.lua   (two machines)
--     --quick       a small subset (2,000 training and 1,000 test images, 2 epochs) for the test suite
--     --epochs N    override the number of epochs
--     --save FILE   rank 1 saves the trained model there (safetensors)
--     --data DIR    the directory of the four IDX files (default: Debian's /usr/share/datasets/fashion-mnist)
--     --threads N   BLAS threads per rank (default 1 under mpirun, else nn's default)
--     --seed N      the seed of the weights and of the epochs' order (default 1)
local nn = require "nn"
local dist = nn.distributed

local parser = nn.cli.parser("Fashion-MNIST's lesson network trained with data parallelism (run it under mpirun).")
parser:flag("--quick", "a small subset (2,000 training and 1,000 test images, 2 epochs) for the test suite")
parser:option("--epochs", "override the number of epochs", nil, nn.cli.whole(1, "--epochs"))
parser:option("--save", "rank 1 saves the trained model there (safetensors)")
parser:option("--data", "the directory of the four IDX files (default: Debian's /usr/share/datasets/fashion-mnist)")
parser:option("--threads", "BLAS threads per rank (default 1 under mpirun, else nn's default)", nil,
              nn.cli.whole(1, "--threads"))
parser:option("--seed", "the seed of the weights and of the epochs' order", "1", nn.cli.whole(1, "--seed"))
local opts = parser:parse()

local rank, size = dist.init()
-- Ranks on one machine share its cores: one BLAS thread each unless told.
if opts.threads then nn.set_num_threads(opts.threads) elseif size > 1 then nn.set_num_threads(1) end
local function say(...) if rank == 1 then print(string.format(...)) end end

local epochs = opts.epochs or (opts.quick and 2 or 5)
local global_batch = 128
local batch = math.max(1, global_batch // size)

-- ---- the data: every rank reads it, and trains on its share ------------
local train_set, test_set = nn.data.fashion_mnist(opts.data)
local x_train, y_train = train_set.images, train_set.labels
local x_test, y_test = test_set.images, test_set.labels
if opts.quick then
  x_train, y_train = x_train:narrow(1, 1, 2000), y_train:narrow(1, 1, 2000)
  x_test, y_test = x_test:narrow(1, 1, 1000), y_test:narrow(1, 1, 1000)
end
local train = nn.data.TensorDataset(x_train, y_train)
local sampler = dist.Sampler(train, {shuffle = true, seed = opts.seed})
local loader = nn.data.DataLoader(train, {batch_size = batch, sampler = sampler})
say("Fashion-MNIST: %d training and %d test images; %d rank%s, batches of %d per rank (%d a step)",
  x_train:size(1), x_test:size(1), size, size > 1 and "s" or "", batch, batch * size)

-- ---- the model: rank 1's weights, copied to every rank -----------------
nn.manual_seed(opts.seed)
local net = nn.Sequential(nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 10))
for _, layer in ipairs {net[1], net[3]} do
  nn.init.xavier_uniform_(layer.weight)
  nn.init.zeros_(layer.bias)
end
local model = dist.DataParallel(net)
local optimizer = nn.optim.RMSprop(model:parameters(), {lr = 0.001, alpha = 0.9, eps = 1e-7})
local criterion = nn.CrossEntropyLoss()

-- The share of the test set rank r scores: its r-th slice of size() of them.
local function test_accuracy()
  local n = x_test:size(1)
  local slice = (n + size - 1) // size
  local first = (rank - 1) * slice + 1
  local count = math.max(0, math.min(slice, n - first + 1))
  local correct = 0
  model:eval()
  nn.no_grad(function()
    if count > 0 then
      local x, y = x_test:narrow(1, first, count), y_test:narrow(1, first, count)
      correct = model(x):argmax(2):eq(y):sum():item()
    end
  end)
  model:train()
  return dist.all_reduce(nn.tensor({correct}, {dtype = "float64"}))[1]:item() / n
end

-- ---- training -----------------------------------------------------------
local t_train = nn.clock()
local accuracy
for epoch = 1, epochs do
  loader:set_epoch(epoch)
  local t0 = nn.clock()
  local loss_sum, seen = 0, 0
  for x, y in loader:iter() do
    optimizer:zero_grad()
    local loss = criterion(model(x), y)
    loss:backward()
    optimizer:step()
    loss_sum, seen = loss_sum + loss:item() * x:size(1), seen + x:size(1)
  end
  -- the epoch's mean loss over every rank's images
  local totals = dist.all_reduce(nn.tensor({loss_sum, seen}, {dtype = "float64"})):totable()
  accuracy = test_accuracy()
  say("epoch %d/%d  loss %.4f  test accuracy %.4f  %.1f s", epoch, epochs, totals[1] / totals[2], accuracy,
    nn.clock() - t0)
end
say("trained in %.1f s on %d rank%s", nn.clock() - t_train, size, size > 1 and "s" or "")
say("test accuracy: %.4f", accuracy)
if opts.save and rank == 1 then
  nn.save(opts.save, model:state_dict())
  say("saved the model to %s", opts.save)
end

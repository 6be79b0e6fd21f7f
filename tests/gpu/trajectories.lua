-- trajectories.lua: training on CUDA follows the CPU. The seed's XOR (the
-- loss printed every 100 epochs agrees to 1e-5) and the Fashion-MNIST MLP
-- of scripts/fashion_mnist.lua (784-512-10, RMSprop, batch 128; its loss
-- at each of 300 steps agrees to 1e-4, relative). The images are the first
-- 6,400 of Fashion-MNIST's training set when NN_GPU_DATA names the folder
-- tools/build_gpu.sh writes them to (or Debian's dataset is installed),
-- else random images with random labels. On the test device (no GPU) the
-- runs are shortened.
local h = dofile("tests/gpu/harness.lua")
local fake = os.getenv("NN_FAKE_CUDA") == "1"

local function xor_run(device, epochs)
  nn.manual_seed(777)
  local X = nn.tensor({{0, 0}, {0, 1}, {1, 0}, {1, 1}}):to(device)
  local Y = nn.tensor({{0}, {1}, {1}, {0}}):to(device)
  local model = nn.Sequential(
    nn.Linear(2, 10), nn.Sigmoid(), nn.Linear(10, 10), nn.Sigmoid(),
    nn.Linear(10, 10), nn.Sigmoid(), nn.Linear(10, 1), nn.Sigmoid()):to(device)
  local criterion = nn.BCELoss()
  local optimizer = nn.optim.SGD(model:parameters(), {lr = 1})
  local printed = {}
  for epoch = 0, epochs do
    optimizer:zero_grad()
    local cost = criterion(model(X), Y)
    cost:backward()
    optimizer:step()
    if epoch % 100 == 0 then printed[#printed + 1] = cost:item() end
  end
  return printed
end

local function follow(got, want, tol, what)
  assert(#got == #want, what .. ": " .. #got .. " points, expected " .. #want)
  local worst = 0
  for i = 1, #want do
    local d = math.abs(got[i] - want[i]) / math.max(1, math.abs(want[i]))
    if d > tol then
      error(string.format("%s: point %d is %.10g on cuda, %.10g on the cpu", what, i, got[i], want[i]), 0)
    end
    worst = math.max(worst, d)
  end
  print(string.format("     %s: %d points, largest difference %.3g, last loss %.6f", what, #want, worst,
    want[#want]))
end

h.check("XOR follows the CPU to 1e-5", function()
  local epochs = 10000
  follow(xor_run("cuda", epochs), xor_run("cpu", epochs), 1e-5, "XOR")
end)

-- The training images: Fashion-MNIST's first ones, else random.
local function images(n)
  local dirs = {os.getenv("NN_GPU_DATA"), "/usr/share/datasets/fashion-mnist"}
  for _, dir in pairs(dirs) do
    for _, suffix in ipairs {"", ".gz"} do
      local path = dir .. "/train-images-idx3-ubyte" .. suffix
      local f = io.open(path)
      if f then
        f:close()
        local x = nn.data.idx(path, {dtype = "float32", scale = 1 / 255})
        local y = nn.data.idx(dir .. "/train-labels-idx1-ubyte" .. suffix) + 1
        n = math.min(n, x:size(1))
        return x:narrow(1, 1, n):reshape(n, 784), y:narrow(1, 1, n), "Fashion-MNIST"
      end
    end
  end
  nn.manual_seed(5)
  return nn.rand(n, 784), (nn.rand(n, {dtype = "float64"}) * 10):floor():to("int64") + 1, "random images"
end

local function mlp_run(device, x, y, steps)
  nn.manual_seed(1)
  local model = nn.Sequential(nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 10))
  for _, layer in ipairs {model[1], model[3]} do
    nn.init.xavier_uniform_(layer.weight)
    nn.init.zeros_(layer.bias)
  end
  model:to(device)
  local optimizer = nn.optim.RMSprop(model:parameters(), {lr = 0.001, alpha = 0.9, eps = 1e-7})
  local criterion = nn.CrossEntropyLoss()
  local batches = x:size(1) // 128
  local losses = {}
  for step = 1, steps do
    local first = (step - 1) % batches * 128 + 1
    local xb, yb = x:narrow(1, first, 128):to(device), y:narrow(1, first, 128):to(device)
    optimizer:zero_grad()
    local loss = criterion(model(xb), yb)
    loss:backward()
    optimizer:step()
    losses[step] = loss:item()
  end
  return losses
end

h.check("the Fashion-MNIST MLP follows the CPU for 300 steps to 1e-4", function()
  local steps = fake and 20 or 300
  local x, y, what = images(6400)
  print("     data: " .. what)
  follow(mlp_run("cuda", x, y, steps), mlp_run("cpu", x, y, steps), 1e-4, "MLP loss")
end)

h.finish("trajectories")

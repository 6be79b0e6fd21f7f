-- bench.lua [--quick]: nnlua's side of the GPU benchmarks (a benchmark,
-- never a test: tests/gpu/check.sh prints its figures beside
-- tests/gpu/bench_torch.py's, PyTorch on the same card, and their ratios).
-- Each line: "bench <name> <milliseconds per iteration>". --quick: tiny
-- sizes, so that the test device (no GPU) runs the script in seconds.
local quick = arg[1] == "--quick"
local device = "cuda"

local function time(iterations, fn)
  fn() -- warm: the first call allocates and starts cuBLAS
  nn.cuda.synchronize()
  local t0 = nn.clock()
  for _ = 1, iterations do fn() end
  nn.cuda.synchronize()
  return (nn.clock() - t0) / iterations * 1000
end

local function report(name, ms) print(string.format("bench %-28s %10.4f", name, ms)) end

-- matrix products, float32
for _, n in ipairs(quick and {64} or {1024, 4096, 8192}) do
  local a, b = nn.randn(n, n, {device = device}), nn.randn(n, n, {device = device})
  report("matmul_" .. n, time(quick and 2 or 20, function() return a:matmul(b) end))
end

-- an MLP training step: forward, loss, backward, optimizer step
local function mlp_step(sizes, batch, iterations, name)
  nn.manual_seed(1)
  local layers = {}
  for i = 1, #sizes - 1 do
    layers[#layers + 1] = nn.Linear(sizes[i], sizes[i + 1])
    if i < #sizes - 1 then layers[#layers + 1] = nn.ReLU() end
  end
  local model = nn.Sequential(table.unpack(layers)):to(device)
  local optimizer = nn.optim.SGD(model:parameters(), {lr = 0.01, momentum = 0.9})
  local criterion = nn.CrossEntropyLoss()
  local x = nn.randn(batch, sizes[1], {device = device})
  local y = (nn.rand(batch, {dtype = "float64"}) * sizes[#sizes]):floor():to("int64"):to(device) + 1
  report(name, time(iterations, function()
    optimizer:zero_grad()
    local loss = criterion(model(x), y)
    loss:backward()
    optimizer:step()
  end))
end

if quick then
  mlp_step({784, 32, 10}, 16, 2, "mlp_784_512_10_b128")
  mlp_step({64, 64, 64}, 64, 2, "mlp_4x4096_b4096")
else
  mlp_step({784, 512, 10}, 128, 200, "mlp_784_512_10_b128")
  mlp_step({4096, 4096, 4096, 4096, 4096}, 4096, 10, "mlp_4x4096_b4096")
  -- the products of one such step alone: 4 forward (x w^T), 4 for the
  -- inputs' gradients and 4 for the weights' (the first layer's input
  -- gradient is not needed, but PyTorch's autograd skips it too)
  local x, w = nn.randn(4096, 4096, {device = device}), nn.randn(4096, 4096, {device = device})
  report("mlp_4x4096_gemms", time(3, function()
    for _ = 1, 11 do local _ = x:matmul(w) end -- luacheck: ignore
  end))
end

-- the seed's XOR: one epoch (zero_grad, forward, BCE, backward, SGD step)
nn.manual_seed(777)
local X = nn.tensor({{0, 0}, {0, 1}, {1, 0}, {1, 1}}):to(device)
local Y = nn.tensor({{0}, {1}, {1}, {0}}):to(device)
local model = nn.Sequential(nn.Linear(2, 10), nn.Sigmoid(), nn.Linear(10, 10), nn.Sigmoid(),
  nn.Linear(10, 10), nn.Sigmoid(), nn.Linear(10, 1), nn.Sigmoid()):to(device)
local criterion, optimizer = nn.BCELoss(), nn.optim.SGD(model:parameters(), {lr = 1})
report("xor_epoch", time(quick and 10 or 2000, function()
  optimizer:zero_grad()
  local cost = criterion(model(X), Y)
  cost:backward()
  optimizer:step()
end))

-- capture.lua: nn.capture on CUDA (engine/src/capture.c, cuda/backend.cu's
-- graphs). A captured step trains exactly as eager CUDA steps do (XOR with
-- SGD, an MLP with Adam and a StepLR schedule, a small CNN with batch
-- norm); on a GPU the plan's runs of kernels become CUDA graphs (on the
-- test device, which makes none, they replay call by call); and the
-- captured XOR epoch's time beside the eager one.
local h = dofile("tests/gpu/harness.lua")
local fake = os.getenv("NN_FAKE_CUDA") == "1"

-- Trains make()'s model eagerly and captured for `steps` steps on one
-- batch; returns both runs' losses and parameters, and the step.
local function both(make, x, y, steps, schedule)
  local runs = {}
  for _, captured in ipairs {false, true} do
    nn.manual_seed(7)
    local model, criterion, optimizer = make()
    local scheduler = schedule and schedule(optimizer)
    local function fn(a, b)
      optimizer:zero_grad()
      local loss = criterion(model(a), b)
      loss:backward()
      optimizer:step()
      return loss
    end
    local step = captured and nn.capture(fn) or fn
    local losses = {}
    for i = 1, steps do
      losses[i] = step(x, y):item()
      if scheduler then scheduler:step() end
    end
    local params = {}
    for i, p in ipairs(model:parameters()) do params[i] = p:cpu():view(-1):totable() end
    runs[#runs + 1] = {losses = losses, params = params, step = step}
  end
  return runs[1], runs[2]
end

local function check_same(eager, captured)
  if captured.step:why() then error(captured.step:why()) end
  h.same(captured.losses, eager.losses, "losses")
  h.same(captured.params, eager.params, "parameters")
  local graphs = captured.step:stats().graphs
  if not fake and graphs == 0 then error("no CUDA graph was made") end
  print(string.format("     %d kernels a step, %d host calls, %d graphs", captured.step:stats().kernels,
    captured.step:stats().host_calls, graphs))
end

h.check("XOR, SGD: captured on cuda = eager on cuda, bit for bit", function()
  local X = nn.tensor({{0, 0}, {0, 1}, {1, 0}, {1, 1}}):cuda()
  local Y = nn.tensor({{0}, {1}, {1}, {0}}):cuda()
  check_same(both(function()
    local model = nn.Sequential(nn.Linear(2, 10), nn.Sigmoid(), nn.Linear(10, 10), nn.Sigmoid(),
                                nn.Linear(10, 1), nn.Sigmoid()):cuda()
    return model, nn.BCELoss(), nn.optim.SGD(model:parameters(), {lr = 1, momentum = 0.5})
  end, X, Y, 200))
end)

h.check("MLP, Adam with StepLR: captured on cuda = eager on cuda", function()
  nn.manual_seed(3)
  local x, y = nn.randn(64, 32):cuda(), nn.randn(64, 1):cuda()
  check_same(both(function()
    local model = nn.Sequential(nn.Linear(32, 64), nn.ReLU(), nn.Linear(64, 1)):cuda()
    return model, nn.MSELoss(), nn.optim.Adam(model:parameters(), {lr = 1e-3})
  end, x, y, 50, function(opt) return nn.optim.lr_scheduler.StepLR(opt, {step_size = 10, gamma = 0.5}) end))
end)

h.check("CNN with batch norm: captured on cuda = eager on cuda", function()
  nn.manual_seed(4)
  local x, y = nn.randn(8, 1, 12, 12):cuda(), nn.tensor({1, 2, 3, 4, 5, 1, 2, 3}, {dtype = "int64"}):cuda()
  check_same(both(function()
    local model = nn.Sequential(nn.Conv2d(1, 4, 3, {padding = 1}), nn.BatchNorm2d(4), nn.ReLU(),
                                nn.MaxPool2d(2), nn.Flatten(), nn.Linear(4 * 6 * 6, 5)):cuda()
    return model, nn.CrossEntropyLoss(), nn.optim.SGD(model:parameters(), {lr = 0.05})
  end, x, y, 20))
end)

h.check("XOR epoch on cuda, eager and captured (us)", function()
  local epochs = fake and 200 or 5000
  local X = nn.tensor({{0, 0}, {0, 1}, {1, 0}, {1, 1}}):cuda()
  local Y = nn.tensor({{0}, {1}, {1}, {0}}):cuda()
  local times = {}
  for _, captured in ipairs {false, true} do
    nn.manual_seed(777)
    local model = nn.Sequential(nn.Linear(2, 10), nn.Sigmoid(), nn.Linear(10, 10), nn.Sigmoid(),
                                nn.Linear(10, 10), nn.Sigmoid(), nn.Linear(10, 1), nn.Sigmoid()):cuda()
    local criterion, optimizer = nn.BCELoss(), nn.optim.SGD(model:parameters(), {lr = 1})
    local function fn(a, b)
      optimizer:zero_grad()
      local loss = criterion(model(a), b)
      loss:backward()
      optimizer:step()
      return loss
    end
    local step = captured and nn.capture(fn) or fn
    for _ = 1, 3 do step(X, Y) end
    nn.cuda.synchronize()
    local t0 = nn.clock()
    for _ = 1, epochs do step(X, Y) end
    nn.cuda.synchronize()
    times[#times + 1] = (nn.clock() - t0) / epochs * 1e6
  end
  print(string.format("     eager %.1f us, captured %.1f us an epoch (%.1fx)", times[1], times[2], times[1] / times[2]))
end)

h.finish("capture")

-- A hyperparameter sweep of the XOR network (scripts/xor.lua): learning
-- rate × hidden size × hidden activation, each setting trained with 3 seeds,
-- reporting the final loss and the epoch at which the accuracy first reached
-- 1.0. The trials run in parallel on the machine's cores; under mpirun,
--   mpirun -np 4 nnlua scripts/sweep_xor.lua
-- they spread over the ranks. Run it again and it resumes: the trials
-- already in the results file are not run again.
--
--   nnlua scripts/sweep_xor.lua [--quick] [--workers N] [--file results.jsonl]
local nn = require "nn"

local quick, workers, file = false, nil, nil
local i = 1
while i <= #arg do
  if arg[i] == "--quick" then
    quick = true
  elseif arg[i] == "--workers" then
    workers = tonumber(arg[i + 1]); i = i + 1
  elseif arg[i] == "--file" then
    file = arg[i + 1]; i = i + 1
  else
    error("usage: nnlua scripts/sweep_xor.lua [--quick] [--workers N] [--file results.jsonl]", 0)
  end
  i = i + 1
end

local epochs = quick and 1000 or 5000
local activations = {sigmoid = nn.Sigmoid, tanh = nn.Tanh, relu = nn.ReLU}

-- One trial: trains the XOR network of xor.lua, with `hidden` units in each
-- of its three hidden layers, and reports what the sweep compares.
local function train(config)
  local X = nn.tensor({{0, 0}, {0, 1}, {1, 0}, {1, 1}})
  local Y = nn.tensor({{0}, {1}, {1}, {0}})
  local Activation, h = activations[config.activation], config.hidden
  local model = nn.Sequential(
    nn.Linear(2, h), Activation(),
    nn.Linear(h, h), Activation(),
    nn.Linear(h, h), Activation(),
    nn.Linear(h, 1), nn.Sigmoid())
  local criterion = nn.BCELoss()
  local optimizer = nn.optim.SGD(model:parameters(), {lr = config.lr})
  local solved_at, cost -- the first epoch with every output on the right side of 0.5
  for epoch = 0, epochs do
    optimizer:zero_grad()
    local output = model(X)
    cost = criterion(output, Y)
    cost:backward()
    optimizer:step()
    if not solved_at and output:gt(0.5):float():eq(Y):float():mean():item() == 1 then solved_at = epoch end
  end
  -- solved_at stays out of the record when the network never got there.
  return {loss = cost:item(), solved_at = solved_at}
end

local result = nn.sweep {
  name = "XOR sweep",
  parameters = {
    lr = quick and {0.1, 1} or {0.1, 0.5, 1, 2},
    hidden = quick and {4, 10} or {2, 4, 10},
    activation = {"sigmoid", "tanh", "relu"},
  },
  seeds = quick and 2 or 3,
  metric = "loss", mode = "min",
  file = file or (quick and "sweep_xor_quick.jsonl" or "sweep_xor.jsonl"),
  workers = workers,
  time_limit = 120,
  run = train,
}

-- How many settings solved XOR with every seed, and the fastest of those.
local solved, fastest = 0, nil
for _, s in ipairs(result.settings) do
  local epochs_needed, all = {}, s.ok == s.seeds
  for _, r in ipairs(s.trials) do -- this setting's trials, one per seed
    if r.status == "ok" and r.metrics.solved_at then
      epochs_needed[#epochs_needed + 1] = r.metrics.solved_at
    else
      all = false
    end
  end
  if all then
    solved = solved + 1
    local worst = math.max(table.unpack(epochs_needed))
    if not fastest or worst < fastest.epochs then fastest = {config = s.config, epochs = worst} end
  end
end
print(string.format("\n%d of %d settings reached accuracy 1.0 with every seed", solved, #result.settings))
if fastest then
  print(string.format("fastest: lr=%g hidden=%d activation=%s, every seed by epoch %d", fastest.config.lr,
                      fastest.config.hidden, fastest.config.activation, fastest.epochs))
end

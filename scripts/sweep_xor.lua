-- A hyperparameter sweep of the XOR network (scripts/xor.lua): learning
-- rate × hidden size × hidden activation, each setting trained with 3 seeds,
-- reporting the final loss and accuracy, and the epoch from which the
-- accuracy stayed at 1.0. The trials run in parallel on the machine's cores; under mpirun,
--   mpirun -np 4 nnlua scripts/sweep_xor.lua
-- they spread over the ranks. Run it again and it resumes: the trials
-- already in the results file are not run again.
--
--   nnlua scripts/sweep_xor.lua [--quick] [--workers N] [--out DIR] [--file results.jsonl]
local nn = require "nn"

local parser = nn.cli.parser("A hyperparameter sweep of the XOR network: learning rate x hidden size x "
                             .. "activation, 3 seeds each; run it again and it resumes.")
parser:flag("--quick", "a smaller grid, 2 seeds and 1,000 epochs, for the test suite")
parser:option("--workers", "trials run at once (default: one per core)", nil, nn.cli.whole(1, "--workers"))
parser:option("--out", "the directory of the results file and the pictures", ".")
parser:option("--file", "the results file, the pictures beside it (default: sweep_xor.jsonl in --out)")
local args = parser:parse()
local quick = args.quick
local stem = quick and "sweep_xor_quick" or "sweep_xor"
local out_dir = nn.cli.make_dir(args.out)
-- The pictures go beside the results file.
local file = args.file or (out_dir .. "/" .. stem .. ".jsonl")

local epochs = quick and 1000 or 5000
local activations = {sigmoid = nn.Sigmoid, tanh = nn.Tanh, relu = nn.ReLU}

-- One trial: trains the XOR network of xor.lua, with `hidden` units in each
-- of its three hidden layers, and reports what the sweep compares: the final
-- loss and accuracy, and the epoch from which every output stayed on the
-- right side of 0.5 to the end (a network that got there and then diverged
-- has no such epoch).
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
  local solved_from, cost, accuracy
  for epoch = 0, epochs do
    optimizer:zero_grad()
    local output = model(X)
    cost = criterion(output, Y)
    cost:backward()
    optimizer:step()
    accuracy = output:gt(0.5):float():eq(Y):float():mean():item()
    if accuracy < 1 then solved_from = nil elseif not solved_from then solved_from = epoch end
  end
  -- solved_from stays out of the record when the network did not end solved.
  return {loss = cost:item(), accuracy = accuracy, solved_from = solved_from}
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
  file = file,
  workers = args.workers,
  time_limit = 120,
  run = train,
}

-- The settings that end with accuracy 1.0 with every seed, and the fastest
-- of them: the first epoch from which all their seeds stayed solved.
local solved, fastest = 0, nil
for _, s in ipairs(result.settings) do
  local from, all = {}, s.ok == s.seeds
  for _, r in ipairs(s.trials) do -- this setting's trials, one per seed
    if r.status == "ok" and r.metrics.solved_from then
      from[#from + 1] = r.metrics.solved_from
    else
      all = false
    end
  end
  if all then
    solved = solved + 1
    local worst = math.max(table.unpack(from))
    if not fastest or worst < fastest.epochs then fastest = {config = s.config, epochs = worst, mean = s.mean} end
  end
end
local function setting_text(c)
  return string.format("lr=%g hidden=%d activation=%s", c.lr, c.hidden, c.activation)
end
print(string.format("\n%d of %d settings reached accuracy 1.0 with every seed and kept it to the end", solved,
                    #result.settings))
if result.best then
  print(string.format("lowest final loss: %s, loss %.4g (mean over its seeds)", setting_text(result.best.config),
                      result.best.mean))
end
if fastest then
  print(string.format("fastest to learn for good: %s, every seed solved from epoch %d on (final loss %.4g)",
                      setting_text(fastest.config), fastest.epochs, fastest.mean))
end

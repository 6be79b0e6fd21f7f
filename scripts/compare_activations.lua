-- The same small network with different hidden activations.
--
-- Which activation learns fastest? One run is not an answer: the starting
-- weights are random, and one lucky or unlucky draw can decide a race. So
-- each activation is trained from several seeds, on two problems: XOR's four
-- points, and "two moons", two interleaved half circles of noisy points that
-- no straight line separates. The table reports how many steps each needed
-- to reach a target loss, and the loss and accuracy it ended with.
--
--   nnlua scripts/compare_activations.lua [--quick] [--out DIR]    (pictures go to DIR, default pictures/)
local nn = require "nn"

local parser = nn.cli.parser("The same small network with different hidden activations, over several seeds.")
parser:flag("--quick", "fewer seeds and steps, for the test suite")
parser:option("--out", "the directory the pictures go to", "pictures"):argname("DIR")
local args = parser:parse()
local quick, out_dir = args.quick, nn.cli.make_dir(args.out)

local seeds = quick and 2 or 5
local steps = quick and 400 or 1500
local hidden = 16

local activations = {
  {name = "sigmoid",    make = nn.Sigmoid},
  {name = "tanh",       make = nn.Tanh},
  {name = "relu",       make = nn.ReLU},
  {name = "leaky_relu", make = nn.LeakyReLU},
  {name = "elu",        make = nn.ELU},
  {name = "gelu",       make = nn.GELU},
}

-------------------------------------------------------------------------------
-- The data.

-- Two moons: n points on the upper half circle (class 0) and n on a lower
-- half circle shifted right and down (class 1), each moved by Gaussian noise.
local function two_moons(n, noise)
  local rows, labels = {}, {}
  for k = 0, n - 1 do
    local t = math.pi * k / (n - 1)
    rows[#rows + 1], labels[#labels + 1] = {math.cos(t), math.sin(t)}, {0}
    rows[#rows + 1], labels[#labels + 1] = {1 - math.cos(t), 0.5 - math.sin(t)}, {1}
  end
  return nn.tensor(rows) + nn.randn(2 * n, 2) * noise, nn.tensor(labels)
end

nn.manual_seed(2024)
local problems = {
  {name = "xor", title = "XOR",
   X = nn.tensor({{0, 0}, {0, 1}, {1, 0}, {1, 1}}), Y = nn.tensor({{0}, {1}, {1}, {0}}),
   target = 0.05, lr = 0.01},
  {name = "moons", title = "two moons", target = 0.1, lr = 0.02},
}
problems[2].X, problems[2].Y = two_moons(100, 0.2)

-------------------------------------------------------------------------------
-- Training.

-- The small network: two hidden layers of `hidden` units; the output is a
-- score (logit) and BCEWithLogitsLoss puts the sigmoid inside the loss.
local function network(Activation)
  return nn.Sequential(
    nn.Linear(2, hidden), Activation(),
    nn.Linear(hidden, hidden), Activation(),
    nn.Linear(hidden, 1))
end
local criterion = nn.BCEWithLogitsLoss()

-- Trains one network; returns it, its loss after each step, the first step
-- at which the loss was under the target (nil if never), and its accuracy.
local function train(problem, act, seed, bar)
  nn.manual_seed(seed)
  local model = network(act.make)
  local optimizer = nn.optim.Adam(model:parameters(), {lr = problem.lr})
  local losses, reached = {}, nil
  for step = 1, steps do
    optimizer:zero_grad()
    local cost = criterion(model(problem.X), problem.Y)
    cost:backward()
    optimizer:step()
    losses[step] = cost:item()
    if not reached and losses[step] < problem.target then reached = step end
    if step % 10 == 0 then bar:update(10, cost) end
  end
  local accuracy = nn.no_grad(function()
    return model(problem.X):gt(0):float():eq(problem.Y):float():mean():item() -- logit > 0 means p > 0.5
  end)
  return model, losses, reached, accuracy
end

local function median(list)
  table.sort(list)
  local n = #list
  if n == 0 then return nil end
  return n % 2 == 1 and list[(n + 1) // 2] or (list[n // 2] + list[n // 2 + 1]) / 2
end

for _, problem in ipairs(problems) do
  print(string.format("%s: %d points, network 2-%d-%d-1, Adam lr %g, %d steps, %d seeds; target loss %g",
    problem.title, problem.X:size(1), hidden, hidden, problem.lr, steps, seeds, problem.target))
  print(string.format("  %-11s %-22s %-12s %s", "activation", "steps to target", "final loss", "accuracy"))
  local curves = {}
  problem.models = {}
  local bar <close> = nn.progress{total = #activations * seeds * steps, desc = problem.title}
  for _, act in ipairs(activations) do
    local reached, finals, accuracies, mean_curve = {}, {}, {}, {}
    for seed = 1, seeds do
      local model, losses, at, accuracy = train(problem, act, seed, bar)
      if at then reached[#reached + 1] = at end
      finals[seed], accuracies[seed] = losses[steps], accuracy
      for step = 1, steps do mean_curve[step] = (mean_curve[step] or 0) + losses[step] / seeds end
      if seed == 1 then problem.models[act.name] = model end
    end
    local mean_final, mean_accuracy = 0, 0
    for seed = 1, seeds do
      mean_final = mean_final + finals[seed] / seeds
      mean_accuracy = mean_accuracy + accuracies[seed] / seeds
    end
    local steps_text = #reached == 0 and "never"
      or string.format("%d (median of %d/%d)", math.floor(median(reached)), #reached, seeds)
    print(string.format("  %-11s %-22s %-12.2e %.3f", act.name, steps_text, mean_final, mean_accuracy))
    curves[#curves + 1] = {label = act.name, y = mean_curve}
  end
  bar:close()
  problem.curves = curves
  print()
end

-------------------------------------------------------------------------------
-- Pictures.

-- The loss curves, averaged over the seeds: one picture per problem.
for _, problem in ipairs(problems) do
  local path = out_dir .. "/compare_" .. problem.name .. "_loss.png"
  nn.plot.lines{y = problem.curves, logy = true,
    title = string.format("%s: training loss, mean of %d seeds (target %g)", problem.title, seeds, problem.target),
    xlabel = "step (full batch, Adam)", ylabel = "binary cross-entropy (log scale)", out = path}
  print("Picture: " .. path)
end

-- Decision regions on two moons: the network's probability of class 1 over
-- a grid covering the data, with the data on top. Where the colour turns
-- from blue to orange (p = 0.5) is the decision boundary.
local moons = problems[2]
local nx, ny = 90, 60
local xs, ys = nn.linspace(-1.5, 2.5, nx), nn.linspace(-1, 1.5, ny)
local grid = {}
for r = 1, ny do
  for c = 1, nx do grid[#grid + 1] = {xs[c]:item(), ys[r]:item()} end
end
grid = nn.tensor(grid)
local classes = (moons.Y:view(moons.Y:size(1)) + 1) -- class numbers 1 and 2 for the legend
for _, act in ipairs(activations) do
  local p = nn.no_grad(function() return moons.models[act.name](grid):sigmoid():view(ny, nx) end)
  local path = out_dir .. "/compare_moons_regions_" .. act.name .. ".png"
  nn.plot.heatmap{z = p, x = xs, y = ys, zrange = {0, 1}, zlabel = "p(class 1)",
    points = {x = moons.X:select(2, 1), y = moons.X:select(2, 2), class = classes,
              labels = {"class 0 (upper moon)", "class 1 (lower moon)"}},
    title = string.format("Two moons, %s hidden layers (seed 1): the network's p(class 1)", act.name),
    xlabel = "x1", ylabel = "x2", width = 900, height = 560, out = path}
  print("Picture: " .. path)
end

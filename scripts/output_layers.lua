-- Output layers and losses: which goes with which problem.
--
-- The hidden layers learn features; the output layer turns them into the
-- kind of answer the problem asks for, and the loss measures that answer:
--
--   problem                  output layer            loss
--   regression (a number)    identity (none)         mean squared error
--   binary classification    sigmoid: p in (0, 1)    binary cross-entropy
--   multi-class (K classes)  softmax: K p's, sum 1   cross-entropy
--
-- Each pairing is trained below on a tiny problem generated here.
--
--   nnlua scripts/output_layers.lua [--quick] [--out DIR]    (pictures go to DIR, default pictures/)
local nn = require "nn"

local parser = nn.cli.parser("Output layers and losses: which goes with which problem.")
parser:flag("--quick", "fewer training steps, for the test suite")
parser:option("--out", "the directory the pictures go to", "pictures"):argname("DIR")
local args = parser:parse()
local quick, out_dir = args.quick, nn.cli.make_dir(args.out)

local steps = quick and 500 or 2000
nn.manual_seed(3)

-- Full-batch training with Adam, with a progress bar; returns the last loss.
local function fit(name, model, criterion, X, Y)
  local optimizer = nn.optim.Adam(model:parameters(), {lr = 0.01})
  local bar <close> = nn.progress{total = steps, desc = name}
  local cost
  for _ = 1, steps do
    optimizer:zero_grad()
    cost = criterion(model(X), Y)
    cost:backward()
    optimizer:step()
    bar:update(1, cost)
  end
  return cost:item()
end

-- n points drawn around each centre, with class labels 1, 2, ... (in the order of the centres).
local function blobs(centres, n, spread)
  local rows, labels = {}, {}
  for k, c in ipairs(centres) do
    for _ = 1, n do rows[#rows + 1], labels[#labels + 1] = c, k end
  end
  return nn.tensor(rows) + nn.randn(#rows, 2) * spread, nn.tensor(labels)
end

-- A grid over [lo, hi]^2 for pictures of what a model answers everywhere.
local function grid(lo, hi, n)
  local axis = nn.linspace(lo, hi, n)
  local points = {}
  for r = 1, n do
    for c = 1, n do points[#points + 1] = {axis[c]:item(), axis[r]:item()} end
  end
  return nn.tensor(points), axis
end

local summary = {}

-------------------------------------------------------------------------------
-- 1. Regression: y = sin(x) plus a little noise. The output layer is a plain
-- Linear layer (identity activation): the answer may be any real number.

do
  local n, noise = 100, 0.1
  local X = nn.linspace(-3, 3, n):view(n, 1)
  local Y = X:sin() + nn.randn(n, 1) * noise
  local model = nn.Sequential(
    nn.Linear(1, 32), nn.Tanh(),
    nn.Linear(32, 1))                 -- identity output: no activation
  local mse = fit("regression", model, nn.MSELoss(), X, Y)
  print(string.format("Regression: y = sin(x) + noise (std %g), %d points", noise, n))
  print(string.format("  mean squared error %.4f (the noise alone gives about %.4f)", mse, noise ^ 2))
  summary[#summary + 1] = {"regression", "identity", "MSELoss", string.format("mean squared error %.4f", mse)}

  local path = out_dir .. "/output_regression.png"
  local fitted = nn.no_grad(function() return model(X) end)
  nn.plot.scatter{x = X, y = Y, label = "data: sin(x) + noise",
    lines = {x = X, y = fitted, label = "the network's answer"},
    title = "Regression: identity output, mean squared error", xlabel = "x", ylabel = "y",
    legend = "top left", out = path}
  print("Picture: " .. path)
  print()
end

-------------------------------------------------------------------------------
-- 2. Binary classification: two clouds of points, class 0 and class 1. The
-- sigmoid squashes the output into (0, 1): the probability of class 1.

do
  local X, labels = blobs({{-1, -1}, {1, 1}}, 100, 0.7)
  local Y = (labels - 1):view(labels:size(1), 1) -- targets 0 and 1, shaped (N, 1)
  local model = nn.Sequential(
    nn.Linear(2, 8), nn.ReLU(),
    nn.Linear(8, 1), nn.Sigmoid())    -- sigmoid output: a probability
  local loss = fit("binary", model, nn.BCELoss(), X, Y)
  local accuracy = nn.no_grad(function() return model(X):gt(0.5):float():eq(Y):float():mean():item() end)
  print(string.format("Binary classification: two clouds of 100 points"))
  print(string.format("  binary cross-entropy %.4f, accuracy %.3f", loss, accuracy))
  summary[#summary + 1] = {"binary classification", "sigmoid", "BCELoss", string.format("accuracy %.3f", accuracy)}

  local points, axis = grid(-3.5, 3.5, 70)
  local p = nn.no_grad(function() return model(points):view(70, 70) end)
  local path = out_dir .. "/output_binary.png"
  nn.plot.heatmap{z = p, x = axis, y = axis, zrange = {0, 1}, zlabel = "p(class 1)",
    points = {x = X:select(2, 1), y = X:select(2, 2), class = labels, labels = {"class 0", "class 1"}},
    title = "Binary classification: sigmoid output, binary cross-entropy", xlabel = "x1", ylabel = "x2",
    width = 800, height = 560, out = path}
  print("Picture: " .. path)
  print()
end

-------------------------------------------------------------------------------
-- 3. Multi-class: three clouds, classes 1, 2, 3. The network gives three
-- scores (logits); softmax turns them into three probabilities that sum to 1.
-- nn.CrossEntropyLoss applies log-softmax itself (one stable step), so the
-- model ends with the Linear layer and softmax is applied when predicting.

do
  local X, labels = blobs({{0, 2}, {-1.7, -1}, {1.7, -1}}, 80, 0.8)
  local model = nn.Sequential(
    nn.Linear(2, 16), nn.ReLU(),
    nn.Linear(16, 3))                 -- three scores; softmax is inside the loss
  local loss = fit("multi-class", model, nn.CrossEntropyLoss(), X, labels) -- labels 1..3
  local probabilities = nn.no_grad(function() return model(X):softmax(2) end)
  local predicted = probabilities:argmax(2)
  local accuracy = predicted:eq(labels:long()):float():mean():item()
  print("Multi-class classification: three clouds of 80 points")
  print(string.format("  cross-entropy %.4f, accuracy %.3f", loss, accuracy))
  -- The probabilities at two places: inside class 1's cloud, and near where the regions meet.
  for _, at in ipairs({{0, 2}, {0, 0.5}}) do
    local p = nn.no_grad(function() return model(nn.tensor({at})):softmax(2)[1] end)
    print(string.format("  softmax at (%g, %g): %.3f %.3f %.3f (sum %.3f)",
      at[1], at[2], p[1]:item(), p[2]:item(), p[3]:item(), p:sum():item()))
  end
  summary[#summary + 1] = {"multi-class (3 classes)", "softmax", "CrossEntropyLoss", string.format("accuracy %.3f", accuracy)}

  local points, axis = grid(-4, 4, 80)
  local regions = nn.no_grad(function() return model(points):argmax(2):view(80, 80) end)
  local path = out_dir .. "/output_multiclass.png"
  nn.plot.heatmap{z = regions, x = axis, y = axis, palette = "classes",
    points = {x = X:select(2, 1), y = X:select(2, 2), class = labels,
              labels = {"class 1", "class 2", "class 3"}},
    title = "Multi-class: softmax output, cross-entropy (regions: the most probable class)",
    xlabel = "x1", ylabel = "x2", width = 800, height = 560, out = path}
  print("Picture: " .. path)
  print()
end

print(string.format("%-24s %-13s %-17s %s", "problem", "output layer", "loss", "result"))
for _, row in ipairs(summary) do print(string.format("%-24s %-13s %-17s %s", table.unpack(row))) end

-- Vanishing gradients, made visible.
--
-- Backpropagation multiplies the gradient, layer by layer, by each
-- activation's derivative (and by the layer's weights). Sigmoid's derivative
-- is at most 0.25 (activations.lua), so each sigmoid layer passes back a
-- quarter of the gradient or less: ten layers down, almost nothing is left
-- and the first layers hardly learn. Tanh, ReLU, leaky ReLU and ELU have
-- slope 1 (near 0, or for every positive input), and with weights scaled to
-- match they pass the gradient back undiminished.
--
-- The network: 10 hidden layers of 32 units, one output unit; the problem:
-- points in the plane labelled by the sign of x1*x2 (a noiseless, wider XOR).
--
--   nnlua scripts/vanishing.lua [--quick] [--out DIR]    (pictures go to DIR, default pictures/)
local nn = require "nn"

local parser = nn.cli.parser("Vanishing gradients, made visible: ten layers of each activation.")
parser:flag("--quick", "fewer training steps, for the test suite")
parser:option("--out", "the directory the pictures go to", "pictures"):argname("DIR")
local args = parser:parse()
local quick, out_dir = args.quick, nn.cli.make_dir(args.out)

local depth, width = 10, 32
local steps = quick and 200 or 1000 -- "some training": full-batch SGD steps
local lr = 0.1

nn.manual_seed(1)
local X = nn.randn(256, 2)
local Y = (X:select(2, 1) * X:select(2, 2)):gt(0):float():view(256, 1)

-- Each activation with the weight initialisation usually paired with it, so
-- that the weights themselves neither grow nor shrink the gradient: Glorot
-- (Xavier) scaling for sigmoid and tanh (tanh with the gain 5/3 that
-- nn.init.calculate_gain gives), He (Kaiming) scaling for the ReLU family.
-- Even so, sigmoid's slope alone shrinks the gradient ~4x per layer.
local activations = {
  {name = "sigmoid",    make = nn.Sigmoid,   init = function(w) nn.init.xavier_normal_(w) end},
  {name = "tanh",       make = nn.Tanh,      init = function(w) nn.init.xavier_normal_(w, 5 / 3) end},
  {name = "relu",       make = nn.ReLU,      init = function(w) nn.init.kaiming_normal_(w, {nonlinearity = "relu"}) end},
  {name = "leaky_relu", make = nn.LeakyReLU, init = function(w) nn.init.kaiming_normal_(w, {nonlinearity = "leaky_relu", a = 0.01}) end},
  {name = "elu",        make = nn.ELU,       init = function(w) nn.init.kaiming_normal_(w, {nonlinearity = "relu"}) end},
}

-- The deep network for one activation; returns it and its hidden Linear layers.
local function deep_network(act)
  local modules, hidden = {}, {}
  local fan_in = 2
  for layer = 1, depth do
    local linear = nn.Linear(fan_in, width)
    act.init(linear.weight)
    nn.init.zeros_(linear.bias)
    hidden[layer] = linear
    modules[#modules + 1] = linear
    modules[#modules + 1] = act.make()
    fan_in = width
  end
  -- The output unit gives a score (a logit); BCEWithLogitsLoss applies the
  -- sigmoid inside the loss, so that only the hidden activations differ.
  modules[#modules + 1] = nn.Linear(width, 1)
  return nn.Sequential(table.unpack(modules)), hidden
end

local criterion = nn.BCEWithLogitsLoss()

-- The norm of the gradient that reaches each hidden layer's weights, after
-- one backward pass over the whole data set; and the loss.
local function gradient_norms(model, hidden)
  model:zero_grad()
  local cost = criterion(model(X), Y)
  cost:backward()
  local norms = {}
  for layer = 1, depth do norms[layer] = hidden[layer].weight.grad:norm():item() end
  return norms, cost:item()
end

-- The fraction of hidden units whose output is 0 for every input: a "dead"
-- ReLU unit passes back no gradient at all, so it never learns again.
local function dead_fraction(model)
  return nn.no_grad(function()
    local h, dead, units = X, 0, 0
    for m = 1, #model - 1 do
      h = model[m](h)
      if m % 2 == 0 then -- after each activation
        local alive = h:ne(0):float():sum(1)   -- inputs on which each unit is not 0
        dead = dead + alive:eq(0):float():sum():item()
        units = units + width
      end
    end
    return dead / units
  end)
end

local before, after, loss_before, loss_after, dead_before, dead_after = {}, {}, {}, {}, {}, {}
for k, act in ipairs(activations) do
  nn.manual_seed(7)
  local model, hidden = deep_network(act)
  before[k], loss_before[k] = gradient_norms(model, hidden)
  dead_before[k] = dead_fraction(model)

  local optimizer = nn.optim.SGD(model:parameters(), {lr = lr})
  local bar <close> = nn.progress{total = steps, desc = act.name}
  for _ = 1, steps do
    optimizer:zero_grad()
    local cost = criterion(model(X), Y)
    cost:backward()
    optimizer:step()
    bar:update(1, cost)
  end
  bar:close()
  after[k], loss_after[k] = gradient_norms(model, hidden)
  dead_after[k] = dead_fraction(model)
end

-- The tables: one row per layer, one column per activation.
local function table_of(norms, heading)
  print(heading)
  local head = {string.format("  %-6s", "layer")}
  for _, act in ipairs(activations) do head[#head + 1] = string.format("%11s", act.name) end
  print(table.concat(head, " "))
  for layer = 1, depth do
    local cells = {string.format("  %-6d", layer)}
    for k = 1, #activations do cells[#cells + 1] = string.format("%11.2e", norms[k][layer]) end
    print(table.concat(cells, " "))
  end
end

print(string.format("A %d-layer MLP, %d units per layer, on %d points: the gradient norm |dLoss/dW| "
  .. "reaching each hidden layer", depth, width, X:size(1)))
print("(layer 1 is next to the input, layer 10 next to the output; backprop runs from 10 to 1)")
print()
table_of(before, "At initialisation:")
print()
table_of(after, string.format("After %d steps of SGD (lr %g):", steps, lr))
print()

print("Across the layers, from layer 10 back to layer 1, the gradient shrinks by:")
for k, act in ipairs(activations) do
  local shrink = before[k][depth] / before[k][1]
  print(string.format("  %-11s %10.3g x in all, %6.2f x per layer on average (at initialisation)",
    act.name, shrink, shrink ^ (1 / (depth - 1))))
end
local ratios = {}
for layer = depth, 2, -1 do ratios[#ratios + 1] = string.format("%.1f", before[1][layer] / before[1][layer - 1]) end
print("  sigmoid, layer by layer (10/9, 9/8, ..., 2/1): " .. table.concat(ratios, " "))
print()

print(string.format("  %-11s %12s %12s %18s %18s", "activation", "loss before", "loss after",
  "dead units before", "dead units after"))
for k, act in ipairs(activations) do
  print(string.format("  %-11s %12.4f %12.4f %17.1f%% %17.1f%%", act.name, loss_before[k], loss_after[k],
    100 * dead_before[k], 100 * dead_after[k]))
end
print("(a dead unit outputs 0 for every input: only ReLU's units can die, and ReLU's")
print(" network learned all the same with the units it had left)")
print("Sigmoid's network stays at the chance loss ln 2 = 0.693: its first layers get")
print("no gradient, so by layer 10 every input looks alike; the output can learn only")
print("the average answer, and once it has, the gradient is gone from every layer.")
print()

-- The pictures: the same table drawn on a log scale, where shrinking by a
-- constant factor per layer is a straight line.
local layers = {}
for layer = 1, depth do layers[layer] = layer end
local function picture(norms, name, when, note)
  local series = {}
  for k, act in ipairs(activations) do series[k] = {label = act.name, x = layers, y = norms[k]} end
  local path = out_dir .. "/" .. name
  nn.plot.lines{y = series, logy = true, xrange = {0.5, depth + 0.5},
    title = string.format("Gradient norm reaching each layer of a %d-layer MLP, %s\n%s", depth, when, note),
    xlabel = "hidden layer (1 = next to the input, 10 = next to the output)",
    ylabel = "|dLoss/dW| of the layer (log scale)", out = path}
  print("Picture: " .. path)
end
picture(before, "vanishing_init.png", "at initialisation",
  "sigmoid's shrinks ~4x per layer on its way back (ReLU's curve lies under leaky ReLU's)")
picture(after, "vanishing_trained.png", string.format("after %d SGD steps", steps),
  "sigmoid's network learned only the average answer, and then no gradient is left anywhere")

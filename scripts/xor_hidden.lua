-- XOR with ONE hidden layer.
--
-- xor.lua solves XOR with three hidden layers of sigmoids. One is enough:
-- the hidden units draw a few lines (as NAND and OR did in gates.lua) and
-- the output unit combines them. Here the same small network is trained with
-- three hidden activations, sigmoid, tanh and ReLU, and the script reports
-- how many epochs each needs to bring the cost under a target.
--
--   nnlua scripts/xor_hidden.lua [--quick] [--out DIR]    (pictures go to DIR, default pictures/)
local nn = require "nn"

local parser = nn.cli.parser("XOR with one hidden layer: sigmoid, tanh and ReLU compared.")
parser:flag("--quick", "accepted for the test suite: this lesson is quick already")
parser:option("--out", "the directory the pictures go to", "pictures"):argname("DIR")
local out_dir = nn.cli.make_dir(parser:parse().out)

local X = nn.tensor({{0, 0}, {0, 1}, {1, 0}, {1, 1}})
local Y = nn.tensor({{0}, {1}, {1}, {0}})

local hidden = 10       -- units in the one hidden layer
local target = 0.05     -- "learned": the cost is below this
local max_epochs = 10000
local lr = 1

-- The networks compared: one hidden layer with each activation, and, for
-- reference, xor.lua's three hidden layers of sigmoids.
local function one_layer(Activation)
  return function()
    return nn.Sequential(
      nn.Linear(2, hidden), Activation(),   -- the one hidden layer
      nn.Linear(hidden, 1), nn.Sigmoid())   -- the output: a probability of "1"
  end
end
local networks = {
  {name = "1 x sigmoid", make = one_layer(nn.Sigmoid)},
  {name = "1 x tanh",    make = one_layer(nn.Tanh)},
  {name = "1 x relu",    make = one_layer(nn.ReLU)},
  {name = "3 x sigmoid (xor.lua)", make = function()
    return nn.Sequential(
      nn.Linear(2, hidden), nn.Sigmoid(),
      nn.Linear(hidden, hidden), nn.Sigmoid(),
      nn.Linear(hidden, hidden), nn.Sigmoid(),
      nn.Linear(hidden, 1), nn.Sigmoid())
  end},
}

local curves, results = {}, {}
for _, net in ipairs(networks) do
  nn.manual_seed(777) -- the same starting weights for every activation
  local model = net.make()
  local criterion = nn.BCELoss()
  local optimizer = nn.optim.SGD(model:parameters(), {lr = lr})

  local costs, epochs = {}, {}
  local needed = nil -- the first epoch whose cost is under the target
  local bar <close> = nn.progress{total = max_epochs, desc = net.name}
  for epoch = 1, max_epochs do
    optimizer:zero_grad()
    local cost = criterion(model(X), Y)
    cost:backward()
    optimizer:step()
    -- Reading the cost copies a number out of the engine: every 10 epochs is
    -- enough for the curve and for "epochs needed" to within 10.
    if epoch % 10 == 0 or epoch == 1 then
      local c = cost:item()
      costs[#costs + 1], epochs[#epochs + 1] = c, epoch
      if not needed and c < target then needed = epoch end
    end
    if epoch % 100 == 0 then bar:update(100, cost) end -- a tiny step: count 100 at once
  end
  bar:close()

  local predicted = nn.no_grad(function() return model(X):gt(0.5):float() end)
  local accuracy = predicted:eq(Y):float():mean():item()
  results[#results + 1] = {name = net.name, needed = needed, final = costs[#costs], accuracy = accuracy}
  curves[#curves + 1] = {label = net.name, x = epochs, y = costs}
end

print(string.format("XOR, hidden layers of %d units, SGD lr = %g, %d epochs", hidden, lr, max_epochs))
print(string.format("%-21s  %-22s  %-10s  %s", "hidden layer", "epochs to cost < " .. target, "final cost", "accuracy"))
for _, r in ipairs(results) do
  print(string.format("%-21s  %-22s  %-10.2e  %.2f", r.name,
    r.needed and tostring(r.needed) or ("not within " .. max_epochs), r.final, r.accuracy))
end

local path = out_dir .. "/xor_hidden_cost.png"
nn.plot.lines{y = curves, logy = true,
  title = string.format("XOR: cost per epoch, one hidden layer of %d units\n"
    .. "(and xor.lua's three layers of sigmoids, for reference)", hidden),
  xlabel = "epoch", ylabel = "binary cross-entropy (log scale)", out = path}
print("Picture: " .. path)

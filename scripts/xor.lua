-- XOR with a multilayer perceptron: three hidden layers of sigmoids learn
-- what no single layer can (compare perceptron_xor.lua).
local nn = require "nn"
local parser = nn.cli.device(nn.cli.parser("XOR with a multilayer perceptron: three hidden layers of sigmoids."))
parser:flag("--capture", "record the training step once and replay it (nn.capture): the same numbers, faster")
local args = parser:parse()
nn.manual_seed(777)
local device = args.device -- "cuda" where available (as the seed does), or --device cpu

local X = nn.tensor({{0, 0}, {0, 1}, {1, 0}, {1, 1}}):to(device)
local Y = nn.tensor({{0}, {1}, {1}, {0}}):to(device)

local model = nn.Sequential(
  nn.Linear(2, 10), nn.Sigmoid(),
  nn.Linear(10, 10), nn.Sigmoid(),
  nn.Linear(10, 10), nn.Sigmoid(),
  nn.Linear(10, 1), nn.Sigmoid()):to(device)
local criterion = nn.BCELoss()
local optimizer = nn.optim.SGD(model:parameters(), {lr = 1})

local function train_step(x, y)
  optimizer:zero_grad()
  local cost = criterion(model(x), y)
  cost:backward()
  optimizer:step()
  return cost
end
-- --capture: the step's kernels recorded once and replayed, no Lua in between
local step = args.capture and nn.capture(train_step) or train_step

for epoch = 0, 10000 do
  local cost = step(X, Y)
  if epoch % 100 == 0 then print(epoch, cost:item()) end
end

nn.no_grad(function()
  local h = model(X)
  local predicted = h:gt(0.5):float()
  local accuracy = predicted:eq(Y):float():mean():item()
  -- as the seed's PyTorch script: the model's outputs, what they predict
  -- (output > 0.5), the labels, and the share predicted right
  print("\nHypothesis:\n" .. tostring(h))
  print("Predicted:\n" .. tostring(predicted))
  print("Actual (Y):\n" .. tostring(Y))
  print("Accuracy: " .. accuracy)
end)

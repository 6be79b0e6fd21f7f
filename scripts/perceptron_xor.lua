-- XOR with a single layer: Linear(2, 1) and a sigmoid. However long it
-- trains, the cost stays at ln 2 = 0.6931: no single line separates XOR's
-- points, so the best one layer can do is answer 0.5 everywhere.
local nn = require "nn"
nn.cli.parser("XOR with a single layer: the cost stays at ln 2."):parse()
nn.manual_seed(777)

local X = nn.tensor({{0, 0}, {0, 1}, {1, 0}, {1, 1}})
local Y = nn.tensor({{0}, {1}, {1}, {0}})

local model = nn.Sequential(nn.Linear(2, 1), nn.Sigmoid())
local criterion = nn.BCELoss()
local optimizer = nn.optim.SGD(model:parameters(), {lr = 1})

for epoch = 0, 10000 do
  optimizer:zero_grad()
  local cost = criterion(model(X), Y)
  cost:backward()
  optimizer:step()
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
  print(string.format("Final cost %.4f: ln 2 = %.4f, one layer cannot learn XOR",
    criterion(h, Y):item(), math.log(2)))
end)

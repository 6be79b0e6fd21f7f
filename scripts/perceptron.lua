-- Rosenblatt's perceptron learning rule (1958).
--
-- gates.lua set a perceptron's weights by hand. Here it learns them from the
-- truth table: for each row x with answer y, the perceptron guesses
-- ŷ = step(w·x + b), and when it is wrong it moves its weights toward the
-- right answer:
--
--     w ← w + lr·(y − ŷ)·x        b ← b + lr·(y − ŷ)
--
-- When a single line can separate the 1s from the 0s (AND, OR, NAND) the rule
-- is guaranteed to find one in a finite number of steps (the perceptron
-- convergence theorem). XOR has no such line, and the rule never settles.
--
--   nnlua scripts/perceptron.lua [--quick] [--out DIR]    (pictures go to DIR, default pictures/)
local nn = require "nn"

local parser = nn.cli.parser("Rosenblatt's perceptron learning rule, on AND, OR, NAND and XOR.")
parser:flag("--quick", "accepted for the test suite: this lesson is quick already")
parser:option("--out", "the directory the pictures go to", "pictures"):argname("DIR")
local out_dir = nn.cli.make_dir(parser:parse().out)

local X = nn.tensor({{0, 0}, {0, 1}, {1, 0}, {1, 1}})
local truth = {
  {name = "AND",  y = {0, 0, 0, 1}},
  {name = "OR",   y = {0, 1, 1, 1}},
  {name = "NAND", y = {1, 1, 1, 0}},
  {name = "XOR",  y = {0, 1, 1, 0}, why = ": no single line separates XOR's 1s from its 0s"},
}
-- Starting from zero, every update is a multiple of lr, so lr only scales
-- the weights and changes no answer: lr = 1 keeps the arithmetic exact.
local lr = 1
local budget = 50 -- epochs; an epoch is one pass over the four rows

-- Trains a perceptron on the four rows of X with answers y; returns the
-- weights, the bias, the number of mistakes in each epoch, and whether an
-- epoch without mistakes was reached.
local function learn(name, y)
  local w, b = nn.zeros(2), 0 -- start knowing nothing
  local mistakes = {}
  local bar <close> = nn.progress{total = budget, desc = name}
  for epoch = 1, budget do
    local wrong = 0
    for row = 1, 4 do
      local x = X[row]
      local guess = ((x * w):sum():item() + b > 0) and 1 or 0 -- step(w·x + b)
      local error = y[row] - guess                             -- 0 when right, ±1 when wrong
      if error ~= 0 then
        w = w + lr * error * x
        b = b + lr * error
        wrong = wrong + 1
      end
    end
    mistakes[epoch] = wrong
    bar:update(1, {mistakes = wrong})
    if wrong == 0 then return w, b, mistakes, true end
  end
  return w, b, mistakes, false
end

local curves = {}
for _, gate in ipairs(truth) do
  local w, b, mistakes, converged = learn(gate.name, gate.y)
  local found = string.format("w = (%g, %g), b = %g", w[1]:item(), w[2]:item(), b)
  if converged then
    print(string.format("%-4s learned in %d epochs: %s", gate.name, #mistakes, found))
  else
    print(string.format("%-4s did not converge in %d epochs (still %d mistakes in the last epoch; "
      .. "last weights %s)%s", gate.name, budget, mistakes[#mistakes], found, gate.why or ""))
  end
  -- The learned perceptron's answers next to the truth table.
  local answers = (X:matmul(w) + b):step()
  local row_text = {}
  for row = 1, 4 do
    row_text[row] = string.format("%d%d->%d", X[row][1]:item(), X[row][2]:item(), answers[row]:item())
  end
  print("     answers " .. table.concat(row_text, "  ") .. "   (truth " .. table.concat(gate.y, " ") .. ")")
  curves[#curves + 1] = {label = gate.name, y = mistakes}
end

-- One picture: the mistakes in each epoch. AND, OR and NAND drop to 0 and
-- stop; XOR keeps making mistakes until its budget runs out.
local path = out_dir .. "/perceptron_mistakes.png"
nn.plot.lines{y = curves, style = "linespoints",
  title = "Rosenblatt's rule: mistakes per epoch (training stops at 0)\n"
    .. "from epoch 2 on, AND's curve hides under NAND's (the same mistakes)",
  xlabel = "epoch (one pass over the 4 rows)", ylabel = "rows answered wrongly",
  xrange = {0, budget + 1}, yrange = {-0.2, 4.2}, out = path}
print("Picture: " .. path)

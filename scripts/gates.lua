-- Logic gates from perceptrons with hand-set weights.
--
-- A perceptron takes inputs x1, x2, forms the weighted sum w1*x1 + w2*x2 + b
-- and answers 1 when the sum is above 0, else 0 (a step activation). The
-- weights below make it an AND, an OR or a NAND gate; no choice of weights
-- makes it an XOR, but two layers of perceptrons do: XOR = AND(NAND, OR).
--
--   nnlua scripts/gates.lua [--quick] [--out DIR]    (pictures go to DIR, default pictures/)
local nn = require "nn"

local parser = nn.cli.parser("Logic gates from perceptrons with hand-set weights.")
parser:flag("--quick", "accepted for the test suite: this lesson is quick already")
parser:option("--out", "the directory the pictures go to", "pictures"):argname("DIR")
local out_dir = nn.cli.make_dir(parser:parse().out)

-- The four possible inputs, one per row.
local X = nn.tensor({{0, 0}, {0, 1}, {1, 0}, {1, 1}})

-- A perceptron: weights w = (w1, w2) and bias b. X:matmul(w) + b is every
-- row's weighted sum at once; step() turns each sum into 0 or 1.
local function perceptron(w1, w2, b)
  local w = nn.tensor({w1, w2})
  return function(x)
    local sum = x:matmul(w) + b
    return sum:step(), sum
  end
end

local gates = {
  {name = "AND",  w = {0.5, 0.5},   b = -0.7},
  {name = "OR",   w = {0.5, 0.5},   b = -0.2},
  {name = "NAND", w = {-0.5, -0.5}, b = 0.7},
}
for _, g in ipairs(gates) do g.fire = perceptron(g.w[1], g.w[2], g.b) end
local AND, OR, NAND = gates[1].fire, gates[2].fire, gates[3].fire

-- The truth table of each gate, with the weighted sum that decides each row.
for _, g in ipairs(gates) do
  local y, sum = g.fire(X)
  print(string.format("%s: w = (%g, %g), b = %g", g.name, g.w[1], g.w[2], g.b))
  print("  x1  x2   w1*x1 + w2*x2 + b   y")
  for row = 1, 4 do
    print(string.format("  %2d  %2d   %17.1f   %d", X[row][1]:item(), X[row][2]:item(),
      sum[row]:item(), y[row]:item()))
  end
  print()
end

-- XOR: a second layer. The first layer computes NAND(x) and OR(x); the
-- second feeds those two answers to AND.
local s1 = NAND(X)
local s2 = OR(X)
local hidden = nn.tensor({s1:totable(), s2:totable()}):t() -- rows (s1, s2)
local y = AND(hidden)
print("XOR = AND(NAND(x1, x2), OR(x1, x2)): a two-layer perceptron")
print("  x1  x2   s1 = NAND  s2 = OR   y = AND(s1, s2)")
for row = 1, 4 do
  print(string.format("  %2d  %2d   %9d  %7d   %15d", X[row][1]:item(), X[row][2]:item(),
    s1[row]:item(), s2[row]:item(), y[row]:item()))
end
print()

-- Pictures: the four inputs coloured by the gate's answer, and the gate's
-- decision line, where the weighted sum is 0: w1*x1 + w2*x2 + b = 0, that is
-- x2 = -(w1*x1 + b) / w2. Points on one side answer 1, on the other 0.
local function decision_line(g, label)
  local xs = {-0.5, 1.5}
  local ys = {}
  for k, x1 in ipairs(xs) do ys[k] = -(g.w[1] * x1 + g.b) / g.w[2] end
  return {x = xs, y = ys, label = label or "decision line"}
end

local function draw(name, answers, lines, title)
  local path = out_dir .. "/gates_" .. name:lower() .. ".png"
  nn.plot.scatter{
    x = X:select(2, 1), y = X:select(2, 2),
    class = answers + 1, labels = {"output 0", "output 1"}, -- classes are numbered 1, 2
    lines = lines,
    title = title, xlabel = "x1", ylabel = "x2",
    xrange = {-0.5, 1.5}, yrange = {-0.5, 1.5}, width = 640, height = 480,
    out = path}
  print("Picture: " .. path)
end

-- "0.5*x1 - 0.5*x2 + 0.7": the weighted sum as a learner writes it.
local function sum_text(g)
  local function term(v, text) return (v < 0 and " - " or " + ") .. string.format("%g", math.abs(v)) .. text end
  return string.format("%g*x1", g.w[1]) .. term(g.w[2], "*x2") .. term(g.b, "")
end

for _, g in ipairs(gates) do
  draw(g.name, g.fire(X), decision_line(g),
    string.format("%s: answers 1 where %s > 0", g.name, sum_text(g)))
end
draw("XOR", y, {decision_line(gates[3], "NAND's line"), decision_line(gates[2], "OR's line")},
  "XOR: no single line separates the 1s from the 0s;\nthe 1s lie between NAND's line and OR's line")

-- Activation functions and their derivatives.
--
-- A layer's weighted sum goes through an activation function before the next
-- layer sees it. Without one, layers of weighted sums collapse into a single
-- weighted sum; with one, a network can bend its decision lines. How steep
-- the activation is (its derivative) decides how much gradient flows back
-- through it during training: a derivative well below 1 shrinks the gradient
-- at every layer (see vanishing.lua), a derivative of 0 stops it.
--
--   nnlua scripts/activations.lua [--quick] [--out DIR]    (pictures go to DIR, default pictures/)
local nn = require "nn"

local parser = nn.cli.parser("Activation functions and their derivatives, drawn family by family.")
parser:flag("--quick", "accepted for the test suite: this lesson is quick already")
parser:option("--out", "the directory the pictures go to", "pictures"):argname("DIR")
local out_dir = nn.cli.make_dir(parser:parse().out)

-- Every activation of the catalogue, by the name nn.F knows it, in three
-- families: the S-shaped ones, ReLU and its piecewise relatives, and the
-- smooth curves that bend like ReLU. Each family is drawn on its own panel.
local families = {
  {title = "S-shaped", names = {"step", "sigmoid", "tanh", "hardsigmoid", "hardtanh", "softsign", "logsigmoid"}},
  {title = "ReLU and its piecewise kin", names = {"relu", "leaky_relu", "elu", "selu"}},
  {title = "smooth ReLUs", names = {"gelu", "silu", "mish", "softplus"}},
}
local names, family_of = {}, {}
for f, family in ipairs(families) do
  for _, name in ipairs(family.names) do names[#names + 1] = name; family_of[name] = f end
end
-- Options where the default would hide the idea: with its default slope of
-- 0.01, leaky ReLU's leak is invisible next to ReLU at this scale.
local options = {leaky_relu = {negative_slope = 0.1}}
local labels = {leaky_relu = "leaky_relu (slope 0.1)"}

-- 1001 points on [-5, 5], 0.01 apart, 0 among them (float64 for exact maxima).
local x = nn.linspace(-5, 5, 1001):double()
local xs = x:totable()

local values, slopes = {}, {}
print("The largest derivative of each activation on [-5, 5]:")
print(string.format("  %-12s %-10s %s", "activation", "max f'(x)", "reached at"))
for _, name in ipairs(names) do
  local opts = options[name]
  local f = opts and nn.F[name](x, opts) or nn.F[name](x)
  -- nn.F.derivative asks autograd for df/dx at every point: the very
  -- numbers backward() multiplies the gradient by.
  local df = nn.F.derivative(name, x, opts)
  local top = df:max():item()
  -- Where the maximum is reached: one point, or a stretch of x.
  local first, last
  for k, slope in ipairs(df:totable()) do
    if slope >= top - 1e-9 then first, last = first or xs[k], xs[k] end
  end
  local at = first == last and string.format("x = %g", first) or string.format("x in [%g, %g]", first, last)
  if first == last and math.abs(first) == 5 then at = at .. " (the end of the range: it creeps toward 1 beyond)" end
  print(string.format("  %-12s %-10.4g %s", name, top, at))
  local f_family = family_of[name]
  values[f_family] = values[f_family] or {}
  slopes[f_family] = slopes[f_family] or {}
  table.insert(values[f_family], {label = labels[name] or name, y = f})
  table.insert(slopes[f_family], {label = labels[name] or name, y = df})
end
print("  (step's derivative is 0 everywhere it exists: gradient descent gets no signal through it)")
print()

-- One picture of the functions and one of their derivatives, a panel per family.
local function panels(series, yrange, ylabel)
  local list = {}
  for f, family in ipairs(families) do
    list[f] = {kind = "lines", x = x, y = series[f], xrange = {-5, 5}, yrange = yrange, title = family.title,
               xlabel = "x (the weighted sum)", ylabel = ylabel}
  end
  return list
end
local picture = panels(values, {-2.5, 5}, "f(x)")
picture.title, picture.out, picture.width, picture.height = "Activation functions f(x)",
  out_dir .. "/activations.png", 1500, 560
print("Picture: " .. nn.plot.panels(picture))
picture = panels(slopes, {-0.2, 1.8}, "f'(x)")
picture.title = "Derivatives f'(x): the factor by which each scales the gradient passing back "
  .. "(sigmoid's is never above 0.25; step's is 0)"
picture.out, picture.width, picture.height = out_dir .. "/activation_derivatives.png", 1500, 560
print("Picture: " .. nn.plot.panels(picture))
print()

-- Softmax turns scores into probabilities: exp(x_i) / sum_j exp(x_j).
-- Written just like that, it overflows: exp(1000) is far beyond the largest
-- float (about 3.4e38 in float32, 1.8e308 in float64), so it becomes inf,
-- and inf / inf is NaN ("not a number").
local scores = nn.tensor({1000, 1050, 1100})
local naive = scores:exp() / scores:exp():sum()
print("Softmax of " .. tostring(scores):gsub("\n", " "))
print("  naive exp(x) / sum(exp(x)):  " .. tostring(naive))
-- Subtracting the largest score first changes nothing mathematically
-- (the factor exp(-max) cancels) but keeps every exp() at most 1.
local shifted = scores - scores:max()
local by_hand = shifted:exp() / shifted:exp():sum()
print("  exp(x - max) / sum(...):     " .. tostring(by_hand))
local stable = nn.F.softmax(scores, 1)
print("  nn.F.softmax(x, 1):          " .. tostring(stable))
print(string.format("  the naive one has NaN: %s; nn.F.softmax sums to %.6f",
  tostring(naive[1]:item() ~= naive[1]:item()), stable:sum():item()))

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
print()

-- PReLU (He et al., 2015) is leaky ReLU whose slope for x < 0 is learned:
-- y = x for x > 0, w x otherwise, and backward gives w its own gradient,
-- sum over x < 0 of x * (the gradient of y). To see it learn, fit y = |x|,
-- which needs the slope -1 on the left, starting from PyTorch's 0.25.
nn.manual_seed(13)
local prelu = nn.PReLU()
local grid = nn.linspace(-3, 3, 61)
local target = grid:abs()
local opt = nn.optim.SGD(prelu:parameters(), {lr = 0.05})
local slope_history = {prelu.weight:item()}
for _ = 1, 60 do
  opt:zero_grad()
  nn.F.mse_loss(prelu(grid), target):backward()
  opt:step()
  slope_history[#slope_history + 1] = prelu.weight:item()
end
print(string.format("PReLU fitting |x|: its slope went from 0.25 to %.4f (|x| needs -1)", prelu.weight:item()))

-- Maxout (Goodfellow et al., 2013) keeps the largest of k linear pieces:
-- max_i (a_i x + b_i) is convex and piecewise linear, and with enough pieces
-- it approaches any convex curve. Fit x^2 on [-2, 2] with 1, 2 and 4 pieces.
local xs_fit = nn.linspace(-2, 2, 81):view(81, 1)
local parabola = (xs_fit ^ 2):view(81)
local maxout_fits = {{label = "x^2", y = parabola}}
print("Maxout fitting x^2 on [-2, 2] (mean squared error after 400 Adam steps):")
for _, pieces in ipairs {1, 2, 4} do
  nn.manual_seed(1)
  local m = nn.Maxout(1, 1, pieces)
  local adam = nn.optim.Adam(m:parameters(), {lr = 0.05})
  local loss
  for _ = 1, 400 do
    adam:zero_grad()
    loss = nn.F.mse_loss(m(xs_fit):view(81), parabola)
    loss:backward()
    adam:step()
  end
  print(string.format("  %d piece%s: %.4f", pieces, pieces == 1 and " " or "s", loss:item()))
  maxout_fits[#maxout_fits + 1] = {label = pieces .. (pieces == 1 and " piece" or " pieces"),
                                   y = nn.no_grad(function() return m(xs_fit):view(81) end)}
end

-- Softmax with a temperature T: softmax(scores / T). A low T sharpens the
-- distribution toward the largest score (argmax as T -> 0), a high T
-- flattens it toward uniform (1/3 each here).
local scores3 = nn.tensor({1, 2, 3})
local temperatures = nn.linspace(0.1, 5, 50)
local probs = {{}, {}, {}}
for k, t in ipairs(temperatures:totable()) do
  local p = nn.F.softmax(scores3 / t, 1):totable()
  for c = 1, 3 do probs[c][k] = p[c] end
end
print("Softmax of scores {1, 2, 3} at temperature T:")
for _, t in ipairs {0.1, 1, 5} do
  local p = nn.F.softmax(scores3 / t, 1):totable()
  print(string.format("  T = %-4g %.4f %.4f %.4f", t, p[1], p[2], p[3]))
end

local xs_maxout = xs_fit:view(81)
print("Picture: " .. nn.plot.panels {
  title = "PReLU learns its slope; Maxout bends lines into a convex curve; softmax's temperature",
  out = out_dir .. "/prelu_maxout_softmax.png", width = 1500, height = 520,
  {kind = "lines", title = "PReLU slope while fitting |x|", x = nn.arange(0, #slope_history),
   y = {{label = "learned slope w", y = slope_history}}, xlabel = "SGD step", ylabel = "w"},
  {kind = "lines", title = "Maxout: the max of k lines fitting x^2", x = xs_maxout, y = maxout_fits,
   xlabel = "x", ylabel = "y"},
  {kind = "lines", title = "softmax({1, 2, 3} / T)", x = temperatures,
   y = {{label = "p(score 1)", y = probs[1]}, {label = "p(score 2)", y = probs[2]}, {label = "p(score 3)", y = probs[3]}},
   xlabel = "temperature T", ylabel = "probability", yrange = {0, 1}},
})

-- Backpropagation on a computational graph: buying apples.
--
-- A computation is a graph of small steps (nodes). Going forward, each node
-- computes its output from its inputs. Going backward, each node receives
-- d(result)/d(its output) and passes on d(result)/d(each input) by the chain
-- rule, using only what it saw in the forward pass. Two nodes are enough here:
--
--   multiply  z = x * y:  dz/dx = y, dz/dy = x    (it swaps its inputs)
--   add       z = x + y:  dz/dx = 1, dz/dy = 1    (it passes the gradient on)
--
-- The lesson is done twice: with the two layers written by hand below, and
-- with the engine's autograd, which builds the same graph and runs the same
-- backward pass for us.
--
--   nnlua scripts/backprop.lua
local nn = require "nn"

-- The options every experiment takes; this one is quick and draws no picture.
local parser = nn.cli.parser("Backpropagation on a computational graph: buying apples.")
parser:flag("--quick", "accepted for the test suite: this lesson is quick already")
parser:option("--out", "accepted for the test suite: this lesson draws no picture")
parser:parse()

-------------------------------------------------------------------------------
-- The hand-written layers: forward remembers its inputs, backward uses them.

local MulLayer = {}
MulLayer.__index = MulLayer

function MulLayer.new() return setmetatable({}, MulLayer) end

function MulLayer:forward(x, y)
  self.x, self.y = x, y
  return x * y
end

-- dout is d(result)/d(x*y); returns d(result)/dx and d(result)/dy.
function MulLayer:backward(dout)
  return dout * self.y, dout * self.x
end

local AddLayer = {}
AddLayer.__index = AddLayer

function AddLayer.new() return setmetatable({}, AddLayer) end

function AddLayer:forward(x, y) return x + y end

function AddLayer:backward(dout) return dout * 1, dout * 1 end

-- Prints one row: a name, the hand-written value, autograd's, and whether
-- they agree.
local all_agree = true
local function row(name, by_hand, by_autograd)
  local agree = by_autograd == nil or math.abs(by_hand - by_autograd) <= 1e-9 * math.max(1, math.abs(by_hand))
  all_agree = all_agree and agree
  print(string.format("  %-30s %10.6g %10s", name, by_hand,
    by_autograd == nil and "-" or string.format("%.6g", by_autograd)))
end

-- A number the engine's autograd watches: a float64 scalar tensor that requires grad.
local function leaf(v) return nn.tensor(v, {dtype = "float64", requires_grad = true}) end

-------------------------------------------------------------------------------
-- 1. Two apples at 100 each, with 10% tax: price = 100 * 2 * 1.1.

do
  local apple, apple_count, tax = 100, 2, 1.1

  -- By hand: the graph apple --(*)--> apple_price --(*)--> price.
  local mul_apple, mul_tax = MulLayer.new(), MulLayer.new()
  local apple_price = mul_apple:forward(apple, apple_count)
  local price = mul_tax:forward(apple_price, tax)
  -- Backward, from d price / d price = 1, through the nodes in reverse order.
  local d_apple_price, d_tax = mul_tax:backward(1)
  local d_apple, d_apple_count = mul_apple:backward(d_apple_price)

  -- By autograd: the same expression on tensors; backward() fills .grad.
  local a, n, t = leaf(apple), leaf(apple_count), leaf(tax)
  local p = a * n * t
  p:backward()

  print("1. Two apples at 100 each, tax 1.1")
  print(string.format("  %-30s %10s %10s", "", "by hand", "autograd"))
  row("price", price, p:item())
  row("d price / d apple", d_apple, a.grad:item())
  row("d price / d apple count", d_apple_count, n.grad:item())
  row("d price / d tax", d_tax, t.grad:item())
  print()
end

-------------------------------------------------------------------------------
-- 2. Two apples at 100 and three mandarins at 150, with 10% tax:
--    price = (100 * 2 + 150 * 3) * 1.1. An add node joins the two branches.

do
  local apple, apple_count = 100, 2
  local mandarin, mandarin_count = 150, 3
  local tax = 1.1

  local mul_apple, mul_mandarin = MulLayer.new(), MulLayer.new()
  local add_fruit, mul_tax = AddLayer.new(), MulLayer.new()
  -- Forward.
  local apple_price = mul_apple:forward(apple, apple_count)
  local mandarin_price = mul_mandarin:forward(mandarin, mandarin_count)
  local fruit_price = add_fruit:forward(apple_price, mandarin_price)
  local price = mul_tax:forward(fruit_price, tax)
  -- Backward, in reverse order.
  local d_fruit_price, d_tax = mul_tax:backward(1)
  local d_apple_price, d_mandarin_price = add_fruit:backward(d_fruit_price)
  local d_apple, d_apple_count = mul_apple:backward(d_apple_price)
  local d_mandarin, d_mandarin_count = mul_mandarin:backward(d_mandarin_price)

  local a, na = leaf(apple), leaf(apple_count)
  local m, nm = leaf(mandarin), leaf(mandarin_count)
  local t = leaf(tax)
  local p = (a * na + m * nm) * t
  p:backward()

  print("2. Two apples at 100 and three mandarins at 150, tax 1.1")
  print(string.format("  %-30s %10s %10s", "", "by hand", "autograd"))
  row("price", price, p:item())
  row("d price / d apple", d_apple, a.grad:item())
  row("d price / d apple count", d_apple_count, na.grad:item())
  row("d price / d mandarin", d_mandarin, m.grad:item())
  row("d price / d mandarin count", d_mandarin_count, nm.grad:item())
  row("d price / d tax", d_tax, t.grad:item())
  -- Autograd keeps .grad on the leaves only (the inputs); the hand-written
  -- pass has the inner nodes' gradients too.
  row("d price / d apple price", d_apple_price)
  row("d price / d mandarin price", d_mandarin_price)
  row("d price / d fruit price", d_fruit_price)
  print()
end

print(all_agree and "The hand-written layers and autograd agree on every value."
  or "MISMATCH: the hand-written layers and autograd disagree.")

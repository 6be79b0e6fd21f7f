-- Elementwise ops on an input laid out otherwise than their output (a
-- transposed or permuted view, a tensor expanded from one value, a
-- gradient expanded from a sum) give the values the same op gives on a
-- contiguous copy, bit for bit, forward and backward, at any size (the
-- engine copies such an input into the output's order first: the kernels'
-- per-element loop was 10-60x slower, and its sigmoid was not the vector
-- loop's: x:t():sigmoid() differed in the last bits).
local nn = require "nn"
local support = dofile((os.getenv("NN_ROOT") or ".") .. "/tests/lua/support.lua")
local flat = support.flat

local function same_bits(a, b, what)
  assert.are.equal(a:dim(), b:dim(), what)
  for d = 1, a:dim() do assert.are.equal(a:size(d), b:size(d), what) end
  local fa, fb = flat(a), flat(b)
  assert.are.equal(#fa, #fb, what)
  for i = 1, #fa do
    local x, y = fa[i], fb[i]
    if not (x == y or (x ~= x and y ~= y)) then
      error(string.format("%s: element %d: %s vs %s", what, i, tostring(x), tostring(y)))
    end
  end
end

-- layouts of a (rows x cols) tensor of the given dtype, each with its contiguous twin
local function layouts(rows, cols, dtype)
  nn.manual_seed(rows * 31 + cols)
  local base = nn.randn(cols, rows, {dtype = "float64"}) * 3
  base[1][1] = 0 / 0
  base[2][1] = -0.0
  base[3][1] = 1 / 0
  if dtype == "int64" then base = (base:nan_to_num(0, 7, -7) * 10):to("int64") else base = base:to(dtype) end
  local transposed = base:t()
  local permuted = nn.randn(4, rows, cols / 4, {dtype = "float64"}):to(dtype):permute(2, 1, 3):reshape(rows, cols)
  return {
    transposed = transposed,
    expanded = nn.tensor(2.5, {dtype = "float64"}):to(dtype):expand(rows, cols),
    column = base:narrow(2, 1, 1):t():expand(rows, cols):contiguous():t():t(), -- contiguous
    every_other = nn.randn(rows, cols * 2, {dtype = "float64"}):to(dtype):narrow(2, 1, cols),
    strided_rows = nn.randn(cols, rows * 2, {dtype = "float64"}):to(dtype):t():narrow(1, 1, rows),
    permuted = permuted,
  }
end

describe("elementwise ops on inputs laid out otherwise than their output", function()
  for _, dtype in ipairs({"float32", "float64", "int64"}) do
    it("unary ops, " .. dtype, function()
      for name, x in pairs(layouts(96, 128, dtype)) do
        local xc = x:contiguous()
        local ops = dtype == "int64" and {"neg", "abs", "square", "relu", "sign"} or
                    {"neg", "exp", "log", "sqrt", "abs", "sigmoid", "tanh", "relu", "sin", "floor", "reciprocal", "square"}
        for _, op in ipairs(ops) do same_bits(x[op](x), xc[op](xc), dtype .. " " .. name .. " " .. op) end
      end
    end)

    it("binary ops with a number and with tensors, " .. dtype, function()
      local ls = layouts(96, 128, dtype)
      local other = nn.randn(96, 128, {dtype = "float64"}):to(dtype)
      local row = nn.randn(1, 128, {dtype = "float64"}):to(dtype)
      for name, x in pairs(ls) do
        local xc = x:contiguous()
        same_bits(x * 3, xc * 3, name .. " * 3")
        same_bits(2 - x, 2 - xc, "2 - " .. name)
        same_bits(x + other, xc + other, name .. " + other")
        same_bits(other / x, other / xc, "other / " .. name)
        same_bits(x * row, xc * row, name .. " * row")
        same_bits(x:maximum(other), xc:maximum(other), name .. " maximum")
        same_bits(x:gt(other), xc:gt(other), name .. " gt")
        same_bits(x:pow(2), xc:pow(2), name .. " pow")
        for other_name, y in pairs(ls) do
          same_bits(x + y, xc + y:contiguous(), name .. " + " .. other_name)
        end
      end
    end)
  end

  it("gradients, through a transposed input and from an expanded sum", function()
    for _, dtype in ipairs({"float32", "float64"}) do
      local a = nn.randn(128, 96, {dtype = dtype}):requires_grad_()
      local b = a:detach():clone():requires_grad_()
      local y1 = (a:t():sigmoid() * a:t():relu() - a:t():tanh() * 2):sum()
      local bt = b:t():contiguous()
      local y2 = (bt:sigmoid() * bt:relu() - bt:tanh() * 2):sum()
      same_bits(y1, y2, dtype .. " loss")
      y1:backward()
      y2:backward()
      same_bits(a.grad, b.grad, dtype .. " gradient")
      -- the mean's gradient, expanded, meets an elementwise backward
      local c = nn.randn(96, 128, {dtype = dtype}):requires_grad_()
      local d = c:detach():clone():requires_grad_()
      c:exp():mean():backward()
      d:exp():backward(nn.tensor(1 / (96 * 128), {dtype = dtype}):expand(96, 128):contiguous())
      same_bits(c.grad, d.grad, dtype .. " mean of exp")
    end
  end)

  it("small inputs too, and an in-place op on a transposed view", function()
    for _, size in ipairs({{8, 16}, {40, 30}, {3, 1000}}) do
      local x = nn.randn(size[1], size[2]):t()
      for _, op in ipairs({"sigmoid", "tanh", "exp", "relu", "log1p"}) do
        same_bits(x[op](x), x:contiguous()[op](x:contiguous()), op .. " " .. size[1] .. "x" .. size[2])
      end
    end
    local y = nn.randn(128, 96):t()
    local yc = y:contiguous()
    y:mul_(3)
    yc:mul_(3)
    same_bits(y, yc, "mul_ in place on a transposed view")
  end)
end)

-- Tensors: the toolkit every model is built from, step by step.
--
-- A tensor is an n-dimensional array of numbers of one type (its dtype),
-- living on one device (the CPU, or a GPU). Models take tensors in, hold
-- their weights in tensors, and give tensors out; automatic differentiation
-- works on tensors too. This lesson follows PyTorch's own tensor tutorial:
-- if you know NumPy or PyTorch, most of what follows will look familiar.
-- Two differences stand out: indices count from 1, as everywhere in Lua,
-- and a slice is written as a Lua table, t[{rows, columns}], as in Torch7.
--
--   nnlua scripts/tensors.lua [--quick] [--device cpu|cuda]
local nn = require "nn"

local parser = nn.cli.parser("Tensors: the toolkit every model is built from, step by step.")
parser:flag("--quick", "accepted for the test suite: this lesson is quick already")
parser:option("--device", "where the tensors live (cuda when available by default)")
local args = parser:parse()

-- A tensor's values on one line (print(t) shows the whole tensor).
local function show(t)
  local out = {}
  for i, v in ipairs(t:reshape(-1):totable()) do out[i] = string.format("%g", v) end
  return table.concat(out, " ")
end

local function heading(text)
  print()
  print("-- " .. text .. " " .. string.rep("-", 66 - #text))
end

-------------------------------------------------------------------------------
heading("Making tensors")

-- From data: a Lua table of numbers (nested for more dimensions). Numbers
-- become float32 unless you ask for another dtype; whole numbers may be
-- int64, which is what indices are.
local data = {{1, 2}, {3, 4}}
local x_data = nn.tensor(data)
print("from a table:")
print(x_data)
print("as int64:", nn.tensor(data, {dtype = "int64"}).dtype)

-- From another tensor: *_like keeps its shape (and dtype and device)
-- unless you say otherwise.
nn.manual_seed(0)
local x_ones = nn.ones_like(x_data)
print("ones_like:")
print(x_ones)
print("rand_like, float64:")
print(nn.rand_like(x_data, {dtype = "float64"}))

-- From a shape: a shape is a list of sizes, or the sizes themselves.
local shape = {2, 3}
print("rand, ones and zeros of shape {2, 3}:")
print(nn.rand(shape))
print(nn.ones(shape))
print(nn.zeros(2, 3))
print("full:", nn.full({2, 2}, 7):totable()[2][2])

-- Ranges, and whole numbers drawn at random.
print("arange(1, 10, 3):", show(nn.arange(1, 10, 3)))
print("linspace(0, 1, 5):", show(nn.linspace(0, 1, 5)))
print("randint(0, 10, {6}):", show(nn.randint(0, 10, {6})))
print("randperm(6):", show(nn.randperm(6)))
print("eye(3):")
print(nn.eye(3))

-------------------------------------------------------------------------------
heading("Attributes")

-- A tensor knows its shape, its element type and its device.
local tensor = nn.rand(3, 4)
print("shape:", table.concat(tensor:size(), " x "))
print("dtype:", tensor.dtype)
print("device:", tensor.device)
print("dims, elements:", tensor:dim(), tensor:numel())

-- Every operation below runs on the CPU or on a GPU. A tensor moves with
-- to(); the results of an operation stay on its inputs' device.
local device = args.device or (nn.cuda.is_available() and "cuda" or "cpu")
tensor = tensor:to(device)
print("now on:", tensor.device)

-------------------------------------------------------------------------------
heading("Indexing and slicing")

-- t[i] is row i, a view into t (no copy). A table of one entry per
-- dimension slices several at once: {} is the whole dimension, a number
-- picks one index (and drops the dimension), {a, b} is a..b inclusive,
-- {a, b, step} steps, and negative numbers count from the end (-1 is the
-- last).
tensor = nn.arange(1, 17):view(4, 4):float():to(device)
print(tensor)
print("first row:           ", show(tensor[1]))
print("first column:        ", show(tensor[{{}, 1}]))
print("last column:         ", show(tensor[{{}, -1}]))
print("rows 2-3, columns 2-3:", show(tensor[{{2, 3}, {2, 3}}]))
print("every other row, last:", show(tensor[{{1, -1, 2}, -1}]))

-- The same forms on the left of = assign: a number everywhere, or a tensor
-- of the slice's shape (or one that broadcasts to it).
tensor[{{}, 2}] = 0
print("column 2 set to 0:")
print(tensor)

-- A mask (a bool tensor of the same shape, from a comparison) picks the
-- elements where it is true, as a 1-d tensor; assigning through it
-- changes exactly those elements.
local big = tensor:gt(10)
print("elements above 10:", show(tensor[big]))
tensor[big] = -1
print("after tensor[mask] = -1, row 4:", show(tensor[4]))

-- An int64 tensor of indices picks rows (in any order, repeats allowed);
-- index_select and gather pick along any dimension.
local rows = nn.tensor({4, 1}, {dtype = "int64", device = device})
print("rows 4 and 1:")
print(tensor[rows])
local columns = nn.tensor({3, 1}, {dtype = "int64", device = device})
print("columns 3 and 1:", show(tensor:index_select(2, columns)))
local picks = nn.tensor({{1}, {2}, {3}, {4}}, {dtype = "int64", device = device})
print("gather the diagonal:", show(tensor:gather(2, picks)))

-- where picks from two tensors element by element.
local clipped = nn.where(tensor:lt(0), nn.zeros_like(tensor), tensor)
print("where(t < 0, 0, t), row 4:", show(clipped[4]))

-------------------------------------------------------------------------------
heading("Joining and splitting")

-- cat joins tensors along an existing dimension, stack along a new one.
local t = nn.tensor({{1, 2}, {3, 4}}):to(device)
local t1 = nn.cat({t, t, t}, 2)
print("cat along dim 2:", table.concat(t1:size(), " x "))
print(t1)
print("stack:", table.concat(nn.stack({t, t, t}):size(), " x "))
-- split and chunk cut a tensor into views; unbind takes it apart.
local parts = t1:split(2, 2)
print("split into", #parts, "parts of", table.concat(parts[1]:size(), " x "))
print("chunk(3, 2):", #t1:chunk(3, 2), "parts; unbind:", #t:unbind(), "rows")

-------------------------------------------------------------------------------
heading("Arithmetic")

-- Matrix products: y1 and y2 are the same, t times its transpose.
local y1 = t:matmul(t:t())
local y2 = t:mm(t:t())
print("t @ t^T:", show(y1), "equal:", y1:equal(y2))
-- einsum says the same with index letters.
print("einsum('ij,kj->ik'):", show(nn.einsum("ij,kj->ik", t, t)))
-- The elementwise product: the operators work element by element, with
-- broadcasting (a row is repeated down the rows here) and with numbers.
local z1 = t * t
print("t * t:", show(z1))
print("t * {10, 100} + 1:", show(t * nn.tensor({10, 100}):to(device) + 1))
-- Functions of each element.
print("sqrt:", show(t:sqrt()))
print("lower triangle:", show(t:tril()))

-------------------------------------------------------------------------------
heading("Reductions")

-- A reduction over everything gives a one-element tensor; item() turns it
-- into a Lua number.
local agg = t:sum()
print("sum:", agg:item(), math.type(agg:item()))
-- Over one dimension (keepdim keeps it as size 1).
print("sum over dim 1:", show(t:sum(1)))
print("mean, std, var:", t:mean():item(), string.format("%.4f", t:std():item()),
  string.format("%.4f", t:var():item()))
print("prod, amax:", t:prod():item(), t:amax():item())
print("cumsum over dim 2:", show(t:cumsum(2)))
-- Sorting gives the values and where they came from.
local scores = nn.tensor({0.3, 0.9, 0.1, 0.7}):to(device)
local sorted, order = scores:sort(1, true)
print("sorted descending:", show(sorted), "from", show(order))
local top, where_top = scores:topk(2)
print("top 2:", show(top), "at", show(where_top))
print("median:", show(scores:median()), "(the lower of the middle two)")
local labels = nn.tensor({3, 1, 3, 2, 1, 3}, {dtype = "int64"})
print("unique labels:", show(labels:unique()))

-------------------------------------------------------------------------------
heading("In-place operations")

-- Methods ending in _ change the tensor itself and return it. They save
-- memory, but autograd may need the old values: prefer the plain forms in
-- a model.
print(t)
t:add_(5)
print("after t:add_(5):")
print(t)
t:clamp_(0, 7)
print("after t:clamp_(0, 7):", show(t))

-------------------------------------------------------------------------------
heading("Lua tables")

-- totable() copies a tensor out into nested Lua tables, nn.tensor()
-- copies a table in. Unlike PyTorch's NumPy bridge these are copies: a
-- change on one side does not reach the other.
local n = nn.ones(5)
local lua_table = n:totable()
n:add_(1)
print("tensor:", show(n))
print("table (copied before add_):", table.concat(lua_table, " "))
local back = nn.tensor(lua_table)
lua_table[1] = 100
print("tensor from the table (copied before the change):", show(back))
-- tolist() is totable()'s PyTorch name; item() reads a single element.
print("tolist of a 2x2:", #t:tolist(), "rows; t[2][1]:", t[2][1]:item())
print("a one-element tensor's item():", t:sum():item())

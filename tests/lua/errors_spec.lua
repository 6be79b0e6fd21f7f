-- Misuse raises a Lua error whose message names the operation and the cause;
-- it never crashes the process, and the process keeps working afterwards.
local nn = require "nn"
local support = dofile((os.getenv("NN_ROOT") or ".") .. "/tests/lua/support.lua")
local expect_error = support.expect_error

-- Runs fn, which must raise; each fragment must appear in the message
-- (plain text, not a pattern). Returns the message.

-- As expect_error, with Lua patterns.
local function expect_error_match(fn, ...)
  local ok, err = pcall(fn)
  assert(not ok, "expected an error, but the call succeeded")
  err = tostring(err)
  for _, pattern in ipairs({...}) do
    assert(err:find(pattern), string.format("message %q does not match %q", err, pattern))
  end
  return err
end

describe("wrong argument types", function()
  it("nn.zeros('a')", function()
    expect_error(function() return nn.zeros("a") end, "zeros", "string")
  end)

  it("nn.ones with a table of strings", function()
    expect_error(function() return nn.ones({2, "x"}) end, "ones", "string")
  end)

  it("a fractional size", function()
    expect_error(function() return nn.zeros(2.5) end, "zeros", "2.5")
  end)

  it("t:add('x')", function()
    expect_error(function() return nn.ones(2):add("x") end, "add", "string")
  end)

  it("t + 'x' and {} * t", function()
    expect_error(function() return nn.ones(2) + "x" end, "add", "string")
    expect_error(function() return {} * nn.ones(2) end, "mul", "table")
  end)

  it("a method called on something that is not a tensor", function()
    local sum = nn.ones(1).sum
    expect_error(function() return sum({}) end, "sum", "tensor")
  end)

  it("nn.Linear('2', 3)", function()
    expect_error(function() return nn.Linear("2", 3) end, "Linear", "in_features")
  end)

  it("nn.Linear(2, -3)", function()
    expect_error(function() return nn.Linear(2, -3) end, "Linear", "out_features")
  end)

  it("nn.tensor of a string", function()
    expect_error(function() return nn.tensor("abc") end, "tensor", "string")
  end)

  it("matmul with a number", function()
    expect_error(function() return nn.ones(2, 2):matmul(3) end, "matmul", "tensor")
  end)

  it("Sequential given something that is not a module", function()
    expect_error(function() return nn.Sequential(nn.Linear(2, 2), 5) end, "Sequential", "argument 2")
  end)

  it("a tensor field that cannot be set", function()
    expect_error(function() local t = nn.ones(2); t.dtype = "float64" end, "dtype")
  end)
end)

describe("mismatched shapes", function()
  it("broadcasting 2x3 with 4x5", function()
    expect_error(function() return nn.ones(2, 3) + nn.ones(4, 5) end, "add", "2x3", "4x5", "broadcast")
  end)

  it("broadcasting in an in-place op whose result would not fit", function()
    expect_error(function() return nn.ones(3):add_(nn.ones(2, 3)) end, "add")
  end)

  it("matmul 4x3 by 2x5", function()
    expect_error(function() return nn.ones(4, 3):matmul(nn.ones(2, 5)) end, "matmul", "4x3", "2x5")
  end)

  it("matmul of a 0-d tensor", function()
    expect_error(function() return nn.tensor(2):matmul(nn.ones(2)) end, "matmul")
  end)

  it("linear with the wrong number of features", function()
    expect_error(function() return nn.Linear(2, 3)(nn.ones(4, 3)) end,
      "linear: input has 3 features, layer expects 2")
  end)

  it("mse_loss with a target of another shape", function()
    expect_error(function() return nn.MSELoss()(nn.ones(4, 3), nn.ones(4, 2)) end, "mse_loss", "4x2", "4x3")
  end)

  it("binary_cross_entropy with a target of another shape", function()
    expect_error(function() return nn.BCELoss()(nn.full(4, 0.5), nn.ones(3)) end, "binary_cross_entropy", "shape")
  end)

  it("view to a shape with another number of elements", function()
    expect_error(function() return nn.ones(2, 3):view(4, 2) end, "view")
  end)

  it("view of a non-contiguous tensor", function()
    expect_error(function() return nn.ones(2, 3):t():view(6) end, "view")
  end)

  it("view with two -1", function()
    expect_error(function() return nn.ones(2, 3):view(-1, -1) end, "view")
  end)

  it("expand of a dimension that is not 1", function()
    expect_error(function() return nn.ones(2, 3):expand(4, 3) end, "expand")
  end)

  it("copy_ from a source that does not broadcast", function()
    expect_error(function() return nn.ones(2, 3):copy_(nn.ones(4)) end, "copy", "2x3")
  end)

  it("an explicit gradient of the wrong shape for backward", function()
    local x = nn.ones(2, {requires_grad = true})
    expect_error(function() (x * 2):backward(nn.ones(3)) end, "backward")
  end)

  it("an in-place op on an expanded view, whose elements share memory (PyTorch refuses it)", function()
    local base = nn.zeros(1, 3)
    expect_error(function() base:expand(2, 3):add_(1) end, "add")
    assert.are.same({{0, 0, 0}}, base:totable()) -- and nothing was added twice
  end)

  it("assigning a tensor of the wrong shape to a row", function()
    local t = nn.zeros(2, 3)
    expect_error(function() t[1] = nn.ones(4) end)
  end)
end)

describe("out-of-range dimensions and indices", function()
  local t = nn.ones(2, 3)

  it("t:sum(5)", function()
    expect_error(function() return t:sum(5) end, "sum", "dimension 5")
  end)

  it("t:sum(-3)", function()
    expect_error(function() return t:sum(-3) end, "sum", "-3")
  end)

  it("t:select(1, 10)", function()
    expect_error(function() return t:select(1, 10) end, "select", "10")
  end)

  it("t:select(3, 1)", function()
    expect_error(function() return t:select(3, 1) end, "select", "dimension")
  end)

  it("t[0]: indices count from 1", function()
    expect_error(function() return t[0] end, "index", "0")
  end)

  it("t[100] and t[-100]", function()
    expect_error(function() return t[100] end, "index", "100")
    expect_error(function() return t[-100] end, "index", "-100")
  end)

  it("t[100] = 1", function()
    expect_error(function() t[100] = 1 end, "100")
  end)

  it("indexing a 0-d tensor", function()
    expect_error(function() return nn.tensor(1)[1] end, "0-dimensional")
  end)

  it("narrow beyond the end", function()
    expect_error(function() return t:narrow(1, 2, 5) end, "narrow")
    expect_error(function() return t:narrow(2, 4, 1) end, "narrow")
    expect_error(function() return t:narrow(2, 0, 1) end, "narrow")
    expect_error(function() return t:narrow(1, 1, -1) end, "narrow")
  end)

  it("narrow whose start + length overflows 64 bits (must not make a view past the storage)", function()
    -- accepting this makes a view of 2^63-1 rows over 6 elements; reading it crashes
    expect_error(function() return t:narrow(1, 2, math.maxinteger) end, "narrow")
    expect_error(function() return t:narrow(2, 3, math.maxinteger - 1) end, "narrow")
  end)

  it("dimension 0 (dimensions count from 1)", function()
    expect_error(function() return t:sum(0) end, "sum", "dimension 0")
    expect_error(function() return t:transpose(0, 1) end, "transpose", "dimension 0")
    expect_error(function() return t:select(0, 1) end, "select", "dimension 0")
    expect_error(function() return t:narrow(0, 1, 1) end, "narrow", "dimension 0")
    expect_error(function() return t:unsqueeze(0) end, "unsqueeze", "dimension 0")
    expect_error(function() return t:size(0) end, "size", "0")
    expect_error(function() return t:max(0) end, "max", "dimension 0")
  end)

  it("transpose and permute with dimensions that do not exist", function()
    expect_error(function() return t:transpose(1, 3) end, "transpose")
    expect_error(function() return t:permute(1, 2, 3) end, "permute")
    expect_error(function() return t:permute(1, 1) end, "permute")
  end)

  it("t:size(3) of a 2-d tensor", function()
    expect_error(function() return t:size(3) end, "size", "3")
  end)

  it("t() of a 3-d tensor", function()
    expect_error(function() return nn.ones(2, 2, 2):t() end, "t")
  end)
end)

describe("tables that are not tensors", function()
  it("a ragged table {{1,2},{3}}", function()
    expect_error(function() return nn.tensor({{1, 2}, {3}}) end, "tensor", "ragged")
  end)

  it("a ragged table with a number where a row should be", function()
    expect_error(function() return nn.tensor({{1, 2}, 3}) end, "tensor", "ragged")
  end)

  it("a longer later row {{1},{2,3}}", function()
    expect_error(function() return nn.tensor({{1}, {2, 3}}) end, "tensor", "ragged")
  end)

  it("a non-numeric element {1,'a'}", function()
    expect_error(function() return nn.tensor({1, "a"}) end, "tensor", "string")
  end)
end)

describe("sizes", function()
  it("a negative size", function()
    expect_error(function() return nn.zeros(-1) end, "zeros", "negative")
    expect_error(function() return nn.ones(2, -3) end, "ones", "negative")
    expect_error(function() return nn.full(-2, 1.5) end, "full", "negative")
    expect_error(function() return nn.eye(-1) end, "eye")
    expect_error(function() return nn.linspace(0, 1, -2) end, "linspace")
  end)

  it("nn.zeros(1e15) is an error, not an abort", function()
    expect_error(function() return nn.zeros(1e15) end, "zeros", "large")
  end)

  it("nn.zeros(1e8, 1e8) is an error, not an abort", function()
    expect_error(function() return nn.zeros(1e8, 1e8) end, "zeros", "large")
  end)

  it("sizes whose product overflows 64 bits", function()
    expect_error(function() return nn.zeros(2 ^ 40, 2 ^ 40, 2 ^ 40) end, "zeros")
  end)

  it("an arange that would never end", function()
    expect_error(function() return nn.arange(0, 10, 0) end, "arange")
    expect_error(function() return nn.arange(0, 10, -1) end, "arange")
  end)

  it("more dimensions than the engine holds", function()
    expect_error(function() return nn.zeros(1, 1, 1, 1, 1, 1, 1, 1, 1) end, "zeros", "dimensions")
  end)
end)

describe("autograd misuse", function()
  it("backward from a non-scalar without a gradient", function()
    local x = nn.ones(2, {requires_grad = true})
    expect_error(function() (x * 2):backward() end, "backward", "gradient")
  end)

  it("backward from a tensor that needs no grad", function()
    expect_error(function() nn.ones(1):backward() end, "backward", "require")
  end)

  it("a second backward through a freed graph", function()
    local x = nn.ones(1, {requires_grad = true})
    local y = (x * x):sum()
    y:backward()
    expect_error(function() y:backward() end, "backward", "freed")
  end)

  it("in-place modification of a leaf that requires grad", function()
    local x = nn.ones(2, {requires_grad = true})
    expect_error(function() x:add_(1) end, "add", "leaf")
    expect_error(function() x:fill_(0) end, "fill_", "leaf")
    expect_error(function() x[1] = 5 end, "leaf")
    expect_error(function() x:copy_(nn.zeros(2)) end, "copy_", "leaf")
  end)

  it("an in-place change of a tensor saved for backward, then backward", function()
    local x = nn.ones(2, {requires_grad = true})
    local w = nn.ones(2)
    local y = (x * w):sum() -- MulBackward saves w
    w:add_(1)
    expect_error(function() y:backward() end, "backward", "in-place")
  end)

  it("an in-place change through a view of a saved tensor, then backward", function()
    local x = nn.ones(2, 2, {requires_grad = true})
    local w = nn.ones(2, 2)
    local y = (x * w):sum()
    w[1] = 5 -- writes through a row view of w
    expect_error(function() y:backward() end, "backward", "in-place")
    local w2 = nn.ones(2, 2)
    local y2 = (x * w2):sum()
    w2:t():mul_(5)
    expect_error(function() y2:backward() end, "backward", "in-place")
  end)

  it("an in-place change through a detached alias of a saved leaf, then backward", function()
    local x = nn.ones(2, {requires_grad = true})
    local y = (x * x):sum()
    x:detach():mul_(3)
    expect_error(function() y:backward() end, "backward", "in-place")
  end)

  it("an in-place change of an intermediate result in the graph", function()
    local x = nn.ones(2, {requires_grad = true})
    local h = x:exp()
    local y = h:sum()
    expect_error(function()
      h:mul_(2)
      y:backward()
    end)
  end)

  it(".grad assigned a tensor of the wrong shape", function()
    local x = nn.ones(2, {requires_grad = true})
    expect_error(function() x.grad = nn.ones(3) end, "grad", "3", "2")
  end)

  it(".grad assigned something that is not a tensor", function()
    local x = nn.ones(2, {requires_grad = true})
    expect_error(function() x.grad = 5 end, "grad")
  end)

  it("requires_grad on an integer tensor", function()
    expect_error(function() return nn.tensor({1, 2}, {dtype = "int64", requires_grad = true}) end)
  end)

  it("no_grad of something that is not a function", function()
    expect_error(function() nn.no_grad(5) end, "no_grad", "function")
  end)
end)

describe("losses", function()
  it("BCELoss with inputs above 1", function()
    expect_error(function() return nn.BCELoss()(nn.tensor({1.5}), nn.tensor({1})) end,
      "binary_cross_entropy", "1.5")
  end)

  it("BCELoss with inputs below 0", function()
    expect_error(function() return nn.BCELoss()(nn.tensor({0.5, -0.1}), nn.tensor({1, 0})) end,
      "binary_cross_entropy")
  end)

  it("BCELoss with a NaN input", function()
    expect_error(function() return nn.BCELoss()(nn.tensor({0 / 0}), nn.tensor({1})) end,
      "binary_cross_entropy")
  end)

  it("an unknown reduction", function()
    expect_error(function() return nn.MSELoss({reduction = "avg"}) end, "MSELoss", "reduction", "avg")
    expect_error(function() return nn.BCELoss({reduction = "total"}) end, "BCELoss", "reduction", "total")
    expect_error(function() return nn.F.mse_loss(nn.ones(2), nn.ones(2), {reduction = "avg"}) end,
      "mse_loss", "avg")
  end)
end)

describe("unknown names", function()
  it("an unknown dtype", function()
    expect_error(function() return nn.zeros(2, {dtype = "float128"}) end, "zeros", "dtype", "float128")
    expect_error(function() return nn.tensor({1}, {dtype = "complex"}) end, "tensor", "complex")
  end)

  it("an unknown device", function()
    expect_error(function() return nn.zeros(2, {device = "tpu"}) end, "zeros", "device", "tpu")
  end)

  it("to() with a name that is neither", function()
    expect_error(function() return nn.ones(2):to("gpu0") end, "to", "gpu0")
  end)

  it("an unknown norm", function()
    expect_error(function() return nn.ones(2):norm("nuc") end, "norm", "nuc")
  end)
end)

describe("optimizer options", function()
  local params = function() return nn.Linear(2, 2):parameters() end

  it("SGD with lr = 'abc'", function()
    expect_error(function() return nn.optim.SGD(params(), {lr = "abc"}) end, "SGD", "lr", "abc")
  end)

  it("SGD without lr", function()
    expect_error(function() return nn.optim.SGD(params(), {}) end, "SGD", "lr")
    expect_error(function() return nn.optim.SGD(params()) end, "SGD")
  end)

  it("SGD with a negative lr or momentum", function()
    expect_error(function() return nn.optim.SGD(params(), {lr = -1}) end, "SGD", "lr")
    expect_error(function() return nn.optim.SGD(params(), {lr = 0.1, momentum = -0.5}) end, "SGD", "momentum")
  end)

  it("SGD with nesterov but no momentum", function()
    expect_error(function() return nn.optim.SGD(params(), {lr = 0.1, nesterov = true}) end, "SGD", "nesterov")
  end)

  it("SGD over no parameters, or over something that is not a tensor", function()
    expect_error(function() return nn.optim.SGD({}, {lr = 0.1}) end, "SGD", "params")
    expect_error(function() return nn.optim.SGD({1, 2}, {lr = 0.1}) end, "SGD", "params[1]")
  end)
end)

describe("values", function()
  it("item() of a multi-element tensor", function()
    expect_error(function() return nn.ones(2, 2):item() end, "item", "2x2")
  end)

  it("item() of an empty tensor", function()
    expect_error(function() return nn.zeros(0):item() end, "item")
  end)

  it("# of a 0-d tensor", function()
    expect_error(function() return #nn.tensor(1) end, "0-dimensional")
  end)

  it("clamp with no bounds", function()
    expect_error(function() return nn.ones(2):clamp() end, "clamp")
  end)

  it("rand with an integer dtype", function()
    expect_error(function() return nn.rand(2, {dtype = "int64"}) end, "rand", "int64")
  end)

  it("manual_seed with a non-integer", function()
    expect_error(function() nn.manual_seed("x") end, "manual_seed")
  end)
end)

describe("devices", function()
  it("to('cuda') when CUDA is not available is a clear error", function()
    if nn.cuda.is_available() then
      assert.are.equal("cuda", nn.ones(2):to("cuda").device)
      return
    end
    expect_error(function() return nn.ones(2):to("cuda") end, "to", "cuda")
    expect_error(function() return nn.ones(2):cuda() end, "cuda")
    expect_error(function() return nn.zeros(2, {device = "cuda"}) end, "cuda")
    expect_error(function() return nn.Linear(2, 2):to("cuda") end, "cuda")
  end)
end)

describe("a closed tensor", function()
  it("raises 'closed' for every use", function()
    local escaped
    do
      local t <close> = nn.ones(2)
      escaped = t
    end
    expect_error(function() return escaped:sum() end, "sum", "closed")
    expect_error(function() return escaped + 1 end, "closed")
    expect_error(function() return escaped[1] end, "closed")
    expect_error(function() return escaped:size() end, "closed")
  end)
end)

describe("arguments a function does not take", function()
  it("Torch7's t:sub(1, 2, 2, 3) is an error, not t - 1", function()
    expect_error(function() return nn.ones(2, 3):sub(1, 2, 2, 3) end, "sub: takes 1 argument (other), got 4")
  end)

  it("PyTorch's alpha (t:add(1, 2)) is an error, not t + 1", function()
    expect_error(function() return nn.ones(2):add(1, 2) end, "add: takes 1 argument (other), got 2")
    expect_error(function() return nn.ones(2):add_(1, 2) end, "add_: takes 1 argument (other), got 2")
  end)

  it("methods with optional arguments, and those with none", function()
    expect_error(function() return nn.ones(2, 3):sum(1, true, 3) end,
      "sum: takes at most 2 arguments ([dim [, keepdim]]), got 3")
    expect_error(function() return nn.ones(2):exp(1) end, "exp: takes no arguments, got 1")
    expect_error(function() return nn.ones(2):float("float64") end, "float: takes no arguments, got 1")
    expect_error(function() return nn.ones(2, 3):view({3, 2}, 1) end, "view")
    expect_error(function() return nn.ones(2, 3):narrow(1, 1, 1, 1) end,
      "narrow: takes 3 arguments (dim, start, length), got 4")
  end)

  it("a trailing nil is an absent argument", function()
    assert.are.equal(6, nn.ones(2, 3):sum(nil, nil):item())
    assert.are.same({2, 3}, nn.zeros(2, 3, nil):size())
    assert.are.same({1, 2}, nn.tensor({1, 2}, nil):totable())
    expect_error(function() return nn.ones(2):add(1, nil, 3) end, "add: takes 1 argument (other), got 3")
  end)

  it("nn functions written in C", function()
    expect_error(function() return nn.tensor({1}, {}, 3) end, "tensor: takes at most 2 arguments")
    expect_error(function() return nn.zeros({2, 3}, {}, 1) end, "zeros: takes at most 2 arguments")
    expect_error(function() return nn.arange(1, 5, 1, 2) end, "arange")
    expect_error(function() return nn.linspace(0, 1, 5, "float64") end, "linspace")
    expect_error(function() return nn.manual_seed(1, 2) end, "manual_seed: takes 1 argument (seed), got 2")
    expect_error(function() return nn.F.linear(nn.ones(1, 2), nn.ones(1, 2), nil, 4) end, "linear: takes at most 3")
  end)

  it("nn functions and methods written in Lua", function()
    expect_error(function() return nn.Linear(2, 1, true, {}, 5) end,
      "Linear: takes at most 4 arguments (in_features, out_features, bias, opts), got 5")
    local m = nn.Linear(2, 1)
    expect_error(function() return m(nn.ones(1, 2), nn.ones(1, 2)) end, "Linear: takes at most 1 argument (x), got 2")
    expect_error(function() return m:train(true, 1) end, "Linear:train: takes at most 1 argument (mode), got 2")
    expect_error(function() return nn.MSELoss()(nn.ones(1), nn.ones(1), "sum") end, "MSELoss: takes at most 2")
    expect_error(function() return nn.F.mse_loss(nn.ones(1), nn.ones(1), "sum", 4) end, "mse_loss: takes at most 3")
    expect_error(function() return nn.optim.SGD(m:parameters(), {lr = 1}, 3) end, "SGD: takes at most 2")
    local opt = nn.optim.SGD(m:parameters(), {lr = 1})
    expect_error(function() opt:step(nil, 2) end, "SGD:step: takes at most 1 argument (closure), got 2")
    expect_error(function() return nn.F.leaky_relu(nn.ones(1), {negative_slope = 0.1}, 2) end, "leaky_relu")
    expect_error(function() return nn.init.zeros_(nn.ones(1), 0) end, "zeros_: takes at most 1 argument (t), got 2")
    expect_error(function() return nn.data.DataLoader(nn.data.TensorDataset(nn.ones(2)), {}, 1) end,
      "DataLoader: takes at most 2")
    local loader = nn.data.DataLoader(nn.data.TensorDataset(nn.ones(2)))
    expect_error(function() loader:set_epoch(1, 2) end, "DataLoader:set_epoch: takes at most 1")
    expect_error(function() return nn.help(nn.zeros, 2) end, "help: takes at most 1")
  end)

  it("counts past three extra arguments are reported as 'or more'", function()
    expect_error(function() return nn.init.zeros_(nn.ones(1), 1, 2, 3, 4) end,
      "zeros_: takes at most 1 argument (t), got 4 or more")
    expect_error(function() return nn.init.zeros_(nn.ones(1), nil, 2) end, "zeros_: takes at most 1 argument (t), got 3")
  end)

  it("a method called with a dot instead of a colon", function()
    local m = nn.Linear(2, 1)
    expect_error(function() m.train() end, "Module:train: call it on its object with a colon, as obj:train(...)")
    local opt = nn.optim.SGD(m:parameters(), {lr = 1})
    expect_error(function() opt.zero_grad() end, "Optimizer:zero_grad", "with a colon")
  end)

  it("nn.F's activations check their input", function()
    for _, name in ipairs({"relu", "sigmoid", "tanh", "step"}) do
      expect_error(function() return nn.F[name](nil) end, name, "tensor", "nil")
    end
  end)

  it("nn.Linear's bias is a boolean: 'nobias' is an error, false or {bias = false} drop it", function()
    expect_error(function() return nn.Linear(2, 1, "nobias") end, "Linear", "bias must be a boolean", "'nobias'")
    expect_error(function() return nn.Linear(2, 1, 0) end, "Linear", "bias must be a boolean", "number")
    assert.is_nil(nn.Linear(2, 1, false).bias)
    assert.is_nil(nn.Linear(2, 1, {bias = false}).bias)
    assert.is_true(nn.is_tensor(nn.Linear(2, 1, true).bias))
  end)

  it("an unknown option of a layer is an error", function()
    expect_error(function() return nn.Linear(2, 1, {biass = false}) end, "Linear", "unknown option 'biass'")
    expect_error(function() return nn.BatchNorm1d(3, {epsilon = 1e-3}) end, "BatchNorm1d", "unknown option 'epsilon'")
    expect_error(function() return nn.LayerNorm(3, {affine = false}) end, "LayerNorm", "unknown option 'affine'")
    expect_error(function() return nn.Dropout({prob = 0.1}) end, "Dropout", "unknown option 'prob'")
    expect_error(function() return nn.PReLU({n = 2}) end, "PReLU", "unknown option 'n'")
    expect_error(function() return nn.init.kaiming_uniform_(nn.empty(2, 2), {gain = 2}) end,
      "kaiming_uniform_", "unknown option 'gain'")
  end)

  it("flags are booleans", function()
    expect_error(function() return nn.ones(2, 3):sum(1, "yes") end, "sum", "keepdim must be a boolean", "string")
    expect_error(function() return nn.ones(2):requires_grad_(1) end, "requires_grad_", "boolean")
    expect_error(function() local t = nn.ones(2); t.requires_grad = "yes" end, "requires_grad", "boolean")
    expect_error(function() return nn.F.dropout(nn.ones(2), 0.5, "train") end, "dropout", "training", "boolean")
  end)
end)

describe("error messages point at the caller", function()
  it("an error from a tensor method names the line that called it", function()
    local err = expect_error_match(function() return nn.ones(2, 3) + nn.ones(4, 5) end, "errors_spec%.lua:%d+:")
    assert.is_truthy(err:find("add", 1, true))
  end)
end)

describe("after all those errors", function()
  it("the process still computes", function()
    nn.manual_seed(1)
    local x = nn.tensor({{1, 2}, {3, 4}}, {requires_grad = true})
    local y = (x:matmul(x) + 1):sum()
    y:backward()
    assert.are.equal(58, y:item()) -- [[7,10],[15,22]] + 1
    assert.are.same({{7, 11}, {9, 13}}, x.grad:totable())
    assert.is_true(nn.is_grad_enabled())
    local model = nn.Sequential(nn.Linear(2, 4), nn.Sigmoid(), nn.Linear(4, 1), nn.Sigmoid())
    local loss = nn.BCELoss()(model(nn.rand(8, 2)), nn.rand(8, 1):gt(0.5):float())
    loss:backward()
    nn.optim.SGD(model:parameters(), {lr = 0.1}):step()
    assert.is_true(loss:item() > 0)
  end)
end)

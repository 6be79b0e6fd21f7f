-- The losses of lua/nn/loss.lua beyond MSELoss and BCELoss: values and
-- gradients against PyTorch 1.13 (tests/fixtures/losses_reference.lua,
-- written by tests/fixtures/gen_losses.py), finite-difference gradient
-- checks, numerical stability, and the errors a user can cause.
local nn = require "nn"
local support = dofile((os.getenv("NN_ROOT") or ".") .. "/tests/lua/support.lua")
local flat = support.flat
local expect_error = support.expect_error
local F = nn.F

local root = os.getenv("NN_ROOT") or "."
local reference = dofile(root .. "/tests/fixtures/losses_reference.lua")

-- float32 results are checked twice: against PyTorch's float32 values and
-- against its float64 values for the same inputs (the exact answer). Where
-- terms cancel (a KL divergence near 0, a softmax gradient near 0) any
-- float32 computation strays by more than 1e-5 of the small result, PyTorch's
-- own by up to 2e-5: there the bound is 1e-5 of 1% of the array's largest
-- value. float64 results: 1e-10 relative, floored at 0.1% of the largest.
local TOLERANCE = {float32 = 1e-5, float64 = 1e-10}


-- expected vs got, element by element: |e - a| <= tol max(|e|, floor s),
-- s the largest |e| of the array. NaN must meet NaN.
local function assert_values(expected, got, tol, what, floor)
  assert.are.equal(#expected, #got, what .. ": number of elements")
  local scale = 0
  for _, e in ipairs(expected) do
    if e == e and math.abs(e) ~= math.huge then scale = math.max(scale, math.abs(e)) end
  end
  for i, e in ipairs(expected) do
    local a = got[i]
    if e ~= e then
      assert(a ~= a, string.format("%s[%d]: expected NaN, got %.17g", what, i, a))
    else
      local bound = tol * math.max(math.abs(e), floor * scale)
      assert(math.abs(e - a) <= bound,
        string.format("%s[%d]: expected %.17g, got %.17g (difference %.3g, allowed %.3g)",
          what, i, e, a, math.abs(e - a), bound))
    end
  end
end


local function make(record, dtype)
  if #record.shape == 0 then return nn.tensor(record.values[1], {dtype = dtype}) end
  return nn.tensor(record.values, {dtype = dtype}):view(record.shape)
end

local function make_target(record, dtype)
  if record.labels then
    local label_dtype = record.dtype == "int64" and "int64" or dtype
    if #record.shape == 0 then return nn.tensor(record.labels[1], {dtype = label_dtype}) end
    return nn.tensor(record.labels, {dtype = label_dtype}):view(record.shape)
  end
  return make(record, dtype)
end

-- The case's options as nnlua takes them, weights made in dtype.
local function options_of(case, dtype)
  local opts = {}
  for k, v in pairs(case.options) do opts[k] = v end
  if case.weight then opts.weight = make(case.weight, dtype) end
  if case.pos_weight then opts.pos_weight = make(case.pos_weight, dtype) end
  return opts
end

-- Runs a case through the module (as_module) or the function; returns the
-- loss and the input and target after backward.
local function run(case, dtype, as_module)
  local x = make(case.input, dtype):requires_grad_(true)
  local y = make_target(case.target, dtype)
  if case[dtype].target_grad then y:requires_grad_(true) end
  local opts = options_of(case, dtype)
  local loss
  if as_module then
    loss = nn[case.module](opts)(x, y)
  else
    loss = F[case.fn](x, y, opts)
  end
  if case.grad_output then
    loss:backward(make(case.grad_output, dtype))
  else
    loss:backward()
  end
  return loss, x, y
end

describe("losses against PyTorch 1.13", function()
  for _, case in ipairs(reference.cases) do
    for _, dtype in ipairs({"float32", "float64"}) do
      for _, as_module in ipairs({true, false}) do
        local how = as_module and "nn." .. case.module or "nn.F." .. case.fn
        it(string.format("%s, %s, %s", case.name, dtype, how), function()
          local tol = TOLERANCE[dtype]
          local loss, x, y = run(case, dtype, as_module)
          assert.are.equal(dtype, loss.dtype)
          assert.are.same(case[dtype].loss.shape, loss:size())
          local got = {loss = flat(loss), input_grad = flat(x.grad), target_grad = y.grad and flat(y.grad)}
          assert.are.equal(case[dtype].target_grad ~= nil, got.target_grad ~= nil)
          local against = dtype == "float32" and {{case.float32, 1e-2}, {case.float64, 1e-2}} or {{case.float64, 1e-3}}
          for _, pair in ipairs(against) do
            local expected, floor = pair[1], pair[2]
            local source = (expected == case.float64 and "PyTorch float64 " or "PyTorch float32 ")
            assert_values(expected.loss.values, got.loss, tol, source .. "loss", floor)
            assert_values(expected.input_grad, got.input_grad, tol, source .. "input grad", floor)
            if expected.target_grad then
              assert_values(expected.target_grad, got.target_grad, tol, source .. "target grad", floor)
            end
          end
        end)
      end
    end
  end
end)

describe("finite-difference gradient checks (float64)", function()
  local function randn(...) return nn.randn({...}, {dtype = "float64"}) end
  local function rand(...) return nn.rand({...}, {dtype = "float64"}) end
  local function leaf(t) return t:requires_grad_(true) end
  local function labels(list, shape)
    local t = nn.tensor(list, {dtype = "int64"})
    return shape and t:view(shape) or t
  end
  local reductions = {"mean", "sum", "none"}

  before_each(function() nn.manual_seed(4321) end)

  for _, r in ipairs(reductions) do
    it("l1_loss, " .. r, function()
      assert.is_true(nn.gradcheck(function(x, y) return F.l1_loss(x, y, {reduction = r}) end,
        {leaf(randn(3, 4)), leaf(randn(3, 4))}))
    end)
    it("smooth_l1_loss, " .. r .. ", beta 1 and 0.7", function()
      for _, beta in ipairs({1, 0.7}) do
        assert.is_true(nn.gradcheck(function(x, y) return F.smooth_l1_loss(x, y, {reduction = r, beta = beta}) end,
          {leaf(randn(3, 4) * 1.5), leaf(randn(3, 4))}))
      end
    end)
    it("huber_loss, " .. r .. ", delta 1 and 0.4", function()
      for _, delta in ipairs({1, 0.4}) do
        assert.is_true(nn.gradcheck(function(x, y) return F.huber_loss(x, y, {reduction = r, delta = delta}) end,
          {leaf(randn(3, 4) * 1.5), leaf(randn(3, 4))}))
      end
    end)
    it("binary_cross_entropy_with_logits, " .. r .. ", with weight and pos_weight", function()
      local w, pw = rand(4) + 0.5, rand(4) * 3
      assert.is_true(nn.gradcheck(function(x, y)
        return F.binary_cross_entropy_with_logits(x, y, {reduction = r})
      end, {leaf(randn(3, 4) * 2), leaf(rand(3, 4))}))
      assert.is_true(nn.gradcheck(function(x, y)
        return F.binary_cross_entropy_with_logits(x, y, {reduction = r, weight = w, pos_weight = pw})
      end, {leaf(randn(3, 4) * 2), leaf(rand(3, 4))}))
    end)
    it("cross_entropy over labels, " .. r .. ", with weight, ignore_index and label_smoothing", function()
      local t = labels({1, 3, 2, 3, 4})
      local w = rand(4) + 0.25
      assert.is_true(nn.gradcheck(function(x) return F.cross_entropy(x, t, {reduction = r}) end,
        {leaf(randn(5, 4))}))
      assert.is_true(nn.gradcheck(function(x)
        return F.cross_entropy(x, t, {reduction = r, weight = w, ignore_index = 3, label_smoothing = 0.2})
      end, {leaf(randn(5, 4))}))
    end)
    it("cross_entropy over labels, multi-dimensional, " .. r, function()
      local t = labels({1, 2, 3, 3, 2, 1, 2, 2}, {2, 2, 2})
      local w = rand(3) + 0.5
      assert.is_true(nn.gradcheck(function(x)
        return F.cross_entropy(x, t, {reduction = r, weight = w, ignore_index = 1, label_smoothing = 0.1})
      end, {leaf(randn(2, 3, 2, 2))}))
    end)
    it("cross_entropy over probabilities, " .. r .. ", input and target", function()
      local w = rand(4) + 0.5
      assert.is_true(nn.gradcheck(function(x, p)
        return F.cross_entropy(x, p, {reduction = r, weight = w, label_smoothing = 0.15})
      end, {leaf(randn(3, 4)), leaf(rand(3, 4))}))
      assert.is_true(nn.gradcheck(function(x, p) return F.cross_entropy(x, p, {reduction = r}) end,
        {leaf(randn(2, 4, 3)), leaf(rand(2, 4, 3))}))
    end)
    it("nll_loss, " .. r .. ", with weight and ignore_index", function()
      local t = labels({1, 3, 2, 3, 4})
      local w = rand(4) + 0.5
      assert.is_true(nn.gradcheck(function(x)
        return F.nll_loss(x, t, {reduction = r, weight = w, ignore_index = 2})
      end, {leaf(randn(5, 4))}))
      assert.is_true(nn.gradcheck(function(x) return F.nll_loss(x, labels({2, 1, 3, 3}, {2, 2}), {reduction = r}) end,
        {leaf(randn(2, 3, 2))}))
    end)
  end
  for _, r in ipairs({"mean", "sum", "none", "batchmean"}) do
    it("kl_div, " .. r .. ", input and target, log_target false and true", function()
      assert.is_true(nn.gradcheck(function(x, y) return F.kl_div(x, y, {reduction = r}) end,
        {leaf(randn(3, 4)), leaf(rand(3, 4) + 0.1)}))
      assert.is_true(nn.gradcheck(function(x, y) return F.kl_div(x, y, {reduction = r, log_target = true}) end,
        {leaf(randn(3, 4)), leaf(randn(3, 4))}))
    end)
  end
  it("the modules, through a model", function()
    local model = nn.Linear(3, 4):double()
    local x = randn(5, 3)
    local t = labels({1, 4, 2, 2, 3})
    for _, criterion in ipairs({nn.CrossEntropyLoss({label_smoothing = 0.1}), nn.NLLLoss()}) do
      assert.is_true(nn.gradcheck(function(w) return criterion(x:matmul(w:t()), t) end, {model.weight}))
    end
  end)
end)

describe("numerical stability", function()
  it("BCEWithLogitsLoss is finite and exact at logits of +-1000", function()
    local x = nn.tensor({1000, -1000, 1000, -1000}, {dtype = "float64", requires_grad = true})
    local y = nn.tensor({1, 0, 0, 1}, {dtype = "float64"})
    local loss = nn.BCEWithLogitsLoss({reduction = "none"})(x, y)
    assert.are.same({0, 0, 1000, 1000}, loss:totable())
    loss:sum():backward()
    assert.are.same({0, 0, 1, -1}, x.grad:totable())
    local f = nn.BCEWithLogitsLoss({pos_weight = nn.tensor({3})})(nn.tensor({-1000, 1000}), nn.tensor({1, 1}))
    assert.are.equal(1500, f:item())
  end)

  it("BCEWithLogitsLoss agrees with BCELoss of the sigmoid where both are finite", function()
    local x, y = nn.randn(4, 3, {dtype = "float64"}), nn.rand(4, 3, {dtype = "float64"})
    local a = nn.BCEWithLogitsLoss()(x, y):item()
    local b = nn.BCELoss()(x:sigmoid(), y):item()
    assert(math.abs(a - b) < 1e-12, a .. " vs " .. b)
  end)

  it("CrossEntropyLoss is shift-invariant: logits 1000, 1050, 1100 are -100, -50, 0", function()
    local big = nn.tensor({{1000, 1050, 1100}}, {requires_grad = true})
    local small = nn.tensor({{-100, -50, 0}}, {requires_grad = true})
    local t = nn.tensor({2})
    local a, b = nn.CrossEntropyLoss()(big, t), nn.CrossEntropyLoss()(small, t)
    assert.are.equal(b:item(), a:item())
    assert.are.equal(50, a:item())
    a:backward()
    b:backward()
    assert.are.same(small.grad:totable(), big.grad:totable())
  end)
end)

describe("behaviour", function()
  local x = nn.tensor({{1, 2, 3}, {0.5, 0.1, -1}, {0, 0, 0}})

  it("class labels are 1-based: a float tensor of whole numbers and an int64 tensor agree", function()
    local a = nn.CrossEntropyLoss()(x, nn.tensor({3, 1, 2}))
    local b = nn.CrossEntropyLoss()(x, nn.tensor({3, 1, 2}, {dtype = "int64"}))
    assert.are.equal(a:item(), b:item())
    local by_hand = 0
    for i, label in ipairs({3, 1, 2}) do
      local row = x[i]
      by_hand = by_hand - (row[label]:item() - math.log(row:exp():sum():item()))
    end
    assert(math.abs(a:item() - by_hand / 3) < 1e-6)
  end)

  it("ignore_index = 0 skips padding labels written as 0; the default -100 matches none", function()
    local padded = nn.CrossEntropyLoss({ignore_index = 0})(x, nn.tensor({3, 0, 0}))
    local alone = nn.CrossEntropyLoss()(x:narrow(1, 1, 1), nn.tensor({3}))
    assert.are.equal(alone:item(), padded:item())
    expect_error(function() return nn.CrossEntropyLoss()(x, nn.tensor({3, 0, 0})) end,
      "cross_entropy", "class 0", "1..3")
    local ignored = nn.CrossEntropyLoss({ignore_index = -100, reduction = "none"})(x, nn.tensor({-100, 1, 2}))
    assert.are.equal(0, ignored[1]:item())
  end)

  it("ignore_index names a class 1-based: ignore_index = 2 skips class 2", function()
    local t = nn.tensor({2, 1, 3})
    local skipped = nn.NLLLoss({ignore_index = 2, reduction = "sum"})(x, t)
    assert.are.equal(-(0.5 + 0), skipped:item())
  end)

  it("an ignored position gets a zero gradient", function()
    local xs = x:clone():requires_grad_(true)
    nn.CrossEntropyLoss({ignore_index = 1, label_smoothing = 0.3})(xs, nn.tensor({1, 2, 3})):backward()
    assert.are.same({0, 0, 0}, xs.grad[1]:totable())
  end)

  it("accepts views that are not contiguous", function()
    local base = nn.randn(4, 3)
    local xt = base:t() -- 3x4, strided
    local y = nn.randn(3, 4)
    for _, fn in ipairs({"l1_loss", "smooth_l1_loss", "huber_loss", "binary_cross_entropy_with_logits"}) do
      assert.are.equal(F[fn](xt:contiguous(), y):item(), F[fn](xt, y:t():contiguous():t()):item())
    end
    local logits = nn.randn(4, 3):t() -- classes along the strided dim
    assert.are.equal(F.cross_entropy(logits:contiguous(), nn.tensor({1, 2, 3})):item(),
      F.cross_entropy(logits, nn.tensor({1, 2, 3})):item())
  end)

  it("reduction = 'none' takes any upstream gradient, such as sum()'s", function()
    local xs = nn.randn(2, 3, {requires_grad = true})
    F.huber_loss(xs, nn.zeros(2, 3), {reduction = "none"}):sum():backward()
    local ys = xs:detach():clone():requires_grad_(true)
    F.huber_loss(ys, nn.zeros(2, 3), {reduction = "sum"}):backward()
    assert.are.same(ys.grad:totable(), xs.grad:totable())
  end)

  it("the functions take the reduction alone as a string", function()
    local a, b = nn.randn(5), nn.randn(5)
    assert.are.equal(F.l1_loss(a, b, {reduction = "sum"}):item(), F.l1_loss(a, b, "sum"):item())
    assert.are.equal(F.kl_div(a, b:exp(), "batchmean"):item(), F.kl_div(a, b:exp(), {reduction = "batchmean"}):item())
  end)

  it("weights are buffers: state_dict() holds them and double() converts them", function()
    local criterion = nn.CrossEntropyLoss({weight = nn.tensor({1, 2, 3})})
    assert.is_truthy(criterion:state_dict().weight)
    criterion:double()
    assert.are.equal("float64", criterion.weight.dtype)
    local loss = criterion(x:double(), nn.tensor({1, 2, 3}, {dtype = "int64"}))
    assert.are.equal("float64", loss.dtype)
    local bce = nn.BCEWithLogitsLoss({pos_weight = nn.tensor({2})})
    assert.is_truthy(bce:state_dict().pos_weight)
  end)

  it("the modules print their settings", function()
    assert.are.equal("L1Loss(reduction=sum)", tostring(nn.L1Loss({reduction = "sum"})))
    assert.are.equal("SmoothL1Loss(beta=0.5, reduction=mean)", tostring(nn.SmoothL1Loss({beta = 0.5})))
    assert.are.equal("HuberLoss(delta=1, reduction=mean)", tostring(nn.HuberLoss()))
    assert.are.equal("BCEWithLogitsLoss(reduction=mean)", tostring(nn.BCEWithLogitsLoss()))
    assert.are.equal("CrossEntropyLoss(ignore_index=0, label_smoothing=0.1, reduction=mean)",
      tostring(nn.CrossEntropyLoss({ignore_index = 0, label_smoothing = 0.1})))
    assert.are.equal("NLLLoss(reduction=none)", tostring(nn.NLLLoss({reduction = "none"})))
    assert.are.equal("KLDivLoss(reduction=batchmean, log_target=true)",
      tostring(nn.KLDivLoss({reduction = "batchmean", log_target = true})))
  end)

  it("graph nodes are named", function()
    local xs = nn.randn(2, 3, {requires_grad = true})
    assert.are.equal("CrossEntropyLossBackward0", F.cross_entropy(xs, nn.tensor({1, 2})).grad_fn)
    assert.are.equal("NllLossBackward0", F.nll_loss(xs, nn.tensor({1, 2})).grad_fn)
    assert.are.equal("L1LossBackward0", F.l1_loss(xs, nn.zeros(2, 3)).grad_fn)
  end)

  it("a loss of targets only: a target that requires grad gets its gradient", function()
    local y = nn.randn(4, {requires_grad = true})
    F.l1_loss(nn.zeros(4), y, "sum"):backward()
    for i = 1, 4 do assert.are.equal(y[i]:item() > 0 and 1 or -1, y.grad[i]:item()) end
  end)

  it("empty batches: mean is NaN, sum is 0, none is empty, as in PyTorch", function()
    local empty = nn.zeros(0, 3)
    local t = nn.zeros(0, {dtype = "int64"})
    assert.is_true(F.cross_entropy(empty, t):item() ~= F.cross_entropy(empty, t):item())
    assert.are.equal(0, F.cross_entropy(empty, t, "sum"):item())
    assert.are.same({0}, F.cross_entropy(empty, t, "none"):size())
    assert.is_true(F.l1_loss(empty, empty):item() ~= F.l1_loss(empty, empty):item())
  end)
end)

describe("bad arguments", function()
  local x2 = nn.randn(4, 3)

  it("an unknown reduction, for every loss, module and function", function()
    for _, pair in ipairs({{"L1Loss", "l1_loss"}, {"SmoothL1Loss", "smooth_l1_loss"}, {"HuberLoss", "huber_loss"},
                           {"BCEWithLogitsLoss", "binary_cross_entropy_with_logits"},
                           {"CrossEntropyLoss", "cross_entropy"}, {"NLLLoss", "nll_loss"}, {"KLDivLoss", "kl_div"}}) do
      expect_error(function() return nn[pair[1]]({reduction = "avg"}) end, pair[1], "reduction", "avg")
      expect_error(function() return F[pair[2]](x2, x2, {reduction = "avg"}) end, pair[2], "reduction", "avg")
    end
    expect_error(function() return nn.L1Loss({reduction = "batchmean"}) end, "L1Loss", "batchmean")
    expect_error(function() return nn.KLDivLoss({reduction = "avg"}) end, "KLDivLoss", "'batchmean'", "avg")
    expect_error(function() return nn._C.l1_loss(x2, x2, "avg") end, "l1_loss", "avg")
    expect_error(function() return nn._C.kl_div(x2, x2, "avg") end, "kl_div", "batchmean", "avg")
  end)

  it("options that are not a table, or unknown", function()
    expect_error(function() return nn.HuberLoss(2) end, "HuberLoss", "options", "number")
    expect_error(function() return nn.L1Loss("sum") end, "L1Loss", "options must be a table", "string")
    expect_error(function() return nn.CrossEntropyLoss({ignore_idx = 0}) end, "CrossEntropyLoss",
      "unknown option 'ignore_idx'", "ignore_index")
    expect_error(function() return F.nll_loss(x2, nn.tensor({1, 2, 3, 1}), {label_smoothing = 0.1}) end,
      "nll_loss", "unknown option 'label_smoothing'")
  end)

  it("a target of the wrong shape", function()
    for _, fn in ipairs({"l1_loss", "smooth_l1_loss", "huber_loss", "binary_cross_entropy_with_logits", "kl_div"}) do
      expect_error(function() return F[fn](x2, nn.randn(4, 2)) end, fn, "4x2", "4x3")
    end
    expect_error(function() return F.cross_entropy(x2, nn.tensor({{1}, {2}, {3}, {1}})) end,
      "cross_entropy", "target shape 4x1", "input shape 4x3", "class labels need shape 4",
      "class probabilities 4x3")
    expect_error(function() return F.nll_loss(x2, nn.tensor({1, 2, 3})) end, "nll_loss", "target shape 3",
      "class labels need shape 4")
    expect_error(function() return F.nll_loss(x2, nn.rand(4, 3)) end, "nll_loss", "4x3", "class labels need shape 4")
    expect_error(function() return F.cross_entropy(nn.randn(2, 3, 5), nn.tensor({{1, 2, 3}, {1, 2, 3}})) end,
      "cross_entropy", "2x3", "need shape 2x5")
  end)

  it("input and target of different dtypes", function()
    expect_error(function() return F.l1_loss(x2, x2:double()) end, "l1_loss", "float32", "float64")
    expect_error(function() return F.cross_entropy(x2, nn.rand(4, 3, {dtype = "float64"})) end,
      "cross_entropy", "probabilities", "float32")
    expect_error(function() return F.cross_entropy(x2, nn.ones(4, 3, {dtype = "int64"})) end,
      "cross_entropy", "probabilities")
    expect_error(function() return F.cross_entropy(x2:long(), nn.tensor({1, 2, 3, 1})) end,
      "cross_entropy", "input must be float32 or float64")
  end)

  it("a label outside 1..C, shown as written", function()
    expect_error(function() return nn.CrossEntropyLoss()(x2, nn.tensor({1, 2, 4, 1})) end,
      "cross_entropy", "element 3", "class 4", "1..3")
    expect_error(function() return nn.NLLLoss()(x2, nn.tensor({0, 2, 3, 1}, {dtype = "int64"})) end,
      "nll_loss", "element 1", "class 0", "1..3")
    expect_error(function() return nn.CrossEntropyLoss()(x2, nn.tensor({1, -5, 2, 1})) end,
      "cross_entropy", "element 2", "class -5")
    expect_error(function() return nn.CrossEntropyLoss()(x2, nn.tensor({1, 2.5, 3, 1})) end,
      "cross_entropy", "element 2", "2.5", "whole number", "1..3")
    expect_error(function() return nn.CrossEntropyLoss()(x2, nn.tensor({1, 2, 3, 1}):gt(1)) end,
      "cross_entropy", "bool")
  end)

  it("a failed call leaves nothing half done: the next one works", function()
    pcall(function() return nn.CrossEntropyLoss()(x2, nn.tensor({1, 2, 9, 1})) end)
    assert.is_true(nn.CrossEntropyLoss()(x2, nn.tensor({1, 2, 3, 1})):item() > 0)
  end)

  it("options out of range", function()
    expect_error(function() return nn.SmoothL1Loss({beta = -1}) end, "SmoothL1Loss", "beta", "-1")
    expect_error(function() return nn.HuberLoss({delta = 0}) end, "HuberLoss", "delta", "> 0")
    expect_error(function() return nn.HuberLoss({delta = "1"}) end, "HuberLoss", "delta", "number")
    expect_error(function() return nn.CrossEntropyLoss({label_smoothing = 1.5}) end,
      "CrossEntropyLoss", "label_smoothing", "1.5")
    expect_error(function() return F.cross_entropy(x2, nn.tensor({1, 2, 3, 1}), {label_smoothing = -0.1}) end,
      "cross_entropy", "label_smoothing")
    expect_error(function() return nn.NLLLoss({ignore_index = 1.5}) end, "NLLLoss", "ignore_index", "integer", "1.5")
    expect_error(function() return nn.KLDivLoss({log_target = 1}) end, "KLDivLoss", "log_target", "boolean")
    -- the C functions check too, for callers that skip the Lua layer
    expect_error(function() return nn._C.smooth_l1_loss(x2, x2, "mean", -1) end, "smooth_l1_loss", "beta")
    expect_error(function() return nn._C.huber_loss(x2, x2, "mean", 0) end, "huber_loss", "delta")
    expect_error(function() return nn._C.cross_entropy(x2, nn.tensor({1, 2, 3, 1}), nil, "mean", -100, 2) end,
      "cross_entropy", "label_smoothing", "between 0 and 1")
  end)

  it("weights that do not fit", function()
    expect_error(function() return nn.CrossEntropyLoss({weight = nn.ones(4)})(x2, nn.tensor({1, 2, 3, 1})) end,
      "cross_entropy", "weight", "one value per class, 3", "shape 4")
    expect_error(function() return nn.NLLLoss({weight = nn.ones(3, {dtype = "float64"})})(x2, nn.tensor({1, 2, 3, 1})) end,
      "nll_loss", "weight is float64")
    expect_error(function() return nn.CrossEntropyLoss({weight = {1, 2, 3}}) end, "CrossEntropyLoss", "weight", "tensor")
    expect_error(function() return nn.BCEWithLogitsLoss({weight = nn.ones(2)})(x2, nn.rand(4, 3)) end,
      "binary_cross_entropy_with_logits", "weight of shape 2", "4x3")
    expect_error(function() return nn.BCEWithLogitsLoss({pos_weight = nn.ones(3, {dtype = "float64"})})(x2, nn.rand(4, 3)) end,
      "binary_cross_entropy_with_logits", "pos_weight is float64")
    expect_error(function()
      return nn.BCEWithLogitsLoss({pos_weight = nn.ones(3, {requires_grad = true})})(x2, nn.rand(4, 3))
    end, "binary_cross_entropy_with_logits", "no gradient flows", "pos_weight")
    expect_error(function()
      return nn.CrossEntropyLoss({weight = nn.ones(3, {requires_grad = true})})(x2, nn.tensor({1, 2, 3, 1}))
    end, "cross_entropy", "no gradient flows", "weight")
  end)

  it("ignore_index with class probabilities", function()
    expect_error(function() return F.cross_entropy(x2, nn.rand(4, 3), {ignore_index = 2}) end,
      "cross_entropy", "ignore_index", "probabilities")
    -- ignore_index = 0 (never a class) is harmless there
    assert.is_true(F.cross_entropy(x2, nn.rand(4, 3), {ignore_index = 0}):item() > 0)
  end)

  it("class labels that require grad, and an input without classes", function()
    expect_error(function()
      return F.cross_entropy(x2, nn.tensor({1, 2, 3, 1}, {requires_grad = true}))
    end, "cross_entropy", "class labels", "detach")
    expect_error(function() return F.cross_entropy(nn.tensor(1.5), nn.tensor(1)) end,
      "cross_entropy", "class dimension")
  end)
end)

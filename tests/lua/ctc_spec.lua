-- CTCLoss's engine path (one CtcLossBackward0 node over the alpha and beta
-- recursions) against the same loss composed of tensor ops
-- (F._ctc_loss_composed, the path it replaced): losses and gradients on odd
-- sizes, repeated labels, an impossible alignment, every reduction, both
-- target layouts, in float32 and float64; gradcheck; double backward's error.
local nn = require "nn"
local F = nn.F

-- the largest difference of the loss and of the logits' gradient between
-- the two paths
local function compare(dtype, logits, targets, in_len, tg_len, opts)
  local a = logits:to(dtype):detach():requires_grad_(true)
  local b = logits:to(dtype):detach():requires_grad_(true)
  local la = F.ctc_loss(a:log_softmax(3), targets, in_len, tg_len, opts)
  local lb = F._ctc_loss_composed(b:log_softmax(3), targets, in_len, tg_len, opts)
  la:sum():backward()
  lb:sum():backward()
  return (la - lb):abs():max():item(), (a.grad - b.grad):abs():max():item(), la
end

describe("CTCLoss's engine path", function()
  -- T 7, N 3, C 5; sample 2 repeats a label, sample 3 repeats one three
  -- times (5 steps needed: impossible in 4)
  nn.manual_seed(13)
  local logits = nn.randn(7, 3, 5, {dtype = "float64"})
  local padded = nn.tensor({{2, 4, 3}, {3, 3, 0}, {5, 5, 5}}, {dtype = "int64"})
  local concatenated = nn.tensor({2, 4, 3, 3, 3, 5, 5, 5}, {dtype = "int64"})
  for _, dtype in ipairs {"float64", "float32"} do
    local tol = dtype == "float64" and 1e-12 or 1e-5
    for _, reduction in ipairs {"none", "sum", "mean"} do
      it(string.format("equals the composed loss, %s, reduction %s", dtype, reduction), function()
        local dl, dg = compare(dtype, logits, padded, {7, 6, 5}, {3, 2, 3}, {reduction = reduction})
        assert.is_true(dl <= tol and dg <= tol, string.format("loss %g, gradient %g", dl, dg))
        dl, dg = compare(dtype, logits, concatenated, nn.tensor {7, 6, 5}, nn.tensor {3, 2, 3},
          {reduction = reduction, blank = 1})
        assert.is_true(dl <= tol and dg <= tol, string.format("concatenated: loss %g, gradient %g", dl, dg))
      end)
      it(string.format("zero_infinity zeroes an impossible alignment, %s, %s", dtype, reduction), function()
        local dl, dg, loss = compare(dtype, logits, padded, {7, 6, 4}, {3, 2, 3},
          {reduction = reduction, zero_infinity = true})
        assert.is_true(dl <= tol and dg <= tol, string.format("loss %g, gradient %g", dl, dg))
        if reduction == "none" then assert.are.equal(0, loss[3]:item()) end
      end)
    end
  end
  it("gives NaN over an impossible sample's steps without zero_infinity, as PyTorch", function()
    -- sample 1 needs 5 steps for 1 2 1 2 in 3; sample 2 is possible
    local lp = logits:narrow(1, 1, 4):narrow(2, 1, 2):narrow(3, 1, 3):log_softmax(3):detach():requires_grad_(true)
    local targets = nn.tensor({{2, 3, 2, 3}, {2, 2, 2, 2}}, {dtype = "int64"})
    local loss = F.ctc_loss(lp, targets, {3, 4}, {4, 1}, {reduction = "sum"})
    assert.are.equal(math.huge, loss:item())
    loss:backward()
    for t = 1, 4 do
      for c = 1, 3 do
        local g = lp.grad[t][1][c]:item()
        if t <= 3 then assert.is_true(g ~= g, "NaN expected at step " .. t) else assert.are.equal(0, g) end
        local h = lp.grad[t][2][c]:item()
        assert.is_true(h == h and h ~= math.huge and h ~= -math.huge, "sample 2 stays finite")
      end
    end
  end)
  it("takes another blank and an unbatched (T, C) input", function()
    local targets = nn.tensor({{1, 2, 2}, {4, 5, 1}, {2, 0, 0}}, {dtype = "int64"})
    local dl, dg = compare("float64", logits, targets, {7, 7, 4}, {3, 3, 1}, {blank = 3, reduction = "sum"})
    assert.is_true(dl <= 1e-12 and dg <= 1e-12, string.format("loss %g, gradient %g", dl, dg))
    local x = logits:select(2, 1):log_softmax(2)
    local one = F.ctc_loss(x, nn.tensor({2, 4, 3}, {dtype = "int64"}), 7, 3, {reduction = "none"})
    local composed = F._ctc_loss_composed(x, nn.tensor({2, 4, 3}, {dtype = "int64"}), 7, 3, {reduction = "none"})
    assert.are.equal(0, one:dim())
    assert.is_true(math.abs(one:item() - composed:item()) < 1e-12)
  end)
  it("records CtcLossBackward0 and passes gradcheck in float64", function()
    local lp = nn.randn(6, 2, 5, {dtype = "float64"}):log_softmax(3):detach():requires_grad_(true)
    local targets = nn.tensor({{2, 2, 3}, {5, 4, 1}}, {dtype = "int64"})
    local loss = F.ctc_loss(lp, targets, {6, 5}, {3, 2}, {reduction = "none"})
    assert.are.equal("CtcLossBackward0", loss.grad_fn)
    assert.is_true(nn.gradcheck(function(x) return F.ctc_loss(x, targets, {6, 5}, {3, 2}, "none") end, {lp}))
    assert.is_true(nn.gradcheck(function(x) return F.ctc_loss(x, targets, {6, 5}, {3, 2}, "mean") end, {lp}))
  end)
  it("refuses double backward as PyTorch does; the composed path has it", function()
    local lp = nn.randn(5, 1, 4, {dtype = "float64"}):log_softmax(3):detach():requires_grad_(true)
    local targets = nn.tensor({{2, 3}}, {dtype = "int64"})
    local ok, err = pcall(function()
      return nn.autograd.grad(F.ctc_loss(lp, targets, {5}, {2}), lp, {create_graph = true})
    end)
    assert.is_false(ok)
    assert.truthy(tostring(err):find("ctc_loss: double backwards not implemented", 1, true), tostring(err))
    local g = nn.autograd.grad(F._ctc_loss_composed(lp, targets, {5}, {2}), lp, {create_graph = true})[1]
    assert.truthy(g.grad_fn)
  end)
end)

-- CTC on "cuda" (the test device, tests/c/fake_cuda.c): CUDA lacks the
-- ctc_loss kernels, so there the loss is composed of tensor ops; it must
-- equal the CPU's engine node, loss and gradient.
local nn = require "nn"
local F = nn.F

describe("CTCLoss on cuda", function()
  it("equals the CPU's engine path", function()
    nn.manual_seed(5)
    local logits = nn.randn(7, 3, 5, {dtype = "float64"})
    local targets = nn.tensor({{2, 4, 3}, {3, 3, 1}, {5, 5, 5}}, {dtype = "int64"})
    local function run(device)
      local x = logits:to(device):detach():requires_grad_(true)
      local loss = F.ctc_loss(x:log_softmax(3), targets, {7, 6, 4}, {3, 2, 3}, {reduction = "none", zero_infinity = true})
      loss:sum():backward()
      return loss:cpu(), x.grad:cpu(), loss.grad_fn
    end
    local l_cpu, g_cpu, fn_cpu = run("cpu")
    local l_cuda, g_cuda, fn_cuda = run("cuda")
    assert.are.equal("CtcLossBackward0", fn_cpu)
    assert.are_not.equal("CtcLossBackward0", fn_cuda)
    assert.is_true((l_cpu - l_cuda):abs():max():item() < 1e-12)
    assert.is_true((g_cpu - g_cuda):abs():max():item() < 1e-12)
  end)
end)

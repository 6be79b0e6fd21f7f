-- ctc.lua: forward + backward of CTC at T 50, N 4, C 20, S 10 (float32), count times,
-- through the engine node or the composed tensor ops it replaced. For instruction
-- counts per step, run under callgrind with count 1 and 6 and divide the difference by 5:
--   valgrind --tool=callgrind nnlua scripts/bench/ctc.lua engine|composed 1|6
local nn = require "nn"
local F = nn.F
nn.manual_seed(1)
local x = nn.randn(50, 4, 20):log_softmax(3):detach():requires_grad_(true)
local t = nn.randint(2, 21, {4, 10}):to("int64")
local _ = F.ctc_loss
local f = arg[1] == "engine" and F.ctc_loss or F._ctc_loss_composed
for _ = 1, tonumber(arg[2]) do
  f(x, t, {50, 45, 40, 50}, {10, 8, 9, 10}):backward()
  x.grad = nil
end

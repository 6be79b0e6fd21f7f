-- Benchmark: CTC loss, forward and backward, at T 50, N 4, C 20, S 10
-- (float32), through the engine's node (F.ctc_loss) and through the
-- composed tensor ops it replaced (F._ctc_loss_composed), in the same run:
-- microseconds per forward + backward (median of runs) and their ratio.
-- For instruction counts, run one path a given number of times under
-- callgrind, with two counts, and divide the difference:
--   nnlua scripts/bench/ctc.lua [--steps N] [--runs R]
--   valgrind --tool=callgrind nnlua scripts/bench/ctc.lua --path engine --count 6
local nn = require "nn"
local F = nn.F

local parser = nn.cli.parser("Benchmark: CTC loss forward and backward, the engine's node beside the composed ops.")
parser:option("--steps", "forward + backward passes per run", "50", nn.cli.whole(1, "--steps"))
parser:option("--runs", "runs (the median is reported)", "5", nn.cli.whole(1, "--runs"))
parser:option("--path", "with --count: the path to run (engine or composed)")
parser:option("--count", "run --path this many times and exit (for callgrind)", nil, nn.cli.whole(1, "--count"))
local args = parser:parse()

nn.manual_seed(1)
local x = nn.randn(50, 4, 20):log_softmax(3):detach():requires_grad_(true)
local targets = nn.randint(2, 21, {4, 10}):to("int64")
local input_lengths, target_lengths = {50, 45, 40, 50}, {10, 8, 9, 10}
local paths = {engine = F.ctc_loss, composed = F._ctc_loss_composed}

local function passes(f, n)
  for _ = 1, n do
    f(x, targets, input_lengths, target_lengths):backward()
    x.grad = nil
  end
end

if args.count then
  local f = paths[args.path or ""]
  if not f then parser:error("--count needs --path engine or --path composed") end
  passes(f, args.count)
  return
end

local median = dofile((debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or ".") .. "/lib/median.lua")
local function time_of(f)
  passes(f, 2) -- warm: buffers, lazily loaded functions
  local times = {}
  for r = 1, args.runs do
    local t0 = nn.clock()
    passes(f, args.steps)
    times[r] = (nn.clock() - t0) / args.steps
  end
  return median(times)
end

local engine, composed = time_of(paths.engine), time_of(paths.composed)
print(string.format("CTC loss, T 50, N 4, C 20, S 10, float32: forward + backward"))
print(string.format("engine node (CtcLossBackward0) %10.1f us", engine * 1e6))
print(string.format("composed tensor ops            %10.1f us", composed * 1e6))
print(string.format("ratio composed / engine: %.1fx", composed / engine))

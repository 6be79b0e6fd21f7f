-- Benchmark: one training step's forward and backward of a 2-layer LSTM
-- (input and hidden 256) over 64 steps at batch 64, the issue's figure, on
-- one and on two threads, beside PyTorch 1.13 (lstm_torch.py) in the same
-- run, with the ratio (the target: PyTorch's time / nnlua's >= 1).
--
--   nnlua scripts/bench/lstm.lua [--threads 1,2] [--rounds R] [--steps S] [--no-torch]
--
-- Each figure is the median of R rounds of S steps. It also prints the
-- time of the step's matrix products alone (the input's products of each
-- layer as one GEMM, then one hidden GEMM per time step, and the backward's
-- three per layer and one per time step), through the same BLAS: the floor
-- a step cannot go under.
local nn = require "nn"

local parser = nn.cli.parser("Benchmark: a 2-layer LSTM's training step (256 hidden, batch 64, 64 steps), "
                             .. "on one and on two threads, beside PyTorch.")
parser:option("--threads", "the thread counts to time, comma-separated", "1,2")
parser:option("--rounds", "rounds per figure (the median is reported)", "7", nn.cli.whole(1, "--rounds"))
parser:option("--steps", "training steps per round", "3", nn.cli.whole(1, "--steps"))
parser:flag("--no-torch", "skip PyTorch's figures")
local args = parser:parse()
local threads = {}
for t in args.threads:gmatch("[^,]+") do
  local n = math.tointeger(tonumber(t))
  if not n or n < 1 then parser:error("--threads needs whole numbers >= 1 separated by commas, got '" .. args.threads .. "'") end
  threads[#threads + 1] = n
end

local LAYERS, INPUT, HIDDEN, BATCH, STEPS = 2, 256, 256, 64, 64
local G = 4 * HIDDEN
-- per layer: forward x W_ih^T (all steps) and h W_hh^T (each step);
-- backward dx, dW_ih (all steps), dh (each step) and dW_hh (all steps)
local FLOPS = LAYERS * 2 * STEPS * BATCH * G * (INPUT + HIDDEN) * 3

local median = dofile((debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or ".") .. "/lib/median.lua")

local function rounds(fn)
  for _ = 1, 2 do fn() end
  local times = {}
  for r = 1, args.rounds do
    local t0 = nn.clock()
    for _ = 1, args.steps do fn() end
    times[r] = (nn.clock() - t0) / args.steps
  end
  return median(times)
end

nn.manual_seed(1)
local lstm = nn.LSTM(INPUT, HIDDEN, LAYERS)
local x = nn.randn(STEPS, BATCH, INPUT)
local w = nn.randn(STEPS, BATCH, HIDDEN)
local function step()
  lstm:zero_grad()
  local out = lstm(x)
  local loss = (out * w):sum()
  loss:backward()
end

-- the same products on tensors of the step's shapes, alone
local xs, ws_ih, ws_hh = nn.randn(STEPS * BATCH, INPUT), nn.randn(G, INPUT), nn.randn(G, HIDDEN)
local h, g_all, g = nn.randn(BATCH, HIDDEN), nn.randn(STEPS * BATCH, G), nn.randn(BATCH, G)
local hs = nn.randn(STEPS * BATCH, HIDDEN)
local function products()
  nn.no_grad(function()
    for _ = 1, LAYERS do
      xs:matmul(ws_ih:t())
      for _ = 1, STEPS do h:matmul(ws_hh:t()) end
      g_all:matmul(ws_ih)
      g_all:t():matmul(xs)
      for _ = 1, STEPS do g:matmul(ws_hh) end
      g_all:t():matmul(hs)
    end
  end)
end

print(string.format("nnlua   LSTM %d layers, input %d, hidden %d, batch %d, %d steps: %.2f GFLOP of products per training step",
  LAYERS, INPUT, HIDDEN, BATCH, STEPS, FLOPS / 1e9))
local results = {}
for _, n in ipairs(threads) do
  nn.set_num_threads(n)
  local t, p = rounds(step), rounds(products)
  results[n] = t
  print(string.format("nnlua   %d thread%s: step %.2f ms (%.1f GFLOP/s); the products alone %.2f ms; step / products %.2f",
    n, n == 1 and " " or "s", t * 1e3, FLOPS / t / 1e9, p * 1e3, t / p))
end

if not args.no_torch then
  local here = arg[0]:match("^(.*)/[^/]*$") or "."
  dofile(here .. "/lib/peer.lua").compare {script = here .. "/lstm_torch.py", threads = threads,
    args = string.format("--rounds %d --steps %d", args.rounds, args.steps), results = results,
    target = " (target >= 1)"}
end

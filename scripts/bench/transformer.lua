-- Benchmark: a TransformerEncoderLayer's forward and backward (d_model 256,
-- 4 heads, feed-forward 1024, sequence 128, batch 32, batch_first, dropout
-- 0.1 in training mode) on one and on two threads, beside PyTorch 1.13's
-- (transformer_torch.py, the same layer in a separate process with the same
-- thread count).
--
-- For each thread count it prints nnlua's time per forward + backward, the
-- GFLOP/s that makes of the layer's matrix-product work, and where the time
-- goes: each part of the layer timed alone, forward and backward (the
-- products of the projections and feed-forward, the attention's batched
-- products, softmax, the layer norms, dropout and the elementwise rest).
--
--   nnlua scripts/bench/transformer.lua [--threads 1,2] [--rounds R] [--steps S]
--                                       [--no-torch] [--no-parts] [--quick]
--
-- --quick: a batch of 4 and 2 rounds of 2 steps, to show the script works.
-- The machine's other work shows in the times: each figure is the median of
-- R rounds of S steps.
local nn = require "nn"

local parser = nn.cli.parser("Benchmark: a TransformerEncoderLayer's forward and backward, "
                             .. "on one and on two threads, beside PyTorch.")
parser:option("--threads", "the thread counts to time, comma-separated", "1,2")
parser:option("--rounds", "rounds per figure (the median is reported)", "7", nn.cli.whole(1, "--rounds"))
parser:option("--steps", "steps per round", "5", nn.cli.whole(1, "--steps"))
parser:flag("--no-torch", "skip PyTorch's figures")
parser:flag("--no-parts", "skip the time of each part")
parser:flag("--quick", "a batch of 4, 2 rounds of 2 steps: to show the script works")
local args = parser:parse()
local threads_list = {}
for t in args.threads:gmatch("[^,]+") do
  local n = math.tointeger(tonumber(t))
  if not n or n < 1 then parser:error("--threads needs whole numbers >= 1 separated by commas, got '" .. args.threads .. "'") end
  threads_list[#threads_list + 1] = n
end
local rounds, steps = args.rounds, args.steps
local D, HEADS, FF, L, BATCH = 256, 4, 1024, 128, 32
if args.quick then BATCH, rounds, steps = 4, 2, 2 end

-- The products of one forward + backward: forward q/k/v projection (3 D x
-- D), scores and weights x values (per head), output projection, the two
-- feed-forward products; backward twice the forward (each product's two
-- input gradients: the layer's input needs its gradient too).
local tokens = BATCH * L
local forward_flops = 2 * tokens * D * 3 * D + 2 * 2 * BATCH * L * L * D + 2 * tokens * D * D
                    + 2 * 2 * tokens * D * FF
local FLOPS = 3 * forward_flops

local median = dofile((debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or ".") .. "/lib/median.lua")

-- The median over rounds of the time per call of fn (seconds).
local function time_of(fn)
  fn()
  local times = {}
  for r = 1, rounds do
    local t0 = nn.clock()
    for _ = 1, steps do fn() end
    times[r] = (nn.clock() - t0) / steps
  end
  return median(times)
end

nn.manual_seed(1)
local layer = nn.TransformerEncoderLayer(D, HEADS, {dim_feedforward = FF, dropout = 0.1, batch_first = true})
local x = nn.randn(BATCH, L, D, {requires_grad = true})
local upstream = nn.randn(BATCH, L, D)

local function step()
  layer:zero_grad()
  x.grad = nil
  local y = layer(x)
  y:backward(upstream)
end

-- Each part of the layer alone, forward and backward, on tensors of the
-- shapes the layer gives it: where the time goes.
local function parts()
  local function fb(make)
    return function()
      local out = make()
      out:backward(nn.ones(out:size()))
    end
  end
  local h = nn.randn(BATCH, L, D, {requires_grad = true})
  local hff = nn.randn(BATCH, L, FF, {requires_grad = true})
  local q = nn.randn(BATCH * HEADS, L, D // HEADS, {requires_grad = true})
  local s = nn.randn(BATCH * HEADS, L, L, {requires_grad = true})
  local w_in, w_out = layer.self_attn.in_proj_weight, layer.self_attn.out_proj.weight
  local list = {
    {"in projection (linear, D -> 3 D)", fb(function() return nn.F.linear(h, w_in, layer.self_attn.in_proj_bias) end)},
    {"out projection (linear, D -> D)", fb(function() return nn.F.linear(h, w_out, layer.self_attn.out_proj.bias) end)},
    {"feed-forward linear1 (D -> FF)", fb(function() return layer.linear1(h) end)},
    {"feed-forward linear2 (FF -> D)", fb(function() return layer.linear2(hff) end)},
    {"scores q k^T (bmm)", fb(function() return q:bmm(q:transpose(2, 3)) end)},
    {"weights v (bmm)", fb(function() return s:bmm(q) end)},
    {"softmax of the scores", fb(function() return s:softmax(-1) end)},
    {"layer norm (x2 in a layer)", fb(function() return layer.norm1(h) end)},
    {"dropout on (B, L, D) (x3 in a layer)", fb(function() return layer.dropout1(h) end)},
    {"relu on (B, L, FF)", fb(function() return hff:relu() end)},
    {"heads: reshape (B, L, D) to (B H, L, D/H) (x4)", fb(function()
      return h:reshape(BATCH, L, HEADS, D // HEADS):transpose(2, 3):reshape(BATCH * HEADS, L, D // HEADS)
    end)},
  }
  for _, p in ipairs(list) do
    print(string.format("  %-48s %8.3f ms", p[1], time_of(p[2]) * 1e3))
  end
end

local results = {}
print(string.format("TransformerEncoderLayer(d_model %d, %d heads, feed-forward %d, dropout 0.1), "
  .. "sequence %d, batch %d: forward + backward", D, HEADS, FF, L, BATCH))
for _, threads in ipairs(threads_list) do
  nn.set_num_threads(threads)
  local t = time_of(step)
  results[threads] = t
  print(string.format("nnlua   %d thread%s: step %.3f ms (%.1f GFLOP/s of products)", threads,
    threads == 1 and " " or "s", t * 1e3, FLOPS / t / 1e9))
  if not args.no_parts then parts() end
end

if not args.no_torch then
  local here = arg[0]:match("^(.*)/[^/]*$") or "."
  dofile(here .. "/lib/peer.lua").compare {script = here .. "/transformer_torch.py", threads = threads_list,
    args = string.format("--rounds %d --steps %d --batch %d", rounds, steps, BATCH), results = results}
end

-- Benchmark: one optimizer step over an MLP's parameters (784-128-64-10,
-- float32, 109k parameters in 6 tensors), gradients set once, for each of
-- nn.optim's optimizers. Prints microseconds per step (median of runs)
-- and, with --instructions, the instructions of one step under callgrind
-- (valgrind): two runs of different lengths, the difference per step, so
-- start-up and set-up cancel out; a figure the machine's load leaves alone.
-- Run the same script with another nnlua to compare builds:
--   nnlua scripts/bench/optim.lua [--steps N] [--runs R] [--only NAME] [--instructions]
local nn = require "nn"

local OPTIMIZERS = {
  {"SGD", {lr = 0.01, momentum = 0.9}}, {"Adam", {}}, {"Adadelta", {}}, {"Adamax", {}}, {"NAdam", {}},
  {"RAdam", {}}, {"ASGD", {}}, {"Rprop", {}},
}

local parser = nn.cli.parser("Benchmark: one optimizer step over an MLP's parameters, each optimizer.")
parser:option("--steps", "steps per run", "200", nn.cli.whole(1, "--steps"))
parser:option("--runs", "runs (the median is reported)", "5", nn.cli.whole(1, "--runs"))
parser:option("--only", "this optimizer alone (SGD, Adam, Adadelta, Adamax, NAdam, RAdam, ASGD, Rprop)")
parser:flag("--instructions", "also count one step's instructions with valgrind --tool=callgrind")
parser:option("--step-only", "take this many steps of --only and exit (what --instructions runs)", nil,
  nn.cli.whole(1, "--step-only"))
local args = parser:parse()

local function config(name)
  for _, c in ipairs(OPTIMIZERS) do if c[1] == name then return c end end
  io.stderr:write("optim: unknown optimizer '" .. tostring(name) .. "'\n")
  os.exit(2)
end

-- An optimizer over the MLP's parameters, each with a gradient.
local function prepare(c)
  nn.manual_seed(13)
  local model = nn.Sequential(nn.Linear(784, 128), nn.ReLU(), nn.Linear(128, 64), nn.ReLU(), nn.Linear(64, 10))
  local params = model:parameters()
  for _, p in ipairs(params) do p.grad = nn.randn(p:size()) * 0.01 end
  return nn.optim[c[1]](params, c[2])
end

if args.step_only then
  nn.set_num_threads(1)
  local opt = prepare(config(args.only))
  for _ = 1, args.step_only do opt:step() end
  os.exit(0)
end

local nnlua = arg[-1] or "nnlua"
local function instructions(name, n)
  local p = io.popen(string.format("valgrind --tool=callgrind --callgrind-out-file=/dev/null %q %q --only %s --step-only %d 2>&1",
    nnlua, arg[0], name, n))
  local out = p:read("a")
  p:close()
  local count = out:match("Collected : (%d+)")
  if not count then error("optim: no instruction count from valgrind:\n" .. out) end
  return tonumber(count)
end

nn.set_num_threads(1)
for _, c in ipairs(OPTIMIZERS) do
  if not args.only or args.only == c[1] then
    local opt = prepare(c)
    opt:step() -- the state exists from here on
    local times = {}
    for r = 1, args.runs do
      local t0 = nn.clock()
      for _ = 1, args.steps do opt:step() end
      times[r] = (nn.clock() - t0) / args.steps
    end
    table.sort(times)
    local line = string.format("%-9s step: %8.1f us (median of %d runs of %d steps, one thread)", c[1],
      times[(#times + 1) // 2] * 1e6, args.runs, args.steps)
    if args.instructions then
      local short, long = 5, 25
      line = line .. string.format("; %.0f instructions (callgrind)",
        (instructions(c[1], long) - instructions(c[1], short)) / (long - short))
    end
    print(line)
  end
end

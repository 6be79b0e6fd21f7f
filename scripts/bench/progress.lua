-- Benchmark: what nn.progress costs a loop.
-- Runs the same loop without a bar, with bar:update(1, loss) and with
-- bar:update(1, {loss = loss}) (which also builds a table per step), on three
-- bodies, from the cheapest a Lua loop can have to one XOR training step
-- (the cheapest step of the lessons), and prints the cost of an update in
-- nanoseconds and as a share of the loop. The bar writes plain lines to
-- /dev/null, as to a log; drawing is rare either way (a few times a second),
-- so the cost measured is that of the updates that do not draw. A last row
-- times the advice for tiny steps: one bar:update(100, loss) per 100 steps.
-- Best of R runs each; beside the XOR step the figures move by some 30 ns
-- from run to run.
--   nnlua scripts/bench/progress.lua [--runs R]
local nn = require "nn"

local parser = nn.cli.parser("Benchmark: what nn.progress costs a loop.")
parser:option("--runs", "runs of each loop (the best is reported)", "9", nn.cli.whole(1, "--runs"))
local runs = parser:parse().runs

local sink = assert(io.open("/dev/null", "w"))

-- Each body: a name, a number of iterations, and a function that builds the
-- state and returns step(i) -> a loss value.
local bodies = {
  {name = "Lua arithmetic (x = x + i * 0.5)", steps = 1000000, make = function()
    local x = 0
    return function(i) x = x + i * 0.5; return x end
  end},
  {name = "one tensor op (a:add_(b), 4 floats)", steps = 200000, make = function()
    local a, b = nn.zeros(4), nn.ones(4)
    return function() a:add_(b); return a end
  end},
  {name = "one XOR training step (2-10-10-10-1 MLP)", steps = 20000, make = function()
    nn.manual_seed(777)
    local X = nn.tensor({{0, 0}, {0, 1}, {1, 0}, {1, 1}})
    local Y = nn.tensor({{0}, {1}, {1}, {0}})
    local model = nn.Sequential(
      nn.Linear(2, 10), nn.Sigmoid(), nn.Linear(10, 10), nn.Sigmoid(),
      nn.Linear(10, 10), nn.Sigmoid(), nn.Linear(10, 1), nn.Sigmoid())
    local criterion = nn.BCELoss()
    local optimizer = nn.optim.SGD(model:parameters(), {lr = 1})
    return function()
      optimizer:zero_grad()
      local cost = criterion(model(X), Y)
      cost:backward()
      optimizer:step()
      return cost
    end
  end},
}

local function without_bar(body)
  local step = body.make()
  collectgarbage("collect") -- each run starts from the same heap
  local t0 = nn.clock()
  for i = 1, body.steps do step(i) end
  return nn.clock() - t0
end

local function with_bar(body)
  local step = body.make()
  collectgarbage("collect") -- each run starts from the same heap
  local bar = nn.progress{total = body.steps, desc = "bench", out = sink, terminal = false}
  local t0 = nn.clock()
  for i = 1, body.steps do
    bar:update(1, step(i))
  end
  local seconds = nn.clock() - t0
  bar:close()
  return seconds
end

-- The same with a fresh info table on every update.
local function with_bar_table(body)
  local step = body.make()
  collectgarbage("collect") -- each run starts from the same heap
  local bar = nn.progress{total = body.steps, desc = "bench", out = sink, terminal = false}
  local t0 = nn.clock()
  for i = 1, body.steps do
    bar:update(1, {loss = step(i)})
  end
  local seconds = nn.clock() - t0
  bar:close()
  return seconds
end

-- The advice for tiny steps: one update per k steps.
local function with_bar_every(body, k)
  local step = body.make()
  collectgarbage("collect")
  local bar = nn.progress{total = body.steps, desc = "bench", out = sink, terminal = false}
  local t0 = nn.clock()
  for i = 1, body.steps do
    local loss = step(i)
    if i % k == 0 then bar:update(k, loss) end
  end
  local seconds = nn.clock() - t0
  bar:close()
  return seconds
end

print(string.format("nn.progress overhead per iteration, best of %d runs", runs))
print(string.format("%-42s %10s  %-28s %-28s", "loop body", "ns/it", "bar:update(1, loss)",
  "bar:update(1, {loss = loss})"))
local function cost(barred, plain, steps)
  return string.format("%+7.1f ns %+8.2f%%         ", (barred - plain) / steps * 1e9,
    100 * (barred - plain) / plain)
end
local cheapest_ns, worst_ns, worst_table_ns = nil, 0, 0
for _, body in ipairs(bodies) do
  local plain, barred, tabled = math.huge, math.huge, math.huge
  for _ = 1, runs do -- interleaved, so that all three see the same machine
    plain = math.min(plain, without_bar(body))
    barred = math.min(barred, with_bar(body))
    tabled = math.min(tabled, with_bar_table(body))
  end
  print(string.format("%-42s %10.1f  %s %s", body.name, plain / body.steps * 1e9,
    cost(barred, plain, body.steps), cost(tabled, plain, body.steps)))
  -- Beside a real step an update costs more than in a bare loop (its code
  -- and data fall out of the caches between two updates): the budget
  -- follows the worst figure.
  local update_ns = (barred - plain) / body.steps * 1e9
  cheapest_ns = cheapest_ns or update_ns
  worst_ns = math.max(worst_ns, update_ns)
  worst_table_ns = math.max(worst_table_ns, (tabled - plain) / body.steps * 1e9)
end
local xor = bodies[#bodies]
local plain, every100 = math.huge, math.huge
for _ = 1, runs do
  plain = math.min(plain, without_bar(xor))
  every100 = math.min(every100, with_bar_every(xor, 100))
end
print(string.format("%-42s %10.1f  %s", "the XOR step, bar:update(100, loss) every 100", plain / xor.steps * 1e9,
  cost(every100, plain, xor.steps)))
print(string.format("An update costs %.0f ns in a bare loop, up to %.0f ns beside a training step "
  .. "(%.0f ns with a fresh table):\nunder 1%% of a step of %.1f us or more (%.1f us); for a shorter step, "
  .. "update every k steps: bar:update(k, loss).", cheapest_ns, worst_ns, worst_table_ns,
  worst_ns / 10, worst_table_ns / 10))
sink:close()

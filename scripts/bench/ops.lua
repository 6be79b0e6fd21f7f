-- Benchmark: the tensor toolkit's ops (issue 12), one call at a time, at a
-- small size (4 x 10: what a call costs beyond its arithmetic, the binding,
-- the checks, the allocation) and a large one (1000 x 1000 = 1e6 elements:
-- the kernels), beside PyTorch 1.13 (ops_torch.py, the same ops on the same
-- shapes, run as a subprocess in the same run, on the same thread count).
--
-- It prints one row an op: each side's time per call (small: microseconds,
-- large: milliseconds), the ratio nnlua / PyTorch, and a flag where nnlua
-- misses the target: faster than PyTorch at the small size, no slower
-- (ratio <= 1.0) at the large one.
--
--   nnlua scripts/bench/ops.lua [--quick] [--threads N] [--only name,name] [--no-torch] [--cpu-clock]
--                               [--passes N]
--
-- --cpu-clock times each side by its own CPU time (os.clock, Python's
-- process_time) instead of the wall clock: on a machine shared with other
-- work, a wall-clock round also counts the time other processes held the
-- core (the figures then say little); CPU time does not (at 1 thread).
--
-- --passes N times the whole table N times on each side, nnlua's pass and
-- PyTorch's alternated, and keeps each side's fastest figure an op: the
-- two sides' figures otherwise come from minutes a minute apart, and this
-- machine's speed drifts by tens of percent between minutes, which moved
-- the ratios of the kernels bound by memory (0.9 to 1.2 in runs a few
-- minutes apart, the code unchanged).
--
-- For instruction counts, run the --only ops at the large size a given
-- number of times under callgrind, with two counts, and divide the
-- difference (--small: at the small size):
--
--   valgrind --tool=callgrind nnlua scripts/bench/ops.lua --only prod --count 5
--
-- Each figure is the median of rounds of calls, each round long enough to
-- be timed (--quick: shorter rounds, fewer of them: to see that it runs).
-- Times on a loaded machine say little: run it on a quiet one.
local nn = require "nn"

local parser = nn.cli.parser("Benchmark: the tensor toolkit's ops at 4 x 10 and 1000 x 1000, beside PyTorch 1.13.")
parser:flag("--quick", "short rounds: to see that it runs")
parser:option("--threads", "threads for both (OpenBLAS, PyTorch's intra-op pool)", "1", nn.cli.whole(1, "--threads"))
parser:option("--only", "the ops to time, comma-separated (default: all)")
parser:flag("--no-torch", "skip PyTorch's figures")
parser:flag("--cpu-clock", "time both sides by their process's CPU time, not the wall clock (on a shared machine)")
parser:option("--count", "run the --only ops this many times each and exit (for callgrind)", nil,
  nn.cli.whole(0, "--count"))
parser:flag("--small", "with --count: at the small size, not the large one")
parser:option("--passes", "time the table this many times a side, alternated; keep each side's fastest", "1",
  nn.cli.whole(1, "--passes"))
local args = parser:parse()
nn.set_num_threads(args.threads)

local ROUNDS, ROUND_SECONDS = 5, 0.05
if args.quick then ROUNDS, ROUND_SECONDS = 1, 0.005 end

-- The shapes: rows x cols at each size; matrix products take square-ish
-- factors whose inputs hold about as many elements.
local SIZES = {small = {4, 10}, large = {1000, 1000}}

local function long(values) return nn.tensor(values, {dtype = "int64"}) end

-- Each op: name, and make(rows, cols) -> a function of no arguments that
-- calls the op once on inputs made beforehand. The same names, in the same
-- order, are ops_torch.py's.
local ops = {}
local function op(name, make) ops[#ops + 1] = {name = name, make = make} end

local function inputs(rows, cols)
  nn.manual_seed(1)
  local x = nn.rand(rows, cols)
  local y = nn.rand(rows, cols)
  return x, y
end

-- joining and splitting
op("cat", function(r, c) local x, y = inputs(r, c); return function() return nn.cat({x, y}, 1) end end)
op("stack", function(r, c) local x, y = inputs(r, c); return function() return nn.stack({x, y}) end end)
op("split", function(r, c) local x = inputs(r, c); return function() return x:split(2, 2) end end)
op("chunk", function(r, c) local x = inputs(r, c); return function() return x:chunk(2, 1) end end)
op("flip", function(r, c) local x = inputs(r, c); return function() return x:flip(2) end end)
op("roll", function(r, c) local x = inputs(r, c); return function() return x:roll(1, 2) end end)
op("repeat", function(r, c) local x = inputs(r, c); return function() return x:repeatTensor(2, 1) end end)
op("slice", function(r, c) local x = inputs(r, c); return function() return x[{{}, {2, 3}}] end end)
op("movedim", function(r, c) local x = inputs(r, c); return function() return x:movedim(1, 2) end end)
-- indexing
local function column_index(r, c) -- c / 2 columns, repeated and shuffled
  local t = {}
  for i = 1, c // 2 do t[i] = (i * 7) % c + 1 end
  return long(t)
end
local function rows_index(r, c) -- an index of x's shape into its columns
  nn.manual_seed(2)
  return nn.randint(1, c + 1, {r, c})
end
op("index_select", function(r, c) local x = inputs(r, c); local i = column_index(r, c)
  return function() return x:index_select(2, i) end end)
op("gather", function(r, c) local x = inputs(r, c); local i = rows_index(r, c)
  return function() return x:gather(2, i) end end)
op("scatter", function(r, c) local x, y = inputs(r, c); local i = rows_index(r, c)
  return function() return x:scatter(2, i, y) end end)
op("scatter_add", function(r, c) local x, y = inputs(r, c); local i = rows_index(r, c)
  return function() return x:scatter_add(2, i, y) end end)
op("index_add", function(r, c) local x, y = inputs(r, c); local i = column_index(r, c)
  local src = y[{{}, {1, c // 2}}]:contiguous()
  return function() return x:index_add(2, i, src) end end)
op("take", function(r, c) local x = inputs(r, c); local i = rows_index(r, c)
  return function() return x:take(i) end end)
op("masked_fill", function(r, c) local x = inputs(r, c); local m = x:gt(0.5)
  return function() return x:masked_fill(m, 0) end end)
op("masked_select", function(r, c) local x = inputs(r, c); local m = x:gt(0.5)
  return function() return x:masked_select(m) end end)
op("mask index", function(r, c) local x = inputs(r, c); local m = x:gt(0.5)
  return function() return x[m] end end)
op("mask assign", function(r, c) local x = inputs(r, c); local m = x:gt(0.5)
  return function() x[m] = 0 end end)
op("where", function(r, c) local x, y = inputs(r, c); local m = x:gt(y)
  return function() return nn.where(m, x, y) end end)
op("nonzero", function(r, c) local x = inputs(r, c); local m = x:gt(0.5)
  return function() return m:nonzero() end end)
-- reductions
op("sort", function(r, c) local x = inputs(r, c); return function() return x:sort(2) end end)
op("argsort", function(r, c) local x = inputs(r, c); return function() return x:argsort(2) end end)
op("topk", function(r, c) local x = inputs(r, c); return function() return x:topk(3, 2) end end)
op("kthvalue", function(r, c) local x = inputs(r, c); return function() return x:kthvalue(2, 2) end end)
op("median", function(r, c) local x = inputs(r, c); return function() return x:median(2) end end)
op("mode", function(r, c) local x = inputs(r, c); local q = (x * 4):floor()
  return function() return q:mode(2) end end)
op("unique", function(r, c) local x = inputs(r, c); local q = (x * 100):floor()
  return function() return q:unique() end end)
op("cumsum", function(r, c) local x = inputs(r, c); return function() return x:cumsum(2) end end)
op("cumprod", function(r, c) local x = inputs(r, c); return function() return x:cumprod(2) end end)
op("prod", function(r, c) local x = inputs(r, c); return function() return x:prod(2) end end)
op("var", function(r, c) local x = inputs(r, c); return function() return x:var(2) end end)
op("std", function(r, c) local x = inputs(r, c); return function() return x:std() end end)
op("logsumexp", function(r, c) local x = inputs(r, c); return function() return x:logsumexp(2) end end)
op("amax", function(r, c) local x = inputs(r, c); return function() return x:amax(2) end end)
op("amin", function(r, c) local x = inputs(r, c); return function() return x:amin() end end)
op("all", function(r, c) local x = inputs(r, c); local m = x:gt(0.01)
  return function() return m:all() end end)
op("any", function(r, c) local x = inputs(r, c); local m = x:gt(0.99)
  return function() return m:any(2) end end)
op("count_nonzero", function(r, c) local x = inputs(r, c); return function() return x:count_nonzero() end end)
op("dist", function(r, c) local x, y = inputs(r, c); return function() return x:dist(y) end end)
-- math
for _, name in ipairs {"log1p", "expm1", "log2", "rsqrt", "reciprocal", "square", "tan", "atan",
                       "erf", "erfinv", "trunc", "frac", "isnan"} do
  op(name, function(r, c) local x = inputs(r, c); return function() return x[name](x) end end)
end
op("atan2", function(r, c) local x, y = inputs(r, c); return function() return x:atan2(y) end end)
op("fmod", function(r, c) local x, y = inputs(r, c); return function() return x:fmod(y) end end)
op("remainder", function(r, c) local x, y = inputs(r, c); return function() return x:remainder(y) end end)
op("lerp", function(r, c) local x, y = inputs(r, c); return function() return x:lerp(y, 0.3) end end)
op("clamp_min", function(r, c) local x = inputs(r, c); return function() return x:clamp_min(0.5) end end)
op("nan_to_num", function(r, c) local x = inputs(r, c); return function() return x:nan_to_num() end end)
op("logical_and", function(r, c) local x, y = inputs(r, c); local a, b = x:gt(0.5), y:gt(0.5)
  return function() return a:logical_and(b) end end)
op("allclose", function(r, c) local x = inputs(r, c); local y = x:clone()
  return function() return x:allclose(y) end end)
op("equal", function(r, c) local x = inputs(r, c); local y = x:clone()
  return function() return x:equal(y) end end)
-- linear algebra: matrices of about rows x cols elements
op("mm", function(r, c) local x, y = inputs(r, c); local yt = y:t():contiguous()
  return function() return x:mm(yt) end end)
-- bmm: 2 products of 4x5 by 5x4 (small), 10 of 100x1000 by 1000x100 (large)
op("bmm", function(r, c)
  local batch, m, k = 2, 4, 5
  if r * c >= 1e6 then batch, m, k = 10, 100, 1000 end
  nn.manual_seed(1)
  local a, b = nn.rand(batch, m, k), nn.rand(batch, k, m)
  return function() return a:bmm(b) end end)
op("matmul broadcast", function(r, c) local x = inputs(r, c); local w = nn.rand(c, 8)
  return function() return x:matmul(w) end end)
op("mv", function(r, c) local x = inputs(r, c); local v = nn.rand(c); return function() return x:mv(v) end end)
op("dot", function(r, c) local x, y = inputs(r, c); local a, b = x:view(-1), y:view(-1)
  return function() return a:dot(b) end end)
op("outer", function(r, c) local a, b = nn.rand(r), nn.rand(c); return function() return a:outer(b) end end)
op("addmm", function(r, c) local x = inputs(r, c); local w, b = nn.rand(c, c), nn.rand(r, c)
  return function() return b:addmm(x, w) end end)
op("einsum", function(r, c) local x, y = inputs(r, c)
  return function() return nn.einsum("ij,ij->i", x, y) end end)
op("tril", function(r, c) local x = inputs(r, c); return function() return x:tril() end end)
op("triu", function(r, c) local x = inputs(r, c); return function() return x:triu(1) end end)
op("diag", function(r, c) local x = inputs(r, c); return function() return x:diag() end end)
op("trace", function(r, c) local x = inputs(r, c); return function() return x:trace() end end)
-- creation
op("zeros_like", function(r, c) local x = inputs(r, c); return function() return nn.zeros_like(x) end end)
op("full_like", function(r, c) local x = inputs(r, c); return function() return nn.full_like(x, 3) end end)
op("rand_like", function(r, c) local x = inputs(r, c); return function() return nn.rand_like(x) end end)
op("randint", function(r, c) return function() return nn.randint(0, 10, {r, c}) end end)
op("randperm", function(r, c) return function() return nn.randperm(r * c) end end)
op("tolist", function(r, c) local x = inputs(r, c); return function() return x:tolist() end end)
-- elementwise ops on inputs laid out otherwise than their result: a
-- transposed view, a value expanded to the whole shape (as sum's and
-- mean's gradients arrive)
op("relu of x:t()", function(r, c) local x = inputs(r, c); return function() return x:t():relu() end end)
op("x:t() + y", function(r, c) local x, y = inputs(r, c); local yt = y:t():contiguous()
  return function() return x:t() + yt end end)
op("expanded * 2", function(r, c) local e = nn.tensor(1.5):expand(r, c); return function() return e * 2 end end)

local only
if args.only then
  only = {}
  for name in args.only:gmatch("[^,]+") do only[name] = true end
end

if args.count then
  if not only then parser:error("--count needs --only") end
  local size = args.small and SIZES.small or SIZES.large
  nn.no_grad(function()
    for _, o in ipairs(ops) do
      if only[o.name] then
        local f = o.make(table.unpack(size))
        for _ = 1, args.count do f() end
      end
    end
  end)
  os.exit(0)
end

local median = dofile((debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or ".") .. "/lib/median.lua")

-- Seconds per call: calls per round grow until a round lasts ROUND_SECONDS.
local function time_call(f)
  local clock = args.cpu_clock and os.clock or nn.clock
  f()
  local calls, t0 = 1, clock()
  f()
  local once = clock() - t0
  calls = math.max(1, math.floor(ROUND_SECONDS / math.max(once, 1e-7)))
  local times = {}
  for r = 1, ROUNDS do
    t0 = clock()
    for _ = 1, calls do f() end
    times[r] = (clock() - t0) / calls
  end
  return median(times)
end

-- figures[name] = {small, large}, each the fastest seen over the passes
local function keep_fastest(figures, name, small, large)
  local f = figures[name]
  if f then figures[name] = {math.min(f[1], small), math.min(f[2], large)}
  else figures[name] = {small, large} end
end

local mine = {}
local function time_mine()
  nn.no_grad(function()
    for _, o in ipairs(ops) do
      if not only or only[o.name] then
        local small = time_call(o.make(table.unpack(SIZES.small)))
        local large = time_call(o.make(table.unpack(SIZES.large)))
        keep_fastest(mine, o.name, small, large)
        collectgarbage()
      end
    end
  end)
end

-- PyTorch's figures: "name<TAB>small seconds<TAB>large seconds" lines.
local theirs, torch_version, torch_failed = {}, nil, false
local function time_theirs()
  if args.no_torch or torch_failed then return end
  local here = arg[0]:match("^(.*)/[^/]*$") or "."
  -- the same threads and OpenBLAS kernels as nnlua's (lib/peer.lua)
  local cmd = string.format("%s /usr/bin/python3 %q --threads %d --rounds %d --seconds %g%s 2>&1",
    dofile(here .. "/lib/peer.lua").environment(args.threads), here .. "/ops_torch.py", args.threads, ROUNDS, ROUND_SECONDS,
    (args.cpu_clock and " --cpu-clock" or "") .. (args.only and (" --only " .. string.format("%q", args.only)) or ""))
  local p = io.popen(cmd)
  local out = p and p:read("a") or ""
  if p then p:close() end
  for line in out:gmatch("[^\n]+") do
    local name, s, l = line:match("^([^\t]+)\t(%S+)\t(%S+)$")
    if name == "torch" then torch_version = s
    elseif name then keep_fastest(theirs, name, tonumber(s), tonumber(l)) end
  end
  if not torch_version then
    print("PyTorch did not run (python3-torch missing?):\n" .. out)
    torch_failed = true
  end
end

for _ = 1, args.passes do
  time_mine()
  time_theirs()
end

print(string.format("nnlua beside PyTorch %s, %d thread%s%s; small %dx%d (us a call), large %dx%d (ms a call)",
  torch_version or "(none)", args.threads, args.threads == 1 and "" or "s",
  args.passes > 1 and string.format(", fastest of %d passes a side", args.passes) or "",
  SIZES.small[1], SIZES.small[2], SIZES.large[1], SIZES.large[2]))
print(string.format("%-18s %9s %9s %6s   %9s %9s %6s  %s", "op", "nnlua", "torch", "ratio", "nnlua", "torch", "ratio", "flag"))
local flagged = 0
for _, o in ipairs(ops) do
  local m = mine[o.name]
  if m then
    local t = theirs[o.name]
    local rs, rl = t and m[1] / t[1], t and m[2] / t[2]
    local flags = {}
    if rs and rs >= 1 then flags[#flags + 1] = "small" end
    if rl and rl > 1 then flags[#flags + 1] = "large" end
    if #flags > 0 then flagged = flagged + 1 end
    print(string.format("%-18s %9.2f %9s %6s   %9.3f %9s %6s  %s", o.name, m[1] * 1e6,
      t and string.format("%.2f", t[1] * 1e6) or "-", rs and string.format("%.2f", rs) or "-",
      m[2] * 1e3, t and string.format("%.3f", t[2] * 1e3) or "-", rl and string.format("%.2f", rl) or "-",
      table.concat(flags, " ")))
  end
end
print(string.format("%d ops; %d flagged (slower than PyTorch at 4x10, or more than 1.0x slower at 1e6)",
  #ops, flagged))

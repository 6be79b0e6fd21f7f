-- Benchmark: start-up. Prints, in one run, how long these take to start and
-- exit, each less the cost of starting any process (`true`), and the ratios:
--   lua5.4 -e ''                 Lua alone, the floor
--   nnlua -e ''                  nnlua, nn not loaded (target: 2 ms)
--   lua5.4 -e 'require "nn"'     nn.so loaded by the stock Lua (target: 3 ms)
--   nnlua -e 'local _ = nn'      nnlua with nn loaded
-- With --instructions it also counts each command's instructions under
-- callgrind (valgrind), a figure the machine's load does not change.
--   nnlua scripts/bench/startup.lua [--runs N] [--instructions] [--nnlua PATH] [--lua PATH]
-- The nn.so measured is the one beside the nnlua measured (build/ or the
-- install's lib/lua/5.4 through the usual package.cpath when not found).
local nn = require "nn"

local parser = nn.cli.parser("Benchmark: start-up of nnlua and of `require \"nn\"`, beside lua5.4's own.")
parser:option("--runs", "starts of each command (the median is reported)", "41", nn.cli.whole(1, "--runs"))
parser:option("--nnlua", "the nnlua to measure (default: the one running this)")
parser:option("--lua", "the stock Lua 5.4", "lua5.4")
parser:flag("--instructions", "also count instructions with valgrind --tool=callgrind")
local args = parser:parse()

local nnlua = args.nnlua or arg[-1] or "nnlua"
local dir = nnlua:match("^(.*)/[^/]*$")
local cpath = ""
if dir then
  local probe = io.open(dir .. "/nn.so")
  if probe then
    probe:close()
    cpath = string.format("package.cpath=%q..';'..package.cpath ", dir .. "/?.so")
  end
end

-- Median seconds of one start of cmd. The commands run interleaved, one
-- start of each in turn, so that a change in the machine's load between
-- them shows in every one alike.
local commands = {
  {name = "true", cmd = "true"},
  {name = "lua5.4 -e ''", cmd = string.format("%q -e ''", args.lua)},
  -- as from a fresh shell: without the OpenBLAS setting nnlua adds for itself,
  -- taken out by the shell's own `unset`. (It was `env -u`, a second program
  -- started before nnlua, and its start, locale and all, was counted as
  -- nnlua's: about as long as lua5.4 -e '' takes.)
  {name = "nnlua -e ''", unset = "OPENBLAS_THREAD_TIMEOUT", cmd = string.format("%q -e ''", nnlua)},
  {name = "lua5.4 -e 'require \"nn\"'", cmd = string.format("%q -e %q", args.lua, cpath .. "require 'nn'")},
  {name = "nnlua -e 'local _ = nn'", unset = "OPENBLAS_THREAD_TIMEOUT",
   cmd = string.format("%q -e 'local _ = nn'", nnlua)},
}
for _, c in ipairs(commands) do
  c.times = {}
  c.program = c.cmd
  c.cmd = (c.unset and "unset " .. c.unset .. "; " or "") .. "exec " .. c.cmd .. " >/dev/null"
  if not os.execute(c.cmd) then error("startup: cannot run " .. c.cmd) end
end
for r = 1, args.runs do
  for _, c in ipairs(commands) do
    local t0 = nn.clock()
    os.execute(c.cmd)
    c.times[r] = nn.clock() - t0
  end
end
local function median(t)
  table.sort(t)
  return t[(#t + 1) // 2]
end
local ms = {}
local base = median(commands[1].times)
for _, c in ipairs(commands) do ms[c.name] = (median(c.times) - base) * 1e3 end

print(string.format("start-up, median of %d starts each, less `true` (%.2f ms):", args.runs, base * 1e3))
local lua_ms = ms["lua5.4 -e ''"]
for i = 2, #commands do
  local name = commands[i].name
  local line = string.format("  %-28s %6.2f ms", name, ms[name])
  if i > 2 then line = line .. string.format("   %5.2fx lua5.4 -e ''", ms[name] / lua_ms) end
  print(line)
end
print(string.format("targets: nnlua -e '' <= 2 ms (%s), lua5.4 -e 'require \"nn\"' <= 3 ms (%s)",
  ms["nnlua -e ''"] <= 2 and "met" or "missed",
  ms["lua5.4 -e 'require \"nn\"'"] <= 3 and "met" or "missed"))

-- Instructions: every process a command starts, summed over callgrind's
-- "Collected" lines. OPENBLAS_THREAD_TIMEOUT is set here, since valgrind
-- cannot follow an older nnlua's re-execution of /proc/self/exe: for such
-- a build the count leaves the second start out.
if args.instructions then
  local counts = {}
  for i = 2, #commands do
    local c = commands[i]
    local cmd = c.program
    local p = io.popen("OPENBLAS_THREAD_TIMEOUT=4 valgrind --tool=callgrind --trace-children=yes "
      .. "--callgrind-out-file=/dev/null " .. cmd .. " 2>&1 >/dev/null")
    local out = p:read("a")
    p:close()
    local total
    for n in out:gmatch("Collected : (%d+)") do total = (total or 0) + tonumber(n) end
    if not total then error("startup: no instruction count from valgrind for " .. c.name .. ":\n" .. out) end
    counts[i] = total
  end
  print("instructions (callgrind):")
  for i = 2, #commands do
    local line = string.format("  %-28s %10.2fM", commands[i].name, counts[i] / 1e6)
    if i > 2 then line = line .. string.format("   %5.2fx lua5.4 -e ''", counts[i] / counts[2]) end
    print(line)
  end
end

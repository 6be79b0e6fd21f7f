-- The PyTorch twin of a benchmark (scripts/bench/<name>_torch.py), run
-- beside it: each benchmark of scripts/bench that has one loads this with
--   local peer = dofile(here .. "/lib/peer.lua")
-- (here: the benchmark's folder). It lives in lib/ because every
-- scripts/bench/*.lua is a benchmark that the specs run with --help.
local nn = require "nn" -- nnlua's own; under busted, nn.so
local peer = {}

local function quote(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

--- peer.has_torch([python]): whether python (Debian's /usr/bin/python3 by
-- default) imports torch.
function peer.has_torch(python)
  local probe = io.popen(quote(python or "/usr/bin/python3") .. " -c 'import torch' 2>/dev/null && echo yes")
  if not probe then return false end
  local yes = probe:read("a"):find("yes") ~= nil
  probe:close()
  return yes
end

--- peer.environment(n): the environment a twin runs in, as a prefix for a
-- shell command: n threads for each of PyTorch's pools, and OpenBLAS's
-- kernels the ones nnlua runs (nn.config().blas_kernels). PyTorch's
-- products go through the same Debian OpenBLAS, which on a processor newer
-- than itself runs its slowest kernels; nnlua names the right ones, and
-- the twin gets the same, so that the ratio compares the two programs,
-- not two choices of kernels. A user's OPENBLAS_CORETYPE reaches both.
function peer.environment(n)
  local kernels = os.getenv("OPENBLAS_CORETYPE") or nn.config().blas_kernels
  return string.format("OMP_NUM_THREADS=%d OPENBLAS_NUM_THREADS=%d MKL_NUM_THREADS=%d OPENBLAS_CORETYPE=%s",
    n, n, n, quote(kernels))
end

--- peer.compare(opts): for each thread count n of opts.threads, runs the
-- twin opts.script (a path) with "--threads n " .. opts.args, with
-- peer.environment(n),
-- echoes what it prints, reads its "step X ms" and prints the ratio to
-- nnlua's seconds per step opts.results[n]: "PyTorch step / nnlua step"
-- (above 1: nnlua is faster), or with opts.nnlua_over_torch its inverse.
-- opts.target is appended to each ratio line (" (target >= 1)"), and
-- opts.python replaces /usr/bin/python3. Without PyTorch it says so and
-- compares nothing. Returns {[n] = PyTorch's ms per step}.
function peer.compare(opts)
  local python = opts.python or "/usr/bin/python3"
  local torch_ms = {}
  if not peer.has_torch(python) then
    print("PyTorch (python3-torch) is not installed: no comparison")
    return torch_ms
  end
  for _, n in ipairs(opts.threads) do
    local cmd = string.format("%s %s %s --threads %d %s",
      peer.environment(n), quote(python), quote(opts.script), n, opts.args or "")
    local p = assert(io.popen(cmd))
    local out = p:read("a")
    p:close()
    io.write(out)
    local ms = tonumber(out:match("step ([%d%.]+) ms"))
    torch_ms[n] = ms
    local ours = opts.results[n]
    if ms and ours then
      local threads = n == 1 and " " or "s"
      if opts.nnlua_over_torch then
        print(string.format("ratio   %d thread%s: nnlua step / PyTorch step: %.2f%s", n, threads, ours * 1e3 / ms,
          opts.target or ""))
      else
        print(string.format("ratio   %d thread%s: PyTorch step / nnlua step: %.2f%s", n, threads, ms / (ours * 1e3),
          opts.target or ""))
      end
    end
  end
  return torch_ms
end

return peer

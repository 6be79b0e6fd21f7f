-- scripts/bench/lib/peer.lua: the runner of a benchmark's PyTorch twin that
-- cnn, lstm, mlp and transformer share, checked with a stand-in for
-- python3 (the specs never need PyTorch).
local support = dofile(os.getenv("NN_ROOT") .. "/tests/lua/support.lua")
local root = os.getenv("NN_ROOT") or "."
local peer = dofile(root .. "/scripts/bench/lib/peer.lua")

describe("the benchmarks' PyTorch runner", function()
  local dir, python
  setup(function()
    dir = support.scratch_dir()
    python = dir .. "/python3"
    -- answers the import probe like a python3 with torch, and a run like a
    -- twin: its arguments and thread setting, and a step of 4 ms
    local f = assert(io.open(python, "w"))
    f:write('#!/bin/sh\nif [ "$1" = "-c" ]; then exit 0; fi\n',
            'twin=$(basename "$1"); shift\n',
            'echo "twin $twin $* omp=$OMP_NUM_THREADS blas=$OPENBLAS_NUM_THREADS"\n',
            'echo "kernels $OPENBLAS_CORETYPE"\n',
            'echo "PyTorch step 4.00 ms"\n')
    f:close()
    os.execute("chmod +x " .. support.quote(python))
  end)
  teardown(function() os.execute("rm -rf " .. support.quote(dir)) end)

  -- what fn prints
  local function printed(fn)
    local lines, real_print, real_write = {}, _G.print, io.write
    _G.print = function(...) lines[#lines + 1] = table.concat({...}, "\t") .. "\n" end
    io.write = function(s) lines[#lines + 1] = s end
    local ok, result = pcall(fn)
    _G.print, io.write = real_print, real_write
    assert(ok, result)
    return table.concat(lines), result
  end

  it("runs the twin at each thread count and prints the ratio", function()
    local out, ms = printed(function()
      return peer.compare {script = "x/cnn_torch.py", threads = {1, 2}, args = "--rounds 3 --steps 5",
                           results = {[1] = 0.002, [2] = 0.008}, python = python, target = " (target >= 1)"}
    end)
    assert.are.same({[1] = 4, [2] = 4}, ms)
    assert.truthy(out:find("twin cnn_torch.py --threads 1 --rounds 3 --steps 5 omp=1 blas=1", 1, true), out)
    assert.truthy(out:find("twin cnn_torch.py --threads 2 --rounds 3 --steps 5 omp=2 blas=2", 1, true), out)
    assert.truthy(out:find("ratio   1 thread : PyTorch step / nnlua step: 2.00 (target >= 1)", 1, true), out)
    assert.truthy(out:find("ratio   2 threads: PyTorch step / nnlua step: 0.50", 1, true), out)
    -- PyTorch's OpenBLAS runs the kernels nnlua's runs (or the user's choice, which reaches both)
    local kernels = os.getenv("OPENBLAS_CORETYPE") or require("nn").config().blas_kernels
    assert.truthy(out:find("kernels " .. kernels .. "\n", 1, true), out)
  end)

  it("gives the inverse ratio where a benchmark reports nnlua / PyTorch", function()
    local out = printed(function()
      return peer.compare {script = "cnn_torch.py", threads = {1}, results = {[1] = 0.002}, python = python,
                           nnlua_over_torch = true}
    end)
    assert.truthy(out:find("ratio   1 thread : nnlua step / PyTorch step: 0.50", 1, true), out)
  end)

  it("says so, and runs nothing, without PyTorch", function()
    local out, ms = printed(function()
      return peer.compare {script = "cnn_torch.py", threads = {1}, results = {}, python = dir .. "/no-such-python"}
    end)
    assert.are.same({}, ms)
    assert.are.equal("PyTorch (python3-torch) is not installed: no comparison\n", out)
  end)
end)

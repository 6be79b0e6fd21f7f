-- The Lua modules embedded in nn.so (as bytecode where the build can, else
-- as source): whichever form, a function of theirs reports the chunk name
-- "@[nn]/<module>.lua" and the lines of the file in lua/nn, so errors and
-- tracebacks point into the source.
local nn = require "nn"
local root = os.getenv("NN_ROOT") or "."

-- The line of lua/nn/<file> that holds text (plain), or nil.
local function line_of(file, text)
  local n = 0
  for line in io.lines(root .. "/lua/nn/" .. file) do
    n = n + 1
    if line:find(text, 1, true) then return n end
  end
end

describe("the embedded Lua modules", function()
  it("keep their chunk names and the lines of their source", function()
    local info = debug.getinfo(nn._raise, "S")
    assert.are.equal("@[nn]/nn.init.lua", info.source)
    assert.are.equal(line_of("init.lua", "function nn._raise(msg)"), info.linedefined)
  end)

  it("name the module and the line in a traceback", function()
    local ok, trace = xpcall(nn.optim.SGD, debug.traceback, {}, {lr = -1})
    assert.is_false(ok)
    assert.truthy(trace:find("SGD: lr must be a non-negative number", 1, true))
    local raise_line = line_of("init.lua", "error(msg, level)")
    assert.truthy(trace:find("[nn]/nn.init.lua:" .. raise_line .. ":", 1, true), trace)
  end)

  it("keep the names of locals (debug.getlocal)", function()
    assert.are.equal("msg", debug.getlocal(nn._raise, 1))
  end)
end)

-- nnlua sets OpenBLAS's thread timeout for itself, and a shared OpenBLAS
-- is only loaded when a product needs it (and reads the setting then).
describe("nnlua's start", function()
  local nnlua = os.getenv("NNLUA")
  local function run(code)
    local p = io.popen(string.format("env -u OPENBLAS_THREAD_TIMEOUT -u GOTO_THREAD_TIMEOUT %q -e %q",
      nnlua, code))
    local out = p:read("a")
    p:close()
    return out
  end
  local maps_openblas = "local f = io.open('/proc/self/maps'); io.write(f:read('a'):find('openblas') and 'loaded ' or 'absent '); f:close()"

  it("sets OPENBLAS_THREAD_TIMEOUT, unless the user did", function()
    if not nnlua then return pending("NNLUA is not set (run through ctest)") end
    assert.are.equal("22", run("io.write(os.getenv('OPENBLAS_THREAD_TIMEOUT'))"))
    local p = io.popen(string.format("OPENBLAS_THREAD_TIMEOUT=9 %q -e %q", nnlua,
      "io.write(os.getenv('OPENBLAS_THREAD_TIMEOUT'))"))
    assert.are.equal("9", p:read("a"))
    p:close()
  end)

  it("loads a shared OpenBLAS at the first product, not before", function()
    if not nnlua then return pending("NNLUA is not set (run through ctest)") end
    local out = run(maps_openblas .. "; local _ = nn.ones(64, 64):matmul(nn.ones(64, 64)); " .. maps_openblas)
    local before, after = out:match("^(%a+) (%a+) $")
    -- a static OpenBLAS (tools/build_gpu.sh) is part of nnlua: no file of its own
    if after == "absent" then return pending("OpenBLAS is linked statically") end
    assert.are.equal("absent", before)
  end)
end)

-- cuda_spec.lua: nn.cuda where CUDA cannot run, as on the machines that run
-- these tests (no NVIDIA driver): a build with the CUDA backend and one
-- without both run, CUDA is unavailable with a reason that names what is
-- missing, and every use of "cuda" is an error that says so. How the
-- backend library is found and refused is checked in child processes, each
-- with its own NN_CUDA_LIBRARY. The specs on a working device are
-- fake_cuda_spec.lua's.
local nn = require "nn"
local support = dofile(os.getenv("NN_ROOT") .. "/tests/lua/support.lua")
local expect_error = support.expect_error

local built = os.getenv("NN_CUDA_BUILT") == "ON"
local fake = assert(os.getenv("NN_FAKE_CUDA_LIBRARY"), "ctest sets NN_FAKE_CUDA_LIBRARY")
local build_dir = assert(os.getenv("NN_BUILD"))

-- The reason a child nnlua gives, with env for that child only.
local function reason_with(env)
  local out = support.nnlua_output("print(nn.cuda.is_available(), nn.cuda.why_unavailable())", env)
  return out
end

describe("nn.cuda without a usable GPU", function()
  if nn.cuda.is_available() then
    it("(skipped: this machine has a GPU)", function() end)
    return
  end
  local why = nn.cuda.why_unavailable()

  it("is_available() is false and why_unavailable() says why", function()
    assert.is_false(nn.cuda.is_available())
    assert.are.equal("string", type(why))
    if built then
      -- libnn_cuda.so is found beside nn.so and loads; the CUDA runtime finds no driver
      assert.is_truthy(why:find("no usable CUDA device", 1, true), why)
      assert.is_truthy(why:find("driver", 1, true), why)
    else
      assert.is_truthy(why:find("this build of nnlua has no CUDA backend", 1, true), why)
    end
  end)

  it("counts no device and no memory; the seeds still work", function()
    assert.are.equal(0, nn.cuda.device_count())
    assert.are.equal(0, nn.cuda.memory_allocated())
    assert.are.equal(0, nn.cuda.memory_reserved())
    nn.cuda.empty_cache()
    nn.cuda.manual_seed(5)
    assert.are.equal(5, nn.cuda.initial_seed())
    nn.cuda.manual_seed_all(6)
    assert.are.equal(6, nn.cuda.initial_seed())
    nn.manual_seed(7) -- seeds every device, as torch.manual_seed does
    assert.are.equal(7, nn.cuda.initial_seed())
    expect_error(function() nn.cuda.manual_seed("x") end, "cuda.manual_seed", "integer")
  end)

  it("every use of cuda is an error that gives the reason", function()
    local x = nn.ones(2)
    local fragment = why:sub(1, 40)
    for _, case in ipairs {
      {"to", function() return x:to("cuda") end},
      {"to", function() return x:to("cuda:0") end},
      {"to", function() return x:cuda() end},
      {"zeros", function() return nn.zeros(2, {device = "cuda"}) end},
      {"rand", function() return nn.rand(2, {device = "cuda"}) end},
      {"full", function() return nn.full(2, 7, {device = "cuda"}) end},
      {"to", function() return nn.tensor({1, 2}, {device = "cuda"}) end},
      {"to", function() return nn.Linear(2, 2):to("cuda") end},
      {"cuda.synchronize", function() nn.cuda.synchronize() end},
      {"cuda.get_device_name", function() return nn.cuda.get_device_name() end},
      {"cuda.current_device", function() return nn.cuda.current_device() end},
    } do
      expect_error(case[2], case[1], "cuda is not available", fragment)
    end
    expect_error(function() nn.cuda.get_device_name(1) end, "device 1 does not exist")
  end)

  it("a script's --device cuda is a usage error that says why", function()
    local out, ok = support.nnlua_output(
      [[arg = {[0] = "scripts/xor.lua", "--device", "cuda"}; dofile(os.getenv("NN_ROOT") .. "/scripts/xor.lua")]])
    assert.is_false(ok)
    assert.is_truthy(out:find("--device cuda: cuda is not available", 1, true), out)
    local bad = support.nnlua_output(
      [[arg = {[0] = "scripts/xor.lua", "--device", "gpu"}; dofile(os.getenv("NN_ROOT") .. "/scripts/xor.lua")]])
    assert.is_truthy(bad:find("--device needs cpu or cuda, got 'gpu'", 1, true), bad)
  end)

  it("nn.load(path, {device = 'cuda'}) says why and leaves the file alone", function()
    local dir = support.scratch_dir()
    local path = dir .. "/w.safetensors"
    nn.save(path, {w = nn.ones(2)})
    expect_error(function() return nn.load(path, {device = "cuda"}) end, "load", path, "cuda is not available")
    expect_error(function() return nn.load(path, {device = "gpu"}) end, "load: unknown device gpu")
    expect_error(function() return nn.load(path, {devise = "cuda"}) end, "load: unknown option 'devise'")
    assert.are.equal(1, nn.load(path).w[1]:item())
    os.execute("rm -rf " .. dir)
  end)
end)

describe("finding the CUDA backend", function()
  it("NN_CUDA_LIBRARY naming a missing file", function()
    local out = reason_with({NN_CUDA_LIBRARY = "/nonexistent/libnn_cuda.so"})
    assert.is_truthy(out:find("false\tcannot load /nonexistent/libnn_cuda.so", 1, true), out)
  end)

  it("NN_CUDA_LIBRARY naming a file that is not a library", function()
    local out = reason_with({NN_CUDA_LIBRARY = os.getenv("NN_ROOT") .. "/README.md"})
    assert.is_truthy(out:find("false\tcannot load " .. os.getenv("NN_ROOT") .. "/README.md", 1, true), out)
  end)

  it("NN_CUDA_LIBRARY naming a library that is not a backend", function()
    local lib = build_dir .. "/nn.so"
    local out = reason_with({NN_CUDA_LIBRARY = lib})
    assert.is_truthy(out:find(lib .. " is not an nnlua CUDA backend (it has no nn_cuda_backend_open)", 1, true), out)
  end)

  it("a library the backend needs is missing (cuBLAS)", function()
    if not built then return end
    -- the backend as a machine without cuBLAS sees it: the same file, asking
    -- for a cuBLAS of another version (a name of the same length)
    local bytes = assert(support.read(build_dir .. "/libnn_cuda.so"))
    local renamed = bytes:gsub("libcublas%.so%.%d+", function(name)
      return (name:gsub("%d+$", function(v) return ("9"):rep(#v) end))
    end)
    assert.are_not.equal(bytes, renamed)
    local dir = support.scratch_dir()
    support.write(dir .. "/libnn_cuda.so", renamed)
    local out = reason_with({NN_CUDA_LIBRARY = dir .. "/libnn_cuda.so"})
    os.execute("rm -rf " .. dir)
    assert.is_truthy(out:find("false\tcannot load " .. dir .. "/libnn_cuda.so: libcublas.so.99", 1, true), out)
    assert.is_truthy(out:find("cannot open shared object file", 1, true), out)
  end)

  it("the test device opens only when a test asks for it", function()
    local out = reason_with({NN_CUDA_LIBRARY = fake, NN_FAKE_CUDA = false})
    assert.is_truthy(out:find("false\tthis is nnlua's fake CUDA device for its own tests", 1, true), out)
    assert.is_truthy(out:find("NN_FAKE_CUDA=1", 1, true), out)
    out = reason_with({NN_CUDA_LIBRARY = fake, NN_FAKE_CUDA = "1"})
    assert.are.equal("true\tnil\n", out)
  end)

  it("beside the program that holds the engine, then where it is installed", function()
    local out = reason_with({NN_CUDA_LIBRARY = false})
    if built then
      -- build/nnlua finds build/libnn_cuda.so
      assert.is_falsy(out:find("not found", 1, true), out)
      -- a copy of nnlua elsewhere finds none (nothing is installed here)
      local dir = support.scratch_dir()
      os.execute("cp " .. os.getenv("NNLUA") .. " " .. dir .. "/nnlua")
      local p = io.popen("env -u NN_CUDA_LIBRARY " .. dir .. "/nnlua -e 'print(nn.cuda.why_unavailable())' 2>&1")
      local moved = p:read("a")
      p:close()
      os.execute("rm -rf " .. dir)
      if not io.open("/usr/local/lib/lua/5.4/libnn_cuda.so") then
        assert.is_truthy(moved:find("libnn_cuda.so, nnlua's CUDA backend, was not found (looked in "
          .. dir .. "/ and ", 1, true), moved)
      end
    else
      assert.is_truthy(out:find("no CUDA backend", 1, true), out)
    end
  end)
end)

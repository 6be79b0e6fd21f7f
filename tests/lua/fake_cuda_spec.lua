-- fake_cuda_spec.lua: tensors, modules, files and memory on "cuda", run on
-- the test device (tests/c/fake_cuda.c: host memory loaded exactly as
-- libnn_cuda.so is; ctest sets NN_CUDA_LIBRARY and NN_FAKE_CUDA=1 for this
-- spec). Everything here holds on a GPU too; what needs a real one (the
-- kernels' speed, cuBLAS) is in tests/gpu/.
local nn = require "nn"
local support = dofile(os.getenv("NN_ROOT") .. "/tests/lua/support.lua")
local expect_error, flat = support.expect_error, support.flat
local reference = dofile(os.getenv("NN_ROOT") .. "/tests/fixtures/cuda_print_reference.lua")

-- A child nnlua on the test device, with more settings of it.
local function on_test_device(code, env)
  env = env or {}
  env.NN_CUDA_LIBRARY = os.getenv("NN_FAKE_CUDA_LIBRARY")
  env.NN_FAKE_CUDA = "1"
  return support.nnlua_output(code, env)
end

describe("the test device", function()
  it("is available as cuda and says it is no GPU", function()
    assert.is_true(nn.cuda.is_available(), nn.cuda.why_unavailable())
    assert.is_nil(nn.cuda.why_unavailable())
    assert.are.equal(1, nn.cuda.device_count())
    assert.are.equal(0, nn.cuda.current_device())
    assert.is_truthy(nn.cuda.get_device_name():find("not a GPU", 1, true))
    assert.are.equal(nn.cuda.get_device_name(), nn.cuda.get_device_name(0))
    assert.are.equal(nn.cuda.get_device_name(), nn.cuda.get_device_name("cuda:0"))
    nn.cuda.synchronize()
  end)
end)

describe("tensors on cuda", function()
  it("move both ways with their values", function()
    for _, case in ipairs {
      {{{1.5, -2}, {3, 4}}, "float32"},
      {{1e300, -1e-300, 0.1}, "float64"},
      {{math.maxinteger, math.mininteger, 2 ^ 53 + 1}, "int64"},
      {{true, false, true}, "bool"},
    } do
      local x = nn.tensor(case[1], {dtype = case[2]})
      local y = x:to("cuda")
      assert.are.equal("cuda", y.device)
      assert.is_true(y.is_cuda)
      assert.is_false(x.is_cuda)
      assert.are.equal(case[2], y.dtype)
      assert.are.same(x:size(), y:size())
      local back = y:cpu()
      assert.are.equal("cpu", back.device)
      assert.are.same(x:totable(), back:totable())
      assert.are.same(x:totable(), y:totable()) -- totable waits for the device and copies
    end
    local x = nn.tensor({1, 2})
    assert.are.same({1, 2}, x:to("cuda:0"):totable())
    assert.are.same({1, 2}, x:cuda():cuda():totable())
    assert.are.same({1, 2}, nn.tensor(x:cuda()):cpu():totable()) -- a copy stays on its device
    assert.are.equal("cuda", nn.tensor(x:cuda()).device)
    assert.are.equal("cpu", nn.tensor(x:cuda(), {device = "cpu"}).device)
  end)

  it("are made on the device by every constructor that takes a device", function()
    local made = {
      nn.tensor({{1, 2}, {3, 4}}, {device = "cuda"}),
      nn.tensor(7, {device = "cuda", dtype = "int64"}),
      nn.zeros(2, 2, {device = "cuda"}),
      nn.ones(3, {device = "cuda", dtype = "float64"}),
      nn.full({2}, 3.5, {device = "cuda"}),
      nn.arange(4, {device = "cuda"}),
      nn.eye(2, {device = "cuda"}),
    }
    for _, t in ipairs(made) do assert.are.equal("cuda", t.device) end
    assert.are.same({{1, 2}, {3, 4}}, made[1]:totable())
    assert.are.equal(7, made[2]:item())
    assert.are.same({3.5, 3.5}, made[5]:totable())
    assert.are.same({0, 1, 2, 3}, made[6]:totable())
    assert.are.same({{1, 0}, {0, 1}}, made[7]:totable())
  end)

  it("strided and converted copies stay right on and off the device", function()
    local m = nn.tensor({{1, 2, 3}, {4, 5, 6}})
    assert.are.same({{1, 4}, {2, 5}, {3, 6}}, m:t():cuda():totable())
    local d = m:cuda()
    assert.are.same({{1, 4}, {2, 5}, {3, 6}}, d:t():cpu():totable())
    assert.are.same({1, 4, 2, 5, 3, 6}, flat(d:t():contiguous():cpu()))
    assert.are.same({2, 5}, d:select(2, 2):totable())
    assert.are.equal("float64", d:double().dtype)
    assert.are.equal("cuda", d:double().device)
    assert.are.same({{1, 2, 3}, {4, 5, 6}}, d:to("int64"):totable())
  end)

  it("take in-place writes: fill_, zero_, index assignment, copy_ from the host", function()
    local t = nn.zeros(2, 3, {device = "cuda"})
    t:fill_(2)
    t[1] = 5
    assert.are.same({{5, 5, 5}, {2, 2, 2}}, t:totable())
    t:copy_(nn.tensor({7, 8, 9})) -- broadcast over the rows, from the host
    assert.are.same({{7, 8, 9}, {7, 8, 9}}, t:totable())
    t:narrow(2, 2, 2):copy_(nn.tensor({{1, 2}, {3, 4}}, {dtype = "int64"}))
    assert.are.same({{7, 1, 2}, {7, 3, 4}}, t:totable())
    t:zero_()
    assert.are.same({{0, 0, 0}, {0, 0, 0}}, t:totable())
    local host = nn.zeros(3)
    host:copy_(nn.tensor({4, 5, 6}, {device = "cuda"})) -- and to the host
    assert.are.same({4, 5, 6}, host:totable())
  end)

  it("give item() and print as PyTorch prints CUDA tensors", function()
    assert.are.equal(2.5, nn.tensor(2.5, {device = "cuda"}):item())
    assert.is_true(nn.tensor(true, {device = "cuda"}):item())
    for _, case in ipairs(reference) do
      local t
      if case.lua then
        t = load("local nn = ...; return " .. case.lua)(nn)
      else
        t = nn.tensor(case.values, {dtype = case.dtype})
        if case.dtype == "bool" then t = nn.tensor(case.values):ne(0) end
        t = t:view(case.shape)
      end
      if case.how == "requires_grad" then
        t = t:cuda():requires_grad_()
      elseif case.how == "grad_fn" then
        t = t:requires_grad_():cuda()
      else
        t = t:cuda()
      end
      assert.are.equal(case.printed, tostring(t), case.name)
    end
  end)

  it("carry gradients across devices", function()
    local x = nn.tensor({1, 2, 3}, {requires_grad = true})
    local y = x:cuda()
    assert.are.equal("ToCopyBackward0", y.grad_fn)
    y:cpu():sum():backward()
    assert.are.equal("cpu", x.grad.device)
    assert.are.same({1, 1, 1}, x.grad:totable())
    local leaf = nn.tensor({4, 5}, {device = "cuda", requires_grad = true})
    ;(leaf:cpu() * 3):sum():backward()
    assert.are.equal("cuda", leaf.grad.device)
    assert.are.same({3, 3}, leaf.grad:totable())
    expect_error(function() leaf.grad = nn.zeros(2) end, "grad", "on cpu", "on cuda")
  end)

  it("refuse mixed devices naming both", function()
    local a, b = nn.ones(2, {device = "cuda"}), nn.ones(2)
    expect_error(function() return a + b end, "add", "different devices (cuda and cpu)")
    expect_error(function() return b * a end, "mul", "different devices (cpu and cuda)")
    expect_error(function() return a:matmul(b) end, "matmul", "different devices")
    expect_error(function() return nn.F.mse_loss(a, b) end, "mse_loss", "different devices")
  end)

  it("compute every op on the device: results and gradients stay there", function()
    local x = nn.tensor({{0.5, -1}, {2, 0.25}}, {device = "cuda", requires_grad = true})
    local w = nn.tensor({{1, 2}, {3, 4}}, {device = "cuda", requires_grad = true})
    local y = ((x:matmul(w) + 1):sigmoid() * x:exp()):softmax(2):log():sum()
    assert.are.equal("cuda", y.device)
    y:backward()
    assert.are.equal("cuda", x.grad.device)
    assert.are.equal("cuda", w.grad.device)
    local cx = x:detach():cpu():requires_grad_()
    local cw = w:detach():cpu():requires_grad_()
    local cy = ((cx:matmul(cw) + 1):sigmoid() * cx:exp()):softmax(2):log():sum()
    cy:backward()
    assert.are.equal(cy:item(), y:item())
    assert.are.same(cx.grad:totable(), x.grad:cpu():totable())
    assert.are.same(cw.grad:totable(), w.grad:totable())
  end)
end)

describe("scripts on cuda", function()
  local function xor(device)
    return on_test_device(string.format(
      [[arg = {[0] = "scripts/xor.lua", "--device", %q}; dofile(os.getenv("NN_ROOT") .. "/scripts/xor.lua")]],
      device))
  end

  it("scripts/xor.lua --device cuda trains on the device and prints the cpu run's numbers", function()
    -- the costs printed every 100 epochs (the final tensors print their device)
    local function costs(out)
      local lines = {}
      for line in out:gmatch("[^\n]+") do
        if line:match("^%d+\t") then lines[#lines + 1] = line end
      end
      return lines
    end
    local on_cuda, ok = xor("cuda")
    assert.is_true(ok, on_cuda)
    assert.is_truthy(on_cuda:find("device='cuda:0'", 1, true), on_cuda)
    local got, want = costs(on_cuda), costs(xor("cpu"))
    assert.are.equal(101, #want)
    assert.are.same(want, got)
  end)

  it("scripts/xor.lua picks cuda by itself where it is available, as the seed does", function()
    local out, ok = on_test_device(
      [[arg = {[0] = "scripts/xor.lua"}; dofile(os.getenv("NN_ROOT") .. "/scripts/xor.lua")]])
    assert.is_true(ok, out)
    assert.is_truthy(out:find("device='cuda:0'", 1, true), out)
  end)
end)

-- The CUDA backend before its kernels: memory, transfers, copy and fill
-- only (NN_FAKE_CUDA_KERNELS=none; clone, to, and arange, made on the host,
-- still work). Every op then refuses by name; none
-- computes on the CPU instead.
describe("a device without kernels", function()
  it("refuses every op by name", function()
    local out = on_test_device([[
      local a = nn.tensor({{0.5, 0.25}, {0.75, 1}}, {device = "cuda", requires_grad = true})
      local b = nn.tensor({{1, 2}, {3, 4}}, {device = "cuda"})
      local labels = nn.tensor({1, 2}, {dtype = "int64", device = "cuda"})
      local ops = {
        add = function() return a + b end, sub = function() return a - 1 end,
        mul = function() return 2 * a end, div = function() return a / b end,
        pow = function() return a ^ 2 end, neg = function() return -a end,
        exp = function() return a:exp() end, log = function() return a:log() end,
        sqrt = function() return a:sqrt() end, abs = function() return a:abs() end,
        clamp = function() return a:clamp(0, 1) end, gt = function() return a:gt(b) end,
        eq = function() return a:eq(0.5) end, maximum = function() return a:maximum(b) end,
        sigmoid = function() return a:sigmoid() end, tanh = function() return a:tanh() end,
        relu = function() return a:relu() end, gelu = function() return nn.F.gelu(a) end,
        softmax = function() return a:softmax(2) end,
        log_softmax = function() return a:log_softmax(2) end,
        sum = function() return a:sum() end, mean = function() return a:mean(1) end,
        max = function() return a:max() end, argmax = function() return a:argmax(2) end,
        norm = function() return a:norm() end, matmul = function() return a:matmul(b) end,
        linear = function() return nn.F.linear(a, b) end,
        mse_loss = function() return nn.F.mse_loss(a, b) end,
        binary_cross_entropy = function() return nn.F.binary_cross_entropy(a, a:detach()) end,
        cross_entropy = function() return nn.F.cross_entropy(a, labels) end,
        uniform_ = function() return nn.rand(3, {device = "cuda"}) end,
        normal_ = function() return nn.randn(3, {device = "cuda"}) end,
        sgd = function()
          a.grad = nn.ones(2, 2, {device = "cuda"})
          return nn.optim.SGD({a}, {lr = 0.1}):step()
        end,
        adam = function()
          a.grad = nn.ones(2, 2, {device = "cuda"})
          return nn.optim.Adam({a}):step()
        end,
      }
      local names = {}
      for name in pairs(ops) do names[#names + 1] = name end
      table.sort(names)
      for _, name in ipairs(names) do
        local ok, err = pcall(ops[name])
        print(name, ok and "computed" or (tostring(err):match("[%w_]+: not implemented for cuda") or tostring(err)))
      end]], {NN_FAKE_CUDA_KERNELS = "none"})
    local n = 0
    for line in out:gmatch("[^\n]+") do
      n = n + 1
      local name, what = line:match("^(%S+)\t(.*)$")
      assert.is_truthy(what and what:find(": not implemented for cuda$"), line)
    end
    assert.is_true(n >= 32, out)
  end)
end)

describe("modules on cuda", function()
  local function model()
    nn.manual_seed(3)
    return nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Sigmoid(), nn.Linear(4, 1))
  end

  it("m:to(device) moves parameters in place, their gradients and the buffers", function()
    local m, reference_model = model(), model()
    local params = m:parameters()
    local loss = m(nn.rand(5, 3)):sum()
    loss:backward()
    local grads = {}
    for i, p in ipairs(params) do grads[i] = p.grad:totable() end
    assert.are.equal(m, m:to("cuda"))
    for i, p in ipairs(m:parameters()) do
      assert.are.equal(params[i], p) -- the same tensors: an optimizer holding them still does
      assert.are.equal("cuda", p.device)
      assert.is_true(p.requires_grad)
      assert.are.equal("cuda", p.grad.device)
      assert.are.same(grads[i], p.grad:totable())
    end
    assert.are.equal("cuda", m[2].running_mean.device)
    assert.are.equal("cuda", m[2].num_batches_tracked.device)
    m:cpu()
    local ref = reference_model:state_dict()
    for name, t in pairs(m:state_dict()) do
      assert.are.equal("cpu", t.device)
      if name:find("running") or name:find("num_batches") then
        assert.are_not.same(ref[name]:totable(), t:totable(), name) -- the forward pass updated them
      else
        assert.are.same(ref[name]:totable(), t:totable(), name)
      end
    end
    assert.is_truthy(tostring(m:cuda()):find("(1): Linear(in_features=3, out_features=4", 1, true))
  end)

  it("a weight shared by two modules stays shared", function()
    local a, b = nn.Linear(2, 2), nn.Linear(2, 2)
    b.weight = a.weight
    local seq = nn.Sequential(a, b):to("cuda")
    assert.are.equal(seq[1].weight, seq[2].weight)
    assert.are.equal("cuda", seq[2].weight.device)
  end)

  it("an optimizer's state follows its parameters' device", function()
    -- the same two steps, one model kept on the CPU, the other's optimizer
    -- state loaded onto cuda and its model moved there and back between them
    local function two_steps(moving)
      local m = model()
      local opt = nn.optim.SGD(m:parameters(), {lr = 0.1, momentum = 0.9})
      local x = nn.rand(6, 3)
      opt:zero_grad(); m(x):sum():backward(); opt:step()
      if moving then
        m:to("cuda")
        opt:load_state_dict(opt:state_dict()) -- state is placed on the parameters' device
        assert.are.equal("cuda", opt.state[1][1].momentum_buffer.device)
        m:to("cpu")
      end
      opt:zero_grad(); m(x):sum():backward(); opt:step()
      assert.are.equal("cpu", opt.state[1][1].momentum_buffer.device)
      return m:state_dict()
    end
    local kept, moved = two_steps(false), two_steps(true)
    for name, t in pairs(kept) do assert.are.same(t:totable(), moved[name]:totable(), name) end
  end)
end)

describe("files and cuda", function()
  local dir
  setup(function() dir = support.scratch_dir() end)
  teardown(function() os.execute("rm -rf " .. dir) end)

  it("nn.save of CUDA tensors writes a file that loads where there is no GPU", function()
    nn.manual_seed(1)
    local net = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1)):to("cuda")
    local path = dir .. "/net.safetensors"
    nn.save(path, net)
    local ckpt = dir .. "/ckpt.safetensors"
    nn.save(ckpt, {w = nn.tensor({{1, 2}, {3, 4}}, {device = "cuda"}), step = 3})
    -- a child process that has no CUDA at all
    local out = support.nnlua_output(string.format([[
      assert(not nn.cuda.is_available())
      local sd = nn.load(%q)
      local c = nn.load(%q)
      print(sd["0.weight"].device, sd["2.bias"]:size(1), c.w.device, c.w[2][1]:item(), c.step)]], path, ckpt),
      {NN_CUDA_LIBRARY = "/nonexistent", NN_FAKE_CUDA = false})
    assert.are.equal("cpu\t1\tcpu\t3.0\t3\n", out)
    local sd = nn.load(path)
    for name, t in pairs(net:state_dict()) do assert.are.same(t:totable(), sd[name]:totable(), name) end
  end)

  it("nn.load(path, {device = 'cuda'}) places every tensor", function()
    local path = dir .. "/t.safetensors"
    nn.save(path, {a = nn.ones(2), nested = {b = nn.zeros(1, {dtype = "int64"})}})
    local v = nn.load(path, {device = "cuda"})
    assert.are.equal("cuda", v.a.device)
    assert.are.equal("cuda", v.nested.b.device)
    assert.are.equal("int64", v.nested.b.dtype)
    assert.are.equal("cpu", nn.load(path, {device = "cpu"}).a.device)
    local saved = dir .. "/linear.safetensors"
    nn.save(saved, nn.Linear(2, 1))
    local net = nn.Linear(2, 1):to("cuda")
    net:load_state_dict(nn.load(saved, {device = "cuda"}))
    assert.are.equal("cuda", net.weight.device)
    assert.are.same(nn.load(saved).weight:totable(), net.weight:totable())
  end)
end)

describe("cuda memory", function()
  it("memory_allocated, memory_reserved and empty_cache", function()
    collectgarbage(); collectgarbage()
    nn.cuda.empty_cache()
    local base = nn.cuda.memory_allocated()
    assert.are.equal(base, nn.cuda.memory_reserved())
    local t = nn.zeros(1000, {device = "cuda"}) -- 4000 bytes, a 4 KiB block
    assert.are.equal(base + 4096, nn.cuda.memory_allocated())
    assert.are.equal(base + 4096, nn.cuda.memory_reserved())
    t = nil -- luacheck: ignore
    collectgarbage(); collectgarbage()
    assert.are.equal(base, nn.cuda.memory_allocated())
    assert.are.equal(base + 4096, nn.cuda.memory_reserved()) -- kept for reuse
    nn.cuda.empty_cache()
    assert.are.equal(base, nn.cuda.memory_reserved())
    expect_error(function() nn.cuda.memory_allocated(2) end, "device 2 does not exist")
  end)

  it("a loop in steady state asks the device for no memory", function()
    local function device_allocations(steps)
      local stats = os.tmpname()
      support.nnlua_output(string.format([[
        local x = nn.rand(64, 32)
        for step = 1, %d do
          local d = x:cuda()
          local e = d:t():contiguous()
          local f = e:double():cpu()
          collectgarbage()
        end]], steps), {NN_CUDA_LIBRARY = os.getenv("NN_FAKE_CUDA_LIBRARY"), NN_FAKE_CUDA = "1",
                        NN_FAKE_CUDA_STATS = stats})
      local counts = support.read(stats)
      os.remove(stats)
      return tonumber(counts:match("^(%d+)"))
    end
    local few, many = device_allocations(3), device_allocations(60)
    assert.is_true(few > 0)
    assert.are.equal(few, many)
  end)

  it("Lua's collector is paced by device memory", function()
    -- 200 garbage copies of 4 MiB made on the device alone (no host memory,
    -- almost no Lua memory) on a device of 64 MiB: only a collector that
    -- counts device memory frees them in time
    local out, ok = on_test_device([[
      local d = nn.zeros(1024 * 1024, {device = "cuda"})
      for i = 1, 200 do local copy = d:clone() end
      print("done", nn.cuda.memory_reserved() <= 64 * 2^20)]],
      {NN_FAKE_CUDA_MEMORY_LIMIT = tostring(64 * 1024 * 1024)})
    assert.is_true(ok, out)
    assert.are.equal("done\ttrue\n", out)
  end)

  it("running out of device memory is a Lua error and the process lives", function()
    local out, ok = on_test_device([[
      local ok, err = pcall(nn.zeros, 8 * 1024 * 1024, {device = "cuda"})
      print(ok, err)
      local small = nn.ones(4, {device = "cuda"})
      print("alive", small:cpu():sum():item())]],
      {NN_FAKE_CUDA_MEMORY_LIMIT = tostring(16 * 1024 * 1024)})
    assert.is_true(ok, out)
    assert.is_truthy(out:find("false\t[^\n]*out of memory on cuda: tried to allocate 32.00 MiB"), out)
    assert.is_truthy(out:find("fake cudaMalloc: out of memory", 1, true), out)
    assert.is_truthy(out:find("alive\t4.0", 1, true), out)
  end)

  it("a full device gets the cache back and one more try", function()
    local out, ok = on_test_device([[
      local blocks = {}
      for i = 1, 3 do blocks[i] = nn.zeros(512 * 1024, {device = "cuda"}) end -- 3 x 2 MiB
      blocks = nil
      collectgarbage(); collectgarbage()
      print(nn.cuda.memory_allocated(), nn.cuda.memory_reserved())
      local big = nn.zeros(1024 * 1024, {device = "cuda"}) -- 4 MiB: fits once the cache is gone
      print(nn.cuda.memory_allocated(), nn.cuda.memory_reserved())]],
      {NN_FAKE_CUDA_MEMORY_LIMIT = tostring(8 * 1024 * 1024)})
    assert.is_true(ok, out)
    assert.are.equal(string.format("0\t%d\n%d\t%d\n", 6 * 2^20, 4 * 2^20, 4 * 2^20), out)
  end)
end)

describe("asynchronous faults", function()
  -- NN_FAKE_CUDA_FAULT=1: the first wait for the device finds that a kernel
  -- failed, as a CUDA illegal address would be found
  for _, case in ipairs {
    {"nn.cuda.synchronize()", "nn.cuda.synchronize()"},
    {"item", "print(t[1]:item())"},
    {"print", "print(t)"},
    {"totable", "print(t:totable())"},
    {"a copy to the host", "print(t:cpu())"},
  } do
    it("surface at the next wait as a Lua error: " .. case[1], function()
      local out, ok = on_test_device(
        "local t = nn.ones(3, {device = 'cuda'})\n" ..
        "local ok, err = pcall(function() " .. case[2] .. " end)\n" ..
        "print(ok, err)\nprint('alive')", {NN_FAKE_CUDA_FAULT = "1"})
      assert.is_true(ok, out)
      assert.is_truthy(out:find("false\t[^\n]*cuda: a kernel failed: fake asynchronous fault"), out)
      assert.is_truthy(out:find("alive\n", 1, true), out)
    end)
  end
end)

-- The pool (engine/src/cpu/parallel.c): every kernel family it runs gives
-- the same values at one and at two threads (elementwise ops and their
-- gradients, activations, copies and fills, reductions along a dim,
-- softmax, pooling, every optimizer), at lengths around the pieces' grain
-- (32k elements: two grains before anything is cut) and on views that are
-- not contiguous; nn.set_num_threads(1) starts no thread, two start one.
-- The pool's own checks (coverage, fork): tests/c/test_parallel.c.
local nn = require "nn"
local support = dofile((os.getenv("NN_ROOT") or ".") .. "/tests/lua/support.lua")

local GRAIN = 32 * 1024
-- around the boundaries: below two grains (one thread), just at and above,
-- an odd length that leaves a short last piece, and a large one
local LENGTHS = {2 * GRAIN - 1, 2 * GRAIN, 2 * GRAIN + 1, 3 * GRAIN + 7, 400003}

-- fn() at one thread and at two; each of its results must match
-- element for element (no NaN among them: NaN ~= NaN)
local function same_at_both(what, fn)
  local saved = nn.get_num_threads()
  nn.set_num_threads(1)
  local one = {fn()}
  nn.set_num_threads(2)
  local two = {fn()}
  nn.set_num_threads(saved)
  assert.are.equal(#one, #two, what)
  for i = 1, #one do
    assert.are.same(one[i]:size(), two[i]:size(), what)
    local differing = one[i]:ne(two[i]):sum():item()
    assert(differing == 0, string.format("%s, result %d: %d elements differ between 1 and 2 threads",
      what, i, differing))
  end
end

local function data(n, seed)
  nn.manual_seed(seed)
  return nn.randn(n)
end

-- the parameter start after `steps` steps of nn.optim[name] with gradient g
local function stepped(name, opts, start, g, steps)
  local p = start:requires_grad_()
  local opt = nn.optim[name]({p}, opts)
  for _ = 1, steps do
    p.grad = g * 1
    opt:step()
  end
  return p:detach()
end

describe("at one and two threads, the same values", function()
  it("elementwise ops, contiguous, at every length around the grain", function()
    for _, n in ipairs(LENGTHS) do
      local x, y = data(n, 1), data(n, 2)
      same_at_both("binary " .. n, function()
        return x + y, x * y, x - y, x / (y:abs() + 1), x:pow(2), x * 3, 2 - x, x:gt(y):float()
      end)
      same_at_both("unary " .. n, function()
        return x:sigmoid(), x:relu(), x:exp(), x:tanh(), x:abs():sqrt(), x:abs():log1p(),
               x:clamp(-0.5, 0.5), x:neg(), x:double(), x:long():float()
      end)
      same_at_both("activations " .. n, function()
        return nn.F.gelu(x), nn.F.silu(x), nn.F.elu(x), nn.F.leaky_relu(x, 0.1), nn.F.softplus(x)
      end)
      same_at_both("special functions " .. n, function()
        return x:tan(), (x * 1e6):tan(), x:atan(), x:atan2(y), x:erf(), x:tanh():erfinv()
      end)
    end
  end)

  it("elementwise ops on views that are not contiguous, and broadcasts", function()
    nn.manual_seed(3)
    local a = nn.randn(700, 300)
    local b = nn.randn(300, 700)
    local row = nn.randn(300)
    same_at_both("views", function()
      local at = a:t()                     -- 300 x 700, strides (1, 300)
      local half = a:narrow(2, 11, 150)    -- rows with gaps between them
      return at + b, at:sigmoid(), half * 2, half:exp(), a + row, a:t():contiguous(),
             b:t():relu(), a:expand(2, 700, 300):contiguous()
    end)
  end)

  it("gradients of elementwise ops and activations", function()
    for _, n in ipairs({2 * GRAIN + 1, 300001}) do
      nn.manual_seed(4)
      local x0, g = nn.randn(n), nn.randn(n)
      same_at_both("backward " .. n, function()
        local x = x0:clone():requires_grad_()
        local outs = {x:sigmoid(), x:relu(), x:tanh(), nn.F.gelu(x), nn.F.silu(x), x:exp(),
                      x:clamp(-1, 1), x:pow(3), nn.F.elu(x)}
        local grads = {}
        for i, out in ipairs(outs) do
          x.grad = nil
          out:backward(g)
          grads[i] = x.grad:clone()
        end
        return table.unpack(grads)
      end)
    end
  end)

  it("gradients summed into a broadcast operand (never cut: one sum per element)", function()
    nn.manual_seed(11)
    local a0, r0, c0, g = nn.randn(1000, 300), nn.randn(300), nn.randn(1000, 1), nn.randn(1000, 300)
    same_at_both("broadcast gradients", function()
      local a, r, c = a0:clone():requires_grad_(), r0:clone():requires_grad_(), c0:clone():requires_grad_()
      ;((a + r + c) * g):sum():backward()
      local e = r0:clone():requires_grad_()
      e:expand(1000, 300):backward(g)
      return a.grad, r.grad, c.grad, e.grad
    end)
  end)

  it("copies and fills, zero_grad among them", function()
    for _, n in ipairs(LENGTHS) do
      local x = data(n, 5)
      same_at_both("fill " .. n, function()
        return x:clone():zero_(), x:clone():fill_(0.25), nn.zeros(n), nn.full({n}, 3), x:clone()
      end)
    end
    -- zero_grad's fill of one run is cut from four grains (NN_PARALLEL_PASS)
    for _, n in ipairs({4 * GRAIN - 1, 4 * GRAIN, 4 * GRAIN + 1}) do
      local x = data(n, 6)
      same_at_both("zero_ " .. n, function() return x:clone():zero_() end)
    end
    local model = nn.Linear(600, 500)
    same_at_both("zero_grad", function()
      model(nn.ones(4, 600)):sum():backward()
      model:zero_grad()
      return model.weight.grad or nn.zeros(1), model.bias.grad or nn.zeros(1)
    end)
  end)

  it("reductions along a dim, never splitting one sum", function()
    nn.manual_seed(6)
    for _, shape in ipairs({{4097, 33}, {33, 4097}, {1000, 300}, {7, 50, 601}}) do
      local x = nn.randn(table.unpack(shape))
      for d = 1, #shape do
        same_at_both("reductions over dim " .. d .. " of " .. table.concat(shape, "x"), function()
          local values, indices = x:max(d)
          return x:sum(d), x:mean(d), values, indices, x:min(d), x:norm(2, d), x:logsumexp(d),
                 (x * 0.1):prod(d), x:var(d), x:argmax(d)
        end)
      end
    end
    local x = nn.randn(1000, 300)
    same_at_both("sums over every dim (one sum: never cut)", function() return x:sum(), x:mean() end)
  end)

  it("softmax and log_softmax, forward and backward", function()
    nn.manual_seed(7)
    local x0, g = nn.randn(2000, 100), nn.randn(2000, 100)
    same_at_both("softmax", function()
      local results = {}
      for _, d in ipairs({1, 2}) do
        for _, f in ipairs({"softmax", "log_softmax"}) do
          local x = x0:clone():requires_grad_()
          local y = x[f](x, d)
          y:backward(g)
          results[#results + 1] = y:detach()
          results[#results + 1] = x.grad
        end
      end
      return table.unpack(results)
    end)
  end)

  it("pooling and batch normalisation", function()
    nn.manual_seed(8)
    local x0 = nn.randn(8, 16, 32, 32)
    local bn = nn.BatchNorm2d(16)
    same_at_both("pooling", function()
      local x = x0:clone():requires_grad_()
      local y = nn.F.max_pool2d(x, 2) + 0
      local z = nn.F.avg_pool2d(x, 2)
      local b = bn(x)
      ;(y:sum() + z:sum() + (b * b):sum()):backward()
      return y:detach(), z:detach(), b:detach(), x.grad
    end)
  end)

  it("convolution's patches: im2col and col2im split over planes", function()
    nn.manual_seed(9)
    local x0, w0 = nn.randn(16, 8, 20, 20), nn.randn(12, 8, 3, 3)
    for _, dtype in ipairs({"float32", "float64"}) do
      same_at_both("conv2d " .. dtype, function()
        local x, w = x0:to(dtype):requires_grad_(), w0:to(dtype):requires_grad_()
        local y = nn.F.conv2d(x, w, nil, {stride = {1, 2}, padding = 1})
        y:backward(y:detach():cos())
        return y:detach(), x.grad, w.grad
      end)
    end
  end)

  it("matrix products large enough for the pool (OpenBLAS never threads them itself)", function()
    nn.manual_seed(12)
    local a, wt, b = nn.randn(128, 3136), nn.randn(128, 3136), nn.randn(3136, 128)
    local g, cols = nn.randn(32, 60000), nn.randn(9, 60000)
    local sq, lhs = nn.randn(300, 300), nn.randn(288, 64)
    local rhs = nn.randn(64, 20000)
    same_at_both("products", function()
      return a:matmul(wt:t()), a:matmul(b), g:matmul(cols:t()), sq:matmul(sq), lhs:matmul(rhs),
             a:double():matmul(b:double()), b:t():matmul(a:t())
    end)
  end)

  it("a large product cut where the pieces' lines do not divide evenly: every element, any thread count", function()
    -- the Fashion-MNIST layer's weight gradient: 784 columns in four pieces
    -- of 192, 192, 192 and 208; 1000 in four of 240, 256, 256 and 248
    nn.manual_seed(14)
    local g1t, x = nn.randn(512, 128), nn.randn(128, 784)
    local a, b = nn.randn(300, 129), nn.randn(129, 1000)
    same_at_both("uneven pieces", function() return g1t:matmul(x), a:matmul(b) end)
    local saved = nn.get_num_threads()
    nn.set_num_threads(2)
    for _, pair in ipairs({{g1t, x}, {a, b}}) do
      local got, want = pair[1]:matmul(pair[2]), pair[1]:double():matmul(pair[2]:double())
      local err = (got:double() - want):abs():max():item()
      assert(err < 1e-3, "largest difference from the float64 product: " .. err)
    end
    nn.set_num_threads(saved)
  end)

  it("products of one row or one column (sgemv, cut by the shape): every element, any thread count", function()
    -- a batch of one through a layer of 2051 by 2049: x w^T, the input
    -- gradient g w (OpenBLAS's own threading of it gave other sums in two
    -- elements at two threads) and the weight gradient g^T x; w v, and
    -- w^T v, with bias and without
    nn.manual_seed(15)
    local x, w, g = nn.randn(1, 2049), nn.randn(2051, 2049), nn.randn(1, 2051)
    local v, u, bias = nn.randn(2049), nn.randn(2051), nn.randn(2051)
    same_at_both("one row or column", function()
      return x:matmul(w:t()), g:matmul(w), g:t():matmul(x), w:matmul(v), w:t():matmul(u),
             nn.F.linear(x, w, bias), nn.addmm(u:view(-1, 1), w, v:view(-1, 1))
    end)
  end)

  it("products of one row through sgemv's pieces: the float64 values, beta and alpha, NaN under beta 0", function()
    nn.manual_seed(17)
    local g, w, v = nn.randn(1, 2051), nn.randn(2051, 2049), nn.randn(2049, 1)
    local row_in, col_in = nn.randn(1, 2049), nn.randn(2051, 1)
    local nan_row, nan_col = nn.full({1, 2049}, 0 / 0), nn.full({2051, 1}, 0 / 0)
    local saved = nn.get_num_threads()
    for _, threads in ipairs({1, 2}) do
      nn.set_num_threads(threads)
      local cases = {
        {nn.addmm(row_in, g, w, {beta = 0.5, alpha = 2}), row_in:double() * 0.5 + g:double():matmul(w:double()) * 2},
        {nn.addmm(col_in, w, v, {beta = 0.5, alpha = 2}), col_in:double() * 0.5 + w:double():matmul(v:double()) * 2},
        {nn.addmm(nan_row, g, w, {beta = 0}), g:double():matmul(w:double())},
        {nn.addmm(nan_col, w, v, {beta = 0}), w:double():matmul(v:double())},
      }
      for i, case in ipairs(cases) do
        local err = (case[1]:double() - case[2]):abs():max():item()
        assert(err < 1e-2, string.format("%d thread(s), case %d: largest difference %g", threads, i, err))
      end
    end
    nn.set_num_threads(saved)
  end)

  it("a matrix times a column is the same sum as the row times the matrix's transpose", function()
    -- both sgemv over w where it lies (w v used to go to sgemm, which
    -- copied all of w at every call and summed in another order)
    nn.manual_seed(16)
    local w, v = nn.randn(2051, 2049), nn.randn(2049)
    for _, threads in ipairs({1, 2}) do
      local saved = nn.get_num_threads()
      nn.set_num_threads(threads)
      local column, row = w:matmul(v), v:view(1, -1):matmul(w:t()):view(-1)
      nn.set_num_threads(saved)
      assert.are.equal(0, column:ne(row):sum():item(), threads .. " thread(s)")
    end
  end)

  it("the CNN lesson's training step (scripts/cnn_fashion_mnist.lua's net)", function()
    local function step()
      nn.manual_seed(13)
      local model = nn.Sequential(
        nn.Conv2d(1, 32, 3, {padding = 1, bias = false}), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, {padding = 1, bias = false}), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(64 * 7 * 7, 128), nn.ReLU(), nn.Dropout(0.3), nn.Linear(128, 10))
      local optimizer = nn.optim.Adam(model:parameters(), {lr = 0.001})
      local x, labels = nn.rand(64, 1, 28, 28), {}
      for i = 1, 64 do labels[i] = (i * 7) % 10 + 1 end
      local y = nn.tensor(labels, {dtype = "int64"})
      local results = {}
      for _ = 1, 2 do
        optimizer:zero_grad()
        local loss = nn.CrossEntropyLoss()(model(x), y)
        loss:backward()
        optimizer:step()
        results[#results + 1] = loss:detach()
      end
      for _, p in ipairs(model:parameters()) do results[#results + 1] = p:detach():clone() end
      return table.unpack(results)
    end
    same_at_both("CNN step", step)
  end)

  it("SGD's step around four grains, where it is first cut", function()
    for _, n in ipairs({4 * GRAIN - 1, 4 * GRAIN, 4 * GRAIN + 17}) do
      local g = data(n, 11)
      for _, opts in ipairs({{lr = 0.1}, {lr = 0.1, momentum = 0.9}}) do
        same_at_both("SGD " .. n, function() return stepped("SGD", opts, data(n, 12), g, 2) end)
      end
    end
  end)

  it("every optimizer's step over a large parameter", function()
    local n = 300001
    local g = data(n, 9)
    local configs = {
      {"SGD", {lr = 0.1}}, {"SGD", {lr = 0.1, momentum = 0.9, nesterov = true, weight_decay = 0.01}},
      {"Adam", {lr = 0.01}}, {"Adam", {lr = 0.01, weight_decay = 0.1, amsgrad = true}},
      {"AdamW", {lr = 0.01}}, {"RMSprop", {lr = 0.01}}, {"RMSprop", {lr = 0.01, momentum = 0.5, centered = true}},
      {"Adagrad", {lr = 0.1}},
      {"Adadelta", {weight_decay = 0.1}}, {"Adamax", {lr = 0.01, maximize = true}}, {"NAdam", {lr = 0.01}},
      {"RAdam", {lr = 0.01}}, {"ASGD", {lr = 0.01, t0 = 1}}, {"Rprop", {lr = 0.01}},
    }
    for _, dtype in ipairs({"float32", "float64"}) do
      for _, c in ipairs(configs) do
        same_at_both(c[1] .. " " .. dtype, function()
          return stepped(c[1], c[2], data(n, 10):to(dtype), g:to(dtype), 3)
        end)
      end
    end
  end)
end)

describe("threads started, and the environment left as it was", function()
  local function threads_after(count)
    -- a fresh process: a product, elementwise ops and an optimizer step,
    -- all large enough for the pool
    local out, ok = support.nnlua_output(string.format([[
      nn.set_num_threads(%d)
      local a = nn.randn(512, 512)
      local p = nn.randn(400000):requires_grad_()
      local opt = nn.optim.Adam({p})
      p.grad = p:sigmoid() + a:matmul(a):view(-1):narrow(1, 1, 1):expand(400000)
      opt:step()
      print((p:sum():item() == p:sum():item()) and "ran" or "?")
      local maps = io.open("/proc/self/maps"):read("a")
      print(maps:find("openblas") and "shared" or "static")
      print("environment " .. tostring(os.getenv("OPENBLAS_NUM_THREADS")))
      for line in io.lines("/proc/self/status") do
        local n = line:match("^Threads:%%s*(%%d+)")
        if n then print("threads " .. n) end
      end]], count), {OPENBLAS_NUM_THREADS = false})
    assert(ok, out)
    -- the count was OpenBLAS's environment only while it started
    assert.truthy(out:find("environment nil", 1, true), out)
    assert.truthy(out:find("ran", 1, true), out)
    return tonumber(out:match("threads (%d+)")), out:match("shared") ~= nil
  end

  it("none for nn.set_num_threads(1); one beside the caller for two", function()
    if not io.open("/proc/self/status") then return end -- not Linux: nothing to count
    local one, shared = threads_after(1)
    -- a static OpenBLAS (tools/build_gpu.sh) starts its threads before main
    if not shared then return pending("OpenBLAS is linked statically") end
    assert.are.equal(1, one)
    assert.are.equal(2, (threads_after(2)))
  end)

  it("OpenBLAS's kernels chosen by what the processor can do, unless the user chose", function()
    -- Debian 12's OpenBLAS does not know newer models (Sapphire Rapids)
    -- and ran its SSE3 kernels there ("Prescott"), at a quarter of the
    -- speed: the engine names the kernels as OpenBLAS loads
    -- (engine/src/cpu/openblas_loader.c; lua/nnlua.c for a static one).
    local flags = {}
    for line in io.lines("/proc/cpuinfo") do
      local list = line:match("^flags%s*:%s*(.*)")
      if list then
        for flag in list:gmatch("%S+") do flags[flag] = true end
        break
      end
    end
    local expected
    if flags.avx512f and flags.avx512cd and flags.avx512bw and flags.avx512dq and flags.avx512vl
        and flags.fma then
      expected = "SkylakeX"
    elseif flags.avx2 and flags.fma then
      expected = "Haswell"
    end
    local code = [[
      local a = nn.rand(640, 640) -- large enough for OpenBLAS
      print(a:matmul(a):sum():item() > 0 and "ran" or "?")
      print("environment " .. tostring(os.getenv("OPENBLAS_CORETYPE")))
      local c = nn.config()
      print("config " .. c.blas_kernels .. " " .. c.cpu_capability .. " " .. c.threads)
      print(c.blas:find("OpenBLAS", 1, true) and "blas described" or c.blas)
      print(select(2, pcall(nn.config, 1)))]]
    local out, ok = support.nnlua_output(code, {OPENBLAS_CORETYPE = false, OPENBLAS_VERBOSE = "2"})
    assert(ok, out)
    assert.truthy(out:find("ran", 1, true), out)
    -- named for OpenBLAS's start only: programs this one starts see the user's environment
    assert.truthy(out:find("environment nil", 1, true), out)
    local core = out:match("Core: (%w+)")
    assert.is_not_nil(core, out)
    if expected then assert.are.equal(expected, core) end
    -- nn.config() tells the same, with the engine's own loops and the threads
    local kernels, capability, threads = out:match("config (%w+) (%w+) (%d+)")
    assert.are.equal(core, kernels)
    assert.truthy(({avx512 = true, avx2 = true, baseline = true})[capability], out)
    assert.truthy(tonumber(threads) >= 1, out)
    assert.truthy(out:find("blas described", 1, true), out)
    assert.truthy(out:find("config: takes no arguments, got 1", 1, true), out)
    -- the user's choice stands
    out, ok = support.nnlua_output(code, {OPENBLAS_CORETYPE = "Prescott", OPENBLAS_VERBOSE = "2"})
    assert(ok, out)
    assert.are.equal("Prescott", out:match("Core: (%w+)"))
    assert.truthy(out:find("environment Prescott", 1, true), out)
  end)

  it("a large product that is OpenBLAS's first use after nn.set_num_threads(2)", function()
    -- Every tensor below is under two grains, so the product's pieces are
    -- what loads OpenBLAS: lowering its count to one for them must not
    -- start it with no thread to take the second piece (the process
    -- waited for ever). timeout: that failure ends in status 124, not a hang.
    local code = [[
      nn.set_num_threads(2)
      nn.manual_seed(1)
      local a, b = nn.rand(128, 256), nn.rand(255, 256)
      local two = a:matmul(b:t())
      nn.set_num_threads(1)
      print(two:ne(a:matmul(b:t())):sum():item() == 0 and "same" or "differ")]]
    local out, status = support.run("timeout 120 " .. support.quote(assert(os.getenv("NNLUA"))) .. " -e "
      .. support.quote(code))
    assert.are.equal(0, status, out)
    assert.are.equal("same\n", out)
  end)
end)

-- issue 13's fused paths of the Transformer layer and the LSTM (values:
-- seq_fused_spec.lua)
describe("at one and two threads, the same values of the fused sequence paths", function()
  it("layer norm's fused front, forward and backward", function()
    nn.manual_seed(6)
    local x = nn.randn(300, 256):requires_grad_()
    local ln = nn.LayerNorm(256)
    local g = nn.randn(300, 256)
    same_at_both("layer norm", function()
      ln:zero_grad()
      x.grad = nil
      local y = ln(x)
      y:backward(g)
      return y, x.grad, ln.weight.grad, ln.bias.grad
    end)
  end)
  it("the LSTM's step kernels (rows cut among threads), forward and backward, odd sizes", function()
    for _, case in ipairs({{64, 256, 5}, {33, 70, 3}, {1, 9, 4}}) do
      local batch, hidden, steps = case[1], case[2], case[3]
      nn.manual_seed(1)
      local lstm = nn.LSTM(hidden, hidden, 2)
      local x = nn.randn(steps, batch, hidden):requires_grad_()
      local w = nn.randn(steps, batch, hidden)
      same_at_both("lstm " .. batch .. "x" .. hidden, function()
        lstm:zero_grad()
        x.grad = nil
        local out, state = lstm:forward(x)
        local loss = (out * w):sum() + state[2]:sum()
        loss:backward()
        return out, state[1], state[2], x.grad, lstm.weight_hh_l0.grad, lstm.weight_ih_l1.grad
      end)
    end
  end)
end)

-- Convolution, unfold/fold and pad: values and gradients against PyTorch
-- 1.13 (tests/fixtures/conv_reference.lua, written by
-- tests/fixtures/gen_conv.py) in float32 and float64, the modules' initial
-- weights after a seed and their printing, float64 gradient checks, the
-- batch split into chunks, and the errors misuse raises.
local nn = require "nn"
local support = dofile((os.getenv("NN_ROOT") or ".") .. "/tests/lua/support.lua")
local flat = support.flat
local expect_error = support.expect_error
local F = nn.F

local root = os.getenv("NN_ROOT") or "."
local reference = dofile(root .. "/tests/fixtures/conv_reference.lua")

local function tolerance(dtype) return dtype == "float64" and 1e-10 or 2e-5 end

local function assert_values(expected, t, tol, what)
  assert.are.same(expected.shape, t:size(), what .. ": shape")
  local got = flat(t)
  for i = 1, #expected.values do
    local e = expected.values[i]
    if math.abs(e - got[i]) > tol * math.max(1, math.abs(e)) then
      error(string.format("%s, element %d: expected %.17g, got %.17g", what, i, e, got[i]), 2)
    end
  end
end

local function tensor_of(entry, dtype)
  return nn.tensor(entry.values, {dtype = dtype}):view(entry.shape):detach():requires_grad_(true)
end

-- The Lua call of a fixture case, from its inputs.
local function call(case, ts)
  local o = case.options or {}
  if case.call == "conv2d" or case.call == "conv1d" or case.call == "conv_transpose2d" then
    return F[case.call](ts.x, ts.w, ts.b, o)
  elseif case.call == "Conv2d" or case.call == "Conv1d" then
    local args = {table.unpack(case.args)}
    args[#args + 1] = o
    local m = nn[case.call](table.unpack(args)):to(ts.x.dtype)
    m.weight, m.bias = ts.w, ts.b -- the stored weights, as tensors that keep their own grad
    return m(ts.x)
  elseif case.call == "unfold" then
    return F.unfold(ts.x, o.kernel_size, {dilation = o.dilation, padding = o.padding, stride = o.stride})
  elseif case.call == "fold" then
    return F.fold(ts.x, o.output_size, o.kernel_size, {dilation = o.dilation, padding = o.padding, stride = o.stride})
  elseif case.call == "pad" then
    return F.pad(ts.x, o.pad, o.mode, o.value)
  end
  error("unknown call " .. case.call)
end

local function check_case(case)
  for _, dtype in ipairs {"float32", "float64"} do
    local ts = {}
    for name, entry in pairs(case.inputs) do ts[name] = tensor_of(entry, dtype) end
    local y = call(case, ts)
    local expected = case.results[dtype]
    local what = case.name .. " (" .. dtype .. ")"
    assert_values(expected.y, y, tolerance(dtype), what)
    y:backward(nn.tensor(case.upstream.values, {dtype = dtype}):view(case.upstream.shape))
    for name, g in pairs(expected.grads) do
      assert_values(g, ts[name].grad, tolerance(dtype), what .. ", gradient of " .. name)
    end
  end
end

describe("against PyTorch 1.13", function()
  for _, group in ipairs {"conv", "modes", "patches", "pad"} do
    for _, case in ipairs(reference[group]) do
      it(group .. ": " .. case.name, function() check_case(case) end)
    end
  end
end)

describe("modules", function()
  it("draw PyTorch's initial weights after the same seed, with its state_dict keys", function()
    for _, case in ipairs(reference.init) do
      nn.manual_seed(case.seed)
      local args = {table.unpack(case.args)}
      args[#args + 1] = case.options or {}
      local m = nn[case.module](table.unpack(args))
      assert.are.same(case.weight.shape, m.weight:size())
      assert.are.same(case.weight.values, flat(m.weight), case.module .. " weight")
      if case.bias then
        assert.are.same(case.bias.values, flat(m.bias), case.module .. " bias")
      else
        assert.is_nil(m.bias)
      end
      local keys = {}
      for k in pairs(m:state_dict()) do keys[#keys + 1] = k end
      assert.are.same(case.keys, keys)
    end
  end)

  it("print as PyTorch's", function()
    for _, case in ipairs(reference.print) do
      local m = load("local nn = ...; return " .. case.lua)(nn)
      assert.are.equal(case.text, tostring(m), case.lua)
    end
  end)

  it("save and load their state", function()
    nn.manual_seed(3)
    local a, b = nn.Conv2d(2, 3, 3), nn.Conv2d(2, 3, 3)
    b:load_state_dict(a:state_dict())
    local x = nn.randn(1, 2, 5, 5)
    assert.are.same(flat(a(x)), flat(b(x)))
  end)

  it("train a Sequential with a convolution end to end", function()
    nn.manual_seed(1)
    local model = nn.Sequential(nn.Conv2d(1, 4, 3, {padding = 1}), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 25, 2))
    local x, y = nn.randn(8, 1, 5, 5), nn.tensor({1, 2, 1, 2, 1, 2, 1, 2}, {dtype = "int64"})
    local opt = nn.optim.SGD(model:parameters(), {lr = 0.1})
    local first, last
    for step = 1, 30 do
      opt:zero_grad()
      local loss = nn.F.cross_entropy(model(x), y)
      loss:backward()
      opt:step()
      first = first or loss:item()
      last = loss:item()
    end
    assert.is_true(last < first / 2, string.format("loss %g -> %g", first, last))
  end)
end)

describe("gradcheck in float64", function()
  local function leaf(...) return nn.randn(...):double():detach():requires_grad_(true) end
  it("conv2d with stride, padding, dilation and groups", function()
    nn.manual_seed(5)
    assert.is_true(nn.gradcheck(function(x, w, b)
      return F.conv2d(x, w, b, {stride = {2, 1}, padding = {1, 2}, dilation = {1, 2}, groups = 2})
    end, {leaf(2, 4, 6, 7), leaf(6, 2, 3, 2), leaf(6)}))
  end)
  it("conv2d 'same' and 1x1", function()
    nn.manual_seed(6)
    assert.is_true(nn.gradcheck(function(x, w) return F.conv2d(x, w, nil, {padding = "same"}) end,
      {leaf(1, 2, 5, 4), leaf(3, 2, 2, 3)}))
    assert.is_true(nn.gradcheck(function(x, w, b) return F.conv2d(x, w, b) end,
      {leaf(2, 3, 3, 4), leaf(2, 3, 1, 1), leaf(2)}))
  end)
  it("conv1d and the padding modes", function()
    nn.manual_seed(7)
    assert.is_true(nn.gradcheck(function(x, w, b) return F.conv1d(x, w, b, {stride = 2, padding = 1}) end,
      {leaf(2, 3, 9), leaf(4, 3, 3), leaf(4)}))
    for _, mode in ipairs {"reflect", "replicate", "circular"} do
      local m = nn.Conv2d(2, 2, 3, {padding = 1, padding_mode = mode, dtype = "float64"})
      assert.is_true(nn.gradcheck(function(x) return m(x) end, {leaf(1, 2, 4, 5)}), mode)
    end
  end)
  it("conv_transpose2d", function()
    nn.manual_seed(8)
    assert.is_true(nn.gradcheck(function(x, w, b)
      return F.conv_transpose2d(x, w, b, {stride = 2, padding = 1, output_padding = 1, groups = 2, dilation = {1, 2}})
    end, {leaf(2, 4, 3, 4), leaf(4, 3, 3, 2), leaf(6)}))
  end)
  it("unfold, fold and pad", function()
    nn.manual_seed(9)
    assert.is_true(nn.gradcheck(function(x) return F.unfold(x, {2, 3}, {padding = 1, stride = 2}) end,
      {leaf(2, 2, 5, 6)}))
    assert.is_true(nn.gradcheck(function(x) return F.fold(x, {4, 5}, 2) end, {leaf(2, 8, 12)}))
    for _, mode in ipairs {"constant", "reflect", "replicate", "circular"} do
      assert.is_true(nn.gradcheck(function(x) return F.pad(x, {2, 1, 1, 2}, mode) end, {leaf(1, 2, 3, 4)}), mode)
    end
  end)
end)

describe("a batch in several chunks", function()
  -- 300 samples of 16 x 28 x 28 are more than one chunk of the CPU's
  -- scratch: the batch's result must be each sample's, and the weight's
  -- gradient the sum of theirs.
  it("gives each sample's result and sums their gradients", function()
    nn.manual_seed(11)
    local x = nn.randn(300, 16, 28, 28)
    local w = nn.randn(32, 16, 3, 3):mul(0.1):requires_grad_(true)
    local y = F.conv2d(x, w, nil, {padding = 1})
    y:sum():backward()
    local batched = w.grad:clone()
    local gw = nn.zeros(32, 16, 3, 3)
    for _, s in ipairs {1, 150, 300} do
      w.grad = nil
      local ys = F.conv2d(x:narrow(1, s, 1), w, nil, {padding = 1})
      assert.is_true(ys:allclose(y:narrow(1, s, 1), 1e-5, 1e-5), "sample " .. s)
    end
    w.grad = nil
    for s = 1, 300, 50 do F.conv2d(x:narrow(1, s, 50), w, nil, {padding = 1}):sum():backward() end
    gw = w.grad
    assert.is_true(batched:allclose(gw, 1e-4, 1e-3))
  end)

  -- 7 samples of 32 x 14 x 14 to 64 channels make chunks of 3, 3 and 1
  -- (the lesson's second convolution): the forward's product per chunk is
  -- copied to each sample's place with the bias, and the input's gradient
  -- is zeroed chunk by chunk just before its columns are added onto it.
  it("with a bias, and the input's gradient zeroed chunk by chunk", function()
    nn.manual_seed(12)
    local x = nn.randn(7, 32, 14, 14):requires_grad_(true)
    local w, b = nn.randn(64, 32, 3, 3):mul(0.1), nn.randn(64)
    local r = nn.randn(7, 64, 14, 14)
    local y = F.conv2d(x, w, b, {padding = 1})
    ;(y * r):sum():backward()
    for s = 1, 7 do
      local xs = x:detach():narrow(1, s, 1):clone():requires_grad_(true)
      local ys = F.conv2d(xs, w, b, {padding = 1})
      assert.is_true(ys:allclose(y:narrow(1, s, 1), 1e-5, 1e-5), "sample " .. s)
      ;(ys * r:narrow(1, s, 1)):sum():backward()
      assert.is_true(xs.grad:allclose(x.grad:narrow(1, s, 1), 1e-5, 1e-5), "gradient of sample " .. s)
    end
  end)

  -- A first layer (few patch rows: 1 or 3 channels x 3 x 3, the input
  -- needing no gradient) takes its weight's gradient one product per
  -- sample, straight from the output gradient's layout, added in sample
  -- order: bit for bit the float32 sum of each sample's own gradient, over
  -- several chunks (40 samples of 28 x 28, 8 a chunk) and groups, and
  -- added onto a gradient already there.
  it("a first layer's weight gradient is its samples' gradients added in order", function()
    for _, case in ipairs({{c = 1, o = 32, groups = 1}, {c = 2, o = 8, groups = 2}, {c = 3, o = 4, groups = 1}}) do
      nn.manual_seed(13)
      local x = nn.randn(40, case.c, 28, 28)
      local w = nn.randn(case.o, case.c // case.groups, 3, 3):requires_grad_(true)
      local r = nn.randn(40, case.o, 28, 28)
      local opts = {padding = 1, groups = case.groups}
      ;(F.conv2d(x, w, nil, opts) * r):sum():backward()
      local batched = w.grad:clone()
      local each = {}
      for s = 1, 40 do
        w.grad = nil
        ;(F.conv2d(x:narrow(1, s, 1), w, nil, opts) * r:narrow(1, s, 1)):sum():backward()
        each[s] = w.grad:clone()
      end
      local summed, onto = each[1], each[40]
      for s = 2, 40 do summed = summed + each[s] end
      for s = 1, 40 do onto = onto + each[s] end
      local name = "channels " .. case.c .. ", groups " .. case.groups
      assert.is_true(batched:equal(summed), name)
      ;(F.conv2d(x, w, nil, opts) * r):sum():backward() -- added onto the last sample's gradient
      assert.is_true(w.grad:equal(onto), name .. ", accumulated")
    end
  end)

  -- Its forward writes each sample's product in its place, the bias added
  -- per chunk: each sample's output as its own, bit for bit, and the
  -- float64 result's within float32's rounding.
  it("a first layer's forward writes each sample's product in place, with its bias", function()
    for _, case in ipairs({{c = 1, o = 32, groups = 1}, {c = 3, o = 9, groups = 3}}) do
      nn.manual_seed(14)
      local x = nn.randn(20, case.c, 28, 28)
      local w, b = nn.randn(case.o, case.c // case.groups, 3, 3), nn.randn(case.o)
      local opts = {padding = 1, groups = case.groups}
      local y = F.conv2d(x, w, b, opts)
      local exact = F.conv2d(x:double(), w:double(), b:double(), opts)
      assert.is_true(y:double():allclose(exact, 1e-5, 1e-5))
      for s = 1, 20, 7 do
        assert.is_true(F.conv2d(x:narrow(1, s, 1), w, b, opts):equal(y:narrow(1, s, 1)), "sample " .. s)
      end
    end
  end)
end)

describe("misuse", function()
  it("names the layer and the cause", function()
    local conv = nn.Conv2d(1, 4, 3)
    expect_error(function() conv(nn.randn(2, 3, 8, 8)) end, "conv2d: input has 3 channels, layer expects 1")
    expect_error(function() conv(nn.randn(2, 1, 2, 2)) end, "conv2d: the kernel (3 x 3 with dilation) is larger than the padded input (2 x 2)")
    expect_error(function() conv(nn.randn(8, 8)) end, "conv2d: expected a 3-D (unbatched) or 4-D (batched) input, got 2-D")
    expect_error(function() nn.Conv2d(3, 4, 3, {groups = 2}) end, "Conv2d: in_channels (3) must be divisible by groups (2)")
    expect_error(function() nn.Conv2d(4, 3, 3, {groups = 2}) end, "Conv2d: out_channels (3) must be divisible by groups (2)")
    expect_error(function() nn.Conv1d(2, 4, 3)(nn.randn(1, 3, 8)) end, "conv1d: input has 3 channels, layer expects 2")
    expect_error(function() nn.Conv1d(2, 4, 5)(nn.randn(1, 2, 3)) end, "conv1d: the kernel (1 x 5 with dilation) is larger than the padded input (1 x 3)")
    expect_error(function() F.conv2d(nn.randn(1, 4, 5, 5), nn.randn(3, 2, 3, 3), nil, {groups = 2}) end,
      "conv2d: groups (2) must divide the weight's 3 output channels")
    expect_error(function() nn.Conv2d(1, 1, 3, {stride = 2, padding = "same"}) end,
      "Conv2d: padding='same' is not supported for strided convolutions")
    expect_error(function() nn.Conv2d(1, 1, 3, {padding = "full"}) end, "Conv2d: invalid padding string 'full'")
    expect_error(function() nn.Conv2d(1, 1, 3, {padding_mode = "mirror"}) end, "Conv2d: padding_mode must be")
    expect_error(function() nn.Conv2d(1, 1, 0) end, "Conv2d: kernel_size must be positive, got 0")
    expect_error(function() nn.Conv2d(1, 1, 3, {strides = 2}) end, "Conv2d: unknown option 'strides'")
    expect_error(function() F.conv2d(nn.randn(1, 1, 5, 5), nn.randn(1, 1, 3, 3):double()) end,
      "conv2d: input and weight must both be float32 or both float64")
    expect_error(function() nn.ConvTranspose2d(2, 2, 3, {stride = 2, output_padding = 2})(nn.randn(1, 2, 3, 3)) end,
      "conv_transpose2d: output_padding (2) must be smaller than either stride (2) or dilation (1)")
    expect_error(function() nn.ConvTranspose2d(2, 2, 3)(nn.randn(1, 3, 3, 3)) end,
      "conv_transpose2d: input has 3 channels, layer expects 2")
    expect_error(function() F.fold(nn.randn(1, 8, 10), {4, 5}, 2) end, "fold: the input has 10 blocks")
    expect_error(function() F.unfold(nn.randn(1, 1, 2, 2), 3) end, "unfold: the kernel (3 x 3 with dilation) is larger")
    expect_error(function() F.pad(nn.randn(1, 2, 3), {3, 0}, "reflect") end, "pad: padding size should be less than")
    expect_error(function() F.pad(nn.randn(1, 2, 3), {1}, "reflect") end, "pad: pad must be a table of an even number")
    expect_error(function() F.pad(nn.randn(3), {1, 1}, "wrap") end, "pad: mode must be")
    expect_error(function() F.pad(nn.randn(1, 1, 2, 3, 4), {1, 1}, "replicate") end,
      "pad: replicate padding of 1 dims expects a 2-D or 3-D input, got 5-D")
  end)
end)

describe("a same convolution's patches (one copy per tap)", function()
  it("equal, element for element, the patches of the input padded beforehand", function()
    nn.manual_seed(4)
    -- kernel, padding, dilation: those whose output rows are as wide as the input's
    for _, dtype in ipairs({"float32", "float64"}) do
      for _, c in ipairs({{3, 1, 1}, {5, 2, 1}, {1, 0, 1}, {3, 2, 2}}) do
        for _, hw in ipairs({{7, 9}, {1, 5}, {14, 14}, {2, 3}}) do
          local k, pad, dil = c[1], c[2], c[3]
          local x = nn.randn(2, 3, hw[1], hw[2]):to(dtype)
          local same = nn.F.unfold(x, k, {dilation = dil, padding = pad})
          local padded = nn.F.unfold(nn.F.pad(x, {pad, pad, pad, pad}), k, {dilation = dil})
          assert.are.same(padded:size(), same:size())
          assert.are.equal(0, same:ne(padded):sum():item(), string.format("%s k %d pad %d dilation %d, %dx%d",
            dtype, k, pad, dil, hw[1], hw[2]))
        end
      end
    end
  end)
end)

-- For each dtype, kernel (size, padding, dilation) and image size, what
-- `same` makes (padding = pad) equals, bit for bit, what `padded` makes
-- (no padding) with its border cut off.
local function same_equals_padded_cut(kernels, sizes, same, padded)
  for _, dtype in ipairs({"float32", "float64"}) do
    for _, c in ipairs(kernels) do
      for _, hw in ipairs(sizes) do
        local k, pad, dil = c[1], c[2], c[3]
        local h, w = hw[1], hw[2]
        local s, p = same(dtype, k, pad, dil, h, w)
        local inner = p:narrow(3, pad + 1, h):narrow(4, pad + 1, w)
        assert.are.same(inner:size(), s:size())
        assert.are.equal(0, s:ne(inner):sum():item(), string.format("%s k %d pad %d dilation %d, %dx%d",
          dtype, k, pad, dil, h, w))
      end
    end
  end
end

describe("a same convolution's fold (one added run per tap)", function()
  it("equals, bit for bit, the fold onto the padded image with its border cut off", function()
    nn.manual_seed(5)
    same_equals_padded_cut({{3, 1, 1}, {5, 2, 1}, {1, 0, 1}, {3, 2, 2}}, {{7, 9}, {1, 5}, {14, 14}, {2, 3}, {28, 28}},
      function(dtype, k, pad, dil, h, w)
        local cols = nn.randn(2, 3 * k * k, h * w):to(dtype)
        return nn.F.fold(cols, {h, w}, k, {dilation = dil, padding = pad}),
               nn.F.fold(cols, {h + 2 * pad, w + 2 * pad}, k, {dilation = dil})
      end)
  end)

  it("of a convolution's scratch columns (wrapped ones made -0 in place) equals the padded one's, bit for bit", function()
    -- conv_transpose2d's image side is col2im of W^T x, as conv2d's input gradient
    nn.manual_seed(6)
    same_equals_padded_cut({{3, 1, 1}, {5, 2, 1}, {3, 2, 2}}, {{7, 9}, {14, 14}, {2, 3}, {28, 28}},
      function(dtype, k, pad, dil, h, w)
        local x, wt = nn.randn(2, 4, h, w):to(dtype), nn.randn(4, 3, k, k):to(dtype)
        return nn.F.conv_transpose2d(x, wt, nil, {padding = pad, dilation = dil}),
               nn.F.conv_transpose2d(x, wt, nil, {dilation = dil})
      end)
  end)
end)

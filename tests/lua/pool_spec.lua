-- Pooling, upsampling and normalisation layers (lua/nn/pool_layers.lua
-- over engine/src/pool.c) against PyTorch 1.13's values
-- (tests/fixtures/gen_pool.py), gradient checks, printing, state and
-- misuse.
local nn = require "nn"
local support = dofile(os.getenv("NN_ROOT") .. "/tests/lua/support.lua")
local reference = dofile(os.getenv("NN_ROOT") .. "/tests/fixtures/pool_reference.lua")
local expect_error, flat = support.expect_error, support.flat
local F = nn.F

-- Inputs and weights of the fixture are float32 values (9 digits): read
-- as float32, then converted, they are the very numbers PyTorch had.
local function input(values, dtype, shape)
  return nn.tensor(values, {dtype = "float32"}):to(dtype):view(shape)
end

local function tolerance(dtype) return dtype == "float32" and 2e-5 or 1e-11 end

local function assert_values(expected, t, tol, what)
  local got = flat(t)
  assert.are.equal(#expected, #got, what .. ": element count")
  for i, e in ipairs(expected) do
    local g = got[i]
    local ok = (e ~= e and g ~= g) or e == g or math.abs(g - e) <= tol * math.max(1, math.abs(e))
    assert(ok, string.format("%s: element %d is %.17g, expected %.17g", what, i, g, e))
  end
end

-- The functional form of a fixture case, with its arguments.
local calls = {
  max_pool2d = function(x, a)
    return F.max_pool2d(x, a.kernel_size, a.stride, a.padding, a.dilation, a.ceil_mode, true)
  end,
  max_pool1d = function(x, a)
    return F.max_pool1d(x, a.kernel_size, a.stride, a.padding, a.dilation, a.ceil_mode, true)
  end,
  avg_pool2d = function(x, a)
    return F.avg_pool2d(x, a.kernel_size, a.stride, a.padding, a.ceil_mode, a.count_include_pad, a.divisor_override)
  end,
  avg_pool1d = function(x, a)
    return F.avg_pool1d(x, a.kernel_size, a.stride, a.padding, a.ceil_mode, a.count_include_pad)
  end,
  adaptive_avg_pool2d = function(x, a) return F.adaptive_avg_pool2d(x, a.output_size) end,
  adaptive_avg_pool1d = function(x, a) return F.adaptive_avg_pool1d(x, a.output_size) end,
  adaptive_max_pool2d = function(x, a) return F.adaptive_max_pool2d(x, a.output_size, true) end,
  interpolate = function(x, a) return F.interpolate(x, a.size, a.scale_factor, a.mode, a.align_corners) end,
  group_norm = function(x, a)
    local c = x:size(2)
    local w = a.affine and nn.linspace(0.5, 1.5, c, {dtype = x.dtype}) or nil
    local b = a.affine and nn.linspace(-0.2, 0.3, c, {dtype = x.dtype}) or nil
    return F.group_norm(x, a.num_groups, w, b)
  end,
  instance_norm = function(x, a)
    local c = x:size(2)
    local w = a.affine and nn.linspace(0.5, 1.5, c, {dtype = x.dtype}) or nil
    local b = a.affine and nn.linspace(-0.2, 0.3, c, {dtype = x.dtype}) or nil
    return F.instance_norm(x, nil, nil, w, b)
  end,
  local_response_norm = function(x, a) return F.local_response_norm(x, a.size, a.alpha, a.beta, a.k) end,
}

describe("pooling, upsampling and normalisation against PyTorch", function()
  for i, case in ipairs(reference.cases) do
    local call = calls[case.name]
    if call then
      it(string.format("%s case %d (%s)", case.name, i, case.dtype), function()
        local tol = tolerance(case.dtype)
        local x = input(case.x.values, case.dtype, case.x.shape):requires_grad_()
        local y, indices = call(x, case.args)
        assert.are.same(case.y.shape, y:size())
        assert.are.equal(case.dtype, y.dtype)
        assert_values(case.y.values, y, tol, "output")
        if case.indices then
          assert.are.equal("int64", indices.dtype)
          assert.are.same(case.indices, flat(indices))
        end
        local w = input(case.w, case.dtype, y:size())
        ;(y * w):sum():backward()
        assert_values(case.grad, x.grad, tol, "gradient")
      end)
    end
  end
end)

describe("BatchNorm2d", function()
  it("gives the same float32 bits whichever vector variant sums its moments (NN_CPU_VECTOR=baseline: SSE2, avx2, the best)", function()
    -- 45 positions a channel: whole groups of eight, a group of four and one more
    local code = [[
      nn.manual_seed(3)
      local x = (nn.randn(4, 3, 5, 9) * 3 + 100):requires_grad_()
      local bn = nn.BatchNorm2d(3)
      local y = bn(x)
      y:backward(nn.randn(4, 3, 5, 9))
      local parts = {}
      for _, t in ipairs({y, x.grad, bn.weight.grad, bn.bias.grad, bn.running_mean, bn.running_var}) do
        for _, v in ipairs(t:contiguous():view(-1):totable()) do parts[#parts + 1] = string.format("%a", v) end
      end
      print(table.concat(parts, " "))]]
    local best, ok_best = support.nnlua_output(code)
    assert.is_true(ok_best, best)
    for _, cap in ipairs({"baseline", "avx2"}) do
      local capped, ok_capped = support.nnlua_output(code, {NN_CPU_VECTOR = cap})
      assert.is_true(ok_capped, capped)
      assert.are.equal(capped, best, cap)
    end
  end)

  local function build(run)
    local o = run.options
    local bn = nn.BatchNorm2d(run.shape[2], {momentum = o.momentum, affine = o.affine,
      track_running_stats = o.track_running_stats, dtype = run.dtype})
    if bn.affine then
      nn.no_grad(function()
        bn.weight:copy_(nn.tensor(run.weight))
        bn.bias:copy_(nn.tensor(run.bias))
      end)
    end
    return bn
  end

  it("trains, moves its running statistics and evaluates as PyTorch's", function()
    for r, run in ipairs(reference.batch_norm) do
      local tol = tolerance(run.dtype)
      local bn = build(run)
      assert.are.equal(run.repr, tostring(bn))
      local keys = {}
      for k in pairs(bn:state_dict()) do keys[#keys + 1] = k end
      assert.are.same(run.keys, keys)
      for s, step in ipairs(run.steps) do
        local what = string.format("run %d step %d", r, s)
        if step.train then bn:train() else bn:eval() end
        local x = input(step.x, run.dtype, run.shape):requires_grad_()
        local y = bn(x)
        assert_values(step.y, y, tol, what .. " output")
        bn:zero_grad()
        ;(y * input(step.w, run.dtype, run.shape)):sum():backward()
        assert_values(step.grad, x.grad, tol, what .. " input gradient")
        if step.weight_grad then
          assert_values(step.weight_grad, bn.weight.grad, tol, what .. " weight gradient")
          assert_values(step.bias_grad, bn.bias.grad, tol, what .. " bias gradient")
        end
        if step.running_mean then
          assert_values(step.running_mean, bn.running_mean, tol, what .. " running_mean")
          assert_values(step.running_var, bn.running_var, tol, what .. " running_var")
          assert.are.equal(step.num_batches_tracked, bn.num_batches_tracked:item())
        end
      end
    end
  end)

  it("followed by a ReLU in a Sequential gives the two layers' bits in one pass (values, gradients, statistics)", function()
    local function pair(affine)
      nn.manual_seed(11)
      local m = nn.Sequential(nn.BatchNorm2d(3, {affine = affine}), nn.ReLU(), nn.MaxPool2d(2))
      if affine then nn.no_grad(function() m[1].weight:copy_(nn.randn(3)); m[1].bias:copy_(nn.randn(3)) end) end
      return m
    end
    -- 5 x 9 positions a channel: groups of eight, a four and a tail in the gradient's sums; zeros and a NaN
    local x0 = nn.randn(4, 3, 10, 18)
    x0[1][1][1][1], x0[2][2][3][4] = 0, 0 / 0
    for _, affine in ipairs({true, false}) do
      for _, train in ipairs({true, false}) do
        local fused, apart = pair(affine), pair(affine)
        if not train then
          fused:eval(); apart:eval()
          fused[1].running_var:fill_(0.7); apart[1].running_var:fill_(0.7)
        end
        local xf, xa = x0:clone():requires_grad_(), x0:clone():requires_grad_()
        local yf = fused(xf)
        local ya = xa
        for i = 1, #apart do ya = apart[i](ya) end
        local g = nn.randn(4, 3, 5, 9)
        yf:backward(g); ya:backward(g)
        local what = string.format("affine %s, train %s: ", tostring(affine), tostring(train))
        local function same(a, b, name)
          local fa, fb = flat(a), flat(b)
          for i = 1, #fa do
            assert(fa[i] == fb[i] or (fa[i] ~= fa[i] and fb[i] ~= fb[i]), what .. name .. " element " .. i)
          end
        end
        same(yf, ya, "output")
        same(xf.grad, xa.grad, "input gradient")
        if affine then
          same(fused[1].weight.grad, apart[1].weight.grad, "weight gradient")
          same(fused[1].bias.grad, apart[1].bias.grad, "bias gradient")
        end
        same(fused[1].running_mean, apart[1].running_mean, "running_mean")
        same(fused[1].running_var, apart[1].running_var, "running_var")
      end
    end
    -- the fused node saves its result, as PyTorch's ReluBackward0: changing it in place is caught
    local m = nn.Sequential(nn.BatchNorm2d(2), nn.ReLU())
    local y = m(nn.randn(2, 2, 3, 3):requires_grad_())
    assert.are.equal("ReluBackward0", tostring(y.grad_fn))
    y:add_(1)
    expect_error(function() y:sum():backward() end, "ReluBackward0 needs was changed by an in-place operation")
    -- a subclass's own forward is its own: never fused
    local Doubled = nn.BatchNorm2d:extend("Doubled")
    function Doubled:forward(x) return nn.BatchNorm2d.forward(self, x) * 2 end
    local d = nn.Sequential(Doubled(2), nn.ReLU())
    local x = nn.randn(2, 2, 3, 3)
    local plain = nn.Sequential(nn.BatchNorm2d(2), nn.ReLU())
    assert.are.same(flat((plain(x) * 2)), flat(d(x)))
  end)

  it("saves and loads its state", function()
    local bn = nn.BatchNorm2d(3)
    bn(nn.randn(4, 3, 2, 2) * 3 + 1)
    local copy = nn.BatchNorm2d(3)
    copy:load_state_dict(bn:state_dict())
    assert.are.same(flat(bn.running_mean), flat(copy.running_mean))
    assert.are.same(flat(bn.running_var), flat(copy.running_var))
    assert.are.equal(1, copy.num_batches_tracked:item())
  end)

  it("passes gradcheck in training and eval mode", function()
    local x = nn.randn(3, 2, 3, 2, {dtype = "float64", requires_grad = true})
    local w = nn.randn(2, {dtype = "float64", requires_grad = true})
    local b = nn.randn(2, {dtype = "float64", requires_grad = true})
    assert.is_true(nn.gradcheck(function(xx, ww, bb) return F.batch_norm(xx, nil, nil, ww, bb, true) end, {x, w, b}))
    local rm, rv = nn.randn(2, {dtype = "float64"}), nn.rand(2, {dtype = "float64"}) + 0.5
    assert.is_true(nn.gradcheck(function(xx, ww, bb) return F.batch_norm(xx, rm, rv, ww, bb, false) end, {x, w, b}))
  end)

  it("refuses misuse with the layer's name", function()
    local bn = nn.BatchNorm2d(8)
    expect_error(function() return bn(nn.zeros(2, 3, 4, 4)) end, "BatchNorm2d: expected 8 channels, got 3")
    expect_error(function() return bn(nn.zeros(8, 4, 4)) end, "BatchNorm2d", "expected 4D (N, C, H, W) input", "3D")
    expect_error(function() return nn.BatchNorm2d(3)(nn.zeros(1, 3, 1, 1)) end, "BatchNorm2d",
      "more than 1 value per channel")
    expect_error(function() return F.batch_norm(nn.zeros(2, 3, 4, 4), nn.zeros(8), nn.ones(8)) end,
      "batch_norm: expected 8 channels, got 3")
    expect_error(function() return F.batch_norm(nn.zeros(2, 3, 4, 4), nil, nil) end, "batch_norm",
      "running_mean and running_var are needed")
    expect_error(function() return nn.BatchNorm2d(0) end, "BatchNorm2d", "num_features must be a positive integer")
  end)
end)

describe("MaxPool2d and the other pooling modules", function()
  it("print as PyTorch's", function()
    local r = reference.reprs
    assert.are.equal(r.max_pool2d, tostring(nn.MaxPool2d(3)))
    assert.are.equal(r.max_pool2d_options, tostring(nn.MaxPool2d({3, 2}, {stride = 1, padding = 1, dilation = 2,
      return_indices = true, ceil_mode = true})))
    assert.are.equal(r.max_pool1d, tostring(nn.MaxPool1d(3)))
    assert.are.equal(r.avg_pool2d, tostring(nn.AvgPool2d(3, {stride = 2, padding = 1})))
    assert.are.equal(r.avg_pool1d, tostring(nn.AvgPool1d(3)))
    assert.are.equal(r.adaptive_avg_pool2d, tostring(nn.AdaptiveAvgPool2d({3, false})))
    assert.are.equal(r.adaptive_avg_pool2d_int, tostring(nn.AdaptiveAvgPool2d(3)))
    assert.are.equal(r.adaptive_max_pool2d, tostring(nn.AdaptiveMaxPool2d(2)))
    assert.are.equal(r.adaptive_avg_pool1d, tostring(nn.AdaptiveAvgPool1d(2)))
    assert.are.equal(r.batch_norm2d, tostring(nn.BatchNorm2d(3)))
    assert.are.equal(r.batch_norm2d_options, tostring(nn.BatchNorm2d(3, {momentum = false, affine = false,
      track_running_stats = false})))
  end)

  it("modules compute what their functions do", function()
    local x = nn.randn(2, 3, 7, 6)
    assert.are.same(flat(F.max_pool2d(x, 3, 2, 1)), flat(nn.MaxPool2d(3, {stride = 2, padding = 1})(x)))
    local y, i = nn.MaxPool2d{kernel_size = 2, return_indices = true}(x)
    local y2, i2 = F.max_pool2d(x, 2, nil, 0, 1, false, true)
    assert.are.same(flat(y2), flat(y))
    assert.are.same(flat(i2), flat(i))
    assert.are.same(flat(F.max_pool2d(x, 3, 2, 1)), flat(nn.MaxPool2d(3, 2, 1)(x)))
    assert.are.same(flat(F.max_pool2d(x, {3, 2}, {2, 1})), flat(nn.MaxPool2d({3, 2}, {2, 1})(x)))
    assert.are.same(flat(F.avg_pool2d(x, 3, 2, 1, false, false)), flat(nn.AvgPool2d(3, 2, 1, false, false)(x)))
    assert.are.same(flat(F.avg_pool2d(x, 2)), flat(nn.AvgPool2d(2)(x)))
    assert.are.same(flat(F.adaptive_avg_pool2d(x, {2, 3})), flat(nn.AdaptiveAvgPool2d({2, 3})(x)))
    local z = nn.AdaptiveAvgPool2d({false, 2})(x)
    assert.are.same({2, 3, 7, 2}, z:size())
    assert.are.same(flat(F.max_pool1d(x[1], 2)), flat(nn.MaxPool1d(2)(x[1])))
  end)

  it("let NaN win a max pool's window, as PyTorch's", function()
    local x = nn.tensor({{{{1, 0 / 0}, {3, 2}}}})
    local y, i = F.max_pool2d(x, 2, nil, 0, 1, false, true)
    assert.is_true(y:item() ~= y:item())
    assert.are.equal(2, i:item())
  end)

  it("give the float32 2x2 window's fast path the general path's values, indices and gradients", function()
    -- float64 goes through the general window loop: the same picks, ties
    -- (the first maximum), -inf and NaN (the last NaN) included
    nn.manual_seed(5)
    local x = nn.randint(-2, 3, {3, 5, 10, 14}):float()
    x:view(-1):narrow(1, 7, 1):fill_(0 / 0)
    x:view(-1):narrow(1, 30, 2):fill_(0 / 0)
    x:view(-1):narrow(1, 100, 4):fill_(-math.huge)
    local x32 = x:clone():requires_grad_()
    local x64 = x:double():requires_grad_()
    local y32, i32 = F.max_pool2d(x32, 2, nil, 0, 1, false, true)
    local y64, i64 = F.max_pool2d(x64, 2, nil, 0, 1, false, true)
    assert.are.same(flat(i64), flat(i32))
    assert.are.same(flat(y64:float():nan_to_num(7)), flat(y32:nan_to_num(7)))
    local g = nn.randn(3, 5, 5, 7)
    y32:backward(g)
    y64:backward(g:double())
    assert.are.same(flat(x64.grad:float()), flat(x32.grad))
    -- an odd size leaves the last row and column out (and ceil_mode takes
    -- the general path)
    local odd = nn.randn(2, 3, 7, 9)
    assert.are.same(flat(F.max_pool2d(odd:double(), 2):float()), flat(F.max_pool2d(odd, 2)))
    -- the fast gradient writes each window whole and zeroes the last row
    -- and column itself (its output block is not cleared first): fill the
    -- allocator's blocks of that size with garbage before it runs
    for _ = 1, 4 do local _ = nn.full({2, 3, 7, 9}, 5) end
    local odd32, odd64 = odd:clone():requires_grad_(), odd:double():requires_grad_()
    local g_odd = nn.randn(2, 3, 3, 4)
    F.max_pool2d(odd32, 2):backward(g_odd)
    F.max_pool2d(odd64, 2):backward(g_odd:double())
    assert.are.same(flat(odd64.grad:float()), flat(odd32.grad))
    assert.are.same(flat(F.max_pool2d(odd:double(), 2, nil, 0, 1, true):float()),
                    flat(F.max_pool2d(odd, 2, nil, 0, 1, true)))
    -- rows of 3, 14 and 5 windows: none in vectors, a last group overlapping the one before
    for _, w in ipairs({6, 28, 11}) do
      local v = nn.randint(-2, 3, {2, 3, 4, w}):float()
      local v32, v64 = v:clone():requires_grad_(), v:double():requires_grad_()
      local a32, j32 = F.max_pool2d(v32, 2, nil, 0, 1, false, true)
      local a64, j64 = F.max_pool2d(v64, 2, nil, 0, 1, false, true)
      assert.are.same(flat(j64), flat(j32))
      assert.are.same(flat(a64:float()), flat(a32))
      local gw = nn.randn(a32:size())
      a32:backward(gw)
      a64:backward(gw:double())
      assert.are.same(flat(v64.grad:float()), flat(v32.grad))
    end
    -- rows of 8, 9 and 17 windows (groups of four: two, three overlapping,
    -- five with a column and a row left out), with ties, NaN and -inf in
    -- them across groups; the gradient's blocks filled with garbage first
    for _, size in ipairs({{4, 16}, {6, 18}, {7, 35}}) do
      local v = nn.randint(-2, 3, {2, 3, size[1], size[2]}):float()
      v:view(-1):narrow(1, 3, 1):fill_(0 / 0)
      v:view(-1):narrow(1, size[2] + 5, 2):fill_(0 / 0)
      v:view(-1):narrow(1, 2 * size[2] + 8, 4):fill_(-math.huge)
      for _ = 1, 4 do local _ = nn.full({2, 3, size[1], size[2]}, 5) end
      local v32, v64 = v:clone():requires_grad_(), v:double():requires_grad_()
      local a32, j32 = F.max_pool2d(v32, 2, nil, 0, 1, false, true)
      local a64, j64 = F.max_pool2d(v64, 2, nil, 0, 1, false, true)
      assert.are.same(flat(j64), flat(j32))
      assert.are.same(flat(a64:float():nan_to_num(7)), flat(a32:nan_to_num(7)))
      assert.are.same(flat(F.max_pool2d(v:double(), 2):float():nan_to_num(7)), flat(F.max_pool2d(v, 2):nan_to_num(7)))
      local gw = nn.randn(a32:size())
      a32:backward(gw)
      a64:backward(gw:double())
      assert.are.same(flat(v64.grad:float()), flat(v32.grad))
    end
  end)

  it("give a float32 2x2 pool without indices asked (a byte a window kept) the gradients of one with indices", function()
    -- rows of 3, 4, 5, 7, 8, 9, 14 and 17 windows, odd sizes (a row and a
    -- column left out), ties, NaN and -inf; the gradient's blocks filled
    -- with garbage first
    nn.manual_seed(8)
    for _, size in ipairs({{4, 6}, {5, 8}, {4, 11}, {7, 15}, {4, 16}, {6, 18}, {8, 28}, {7, 35}}) do
      local v = nn.randint(-2, 3, {2, 3, size[1], size[2]}):float()
      v:view(-1):narrow(1, 3, 1):fill_(0 / 0)
      v:view(-1):narrow(1, size[2] + 5, 2):fill_(0 / 0)
      v:view(-1):narrow(1, 2 * size[2] + 1, 4):fill_(-math.huge)
      local g = nn.randn(2, 3, size[1] // 2, size[2] // 2)
      local with, without = v:clone():requires_grad_(), v:clone():requires_grad_()
      local a, i = F.max_pool2d(with, 2, nil, 0, 1, false, true)
      a:backward(g)
      for _ = 1, 4 do local _ = nn.full({2, 3, size[1], size[2]}, 5) end
      local b = F.max_pool2d(without, 2)
      assert.are.same(flat(a:nan_to_num(7)), flat(b:nan_to_num(7)))
      b:backward(g)
      assert.are.same(flat(with.grad), flat(without.grad), "rows of " .. size[2] // 2 .. " windows")
      assert.are.equal("int64", i.dtype)
    end
  end)

  it("give a float32 2x2 pool's gradients, recorded (create_graph) or not, the general path's values", function()
    -- against float64 (the general window loop): the first gradient, the
    -- gradient through it, ties and odd sizes included; rows of 9 and 3 windows
    nn.manual_seed(7)
    for _, size in ipairs({{2, 3, 6, 18}, {1, 2, 7, 9}, {2, 1, 4, 6}}) do
      local x = nn.randint(-2, 3, size):float()
      local u0 = nn.randn(size[1], size[2], size[3] // 2, size[4] // 2)
      local v0 = nn.randn(size[1], size[2], size[3], size[4])
      local grads = {}
      for _, dtype in ipairs({"float32", "float64"}) do
        local xd = x:to(dtype):detach():requires_grad_()
        local u = u0:to(dtype):requires_grad_()
        local y = (F.max_pool2d(xd, 2) * u):sum()
        local gx = nn.autograd.grad(y, xd, {create_graph = true})[1]
        local gu = nn.autograd.grad((gx * v0:to(dtype)):sum(), u)[1]
        local plain = x:to(dtype):detach():requires_grad_()
        local z = (F.max_pool2d(plain, 2) * u:detach()):sum()
        z:backward()
        grads[dtype] = {flat(gx:float()), flat(gu:float()), flat(plain.grad:float())}
      end
      assert.are.same(grads.float64[1], grads.float32[1])
      assert.are.same(grads.float64[2], grads.float32[2])
      assert.are.same(grads.float64[3], grads.float32[3])
      assert.are.same(grads.float32[1], grads.float32[3])
    end
  end)

  it("pass gradcheck", function()
    local x = nn.randn(2, 2, 6, 5, {dtype = "float64", requires_grad = true})
    for _, fn in ipairs {
      function(t) return F.max_pool2d(t, 3, 2, 1) end,
      function(t) return F.max_pool2d(t, {2, 3}, 1, 0, {2, 1}, true) end,
      function(t) return F.avg_pool2d(t, 3, 2, 1, true, false) end,
      function(t) return F.avg_pool2d(t, 2, 1, 1, false, true, 3) end,
      function(t) return F.adaptive_avg_pool2d(t, {4, 3}) end,
      function(t) return F.adaptive_max_pool2d(t, {3, 2}) end,
      function(t) return F.max_pool1d(t[1], 2) end,
      function(t) return F.avg_pool1d(t[1], 3, 2, 1) end,
    } do
      assert.is_true(nn.gradcheck(fn, {x}))
    end
  end)

  it("refuse misuse naming the op", function()
    local x = nn.randn(2, 3, 4, 4)
    expect_error(function() return F.max_pool2d(x, 2, nil, 2) end,
      "max_pool2d: pad should be at most half of kernel size, but got pad=2 and kernel_size=2")
    expect_error(function() return F.max_pool2d(x, 5) end, "max_pool2d",
      "Given input size: (3x4x4). Calculated output size: (3x0x0). Output size is too small")
    expect_error(function() return F.max_pool2d(nn.randn(4, 4), 2) end, "max_pool2d",
      "expected a non-empty 3-d (C, H, W) or 4-d (N, C, H, W) input")
    expect_error(function() return F.max_pool2d(x, 0) end, "max_pool2d: kernel_size must be positive")
    expect_error(function() return F.max_pool2d(x, 2, 0) end, "max_pool2d: stride must be positive")
    expect_error(function() return F.max_pool2d(x, "2") end, "max_pool2d: kernel_size must be an integer")
    expect_error(function() return F.avg_pool2d(x, 2, nil, 2) end, "avg_pool2d: pad should be at most half")
    expect_error(function() return F.avg_pool2d(x, 5) end, "avg_pool2d", "Output size is too small")
    expect_error(function() return F.max_pool1d(x, 2) end, "max_pool1d: expected 2D (C, L) or 3D (N, C, L) input")
    expect_error(function() return F.max_pool2d(nn.ones(1, 2, 2, 2, {dtype = "int64"}), 2) end,
      "max_pool2d: input must be float32 or float64")
    expect_error(function() return F.adaptive_avg_pool2d(x, 0) end, "adaptive_avg_pool2d: output_size must be positive")
    expect_error(function() return nn.MaxPool2d(3, {strides = 2}) end, "MaxPool2d", "unknown option 'strides'")
    expect_error(function() return nn.MaxPool2d(3, 1, 1, 1, false, false, 7) end, "MaxPool2d: takes at most 6 arguments")
  end)
end)

describe("upsampling, normalisation, unpooling and channel dropout modules", function()
  it("print as PyTorch's", function()
    local r = reference.reprs
    assert.are.equal(r.upsample, tostring(nn.Upsample{scale_factor = 2}))
    assert.are.equal(r.upsample_size, tostring(nn.Upsample{size = {3, 4}, mode = "bilinear", align_corners = true}))
    assert.are.equal(r.group_norm, tostring(nn.GroupNorm(2, 4)))
    assert.are.equal(r.instance_norm2d, tostring(nn.InstanceNorm2d(3)))
    assert.are.equal(r.instance_norm1d, tostring(nn.InstanceNorm1d(3, {affine = true})))
    assert.are.equal(r.local_response_norm, tostring(nn.LocalResponseNorm(2)))
    assert.are.equal(r.dropout2d, tostring(nn.Dropout2d()))
    assert.are.equal(r.dropout1d, tostring(nn.Dropout1d(0.25)))
    assert.are.equal(r.alpha_dropout, tostring(nn.AlphaDropout()))
    assert.are.equal(r.max_unpool2d, tostring(nn.MaxUnpool2d(2)))
  end)

  it("draw PyTorch's dropout masks after the same seed", function()
    nn.manual_seed(7)
    assert.are.same(reference.dropout.dropout2d, flat(F.dropout2d(nn.ones(2, 5, 2, 2, {dtype = "float64"}), 0.4)))
    nn.manual_seed(7)
    assert.are.same(reference.dropout.dropout1d, flat(F.dropout1d(nn.ones(3, 4, 2, {dtype = "float64"}), 0.5)))
    nn.manual_seed(7)
    local x = nn.linspace(-1, 1, 12, {dtype = "float64"})
    assert_values(reference.dropout.alpha_dropout, F.alpha_dropout(x, 0.3, true), 1e-15, "alpha_dropout")
  end)

  it("leave their input alone in eval mode", function()
    local x = nn.randn(2, 3, 4, 4)
    for _, m in ipairs {nn.Dropout2d(), nn.AlphaDropout(0.2)} do
      m:eval()
      assert.are.equal(x, m(x))
    end
  end)

  it("unpool what max pooling picked", function()
    local x = nn.randn(2, 3, 6, 4, {requires_grad = true})
    local y, i = nn.MaxPool2d(2, {return_indices = true})(x)
    local u = nn.MaxUnpool2d(2)(y, i)
    assert.are.same(x:size(), u:size())
    -- every maximum back in place, zeros elsewhere
    local kept = x:detach() * u:ne(0):to(x.dtype)
    assert.are.same(flat(kept), flat(u:detach()))
    assert.is_true(nn.gradcheck(function(t)
      local yy, ii = F.max_pool2d(t, 2, nil, 0, 1, false, true)
      return F.max_unpool2d(yy, ii, 2)
    end, {nn.randn(1, 2, 4, 4, {dtype = "float64", requires_grad = true})}))
  end)

  it("InstanceNorm tracks running statistics when asked, as PyTorch's average of the samples'", function()
    local m = nn.InstanceNorm2d(3, {track_running_stats = true, momentum = 0.5})
    local x = nn.randn(4, 3, 5, 5, {dtype = "float32"}) * 2 + 1
    m(x)
    local per_sample = x:reshape({4, 3, 25})
    local expected_mean = per_sample:mean(3):mean(1) * 0.5
    assert_values(flat(expected_mean), m.running_mean, 1e-5, "running_mean")
    assert.are.same({"running_mean", "running_var", "num_batches_tracked"}, (function()
      local keys = {}
      for k in pairs(m:state_dict()) do keys[#keys + 1] = k end
      return keys
    end)())
    m:eval()
    local y = m(x)
    assert.are.same(x:size(), y:size())
  end)

  it("pass gradcheck", function()
    local x = nn.randn(2, 4, 3, 3, {dtype = "float64", requires_grad = true})
    assert.is_true(nn.gradcheck(function(t) return F.group_norm(t, 2) end, {x}))
    assert.is_true(nn.gradcheck(function(t) return F.instance_norm(t) end, {x}))
    assert.is_true(nn.gradcheck(function(t) return F.local_response_norm(t, 3) end, {x}))
    assert.is_true(nn.gradcheck(function(t) return F.interpolate(t, {5, 4}, nil, "bilinear") end, {x}))
    assert.is_true(nn.gradcheck(function(t) return F.interpolate(t, nil, 2) end, {x}))
  end)

  it("refuse misuse naming the op", function()
    local x = nn.randn(2, 4, 3, 3)
    expect_error(function() return F.group_norm(x, 3) end, "group_norm", "divisible by num_groups")
    expect_error(function() return nn.InstanceNorm2d(3, {affine = true})(x) end, "InstanceNorm2d",
      "match num_features (3), but got: 4")
    expect_error(function() return F.interpolate(x, {4, 4}, 2) end, "interpolate: give either size or scale_factor")
    expect_error(function() return F.interpolate(x, nil, 2, "nearest", true) end, "interpolate: align_corners")
    expect_error(function() return F.interpolate(x, nil, 2, "linear") end, "interpolate: mode 'linear'")
    expect_error(function() return F.dropout2d(nn.randn(3, 3), 0.5) end, "dropout2d: expected 3D")
    expect_error(function() return nn.Dropout2d(1.5) end, "Dropout2d", "between 0 and 1")
    local y, i = F.max_pool2d(x, 2, nil, 0, 1, false, true)
    expect_error(function() return F.max_unpool2d(y, i, 2, 2, 0, {1, 1}) end, "max_unpool2d", "outside the 1x1 output plane")
  end)

  -- A table of options after kernel_size was once taken for an empty
  -- stride (so the kernel's), its keys ignored: a silent wrong answer.
  it("the functional pools take options after kernel_size, and refuse unknown ones", function()
    local x = nn.arange(0, 25):view(1, 1, 5, 5)
    local positional = F.max_pool2d(x, 3, 2, 1)
    assert.are.same({1, 1, 3, 3}, positional:size())
    assert.are.same(positional:totable(), F.max_pool2d(x, 3, {stride = 2, padding = 1}):totable())
    assert.are.same(positional:totable(), F.max_pool2d(x, {kernel_size = 3, stride = 2, padding = 1}):totable())
    assert.are.same(F.avg_pool2d(x, 3, 1, 1):totable(), F.avg_pool2d(x, 3, {stride = 1, padding = 1}):totable())
    assert.are.same({1, 4}, F.avg_pool1d(x[1][1]:view(1, 25), 6, {stride = 6}):size())
    assert.are.same({1, 5, 2}, F.max_pool1d(x[1], 2, {stride = 2}):size())
    local y, i = F.max_pool2d(x, 2, {return_indices = true})
    assert.are.same({1, 1, 5, 5}, F.max_unpool2d(y, i, 2, {output_size = {5, 5}}):size())
    expect_error(function() return F.max_pool2d(x, 3, {stride = 2, pad = 1}) end, "max_pool2d", "unknown option 'pad'")
    expect_error(function() return F.avg_pool2d(x, 3, 1, 1, false, true, nil, 9) end, "avg_pool2d", "takes at most 6 arguments")
  end)
end)

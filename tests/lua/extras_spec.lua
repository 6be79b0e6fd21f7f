-- Issue 13's small modules, activations and functions (containers.lua,
-- small_layers.lua, the new engine activations): values and gradients
-- against PyTorch 1.13 (tests/fixtures/extras_reference.lua, written by
-- gen_extras.py) in float32 and float64, gradcheck, the draws after a seed,
-- containers' registration, state_dict names and printing, and misuse errors.
local nn = require "nn"
local support = dofile((os.getenv("NN_ROOT") or ".") .. "/tests/lua/support.lua")
local flat = support.flat
local F = nn.F

local root = os.getenv("NN_ROOT") or "."
local reference = dofile(root .. "/tests/fixtures/extras_reference.lua")

local RTOL = {float32 = 2e-5, float64 = 1e-10}
local ATOL = {float32 = 2e-6, float64 = 1e-12}

local function assert_close(expected, t, dtype, what)
  local got = flat(t)
  assert.are.equal(#expected, #got, what .. ": number of elements")
  for i = 1, #expected do
    local e, a = expected[i], got[i]
    local ok = (e ~= e and a ~= a) or e == a or math.abs(a - e) <= RTOL[dtype] * math.abs(e) + ATOL[dtype]
    assert(ok, string.format("%s: element %d: expected %.17g, got %.17g", what, i, e, a))
  end
end

-- The fixture's weights: w[i] = ((i mod 7) - 3) / 4 over y's flat index from 0.
local function weights_like(y)
  if y:dim() == 0 then return nn.ones({}, {dtype = y.dtype}) end
  local w = {}
  for i = 0, y:numel() - 1 do w[i + 1] = ((i % 7) - 3) / 4 end
  return nn.tensor(w, {dtype = y.dtype}):view(y:size())
end

-- What each case computes, from its inputs (Lua dims count from 1).
local cases = {
  relu6 = function(x) return nn.ReLU6()(x) end,
  hardswish = function(x) return x:hardswish() end,
  celu = function(x) return nn.CELU(1.5)(x) end,
  ["celu default"] = function(x) return F.celu(x) end,
  softshrink = function(x) return nn.Softshrink(0.7)(x) end,
  hardshrink = function(x) return F.hardshrink(x, {lambd = 0.3}) end,
  tanhshrink = function(x) return nn.Tanhshrink()(x) end,
  threshold = function(x) return nn.Threshold(0.2, -1.0)(x) end,
  glu = function(x) return nn.GLU()(x) end,
  ["glu dim 1"] = function(x) return F.glu(x, 1) end,
  softmin = function(x) return nn.Softmin(2)(x) end,
  softmax2d = function(x) return nn.Softmax2d()(x) end,
  ["rrelu eval"] = function(x) return nn.RReLU(0.1, 0.4):eval()(x) end,
  normalize = function(x) return F.normalize(x) end,
  ["normalize p3 dim1"] = function(x) return F.normalize(x, {p = 3, dim = 1}) end,
  cosine_similarity = function(a, b) return nn.CosineSimilarity()(a, b) end,
  ["cosine_similarity dim1 broadcast"] = function(a, b) return F.cosine_similarity(a, b, 1) end,
  pairwise_distance = function(a, b) return nn.PairwiseDistance()(a, b) end,
  ["pairwise_distance p1 keepdim"] = function(a, b) return F.pairwise_distance(a, b, {p = 1, keepdim = true}) end,
  bilinear = function(a, b, w, bias) return F.bilinear(a, b, w, bias) end,
  ["bilinear batch dims"] = function(a, b, w, bias) return F.bilinear(a, b, w, bias) end,
  unflatten = function(x) return nn.Unflatten(2, {2, 3})(x) end,
  -- losses
  ["margin_ranking mean"] = function(a, b, y) return nn.MarginRankingLoss{margin = 0.3}(a, b, y) end,
  ["margin_ranking sum"] = function(a, b, y) return F.margin_ranking_loss(a, b, y, {margin = 0.3, reduction = "sum"}) end,
  ["margin_ranking none"] = function(a, b, y)
    return nn.MarginRankingLoss{margin = 0.3, reduction = "none"}(a, b, y)
  end,
  hinge_embedding = function(x, y) return nn.HingeEmbeddingLoss{margin = 1.5}(x, y) end,
  ["hinge_embedding none"] = function(x, y) return F.hinge_embedding_loss(x, y, "none") end,
  soft_margin = function(x, y) return nn.SoftMarginLoss()(x, y) end,
  multi_margin = function(x, y) return nn.MultiMarginLoss()(x, y) end,
  ["multi_margin p2 weight"] = function(x, y, w)
    return F.multi_margin_loss(x, y, {p = 2, margin = 0.7, weight = w, reduction = "sum"})
  end,
  ["multi_margin 1d none"] = function(x, y) return nn.MultiMarginLoss{reduction = "none"}(x, y) end,
  multilabel_soft_margin = function(x, y) return nn.MultiLabelSoftMarginLoss()(x, y) end,
  ["multilabel_soft_margin weight none"] = function(x, y, w)
    return nn.MultiLabelSoftMarginLoss{weight = w, reduction = "none"}(x, y)
  end,
  cosine_embedding = function(a, b, y) return nn.CosineEmbeddingLoss{margin = 0.2}(a, b, y) end,
  ["cosine_embedding none"] = function(a, b, y) return F.cosine_embedding_loss(a, b, y, "none") end,
  triplet_margin = function(a, p, n) return nn.TripletMarginLoss()(a, p, n) end,
  ["triplet_margin p1 swap none"] = function(a, p, n)
    return F.triplet_margin_loss(a, p, n, {margin = 2, p = 1, swap = true, reduction = "none"})
  end,
  poisson_nll = function(x, y) return nn.PoissonNLLLoss()(x, y) end,
  ["poisson_nll rate full sum"] = function(x, y)
    return F.poisson_nll_loss(x, y, {log_input = false, full = true, reduction = "sum"})
  end,
  gaussian_nll = function(x, y, v) return nn.GaussianNLLLoss()(x, y, v) end,
  ["gaussian_nll one var per row full none"] = function(x, y, v)
    return F.gaussian_nll_loss(x, y, v, {full = true, reduction = "none"})
  end,
  ["gaussian_nll var without last dim"] = function(x, y, v) return F.gaussian_nll_loss(x, y, v) end,
  -- CTC's labels count from 1, so PyTorch's blank 0 is blank 1 here
  ["ctc mean"] = function(x, t) return nn.CTCLoss()(x:log_softmax(3), t, {7, 6, 7}, {3, 2, 3}) end,
  ["ctc sum"] = function(x, t)
    return F.ctc_loss(x:log_softmax(3), t, nn.tensor{7, 6, 7}, nn.tensor{3, 2, 3}, {reduction = "sum"})
  end,
  ["ctc none"] = function(x, t) return nn.CTCLoss{reduction = "none"}(x:log_softmax(3), t, {7, 6, 7}, {3, 2, 3}) end,
  ["ctc concatenated"] = function(x, t) return F.ctc_loss(x:log_softmax(3), t, {7, 6, 7}, {3, 2, 3}) end,
  ["ctc zero_infinity"] = function(x, t)
    return nn.CTCLoss{zero_infinity = true}(x:log_softmax(3), t, {7, 6, 5}, {2, 2, 4})
  end,
  ["ctc blank 3"] = function(x, t)
    return F.ctc_loss(x:log_softmax(3), t, {7, 7, 4}, {3, 3, 2}, {blank = 3, reduction = "sum"})
  end,
}

local function inputs_of(case, dtype, requires_grad)
  local ts = {}
  for i, input in ipairs(case.inputs) do
    local t = nn.tensor(input.data, {dtype = input.int64 and "int64" or dtype}):view(input.shape)
    if requires_grad and not input.constant then t:requires_grad_(true) end
    ts[i] = t
  end
  return ts
end

describe("small modules and activations against PyTorch 1.13", function()
  for _, case in ipairs(reference.cases) do
    local fn = cases[case.name]
    for _, dtype in ipairs {"float32", "float64"} do
      it(case.name .. " " .. dtype, function()
        assert(fn, "no Lua form for case " .. case.name)
        local ts = inputs_of(case, dtype, true)
        local y = fn(table.unpack(ts))
        local expected = case[dtype]
        assert.are.same(expected.shape, y:size())
        assert.are.equal(dtype, y.dtype)
        assert_close(expected.output, y, dtype, case.name .. " output")
        ;(y * weights_like(y)):sum():backward()
        for i, t in ipairs(ts) do
          if #expected.grads[i] > 0 then assert_close(expected.grads[i], t.grad, dtype, case.name .. " grad " .. i) end
        end
      end)
    end
  end
end)

-- Inputs that gradcheck holds still: gaussian_nll's var holds 1e-8, which
-- a finite-difference step would make negative (an error, as in PyTorch).
local held = {gaussian_nll = 3}

describe("gradcheck in float64", function()
  for _, case in ipairs(reference.cases) do
    it(case.name, function()
      local fn = cases[case.name]
      local inputs = inputs_of(case, "float64", true)
      if held[case.name] then inputs[held[case.name]]:requires_grad_(false) end
      assert.is_true(nn.gradcheck(fn, inputs))
    end)
  end
end)

describe("draws after a seed", function()
  local d = reference.draws
  for _, dtype in ipairs {"float32", "float64"} do
    it("RReLU in training draws PyTorch's slopes (" .. dtype .. ")", function()
      local x = nn.tensor(d.rrelu_input, {dtype = dtype}):view(3, 5)
      nn.manual_seed(5)
      local m = nn.RReLU(0.1, 0.4)
      assert.is_true(m.training)
      assert_close(d["rrelu_" .. dtype], m(x), dtype, "rrelu train")
      -- eval: the fixed mean slope, no draws
      m:eval()
      local y = m(x)
      assert_close(flat(F.leaky_relu(x, 0.25)), y, dtype, "rrelu eval")
    end)
    it("gumbel_softmax soft and hard draw PyTorch's numbers (" .. dtype .. ")", function()
      local logits = nn.tensor(d.gumbel_input, {dtype = dtype}):view(3, 4)
      nn.manual_seed(9)
      assert_close(d["gumbel_soft_" .. dtype], F.gumbel_softmax(logits, {tau = 0.5}), dtype, "soft")
      nn.manual_seed(9)
      local leaf = logits:clone():requires_grad_(true)
      local hard = F.gumbel_softmax(leaf, 0.5, true)
      assert_close(d["gumbel_hard_" .. dtype], hard, dtype, "hard")
      -- straight through: the one-hot's gradient is the soft sample's
      nn.manual_seed(9)
      local leaf2 = logits:clone():requires_grad_(true)
      local soft = F.gumbel_softmax(leaf2, 0.5)
      hard:backward(weights_like(hard))
      soft:backward(weights_like(soft))
      assert_close(flat(leaf2.grad), leaf.grad, dtype, "hard's gradient")
    end)
  end
  it("Bilinear initialises as PyTorch after the same seed", function()
    nn.manual_seed(3)
    local m = nn.Bilinear(2, 3, 4)
    assert_close(d.bilinear_weight, m.weight, "float32", "weight")
    assert_close(d.bilinear_bias, m.bias, "float32", "bias")
  end)
end)

describe("containers", function()
  it("ModuleList registers, indexes, iterates, inserts and names as PyTorch", function()
    local ml = nn.ModuleList{nn.Linear(2, 3), nn.ReLU()}
    ml:append(nn.Linear(3, 1))
    ml:insert(1, nn.Tanh())
    ml:extend{nn.Sigmoid()}
    assert.are.equal(5, #ml)
    assert.are.equal("Tanh", ml[1].__name)
    assert.are.equal("Linear", ml[2].__name)
    local names = {}
    for i, m in ipairs(ml) do names[i] = m.__name end
    assert.are.same({"Tanh", "Linear", "ReLU", "Linear", "Sigmoid"}, names)
    local keys = {}
    for k in pairs(ml:state_dict()) do keys[#keys + 1] = k end
    assert.are.same({"1.weight", "1.bias", "3.weight", "3.bias"}, keys)
    assert.are.equal(4, #ml:parameters())
    ml:eval()
    assert.is_false(ml[2].training)
    assert.are.equal("ModuleList(\n  (1): Tanh()\n  (2): Linear(in_features=2, out_features=3, bias=True)\n"
      .. "  (3): ReLU()\n  (4): Linear(in_features=3, out_features=1, bias=True)\n  (5): Sigmoid()\n)", tostring(ml))
    local err = support.expect_error(function() return ml(nn.zeros(2)) end)
    assert.truthy(err:find("ModuleList: a container has no forward", 1, true))
    err = support.expect_error(function() ml:append(nn.zeros(2)) end)
    assert.truthy(err:find("ModuleList:append: the argument is a tensor, not a module", 1, true))
    err = support.expect_error(function() ml:insert(9, nn.ReLU()) end)
    assert.truthy(err:find("ModuleList:insert: index 9 is out of range 1..6", 1, true))
  end)

  it("a model holding a ModuleList saves and loads its state", function()
    local Net = nn.Module:extend("ListNet")
    function Net:init() self.layers = nn.ModuleList{nn.Linear(2, 4), nn.Linear(4, 1)} end
    function Net:forward(x)
      for _, layer in ipairs(self.layers) do x = layer(x) end
      return x
    end
    local a, b = Net(), Net()
    local keys = {}
    for k in pairs(a:state_dict()) do keys[#keys + 1] = k end
    assert.are.same({"layers.0.weight", "layers.0.bias", "layers.1.weight", "layers.1.bias"}, keys)
    b:load_state_dict(a:state_dict())
    local x = nn.randn(3, 2)
    assert.are.same(flat(a(x)), flat(b(x)))
  end)

  it("ModuleDict keeps its order, pops, and refuses keys that are methods", function()
    local md = nn.ModuleDict{{"encoder", nn.Linear(2, 3)}, {"act", nn.ReLU()}}
    md.decoder = nn.Linear(3, 2)
    assert.are.same({"encoder", "act", "decoder"}, md:keys())
    assert.are.equal(3, #md)
    local keys = {}
    for k in pairs(md:state_dict()) do keys[#keys + 1] = k end
    assert.are.same({"encoder.weight", "encoder.bias", "decoder.weight", "decoder.bias"}, keys)
    assert.are.equal("ReLU", md:pop("act").__name)
    assert.is_false(md:contains("act"))
    local seen = {}
    for k, m in md:items() do seen[#seen + 1] = k .. "=" .. m.__name end
    assert.are.same({"encoder=Linear", "decoder=Linear"}, seen)
    assert.are.equal("ModuleDict(\n  (encoder): Linear(in_features=2, out_features=3, bias=True)\n"
      .. "  (decoder): Linear(in_features=3, out_features=2, bias=True)\n)", tostring(md))
    local err = support.expect_error(function() md.forward = nn.ReLU() end)
    assert.truthy(err:find("ModuleDict: key 'forward' is taken by a method or field of ModuleDict", 1, true))
    err = support.expect_error(function() md.x = 3 end)
    assert.truthy(err:find("ModuleDict: entry 'x' is number, not a module", 1, true))
    err = support.expect_error(function() md:pop("nope") end)
    assert.truthy(err:find("ModuleDict:pop: no entry 'nope'", 1, true))
  end)

  it("ParameterList and ParameterDict register parameters under PyTorch's names", function()
    local pl = nn.ParameterList{nn.zeros(2, 3), nn.ones(4)}
    pl:append(nn.ones(1))
    assert.are.equal(3, #pl)
    assert.is_true(pl[1].requires_grad)
    local keys = {}
    for k in pairs(pl:state_dict()) do keys[#keys + 1] = k end
    assert.are.same({"0", "1", "2"}, keys)
    assert.are.equal(3, #pl:parameters())
    assert.are.equal("ParameterList(\n    (1): Parameter containing: [torch.float32 of size 2x3]\n"
      .. "    (2): Parameter containing: [torch.float32 of size 4]\n"
      .. "    (3): Parameter containing: [torch.float32 of size 1]\n)", tostring(pl))
    local pd = nn.ParameterDict{{"scale", nn.ones(3)}, {"shift", nn.zeros(3)}}
    keys = {}
    for k in pairs(pd:state_dict()) do keys[#keys + 1] = k end
    assert.are.same({"scale", "shift"}, keys)
    local other = nn.ParameterDict{{"scale", nn.zeros(3)}, {"shift", nn.ones(3)}}
    other:load_state_dict(pd:state_dict())
    assert.are.same({1, 1, 1}, flat(other.scale))
    assert.are.equal("ParameterDict(  (x): Parameter containing: [torch.FloatTensor of size 2])",
      tostring(nn.ParameterDict{x = nn.zeros(2)}))
    local err = support.expect_error(function() pl:append(nn.ReLU()) end)
    assert.truthy(err:find("ParameterList:append: the argument is a module, not a tensor", 1, true))
  end)
end)

describe("printing as PyTorch", function()
  it("prints each new module with PyTorch's extra_repr", function()
    local expected = {
      {nn.ReLU6(), "ReLU6()"}, {nn.Hardswish(), "Hardswish()"}, {nn.CELU(), "CELU(alpha=1.0)"},
      {nn.GLU(), "GLU(dim=-1)"}, {nn.Softmin(2), "Softmin(dim=2)"}, {nn.Softshrink(), "Softshrink(0.5)"},
      {nn.Hardshrink(), "Hardshrink(0.5)"}, {nn.Tanhshrink(), "Tanhshrink()"},
      {nn.Threshold(0.1, 20), "Threshold(threshold=0.1, value=20)"},
      {nn.RReLU(), "RReLU(lower=0.125, upper=0.3333333333333333)"},
      {nn.Unflatten(2, {2, 3}), "Unflatten(dim=2, unflattened_size=(2, 3))"},
      {nn.Bilinear(2, 3, 4), "Bilinear(in1_features=2, in2_features=3, out_features=4, bias=True)"},
      {nn.CosineSimilarity(), "CosineSimilarity()"}, {nn.PairwiseDistance(), "PairwiseDistance()"},
      {nn.Softmax2d(), "Softmax2d()"},
    }
    for _, e in ipairs(expected) do assert.are.equal(e[2], tostring(e[1])) end
  end)
end)

describe("misuse errors name the module", function()
  local function fails(pattern, fn)
    local err = support.expect_error(fn)
    assert(err:find(pattern, 1, true), "expected '" .. pattern .. "' in: " .. err)
  end
  it("raises clear errors", function()
    fails("Threshold: threshold must be a number, got nil", function() return nn.Threshold() end)
    fails("celu: alpha must be a finite non-zero number, got 0", function() return F.celu(nn.ones(2), 0) end)
    fails("Softshrink: lambd must be a non-negative number, got -1", function() return nn.Softshrink(-1) end)
    fails("glu: halving dimension must be even, but dim -1 is size 3", function() return F.glu(nn.ones(2, 3)) end)
    fails("Softmax2d: input must have 3 or 4 dims", function() return nn.Softmax2d()(nn.ones(2, 3)) end)
    fails("Softmin: dim is required", function() return nn.Softmin() end)
    fails("bilinear: input1 has 3 features in its last dim, the layer expects 2", function()
      return nn.Bilinear(2, 3, 4)(nn.ones(5, 3), nn.ones(5, 3))
    end)
    fails("bilinear: input1 (5x2) and input2 (4x3) must have the same leading dims", function()
      return nn.Bilinear(2, 3, 4)(nn.ones(5, 2), nn.ones(4, 3))
    end)
    fails("Unflatten: unflattened_size (2, 4) does not match dim 2 of size 6", function()
      return nn.Unflatten(2, {2, 4})(nn.ones(3, 6))
    end)
    fails("cosine_similarity: x1 (2x3) and x2 (4x3) do not broadcast to one shape", function()
      return F.cosine_similarity(nn.ones(2, 3), nn.ones(4, 3))
    end)
    fails("rrelu: lower (0.5) must not exceed upper (0.2)", function() return F.rrelu(nn.ones(2), 0.5, 0.2) end)
    fails("normalize: dim 3 is out of range", function() return F.normalize(nn.ones(2, 2), 2, 3) end)
  end)
  it("losses name themselves and the cause", function()
    fails("MarginRankingLoss: all inputs must have the same number of dimensions, got sizes (3), (3), (3, 1)",
      function() return nn.MarginRankingLoss()(nn.ones(3), nn.ones(3), nn.ones(3, 1)) end)
    fails("MultiMarginLoss: target holds label 5, outside 1..4 (labels count from 1)", function()
      return nn.MultiMarginLoss()(nn.ones(2, 4), nn.tensor({1, 5}, {dtype = "int64"}))
    end)
    fails("multi_margin_loss: p must be 1 or 2, got 3", function()
      return F.multi_margin_loss(nn.ones(2, 4), nn.tensor({1, 2}, {dtype = "int64"}), {p = 3})
    end)
    fails("SoftMarginLoss: input (2, 3) and target (3) must have the same shape", function()
      return nn.SoftMarginLoss()(nn.ones(2, 3), nn.ones(3))
    end)
    fails("GaussianNLLLoss: var (2) does not fit input (4, 3)", function()
      return nn.GaussianNLLLoss()(nn.ones(4, 3), nn.ones(4, 3), nn.ones(2))
    end)
    fails("GaussianNLLLoss: var has negative entries", function()
      return nn.GaussianNLLLoss()(nn.ones(2), nn.ones(2), nn.tensor{1, -1})
    end)
    fails("TripletMarginLoss: unknown option 'margn'", function() return nn.TripletMarginLoss{margn = 1} end)
    fails("CosineEmbeddingLoss: reduction must be 'mean', 'sum' or 'none', got 'avg'", function()
      return nn.CosineEmbeddingLoss{reduction = "avg"}
    end)
    assert.are.equal("TripletMarginLoss()", tostring(nn.TripletMarginLoss()))
    local lp = nn.zeros(5, 2, 4)
    fails("CTCLoss: input_lengths[2] = 6 exceeds the 5 time steps of log_probs", function()
      return nn.CTCLoss()(lp, nn.tensor({{2, 3}, {2, 2}}, {dtype = "int64"}), {5, 6}, {2, 2})
    end)
    fails("CTCLoss: target label 2 of sample 1 is 1; labels are 1..4 without blank (1)", function()
      return nn.CTCLoss()(lp, nn.tensor({{2, 1}, {2, 2}}, {dtype = "int64"}), {5, 5}, {2, 2})
    end)
    fails("CTCLoss: target_lengths has 1 entries for a batch of 2", function()
      return nn.CTCLoss()(lp, nn.tensor({{2, 3}, {2, 2}}, {dtype = "int64"}), {5, 5}, {2})
    end)
    fails("CTCLoss: log_probs must be (T, N, C) or (T, C), got (5)", function()
      return nn.CTCLoss()(nn.zeros(5), nn.tensor({2}, {dtype = "int64"}), {5}, {1})
    end)
  end)
  it("CTCLoss's gradient w.r.t. log_probs passes gradcheck", function()
    local lp = nn.randn(5, 2, 4, {dtype = "float64"}):log_softmax(3):detach():requires_grad_(true)
    local targets = nn.tensor({{2, 3, 3}, {4, 2, 1}}, {dtype = "int64"})
    assert.is_true(nn.gradcheck(function(x) return F.ctc_loss(x, targets, {5, 4}, {3, 2}, "none") end, {lp}))
  end)
end)

-- Embedding, scaled_dot_product_attention, MultiheadAttention and the
-- Transformer layers and stacks: outputs and gradients against PyTorch 1.13
-- (tests/fixtures/attention_reference.lua, written by
-- tests/fixtures/gen_attention.py), initial draws after a seed, state_dict
-- names, printing, train/eval, float64 gradient checks and the errors
-- misuse raises.
local nn = require "nn"
local root = os.getenv("NN_ROOT") or "."
local support = dofile(root .. "/tests/lua/support.lua")
local flat = support.flat
local expect_error = support.expect_error
local F = nn.F
local reference = dofile(root .. "/tests/fixtures/attention_reference.lua")

local function tensor_of(entry)
  if #entry.shape == 0 then return nn.tensor(entry.values[1], {dtype = entry.dtype}) end
  return nn.tensor(entry.values, {dtype = entry.dtype}):reshape(entry.shape)
end

local function same_shape(entry, t, what)
  assert.are.same(entry.shape, t:size(), what .. ": shape")
end

-- float32: the ops sum in another order than PyTorch's; float64 agrees to
-- rounding.
local function assert_values(entry, t, what)
  same_shape(entry, t, what)
  local tol = t.dtype == "float64" and 1e-10 or 2e-5
  local got = flat(t)
  for i, expected in ipairs(entry.values) do
    local ok = (expected == got[i]) or (expected ~= expected and got[i] ~= got[i]) or math.abs(expected - got[i]) <= tol * math.max(1, math.abs(expected))
    if not ok then
      error(string.format("%s, element %d: expected %.17g, got %.17g", what, i, expected, got[i]), 2)
    end
  end
end

-- The module a case describes, its state loaded from the fixture.
local function build(case)
  local o = case.options
  local m
  if case.kind == "MultiheadAttention" then
    m = nn.MultiheadAttention(o.embed_dim, o.num_heads, {bias = o.bias, kdim = o.kdim, vdim = o.vdim,
                                                         batch_first = o.batch_first})
  elseif case.kind == "TransformerEncoderLayer" or case.kind == "TransformerDecoderLayer" then
    m = nn[case.kind](o.d_model, o.nhead, {dim_feedforward = o.dim_feedforward, dropout = o.dropout,
      activation = o.activation, batch_first = o.batch_first, norm_first = o.norm_first})
  elseif case.kind == "TransformerEncoder" then
    local layer = nn.TransformerEncoderLayer(o.d_model, o.nhead, {dim_feedforward = o.dim_feedforward,
      dropout = o.dropout, batch_first = o.batch_first})
    m = nn.TransformerEncoder(layer, o.num_layers, o.norm and nn.LayerNorm(o.d_model) or nil)
  elseif case.kind == "TransformerDecoder" then
    local layer = nn.TransformerDecoderLayer(o.d_model, o.nhead, {dim_feedforward = o.dim_feedforward,
      dropout = o.dropout})
    m = nn.TransformerDecoder(layer, o.num_layers)
  elseif case.kind == "Transformer" then
    m = nn.Transformer(o)
  elseif case.kind == "Embedding" then
    m = nn.Embedding(o.num_embeddings, o.embedding_dim, {padding_idx = o.padding_idx, max_norm = o.max_norm,
      norm_type = o.norm_type, scale_grad_by_freq = o.scale_grad_by_freq})
  end
  if m then
    m = m:to(case.dtype)
    local sd = {}
    for k, v in pairs(case.state) do sd[k] = tensor_of(v) end
    m:load_state_dict(sd)
  end
  return m
end

-- Runs a case's forward: the inputs as leaves (a tensor given twice stays
-- one), the forward options naming inputs by position.
local function run(case, m)
  local inputs = {}
  for i, entry in ipairs(case.inputs) do
    local first = case.same_as[i]
    if first ~= i then
      inputs[i] = inputs[first]
    else
      inputs[i] = tensor_of(entry)
      if inputs[i].dtype == "float32" or inputs[i].dtype == "float64" then inputs[i]:requires_grad_(true) end
    end
  end
  local opts = {}
  for k, v in pairs(case.forward) do
    if math.type(v) == "integer" then opts[k] = inputs[v] else opts[k] = v end
  end
  local outputs
  local kind = case.kind
  if kind == "MultiheadAttention" then
    outputs = {m(inputs[1], inputs[2], inputs[3], opts)}
    if case.forward.need_weights == false then outputs = {outputs[1]} end
  elseif kind == "sdpa" then
    outputs = {F.scaled_dot_product_attention(inputs[1], inputs[2], inputs[3], opts)}
  elseif kind == "TransformerEncoderLayer" then
    outputs = {m(inputs[1], {src_mask = opts.src_mask, src_key_padding_mask = opts.src_key_padding_mask})}
  elseif kind == "TransformerEncoder" then
    outputs = {m(inputs[1], opts)}
  elseif kind == "TransformerDecoderLayer" or kind == "TransformerDecoder" or kind == "Transformer" then
    outputs = {m(inputs[1], inputs[2], opts)}
  elseif kind == "Embedding" then
    outputs = {m(inputs[1])}
  end
  return inputs, outputs
end

describe("against PyTorch 1.13", function()
  for _, case in ipairs(reference.cases) do
    it(case.name .. " (" .. case.dtype .. "): outputs and gradients", function()
      local m = build(case)
      local inputs, outputs = run(case, m)
      assert.are.equal(#case.outputs, #outputs)
      for i, expected in ipairs(case.outputs) do assert_values(expected, outputs[i], "output " .. i) end
      local upstream = {}
      for i, u in ipairs(case.upstream) do upstream[i] = tensor_of(u) end
      local loss = (outputs[1] * upstream[1]):sum()
      if outputs[2] then loss = loss + (outputs[2] * upstream[2]):sum() end
      loss:backward()
      for i, expected in ipairs(case.input_grads) do
        if expected ~= "none" and case.same_as[i] == i then
          assert_values(expected, inputs[i].grad, "gradient of input " .. i)
        end
      end
      if m then
        local params = {}
        for name, p in m:named_parameters() do params[name] = p end
        for name, expected in pairs(case.param_grads) do
          assert(params[name], "no parameter named " .. name)
          assert_values(expected, params[name].grad, "gradient of " .. name)
        end
        if case.weight_after then assert_values(case.weight_after, m.weight, "weight after the lookup") end
      end
    end)
  end
end)

describe("initialisation and names", function()
  local makers = {
    Embedding = function() return nn.Embedding(7, 4, {padding_idx = 4}) end,
    MultiheadAttention = function() return nn.MultiheadAttention(8, 2) end,
    ["MultiheadAttention kdim"] = function() return nn.MultiheadAttention(8, 2, {kdim = 3, vdim = 5}) end,
    TransformerEncoderLayer = function() return nn.TransformerEncoderLayer(8, 2, {dim_feedforward = 16}) end,
    Transformer = function()
      return nn.Transformer({d_model = 4, nhead = 2, num_encoder_layers = 1, num_decoder_layers = 1,
                             dim_feedforward = 6})
    end,
  }
  for _, draw in ipairs(reference.draws) do
    it(draw.name .. " draws PyTorch's weights after the same seed, under PyTorch's names", function()
      nn.manual_seed(42)
      local m = makers[draw.name]()
      local sd = m:state_dict()
      local names, expected_names = {}, {}
      for k in pairs(sd) do names[#names + 1] = k end
      for k in pairs(draw.state) do expected_names[#expected_names + 1] = k end
      table.sort(names)
      table.sort(expected_names)
      assert.are.same(expected_names, names)
      for k, entry in pairs(draw.state) do
        same_shape(entry, sd[k], k)
        local got = flat(sd[k])
        for i, v in ipairs(entry.values) do
          assert(math.abs(v - got[i]) <= 1e-6, string.format("%s element %d: expected %.9g, got %.9g", k, i, v, got[i]))
        end
      end
    end)
  end

  it("state_dict keys follow PyTorch's order in a stack", function()
    local enc = nn.TransformerEncoder(nn.TransformerEncoderLayer(4, 2, {dim_feedforward = 6}), 2, nn.LayerNorm(4))
    local keys = {}
    for k in pairs(enc:state_dict()) do keys[#keys + 1] = k end
    assert.are.equal("layers.0.self_attn.in_proj_weight", keys[1])
    assert.are.equal("layers.1.self_attn.in_proj_weight", keys[13])
    assert.are.equal("norm.bias", keys[#keys])
  end)

  it("a stack's layers start equal and learn apart", function()
    local enc = nn.TransformerEncoder(nn.TransformerEncoderLayer(4, 2, {dim_feedforward = 6}), 2)
    local a, b = enc.layers[1].linear1.weight, enc.layers[2].linear1.weight
    assert.are.same(flat(a), flat(b))
    assert.are_not.equal(a, b)
    nn.no_grad(function() a:add_(1) end)
    assert.are_not.same(flat(a), flat(b))
  end)

  it("prints as PyTorch", function()
    local e = nn.Embedding(10, 3, {padding_idx = 1, max_norm = 1.0, norm_type = 1.0, scale_grad_by_freq = true})
    -- padding_idx is 1-based in nnlua
    assert.are.equal(reference.reprs.Embedding:gsub("padding_idx=0", "padding_idx=1"), tostring(e))
    assert.are.equal(reference.reprs.TransformerDecoderLayer,
      tostring(nn.TransformerDecoderLayer(8, 2, {dim_feedforward = 16})))
  end)

  it("Embedding.from_pretrained keeps the weight and freezes it", function()
    local w = nn.tensor({{1, 2}, {3, 4}, {5, 6}})
    local e = nn.Embedding.from_pretrained(w)
    assert.is_false(e.weight.requires_grad)
    assert.are.same({3, 4, 5, 6}, flat(e(nn.tensor({2, 3}, {dtype = "int64"}))))
    assert.is_true(nn.Embedding.from_pretrained(w, {freeze = false}).weight.requires_grad)
  end)

  it("generate_square_subsequent_mask is -inf above the diagonal", function()
    local m = nn.Transformer.generate_square_subsequent_mask(3)
    local inf = math.huge
    assert.are.same({0, -inf, -inf, 0, 0, -inf, 0, 0, 0}, flat(m))
  end)
end)

describe("train and eval", function()
  it("dropout acts in training mode only", function()
    nn.manual_seed(3)
    local layer = nn.TransformerEncoderLayer(8, 2, {dim_feedforward = 16, dropout = 0.5})
    local x = nn.randn(5, 2, 8)
    layer:eval()
    local a, b = layer(x), layer(x)
    assert.are.same(flat(a), flat(b))
    layer:train()
    local c = layer(x)
    assert.are_not.same(flat(a), flat(c))
  end)
end)

describe("gradcheck in float64", function()
  local float64 = {dtype = "float64", requires_grad = true}
  it("scaled_dot_product_attention with a float mask", function()
    nn.manual_seed(5)
    local q, k, v = nn.randn(2, 3, 4, float64), nn.randn(2, 5, 4, float64), nn.randn(2, 5, 3, float64)
    local mask = nn.randn(3, 5, {dtype = "float64"})
    assert.is_true(nn.gradcheck(function(a, b, c)
      return F.scaled_dot_product_attention(a, b, c, {attn_mask = mask})
    end, {q, k, v}))
  end)

  it("MultiheadAttention's inputs", function()
    nn.manual_seed(6)
    local m = nn.MultiheadAttention(4, 2, {kdim = 3}):double()
    local q, k, v = nn.randn(3, 2, 4, float64), nn.randn(2, 2, 3, float64), nn.randn(2, 2, 4, float64)
    assert.is_true(nn.gradcheck(function(a, b, c) return (m(a, b, c)) end, {q, k, v}))
  end)

  it("Embedding's weight (padding_idx and scale_grad_by_freq change the gradient on purpose)", function()
    nn.manual_seed(7)
    local w = nn.randn(5, 3, float64)
    local idx = nn.tensor({{1, 3, 3}, {5, 2, 3}}, {dtype = "int64"})
    assert.is_true(nn.gradcheck(function(weight)
      return F.embedding(idx, weight)
    end, {w}))
  end)

  it("a decoder layer's inputs", function()
    nn.manual_seed(8)
    local m = nn.TransformerDecoderLayer(4, 2, {dim_feedforward = 6, dropout = 0, norm_first = true}):double()
    local t, mem = nn.randn(3, 1, 4, float64), nn.randn(2, 1, 4, float64)
    assert.is_true(nn.gradcheck(function(a, b) return m(a, b) end, {t, mem}))
  end)
end)

describe("misuse", function()
  local m = nn.MultiheadAttention(8, 2)
  local x = nn.randn(4, 3, 8)

  it("a mask of the wrong shape names the layer and both shapes", function()
    expect_error(function() m(x, x, x, {attn_mask = nn.zeros(3, 4)}) end,
      "multihead_attention: attn_mask should have shape (4, 4), got (3, 4)")
    expect_error(function() m(x, x, x, {attn_mask = nn.zeros(5, 4, 4)}) end,
      "multihead_attention: attn_mask should have shape (6, 4, 4), got (5, 4, 4)")
    expect_error(function() m(x, x, x, {key_padding_mask = nn.zeros(4, 3, {dtype = "bool"})}) end,
      "multihead_attention: key_padding_mask should have shape (3, 4), got (4, 3)")
  end)

  it("embed_dim must divide into the heads", function()
    expect_error(function() nn.MultiheadAttention(10, 3) end,
      "MultiheadAttention: embed_dim (10) must be divisible by num_heads (3)")
    expect_error(function() nn.TransformerEncoderLayer(10, 4) end, "embed_dim (10) must be divisible by num_heads (4)")
  end)

  it("inputs of the wrong rank or size", function()
    expect_error(function() m(nn.randn(1, 4, 3, 8), x, x) end,
      "multihead_attention: query should be 2-D (unbatched: length, embed_dim) or 3-D (batched), got 4-D")
    expect_error(function() m(nn.randn(4, 3, 6), x, x) end,
      "multihead_attention: query has 6 features (embed_dim), the layer expects 8")
    expect_error(function() m(x, nn.randn(4, 2, 8), nn.randn(4, 2, 8)) end, "the same batch size")
    expect_error(function() m(x, x, x, {need_weight = true}) end, "unknown option 'need_weight'")
  end)

  it("Embedding refuses an index out of range, naming it", function()
    local e = nn.Embedding(10, 3)
    expect_error(function() e(nn.tensor({1, 12}, {dtype = "int64"})) end,
      "embedding: index 12 is out of range for 10 embeddings")
    expect_error(function() e(nn.tensor({0}, {dtype = "int64"})) end,
      "embedding: index 0 is out of range for 10 embeddings")
    expect_error(function() e(nn.tensor({1.0})) end, "Embedding: input must hold int64 indices")
    expect_error(function() nn.Embedding(10, 3, {padding_idx = 11}) end, "Embedding: padding_idx must be")
    expect_error(function() nn.Embedding(10, 3, {sparse = true}) end, "sparse gradients are not supported")
  end)

  it("scaled_dot_product_attention checks its inputs", function()
    local q = nn.randn(2, 3, 4)
    expect_error(function() F.scaled_dot_product_attention(q, nn.randn(2, 3, 5), q) end,
      "scaled_dot_product_attention: query and key must have the same last dim, got 4 and 5")
    expect_error(function()
      F.scaled_dot_product_attention(q, q, q, {is_causal = true, attn_mask = nn.zeros(3, 3)})
    end, "give either attn_mask or is_causal = true, not both")
  end)

  it("Transformer checks src and tgt", function()
    local t = nn.Transformer({d_model = 4, nhead = 2, num_encoder_layers = 1, num_decoder_layers = 1,
                              dim_feedforward = 6})
    expect_error(function() t(nn.randn(3, 2, 4), nn.randn(3, 5, 4)) end, "the batch number of src and tgt must be equal")
    expect_error(function() t(nn.randn(3, 2, 5), nn.randn(3, 2, 5)) end, "must be equal to d_model (4)")
  end)
end)

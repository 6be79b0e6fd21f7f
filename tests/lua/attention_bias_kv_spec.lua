-- nn.MultiheadAttention's add_bias_kv and add_zero_attn against PyTorch 1.13
-- (tests/fixtures/attention_bias_kv_reference.lua, from
-- gen_attention_bias_kv.py): parameters drawn after the same seed, state_dict
-- names and shapes, outputs, attention weights and gradients with the same
-- weights, masks padded for the added positions.
local nn = require "nn"
local support = dofile((os.getenv("NN_ROOT") or ".") .. "/tests/lua/support.lua")
local flat = support.flat

local ref = dofile((os.getenv("NN_ROOT") or ".") .. "/tests/fixtures/attention_bias_kv_reference.lua")

local function assert_close(want, got, what, tol)
  assert.are.equal(#want, #got, what .. ": length")
  for i = 1, #want do
    assert(math.abs(want[i] - got[i]) <= tol * (1 + math.abs(want[i])),
      string.format("%s: element %d is %.9g, PyTorch's %.9g", what, i, got[i], want[i]))
  end
end

local function tensor(entry)
  return nn.tensor(entry.values, {dtype = entry.dtype == "bool" and "bool" or "float32"}):view(table.unpack(entry.shape))
end

local function build(case)
  nn.manual_seed(21)
  return nn.MultiheadAttention(case.E, case.H, {bias = case.bias, add_bias_kv = case.add_bias_kv,
    add_zero_attn = case.add_zero_attn, kdim = case.kdim, vdim = case.vdim, batch_first = case.batch_first})
end

describe("MultiheadAttention add_bias_kv and add_zero_attn", function()
  it("draw PyTorch's parameters after the same seed, under PyTorch's names", function()
    for _, case in ipairs(ref) do
      local m = build(case)
      local order = {}
      for name in m:named_parameters() do order[#order + 1] = name end
      local sd = m:state_dict()
      assert.are.equal(#case.state, #order, case.name)
      for k, e in ipairs(case.state) do
        assert.are.equal(e.name, order[k], case.name .. ": parameter order")
        assert.are.same(e.shape, sd[e.name]:size(), case.name .. " " .. e.name)
        assert_close(e.values, flat(sd[e.name]), case.name .. " " .. e.name, 1e-6)
      end
      assert.are.equal(case.add_bias_kv == true, m.bias_k ~= nil, case.name)
    end
  end)

  it("give PyTorch's outputs, weights and gradients, masks padded", function()
    for _, case in ipairs(ref) do
      local m = build(case)
      local q = tensor(case.query):requires_grad_(true)
      local k, v = q, q
      if case.key then k, v = tensor(case.key):requires_grad_(true), tensor(case.value):requires_grad_(true) end
      local opts = {average_attn_weights = case.average ~= false}
      if case.attn_mask then opts.attn_mask = tensor(case.attn_mask) end
      if case.key_padding_mask then opts.key_padding_mask = tensor(case.key_padding_mask) end
      local out, weights = m(q, k, v, opts)
      assert_close(case.output.values, flat(out), case.name .. " output", 1e-5)
      assert.are.same(case.weights.shape, weights:size(), case.name .. " weights shape")
      assert_close(case.weights.values, flat(weights), case.name .. " weights", 1e-5)
      local w = nn.linspace(-1, 1, out:numel()):view(table.unpack(out:size()))
      ;(out * w):sum():backward()
      assert_close(case.query_grad, flat(q.grad), case.name .. " query gradient", 1e-5)
      if case.key then
        assert_close(case.key_grad, flat(k.grad), case.name .. " key gradient", 1e-5)
        assert_close(case.value_grad, flat(v.grad), case.name .. " value gradient", 1e-5)
      end
      for name, p in m:named_parameters() do
        assert_close(case.param_grads[name], flat(p.grad), case.name .. " " .. name .. " gradient", 1e-5)
      end
    end
  end)

  it("load and save bias_k and bias_v with a PyTorch state_dict", function()
    local m = nn.MultiheadAttention(4, 2, {add_bias_kv = true})
    local sd = m:state_dict()
    sd.bias_k = nn.full({1, 1, 4}, 0.5)
    m:load_state_dict(sd)
    assert.are.same({0.5, 0.5, 0.5, 0.5}, flat(m.bias_k))
    sd.bias_v = nil
    assert.has_error(function() m:load_state_dict(sd) end)
    local plain = nn.MultiheadAttention(4, 2)
    assert.is_nil(plain:state_dict().bias_k)
  end)

  it("refuse flags that are not booleans, naming the layer", function()
    support.expect_error(function() nn.MultiheadAttention(4, 2, {add_bias_kv = 1}) end, "MultiheadAttention", "add_bias_kv")
    support.expect_error(function() nn.MultiheadAttention(4, 2, {add_zero_attn = "yes"}) end, "MultiheadAttention", "add_zero_attn")
  end)
end)

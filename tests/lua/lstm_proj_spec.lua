-- nn.LSTM with proj_size (PyTorch's projected LSTM) against PyTorch 1.13
-- (tests/fixtures/lstm_proj_reference.lua, from gen_lstm_proj.py): the
-- state_dict's names and shapes, outputs, final states and gradients with
-- the same weights; one layer, a bidirectional stack, a packed batch,
-- float64; and the errors.
local nn = require "nn"
local support = dofile((os.getenv("NN_ROOT") or ".") .. "/tests/lua/support.lua")
local flat = support.flat
local expect_error = support.expect_error

local ref = dofile((os.getenv("NN_ROOT") or ".") .. "/tests/fixtures/lstm_proj_reference.lua")

local function assert_close(want, got, what, tol)
  assert.are.equal(#want, #got, what .. ": length")
  for i = 1, #want do
    assert(math.abs(want[i] - got[i]) <= tol * (1 + math.abs(want[i])),
      string.format("%s: element %d is %.9g, PyTorch's %.9g", what, i, got[i], want[i]))
  end
end

local function tensor(entry, dtype)
  return nn.tensor(entry.values, {dtype = dtype}):view(table.unpack(entry.shape))
end

local function weights_like(t)
  return nn.linspace(-1, 1, t:numel(), {dtype = t.dtype}):view(table.unpack(t:size()))
end

local function build(case)
  local dtype = case.dtype or "float32"
  local m = nn.LSTM(case.input_size, case.hidden_size, {num_layers = case.num_layers, bias = case.bias,
    batch_first = case.batch_first, bidirectional = case.bidirectional, proj_size = case.proj_size,
    dtype = dtype})
  return m, dtype
end

describe("nn.LSTM with proj_size", function()
  it("has PyTorch's parameters, names, shapes and printing", function()
    for _, case in ipairs(ref) do
      local m = build(case)
      local sd = m:state_dict()
      local names = {}
      for name, t in pairs(sd) do names[#names + 1] = name; assert(t) end
      assert.are.equal(#case.state, #names, case.name)
      local order = {}
      for name in m:named_parameters() do order[#order + 1] = name end
      for k, e in ipairs(case.state) do
        assert.are.same(e.shape, sd[e.name]:size(), case.name .. " " .. e.name)
        assert.are.equal(e.name, order[k], case.name .. ": parameter order")
      end
      assert.are.equal(case.repr, tostring(m):gsub("\n.*", ""), case.name)
    end
  end)

  it("gives PyTorch's outputs, final states and gradients with the same weights", function()
    for _, case in ipairs(ref) do
      local m, dtype = build(case)
      local sd = {}
      for _, e in ipairs(case.state) do sd[e.name] = tensor(e, dtype) end
      m:load_state_dict(sd)
      local x = tensor(case.input, dtype):requires_grad_(true)
      local hx, h0, c0
      if case.h0 then
        h0, c0 = tensor(case.h0, dtype):requires_grad_(true), tensor(case.c0, dtype):requires_grad_(true)
        hx = {h0, c0}
      end
      local input = x
      if case.lengths then
        input = nn.utils.rnn.pack_padded_sequence(x, nn.tensor(case.lengths, {dtype = "int64"}),
          {batch_first = case.batch_first or false, enforce_sorted = false})
      end
      local out, state = m(input, hx)
      local out_t = case.lengths and out.data or out
      local tol = dtype == "float64" and 1e-12 or 2e-6
      assert.are.same(case.output.shape, out_t:size(), case.name)
      assert_close(case.output.values, flat(out_t), case.name .. " output", tol)
      assert_close(case.h_n.values, flat(state[1]), case.name .. " h_n", tol)
      assert_close(case.c_n.values, flat(state[2]), case.name .. " c_n", tol)
      local loss = (out_t * weights_like(out_t)):sum() + (state[1] * weights_like(state[1])):sum()
        + (state[2] * weights_like(state[2])):sum() * 0.5
      loss:backward()
      assert_close(case.input_grad, flat(x.grad), case.name .. " input gradient", tol * 5)
      for name, p in m:named_parameters() do
        assert_close(case.param_grads[name], flat(p.grad), case.name .. " " .. name .. " gradient", tol * 5)
      end
      if h0 then
        assert_close(case.h0_grad, flat(h0.grad), case.name .. " h0 gradient", tol * 5)
        assert_close(case.c0_grad, flat(c0.grad), case.name .. " c0 gradient", tol * 5)
      end
    end
  end)

  it("passes gradcheck in float64", function()
    nn.manual_seed(3)
    local m = nn.LSTM(2, 3, {proj_size = 2, bidirectional = true, dtype = "float64"})
    local x = nn.randn(3, 2, 2, {dtype = "float64", requires_grad = true})
    assert.is_true(nn.gradcheck(function(input)
      local out, state = m(input)
      return out:sum() + state[1]:sum() + state[2]:sum()
    end, {x}))
  end)

  it("refuses what PyTorch refuses, naming the layer", function()
    expect_error(function() nn.LSTM(3, 5, {proj_size = 5}) end, "LSTM", "proj_size (5) must be smaller than hidden_size (5)")
    expect_error(function() nn.LSTM(3, 5, {proj_size = -1}) end, "LSTM", "proj_size must be a positive integer")
    expect_error(function() nn.LSTM(3, 5, {proj_size = 1.5}) end, "LSTM", "proj_size must be a positive integer")
    expect_error(function() nn.GRU(3, 5, {proj_size = 2}) end, "GRU", "only supported for LSTM")
    expect_error(function() nn.RNN(3, 5, {proj_size = 2}) end, "RNN", "only supported for LSTM")
    local m = nn.LSTM(3, 5, {proj_size = 2})
    expect_error(function() m(nn.zeros(4, 1, 3), {nn.zeros(1, 1, 5), nn.zeros(1, 1, 5)}) end,
      "lstm", "h0 must be (1, 1, 2)")
    expect_error(function() m(nn.zeros(4, 1, 3), {nn.zeros(1, 1, 2), nn.zeros(1, 1, 2)}) end,
      "lstm", "c0 must be (1, 1, 5)")
  end)
end)

-- Recurrent layers (nn.RNN, nn.LSTM, nn.GRU, the cells, nn.utils.rnn,
-- nn.F.one_hot): initial draws, outputs, final states and every gradient
-- against PyTorch 1.13 (tests/fixtures/rnn_reference.lua, written by
-- tests/fixtures/gen_rnn.py), float64 gradient checks, printing, state
-- dicts and the errors misuse raises.
local nn = require "nn"
local support = dofile((os.getenv("NN_ROOT") or ".") .. "/tests/lua/support.lua")
local flat, expect_error = support.flat, support.expect_error
local F, rnn_utils = nn.F, nn.utils.rnn

local reference = dofile((os.getenv("NN_ROOT") or ".") .. "/tests/fixtures/rnn_reference.lua")

local function assert_values(expected, t, tol, what)
  local got = flat(t)
  assert.are.equal(#expected.values, #got, what .. ": number of elements")
  for i, e in ipairs(expected.values) do
    if math.abs(e - got[i]) > tol * math.max(1, math.abs(e)) then
      error(string.format("%s, element %d: expected %.17g, got %.17g", what, i, e, got[i]), 2)
    end
  end
  local shape = t:size()
  assert.are.same(expected.shape, shape, what .. ": shape")
end

local function tensor_of(entry, dtype, requires_grad)
  local t = nn.tensor(entry.values, {dtype = dtype})
  if #entry.shape ~= 1 then t = t:view(table.unpack(entry.shape)) end
  if requires_grad then t:requires_grad_(true) end
  return t
end

local classes = {lstm = "LSTM", gru = "GRU", rnn_tanh = "RNN", rnn_relu = "RNN"}

local function build(case)
  nn.manual_seed(case.seed)
  local class = nn[classes[case.kind] .. (case.layer and "" or "Cell")]
  local nonlinearity = case.kind:match("^rnn_(.*)")
  if case.layer then
    return class(case.input_size, case.hidden_size, case.num_layers, {bias = case.bias,
      batch_first = case.batch_first, bidirectional = case.bidirectional, dtype = case.dtype,
      nonlinearity = nonlinearity})
  end
  return class(case.input_size, case.hidden_size, {bias = case.bias, dtype = case.dtype,
    nonlinearity = nonlinearity})
end

describe("recurrent layers against PyTorch 1.13", function()
  for _, case in ipairs(reference) do
    it(case.name, function()
      local tol = case.dtype == "float64" and 1e-10 or 2e-5
      local m = build(case)
      local names = {}
      for name in m:named_parameters() do names[#names + 1] = name end
      assert.are.same(case.param_names, names)
      -- the same draws as PyTorch's after the same seed
      for _, name in ipairs(case.param_names) do assert_values(case.params[name], m[name], 0, name) end
      local x = tensor_of(case.x, case.dtype, true)
      local h0 = case.h0 and tensor_of(case.h0, case.dtype, true)
      local c0 = case.c0 and tensor_of(case.c0, case.dtype, true)
      local state = case.kind == "lstm" and h0 and {h0, c0} or h0
      local out, h_n, c_n
      if not case.layer then
        h_n, c_n = m(x, state)
      elseif case.lengths then
        local packed = rnn_utils.pack_padded_sequence(x, case.lengths, case.batch_first, false)
        local packed_out, final = m(packed, state)
        out = rnn_utils.pad_packed_sequence(packed_out, case.batch_first, 0, case.x.shape[case.batch_first and 2 or 1])
        h_n = final
      else
        out, h_n = m(x, state)
      end
      if case.kind == "lstm" and case.layer then h_n, c_n = h_n[1], h_n[2] end
      local loss = (h_n * tensor_of(case.w_h, case.dtype)):sum()
      if out then
        assert_values(case.output, out, tol, "output")
        loss = loss + (out * tensor_of(case.w_out, case.dtype)):sum()
      end
      assert_values(case.h_n, h_n, tol, "h_n")
      if case.c_n then
        assert_values(case.c_n, c_n, tol, "c_n")
        loss = loss + (c_n * tensor_of(case.w_c, case.dtype)):sum()
      end
      loss:backward()
      assert_values(case.grad_x, x.grad, tol, "x.grad")
      if h0 then assert_values(case.grad_h0, h0.grad, tol, "h0.grad") end
      if c0 then assert_values(case.grad_c0, c0.grad, tol, "c0.grad") end
      for _, name in ipairs(case.param_names) do
        assert_values(case.grads[name], m[name].grad, tol, name .. ".grad")
      end
    end)
  end
end)

describe("recurrent layers", function()
  it("pass nn.gradcheck in float64 (inputs, states and weights)", function()
    for _, kind in ipairs {"LSTM", "GRU", "RNN"} do
      nn.manual_seed(3)
      local m = nn[kind](2, 3, 2, {bidirectional = true, dtype = "float64"})
      local x = nn.randn(3, 2, 2, {dtype = "float64", requires_grad = true})
      local h0 = nn.randn(4, 2, 3, {dtype = "float64", requires_grad = true})
      local c0 = nn.randn(4, 2, 3, {dtype = "float64", requires_grad = true})
      local w = m.weight_hh_l1_reverse
      assert.is_true(nn.gradcheck(function(xx, hh, cc, _)
        local out, hn = m(xx, kind == "LSTM" and {hh, cc} or hh)
        if kind == "LSTM" then return out:sum() + hn[1]:sum() * 2 + hn[2]:sum() * 3 end
        return out:sum() + hn:sum() * 2
      end, {x, h0, c0, w}))
    end
  end)

  it("gradcheck a packed GRU and an LSTM cell", function()
    nn.manual_seed(4)
    local gru = nn.GRU(2, 3, {dtype = "float64"})
    local x = nn.randn(4, 3, 2, {dtype = "float64", requires_grad = true})
    assert.is_true(nn.gradcheck(function(xx)
      local out, hn = gru(rnn_utils.pack_padded_sequence(xx, {3, 4, 1}, false, false))
      return out.data:pow(2):sum() + hn:sum()
    end, {x}))
    local cell = nn.LSTMCell(2, 3, {dtype = "float64"})
    local y = nn.randn(2, 2, {dtype = "float64", requires_grad = true})
    assert.is_true(nn.gradcheck(function(yy)
      local h, c = cell(yy)
      return h:sum() + c:pow(2):sum()
    end, {y}))
  end)

  it("print as PyTorch prints them", function()
    assert.are.equal("LSTM(10, 20, num_layers=2, batch_first=True, dropout=0.5, bidirectional=True)",
      tostring(nn.LSTM(10, 20, 2, {batch_first = true, dropout = 0.5, bidirectional = true})))
    assert.are.equal("RNN(3, 4, bias=False)", tostring(nn.RNN(3, 4, {nonlinearity = "relu", bias = false})))
    assert.are.equal("GRU(3, 4)", tostring(nn.GRU(3, 4)))
    assert.are.equal("LSTMCell(3, 4)", tostring(nn.LSTMCell(3, 4)))
    assert.are.equal("RNNCell(3, 4, bias=False, nonlinearity=relu)", tostring(nn.RNNCell(3, 4, false, "relu")))
    assert.are.equal("GRUCell(3, 4)", tostring(nn.GRUCell(3, 4)))
  end)

  it("save and load their state under PyTorch's names", function()
    nn.manual_seed(5)
    local a = nn.LSTM(3, 4, 2, {bidirectional = true})
    local b = nn.LSTM(3, 4, 2, {bidirectional = true})
    local sd = a:state_dict()
    local keys = {}
    for k in pairs(sd) do keys[#keys + 1] = k end
    assert.are.equal(16, #keys)
    assert.is_truthy(sd["bias_hh_l1_reverse"])
    b:load_state_dict(sd)
    local x = nn.randn(2, 1, 3)
    assert.are.same(flat(a(x)), flat(b(x)))
  end)

  it("apply dropout between layers in training only", function()
    nn.manual_seed(6)
    local m = nn.GRU(3, 4, 2, {dropout = 0.9})
    local x = nn.randn(5, 2, 3)
    local eval1 = flat(m:eval()(x))
    local eval2 = flat(m(x))
    assert.are.same(eval1, eval2)
    local train = flat(m:train()(x))
    assert.are_not.same(eval1, train)
  end)

  it("give each packed sequence's final state at its own length", function()
    nn.manual_seed(7)
    local m = nn.LSTM(2, 3)
    local a, b = nn.randn(4, 2), nn.randn(2, 2)
    local packed = rnn_utils.pack_sequence({a, b})
    local _, state = m(packed)
    local _, alone = m(b:unsqueeze(2))
    local got, want = flat(state[1]:select(2, 2)), flat(alone[1]:select(2, 1))
    for i = 1, #want do assert.is_true(math.abs(got[i] - want[i]) < 1e-6) end
  end)

  it("pad, pack and unpack sequences", function()
    local a, b, c = nn.tensor({1, 2, 3}), nn.tensor({4}), nn.tensor({5, 6})
    local padded = rnn_utils.pad_sequence({a, b, c}, true, -1)
    assert.are.same({{1, 2, 3}, {4, -1, -1}, {5, 6, -1}}, padded:totable())
    local packed = rnn_utils.pack_sequence({a, b, c}, false)
    assert.are.same({1, 5, 4, 2, 6, 3}, flat(packed.data))
    assert.are.same({3, 2, 1}, packed.batch_sizes:totable())
    local back, lengths = rnn_utils.pad_packed_sequence(packed, true)
    assert.are.same({3, 1, 2}, lengths:totable())
    assert.are.same({{1, 2, 3}, {4, 0, 0}, {5, 6, 0}}, back:totable())
  end)

  it("one_hot counts labels from 1", function()
    local labels = nn.tensor({{1, 3}, {2, 2}}, {dtype = "int64"})
    assert.are.same({{{1, 0, 0}, {0, 0, 1}}, {{0, 1, 0}, {0, 1, 0}}}, F.one_hot(labels):totable())
    assert.are.same({4}, {F.one_hot(nn.tensor({1}, {dtype = "int64"}), 4):size(2)})
    expect_error(function() F.one_hot(nn.tensor({0, 1}, {dtype = "int64"}), 2) end, "one_hot", "1..2")
    expect_error(function() F.one_hot(nn.tensor({3}, {dtype = "int64"}), 2) end, "one_hot")
  end)
end)

describe("recurrent layers refuse misuse", function()
  it("an input of the wrong size, rank or dtype", function()
    local m = nn.LSTM(4, 3)
    expect_error(function() m(nn.zeros(2, 1, 5)) end, "lstm: input has 5 features, layer expects 4")
    expect_error(function() m(nn.zeros(2, 1, 1, 4)) end, "lstm: input must have 3 dimensions", "got 4")
    expect_error(function() nn.GRU(4, 3)(nn.zeros(2, 1, 5)) end, "gru: input has 5 features, layer expects 4")
    expect_error(function() nn.RNN(4, 3)(nn.zeros(2, 1, 4, {dtype = "int64"})) end, "rnn", "float32 or float64")
    expect_error(function() nn.LSTMCell(4, 3)(nn.zeros(2, 5)) end, "lstm_cell: input has 5 features, layer expects 4")
    expect_error(function() nn.GRUCell(4, 3)(nn.zeros(2, 2, 4)) end, "gru_cell: input must have 2 dimensions")
  end)

  it("an initial state of the wrong shape", function()
    local m = nn.LSTM(4, 3)
    expect_error(function() m(nn.zeros(2, 2, 4), {nn.zeros(1, 1, 3), nn.zeros(1, 2, 3)}) end,
      "lstm: h0 must be (1, 2, 3), got (1, 1, 3)")
    expect_error(function() m(nn.zeros(2, 2, 4), nn.zeros(1, 2, 3)) end, "lstm: the initial state must be a table {h0, c0}")
    expect_error(function() nn.GRU(4, 3, 2)(nn.zeros(2, 2, 4), nn.zeros(1, 2, 3)) end, "gru: h0 must be (2, 2, 3)")
    expect_error(function() nn.GRUCell(4, 3)(nn.zeros(2, 4), nn.zeros(3, 3)) end, "gru_cell: h must be (2, 3), got (3, 3)")
  end)

  it("unsorted lengths with enforce_sorted, and bad lengths", function()
    expect_error(function() rnn_utils.pack_padded_sequence(nn.zeros(3, 2, 4), {2, 3}) end,
      "pack_padded_sequence: lengths must be sorted in decreasing order when enforce_sorted is true")
    expect_error(function() rnn_utils.pack_padded_sequence(nn.zeros(3, 2, 4), {4, 3}) end,
      "pack_padded_sequence", "longer than the input's 3 steps")
    expect_error(function() rnn_utils.pack_padded_sequence(nn.zeros(3, 2, 4), {3}) end,
      "pack_padded_sequence: 1 lengths for a batch of 2")
    expect_error(function() rnn_utils.pack_padded_sequence(nn.zeros(3, 2, 4), {3, 0}) end,
      "pack_padded_sequence", "at least one step")
  end)

  it("bad constructor arguments", function()
    expect_error(function() nn.LSTM(4, 0) end, "LSTM: hidden_size must be a positive integer")
    expect_error(function() nn.RNN(4, 3, {nonlinearity = "sigmoid"}) end, "RNN: nonlinearity must be 'tanh' or 'relu'")
    expect_error(function() nn.GRU(4, 3, {dropuot = 0.1}) end, "GRU: unknown option 'dropuot'")
    expect_error(function() nn.LSTM(4, 3, {proj_size = 3}) end, "proj_size (3) must be smaller than hidden_size (3)")
  end)

  it("the engine's checks of its own arguments", function()
    local C = nn._C
    local sizes = nn.tensor({2, 3}, {dtype = "int64"})
    expect_error(function() C.rnn_layer("gru", nn.zeros(5, 9), nn.zeros(2, 3), nn.zeros(27), sizes, false) end,
      "gru: batch_sizes must be positive and non-increasing")
    sizes = nn.tensor({2, 2}, {dtype = "int64"})
    expect_error(function() C.rnn_layer("gru", nn.zeros(4, 8), nn.zeros(2, 3), nn.zeros(27), sizes, false) end,
      "gru: the input's products must be (4 x 9)")
    expect_error(function() C.rnn_layer("lstm", nn.zeros(4, 12), nn.zeros(2, 3), nn.zeros(36), sizes, false) end,
      "lstm: the initial state must be (4 x hidden)")
  end)
end)

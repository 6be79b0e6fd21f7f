-- zero_grad leaves a gradient's zeros unwritten where nothing but its
-- parameter holds it (engine/src/autograd.c, nn_zero_grad_deferred): the
-- next backward writes the weight's gradient over the old values, and any
-- other reader sees the zeros written first. Every path must read as
-- PyTorch's zero_grad(set_to_none = false) reads: .grad, hooks, a second
-- backward, a step over a parameter the backward did not reach, a capture;
-- and the results must be those of zeros written and added onto, bit for
-- bit (signed zeros included), at every path a weight's gradient product
-- takes.
local nn = require "nn"
local support = dofile((os.getenv("NN_ROOT") or ".") .. "/tests/lua/support.lua")
local flat = support.flat

-- zero_grad with no Lua value of any .grad left alive: the deferred path
local function zero_grad_alone(opt)
  collectgarbage()
  collectgarbage()
  opt:zero_grad()
end

-- a and b (flat lists) hold the same bits: equal, zeros of the same sign
local function assert_same_bits(a, b, what)
  assert.are.equal(#a, #b)
  for i = 1, #a do
    local x, y = a[i], b[i]
    local same = (x == y and (x ~= 0 or 1 / x == 1 / y)) or (x ~= x and y ~= y)
    assert(same, string.format("%s[%d]: %.17g against %.17g", what, i, x, y))
  end
end

local function all_zero(t)
  for _, v in ipairs(flat(t)) do
    if v ~= 0 or 1 / v < 0 then return false end
  end
  return true
end

-- Trains a ReLU MLP of these sizes a few steps with SGD and momentum, its
-- zero_grad deferred (hold = false) or done at once (hold = true: a Lua
-- value of every .grad kept, as a user's would). Inputs with negative
-- values and units that die in the ReLU give products with zero sums of
-- negative terms: a -0 written where +0 + -0 gives +0 would show.
local function train(sizes, batch, dtype, hold)
  nn.manual_seed(7)
  local layers = {}
  for i = 1, #sizes - 1 do
    layers[#layers + 1] = nn.Linear(sizes[i], sizes[i + 1])
    if i < #sizes - 1 then layers[#layers + 1] = nn.ReLU() end
  end
  local model = nn.Sequential(table.unpack(layers))
  if dtype == "float64" then model:double() end
  local params = model:parameters()
  local opt = nn.optim.SGD(params, {lr = 0.05, momentum = 0.9})
  local x = (nn.rand(batch, sizes[1]) - 0.5):to(dtype)
  local y = nn.rand(batch, sizes[#sizes]):to(dtype)
  local held = {}
  for step = 1, 3 do
    if hold then opt:zero_grad() else zero_grad_alone(opt) end
    nn.MSELoss()(model(x), y):backward()
    if hold and step == 1 then
      for i, p in ipairs(params) do held[i] = p.grad end
    end
    opt:step()
  end
  local out = {}
  for i, p in ipairs(params) do out[#out + 1] = {flat(p), flat(p.grad)} end
  return out
end

-- A Linear(4, 3) with gradients from a backward over x (or a random
-- batch), and its SGD
local function linear_with_grads(x)
  local m = nn.Linear(4, 3)
  local opt = nn.optim.SGD(m:parameters(), {lr = 0.1})
  m(x or nn.rand(2, 4)):sum():backward()
  return m, opt
end

describe("zero_grad deferred", function()
  it("gives the same bits as zeros written and added onto, at every product path", function()
    local cases = {
      {{3, 5, 2}, 1, "float32"},      -- batch 1: the kernels' outer product
      {{40, 30, 3}, 4, "float32"},    -- a small batch: the skinny kernels
      {{48, 64, 8}, 32, "float32"},   -- small products: the kernels
      {{20, 24, 6}, 6, "float32"},    -- tiny ones
      {{128, 128, 4}, 160, "float32"}, -- OpenBLAS in one piece
      {{256, 256, 4}, 64, "float32"},  -- OpenBLAS in pieces
      {{6, 9, 2}, 5, "float64"},
      {{128, 128, 3}, 160, "float64"},
    }
    for _, c in ipairs(cases) do
      local deferred = train(c[1], c[2], c[3], false)
      local eager = train(c[1], c[2], c[3], true)
      for i = 1, #eager do
        local what = string.format("sizes %s batch %d %s param %d", table.concat(c[1], "x"), c[2], c[3], i)
        assert_same_bits(eager[i][1], deferred[i][1], what)
        assert_same_bits(eager[i][2], deferred[i][2], what .. " grad")
      end
    end
  end)

  it("reads zeros through .grad before the next backward", function()
    local m, opt = linear_with_grads()
    zero_grad_alone(opt)
    assert.is_true(all_zero(m.weight.grad))
    assert.is_true(all_zero(m.bias.grad))
  end)

  it("gives one backward's gradient, not the sum with the one before", function()
    local x = nn.rand(5, 4)
    local m, opt = linear_with_grads(x)
    local first = flat(m.weight.grad)
    zero_grad_alone(opt)
    m(x):sum():backward()
    assert_same_bits(first, flat(m.weight.grad), "weight grad")
  end)

  it("adds the gradients of two backward calls after zero_grad", function()
    local x = nn.rand(5, 4)
    local m, opt = linear_with_grads(x)
    local once = m.weight.grad:clone()
    zero_grad_alone(opt)
    m(x):sum():backward()
    m(x):sum():backward()
    assert_same_bits(flat(once + once), flat(m.weight.grad), "weight grad")
  end)

  it("hands hooks the pass's gradient: a post-accumulate hook sees .grad, a grad hook's result lands there", function()
    local x = nn.rand(5, 4)
    local m, opt = linear_with_grads(x)
    local want = m.weight.grad:clone()
    local seen
    local post = nn._C.add_hook(m.weight, "post_accumulate", function() seen = m.weight.grad:clone() end)
    zero_grad_alone(opt)
    m(x):sum():backward()
    assert_same_bits(flat(want), flat(seen), "post-accumulate hook")
    nn._C.remove_hook(m.weight, post)
    local doubled = m.weight:register_hook(function(g) return g * 2 end)
    zero_grad_alone(opt)
    m(x):sum():backward()
    assert_same_bits(flat(want * 2), flat(m.weight.grad), "grad hook")
    doubled:remove()
  end)

  it("keeps a recorded backward's gradient (create_graph)", function()
    local w = nn.tensor({{1, 2}, {3, 4}}, {requires_grad = true})
    local x = nn.tensor({{1, -1}, {2, 0.5}})
    local opt = nn.optim.SGD({w}, {lr = 0.1})
    nn.F.linear(x, w):pow(2):sum():backward()
    local want = flat(w.grad)
    zero_grad_alone(opt)
    nn.F.linear(x, w):pow(2):sum():backward({create_graph = true})
    assert_same_bits(want, flat(w.grad), "weight grad")
  end)

  it("steps a parameter the backward did not reach with a zero gradient", function()
    for _, make in ipairs {
      function(ps) return nn.optim.SGD(ps, {lr = 0.1, momentum = 0.9, weight_decay = 0.01}) end,
      function(ps) return nn.optim.Adam(ps, {lr = 0.1}) end,
    } do
      local runs = {}
      for _, deferred in ipairs {true, false} do
        nn.manual_seed(3)
        local used, unused = nn.Linear(4, 3), nn.Linear(4, 3)
        local params = {used.weight, used.bias, unused.weight, unused.bias}
        local opt = make(params)
        local x = nn.rand(5, 4)
        local held = {}
        for step = 1, 3 do
          if deferred then zero_grad_alone(opt) else opt:zero_grad() end
          local loss = used(x):sum()
          if step == 1 then loss = loss + unused(x):sum() end
          loss:backward()
          if not deferred and step == 1 then for i, p in ipairs(params) do held[i] = p.grad end end
          opt:step()
        end
        runs[#runs + 1] = {flat(unused.weight), flat(unused.weight.grad)}
      end
      assert_same_bits(runs[2][1], runs[1][1], "unused weight")
      assert_same_bits(runs[2][2], runs[1][2], "unused weight grad")
      assert.is_true(all_zero(nn.tensor(runs[1][2])))
    end
  end)

  it("clips zeros after zero_grad", function()
    local m, opt = linear_with_grads()
    zero_grad_alone(opt)
    assert.are.equal(0, nn.utils.clip_grad_norm_(m:parameters(), 1.0):item())
  end)

  it("still drops the gradients with zero_grad(true)", function()
    local m, opt = linear_with_grads()
    collectgarbage()
    opt:zero_grad(true)
    assert.is_nil(m.weight.grad)
    m(nn.rand(2, 4)):sum():backward()
    zero_grad_alone(opt)
    assert.is_true(all_zero(m.weight.grad))
  end)

  it("trains as a captured step does, with an eager zero_grad before the capture", function()
    local runs = {}
    for _, captured in ipairs {false, true} do
      nn.manual_seed(11)
      local model = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 2))
      local opt = nn.optim.SGD(model:parameters(), {lr = 0.1, momentum = 0.5})
      local x, y = nn.rand(8, 6) - 0.5, nn.rand(8, 2)
      -- a step outside, then an eager zero_grad that the capture's first step finds
      nn.MSELoss()(model(x), y):backward()
      opt:step()
      zero_grad_alone(opt)
      local function step(a, b)
        local loss = nn.MSELoss()(model(a), b)
        loss:backward()
        opt:step()
        opt:zero_grad()
        return loss
      end
      local run = captured and nn.capture(step) or step
      local losses = {}
      for i = 1, 5 do
        if not captured then collectgarbage() end
        losses[i] = run(x, y):item()
      end
      local state = {}
      for _, p in ipairs(model:parameters()) do state[#state + 1] = flat(p) end
      runs[#runs + 1] = {losses = losses, state = state}
    end
    assert_same_bits(runs[1].losses, runs[2].losses, "losses")
    for i = 1, #runs[1].state do assert_same_bits(runs[1].state[i], runs[2].state[i], "param " .. i) end
  end)
end)

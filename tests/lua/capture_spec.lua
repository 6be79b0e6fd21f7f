-- nn.capture: a training step recorded once and replayed (lua/nn_capture.c,
-- engine/src/capture.c). Every model here is trained twice from the same
-- seed, eagerly and through a captured step, and must come out bit for bit
-- the same: losses, parameters, running statistics.
local nn = require "nn"
local support = dofile((os.getenv("NN_ROOT") or ".") .. "/tests/lua/support.lua")
local expect_error, flat = support.expect_error, support.flat

-- The step every test trains with.
local function training_step(model, criterion, optimizer)
  return function(x, y)
    optimizer:zero_grad()
    local loss = criterion(model(x), y)
    loss:backward()
    optimizer:step()
    return loss
  end
end

-- Trains make() eagerly and captured over the batches (a list of {x, y}),
-- `epochs` times; after_step(optimizer), when given, runs after each step
-- (a scheduler). Returns both models, the losses and the captured step.
local function train_both(make, batches, epochs, after_step)
  local runs = {}
  for _, captured in ipairs {false, true} do
    nn.manual_seed(1234)
    local model, criterion, optimizer, scheduler = make()
    local fn = training_step(model, criterion, optimizer)
    local step = captured and nn.capture(fn) or fn
    local losses = {}
    for _ = 1, epochs do
      for _, b in ipairs(batches) do
        losses[#losses + 1] = step(b[1], b[2]):item()
        if after_step then after_step(scheduler) end
      end
    end
    runs[#runs + 1] = {model = model, losses = losses, step = step}
  end
  return runs[1], runs[2]
end

local function assert_same_losses(eager, captured)
  assert.are.equal(#eager.losses, #captured.losses)
  for i = 1, #eager.losses do
    assert(eager.losses[i] == captured.losses[i],
      string.format("loss %d: eager %.17g, captured %.17g", i, eager.losses[i], captured.losses[i]))
  end
end

-- Every entry of both state dicts (parameters and buffers) equal bit for bit.
local function assert_same_state(a, b)
  local sa, sb = a:state_dict(), b:state_dict()
  local n = 0
  for key, t in pairs(sa) do
    n = n + 1
    local u = sb[key]
    assert(u, "captured model lacks " .. key)
    if nn.is_tensor(t) then
      local x, y = flat(t), flat(u)
      for i = 1, #x do
        assert(x[i] == y[i], string.format("%s[%d]: eager %.17g, captured %.17g", key, i, x[i], y[i]))
      end
    else
      assert.are.equal(t, u, key)
    end
  end
  assert(n > 0)
end

local function xor_batches()
  return {{nn.tensor({{0, 0}, {0, 1}, {1, 0}, {1, 1}}), nn.tensor({{0}, {1}, {1}, {0}})}}
end

describe("nn.capture", function()
  it("trains an MLP with SGD and momentum exactly as eager steps do", function()
    local eager, captured = train_both(function()
      local model = nn.Sequential(nn.Linear(2, 10), nn.Sigmoid(), nn.Linear(10, 10), nn.Tanh(),
                                  nn.Linear(10, 1), nn.Sigmoid())
      return model, nn.BCELoss(), nn.optim.SGD(model:parameters(), {lr = 0.5, momentum = 0.9, weight_decay = 1e-3})
    end, xor_batches(), 60)
    assert_same_losses(eager, captured)
    assert_same_state(eager.model, captured.model)
    assert.is_nil(captured.step:why())
    local stats = captured.step:stats()
    assert.are.equal(1, stats.plans)
    assert.are.equal(1, stats.host_calls) -- the optimizer's step
    assert.is_true(stats.kernels > 10)
    assert.are.equal(60, stats.calls)
  end)

  it("keeps Adam's bias correction and a StepLR schedule exact", function()
    local batches = xor_batches()
    local eager, captured = train_both(function()
      local model = nn.Sequential(nn.Linear(2, 8), nn.ReLU(), nn.Linear(8, 1))
      local optimizer = nn.optim.Adam(model:parameters(), {lr = 0.05, amsgrad = true})
      local scheduler = nn.optim.lr_scheduler.StepLR(optimizer, {step_size = 7, gamma = 0.5})
      return model, nn.MSELoss(), optimizer, scheduler
    end, batches, 40, function(scheduler) scheduler:step() end)
    assert_same_losses(eager, captured)
    assert_same_state(eager.model, captured.model)
    assert.is_nil(captured.step:why())
  end)

  it("replays Adadelta, Adamax, NAdam, RAdam, ASGD and Rprop as eager steps, step counts and all", function()
    local configs = {
      {"Adadelta", {lr = 0.5}}, {"Adamax", {lr = 0.05}}, {"NAdam", {lr = 0.05}},
      {"RAdam", {lr = 0.05, betas = {0.5, 0.6}}}, {"ASGD", {lr = 0.05, t0 = 5}}, {"Rprop", {lr = 0.05}},
    }
    for _, c in ipairs(configs) do
      local eager, captured = train_both(function()
        local model = nn.Sequential(nn.Linear(2, 8), nn.Tanh(), nn.Linear(8, 1))
        return model, nn.MSELoss(), nn.optim[c[1]](model:parameters(), c[2])
      end, xor_batches(), 20)
      assert_same_losses(eager, captured)
      assert_same_state(eager.model, captured.model)
      assert.is_nil(captured.step:why(), c[1])
      assert.are.equal(1, captured.step:stats().host_calls, c[1])
    end
  end)

  it("replays plain SGD seeing the group's lr, momentum and params as they are at each step", function()
    -- plain SGD replays without a Lua call (lua/nn_optim.c): what it reads
    -- afresh, and what makes it run optim_sgd itself, must match eager
    local eager, captured = train_both(function()
      local model = nn.Sequential(nn.Linear(2, 6), nn.Sigmoid(), nn.Linear(6, 1), nn.Sigmoid())
      local optimizer = nn.optim.SGD(model:parameters(), {lr = 1})
      local group, steps = optimizer.param_groups[1], 0
      local function change()
        steps = steps + 1
        if steps == 10 then group.lr = 0.25 end
        if steps == 15 then group.weight_decay = 0.01 end
        if steps == 20 then group.momentum = 0.5 end -- buffers: optim_sgd itself
        if steps == 30 then group.momentum = 0 end
        if steps == 32 then group.params[1] = group.params[3] end -- same length, other tensors
        if steps == 35 then table.remove(group.params) end -- the last bias stops learning
        if steps == 40 then group.params = {group.params[1]} end
      end
      return model, nn.BCELoss(), optimizer, change
    end, xor_batches(), 50, function(change) change() end)
    assert_same_losses(eager, captured)
    assert_same_state(eager.model, captured.model)
    assert.is_nil(captured.step:why())
    assert.are.equal(1, captured.step:stats().plans)
  end)

  it("raises optim_sgd's own error when a replayed group's lr is not a number", function()
    nn.manual_seed(5)
    local model = nn.Sequential(nn.Linear(2, 3), nn.Sigmoid(), nn.Linear(3, 1))
    local optimizer = nn.optim.SGD(model:parameters(), {lr = 0.1})
    local step = nn.capture(training_step(model, nn.MSELoss(), optimizer))
    local b = xor_batches()[1]
    for _ = 1, 3 do step(b[1], b[2]) end
    optimizer.param_groups[1].lr = {}
    expect_error(function() step(b[1], b[2]) end, "sgd: the parameter group's lr must be a number, got table")
  end)

  it("trains a small CNN (conv, max-pool, batch norm in training mode) exactly", function()
    nn.manual_seed(5)
    local batches = {}
    for i = 1, 3 do batches[i] = {nn.randn(4, 1, 8, 8), nn.tensor({1, 2, 3, i}, {dtype = "int64"})} end
    local eager, captured = train_both(function()
      local model = nn.Sequential(nn.Conv2d(1, 4, 3, {padding = 1}), nn.BatchNorm2d(4), nn.ReLU(),
                                  nn.MaxPool2d(2), nn.Flatten(), nn.Linear(4 * 4 * 4, 3))
      return model, nn.CrossEntropyLoss(), nn.optim.SGD(model:parameters(), {lr = 0.1, momentum = 0.5})
    end, batches, 4)
    assert_same_losses(eager, captured)
    assert_same_state(eager.model, captured.model) -- running statistics included
    assert.is_nil(captured.step:why())
  end)

  it("draws dropout's masks as eager steps do (same seed, same training)", function()
    nn.manual_seed(9)
    local batches = {{nn.randn(16, 6), nn.randn(16, 1)}}
    local eager, captured = train_both(function()
      local model = nn.Sequential(nn.Linear(6, 32), nn.ReLU(), nn.Dropout(0.3), nn.Linear(32, 1))
      return model, nn.MSELoss(), nn.optim.SGD(model:parameters(), {lr = 0.05})
    end, batches, 20)
    assert_same_losses(eager, captured)
    assert_same_state(eager.model, captured.model)
    assert.is_nil(captured.step:why())
  end)

  it("trains an LSTM exactly", function()
    nn.manual_seed(3)
    local batches = {{nn.randn(5, 3, 4), nn.randn(5, 3, 6)}}
    local eager, captured = train_both(function()
      local lstm = nn.LSTM(4, 6)
      -- the output sequence alone, as a model with lstm's state
      local model = setmetatable({state_dict = function() return lstm:state_dict() end},
                                 {__call = function(_, x) return (lstm(x)) end})
      return model, nn.MSELoss(), nn.optim.RMSprop(lstm:parameters(), {lr = 0.01})
    end, batches, 10)
    assert_same_losses(eager, captured)
    assert_same_state(eager.model, captured.model)
    assert.is_nil(captured.step:why())
  end)

  it("captures a new plan for a new batch shape (the last, partial batch) and keeps both", function()
    nn.manual_seed(11)
    local x, y = nn.randn(10, 3), nn.randn(10, 1)
    local batches = {{x:narrow(1, 1, 4), y:narrow(1, 1, 4)}, {x:narrow(1, 5, 4), y:narrow(1, 5, 4)},
                     {x:narrow(1, 9, 2), y:narrow(1, 9, 2)}}
    local eager, captured = train_both(function()
      local model = nn.Sequential(nn.Linear(3, 5), nn.Tanh(), nn.Linear(5, 1))
      return model, nn.MSELoss(), nn.optim.SGD(model:parameters(), {lr = 0.1, momentum = 0.9})
    end, batches, 5)
    assert_same_losses(eager, captured)
    assert_same_state(eager.model, captured.model)
    assert.are.equal(2, captured.step:stats().plans)
    assert.is_nil(captured.step:why())
  end)

  it("returns the plan's tensors: the same objects, new values", function()
    local model = nn.Sequential(nn.Linear(2, 1))
    local fn, runs = training_step(model, nn.MSELoss(), nn.optim.SGD(model:parameters(), {lr = 0.1})), 0
    local step = nn.capture(function(...) runs = runs + 1 return fn(...) end)
    local x, y = nn.randn(3, 2), nn.randn(3, 1)
    step(x, y)
    local second = step(x, y)
    local v2 = second:item()
    local third = step(x, y)
    assert.are.equal(rawequal(second, third), true)
    assert.are_not.equal(v2, third:item())
    assert.is_false(third.requires_grad) -- no graph kept
    for _ = 1, 10 do step(x, y) end
    assert.are.equal(2, runs) -- the warm-up and the capture; replays run no Lua
  end)

  it("refuses a step that reads a value on the host, and runs it eagerly from then on", function()
    local batches = xor_batches()
    local seen = {}
    local function make(record)
      nn.manual_seed(2)
      local model = nn.Sequential(nn.Linear(2, 4), nn.Sigmoid(), nn.Linear(4, 1), nn.Sigmoid())
      local criterion, optimizer = nn.BCELoss(), nn.optim.SGD(model:parameters(), {lr = 1})
      return model, function(x, y)
        optimizer:zero_grad()
        local loss = criterion(model(x), y)
        if record then record[#record + 1] = loss:item() end
        loss:backward()
        optimizer:step()
        return loss
      end
    end
    local eager_model, eager_fn = make(nil)
    for _ = 1, 10 do eager_fn(batches[1][1], batches[1][2]) end
    local model, fn = make(seen)
    local step = nn.capture(fn)
    for _ = 1, 10 do step(batches[1][1], batches[1][2]) end
    assert.are.equal(10, #seen) -- every call ran the Lua function
    assert.is_truthy(tostring(step:why()):find("capture: item()", 1, true))
    assert.is_truthy(tostring(step):find("eager", 1, true))
    assert_same_state(eager_model, model)
  end)

  it("refuses zero_grad(true), which drops the buffers a plan writes", function()
    local model = nn.Sequential(nn.Linear(2, 1))
    local optimizer = nn.optim.SGD(model:parameters(), {lr = 0.1})
    local step = nn.capture(function(x, y)
      optimizer:zero_grad(true)
      local loss = nn.MSELoss()(model(x), y)
      loss:backward()
      optimizer:step()
      return loss
    end)
    for _ = 1, 3 do step(nn.ones(2, 2), nn.ones(2, 1)) end
    assert.is_truthy(tostring(step:why()):find("zero_grad(true)", 1, true))
  end)

  it("refuses a step that returns something other than tensors", function()
    local step = nn.capture(function(x) return x * 2, "text" end)
    local x = nn.ones(2)
    step(x)
    local _, second = step(x)
    assert.are.equal("text", second)
    assert.is_truthy(tostring(step:why()):find("returns a string", 1, true))
  end)

  it("raises Lua errors naming capture for wrong arguments", function()
    expect_error(function() nn.capture(5) end, "capture: expects a function", "number")
    expect_error(function() nn.capture() end, "capture: expects a function")
    expect_error(function() nn.capture(print, 2) end, "capture")
    local step = nn.capture(function(x) return x + 1 end)
    expect_error(function() step("x") end, "capture: the step's argument 1 must be a tensor", "string")
    expect_error(function() step(nn.ones(2), 3) end, "capture: the step's argument 2 must be a tensor")
    expect_error(function() step(nn.ones(2, {requires_grad = true})) end, "capture: the step's argument 1 requires grad")
    expect_error(function() step.why(5) end, "capture: why expects a captured step")
    -- an error inside the function reaches the caller, and the next call captures again
    local fail = true
    local flaky = nn.capture(function(x) if fail then error("inside the step") end return x * 3 end)
    fail = false
    flaky(nn.ones(1))
    fail = true
    expect_error(function() flaky(nn.ones(1)) end, "inside the step")
    fail = false
    assert.are.same({3}, flaky(nn.ones(1)):totable())
    assert.are.same({6}, flaky(nn.ones(1) * 2):totable())
    assert.is_nil(flaky:why())
  end)

  it("runs a captured step called inside another's capture as part of it", function()
    local inner = nn.capture(function(x) return x * 2 end)
    local outer = nn.capture(function(x) return inner(x) + 1 end)
    for i = 1, 4 do
      assert.are.same({2 * i + 1, 2 * i + 1}, outer(nn.full({2}, i)):totable())
    end
    assert.is_nil(outer:why())
    -- called by the outer warm-up, then recorded as part of the outer plan
    assert.are.equal(1, inner:stats().calls)
  end)

  it("keeps the gradients it writes alive, even when they are dropped outside it", function()
    local model = nn.Sequential(nn.Linear(3, 4))
    local optimizer = nn.optim.SGD(model:parameters(), {lr = 0.1})
    local step = nn.capture(function(x, y) -- accumulating: no zero_grad that would name the buffers
      local loss = nn.MSELoss()(model(x), y)
      loss:backward()
      optimizer:step()
      return loss
    end)
    local x, y = nn.randn(5, 3), nn.randn(5, 4)
    for _ = 1, 3 do step(x, y) end
    assert.is_true(model[1].weight.grad:sum():item() ~= 0)
    model:zero_grad(true)
    collectgarbage()
    collectgarbage()
    local others = {}
    for i = 1, 2000 do others[i] = nn.full({4, 3}, 7) end -- where a freed gradient's block would go
    step(x, y)
    for i = 1, 2000 do assert(others[i]:sum():item() == 84, "a tensor made after was written by the replay") end
  end)

  it("replays without allocating", function()
    local model = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 1))
    local step = nn.capture(training_step(model, nn.MSELoss(), nn.optim.Adam(model:parameters(), {lr = 1e-3})))
    local x, y = nn.randn(8, 4), nn.randn(8, 1)
    step(x, y)
    step(x, y)
    collectgarbage()
    collectgarbage("stop")
    local before = nn._C.memory_in_use()
    for _ = 1, 100 do step(x, y) end
    local after = nn._C.memory_in_use()
    collectgarbage("restart")
    assert.are.equal(before, after)
  end)

  it("gives back everything it keeps when the step is collected", function()
    local model = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 1))
    local fn = training_step(model, nn.MSELoss(), nn.optim.SGD(model:parameters(), {lr = 1e-3, momentum = 0.9}))
    local x, y = nn.randn(8, 4), nn.randn(8, 1)
    fn(x, y) -- gradients and momentum exist before the step does
    collectgarbage()
    collectgarbage()
    local before = nn._C.memory_in_use()
    local step = nn.capture(fn)
    for _ = 1, 5 do step(x, y) end
    assert.is_true(step:stats().bytes > 0)
    assert.is_true(nn._C.memory_in_use() > before)
    step = nil -- luacheck: ignore
    collectgarbage()
    collectgarbage()
    assert.are.equal(before, nn._C.memory_in_use())
  end)
end)

-- t:retain_grad() and t:register_hook(fn): the numbers are PyTorch 1.13's
-- for the same code (x = [1, 2, 3], y = x * 2, loss = sum(y * y), so that
-- dloss/dy = 2y = [4, 8, 12] and dloss/dx = 8x = [8, 16, 24]).
local nn = require "nn"
local support = dofile((os.getenv("NN_ROOT") or ".") .. "/tests/lua/support.lua")
local flat, expect_error = support.flat, support.expect_error

local function leaf() return nn.tensor({1, 2, 3}):requires_grad_() end
local function loss_of(y) return (y * y):sum() end

-- x's gradient through y = x * 2 when y carries the given hooks, in order.
local function x_grad_with_hooks(...)
  local x = leaf()
  local y = x * 2
  for _, hook in ipairs({...}) do y:register_hook(hook) end
  loss_of(y):backward()
  return flat(x.grad)
end

describe("retain_grad", function()
  it("keeps a computed tensor's gradient, adding up over passes", function()
    local x = leaf()
    local y = x * 2
    y:retain_grad()
    local loss = loss_of(y)
    loss:backward(true)
    assert.are.same({4, 8, 12}, flat(y.grad))
    assert.are.same({8, 16, 24}, flat(x.grad))
    loss:backward()
    assert.are.same({8, 16, 24}, flat(y.grad))
    assert.are.same({16, 32, 48}, flat(x.grad))
  end)

  it("is needed: without it a computed tensor keeps no gradient", function()
    local x = leaf()
    local y = x * 2
    loss_of(y):backward()
    assert.is_nil(y.grad)
  end)

  it("called twice keeps the gradient once", function()
    local x = leaf()
    local y = x * 2
    y:retain_grad()
    y:retain_grad()
    loss_of(y):backward()
    assert.are.same({4, 8, 12}, flat(y.grad))
  end)

  it("does not keep the tensor alive through its hook", function()
    local x = leaf()
    local y = x * 2
    y:retain_grad()
    local loss = loss_of(y)
    local watch = setmetatable({y}, {__mode = "v"})
    y = nil
    collectgarbage()
    collectgarbage()
    assert.is_nil(watch[1])
    loss:backward() -- the hook finds its tensor gone and does nothing
    assert.are.same({8, 16, 24}, flat(x.grad))
  end)

  it("does nothing on a leaf", function()
    local x = leaf()
    x:retain_grad()
    loss_of(x * 2):backward()
    assert.are.same({8, 16, 24}, flat(x.grad))
  end)

  it("keeps the gradient as the hooks added before it left it", function()
    local x = leaf()
    local y = x * 2
    y:register_hook(function(g) return g * 3 end)
    y:retain_grad()
    loss_of(y):backward()
    assert.are.same({12, 24, 36}, flat(y.grad))
    assert.are.same({24, 48, 72}, flat(x.grad))
  end)

  it("keeps the gradient before the hooks added after it", function()
    local x = leaf()
    local y = x * 2
    y:retain_grad()
    y:register_hook(function(g) return g * 3 end)
    loss_of(y):backward()
    assert.are.same({4, 8, 12}, flat(y.grad))
    assert.are.same({24, 48, 72}, flat(x.grad))
  end)

  it("refuses a tensor that does not require grad, and extra arguments", function()
    expect_error(function() nn.tensor({1, 2}):retain_grad() end,
      "retain_grad", "can't retain_grad on Tensor that has requires_grad=False")
    expect_error(function() (leaf() * 2):retain_grad(true) end, "retain_grad", "takes no arguments")
  end)
end)

describe("register_hook", function()
  it("a hook that returns a tensor replaces a computed tensor's gradient", function()
    assert.are.same({24, 48, 72}, x_grad_with_hooks(function(g) return g * 3 end))
  end)

  it("a hook that returns nothing sees the gradient and leaves it", function()
    local x = leaf()
    local y = x * 2
    local seen
    y:register_hook(function(g) seen = flat(g) end)
    loss_of(y):backward()
    assert.are.same({4, 8, 12}, seen)
    assert.are.same({8, 16, 24}, flat(x.grad))
  end)

  it("on a leaf, sees the sum over its uses once and changes what .grad gets", function()
    local x = leaf()
    local seen = {}
    x:register_hook(function(g)
      seen[#seen + 1] = flat(g)
      return g * 10
    end)
    local loss = (x * x):sum() + x:sum()
    loss:backward()
    assert.are.same({{3, 5, 7}}, seen)
    assert.are.same({30, 50, 70}, flat(x.grad))
  end)

  it("handle:remove() stops the hook; removing again does nothing", function()
    local x = leaf()
    local calls = 0
    local handle = x:register_hook(function(g)
      calls = calls + 1
      return g * 10
    end)
    loss_of(x * 2):backward()
    assert.are.same({80, 160, 240}, flat(x.grad))
    handle:remove()
    handle:remove()
    x.grad = nil
    loss_of(x * 2):backward()
    assert.are.same({8, 16, 24}, flat(x.grad))
    assert.are.equal(1, calls)
  end)

  it("hooks run in the order they were added", function()
    -- ([4, 8, 12] + 1) * 2 through y = 2x
    assert.are.same({20, 36, 52}, x_grad_with_hooks(function(g) return g + 1 end, function(g) return g * 2 end))
  end)

  it("a hook's error is backward's error, naming the hook", function()
    local x = leaf()
    local y = x * 2
    y:register_hook(function() error("boom", 0) end)
    expect_error(function() loss_of(y):backward() end, "register_hook", "boom")
    -- the failed pass leaves nothing broken: a new one without the hook works
    local x2 = leaf()
    loss_of(x2 * 2):backward()
    assert.are.same({8, 16, 24}, flat(x2.grad))
  end)

  it("a hook that returns a gradient of the wrong shape is backward's error", function()
    local x = leaf()
    local y = x * 2
    y:register_hook(function() return nn.zeros(2) end)
    expect_error(function() loss_of(y):backward() end, "hook", "returned is 2 float32, the tensor is 3 float32")
  end)

  it("refuses what is not a function, extra arguments, and a tensor without grad", function()
    local x = leaf()
    expect_error(function() x:register_hook(5) end, "register_hook", "expected a function, got number")
    expect_error(function() x:register_hook() end, "register_hook", "expected a function, got nil")
    expect_error(function() x:register_hook(function() end, 1) end, "register_hook", "takes at most 1 argument")
    expect_error(function() nn.tensor({1, 2}):register_hook(function() end) end,
      "register_hook", "cannot register a hook on a tensor that doesn't require gradient")
    local handle = x:register_hook(function() end)
    expect_error(function() handle:remove(1) end, "remove", "takes no arguments")
  end)
end)

-- Plain SGD's eager step keeps, per group.params table, an engine list that
-- checks each parameter once (lua/nn_optim.c, sgd_eager_step). Every step
-- must still be the one nn_sgd_step would take after whatever changed
-- between steps: an element replaced, a tensor given new data (set_data, as
-- Module:to does), gradients dropped and made anew, a box closed.
local nn = require "nn"

-- p - lr * g, elementwise, as a flat list (float32 rounding kept by tensors)
local function expected_after(p, lr)
  return (p:detach() - p.grad * lr):totable()
end

local function give_grad(p, value)
  p.grad = nn.full(p:size(), value, {dtype = p.dtype})
end

local function flat(t)
  local out = {}
  local function walk(v)
    if type(v) == "table" then for _, x in ipairs(v) do walk(x) end else out[#out + 1] = v end
  end
  walk(t)
  return out
end

local function assert_same(expected, got)
  expected, got = flat(expected), flat(got)
  assert.are.equal(#expected, #got)
  for i = 1, #expected do assert.are.equal(expected[i], got[i]) end
end

describe("SGD's eager list", function()
  it("follows an element of group.params replaced between steps", function()
    local a = nn.tensor({1, 2}, {requires_grad = true})
    local b = nn.tensor({3, 4}, {requires_grad = true})
    local c = nn.tensor({5, 6, 7}, {requires_grad = true})
    local opt = nn.optim.SGD({a, b}, {lr = 0.5})
    give_grad(a, 1); give_grad(b, 2); give_grad(c, 3)
    opt:step()
    opt.param_groups[1].params[2] = c
    local want_a, want_c, b_before = expected_after(a, 0.5), expected_after(c, 0.5), b:totable()
    opt:step()
    assert_same(want_a, a:totable())
    assert_same(want_c, c:totable())
    assert_same(b_before, b:totable()) -- no longer in the list: not stepped
  end)

  it("follows a parameter given new data of another dtype (Module:double)", function()
    nn.manual_seed(1)
    local m = nn.Linear(2, 1)
    local opt = nn.optim.SGD(m:parameters(), {lr = 0.1})
    local x = nn.tensor({{1, 2}})
    m(x):sum():backward()
    opt:step()
    m:double()
    opt:zero_grad()
    m(x:double()):sum():backward()
    assert.are.equal("float64", m.weight.dtype)
    assert.are.equal("float64", m.weight.grad.dtype)
    local want = expected_after(m.weight, 0.1)
    opt:step()
    assert_same(want, m.weight:totable())
  end)

  it("follows a parameter and its gradient given new storage of another shape", function()
    local p = nn.tensor({1, 2}, {requires_grad = true})
    local opt = nn.optim.SGD({p}, {lr = 1})
    give_grad(p, 1)
    opt:step()
    local g = p.grad
    nn._C.tensor_set_data(p, nn.tensor({10, 20, 30}))
    nn._C.tensor_set_data(g, nn.tensor({1, 2, 3}))
    assert.are.equal(g, p.grad) -- the same gradient tensor, in new storage
    opt:step()
    assert_same({9, 18, 27}, p:totable())
  end)

  it("refuses, as a fresh check would, a parameter whose new storage came back at the old address", function()
    -- set_data frees the old storage; the next tensor of that size is
    -- likely to get the same block, so the list cannot tell by address
    -- alone. The gradient keeps its old shape: the step must say so.
    for round = 1, 20 do
      local p = nn.tensor({1, 2}, {requires_grad = true})
      local opt = nn.optim.SGD({p}, {lr = 1})
      give_grad(p, 1)
      opt:step()
      nn._C.tensor_set_data(p, nn.tensor({1, 2, 3, 4}))
      local back = nn.tensor({5, 6, 7})
      nn._C.tensor_set_data(p, back)
      local ok, err = pcall(opt.step, opt)
      assert.is_false(ok, "round " .. round)
      assert.matches("sgd", err)
    end
  end)

  it("steps gradients made anew after zero_grad(true)", function()
    local p = nn.tensor({1, 2, 3}, {requires_grad = true})
    local opt = nn.optim.SGD({p}, {lr = 1})
    for step = 1, 3 do
      opt:zero_grad(true)
      assert.is_nil(p.grad)
      opt:step() -- no gradient: nothing to do
      give_grad(p, step)
      local want = expected_after(p, 1)
      opt:step()
      assert_same(want, p:totable())
    end
  end)

  it("refuses a closed tensor and a non-tensor as the step by step loop does", function()
    local p = nn.tensor({1, 2}, {requires_grad = true})
    local q = nn.tensor({3, 4}, {requires_grad = true})
    local opt = nn.optim.SGD({p, q}, {lr = 1})
    give_grad(p, 1); give_grad(q, 1)
    opt:step()
    do local closing <close> = q end
    local ok, err = pcall(opt.step, opt)
    assert.is_false(ok)
    assert.is_truthy(tostring(err):find("sgd: the tensor was closed", 1, true), err)
    opt.param_groups[1].params[2] = "weights"
    ok, err = pcall(opt.step, opt)
    assert.is_false(ok)
    assert.is_truthy(tostring(err):find("sgd: argument", 1, true), err)
  end)

  it("keeps two groups' lists apart", function()
    local a = nn.tensor({1, 2}, {requires_grad = true})
    local b = nn.tensor({3, 4, 5}, {requires_grad = true})
    local opt = nn.optim.SGD({{params = {a}, lr = 0.25}, {params = {b}, lr = 2}}, {lr = 1})
    for step = 1, 3 do
      give_grad(a, step); give_grad(b, -step)
      local want_a, want_b = expected_after(a, 0.25), expected_after(b, 2)
      opt:step()
      assert_same(want_a, a:totable())
      assert_same(want_b, b:totable())
    end
  end)
end)

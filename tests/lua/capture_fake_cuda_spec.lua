-- nn.capture on "cuda" (the test device, tests/c/fake_cuda.c: host memory
-- and the CPU's kernels behind the CUDA backend's table, so the plan goes
-- through dispatch to a second table exactly as on a GPU; it makes no
-- graphs). tests/gpu/ops.lua runs the same on a real GPU, graphs and all.
local nn = require "nn"
local support = dofile(os.getenv("NN_ROOT") .. "/tests/lua/support.lua")
local flat = support.flat

local function train(captured, steps)
  nn.manual_seed(21)
  local model = nn.Sequential(nn.Linear(3, 8), nn.Tanh(), nn.Linear(8, 1)):to("cuda")
  local criterion = nn.MSELoss()
  local optimizer = nn.optim.Adam(model:parameters(), {lr = 0.01})
  local function fn(x, y)
    optimizer:zero_grad()
    local loss = criterion(model(x), y)
    loss:backward()
    optimizer:step()
    return loss
  end
  local step = captured and nn.capture(fn) or fn
  local x, y = nn.randn(6, 3):cuda(), nn.randn(6, 1):cuda()
  local losses = {}
  for i = 1, steps do losses[i] = step(x, y):item() end
  return model, losses, step
end

describe("nn.capture on cuda", function()
  it("trains exactly as eager steps do", function()
    local m1, l1 = train(false, 12)
    local m2, l2, step = train(true, 12)
    assert.is_nil(step:why())
    assert.are.same(l1, l2)
    local p1, p2 = m1:parameters(), m2:parameters()
    for i = 1, #p1 do
      assert.are.equal("cuda", p2[i].device)
      assert.are.same(flat(p1[i]:cpu()), flat(p2[i]:cpu()))
    end
    assert.are.equal(0, step:stats().graphs) -- the test device makes none
  end)

  it("refuses a step that runs on the cpu as well, or copies from the host", function()
    -- dropout draws its mask on the cpu (PyTorch's very mask) and copies it over
    local dropout = nn.capture(function(x) return nn.F.dropout(x, 0.5) end)
    for _ = 1, 3 do dropout(nn.ones(4):cuda()) end
    assert.is_truthy(tostring(dropout:why()):find("a plan runs on one device", 1, true))
    local w = nn.ones(2):cuda()
    local mixed = nn.capture(function(x) return (x * w):sum(), (x:cpu() + 1) end)
    for _ = 1, 3 do mixed(nn.ones(2):cuda()) end
    assert.is_truthy(tostring(mixed:why()):find("capture: ", 1, true))
    local copies = nn.capture(function(x) return x + nn.tensor({1, 2}):cuda() end)
    for _ = 1, 3 do copies(nn.ones(2):cuda()) end
    assert.is_truthy(tostring(copies:why()):find("capture: ", 1, true))
    assert.are.same({2, 3}, copies(nn.ones(2):cuda()):cpu():totable())
  end)
end)

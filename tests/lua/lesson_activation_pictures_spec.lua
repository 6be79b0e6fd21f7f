-- scripts/activations.lua's pictures of PReLU, Maxout and softmax (issue 13):
-- PReLU learns the slope |x| needs, Maxout's fit improves with its pieces,
-- softmax's temperature sharpens and flattens, and the picture is written.
local support = dofile((os.getenv("NN_ROOT") or ".") .. "/tests/lua/support.lua")
local root = os.getenv("NN_ROOT") or "."

describe("scripts/activations.lua: PReLU, Maxout and softmax", function()
  local out, code, dir
  setup(function()
    dir = support.scratch_dir()
    out, code = support.run(string.format("%s %s --quick --out %s", support.quote(assert(os.getenv("NNLUA"))),
      support.quote(root .. "/scripts/activations.lua"), support.quote(dir)))
  end)
  teardown(function() os.execute("rm -rf " .. support.quote(dir)) end)

  local function line(start)
    for l in out:gmatch("[^\n]+") do
      local trimmed = l:match("^%s*(.-)$")
      if trimmed:sub(1, #start) == start then return trimmed end
    end
    error("no line starting with '" .. start .. "' in:\n" .. out)
  end

  it("runs and writes the picture", function()
    assert.are.equal(0, code, out)
    local path = out:match("Picture: (%S+prelu_maxout_softmax%.png)")
    assert.is_truthy(path, out)
    local bytes = support.read(path)
    assert.are.equal("\137PNG", bytes:sub(1, 4))
  end)

  it("PReLU learns the slope -1 that |x| needs", function()
    local slope = tonumber(line("PReLU fitting |x|"):match("to (%-?[%d.]+)"))
    assert.is_true(math.abs(slope + 1) < 1e-2, tostring(slope))
  end)

  it("Maxout fits x^2 better with more pieces", function()
    local e1 = tonumber(line("1 piece"):match(":%s*([%d.]+)"))
    local e2 = tonumber(line("2 pieces"):match(":%s*([%d.]+)"))
    local e4 = tonumber(line("4 pieces"):match(":%s*([%d.]+)"))
    assert.is_true(e1 > e2 and e2 > e4 and e4 < 0.05, string.format("%g %g %g", e1, e2, e4))
  end)

  it("softmax's temperature: nearly one-hot at 0.1, flatter at 5", function()
    local cold = {}
    for v in line("T = 0.1"):sub(8):gmatch("[%d.]+") do cold[#cold + 1] = tonumber(v) end
    local hot = {}
    for v in line("T = 5"):sub(6):gmatch("[%d.]+") do hot[#hot + 1] = tonumber(v) end
    assert.is_true(cold[3] > 0.999, line("T = 0.1"))
    assert.is_true(hot[3] < 0.45 and hot[1] > 0.25, line("T = 5"))
  end)
end)

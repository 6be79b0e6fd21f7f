-- median along a dim where a line holds NaN: NaN, at the first NaN's index,
-- as PyTorch 1.13 gives (torch.tensor([[1., 2, 3, 4], [nan, 1, 2, 3]]).median(1)
-- -> values [2., nan], indices [1, 0]; torch.tensor([[1., nan], [3, nan]])
-- .median(0, True) -> [[1., nan]], [[0, 0]]); 1-based here.
local nn = require "nn"

describe("median with NaN", function()
  it("gives NaN at the first NaN's index, and the lower median elsewhere", function()
    local v, i = nn.tensor({{1, 2, 3, 4}, {0 / 0, 1, 2, 3}}):median(2)
    local values = v:totable()
    assert.are.equal(2, values[1])
    assert.is_true(values[2] ~= values[2])
    assert.are.same({2, 1}, i:totable())
    v, i = nn.tensor({{1, 0 / 0}, {3, 0 / 0}}, {dtype = "float64"}):median(1, true)
    values = v:totable()
    assert.are.equal(1, values[1][1])
    assert.is_true(values[1][2] ~= values[1][2])
    assert.are.same({{1, 1}}, i:totable())
  end)

  it("leaves a tensor without NaN to the plain lower median", function()
    local v, i = nn.tensor({{5, 1, 3, 2}}):median(2)
    assert.are.same({2}, v:totable())
    assert.are.same({4}, i:totable())
  end)
end)

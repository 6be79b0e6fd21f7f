-- Joining, splitting and indexing against PyTorch (values and gradients in
-- float32 and float64, tests/fixtures/index_reference.lua, written by
-- gen_index.py), their views, in-place forms, finite-difference gradients,
-- and every misuse as an error naming the op.
local nn = require "nn"
local support = dofile((os.getenv("NN_ROOT") or ".") .. "/tests/lua/support.lua")
local flat, expect_error = support.flat, support.expect_error

local root = os.getenv("NN_ROOT") or "."
local ref = dofile(root .. "/tests/fixtures/index_reference.lua")

local RTOL = {float32 = 1e-5, float64 = 1e-12}
local function long(t) return nn.tensor(t, {dtype = "int64"}) end

-- Each fixture case as a Lua user writes it: inputs by name.
local CASES = {
  cat_rows = function(a) return nn.cat({a.x, a.y}) end,
  cat_cols_strided = function(a) return nn.cat({a.x:t(), a.y}, 2) end,
  cat_empty = function(a) return nn.cat({a.x, a.y}) end,
  cat_many = function(a)
    local parts = {}
    for k = 1, 5 do parts[k] = a.x:narrow(1, k, 1) * k end
    return nn.cat(parts, 2)
  end,
  stack_last = function(a) return nn.stack({a.x, a.y}, 2) end,
  split_sizes = function(a)
    local parts = a.x:split(2)
    for k, p in ipairs(parts) do parts[k] = p * k end
    return nn.cat(parts)
  end,
  split_list = function(a)
    local parts = a.x:split({1, 4}, 2)
    for k, p in ipairs(parts) do parts[k] = p * k end
    return nn.cat(parts, 2)
  end,
  chunk_cols = function(a)
    local parts = a.x:chunk(3, 2)
    for k, p in ipairs(parts) do parts[k] = p * k end
    return nn.cat(parts, 2)
  end,
  unbind_rows = function(a)
    local parts = a.x:unbind()
    for k, p in ipairs(parts) do parts[k] = p * k end
    return nn.stack(parts, 2)
  end,
  ["repeat"] = function(a) return a.x:repeatTensor(2, 1, 2) end,
  repeat_strided = function(a) return a.x:t()["repeat"](a.x:t(), 1, 2) end,
  tile = function(a) return a.x:tile(2) end,
  flip = function(a) return a.x:flip(1, 3) end,
  flip_strided = function(a) return a.x:t():flip(2) end,
  roll_dim = function(a) return a.x:roll(1, 2) end,
  roll_dims = function(a) return a.x:roll({1, -2}, {1, 2}) end,
  roll_flat = function(a) return a.x:roll(4) end,
  movedim = function(a) return a.x:movedim(1, 3) end,
  index_select = function(a) return a.x:index_select(1, a.idx) end,
  index_select_strided = function(a) return a.x:t():index_select(2, a.idx) end,
  index_select_empty = function(a) return a.x:index_select(1, a.idx) end,
  gather = function(a) return a.x:gather(2, a.idx) end,
  gather_dim1_strided = function(a) return a.x:t():gather(2, a.idx:t()) end,
  scatter = function(a) return a.x:scatter(2, a.idx, a.y) end,
  scatter_add = function(a) return a.x:scatter_add(2, a.idx, a.y) end,
  index_add = function(a) return a.x:index_add(1, a.idx, a.y, 2) end,
  take = function(a) return a.x:take(a.idx) end,
  masked_fill = function(a) return a.x:masked_fill(a.mask, 0.5) end,
  masked_fill_broadcast = function(a) return a.x:masked_fill(a.mask, -2) end,
  masked_select_broadcast = function(a) return a.x:masked_select(a.mask) end,
  where_broadcast = function(a) return nn.where(a.cond, a.x, a.y) end,
  where_number = function(a) return nn.where(a.cond, a.x, 0.0) end,
  mask_index = function(a) return a.x[a.mask] end,
  mask_index_rows = function(a) return a.x[a.mask] end,
  tensor_index = function(a) return a.x[a.idx] end,
  table_cols = function(a) return a.x[{{}, {2, 3}}] end,
  table_select_step = function(a) return a.x[{1, {2, 4, 2}}] end,
  table_negative = function(a) return a.x[{{-3, -1}, {-2, -1}}] end,
  table_step_rows = function(a) return a.x[{{1, -1, 2}}] end,
  table_keep = function(a) return a.x[{{2}, 4}] end,
  put_mask = function(a)
    local x = a.x:clone()
    x[a.mask] = a.y
    return x
  end,
  put_column = function(a)
    local x = a.x * 1
    x[{{}, 2}] = a.y
    return x
  end,
  put_index = function(a)
    local x = a.x * 1
    x[a.idx] = a.y
    return x
  end,
  masked_fill_inplace = function(a) return (a.x * 1):masked_fill_(a.mask, 2.0) end,
}

local function make(spec, dtype)
  local opts = {dtype = spec.kind == "float" and dtype or spec.kind == "index" and "int64" or "bool"}
  local t = #spec.values == 0 and nn.zeros(spec.shape, opts) or nn.tensor(spec.values, opts):view(spec.shape)
  if spec.kind == "float" then t:requires_grad_() end
  return t
end

local function assert_close(expected, got, dtype, what)
  assert.are.equal(#expected, #got, what .. ": element count")
  for k = 1, #expected do
    local e, a = expected[k], got[k]
    if type(e) == "boolean" then e = e and 1 or 0 end
    if type(a) == "boolean" then a = a and 1 or 0 end
    if math.abs(a - e) > RTOL[dtype] * math.abs(e) + 1e-300 then
      error(string.format("%s: element %d is %.17g, PyTorch %.17g", what, k, a, e), 0)
    end
  end
end

describe("joining, splitting and indexing against PyTorch", function()
  it("has a Lua form for every case of the fixture, and the reverse", function()
    local seen = {}
    for _, case in ipairs(ref.cases) do
      assert(CASES[case.name], "no Lua form for " .. case.name)
      seen[case.name] = true
    end
    for name in pairs(CASES) do assert(seen[name], name .. " is not in the fixture") end
  end)

  for _, case in ipairs(ref.cases) do
    for _, dtype in ipairs {"float32", "float64"} do
      it(case.name .. " in " .. dtype .. ": values and gradients", function()
        local r = case[dtype]
        local inputs = {}
        for name, spec in pairs(r.inputs) do inputs[name] = make(spec, dtype) end
        local y = CASES[case.name](inputs)
        assert.are.same(r.output.shape, y:size())
        assert.are.equal(dtype, y.dtype)
        assert_close(r.output.values, flat(y), dtype, case.name .. " value")
        local g = #r.upstream == 0 and nn.zeros(r.output.shape, {dtype = dtype})
                  or nn.tensor(r.upstream, {dtype = dtype}):view(r.output.shape)
        y:backward(g)
        for name, expected in pairs(r.grads) do
          local got = inputs[name].grad
          if expected == "none" then
            assert(got == nil, name .. " has a gradient PyTorch does not give")
          else
            assert(got, case.name .. ": no gradient for " .. name)
            assert_close(expected, flat(got), dtype, case.name .. " grad of " .. name)
          end
        end
      end)
    end
  end
end)

describe("finite-difference gradients in float64", function()
  local function check(name, fn, ...)
    local inputs = {...}
    it(name, function() assert.is_true(nn.gradcheck(fn, inputs)) end)
  end
  local x = function(...) return nn.randn(...):double():requires_grad_() end
  nn.manual_seed(5)
  check("cat and stack", function(a, b) return nn.stack({nn.cat({a, b}), nn.cat({b, a})}) end, x(2, 3), x(2, 3))
  check("gather", function(a) return a:gather(1, long({{3, 1}, {2, 2}})) end, x(3, 2))
  check("scatter_add", function(a, b) return a:scatter_add(1, long({{1, 1}, {3, 2}}), b) end, x(3, 2), x(2, 2))
  check("index_put", function(a, b)
    local c = a * 1
    c[long({3, 1})] = b
    return c
  end, x(3, 2), x(2))
  check("where", function(a, b) return nn.where(a:gt(0), a, b) end, x(4), x(4))
  check("flip and roll", function(a) return a:flip(1):roll(1, 2) end, x(3, 4))
  check("strided slices", function(a) return a[{{1, -1, 2}, {2, 3}}] end, x(5, 4))
end)

describe("views", function()
  it("table indexing, split, unbind, movedim and swapaxes share storage", function()
    local x = nn.zeros(4, 5)
    x[{{}, {2, 3}}]:fill_(1)
    x:split(2)[2]:add_(10)
    x:unbind(2)[5]:fill_(7)
    x:movedim(1, 2)[1]:fill_(3)
    x:swapaxes(1, 2)[4][1] = 9
    assert.are.same({
      {3, 1, 1, 9, 7}, {3, 1, 1, 0, 7}, {3, 11, 11, 10, 7}, {3, 11, 11, 10, 7}}, x:totable())
  end)

  it("view_as, expand_as, reshape_as and type_as take the other's shape or dtype", function()
    local x, o = nn.arange(6), nn.zeros(2, 3, {dtype = "float64"})
    assert.are.same({2, 3}, x:view_as(o):size())
    assert.are.same({2, 3}, x:reshape_as(o):size())
    assert.are.same({2, 3}, nn.ones(3):expand_as(o):size())
    assert.are.equal("float64", x:type_as(o).dtype)
  end)

  it("squeeze_, unsqueeze_, t_ and transpose_ change the tensor itself and keep its graph", function()
    local w = nn.randn(2, 3):requires_grad_()
    local y = w * 2
    assert.are.equal(y, y:unsqueeze_(1))
    assert.are.same({1, 2, 3}, y:size())
    y:squeeze_()
    y:t_()
    assert.are.same({3, 2}, y:size())
    y:transpose_(1, 2)
    y:sum():backward()
    assert.are.same({{2, 2, 2}, {2, 2, 2}}, w.grad:totable())
    expect_error(function() w:t_() end, "t_", "leaf")
  end)

  it("gives nn.* forms of the methods and the Torch7 name of repeat", function()
    local x = nn.arange(6):view(2, 3)
    assert.are.same(x:flip(2):totable(), nn.flip(x, 2):totable())
    assert.are.same({{0, 1, 2, 0, 1, 2}}, nn.tensor({{0, 1, 2}}):repeatTensor(1, 2):totable())
    assert.are.same({{2}, {4}}, nn.nonzero(nn.tensor({0, 3, 0, 4})):totable())
    local rows, cols = table.unpack(nn.where(nn.tensor({{true, false}, {false, true}})))
    assert.are.same({1, 2}, rows:totable())
    assert.are.same({1, 2}, cols:totable())
  end)

  it("writes in place through scatter_, index_add_ and masked_fill_", function()
    local x = nn.zeros(2, 3)
    x:scatter_(2, long({{3}, {1}}), 5)
    x:index_add_(1, long({2}), nn.ones(1, 3))
    x:masked_fill_(x:eq(0), -1)
    assert.are.same({{-1, -1, 5}, {6, 1, 1}}, x:totable())
  end)

  it("reads values taken from the tensor written before writing any (PyTorch's answer)", function()
    local x = nn.tensor({0, 1, 2, 3})
    x[long({2, 3})] = x[{{1, 2}}]
    assert.are.same({0, 0, 1, 3}, x:totable())
  end)

  it("handles 0-sized tensors", function()
    local e = nn.zeros(0, 3)
    assert.are.same({0, 3}, e:index_select(1, long({})):size())
    assert.are.same({0}, e[e:gt(0)]:size())
    assert.are.same({0, 2}, e:nonzero():size())
    assert.are.same({0, 3}, e:flip(1):size())
    assert.are.same({0, 6}, e:repeatTensor(1, 2):size())
    assert.are.same({2, 0, 3}, nn.stack({e, e}):size())
    local x = nn.ones(2, 2)
    x[x:gt(5)] = 3
    assert.are.same({{1, 1}, {1, 1}}, x:totable())
  end)
end)

describe("misuse is an error naming the op", function()
  local x = nn.arange(12):view(3, 4)
  local cases = {
    {"index out of range", function() return x:index_select(1, long({4})) end, "index_select", "index 4"},
    {"index 0", function() return x:gather(2, long({{0}, {1}, {1}})) end, "gather", "index 0"},
    {"negative index along a dim", function() return x:index_select(1, long({-1})) end, "index_select", "-1"},
    {"non-integer index", function() return x:index_select(1, nn.tensor({1})) end, "index_select", "int64"},
    {"gather index of other rank", function() return x:gather(1, long({1})) end, "gather", "dimensions"},
    {"gather index too large", function() return x:gather(2, long({{1}, {1}, {1}, {1}})) end, "gather", "exceeds"},
    {"scatter dtype", function() return x:scatter_add(1, long({{1}}), nn.ones(1, 1, {dtype = "float64"})) end, "scatter_add", "dtype"},
    {"index_add source shape", function() return x:index_add(1, long({1}), nn.ones(2, 4)) end, "index_add", "shape"},
    {"take out of range", function() return x:take(long({13})) end, "take", "12 elements"},
    {"dim out of range", function() return x:index_select(3, long({1})) end, "index_select", "dimension"},
    {"mask of wrong shape", function() return x[nn.ones(4, 3):gt(0)] end, "index", "mask"},
    {"mask assignment of wrong shape", function() x[nn.ones(2):gt(0)] = 1 end, "index_put_", "mask"},
    {"masked_fill mask not bool", function() return x:masked_fill(nn.ones(3, 4), 1) end, "masked_fill", "bool"},
    {"masked_fill mask shape", function() return x:masked_fill(nn.ones(5):gt(0), 1) end, "masked_fill", "shape"},
    {"where condition not bool", function() return nn.where(nn.ones(2), 1, 2) end, "where", "bool"},
    {"where shapes", function() return nn.where(nn.ones(2):gt(0), nn.ones(3), 0) end, "where", "broadcast"},
    {"tensor index out of range", function() return x[long({4})] end, "index", "index 4"},
    {"tensor index float", function() return x[nn.tensor({1.5})] end, "index", "int64"},
    {"table index out of range", function() return x[{{}, {2, 5}}] end, "index", "index 5"},
    {"table index too many dims", function() return x[{1, 1, 1}] end, "index", "3 indices"},
    {"table step", function() return x[{{1, 3, 0}}] end, "index", "step"},
    {"assignment shape", function() x[{{}, 1}] = nn.ones(4) end, "index assignment", "shape"},
    {"put values shape", function() x[long({1})] = nn.ones(5) end, "index_put_", "shape"},
    {"cat shapes", function() return nn.cat({x, nn.ones(2, 3)}) end, "cat", "sizes must match"},
    {"cat ranks", function() return nn.cat({x, nn.ones(4)}) end, "cat", "number of dimensions"},
    {"cat empty list", function() return nn.cat({}) end, "cat", "non-empty"},
    {"cat not tensors", function() return nn.cat({x, 3}) end, "cat", "element 2"},
    {"cat dim", function() return nn.cat({x, x}, 3) end, "cat", "dimension"},
    {"stack shapes", function() return nn.stack({x, x:t()}) end, "stack", "same shape"},
    {"split sizes", function() return x:split({1, 1}) end, "split", "add up"},
    {"chunk count", function() return x:chunk(0) end, "chunk", "at least 1"},
    {"repeat too few", function() return x:repeatTensor(2) end, "repeat", "2 dimensions"},
    {"flip twice", function() return x:flip(1, 1) end, "flip", "twice"},
    {"flip dim", function() return x:flip(3) end, "flip", "dimension 3"},
    {"roll counts", function() return x:roll({1, 2}, 1) end, "roll", "shift"},
    {"movedim repeated", function() return x:movedim({1, 1}, {1, 2}) end, "movedim", "repeated"},
    {"unbind dim", function() return x:unbind(3) end, "unbind", "dimension"},
    {"mixed devices", function() return x:index_select(1, 5) end, "index_select", "tensor"},
  }
  for _, c in ipairs(cases) do
    it(c[1], function() expect_error(c[2], select(3, table.unpack(c))) end)
  end
end)

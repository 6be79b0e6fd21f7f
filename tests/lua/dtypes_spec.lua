-- The dtypes beyond float32, float64, int64 and bool: float16, bfloat16,
-- int32, int16, int8, uint8. Conversions, promotion, arithmetic and printing
-- against PyTorch 1.13 (tests/fixtures/dtypes_reference.lua, written by
-- gen_dtypes.py), files both ways, and the errors a user can meet.
local nn = require "nn"
local support = dofile((os.getenv("NN_ROOT") or ".") .. "/tests/lua/support.lua")
local flat = support.flat
local expect_error = support.expect_error

local root = os.getenv("NN_ROOT") or "."
local ref = dofile(root .. "/tests/fixtures/dtypes_reference.lua")

local tmpdir = support.scratch_dir()
teardown(function() os.execute("rm -rf " .. tmpdir) end)

local ALL = {"float32", "float64", "float16", "bfloat16", "int64", "int32", "int16", "int8", "uint8", "bool"}

-- Equal as PyTorch's values: NaN equals NaN, -0 is not 0, integers exactly.
local function same_value(want, got)
  if type(want) == "boolean" then return want == got end
  if want ~= want then return got ~= got end
  if want == 0 and got == 0 then return (1 / want > 0) == (1 / got > 0) end
  return want == got and math.type(want) == math.type(got) or (math.type(want) == "float" and want == got)
end

local function assert_values(want, got, what)
  assert.are.equal(#want, #got, what .. ": length")
  for i = 1, #want do
    assert(same_value(want[i], got[i]),
      string.format("%s: element %d is %s, PyTorch's is %s", what, i, tostring(got[i]), tostring(want[i])))
  end
end

local function values_of(t)
  if t:dim() == 0 then return {t:item()} end
  return flat(t)
end

describe("dtypes", function()
  it("have PyTorch's names, sizes and categories", function()
    local sizes = {float32 = 4, float64 = 8, float16 = 2, bfloat16 = 2, int64 = 8, int32 = 4, int16 = 2,
                   int8 = 1, uint8 = 1, bool = 1}
    for _, name in ipairs(ALL) do
      local t = nn.zeros(3, {dtype = name})
      assert.are.equal(name, t.dtype)
      assert.are.equal(sizes[name], t:element_size(), name)
      assert.are.equal(name:find("float") ~= nil, t:is_floating_point(), name)
    end
    local aliases = {half = "float16", int = "int32", short = "int16", float = "float32", double = "float64",
                     long = "int64"}
    for alias, name in pairs(aliases) do assert.are.equal(name, nn.zeros(1):to(alias).dtype, alias) end
  end)

  it("convert between every pair as PyTorch does", function()
    for _, c in ipairs(ref.conversions) do
      local src = nn.tensor(c.source, {dtype = c.via}):to(c.from)
      local what = c.from .. " -> " .. c.to
      local got = src:to(c.to)
      assert.are.equal(c.to, got.dtype, what)
      local values = values_of(got)
      if c.to == "bool" then
        assert_values(c.values, values, what)
      else
        for i, v in ipairs(values) do
          if c.to:find("float") and math.type(v) == "integer" then values[i] = v * 1.0 end
        end
        local want = {}
        for i, v in ipairs(c.values) do want[i] = c.to:find("float") and v * 1.0 or v end
        assert_values(want, values, what)
      end
    end
  end)

  it("convert with PyTorch's method names", function()
    local t = nn.tensor({300, -1.5, 0.1})
    local names = {int = "int32", short = "int16", char = "int8", byte = "uint8", half = "float16",
                   bfloat16 = "bfloat16", long = "int64", float = "float32", double = "float64", bool = "bool"}
    for method, dtype in pairs(names) do assert.are.equal(dtype, t[method](t).dtype, method) end
    assert.are.same({44, -1, 0}, flat(t:char()))
    assert.are.same({44, 255, 0}, flat(t:byte()))
    assert.are.same({300, -1, 0}, flat(t:int()))
  end)

  it("promote mixed operands as torch.result_type", function()
    for _, p in ipairs(ref.promotions) do
      local x, y, z = nn.ones(2, {dtype = p.a}), nn.ones(2, {dtype = p.b}), nn.ones(2, {dtype = p.b})[1]
      local what = p.a .. " + " .. p.b
      assert.are.equal(p.promote, nn.promote_types(p.a, p.b), what)
      assert.are.equal(p.tensors, (x + y).dtype, what)
      assert.are.equal(p.tensors, x:add(y).dtype, what)
      assert.are.equal(p.zero_dim, (x + z).dtype, what .. " (0-d)")
      if p.int then
        assert.are.equal(p.int, (x + 2).dtype, p.a .. " + 2")
        assert.are.equal(p.float, (x + 2.5).dtype, p.a .. " + 2.5")
      end
    end
  end)

  it("compute as PyTorch: integers wrap, half types round each result", function()
    local ops = {
      add = function(a, b) return a + b end, sub = function(a, b) return a - b end,
      mul = function(a, b) return a * b end, div = function(a, b) return a / b end,
      neg = function(a) return -a end, add_number = function(a, b) return a + b end,
      mul_number = function(a, b) return a * b end, exp = function(a) return a:exp() end,
      gt = function(a, b) return a:gt(b):long() end, sum = function(a) return a:sum() end,
      max = function(a) return a:max() end, min = function(a) return a:min() end,
      sort = function(a) return (a:sort()) end, sqrt = function(a) return a:sqrt() end,
      add_uint8 = function(a, b) return a + b end, add_float32 = function(a, b) return a + b end,
      add_bfloat16 = function(a, b) return a + b end,
    }
    local other = {add_uint8 = "uint8", add_float32 = "float32", add_bfloat16 = "bfloat16"}
    for _, c in ipairs(ref.arithmetic) do
      local what = c.dtype .. " " .. c.op
      local via = c.dtype:find("float") and "float64" or "int64"
      local a = nn.tensor(c.a, {dtype = via}):to(c.dtype)
      local b = c.b
      if type(b) == "table" then b = nn.tensor(b, {dtype = via}):to(other[c.op] or c.dtype) end
      local r = ops[c.op](a, b)
      assert.are.equal(c.result, r.dtype, what)
      local want, got = {}, values_of(r)
      for i, v in ipairs(c.values) do
        want[i] = r:is_floating_point() and v * 1.0 or v
        if r:is_floating_point() then got[i] = got[i] * 1.0 end
      end
      assert_values(want, got, what)
    end
  end)

  it("print as PyTorch prints each dtype", function()
    for _, c in ipairs(ref.printing) do
      local via = c.dtype:find("float") and "float64" or "int64"
      local t = type(c.values) == "table" and nn.tensor(c.values, {dtype = via}) or nn.tensor(c.values, {dtype = via})
      t = t:to(c.dtype)
      assert.are.equal(c.text, tostring(t), c.dtype .. " " .. c.name)
    end
  end)

  it("give Lua integers from integer dtypes and numbers from floating ones", function()
    assert.are.equal("integer", math.type(nn.tensor({7}, {dtype = "int8"})[1]:item()))
    assert.are.equal("integer", math.type(nn.tensor({{7}}, {dtype = "uint8"}):totable()[1][1]))
    assert.are.equal("float", math.type(nn.tensor({7}, {dtype = "float16"}):tolist()[1]))
    assert.are.equal(65504.0, nn.tensor({65519}):half():item())
  end)

  it("index, compare, reduce and sort integer tensors", function()
    local t = nn.tensor({{5, -3}, {100, 7}}, {dtype = "int8"})
    assert.are.same({100, 7}, flat(t[2]))
    assert.are.same({true, false, true, true}, flat(t:gt(0)))
    assert.are.equal("int64", t:sum().dtype) -- integer sums widen to int64, as PyTorch
    assert.are.equal(109, t:sum():item())
    assert.are.same({1, 1}, flat((t:argmax(2))))
    local v, i = t:max(1)
    assert.are.same({100, 7}, flat(v))
    assert.are.equal("int8", v.dtype)
    assert.are.same({2, 2}, flat(i))
    assert.are.same({-3, 5, 7, 100}, flat((t:view(-1):sort())))
    assert.are.same({0, 3}, flat(t[{{}, 2}]:clamp(0, 3)))
    assert.are.equal("float32", t:float():mean().dtype)
  end)
end)

describe("dtype errors", function()
  it("refuses gradients on integer tensors", function()
    for _, name in ipairs({"int32", "int16", "int8", "uint8"}) do
      expect_error(function() nn.zeros(2, {dtype = name, requires_grad = true}) end,
        "only floating-point tensors can require gradients", name)
    end
    local h = nn.zeros(2, {dtype = "float16", requires_grad = true})
    assert.is_true(h.requires_grad)
  end)

  it("names unknown dtypes and refuses ops without a kernel for one", function()
    expect_error(function() nn.zeros(2, {dtype = "int128"}) end, "unknown dtype 'int128'", "uint8", "bfloat16")
    expect_error(function() nn.zeros(2):to("complex64") end, "to:", "complex64")
    expect_error(function() nn.ones(2, {dtype = "int8"}):mean() end, "mean:", "int8")
    expect_error(function() nn.ones(2, 2, {dtype = "int32"}):matmul(nn.ones(2, 2, {dtype = "int32"})) end,
      "matmul: operands must have the same floating dtype", "int32")
    expect_error(function() nn.ones(2, {dtype = "int8"}):add_(0.5) end, "float32", "int8")
  end)
end)

describe("half types compute in float32", function()
  it("activations and softmax round their float32 result, with gradients in the half type", function()
    local x = nn.tensor({-1, 0.5, 2}, {dtype = "bfloat16", requires_grad = true})
    local y = x:sigmoid()
    assert.are.equal("bfloat16", y.dtype)
    local want = nn.tensor({-1, 0.5, 2}):sigmoid():bfloat16()
    assert.are.same(flat(want), flat(y))
    y:sum():backward()
    assert.are.equal("bfloat16", x.grad.dtype)
    -- sigmoid's slope y (1 - y), from the rounded output, rounded again
    local yf = want:float()
    local slope = flat(yf * (1 - yf))
    for i, v in ipairs(flat(x.grad)) do
      assert(math.abs(v - slope[i]) <= 0.01 * slope[i], string.format("gradient %d: %g, not %g", i, v, slope[i]))
    end
    local h = nn.tensor({-1, 0.5, 2}, {dtype = "float16", requires_grad = true})
    h:exp():sum():backward()
    assert.are.same(flat(nn.tensor({-1, 0.5, 2}):exp():half()), flat(h.grad))
    local s = nn.tensor({1, 2, 3}, {dtype = "float16"}):softmax(1)
    assert.are.same(flat(nn.tensor({1, 2, 3}):softmax(1):half()), flat(s))
  end)

  it("random draws of float16 are float32 draws rounded", function()
    nn.manual_seed(3)
    local h = nn.rand(5, {dtype = "float16"})
    nn.manual_seed(3)
    local f = nn.rand(5)
    assert.are.equal("float16", h.dtype)
    assert.are.same(flat(f:half()), flat(h))
  end)
end)

describe("files of the new dtypes", function()
  local function one_of_each()
    return {
      f16 = nn.tensor({1.5, -0.25, 65504, 6e-8, math.huge}):half(),
      bf16 = nn.tensor({1, -3.140625, 1e30}):bfloat16(),
      i32 = nn.tensor({-5, 2147483647}, {dtype = "int64"}):int(),
      i16 = nn.tensor({-300, 300}, {dtype = "int16"}),
      i8 = nn.tensor({-128, 127}, {dtype = "int8"}),
      u8 = nn.tensor({{0, 255}, {17, 128}}, {dtype = "uint8"}),
    }
  end

  it("save and load as safetensors with their own dtypes", function()
    local path = tmpdir .. "/dtypes.safetensors"
    local saved = one_of_each()
    nn.save(path, saved)
    local back = nn.load(path)
    for name, t in pairs(saved) do
      assert.are.equal(t.dtype, back[name].dtype, name)
      assert.are.same(flat(t), flat(back[name]), name)
    end
  end)

  it("save and load as .pt with PyTorch's storage types", function()
    local path = tmpdir .. "/dtypes.pt"
    local saved = one_of_each()
    nn.save(path, saved)
    local back = nn.load(path)
    for name, t in pairs(saved) do
      assert.are.equal(t.dtype, back[name].dtype, name)
      assert.are.same(flat(t), flat(back[name]), name)
    end
  end)

  it("load PyTorch's safetensors as their dtypes", function()
    local tensors = nn.load(root .. "/tests/fixtures/torch_dtypes.safetensors")
    local want = {f16 = "float16", bf16 = "bfloat16", i32 = "int32", i16 = "int16", i8 = "int8", u8 = "uint8"}
    for name, dtype in pairs(want) do assert.are.equal(dtype, tensors[name].dtype, name) end
  end)
end)

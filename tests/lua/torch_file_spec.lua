-- PyTorch interop: state_dict keys, order and loading as PyTorch's, .pt
-- files written by PyTorch 1.13 (tests/fixtures/pt/, from
-- gen_torch_files.py) read with the right values, .pt files written by
-- nn.save byte for byte as torch.save writes them, and hostile files
-- (gen_hostile_pt.py) refused without running anything.
local nn = require "nn"
local support = dofile((os.getenv("NN_ROOT") or ".") .. "/tests/lua/support.lua")
local flat, expect_error, read, write = support.flat, support.expect_error, support.read, support.write

local root = os.getenv("NN_ROOT") or "."
local ref = dofile(root .. "/tests/fixtures/torch_files_reference.lua")
local hostile = dofile(root .. "/tests/fixtures/pt_hostile_reference.lua")
local function fixture(name) return root .. "/tests/fixtures/pt/" .. name end

local tmpdir = support.scratch_dir()
teardown(function() os.execute("rm -rf " .. tmpdir) end)

---------------------------------------------------------------------------
-- An independent reader of the ZIP container (sharing no code with
-- nn.load): name -> stored bytes, and the names in the file's order.
local function zip_entries(bytes)
  local eocd
  for i = #bytes - 21, 1, -1 do
    if bytes:sub(i, i + 3) == "PK\5\6" then eocd = i; break end
  end
  assert(eocd, "no end of central directory record")
  local count, _, cd_offset = string.unpack("<I2I4I4", bytes, eocd + 10)
  local entries, names, at = {}, {}, cd_offset + 1
  for _ = 1, count do
    assert(bytes:sub(at, at + 3) == "PK\1\2", "central directory entry")
    local method = string.unpack("<I2", bytes, at + 10)
    local _, _, size, nlen, xlen, clen = string.unpack("<I4I4I4I2I2I2", bytes, at + 16)
    local header = string.unpack("<I4", bytes, at + 42)
    local name = bytes:sub(at + 46, at + 45 + nlen)
    assert(method == 0, name .. " is stored")
    local lnlen, lxlen = string.unpack("<I2I2", bytes, header + 1 + 26)
    local data = header + 30 + lnlen + lxlen
    entries[name] = {bytes = bytes:sub(data + 1, data + size), offset = data}
    names[#names + 1] = name
    at = at + 46 + nlen + xlen + clen
  end
  return entries, names
end

-- The data.pkl of a torch.save file, whatever its directory is called.
local function pickle_of(path)
  for name, e in pairs(zip_entries(read(path))) do
    if name:match("^[^/]+/data%.pkl$") then return e.bytes end
  end
  error("no data.pkl in " .. path)
end

local function keys_in_order(t)
  local keys = {}
  for k in pairs(t) do keys[#keys + 1] = k end
  return keys
end

local function names(iter)
  local out = {}
  for name in iter do out[#out + 1] = name end
  return out
end

local function assert_values(expected, t, tol, what)
  local got = flat(t)
  assert.are.equal(#expected, #got, what .. ": element count")
  for i = 1, #expected do
    local e, g = expected[i], got[i]
    if type(g) == "boolean" then g = g and 1 or 0 end
    if e ~= e then
      assert(g ~= g, string.format("%s[%d]: expected NaN, got %s", what, i, tostring(g)))
    else
      local err = math.abs(e - g)
      assert(err <= tol * math.max(1, math.abs(e)) or e == g,
        string.format("%s[%d]: expected %.9g, got %.9g", what, i, e, g))
    end
  end
end

local function assert_tensor(entry, t, what)
  assert.are.equal(entry.dtype, t.dtype, what .. ": dtype")
  assert.are.same(entry.shape, t:size(), what .. ": shape")
  assert_values(entry.values, t, 0, what)
end

---------------------------------------------------------------------------
-- The models of gen_torch_files.py's families, built in nnlua.
local Net = nn.Module:extend("Net")
function Net:init()
  self.fc1 = nn.Linear(4, 8)
  self.body = nn.Sequential(nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 8), nn.LayerNorm(8))
  self.act = nn.PReLU()
  self.drop = nn.Dropout(0.25)
  self.head = nn.Linear(8, 3, false)
end
function Net:forward(x) return self.head(self.drop(self.act(self.body(self.fc1(x))))) end

local families = {
  linear = function() return nn.Linear(3, 4) end,
  linear_nobias = function() return nn.Linear(3, 2, false) end,
  sequential = function()
    return nn.Sequential(nn.Linear(2, 10), nn.Sigmoid(), nn.Linear(10, 10), nn.Tanh(), nn.Linear(10, 1), nn.Sigmoid())
  end,
  nested = function()
    return nn.Sequential(nn.Sequential(nn.Linear(4, 6), nn.ReLU()),
      nn.Sequential(nn.Linear(6, 3), nn.Sequential(nn.Linear(3, 2))), nn.Identity(), nn.Flatten())
  end,
  batchnorm = function() return nn.Sequential(nn.Linear(4, 5), nn.BatchNorm1d(5), nn.ReLU(), nn.Linear(5, 2)) end,
  batchnorm_3d = function() return nn.BatchNorm1d(3, {momentum = false}) end,
  batchnorm_untracked = function() return nn.BatchNorm1d(3, {affine = false, track_running_stats = false}) end,
  layernorm = function()
    return nn.Sequential(nn.Linear(5, 6), nn.LayerNorm(6), nn.Tanh(), nn.LayerNorm(6, {elementwise_affine = false}))
  end,
  layernorm_2d = function() return nn.LayerNorm({2, 3}, {eps = 1e-3}) end,
  prelu = function() return nn.Sequential(nn.Linear(3, 4), nn.PReLU(), nn.Linear(4, 4), nn.PReLU(4)) end,
  user_module = function() return Net() end,
  float64 = function() return nn.Sequential(nn.Linear(3, 3), nn.Tanh(), nn.Linear(3, 1)):double() end,
}

local function tensor_of(entry)
  return nn.tensor(entry.values, {dtype = entry.dtype}):reshape(entry.shape)
end

describe("state_dict, as PyTorch's", function()
  for name, case in pairs(ref.families) do
    describe(name, function()
      it("has PyTorch's keys in PyTorch's order, and its names for parameters, buffers and modules", function()
        local model = families[name]()
        assert.are.same(case.keys, keys_in_order(model:state_dict()))
        assert.are.same(case.named_parameters, names(model:named_parameters()))
        assert.are.same(case.named_buffers, names(model:named_buffers()))
        assert.are.same(case.named_modules, names(model:named_modules()))
      end)

      it("loads PyTorch's file in its order, with its values", function()
        local sd = nn.load(fixture(case.file))
        assert.are.same(case.keys, keys_in_order(sd))
        for i, key in ipairs(case.keys) do assert_tensor(case.tensors[i], sd[key], key) end
      end)

      it("loads strictly into the nnlua model, which then computes PyTorch's output", function()
        local model = families[name]()
        local result = model:load_state_dict(nn.load(fixture(case.file)))
        assert.are.same({}, result.missing_keys)
        assert.are.same({}, result.unexpected_keys)
        model:eval()
        local y = nn.no_grad(function() return model(tensor_of(case.input)) end)
        assert.are.same(case.output.shape, y:size())
        -- float32 sums in another order than PyTorch's differ in the last bits
        assert_values(case.output.values, y, case.output.dtype == "float64" and 1e-13 or 2e-6, "output")
      end)

      it("saves a .pt file whose pickle is byte for byte PyTorch's", function()
        local model = families[name]()
        model:load_state_dict(nn.load(fixture(case.file)))
        local path = tmpdir .. "/" .. name .. ".pt"
        nn.save(path, model)
        assert.are.equal(pickle_of(fixture(case.file)), pickle_of(path))
      end)
    end)
  end

  it("a loss's class weights are a buffer under PyTorch's key", function()
    local case = ref.loss
    local loss = nn.CrossEntropyLoss({weight = nn.ones(3)})
    assert.are.same(case.keys, keys_in_order(loss:state_dict()))
    loss:load_state_dict(nn.load(fixture(case.file)))
    local labels = nn.tensor(case.labels, {dtype = "int64"})
    assert.is_true(math.abs(loss(tensor_of(case.input), labels):item() - case.output) < 1e-6)
  end)

  it("records each module's version in _metadata, as PyTorch's", function()
    local model = families.user_module()
    local path = tmpdir .. "/meta.pt"
    nn.save(path, model)
    local back = nn.load(path)
    local metadata = nn._ordered.info[back].state._metadata
    local got = {}
    for prefix, v in pairs(metadata) do got[#got + 1] = {prefix, v.version} end
    assert.are.same(ref.families.user_module.metadata, got)
  end)

  it("Sequential's children are model[1] in Lua and \"0\" in a file", function()
    local model = nn.Sequential(nn.Linear(2, 3), nn.Linear(3, 1))
    local sd = model:state_dict()
    assert.are.same(flat(model[1].weight), flat(sd["0.weight"]))
    assert.are.same({"0", "1"}, names(model:named_children()))
    local keys = {}
    for k in model:children() do keys[#keys + 1] = k end
    assert.are.same({1, 2}, keys)
  end)
end)

describe("load_state_dict", function()
  it("words its errors as PyTorch does and copies nothing when it refuses", function()
    local model = nn.Sequential(nn.Linear(2, 3), nn.BatchNorm1d(3))
    local before = flat(model[1].weight)
    local sd = model:state_dict()
    sd["0.bias"] = nil
    sd["2.weight"] = nn.zeros(1)
    sd["0.weight"] = nn.ones(3, 2)
    sd["1.running_mean"] = nn.zeros(4)
    expect_error(function() model:load_state_dict(sd) end,
      'load_state_dict: Error(s) in loading state_dict for Sequential:\n\tMissing key(s) in state_dict: "0.bias". '
      .. '\n\tUnexpected key(s) in state_dict: "2.weight". \n\tsize mismatch for 1.running_mean: copying a param '
      .. "with shape {4} from checkpoint, the shape in current model is {3}.")
    assert.are.same(before, flat(model[1].weight))
  end)

  it("strict = false returns the lists and loads the rest", function()
    local model = nn.Sequential(nn.Linear(2, 3))
    local result = model:load_state_dict({["0.weight"] = nn.ones(3, 2), ["0.extra"] = nn.ones(1), other = 5}, false)
    assert.are.same({"0.bias"}, result.missing_keys)
    assert.are.same({"other", "0.extra"}, result.unexpected_keys) -- the root's first, then each child's
    assert.are.same({1, 1, 1, 1, 1, 1}, flat(model[1].weight))
  end)

  it("reports a value that is not a tensor", function()
    expect_error(function() nn.Linear(2, 1):load_state_dict({weight = 3, bias = nn.zeros(1)}) end,
      'While copying the parameter named "weight", expected a tensor from checkpoint but received number')
  end)

  it("fills num_batches_tracked for a checkpoint older than BatchNorm's version 2, as PyTorch does", function()
    local bn = nn.BatchNorm1d(2)
    local sd = {weight = nn.ones(2), bias = nn.zeros(2), running_mean = nn.ones(2), running_var = nn.ones(2)}
    bn:load_state_dict(sd)
    assert.are.same({1, 1}, flat(bn.running_mean))
    -- a checkpoint of version 2 must have it
    local path = tmpdir .. "/bn.pt"
    nn.save(path, nn.BatchNorm1d(2))
    local v2 = nn.load(path)
    v2.num_batches_tracked = nil
    expect_error(function() bn:load_state_dict(v2) end, 'Missing key(s) in state_dict: "num_batches_tracked". ')
  end)

  it("loads a safetensors file nnlua saved before keys were PyTorch's (\"1.weight\" for model[1])", function()
    -- such a file: no nnlua.keys entry in its metadata, keys counted from 1
    local w, b, w2 = nn.tensor({{1, 2}, {3, 4}, {5, 6}}), nn.tensor({7, 8, 9}), nn.tensor({{1, 1, 1}})
    local entries, data, offset = {}, {}, 0
    for _, e in ipairs({{"1.bias", b}, {"1.weight", w}, {"3.bias", nn.tensor({0.5})}, {"3.weight", w2}}) do
      local bytes = string.pack("<" .. string.rep("f", e[2]:numel()), table.unpack(flat(e[2])))
      local shape = table.concat(e[2]:size(), ",")
      entries[#entries + 1] = string.format('"%s":{"dtype":"F32","shape":[%s],"data_offsets":[%d,%d]}',
        e[1], shape, offset, offset + #bytes)
      data[#data + 1] = bytes
      offset = offset + #bytes
    end
    local header = "{" .. table.concat(entries, ",") .. "}"
    local path = tmpdir .. "/old.safetensors"
    write(path, string.pack("<I8", #header) .. header .. table.concat(data))
    local model = nn.Sequential(nn.Linear(2, 3), nn.Tanh(), nn.Linear(3, 1))
    model:load_state_dict(nn.load(path))
    assert.are.same(flat(w), flat(model[1].weight))
    assert.are.same({0.5}, flat(model[3].bias))
    -- the same keys from anywhere else are PyTorch's, which these do not match
    local by_hand = {}
    for k, v in pairs(nn.load(path)) do by_hand[k] = v end
    -- (the root's unexpected keys first, then those under its child "1", PyTorch's order)
    expect_error(function() model:load_state_dict(by_hand) end,
      'Unexpected key(s) in state_dict: "3.bias", "3.weight", "1.bias", "1.weight". ')
    -- and a file nnlua saves now is never renumbered
    local new = tmpdir .. "/new.safetensors"
    nn.save(new, by_hand)
    expect_error(function() model:load_state_dict(nn.load(new)) end, 'Missing key(s) in state_dict: "0.weight"')
  end)
end)

---------------------------------------------------------------------------
describe("nn.load of PyTorch's files", function()
  it("reads nested dicts, lists, tuples, numbers, strings, bytes and None", function()
    local v = nn.load(fixture("structures.pt"))
    assert.are.same({1.5, -2}, flat(v.nested.a.b))
    assert.are.same({1, 2}, flat(v.nested.list[1]))
    assert.are.equal("int64", v.nested.list[1].dtype)
    assert.are.same({true, false}, v.nested.list[2]:totable()[1])
    assert.are.equal(3, v.nested.tuple[1]:item())
    assert.are.equal(7, v.nested.tuple[2])
    local n = v.numbers
    assert.are.equal(42, n.int); assert.are.equal("integer", math.type(n.int))
    assert.are.equal(-7, n.neg); assert.are.equal(65535, n.u16); assert.are.equal(70000, n.i32)
    assert.are.equal(1 << 40, n.big); assert.are.equal(-(1 << 40), n.neg_big)
    assert.are.equal(math.maxinteger, n.max); assert.are.equal(math.mininteger, n.min)
    assert.are.equal(0.1, n.float); assert.are.equal(math.huge, n.inf)
    assert.is_true(n.yes); assert.is_false(n.no); assert.is_nil(n.none)
    assert.are.equal("hello", v.strings.ascii)
    assert.are.equal("h\u{e9}llo \u{2211}", v.strings.utf8)
    assert.are.equal("\0\255ab", v.strings.bytes)
    assert.are.equal("", v.strings.no_bytes)
    assert.are.same({1, nil, 3}, v.list_with_none)
    assert.are.equal(3, v.list_with_none[3])
    assert.are.same({[0] = "zero", [1] = "one", [-5] = "minus five"}, v.int_keys)
    assert.are.same({[0.5] = "half"}, v.float_key)
    assert.are.same({[true] = "yes"}, v.bool_key)
    assert.are.same({"z", "a", "m"}, keys_in_order(v.ordered))
    assert.are.same({}, v.empty_list); assert.are.same({}, v.empty_dict); assert.are.same({}, v.empty_tuple)
    assert.is_true(rawequal(v.same[1], v.same[2])) -- shared in the file, shared here
  end)

  it("keeps views' strides and offsets, and storages shared by several tensors", function()
    local v = nn.load(fixture("structures.pt"))
    local s = ref.structures
    for name, entry in pairs(s.tensors) do
      assert_tensor(entry, v[name], name)
      assert.are.same(s.strides[name], v[name]:stride(), name .. ": strides")
    end
    assert.is_false(v.transposed:is_contiguous())
    -- shared_a, shared_b, transposed, narrowed and row are views of one storage
    nn.no_grad(function() v.shared_a[2][3] = 100 end) -- element 8 of the storage
    assert.are.equal(100, v.shared_b[4]:item())
    assert.are.equal(100, v.transposed[3][2]:item())
    assert.are.equal(100, v.narrowed[1][1]:item())
  end)

  it("reads parameters and tensors that require grad as leaves that do", function()
    local v = nn.load(fixture("structures.pt"))
    assert.is_true(v.parameter.requires_grad)
    assert.is_true(v.requires_grad.requires_grad)
    assert.is_false(v.scalar.requires_grad)
    assert.are.same({1, 2}, flat(v.parameter))
  end)

  it("reads every dtype as itself", function()
    local v = nn.load(fixture("dtypes.pt"))
    for name, entry in pairs(ref.dtypes) do
      assert.are.equal(entry.dtype, v[name].dtype, name)
      assert_values(entry.values, v[name], 0, name)
    end
    assert.are.same({"float32", "float64", "int64", "bool", "float16", "bfloat16", "int32", "int16", "int8",
                     "uint8"}, keys_in_order(v))
  end)

  it("reads pickle protocol 4 (STACK_GLOBAL, MEMOIZE, FRAME)", function()
    local v = nn.load(fixture("protocol4.pt"))
    assert_tensor(ref.protocol4, v.w, "w")
    assert.are.same({"a", "b"}, v.names)
    assert.are.equal(3, v.n)
  end)

  it("reads ZIP64 records", function()
    local v = nn.load(fixture("zip64.pt"))
    assert_tensor(ref.structures.tensors.narrowed, v.narrowed, "narrowed")
    assert.are.equal(0.1, v.numbers.float)
  end)

  it("reads a checkpoint with an optimizer's state", function()
    local ck = nn.load(fixture("optimizer.pt"))
    local o = ref.optimizer
    assert.are.equal(2, ck.epoch)
    assert.are.equal(0.25, ck.loss)
    assert_tensor(o.weight, ck.model.weight, "weight")
    assert_tensor(o.exp_avg_0, ck.optimizer.state[0].exp_avg, "exp_avg")
    assert.are.equal(o.step, ck.optimizer.state[0].step:item())
    local group = ck.optimizer.param_groups[1]
    assert.are.equal(o.lr, group.lr)
    assert.are.same({0.9, 0.999}, group.betas)
    assert.are.same({0, 1}, group.params)
  end)

  it("refuses a dtype nnlua lacks, naming it", function()
    expect_error(function() nn.load(fixture("complex.pt")) end, "load: ", "complex.pt", "complex64")
  end)

  it("refuses torch.save's legacy format with advice", function()
    expect_error(function() nn.load(fixture("legacy.pt")) end, "legacy format", "torch.save it again")
  end)

  it("gives a re-saved file the very pickle PyTorch wrote", function()
    for _, name in ipairs({"plain_dict.pt", "family_user_module.pt", "dtypes.pt"}) do
      local path = tmpdir .. "/again_" .. name
      local value = nn.load(fixture(name))
      nn.save(path, value)
      assert.are.equal(pickle_of(fixture(name)), pickle_of(path), name)
      local back = nn.load(path)
      assert.are.same(keys_in_order(value), keys_in_order(back))
    end
  end)
end)

---------------------------------------------------------------------------
describe("nn.save of .pt files", function()
  it("round-trips values of every kind through nn.load, tuples as tuples", function()
    local base = nn.arange(0, 12):reshape({3, 4})
    local value = {
      t = nn.tensor({{1.5, 2}, {3, 4}}), d = nn.tensor({1e-300}, {dtype = "float64"}),
      i = nn.tensor({-(1 << 62), 5}, {dtype = "int64"}), b = nn.tensor({true, false}),
      scalar = nn.tensor(7.25), empty = nn.zeros(0, 2),
      view = base:t(), row = base[2], part = base:narrow(2, 2, 2), base = base,
      numbers = {1, -1, 300, 70000, -70000, 1 << 40, math.mininteger, math.maxinteger, 0.5, -1e300},
      flags = {yes = true, no = false}, text = "h\u{e9}", bytes = "\0\255", nothing = "",
      nested = {{{1}}}, [3] = "three", [0.5] = "half", [true] = "true",
    }
    local path = tmpdir .. "/kinds.pt"
    nn.save(path, value)
    local back = nn.load(path)
    for _, k in ipairs({"t", "d", "i", "b", "scalar", "empty", "view", "row", "part", "base"}) do
      assert.are.equal(value[k].dtype, back[k].dtype, k)
      assert.are.same(value[k]:size(), back[k]:size(), k)
      assert.are.same(flat(value[k]), flat(back[k]), k)
    end
    assert.are.same(value.view:stride(), back.view:stride())
    assert.are.same(value.numbers, back.numbers)
    assert.are.same(value.flags, back.flags)
    assert.are.equal("h\u{e9}", back.text); assert.are.equal("\0\255", back.bytes)
    assert.are.equal("", back.nothing)
    assert.are.same({{{1}}}, back.nested)
    assert.are.equal("three", back[3]); assert.are.equal("half", back[0.5]); assert.are.equal("true", back[true])
    -- the four views share one storage in the file too
    nn.no_grad(function() back.base[2][3] = -1 end)
    assert.are.equal(-1, back.row[3]:item())
    assert.are.equal(-1, back.view[3][2]:item())
    assert.are.equal(-1, back.part[2][2]:item())
  end)

  it("writes each storage once, from the first to the last element its tensors use", function()
    local big = nn.arange(0, 1000)
    local path = tmpdir .. "/part.pt"
    nn.save(path, {a = big:narrow(1, 11, 5), b = big:narrow(1, 21, 2)})
    local entries = zip_entries(read(path))
    assert.are.equal(12 * 4, #entries["archive/data/0"].bytes) -- elements 10..21
    assert.is_nil(entries["archive/data/1"])
    local back = nn.load(path)
    assert.are.same({10, 11, 12, 13, 14}, flat(back.a))
    assert.are.same({20, 21}, flat(back.b))
  end)

  it("lays the file out as torch.save does, each record aligned to 64 bytes", function()
    local path = tmpdir .. "/layout.pt"
    nn.save(path, nn.Linear(2, 2))
    local entries, order = zip_entries(read(path))
    assert.are.same({"archive/data.pkl", "archive/byteorder", "archive/data/0", "archive/data/1",
                     "archive/version"}, order)
    assert.are.equal("little", entries["archive/byteorder"].bytes)
    assert.are.equal("3\n", entries["archive/version"].bytes)
    for name, e in pairs(entries) do assert.are.equal(0, e.offset % 64, name) end
  end)

  it("keeps tuples and lists apart, and an OrderedDict's order", function()
    local v = nn.load(fixture("structures.pt"))
    local path = tmpdir .. "/kinds2.pt"
    nn.save(path, {tuple = v.nested.tuple, list = v.nested.list, ordered = v.ordered, with_none = v.list_with_none})
    local back = nn.load(path)
    assert.are.equal("tuple", nn._ordered.info[back.tuple].kind)
    assert.are.equal("list", nn._ordered.info[back.list].kind)
    assert.are.equal("OrderedDict", nn._ordered.info[back.ordered].kind)
    assert.are.same({"z", "a", "m"}, keys_in_order(back.ordered))
    assert.are.same({1, nil, 3}, back.with_none)
    assert.are.equal(3, back.with_none[3])
  end)

  it("chooses the format by the file's name or by {format =}, and keeps the old metadata form", function()
    local sd = {w = nn.ones(2)}
    for _, case in ipairs({{"a.pt", nil, "zip"}, {"a.pth", nil, "zip"}, {"a.bin", {format = "pt"}, "zip"},
                           {"b.safetensors", nil, "st"}, {"b.pt", {format = "safetensors"}, "st"},
                           {"c.safetensors", {k = "v"}, "st"}}) do
      local path = tmpdir .. "/" .. case[1]
      nn.save(path, sd, case[2])
      assert.are.equal(case[3] == "zip", read(path):sub(1, 4) == "PK\3\4", case[1])
      assert.are.same({2}, nn.load(path).w:size())
    end
    local _, meta = nn.load(tmpdir .. "/c.safetensors")
    assert.are.same({k = "v"}, meta)
    nn.save(tmpdir .. "/d.safetensors", sd, {metadata = {format = "pt"}})
    assert.are.same({format = "pt"}, select(2, nn.load(tmpdir .. "/d.safetensors")))
  end)

  it("saves a bare tensor or number to .pt, as torch.save does", function()
    local path = tmpdir .. "/bare.pt"
    nn.save(path, nn.tensor({1, 2, 3}))
    assert.are.same({1, 2, 3}, flat(nn.load(path)))
    nn.save(path, 42)
    assert.are.equal(42, nn.load(path))
  end)

  it("refuses what a file cannot hold, before writing anything", function()
    local path = tmpdir .. "/refused.pt"
    nn.save(path, {ok = nn.ones(1)})
    local before = read(path)
    local cyclic = {}
    cyclic.me = cyclic
    expect_error(function() nn.save(path, {c = cyclic}) end, "save:", "'c.me' contains itself")
    expect_error(function() nn.save(path, {f = print}) end, "save:", "cannot store a function", "'f'")
    expect_error(function() nn.save(path, {[{}] = 1}) end, "save:", "a table key")
    local deep = {}
    for _ = 1, 250 do deep = {deep} end
    expect_error(function() nn.save(path, deep) end, "save:", "nested deeper than the 200 levels")
    expect_error(function() nn.save(path, nil) end, "save:", "nothing to save")
    expect_error(function() nn.save(path, {a = nn.ones(1)}, {format = "pt", metadata = {k = "v"}}) end,
      "save:", "no metadata")
    expect_error(function() nn.save(path, {a = nn.ones(1)}, {format = "npz"}) end, "save:", "format must be")
    assert.are.equal(before, read(path))
    for _, name in ipairs(support.listdir(tmpdir)) do assert.is_nil(name:find(".tmp-", 1, true), name) end
  end)

  it("its C half refuses malformed arguments with an error", function()
    local path = tmpdir .. "/junk.pt"
    local pt_write = nn._C.pt_write
    for _, storages in ipairs({{{}}, {{1, 2, 3}}, {{nn.ones(1), "a", 1}}, {{nn.ones(1), 0, 1000}},
                               {{nn.ones(1), -1, 1}}, {42}}) do
      local ok, err = pcall(pt_write, path, "\128\2N.", storages)
      assert.is_false(ok)
      assert.are.equal("string", type(err))
    end
    assert.is_nil(read(path))
    -- (the check is against the storage's allocation, which rounds up: 64 bytes here)
    expect_error(function() pt_write(path, "\128\2N.", {{nn.ones(2), 10, 20}}) end,
      "save: storage 0: elements 10..+20 lie outside the tensor's storage")
  end)

  it("saves 199 levels, and nn.load reads them", function()
    local deep = {}
    for _ = 1, 199 do deep = {deep} end
    local path = tmpdir .. "/deep.pt"
    nn.save(path, deep)
    local v, depth = nn.load(path), 0
    while v do depth, v = depth + 1, v[1] end
    assert.are.equal(200, depth)
  end)
end)

---------------------------------------------------------------------------
describe("hostile files", function()
  local marker = hostile.marker
  os.remove(marker)

  for _, case in ipairs(hostile.refused) do
    it("refuses " .. case[1] .. ": " .. case[2], function()
      local path = fixture("hostile/" .. case[1])
      expect_error(function() nn.load(path) end, "load: " .. path .. ": ", case[2])
      assert.is_nil(read(marker), "a payload ran")
    end)
  end

  it("loads a value shared many times over without copying it", function()
    local v = nn.load(fixture("hostile/" .. hostile.shared_dag))
    local level, depth = v, 0
    while type(level) == "table" do
      assert.is_true(rawequal(level[1], level[10]))
      level, depth = level[1], depth + 1
    end
    assert.are.equal(12, depth)
    assert.are.equal(1, level)
  end)

  it("refuses a file that is not a regular file, and an empty one", function()
    expect_error(function() nn.load(tmpdir) end, "load: ", "is a directory")
    local empty = tmpdir .. "/empty.pt"
    write(empty, "")
    expect_error(function() nn.load(empty) end, "load: ", empty)
  end)
end)

-- nn.save / nn.load: the safetensors format read by an independent reader
-- written here, files written by PyTorch (tests/fixtures/*.safetensors from
-- gen_safetensors.py), models and checkpoints that resume exactly,
-- malformed files refused with clear errors, and atomic saves.
local nn = require "nn"
local support = dofile((os.getenv("NN_ROOT") or ".") .. "/tests/lua/support.lua")
local flat = support.flat
local expect_error = support.expect_error

local root = os.getenv("NN_ROOT") or "."
local ref = dofile(root .. "/tests/fixtures/safetensors_reference.lua")

local write, read, listdir = support.write, support.read, support.listdir

local tmpdir = support.scratch_dir()
teardown(function() os.execute("rm -rf " .. tmpdir) end)

---------------------------------------------------------------------------
-- An independent reader of the format, sharing no code with nn.load: a
-- minimal JSON parser and string.unpack over the bytes.
local function parse_json(s)
  local i = 1
  local function ws() i = s:find("[^%s]", i) or #s + 1 end
  local parse
  local function str()
    local j = i + 1
    local out = {}
    while s:sub(j, j) ~= '"' do
      local c = s:sub(j, j)
      if c == "\\" then
        local e = s:sub(j + 1, j + 1)
        out[#out + 1] = ({n = "\n", t = "\t", ['"'] = '"', ["\\"] = "\\", ["/"] = "/"})[e] or e
        j = j + 2
      else
        out[#out + 1] = c
        j = j + 1
      end
    end
    i = j + 1
    return table.concat(out)
  end
  function parse()
    ws()
    local c = s:sub(i, i)
    if c == "{" then
      i = i + 1
      local t = {}
      ws()
      if s:sub(i, i) == "}" then i = i + 1; return t end
      repeat
        ws()
        local k = str()
        ws(); i = i + 1 -- ':'
        t[k] = parse()
        ws()
        c = s:sub(i, i); i = i + 1
      until c == "}"
      return t
    elseif c == "[" then
      i = i + 1
      local t = {}
      ws()
      if s:sub(i, i) == "]" then i = i + 1; return t end
      repeat
        t[#t + 1] = parse()
        ws()
        c = s:sub(i, i); i = i + 1
      until c == "]"
      return t
    elseif c == '"' then
      return str()
    end
    local num = s:match("^[-+%d%.eE]+", i)
    if num then i = i + #num; return math.tointeger(tonumber(num)) or tonumber(num) end
    for word, v in pairs({["true"] = true, ["false"] = false}) do
      if s:sub(i, i + #word - 1) == word then i = i + #word; return v end
    end
    error("independent reader: bad JSON at " .. i)
  end
  return parse()
end

local unpack_format = {F32 = "<f", F64 = "<d", I64 = "<i8", BOOL = "B"}
local element_size = {F32 = 4, F64 = 8, I64 = 8, BOOL = 1}

-- Returns {name = {dtype, shape, values}}, metadata.
local function independent_read(path)
  local bytes = assert(read(path))
  local n = string.unpack("<I8", bytes)
  local header = parse_json(bytes:sub(9, 8 + n))
  local data = 8 + n
  local out = {}
  for name, e in pairs(header) do
    if name ~= "__metadata__" then
      local values, size = {}, element_size[e.dtype]
      for pos = e.data_offsets[1], e.data_offsets[2] - 1, size do
        local v = string.unpack(unpack_format[e.dtype], bytes, data + pos + 1)
        if e.dtype == "BOOL" then v = v ~= 0 end
        values[#values + 1] = v
      end
      out[name] = {dtype = e.dtype, shape = e.shape, values = values}
    end
  end
  return out, header.__metadata__
end

-- Each tensor's dtype and its data's bytes, as the file holds them.
local function stored_bytes(path)
  local bytes = assert(read(path))
  local n = string.unpack("<I8", bytes)
  local header = parse_json(bytes:sub(9, 8 + n))
  local out = {}
  for name, e in pairs(header) do
    if name ~= "__metadata__" then
      out[name] = {e.dtype, bytes:sub(9 + n + e.data_offsets[1], 8 + n + e.data_offsets[2])}
    end
  end
  return out
end

---------------------------------------------------------------------------
describe("nn.save", function()
  it("writes a file an independent safetensors reader reads back", function()
    local t32 = nn.tensor({{1.5, -2.25, 3}, {4, 5, 6.125}})
    local t64 = nn.tensor({0.1, 1e-300, -7}, {dtype = "float64"})
    local ti = nn.tensor({-(1 << 62), 3, 0}, {dtype = "int64"})
    local tb = nn.tensor({true, false, true, true})
    local scalar = nn.tensor(3.5)
    local path = tmpdir .. "/plain.safetensors"
    nn.save(path, {w = t32, ["d.x"] = t64, i = ti, b = tb, s = scalar, empty = nn.zeros(0, 3),
                   -- a non-contiguous view is written in its logical order
                   tt = t32:t()}, {author = "spec", ["quote\"d"] = "line\nbreak"})
    local got, meta = independent_read(path)
    assert.are.same({dtype = "F32", shape = {2, 3}, values = {1.5, -2.25, 3, 4, 5, 6.125}}, got.w)
    assert.are.same({dtype = "F64", shape = {3}, values = {0.1, 1e-300, -7}}, got["d.x"])
    assert.are.same({dtype = "I64", shape = {3}, values = {-(1 << 62), 3, 0}}, got.i)
    assert.are.same({dtype = "BOOL", shape = {4}, values = {true, false, true, true}}, got.b)
    assert.are.same({dtype = "F32", shape = {}, values = {3.5}}, got.s)
    assert.are.same({dtype = "F32", shape = {0, 3}, values = {}}, got.empty)
    assert.are.same({1.5, 4, -2.25, 5, 3, 6.125}, got.tt.values)
    -- nnlua's own entry says that state_dict keys are PyTorch's ("0.weight")
    assert.are.same({author = "spec", ["quote\"d"] = "line\nbreak", ["nnlua.keys"] = "pytorch"}, meta)
    -- the header is padded to 8 bytes, so the data is aligned
    assert.are.equal(0, string.unpack("<I8", read(path)) % 8)
  end)

  it("round-trips through nn.load", function()
    local path = tmpdir .. "/round.safetensors"
    local orig = {a = nn.randn(4, 5), b = nn.randn(3, {dtype = "float64"}),
                  c = nn.tensor({1, 2, 3}, {dtype = "int64"}), d = nn.tensor({false, true})}
    nn.save(path, orig, {k = "v"})
    local back, meta = nn.load(path)
    for name, t in pairs(orig) do
      assert.are.equal(t.dtype, back[name].dtype)
      assert.are.same(t:size(), back[name]:size())
      assert.are.same(flat(t), flat(back[name]))
      assert.is_false(back[name].requires_grad)
    end
    assert.are.same({k = "v"}, meta)
  end)

  it("refuses what it cannot store", function()
    local path = tmpdir .. "/refused.safetensors"
    expect_error(function() nn.save(path, nn.zeros(2)) end, "save:", "a tensor (wrap it")
    expect_error(function() nn.save(path, 5) end, "save:", "module or a table")
    expect_error(function() nn.save(path, {__metadata__ = nn.zeros(1)}) end, "save:", "'__metadata__'")
    expect_error(function() nn.save(path, {f = print}) end, "save:", "cannot store a function", "'f'")
    local cyclic = {}
    cyclic.self = cyclic
    expect_error(function() nn.save(path, {c = cyclic}) end, "save:", "contains itself")
    expect_error(function() nn.save(path, {a = nn.zeros(1)}, {n = 1}) end, "save:", "metadata")
    expect_error(function() nn.save(path, {a = nn.zeros(1)}, {["nnlua.structure"] = "x"}) end, "save:", "nnlua's own")
    expect_error(function() nn.save(tmpdir .. "/no/such/dir/x.safetensors", {a = nn.zeros(1)}) end,
      "save:", "cannot create")
    assert.is_nil(read(path))
  end)
end)

describe("files written by PyTorch", function()
  it("load with the right dtypes, shapes and values", function()
    local tensors, meta = nn.load(root .. "/tests/fixtures/torch_dtypes.safetensors")
    assert.are.same({format = "pt", written_by = "gen_safetensors.py"}, meta)
    local expected_dtype = {f32 = "float32", f64 = "float64", i64 = "int64", bool = "bool", f16 = "float16",
                            bf16 = "bfloat16", i32 = "int32", i16 = "int16", i8 = "int8", u8 = "uint8",
                            scalar = "float32", empty = "float32"}
    for name, want in pairs(ref.dtypes) do
      local t = tensors[name]
      assert(t, "missing " .. name)
      assert.are.equal(expected_dtype[name], t.dtype, name)
      assert.are.same(want.shape, t:size(), name)
      if name ~= "i64" then assert.are.same(want.values, t:numel() > 0 and flat(t) or {}, name) end
    end
    -- int64 beyond 2^53: checked exactly through the independent reader,
    -- after nnlua writes what it loaded; the other dtypes written back as
    -- the very bytes PyTorch wrote
    local path = tmpdir .. "/from_torch.safetensors"
    nn.save(path, {i64 = tensors.i64})
    assert.are.same(ref.dtypes.i64.values, independent_read(path).i64.values)
    nn.save(path, tensors)
    assert.are.same(stored_bytes(root .. "/tests/fixtures/torch_dtypes.safetensors"), stored_bytes(path))
  end)

  it("restore a PyTorch model's weights into the same nnlua model", function()
    local model = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
    model:load_state_dict(nn.load(root .. "/tests/fixtures/torch_mlp.safetensors"))
    local y = flat(model(nn.tensor(ref.mlp_input)))
    local want = {}
    for _, row in ipairs(ref.mlp_output) do for _, v in ipairs(row) do want[#want + 1] = v end end
    for i = 1, #want do
      assert(math.abs(y[i] - want[i]) <= 1e-5 * math.max(1, math.abs(want[i])), "output " .. i)
    end
  end)
end)

describe("models", function()
  local function mlp() return nn.Sequential(nn.Linear(3, 5), nn.Tanh(), nn.Linear(5, 2)) end

  it("model:load_state_dict(nn.load(path)) restores a saved model", function()
    nn.manual_seed(1)
    local a = mlp()
    local path = tmpdir .. "/model.safetensors"
    nn.save(path, a)
    nn.manual_seed(2)
    local b = mlp()
    local x = nn.randn(4, 3)
    assert.are_not.same(flat(a(x)), flat(b(x)))
    b:load_state_dict(nn.load(path))
    assert.are.same(flat(a(x)), flat(b(x)))
  end)

  it("load_state_dict lists missing, unexpected and mis-shaped entries", function()
    local path = tmpdir .. "/other.safetensors"
    nn.save(path, nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2), nn.Linear(2, 2)))
    local sd = nn.load(path)
    local err = expect_error(function() mlp():load_state_dict(sd) end, "load_state_dict:",
      "size mismatch for 0.weight: copying a param with shape {4, 3} from checkpoint, the shape in "
      .. "current model is {5, 3}.", 'Unexpected key(s) in state_dict: "3.bias", "3.weight". ') -- (a safetensors file's order: sorted)
    sd["3.weight"], sd["3.bias"], sd["2.bias"] = nil, nil, nil
    sd["0.weight"], sd["0.bias"] = nn.zeros(5, 3), nn.zeros(5)
    sd["2.weight"] = nn.zeros(2, 5)
    expect_error(function() mlp():load_state_dict(sd) end, "load_state_dict:",
      'Missing key(s) in state_dict: "2.bias". ')
    local result = mlp():load_state_dict(sd, false)
    assert.are.same({"2.bias"}, result.missing_keys)
    assert(err)
  end)
end)

describe("checkpoints", function()
  -- A small classifier trained with dropout (draws from nn's generator),
  -- an unseeded shuffling loader (its orders are drawn from it too) and
  -- Adam (state tensors and step counts).
  local function setup(seed)
    nn.manual_seed(seed)
    local model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Dropout(0.3), nn.Linear(8, 3))
    local opt = nn.optim.Adam(model:parameters(), {lr = 0.01, betas = {0.8, 0.95}})
    return model, opt
  end
  nn.manual_seed(100)
  local x = nn.randn(40, 4)
  local y = (nn.rand(40) * 3):floor():to("int64") + 1
  local data = nn.data.TensorDataset(x, y)
  local criterion = nn.CrossEntropyLoss()

  local function train_epochs(model, opt, loader, from, to)
    for _ = from, to do
      for xb, yb in loader:iter() do
        opt:zero_grad()
        criterion(model(xb), yb):backward()
        opt:step()
      end
    end
  end

  it("resume training with the same result as a run that never stopped", function()
    local model, opt = setup(7)
    local loader = nn.data.DataLoader(data, {batch_size = 8, shuffle = true})
    train_epochs(model, opt, loader, 1, 4)
    local uninterrupted = {}
    for name, t in pairs(model:state_dict()) do uninterrupted[name] = flat(t) end

    local first, first_opt = setup(7)
    local first_loader = nn.data.DataLoader(data, {batch_size = 8, shuffle = true})
    train_epochs(first, first_opt, first_loader, 1, 2)
    local path = tmpdir .. "/checkpoint.safetensors"
    nn.save(path, {model = first, optimizer = first_opt:state_dict(), epoch = 2,
                   rng = nn.get_rng_state(), note = "halfway", lr = 0.01})
    -- the "new process": everything built afresh, the generator elsewhere
    local resumed, resumed_opt = setup(999)
    nn.rand(17)
    local ck = nn.load(path)
    assert.are.equal(2, ck.epoch)
    assert.are.equal("integer", math.type(ck.epoch))
    assert.are.equal("float", math.type(ck.lr))
    assert.are.equal("halfway", ck.note)
    resumed:load_state_dict(ck.model)
    resumed_opt:load_state_dict(ck.optimizer)
    nn.set_rng_state(ck.rng)
    local resumed_loader = nn.data.DataLoader(data, {batch_size = 8, shuffle = true})
    train_epochs(resumed, resumed_opt, resumed_loader, ck.epoch + 1, 4)
    for name, t in pairs(resumed:state_dict()) do
      assert.are.same(uninterrupted[name], flat(t), name)
    end
    assert.are.same({0.8, 0.95}, resumed_opt.param_groups[1].betas)
  end)

  it("keep their tensors readable by any safetensors reader", function()
    local model, opt = setup(3)
    local path = tmpdir .. "/ck2.safetensors"
    train_epochs(model, opt, nn.data.DataLoader(data, {batch_size = 40}), 1, 1)
    nn.save(path, {model = model, optimizer = opt:state_dict(), rng = nn.get_rng_state(),
                   odd = {[3] = "three", [-1] = true, [1.5] = 0 / 0, inf = math.huge, ["$x"] = {}}})
    local tensors, meta = independent_read(path)
    assert(tensors["model.0.weight"], "model.0.weight")
    assert(tensors["optimizer.state.1.1.exp_avg"], "optimizer.state.1.1.exp_avg")
    assert(meta["nnlua.structure"])
    local ck, user_meta = nn.load(path)
    assert.are.same({}, user_meta)
    assert.are.equal("three", ck.odd[3])
    assert.is_true(ck.odd[-1])
    assert(ck.odd[1.5] ~= ck.odd[1.5])
    assert.are.equal(math.huge, ck.odd.inf)
    assert.are.same({}, ck.odd["$x"])
    assert.are.equal(nn.get_rng_state(), ck.rng)
    assert.are.equal(1, ck.optimizer.state[1][1].step)
  end)
end)

describe("malformed files", function()
  local good = tmpdir .. "/good.safetensors"
  nn.save(good, {a = nn.tensor({1, 2, 3}), b = nn.tensor({4, 5}, {dtype = "float64"})})
  local bytes = read(good)
  local n = string.unpack("<I8", bytes)
  local data = bytes:sub(9 + n)

  local function with_header(header, payload)
    local p = tmpdir .. "/bad.safetensors"
    write(p, string.pack("<I8", #header) .. header .. (payload or data))
    return p
  end

  it("a bad header length", function()
    local p = tmpdir .. "/bad.safetensors"
    write(p, string.pack("<I8", 1 << 40) .. "{}")
    expect_error(function() nn.load(p) end, "load:", "bad header length")
    write(p, string.pack("<I8", 3) .. "{}")
    expect_error(function() nn.load(p) end, "load:", "bad header length")
    write(p, "\1\2\3")
    expect_error(function() nn.load(p) end, "load:", "not a safetensors file")
    write(p, "")
    expect_error(function() nn.load(p) end, "load:", "not a safetensors file")
    expect_error(function() nn.load(tmpdir .. "/missing.safetensors") end, "load:", "cannot open")
    expect_error(function() nn.load(tmpdir) end, "load:", "not a regular file")
  end)

  it("a header that is not JSON, or not the format's", function()
    for _, header in ipairs({"{nope}", '{"a":', '{"a":{"dtype":"F32"}} x', "[1,2]", '{"a":1,"a":2}',
                             '{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,12]}', "\0\0\0\0",
                             '{"a":"\\ud800"}', '{"a":01}', '{"a":1.}', string.rep("[", 300)}) do
      expect_error(function() nn.load(with_header(header)) end, "load:")
    end
    expect_error(function() nn.load(with_header("{nope}")) end, "load:", "not valid JSON")
    expect_error(function() nn.load(with_header('{"a":1,"a":2}')) end, "duplicate key 'a'")
    expect_error(function() nn.load(with_header('{"a":{"shape":[1],"data_offsets":[0,4]}}')) end, "tensor 'a'", "no dtype")
    expect_error(function() nn.load(with_header('{"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}}')) end,
      "tensor 'a'", "non-negative")
    expect_error(function() nn.load(with_header('{"a":{"dtype":"F32","shape":[1],"data_offsets":[0]}}')) end,
      "tensor 'a'", "data_offsets")
    expect_error(function() nn.load(with_header('{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4.5]}}')) end,
      "tensor 'a'", "data_offsets")
    expect_error(function() nn.load(with_header('{"__metadata__":{"k":1}}')) end, "__metadata__", "not a string")
  end)

  it("offsets outside the file, overlapping tensors, sizes that disagree", function()
    expect_error(function()
      nn.load(with_header('{"a":{"dtype":"F32","shape":[3],"data_offsets":[20,32]}}'))
    end, "load:", "tensor 'a'", "outside the 28 bytes")
    expect_error(function()
      nn.load(with_header('{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,12]}}', ""))
    end, "outside the 0 bytes")
    expect_error(function()
      nn.load(with_header('{"a":{"dtype":"F32","shape":[3],"data_offsets":[12,0]}}'))
    end, "outside")
    expect_error(function()
      nn.load(with_header('{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,12]},' ..
                          '"b":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}}'))
    end, "load:", "'a' and 'b' overlap")
    expect_error(function()
      nn.load(with_header('{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,12]}}'))
    end, "load:", "12 bytes of data", "need 16")
    expect_error(function()
      nn.load(with_header('{"a":{"dtype":"F32","shape":[1,1,1,1,1,1,1,1,1],"data_offsets":[0,4]}}'))
    end, "9 dimensions")
    expect_error(function()
      nn.load(with_header('{"a":{"dtype":"F32","shape":[4294967296,4294967296,4294967296],"data_offsets":[0,4]}}'))
    end, "impossible shape")
  end)

  it("an unknown dtype", function()
    expect_error(function()
      nn.load(with_header('{"a":{"dtype":"Q7","shape":[3],"data_offsets":[0,12]}}'))
    end, "load:", "tensor 'a'", "unknown dtype 'Q7'")
  end)

  it("never runs what a file holds", function()
    _G.nn_spec_ran = nil
    local p = with_header('{"_G.nn_spec_ran = true":{"dtype":"F32","shape":[3],"data_offsets":[0,12]},' ..
                          '"__metadata__":{"nnlua.structure":"{\\"x\\":\\"os.exit(1)\\"}"}}')
    local value = nn.load(p)
    assert.are.equal("os.exit(1)", value.x)
    assert.is_nil(_G.nn_spec_ran)
  end)

  it("still loads the good file", function()
    local t = nn.load(good)
    assert.are.same({1, 2, 3}, flat(t.a))
  end)
end)

describe("atomic saves", function()
  it("leave the previous file whole when a save fails", function()
    local dir = tmpdir .. "/atomic"
    assert(os.execute("mkdir -p " .. dir))
    local path = dir .. "/m.safetensors"
    nn.save(path, {a = nn.tensor({1, 2})})
    local before = read(path)
    expect_error(function() nn.save(path, {a = nn.tensor({3}), f = print}) end, "save:")
    assert.are.equal(before, read(path))
    assert.are.same({"m.safetensors"}, listdir(dir))
    nn.save(path, {a = nn.tensor({3, 4, 5})})
    assert.are.same({3, 4, 5}, flat(nn.load(path).a))
    assert.are.same({"m.safetensors"}, listdir(dir))
  end)

  it("leave the previous file whole when the process dies mid-save", function()
    local dir = tmpdir .. "/crash"
    assert(os.execute("mkdir -p " .. dir))
    local path = dir .. "/big.safetensors"
    local small = {a = nn.tensor({1, 2, 3})}
    nn.save(path, small)
    local big = {a = nn.zeros(4 * 1024 * 1024)}
    local C = nn._C
    local pid = C.sys_fork()
    if pid == 0 then
      while true do nn.save(path, big) end
    end
    C.sys_sleep(0.3)
    C.sys_kill(pid, "KILL")
    C.sys_waitpid(pid, true)
    -- whichever save came last is there whole: the first, or a big one
    local t = nn.load(path).a
    assert(t:numel() == 3 or t:numel() == 4 * 1024 * 1024, "a partial file")
    if t:numel() == 3 then assert.are.same({1, 2, 3}, flat(t)) end
  end)
end)

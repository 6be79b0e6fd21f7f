-- nn.data: IDX files (plain and gzip, and the errors of broken ones),
-- Fashion-MNIST from Debian's package, CSV, TensorDataset, DataLoader
-- (coverage, batching, reproducible shuffles) and random_split.
local nn = require "nn"
local support = dofile((os.getenv("NN_ROOT") or ".") .. "/tests/lua/support.lua")
local flat = support.flat
local expect_error = support.expect_error

local write, read = support.write, support.read
local idx_bytes, gzip = support.idx_bytes, support.gzip

local tmpdir = support.scratch_dir()
teardown(function() os.execute("rm -rf " .. tmpdir) end)

describe("nn.data.idx", function()
  local pixels = {}
  for i = 1, 2 * 3 * 4 do pixels[i] = (i * 37) % 256 end
  local ubyte_path = tmpdir .. "/images-idx3-ubyte"
  write(ubyte_path, idx_bytes(0x08, {2, 3, 4}, string.char(table.unpack(pixels))))

  it("reads unsigned bytes as int64 in the file's shape", function()
    local t = nn.data.idx(ubyte_path)
    assert.are.equal("int64", t.dtype)
    assert.are.same({2, 3, 4}, t:size())
    assert.are.same(pixels, flat(t))
  end)

  it("converts and scales while reading", function()
    local t = nn.data.idx(ubyte_path, {dtype = "float32", scale = 1 / 255})
    assert.are.equal("float32", t.dtype)
    local got = flat(t)
    for i, p in ipairs(pixels) do
      assert(math.abs(got[i] - p / 255) < 1e-7, "pixel " .. i)
    end
  end)

  it("reads the gzip-compressed file alike", function()
    local t = nn.data.idx(gzip(ubyte_path))
    assert.are.same({2, 3, 4}, t:size())
    assert.are.same(pixels, flat(t))
  end)

  it("reads the signed and floating-point element types", function()
    local p = tmpdir .. "/ints-idx1"
    write(p, idx_bytes(0x0C, {3}, string.pack(">i4>i4>i4", -7, 0, 2147483647)))
    local t = nn.data.idx(p)
    assert.are.equal("int64", t.dtype)
    assert.are.same({-7, 0, 2147483647}, flat(t))
    write(p, idx_bytes(0x09, {2}, string.pack(">i1>i1", -128, 5)))
    assert.are.same({-128, 5}, flat(nn.data.idx(p)))
    write(p, idx_bytes(0x0B, {2}, string.pack(">i2>i2", -300, 300)))
    assert.are.same({-300, 300}, flat(nn.data.idx(p)))
    write(p, idx_bytes(0x0D, {2}, string.pack(">f>f", 1.5, -0.25)))
    t = nn.data.idx(p)
    assert.are.equal("float32", t.dtype)
    assert.are.same({1.5, -0.25}, flat(t))
    write(p, idx_bytes(0x0E, {1, 2}, string.pack(">d>d", 0.1, -1e300)))
    t = nn.data.idx(p)
    assert.are.equal("float64", t.dtype)
    assert.are.same({0.1, -1e300}, flat(t))
  end)

  it("refuses a bad magic number", function()
    local p = tmpdir .. "/bad-magic"
    write(p, "\1\0\8\1" .. string.pack(">I4", 1) .. "x")
    expect_error(function() nn.data.idx(p) end, "idx:", "bad magic number")
    write(p, "\0\0\7\1" .. string.pack(">I4", 1) .. "x")
    expect_error(function() nn.data.idx(p) end, "idx:", "bad magic number")
    write(p, "\0\0")
    expect_error(function() nn.data.idx(p) end, "idx:", "truncated")
  end)

  it("refuses a truncated file, plain or compressed", function()
    local p = tmpdir .. "/short-idx"
    write(p, idx_bytes(0x08, {10, 10}, string.rep("\7", 50)))
    expect_error(function() nn.data.idx(p) end, "idx:", "truncated", "100 elements", "ends after 50")
    write(p, "\0\0\8\3" .. string.pack(">I4", 2))
    expect_error(function() nn.data.idx(p) end, "idx:", "truncated inside its header")
    -- a gzip stream cut in half
    write(p, idx_bytes(0x08, {100, 100}, string.rep("\1\2\3\4\5", 2000)))
    local gz = read(gzip(p))
    write(p .. ".gz", gz:sub(1, #gz // 2))
    expect_error(function() nn.data.idx(p .. ".gz") end, "idx:")
  end)

  it("refuses data beyond what the header says", function()
    local p = tmpdir .. "/long-idx"
    write(p, idx_bytes(0x08, {4}, "\1\2\3\4\5"))
    expect_error(function() nn.data.idx(p) end, "idx:", "more data than its header says")
  end)

  it("names a missing file", function()
    expect_error(function() nn.data.idx(tmpdir .. "/nothing-here") end, "idx:", "cannot open", "nothing-here")
    expect_error(function() nn.data.idx(42) end, "idx:", "file name")
    expect_error(function() nn.data.idx(ubyte_path, {dtype = "int4"}) end, "idx:", "unknown dtype")
  end)
end)

local fashion_dir = os.getenv("NN_FASHION_MNIST") or "/usr/share/datasets/fashion-mnist"
local have_fashion = io.open(fashion_dir .. "/t10k-labels-idx1-ubyte.gz", "rb")
if have_fashion then have_fashion:close() end

describe("nn.data.fashion_mnist", function()
  if not have_fashion then
    pending("Debian's dataset-fashion-mnist is not installed (tools/setup.sh installs it)")
    return
  end
  local train, test, classes = nn.data.fashion_mnist()

  it("gives 60000 training and 10000 test images in [0, 1], flattened", function()
    assert.are.same({60000, 784}, train.images:size())
    assert.are.same({10000, 784}, test.images:size())
    assert.are.equal("float32", train.images.dtype)
    assert.are.equal(0, train.images:min():item())
    assert.are.equal(1, train.images:max():item())
    assert.are.equal(60000, #train)
    assert.are.equal(train.images, train.tensors[1])
  end)

  it("labels 1..10, 6000 of each class in training, with the ten names", function()
    assert.are.equal("int64", train.labels.dtype)
    assert.are.equal(1, train.labels:min():item())
    assert.are.equal(10, train.labels:max():item())
    local counts = {}
    for _, label in ipairs(flat(train.labels)) do counts[label] = (counts[label] or 0) + 1 end
    for c = 1, 10 do assert.are.equal(6000, counts[c]) end
    assert.are.equal(10, #classes)
    assert.are.equal("T-shirt/top", classes[1])
    assert.are.equal("Ankle boot", classes[10])
    -- the first test image is an ankle boot, the first training image too
    assert.are.equal(10, test.labels[1]:item())
    assert.are.equal(10, train.labels[1]:item())
  end)

  it("keeps 28x28 images when asked, and names a wrong directory", function()
    local small = select(2, nn.data.fashion_mnist({flatten = false}))
    assert.are.same({10000, 28, 28}, small.images:size())
    assert.are.same(flat(test.images:narrow(1, 1, 1)), flat(small.images:narrow(1, 1, 1)))
    expect_error(function() nn.data.fashion_mnist(tmpdir) end, "fashion_mnist:", "not found", "dataset-fashion-mnist")
  end)

  it("gives the images as bytes with dtype = \"uint8\", as torchvision's .data", function()
    local bytes = select(2, nn.data.fashion_mnist({dtype = "uint8", flatten = false}))
    assert.are.equal("uint8", bytes.images.dtype)
    assert.are.same({10000, 28, 28}, bytes.images:size())
    assert.are.equal(255, bytes.images:max():item())
    local first = bytes.images[1]:float() * (1 / 255) -- as the float32 loader scales
    assert.are.same(flat(test.images:narrow(1, 1, 1)), flat(first))
    assert.are.same(flat(test.labels), flat(bytes.labels))
    expect_error(function() nn.data.fashion_mnist({dtype = "int8"}) end, "fashion_mnist:", "dtype", "uint8")
  end)
end)

describe("nn.data.csv", function()
  local p = tmpdir .. "/iris.csv"
  write(p, "sepal, petal ,width,class\n5.1,1.4,0.2,1\n4.9,1.5,0.1,2\r\n\n6.0,2.0,1e-1,3\n")

  it("reads features and a target by name or position", function()
    local x, y, names = nn.data.csv(p, {features = {"sepal", 2}, target = "class", target_dtype = "int64"})
    assert.are.same({3, 2}, x:size())
    assert.are.equal("float32", x.dtype)
    assert.are.same({"sepal", "petal"}, names)
    assert.are.equal("int64", y.dtype)
    assert.are.same({1, 2, 3}, flat(y))
    assert(math.abs(flat(x)[3] - 4.9) < 1e-6)
  end)

  it("takes every other column as features by default", function()
    local x, y, names = nn.data.csv(p, {target = 4, dtype = "float64"})
    assert.are.same({3, 3}, x:size())
    assert.are.same({"sepal", "petal", "width"}, names)
    assert.are.same({5.1, 1.4, 0.2, 4.9, 1.5, 0.1, 6.0, 2.0, 0.1}, flat(x))
    assert.are.same({3}, y:size())
    local x2, y2 = nn.data.csv(p, {target = {"width", "class"}})
    assert.are.same({3, 2}, x2:size())
    assert.are.same({3, 2}, y2:size())
    assert.is_nil(select(2, nn.data.csv(p)))
  end)

  it("names the line and column of a bad cell, and unknown columns", function()
    local q = tmpdir .. "/bad.csv"
    write(q, "a,b\n1,2\n3,oops\n")
    expect_error(function() nn.data.csv(q) end, "csv:", "bad.csv:3", "column 'b'", "oops")
    write(q, "a,b\n1,2\n3\n")
    expect_error(function() nn.data.csv(q) end, "csv:", "bad.csv:3", "1 fields")
    expect_error(function() nn.data.csv(p, {target = "nope"}) end, "csv:", "'nope'", "not in the header")
    expect_error(function() nn.data.csv(p, {features = {9}}) end, "csv:", "column 9")
    expect_error(function() nn.data.csv(tmpdir .. "/none.csv") end, "csv:", "cannot open")
  end)
end)

describe("nn.data.TensorDataset", function()
  it("pairs rows and checks their counts", function()
    local x, y = nn.arange(12):view(6, 2), nn.arange(6, {dtype = "int64"})
    local ds = nn.data.TensorDataset(x, y)
    assert.are.equal(6, #ds)
    local a, b = ds:get(3)
    assert.are.same({4, 5}, flat(a))
    assert.are.equal(2, b:item())
    local part = ds:slice(2, 3)
    assert.are.equal(3, #part)
    assert.are.same({2, 3, 4, 5, 6, 7}, flat(part.tensors[1]))
    expect_error(function() nn.data.TensorDataset(x, nn.zeros(5)) end, "TensorDataset:", "5 rows", "6")
    expect_error(function() nn.data.TensorDataset(x, 3) end, "TensorDataset:", "not a tensor")
    expect_error(function() ds:get(7) end, "TensorDataset:", "outside 1..6")
    expect_error(function() ds:slice(5, 3) end, "slice", "outside")
  end)
end)

describe("nn.data.DataLoader", function()
  local n = 10
  local x = nn.arange(n * 3, {dtype = "float32"}):view(n, 3)
  local y = nn.arange(n, {dtype = "int64"})
  local ds = nn.data.TensorDataset(x, y)

  local function epoch(loader)
    local order, sizes = {}, {}
    for xb, yb in loader:iter() do
      sizes[#sizes + 1] = xb:size(1)
      assert.are.equal(xb:size(1), yb:size(1))
      for i, label in ipairs(flat(yb)) do
        order[#order + 1] = label
        -- each row stays with its label
        assert.are.same({3 * label, 3 * label + 1, 3 * label + 2}, flat(xb[i]))
      end
    end
    return order, sizes
  end

  it("batches in order, the last batch smaller unless dropped", function()
    local loader = nn.data.DataLoader(ds, {batch_size = 4})
    assert.are.equal(3, #loader)
    local order, sizes = epoch(loader)
    assert.are.same({0, 1, 2, 3, 4, 5, 6, 7, 8, 9}, order)
    assert.are.same({4, 4, 2}, sizes)
    local dropping = nn.data.DataLoader(ds, {batch_size = 4, drop_last = true})
    assert.are.equal(2, #dropping)
    order, sizes = epoch(dropping)
    assert.are.same({4, 4}, sizes)
    assert.are.equal(8, #order)
  end)

  it("shuffles each sample exactly once per epoch, reproducibly from the seed", function()
    local a = nn.data.DataLoader(ds, {batch_size = 3, shuffle = true, seed = 7})
    local b = nn.data.DataLoader(ds, {batch_size = 3, shuffle = true, seed = 7})
    local a1, a2 = epoch(a), epoch(a)
    local b1, b2 = epoch(b), epoch(b)
    assert.are.same(a1, b1)
    assert.are.same(a2, b2)
    assert.are_not.same(a1, a2)
    local sorted = {table.unpack(a1)}
    table.sort(sorted)
    assert.are.same({0, 1, 2, 3, 4, 5, 6, 7, 8, 9}, sorted)
    -- a resumed loader continues the sequence
    local c = nn.data.DataLoader(ds, {batch_size = 3, shuffle = true, seed = 7})
    c:set_epoch(2)
    assert.are.same(a2, epoch(c))
    assert.are_not.same(a1, epoch(nn.data.DataLoader(ds, {batch_size = 3, shuffle = true, seed = 8})))
  end)

  it("a seeded shuffle leaves nn's generator alone; an unseeded one follows nn.manual_seed", function()
    nn.manual_seed(5)
    local expected = flat(nn.rand(3))
    nn.manual_seed(5)
    epoch(nn.data.DataLoader(ds, {batch_size = 3, shuffle = true, seed = 1}))
    assert.are.same(expected, flat(nn.rand(3)))
    nn.manual_seed(11)
    local u1 = epoch(nn.data.DataLoader(ds, {batch_size = 3, shuffle = true}))
    nn.manual_seed(11)
    local u2 = epoch(nn.data.DataLoader(ds, {batch_size = 3, shuffle = true}))
    assert.are.same(u1, u2)
  end)

  it("gives new tensors for each batch, so a kept batch stays valid", function()
    local loader = nn.data.DataLoader(ds, {batch_size = 5})
    local kept = {}
    for xb in loader:iter() do kept[#kept + 1] = xb end
    assert.are.same({0, 1, 2}, flat(kept[1][1]))
    assert.are.same({15, 16, 17}, flat(kept[2][1]))
  end)

  it("with reuse, refills a batch nothing else holds, and never one a graph saved", function()
    local loader = nn.data.DataLoader(ds, {batch_size = 4, reuse = true})
    local first_x, count = nil, 0
    local order = {}
    for xb, yb in loader:iter() do
      count = count + 1
      if count == 1 then first_x = xb
      elseif count == 2 then assert.are.equal(first_x, xb) end -- the same tensor, refilled
      for _, label in ipairs(flat(yb)) do order[#order + 1] = label end
      for i, label in ipairs(flat(yb)) do
        assert.are.same({3 * label, 3 * label + 1, 3 * label + 2}, flat(xb[i]))
      end
      collectgarbage() -- the row views above hold the storage until collected
    end
    assert.are.same({0, 1, 2, 3, 4, 5, 6, 7, 8, 9}, order)
    -- a batch that an autograd graph saved is not overwritten
    local w = nn.randn(3, 2, {requires_grad = true})
    local held
    for xb in loader:iter() do
      if not held then
        held = {x = xb, values = flat(xb), out = xb:matmul(w):sum()}
      end
    end
    assert.are.same(held.values, flat(held.x))
    held.out:backward()
    assert.are.same(held.values, flat(held.x))
  end)

  it("collates any dataset with # and get", function()
    local custom = setmetatable({}, {__len = function() return 5 end, __index = {
      get = function(_, i) return nn.tensor({i, -i}), i * 10 end}})
    local loader = nn.data.DataLoader(custom, {batch_size = 2, shuffle = true, seed = 3})
    local seen = 0
    for xb, yb in loader:iter() do
      assert.are.equal(xb:size(1), yb:size(1))
      assert.are.same({2}, {xb:size(2)})
      for i, v in ipairs(flat(yb)) do assert.are.equal(v / 10, flat(xb[i])[1]) end
      seen = seen + xb:size(1)
    end
    assert.are.equal(5, seen)
  end)

  it("refuses bad options", function()
    expect_error(function() nn.data.DataLoader(ds, {batch_size = 0}) end, "DataLoader:", "batch_size")
    expect_error(function() nn.data.DataLoader(ds, {batchsize = 2}) end, "DataLoader:", "unknown option 'batchsize'")
    expect_error(function() nn.data.DataLoader(ds, {seed = 1.5}) end, "DataLoader:", "seed")
    expect_error(function() nn.data.DataLoader(42) end, "DataLoader:", "dataset")
  end)

  it("refuses a dataset whose length is negative or not an integer, rather than making 0 batches", function()
    local function dataset(len)
      return setmetatable({}, {__len = function() return len end, __index = {get = function() return 1 end}})
    end
    expect_error(function() nn.data.DataLoader(dataset(-3)) end,
      "DataLoader: the dataset's length (#ds) must be a non-negative integer, got -3")
    expect_error(function() nn.data.DataLoader(dataset(2.5)) end, "DataLoader:", "non-negative integer, got 2.5")
    expect_error(function() nn.data.DataLoader(dataset(4.0)) end, "DataLoader:", "got 4.0")
    expect_error(function() nn.data.DataLoader(dataset("4")) end, "DataLoader:", 'got "4"')
    -- a length that turns bad later is caught when it is used
    local len = 4
    local changing = setmetatable({}, {__len = function() return len end, __index = {get = function(_, i) return i end}})
    local loader = nn.data.DataLoader(changing, {batch_size = 2})
    assert.are.equal(2, #loader)
    len = -1
    expect_error(function() return #loader end, "DataLoader:", "got -1")
    expect_error(function() loader:iter() end, "DataLoader:", "got -1")
    expect_error(function() nn.data.Subset(dataset(-1), {}) end, "Subset:", "got -1")
    -- an empty dataset is fine: no batches
    assert.are.equal(0, #nn.data.DataLoader(dataset(0)))
  end)

  it("set_epoch(e) makes the next epoch e, whose order is a function of (seed, e)", function()
    local function run(loader, epochs)
      local orders = {}
      for e = 1, epochs do orders[e] = epoch(loader) end
      return orders
    end
    local opts = {batch_size = 3, shuffle = true, seed = 11}
    local straight = run(nn.data.DataLoader(ds, opts), 5)
    -- stopped after 2 epochs; a new loader resumes with set_epoch(3)
    local first = nn.data.DataLoader(ds, opts)
    local orders = run(first, 2)
    assert.are.equal(2, first.epoch)
    local resumed = nn.data.DataLoader(ds, opts)
    resumed:set_epoch(3)
    for _, o in ipairs(run(resumed, 3)) do orders[#orders + 1] = o end
    assert.are.same(straight, orders)
    assert.are.equal(5, resumed.epoch)
    -- PyTorch's habit, set_epoch(epoch) at the top of every epoch, gives
    -- the same orders as not calling it
    local every = nn.data.DataLoader(ds, opts)
    for e = 1, 5 do
      every:set_epoch(e)
      assert.are.same(straight[e], epoch(every), "epoch " .. e)
    end
    -- the order is that of (seed, e) whatever came before
    local jump = nn.data.DataLoader(ds, opts)
    jump:set_epoch(4)
    assert.are.same(straight[4], epoch(jump))
    jump:set_epoch(2)
    assert.are.same(straight[2], epoch(jump))
    expect_error(function() jump:set_epoch(-1) end, "DataLoader:set_epoch:", "non-negative integer, got -1")
    expect_error(function() jump:set_epoch(1.5) end, "DataLoader:set_epoch:", "got 1.5")
  end)
end)

describe("nn.data.random_split", function()
  local n = 20
  local ds = nn.data.TensorDataset(nn.arange(n, {dtype = "float64"}), nn.arange(n, {dtype = "int64"}))

  it("splits into disjoint parts covering the dataset, reproducibly", function()
    local a, b = nn.data.random_split(ds, {15, 5}, 4)
    assert.are.equal(15, #a)
    assert.are.equal(5, #b)
    local all = {}
    for _, part in ipairs({a, b}) do
      local xs, ys = flat(part.tensors[1]), flat(part.tensors[2])
      for i, v in ipairs(ys) do
        assert.are.equal(v, xs[i])
        assert.is_nil(all[v])
        all[v] = true
      end
    end
    for v = 0, n - 1 do assert.is_true(all[v]) end
    local a2 = nn.data.random_split(ds, {15, 5}, 4)
    assert.are.same(flat(a.tensors[2]), flat(a2.tensors[2]))
  end)

  it("takes fractions, and refuses lengths that do not add up", function()
    local a, b, c = nn.data.random_split(ds, {0.5, 0.3, 0.2}, 1)
    assert.are.same({10, 6, 4}, {#a, #b, #c})
    local d, e = nn.data.random_split(ds, {0.33, 0.67}, 1)
    assert.are.equal(20, #d + #e)
    expect_error(function() nn.data.random_split(ds, {10, 5}) end, "random_split:", "sum to 15", "20 samples")
    expect_error(function() nn.data.random_split(ds, {10, 10}, "x") end, "random_split:", "seed")
  end)
end)

describe("nn.data.DataLoader's background prefetch", function()
  it("hands out batches whose rows are the ones their labels name, loops left early included", function()
    local x = nn.randn(1000, 50)
    local y = nn.arange(0, 1000, {dtype = "int64"})
    local loader = nn.data.DataLoader(nn.data.TensorDataset(x, y), {batch_size = 10, shuffle = true, seed = 3})
    for _ = 1, 50 do -- leave epochs midway, with a batch in flight
      for _, by in loader:iter() do
        if by[1]:item() % 7 == 0 then break end
      end
    end
    collectgarbage()
    local seen = 0
    for bx, by in loader:iter() do
      for i = 1, #by do
        local row = by[i]:item() + 1
        assert.are.equal(0, (bx[i] - x[row]):abs():max():item(), "batch row " .. i)
        seen = seen + 1
      end
    end
    assert.are.equal(1000, seen)
  end)

  it("gives each forked process its own prefetch thread", function()
    local nnlua = assert(os.getenv("NNLUA"), "NNLUA must name the nnlua to test")
    local script = [[
      local x = nn.randn(200, 8)
      local loader = nn.data.DataLoader(nn.data.TensorDataset(x, nn.arange(0, 200, {dtype = "int64"})),
                                        {batch_size = 16, shuffle = true, seed = 1})
      for _ in loader:iter() do end
      local file = ]] .. string.format("%q", tmpdir .. "/prefetch_sweep.jsonl") .. [[

      local result = nn.sweep{parameters = {a = {1, 2}}, seeds = 1, metric = "n", mode = "max",
        workers = 2, file = file, quiet = true, plot = false,
        run = function() local n = 0; for bx in loader:iter() do n = n + bx:size(1) end; return {n = n} end}
      os.remove(file)
      for _, t in ipairs(result.trials) do print("trial", t.status, t.metrics and t.metrics.n) end
    ]]
    local p = io.popen(string.format("%q -e %q 2>&1", nnlua, script))
    local out = p:read("a")
    p:close()
    local _, count = out:gsub("trial\tok\t200", "")
    assert.are.equal(2, count, out)
  end)
end)

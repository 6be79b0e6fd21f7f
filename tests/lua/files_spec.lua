-- What a file, or a mistaken argument, can throw at nn's readers and
-- writers: nothing hangs, grows without end, reads past an array, writes
-- a file it cannot read back, or leaves garbage behind.
--   nn.data.csv's delimiter; shapes whose strides overflow; generator
--   states; FIFOs, devices and symbolic links for nn.load, nn.data.idx and
--   nn.save; checkpoints nested deeper than nn.load reads; safetensors
--   headers with offsets that are not integers; IDX files whose header
--   claims more than they hold; temporary files of killed saves.
local nn = require "nn"
local support = dofile((os.getenv("NN_ROOT") or ".") .. "/tests/lua/support.lua")
local flat = support.flat
local expect_error = support.expect_error
local C = nn._C

local write, read, listdir = support.write, support.read, support.listdir
local idx_bytes, gzip = support.idx_bytes, support.gzip

local tmpdir = support.scratch_dir()
teardown(function() os.execute("rm -rf " .. tmpdir) end)

local function shell(cmd)
  local p = io.popen(cmd)
  local out = p:read("a")
  p:close()
  return (out:gsub("%s+$", ""))
end

-- Runs fn, failing (instead of running on) once it has taken many more
-- Lua instructions than it could need: a loop that never ends is an error.
local function bounded(fn)
  debug.sethook(function() debug.sethook(); error("did not finish") end, "", 50000000)
  local ok, err = pcall(fn)
  debug.sethook()
  if not ok then error(err, 0) end
end

-- A safetensors file with the given JSON header and data bytes.
local function safetensors_bytes(header, data)
  return string.pack("<I8", #header) .. header .. (data or "")
end

describe("nn.data.csv's delimiter", function()
  local path = tmpdir .. "/table.csv"
  write(path, "a;b\n1;2\n3;4\n")

  it("is one character: an empty one is an error, not a loop that never ends", function()
    for _, bad in ipairs({"", ";;", "ab", "\n", "\r"}) do
      local err
      bounded(function()
        err = expect_error(function() nn.data.csv(path, {delimiter = bad}) end,
          "csv: delimiter must be one character", "Python's csv")
      end)
      assert(err:find(string.format("%q", bad):gsub("\\\n", "\\n"), 1, true), err)
    end
    expect_error(function() nn.data.csv(path, {delimiter = 59}) end, "csv: delimiter", "got number")
  end)

  it("may be any one character, several bytes of UTF-8 included", function()
    local x = nn.data.csv(path, {delimiter = ";"})
    assert.are.same({1, 2, 3, 4}, flat(x))
    write(tmpdir .. "/table.tsv", "a\tb\n5\t6\n")
    assert.are.same({5, 6}, flat(nn.data.csv(tmpdir .. "/table.tsv", {delimiter = "\t"})))
    write(tmpdir .. "/table.ssv", "a§b\n7§8\n")
    assert.are.same({7, 8}, flat(nn.data.csv(tmpdir .. "/table.ssv", {delimiter = "§"})))
  end)
end)

describe("shapes with a zero in them", function()
  it("still have their strides checked for overflow", function()
    expect_error(function() nn.zeros(0, 1 << 62, 1 << 62) end, "zeros:", "too large")
    expect_error(function() nn.empty(1 << 31, 0, 1 << 31) end, "empty:", "too large")
    expect_error(function() nn.zeros(0):view(0, 1 << 40, 1 << 40) end, "view:", "too large")
    expect_error(function() nn.zeros(0):reshape(1 << 40, 0, 1 << 40) end, "reshape:", "too large")
    -- an empty tensor of a shape whose strides fit is fine
    local t = nn.zeros(0, 1 << 20, 1 << 20)
    assert.are.same({0, 1 << 20, 1 << 20}, t:size())
    assert.are.same({1 << 40, 1 << 20, 1}, t:stride())
    assert.are.equal(0, t:sum():item())
  end)

  it("read from a safetensors or IDX file are refused the same way", function()
    local p = tmpdir .. "/huge-empty.safetensors"
    write(p, safetensors_bytes('{"a":{"dtype":"F32","shape":[0,4611686018427387904,4611686018427387904],'
                               .. '"data_offsets":[0,0]}}'))
    expect_error(function() nn.load(p) end, "load:", "tensor 'a'", "impossible shape")
    p = tmpdir .. "/huge-empty-idx"
    write(p, idx_bytes(0x08, {0, 0xffffffff, 0xffffffff, 0xffffffff}, ""))
    expect_error(function() nn.data.idx(p) end, "idx:", "too large")
    write(p, idx_bytes(0x08, {0, 3}, ""))
    assert.are.same({0, 3}, nn.data.idx(p):size())
  end)
end)

describe("nn.set_rng_state", function()
  local MT_N = 624
  -- the state's layout: "NNRG", seed u64, left u32, next u32, MT_N words,
  -- has_next_double u8, next_double f64, has_next_float u8, next_float f32
  local function with(state, fields)
    local magic, seed, left, next_index, pos = string.unpack("<c4 I8 I4 I4", state)
    local words = {}
    for i = 1, MT_N do words[i], pos = string.unpack("<I4", state, pos) end
    local hd, nd, hf, nf = string.unpack("<B d B f", state, pos)
    local f = {seed = seed, left = left, next = next_index, words = words, hd = hd, nd = nd, hf = hf, nf = nf}
    for k, v in pairs(fields) do f[k] = v end
    local parts = {string.pack("<c4 I8 I4 I4", magic, f.seed, f.left, f.next)}
    for i = 1, MT_N do parts[#parts + 1] = string.pack("<I4", f.words[i]) end
    parts[#parts + 1] = string.pack("<B d B f", f.hd, f.nd, f.hf, f.nf)
    return table.concat(parts)
  end

  it("refuses a state whose draws would read past the generator's words", function()
    nn.manual_seed(3)
    nn.rand(5)
    local good = nn.get_rng_state()
    local expected = flat(nn.rand(4))
    for _, bad in ipairs({{left = MT_N, next = MT_N}, {left = 2, next = MT_N}, {left = 300, next = 400},
                          {left = MT_N + 1, next = 0}, {left = 0, next = 0}, {left = 1, next = MT_N + 1}}) do
      nn.set_rng_state(good)
      expect_error(function() nn.set_rng_state(with(good, bad)) end, "rng_set_state:", "corrupt")
      -- and the generator is left as it was
      assert.are.same(expected, flat(nn.rand(4)))
    end
    -- the states a generator passes through are accepted: freshly seeded,
    -- just past a twist, about to twist
    for _, fine in ipairs({{left = 1, next = 0}, {left = MT_N, next = 1}, {left = 1, next = MT_N}}) do
      nn.set_rng_state(with(good, fine))
      assert.are.equal(4, #flat(nn.rand(4)))
    end
  end)

  it("refuses an all-zero state and a cached normal sample that Box-Muller cannot make", function()
    local good = nn.get_rng_state()
    local zeros = {}
    for i = 1, MT_N do zeros[i] = 0 end
    expect_error(function() nn.set_rng_state(with(good, {words = zeros})) end, "corrupt", "all zeros")
    zeros[1] = 0x7fffffff -- the first word's low bits play no part
    expect_error(function() nn.set_rng_state(with(good, {words = zeros})) end, "corrupt", "all zeros")
    expect_error(function() nn.set_rng_state(with(good, {hd = 1, nd = 0 / 0})) end, "corrupt")
    expect_error(function() nn.set_rng_state(with(good, {hf = 1, nf = math.huge})) end, "corrupt")
    expect_error(function() nn.set_rng_state(with(good, {hd = 2})) end, "corrupt")
    nn.set_rng_state(with(good, {hd = 1, nd = 0.5}))
  end)
end)

describe("files that are not regular files", function()
  local fifo = tmpdir .. "/fifo"
  assert(os.execute("mkfifo " .. fifo))

  -- Calls fn while a child process stands by to open the FIFO for writing
  -- after a while, leaving a mark first: a reader that waits for a writer
  -- is let go (and fails the test) instead of waiting for ever.
  local function with_fifo_rescue(fn)
    local mark = tmpdir .. "/rescued"
    local pid = C.sys_fork()
    if pid == 0 then
      C.sys_sleep(20)
      write(mark, "")
      local f = io.open(fifo, "w")
      if f then f:close() end
      C.sys_exit(0)
    end
    local ok, err = pcall(fn)
    C.sys_kill(pid, "KILL")
    C.sys_waitpid(pid, true)
    if not ok then error(err, 0) end
    assert(not read(mark), "the reader waited for a writer to open the FIFO")
  end

  it("nn.load and nn.data.idx refuse a FIFO at once instead of waiting for a writer", function()
    with_fifo_rescue(function()
      expect_error(function() nn.load(fifo) end, "load:", fifo, "is a FIFO, not a regular file")
    end)
    with_fifo_rescue(function()
      expect_error(function() nn.data.idx(fifo) end, "idx:", fifo, "is a FIFO, not a regular file")
    end)
    expect_error(function() nn.load("/dev/null") end, "load:", "character device, not a regular file")
    expect_error(function() nn.data.idx(tmpdir) end, "idx:", "directory, not a regular file")
  end)

  it("nn.save refuses to replace a FIFO, a device or a directory, and leaves it be", function()
    local t = {a = nn.ones(2)}
    local tmpdir = tmpdir .. "/kinds"
    assert(os.execute("mkdir -p " .. tmpdir))
    local fifo = tmpdir .. "/fifo"
    assert(os.execute("mkfifo " .. fifo))
    expect_error(function() nn.save(fifo, t) end, "save:", fifo, "is a FIFO", "only a regular file")
    assert.are.equal("fifo", shell("stat -c %F " .. fifo))
    expect_error(function() nn.save("/dev/null", t) end, "save:", "/dev/null is a character device")
    assert.are.equal("character special file", shell("stat -c %F /dev/null"))
    local dir = tmpdir .. "/a-directory"
    assert(os.execute("mkdir -p " .. dir))
    expect_error(function() nn.save(dir, t) end, "save:", "is a directory")
    local link = tmpdir .. "/to-null"
    assert(os.execute("ln -s /dev/null " .. link))
    expect_error(function() nn.save(link, t) end, "save:", link .. " leads to /dev/null", "character device")
    assert.are.equal("symbolic link", shell("stat -c %F " .. link))
    -- nothing was left behind in the directory
    assert.are.same({"a-directory", "fifo", "to-null"}, listdir(tmpdir))
  end)

  it("nn.save through a symbolic link replaces the file it leads to, and keeps the link", function()
    local dir = tmpdir .. "/links"
    assert(os.execute("mkdir -p " .. dir .. "/run"))
    local target = dir .. "/run/model.safetensors"
    nn.save(target, {a = nn.tensor({1, 2})})
    -- a relative link, and a link to that link
    assert(os.execute("ln -s run/model.safetensors " .. dir .. "/latest"))
    assert(os.execute("ln -s latest " .. dir .. "/current"))
    nn.save(dir .. "/current", {a = nn.tensor({3, 4, 5})})
    assert.are.equal("symbolic link", shell("stat -c %F " .. dir .. "/latest"))
    assert.are.equal("symbolic link", shell("stat -c %F " .. dir .. "/current"))
    assert.are.same({3, 4, 5}, flat(nn.load(target).a))
    assert.are.same({3, 4, 5}, flat(nn.load(dir .. "/current").a))
    -- a dangling link gets its file made
    assert(os.execute("ln -s run/next.safetensors " .. dir .. "/next"))
    nn.save(dir .. "/next", {b = nn.tensor({6})})
    assert.are.same({6}, flat(nn.load(dir .. "/run/next.safetensors").b))
    assert.are.same({"current", "latest", "next", "run"}, listdir(dir))
    assert.are.same({"model.safetensors", "next.safetensors"}, listdir(dir .. "/run"))
    -- a loop of links is an error, not a hang
    assert(os.execute("ln -s loop2 " .. dir .. "/loop1 && ln -s loop1 " .. dir .. "/loop2"))
    expect_error(function() nn.save(dir .. "/loop1", {a = nn.ones(1)}) end, "save:", "symbolic link")
  end)
end)

describe("nn.save and nn.load agree on nesting", function()
  local function chain(depth, leaf)
    local v = leaf
    for _ = 1, depth do v = {x = v} end
    return v
  end
  local function leaf_of(v)
    while type(v) == "table" and v.x ~= nil do v = v.x end
    return v
  end

  it("what nn.save writes, nn.load reads: deeper is refused before anything is written", function()
    local dir = tmpdir .. "/deep"
    assert(os.execute("mkdir -p " .. dir))
    local p = dir .. "/deep.safetensors"
    -- 200 levels of JSON: the deepest both accept
    nn.save(p, chain(200, 7))
    assert.are.equal(7, leaf_of(nn.load(p)))
    nn.save(p, chain(199, nn.tensor({1, 2})))
    assert.are.same({1, 2}, flat(leaf_of(nn.load(p))))
    nn.save(p, chain(196, {[1.5] = 1}))
    assert.are.equal(1, leaf_of(nn.load(p))[1.5])
    local before = read(p)
    expect_error(function() nn.save(p, chain(201, 7)) end, "save:", "nested deeper than the 200 levels nn.load reads")
    expect_error(function() nn.save(p, chain(200, nn.tensor({1}))) end, "save:", "nested deeper")
    expect_error(function() nn.save(p, chain(200, "\255")) end, "save:", "nested deeper")
    expect_error(function() nn.save(p, chain(200, 0 / 0)) end, "save:", "nested deeper")
    -- a table with keys that are not strings nests three levels deeper
    expect_error(function() nn.save(p, chain(198, {[1.5] = 1})) end, "save:", "nested deeper")
    assert.are.equal(before, read(p))
    assert.are.same({"deep.safetensors"}, listdir(dir))
  end)
end)

describe("safetensors headers", function()
  local data = string.rep("\0", 12)
  local function load_header(header)
    local p = tmpdir .. "/header.safetensors"
    write(p, safetensors_bytes(header, data))
    return nn.load(p)
  end
  local function entry(shape, offsets)
    return string.format('{"a":{"dtype":"F32","shape":%s,"data_offsets":%s}}', shape, offsets)
  end

  it("take offsets and shapes as JSON integers only", function()
    assert.are.same({0, 0, 0}, flat(load_header(entry("[3]", "[0,12]")).a))
    for _, offsets in ipairs({'["0","12"]', '[0,"12"]', "[0,12.0]", "[0,1.2e1]", "[0.0,12]", "[0,-12]",
                              "[-0.0,12]", "[0,null,12]", '{"1":0,"2":12}', "[0,12,12]", "[true,12]"}) do
      expect_error(function() load_header(entry("[3]", offsets)) end, "load:", "tensor 'a'", "data_offsets")
    end
    for _, shape in ipairs({'["3"]', "[3.0]", "[3e0]", "[-3]", "[null,3]", '{"1":3}', "[[3]]"}) do
      expect_error(function() load_header(entry(shape, "[0,12]")) end, "load:", "tensor 'a'",
        "shape must be a list of non-negative integers")
    end
  end)
end)

describe("IDX files that claim more than they hold", function()
  it("a small compressed file claiming a large shape is an error", function()
    local p = tmpdir .. "/claims-idx"
    write(p, idx_bytes(0x0E, {300, 300}, string.pack(">d", 1.5)))
    expect_error(function() nn.data.idx(gzip(p)) end, "idx:", "truncated", "300x300", "ends after 8 bytes")
  end)

  it("a compressed file far smaller than its data still reads whole", function()
    -- a million bytes that compress about a thousand times
    local p = tmpdir .. "/repetitive-idx"
    local pattern = "\1\2\3\4\5\6\7\8"
    write(p, idx_bytes(0x08, {1000, 1000}, string.rep(pattern, 125000)))
    local gz = gzip(p)
    assert(#read(gz) < 20000, "the test file compresses less than expected")
    local t = nn.data.idx(gz)
    assert.are.same({1000, 1000}, t:size())
    assert.are.equal("int64", t.dtype)
    local expected = 0
    for i = 1, 8 do expected = expected + i end
    assert.are.equal(expected * 125000, t:sum():item())
    assert.are.same({1, 2, 3, 4, 5, 6, 7, 8}, flat(t[1000]:narrow(1, 993, 8)))
    assert.are.same({1, 2, 3, 4, 5, 6, 7, 8}, flat(t[1]:narrow(1, 1, 8)))
    -- converted while read, the growing tensor included
    local f = nn.data.idx(gz, {dtype = "float32", scale = 0.5})
    assert.are.same({0.5, 1, 1.5, 2}, flat(f[777]:narrow(1, 1, 4)))
  end)
end)

describe("temporary files of saves killed outright", function()
  local function signal(pid, name) assert(os.execute("kill -" .. name .. " " .. pid)) end

  local function temps(dir)
    local out = {}
    for _, name in ipairs(listdir(dir)) do
      if name:find(".tmp-", 1, true) then out[#out + 1] = name end
    end
    return out
  end

  local function process_state(pid)
    local f = io.open("/proc/" .. pid .. "/stat")
    if not f then return nil end
    local line = f:read("a")
    f:close()
    return line:match("%) (%a)")
  end

  -- A child saving a large file to path over and over, stopped while it
  -- holds a temporary file beside path: its pid and that file's name.
  local function writer_stopped_mid_save(dir, path)
    local pid = C.sys_fork()
    if pid == 0 then -- never returns into the specs
      local big = {a = nn.zeros(4 * 1024 * 1024)}
      pcall(function() while true do nn.save(path, big) end end)
      C.sys_exit(1)
    end
    while true do
      if #temps(dir) > 0 then
        signal(pid, "STOP")
        while process_state(pid) ~= "T" do C.sys_sleep(0.001) end
        local held = temps(dir)
        if #held > 0 then return pid, held[1] end
        signal(pid, "CONT") -- it was between two saves: try again
      end
      C.sys_sleep(0.001)
    end
  end

  local function kill(pid)
    C.sys_kill(pid, "KILL")
    C.sys_waitpid(pid, true)
  end

  it("are removed by the next save or load of that file, never while their writer lives", function()
    local dir = tmpdir .. "/killed"
    assert(os.execute("mkdir -p " .. dir))
    local path = dir .. "/model.safetensors"
    nn.save(path, {a = nn.tensor({1, 2, 3})})

    local pid, temp = writer_stopped_mid_save(dir, path)
    -- a live writer's file stays through saves and loads by others
    nn.save(path, {a = nn.tensor({4, 5})})
    assert.are.same({4, 5}, flat(nn.load(path).a))
    assert.are.same({temp}, temps(dir))
    kill(pid)
    assert.are.same({temp}, temps(dir))
    -- its writer gone, the next load removes it
    nn.load(path)
    assert.are.same({}, temps(dir))

    pid, temp = writer_stopped_mid_save(dir, path)
    kill(pid)
    assert.are.same({temp}, temps(dir))
    -- and so does the next save
    nn.save(path, {a = nn.tensor({6})})
    assert.are.same({}, temps(dir))
    assert.are.same({"model.safetensors"}, listdir(dir))
    assert.are.same({6}, flat(nn.load(path).a))
  end)

  it("of another file, or that are not temporary files of a save, stay", function()
    local dir = tmpdir .. "/others"
    assert(os.execute("mkdir -p " .. dir))
    local path = dir .. "/a.safetensors"
    local pid, temp = writer_stopped_mid_save(dir, path)
    kill(pid)
    -- names that only look alike: not of a save of a.safetensors, or not
    -- of any save nn wrote
    local alike = {"a.safetensors.tmp-notes", "a.safetensors.tmp-1-2-3", "b.safetensors" .. temp:sub(14)}
    for _, name in ipairs(alike) do write(dir .. "/" .. name, "x") end
    local all = {temp, table.unpack(alike)}
    table.sort(all)
    -- a save of another file touches none of them
    nn.save(dir .. "/b.safetensors.other", {x = nn.ones(1)})
    assert.are.same(all, temps(dir))
    -- a save of a.safetensors takes the one its killed save left, only
    nn.save(path, {x = nn.ones(1)})
    table.sort(alike)
    assert.are.same(alike, temps(dir))
    -- and one of b.safetensors the one named as its own
    nn.save(dir .. "/b.safetensors", {x = nn.ones(1)})
    assert.are.same({"a.safetensors.tmp-1-2-3", "a.safetensors.tmp-notes"}, temps(dir))
  end)
end)

-- memory.lua: the caching allocator on a real GPU: counters, reuse (a
-- steady loop reserves nothing more), empty_cache, Lua's collector freeing
-- device garbage in time, and running out of device memory as a Lua error
-- after which the process goes on.
--   nnlua tests/gpu/memory.lua      (from the repository's root)
local h = dofile("tests/gpu/harness.lua")
local check = h.check

if not nn.cuda.is_available() then
  check("cuda is available", function() error(nn.cuda.why_unavailable()) end)
  h.finish("memory")
end

local MiB = 1024 * 1024

check("allocated, reserved and empty_cache", function()
  collectgarbage(); collectgarbage(); nn.cuda.empty_cache()
  local base = nn.cuda.memory_allocated()
  assert(nn.cuda.memory_reserved() == base, "reserved beyond allocated after empty_cache")
  local t = nn.zeros(1000, {device = "cuda"})
  assert(nn.cuda.memory_allocated() == base + 4096, "allocated " .. nn.cuda.memory_allocated())
  t = nil -- luacheck: ignore
  collectgarbage(); collectgarbage()
  assert(nn.cuda.memory_allocated() == base)
  assert(nn.cuda.memory_reserved() == base + 4096, "the block is not kept")
  nn.cuda.empty_cache()
  assert(nn.cuda.memory_reserved() == base)
end)

check("a steady loop reserves nothing after its first pass", function()
  local x = nn.rand(512, 256)
  local reserved
  for step = 1, 50 do
    local d = x:cuda()
    local e = d:t():contiguous():double()
    local f = e:cpu()
    d, e, f = nil, nil, nil -- luacheck: ignore
    collectgarbage()
    if step == 2 then reserved = nn.cuda.memory_reserved() end
    if step > 2 then
      assert(nn.cuda.memory_reserved() == reserved,
        string.format("step %d reserved %d bytes, step 2 %d", step, nn.cuda.memory_reserved(), reserved))
    end
  end
end)

check("Lua's collector frees device garbage in time", function()
  -- 64 MiB copies made on the device alone, 400 of them (25 GiB in all)
  local d = nn.zeros(16 * MiB, {device = "cuda"})
  for _ = 1, 400 do local copy = d:clone() end -- luacheck: ignore
  assert(nn.cuda.memory_reserved() < 8 * 1024 * MiB,
    "reserved " .. nn.cuda.memory_reserved() // MiB .. " MiB")
end)

check("out of device memory is a Lua error, and the process goes on", function()
  local one = nn.zeros(1, {device = "cuda"})
  -- 400 GiB on the device alone (a broadcast view made contiguous there)
  local ok, err = pcall(function() return one:expand(100 * 1024 * MiB):contiguous() end)
  assert(not ok, "400 GiB were allocated")
  assert(tostring(err):find("out of memory on cuda: tried to allocate 400.00 GiB", 1, true), tostring(err))
  print("     " .. tostring(err))
  local after = nn.ones(1000, {device = "cuda"})
  assert(after:cpu():sum():item() == 1000)
  nn.cuda.synchronize()
end)

h.finish("memory")

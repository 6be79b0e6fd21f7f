-- devices.lua: the CUDA backend's infrastructure on a real GPU: it opens,
-- tensors go to it and back with their values (every dtype, strided,
-- broadcast, converted on the device), print as PyTorch prints them,
-- modules move, files saved from it load without it.
--   nnlua tests/gpu/devices.lua      (from the repository's root)
local h = dofile("tests/gpu/harness.lua")
local check, same, raises = h.check, h.same, h.raises

check("cuda is available", function()
  assert(nn.cuda.is_available(), "not available: " .. tostring(nn.cuda.why_unavailable()))
  assert(nn.cuda.why_unavailable() == nil)
  assert(nn.cuda.device_count() >= 1)
  print("     device: " .. nn.cuda.get_device_name() .. ", " .. nn.cuda.device_count() .. " visible")
end)
if not nn.cuda.is_available() then h.finish("devices") end

check("round trips of every dtype", function()
  for _, case in ipairs {
    {{{1.5, -2}, {3, 4}}, "float32"},
    {{1e300, -1e-300, 0.1, 0 / 0, 1 / 0}, "float64"},
    {{math.maxinteger, math.mininteger, 2 ^ 53 + 1, -7}, "int64"},
    {{true, false, true}, "bool"},
  } do
    local x = nn.tensor(case[1], {dtype = case[2]})
    local y = x:cuda()
    assert(y.device == "cuda" and y.is_cuda and y.dtype == case[2])
    same(y:cpu():totable(), x:totable(), case[2])
    same(y:totable(), x:totable(), case[2] .. " totable")
  end
end)

check("a large tensor both ways, bit for bit", function()
  nn.manual_seed(1)
  local x = nn.randn(1 << 24) -- 64 MiB
  local t0 = nn.clock()
  local d = x:cuda()
  nn.cuda.synchronize()
  local t1 = nn.clock()
  local back = d:cpu()
  local t2 = nn.clock()
  assert(back:eq(x):float():mean():item() == 1, "values changed on the way")
  print(string.format("     64 MiB to the GPU %.1f GB/s, back %.1f GB/s (pageable host memory)",
    0.0671 / (t1 - t0), 0.0671 / (t2 - t1)))
end)

check("strided tensors both ways and on the device", function()
  local m = nn.arange(0, 24):view(2, 3, 4)
  local p = m:transpose(1, 3) -- 4x3x2, strided
  same(p:cuda():totable(), p:totable(), "to the device")
  local d = m:cuda()
  same(d:transpose(1, 3):cpu():totable(), p:totable(), "from the device")
  same(d:transpose(1, 3):contiguous():cpu():totable(), p:totable(), "contiguous on the device")
  same(d:narrow(3, 2, 2):select(1, 2):cpu():totable(), m:narrow(3, 2, 2):select(1, 2):totable(), "views")
end)

check("dtype conversions on the device match the CPU's", function()
  local x = nn.tensor({-2.5, -0.5, 0, 0.5, 1.7, 3e9, -3e20, 1e30, 0 / 0, 1 / 0, -1 / 0}, {dtype = "float64"})
  local d = x:cuda()
  for _, dtype in ipairs {"float32", "int64", "bool", "float64"} do
    same(d:to(dtype):cpu():totable(), x:to(dtype):totable(), dtype)
  end
  local i = nn.tensor({math.maxinteger, -3, 0}, {dtype = "int64"})
  same(i:cuda():to("float64"):cpu():totable(), i:to("float64"):totable(), "int64 -> float64")
  same(i:cuda():to("bool"):cpu():totable(), i:to("bool"):totable(), "int64 -> bool")
end)

check("fills and copies into device tensors", function()
  local t = nn.zeros(3, 4, {device = "cuda"})
  t:fill_(2)
  t[2] = -1
  t:narrow(2, 3, 2):copy_(nn.tensor({7, 8}, {dtype = "int64"})) -- broadcast, converted, from the host
  same(t:totable(), {{2, 2, 7, 8}, {-1, -1, 7, 8}, {2, 2, 7, 8}})
  local u = nn.zeros(4, 3, {device = "cuda"})
  u:copy_(t:t()) -- strided, on the device
  same(u:cpu():totable(), t:cpu():t():totable())
  t:zero_()
  same(t:totable(), {{0, 0, 0, 0}, {0, 0, 0, 0}, {0, 0, 0, 0}})
end)

check("item and printing as PyTorch prints CUDA tensors", function()
  assert(nn.tensor(2.5, {device = "cuda"}):item() == 2.5)
  for _, case in ipairs(dofile("tests/fixtures/cuda_print_reference.lua")) do
    local t
    if case.lua then
      t = load("local nn = ...; return " .. case.lua)(nn)
    elseif case.dtype == "bool" then
      t = nn.tensor(case.values):ne(0):view(case.shape)
    else
      t = nn.tensor(case.values, {dtype = case.dtype}):view(case.shape)
    end
    if case.how == "requires_grad" then t = t:cuda():requires_grad_()
    elseif case.how == "grad_fn" then t = t:requires_grad_():cuda()
    else t = t:cuda() end
    same(tostring(t), case.printed, case.name .. ": ")
  end
end)

check("gradients cross devices", function()
  local x = nn.tensor({1, 2, 3}, {requires_grad = true})
  x:cuda():cpu():sum():backward()
  same(x.grad:totable(), {1, 1, 1})
  local leaf = nn.tensor({4, 5}, {device = "cuda", requires_grad = true})
  leaf:cpu():sum():backward()
  assert(leaf.grad.device == "cuda")
  same(leaf.grad:totable(), {1, 1})
end)

check("modules move to the device and back, in place", function()
  nn.manual_seed(3)
  local m = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 1))
  local before = {}
  for k, v in pairs(m:state_dict()) do before[k] = v:totable() end
  local w = m[1].weight
  m:to("cuda")
  assert(m[1].weight == w and w.device == "cuda" and m[2].running_mean.device == "cuda")
  m:to("cpu")
  for k, v in pairs(m:state_dict()) do same(v:totable(), before[k], k) end
end)

check("files saved from the GPU load without it", function()
  local path = os.tmpname()
  local t = nn.tensor({{1, 2}, {3, 4}}, {device = "cuda"})
  nn.save(path, {w = t})
  local p = io.popen("NN_CUDA_LIBRARY=/nonexistent " .. arg[-1] .. " -e '" ..
    "local v = nn.load(\"" .. path .. "\"); print(nn.cuda.is_available(), v.w.device, v.w[2][1]:item())' 2>&1")
  local out = p:read("a")
  p:close()
  same(out, "false\tcpu\t3.0\n", "child without CUDA: ")
  local back = nn.load(path, {device = "cuda"})
  assert(back.w.device == "cuda")
  same(back.w:totable(), {{1, 2}, {3, 4}})
  os.remove(path)
end)

check("an op runs on the device or is refused by name", function()
  local a = nn.ones(2, {device = "cuda"})
  raises(function() return a + nn.ones(2) end, "different devices (cuda and cpu)")
  local ok, r = pcall(function() return a:exp() end)
  if ok then
    assert(r.device == "cuda", "exp's result is on " .. r.device)
  else
    assert(tostring(r):find("exp: not implemented for cuda", 1, true), tostring(r))
  end
end)

check("integer division by zero is an error, as on the CPU", function()
  local a = nn.tensor({7, -7, 9}, {dtype = "int64", device = "cuda"})
  local b = nn.tensor({2, 0, 3}, {dtype = "int64", device = "cuda"})
  raises(function() return a // b end, "floor_divide: integer division by zero")
  raises(function() return nn.fmod(a, b) end, "fmod: integer division by zero")
  raises(function() return nn.remainder(a, 0) end, "remainder: integer division by zero")
  raises(function() return nn.div(a, b, {rounding_mode = "trunc"}) end, "div: integer division by zero")
  raises(function() return 5 // b end, "floor_divide: integer division by zero")
  local c = nn.tensor({2, -3, 3}, {dtype = "int64", device = "cuda"})
  same((a // c):totable(), (a:cpu() // c:cpu()):totable())
  same(nn.remainder(a, c):totable(), nn.remainder(a:cpu(), c:cpu()):totable())
  same((a:double() // b:double()):totable(), (a:cpu():double() // b:cpu():double()):totable())
end)

check("synchronize and seeds", function()
  nn.cuda.synchronize()
  nn.cuda.manual_seed(11)
  assert(nn.cuda.initial_seed() == 11)
end)

h.finish("devices")

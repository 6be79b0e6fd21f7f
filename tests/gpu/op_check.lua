-- op_check.lua: every op of tests/gpu/ops.lua on CUDA against the CPU, on
-- the same random inputs: float32 and float64, contiguous and strided
-- inputs, and broadcast shapes where the entry lists them. Values and the
-- gradients of every input must agree to a relative 1e-4 (float32; GPU
-- sums run in another order) or 1e-10 (float64).
local h = dofile("tests/gpu/harness.lua")
local ops = dofile("tests/gpu/ops.lua")
local device = "cuda"

local tolerance = {float32 = {rel = 1e-4, abs = 1e-5}, float64 = {rel = 1e-10, abs = 1e-12}}

-- The same random values for both devices: drawn on the CPU in float64.
local function input(shape, dtype, domain, strided)
  local drawn = shape
  if strided then -- the values of a transposed tensor, seen through a transpose
    drawn = {table.unpack(shape)}
    drawn[#drawn - 1], drawn[#drawn] = shape[#shape], shape[#shape - 1]
  end
  local u = nn.rand(drawn, {dtype = "float64"})
  if domain == "positive" then u = u * 1.9 + 0.1
  elseif domain == "unit" then u = u * 0.9 + 0.05
  else u = u * 4 - 2 end
  return u:to(dtype)
end

local function view(base, strided)
  if not strided then return base end
  return base:transpose(base:dim() - 1, base:dim())
end

local function compare(got, want, dtype, what, own_tolerance)
  if got.dtype ~= want.dtype then error(what .. ": dtype " .. got.dtype .. ", expected " .. want.dtype, 0) end
  h.same(got:size(), want:size(), what .. " shape")
  local g, w = got:cpu():double():reshape(-1):totable(), want:double():reshape(-1):totable()
  if want.dtype ~= "float32" and want.dtype ~= "float64" then
    h.same(g, w, what)
    return
  end
  local tol = own_tolerance or tolerance[dtype]
  for i = 1, #w do
    local a, b = g[i], w[i]
    if not (a == b or (a ~= a and b ~= b)) then
      if math.abs(a - b) > tol.abs + tol.rel * math.abs(b) then
        error(string.format("%s[%d]: %.17g on cuda, %.17g on the cpu", what, i, a, b), 0)
      end
    end
  end
end

-- Runs e on one device: its result and the gradients of its leaves.
local function run(e, leaves_cpu, strided, labels, g_cpu, dev)
  local leaves, args = {}, {}
  for k, l in ipairs(leaves_cpu) do
    local leaf = l:to(dev):detach()
    if e.grad ~= false then leaf:requires_grad_(true) end
    leaves[k] = leaf
    args[k] = view(leaf, strided[k])
  end
  if labels then args[#args + 1] = labels:to(dev) end
  local out = e.fn(table.unpack(args))
  local grads = {}
  if e.grad ~= false then
    if out:numel() == 1 and out:dim() == 0 then out:backward()
    else out:backward(g_cpu:to(dev):view(out:size())) end
    for k, leaf in ipairs(leaves) do grads[k] = leaf.grad end
  end
  return out, grads
end

local function case(e, dtype, shapes, strided_on)
  nn.manual_seed(#e.name * 31 + #shapes)
  local leaves, strided = {}, {}
  for k, shape in ipairs(shapes) do
    strided[k] = strided_on and #shape >= 2
    leaves[k] = input(shape, dtype, e.domain, strided[k])
  end
  local labels = e.labels and (nn.rand(shapes[1][1], {dtype = "float64"}) * e.labels):floor():to("int64") + 1
  -- the upstream gradient: one value per output element
  local out_cpu = nn.no_grad(function()
    local args = {}
    for k, l in ipairs(leaves) do args[k] = view(l, strided[k]) end
    if labels then args[#args + 1] = labels end
    return e.fn(table.unpack(args))
  end)
  local g = nn.rand(out_cpu:numel(), {dtype = "float64"}):to(
    (out_cpu.dtype == "float32" or out_cpu.dtype == "float64") and out_cpu.dtype or dtype)
  local want, want_grads = run(e, leaves, strided, labels, g, "cpu")
  local got, got_grads = run(e, leaves, strided, labels, g, device)
  if got.device ~= device then error("the result is on " .. got.device, 0) end
  compare(got, want, dtype, "value", e.tolerance)
  for k in ipairs(want_grads) do
    if got_grads[k].device ~= device then error("input " .. k .. "'s gradient is on " .. got_grads[k].device, 0) end
    compare(got_grads[k], want_grads[k], dtype, "gradient of input " .. k, e.tolerance)
  end
end

for _, e in ipairs(ops) do
  for _, dtype in ipairs(e.dtypes or {"float32", "float64"}) do
    local layouts = {{"contiguous", e.shapes, false}, {"strided", e.shapes, true}}
    for i, shapes in ipairs(e.broadcast or {}) do layouts[#layouts + 1] = {"broadcast " .. i, shapes, false} end
    for _, layout in ipairs(layouts) do
      local any_2d = false
      for _, s in ipairs(layout[2]) do any_2d = any_2d or #s >= 2 end
      if not (layout[3] and not any_2d) then
        h.check(string.format("%s %s %s", e.name, dtype, layout[1]), function()
          case(e, dtype, layout[2], layout[3])
        end)
      end
    end
  end
end

h.finish("ops")

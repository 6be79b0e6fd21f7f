-- Autograd around the engine: gradient modes and the finite-difference
-- gradient check.
return function(nn)
  local raise = nn._raise
  local C = nn._C

  -- Runs fn(...) with gradient recording set to `enabled`, restoring the
  -- previous mode however fn ends. The mode is global, while PyTorch's is a
  -- thread's own: a coroutine that yields from inside fn must not take the
  -- mode with it. Where fn could yield out of here (inside a coroutine), fn
  -- runs as a coroutine of its own: each of its yields is passed out with
  -- the mode of the code that resumed us put back, and each resume passes
  -- back in with `enabled` set again.
  local function with_grad_mode(enabled, fn, ...)
    if type(fn) ~= "function" then
      raise((enabled and "enable_grad" or "no_grad") .. ": expected a function, got " .. type(fn))
    end
    if not coroutine.isyieldable() then
      local previous = C.is_grad_enabled()
      C.set_grad_enabled(enabled)
      local results = table.pack(pcall(fn, ...))
      C.set_grad_enabled(previous)
      if not results[1] then error(results[2], 0) end
      return table.unpack(results, 2, results.n)
    end
    local body = coroutine.create(fn)
    local args = table.pack(...)
    while true do
      local outer = C.is_grad_enabled()
      C.set_grad_enabled(enabled)
      local results = table.pack(coroutine.resume(body, table.unpack(args, 1, args.n)))
      C.set_grad_enabled(outer)
      if not results[1] then error(results[2], 0) end
      if coroutine.status(body) == "dead" then return table.unpack(results, 2, results.n) end
      args = table.pack(coroutine.yield(table.unpack(results, 2, results.n)))
    end
  end

  --- nn.no_grad(fn, ...): runs fn with no graph recorded and returns what it returns.
  -- A coroutine that yields inside fn leaves the mode as it found it, and
  -- gets it back when resumed.
  function nn.no_grad(fn, ...) return with_grad_mode(false, fn, ...) end
  --- nn.enable_grad(fn, ...): runs fn with recording on (inside a no_grad).
  function nn.enable_grad(fn, ...) return with_grad_mode(true, fn, ...) end

  local function as_list(x)
    if nn.is_tensor(x) then return {x} end
    return x
  end

  --- nn.gradcheck(fn, inputs [, {eps=1e-6, atol=1e-5, rtol=1e-3, raise=true}]):
  -- compares the Jacobian that backward computes with central finite
  -- differences, element by element. inputs: a tensor or a list; those
  -- with requires_grad are checked and should be float64. Returns true, or
  -- raises (or returns false and a message when raise = false).
  function nn.gradcheck(fn, inputs, opts)
    opts = opts or {}
    local eps, atol, rtol = opts.eps or 1e-6, opts.atol or 1e-5, opts.rtol or 1e-3
    if type(fn) ~= "function" and not (type(fn) == "table" and getmetatable(fn) and getmetatable(fn).__call) then
      raise("gradcheck: fn must be callable, got " .. type(fn))
    end
    inputs = as_list(inputs)
    if type(inputs) ~= "table" or #inputs == 0 then
      raise("gradcheck: inputs must be a tensor or a non-empty list of tensors")
    end
    local function outputs()
      local out = as_list(fn(table.unpack(inputs)))
      if type(out) ~= "table" or #out == 0 then raise("gradcheck: fn must return a tensor or a list of tensors") end
      return out
    end
    local function fail(msg)
      if opts.raise == false then return false, msg end
      raise("gradcheck: " .. msg)
    end

    local checked = {}
    for i, x in ipairs(inputs) do
      if not nn.is_tensor(x) then return fail("input " .. i .. " is not a tensor") end
      if x.requires_grad then
        if x.dtype ~= "float64" then return fail("input " .. i .. " is " .. x.dtype .. "; use float64 for a finite-difference check") end
        checked[#checked + 1] = i
      end
    end
    if #checked == 0 then return fail("no input requires grad") end

    -- Numeric Jacobian: column by column, perturbing one element at a time.
    local numeric = {} -- numeric[k][j][o] = d out_o[j] / d input_k[elem]
    -- each evaluation copied out: an output may be a view of the input
    -- that the next perturbation changes
    local function snapshot()
      local out = outputs()
      for o = 1, #out do out[o] = out[o]:detach():clone() end
      return out
    end
    for _, k in ipairs(checked) do
      local flat = inputs[k]:detach():view(-1)
      numeric[k] = {}
      for e = 1, flat:numel() do
        local orig = flat[e]:item()
        flat[e] = orig + eps
        local plus = nn.no_grad(snapshot)
        flat[e] = orig - eps
        local minus = nn.no_grad(snapshot)
        flat[e] = orig
        local column = {}
        for o = 1, #plus do
          column[o] = ((plus[o] - minus[o]) / (2 * eps)):double():view(-1)
        end
        numeric[k][e] = column
      end
    end

    -- Analytic Jacobian: one backward per output element.
    local outs = outputs()
    for o, out in ipairs(outs) do
      if out.requires_grad then
        local n = out:numel()
        for j = 1, n do
          for _, k in ipairs(checked) do inputs[k].grad = nil end
          local seed = nn.zeros(n, {dtype = out.dtype, device = out.device})
          seed[j] = 1
          out:backward(seed:view(out:size()), true)
          for _, k in ipairs(checked) do
            local g = inputs[k].grad
            local gflat = g and g:view(-1)
            for e = 1, inputs[k]:numel() do
              local a = gflat and gflat[e]:item() or 0
              local num = numeric[k][e][o][j]:item()
              if math.abs(a - num) > atol + rtol * math.abs(num) or a ~= a then
                return fail(string.format(
                  "d output %d[%d] / d input %d[%d]: backward gives %.10g, finite differences %.10g",
                  o, j, k, e, a, num))
              end
            end
          end
        end
      else
        -- an output that needs no grad must not depend on the inputs
        for _, k in ipairs(checked) do
          for e = 1, inputs[k]:numel() do
            if numeric[k][e][o]:abs():max():item() > atol then
              return fail(string.format("output %d does not require grad but depends on input %d", o, k))
            end
          end
        end
      end
    end
    for _, k in ipairs(checked) do inputs[k].grad = nil end
    return true
  end

  -- Hooks on a tensor's gradient, on the engine's NN_HOOK_GRAD hooks
  -- (nn._C.add_hook). A computed tensor's hooks live on its node, which the
  -- registry then holds through the hook's function: a function that held
  -- the tensor itself would keep it, its node and the function alive for
  -- ever, so a hook reaches its tensor through a weak reference.
  local Tensor = nn.Tensor

  local RemovableHandle = {__name = "RemovableHandle"}
  RemovableHandle.__index = RemovableHandle
  --- handle:remove(): the hook that register_hook returned this handle for
  -- no longer runs; removing it again does nothing.
  function RemovableHandle:remove()
    if self.tensor then C.remove_hook(self.tensor, self.id) end
    self.tensor = nil
  end
  nn._check_counts(RemovableHandle)

  local function callable(fn)
    if type(fn) == "function" then return true end
    local mt = getmetatable(fn)
    return type(mt) == "table" and mt.__call ~= nil
  end

  --- t:register_hook(fn): fn(grad) runs during backward with the gradient
  -- that flows into t (for a leaf, the sum over its uses, before it is added
  -- to t.grad); a tensor it returns replaces that gradient, nil keeps it.
  -- Returns a handle whose :remove() takes the hook off. An error in fn
  -- stops backward, which raises it.
  --   local x = nn.tensor({1, 2}):requires_grad_()
  --   local handle = x:register_hook(function(g) return g * 2 end)
  --   local loss = (x * 3):sum(); loss:backward()  -- x.grad is {6, 6}
  --   handle:remove()
  function Tensor.register_hook(t, fn)
    if not nn.is_tensor(t) then raise("register_hook: call it on a tensor, as t:register_hook(fn)") end
    if not callable(fn) then raise("register_hook: expected a function, got " .. type(fn)) end
    if not t.requires_grad then
      raise("register_hook: cannot register a hook on a tensor that doesn't require gradient")
    end
    local id = C.add_hook(t, "grad", function(grad)
      local ok, result = pcall(fn, grad)
      if not ok then error("backward: a hook registered with register_hook raised: " .. tostring(result), 0) end
      return result
    end)
    return setmetatable({tensor = t, id = id}, RemovableHandle)
  end

  local retaining = setmetatable({}, {__mode = "k"}) -- the tensors retain_grad was called on

  --- t:retain_grad(): a computed (non-leaf) tensor keeps its gradient in
  -- t.grad after backward, adding up over passes as a leaf's does; on a
  -- leaf it does nothing (a leaf keeps its gradient anyway). Hooks that t
  -- had before see the gradient first, later ones after it is kept.
  --   local x = nn.tensor({1, 2}):requires_grad_()
  --   local y = x * 2; y:retain_grad()
  --   local loss = (y * y):sum(); loss:backward()  -- y.grad is {4, 8}
  function Tensor.retain_grad(t)
    if not nn.is_tensor(t) then raise("retain_grad: call it on a tensor, as t:retain_grad()") end
    if not t.requires_grad then raise("retain_grad: can't retain_grad on Tensor that has requires_grad=False") end
    if t.is_leaf or retaining[t] then return end
    retaining[t] = true
    local weak = setmetatable({t}, {__mode = "v"})
    C.add_hook(t, "grad", function(grad)
      local kept = weak[1]
      if not kept then return end
      local old = kept.grad
      kept.grad = old and old + grad or grad:clone()
    end)
  end
end

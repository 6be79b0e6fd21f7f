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

  -- The checks gradcheck and gradgradcheck (op) make of what they are given
  local function check_fn_and_options(op, fn, opts)
    if type(fn) ~= "function" and not (type(fn) == "table" and getmetatable(fn) and getmetatable(fn).__call) then
      raise(op .. ": fn must be callable, got " .. type(fn))
    end
    if opts ~= nil and type(opts) ~= "table" then raise(op .. ": the options must be a table, got " .. type(opts)) end
    return opts or {}
  end

  --- nn.gradcheck(fn, inputs [, {eps=1e-6, atol=1e-5, rtol=1e-3, raise=true}]):
  -- compares the Jacobian that backward computes with central finite
  -- differences, element by element. inputs: a tensor or a list; those
  -- with requires_grad are checked and should be float64. Returns true, or
  -- raises (or returns false and a message when raise = false).
  function nn.gradcheck(fn, inputs, opts)
    opts = check_fn_and_options("gradcheck", fn, opts)
    local eps, atol, rtol = opts.eps or 1e-6, opts.atol or 1e-5, opts.rtol or 1e-3
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

  --- t.retains_grad: true for a computed tensor that t:retain_grad() was
  -- called on (its gradient stays in t.grad after backward), false otherwise.
  --   local y = nn.tensor({1, 2}, {requires_grad = true}) * 2
  --   y:retain_grad(); print(y.retains_grad)   -- true
  local tensor_mt = getmetatable(nn.zeros(1))
  tensor_mt.properties = tensor_mt.properties or {}
  tensor_mt.properties.retains_grad = function(t) return retaining[t] == true and not t.is_leaf end


  -- ---- nn.autograd: grad, gradgradcheck, Function, anomaly mode (issue 12) ----
  --- nn.autograd: autograd beyond backward(): nn.autograd.grad (gradients as
  -- values, of any order), nn.autograd.Function (your own differentiable op)
  -- and anomaly mode (nn.autograd.detect_anomaly).
  local autograd = nn.autograd or {}
  nn.autograd = autograd

  local function tensor_list(x, what, allow_nil)
    if nn.is_tensor(x) then return {x} end
    if type(x) ~= "table" then
      raise("grad: " .. what .. " must be a tensor or a list of tensors, got " .. type(x))
    end
    local n = x.n or #x
    for i = 1, n do
      if not nn.is_tensor(x[i]) and not (allow_nil and x[i] == nil) then
        raise(string.format("grad: %s[%d] must be a tensor, got %s", what, i, type(x[i])))
      end
    end
    return x
  end

  --- nn.autograd.grad(outputs, inputs [, {grad_outputs =, retain_graph =, create_graph = false, allow_unused = false}]):
  -- the gradients of outputs (a tensor or a list) with respect to inputs (a
  -- tensor or a list), as PyTorch's torch.autograd.grad: returns a list with
  -- one gradient per input, without touching any .grad. grad_outputs (a
  -- tensor or list, one per output) starts each output's gradient (1 for a
  -- one-element output when absent). With create_graph the gradients have a
  -- history of their own, so they can be differentiated again (second
  -- derivatives, Hessian-vector products, gradient penalties); retain_graph
  -- defaults to create_graph. An input the outputs do not depend on is an
  -- error, or nil in the list with allow_unused = true.
  --   local x = nn.tensor({1, 2, 3}, {dtype = "float64", requires_grad = true})
  --   local y = (x ^ 3):sum()
  --   local g = nn.autograd.grad(y, x, {create_graph = true})[1]  -- 3 x^2
  --   local h = nn.autograd.grad(g:sum(), x)[1]                    -- 6 x
  function autograd.grad(outputs, inputs, opts)
    if opts ~= nil and type(opts) ~= "table" then raise("grad: options must be a table, got " .. type(opts)) end
    opts = opts or {}
    for k in pairs(opts) do
      if k ~= "grad_outputs" and k ~= "retain_graph" and k ~= "create_graph" and k ~= "allow_unused" then
        raise("grad: unknown option " .. tostring(k) ..
              " (the options are grad_outputs, retain_graph, create_graph and allow_unused)")
      end
    end
    outputs = tensor_list(outputs, "outputs")
    inputs = tensor_list(inputs, "inputs")
    local grad_outputs = opts.grad_outputs
    if grad_outputs ~= nil then
      grad_outputs = tensor_list(grad_outputs, "grad_outputs", true)
      local n = grad_outputs.n or #grad_outputs
      if n ~= #outputs and not (grad_outputs.n == nil and n < #outputs) then
        raise(string.format("grad: grad_outputs has %d entries for %d outputs", n, #outputs))
      end
    end
    local create = opts.create_graph == true
    local retain = opts.retain_graph
    if retain == nil then retain = create end
    return C.grad(outputs, inputs, grad_outputs, retain, create, opts.allow_unused == true)
  end

  --- nn.gradgradcheck(fn, inputs [, {eps=1e-6, atol=1e-5, rtol=1e-3, raise=true, grad_outputs=}]):
  -- checks second derivatives as PyTorch's gradgradcheck: the gradient of
  -- fn's outputs (with random grad_outputs, or those given), computed with
  -- create_graph, is itself checked by nn.gradcheck against finite
  -- differences, with respect to the inputs and the grad_outputs. Inputs
  -- that require grad should be float64. Returns true, or raises (or
  -- returns false and a message when raise = false).
  --   local x = nn.randn(3, {dtype = "float64", requires_grad = true})
  --   nn.gradgradcheck(function(x) return x:tanh() end, {x})
  function nn.gradgradcheck(fn, inputs, opts)
    opts = check_fn_and_options("gradgradcheck", fn, opts)
    inputs = as_list(inputs)
    if type(inputs) ~= "table" or #inputs == 0 then
      raise("gradgradcheck: inputs must be a tensor or a non-empty list of tensors")
    end
    local outs = as_list(fn(table.unpack(inputs)))
    local all_tensors = type(outs) == "table"
    for _, o in ipairs(all_tensors and outs or {}) do all_tensors = all_tensors and nn.is_tensor(o) end
    if not all_tensors then raise("gradgradcheck: fn must return a tensor or a list of tensors, got " .. type(outs)) end
    local grad_outputs = opts.grad_outputs and as_list(opts.grad_outputs)
    if not grad_outputs then
      grad_outputs = {}
      for i, o in ipairs(outs) do
        grad_outputs[i] = nn.randn(o:size(), {dtype = o.dtype}):requires_grad_()
      end
    end
    local n_in = #inputs
    local diff = {}
    for i, x in ipairs(inputs) do
      if nn.is_tensor(x) and x.requires_grad then diff[#diff + 1] = i end
    end
    -- the gradient as a function of the inputs and grad_outputs; gradcheck
    -- evaluates it inside no_grad for its finite differences, where the
    -- gradient still needs a graph to be computed
    local first_order
    local function first_order_recorded(...) return nn.enable_grad(first_order, ...) end
    function first_order(...)
      local args = table.pack(...)
      local xs = {}
      for i = 1, n_in do xs[i] = args[i] end
      local gos = {}
      for i = 1, #grad_outputs do gos[i] = args[n_in + i] end
      local outputs = as_list(fn(table.unpack(xs, 1, n_in)))
      local wrt, used_outputs, used_gos = {}, {}, {}
      for _, i in ipairs(diff) do wrt[#wrt + 1] = xs[i] end
      for i, o in ipairs(outputs) do
        if o.requires_grad then
          used_outputs[#used_outputs + 1] = o
          used_gos[#used_gos + 1] = gos[i]
        end
      end
      local grads = autograd.grad(used_outputs, wrt,
                                  {grad_outputs = used_gos, create_graph = true, allow_unused = true})
      local result = {}
      for k, x in ipairs(wrt) do
        -- an unused input's gradient is zero, and depends on nothing
        result[k] = grads[k] or nn.zeros(x:size(), {dtype = x.dtype})
      end
      return result
    end
    local all = {}
    for i = 1, n_in do all[i] = inputs[i] end
    for i, go in ipairs(grad_outputs) do all[n_in + i] = go end
    local ok, msg = nn.gradcheck(first_order_recorded, all, {eps = opts.eps, atol = opts.atol, rtol = opts.rtol,
                                                    raise = false})
    if ok then return true end
    msg = tostring(msg):gsub("^gradcheck: ", "")
    if opts.raise == false then return false, msg end
    raise("gradgradcheck: " .. msg)
  end

  -- ---- nn.autograd.Function: a differentiable op written in Lua ----
  local Context = {__name = "FunctionContext"}
  Context.__index = Context

  --- ctx:save_for_backward(...): keeps tensors for backward, where
  -- ctx.saved_tensors lists them. An output saved here is, in backward, that
  -- output with its history, so that a backward made of tensor ops can be
  -- differentiated again (create_graph).
  function Context:save_for_backward(...)
    self.saved_tensors = table.pack(...)
  end

  --- ctx:mark_non_differentiable(...): outputs of forward that get no
  -- gradient (indices, masks): they come back without a history, and
  -- backward receives zeros for them.
  function Context:mark_non_differentiable(...)
    for _, t in ipairs({...}) do self._non_differentiable[t] = true end
  end

  local function shape_text(t) return "{" .. table.concat(t:size(), ", ") .. "}" end

  -- t seen as the piece [offset + 1, offset + n] of the flat tensor packed
  local function unpack_piece(packed, offset, like)
    return packed:narrow(1, offset + 1, like:numel()):view(like:size())
  end

  local function flat_cat(list)
    local parts = {}
    for i, t in ipairs(list) do parts[i] = t:reshape(-1) end
    return nn.cat(parts, 1)
  end

  local function apply(F, ...)
    local name = F.__name
    local args = table.pack(...)
    local ctx = setmetatable({saved_tensors = {n = 0}, needs_input_grad = {}, _non_differentiable = {}}, Context)
    local recording = C.is_grad_enabled()
    local diff = {} -- the argument positions that need a gradient
    for i = 1, args.n do
      local a = args[i]
      local needs = recording and nn.is_tensor(a) and a.requires_grad
      ctx.needs_input_grad[i] = needs or false
      if needs then diff[#diff + 1] = i end
    end
    if type(F.forward) ~= "function" then raise(name .. ": define " .. name .. ".forward(ctx, ...)") end
    local results = table.pack(nn.no_grad(F.forward, ctx, ...))
    if #diff == 0 then return table.unpack(results, 1, results.n) end
    if type(F.backward) ~= "function" then raise(name .. ": define " .. name .. ".backward(ctx, grad...)") end

    -- the outputs that get a history, each a new tensor over the forward's
    local outs, position = {}, {}
    for j = 1, results.n do
      local r = results[j]
      if nn.is_tensor(r) then
        local fresh = r:detach()
        results[j] = fresh
        if not ctx._non_differentiable[r] and (r.dtype == "float32" or r.dtype == "float64") then
          outs[#outs + 1] = {index = j, original = r, tensor = fresh}
          position[r] = #outs
        end
      end
    end
    if #outs == 0 then return table.unpack(results, 1, results.n) end
    -- saved outputs are handed to backward with their history
    local saved_output = {}
    for k = 1, ctx.saved_tensors.n do
      local t = ctx.saved_tensors[k]
      if nn.is_tensor(t) and position[t] then saved_output[k] = position[t] end
    end

    local offsets, total = {}, 0
    for k, o in ipairs(outs) do
      offsets[k] = total
      total = total + o.tensor:numel()
    end
    local input = #diff == 1 and args[diff[1]] or nil
    if not input then
      local list = {}
      for k, i in ipairs(diff) do list[k] = args[i] end
      input = flat_cat(list)
    end
    local packed = #outs == 1 and outs[1].tensor or nn.no_grad(flat_cat, (function()
      local list = {}
      for k, o in ipairs(outs) do list[k] = o.tensor end
      return list
    end)())

    local function backward(grad, output)
      local grads = {}
      for k, o in ipairs(outs) do
        grads[k] = #outs == 1 and grad or unpack_piece(grad, offsets[k], o.tensor)
      end
      -- one gradient per result of forward: zeros for those without one
      local per_result, gi = {}, 1
      for j = 1, results.n do
        if outs[gi] and outs[gi].index == j then
          per_result[j] = grads[gi]
          gi = gi + 1
        elseif nn.is_tensor(results[j]) then
          per_result[j] = nn.zeros(results[j]:size(), {dtype = results[j].dtype})
        end
      end
      local plain = ctx.saved_tensors
      local lent = {n = plain.n}
      for k = 1, plain.n do
        local j = saved_output[k]
        lent[k] = j and (#outs == 1 and output or unpack_piece(output, offsets[j], outs[j].tensor)) or plain[k]
      end
      ctx.saved_tensors = lent
      local ok, given = pcall(function() return table.pack(F.backward(ctx, table.unpack(per_result, 1, results.n))) end)
      ctx.saved_tensors = plain
      if not ok then error(given, 0) end
      local count = given.n
      while count > args.n and given[count] == nil do count = count - 1 end
      if count ~= args.n then
        error(string.format("%s.backward returned %d gradient%s, expected %d (one per argument of forward)",
                            name, count, count == 1 and "" or "s", args.n), 0)
      end
      local parts = {}
      for k, i in ipairs(diff) do
        local g, x = given[i], args[i]
        if g ~= nil and not nn.is_tensor(g) then
          error(string.format("%s.backward: gradient %d is a %s, expected a tensor or nil", name, i, type(g)), 0)
        end
        if g and (g:dim() ~= x:dim() or g:numel() ~= x:numel() or shape_text(g) ~= shape_text(x)) then
          error(string.format("%s.backward: gradient %d has shape %s, but input %d has shape %s",
                              name, i, shape_text(g), i, shape_text(x)), 0)
        end
        parts[k] = g or nn.zeros(x:size(), {dtype = x.dtype})
      end
      if #diff == 1 then return parts[1] end
      return flat_cat(parts)
    end
    C.function_attach(packed, name .. "Backward", input, backward)
    if #outs == 1 then
      results[outs[1].index] = packed
    else
      for k, o in ipairs(outs) do results[o.index] = unpack_piece(packed, offsets[k], o.tensor) end
    end
    return table.unpack(results, 1, results.n)
  end

  --- nn.autograd.Function(name): a differentiable op of your own, as
  -- PyTorch's torch.autograd.Function. Define Name.forward(ctx, ...) (runs
  -- without a graph; any arguments, tensors or not; returns one or more
  -- tensors) and Name.backward(ctx, grad...) (one gradient per output of
  -- forward in, one per argument of forward out: a tensor of that argument's
  -- shape, or nil). ctx:save_for_backward(...) keeps tensors for
  -- ctx.saved_tensors, ctx:mark_non_differentiable(...) marks outputs without
  -- a gradient, ctx.needs_input_grad[i] says whether argument i needs one,
  -- and any other field of ctx carries values to backward. Call it as
  -- Name.apply(...). A backward written with tensor ops records under
  -- create_graph, so second derivatives go through it. Check it with
  -- nn.gradcheck.
  --   local Cube = nn.autograd.Function("Cube")
  --   function Cube.forward(ctx, x) ctx:save_for_backward(x); return x ^ 3 end
  --   function Cube.backward(ctx, g) local x = ctx.saved_tensors[1]; return g * 3 * x ^ 2 end
  --   local x = nn.tensor({1, 2}, {dtype = "float64", requires_grad = true})
  --   Cube.apply(x):sum():backward()   -- x.grad is {3, 12}
  function autograd.Function(name)
    if name ~= nil and type(name) ~= "string" then
      raise("Function: expected a name (a string), got " .. type(name))
    end
    local F = {__name = name or "Function"}
    --- Function.apply(...): runs forward(ctx, ...) and records backward.
    F.apply = function(...) return apply(F, ...) end
    return F
  end

  -- ---- anomaly mode ----
  --- nn.autograd.set_detect_anomaly(on): turns anomaly mode on or off. While
  -- on, each op remembers the line of your script that called it, and
  -- backward stops at the first op whose gradient holds a NaN with an error
  -- naming the op and that line. It slows every op down: a debugging aid.
  --   nn.autograd.set_detect_anomaly(true)
  function autograd.set_detect_anomaly(on)
    if type(on) ~= "boolean" then raise("set_detect_anomaly: expected a boolean, got " .. type(on)) end
    C.set_detect_anomaly(on)
  end

  --- nn.autograd.is_anomaly_enabled(): whether anomaly mode is on.
  function autograd.is_anomaly_enabled() return C.is_anomaly_enabled() end

  --- nn.autograd.detect_anomaly(on | fn, ...): with a boolean, turns anomaly
  -- mode on or off (set_detect_anomaly); with a function, runs fn(...) with
  -- anomaly mode on and puts the previous mode back however fn ends,
  -- returning what fn returns.
  --   nn.autograd.detect_anomaly(function()
  --     local x = nn.tensor({-1}, {requires_grad = true})
  --     x:sqrt():sum():backward()  -- error: SqrtBackward0 returned nan ..., called at script.lua:3
  --   end)
  function autograd.detect_anomaly(on, ...)
    if type(on) == "boolean" then return C.set_detect_anomaly(on) end
    if type(on) ~= "function" then
      raise("detect_anomaly: expected a boolean or a function, got " .. type(on))
    end
    local previous = C.is_anomaly_enabled()
    C.set_detect_anomaly(true)
    local results = table.pack(pcall(on, ...))
    C.set_detect_anomaly(previous)
    if not results[1] then error(results[2], 0) end
    return table.unpack(results, 2, results.n)
  end
end

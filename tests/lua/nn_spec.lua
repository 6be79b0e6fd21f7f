-- Modules, layers, losses, optimizers and the random generator.
local nn = require "nn"
local support = dofile((os.getenv("NN_ROOT") or ".") .. "/tests/lua/support.lua")
local flat = support.flat
local expect_error = support.expect_error

local root = os.getenv("NN_ROOT") or "."
local reference = dofile(root .. "/tests/fixtures/torch_reference.lua")


local function flatten_table(tbl, out)
  out = out or {}
  for _, v in ipairs(tbl) do
    if type(v) == "table" then flatten_table(v, out) else out[#out + 1] = v end
  end
  return out
end

local function assert_close(expected, actual, tol, what)
  tol = tol or 1e-12
  assert(math.abs(expected - actual) <= tol * math.max(1, math.abs(expected)),
    string.format("%s: expected %.15g, got %.15g", what or "value", expected, actual))
end

local function assert_values(expected, t, tol)
  local got = flat(t)
  assert.are.equal(#expected, #got, "number of elements")
  for i = 1, #expected do assert_close(expected[i], got[i], tol, "element " .. i) end
end


local function names_of(model)
  local names = {}
  for name in model:named_parameters() do names[#names + 1] = name end
  return names
end

local function xor_model()
  return nn.Sequential(
    nn.Linear(2, 10), nn.Sigmoid(),
    nn.Linear(10, 10), nn.Sigmoid(),
    nn.Linear(10, 10), nn.Sigmoid(),
    nn.Linear(10, 1), nn.Sigmoid())
end

describe("a user's own Module", function()
  local Net = nn.Module:extend("Net")
  function Net:init(hidden)
    self.scale = nn.Parameter(nn.ones(1))
    self.fc1 = nn.Linear(2, hidden)
    self.fc2 = nn.Linear(hidden, 1)
    self.note = "not a parameter"
    self.plain = nn.ones(3) -- a tensor that is not a Parameter is not registered
  end
  function Net:forward(x)
    return self.fc2(self.fc1(x):tanh()):sigmoid() * self.scale
  end

  it("is built by calling the class, which runs init", function()
    local net = Net(4)
    assert.are.equal(4, net.fc1.out_features)
    assert.is_true(nn.is_module(net))
    assert.are.equal("not a parameter", net.note)
  end)

  it("forward runs when the instance is called", function()
    local net = Net(4)
    local y = net(nn.ones(5, 2))
    assert.are.same({5, 1}, y:size())
    assert.is_true(y.requires_grad)
  end)

  it("registers its children and parameters in order: its own first, then each child's", function()
    local net = Net(3)
    assert.are.same({"scale", "fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"}, names_of(net))
    local params = net:parameters()
    assert.are.equal(5, #params)
    assert.is_true(rawequal(params[1], net.scale))
    assert.is_true(rawequal(params[2], net.fc1.weight))
    assert.is_true(rawequal(params[5], net.fc2.bias))
    for _, p in ipairs(params) do assert.is_true(p.requires_grad) end
    assert.are.equal(1 + 3 * 2 + 3 + 3 + 1, net:num_parameters())
  end)

  it("children() lists the child modules in the order they were assigned", function()
    local net = Net(3)
    local keys = {}
    for k in net:children() do keys[#keys + 1] = k end
    assert.are.same({"fc1", "fc2"}, keys)
  end)

  it("a subclass of a subclass inherits forward and init", function()
    local Wider = Net:extend("Wider")
    function Wider:init() Net.init(self, 8) end
    local w = Wider()
    assert.are.equal(8, w.fc1.out_features)
    assert.are.same({2, 1}, w(nn.zeros(2, 2)):size())
    assert.are.equal("Wider", w.__name)
  end)

  it("a module without forward raises a clear error when called", function()
    local Empty = nn.Module:extend("Empty")
    expect_error(function() return Empty()(nn.ones(1)) end, "Empty", "forward")
  end)
end)

describe("Sequential", function()
  it("names parameters by position as PyTorch does: model[1].weight is '0.weight'", function()
    local model = nn.Sequential(nn.Linear(2, 3), nn.Sigmoid(), nn.Linear(3, 1))
    assert.are.same({"0.weight", "0.bias", "2.weight", "2.bias"}, names_of(model))
    assert.are.equal(3, #model)
    assert.is_true(rawequal(model[3].weight, model:parameters()[3]))
  end)

  it("applies its modules in order", function()
    local model = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1))
    local x = nn.randn(4, 2)
    local by_hand = model[3](model[2](model[1](x)))
    assert.are.same(by_hand:totable(), model(x):totable())
  end)

  it("add appends a module", function()
    local model = nn.Sequential(nn.Linear(2, 2))
    model:add(nn.Tanh())
    assert.are.equal(2, #model)
    assert.are.same({"0.weight", "0.bias"}, names_of(model))
  end)

  it("nests: names are prefixed with each level", function()
    local model = nn.Sequential(nn.Sequential(nn.Linear(2, 2)), nn.Linear(2, 1, false))
    assert.are.same({"0.0.weight", "0.0.bias", "1.weight"}, names_of(model))
  end)

  it("model(x) runs the forward that model:forward finds: a subclass's, an instance's own", function()
    local x = nn.randn(4, 2)
    local Doubled = nn.Sequential:extend("Doubled")
    function Doubled:forward(y) return nn.Sequential.forward(self, y) * 2 end
    local d = Doubled(nn.Linear(2, 3))
    assert.are.same((nn.Sequential.forward(d, x) * 2):totable(), d(x):totable())
    local s = nn.Sequential(nn.Linear(2, 3))
    local plain = s(x)
    s.forward = function(self, y, z) return z, y, self end -- every result comes back
    local a, b, c = s(x, 7)
    assert.are.equal(7, a)
    assert.is_true(rawequal(x, b))
    assert.is_true(rawequal(s, c))
    s.forward = nil
    assert.are.same(plain:totable(), s(x):totable())
    expect_error(function() return s(x, x) end, "Sequential: takes at most 1 argument")
  end)

  it("model(x) may yield inside a coroutine when a child's forward yields", function()
    local Yielding = nn.Module:extend("Yielding")
    function Yielding:forward(y) coroutine.yield("inside") return y + 1 end
    local Wrapper = nn.Sequential:extend("Wrapper")
    function Wrapper:forward(y) return self[1](y) end
    local model = Wrapper(Yielding())
    local co = coroutine.wrap(function() return model(nn.zeros(1)) end)
    assert.are.equal("inside", co())
    assert.are.same({1}, co():totable())
  end)
end)

describe("print(model)", function()
  it("shows the tree of modules as PyTorch does", function()
    local model = nn.Sequential(nn.Linear(2, 10), nn.Sigmoid(), nn.Linear(10, 1, false))
    local text = tostring(model)
    local lines = {}
    for line in (text .. "\n"):gmatch("(.-)\n") do lines[#lines + 1] = line end
    assert.are.equal(5, #lines, text)
    assert.are.equal("Sequential(", lines[1])
    assert.is_truthy(lines[2]:match("^  %(1%): Linear%(in_features=2, out_features=10, bias=[Tt]rue%)$"), lines[2])
    assert.are.equal("  (2): Sigmoid()", lines[3])
    assert.is_truthy(lines[4]:match("^  %(3%): Linear%(in_features=10, out_features=1, bias=[Ff]alse%)$"), lines[4])
    assert.are.equal(")", lines[5])
  end)

  it("indents nested modules", function()
    local text = tostring(nn.Sequential(nn.Sequential(nn.Tanh())))
    assert.are.equal("Sequential(\n  (1): Sequential(\n    (1): Tanh()\n  )\n)", text)
  end)
end)

describe("train, eval and zero_grad", function()
  it("train() and eval() set training on every module", function()
    local model = nn.Sequential(nn.Linear(2, 2), nn.Sequential(nn.Sigmoid()))
    assert.is_true(model.training)
    assert.is_true(rawequal(model, model:eval()))
    assert.is_false(model.training)
    assert.is_false(model[1].training)
    assert.is_false(model[2][1].training)
    model:train()
    assert.is_true(model[2][1].training)
    model:train(false)
    assert.is_false(model[1].training)
  end)

  it("zero_grad zeroes every parameter's gradient, zero_grad(true) clears it", function()
    local model = nn.Sequential(nn.Linear(2, 3), nn.Sigmoid(), nn.Linear(3, 1))
    model(nn.randn(4, 2)):sum():backward()
    for _, p in ipairs(model:parameters()) do
      assert.is_not_nil(p.grad)
      assert.is_true(p.grad:abs():sum():item() > 0)
    end
    model:zero_grad()
    for _, p in ipairs(model:parameters()) do
      assert.is_true(p.grad == nil or p.grad:abs():sum():item() == 0)
    end
    model(nn.randn(4, 2)):sum():backward()
    model:zero_grad(true)
    for _, p in ipairs(model:parameters()) do assert.is_nil(p.grad) end
  end)
end)

describe("state_dict", function()
  it("maps names to tensors with the parameters' values", function()
    local model = nn.Sequential(nn.Linear(2, 3), nn.Sigmoid(), nn.Linear(3, 1))
    local sd = model:state_dict()
    local keys = {}
    for k in pairs(sd) do keys[#keys + 1] = k end
    table.sort(keys)
    assert.are.same({"0.bias", "0.weight", "2.bias", "2.weight"}, keys)
    assert.are.same(model[1].weight:totable(), sd["0.weight"]:totable())
    assert.is_false(sd["0.weight"].requires_grad)
  end)

  it("round-trips: a second model loads the first one's state and computes the same", function()
    nn.manual_seed(1)
    local a = nn.Sequential(nn.Linear(2, 3), nn.Sigmoid(), nn.Linear(3, 1))
    nn.manual_seed(2)
    local b = nn.Sequential(nn.Linear(2, 3), nn.Sigmoid(), nn.Linear(3, 1))
    local x = nn.randn(5, 2)
    assert.are_not.same(a(x):totable(), b(x):totable())
    local result = b:load_state_dict(a:state_dict())
    assert.are.same(a(x):totable(), b(x):totable())
    assert.are.same({}, result.missing_keys)
    assert.are.same({}, result.unexpected_keys)
    -- b keeps its own tensors: values were copied, not the tensors shared
    a[1].weight:detach():fill_(0)
    assert.are_not.same(a(x):totable(), b(x):totable())
    assert.is_true(b[1].weight.requires_grad)
  end)

  it("refuses a missing key, naming it", function()
    local model = nn.Sequential(nn.Linear(2, 3))
    local sd = model:state_dict()
    sd["0.bias"] = nil
    expect_error(function() model:load_state_dict(sd) end, "load_state_dict",
      'Error(s) in loading state_dict for Sequential:\n\tMissing key(s) in state_dict: "0.bias". ')
  end)

  it("refuses an unexpected key, naming it", function()
    local model = nn.Sequential(nn.Linear(2, 3))
    local sd = model:state_dict()
    sd["1.weight"] = nn.zeros(1)
    expect_error(function() model:load_state_dict(sd) end, "load_state_dict",
      'Error(s) in loading state_dict for Sequential:\n\tUnexpected key(s) in state_dict: "1.weight". ')
  end)

  it("refuses a mis-shaped entry, naming it and both shapes", function()
    local model = nn.Sequential(nn.Linear(2, 3))
    local sd = model:state_dict()
    sd["0.weight"] = nn.zeros(2, 3)
    expect_error(function() model:load_state_dict(sd) end, "load_state_dict",
      "size mismatch for 0.weight: copying a param with shape {2, 3} from checkpoint, "
      .. "the shape in current model is {3, 2}.")
  end)

  it("lists every problem at once", function()
    local model = nn.Sequential(nn.Linear(2, 3), nn.Linear(3, 1))
    local sd = model:state_dict()
    sd["0.bias"], sd["1.bias"] = nil, nil
    sd["extra"] = nn.zeros(1)
    sd["0.weight"] = nn.zeros(1)
    -- PyTorch's order: missing, then unexpected, then the mismatches
    expect_error(function() model:load_state_dict(sd) end, 'Missing key(s) in state_dict: "0.bias", "1.bias". '
      .. '\n\tUnexpected key(s) in state_dict: "extra". \n\tsize mismatch for 0.weight')
  end)

  it("changes nothing when it refuses", function()
    local model = nn.Sequential(nn.Linear(2, 3))
    local before = model[1].weight:totable()
    local sd = {["0.weight"] = nn.zeros(3, 2)} -- bias missing
    pcall(model.load_state_dict, model, sd)
    assert.are.same(before, model[1].weight:totable())
  end)

  it("strict = false skips missing and unexpected keys and reports them", function()
    local model = nn.Sequential(nn.Linear(2, 3))
    local sd = {["0.weight"] = nn.ones(3, 2), ["9.weight"] = nn.ones(1)}
    local result = model:load_state_dict(sd, false)
    assert.are.same({{1, 1}, {1, 1}, {1, 1}}, model[1].weight:totable())
    assert.are.same({"0.bias"}, result.missing_keys)
    assert.are.same({"9.weight"}, result.unexpected_keys)
  end)

  it("strict = false still refuses a mis-shaped entry", function()
    local model = nn.Sequential(nn.Linear(2, 3))
    expect_error(function() model:load_state_dict({["0.weight"] = nn.ones(2, 2)}, false) end,
      "size mismatch for 0.weight")
  end)
end)

describe("Linear", function()
  it("computes x W^T + b", function()
    local layer = nn.Linear(3, 2)
    nn.no_grad(function()
      layer.weight:copy_(nn.tensor({{1, 2, 3}, {0, -1, 1}}))
      layer.bias:copy_(nn.tensor({0.5, -0.5}))
    end)
    assert.are.same({{6.5, -0.5}, {0.5, -0.5}}, layer(nn.tensor({{1, 1, 1}, {0, 0, 0}})):totable())
    assert.are.same({6.5, -0.5}, layer(nn.tensor({1, 1, 1})):totable())
  end)

  it("without bias has no bias parameter", function()
    local layer = nn.Linear(3, 2, false)
    assert.is_nil(layer.bias)
    assert.are.same({"weight"}, names_of(layer))
  end)

  it("initialises bit-exactly as PyTorch after manual_seed(777) (the XOR network)", function()
    nn.manual_seed(777)
    local model = xor_model()
    local layers = {model[1], model[3], model[5], model[7]}
    assert.are.equal(#reference.xor_init, #layers)
    for k, ref in ipairs(reference.xor_init) do
      local layer = layers[k]
      assert.are.equal(ref.in_features, layer.in_features)
      assert.are.equal(ref.out_features, layer.out_features)
      local w, rw = flat(layer.weight), flatten_table(ref.weight)
      assert.are.equal(#rw, #w)
      for i = 1, #rw do
        assert(w[i] == rw[i], string.format("layer %d weight[%d]: %.17g vs PyTorch %.17g", k, i, w[i], rw[i]))
      end
      local b = flat(layer.bias)
      for i = 1, #ref.bias do
        assert(b[i] == ref.bias[i], string.format("layer %d bias[%d]: %.17g vs PyTorch %.17g", k, i, b[i], ref.bias[i]))
      end
    end
  end)

  it("initialises the perceptron's layer as PyTorch does", function()
    nn.manual_seed(777)
    local layer = nn.Linear(2, 1)
    local ref = reference.perceptron.init[1]
    assert.are.same(flatten_table(ref.weight), flat(layer.weight))
    assert.are.same(ref.bias, flat(layer.bias))
  end)
end)

describe("the random generator", function()
  for b, block in ipairs(reference.random.blocks) do
    it("reproduces PyTorch's stream after manual_seed(" .. block.seed .. ") (block " .. b .. ")", function()
      nn.manual_seed(block.seed)
      for d, draw in ipairs(block.draws) do
        local t = nn[draw.call](draw.size, {dtype = draw.dtype})
        assert.are.same(draw.size, t:size())
        local got = flat(t)
        for i = 1, #draw.values do
          assert(got[i] == draw.values[i], string.format("draw %d (%s %s) element %d: %.17g vs PyTorch %.17g",
            d, draw.call, draw.dtype, i, got[i], draw.values[i]))
        end
      end
    end)
  end

  it("initial_seed reports the seed", function()
    nn.manual_seed(4242)
    assert.are.equal(4242, nn.initial_seed())
  end)

  it("get_rng_state / set_rng_state reproduce the same draws", function()
    nn.manual_seed(3)
    nn.randn(3) -- an odd count, in case a spare normal is cached
    local state = nn.get_rng_state()
    local a1, a2, a3 = nn.rand(4), nn.randn(5, {dtype = "float64"}), nn.randn(17)
    nn.rand(100)
    nn.set_rng_state(state)
    local b1, b2, b3 = nn.rand(4), nn.randn(5, {dtype = "float64"}), nn.randn(17)
    assert.are.same(a1:totable(), b1:totable())
    assert.are.same(a2:totable(), b2:totable())
    assert.are.same(a3:totable(), b3:totable())
  end)

  it("set_rng_state refuses a state of the wrong size", function()
    expect_error(function() nn.set_rng_state("not a state") end)
  end)
end)

describe("losses", function()
  local input = nn.tensor({1, 2, 3}, {dtype = "float64"})
  local target = nn.tensor({1, 1, 1}, {dtype = "float64"})

  it("MSELoss: mean, sum and none", function()
    assert_close(5 / 3, nn.MSELoss()(input, target):item())
    assert_close(5, nn.MSELoss({reduction = "sum"})(input, target):item())
    local none = nn.MSELoss({reduction = "none"})(input, target)
    assert.are.same({3}, none:size())
    assert_values({0, 1, 4}, none)
    assert.are.equal(0, nn.MSELoss()(input, target):dim())
  end)

  it("MSELoss's gradient is 2 (x - y) / n", function()
    local x = nn.tensor({1, 2, 3}, {dtype = "float64", requires_grad = true})
    nn.MSELoss()(x, target):backward()
    assert_values({0, 2 / 3, 4 / 3}, x.grad)
  end)

  it("BCELoss: -(y log p + (1 - y) log(1 - p))", function()
    local p = nn.tensor({0.5, 0.25, 0.9}, {dtype = "float64"})
    local y = nn.tensor({1, 0, 1}, {dtype = "float64"})
    local terms = {-math.log(0.5), -math.log(0.75), -math.log(0.9)}
    assert_close((terms[1] + terms[2] + terms[3]) / 3, nn.BCELoss()(p, y):item())
    assert_close(terms[1] + terms[2] + terms[3], nn.BCELoss({reduction = "sum"})(p, y):item())
    assert_values(terms, nn.BCELoss({reduction = "none"})(p, y))
  end)

  it("BCELoss takes soft targets and a weight", function()
    local p = nn.tensor({0.2}, {dtype = "float64"})
    local y = nn.tensor({0.3}, {dtype = "float64"})
    assert_close(-(0.3 * math.log(0.2) + 0.7 * math.log(0.8)), nn.BCELoss()(p, y):item())
    local w = nn.tensor({2}, {dtype = "float64"})
    assert_close(-2 * (0.3 * math.log(0.2) + 0.7 * math.log(0.8)), nn.BCELoss({weight = w})(p, y):item())
  end)

  it("BCELoss clamps log at -100: inputs of exactly 0 or 1 give 100 per wrong element", function()
    local p = nn.tensor({0, 1})
    local y = nn.tensor({1, 0})
    local mean = nn.BCELoss()(p, y):item()
    assert.are.equal(100, mean)
    assert.are.equal(200, nn.BCELoss({reduction = "sum"})(p, y):item())
    assert.are.same({100, 100}, nn.BCELoss({reduction = "none"})(p, y):totable())
    -- and right answers at exactly 0 and 1 cost nothing
    assert.are.equal(0, nn.BCELoss()(nn.tensor({0, 1}), nn.tensor({0, 1})):item())
  end)

  it("BCELoss at inputs of exactly 0 or 1 has a finite gradient", function()
    local p = nn.tensor({0, 1, 0.5}, {requires_grad = true})
    nn.BCELoss()(p, nn.tensor({1, 0, 1})):backward()
    for _, g in ipairs(flat(p.grad)) do
      assert.is_true(g == g and g > -math.huge and g < math.huge, "gradient " .. tostring(g))
    end
  end)

  it("losses print their reduction", function()
    assert.is_truthy(tostring(nn.BCELoss({reduction = "sum"})):find("BCELoss", 1, true))
    assert.is_truthy(tostring(nn.MSELoss()):find("MSELoss", 1, true))
  end)
end)

describe("SGD", function()
  -- The update PyTorch documents (torch.optim.SGD), on Lua numbers.
  local function sgd_by_hand(p, grads_of, opts, steps)
    local buf
    for _ = 1, steps do
      local g = grads_of(p)
      local d = {}
      for i = 1, #p do d[i] = g[i] + (opts.weight_decay or 0) * p[i] end
      local m = opts.momentum or 0
      if m ~= 0 then
        if not buf then
          buf = {table.unpack(d)}
        else
          for i = 1, #p do buf[i] = m * buf[i] + (1 - (opts.dampening or 0)) * d[i] end
        end
        for i = 1, #p do d[i] = opts.nesterov and d[i] + m * buf[i] or buf[i] end
      end
      for i = 1, #p do p[i] = p[i] - opts.lr * d[i] end
    end
    return p
  end

  -- loss = sum(c * p^2), gradient 2 c p
  local c = {0.5, -1.5, 2}
  local function loss_of(p) return (nn.tensor(c, {dtype = "float64"}) * p * p):sum() end
  local function grads(p)
    local g = {}
    for i = 1, #p do g[i] = 2 * c[i] * p[i] end
    return g
  end

  local function run(opts, steps)
    local p = nn.Parameter(nn.tensor({1, -2, 0.5}, {dtype = "float64"}))
    local opt = nn.optim.SGD({p}, opts)
    for _ = 1, steps do
      opt:zero_grad()
      loss_of(p):backward()
      opt:step()
    end
    return p, opt
  end

  local cases = {
    {"plain", {lr = 0.1}},
    {"momentum", {lr = 0.1, momentum = 0.9}},
    {"momentum and dampening", {lr = 0.05, momentum = 0.8, dampening = 0.3}},
    {"weight decay", {lr = 0.1, weight_decay = 0.01}},
    {"nesterov", {lr = 0.1, momentum = 0.9, nesterov = true}},
    {"momentum, weight decay and nesterov", {lr = 0.02, momentum = 0.5, weight_decay = 0.1, nesterov = true}},
  }
  for _, case in ipairs(cases) do
    it("matches the update by hand over 5 steps: " .. case[1], function()
      local p = run(case[2], 5)
      local expected = sgd_by_hand({1, -2, 0.5}, grads, case[2], 5)
      assert_values(expected, p, 1e-12)
    end)
  end

  it("takes a model as well as a list of parameters", function()
    local model = nn.Linear(2, 1)
    local opt = nn.optim.SGD(model, {lr = 0.1})
    local before = model.weight:totable()
    model(nn.ones(1, 2)):sum():backward()
    opt:step()
    assert.are_not.same(before, model.weight:totable())
  end)

  it("zero_grad clears the parameters' gradients", function()
    local p, opt = run({lr = 0.1}, 1)
    assert.is_true(p.grad:abs():sum():item() > 0)
    opt:zero_grad()
    assert.is_true(p.grad == nil or p.grad:abs():sum():item() == 0)
  end)

  it("step(closure) evaluates the closure and returns its loss", function()
    local p = nn.Parameter(nn.tensor({1, -2, 0.5}, {dtype = "float64"}))
    local opt = nn.optim.SGD({p}, {lr = 0.1})
    local loss = opt:step(function()
      opt:zero_grad()
      local l = loss_of(p)
      l:backward()
      return l
    end)
    assert_close(0.5 * 1 - 1.5 * 4 + 2 * 0.25, loss:item())
    assert_values(sgd_by_hand({1, -2, 0.5}, grads, {lr = 0.1}, 1), p)
  end)

  it("state_dict / load_state_dict carry the momentum buffers and hyperparameters", function()
    local opts = {lr = 0.1, momentum = 0.9}
    local p1, opt1 = run(opts, 2)
    local sd = opt1:state_dict()
    assert.are.equal(0.1, sd.param_groups[1].lr)
    assert.are.equal(0.9, sd.param_groups[1].momentum)
    -- a second optimizer over a copy of the parameters, loaded with the state
    local p2 = nn.Parameter(p1:detach():clone())
    local opt2 = nn.optim.SGD({p2}, {lr = 0.5})
    opt2:load_state_dict(sd)
    assert.are.equal(0.1, opt2:state_dict().param_groups[1].lr)
    for _, pair in ipairs({{p1, opt1}, {p2, opt2}}) do
      pair[2]:zero_grad()
      loss_of(pair[1]):backward()
      pair[2]:step()
    end
    assert.are.same(p1:totable(), p2:totable())
    assert_values(sgd_by_hand({1, -2, 0.5}, grads, opts, 3), p2, 1e-12)
  end)

  it("a state_dict is a snapshot: later steps do not change it", function()
    local p, opt = run({lr = 0.1, momentum = 0.9}, 1)
    local sd = opt:state_dict()
    local saved = sd.state[1][1]:totable()
    opt:zero_grad()
    loss_of(p):backward()
    opt:step()
    assert.are.same(saved, sd.state[1][1]:totable())
  end)

  it("a changed lr in a loaded state takes effect", function()
    local p, opt = run({lr = 0.1}, 0)
    local sd = opt:state_dict()
    sd.param_groups[1].lr = 0
    opt:load_state_dict(sd)
    local before = p:totable()
    loss_of(p):backward()
    opt:step()
    assert.are.same(before, p:totable())
  end)
end)

describe("training end to end", function()
  it("the XOR network from the design page learns XOR", function()
    nn.manual_seed(777)
    local X = nn.tensor({{0, 0}, {0, 1}, {1, 0}, {1, 1}})
    local Y = nn.tensor({{0}, {1}, {1}, {0}})
    local model = xor_model()
    local criterion = nn.BCELoss()
    local optimizer = nn.optim.SGD(model:parameters(), {lr = 1})
    local first
    for epoch = 0, 10000 do
      optimizer:zero_grad()
      local cost = criterion(model(X), Y)
      cost:backward()
      optimizer:step()
      if epoch == 0 then first = cost:item() end
    end
    -- the first cost is computed from PyTorch's exact initial weights
    assert_close(reference.xor_trained.costs[1], first, 1e-6, "cost at epoch 0")
    local accuracy = nn.no_grad(function()
      return model(X):gt(0.5):float():eq(Y):float():mean():item()
    end)
    assert.are.equal(1, accuracy)
  end)
end)

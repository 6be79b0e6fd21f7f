-- The seed experiments (scripts/*.lua of issue 4), each run as a learner runs
-- it, with --quick and its pictures sent to a fresh directory: the spec
-- checks what each lesson claims from the printed output, and that every
-- picture the script reports is a real, non-empty PNG or SVG.
local NNLUA = os.getenv("NNLUA")
local ROOT = os.getenv("NN_ROOT") or "."

local function require_nnlua()
  assert(NNLUA and NNLUA ~= "", "NNLUA is not set: run this spec with NNLUA=/path/to/build/nnlua "
    .. "(ctest sets it; by hand: NNLUA=build/nnlua NN_ROOT=$PWD busted tests/lua/experiments_spec.lua)")
  local f = io.open(NNLUA, "rb")
  assert(f, "NNLUA=" .. NNLUA .. " does not exist; build it first")
  f:close()
end

local function quote(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

local function read(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local bytes = f:read("a")
  f:close()
  return bytes
end

local function fresh_dir()
  local dir = os.tmpname()
  os.remove(dir)
  assert(os.execute("mkdir " .. quote(dir)))
  return dir
end

-- Runs scripts/<name> --quick --out <a fresh directory>; returns stdout,
-- stderr, the exit status and the directory.
local function run_script(name)
  require_nnlua()
  local dir = fresh_dir()
  local errfile = os.tmpname()
  local cmd = "cd " .. quote(ROOT) .. " && " .. quote(NNLUA) .. " " .. quote("scripts/" .. name)
    .. " --quick --out " .. quote(dir) .. " 2>" .. quote(errfile)
  local p = assert(io.popen(cmd, "r"))
  local out = p:read("a")
  local _, how, code = p:close()
  if how == "signal" then code = 128 + code end
  local err = read(errfile) or ""
  os.remove(errfile)
  return out, err, code, dir
end

-- The paths a script reported with "Picture: <path>".
local function pictures_in(out)
  local list = {}
  for path in out:gmatch("Picture: ([^\n]+)") do list[#list + 1] = path end
  return list
end

local function check_picture(path, dir)
  assert.are.equal(dir .. "/", path:sub(1, #dir + 1), "picture outside --out: " .. path)
  local bytes = read(path)
  assert.is_not_nil(bytes, "reported picture does not exist: " .. path)
  assert.is_true(#bytes > 100, "picture is (nearly) empty: " .. path)
  if path:match("%.png$") then
    assert.are.equal("\137PNG\r\n\26\n", bytes:sub(1, 8), "not a PNG: " .. path)
    assert.are.equal("IEND", bytes:sub(-8, -5), "PNG cut short: " .. path)
  else
    assert.is_truthy(path:match("%.svg$"), "neither .png nor .svg: " .. path)
    assert.is_truthy(bytes:find("<svg", 1, true) and bytes:find("</svg>", 1, true), "not an SVG: " .. path)
  end
end

-- The numbers in a line of text, in order.
local function numbers_in(text)
  local list = {}
  for s in text:gmatch("[-+]?%d+%.?%d*[eE]?[-+]?%d*") do
    local v = tonumber(s)
    if v then list[#list + 1] = v end
  end
  return list
end

-- The n lines after the first line that starts with `heading` (plain text).
local function lines_after(out, heading, n)
  local lines, found = {}, false
  for line in out:gmatch("([^\n]*)\n") do
    if found then
      lines[#lines + 1] = line
      if #lines == n then break end
    elseif line:sub(1, #heading) == heading then
      found = true
    end
  end
  assert(found, "no line starting with " .. heading .. " in:\n" .. out)
  return lines
end

-- The line that starts (after spaces) with `start`, plain text.
local function line_starting(out, start)
  for line in out:gmatch("([^\n]*)\n") do
    local text = line:match("^%s*(.*)$")
    if text:sub(1, #start) == start then return text end
  end
  error("no line starting with " .. start .. " in:\n" .. out)
end

local function near(expected, actual, tol, what)
  assert(actual and math.abs(expected - actual) <= (tol or 1e-9),
    string.format("%s: expected %s, got %s", what or "value", tostring(expected), tostring(actual)))
end

-- Every script: it succeeds, and every picture it reports is real.
local function runs_and_draws(name, min_pictures, state)
  it("runs with --quick and exits with status 0", function()
    assert.are.equal(0, state.code, "stdout:\n" .. state.out .. "\nstderr:\n" .. state.err)
  end)

  it("writes every picture it reports: a valid, non-empty PNG or SVG under --out", function()
    local list = pictures_in(state.out)
    assert.is_true(#list >= min_pictures, string.format("expected at least %d pictures, the script reported %d",
      min_pictures, #list))
    for _, path in ipairs(list) do check_picture(path, state.dir) end
  end)
end

local function script_state(name)
  local state = {}
  setup(function()
    state.out, state.err, state.code, state.dir = run_script(name)
  end)
  teardown(function()
    if state.dir then os.execute("rm -rf " .. quote(state.dir)) end
  end)
  return state
end

describe("scripts/gates.lua", function()
  local s = script_state("gates.lua")
  runs_and_draws("gates.lua", 4, s)

  local function gate_table(heading)
    local rows = lines_after(s.out, heading, 5)
    local sums, outputs = {}, {}
    for k = 2, 5 do
      local v = numbers_in(rows[k])
      assert.are.equal(4, #v, rows[k])
      sums[k - 1], outputs[k - 1] = v[3], v[4]
    end
    return sums, outputs
  end

  it("prints AND, OR and NAND truth tables with each row's weighted sum", function()
    local cases = {
      {"AND: w = (0.5, 0.5), b = -0.7", {-0.7, -0.2, -0.2, 0.3}, {0, 0, 0, 1}},
      {"OR: w = (0.5, 0.5), b = -0.2", {-0.2, 0.3, 0.3, 0.8}, {0, 1, 1, 1}},
      {"NAND: w = (-0.5, -0.5), b = 0.7", {0.7, 0.2, 0.2, -0.3}, {1, 1, 1, 0}},
    }
    for _, case in ipairs(cases) do
      local sums, outputs = gate_table(case[1])
      for row = 1, 4 do near(case[2][row], sums[row], 1e-6, case[1] .. " row " .. row .. " sum") end
      assert.are.same(case[3], outputs, case[1])
    end
  end)

  it("builds XOR as AND(NAND, OR), printing both hidden answers", function()
    local rows = lines_after(s.out, "XOR = AND(NAND(x1, x2), OR(x1, x2))", 5)
    local expected = {{0, 0, 1, 0, 0}, {0, 1, 1, 1, 1}, {1, 0, 1, 1, 1}, {1, 1, 0, 1, 0}}
    for k = 1, 4 do assert.are.same(expected[k], numbers_in(rows[k + 1]), rows[k + 1]) end
  end)
end)

describe("scripts/perceptron.lua", function()
  local s = script_state("perceptron.lua")
  runs_and_draws("perceptron.lua", 1, s)

  it("learns AND, OR and NAND with Rosenblatt's rule, and their answers match the truth tables", function()
    for _, gate in ipairs {"AND", "OR", "NAND"} do
      local line = line_starting(s.out, gate .. " ")
      assert.is_truthy(line:match("learned in %d+ epochs"), line)
      local answers = lines_after(s.out, line, 1)[1]
      local got = answers:match("answers (.-)%s+%(")
      local truth = answers:match("truth ([%d ]+)%)")
      assert.is_not_nil(got, answers)
      local bits = {}
      for bit in got:gmatch("%->(%d)") do bits[#bits + 1] = bit end
      assert.are.equal(truth, table.concat(bits, " "), answers)
    end
  end)

  it("does not converge on XOR within its budget, and says so", function()
    local line = line_starting(s.out, "XOR ")
    assert.is_truthy(line:match("did not converge in %d+ epochs"), line)
  end)
end)

describe("scripts/xor_hidden.lua", function()
  local s = script_state("xor_hidden.lua")
  runs_and_draws("xor_hidden.lua", 1, s)

  it("learns XOR with one hidden layer of sigmoid, tanh or ReLU, printing the epochs each needed", function()
    for _, name in ipairs {"1 x sigmoid", "1 x tanh", "1 x relu"} do
      local v = numbers_in(line_starting(s.out, name):sub(#name + 1))
      assert.are.equal(3, #v, name)
      assert.is_true(v[1] >= 1 and v[1] <= 10000, name .. " epochs " .. v[1])
      assert.is_true(v[2] < 0.05, name .. " final cost " .. v[2])
      assert.are.equal(1, v[3], name .. " accuracy")
    end
  end)

  it("shows a progress bar on stderr, as plain lines off a terminal", function()
    assert.is_truthy(s.err:find("1 x sigmoid: 10000/10000 100%", 1, true), s.err)
  end)
end)

describe("scripts/backprop.lua", function()
  local s = script_state("backprop.lua")

  it("runs and exits with status 0", function()
    assert.are.equal(0, s.code, s.out .. s.err)
  end)

  -- "name  by-hand  autograd" in the section that starts with `section`.
  local function values(section, name)
    local start = assert(s.out:find(section, 1, true), "no section " .. section)
    local line = line_starting(s.out:sub(start), name)
    local v = numbers_in(line:sub(#name + 1))
    return v[1], v[2]
  end

  it("apples: price 220; d price/d apple 2.2, d/d count 110, d/d tax 200, by hand and by autograd", function()
    local section = "1. Two apples"
    for name, expected in pairs {["price "] = 220, ["d price / d apple "] = 2.2,
                                 ["d price / d apple count"] = 110, ["d price / d tax"] = 200} do
      local by_hand, by_autograd = values(section, name)
      near(expected, by_hand, 1e-9, name .. " by hand")
      near(expected, by_autograd, 1e-9, name .. " by autograd")
    end
  end)

  it("apples and mandarins: price 715 and every gradient, by hand and by autograd", function()
    local section = "2. Two apples at 100 and three mandarins"
    local expected = {["price "] = 715, ["d price / d apple "] = 2.2, ["d price / d apple count"] = 110,
                      ["d price / d mandarin "] = 3.3, ["d price / d mandarin count"] = 165,
                      ["d price / d tax"] = 650}
    for name, value in pairs(expected) do
      local by_hand, by_autograd = values(section, name)
      near(value, by_hand, 1e-9, name .. " by hand")
      near(value, by_autograd, 1e-9, name .. " by autograd")
    end
    for _, name in ipairs {"d price / d apple price", "d price / d mandarin price", "d price / d fruit price"} do
      near(1.1, (values(section, name)), 1e-9, name)
    end
    assert.is_truthy(s.out:find("agree on every value", 1, true), s.out)
  end)
end)

describe("scripts/activations.lua", function()
  local s = script_state("activations.lua")
  runs_and_draws("activations.lua", 2, s)

  it("prints each derivative's maximum: sigmoid 0.25, tanh 1, relu 1, step 0", function()
    for name, expected in pairs {sigmoid = 0.25, tanh = 1, relu = 1, step = 0} do
      local v = numbers_in(line_starting(s.out, name .. " "):sub(#name + 1))
      near(expected, v[1], 1e-6, name .. "'s largest derivative")
    end
  end)

  it("shows softmax overflow: the naive formula gives NaN, nn.F.softmax sums to 1", function()
    local naive = line_starting(s.out, "naive exp(x) / sum(exp(x))")
    assert.is_truthy(naive:lower():find("nan", 1, true), naive)
    local stable = line_starting(s.out, "nn.F.softmax(x, 1)")
    assert.is_falsy(stable:lower():find("nan", 1, true), stable)
    assert.is_truthy(s.out:find("nn.F.softmax sums to 1.000000", 1, true), s.out)
  end)
end)

describe("scripts/vanishing.lua", function()
  local s = script_state("vanishing.lua")
  runs_and_draws("vanishing.lua", 2, s)

  -- The gradient norms per layer (1..10) of each activation in the table under `heading`.
  local function norms(heading)
    local lines = lines_after(s.out, heading, 11)
    local names = {}
    for name in lines[1]:gmatch("%S+") do names[#names + 1] = name end
    assert.are.same({"layer", "sigmoid", "tanh", "relu", "leaky_relu", "elu"}, names)
    local columns = {}
    for layer = 1, 10 do
      local v = numbers_in(lines[layer + 1])
      assert.are.equal(6, #v, lines[layer + 1])
      assert.are.equal(layer, v[1])
      for k = 2, 6 do
        columns[names[k]] = columns[names[k]] or {}
        columns[names[k]][layer] = v[k]
      end
    end
    return columns
  end

  it("at initialisation, sigmoid's gradient shrinks at every layer on its way back to the input", function()
    local sigmoid = norms("At initialisation:").sigmoid
    for layer = 1, 9 do
      assert.is_true(sigmoid[layer] < sigmoid[layer + 1],
        string.format("layer %d: %g is not below layer %d's %g", layer, sigmoid[layer], layer + 1, sigmoid[layer + 1]))
    end
    assert.is_true(sigmoid[10] / sigmoid[1] >= 10, "first layer only " .. sigmoid[10] / sigmoid[1] .. "x smaller")
  end)

  it("reports sigmoid's shrink per layer as roughly 4x, and ReLU's as far smaller", function()
    local per_layer = {}
    for _, name in ipairs {"sigmoid", "relu"} do
      local line = line_starting(s.out, name .. " ")
      per_layer[name] = tonumber(line:match("([%d.]+) x per layer"))
    end
    assert.is_true(per_layer.sigmoid >= 3 and per_layer.sigmoid <= 8, "sigmoid " .. tostring(per_layer.sigmoid))
    assert.is_true(per_layer.relu < 2, "relu " .. tostring(per_layer.relu))
  end)

  it("tabulates the gradient norms after training, and the fraction of dead ReLU units", function()
    local after = norms("After ")
    for _, column in pairs(after) do
      for layer = 1, 10 do assert.is_true(column[layer] >= 0) end
    end
    local start = assert(s.out:find("dead units before", 1, true))
    local relu = line_starting(s.out:sub(start), "relu ")
    local v = numbers_in(relu:sub(5))
    assert.are.equal(4, #v, relu)
    assert.is_true(v[3] >= 0 and v[3] <= 100 and v[4] >= 0 and v[4] <= 100, relu)
  end)
end)

describe("scripts/compare_activations.lua", function()
  local s = script_state("compare_activations.lua")
  runs_and_draws("compare_activations.lua", 3, s)

  -- The rows of the table under the line starting with `heading`: name -> {steps or false, loss, accuracy}.
  local function results(heading)
    local rows = lines_after(s.out, heading, 7)
    local found = {}
    for k = 2, 7 do
      local name, rest = rows[k]:match("^%s*(%S+)%s+(.*)$")
      local v = numbers_in(rest)
      local reached = not rest:find("^never")
      found[name] = {reached and v[1] or false, v[#v - 1], v[#v]}
    end
    return found
  end

  it("trains each activation on XOR over several seeds: all reach the target and accuracy 1", function()
    local xor = results("XOR:")
    for _, name in ipairs {"sigmoid", "tanh", "relu", "leaky_relu", "elu", "gelu"} do
      assert.is_not_nil(xor[name], name)
      assert.is_truthy(xor[name][1], name .. " never reached the target")
      assert.are.equal(1, xor[name][3], name .. " accuracy")
    end
  end)

  it("trains each activation on two moons: accuracy of 0.9 or more", function()
    local moons = results("two moons:")
    for _, name in ipairs {"sigmoid", "tanh", "relu", "leaky_relu", "elu", "gelu"} do
      assert.is_not_nil(moons[name], name)
      assert.is_true(moons[name][3] >= 0.9, name .. " accuracy " .. moons[name][3])
    end
  end)

  it("draws the loss curves and the decision regions", function()
    local list = table.concat(pictures_in(s.out), "\n")
    assert.is_truthy(list:find("loss", 1, true), list)
    assert.is_truthy(list:find("regions", 1, true), list)
  end)
end)

describe("scripts/output_layers.lua", function()
  local s = script_state("output_layers.lua")
  runs_and_draws("output_layers.lua", 3, s)

  it("regression: identity output and MSE fit sin(x) to about the noise level", function()
    local line = line_starting(s.out, "regression ")
    assert.is_truthy(line:find("identity", 1, true) and line:find("MSELoss", 1, true), line)
    local mse = tonumber(line:match("mean squared error ([%d.]+)"))
    assert.is_true(mse < 0.03, line)
  end)

  it("binary: sigmoid output and BCE classify two clouds", function()
    local line = line_starting(s.out, "binary classification ")
    assert.is_truthy(line:find("sigmoid", 1, true) and line:find("BCELoss", 1, true), line)
    assert.is_true(tonumber(line:match("accuracy ([%d.]+)")) >= 0.9, line)
  end)

  it("multi-class: softmax output and cross-entropy classify three clouds; softmax sums to 1", function()
    local line = line_starting(s.out, "multi-class (3 classes) ")
    assert.is_truthy(line:find("softmax", 1, true) and line:find("CrossEntropyLoss", 1, true), line)
    assert.is_true(tonumber(line:match("accuracy ([%d.]+)")) >= 0.9, line)
    for sum in s.out:gmatch("%(sum ([%d.]+)%)") do near(1, tonumber(sum), 1e-3, "softmax sum") end
  end)
end)

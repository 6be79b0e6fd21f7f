-- The scripts a user runs, and the nnlua interpreter itself, as subprocesses.
local NNLUA = os.getenv("NNLUA")
local ROOT = os.getenv("NN_ROOT") or "."

local reference = dofile(ROOT .. "/tests/fixtures/torch_reference.lua")

local function require_nnlua()
  assert(NNLUA and NNLUA ~= "", "NNLUA is not set: run this spec with NNLUA=/path/to/build/nnlua "
    .. "(ctest sets it; by hand: NNLUA=build/nnlua NN_ROOT=$PWD busted ...)")
  local f = io.open(NNLUA, "rb")
  assert(f, "NNLUA=" .. NNLUA .. " does not exist; build it first")
  f:close()
end

local function quote(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

-- Runs a shell command; returns its combined output and exit status.
local function run(cmd)
  local p = assert(io.popen(cmd .. " 2>&1", "r"))
  local out = p:read("a")
  local _, how, code = p:close()
  if how == "signal" then code = 128 + code end
  return out, code
end

-- Runs a shell command; returns stdout, stderr (from a file) and the status.
local function run_split(cmd)
  local errfile = os.tmpname()
  local p = assert(io.popen(cmd .. " 2>" .. quote(errfile), "r"))
  local out = p:read("a")
  local _, how, code = p:close()
  if how == "signal" then code = 128 + code end
  local f = io.open(errfile, "rb")
  local err = f and f:read("a") or ""
  if f then f:close() end
  os.remove(errfile)
  return out, err, code
end

local function write_temp(text, suffix)
  local name = os.tmpname()
  os.remove(name)
  name = name .. (suffix or ".lua")
  local f = assert(io.open(name, "wb"))
  f:write(text)
  f:close()
  return name
end

local function nnlua(args) return quote(NNLUA) .. " " .. args end

local function script(name) return quote(ROOT .. "/scripts/" .. name) end

-- The numbers in a printed tensor, in order.
local function numbers_in(text)
  local list = {}
  for s in text:gmatch("%-?%d+%.?%d*e?[-+]?%d*") do
    local v = tonumber(s)
    if v then list[#list + 1] = v end
  end
  return list
end

-- "epoch<TAB>cost" lines, in order.
local function cost_lines(out)
  local epochs, costs = {}, {}
  for line in out:gmatch("[^\n]+") do
    local e, c = line:match("^(%d+)\t(%S+)$")
    if e then
      epochs[#epochs + 1] = tonumber(e)
      costs[#costs + 1] = tonumber(c)
    end
  end
  return epochs, costs
end

describe("scripts/xor.lua", function()
  local out, code

  setup(function()
    require_nnlua()
    out, code = run("cd " .. quote(ROOT) .. " && " .. nnlua(script("xor.lua")))
  end)

  it("exits with status 0", function()
    assert.are.equal(0, code, out)
  end)

  it("prints the cost every 100 epochs from 0 to 10000", function()
    local epochs, costs = cost_lines(out)
    assert.are.equal(101, #epochs, out)
    for k = 1, 101 do
      assert.are.equal(100 * (k - 1), epochs[k])
      assert.is_number(costs[k])
    end
  end)

  it("starts from PyTorch's cost and ends near zero", function()
    local _, costs = cost_lines(out)
    assert.is_true(math.abs(costs[1] - reference.xor_trained.costs[1]) < 1e-5,
      "epoch 0 cost " .. tostring(costs[1]))
    assert.is_true(costs[#costs] < 0.01, "final cost " .. tostring(costs[#costs]))
  end)

  it("prints an accuracy of 1.0", function()
    local accuracy = out:match("Accuracy:%s*([%d%.]+)")
    assert.is_not_nil(accuracy, out)
    assert.are.equal(1, tonumber(accuracy))
  end)

  it("prints four hypothesis values within 0.01 of 0, 1, 1, 0", function()
    local block = out:match("Hypothesis:(.-)Predicted:")
    assert.is_not_nil(block, out)
    local h = numbers_in(block)
    assert.are.equal(4, #h, block)
    local expected = {0, 1, 1, 0}
    for i = 1, 4 do
      assert.is_true(math.abs(h[i] - expected[i]) < 0.01, string.format("h[%d] = %g", i, h[i]))
    end
  end)

  it("prints the predictions 0, 1, 1, 0 under Predicted, and the labels under Actual (Y)", function()
    local predicted = out:match("Predicted:(.-)Actual %(Y%):")
    assert.is_not_nil(predicted, out)
    assert.are.same({0, 1, 1, 0}, numbers_in(predicted))
    local actual = out:match("Actual %(Y%):(.-)Accuracy:")
    assert.is_not_nil(actual, out)
    assert.are.same({0, 1, 1, 0}, numbers_in(actual))
    assert.is_nil(out:find("Correct:", 1, true), "the predictions are not what is correct")
  end)
end)

describe("scripts/perceptron_xor.lua", function()
  local out, code

  setup(function()
    require_nnlua()
    out, code = run("cd " .. quote(ROOT) .. " && " .. nnlua(script("perceptron_xor.lua")))
  end)

  it("exits with status 0", function()
    assert.are.equal(0, code, out)
  end)

  it("prints the cost every 100 epochs from 0 to 10000", function()
    local epochs = cost_lines(out)
    assert.are.equal(101, #epochs, out)
    assert.are.equal(10000, epochs[#epochs])
  end)

  it("prints a final cost of 0.6931 (ln 2) to 4 decimals", function()
    local final = out:match("Final cost (%d+%.%d+)")
    assert.is_not_nil(final, out)
    assert.are.equal("0.6931", final)
    local _, costs = cost_lines(out)
    assert.are.equal("0.6931", string.format("%.4f", costs[#costs]))
  end)
end)

describe("the nnlua interpreter", function()
  setup(require_nnlua)

  it("-v prints a version", function()
    local out, code = run(nnlua("-v"))
    assert.are.equal(0, code)
    assert.is_truthy(out:match("nnlua %d+%.%d+"), out)
  end)

  it("-e runs a statement", function()
    local out, code = run(nnlua("-e " .. quote("print(1+1)")))
    assert.are.equal(0, code)
    assert.are.equal("2\n", out)
  end)

  it("a script sees arg[0], arg[1], arg[2] and its varargs", function()
    local file = write_temp([[
print("0=" .. tostring(arg[0]))
print("1=" .. tostring(arg[1]))
print("2=" .. tostring(arg[2]))
print("n=" .. #arg)
print("v=" .. table.concat({...}, ","))
]])
    local out, code = run(nnlua(quote(file) .. " first 'second arg'"))
    os.remove(file)
    assert.are.equal(0, code, out)
    assert.is_truthy(out:find("0=" .. file .. "\n", 1, true), out)
    assert.is_truthy(out:find("1=first\n", 1, true), out)
    assert.is_truthy(out:find("2=second arg\n", 1, true), out)
    assert.is_truthy(out:find("n=2\n", 1, true), out)
    assert.is_truthy(out:find("v=first,second arg\n", 1, true), out)
  end)

  it("- runs standard input", function()
    local out, code = run("echo 'print(3)' | " .. nnlua("-"))
    assert.are.equal(0, code)
    assert.are.equal("3\n", out)
  end)

  it("a script with an error exits with status 1 and prints file:line: message and a traceback", function()
    local file = write_temp("local x = 1\nerror('boom from the script')\n")
    local out, err, code = run_split(nnlua(quote(file)))
    os.remove(file)
    assert.are.equal(1, code)
    assert.are.equal("", out)
    assert.is_truthy(err:find(file .. ":2: boom from the script", 1, true), err)
    assert.is_truthy(err:find("stack traceback", 1, true), err)
  end)

  it("an error from nn inside a script names the script's line", function()
    local file = write_temp("local a = nn.ones(2, 3)\nlocal b = a:matmul(nn.ones(2, 5))\n")
    local _, err, code = run_split(nnlua(quote(file)))
    os.remove(file)
    assert.are.equal(1, code)
    assert.is_truthy(err:find(file .. ":2:", 1, true), err)
    assert.is_truthy(err:find("matmul", 1, true), err)
  end)

  it("a script with a syntax error exits with status 1", function()
    local file = write_temp("local = 1\n")
    local _, err, code = run_split(nnlua(quote(file)))
    os.remove(file)
    assert.are.equal(1, code)
    assert.is_truthy(err:find(file .. ":1:", 1, true), err)
  end)

  it("a missing script exits with status 1", function()
    local _, err, code = run_split(nnlua(quote("/nonexistent/nnlua-spec.lua")))
    assert.are.equal(1, code)
    assert.is_truthy(err:find("nonexistent", 1, true), err)
  end)

  it("os.exit(3) in a script gives status 3", function()
    local out, code = run(nnlua("-e " .. quote("os.exit(3)")))
    assert.are.equal(3, code, out)
  end)

  it("require 'nn' works with LUA_PATH and LUA_CPATH unset", function()
    local cmd = "cd / && env -u LUA_PATH -u LUA_CPATH -u LUA_PATH_5_4 -u LUA_CPATH_5_4 -u LUA_INIT -u LUA_INIT_5_4 "
      .. nnlua("-e " .. quote([[
local m = require "nn"
print(type(m), m.zeros(2, 3):numel(), m == require "nn")
]]))
    local out, code = run(cmd)
    assert.are.equal(0, code, out)
    assert.are.equal("table\t6\ttrue\n", out)
  end)

  it("nn is a global inside nnlua, the same table require returns", function()
    local out, code = run(nnlua("-e " .. quote("print(type(nn), nn.ones(4):sum():item(), nn == require 'nn')")))
    assert.are.equal(0, code, out)
    assert.are.equal("table\t4.0\ttrue\n", out)
  end)

  it("nn is a global inside a script too", function()
    local file = write_temp("print(nn.tensor({1, 2, 3}):sum():item())\n")
    local out, code = run(nnlua(quote(file)))
    os.remove(file)
    assert.are.equal(0, code, out)
    assert.are.equal("6.0\n", out)
  end)

  it("prints tensors as PyTorch does", function()
    local out, code = run(nnlua("-e " .. quote("print(nn.tensor({{1, 2}, {3, 4}}))")))
    assert.are.equal(0, code, out)
    assert.are.equal("tensor([[1., 2.],\n        [3., 4.]])\n", out)
  end)
end)

describe("every script's command line (lua-argparse, through nn.cli)", function()
  local function scripts()
    local list = {}
    local p = assert(io.popen("cd " .. quote(ROOT) .. " && ls scripts/*.lua scripts/bench/*.lua"))
    for line in p:lines() do list[#list + 1] = line end
    p:close()
    assert.is_true(#list >= 12, "found only " .. #list .. " scripts")
    return list
  end

  it("answers --help with its usage and options, and nothing else runs", function()
    require_nnlua()
    for _, name in ipairs(scripts()) do
      local out, err, code = run_split("cd " .. quote(ROOT) .. " && " .. nnlua(quote(name) .. " --help"))
      assert.are.equal(0, code, name .. ": " .. out .. err)
      assert.are.equal("Usage: nnlua " .. name, out:match("^Usage: nnlua %S+"), name .. ": " .. out)
      assert.truthy(out:find("-h, --help", 1, true), name .. ": " .. out)
      assert.are.equal("", err, name)
    end
  end)

  it("prints the usage, not a traceback, for a wrong option, with exit status 2", function()
    require_nnlua()
    for _, name in ipairs(scripts()) do
      local out, err, code = run_split("cd " .. quote(ROOT) .. " && " .. nnlua(quote(name) .. " --no-such-option"))
      assert.are.equal(2, code, name .. ": " .. out .. err)
      assert.are.equal("", out, name)
      assert.truthy(err:find("^Usage: nnlua "), name .. ": " .. err)
      assert.truthy(err:find("Error: unknown option '--no-such-option'", 1, true), name .. ": " .. err)
      assert.falsy(err:find("traceback", 1, true), name .. ": " .. err)
    end
  end)

  it("refuses a value an option cannot take, naming the option", function()
    require_nnlua()
    local _, err, code = run_split(nnlua(script("sweep_xor.lua") .. " --workers none"))
    assert.are.equal(2, code, err)
    assert.truthy(err:find("Error: --workers needs a whole number >= 1, got 'none'", 1, true), err)
    _, err, code = run_split(nnlua(script("gates.lua") .. " --out"))
    assert.are.equal(2, code, err)
    assert.truthy(err:find("Error: option '--out' requires an argument", 1, true), err)
  end)

  it("keeps the options the lessons always took", function()
    require_nnlua()
    local dir = os.tmpname()
    os.remove(dir)
    local out, err, code = run_split(nnlua(script("gates.lua") .. " --quick --out " .. quote(dir .. "/pictures")))
    os.execute("rm -rf " .. quote(dir))
    assert.are.equal(0, code, out .. err)
    assert.truthy(out:find("XOR", 1, true))
  end)
end)

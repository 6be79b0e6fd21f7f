-- scripts/cnn_fashion_mnist.lua --quick as a subprocess: its printed
-- figures, its confusion matrix, its pictures (filters, feature maps,
-- confusion, curves) and its saved model. Needs Debian's
-- dataset-fashion-mnist (tools/setup.sh installs it); pending without it.
local support = dofile((os.getenv("NN_ROOT") or ".") .. "/tests/lua/support.lua")
local NNLUA = os.getenv("NNLUA")
local ROOT = os.getenv("NN_ROOT") or "."
local DATA = "/usr/share/datasets/fashion-mnist"
local quote = support.quote

local CLASSES = {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                 "Sneaker", "Bag", "Ankle boot"}

local function exists(path)
  local f = io.open(path, "rb")
  if f then f:close() end
  return f ~= nil
end

-- stdout, stderr and the exit status of a command
local function run(cmd)
  local errfile = os.tmpname()
  local p = assert(io.popen(cmd .. " 2>" .. quote(errfile), "r"))
  local out = p:read("a")
  local _, how, code = p:close()
  if how == "signal" then code = 128 + code end
  local err = support.read(errfile) or ""
  os.remove(errfile)
  return out, err, code
end

local function lesson(args)
  return run(quote(NNLUA) .. " " .. quote(ROOT .. "/scripts/cnn_fashion_mnist.lua") .. " " .. args)
end

describe("scripts/cnn_fashion_mnist.lua --quick", function()
  if not exists(DATA .. "/train-images-idx3-ubyte.gz") then
    pending("Debian's dataset-fashion-mnist is not installed (" .. DATA .. ")")
    return
  end
  assert(NNLUA and NNLUA ~= "", "NNLUA is not set: run with NNLUA=build/nnlua NN_ROOT=$PWD busted ...")

  local dir, out, err, code
  setup(function()
    dir = support.scratch_dir()
    out, err, code = lesson("--quick --threads 1 --seed 3 --device cpu --out " .. quote(dir .. "/results"))
  end)
  teardown(function()
    if dir then os.execute("rm -rf " .. quote(dir)) end
  end)

  it("runs to the end and prints the model", function()
    assert.are.equal(0, code, "exit status " .. tostring(code) .. "\n" .. out .. err)
    assert.truthy(out:find("2000 training and 1000 test images", 1, true), out)
    assert.truthy(out:find("(1): Conv2d(1, 32, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1), bias=False)", 1, true), out)
    assert.truthy(out:find("Conv2d(32, 64", 1, true), out)
  end)

  it("prints each epoch's figures and learns well above chance", function()
    local epochs = 0
    for e, total, loss, train, test in
        out:gmatch("epoch +(%d+)/(%d+) +loss ([%d.]+) +train accuracy ([%d.]+) +test accuracy ([%d.]+) +[%d.]+ s") do
      epochs = epochs + 1
      assert.are.equal(epochs, tonumber(e))
      assert.are.equal(2, tonumber(total))
      assert.is_true(tonumber(loss) > 0 and tonumber(loss) < 2.5)
      assert.is_true(tonumber(train) <= 1 and tonumber(test) <= 1)
    end
    assert.are.equal(2, epochs, out)
    local final = tonumber(out:match("final test accuracy ([%d.]+)"))
    assert.is_true(final and final > 0.6, out)
  end)

  it("prints a confusion matrix whose counts add up to the test set", function()
    local start = out:find("confusion matrix of the test set", 1, true)
    assert.truthy(start, out)
    local rest = out:sub(start)
    local total, diagonal = 0, 0
    for i, name in ipairs(CLASSES) do
      local counts = rest:match("\n" .. name:gsub("%p", "%%%0") .. " +([%d ]+) +[%d.]+\n")
      assert.truthy(counts, "no row for " .. name)
      local j = 0
      for c in counts:gmatch("%d+") do
        j = j + 1
        total = total + tonumber(c)
        if i == j then diagonal = diagonal + tonumber(c) end
      end
      assert.are.equal(10, j)
    end
    assert.are.equal(1000, total)
    assert.is_true(math.abs(tonumber(out:match("final test accuracy ([%d.]+)")) - diagonal / 1000) < 1e-4)
  end)

  it("draws the filters, the feature maps, the confusion matrix and the curves", function()
    for _, name in ipairs {"filters.png", "input.png", "features1.png", "features2.png", "confusion.png", "curves.png"} do
      local path = dir .. "/results/" .. name
      assert.is_true(exists(path), path .. " is missing\n" .. out .. err)
      local bytes = support.read(path)
      assert.are.equal("\137PNG\r\n\26\n", bytes:sub(1, 8))
    end
  end)

  it("saves a model that loads into the same network", function()
    local path = out:match("model saved: ([^\n]+)")
    assert.truthy(path, out)
    local nn = require "nn"
    local model = nn.Sequential(
      nn.Conv2d(1, 32, 3, {padding = 1, bias = false}), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
      nn.Conv2d(32, 64, 3, {padding = 1, bias = false}), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(2),
      nn.Flatten(), nn.Linear(3136, 128), nn.ReLU(), nn.Dropout(0.3), nn.Linear(128, 10))
    model:load_state_dict(nn.load(path))
    assert.are.same({64, 32, 3, 3}, model[5].weight:size())
  end)
end)

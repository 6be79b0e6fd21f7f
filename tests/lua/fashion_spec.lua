-- scripts/fashion_mnist.lua --quick as a subprocess: its printed figures,
-- its confusion matrix, its pictures and its saved model. Needs Debian's
-- dataset-fashion-mnist (tools/setup.sh installs it); pending without it.
local NNLUA = os.getenv("NNLUA")
local ROOT = os.getenv("NN_ROOT") or "."
local DATA = "/usr/share/datasets/fashion-mnist"

local CLASSES = {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                 "Sneaker", "Bag", "Ankle boot"}

local function quote(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

local function exists(path)
  local f = io.open(path, "rb")
  if f then f:close() end
  return f ~= nil
end

-- Runs a command; returns stdout, stderr and the exit status.
local function run(cmd)
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

local function temp_dir()
  local name = os.tmpname()
  os.remove(name)
  assert(os.execute("mkdir -p " .. quote(name)))
  return name
end

local function fashion(args)
  return run(quote(NNLUA) .. " " .. quote(ROOT .. "/scripts/fashion_mnist.lua") .. " " .. args)
end

local function read_bytes(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("a")
  f:close()
  return s
end

local have_data = exists(DATA .. "/train-images-idx3-ubyte.gz")

describe("scripts/fashion_mnist.lua --quick", function()
  if not have_data then
    pending("Debian's dataset-fashion-mnist is not installed (" .. DATA .. ")")
    return
  end
  assert(NNLUA and NNLUA ~= "", "NNLUA is not set: run with NNLUA=build/nnlua NN_ROOT=$PWD busted ...")

  local dir, out, err, code
  setup(function()
    dir = temp_dir()
    out, err, code = fashion("--quick --threads 1 --seed 5 --out " .. quote(dir .. "/results"))
  end)
  teardown(function()
    if dir then os.execute("rm -rf " .. quote(dir)) end
  end)

  it("runs to the end", function()
    assert.are.equal(0, code, "exit status " .. tostring(code) .. "\n" .. out .. err)
    assert.truthy(out:find("2000 training and 1000 test images", 1, true), out)
  end)

  it("prints each epoch's loss, train and test accuracy and time", function()
    local epochs = 0
    for e, total, loss, train, test, secs in
        out:gmatch("epoch +(%d+)/(%d+) +loss ([%d.]+) +train accuracy ([%d.]+) +test accuracy ([%d.]+) +([%d.]+) s") do
      epochs = epochs + 1
      assert.are.equal(epochs, tonumber(e))
      assert.are.equal(2, tonumber(total))
      assert.is_true(tonumber(loss) > 0 and tonumber(loss) < 2.5)
      for _, acc in ipairs {tonumber(train), tonumber(test)} do
        assert.is_true(acc >= 0 and acc <= 1)
      end
      assert.is_true(tonumber(secs) >= 0)
    end
    assert.are.equal(2, epochs, out)
    -- 2,000 images for two epochs: well above chance (0.1)
    local final = tonumber(out:match("final test accuracy ([%d.]+)"))
    assert.is_true(final and final > 0.55, out)
  end)

  it("shows a progress bar per epoch", function()
    -- not a terminal: plain progress lines on stderr
    assert.truthy(err:find("epoch 1/2", 1, true), err)
    assert.truthy(err:find("epoch 2/2", 1, true), err)
    assert.truthy(err:find("16/16", 1, true), err) -- 2,000 / 128 = 16 batches
  end)

  it("prints a confusion matrix by class name whose counts add up to the test set", function()
    local total, diagonal = 0, 0
    local start = out:find("confusion matrix", 1, true)
    assert.truthy(start, out)
    local rest = out:sub(start)
    for i, name in ipairs(CLASSES) do
      local pattern = "\n" .. name:gsub("%p", "%%%0") .. " +([%d ]+) +([%d.]+)\n"
      local counts, recall = rest:match(pattern)
      assert.truthy(counts, "no row for " .. name .. " in\n" .. rest)
      local row, j = 0, 0
      for c in counts:gmatch("%d+") do
        j = j + 1
        row = row + tonumber(c)
        if j == i then diagonal = diagonal + tonumber(c) end
      end
      assert.are.equal(10, j)
      if row > 0 then
        local own = 0
        j = 0
        for c in counts:gmatch("%d+") do
          j = j + 1
          if j == i then own = tonumber(c) end
        end
        assert.is_true(math.abs(tonumber(recall) - own / row) < 1e-3)
      end
      total = total + row
    end
    assert.are.equal(1000, total)
    local final = tonumber(out:match("final test accuracy ([%d.]+)"))
    assert.is_true(math.abs(final - diagonal / 1000) < 1e-4)
    local wrong = tonumber(out:match("%((%d+) of 1000 test images misclassified%)"))
    assert.are.equal(1000 - diagonal, wrong)
  end)

  it("draws the curves and the misclassified images as PNG files", function()
    for _, name in ipairs {"curves.png", "misclassified.png"} do
      local path = dir .. "/results/" .. name
      assert.is_true(exists(path), path .. " is missing\n" .. out)
      local bytes = read_bytes(path)
      assert.are.equal("\137PNG\r\n\26\n", bytes:sub(1, 8))
      assert.is_true(#bytes > 2000)
    end
    -- the grid's images are listed with their true and predicted classes
    local listed = 0
    for row, col, truth, guess in out:gmatch("%((%d+), (%d+)%) test image %d+: ([^\n]-) %-> ([^\n]+)\n") do
      listed = listed + 1
      assert.is_true(tonumber(row) <= 4 and tonumber(col) <= 8)
      assert.are_not.equal(truth, guess)
    end
    assert.are.equal(32, listed)
  end)

  it("saves the trained model where nn.save exists", function()
    local path = out:match("model saved: ([^\n]+)")
    if not path then
      assert.truthy(out:find("model not saved: nn.save is not available", 1, true), out)
      return
    end
    assert.is_true(exists(path), path)
    local nn = require "nn"
    if nn.load then
      local state = nn.load(path)
      local model = nn.Sequential(nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 10))
      model:load_state_dict(state)
      assert.are.same({512, 784}, model[1].weight:size())
    end
  end)

  it("is reproducible from its seed", function()
    local again = fashion("--quick --threads 1 --seed 5 --out ''")
    local function figures(text)
      local list = {}
      for line in text:gmatch("epoch +%d+/%d+ +loss [^\n]+") do
        list[#list + 1] = line:gsub(" +[%d.]+ s$", "")
      end
      list[#list + 1] = text:match("final test accuracy [%d.]+")
      return list
    end
    assert.are.same(figures(out), figures(again))
  end)

  it("refuses an unknown option with a usage message", function()
    local o, e, c = fashion("--bogus")
    assert.are.equal(2, c)
    assert.truthy(e:find("unknown option '--bogus'", 1, true), o .. e)
    assert.truthy(e:find("Usage: ", 1, true))
    assert.falsy(e:find("traceback", 1, true))
    _, e, c = fashion("--epochs zero")
    assert.are.equal(2, c)
    assert.truthy(e:find("--epochs needs a whole number", 1, true), e)
  end)
end)

-- The training step's fast paths (engine/src/optim.c): the plain RMSprop
-- and Adam loops are vectorised and, for large parameters, split over the
-- BLAS pool's threads. Each element must come out exactly as the general
-- loop computes it: maximize with a negated gradient runs the general loop
-- on the same numbers.
describe("optimizer fast paths on a large parameter", function()
  local nn = require "nn"
  local N = 100003 -- above the split threshold, not a multiple of 16

  local function pair()
    nn.manual_seed(11)
    local w = nn.randn(N)
    local g = nn.randn(N)
    local fast, general = w:clone():requires_grad_(), w:clone():requires_grad_()
    fast.grad, general.grad = g:clone(), -g
    return fast, general
  end

  local function max_difference(a, b) return (a:detach() - b:detach()):abs():max():item() end

  for _, case in ipairs {
    {"RMSprop", function(p, o) return nn.optim.RMSprop({p}, o) end, {lr = 0.01}},
    {"Adam", function(p, o) return nn.optim.Adam({p}, o) end, {lr = 0.01}},
    {"AdamW", function(p, o) return nn.optim.AdamW({p}, o) end, {lr = 0.01, weight_decay = 0.1}},
  } do
    local name, make, o = case[1], case[2], case[3]
    for _, threads in ipairs {1, 2} do
      it(name .. " on " .. threads .. " thread(s) matches the general loop exactly", function()
        local before = nn.get_num_threads()
        nn.set_num_threads(threads)
        local fast, general = pair()
        local max_opts = {maximize = true}
        for k, v in pairs(o) do max_opts[k] = v end
        local opt_fast, opt_general = make(fast, o), make(general, max_opts)
        for _ = 1, 3 do
          opt_fast:step()
          opt_general:step()
        end
        nn.set_num_threads(before)
        assert.are.equal(0, max_difference(fast, general))
      end)
    end
  end
end)

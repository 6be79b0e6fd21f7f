-- scripts/char_rnn.lua --quick as a subprocess: what it prints (the
-- text's figures, the unigram baseline, reports with samples, the final
-- comparison), and the loss file and picture it writes. Also
-- nn.data.fortunes, which it reads the text with. Needs Debian's fortunes
-- package (tools/setup.sh installs it); pending without it.
local nn = require "nn"
local support = dofile((os.getenv("NN_ROOT") or ".") .. "/tests/lua/support.lua")
local NNLUA = os.getenv("NNLUA")
local ROOT = os.getenv("NN_ROOT") or "."
local quote = support.quote

local have_fortunes = io.open("/usr/share/games/fortunes/fortunes", "rb")
if have_fortunes then have_fortunes:close() end

describe("nn.data.fortunes", function()
  it("splits a file at its % lines and keeps printable ASCII", function()
    local dir = support.scratch_dir()
    support.write(dir .. "/one", "First line\n\tsecond \xc3\xa9line\n%\n\n%\nThird\n%\n")
    local list = nn.data.fortunes{dir = dir, files = {"one"}}
    assert.are.same({"First line\n\tsecond line", "Third"}, list)
    support.expect_error(function() nn.data.fortunes{dir = dir, files = {"two"}} end,
      "fortunes: cannot read", "fortunes package")
    os.execute("rm -rf " .. quote(dir))
  end)

  it("reads the files of the default list that are present, and says when none is", function()
    local dir = support.scratch_dir()
    support.write(dir .. "/fortunes", "one\n%\ntwo\n%\n")
    support.write(dir .. "/zippy", "three\n%\n")
    support.write(dir .. "/art", "a picture\n%\n") -- left out by default
    support.write(dir .. "/unlisted", "not read\n%\n")
    assert.are.same({"one", "two", "three"}, nn.data.fortunes{dir = dir})
    local empty = support.scratch_dir()
    support.expect_error(function() nn.data.fortunes{dir = empty} end, "fortunes: no fortune files in", empty)
    os.execute("rm -rf " .. quote(dir) .. " " .. quote(empty))
  end)
end)

describe("nn.data.fortune_texts", function()
  local dir
  before_each(function()
    dir = support.scratch_dir()
    local lines = {}
    for i = 1, 60 do lines[i] = "f" .. i .. "\n%\n" end
    support.write(dir .. "/fortunes", table.concat(lines))
  end)
  after_each(function() os.execute("rm -rf " .. quote(dir)) end)

  it("sends every 20th fortune to validation, each joined by a blank line", function()
    local train, valid, n_train, n_valid = nn.data.fortune_texts{dir = dir}
    assert.are.equal("f20\n\nf40\n\nf60\n\n", valid)
    assert.are.equal(57, n_train)
    assert.are.equal(3, n_valid)
    assert.are.equal("f1\n\nf2\n\n", train:sub(1, 8))
    assert.is_nil(train:find("f20\n", 1, true))
  end)

  it("keeps a fraction of the fortunes first, and a validation share of its own", function()
    local train, valid, n_train, n_valid = nn.data.fortune_texts{dir = dir, fraction = 0.25, validation_every = 5}
    -- fortunes 4, 8, ..., 60; the 5th, 10th and 15th of those (20, 40, 60) for validation
    assert.are.equal("f20\n\nf40\n\nf60\n\n", valid)
    assert.are.equal("f4\n\nf8\n\nf12\n\nf16\n\nf24\n\n", train:sub(1, 23))
    assert.are.same({12, 3}, {n_train, n_valid})
  end)

  it("refuses bad options by name", function()
    support.expect_error(function() nn.data.fortune_texts{dir = dir, fraction = 0} end,
      "fortune_texts: fraction must be a number in (0, 1], got 0")
    support.expect_error(function() nn.data.fortune_texts{dir = dir, fraction = 1.5} end, "fortune_texts: fraction")
    support.expect_error(function() nn.data.fortune_texts{dir = dir, validation_every = 1} end,
      "fortune_texts: validation_every must be a whole number >= 2, got 1")
    support.expect_error(function() nn.data.fortune_texts{dir = dir, shuffle = true} end, "fortune_texts", "shuffle")
    support.expect_error(function() nn.data.fortune_texts({dir = dir}, 2) end, "fortune_texts")
  end)
end)

describe("scripts/char_rnn.lua --quick", function()
  if not have_fortunes then
    pending("Debian's fortunes package is not installed (/usr/share/games/fortunes)")
    return
  end
  assert(NNLUA and NNLUA ~= "", "NNLUA is not set: run with NNLUA=build/nnlua NN_ROOT=$PWD busted ...")

  local dir, out, code
  setup(function()
    dir = support.scratch_dir()
    local p = assert(io.popen(quote(NNLUA) .. " " .. quote(ROOT .. "/scripts/char_rnn.lua") ..
      " --quick --threads 1 --device cpu --out " .. quote(dir .. "/results") .. " 2>&1"))
    out = p:read("a")
    code = select(3, p:close())
  end)
  teardown(function() if dir then os.execute("rm -rf " .. quote(dir)) end end)

  it("runs to the end", function()
    assert.are.equal(0, code, out)
    assert.truthy(out:find("fortunes: %d+ in training %(%d+ characters%), %d+ in validation"), out)
  end)

  it("prints reports with a sample each, and the final losses beside the unigram model's", function()
    local reports = 0
    for step, train, valid in out:gmatch("step +(%d+)  train loss ([%d.]+)  validation loss ([%d.]+)") do
      reports = reports + 1
      assert.is_true(tonumber(train) > 0 and tonumber(valid) > 0)
    end
    assert.are.equal(2, reports, out)
    assert.truthy(out:find("sample at temperature 0.80:\nThe ", 1, true), out)
    local lstm, unigram = out:match("validation loss per character: LSTM ([%d.]+) nats %([%d.]+ bits%), unigram ([%d.]+) nats")
    assert.truthy(lstm, out)
    local per_char = tonumber(out:match("unigram model: validation loss ([%d.]+) nats"))
    assert.are.equal(per_char, tonumber(unigram))
    -- the unigram model of English text: 4 to 5 bits per character
    assert.is_true(per_char > 4 * math.log(2) and per_char < 5 * math.log(2), out)
  end)

  it("writes the loss file other lessons read, and its picture", function()
    local text = support.read(dir .. "/results/char_rnn_loss.txt")
    local lines = {}
    for line in text:gmatch("[^\n]+") do lines[#lines + 1] = line end
    assert.are.equal("# step characters train_loss validation_loss", lines[1])
    local rows = 0
    for _, line in ipairs(lines) do
      if line:sub(1, 1) ~= "#" then
        rows = rows + 1
        local step, chars, train, valid = line:match("^(%d+) (%d+) ([%d.]+) ([%d.]+)$")
        assert.truthy(step, line)
        assert.are.equal(tonumber(step) * 16 * 32, tonumber(chars))
      end
    end
    assert.are.equal(2, rows)
    local png = support.read(dir .. "/results/char_rnn_loss.png")
    assert.are.equal("\137PNG", png:sub(1, 4))
  end)
end)

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

-- scripts/tiny_transformer.lua in its quick mode, as a subprocess, on a
-- small directory of fortune files made here (so that the test does not
-- need Debian's fortunes package): it reads the texts as char_rnn.lua does
-- (nn.data.fortune_texts: a tenth of the fortunes in quick mode, every
-- 20th of those for validation; the .dat and .u8 files unread), trains, samples, reports the validation loss beside the
-- unigram model's, writes its curve and draws it with the LSTM's, or says
-- that the LSTM's is missing.
local NNLUA = os.getenv("NNLUA")
local ROOT = os.getenv("NN_ROOT") or "."
local support = dofile(ROOT .. "/tests/lua/support.lua")
local quote = support.quote

local function run(args)
  local p = assert(io.popen(quote(NNLUA) .. " " .. quote(ROOT .. "/scripts/tiny_transformer.lua") .. " " .. args
    .. " 2>&1"))
  local out = p:read("a")
  local ok = p:close()
  return out, ok
end

describe("scripts/tiny_transformer.lua --quick", function()
  local dir
  before_each(function()
    dir = support.scratch_dir()
    os.execute("mkdir -p " .. quote(dir .. "/fortunes"))
    local lines = {}
    for i = 1, 300 do
      lines[#lines + 1] = string.format("A fortune number %d: the early bird gets the worm.\n%%\n", i)
    end
    support.write(dir .. "/fortunes/wisdom", table.concat(lines))
    support.write(dir .. "/fortunes/wisdom.dat", string.rep("\255\0", 100))
    support.write(dir .. "/fortunes/wisdom.u8", string.rep("\195\169", 100))
  end)
  after_each(function() os.execute("rm -rf " .. quote(dir)) end)

  it("trains, samples and draws its curve beside the LSTM's", function()
    support.write(dir .. "/lstm.txt", "# step characters train_loss validation_loss\n3 768 3.1 3.2\n6 1536 2.9 3.0\n")
    local out, ok = run("--quick --data " .. quote(dir .. "/fortunes") .. " --out " .. quote(dir .. "/out")
      .. " --lstm-curve " .. quote(dir .. "/lstm.txt"))
    assert.is_true(ok, out)
    -- fortunes 10, 20, ..., 300; the 20th of those (number 200) for validation
    assert.truthy(out:find("fortunes: 29 in training (1528 characters), 1 in validation (53 characters)", 1, true), out)
    -- the .dat and .u8 files are not read: their bytes 255, 0, 195 and 169 would make the
    -- alphabet larger than the 33 characters of the fortunes (23 of the sentence, 10 digits)
    assert.truthy(out:find("; 33 distinct characters", 1, true), out)
    assert.truthy(out:match("validation loss per character: %d%.%d+ nats"), out)
    assert.truthy(out:find("unigram model:", 1, true), out)
    assert.truthy(out:find("sample: ", 1, true), out)
    assert.falsy(out:find("no LSTM curve", 1, true), out)
    local curve = support.read(dir .. "/out/loss_curve.txt")
    assert.truthy(curve:match("\n3 %d+%.%d+ %d+%.%d+\n"), curve)
    assert.truthy(support.read(dir .. "/out/loss.png"):sub(2, 4) == "PNG")
  end)

  it("says so when the LSTM's curve is missing", function()
    local out, ok = run("--quick --data " .. quote(dir .. "/fortunes") .. " --out " .. quote(dir .. "/out")
      .. " --lstm-curve " .. quote(dir .. "/absent.txt"))
    assert.is_true(ok, out)
    assert.truthy(out:find("the picture shows the Transformer's alone", 1, true), out)
  end)

  it("stops with a clear message without the texts", function()
    local out, ok = run("--quick --data " .. quote(dir .. "/nothing"))
    assert.falsy(ok)
    assert.truthy(out:find("no fortune files in", 1, true), out)
  end)
end)

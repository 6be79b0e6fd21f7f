-- A tiny Transformer that writes fortunes, one character at a time: the
-- lesson's experiment.
--
-- A decoder-only Transformer (as GPT): each character's embedding plus a
-- learned embedding of its position, a stack of Transformer layers whose
-- causal mask lets position i see only positions 1..i, a LayerNorm, and a
-- linear layer to the next character's scores. It learns from the English
-- texts of Debian's `fortunes` package (/usr/share/games/fortunes), prints
-- samples as it trains, the validation loss per character beside a unigram
-- model's (the loss of guessing from character frequencies alone), and
-- draws its loss curve beside the LSTM's of scripts/char_rnn.lua.
--
--   nnlua scripts/tiny_transformer.lua [options]
--     --quick           a tiny model on a tenth of the text, a few steps: the test suite's run
--     --steps N         training steps (default 2000)
--     --out DIR         where the loss curve and its picture go (default
--                       tiny_transformer_results; nothing is written with --out "")
--     --lstm-curve F    the LSTM's curve to draw beside (default
--                       char_rnn_results/char_rnn_loss.txt, which char_rnn.lua writes: lines
--                       of "step characters train_loss validation_loss", '#' comments)
--     --data DIR        the fortune files (default /usr/share/games/fortunes)
--     --temperature T   sampling temperature (default 0.8)
--     --threads N       BLAS threads (default: nn's default)
--     --seed N          the seed of the weights, dropout and batches (default 1)
--     --device D        cpu or cuda (the default where it is available)
local nn = require "nn"

local parser = nn.cli.parser("A tiny character-level Transformer trained on Debian's fortunes.")
parser:flag("--quick", "a tiny model on a tenth of the text, a few steps: the test suite's run")
parser:option("--steps", "training steps", "2000", nn.cli.whole(1, "--steps"))
parser:option("--out", "where the loss curve and its picture go (nothing is written with --out '')",
              "tiny_transformer_results")
parser:option("--lstm-curve", "the LSTM's loss curve (char_rnn.lua's) to draw beside this one",
              "char_rnn_results/char_rnn_loss.txt")
parser:option("--data", "the directory of the fortune files (default: Debian's /usr/share/games/fortunes)")
parser:option("--temperature", "sampling temperature", "0.8", tonumber)
parser:option("--threads", "BLAS threads (default: nn's default)", nil, nn.cli.whole(1, "--threads"))
parser:option("--seed", "the seed of the weights, dropout and batches", "1", nn.cli.whole(1, "--seed"))
nn.cli.device(parser)
local opts = parser:parse()
local device = opts.device
if opts.threads then nn.set_num_threads(opts.threads) end

-- The model and its training. The full run: 4 layers of width 128 over
-- 128 characters of context; --quick: one narrow layer, a few steps.
local config = {context = 128, width = 128, heads = 4, layers = 4, feedforward = 512, dropout = 0.1,
                batch = 32, lr = 1e-3, steps = opts.steps, every = 200, eval_batches = 20,
                sample_length = 300}
if opts.quick then
  config = {context = 16, width = 16, heads = 2, layers = 1, feedforward = 32, dropout = 0.1,
            batch = 4, lr = 3e-3, steps = 6, every = 3, eval_batches = 2, sample_length = 40, fraction = 0.1}
end

-- ---- the text -----------------------------------------------------------
-- The same texts as char_rnn.lua's (nn.data.fortune_texts): every 20th
-- fortune for validation, fortunes joined by a blank line.
local t0 = nn.clock()
local train_text, valid_text, train_count, valid_count =
  nn.data.fortune_texts{dir = opts.data, fraction = config.fraction}

-- The alphabet: every byte of the training text, numbered from 1 in byte
-- order; a character only the validation text has counts as a space.
local present = {}
for i = 1, #train_text do present[train_text:byte(i)] = true end
local alphabet, code_of = {}, {}
for byte = 0, 255 do
  if present[byte] then
    alphabet[#alphabet + 1] = string.char(byte)
    code_of[byte] = #alphabet
  end
end
local vocab = #alphabet
local function encode(text)
  local codes, space = {}, code_of[32]
  for i = 1, #text do codes[i] = code_of[text:byte(i)] or space end
  return codes
end
local train_codes, valid_codes = encode(train_text), encode(valid_text)
local train_data = nn.tensor(train_codes, {dtype = "int64"})
local valid_data = nn.tensor(valid_codes, {dtype = "int64"})
print(string.format("fortunes: %d in training (%d characters), %d in validation (%d characters); %d distinct characters (read in %.2f s)",
  train_count, #train_codes, valid_count, #valid_codes, vocab, nn.clock() - t0))

-- The unigram model's loss: the entropy of the training text's character
-- frequencies (one count added to each, so that none is impossible),
-- evaluated on the validation text (nats per character).
local counts = {}
for c = 1, vocab do counts[c] = 1 end
for _, code in ipairs(train_codes) do counts[code] = counts[code] + 1 end
local unigram = 0
for _, code in ipairs(valid_codes) do unigram = unigram - math.log(counts[code] / (#train_codes + vocab)) end
unigram = unigram / #valid_codes

-- A batch: `batch` random windows of context + 1 characters; the input is
-- each window but its last character, the target each but its first.
local function batch_of(source, size)
  local offsets = (nn.rand(size, {dtype = "float64"}) * (source:size(1) - config.context)):floor():totable()
  local windows = {}
  for i, o in ipairs(offsets) do windows[i] = source:narrow(1, math.floor(o) + 1, config.context + 1) end
  local w = nn.stack(windows)
  return w:narrow(2, 1, config.context):to(device), w:narrow(2, 2, config.context):to(device)
end

-- ---- the model ----------------------------------------------------------
local TinyTransformer = nn.Module:extend("TinyTransformer")

function TinyTransformer:init(c)
  self.context = c.context
  self.token = nn.Embedding(vocab, c.width)
  self.position = nn.Embedding(c.context, c.width)
  self.drop = nn.Dropout(c.dropout)
  local layer = nn.TransformerEncoderLayer(c.width, c.heads, {dim_feedforward = c.feedforward,
    dropout = c.dropout, activation = "gelu", batch_first = true, norm_first = true})
  self.blocks = nn.TransformerEncoder(layer, c.layers)
  self.norm = nn.LayerNorm(c.width)
  self.head = nn.Linear(c.width, vocab)
end

-- tokens (B, T) of character codes -> scores (B, T, vocab) for each next character
function TinyTransformer:forward(tokens)
  local length = tokens:size(2)
  local positions = nn.arange(1, length + 1, {dtype = "int64", device = tokens.device})
  local x = self.drop(self.token(tokens) + self.position(positions))
  local mask = nn.Transformer.generate_square_subsequent_mask(length, {device = tokens.device})
  x = self.blocks(x, {mask = mask})
  return self.head(self.norm(x))
end

nn.manual_seed(opts.seed)
local model = TinyTransformer(config):to(device)
local optimizer = nn.optim.AdamW(model:parameters(), {lr = config.lr, weight_decay = 0.01})
print(string.format("model: %d layers of width %d, %d heads, context %d: %d parameters", config.layers,
  config.width, config.heads, config.context, model:num_parameters()))
print(string.format("unigram model: %.3f nats (%.3f bits) per character on the validation text",
  unigram, unigram / math.log(2)))

local function loss_of(inputs, targets)
  local scores = model(inputs)
  return nn.F.cross_entropy(scores:reshape(-1, vocab), targets:reshape(-1))
end

local function validation_loss()
  model:eval()
  local total = 0
  nn.no_grad(function()
    for _ = 1, config.eval_batches do
      local x, y = batch_of(valid_data, config.batch)
      total = total + loss_of(x, y):item()
    end
  end)
  model:train()
  return total / config.eval_batches
end

-- Characters drawn one at a time from the model's distribution at a
-- temperature, each conditioned on up to `context` characters before it.
local function sample(start, length)
  model:eval()
  local out = {start}
  local generated = {}
  for i = 1, #start do generated[i] = code_of[start:byte(i)] or 1 end
  nn.no_grad(function()
    for _ = 1, length do
      local first = math.max(1, #generated - config.context + 1)
      local window = table.move(generated, first, #generated, 1, {})
      local x = nn.tensor({window}, {dtype = "int64"}):to(device)
      local scores = model(x)[1][#window]:to("cpu"):double() / opts.temperature
      local probs = scores:softmax(1):totable()
      local u, acc, pick = nn.rand(1, {dtype = "float64"}):item(), 0, vocab
      for c = 1, vocab do
        acc = acc + probs[c]
        if u < acc then pick = c break end
      end
      generated[#generated + 1] = pick
      out[#out + 1] = alphabet[pick]
    end
  end)
  model:train()
  return table.concat(out)
end

-- ---- training -----------------------------------------------------------
local curve = {steps = {}, train = {}, valid = {}}
local running, seen = 0, 0
local t0 = nn.clock()
for step = 1, config.steps do
  local x, y = batch_of(train_data, config.batch)
  optimizer:zero_grad()
  local loss = loss_of(x, y)
  loss:backward()
  nn.utils.clip_grad_norm_(model:parameters(), 1.0)
  optimizer:step()
  running, seen = running + loss:item(), seen + 1
  if step % config.every == 0 or step == config.steps then
    local valid = validation_loss()
    curve.steps[#curve.steps + 1] = step
    curve.train[#curve.train + 1] = running / seen
    curve.valid[#curve.valid + 1] = valid
    print(string.format("step %5d  training loss %.3f  validation loss %.3f nats/char (%.3f bits; unigram %.3f)  %.1f s",
      step, running / seen, valid, valid / math.log(2), unigram, nn.clock() - t0))
    print("  sample: " .. sample("\n", config.sample_length):gsub("\n", "\n          "))
    running, seen = 0, 0
  end
end
local final = curve.valid[#curve.valid]
print(string.format("validation loss per character: %.3f nats (%.3f bits); unigram model: %.3f nats (%.3f bits)",
  final, final / math.log(2), unigram, unigram / math.log(2)))

-- ---- the curves -----------------------------------------------------------
-- The LSTM's curve, when char_rnn.lua has written one: '#' comments, then
-- one line per report, "step characters train_loss validation_loss".
local function read_curve(path)
  local f = io.open(path, "r")
  if not f then return nil end
  local c = {steps = {}, train = {}, valid = {}}
  for line in f:lines() do
    if not line:match("^%s*#") then
      local step, _, train, valid = line:match("^%s*(%S+)%s+(%S+)%s+(%S+)%s+(%S+)")
      step, train, valid = tonumber(step), tonumber(train), tonumber(valid)
      if step and train and valid then
        c.steps[#c.steps + 1] = step
        c.train[#c.train + 1] = train
        c.valid[#c.valid + 1] = valid
      end
    end
  end
  f:close()
  return #c.steps > 0 and c or nil
end

if opts.out ~= "" then
  local dir = opts.out
  os.execute("mkdir -p '" .. dir:gsub("'", "'\\''") .. "'")
  local f = assert(io.open(dir .. "/loss_curve.txt", "w"))
  f:write("# step training_loss validation_loss (nats per character), tiny_transformer.lua\n")
  for i, s in ipairs(curve.steps) do f:write(string.format("%d %.6f %.6f\n", s, curve.train[i], curve.valid[i])) end
  f:close()
  local series = {{label = "Transformer, validation", x = curve.steps, y = curve.valid},
                  {label = "Transformer, training", x = curve.steps, y = curve.train}}
  local lstm = read_curve(opts.lstm_curve)
  local title = "character-level models on the fortunes"
  if lstm then
    series[#series + 1] = {label = "LSTM, validation", x = lstm.steps, y = lstm.valid}
    series[#series + 1] = {label = "LSTM, training", x = lstm.steps, y = lstm.train}
  else
    print("no LSTM curve at " .. opts.lstm_curve .. " (run scripts/char_rnn.lua first): "
      .. "the picture shows the Transformer's alone")
    title = title .. " (the Transformer alone: no LSTM curve found)"
  end
  series[#series + 1] = {label = "unigram model", x = {curve.steps[1], curve.steps[#curve.steps]},
                         y = {unigram, unigram}}
  local picture = nn.plot.lines{y = series, title = title, xlabel = "training step",
                                ylabel = "loss (nats per character)", out = dir .. "/loss.png"}
  print("loss curve: " .. dir .. "/loss_curve.txt, picture: " .. picture)
end

-- char_rnn.lua: a character-level LSTM language model, in the spirit of
-- Andrej Karpathy's char-rnn (Torch7, 2015): it reads text one character at
-- a time and learns to predict the next one; sampled from, it writes text
-- of its own. The text: the English fortune cookies of Debian's fortunes
-- package (/usr/share/games/fortunes, read by nn.data.fortunes).
--
-- The model is char-rnn's: characters as one-hot vectors (nn.F.one_hot),
-- a 2-layer LSTM with dropout between the layers, a linear layer to one
-- score per character, cross-entropy; trained with truncated
-- backpropagation through time: the text cut into `batch` parallel
-- streams, `seq` steps at a time, each chunk starting from the state the
-- last one ended in (detached), Adam, gradients clipped at norm 5. Every
-- so often it prints the validation loss and a sample at a temperature;
-- at the end, the validation loss per character beside a unigram model's
-- (each character's training frequency, no context), and a loss curve.
--
--   nnlua scripts/char_rnn.lua [options]
--     --quick         a small model on a tenth of the text for a few steps (the test suite)
--     --steps N       training steps (default 2000)
--     --hidden N      LSTM units per layer (default 128)   --layers N (default 2)
--     --seq N         steps of backpropagation (default 64)   --batch N (default 32)
--     --temperature T the samples' temperature (default 0.8)
--     --out DIR       where the pictures and the loss file go (default char_rnn_results;
--                     nothing is written with --out '')
--     --seed N, --threads N, --device cpu|cuda
--
-- The loss curve file, for other lessons to draw beside their own
-- (scripts/tiny_transformer.lua does): DIR/char_rnn_loss.txt, plain text,
-- lines starting with "#" are comments (the first names the columns), then
-- one line per report: "step characters train_loss validation_loss",
-- separated by spaces; losses are nats per character (the mean training
-- loss since the previous report, the validation loss then); characters
-- is the number of training characters seen so far.
local nn = require "nn"

local parser = nn.cli.parser("A character-level LSTM (char-rnn) trained on Debian's fortune cookies.")
parser:flag("--quick", "a small model on a tenth of the text for a few steps (the test suite)")
parser:option("--steps", "training steps", nil, nn.cli.whole(1, "--steps"))
parser:option("--hidden", "LSTM units per layer", nil, nn.cli.whole(1, "--hidden"))
parser:option("--layers", "LSTM layers", nil, nn.cli.whole(1, "--layers"))
parser:option("--seq", "steps of backpropagation through time", nil, nn.cli.whole(2, "--seq"))
parser:option("--batch", "parallel streams of text", nil, nn.cli.whole(1, "--batch"))
parser:option("--temperature", "the samples' temperature (> 0)", "0.8", tonumber)
parser:option("--out", "where the pictures and the loss file go (nothing is written with --out '')",
              "char_rnn_results")
parser:option("--data", "the fortunes directory (default: Debian's /usr/share/games/fortunes)")
parser:option("--seed", "the seed of the weights, dropout and samples", "1", nn.cli.whole(0, "--seed"))
parser:option("--threads", "BLAS threads (default: nn's default)", nil, nn.cli.whole(1, "--threads"))
nn.cli.device(parser)
local opts = parser:parse()
if not opts.temperature or opts.temperature <= 0 then parser:error("--temperature must be a number > 0") end
if opts.threads then nn.set_num_threads(opts.threads) end
local device = opts.device
nn.manual_seed(opts.seed)

local config = {steps = 2000, hidden = 128, layers = 2, seq = 64, batch = 32, dropout = 0.2,
                lr = 2e-3, report = 250, sample_length = 300}
if opts.quick then
  config = {steps = 40, hidden = 32, layers = 2, seq = 32, batch = 16, dropout = 0.2, lr = 5e-3,
            report = 20, sample_length = 80, fraction = 0.1}
end
for _, key in ipairs {"steps", "hidden", "layers", "seq", "batch"} do
  if opts[key] then config[key] = opts[key] end
end

-- ---- the text ---------------------------------------------------------
-- Every 20th fortune goes to validation; fortunes are joined with a blank
-- line, so that the model learns where one ends (nn.data.fortune_texts).
local t0 = nn.clock()
local train_text, valid_text, train_count, valid_count = nn.data.fortune_texts{dir = opts.data, fraction = config.fraction}

-- the vocabulary: every character of the training text, in byte order
local seen, chars, index = {}, {}, {}
for c in train_text:gmatch(".") do seen[c] = true end
for b = 0, 255 do
  local c = string.char(b)
  if seen[c] then chars[#chars + 1] = c; index[c] = #chars end
end
local V = #chars

-- a text as an int64 tensor of character indices (1..V); a character the
-- training text lacks counts as a space
local function encode(text)
  local codes = {}
  local space = index[" "]
  for i = 1, #text do codes[i] = index[text:sub(i, i)] or space end
  return nn.tensor(codes, {dtype = "int64"})
end
local train_codes, valid_codes = encode(train_text), encode(valid_text)
print(string.format("fortunes: %d in training (%d characters), %d in validation (%d characters); %d distinct characters (read in %.2f s)",
  train_count, #train_text, valid_count, #valid_text, V, nn.clock() - t0))

-- ---- the unigram baseline -----------------------------------------------
-- -log p(c) per validation character, p the training frequency (with one
-- count added to every character, so that none is impossible).
local counts = {}
for i = 1, V do counts[i] = 1 end
for _, code in ipairs(train_codes:totable()) do counts[code] = counts[code] + 1 end
local total = #train_text + V
local unigram = 0
local valid_list = valid_codes:totable()
for _, code in ipairs(valid_list) do unigram = unigram - math.log(counts[code] / total) end
unigram = unigram / #valid_list
print(string.format("unigram model: validation loss %.4f nats per character (%.3f bits)", unigram, unigram / math.log(2)))

-- ---- the model ----------------------------------------------------------
local CharRNN = nn.Module:extend("CharRNN")
function CharRNN:init(vocab, hidden, layers, dropout)
  self.vocab = vocab
  self.lstm = nn.LSTM(vocab, hidden, layers, {dropout = dropout})
  self.decoder = nn.Linear(hidden, vocab)
end
-- codes (T x B, int64) -> scores (T x B x V) and the final state
function CharRNN:forward(codes, state)
  local x = nn.F.one_hot(codes, self.vocab):to(self.decoder.weight.dtype)
  local out, final = self.lstm(x, state)
  return self.decoder(out), final
end

local model = CharRNN(V, config.hidden, config.layers, config.dropout):to(device)
print(model)
local params = 0
for _, p in ipairs(model:parameters()) do params = params + p:numel() end
print(string.format("%d parameters; %d steps of %d streams x %d characters", params, config.steps,
  config.batch, config.seq))
local criterion = nn.CrossEntropyLoss()
local optimizer = nn.optim.Adam(model:parameters(), {lr = config.lr})

-- The text as `batch` streams side by side (B x L), the rest cut off.
local function streams(codes, batch)
  local L = codes:size(1) // batch
  return codes:narrow(1, 1, batch * L):view(batch, L)
end
local train_streams = streams(train_codes, config.batch):to(device)
local L = train_streams:size(2)

local function detach(state) return {state[1]:detach(), state[2]:detach()} end

-- ---- sampling -----------------------------------------------------------
-- One character at a time from softmax(scores / temperature), fed back in.
local function sample(length, temperature, prime)
  model:eval()
  local text = {prime}
  nn.no_grad(function()
    local state
    local codes = encode(prime):view(-1, 1):to(device)
    local scores
    scores, state = model(codes, state)
    for _ = 1, length do
      local last = scores[scores:size(1)]:view(-1)
      local probs = nn.F.softmax(last / temperature, 1):to("cpu"):totable()
      local u, acc, pick = nn.rand(1):item(), 0, V
      for k = 1, V do
        acc = acc + probs[k]
        if u < acc then pick = k; break end
      end
      text[#text + 1] = chars[pick]
      scores, state = model(nn.tensor({{pick}}, {dtype = "int64"}):to(device), state)
    end
  end)
  model:train()
  return table.concat(text)
end

-- ---- validation ---------------------------------------------------------
-- The mean loss over the validation text, in streams of `batch`, each
-- chunk from the state the last one ended in (as in training). limit:
-- at most that many chunks (the reports during training).
local valid_streams = streams(valid_codes, math.min(config.batch, #valid_text // (config.seq + 1)))
local function validation_loss(limit)
  model:eval()
  local sum, n = 0, 0
  nn.no_grad(function()
    local state
    local VL = valid_streams:size(2)
    local chunks = 0
    for p = 1, VL - 1, config.seq do
      local T = math.min(config.seq, VL - p)
      local x = valid_streams:narrow(2, p, T):t():to(device)
      local y = valid_streams:narrow(2, p + 1, T):t():to(device)
      local scores
      scores, state = model(x, state)
      local loss = criterion(scores:reshape(-1, V), y:reshape(-1))
      sum, n = sum + loss:item() * T, n + T
      chunks = chunks + 1
      if limit and chunks >= limit then break end
    end
  end)
  model:train()
  return sum / n
end

-- ---- training -----------------------------------------------------------
local history = {step = {}, characters = {}, train = {}, valid = {}}
local state
local position, running, running_n = 1, 0, 0
local t_train = nn.clock()
for step = 1, config.steps do
  if position + config.seq > L then position, state = 1, nil end
  local x = train_streams:narrow(2, position, config.seq):t()
  local y = train_streams:narrow(2, position + 1, config.seq):t()
  position = position + config.seq
  optimizer:zero_grad()
  local scores
  scores, state = model(x, state)
  local loss = criterion(scores:reshape(-1, V), y:reshape(-1))
  loss:backward()
  nn.utils.clip_grad_norm_(model:parameters(), 5)
  optimizer:step()
  state = detach(state)
  running, running_n = running + loss:item(), running_n + 1
  if step % config.report == 0 or step == config.steps then
    local valid = validation_loss(opts.quick and 4 or 40)
    local n = #history.step + 1
    history.step[n], history.characters[n] = step, step * config.batch * config.seq
    history.train[n], history.valid[n] = running / running_n, valid
    print(string.format("step %5d  train loss %.4f  validation loss %.4f (first chunks)  %.1f s",
      step, running / running_n, valid, nn.clock() - t_train))
    print(string.format("sample at temperature %.2f:\n%s\n", opts.temperature,
      sample(config.sample_length, opts.temperature, "The ")))
    running, running_n = 0, 0
  end
end

local final = validation_loss()
print(string.format("validation loss per character: LSTM %.4f nats (%.3f bits), unigram %.4f nats (%.3f bits); LSTM / unigram %.3f",
  final, final / math.log(2), unigram, unigram / math.log(2), final / unigram))

-- ---- the loss file and the picture ---------------------------------------
if opts.out ~= "" then
  local dir = opts.out
  os.execute("mkdir -p '" .. dir:gsub("'", "'\\''") .. "'")
  local path = dir .. "/char_rnn_loss.txt"
  local f = assert(io.open(path, "w"))
  f:write("# step characters train_loss validation_loss\n")
  f:write(string.format("# char_rnn.lua: LSTM %d x %d, batch %d, seq %d; losses in nats per character; unigram %.6f\n",
    config.layers, config.hidden, config.batch, config.seq, unigram))
  for i = 1, #history.step do
    f:write(string.format("%d %d %.6f %.6f\n", history.step[i], history.characters[i], history.train[i],
      history.valid[i]))
  end
  f:close()
  print("loss file: " .. path)
  local unigram_line = {}
  for i = 1, #history.step do unigram_line[i] = unigram end
  local picture = nn.plot.lines{
    x = history.step,
    y = {{label = "training loss", y = history.train},
         {label = "validation loss", y = history.valid},
         {label = "unigram model", y = unigram_line}},
    title = string.format("char-rnn on fortunes: LSTM %d x %d", config.layers, config.hidden),
    xlabel = "step", ylabel = "nats per character", style = "linespoints", out = dir .. "/char_rnn_loss.png"}
  print("loss curve: " .. picture)
end

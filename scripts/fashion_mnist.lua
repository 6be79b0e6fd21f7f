-- Fashion-MNIST with a dense network: the lesson's experiment.
--
-- The network of the Keras book (784 -> 512 ReLU -> 10 softmax, RMSprop
-- lr 0.001, batch 128, 5 epochs), trained on the 60,000 training images of
-- Debian's dataset-fashion-mnist and tested on the 10,000 test images. It
-- prints a progress bar per epoch, each epoch's loss, train and test
-- accuracy and time, and a confusion matrix of the test set by class name;
-- it draws the loss and accuracy curves and a grid of misclassified test
-- images, and saves the trained model (safetensors).
--
--   nnlua scripts/fashion_mnist.lua [options]
--     --deep          the second configuration: 784-1024-512-10 with dropout,
--                     Adam with a cosine learning-rate schedule, 30 epochs
--     --quick         a small subset (2,000 training and 1,000 test images,
--                     2 epochs) for the test suite
--     --epochs N      override the number of epochs
--     --out DIR       where the pictures and the model go (default
--                     fashion_mnist_results; nothing is drawn with --out "")
--     --data DIR      the directory of the four IDX files (default: Debian's
--                     /usr/share/datasets/fashion-mnist)
--     --threads N     BLAS threads (default: nn's default)
--     --seed N        the seed of the weights, dropout and shuffling (default 1)
--     --device D      cpu or cuda (the default where it is available)
local nn = require "nn"

local parser = nn.cli.parser("Fashion-MNIST with a dense network: the lesson's experiment.")
parser:flag("--deep", "the second configuration: 784-1024-512-10 with dropout, Adam with a cosine "
            .. "learning-rate schedule, 30 epochs")
parser:flag("--quick", "a small subset (2,000 training and 1,000 test images, 2 epochs) for the test suite")
parser:option("--epochs", "override the number of epochs", nil, nn.cli.whole(1, "--epochs"))
parser:option("--out", "where the pictures and the model go (nothing is drawn with --out '')",
              "fashion_mnist_results")
parser:option("--data", "the directory of the four IDX files (default: Debian's /usr/share/datasets/fashion-mnist)")
parser:option("--threads", "BLAS threads (default: nn's default)", nil, nn.cli.whole(1, "--threads"))
parser:option("--seed", "the seed of the weights, dropout and shuffling", "1", nn.cli.whole(1, "--seed"))
nn.cli.device(parser)
local opts = parser:parse()
local device = opts.device
if opts.threads then nn.set_num_threads(opts.threads) end

-- The two configurations. The lesson's: Keras's Dense(512, relu),
-- Dense(10, softmax), rmsprop (lr 0.001), batch 128, 5 epochs. The deeper
-- one: two wider hidden layers with dropout, Adam and a cosine schedule
-- (the learning rate falls from 0.001 to 0 over the run), 30 epochs.
local config
if opts.deep then
  config = {name = "deep: 784-1024-512-10, dropout 0.3, Adam + cosine schedule", epochs = 30,
            batch = 128, lr = 0.001}
else
  config = {name = "lesson: 784-512-10, RMSprop", epochs = 5, batch = 128, lr = 0.001}
end
if opts.quick then config.epochs = 2 end
if opts.epochs then config.epochs = opts.epochs end

-- ---- the data ---------------------------------------------------------
-- nn.data.fashion_mnist: TensorDatasets of images (N x 784, float32 in
-- [0, 1]) and labels (int64 1..10), and the ten class names.
local t_load = nn.clock()
local train_set, test_set, class_names = nn.data.fashion_mnist(opts.data)
local x_train, y_train = train_set.images, train_set.labels
local x_test, y_test = test_set.images, test_set.labels
if opts.quick then
  x_train, y_train = x_train:narrow(1, 1, 2000), y_train:narrow(1, 1, 2000)
  x_test, y_test = x_test:narrow(1, 1, 1000), y_test:narrow(1, 1, 1000)
end
local n_train, n_test = x_train:size(1), x_test:size(1)
print(string.format("Fashion-MNIST: %d training and %d test images of 28x28, 10 classes (read in %.2f s)",
  n_train, n_test, nn.clock() - t_load))

-- Shuffled batches of the training set, a new order each epoch, from the
-- seed (the loader's own generator, apart from the weights' and dropout's).
local loader = nn.data.DataLoader(nn.data.TensorDataset(x_train, y_train),
                                  {batch_size = config.batch, shuffle = true, seed = opts.seed})

-- ---- the model --------------------------------------------------------
nn.manual_seed(opts.seed)
local model, optimizer, scheduler
if opts.deep then
  model = nn.Sequential(
    nn.Linear(784, 1024), nn.ReLU(), nn.Dropout(0.3),
    nn.Linear(1024, 512), nn.ReLU(), nn.Dropout(0.3),
    nn.Linear(512, 10))
  optimizer = nn.optim.Adam(model:parameters(), {lr = config.lr})
  -- stepped after every batch: the rate follows the cosine over the whole run
  scheduler = nn.optim.lr_scheduler.CosineAnnealingLR(optimizer, {T_max = config.epochs * #loader})
else
  model = nn.Sequential(nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 10))
  -- Keras's choices, where they differ from PyTorch's defaults: Dense
  -- layers start with Glorot-uniform weights and zero biases, and rmsprop's
  -- moving average keeps rho = 0.9 (PyTorch's alpha, default 0.99) with
  -- epsilon 1e-7 (PyTorch: 1e-8), added outside the square root in both.
  for _, layer in ipairs {model[1], model[3]} do
    nn.init.xavier_uniform_(layer.weight)
    nn.init.zeros_(layer.bias)
  end
  optimizer = nn.optim.RMSprop(model:parameters(), {lr = config.lr, alpha = 0.9, eps = 1e-7})
end
-- The softmax of Keras's last layer lives inside the loss here, as in
-- PyTorch: the model gives logits, cross-entropy takes them.
model:to(device)
local criterion = nn.CrossEntropyLoss()
print(string.format("configuration %s; batch %d, %d epochs, %d threads", config.name, config.batch,
  config.epochs, nn.get_num_threads()))
print(model)

-- Predicted classes (1..10) of x, in evaluation mode, a chunk at a time.
local function predict(x)
  local was_training = model.training
  model:eval()
  local parts = {}
  nn.no_grad(function()
    local n = x:size(1)
    for start = 1, n, 1000 do
      local count = math.min(1000, n - start + 1)
      parts[#parts + 1] = model(x:narrow(1, start, count):to(device)):argmax(2):cpu()
    end
  end)
  if was_training then model:train() end
  return parts
end

local function accuracy(x, y)
  local correct, start = 0, 1
  for _, p in ipairs(predict(x)) do
    local count = p:size(1)
    correct = correct + p:eq(y:narrow(1, start, count)):sum():item()
    start = start + count
  end
  return correct / x:size(1)
end

-- ---- training ---------------------------------------------------------
local steps_per_epoch = #loader
local history = {loss = {}, train_acc = {}, test_acc = {}}
local t_train = nn.clock()
for epoch = 1, config.epochs do
  model:train()
  local t0 = nn.clock()
  local bar <close> = nn.progress{total = steps_per_epoch,
                                  desc = string.format("epoch %d/%d", epoch, config.epochs)}
  local loss_sum, correct, seen = 0, 0, 0
  for x, y in loader:iter() do
    -- batches are gathered on the host, then moved
    x, y = x:to(device), y:to(device)
    optimizer:zero_grad()
    local logits = model(x)
    local loss = criterion(logits, y)
    loss:backward()
    optimizer:step()
    if scheduler then scheduler:step() end
    local count = x:size(1)
    -- the running figures Keras prints: mean loss and accuracy over the
    -- epoch's batches, as the weights were when each batch was seen
    loss_sum = loss_sum + loss:item() * count
    correct = correct + logits:argmax(2):eq(y):sum():item()
    seen = seen + count
    bar:update(1, loss)
  end
  bar:close()
  local seconds = nn.clock() - t0
  local test_acc = accuracy(x_test, y_test)
  history.loss[epoch] = loss_sum / seen
  history.train_acc[epoch] = correct / seen
  history.test_acc[epoch] = test_acc
  print(string.format("epoch %2d/%d  loss %.4f  train accuracy %.4f  test accuracy %.4f  %.1f s",
    epoch, config.epochs, history.loss[epoch], history.train_acc[epoch], test_acc, seconds))
end
local train_seconds = nn.clock() - t_train
print(string.format("trained in %.1f s (%.2f s per epoch)", train_seconds,
  train_seconds / config.epochs))

-- ---- evaluation: accuracy and the confusion matrix -------------------
local predicted, labels = {}, y_test:totable()
for _, p in ipairs(predict(x_test)) do
  for _, v in ipairs(p:totable()) do predicted[#predicted + 1] = v end
end
local confusion = {}
for i = 1, 10 do
  confusion[i] = {}
  for j = 1, 10 do confusion[i][j] = 0 end
end
local misclassified = {}
for i = 1, n_test do
  local t, p = labels[i], predicted[i]
  confusion[t][p] = confusion[t][p] + 1
  if t ~= p then misclassified[#misclassified + 1] = i end
end
local final_acc = (n_test - #misclassified) / n_test
print(string.format("test accuracy: %.4f (%d of %d test images misclassified)", final_acc,
  #misclassified, n_test))

print("confusion matrix of the test set (rows: true class, columns: predicted):")
local short = {}
for j = 1, 10 do short[j] = class_names[j]:sub(1, 7) end
local header = string.format("%-12s", "")
for j = 1, 10 do header = header .. string.format(" %7s", short[j]) end
print(header .. "   recall")
for i = 1, 10 do
  local line, row_total = string.format("%-12s", class_names[i]), 0
  for j = 1, 10 do
    line = line .. string.format(" %7d", confusion[i][j])
    row_total = row_total + confusion[i][j]
  end
  print(line .. string.format("   %.3f", row_total > 0 and confusion[i][i] / row_total or 0))
end

-- ---- pictures and the saved model ------------------------------------
if opts.out ~= "" then
  local dir = opts.out
  os.execute("mkdir -p '" .. dir:gsub("'", "'\\''") .. "'")
  local prefix = dir .. "/" .. (opts.deep and "deep_" or "")
  local epochs = {}
  for e = 1, config.epochs do epochs[e] = e end
  local curves = nn.plot.lines{
    x = epochs,
    y = {{label = "training loss", y = history.loss},
         {label = "training accuracy", y = history.train_acc},
         {label = "test accuracy", y = history.test_acc}},
    title = "Fashion-MNIST, " .. config.name, xlabel = "epoch", ylabel = "loss / accuracy",
    style = "linespoints", out = prefix .. "curves.png"}
  print("curves: " .. curves)

  -- The first 32 misclassified test images, 8 a row, each captioned with
  -- its true and predicted class.
  local COLUMNS, SIDE = 8, 28
  local shown = math.min(#misclassified, 4 * COLUMNS)
  if shown > 0 then
    local images, captions = nn.zeros(shown, 1, SIDE, SIDE), {}
    print("misclassified test images in the grid (row, column: true -> predicted):")
    for k = 1, shown do
      local index = misclassified[k]
      images[k]:copy_(x_test[index]:view(1, SIDE, SIDE))
      captions[k] = class_names[labels[index]] .. " -> " .. class_names[predicted[index]]
      print(string.format("  (%d, %d) test image %d: %s", (k - 1) // COLUMNS + 1, (k - 1) % COLUMNS + 1, index,
        captions[k]))
    end
    local picture = nn.plot.image{image = images, labels = captions, columns = COLUMNS, zrange = {0, 1},
      title = string.format("%d misclassified test images: true -> predicted class", shown),
      out = prefix .. "misclassified.png", width = 1200, height = 760}
    print("misclassified: " .. picture)
  end

  -- the state_dict in safetensors: model:load_state_dict(nn.load(path))
  local path = prefix .. "model.safetensors"
  nn.save(path, model)
  print("model saved: " .. path)
end
print(string.format("final test accuracy %.4f", final_acc))

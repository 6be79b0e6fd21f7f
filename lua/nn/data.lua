-- nn.data: data sets and batching.
--
--   local train, test, classes = nn.data.fashion_mnist()
--   local loader = nn.data.DataLoader(train, {batch_size = 128, shuffle = true, seed = 1})
--   for epoch = 1, 5 do
--     for x, y in loader:iter() do ... end   -- x: 128x784 float32, y: 128 int64 labels 1..10
--   end
--
-- Reading files (IDX, gzip), gathering a batch's rows and shuffling are C
-- (engine/src/io.c); this file composes them.
return function(nn)
  local raise = nn._raise
  local C = nn._C
--- nn.data: data sets and batching (nn.data.fashion_mnist, nn.data.DataLoader...).
  local data = {}
  nn.data = data

  --- nn.data.idx(path [, {dtype =, scale = 1}]): an IDX file (the MNIST
  -- format), plain or gzip-compressed, as a tensor of the file's shape.
  -- Integer data (uint8, int8, int16, int32) loads as int64 (exact: labels
  -- and pixel values 0..255 as they are), float data as float32/float64;
  -- dtype converts while reading and every value is multiplied by scale:
  -- nn.data.idx(path, {dtype = "float32", scale = 1/255}) gives images in
  -- [0, 1] without an int64 copy in between; {dtype = "uint8"} gives the
  -- bytes as they are (one byte a pixel, as PyTorch's datasets hold them). A bad magic number, a
  -- truncated file or a size that disagrees with the header is an error.
  function data.idx(path, opts)
    if type(path) ~= "string" then raise("idx: expected a file name, got " .. type(path)) end
    opts = opts or {}
    if type(opts) ~= "table" then raise("idx: options must be a table {dtype =, scale =}") end
    if opts.scale ~= nil and type(opts.scale) ~= "number" then raise("idx: scale must be a number") end
    return C.data_read_idx(path, opts.dtype, opts.scale or 1)
  end

  ---------------------------------------------------------------------------
  local TensorDataset = {}
  TensorDataset.__index = TensorDataset
  TensorDataset.__name = "TensorDataset"

  --- nn.data.TensorDataset(x, y, ...): samples are the rows (first
  -- dimension) of tensors that share their first size. ds.tensors is the
  -- list; ds:get(i) -> x[i], y[i], ...; #ds the number of samples.
  -- (A class, as PyTorch's: getmetatable(ds) == nn.data.TensorDataset.)
  data.TensorDataset = setmetatable(TensorDataset, {__call = function(_, ...)
    local tensors = {...}
    if #tensors == 0 then raise("TensorDataset: expected at least one tensor") end
    for i = 1, select("#", ...) do
      local t = tensors[i]
      if not nn.is_tensor(t) then raise(string.format("TensorDataset: argument %d is a %s, not a tensor", i, type(t))) end
      if t:dim() == 0 then raise(string.format("TensorDataset: tensor %d has no rows (0 dimensions)", i)) end
      if t:size(1) ~= tensors[1]:size(1) then
        raise(string.format("TensorDataset: tensor %d has %d rows, tensor 1 has %d", i, t:size(1), tensors[1]:size(1)))
      end
    end
    return setmetatable({tensors = tensors}, TensorDataset)
  end})

  function TensorDataset:__len() return self.tensors[1]:size(1) end
  --- ds:len(): the number of samples, as #ds.
  function TensorDataset:len() return self.tensors[1]:size(1) end

  --- ds:get(i): sample i (1-based) as one value per tensor.
  function TensorDataset:get(i)
    local n = self.tensors[1]:size(1)
    if math.type(i) ~= "integer" or i < 1 or i > n then
      raise(string.format("TensorDataset: index %s is outside 1..%d", tostring(i), n))
    end
    local out = {}
    for k, t in ipairs(self.tensors) do out[k] = t[i] end
    return table.unpack(out, 1, #self.tensors)
  end

  --- ds:slice(first, count): samples first .. first+count-1 as a dataset of
  -- views (no copy), e.g. a quick run's subset.
  function TensorDataset:slice(first, count)
    local n = self.tensors[1]:size(1)
    if math.type(first) ~= "integer" or math.type(count) ~= "integer" or first < 1 or count < 0
       or first + count - 1 > n then
      raise(string.format("TensorDataset:slice: samples %s..%s are outside 1..%d", tostring(first),
        tostring(first and count and first + count - 1), n))
    end
    local views = {}
    for k, t in ipairs(self.tensors) do views[k] = t:narrow(1, first, count) end
    local ds = data.TensorDataset(table.unpack(views))
    for k, v in pairs(self) do if ds[k] == nil and k ~= "tensors" then ds[k] = v end end
    return ds
  end

  function TensorDataset:__tostring()
    local parts = {}
    for k, t in ipairs(self.tensors) do parts[k] = table.concat(t:size(), "x") .. " " .. t.dtype end
    return "TensorDataset(" .. table.concat(parts, ", ") .. ")"
  end

  local function is_tensor_dataset(ds) return getmetatable(ds) == TensorDataset end

  local function dataset_length(ds, op)
    if type(ds) ~= "table" then raise(op .. ": expected a dataset, got " .. type(ds)) end
    local ok, n = pcall(function() return #ds end)
    if not ok or (n == 0 and type(ds.get) ~= "function") then
      raise(op .. ": the dataset needs a length (#ds) and ds:get(i)")
    end
    if math.type(n) ~= "integer" or n < 0 then
      raise(string.format("%s: the dataset's length (#ds) must be a non-negative integer, got %s", op,
        type(n) == "string" and string.format("%q", n) or tostring(n)))
    end
    return n
  end

  ---------------------------------------------------------------------------
  local Subset = {}
  Subset.__index = Subset
  Subset.__name = "Subset"

  --- nn.data.Subset(dataset, indices): the samples of dataset at the given
  -- 1-based indices (a list of integers), without copying anything.
  data.Subset = setmetatable(Subset, {__call = function(_, dataset, indices)
    local n = dataset_length(dataset, "Subset")
    if type(indices) ~= "table" then raise("Subset: indices must be a list of integers") end
    for k, i in ipairs(indices) do
      if math.type(i) ~= "integer" or i < 1 or i > n then
        raise(string.format("Subset: index %d is %s, outside 1..%d", k, tostring(i), n))
      end
    end
    return setmetatable({dataset = dataset, indices = indices}, Subset)
  end})
  function Subset:__len() return #self.indices end
  --- subset:get(i): sample indices[i] of the whole dataset.
  function Subset:get(i) return self.dataset:get(self.indices[i]) end

  -- A seed for a shuffle that did not get one: drawn from nn's generator,
  -- so that nn.manual_seed makes it reproducible (PyTorch's samplers draw
  -- theirs from the default generator in the same way).
  local function draw_seed()
    return math.floor(nn.rand(1, {dtype = "float64"}):item() * 2 ^ 53)
  end

  local function check_seed(seed, op)
    if seed ~= nil and math.type(seed) ~= "integer" then
      raise(op .. ": seed must be an integer, got " .. tostring(seed))
    end
  end

  --- nn.data.random_split(dataset, lengths [, seed]): splits dataset at
  -- random into parts of the given lengths (integers summing to #dataset,
  -- or fractions summing to 1, as PyTorch's random_split: the remainder of
  -- rounding down goes one sample each to the first parts). With a seed the
  -- split is a function of the seed alone; without one the seed is drawn
  -- from nn's generator. A TensorDataset splits into TensorDatasets (rows
  -- copied, contiguous, so batching them stays one gather); any other
  -- dataset into Subsets.
  --   local train, valid = nn.data.random_split(full, {0.9, 0.1}, 42)
  function data.random_split(dataset, lengths, seed)
    local n = dataset_length(dataset, "random_split")
    if type(lengths) ~= "table" or #lengths == 0 then raise("random_split: lengths must be a list of sizes") end
    check_seed(seed, "random_split")
    local sizes, total, fractions = {}, 0, true
    for _, l in ipairs(lengths) do
      if type(l) ~= "number" or l < 0 then raise("random_split: each length must be a non-negative number") end
      if math.type(l) == "integer" and l > 1 then fractions = false end
      total = total + l
    end
    if fractions and math.abs(total - 1) < 1e-9 and n ~= 1 then
      local given = 0
      for i, f in ipairs(lengths) do sizes[i] = math.floor(n * f); given = given + sizes[i] end
      for i = 1, n - given do local k = (i - 1) % #sizes + 1; sizes[k] = sizes[k] + 1 end
    else
      for i, l in ipairs(lengths) do
        if math.type(l) ~= "integer" then raise("random_split: lengths must be integers or fractions summing to 1") end
        sizes[i] = l
      end
      if total ~= n then
        raise(string.format("random_split: the lengths sum to %s, the dataset has %d samples", tostring(total), n))
      end
    end
    local perm = C.data_permutation(n, seed or draw_seed(), 0)
    local parts, first = {}, 1
    for i, size in ipairs(sizes) do
      if is_tensor_dataset(dataset) then
        local pieces = {}
        for k, t in ipairs(dataset.tensors) do pieces[k] = C.data_gather(t, perm, first, size) end
        parts[i] = data.TensorDataset(table.unpack(pieces))
      else
        local idx = {}
        for k = 1, size do idx[k] = perm[first + k - 1]:item() + 1 end
        parts[i] = data.Subset(dataset, idx)
      end
      first = first + size
    end
    return table.unpack(parts)
  end

  ---------------------------------------------------------------------------
  local DataLoader = {}
  DataLoader.__index = DataLoader
  DataLoader.__name = "DataLoader"

  --- nn.data.DataLoader(dataset, {batch_size = 1, shuffle = false,
  -- drop_last = false, seed, reuse = false, sampler}): batches of a dataset.
  --   for x, y in loader:iter() do ... end
  -- Each batch is a new tensor per dataset tensor (batch_size rows; the
  -- last one smaller unless drop_last), gathered in one C loop from a
  -- TensorDataset's rows, and a batch the caller keeps stays valid.
  -- reuse = true (default false) refills the previous batch's tensors in
  -- place instead, Torch7-style, whenever nothing else holds them (no view
  -- of them, no autograd graph that saved them): no allocation per batch,
  -- but a batch is then valid only until the next one is drawn (keep one
  -- with x:clone()). Any other dataset (with #ds and ds:get(i) returning
  -- tensors or numbers) is collated sample by sample, which is slower.
  -- Shuffling: each iter() is one epoch with a new order. With a seed, the
  -- order of epoch e is a function of (seed, e) alone, from the loader's
  -- own generator: it neither uses nor disturbs nn.manual_seed's stream,
  -- and a run resumed after k epochs calls loader:set_epoch(k + 1) to continue it.
  -- Without a seed each epoch's order is seeded by a draw from nn's
  -- generator, as PyTorch's DataLoader does, so nn.manual_seed (and a
  -- checkpoint's RNG state) makes it reproducible.
  -- sampler (instead of shuffle) decides which samples an epoch takes, in
  -- which order: an object with sampler:indices() (an int64 tensor, or a
  -- list, of 1-based dataset indices), #sampler, and optionally
  -- sampler:set_epoch(e), which the loader calls at every iter() with the
  -- epoch's number (so loader:set_epoch drives it): nn.distributed.Sampler
  -- gives each rank its share.
  data.DataLoader = setmetatable(DataLoader, {__call = function(_, dataset, opts)
    local n = dataset_length(dataset, "DataLoader")
    opts = opts or {}
    if type(opts) ~= "table" then raise("DataLoader: options must be a table {batch_size =, shuffle =, ...}") end
    local known = {batch_size = true, shuffle = true, drop_last = true, seed = true, reuse = true, sampler = true}
    for k in pairs(opts) do
      if not known[k] then raise("DataLoader: unknown option '" .. tostring(k) .. "'") end
    end
    local batch_size = opts.batch_size or 1
    if math.type(batch_size) ~= "integer" or batch_size < 1 then
      raise("DataLoader: batch_size must be a positive integer, got " .. tostring(batch_size))
    end
    check_seed(opts.seed, "DataLoader")
    local sampler = opts.sampler
    if sampler ~= nil then
      if opts.shuffle then raise("DataLoader: give sampler or shuffle, not both (the sampler decides the order)") end
      local ok, count = pcall(function() return #sampler end)
      if type(sampler) ~= "table" or type(sampler.indices) ~= "function" or not ok or math.type(count) ~= "integer" then
        raise("DataLoader: sampler must have sampler:indices() and a length (#sampler), got " .. type(sampler))
      end
    end
    return setmetatable({dataset = dataset, batch_size = batch_size, shuffle = opts.shuffle and true or false,
                         drop_last = opts.drop_last and true or false, seed = opts.seed, epoch = 0,
                         _next_epoch = 1, size = n, sampler = sampler,
                         reuse = opts.reuse and true or false}, DataLoader)
  end})

  --- #loader: the number of batches in one epoch.
  function DataLoader:__len()
    local n = self.sampler and #self.sampler or dataset_length(self.dataset, "DataLoader")
    if self.drop_last then return n // self.batch_size end
    return (n + self.batch_size - 1) // self.batch_size
  end

  --- loader:set_epoch(e): the next iter() is epoch e, the ones after it
  -- e + 1, e + 2, ... (without set_epoch the first iter() is epoch 1).
  -- With a seed, the shuffle order of epoch e is a function of (seed, e)
  -- alone, as with PyTorch's DistributedSampler.set_epoch(epoch): calling
  -- loader:set_epoch(epoch) at the top of every epoch changes nothing, and
  -- a run resumed after k finished epochs calls loader:set_epoch(k + 1) to
  -- see the very orders the uninterrupted run saw. loader.epoch is the
  -- epoch of the latest iter() (0 before the first).
  function DataLoader:set_epoch(e)
    if math.type(e) ~= "integer" or e < 0 then
      raise("DataLoader:set_epoch: expected a non-negative integer, got " .. tostring(e))
    end
    self._next_epoch = e
  end

  -- One sample's values, collated over the batch's indices.
  local function collate(dataset, order, first, count)
    local columns
    for k = 1, count do
      local i = order and (order[first + k - 1]) or (first + k - 1)
      local sample = table.pack(dataset:get(i))
      columns = columns or {}
      for c = 1, sample.n do
        columns[c] = columns[c] or {}
        local v = sample[c]
        columns[c][k] = nn.is_tensor(v) and v:totable() or v
        columns[c].dtype = columns[c].dtype or (nn.is_tensor(v) and v.dtype or nil)
      end
    end
    local out = {}
    for c, col in ipairs(columns or {}) do
      local dtype = col.dtype
      col.dtype = nil
      out[c] = nn.tensor(col, dtype and {dtype = dtype} or nil)
    end
    return table.unpack(out)
  end

  --- loader:iter(): an iterator over one epoch's batches.
  function DataLoader:iter()
    local dataset, bs, n = self.dataset, self.batch_size, dataset_length(self.dataset, "DataLoader")
    self.epoch, self._next_epoch = self._next_epoch, self._next_epoch + 1
    local perm
    if self.sampler then
      local sampler = self.sampler
      if sampler.set_epoch then sampler:set_epoch(self.epoch) end
      local indices = sampler:indices()
      if not nn.is_tensor(indices) then indices = nn.tensor(indices, {dtype = "int64"}) end
      if indices.dtype ~= "int64" or indices:dim() ~= 1 then
        raise("DataLoader: sampler:indices() must give a list or a 1-dimensional int64 tensor of indices")
      end
      if indices:numel() > 0 and (indices:min():item() < 1 or indices:max():item() > n) then
        raise(string.format("DataLoader: the sampler gave an index outside 1..%d", n))
      end
      perm, n = indices - 1, indices:numel()
    elseif self.shuffle then
      if self.seed ~= nil then
        perm = C.data_permutation(n, self.seed, self.epoch)
      else
        perm = C.data_permutation(n, draw_seed(), 0)
      end
    end
    local nbatches = self.drop_last and n // bs or (n + bs - 1) // bs
    local b = 0
    if is_tensor_dataset(dataset) then
      local tensors = dataset.tensors
      local ntensors = #tensors
      if not perm then
        self._identity = self._identity ~= nil and self._identity:numel() == n and self._identity
                         or nn.arange(0, n, {dtype = "int64"})
        perm = self._identity
      end
      local gather, gather_reuse = C.data_gather, C.data_gather_reuse
      if self.reuse then
        local out = {}
        return function()
          b = b + 1
          if b > nbatches then return nil end
          local first = (b - 1) * bs + 1
          local count = math.min(bs, n - first + 1)
          for k = 1, ntensors do out[k] = gather_reuse(out[k], tensors[k], perm, first, count) end
          return table.unpack(out, 1, ntensors)
        end
      end
      if ntensors == 2 then -- the common (x, y) case, without a table per batch
        -- The next batch's inputs are copied by a background thread while
        -- the caller trains on this one, so loading does not show in the
        -- epoch's time; the labels are small and gathered on the spot.
        local tx, ty = tensors[1], tensors[2]
        local start, finish = C.data_gather_start, C.data_gather_finish
        local pending
        return function()
          b = b + 1
          if b > nbatches then return nil end
          local first = (b - 1) * bs + 1
          local count = math.min(bs, n - first + 1)
          local x = pending and finish(pending) or gather(tx, perm, first, count)
          pending = nil
          if b < nbatches then
            local next_first = first + bs
            pending = start(tx, perm, next_first, math.min(bs, n - next_first + 1))
          end
          return x, gather(ty, perm, first, count)
        end
      end
      local out = {}
      return function()
        b = b + 1
        if b > nbatches then return nil end
        local first = (b - 1) * bs + 1
        local count = math.min(bs, n - first + 1)
        for k = 1, ntensors do out[k] = gather(tensors[k], perm, first, count) end
        return table.unpack(out, 1, ntensors)
      end
    end
    local order
    if perm then
      order = {}
      for i, v in ipairs(perm:totable()) do order[i] = v + 1 end
    end
    return function()
      b = b + 1
      if b > nbatches then return nil end
      local first = (b - 1) * bs + 1
      return collate(dataset, order, first, math.min(bs, n - first + 1))
    end
  end

  ---------------------------------------------------------------------------
  -- The class names of labels 1..10, in the data set's order.
  data.fashion_mnist_classes = {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal",
                                "Shirt", "Sneaker", "Bag", "Ankle boot"}

  local function find_file(dir, name)
    for _, candidate in ipairs {dir .. "/" .. name .. ".gz", dir .. "/" .. name} do
      local f = io.open(candidate, "rb")
      if f then f:close(); return candidate end
    end
    raise(string.format("fashion_mnist: %s/%s(.gz) not found (install Debian's dataset-fashion-mnist, "
      .. "or give the directory that holds the files)", dir, name))
  end

  --- nn.data.fashion_mnist([dir | {dir =, flatten = true}]): Fashion-MNIST
  -- (Xiao, Rasul and Vollgraf, 2017) from Debian's dataset-fashion-mnist
  -- package (/usr/share/datasets/fashion-mnist; dir, or the environment
  -- variable NN_FASHION_MNIST, points elsewhere; .gz or plain files).
  -- Returns train (60000 samples), test (10000), classes (the ten names):
  -- train and test are TensorDatasets of images, float32 scaled to [0, 1],
  -- N x 784 (what an MLP takes; flatten = false gives N x 28 x 28), and
  -- labels, int64 1..10 (classes[label] names it, as CrossEntropyLoss takes
  -- them); ds.images and ds.labels name the two tensors. dtype = "uint8"
  -- keeps the images as their bytes, 0..255, as torchvision's
  -- FashionMNIST(...).data holds them (a quarter of float32's memory).
  --   local train = nn.data.fashion_mnist({dtype = "uint8", flatten = false})
  function data.fashion_mnist(opts)
    if type(opts) == "string" then opts = {dir = opts} end
    opts = opts or {}
    if type(opts) ~= "table" then raise("fashion_mnist: expected a directory or {dir =, flatten =, dtype =}") end
    local dir = opts.dir or os.getenv("NN_FASHION_MNIST") or "/usr/share/datasets/fashion-mnist"
    local flatten = opts.flatten ~= false
    local dtype = opts.dtype or "float32"
    if dtype ~= "float32" and dtype ~= "uint8" then
      raise(string.format("fashion_mnist: dtype must be \"float32\" or \"uint8\", got %s", tostring(dtype)))
    end
    local function load(prefix)
      local images = data.idx(find_file(dir, prefix .. "-images-idx3-ubyte"),
        {dtype = dtype, scale = dtype == "uint8" and 1 or 1 / 255})
      local labels = data.idx(find_file(dir, prefix .. "-labels-idx1-ubyte")) + 1
      if images:dim() ~= 3 or labels:dim() ~= 1 or images:size(1) ~= labels:size(1) then
        raise(string.format("fashion_mnist: %s: images %s and labels %s do not match", prefix,
          table.concat(images:size(), "x"), table.concat(labels:size(), "x")))
      end
      if flatten then images = images:view(images:size(1), -1) end
      local ds = data.TensorDataset(images, labels)
      ds.images, ds.labels = images, labels
      return ds
    end
    local classes = {}
    for i, name in ipairs(data.fashion_mnist_classes) do classes[i] = name end
    return load("train"), load("t10k"), classes
  end

  ---------------------------------------------------------------------------
  local function split_line(line, sep)
    local fields, start = {}, 1
    while true do
      local i = line:find(sep, start, true)
      if not i then fields[#fields + 1] = line:sub(start); return fields end
      fields[#fields + 1] = line:sub(start, i - 1)
      start = i + #sep
    end
  end

  local function trim(s) return (s:gsub("^%s+", ""):gsub("%s+$", ""):gsub('^"(.*)"$', "%1")) end

  --- nn.data.csv(path, {features =, target =, dtype = "float32",
  -- target_dtype =, delimiter = ","}): a numeric CSV file whose first row
  -- names the columns. Returns x (rows x features), y and the feature
  -- names. features: a list of column names or 1-based positions (default:
  -- every column but the target); target: one name or position (y has one
  -- dimension), a list of them (y is rows x targets), or nil (y is nil).
  -- target_dtype defaults to dtype ("int64" suits class labels). delimiter
  -- is one character ("\t" for TSV). A cell that is not a number is an
  -- error naming its line and column.
  function data.csv(path, opts)
    if type(path) ~= "string" then raise("csv: expected a file name, got " .. type(path)) end
    opts = opts or {}
    if type(opts) ~= "table" then raise("csv: options must be a table {features =, target =, ...}") end
    local sep = opts.delimiter or ","
    -- One character, as Python's csv requires: an empty one would split
    -- nowhere (the reader would never advance), and a line never holds a
    -- line break. A UTF-8 character of several bytes counts as one.
    if type(sep) ~= "string" or utf8.len(sep) ~= 1 or sep == "\n" or sep == "\r" then
      raise(string.format("csv: delimiter must be one character other than a line break (as in Python's csv), got %s",
        type(sep) == "string" and string.format("%q", sep):gsub("\\\n", "\\n") or type(sep)))
    end
    local f, err = io.open(path, "r")
    if not f then raise("csv: cannot open " .. tostring(err)) end
    local header_line = f:read("l")
    if not header_line then f:close(); raise("csv: " .. path .. " is empty (expected a header row)") end
    local names = split_line(header_line:gsub("\r$", ""), sep)
    for i, name in ipairs(names) do names[i] = trim(name) end
    local function column(spec, what)
      if math.type(spec) == "integer" then
        if spec < 1 or spec > #names then
          f:close()
          raise(string.format("csv: %s column %d is outside 1..%d", what, spec, #names))
        end
        return spec
      end
      for i, name in ipairs(names) do if name == spec then return i end end
      f:close()
      raise(string.format("csv: %s column '%s' is not in the header (%s)", what, tostring(spec), table.concat(names, ", ")))
    end
    local target_cols, single_target = {}, false
    if opts.target ~= nil then
      if type(opts.target) == "table" then
        for k, spec in ipairs(opts.target) do target_cols[k] = column(spec, "target") end
      else
        target_cols[1] = column(opts.target, "target"); single_target = true
      end
    end
    local feature_cols = {}
    if opts.features ~= nil then
      for k, spec in ipairs(opts.features) do feature_cols[k] = column(spec, "feature") end
    else
      local is_target = {}
      for _, c in ipairs(target_cols) do is_target[c] = true end
      for i = 1, #names do if not is_target[i] then feature_cols[#feature_cols + 1] = i end end
    end
    local xs, ys, lineno = {}, {}, 1
    for line in f:lines() do
      lineno = lineno + 1
      line = line:gsub("\r$", "")
      if line:match("%S") then
        local cells = split_line(line, sep)
        if #cells ~= #names then
          f:close()
          raise(string.format("csv: %s:%d has %d fields, the header %d", path, lineno, #cells, #names))
        end
        local function value(c)
          local v = tonumber(trim(cells[c]))
          if v == nil then
            f:close()
            raise(string.format("csv: %s:%d: column '%s' holds '%s', not a number", path, lineno, names[c], cells[c]))
          end
          return v
        end
        local row = {}
        for k, c in ipairs(feature_cols) do row[k] = value(c) end
        xs[#xs + 1] = row
        if #target_cols > 0 then
          if single_target then ys[#ys + 1] = value(target_cols[1])
          else
            local t = {}
            for k, c in ipairs(target_cols) do t[k] = value(c) end
            ys[#ys + 1] = t
          end
        end
      end
    end
    f:close()
    if #xs == 0 then raise("csv: " .. path .. " has a header but no rows") end
    local dtype = opts.dtype or "float32"
    local x = #feature_cols > 0 and nn.tensor(xs, {dtype = dtype}) or nil
    local y = #target_cols > 0 and nn.tensor(ys, {dtype = opts.target_dtype or dtype}) or nil
    local feature_names = {}
    for k, c in ipairs(feature_cols) do feature_names[k] = names[c] end
    return x, y, feature_names
  end

  ---------------------------------------------------------------------------
  --- nn.data.fortune_files: the text files of Debian's fortunes package
  -- (English fortune cookies; /usr/share/games/fortunes), by name, without
  -- their .dat and .u8 indexes.
  data.fortune_files = {"art", "ascii-art", "computers", "cookie", "debian", "definitions",
    "disclaimer", "drugs", "education", "ethnic", "food", "fortunes", "goedel", "humorists", "kids",
    "knghtbrd", "law", "linux", "linuxcookie", "literature", "love", "magic", "medicine",
    "men-women", "miscellaneous", "news", "paradoxum", "people", "perl", "pets", "platitudes",
    "politics", "pratchett", "riddles", "science", "songs-poems", "sports", "startrek", "tao",
    "translate-me", "wisdom", "work", "zippy"}

  --- nn.data.fortunes([{dir =, files =, exclude = {"art", "ascii-art"}}]) -> list of strings:
  -- the fortunes of Debian's fortunes package (dir, or the environment
  -- variable NN_FORTUNES, points elsewhere), one string each, in file
  -- order: the text between the lines holding only "%" (the separators),
  -- with its last newline dropped, tabs as written, and only printable
  -- ASCII and newlines kept. files: the names to read (default
  -- nn.data.fortune_files); exclude: names left out (by default the two
  -- of ASCII pictures). Of the default list, the files present are read
  -- (Debian's fortunes-min has only "fortunes"); a file named in files
  -- that is missing is an error.
  function data.fortunes(opts)
    opts = nn._options("fortunes", opts, {"dir", "files", "exclude"})
    local dir = opts.dir or os.getenv("NN_FORTUNES") or "/usr/share/games/fortunes"
    local skip = {}
    for _, name in ipairs(opts.exclude or {"art", "ascii-art"}) do skip[name] = true end
    local list, read = {}, 0
    for _, name in ipairs(opts.files or data.fortune_files) do
      local path = dir .. "/" .. name
      -- the default list takes the files present: fortunes-min has only "fortunes"
      local f = not skip[name] and io.open(path, "rb")
      if not f and opts.files and not skip[name] then
        raise("fortunes: cannot read " .. path .. " (install Debian's fortunes package, or set NN_FORTUNES)")
      end
      if f then
        read = read + 1
        local text = f:read("a"):gsub("\r\n", "\n"):gsub("[^\t\n\32-\126]", "")
        f:close()
        for fortune in (text .. "\n%\n"):gmatch("(.-)\n%%\n") do
          fortune = fortune:gsub("^\n+", "")
          if fortune:find("%S") then list[#list + 1] = fortune end
        end
      end
    end
    if read == 0 then
      raise("fortunes: no fortune files in " .. dir .. " (install Debian's fortunes package, or set NN_FORTUNES)")
    end
    if #list == 0 then raise("fortunes: no fortunes found in " .. dir) end
    return list
  end

  --- nn.data.fortune_texts([{dir =, fraction = 1, validation_every = 20}]) ->
  -- training text, validation text, and how many fortunes each holds: the fortunes of nn.data.fortunes(dir)
  -- split for a character model: every validation_every-th fortune goes to
  -- validation, the rest to training, each side joined with a blank line
  -- (and ended by one), so that a model learns where a fortune ends.
  -- fraction keeps only every (1 / fraction)-th fortune first (a quick run
  -- on a part of the text). The LSTM and Transformer lessons read the same
  -- texts through it, so that their losses compare.
  --   local train, valid = nn.data.fortune_texts{fraction = 0.1}
  function data.fortune_texts(opts)
    opts = nn._options("fortune_texts", opts, {"dir", "fraction", "validation_every"})
    local fraction, every = opts.fraction or 1, opts.validation_every or 20
    if type(fraction) ~= "number" or not (fraction > 0 and fraction <= 1) then
      raise("fortune_texts: fraction must be a number in (0, 1], got " .. tostring(fraction))
    end
    if math.type(every) ~= "integer" or every < 2 then
      raise("fortune_texts: validation_every must be a whole number >= 2, got " .. tostring(every))
    end
    local stride = math.floor(1 / fraction)
    local train, valid = {}, {}
    for i, fortune in ipairs(data.fortunes{dir = opts.dir}) do
      if i % stride == 0 then
        local parts = (i // stride) % every == 0 and valid or train
        parts[#parts + 1] = fortune
      end
    end
    return table.concat(train, "\n\n") .. "\n\n", table.concat(valid, "\n\n") .. "\n\n", #train, #valid
  end

  -- The methods of the datasets and loaders refuse arguments they do not
  -- take, as nn's public functions do (these classes are not in nn's tables).
  for _, class in ipairs({TensorDataset, Subset, DataLoader}) do nn._check_counts(class) end
end

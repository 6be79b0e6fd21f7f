-- Recurrent layers (PyTorch 1.13's torch/nn/modules/rnn.py): nn.RNN,
-- nn.LSTM, nn.GRU and their cells, nn.utils.rnn's padded and packed
-- sequences, and nn.F.one_hot. Each layer's direction is one call of the
-- engine's rnn_layer (engine/src/rnn.c): the input's products for every
-- step as one GEMM (F.linear) before it, then one GEMM of the hidden
-- state and one fused cell kernel per step inside it.
return function(nn)
  local raise = nn._raise
  local Module, F, C = nn.Module, nn.F, nn._C

  local function python_bool(b) return b and "True" or "False" end

  local function shape_text(t)
    local parts = {}
    for i = 1, t:dim() do parts[i] = tostring(t:size(i)) end
    return "(" .. table.concat(parts, ", ") .. ")"
  end

  local function check_size(value, what, op, allow_zero)
    if math.type(value) ~= "integer" or value < (allow_zero and 0 or 1) then
      raise(string.format("%s: %s must be a %s integer, got %s", op, what,
        allow_zero and "non-negative" or "positive", tostring(value)))
    end
  end

  local function check_bool(value, what, op)
    if type(value) ~= "boolean" then
      raise(string.format("%s: %s must be a boolean, got %s", op, what, tostring(value)))
    end
    return value
  end

  local function check_tensor(x, what, op)
    if not nn.is_tensor(x) then
      raise(string.format("%s: %s must be a tensor, got %s", op, what, type(x)))
    end
    return x
  end

  ---------------------------------------------------------------------------
  -- nn.utils.rnn: variable lengths

  nn.utils = nn.utils or {}
  --- nn.utils.rnn: sequences of different lengths for the recurrent layers:
  -- pad_sequence, pack_padded_sequence, pad_packed_sequence, pack_sequence,
  -- and the PackedSequence they make, which nn.RNN, nn.LSTM and nn.GRU
  -- take in place of a padded batch (each sequence's final state is then
  -- the one at its own length).
  local rnn_utils = {}
  nn.utils.rnn = rnn_utils

  local PackedSequence = {__name = "PackedSequence"}
  PackedSequence.__index = PackedSequence

  --- nn.utils.rnn.PackedSequence(data, batch_sizes [, sorted_indices, unsorted_indices]):
  -- a batch of sequences packed step by step, as PyTorch's: data holds the
  -- rows of step 1 (one per sequence still running), then of step 2, ...;
  -- batch_sizes (int64, on the cpu) how many run at each step, never
  -- increasing; sorted_indices the batch's order by length, longest first
  -- (1-based, as every nnlua index), unsorted_indices its inverse (nil
  -- when the batch was sorted already). Fields: data, batch_sizes,
  -- sorted_indices, unsorted_indices.
  function rnn_utils.PackedSequence(data, batch_sizes, sorted_indices, unsorted_indices)
    check_tensor(data, "data", "PackedSequence")
    check_tensor(batch_sizes, "batch_sizes", "PackedSequence")
    if batch_sizes.dtype ~= "int64" or batch_sizes.device ~= "cpu" or batch_sizes:dim() ~= 1 then
      raise("PackedSequence: batch_sizes must be an int64 vector on the cpu")
    end
    local sizes = batch_sizes:totable()
    for t = 2, #sizes do
      if sizes[t] > sizes[t - 1] or sizes[t] < 1 then
        raise("PackedSequence: batch_sizes must be positive and never increase")
      end
    end
    return setmetatable({data = data, batch_sizes = batch_sizes, sorted_indices = sorted_indices,
                         unsorted_indices = unsorted_indices or sorted_indices and
                           nn.argsort(sorted_indices), _sizes = sizes}, PackedSequence)
  end

  --- nn.utils.rnn.is_packed(x): whether x is a PackedSequence.
  function rnn_utils.is_packed(x) return getmetatable(x) == PackedSequence end
  local is_packed = rnn_utils.is_packed

  function PackedSequence:__tostring()
    return string.format("PackedSequence(data=%s, batch_sizes=%s)", shape_text(self.data),
      tostring(self.batch_sizes):gsub("\n", " "))
  end

  --- ps:to(device): the same sequence with its data (and indices) on device;
  -- batch_sizes stays on the cpu, as in PyTorch.
  function PackedSequence:to(device)
    local moved = setmetatable({}, PackedSequence)
    for k, v in pairs(self) do moved[k] = v end
    moved.data = self.data:to(device)
    return moved
  end

  -- a Lua list of positive integers from a table or an integer tensor
  local function lengths_list(lengths, op)
    if nn.is_tensor(lengths) then
      if lengths:dim() ~= 1 then raise(op .. ": lengths must be a 1-dimensional tensor or a list") end
      lengths = lengths:to("cpu"):totable()
    end
    if type(lengths) ~= "table" then raise(op .. ": lengths must be a list or a tensor, got " .. type(lengths)) end
    local out = {}
    for i, v in ipairs(lengths) do
      if math.type(v) ~= "integer" and not (type(v) == "number" and v == math.floor(v)) then
        raise(string.format("%s: length %d is %s, not a whole number", op, i, tostring(v)))
      end
      v = math.tointeger(v)
      if v < 1 then raise(string.format("%s: length %d is %d; every sequence needs at least one step", op, i, v)) end
      out[i] = v
    end
    return out
  end

  local function int64(list) return nn.tensor(list, {dtype = "int64"}) end

  -- opts given positionally (PyTorch's order) or as one table; fixed: the
  -- names of the arguments before them (for the message of too many)
  local function positional(op, fixed, known, ...)
    local first = ...
    if type(first) == "table" and select("#", ...) == 1 then return nn._options(op, first, known) end
    local args = table.pack(...)
    while args.n > #known and args[args.n] == nil do args.n = args.n - 1 end
    if args.n > #known then
      nn._raise(nn._too_many_arguments(op, #fixed + #known, table.concat(fixed, ", ") .. ", " ..
        table.concat(known, ", "), #fixed + args.n))
    end
    local opts = {}
    for i = 1, #known do opts[known[i]] = args[i] end
    return opts
  end

  --- nn.utils.rnn.pad_sequence(sequences [, batch_first = false [, padding_value = 0]]):
  -- a list of tensors (L_i x *) as one (max L x B x *) tensor (B x max L x *
  -- with batch_first), the shorter ones padded with padding_value.
  function rnn_utils.pad_sequence(sequences, ...)
    local op = "pad_sequence"
    local opts = positional(op, {"sequences"}, {"batch_first", "padding_value"}, ...)
    if type(sequences) ~= "table" or #sequences == 0 then raise(op .. ": expected a non-empty list of tensors") end
    local longest = 0
    for i, s in ipairs(sequences) do
      check_tensor(s, "sequence " .. i, op)
      if s:dim() < 1 then raise(op .. ": sequence " .. i .. " has no length dimension") end
      longest = math.max(longest, s:size(1))
    end
    local padded = {}
    for i, s in ipairs(sequences) do
      local pad = longest - s:size(1)
      if pad > 0 then
        local shape = s:size()
        shape[1] = pad
        s = nn.cat({s, nn.full(shape, opts.padding_value or 0, {dtype = s.dtype, device = s.device})}, 1)
      end
      padded[i] = s
    end
    return nn.stack(padded, opts.batch_first and 1 or 2)
  end

  --- nn.utils.rnn.pack_padded_sequence(input, lengths [, batch_first = false [, enforce_sorted = true]]):
  -- a PackedSequence of the padded batch input (T x B x *, or B x T x *
  -- with batch_first) whose sequence b has lengths[b] steps. With
  -- enforce_sorted the lengths must not increase; otherwise the batch is
  -- sorted, longest first, and the indices kept for unpacking.
  function rnn_utils.pack_padded_sequence(input, lengths, ...)
    local op = "pack_padded_sequence"
    local opts = positional(op, {"input", "lengths"}, {"batch_first", "enforce_sorted"}, ...)
    check_tensor(input, "input", op)
    local len = lengths_list(lengths, op)
    if input:dim() < 2 then raise(op .. ": input must have a time and a batch dimension, got " .. shape_text(input)) end
    if opts.batch_first then input = input:transpose(1, 2) end
    local T, B = input:size(1), input:size(2)
    if #len ~= B then
      raise(string.format("%s: %d lengths for a batch of %d sequences", op, #len, B))
    end
    local order = {}
    for i = 1, B do
      order[i] = i
      if len[i] > T then
        raise(string.format("%s: length %d is %d, longer than the input's %d steps", op, i, len[i], T))
      end
    end
    local sorted_indices
    if opts.enforce_sorted == nil or opts.enforce_sorted then
      for i = 2, B do
        if len[i] > len[i - 1] then
          raise(op .. ": lengths must be sorted in decreasing order when enforce_sorted is true " ..
            "(pass enforce_sorted = false to have them sorted)")
        end
      end
    else
      table.sort(order, function(a, b) return len[a] > len[b] or (len[a] == len[b] and a < b) end)
      sorted_indices = int64(order)
      input = input:index_select(2, sorted_indices:to(input.device))
    end
    local sizes, pieces = {}, {}
    for t = 1, len[order[1]] do
      local n = 0
      for _, b in ipairs(order) do if len[b] >= t then n = n + 1 end end
      sizes[t] = n
      pieces[t] = input:select(1, t):narrow(1, 1, n)
    end
    return rnn_utils.PackedSequence(nn.cat(pieces, 1), int64(sizes), sorted_indices)
  end

  --- nn.utils.rnn.pad_packed_sequence(sequence [, batch_first = false [, padding_value = 0 [, total_length]]]):
  -- the inverse of pack_padded_sequence: returns the padded batch (T x B x
  -- *, T the longest length or total_length) in the batch's own order,
  -- and the lengths (int64).
  function rnn_utils.pad_packed_sequence(sequence, ...)
    local op = "pad_packed_sequence"
    local opts = positional(op, {"sequence"}, {"batch_first", "padding_value", "total_length"}, ...)
    if not is_packed(sequence) then raise(op .. ": expected a PackedSequence, got " .. type(sequence)) end
    local data, sizes = sequence.data, sequence._sizes
    local B, T = sizes[1], #sizes
    local total_length = opts.total_length or T
    if total_length < T then
      raise(string.format("%s: total_length is %d but the longest sequence has %d steps", op, total_length, T))
    end
    local row_shape = data:size()
    local function padding(rows)
      row_shape[1] = rows
      return nn.full(row_shape, opts.padding_value or 0, {dtype = data.dtype, device = data.device})
    end
    local steps, first = {}, 1
    for t = 1, T do
      local rows = data:narrow(1, first, sizes[t])
      first = first + sizes[t]
      if sizes[t] < B then rows = nn.cat({rows, padding(B - sizes[t])}, 1) end
      steps[t] = rows
    end
    for t = T + 1, total_length do steps[t] = padding(B) end
    local padded = nn.stack(steps, 1)
    local lengths = {}
    for b = 1, B do
      local n = 0
      for t = 1, T do if sizes[t] >= b then n = n + 1 end end
      lengths[b] = n
    end
    if sequence.unsorted_indices then
      padded = padded:index_select(2, sequence.unsorted_indices:to(padded.device))
      local original = {}
      for b, i in ipairs(sequence.unsorted_indices:totable()) do original[b] = lengths[i] end
      lengths = original
    end
    if opts.batch_first then padded = padded:transpose(1, 2) end
    return padded, int64(lengths)
  end

  --- nn.utils.rnn.pack_sequence(sequences [, enforce_sorted = true]): a
  -- PackedSequence of a list of tensors (L_i x *).
  function rnn_utils.pack_sequence(sequences, enforce_sorted)
    if type(sequences) ~= "table" then raise("pack_sequence: expected a list of tensors") end
    local lengths = {}
    for i, s in ipairs(sequences) do
      check_tensor(s, "sequence " .. i, "pack_sequence")
      lengths[i] = s:size(1)
    end
    if enforce_sorted == nil then enforce_sorted = true end
    return rnn_utils.pack_padded_sequence(rnn_utils.pad_sequence(sequences), lengths, false, enforce_sorted)
  end

  ---------------------------------------------------------------------------
  -- nn.F.one_hot

  --- nn.F.one_hot(labels [, num_classes]): an int64 tensor with one more
  -- dimension of num_classes, 1 at each label's place and 0 elsewhere.
  -- Labels count from 1, as nnlua's class labels do (PyTorch's from 0);
  -- num_classes defaults to the largest label.
  function F.one_hot(labels, num_classes)
    check_tensor(labels, "labels", "one_hot")
    if labels.dtype ~= "int64" then raise("one_hot: labels must be int64, got " .. labels.dtype) end
    if num_classes == nil or num_classes == -1 then
      if labels:numel() == 0 then raise("one_hot: cannot infer num_classes from an empty tensor") end
      num_classes = labels:max():item()
    end
    check_size(num_classes, "num_classes", "one_hot")
    if labels:numel() > 0 then
      local low, high = labels:min():item(), labels:max():item()
      if low < 1 or high > num_classes then
        raise(string.format("one_hot: labels must lie in 1..%d, got %d", num_classes, low < 1 and low or high))
      end
    end
    local classes = nn.arange(1, num_classes + 1, {dtype = "int64"}):to(labels.device)
    return labels:unsqueeze(-1):eq(classes):to("int64")
  end

  ---------------------------------------------------------------------------
  -- The layers

  local gates = {RNN = 1, LSTM = 4, GRU = 3}
  local op_names = {RNN = "rnn", LSTM = "lstm", GRU = "gru", RNNCell = "rnn_cell",
                    LSTMCell = "lstm_cell", GRUCell = "gru_cell"}

  local function engine_mode(kind, nonlinearity)
    if kind == "LSTM" then return "lstm" elseif kind == "GRU" then return "gru" end
    return nonlinearity == "relu" and "rnn_relu" or "rnn_tanh"
  end

  -- weight_hh flattened, with bias_hh after it: what rnn_layer takes
  local function hidden_weights(w_hh, b_hh)
    local flat = w_hh:reshape(-1)
    if b_hh then return nn.cat({flat, b_hh}, 1) end
    return flat
  end

  -- one direction of one layer: (output rows, h_n, c_n)
  local function run_layer(mode, x, w_ih, w_hh, b_ih, b_hh, h0, c0, batch_sizes, total, reverse)
    local state = c0 and nn.cat({h0, c0}, 1) or h0
    local out = C.rnn_layer(mode, F.linear(x, w_ih, b_ih), state, hidden_weights(w_hh, b_hh),
      batch_sizes, reverse)
    local B = h0:size(1)
    return out:narrow(1, 1, total), out:narrow(1, total + 1, B),
      c0 and out:narrow(1, total + B + 1, B) or nil
  end

  -- One direction of one layer of an LSTM with projections (PyTorch's
  -- proj_size, Sak et al., 2014): h_t = W_hr (o_t * tanh(c_t)), so that h
  -- (P values) and c (H values) differ in size and the engine's fused
  -- layer, whose state is one size, does not apply: each step is made of
  -- ops (one GEMM of the hidden state, the cell's pointwise ops, one GEMM
  -- of the projection), recorded by autograd. sizes: the rows of each step
  -- (packed: never increasing). Returns the output rows, h_n and c_n.
  local function run_projected_layer(x, w_ih, w_hh, b_ih, b_hh, w_hr, h0, c0, sizes, reverse)
    local xg = F.linear(x, w_ih, b_ih)
    local T, first, row = #sizes, {}, 1
    for t = 1, T do first[t], row = row, row + sizes[t] end
    local outs, h_parts, c_parts = {}, {}, {}
    local h, c = nil, nil
    for i = 1, T do
      local t = reverse and T - i + 1 or i
      local rows = sizes[t]
      if h == nil then
        h, c = h0:narrow(1, 1, rows), c0:narrow(1, 1, rows)
      elseif rows < h:size(1) then -- sequences that ended: their state is final
        local done = h:size(1) - rows
        table.insert(h_parts, 1, h:narrow(1, rows + 1, done))
        table.insert(c_parts, 1, c:narrow(1, rows + 1, done))
        h, c = h:narrow(1, 1, rows), c:narrow(1, 1, rows)
      elseif rows > h:size(1) then -- reversed: sequences start from their h0
        local more = rows - h:size(1)
        h = nn.cat({h, h0:narrow(1, h:size(1) + 1, more)}, 1)
        c = nn.cat({c, c0:narrow(1, c:size(1) + 1, more)}, 1)
      end
      local gates = xg:narrow(1, first[t], rows) + F.linear(h, w_hh, b_hh)
      local i_g, f_g, g_g, o_g = table.unpack(gates:chunk(4, 2))
      c = f_g:sigmoid() * c + i_g:sigmoid() * g_g:tanh()
      h = F.linear(o_g:sigmoid() * c:tanh(), w_hr)
      outs[t] = h
    end
    table.insert(h_parts, 1, h)
    table.insert(c_parts, 1, c)
    local h_n = #h_parts > 1 and nn.cat(h_parts, 1) or h
    local c_n = #c_parts > 1 and nn.cat(c_parts, 1) or c
    return nn.cat(outs, 1), h_n, c_n
  end

  local function check_nonlinearity(nonlinearity, op)
    if nonlinearity ~= "tanh" and nonlinearity ~= "relu" then
      raise(string.format("%s: nonlinearity must be 'tanh' or 'relu', got %s", op, tostring(nonlinearity)))
    end
  end

  --- nn.RNNBase: the class nn.RNN, nn.LSTM and nn.GRU derive from (PyTorch's
  -- RNNBase): their parameters, initialisation, printing and forward.
  local RNNBase = Module:extend("RNNBase")
  nn.RNNBase = RNNBase

  -- init(kind, input_size, hidden_size [, num_layers] [, opts]) for the
  -- subclasses; opts as PyTorch's keyword arguments.
  -- PyTorch's modes for RNNBase(mode, ...): the kind, and an RNN's nonlinearity
  local rnn_modes = {RNN = {"RNN"}, LSTM = {"LSTM"}, GRU = {"GRU"}, RNN_TANH = {"RNN", "tanh"},
                     RNN_RELU = {"RNN", "relu"}}

  function RNNBase:init(mode, input_size, hidden_size, num_layers, opts)
    local known_mode = rnn_modes[mode]
    if not known_mode then
      raise("RNNBase: mode must be 'LSTM', 'GRU', 'RNN_TANH' or 'RNN_RELU', got " .. tostring(mode))
    end
    local kind, mode_nonlinearity = known_mode[1], known_mode[2]
    local op = kind
    if type(num_layers) == "table" and opts == nil then num_layers, opts = nil, num_layers end
    local known = {"num_layers", "bias", "batch_first", "dropout", "bidirectional", "proj_size", "dtype"}
    if kind == "RNN" and not mode_nonlinearity then table.insert(known, 2, "nonlinearity") end
    opts = nn._options(op, opts, known)
    if num_layers == nil then num_layers = opts.num_layers or 1 end
    check_size(input_size, "input_size", op, true)
    check_size(hidden_size, "hidden_size", op)
    check_size(num_layers, "num_layers", op)
    local bias = opts.bias == nil or check_bool(opts.bias, "bias", op)
    local batch_first = opts.batch_first ~= nil and check_bool(opts.batch_first, "batch_first", op)
    local bidirectional = opts.bidirectional ~= nil and check_bool(opts.bidirectional, "bidirectional", op)
    local dropout = opts.dropout or 0
    if type(dropout) ~= "number" or dropout < 0 or dropout > 1 then
      raise(string.format("%s: dropout must be a number between 0 and 1, got %s", op, tostring(dropout)))
    end
    local proj_size = opts.proj_size or 0
    if math.type(proj_size) ~= "integer" or proj_size < 0 then
      raise(string.format("%s: proj_size must be a positive integer, or 0 to disable projections, got %s",
        op, tostring(proj_size)))
    end
    if proj_size ~= 0 and kind ~= "LSTM" then
      raise(op .. ": proj_size is only supported for LSTM, not RNN or GRU")
    end
    if proj_size >= hidden_size and proj_size ~= 0 then
      raise(string.format("%s: proj_size (%d) must be smaller than hidden_size (%d)", op, proj_size, hidden_size))
    end
    local nonlinearity = mode_nonlinearity or opts.nonlinearity or "tanh"
    if kind == "RNN" then check_nonlinearity(nonlinearity, op) end
    self._kind, self.mode = kind, engine_mode(kind, nonlinearity)
    self.nonlinearity = kind == "RNN" and nonlinearity or nil
    self.input_size, self.hidden_size, self.num_layers = input_size, hidden_size, num_layers
    self.bias, self.batch_first, self.dropout, self.bidirectional = bias, batch_first, dropout, bidirectional
    self.proj_size = proj_size
    local dtype = opts.dtype or "float32"
    local G = gates[kind] * hidden_size
    local real_hidden = proj_size > 0 and proj_size or hidden_size -- the size of h
    self._names = {}
    local directions = bidirectional and 2 or 1
    for layer = 0, num_layers - 1 do
      for direction = 0, directions - 1 do
        local suffix = "_l" .. layer .. (direction == 1 and "_reverse" or "")
        local layer_input = layer == 0 and input_size or real_hidden * directions
        local names = {"weight_ih" .. suffix, "weight_hh" .. suffix}
        self[names[1]] = nn.Parameter(nn.empty(G, layer_input, {dtype = dtype}))
        self[names[2]] = nn.Parameter(nn.empty(G, real_hidden, {dtype = dtype}))
        if bias then
          names[3], names[4] = "bias_ih" .. suffix, "bias_hh" .. suffix
          self[names[3]] = nn.Parameter(nn.empty(G, {dtype = dtype}))
          self[names[4]] = nn.Parameter(nn.empty(G, {dtype = dtype}))
        end
        if proj_size > 0 then -- after the biases, as PyTorch registers it
          names.weight_hr = "weight_hr" .. suffix
          self[names.weight_hr] = nn.Parameter(nn.empty(proj_size, hidden_size, {dtype = dtype}))
        end
        self._names[#self._names + 1] = names
      end
    end
    self:reset_parameters()
  end

  --- m:reset_parameters(): draws every weight and bias again from
  -- U(-1/sqrt(hidden_size), 1/sqrt(hidden_size)) in parameter order, as
  -- PyTorch does (the same numbers after the same nn.manual_seed).
  function RNNBase:reset_parameters()
    local bound = 1 / math.sqrt(self.hidden_size)
    for _, p in ipairs(self:parameters()) do nn.init.uniform_(p, -bound, bound) end
  end

  function RNNBase:extra_repr()
    local s = string.format("%d, %d", self.input_size, self.hidden_size)
    if (self.proj_size or 0) ~= 0 then s = s .. ", proj_size=" .. self.proj_size end
    if self.num_layers ~= 1 then s = s .. ", num_layers=" .. self.num_layers end
    if not self.bias then s = s .. ", bias=False" end
    if self.batch_first then s = s .. ", batch_first=True" end
    if self.dropout ~= 0 then s = s .. ", dropout=" .. tostring(self.dropout) end
    if self.bidirectional then s = s .. ", bidirectional=True" end
    return s
  end

  -- the (L D) x B x H initial state named what, from hx's entry or zeros
  -- (H: h0's size is proj_size in an LSTM with projections)
  local function initial_state(self, op, given, what, B, unbatched, like, H)
    local LD = self.num_layers * (self.bidirectional and 2 or 1)
    if given == nil then return nn.zeros({LD, B, H}, {dtype = like.dtype, device = like.device}) end
    check_tensor(given, what, op)
    local want = unbatched and {LD, H} or {LD, B, H}
    local ok = given:dim() == #want
    for i = 1, #want do ok = ok and given:size(i) == want[i] end
    if not ok then
      raise(string.format("%s: %s must be (%s), got %s", op, what, table.concat(want, ", "), shape_text(given)))
    end
    if given.dtype ~= like.dtype then
      raise(string.format("%s: %s is %s but the input is %s", op, what, given.dtype, like.dtype))
    end
    return unbatched and given:unsqueeze(2) or given
  end

  -- batch_sizes of T steps of B, kept for the next call of the same shape
  local function uniform_sizes(self, T, B)
    local cache = rawget(self, "_sizes_cache")
    if not cache or cache.T ~= T or cache.B ~= B then
      local list = {}
      for t = 1, T do list[t] = B end
      cache = {T = T, B = B, tensor = int64(list), total = T * B}
      rawset(self, "_sizes_cache", cache)
    end
    return cache
  end

  --- m(input [, hx]): runs the layer over input (T x B x input_size, or B x
  -- T x input_size with batch_first; T x input_size unbatched; or a
  -- PackedSequence). hx: the initial state, (num_layers * directions) x
  -- B x hidden_size, zeros when nil; an LSTM's is {h0, c0}. Returns the
  -- output (T x B x directions * hidden_size, the last layer's h at each
  -- step; a PackedSequence for one) and the final state h_n ({h_n, c_n}
  -- for an LSTM), each sequence's at its own length when packed.
  function RNNBase:forward(input, hx)
    local kind = self._kind
    local op = op_names[kind]
    local packed = is_packed(input)
    local data, sizes, total, T, B, unbatched
    if packed then
      data = input.data
      sizes = {tensor = input.batch_sizes}
      B, T = input._sizes[1], #input._sizes
      total = data:size(1)
      if data:dim() ~= 2 then raise(op .. ": a PackedSequence's data must be 2-dimensional, got " .. shape_text(data)) end
    else
      check_tensor(input, "input", op)
      if input:dim() ~= 2 and input:dim() ~= 3 then
        raise(string.format("%s: input must have 3 dimensions (2 unbatched), got %d", op, input:dim()))
      end
      unbatched = input:dim() == 2
      if unbatched then input = input:unsqueeze(self.batch_first and 1 or 2) end
      if self.batch_first then input = input:transpose(1, 2) end
      T, B = input:size(1), input:size(2)
      if T == 0 or B == 0 then raise(op .. ": input has no steps or no sequences: " .. shape_text(input)) end
      data = input:reshape(T * B, input:size(3))
      sizes = uniform_sizes(self, T, B)
      total = T * B
    end
    if data:size(2) ~= self.input_size then
      raise(string.format("%s: input has %d features, layer expects %d", op, data:size(2), self.input_size))
    end
    if data.dtype ~= "float32" and data.dtype ~= "float64" then
      raise(op .. ": input must be float32 or float64, got " .. data.dtype)
    end
    local h0, c0
    if kind == "LSTM" then
      if hx ~= nil and (type(hx) ~= "table" or nn.is_tensor(hx) or #hx ~= 2) then
        raise(op .. ": the initial state must be a table {h0, c0}")
      end
      local P = self.proj_size > 0 and self.proj_size or self.hidden_size
      h0 = initial_state(self, op, hx and hx[1], "h0", B, unbatched, data, P)
      c0 = initial_state(self, op, hx and hx[2], "c0", B, unbatched, data, self.hidden_size)
    else
      h0 = initial_state(self, op, hx, "h0", B, unbatched, data, self.hidden_size)
    end
    if packed and input.sorted_indices then
      local order = input.sorted_indices:to(data.device)
      h0 = h0:index_select(2, order)
      if c0 then c0 = c0:index_select(2, order) end
    end
    local directions = self.bidirectional and 2 or 1
    local hn, cn, x = {}, {}, data
    local step_rows -- each step's rows, as a Lua list, for the projected LSTM
    if self.proj_size > 0 then
      if packed then
        step_rows = input._sizes
      else
        step_rows = {}
        for t = 1, T do step_rows[t] = B end
      end
    end
    for layer = 1, self.num_layers do
      local outs = {}
      for direction = 1, directions do
        local idx = (layer - 1) * directions + direction
        local names = self._names[idx]
        local b_ih, b_hh = names[3] and self[names[3]], names[4] and self[names[4]]
        local seq, h, c
        if names.weight_hr then
          seq, h, c = run_projected_layer(x, self[names[1]], self[names[2]], b_ih, b_hh, self[names.weight_hr],
            h0:select(1, idx), c0:select(1, idx), step_rows, direction == 2)
        else
          seq, h, c = run_layer(self.mode, x, self[names[1]], self[names[2]], b_ih, b_hh,
            h0:select(1, idx), c0 and c0:select(1, idx), sizes.tensor, total, direction == 2)
        end
        outs[direction], hn[idx], cn[idx] = seq, h, c
      end
      x = directions == 2 and nn.cat(outs, 2) or outs[1]
      if self.dropout > 0 and self.training and layer < self.num_layers then
        x = F.dropout(x, self.dropout, true)
      end
    end
    local h_n, c_n = nn.stack(hn, 1), c0 and nn.stack(cn, 1)
    local output
    if packed then
      output = rnn_utils.PackedSequence(x, input.batch_sizes, input.sorted_indices, input.unsorted_indices)
      if input.unsorted_indices then
        local back = input.unsorted_indices:to(data.device)
        h_n = h_n:index_select(2, back)
        if c_n then c_n = c_n:index_select(2, back) end
      end
    else
      output = x:view(T, B, -1)
      if self.batch_first then output = output:transpose(1, 2) end
      if unbatched then
        output = output:squeeze(self.batch_first and 1 or 2)
        h_n = h_n:squeeze(2)
        if c_n then c_n = c_n:squeeze(2) end
      end
    end
    if kind == "LSTM" then return output, {h_n, c_n} end
    return output, h_n
  end

  --- nn.RNN(input_size, hidden_size [, num_layers] [, {num_layers =, nonlinearity = "tanh", bias = true,
  -- batch_first = false, dropout = 0, bidirectional = false, dtype =}]): an
  -- Elman network, h_t = tanh(W_ih x_t + b_ih + W_hh h_(t-1) + b_hh) (or
  -- relu). Parameters as PyTorch's: weight_ih_l0, weight_hh_l0, bias_ih_l0,
  -- bias_hh_l0, ..._reverse. output, h_n = m(input [, h0]).
  local RNN = RNNBase:extend("RNN")
  nn.RNN = RNN
  function RNN:init(input_size, hidden_size, num_layers, opts)
    RNNBase.init(self, "RNN", input_size, hidden_size, num_layers, opts)
  end

  --- nn.LSTM(input_size, hidden_size [, num_layers] [, {num_layers =, bias = true, batch_first = false,
  -- dropout = 0, bidirectional = false, proj_size = 0, dtype =}]): long short-term memory
  -- (gates i, f, g, o in PyTorch's order and layout: weight_ih_l0 is 4
  -- hidden_size x input_size). output, {h_n, c_n} = m(input [, {h0, c0}]).
  -- proj_size > 0 (below hidden_size) projects each h to proj_size values,
  -- h_t = weight_hr (o_t * tanh(c_t)): weight_hr_l0 is proj_size x
  -- hidden_size, h0, h_n and the output have proj_size features, c0 and
  -- c_n hidden_size. Its steps are ops rather than the fused kernel.
  local LSTM = RNNBase:extend("LSTM")
  nn.LSTM = LSTM
  function LSTM:init(input_size, hidden_size, num_layers, opts)
    RNNBase.init(self, "LSTM", input_size, hidden_size, num_layers, opts)
  end

  --- nn.GRU(input_size, hidden_size [, num_layers] [, {num_layers =, bias = true, batch_first = false,
  -- dropout = 0, bidirectional = false, dtype =}]): gated recurrent units
  -- (gates r, z, n as PyTorch's). output, h_n = m(input [, h0]).
  local GRU = RNNBase:extend("GRU")
  nn.GRU = GRU
  function GRU:init(input_size, hidden_size, num_layers, opts)
    RNNBase.init(self, "GRU", input_size, hidden_size, num_layers, opts)
  end

  ---------------------------------------------------------------------------
  -- The cells: one step

  --- nn.RNNCellBase: the class nn.RNNCell, nn.LSTMCell and nn.GRUCell derive
  -- from: their parameters, initialisation, printing and forward.
  local RNNCellBase = Module:extend("RNNCellBase")
  nn.RNNCellBase = RNNCellBase

  function RNNCellBase:init(kind, input_size, hidden_size, bias, nonlinearity, opts)
    if not gates[kind] then
      raise("RNNCellBase: the base class of nn.RNNCell, nn.LSTMCell and nn.GRUCell is not made on its own; " ..
        "make one of those")
    end
    local op = kind .. "Cell"
    local known = {"bias", "dtype"}
    if kind == "RNN" then known[3] = "nonlinearity" end
    if type(bias) == "table" and opts == nil then bias, opts = nil, bias end
    opts = nn._options(op, opts, known)
    if bias == nil then bias = opts.bias end
    if bias == nil then bias = true end
    check_bool(bias, "bias", op)
    if nonlinearity == nil then nonlinearity = opts.nonlinearity or "tanh" end
    if kind == "RNN" then check_nonlinearity(nonlinearity, op) end
    check_size(input_size, "input_size", op, true)
    check_size(hidden_size, "hidden_size", op)
    self._kind, self.mode = kind, engine_mode(kind, nonlinearity)
    self.nonlinearity = kind == "RNN" and nonlinearity or nil
    self.input_size, self.hidden_size, self.bias = input_size, hidden_size, bias
    local dtype = opts.dtype or "float32"
    local G = gates[kind] * hidden_size
    self.weight_ih = nn.Parameter(nn.empty(G, input_size, {dtype = dtype}))
    self.weight_hh = nn.Parameter(nn.empty(G, hidden_size, {dtype = dtype}))
    if bias then
      self.bias_ih = nn.Parameter(nn.empty(G, {dtype = dtype}))
      self.bias_hh = nn.Parameter(nn.empty(G, {dtype = dtype}))
    else
      self:register_parameter("bias_ih", nil)
      self:register_parameter("bias_hh", nil)
    end
    self:reset_parameters()
  end

  RNNCellBase.reset_parameters = RNNBase.reset_parameters

  function RNNCellBase:extra_repr()
    local s = string.format("%d, %d", self.input_size, self.hidden_size)
    if not self.bias then s = s .. ", bias=False" end
    if self.nonlinearity and self.nonlinearity ~= "tanh" then s = s .. ", nonlinearity=" .. self.nonlinearity end
    return s
  end

  local function cell_state(op, given, what, B, H, unbatched, like)
    if given == nil then return nn.zeros({B, H}, {dtype = like.dtype, device = like.device}) end
    check_tensor(given, what, op)
    local ok = unbatched and given:dim() == 1 and given:size(1) == H or
      not unbatched and given:dim() == 2 and given:size(1) == B and given:size(2) == H
    if not ok then
      raise(string.format("%s: %s must be (%s), got %s", op, what, unbatched and tostring(H) or B .. ", " .. H,
        shape_text(given)))
    end
    if given.dtype ~= like.dtype then
      raise(string.format("%s: %s is %s but the input is %s", op, what, given.dtype, like.dtype))
    end
    return unbatched and given:unsqueeze(1) or given
  end

  -- h (and c) = the cell's step from input x and state
  function RNNCellBase:forward(x, hx)
    local kind = self._kind
    local op = op_names[kind .. "Cell"]
    check_tensor(x, "input", op)
    if x:dim() ~= 1 and x:dim() ~= 2 then
      raise(string.format("%s: input must have 2 dimensions (1 unbatched), got %d", op, x:dim()))
    end
    local unbatched = x:dim() == 1
    if unbatched then x = x:unsqueeze(1) end
    if x:size(2) ~= self.input_size then
      raise(string.format("%s: input has %d features, layer expects %d", op, x:size(2), self.input_size))
    end
    local B, H = x:size(1), self.hidden_size
    local h0, c0
    if kind == "LSTM" then
      if hx ~= nil and (type(hx) ~= "table" or nn.is_tensor(hx) or #hx ~= 2) then
        raise(op .. ": the state must be a table {h, c}")
      end
      h0 = cell_state(op, hx and hx[1], "h", B, H, unbatched, x)
      c0 = cell_state(op, hx and hx[2], "c", B, H, unbatched, x)
    else
      h0 = cell_state(op, hx, "h", B, H, unbatched, x)
    end
    local sizes = uniform_sizes(self, 1, B)
    local _, h, c = run_layer(self.mode, x, self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh,
      h0, c0, sizes.tensor, B, false)
    if unbatched then
      h = h:squeeze(1)
      if c then c = c:squeeze(1) end
    end
    if kind == "LSTM" then return h, c end
    return h
  end

  --- nn.RNNCell(input_size, hidden_size [, bias = true [, nonlinearity = "tanh"]] [, {bias =, nonlinearity =, dtype =}]):
  -- one step of nn.RNN: h' = m(x [, h]) (h zeros when nil).
  local RNNCell = RNNCellBase:extend("RNNCell")
  nn.RNNCell = RNNCell
  function RNNCell:init(input_size, hidden_size, bias, nonlinearity, opts)
    if type(nonlinearity) == "table" and opts == nil then nonlinearity, opts = nil, nonlinearity end
    RNNCellBase.init(self, "RNN", input_size, hidden_size, bias, nonlinearity, opts)
  end

  --- nn.LSTMCell(input_size, hidden_size [, bias = true] [, {bias =, dtype =}]): one step of
  -- nn.LSTM: h', c' = m(x [, {h, c}]) (zeros when nil).
  local LSTMCell = RNNCellBase:extend("LSTMCell")
  nn.LSTMCell = LSTMCell
  function LSTMCell:init(input_size, hidden_size, bias, opts)
    RNNCellBase.init(self, "LSTM", input_size, hidden_size, bias, nil, opts)
  end

  --- nn.GRUCell(input_size, hidden_size [, bias = true] [, {bias =, dtype =}]): one step of
  -- nn.GRU: h' = m(x [, h]).
  local GRUCell = RNNCellBase:extend("GRUCell")
  nn.GRUCell = GRUCell
  function GRUCell:init(input_size, hidden_size, bias, opts)
    RNNCellBase.init(self, "GRU", input_size, hidden_size, bias, nil, opts)
  end
end

-- Embedding, attention and the Transformer: nn.Embedding and nn.F.embedding
-- (a C front, lua/nn_embedding.c), nn.F.scaled_dot_product_attention,
-- nn.MultiheadAttention, nn.TransformerEncoderLayer, nn.TransformerEncoder,
-- nn.TransformerDecoderLayer, nn.TransformerDecoder and nn.Transformer.
--
-- The attention modules are composed of the engine's ops (linear, bmm and
-- baddbmm through the backend's GEMM, softmax, the norm layers' layer_norm,
-- dropout), whose backward passes give theirs. Their formulas, the order
-- of their operations, their parameters' names, shapes, initial draws and
-- printing follow PyTorch 1.13 (torch/nn/functional.py's
-- multi_head_attention_forward, torch/nn/modules/activation.py and
-- transformer.py); F.scaled_dot_product_attention is PyTorch 2.0's.
return function(nn)
  local raise = nn._raise
  local Module, F = nn.Module, nn.F
  local C = nn._C

  ---------------------------------------------------------------------------
  -- Helpers

  local function shape_text(sizes) return "(" .. table.concat(sizes, ", ") .. ")" end

  local function check_tensor(x, op, what)
    if not nn.is_tensor(x) then raise(string.format("%s: %s must be a tensor, got %s", op, what, type(x))) end
  end

  local function check_positive_integer(v, what, op)
    if math.type(v) ~= "integer" or v < 1 then
      raise(string.format("%s: %s must be a positive integer, got %s", op, what, tostring(v)))
    end
  end

  local function flag(v, default, what, op)
    if v == nil then return default end
    if type(v) ~= "boolean" then raise(string.format("%s: %s must be a boolean, got %s", op, what, tostring(v))) end
    return v
  end

  local function check_probability(p, what, op)
    if type(p) ~= "number" or not (p >= 0 and p <= 1) then
      raise(string.format("%s: %s must be a number between 0 and 1, got %s", op, what, tostring(p)))
    end
  end

  -- Python's repr of a number, as print(model) shows PyTorch's: 1.0, 0.1, 2.
  local function python_number(v)
    if math.type(v) == "integer" then return string.format("%d", v) end
    if v == math.huge then return "inf" end
    local text
    for precision = 1, 17 do
      text = string.format("%." .. precision .. "g", v)
      if tonumber(text) == v then break end
    end
    if not text:find("[.eni]") then text = text .. ".0" end
    return text
  end

  local function same_sizes(a, b)
    if #a ~= #b then return false end
    for i = 1, #a do if a[i] ~= b[i] then return false end end
    return true
  end

  ---------------------------------------------------------------------------
  -- Embedding

  -- padding_idx as the engine's 0-based row (nil: none), from the user's
  -- 1-based one (negative: from the end, as PyTorch's negative index).
  local function padding_row(padding_idx, num_embeddings, op)
    if padding_idx == nil then return nil end
    if math.type(padding_idx) ~= "integer" or padding_idx == 0 or padding_idx > num_embeddings
      or padding_idx < -num_embeddings then
      raise(string.format("%s: padding_idx must be an index of one of the %d embeddings (1..%d, or -%d..-1 "
        .. "from the end), got %s", op, num_embeddings, num_embeddings, num_embeddings, tostring(padding_idx)))
    end
    return padding_idx > 0 and padding_idx - 1 or num_embeddings + padding_idx
  end

  local function embedding(input, weight, padding_idx, max_norm, norm_type, scale_grad_by_freq, sparse, op)
    check_tensor(input, op, "input")
    check_tensor(weight, op, "weight")
    if weight:dim() ~= 2 then
      raise(string.format("%s: weight must be 2-D (num_embeddings, embedding_dim), got shape %s", op,
        shape_text(weight:size())))
    end
    if input.dtype ~= "int64" then
      raise(string.format("%s: input must hold int64 indices (1-based), got %s", op, input.dtype))
    end
    if sparse then raise(op .. ": sparse gradients are not supported (sparse = true)") end
    local row = padding_row(padding_idx, weight:size(1), op)
    if max_norm ~= nil then
      if type(max_norm) ~= "number" then raise(op .. ": max_norm must be a number, got " .. type(max_norm)) end
      if type(norm_type) ~= "number" then raise(op .. ": norm_type must be a number, got " .. type(norm_type)) end
      -- PyTorch renormalises the looked-up rows of the weight in place,
      -- outside the graph, before it looks them up
      nn.no_grad(function() C.embedding_renorm_(weight, input, max_norm, norm_type) end)
    end
    return C.embedding(weight, input, row, scale_grad_by_freq and true or false)
  end

  --- nn.F.embedding(input, weight [, {padding_idx =, max_norm =, norm_type = 2,
  -- scale_grad_by_freq = false, sparse = false}]): the rows of weight
  -- (num_embeddings, embedding_dim) at the int64 indices of input (any shape;
  -- 1-based, as every nnlua index), shaped input's shape plus embedding_dim.
  -- padding_idx (1-based; negative from the end) names a row whose gradient
  -- stays zero; max_norm rescales, in place, each looked-up row whose
  -- norm_type-norm exceeds it; scale_grad_by_freq divides each row's
  -- gradient by how often the batch names it. An index outside 1..num_embeddings
  -- is an error naming it.
  function F.embedding(input, weight, opts)
    opts = nn._options("embedding", opts, {"padding_idx", "max_norm", "norm_type", "scale_grad_by_freq", "sparse"})
    return embedding(input, weight, opts.padding_idx, opts.max_norm, opts.norm_type or 2.0,
      opts.scale_grad_by_freq, opts.sparse, "embedding")
  end

  --- nn.Embedding(num_embeddings, embedding_dim [, {padding_idx =, max_norm =,
  -- norm_type = 2, scale_grad_by_freq = false, sparse = false, dtype = "float32"}]):
  -- a table of num_embeddings learned vectors of embedding_dim values,
  -- looked up by int64 index (1-based): e(idx) has idx's shape plus
  -- embedding_dim. The weight starts as N(0, 1) draws (PyTorch's after the
  -- same seed), with the padding_idx row zero; that row gets no gradient.
  -- See nn.F.embedding for max_norm and scale_grad_by_freq.
  --   local emb = nn.Embedding(10, 3, {padding_idx = 1})
  --   local y = emb(nn.tensor({{1, 2, 4}}, {dtype = "int64"}))   -- (1, 3, 3)
  local Embedding = Module:extend("Embedding")
  nn.Embedding = Embedding

  local embedding_options = {"padding_idx", "max_norm", "norm_type", "scale_grad_by_freq", "sparse", "dtype", "_weight"}

  function Embedding:init(num_embeddings, embedding_dim, opts)
    local op = "Embedding"
    check_positive_integer(num_embeddings, "num_embeddings", op)
    check_positive_integer(embedding_dim, "embedding_dim", op)
    opts = nn._options(op, opts, embedding_options)
    self.num_embeddings, self.embedding_dim = num_embeddings, embedding_dim
    padding_row(opts.padding_idx, num_embeddings, op)
    self.padding_idx = opts.padding_idx
    if opts.max_norm ~= nil and type(opts.max_norm) ~= "number" then
      raise(op .. ": max_norm must be a number, got " .. type(opts.max_norm))
    end
    self.max_norm = opts.max_norm
    self.norm_type = opts.norm_type == nil and 2.0 or opts.norm_type
    if type(self.norm_type) ~= "number" then raise(op .. ": norm_type must be a number, got " .. type(self.norm_type)) end
    self.scale_grad_by_freq = flag(opts.scale_grad_by_freq, false, "scale_grad_by_freq", op)
    self.sparse = flag(opts.sparse, false, "sparse", op)
    if self.sparse then raise(op .. ": sparse gradients are not supported (sparse = true)") end
    if opts._weight ~= nil then
      local w = opts._weight
      check_tensor(w, op, "_weight")
      if not same_sizes(w:size(), {num_embeddings, embedding_dim}) then
        raise(string.format("%s: the weight's shape %s does not match (num_embeddings, embedding_dim) = (%d, %d)",
          op, shape_text(w:size()), num_embeddings, embedding_dim))
      end
      self.weight = nn.Parameter(w)
    else
      self.weight = nn.Parameter(nn.empty(num_embeddings, embedding_dim, {dtype = opts.dtype or "float32"}))
      self:reset_parameters()
    end
  end

  --- emb:reset_parameters(): N(0, 1) draws, the padding row zero.
  function Embedding:reset_parameters()
    nn.init.normal_(self.weight)
    if self.padding_idx ~= nil then
      local row = padding_row(self.padding_idx, self.num_embeddings, "Embedding") + 1
      nn.no_grad(function() self.weight[row]:fill_(0) end)
    end
  end

  function Embedding:forward(input)
    return embedding(input, self.weight, self.padding_idx, self.max_norm, self.norm_type,
      self.scale_grad_by_freq, false, "Embedding")
  end

  function Embedding:extra_repr()
    local s = string.format("%d, %d", self.num_embeddings, self.embedding_dim)
    if self.padding_idx ~= nil then s = s .. ", padding_idx=" .. self.padding_idx end
    if self.max_norm ~= nil then s = s .. ", max_norm=" .. python_number(self.max_norm) end
    if self.norm_type ~= 2 then s = s .. ", norm_type=" .. python_number(self.norm_type) end
    if self.scale_grad_by_freq then s = s .. ", scale_grad_by_freq=True" end
    return s
  end

  --- nn.Embedding.from_pretrained(embeddings [, {freeze = true, padding_idx =,
  -- max_norm =, norm_type = 2, scale_grad_by_freq = false, sparse = false}]):
  -- an Embedding whose weight is the 2-D tensor embeddings (used as it is,
  -- not copied); freeze = true keeps it from learning (requires_grad false).
  function Embedding.from_pretrained(embeddings, opts)
    local op = "Embedding.from_pretrained"
    check_tensor(embeddings, op, "embeddings")
    if embeddings:dim() ~= 2 then
      raise(string.format("%s: embeddings must be 2-D, got shape %s", op, shape_text(embeddings:size())))
    end
    opts = nn._options(op, opts, {"freeze", "padding_idx", "max_norm", "norm_type", "scale_grad_by_freq", "sparse"})
    local freeze = flag(opts.freeze, true, "freeze", op)
    local m = Embedding(embeddings:size(1), embeddings:size(2), {
      _weight = embeddings, padding_idx = opts.padding_idx, max_norm = opts.max_norm,
      norm_type = opts.norm_type, scale_grad_by_freq = opts.scale_grad_by_freq, sparse = opts.sparse})
    m.weight:requires_grad_(not freeze)
    return m
  end

  ---------------------------------------------------------------------------
  -- Masks

  -- A float mask to add to attention scores: a bool one becomes 0 where
  -- attention is allowed and -inf where not (masked_where: which value of
  -- the bool mask forbids, true for PyTorch's MultiheadAttention masks,
  -- false for scaled_dot_product_attention's); a float one is added as it is.
  local function additive_mask(mask, dtype, masked_where)
    if mask.dtype == "bool" then
      local forbidden = masked_where and mask or mask:logical_not()
      return nn.zeros(mask:size(), {dtype = dtype, device = mask.device}):masked_fill(forbidden, -math.huge)
    end
    if mask.dtype ~= "float32" and mask.dtype ~= "float64" then
      raise("attention masks must be bool or floating point, got " .. mask.dtype)
    end
    if mask.dtype ~= dtype then return mask:to(dtype) end
    return mask
  end

  -- The mask that lets position i attend to positions 1..i only: -inf
  -- above the diagonal, 0 elsewhere (PyTorch's Transformer's).
  local function square_subsequent_mask(size, opts)
    opts = nn._options("generate_square_subsequent_mask", opts, {"dtype", "device"})
    check_positive_integer(size, "sz", "generate_square_subsequent_mask")
    return nn.full({size, size}, -math.huge, {dtype = opts.dtype or "float32", device = opts.device}):triu(1)
  end

  ---------------------------------------------------------------------------
  -- scaled_dot_product_attention

  --- nn.F.scaled_dot_product_attention(query, key, value [, {attn_mask =,
  -- dropout_p = 0, is_causal = false}]): softmax(q k^T / sqrt(E) + mask) v
  -- for query (..., L, E), key (..., S, E) and value (..., S, Ev), leading
  -- dims broadcast (PyTorch 2.0's function). A bool attn_mask says where
  -- attention is allowed (true: take part), a float one is added to the
  -- scores; is_causal lets position i see 1..i only (and takes no mask).
  -- dropout_p drops attention weights (always: pass 0 in evaluation).
  function F.scaled_dot_product_attention(query, key, value, opts)
    local op = "scaled_dot_product_attention"
    opts = nn._options(op, opts, {"attn_mask", "dropout_p", "is_causal"})
    check_tensor(query, op, "query")
    check_tensor(key, op, "key")
    check_tensor(value, op, "value")
    for what, t in pairs({query = query, key = key, value = value}) do
      if t:dim() < 2 then raise(string.format("%s: %s must have at least 2 dims (..., length, features), got %d",
        op, what, t:dim())) end
    end
    local L, S, E = query:size(-2), key:size(-2), query:size(-1)
    if key:size(-1) ~= E then
      raise(string.format("%s: query and key must have the same last dim, got %d and %d", op, E, key:size(-1)))
    end
    if value:size(-2) ~= S then
      raise(string.format("%s: key and value must have the same length (dim -2), got %d and %d", op, S,
        value:size(-2)))
    end
    local dropout_p = opts.dropout_p or 0.0
    check_probability(dropout_p, "dropout_p", op)
    local mask = opts.attn_mask
    if flag(opts.is_causal, false, "is_causal", op) then
      if mask ~= nil then raise(op .. ": give either attn_mask or is_causal = true, not both") end
      mask = nn.ones({L, S}, {dtype = "bool", device = query.device}):tril()
    end
    local scores = query:matmul(key:transpose(-2, -1)) * (1 / math.sqrt(E))
    if mask ~= nil then
      check_tensor(mask, op, "attn_mask")
      scores = scores + additive_mask(mask, query.dtype, false)
    end
    local weights = scores:softmax(-1)
    if dropout_p > 0 then weights = F.dropout(weights, dropout_p, true) end
    return weights:matmul(value)
  end

  ---------------------------------------------------------------------------
  -- multi-head attention

  local function check_mask_shape(mask, expected, what, op)
    if not same_sizes(mask:size(), expected) then
      raise(string.format("%s: %s should have shape %s, got %s", op, what, shape_text(expected), shape_text(mask:size())))
    end
  end

  -- PyTorch 1.13's F.multi_head_attention_forward for the inputs as the
  -- module holds them (m: embed_dim, num_heads, the projections; inputs
  -- (L, N, E) or, batch_first, (N, L, E); unbatched (L, E)). Returns the
  -- output and, when need_weights, the attention weights.
  local function multi_head_attention(m, query, key, value, key_padding_mask, need_weights, attn_mask,
                                      average_attn_weights, training)
    local op = "multihead_attention"
    check_tensor(query, op, "query")
    check_tensor(key, op, "key")
    check_tensor(value, op, "value")
    local rank = query:dim()
    if rank ~= 2 and rank ~= 3 then
      raise(string.format("%s: query should be 2-D (unbatched: length, embed_dim) or 3-D (batched), got %d-D",
        op, rank))
    end
    if key:dim() ~= rank or value:dim() ~= rank then
      raise(string.format("%s: query, key and value must have the same number of dims, got %d, %d and %d",
        op, rank, key:dim(), value:dim()))
    end
    local batched = rank == 3
    if not batched then
      query, key, value = query:unsqueeze(2), key:unsqueeze(2), value:unsqueeze(2)
      if key_padding_mask ~= nil then
        check_tensor(key_padding_mask, op, "key_padding_mask")
        if key_padding_mask:dim() ~= 1 then
          raise(string.format("%s: key_padding_mask should be 1-D for unbatched input, got %d-D", op,
            key_padding_mask:dim()))
        end
        key_padding_mask = key_padding_mask:unsqueeze(1)
      end
    end
    -- batch_first inputs (N, L, E) keep their layout: the projections read
    -- them as they lie, and only the split into heads copies
    local batch_first = batched and m.batch_first
    local seq_dim, batch_dim = batch_first and 2 or 1, batch_first and 1 or 2
    local L, N, E = query:size(seq_dim), query:size(batch_dim), query:size(3)
    local S = key:size(seq_dim)
    local H, hd = m.num_heads, m.head_dim
    if E ~= m.embed_dim then
      raise(string.format("%s: query has %d features (embed_dim), the layer expects %d", op, E, m.embed_dim))
    end
    if key:size(batch_dim) ~= N or value:size(batch_dim) ~= N then
      raise(string.format("%s: query, key and value must have the same batch size, got %d, %d and %d",
        op, N, key:size(batch_dim), value:size(batch_dim)))
    end
    if value:size(seq_dim) ~= S then
      raise(string.format("%s: key and value must have the same length, got %d and %d", op, S,
        value:size(seq_dim)))
    end
    if key:size(3) ~= m.kdim then
      raise(string.format("%s: key has %d features, the layer expects kdim = %d", op, key:size(3), m.kdim))
    end
    if value:size(3) ~= m.vdim then
      raise(string.format("%s: value has %d features, the layer expects vdim = %d", op, value:size(3), m.vdim))
    end

    -- input projections: one product when query, key and value are one tensor
    local bq, bk, bv
    if m.in_proj_bias ~= nil then
      bq, bk, bv = m.in_proj_bias:narrow(1, 1, E), m.in_proj_bias:narrow(1, E + 1, E),
        m.in_proj_bias:narrow(1, 2 * E + 1, E)
    end
    local q, k, v
    if m.in_proj_weight ~= nil then
      local w = m.in_proj_weight
      if query == key and key == value then
        q, k, v = table.unpack(F.linear(query, w, m.in_proj_bias):chunk(3, -1))
      elseif key == value then
        q = F.linear(query, w:narrow(1, 1, E), bq)
        k, v = table.unpack(F.linear(key, w:narrow(1, E + 1, 2 * E),
          m.in_proj_bias and m.in_proj_bias:narrow(1, E + 1, 2 * E)):chunk(2, -1))
      else
        q = F.linear(query, w:narrow(1, 1, E), bq)
        k = F.linear(key, w:narrow(1, E + 1, E), bk)
        v = F.linear(value, w:narrow(1, 2 * E + 1, E), bv)
      end
    else
      q = F.linear(query, m.q_proj_weight, bq)
      k = F.linear(key, m.k_proj_weight, bk)
      v = F.linear(value, m.v_proj_weight, bv)
    end

    -- masks: one additive float mask of shape (N H, L, S) or (1, L, S)
    local mask
    if attn_mask ~= nil then
      check_tensor(attn_mask, op, "attn_mask")
      if attn_mask:dim() == 2 then
        check_mask_shape(attn_mask, {L, S}, "attn_mask", op)
        mask = additive_mask(attn_mask, q.dtype, true):unsqueeze(1)
      elseif attn_mask:dim() == 3 then
        check_mask_shape(attn_mask, {N * H, L, S}, "attn_mask", op)
        mask = additive_mask(attn_mask, q.dtype, true)
      else
        raise(string.format("%s: attn_mask should be 2-D (L, S) or 3-D (N * num_heads, L, S), got %d-D", op,
          attn_mask:dim()))
      end
    end
    if key_padding_mask ~= nil then
      check_tensor(key_padding_mask, op, "key_padding_mask")
      check_mask_shape(key_padding_mask, {N, S}, "key_padding_mask", op)
      local padding = additive_mask(key_padding_mask, q.dtype, true):view(N, 1, 1, S):expand(N, H, 1, S)
        :reshape(N * H, 1, S)
      mask = mask == nil and padding or mask + padding
    end

    -- add_bias_kv: bias_k and bias_v as one more key and value of every
    -- sequence; add_zero_attn: a zero key and value after them (per head).
    -- Each is a position that no mask forbids: the masks gain a 0 column.
    local extra = (m.bias_k ~= nil and 1 or 0) + (m.add_zero_attn and 1 or 0)
    if m.bias_k ~= nil then
      local function append(t, bias)
        if batch_first then return nn.cat({t, bias:expand(N, 1, E)}, 2) end
        return nn.cat({t, bias:expand(1, N, E)}, 1)
      end
      k, v = append(k, m.bias_k), append(v, m.bias_v)
      S = S + 1
    end
    if mask ~= nil and extra > 0 then
      mask = nn.cat({mask, nn.zeros({mask:size(1), L, extra}, {dtype = mask.dtype, device = mask.device})}, 3)
    end

    -- heads: (L, N, E) or (N, L, E) -> (N H, L, hd), batch index b H + h as PyTorch's
    local function heads(t, length)
      if not batch_first then t = t:transpose(1, 2) end
      return t:reshape(N, length, H, hd):transpose(2, 3):reshape(N * H, length, hd)
    end
    q = heads(q, L) / math.sqrt(hd)
    k, v = heads(k, S), heads(v, S)
    if m.add_zero_attn then
      local zero = nn.zeros({N * H, 1, hd}, {dtype = k.dtype, device = k.device})
      k, v = nn.cat({k, zero}, 2), nn.cat({v, zero}, 2)
      S = S + 1
    end
    local scores = mask ~= nil and nn.baddbmm(mask:expand(N * H, L, S), q, k:transpose(2, 3)) or q:bmm(k:transpose(2, 3))
    local weights = scores:softmax(-1)
    if training and m.dropout > 0 then weights = F.dropout(weights, m.dropout, true) end
    local out = weights:bmm(v) -- (N H, L, hd)
    -- back to (L, N, E) (or (N, L, E) batch_first), then the output projection
    out = out:view(N, H, L, hd):transpose(2, 3)
    if batch_first then
      out = out:reshape(N, L, E)
    else
      out = out:transpose(1, 2):reshape(L, N, E)
    end
    out = m.out_proj(out)
    if not batched then out = out:squeeze(2) end
    if not need_weights then return out, nil end
    weights = weights:view(N, H, L, S)
    if average_attn_weights then weights = weights:sum(2) / H end
    if not batched then weights = weights:squeeze(1) end
    return out, weights
  end

  --- nn.MultiheadAttention(embed_dim, num_heads [, {dropout = 0, bias = true,
  -- add_bias_kv = false, add_zero_attn = false, kdim = embed_dim, vdim = embed_dim,
  -- batch_first = false, dtype = "float32"}]): attention over num_heads
  -- heads of embed_dim / num_heads features (Vaswani et al., 2017), as
  -- PyTorch 1.13's: parameters in_proj_weight (3 E, E) (or q_proj_weight,
  -- k_proj_weight, v_proj_weight when kdim or vdim differ from E),
  -- in_proj_bias, bias_k and bias_v ((1, 1, E), with add_bias_kv: one more
  -- key and value for every sequence) and out_proj (a Linear), drawn as
  -- PyTorch's; add_zero_attn adds a zero key and value after them. Each
  -- adds a column to the weights, which no mask forbids.
  -- m(query, key, value [, {key_padding_mask =, need_weights = true,
  -- attn_mask =, average_attn_weights = true}]) -> output, weights: inputs
  -- (L, N, E) (batch_first: (N, L, E); unbatched: (L, E)); attn_mask (L, S)
  -- or (N num_heads, L, S), key_padding_mask (N, S); a bool mask is true
  -- where attention is NOT allowed, a float one is added to the scores.
  -- weights are (N, L, S) averaged over heads, (N, num_heads, L, S)
  -- without averaging, nil unless need_weights. Dropout acts in training mode.
  local MultiheadAttention = Module:extend("MultiheadAttention")
  nn.MultiheadAttention = MultiheadAttention

  -- PyTorch's out_proj class: a Linear by another name, which print shows.
  local OutProjection = nn.Linear:extend("NonDynamicallyQuantizableLinear")

  function MultiheadAttention:init(embed_dim, num_heads, opts)
    local op = "MultiheadAttention"
    check_positive_integer(embed_dim, "embed_dim", op)
    check_positive_integer(num_heads, "num_heads", op)
    opts = nn._options(op, opts, {"dropout", "bias", "add_bias_kv", "add_zero_attn", "kdim", "vdim",
                                  "batch_first", "dtype"})
    if embed_dim % num_heads ~= 0 then
      raise(string.format("%s: embed_dim (%d) must be divisible by num_heads (%d)", op, embed_dim, num_heads))
    end
    local add_bias_kv = flag(opts.add_bias_kv, false, "add_bias_kv", op)
    self.add_zero_attn = flag(opts.add_zero_attn, false, "add_zero_attn", op)
    local dropout = opts.dropout or 0.0
    check_probability(dropout, "dropout", op)
    local kdim, vdim = opts.kdim or embed_dim, opts.vdim or embed_dim
    check_positive_integer(kdim, "kdim", op)
    check_positive_integer(vdim, "vdim", op)
    local bias = flag(opts.bias, true, "bias", op)
    local dtype = opts.dtype or "float32"
    self.embed_dim, self.num_heads, self.head_dim = embed_dim, num_heads, embed_dim // num_heads
    self.kdim, self.vdim = kdim, vdim
    self.dropout = dropout
    self.batch_first = flag(opts.batch_first, false, "batch_first", op)
    self._qkv_same_embed_dim = kdim == embed_dim and vdim == embed_dim
    if self._qkv_same_embed_dim then
      self.in_proj_weight = nn.Parameter(nn.empty(3 * embed_dim, embed_dim, {dtype = dtype}))
      self:register_parameter("q_proj_weight", nil)
      self:register_parameter("k_proj_weight", nil)
      self:register_parameter("v_proj_weight", nil)
    else
      self.q_proj_weight = nn.Parameter(nn.empty(embed_dim, embed_dim, {dtype = dtype}))
      self.k_proj_weight = nn.Parameter(nn.empty(embed_dim, kdim, {dtype = dtype}))
      self.v_proj_weight = nn.Parameter(nn.empty(embed_dim, vdim, {dtype = dtype}))
      self:register_parameter("in_proj_weight", nil)
    end
    if bias then
      self.in_proj_bias = nn.Parameter(nn.empty(3 * embed_dim, {dtype = dtype}))
    else
      self:register_parameter("in_proj_bias", nil)
    end
    -- before out_proj, so that they come before it in the state_dict, as
    -- PyTorch lists a module's own parameters before its children's
    if add_bias_kv then
      self.bias_k = nn.Parameter(nn.empty(1, 1, embed_dim, {dtype = dtype}))
      self.bias_v = nn.Parameter(nn.empty(1, 1, embed_dim, {dtype = dtype}))
    else
      self:register_parameter("bias_k", nil)
      self:register_parameter("bias_v", nil)
    end
    self.out_proj = OutProjection(embed_dim, embed_dim, {bias = bias, dtype = dtype})
    self:_reset_parameters()
  end

  function MultiheadAttention:_reset_parameters()
    if self._qkv_same_embed_dim then
      nn.init.xavier_uniform_(self.in_proj_weight)
    else
      nn.init.xavier_uniform_(self.q_proj_weight)
      nn.init.xavier_uniform_(self.k_proj_weight)
      nn.init.xavier_uniform_(self.v_proj_weight)
    end
    if self.in_proj_bias ~= nil then
      nn.init.zeros_(self.in_proj_bias)
      nn.init.zeros_(self.out_proj.bias)
    end
    if self.bias_k ~= nil then nn.init.xavier_normal_(self.bias_k) end
    if self.bias_v ~= nil then nn.init.xavier_normal_(self.bias_v) end
  end

  function MultiheadAttention:forward(query, key, value, opts)
    opts = nn._options("multihead_attention", opts, {"key_padding_mask", "need_weights", "attn_mask",
                                                     "average_attn_weights"})
    local op = "multihead_attention"
    return multi_head_attention(self, query, key, value, opts.key_padding_mask,
      flag(opts.need_weights, true, "need_weights", op), opts.attn_mask,
      flag(opts.average_attn_weights, true, "average_attn_weights", op), self.training)
  end

  ---------------------------------------------------------------------------
  -- Transformer layers

  local function activation_of(activation, op)
    if activation == nil or activation == "relu" then return function(x) return x:relu() end, "relu" end
    if activation == "gelu" then return function(x) return F.gelu(x) end, "gelu" end
    if type(activation) == "function" then return activation, "function" end
    raise(string.format('%s: activation should be "relu", "gelu" or a function, got %s', op, tostring(activation)))
  end

  local layer_options = {"dim_feedforward", "dropout", "activation", "layer_norm_eps", "batch_first",
                         "norm_first", "dtype"}

  -- What the encoder and decoder layers share: the feed-forward block and
  -- its norms, set from opts.
  local function setup_layer(self, d_model, nhead, opts, op, norms)
    check_positive_integer(d_model, "d_model", op)
    check_positive_integer(nhead, "nhead", op)
    opts = nn._options(op, opts, layer_options)
    local dim_feedforward = opts.dim_feedforward or 2048
    check_positive_integer(dim_feedforward, "dim_feedforward", op)
    local dropout = opts.dropout == nil and 0.1 or opts.dropout
    check_probability(dropout, "dropout", op)
    local eps = opts.layer_norm_eps or 1e-5
    local dtype = opts.dtype or "float32"
    local batch_first = flag(opts.batch_first, false, "batch_first", op)
    self.norm_first = flag(opts.norm_first, false, "norm_first", op)
    self.activation, self._activation_name = activation_of(opts.activation, op)
    return {d_model = d_model, nhead = nhead, dim_feedforward = dim_feedforward, dropout = dropout,
            eps = eps, dtype = dtype, batch_first = batch_first, norms = norms}
  end

  local function attention(d_model, nhead, s)
    return MultiheadAttention(d_model, nhead, {dropout = s.dropout, batch_first = s.batch_first, dtype = s.dtype})
  end

  -- linear1, dropout, linear2, norm1..normK, dropout1..dropoutK: PyTorch's
  -- registration order, which its state_dict and print follow.
  local function feed_forward_and_norms(self, s)
    self.linear1 = nn.Linear(s.d_model, s.dim_feedforward, {dtype = s.dtype})
    self.dropout = nn.Dropout(s.dropout)
    self.linear2 = nn.Linear(s.dim_feedforward, s.d_model, {dtype = s.dtype})
    for i = 1, s.norms do self["norm" .. i] = nn.LayerNorm(s.d_model, {eps = s.eps, dtype = s.dtype}) end
    for i = 1, s.norms do self["dropout" .. i] = nn.Dropout(s.dropout) end
  end

  local function feed_forward(self, x, last_dropout)
    return last_dropout(self.linear2(self.dropout(self.activation(self.linear1(x)))))
  end

  local function self_attention_block(self, x, mask, padding)
    local out = self.self_attn(x, x, x, {attn_mask = mask, key_padding_mask = padding, need_weights = false})
    return self.dropout1(out)
  end

  --- nn.TransformerEncoderLayer(d_model, nhead [, {dim_feedforward = 2048,
  -- dropout = 0.1, activation = "relu", layer_norm_eps = 1e-5, batch_first =
  -- false, norm_first = false, dtype = "float32"}]): self-attention then a
  -- feed-forward block, each with a residual connection and a LayerNorm
  -- (after, or before with norm_first), as PyTorch 1.13's. activation:
  -- "relu", "gelu" or a function. layer(src [, {src_mask =,
  -- src_key_padding_mask =}]) with src (S, N, E) ((N, S, E) batch_first).
  local TransformerEncoderLayer = Module:extend("TransformerEncoderLayer")
  nn.TransformerEncoderLayer = TransformerEncoderLayer

  function TransformerEncoderLayer:init(d_model, nhead, opts)
    local s = setup_layer(self, d_model, nhead, opts, "TransformerEncoderLayer", 2)
    self.self_attn = attention(d_model, nhead, s)
    feed_forward_and_norms(self, s)
  end

  function TransformerEncoderLayer:forward(src, opts)
    opts = nn._options("TransformerEncoderLayer", opts, {"src_mask", "src_key_padding_mask"})
    local x = src
    if self.norm_first then
      x = x + self_attention_block(self, self.norm1(x), opts.src_mask, opts.src_key_padding_mask)
      x = x + feed_forward(self, self.norm2(x), self.dropout2)
    else
      x = self.norm1(x + self_attention_block(self, x, opts.src_mask, opts.src_key_padding_mask))
      x = self.norm2(x + feed_forward(self, x, self.dropout2))
    end
    return x
  end

  --- nn.TransformerDecoderLayer(d_model, nhead [, {dim_feedforward = 2048,
  -- dropout = 0.1, activation = "relu", layer_norm_eps = 1e-5, batch_first =
  -- false, norm_first = false, dtype = "float32"}]): self-attention,
  -- attention over the encoder's output (memory), then a feed-forward
  -- block, each with a residual connection and a LayerNorm, as PyTorch
  -- 1.13's. layer(tgt, memory [, {tgt_mask =, memory_mask =,
  -- tgt_key_padding_mask =, memory_key_padding_mask =}]).
  local TransformerDecoderLayer = Module:extend("TransformerDecoderLayer")
  nn.TransformerDecoderLayer = TransformerDecoderLayer

  local decoder_forward_options = {"tgt_mask", "memory_mask", "tgt_key_padding_mask", "memory_key_padding_mask"}

  function TransformerDecoderLayer:init(d_model, nhead, opts)
    local s = setup_layer(self, d_model, nhead, opts, "TransformerDecoderLayer", 3)
    self.self_attn = attention(d_model, nhead, s)
    self.multihead_attn = attention(d_model, nhead, s)
    feed_forward_and_norms(self, s)
  end

  local function memory_block(self, x, memory, mask, padding)
    local out = self.multihead_attn(x, memory, memory, {attn_mask = mask, key_padding_mask = padding,
                                                        need_weights = false})
    return self.dropout2(out)
  end

  function TransformerDecoderLayer:forward(tgt, memory, opts)
    opts = nn._options("TransformerDecoderLayer", opts, decoder_forward_options)
    local x = tgt
    if self.norm_first then
      x = x + self_attention_block(self, self.norm1(x), opts.tgt_mask, opts.tgt_key_padding_mask)
      x = x + memory_block(self, self.norm2(x), memory, opts.memory_mask, opts.memory_key_padding_mask)
      x = x + feed_forward(self, self.norm3(x), self.dropout3)
    else
      x = self.norm1(x + self_attention_block(self, x, opts.tgt_mask, opts.tgt_key_padding_mask))
      x = self.norm2(x + memory_block(self, x, memory, opts.memory_mask, opts.memory_key_padding_mask))
      x = self.norm3(x + feed_forward(self, x, self.dropout3))
    end
    return x
  end

  ---------------------------------------------------------------------------
  -- Stacks

  -- A copy of module m with its own parameters and buffers (PyTorch's
  -- copy.deepcopy, which TransformerEncoder uses to stack its layers).
  local function deep_copy(m, seen)
    seen = seen or {}
    if seen[m] then return seen[m] end
    local copy = {}
    seen[m] = copy
    local params = {}
    for _, key in ipairs(rawget(m, "_parameters") or {}) do params[key] = true end
    for key, value in pairs(m) do
      if nn.is_module(value) then
        value = deep_copy(value, seen)
      elseif nn.is_tensor(value) then
        local cloned = nn.no_grad(function() return value:detach():clone() end)
        if params[key] then
          cloned = nn.Parameter(cloned)
          cloned:requires_grad_(value.requires_grad)
        end
        value = cloned
      elseif type(value) == "table" and (key == "_parameters" or key == "_modules" or key == "_buffers") then
        value = table.move(value, 1, #value, 1, {})
      end
      rawset(copy, key, value)
    end
    return setmetatable(copy, getmetatable(m))
  end

  -- PyTorch's ModuleList where nn.ModuleList is not loaded: the children
  -- self[1], self[2], ... named "0", "1", ... in a state_dict.
  local LayerList = Module:extend("ModuleList")
  function LayerList:init(modules)
    for i, layer in ipairs(modules) do self[i] = layer end
  end
  function LayerList:__len() return #self._modules end

  local function clones(layer, n, op)
    if not nn.is_module(layer) then raise(string.format("%s: expected a layer module, got %s", op, type(layer))) end
    check_positive_integer(n, "num_layers", op)
    local list = {}
    for i = 1, n do list[i] = deep_copy(layer) end
    return (nn.ModuleList or LayerList)(list)
  end

  --- nn.TransformerEncoder(encoder_layer, num_layers [, norm]): num_layers
  -- copies of encoder_layer (each its own parameters, all starting equal, as
  -- PyTorch's deep copies), applied in turn, then norm (a module) if given.
  -- enc(src [, {mask =, src_key_padding_mask =}]).
  local TransformerEncoder = Module:extend("TransformerEncoder")
  nn.TransformerEncoder = TransformerEncoder

  -- A stack's layers (copies of layer) and its final norm (a module or nil).
  local function stack(self, layer, num_layers, norm, op)
    self.layers = clones(layer, num_layers, op)
    self.num_layers = num_layers
    if norm ~= nil and not nn.is_module(norm) then raise(op .. ": norm must be a module, got " .. type(norm)) end
    self.norm = norm
  end

  function TransformerEncoder:init(encoder_layer, num_layers, norm)
    stack(self, encoder_layer, num_layers, norm, "TransformerEncoder")
  end

  function TransformerEncoder:forward(src, opts)
    opts = nn._options("TransformerEncoder", opts, {"mask", "src_key_padding_mask"})
    local x = src
    for i = 1, self.num_layers do
      x = self.layers[i](x, {src_mask = opts.mask, src_key_padding_mask = opts.src_key_padding_mask})
    end
    if self.norm then x = self.norm(x) end
    return x
  end

  --- nn.TransformerDecoder(decoder_layer, num_layers [, norm]): num_layers
  -- copies of decoder_layer, applied in turn over the same memory, then norm.
  -- dec(tgt, memory [, {tgt_mask =, memory_mask =, tgt_key_padding_mask =,
  -- memory_key_padding_mask =}]).
  local TransformerDecoder = Module:extend("TransformerDecoder")
  nn.TransformerDecoder = TransformerDecoder

  function TransformerDecoder:init(decoder_layer, num_layers, norm)
    stack(self, decoder_layer, num_layers, norm, "TransformerDecoder")
  end

  function TransformerDecoder:forward(tgt, memory, opts)
    opts = nn._options("TransformerDecoder", opts, decoder_forward_options)
    local x = tgt
    for i = 1, self.num_layers do x = self.layers[i](x, memory, opts) end
    if self.norm then x = self.norm(x) end
    return x
  end

  --- nn.Transformer([{d_model = 512, nhead = 8, num_encoder_layers = 6,
  -- num_decoder_layers = 6, dim_feedforward = 2048, dropout = 0.1,
  -- activation = "relu", custom_encoder =, custom_decoder =, layer_norm_eps
  -- = 1e-5, batch_first = false, norm_first = false, dtype = "float32"}]):
  -- the encoder-decoder of Vaswani et al. (2017) as PyTorch 1.13's, every
  -- weight matrix redrawn by xavier_uniform_. t(src, tgt [, {src_mask =,
  -- tgt_mask =, memory_mask =, src_key_padding_mask =, tgt_key_padding_mask =,
  -- memory_key_padding_mask =}]). nn.Transformer.generate_square_subsequent_mask(sz)
  -- gives the causal mask.
  local Transformer = Module:extend("Transformer")
  nn.Transformer = Transformer

  function Transformer:init(opts)
    local op = "Transformer"
    opts = nn._options(op, opts, {"d_model", "nhead", "num_encoder_layers", "num_decoder_layers",
                                  "dim_feedforward", "dropout", "activation", "custom_encoder",
                                  "custom_decoder", "layer_norm_eps", "batch_first", "norm_first", "dtype"})
    local d_model, nhead = opts.d_model or 512, opts.nhead or 8
    local layer_opts = {dim_feedforward = opts.dim_feedforward, dropout = opts.dropout,
                        activation = opts.activation, layer_norm_eps = opts.layer_norm_eps,
                        batch_first = opts.batch_first, norm_first = opts.norm_first, dtype = opts.dtype}
    local eps = opts.layer_norm_eps or 1e-5
    if opts.custom_encoder ~= nil then
      self.encoder = opts.custom_encoder
    else
      self.encoder = TransformerEncoder(TransformerEncoderLayer(d_model, nhead, layer_opts),
        opts.num_encoder_layers or 6, nn.LayerNorm(d_model, {eps = eps, dtype = opts.dtype}))
    end
    if opts.custom_decoder ~= nil then
      self.decoder = opts.custom_decoder
    else
      self.decoder = TransformerDecoder(TransformerDecoderLayer(d_model, nhead, layer_opts),
        opts.num_decoder_layers or 6, nn.LayerNorm(d_model, {eps = eps, dtype = opts.dtype}))
    end
    self.d_model, self.nhead = d_model, nhead
    self.batch_first = flag(opts.batch_first, false, "batch_first", op)
    for _, p in ipairs(self:parameters()) do
      if p:dim() > 1 then nn.init.xavier_uniform_(p) end
    end
  end

  function Transformer:forward(src, tgt, opts)
    local op = "Transformer"
    opts = nn._options(op, opts, {"src_mask", "tgt_mask", "memory_mask", "src_key_padding_mask",
                                  "tgt_key_padding_mask", "memory_key_padding_mask"})
    check_tensor(src, op, "src")
    check_tensor(tgt, op, "tgt")
    local batched = src:dim() == 3
    if batched then
      local batch_dim = self.batch_first and 1 or 2
      if tgt:dim() ~= 3 or src:size(batch_dim) ~= tgt:size(batch_dim) then
        raise(op .. ": the batch number of src and tgt must be equal")
      end
    end
    if src:size(-1) ~= self.d_model or tgt:size(-1) ~= self.d_model then
      raise(string.format("%s: the feature number of src and tgt must be equal to d_model (%d), got %d and %d",
        op, self.d_model, src:size(-1), tgt:size(-1)))
    end
    local memory = self.encoder(src, {mask = opts.src_mask, src_key_padding_mask = opts.src_key_padding_mask})
    return self.decoder(tgt, memory, {tgt_mask = opts.tgt_mask, memory_mask = opts.memory_mask,
                                      tgt_key_padding_mask = opts.tgt_key_padding_mask,
                                      memory_key_padding_mask = opts.memory_key_padding_mask})
  end

  --- nn.Transformer.generate_square_subsequent_mask(sz [, {dtype =, device =}]):
  -- the (sz, sz) causal mask: -inf above the diagonal, 0 on and below it.
  function Transformer.generate_square_subsequent_mask(sz, opts) return square_subsequent_mask(sz, opts) end
end

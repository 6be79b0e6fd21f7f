/* index.c: reading and writing at positions given by index tensors
 * (index_select, gather, scatter, index_add, take, advanced indexing and
 * its assignment, where, masked_fill, masked_select, nonzero), each
 * backward beside its forward.
 *
 * Every op here comes down to two primitives over a "placement": a shape
 * S laid over a contiguous tensor of the input's shape T by strides
 * (stride 0 along an indexed dim) and an int64 tensor of element offsets
 * of shape S (stride 0 along the dims it does not vary). gather_at reads
 * T at the placement (shape S); put_at writes values of shape S into a
 * copy of T there. Each is the other's gradient, so every op's backward
 * follows from theirs. Index tensors count from `base` (1 from Lua, 0 from
 * C) and negative indices count from the end, as in PyTorch. */
#include "internal.h"

#include <stddef.h>

typedef struct {
  int ndim;
  int64_t size[NN_MAX_DIMS];
  int64_t stride[NN_MAX_DIMS]; /* in elements of the tensor placed over */
  int64_t offset;              /* from that tensor's first element */
} placement;

static int check_index_tensor(const char *op, const nn_tensor *t, const nn_tensor *index) {
  if (nn_check_same_device(op, t, index) < 0) return -1;
  if (index->dtype != NN_INT64) {
    nn_error_set("%s: indices must be an int64 tensor, got %s", op, nn_dtype_name(index->dtype));
    return -1;
  }
  return 0;
}

/* idx as 0-based positions into a dim of size n, times scale (int64, idx's
   shape); an index out of range is an error naming op and dim (-1: the
   tensor taken as flat). As in PyTorch, negative indices count from the
   end in take and t[index] (negative = 1), and are out of range in the ops
   along a dim. */
static nn_tensor *offsets_of(const char *op, nn_tensor *idx, int64_t n, int64_t scale, int base,
                             int negative, int dim) {
  const nn_backend *be = nn_dispatch(op, offsetof(nn_backend, index_offsets), idx, NULL, NULL);
  if (!be) return NULL;
  nn_tensor *out = nn_empty_like_shape(idx, NN_INT64, idx->ndim, idx->size);
  if (!out) return NULL;
  nn_iter it;
  nn_tensor *ts[2] = {out, idx};
  nn_iter_init(&it, 2, ts, idx->ndim, idx->size);
  if (be->index_offsets(&it, n, scale, base, negative, dim, op) < 0) {
    nn_release(out);
    return NULL;
  }
  return out;
}

/* How index_checked reads an index tensor in place of offsets_of (the
   same arguments); NULL where the offsets were made beforehand. */
typedef struct {
  int64_t n, scale;
  int base, negative, dim;
} index_rule;

/* The backend's one-pass kernel (index_checked) for an op whose result
   needs no gradient (a gradient keeps the offsets), or NULL. */
static const nn_backend *one_pass(const char *op, nn_tensor *t, nn_tensor *index, nn_tensor *values) {
  if (nn_needs_grad(t, values, NULL)) return NULL;
  const nn_backend *be = nn_dispatch(op, offsetof(nn_backend, index_offsets), t, index, values);
  return be && be->index_checked ? be : NULL;
}

/* off seen with shape (ndim, size): its own strides on its dims, which are
   the placement's dims first .. first + off->ndim, and 0 elsewhere. */
static nn_tensor *spread(nn_tensor *off, int ndim, const int64_t *size, int first) {
  int64_t stride[NN_MAX_DIMS];
  for (int i = 0; i < ndim; i++) {
    int j = i - first;
    stride[i] = j >= 0 && j < off->ndim && off->size[j] != 1 ? off->stride[j] : 0;
  }
  return nn_tensor_wrap(off->storage, NN_INT64, ndim, size, stride, off->offset);
}

/* ---- the two primitives --------------------------------------------- */
/* out (contiguous, p's shape) = ref at p, ref's elements from base_offset
   with p's strides; no autograd: a front of its own that gather_at's
   forward and put_at's backward share. */
static nn_tensor *read_at(const char *op, nn_tensor *ref, const placement *p, nn_tensor *off,
                          const index_rule *rule) {
  const nn_backend *be = nn_dispatch(
      op, rule ? offsetof(nn_backend, index_checked) : offsetof(nn_backend, index_gather), ref, off, NULL);
  if (!be) return NULL;
  nn_tensor *src = nn_tensor_wrap(ref->storage, ref->dtype, p->ndim, p->size, p->stride,
                                  ref->offset + p->offset);
  nn_tensor *out = src ? nn_empty_like_shape(ref, ref->dtype, p->ndim, p->size) : NULL;
  if (out) {
    nn_iter it;
    nn_tensor *ts[3] = {out, src, off};
    nn_iter_init(&it, 3, ts, p->ndim, p->size);
    if ((rule ? be->index_checked(&it, 0, rule->n, rule->scale, rule->base, rule->negative,
                                  rule->dim, op)
              : be->index_gather(&it)) < 0) {
      nn_release(out);
      out = NULL;
    }
  }
  nn_release(src);
  return out;
}

/* dst at p = values (broadcast to p's shape, dst's dtype), or += when
   accumulate; in place, no autograd. */
static int write_at(const char *op, nn_tensor *dst, const placement *p, nn_tensor *off,
                    nn_tensor *values, int accumulate, const index_rule *rule) {
  const nn_backend *be = nn_dispatch(
      op, rule ? offsetof(nn_backend, index_checked) : offsetof(nn_backend, index_put), dst, off, values);
  if (!be) return -1;
  int fits = values->ndim <= p->ndim;
  for (int i = 0; fits && i < values->ndim; i++) {
    int64_t have = values->size[i], want = p->size[p->ndim - values->ndim + i];
    fits = have == want || have == 1;
  }
  if (!fits) {
    char a[96], b[96];
    nn_error_set("%s: values of shape %s cannot be broadcast to the indexed shape %s", op,
                 nn_shape_string(values, a, sizeof a), nn_sizes_string(p->ndim, p->size, b, sizeof b));
    return -1;
  }
  nn_tensor *v = nn_to_dtype(values, dst->dtype);
  nn_tensor *target = v ? nn_tensor_wrap(dst->storage, dst->dtype, p->ndim, p->size, p->stride,
                                         dst->offset + p->offset) : NULL;
  int status = -1;
  if (target) {
    nn_iter it;
    nn_tensor *ts[3] = {target, v, off};
    nn_iter_init(&it, 3, ts, p->ndim, p->size);
    status = rule ? be->index_checked(&it, accumulate ? 2 : 1, rule->n, rule->scale, rule->base,
                                      rule->negative, rule->dim, op)
                  : be->index_put(&it, accumulate);
  }
  nn_release(target);
  nn_release(v);
  if (status == 0) nn_bump_version(dst);
  return status;
}

static void save_placement(nn_node *node, const placement *p, const nn_tensor *t) {
  node->ndim = t->ndim;
  for (int i = 0; i < t->ndim; i++) node->size[i] = t->size[i];
  for (int i = 0; i < p->ndim; i++) node->ints[i] = p->stride[i];
  node->offset = p->offset;
}

static void load_placement(const nn_node *node, const nn_tensor *off, placement *p) {
  p->ndim = off->ndim;
  for (int i = 0; i < off->ndim; i++) p->size[i] = off->size[i], p->stride[i] = node->ints[i];
  p->offset = node->offset;
}

static nn_tensor *put_at(const char *op, nn_tensor *t, const placement *p, nn_tensor *off,
                         nn_tensor *values, int accumulate, const index_rule *rule);

static int gather_at_backward(nn_node *node, nn_tensor *g, nn_tensor **gi) {
  placement p;
  load_placement(node, node->saved[0], &p);
  nn_tensor *z = nn_full_like_shape(g, g->dtype, node->ndim, node->size, 0);
  if (!z) return -1;
  nn_tensor *grad = put_at("gather backward", z, &p, node->saved[0], g, 1, NULL);
  nn_release(z);
  gi[0] = grad;
  return grad ? 0 : -1;
}

/* t read at p (p's strides are those of a contiguous tensor of t's shape). */
static nn_tensor *gather_at(const char *op, const char *name, nn_tensor *t, const placement *p,
                            nn_tensor *off, const index_rule *rule) {
  nn_tensor *tc = nn_contiguous(t);
  if (!tc) return NULL;
  nn_tensor *out = read_at(op, tc, p, off, rule);
  if (out && !rule && nn_needs_grad(tc, NULL, NULL)) {
    nn_node *node = nn_node_attach(out, name, gather_at_backward, 1, tc, NULL, NULL);
    if (!node) {
      nn_release(out);
      out = NULL;
    } else {
      nn_node_save(node, 0, off);
      save_placement(node, p, t);
    }
  }
  nn_release(tc);
  return out;
}

static int put_at_backward(nn_node *node, nn_tensor *g, nn_tensor **gi) {
  placement p;
  nn_tensor *off = node->saved[0];
  load_placement(node, off, &p);
  int accumulate = node->scalar[0] != 0;
  if (node->inputs[0]) {
    if (accumulate) {
      gi[0] = nn_retain(g);
    } else {
      /* what the write replaced has no influence on the result */
      nn_tensor *zero = nn_full_like_shape(g, g->dtype, 0, NULL, 0);
      gi[0] = zero ? put_at("put backward", g, &p, off, zero, 0, NULL) : NULL;
      nn_release(zero);
      if (!gi[0]) return -1;
    }
  }
  if (node->inputs[1]) {
    /* a recorded read (when a pass records itself), so that the values'
       gradient is differentiable again */
    nn_tensor *gv = gather_at("put backward", "GatherBackward0", g, &p, off, NULL);
    nn_tensor *v = node->inputs[1];
    gi[1] = gv ? nn_sum_to_shape(gv, v->ndim, v->size) : NULL;
    nn_release(gv);
    if (!gi[1]) return -1;
  }
  return 0;
}

/* A copy of t (contiguous) with values written (or added) at p; off holds
   offsets, or indices read by rule (no gradient then). */
static nn_tensor *put_at(const char *op, nn_tensor *t, const placement *p, nn_tensor *off,
                         nn_tensor *values, int accumulate, const index_rule *rule) {
  if (nn_check_same_device(op, t, values) < 0) return NULL;
  nn_tensor *out = nn_empty_like(t);
  if (!out) return NULL;
  if (nn_copy_(out, t) < 0 || write_at(op, out, p, off, values, accumulate, rule) < 0) {
    nn_release(out);
    return NULL;
  }
  if (!rule && nn_needs_grad(t, values, NULL)) {
    nn_node *node = nn_node_attach(out, accumulate ? "IndexPutBackward0" : "IndexPutBackward0",
                                   put_at_backward, 2, t, values, NULL);
    if (!node) {
      nn_release(out);
      return NULL;
    }
    nn_node_save(node, 0, off);
    save_placement(node, p, t);
    node->scalar[0] = accumulate;
  }
  return out;
}

/* ---- placements of the ops ------------------------------------------ */
/* The placement of `index` along dim of t (shape T, strides given): S is
   index's shape (gather, scatter) or T with dim's size the count of a 1-d
   index (index_select, index_add: along = 1). */
/* With rule, *off is the index itself, spread the same way, and rule says
   how to read it. */
static int along_dim(const char *op, nn_tensor *t, const int64_t *strides, int dim,
                     nn_tensor *index, int base, int select, placement *p, nn_tensor **off,
                     index_rule *rule) {
  nn_tensor *flat = NULL;
  if (select) {
    if (index->ndim > 1) {
      nn_error_set("%s: the index must be 1-dimensional, got %d dimensions", op, index->ndim);
      return -1;
    }
    int64_t n = nn_numel(index);
    if (!(flat = nn_reshape(index, 1, &n))) return -1;
  }
  nn_tensor *o = rule ? nn_retain(select ? flat : index)
                      : offsets_of(op, select ? flat : index, t->size[dim], strides[dim], base, 0, dim);
  if (rule) *rule = (index_rule){t->size[dim], strides[dim], base, 0, dim};
  nn_release(flat);
  if (!o) return -1;
  p->ndim = t->ndim;
  p->offset = 0;
  for (int i = 0; i < t->ndim; i++) {
    p->size[i] = select ? (i == dim ? o->size[0] : t->size[i]) : index->size[i];
    p->stride[i] = i == dim ? 0 : strides[i];
  }
  *off = spread(o, p->ndim, p->size, select ? dim : 0);
  nn_release(o);
  return *off ? 0 : -1;
}

static int wrap_index_dim(const char *op, nn_tensor *t, int dim) {
  if (t->ndim == 0) {
    nn_error_set("%s: a 0-dimensional tensor has no dimension to index", op);
    return -1;
  }
  return nn_wrap_dim(op, dim, t->ndim);
}

/* index_select (select: a 1-d index, whole slices) or gather. */
static nn_tensor *read_along(const char *op, const char *name, nn_tensor *t, int dim,
                             nn_tensor *index, int base, int select) {
  int64_t cs[NN_MAX_DIMS];
  nn_contiguous_strides(t->ndim, t->size, cs);
  placement p;
  nn_tensor *off;
  index_rule rule;
  /* index_select's offsets are one per slice: made once, they cost less
     than checking each element's index again */
  index_rule *fused = !select && one_pass(op, t, index, NULL) ? &rule : NULL;
  if (along_dim(op, t, cs, dim, index, base, select, &p, &off, fused) < 0) return NULL;
  nn_tensor *out = gather_at(op, name, t, &p, off, fused);
  nn_release(off);
  return out;
}

nn_tensor *nn_index_select(nn_tensor *t, int dim, nn_tensor *index, int base) {
  const char *op = "index_select";
  if (check_index_tensor(op, t, index) < 0 || (dim = wrap_index_dim(op, t, dim)) < 0) return NULL;
  return read_along(op, "IndexSelectBackward0", t, dim, index, base, 1);
}

/* index's shape against t's (and src's) as gather and scatter need it. */
static int check_gather_shape(const char *op, nn_tensor *t, int dim, nn_tensor *index,
                              nn_tensor *src) {
  if (index->ndim != t->ndim || (src && src->ndim != t->ndim)) {
    nn_error_set("%s: the index (%d dimensions)%s must have as many dimensions as the input (%d)",
                 op, index->ndim, src ? " and the source" : "", t->ndim);
    return -1;
  }
  for (int i = 0; i < t->ndim; i++) {
    if ((i != dim && index->size[i] > t->size[i]) || (src && index->size[i] > src->size[i])) {
      nn_error_set("%s: the index's size %lld in dimension %d exceeds the %s's %lld", op,
                   (long long)index->size[i], i + 1, i != dim && index->size[i] > t->size[i] ? "input" : "source",
                   (long long)(i != dim && index->size[i] > t->size[i] ? t->size[i] : src->size[i]));
      return -1;
    }
  }
  return 0;
}

nn_tensor *nn_gather(nn_tensor *t, int dim, nn_tensor *index, int base) {
  const char *op = "gather";
  if (check_index_tensor(op, t, index) < 0 || (dim = wrap_index_dim(op, t, dim)) < 0) return NULL;
  if (check_gather_shape(op, t, dim, index, NULL) < 0) return NULL;
  return read_along(op, "GatherBackward0", t, dim, index, base, 0);
}

static int check_same_dtype(const char *op, const nn_tensor *t, const nn_tensor *src) {
  if (t->dtype == src->dtype) return 0;
  nn_error_set("%s: the source's dtype (%s) must be the input's (%s)", op,
               nn_dtype_name(src->dtype), nn_dtype_name(t->dtype));
  return -1;
}

nn_tensor *nn_scatter(nn_tensor *t, int dim, nn_tensor *index, nn_tensor *src, int accumulate,
                      int base) {
  const char *op = accumulate ? "scatter_add" : "scatter";
  if (check_index_tensor(op, t, index) < 0 || (dim = wrap_index_dim(op, t, dim)) < 0) return NULL;
  if (nn_check_same_device(op, t, src) < 0) return NULL;
  if (src->ndim == 0 && !accumulate) { /* a value: broadcast over the index's shape */
    if (check_gather_shape(op, t, dim, index, NULL) < 0) return NULL;
  } else if (check_same_dtype(op, t, src) < 0 || check_gather_shape(op, t, dim, index, src) < 0) {
    return NULL;
  }
  int64_t cs[NN_MAX_DIMS];
  nn_contiguous_strides(t->ndim, t->size, cs);
  placement p;
  nn_tensor *off;
  index_rule rule;
  index_rule *fused = one_pass(op, t, index, src) ? &rule : NULL;
  if (along_dim(op, t, cs, dim, index, base, 0, &p, &off, fused) < 0) return NULL;
  /* src's leading part of the index's shape */
  nn_tensor *values = nn_retain(src);
  for (int i = 0; i < src->ndim && values; i++) {
    if (values->size[i] == index->size[i]) continue;
    nn_tensor *part = nn_narrow(values, i, 0, index->size[i]);
    nn_release(values);
    values = part;
  }
  nn_tensor *out = values ? put_at(op, t, &p, off, values, accumulate, fused) : NULL;
  nn_release(values);
  nn_release(off);
  return out;
}

nn_tensor *nn_index_add(nn_tensor *t, int dim, nn_tensor *index, nn_tensor *src, double alpha,
                        int base) {
  const char *op = "index_add";
  if (check_index_tensor(op, t, index) < 0 || (dim = wrap_index_dim(op, t, dim)) < 0) return NULL;
  if (nn_check_same_device(op, t, src) < 0 || check_same_dtype(op, t, src) < 0) return NULL;
  int64_t cs[NN_MAX_DIMS];
  nn_contiguous_strides(t->ndim, t->size, cs);
  placement p;
  nn_tensor *off;
  if (along_dim(op, t, cs, dim, index, base, 1, &p, &off, NULL) < 0) return NULL;
  int fits = src->ndim == p.ndim;
  for (int i = 0; fits && i < p.ndim; i++) fits = src->size[i] == p.size[i];
  if (!fits) {
    char a[96], b[96];
    nn_error_set("%s: the source has shape %s, expected %s (the input's with dimension %d the "
                 "index's length)", op, nn_shape_string(src, a, sizeof a),
                 nn_sizes_string(p.ndim, p.size, b, sizeof b), dim + 1);
    nn_release(off);
    return NULL;
  }
  nn_tensor *values = alpha == 1 ? nn_retain(src) : nn_binary_scalar(NN_MUL, src, alpha, 0);
  nn_tensor *out = values ? put_at(op, t, &p, off, values, 1, NULL) : NULL;
  nn_release(values);
  nn_release(off);
  return out;
}

nn_tensor *nn_take(nn_tensor *t, nn_tensor *index, int base) {
  const char *op = "take";
  if (check_index_tensor(op, t, index) < 0) return NULL;
  index_rule rule = {nn_numel(t), 1, base, 1, -1};
  index_rule *fused = one_pass(op, t, index, NULL) ? &rule : NULL;
  nn_tensor *o = fused ? nn_retain(index) : offsets_of(op, index, nn_numel(t), 1, base, 1, -1);
  if (!o) return NULL;
  placement p = {.ndim = index->ndim, .offset = 0};
  for (int i = 0; i < index->ndim; i++) p.size[i] = index->size[i], p.stride[i] = 0;
  nn_tensor *off = spread(o, p.ndim, p.size, 0);
  nn_release(o);
  nn_tensor *out = off ? gather_at(op, "TakeBackward0", t, &p, off, fused) : NULL;
  nn_release(off);
  return out;
}

/* ---- advanced indexing: index tensors on the leading dims ------------- */
static int broadcast_sizes(const char *op, int *ndim, int64_t *size, const nn_tensor *b) {
  int n = *ndim > b->ndim ? *ndim : b->ndim;
  int64_t out[NN_MAX_DIMS];
  for (int i = 0; i < n; i++) {
    int ia = *ndim - n + i, ib = b->ndim - n + i;
    int64_t sa = ia >= 0 ? size[ia] : 1, sb = ib >= 0 ? b->size[ib] : 1;
    if (sa != sb && sa != 1 && sb != 1) {
      nn_error_set("%s: the index tensors' shapes do not broadcast (size %lld against %lld)", op,
                   (long long)sa, (long long)sb);
      return -1;
    }
    out[i] = sa == 1 ? sb : sa;
  }
  *ndim = n;
  for (int i = 0; i < n; i++) size[i] = out[i];
  return 0;
}

/* The placement of t[mask] for a mask whose dims lie over t as one block
   (each stride the next one's times its size): the flat positions of the
   true elements, times the last masked dim's stride, are the offsets
   themselves, so one column of coordinates does (no per-dim offsets to
   add up). */
static int mask_block(const char *op, nn_tensor *t, nn_tensor *mask, const int64_t *strides,
                      placement *p, nn_tensor **off) {
  int64_t n = nn_numel(mask);
  nn_tensor *line = nn_reshape(mask, 1, &n);
  nn_tensor *coords = line ? nn_nonzero(line, 0) : NULL; /* (count, 1) */
  nn_release(line);
  if (!coords) return -1;
  int64_t count = coords->size[0];
  nn_tensor *pos = nn_reshape(coords, 1, &count);
  nn_release(coords);
  int64_t scale = strides[mask->ndim - 1];
  nn_tensor *o = pos && scale != 1 ? offsets_of(op, pos, n, scale, 0, 0, -1) : nn_retain(pos);
  nn_release(pos);
  if (!o) return -1;
  p->ndim = 1 + t->ndim - mask->ndim;
  p->offset = 0;
  p->size[0] = count, p->stride[0] = 0;
  for (int i = mask->ndim; i < t->ndim; i++)
    p->size[1 + i - mask->ndim] = t->size[i], p->stride[1 + i - mask->ndim] = strides[i];
  *off = spread(o, p->ndim, p->size, 0);
  nn_release(o);
  return *off ? 0 : -1;
}

/* The placement of t[index[0], ..., index[k-1]] over strides; a single bool
   index is a mask over t's leading dims, taken as the int64 coordinates of
   its true elements. */
static int advanced(const char *op, nn_tensor *t, int k, nn_tensor *const *index_in, int base,
                    const int64_t *strides, placement *p, nn_tensor **off) {
  nn_tensor *columns[NN_MAX_DIMS] = {NULL};
  nn_tensor *const *index = index_in;
  int status = -1;
  nn_tensor *sum = NULL;
  if (k < 1 || k > t->ndim) {
    nn_error_set("%s: %d index tensors for a tensor of %d dimensions", op, k, t->ndim);
    return -1;
  }
  for (int d = 0; d < k; d++) {
    if (nn_check_same_device(op, t, index[d]) < 0) return -1;
    if (index[d]->dtype == NN_BOOL && k > 1) {
      nn_error_set("%s: a bool mask must be the only index", op);
      return -1;
    }
    if (index[d]->dtype != NN_BOOL && index[d]->dtype != NN_INT64) {
      nn_error_set("%s: indices must be int64 or bool tensors, got %s", op,
                   nn_dtype_name(index[d]->dtype));
      return -1;
    }
  }
  if (index[0]->dtype == NN_BOOL) {
    nn_tensor *mask = index[0];
    int fits = mask->ndim <= t->ndim && mask->ndim > 0;
    for (int i = 0; fits && i < mask->ndim; i++) fits = mask->size[i] == t->size[i];
    if (!fits) {
      char a[96], b[96];
      nn_error_set("%s: the mask's shape %s does not match the tensor's %s", op,
                   nn_shape_string(mask, a, sizeof a), nn_shape_string(t, b, sizeof b));
      return -1;
    }
    int block = 1;
    for (int d = 0; d + 1 < mask->ndim; d++)
      block = block && strides[d] == strides[d + 1] * t->size[d + 1];
    if (block) return mask_block(op, t, mask, strides, p, off);
    nn_tensor *coords = nn_nonzero(mask, 0);
    if (!coords) return -1;
    for (k = 0; k < mask->ndim; k++)
      if (!(columns[k] = nn_select(coords, 1, k))) break;
    nn_release(coords);
    if (k < mask->ndim) goto done;
    index = columns;
    base = 0;
  }
  int bdim = 0;
  int64_t bsize[NN_MAX_DIMS];
  for (int d = 0; d < k; d++)
    if (broadcast_sizes(op, &bdim, bsize, index[d]) < 0) goto done;
  if (bdim + t->ndim - k > NN_MAX_DIMS) {
    nn_error_set("%s: the result would have more than %d dimensions", op, NN_MAX_DIMS);
    goto done;
  }
  for (int d = 0; d < k; d++) {
    nn_tensor *o = offsets_of(op, index[d], t->size[d], strides[d], base, 1, d);
    if (!o) goto done;
    nn_tensor *next = sum ? nn_binary(NN_ADD, sum, o) : nn_retain(o);
    nn_release(o);
    nn_release(sum);
    if (!(sum = next)) goto done;
  }
  p->ndim = bdim + t->ndim - k;
  p->offset = 0;
  for (int i = 0; i < bdim; i++) p->size[i] = bsize[i], p->stride[i] = 0;
  for (int i = k; i < t->ndim; i++) p->size[bdim + i - k] = t->size[i], p->stride[bdim + i - k] = strides[i];
  /* sum has the broadcast shape bdim (or fewer dims: a lone index) */
  *off = spread(sum, p->ndim, p->size, bdim - sum->ndim);
  status = *off ? 0 : -1;
done:
  for (int d = 0; d < NN_MAX_DIMS; d++) nn_release(columns[d]);
  nn_release(sum);
  return status;
}

nn_tensor *nn_index(nn_tensor *t, int k, nn_tensor *const *index, int base) {
  int64_t cs[NN_MAX_DIMS];
  nn_contiguous_strides(t->ndim, t->size, cs);
  placement p;
  nn_tensor *off;
  if (advanced("index", t, k, index, base, cs, &p, &off) < 0) return NULL;
  nn_tensor *out = gather_at("index", "IndexBackward0", t, &p, off, NULL);
  nn_release(off);
  return out;
}

/* t[mask] = value, for a mask of t's shape and a single value, in place: t
   where the mask is false, the value where it is true, in one pass with
   no coordinates (the same writes as the placement's). 1: not that case
   (nothing done, no error set). */
static int mask_fill(const char *op, nn_tensor *t, nn_tensor *mask, nn_tensor *values) {
  if (mask->dtype != NN_BOOL || values->ndim != 0 || !nn_same_shape(mask, t) ||
      mask->device != t->device || values->device != t->device)
    return 1;
  const nn_backend *be = nn_dispatch(op, offsetof(nn_backend, where), t, mask, values);
  if (!be) return -1;
  nn_tensor *v = nn_to_dtype(values, t->dtype);
  if (!v) return -1;
  nn_iter it;
  nn_tensor *ts[4] = {t, mask, v, t};
  nn_iter_init(&it, 4, ts, t->ndim, t->size);
  int status = be->where(&it);
  nn_release(v);
  if (status == 0) nn_bump_version(t);
  return status;
}

int nn_index_put_(nn_tensor *t, int k, nn_tensor *const *index, nn_tensor *values, int accumulate,
                  int base) {
  const char *op = "index_put_";
  nn_inplace ip;
  int record = nn_inplace_begin(&ip, op, t, values, 0);
  if (record < 0) return -1;
  placement p;
  nn_tensor *off;
  if (record) {
    int64_t cs[NN_MAX_DIMS];
    nn_contiguous_strides(t->ndim, t->size, cs);
    if (advanced(op, t, k, index, base, cs, &p, &off) < 0) {
      nn_inplace_cancel(&ip);
      return -1;
    }
    nn_tensor *result = put_at(op, ip.self, &p, off, values, accumulate, NULL);
    nn_release(off);
    return nn_inplace_commit(&ip, result, "IndexPutBackward0");
  }
  if (k == 1 && !accumulate) {
    int filled = mask_fill(op, t, index[0], values);
    if (filled <= 0) return filled;
  }
  if (advanced(op, t, k, index, base, t->stride, &p, &off) < 0) return -1;
  /* values read from t itself are read before any write, as PyTorch does */
  nn_tensor *v = values->storage == t->storage ? nn_clone(values) : nn_retain(values);
  int status = v ? write_at(op, t, &p, off, v, accumulate, NULL) : -1;
  nn_release(v);
  nn_release(off);
  return status;
}

/* ---- where, masked_fill, masked_select, nonzero ----------------------- */

static int where_backward(nn_node *node, nn_tensor *g, nn_tensor **gi) {
  nn_tensor *cond = node->saved[0];
  nn_tensor *zero = nn_full_like_shape(g, g->dtype, 0, NULL, 0);
  if (!zero) return -1;
  for (int k = 0; k < 2; k++) {
    nn_tensor *in = node->inputs[k];
    if (!in) continue;
    nn_tensor *part = k == 0 ? nn_where(cond, g, zero) : nn_where(cond, zero, g);
    gi[k] = part ? nn_sum_to_shape(part, in->ndim, in->size) : NULL;
    nn_release(part);
    if (!gi[k]) {
      nn_release(zero);
      return -1;
    }
  }
  nn_release(zero);
  return 0;
}

nn_tensor *nn_where(nn_tensor *cond, nn_tensor *a, nn_tensor *b) {
  const char *op = "where";
  const nn_backend *be = nn_dispatch(op, offsetof(nn_backend, where), cond, a, b);
  if (!be) return NULL;
  if (cond->dtype != NN_BOOL) {
    nn_error_set("where: the condition must be a bool tensor, got %s", nn_dtype_name(cond->dtype));
    return NULL;
  }
  int ndim = 0;
  int64_t size[NN_MAX_DIMS];
  if (broadcast_sizes(op, &ndim, size, cond) < 0 || broadcast_sizes(op, &ndim, size, a) < 0 ||
      broadcast_sizes(op, &ndim, size, b) < 0)
    return NULL;
  nn_dtype dtype = nn_promote_dtypes(a->dtype, b->dtype);
  nn_tensor *ac = nn_to_dtype(a, dtype), *bc = ac ? nn_to_dtype(b, dtype) : NULL;
  nn_tensor *out = bc ? nn_empty_like_shape(a, dtype, ndim, size) : NULL;
  if (out) {
    nn_iter it;
    nn_tensor *ts[4] = {out, cond, ac, bc};
    nn_iter_init(&it, 4, ts, ndim, size);
    if (be->where(&it) < 0) {
      nn_release(out);
      out = NULL;
    }
  }
  if (out && nn_needs_grad(ac, bc, NULL)) {
    nn_node *node = nn_node_attach(out, "WhereBackward0", where_backward, 2, ac, bc, NULL);
    if (!node) {
      nn_release(out);
      out = NULL;
    } else {
      nn_node_save(node, 0, cond);
    }
  }
  nn_release(ac);
  nn_release(bc);
  return out;
}

static int check_mask(const char *op, const nn_tensor *t, const nn_tensor *mask) {
  if (nn_check_same_device(op, t, mask) < 0) return -1;
  if (mask->dtype != NN_BOOL) {
    nn_error_set("%s: the mask must be a bool tensor, got %s", op, nn_dtype_name(mask->dtype));
    return -1;
  }
  return 0;
}

nn_tensor *nn_masked_fill(nn_tensor *t, nn_tensor *mask, double value) {
  const char *op = "masked_fill";
  if (check_mask(op, t, mask) < 0) return NULL;
  int ndim = t->ndim;
  int64_t size[NN_MAX_DIMS];
  for (int i = 0; i < ndim; i++) size[i] = t->size[i];
  if (broadcast_sizes(op, &ndim, size, mask) < 0) return NULL;
  if (ndim != t->ndim || nn_shape_numel(ndim, size) != nn_numel(t)) {
    char a[96], b[96];
    nn_error_set("masked_fill: the mask's shape %s does not broadcast to the tensor's %s",
                 nn_shape_string(mask, a, sizeof a), nn_shape_string(t, b, sizeof b));
    return NULL;
  }
  nn_tensor *v = nn_full_like_shape(t, t->dtype, 0, NULL, value);
  nn_tensor *out = v ? nn_where(mask, v, t) : NULL;
  nn_release(v);
  return out;
}

nn_tensor *nn_masked_select(nn_tensor *t, nn_tensor *mask) {
  const char *op = "masked_select";
  if (check_mask(op, t, mask) < 0) return NULL;
  int ndim = t->ndim;
  int64_t size[NN_MAX_DIMS];
  for (int i = 0; i < ndim; i++) size[i] = t->size[i];
  if (broadcast_sizes(op, &ndim, size, mask) < 0) return NULL;
  nn_tensor *te = nn_expand(t, ndim, size), *me = te ? nn_expand(mask, ndim, size) : NULL;
  nn_tensor *out = NULL;
  if (me && ndim == 0) { /* a single element: a 1-d result of 0 or 1 */
    nn_tensor *tv = nn_unsqueeze(te, 0), *mv = tv ? nn_unsqueeze(me, 0) : NULL;
    out = mv ? nn_index(tv, 1, &mv, 0) : NULL;
    nn_release(tv);
    nn_release(mv);
  } else if (me) {
    nn_tensor *flat_t = nn_reshape(te, 1, (int64_t[]){-1});
    nn_tensor *flat_m = flat_t ? nn_reshape(me, 1, (int64_t[]){-1}) : NULL;
    out = flat_m ? nn_index(flat_t, 1, &flat_m, 0) : NULL;
    nn_release(flat_t);
    nn_release(flat_m);
  }
  nn_release(te);
  nn_release(me);
  return out;
}

nn_tensor *nn_nonzero(nn_tensor *t, int base) {
  const char *op = "nonzero";
  const nn_backend *be = nn_dispatch(op, offsetof(nn_backend, nonzero), t, NULL, NULL);
  if (!be) return NULL;
  double n = 0;
  if (nn_numel(t) > 0) { /* (the sum of no elements divides by a line of 0 in Debug builds) */
    /* count_nonzero's lanes: a mask's sum went element by element (32
       instructions an element at 1e6) */
    nn_grad_guard guard = nn_no_grad_begin();
    nn_tensor *count = nn_count_nonzero(t, (1u << t->ndim) - 1); /* every dim */
    nn_no_grad_end(guard);
    int st = count ? nn_item(count, &n) : -1;
    nn_release(count);
    if (st < 0) return NULL;
  }
  int64_t size[2] = {(int64_t)n, t->ndim};
  nn_tensor *out = nn_empty_like_shape(t, NN_INT64, 2, size);
  if (!out) return NULL;
  nn_strided s = {t->dtype, t->ndim, {0}, {0}, nn_data(t)};
  for (int i = 0; i < t->ndim; i++) s.size[i] = t->size[i], s.stride[i] = t->stride[i];
  if (be->nonzero(&s, nn_data(out), size[0]) < 0) {
    nn_release(out);
    return NULL;
  }
  if (base == 0) return out;
  /* in place: the result is new, nothing else holds it */
  if (nn_binary_scalar_(NN_ADD, out, base) < 0) {
    nn_release(out);
    return NULL;
  }
  return out;
}

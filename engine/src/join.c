/* join.c: tensors put together (cat, stack) and rearranged by copying
 * (repeat, roll); each backward beside its forward. Splitting needs no
 * code of its own: split, chunk and unbind are narrow and select views. */
#include "internal.h"

#include <stddef.h>

static int cat_backward(nn_node *node, nn_tensor *g, nn_tensor **gi) {
  int dim = (int)node->ints[0];
  int64_t start = 0;
  for (int k = 0; k < node->n_inputs; k++) {
    int64_t length = node->ints[1 + k];
    if (node->inputs[k] && !(gi[k] = nn_narrow(g, dim, start, length))) return -1;
    start += length;
  }
  return 0;
}


/* PyTorch still skips a 1-d tensor of size 0 beside tensors of other ranks */
static int skipped(const nn_tensor *t) { return t->ndim == 1 && t->size[0] == 0; }

/* Copies ts (checked) into one tensor; a node of up to NN_NODE_INPUTS
   inputs. */
static nn_tensor *cat_some(int n, nn_tensor *const *ts, int dim, const nn_tensor *like,
                           nn_dtype dtype) {
  int64_t size[NN_MAX_DIMS];
  for (int i = 0; i < like->ndim; i++) size[i] = like->size[i];
  size[dim] = 0;
  for (int k = 0; k < n; k++)
    if (!skipped(ts[k]) || like->ndim == 1) size[dim] += ts[k]->size[dim];
  nn_tensor *out = nn_empty_like_shape(like, dtype, like->ndim, size);
  if (!out) return NULL;
  int64_t start = 0;
  for (int k = 0; k < n; k++) {
    if (skipped(ts[k]) && like->ndim != 1) continue;
    nn_tensor *part = nn_narrow(out, dim, start, ts[k]->size[dim]);
    int st = part ? nn_copy_(part, ts[k]) : -1;
    nn_release(part);
    if (st < 0) {
      nn_release(out);
      return NULL;
    }
    start += ts[k]->size[dim];
  }
  if (!nn_needs_grad(ts[0], n > 1 ? ts[1] : NULL, n > 2 ? ts[2] : NULL)) return out;
  nn_tensor *in[NN_NODE_INPUTS] = {NULL, NULL, NULL};
  for (int k = 0; k < n; k++) in[k] = nn_dtype_is_floating(ts[k]->dtype) ? ts[k] : NULL;
  nn_node *node = nn_node_attach(out, "CatBackward0", cat_backward, n, in[0], in[1], in[2]);
  if (!node) {
    nn_release(out);
    return NULL;
  }
  node->ints[0] = dim;
  for (int k = 0; k < n; k++)
    node->ints[1 + k] = skipped(ts[k]) && like->ndim != 1 ? 0 : ts[k]->size[dim];
  return out;
}

/* Many inputs that need gradients: a tree of nodes of three, each element
   copied log3(n) times (a node holds three inputs). */
static nn_tensor *cat_tree(int n, nn_tensor *const *ts, int dim, const nn_tensor *like,
                           nn_dtype dtype) {
  if (n <= NN_NODE_INPUTS || !nn_grad_enabled()) return cat_some(n, ts, dim, like, dtype);
  int per = (n + NN_NODE_INPUTS - 1) / NN_NODE_INPUTS;
  nn_tensor *parts[NN_NODE_INPUTS] = {NULL, NULL, NULL};
  int m = 0;
  for (int at = 0; at < n; at += per, m++) {
    int count = n - at < per ? n - at : per;
    if (!(parts[m] = cat_tree(count, ts + at, dim, like, dtype))) break;
  }
  nn_tensor *out = NULL;
  int complete = 1;
  for (int k = 0; k < m; k++) complete = complete && parts[k];
  if (complete) out = cat_some(m, parts, dim, like, dtype);
  for (int k = 0; k < m; k++) nn_release(parts[k]);
  return out;
}

nn_tensor *nn_cat(int n, nn_tensor *const *ts, int dim) {
  if (n < 1) {
    nn_error_set("cat: expected a non-empty list of tensors");
    return NULL;
  }
  const nn_tensor *like = NULL;
  nn_dtype dtype = ts[0]->dtype;
  for (int k = 0; k < n; k++) {
    if (nn_check_same_device("cat", ts[0], ts[k]) < 0) return NULL;
    dtype = nn_promote_dtypes(dtype, ts[k]->dtype);
    if (!like && !skipped(ts[k])) like = ts[k];
  }
  if (!like) like = ts[0];
  if (like->ndim == 0) {
    nn_error_set("cat: a 0-dimensional tensor cannot be concatenated (tensor 1); unsqueeze it or "
                 "use stack");
    return NULL;
  }
  if ((dim = nn_wrap_dim("cat", dim, like->ndim)) < 0) return NULL;
  for (int k = 0; k < n; k++) {
    const nn_tensor *t = ts[k];
    if (skipped(t) && like->ndim != 1) continue;
    if (t->ndim != like->ndim) {
      nn_error_set("cat: tensors must have the same number of dimensions: tensor %d has %d, "
                   "another %d", k + 1, t->ndim, like->ndim);
      return NULL;
    }
    for (int i = 0; i < t->ndim; i++) {
      if (i != dim && t->size[i] != like->size[i]) {
        nn_error_set("cat: sizes must match except in dimension %d: tensor %d has size %lld in "
                     "dimension %d, another %lld", dim + 1, k + 1, (long long)t->size[i], i + 1,
                     (long long)like->size[i]);
        return NULL;
      }
    }
  }
  int mixed = 0;
  for (int k = 0; k < n; k++) mixed = mixed || ts[k]->dtype != dtype;
  if (!mixed) return cat_tree(n, ts, dim, like, dtype);
  /* converted first, so that each input's gradient comes back in its dtype */
  nn_tensor **same = calloc((size_t)n, sizeof *same);
  if (!same) {
    nn_error_set("cat: out of memory");
    return NULL;
  }
  int k = 0;
  for (; k < n; k++)
    if (!(same[k] = nn_to_dtype(ts[k], dtype))) break;
  nn_tensor *out = k == n ? cat_tree(n, same, dim, like, dtype) : NULL;
  for (int i = 0; i < k; i++) nn_release(same[i]);
  free(same);
  return out;
}

nn_tensor *nn_stack(int n, nn_tensor *const *ts, int dim) {
  if (n < 1) {
    nn_error_set("stack: expected a non-empty list of tensors");
    return NULL;
  }
  for (int k = 1; k < n; k++) {
    if (!nn_same_shape(ts[0], ts[k])) {
      char a[96], b[96];
      nn_error_set("stack: every tensor must have the same shape: tensor 1 is %s, tensor %d %s",
                   nn_shape_string(ts[0], a, sizeof a), k + 1, nn_shape_string(ts[k], b, sizeof b));
      return NULL;
    }
  }
  int nd = ts[0]->ndim + 1;
  if (dim < -nd || dim >= nd) {
    nn_error_set("stack: dimension %d out of range for a result of %d dimensions",
                 dim >= 0 ? dim + 1 : dim, nd);
    return NULL;
  }
  nn_tensor **parts = calloc((size_t)n, sizeof *parts);
  if (!parts) {
    nn_error_set("stack: out of memory");
    return NULL;
  }
  nn_tensor *out = NULL;
  int k = 0;
  for (; k < n; k++)
    if (!(parts[k] = nn_unsqueeze(ts[k], dim))) break;
  if (k == n) out = nn_cat(n, parts, dim);
  for (int i = 0; i < k; i++) nn_release(parts[i]);
  free(parts);
  return out;
}

nn_tensor *nn_repeat(nn_tensor *t, int n, const int64_t *repeats) {
  if (n < t->ndim) {
    nn_error_set("repeat: %d repeats given for a tensor of %d dimensions (at least as many are "
                 "needed)", n, t->ndim);
    return NULL;
  }
  if (n >= NN_MAX_DIMS) { /* each step adds a dim for a moment */
    nn_error_set("repeat: at most %d dimensions", NN_MAX_DIMS - 1);
    return NULL;
  }
  for (int i = 0; i < n; i++)
    if (repeats[i] < 0) {
      nn_error_set("repeat: repeat %lld (dimension %d) is negative", (long long)repeats[i], i + 1);
      return NULL;
    }
  /* leading dims of size 1, then one dim at a time: a new dim of `r`
     before it, expanded (no copy) and merged with it (a copy) */
  int64_t size[NN_MAX_DIMS] = {0}; /* (none read when n is 0) */
  for (int i = 0; i < n; i++) size[i] = i < n - t->ndim ? 1 : t->size[i - (n - t->ndim)];
  nn_tensor *cur = nn_reshape(t, n, size);
  for (int d = 0; d < n && cur; d++) {
    if (repeats[d] == 1) continue;
    nn_tensor *u = nn_unsqueeze(cur, d);
    int64_t want[NN_MAX_DIMS];
    for (int i = 0; u && i <= n; i++) want[i] = u->size[i];
    want[d] = repeats[d];
    nn_tensor *e = u ? nn_expand(u, n + 1, want) : NULL;
    int64_t merged[NN_MAX_DIMS];
    for (int i = 0; i < n; i++) merged[i] = cur->size[i];
    merged[d] *= repeats[d];
    nn_tensor *next = e ? nn_reshape(e, n, merged) : NULL;
    nn_release(u);
    nn_release(e);
    nn_release(cur);
    cur = next;
  }
  /* a result that shares t's memory would alias it; repeat always copies */
  if (cur && cur->storage == t->storage) {
    nn_tensor *copy = nn_clone(cur);
    nn_release(cur);
    cur = copy;
  }
  return cur;
}

nn_tensor *nn_roll(nn_tensor *t, int n, const int64_t *shifts, const int *dims) {
  if (n == 0) { /* the flattened tensor, shape restored */
    int64_t numel = nn_numel(t);
    nn_tensor *flat = nn_reshape(t, 1, &numel);
    int zero = 0;
    nn_tensor *rolled = flat ? nn_roll(flat, 1, shifts, &zero) : NULL;
    nn_tensor *out = rolled ? nn_reshape(rolled, t->ndim, t->size) : NULL;
    nn_release(flat);
    nn_release(rolled);
    return out;
  }
  nn_tensor *cur = nn_retain(t);
  for (int k = 0; k < n && cur; k++) {
    int dim = nn_wrap_dim("roll", dims[k], t->ndim);
    if (dim < 0 || t->ndim == 0) {
      if (t->ndim == 0) nn_error_set("roll: a 0-dimensional tensor has no dimension to roll");
      nn_release(cur);
      return NULL;
    }
    int64_t size = cur->size[dim];
    int64_t s = size ? ((shifts[k] % size) + size) % size : 0;
    if (s == 0) continue;
    nn_tensor *tail = nn_narrow(cur, dim, size - s, s);
    nn_tensor *head = tail ? nn_narrow(cur, dim, 0, size - s) : NULL;
    nn_tensor *parts[2] = {tail, head};
    nn_tensor *next = head ? nn_cat(2, parts, dim) : NULL;
    nn_release(tail);
    nn_release(head);
    nn_release(cur);
    cur = next;
  }
  if (cur && cur->storage == t->storage) { /* no shift at all: still a copy */
    nn_tensor *copy = nn_clone(cur);
    nn_release(cur);
    cur = copy;
  }
  return cur;
}

/* sort.c: the fronts of the ops that walk a dim in order: cumsum and
 * cumprod (scans), and sort with what is built on it (topk, kthvalue,
 * median). Indices are 0-based here; the binding adds 1. Loops:
 * cpu/scan.c. */
#include "internal.h"

#include <stddef.h>

/* One reduced dim's geometry over x's shape with every operand full-shape. */
static void line_geometry(nn_reduce_geom *r, int n, nn_tensor *const *ts, const nn_tensor *shape,
                          int dim) {
  unsigned full = (1u << n) - 1;
  nn_reduce_init(r, n, ts, full, shape->ndim, shape->size, shape->ndim ? 1u << dim : 0);
}

static int wrap_dim(const char *op, int dim, const nn_tensor *a) {
  if (a->ndim == 0) return dim == 0 || dim == -1 ? 0 : nn_wrap_dim(op, dim, 1);
  return nn_wrap_dim(op, dim, a->ndim);
}

/* ---- cumsum, cumprod -------------------------------------------------------- */
static nn_tensor *scan(nn_scan_op op, nn_tensor *a, int dim, int reverse);

/* cumsum's gradient: the sums from the other end, a scan itself. */
static int cumsum_backward(nn_node *node, nn_tensor *g, nn_tensor **gi) {
  gi[0] = scan(NN_SCAN_SUM, g, (int)node->ints[0], !node->ints[1]);
  return gi[0] ? 0 : -1;
}

nn_tensor *nn_cumprod_backward(nn_tensor *g, nn_tensor *x, nn_tensor *out, int dim) {
  if (nn_backward_records(g, x, out)) return nn_cumprod_backward_graph(g, x, out, dim);
  const nn_backend *be =
      nn_dispatch("cumprod backward", offsetof(nn_backend, cumprod_backward), g, x, out);
  nn_tensor *gi = be ? nn_empty_like(x) : NULL;
  if (!gi) return NULL;
  nn_reduce_geom r;
  nn_tensor *ts[4] = {gi, x, out, g};
  line_geometry(&r, 4, ts, x, dim);
  if (be->cumprod_backward(&r) < 0) {
    nn_release(gi);
    return NULL;
  }
  return gi;
}

static int cumprod_backward(nn_node *node, nn_tensor *g, nn_tensor **gi) {
  gi[0] = nn_cumprod_backward(g, node->saved[0], node->saved[1], (int)node->ints[0]);
  return gi[0] ? 0 : -1;
}

static nn_tensor *scan(nn_scan_op op, nn_tensor *a, int dim, int reverse) {
  const char *name = op == NN_SCAN_SUM ? "cumsum" : "cumprod";
  const nn_backend *be = nn_dispatch(name, offsetof(nn_backend, scan), a, NULL, NULL);
  if (!be || (dim = wrap_dim(name, dim, a)) < 0) return NULL;
  nn_dtype dtype = nn_dtype_is_floating(a->dtype) ? a->dtype : NN_INT64;
  nn_tensor *out = nn_empty_like_shape(a, dtype, a->ndim, a->size);
  if (!out) return NULL;
  nn_reduce_geom r;
  nn_tensor *ts[2] = {out, a};
  line_geometry(&r, 2, ts, a, dim);
  if (be->scan(op, reverse, &r) < 0) {
    nn_release(out);
    return NULL;
  }
  if (nn_needs_grad(a, NULL, NULL)) {
    nn_node *node = nn_node_attach(out, op == NN_SCAN_SUM ? "CumsumBackward0" : "CumprodBackward0",
                                   op == NN_SCAN_SUM ? cumsum_backward : cumprod_backward, 1, a,
                                   NULL, NULL);
    if (!node) {
      nn_release(out);
      return NULL;
    }
    node->ints[0] = dim;
    node->ints[1] = reverse;
    if (op == NN_SCAN_PROD) {
      nn_node_save(node, 0, a);
      nn_node_save_output(node, 1, out);
    }
  }
  return out;
}

nn_tensor *nn_cumsum(nn_tensor *a, int dim) { return scan(NN_SCAN_SUM, a, dim, 0); }
nn_tensor *nn_cumprod(nn_tensor *a, int dim) { return scan(NN_SCAN_PROD, a, dim, 0); }

/* ---- sort ------------------------------------------------------------------- */
/* The gradient of values picked along dim at indices (of g's shape) from
   a tensor of shape (ndim, size): g added at those positions, 0 elsewhere. */
nn_tensor *nn_scatter_line_backward(nn_tensor *g, nn_tensor *indices, int dim, int ndim,
                                    const int64_t *size) {
  if (nn_backward_records(g, NULL, NULL))
    return nn_scatter_line_backward_graph(g, indices, dim, ndim, size);
  const nn_backend *be =
      nn_dispatch("sort backward", offsetof(nn_backend, scatter_line), g, indices, NULL);
  nn_tensor *gi = be ? nn_full_like_shape(g, g->dtype, ndim, size, 0) : NULL;
  if (!gi) return NULL;
  nn_reduce_geom r;
  nn_tensor *ts[3] = {gi, g, indices};
  line_geometry(&r, 3, ts, indices, dim);
  if (be->scatter_line(&r, ndim ? gi->stride[dim] : 0) < 0) {
    nn_release(gi);
    return NULL;
  }
  return gi;
}

static int sort_backward(nn_node *node, nn_tensor *g, nn_tensor **gi) {
  gi[0] = nn_scatter_line_backward(g, node->saved[0], (int)node->ints[0], node->ndim, node->size);
  return gi[0] ? 0 : -1;
}

/* The node of a result whose values came from positions idx along dim of
   a's lines (sort, topk, kthvalue, median): its gradient scatters back to
   them, so it keeps dim, a's shape and idx. */
static int attach_line_node(nn_tensor *values, const char *name, nn_backward_fn backward, nn_tensor *a,
                            int dim, nn_tensor *idx) {
  nn_node *node = nn_node_attach(values, name, backward, 1, a, NULL, NULL);
  if (!node) return -1;
  node->ints[0] = dim;
  node->ndim = a->ndim;
  for (int i = 0; i < a->ndim; i++) node->size[i] = a->size[i];
  nn_node_save(node, 0, idx);
  return 0;
}

/* Lines sorted along dim; with k >= 0 and a topk kernel, the results hold
   only the first k positions of each line (k along dim: a line's stride
   there is what the kernel writes through, so no full-size tensor is
   allocated, nor its pages touched one per line), and the node saves
   those k indices. */
static nn_tensor *sort_first(nn_tensor *a, int dim, int descending, int64_t k, nn_tensor **indices) {
  const nn_backend *be = nn_dispatch("sort", offsetof(nn_backend, sort), a, NULL, NULL);
  if (!be || (dim = wrap_dim("sort", dim, a)) < 0) return NULL;
  if (k >= 0 && (!be->topk || a->ndim == 0)) k = -1;
  if (a->dtype == NN_BOOL) {
    nn_error_set("sort: not supported for a bool tensor; convert it first (long() or float())");
    return NULL;
  }
  int64_t size[NN_MAX_DIMS];
  for (int i = 0; i < a->ndim; i++) size[i] = a->size[i];
  if (k >= 0) size[dim] = k;
  nn_tensor *values = nn_empty_like_shape(a, a->dtype, a->ndim, size);
  nn_tensor *idx = values ? nn_empty_like_shape(a, NN_INT64, a->ndim, size) : NULL;
  if (!idx) goto fail;
  nn_reduce_geom r;
  nn_tensor *ts[3] = {values, idx, a};
  line_geometry(&r, 3, ts, a, dim);
  if ((k >= 0 ? be->topk(descending, k, &r) : be->sort(descending, &r)) < 0) goto fail;
  if (nn_needs_grad(a, NULL, NULL) &&
      attach_line_node(values, k >= 0 ? "TopkBackward0" : "SortBackward0", sort_backward, a, dim, idx) < 0)
    goto fail;
  if (indices) *indices = idx;
  else nn_release(idx);
  return values;
fail:
  nn_release(values), nn_release(idx);
  return NULL;
}

nn_tensor *nn_sort(nn_tensor *a, int dim, int descending, nn_tensor **indices) {
  return sort_first(a, dim, descending, -1, indices);
}

/* ---- topk, kthvalue, median: a sort, then a view of it ----------------------- */
nn_tensor *nn_topk(nn_tensor *a, int64_t k, int dim, int largest, nn_tensor **indices) {
  int d = wrap_dim("topk", dim, a);
  if (d < 0) return NULL;
  int64_t n = a->ndim ? a->size[d] : 1;
  if (k < 0 || k > n) {
    nn_error_set("topk: k = %lld is out of range for a dimension of size %lld", (long long)k,
                 (long long)n);
    return NULL;
  }
  nn_tensor *idx = NULL, *sorted = sort_first(a, d, largest, k, &idx);
  if (!sorted) return NULL;
  /* where the topk kernel ran, the lines hold k already */
  int whole = a->ndim && sorted->size[d] != k;
  nn_tensor *values = whole ? nn_narrow(sorted, d, 0, k) : nn_retain(sorted);
  nn_tensor *ik = values && whole ? nn_narrow(idx, d, 0, k) : nn_retain(idx);
  nn_release(sorted), nn_release(idx);
  if (!values || !ik) {
    nn_release(values), nn_release(ik);
    return NULL;
  }
  if (indices) *indices = ik;
  else nn_release(ik);
  return values;
}

/* kthvalue's and median's gradient: g at the picked index of each line. */
static int select_backward(nn_node *node, nn_tensor *g, nn_tensor **gi) {
  int d = (int)node->ints[0];
  unsigned mask = node->ndim ? 1u << d : 0;
  nn_tensor *gk = nn_as_kept(g, node->ndim, node->size, mask);
  nn_tensor *ik = gk ? nn_as_kept(node->saved[0], node->ndim, node->size, mask) : NULL;
  gi[0] = ik ? nn_scatter_line_backward(gk, ik, d, node->ndim, node->size) : NULL;
  nn_release(gk), nn_release(ik);
  return gi[0] ? 0 : -1;
}

/* The element a stable sort puts at rank k (from 0) of each line along d,
   and its index, by the backend's selection (no sort, no full-size
   temporaries); with median set, a line holding NaN gives its first NaN. */
static nn_tensor *select_rank(const nn_backend *be, nn_tensor *a, int64_t k, int d, int keepdim,
                              int median, nn_tensor **indices) {
  unsigned mask = a->ndim ? 1u << d : 0;
  int64_t size[NN_MAX_DIMS];
  nn_kept_shape(a->ndim, a->size, mask, size);
  nn_tensor *values = nn_empty_like_shape(a, a->dtype, a->ndim, size);
  nn_tensor *idx = values ? nn_empty_like_shape(a, NN_INT64, a->ndim, size) : NULL;
  if (!idx) goto fail;
  nn_reduce_geom r;
  nn_tensor *ts[3] = {values, idx, a};
  nn_reduce_init(&r, 3, ts, 4u, a->ndim, a->size, mask);
  if (be->kthvalue(k, median, &r) < 0) goto fail;
  values = nn_squeeze_kept(values, a, mask, keepdim);
  idx = nn_squeeze_kept(idx, a, mask, keepdim);
  if (!values || !idx) goto fail;
  if (nn_needs_grad(a, NULL, NULL) &&
      attach_line_node(values, median ? "MedianBackward1" : "KthvalueBackward0", select_backward, a, d, idx) < 0)
    goto fail;
  if (indices) *indices = idx;
  else nn_release(idx);
  return values;
fail:
  nn_release(values), nn_release(idx);
  return NULL;
}

/* The backend's selection kernel where it has one and the dtype sorts. */
static const nn_backend *selection(const nn_tensor *a) {
  const nn_backend *be = nn_backend_for(a->device);
  return be && be->kthvalue && a->dtype != NN_BOOL ? be : NULL;
}

/* The k-th smallest (k from 1) along dim, as PyTorch's kthvalue. */
nn_tensor *nn_kthvalue(nn_tensor *a, int64_t k, int dim, int keepdim, nn_tensor **indices) {
  int d = wrap_dim("kthvalue", dim, a);
  if (d < 0) return NULL;
  int64_t n = a->ndim ? a->size[d] : 1;
  if (k < 1 || k > n) {
    nn_error_set("kthvalue: k = %lld is out of range for a dimension of size %lld", (long long)k,
                 (long long)n);
    return NULL;
  }
  const nn_backend *be = selection(a);
  if (be) return select_rank(be, a, k - 1, d, keepdim, 0, indices);
  nn_tensor *idx = NULL, *sorted = nn_sort(a, d, 0, &idx);
  if (!sorted) return NULL;
  nn_tensor *values = NULL, *ik = NULL;
  if (a->ndim == 0) {
    values = nn_retain(sorted), ik = nn_retain(idx);
  } else if (keepdim) {
    values = nn_narrow(sorted, d, k - 1, 1), ik = values ? nn_narrow(idx, d, k - 1, 1) : NULL;
  } else {
    values = nn_select(sorted, d, k - 1), ik = values ? nn_select(idx, d, k - 1) : NULL;
  }
  nn_release(sorted), nn_release(idx);
  if (!values || !ik) {
    nn_release(values), nn_release(ik);
    return NULL;
  }
  if (indices) *indices = ik;
  else nn_release(ik);
  return values;
}

/* The lower median along dim (or of every element: NN_ALL_DIMS), NaN where
   the line holds a NaN, as PyTorch's. */
nn_tensor *nn_median(nn_tensor *a, int dim, int keepdim, nn_tensor **indices) {
  if (dim == NN_ALL_DIMS) {
    if (nn_numel(a) == 0) {
      nn_error_set("median: the tensor is empty");
      return NULL;
    }
    int64_t all = -1;
    nn_tensor *flat = nn_reshape(a, 1, &all);
    nn_tensor *out = flat ? nn_median(flat, 0, 0, NULL) : NULL;
    nn_release(flat);
    return out;
  }
  int d = wrap_dim("median", dim, a);
  if (d < 0) return NULL;
  int64_t n = a->ndim ? a->size[d] : 1;
  if (n == 0) {
    nn_error_set("median: the tensor is empty along dimension %d", d + 1);
    return NULL;
  }
  const nn_backend *be = selection(a);
  if (be) return select_rank(be, a, (n - 1) / 2, d, keepdim, 1, indices);
  nn_tensor *idx = NULL, *values = nn_kthvalue(a, (n - 1) / 2 + 1, d, keepdim, &idx);
  if (!values || !nn_dtype_is_floating(a->dtype)) goto done;
  /* sort puts NaN last; a line holding one gives NaN, at its first NaN's
     index. Asking first whether any line does spares the usual call
     (no NaN) the work of the rest. */
  nn_grad_guard guard = nn_no_grad_begin();
  nn_tensor *nan = nn_unary(NN_ISNAN, a), *any = nan ? nn_any(nan, (1u << a->ndim) - 1, 0) : NULL;
  double some = 0;
  int st = any ? nn_item(any, &some) : -1;
  nn_release(any);
  if (st < 0 || some == 0) {
    nn_no_grad_end(guard);
    nn_release(nan);
    if (st < 0) nn_release(values), values = NULL;
    goto done;
  }
  /* sqrt(-1) where the line has a NaN, sqrt(-0) = -0 added elsewhere: no
     gradient through either */
  unsigned along = a->ndim ? 1u << d : 0;
  nn_tensor *has = nn_any(nan, along, keepdim), *first = has ? nn_argmax(nan, d, keepdim) : NULL;
  nn_tensor *at = first ? nn_where(has, first, idx) : NULL;
  nn_tensor *hf = at ? nn_to_dtype(has, a->dtype) : NULL, *neg = hf ? nn_unary(NN_NEG, hf) : NULL;
  nn_tensor *poison = neg ? nn_unary(NN_SQRT, neg) : NULL;
  nn_no_grad_end(guard);
  nn_tensor *out = poison ? nn_binary(NN_ADD, values, poison) : NULL;
  nn_release(nan), nn_release(has), nn_release(first), nn_release(hf), nn_release(neg), nn_release(poison);
  nn_release(values), nn_release(idx);
  values = out, idx = at;
  if (!out) nn_release(at), idx = NULL;
done:
  if (!values) {
    nn_release(idx);
    return NULL;
  }
  if (indices) *indices = idx;
  else nn_release(idx);
  return values;
}

/* ---- unique, mode: a sort, then one walk over its runs on the host ---------- */
/* t as a contiguous float64 tensor on the CPU (for reading runs of equal
   values; int64 beyond 2^53 would merge neighbours, a limit noted in the
   docs). */
static nn_tensor *host_doubles(nn_tensor *t) {
  nn_tensor *c = nn_to_device(t, NN_CPU), *d = c ? nn_to_dtype(c, NN_FLOAT64) : NULL;
  nn_tensor *out = d ? nn_contiguous(d) : NULL;
  nn_release(c), nn_release(d);
  return out;
}

static nn_tensor *host_longs(nn_tensor *t) {
  nn_tensor *c = nn_to_device(t, NN_CPU), *out = c ? nn_contiguous(c) : NULL;
  nn_release(c);
  return out;
}

/* An int64 tensor of n elements filled from the host, on device. */
static nn_tensor *longs_on(nn_device device, int ndim, const int64_t *size, const int64_t *v) {
  nn_tensor *h = nn_empty_on(NN_CPU, NN_INT64, ndim, size);
  if (!h) return NULL;
  int64_t n = nn_numel(h), *p = nn_tensor_data(h);
  for (int64_t i = 0; i < n; i++) p[i] = v[i];
  nn_tensor_written(h);
  if (device == NN_CPU) return h;
  nn_tensor *out = nn_to_device(h, device);
  nn_release(h);
  return out;
}

/* unique of a CPU tensor in one host pass (cpu/scan.c): no sort of
   values and indices when the inverse is not asked for, no copy as
   float64, no index_select; the same values, counts and inverse. */
static nn_tensor *unique_on_host(nn_tensor *a, nn_tensor **inverse, nn_tensor **counts) {
  int64_t n = nn_numel(a), room = n ? n : 1;
  size_t es = nn_element_size(a->dtype);
  nn_grad_guard guard = nn_no_grad_begin();
  nn_tensor *c = nn_contiguous(a), *values = NULL, *inv_t = NULL, *cnt_t = NULL;
  char *picked = NULL;
  int64_t *cnt = NULL, groups;
  if (!c) goto fail;
  picked = malloc(es * (size_t)room);
  cnt = counts ? malloc(sizeof *cnt * (size_t)room) : NULL;
  if (!picked || (counts && !cnt)) {
    nn_error_set("unique: out of memory");
    goto fail;
  }
  if (inverse && !(inv_t = nn_empty_on(NN_CPU, NN_INT64, a->ndim, a->size))) goto fail;
  groups = nn_cpu_unique(a->dtype, nn_tensor_data(c), n, picked, cnt, inv_t ? nn_tensor_data(inv_t) : NULL);
  if (groups < 0 || !(values = nn_empty_on(NN_CPU, a->dtype, 1, &groups))) goto fail;
  memcpy(nn_tensor_data(values), picked, es * (size_t)groups);
  nn_tensor_written(values);
  if (inv_t) nn_tensor_written(inv_t);
  if (counts && !(cnt_t = longs_on(NN_CPU, 1, &groups, cnt))) goto fail;
  goto done;
fail:
  nn_release(values), nn_release(inv_t);
  values = inv_t = NULL;
done:
  free(picked), free(cnt);
  nn_release(c);
  nn_no_grad_end(guard);
  if (inverse) *inverse = inv_t;
  if (counts) *counts = cnt_t;
  return values;
}

/* The sorted distinct values of a (flattened), each element's 0-based
   position among them (a's shape), and how often each occurs. Nothing is
   recorded: PyTorch's unique has no gradient. */
nn_tensor *nn_unique(nn_tensor *a, nn_tensor **inverse, nn_tensor **counts) {
  if (a->dtype == NN_BOOL) {
    nn_error_set("unique: not supported for a bool tensor; convert it first (long() or float())");
    return NULL;
  }
  if (a->device == NN_CPU && !nn_capture_active) return unique_on_host(a, inverse, counts);
  nn_grad_guard guard = nn_no_grad_begin();
  int64_t all = -1, n = nn_numel(a);
  nn_tensor *flat = nn_reshape(a, 1, &all), *idx = NULL;
  nn_tensor *sorted = flat ? nn_sort(flat, 0, 0, &idx) : NULL;
  nn_tensor *hv = sorted ? host_doubles(sorted) : NULL, *hi = hv ? host_longs(idx) : NULL;
  int64_t *starts = hi ? malloc(sizeof(int64_t) * (size_t)(n + 1)) : NULL;
  int64_t *inv = starts ? malloc(sizeof(int64_t) * (size_t)(n + 1)) : NULL;
  nn_tensor *values = NULL, *inv_t = NULL, *cnt_t = NULL, *start_t = NULL;
  if (hi && !inv) nn_error_set("unique: out of memory");
  if (inv) {
    const double *v = nn_tensor_data(hv);
    const int64_t *pos = nn_tensor_data(hi);
    int64_t groups = 0;
    for (int64_t i = 0; i < n; i++) {
      if (i == 0 || v[i] != v[i - 1]) starts[groups++] = i;
      inv[pos[i]] = groups - 1;
    }
    start_t = longs_on(NN_CPU, 1, &groups, starts);
    nn_tensor *dev_start = start_t ? nn_to_device(start_t, a->device) : NULL;
    values = dev_start ? nn_index_select(sorted, 0, dev_start, 0) : NULL;
    nn_release(dev_start);
    if (values && inverse) {
      inv_t = longs_on(a->device, a->ndim, a->size, inv);
      if (!inv_t) nn_release(values), values = NULL;
    }
    if (values && counts) {
      starts[groups] = n;
      for (int64_t g = 0; g < groups; g++) starts[g] = starts[g + 1] - starts[g];
      cnt_t = longs_on(a->device, 1, &groups, starts);
      if (!cnt_t) nn_release(values), nn_release(inv_t), values = NULL, inv_t = NULL;
    }
  }
  free(starts), free(inv);
  nn_release(flat), nn_release(idx), nn_release(sorted), nn_release(hv), nn_release(hi);
  nn_release(start_t);
  nn_no_grad_end(guard);
  if (inverse) *inverse = inv_t;
  if (counts) *counts = cnt_t;
  return values;
}

/* The most frequent value along dim (the smallest of those tied) and the
   last position where it occurs, as PyTorch's mode on the CPU; values are
   gathered from a at that position, so their gradient is max(dim)'s. */
nn_tensor *nn_mode(nn_tensor *a, int dim, int keepdim, nn_tensor **indices) {
  int d = wrap_dim("mode", dim, a);
  if (d < 0) return NULL;
  if (a->dtype == NN_BOOL) {
    nn_error_set("mode: not supported for a bool tensor; convert it first (long() or float())");
    return NULL;
  }
  if (a->ndim && a->size[d] == 0) {
    nn_error_set("mode: the tensor is empty along dimension %d", d + 1);
    return NULL;
  }
  if (a->ndim == 0) { /* a line of one, then back to 0 dims */
    int64_t one = 1;
    nn_tensor *line = nn_reshape(a, 1, &one), *idx = NULL;
    nn_tensor *v1 = line ? nn_mode(line, 0, 0, &idx) : NULL;
    nn_release(line);
    if (v1 && indices) *indices = idx;
    else nn_release(idx);
    return v1;
  }
  nn_grad_guard guard = nn_no_grad_begin();
  int last = a->ndim ? a->ndim - 1 : 0;
  nn_tensor *idx = NULL, *sorted = nn_sort(a, d, 0, &idx);
  nn_tensor *sv = sorted ? nn_transpose(sorted, d, last) : NULL;
  nn_tensor *si = sv ? nn_transpose(idx, d, last) : NULL;
  nn_tensor *hv = si ? host_doubles(sv) : NULL, *hi = hv ? host_longs(si) : NULL;
  nn_tensor *picked = NULL;
  if (hi) {
    int64_t len = a->ndim ? a->size[d] : 1, lines = len ? nn_numel(a) / len : 0;
    /* one index per line, lines in the order of the copy with d moved
       last; moved back after */
    int64_t moved[NN_MAX_DIMS];
    for (int i = 0; i < a->ndim; i++) moved[i] = hv->size[i];
    moved[last] = 1;
    nn_tensor *pc = nn_empty_on(NN_CPU, NN_INT64, a->ndim, moved);
    if (pc) {
      const double *v = nn_tensor_data(hv);
      const int64_t *pos = nn_tensor_data(hi);
      int64_t *out = nn_tensor_data(pc);
      for (int64_t l = 0; l < lines; l++) {
        const double *lv = v + l * len;
        const int64_t *lp = pos + l * len;
        int64_t best_len = 0, best_at = 0;
        for (int64_t i = 0, j; i < len; i = j) {
          int64_t at = lp[i];
          for (j = i + 1; j < len && lv[j] == lv[i]; j++)
            if (lp[j] > at) at = lp[j];
          if (j - i > best_len) best_len = j - i, best_at = at;
        }
        out[l] = best_at;
      }
      nn_tensor_written(pc);
    }
    nn_tensor *back = pc ? nn_transpose(pc, d, last) : NULL;
    nn_tensor *fixed = back ? nn_contiguous(back) : NULL;
    nn_release(pc), nn_release(back);
    picked = fixed ? nn_to_device(fixed, a->device) : NULL;
    nn_release(fixed);
  }
  nn_release(idx), nn_release(sorted), nn_release(sv), nn_release(si), nn_release(hv), nn_release(hi);
  nn_no_grad_end(guard);
  if (!picked) return NULL;
  nn_tensor *values = nn_gather(a, d, picked, 0);
  if (values && !keepdim && a->ndim) {
    nn_tensor *s = nn_squeeze(values, d), *i = s ? nn_squeeze(picked, d) : NULL;
    nn_release(values), nn_release(picked);
    values = i ? s : NULL, picked = i;
    if (!i) nn_release(s);
  }
  if (!values) {
    nn_release(picked);
    return NULL;
  }
  if (indices) *indices = picked;
  else nn_release(picked);
  return values;
}

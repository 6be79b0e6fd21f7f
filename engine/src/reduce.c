/* reduce.c: the fronts of sum, mean, max, min, argmax, argmin and norm,
 * over every element or one dimension, and sum_to_shape (broadcasting's
 * backward); each backward beside its forward. Sums accumulate in double
 * (int64 for integers), so a float32 sum of a million terms stays
 * accurate. Loops: cpu/reduce.c; formulas: math/reduce.h. */
#include "internal.h"

#include <stddef.h>

/* The dims a reduction along dim (or all) removes, as a bit mask. */
unsigned nn_dim_mask(int ndim, int dim) {
  return dim == NN_ALL_DIMS ? (1u << ndim) - 1 : 1u << dim;
}

/* The shape a reduction keeps: every reduced dim set to 1. */
void nn_kept_shape(int ndim, const int64_t *size, unsigned mask, int64_t *kept) {
  for (int i = 0; i < ndim; i++) kept[i] = (mask >> i & 1) ? 1 : size[i];
}

nn_tensor *nn_squeeze_kept(nn_tensor *kept, const nn_tensor *a, unsigned mask, int keepdim) {
  if (keepdim || !kept) return kept;
  int64_t size[NN_MAX_DIMS];
  int n = 0;
  for (int i = 0; i < a->ndim; i++)
    if (!(mask >> i & 1)) size[n++] = a->size[i];
  nn_tensor *v = nn_view(kept, n, size);
  nn_release(kept);
  return v;
}

nn_tensor *nn_as_kept(nn_tensor *t, int ndim, const int64_t *size, unsigned mask) {
  int64_t kept[NN_MAX_DIMS];
  nn_kept_shape(ndim, size, mask, kept);
  /* a recording pass differentiates through it (a kernel reading it ignores that) */
  if (nn_backward_records(t, NULL, NULL)) return nn_reshape(t, ndim, kept);
  nn_grad_guard guard = nn_no_grad_begin();
  nn_tensor *v = nn_reshape(t, ndim, kept);
  nn_no_grad_end(guard);
  return v;
}

int nn_run_reduce(nn_reduce_op op, nn_tensor *out, nn_tensor *a, unsigned mask, double p) {
  const nn_backend *be = nn_dispatch("reduce", offsetof(nn_backend, reduce), a, out, NULL);
  if (!be) return -1;
  nn_reduce_geom r;
  nn_tensor *ts[2] = {out, a};
  nn_reduce_init(&r, 2, ts, 2u, a->ndim, a->size, mask);
  return be->reduce(op, &r, p);
}

/* ---- sum_to_shape ----------------------------------------------------- */
nn_tensor *nn_sum_to_shape(nn_tensor *a, int ndim, const int64_t *size) {
  const nn_backend *be = nn_dispatch("sum_to_shape", offsetof(nn_backend, reduce), a, NULL, NULL);
  if (!be) return NULL;
  if (ndim > a->ndim) {
    nn_error_set("sum_to_shape: cannot reduce %d dimensions to %d", a->ndim, ndim);
    return NULL;
  }
  unsigned reduced = 0;
  for (int i = 0; i < a->ndim; i++) {
    int j = i - (a->ndim - ndim);
    if (j < 0) {
      reduced |= 1u << i;
    } else if (size[j] != a->size[i]) {
      if (size[j] != 1) {
        nn_error_set("sum_to_shape: size %lld does not reduce to %lld", (long long)a->size[i],
                     (long long)size[j]);
        return NULL;
      }
      reduced |= 1u << i;
    }
  }
  if (nn_backward_records(a, NULL, NULL)) { /* recorded: a sum with dims kept, then the shape */
    nn_tensor *kept = nn_sum_dims(a, reduced, 1, 0);
    nn_tensor *shaped = kept ? nn_reshape(kept, ndim, size) : NULL;
    nn_release(kept);
    return shaped;
  }
  nn_tensor *out = nn_empty_like_shape(a, a->dtype, ndim, size);
  if (out && nn_run_reduce(NN_REDUCE_SUM, out, a, reduced, 0) < 0) {
    nn_release(out);
    return NULL;
  }
  return out;
}

/* ---- sum / mean ------------------------------------------------------ */
/* d sum = g spread back over the reduced dims (mask in ints[0]); mean also
   divides. */
static int sum_backward(nn_node *node, nn_tensor *g, nn_tensor **gi) {
  nn_tensor *k = nn_as_kept(g, node->ndim, node->size, (unsigned)node->ints[0]);
  nn_tensor *e = k ? nn_expand(k, node->ndim, node->size) : NULL;
  nn_release(k);
  if (e && node->scalar[0] != 1) {
    gi[0] = nn_binary_scalar(NN_DIV, e, node->scalar[0], 0);
    nn_release(e);
  } else {
    gi[0] = e;
  }
  return gi[0] ? 0 : -1;
}

/* The elements of a's lines over the dims of mask. */
int64_t nn_line_count(const nn_tensor *a, unsigned mask) {
  int64_t n = 1;
  for (int i = 0; i < a->ndim; i++)
    if (mask >> i & 1) n *= a->size[i];
  return n;
}

nn_tensor *nn_sum_dims(nn_tensor *a, unsigned mask, int keepdim, int mean) {
  const char *name = mean ? "mean" : "sum";
  const nn_backend *be = nn_dispatch(name, offsetof(nn_backend, reduce), a, NULL, NULL);
  if (!be) return NULL;
  if (mean && !nn_dtype_is_floating(a->dtype)) {
    nn_error_set("mean: the tensor is %s; convert it with float() first", nn_dtype_name(a->dtype));
    return NULL;
  }
  int64_t size[NN_MAX_DIMS];
  nn_kept_shape(a->ndim, a->size, mask, size);
  nn_dtype dtype = nn_dtype_is_floating(a->dtype) ? a->dtype : NN_INT64;
  nn_tensor *out = nn_empty_like_shape(a, dtype, a->ndim, size);
  if (out && nn_run_reduce(mean ? NN_REDUCE_MEAN : NN_REDUCE_SUM, out, a, mask, 0) < 0) {
    nn_release(out);
    return NULL;
  }
  out = nn_squeeze_kept(out, a, mask, keepdim);
  if (out && nn_needs_grad(a, NULL, NULL)) {
    int all = mask == nn_dim_mask(a->ndim, NN_ALL_DIMS) && !keepdim;
    const char *name = all ? (mean ? "MeanBackward0" : "SumBackward0")
                           : (mean ? "MeanBackward1" : "SumBackward1");
    nn_node *node = nn_node_attach(out, name, sum_backward, 1, a, NULL, NULL);
    if (!node) {
      nn_release(out);
      return NULL;
    }
    node->ints[0] = mask;
    node->scalar[0] = mean ? (double)nn_line_count(a, mask) : 1;
    node->ndim = a->ndim;
    for (int i = 0; i < a->ndim; i++) node->size[i] = a->size[i];
  }
  return out;
}

static nn_tensor *sum_or_mean(nn_tensor *a, int dim, int keepdim, int mean) {
  if (dim != NN_ALL_DIMS && (dim = nn_wrap_dim(mean ? "mean" : "sum", dim, a->ndim)) < 0) return NULL;
  if (a->ndim == 0) dim = NN_ALL_DIMS;
  return nn_sum_dims(a, nn_dim_mask(a->ndim, dim), keepdim, mean);
}

nn_tensor *nn_sum(nn_tensor *a, int dim, int keepdim) { return sum_or_mean(a, dim, keepdim, 0); }
nn_tensor *nn_mean(nn_tensor *a, int dim, int keepdim) { return sum_or_mean(a, dim, keepdim, 1); }

/* ---- max / min / argmax / argmin ------------------------------------- */
/* Along a dim the gradient goes to the chosen index (indices: max's, of
   the reduced shape, dims kept or not); over everything (indices NULL) it
   is shared evenly by every element of x equal to the result, value, as
   PyTorch does. The result has x's shape (ndim, size). */
nn_tensor *nn_extreme_backward(nn_tensor *g, nn_tensor *indices, nn_tensor *x, nn_tensor *value,
                               unsigned dim, int ndim, const int64_t *size) {
  if (nn_backward_records(g, x, value))
    return nn_extreme_backward_graph(g, indices, x, value, dim, ndim, size);
  size_t kernel = !indices ? offsetof(nn_backend, extreme_all_backward)
                           : offsetof(nn_backend, extreme_backward);
  const nn_backend *be = nn_dispatch("max backward", kernel, g, !indices ? x : indices, value);
  if (!be) return NULL;
  nn_tensor *gk = nn_as_kept(g, ndim, size, dim), *out = NULL;
  if (!gk) return NULL;
  nn_reduce_geom r;
  int st = -1;
  if (!indices) {
    nn_tensor *vk = nn_as_kept(value, ndim, size, dim);
    out = vk ? nn_empty_like_shape(g, g->dtype, ndim, size) : NULL;
    if (out) {
      nn_tensor *ts[4] = {out, x, vk, gk};
      nn_reduce_init(&r, 4, ts, 3u, ndim, size, dim);
      st = be->extreme_all_backward(&r);
    }
    nn_release(vk);
  } else {
    nn_tensor *ik = nn_as_kept(indices, ndim, size, dim);
    out = ik ? nn_full_like_shape(g, g->dtype, ndim, size, 0) : NULL;
    if (out) {
      nn_tensor *ts[3] = {out, gk, ik};
      nn_reduce_init(&r, 3, ts, 1u, ndim, size, dim);
      st = be->extreme_backward(&r);
    }
    nn_release(ik);
  }
  nn_release(gk);
  if (st < 0) {
    nn_release(out);
    return NULL;
  }
  return out;
}

static int extreme_backward(nn_node *node, nn_tensor *g, nn_tensor **gi) {
  int dim = (int)node->ints[0];
  unsigned mask = nn_dim_mask(node->ndim, dim);
  gi[0] = dim == NN_ALL_DIMS
              ? nn_extreme_backward(g, NULL, node->saved[0], node->saved[1], mask, node->ndim, node->size)
              : nn_extreme_backward(g, node->saved[0], NULL, NULL, mask, node->ndim, node->size);
  return gi[0] ? 0 : -1;
}

static nn_tensor *max_or_min(nn_tensor *a, int dim, int keepdim, nn_tensor **indices, int want_max) {
  const char *name = want_max ? "max" : "min";
  const nn_backend *be = nn_dispatch(name, offsetof(nn_backend, extreme), a, NULL, NULL);
  if (!be) return NULL;
  if (dim != NN_ALL_DIMS && (dim = nn_wrap_dim(name, dim, a->ndim)) < 0) return NULL;
  if (a->ndim == 0) dim = NN_ALL_DIMS;
  if (dim == NN_ALL_DIMS ? nn_numel(a) == 0 : a->size[dim] == 0) {
    nn_error_set("%s: the tensor is empty along the reduced dimension", name);
    return NULL;
  }
  int64_t size[NN_MAX_DIMS];
  nn_kept_shape(a->ndim, a->size, nn_dim_mask(a->ndim, dim), size);
  nn_tensor *values = nn_empty_like_shape(a, a->dtype, a->ndim, size);
  nn_tensor *idx = values ? nn_empty_like_shape(a, NN_INT64, a->ndim, size) : NULL;
  if (!idx) goto fail;
  nn_reduce_geom r;
  nn_tensor *ts[3] = {values, a, idx};
  nn_reduce_init(&r, 3, ts, 2u, a->ndim, a->size, nn_dim_mask(a->ndim, dim));
  if (be->extreme(want_max, &r) < 0) goto fail;
  values = nn_squeeze_kept(values, a, nn_dim_mask(a->ndim, dim), keepdim);
  idx = nn_squeeze_kept(idx, a, nn_dim_mask(a->ndim, dim), keepdim);
  if (!values || !idx) goto fail;
  if (nn_needs_grad(a, NULL, NULL)) {
    const char *name = dim == NN_ALL_DIMS ? (want_max ? "MaxBackward1" : "MinBackward1")
                                          : (want_max ? "MaxBackward0" : "MinBackward0");
    nn_node *node = nn_node_attach(values, name, extreme_backward, 1, a, NULL, NULL);
    if (!node) goto fail;
    node->ints[0] = dim;
    node->ndim = a->ndim;
    for (int i = 0; i < a->ndim; i++) node->size[i] = a->size[i];
    if (dim == NN_ALL_DIMS) {
      nn_node_save(node, 0, a);
      nn_node_save_output(node, 1, values);
    } else {
      nn_node_save(node, 0, idx);
    }
  }
  if (indices) *indices = idx;
  else nn_release(idx);
  return values;
fail:
  nn_release(values), nn_release(idx);
  return NULL;
}

nn_tensor *nn_max(nn_tensor *a, int dim, int keepdim, nn_tensor **indices) {
  return max_or_min(a, dim, keepdim, indices, 1);
}
nn_tensor *nn_min(nn_tensor *a, int dim, int keepdim, nn_tensor **indices) {
  return max_or_min(a, dim, keepdim, indices, 0);
}

static nn_tensor *arg_extreme(nn_tensor *a, int dim, int keepdim, int want_max) {
  nn_grad_guard guard = nn_no_grad_begin();
  nn_tensor *idx = NULL, *values = max_or_min(a, dim, keepdim, &idx, want_max);
  nn_no_grad_end(guard);
  nn_release(values);
  return values ? idx : NULL;
}

nn_tensor *nn_argmax(nn_tensor *a, int dim, int keepdim) { return arg_extreme(a, dim, keepdim, 1); }
nn_tensor *nn_argmin(nn_tensor *a, int dim, int keepdim) { return arg_extreme(a, dim, keepdim, 0); }

/* ---- norm ------------------------------------------------------------ */
/* Gradients are PyTorch 1.13's norm_backward (math/reduce.h): x the
   input, norm the forward's result (dims kept or not). */
/* The gradient of a reduction of x along the dims of mask, computed line
   by line by a kernel over (gi, x, result, g): result and the incoming g
   are viewed with the reduced dims kept. run calls the kernel of be with
   arg, whatever extra argument it takes. */
nn_tensor *nn_line_grad(const char *op, size_t kernel, nn_tensor *g, nn_tensor *x,
                        nn_tensor *result, unsigned mask, nn_line_grad_run run, const void *arg) {
  const nn_backend *be = nn_dispatch(op, kernel, g, x, result);
  if (!be) return NULL;
  nn_tensor *gk = nn_as_kept(g, x->ndim, x->size, mask);
  if (nn_backward_records(g, x, result)) {
    nn_release(gk);
    nn_first_order_only(op);
    return NULL;
  }
  nn_tensor *rk = gk ? nn_as_kept(result, x->ndim, x->size, mask) : NULL;
  nn_tensor *gi = rk ? nn_empty_like(x) : NULL;
  int st = -1;
  if (gi) {
    nn_reduce_geom r;
    nn_tensor *ts[4] = {gi, x, rk, gk};
    nn_reduce_init(&r, 4, ts, 3u, x->ndim, x->size, mask);
    st = run(be, &r, arg);
  }
  nn_release(gk), nn_release(rk);
  if (st < 0) {
    nn_release(gi);
    return NULL;
  }
  return gi;
}

static int run_norm_backward(const nn_backend *be, const nn_reduce_geom *r, const void *p) {
  return be->norm_backward(*(const double *)p, r);
}

nn_tensor *nn_norm_backward(nn_tensor *g, nn_tensor *x, nn_tensor *norm, double p, unsigned dim) {
  if (nn_backward_records(g, x, norm)) return nn_norm_backward_graph(g, x, norm, p, dim);
  return nn_line_grad("norm backward", offsetof(nn_backend, norm_backward), g, x, norm, dim,
                      run_norm_backward, &p);
}

static int norm_backward(nn_node *node, nn_tensor *g, nn_tensor **gi) {
  double p = node->scalar[0];
  if (p == 0) return 0; /* the count of nonzeros has no gradient: none, as in PyTorch */
  gi[0] = nn_norm_backward(g, node->saved[0], node->saved[1], p, (unsigned)node->ints[0]);
  return gi[0] ? 0 : -1;
}

nn_tensor *nn_norm_all(nn_tensor *a, double p, nn_dtype dtype) {
  const nn_backend *be = nn_dispatch("norm", offsetof(nn_backend, reduce), a, NULL, NULL);
  nn_tensor *out = be ? nn_empty_like_shape(a, dtype, 0, NULL) : NULL;
  if (out && nn_run_reduce(NN_REDUCE_NORM, out, a, nn_dim_mask(a->ndim, NN_ALL_DIMS), p) < 0) {
    nn_release(out);
    return NULL;
  }
  return out;
}

nn_tensor *nn_norm_dims(nn_tensor *a, double p, unsigned mask, int keepdim) {
  const nn_backend *be = nn_dispatch("norm", offsetof(nn_backend, reduce), a, NULL, NULL);
  if (!be) return NULL;
  if (!nn_dtype_is_floating(a->dtype)) {
    nn_error_set("norm: the tensor is %s; convert it with float() first", nn_dtype_name(a->dtype));
    return NULL;
  }
  if (isnan(p)) {
    nn_error_set("norm: p must be a number, got nan");
    return NULL;
  }
  int64_t size[NN_MAX_DIMS];
  nn_kept_shape(a->ndim, a->size, mask, size);
  nn_tensor *kept = nn_empty_like_shape(a, a->dtype, a->ndim, size);
  if (kept && nn_run_reduce(NN_REDUCE_NORM, kept, a, mask, p) < 0) {
    nn_release(kept);
    return NULL;
  }
  nn_tensor *out = nn_squeeze_kept(kept, a, mask, keepdim);
  if (out && nn_needs_grad(a, NULL, NULL)) {
    nn_node *node = nn_node_attach(out, "NormBackward1", norm_backward, 1, a, NULL, NULL);
    if (!node) {
      nn_release(out);
      return NULL;
    }
    node->scalar[0] = p;
    node->ints[0] = mask;
    nn_node_save(node, 0, a);
    nn_node_save_output(node, 1, out);
  }
  return out;
}

nn_tensor *nn_norm(nn_tensor *a, double p, int dim, int keepdim) {
  if (dim != NN_ALL_DIMS && (dim = nn_wrap_dim("norm", dim, a->ndim)) < 0) return NULL;
  if (a->ndim == 0) dim = NN_ALL_DIMS;
  return nn_norm_dims(a, p, nn_dim_mask(a->ndim, dim), keepdim);
}

/* statistics.c: the fronts of the reductions issue 12 adds over a set of
 * dims (a bit mask, internal.h): prod, var, std, logsumexp, amax, amin,
 * count_nonzero, all, any, and dist. Each backward beside its forward;
 * where a backward is made of other fronts (var, std, logsumexp), autograd
 * follows it. Loops: cpu/reduce.c; formulas: math/reduce.h. */
#include "internal.h"

#include <stddef.h>

/* A reduction's result of a's kept shape and the given dtype, the reduce
   kernel run into it; no autograd. */
static nn_tensor *reduce_kept(nn_reduce_op op, nn_tensor *a, unsigned mask, double p, nn_dtype dtype) {
  int64_t size[NN_MAX_DIMS];
  nn_kept_shape(a->ndim, a->size, mask, size);
  nn_tensor *out = nn_empty_like_shape(a, dtype, a->ndim, size);
  if (out && nn_run_reduce(op, out, a, mask, p) < 0) {
    nn_release(out);
    return NULL;
  }
  return out;
}

static int check_floating(const char *op, const nn_tensor *a) {
  if (nn_dtype_is_floating(a->dtype)) return 0;
  nn_error_set("%s: the tensor is %s; convert it with float() first", op, nn_dtype_name(a->dtype));
  return -1;
}

/* The node's input shape, which every backward here needs. */
static nn_node *attach(nn_tensor *out, const char *name, nn_backward_fn fn, nn_tensor *a,
                       unsigned mask) {
  nn_node *node = nn_node_attach(out, name, fn, 1, a, NULL, NULL);
  if (!node) return NULL;
  node->ints[0] = mask;
  node->ndim = a->ndim;
  for (int i = 0; i < a->ndim; i++) node->size[i] = a->size[i];
  return node;
}

/* ---- prod ------------------------------------------------------------------- */
static int run_prod_backward(const nn_backend *be, const nn_reduce_geom *r, const void *unused) {
  (void)unused;
  return be->prod_backward(r);
}

nn_tensor *nn_prod_backward(nn_tensor *g, nn_tensor *x, nn_tensor *out, unsigned mask) {
  return nn_line_grad("prod backward", offsetof(nn_backend, prod_backward), g, x, out, mask,
                      run_prod_backward, NULL);
}

static int prod_backward(nn_node *node, nn_tensor *g, nn_tensor **gi) {
  if (nn_backward_records(g, node->saved[0], node->saved[1])) /* recorded from fronts (higher_order.c) */
    gi[0] = nn_prod_backward_graph(g, node->saved[0], (unsigned)node->ints[0]);
  else
    gi[0] = nn_prod_backward(g, node->saved[0], node->saved[1], (unsigned)node->ints[0]);
  return gi[0] ? 0 : -1;
}

nn_tensor *nn_prod(nn_tensor *a, int dim, int keepdim) {
  if (!nn_dispatch("prod", offsetof(nn_backend, reduce), a, NULL, NULL)) return NULL;
  if (dim != NN_ALL_DIMS && (dim = nn_wrap_dim("prod", dim, a->ndim)) < 0) return NULL;
  if (a->ndim == 0) dim = NN_ALL_DIMS;
  unsigned mask = nn_dim_mask(a->ndim, dim);
  nn_dtype dtype = nn_dtype_is_floating(a->dtype) ? a->dtype : NN_INT64;
  nn_tensor *out = nn_squeeze_kept(reduce_kept(NN_REDUCE_PROD, a, mask, 0, dtype), a, mask, keepdim);
  if (out && nn_needs_grad(a, NULL, NULL)) {
    nn_node *node = attach(out, dim == NN_ALL_DIMS ? "ProdBackward0" : "ProdBackward1",
                           prod_backward, a, mask);
    if (!node) {
      nn_release(out);
      return NULL;
    }
    nn_node_save(node, 0, a);
    nn_node_save_output(node, 1, out);
  }
  return out;
}

/* ---- var, std ---------------------------------------------------------------- */
/* g (a result of x's reduction over mask, dims kept or not) reshaped to
   the kept shape, recorded: backward formulas made of fronts use it, so
   that autograd can follow them. */
static nn_tensor *reshape_kept(nn_tensor *g, const nn_tensor *x, unsigned mask) {
  int64_t kept[NN_MAX_DIMS];
  nn_kept_shape(x->ndim, x->size, mask, kept);
  return nn_reshape(g, x->ndim, kept);
}

/* d var = g 2 (x - mean) / (n - correction), made of fronts. */
static nn_tensor *var_grad(nn_tensor *g, nn_tensor *x, unsigned mask, double correction) {
  nn_tensor *m = nn_sum_dims(x, mask, 1, 1), *d = m ? nn_binary(NN_SUB, x, m) : NULL;
  nn_tensor *gk = d ? reshape_kept(g, x, mask) : NULL;
  double scale = 2 / ((double)nn_line_count(x, mask) - correction);
  nn_tensor *s = gk ? nn_binary_number(NN_MUL, gk, scale, 0, NN_NUMBER_FLOAT) : NULL;
  nn_tensor *gi = s ? nn_binary(NN_MUL, s, d) : NULL;
  nn_release(m), nn_release(d), nn_release(gk), nn_release(s);
  return gi;
}

static int var_backward(nn_node *node, nn_tensor *g, nn_tensor **gi) {
  gi[0] = var_grad(g, node->saved[0], (unsigned)node->ints[0], node->scalar[0]);
  return gi[0] ? 0 : -1;
}

/* d std = d var / (2 std), 0 where std is 0 (PyTorch's std_backward). */
static int std_backward(nn_node *node, nn_tensor *g, nn_tensor **gi) {
  nn_tensor *inv = nn_unary(NN_RECIPROCAL, node->saved[1]);
  nn_tensor *safe = inv ? nn_nan_to_num(inv, NAN, 0, -INFINITY) : NULL;
  nn_tensor *half = safe ? nn_binary_number(NN_MUL, safe, 0.5, 0, NN_NUMBER_FLOAT) : NULL;
  nn_tensor *gv = half ? nn_binary(NN_MUL, g, half) : NULL;
  gi[0] = gv ? var_grad(gv, node->saved[0], (unsigned)node->ints[0], node->scalar[0]) : NULL;
  nn_release(inv), nn_release(safe), nn_release(half), nn_release(gv);
  return gi[0] ? 0 : -1;
}

static nn_tensor *var_or_std(nn_tensor *a, unsigned mask, double correction, int keepdim, int std) {
  const char *name = std ? "std" : "var";
  if (!nn_dispatch(name, offsetof(nn_backend, reduce), a, NULL, NULL) || check_floating(name, a) < 0)
    return NULL;
  nn_tensor *out = reduce_kept(NN_REDUCE_VAR, a, mask, correction, a->dtype);
  if (out && std && nn_unary_(NN_SQRT, out) < 0) {
    nn_release(out);
    return NULL;
  }
  out = nn_squeeze_kept(out, a, mask, keepdim);
  if (out && nn_needs_grad(a, NULL, NULL)) {
    nn_node *node = attach(out, std ? "StdBackward0" : "VarBackward0",
                           std ? std_backward : var_backward, a, mask);
    if (!node) {
      nn_release(out);
      return NULL;
    }
    node->scalar[0] = correction;
    nn_node_save(node, 0, a);
    if (std) nn_node_save_output(node, 1, out);
  }
  return out;
}

nn_tensor *nn_var(nn_tensor *a, unsigned mask, double correction, int keepdim) {
  return var_or_std(a, mask, correction, keepdim, 0);
}
nn_tensor *nn_std(nn_tensor *a, unsigned mask, double correction, int keepdim) {
  return var_or_std(a, mask, correction, keepdim, 1);
}

/* ---- amax, amin ---------------------------------------------------------------- */
static int amax_backward(nn_node *node, nn_tensor *g, nn_tensor **gi) {
  gi[0] = nn_extreme_backward(g, NULL, node->saved[0], node->saved[1], (unsigned)node->ints[0],
                              node->ndim, node->size);
  return gi[0] ? 0 : -1;
}

/* The gradient is shared evenly by the elements that attain the result,
   as PyTorch's amax/amin backward. */
static nn_tensor *amax_or_amin(nn_tensor *a, unsigned mask, int keepdim, int want_max) {
  const char *name = want_max ? "amax" : "amin";
  const nn_backend *be = nn_dispatch(name, offsetof(nn_backend, extreme), a, NULL, NULL);
  if (!be) return NULL;
  for (int i = 0; i < a->ndim; i++)
    if ((mask >> i & 1) && a->size[i] == 0) {
      nn_error_set("%s: the tensor is empty along the reduced dimension %d", name, i + 1);
      return NULL;
    }
  int64_t size[NN_MAX_DIMS];
  nn_kept_shape(a->ndim, a->size, mask, size);
  nn_tensor *values = nn_empty_like_shape(a, a->dtype, a->ndim, size);
  int st = -1;
  if (values) { /* no indices operand: the kernel finds the values alone */
    nn_reduce_geom r;
    nn_tensor *ts[2] = {values, a};
    nn_reduce_init(&r, 2, ts, 2u, a->ndim, a->size, mask);
    st = be->extreme(want_max, &r);
  }
  if (st < 0) {
    nn_release(values);
    return NULL;
  }
  values = nn_squeeze_kept(values, a, mask, keepdim);
  if (values && nn_needs_grad(a, NULL, NULL)) {
    nn_node *node = attach(values, want_max ? "AmaxBackward0" : "AminBackward0", amax_backward, a, mask);
    if (!node) {
      nn_release(values);
      return NULL;
    }
    nn_node_save(node, 0, a);
    nn_node_save_output(node, 1, values);
  }
  return values;
}

nn_tensor *nn_amax(nn_tensor *a, unsigned mask, int keepdim) { return amax_or_amin(a, mask, keepdim, 1); }
nn_tensor *nn_amin(nn_tensor *a, unsigned mask, int keepdim) { return amax_or_amin(a, mask, keepdim, 0); }

/* ---- logsumexp ------------------------------------------------------------------ */
/* m + log(sum(exp(x - m))) with m the line's max, treated as a constant
   (an infinite max taken as 0, as PyTorch does, so that lines of -inf give
   -inf, not NaN); made of fronts, so the gradient is softmax's. */
nn_tensor *nn_logsumexp(nn_tensor *a, unsigned mask, int keepdim) {
  if (check_floating("logsumexp", a) < 0) return NULL;
  const nn_backend *be = nn_kernels_of(a->device);
  if (be && be->logsumexp && (a->dtype == NN_FLOAT32 || a->dtype == NN_FLOAT64) &&
      nn_line_count(a, mask) > 0 && nn_numel(a) > 0 && !nn_needs_grad(a, NULL, NULL)) {
    int64_t size[NN_MAX_DIMS];
    nn_kept_shape(a->ndim, a->size, mask, size);
    nn_tensor *out = nn_empty_like_shape(a, a->dtype, a->ndim, size);
    if (!out) return NULL;
    nn_reduce_geom r;
    nn_tensor *ts[2] = {out, a};
    nn_reduce_init(&r, 2, ts, 2u, a->ndim, a->size, mask);
    if (be->logsumexp(&r) < 0) {
      nn_release(out);
      return NULL;
    }
    return nn_squeeze_kept(out, a, mask, keepdim);
  }
  /* the gradient (softmax's) follows these fronts */
  nn_tensor *m = NULL, *finite_m = NULL;
  if (nn_line_count(a, mask) > 0 && nn_numel(a) > 0) {
    nn_grad_guard guard = nn_no_grad_begin();
    m = nn_amax(a, mask, 1);
    finite_m = m ? nn_nan_to_num(m, NAN, 0, 0) : NULL;
    nn_no_grad_end(guard);
    if (!finite_m) {
      nn_release(m);
      return NULL;
    }
  } else {
    int64_t size[NN_MAX_DIMS];
    nn_kept_shape(a->ndim, a->size, mask, size);
    finite_m = nn_full_like_shape(a, a->dtype, a->ndim, size, 0);
    if (!finite_m) return NULL;
  }
  nn_tensor *d = nn_binary(NN_SUB, a, finite_m), *e = d ? nn_unary(NN_EXP, d) : NULL;
  nn_tensor *s = e ? nn_sum_dims(e, mask, 1, 0) : NULL, *l = s ? nn_unary(NN_LOG, s) : NULL;
  nn_tensor *out = l ? nn_binary(NN_ADD, l, finite_m) : NULL;
  nn_release(m), nn_release(finite_m), nn_release(d), nn_release(e), nn_release(s), nn_release(l);
  if (!out || keepdim) return out;
  int64_t size[NN_MAX_DIMS];
  int n = 0;
  for (int i = 0; i < a->ndim; i++)
    if (!(mask >> i & 1)) size[n++] = a->size[i];
  nn_tensor *v = nn_reshape(out, n, size);
  nn_release(out);
  return v;
}

/* ---- count_nonzero, all, any ------------------------------------------------------- */
/* The zero-norm counts the nonzeros (NaN among them) of any dtype. */
nn_tensor *nn_count_nonzero(nn_tensor *a, unsigned mask) {
  if (!nn_dispatch("count_nonzero", offsetof(nn_backend, reduce), a, NULL, NULL)) return NULL;
  return nn_squeeze_kept(reduce_kept(NN_REDUCE_NORM, a, mask, 0, NN_INT64), a, mask, 0);
}

static nn_tensor *all_or_any(nn_tensor *a, unsigned mask, int keepdim, int all) {
  if (!nn_dispatch(all ? "all" : "any", offsetof(nn_backend, reduce), a, NULL, NULL)) return NULL;
  nn_tensor *count = nn_squeeze_kept(reduce_kept(NN_REDUCE_NORM, a, mask, 0, NN_INT64), a, mask,
                                     keepdim);
  if (!count) return NULL;
  nn_tensor *out = all ? nn_binary_number(NN_EQ, count, (double)nn_line_count(a, mask), 0,
                                          NN_NUMBER_INTEGER)
                       : nn_binary_number(NN_GT, count, 0, 0, NN_NUMBER_INTEGER);
  nn_release(count);
  return out;
}

nn_tensor *nn_all(nn_tensor *a, unsigned mask, int keepdim) { return all_or_any(a, mask, keepdim, 1); }
nn_tensor *nn_any(nn_tensor *a, unsigned mask, int keepdim) { return all_or_any(a, mask, keepdim, 0); }

/* ---- dist ------------------------------------------------------------------------- */
nn_tensor *nn_dist(nn_tensor *a, nn_tensor *b, double p) {
  int ndim;
  int64_t size[NN_MAX_DIMS];
  if (check_floating("dist", a) < 0 || check_floating("dist", b) < 0 ||
      nn_broadcast_shape("dist", a, b, &ndim, size) < 0)
    return NULL;
  nn_tensor *d = nn_binary(NN_SUB, a, b);
  nn_tensor *out = d ? nn_norm_dims(d, p, nn_dim_mask(d->ndim, NN_ALL_DIMS), 0) : NULL;
  nn_release(d);
  return out;
}

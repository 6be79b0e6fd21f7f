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

/* ---- layer_norm ------------------------------------------------------------------ */
/* y = (x - mean) rstd w + b over each row of `row` trailing values, rstd =
   1 / sqrt(var + eps) with the row's mean and biased variance (ATen's
   layer_norm), in one pass over a row forward and one backward, where the
   Lua layer took nine ops and as many tensors (lua/nn/norm_layers.lua
   keeps that form for what this declines: another device, another dtype,
   a capture recording). Every sum is in double, in the row's order; the
   rows are cut among no threads, so the values are those of any thread
   count. The node saves x, w and each row's mean and rstd (float64). */
typedef struct {
  int64_t rows, n;
  const void *x, *w, *b, *g; /* w, b may be NULL; g: backward's */
  double eps;
  double *stats;             /* rows x 2: mean, rstd */
  void *y;                   /* forward: the output; backward: dx (or NULL) */
  double *dw, *db;           /* backward: n sums each, or NULL */
} layer_norm_rows;

/* A value of a float32 (f32) or float64 array; called with f32 a constant
   (the _f32 and _f64 callers below), so that the branch folds away. */
static inline double value_at(int f32, const void *p, int64_t i) {
  return f32 ? (double)((const float *)p)[i] : ((const double *)p)[i];
}
static inline void store_at(int f32, void *p, int64_t i, double v) {
  if (f32) ((float *)p)[i] = (float)v;
  else ((double *)p)[i] = v;
}

static inline void layer_norm_forward(int f32, const layer_norm_rows *a) {
  int64_t n = a->n;
  for (int64_t r = 0; r < a->rows; r++) {
    int64_t at = r * n;
    double s = 0, q = 0;
    for (int64_t j = 0; j < n; j++) s += value_at(f32, a->x, at + j);
    double mean = s / (double)n;
    for (int64_t j = 0; j < n; j++) {
      double d = value_at(f32, a->x, at + j) - mean;
      q += d * d;
    }
    double rstd = 1 / sqrt(q / (double)n + a->eps);
    for (int64_t j = 0; j < n; j++) {
      double v = (value_at(f32, a->x, at + j) - mean) * rstd;
      if (a->w) v *= value_at(f32, a->w, j);
      if (a->b) v += value_at(f32, a->b, j);
      store_at(f32, a->y, at + j, v);
    }
    a->stats[2 * r] = mean, a->stats[2 * r + 1] = rstd;
  }
}

/* dx = rstd (gw - mean(gw) - xhat mean(gw xhat)) with gw = g w and xhat =
   (x - mean) rstd (dx where a->y is set); dw += g xhat and db += g over
   the rows, in double (where set). */
static inline void layer_norm_backward(int f32, const layer_norm_rows *a) {
  int64_t n = a->n;
  for (int64_t r = 0; r < a->rows; r++) {
    int64_t at = r * n;
    double mean = a->stats[2 * r], rstd = a->stats[2 * r + 1], sg = 0, sgx = 0;
    for (int64_t j = 0; j < n; j++) {
      double g = value_at(f32, a->g, at + j), xhat = (value_at(f32, a->x, at + j) - mean) * rstd;
      double gw = a->w ? g * value_at(f32, a->w, j) : g;
      sg += gw;
      sgx += gw * xhat;
      if (a->dw) a->dw[j] += g * xhat;
      if (a->db) a->db[j] += g;
    }
    if (!a->y) continue;
    double mg = sg / (double)n, mgx = sgx / (double)n;
    for (int64_t j = 0; j < n; j++) {
      double g = value_at(f32, a->g, at + j), xhat = (value_at(f32, a->x, at + j) - mean) * rstd;
      double gw = a->w ? g * value_at(f32, a->w, j) : g;
      store_at(f32, a->y, at + j, rstd * (gw - mg - xhat * mgx));
    }
  }
}

static void layer_norm_run(int backward, nn_dtype dtype, const layer_norm_rows *a) {
  if (dtype == NN_FLOAT32) {
    if (backward) layer_norm_backward(1, a);
    else layer_norm_forward(1, a);
  } else {
    if (backward) layer_norm_backward(0, a);
    else layer_norm_forward(0, a);
  }
}

/* The gradients from fronts that record (a backward pass that records
   itself, create_graph), so that they can be differentiated again: the
   formulas above over x seen as rows x n. grads[k] where need[k] (x, w,
   b); b_ndim and b_size: b's shape. */
static int layer_norm_backward_graph(nn_tensor *g, nn_tensor *x, nn_tensor *w, int64_t n,
                                     double eps, const int *need, int b_ndim, const int64_t *b_size,
                                     nn_tensor **grads) {
  int64_t flat[2] = {nn_numel(x) / n, n}, line = n;
  unsigned across = 2u, down = 1u; /* dim 1 (within a row), dim 0 (over the rows) */
  nn_tensor *xf = nn_reshape(x, 2, flat), *gf = xf ? nn_reshape(g, 2, flat) : NULL;
  nn_tensor *m = gf ? nn_sum_dims(xf, across, 1, 1) : NULL;
  nn_tensor *c = m ? nn_binary(NN_SUB, xf, m) : NULL, *c2 = c ? nn_binary(NN_MUL, c, c) : NULL;
  nn_tensor *v = c2 ? nn_sum_dims(c2, across, 1, 1) : NULL;
  nn_tensor *ve = v ? nn_binary_number(NN_ADD, v, eps, 0, NN_NUMBER_FLOAT) : NULL;
  nn_tensor *r = ve ? nn_unary(NN_RSQRT, ve) : NULL, *xhat = r ? nn_binary(NN_MUL, c, r) : NULL;
  nn_tensor *wl = w && xhat ? nn_reshape(w, 1, &line) : NULL;
  nn_tensor *gw = !xhat ? NULL : w ? (wl ? nn_binary(NN_MUL, gf, wl) : NULL) : nn_retain(gf);
  nn_tensor *mg = NULL, *gwx = NULL, *mgx = NULL, *d1 = NULL, *d2 = NULL, *d3 = NULL, *dx = NULL;
  nn_tensor *gx = NULL, *sw = NULL, *sb = NULL;
  int ok = gw != NULL;
  if (ok && need[0]) {
    mg = nn_sum_dims(gw, across, 1, 1);
    gwx = mg ? nn_binary(NN_MUL, gw, xhat) : NULL;
    mgx = gwx ? nn_sum_dims(gwx, across, 1, 1) : NULL;
    d1 = mgx ? nn_binary(NN_SUB, gw, mg) : NULL;
    d2 = d1 ? nn_binary(NN_MUL, xhat, mgx) : NULL;
    d3 = d2 ? nn_binary(NN_SUB, d1, d2) : NULL;
    dx = d3 ? nn_binary(NN_MUL, r, d3) : NULL;
    ok = dx && (grads[0] = nn_reshape(dx, x->ndim, x->size)) != NULL;
  }
  if (ok && need[1]) {
    gx = nn_binary(NN_MUL, gf, xhat);
    sw = gx ? nn_sum_dims(gx, down, 0, 0) : NULL;
    ok = sw && (grads[1] = nn_reshape(sw, w->ndim, w->size)) != NULL;
  }
  if (ok && need[2]) {
    sb = nn_sum_dims(gf, down, 0, 0);
    ok = sb && (grads[2] = nn_reshape(sb, b_ndim, b_size)) != NULL;
  }
  nn_tensor *temporaries[] = {xf, gf, m, c, c2, v, ve, r, xhat, wl, gw, mg, gwx, mgx, d1, d2, d3, dx, gx, sw, sb};
  for (size_t i = 0; i < sizeof temporaries / sizeof *temporaries; i++) nn_release(temporaries[i]);
  if (!ok)
    for (int i = 0; i < 3; i++) nn_release(grads[i]), grads[i] = NULL;
  return ok ? 0 : -1;
}

/* saved: x (contiguous), w (or none), the rows' mean and rstd; ints[0] the
   row's length, ints[1] whether b was given; size: b's shape */
static int layer_norm_node_backward(nn_node *node, nn_tensor *g, nn_tensor **gi) {
  int need[3] = {node->inputs[0] != NULL, node->inputs[1] != NULL, node->inputs[2] != NULL};
  nn_tensor *x = node->saved[0], *w = node->saved[1], *stats = node->saved[2];
  int64_t n = node->ints[0];
  gi[0] = gi[1] = gi[2] = NULL;
  if (nn_recording_backward())
    return layer_norm_backward_graph(g, need[0] ? node->inputs[0] : x, need[1] ? node->inputs[1] : w,
                                     n, node->scalar[0], need, node->ndim, node->size, gi);
  nn_grad_guard guard = nn_no_grad_begin();
  nn_tensor *gc = nn_contiguous(g);
  nn_no_grad_end(guard);
  double *sums = need[1] || need[2] ? calloc((size_t)(2 * n), sizeof *sums) : NULL;
  if (!gc) goto fail;
  if ((need[1] || need[2]) && !sums) {
    nn_error_set("layer_norm backward: out of memory");
    goto fail;
  }
  if (need[0] && !(gi[0] = nn_empty_like(x))) goto fail;
  layer_norm_rows a = {nn_numel(x) / n, n, nn_data(x), w ? nn_data(w) : NULL, NULL, nn_data(gc),
                       node->scalar[0], nn_data(stats), gi[0] ? nn_data(gi[0]) : NULL,
                       need[1] ? sums : NULL, need[2] ? sums + n : NULL};
  layer_norm_run(1, x->dtype, &a);
  if (need[1]) {
    if (!(gi[1] = nn_empty_like(w))) goto fail;
    for (int64_t j = 0; j < n; j++) {
      if (x->dtype == NN_FLOAT32) ((float *)nn_data(gi[1]))[j] = (float)sums[j];
      else ((double *)nn_data(gi[1]))[j] = sums[j];
    }
  }
  if (need[2]) {
    if (!(gi[2] = nn_empty(x->dtype, node->ndim, node->size))) goto fail;
    for (int64_t j = 0; j < n; j++) {
      if (x->dtype == NN_FLOAT32) ((float *)nn_data(gi[2]))[j] = (float)sums[n + j];
      else ((double *)nn_data(gi[2]))[j] = sums[n + j];
    }
  }
  free(sums);
  nn_release(gc);
  return 0;
fail:
  free(sums);
  nn_release(gc);
  for (int i = 0; i < 3; i++) nn_release(gi[i]), gi[i] = NULL;
  return -1;
}

int nn_layer_norm(nn_tensor *x, int64_t n, nn_tensor *w, nn_tensor *b, double eps, nn_tensor **out) {
  *out = NULL;
  int64_t total = nn_numel(x);
  if (nn_capture_active || x->device != NN_CPU || (x->dtype != NN_FLOAT32 && x->dtype != NN_FLOAT64) ||
      n < 1 || total < 1 || total % n != 0)
    return 0;
  nn_tensor *affine[2] = {w, b};
  for (int i = 0; i < 2; i++)
    if (affine[i] && (affine[i]->device != NN_CPU || affine[i]->dtype != x->dtype ||
                      nn_numel(affine[i]) != n))
      return 0;
  nn_grad_guard guard = nn_no_grad_begin();
  nn_tensor *xc = nn_contiguous(x), *wc = xc && w ? nn_contiguous(w) : NULL;
  nn_tensor *bc = xc && b ? nn_contiguous(b) : NULL;
  nn_no_grad_end(guard);
  int64_t stats_size[2] = {total / n, 2};
  nn_tensor *y = NULL, *stats = NULL;
  if (!xc || (w && !wc) || (b && !bc) || !(y = nn_empty(x->dtype, x->ndim, x->size)) ||
      !(stats = nn_empty(NN_FLOAT64, 2, stats_size)))
    goto fail;
  layer_norm_rows a = {total / n, n, nn_data(xc), wc ? nn_data(wc) : NULL, bc ? nn_data(bc) : NULL,
                       NULL, eps, nn_data(stats), nn_data(y), NULL, NULL};
  layer_norm_run(0, x->dtype, &a);
  if (nn_needs_grad(x, w, b)) {
    nn_node *node = nn_node_attach(y, "NativeLayerNormBackward0", layer_norm_node_backward, 3, x, w, b);
    if (!node) goto fail;
    node->ints[0] = n;
    node->scalar[0] = eps;
    node->ndim = b ? b->ndim : 0;
    for (int i = 0; b && i < b->ndim; i++) node->size[i] = b->size[i];
    nn_node_save(node, 0, xc);
    if (wc) nn_node_save(node, 1, wc);
    nn_node_save(node, 2, stats);
  }
  nn_release(xc), nn_release(wc), nn_release(bc), nn_release(stats);
  *out = y;
  return 1;
fail:
  nn_release(xc), nn_release(wc), nn_release(bc), nn_release(y), nn_release(stats);
  return -1;
}

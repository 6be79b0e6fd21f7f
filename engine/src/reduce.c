/* reduce.c: sum, mean, max, min, argmax, argmin, norm, over every element
 * or one dimension; each backward beside its forward. Sums accumulate in
 * double whatever the dtype, so a float32 sum of a million terms stays
 * accurate. */
#include "internal.h"
#include "cpu/cpu.h" /* until its loops move there */

/* The shape a reduction keeps: every reduced dim set to 1. */
static void keep_shape(const nn_tensor *a, int dim, int64_t *size) {
  for (int i = 0; i < a->ndim; i++) size[i] = (dim == NN_ALL_DIMS || dim == i) ? 1 : a->size[i];
}

static nn_tensor *squeeze_kept(nn_tensor *kept, const nn_tensor *a, int dim, int keepdim) {
  if (keepdim || !kept) return kept;
  int64_t size[NN_MAX_DIMS];
  int n = 0;
  for (int i = 0; i < a->ndim; i++)
    if (dim != NN_ALL_DIMS && dim != i) size[n++] = a->size[i];
  nn_tensor *v = nn_view(kept, n, size);
  nn_release(kept);
  return v;
}

static void accumulate_inner(void *ctx, int64_t n, char **data, const int64_t *st) {
  nn_dtype src = *(const nn_dtype *)ctx;
  double *acc = (double *)data[0];
  if (src == NN_FLOAT32) {
    const float *x = (const float *)data[1];
    for (int64_t i = 0; i < n; i++) acc[i * st[0]] += x[i * st[1]];
  } else {
    for (int64_t i = 0; i < n; i++) acc[i * st[0]] += nn_load(src, data[1], i * st[1]);
  }
}

/* Sums a into the shape (ndim, size) it broadcasts from: the reduced dims
   are those of size 1 there, and leading dims a has beyond ndim. */
static nn_tensor *sum_into_shape(nn_tensor *a, int ndim, const int64_t *size, nn_dtype dtype) {
  nn_tensor *acc = nn_zeros(NN_FLOAT64, ndim, size);
  if (!acc) return NULL;
  nn_tensor *wide = nn_expand(acc, a->ndim, a->size);
  if (!wide) {
    nn_release(acc);
    return NULL;
  }
  nn_iter it;
  nn_tensor *ts[2] = {wide, a};
  nn_iter_init(&it, 2, ts, a->ndim, a->size);
  nn_iter_run(&it, accumulate_inner, &a->dtype);
  nn_release(wide);
  nn_tensor *out = nn_to_dtype(acc, dtype);
  nn_release(acc);
  return out;
}

nn_tensor *nn_sum_to_shape(nn_tensor *a, int ndim, const int64_t *size) {
  if (ndim > a->ndim) {
    nn_error_set("sum_to_shape: cannot reduce %d dimensions to %d", a->ndim, ndim);
    return NULL;
  }
  for (int i = 0; i < ndim; i++) {
    int64_t have = a->size[a->ndim - ndim + i];
    if (size[i] != 1 && size[i] != have) {
      nn_error_set("sum_to_shape: size %lld does not reduce to %lld", (long long)have,
                   (long long)size[i]);
      return NULL;
    }
  }
  return sum_into_shape(a, ndim, size, a->dtype);
}

/* ---- sum / mean ------------------------------------------------------ */
/* d sum = g spread back over the reduced dims; mean also divides. */
static int sum_backward(nn_node *node, nn_tensor *g, nn_tensor **gi) {
  int64_t kept[NN_MAX_DIMS];
  int dim = (int)node->ints[0];
  for (int i = 0; i < node->ndim; i++) kept[i] = (dim == NN_ALL_DIMS || dim == i) ? 1 : node->size[i];
  nn_tensor *k = nn_reshape(g, node->ndim, kept);
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

static nn_tensor *sum_or_mean(nn_tensor *a, int dim, int keepdim, int mean) {
  const char *name = mean ? "mean" : "sum";
  if (nn_check_cpu(name, a) < 0) return NULL;
  if (dim != NN_ALL_DIMS && (dim = nn_wrap_dim(name, dim, a->ndim)) < 0) return NULL;
  if (a->ndim == 0) dim = NN_ALL_DIMS;
  if (mean && !nn_dtype_is_floating(a->dtype)) {
    nn_error_set("mean: the tensor is %s; convert it with float() first", nn_dtype_name(a->dtype));
    return NULL;
  }
  int64_t size[NN_MAX_DIMS];
  keep_shape(a, dim, size);
  nn_dtype dtype = nn_dtype_is_floating(a->dtype) ? a->dtype : NN_INT64;
  nn_tensor *out = sum_into_shape(a, a->ndim, size, mean ? NN_FLOAT64 : dtype);
  double count = dim == NN_ALL_DIMS ? (double)nn_numel(a) : (double)a->size[dim];
  if (out && mean) {
    nn_binary_scalar_(NN_DIV, out, count);
    nn_tensor *typed = nn_to_dtype(out, dtype);
    nn_release(out);
    out = typed;
  }
  out = squeeze_kept(out, a, dim, keepdim);
  if (out && nn_needs_grad(a, NULL, NULL)) {
    const char *name = dim == NN_ALL_DIMS ? (mean ? "MeanBackward0" : "SumBackward0")
                                          : (mean ? "MeanBackward1" : "SumBackward1");
    nn_node *node = nn_node_attach(out, name, sum_backward, 1, a, NULL, NULL);
    if (!node) {
      nn_release(out);
      return NULL;
    }
    node->ints[0] = dim;
    node->scalar[0] = mean ? count : 1;
    node->ndim = a->ndim;
    for (int i = 0; i < a->ndim; i++) node->size[i] = a->size[i];
  }
  return out;
}

nn_tensor *nn_sum(nn_tensor *a, int dim, int keepdim) { return sum_or_mean(a, dim, keepdim, 0); }
nn_tensor *nn_mean(nn_tensor *a, int dim, int keepdim) { return sum_or_mean(a, dim, keepdim, 1); }

/* ---- max / min / argmax / argmin ------------------------------------- */
/* NaN wins, as in PyTorch: a NaN anywhere makes the max NaN. */
static int better(double x, double best, int want_max) {
  if (isnan(best)) return 0;
  if (isnan(x)) return 1;
  return want_max ? x > best : x < best;
}

/* Values and 0-based indices along dim (or over all, indices flat). */
static int extreme(nn_tensor *a, int dim, int want_max, nn_tensor **values, nn_tensor **indices) {
  *values = *indices = NULL;
  nn_tensor *c = nn_contiguous(a);
  if (!c) return -1;
  nn_line_shape s = nn_lines_around(a, dim);
  int64_t outer = s.outer, n = s.n, inner = s.inner, size[NN_MAX_DIMS];
  keep_shape(a, dim, size);
  *values = nn_empty_like_shape(a, a->dtype, a->ndim, size);
  *indices = nn_empty_like_shape(a, NN_INT64, a->ndim, size);
  if (!*values || !*indices) {
    nn_release(c);
    return -1;
  }
  const char *x = nn_data(c);
  int64_t *idx = (int64_t *)nn_data(*indices);
  for (int64_t o = 0; o < outer; o++) {
    for (int64_t i = 0; i < inner; i++) {
      int64_t base = o * n * inner + i, best_j = 0;
      double best = nn_load(a->dtype, x, base);
      for (int64_t j = 1; j < n; j++) {
        double v = nn_load(a->dtype, x, base + j * inner);
        if (better(v, best, want_max)) best = v, best_j = j;
      }
      nn_store(a->dtype, nn_data(*values), o * inner + i, best);
      idx[o * inner + i] = best_j;
    }
  }
  nn_release(c);
  return 0;
}

/* Along a dim the gradient goes to the chosen index; over everything it is
   shared evenly by every element equal to the result, as PyTorch does. */
static int extreme_backward(nn_node *node, nn_tensor *g, nn_tensor **gi) {
  int dim = (int)node->ints[0];
  nn_tensor *z = nn_zeros(g->dtype, node->ndim, node->size);
  if (!z) return -1;
  if (dim == NN_ALL_DIMS) {
    nn_tensor *a = node->saved[0];
    double best = nn_get_flat(node->saved[1], 0), gv = nn_get_flat(g, 0);
    int64_t count = 0, n = nn_numel(a);
    for (int64_t i = 0; i < n; i++) count += nn_get_flat(a, i) == best || (isnan(best) && isnan(nn_get_flat(a, i)));
    for (int64_t i = 0; i < n; i++) {
      double v = nn_get_flat(a, i);
      if (v == best || (isnan(best) && isnan(v))) nn_set_flat(z, i, gv / (double)count);
    }
  } else {
    nn_tensor *idx = node->saved[0];
    int64_t outer = 1, inner = 1, n = node->size[dim];
    for (int i = 0; i < dim; i++) outer *= node->size[i];
    for (int i = dim + 1; i < node->ndim; i++) inner *= node->size[i];
    for (int64_t o = 0; o < outer; o++)
      for (int64_t i = 0; i < inner; i++) {
        int64_t j = (int64_t)nn_get_flat(idx, o * inner + i);
        nn_set_flat(z, (o * n + j) * inner + i, nn_get_flat(g, o * inner + i));
      }
  }
  gi[0] = z;
  return 0;
}

static nn_tensor *max_or_min(nn_tensor *a, int dim, int keepdim, nn_tensor **indices, int want_max) {
  const char *name = want_max ? "max" : "min";
  if (nn_check_cpu(name, a) < 0) return NULL;
  if (dim != NN_ALL_DIMS && (dim = nn_wrap_dim(name, dim, a->ndim)) < 0) return NULL;
  if (a->ndim == 0) dim = NN_ALL_DIMS;
  if (dim == NN_ALL_DIMS ? nn_numel(a) == 0 : a->size[dim] == 0) {
    nn_error_set("%s: the tensor is empty along the reduced dimension", name);
    return NULL;
  }
  nn_tensor *values = NULL, *idx = NULL;
  if (extreme(a, dim, want_max, &values, &idx) < 0) {
    nn_release(values), nn_release(idx);
    return NULL;
  }
  values = squeeze_kept(values, a, dim, keepdim);
  idx = squeeze_kept(idx, a, dim, keepdim);
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
/* The p-norm of one line of n values `inner` apart, in double; 0 for an
   empty line whatever p, as PyTorch. */
static double norm_of_line(nn_dtype dt, const void *x, int64_t n, int64_t inner, double p) {
  if (n == 0) return 0;
  double acc = isinf(p) && p < 0 ? INFINITY : 0;
  for (int64_t j = 0; j < n; j++) {
    double v = fabs(nn_load(dt, x, j * inner));
    if (p == 0) acc += v != 0;
    else if (isinf(p)) acc = isnan(v) || (p > 0 ? v > acc : v < acc) ? v : acc;
    else acc += p == 1 ? v : (p == 2 ? v * v : pow(v, p));
    if (isnan(acc)) break;
  }
  if (p == 0 || p == 1 || isinf(p)) return acc;
  return p == 2 ? sqrt(acc) : pow(acc, 1 / p);
}

static double sgn(double x) { return x > 0 ? 1 : (x < 0 ? -1 : 0); }

/* One line's gradient, PyTorch 1.13's norm_backward (FunctionsManual.cpp),
   with its masks: 0 where the norm is 0 (and, for p < 1, where x is), and
   for p = +-inf the gradient shared evenly by the elements that attain the
   norm (or are NaN). */
static void norm_backward_line(nn_dtype dt, const void *x, void *gi, int64_t n, int64_t inner,
                               double p, double norm, double g) {
  int64_t count = 0;
  if (isinf(p))
    for (int64_t j = 0; j < n; j++) {
      double v = fabs(nn_load(dt, x, j * inner));
      count += v == norm || isnan(v);
    }
  for (int64_t j = 0; j < n; j++) {
    double v = nn_load(dt, x, j * inner), a = fabs(v), d;
    if (p == 1) {
      d = sgn(v) * g;
    } else if (p == 2) {
      d = g * (norm == 0 ? 0 : v / norm);
    } else if (isinf(p)) {
      d = sgn(v) * (g / (double)count * (a == norm || isnan(a)));
    } else if (p < 1) {
      d = sgn(v) * (v == 0 ? 0 : pow(a, p - 1)) * g * pow(norm, 1 - p);
    } else {
      double scale = norm == 0 ? 0 : g / pow(norm, p - 1);
      d = (p < 2 ? sgn(v) * pow(a, p - 1) : v * pow(a, p - 2)) * scale;
    }
    nn_store(dt, gi, j * inner, d);
  }
}

static int norm_backward(nn_node *node, nn_tensor *g, nn_tensor **gi) {
  double p = node->scalar[0];
  if (p == 0) return 0; /* the count of nonzeros has no gradient: none, as in PyTorch */
  nn_tensor *a = node->saved[0], *norm = node->saved[1]; /* both contiguous */
  nn_grad_guard guard = nn_no_grad_begin();
  nn_tensor *gc = nn_contiguous(g);
  nn_no_grad_end(guard);
  nn_tensor *out = gc ? nn_empty_like(a) : NULL;
  if (!out) {
    nn_release(gc);
    return -1;
  }
  nn_line_shape s = nn_lines_around(a, (int)node->ints[0]);
  size_t es = nn_element_size(a->dtype);
  for (int64_t o = 0; o < s.outer; o++)
    for (int64_t i = 0; i < s.inner; i++) {
      int64_t line = o * s.inner + i;
      size_t start = (size_t)(o * s.n * s.inner + i) * es;
      norm_backward_line(a->dtype, (const char *)nn_data(a) + start, (char *)nn_data(out) + start,
                         s.n, s.inner, p, nn_load(norm->dtype, nn_data(norm), line),
                         nn_load(gc->dtype, nn_data(gc), line));
    }
  nn_release(gc);
  gi[0] = out;
  return 0;
}

nn_tensor *nn_norm(nn_tensor *a, double p, int dim, int keepdim) {
  if (nn_check_cpu("norm", a) < 0) return NULL;
  if (!nn_dtype_is_floating(a->dtype)) {
    nn_error_set("norm: the tensor is %s; convert it with float() first", nn_dtype_name(a->dtype));
    return NULL;
  }
  if (isnan(p)) {
    nn_error_set("norm: p must be a number, got nan");
    return NULL;
  }
  if (dim != NN_ALL_DIMS && (dim = nn_wrap_dim("norm", dim, a->ndim)) < 0) return NULL;
  if (a->ndim == 0) dim = NN_ALL_DIMS;
  nn_grad_guard guard = nn_no_grad_begin();
  nn_tensor *c = nn_contiguous(a);
  nn_no_grad_end(guard);
  int64_t size[NN_MAX_DIMS];
  keep_shape(a, dim, size);
  nn_tensor *kept = c ? nn_empty_like_shape(a, a->dtype, a->ndim, size) : NULL;
  if (!kept) {
    nn_release(c);
    return NULL;
  }
  nn_line_shape s = nn_lines_around(c, dim);
  size_t es = nn_element_size(a->dtype);
  for (int64_t o = 0; o < s.outer; o++)
    for (int64_t i = 0; i < s.inner; i++) {
      const char *line = (const char *)nn_data(c) + (size_t)(o * s.n * s.inner + i) * es;
      nn_store(a->dtype, nn_data(kept), o * s.inner + i, norm_of_line(a->dtype, line, s.n, s.inner, p));
    }
  nn_tensor *out = squeeze_kept(kept, a, dim, keepdim);
  if (out && nn_needs_grad(a, NULL, NULL)) {
    nn_node *node = nn_node_attach(out, "NormBackward1", norm_backward, 1, a, NULL, NULL);
    if (!node) {
      nn_release(c), nn_release(out);
      return NULL;
    }
    node->scalar[0] = p;
    node->ints[0] = dim;
    nn_node_save(node, 0, c);
    nn_node_save_output(node, 1, out);
  }
  nn_release(c);
  return out;
}

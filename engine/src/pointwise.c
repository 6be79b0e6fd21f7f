/* pointwise.c: the fronts of issue 12's elementwise ops that are not one
 * opcode of the binary or unary kernels: nan_to_num (its own kernel, three
 * parameters), lerp (made of other fronts, so autograd follows it), and
 * the whole-tensor tests allclose and equal. */
#include "internal.h"

#include <float.h>
#include <stddef.h>

/* ---- nan_to_num ----------------------------------------------------------- */
/* PyTorch's derivative: g where x is finite, else 0 (a product, as PyTorch's). */
static int nan_to_num_backward(nn_node *node, nn_tensor *g, nn_tensor **gi) {
  nn_tensor *finite = nn_unary(NN_ISFINITE, node->saved[0]);
  gi[0] = finite ? nn_binary(NN_MUL, g, finite) : NULL;
  nn_release(finite);
  return gi[0] ? 0 : -1;
}

nn_tensor *nn_nan_to_num(nn_tensor *a, double nan, double posinf, double neginf) {
  const nn_backend *be = nn_dispatch("nan_to_num", offsetof(nn_backend, nan_to_num), a, NULL, NULL);
  if (!be) return NULL;
  if (!nn_dtype_is_floating(a->dtype)) return nn_clone(a); /* nothing to replace */
  double largest = a->dtype == NN_FLOAT64 ? DBL_MAX
                   : a->dtype == NN_FLOAT16 ? 65504.0
                   : a->dtype == NN_BFLOAT16 ? 3.3895313892515355e38 : FLT_MAX;
  if (isnan(posinf)) posinf = largest;
  if (isnan(neginf)) neginf = -largest;
  nn_tensor *out = nn_empty_like(a);
  if (!out) return NULL;
  nn_iter it;
  nn_tensor *ts[2] = {out, a};
  nn_iter_init(&it, 2, ts, out->ndim, out->size);
  if (be->nan_to_num(&it, nan, posinf, neginf) < 0) {
    nn_release(out);
    return NULL;
  }
  if (nn_needs_grad(a, NULL, NULL)) {
    nn_node *node = nn_node_attach(out, "NanToNumBackward0", nan_to_num_backward, 1, a, NULL, NULL);
    if (!node) {
      nn_release(out);
      return NULL;
    }
    nn_node_save(node, 0, a);
  }
  return out;
}

/* ---- lerp ------------------------------------------------------------------ */
/* start + weight (end - start); with a number weight of 1/2 or more,
   PyTorch's other form end - (end - start)(1 - weight), exact at 1. */
nn_tensor *nn_lerp(nn_tensor *start, nn_tensor *end, nn_tensor *weight, double w) {
  if (!nn_dtype_is_floating(start->dtype) || start->dtype != end->dtype ||
      (weight && weight->dtype != start->dtype)) {
    nn_error_set("lerp: start, end and weight must be of one floating dtype, got %s and %s%s%s",
                 nn_dtype_name(start->dtype), nn_dtype_name(end->dtype), weight ? " and " : "",
                 weight ? nn_dtype_name(weight->dtype) : "");
    return NULL;
  }
  /* a number weight, one shape, float32 or float64, nothing to
     differentiate: the device's one pass, the same values */
  const nn_backend *be = nn_kernels_of(start->device);
  if (!weight && be && be->lerp && (start->dtype == NN_FLOAT32 || start->dtype == NN_FLOAT64) &&
      start->device == end->device && nn_same_shape(start, end) && !nn_needs_grad(start, end, NULL)) {
    nn_tensor *out = nn_empty_like_shape(start, start->dtype, start->ndim, start->size);
    if (!out) return NULL;
    nn_iter it;
    nn_tensor *ts[3] = {out, start, end};
    nn_iter_init(&it, 3, ts, out->ndim, out->size);
    if (be->lerp(&it, w) < 0) {
      nn_release(out);
      return NULL;
    }
    return out;
  }
  nn_tensor *d = nn_binary(NN_SUB, end, start), *step = NULL, *out = NULL;
  if (!d) return NULL;
  if (weight) {
    step = nn_binary(NN_MUL, weight, d);
    out = step ? nn_binary(NN_ADD, start, step) : NULL;
  } else if (w < 0.5) {
    step = nn_binary_number(NN_MUL, d, w, 0, NN_NUMBER_FLOAT);
    out = step ? nn_binary(NN_ADD, start, step) : NULL;
  } else {
    step = nn_binary_number(NN_MUL, d, 1 - w, 0, NN_NUMBER_FLOAT);
    out = step ? nn_binary(NN_SUB, end, step) : NULL;
  }
  nn_release(d), nn_release(step);
  return out;
}

/* ---- allclose, equal ------------------------------------------------------ */
/* PyTorch's isclose, over every element: a == b (infinities of one sign
   included), both NaN when equal_nan, or |a - b| finite and at most
   atol + rtol |b|. *result is 1 when every element passes. */
int nn_allclose(nn_tensor *a, nn_tensor *b, double rtol, double atol, int equal_nan, int *result) {
  if (a->dtype != b->dtype) {
    nn_error_set("allclose: the tensors are %s and %s; convert one first", nn_dtype_name(a->dtype),
                 nn_dtype_name(b->dtype));
    return -1;
  }
  if (rtol < 0 || atol < 0) {
    nn_error_set("allclose: rtol and atol must be non-negative, got %g and %g", rtol, atol);
    return -1;
  }
  nn_grad_guard guard = nn_no_grad_begin();
  nn_tensor *close = nn_binary(NN_EQ, a, b), *count = NULL;
  int st = close ? 0 : -1;
  if (close && nn_dtype_is_floating(a->dtype)) {
    nn_tensor *diff = nn_binary(NN_SUB, a, b), *ad = diff ? nn_unary(NN_ABS, diff) : NULL;
    nn_tensor *ab = ad ? nn_unary(NN_ABS, b) : NULL;
    nn_tensor *tol = ab ? nn_binary_number(NN_MUL, ab, rtol, 0, NN_NUMBER_FLOAT) : NULL;
    if (tol && nn_binary_number_(NN_ADD, tol, atol, NN_NUMBER_FLOAT) < 0) st = -1;
    nn_tensor *within = st == 0 && tol ? nn_binary(NN_LE, ad, tol) : NULL;
    if (within) st = nn_binary_(NN_LOGICAL_OR, close, within);
    else st = -1;
    if (st == 0 && equal_nan) {
      nn_tensor *na = nn_unary(NN_ISNAN, a), *nb = na ? nn_unary(NN_ISNAN, b) : NULL;
      st = nb && nn_binary_(NN_LOGICAL_AND, na, nb) == 0 ? nn_binary_(NN_LOGICAL_OR, close, na) : -1;
      nn_release(na), nn_release(nb);
    }
    nn_release(diff), nn_release(ad), nn_release(ab), nn_release(tol), nn_release(within);
  }
  if (st == 0) count = nn_sum(close, NN_ALL_DIMS, 0);
  double n = 0;
  if (!count || nn_item(count, &n) < 0) st = -1;
  else *result = (int64_t)n == nn_numel(close);
  nn_release(close), nn_release(count);
  nn_no_grad_end(guard);
  return st;
}

int nn_equal(nn_tensor *a, nn_tensor *b, int *result) {
  if (nn_check_same_device("equal", a, b) < 0) return -1;
  if (!nn_same_shape(a, b)) {
    *result = 0;
    return 0;
  }
  /* one dtype: the device's one-pass compare (mixed dtypes: compared as
     eq compares them, in their common type) */
  const nn_backend *be = nn_kernels_of(a->device);
  if (be && be->equal && a->dtype == b->dtype) {
    nn_iter it;
    nn_tensor *ts[2] = {a, b};
    nn_iter_init(&it, 2, ts, a->ndim, a->size);
    return be->equal(&it, result);
  }
  nn_grad_guard guard = nn_no_grad_begin();
  nn_tensor *eq = nn_binary(NN_EQ, a, b), *count = eq ? nn_sum(eq, NN_ALL_DIMS, 0) : NULL;
  double n = 0;
  int st = count && nn_item(count, &n) == 0 ? 0 : -1;
  if (st == 0) *result = (int64_t)n == nn_numel(a);
  nn_release(eq), nn_release(count);
  nn_no_grad_end(guard);
  return st;
}

/* loss.c: mean squared error and binary cross-entropy, each a fused loop
 * with its backward beside it. */
#include "internal.h"

#include <stdio.h>

int nn_reduction_from_name(const char *name) {
  if (strcmp(name, "none") == 0) return NN_REDUCTION_NONE;
  if (strcmp(name, "mean") == 0) return NN_REDUCTION_MEAN;
  if (strcmp(name, "sum") == 0) return NN_REDUCTION_SUM;
  return -1;
}

static int check_pair(const char *op, nn_tensor *input, nn_tensor *target) {
  if (nn_check_cpu(op, input) < 0 || nn_check_cpu(op, target) < 0) return -1;
  if (!nn_dtype_is_floating(input->dtype) || input->dtype != target->dtype) {
    nn_error_set("%s: input and target must both be float32 or both float64, got %s and %s", op,
                 nn_dtype_name(input->dtype), nn_dtype_name(target->dtype));
    return -1;
  }
  if (!nn_same_shape(input, target)) {
    char a[96], b[96];
    nn_error_set("%s: target shape %s differs from input shape %s", op,
                 nn_shape_string(target, b, sizeof b), nn_shape_string(input, a, sizeof a));
    return -1;
  }
  return 0;
}

/* The per-element losses l (a contiguous tensor) reduced as asked. */
static nn_tensor *reduce_loss(nn_tensor *l, nn_reduction reduction) {
  if (reduction == NN_REDUCTION_NONE) return nn_retain(l);
  double sum = 0;
  int64_t n = nn_numel(l);
  if (l->dtype == NN_FLOAT32) {
    const float *p = nn_data(l);
    for (int64_t i = 0; i < n; i++) sum += p[i];
  } else {
    const double *p = nn_data(l);
    for (int64_t i = 0; i < n; i++) sum += p[i];
  }
  /* PyTorch's mean of nothing is NaN */
  return nn_full(l->dtype, 0, NULL, reduction == NN_REDUCTION_MEAN ? sum / (double)n : sum);
}

/* The gradient's scale for element i: g itself (none), or its one value,
   divided by the count for a mean. */
static double grad_scale(nn_tensor *g, nn_reduction reduction, int64_t i, int64_t n) {
  if (reduction == NN_REDUCTION_NONE) return nn_get_flat(g, i);
  double v = nn_get_flat(g, 0);
  return reduction == NN_REDUCTION_MEAN ? v / (double)n : v;
}

/* ---- MSE: l = (x - y)^2; dl/dx = 2 (x - y), dl/dy = -2 (x - y) -------- */
static int mse_backward(nn_node *node, nn_tensor *g, nn_tensor **gi) {
  nn_tensor *x = node->saved[0], *y = node->saved[1];
  nn_reduction reduction = (nn_reduction)node->ints[0];
  int64_t n = nn_numel(x);
  nn_tensor *gx = nn_empty_like(x);
  if (!gx) return -1;
  for (int64_t i = 0; i < n; i++)
    nn_set_flat(gx, i, 2 * (nn_get_flat(x, i) - nn_get_flat(y, i)) * grad_scale(g, reduction, i, n));
  if (node->inputs[1] && !(gi[1] = nn_unary(NN_NEG, gx))) {
    nn_release(gx);
    return -1;
  }
  if (node->inputs[0]) gi[0] = gx;
  else nn_release(gx);
  return 0;
}

nn_tensor *nn_mse_loss(nn_tensor *input, nn_tensor *target, nn_reduction reduction) {
  if (check_pair("mse_loss", input, target) < 0) return NULL;
  nn_tensor *l = nn_empty_like(input);
  if (!l) return NULL;
  for (int64_t i = 0, n = nn_numel(input); i < n; i++) {
    double d = nn_get_flat(input, i) - nn_get_flat(target, i);
    nn_set_flat(l, i, d * d);
  }
  nn_tensor *out = reduce_loss(l, reduction);
  nn_release(l);
  if (out && nn_needs_grad(input, target, NULL)) {
    nn_node *node = nn_node_attach(out, "MseLossBackward0", mse_backward, 2, input, target, NULL);
    if (!node) {
      nn_release(out);
      return NULL;
    }
    node->ints[0] = reduction;
    nn_node_save(node, 0, input);
    nn_node_save(node, 1, target);
  }
  return out;
}

/* ---- BCE: l = -w (y log x + (1 - y) log(1 - x)), logs clamped at -100
   as PyTorch does, so that x = 0 or 1 gives a finite loss. ------------ */
static int bce_backward(nn_node *node, nn_tensor *g, nn_tensor **gi) {
  nn_tensor *x = node->saved[0], *y = node->saved[1], *w = node->saved[2];
  nn_reduction reduction = (nn_reduction)node->ints[0];
  int64_t n = nn_numel(x);
  nn_tensor *gx = nn_empty_like(x);
  if (!gx) return -1;
  if (x->dtype == NN_FLOAT32 && !w && reduction != NN_REDUCTION_NONE && nn_is_contiguous(x) &&
      nn_is_contiguous(y)) {
    /* the XOR network's hot path: float all the way, as PyTorch computes it */
    const float *px = nn_data(x), *py = nn_data(y);
    float *pg = nn_data(gx), scale = (float)grad_scale(g, reduction, 0, 1);
    for (int64_t i = 0; i < n; i++) {
      float d = (1.0f - px[i]) * px[i];
      pg[i] = scale * (px[i] - py[i]) / (d > 1e-12f ? d : 1e-12f);
    }
    if (reduction == NN_REDUCTION_MEAN)
      for (int64_t i = 0; i < n; i++) pg[i] /= (float)n;
  } else {
    for (int64_t i = 0; i < n; i++) {
      double xv = nn_get_flat(x, i), d = (1 - xv) * xv;
      double v = grad_scale(g, reduction, i, n) * (xv - nn_get_flat(y, i)) / (d > 1e-12 ? d : 1e-12);
      nn_set_flat(gx, i, w ? v * nn_get_flat(w, i) : v);
    }
  }
  gi[0] = gx;
  return 0;
}

nn_tensor *nn_bce_loss(nn_tensor *input, nn_tensor *target, nn_tensor *weight,
                       nn_reduction reduction) {
  if (check_pair("binary_cross_entropy", input, target) < 0) return NULL;
  if (nn_grad_enabled() && target->requires_grad) {
    nn_error_set("binary_cross_entropy: the derivative for the target is not implemented; "
                 "detach() the target");
    return NULL;
  }
  nn_tensor *w = NULL;
  if (weight) {
    if (weight->dtype != input->dtype) {
      nn_error_set("binary_cross_entropy: weight is %s, input %s", nn_dtype_name(weight->dtype),
                   nn_dtype_name(input->dtype));
      return NULL;
    }
    if (!(w = nn_expand(weight, input->ndim, input->size))) return NULL;
  }
  int64_t n = nn_numel(input);
  nn_tensor *out = NULL, *l = NULL;
  if (input->dtype == NN_FLOAT32 && !w && nn_is_contiguous(input) && nn_is_contiguous(target) &&
      reduction != NN_REDUCTION_NONE) {
    /* the common case in float, as PyTorch computes it, summed directly */
    const float *px = nn_data(input), *py = nn_data(target);
    double sum = 0;
    for (int64_t i = 0; i < n; i++) {
      float x = px[i], y = py[i];
      if (!(x >= 0 && x <= 1)) {
        nn_error_set("binary_cross_entropy: input values must be probabilities in [0, 1], "
                     "element %lld is %g", (long long)i + 1, (double)x);
        goto fail;
      }
      float lx = logf(x), l1x = log1pf(-x);
      sum += (y - 1) * (l1x > -100 ? l1x : -100) - y * (lx > -100 ? lx : -100);
    }
    out = nn_full(NN_FLOAT32, 0, NULL, reduction == NN_REDUCTION_MEAN ? sum / (double)n : sum);
    goto record;
  }
  if (!(l = nn_empty_like(input))) goto fail;
  for (int64_t i = 0; i < n; i++) {
    double x = nn_get_flat(input, i), y = nn_get_flat(target, i);
    if (!(x >= 0 && x <= 1)) {
      nn_error_set("binary_cross_entropy: input values must be probabilities in [0, 1], "
                   "element %lld is %g", (long long)i + 1, x);
      goto fail;
    }
    double lx = x > 0 ? log(x) : -100, l1x = x < 1 ? log1p(-x) : -100;
    if (lx < -100) lx = -100;
    if (l1x < -100) l1x = -100;
    double v = (y - 1) * l1x - y * lx;
    nn_set_flat(l, i, w ? v * nn_get_flat(w, i) : v);
  }
  out = reduce_loss(l, reduction);
  nn_release(l);
  l = NULL;
record:
  if (out && nn_needs_grad(input, NULL, NULL)) {
    nn_node *node = nn_node_attach(out, "BinaryCrossEntropyBackward0", bce_backward, 1, input, NULL,
                                   NULL);
    if (!node) {
      nn_release(out);
      goto fail;
    }
    node->ints[0] = reduction;
    nn_node_save(node, 0, input);
    nn_node_save(node, 1, target);
    if (w) nn_node_save(node, 2, w);
  }
  nn_release(w);
  return out;
fail:
  nn_release(l);
  nn_release(w);
  return NULL;
}

/* loss.c: the losses, each a fused loop with its backward beside it: mean
 * squared error and binary cross-entropy; then L1, smooth L1, Huber and
 * KL divergence (pointwise), binary cross-entropy with logits, and
 * cross-entropy and negative log-likelihood over classes. Formulas and
 * their orders follow PyTorch 1.13, whose file each section names. */
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

/* t's values, laid out contiguously, never recorded by autograd: t itself
   when it is already contiguous, else a copy. */
static nn_tensor *contiguous_values(nn_tensor *t) {
  if (nn_is_contiguous(t)) return nn_retain(t);
  nn_tensor *c = nn_empty_like(t);
  if (c && nn_copy_(c, t) < 0) {
    nn_release(c);
    return NULL;
  }
  return c;
}

/* What the backward of a loss of (input, target) reads and writes: both as
   contiguous values, the upstream gradient per element when the reduction
   is "none", and a gradient tensor for each operand that needs one. */
typedef struct { nn_tensor *x, *y, *gc, *gx, *gy; } loss_grads;

static void loss_grads_release(loss_grads *b) {
  nn_release(b->x), nn_release(b->y), nn_release(b->gc), nn_release(b->gx), nn_release(b->gy);
}

static int loss_grads_begin(nn_node *node, nn_tensor *g, int reduction, loss_grads *b) {
  memset(b, 0, sizeof *b);
  b->x = contiguous_values(node->saved[0]);
  b->y = b->x ? contiguous_values(node->saved[1]) : NULL;
  if (!b->y) goto fail;
  if (reduction == NN_REDUCTION_NONE && !(b->gc = contiguous_values(g))) goto fail;
  if (node->inputs[0] && !(b->gx = nn_empty_like(b->x))) goto fail;
  if (node->inputs[1] && !(b->gy = nn_empty_like(b->x))) goto fail;
  return 0;
fail:
  loss_grads_release(b);
  return -1;
}

/* Hands the gradients to backward's caller and releases the rest. */
static int loss_grads_finish(loss_grads *b, nn_tensor **gi) {
  gi[0] = b->gx;
  gi[1] = b->gy;
  b->gx = b->gy = NULL;
  loss_grads_release(b);
  return 0;
}

/* ---- MSE: l = (x - y)^2; dl/dx = 2 (x - y), dl/dy = -2 (x - y) -------- */
static int mse_backward(nn_node *node, nn_tensor *g, nn_tensor **gi) {
  nn_reduction reduction = (nn_reduction)node->ints[0];
  nn_tensor *x = contiguous_values(node->saved[0]), *y = x ? contiguous_values(node->saved[1]) : NULL;
  if (!y) {
    nn_release(x);
    return -1;
  }
  int64_t n = nn_numel(x);
  nn_tensor *gx = nn_empty_like(x);
  if (!gx) {
    nn_release(x), nn_release(y);
    return -1;
  }
  if (x->dtype == NN_FLOAT32 && reduction != NN_REDUCTION_NONE) {
    const float *px = nn_data(x), *py = nn_data(y);
    float *pg = nn_data(gx), scale = (float)(2 * grad_scale(g, reduction, 0, n));
    for (int64_t i = 0; i < n; i++) pg[i] = scale * (px[i] - py[i]);
  } else {
    for (int64_t i = 0; i < n; i++)
      nn_set_flat(gx, i, 2 * (nn_get_flat(x, i) - nn_get_flat(y, i)) * grad_scale(g, reduction, i, n));
  }
  nn_release(x), nn_release(y);
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
  nn_tensor *x = contiguous_values(input), *y = x ? contiguous_values(target) : NULL;
  if (!y) {
    nn_release(x);
    return NULL;
  }
  nn_tensor *l = nn_empty_like(input);
  int64_t n = nn_numel(input);
  if (l && x->dtype == NN_FLOAT32) {
    const float *px = nn_data(x), *py = nn_data(y);
    float *pl = nn_data(l);
    for (int64_t i = 0; i < n; i++) {
      float d = px[i] - py[i];
      pl[i] = d * d;
    }
  } else if (l) {
    const double *px = nn_data(x), *py = nn_data(y);
    double *pl = nn_data(l);
    for (int64_t i = 0; i < n; i++) pl[i] = (px[i] - py[i]) * (px[i] - py[i]);
  }
  nn_release(x), nn_release(y);
  if (!l) return NULL;
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
    nn_error_set("binary_cross_entropy: no gradient flows to the target (as in PyTorch); "
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

/* ==== losses beyond MSE and BCE ======================================== */

/* A reduction a loss accepts: nn_reduction's three, and batchmean where
   the loss has it (kl_div). */
static int check_reduction(const char *op, int reduction, int allow_batchmean) {
  if (reduction == NN_REDUCTION_NONE || reduction == NN_REDUCTION_MEAN ||
      reduction == NN_REDUCTION_SUM || (allow_batchmean && reduction == NN_REDUCTION_BATCHMEAN))
    return 0;
  nn_error_set("%s: unknown reduction %d", op, reduction);
  return -1;
}

/* Refuses a tensor whose gradient the loss does not compute, rather than
   silently leaving it without one. */
static int refuse_grad(const char *op, const char *what, const nn_tensor *t) {
  if (!t || !t->requires_grad || !nn_grad_enabled()) return 0;
  nn_error_set("%s: no gradient flows to the %s (as in PyTorch); detach() it", op, what);
  return -1;
}

/* "4x3" for a shape given as sizes. */
static char *sizes_string(int ndim, const int64_t *size, char *buf, size_t len) {
  size_t used = 0;
  buf[0] = 0;
  if (ndim == 0) snprintf(buf, len, "scalar");
  for (int i = 0; i < ndim && used < len; i++)
    used += (size_t)snprintf(buf + used, len - used, i ? "x%lld" : "%lld", (long long)size[i]);
  return buf;
}

/* ---- pointwise losses: l_i = f(x_i, y_i) ------------------------------
   Each section gives f and its two partial derivatives side by side; one
   driver below runs any of them forward and backward. */
typedef enum {
  POINTWISE_L1,
  POINTWISE_SMOOTH_L1,
  POINTWISE_HUBER,
  POINTWISE_KL_DIV,
  POINTWISE_KL_DIV_LOG_TARGET
} pointwise_kind;

/* L1: l = |d|, d = x - y; dl/dx = sign(d) (0 at d = 0, as PyTorch's
   abs backward), dl/dy = -dl/dx. */
static inline double l1_value(double x, double y) { return fabs(x - y); }
static inline double l1_grad(double x, double y) {
  double d = x - y;
  return (double)((d > 0) - (d < 0));
}

/* Smooth L1 (Girshick, Fast R-CNN, 2015; PyTorch's smooth_l1_loss):
   l = 0.5 d^2 / beta where |d| < beta, else |d| - 0.5 beta;
   dl/dx = -1 for d <= -beta, 1 for d >= beta, else d / beta; so beta = 0
   is L1, except that d = 0 gets -1 there, as in PyTorch's
   smooth_l1_backward kernel (aten/src/ATen/native/cpu/PointwiseOpsKernel.cpp).
   Both pieces are computed and one selected, so that no jump depends on
   the comparison, which random data makes unpredictable. */
static inline double smooth_l1_value(double x, double y, double beta) {
  double d = x - y, z = fabs(d), quadratic = 0.5 * d * d / beta, linear = z - 0.5 * beta;
  return z < beta ? quadratic : linear;
}
static inline double smooth_l1_grad(double x, double y, double beta) {
  double d = x - y, g = d / beta;
  g = d >= beta ? 1.0 : g;
  return d <= -beta ? -1.0 : g;
}

/* Huber (Huber, 1964; PyTorch's huber_loss): l = 0.5 d^2 where
   |d| < delta, else delta (|d| - 0.5 delta) (smooth L1 times delta);
   dl/dx = -delta for d <= -delta, delta for d >= delta, else d.
   m = min(|d|, delta) gives both pieces in one expression, m (|d| - m / 2),
   exactly: |d| - |d| / 2 is exact in floating point. */
static inline double huber_value(double x, double y, double delta) {
  double d = x - y, z = fabs(d), m = z < delta ? z : delta;
  return m * (z - 0.5 * m);
}
static inline double huber_grad(double x, double y, double delta) {
  double d = x - y, g = d >= delta ? delta : d;
  return d <= -delta ? -delta : g;
}

/* KL divergence with x = log q and y = p: l = xlogy(y, y) - y x, where
   xlogy(0, 0) = 0 (PyTorch's kl_div, aten/src/ATen/native/Loss.cpp).
   dl/dx = -y; dl/dy as autograd derives it through xlogy: the term
   xlogy(y != 0, y) + y / y - x, which is log y + 1 - x for y > 0 and NaN
   at y = 0, as in PyTorch (where the true derivative is -inf). */
static inline double kl_div_value(double x, double y) {
  double ylogy = isnan(y) ? y : (y == 0 ? 0.0 : y * log(y));
  return ylogy - y * x;
}
static inline double kl_div_grad_input(double x, double y) {
  (void)x;
  return -y;
}
static inline double kl_div_grad_target(double x, double y) {
  return (y != 0 ? log(y) : 0.0) + y / y - x;
}

/* KL divergence with log_target, y = log p: l = exp(y) (y - x);
   dl/dx = -exp(y), dl/dy = exp(y) (y - x + 1). */
static inline double kl_div_log_value(double x, double y) { return exp(y) * (y - x); }
static inline double kl_div_log_grad_input(double x, double y) {
  (void)x;
  return -exp(y);
}
static inline double kl_div_log_grad_target(double x, double y) { return exp(y) * (y - x + 1); }

static inline double pointwise_value(pointwise_kind kind, double param, double x, double y) {
  switch (kind) {
  case POINTWISE_L1: return l1_value(x, y);
  case POINTWISE_SMOOTH_L1: return smooth_l1_value(x, y, param);
  case POINTWISE_HUBER: return huber_value(x, y, param);
  case POINTWISE_KL_DIV: return kl_div_value(x, y);
  default: return kl_div_log_value(x, y);
  }
}
static inline double pointwise_grad_input(pointwise_kind kind, double param, double x, double y) {
  switch (kind) {
  case POINTWISE_L1: return l1_grad(x, y);
  case POINTWISE_SMOOTH_L1: return smooth_l1_grad(x, y, param);
  case POINTWISE_HUBER: return huber_grad(x, y, param);
  case POINTWISE_KL_DIV: return kl_div_grad_input(x, y);
  default: return kl_div_log_grad_input(x, y);
  }
}
static inline double pointwise_grad_target(pointwise_kind kind, double param, double x, double y) {
  switch (kind) {
  case POINTWISE_KL_DIV: return kl_div_grad_target(x, y);
  case POINTWISE_KL_DIV_LOG_TARGET: return kl_div_log_grad_target(x, y);
  default: return -pointwise_grad_input(kind, param, x, y); /* functions of x - y */
  }
}

/* What the sum is divided by: the element count for a mean, the first
   size for a batchmean (PyTorch's F.kl_div: none for a scalar), else 1. */
static double reduction_divisor(int reduction, const nn_tensor *input) {
  if (reduction == NN_REDUCTION_MEAN) return (double)nn_numel(input);
  if (reduction == NN_REDUCTION_BATCHMEAN) return input->ndim ? (double)input->size[0] : 1.0;
  return 1.0;
}

/* The loops below are written once, over any kind, and compiled once per
   kind (pointwise_forward_loop and pointwise_backward_loop call them with
   the kind a constant): each copy has its formula inlined and no dispatch
   per element. */
#if defined(__GNUC__)
#define LOSS_ALWAYS_INLINE __attribute__((always_inline)) inline
#else
#define LOSS_ALWAYS_INLINE inline
#endif

/* Forward over contiguous x and y: every l_i into out (when not NULL),
   and their sum, accumulated in double. */
static LOSS_ALWAYS_INLINE double pointwise_forward_kernel(pointwise_kind kind, double param,
                                                          int64_t n, nn_dtype dtype, const void *x,
                                                          const void *y, void *out) {
  double sum = 0;
  if (dtype == NN_FLOAT32) {
    const float *px = x, *py = y;
    float *po = out;
    for (int64_t i = 0; i < n; i++) {
      double v = pointwise_value(kind, param, px[i], py[i]);
      if (po) po[i] = (float)v;
      sum += v;
    }
  } else {
    const double *px = x, *py = y;
    double *po = out;
    for (int64_t i = 0; i < n; i++) {
      double v = pointwise_value(kind, param, px[i], py[i]);
      if (po) po[i] = v;
      sum += v;
    }
  }
  return sum;
}

/* Backward over contiguous data: gx_i = dl/dx_i s_i and gy_i = dl/dy_i s_i
   (either output may be NULL), s_i = g_i (g not NULL) or scale. */
static LOSS_ALWAYS_INLINE void pointwise_backward_kernel(pointwise_kind kind, double param,
                                                         int64_t n, nn_dtype dtype, const void *x,
                                                         const void *y, const void *g,
                                                         double scale, void *gx, void *gy) {
  if (dtype == NN_FLOAT32) {
    const float *px = x, *py = y, *pg = g;
    float *ox = gx, *oy = gy;
    for (int64_t i = 0; i < n; i++) {
      double s = pg ? pg[i] : scale;
      if (ox) ox[i] = (float)(pointwise_grad_input(kind, param, px[i], py[i]) * s);
      if (oy) oy[i] = (float)(pointwise_grad_target(kind, param, px[i], py[i]) * s);
    }
  } else {
    const double *px = x, *py = y, *pg = g;
    double *ox = gx, *oy = gy;
    for (int64_t i = 0; i < n; i++) {
      double s = pg ? pg[i] : scale;
      if (ox) ox[i] = pointwise_grad_input(kind, param, px[i], py[i]) * s;
      if (oy) oy[i] = pointwise_grad_target(kind, param, px[i], py[i]) * s;
    }
  }
}

static double pointwise_forward_loop(pointwise_kind kind, double param, int64_t n, nn_dtype dtype,
                                     const void *x, const void *y, void *out) {
  switch (kind) {
  case POINTWISE_L1: return pointwise_forward_kernel(POINTWISE_L1, param, n, dtype, x, y, out);
  case POINTWISE_SMOOTH_L1:
    return pointwise_forward_kernel(POINTWISE_SMOOTH_L1, param, n, dtype, x, y, out);
  case POINTWISE_HUBER: return pointwise_forward_kernel(POINTWISE_HUBER, param, n, dtype, x, y, out);
  case POINTWISE_KL_DIV: return pointwise_forward_kernel(POINTWISE_KL_DIV, param, n, dtype, x, y, out);
  default:
    return pointwise_forward_kernel(POINTWISE_KL_DIV_LOG_TARGET, param, n, dtype, x, y, out);
  }
}

static void pointwise_backward_loop(pointwise_kind kind, double param, int64_t n, nn_dtype dtype,
                                    const void *x, const void *y, const void *g, double scale,
                                    void *gx, void *gy) {
  switch (kind) {
  case POINTWISE_L1:
    pointwise_backward_kernel(POINTWISE_L1, param, n, dtype, x, y, g, scale, gx, gy);
    break;
  case POINTWISE_SMOOTH_L1:
    pointwise_backward_kernel(POINTWISE_SMOOTH_L1, param, n, dtype, x, y, g, scale, gx, gy);
    break;
  case POINTWISE_HUBER:
    pointwise_backward_kernel(POINTWISE_HUBER, param, n, dtype, x, y, g, scale, gx, gy);
    break;
  case POINTWISE_KL_DIV:
    pointwise_backward_kernel(POINTWISE_KL_DIV, param, n, dtype, x, y, g, scale, gx, gy);
    break;
  default:
    pointwise_backward_kernel(POINTWISE_KL_DIV_LOG_TARGET, param, n, dtype, x, y, g, scale, gx, gy);
  }
}

/* grad g: the loss's shape (none) or a scalar; gradients: the input's shape */
static int pointwise_backward(nn_node *node, nn_tensor *g, nn_tensor **gi) {
  int reduction = (int)node->ints[0];
  pointwise_kind kind = (pointwise_kind)node->ints[1];
  double param = node->scalar[0];
  loss_grads b;
  if (loss_grads_begin(node, g, reduction, &b) < 0) return -1;
  double scale = b.gc ? 0 : nn_get_flat(g, 0) / node->scalar[1];
  pointwise_backward_loop(kind, param, nn_numel(b.x), b.x->dtype, nn_data(b.x), nn_data(b.y),
                          b.gc ? nn_data(b.gc) : NULL, scale, b.gx ? nn_data(b.gx) : NULL,
                          b.gy ? nn_data(b.gy) : NULL);
  return loss_grads_finish(&b, gi);
}

static nn_tensor *pointwise_loss(const char *op, const char *node_name, pointwise_kind kind,
                                 double param, nn_tensor *input, nn_tensor *target,
                                 int reduction) {
  if (check_pair(op, input, target) < 0) return NULL;
  nn_tensor *x = contiguous_values(input), *y = x ? contiguous_values(target) : NULL;
  nn_tensor *l = NULL, *out = NULL;
  if (!y) goto done;
  if (reduction == NN_REDUCTION_NONE && !(l = nn_empty_like(input))) goto done;
  double divisor = reduction_divisor(reduction, input);
  double sum = pointwise_forward_loop(kind, param, nn_numel(x), x->dtype, nn_data(x), nn_data(y),
                                      l ? nn_data(l) : NULL);
  out = l ? nn_retain(l) : nn_full(input->dtype, 0, NULL, sum / divisor);
  if (out && nn_needs_grad(input, target, NULL)) {
    nn_node *node = nn_node_attach(out, node_name, pointwise_backward, 2, input, target, NULL);
    if (!node) {
      nn_release(out);
      out = NULL;
      goto done;
    }
    node->ints[0] = reduction;
    node->ints[1] = kind;
    node->scalar[0] = param;
    node->scalar[1] = divisor;
    nn_node_save(node, 0, input);
    nn_node_save(node, 1, target);
  }
done:
  nn_release(x);
  nn_release(y);
  nn_release(l);
  return out;
}

nn_tensor *nn_l1_loss(nn_tensor *input, nn_tensor *target, nn_reduction reduction) {
  if (check_reduction("l1_loss", reduction, 0) < 0) return NULL;
  return pointwise_loss("l1_loss", "L1LossBackward0", POINTWISE_L1, 0, input, target, reduction);
}

nn_tensor *nn_smooth_l1_loss(nn_tensor *input, nn_tensor *target, nn_reduction reduction,
                             double beta) {
  if (check_reduction("smooth_l1_loss", reduction, 0) < 0) return NULL;
  if (!(beta >= 0) || isinf(beta)) {
    nn_error_set("smooth_l1_loss: beta must be a finite number >= 0, got %g", beta);
    return NULL;
  }
  return pointwise_loss("smooth_l1_loss", "SmoothL1LossBackward0", POINTWISE_SMOOTH_L1, beta,
                        input, target, reduction);
}

nn_tensor *nn_huber_loss(nn_tensor *input, nn_tensor *target, nn_reduction reduction,
                         double delta) {
  if (check_reduction("huber_loss", reduction, 0) < 0) return NULL;
  if (!(delta > 0) || isinf(delta)) {
    nn_error_set("huber_loss: delta must be a finite number > 0, got %g", delta);
    return NULL;
  }
  return pointwise_loss("huber_loss", "HuberLossBackward0", POINTWISE_HUBER, delta, input, target,
                        reduction);
}

nn_tensor *nn_kl_div_loss(nn_tensor *input, nn_tensor *target, int reduction, int log_target) {
  if (check_reduction("kl_div", reduction, 1) < 0) return NULL;
  return pointwise_loss("kl_div", "KlDivBackward0",
                        log_target ? POINTWISE_KL_DIV_LOG_TARGET : POINTWISE_KL_DIV, 0, input,
                        target, reduction);
}

/* ---- binary cross-entropy with logits ---------------------------------
   PyTorch's binary_cross_entropy_with_logits (aten/src/ATen/native/Loss.cpp).
   With lw = 1 + (p - 1) y for a pos_weight p (1 without), and
   sp(-x) = log(1 + exp(-x)) = max(-x, 0) + log1p(exp(-|x|)), which never
   overflows:
     l     = w ((1 - y) x + lw sp(-x))   (max(x, 0) - x y + log1p(exp(-|x|)) when p = 1)
     dl/dx = w ((p y + 1 - y) sigmoid(x) - p y)   (w (sigmoid(x) - y) when p = 1)
     dl/dy = w (-x + (p - 1) sp(-x))
   The forward folds the linear terms by the sign of x, (1 - y) x for
   x >= 0 and -p y x below, so that nothing cancels. dl/dy is PyTorch's
   target backward, w (log(1 - sigmoid(x)) - p log sigmoid(x)), in a form
   that stays finite for large |x|. */

/* log1p(e) for e in [0, 1], through log (much faster than glibc's log1p):
   log(u) e / (u - 1) with u = 1 + e corrects u's rounding (Goldberg, What
   every computer scientist should know about floating-point arithmetic,
   theorem 4). */
static inline double log1p_unit(double e) {
  double u = 1.0 + e;
  return u == 1.0 ? e : log(u) * (e / (u - 1.0));
}

static inline double softplus_of_negative(double x) {
  double z = fabs(x);
  return (x < 0 ? z : 0.0) + log1p_unit(exp(-z));
}

/* 1 / (1 + e) or e / (1 + e), e = exp(-|x|): never overflows; both are
   computed and one selected, so that no branch depends on the sign. */
static inline double stable_sigmoid(double x) {
  double e = exp(-fabs(x)), s = 1.0 / (1.0 + e), es = e * s;
  return x >= 0 ? s : es;
}

static inline double bce_logits_value(double x, double y, double w, double p) {
  double positive = (1 - y) * x, negative = -(p * y) * x;
  double z = fabs(x), lw = 1 + (p - 1) * y;
  return w * ((x >= 0 ? positive : negative) + lw * log1p_unit(exp(-z)));
}
static inline double bce_logits_grad_input(double x, double y, double w, double p, int has_p) {
  if (!has_p) return w * (stable_sigmoid(x) - y);
  double t = p * y;
  return w * ((t + 1 - y) * stable_sigmoid(x) - t);
}
static inline double bce_logits_grad_target(double x, double w, double p, int has_p) {
  if (!has_p) return -x * w;
  return w * (-x + (p - 1) * softplus_of_negative(x));
}

/* The same in float for float32 data, as PyTorch computes it, with no
   library call, so that the loops vectorise. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC push_options
#pragma GCC optimize("no-trapping-math")
#endif
/* log1p(e) for e in [0, 1] as 2 atanh(s), s = e / (2 + e) in [0, 1/3]:
   2 s (1 + s^2/3 + s^4/5 + ... + s^14/15), whose next term is below
   (1/9)^8 / 17 < 2e-9 of the sum; exact as e goes to 0. */
static inline float log1p_unit_f32(float e) {
  float s = e / (2.0f + e), t = s * s;
  float p = 1.0f / 15;
  p = p * t + 1.0f / 13;
  p = p * t + 1.0f / 11;
  p = p * t + 1.0f / 9;
  p = p * t + 1.0f / 7;
  p = p * t + 1.0f / 5;
  p = p * t + 1.0f / 3;
  p = p * t + 1.0f;
  return 2.0f * s * p;
}
static inline float softplus_of_negative_f32(float x) {
  float z = fabsf(x);
  return (x < 0 ? z : 0.0f) + log1p_unit_f32(nn_exp_f32(-z));
}
static inline float stable_sigmoid_f32(float x) {
  float e = nn_exp_f32(-fabsf(x)), s = 1.0f / (1.0f + e), es = e * s;
  return x >= 0 ? s : es;
}
static inline float bce_logits_value_f32(float x, float y, float w, float p) {
  float positive = (1 - y) * x, negative = -(p * y) * x, lw = 1 + (p - 1) * y;
  return w * ((x >= 0 ? positive : negative) + lw * log1p_unit_f32(nn_exp_f32(-fabsf(x))));
}
static inline float bce_logits_grad_input_f32(float x, float y, float w, float p, int has_p) {
  if (!has_p) return w * (stable_sigmoid_f32(x) - y);
  float t = p * y;
  return w * ((t + 1 - y) * stable_sigmoid_f32(x) - t);
}
static inline float bce_logits_grad_target_f32(float x, float w, float p, int has_p) {
  if (!has_p) return -x * w;
  return w * (-x + (p - 1) * softplus_of_negative_f32(x));
}

/* weight and pos_weight, laid out over the input's elements: a
   contiguous (k n) tensor holding the weights, then the pos_weights (k is
   how many of the two there are), so that backward needs one saved slot. */
static int broadcasts_to(const nn_tensor *t, const nn_tensor *like) {
  if (t->ndim > like->ndim) return 0;
  for (int i = 0; i < t->ndim; i++) {
    int64_t have = t->size[t->ndim - 1 - i], want = like->size[like->ndim - 1 - i];
    if (have != want && have != 1) return 0;
  }
  return 1;
}

static int check_elementwise_weight(const char *op, const char *what, const nn_tensor *w,
                                    const nn_tensor *input) {
  if (!w) return 0;
  if (nn_check_cpu(op, w) < 0) return -1;
  if (w->dtype != input->dtype) {
    nn_error_set("%s: %s is %s, input %s", op, what, nn_dtype_name(w->dtype),
                 nn_dtype_name(input->dtype));
    return -1;
  }
  if (!broadcasts_to(w, input)) {
    char a[96], b[96];
    nn_error_set("%s: %s of shape %s cannot be broadcast to the input's shape %s", op, what,
                 nn_shape_string(w, b, sizeof b), nn_shape_string(input, a, sizeof a));
    return -1;
  }
  return refuse_grad(op, what, w);
}

static nn_tensor *spread_weights(const nn_tensor *input, nn_tensor *weight, nn_tensor *pos_weight) {
  int64_t n = nn_numel(input), k = (weight != NULL) + (pos_weight != NULL);
  int64_t total = k * n;
  nn_tensor *coef = nn_empty(input->dtype, 1, &total);
  if (!coef) return NULL;
  nn_tensor *parts[2] = {weight, pos_weight};
  int64_t offset = 0;
  for (int i = 0; i < 2; i++) {
    if (!parts[i]) continue;
    nn_tensor *segment = nn_narrow(coef, 0, offset, n);
    nn_tensor *shaped = segment ? nn_view(segment, input->ndim, input->size) : NULL;
    int status = shaped ? nn_copy_(shaped, parts[i]) : -1;
    nn_release(shaped);
    nn_release(segment);
    if (status < 0) {
      nn_release(coef);
      return NULL;
    }
    offset += n;
  }
  return coef;
}

/* Forward over contiguous data: l_i into out (when not NULL), and the sum.
   w and p point at n values each, or are NULL. */
static double bce_logits_forward_loop(int64_t n, nn_dtype dtype, const void *x, const void *y,
                                      const void *w, const void *p, void *out) {
  double sum = 0;
  if (dtype == NN_FLOAT32) {
    /* blocks of values into a buffer (out, or one on the stack), in a loop
       that vectorises, then summed in double with four accumulators */
    enum { BLOCK = 256 };
    const float *px = x, *py = y, *pw = w, *pp = p;
    float block[BLOCK];
    for (int64_t start = 0; start < n; start += BLOCK) {
      int64_t len = n - start < BLOCK ? n - start : BLOCK;
      float *v = out ? (float *)out + start : block;
      const float *bx = px + start, *by = py + start;
      if (!pw && !pp) {
        for (int64_t i = 0; i < len; i++) v[i] = bce_logits_value_f32(bx[i], by[i], 1.0f, 1.0f);
      } else {
        for (int64_t i = 0; i < len; i++)
          v[i] = bce_logits_value_f32(bx[i], by[i], pw ? pw[start + i] : 1.0f,
                                      pp ? pp[start + i] : 1.0f);
      }
      double partial[4] = {0, 0, 0, 0};
      int64_t i = 0;
      for (; i + 4 <= len; i += 4)
        for (int j = 0; j < 4; j++) partial[j] += v[i + j];
      for (; i < len; i++) partial[0] += v[i];
      sum += (partial[0] + partial[1]) + (partial[2] + partial[3]);
    }
  } else {
    const double *px = x, *py = y, *pw = w, *pp = p;
    double *po = out;
    for (int64_t i = 0; i < n; i++) {
      double v = bce_logits_value(px[i], py[i], pw ? pw[i] : 1.0, pp ? pp[i] : 1.0);
      if (po) po[i] = v;
      sum += v;
    }
  }
  return sum;
}

static void bce_logits_backward_loop(int64_t n, nn_dtype dtype, const void *x, const void *y,
                                     const void *w, const void *p, const void *g, double scale,
                                     void *gx, void *gy) {
  int has_p = p != NULL;
  if (dtype == NN_FLOAT32) {
    const float *px = x, *py = y, *pw = w, *pp = p, *pg = g;
    float *ox = gx, *oy = gy;
    float scale_f = (float)scale;
    if (!pw && !pp && !pg && ox && !oy) { /* the common case, in a loop that vectorises */
      for (int64_t i = 0; i < n; i++) ox[i] = (stable_sigmoid_f32(px[i]) - py[i]) * scale_f;
      return;
    }
    for (int64_t i = 0; i < n; i++) {
      float s = pg ? pg[i] : scale_f, wi = pw ? pw[i] : 1.0f, pi = pp ? pp[i] : 1.0f;
      if (ox) ox[i] = bce_logits_grad_input_f32(px[i], py[i], wi, pi, has_p) * s;
      if (oy) oy[i] = bce_logits_grad_target_f32(px[i], wi, pi, has_p) * s;
    }
  } else {
    const double *px = x, *py = y, *pw = w, *pp = p, *pg = g;
    double *ox = gx, *oy = gy;
    for (int64_t i = 0; i < n; i++) {
      double s = pg ? pg[i] : scale, wi = pw ? pw[i] : 1.0, pi = pp ? pp[i] : 1.0;
      if (ox) ox[i] = bce_logits_grad_input(px[i], py[i], wi, pi, has_p) * s;
      if (oy) oy[i] = bce_logits_grad_target(px[i], wi, pi, has_p) * s;
    }
  }
}
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC pop_options
#endif

/* Where the weights of a (k n) coefficient tensor start: NULL when absent. */
static void weight_pointers(nn_tensor *coef, int has_weight, int has_pos_weight, int64_t n,
                            const void **w, const void **p) {
  const char *base = coef ? nn_data(coef) : NULL;
  size_t bytes = (size_t)n * (coef ? nn_element_size(coef->dtype) : 0);
  *w = has_weight ? base : NULL;
  *p = has_pos_weight ? base + (has_weight ? bytes : 0) : NULL;
}

/* grad g: the loss's shape (none) or a scalar; gradients: the input's shape */
static int bce_logits_backward(nn_node *node, nn_tensor *g, nn_tensor **gi) {
  int reduction = (int)node->ints[0];
  loss_grads b;
  if (loss_grads_begin(node, g, reduction, &b) < 0) return -1;
  double scale = b.gc ? 0 : nn_get_flat(g, 0) / node->scalar[1];
  int64_t n = nn_numel(b.x);
  const void *w, *p;
  weight_pointers(node->saved[2], (int)node->ints[1], (int)node->ints[2], n, &w, &p);
  bce_logits_backward_loop(n, b.x->dtype, nn_data(b.x), nn_data(b.y), w, p,
                           b.gc ? nn_data(b.gc) : NULL, scale, b.gx ? nn_data(b.gx) : NULL,
                           b.gy ? nn_data(b.gy) : NULL);
  return loss_grads_finish(&b, gi);
}

nn_tensor *nn_bce_with_logits_loss(nn_tensor *input, nn_tensor *target, nn_tensor *weight,
                                   nn_tensor *pos_weight, nn_reduction reduction) {
  const char *op = "binary_cross_entropy_with_logits";
  if (check_reduction(op, reduction, 0) < 0 || check_pair(op, input, target) < 0 ||
      check_elementwise_weight(op, "weight", weight, input) < 0 ||
      check_elementwise_weight(op, "pos_weight", pos_weight, input) < 0)
    return NULL;
  nn_tensor *x = contiguous_values(input), *y = x ? contiguous_values(target) : NULL;
  nn_tensor *coef = NULL, *l = NULL, *out = NULL;
  if (!y) goto done;
  int64_t n = nn_numel(input);
  if ((weight || pos_weight) && !(coef = spread_weights(input, weight, pos_weight))) goto done;
  if (reduction == NN_REDUCTION_NONE && !(l = nn_empty_like(input))) goto done;
  const void *w, *p;
  weight_pointers(coef, weight != NULL, pos_weight != NULL, n, &w, &p);
  double divisor = reduction_divisor(reduction, input);
  double sum = bce_logits_forward_loop(n, input->dtype, nn_data(x), nn_data(y), w, p,
                                       l ? nn_data(l) : NULL);
  out = l ? nn_retain(l) : nn_full(input->dtype, 0, NULL, sum / divisor);
  if (out && nn_needs_grad(input, target, NULL)) {
    nn_node *node = nn_node_attach(out, "BinaryCrossEntropyWithLogitsBackward0",
                                   bce_logits_backward, 2, input, target, NULL);
    if (!node) {
      nn_release(out);
      out = NULL;
      goto done;
    }
    node->ints[0] = reduction;
    node->ints[1] = weight != NULL;
    node->ints[2] = pos_weight != NULL;
    node->scalar[1] = divisor;
    nn_node_save(node, 0, input);
    nn_node_save(node, 1, target);
    if (coef) nn_node_save(node, 2, coef);
  }
done:
  nn_release(x);
  nn_release(y);
  nn_release(coef);
  nn_release(l);
  return out;
}

/* ---- cross-entropy and negative log-likelihood over C classes ---------
   PyTorch 1.13's cross_entropy and nll_loss (aten/src/ATen/native/LossNLL.cpp).
   Input (N, C, d1, ...) is seen as outer x C x inner (outer = N, inner =
   d1 d2 ...; a 1-D input (C) is 1 x C x 1); position (o, k) holds one
   distribution over the classes, element (o, c, k) at (o C + c) inner + k.
   lp = log_softmax(x) = x - lse over the classes for cross_entropy
   (lse = log sum_c exp(x_c)), lp = x for nll_loss.

   With class labels t and smoothing s (0 for nll_loss), at each position
   whose label is not ignore_index:
     l = (1 - s) (-w_t lp_t) + (s / C) sum_c (-w_c lp_c)
   an ignored position gives 0 and counts for nothing. mean = sum of l over
   sum of w_t (PyTorch's weighted mean; its smoothing term is divided by
   the same total). Backward, with scale g (per position, or the mean's
   g / sum w_t):
     dl/dlp_c = -g ((1 - s) w_t [c = t] + (s / C) w_c)
     dl/dx_c  = dl/dlp_c - softmax_c sum_c' dl/dlp_c'   (log_softmax backward)
   and 0 at every class of an ignored position.

   With class probabilities y (cross_entropy only), y' = (1 - s) y + s / C:
     l = -sum_c w_c y'_c lp_c, mean = sum of l over the number of positions
     dl/dlp_c = -g w_c y'_c, dl/dx as above, dl/dy_c = -g w_c (1 - s) lp_c */

typedef struct {
  int64_t outer, classes, inner;
} class_layout;

static class_layout layout_of(const nn_tensor *input) {
  class_layout s = {1, input->size[input->ndim == 1 ? 0 : 1], 1};
  if (input->ndim > 1) s.outer = input->size[0];
  for (int d = 2; d < input->ndim; d++) s.inner *= input->size[d];
  return s;
}

/* The shape of one loss per position: the input's without its class dim. */
static int position_shape(const nn_tensor *input, int64_t *size) {
  if (input->ndim == 1) return 0;
  size[0] = input->size[0];
  for (int d = 2; d < input->ndim; d++) size[d - 1] = input->size[d];
  return input->ndim - 1;
}

/* What backward needs beyond input and target, in one float64 tensor (a
   node has three slots): the class weights (C values, when there are
   weights), then each position's lse (cross_entropy), which backward would
   otherwise recompute. Forward reads the weights from here too. */
typedef struct {
  const double *weight; /* NULL: every class weighs 1 */
  double *lse;          /* NULL for nll_loss */
} class_aux;

static nn_tensor *class_aux_new(const nn_tensor *weight, int64_t classes, int64_t positions,
                                int with_lse) {
  int64_t total = (weight ? classes : 0) + (with_lse ? positions : 0);
  nn_tensor *aux = nn_empty(NN_FLOAT64, 1, &total);
  if (aux && weight) {
    double *p = nn_data(aux);
    for (int64_t c = 0; c < classes; c++) p[c] = nn_get_flat(weight, c);
  }
  return aux;
}

static class_aux class_aux_of(nn_tensor *aux, int has_weight, int64_t classes, int with_lse) {
  double *p = nn_data(aux);
  class_aux a = {has_weight ? p : NULL, with_lse ? p + (has_weight ? classes : 0) : NULL};
  return a;
}

static inline double class_weight(const class_aux *a, int64_t c) { return a->weight ? a->weight[c] : 1.0; }

#if defined(__GNUC__) && !defined(__clang__)
/* As around nn_exp_f32 (internal.h): branch-free selects, so that the rows vectorise. */
#pragma GCC push_options
#pragma GCC optimize("no-trapping-math")
#endif


/* log sum_c exp(x_c) over count values stride apart from x[base], shifted
   by the largest so that nothing overflows. A NaN among them comes out as
   NaN through its exp. float32 runs in float, as PyTorch's does; a row of
   consecutive values in eight lanes, which vectorise. */
static double classes_logsumexp(nn_dtype dtype, const void *x, int64_t base, int64_t stride,
                                int64_t count) {
  double sum = 0;
  if (dtype == NN_FLOAT32 && stride == 1) {
    enum { LANES = 8 };
    const float *p = (const float *)x + base;
    float lane_max[LANES], lane_sum[LANES] = {0}, max = -INFINITY;
    int64_t c = 0;
    for (int j = 0; j < LANES; j++) lane_max[j] = -INFINITY;
    for (; c + LANES <= count; c += LANES)
      for (int j = 0; j < LANES; j++) lane_max[j] = p[c + j] > lane_max[j] ? p[c + j] : lane_max[j];
    for (int j = 0; j < LANES; j++) max = lane_max[j] > max ? lane_max[j] : max;
    for (; c < count; c++) max = p[c] > max ? p[c] : max;
    for (c = 0; c + LANES <= count; c += LANES)
      for (int j = 0; j < LANES; j++) lane_sum[j] += nn_exp_f32(p[c + j] - max);
    for (; c < count; c++) sum += nn_exp_f32(p[c] - max);
    for (int j = 0; j < LANES; j++) sum += lane_sum[j];
    return max + log(sum);
  }
  if (dtype == NN_FLOAT32) {
    const float *p = (const float *)x + base;
    float max = -INFINITY;
    for (int64_t c = 0; c < count; c++) max = p[c * stride] > max ? p[c * stride] : max;
    for (int64_t c = 0; c < count; c++) sum += nn_exp_f32(p[c * stride] - max);
    return max + log(sum);
  }
  const double *p = (const double *)x + base;
  double max = -INFINITY;
  for (int64_t c = 0; c < count; c++) max = p[c * stride] > max ? p[c * stride] : max;
  for (int64_t c = 0; c < count; c++) sum += exp(p[c * stride] - max);
  return max + log(sum);
}

/* gx_c = -softmax_c total over one position, softmax_c = exp(x_c - lse):
   the log_softmax backward's second term. */
static void softmax_times(nn_dtype dtype, const void *x, void *gx, int64_t base, int64_t stride,
                          int64_t count, double lse, double total) {
  if (dtype == NN_FLOAT32) {
    const float *p = (const float *)x + base;
    float *g = (float *)gx + base, l = (float)lse, t = (float)total;
    if (stride == 1) {
      for (int64_t c = 0; c < count; c++) g[c] = -nn_exp_f32(p[c] - l) * t;
    } else {
      for (int64_t c = 0; c < count; c++) g[c * stride] = -nn_exp_f32(p[c * stride] - l) * t;
    }
  } else {
    const double *p = (const double *)x + base;
    double *g = (double *)gx + base;
    for (int64_t c = 0; c < count; c++) g[c * stride] = -exp(p[c * stride] - lse) * total;
  }
}
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC pop_options
#endif

static inline void add_at(nn_tensor *t, int64_t i, double v) {
  void *p = nn_data(t);
  nn_store(t->dtype, p, i, nn_load(t->dtype, p, i) + v);
}

/* The class of target element i (contiguous target): 0..classes-1, -1
   where the label is ignore_index, -2 with an error when it is no label. */
static int64_t class_of(const char *op, const nn_tensor *target, int64_t i, int64_t classes,
                        const nn_class_loss_options *o) {
  int64_t label;
  if (target->dtype == NN_INT64) {
    label = ((const int64_t *)nn_data(target))[i];
  } else {
    double v = nn_load(target->dtype, nn_data(target), i);
    if (!(v == floor(v)) || fabs(v) > 9.0e15) {
      nn_error_set("%s: target element %lld is %g, not a class label (a whole number in %lld..%lld)",
                   op, (long long)i + 1, v, (long long)o->first_label,
                   (long long)(o->first_label + classes - 1));
      return -2;
    }
    label = (int64_t)v;
  }
  if (label == o->ignore_index) return -1;
  if (label < o->first_label || label - o->first_label >= classes) {
    nn_error_set("%s: target element %lld is class %lld, outside the classes %lld..%lld", op,
                 (long long)i + 1, (long long)label, (long long)o->first_label,
                 (long long)(o->first_label + classes - 1));
    return -2;
  }
  return label - o->first_label;
}

/* grad g: the positions' shape (none) or a scalar; gradient: the input's shape */
static int class_labels_backward(nn_node *node, nn_tensor *g, nn_tensor **gi) {
  int reduction = (int)node->ints[0], from_logits = (int)node->ints[3];
  const char *op = from_logits ? "cross_entropy" : "nll_loss";
  nn_class_loss_options o = {NULL, (nn_reduction)reduction, node->ints[1], node->scalar[0],
                             node->ints[2]};
  double smoothing = node->scalar[0], total_weight = node->scalar[1];
  nn_tensor *x = contiguous_values(node->saved[0]), *t = x ? contiguous_values(node->saved[1]) : NULL;
  nn_tensor *gc = NULL, *gx = NULL;
  if (!t) goto fail;
  if (reduction == NN_REDUCTION_NONE && !(gc = contiguous_values(g))) goto fail;
  if (!(gx = nn_zeros(x->dtype, x->ndim, x->size))) goto fail;
  class_layout s = layout_of(x);
  class_aux a = class_aux_of(node->saved[2], (int)node->ints[4], s.classes, from_logits);
  double all_weights = 0; /* sum_c w_c, for the smoothing term */
  for (int64_t c = 0; c < s.classes; c++) all_weights += class_weight(&a, c);
  double g0 = gc ? 0 : nn_get_flat(g, 0);
  for (int64_t outer = 0; outer < s.outer; outer++) {
    for (int64_t k = 0; k < s.inner; k++) {
      int64_t pos = outer * s.inner + k, base = outer * s.classes * s.inner + k;
      int64_t label = class_of(op, t, pos, s.classes, &o);
      if (label == -2) goto fail;
      if (label == -1) continue; /* its row stays 0 */
      double scale = gc ? nn_get_flat(gc, pos)
                        : (reduction == NN_REDUCTION_MEAN ? g0 / total_weight : g0);
      double hot = -scale * (1 - smoothing) * class_weight(&a, label);
      double spread = -scale * (smoothing / (double)s.classes);
      if (from_logits)
        softmax_times(x->dtype, nn_data(x), nn_data(gx), base, s.inner, s.classes, a.lse[pos],
                      hot + spread * all_weights);
      add_at(gx, base + label * s.inner, hot);
      if (smoothing > 0)
        for (int64_t c = 0; c < s.classes; c++) add_at(gx, base + c * s.inner, spread * class_weight(&a, c));
    }
  }
  gi[0] = gx;
  nn_release(x);
  nn_release(t);
  nn_release(gc);
  return 0;
fail:
  nn_release(x);
  nn_release(t);
  nn_release(gc);
  nn_release(gx);
  return -1;
}

static nn_tensor *class_labels_loss(const char *op, int from_logits, nn_tensor *input,
                                    nn_tensor *target, const nn_class_loss_options *o) {
  if (target->dtype == NN_BOOL) {
    nn_error_set("%s: target must hold class labels (int64, or whole numbers in a float "
                 "tensor), got bool", op);
    return NULL;
  }
  if (target->requires_grad && nn_grad_enabled()) {
    nn_error_set("%s: class labels have no derivative; detach() the target", op);
    return NULL;
  }
  class_layout s = layout_of(input);
  double smoothing = o->label_smoothing;
  nn_tensor *x = contiguous_values(input), *t = x ? contiguous_values(target) : NULL;
  nn_tensor *aux = NULL, *l = NULL, *out = NULL;
  if (!t || !(aux = class_aux_new(o->weight, s.classes, s.outer * s.inner, from_logits))) goto done;
  if (o->reduction == NN_REDUCTION_NONE &&
      !(l = nn_empty_like_shape(input, input->dtype, target->ndim, target->size)))
    goto done;
  class_aux a = class_aux_of(aux, o->weight != NULL, s.classes, from_logits);
  double nll_sum = 0, smooth_sum = 0, total_weight = 0;
  nn_dtype dtype = input->dtype;
  const void *px = nn_data(x);
  for (int64_t outer = 0; outer < s.outer; outer++) {
    for (int64_t k = 0; k < s.inner; k++) {
      int64_t pos = outer * s.inner + k, base = outer * s.classes * s.inner + k;
      int64_t label = class_of(op, t, pos, s.classes, o);
      if (label == -2) goto fail;
      if (label == -1) {
        if (l) nn_store(dtype, nn_data(l), pos, 0);
        if (a.lse) a.lse[pos] = 0;
        continue;
      }
      double lse = from_logits ? classes_logsumexp(dtype, px, base, s.inner, s.classes) : 0;
      if (a.lse) a.lse[pos] = lse;
      double wt = class_weight(&a, label);
      double nll = -wt * (nn_load(dtype, px, base + label * s.inner) - lse), smooth = 0;
      if (smoothing > 0)
        for (int64_t c = 0; c < s.classes; c++)
          smooth -= class_weight(&a, c) * (nn_load(dtype, px, base + c * s.inner) - lse);
      if (l) {
        double v = smoothing > 0 ? (1 - smoothing) * nll + smoothing / (double)s.classes * smooth : nll;
        nn_store(dtype, nn_data(l), pos, v);
      }
      nll_sum += nll;
      smooth_sum += smooth;
      total_weight += wt;
    }
  }
  if (l) {
    out = nn_retain(l);
  } else {
    double divisor = o->reduction == NN_REDUCTION_MEAN ? total_weight : 1.0;
    double v = nll_sum / divisor;
    if (smoothing > 0)
      v = (1 - smoothing) * v + smoothing / (double)s.classes * (smooth_sum / divisor);
    out = nn_full(dtype, 0, NULL, v);
  }
  if (out && nn_needs_grad(input, NULL, NULL)) {
    nn_node *node = nn_node_attach(out, from_logits ? "CrossEntropyLossBackward0" : "NllLossBackward0",
                                   class_labels_backward, 1, input, NULL, NULL);
    if (!node) goto fail;
    node->ints[0] = o->reduction;
    node->ints[1] = o->ignore_index;
    node->ints[2] = o->first_label;
    node->ints[3] = from_logits;
    node->ints[4] = o->weight != NULL;
    node->scalar[0] = smoothing;
    node->scalar[1] = total_weight;
    nn_node_save(node, 0, input);
    nn_node_save(node, 1, target);
    nn_node_save(node, 2, aux);
  }
  goto done;
fail:
  nn_release(out);
  out = NULL;
done:
  nn_release(x);
  nn_release(t);
  nn_release(aux);
  nn_release(l);
  return out;
}

/* grad g: the positions' shape (none) or a scalar; gradients: the input's shape */
static int class_probabilities_backward(nn_node *node, nn_tensor *g, nn_tensor **gi) {
  int reduction = (int)node->ints[0];
  double smoothing = node->scalar[0], divisor = node->scalar[1];
  loss_grads b;
  if (loss_grads_begin(node, g, reduction, &b) < 0) return -1;
  nn_tensor *x = b.x, *y = b.y, *gc = b.gc, *gx = b.gx, *gy = b.gy;
  class_layout s = layout_of(x);
  class_aux a = class_aux_of(node->saved[2], (int)node->ints[4], s.classes, 1);
  double g0 = gc ? 0 : nn_get_flat(g, 0) / divisor, uniform = smoothing / (double)s.classes;
  nn_dtype dtype = x->dtype;
  const void *px = nn_data(x), *py = nn_data(y);
  for (int64_t outer = 0; outer < s.outer; outer++) {
    for (int64_t k = 0; k < s.inner; k++) {
      int64_t pos = outer * s.inner + k, base = outer * s.classes * s.inner + k;
      double scale = gc ? nn_get_flat(gc, pos) : g0, lse = a.lse[pos];
      double total = 0; /* sum_c dl/dlp_c */
      for (int64_t c = 0; c < s.classes; c++) {
        double yc = nn_load(dtype, py, base + c * s.inner);
        if (smoothing > 0) yc = yc * (1 - smoothing) + uniform;
        total -= scale * class_weight(&a, c) * yc;
      }
      if (gx) softmax_times(dtype, px, nn_data(gx), base, s.inner, s.classes, lse, total);
      for (int64_t c = 0; c < s.classes; c++) {
        int64_t at = base + c * s.inner;
        double yc = nn_load(dtype, py, at), wc = class_weight(&a, c);
        if (smoothing > 0) yc = yc * (1 - smoothing) + uniform;
        if (gx) add_at(gx, at, -scale * wc * yc);
        if (gy) nn_store(dtype, nn_data(gy), at, -scale * wc * (1 - smoothing) * (nn_load(dtype, px, at) - lse));
      }
    }
  }
  return loss_grads_finish(&b, gi);
}

static nn_tensor *class_probabilities_loss(const char *op, nn_tensor *input, nn_tensor *target,
                                           const nn_class_loss_options *o) {
  if (target->dtype != input->dtype) {
    nn_error_set("%s: a target of the input's shape holds class probabilities and must be %s "
                 "like the input, got %s", op, nn_dtype_name(input->dtype),
                 nn_dtype_name(target->dtype));
    return NULL;
  }
  if (o->ignore_index >= o->first_label) {
    nn_error_set("%s: ignore_index (%lld) applies to class labels, not to class probabilities",
                 op, (long long)o->ignore_index);
    return NULL;
  }
  class_layout s = layout_of(input);
  double smoothing = o->label_smoothing, uniform = smoothing / (double)s.classes;
  int64_t size[NN_MAX_DIMS];
  int ndim = position_shape(input, size);
  nn_tensor *x = contiguous_values(input), *y = x ? contiguous_values(target) : NULL;
  nn_tensor *aux = NULL, *l = NULL, *out = NULL;
  if (!y || !(aux = class_aux_new(o->weight, s.classes, s.outer * s.inner, 1))) goto done;
  if (o->reduction == NN_REDUCTION_NONE && !(l = nn_empty_like_shape(input, input->dtype, ndim, size)))
    goto done;
  class_aux a = class_aux_of(aux, o->weight != NULL, s.classes, 1);
  double sum = 0;
  nn_dtype dtype = input->dtype;
  const void *px = nn_data(x), *py = nn_data(y);
  for (int64_t outer = 0; outer < s.outer; outer++) {
    for (int64_t k = 0; k < s.inner; k++) {
      int64_t pos = outer * s.inner + k, base = outer * s.classes * s.inner + k;
      double lse = classes_logsumexp(dtype, px, base, s.inner, s.classes), v = 0;
      a.lse[pos] = lse;
      for (int64_t c = 0; c < s.classes; c++) {
        int64_t at = base + c * s.inner;
        double yc = nn_load(dtype, py, at);
        if (smoothing > 0) yc = yc * (1 - smoothing) + uniform;
        v -= class_weight(&a, c) * yc * (nn_load(dtype, px, at) - lse);
      }
      if (l) nn_store(dtype, nn_data(l), pos, v);
      sum += v;
    }
  }
  /* PyTorch's mean divides by the number of positions, weights or not */
  double divisor = o->reduction == NN_REDUCTION_MEAN ? (double)(s.outer * s.inner) : 1.0;
  out = l ? nn_retain(l) : nn_full(dtype, 0, NULL, sum / divisor);
  if (out && nn_needs_grad(input, target, NULL)) {
    nn_node *node = nn_node_attach(out, "CrossEntropyLossBackward0", class_probabilities_backward,
                                   2, input, target, NULL);
    if (!node) {
      nn_release(out);
      out = NULL;
      goto done;
    }
    node->ints[0] = o->reduction;
    node->ints[4] = o->weight != NULL;
    node->scalar[0] = smoothing;
    node->scalar[1] = divisor;
    nn_node_save(node, 0, input);
    nn_node_save(node, 1, target);
    nn_node_save(node, 2, aux);
  }
done:
  nn_release(x);
  nn_release(y);
  nn_release(aux);
  nn_release(l);
  return out;
}

/* The checks both losses share, then labels or probabilities by the
   target's shape, as PyTorch decides. */
static nn_tensor *class_loss(const char *op, int from_logits, nn_tensor *input, nn_tensor *target,
                             const nn_class_loss_options *options) {
  static const nn_class_loss_options defaults = {NULL, NN_REDUCTION_MEAN, -100, 0, 0};
  const nn_class_loss_options *o = options ? options : &defaults;
  if (check_reduction(op, o->reduction, 0) < 0 || nn_check_cpu(op, input) < 0 ||
      nn_check_cpu(op, target) < 0)
    return NULL;
  if (!nn_dtype_is_floating(input->dtype)) {
    nn_error_set("%s: input must be float32 or float64, got %s", op, nn_dtype_name(input->dtype));
    return NULL;
  }
  if (input->ndim < 1) {
    nn_error_set("%s: input must have a class dimension: (C), (N, C) or (N, C, d1, ...), got a "
                 "scalar", op);
    return NULL;
  }
  if (!(o->label_smoothing >= 0 && o->label_smoothing <= 1)) {
    nn_error_set("%s: label_smoothing must be between 0 and 1, got %g", op, o->label_smoothing);
    return NULL;
  }
  if (!from_logits && o->label_smoothing != 0) {
    nn_error_set("%s: label_smoothing is an option of cross_entropy only", op);
    return NULL;
  }
  if (o->first_label < 0) {
    nn_error_set("%s: first_label must be >= 0, got %lld", op, (long long)o->first_label);
    return NULL;
  }
  class_layout s = layout_of(input);
  if (o->weight) {
    const nn_tensor *w = o->weight;
    if (nn_check_cpu(op, w) < 0) return NULL;
    if (w->dtype != input->dtype) {
      nn_error_set("%s: weight is %s, input %s", op, nn_dtype_name(w->dtype),
                   nn_dtype_name(input->dtype));
      return NULL;
    }
    if (w->ndim != 1 || w->size[0] != s.classes) {
      char b[96];
      nn_error_set("%s: weight must hold one value per class, %lld, got shape %s", op,
                   (long long)s.classes, nn_shape_string(w, b, sizeof b));
      return NULL;
    }
    if (refuse_grad(op, "weight", w) < 0) return NULL;
  }
  if (from_logits && nn_same_shape(input, target)) return class_probabilities_loss(op, input, target, o);
  int64_t size[NN_MAX_DIMS];
  int ndim = position_shape(input, size);
  int fits = target->ndim == ndim;
  for (int d = 0; fits && d < ndim; d++) fits = target->size[d] == size[d];
  if (!fits) {
    char a[96], b[96], c[96];
    nn_shape_string(input, a, sizeof a);
    nn_shape_string(target, b, sizeof b);
    sizes_string(ndim, size, c, sizeof c);
    if (from_logits)
      nn_error_set("%s: target shape %s does not fit input shape %s: class labels need shape %s, "
                   "class probabilities %s", op, b, a, c, a);
    else
      nn_error_set("%s: target shape %s does not fit input shape %s: class labels need shape %s",
                   op, b, a, c);
    return NULL;
  }
  return class_labels_loss(op, from_logits, input, target, o);
}

nn_tensor *nn_cross_entropy_loss(nn_tensor *input, nn_tensor *target,
                                 const nn_class_loss_options *options) {
  return class_loss("cross_entropy", 1, input, target, options);
}

nn_tensor *nn_nll_loss(nn_tensor *input, nn_tensor *target, const nn_class_loss_options *options) {
  return class_loss("nll_loss", 0, input, target, options);
}

/* math/loss.h: the losses' formulas, each beside its derivatives, in the
 * orders PyTorch 1.13 computes them (aten/src/ATen/native/Loss.cpp,
 * LossNLL.cpp, PointwiseOpsKernel.cpp): MSE and BCE, the pointwise losses
 * (L1, smooth L1, Huber, KL divergence), BCE with logits (in double and,
 * vectorisable, in float), and the pieces of cross-entropy over classes. */
#ifndef NN_MATH_LOSS_H
#define NN_MATH_LOSS_H

#include "backend.h"
#include "math/dtype.h"
#include "math/exp.h"

/* ---- MSE: l = (x - y)^2; dl/dx = 2 (x - y), dl/dy = -dl/dx ------------ */
NN_HD static inline double nn_mse_value(double x, double y) { return (x - y) * (x - y); }
NN_HD static inline float nn_mse_value_f32(float x, float y) {
  float d = x - y;
  return d * d;
}

/* ---- BCE: l = -w (y log x + (1 - y) log(1 - x)), logs clamped at -100
   as PyTorch does, so that x = 0 or 1 gives a finite loss; x must be in
   [0, 1] (nn_bce_input_ok). dl/dx g = g (x - y) / max((1 - x) x, 1e-12). -- */
NN_HD static inline int nn_bce_input_ok(double x) { return x >= 0 && x <= 1; }
NN_HD static inline double nn_bce_value(double x, double y) {
  double lx = x > 0 ? log(x) : -100, l1x = x < 1 ? log1p(-x) : -100;
  if (lx < -100) lx = -100;
  if (l1x < -100) l1x = -100;
  return (y - 1) * l1x - y * lx;
}
/* PyTorch's float kernel, for float32 data */
NN_HD static inline float nn_bce_value_f32(float x, float y) {
  float lx = logf(x), l1x = log1pf(-x);
  return (y - 1) * (l1x > -100 ? l1x : -100) - y * (lx > -100 ? lx : -100);
}
NN_HD static inline double nn_bce_grad(double scale, double x, double y) {
  double d = (1 - x) * x;
  return scale * (x - y) / (d > 1e-12 ? d : 1e-12);
}
NN_HD static inline float nn_bce_grad_f32(float scale, float x, float y) {
  float d = (1.0f - x) * x;
  return scale * (x - y) / (d > 1e-12f ? d : 1e-12f);
}

/* ---- pointwise losses: l_i = f(x_i, y_i) -------------------------------- */
/* L1: l = |d|, d = x - y; dl/dx = sign(d) (0 at d = 0, as PyTorch's
   abs backward), dl/dy = -dl/dx. */
NN_HD static inline double nn_l1_value(double x, double y) { return fabs(x - y); }
NN_HD static inline double nn_l1_grad(double x, double y) {
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
NN_HD static inline double nn_smooth_l1_value(double x, double y, double beta) {
  double d = x - y, z = fabs(d), quadratic = 0.5 * d * d / beta, linear = z - 0.5 * beta;
  return z < beta ? quadratic : linear;
}
NN_HD static inline double nn_smooth_l1_grad(double x, double y, double beta) {
  double d = x - y, g = d / beta;
  g = d >= beta ? 1.0 : g;
  return d <= -beta ? -1.0 : g;
}

/* Huber (Huber, 1964; PyTorch's huber_loss): l = 0.5 d^2 where
   |d| < delta, else delta (|d| - 0.5 delta) (smooth L1 times delta);
   dl/dx = -delta for d <= -delta, delta for d >= delta, else d.
   m = min(|d|, delta) gives both pieces in one expression, m (|d| - m / 2),
   exactly: |d| - |d| / 2 is exact in floating point. */
NN_HD static inline double nn_huber_value(double x, double y, double delta) {
  double d = x - y, z = fabs(d), m = z < delta ? z : delta;
  return m * (z - 0.5 * m);
}
NN_HD static inline double nn_huber_grad(double x, double y, double delta) {
  double d = x - y, g = d >= delta ? delta : d;
  return d <= -delta ? -delta : g;
}

/* KL divergence with x = log q and y = p: l = xlogy(y, y) - y x, where
   xlogy(0, 0) = 0 (PyTorch's kl_div, aten/src/ATen/native/Loss.cpp).
   dl/dx = -y; dl/dy as autograd derives it through xlogy: the term
   xlogy(y != 0, y) + y / y - x, which is log y + 1 - x for y > 0 and NaN
   at y = 0, as in PyTorch (where the true derivative is -inf). */
NN_HD static inline double nn_kl_div_value(double x, double y) {
  double ylogy = isnan(y) ? y : (y == 0 ? 0.0 : y * log(y));
  return ylogy - y * x;
}
NN_HD static inline double nn_kl_div_grad_input(double x, double y) {
  (void)x;
  return -y;
}
NN_HD static inline double nn_kl_div_grad_target(double x, double y) {
  return (y != 0 ? log(y) : 0.0) + y / y - x;
}

/* KL divergence with log_target, y = log p: l = exp(y) (y - x);
   dl/dx = -exp(y), dl/dy = exp(y) (y - x + 1). */
NN_HD static inline double nn_kl_div_log_value(double x, double y) { return exp(y) * (y - x); }
NN_HD static inline double nn_kl_div_log_grad_input(double x, double y) {
  (void)x;
  return -exp(y);
}
NN_HD static inline double nn_kl_div_log_grad_target(double x, double y) { return exp(y) * (y - x + 1); }

NN_HD static inline double nn_pointwise_value(nn_loss_kind kind, double param, double x, double y) {
  switch (kind) {
  case NN_LOSS_L1: return nn_l1_value(x, y);
  case NN_LOSS_SMOOTH_L1: return nn_smooth_l1_value(x, y, param);
  case NN_LOSS_HUBER: return nn_huber_value(x, y, param);
  case NN_LOSS_KL_DIV: return nn_kl_div_value(x, y);
  default: return nn_kl_div_log_value(x, y);
  }
}
NN_HD static inline double nn_pointwise_grad_input(nn_loss_kind kind, double param, double x, double y) {
  switch (kind) {
  case NN_LOSS_L1: return nn_l1_grad(x, y);
  case NN_LOSS_SMOOTH_L1: return nn_smooth_l1_grad(x, y, param);
  case NN_LOSS_HUBER: return nn_huber_grad(x, y, param);
  case NN_LOSS_KL_DIV: return nn_kl_div_grad_input(x, y);
  default: return nn_kl_div_log_grad_input(x, y);
  }
}
NN_HD static inline double nn_pointwise_grad_target(nn_loss_kind kind, double param, double x, double y) {
  switch (kind) {
  case NN_LOSS_KL_DIV: return nn_kl_div_grad_target(x, y);
  case NN_LOSS_KL_DIV_LOG_TARGET: return nn_kl_div_log_grad_target(x, y);
  default: return -nn_pointwise_grad_input(kind, param, x, y); /* functions of x - y */
  }
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
NN_HD static inline double nn_log1p_unit(double e) {
  double u = 1.0 + e;
  return u == 1.0 ? e : log(u) * (e / (u - 1.0));
}

NN_HD static inline double nn_softplus_of_negative(double x) {
  double z = fabs(x);
  return (x < 0 ? z : 0.0) + nn_log1p_unit(exp(-z));
}

/* 1 / (1 + e) or e / (1 + e), e = exp(-|x|): never overflows; both are
   computed and one selected, so that no branch depends on the sign. */
NN_HD static inline double nn_sigmoid_select(double x) {
  double e = exp(-fabs(x)), s = 1.0 / (1.0 + e), es = e * s;
  return x >= 0 ? s : es;
}

NN_HD static inline double nn_bce_logits_value(double x, double y, double w, double p) {
  double positive = (1 - y) * x, negative = -(p * y) * x;
  double z = fabs(x), lw = 1 + (p - 1) * y;
  return w * ((x >= 0 ? positive : negative) + lw * nn_log1p_unit(exp(-z)));
}
NN_HD static inline double nn_bce_logits_grad_input(double x, double y, double w, double p, int has_p) {
  if (!has_p) return w * (nn_sigmoid_select(x) - y);
  double t = p * y;
  return w * ((t + 1 - y) * nn_sigmoid_select(x) - t);
}
NN_HD static inline double nn_bce_logits_grad_target(double x, double w, double p, int has_p) {
  if (!has_p) return -x * w;
  return w * (-x + (p - 1) * nn_softplus_of_negative(x));
}

/* The same in float for float32 data, as PyTorch computes it, with no
   library call, so that the loops vectorise. */
/* log1p(e) for e in [0, 1] as 2 atanh(s), s = e / (2 + e) in [0, 1/3]:
   2 s (1 + s^2/3 + s^4/5 + ... + s^14/15), whose next term is below
   (1/9)^8 / 17 < 2e-9 of the sum; exact as e goes to 0. */
NN_HD static inline float nn_log1p_unit_f32(float e) {
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
NN_HD static inline float nn_softplus_of_negative_f32(float x) {
  float z = fabsf(x);
  return (x < 0 ? z : 0.0f) + nn_log1p_unit_f32(nn_exp_f32(-z));
}
NN_HD static inline float nn_stable_sigmoid_f32(float x) {
  float e = nn_exp_f32(-fabsf(x)), s = 1.0f / (1.0f + e), es = e * s;
  return x >= 0 ? s : es;
}
NN_HD static inline float nn_bce_logits_value_f32(float x, float y, float w, float p) {
  float positive = (1 - y) * x, negative = -(p * y) * x, lw = 1 + (p - 1) * y;
  return w * ((x >= 0 ? positive : negative) + lw * nn_log1p_unit_f32(nn_exp_f32(-fabsf(x))));
}
NN_HD static inline float nn_bce_logits_grad_input_f32(float x, float y, float w, float p, int has_p) {
  if (!has_p) return w * (nn_stable_sigmoid_f32(x) - y);
  float t = p * y;
  return w * ((t + 1 - y) * nn_stable_sigmoid_f32(x) - t);
}
NN_HD static inline float nn_bce_logits_grad_target_f32(float x, float w, float p, int has_p) {
  if (!has_p) return -x * w;
  return w * (-x + (p - 1) * nn_softplus_of_negative_f32(x));
}

/* ---- cross-entropy over classes (see loss.c for the whole story) --------
   A label is target element i: an int64 as it is, another dtype's value
   when it is a whole number (|v| <= 9e15, past which a double skips
   integers); *whole says which. Its class is label - first_label when that
   is one of the classes, -1 for ignore_index, -2 for no class at all. */
NN_HD static inline int64_t nn_label_value(nn_dtype dtype, const void *target, int64_t i, int *whole) {
  if (dtype == NN_INT64) {
    *whole = 1;
    return ((const int64_t *)target)[i];
  }
  double v = nn_load(dtype, target, i);
  *whole = v == floor(v) && fabs(v) <= 9.0e15;
  return *whole ? (int64_t)v : 0;
}
NN_HD static inline int64_t nn_label_class(int64_t label, int whole, int64_t first_label,
                                           int64_t classes, int64_t ignore_index) {
  if (!whole) return -2;
  if (label == ignore_index) return -1;
  return label < first_label || label - first_label >= classes ? -2 : label - first_label;
}

/* log sum_c exp(x_c) over the count values stride apart from x[base],
   shifted by the largest so that nothing overflows; a NaN among them comes
   out as NaN through its exp. float32 runs in float (nn_exp_f32), as
   PyTorch's does, the sum in double. */
NN_HD static inline double nn_classes_logsumexp(nn_dtype dtype, const void *x, int64_t base, int64_t stride,
                                                int64_t count) {
  double sum = 0;
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
NN_HD static inline void nn_softmax_times(nn_dtype dtype, const void *x, void *gx, int64_t base, int64_t stride,
                                          int64_t count, double lse, double total) {
  if (dtype == NN_FLOAT32) {
    const float *p = (const float *)x + base;
    float *g = (float *)gx + base, l = (float)lse, t = (float)total;
    for (int64_t c = 0; c < count; c++) g[c * stride] = -nn_exp_f32(p[c * stride] - l) * t;
  } else {
    const double *p = (const double *)x + base;
    double *g = (double *)gx + base;
    for (int64_t c = 0; c < count; c++) g[c * stride] = -exp(p[c * stride] - lse) * total;
  }
}

/* With smoothing s over C classes: a label's loss mixes its nll with the
   uniform term, a probability target is smoothed toward uniform. */
NN_HD static inline double nn_smoothed_loss(double nll, double smooth, double s, int64_t classes) {
  return s > 0 ? (1 - s) * nll + s / (double)classes * smooth : nll;
}
NN_HD static inline double nn_smoothed_target(double y, double s, int64_t classes) {
  return s > 0 ? y * (1 - s) + s / (double)classes : y;
}

/* ---- CTC (Graves et al., 2006): log-space sums over alignments ---------
   log(e^a + e^b): one exp and one log1p, none where a term is -inf (a
   state no alignment reaches yet: most of them early and late in time). */
NN_HD static inline double nn_ctc_log_add(double a, double b) {
  double hi = a > b ? a : b, lo = a > b ? b : a;
  if (lo == -INFINITY) return hi;
  return hi + log1p(exp(lo - hi));
}
/* The extended label at state s of a target: blanks between and around the
   labels (even s), the labels at odd s. */
NN_HD static inline int64_t nn_ctc_state_label(const int64_t *target, int64_t s, int64_t blank) {
  return s % 2 ? target[s / 2] : blank;
}
/* A path may skip state s - 2 (a blank) into s only between two different
   labels. */
NN_HD static inline int nn_ctc_may_skip(const int64_t *target, int64_t s) {
  return s % 2 && s >= 3 && target[s / 2] != target[s / 2 - 1];
}

#endif

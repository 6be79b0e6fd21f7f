/* math/activation.h: the activations' values and derivatives, each
 * formula beside its derivative, all in double (float32 data computes in
 * double and rounds once).
 *
 * The formulas, and the value a derivative takes at a kink, are PyTorch
 * 1.13's (aten/src/ATen/native/cpu/Activation.cpp, GeluKernel.cpp),
 * rewritten where PyTorch's form overflows or cancels (softplus, mish,
 * GELU's left tail) into one that is equal in exact arithmetic and finite
 * everywhere. Softmax's line formulas and PReLU's are at the end. */
#ifndef NN_MATH_ACTIVATION_H
#define NN_MATH_ACTIVATION_H

#include "math/common.h"

/* ---- building blocks ------------------------------------------------- */
/* sigmoid from exp of a non-positive number only: never overflows. */
NN_HD static inline double nn_stable_sigmoid(double x) {
  double e = exp(-fabs(x));
  return x >= 0 ? 1 / (1 + e) : e / (1 + e);
}

/* log(1 + e^x) = max(x, 0) + log1p(e^-|x|): finite wherever x is. */
NN_HD static inline double nn_stable_softplus(double x) {
  return (x > 0 ? x : 0) + log1p(exp(-fabs(x)));
}

/* ---- the formulas: value and derivative, op by op -------------------- */
/* leaky_relu: x > 0 ? x : slope x. At 0 the derivative is the slope. */
NN_HD static inline double nn_leaky_relu_value(double x, double slope) { return x > 0 ? x : x * slope; }
NN_HD static inline double nn_leaky_relu_derivative(double x, double slope) { return x > 0 ? 1 : slope; }

/* elu: scale (x > 0 ? x : alpha (e^x - 1)). At 0 the derivative is
   scale alpha, from the x <= 0 side, as PyTorch's elu_backward. */
NN_HD static inline double nn_elu_value(double x, double alpha, double scale) {
  return x > 0 ? scale * x : scale * alpha * expm1(x);
}
NN_HD static inline double nn_elu_derivative(double x, double alpha, double scale) {
  return x > 0 ? scale : scale * alpha * exp(x);
}

/* selu: elu with the constants of Klambauer et al., "Self-Normalizing
   Neural Networks" (2017), to PyTorch's digits. */
#define NN_SELU_ALPHA 1.6732632423543772848170429916717
#define NN_SELU_SCALE 1.0507009873554804934193349852946

/* silu (swish): x sigmoid(x); derivative s (1 + x (1 - s)). */
NN_HD static inline double nn_silu_value(double x) { return x * nn_stable_sigmoid(x); }
NN_HD static inline double nn_silu_derivative(double x) {
  double s = nn_stable_sigmoid(x);
  return s * (1 + x * (1 - s));
}

/* gelu: x Phi(x), Phi the standard normal CDF; derivative Phi(x) + x phi(x).
   PyTorch writes Phi as (1 + erf(x / sqrt 2)) / 2, which cancels to
   nothing in the left tail; erfc(-x / sqrt 2) / 2 is the same number
   without the cancellation. */
#define NN_INV_SQRT2 0.70710678118654752440
#define NN_INV_SQRT_2PI 0.39894228040143267794
NN_HD static inline double nn_gelu_value(double x) { return x * 0.5 * erfc(-x * NN_INV_SQRT2); }
NN_HD static inline double nn_gelu_derivative(double x) {
  return 0.5 * erfc(-x * NN_INV_SQRT2) + x * NN_INV_SQRT_2PI * exp(-0.5 * x * x);
}

/* gelu, tanh approximation (Hendrycks and Gimpel, 2016):
   x/2 (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))). */
#define NN_GELU_BETA 0.79788456080286535588 /* sqrt(2 / pi) */
#define NN_GELU_KAPPA 0.044715
NN_HD static inline double nn_gelu_tanh_value(double x) {
  double inner = NN_GELU_BETA * (x + NN_GELU_KAPPA * x * x * x);
  return 0.5 * x * (1 + tanh(inner));
}
NN_HD static inline double nn_gelu_tanh_derivative(double x) {
  double x2 = x * x, t = tanh(NN_GELU_BETA * (x + NN_GELU_KAPPA * x2 * x));
  return 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * NN_GELU_BETA * (1 + 3 * NN_GELU_KAPPA * x2);
}

/* softplus: log(1 + e^(beta x)) / beta, and x itself where beta x exceeds
   the threshold; derivative sigmoid(beta x), or 1 past the threshold. */
NN_HD static inline double nn_softplus_value(double x, double beta, double threshold) {
  double bx = beta * x;
  return bx > threshold ? x : nn_stable_softplus(bx) / beta;
}
NN_HD static inline double nn_softplus_derivative(double x, double beta, double threshold) {
  double bx = beta * x;
  return bx > threshold ? 1 : nn_stable_sigmoid(bx);
}

/* mish (Misra, 2019): x tanh(softplus(x)); derivative
   t + x sigmoid(x) (1 - t^2), t = tanh(softplus(x)). With n = e^x,
   tanh(log(1 + n)) = p / (p + 2) where p = n (n + 2): one exp in place of
   PyTorch's exp, log1p and tanh, and 1 - t = 2 / (p + 2) without
   cancellation. Past x = 20, t is 1 to double precision (1 - t < 1e-17),
   and e^x may overflow: the limits are used. */
NN_HD static inline double nn_mish_value(double x) {
  if (x > 20) return x;
  double n = exp(x), p = n * (n + 2);
  return x * p / (p + 2);
}
NN_HD static inline double nn_mish_derivative(double x) {
  if (x > 20) return 1;
  double n = exp(x), p = n * (n + 2);
  double t = p / (p + 2), one_minus_t = 2 / (p + 2), sigmoid = n / (1 + n);
  return t + x * sigmoid * one_minus_t * (1 + t);
}

/* hardtanh: x clamped to [lo, hi]; the derivative is 1 strictly inside and
   0 at the bounds (PyTorch's hardtanh_backward; clamp passes them). */
NN_HD static inline double nn_hardtanh_value(double x, double lo, double hi) {
  return x < lo ? lo : (x > hi ? hi : x);
}
NN_HD static inline double nn_hardtanh_derivative(double x, double lo, double hi) {
  return x > lo && x < hi ? 1 : 0;
}

/* hardsigmoid: min(max(x + 3, 0), 6) / 6; derivative 1/6 strictly inside
   (-3, 3). PyTorch 1.13's backward multiplies by float32's 1/6 in every
   dtype (0.1666666716337204 in float64); this is the exact 1/6. */
NN_HD static inline double nn_hardsigmoid_value(double x) {
  double v = x + 3;
  v = v < 0 ? 0 : v;
  return (v > 6 ? 6 : v) / 6;
}
NN_HD static inline double nn_hardsigmoid_derivative(double x) { return x > -3 && x < 3 ? 1.0 / 6 : 0; }

/* log_sigmoid: min(x, 0) - log1p(e^-|x|); derivative sigmoid(-x). */
NN_HD static inline double nn_log_sigmoid_value(double x) {
  return (x < 0 ? x : 0) - log1p(exp(-fabs(x)));
}
NN_HD static inline double nn_log_sigmoid_derivative(double x) {
  double e = exp(-fabs(x));
  return x < 0 ? 1 / (1 + e) : e / (1 + e);
}

/* softsign: x / (1 + |x|); derivative 1 / (1 + |x|)^2. */
NN_HD static inline double nn_softsign_value(double x) { return x / (1 + fabs(x)); }
NN_HD static inline double nn_softsign_derivative(double x) {
  double d = 1 + fabs(x);
  return 1 / (d * d);
}

/* hardswish: x hardsigmoid(x). Its derivative is PyTorch's
   hardswish_backward: 0 below -3, x/3 + 1/2 on [-3, 3], 1 above. */
NN_HD static inline double nn_hardswish_value(double x) { return x * nn_hardsigmoid_value(x); }
NN_HD static inline double nn_hardswish_derivative(double x) {
  return x < -3 ? 0 : (x <= 3 ? x / 3 + 0.5 : 1);
}

/* celu: elu with the exponent's input scaled by 1/alpha:
   x > 0 ? x : alpha (e^(x/alpha) - 1); derivative e^(x/alpha) for x <= 0. */
NN_HD static inline double nn_celu_value(double x, double alpha) {
  return x > 0 ? x : alpha * expm1(x / alpha);
}
NN_HD static inline double nn_celu_derivative(double x, double alpha) {
  return x > 0 ? 1 : exp(x / alpha);
}

/* softshrink and hardshrink: 0 on [-lambd, lambd] (derivative 0 there,
   bounds included, as PyTorch's shrink backward); outside, x shifted
   towards 0 by lambd (soft) or x itself (hard), derivative 1. */
NN_HD static inline double nn_softshrink_value(double x, double lambd) {
  return x > lambd ? x - lambd : (x < -lambd ? x + lambd : 0);
}
NN_HD static inline double nn_shrink_derivative(double x, double lambd) {
  return x >= -lambd && x <= lambd ? 0 : 1;
}
NN_HD static inline double nn_hardshrink_value(double x, double lambd) {
  return x >= -lambd && x <= lambd ? 0 : x;
}

/* tanhshrink: x - tanh(x); derivative tanh(x)^2. */
NN_HD static inline double nn_tanhshrink_value(double x) { return x - tanh(x); }
NN_HD static inline double nn_tanhshrink_derivative(double x) {
  double t = tanh(x);
  return t * t;
}

/* threshold: x > threshold ? x : value; derivative 1 above the threshold,
   0 at and below it (PyTorch's threshold_backward). */
NN_HD static inline double nn_threshold_value(double x, double threshold, double value) {
  return x > threshold ? x : value;
}
NN_HD static inline double nn_threshold_derivative(double x, double threshold) { return x > threshold ? 1 : 0; }

NN_HD static inline double nn_activation_value(nn_activation_op op, double x, double a, double b) {
  switch (op) {
  case NN_ACT_LEAKY_RELU: return nn_leaky_relu_value(x, a);
  case NN_ACT_ELU: return nn_elu_value(x, a, 1);
  case NN_ACT_SELU: return nn_elu_value(x, NN_SELU_ALPHA, NN_SELU_SCALE);
  case NN_ACT_SILU: return nn_silu_value(x);
  case NN_ACT_GELU: return nn_gelu_value(x);
  case NN_ACT_GELU_TANH: return nn_gelu_tanh_value(x);
  case NN_ACT_SOFTPLUS: return nn_softplus_value(x, a, b);
  case NN_ACT_MISH: return nn_mish_value(x);
  case NN_ACT_HARDTANH: return nn_hardtanh_value(x, a, b);
  case NN_ACT_HARDSIGMOID: return nn_hardsigmoid_value(x);
  case NN_ACT_LOG_SIGMOID: return nn_log_sigmoid_value(x);
  case NN_ACT_HARDSWISH: return nn_hardswish_value(x);
  case NN_ACT_CELU: return nn_celu_value(x, a);
  case NN_ACT_SOFTSHRINK: return nn_softshrink_value(x, a);
  case NN_ACT_HARDSHRINK: return nn_hardshrink_value(x, a);
  case NN_ACT_TANHSHRINK: return nn_tanhshrink_value(x);
  case NN_ACT_THRESHOLD: return nn_threshold_value(x, a, b);
  default: return nn_softsign_value(x);
  }
}

NN_HD static inline double nn_activation_derivative(nn_activation_op op, double x, double a, double b) {
  switch (op) {
  case NN_ACT_LEAKY_RELU: return nn_leaky_relu_derivative(x, a);
  case NN_ACT_ELU: return nn_elu_derivative(x, a, 1);
  case NN_ACT_SELU: return nn_elu_derivative(x, NN_SELU_ALPHA, NN_SELU_SCALE);
  case NN_ACT_SILU: return nn_silu_derivative(x);
  case NN_ACT_GELU: return nn_gelu_derivative(x);
  case NN_ACT_GELU_TANH: return nn_gelu_tanh_derivative(x);
  case NN_ACT_SOFTPLUS: return nn_softplus_derivative(x, a, b);
  case NN_ACT_MISH: return nn_mish_derivative(x);
  case NN_ACT_HARDTANH: return nn_hardtanh_derivative(x, a, b);
  case NN_ACT_HARDSIGMOID: return nn_hardsigmoid_derivative(x);
  case NN_ACT_LOG_SIGMOID: return nn_log_sigmoid_derivative(x);
  case NN_ACT_HARDSWISH: return nn_hardswish_derivative(x);
  case NN_ACT_CELU: return nn_celu_derivative(x, a);
  case NN_ACT_SOFTSHRINK: return nn_shrink_derivative(x, a);
  case NN_ACT_HARDSHRINK: return nn_shrink_derivative(x, a);
  case NN_ACT_TANHSHRINK: return nn_tanhshrink_derivative(x);
  case NN_ACT_THRESHOLD: return nn_threshold_derivative(x, a);
  default: return nn_softsign_derivative(x);
  }
}

/* ---- softmax along a line, max-subtracted so that no exp overflows
   (softmax of {1000, 1050, 1100} is that of {-100, -50, 0}) ---------------
   softmax: y = e^(x - m) / sum e^(x - m); log_softmax: y = x - m - log sum e^(x - m).
   A NaN anywhere in the line makes the line NaN, as in PyTorch (the max
   takes it). Backward, with y the output along the line (PyTorch's):
   softmax: gi = y (g - sum_k g_k y_k); log_softmax: gi = g - e^y sum_k g_k. */
NN_HD static inline double nn_softmax_max_step(double m, double v) { return v > m || isnan(v) ? v : m; }
NN_HD static inline double nn_softmax_grad(double g, double y, double dot) { return y * (g - dot); }
NN_HD static inline double nn_log_softmax_grad(double g, double y, double sum) { return g - exp(y) * sum; }

/* ---- PReLU: x > 0 ? x : w x; dx = x > 0 ? g : w g; dw = sum (x > 0 ? 0 : x g) -- */
NN_HD static inline double nn_prelu_value(double x, double w) { return x > 0 ? x : w * x; }
NN_HD static inline double nn_prelu_grad_input(double x, double w, double g) { return x > 0 ? g : w * g; }
NN_HD static inline double nn_prelu_grad_weight(double x, double g) { return x > 0 ? 0 : x * g; }
/* The channel of flat element i: 0 for a single weight, else its index
   along dim 1 (elements of one channel come in runs of `inner`). */
NN_HD static inline int64_t nn_prelu_channel(int64_t i, int64_t channels, int64_t inner) {
  return channels == 1 ? 0 : (i / inner) % channels;
}

#endif

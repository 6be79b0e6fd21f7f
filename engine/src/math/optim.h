/* math/optim.h: the optimizers' element updates, in the order of
 * operations of PyTorch 1.13's _single_tensor_* functions
 * (torch/optim/sgd.py, adam.py, adamw.py, rmsprop.py, adagrad.py), so that
 * the roundings match; each in float (float32 parameters, with the
 * hyperparameters rounded to float as PyTorch passes them to its kernels)
 * and in double. */
#ifndef NN_MATH_OPTIM_H
#define NN_MATH_OPTIM_H

#include "math/common.h"

/* torch.maximum: NaN wins. */
NN_HD static inline float nn_maximum_f32(float a, float b) { return a > b || a != a ? a : b; }
NN_HD static inline double nn_maximum_f64(double a, double b) { return a > b || a != a ? a : b; }

/* ---- SGD: d = grad (negated when maximizing) (+ wd p); with momentum
   buf = d on the first step (no dampening), then m buf + (1 - dampening) d,
   and d = nesterov ? d + m buf : buf; p -= lr d. ---------------------- */
NN_HD static inline float nn_sgd_direction_f32(float g, float p, float sign, float wd) {
  float d = sign * g;
  return wd != 0 ? d + wd * p : d;
}
NN_HD static inline float nn_sgd_buffer_f32(float b, float d, float m, float damp, int first) {
  return first ? d : m * b + damp * d;
}
NN_HD static inline float nn_sgd_param_f32(float p, float lr, float d) { return p + -lr * d; }

NN_HD static inline double nn_sgd_direction_f64(double g, double p, double sign, double wd) {
  double d = sign * g;
  return wd != 0 ? d + wd * p : d;
}
NN_HD static inline double nn_sgd_buffer_f64(double b, double d, double m, double dampening,
                                             int first) {
  return first ? d : m * b + (1 - dampening) * d;
}
NN_HD static inline double nn_sgd_param_f64(double p, double lr, double d) { return p + -lr * d; }

/* ---- Adam and AdamW (the non-capturable branch):
     g = grad (negated when maximizing); Adam: g += wd p; AdamW: p *= 1 - lr wd
     m = beta1 m + (1 - beta1) g;  v = beta2 v + (1 - beta2) g g
     amsgrad: vmax = max(vmax, v), used in place of v
     p += -(lr / (1 - beta1^t)) m / (sqrt(v) / sqrt(1 - beta2^t) + eps) ---- */
NN_HD static inline float nn_adam_first_f32(float m, float beta1, float one_minus_beta1, float g) {
  return m * beta1 + one_minus_beta1 * g;
}
NN_HD static inline float nn_adam_second_f32(float v, float beta2, float one_minus_beta2, float g) {
  return v * beta2 + one_minus_beta2 * g * g;
}
NN_HD static inline float nn_adam_param_f32(float p, float neg_step_size, float m, float second,
                                            float bc2_sqrt, float eps) {
  return p + neg_step_size * m / (sqrtf(second) / bc2_sqrt + eps);
}

NN_HD static inline double nn_adam_first_f64(double m, double beta1, double one_minus_beta1, double g) {
  return m * beta1 + one_minus_beta1 * g;
}
NN_HD static inline double nn_adam_second_f64(double v, double beta2, double one_minus_beta2, double g) {
  return v * beta2 + one_minus_beta2 * g * g;
}
NN_HD static inline double nn_adam_param_f64(double p, double neg_step_size, double m, double second,
                                             double bc2_sqrt, double eps) {
  return p + neg_step_size * m / (sqrt(second) / bc2_sqrt + eps);
}

/* ---- RMSprop (Hinton's lecture 6e; centered: Graves, 2013):
     g = grad (negated when maximizing) (+ wd p)
     sq = alpha sq + (1 - alpha) g g
     centered: ga = alpha ga + (1 - alpha) g; avg = sqrt(sq - ga ga) + eps
     otherwise avg = sqrt(sq) + eps
     momentum > 0: buf = momentum buf + g / avg; p += -lr buf
     otherwise p += -lr g / avg ----------------------------------------- */
NN_HD static inline float nn_rmsprop_square_f32(float sq, float alpha, float one_minus_alpha, float g) {
  return sq * alpha + one_minus_alpha * g * g;
}
NN_HD static inline float nn_rmsprop_average_f32(float ga, float alpha, float one_minus_alpha, float g) {
  return ga * alpha + one_minus_alpha * g;
}
NN_HD static inline float nn_rmsprop_denominator_f32(float sq, const float *ga, float eps) {
  return (ga ? sqrtf(sq + -1.0f * *ga * *ga) : sqrtf(sq)) + eps;
}

NN_HD static inline double nn_rmsprop_square_f64(double sq, double alpha, double one_minus_alpha,
                                                 double g) {
  return sq * alpha + one_minus_alpha * g * g;
}
NN_HD static inline double nn_rmsprop_average_f64(double ga, double alpha, double one_minus_alpha,
                                                  double g) {
  return ga * alpha + one_minus_alpha * g;
}
NN_HD static inline double nn_rmsprop_denominator_f64(double sq, const double *ga, double eps) {
  return (ga ? sqrt(sq + -1.0 * *ga * *ga) : sqrt(sq)) + eps;
}

/* ---- Adagrad (Duchi et al., 2011), dense gradients:
     g = grad (negated when maximizing) (+ wd p)
     clr = lr / (1 + (t - 1) lr_decay)
     sum += g g;  p += -clr g / (sqrt(sum) + eps) ------------------------- */
NN_HD static inline double nn_adagrad_rate(double lr, double lr_decay, int64_t step) {
  return lr / (1 + ((double)step - 1) * lr_decay);
}
NN_HD static inline float nn_adagrad_param_f32(float p, float neg_clr, float g, float sum, float eps) {
  return p + neg_clr * g / (sqrtf(sum) + eps);
}
NN_HD static inline double nn_adagrad_param_f64(double p, double neg_clr, double g, double sum,
                                                double eps) {
  return p + neg_clr * g / (sqrt(sum) + eps);
}

/* ---- bias corrections and step sizes, in double as Python computes them -- */
NN_HD static inline double nn_bias_correction(double beta, int64_t step) {
  return 1 - pow(beta, (double)step);
}

#endif

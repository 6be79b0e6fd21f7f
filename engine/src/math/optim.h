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

/* ---- one element's whole step, as each device's loop takes it: the
   parameter, its buffers (NULL when the configuration has none) and its
   gradient; the hyperparameters as the loops prepare them. ------------- */
NN_HD static inline void nn_sgd_element_f32(float *p, float *buf, float grad, float sign, float wd, float m,
                                            float damp, float lr, int first, int nesterov) {
  float d = nn_sgd_direction_f32(grad, *p, sign, wd);
  if (buf) {
    *buf = nn_sgd_buffer_f32(*buf, d, m, damp, first);
    d = nesterov ? d + m * *buf : *buf;
  }
  *p = nn_sgd_param_f32(*p, lr, d);
}
NN_HD static inline void nn_sgd_element_f64(double *p, double *buf, double grad, double sign, double wd,
                                            double m, double dampening, double lr, int first, int nesterov) {
  double d = nn_sgd_direction_f64(grad, *p, sign, wd);
  if (buf) {
    *buf = nn_sgd_buffer_f64(*buf, d, m, dampening, first);
    d = nesterov ? d + m * *buf : *buf;
  }
  *p = nn_sgd_param_f64(*p, lr, d);
}

/* Adam's: decay is 1 - lr wd for AdamW (decoupled), coupled adds wd p to g. */
NN_HD static inline void nn_adam_element_f32(float *p, float *m, float *v, float *vmax, float grad, int maximize,
                                             int coupled, int decoupled, float wd, float decay, float beta1,
                                             float one_minus_beta1, float beta2, float one_minus_beta2,
                                             float neg_step_size, float bc2_sqrt, float eps) {
  float g = maximize ? -grad : grad;
  if (coupled) g = g + wd * *p;
  if (decoupled) *p = *p * decay;
  *m = nn_adam_first_f32(*m, beta1, one_minus_beta1, g);
  *v = nn_adam_second_f32(*v, beta2, one_minus_beta2, g);
  float second = *v;
  if (vmax) second = *vmax = nn_maximum_f32(*vmax, *v);
  *p = nn_adam_param_f32(*p, neg_step_size, *m, second, bc2_sqrt, eps);
}
NN_HD static inline void nn_adam_element_f64(double *p, double *m, double *v, double *vmax, double grad,
                                             int maximize, int coupled, int decoupled, double wd, double decay,
                                             double beta1, double one_minus_beta1, double beta2,
                                             double one_minus_beta2, double neg_step_size, double bc2_sqrt,
                                             double eps) {
  double g = maximize ? -grad : grad;
  if (coupled) g = g + wd * *p;
  if (decoupled) *p = *p * decay;
  *m = nn_adam_first_f64(*m, beta1, one_minus_beta1, g);
  *v = nn_adam_second_f64(*v, beta2, one_minus_beta2, g);
  double second = *v;
  if (vmax) second = *vmax = nn_maximum_f64(*vmax, *v);
  *p = nn_adam_param_f64(*p, neg_step_size, *m, second, bc2_sqrt, eps);
}

NN_HD static inline void nn_rmsprop_element_f32(float *p, float *sq, float *buf, float *ga, float grad,
                                                int maximize, int decay, float wd, float alpha,
                                                float one_minus_alpha, float eps, float momentum, float neg_lr) {
  float g = maximize ? -grad : grad;
  if (decay) g = g + wd * *p;
  *sq = nn_rmsprop_square_f32(*sq, alpha, one_minus_alpha, g);
  if (ga) *ga = nn_rmsprop_average_f32(*ga, alpha, one_minus_alpha, g);
  float avg = nn_rmsprop_denominator_f32(*sq, ga, eps);
  if (buf) {
    *buf = *buf * momentum + g / avg;
    *p = *p + neg_lr * *buf;
  } else {
    *p = *p + neg_lr * g / avg;
  }
}
NN_HD static inline void nn_rmsprop_element_f64(double *p, double *sq, double *buf, double *ga, double grad,
                                                int maximize, int decay, double wd, double alpha,
                                                double one_minus_alpha, double eps, double momentum,
                                                double neg_lr) {
  double g = maximize ? -grad : grad;
  if (decay) g = g + wd * *p;
  *sq = nn_rmsprop_square_f64(*sq, alpha, one_minus_alpha, g);
  if (ga) *ga = nn_rmsprop_average_f64(*ga, alpha, one_minus_alpha, g);
  double avg = nn_rmsprop_denominator_f64(*sq, ga, eps);
  if (buf) {
    *buf = *buf * momentum + g / avg;
    *p = *p + neg_lr * *buf;
  } else {
    *p = *p + neg_lr * g / avg;
  }
}

NN_HD static inline void nn_adagrad_element_f32(float *p, float *sum, float grad, int maximize, int decay,
                                                float wd, float neg_clr, float eps) {
  float g = maximize ? -grad : grad;
  if (decay) g = g + wd * *p;
  *sum = *sum + g * g;
  *p = nn_adagrad_param_f32(*p, neg_clr, g, *sum, eps);
}
NN_HD static inline void nn_adagrad_element_f64(double *p, double *sum, double grad, int maximize, int decay,
                                                double wd, double neg_clr, double eps) {
  double g = maximize ? -grad : grad;
  if (decay) g = g + wd * *p;
  *sum = *sum + g * g;
  *p = nn_adagrad_param_f64(*p, neg_clr, g, *sum, eps);
}

/* ---- issue 13's optimizers: torch/optim/adadelta.py, adamax.py, nadam.py,
   radam.py, asgd.py and rprop.py (_single_tensor_*), one element's step
   each, operation for operation. g is the gradient, negated when
   maximizing, plus wd p when decay is set (grad.add(param, alpha=wd)). -- */

/* Adadelta (Zeiler, 2012):
     sq = rho sq + (1 - rho) g g;  delta = sqrt(acc + eps) / sqrt(sq + eps) g
     acc = rho acc + (1 - rho) delta delta;  p += -lr delta */
NN_HD static inline void nn_adadelta_element_f32(float *p, float *sq, float *acc, float grad, int maximize,
                                                 int decay, float wd, float rho, float one_minus_rho, float eps,
                                                 float neg_lr) {
  float g = maximize ? -grad : grad;
  if (decay) g = g + wd * *p;
  *sq = *sq * rho + one_minus_rho * g * g;
  float std = sqrtf(*sq + eps);
  float delta = sqrtf(*acc + eps) / std * g;
  *acc = *acc * rho + one_minus_rho * delta * delta;
  *p = *p + neg_lr * delta;
}
NN_HD static inline void nn_adadelta_element_f64(double *p, double *sq, double *acc, double grad, int maximize,
                                                 int decay, double wd, double rho, double one_minus_rho,
                                                 double eps, double neg_lr) {
  double g = maximize ? -grad : grad;
  if (decay) g = g + wd * *p;
  *sq = *sq * rho + one_minus_rho * g * g;
  double std = sqrt(*sq + eps);
  double delta = sqrt(*acc + eps) / std * g;
  *acc = *acc * rho + one_minus_rho * delta * delta;
  *p = *p + neg_lr * delta;
}

/* Adamax (Kingma and Ba, 2015, section 7.1):
     m = beta1 m + (1 - beta1) g;  u = max(beta2 u, |g| + eps) (NaN wins, as amax)
     p += -(lr / (1 - beta1^t)) m / u */
NN_HD static inline void nn_adamax_element_f32(float *p, float *m, float *u, float grad, int maximize, int decay,
                                               float wd, float beta1, float one_minus_beta1, float beta2,
                                               float eps, float neg_clr) {
  float g = maximize ? -grad : grad;
  if (decay) g = g + wd * *p;
  *m = nn_adam_first_f32(*m, beta1, one_minus_beta1, g);
  *u = nn_maximum_f32(*u * beta2, fabsf(g) + eps);
  *p = *p + neg_clr * *m / *u;
}
NN_HD static inline void nn_adamax_element_f64(double *p, double *m, double *u, double grad, int maximize,
                                               int decay, double wd, double beta1, double one_minus_beta1,
                                               double beta2, double eps, double neg_clr) {
  double g = maximize ? -grad : grad;
  if (decay) g = g + wd * *p;
  *m = nn_adam_first_f64(*m, beta1, one_minus_beta1, g);
  *u = nn_maximum_f64(*u * beta2, fabs(g) + eps);
  *p = *p + neg_clr * *m / *u;
}

/* NAdam (Dozat, 2016), PyTorch 1.13's: m and v as Adam's, then with
   denom = sqrt(v / (1 - beta2^t)) + eps, two steps:
     p += grad_coef g / denom;  p += avg_coef m / denom
   (the coefficients from nn_nadam_mu and the state's mu_product). */
NN_HD static inline void nn_nadam_element_f32(float *p, float *m, float *v, float grad, int decay, float wd,
                                              float beta1, float one_minus_beta1, float beta2,
                                              float one_minus_beta2, float bc2, float eps, float grad_coef,
                                              float avg_coef) {
  float g = grad;
  if (decay) g = g + wd * *p;
  *m = nn_adam_first_f32(*m, beta1, one_minus_beta1, g);
  *v = nn_adam_second_f32(*v, beta2, one_minus_beta2, g);
  float denom = sqrtf(*v / bc2) + eps;
  *p = *p + grad_coef * g / denom;
  *p = *p + avg_coef * *m / denom;
}
NN_HD static inline void nn_nadam_element_f64(double *p, double *m, double *v, double grad, int decay, double wd,
                                              double beta1, double one_minus_beta1, double beta2,
                                              double one_minus_beta2, double bc2, double eps, double grad_coef,
                                              double avg_coef) {
  double g = grad;
  if (decay) g = g + wd * *p;
  *m = nn_adam_first_f64(*m, beta1, one_minus_beta1, g);
  *v = nn_adam_second_f64(*v, beta2, one_minus_beta2, g);
  double denom = sqrt(*v / bc2) + eps;
  *p = *p + grad_coef * g / denom;
  *p = *p + avg_coef * *m / denom;
}

/* RAdam (Liu et al., 2019): m and v as Adam's; with mh = m / (1 - beta1^t),
   while rectified (rho_t > 5): p -= mh lr (1 / (sqrt(v) + eps)) sqrt(bc2) rect
   (PyTorch's scalar / tensor is reciprocal, then a product), else p -= mh lr. */
NN_HD static inline void nn_radam_element_f32(float *p, float *m, float *v, float grad, int decay, float wd,
                                              float beta1, float one_minus_beta1, float beta2,
                                              float one_minus_beta2, float bc1, float lr, int rectified,
                                              float bc2_sqrt, float eps, float rect) {
  float g = grad;
  if (decay) g = g + wd * *p;
  *m = nn_adam_first_f32(*m, beta1, one_minus_beta1, g);
  *v = nn_adam_second_f32(*v, beta2, one_minus_beta2, g);
  float corrected = *m / bc1;
  if (rectified) {
    float adaptive_lr = 1.0f / (sqrtf(*v) + eps) * bc2_sqrt;
    *p = *p - corrected * lr * adaptive_lr * rect;
  } else {
    *p = *p - corrected * lr;
  }
}
NN_HD static inline void nn_radam_element_f64(double *p, double *m, double *v, double grad, int decay, double wd,
                                              double beta1, double one_minus_beta1, double beta2,
                                              double one_minus_beta2, double bc1, double lr, int rectified,
                                              double bc2_sqrt, double eps, double rect) {
  double g = grad;
  if (decay) g = g + wd * *p;
  *m = nn_adam_first_f64(*m, beta1, one_minus_beta1, g);
  *v = nn_adam_second_f64(*v, beta2, one_minus_beta2, g);
  double corrected = *m / bc1;
  if (rectified) {
    double adaptive_lr = 1.0 / (sqrt(*v) + eps) * bc2_sqrt;
    *p = *p - corrected * lr * adaptive_lr * rect;
  } else {
    *p = *p - corrected * lr;
  }
}

/* ASGD (Polyak and Juditsky, 1992), with the step's eta and mu:
     p *= 1 - lambd eta;  p += -eta g
     ax += (p - ax) mu while averaging (mu != 1), else ax = p */
NN_HD static inline void nn_asgd_element_f32(float *p, float *ax, float grad, int maximize, int decay, float wd,
                                             float shrink, float neg_eta, int averaging, float mu) {
  float g = maximize ? -grad : grad;
  if (decay) g = g + wd * *p;
  *p = *p * shrink;
  *p = *p + neg_eta * g;
  *ax = averaging ? *ax + (*p - *ax) * mu : *p;
}
NN_HD static inline void nn_asgd_element_f64(double *p, double *ax, double grad, int maximize, int decay,
                                             double wd, double shrink, double neg_eta, int averaging, double mu) {
  double g = maximize ? -grad : grad;
  if (decay) g = g + wd * *p;
  *p = *p * shrink;
  *p = *p + neg_eta * g;
  *ax = averaging ? *ax + (*p - *ax) * mu : *p;
}

/* Rprop (Riedmiller and Braun, 1993): s = sign(g prev); the step size
   times etaplus (s > 0), etaminus (s < 0) or 1, clamped to [lo, hi]; where
   the factor is etaminus (PyTorch's test) the gradient counts as 0; then
   p += -sign(g) size and prev = g. sign(NaN) is 0, as torch.sign's. */
NN_HD static inline float nn_sign_f32(float x) { return (float)((0 < x) - (x < 0)); }
NN_HD static inline double nn_sign_f64(double x) { return (double)((0 < x) - (x < 0)); }

NN_HD static inline void nn_rprop_element_f32(float *p, float *prev, float *size, float grad, int maximize,
                                              float etaminus, float etaplus, float lo, float hi) {
  float g = maximize ? -grad : grad;
  float s = nn_sign_f32(g * *prev);
  float factor = s > 0 ? etaplus : s < 0 ? etaminus : 1.0f;
  float z = *size * factor;
  z = z < lo ? lo : z; /* clamp_: a NaN stays NaN */
  *size = z > hi ? hi : z;
  if (factor == etaminus) g = 0;
  *p = *p + -1.0f * nn_sign_f32(g) * *size;
  *prev = g;
}
NN_HD static inline void nn_rprop_element_f64(double *p, double *prev, double *size, double grad, int maximize,
                                              double etaminus, double etaplus, double lo, double hi) {
  double g = maximize ? -grad : grad;
  double s = nn_sign_f64(g * *prev);
  double factor = s > 0 ? etaplus : s < 0 ? etaminus : 1.0;
  double z = *size * factor;
  z = z < lo ? lo : z;
  *size = z > hi ? hi : z;
  if (factor == etaminus) g = 0;
  *p = *p + -1.0 * nn_sign_f64(g) * *size;
  *prev = g;
}


/* ---- the step's scalars, in double as Python computes them ----------- */
/* NAdam's momentum cache mu_t = beta1 (1 - 0.5 * 0.96^(t psi)). */
NN_HD static inline double nn_nadam_mu(double beta1, double momentum_decay, int64_t step) {
  return beta1 * (1. - 0.5 * pow(0.96, (double)step * momentum_decay));
}

/* NAdam's two step coefficients, given mu_product after this step's
   factor: -lr (1 - mu_t) / (1 - mu_product) for g and
   -lr mu_{t+1} / (1 - mu_product mu_t mu_{t+1}) for m, that product in
   float32 as PyTorch's 1.13 multiplies its float32 tensor (by mu_t twice). */
NN_HD static inline void nn_nadam_coefficients(const nn_nadam_options *o, int64_t step, double mu_product,
                                               double *grad_coef, double *avg_coef) {
  double mu = nn_nadam_mu(o->beta1, o->momentum_decay, step);
  double mu_next = nn_nadam_mu(o->beta1, o->momentum_decay, step + 1);
  float product_next = (float)mu_product * (float)mu;
  product_next = product_next * (float)mu_next;
  *grad_coef = -o->lr * (1. - mu) / (1. - mu_product);
  *avg_coef = -o->lr * mu_next / (1. - (double)product_next);
}

/* RAdam's rectification at step t: 0 while rho_t <= 5 (no adaptive step). */
NN_HD static inline double nn_radam_rect(double beta2, int64_t step) {
  double rho_inf = 2 / (1 - beta2) - 1;
  double t = (double)step;
  double rho_t = rho_inf - 2 * t * pow(beta2, t) / (1 - pow(beta2, t));
  if (!(rho_t > 5.)) return 0;
  return sqrt((rho_t - 4) * (rho_t - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho_t));
}

/* ---- bias corrections and step sizes, in double as Python computes them -- */
NN_HD static inline double nn_bias_correction(double beta, int64_t step) {
  return 1 - pow(beta, (double)step);
}

#endif

/* cuda/optim.cu: the optimizers' fused steps, one thread an element of a
 * parameter and its buffers: cpu/optim.c's entries, the same operations
 * in the same order (math/optim.h), hyperparameters rounded to float for
 * float32 parameters as the CPU (and PyTorch) pass them. */
#include "cuda/common.cuh"
#include "math/optim.h"

/* ---- SGD ------------------------------------------------------------- */
template <typename T>
struct sgd_op {
  T *p, *b;
  const T *g;
  T lr, wd, m, damp, sign;
  double dampening;
  int first, nesterov;
  __device__ void operator()(int64_t i) const;
};

template <> __device__ void sgd_op<float>::operator()(int64_t i) const {
  float d = nn_sgd_direction_f32(g[i], p[i], sign, wd);
  if (b) {
    b[i] = nn_sgd_buffer_f32(b[i], d, m, damp, first);
    d = nesterov ? d + m * b[i] : b[i];
  }
  p[i] = nn_sgd_param_f32(p[i], lr, d);
}

template <> __device__ void sgd_op<double>::operator()(int64_t i) const {
  double d = nn_sgd_direction_f64(g[i], p[i], sign, wd);
  if (b) {
    b[i] = nn_sgd_buffer_f64(b[i], d, m, dampening, first);
    d = nesterov ? d + m * b[i] : b[i];
  }
  p[i] = nn_sgd_param_f64(p[i], lr, d);
}

static int cuda_sgd_step(nn_dtype dtype, int64_t n, void *param, const void *grad, void *momentum_buffer,
                         int first, const nn_sgd_options *o) {
  double sign = o->maximize ? -1 : 1;
  if (dtype == NN_FLOAT32) {
    sgd_op<float> k = {(float *)param, (float *)momentum_buffer, (const float *)grad, (float)o->lr,
                       (float)o->weight_decay, (float)o->momentum, (float)(1 - o->dampening), (float)sign,
                       o->dampening, first, o->nesterov};
    return nn_cuda_run_each("sgd", n, k);
  }
  sgd_op<double> k = {(double *)param, (double *)momentum_buffer, (const double *)grad, o->lr,
                      o->weight_decay, o->momentum, 1 - o->dampening, sign, o->dampening, first, o->nesterov};
  return nn_cuda_run_each("sgd", n, k);
}

/* ---- Adam and AdamW -------------------------------------------------- */
template <typename T>
struct adam_op {
  T *p, *m, *v, *vmax;
  const T *grad;
  T beta1, one_minus_beta1, beta2, one_minus_beta2, wd, decay, bc2_sqrt, eps, neg_step_size;
  int maximize, coupled_decay, decoupled_decay;
  __device__ void operator()(int64_t i) const;
};

template <> __device__ void adam_op<float>::operator()(int64_t i) const {
  float g = maximize ? -grad[i] : grad[i];
  if (coupled_decay) g = g + wd * p[i];
  float pi = decoupled_decay ? p[i] * decay : p[i];
  float mi = nn_adam_first_f32(m[i], beta1, one_minus_beta1, g);
  float vi = nn_adam_second_f32(v[i], beta2, one_minus_beta2, g);
  m[i] = mi;
  v[i] = vi;
  float second = vi;
  if (vmax) second = vmax[i] = nn_maximum_f32(vmax[i], vi);
  p[i] = nn_adam_param_f32(pi, neg_step_size, mi, second, bc2_sqrt, eps);
}

template <> __device__ void adam_op<double>::operator()(int64_t i) const {
  double g = maximize ? -grad[i] : grad[i];
  if (coupled_decay) g = g + wd * p[i];
  double pi = decoupled_decay ? p[i] * decay : p[i];
  double mi = nn_adam_first_f64(m[i], beta1, one_minus_beta1, g);
  double vi = nn_adam_second_f64(v[i], beta2, one_minus_beta2, g);
  m[i] = mi;
  v[i] = vi;
  double second = vi;
  if (vmax) second = vmax[i] = nn_maximum_f64(vmax[i], vi);
  p[i] = nn_adam_param_f64(pi, neg_step_size, mi, second, bc2_sqrt, eps);
}

static int cuda_adam_step(nn_dtype dtype, int64_t n, void *param, const void *grad, void *exp_avg,
                          void *exp_avg_sq, void *max_exp_avg_sq, int64_t step, const nn_adam_options *o) {
  /* the step size and correction in double, as Python computes them */
  double step_size = o->lr / nn_bias_correction(o->beta1, step);
  double bc2_sqrt = sqrt(nn_bias_correction(o->beta2, step));
  int coupled = o->weight_decay != 0 && !o->decoupled_weight_decay;
  int decoupled = o->weight_decay != 0 && o->decoupled_weight_decay;
  if (dtype == NN_FLOAT32) {
    adam_op<float> k = {(float *)param, (float *)exp_avg, (float *)exp_avg_sq, (float *)max_exp_avg_sq,
                        (const float *)grad, (float)o->beta1, (float)(1 - o->beta1), (float)o->beta2,
                        (float)(1 - o->beta2), (float)o->weight_decay, (float)(1 - o->lr * o->weight_decay),
                        (float)bc2_sqrt, (float)o->eps, (float)-step_size, o->maximize, coupled, decoupled};
    return nn_cuda_run_each("adam", n, k);
  }
  adam_op<double> k = {(double *)param, (double *)exp_avg, (double *)exp_avg_sq, (double *)max_exp_avg_sq,
                       (const double *)grad, o->beta1, 1 - o->beta1, o->beta2, 1 - o->beta2, o->weight_decay,
                       1 - o->lr * o->weight_decay, bc2_sqrt, o->eps, -step_size, o->maximize, coupled,
                       decoupled};
  return nn_cuda_run_each("adam", n, k);
}

/* ---- RMSprop --------------------------------------------------------- */
template <typename T>
struct rmsprop_op {
  T *p, *sq, *buf, *ga;
  const T *grad;
  T alpha, one_minus_alpha, wd, eps, momentum, neg_lr;
  int maximize, decay;
  __device__ void operator()(int64_t i) const;
};

template <> __device__ void rmsprop_op<float>::operator()(int64_t i) const {
  float g = maximize ? -grad[i] : grad[i];
  if (decay) g = g + wd * p[i];
  sq[i] = nn_rmsprop_square_f32(sq[i], alpha, one_minus_alpha, g);
  if (ga) ga[i] = nn_rmsprop_average_f32(ga[i], alpha, one_minus_alpha, g);
  float avg = nn_rmsprop_denominator_f32(sq[i], ga ? &ga[i] : NULL, eps);
  if (buf) {
    buf[i] = buf[i] * momentum + g / avg;
    p[i] = p[i] + neg_lr * buf[i];
  } else {
    p[i] = p[i] + neg_lr * g / avg;
  }
}

template <> __device__ void rmsprop_op<double>::operator()(int64_t i) const {
  double g = maximize ? -grad[i] : grad[i];
  if (decay) g = g + wd * p[i];
  sq[i] = nn_rmsprop_square_f64(sq[i], alpha, one_minus_alpha, g);
  if (ga) ga[i] = nn_rmsprop_average_f64(ga[i], alpha, one_minus_alpha, g);
  double avg = nn_rmsprop_denominator_f64(sq[i], ga ? &ga[i] : NULL, eps);
  if (buf) {
    buf[i] = buf[i] * momentum + g / avg;
    p[i] = p[i] + neg_lr * buf[i];
  } else {
    p[i] = p[i] + neg_lr * g / avg;
  }
}

static int cuda_rmsprop_step(nn_dtype dtype, int64_t n, void *param, const void *grad, void *square_avg,
                             void *momentum_buffer, void *grad_avg, const nn_rmsprop_options *o) {
  int decay = o->weight_decay != 0;
  if (dtype == NN_FLOAT32) {
    rmsprop_op<float> k = {(float *)param, (float *)square_avg, (float *)momentum_buffer, (float *)grad_avg,
                           (const float *)grad, (float)o->alpha, (float)(1 - o->alpha), (float)o->weight_decay,
                           (float)o->eps, (float)o->momentum, (float)-o->lr, o->maximize, decay};
    return nn_cuda_run_each("rmsprop", n, k);
  }
  rmsprop_op<double> k = {(double *)param, (double *)square_avg, (double *)momentum_buffer, (double *)grad_avg,
                          (const double *)grad, o->alpha, 1 - o->alpha, o->weight_decay, o->eps, o->momentum,
                          -o->lr, o->maximize, decay};
  return nn_cuda_run_each("rmsprop", n, k);
}

/* ---- Adagrad --------------------------------------------------------- */
template <typename T>
struct adagrad_op {
  T *p, *s;
  const T *grad;
  T wd, eps, neg_clr;
  int maximize, decay;
  __device__ void operator()(int64_t i) const;
};

template <> __device__ void adagrad_op<float>::operator()(int64_t i) const {
  float g = maximize ? -grad[i] : grad[i];
  if (decay) g = g + wd * p[i];
  s[i] = s[i] + g * g;
  p[i] = nn_adagrad_param_f32(p[i], neg_clr, g, s[i], eps);
}

template <> __device__ void adagrad_op<double>::operator()(int64_t i) const {
  double g = maximize ? -grad[i] : grad[i];
  if (decay) g = g + wd * p[i];
  s[i] = s[i] + g * g;
  p[i] = nn_adagrad_param_f64(p[i], neg_clr, g, s[i], eps);
}

static int cuda_adagrad_step(nn_dtype dtype, int64_t n, void *param, const void *grad, void *sum,
                             int64_t step, const nn_adagrad_options *o) {
  double clr = nn_adagrad_rate(o->lr, o->lr_decay, step);
  int decay = o->weight_decay != 0;
  if (dtype == NN_FLOAT32) {
    adagrad_op<float> k = {(float *)param, (float *)sum, (const float *)grad, (float)o->weight_decay,
                           (float)o->eps, (float)-clr, o->maximize, decay};
    return nn_cuda_run_each("adagrad", n, k);
  }
  adagrad_op<double> k = {(double *)param, (double *)sum, (const double *)grad, o->weight_decay, o->eps, -clr,
                          o->maximize, decay};
  return nn_cuda_run_each("adagrad", n, k);
}

void nn_cuda_fill_optim_kernels(nn_backend *b) {
  b->sgd_step = cuda_sgd_step;
  b->adam_step = cuda_adam_step;
  b->rmsprop_step = cuda_rmsprop_step;
  b->adagrad_step = cuda_adagrad_step;
}

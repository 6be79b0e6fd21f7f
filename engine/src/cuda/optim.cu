/* cuda/optim.cu: the optimizers' fused steps, one thread an element of a
 * parameter and its buffers: cpu/optim.c's entries, each element's step
 * the one the CPU's loops take (math/optim.h's nn_*_element), with the
 * hyperparameters rounded to float for float32 parameters as the CPU (and
 * PyTorch) pass them. */
#include "cuda/common.cuh"
#include "math/optim.h"

/* ---- SGD ------------------------------------------------------------- */
struct sgd_f32 {
  float *p, *b;
  const float *g;
  float sign, wd, m, damp, lr;
  int first, nesterov;
  __device__ __forceinline__ void operator()(int64_t i) const {
    nn_sgd_element_f32(&p[i], b ? &b[i] : NULL, g[i], sign, wd, m, damp, lr, first, nesterov);
  }
};
struct sgd_f64 {
  double *p, *b;
  const double *g;
  double sign, wd, m, dampening, lr;
  int first, nesterov;
  __device__ __forceinline__ void operator()(int64_t i) const {
    nn_sgd_element_f64(&p[i], b ? &b[i] : NULL, g[i], sign, wd, m, dampening, lr, first, nesterov);
  }
};

static int cuda_sgd_step(nn_dtype dtype, int64_t n, void *param, const void *grad, void *momentum_buffer,
                         int first, const nn_sgd_options *o) {
  double sign = o->maximize ? -1 : 1;
  if (dtype == NN_FLOAT32)
    return nn_cuda_run_each("sgd", n,
                            sgd_f32{(float *)param, (float *)momentum_buffer, (const float *)grad, (float)sign,
                                    (float)o->weight_decay, (float)o->momentum, (float)(1 - o->dampening),
                                    (float)o->lr, first, o->nesterov});
  return nn_cuda_run_each("sgd", n,
                          sgd_f64{(double *)param, (double *)momentum_buffer, (const double *)grad, sign,
                                  o->weight_decay, o->momentum, o->dampening, o->lr, first, o->nesterov});
}

/* ---- Adam and AdamW -------------------------------------------------- */
template <typename T>
struct adam_op {
  T *p, *m, *v, *vmax;
  const T *grad;
  int maximize, coupled, decoupled;
  T wd, decay, beta1, one_minus_beta1, beta2, one_minus_beta2, neg_step_size, bc2_sqrt, eps;
  __device__ __forceinline__ void operator()(int64_t i) const;
};
template <> __device__ __forceinline__ void adam_op<float>::operator()(int64_t i) const {
  nn_adam_element_f32(&p[i], &m[i], &v[i], vmax ? &vmax[i] : NULL, grad[i], maximize, coupled, decoupled, wd,
                      decay, beta1, one_minus_beta1, beta2, one_minus_beta2, neg_step_size, bc2_sqrt, eps);
}
template <> __device__ __forceinline__ void adam_op<double>::operator()(int64_t i) const {
  nn_adam_element_f64(&p[i], &m[i], &v[i], vmax ? &vmax[i] : NULL, grad[i], maximize, coupled, decoupled, wd,
                      decay, beta1, one_minus_beta1, beta2, one_minus_beta2, neg_step_size, bc2_sqrt, eps);
}

template <typename T>
static int adam_run(int64_t n, void *param, const void *grad, void *exp_avg, void *exp_avg_sq,
                    void *max_exp_avg_sq, int64_t step, const nn_adam_options *o) {
  /* the step size and correction in double, as Python computes them */
  double step_size = o->lr / nn_bias_correction(o->beta1, step);
  double bc2_sqrt = sqrt(nn_bias_correction(o->beta2, step));
  adam_op<T> k = {(T *)param, (T *)exp_avg, (T *)exp_avg_sq, (T *)max_exp_avg_sq, (const T *)grad, o->maximize,
                  o->weight_decay != 0 && !o->decoupled_weight_decay,
                  o->weight_decay != 0 && o->decoupled_weight_decay, (T)o->weight_decay,
                  (T)(1 - o->lr * o->weight_decay), (T)o->beta1, (T)(1 - o->beta1), (T)o->beta2,
                  (T)(1 - o->beta2), (T)-step_size, (T)bc2_sqrt, (T)o->eps};
  return nn_cuda_run_each("adam", n, k);
}

static int cuda_adam_step(nn_dtype dtype, int64_t n, void *param, const void *grad, void *exp_avg,
                          void *exp_avg_sq, void *max_exp_avg_sq, int64_t step, const nn_adam_options *o) {
  if (dtype == NN_FLOAT32) return adam_run<float>(n, param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, step, o);
  return adam_run<double>(n, param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, step, o);
}

/* ---- RMSprop --------------------------------------------------------- */
template <typename T>
struct rmsprop_op {
  T *p, *sq, *buf, *ga;
  const T *grad;
  int maximize, decay;
  T wd, alpha, one_minus_alpha, eps, momentum, neg_lr;
  __device__ __forceinline__ void operator()(int64_t i) const;
};
template <> __device__ __forceinline__ void rmsprop_op<float>::operator()(int64_t i) const {
  nn_rmsprop_element_f32(&p[i], &sq[i], buf ? &buf[i] : NULL, ga ? &ga[i] : NULL, grad[i], maximize, decay, wd,
                         alpha, one_minus_alpha, eps, momentum, neg_lr);
}
template <> __device__ __forceinline__ void rmsprop_op<double>::operator()(int64_t i) const {
  nn_rmsprop_element_f64(&p[i], &sq[i], buf ? &buf[i] : NULL, ga ? &ga[i] : NULL, grad[i], maximize, decay, wd,
                         alpha, one_minus_alpha, eps, momentum, neg_lr);
}

template <typename T>
static int rmsprop_run(int64_t n, void *param, const void *grad, void *square_avg, void *momentum_buffer,
                       void *grad_avg, const nn_rmsprop_options *o) {
  rmsprop_op<T> k = {(T *)param, (T *)square_avg, (T *)momentum_buffer, (T *)grad_avg, (const T *)grad,
                     o->maximize, o->weight_decay != 0, (T)o->weight_decay, (T)o->alpha, (T)(1 - o->alpha),
                     (T)o->eps, (T)o->momentum, (T)-o->lr};
  return nn_cuda_run_each("rmsprop", n, k);
}

static int cuda_rmsprop_step(nn_dtype dtype, int64_t n, void *param, const void *grad, void *square_avg,
                             void *momentum_buffer, void *grad_avg, const nn_rmsprop_options *o) {
  if (dtype == NN_FLOAT32) return rmsprop_run<float>(n, param, grad, square_avg, momentum_buffer, grad_avg, o);
  return rmsprop_run<double>(n, param, grad, square_avg, momentum_buffer, grad_avg, o);
}

/* ---- Adagrad --------------------------------------------------------- */
template <typename T>
struct adagrad_op {
  T *p, *s;
  const T *grad;
  int maximize, decay;
  T wd, neg_clr, eps;
  __device__ __forceinline__ void operator()(int64_t i) const;
};
template <> __device__ __forceinline__ void adagrad_op<float>::operator()(int64_t i) const {
  nn_adagrad_element_f32(&p[i], &s[i], grad[i], maximize, decay, wd, neg_clr, eps);
}
template <> __device__ __forceinline__ void adagrad_op<double>::operator()(int64_t i) const {
  nn_adagrad_element_f64(&p[i], &s[i], grad[i], maximize, decay, wd, neg_clr, eps);
}

template <typename T>
static int adagrad_run(int64_t n, void *param, const void *grad, void *sum, int64_t step,
                       const nn_adagrad_options *o) {
  double clr = nn_adagrad_rate(o->lr, o->lr_decay, step);
  adagrad_op<T> k = {(T *)param, (T *)sum, (const T *)grad, o->maximize, o->weight_decay != 0,
                     (T)o->weight_decay, (T)-clr, (T)o->eps};
  return nn_cuda_run_each("adagrad", n, k);
}

static int cuda_adagrad_step(nn_dtype dtype, int64_t n, void *param, const void *grad, void *sum, int64_t step,
                             const nn_adagrad_options *o) {
  if (dtype == NN_FLOAT32) return adagrad_run<float>(n, param, grad, sum, step, o);
  return adagrad_run<double>(n, param, grad, sum, step, o);
}

/* ---- issue 13's: Adadelta, Adamax, NAdam, RAdam, ASGD, Rprop ------------ */
template <typename T>
struct adadelta_op {
  T *p, *sq, *acc;
  const T *grad;
  int maximize, decay;
  T wd, rho, one_minus_rho, eps, neg_lr;
  __device__ __forceinline__ void operator()(int64_t i) const;
};
template <> __device__ __forceinline__ void adadelta_op<float>::operator()(int64_t i) const {
  nn_adadelta_element_f32(&p[i], &sq[i], &acc[i], grad[i], maximize, decay, wd, rho, one_minus_rho, eps, neg_lr);
}
template <> __device__ __forceinline__ void adadelta_op<double>::operator()(int64_t i) const {
  nn_adadelta_element_f64(&p[i], &sq[i], &acc[i], grad[i], maximize, decay, wd, rho, one_minus_rho, eps, neg_lr);
}

template <typename T>
static int adadelta_run(int64_t n, void *param, const void *grad, void *square_avg, void *acc_delta,
                        const nn_adadelta_options *o) {
  adadelta_op<T> k = {(T *)param, (T *)square_avg, (T *)acc_delta, (const T *)grad, o->maximize,
                      o->weight_decay != 0, (T)o->weight_decay, (T)o->rho, (T)(1 - o->rho), (T)o->eps, (T)-o->lr};
  return nn_cuda_run_each("adadelta", n, k);
}

static int cuda_adadelta_step(nn_dtype dtype, int64_t n, void *param, const void *grad, void *square_avg,
                              void *acc_delta, const nn_adadelta_options *o) {
  if (dtype == NN_FLOAT32) return adadelta_run<float>(n, param, grad, square_avg, acc_delta, o);
  return adadelta_run<double>(n, param, grad, square_avg, acc_delta, o);
}

template <typename T>
struct adamax_op {
  T *p, *m, *u;
  const T *grad;
  int maximize, decay;
  T wd, beta1, one_minus_beta1, beta2, eps, neg_clr;
  __device__ __forceinline__ void operator()(int64_t i) const;
};
template <> __device__ __forceinline__ void adamax_op<float>::operator()(int64_t i) const {
  nn_adamax_element_f32(&p[i], &m[i], &u[i], grad[i], maximize, decay, wd, beta1, one_minus_beta1, beta2, eps,
                        neg_clr);
}
template <> __device__ __forceinline__ void adamax_op<double>::operator()(int64_t i) const {
  nn_adamax_element_f64(&p[i], &m[i], &u[i], grad[i], maximize, decay, wd, beta1, one_minus_beta1, beta2, eps,
                        neg_clr);
}

template <typename T>
static int adamax_run(int64_t n, void *param, const void *grad, void *exp_avg, void *exp_inf, int64_t step,
                      const nn_adamax_options *o) {
  double neg_clr = -(o->lr / nn_bias_correction(o->beta1, step));
  adamax_op<T> k = {(T *)param, (T *)exp_avg, (T *)exp_inf, (const T *)grad, o->maximize, o->weight_decay != 0,
                    (T)o->weight_decay, (T)o->beta1, (T)(1 - o->beta1), (T)o->beta2, (T)o->eps, (T)neg_clr};
  return nn_cuda_run_each("adamax", n, k);
}

static int cuda_adamax_step(nn_dtype dtype, int64_t n, void *param, const void *grad, void *exp_avg,
                            void *exp_inf, int64_t step, const nn_adamax_options *o) {
  if (dtype == NN_FLOAT32) return adamax_run<float>(n, param, grad, exp_avg, exp_inf, step, o);
  return adamax_run<double>(n, param, grad, exp_avg, exp_inf, step, o);
}

template <typename T>
struct nadam_op {
  T *p, *m, *v;
  const T *grad;
  int decay;
  T wd, beta1, one_minus_beta1, beta2, one_minus_beta2, bc2, eps, grad_coef, avg_coef;
  __device__ __forceinline__ void operator()(int64_t i) const;
};
template <> __device__ __forceinline__ void nadam_op<float>::operator()(int64_t i) const {
  nn_nadam_element_f32(&p[i], &m[i], &v[i], grad[i], decay, wd, beta1, one_minus_beta1, beta2, one_minus_beta2,
                       bc2, eps, grad_coef, avg_coef);
}
template <> __device__ __forceinline__ void nadam_op<double>::operator()(int64_t i) const {
  nn_nadam_element_f64(&p[i], &m[i], &v[i], grad[i], decay, wd, beta1, one_minus_beta1, beta2, one_minus_beta2,
                       bc2, eps, grad_coef, avg_coef);
}

template <typename T>
static int nadam_run(int64_t n, void *param, const void *grad, void *exp_avg, void *exp_avg_sq, int64_t step,
                     double mu_product, const nn_nadam_options *o) {
  double grad_coef, avg_coef;
  nn_nadam_coefficients(o, step, mu_product, &grad_coef, &avg_coef);
  nadam_op<T> k = {(T *)param, (T *)exp_avg, (T *)exp_avg_sq, (const T *)grad, o->weight_decay != 0,
                   (T)o->weight_decay, (T)o->beta1, (T)(1 - o->beta1), (T)o->beta2, (T)(1 - o->beta2),
                   (T)nn_bias_correction(o->beta2, step), (T)o->eps, (T)grad_coef, (T)avg_coef};
  return nn_cuda_run_each("nadam", n, k);
}

static int cuda_nadam_step(nn_dtype dtype, int64_t n, void *param, const void *grad, void *exp_avg,
                           void *exp_avg_sq, int64_t step, double mu_product, const nn_nadam_options *o) {
  if (dtype == NN_FLOAT32) return nadam_run<float>(n, param, grad, exp_avg, exp_avg_sq, step, mu_product, o);
  return nadam_run<double>(n, param, grad, exp_avg, exp_avg_sq, step, mu_product, o);
}

template <typename T>
struct radam_op {
  T *p, *m, *v;
  const T *grad;
  int decay, rectified;
  T wd, beta1, one_minus_beta1, beta2, one_minus_beta2, bc1, lr, bc2_sqrt, eps, rect;
  __device__ __forceinline__ void operator()(int64_t i) const;
};
template <> __device__ __forceinline__ void radam_op<float>::operator()(int64_t i) const {
  nn_radam_element_f32(&p[i], &m[i], &v[i], grad[i], decay, wd, beta1, one_minus_beta1, beta2, one_minus_beta2,
                       bc1, lr, rectified, bc2_sqrt, eps, rect);
}
template <> __device__ __forceinline__ void radam_op<double>::operator()(int64_t i) const {
  nn_radam_element_f64(&p[i], &m[i], &v[i], grad[i], decay, wd, beta1, one_minus_beta1, beta2, one_minus_beta2,
                       bc1, lr, rectified, bc2_sqrt, eps, rect);
}

template <typename T>
static int radam_run(int64_t n, void *param, const void *grad, void *exp_avg, void *exp_avg_sq, int64_t step,
                     const nn_radam_options *o) {
  double rect = nn_radam_rect(o->beta2, step);
  radam_op<T> k = {(T *)param, (T *)exp_avg, (T *)exp_avg_sq, (const T *)grad, o->weight_decay != 0, rect > 0,
                   (T)o->weight_decay, (T)o->beta1, (T)(1 - o->beta1), (T)o->beta2, (T)(1 - o->beta2),
                   (T)nn_bias_correction(o->beta1, step), (T)o->lr, (T)sqrt(nn_bias_correction(o->beta2, step)),
                   (T)o->eps, (T)rect};
  return nn_cuda_run_each("radam", n, k);
}

static int cuda_radam_step(nn_dtype dtype, int64_t n, void *param, const void *grad, void *exp_avg,
                           void *exp_avg_sq, int64_t step, const nn_radam_options *o) {
  if (dtype == NN_FLOAT32) return radam_run<float>(n, param, grad, exp_avg, exp_avg_sq, step, o);
  return radam_run<double>(n, param, grad, exp_avg, exp_avg_sq, step, o);
}

template <typename T>
struct asgd_op {
  T *p, *ax;
  const T *grad;
  int maximize, decay, averaging;
  T wd, shrink, neg_eta, mu;
  __device__ __forceinline__ void operator()(int64_t i) const;
};
template <> __device__ __forceinline__ void asgd_op<float>::operator()(int64_t i) const {
  nn_asgd_element_f32(&p[i], &ax[i], grad[i], maximize, decay, wd, shrink, neg_eta, averaging, mu);
}
template <> __device__ __forceinline__ void asgd_op<double>::operator()(int64_t i) const {
  nn_asgd_element_f64(&p[i], &ax[i], grad[i], maximize, decay, wd, shrink, neg_eta, averaging, mu);
}

template <typename T>
static int asgd_run(int64_t n, void *param, const void *grad, void *ax, double eta, double mu,
                    const nn_asgd_options *o) {
  asgd_op<T> k = {(T *)param, (T *)ax, (const T *)grad, o->maximize, o->weight_decay != 0, mu != 1,
                  (T)o->weight_decay, (T)(1 - o->lambd * eta), (T)-eta, (T)mu};
  return nn_cuda_run_each("asgd", n, k);
}

static int cuda_asgd_step(nn_dtype dtype, int64_t n, void *param, const void *grad, void *ax, double eta,
                          double mu, const nn_asgd_options *o) {
  if (dtype == NN_FLOAT32) return asgd_run<float>(n, param, grad, ax, eta, mu, o);
  return asgd_run<double>(n, param, grad, ax, eta, mu, o);
}

template <typename T>
struct rprop_op {
  T *p, *prev, *size;
  const T *grad;
  int maximize;
  T etaminus, etaplus, lo, hi;
  __device__ __forceinline__ void operator()(int64_t i) const;
};
template <> __device__ __forceinline__ void rprop_op<float>::operator()(int64_t i) const {
  nn_rprop_element_f32(&p[i], &prev[i], &size[i], grad[i], maximize, etaminus, etaplus, lo, hi);
}
template <> __device__ __forceinline__ void rprop_op<double>::operator()(int64_t i) const {
  nn_rprop_element_f64(&p[i], &prev[i], &size[i], grad[i], maximize, etaminus, etaplus, lo, hi);
}

template <typename T>
static int rprop_run(int64_t n, void *param, const void *grad, void *prev, void *step_size,
                     const nn_rprop_options *o) {
  rprop_op<T> k = {(T *)param, (T *)prev, (T *)step_size, (const T *)grad, o->maximize, (T)o->etaminus,
                   (T)o->etaplus, (T)o->step_size_min, (T)o->step_size_max};
  return nn_cuda_run_each("rprop", n, k);
}

static int cuda_rprop_step(nn_dtype dtype, int64_t n, void *param, const void *grad, void *prev,
                           void *step_size, const nn_rprop_options *o) {
  if (dtype == NN_FLOAT32) return rprop_run<float>(n, param, grad, prev, step_size, o);
  return rprop_run<double>(n, param, grad, prev, step_size, o);
}

void nn_cuda_fill_optim_kernels(nn_backend *b) {
  b->sgd_step = cuda_sgd_step;
  b->adam_step = cuda_adam_step;
  b->rmsprop_step = cuda_rmsprop_step;
  b->adagrad_step = cuda_adagrad_step;
  b->adadelta_step = cuda_adadelta_step;
  b->adamax_step = cuda_adamax_step;
  b->nadam_step = cuda_nadam_step;
  b->radam_step = cuda_radam_step;
  b->asgd_step = cuda_asgd_step;
  b->rprop_step = cuda_rprop_step;
}

/* cpu/optim.c: the optimizers' fused loops, one pass over a parameter and
 * its buffers. The plain Adam and RMSprop loops, bound by the square root
 * and the division, SGD's with momentum and the float32 loops of Adadelta,
 * Adamax, NAdam, RAdam, ASGD and Rprop are built for AVX-512 and AVX2 too
 * (the loader picks the widest the processor has). Every step is split over the pool
 * (cpu/parallel.c) for large parameters; every element computes the same
 * IEEE operations in the same order either way. Formulas: math/optim.h. */
#include "cpu/cpu.h"
#include "math/optim.h"


/* ---- SGD ------------------------------------------------------------- */
/* SGD with momentum, with restrict pointers so that it runs several lanes wide. */
NN_CPU_CLONES static void sgd_momentum_f32(int64_t n, float *restrict p, float *restrict b,
                                            const float *restrict g, float sign, float wd, float m, float damp,
                                            float lr, int first, int nesterov) {
  for (int64_t i = 0; i < n; i++) nn_sgd_element_f32(&p[i], &b[i], g[i], sign, wd, m, damp, lr, first, nesterov);
}

static int sgd_serial(nn_dtype dtype, int64_t n, void *param, const void *grad, void *momentum_buffer,
                      int first, const nn_sgd_options *o) {
  double sign = o->maximize ? -1 : 1;
  if (dtype == NN_FLOAT32) {
    float *p = param, *b = momentum_buffer;
    const float *g = grad;
    float lr = (float)o->lr, wd = (float)o->weight_decay, m = (float)o->momentum;
    float damp = (float)(1 - o->dampening);
    if (!b && wd == 0 && sign == 1) { /* plain SGD: one loop, as wide as the processor goes */
      nn_cpu_vector_best()->sgd_plain(n, p, g, lr);
      return 0;
    }
    if (b) {
      sgd_momentum_f32(n, p, b, g, (float)sign, wd, m, damp, lr, first, o->nesterov);
      return 0;
    }
    for (int64_t i = 0; i < n; i++)
      nn_sgd_element_f32(&p[i], NULL, g[i], (float)sign, wd, m, damp, lr, first, o->nesterov);
  } else {
    double *p = param, *b = momentum_buffer;
    const double *g = grad;
    for (int64_t i = 0; i < n; i++)
      nn_sgd_element_f64(&p[i], b ? &b[i] : NULL, g[i], sign, o->weight_decay, o->momentum, o->dampening,
                         o->lr, first, o->nesterov);
  }
  return 0;
}

/* ---- Adam and AdamW -------------------------------------------------- */
/* The loop for the common configurations, with restrict pointers and no
   branch: m, v, then p = p decay - step_size m / (sqrt(v) / sqrt(bc2) + eps). */
NN_CPU_CLONES static void adam_plain_f32(int64_t n, float *restrict p, float *restrict m,
                                          float *restrict v, const float *restrict grad,
                                          float decay, float beta1, float one_minus_beta1,
                                          float beta2, float one_minus_beta2, float bc2_sqrt,
                                          float eps, float neg_step_size) {
  for (int64_t i = 0; i < n; i++) {
    float g = grad[i];
    float pi = p[i] * decay;
    float mi = nn_adam_first_f32(m[i], beta1, one_minus_beta1, g);
    float vi = nn_adam_second_f32(v[i], beta2, one_minus_beta2, g);
    m[i] = mi;
    v[i] = vi;
    p[i] = nn_adam_param_f32(pi, neg_step_size, mi, vi, bc2_sqrt, eps);
  }
}

static int adam_serial(nn_dtype dtype, int64_t n, void *param, const void *grad, void *exp_avg,
                       void *exp_avg_sq, void *max_exp_avg_sq, int64_t step, const nn_adam_options *o) {
  double step_size = o->lr / nn_bias_correction(o->beta1, step);
  double bias_correction2_sqrt = sqrt(nn_bias_correction(o->beta2, step));
  int coupled_decay = o->weight_decay != 0 && !o->decoupled_weight_decay;
  int decoupled_decay = o->weight_decay != 0 && o->decoupled_weight_decay;
  int maximize = o->maximize;
  if (dtype == NN_FLOAT32) {
    float *p = param, *m = exp_avg, *v = exp_avg_sq, *vmax = max_exp_avg_sq;
    const float *grad_f = grad;
    const float beta1 = (float)o->beta1, one_minus_beta1 = (float)(1 - o->beta1);
    const float beta2 = (float)o->beta2, one_minus_beta2 = (float)(1 - o->beta2);
    const float wd = (float)o->weight_decay, decay = (float)(1 - o->lr * o->weight_decay);
    const float bc2_sqrt = (float)bias_correction2_sqrt, eps = (float)o->eps;
    const float neg_step_size = (float)-step_size;
    if (!vmax && !maximize && !coupled_decay) {
      /* Adam without weight decay, and AdamW: one branch-free loop that the
         compiler vectorises (p * 1 is exact when there is no decay). */
      adam_plain_f32(n, p, m, v, grad_f, decoupled_decay ? decay : 1.0f, beta1, one_minus_beta1,
                     beta2, one_minus_beta2, bc2_sqrt, eps, neg_step_size);
      return 0;
    }
    for (int64_t i = 0; i < n; i++)
      nn_adam_element_f32(&p[i], &m[i], &v[i], vmax ? &vmax[i] : NULL, grad_f[i], maximize, coupled_decay,
                          decoupled_decay, wd, decay, beta1, one_minus_beta1, beta2, one_minus_beta2,
                          neg_step_size, bc2_sqrt, eps);
  } else {
    double *p = param, *m = exp_avg, *v = exp_avg_sq, *vmax = max_exp_avg_sq;
    const double *grad_d = grad;
    const double beta1 = o->beta1, one_minus_beta1 = 1 - o->beta1;
    const double beta2 = o->beta2, one_minus_beta2 = 1 - o->beta2;
    const double wd = o->weight_decay, decay = 1 - o->lr * o->weight_decay;
    const double eps = o->eps, neg_step_size = -step_size;
    for (int64_t i = 0; i < n; i++)
      nn_adam_element_f64(&p[i], &m[i], &v[i], vmax ? &vmax[i] : NULL, grad_d[i], maximize, coupled_decay,
                          decoupled_decay, wd, decay, beta1, one_minus_beta1, beta2, one_minus_beta2,
                          neg_step_size, bias_correction2_sqrt, eps);
  }
  return 0;
}

/* ---- RMSprop --------------------------------------------------------- */
/* sq = alpha sq + (1 - alpha) g g; p += -lr g / (sqrt(sq) + eps), with
   restrict pointers and no branch so that it runs four or more lanes wide. */
NN_CPU_CLONES static void rmsprop_plain_f32(int64_t n, float *restrict p, float *restrict sq,
                                             const float *restrict grad, float alpha,
                                             float one_minus_alpha, float eps, float neg_lr) {
  for (int64_t i = 0; i < n; i++) {
    float g = grad[i];
    float s = nn_rmsprop_square_f32(sq[i], alpha, one_minus_alpha, g);
    sq[i] = s;
    p[i] = p[i] + neg_lr * g / nn_rmsprop_denominator_f32(s, NULL, eps);
  }
}

static int rmsprop_serial(nn_dtype dtype, int64_t n, void *param, const void *grad, void *square_avg,
                          void *momentum_buffer, void *grad_avg, const nn_rmsprop_options *o) {
  int maximize = o->maximize, decay = o->weight_decay != 0;
  if (dtype == NN_FLOAT32) {
    float *p = param, *sq = square_avg, *buf = momentum_buffer, *ga = grad_avg;
    const float *grad_f = grad;
    const float alpha = (float)o->alpha, one_minus_alpha = (float)(1 - o->alpha);
    const float wd = (float)o->weight_decay, eps = (float)o->eps;
    const float momentum = (float)o->momentum, neg_lr = (float)-o->lr;
    if (!buf && !ga && !decay && !maximize) {
      /* The plain configuration (the Keras default) as a branch-free loop
         that the compiler vectorises: same operations, same order. */
      rmsprop_plain_f32(n, p, sq, grad_f, alpha, one_minus_alpha, eps, neg_lr);
      return 0;
    }
    for (int64_t i = 0; i < n; i++)
      nn_rmsprop_element_f32(&p[i], &sq[i], buf ? &buf[i] : NULL, ga ? &ga[i] : NULL, grad_f[i], maximize,
                             decay, wd, alpha, one_minus_alpha, eps, momentum, neg_lr);
  } else {
    double *p = param, *sq = square_avg, *buf = momentum_buffer, *ga = grad_avg;
    const double *grad_d = grad;
    const double alpha = o->alpha, one_minus_alpha = 1 - o->alpha;
    const double wd = o->weight_decay, eps = o->eps, momentum = o->momentum, neg_lr = -o->lr;
    for (int64_t i = 0; i < n; i++)
      nn_rmsprop_element_f64(&p[i], &sq[i], buf ? &buf[i] : NULL, ga ? &ga[i] : NULL, grad_d[i], maximize,
                             decay, wd, alpha, one_minus_alpha, eps, momentum, neg_lr);
  }
  return 0;
}

/* ---- Adagrad --------------------------------------------------------- */
static int adagrad_serial(nn_dtype dtype, int64_t n, void *param, const void *grad, void *sum,
                          int64_t step, const nn_adagrad_options *o) {
  double clr = nn_adagrad_rate(o->lr, o->lr_decay, step);
  int maximize = o->maximize, decay = o->weight_decay != 0;
  if (dtype == NN_FLOAT32) {
    float *p = param, *s = sum;
    const float *grad_f = grad;
    const float wd = (float)o->weight_decay, eps = (float)o->eps, neg_clr = (float)-clr;
    for (int64_t i = 0; i < n; i++)
      nn_adagrad_element_f32(&p[i], &s[i], grad_f[i], maximize, decay, wd, neg_clr, eps);
  } else {
    double *p = param, *s = sum;
    const double *grad_d = grad;
    const double wd = o->weight_decay, eps = o->eps, neg_clr = -clr;
    for (int64_t i = 0; i < n; i++)
      nn_adagrad_element_f64(&p[i], &s[i], grad_d[i], maximize, decay, wd, neg_clr, eps);
  }
  return 0;
}

/* ---- issue 13's: Adadelta, Adamax, NAdam, RAdam, ASGD, Rprop ------------ */
/* The float32 loops of these six take restrict pointers and are built for
   AVX-512 and AVX2 too, so that they run several lanes wide: the same
   operations, in the same order, for every element. */
NN_CPU_CLONES static void adadelta_f32(int64_t n, float *restrict p, float *restrict sq, float *restrict acc,
                                        const float *restrict g, int maximize, int decay, float wd, float rho,
                                        float one_minus_rho, float eps, float neg_lr) {
  for (int64_t i = 0; i < n; i++)
    nn_adadelta_element_f32(&p[i], &sq[i], &acc[i], g[i], maximize, decay, wd, rho, one_minus_rho, eps, neg_lr);
}

static int adadelta_serial(nn_dtype dtype, int64_t n, void *param, const void *grad, void *square_avg,
                           void *acc_delta, const nn_adadelta_options *o) {
  int maximize = o->maximize, decay = o->weight_decay != 0;
  if (dtype == NN_FLOAT32) {
    adadelta_f32(n, param, square_avg, acc_delta, grad, maximize, decay, (float)o->weight_decay, (float)o->rho,
                 (float)(1 - o->rho), (float)o->eps, (float)-o->lr);
  } else {
    double *p = param, *sq = square_avg, *acc = acc_delta;
    const double *g = grad;
    for (int64_t i = 0; i < n; i++)
      nn_adadelta_element_f64(&p[i], &sq[i], &acc[i], g[i], maximize, decay, o->weight_decay, o->rho,
                              1 - o->rho, o->eps, -o->lr);
  }
  return 0;
}

NN_CPU_CLONES static void adamax_f32(int64_t n, float *restrict p, float *restrict m, float *restrict u,
                                      const float *restrict g, int maximize, int decay, float wd, float beta1,
                                      float one_minus_beta1, float beta2, float eps, float neg_clr) {
  for (int64_t i = 0; i < n; i++)
    nn_adamax_element_f32(&p[i], &m[i], &u[i], g[i], maximize, decay, wd, beta1, one_minus_beta1, beta2, eps, neg_clr);
}

static int adamax_serial(nn_dtype dtype, int64_t n, void *param, const void *grad, void *exp_avg,
                         void *exp_inf, int64_t step, const nn_adamax_options *o) {
  int maximize = o->maximize, decay = o->weight_decay != 0;
  double neg_clr = -(o->lr / nn_bias_correction(o->beta1, step));
  if (dtype == NN_FLOAT32) {
    adamax_f32(n, param, exp_avg, exp_inf, grad, maximize, decay, (float)o->weight_decay, (float)o->beta1,
               (float)(1 - o->beta1), (float)o->beta2, (float)o->eps, (float)neg_clr);
  } else {
    double *p = param, *m = exp_avg, *u = exp_inf;
    const double *g = grad;
    for (int64_t i = 0; i < n; i++)
      nn_adamax_element_f64(&p[i], &m[i], &u[i], g[i], maximize, decay, o->weight_decay, o->beta1, 1 - o->beta1,
                            o->beta2, o->eps, neg_clr);
  }
  return 0;
}

NN_CPU_CLONES static void nadam_f32(int64_t n, float *restrict p, float *restrict m, float *restrict v,
                                     const float *restrict g, int decay, float wd, float beta1, float one_minus_beta1,
                                     float beta2, float one_minus_beta2, float bc2, float eps, float grad_coef,
                                     float avg_coef) {
  for (int64_t i = 0; i < n; i++)
    nn_nadam_element_f32(&p[i], &m[i], &v[i], g[i], decay, wd, beta1, one_minus_beta1, beta2, one_minus_beta2, bc2,
                         eps, grad_coef, avg_coef);
}

static int nadam_serial(nn_dtype dtype, int64_t n, void *param, const void *grad, void *exp_avg,
                        void *exp_avg_sq, int64_t step, double mu_product, const nn_nadam_options *o) {
  int decay = o->weight_decay != 0;
  double grad_coef, avg_coef, bc2 = nn_bias_correction(o->beta2, step);
  nn_nadam_coefficients(o, step, mu_product, &grad_coef, &avg_coef);
  if (dtype == NN_FLOAT32) {
    nadam_f32(n, param, exp_avg, exp_avg_sq, grad, decay, (float)o->weight_decay, (float)o->beta1,
              (float)(1 - o->beta1), (float)o->beta2, (float)(1 - o->beta2), (float)bc2, (float)o->eps,
              (float)grad_coef, (float)avg_coef);
  } else {
    double *p = param, *m = exp_avg, *v = exp_avg_sq;
    const double *g = grad;
    for (int64_t i = 0; i < n; i++)
      nn_nadam_element_f64(&p[i], &m[i], &v[i], g[i], decay, o->weight_decay, o->beta1, 1 - o->beta1, o->beta2,
                           1 - o->beta2, bc2, o->eps, grad_coef, avg_coef);
  }
  return 0;
}

NN_CPU_CLONES static void radam_f32(int64_t n, float *restrict p, float *restrict m, float *restrict v,
                                     const float *restrict g, int decay, float wd, float beta1, float one_minus_beta1,
                                     float beta2, float one_minus_beta2, float bc1, float lr, int rectified,
                                     float bc2_sqrt, float eps, float rect) {
  for (int64_t i = 0; i < n; i++)
    nn_radam_element_f32(&p[i], &m[i], &v[i], g[i], decay, wd, beta1, one_minus_beta1, beta2, one_minus_beta2, bc1,
                         lr, rectified, bc2_sqrt, eps, rect);
}

static int radam_serial(nn_dtype dtype, int64_t n, void *param, const void *grad, void *exp_avg,
                        void *exp_avg_sq, int64_t step, const nn_radam_options *o) {
  int decay = o->weight_decay != 0;
  double bc1 = nn_bias_correction(o->beta1, step), bc2_sqrt = sqrt(nn_bias_correction(o->beta2, step));
  double rect = nn_radam_rect(o->beta2, step);
  int rectified = rect > 0;
  if (dtype == NN_FLOAT32) {
    radam_f32(n, param, exp_avg, exp_avg_sq, grad, decay, (float)o->weight_decay, (float)o->beta1,
              (float)(1 - o->beta1), (float)o->beta2, (float)(1 - o->beta2), (float)bc1, (float)o->lr, rectified,
              (float)bc2_sqrt, (float)o->eps, (float)rect);
  } else {
    double *p = param, *m = exp_avg, *v = exp_avg_sq;
    const double *g = grad;
    for (int64_t i = 0; i < n; i++)
      nn_radam_element_f64(&p[i], &m[i], &v[i], g[i], decay, o->weight_decay, o->beta1, 1 - o->beta1, o->beta2,
                           1 - o->beta2, bc1, o->lr, rectified, bc2_sqrt, o->eps, rect);
  }
  return 0;
}

NN_CPU_CLONES static void asgd_f32(int64_t n, float *restrict p, float *restrict ax, const float *restrict g,
                                    int maximize, int decay, float wd, float shrink, float neg_eta, int averaging,
                                    float mu) {
  for (int64_t i = 0; i < n; i++)
    nn_asgd_element_f32(&p[i], &ax[i], g[i], maximize, decay, wd, shrink, neg_eta, averaging, mu);
}

static int asgd_serial(nn_dtype dtype, int64_t n, void *param, const void *grad, void *ax, double eta,
                       double mu, const nn_asgd_options *o) {
  int maximize = o->maximize, decay = o->weight_decay != 0, averaging = mu != 1;
  double shrink = 1 - o->lambd * eta;
  if (dtype == NN_FLOAT32) {
    asgd_f32(n, param, ax, grad, maximize, decay, (float)o->weight_decay, (float)shrink, (float)-eta, averaging,
             (float)mu);
  } else {
    double *p = param, *a = ax;
    const double *g = grad;
    for (int64_t i = 0; i < n; i++)
      nn_asgd_element_f64(&p[i], &a[i], g[i], maximize, decay, o->weight_decay, shrink, -eta, averaging, mu);
  }
  return 0;
}

NN_CPU_CLONES static void rprop_f32(int64_t n, float *restrict p, float *restrict prev, float *restrict size,
                                     const float *restrict g, int maximize, float etaminus, float etaplus, float lo,
                                     float hi) {
  for (int64_t i = 0; i < n; i++)
    nn_rprop_element_f32(&p[i], &prev[i], &size[i], g[i], maximize, etaminus, etaplus, lo, hi);
}

static int rprop_serial(nn_dtype dtype, int64_t n, void *param, const void *grad, void *prev,
                        void *step_size, const nn_rprop_options *o) {
  int maximize = o->maximize;
  if (dtype == NN_FLOAT32) {
    rprop_f32(n, param, prev, step_size, grad, maximize, (float)o->etaminus, (float)o->etaplus,
              (float)o->step_size_min, (float)o->step_size_max);
  } else {
    double *p = param, *pv = prev, *s = step_size;
    const double *g = grad;
    for (int64_t i = 0; i < n; i++)
      nn_rprop_element_f64(&p[i], &pv[i], &s[i], g[i], maximize, o->etaminus, o->etaplus, o->step_size_min,
                           o->step_size_max);
  }
  return 0;
}


/* ---- over the pool ------------------------------------------------------ */
/* A step's arguments: the parameter, its gradient and up to three state
   buffers (NULL where the configuration has none), cut into pieces of
   whole elements, each piece stepped by the serial loop above. A small
   parameter (XOR's) goes straight to that loop. */
typedef enum {
  STEP_SGD, STEP_ADAM, STEP_RMSPROP, STEP_ADAGRAD,
  STEP_ADADELTA, STEP_ADAMAX, STEP_NADAM, STEP_RADAM, STEP_ASGD, STEP_RPROP
} step_kind;
typedef struct {
  step_kind kind;
  nn_dtype dtype;
  void *param;
  const void *grad;
  void *state[3];
  int64_t step; /* Adam's and Adagrad's count; SGD's first-step flag */
  double scalar[2]; /* NAdam's mu_product; ASGD's eta and mu */
  const void *options;
} step_args;

static void step_range(const void *vargs, int64_t first, int64_t last) {
  const step_args *a = vargs;
  size_t off = (size_t)first * nn_element_size(a->dtype);
  int64_t n = last - first;
  char *p = (char *)a->param + off;
  const char *g = (const char *)a->grad + off;
  char *s[3];
  for (int i = 0; i < 3; i++) s[i] = a->state[i] ? (char *)a->state[i] + off : NULL;
  switch (a->kind) {
  case STEP_SGD: sgd_serial(a->dtype, n, p, g, s[0], (int)a->step, a->options); break;
  case STEP_ADAM: adam_serial(a->dtype, n, p, g, s[0], s[1], s[2], a->step, a->options); break;
  case STEP_RMSPROP: rmsprop_serial(a->dtype, n, p, g, s[0], s[1], s[2], a->options); break;
  case STEP_ADAGRAD: adagrad_serial(a->dtype, n, p, g, s[0], a->step, a->options); break;
  case STEP_ADADELTA: adadelta_serial(a->dtype, n, p, g, s[0], s[1], a->options); break;
  case STEP_ADAMAX: adamax_serial(a->dtype, n, p, g, s[0], s[1], a->step, a->options); break;
  case STEP_NADAM: nadam_serial(a->dtype, n, p, g, s[0], s[1], a->step, a->scalar[0], a->options); break;
  case STEP_RADAM: radam_serial(a->dtype, n, p, g, s[0], s[1], a->step, a->options); break;
  case STEP_ASGD: asgd_serial(a->dtype, n, p, g, s[0], a->scalar[0], a->scalar[1], a->options); break;
  case STEP_RPROP: rprop_serial(a->dtype, n, p, g, s[0], s[1], a->options); break;
  }
}

static int step_over_pool(int64_t n, const step_args *a) {
  nn_parallel_for(n, 1, NN_PARALLEL_ALIGN, step_range, a);
  return 0;
}

int nn_cpu_sgd_step(nn_dtype dtype, int64_t n, void *param, const void *grad, void *momentum_buffer,
                    int first, const nn_sgd_options *o) {
  if (nn_parallel_pass_pieces(n) < 2) return sgd_serial(dtype, n, param, grad, momentum_buffer, first, o);
  step_args a = {STEP_SGD, dtype, param, grad, {momentum_buffer, NULL, NULL}, first, {0, 0}, o};
  return step_over_pool(n, &a);
}

/* Plain SGD (no momentum buffer, weight decay 0, not maximizing) of a
   float32 parameter that nn_cpu_sgd_step steps on the calling thread,
   prepared (iter_prepare; cpu/prepare.c): its loop, sgd_serial's for these
   options, with the learning rate the caller puts in d->x. */
static void sgd_plain_run(const nn_iter_direct *d) {
  const nn_cpu_vector *v = d->kernels;
  v->sgd_plain(d->n, (float *)d->data[0], (const float *)d->data[1], (float)d->x);
}

int nn_cpu_sgd_prepare(const nn_iter *it, nn_iter_direct *d) {
  if (it->n != 2 || it->ndim != 1 || it->dtype[0] != NN_FLOAT32 || it->dtype[1] != NN_FLOAT32 ||
      it->stride[0][0] != 1 || it->stride[0][1] != 1 || nn_parallel_pass_pieces(it->size[0]) >= 2)
    return 0;
  d->kernels = nn_cpu_vector_best();
  d->run = sgd_plain_run;
  return 1;
}

int nn_cpu_adam_step(nn_dtype dtype, int64_t n, void *param, const void *grad, void *exp_avg,
                     void *exp_avg_sq, void *max_exp_avg_sq, int64_t step, const nn_adam_options *o) {
  if (n < 2 * NN_PARALLEL_GRAIN)
    return adam_serial(dtype, n, param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, step, o);
  step_args a = {STEP_ADAM, dtype, param, grad, {exp_avg, exp_avg_sq, max_exp_avg_sq}, step, {0, 0}, o};
  return step_over_pool(n, &a);
}

int nn_cpu_rmsprop_step(nn_dtype dtype, int64_t n, void *param, const void *grad, void *square_avg,
                        void *momentum_buffer, void *grad_avg, const nn_rmsprop_options *o) {
  if (n < 2 * NN_PARALLEL_GRAIN)
    return rmsprop_serial(dtype, n, param, grad, square_avg, momentum_buffer, grad_avg, o);
  step_args a = {STEP_RMSPROP, dtype, param, grad, {square_avg, momentum_buffer, grad_avg}, 0, {0, 0}, o};
  return step_over_pool(n, &a);
}

int nn_cpu_adagrad_step(nn_dtype dtype, int64_t n, void *param, const void *grad, void *sum,
                        int64_t step, const nn_adagrad_options *o) {
  if (n < 2 * NN_PARALLEL_GRAIN) return adagrad_serial(dtype, n, param, grad, sum, step, o);
  step_args a = {STEP_ADAGRAD, dtype, param, grad, {sum, NULL, NULL}, step, {0, 0}, o};
  return step_over_pool(n, &a);
}

int nn_cpu_adadelta_step(nn_dtype dtype, int64_t n, void *param, const void *grad, void *square_avg,
                         void *acc_delta, const nn_adadelta_options *o) {
  if (n < 2 * NN_PARALLEL_GRAIN) return adadelta_serial(dtype, n, param, grad, square_avg, acc_delta, o);
  step_args a = {STEP_ADADELTA, dtype, param, grad, {square_avg, acc_delta, NULL}, 0, {0, 0}, o};
  return step_over_pool(n, &a);
}

int nn_cpu_adamax_step(nn_dtype dtype, int64_t n, void *param, const void *grad, void *exp_avg,
                       void *exp_inf, int64_t step, const nn_adamax_options *o) {
  if (n < 2 * NN_PARALLEL_GRAIN) return adamax_serial(dtype, n, param, grad, exp_avg, exp_inf, step, o);
  step_args a = {STEP_ADAMAX, dtype, param, grad, {exp_avg, exp_inf, NULL}, step, {0, 0}, o};
  return step_over_pool(n, &a);
}

int nn_cpu_nadam_step(nn_dtype dtype, int64_t n, void *param, const void *grad, void *exp_avg,
                      void *exp_avg_sq, int64_t step, double mu_product, const nn_nadam_options *o) {
  if (n < 2 * NN_PARALLEL_GRAIN)
    return nadam_serial(dtype, n, param, grad, exp_avg, exp_avg_sq, step, mu_product, o);
  step_args a = {STEP_NADAM, dtype, param, grad, {exp_avg, exp_avg_sq, NULL}, step, {mu_product, 0}, o};
  return step_over_pool(n, &a);
}

int nn_cpu_radam_step(nn_dtype dtype, int64_t n, void *param, const void *grad, void *exp_avg,
                      void *exp_avg_sq, int64_t step, const nn_radam_options *o) {
  if (n < 2 * NN_PARALLEL_GRAIN) return radam_serial(dtype, n, param, grad, exp_avg, exp_avg_sq, step, o);
  step_args a = {STEP_RADAM, dtype, param, grad, {exp_avg, exp_avg_sq, NULL}, step, {0, 0}, o};
  return step_over_pool(n, &a);
}

int nn_cpu_asgd_step(nn_dtype dtype, int64_t n, void *param, const void *grad, void *ax, double eta,
                     double mu, const nn_asgd_options *o) {
  if (n < 2 * NN_PARALLEL_GRAIN) return asgd_serial(dtype, n, param, grad, ax, eta, mu, o);
  step_args a = {STEP_ASGD, dtype, param, grad, {ax, NULL, NULL}, 0, {eta, mu}, o};
  return step_over_pool(n, &a);
}

int nn_cpu_rprop_step(nn_dtype dtype, int64_t n, void *param, const void *grad, void *prev,
                      void *step_size, const nn_rprop_options *o) {
  if (n < 2 * NN_PARALLEL_GRAIN) return rprop_serial(dtype, n, param, grad, prev, step_size, o);
  step_args a = {STEP_RPROP, dtype, param, grad, {prev, step_size, NULL}, 0, {0, 0}, o};
  return step_over_pool(n, &a);
}

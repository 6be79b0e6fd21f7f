/* cpu/optim.c: the optimizers' fused loops, one pass over a parameter and
 * its buffers. The plain Adam and RMSprop loops, bound by the square root
 * and the division, are built for AVX-512 and AVX2 too (the loader picks
 * the widest the processor has) and split over the BLAS pool's threads for
 * large parameters; every element computes the same IEEE operations in the
 * same order either way. Formulas: math/optim.h. */
#include "cpu/cpu.h"
#include "math/optim.h"

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
#define WIDEST_VECTORS __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define WIDEST_VECTORS
#endif

/* OpenBLAS's own entry for running a function on its pool: calls
   function(args + i stride) for i < numthreads, the first on the caller's
   thread, and returns when all are done (driver/others/blas_server.c). It
   is not part of OpenBLAS's documented API, so it is declared weak: with an
   OpenBLAS that lacks it (an OpenMP build, say) the loops run on one thread. */
extern int gotoblas_pthread(int numthreads, void *function, void *args, int stride)
#if defined(__GNUC__)
    __attribute__((weak))
#endif
    ;

/* Below this many elements a loop stays on the caller's thread: waking the
   pool costs a few microseconds. */
#define PARALLEL_ELEMENTS (64 * 1024)
#define MAX_PIECES 16

static int piece_count(int64_t n) {
  int threads = nn_cpu_get_num_threads();
  if (threads < 2 || n < PARALLEL_ELEMENTS || !gotoblas_pthread) return 1;
  return threads > MAX_PIECES ? MAX_PIECES : threads;
}

/* pieces of whole 64-byte lines (16 floats), so no two threads share one */
static int64_t piece_length(int64_t n, int count) {
  int64_t each = (n + count - 1) / count;
  return (each + 15) & ~(int64_t)15;
}

/* ---- SGD ------------------------------------------------------------- */
int nn_cpu_sgd_step(nn_dtype dtype, int64_t n, void *param, const void *grad, void *momentum_buffer,
                    int first, const nn_sgd_options *o) {
  double sign = o->maximize ? -1 : 1;
  if (dtype == NN_FLOAT32) {
    float *p = param, *b = momentum_buffer;
    const float *g = grad;
    float lr = (float)o->lr, wd = (float)o->weight_decay, m = (float)o->momentum;
    float damp = (float)(1 - o->dampening);
    if (!b && wd == 0 && sign == 1) { /* plain SGD: one vectorisable loop */
      for (int64_t i = 0; i < n; i++) p[i] = nn_sgd_param_f32(p[i], lr, g[i]);
      return 0;
    }
    for (int64_t i = 0; i < n; i++) {
      float d = nn_sgd_direction_f32(g[i], p[i], (float)sign, wd);
      if (b) {
        b[i] = nn_sgd_buffer_f32(b[i], d, m, damp, first);
        d = o->nesterov ? d + m * b[i] : b[i];
      }
      p[i] = nn_sgd_param_f32(p[i], lr, d);
    }
  } else {
    double *p = param, *b = momentum_buffer;
    const double *g = grad;
    for (int64_t i = 0; i < n; i++) {
      double d = nn_sgd_direction_f64(g[i], p[i], sign, o->weight_decay);
      if (b) {
        b[i] = nn_sgd_buffer_f64(b[i], d, o->momentum, o->dampening, first);
        d = o->nesterov ? d + o->momentum * b[i] : b[i];
      }
      p[i] = nn_sgd_param_f64(p[i], o->lr, d);
    }
  }
  return 0;
}

/* ---- Adam and AdamW -------------------------------------------------- */
/* The loop for the common configurations, with restrict pointers and no
   branch: m, v, then p = p decay - step_size m / (sqrt(v) / sqrt(bc2) + eps). */
WIDEST_VECTORS static void adam_plain_f32(int64_t n, float *restrict p, float *restrict m,
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

typedef struct {
  int64_t n;
  float *p, *m, *v;
  const float *grad;
  float decay, beta1, one_minus_beta1, beta2, one_minus_beta2, bc2_sqrt, eps, neg_step_size;
} adam_piece;

static void adam_piece_run(void *arg) {
  adam_piece *w = arg;
  adam_plain_f32(w->n, w->p, w->m, w->v, w->grad, w->decay, w->beta1, w->one_minus_beta1,
                 w->beta2, w->one_minus_beta2, w->bc2_sqrt, w->eps, w->neg_step_size);
}

static void adam_plain_parallel(const adam_piece *whole) {
  adam_piece pieces[MAX_PIECES];
  int64_t n = whole->n;
  int count = piece_count(n);
  int64_t each = piece_length(n, count), first = 0;
  for (int i = 0; i < count; i++, first += each) {
    pieces[i] = *whole;
    pieces[i].n = n - first < each ? n - first : each;
    pieces[i].p += first, pieces[i].m += first, pieces[i].v += first, pieces[i].grad += first;
  }
  if (count == 1) adam_piece_run(&pieces[0]);
  else gotoblas_pthread(count, (void *)adam_piece_run, pieces, (int)sizeof pieces[0]);
}

int nn_cpu_adam_step(nn_dtype dtype, int64_t n, void *param, const void *grad, void *exp_avg,
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
      adam_piece whole = {n, p, m, v, grad_f, decoupled_decay ? decay : 1.0f, beta1,
                          one_minus_beta1, beta2, one_minus_beta2, bc2_sqrt, eps, neg_step_size};
      adam_plain_parallel(&whole);
      return 0;
    }
    for (int64_t i = 0; i < n; i++) {
      float g = maximize ? -grad_f[i] : grad_f[i];
      if (coupled_decay) g = g + wd * p[i];
      if (decoupled_decay) p[i] = p[i] * decay;
      m[i] = nn_adam_first_f32(m[i], beta1, one_minus_beta1, g);
      v[i] = nn_adam_second_f32(v[i], beta2, one_minus_beta2, g);
      float second = v[i];
      if (vmax) second = vmax[i] = nn_maximum_f32(vmax[i], v[i]);
      p[i] = nn_adam_param_f32(p[i], neg_step_size, m[i], second, bc2_sqrt, eps);
    }
  } else {
    double *p = param, *m = exp_avg, *v = exp_avg_sq, *vmax = max_exp_avg_sq;
    const double *grad_d = grad;
    const double beta1 = o->beta1, one_minus_beta1 = 1 - o->beta1;
    const double beta2 = o->beta2, one_minus_beta2 = 1 - o->beta2;
    const double wd = o->weight_decay, decay = 1 - o->lr * o->weight_decay;
    const double eps = o->eps, neg_step_size = -step_size;
    for (int64_t i = 0; i < n; i++) {
      double g = maximize ? -grad_d[i] : grad_d[i];
      if (coupled_decay) g = g + wd * p[i];
      if (decoupled_decay) p[i] = p[i] * decay;
      m[i] = nn_adam_first_f64(m[i], beta1, one_minus_beta1, g);
      v[i] = nn_adam_second_f64(v[i], beta2, one_minus_beta2, g);
      double second = v[i];
      if (vmax) second = vmax[i] = nn_maximum_f64(vmax[i], v[i]);
      p[i] = nn_adam_param_f64(p[i], neg_step_size, m[i], second, bias_correction2_sqrt, eps);
    }
  }
  return 0;
}

/* ---- RMSprop --------------------------------------------------------- */
/* sq = alpha sq + (1 - alpha) g g; p += -lr g / (sqrt(sq) + eps), with
   restrict pointers and no branch so that it runs four or more lanes wide. */
WIDEST_VECTORS static void rmsprop_plain_f32(int64_t n, float *restrict p, float *restrict sq,
                                             const float *restrict grad, float alpha,
                                             float one_minus_alpha, float eps, float neg_lr) {
  for (int64_t i = 0; i < n; i++) {
    float g = grad[i];
    float s = nn_rmsprop_square_f32(sq[i], alpha, one_minus_alpha, g);
    sq[i] = s;
    p[i] = p[i] + neg_lr * g / nn_rmsprop_denominator_f32(s, NULL, eps);
  }
}

typedef struct {
  int64_t n;
  float *p, *sq;
  const float *grad;
  float alpha, one_minus_alpha, eps, neg_lr;
} rmsprop_piece;

static void rmsprop_piece_run(void *arg) {
  rmsprop_piece *w = arg;
  rmsprop_plain_f32(w->n, w->p, w->sq, w->grad, w->alpha, w->one_minus_alpha, w->eps, w->neg_lr);
}

static void rmsprop_plain_parallel(const rmsprop_piece *whole) {
  rmsprop_piece pieces[MAX_PIECES];
  int64_t n = whole->n;
  int count = piece_count(n);
  int64_t each = piece_length(n, count), first = 0;
  for (int i = 0; i < count; i++, first += each) {
    pieces[i] = *whole;
    pieces[i].n = n - first < each ? n - first : each;
    pieces[i].p += first, pieces[i].sq += first, pieces[i].grad += first;
  }
  if (count == 1) rmsprop_piece_run(&pieces[0]);
  else gotoblas_pthread(count, (void *)rmsprop_piece_run, pieces, (int)sizeof pieces[0]);
}

int nn_cpu_rmsprop_step(nn_dtype dtype, int64_t n, void *param, const void *grad, void *square_avg,
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
      rmsprop_piece whole = {n, p, sq, grad_f, alpha, one_minus_alpha, eps, neg_lr};
      rmsprop_plain_parallel(&whole);
      return 0;
    }
    for (int64_t i = 0; i < n; i++) {
      float g = maximize ? -grad_f[i] : grad_f[i];
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
  } else {
    double *p = param, *sq = square_avg, *buf = momentum_buffer, *ga = grad_avg;
    const double *grad_d = grad;
    const double alpha = o->alpha, one_minus_alpha = 1 - o->alpha;
    const double wd = o->weight_decay, eps = o->eps, momentum = o->momentum, neg_lr = -o->lr;
    for (int64_t i = 0; i < n; i++) {
      double g = maximize ? -grad_d[i] : grad_d[i];
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
  }
  return 0;
}

/* ---- Adagrad --------------------------------------------------------- */
int nn_cpu_adagrad_step(nn_dtype dtype, int64_t n, void *param, const void *grad, void *sum,
                        int64_t step, const nn_adagrad_options *o) {
  double clr = nn_adagrad_rate(o->lr, o->lr_decay, step);
  int maximize = o->maximize, decay = o->weight_decay != 0;
  if (dtype == NN_FLOAT32) {
    float *p = param, *s = sum;
    const float *grad_f = grad;
    const float wd = (float)o->weight_decay, eps = (float)o->eps, neg_clr = (float)-clr;
    for (int64_t i = 0; i < n; i++) {
      float g = maximize ? -grad_f[i] : grad_f[i];
      if (decay) g = g + wd * p[i];
      s[i] = s[i] + g * g;
      p[i] = nn_adagrad_param_f32(p[i], neg_clr, g, s[i], eps);
    }
  } else {
    double *p = param, *s = sum;
    const double *grad_d = grad;
    const double wd = o->weight_decay, eps = o->eps, neg_clr = -clr;
    for (int64_t i = 0; i < n; i++) {
      double g = maximize ? -grad_d[i] : grad_d[i];
      if (decay) g = g + wd * p[i];
      s[i] = s[i] + g * g;
      p[i] = nn_adagrad_param_f64(p[i], neg_clr, g, s[i], eps);
    }
  }
  return 0;
}

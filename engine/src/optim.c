/* optim.c: optimizer steps and gradient clipping. Each step is one fused
 * loop per parameter that follows, operation for operation, PyTorch 1.13's
 * _single_tensor_* implementation in torch/optim/<name>.py: the same
 * roundings in the same order, with the hyperparameters rounded to the
 * parameter's dtype where PyTorch passes them to a kernel as scalars. */
#include "internal.h"

static int check_param(const char *op, nn_tensor *p) {
  if (nn_check_cpu(op, p) < 0) return -1;
  if (!nn_dtype_is_floating(p->dtype) || !nn_is_contiguous(p) || !nn_is_contiguous(p->grad) ||
      p->grad->dtype != p->dtype || !nn_same_shape(p, p->grad)) {
    nn_error_set("%s: a parameter must be a contiguous floating-point tensor with a gradient "
                 "of its own shape and dtype", op);
    return -1;
  }
  return 0;
}

/* One buffer of an optimizer's state: its name (for errors), where the
   caller keeps it, and the value a new one starts at. */
typedef struct {
  const char *name;
  nn_tensor **slot;
  double fill;
} state_buffer;

/* Checks the buffers that exist against param, then creates the missing
   ones on param's device. A buffer on another device follows its
   parameter there (after m:to(device), the next step moves the state):
   the copy replaces it in its slot. All or nothing: on failure the
   buffers made here are released and the slots hold what they held, so
   the caller's state is as it was. */
static int prepare_buffers(const char *op, nn_tensor *param, state_buffer *bufs, int n) {
  nn_tensor *was[4];
  for (int k = 0; k < n; k++) {
    nn_tensor *b = was[k] = *bufs[k].slot;
    if (b && (b->dtype != param->dtype || !nn_same_shape(b, param) || !nn_is_contiguous(b))) {
      char bs[96], ps[96];
      nn_error_set("%s: the %s buffer (%s %s) does not match its parameter (%s %s)", op,
                   bufs[k].name, nn_shape_string(b, bs, sizeof bs), nn_dtype_name(b->dtype),
                   nn_shape_string(param, ps, sizeof ps), nn_dtype_name(param->dtype));
      return -1;
    }
  }
  for (int k = 0; k < n; k++) {
    nn_tensor *b = was[k];
    if (b && b->device == param->device) continue;
    nn_tensor *made = b ? nn_to_device(b, param->device)
                        : nn_empty_on(param->device, param->dtype, param->ndim, param->size);
    if (made && !b && nn_fill_(made, bufs[k].fill) < 0) {
      nn_release(made);
      made = NULL;
    }
    if (!made) {
      for (int j = 0; j < k; j++) {
        if (*bufs[j].slot == was[j]) continue;
        nn_release(*bufs[j].slot);
        *bufs[j].slot = was[j];
      }
      return -1;
    }
    *bufs[k].slot = made;
  }
  return 0;
}

/* torch.maximum: NaN wins. */
static inline float maximum_f(float a, float b) { return a > b || a != a ? a : b; }
static inline double maximum_d(double a, double b) { return a > b || a != a ? a : b; }

/* The plain Adam and RMSprop loops below are bound by the square root and the division:
   on x86-64 they are built for AVX-512 and AVX2 too, and the loader picks
   the widest the processor has (gcc's target_clones, an ifunc); the lanes
   compute the same IEEE operations in the same order, so the results do
   not depend on the width. */
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
  int threads = nn_get_num_threads();
  if (threads < 2 || n < PARALLEL_ELEMENTS || !gotoblas_pthread) return 1;
  return threads > MAX_PIECES ? MAX_PIECES : threads;
}

/* pieces of whole 64-byte lines (16 floats), so no two threads share one */
static int64_t piece_length(int64_t n, int count) {
  int64_t each = (n + count - 1) / count;
  return (each + 15) & ~(int64_t)15;
}

/* ---- SGD ------------------------------------------------------------- */
/* torch/optim/sgd.py: d = grad (negated when maximizing) (+ wd p);
   buf = d on the first step (no dampening), then m buf + (1 - dampening) d;
   d = nesterov ? d + m buf : buf; p -= lr d. */
int nn_sgd_step(nn_tensor *param, nn_tensor **momentum_buffer, const nn_sgd_options *o) {
  if (!param->grad) return 0; /* a parameter that took no part in the loss */
  if (check_param("sgd", param) < 0) return -1;
  int64_t n = nn_numel(param);
  int first = 0;
  nn_tensor *buf = NULL;
  if (o->momentum != 0) {
    /* a new buffer is filled by the first step itself: no need to zero it */
    first = *momentum_buffer == NULL;
    state_buffer bufs[] = {{"momentum_buffer", momentum_buffer, 0}};
    if (prepare_buffers("sgd", param, bufs, 1) < 0) return -1;
    buf = *momentum_buffer;
  }
  double sign = o->maximize ? -1 : 1;
  if (param->dtype == NN_FLOAT32) {
    float *p = nn_data(param), *b = buf ? nn_data(buf) : NULL;
    const float *g = nn_data(param->grad);
    float lr = (float)o->lr, wd = (float)o->weight_decay, m = (float)o->momentum;
    float damp = (float)(1 - o->dampening);
    if (!b && wd == 0 && sign == 1) { /* plain SGD: one vectorisable loop */
      for (int64_t i = 0; i < n; i++) p[i] = p[i] + -lr * g[i];
      nn_bump_version(param);
      return 0;
    }
    for (int64_t i = 0; i < n; i++) {
      float d = (float)sign * g[i];
      if (wd != 0) d = d + wd * p[i];
      if (b) {
        b[i] = first ? d : m * b[i] + damp * d;
        d = o->nesterov ? d + m * b[i] : b[i];
      }
      p[i] = p[i] + -lr * d;
    }
  } else {
    double *p = nn_data(param), *b = buf ? nn_data(buf) : NULL;
    const double *g = nn_data(param->grad);
    for (int64_t i = 0; i < n; i++) {
      double d = sign * g[i];
      if (o->weight_decay != 0) d = d + o->weight_decay * p[i];
      if (b) {
        b[i] = first ? d : o->momentum * b[i] + (1 - o->dampening) * d;
        d = o->nesterov ? d + o->momentum * b[i] : b[i];
      }
      p[i] = p[i] + -o->lr * d;
    }
  }
  nn_bump_version(param);
  return 0;
}

/* ---- Adam and AdamW -------------------------------------------------- */
/* torch/optim/adam.py and adamw.py (the non-capturable branch):
     g = grad (negated when maximizing); Adam: g += wd p; AdamW: p *= 1 - lr wd
     m = beta1 m + (1 - beta1) g;  v = beta2 v + (1 - beta2) g g
     amsgrad: vmax = max(vmax, v), used in place of v
     p += -(lr / (1 - beta1^t)) m / (sqrt(v) / sqrt(1 - beta2^t) + eps) */
/* The loop below for the common configurations, with restrict pointers
   and no branch: m = beta1 m + (1 - beta1) g, v = beta2 v + (1 - beta2) g g,
   p = p decay - step_size m / (sqrt(v) / sqrt(bc2) + eps), in its order. */
WIDEST_VECTORS static void adam_plain_f32(int64_t n, float *restrict p, float *restrict m, float *restrict v,
                           const float *restrict grad, float decay, float beta1,
                           float one_minus_beta1, float beta2, float one_minus_beta2,
                           float bc2_sqrt, float eps, float neg_step_size) {
  for (int64_t i = 0; i < n; i++) {
    float g = grad[i];
    float pi = p[i] * decay;
    float mi = m[i] * beta1 + one_minus_beta1 * g;
    float vi = v[i] * beta2 + one_minus_beta2 * g * g;
    m[i] = mi;
    v[i] = vi;
    p[i] = pi + neg_step_size * mi / (sqrtf(vi) / bc2_sqrt + eps);
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

static void adam_plain_parallel(int64_t n, float *p, float *m, float *v, const float *grad,
                                float decay, float beta1, float one_minus_beta1, float beta2,
                                float one_minus_beta2, float bc2_sqrt, float eps,
                                float neg_step_size) {
  adam_piece pieces[MAX_PIECES];
  int count = piece_count(n);
  int64_t each = piece_length(n, count), first = 0;
  for (int i = 0; i < count; i++, first += each) {
    int64_t len = n - first < each ? n - first : each;
    pieces[i] = (adam_piece){len, p + first, m + first, v + first, grad + first, decay, beta1,
                             one_minus_beta1, beta2, one_minus_beta2, bc2_sqrt, eps,
                             neg_step_size};
  }
  if (count == 1) adam_piece_run(&pieces[0]);
  else gotoblas_pthread(count, (void *)adam_piece_run, pieces, (int)sizeof pieces[0]);
}

int nn_adam_step(nn_tensor *param, nn_adam_state *state, const nn_adam_options *o) {
  const char *op = o->decoupled_weight_decay ? "adamw" : "adam";
  if (!param->grad) return 0;
  if (check_param(op, param) < 0) return -1;
  state_buffer bufs[] = {{"exp_avg", &state->exp_avg, 0},
                         {"exp_avg_sq", &state->exp_avg_sq, 0},
                         {"max_exp_avg_sq", &state->max_exp_avg_sq, 0}};
  if (prepare_buffers(op, param, bufs, o->amsgrad ? 3 : 2) < 0) return -1;
  int64_t step = state->step + 1;
  /* the step's scalars, in double as Python computes them */
  double bias_correction1 = 1 - pow(o->beta1, (double)step);
  double bias_correction2 = 1 - pow(o->beta2, (double)step);
  double step_size = o->lr / bias_correction1;
  double bias_correction2_sqrt = sqrt(bias_correction2);
  int coupled_decay = o->weight_decay != 0 && !o->decoupled_weight_decay;
  int decoupled_decay = o->weight_decay != 0 && o->decoupled_weight_decay;
  int maximize = o->maximize;
  int64_t n = nn_numel(param);
  if (param->dtype == NN_FLOAT32) {
    float *p = nn_data(param), *m = nn_data(state->exp_avg), *v = nn_data(state->exp_avg_sq);
    float *vmax = o->amsgrad ? nn_data(state->max_exp_avg_sq) : NULL;
    const float *grad = nn_data(param->grad);
    const float beta1 = (float)o->beta1, one_minus_beta1 = (float)(1 - o->beta1);
    const float beta2 = (float)o->beta2, one_minus_beta2 = (float)(1 - o->beta2);
    const float wd = (float)o->weight_decay, decay = (float)(1 - o->lr * o->weight_decay);
    const float bc2_sqrt = (float)bias_correction2_sqrt, eps = (float)o->eps;
    const float neg_step_size = (float)-step_size;
    if (!vmax && !maximize && !coupled_decay) {
      /* Adam without weight decay, and AdamW: one branch-free loop that the
         compiler vectorises (p * 1 is exact when there is no decay). */
      adam_plain_parallel(n, p, m, v, grad, decoupled_decay ? decay : 1.0f, beta1,
                          one_minus_beta1, beta2, one_minus_beta2, bc2_sqrt, eps, neg_step_size);
      state->step = step;
      nn_bump_version(param);
      return 0;
    }
    for (int64_t i = 0; i < n; i++) {
      float g = maximize ? -grad[i] : grad[i];
      if (coupled_decay) g = g + wd * p[i];
      if (decoupled_decay) p[i] = p[i] * decay;
      m[i] = m[i] * beta1 + one_minus_beta1 * g;
      v[i] = v[i] * beta2 + one_minus_beta2 * g * g;
      float second = v[i];
      if (vmax) second = vmax[i] = maximum_f(vmax[i], v[i]);
      float denom = sqrtf(second) / bc2_sqrt + eps;
      p[i] = p[i] + neg_step_size * m[i] / denom;
    }
  } else {
    double *p = nn_data(param), *m = nn_data(state->exp_avg), *v = nn_data(state->exp_avg_sq);
    double *vmax = o->amsgrad ? nn_data(state->max_exp_avg_sq) : NULL;
    const double *grad = nn_data(param->grad);
    const double beta1 = o->beta1, one_minus_beta1 = 1 - o->beta1;
    const double beta2 = o->beta2, one_minus_beta2 = 1 - o->beta2;
    const double wd = o->weight_decay, decay = 1 - o->lr * o->weight_decay;
    const double eps = o->eps, neg_step_size = -step_size;
    for (int64_t i = 0; i < n; i++) {
      double g = maximize ? -grad[i] : grad[i];
      if (coupled_decay) g = g + wd * p[i];
      if (decoupled_decay) p[i] = p[i] * decay;
      m[i] = m[i] * beta1 + one_minus_beta1 * g;
      v[i] = v[i] * beta2 + one_minus_beta2 * g * g;
      double second = v[i];
      if (vmax) second = vmax[i] = maximum_d(vmax[i], v[i]);
      double denom = sqrt(second) / bias_correction2_sqrt + eps;
      p[i] = p[i] + neg_step_size * m[i] / denom;
    }
  }
  state->step = step;
  nn_bump_version(param);
  return 0;
}

/* ---- RMSprop --------------------------------------------------------- */
/* torch/optim/rmsprop.py:
     g = grad (negated when maximizing) (+ wd p)
     sq = alpha sq + (1 - alpha) g g
     centered: ga = alpha ga + (1 - alpha) g; avg = sqrt(sq - ga ga) + eps
     otherwise avg = sqrt(sq) + eps
     momentum > 0: buf = momentum buf + g / avg; p += -lr buf
     otherwise p += -lr g / avg */
/* sq = alpha sq + (1 - alpha) g g; p += -lr g / (sqrt(sq) + eps), with
   restrict pointers and no branch so that it runs four or more lanes wide. */
WIDEST_VECTORS static void rmsprop_plain_f32(int64_t n, float *restrict p, float *restrict sq,
                              const float *restrict grad, float alpha, float one_minus_alpha,
                              float eps, float neg_lr) {
  for (int64_t i = 0; i < n; i++) {
    float g = grad[i];
    float s = sq[i] * alpha + one_minus_alpha * g * g;
    sq[i] = s;
    p[i] = p[i] + neg_lr * g / (sqrtf(s) + eps);
  }
}

/* A large parameter's loop is split over the BLAS pool's threads (the
   engine's only threads: nothing competes with the products), in pieces
   of whole cache lines; each element is computed as on one thread. */
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

static void rmsprop_plain_parallel(int64_t n, float *p, float *sq, const float *grad, float alpha,
                                   float one_minus_alpha, float eps, float neg_lr) {
  rmsprop_piece pieces[MAX_PIECES];
  int count = piece_count(n);
  int64_t each = piece_length(n, count), first = 0;
  for (int i = 0; i < count; i++, first += each) {
    int64_t len = n - first < each ? n - first : each;
    pieces[i] = (rmsprop_piece){len, p + first, sq + first, grad + first, alpha, one_minus_alpha,
                                eps, neg_lr};
  }
  if (count == 1) rmsprop_piece_run(&pieces[0]);
  else gotoblas_pthread(count, (void *)rmsprop_piece_run, pieces, (int)sizeof pieces[0]);
}

int nn_rmsprop_step(nn_tensor *param, nn_rmsprop_state *state, const nn_rmsprop_options *o) {
  if (!param->grad) return 0;
  if (check_param("rmsprop", param) < 0) return -1;
  int use_momentum = o->momentum > 0, centered = o->centered;
  /* only the buffers this configuration uses are checked and made */
  state_buffer bufs[3];
  int nbufs = 0;
  bufs[nbufs++] = (state_buffer){"square_avg", &state->square_avg, 0};
  if (use_momentum) bufs[nbufs++] = (state_buffer){"momentum_buffer", &state->momentum_buffer, 0};
  if (centered) bufs[nbufs++] = (state_buffer){"grad_avg", &state->grad_avg, 0};
  if (prepare_buffers("rmsprop", param, bufs, nbufs) < 0) return -1;
  int maximize = o->maximize, decay = o->weight_decay != 0;
  int64_t n = nn_numel(param);
  if (param->dtype == NN_FLOAT32) {
    float *p = nn_data(param), *sq = nn_data(state->square_avg);
    float *buf = use_momentum ? nn_data(state->momentum_buffer) : NULL;
    float *ga = centered ? nn_data(state->grad_avg) : NULL;
    const float *grad = nn_data(param->grad);
    const float alpha = (float)o->alpha, one_minus_alpha = (float)(1 - o->alpha);
    const float wd = (float)o->weight_decay, eps = (float)o->eps;
    const float momentum = (float)o->momentum, neg_lr = (float)-o->lr;
    if (!buf && !ga && !decay && !maximize) {
      /* The plain configuration (the Keras default) as a branch-free loop
         that the compiler vectorises: same operations, same order. */
      rmsprop_plain_parallel(n, p, sq, grad, alpha, one_minus_alpha, eps, neg_lr);
      state->step++;
      nn_bump_version(param);
      return 0;
    }
    for (int64_t i = 0; i < n; i++) {
      float g = maximize ? -grad[i] : grad[i];
      if (decay) g = g + wd * p[i];
      sq[i] = sq[i] * alpha + one_minus_alpha * g * g;
      float avg;
      if (ga) {
        ga[i] = ga[i] * alpha + one_minus_alpha * g;
        avg = sqrtf(sq[i] + -1.0f * ga[i] * ga[i]);
      } else {
        avg = sqrtf(sq[i]);
      }
      avg = avg + eps;
      if (buf) {
        buf[i] = buf[i] * momentum + g / avg;
        p[i] = p[i] + neg_lr * buf[i];
      } else {
        p[i] = p[i] + neg_lr * g / avg;
      }
    }
  } else {
    double *p = nn_data(param), *sq = nn_data(state->square_avg);
    double *buf = use_momentum ? nn_data(state->momentum_buffer) : NULL;
    double *ga = centered ? nn_data(state->grad_avg) : NULL;
    const double *grad = nn_data(param->grad);
    const double alpha = o->alpha, one_minus_alpha = 1 - o->alpha;
    const double wd = o->weight_decay, eps = o->eps, momentum = o->momentum, neg_lr = -o->lr;
    for (int64_t i = 0; i < n; i++) {
      double g = maximize ? -grad[i] : grad[i];
      if (decay) g = g + wd * p[i];
      sq[i] = sq[i] * alpha + one_minus_alpha * g * g;
      double avg;
      if (ga) {
        ga[i] = ga[i] * alpha + one_minus_alpha * g;
        avg = sqrt(sq[i] + -1.0 * ga[i] * ga[i]);
      } else {
        avg = sqrt(sq[i]);
      }
      avg = avg + eps;
      if (buf) {
        buf[i] = buf[i] * momentum + g / avg;
        p[i] = p[i] + neg_lr * buf[i];
      } else {
        p[i] = p[i] + neg_lr * g / avg;
      }
    }
  }
  state->step++;
  nn_bump_version(param);
  return 0;
}

/* ---- Adagrad --------------------------------------------------------- */
/* torch/optim/adagrad.py (dense gradients):
     g = grad (negated when maximizing) (+ wd p)
     clr = lr / (1 + (t - 1) lr_decay)
     sum += g g;  p += -clr g / (sqrt(sum) + eps) */
int nn_adagrad_step(nn_tensor *param, nn_adagrad_state *state, const nn_adagrad_options *o) {
  if (!param->grad) return 0;
  if (check_param("adagrad", param) < 0) return -1;
  state_buffer bufs[] = {{"sum", &state->sum, o->initial_accumulator_value}};
  if (prepare_buffers("adagrad", param, bufs, 1) < 0) return -1;
  int64_t step = state->step + 1;
  double clr = o->lr / (1 + ((double)step - 1) * o->lr_decay);
  int maximize = o->maximize, decay = o->weight_decay != 0;
  int64_t n = nn_numel(param);
  if (param->dtype == NN_FLOAT32) {
    float *p = nn_data(param), *sum = nn_data(state->sum);
    const float *grad = nn_data(param->grad);
    const float wd = (float)o->weight_decay, eps = (float)o->eps, neg_clr = (float)-clr;
    for (int64_t i = 0; i < n; i++) {
      float g = maximize ? -grad[i] : grad[i];
      if (decay) g = g + wd * p[i];
      sum[i] = sum[i] + g * g;
      float std = sqrtf(sum[i]) + eps;
      p[i] = p[i] + neg_clr * g / std;
    }
  } else {
    double *p = nn_data(param), *sum = nn_data(state->sum);
    const double *grad = nn_data(param->grad);
    const double wd = o->weight_decay, eps = o->eps, neg_clr = -clr;
    for (int64_t i = 0; i < n; i++) {
      double g = maximize ? -grad[i] : grad[i];
      if (decay) g = g + wd * p[i];
      sum[i] = sum[i] + g * g;
      double std = sqrt(sum[i]) + eps;
      p[i] = p[i] + neg_clr * g / std;
    }
  }
  state->step = step;
  nn_bump_version(param);
  return 0;
}

/* ---- gradient clipping ----------------------------------------------- */
/* A gradient clipping may scale or clamp in place: CPU, floating point,
   and no two elements sharing one memory location. */
static int check_clip_grad(const char *op, const nn_tensor *g) {
  if (nn_check_cpu(op, g) < 0) return -1;
  if (!nn_dtype_is_floating(g->dtype)) {
    nn_error_set("%s: a gradient is %s; gradients must be floating point", op,
                 nn_dtype_name(g->dtype));
    return -1;
  }
  for (int d = 0; d < g->ndim; d++) {
    if (g->stride[d] == 0 && g->size[d] > 1) {
      nn_error_set("%s: a gradient is an expanded view (elements share memory) and cannot be "
                   "changed in place", op);
      return -1;
    }
  }
  return 0;
}

/* The norm_type-norm of one gradient, accumulated in double. */
static double grad_norm(const nn_tensor *g, double norm_type) {
  int64_t n = nn_numel(g);
  double acc = 0;
  int is_inf = isinf(norm_type);
  if (nn_is_contiguous(g) && g->dtype == NN_FLOAT32 && norm_type == 2) {
    const float *x = nn_data(g);
    for (int64_t i = 0; i < n; i++) acc += (double)x[i] * x[i];
    return sqrt(acc);
  }
  for (int64_t i = 0; i < n; i++) {
    double x = fabs(nn_get_flat(g, i));
    if (is_inf) acc = x > acc || x != x ? x : acc;
    else acc += norm_type == 2 ? x * x : norm_type == 1 ? x : pow(x, norm_type);
  }
  if (is_inf || norm_type == 1) return acc;
  return norm_type == 2 ? sqrt(acc) : pow(acc, 1 / norm_type);
}

/* g *= c, in g's dtype (a float32 product of two floats rounds the same
   whether computed in float or in double). */
static void scale_grad(nn_tensor *g, double c) {
  int64_t n = nn_numel(g);
  if (nn_is_contiguous(g) && g->dtype == NN_FLOAT32) {
    float *x = nn_data(g), cf = (float)c;
    for (int64_t i = 0; i < n; i++) x[i] = x[i] * cf;
  } else if (nn_is_contiguous(g) && g->dtype == NN_FLOAT64) {
    double *x = nn_data(g);
    for (int64_t i = 0; i < n; i++) x[i] = x[i] * c;
  } else {
    if (g->dtype == NN_FLOAT32) c = (float)c;
    for (int64_t i = 0; i < n; i++) nn_set_flat(g, i, nn_get_flat(g, i) * c);
  }
  nn_bump_version(g);
}

/* torch/nn/utils/clip_grad.py: each gradient's norm, then the norm of
   those norms (each rounded to the gradients' dtype, as the stacked norms
   are in PyTorch); clip_coef = max_norm / (total + 1e-6), which PyTorch
   evaluates as reciprocal(total + 1e-6) * max_norm in the total's dtype,
   clamped at 1 and applied to every gradient, even when it is 1. */
int nn_clip_grad_norm(nn_tensor *const *params, int64_t n, double max_norm, double norm_type,
                      int error_if_nonfinite, double *total_norm) {
  const char *op = "clip_grad_norm_";
  *total_norm = 0;
  if (!(norm_type > 0)) {
    nn_error_set("%s: norm_type must be positive or inf, got %g", op, norm_type);
    return -1;
  }
  if (!(max_norm >= 0)) {
    nn_error_set("%s: max_norm must be a non-negative number, got %g", op, max_norm);
    return -1;
  }
  int any = 0, all_float32 = 1;
  for (int64_t k = 0; k < n; k++) {
    nn_tensor *g = params[k]->grad;
    if (!g) continue;
    if (check_clip_grad(op, g) < 0) return -1;
    any = 1;
    if (g->dtype != NN_FLOAT32) all_float32 = 0;
  }
  if (!any) return 0;
  int is_inf = isinf(norm_type);
  double acc = 0;
  for (int64_t k = 0; k < n; k++) {
    nn_tensor *g = params[k]->grad;
    if (!g) continue;
    double norm = grad_norm(g, norm_type);
    if (all_float32) norm = (float)norm;
    if (is_inf) acc = norm > acc || norm != norm ? norm : acc;
    else acc += norm_type == 2 ? norm * norm : norm_type == 1 ? norm : pow(norm, norm_type);
  }
  double total = is_inf || norm_type == 1 ? acc
                 : norm_type == 2         ? sqrt(acc)
                                          : pow(acc, 1 / norm_type);
  double coef;
  if (all_float32) {
    float total_f = (float)total;
    total = total_f;
    coef = (1.0f / (total_f + 1e-6f)) * (float)max_norm;
  } else {
    coef = (1.0 / (total + 1e-6)) * max_norm;
  }
  *total_norm = total;
  if (error_if_nonfinite && !isfinite(total)) {
    nn_error_set("%s: the total norm of order %g of the gradients is non-finite (%g), so they "
                 "cannot be clipped; pass error_if_nonfinite = false to scale them anyway",
                 op, norm_type, total);
    return -1;
  }
  if (coef > 1) coef = 1; /* torch.clamp(max=1): a NaN stays NaN */
  for (int64_t k = 0; k < n; k++) {
    if (params[k]->grad) scale_grad(params[k]->grad, coef);
  }
  return 0;
}

/* torch/nn/utils/clip_grad.py: grad.clamp_(-v, v) for each gradient. */
int nn_clip_grad_value(nn_tensor *const *params, int64_t n, double clip_value) {
  const char *op = "clip_grad_value_";
  if (!(clip_value >= 0)) {
    nn_error_set("%s: clip_value must be a non-negative number, got %g", op, clip_value);
    return -1;
  }
  for (int64_t k = 0; k < n; k++) {
    if (params[k]->grad && check_clip_grad(op, params[k]->grad) < 0) return -1;
  }
  for (int64_t k = 0; k < n; k++) {
    nn_tensor *g = params[k]->grad;
    if (!g) continue;
    int64_t count = nn_numel(g);
    if (nn_is_contiguous(g) && g->dtype == NN_FLOAT32) {
      float *x = nn_data(g), hi = (float)clip_value, lo = -hi;
      /* clamp as PyTorch's: a NaN stays NaN */
      for (int64_t i = 0; i < count; i++) x[i] = x[i] < lo ? lo : x[i] > hi ? hi : x[i];
    } else {
      double hi = g->dtype == NN_FLOAT32 ? (float)clip_value : clip_value, lo = -hi;
      for (int64_t i = 0; i < count; i++) {
        double x = nn_get_flat(g, i);
        nn_set_flat(g, i, x < lo ? lo : x > hi ? hi : x);
      }
    }
    nn_bump_version(g);
  }
  return 0;
}

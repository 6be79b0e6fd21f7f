/* cpu/activation.c: the activations forward and backward, softmax and
 * log_softmax along a dim, and PReLU. Formulas: math/activation.h. */
#include "cpu/cpu.h"
#include "math/activation.h"
#include "math/exp.h"

#include <stdlib.h>

/* ---- elementwise activations ---------------------------------------- */
/* The loops below are called with op a constant (forward_run and
   backward_run spell every case out), so that once inlined the switch
   folds away and each op gets a loop of its own that the compiler can
   vectorise; a switch inside one shared loop would cost a branch per
   element. */
static inline void forward_loop(nn_activation_op op, nn_dtype dtype, int64_t n, const void *x,
                                void *y, double a, double b) {
  if (dtype == NN_FLOAT32) {
    const float *xf = x;
    float *yf = y;
    for (int64_t i = 0; i < n; i++) yf[i] = (float)nn_activation_value(op, xf[i], a, b);
  } else {
    const double *xd = x;
    double *yd = y;
    for (int64_t i = 0; i < n; i++) yd[i] = nn_activation_value(op, xd[i], a, b);
  }
}

/* gi = g op'(x), all contiguous and of one dtype. */
static inline void backward_loop(nn_activation_op op, nn_dtype dtype, int64_t n, const void *g,
                                 const void *x, void *gi, double a, double b) {
  if (dtype == NN_FLOAT32) {
    const float *gf = g, *xf = x;
    float *of = gi;
    for (int64_t i = 0; i < n; i++) of[i] = (float)(gf[i] * nn_activation_derivative(op, xf[i], a, b));
  } else {
    const double *gd = g, *xd = x;
    double *od = gi;
    for (int64_t i = 0; i < n; i++) od[i] = gd[i] * nn_activation_derivative(op, xd[i], a, b);
  }
}

static void forward_run(nn_activation_op op, nn_dtype dt, int64_t n, const void *x, void *y,
                        double a, double b) {
  switch (op) {
  case NN_ACT_LEAKY_RELU: forward_loop(NN_ACT_LEAKY_RELU, dt, n, x, y, a, b); break;
  case NN_ACT_ELU: forward_loop(NN_ACT_ELU, dt, n, x, y, a, b); break;
  case NN_ACT_SELU: forward_loop(NN_ACT_SELU, dt, n, x, y, a, b); break;
  case NN_ACT_SILU: forward_loop(NN_ACT_SILU, dt, n, x, y, a, b); break;
  case NN_ACT_GELU: forward_loop(NN_ACT_GELU, dt, n, x, y, a, b); break;
  case NN_ACT_GELU_TANH: forward_loop(NN_ACT_GELU_TANH, dt, n, x, y, a, b); break;
  case NN_ACT_SOFTPLUS: forward_loop(NN_ACT_SOFTPLUS, dt, n, x, y, a, b); break;
  case NN_ACT_MISH: forward_loop(NN_ACT_MISH, dt, n, x, y, a, b); break;
  case NN_ACT_HARDTANH: forward_loop(NN_ACT_HARDTANH, dt, n, x, y, a, b); break;
  case NN_ACT_HARDSIGMOID: forward_loop(NN_ACT_HARDSIGMOID, dt, n, x, y, a, b); break;
  case NN_ACT_LOG_SIGMOID: forward_loop(NN_ACT_LOG_SIGMOID, dt, n, x, y, a, b); break;
  case NN_ACT_HARDSWISH: forward_loop(NN_ACT_HARDSWISH, dt, n, x, y, a, b); break;
  case NN_ACT_CELU: forward_loop(NN_ACT_CELU, dt, n, x, y, a, b); break;
  case NN_ACT_SOFTSHRINK: forward_loop(NN_ACT_SOFTSHRINK, dt, n, x, y, a, b); break;
  case NN_ACT_HARDSHRINK: forward_loop(NN_ACT_HARDSHRINK, dt, n, x, y, a, b); break;
  case NN_ACT_TANHSHRINK: forward_loop(NN_ACT_TANHSHRINK, dt, n, x, y, a, b); break;
  case NN_ACT_THRESHOLD: forward_loop(NN_ACT_THRESHOLD, dt, n, x, y, a, b); break;
  default: forward_loop(NN_ACT_SOFTSIGN, dt, n, x, y, a, b); break;
  }
}

static void backward_run(nn_activation_op op, nn_dtype dt, int64_t n, const void *g,
                         const void *x, void *gi, double a, double b) {
  switch (op) {
  case NN_ACT_LEAKY_RELU: backward_loop(NN_ACT_LEAKY_RELU, dt, n, g, x, gi, a, b); break;
  case NN_ACT_ELU: backward_loop(NN_ACT_ELU, dt, n, g, x, gi, a, b); break;
  case NN_ACT_SELU: backward_loop(NN_ACT_SELU, dt, n, g, x, gi, a, b); break;
  case NN_ACT_SILU: backward_loop(NN_ACT_SILU, dt, n, g, x, gi, a, b); break;
  case NN_ACT_GELU: backward_loop(NN_ACT_GELU, dt, n, g, x, gi, a, b); break;
  case NN_ACT_GELU_TANH: backward_loop(NN_ACT_GELU_TANH, dt, n, g, x, gi, a, b); break;
  case NN_ACT_SOFTPLUS: backward_loop(NN_ACT_SOFTPLUS, dt, n, g, x, gi, a, b); break;
  case NN_ACT_MISH: backward_loop(NN_ACT_MISH, dt, n, g, x, gi, a, b); break;
  case NN_ACT_HARDTANH: backward_loop(NN_ACT_HARDTANH, dt, n, g, x, gi, a, b); break;
  case NN_ACT_HARDSIGMOID: backward_loop(NN_ACT_HARDSIGMOID, dt, n, g, x, gi, a, b); break;
  case NN_ACT_LOG_SIGMOID: backward_loop(NN_ACT_LOG_SIGMOID, dt, n, g, x, gi, a, b); break;
  case NN_ACT_HARDSWISH: backward_loop(NN_ACT_HARDSWISH, dt, n, g, x, gi, a, b); break;
  case NN_ACT_CELU: backward_loop(NN_ACT_CELU, dt, n, g, x, gi, a, b); break;
  case NN_ACT_SOFTSHRINK: backward_loop(NN_ACT_SOFTSHRINK, dt, n, g, x, gi, a, b); break;
  case NN_ACT_HARDSHRINK: backward_loop(NN_ACT_HARDSHRINK, dt, n, g, x, gi, a, b); break;
  case NN_ACT_TANHSHRINK: backward_loop(NN_ACT_TANHSHRINK, dt, n, g, x, gi, a, b); break;
  case NN_ACT_THRESHOLD: backward_loop(NN_ACT_THRESHOLD, dt, n, g, x, gi, a, b); break;
  default: backward_loop(NN_ACT_SOFTSIGN, dt, n, g, x, gi, a, b); break;
  }
}

struct activation_ctx { nn_activation_op op; nn_dtype dtype; double a, b; };

/* (y, x): one dtype; a run of stride 1 takes the op's own loop */
static void activation_inner(void *vctx, int64_t n, char **data, const int64_t *st) {
  const struct activation_ctx *c = vctx;
  if (st[0] == 1 && st[1] == 1) {
    forward_run(c->op, c->dtype, n, data[1], data[0], c->a, c->b);
    return;
  }
  for (int64_t i = 0; i < n; i++)
    nn_store(c->dtype, data[0], i * st[0],
             nn_activation_value(c->op, nn_load(c->dtype, data[1], i * st[1]), c->a, c->b));
}

int nn_cpu_activation(nn_activation_op op, const nn_iter *it, double a, double b) {
  struct activation_ctx c = {op, it->dtype[0], a, b};
  nn_iter_run_parallel(it, activation_inner, &c, 1);
  return 0;
}

/* (gi, g, x) */
static void activation_backward_inner(void *vctx, int64_t n, char **data, const int64_t *st) {
  const struct activation_ctx *c = vctx;
  if (st[0] == 1 && st[1] == 1 && st[2] == 1) {
    backward_run(c->op, c->dtype, n, data[1], data[2], data[0], c->a, c->b);
    return;
  }
  for (int64_t i = 0; i < n; i++) {
    double g = nn_load(c->dtype, data[1], i * st[1]), x = nn_load(c->dtype, data[2], i * st[2]);
    nn_store(c->dtype, data[0], i * st[0], g * nn_activation_derivative(c->op, x, c->a, c->b));
  }
}

int nn_cpu_activation_backward(nn_activation_op op, const nn_iter *it, double a, double b) {
  struct activation_ctx c = {op, it->dtype[0], a, b};
  nn_iter_run_parallel(it, activation_backward_inner, &c, 1);
  return 0;
}

/* ---- softmax and log_softmax ------------------------------------------ */
/* One line of n elements, x and y strides apart. Called with dt a constant
   (lines_typed), so that nn_load and nn_store compile to typed accesses. */
static inline __attribute__((always_inline)) void softmax_line(nn_dtype dt, const char *x, int64_t xs, char *y, int64_t ys, int64_t n,
                                int log_form) {
  double m = -INFINITY;
  for (int64_t j = 0; j < n; j++) m = nn_softmax_max_step(m, nn_load(dt, x, j * xs));
  double sum = 0;
  if (log_form) {
    for (int64_t j = 0; j < n; j++) sum += exp(nn_load(dt, x, j * xs) - m);
    double shift = m + log(sum);
    for (int64_t j = 0; j < n; j++) nn_store(dt, y, j * ys, nn_load(dt, x, j * xs) - shift);
  } else { /* each exp once: kept in y, then scaled */
    for (int64_t j = 0; j < n; j++) {
      double e = exp(nn_load(dt, x, j * xs) - m);
      sum += e;
      nn_store(dt, y, j * ys, e);
    }
    for (int64_t j = 0; j < n; j++) nn_store(dt, y, j * ys, nn_load(dt, y, j * ys) / sum);
  }
}

/* float32 takes its exps in float (nn_exp_f32, branch-free), as PyTorch's
   float32 softmax does, the sum in double; glibc's exp in double was one
   call per element and most of the op's time. The exps go to y first, in a
   loop of their own that vectorises (the sum in double, in order, cannot).
   One formula for every stride, so that a strided line gives the
   contiguous line's values; stride 1 is inlined apart to vectorise. */
static inline __attribute__((always_inline)) void softmax_line_f32(const float *x, int64_t xs, float *y, int64_t ys, int64_t n,
                                    int log_form) {
  float m = -INFINITY;
  for (int64_t j = 0; j < n; j++) m = x[j * xs] > m || isnan(x[j * xs]) ? x[j * xs] : m;
  for (int64_t j = 0; j < n; j++) y[j * ys] = nn_exp_f32(x[j * xs] - m);
  double sum = 0;
  for (int64_t j = 0; j < n; j++) sum += y[j * ys];
  if (log_form) {
    double shift = m + log(sum);
    for (int64_t j = 0; j < n; j++) y[j * ys] = (float)(x[j * xs] - shift);
  } else {
    for (int64_t j = 0; j < n; j++) y[j * ys] = (float)(y[j * ys] / sum);
  }
}

static inline __attribute__((always_inline)) void softmax_line_f32_any(const float *x, int64_t xs, float *y, int64_t ys, int64_t n,
                                 int log_form) {
  if (xs == 1 && ys == 1) softmax_line_f32(x, 1, y, 1, n, log_form);
  else softmax_line_f32(x, xs, y, ys, n, log_form);
}

static inline __attribute__((always_inline)) void softmax_backward_line(nn_dtype dt, const char *g, int64_t gs, const char *y,
                                         int64_t ys, char *gi, int64_t is, int64_t n, int log_form) {
  double acc = 0;
  if (log_form) {
    for (int64_t j = 0; j < n; j++) acc += nn_load(dt, g, j * gs);
    for (int64_t j = 0; j < n; j++)
      nn_store(dt, gi, j * is, nn_log_softmax_grad(nn_load(dt, g, j * gs), nn_load(dt, y, j * ys), acc));
  } else {
    for (int64_t j = 0; j < n; j++) acc += nn_load(dt, g, j * gs) * nn_load(dt, y, j * ys);
    for (int64_t j = 0; j < n; j++)
      nn_store(dt, gi, j * is, nn_softmax_grad(nn_load(dt, g, j * gs), nn_load(dt, y, j * ys), acc));
  }
}

struct softmax_ctx { const nn_reduce_geom *r; int log_form, backward; };

static inline __attribute__((always_inline)) void lines_typed(nn_dtype dt, const struct softmax_ctx *c, int64_t count, char **data,
                               const int64_t *st) {
  const nn_reduce_geom *r = c->r;
  int64_t n = r->rdims ? r->rsize[0] : 1, es = (int64_t)nn_element_size(dt);
  const int64_t *rs = r->rdims ? r->rstride[0] : NULL;
  for (int64_t p = 0; p < count; p++) {
    if (c->backward)
      softmax_backward_line(dt, data[1] + p * st[1] * es, rs ? rs[1] : 0, data[2] + p * st[2] * es,
                            rs ? rs[2] : 0, data[0] + p * st[0] * es, rs ? rs[0] : 0, n, c->log_form);
    else if (dt == NN_FLOAT32)
      softmax_line_f32_any((const float *)(data[1] + p * st[1] * es), rs ? rs[1] : 0,
                           (float *)(data[0] + p * st[0] * es), rs ? rs[0] : 0, n, c->log_form);
    else
      softmax_line(dt, data[1] + p * st[1] * es, rs ? rs[1] : 0, data[0] + p * st[0] * es,
                   rs ? rs[0] : 0, n, c->log_form);
  }
}

/* compiled for baseline x86-64, AVX2 and AVX-512 (NN_CPU_CLONES: the same
   C without contraction, so the same bits; the line functions above are
   inlined into each) */
NN_CPU_CLONES static void softmax_inner(void *vctx, int64_t count, char **data, const int64_t *st) {
  const struct softmax_ctx *c = vctx;
  if (c->r->it.dtype[0] == NN_FLOAT32) lines_typed(NN_FLOAT32, c, count, data, st);
  else lines_typed(NN_FLOAT64, c, count, data, st);
}

int nn_cpu_softmax(const nn_reduce_geom *r, int log_form) {
  struct softmax_ctx c = {r, log_form, 0};
  nn_iter_run_parallel(&r->it, softmax_inner, &c, line_length(r));
  return 0;
}

int nn_cpu_softmax_backward(const nn_reduce_geom *r, int log_form) {
  struct softmax_ctx c = {r, log_form, 1};
  nn_iter_run_parallel(&r->it, softmax_inner, &c, line_length(r));
  return 0;
}

/* ---- PReLU -------------------------------------------------------------- */
int nn_cpu_prelu(const nn_prelu_args *a) {
  nn_dtype dt = a->dtype;
  for (int64_t i = 0; i < a->n; i++) {
    double w = nn_load(dt, a->weight, nn_prelu_channel(i, a->channels, a->inner));
    nn_store(dt, a->out, i, nn_prelu_value(nn_load(dt, a->x, i), w));
  }
  return 0;
}

int nn_cpu_prelu_backward(const nn_prelu_args *a) {
  nn_dtype dt = a->dtype;
  double *acc = a->gw ? calloc((size_t)a->channels, sizeof *acc) : NULL;
  if (a->gw && !acc) {
    nn_error_set("prelu backward: out of memory");
    return -1;
  }
  for (int64_t i = 0; i < a->n; i++) {
    double x = nn_load(dt, a->x, i), g = nn_load(dt, a->g, i);
    int64_t c = nn_prelu_channel(i, a->channels, a->inner);
    if (a->gx) nn_store(dt, a->gx, i, nn_prelu_grad_input(x, nn_load(dt, a->weight, c), g));
    if (acc && !(x > 0)) acc[c] += nn_prelu_grad_weight(x, g);
  }
  if (acc)
    for (int64_t c = 0; c < a->channels; c++) nn_store(dt, a->gw, c, acc[c]);
  free(acc);
  return 0;
}

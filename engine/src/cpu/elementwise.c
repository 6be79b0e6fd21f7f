/* cpu/elementwise.c: binary ops (tensor op tensor, tensor op number),
 * unary ops and their derivatives, clamp and the select-style gradients,
 * over the strided iterator. float32 and float64 operands of one dtype run
 * typed loops (contiguous float32 ones that vectorise); mixed dtypes go
 * through nn_load/nn_store, computing in the dtype promotion chose. */
#include "cpu/cpu.h"
#include "cpu/vector.h"
#include "math/elementwise.h"

/* ---- binary ----------------------------------------------------------- */
/* data[0] = out, data[1] = a, data[2] = b (absent for a number) */
typedef struct {
  nn_binary_op op;
  nn_dtype compute, out, a, b;
  int has_b;
  double scalar;     /* the number, when there is no b */
  int scalar_first;  /* number op a */
  int *divided_by_zero; /* set by an integer fmod or remainder by 0 */
} binary_ctx;

static inline double scalar_apply(const binary_ctx *k, double x) {
  if (k->scalar_first) return nn_binary_apply(k->op, k->scalar, x);
  return k->op == NN_POW ? nn_pow_number(x, k->scalar) : nn_binary_apply(k->op, x, k->scalar);
}
static inline float scalar_apply_f(const binary_ctx *k, float x, float s) {
  if (k->scalar_first) return nn_binary_apply_in(k->compute, k->op, s, x);
  return k->op == NN_POW ? nn_pow_number_f(x, s) : nn_binary_apply_in(k->compute, k->op, x, s);
}

/* Any dtypes: each element converted to the compute dtype, computed there
   (so float32 x > 0.1 compares with 0.1 rounded to float32, as PyTorch),
   stored in out's. */
static void binary_mixed(const binary_ctx *k, int64_t n, char **data, const int64_t *st) {
  if (k->compute == NN_FLOAT32 || nn_half_dtype(k->compute)) {
    /* the half types compute in float32 on a number rounded to their own
       precision, as PyTorch's kernels do */
    float s = (float)nn_round_to(k->compute, k->scalar);
    for (int64_t i = 0; i < n; i++) {
      float x = (float)nn_load(k->a, data[1], i * st[1]);
      float v = k->has_b ? nn_binary_apply_in(k->compute, k->op, x, (float)nn_load(k->b, data[2], i * st[2]))
                         : scalar_apply_f(k, x, s);
      nn_store(k->out, data[0], i * st[0], v);
    }
  } else if (k->compute == NN_FLOAT64) {
    for (int64_t i = 0; i < n; i++) {
      double x = nn_load(k->a, data[1], i * st[1]);
      double v = k->has_b ? nn_binary_apply(k->op, x, nn_load(k->b, data[2], i * st[2]))
                          : scalar_apply(k, x);
      nn_store(k->out, data[0], i * st[0], v);
    }
  } else {
    int64_t s = nn_double_to_int64(k->scalar); /* a number in an integer op: whole, saturated */
    for (int64_t i = 0; i < n; i++) {
      int64_t x = nn_load_integer(k->a, data[1], i * st[1]);
      int64_t y = k->has_b ? nn_load_integer(k->b, data[2], i * st[2]) : s;
      if (nn_integer_divides(k->op) && (k->scalar_first ? x : y) == 0) /* pieces may meet here */
        __atomic_store_n(k->divided_by_zero, 1, __ATOMIC_RELAXED);
      int64_t v = k->scalar_first ? nn_integer_apply(k->op, y, x) : nn_integer_apply(k->op, x, y);
      nn_store_integer(k->out, data[0], i * st[0], v);
    }
  }
}

/* Comparisons of float32 tensors and logical ops of bool ones, over
   contiguous data: loops that vectorise (16 bools an SSE2 instruction, 32
   in the AVX2 and AVX-512 clones: exact ops, the same bools in each), the
   values binary_mixed gives. 0 for the others. */
NN_CPU_CLONES static int bool_result_contiguous(const binary_ctx *k, int64_t n, char **data) {
  unsigned char *o = (unsigned char *)data[0];
  if (k->a == NN_FLOAT32 && k->b == NN_FLOAT32 && k->compute == NN_FLOAT32) {
    const float *x = (const float *)data[1], *y = (const float *)data[2];
    switch (k->op) {
    case NN_EQ: for (int64_t i = 0; i < n; i++) o[i] = x[i] == y[i]; return 1;
    case NN_NE: for (int64_t i = 0; i < n; i++) o[i] = x[i] != y[i]; return 1;
    case NN_GT: for (int64_t i = 0; i < n; i++) o[i] = x[i] > y[i]; return 1;
    case NN_GE: for (int64_t i = 0; i < n; i++) o[i] = x[i] >= y[i]; return 1;
    case NN_LT: for (int64_t i = 0; i < n; i++) o[i] = x[i] < y[i]; return 1;
    case NN_LE: for (int64_t i = 0; i < n; i++) o[i] = x[i] <= y[i]; return 1;
    default: return 0;
    }
  }
  if (k->a == NN_BOOL && k->b == NN_BOOL) {
    const unsigned char *x = (const unsigned char *)data[1], *y = (const unsigned char *)data[2];
    switch (k->op) {
    case NN_LOGICAL_AND: for (int64_t i = 0; i < n; i++) o[i] = (x[i] != 0) & (y[i] != 0); return 1;
    case NN_LOGICAL_OR: for (int64_t i = 0; i < n; i++) o[i] = (x[i] != 0) | (y[i] != 0); return 1;
    case NN_LOGICAL_XOR: for (int64_t i = 0; i < n; i++) o[i] = (x[i] != 0) ^ (y[i] != 0); return 1;
    case NN_EQ: for (int64_t i = 0; i < n; i++) o[i] = (x[i] != 0) == (y[i] != 0); return 1;
    case NN_NE: for (int64_t i = 0; i < n; i++) o[i] = (x[i] != 0) != (y[i] != 0); return 1;
    default: return 0;
    }
  }
  return 0;
}

static void binary_inner(void *vctx, int64_t n, char **data, const int64_t *st) {
  const binary_ctx *k = vctx;
  nn_binary_op op = k->op;
  if (k->has_b && k->out == NN_FLOAT32 && k->a == NN_FLOAT32 && k->b == NN_FLOAT32) {
    float *o = (float *)data[0];
    const float *x = (const float *)data[1], *y = (const float *)data[2];
    if (st[0] == 1 && st[1] == 1 && st[2] == 1 && nn_cpu_vector_best()->binary((int)op, n, x, y, 0, o)) {
    } else if (st[0] == 1 && st[1] == 1 && st[2] == 0 && nn_cpu_vector_best()->binary((int)op, n, x, NULL, *y, o)) {
      /* b broadcast along the run (x - mean, x / std over a row): the
         number form, the same float op on the same values */
    } else {
      for (int64_t i = 0; i < n; i++) o[i * st[0]] = nn_binary_apply_f(op, x[i * st[1]], y[i * st[2]]);
    }
  } else if (!k->has_b && k->out == NN_FLOAT32 && k->a == NN_FLOAT32) {
    float *o = (float *)data[0];
    const float *x = (const float *)data[1], s = (float)k->scalar;
    /* scalar_apply_f's tests, taken out of the loop by hand */
    if (!k->scalar_first && st[0] == 1 && st[1] == 1 && nn_cpu_vector_best()->binary((int)op, n, x, NULL, s, o))
      return;
    if (k->scalar_first)
      for (int64_t i = 0; i < n; i++) o[i * st[0]] = nn_binary_apply_f(op, s, x[i * st[1]]);
    else if (op == NN_POW)
      for (int64_t i = 0; i < n; i++) o[i * st[0]] = nn_pow_number_f(x[i * st[1]], s);
    else
      for (int64_t i = 0; i < n; i++) o[i * st[0]] = nn_binary_apply_f(op, x[i * st[1]], s);
  } else if (k->has_b && k->out == NN_BOOL && st[0] == 1 && st[1] == 1 && st[2] == 1 &&
             bool_result_contiguous(k, n, data)) {
  } else if (!k->has_b && op == NN_ADD && k->compute == NN_INT64 && k->out == NN_INT64 &&
             k->a == NN_INT64) {
    /* what every 1-based index the binding hands out costs (sort, max, ...) */
    int64_t *o = (int64_t *)data[0];
    const int64_t *x = (const int64_t *)data[1];
    uint64_t s = (uint64_t)nn_double_to_int64(k->scalar);
    for (int64_t i = 0; i < n; i++) o[i * st[0]] = nn_wrap_integer((uint64_t)x[i * st[1]] + s);
  } else if (k->has_b && k->out == NN_FLOAT64 && k->a == NN_FLOAT64 && k->b == NN_FLOAT64) {
    double *o = (double *)data[0];
    const double *x = (const double *)data[1], *y = (const double *)data[2];
    for (int64_t i = 0; i < n; i++) o[i * st[0]] = nn_binary_apply(op, x[i * st[1]], y[i * st[2]]);
  } else {
    binary_mixed(k, n, data, st);
  }
}

static int binary_status(const binary_ctx *k) {
  if (!*k->divided_by_zero) return 0;
  nn_error_set("%s: integer division by zero (ZeroDivisionError)", nn_integer_division_name(k->op));
  return -1;
}

int nn_cpu_binary(nn_binary_op op, nn_dtype compute, const nn_iter *it) {
  int divided_by_zero = 0;
  binary_ctx k = {op, compute, it->dtype[0], it->dtype[1], it->dtype[2], 1, 0, 0, &divided_by_zero};
  nn_iter_run_parallel(it, binary_inner, &k, 1);
  return binary_status(&k);
}

int nn_cpu_binary_number(nn_binary_op op, nn_dtype compute, const nn_iter *it, double s,
                         int scalar_first) {
  int divided_by_zero = 0;
  binary_ctx k = {op, compute, it->dtype[0], it->dtype[1], it->dtype[1], 0, s, scalar_first,
                  &divided_by_zero};
  nn_iter_run_parallel(it, binary_inner, &k, 1);
  return binary_status(&k);
}

/* ---- unary ------------------------------------------------------------- */
struct unary_ctx { nn_unary_op op; nn_dtype out, a; };

/* isnan, isinf, isfinite of contiguous float32: loops that vectorise */
static int float_test_contiguous(nn_unary_op op, int64_t n, const float *x, unsigned char *o) {
  switch (op) {
  case NN_ISNAN: for (int64_t i = 0; i < n; i++) o[i] = x[i] != x[i]; return 1;
  case NN_ISINF: for (int64_t i = 0; i < n; i++) o[i] = fabsf(x[i]) == INFINITY; return 1;
  case NN_ISFINITE: for (int64_t i = 0; i < n; i++) o[i] = fabsf(x[i]) < INFINITY; return 1;
  default: return 0;
  }
}

static void unary_inner(void *vctx, int64_t n, char **data, const int64_t *st) {
  const struct unary_ctx *c = vctx;
  if (c->out == NN_FLOAT32 && c->a == NN_FLOAT32) {
    float *o = (float *)data[0];
    const float *x = (const float *)data[1];
    nn_cpu_map_f32 loop = nn_cpu_unary_loop_of(nn_cpu_vector_best(), (int)c->op, c->out, c->a, st);
    if (loop) {
      loop(n, x, o);
    } else if (st[0] == 1 && st[1] == 1 && nn_cpu_vector_best()->unary((int)c->op, n, x, o)) {
    } else {
      for (int64_t i = 0; i < n; i++) o[i * st[0]] = nn_unary_apply_f(c->op, x[i * st[1]]);
    }
  } else if (c->out == NN_FLOAT64 && c->a == NN_FLOAT64) {
    double *o = (double *)data[0];
    const double *x = (const double *)data[1];
    for (int64_t i = 0; i < n; i++) o[i * st[0]] = nn_unary_apply(c->op, x[i * st[1]]);
  } else if (c->out == NN_BOOL && c->a == NN_FLOAT32 && st[0] == 1 && st[1] == 1 &&
             float_test_contiguous(c->op, n, (const float *)data[1], (unsigned char *)data[0])) {
  } else if (nn_half_dtype(c->out)) { /* computed in float32, rounded on the way out */
    for (int64_t i = 0; i < n; i++)
      nn_store(c->out, data[0], i * st[0], nn_unary_apply_f(c->op, (float)nn_load(c->a, data[1], i * st[1])));
  } else {
    for (int64_t i = 0; i < n; i++)
      nn_store(c->out, data[0], i * st[0], nn_unary_apply(c->op, nn_load(c->a, data[1], i * st[1])));
  }
}

int nn_cpu_unary(nn_unary_op op, const nn_iter *it) {
  struct unary_ctx c = {op, it->dtype[0], it->dtype[1]};
  nn_iter_run_parallel(it, unary_inner, &c, 1);
  return 0;
}

/* (gi, g, v): one fused loop; relu selects (nn_relu_grad), the others
   multiply by the derivative. */
static void unary_grad_inner(void *vctx, int64_t n, char **data, const int64_t *st) {
  nn_unary_op op = *(const nn_unary_op *)vctx;
  int out_mode = nn_unary_grad_reads_output(op);
  /* data: grad_in, g, y (sigmoid) or x (relu) -- the hot path of every
     sigmoid or relu network */
  nn_cpu_grad_f32 loop = nn_cpu_unary_grad_loop_of(nn_cpu_vector_best(), (int)op, NN_FLOAT32, st);
  if (loop) {
    loop(n, (const float *)data[1], (const float *)data[2], (float *)data[0]);
    return;
  }
  for (int64_t i = 0; i < n; i++) {
    float g = ((const float *)data[1])[i * st[1]], v = ((const float *)data[2])[i * st[2]];
    ((float *)data[0])[i * st[0]] =
        op == NN_RELU ? (float)nn_relu_grad(g, v)
                      : g * (float)nn_unary_derivative(op, out_mode ? 0 : v, out_mode ? v : 0);
  }
}

static void unary_grad_inner_d(void *vctx, int64_t n, char **data, const int64_t *st) {
  nn_unary_op op = *(const nn_unary_op *)vctx;
  int out_mode = nn_unary_grad_reads_output(op);
  for (int64_t i = 0; i < n; i++) {
    double g = ((const double *)data[1])[i * st[1]], v = ((const double *)data[2])[i * st[2]];
    ((double *)data[0])[i * st[0]] =
        op == NN_RELU ? nn_relu_grad(g, v)
                      : g * nn_unary_derivative(op, out_mode ? 0 : v, out_mode ? v : 0);
  }
}

int nn_cpu_unary_backward(nn_unary_op op, const nn_iter *it) {
  nn_iter_run_parallel(it, it->dtype[0] == NN_FLOAT32 ? unary_grad_inner : unary_grad_inner_d, &op, 1);
  return 0;
}

/* ---- clamp --------------------------------------------------------------- */
struct clamp_ctx { nn_dtype out, a; double lo, hi; };

/* Contiguous float32, compiled for baseline x86-64, AVX2 and AVX-512: the
   strided loop below stayed scalar (2.3 instructions an element at 1e6
   under AVX2, clamp_min 1.3x PyTorch's time). In place (o == x) is a loop
   of its own: the other one's overlap check would send it to the scalar
   version. */
NN_CPU_CLONES static void clamp_contiguous_f32(int64_t n, float *o, const float *x, float lo, float hi) {
  if (o == x) {
    for (int64_t i = 0; i < n; i++) o[i] = nn_clamp_value_f(o[i], lo, hi);
    return;
  }
  for (int64_t i = 0; i < n; i++) o[i] = nn_clamp_value_f(x[i], lo, hi);
}

static void clamp_inner(void *vctx, int64_t n, char **data, const int64_t *st) {
  const struct clamp_ctx *c = vctx;
  if (c->out == NN_FLOAT32 && c->a == NN_FLOAT32) {
    float *o = (float *)data[0], lo = (float)c->lo, hi = (float)c->hi;
    const float *x = (const float *)data[1];
    if (st[0] == 1 && st[1] == 1) {
      clamp_contiguous_f32(n, o, x, lo, hi);
      return;
    }
    for (int64_t i = 0; i < n; i++) o[i * st[0]] = nn_clamp_value_f(x[i * st[1]], lo, hi);
    return;
  }
  for (int64_t i = 0; i < n; i++)
    nn_store(c->out, data[0], i * st[0], nn_clamp_value(nn_load(c->a, data[1], i * st[1]), c->lo, c->hi));
}

int nn_cpu_clamp(const nn_iter *it, double lo, double hi) {
  struct clamp_ctx c = {it->dtype[0], it->dtype[1], lo, hi};
  nn_iter_run_parallel(it, clamp_inner, &c, 1);
  return 0;
}

/* ---- the select-style gradients ----------------------------------------- */
struct pointwise_grad_ctx { nn_pointwise_grad_op op; const nn_dtype *dtype; int n; double lo, hi; };

static void pointwise_grad_inner(void *vctx, int64_t n, char **data, const int64_t *st) {
  const struct pointwise_grad_ctx *c = vctx;
  const nn_dtype *dt = c->dtype;
  for (int64_t i = 0; i < n; i++) {
    double g = nn_load(dt[1], data[1], i * st[1]), x = nn_load(dt[2], data[2], i * st[2]);
    double y = c->n > 3 ? nn_load(dt[3], data[3], i * st[3]) : 0, out = 0;
    if (c->op == NN_GRAD_POW_EXPONENT) out = nn_pointwise_power(dt[0], x, y);
    else if (c->op == NN_GRAD_NUMBER_BASE) out = nn_pointwise_power(dt[0], c->lo, x);
    nn_store(dt[0], data[0], i * st[0], nn_pointwise_grad_value(c->op, g, x, y, out, c->lo, c->hi));
  }
}

int nn_cpu_pointwise_grad(nn_pointwise_grad_op op, const nn_iter *it, double lo, double hi) {
  struct pointwise_grad_ctx c = {op, it->dtype, it->n, lo, hi};
  nn_iter_run_parallel(it, pointwise_grad_inner, &c, 1);
  return 0;
}

/* ---- nan_to_num ------------------------------------------------------------ */
struct nan_to_num_ctx { nn_dtype out, a; double nan, posinf, neginf; };

static void nan_to_num_inner(void *vctx, int64_t n, char **data, const int64_t *st) {
  const struct nan_to_num_ctx *c = vctx;
  if (c->out == NN_FLOAT32 && c->a == NN_FLOAT32 && st[0] == 1 && st[1] == 1) {
    /* selects that vectorise; the replacements rounded as nn_store would */
    float *o = (float *)data[0], nan = (float)c->nan, posinf = (float)c->posinf, neginf = (float)c->neginf;
    const float *x = (const float *)data[1];
    for (int64_t i = 0; i < n; i++) {
      float v = x[i], r = v == INFINITY ? posinf : v;
      r = v == -INFINITY ? neginf : r;
      o[i] = v != v ? nan : r;
    }
    return;
  }
  for (int64_t i = 0; i < n; i++)
    nn_store(c->out, data[0], i * st[0],
             nn_nan_to_num_value(nn_load(c->a, data[1], i * st[1]), c->nan, c->posinf, c->neginf));
}


int nn_cpu_nan_to_num(const nn_iter *it, double nan, double posinf, double neginf) {
  struct nan_to_num_ctx c = {it->dtype[0], it->dtype[1], nan, posinf, neginf};
  nn_iter_run_parallel(it, nan_to_num_inner, &c, 1);
  return 0;
}

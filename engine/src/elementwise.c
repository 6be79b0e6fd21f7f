/* elementwise.c: binary ops with broadcasting, unary ops and clamp; each
 * backward beside its forward. float32 and float64 run typed loops; mixed
 * and integer dtypes go through double. */
#include "internal.h"

#include <stdint.h>

static const char *const binary_names[] = {"add", "sub", "mul", "div", "pow", "maximum", "minimum",
                                           "gt",  "ge",  "lt",  "le",  "eq",  "ne"};
static const char *const unary_names[] = {"neg",  "exp",  "log",  "sqrt", "abs",
                                          "sigmoid", "tanh", "relu", "step", "sin",
                                          "cos",  "sign", "floor", "ceil", "round"};

/* The in-place forms' names, for their messages. */
static const char *const binary_inplace_names[] = {"add_", "sub_", "mul_", "div_", "pow_",
                                                   "maximum_", "minimum_", "gt_", "ge_", "lt_",
                                                   "le_", "eq_", "ne_"};
static const char *const unary_inplace_names[] = {
    "neg_", "exp_", "log_", "sqrt_", "abs_", "sigmoid_", "tanh_", "relu_",
    "step_", "sin_", "cos_", "sign_", "floor_", "ceil_", "round_"};

const char *nn_binary_op_name(nn_binary_op op) { return binary_names[op]; }
const char *nn_unary_op_name(nn_unary_op op) { return unary_names[op]; }

static int is_comparison(nn_binary_op op) { return op >= NN_GT; }

static int dtype_rank(nn_dtype d) {
  switch (d) {
  case NN_BOOL: return 0;
  case NN_INT64: return 1;
  case NN_FLOAT32: return 2;
  default: return 3;
  }
}

/* The dtype an arithmetic op computes in, PyTorch's promotion rules cut
   down to our four dtypes: floats win, and division is always true. */
static nn_dtype result_dtype(nn_binary_op op, nn_dtype a, nn_dtype b) {
  nn_dtype d = dtype_rank(a) >= dtype_rank(b) ? a : b;
  if (is_comparison(op)) return NN_BOOL;
  if (!nn_dtype_is_floating(d) && op == NN_DIV) return NN_FLOAT32;
  if (d == NN_BOOL) return NN_INT64;
  return d;
}

static nn_dtype scalar_result_dtype(nn_binary_op op, nn_dtype a, double s) {
  if (is_comparison(op)) return NN_BOOL;
  if (nn_dtype_is_floating(a)) return a;
  if (op == NN_DIV || floor(s) != s || isinf(s)) return NN_FLOAT32;
  return NN_INT64;
}

/* ---- scalar formulas ------------------------------------------------- */
static inline double binary_apply(nn_binary_op op, double x, double y) {
  switch (op) {
  case NN_ADD: return x + y;
  case NN_SUB: return x - y;
  case NN_MUL: return x * y;
  case NN_DIV: return x / y;
  case NN_POW: return pow(x, y);
  case NN_MAXIMUM: return (x > y || isnan(x)) ? x : y;
  case NN_MINIMUM: return (x < y || isnan(x)) ? x : y;
  case NN_GT: return x > y;
  case NN_GE: return x >= y;
  case NN_LT: return x < y;
  case NN_LE: return x <= y;
  case NN_EQ: return x == y;
  default: return x != y;
  }
}

static inline float binary_apply_f(nn_binary_op op, float x, float y) {
  switch (op) {
  case NN_ADD: return x + y;
  case NN_SUB: return x - y;
  case NN_MUL: return x * y;
  case NN_DIV: return x / y;
  case NN_POW: return powf(x, y);
  default: return (float)binary_apply(op, x, y);
  }
}

/* sigmoid in the form that never overflows: exp of a non-positive number. */
static inline double sigmoid_d(double x) {
  if (x >= 0) return 1.0 / (1.0 + exp(-x));
  double e = exp(x);
  return e / (1.0 + e);
}
static inline float sigmoid_f(float x) {
  if (x >= 0) return 1.0f / (1.0f + expf(-x));
  float e = expf(x);
  return e / (1.0f + e);
}

static inline double unary_apply(nn_unary_op op, double x) {
  switch (op) {
  case NN_NEG: return -x;
  case NN_EXP: return exp(x);
  case NN_LOG: return log(x);
  case NN_SQRT: return sqrt(x);
  case NN_ABS: return fabs(x);
  case NN_SIGMOID: return sigmoid_d(x);
  case NN_TANH: return tanh(x);
  case NN_RELU: return x > 0 ? x : (isnan(x) ? x : 0);
  case NN_STEP: return x > 0 ? 1 : 0;
  case NN_SIN: return sin(x);
  case NN_COS: return cos(x);
  case NN_SIGN: return x > 0 ? 1 : (x < 0 ? -1 : 0);
  case NN_FLOOR: return floor(x);
  case NN_CEIL: return ceil(x);
  default: return nearbyint(x); /* round half to even, as PyTorch */
  }
}

static inline float unary_apply_f(nn_unary_op op, float x) {
  switch (op) {
  case NN_NEG: return -x;
  case NN_EXP: return expf(x);
  case NN_LOG: return logf(x);
  case NN_SQRT: return sqrtf(x);
  case NN_ABS: return fabsf(x);
  case NN_SIGMOID: return sigmoid_f(x);
  case NN_TANH: return tanhf(x);
  case NN_RELU: return x > 0 ? x : (isnan(x) ? x : 0);
  default: return (float)unary_apply(op, x);
  }
}

#if defined(__GNUC__) && !defined(__clang__)
/* The selects below are branch-free only when comparisons are not treated
   as trapping (see nn_exp_f32 in internal.h). */
#pragma GCC push_options
#pragma GCC optimize("no-trapping-math")
#endif
/* sigmoid over an array, vectorisable: e = exp(-|x|), then 1/(1+e) or
   e/(1+e) by the sign, the form that never overflows. */
static void sigmoid_array_f32(int64_t n, const float *x, float *out) {
  for (int64_t i = 0; i < n; i++) {
    float v = x[i], a = v < 0 ? -v : v;
    float e = nn_exp_f32(-a), s = 1.0f / (1.0f + e), es = e * s;
    float r = v >= 0 ? s : es; /* selects between values computed above: */
    out[i] = v == v ? r : v;   /* no branch, so the loop vectorises */
  }
}

/* relu over an array: x where x > 0 or x is NaN (PyTorch propagates NaN),
   else 0. One compare and a select per lane, so the loop vectorises. */
static void relu_array_f32(int64_t n, const float *restrict x, float *restrict out) {
  for (int64_t i = 0; i < n; i++) {
    float v = x[i];
    out[i] = v <= 0 ? 0.0f : v;
  }
}

/* relu's backward over arrays: g times relu's derivative (1 where x > 0,
   else 0), multiplied, not selected, so that 0 * inf stays NaN as in
   unary_derivative. */
static void relu_grad_array_f32(int64_t n, const float *restrict g, const float *restrict x,
                                float *restrict gi) {
  for (int64_t i = 0; i < n; i++) gi[i] = g[i] * (x[i] > 0 ? 1.0f : 0.0f);
}
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC pop_options
#endif

/* ---- kernels --------------------------------------------------------- */
struct binary_ctx {
  nn_binary_op op;
  double scalar;
  int scalar_first;
};

/* data[0] = out, data[1] = a, data[2] = b (absent for scalar ops) */
typedef struct {
  struct binary_ctx base;
  nn_dtype out, a, b;
  int has_b;
} kernel_ctx;

static void kernel_inner(void *vctx, int64_t n, char **data, const int64_t *st) {
  const kernel_ctx *k = vctx;
  nn_binary_op op = k->base.op;
  if (k->has_b && k->out == NN_FLOAT32 && k->a == NN_FLOAT32 && k->b == NN_FLOAT32) {
    float *o = (float *)data[0];
    const float *x = (const float *)data[1], *y = (const float *)data[2];
    if (st[0] == 1 && st[1] == 1 && st[2] == 1 && op == NN_ADD) {
      for (int64_t i = 0; i < n; i++) o[i] = x[i] + y[i];
    } else if (st[0] == 1 && st[1] == 1 && st[2] == 1 && op == NN_MUL) {
      for (int64_t i = 0; i < n; i++) o[i] = x[i] * y[i];
    } else {
      for (int64_t i = 0; i < n; i++) o[i * st[0]] = binary_apply_f(op, x[i * st[1]], y[i * st[2]]);
    }
  } else if (!k->has_b && k->out == NN_FLOAT32 && k->a == NN_FLOAT32) {
    float *o = (float *)data[0];
    const float *x = (const float *)data[1], s = (float)k->base.scalar;
    if (k->base.scalar_first)
      for (int64_t i = 0; i < n; i++) o[i * st[0]] = binary_apply_f(op, s, x[i * st[1]]);
    else
      for (int64_t i = 0; i < n; i++) o[i * st[0]] = binary_apply_f(op, x[i * st[1]], s);
  } else if (k->has_b && k->out == NN_FLOAT64 && k->a == NN_FLOAT64 && k->b == NN_FLOAT64) {
    double *o = (double *)data[0];
    const double *x = (const double *)data[1], *y = (const double *)data[2];
    for (int64_t i = 0; i < n; i++) o[i * st[0]] = binary_apply(op, x[i * st[1]], y[i * st[2]]);
  } else if (k->has_b) {
    for (int64_t i = 0; i < n; i++) {
      double v = binary_apply(op, nn_load(k->a, data[1], i * st[1]), nn_load(k->b, data[2], i * st[2]));
      nn_store(k->out, data[0], i * st[0], v);
    }
  } else {
    double s = k->base.scalar;
    for (int64_t i = 0; i < n; i++) {
      double x = nn_load(k->a, data[1], i * st[1]);
      double v = k->base.scalar_first ? binary_apply(op, s, x) : binary_apply(op, x, s);
      nn_store(k->out, data[0], i * st[0], v);
    }
  }
}

/* out = a op b, written into out (already shaped). */
static void run_binary(nn_binary_op op, nn_tensor *out, nn_tensor *a, nn_tensor *b) {
  nn_iter it;
  nn_tensor *ts[3] = {out, a, b};
  nn_iter_init(&it, 3, ts, out->ndim, out->size);
  kernel_ctx k = {{op, 0, 0}, out->dtype, a->dtype, b->dtype, 1};
  nn_iter_run(&it, kernel_inner, &k);
}

static void run_binary_scalar(nn_binary_op op, nn_tensor *out, nn_tensor *a, double s,
                              int scalar_first) {
  nn_iter it;
  nn_tensor *ts[2] = {out, a};
  nn_iter_init(&it, 2, ts, out->ndim, out->size);
  kernel_ctx k = {{op, s, scalar_first}, out->dtype, a->dtype, a->dtype, 0};
  nn_iter_run(&it, kernel_inner, &k);
}

/* ---- binary: forward and backward ------------------------------------ */
static int binary_backward(nn_node *node, nn_tensor *g, nn_tensor **gi);

static int check_devices(const char *op, nn_tensor *a, nn_tensor *b) {
  if (a->device != b->device) {
    nn_error_set("%s: tensors are on different devices (%s and %s)", op,
                 nn_device_name(a->device), nn_device_name(b->device));
    return -1;
  }
  return nn_check_cpu(op, a);
}

static int check_dtypes(const char *op, nn_tensor *a, nn_tensor *b) {
  /* Autograd works in one dtype: mixing float32 and float64 in a graph
     would hand a leaf a gradient of the wrong dtype. */
  if ((a->requires_grad || b->requires_grad) && nn_grad_enabled() && a->dtype != b->dtype &&
      nn_dtype_is_floating(a->dtype) && nn_dtype_is_floating(b->dtype)) {
    nn_error_set("%s: operands are %s and %s; convert one (float() or double()) first", op,
                 nn_dtype_name(a->dtype), nn_dtype_name(b->dtype));
    return -1;
  }
  return 0;
}

nn_tensor *nn_binary(nn_binary_op op, nn_tensor *a, nn_tensor *b) {
  const char *name = binary_names[op];
  int ndim;
  int64_t size[NN_MAX_DIMS];
  if (check_devices(name, a, b) < 0 || check_dtypes(name, a, b) < 0) return NULL;
  if (nn_broadcast_shape(name, a, b, &ndim, size) < 0) return NULL;
  nn_tensor *out = nn_empty_like_shape(a, result_dtype(op, a->dtype, b->dtype), ndim, size);
  if (!out) return NULL;
  run_binary(op, out, a, b);
  if (!is_comparison(op) && nn_needs_grad(a, b, NULL)) {
    static const char *const node_names[] = {"AddBackward0", "SubBackward0", "MulBackward0",
                                             "DivBackward0", "PowBackward1", "MaximumBackward0",
                                             "MinimumBackward0"};
    nn_node *node = nn_node_attach(out, node_names[op], binary_backward, 2, a, b, NULL);
    if (!node) goto fail;
    node->ints[0] = op;
    if (op != NN_ADD && op != NN_SUB) {
      nn_node_save(node, 0, a);
      nn_node_save(node, 1, b);
    }
    if (op == NN_POW) nn_node_save_output(node, 2, out);
  }
  return out;
fail:
  nn_release(out);
  return NULL;
}

/* The gradient of one operand, summed down to the operand's shape. */
static int reduce_to(nn_tensor **g, const nn_tensor *like) {
  if (!*g) return -1;
  if (nn_same_shape(*g, like)) return 0;
  nn_tensor *r = nn_sum_to_shape(*g, like->ndim, like->size);
  nn_release(*g);
  *g = r;
  return r ? 0 : -1;
}

static int binary_backward(nn_node *node, nn_tensor *g, nn_tensor **gi) {
  nn_binary_op op = (nn_binary_op)node->ints[0];
  nn_tensor *a = node->saved[0], *b = node->saved[1];
  nn_tensor *ia = node->inputs[0], *ib = node->inputs[1];
  switch (op) {
  case NN_ADD:
    if (ia) gi[0] = nn_retain(g);
    if (ib) gi[1] = nn_retain(g);
    break;
  case NN_SUB:
    if (ia) gi[0] = nn_retain(g);
    if (ib) gi[1] = nn_unary(NN_NEG, g);
    break;
  case NN_MUL: /* d(ab) = b da + a db */
    if (ia) gi[0] = nn_binary(NN_MUL, g, b);
    if (ib) gi[1] = nn_binary(NN_MUL, g, a);
    break;
  case NN_DIV: /* d(a/b) = da/b - a db/b^2 */
    if (ia) gi[0] = nn_binary(NN_DIV, g, b);
    if (ib) {
      nn_tensor *q = nn_binary(NN_DIV, a, b), *q2 = q ? nn_binary(NN_DIV, q, b) : NULL;
      nn_tensor *t = q2 ? nn_binary(NN_MUL, g, q2) : NULL;
      gi[1] = t ? nn_unary(NN_NEG, t) : NULL;
      nn_release(q), nn_release(q2), nn_release(t);
    }
    break;
  case NN_POW: { /* d(a^b) = b a^(b-1) da + a^b log(a) db */
    nn_tensor *out = node->saved[2];
    if (ia) {
      nn_tensor *bm1 = nn_binary_scalar(NN_SUB, b, 1, 0);
      nn_tensor *p = bm1 ? nn_binary(NN_POW, a, bm1) : NULL;
      nn_tensor *bp = p ? nn_binary(NN_MUL, b, p) : NULL;
      gi[0] = bp ? nn_binary(NN_MUL, g, bp) : NULL;
      nn_release(bm1), nn_release(p), nn_release(bp);
    }
    if (ib) {
      nn_tensor *la = nn_unary(NN_LOG, a), *t = la ? nn_binary(NN_MUL, out, la) : NULL;
      gi[1] = t ? nn_binary(NN_MUL, g, t) : NULL;
      nn_release(la), nn_release(t);
    }
    break;
  }
  default: { /* maximum/minimum: the winner takes the gradient, a tie splits it */
    nn_binary_op win = op == NN_MAXIMUM ? NN_GT : NN_LT;
    nn_tensor *wa = nn_binary(win, a, b), *tie = nn_binary(NN_EQ, a, b);
    nn_tensor *half = tie ? nn_binary_scalar(NN_MUL, tie, 0.5, 0) : NULL;
    for (int k = 0; k < 2; k++) {
      if (!(k ? ib : ia)) continue;
      nn_tensor *w = k ? nn_binary(win, b, a) : nn_retain(wa);
      nn_tensor *m = w && half ? nn_binary(NN_ADD, w, half) : NULL;
      nn_tensor *mt = m ? nn_to_dtype(m, g->dtype) : NULL;
      gi[k] = mt ? nn_binary(NN_MUL, g, mt) : NULL;
      nn_release(w), nn_release(m), nn_release(mt);
    }
    nn_release(wa), nn_release(tie), nn_release(half);
  }
  }
  if (ia && reduce_to(&gi[0], ia) < 0) return -1;
  if (ib && reduce_to(&gi[1], ib) < 0) return -1;
  return 0;
}

/* ---- binary with a number -------------------------------------------- */
static int binary_scalar_backward(nn_node *node, nn_tensor *g, nn_tensor **gi) {
  nn_binary_op op = (nn_binary_op)node->ints[0];
  int first = (int)node->ints[1];
  double s = node->scalar[0];
  nn_tensor *a = node->saved[0];
  switch (op) {
  case NN_ADD: gi[0] = nn_retain(g); break;
  case NN_SUB: gi[0] = first ? nn_unary(NN_NEG, g) : nn_retain(g); break;
  case NN_MUL: gi[0] = nn_binary_scalar(NN_MUL, g, s, 0); break;
  case NN_DIV:
    if (!first) {
      gi[0] = nn_binary_scalar(NN_DIV, g, s, 0);
    } else { /* d(s/a) = -s/a^2 */
      nn_tensor *a2 = nn_binary(NN_MUL, a, a), *q = a2 ? nn_binary_scalar(NN_DIV, a2, -s, 1) : NULL;
      gi[0] = q ? nn_binary(NN_MUL, g, q) : NULL;
      nn_release(a2), nn_release(q);
    }
    break;
  case NN_POW:
    if (!first) { /* d(a^s) = s a^(s-1) */
      nn_tensor *p = s == 2 ? nn_binary_scalar(NN_MUL, a, 2, 0) : nn_binary_scalar(NN_POW, a, s - 1, 0);
      if (p && s != 2) nn_binary_scalar_(NN_MUL, p, s);
      gi[0] = p ? nn_binary(NN_MUL, g, p) : NULL;
      nn_release(p);
    } else { /* d(s^a) = s^a log s */
      nn_tensor *p = nn_binary_scalar(NN_MUL, node->saved[1], log(s), 0);
      gi[0] = p ? nn_binary(NN_MUL, g, p) : NULL;
      nn_release(p);
    }
    break;
  default: { /* maximum/minimum with a number: pass where a wins, half on a tie */
    nn_tensor *w = nn_binary_scalar(op == NN_MAXIMUM ? NN_GT : NN_LT, a, s, 0);
    nn_tensor *tie = nn_binary_scalar(NN_EQ, a, s, 0);
    nn_tensor *half = tie ? nn_binary_scalar(NN_MUL, tie, 0.5, 0) : NULL;
    nn_tensor *m = w && half ? nn_binary(NN_ADD, w, half) : NULL;
    nn_tensor *mt = m ? nn_to_dtype(m, g->dtype) : NULL;
    gi[0] = mt ? nn_binary(NN_MUL, g, mt) : NULL;
    nn_release(w), nn_release(tie), nn_release(half), nn_release(m), nn_release(mt);
  }
  }
  return gi[0] ? 0 : -1;
}

nn_tensor *nn_binary_scalar(nn_binary_op op, nn_tensor *a, double s, int scalar_first) {
  const char *name = binary_names[op];
  if (nn_check_cpu(name, a) < 0) return NULL;
  nn_tensor *out = nn_empty_like_shape(a, scalar_result_dtype(op, a->dtype, s), a->ndim, a->size);
  if (!out) return NULL;
  run_binary_scalar(op, out, a, s, scalar_first);
  if (!is_comparison(op) && nn_needs_grad(a, NULL, NULL)) {
    /* PyTorch's names: x + 2 is AddBackward0, 2 - x RsubBackward1, 2 / x a
       reciprocal times 2 (MulBackward0), 2 ^ x PowBackward2 */
    static const char *const node_names[] = {"AddBackward0", "SubBackward0", "MulBackward0",
                                             "DivBackward0", "PowBackward0", "ClampMinBackward0",
                                             "ClampMaxBackward0"};
    const char *name = node_names[op];
    if (scalar_first && op == NN_SUB) name = "RsubBackward1";
    if (scalar_first && op == NN_DIV) name = "MulBackward0";
    if (scalar_first && op == NN_POW) name = "PowBackward2";
    nn_node *node = nn_node_attach(out, name, binary_scalar_backward, 1, a, NULL, NULL);
    if (!node) {
      nn_release(out);
      return NULL;
    }
    node->ints[0] = op;
    node->ints[1] = scalar_first;
    node->scalar[0] = s;
    if (op != NN_ADD && op != NN_SUB && op != NN_MUL) nn_node_save(node, 0, a);
    if (op == NN_POW && scalar_first) nn_node_save_output(node, 1, out);
  }
  return out;
}

/* ---- in place -------------------------------------------------------- */
static int check_inplace_dtype(const char *op, nn_dtype target, nn_dtype result) {
  if ((!nn_dtype_is_floating(target) && nn_dtype_is_floating(result)) ||
      (target == NN_BOOL && result != NN_BOOL)) {
    nn_error_set("%s: the result is %s and cannot be stored in place in a %s tensor", op,
                 nn_dtype_name(result), nn_dtype_name(target));
    return -1;
  }
  return 0;
}

/* In-place comparisons write 1 or 0; their gradient is zero. PyTorch's
   names: ...Backward0 with a number, ...Backward1 with a tensor. */
static const char *const comparison_node_names[2][6] = {
    {"GtBackward0", "GeBackward0", "LtBackward0", "LeBackward0", "EqBackward0", "NeBackward0"},
    {"GtBackward1", "GeBackward1", "LtBackward1", "LeBackward1", "EqBackward1", "NeBackward1"}};

static const char *inplace_zero_grad_name(nn_binary_op op, int with_tensor) {
  return is_comparison(op) ? comparison_node_names[with_tensor][op - NN_GT] : NULL;
}

int nn_binary_(nn_binary_op op, nn_tensor *a, nn_tensor *b) {
  const char *name = binary_inplace_names[op];
  int ndim;
  int64_t size[NN_MAX_DIMS];
  if (check_devices(name, a, b) < 0) return -1;
  if (nn_broadcast_shape(name, a, b, &ndim, size) < 0) return -1;
  if (ndim != a->ndim || nn_shape_numel(ndim, size) != nn_numel(a)) {
    char x[96], y[96];
    nn_error_set("%s: in place, the result must keep the shape %s, but %s broadcasts beyond it",
                 name, nn_shape_string(a, x, sizeof x), nn_shape_string(b, y, sizeof y));
    return -1;
  }
  if (check_inplace_dtype(name, a->dtype, result_dtype(op, a->dtype, b->dtype)) < 0) return -1;
  nn_inplace ip;
  int record = nn_inplace_begin(&ip, name, a, b, 0);
  if (record < 0) return -1;
  if (record) return nn_inplace_commit(&ip, nn_binary(op, ip.self, b), inplace_zero_grad_name(op, 1));
  run_binary(op, a, a, b);
  nn_bump_version(a);
  return 0;
}

int nn_binary_scalar_(nn_binary_op op, nn_tensor *a, double s) {
  const char *name = binary_inplace_names[op];
  if (nn_check_cpu(name, a) < 0) return -1;
  if (check_inplace_dtype(name, a->dtype, scalar_result_dtype(op, a->dtype, s)) < 0) return -1;
  nn_inplace ip;
  int record = nn_inplace_begin(&ip, name, a, NULL, 0);
  if (record < 0) return -1;
  if (record)
    return nn_inplace_commit(&ip, nn_binary_scalar(op, ip.self, s, 0), inplace_zero_grad_name(op, 0));
  run_binary_scalar(op, a, a, s, 0);
  nn_bump_version(a);
  return 0;
}

/* ---- unary ----------------------------------------------------------- */
struct unary_ctx { nn_unary_op op; nn_dtype out, a; double lo, hi; };

static void unary_inner(void *vctx, int64_t n, char **data, const int64_t *st) {
  const struct unary_ctx *c = vctx;
  if (c->out == NN_FLOAT32 && c->a == NN_FLOAT32) {
    float *o = (float *)data[0];
    const float *x = (const float *)data[1];
    if (c->op == NN_SIGMOID && st[0] == 1 && st[1] == 1) {
      sigmoid_array_f32(n, x, o);
    } else if (c->op == NN_RELU && st[0] == 1 && st[1] == 1 && o != x) {
      relu_array_f32(n, x, o);
    } else {
      for (int64_t i = 0; i < n; i++) o[i * st[0]] = unary_apply_f(c->op, x[i * st[1]]);
    }
  } else if (c->out == NN_FLOAT64 && c->a == NN_FLOAT64) {
    double *o = (double *)data[0];
    const double *x = (const double *)data[1];
    for (int64_t i = 0; i < n; i++) o[i * st[0]] = unary_apply(c->op, x[i * st[1]]);
  } else {
    for (int64_t i = 0; i < n; i++)
      nn_store(c->out, data[0], i * st[0], unary_apply(c->op, nn_load(c->a, data[1], i * st[1])));
  }
}

/* Ops that are exact on integers keep the dtype; the rest compute in float. */
static nn_dtype unary_dtype(nn_unary_op op, nn_dtype a) {
  if (nn_dtype_is_floating(a)) return a;
  switch (op) {
  case NN_NEG: case NN_ABS: case NN_SIGN: case NN_FLOOR: case NN_CEIL: case NN_ROUND: case NN_RELU:
  case NN_STEP:
    return a == NN_BOOL ? NN_INT64 : a;
  default: return NN_FLOAT32;
  }
}

static void run_unary(nn_unary_op op, nn_tensor *out, nn_tensor *a) {
  if (out->dtype == a->dtype && nn_is_contiguous(out) && nn_is_contiguous(a)) {
    struct unary_ctx c = {op, out->dtype, a->dtype, 0, 0};
    char *data[2] = {nn_data(out), nn_data(a)};
    static const int64_t unit[2] = {1, 1};
    unary_inner(&c, nn_numel(a), data, unit);
    return;
  }
  nn_iter it;
  nn_tensor *ts[2] = {out, a};
  nn_iter_init(&it, 2, ts, out->ndim, out->size);
  struct unary_ctx c = {op, out->dtype, a->dtype, 0, 0};
  nn_iter_run(&it, unary_inner, &c);
}

/* The local derivative, as one fused loop over (g, x-or-y): sigmoid, tanh,
   exp and sqrt read their output y, the others their input x. */
struct unary_grad_ctx { nn_unary_op op; };

static inline double unary_derivative(nn_unary_op op, double x, double y) {
  switch (op) {
  case NN_NEG: return -1;
  case NN_EXP: return y;
  case NN_LOG: return 1 / x;
  case NN_SQRT: return 0.5 / y;
  case NN_ABS: return x > 0 ? 1 : (x < 0 ? -1 : 0);
  case NN_SIGMOID: return y * (1 - y);
  case NN_TANH: return 1 - y * y;
  case NN_RELU: return x > 0 ? 1 : 0;
  case NN_SIN: return cos(x);
  case NN_COS: return -sin(x);
  default: return 0; /* step, sign, floor, ceil, round: flat almost everywhere */
  }
}

static int reads_output(nn_unary_op op) {
  return op == NN_EXP || op == NN_SQRT || op == NN_SIGMOID || op == NN_TANH;
}

static void unary_grad_inner(void *vctx, int64_t n, char **data, const int64_t *st) {
  const struct unary_grad_ctx *c = vctx;
  int out_mode = reads_output(c->op);
  if (c->op == NN_SIGMOID && st[0] == 1 && st[1] == 1 && st[2] == 1) {
    /* data: grad_in, g, y -- the hot path of every sigmoid network */
    float *gi = (float *)data[0];
    const float *g = (const float *)data[1], *y = (const float *)data[2];
    for (int64_t i = 0; i < n; i++) gi[i] = g[i] * (1.0f - y[i]) * y[i];
    return;
  }
  if (c->op == NN_RELU && st[0] == 1 && st[1] == 1 && st[2] == 1) {
    /* data: grad_in (new), g, x -- the hot path of every relu network */
    relu_grad_array_f32(n, (const float *)data[1], (const float *)data[2], (float *)data[0]);
    return;
  }
  for (int64_t i = 0; i < n; i++) {
    float g = ((const float *)data[1])[i * st[1]], v = ((const float *)data[2])[i * st[2]];
    ((float *)data[0])[i * st[0]] =
        g * (float)unary_derivative(c->op, out_mode ? 0 : v, out_mode ? v : 0);
  }
}

static void unary_grad_inner_d(void *vctx, int64_t n, char **data, const int64_t *st) {
  const struct unary_grad_ctx *c = vctx;
  int out_mode = reads_output(c->op);
  for (int64_t i = 0; i < n; i++) {
    double g = ((const double *)data[1])[i * st[1]], v = ((const double *)data[2])[i * st[2]];
    ((double *)data[0])[i * st[0]] = g * unary_derivative(c->op, out_mode ? 0 : v, out_mode ? v : 0);
  }
}

static int unary_backward(nn_node *node, nn_tensor *g, nn_tensor **gi) {
  nn_unary_op op = (nn_unary_op)node->ints[0];
  nn_tensor *v = node->saved[0];
  nn_tensor *out = nn_empty_like(v);
  if (!out) return -1;
  if (g->dtype != v->dtype) {
    nn_error_set("%s backward: gradient dtype %s differs from %s", unary_names[op],
                 nn_dtype_name(g->dtype), nn_dtype_name(v->dtype));
    nn_release(out);
    return -1;
  }
  struct unary_grad_ctx c = {op};
  nn_inner_fn fn = v->dtype == NN_FLOAT32 ? unary_grad_inner : unary_grad_inner_d;
  if (nn_is_contiguous(g) && nn_is_contiguous(v) && nn_same_shape(g, v)) {
    char *data[3] = {nn_data(out), nn_data(g), nn_data(v)};
    static const int64_t unit[3] = {1, 1, 1};
    fn(&c, nn_numel(v), data, unit);
  } else {
    nn_iter it;
    nn_tensor *ts[3] = {out, g, v};
    nn_iter_init(&it, 3, ts, out->ndim, out->size);
    nn_iter_run(&it, fn, &c);
  }
  gi[0] = out;
  return 0;
}

nn_tensor *nn_unary(nn_unary_op op, nn_tensor *a) {
  if (nn_check_cpu(unary_names[op], a) < 0) return NULL;
  nn_tensor *out = nn_empty_like_shape(a, unary_dtype(op, a->dtype), a->ndim, a->size);
  if (!out) return NULL;
  run_unary(op, out, a);
  if (nn_needs_grad(a, NULL, NULL)) {
    static const char *const node_names[] = {
        "NegBackward0",  "ExpBackward0",  "LogBackward0",  "SqrtBackward0", "AbsBackward0",
        "SigmoidBackward0", "TanhBackward0", "ReluBackward0", "StepBackward0", "SinBackward0",
        "CosBackward0",  "SignBackward0", "FloorBackward0", "CeilBackward0", "RoundBackward0"};
    nn_node *node = nn_node_attach(out, node_names[op], unary_backward, 1, a, NULL, NULL);
    if (!node) {
      nn_release(out);
      return NULL;
    }
    node->ints[0] = op;
    if (reads_output(op)) nn_node_save_output(node, 0, out);
    else nn_node_save(node, 0, a);
  }
  return out;
}

int nn_unary_(nn_unary_op op, nn_tensor *a) {
  const char *name = unary_inplace_names[op];
  if (nn_check_cpu(name, a) < 0) return -1;
  if (check_inplace_dtype(name, a->dtype, unary_dtype(op, a->dtype)) < 0) return -1;
  nn_inplace ip;
  int record = nn_inplace_begin(&ip, name, a, NULL, 0);
  if (record < 0) return -1;
  if (record) return nn_inplace_commit(&ip, nn_unary(op, ip.self), NULL);
  run_unary(op, a, a);
  nn_bump_version(a);
  return 0;
}

/* ---- clamp ----------------------------------------------------------- */
static void clamp_inner(void *vctx, int64_t n, char **data, const int64_t *st) {
  const struct unary_ctx *c = vctx;
  for (int64_t i = 0; i < n; i++) {
    double x = nn_load(c->a, data[1], i * st[1]);
    if (!isnan(c->lo) && x < c->lo) x = c->lo;
    if (!isnan(c->hi) && x > c->hi) x = c->hi;
    nn_store(c->out, data[0], i * st[0], x);
  }
}

static void run_clamp(nn_tensor *out, nn_tensor *a, double lo, double hi) {
  nn_iter it;
  nn_tensor *ts[2] = {out, a};
  nn_iter_init(&it, 2, ts, out->ndim, out->size);
  struct unary_ctx c = {NN_NEG, out->dtype, a->dtype, lo, hi};
  nn_iter_run(&it, clamp_inner, &c);
}

/* d clamp(x) = 1 where lo <= x <= hi, as PyTorch (the bounds pass). */
static int clamp_backward(nn_node *node, nn_tensor *g, nn_tensor **gi) {
  nn_tensor *a = node->saved[0];
  double lo = node->scalar[0], hi = node->scalar[1];
  nn_tensor *mask = nn_empty_like(a);
  if (!mask) return -1;
  for (int64_t i = 0, n = nn_numel(a); i < n; i++) {
    double x = nn_get_flat(a, i);
    nn_set_flat(mask, i, (isnan(lo) || x >= lo) && (isnan(hi) || x <= hi));
  }
  gi[0] = nn_binary(NN_MUL, g, mask);
  nn_release(mask);
  return gi[0] ? 0 : -1;
}

nn_tensor *nn_clamp(nn_tensor *a, double lo, double hi) {
  if (nn_check_cpu("clamp", a) < 0) return NULL;
  if (!isnan(lo) && !isnan(hi) && lo > hi) {
    nn_error_set("clamp: min %g is greater than max %g", lo, hi);
    return NULL;
  }
  nn_dtype dt = a->dtype;
  if (!nn_dtype_is_floating(dt) && ((!isnan(lo) && floor(lo) != lo) || (!isnan(hi) && floor(hi) != hi)))
    dt = NN_FLOAT32;
  nn_tensor *out = nn_empty_like_shape(a, dt, a->ndim, a->size);
  if (!out) return NULL;
  run_clamp(out, a, lo, hi);
  if (nn_needs_grad(a, NULL, NULL)) {
    nn_node *node = nn_node_attach(out, "ClampBackward1", clamp_backward, 1, a, NULL, NULL);
    if (!node) {
      nn_release(out);
      return NULL;
    }
    node->scalar[0] = lo;
    node->scalar[1] = hi;
    nn_node_save(node, 0, a);
  }
  return out;
}

int nn_clamp_(nn_tensor *a, double lo, double hi) {
  if (nn_check_cpu("clamp_", a) < 0) return -1;
  if (!isnan(lo) && !isnan(hi) && lo > hi) {
    nn_error_set("clamp_: min %g is greater than max %g", lo, hi);
    return -1;
  }
  nn_inplace ip;
  int record = nn_inplace_begin(&ip, "clamp_", a, NULL, 0);
  if (record < 0) return -1;
  if (record) return nn_inplace_commit(&ip, nn_clamp(ip.self, lo, hi), NULL);
  run_clamp(a, a, lo, hi);
  nn_bump_version(a);
  return 0;
}

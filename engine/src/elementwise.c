/* elementwise.c: binary ops with broadcasting, unary ops and clamp; each
 * backward beside its forward. float32 and float64 run typed loops; mixed
 * dtypes convert each element to the dtype PyTorch's promotion computes
 * in; integers compute as integers. */
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


/* ---- type promotion: PyTorch's (c10/core/ScalarType.h, TensorIterator's
   compute_types), cut down to our four dtypes ------------------------------
   Operands come in three tiers: tensors with dimensions, 0-dimensional
   tensors, numbers. A lower tier changes the result only when it brings a
   higher category (bool < integer < floating): float32 vector + float64
   0-d tensor is float32, int64 vector + float64 0-d tensor is float64,
   int64 vector + 2.5 is float32 (a float number counts as the default
   dtype, float32), bool vector + 2 is int64. */
enum { TIER_NUMBER, TIER_ZERO_DIM, TIER_DIMS, TIER_COUNT };
#define NO_DTYPE NN_DTYPE_COUNT

static int dtype_rank(nn_dtype d) {
  switch (d) {
  case NN_BOOL: return 0;
  case NN_INT64: return 1;
  case NN_FLOAT32: return 2;
  default: return 3;
  }
}

static nn_dtype promote(nn_dtype a, nn_dtype b) {
  if (a == NO_DTYPE) return b;
  if (b == NO_DTYPE) return a;
  return dtype_rank(a) >= dtype_rank(b) ? a : b;
}

/* PyTorch's combine_categories: the higher tier's dtype, unless the lower
   one is of a higher category. */
static nn_dtype combine_tiers(nn_dtype higher, nn_dtype lower) {
  if (higher == NO_DTYPE) return lower;
  if (lower == NO_DTYPE || nn_dtype_is_floating(higher)) return higher;
  if (higher == NN_BOOL || nn_dtype_is_floating(lower)) return promote(higher, lower);
  return higher;
}

typedef struct { nn_dtype dtype; int tier; } operand_type;

static operand_type tensor_operand(const nn_tensor *t) {
  operand_type o = {t->dtype, t->ndim > 0 ? TIER_DIMS : TIER_ZERO_DIM};
  return o;
}

/* A number is an integer or a float (PyTorch's Python int and float);
   NN_NUMBER_AUTO decides by the value. */
static operand_type number_operand(double s, nn_number_kind kind) {
  int integer = kind == NN_NUMBER_INTEGER ||
                (kind == NN_NUMBER_AUTO && isfinite(s) && floor(s) == s);
  operand_type o = {integer ? NN_INT64 : NN_FLOAT32, TIER_NUMBER};
  return o;
}

static nn_dtype common_dtype(operand_type a, operand_type b) {
  nn_dtype by_tier[TIER_COUNT] = {NO_DTYPE, NO_DTYPE, NO_DTYPE};
  by_tier[a.tier] = a.dtype;
  by_tier[b.tier] = promote(by_tier[b.tier], b.dtype);
  return combine_tiers(by_tier[TIER_DIMS], combine_tiers(by_tier[TIER_ZERO_DIM], by_tier[TIER_NUMBER]));
}

/* The dtype op computes in and the one it returns, or -1 with PyTorch's
   refusals: no subtraction with bool operands, no power of two bools.
   Division is always true division, in float32 for integers. */
static int op_dtypes(const char *name, nn_binary_op op, operand_type a, operand_type b,
                     nn_dtype *compute, nn_dtype *out) {
  if (op == NN_SUB && (a.dtype == NN_BOOL || b.dtype == NN_BOOL)) {
    if (a.dtype == NN_BOOL && b.dtype == NN_BOOL)
      nn_error_set("%s: subtraction, the `-` operator, with two bool tensors is not supported; "
                   "use a:ne(b) (logical xor) instead", name);
    else
      nn_error_set("%s: subtraction, the `-` operator, with a bool tensor is not supported; to "
                   "invert a mask use mask:eq(0), else convert it first (long() or float())", name);
    return -1;
  }
  nn_dtype c = common_dtype(a, b);
  if (op == NN_POW && c == NN_BOOL) {
    nn_error_set("%s: not supported for two bool operands; convert one first (long() or float())",
                 name);
    return -1;
  }
  if (op == NN_DIV && !nn_dtype_is_floating(c)) c = NN_FLOAT32;
  *compute = c;
  *out = is_comparison(op) ? NN_BOOL : c;
  return 0;
}

/* An in-place op stores its result in the target's dtype: refused where
   PyTorch cannot cast (a float into an integer, anything but bool into
   bool). */
static int check_inplace_dtype(const char *op, nn_dtype target, nn_dtype result) {
  if ((!nn_dtype_is_floating(target) && nn_dtype_is_floating(result)) ||
      (target == NN_BOOL && result != NN_BOOL)) {
    nn_error_set("%s: the result is %s and cannot be stored in place in a %s tensor", op,
                 nn_dtype_name(result), nn_dtype_name(target));
    return -1;
  }
  return 0;
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

/* x to the power of a number: PyTorch's pow_tensor_scalar computes these
   exponents as products, square roots and reciprocals, not by pow, and
   their values differ from pow's at some inputs (sqrt(-inf) is NaN,
   pow(-inf, 0.5) is inf). */
static inline double pow_number(double x, double e) {
  if (e == 2) return x * x;
  if (e == 3) return x * x * x;
  if (e == 0.5) return sqrt(x);
  if (e == -0.5) return 1 / sqrt(x);
  if (e == -1) return 1 / x;
  if (e == -2) return 1 / (x * x);
  return pow(x, e);
}
static inline float pow_number_f(float x, float e) {
  if (e == 2) return x * x;
  if (e == 3) return x * x * x;
  if (e == 0.5f) return sqrtf(x);
  if (e == -0.5f) return 1 / sqrtf(x);
  if (e == -1) return 1 / x;
  if (e == -2) return 1 / (x * x);
  return powf(x, e);
}

/* Integers (and bools, as 0 and 1) compute exactly, wrapping like two's
   complement as PyTorch's int64 does; a double would lose digits past
   2^53. */
static inline int64_t wrap(uint64_t v) { return (int64_t)v; }

static int64_t pow_integer(int64_t base, int64_t e) {
  if (e < 0) return base == 1 ? 1 : base == -1 ? ((e & 1) ? -1 : 1) : 0;
  uint64_t r = 1, b = (uint64_t)base;
  for (; e; e >>= 1, b *= b)
    if (e & 1) r *= b;
  return wrap(r);
}

static inline int64_t integer_apply(nn_binary_op op, int64_t x, int64_t y) {
  switch (op) {
  case NN_ADD: return wrap((uint64_t)x + (uint64_t)y);
  case NN_SUB: return wrap((uint64_t)x - (uint64_t)y);
  case NN_MUL: return wrap((uint64_t)x * (uint64_t)y);
  case NN_POW: return pow_integer(x, y);
  case NN_MAXIMUM: return x > y ? x : y;
  case NN_MINIMUM: return x < y ? x : y;
  case NN_GT: return x > y;
  case NN_GE: return x >= y;
  case NN_LT: return x < y;
  case NN_LE: return x <= y;
  case NN_EQ: return x == y;
  default: return x != y; /* NN_DIV never computes in integers */
  }
}

static inline int64_t load_integer(nn_dtype dtype, const void *p, int64_t i) {
  return dtype == NN_INT64 ? ((const int64_t *)p)[i] : ((const unsigned char *)p)[i];
}
static inline void store_integer(nn_dtype dtype, void *p, int64_t i, int64_t v) {
  if (dtype == NN_INT64) ((int64_t *)p)[i] = v;
  else ((unsigned char *)p)[i] = v != 0;
}

/* A number in an integer op: whole, and saturated into int64's range. */
static int64_t number_to_integer(double s) {
  return isnan(s) ? 0 : s >= 9223372036854775807.0 ? INT64_MAX
                      : s <= -9223372036854775808.0 ? INT64_MIN : (int64_t)s;
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

/* relu's backward over arrays, PyTorch's threshold_backward: 0 where
   x <= 0, else g, a select (so at a NaN input g passes, and where x <= 0
   an infinite g gives 0, not NaN). g is read whatever x is: a load under
   the condition would be a branch per element, not a select. */
static void relu_grad_array_f32(int64_t n, const float *restrict g, const float *restrict x,
                                float *restrict gi) {
  for (int64_t i = 0; i < n; i++) {
    float gv = g[i];
    gi[i] = x[i] <= 0 ? 0.0f : gv;
  }
}
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC pop_options
#endif

/* ---- kernels --------------------------------------------------------- */
/* data[0] = out, data[1] = a, data[2] = b (absent for a number) */
typedef struct {
  nn_binary_op op;
  nn_dtype compute, out, a, b;
  int has_b;
  double scalar;     /* the number, when there is no b */
  int scalar_first;  /* number op a */
} kernel_ctx;

static inline double scalar_apply(const kernel_ctx *k, double x) {
  if (k->scalar_first) return binary_apply(k->op, k->scalar, x);
  return k->op == NN_POW ? pow_number(x, k->scalar) : binary_apply(k->op, x, k->scalar);
}
static inline float scalar_apply_f(const kernel_ctx *k, float x, float s) {
  if (k->scalar_first) return binary_apply_f(k->op, s, x);
  return k->op == NN_POW ? pow_number_f(x, s) : binary_apply_f(k->op, x, s);
}

/* Any dtypes: each element converted to the compute dtype, computed there
   (so float32 x > 0.1 compares with 0.1 rounded to float32, as PyTorch),
   stored in out's. */
static void kernel_mixed(const kernel_ctx *k, int64_t n, char **data, const int64_t *st) {
  if (k->compute == NN_FLOAT32) {
    float s = (float)k->scalar;
    for (int64_t i = 0; i < n; i++) {
      float x = (float)nn_load(k->a, data[1], i * st[1]);
      float v = k->has_b ? binary_apply_f(k->op, x, (float)nn_load(k->b, data[2], i * st[2]))
                         : scalar_apply_f(k, x, s);
      nn_store(k->out, data[0], i * st[0], v);
    }
  } else if (k->compute == NN_FLOAT64) {
    for (int64_t i = 0; i < n; i++) {
      double x = nn_load(k->a, data[1], i * st[1]);
      double v = k->has_b ? binary_apply(k->op, x, nn_load(k->b, data[2], i * st[2]))
                          : scalar_apply(k, x);
      nn_store(k->out, data[0], i * st[0], v);
    }
  } else {
    int64_t s = number_to_integer(k->scalar);
    for (int64_t i = 0; i < n; i++) {
      int64_t x = load_integer(k->a, data[1], i * st[1]);
      int64_t y = k->has_b ? load_integer(k->b, data[2], i * st[2]) : s;
      int64_t v = k->scalar_first ? integer_apply(k->op, y, x) : integer_apply(k->op, x, y);
      store_integer(k->out, data[0], i * st[0], v);
    }
  }
}

static void kernel_inner(void *vctx, int64_t n, char **data, const int64_t *st) {
  const kernel_ctx *k = vctx;
  nn_binary_op op = k->op;
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
    const float *x = (const float *)data[1], s = (float)k->scalar;
    /* scalar_apply_f's tests, taken out of the loop by hand */
    if (k->scalar_first)
      for (int64_t i = 0; i < n; i++) o[i * st[0]] = binary_apply_f(op, s, x[i * st[1]]);
    else if (op == NN_POW)
      for (int64_t i = 0; i < n; i++) o[i * st[0]] = pow_number_f(x[i * st[1]], s);
    else
      for (int64_t i = 0; i < n; i++) o[i * st[0]] = binary_apply_f(op, x[i * st[1]], s);
  } else if (k->has_b && k->out == NN_FLOAT64 && k->a == NN_FLOAT64 && k->b == NN_FLOAT64) {
    double *o = (double *)data[0];
    const double *x = (const double *)data[1], *y = (const double *)data[2];
    for (int64_t i = 0; i < n; i++) o[i * st[0]] = binary_apply(op, x[i * st[1]], y[i * st[2]]);
  } else {
    kernel_mixed(k, n, data, st);
  }
}

/* out = a op b, written into out (already shaped). */
static void run_binary(nn_binary_op op, nn_dtype compute, nn_tensor *out, nn_tensor *a,
                       nn_tensor *b) {
  nn_iter it;
  nn_tensor *ts[3] = {out, a, b};
  nn_iter_init(&it, 3, ts, out->ndim, out->size);
  kernel_ctx k = {op, compute, out->dtype, a->dtype, b->dtype, 1, 0, 0};
  nn_iter_run(&it, kernel_inner, &k);
}

static void run_binary_scalar(nn_binary_op op, nn_dtype compute, nn_tensor *out, nn_tensor *a,
                              double s, int scalar_first) {
  nn_iter it;
  nn_tensor *ts[2] = {out, a};
  nn_iter_init(&it, 2, ts, out->ndim, out->size);
  kernel_ctx k = {op, compute, out->dtype, a->dtype, a->dtype, 0, s, scalar_first};
  nn_iter_run(&it, kernel_inner, &k);
}

/* ---- gradients computed element by element ------------------------------
   The backward formulas that select (PyTorch's where and masked_fill) rather
   than multiply by a mask: a product would turn 0 * inf and 0 * NaN into
   NaN where PyTorch gives 0. */
typedef enum {
  GRAD_POW_BASE,       /* d(x^y)/dx: 0 where y == 0, else g y x^(y-1) */
  GRAD_POW_EXPONENT,   /* d(x^y)/dy: 0 where x == 0 and y >= 0, else g x^y log x */
  GRAD_MAXIMUM,        /* the first operand of maximum(x, y): g, g/2 on a tie, 0 where x < y */
  GRAD_MINIMUM,        /* the first operand of minimum(x, y): g, g/2 on a tie, 0 where x > y */
  GRAD_NUMBER_BASE,    /* d(s^x)/dx, s = lo: 0 where s == 0 and x >= 0, else g s^x log s */
  GRAD_CLAMP,          /* g where lo <= x <= hi (the bounds pass), else 0 */
} grad_rule;

static inline double grad_formula(grad_rule rule, double g, double x, double y, double out,
                                  double lo, double hi) {
  switch (rule) {
  case GRAD_POW_BASE: return y == 0 ? 0 : g * (y * pow(x, y - 1));
  case GRAD_POW_EXPONENT: return g * (x == 0 && y >= 0 ? 0 : out * log(x));
  case GRAD_MAXIMUM: return x < y ? 0 : (x == y ? g / 2 : g);
  case GRAD_MINIMUM: return x > y ? 0 : (x == y ? g / 2 : g);
  case GRAD_NUMBER_BASE: return g * (lo == 0 && x >= 0 ? 0 : out * log(lo));
  default: return x >= lo && x <= hi ? g : 0;
  }
}

/* t as a contiguous tensor of g's shape (broadcast), recorded nowhere. */
static nn_tensor *at_grad_shape(nn_tensor *t, const nn_tensor *g) {
  if (!t) return NULL;
  nn_tensor *e = nn_same_shape(t, g) ? nn_retain(t) : nn_expand(t, g->ndim, g->size);
  nn_tensor *c = e ? nn_contiguous(e) : NULL;
  nn_release(e);
  return c;
}

/* rule over g's elements, with x, y and out (each NULL when the rule reads
   none) broadcast to g's shape; the result has g's shape and dtype. */
static nn_tensor *grad_map(grad_rule rule, nn_tensor *g, nn_tensor *x, nn_tensor *y,
                           nn_tensor *out, double lo, double hi) {
  nn_tensor *gc = nn_contiguous(g), *xc = at_grad_shape(x, g), *yc = at_grad_shape(y, g);
  nn_tensor *oc = at_grad_shape(out, g), *r = nn_empty_like(g);
  if (!gc || (x && !xc) || (y && !yc) || (out && !oc) || !r) {
    nn_release(gc), nn_release(xc), nn_release(yc), nn_release(oc), nn_release(r);
    return NULL;
  }
  const void *pg = nn_data(gc), *px = xc ? nn_data(xc) : NULL, *py = yc ? nn_data(yc) : NULL;
  const void *po = oc ? nn_data(oc) : NULL;
  void *pr = nn_data(r);
  for (int64_t i = 0, n = nn_numel(r); i < n; i++) {
    double xv = px ? nn_load(xc->dtype, px, i) : 0, yv = py ? nn_load(yc->dtype, py, i) : 0;
    double ov = po ? nn_load(oc->dtype, po, i) : 0;
    nn_store(r->dtype, pr, i, grad_formula(rule, nn_load(g->dtype, pg, i), xv, yv, ov, lo, hi));
  }
  nn_release(gc), nn_release(xc), nn_release(yc), nn_release(oc);
  return r;
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
  nn_dtype compute, out_dtype;
  if (check_devices(name, a, b) < 0 || check_dtypes(name, a, b) < 0) return NULL;
  if (op_dtypes(name, op, tensor_operand(a), tensor_operand(b), &compute, &out_dtype) < 0)
    return NULL;
  if (nn_broadcast_shape(name, a, b, &ndim, size) < 0) return NULL;
  nn_tensor *out = nn_empty_like_shape(a, out_dtype, ndim, size);
  if (!out) return NULL;
  run_binary(op, compute, out, a, b);
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
  case NN_POW: /* PyTorch's pow_backward_self and pow_backward_exponent */
    if (ia) gi[0] = grad_map(GRAD_POW_BASE, g, a, b, NULL, 0, 0);
    if (ib) gi[1] = grad_map(GRAD_POW_EXPONENT, g, a, b, node->saved[2], 0, 0);
    break;
  default: { /* maximum/minimum: the winner takes the gradient, a tie splits it,
                and a NaN passes it to both */
    grad_rule rule = op == NN_MAXIMUM ? GRAD_MAXIMUM : GRAD_MINIMUM;
    if (ia) gi[0] = grad_map(rule, g, a, b, NULL, 0, 0);
    if (ib) gi[1] = grad_map(rule, g, b, a, NULL, 0, 0);
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
    if (first) { /* d(s^a) = s^a log s, PyTorch's pow_backward_exponent */
      gi[0] = grad_map(GRAD_NUMBER_BASE, g, a, NULL, node->saved[1], s, 0);
    } else if (s == 0) { /* a^0 is 1 everywhere: the gradient is 0, even at NaN */
      gi[0] = nn_full_like_shape(g, g->dtype, g->ndim, g->size, 0);
    } else { /* d(a^s) = s a^(s-1), a^(s-1) as the forward computes it */
      nn_tensor *p = s == 2 ? nn_binary_scalar(NN_MUL, a, 2, 0) : nn_binary_scalar(NN_POW, a, s - 1, 0);
      if (p && s != 2) nn_binary_scalar_(NN_MUL, p, s);
      gi[0] = p ? nn_binary(NN_MUL, g, p) : NULL;
      nn_release(p);
    }
    break;
  default: /* maximum/minimum with a number are PyTorch's clamp_min/clamp_max */
    gi[0] = grad_map(GRAD_CLAMP, g, a, NULL, NULL, op == NN_MAXIMUM ? s : -INFINITY,
                     op == NN_MAXIMUM ? INFINITY : s);
  }
  return gi[0] ? 0 : -1;
}

/* PyTorch refuses an integer tensor to a negative integer power. */
static int check_integer_power(const char *name, nn_binary_op op, nn_dtype compute, double s,
                               int scalar_first) {
  if (op == NN_POW && !scalar_first && !nn_dtype_is_floating(compute) && s < 0) {
    nn_error_set("%s: integers to negative integer powers are not allowed (convert to float first)",
                 name);
    return -1;
  }
  return 0;
}

nn_tensor *nn_binary_number(nn_binary_op op, nn_tensor *a, double s, int scalar_first,
                            nn_number_kind kind) {
  const char *name = binary_names[op];
  nn_dtype compute, out_dtype;
  if (nn_check_cpu(name, a) < 0) return NULL;
  operand_type ta = tensor_operand(a), ts = number_operand(s, kind);
  if (op_dtypes(name, op, scalar_first ? ts : ta, scalar_first ? ta : ts, &compute, &out_dtype) < 0 ||
      check_integer_power(name, op, compute, s, scalar_first) < 0)
    return NULL;
  nn_tensor *out = nn_empty_like_shape(a, out_dtype, a->ndim, a->size);
  if (!out) return NULL;
  run_binary_scalar(op, compute, out, a, s, scalar_first);
  if (!is_comparison(op) && nn_needs_grad(a, NULL, NULL)) {
    /* PyTorch's names: x + 2 is AddBackward0, 2 - x RsubBackward1, 2 / x a
       reciprocal times 2 (MulBackward0), 2 ^ x PowBackward2 */
    static const char *const node_names[] = {"AddBackward0", "SubBackward0", "MulBackward0",
                                             "DivBackward0", "PowBackward0", "ClampMinBackward0",
                                             "ClampMaxBackward0"};
    const char *node_name = node_names[op];
    if (scalar_first && op == NN_SUB) node_name = "RsubBackward1";
    if (scalar_first && op == NN_DIV) node_name = "MulBackward0";
    if (scalar_first && op == NN_POW) node_name = "PowBackward2";
    nn_node *node = nn_node_attach(out, node_name, binary_scalar_backward, 1, a, NULL, NULL);
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

nn_tensor *nn_binary_scalar(nn_binary_op op, nn_tensor *a, double s, int scalar_first) {
  return nn_binary_number(op, a, s, scalar_first, NN_NUMBER_AUTO);
}

/* ---- in place -------------------------------------------------------- */
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
  nn_dtype compute, out_dtype;
  if (check_devices(name, a, b) < 0) return -1;
  if (nn_broadcast_shape(name, a, b, &ndim, size) < 0) return -1;
  if (ndim != a->ndim || nn_shape_numel(ndim, size) != nn_numel(a)) {
    char x[96], y[96];
    nn_error_set("%s: in place, the result must keep the shape %s, but %s broadcasts beyond it",
                 name, nn_shape_string(a, x, sizeof x), nn_shape_string(b, y, sizeof y));
    return -1;
  }
  if (op_dtypes(name, op, tensor_operand(a), tensor_operand(b), &compute, &out_dtype) < 0 ||
      check_inplace_dtype(name, a->dtype, out_dtype) < 0 || nn_check_overlap(name, a, b) < 0)
    return -1;
  nn_inplace ip;
  int record = nn_inplace_begin(&ip, name, a, b, 0);
  if (record < 0) return -1;
  if (record) return nn_inplace_commit(&ip, nn_binary(op, ip.self, b), inplace_zero_grad_name(op, 1));
  run_binary(op, compute, a, a, b);
  nn_bump_version(a);
  return 0;
}

int nn_binary_number_(nn_binary_op op, nn_tensor *a, double s, nn_number_kind kind) {
  const char *name = binary_inplace_names[op];
  nn_dtype compute, out_dtype;
  if (nn_check_cpu(name, a) < 0) return -1;
  if (op_dtypes(name, op, tensor_operand(a), number_operand(s, kind), &compute, &out_dtype) < 0 ||
      check_integer_power(name, op, compute, s, 0) < 0 ||
      check_inplace_dtype(name, a->dtype, out_dtype) < 0)
    return -1;
  nn_inplace ip;
  int record = nn_inplace_begin(&ip, name, a, NULL, 0);
  if (record < 0) return -1;
  if (record)
    return nn_inplace_commit(&ip, nn_binary_number(op, ip.self, s, 0, kind),
                             inplace_zero_grad_name(op, 0));
  run_binary_scalar(op, compute, a, a, s, 0);
  nn_bump_version(a);
  return 0;
}

int nn_binary_scalar_(nn_binary_op op, nn_tensor *a, double s) {
  return nn_binary_number_(op, a, s, NN_NUMBER_AUTO);
}

/* ---- unary ----------------------------------------------------------- */
struct unary_ctx { nn_unary_op op; nn_dtype out, a; };

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

/* The result dtype, PyTorch's: ops exact on integers keep the dtype, the
   rest compute in float32. On bool, sign stays bool, and negation, abs,
   relu and the roundings are refused as PyTorch refuses them. */
static int unary_dtype(const char *name, nn_unary_op op, nn_dtype a, nn_dtype *out) {
  if (nn_dtype_is_floating(a)) {
    *out = a;
    return 0;
  }
  switch (op) {
  case NN_NEG:
    if (a == NN_BOOL) {
      nn_error_set("%s: negation, the `-` operator, on a bool tensor is not supported; to invert "
                   "a mask use mask:eq(0)", name);
      return -1;
    }
    *out = a;
    return 0;
  case NN_ABS: case NN_FLOOR: case NN_CEIL: case NN_ROUND: case NN_RELU:
    if (a == NN_BOOL) {
      nn_error_set("%s: not supported for a bool tensor; convert it first (long() or float())", name);
      return -1;
    }
    *out = a;
    return 0;
  case NN_SIGN: *out = a; return 0;
  case NN_STEP: *out = NN_INT64; return 0;
  default: *out = NN_FLOAT32; return 0;
  }
}

static void run_unary(nn_unary_op op, nn_tensor *out, nn_tensor *a) {
  struct unary_ctx c = {op, out->dtype, a->dtype};
  if (out->dtype == a->dtype && nn_is_contiguous(out) && nn_is_contiguous(a)) {
    char *data[2] = {nn_data(out), nn_data(a)};
    static const int64_t unit[2] = {1, 1};
    unary_inner(&c, nn_numel(a), data, unit);
    return;
  }
  nn_iter it;
  nn_tensor *ts[2] = {out, a};
  nn_iter_init(&it, 2, ts, out->ndim, out->size);
  nn_iter_run(&it, unary_inner, &c);
}

/* The local derivative, as one fused loop over (g, x-or-y): sigmoid, tanh,
   exp and sqrt read their output y, the others their input x. relu's is
   not here: it selects (relu_grad below). */
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
  case NN_SIN: return cos(x);
  case NN_COS: return -sin(x);
  default: return 0; /* step, sign, floor, ceil, round: flat almost everywhere */
  }
}

static inline double relu_grad(double g, double x) { return x <= 0 ? 0 : g; }

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
        c->op == NN_RELU ? (float)relu_grad(g, v)
                         : g * (float)unary_derivative(c->op, out_mode ? 0 : v, out_mode ? v : 0);
  }
}

static void unary_grad_inner_d(void *vctx, int64_t n, char **data, const int64_t *st) {
  const struct unary_grad_ctx *c = vctx;
  int out_mode = reads_output(c->op);
  for (int64_t i = 0; i < n; i++) {
    double g = ((const double *)data[1])[i * st[1]], v = ((const double *)data[2])[i * st[2]];
    ((double *)data[0])[i * st[0]] =
        c->op == NN_RELU ? relu_grad(g, v)
                         : g * unary_derivative(c->op, out_mode ? 0 : v, out_mode ? v : 0);
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
  nn_dtype dtype;
  if (nn_check_cpu(unary_names[op], a) < 0 || unary_dtype(unary_names[op], op, a->dtype, &dtype) < 0)
    return NULL;
  nn_tensor *out = nn_empty_like_shape(a, dtype, a->ndim, a->size);
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
  nn_dtype dtype;
  if (nn_check_cpu(name, a) < 0 || unary_dtype(name, op, a->dtype, &dtype) < 0 ||
      check_inplace_dtype(name, a->dtype, dtype) < 0)
    return -1;
  nn_inplace ip;
  int record = nn_inplace_begin(&ip, name, a, NULL, 0);
  if (record < 0) return -1;
  if (record) return nn_inplace_commit(&ip, nn_unary(op, ip.self), NULL);
  run_unary(op, a, a);
  nn_bump_version(a);
  return 0;
}

/* ---- clamp ----------------------------------------------------------- */
/* PyTorch 1.13's clamp: NaN stays NaN, a NaN bound makes every value NaN
   (but leaves them all as they are when it is the only bound given), and
   otherwise min(max(x, lo), hi), so lo > hi gives hi everywhere. */
struct clamp_ctx { nn_dtype out, a; double lo, hi; };

/* With bounds that are numbers, min(max(x, lo), hi) keeps a NaN x: both
   comparisons are false. */
static void clamp_inner(void *vctx, int64_t n, char **data, const int64_t *st) {
  const struct clamp_ctx *c = vctx;
  if (c->out == NN_FLOAT32 && c->a == NN_FLOAT32) {
    float *o = (float *)data[0], lo = (float)c->lo, hi = (float)c->hi;
    const float *x = (const float *)data[1];
    for (int64_t i = 0; i < n; i++) {
      float v = x[i * st[1]];
      v = v < lo ? lo : v;
      o[i * st[0]] = v > hi ? hi : v;
    }
    return;
  }
  for (int64_t i = 0; i < n; i++) {
    double v = nn_load(c->a, data[1], i * st[1]);
    v = v < c->lo ? c->lo : v;
    nn_store(c->out, data[0], i * st[0], v > c->hi ? c->hi : v);
  }
}

static void run_clamp(nn_tensor *out, nn_tensor *a, double lo, double hi) {
  if ((isnan(lo) && hi == INFINITY) || (isnan(hi) && lo == -INFINITY)) {
    lo = -INFINITY, hi = INFINITY; /* PyTorch ignores a NaN bound given alone */
  } else if (isnan(lo) || isnan(hi)) {
    if (out != a) nn_copy_(out, a); /* the dtype conversion, then NaN everywhere */
    nn_fill_(out, NAN);
    return;
  }
  nn_iter it;
  nn_tensor *ts[2] = {out, a};
  nn_iter_init(&it, 2, ts, out->ndim, out->size);
  struct clamp_ctx c = {out->dtype, a->dtype, lo, hi};
  nn_iter_run(&it, clamp_inner, &c);
}

/* The gradient passes where lo <= x <= hi, bounds included, as PyTorch's
   clamp_backward: nowhere when lo > hi, a bound or x is NaN. */
static int clamp_backward(nn_node *node, nn_tensor *g, nn_tensor **gi) {
  gi[0] = grad_map(GRAD_CLAMP, g, node->saved[0], NULL, NULL, node->scalar[0], node->scalar[1]);
  return gi[0] ? 0 : -1;
}

/* The dtype of clamp(a, lo, hi): the bounds are numbers in PyTorch's promotion. */
static nn_dtype clamp_dtype(nn_tensor *a, double lo, double hi) {
  nn_dtype d = common_dtype(tensor_operand(a), number_operand(lo, NN_NUMBER_AUTO));
  operand_type with_lo = {d, tensor_operand(a).tier};
  return common_dtype(with_lo, number_operand(hi, NN_NUMBER_AUTO));
}

nn_tensor *nn_clamp(nn_tensor *a, double lo, double hi) {
  if (nn_check_cpu("clamp", a) < 0) return NULL;
  /* an absent bound (an infinity) takes no part in the dtype */
  nn_tensor *out = nn_empty_like_shape(a, clamp_dtype(a, isinf(lo) ? 0 : lo, isinf(hi) ? 0 : hi),
                                       a->ndim, a->size);
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
  if (nn_check_cpu("clamp_", a) < 0 ||
      check_inplace_dtype("clamp_", a->dtype, clamp_dtype(a, isinf(lo) ? 0 : lo, isinf(hi) ? 0 : hi)) < 0)
    return -1;
  nn_inplace ip;
  int record = nn_inplace_begin(&ip, "clamp_", a, NULL, 0);
  if (record < 0) return -1;
  if (record) return nn_inplace_commit(&ip, nn_clamp(ip.self, lo, hi), NULL);
  run_clamp(a, a, lo, hi);
  nn_bump_version(a);
  return 0;
}

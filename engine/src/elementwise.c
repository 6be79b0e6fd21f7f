/* elementwise.c: the fronts of the binary ops with broadcasting, the unary
 * ops and clamp: dtype promotion (PyTorch's), shapes, in-place rules and
 * autograd, each backward beside its forward. The loops are the backend's
 * (cpu/elementwise.c), the formulas math/elementwise.h's. */
#include "internal.h"
#include "math/elementwise.h"

#include <stddef.h>

static const char *const binary_names[] = {"add", "sub", "mul", "div", "pow", "maximum", "minimum",
                                           "gt",  "ge",  "lt",  "le",  "eq",  "ne",
                                           "atan2", "fmod", "remainder", "logical_and",
                                           "logical_or", "logical_xor", "floor_divide", "div"};
static const char *const unary_names[] = {"neg",  "exp",  "log",  "sqrt", "abs",
                                          "sigmoid", "tanh", "relu", "step", "sin",
                                          "cos",  "sign", "floor", "ceil", "round",
                                          "log1p", "expm1", "log2", "log10", "rsqrt",
                                          "reciprocal", "square", "tan", "asin", "acos",
                                          "atan", "sinh", "cosh", "erf", "erfinv", "trunc",
                                          "frac", "isnan", "isinf", "isfinite", "logical_not"};

/* The in-place forms' names, for their messages. */
static const char *const binary_inplace_names[] = {"add_", "sub_", "mul_", "div_", "pow_",
                                                   "maximum_", "minimum_", "gt_", "ge_", "lt_",
                                                   "le_", "eq_", "ne_", "atan2_", "fmod_",
                                                   "remainder_", "logical_and_", "logical_or_",
                                                   "logical_xor_", "floor_divide_", "div_"};
static const char *const unary_inplace_names[] = {
    "neg_", "exp_", "log_", "sqrt_", "abs_", "sigmoid_", "tanh_", "relu_",
    "step_", "sin_", "cos_", "sign_", "floor_", "ceil_", "round_",
    "log1p_", "expm1_", "log2_", "log10_", "rsqrt_", "reciprocal_", "square_", "tan_", "asin_",
    "acos_", "atan_", "sinh_", "cosh_", "erf_", "erfinv_", "trunc_", "frac_", "isnan_", "isinf_",
    "isfinite_", "logical_not_"};

const char *nn_binary_op_name(nn_binary_op op) { return binary_names[op]; }
const char *nn_unary_op_name(nn_unary_op op) { return unary_names[op]; }


static int is_comparison(nn_binary_op op) { return op >= NN_GT && op <= NN_NE; }
static int is_logical(nn_binary_op op) { return op >= NN_LOGICAL_AND && op <= NN_LOGICAL_XOR; }
static int is_rounded_division(nn_binary_op op) { return op == NN_FLOOR_DIVIDE || op == NN_TRUNC_DIVIDE; }
/* Comparisons and the logical ops: a bool result, no gradient. */
static int gives_bool(nn_binary_op op) { return is_comparison(op) || is_logical(op); }


/* ---- type promotion: PyTorch's (c10/core/ScalarType.h, TensorIterator's
   compute_types) --------------------------------------------------------
   Operands come in three tiers: tensors with dimensions, 0-dimensional
   tensors, numbers. A lower tier changes the result only when it brings a
   higher category (bool < integer < floating): float32 vector + float64
   0-d tensor is float32, int64 vector + float64 0-d tensor is float64,
   int64 vector + 2.5 is float32 (a float number counts as the default
   dtype, float32), bool vector + 2 is int64, int8 vector + 300 is int8.
   Within a tier, nn_promote_dtypes (math/dtype.h). */
enum { TIER_NUMBER, TIER_ZERO_DIM, TIER_DIMS, TIER_COUNT };
#define NO_DTYPE NN_DTYPE_COUNT

static nn_dtype promote(nn_dtype a, nn_dtype b) {
  if (a == NO_DTYPE) return b;
  if (b == NO_DTYPE) return a;
  return nn_promote_dtypes(a, b);
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
  if ((op == NN_FMOD || op == NN_REMAINDER || is_rounded_division(op)) && c == NN_BOOL) {
    nn_error_set("%s: not supported for two bool operands; convert one first (long() or float())",
                 name);
    return -1;
  }
  if ((op == NN_DIV || op == NN_ATAN2) && !nn_dtype_is_floating(c)) c = NN_FLOAT32;
  *compute = c;
  *out = gives_bool(op) ? NN_BOOL : c;
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

/* ---- what the fronts hand the kernels ----------------------------------- */
/* An input of out's shape whose runs along out's last dim are not
   contiguous (a transposed view; a gradient expanded from a sum) reached
   the CPU kernels' per-element loop, which loads and stores each element
   through the dtype's switch: a:t():relu() at 128x512 took 800 us, the
   same contiguous 6, a copy 46; and its formulas are not the vector
   loops' in every op (x:t():sigmoid() differed from
   x:t():contiguous():sigmoid() in the last bits). The kernels get a
   row-major copy of such an input instead, made without a graph, so that
   a layout never changes a value. A broadcast input (another shape) is
   read as it lies: the kernels keep its runs. Returns a new reference, to
   the copy or to a. */
static __attribute__((noinline)) int dense_copy(nn_tensor *a, const nn_tensor *out,
                                                 nn_tensor **copy) {
  if (a == out || a->device != NN_CPU || out->device != NN_CPU || !out->contiguous ||
      a->ndim != out->ndim)
    return 0;
  int last = -1;
  for (int d = 0; d < a->ndim; d++) {
    if (a->size[d] != out->size[d]) return 0;
    if (a->size[d] > 1) last = d;
  }
  if (last < 0 || a->stride[last] == 1) return 0; /* its runs are contiguous */
  int grad = nn_grad_enabled();
  nn_set_grad_enabled(0);
  *copy = nn_clone(a);
  nn_set_grad_enabled(grad);
  return *copy ? 0 : -1;
}

/* *copy: NULL where a is read as it lies (a contiguous input returns at
   the first test: the hot path of small ops), else the copy to hand the
   kernels and release after; -1 when the copy cannot be made. */
static inline int dense_input(nn_tensor *a, const nn_tensor *out, nn_tensor **copy) {
  *copy = NULL;
  return a->contiguous ? 0 : dense_copy(a, out, copy);
}

/* The tensor the kernels read for a: its copy where dense_input made one */
static inline nn_tensor *read_as(nn_tensor *a, nn_tensor *copy) { return copy ? copy : a; }

static inline void release_copy(nn_tensor *copy) {
  if (copy) nn_release(copy);
}

/* out = a op b, written into out (already shaped). */
static int run_binary(const nn_backend *be, nn_binary_op op, nn_dtype compute, nn_tensor *out,
                      nn_tensor *a, nn_tensor *b) {
  nn_tensor *ca, *cb = NULL;
  int status = -1;
  if (dense_input(a, out, &ca) == 0 && dense_input(b, out, &cb) == 0) {
    nn_iter it;
    nn_tensor *ts[3] = {out, read_as(a, ca), read_as(b, cb)};
    nn_iter_init(&it, 3, ts, out->ndim, out->size);
    status = be->binary(op, compute, &it);
  }
  release_copy(ca);
  release_copy(cb);
  return status;
}

static int run_binary_number(const nn_backend *be, nn_binary_op op, nn_dtype compute,
                             nn_tensor *out, nn_tensor *a, double s, int scalar_first) {
  nn_tensor *ca;
  if (dense_input(a, out, &ca) < 0) return -1;
  nn_iter it;
  nn_tensor *ts[2] = {out, read_as(a, ca)};
  nn_iter_init(&it, 2, ts, out->ndim, out->size);
  int status = be->binary_number(op, compute, &it, s, scalar_first);
  release_copy(ca);
  return status;
}

/* ---- the select-style gradients: a backward op of their own ------------- */
static const char *const pointwise_grad_names[] = {"pow backward", "pow backward",
                                                   "maximum backward", "minimum backward",
                                                   "pow backward", "clamp backward"};

nn_tensor *nn_pointwise_grad(nn_pointwise_grad_op op, nn_tensor *g, nn_tensor *x, nn_tensor *y,
                             double lo, double hi) {
  if (nn_backward_records(g, x, y)) return nn_pointwise_grad_graph(op, g, x, y, lo, hi);
  const nn_backend *be =
      nn_dispatch(pointwise_grad_names[op], offsetof(nn_backend, pointwise_grad), g, x, y);
  if (!be) return NULL;
  nn_tensor *r = nn_empty_like(g);
  if (!r) return NULL;
  nn_iter it;
  nn_tensor *ts[4] = {r, g, x, y};
  nn_iter_init(&it, y ? 4 : 3, ts, g->ndim, g->size);
  if (be->pointwise_grad(op, &it, lo, hi) < 0) {
    nn_release(r);
    return NULL;
  }
  return r;
}

/* ---- binary: forward and backward ------------------------------------ */
static int binary_backward(nn_node *node, nn_tensor *g, nn_tensor **gi);

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
  const nn_backend *be = nn_dispatch(name, offsetof(nn_backend, binary), a, b, NULL);
  if (!be || check_dtypes(name, a, b) < 0) return NULL;
  if (op_dtypes(name, op, tensor_operand(a), tensor_operand(b), &compute, &out_dtype) < 0)
    return NULL;
  if (nn_broadcast_shape(name, a, b, &ndim, size) < 0) return NULL;
  nn_tensor *out = nn_empty_like_shape(a, out_dtype, ndim, size);
  if (!out) return NULL;
  if (run_binary(be, op, compute, out, a, b) < 0) goto fail;
  if (!gives_bool(op) && nn_needs_grad(a, b, NULL)) {
    static const char *const node_names[] = {"AddBackward0", "SubBackward0", "MulBackward0",
                                             "DivBackward0", "PowBackward1", "MaximumBackward0",
                                             "MinimumBackward0"};
    const char *node_name = op == NN_ATAN2 ? "Atan2Backward0"
                            : is_rounded_division(op) ? "DivBackward2"
                            : op == NN_FMOD ? "FmodBackward1"
                            : op == NN_REMAINDER ? "RemainderBackward1" : node_names[op];
    nn_node *node = nn_node_attach(out, node_name, binary_backward, 2, a, b, NULL);
    if (!node) goto fail;
    node->ints[0] = op;
    if (op != NN_ADD && op != NN_SUB) {
      nn_node_save(node, 0, a);
      nn_node_save(node, 1, b);
    }
    /* backward recomputes x^y, but keeps the result's version, as PyTorch
       does, so that changing it in place makes backward refuse */
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

/* atan2's gradients, g b / (a^2 + b^2) for a and -g a / (a^2 + b^2) for b,
   each where its pointer is not NULL. */
static int atan2_backward(nn_tensor *g, nn_tensor *a, nn_tensor *b, nn_tensor **ga, nn_tensor **gb) {
  nn_tensor *a2 = nn_binary(NN_MUL, a, a), *b2 = a2 ? nn_binary(NN_MUL, b, b) : NULL;
  nn_tensor *d = b2 ? nn_binary(NN_ADD, a2, b2) : NULL, *s = d ? nn_binary(NN_DIV, g, d) : NULL;
  int st = s ? 0 : -1;
  if (s && ga && !(*ga = nn_binary(NN_MUL, s, b))) st = -1;
  if (s && gb) {
    nn_tensor *t = nn_binary(NN_MUL, s, a);
    *gb = t ? nn_unary(NN_NEG, t) : NULL;
    nn_release(t);
    if (!*gb) st = -1;
  }
  nn_release(a2), nn_release(b2), nn_release(d), nn_release(s);
  return st;
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
    if (ia) gi[0] = nn_pointwise_grad(NN_GRAD_POW_BASE, g, a, b, 0, 0);
    if (ib) gi[1] = nn_pointwise_grad(NN_GRAD_POW_EXPONENT, g, a, b, 0, 0);
    break;
  case NN_ATAN2: /* d atan2(a, b) = (b da - a db) / (a^2 + b^2) */
    if (atan2_backward(g, a, b, ia ? &gi[0] : NULL, ib ? &gi[1] : NULL) < 0) return -1;
    break;
  case NN_FMOD: case NN_REMAINDER: /* a - b q: q = trunc(a / b) (fmod) or floor(a / b) */
    if (ia) gi[0] = nn_retain(g);
    if (ib) {
      nn_tensor *q = nn_binary(NN_DIV, a, b);
      nn_tensor *r = q ? nn_unary(op == NN_FMOD ? NN_TRUNC : NN_FLOOR, q) : NULL;
      nn_tensor *t = r ? nn_binary(NN_MUL, g, r) : NULL;
      gi[1] = t ? nn_unary(NN_NEG, t) : NULL;
      nn_release(q), nn_release(r), nn_release(t);
    }
    break;
  case NN_FLOOR_DIVIDE: case NN_TRUNC_DIVIDE: /* a step function: zero, as PyTorch's div_tensor_other */
    if (ia) gi[0] = nn_full_like_shape(g, g->dtype, g->ndim, g->size, 0);
    if (ib) gi[1] = nn_full_like_shape(g, g->dtype, g->ndim, g->size, 0);
    break;
  default: { /* maximum/minimum: the winner takes the gradient, a tie splits it,
                and a NaN passes it to both */
    nn_pointwise_grad_op rule = op == NN_MAXIMUM ? NN_GRAD_MAXIMUM : NN_GRAD_MINIMUM;
    if (ia) gi[0] = nn_pointwise_grad(rule, g, a, b, 0, 0);
    if (ib) gi[1] = nn_pointwise_grad(rule, g, b, a, 0, 0);
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
      gi[0] = nn_pointwise_grad(NN_GRAD_NUMBER_BASE, g, a, NULL, s, 0);
    } else if (s == 0) { /* a^0 is 1 everywhere: the gradient is 0, even at NaN */
      gi[0] = nn_full_like_shape(g, g->dtype, g->ndim, g->size, 0);
    } else { /* d(a^s) = s a^(s-1), a^(s-1) as the forward computes it */
      nn_tensor *p = s == 2 ? nn_binary_scalar(NN_MUL, a, 2, 0) : nn_binary_scalar(NN_POW, a, s - 1, 0);
      if (p && s != 2) nn_binary_scalar_(NN_MUL, p, s);
      gi[0] = p ? nn_binary(NN_MUL, g, p) : NULL;
      nn_release(p);
    }
    break;
  case NN_FMOD: case NN_REMAINDER: gi[0] = nn_retain(g); break;
  case NN_FLOOR_DIVIDE: case NN_TRUNC_DIVIDE: gi[0] = nn_full_like_shape(g, g->dtype, g->ndim, g->size, 0); break;
  default: /* maximum/minimum with a number are PyTorch's clamp_min/clamp_max */
    gi[0] = nn_pointwise_grad(NN_GRAD_CLAMP, g, a, NULL, op == NN_MAXIMUM ? s : -INFINITY,
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
  const nn_backend *be = nn_dispatch(name, offsetof(nn_backend, binary_number), a, NULL, NULL);
  if (!be) return NULL;
  if (op == NN_ATAN2 || is_logical(op) || (scalar_first && (op == NN_FMOD || op == NN_REMAINDER))) {
    nn_error_set("%s: the %s operand must be a tensor", name, scalar_first ? "first" : "other");
    return NULL;
  }
  operand_type ta = tensor_operand(a), ts = number_operand(s, kind);
  if (op_dtypes(name, op, scalar_first ? ts : ta, scalar_first ? ta : ts, &compute, &out_dtype) < 0 ||
      check_integer_power(name, op, compute, s, scalar_first) < 0)
    return NULL;
  nn_tensor *out = nn_empty_like_shape(a, out_dtype, a->ndim, a->size);
  if (!out) return NULL;
  if (run_binary_number(be, op, compute, out, a, s, scalar_first) < 0) {
    nn_release(out);
    return NULL;
  }
  if (!gives_bool(op) && nn_needs_grad(a, NULL, NULL)) {
    /* PyTorch's names: x + 2 is AddBackward0, 2 - x RsubBackward1, 2 / x a
       reciprocal times 2 (MulBackward0), 2 ^ x PowBackward2 */
    static const char *const node_names[] = {"AddBackward0", "SubBackward0", "MulBackward0",
                                             "DivBackward0", "PowBackward0", "ClampMinBackward0",
                                             "ClampMaxBackward0"};
    const char *node_name = op == NN_FMOD ? "FmodBackward0"
                            : op == NN_REMAINDER ? "RemainderBackward0"
                            : is_rounded_division(op) ? "DivBackward3" : node_names[op];
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
  static const char *const logical_node_names[] = {"LogicalAndBackward0", "LogicalOrBackward0",
                                                   "LogicalXorBackward0"};
  if (is_logical(op)) return logical_node_names[op - NN_LOGICAL_AND];
  return is_comparison(op) ? comparison_node_names[with_tensor][op - NN_GT] : NULL;
}

int nn_binary_(nn_binary_op op, nn_tensor *a, nn_tensor *b) {
  const char *name = binary_inplace_names[op];
  int ndim;
  int64_t size[NN_MAX_DIMS];
  nn_dtype compute, out_dtype;
  const nn_backend *be = nn_dispatch(name, offsetof(nn_backend, binary), a, b, NULL);
  if (!be || nn_broadcast_shape(name, a, b, &ndim, size) < 0) return -1;
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
  if (run_binary(be, op, compute, a, a, b) < 0) return -1;
  nn_bump_version(a);
  return 0;
}

int nn_binary_number_(nn_binary_op op, nn_tensor *a, double s, nn_number_kind kind) {
  const char *name = binary_inplace_names[op];
  nn_dtype compute, out_dtype;
  const nn_backend *be = nn_dispatch(name, offsetof(nn_backend, binary_number), a, NULL, NULL);
  if (!be) return -1;
  if (op == NN_ATAN2 || is_logical(op)) {
    nn_error_set("%s: the other operand must be a tensor", name);
    return -1;
  }
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
  if (run_binary_number(be, op, compute, a, a, s, 0) < 0) return -1;
  nn_bump_version(a);
  return 0;
}

int nn_binary_scalar_(nn_binary_op op, nn_tensor *a, double s) {
  return nn_binary_number_(op, a, s, NN_NUMBER_AUTO);
}

/* ---- unary ----------------------------------------------------------- */
/* The result dtype, PyTorch's: ops exact on integers keep the dtype, the
   rest compute in float32. On bool, sign stays bool, and negation, abs,
   relu and the roundings are refused as PyTorch refuses them. */
static int unary_dtype(const char *name, nn_unary_op op, nn_dtype a, nn_dtype *out) {
  if (nn_unary_gives_bool(op)) {
    *out = NN_BOOL;
    return 0;
  }
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
  case NN_FRAC:
    nn_error_set("%s: not supported for a %s tensor; convert it first (float())", name,
                 nn_dtype_name(a));
    return -1;
  case NN_SQUARE: *out = a == NN_BOOL ? NN_INT64 : a; return 0; /* a bool's square counts in int64, as PyTorch */
  case NN_ISNAN: case NN_ISINF: case NN_ISFINITE: case NN_LOGICAL_NOT: *out = NN_BOOL; return 0;
  case NN_ABS: case NN_FLOOR: case NN_CEIL: case NN_ROUND: case NN_RELU: case NN_TRUNC:
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

static int run_unary(const nn_backend *be, nn_unary_op op, nn_tensor *out, nn_tensor *a) {
  nn_tensor *ca;
  if (dense_input(a, out, &ca) < 0) return -1;
  nn_iter it;
  nn_tensor *ts[2] = {out, read_as(a, ca)};
  nn_iter_init(&it, 2, ts, out->ndim, out->size);
  int status = be->unary(op, &it);
  release_copy(ca);
  return status;
}

/* gi = g op'(v), v as nn_unary_grad_reads_output (math/elementwise.h) says:
   the op's output or its input. */
nn_tensor *nn_unary_backward(nn_unary_op op, nn_tensor *g, nn_tensor *v) {
  if (nn_backward_records(g, v, NULL)) return nn_unary_backward_graph(op, g, v);
  const nn_backend *be = nn_dispatch(unary_names[op], offsetof(nn_backend, unary_backward), g, v, NULL);
  if (!be) return NULL;
  if (g->dtype != v->dtype) {
    nn_error_set("%s backward: gradient dtype %s differs from %s", unary_names[op],
                 nn_dtype_name(g->dtype), nn_dtype_name(v->dtype));
    return NULL;
  }
  if (nn_half_dtype(g->dtype)) { /* the kernels' loops are float32's and float64's */
    nn_tensor *gf = nn_to_dtype(g, NN_FLOAT32), *vf = gf ? nn_to_dtype(v, NN_FLOAT32) : NULL;
    nn_tensor *rf = vf ? nn_unary_backward(op, gf, vf) : NULL, *r = rf ? nn_to_dtype(rf, g->dtype) : NULL;
    nn_release(gf), nn_release(vf), nn_release(rf);
    return r;
  }
  nn_tensor *out = nn_empty_like(v), *cg = NULL, *cv = NULL;
  int status = -1;
  if (out && dense_input(g, out, &cg) == 0 && dense_input(v, out, &cv) == 0) {
    nn_iter it;
    nn_tensor *ts[3] = {out, read_as(g, cg), read_as(v, cv)};
    nn_iter_init(&it, 3, ts, out->ndim, out->size);
    status = be->unary_backward(op, &it);
  }
  release_copy(cg);
  release_copy(cv);
  if (status < 0) {
    nn_release(out);
    return NULL;
  }
  return out;
}

static int unary_backward(nn_node *node, nn_tensor *g, nn_tensor **gi) {
  gi[0] = nn_unary_backward((nn_unary_op)node->ints[0], g, node->saved[0]);
  return gi[0] ? 0 : -1;
}

nn_tensor *nn_unary(nn_unary_op op, nn_tensor *a) {
  nn_dtype dtype;
  const nn_backend *be = nn_dispatch(unary_names[op], offsetof(nn_backend, unary), a, NULL, NULL);
  if (!be || unary_dtype(unary_names[op], op, a->dtype, &dtype) < 0) return NULL;
  nn_tensor *out = nn_empty_like_shape(a, dtype, a->ndim, a->size);
  if (!out) return NULL;
  if (run_unary(be, op, out, a) < 0) {
    nn_release(out);
    return NULL;
  }
  if (!nn_unary_gives_bool(op) && nn_needs_grad(a, NULL, NULL)) {
    static const char *const node_names[] = {
        "NegBackward0",  "ExpBackward0",  "LogBackward0",  "SqrtBackward0", "AbsBackward0",
        "SigmoidBackward0", "TanhBackward0", "ReluBackward0", "StepBackward0", "SinBackward0",
        "CosBackward0",  "SignBackward0", "FloorBackward0", "CeilBackward0", "RoundBackward0",
        "Log1PBackward0", "Expm1Backward0", "Log2Backward0", "Log10Backward0", "RsqrtBackward0",
        "ReciprocalBackward0", "PowBackward0", "TanBackward0", "AsinBackward0", "AcosBackward0",
        "AtanBackward0", "SinhBackward0", "CoshBackward0", "ErfBackward0", "ErfinvBackward0",
        "TruncBackward0", "FracBackward0"};
    nn_node *node = nn_node_attach(out, node_names[op], unary_backward, 1, a, NULL, NULL);
    if (!node) {
      nn_release(out);
      return NULL;
    }
    node->ints[0] = op;
    if (nn_unary_grad_reads_output(op)) nn_node_save_output(node, 0, out);
    else nn_node_save(node, 0, a);
  }
  return out;
}

int nn_unary_(nn_unary_op op, nn_tensor *a) {
  const char *name = unary_inplace_names[op];
  nn_dtype dtype;
  const nn_backend *be = nn_dispatch(name, offsetof(nn_backend, unary), a, NULL, NULL);
  if (!be || unary_dtype(name, op, a->dtype, &dtype) < 0 ||
      check_inplace_dtype(name, a->dtype, dtype) < 0)
    return -1;
  nn_inplace ip;
  int record = nn_inplace_begin(&ip, name, a, NULL, 0);
  if (record < 0) return -1;
  if (record)
    return nn_inplace_commit(&ip, nn_unary(op, ip.self),
                             nn_unary_gives_bool(op) ? "LogicalNotBackward0" : NULL);
  if (run_unary(be, op, a, a) < 0) return -1;
  nn_bump_version(a);
  return 0;
}

/* ---- clamp ----------------------------------------------------------- */
/* PyTorch 1.13's clamp: NaN stays NaN, a NaN bound makes every value NaN
   (but leaves them all as they are when it is the only bound given), and
   otherwise min(max(x, lo), hi), so lo > hi gives hi everywhere. */
static int run_clamp(const nn_backend *be, nn_tensor *out, nn_tensor *a, double lo, double hi) {
  if ((isnan(lo) && hi == INFINITY) || (isnan(hi) && lo == -INFINITY)) {
    lo = -INFINITY, hi = INFINITY; /* PyTorch ignores a NaN bound given alone */
  } else if (isnan(lo) || isnan(hi)) {
    /* the dtype conversion, then NaN everywhere */
    if (out != a && nn_copy_(out, a) < 0) return -1;
    return nn_fill_(out, NAN);
  }
  nn_iter it;
  nn_tensor *ts[2] = {out, a};
  nn_iter_init(&it, 2, ts, out->ndim, out->size);
  return be->clamp(&it, lo, hi);
}

/* The gradient passes where lo <= x <= hi, bounds included, as PyTorch's
   clamp_backward: nowhere when lo > hi, a bound or x is NaN. */
static int clamp_backward(nn_node *node, nn_tensor *g, nn_tensor **gi) {
  gi[0] = nn_pointwise_grad(NN_GRAD_CLAMP, g, node->saved[0], NULL, node->scalar[0], node->scalar[1]);
  return gi[0] ? 0 : -1;
}

/* The dtype of clamp(a, lo, hi): the bounds are numbers in PyTorch's promotion. */
static nn_dtype clamp_dtype(nn_tensor *a, double lo, double hi) {
  nn_dtype d = common_dtype(tensor_operand(a), number_operand(lo, NN_NUMBER_AUTO));
  operand_type with_lo = {d, tensor_operand(a).tier};
  return common_dtype(with_lo, number_operand(hi, NN_NUMBER_AUTO));
}

nn_tensor *nn_clamp(nn_tensor *a, double lo, double hi) {
  const nn_backend *be = nn_dispatch("clamp", offsetof(nn_backend, clamp), a, NULL, NULL);
  if (!be) return NULL;
  /* an absent bound (an infinity) takes no part in the dtype */
  nn_tensor *out = nn_empty_like_shape(a, clamp_dtype(a, isinf(lo) ? 0 : lo, isinf(hi) ? 0 : hi),
                                       a->ndim, a->size);
  if (!out) return NULL;
  if (run_clamp(be, out, a, lo, hi) < 0) {
    nn_release(out);
    return NULL;
  }
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
  const nn_backend *be = nn_dispatch("clamp_", offsetof(nn_backend, clamp), a, NULL, NULL);
  if (!be ||
      check_inplace_dtype("clamp_", a->dtype, clamp_dtype(a, isinf(lo) ? 0 : lo, isinf(hi) ? 0 : hi)) < 0)
    return -1;
  nn_inplace ip;
  int record = nn_inplace_begin(&ip, "clamp_", a, NULL, 0);
  if (record < 0) return -1;
  if (record) return nn_inplace_commit(&ip, nn_clamp(ip.self, lo, hi), NULL);
  if (run_clamp(be, a, a, lo, hi) < 0) return -1;
  nn_bump_version(a);
  return 0;
}

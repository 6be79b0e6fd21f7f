/* higher_order.c: the backward ops when a backward pass records itself
 * (create_graph, issue 12). A backward op's kernel computes its gradient
 * in one loop and records nothing; while a pass records and an operand
 * needs a gradient, the op computes the same gradient from ordinary fronts
 * instead (each of which records its node), so its gradient is
 * differentiable again, to any order. The formulas are the first
 * derivatives of math/elementwise.h and math/activation.h, written with
 * tensors. Where a derivative is flat (relu, clamp, a comparison's mask)
 * its value comes from the kernel, untracked: its own derivative is zero. */
#include "internal.h"

/* ---- a small expression: temporaries released together ------------------ */
#define EXPR_MAX 48
typedef struct {
  nn_tensor *t[EXPR_MAX];
  int n;
} expr;

static nn_tensor *keep(expr *e, nn_tensor *t) {
  if (!t) return NULL;
  if (e->n == EXPR_MAX) {
    nn_release(t);
    nn_error_set("backward: expression too long");
    return NULL;
  }
  return e->t[e->n++] = t;
}

/* The result (a new reference) and every temporary released. */
static nn_tensor *finish(expr *e, nn_tensor *result) {
  nn_retain(result);
  for (int i = 0; i < e->n; i++) nn_release(e->t[i]);
  e->n = 0;
  return result;
}

/* A failure on the way to two results: each held only by e, so both
   pointers are cleared as e lets them go. */
static int fail_pair(expr *e, nn_tensor **a, nn_tensor **b) {
  finish(e, NULL);
  *a = *b = NULL;
  return -1;
}

static nn_tensor *bin(expr *e, nn_binary_op op, nn_tensor *a, nn_tensor *b) {
  return a && b ? keep(e, nn_binary(op, a, b)) : NULL;
}
/* a op s */
static nn_tensor *num(expr *e, nn_binary_op op, nn_tensor *a, double s) {
  return a ? keep(e, nn_binary_scalar(op, a, s, 0)) : NULL;
}
/* s op a */
static nn_tensor *rnum(expr *e, nn_binary_op op, double s, nn_tensor *a) {
  return a ? keep(e, nn_binary_scalar(op, a, s, 1)) : NULL;
}
static nn_tensor *un(expr *e, nn_unary_op op, nn_tensor *a) {
  return a ? keep(e, nn_unary(op, a)) : NULL;
}
static nn_tensor *mul(expr *e, nn_tensor *a, nn_tensor *b) { return bin(e, NN_MUL, a, b); }

/* a 0/1 tensor of like's dtype from a bool one (consumed), untracked */
static nn_tensor *as_mask(expr *e, nn_tensor *b, const nn_tensor *like) {
  if (!b) return NULL;
  nn_grad_guard guard = nn_no_grad_begin();
  nn_tensor *m = nn_to_dtype(b, like->dtype);
  nn_no_grad_end(guard);
  nn_release(b);
  return keep(e, m);
}

/* (x > s) as 0/1 in x's dtype, untracked */
static nn_tensor *greater(expr *e, nn_tensor *x, double s) {
  if (!x) return NULL;
  nn_grad_guard guard = nn_no_grad_begin();
  nn_tensor *b = nn_binary_scalar(NN_GT, x, s, 0);
  nn_no_grad_end(guard);
  return as_mask(e, b, x);
}

/* ---- unary ops ---------------------------------------------------------- */
/* op'(v) with tensors (v: the output or the input, as
   nn_unary_grad_reads_output says), or NULL without an error where the
   derivative is flat. */
static nn_tensor *unary_derivative(expr *e, nn_unary_op op, nn_tensor *v) {
  switch (op) {
  case NN_EXP: return v;
  case NN_LOG: return rnum(e, NN_DIV, 1, v);
  case NN_SQRT: return rnum(e, NN_DIV, 0.5, v);
  case NN_SIGMOID: return mul(e, v, rnum(e, NN_SUB, 1, v));
  case NN_TANH: return rnum(e, NN_SUB, 1, mul(e, v, v));
  case NN_SIN: return un(e, NN_COS, v);
  case NN_COS: return un(e, NN_NEG, un(e, NN_SIN, v));
  case NN_LOG1P: return rnum(e, NN_DIV, 1, num(e, NN_ADD, v, 1));
  case NN_EXPM1: return num(e, NN_ADD, v, 1);
  case NN_LOG2: return rnum(e, NN_DIV, 1.4426950408889634, v);  /* 1 / log 2 */
  case NN_LOG10: return rnum(e, NN_DIV, 0.43429448190325182, v); /* 1 / log 10 */
  case NN_RSQRT: return num(e, NN_MUL, mul(e, v, mul(e, v, v)), -0.5);
  case NN_RECIPROCAL: return un(e, NN_NEG, mul(e, v, v));
  case NN_SQUARE: return num(e, NN_MUL, v, 2);
  case NN_TAN: return num(e, NN_ADD, mul(e, v, v), 1);
  case NN_ASIN: return un(e, NN_RSQRT, rnum(e, NN_SUB, 1, mul(e, v, v)));
  case NN_ACOS: return un(e, NN_NEG, un(e, NN_RSQRT, rnum(e, NN_SUB, 1, mul(e, v, v))));
  case NN_ATAN: return rnum(e, NN_DIV, 1, num(e, NN_ADD, mul(e, v, v), 1));
  case NN_SINH: return un(e, NN_COSH, v);
  case NN_COSH: return un(e, NN_SINH, v);
  case NN_ERF: /* 2 / sqrt(pi) exp(-x^2) */
    return num(e, NN_MUL, un(e, NN_EXP, un(e, NN_NEG, mul(e, v, v))), 1.1283791670955126);
  case NN_ERFINV: /* sqrt(pi) / 2 exp(y^2) */
    return num(e, NN_MUL, un(e, NN_EXP, mul(e, v, v)), 0.88622692545275801);
  default: return NULL;
  }
}

/* g times a derivative D that is flat (piecewise constant): D is what the
   kernel gives for a gradient of ones, untracked. */
static nn_tensor *times_flat(nn_tensor *g, nn_tensor *flat) {
  if (!flat) return NULL;
  nn_tensor *gi = nn_binary(NN_MUL, g, flat);
  nn_release(flat);
  return gi;
}

static nn_tensor *ones_untracked(nn_tensor *like) {
  return nn_full_like_shape(like, like->dtype, like->ndim, like->size, 1);
}

nn_tensor *nn_unary_backward_graph(nn_unary_op op, nn_tensor *g, nn_tensor *v) {
  expr e = {{NULL}, 0};
  nn_tensor *d = unary_derivative(&e, op, v);
  if (d) return finish(&e, mul(&e, g, d));
  if (e.n > 0) return finish(&e, NULL); /* an error on the way */
  nn_tensor *ones = ones_untracked(g), *flat = NULL;
  if (ones) {
    nn_grad_guard guard = nn_no_grad_begin();
    flat = nn_unary_backward(op, ones, v);
    nn_no_grad_end(guard);
    nn_release(ones);
  }
  return times_flat(g, flat);
}

/* ---- activations -------------------------------------------------------- */
static nn_tensor *activation_derivative(expr *e, nn_activation_op op, nn_tensor *x, double a,
                                        double b, int *unknown) {
  switch (op) {
  case NN_ACT_ELU: case NN_ACT_SELU: {
    /* x > 0: scale; else scale alpha exp(x) (math/activation.h's constants) */
    double alpha = op == NN_ACT_SELU ? 1.6732632423543772848170429916717 : a;
    double scale = op == NN_ACT_SELU ? 1.0507009873554804934193349852946 : 1;
    nn_tensor *m = greater(e, x, 0);
    nn_tensor *left = num(e, NN_MUL, un(e, NN_EXP, x ? keep(e, nn_clamp(x, -INFINITY, 0)) : NULL), alpha);
    nn_tensor *d = bin(e, NN_ADD, m, mul(e, rnum(e, NN_SUB, 1, m), left));
    return scale == 1 ? d : num(e, NN_MUL, d, scale);
  }
  case NN_ACT_SILU: { /* s (1 + x (1 - s)) */
    nn_tensor *s = un(e, NN_SIGMOID, x);
    return mul(e, s, num(e, NN_ADD, mul(e, x, rnum(e, NN_SUB, 1, s)), 1));
  }
  case NN_ACT_GELU: { /* Phi(x) + x phi(x) */
    nn_tensor *cdf = num(e, NN_MUL, num(e, NN_ADD, un(e, NN_ERF, num(e, NN_MUL, x, 0.70710678118654752)), 1), 0.5);
    nn_tensor *pdf = num(e, NN_MUL, un(e, NN_EXP, num(e, NN_MUL, mul(e, x, x), -0.5)), 0.39894228040143268);
    return bin(e, NN_ADD, cdf, mul(e, x, pdf));
  }
  case NN_ACT_GELU_TANH: { /* t = tanh(k (x + c x^3)): (1 + t) / 2 + x (1 - t^2) k (1 + 3 c x^2) / 2 */
    const double k = 0.79788456080286536, c = 0.044715;
    nn_tensor *x2 = mul(e, x, x);
    nn_tensor *t = un(e, NN_TANH, num(e, NN_MUL, bin(e, NN_ADD, x, num(e, NN_MUL, mul(e, x2, x), c)), k));
    nn_tensor *inner = num(e, NN_MUL, num(e, NN_ADD, num(e, NN_MUL, x2, 3 * c), 1), 0.5 * k);
    nn_tensor *right = mul(e, mul(e, x, rnum(e, NN_SUB, 1, mul(e, t, t))), inner);
    return bin(e, NN_ADD, num(e, NN_MUL, num(e, NN_ADD, t, 1), 0.5), right);
  }
  case NN_ACT_SOFTPLUS: { /* sigmoid(beta x), 1 above the threshold */
    nn_tensor *bx = num(e, NN_MUL, x, a);
    nn_tensor *m = greater(e, bx, b);
    nn_tensor *s = un(e, NN_SIGMOID, bx);
    return bin(e, NN_ADD, mul(e, s, rnum(e, NN_SUB, 1, m)), m);
  }
  case NN_ACT_MISH: { /* t + x (1 - t^2) sigmoid(x), t = tanh(softplus(x)) */
    nn_tensor *t = un(e, NN_TANH, x ? keep(e, nn_activation(NN_ACT_SOFTPLUS, x, 1, 20)) : NULL);
    return bin(e, NN_ADD, t, mul(e, mul(e, x, rnum(e, NN_SUB, 1, mul(e, t, t))), un(e, NN_SIGMOID, x)));
  }
  case NN_ACT_LOG_SIGMOID: return rnum(e, NN_SUB, 1, un(e, NN_SIGMOID, x));
  case NN_ACT_SOFTSIGN: { /* 1 / (1 + |x|)^2 */
    nn_tensor *q = num(e, NN_ADD, un(e, NN_ABS, x), 1);
    return rnum(e, NN_DIV, 1, mul(e, q, q));
  }
  case NN_ACT_HARDSWISH: { /* 0 below -3, x / 3 + 1/2 on [-3, 3], 1 above */
    nn_tensor *low = greater(e, num(e, NN_MUL, x, -1), 3), *high = greater(e, x, 3);
    nn_tensor *middle = bin(e, NN_SUB, rnum(e, NN_SUB, 1, low), high);
    return bin(e, NN_ADD, mul(e, middle, num(e, NN_ADD, num(e, NN_DIV, x, 3), 0.5)), high);
  }
  case NN_ACT_CELU: { /* x > 0: 1; else exp(x / alpha) */
    nn_tensor *m = greater(e, x, 0);
    nn_tensor *left = un(e, NN_EXP, num(e, NN_DIV, x ? keep(e, nn_clamp(x, -INFINITY, 0)) : NULL, a));
    return bin(e, NN_ADD, m, mul(e, rnum(e, NN_SUB, 1, m), left));
  }
  case NN_ACT_TANHSHRINK: { /* 1 - (1 - tanh^2) = tanh^2 */
    nn_tensor *t = un(e, NN_TANH, x);
    return mul(e, t, t);
  }
  case NN_ACT_LEAKY_RELU: case NN_ACT_HARDTANH: case NN_ACT_HARDSIGMOID: case NN_ACT_SOFTSHRINK:
  case NN_ACT_HARDSHRINK: case NN_ACT_THRESHOLD:
    return NULL; /* flat */
  default:
    /* an activation added without its derivative here: refuse rather than
       take it for flat, which would give a silently wrong second order */
    *unknown = 1;
    return NULL;
  }
}

nn_tensor *nn_activation_backward_graph(nn_activation_op op, nn_tensor *g, nn_tensor *x, double a,
                                        double b) {
  expr e = {{NULL}, 0};
  int unknown = 0;
  nn_tensor *d = activation_derivative(&e, op, x, a, b, &unknown);
  if (unknown) {
    finish(&e, NULL);
    nn_first_order_only(nn_activation_op_name(op));
    return NULL;
  }
  if (d) return finish(&e, mul(&e, g, d));
  if (e.n > 0) return finish(&e, NULL); /* an error on the way */
  nn_tensor *ones = ones_untracked(g), *flat = NULL;
  if (ones) {
    nn_grad_guard guard = nn_no_grad_begin();
    flat = nn_activation_backward(op, ones, x, a, b);
    nn_no_grad_end(guard);
    nn_release(ones);
  }
  return times_flat(g, flat);
}

/* ---- softmax ------------------------------------------------------------- */
/* softmax: y (g - sum(g y)); log_softmax: g - exp(y) sum(g), sums along dim */
nn_tensor *nn_softmax_backward_graph(nn_tensor *g, nn_tensor *y, int dim, int log_form) {
  expr e = {{NULL}, 0};
  unsigned mask = y->ndim ? 1u << dim : 0;
  if (log_form) {
    nn_tensor *s = keep(&e, nn_sum_dims(g, mask, 1, 0));
    return finish(&e, bin(&e, NN_SUB, g, mul(&e, un(&e, NN_EXP, y), s)));
  }
  nn_tensor *gy = mul(&e, g, y);
  nn_tensor *s = gy ? keep(&e, nn_sum_dims(gy, mask, 1, 0)) : NULL;
  return finish(&e, mul(&e, y, bin(&e, NN_SUB, g, s)));
}

/* ---- the select-style gradients --------------------------------------------- */
nn_tensor *nn_pointwise_grad_graph(nn_pointwise_grad_op op, nn_tensor *g, nn_tensor *x,
                                   nn_tensor *y, double lo, double hi) {
  expr e = {{NULL}, 0};
  switch (op) {
  case NN_GRAD_POW_BASE: { /* y x^(y-1), 0 where y == 0 */
    nn_grad_guard guard = nn_no_grad_begin();
    nn_tensor *nonzero = nn_binary_scalar(NN_NE, y, 0, 0);
    nn_no_grad_end(guard);
    nn_tensor *m = as_mask(&e, nonzero, g);
    nn_tensor *d = mul(&e, mul(&e, y, bin(&e, NN_POW, x, num(&e, NN_SUB, y, 1))), m);
    return finish(&e, mul(&e, g, d));
  }
  case NN_GRAD_POW_EXPONENT: { /* x^y log x, 0 where x == 0 and y >= 0 */
    nn_grad_guard guard = nn_no_grad_begin();
    nn_tensor *zero = nn_binary_scalar(NN_EQ, x, 0, 0);
    nn_tensor *ypos = zero ? nn_binary_scalar(NN_GE, y, 0, 0) : NULL;
    nn_tensor *both = ypos ? nn_binary(NN_LOGICAL_AND, zero, ypos) : NULL;
    nn_no_grad_end(guard);
    nn_release(zero), nn_release(ypos);
    nn_tensor *skip = as_mask(&e, both, g);
    /* log(x + skip): log 1 = 0 where skipped, no -inf times 0 */
    nn_tensor *d = mul(&e, bin(&e, NN_POW, x, y), un(&e, NN_LOG, bin(&e, NN_ADD, x, skip)));
    return finish(&e, mul(&e, g, mul(&e, d, rnum(&e, NN_SUB, 1, skip))));
  }
  case NN_GRAD_NUMBER_BASE: /* s^x log s with s = lo */
    if (lo != 0) return finish(&e, mul(&e, g, num(&e, NN_MUL, rnum(&e, NN_POW, lo, x), log(lo))));
    break;
  default: break;
  }
  /* flat: maximum, minimum, clamp, 0^x */
  nn_tensor *ones = ones_untracked(g), *flat = NULL;
  if (ones) {
    nn_grad_guard guard = nn_no_grad_begin();
    flat = nn_pointwise_grad(op, ones, x, y, lo, hi);
    nn_no_grad_end(guard);
    nn_release(ones);
  }
  return times_flat(g, flat);
}

/* ---- linear ------------------------------------------------------------------ */
int nn_linear_backward_graph(nn_tensor *g, nn_tensor *x, nn_tensor *w, const int *need,
                             nn_tensor **grads) {
  grads[0] = grads[1] = grads[2] = NULL;
  nn_tensor *gt = need[1] ? nn_transpose(g, 0, 1) : NULL;
  if (need[0]) grads[0] = nn_matmul(g, w);
  if (need[1]) grads[1] = gt ? nn_matmul(gt, x) : NULL;
  if (need[2]) grads[2] = nn_sum(g, 0, 0);
  nn_release(gt);
  for (int k = 0; k < 3; k++) {
    if (need[k] && !grads[k]) {
      for (int j = 0; j < 3; j++) nn_release(grads[j]), grads[j] = NULL;
      return -1;
    }
  }
  return 0;
}

/* ---- reductions --------------------------------------------------------------- */
/* PyTorch's norm_backward: g x |x|^(p-2) / norm^(p-1), 0 where the norm is 0 */
nn_tensor *nn_norm_backward_graph(nn_tensor *g, nn_tensor *x, nn_tensor *norm, double p,
                                  unsigned mask) {
  expr e = {{NULL}, 0};
  nn_tensor *gk = keep(&e, nn_as_kept(g, x->ndim, x->size, mask));
  if (isinf(p)) { /* PyTorch's: sgn(x) g / count where |x| == norm (or NaN), shared among them */
    nn_tensor *nk = keep(&e, nn_as_kept(norm, x->ndim, x->size, mask)), *hit = NULL, *count = NULL;
    nn_grad_guard guard = nn_no_grad_begin();
    nn_tensor *size = nk ? keep(&e, nn_unary(NN_ABS, x)) : NULL;
    nn_tensor *same = size ? nn_binary(NN_EQ, size, nk) : NULL;
    nn_tensor *nan = same ? nn_unary(NN_ISNAN, size) : NULL;
    nn_tensor *either = nan ? nn_binary(NN_LOGICAL_OR, same, nan) : NULL;
    nn_release(same), nn_release(nan);
    if ((hit = as_mask(&e, either, x))) count = keep(&e, nn_sum_dims(hit, mask, 1, 0));
    nn_no_grad_end(guard);
    return finish(&e, mul(&e, un(&e, NN_SIGN, x), mul(&e, bin(&e, NN_DIV, gk, count), hit)));
  }
  if (p == 1) return finish(&e, mul(&e, gk, un(&e, NN_SIGN, x)));
  nn_tensor *nk = keep(&e, nn_as_kept(norm, x->ndim, x->size, mask));
  nn_grad_guard guard = nn_no_grad_begin();
  nn_tensor *zero = nk ? nn_binary_scalar(NN_EQ, nk, 0, 0) : NULL;
  nn_no_grad_end(guard);
  nn_tensor *z = as_mask(&e, zero, x);
  nn_tensor *denom = bin(&e, NN_ADD, p == 2 ? nk : num(&e, NN_POW, nk, p - 1), z);
  nn_tensor *top = p == 2 ? x : mul(&e, x, num(&e, NN_POW, un(&e, NN_ABS, x), p - 2));
  nn_tensor *d = mul(&e, bin(&e, NN_DIV, top, denom), rnum(&e, NN_SUB, 1, z));
  return finish(&e, mul(&e, gk, d));
}

/* max/min along a dim: g scattered at the indices; over all dims: shared
   by the elements equal to the value. */
nn_tensor *nn_extreme_backward_graph(nn_tensor *g, nn_tensor *indices, nn_tensor *x,
                                     nn_tensor *value, unsigned mask, int ndim,
                                     const int64_t *size) {
  expr e = {{NULL}, 0};
  nn_tensor *gk = keep(&e, nn_as_kept(g, ndim, size, mask));
  if (indices) {
    int dim = 0;
    while (dim < ndim && !(mask >> dim & 1)) dim++;
    nn_tensor *ik = keep(&e, nn_as_kept(indices, ndim, size, mask));
    nn_tensor *z = gk ? keep(&e, nn_full_like_shape(g, g->dtype, ndim, size, 0)) : NULL;
    return finish(&e, z && ik ? keep(&e, nn_scatter(z, dim, ik, gk, 1, 0)) : NULL);
  }
  nn_tensor *vk = keep(&e, nn_as_kept(value, ndim, size, mask));
  nn_grad_guard guard = nn_no_grad_begin();
  nn_tensor *eq = vk ? nn_binary(NN_EQ, x, vk) : NULL;
  nn_no_grad_end(guard);
  nn_tensor *m = as_mask(&e, eq, g);
  nn_tensor *count = NULL;
  if (m) {
    guard = nn_no_grad_begin();
    count = keep(&e, nn_sum_dims(m, mask, 1, 0));
    nn_no_grad_end(guard);
  }
  return finish(&e, mul(&e, gk, bin(&e, NN_DIV, m, count)));
}

/* values picked at indices along dim: g put back there */
nn_tensor *nn_scatter_line_backward_graph(nn_tensor *g, nn_tensor *indices, int dim, int ndim,
                                          const int64_t *size) {
  nn_tensor *z = nn_full_like_shape(g, g->dtype, ndim, size, 0);
  nn_tensor *gi = z ? nn_scatter(z, dim, indices, g, 1, 0) : NULL;
  nn_release(z);
  return gi;
}

/* ---- losses ---------------------------------------------------------------- */
/* The elementwise losses: l'(x, y) with tensors, times the weights and g
   (divided as the forward divided the sum). */
int nn_loss_backward_graph(const nn_loss_spec *spec, nn_tensor *g, nn_tensor *x, nn_tensor *y,
                           int need_x, int need_y, nn_tensor **gx, nn_tensor **gy) {
  *gx = *gy = NULL;
  expr e = {{NULL}, 0};
  /* the weights, then the pos_weights, spread over x's elements (loss.c) */
  nn_tensor *w = NULL, *pw = NULL;
  if (spec->weights) {
    int64_t n = nn_numel(x);
    for (int k = 0; k < spec->has_weight + spec->has_pos_weight; k++) {
      nn_tensor *part = keep(&e, nn_narrow(spec->weights, 0, k * n, n));
      nn_tensor *shaped = part ? keep(&e, nn_reshape(part, x->ndim, x->size)) : NULL;
      if (!shaped) return fail_pair(&e, gx, gy);
      *(k == 0 && spec->has_weight ? &w : &pw) = shaped;
    }
  }
  nn_tensor *scale = spec->reduction != NN_REDUCTION_NONE ? num(&e, NN_DIV, g, spec->divisor) : g;
  nn_tensor *d = bin(&e, NN_SUB, x, y), *dx = NULL, *dy = NULL;
  switch (spec->kind) {
  case NN_LOSS_MSE: dx = num(&e, NN_MUL, d, 2); break;
  case NN_LOSS_L1: dx = un(&e, NN_SIGN, d); break;
  case NN_LOSS_SMOOTH_L1: /* clamp(d / beta, -1, 1) */
    dx = spec->param == 0 ? un(&e, NN_SIGN, d)
                          : d ? keep(&e, nn_clamp(keep(&e, nn_binary_scalar(NN_DIV, d, spec->param, 0)), -1, 1)) : NULL;
    break;
  case NN_LOSS_HUBER: dx = d ? keep(&e, nn_clamp(d, -spec->param, spec->param)) : NULL; break;
  case NN_LOSS_KL_DIV: /* y (log y - x) */
    dx = un(&e, NN_NEG, y);
    dy = bin(&e, NN_SUB, num(&e, NN_ADD, un(&e, NN_LOG, y), 1), x);
    break;
  case NN_LOSS_KL_DIV_LOG_TARGET: /* exp(y) (y - x) */
    dx = un(&e, NN_NEG, un(&e, NN_EXP, y));
    dy = mul(&e, un(&e, NN_EXP, y), num(&e, NN_ADD, un(&e, NN_NEG, d), 1));
    break;
  case NN_LOSS_BCE_WITH_LOGITS: /* (1 - y) x + lw log(1 + exp(-x)), lw = 1 + (p - 1) y */
    if (pw) { /* (p y + 1 - y) sigmoid(x) - p y; -x + (p - 1) softplus(-x) */
      nn_tensor *py = mul(&e, pw, y);
      dx = bin(&e, NN_SUB, mul(&e, bin(&e, NN_ADD, py, rnum(&e, NN_SUB, 1, y)), un(&e, NN_SIGMOID, x)), py);
      nn_tensor *sp = x ? keep(&e, nn_activation(NN_ACT_LOG_SIGMOID, x, 0, 0)) : NULL; /* -softplus(-x) */
      dy = bin(&e, NN_SUB, un(&e, NN_NEG, x), mul(&e, num(&e, NN_SUB, pw, 1), sp));
    } else {
      dx = bin(&e, NN_SUB, un(&e, NN_SIGMOID, x), y);
      dy = un(&e, NN_NEG, x);
    }
    break;
  case NN_LOSS_BCE: /* -(y log x + (1 - y) log(1 - x)) */
    dx = bin(&e, NN_DIV, d, mul(&e, x, rnum(&e, NN_SUB, 1, x)));
    dy = bin(&e, NN_SUB, un(&e, NN_LOG, rnum(&e, NN_SUB, 1, x)), un(&e, NN_LOG, x));
    break;
  }
  if (!dy && dx) dy = un(&e, NN_NEG, dx); /* a function of x - y */
  if (w) dx = mul(&e, dx, w), dy = mul(&e, dy, w);
  if (need_x && !(*gx = mul(&e, scale, dx))) return fail_pair(&e, gx, gy);
  if (need_y && !(*gy = mul(&e, scale, dy))) return fail_pair(&e, gx, gy);
  nn_retain(*gx), nn_retain(*gy);
  finish(&e, NULL);
  return 0;
}

/* cross_entropy and nll_loss over classes (loss.c has the formulas):
   dl/dlp broadcast from g, then log_softmax's backward for logits */
int nn_class_loss_backward_graph(int from_logits, int probabilities, int reduction,
                                 double smoothing, nn_tensor *g, nn_tensor *x, nn_tensor *y,
                                 nn_tensor *coef, int need_x, int need_y, nn_tensor **gx,
                                 nn_tensor **gy) {
  *gx = *gy = NULL;
  expr e = {{NULL}, 0};
  int cdim = x->ndim > 1 ? 1 : 0;
  int64_t classes = x->size[cdim], kept[NN_MAX_DIMS], across[NN_MAX_DIMS];
  for (int d = 0; d < x->ndim; d++) kept[d] = x->size[d], across[d] = 1;
  kept[cdim] = 1, across[cdim] = classes;
  /* g per position gets a class dim of 1 */
  nn_tensor *gb = reduction == NN_REDUCTION_NONE && x->ndim > 1 ? keep(&e, nn_reshape(g, x->ndim, kept)) : g;
  nn_tensor *dlp;
  if (!probabilities) {
    dlp = mul(&e, gb, coef);
  } else {
    if (reduction == NN_REDUCTION_MEAN) /* PyTorch divides by the positions */
      gb = num(&e, NN_DIV, gb, classes ? (double)(nn_numel(x) / classes) : 1.0);
    nn_tensor *gw = coef && gb ? mul(&e, gb, keep(&e, nn_reshape(coef, x->ndim, across))) : gb;
    nn_tensor *ys = smoothing != 0 ? num(&e, NN_ADD, num(&e, NN_MUL, y, 1 - smoothing), smoothing / (double)classes) : y;
    dlp = un(&e, NN_NEG, mul(&e, gw, ys));
    if (need_y) {
      nn_tensor *lp = keep(&e, nn_softmax(x, cdim, 1));
      if (!(*gy = mul(&e, num(&e, NN_MUL, gw, -(1 - smoothing)), lp))) return fail_pair(&e, gx, gy);
    }
  }
  if (need_x) {
    if (from_logits && dlp) {
      nn_tensor *total = keep(&e, nn_sum_dims(dlp, 1u << cdim, 1, 0));
      dlp = bin(&e, NN_SUB, dlp, mul(&e, keep(&e, nn_softmax(x, cdim, 0)), total));
    }
    if (!(*gx = dlp)) return fail_pair(&e, gx, gy);
  }
  nn_retain(*gx), nn_retain(*gy);
  finish(&e, NULL);
  return 0;
}

/* ---- batch_norm ------------------------------------------------------------ */
/* PyTorch's batchnorm_double_backward's first derivative, from fronts; per
   channel (dim 1) over the other dims:
     xhat = (x - mean) invstd, dw = sum(g xhat), db = sum(g)
     training: dx = invstd (gw - mean(gw) - xhat mean(gw xhat)), gw = g w
     else:     dx = gw invstd */
int nn_batch_norm_backward_graph(nn_tensor *g, nn_tensor *x, nn_tensor *w, nn_tensor *stats,
                                 int training, double eps, const int *need, nn_tensor **grads) {
  grads[0] = grads[1] = grads[2] = NULL;
  expr e = {{NULL}, 0};
  unsigned across = ((1u << x->ndim) - 1) & ~2u; /* every dim but the channels' */
  int64_t channels = x->size[1], shape[NN_MAX_DIMS];
  for (int d = 0; d < x->ndim; d++) shape[d] = d == 1 ? channels : 1;
  nn_tensor *mean, *invstd;
  if (training) {
    mean = keep(&e, nn_sum_dims(x, across, 1, 1));
    nn_tensor *centred = bin(&e, NN_SUB, x, mean);
    nn_tensor *var = centred ? keep(&e, nn_sum_dims(keep(&e, nn_binary(NN_MUL, centred, centred)), across, 1, 1)) : NULL;
    invstd = un(&e, NN_RSQRT, num(&e, NN_ADD, var, eps));
  } else { /* constants: stats holds the means, then the 1 / sqrt(var + eps) */
    nn_grad_guard guard = nn_no_grad_begin();
    nn_tensor *parts[2] = {NULL, NULL};
    for (int k = 0; k < 2; k++) {
      nn_tensor *part = nn_narrow(stats, 0, k * channels, channels);
      nn_tensor *typed = part ? nn_to_dtype(part, x->dtype) : NULL;
      parts[k] = typed ? keep(&e, nn_reshape(typed, x->ndim, shape)) : NULL;
      nn_release(part), nn_release(typed);
    }
    nn_no_grad_end(guard);
    mean = parts[0], invstd = parts[1];
  }
  nn_tensor *xhat = mul(&e, bin(&e, NN_SUB, x, mean), invstd);
  if (need[0]) {
    nn_tensor *gw = w ? mul(&e, g, keep(&e, nn_reshape(w, x->ndim, shape))) : g;
    if (training && gw && xhat) {
      nn_tensor *m1 = keep(&e, nn_sum_dims(gw, across, 1, 1));
      nn_tensor *gx = mul(&e, gw, xhat);
      nn_tensor *m2 = gx ? keep(&e, nn_sum_dims(gx, across, 1, 1)) : NULL;
      gw = bin(&e, NN_SUB, bin(&e, NN_SUB, gw, m1), mul(&e, xhat, m2));
    }
    grads[0] = mul(&e, gw, invstd);
  }
  if (need[1]) {
    nn_tensor *gx = mul(&e, g, xhat);
    grads[1] = gx ? keep(&e, nn_sum_dims(gx, across, 0, 0)) : NULL;
  }
  if (need[2]) grads[2] = keep(&e, nn_sum_dims(g, across, 0, 0));
  int failed = 0;
  for (int k = 0; k < 3; k++) failed |= need[k] && !grads[k];
  for (int k = 0; k < 3; k++) failed ? (void)(grads[k] = NULL) : (void)nn_retain(grads[k]);
  finish(&e, NULL);
  return failed ? -1 : 0;
}

/* ---- prelu -------------------------------------------------------------------- */
/* x > 0: g and no weight gradient; else g w and g x into w's channel
   (dim 1, or one weight for all) */
int nn_prelu_backward_graph(nn_tensor *g, nn_tensor *x, nn_tensor *w, int need_x, int need_w,
                            nn_tensor **gx, nn_tensor **gw) {
  *gx = *gw = NULL;
  expr e = {{NULL}, 0};
  int64_t shape[NN_MAX_DIMS];
  for (int d = 0; d < x->ndim; d++) shape[d] = d == 1 ? nn_numel(w) : 1;
  int per_channel = nn_numel(w) > 1;
  nn_tensor *wb = per_channel ? keep(&e, nn_reshape(w, x->ndim, shape)) : w;
  nn_tensor *pos = greater(&e, x, 0), *neg = rnum(&e, NN_SUB, 1, pos);
  if (need_x && !(*gx = mul(&e, g, bin(&e, NN_ADD, pos, mul(&e, neg, wb)))))
    return fail_pair(&e, gx, gw);
  if (need_w) {
    nn_tensor *part = mul(&e, g, mul(&e, x, neg));
    nn_tensor *summed = part ? keep(&e, nn_sum_to_shape(part, x->ndim, shape)) : NULL;
    if (!(*gw = summed ? keep(&e, nn_reshape(summed, w->ndim, w->size)) : NULL)) return fail_pair(&e, gx, gw);
  }
  nn_retain(*gx), nn_retain(*gw);
  finish(&e, NULL);
  return 0;
}

/* ---- products along a dim ------------------------------------------------------- */
static nn_tensor *flipped(expr *e, nn_tensor *t, int dim) {
  return t ? keep(e, nn_flip(t, 1u << dim)) : NULL;
}
static nn_tensor *cumsum(expr *e, nn_tensor *t, int dim) { return t ? keep(e, nn_cumsum(t, dim)) : NULL; }
static nn_tensor *cumprod(expr *e, nn_tensor *t, int dim) { return t ? keep(e, nn_cumprod(t, dim)) : NULL; }
/* sums from the far end of dim */
static nn_tensor *sums_from_end(expr *e, nn_tensor *t, int dim) {
  return flipped(e, cumsum(e, flipped(e, t, dim), dim), dim);
}
/* (a == s) as 0/1 in like's dtype, untracked */
static nn_tensor *equal_to(expr *e, nn_tensor *a, double s, const nn_tensor *like) {
  if (!a) return NULL;
  nn_grad_guard guard = nn_no_grad_begin();
  nn_tensor *b = nn_binary_scalar(NN_EQ, a, s, 0);
  nn_no_grad_end(guard);
  return as_mask(e, b, like);
}

/* cumprod: d out_m / d x_k = prod over j <= m, j != k of x_j. Without a
   zero, the sums from the end of g out, over x. With one, as PyTorch's
   cumprod_backward under create_graph (O(n^2) along dim): for each k, the
   product before k times the sum over m >= k of g_m prod_{k < j <= m} x_j,
   so that the gradient after a zero keeps its dependence on that zero. */
nn_tensor *nn_cumprod_backward_graph(nn_tensor *g, nn_tensor *x, nn_tensor *out, int dim) {
  expr e = {{NULL}, 0};
  double zeros = 0;
  nn_tensor *zero = equal_to(&e, x, 0, x);
  nn_grad_guard guard = nn_no_grad_begin();
  nn_tensor *count = zero ? keep(&e, nn_sum_dims(zero, (1u << x->ndim) - 1u, 0, 0)) : NULL;
  nn_no_grad_end(guard);
  if (!count || nn_item(count, &zeros) < 0) return finish(&e, NULL);
  if (zeros == 0) return finish(&e, bin(&e, NN_DIV, sums_from_end(&e, mul(&e, g, out), dim), x));
  if (x->ndim == 0) return finish(&e, g); /* one element: d out / d x = 1 */
  int64_t n = x->size[dim], one[NN_MAX_DIMS];
  for (int d = 0; d < x->ndim; d++) one[d] = d == dim ? 1 : x->size[d];
  nn_tensor *ones = keep(&e, nn_full_like_shape(x, x->dtype, x->ndim, one, 1));
  nn_tensor **column = calloc((size_t)n, sizeof *column);
  int status = ones && column ? 0 : -1;
  nn_tensor *before = ones ? nn_retain(ones) : NULL; /* the product of x before k */
  for (int64_t k = 0; k < n && status == 0; k++) {
    expr step = {{NULL}, 0};
    nn_tensor *ahead = ones;
    if (k + 1 < n) {
      nn_tensor *pair[2] = {ones, cumprod(&step, keep(&step, nn_narrow(x, dim, k + 1, n - k - 1)), dim)};
      ahead = pair[1] ? keep(&step, nn_cat(2, pair, dim)) : NULL;
    }
    nn_tensor *terms = mul(&step, keep(&step, nn_narrow(g, dim, k, n - k)), ahead);
    nn_tensor *sum = terms ? keep(&step, nn_sum_dims(terms, 1u << dim, 1, 0)) : NULL;
    column[k] = finish(&step, mul(&step, before, sum));
    nn_tensor *next = k + 1 < n ? mul(&step, before, keep(&step, nn_narrow(x, dim, k, 1))) : NULL;
    nn_release(before);
    before = finish(&step, next);
    if (!column[k] || (k + 1 < n && !before)) status = -1;
  }
  nn_release(before);
  nn_tensor *gi = status == 0 ? nn_cat((int)n, column, dim) : NULL;
  for (int64_t k = 0; column && k < n; k++) nn_release(column[k]);
  free(column);
  if (!column) nn_error_set("cumprod backward: out of memory");
  finish(&e, NULL);
  return gi;
}

/* prod along one dim or all (mask): g times the product of the others,
   from the products before and after each element (no division, so zeros
   are no special case) */
nn_tensor *nn_prod_backward_graph(nn_tensor *g, nn_tensor *x, unsigned mask) {
  expr e = {{NULL}, 0};
  nn_tensor *gk = keep(&e, nn_as_kept(g, x->ndim, x->size, mask));
  int all = x->ndim == 0 || mask == (1u << x->ndim) - 1u, dim = 0;
  while (!all && !(mask >> dim & 1)) dim++;
  int64_t count = nn_numel(x);
  nn_tensor *line = all ? keep(&e, nn_reshape(x, 1, &count)) : x;
  int64_t n = line ? line->size[dim] : 0, one[NN_MAX_DIMS];
  if (!line || n == 0) return finish(&e, line ? bin(&e, NN_MUL, gk, x) : NULL); /* empty: an empty gradient */
  for (int d = 0; d < line->ndim; d++) one[d] = d == dim ? 1 : line->size[d];
  nn_tensor *ones = keep(&e, nn_full_like_shape(line, line->dtype, line->ndim, one, 1));
  nn_tensor *head = keep(&e, nn_narrow(line, dim, 0, n - 1)), *tail = keep(&e, nn_narrow(line, dim, 1, n - 1));
  nn_tensor *pair[2] = {ones, head};
  nn_tensor *shifted = ones && head ? keep(&e, nn_cat(2, pair, dim)) : NULL;
  pair[0] = tail, pair[1] = ones;
  nn_tensor *shifted_back = ones && tail ? keep(&e, nn_cat(2, pair, dim)) : NULL;
  nn_tensor *others = mul(&e, cumprod(&e, shifted, dim), flipped(&e, cumprod(&e, flipped(&e, shifted_back, dim), dim), dim));
  nn_tensor *shaped = all && others ? keep(&e, nn_reshape(others, x->ndim, x->size)) : others;
  return finish(&e, mul(&e, gk, shaped));
}

/* activations.c: the activations beyond the unary ops of elementwise.c
 * (sigmoid, tanh, relu, step): the elementwise ones with up to two
 * parameters, softmax and log_softmax along a dimension, and PReLU with its
 * learnable slope. Each formula has its derivative beside it.
 *
 * The formulas, and the value a derivative takes at a kink, are PyTorch
 * 1.13's (aten/src/ATen/native/cpu/Activation.cpp, GeluKernel.cpp,
 * SoftMaxKernel.cpp, Activation.cpp's prelu), rewritten where PyTorch's
 * form overflows or cancels (softplus, mish, GELU's left tail) into one
 * that is equal in exact arithmetic and finite everywhere. float32 and
 * float64 both compute in double and round once at the end. */
#include "internal.h"

static const char *const activation_names[NN_ACT_COUNT] = {
    "leaky_relu", "elu",         "selu",        "silu",    "gelu",        "gelu_tanh",
    "softplus",   "mish",        "hardtanh",    "hardsigmoid", "log_sigmoid", "softsign"};

/* PyTorch's autograd names (selu is elu with the paper's constants there). */
static const char *const node_names[NN_ACT_COUNT] = {
    "LeakyReluBackward0", "EluBackward0",     "EluBackward0",         "SiluBackward0",
    "GeluBackward0",      "GeluBackward0",    "SoftplusBackward0",    "MishBackward0",
    "HardtanhBackward0",  "HardsigmoidBackward0", "LogSigmoidBackward0", "SoftsignBackward0"};

const char *nn_activation_op_name(nn_activation_op op) {
  return (unsigned)op < NN_ACT_COUNT ? activation_names[op] : NULL;
}

/* The name a user knows the op by, for error messages. */
static const char *user_name(nn_activation_op op) {
  return op == NN_ACT_GELU_TANH ? "gelu" : activation_names[op];
}

/* ---- building blocks ------------------------------------------------- */
/* sigmoid from exp of a non-positive number only: never overflows. */
static inline double stable_sigmoid(double x) {
  double e = exp(-fabs(x));
  return x >= 0 ? 1 / (1 + e) : e / (1 + e);
}

/* log(1 + e^x) = max(x, 0) + log1p(e^-|x|): finite wherever x is. */
static inline double stable_softplus(double x) {
  return (x > 0 ? x : 0) + log1p(exp(-fabs(x)));
}

/* ---- the formulas: value and derivative, op by op -------------------- */
/* leaky_relu: x > 0 ? x : slope x. At 0 the derivative is the slope. */
static inline double leaky_relu_value(double x, double slope) { return x > 0 ? x : x * slope; }
static inline double leaky_relu_derivative(double x, double slope) { return x > 0 ? 1 : slope; }

/* elu: scale (x > 0 ? x : alpha (e^x - 1)). At 0 the derivative is
   scale alpha, from the x <= 0 side, as PyTorch's elu_backward. */
static inline double elu_value(double x, double alpha, double scale) {
  return x > 0 ? scale * x : scale * alpha * expm1(x);
}
static inline double elu_derivative(double x, double alpha, double scale) {
  return x > 0 ? scale : scale * alpha * exp(x);
}

/* selu: elu with the constants of Klambauer et al., "Self-Normalizing
   Neural Networks" (2017), to PyTorch's digits. */
static const double selu_alpha = 1.6732632423543772848170429916717;
static const double selu_scale = 1.0507009873554804934193349852946;

/* silu (swish): x sigmoid(x); derivative s (1 + x (1 - s)). */
static inline double silu_value(double x) { return x * stable_sigmoid(x); }
static inline double silu_derivative(double x) {
  double s = stable_sigmoid(x);
  return s * (1 + x * (1 - s));
}

/* gelu: x Phi(x), Phi the standard normal CDF; derivative Phi(x) + x phi(x).
   PyTorch writes Phi as (1 + erf(x / sqrt 2)) / 2, which cancels to
   nothing in the left tail; erfc(-x / sqrt 2) / 2 is the same number
   without the cancellation. */
static const double inv_sqrt2 = 0.70710678118654752440;
static const double inv_sqrt_2pi = 0.39894228040143267794;
static inline double gelu_value(double x) { return x * 0.5 * erfc(-x * inv_sqrt2); }
static inline double gelu_derivative(double x) {
  return 0.5 * erfc(-x * inv_sqrt2) + x * inv_sqrt_2pi * exp(-0.5 * x * x);
}

/* gelu, tanh approximation (Hendrycks and Gimpel, 2016):
   x/2 (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))). */
static const double gelu_beta = 0.79788456080286535588; /* sqrt(2 / pi) */
static const double gelu_kappa = 0.044715;
static inline double gelu_tanh_value(double x) {
  double inner = gelu_beta * (x + gelu_kappa * x * x * x);
  return 0.5 * x * (1 + tanh(inner));
}
static inline double gelu_tanh_derivative(double x) {
  double x2 = x * x, t = tanh(gelu_beta * (x + gelu_kappa * x2 * x));
  return 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * gelu_beta * (1 + 3 * gelu_kappa * x2);
}

/* softplus: log(1 + e^(beta x)) / beta, and x itself where beta x exceeds
   the threshold; derivative sigmoid(beta x), or 1 past the threshold. */
static inline double softplus_value(double x, double beta, double threshold) {
  double bx = beta * x;
  return bx > threshold ? x : stable_softplus(bx) / beta;
}
static inline double softplus_derivative(double x, double beta, double threshold) {
  double bx = beta * x;
  return bx > threshold ? 1 : stable_sigmoid(bx);
}

/* mish (Misra, 2019): x tanh(softplus(x)); derivative
   t + x sigmoid(x) (1 - t^2), t = tanh(softplus(x)). With n = e^x,
   tanh(log(1 + n)) = p / (p + 2) where p = n (n + 2): one exp in place of
   PyTorch's exp, log1p and tanh, and 1 - t = 2 / (p + 2) without
   cancellation. Past x = 20, t is 1 to double precision (1 - t < 1e-17),
   and e^x may overflow: the limits are used. */
static inline double mish_value(double x) {
  if (x > 20) return x;
  double n = exp(x), p = n * (n + 2);
  return x * p / (p + 2);
}
static inline double mish_derivative(double x) {
  if (x > 20) return 1;
  double n = exp(x), p = n * (n + 2);
  double t = p / (p + 2), one_minus_t = 2 / (p + 2), sigmoid = n / (1 + n);
  return t + x * sigmoid * one_minus_t * (1 + t);
}

/* hardtanh: x clamped to [lo, hi]; the derivative is 1 strictly inside and
   0 at the bounds (PyTorch's hardtanh_backward; clamp passes them). */
static inline double hardtanh_value(double x, double lo, double hi) {
  return x < lo ? lo : (x > hi ? hi : x);
}
static inline double hardtanh_derivative(double x, double lo, double hi) {
  return x > lo && x < hi ? 1 : 0;
}

/* hardsigmoid: min(max(x + 3, 0), 6) / 6; derivative 1/6 strictly inside
   (-3, 3). PyTorch 1.13's backward multiplies by float32's 1/6 in every
   dtype (0.1666666716337204 in float64); this is the exact 1/6. */
static inline double hardsigmoid_value(double x) {
  double v = x + 3;
  v = v < 0 ? 0 : v;
  return (v > 6 ? 6 : v) / 6;
}
static inline double hardsigmoid_derivative(double x) { return x > -3 && x < 3 ? 1.0 / 6 : 0; }

/* log_sigmoid: min(x, 0) - log1p(e^-|x|); derivative sigmoid(-x). */
static inline double log_sigmoid_value(double x) {
  return (x < 0 ? x : 0) - log1p(exp(-fabs(x)));
}
static inline double log_sigmoid_derivative(double x) {
  double e = exp(-fabs(x));
  return x < 0 ? 1 / (1 + e) : e / (1 + e);
}

/* softsign: x / (1 + |x|); derivative 1 / (1 + |x|)^2. */
static inline double softsign_value(double x) { return x / (1 + fabs(x)); }
static inline double softsign_derivative(double x) {
  double d = 1 + fabs(x);
  return 1 / (d * d);
}

static inline double activation_value(nn_activation_op op, double x, double a, double b) {
  switch (op) {
  case NN_ACT_LEAKY_RELU: return leaky_relu_value(x, a);
  case NN_ACT_ELU: return elu_value(x, a, 1);
  case NN_ACT_SELU: return elu_value(x, selu_alpha, selu_scale);
  case NN_ACT_SILU: return silu_value(x);
  case NN_ACT_GELU: return gelu_value(x);
  case NN_ACT_GELU_TANH: return gelu_tanh_value(x);
  case NN_ACT_SOFTPLUS: return softplus_value(x, a, b);
  case NN_ACT_MISH: return mish_value(x);
  case NN_ACT_HARDTANH: return hardtanh_value(x, a, b);
  case NN_ACT_HARDSIGMOID: return hardsigmoid_value(x);
  case NN_ACT_LOG_SIGMOID: return log_sigmoid_value(x);
  default: return softsign_value(x);
  }
}

static inline double activation_derivative(nn_activation_op op, double x, double a, double b) {
  switch (op) {
  case NN_ACT_LEAKY_RELU: return leaky_relu_derivative(x, a);
  case NN_ACT_ELU: return elu_derivative(x, a, 1);
  case NN_ACT_SELU: return elu_derivative(x, selu_alpha, selu_scale);
  case NN_ACT_SILU: return silu_derivative(x);
  case NN_ACT_GELU: return gelu_derivative(x);
  case NN_ACT_GELU_TANH: return gelu_tanh_derivative(x);
  case NN_ACT_SOFTPLUS: return softplus_derivative(x, a, b);
  case NN_ACT_MISH: return mish_derivative(x);
  case NN_ACT_HARDTANH: return hardtanh_derivative(x, a, b);
  case NN_ACT_HARDSIGMOID: return hardsigmoid_derivative(x);
  case NN_ACT_LOG_SIGMOID: return log_sigmoid_derivative(x);
  default: return softsign_derivative(x);
  }
}

/* ---- loops ----------------------------------------------------------- */
/* The loops below are called with op a constant (run_forward and
   run_backward spell every case out), so that once inlined the switch
   folds away and each op gets a loop of its own that the compiler can
   vectorise; a switch inside one shared loop would cost a branch per
   element. */
static inline void forward_loop(nn_activation_op op, nn_dtype dtype, int64_t n, const void *x,
                                void *y, double a, double b) {
  if (dtype == NN_FLOAT32) {
    const float *xf = x;
    float *yf = y;
    for (int64_t i = 0; i < n; i++) yf[i] = (float)activation_value(op, xf[i], a, b);
  } else {
    const double *xd = x;
    double *yd = y;
    for (int64_t i = 0; i < n; i++) yd[i] = activation_value(op, xd[i], a, b);
  }
}

/* gi = g op'(x), all contiguous and of one dtype. */
static inline void backward_loop(nn_activation_op op, nn_dtype dtype, int64_t n, const void *g,
                                 const void *x, void *gi, double a, double b) {
  if (dtype == NN_FLOAT32) {
    const float *gf = g, *xf = x;
    float *of = gi;
    for (int64_t i = 0; i < n; i++) of[i] = (float)(gf[i] * activation_derivative(op, xf[i], a, b));
  } else {
    const double *gd = g, *xd = x;
    double *od = gi;
    for (int64_t i = 0; i < n; i++) od[i] = gd[i] * activation_derivative(op, xd[i], a, b);
  }
}

static void run_forward(nn_activation_op op, nn_dtype dt, int64_t n, const void *x, void *y,
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
  default: forward_loop(NN_ACT_SOFTSIGN, dt, n, x, y, a, b); break;
  }
}

static void run_backward(nn_activation_op op, nn_dtype dt, int64_t n, const void *g,
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
  default: backward_loop(NN_ACT_SOFTSIGN, dt, n, g, x, gi, a, b); break;
  }
}

/* ---- shared checks --------------------------------------------------- */
static int check_floating(const char *op, const nn_tensor *t, const char *what) {
  if (!nn_dtype_is_floating(t->dtype)) {
    nn_error_set("%s: %s must be float32 or float64, got %s", op, what, nn_dtype_name(t->dtype));
    return -1;
  }
  return 0;
}

/* t itself when contiguous, else a contiguous copy; never recorded. */
static nn_tensor *contiguous_untracked(nn_tensor *t) {
  nn_grad_guard guard = nn_no_grad_begin();
  nn_tensor *c = nn_contiguous(t);
  nn_no_grad_end(guard);
  return c;
}

static int check_parameters(nn_activation_op op, double a, double b) {
  const char *name = user_name(op);
  switch (op) {
  case NN_ACT_LEAKY_RELU:
    if (!(a >= 0) || isinf(a)) {
      nn_error_set("%s: negative_slope must be a non-negative number, got %g", name, a);
      return -1;
    }
    break;
  case NN_ACT_ELU:
    if (!(a >= 0) || isinf(a)) {
      nn_error_set("%s: alpha must be a non-negative number, got %g", name, a);
      return -1;
    }
    break;
  case NN_ACT_SOFTPLUS:
    if (!(a > 0) || isinf(a)) {
      nn_error_set("%s: beta must be a positive number, got %g", name, a);
      return -1;
    }
    if (isnan(b)) {
      nn_error_set("%s: threshold must be a number, got nan", name);
      return -1;
    }
    break;
  case NN_ACT_HARDTANH:
    if (isnan(a) || isnan(b) || a > b) {
      nn_error_set("%s: min_val (%g) must not exceed max_val (%g)", name, a, b);
      return -1;
    }
    break;
  default: break;
  }
  return 0;
}

/* ---- elementwise activations ----------------------------------------- */
/* grad_in = grad_out * op'(x); grad_out, x and grad_in all of x's shape. */
static int activation_backward(nn_node *node, nn_tensor *g, nn_tensor **gi) {
  nn_activation_op op = (nn_activation_op)node->ints[0];
  nn_tensor *x = node->saved[0]; /* contiguous */
  if (g->dtype != x->dtype || !nn_same_shape(g, x)) {
    char a[96], b[96];
    nn_error_set("%s backward: gradient %s %s for an input %s %s", user_name(op),
                 nn_shape_string(g, a, sizeof a), nn_dtype_name(g->dtype),
                 nn_shape_string(x, b, sizeof b), nn_dtype_name(x->dtype));
    return -1;
  }
  nn_tensor *gc = contiguous_untracked(g), *out = gc ? nn_empty_like(x) : NULL;
  if (!out) {
    nn_release(gc);
    return -1;
  }
  run_backward(op, x->dtype, nn_numel(x), nn_data(gc), nn_data(x), nn_data(out), node->scalar[0],
               node->scalar[1]);
  nn_release(gc);
  gi[0] = out;
  return 0;
}

nn_tensor *nn_activation(nn_activation_op op, nn_tensor *x, double a, double b) {
  if ((unsigned)op >= NN_ACT_COUNT) {
    nn_error_set("activation: unknown activation %d", (int)op);
    return NULL;
  }
  const char *name = user_name(op);
  if (nn_check_cpu(name, x) < 0 || check_floating(name, x, "input") < 0 ||
      check_parameters(op, a, b) < 0)
    return NULL;
  nn_tensor *xc = contiguous_untracked(x), *out = xc ? nn_empty_like(xc) : NULL;
  if (!out) {
    nn_release(xc);
    return NULL;
  }
  run_forward(op, x->dtype, nn_numel(x), nn_data(xc), nn_data(out), a, b);
  if (nn_needs_grad(x, NULL, NULL)) {
    nn_node *node = nn_node_attach(out, node_names[op], activation_backward, 1, x, NULL, NULL);
    if (!node) {
      nn_release(xc);
      nn_release(out);
      return NULL;
    }
    node->ints[0] = op;
    node->scalar[0] = a;
    node->scalar[1] = b;
    nn_node_save(node, 0, xc);
  }
  nn_release(xc);
  return out;
}

/* ---- softmax and log_softmax ----------------------------------------- */
/* One line, max-subtracted so that no exp overflows (softmax of
   {1000, 1050, 1100} is that of {-100, -50, 0}):
   softmax: e^(x - m) / sum e^(x - m); log_softmax: x - m - log sum e^(x - m).
   A NaN anywhere in the line makes the line NaN, as in PyTorch. Like the
   loops above, these are called with dt a constant (see for_each_line), so
   that nn_load and nn_store compile to plain typed accesses. */
static inline void softmax_line(nn_dtype dt, const void *x, void *y, int64_t n, int64_t stride,
                                int log_form) {
  double m = -INFINITY;
  for (int64_t j = 0; j < n; j++) {
    double v = nn_load(dt, x, j * stride);
    if (v > m || isnan(v)) m = v;
  }
  double sum = 0;
  if (log_form) {
    for (int64_t j = 0; j < n; j++) sum += exp(nn_load(dt, x, j * stride) - m);
    double shift = m + log(sum);
    for (int64_t j = 0; j < n; j++) nn_store(dt, y, j * stride, nn_load(dt, x, j * stride) - shift);
  } else { /* each exp once: kept in y, then scaled */
    for (int64_t j = 0; j < n; j++) {
      double e = exp(nn_load(dt, x, j * stride) - m);
      sum += e;
      nn_store(dt, y, j * stride, e);
    }
    for (int64_t j = 0; j < n; j++) nn_store(dt, y, j * stride, nn_load(dt, y, j * stride) / sum);
  }
}

/* With y the output along one line:
   softmax:     gi = y (g - sum_k g_k y_k)
   log_softmax: gi = g - e^y sum_k g_k                (PyTorch's formulas) */
static inline void softmax_backward_line(nn_dtype dt, const void *g, const void *y, void *gi,
                                         int64_t n, int64_t stride, int log_form) {
  double acc = 0;
  if (log_form) {
    for (int64_t j = 0; j < n; j++) acc += nn_load(dt, g, j * stride);
    for (int64_t j = 0; j < n; j++)
      nn_store(dt, gi, j * stride, nn_load(dt, g, j * stride) - exp(nn_load(dt, y, j * stride)) * acc);
  } else {
    for (int64_t j = 0; j < n; j++) acc += nn_load(dt, g, j * stride) * nn_load(dt, y, j * stride);
    for (int64_t j = 0; j < n; j++)
      nn_store(dt, gi, j * stride, nn_load(dt, y, j * stride) * (nn_load(dt, g, j * stride) - acc));
  }
}

/* Runs the forward (g = NULL: a = x, out = y) or the backward (a = y,
   out = grad_in) line kernel over every line of a contiguous tensor. */
static inline void lines_typed(nn_dtype dt, nn_line_shape s, const char *g, const char *a, char *out,
                               int log_form) {
  size_t es = nn_element_size(dt);
  for (int64_t o = 0; o < s.outer; o++)
    for (int64_t i = 0; i < s.inner; i++) {
      size_t start = (size_t)(o * s.n * s.inner + i) * es;
      if (g) softmax_backward_line(dt, g + start, a + start, out + start, s.n, s.inner, log_form);
      else softmax_line(dt, a + start, out + start, s.n, s.inner, log_form);
    }
}

static void for_each_line(nn_dtype dt, nn_line_shape s, const void *g, const void *a, void *out,
                          int log_form) {
  if (dt == NN_FLOAT32) lines_typed(NN_FLOAT32, s, g, a, out, log_form);
  else lines_typed(NN_FLOAT64, s, g, a, out, log_form);
}

/* (outer, n, inner) grad, output and grad_in; all of the output's shape. */
static int softmax_backward(nn_node *node, nn_tensor *g, nn_tensor **gi) {
  nn_tensor *y = node->saved[0]; /* contiguous: the op's own output */
  int log_form = (int)node->ints[1];
  if (g->dtype != y->dtype || !nn_same_shape(g, y)) {
    nn_error_set("%s backward: the gradient's shape or dtype differs from the output's",
                 log_form ? "log_softmax" : "softmax");
    return -1;
  }
  nn_tensor *gc = contiguous_untracked(g), *out = gc ? nn_empty_like(y) : NULL;
  if (!out) {
    nn_release(gc);
    return -1;
  }
  for_each_line(y->dtype, nn_lines_around(y, (int)node->ints[0]), nn_data(gc), nn_data(y), nn_data(out),
                log_form);
  nn_release(gc);
  gi[0] = out;
  return 0;
}

nn_tensor *nn_softmax(nn_tensor *x, int dim, int log_form) {
  const char *name = log_form ? "log_softmax" : "softmax";
  if (nn_check_cpu(name, x) < 0 || check_floating(name, x, "input") < 0) return NULL;
  if ((dim = nn_wrap_dim(name, dim, x->ndim)) < 0) return NULL;
  nn_tensor *xc = contiguous_untracked(x), *out = xc ? nn_empty_like(xc) : NULL;
  if (!out) {
    nn_release(xc);
    return NULL;
  }
  for_each_line(x->dtype, nn_lines_around(x, dim), NULL, nn_data(xc), nn_data(out), log_form);
  nn_release(xc);
  if (nn_needs_grad(x, NULL, NULL)) {
    nn_node *node = nn_node_attach(out, log_form ? "LogSoftmaxBackward0" : "SoftmaxBackward0",
                                   softmax_backward, 1, x, NULL, NULL);
    if (!node) {
      nn_release(out);
      return NULL;
    }
    node->ints[0] = dim;
    node->ints[1] = log_form;
    nn_node_save_output(node, 0, out);
  }
  return out;
}

/* ---- PReLU ----------------------------------------------------------- */
/* The channel of flat element i: 0 for a single weight, else its index
   along dim 1 (elements of one channel come in runs of `inner`). */
static inline int64_t channel_of(int64_t i, int64_t channels, int64_t inner) {
  return channels == 1 ? 0 : (i / inner) % channels;
}

/* x (N, C, ...), weight (C) or one value, grad_out like x:
   grad_x = x > 0 ? g : w_c g;  grad_w_c = sum over channel c of (x > 0 ? 0 : x g). */
static int prelu_backward(nn_node *node, nn_tensor *g, nn_tensor **gi) {
  nn_tensor *x = node->saved[0], *w = node->saved[1]; /* both contiguous */
  int64_t n = nn_numel(x), channels = nn_numel(w), inner = node->ints[0];
  if (g->dtype != x->dtype || !nn_same_shape(g, x)) {
    nn_error_set("prelu backward: the gradient's shape or dtype differs from the input's");
    return -1;
  }
  nn_tensor *gc = contiguous_untracked(g);
  nn_tensor *gx = gc && node->inputs[0] ? nn_empty_like(x) : NULL;
  nn_tensor *gw = gc && node->inputs[1] ? nn_empty_like(w) : NULL;
  double *acc = gw ? calloc((size_t)channels, sizeof *acc) : NULL;
  if (!gc || (node->inputs[0] && !gx) || (node->inputs[1] && (!gw || !acc))) {
    if (gw && !acc) nn_error_set("prelu backward: out of memory");
    nn_release(gc), nn_release(gx), nn_release(gw), free(acc);
    return -1;
  }
  nn_dtype dt = x->dtype;
  const void *px = nn_data(x), *pw = nn_data(w), *pg = nn_data(gc);
  void *pgx = gx ? nn_data(gx) : NULL;
  for (int64_t i = 0; i < n; i++) {
    double xv = nn_load(dt, px, i), gv = nn_load(dt, pg, i);
    int64_t c = channel_of(i, channels, inner);
    if (pgx) nn_store(dt, pgx, i, xv > 0 ? gv : nn_load(dt, pw, c) * gv);
    if (acc && !(xv > 0)) acc[c] += xv * gv;
  }
  if (gw)
    for (int64_t c = 0; c < channels; c++) nn_store(dt, nn_data(gw), c, acc[c]);
  free(acc);
  nn_release(gc);
  gi[0] = gx;
  gi[1] = gw;
  return 0;
}

nn_tensor *nn_prelu(nn_tensor *x, nn_tensor *weight) {
  if (nn_check_cpu("prelu", x) < 0 || nn_check_cpu("prelu", weight) < 0 ||
      check_floating("prelu", x, "input") < 0)
    return NULL;
  if (weight->dtype != x->dtype) {
    nn_error_set("prelu: the weight is %s but the input is %s", nn_dtype_name(weight->dtype),
                 nn_dtype_name(x->dtype));
    return NULL;
  }
  int64_t channels = nn_numel(weight), inner = 1;
  if (weight->ndim > 1 || channels == 0) {
    char w[96];
    nn_error_set("prelu: the weight must be a vector of one or more values, got shape %s",
                 nn_shape_string(weight, w, sizeof w));
    return NULL;
  }
  if (channels != 1) {
    /* PyTorch: the channels are dim 1 (Lua's dim 2) of an input with at
       least 2 dims; a vector has a single channel. */
    if (x->ndim < 2) {
      nn_error_set("prelu: the weight has %lld values, one per channel, but a %d-dim input has "
                   "no channel dim (channels are dim 2)", (long long)channels, x->ndim);
      return NULL;
    }
    if (x->size[1] != channels) {
      char shape[96];
      nn_error_set("prelu: the weight has %lld values but the input (%s) has %lld channels in dim 2",
                   (long long)channels, nn_shape_string(x, shape, sizeof shape),
                   (long long)x->size[1]);
      return NULL;
    }
    for (int i = 2; i < x->ndim; i++) inner *= x->size[i];
  }
  nn_tensor *xc = contiguous_untracked(x), *wc = xc ? contiguous_untracked(weight) : NULL;
  nn_tensor *out = wc ? nn_empty_like(xc) : NULL;
  if (!out) {
    nn_release(xc), nn_release(wc);
    return NULL;
  }
  nn_dtype dt = x->dtype;
  const void *px = nn_data(xc), *pw = nn_data(wc);
  void *po = nn_data(out);
  for (int64_t i = 0, n = nn_numel(x); i < n; i++) {
    double xv = nn_load(dt, px, i);
    nn_store(dt, po, i, xv > 0 ? xv : nn_load(dt, pw, channel_of(i, channels, inner)) * xv);
  }
  if (nn_needs_grad(x, weight, NULL)) {
    nn_node *node = nn_node_attach(out, "PreluBackward0", prelu_backward, 2, x, weight, NULL);
    if (!node) {
      nn_release(xc), nn_release(wc), nn_release(out);
      return NULL;
    }
    node->ints[0] = inner;
    nn_node_save(node, 0, xc);
    nn_node_save(node, 1, wc);
  }
  nn_release(xc), nn_release(wc);
  return out;
}

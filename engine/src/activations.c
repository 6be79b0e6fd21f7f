/* activations.c: the fronts of the activations beyond the unary ops of
 * elementwise.c (sigmoid, tanh, relu, step): the elementwise ones with up
 * to two parameters, softmax and log_softmax along a dimension, and PReLU
 * with its learnable slope; each backward beside its forward, and a
 * backward op of its own. Formulas: math/activation.h (PyTorch 1.13's,
 * made finite where PyTorch's overflow or cancel); loops:
 * cpu/activation.c. */
#include "internal.h"

#include <stddef.h>

static const char *const activation_names[NN_ACT_COUNT] = {
    "leaky_relu", "elu",         "selu",        "silu",    "gelu",        "gelu_tanh",
    "softplus",   "mish",        "hardtanh",    "hardsigmoid", "log_sigmoid", "softsign",
    "hardswish",  "celu",        "softshrink",  "hardshrink", "tanhshrink", "threshold"};

/* PyTorch's autograd names (selu is elu with the paper's constants there). */
static const char *const node_names[NN_ACT_COUNT] = {
    "LeakyReluBackward0", "EluBackward0",     "EluBackward0",         "SiluBackward0",
    "GeluBackward0",      "GeluBackward0",    "SoftplusBackward0",    "MishBackward0",
    "HardtanhBackward0",  "HardsigmoidBackward0", "LogSigmoidBackward0", "SoftsignBackward0",
    "HardswishBackward0", "CeluBackward0",    "SoftshrinkBackward0",  "HardshrinkBackward0",
    "SubBackward0", "ThresholdBackward0"};

const char *nn_activation_op_name(nn_activation_op op) {
  return (unsigned)op < NN_ACT_COUNT ? activation_names[op] : NULL;
}

/* The name a user knows the op by, for error messages. */
static const char *user_name(nn_activation_op op) {
  return op == NN_ACT_GELU_TANH ? "gelu" : activation_names[op];
}

/* ---- shared checks --------------------------------------------------- */
static int check_floating(const char *op, const nn_tensor *t, const char *what) {
  if (!nn_float_kernel_dtype(t->dtype)) {
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
  case NN_ACT_CELU:
    if (a == 0 || isnan(a) || isinf(a)) {
      nn_error_set("%s: alpha must be a finite non-zero number, got %g", name, a);
      return -1;
    }
    break;
  case NN_ACT_SOFTSHRINK:
    if (!(a >= 0) || isinf(a)) {
      nn_error_set("%s: lambd must be a non-negative number, got %g", name, a);
      return -1;
    }
    break;
  case NN_ACT_HARDSHRINK:
  case NN_ACT_THRESHOLD:
    if (isnan(a)) {
      nn_error_set("%s: %s must be a number, got nan", name, op == NN_ACT_THRESHOLD ? "threshold" : "lambd");
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
nn_tensor *nn_activation_backward(nn_activation_op op, nn_tensor *g, nn_tensor *x, double a,
                                  double b) {
  if (nn_backward_records(g, x, NULL)) return nn_activation_backward_graph(op, g, x, a, b);
  const nn_backend *be =
      nn_dispatch(user_name(op), offsetof(nn_backend, activation_backward), g, x, NULL);
  if (!be) return NULL;
  if (g->dtype != x->dtype || !nn_same_shape(g, x)) {
    char gs[96], xs[96];
    nn_error_set("%s backward: gradient %s %s for an input %s %s", user_name(op),
                 nn_shape_string(g, gs, sizeof gs), nn_dtype_name(g->dtype),
                 nn_shape_string(x, xs, sizeof xs), nn_dtype_name(x->dtype));
    return NULL;
  }
  nn_tensor *out = nn_empty_like(x);
  if (!out) return NULL;
  nn_iter it;
  nn_tensor *ts[3] = {out, g, x};
  nn_iter_init(&it, 3, ts, out->ndim, out->size);
  if (be->activation_backward(op, &it, a, b) < 0) {
    nn_release(out);
    return NULL;
  }
  return out;
}

/* grad_in = grad_out * op'(x) */
static int activation_backward(nn_node *node, nn_tensor *g, nn_tensor **gi) {
  gi[0] = nn_activation_backward((nn_activation_op)node->ints[0], g, node->saved[0],
                                 node->scalar[0], node->scalar[1]);
  return gi[0] ? 0 : -1;
}

struct activation_args { nn_activation_op op; double a, b; };
static nn_tensor *activation_in_float32(nn_tensor *x, const void *arg) {
  const struct activation_args *p = arg;
  return nn_activation(p->op, x, p->a, p->b);
}

nn_tensor *nn_activation(nn_activation_op op, nn_tensor *x, double a, double b) {
  if ((unsigned)op >= NN_ACT_COUNT) {
    nn_error_set("activation: unknown activation %d", (int)op);
    return NULL;
  }
  if (nn_half_dtype(x->dtype)) {
    struct activation_args args = {op, a, b};
    return nn_in_float32(x, activation_in_float32, &args);
  }
  const char *name = user_name(op);
  const nn_backend *be = nn_dispatch(name, offsetof(nn_backend, activation), x, NULL, NULL);
  if (!be || check_floating(name, x, "input") < 0 || check_parameters(op, a, b) < 0) return NULL;
  /* The shrinks and threshold compare x with their parameter in x's own
     dtype, as PyTorch's kernels do: 0.1 as float32 is a little above 0.1,
     and a float32 0.1 is at the threshold 0.1, not above it. */
  if (x->dtype == NN_FLOAT32 &&
      (op == NN_ACT_THRESHOLD || op == NN_ACT_SOFTSHRINK || op == NN_ACT_HARDSHRINK)) {
    a = (float)a;
    b = (float)b;
  }
  nn_tensor *out = nn_empty_like(x);
  if (!out) return NULL;
  nn_iter it;
  nn_tensor *ts[2] = {out, x};
  nn_iter_init(&it, 2, ts, out->ndim, out->size);
  if (be->activation(op, &it, a, b) < 0) goto fail;
  if (nn_needs_grad(x, NULL, NULL)) {
    nn_node *node = nn_node_attach(out, node_names[op], activation_backward, 1, x, NULL, NULL);
    if (!node) goto fail;
    node->ints[0] = op;
    node->scalar[0] = a;
    node->scalar[1] = b;
    nn_node_save(node, 0, x);
  }
  return out;
fail:
  nn_release(out);
  return NULL;
}

/* ---- softmax and log_softmax ------------------------------------------ */
/* The geometry of lines along dim, over operands of x's shape. */
static void lines_along(nn_reduce_geom *r, int n, nn_tensor *const *ts, int dim) {
  const nn_tensor *x = ts[0];
  nn_reduce_init(r, n, ts, (1u << n) - 1, x->ndim, x->size, x->ndim ? 1u << dim : 0);
}

nn_tensor *nn_softmax_backward(nn_tensor *g, nn_tensor *y, int dim, int log_form) {
  const char *name = log_form ? "log_softmax" : "softmax";
  if (nn_backward_records(g, y, NULL)) return nn_softmax_backward_graph(g, y, dim, log_form);
  const nn_backend *be = nn_dispatch(name, offsetof(nn_backend, softmax_backward), g, y, NULL);
  if (!be) return NULL;
  if (g->dtype != y->dtype || !nn_same_shape(g, y)) {
    nn_error_set("%s backward: the gradient's shape or dtype differs from the output's", name);
    return NULL;
  }
  nn_tensor *out = nn_empty_like(y);
  if (!out) return NULL;
  nn_reduce_geom r;
  nn_tensor *ts[3] = {out, g, y};
  lines_along(&r, 3, ts, dim);
  if (be->softmax_backward(&r, log_form) < 0) {
    nn_release(out);
    return NULL;
  }
  return out;
}

static int softmax_backward(nn_node *node, nn_tensor *g, nn_tensor **gi) {
  gi[0] = nn_softmax_backward(g, node->saved[0], (int)node->ints[0], (int)node->ints[1]);
  return gi[0] ? 0 : -1;
}

struct softmax_args { int dim, log_form; };
static nn_tensor *softmax_in_float32(nn_tensor *x, const void *arg) {
  const struct softmax_args *p = arg;
  return nn_softmax(x, p->dim, p->log_form);
}

nn_tensor *nn_softmax(nn_tensor *x, int dim, int log_form) {
  const char *name = log_form ? "log_softmax" : "softmax";
  if (nn_half_dtype(x->dtype)) {
    struct softmax_args args = {dim, log_form};
    return nn_in_float32(x, softmax_in_float32, &args);
  }
  const nn_backend *be = nn_dispatch(name, offsetof(nn_backend, softmax), x, NULL, NULL);
  if (!be || check_floating(name, x, "input") < 0) return NULL;
  if ((dim = nn_wrap_dim(name, dim, x->ndim)) < 0) return NULL;
  nn_tensor *out = nn_empty_like(x);
  if (!out) return NULL;
  nn_reduce_geom r;
  nn_tensor *ts[2] = {out, x};
  lines_along(&r, 2, ts, dim);
  if (be->softmax(&r, log_form) < 0) goto fail;
  if (nn_needs_grad(x, NULL, NULL)) {
    nn_node *node = nn_node_attach(out, log_form ? "LogSoftmaxBackward0" : "SoftmaxBackward0",
                                   softmax_backward, 1, x, NULL, NULL);
    if (!node) goto fail;
    node->ints[0] = dim;
    node->ints[1] = log_form;
    nn_node_save_output(node, 0, out);
  }
  return out;
fail:
  nn_release(out);
  return NULL;
}

/* ---- PReLU ----------------------------------------------------------- */
/* x (N, C, ...), weight (C) or one value, both contiguous; grad_out like x.
   Either gradient may be left out (need_x, need_w). */
int nn_prelu_backward(nn_tensor *g, nn_tensor *x, nn_tensor *w, int64_t inner, int need_x,
                      int need_w, nn_tensor **gx, nn_tensor **gw) {
  *gx = *gw = NULL;
  const nn_backend *be = nn_dispatch("prelu", offsetof(nn_backend, prelu_backward), g, x, w);
  if (!be) return -1;
  if (g->dtype != x->dtype || !nn_same_shape(g, x)) {
    nn_error_set("prelu backward: the gradient's shape or dtype differs from the input's");
    return -1;
  }
  nn_tensor *gc = contiguous_untracked(g);
  if (!gc || (need_x && !(*gx = nn_empty_like(x))) || (need_w && !(*gw = nn_empty_like(w)))) goto fail;
  nn_prelu_args args = {x->dtype, nn_numel(x), nn_numel(w), inner, nn_data(x), nn_data(w),
                        nn_data(gc), NULL, *gx ? nn_data(*gx) : NULL, *gw ? nn_data(*gw) : NULL};
  if (be->prelu_backward(&args) < 0) goto fail;
  nn_release(gc);
  return 0;
fail:
  nn_release(gc), nn_release(*gx), nn_release(*gw);
  *gx = *gw = NULL;
  return -1;
}

static int prelu_backward(nn_node *node, nn_tensor *g, nn_tensor **gi) {
  if (nn_recording_backward()) /* from fronts, on the graph's aliases where they need a gradient */
    return nn_prelu_backward_graph(g, node->inputs[0] ? node->inputs[0] : node->saved[0],
                                   node->inputs[1] ? node->inputs[1] : node->saved[1],
                                   node->inputs[0] != NULL, node->inputs[1] != NULL, &gi[0], &gi[1]);
  return nn_prelu_backward(g, node->saved[0], node->saved[1], node->ints[0], node->inputs[0] != NULL,
                           node->inputs[1] != NULL, &gi[0], &gi[1]);
}

nn_tensor *nn_prelu(nn_tensor *x, nn_tensor *weight) {
  const nn_backend *be = nn_dispatch("prelu", offsetof(nn_backend, prelu), x, weight, NULL);
  if (!be || check_floating("prelu", x, "input") < 0) return NULL;
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
  nn_prelu_args args = {x->dtype, nn_numel(x), channels, inner, nn_data(xc), nn_data(wc),
                        NULL, nn_data(out), NULL, NULL};
  if (be->prelu(&args) < 0) {
    nn_release(xc), nn_release(wc), nn_release(out);
    return NULL;
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

/* ---- dropout's noise ---------------------------------------------------- */
/* PyTorch 1.13's CPU dropout (ATen's _dropout_impl) multiplies its input
   by noise = bernoulli(1 - p) / (1 - p), each Bernoulli draw one double
   uniform u, kept where u < 1 - p. The noise made here is that noise value
   for value: the u drawn by nn_uniform_ into a float64 buffer (the
   generator's draws in nn.rand's order), then one pass that writes
   1 / (1 - p), divided in the noise's dtype, where u < 1 - p and 0
   elsewhere. The Lua layer made it in four passes over tensors of their
   own (compare, convert, divide), three times the draws' own time.
   The pass is a loop of this file, not a backend entry: the noise is made
   on the CPU whatever the input's device (the generator is the CPU's), and
   a captured step (capture.c) replays backend entries only, so while a
   capture records this declines (0) and the caller makes the noise from
   ops, as before. */
static void dropout_noise_f32(int64_t n, const double *u, double keep, float *out) {
  float scale = 1.0f / (float)keep;
  for (int64_t i = 0; i < n; i++) out[i] = u[i] < keep ? scale : 0.0f;
}

static void dropout_noise_f64(int64_t n, const double *u, double keep, double *out) {
  double scale = 1.0 / keep;
  for (int64_t i = 0; i < n; i++) out[i] = u[i] < keep ? scale : 0.0;
}

int nn_dropout_noise(const nn_tensor *like, double p, nn_tensor **noise) {
  *noise = NULL;
  if (nn_capture_active || (like->dtype != NN_FLOAT32 && like->dtype != NN_FLOAT64)) return 0;
  if (!(p > 0 && p < 1)) {
    nn_error_set("dropout: the noise needs a probability strictly between 0 and 1, got %g", p);
    return -1;
  }
  nn_tensor *u = nn_empty(NN_FLOAT64, like->ndim, like->size);
  nn_tensor *out = u ? nn_empty(like->dtype, like->ndim, like->size) : NULL;
  if (!out || nn_uniform_(u, 0.0, 1.0) < 0) {
    nn_release(u), nn_release(out);
    return -1;
  }
  double keep = 1 - p;
  if (like->dtype == NN_FLOAT32) dropout_noise_f32(nn_numel(out), nn_data(u), keep, nn_data(out));
  else dropout_noise_f64(nn_numel(out), nn_data(u), keep, nn_data(out));
  nn_release(u);
  *noise = out;
  return 1;
}

/* loss.c: the fronts of the losses, each with its backward beside it (a
 * backward op of its own): mean squared error, binary cross-entropy, L1,
 * smooth L1, Huber, KL divergence and binary cross-entropy with logits
 * (one kernel family, backend.h's nn_loss_kind), then cross-entropy and
 * negative log-likelihood over classes. Formulas and their orders follow
 * PyTorch 1.13 (math/loss.h names the files); loops: cpu/loss.c. */
#include "half.h"

#include <stddef.h>
#include <stdio.h>

int nn_reduction_from_name(const char *name) {
  if (strcmp(name, "none") == 0) return NN_REDUCTION_NONE;
  if (strcmp(name, "mean") == 0) return NN_REDUCTION_MEAN;
  if (strcmp(name, "sum") == 0) return NN_REDUCTION_SUM;
  return -1;
}

static int check_pair(const char *op, nn_tensor *input, nn_tensor *target) {
  if (!nn_dispatch(op, offsetof(nn_backend, loss), input, target, NULL)) return -1;
  if (!nn_float_kernel_dtype(input->dtype) || input->dtype != target->dtype) {
    nn_error_set("%s: input and target must have the same floating dtype, got %s and %s", op,
                 nn_dtype_name(input->dtype), nn_dtype_name(target->dtype));
    return -1;
  }
  if (!nn_same_shape(input, target)) {
    char a[96], b[96];
    nn_error_set("%s: target shape %s differs from input shape %s", op,
                 nn_shape_string(target, b, sizeof b), nn_shape_string(input, a, sizeof a));
    return -1;
  }
  return 0;
}

/* A reduction a loss accepts: nn_reduction's three, and batchmean where
   the loss has it (kl_div). */
static int check_reduction(const char *op, int reduction, int allow_batchmean) {
  if (reduction == NN_REDUCTION_NONE || reduction == NN_REDUCTION_MEAN ||
      reduction == NN_REDUCTION_SUM || (allow_batchmean && reduction == NN_REDUCTION_BATCHMEAN))
    return 0;
  nn_error_set("%s: unknown reduction %d", op, reduction);
  return -1;
}

/* Refuses a tensor whose gradient the loss does not compute, rather than
   silently leaving it without one. */
static int refuse_grad(const char *op, const char *what, const nn_tensor *t) {
  if (!t || !t->requires_grad || !nn_grad_enabled()) return 0;
  nn_error_set("%s: no gradient flows to the %s (as in PyTorch); detach() it", op, what);
  return -1;
}

/* t's values, laid out contiguously, never recorded by autograd: t itself
   when it is already contiguous, else a copy. */
static nn_tensor *contiguous_values(nn_tensor *t) {
  if (nn_is_contiguous(t)) return nn_retain(t);
  nn_tensor *c = nn_empty_like(t);
  if (c && nn_copy_(c, t) < 0) {
    nn_release(c);
    return NULL;
  }
  return c;
}

/* What a loss's result is made of: one value per element (per position)
   without reduction, else one reduced value; on the input's device. */
static nn_tensor *loss_result(const nn_tensor *input, int reduction, int ndim, const int64_t *size) {
  if (reduction == NN_REDUCTION_NONE) return nn_empty_like_shape(input, input->dtype, ndim, size);
  return nn_empty_like_shape(input, input->dtype, 0, NULL);
}

/* ==== the elementwise losses: l_i = f(x_i, y_i) ========================= */
/* What the sum is divided by: the element count for a mean, the first
   size for a batchmean (PyTorch's F.kl_div: none for a scalar), else 1. */
static double reduction_divisor(int reduction, const nn_tensor *input) {
  if (reduction == NN_REDUCTION_MEAN) return (double)nn_numel(input);
  if (reduction == NN_REDUCTION_BATCHMEAN) return input->ndim ? (double)input->size[0] : 1.0;
  return 1.0;
}

/* Where the weights of a (k n) coefficient tensor start: NULL when absent. */
static void weight_pointers(const nn_tensor *coef, int has_weight, int has_pos_weight, int64_t n,
                            const void **w, const void **p) {
  const char *base = coef ? nn_data(coef) : NULL;
  size_t bytes = (size_t)n * (coef ? nn_element_size(coef->dtype) : 0);
  *w = has_weight ? base : NULL;
  *p = has_pos_weight ? base + (has_weight ? bytes : 0) : NULL;
}

/* The kernels' view of a loss: contiguous x and y, and its weights. */
static nn_loss_args loss_args(const nn_loss_spec *spec, const nn_tensor *x, const nn_tensor *y) {
  nn_loss_args a;
  memset(&a, 0, sizeof a);
  a.kind = spec->kind;
  a.dtype = x->dtype;
  a.n = nn_numel(x);
  a.x = nn_data(x);
  a.y = nn_data(y);
  weight_pointers(spec->weights, spec->has_weight, spec->has_pos_weight, a.n, &a.weight,
                  &a.pos_weight);
  a.param = spec->param;
  a.reduced = spec->reduction != NN_REDUCTION_NONE;
  a.divisor = spec->divisor;
  return a;
}

int nn_loss_backward(const nn_loss_spec *spec, nn_tensor *g, nn_tensor *input, nn_tensor *target,
                     int need_x, int need_y, nn_tensor **gx, nn_tensor **gy) {
  *gx = *gy = NULL;
  if (nn_backward_records(g, input, target))
    return nn_loss_backward_graph(spec, g, input, target, need_x, need_y, gx, gy);
  const nn_backend *be =
      nn_dispatch("loss backward", offsetof(nn_backend, loss_backward), g, input, target);
  if (!be) return -1;
  nn_tensor *x = contiguous_values(input), *y = x ? contiguous_values(target) : NULL;
  nn_tensor *gc = y ? contiguous_values(g) : NULL;
  if (!gc || (need_x && !(*gx = nn_empty_like(x))) || (need_y && !(*gy = nn_empty_like(x))))
    goto fail;
  nn_loss_args a = loss_args(spec, x, y);
  a.g = nn_data(gc);
  a.gx = *gx ? nn_data(*gx) : NULL;
  a.gy = *gy ? nn_data(*gy) : NULL;
  if (be->loss_backward(&a) < 0) goto fail;
  nn_release(x), nn_release(y), nn_release(gc);
  return 0;
fail:
  nn_release(x), nn_release(y), nn_release(gc), nn_release(*gx), nn_release(*gy);
  *gx = *gy = NULL;
  return -1;
}

/* A node keeps the spec in ints and scalars, its tensors in saved. */
static nn_loss_spec spec_of(const nn_node *node) {
  nn_loss_spec spec = {(nn_loss_kind)node->ints[1], node->scalar[0], (int)node->ints[0],
                       node->scalar[1], node->saved[2], (int)node->ints[2], (int)node->ints[3]};
  return spec;
}

/* grad g: the loss's shape (none) or a scalar; gradients: the input's shape */
static int loss_backward(nn_node *node, nn_tensor *g, nn_tensor **gi) {
  nn_loss_spec spec = spec_of(node);
  return nn_loss_backward(&spec, g, node->saved[0], node->saved[1], node->inputs[0] != NULL,
                          node->n_inputs > 1 && node->inputs[1] != NULL, &gi[0], &gi[1]);
}

/* The forward of any elementwise loss; gradient_to_target: the node has
   the target for its second input (all but BCE). */
static nn_tensor *elementwise_loss(const char *op, const char *node_name, nn_loss_spec spec,
                                   nn_tensor *input, nn_tensor *target, int gradient_to_target) {
  const nn_backend *be = nn_dispatch(op, offsetof(nn_backend, loss), input, target, spec.weights);
  if (!be) return NULL;
  spec.divisor = reduction_divisor(spec.reduction, input);
  nn_tensor *x = contiguous_values(input), *y = x ? contiguous_values(target) : NULL;
  nn_tensor *out = y ? loss_result(input, spec.reduction, input->ndim, input->size) : NULL;
  if (!out) goto fail;
  nn_loss_args a = loss_args(&spec, x, y);
  a.out = nn_data(out);
  if (be->loss(&a) < 0) goto fail;
  if (nn_needs_grad(input, gradient_to_target ? target : NULL, NULL)) {
    nn_node *node = nn_node_attach(out, node_name, loss_backward, gradient_to_target ? 2 : 1, input,
                                   gradient_to_target ? target : NULL, NULL);
    if (!node) goto fail;
    node->ints[0] = spec.reduction;
    node->ints[1] = spec.kind;
    node->ints[2] = spec.has_weight;
    node->ints[3] = spec.has_pos_weight;
    node->scalar[0] = spec.param;
    node->scalar[1] = spec.divisor;
    nn_node_save(node, 0, input);
    nn_node_save(node, 1, target);
    if (spec.weights) nn_node_save(node, 2, spec.weights);
  }
  nn_release(x), nn_release(y);
  return out;
fail:
  nn_release(x), nn_release(y), nn_release(out);
  return NULL;
}

/* weight and pos_weight, laid out over the input's elements: a
   contiguous (k n) tensor holding the weights, then the pos_weights (k is
   how many of the two there are), so that backward needs one saved slot. */
static int broadcasts_to(const nn_tensor *t, const nn_tensor *like) {
  if (t->ndim > like->ndim) return 0;
  for (int i = 0; i < t->ndim; i++) {
    int64_t have = t->size[t->ndim - 1 - i], want = like->size[like->ndim - 1 - i];
    if (have != want && have != 1) return 0;
  }
  return 1;
}

static nn_tensor *spread_weights(const nn_tensor *input, nn_tensor *weight, nn_tensor *pos_weight) {
  int64_t n = nn_numel(input), k = (weight != NULL) + (pos_weight != NULL);
  int64_t total = k * n;
  nn_tensor *coef = nn_empty_like_shape(input, input->dtype, 1, &total);
  if (!coef) return NULL;
  nn_tensor *parts[2] = {weight, pos_weight};
  int64_t offset = 0;
  for (int i = 0; i < 2; i++) {
    if (!parts[i]) continue;
    nn_tensor *segment = nn_narrow(coef, 0, offset, n);
    nn_tensor *shaped = segment ? nn_view(segment, input->ndim, input->size) : NULL;
    int status = shaped ? nn_copy_(shaped, parts[i]) : -1;
    nn_release(shaped);
    nn_release(segment);
    if (status < 0) {
      nn_release(coef);
      return NULL;
    }
    offset += n;
  }
  return coef;
}

/* ---- MSE: l = (x - y)^2 ---------------------------------------------- */
nn_tensor *nn_mse_loss(nn_tensor *input, nn_tensor *target, nn_reduction reduction) {
  nn_half_call half;
  nn_tensor *ops[2] = {input, target};
  int in_half = nn_half_enter("mse_loss", &half, 2, ops);
  if (in_half) return in_half < 0 ? NULL : nn_half_leave(&half, nn_mse_loss(ops[0], ops[1], reduction));
  if (check_pair("mse_loss", input, target) < 0) return NULL;
  nn_loss_spec spec = {NN_LOSS_MSE, 0, reduction, 1, NULL, 0, 0};
  return elementwise_loss("mse_loss", "MseLossBackward0", spec, input, target, 1);
}

/* ---- BCE: l = -w (y log x + (1 - y) log(1 - x)), logs clamped at -100 -- */
nn_tensor *nn_bce_loss(nn_tensor *input, nn_tensor *target, nn_tensor *weight,
                       nn_reduction reduction) {
  const char *op = "binary_cross_entropy";
  nn_half_call half;
  nn_tensor *ops[3] = {input, target, weight};
  int in_half = nn_half_enter(op, &half, 3, ops);
  if (in_half)
    return in_half < 0 ? NULL : nn_half_leave(&half, nn_bce_loss(ops[0], ops[1], ops[2], reduction));
  if (check_pair(op, input, target) < 0) return NULL;
  if (nn_grad_enabled() && target->requires_grad) {
    nn_error_set("binary_cross_entropy: no gradient flows to the target (as in PyTorch); "
                 "detach() the target");
    return NULL;
  }
  nn_loss_spec spec = {NN_LOSS_BCE, 0, reduction, 1, NULL, weight != NULL, 0};
  if (weight) {
    if (weight->dtype != input->dtype) {
      nn_error_set("binary_cross_entropy: weight is %s, input %s", nn_dtype_name(weight->dtype),
                   nn_dtype_name(input->dtype));
      return NULL;
    }
    nn_tensor *w = nn_expand(weight, input->ndim, input->size); /* for its shape check */
    if (!w) return NULL;
    nn_release(w);
    if (!nn_dispatch(op, offsetof(nn_backend, loss), input, weight, NULL) ||
        !(spec.weights = spread_weights(input, weight, NULL)))
      return NULL;
  }
  nn_tensor *out = elementwise_loss(op, "BinaryCrossEntropyBackward0", spec, input, target, 0);
  nn_release(spec.weights);
  return out;
}

/* ---- L1, smooth L1, Huber, KL divergence ------------------------------- */
static nn_tensor *pointwise_loss(const char *op, const char *node_name, nn_loss_kind kind,
                                 double param, nn_tensor *input, nn_tensor *target, int reduction) {
  nn_half_call half;
  nn_tensor *ops[2] = {input, target};
  int in_half = nn_half_enter(op, &half, 2, ops);
  if (in_half)
    return in_half < 0 ? NULL
                       : nn_half_leave(&half, pointwise_loss(op, node_name, kind, param, ops[0],
                                                             ops[1], reduction));
  if (check_pair(op, input, target) < 0) return NULL;
  nn_loss_spec spec = {kind, param, reduction, 1, NULL, 0, 0};
  return elementwise_loss(op, node_name, spec, input, target, 1);
}

nn_tensor *nn_l1_loss(nn_tensor *input, nn_tensor *target, nn_reduction reduction) {
  if (check_reduction("l1_loss", reduction, 0) < 0) return NULL;
  return pointwise_loss("l1_loss", "L1LossBackward0", NN_LOSS_L1, 0, input, target, reduction);
}

nn_tensor *nn_smooth_l1_loss(nn_tensor *input, nn_tensor *target, nn_reduction reduction,
                             double beta) {
  if (check_reduction("smooth_l1_loss", reduction, 0) < 0) return NULL;
  if (!(beta >= 0) || isinf(beta)) {
    nn_error_set("smooth_l1_loss: beta must be a finite number >= 0, got %g", beta);
    return NULL;
  }
  return pointwise_loss("smooth_l1_loss", "SmoothL1LossBackward0", NN_LOSS_SMOOTH_L1, beta, input,
                        target, reduction);
}

nn_tensor *nn_huber_loss(nn_tensor *input, nn_tensor *target, nn_reduction reduction,
                         double delta) {
  if (check_reduction("huber_loss", reduction, 0) < 0) return NULL;
  if (!(delta > 0) || isinf(delta)) {
    nn_error_set("huber_loss: delta must be a finite number > 0, got %g", delta);
    return NULL;
  }
  return pointwise_loss("huber_loss", "HuberLossBackward0", NN_LOSS_HUBER, delta, input, target,
                        reduction);
}

nn_tensor *nn_kl_div_loss(nn_tensor *input, nn_tensor *target, int reduction, int log_target) {
  if (check_reduction("kl_div", reduction, 1) < 0) return NULL;
  return pointwise_loss("kl_div", "KlDivBackward0",
                        log_target ? NN_LOSS_KL_DIV_LOG_TARGET : NN_LOSS_KL_DIV, 0, input, target,
                        reduction);
}

/* ---- binary cross-entropy with logits (the formulas: math/loss.h) ------- */
static int check_elementwise_weight(const char *op, const char *what, const nn_tensor *w,
                                    const nn_tensor *input) {
  if (!w) return 0;
  if (nn_check_same_device(op, input, w) < 0) return -1;
  if (w->dtype != input->dtype) {
    nn_error_set("%s: %s is %s, input %s", op, what, nn_dtype_name(w->dtype),
                 nn_dtype_name(input->dtype));
    return -1;
  }
  if (!broadcasts_to(w, input)) {
    char a[96], b[96];
    nn_error_set("%s: %s of shape %s cannot be broadcast to the input's shape %s", op, what,
                 nn_shape_string(w, b, sizeof b), nn_shape_string(input, a, sizeof a));
    return -1;
  }
  return refuse_grad(op, what, w);
}

nn_tensor *nn_bce_with_logits_loss(nn_tensor *input, nn_tensor *target, nn_tensor *weight,
                                   nn_tensor *pos_weight, nn_reduction reduction) {
  const char *op = "binary_cross_entropy_with_logits";
  nn_half_call half;
  nn_tensor *ops[4] = {input, target, weight, pos_weight};
  int in_half = nn_half_enter(op, &half, 4, ops);
  if (in_half)
    return in_half < 0 ? NULL
                       : nn_half_leave(&half, nn_bce_with_logits_loss(ops[0], ops[1], ops[2], ops[3],
                                                                      reduction));
  if (check_reduction(op, reduction, 0) < 0 || check_pair(op, input, target) < 0 ||
      check_elementwise_weight(op, "weight", weight, input) < 0 ||
      check_elementwise_weight(op, "pos_weight", pos_weight, input) < 0)
    return NULL;
  nn_loss_spec spec = {NN_LOSS_BCE_WITH_LOGITS, 0, reduction, 1, NULL, weight != NULL,
                       pos_weight != NULL};
  if ((weight || pos_weight) && !(spec.weights = spread_weights(input, weight, pos_weight)))
    return NULL;
  nn_tensor *out = elementwise_loss(op, "BinaryCrossEntropyWithLogitsBackward0", spec, input,
                                    target, 1);
  nn_release(spec.weights);
  return out;
}

/* ---- cross-entropy and negative log-likelihood over C classes ---------
   PyTorch 1.13's cross_entropy and nll_loss (aten/src/ATen/native/LossNLL.cpp).
   Input (N, C, d1, ...) is seen as outer x C x inner (outer = N, inner =
   d1 d2 ...; a 1-D input (C) is 1 x C x 1); position (o, k) holds one
   distribution over the classes, element (o, c, k) at (o C + c) inner + k.
   lp = log_softmax(x) = x - lse over the classes for cross_entropy
   (lse = log sum_c exp(x_c)), lp = x for nll_loss.

   With class labels t and smoothing s (0 for nll_loss), at each position
   whose label is not ignore_index:
     l = (1 - s) (-w_t lp_t) + (s / C) sum_c (-w_c lp_c)
   an ignored position gives 0 and counts for nothing. mean = sum of l over
   sum of w_t (PyTorch's weighted mean; its smoothing term is divided by
   the same total). Backward, with scale g (per position, or the mean's
   g / sum w_t):
     dl/dlp_c = -g ((1 - s) w_t [c = t] + (s / C) w_c)
     dl/dx_c  = dl/dlp_c - softmax_c sum_c' dl/dlp_c'   (log_softmax backward)
   and 0 at every class of an ignored position.

   With class probabilities y (cross_entropy only), y' = (1 - s) y + s / C:
     l = -sum_c w_c y'_c lp_c, mean = sum of l over the number of positions
     dl/dlp_c = -g w_c y'_c, dl/dx as above, dl/dy_c = -g w_c (1 - s) lp_c */

typedef struct {
  int64_t outer, classes, inner;
} class_layout;

static class_layout layout_of(const nn_tensor *input) {
  class_layout s = {1, input->size[input->ndim == 1 ? 0 : 1], 1};
  if (input->ndim > 1) s.outer = input->size[0];
  for (int d = 2; d < input->ndim; d++) s.inner *= input->size[d];
  return s;
}

/* The shape of one loss per position: the input's without its class dim. */
static int position_shape(const nn_tensor *input, int64_t *size) {
  if (input->ndim == 1) return 0;
  size[0] = input->size[0];
  for (int d = 2; d < input->ndim; d++) size[d - 1] = input->size[d];
  return input->ndim - 1;
}

/* What backward needs beyond input and target, in one float64 tensor (a
   node has three slots): the class weights (C values, when there are
   weights), each position's lse (cross_entropy), which backward would
   otherwise recompute, and the sum of the targets' weights (labels: the
   weighted mean's divisor). Forward reads the weights from here too. */
static nn_tensor *class_aux_new(const nn_tensor *input, const nn_tensor *weight, int64_t classes,
                                int64_t positions, int with_lse) {
  int64_t total = (weight ? classes : 0) + (with_lse ? positions : 0) + 1;
  nn_tensor *aux = nn_empty_like_shape(input, NN_FLOAT64, 1, &total);
  if (aux && weight) {
    nn_tensor *head = nn_narrow(aux, 0, 0, classes);
    int status = head ? nn_copy_(head, weight) : -1;
    nn_release(head);
    if (status < 0) {
      nn_release(aux);
      return NULL;
    }
  }
  return aux;
}

/* The kernels' view of a class loss, aux laid out as class_aux_new made it. */
static nn_class_loss_args class_args(const char *op, int from_logits, int probabilities,
                                     const nn_tensor *x, const nn_tensor *t, nn_tensor *aux,
                                     int has_weight, const nn_class_loss_options *o) {
  class_layout s = layout_of(x);
  double *p = nn_data(aux);
  nn_class_loss_args a;
  memset(&a, 0, sizeof a);
  a.op = op;
  a.dtype = x->dtype;
  a.outer = s.outer;
  a.classes = s.classes;
  a.inner = s.inner;
  a.x = nn_data(x);
  a.target = nn_data(t);
  a.target_dtype = t->dtype;
  a.probabilities = probabilities;
  a.from_logits = from_logits;
  a.weight = has_weight ? p : NULL;
  a.lse = from_logits ? p + (has_weight ? s.classes : 0) : NULL;
  a.total_weight = p + aux->size[0] - 1;
  a.ignore_index = o->ignore_index;
  a.first_label = o->first_label;
  a.smoothing = o->label_smoothing;
  a.reduction = o->reduction;
  return a;
}

static int class_loss_kernel_backward(const char *op, int from_logits, int probabilities,
                                      const nn_class_loss_options *o, nn_tensor *g,
                                      nn_tensor *input, nn_tensor *target, nn_tensor *aux,
                                      int need_x, int need_y, nn_tensor **gx, nn_tensor **gy);

/* A backward pass that records itself (create_graph) takes the gradient
   from fronts (higher_order.c). With labels, dl/dlp is g times what the
   kernel gives without the log_softmax step for a gradient of ones: a
   constant of the labels and weights. With probabilities it needs the
   class weights, in the input's dtype. */
static int class_loss_backward_recorded(const char *op, int from_logits, int probabilities,
                                        const nn_class_loss_options *o, nn_tensor *g,
                                        nn_tensor *input, nn_tensor *target, nn_tensor *aux,
                                        int need_x, int need_y, nn_tensor **gx, nn_tensor **gy) {
  nn_tensor *coef = NULL, *unused = NULL;
  int status = 0;
  nn_grad_guard guard = nn_no_grad_begin();
  if (!probabilities) {
    nn_tensor *ones = nn_full_like_shape(g, g->dtype, g->ndim, g->size, 1);
    status = ones ? class_loss_kernel_backward(op, 0, 0, o, ones, input, target, aux, 1, 0, &coef,
                                               &unused)
                  : -1;
    nn_release(ones);
  } else if (o->weight) {
    nn_tensor *head = nn_narrow(aux, 0, 0, layout_of(input).classes);
    coef = head ? nn_to_dtype(head, input->dtype) : NULL;
    nn_release(head);
    if (!coef) status = -1;
  }
  nn_no_grad_end(guard);
  if (status == 0)
    status = nn_class_loss_backward_graph(from_logits, probabilities, o->reduction,
                                          o->label_smoothing, g, input, target, coef, need_x,
                                          need_y, gx, gy);
  nn_release(coef);
  return status;
}

int nn_class_loss_backward(const char *op, int from_logits, int probabilities,
                           const nn_class_loss_options *o, nn_tensor *g, nn_tensor *input,
                           nn_tensor *target, nn_tensor *aux, int need_x, int need_y,
                           nn_tensor **gx, nn_tensor **gy) {
  *gx = *gy = NULL;
  if (nn_backward_records(g, input, target))
    return class_loss_backward_recorded(op, from_logits, probabilities, o, g, input, target, aux,
                                        need_x, need_y, gx, gy);
  return class_loss_kernel_backward(op, from_logits, probabilities, o, g, input, target, aux,
                                    need_x, need_y, gx, gy);
}

static int class_loss_kernel_backward(const char *op, int from_logits, int probabilities,
                                      const nn_class_loss_options *o, nn_tensor *g,
                                      nn_tensor *input, nn_tensor *target, nn_tensor *aux,
                                      int need_x, int need_y, nn_tensor **gx, nn_tensor **gy) {
  *gx = *gy = NULL;
  const nn_backend *be = nn_dispatch(op, offsetof(nn_backend, class_loss_backward), g, input, target);
  if (!be) return -1;
  nn_tensor *x = contiguous_values(input), *t = x ? contiguous_values(target) : NULL;
  nn_tensor *gc = t ? contiguous_values(g) : NULL;
  if (!gc || (need_x && !(*gx = nn_full_like_shape(x, x->dtype, x->ndim, x->size, 0))) ||
      (need_y && !(*gy = nn_empty_like(x))))
    goto fail;
  nn_class_loss_args a = class_args(op, from_logits, probabilities, x, t, aux, o->weight != NULL, o);
  a.g = nn_data(gc);
  a.gx = *gx ? nn_data(*gx) : NULL;
  a.gy = *gy ? nn_data(*gy) : NULL;
  if (be->class_loss_backward(&a) < 0) goto fail;
  nn_release(x), nn_release(t), nn_release(gc);
  return 0;
fail:
  nn_release(x), nn_release(t), nn_release(gc), nn_release(*gx), nn_release(*gy);
  *gx = *gy = NULL;
  return -1;
}

/* A class loss's node: ints 0-5 reduction, ignore_index, first_label,
   from_logits, weighted, probabilities; scalar 0 the smoothing; saved:
   input, target, aux. grad g: the positions' shape (none) or a scalar. */
static int class_loss_backward(nn_node *node, nn_tensor *g, nn_tensor **gi) {
  int from_logits = (int)node->ints[3], probabilities = (int)node->ints[5];
  nn_tensor *weighted = node->ints[4] ? node->saved[2] : NULL; /* only "is there one" is read */
  nn_class_loss_options o = {weighted, (nn_reduction)node->ints[0], node->ints[1], node->scalar[0],
                             node->ints[2]};
  return nn_class_loss_backward(from_logits ? "cross_entropy" : "nll_loss", from_logits,
                                probabilities, &o, g, node->saved[0], node->saved[1],
                                node->saved[2], node->inputs[0] != NULL,
                                probabilities && node->inputs[1] != NULL, &gi[0], &gi[1]);
}

static nn_tensor *class_loss_forward(const char *op, int from_logits, int probabilities,
                                     nn_tensor *input, nn_tensor *target,
                                     const nn_class_loss_options *o) {
  const nn_backend *be = nn_dispatch(op, offsetof(nn_backend, class_loss), input, target, NULL);
  if (!be) return NULL;
  class_layout s = layout_of(input);
  int64_t size[NN_MAX_DIMS];
  int ndim = position_shape(input, size);
  nn_tensor *x = contiguous_values(input), *t = x ? contiguous_values(target) : NULL;
  nn_tensor *aux = t ? class_aux_new(input, o->weight, s.classes, s.outer * s.inner, from_logits) : NULL;
  nn_tensor *out = aux ? loss_result(input, o->reduction, ndim, size) : NULL;
  if (!out) goto fail;
  nn_class_loss_args a = class_args(op, from_logits, probabilities, x, t, aux, o->weight != NULL, o);
  a.out = nn_data(out);
  if (be->class_loss(&a) < 0) goto fail;
  if (nn_needs_grad(input, probabilities ? target : NULL, NULL)) {
    nn_node *node = nn_node_attach(out, from_logits ? "CrossEntropyLossBackward0" : "NllLossBackward0",
                                   class_loss_backward, probabilities ? 2 : 1, input,
                                   probabilities ? target : NULL, NULL);
    if (!node) goto fail;
    node->ints[0] = o->reduction;
    node->ints[1] = o->ignore_index;
    node->ints[2] = o->first_label;
    node->ints[3] = from_logits;
    node->ints[4] = o->weight != NULL;
    node->ints[5] = probabilities;
    node->scalar[0] = o->label_smoothing;
    nn_node_save(node, 0, input);
    nn_node_save(node, 1, target);
    nn_node_save(node, 2, aux);
  }
  nn_release(x), nn_release(t), nn_release(aux);
  return out;
fail:
  nn_release(x), nn_release(t), nn_release(aux), nn_release(out);
  return NULL;
}

/* The checks both losses share, then labels or probabilities by the
   target's shape, as PyTorch decides. */
static nn_tensor *class_loss(const char *op, int from_logits, nn_tensor *input, nn_tensor *target,
                             const nn_class_loss_options *options) {
  static const nn_class_loss_options defaults = {NULL, NN_REDUCTION_MEAN, -100, 0, 0};
  const nn_class_loss_options *o = options ? options : &defaults;
  nn_half_call half;
  nn_tensor *ops[3] = {input, target, o->weight};
  int in_half = nn_half_enter(op, &half, 3, ops);
  if (in_half) {
    if (in_half < 0) return NULL;
    nn_class_loss_options o32 = *o;
    o32.weight = ops[2];
    return nn_half_leave(&half, class_loss(op, from_logits, ops[0], ops[1], &o32));
  }
  if (check_reduction(op, o->reduction, 0) < 0 ||
      !nn_dispatch(op, offsetof(nn_backend, class_loss), input, target, o->weight))
    return NULL;
  if (!nn_float_kernel_dtype(input->dtype)) {
    nn_error_set("%s: input must be float32 or float64, got %s", op, nn_dtype_name(input->dtype));
    return NULL;
  }
  if (input->ndim < 1) {
    nn_error_set("%s: input must have a class dimension: (C), (N, C) or (N, C, d1, ...), got a "
                 "scalar", op);
    return NULL;
  }
  if (!(o->label_smoothing >= 0 && o->label_smoothing <= 1)) {
    nn_error_set("%s: label_smoothing must be between 0 and 1, got %g", op, o->label_smoothing);
    return NULL;
  }
  if (!from_logits && o->label_smoothing != 0) {
    nn_error_set("%s: label_smoothing is an option of cross_entropy only", op);
    return NULL;
  }
  if (o->first_label < 0) {
    nn_error_set("%s: first_label must be >= 0, got %lld", op, (long long)o->first_label);
    return NULL;
  }
  class_layout s = layout_of(input);
  if (o->weight) {
    const nn_tensor *w = o->weight;
    if (w->dtype != input->dtype) {
      nn_error_set("%s: weight is %s, input %s", op, nn_dtype_name(w->dtype),
                   nn_dtype_name(input->dtype));
      return NULL;
    }
    if (w->ndim != 1 || w->size[0] != s.classes) {
      char b[96];
      nn_error_set("%s: weight must hold one value per class, %lld, got shape %s", op,
                   (long long)s.classes, nn_shape_string(w, b, sizeof b));
      return NULL;
    }
    if (refuse_grad(op, "weight", w) < 0) return NULL;
  }
  if (from_logits && nn_same_shape(input, target)) {
    if (target->dtype != input->dtype) {
      nn_error_set("%s: a target of the input's shape holds class probabilities and must be %s "
                   "like the input, got %s", op, nn_dtype_name(input->dtype),
                   nn_dtype_name(target->dtype));
      return NULL;
    }
    if (o->ignore_index >= o->first_label) {
      nn_error_set("%s: ignore_index (%lld) applies to class labels, not to class probabilities",
                   op, (long long)o->ignore_index);
      return NULL;
    }
    return class_loss_forward(op, from_logits, 1, input, target, o);
  }
  int64_t size[NN_MAX_DIMS];
  int ndim = position_shape(input, size);
  int fits = target->ndim == ndim;
  for (int d = 0; fits && d < ndim; d++) fits = target->size[d] == size[d];
  if (!fits) {
    char a[96], b[96], c[96];
    nn_shape_string(input, a, sizeof a);
    nn_shape_string(target, b, sizeof b);
    nn_sizes_string(ndim, size, c, sizeof c);
    if (from_logits)
      nn_error_set("%s: target shape %s does not fit input shape %s: class labels need shape %s, "
                   "class probabilities %s", op, b, a, c, a);
    else
      nn_error_set("%s: target shape %s does not fit input shape %s: class labels need shape %s",
                   op, b, a, c);
    return NULL;
  }
  if (target->dtype == NN_BOOL) {
    nn_error_set("%s: target must hold class labels (int64, or whole numbers in a float "
                 "tensor), got bool", op);
    return NULL;
  }
  if (target->requires_grad && nn_grad_enabled()) {
    nn_error_set("%s: class labels have no derivative; detach() the target", op);
    return NULL;
  }
  return class_loss_forward(op, from_logits, 0, input, target, o);
}

nn_tensor *nn_cross_entropy_loss(nn_tensor *input, nn_tensor *target,
                                 const nn_class_loss_options *options) {
  return class_loss("cross_entropy", 1, input, target, options);
}

nn_tensor *nn_nll_loss(nn_tensor *input, nn_tensor *target, const nn_class_loss_options *options) {
  return class_loss("nll_loss", 0, input, target, options);
}

/* ==== CTC: one node over the alpha recursion, its beta backward beside it ====
   Node: saved 0 log_probs, 1 the plan (lengths, then the targets: see
   backend.h's nn_ctc_args), 2 alpha; ints 0-4 S, L, blank, zero_infinity. */
static nn_ctc_args ctc_args(nn_tensor *lp, nn_tensor *plan, nn_tensor *alpha, int64_t S, int64_t L,
                            int64_t blank, int zero_infinity) {
  nn_ctc_args a = {0};
  a.dtype = lp->dtype;
  a.T = lp->size[0], a.N = lp->size[1], a.C = lp->size[2], a.S = S, a.L = L;
  a.lp = nn_data(lp);
  a.plan = nn_data(plan);
  a.blank = blank;
  a.zero_infinity = zero_infinity;
  a.alpha = nn_data(alpha);
  return a;
}

static int ctc_backward(nn_node *node, nn_tensor *g, nn_tensor **gi) {
  const char *op = "ctc_loss";
  nn_tensor *input = node->saved[0];
  if (nn_backward_records(g, input, NULL)) {
    nn_error_set("%s: double backwards not implemented (the gradient of CTC's gradient, as in "
                 "PyTorch); backward without create_graph", op);
    return -1;
  }
  const nn_backend *be = nn_dispatch(op, offsetof(nn_backend, ctc_loss_backward), g, input, NULL);
  if (!be) return -1;
  nn_tensor *x = contiguous_values(input), *gc = x ? contiguous_values(g) : NULL;
  int64_t N = input->size[1], C = input->size[2], L = node->ints[1];
  int64_t work_size = N * (2 * L + C);
  nn_tensor *work = gc ? nn_empty_like_shape(input, NN_FLOAT64, 1, &work_size) : NULL;
  nn_tensor *gx = work ? nn_full_like_shape(x, x->dtype, x->ndim, x->size, 0) : NULL;
  int status = -1;
  if (gx) {
    nn_ctc_args a = ctc_args(x, node->saved[1], node->saved[2], node->ints[0], L, node->ints[2],
                             (int)node->ints[3]);
    a.work = nn_data(work);
    a.g = nn_data(gc);
    a.gx = nn_data(gx);
    status = be->ctc_loss_backward(&a);
  }
  nn_release(x), nn_release(gc), nn_release(work);
  if (status < 0) {
    nn_release(gx);
    return -1;
  }
  gi[0] = gx;
  return 0;
}

/* The lengths and labels in one int64 tensor: what the kernels read. */
static nn_tensor *ctc_plan(const char *op, nn_tensor *targets, nn_tensor *input_lengths,
                           nn_tensor *target_lengths, int64_t N) {
  nn_tensor *parts[3] = {input_lengths, target_lengths, targets};
  for (int i = 0; i < 3; i++)
    if (parts[i]->dtype != NN_INT64) {
      nn_error_set("%s: targets and lengths must be int64, got %s", op,
                   nn_dtype_name(parts[i]->dtype));
      return NULL;
    }
  if (input_lengths->ndim != 1 || input_lengths->size[0] != N || target_lengths->ndim != 1 ||
      target_lengths->size[0] != N || targets->ndim != 2 || targets->size[0] != N) {
    nn_error_set("%s: lengths must be (N) and targets (N, S) for a batch of %lld", op, (long long)N);
    return NULL;
  }
  nn_grad_guard guard = nn_no_grad_begin();
  int64_t flat = -1;
  nn_tensor *rows = nn_reshape(targets, 1, &flat);
  nn_tensor *flat_parts[3] = {input_lengths, target_lengths, rows};
  nn_tensor *plan = rows ? nn_cat(3, flat_parts, 0) : NULL;
  nn_release(rows);
  nn_no_grad_end(guard);
  return plan;
}

nn_tensor *nn_ctc_loss(nn_tensor *log_probs, nn_tensor *targets, nn_tensor *input_lengths,
                       nn_tensor *target_lengths, int64_t blank, int zero_infinity) {
  const char *op = "ctc_loss";
  const nn_backend *be = nn_dispatch(op, offsetof(nn_backend, ctc_loss), log_probs, targets, NULL);
  if (!be) return NULL;
  if (!nn_float_kernel_dtype(log_probs->dtype) || log_probs->ndim != 3) {
    char a[96];
    nn_error_set("%s: log_probs must be float32 or float64 (T, N, C), got %s %s", op,
                 nn_dtype_name(log_probs->dtype), nn_shape_string(log_probs, a, sizeof a));
    return NULL;
  }
  int64_t T = log_probs->size[0], N = log_probs->size[1], C = log_probs->size[2];
  if (blank < 0 || blank >= C) {
    nn_error_set("%s: blank %lld is not a class of the %lld in log_probs", op, (long long)blank + 1,
                 (long long)C);
    return NULL;
  }
  if (refuse_grad(op, "targets", targets) < 0) return NULL;
  nn_tensor *plan = ctc_plan(op, targets, input_lengths, target_lengths, N);
  if (!plan) return NULL;
  int64_t S = targets->size[1], L = 2 * S + 1, alpha_size = N * T * L + N;
  nn_tensor *x = contiguous_values(log_probs);
  nn_tensor *alpha = x ? nn_empty_like_shape(log_probs, NN_FLOAT64, 1, &alpha_size) : NULL;
  nn_tensor *out = alpha ? nn_empty_like_shape(log_probs, log_probs->dtype, 1, &N) : NULL;
  if (!out) goto fail;
  nn_ctc_args a = ctc_args(x, plan, alpha, S, L, blank, zero_infinity);
  a.out = nn_data(out);
  if (be->ctc_loss(&a) < 0) goto fail;
  if (nn_needs_grad(log_probs, NULL, NULL)) {
    nn_node *node = nn_node_attach(out, "CtcLossBackward0", ctc_backward, 1, log_probs, NULL, NULL);
    if (!node) goto fail;
    node->ints[0] = S, node->ints[1] = L, node->ints[2] = blank, node->ints[3] = zero_infinity;
    nn_node_save(node, 0, log_probs);
    nn_node_save(node, 1, plan);
    nn_node_save(node, 2, alpha);
  }
  nn_release(x), nn_release(plan), nn_release(alpha);
  return out;
fail:
  nn_release(x), nn_release(plan), nn_release(alpha), nn_release(out);
  return NULL;
}

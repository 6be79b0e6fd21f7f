/* rnn.c: the front of the recurrent layers (Elman RNN, LSTM, GRU): one
 * direction of one layer over a packed sequence, its backward beside it.
 * The input's products for every step are one GEMM made before (the Lua
 * layer's F.linear, x_gates here); each step is then one GEMM of the
 * hidden state (b_hh as its bias) and one fused kernel of the cell
 * (cpu/rnn.c over math/rnn.h). Backward walks the steps back with one
 * kernel and one GEMM each, then finds weight_hh's and bias_hh's
 * gradients over all steps at once (one GEMM, one row sum). Every buffer
 * is allocated once per call, none per step.
 *
 * Why one output tensor: a node has one output, and the layer has two or
 * three (the sequence, h_n, c_n); they are rows of one tensor that the
 * Lua layer cuts into views, whose gradients meet again in it. Why the
 * hidden weight and bias come flattened into one tensor: a node has three
 * inputs, and x_gates and state0 take two. */
#include "internal.h"

#include <stddef.h>

static const char *mode_name(nn_rnn_mode mode) {
  static const char *const names[] = {"rnn_tanh", "rnn_relu", "lstm", "gru"};
  return (unsigned)mode <= NN_RNN_GRU ? names[mode] : "rnn";
}

/* gates per unit: G of x_gates' G H columns; A of the saved activations */
static int64_t gates_of(nn_rnn_mode mode) { return mode == NN_RNN_LSTM ? 4 : mode == NN_RNN_GRU ? 3 : 1; }
static int64_t act_of(nn_rnn_mode mode) { return mode == NN_RNN_LSTM || mode == NN_RNN_GRU ? 4 : 1; }
static int64_t states_of(nn_rnn_mode mode) { return mode == NN_RNN_LSTM ? 2 : 1; }

/* The steps of a packed sequence: batch_sizes and each step's first row. */
typedef struct {
  int64_t steps, batch, total;
  const int64_t *sizes;
  int64_t *first; /* steps values, malloc'd */
} steps_layout;

static int layout_of(const char *op, nn_tensor *batch_sizes, steps_layout *s) {
  s->first = NULL;
  if (batch_sizes->device != NN_CPU || batch_sizes->dtype != NN_INT64 || batch_sizes->ndim != 1 ||
      !nn_is_contiguous(batch_sizes) || batch_sizes->size[0] < 1) {
    nn_error_set("%s: batch_sizes must be a non-empty contiguous int64 vector on the cpu", op);
    return -1;
  }
  s->steps = batch_sizes->size[0];
  s->sizes = nn_data(batch_sizes);
  s->batch = s->sizes[0];
  s->total = 0;
  if (!(s->first = malloc((size_t)s->steps * sizeof *s->first))) {
    nn_error_set("%s: out of memory", op);
    return -1;
  }
  for (int64_t t = 0; t < s->steps; t++) {
    int64_t b = s->sizes[t];
    if (b < 1 || b > (t ? s->sizes[t - 1] : b)) {
      nn_error_set("%s: batch_sizes must be positive and non-increasing, got %lld after %lld at step %lld",
                   op, (long long)b, (long long)(t ? s->sizes[t - 1] : b), (long long)t + 1);
      free(s->first), s->first = NULL;
      return -1;
    }
    s->first[t] = s->total;
    s->total += b;
  }
  return 0;
}

/* Typed pointer arithmetic on device pointers (never dereferenced here). */
static void *row_at(const nn_tensor *t, int64_t row, int64_t width) {
  return (char *)nn_data(t) + (size_t)(row * width) * nn_element_size(t->dtype);
}

/* c (m x n, row stride n) = bias + a (m x k) b^T or a b, plain pointers. */
static int product(const nn_backend *be, nn_dtype dtype, int64_t m, int64_t n, int64_t k,
                   const void *a, int64_t a_rs, int64_t a_cs, const void *b, int64_t b_rs,
                   int64_t b_cs, double beta, void *c, const void *bias) {
  nn_gemm_args g = {dtype, 1, m, n, k, 1.0, beta, {(char *)a, 0, a_rs, a_cs},
                    {(char *)b, 0, b_rs, b_cs}, {(char *)c, 0, n, 1}, bias};
  return be->gemm(&g);
}

/* The saved workspace's regions, each total x width: act (A H), h_prev
   (H), and for the LSTM c_seq and c_prev (H each). */
typedef struct {
  void *act, *h_prev, *c_seq, *c_prev;
} workspace;

static workspace workspace_of(const nn_tensor *ws, nn_rnn_mode mode, int64_t total, int64_t H) {
  workspace w = {NULL, NULL, NULL, NULL};
  int64_t A = act_of(mode) * H;
  w.act = row_at(ws, 0, 1);
  w.h_prev = row_at(ws, total * A, 1);
  if (mode == NN_RNN_LSTM) {
    w.c_seq = row_at(ws, total * (A + H), 1);
    w.c_prev = row_at(ws, total * (A + 2 * H), 1);
  }
  return w;
}

/* ---- backward --------------------------------------------------------- */
/* The backward op (records nothing: no second derivative yet).
   g: the gradient of the output ((total + S B) x H); ws, weights,
   batch_sizes as the forward saved them. Writes the gradients asked for
   (need[0..2]: x_gates, state0, weights) into grads[0..2]. */
static int rnn_layer_backward_op(nn_rnn_mode mode, int reverse, nn_tensor *g, nn_tensor *ws,
                                  nn_tensor *weights, nn_tensor *batch_sizes, int64_t H,
                                  const int *need, nn_tensor **grads) {
  const char *op = mode_name(mode);
  grads[0] = grads[1] = grads[2] = NULL;
  const nn_backend *be = nn_dispatch(op, offsetof(nn_backend, rnn_step_backward), g, ws, weights);
  if (!be) return -1;
  steps_layout s;
  if (layout_of(op, batch_sizes, &s) < 0) return -1;
  int64_t G = gates_of(mode) * H, S = states_of(mode), B = s.batch, total = s.total;
  nn_tensor *gc = NULL, *dstate = NULL, *dxg = NULL, *dhg = NULL, *dweights = NULL;
  nn_grad_guard guard = nn_no_grad_begin();
  int64_t gate_size[2] = {total, G};
  if (!(gc = nn_contiguous(g))) goto fail;
  /* the state's gradient starts as h_n's (and c_n's) and ends as h0's */
  nn_tensor *tail = nn_narrow(gc, 0, total, S * B);
  dstate = tail ? nn_clone(tail) : NULL;
  nn_release(tail);
  if (!dstate || !(dxg = nn_empty_like_shape(g, g->dtype, 2, gate_size))) goto fail;
  if (mode == NN_RNN_GRU && !(dhg = nn_empty_like_shape(g, g->dtype, 2, gate_size))) goto fail;
  workspace w = workspace_of(ws, mode, total, H);
  int64_t A = act_of(mode) * H;
  const void *w_hh = nn_data(weights);
  nn_tensor *dgates = dhg ? dhg : dxg; /* what passes through the hidden product */
  for (int64_t i = s.steps - 1; i >= 0; i--) {
    int64_t t = reverse ? s.steps - 1 - i : i, rows = s.sizes[t], first = s.first[t];
    nn_rnn_step_args a = {0};
    a.mode = mode, a.dtype = g->dtype, a.rows = rows, a.hidden = H;
    a.act = (char *)w.act + (size_t)(first * A) * nn_element_size(g->dtype);
    a.h_prev = (char *)w.h_prev + (size_t)(first * H) * nn_element_size(g->dtype);
    if (mode == NN_RNN_LSTM) {
      a.c_seq = (char *)w.c_seq + (size_t)(first * H) * nn_element_size(g->dtype);
      a.c_prev = (char *)w.c_prev + (size_t)(first * H) * nn_element_size(g->dtype);
      a.dc = row_at(dstate, B, H);
    }
    a.g_seq = row_at(gc, first, H);
    a.dh = nn_data(dstate);
    a.dxg = row_at(dxg, first, G);
    a.dhg = dhg ? row_at(dhg, first, G) : NULL;
    if (be->rnn_step_backward(&a) < 0) goto fail;
    /* dh' = dgates w_hh (+ GRU's direct part, which the kernel left in dh) */
    if (product(be, g->dtype, rows, H, G, row_at(dgates, first, G), G, 1, w_hh, H, 1,
                mode == NN_RNN_GRU ? 1 : 0, nn_data(dstate), NULL) < 0)
      goto fail;
  }
  if (need[2]) {
    int64_t n = nn_numel(weights);
    if (!(dweights = nn_full_like_shape(weights, weights->dtype, 1, &n, 0))) goto fail;
    /* d w_hh = dgates^T h_prev over every row of every step */
    if (product(be, g->dtype, G, H, total, nn_data(dgates), 1, G, w.h_prev, H, 1, 0,
                nn_data(dweights), NULL) < 0)
      goto fail;
    if (n > G * H && be->add_rows(g->dtype, total, G, nn_data(dgates), row_at(dweights, G * H, 1)) < 0)
      goto fail;
  }
  nn_no_grad_end(guard);
  free(s.first);
  nn_release(gc);
  if (dhg) nn_release(dhg);
  grads[0] = need[0] ? dxg : (nn_release(dxg), NULL);
  grads[1] = need[1] ? dstate : (nn_release(dstate), NULL);
  grads[2] = dweights;
  return 0;
fail:
  nn_no_grad_end(guard);
  free(s.first);
  nn_release(gc), nn_release(dstate), nn_release(dxg), nn_release(dhg), nn_release(dweights);
  return -1;
}

/* What a recording backward reads that the node does not hold otherwise:
   the products and the initial state, where they need no gradient (else
   the node's inputs hold them). */
typedef struct {
  nn_tensor *x_gates, *state0;
} rnn_values;

static void rnn_values_free(void *p) {
  rnn_values *v = p;
  nn_release(v->x_gates), nn_release(v->state0);
  free(v);
}

static int rnn_layer_backward(nn_node *node, nn_tensor *g, nn_tensor **gi) {
  int need[3] = {node->inputs[0] != NULL, node->inputs[1] != NULL, node->inputs[2] != NULL};
  if (nn_recording_backward()) { /* through fronts (rnn_recorded.c): the kernels record nothing */
    const rnn_values *v = node->ctx;
    return nn_rnn_backward_graph((nn_rnn_mode)node->ints[0], (int)node->ints[1], g,
                                 need[0] ? node->inputs[0] : v->x_gates, need[1] ? node->inputs[1] : v->state0,
                                 need[2] ? node->inputs[2] : node->saved[1], node->saved[2], node->ints[2],
                                 need, gi);
  }
  return rnn_layer_backward_op((nn_rnn_mode)node->ints[0], (int)node->ints[1], g, node->saved[0],
                               node->saved[1], node->saved[2], node->ints[2], need, gi);
}

/* ---- forward ---------------------------------------------------------- */
nn_tensor *nn_rnn_layer(nn_rnn_mode mode, nn_tensor *x_gates, nn_tensor *state0,
                        nn_tensor *weights, nn_tensor *batch_sizes, int reverse) {
  const char *op = mode_name(mode);
  if ((unsigned)mode > NN_RNN_GRU) {
    nn_error_set("rnn: unknown mode %d", (int)mode);
    return NULL;
  }
  const nn_backend *be = nn_dispatch(op, offsetof(nn_backend, rnn_step), x_gates, state0, weights);
  if (!be) return NULL;
  if (!nn_dtype_is_floating(x_gates->dtype) || state0->dtype != x_gates->dtype ||
      weights->dtype != x_gates->dtype) {
    nn_error_set("%s: input, state and weights must all be float32 or all float64, got %s, %s and %s",
                 op, nn_dtype_name(x_gates->dtype), nn_dtype_name(state0->dtype),
                 nn_dtype_name(weights->dtype));
    return NULL;
  }
  steps_layout s;
  if (layout_of(op, batch_sizes, &s) < 0) return NULL;
  char shape[96];
  int64_t S = states_of(mode), B = s.batch, total = s.total;
  if (state0->ndim != 2 || state0->size[0] != S * B) {
    nn_error_set("%s: the initial state must be (%lld x hidden) for a batch of %lld, got %s", op,
                 (long long)(S * B), (long long)B, nn_shape_string(state0, shape, sizeof shape));
    free(s.first);
    return NULL;
  }
  int64_t H = state0->size[1], G = gates_of(mode) * H, A = act_of(mode) * H;
  if (x_gates->ndim != 2 || x_gates->size[0] != total || x_gates->size[1] != G) {
    nn_error_set("%s: the input's products must be (%lld x %lld), got %s", op, (long long)total,
                 (long long)G, nn_shape_string(x_gates, shape, sizeof shape));
    free(s.first);
    return NULL;
  }
  if (weights->ndim != 1 || (nn_numel(weights) != G * H && nn_numel(weights) != G * H + G)) {
    nn_error_set("%s: the hidden weights must be %lld values (and %lld of bias), got %s", op,
                 (long long)(G * H), (long long)G, nn_shape_string(weights, shape, sizeof shape));
    free(s.first);
    return NULL;
  }
  int has_bias = nn_numel(weights) > G * H;
  nn_tensor *xc = NULL, *wc = NULL, *sc = NULL, *out = NULL, *ws = NULL, *hg = NULL;
  nn_grad_guard guard = nn_no_grad_begin();
  int64_t out_size[2] = {total + S * B, H}, hg_size[2] = {B, G};
  int64_t ws_size = total * (A + H + (mode == NN_RNN_LSTM ? 2 * H : 0));
  if (!(xc = nn_contiguous(x_gates)) || !(wc = nn_contiguous(weights)) ||
      !(sc = nn_contiguous(state0)) ||
      !(out = nn_empty_like_shape(x_gates, x_gates->dtype, 2, out_size)) ||
      !(ws = nn_empty_like_shape(x_gates, x_gates->dtype, 1, &ws_size)) ||
      !(hg = nn_empty_like_shape(x_gates, x_gates->dtype, 2, hg_size)))
    goto fail;
  size_t es = nn_element_size(x_gates->dtype);
  void *h = row_at(out, total, H), *c = row_at(out, total + B, H);
  if (be->within(h, nn_data(sc), (size_t)(S * B * H) * es) < 0) goto fail;
  workspace w = workspace_of(ws, mode, total, H);
  const void *w_hh = nn_data(wc), *b_hh = has_bias ? row_at(wc, G * H, 1) : NULL;
  for (int64_t i = 0; i < s.steps; i++) {
    int64_t t = reverse ? s.steps - 1 - i : i, rows = s.sizes[t], first = s.first[t];
    /* hg = b_hh + h w_hh^T for the step's rows (the first `rows` of the state) */
    if (product(be, x_gates->dtype, rows, G, H, h, H, 1, w_hh, 1, H, 0, nn_data(hg), b_hh) < 0)
      goto fail;
    nn_rnn_step_args a = {0};
    a.mode = mode, a.dtype = x_gates->dtype, a.rows = rows, a.hidden = H;
    a.xg = row_at(xc, first, G);
    a.hg = nn_data(hg);
    a.h = h;
    a.h_seq = row_at(out, first, H);
    a.act = (char *)w.act + (size_t)(first * A) * es;
    a.h_prev = (char *)w.h_prev + (size_t)(first * H) * es;
    if (mode == NN_RNN_LSTM) {
      a.c = c;
      a.c_seq = (char *)w.c_seq + (size_t)(first * H) * es;
      a.c_prev = (char *)w.c_prev + (size_t)(first * H) * es;
    }
    if (be->rnn_step(&a) < 0) goto fail;
  }
  nn_no_grad_end(guard);
  nn_release(hg), hg = NULL;
  if (nn_needs_grad(x_gates, state0, weights)) {
    nn_node *node = nn_node_attach(out, mode == NN_RNN_LSTM ? "LstmBackward0" : mode == NN_RNN_GRU
                                                                                 ? "GruBackward0"
                                                                                 : "RnnBackward0",
                                   rnn_layer_backward, 3, x_gates, state0, weights);
    if (!node) goto fail_after;
    node->ints[0] = mode;
    node->ints[1] = reverse;
    node->ints[2] = H;
    nn_node_save(node, 0, ws);
    nn_node_save(node, 1, wc);
    nn_node_save(node, 2, batch_sizes);
    if (!node->inputs[0] || !node->inputs[1]) {
      rnn_values *v = malloc(sizeof *v);
      if (!v) {
        nn_error_set("%s: out of memory", op);
        goto fail_after;
      }
      v->x_gates = node->inputs[0] ? NULL : nn_retain(xc);
      v->state0 = node->inputs[1] ? NULL : nn_retain(sc);
      node->ctx = v;
      node->free_ctx = rnn_values_free;
    }
  }
  free(s.first);
  nn_release(xc), nn_release(wc), nn_release(sc), nn_release(ws);
  return out;
fail:
  nn_no_grad_end(guard);
fail_after:
  free(s.first);
  nn_release(xc), nn_release(wc), nn_release(sc), nn_release(out), nn_release(ws), nn_release(hg);
  return NULL;
}

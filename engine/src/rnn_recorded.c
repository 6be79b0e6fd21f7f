/* rnn_recorded.c: the recurrent layers' backward when a backward pass
 * records itself (create_graph, issues 12 and 13). The fused kernels of
 * rnn.c record nothing, so this path runs the layer again with fronts
 * (linear, sigmoid, tanh, narrow, cat), keeping each step's tensors, then
 * walks the steps back with fronts too: every gradient it gives is a graph
 * of ordinary ops, differentiable to any order. Gate orders and formulas
 * are PyTorch's (math/rnn.h): LSTM i, f, g, o; GRU r, z, n with
 * n = tanh(x_n + r (W_hn h + b_hn)). */
#include "internal.h"

/* Every temporary of the pass, released together at the end. */
typedef struct {
  nn_tensor **t;
  size_t n, cap;
  int failed;
} pool;

static nn_tensor *hold(pool *p, nn_tensor *t) {
  if (!t) {
    p->failed = 1;
    return NULL;
  }
  if (p->n == p->cap) {
    size_t cap = p->cap ? 2 * p->cap : 256;
    nn_tensor **grown = realloc(p->t, cap * sizeof *grown);
    if (!grown) {
      nn_release(t);
      nn_error_set("rnn backward: out of memory");
      p->failed = 1;
      return NULL;
    }
    p->t = grown, p->cap = cap;
  }
  return p->t[p->n++] = t;
}

/* Each helper gives NULL (and marks the pool) once anything failed. */
static nn_tensor *bin(pool *p, nn_binary_op op, nn_tensor *a, nn_tensor *b) {
  return p->failed || !a || !b ? NULL : hold(p, nn_binary(op, a, b));
}
static nn_tensor *mul(pool *p, nn_tensor *a, nn_tensor *b) { return bin(p, NN_MUL, a, b); }
static nn_tensor *add(pool *p, nn_tensor *a, nn_tensor *b) { return bin(p, NN_ADD, a, b); }
static nn_tensor *un(pool *p, nn_unary_op op, nn_tensor *a) {
  return p->failed || !a ? NULL : hold(p, nn_unary(op, a));
}
/* 1 - a */
static nn_tensor *one_minus(pool *p, nn_tensor *a) {
  return p->failed || !a ? NULL : hold(p, nn_binary_scalar(NN_SUB, a, 1, 1));
}
/* s' (s: a sigmoid's output) = s (1 - s); t' (t: a tanh's output) = 1 - t^2 */
static nn_tensor *sigmoid_slope(pool *p, nn_tensor *s) { return mul(p, s, one_minus(p, s)); }
static nn_tensor *tanh_slope(pool *p, nn_tensor *t) { return one_minus(p, mul(p, t, t)); }
static nn_tensor *part(pool *p, nn_tensor *a, int dim, int64_t start, int64_t length) {
  return p->failed || !a ? NULL : hold(p, nn_narrow(a, dim, start, length));
}
static nn_tensor *join(pool *p, int n, nn_tensor **ts, int dim) {
  for (int i = 0; i < n; i++)
    if (!ts[i]) p->failed = 1;
  return p->failed ? NULL : hold(p, nn_cat(n, ts, dim));
}
/* the first rows of a state, and a state whose first rows are replaced */
static nn_tensor *first_rows(pool *p, nn_tensor *state, int64_t rows) {
  return state && rows < state->size[0] ? part(p, state, 0, 0, rows) : state;
}
static nn_tensor *with_first_rows(pool *p, nn_tensor *state, nn_tensor *rows_part) {
  int64_t rows = rows_part ? rows_part->size[0] : 0;
  if (!state || !rows_part || rows == state->size[0]) return rows_part;
  nn_tensor *pair[2] = {rows_part, part(p, state, 0, rows, state->size[0] - rows)};
  return join(p, 2, pair, 0);
}

/* One step's tensors, from the forward run again. */
typedef struct {
  nn_tensor *h_prev, *c_prev, *out; /* out: the step's new h */
  nn_tensor *a, *b, *c, *d;         /* LSTM: i f g o, tanh(c); GRU: r z n, W_hn h + b_hn */
  nn_tensor *tanh_c;
} step_values;

int nn_rnn_backward_graph(nn_rnn_mode mode, int reverse, nn_tensor *g, nn_tensor *x_gates,
                          nn_tensor *state0, nn_tensor *weights, nn_tensor *batch_sizes, int64_t H,
                          const int *need, nn_tensor **grads) {
  grads[0] = grads[1] = grads[2] = NULL;
  int64_t steps = batch_sizes->size[0], B = ((const int64_t *)nn_data(batch_sizes))[0];
  const int64_t *sizes = nn_data(batch_sizes);
  int64_t G = (mode == NN_RNN_LSTM ? 4 : mode == NN_RNN_GRU ? 3 : 1) * H, total = x_gates->size[0];
  int lstm = mode == NN_RNN_LSTM, gru = mode == NN_RNN_GRU;
  pool p = {NULL, 0, 0, 0};
  step_values *v = calloc((size_t)steps, sizeof *v);
  int64_t *first = calloc((size_t)steps, sizeof *first);
  nn_tensor **dx = calloc((size_t)steps, sizeof *dx);
  if (!v || !first || !dx) {
    nn_error_set("rnn backward: out of memory");
    p.failed = 1;
    goto done;
  }
  for (int64_t t = 1; t < steps; t++) first[t] = first[t - 1] + sizes[t - 1];
  int64_t wshape[2] = {G, H};
  nn_tensor *w_flat = part(&p, weights, 0, 0, G * H);
  nn_tensor *w = w_flat ? hold(&p, nn_reshape(w_flat, 2, wshape)) : NULL;
  nn_tensor *bias = nn_numel(weights) > G * H ? part(&p, weights, 0, G * H, G) : NULL;
  nn_tensor *h = part(&p, state0, 0, 0, B), *c = lstm ? part(&p, state0, 0, B, B) : NULL;
  /* forward, step by step in the order the layer ran */
  for (int64_t i = 0; i < steps && !p.failed; i++) {
    int64_t t = reverse ? steps - 1 - i : i, rows = sizes[t];
    step_values *s = &v[t];
    s->h_prev = first_rows(&p, h, rows);
    nn_tensor *xg = part(&p, x_gates, 0, first[t], rows);
    nn_tensor *hg = p.failed ? NULL : hold(&p, nn_linear(s->h_prev, w, bias));
    if (lstm) {
      s->c_prev = first_rows(&p, c, rows);
      nn_tensor *pre = add(&p, xg, hg);
      s->a = un(&p, NN_SIGMOID, part(&p, pre, 1, 0, H));
      s->b = un(&p, NN_SIGMOID, part(&p, pre, 1, H, H));
      s->c = un(&p, NN_TANH, part(&p, pre, 1, 2 * H, H));
      s->d = un(&p, NN_SIGMOID, part(&p, pre, 1, 3 * H, H));
      nn_tensor *c_new = add(&p, mul(&p, s->b, s->c_prev), mul(&p, s->a, s->c));
      s->tanh_c = un(&p, NN_TANH, c_new);
      s->out = mul(&p, s->d, s->tanh_c);
      c = with_first_rows(&p, c, c_new);
    } else if (gru) {
      s->a = un(&p, NN_SIGMOID, add(&p, part(&p, xg, 1, 0, H), part(&p, hg, 1, 0, H)));
      s->b = un(&p, NN_SIGMOID, add(&p, part(&p, xg, 1, H, H), part(&p, hg, 1, H, H)));
      s->d = part(&p, hg, 1, 2 * H, H);
      s->c = un(&p, NN_TANH, add(&p, part(&p, xg, 1, 2 * H, H), mul(&p, s->a, s->d)));
      /* (1 - z) n + z h */
      s->out = add(&p, mul(&p, one_minus(&p, s->b), s->c), mul(&p, s->b, s->h_prev));
    } else {
      nn_tensor *pre = add(&p, xg, hg);
      s->out = p.failed ? NULL : mode == NN_RNN_TANH ? un(&p, NN_TANH, pre) : hold(&p, nn_clamp(pre, 0, INFINITY));
    }
    h = with_first_rows(&p, h, s->out);
  }
  /* backward, from the last step run to the first */
  nn_tensor *dh = part(&p, g, 0, total, B), *dc = lstm ? part(&p, g, 0, total + B, B) : NULL;
  nn_tensor *dw = NULL, *db = NULL;
  for (int64_t i = steps - 1; i >= 0 && !p.failed; i--) {
    int64_t t = reverse ? steps - 1 - i : i, rows = sizes[t];
    step_values *s = &v[t];
    nn_tensor *dout = add(&p, first_rows(&p, dh, rows), part(&p, g, 0, first[t], rows));
    nn_tensor *dgates, *dhidden, *dh_direct = NULL; /* dhidden: through W h + b */
    if (lstm) {
      nn_tensor *dcell = add(&p, first_rows(&p, dc, rows), mul(&p, mul(&p, dout, s->d), tanh_slope(&p, s->tanh_c)));
      nn_tensor *four[4] = {mul(&p, mul(&p, dcell, s->c), sigmoid_slope(&p, s->a)),
                            mul(&p, mul(&p, dcell, s->c_prev), sigmoid_slope(&p, s->b)),
                            mul(&p, mul(&p, dcell, s->a), tanh_slope(&p, s->c)),
                            mul(&p, mul(&p, dout, s->tanh_c), sigmoid_slope(&p, s->d))};
      dgates = dhidden = join(&p, 4, four, 1);
      dc = with_first_rows(&p, dc, mul(&p, dcell, s->b));
    } else if (gru) {
      nn_tensor *dpre_n = mul(&p, mul(&p, dout, one_minus(&p, s->b)), tanh_slope(&p, s->c));
      nn_tensor *dr = mul(&p, mul(&p, dpre_n, s->d), sigmoid_slope(&p, s->a));
      nn_tensor *dz = mul(&p, mul(&p, dout, bin(&p, NN_SUB, s->h_prev, s->c)), sigmoid_slope(&p, s->b));
      nn_tensor *x_side[3] = {dr, dz, dpre_n}, *h_side[3] = {dr, dz, mul(&p, dpre_n, s->a)};
      dgates = join(&p, 3, x_side, 1);
      dhidden = join(&p, 3, h_side, 1);
      dh_direct = mul(&p, dout, s->b);
    } else if (mode == NN_RNN_TANH) {
      dgates = dhidden = mul(&p, dout, tanh_slope(&p, s->out));
    } else { /* relu: flat, its 0/1 slope untracked */
      nn_grad_guard guard = nn_no_grad_begin();
      nn_tensor *on = s->out ? hold(&p, nn_binary_scalar(NN_GT, s->out, 0, 0)) : NULL;
      nn_tensor *slope = on ? hold(&p, nn_to_dtype(on, s->out->dtype)) : NULL;
      nn_no_grad_end(guard);
      dgates = dhidden = mul(&p, dout, slope);
    }
    dx[t] = dgates;
    nn_tensor *dh_prev = dhidden && w ? hold(&p, nn_matmul(dhidden, w)) : NULL;
    if (dh_direct) dh_prev = add(&p, dh_prev, dh_direct);
    dh = with_first_rows(&p, dh, dh_prev);
    if (need[2]) {
      nn_tensor *dt = dhidden ? hold(&p, nn_transpose(dhidden, 0, 1)) : NULL;
      nn_tensor *step_dw = dt ? hold(&p, nn_matmul(dt, s->h_prev)) : NULL;
      dw = dw ? add(&p, dw, step_dw) : step_dw;
      if (bias) {
        nn_tensor *step_db = dhidden ? hold(&p, nn_sum(dhidden, 0, 0)) : NULL;
        db = db ? add(&p, db, step_db) : step_db;
      }
    }
  }
  if (!p.failed && need[0]) grads[0] = nn_cat((int)steps, dx, 0);
  if (!p.failed && need[1]) {
    nn_tensor *pair[2] = {dh, dc};
    grads[1] = lstm ? nn_cat(2, pair, 0) : nn_retain(dh);
  }
  if (!p.failed && need[2]) {
    int64_t n = G * H;
    nn_tensor *flat = dw ? hold(&p, nn_reshape(dw, 1, &n)) : NULL, *pair[2] = {flat, db};
    grads[2] = p.failed ? NULL : bias ? nn_cat(2, pair, 0) : nn_retain(flat);
  }
  for (int k = 0; k < 3; k++)
    if (need[k] && !grads[k]) p.failed = 1;
done:
  for (size_t k = 0; k < p.n; k++) nn_release(p.t[k]);
  free(p.t), free(v), free(first), free(dx);
  if (p.failed)
    for (int k = 0; k < 3; k++) nn_release(grads[k]), grads[k] = NULL;
  return p.failed ? -1 : 0;
}

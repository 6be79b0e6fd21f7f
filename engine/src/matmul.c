/* matmul.c: the fronts of the matrix products (matmul, and the fused
 * linear layer) with their backwards; batched products are one batched
 * GEMM of the backend's (cpu/gemm.c: tiny products as loops, the rest
 * OpenBLAS). */
#include "internal.h"

#include <stddef.h>
#include <stdio.h>

/* ---- threads: the backend's pool (the CPU's: OpenBLAS's) -------------- */
void nn_set_num_threads(int n) { nn_cpu_backend.set_num_threads(n); }
int nn_get_num_threads(void) { return nn_cpu_backend.get_num_threads(); }

/* ---- what the fronts hand the GEMM kernel ------------------------------ */
/* The last two dims of t (its matrix, or each matrix of a batch in dim 0),
   transposed when trans: a transposition is a matter of strides. */
static void matrix_of(nn_matrix *mx, const nn_tensor *t, int trans) {
  int r = t->ndim - 2;
  mx->data = nn_data(t);
  mx->batch_stride = r ? t->stride[0] : 0;
  mx->row_stride = t->stride[r + trans];
  mx->col_stride = t->stride[r + 1 - trans];
}

/* c = alpha op(a) op(b) + beta c (or bias + op(a) op(b)), over 2-D
   matrices or batches of them (3-D, batch in dim 0); c row-major. */
static int gemm(const nn_backend *be, double alpha, nn_tensor *a, int trans_a, nn_tensor *b,
                int trans_b, double beta, nn_tensor *c, const nn_tensor *bias) {
  int r = c->ndim - 2;
  nn_gemm_args g;
  g.dtype = c->dtype;
  g.batch = r ? c->size[0] : 1;
  g.m = c->size[r];
  g.n = c->size[r + 1];
  g.k = a->size[r + 1 - trans_a];
  g.alpha = alpha;
  g.beta = beta;
  matrix_of(&g.a, a, trans_a);
  matrix_of(&g.b, b, trans_b);
  matrix_of(&g.c, c, 0);
  g.bias = bias ? nn_data(bias) : NULL;
  return be->gemm(&g);
}

static int check_operands(const char *op, nn_tensor *a, nn_tensor *b) {
  if (!nn_dispatch(op, offsetof(nn_backend, gemm), a, b, NULL)) return -1;
  /* the GEMM kernels take the half types too, accumulating in float32 */
  if (!nn_dtype_is_floating(a->dtype) || a->dtype != b->dtype) {
    nn_error_set("%s: operands must have the same floating dtype, got %s and %s", op,
                 nn_dtype_name(a->dtype), nn_dtype_name(b->dtype));
    return -1;
  }
  return 0;
}

/* ---- batched product (B, m, k) x (B, k, n) -> (B, m, n) --------------- */
static nn_tensor *bmm(nn_tensor *a, nn_tensor *b);

/* d(ab) = g b^T for a, a^T g for b, batch by batch */
static int bmm_backward(nn_node *node, nn_tensor *g, nn_tensor **gi) {
  nn_tensor *a = node->saved[0], *b = node->saved[1];
  if (node->inputs[0]) {
    nn_tensor *bt = nn_transpose(b, -1, -2);
    gi[0] = bt ? bmm(g, bt) : NULL;
    nn_release(bt);
    if (!gi[0]) return -1;
  }
  if (node->inputs[1]) {
    nn_tensor *at = nn_transpose(a, -1, -2);
    gi[1] = at ? bmm(at, g) : NULL;
    nn_release(at);
    if (!gi[1]) return -1;
  }
  return 0;
}

static nn_tensor *bmm(nn_tensor *a, nn_tensor *b) {
  const nn_backend *be = nn_dispatch("matmul", offsetof(nn_backend, gemm), a, b, NULL);
  if (!be) return NULL;
  int64_t batch = a->size[0], size[3] = {batch, a->size[1], b->size[2]};
  nn_tensor *out = nn_empty_like_shape(a, a->dtype, 3, size);
  if (!out) return NULL;
  if (gemm(be, 1, a, 0, b, 0, 0, out, NULL) < 0) {
    nn_release(out);
    return NULL;
  }
  if (nn_needs_grad(a, b, NULL)) {
    nn_node *node = nn_node_attach(out, "BmmBackward0", bmm_backward, 2, a, b, NULL);
    if (!node) {
      nn_release(out);
      return NULL;
    }
    nn_node_save(node, 0, a);
    nn_node_save(node, 1, b);
  }
  return out;
}

nn_tensor *nn_bmm_product(nn_tensor *a, nn_tensor *b) {
  if (check_operands("bmm", a, b) < 0) return NULL;
  return bmm(a, b);
}

/* ---- mm: (m, k) x (k, n) -> (m, n) ----------------------------------- */
static nn_tensor *mm(nn_tensor *a, nn_tensor *b);

static int mm_backward(nn_node *node, nn_tensor *g, nn_tensor **gi) {
  nn_tensor *a = node->saved[0], *b = node->saved[1];
  if (node->inputs[0]) {
    nn_tensor *bt = nn_transpose(b, 0, 1);
    gi[0] = bt ? mm(g, bt) : NULL;
    nn_release(bt);
    if (!gi[0]) return -1;
  }
  if (node->inputs[1]) {
    nn_tensor *at = nn_transpose(a, 0, 1);
    gi[1] = at ? mm(at, g) : NULL;
    nn_release(at);
    if (!gi[1]) return -1;
  }
  return 0;
}

static nn_tensor *mm(nn_tensor *a, nn_tensor *b) {
  int64_t size[2] = {a->size[0], b->size[1]};
  const nn_backend *be = nn_dispatch("matmul", offsetof(nn_backend, gemm), a, b, NULL);
  nn_tensor *out = be ? nn_empty_like_shape(a, a->dtype, 2, size) : NULL;
  if (!out) return NULL;
  if (gemm(be, 1, a, 0, b, 0, 0, out, NULL) < 0) {
    nn_release(out);
    return NULL;
  }
  if (nn_needs_grad(a, b, NULL)) {
    nn_node *node = nn_node_attach(out, "MmBackward0", mm_backward, 2, a, b, NULL);
    if (!node) {
      nn_release(out);
      return NULL;
    }
    nn_node_save(node, 0, a);
    nn_node_save(node, 1, b);
  }
  return out;
}

static nn_tensor *batched(nn_tensor *a, nn_tensor *b) {
  /* Broadcast the batch dims, flatten them to one, multiply, unflatten. */
  int nb = (a->ndim > b->ndim ? a->ndim : b->ndim) - 2;
  int64_t batch[NN_MAX_DIMS], count = 1;
  for (int i = 0; i < nb; i++) {
    int ia = a->ndim - 2 - nb + i, ib = b->ndim - 2 - nb + i;
    int64_t sa = ia >= 0 ? a->size[ia] : 1, sb = ib >= 0 ? b->size[ib] : 1;
    if (sa != sb && sa != 1 && sb != 1) {
      nn_error_set("matmul: batch dimensions %lld and %lld cannot be broadcast", (long long)sa,
                   (long long)sb);
      return NULL;
    }
    batch[i] = sa == 1 ? sb : sa;
    count *= batch[i];
  }
  int64_t m = a->size[a->ndim - 2], k = a->size[a->ndim - 1], n = b->size[b->ndim - 1];
  int64_t ea[NN_MAX_DIMS], eb[NN_MAX_DIMS], ra[3] = {count, m, k}, rb[3] = {count, k, n};
  for (int i = 0; i < nb; i++) ea[i] = eb[i] = batch[i];
  ea[nb] = m, ea[nb + 1] = k, eb[nb] = k, eb[nb + 1] = n;
  nn_tensor *xa = nn_expand(a, nb + 2, ea), *xb = xa ? nn_expand(b, nb + 2, eb) : NULL;
  nn_tensor *a3 = xb ? nn_reshape(xa, 3, ra) : NULL, *b3 = a3 ? nn_reshape(xb, 3, rb) : NULL;
  nn_tensor *o3 = b3 ? bmm(a3, b3) : NULL, *out = NULL;
  if (o3) {
    batch[nb] = m, batch[nb + 1] = n;
    out = nn_view(o3, nb + 2, batch);
  }
  nn_release(xa), nn_release(xb), nn_release(a3), nn_release(b3), nn_release(o3);
  return out;
}

/* x's rows (all its dims but the last, stacked) times a (k, n) matrix by
   product(rows, w, bias), the result reshaped back to x's leading dims:
   the form of linear and of a batch of matrices times one matrix. */
static nn_tensor *by_rows(nn_tensor *x, nn_tensor *w, nn_tensor *bias, int64_t n,
                          nn_tensor *(*product)(nn_tensor *, nn_tensor *, nn_tensor *)) {
  int64_t rows[2] = {-1, x->size[x->ndim - 1]}, size[NN_MAX_DIMS];
  nn_tensor *x2 = nn_reshape(x, 2, rows), *o2 = x2 ? product(x2, w, bias) : NULL, *out = NULL;
  if (o2) {
    for (int i = 0; i < x->ndim - 1; i++) size[i] = x->size[i];
    size[x->ndim - 1] = n;
    out = nn_reshape(o2, x->ndim, size);
  }
  nn_release(x2), nn_release(o2);
  return out;
}

static nn_tensor *mm_of_rows(nn_tensor *a, nn_tensor *b, nn_tensor *unused) {
  (void)unused;
  return mm(a, b);
}

/* A batch of matrices times one matrix is one product, as PyTorch folds
   it: the batch's rows stacked (B m, k) times (k, n), so that b's gradient
   is one product too (one rounding in a half type), not a sum of B. */
static nn_tensor *folded(nn_tensor *a, nn_tensor *b) { return by_rows(a, b, NULL, b->size[1], mm_of_rows); }

nn_tensor *nn_matmul(nn_tensor *a, nn_tensor *b) {
  if (check_operands("matmul", a, b) < 0) return NULL;
  if (a->ndim == 0 || b->ndim == 0) {
    nn_error_set("matmul: both operands need at least one dimension (use mul for scalars)");
    return NULL;
  }
  int64_t ka = a->size[a->ndim - 1], kb = b->size[b->ndim == 1 ? 0 : b->ndim - 2];
  if (ka != kb) {
    char x[96], y[96];
    nn_error_set("matmul: shapes %s and %s do not match (%lld columns against %lld rows)",
                 nn_shape_string(a, x, sizeof x), nn_shape_string(b, y, sizeof y), (long long)ka,
                 (long long)kb);
    return NULL;
  }
  /* A vector becomes a one-row (left) or one-column (right) matrix, and
     the added dim is dropped from the result. */
  nn_tensor *a2 = a->ndim == 1 ? nn_unsqueeze(a, 0) : nn_retain(a);
  nn_tensor *b2 = b->ndim == 1 ? nn_unsqueeze(b, 1) : nn_retain(b);
  nn_tensor *out = NULL;
  if (a2 && b2) out = (a2->ndim == 2 && b2->ndim == 2) ? mm(a2, b2)
                     : b2->ndim == 2                     ? folded(a2, b2)
                                                         : batched(a2, b2);
  nn_release(a2), nn_release(b2);
  if (out && b->ndim == 1) {
    nn_tensor *s = nn_squeeze(out, out->ndim - 1);
    nn_release(out);
    out = s;
  }
  if (out && a->ndim == 1) {
    nn_tensor *s = nn_squeeze(out, out->ndim - (b->ndim == 1 ? 1 : 2));
    nn_release(out);
    out = s;
  }
  return out;
}

/* ---- addmm without autograd: one GEMM, as PyTorch's --------------------- */
/* beta input + alpha a b, 2-D a and b of input's floating dtype on the CPU,
   with nothing needing a gradient: the result starts as input broadcast
   and the product is added onto it by the GEMM's own beta (what PyTorch's
   addmm hands sgemm), where the general form makes the product, then a
   second full-size result, and reads both again to add them. 0 where it
   does not apply (the caller takes the general form); else 1, *out the
   result or NULL on an error. */
int nn_addmm_one_gemm(nn_tensor *input, nn_tensor *a, nn_tensor *b, double beta, double alpha,
                      nn_tensor **out) {
  int64_t size[2] = {a->size[0], b->size[1]};
  *out = NULL;
  if ((a->dtype != NN_FLOAT32 && a->dtype != NN_FLOAT64) || b->dtype != a->dtype ||
      input->dtype != a->dtype || a->device != NN_CPU || b->device != NN_CPU ||
      input->device != NN_CPU || input->ndim > 2 || nn_needs_grad(input, a, b))
    return 0;
  for (int i = 0; i < input->ndim; i++) { /* broadcasts to the product's shape, leaving it */
    int64_t have = input->size[i], want = size[2 - input->ndim + i];
    if (have != want && have != 1) return 0;
  }
  const nn_backend *be = nn_dispatch("addmm", offsetof(nn_backend, gemm), a, b, input);
  nn_tensor *result = be ? nn_empty_like_shape(a, a->dtype, 2, size) : NULL;
  if (!result) return 1;
  /* beta 0 ignores input, NaN included: the GEMM overwrites */
  if ((beta != 0 && nn_copy_(result, input) < 0) || gemm(be, alpha, a, 0, b, 0, beta, result, NULL) < 0)
    nn_release(result);
  else
    *out = result;
  return 1;
}

/* ---- linear: y = x w^T + b, x (N, in), w (out, in), b (out) ------------ */
/* nn_linear_backward; where bit 1 of *into_zeros is set, into[1] (w's
   gradient) reads as zeros not yet written: the product is written over
   it, and the bit cleared (autograd.c: a deferred zero_grad). */
static int linear_backward_into(nn_tensor *g, nn_tensor *x, nn_tensor *w, const int *need,
                                nn_tensor *const *into, unsigned *into_zeros, nn_tensor **grads) {
  grads[0] = grads[1] = grads[2] = NULL;
  if (nn_backward_records(g, x, w)) return nn_linear_backward_graph(g, x, w, need, grads);
  const nn_backend *be = nn_dispatch("linear backward", offsetof(nn_backend, gemm), g, x, w);
  if (!be) return -1;
  if (need[0]) { /* dx = g w : (N, out)(out, in) */
    int64_t size[2] = {g->size[0], w->size[1]};
    if (!(grads[0] = nn_empty_like_shape(g, g->dtype, 2, size)) ||
        gemm(be, 1, g, 0, w, 0, 0, grads[0], NULL) < 0)
      goto fail;
  }
  if (need[1]) { /* dw = g^T x : (out, N)(N, in), into w.grad when it exists */
    if (into[1] && into_zeros && (*into_zeros >> 1 & 1)) {
      if (gemm(be, 1, g, 1, x, 0, NN_GEMM_OVER_ZEROS, into[1], NULL) < 0) goto fail;
      *into_zeros &= ~(1u << 1);
      nn_bump_version(into[1]);
    } else if (into[1]) {
      if (gemm(be, 1, g, 1, x, 0, 1, into[1], NULL) < 0) goto fail;
      nn_bump_version(into[1]);
    } else if (!(grads[1] = nn_empty_like(w)) || gemm(be, 1, g, 1, x, 0, 0, grads[1], NULL) < 0) {
      goto fail;
    }
  }
  if (need[2]) { /* db = sum of g's rows, added in order into b.grad when it exists */
    if (g->dtype == NN_FLOAT32 && nn_is_contiguous(g)) {
      int64_t cols = g->size[1];
      if (!into[2] && !(grads[2] = nn_full_like_shape(g, NN_FLOAT32, 1, &cols, 0))) goto fail;
      nn_tensor *db = into[2] ? into[2] : grads[2];
      const nn_backend *rows = nn_dispatch("linear backward", offsetof(nn_backend, add_rows), g, db, NULL);
      if (!rows || rows->add_rows(NN_FLOAT32, g->size[0], cols, nn_data(g), nn_data(db)) < 0) goto fail;
      nn_bump_version(db);
    } else if (!(grads[2] = nn_sum(g, 0, 0))) {
      goto fail;
    }
  }
  return 0;
fail:
  for (int k = 0; k < 3; k++) nn_release(grads[k]), grads[k] = NULL;
  return -1;
}

int nn_linear_backward(nn_tensor *g, nn_tensor *x, nn_tensor *w, const int *need,
                       nn_tensor *const *into, nn_tensor **grads) {
  return linear_backward_into(g, x, w, need, into, NULL, grads);
}

static int linear_backward(nn_node *node, nn_tensor *g, nn_tensor **gi) {
  int need[3] = {node->inputs[0] != NULL, node->inputs[1] != NULL, node->inputs[2] != NULL};
  return linear_backward_into(g, node->saved[0], node->saved[1], need, node->accumulate_into,
                              &node->into_zeros, gi);
}

static nn_tensor *linear_2d(nn_tensor *x, nn_tensor *w, nn_tensor *b) {
  const nn_backend *be = nn_dispatch("linear", offsetof(nn_backend, gemm), x, w, b);
  if (!be) return NULL;
  int64_t n = x->size[0], out_features = w->size[0], size[2] = {n, out_features};
  nn_tensor *out = nn_empty_like_shape(x, x->dtype, 2, size);
  nn_tensor *bc = out && b ? nn_contiguous(b) : NULL;
  if (!out || (b && !bc)) goto fail;
  int st = gemm(be, 1, x, 0, w, 1, 0, out, bc);
  nn_release(bc);
  if (st < 0) goto fail;
  if (nn_needs_grad(x, w, b)) {
    nn_node *node = nn_node_attach(out, b ? "AddmmBackward0" : "MmBackward0", linear_backward, 3, x,
                                   w, b);
    if (!node) goto fail;
    node->overwrites_into = 1u << 1; /* w's gradient (linear_backward_into) */
    nn_node_save(node, 0, x);
    nn_node_save(node, 1, w);
  }
  return out;
fail:
  nn_release(out);
  return NULL;
}

nn_tensor *nn_linear(nn_tensor *x, nn_tensor *w, nn_tensor *b) {
  if (b && b->dtype != x->dtype && x->dtype == w->dtype) {
    nn_error_set("linear: the bias is %s, the input %s", nn_dtype_name(b->dtype), nn_dtype_name(x->dtype));
    return NULL;
  }
  if (check_operands("linear", x, w) < 0) return NULL;
  if (b && !nn_dispatch("linear", offsetof(nn_backend, gemm), x, b, NULL)) return NULL;
  if (w->ndim != 2) {
    nn_error_set("linear: the weight must be 2-dimensional (out x in), got %d dimensions", w->ndim);
    return NULL;
  }
  if (x->ndim == 0 || x->size[x->ndim - 1] != w->size[1]) {
    nn_error_set("linear: input has %lld features, layer expects %lld",
                 (long long)(x->ndim ? x->size[x->ndim - 1] : 0), (long long)w->size[1]);
    return NULL;
  }
  if (b && (b->ndim != 1 || b->size[0] != w->size[0])) {
    char s[96];
    nn_error_set("linear: the bias has shape %s, the layer has %lld outputs",
                 nn_shape_string(b, s, sizeof s), (long long)w->size[0]);
    return NULL;
  }
  if (x->ndim == 2) return linear_2d(x, w, b);
  return by_rows(x, w, b, w->size[0], linear_2d); /* any leading dims are a batch */
}

/* linalg.c: issue 12's linear algebra: PyTorch's shape-checked products
 * (mm, bmm, mv, dot, outer, addmm, baddbmm) over matmul, tril and triu,
 * diag and trace over the diagonal view, and einsum. Each is made of other
 * fronts, so autograd follows it (tril's select has its own node). */
#include "internal.h"

#include <stddef.h>

static int check_dims(const char *op, const char *what, const nn_tensor *t, int ndim) {
  if (t->ndim == ndim) return 0;
  nn_error_set("%s: %s must be %d-dimensional, got %d dimensions", op, what, ndim, t->ndim);
  return -1;
}

static int check_inner(const char *op, const nn_tensor *a, int64_t ka, const nn_tensor *b, int64_t kb) {
  if (ka == kb) return 0;
  char x[96], y[96];
  nn_error_set("%s: shapes %s and %s cannot be multiplied (%lld against %lld)", op,
               nn_shape_string(a, x, sizeof x), nn_shape_string(b, y, sizeof y), (long long)ka,
               (long long)kb);
  return -1;
}

nn_tensor *nn_mm(nn_tensor *a, nn_tensor *b) {
  if (check_dims("mm", "self", a, 2) < 0 || check_dims("mm", "mat2", b, 2) < 0 ||
      check_inner("mm", a, a->size[1], b, b->size[0]) < 0)
    return NULL;
  return nn_matmul(a, b);
}

nn_tensor *nn_bmm(nn_tensor *a, nn_tensor *b) {
  if (check_dims("bmm", "self", a, 3) < 0 || check_dims("bmm", "mat2", b, 3) < 0) return NULL;
  if (a->size[0] != b->size[0]) {
    nn_error_set("bmm: batch sizes %lld and %lld differ", (long long)a->size[0], (long long)b->size[0]);
    return NULL;
  }
  if (check_inner("bmm", a, a->size[2], b, b->size[1]) < 0) return NULL;
  return nn_bmm_product(a, b);
}

/* Whether a and b (float32 or float64, of one dtype and device, nothing
   to differentiate) may take a product's shortcut below; otherwise the
   general fronts compute it, with their checks, errors and autograd. */
static int plain_floats(const nn_tensor *a, const nn_tensor *b) {
  return a->device == b->device && a->dtype == b->dtype &&
         (a->dtype == NN_FLOAT32 || a->dtype == NN_FLOAT64) &&
         !nn_needs_grad((nn_tensor *)a, (nn_tensor *)b, NULL);
}

/* The rows of a (a 1-D a: its one row) times the vector v, through the
   backend's dot (each line's sum in one pass; the products a
   matmul makes of a single column or element go through kernels built
   for wide matrices). NULL with *used 0 where it does not apply. The
   geometry's operands are copies on the stack (out with its reduced dim
   kept, v along every row with stride 0): no views are made for a call. */
static nn_tensor *dot_rows(nn_tensor *a, nn_tensor *v, int *used) {
  const nn_backend *be = nn_kernels_of(a->device);
  *used = be && be->dot && plain_floats(a, v);
  if (!*used) return NULL;
  int nd = a->ndim;
  nn_tensor *out = nn_empty_like_shape(a, a->dtype, nd - 1, a->size);
  if (!out) return NULL;
  nn_tensor kept = *out, wide = *v;
  kept.ndim = nd;
  kept.size[nd - 1] = 1;
  kept.stride[nd - 1] = 0;
  if (nd == 2) {
    wide.ndim = 2;
    wide.size[0] = a->size[0], wide.stride[0] = 0;
    wide.size[1] = v->size[0], wide.stride[1] = v->stride[0];
    wide.contiguous = a->size[0] == 1 && v->contiguous;
  }
  nn_reduce_geom r;
  nn_tensor *ts[3] = {&kept, a, &wide};
  nn_reduce_init(&r, 3, ts, 6u, nd, a->size, 1u << (nd - 1));
  if (be->dot(&r) < 0) {
    nn_release(out);
    return NULL;
  }
  return out;
}

nn_tensor *nn_mv(nn_tensor *a, nn_tensor *v) {
  if (check_dims("mv", "self", a, 2) < 0 || check_dims("mv", "vec", v, 1) < 0 ||
      check_inner("mv", a, a->size[1], v, v->size[0]) < 0)
    return NULL;
  int used;
  nn_tensor *out = dot_rows(a, v, &used);
  return used ? out : nn_matmul(a, v);
}

nn_tensor *nn_dot(nn_tensor *a, nn_tensor *b) {
  if (check_dims("dot", "self", a, 1) < 0 || check_dims("dot", "other", b, 1) < 0 ||
      check_inner("dot", a, a->size[0], b, b->size[0]) < 0)
    return NULL;
  int used;
  nn_tensor *out = dot_rows(a, b, &used);
  return used ? out : nn_matmul(a, b);
}

/* a column times b as a row: a broadcast product (whose node autograd
   follows, MulBackward0 as in PyTorch). Without one, the row is the first
   operand (b a, the same products: IEEE multiplication commutes), so that
   each row of the result is a contiguous run of b times the number a[i],
   which the vector loops take; with the column first the broadcast loop
   went element by element (and a matmul of k = 1, before, through kernels
   built for wide products: 1.12 instructions an element at 1000 x 1000). */
nn_tensor *nn_outer(nn_tensor *a, nn_tensor *b) {
  if (check_dims("outer", "self", a, 1) < 0 || check_dims("outer", "vec2", b, 1) < 0) return NULL;
  nn_tensor *col = nn_unsqueeze(a, 1), *row = col ? nn_unsqueeze(b, 0) : NULL;
  nn_tensor *out = NULL;
  if (row && plain_floats(a, b)) out = nn_binary(NN_MUL, row, col);
  else if (row) out = nn_binary(NN_MUL, col, row);
  nn_release(col), nn_release(row);
  return out;
}

/* beta input + alpha product, PyTorch's: beta 0 ignores input (NaN too). */
static nn_tensor *add_product(const char *op, nn_tensor *input, nn_tensor *product, double beta,
                              double alpha) {
  if (!product) return NULL;
  int ndim;
  int64_t size[NN_MAX_DIMS];
  if (nn_broadcast_shape(op, input, product, &ndim, size) < 0 || ndim != product->ndim ||
      nn_shape_numel(ndim, size) != nn_numel(product)) {
    char x[96], y[96];
    nn_error_set("%s: input of shape %s does not broadcast to the product's %s", op,
                 nn_shape_string(input, x, sizeof x), nn_shape_string(product, y, sizeof y));
    nn_release(product);
    return NULL;
  }
  nn_tensor *scaled = alpha == 1 ? nn_retain(product)
                                 : nn_binary_number(NN_MUL, product, alpha, 0, NN_NUMBER_FLOAT);
  nn_release(product);
  if (!scaled || beta == 0) return scaled;
  nn_tensor *in = beta == 1 ? nn_retain(input) : nn_binary_number(NN_MUL, input, beta, 0, NN_NUMBER_FLOAT);
  nn_tensor *out = in ? nn_binary(NN_ADD, in, scaled) : NULL;
  nn_release(in), nn_release(scaled);
  return out;
}

nn_tensor *nn_addmm(nn_tensor *input, nn_tensor *a, nn_tensor *b, double beta, double alpha) {
  if (check_dims("addmm", "mat1", a, 2) < 0 || check_dims("addmm", "mat2", b, 2) < 0 ||
      check_inner("addmm", a, a->size[1], b, b->size[0]) < 0)
    return NULL;
  nn_tensor *out;
  if (nn_addmm_one_gemm(input, a, b, beta, alpha, &out)) return out;
  return add_product("addmm", input, nn_matmul(a, b), beta, alpha);
}

nn_tensor *nn_baddbmm(nn_tensor *input, nn_tensor *a, nn_tensor *b, double beta, double alpha) {
  if (check_dims("baddbmm", "batch1", a, 3) < 0 || check_dims("baddbmm", "batch2", b, 3) < 0)
    return NULL;
  if (a->size[0] != b->size[0]) {
    nn_error_set("baddbmm: batch sizes %lld and %lld differ", (long long)a->size[0],
                 (long long)b->size[0]);
    return NULL;
  }
  if (check_inner("baddbmm", a, a->size[2], b, b->size[1]) < 0) return NULL;
  return add_product("baddbmm", input, nn_matmul(a, b), beta, alpha);
}

/* ---- tril, triu ------------------------------------------------------------- */
/* (rows, cols) of j - i, each element's distance above the main diagonal. */
static nn_tensor *diagonal_distance(const nn_tensor *like, int64_t rows, int64_t cols) {
  nn_tensor *j = nn_arange(0, (double)cols, 1, NN_INT64), *i = j ? nn_arange(0, (double)rows, 1, NN_INT64) : NULL;
  nn_tensor *ic = i ? nn_unsqueeze(i, 1) : NULL, *d = ic ? nn_binary(NN_SUB, j, ic) : NULL;
  nn_release(j), nn_release(i), nn_release(ic);
  if (d && d->device != like->device) {
    nn_tensor *moved = nn_to_device(d, like->device);
    nn_release(d);
    d = moved;
  }
  return d;
}

/* The elements whose distance lies in [lo, hi] kept, the rest 0: the
   select of clamp's gradient (a product with a mask would turn inf into NaN). */
static nn_tensor *keep_band(nn_tensor *t, double lo, double hi) {
  nn_tensor *d = diagonal_distance(t, t->size[t->ndim - 2], t->size[t->ndim - 1]);
  nn_tensor *out = d ? nn_pointwise_grad(NN_GRAD_CLAMP, t, d, NULL, lo, hi) : NULL;
  nn_release(d);
  return out;
}

static int tril_backward(nn_node *node, nn_tensor *g, nn_tensor **gi) {
  gi[0] = keep_band(g, node->scalar[0], node->scalar[1]);
  return gi[0] ? 0 : -1;
}

nn_tensor *nn_tril(nn_tensor *t, int64_t k, int upper) {
  const char *op = upper ? "triu" : "tril";
  if (t->ndim < 2) {
    nn_error_set("%s: the tensor needs at least 2 dimensions, it has %d", op, t->ndim);
    return NULL;
  }
  double lo = upper ? (double)k : -INFINITY, hi = upper ? INFINITY : (double)k;
  nn_grad_guard guard = nn_no_grad_begin();
  const nn_backend *be = nn_kernels_of(t->device);
  nn_tensor *out;
  if (be && be->band) { /* rows copied and zeroed, not a select of every element */
    nn_tensor *in = nn_contiguous(t);
    out = in ? nn_empty_like_shape(in, in->dtype, in->ndim, in->size) : NULL;
    int64_t rows = t->size[t->ndim - 2], cols = t->size[t->ndim - 1], n = nn_numel(t);
    if (out && n > 0 && be->band(t->dtype, n / (rows * cols), rows, cols, k, upper, nn_data(in), nn_data(out)) < 0) {
      nn_release(out);
      out = NULL;
    }
    nn_release(in);
  } else {
    out = keep_band(t, lo, hi);
  }
  nn_no_grad_end(guard);
  if (out && nn_needs_grad(t, NULL, NULL)) {
    nn_node *node = nn_node_attach(out, upper ? "TriuBackward0" : "TrilBackward0", tril_backward, 1,
                                   t, NULL, NULL);
    if (!node) {
      nn_release(out);
      return NULL;
    }
    node->scalar[0] = lo;
    node->scalar[1] = hi;
  }
  return out;
}

/* ---- diag, trace ---------------------------------------------------------------- */
nn_tensor *nn_diag(nn_tensor *t, int64_t k) {
  if (t->ndim == 2) return nn_diagonal(t, k, 0, 1);
  if (t->ndim != 1) {
    nn_error_set("diag: the tensor must be 1- or 2-dimensional, got %d dimensions", t->ndim);
    return NULL;
  }
  int64_t n = t->size[0] + (k < 0 ? -k : k), size[2] = {n, n};
  nn_tensor *m = nn_full_like_shape(t, t->dtype, 2, size, 0);
  nn_tensor *d = m ? nn_diagonal(m, k, 0, 1) : NULL;
  int st = d ? nn_inplace_copy("diag", d, t) : -1; /* recorded: the gradient reaches t */
  nn_release(d);
  if (st < 0) {
    nn_release(m);
    return NULL;
  }
  return m;
}

nn_tensor *nn_trace(nn_tensor *t) {
  if (t->ndim != 2) {
    nn_error_set("trace: the tensor must be 2-dimensional, got %d dimensions", t->ndim);
    return NULL;
  }
  nn_tensor *d = nn_diagonal(t, 0, 0, 1), *s = d ? nn_sum(d, NN_ALL_DIMS, 0) : NULL;
  nn_release(d);
  return s;
}

/* ---- einsum --------------------------------------------------------------------- */
/* Each operand is brought to every letter of the equation in one order
   (its missing letters size-1 dims), the operands multiplied with
   broadcasting, the letters absent from the output summed away and the
   rest put in the output's order. A letter twice in one term takes that
   operand's diagonal. Memory is that of the full product. */
typedef struct {
  char letters[NN_MAX_DIMS + 1];
  int n;
} einsum_term;

static int parse_term(const char *op, const char *s, size_t len, einsum_term *term) {
  term->n = 0;
  for (size_t i = 0; i < len; i++) {
    char c = s[i];
    if (c == ' ') continue;
    if (c == '.') {
      nn_error_set("%s: '...' (broadcast dims) is not supported", op);
      return -1;
    }
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))) {
      nn_error_set("%s: '%c' in the equation is not a letter", op, c);
      return -1;
    }
    if (term->n == NN_MAX_DIMS) {
      nn_error_set("%s: a term has more than %d letters", op, NN_MAX_DIMS);
      return -1;
    }
    term->letters[term->n++] = c;
  }
  term->letters[term->n] = 0;
  return 0;
}

/* t with its repeated letters folded into diagonals; term updated. */
static nn_tensor *fold_repeats(nn_tensor *t, einsum_term *term) {
  nn_tensor *cur = nn_retain(t);
  for (int p = 0; cur && p < term->n; p++) {
    for (int q = p + 1; q < term->n; q++) {
      if (term->letters[q] != term->letters[p]) continue;
      if (cur->size[p] != cur->size[q]) {
        nn_error_set("einsum: letter '%c' has sizes %lld and %lld in one operand", term->letters[p],
                     (long long)cur->size[p], (long long)cur->size[q]);
        nn_release(cur);
        return NULL;
      }
      nn_tensor *d = nn_diagonal(cur, 0, p, q);
      nn_release(cur);
      cur = d;
      char c = term->letters[p];
      int m = 0;
      for (int i = 0; i < term->n; i++)
        if (i != p && i != q) term->letters[m++] = term->letters[i];
      term->letters[m++] = c;
      term->letters[m] = 0;
      term->n = m;
      p = -1; /* start over: positions moved */
      break;
    }
  }
  return cur;
}

/* t (letters of term) permuted and unsqueezed to the order of all. */
static nn_tensor *align(nn_tensor *t, const einsum_term *term, const char *all, int n_all) {
  int perm[NN_MAX_DIMS], m = 0;
  for (int a = 0; a < n_all; a++)
    for (int i = 0; i < term->n; i++)
      if (term->letters[i] == all[a]) perm[m++] = i;
  nn_tensor *cur = nn_permute(t, perm);
  int have = 0;
  for (int a = 0; cur && a < n_all; a++) {
    if (strchr(term->letters, all[a])) {
      have++;
      continue;
    }
    nn_tensor *u = nn_unsqueeze(cur, have++);
    nn_release(cur);
    cur = u;
  }
  return cur;
}

nn_tensor *nn_einsum(const char *equation, nn_tensor *const *operands, int n) {
  const char *op = "einsum";
  const char *arrow = strstr(equation, "->");
  size_t lhs_len = arrow ? (size_t)(arrow - equation) : strlen(equation);
  einsum_term terms[16], out;
  int count = 0;
  for (size_t start = 0;;) {
    size_t end = start;
    while (end < lhs_len && equation[end] != ',') end++;
    if (count == 16) {
      nn_error_set("%s: at most 16 operands", op);
      return NULL;
    }
    if (parse_term(op, equation + start, end - start, &terms[count++]) < 0) return NULL;
    if (end >= lhs_len) break;
    start = end + 1;
  }
  if (count != n) {
    nn_error_set("%s: the equation has %d operand%s, %d given", op, count, count == 1 ? "" : "s", n);
    return NULL;
  }
  char all[64] = {0};
  int n_all = 0;
  for (int k = 0; k < n; k++) {
    if (terms[k].n != operands[k]->ndim) {
      nn_error_set("%s: operand %d has %d dimensions, its term '%s' %d letters", op, k + 1,
                   operands[k]->ndim, terms[k].letters, terms[k].n);
      return NULL;
    }
    for (int i = 0; i < terms[k].n; i++) { /* a letter's sizes agree, or one is 1 (broadcast) */
      for (int j = 0; j < k; j++)
        for (int q = 0; q < terms[j].n; q++) {
          int64_t x = operands[k]->size[i], y = operands[j]->size[q];
          if (terms[j].letters[q] == terms[k].letters[i] && x != y && x != 1 && y != 1) {
            nn_error_set("%s: letter '%c' has size %lld in operand %d and %lld in operand %d", op,
                         terms[k].letters[i], (long long)y, j + 1, (long long)x, k + 1);
            return NULL;
          }
        }
    }
    for (int i = 0; i < terms[k].n; i++)
      if (!strchr(all, terms[k].letters[i])) {
        if (n_all == NN_MAX_DIMS) {
          nn_error_set("%s: more than %d different letters", op, NN_MAX_DIMS);
          return NULL;
        }
        all[n_all++] = terms[k].letters[i];
      }
  }
  if (arrow) {
    if (parse_term(op, arrow + 2, strlen(arrow + 2), &out) < 0) return NULL;
    for (int i = 0; i < out.n; i++) {
      if (!strchr(all, out.letters[i]) || strchr(out.letters + i + 1, out.letters[i])) {
        nn_error_set("%s: output letter '%c' is %s", op, out.letters[i],
                     strchr(all, out.letters[i]) ? "repeated" : "in no operand");
        return NULL;
      }
    }
  } else { /* PyTorch's implicit output: the letters seen once, alphabetically */
    out.n = 0;
    for (char c = 'A'; c <= 'z'; c++) {
      int seen = 0;
      for (int k = 0; k < n; k++)
        for (int i = 0; i < terms[k].n; i++) seen += terms[k].letters[i] == c;
      if (seen == 1) out.letters[out.n++] = c;
    }
    out.letters[out.n] = 0;
  }
  nn_tensor *product = NULL;
  for (int k = 0; k < n; k++) {
    einsum_term term = terms[k];
    nn_tensor *f = fold_repeats(operands[k], &term), *a = f ? align(f, &term, all, n_all) : NULL;
    nn_release(f);
    nn_tensor *next = a && product ? nn_binary(NN_MUL, product, a) : (a ? nn_retain(a) : NULL);
    nn_release(a), nn_release(product);
    if (!(product = next)) return NULL;
  }
  unsigned summed = 0;
  for (int a = 0; a < n_all; a++)
    if (!strchr(out.letters, all[a])) summed |= 1u << a;
  nn_tensor *reduced = summed ? nn_sum_dims(product, summed, 0, 0) : nn_retain(product);
  nn_release(product);
  if (!reduced) return NULL;
  einsum_term kept = {{0}, 0};
  for (int a = 0; a < n_all; a++)
    if (!(summed >> a & 1)) kept.letters[kept.n++] = all[a];
  int perm[NN_MAX_DIMS];
  for (int i = 0; i < out.n; i++) perm[i] = (int)(strchr(kept.letters, out.letters[i]) - kept.letters);
  nn_tensor *result = nn_permute(reduced, perm);
  nn_release(reduced);
  return result;
}

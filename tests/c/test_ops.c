/* test_ops.c: the engine's math through the public API (nn.h), each result
 * against a plain C computation of the same thing: matmul and linear
 * against naive loops, reductions against loops over copied-out values,
 * elementwise ops against <math.h>, and the C-level autograd contract.
 *
 * Operands come in every layout the kernels must handle: contiguous,
 * transposed, narrowed (leading dimension wider than the width), offset
 * selections, stride-0 expansions and non-unit inner strides. Every tensor
 * made here is released; main checks that the storage in use comes back to
 * where it started. */
#include "check.h"

#include <float.h>
#include <stdint.h>

/* t's elements in logical order, as doubles (caller frees). */
static double *values_of(const nn_tensor *t) {
  int64_t n = nn_numel(t);
  double *v = malloc((size_t)(n > 0 ? n : 1) * sizeof *v);
  if (!v) abort();
  for (int64_t i = 0; i < n; i++) v[i] = nn_get_flat(t, i);
  return v;
}

/* ---- operands in many layouts ------------------------------------------ */
enum {
  L_CONTIGUOUS,
  L_TRANSPOSED,      /* transpose of a (cols, rows) tensor: strides (1, rows) */
  L_NARROW_COLS,     /* columns 3.. of a (rows, cols+7) tensor: ld > width */
  L_NARROW_T,        /* transpose of a narrowed (cols, rows+5): strides (1, rows+5) */
  L_SELECT,          /* slice 1 of a (2, rows, cols) tensor: an offset */
  L_NARROW_ROWS,     /* rows 2.. of a (rows+4, cols) tensor */
  L_STEP2,           /* every other column of a (rows, 2*cols): inner stride 2 */
  L_EXPAND,          /* a (rows, 1) column expanded: inner stride 0 */
  L_COUNT
};
static const char *const layout_names[L_COUNT] = {"contiguous", "transposed", "narrow-cols",
                                                  "narrow-transposed", "select", "narrow-rows",
                                                  "step-2", "expand"};

/* A (rows, cols) matrix of random values in the given layout. */
static nn_tensor *matrix(nn_dtype dt, int64_t rows, int64_t cols, int layout) {
  nn_tensor *base = NULL, *out = NULL, *tmp = NULL;
  switch (layout) {
  case L_CONTIGUOUS: return random_tensor(dt, 2, SZ(rows, cols));
  case L_TRANSPOSED:
    base = random_tensor(dt, 2, SZ(cols, rows));
    out = base ? nn_transpose(base, 0, 1) : NULL;
    break;
  case L_NARROW_COLS:
    base = random_tensor(dt, 2, SZ(rows, cols + 7));
    out = base ? nn_narrow(base, 1, 3, cols) : NULL;
    break;
  case L_NARROW_T:
    base = random_tensor(dt, 2, SZ(cols, rows + 5));
    tmp = base ? nn_narrow(base, 1, 2, rows) : NULL;
    out = tmp ? nn_transpose(tmp, 0, 1) : NULL;
    break;
  case L_SELECT:
    base = random_tensor(dt, 3, SZ(2, rows, cols));
    out = base ? nn_select(base, 0, 1) : NULL;
    break;
  case L_NARROW_ROWS:
    base = random_tensor(dt, 2, SZ(rows + 4, cols));
    out = base ? nn_narrow(base, 0, 2, rows) : NULL;
    break;
  case L_STEP2:
    base = random_tensor(dt, 3, SZ(rows, cols, 2));
    out = base ? nn_select(base, 2, 1) : NULL;
    break;
  default:
    base = random_tensor(dt, 2, SZ(rows, 1));
    out = base ? nn_expand(base, 2, SZ(rows, cols)) : NULL;
    break;
  }
  nn_release(tmp);
  nn_release(base);
  return out;
}

/* ---- matmul against a naive loop ---------------------------------------- */
/* The product with matmul's rules (1-D operands promoted and the added dim
   dropped, batch dims broadcast), computed from the operands' values with
   a triple loop in double. Fills the expected shape, values and, per
   element, the sum of |a||b| the rounding error is measured against. */
static int ref_matmul(const nn_tensor *a, const nn_tensor *b, int *ndim, int64_t *size,
                      double **out, double **mag) {
  int a1 = a->ndim == 1, b1 = b->ndim == 1;
  int64_t m = a1 ? 1 : a->size[a->ndim - 2], k = a->size[a->ndim - 1];
  int64_t n = b1 ? 1 : b->size[b->ndim - 1];
  int64_t kb = b1 ? b->size[0] : b->size[b->ndim - 2];
  if (k != kb) return -1;
  int abn = a1 ? 0 : a->ndim - 2, bbn = b1 ? 0 : b->ndim - 2;
  int nb = abn > bbn ? abn : bbn;
  int64_t batch[NN_MAX_DIMS], count = 1;
  for (int i = 0; i < nb; i++) {
    int ia = i - (nb - abn), ib = i - (nb - bbn);
    int64_t sa = ia >= 0 ? a->size[ia] : 1, sb = ib >= 0 ? b->size[ib] : 1;
    if (sa != sb && sa != 1 && sb != 1) return -1;
    batch[i] = sa == 1 ? sb : sa;
    count *= batch[i];
  }
  *ndim = 0;
  for (int i = 0; i < nb; i++) size[(*ndim)++] = batch[i];
  if (!a1) size[(*ndim)++] = m;
  if (!b1) size[(*ndim)++] = n;
  double *av = values_of(a), *bv = values_of(b);
  int64_t total = count * m * n;
  *out = calloc((size_t)(total > 0 ? total : 1), sizeof **out);
  *mag = calloc((size_t)(total > 0 ? total : 1), sizeof **mag);
  if (!*out || !*mag) abort();
  for (int64_t bi = 0; bi < count; bi++) {
    int64_t idx[NN_MAX_DIMS], rem = bi;
    for (int i = nb - 1; i >= 0; i--) idx[i] = rem % batch[i], rem /= batch[i];
    /* flat offsets of this batch in a and b (row-major over their own dims) */
    int64_t aoff = 0, boff = 0;
    for (int d = 0; d < abn; d++) {
      int64_t s = a->size[d];
      aoff = aoff * s + (s == 1 ? 0 : idx[d + nb - abn]);
    }
    for (int d = 0; d < bbn; d++) {
      int64_t s = b->size[d];
      boff = boff * s + (s == 1 ? 0 : idx[d + nb - bbn]);
    }
    aoff *= m * k;
    boff *= k * n;
    for (int64_t i = 0; i < m; i++)
      for (int64_t j = 0; j < n; j++) {
        double s = 0, g = 0;
        for (int64_t p = 0; p < k; p++) {
          double x = av[aoff + i * k + p], y = bv[boff + p * n + j];
          s += x * y;
          g += fabs(x * y);
        }
        (*out)[(bi * m + i) * n + j] = s;
        (*mag)[(bi * m + i) * n + j] = g;
      }
  }
  free(av);
  free(bv);
  return 0;
}

/* matmul(a, b) equals the naive product; releases a and b. */
static void check_matmul(nn_tensor *a, nn_tensor *b, const char *label) {
  if (!a || !b) {
    check_at(0, __FILE__, __LINE__, "%s: could not build the operands: %s", label, nn_error());
    nn_release(a), nn_release(b);
    return;
  }
  int ndim;
  int64_t size[NN_MAX_DIMS];
  double *want = NULL, *mag = NULL;
  if (ref_matmul(a, b, &ndim, size, &want, &mag) < 0) {
    check_at(0, __FILE__, __LINE__, "%s: bad test shapes", label);
    nn_release(a), nn_release(b);
    return;
  }
  nn_tensor *c = nn_matmul(a, b);
  if (!check_at(c != NULL, __FILE__, __LINE__, "%s: matmul failed: %s", label, nn_error())) {
    goto done;
  }
  if (!check_shape_at(c, ndim, size, __FILE__, __LINE__, label)) goto done;
  check_at(c->dtype == a->dtype, __FILE__, __LINE__, "%s: dtype %s", label,
           nn_dtype_name(c->dtype));
  int64_t k = a->size[a->ndim - 1];
  double eps = a->dtype == NN_FLOAT32 ? FLT_EPSILON : DBL_EPSILON;
  double tol = 2 * eps * (double)(k + 2);
  int64_t n = nn_numel(c);
  for (int64_t i = 0; i < n; i++) {
    double got = nn_get_flat(c, i);
    if (!(fabs(got - want[i]) <= tol * mag[i] + 1e-30)) {
      check_at(0, __FILE__, __LINE__, "%s: element %lld is %.17g, the naive loop gives %.17g",
               label, (long long)i, got, want[i]);
      goto done;
    }
  }
  check_at(1, __FILE__, __LINE__, "%s", label);
done:
  free(want);
  free(mag);
  nn_release(c);
  nn_release(a);
  nn_release(b);
}

static void test_matmul_2d(void) {
  /* m, k, n: below the small-product threshold (48^3 multiply-adds) and
     above it, with degenerate rows and columns */
  static const int64_t shapes[][3] = {{3, 4, 5},    {40, 40, 40}, {64, 70, 80}, {130, 200, 90},
                                      {1, 1, 1},    {1, 300, 1},  {500, 1, 300}, {1, 200, 700},
                                      {700, 200, 1}, {2, 3, 60000}};
  char label[160];
  for (int d = 0; d < 2; d++) {
    nn_dtype dt = d ? NN_FLOAT64 : NN_FLOAT32;
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
      int64_t m = shapes[s][0], k = shapes[s][1], n = shapes[s][2];
      for (int la = 0; la < L_COUNT; la++)
        for (int lb = 0; lb < L_COUNT; lb++) {
          snprintf(label, sizeof label, "matmul %s (%lldx%lld %s) x (%lldx%lld %s)",
                   nn_dtype_name(dt), (long long)m, (long long)k, layout_names[la], (long long)k,
                   (long long)n, layout_names[lb]);
          check_matmul(matrix(dt, m, k, la), matrix(dt, k, n, lb), label);
        }
    }
  }
}

static void test_matmul_vectors_batched(void) {
  char label[160];
  for (int d = 0; d < 2; d++) {
    nn_dtype dt = d ? NN_FLOAT64 : NN_FLOAT32;
    const char *dn = nn_dtype_name(dt);
    /* 1-D x 2-D, 2-D x 1-D, 1-D x 1-D; small and above the threshold */
    static const int64_t vk[] = {4, 300};
    static const int64_t vn[] = {5, 500};
    for (int s = 0; s < 2; s++) {
      int64_t k = vk[s], n = vn[s];
      for (int lb = 0; lb < L_COUNT; lb++) {
        snprintf(label, sizeof label, "matmul %s (%lld) x (%lldx%lld %s)", dn, (long long)k,
                 (long long)k, (long long)n, layout_names[lb]);
        check_matmul(random_tensor(dt, 1, SZ(k)), matrix(dt, k, n, lb), label);
        snprintf(label, sizeof label, "matmul %s (%lldx%lld %s) x (%lld)", dn, (long long)n,
                 (long long)k, layout_names[lb], (long long)k);
        check_matmul(matrix(dt, n, k, lb), random_tensor(dt, 1, SZ(k)), label);
      }
      /* a strided vector: column 1 of a (k, 3) matrix */
      nn_tensor *base = random_tensor(dt, 2, SZ(k, 3));
      nn_tensor *col = base ? nn_select(base, 1, 1) : NULL;
      snprintf(label, sizeof label, "matmul %s strided (%lld) x (%lldx%lld)", dn, (long long)k,
               (long long)k, (long long)n);
      check_matmul(nn_retain(col), matrix(dt, k, n, L_TRANSPOSED), label);
      snprintf(label, sizeof label, "matmul %s (%lldx%lld) x strided (%lld)", dn, (long long)n,
               (long long)k, (long long)k);
      check_matmul(matrix(dt, n, k, L_CONTIGUOUS), nn_retain(col), label);
      snprintf(label, sizeof label, "matmul %s (%lld) . strided (%lld)", dn, (long long)k,
               (long long)k);
      check_matmul(random_tensor(dt, 1, SZ(k)), nn_retain(col), label);
      nn_release(col), nn_release(base);
    }
    /* the dot product is 0-dim */
    nn_tensor *x = OK(TENSOR(dt, 1, SZ(3), 1, 2, 3));
    nn_tensor *y = OK(TENSOR(dt, 1, SZ(3), 4, -5, 6));
    nn_tensor *dot = x && y ? OK(nn_matmul(x, y)) : NULL;
    if (dot) {
      CHECK_SCALAR_SHAPE(dot);
      CHECK_VALUES(dot, 0, 12);
    }
    nn_release(dot), nn_release(x), nn_release(y);

    /* batched, with broadcast batch dims */
    check_matmul(random_tensor(dt, 4, SZ(2, 3, 4, 5)), random_tensor(dt, 2, SZ(5, 6)),
                 "matmul (2,3,4,5) x (5,6)");
    check_matmul(random_tensor(dt, 2, SZ(4, 5)), random_tensor(dt, 3, SZ(3, 5, 6)),
                 "matmul (4,5) x (3,5,6)");
    check_matmul(random_tensor(dt, 4, SZ(2, 1, 3, 4)), random_tensor(dt, 3, SZ(5, 4, 6)),
                 "matmul (2,1,3,4) x (5,4,6)");
    check_matmul(random_tensor(dt, 3, SZ(1, 3, 4)), random_tensor(dt, 3, SZ(2, 4, 2)),
                 "matmul (1,3,4) x (2,4,2)");
    check_matmul(random_tensor(dt, 1, SZ(4)), random_tensor(dt, 3, SZ(2, 4, 3)),
                 "matmul (4) x (2,4,3)");
    check_matmul(random_tensor(dt, 3, SZ(2, 3, 4)), random_tensor(dt, 1, SZ(4)),
                 "matmul (2,3,4) x (4)");
    check_matmul(random_tensor(dt, 3, SZ(3, 64, 70)), random_tensor(dt, 2, SZ(70, 80)),
                 "matmul (3,64,70) x (70,80) above the threshold");
    check_matmul(random_tensor(dt, 3, SZ(2, 130, 200)), random_tensor(dt, 3, SZ(2, 200, 90)),
                 "matmul (2,130,200) x (2,200,90)");
    /* transposed last two dims, and a permuted batch */
    nn_tensor *b5 = random_tensor(dt, 3, SZ(2, 5, 4));
    nn_tensor *bt = b5 ? nn_transpose(b5, -1, -2) : NULL;
    check_matmul(bt, random_tensor(dt, 3, SZ(2, 5, 3)), "matmul transpose(2,5,4) x (2,5,3)");
    nn_release(b5);
    nn_tensor *p = random_tensor(dt, 3, SZ(4, 2, 60));
    nn_tensor *pp = p ? nn_permute(p, (const int[]){1, 0, 2}) : NULL; /* (2,4,60) */
    nn_tensor *q = random_tensor(dt, 3, SZ(2, 70, 60));
    nn_tensor *qt = q ? nn_transpose(q, 1, 2) : NULL; /* (2,60,70) */
    check_matmul(pp, qt, "matmul permuted (2,4,60) x transposed (2,60,70)");
    nn_release(p), nn_release(q);
    /* a batch dim expanded with stride 0 */
    nn_tensor *one = random_tensor(dt, 3, SZ(1, 60, 50));
    nn_tensor *ex = one ? nn_expand(one, 3, SZ(3, 60, 50)) : NULL;
    check_matmul(random_tensor(dt, 3, SZ(3, 40, 60)), ex, "matmul (3,40,60) x expanded (3,60,50)");
    nn_release(one);
  }
}

static void test_matmul_edges(void) {
  /* an empty inner dimension gives zeros, whatever the new storage held:
     poison the pool with NaN first */
  nn_tensor *a = OK(nn_zeros(NN_FLOAT32, 2, SZ(3, 0)));
  nn_tensor *b = OK(nn_zeros(NN_FLOAT32, 2, SZ(0, 4)));
  nn_tensor *poison = OK(nn_full(NN_FLOAT32, 2, SZ(3, 4), NAN));
  nn_release(poison); /* its block is the next one of that size */
  nn_tensor *c = a && b ? OK(nn_matmul(a, b)) : NULL;
  if (c) {
    CHECK_SHAPE(c, 2, 3, 4);
    CHECK_VALUES(c, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0);
  }
  nn_release(c), nn_release(a), nn_release(b);
  a = OK(nn_zeros(NN_FLOAT64, 2, SZ(0, 3)));
  b = OK(nn_ones(NN_FLOAT64, 2, SZ(3, 4)));
  c = a && b ? OK(nn_matmul(a, b)) : NULL;
  if (c) CHECK_SHAPE(c, 2, 0, 4);
  nn_release(c), nn_release(a), nn_release(b);

  /* shape mismatches and bad operands fail with "matmul" */
  nn_tensor *m34 = OK(nn_ones(NN_FLOAT32, 2, SZ(3, 4)));
  nn_tensor *m56 = OK(nn_ones(NN_FLOAT32, 2, SZ(5, 6)));
  nn_tensor *v3 = OK(nn_ones(NN_FLOAT32, 1, SZ(3)));
  nn_tensor *v4 = OK(nn_ones(NN_FLOAT32, 1, SZ(4)));
  nn_tensor *b234 = OK(nn_ones(NN_FLOAT32, 3, SZ(2, 3, 4)));
  nn_tensor *b345 = OK(nn_ones(NN_FLOAT32, 3, SZ(3, 4, 5)));
  nn_tensor *d34 = OK(nn_ones(NN_FLOAT64, 2, SZ(4, 3)));
  nn_tensor *i43 = OK(nn_ones(NN_INT64, 2, SZ(4, 3)));
  nn_tensor *s = OK(nn_full(NN_FLOAT32, 0, NULL, 2));
  if (m34 && m56 && v3 && v4 && b234 && b345 && d34 && i43 && s) {
    CHECK_FAILS(nn_matmul(m34, m56), "matmul");
    CHECK_FAILS(nn_matmul(m34, m34), "matmul");
    CHECK_FAILS(nn_matmul(v3, v4), "matmul");
    CHECK_FAILS(nn_matmul(v4, m34), "matmul");
    CHECK_FAILS(nn_matmul(m34, v3), "matmul");
    CHECK_FAILS(nn_matmul(b234, b345), "matmul"); /* batch 2 against 3 */
    CHECK_FAILS(nn_matmul(m34, d34), "matmul");   /* float32 x float64 */
    CHECK_FAILS(nn_matmul(i43, i43), "matmul");   /* integers */
    CHECK_FAILS(nn_matmul(s, m34), "matmul");     /* 0-dim */
    CHECK_FAILS(nn_matmul(m34, s), "matmul");
    nn_tensor *ok = OK(nn_matmul(v3, m34)); /* (3) x (3,4) */
    if (ok) {
      CHECK_SHAPE(ok, 1, 4);
      CHECK_VALUES(ok, 0, 3, 3, 3, 3);
    }
    nn_release(ok);
  }
  nn_release(m34), nn_release(m56), nn_release(v3), nn_release(v4), nn_release(b234);
  nn_release(b345), nn_release(d34), nn_release(i43), nn_release(s);
}

/* ---- linear --------------------------------------------------------------- */
/* nn_linear(x, w, b) against y = x w^T + b computed naively; releases all. */
static void check_linear(nn_tensor *x, nn_tensor *w, nn_tensor *b, const char *label) {
  if (!x || !w) {
    check_at(0, __FILE__, __LINE__, "%s: could not build the operands", label);
    nn_release(x), nn_release(w), nn_release(b);
    return;
  }
  int64_t in = w->size[1], out = w->size[0], rows = nn_numel(x) / in;
  double *xv = values_of(x), *wv = values_of(w), *bv = b ? values_of(b) : NULL;
  nn_tensor *y = nn_linear(x, w, b);
  if (check_at(y != NULL, __FILE__, __LINE__, "%s: linear failed: %s", label, nn_error())) {
    int64_t size[NN_MAX_DIMS];
    for (int i = 0; i < x->ndim - 1; i++) size[i] = x->size[i];
    size[x->ndim - 1] = out;
    if (check_shape_at(y, x->ndim, size, __FILE__, __LINE__, label)) {
      double eps = x->dtype == NN_FLOAT32 ? FLT_EPSILON : DBL_EPSILON;
      int ok = 1;
      for (int64_t r = 0; r < rows && ok; r++)
        for (int64_t o = 0; o < out && ok; o++) {
          double s = bv ? bv[o] : 0, g = bv ? fabs(bv[o]) : 0;
          for (int64_t i = 0; i < in; i++) {
            s += xv[r * in + i] * wv[o * in + i];
            g += fabs(xv[r * in + i] * wv[o * in + i]);
          }
          double got = nn_get_flat(y, r * out + o);
          if (!(fabs(got - s) <= 2 * eps * (double)(in + 3) * g + 1e-30)) {
            check_at(0, __FILE__, __LINE__, "%s: y[%lld,%lld] = %.17g, naive %.17g", label,
                     (long long)r, (long long)o, got, s);
            ok = 0;
          }
        }
      if (ok) check_at(1, __FILE__, __LINE__, "%s", label);
    }
  }
  free(xv), free(wv), free(bv);
  nn_release(y), nn_release(x), nn_release(w), nn_release(b);
}

static void test_linear(void) {
  char label[160];
  static const int64_t shapes[][3] = {{5, 7, 3}, {200, 300, 100}, {1, 10, 10}, {64, 2, 10}};
  for (int d = 0; d < 2; d++) {
    nn_dtype dt = d ? NN_FLOAT64 : NN_FLOAT32;
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
      int64_t n = shapes[s][0], in = shapes[s][1], out = shapes[s][2];
      for (int bias = 0; bias < 2; bias++)
        for (int lx = 0; lx < L_COUNT; lx++) {
          int lw = (lx + (int)s) % L_COUNT; /* vary the weight's layout too */
          snprintf(label, sizeof label, "linear %s x(%lldx%lld %s) w(%lldx%lld %s) %s",
                   nn_dtype_name(dt), (long long)n, (long long)in, layout_names[lx],
                   (long long)out, (long long)in, layout_names[lw], bias ? "bias" : "no bias");
          check_linear(matrix(dt, n, in, lx), matrix(dt, out, in, lw),
                       bias ? random_tensor(dt, 1, SZ(out)) : NULL, label);
        }
    }
    /* 1-D and 3-D inputs, a strided bias */
    check_linear(random_tensor(dt, 1, SZ(7)), random_tensor(dt, 2, SZ(3, 7)),
                 random_tensor(dt, 1, SZ(3)), "linear 1-D input");
    check_linear(random_tensor(dt, 3, SZ(2, 4, 7)), random_tensor(dt, 2, SZ(3, 7)),
                 random_tensor(dt, 1, SZ(3)), "linear 3-D input");
    nn_tensor *bb = random_tensor(dt, 2, SZ(3, 2));
    nn_tensor *bcol = bb ? nn_select(bb, 1, 1) : NULL;
    check_linear(random_tensor(dt, 2, SZ(5, 7)), random_tensor(dt, 2, SZ(3, 7)), bcol,
                 "linear strided bias");
    nn_release(bb);
  }
  /* errors name linear */
  nn_tensor *x = OK(nn_ones(NN_FLOAT32, 2, SZ(5, 7)));
  nn_tensor *w = OK(nn_ones(NN_FLOAT32, 2, SZ(3, 6)));
  nn_tensor *w7 = OK(nn_ones(NN_FLOAT32, 2, SZ(3, 7)));
  nn_tensor *b4 = OK(nn_ones(NN_FLOAT32, 1, SZ(4)));
  nn_tensor *v7 = OK(nn_ones(NN_FLOAT32, 1, SZ(7)));
  nn_tensor *xd = OK(nn_ones(NN_FLOAT64, 2, SZ(5, 7)));
  if (x && w && w7 && b4 && v7 && xd) {
    CHECK_FAILS(nn_linear(x, w, NULL), "linear");
    CHECK_FAILS(nn_linear(x, w7, b4), "linear");
    CHECK_FAILS(nn_linear(x, v7, NULL), "linear");
    CHECK_FAILS(nn_linear(xd, w7, NULL), "linear");
  }
  nn_release(x), nn_release(w), nn_release(w7), nn_release(b4), nn_release(v7), nn_release(xd);
}

/* ---- reductions ---------------------------------------------------------- */
enum { R_SUM, R_MEAN, R_MAX, R_MIN };

/* The reduction of values (row-major, shape ndim/size) over dim (or all):
   out and, for max/min, the first index of the extreme (NaN wins). */
static int64_t ref_reduce(const double *v, int ndim, const int64_t *size, int dim, int kind,
                          double *out, int64_t *idx) {
  int64_t outer = 1, n = 1, inner = 1;
  if (dim == NN_ALL_DIMS) {
    for (int i = 0; i < ndim; i++) n *= size[i];
  } else {
    for (int i = 0; i < dim; i++) outer *= size[i];
    n = size[dim];
    for (int i = dim + 1; i < ndim; i++) inner *= size[i];
  }
  for (int64_t o = 0; o < outer; o++)
    for (int64_t i = 0; i < inner; i++) {
      double acc = kind == R_SUM || kind == R_MEAN ? 0 : v[o * n * inner + i];
      int64_t best = 0;
      for (int64_t j = 0; j < n; j++) {
        double x = v[(o * n + j) * inner + i];
        if (kind == R_SUM || kind == R_MEAN) {
          acc += x;
        } else if (!isnan(acc) && (isnan(x) || (kind == R_MAX ? x > acc : x < acc))) {
          acc = x;
          best = j;
        }
      }
      out[o * inner + i] = kind == R_MEAN ? acc / (double)n : acc;
      if (idx) idx[o * inner + i] = best;
    }
  return outer * inner;
}

/* The shape a reduction over dim gives. */
static int reduced_shape(const nn_tensor *a, int dim, int keepdim, int64_t *size) {
  int n = 0;
  for (int i = 0; i < a->ndim; i++) {
    if (dim == NN_ALL_DIMS || dim == i) {
      if (keepdim) size[n++] = 1;
    } else {
      size[n++] = a->size[i];
    }
  }
  return n;
}

static void check_reductions_on(nn_tensor *a, const char *what) {
  double *v = values_of(a);
  int64_t total = nn_numel(a);
  double *want = malloc((size_t)total * sizeof *want);
  int64_t *want_idx = malloc((size_t)total * sizeof *want_idx);
  if (!want || !want_idx) abort();
  double tol = a->dtype == NN_FLOAT32 ? 1e-6 : 1e-14;
  char label[200];
  static const char *const kind_names[] = {"sum", "mean", "max", "min"};
  for (int dim = -1; dim < a->ndim; dim++) {
    int rdim = dim < 0 ? NN_ALL_DIMS : dim;
    for (int keepdim = 0; keepdim < 2; keepdim++)
      for (int kind = R_SUM; kind <= R_MIN; kind++) {
        snprintf(label, sizeof label, "%s %s dim %d keepdim %d", what, kind_names[kind], dim,
                 keepdim);
        int64_t n = ref_reduce(v, a->ndim, a->size, rdim, kind, want, want_idx);
        int64_t size[NN_MAX_DIMS];
        int nd = reduced_shape(a, rdim, keepdim, size);
        nn_tensor *idx = NULL, *r;
        switch (kind) {
        case R_SUM: r = nn_sum(a, rdim, keepdim); break;
        case R_MEAN: r = nn_mean(a, rdim, keepdim); break;
        case R_MAX: r = nn_max(a, rdim, keepdim, &idx); break;
        default: r = nn_min(a, rdim, keepdim, &idx); break;
        }
        if (!check_at(r != NULL, __FILE__, __LINE__, "%s failed: %s", label, nn_error())) continue;
        check_shape_at(r, nd, size, __FILE__, __LINE__, label);
        check_at(r->dtype == a->dtype, __FILE__, __LINE__, "%s: dtype %s", label,
                 nn_dtype_name(r->dtype));
        check_values_at(r, want, n, kind >= R_MAX ? 0 : tol, __FILE__, __LINE__, label);
        if (kind >= R_MAX) {
          /* indices: along a dim, or flat over everything */
          if (check_at(idx != NULL, __FILE__, __LINE__, "%s: no indices", label)) {
            check_at(idx->dtype == NN_INT64, __FILE__, __LINE__, "%s: indices dtype", label);
            check_shape_at(idx, nd, size, __FILE__, __LINE__, label);
            double *wi = malloc((size_t)n * sizeof *wi);
            if (!wi) abort();
            for (int64_t i = 0; i < n; i++) wi[i] = (double)want_idx[i];
            check_values_at(idx, wi, n, 0, __FILE__, __LINE__, label); /* flat over all */
            /* argmax/argmin give the same positions */
            nn_tensor *arg = kind == R_MAX ? nn_argmax(a, rdim, keepdim) : nn_argmin(a, rdim, keepdim);
            if (check_at(arg != NULL, __FILE__, __LINE__, "%s: arg failed: %s", label, nn_error())) {
              check_shape_at(arg, nd, size, __FILE__, __LINE__, label);
              check_values_at(arg, wi, n, 0, __FILE__, __LINE__, label);
            }
            nn_release(arg);
            free(wi);
          }
        }
        nn_release(idx);
        nn_release(r);
      }
  }
  /* norms over everything */
  static const double ps[] = {1, 2, INFINITY, 3};
  for (int i = 0; i < 4; i++) {
    double acc = 0;
    for (int64_t j = 0; j < total; j++) {
      double x = fabs(v[j]);
      if (isinf(ps[i])) acc = x > acc ? x : acc;
      else acc += pow(x, ps[i]);
    }
    double expect = isinf(ps[i]) ? acc : pow(acc, 1 / ps[i]);
    nn_tensor *r = nn_norm(a, ps[i], NN_ALL_DIMS, 0);
    snprintf(label, sizeof label, "%s norm p=%g", what, ps[i]);
    if (check_at(r != NULL, __FILE__, __LINE__, "%s failed: %s", label, nn_error())) {
      check_shape_at(r, 0, NULL, __FILE__, __LINE__, label);
      check_values_at(r, &expect, 1, a->dtype == NN_FLOAT32 ? 1e-6 : 1e-13, __FILE__, __LINE__,
                      label);
    }
    nn_release(r);
  }
  free(v), free(want), free(want_idx);
}

static void test_reductions(void) {
  for (int d = 0; d < 2; d++) {
    nn_dtype dt = d ? NN_FLOAT64 : NN_FLOAT32;
    char what[96];
    /* continuous values, then small integers with many ties */
    for (int ties = 0; ties < 2; ties++) {
      nn_tensor *a = random_tensor(dt, 3, SZ(3, 4, 5));
      if (!a) continue;
      if (ties)
        for (int64_t i = 0; i < 60; i++) nn_set_flat(a, i, nearbyint(2 * nn_get_flat(a, i)));
      snprintf(what, sizeof what, "%s%s contiguous", nn_dtype_name(dt), ties ? " ties" : "");
      check_reductions_on(a, what);
      /* the same shape through a permutation, and a narrowed view */
      nn_tensor *base = random_tensor(dt, 3, SZ(4, 5, 3));
      nn_tensor *p = base ? nn_permute(base, (const int[]){2, 0, 1}) : NULL;
      if (p && ties)
        for (int64_t i = 0; i < 60; i++) nn_set_flat(p, i, nearbyint(2 * nn_get_flat(p, i)));
      snprintf(what, sizeof what, "%s%s permuted", nn_dtype_name(dt), ties ? " ties" : "");
      if (CHECK(p != NULL && !nn_is_contiguous(p))) check_reductions_on(p, what);
      nn_tensor *wide = random_tensor(dt, 3, SZ(3, 4, 7));
      nn_tensor *nar = wide ? nn_narrow(wide, 2, 1, 5) : NULL;
      if (nar && ties)
        for (int64_t i = 0; i < 60; i++) nn_set_flat(nar, i, nearbyint(2 * nn_get_flat(nar, i)));
      snprintf(what, sizeof what, "%s%s narrowed", nn_dtype_name(dt), ties ? " ties" : "");
      if (CHECK(nar != NULL && !nn_is_contiguous(nar))) check_reductions_on(nar, what);
      nn_release(nar), nn_release(wide), nn_release(p), nn_release(base), nn_release(a);
    }
    /* an expanded (stride-0) input */
    nn_tensor *col = random_tensor(dt, 2, SZ(3, 1));
    nn_tensor *ex = col ? nn_expand(col, 2, SZ(3, 6)) : NULL;
    snprintf(what, sizeof what, "%s expanded", nn_dtype_name(dt));
    if (ex) check_reductions_on(ex, what);
    nn_release(ex), nn_release(col);
  }

  /* ties take the first position */
  nn_tensor *t = OK(TENSOR(NN_FLOAT32, 2, SZ(2, 3), 1, 3, 3, 2, 2, 1));
  if (t) {
    nn_tensor *idx = NULL, *mx = OK(nn_max(t, 1, 0, &idx));
    if (mx) CHECK_VALUES(mx, 0, 3, 2);
    if (idx) CHECK_VALUES(idx, 0, 1, 0);
    nn_release(mx), nn_release(idx);
    idx = NULL;
    nn_tensor *mn = OK(nn_min(t, 1, 1, &idx));
    if (mn) {
      CHECK_SHAPE(mn, 2, 2, 1);
      CHECK_VALUES(mn, 0, 1, 1);
    }
    if (idx) CHECK_VALUES(idx, 0, 0, 2);
    nn_release(mn), nn_release(idx);
    nn_tensor *am = OK(nn_argmax(t, NN_ALL_DIMS, 0));
    if (am) {
      CHECK_SCALAR_SHAPE(am);
      CHECK(am->dtype == NN_INT64);
      CHECK_VALUES(am, 0, 1);
    }
    nn_release(am);
    am = OK(nn_argmin(t, NN_ALL_DIMS, 0));
    if (am) CHECK_VALUES(am, 0, 0);
    nn_release(am);
    am = OK(nn_argmax(t, 0, 0));
    if (am) CHECK_VALUES(am, 0, 1, 0, 0);
    nn_release(am);
    am = OK(nn_argmax(t, -1, 1));
    if (am) {
      CHECK_SHAPE(am, 2, 2, 1);
      CHECK_VALUES(am, 0, 1, 0);
    }
    nn_release(am);
    mx = OK(nn_max(t, NN_ALL_DIMS, 0, NULL));
    if (mx) {
      CHECK_SCALAR_SHAPE(mx);
      CHECK_VALUES(mx, 0, 3);
    }
    nn_release(mx);
    CHECK_FAILS(nn_max(t, 2, 0, NULL), "dimension");
    CHECK_FAILS(nn_sum(t, -3, 0), "dimension");
  }
  nn_release(t);

  /* NaN propagates through max and min */
  for (int d = 0; d < 2; d++) {
    nn_dtype dt = d ? NN_FLOAT64 : NN_FLOAT32;
    nn_tensor *n = OK(TENSOR(dt, 2, SZ(2, 3), 1, NAN, 3, 4, 5, 6));
    if (!n) continue;
    nn_tensor *idx = NULL, *r = OK(nn_max(n, NN_ALL_DIMS, 0, NULL));
    if (r) CHECK(isnan(nn_get_flat(r, 0)));
    nn_release(r);
    r = OK(nn_min(n, NN_ALL_DIMS, 0, NULL));
    if (r) CHECK(isnan(nn_get_flat(r, 0)));
    nn_release(r);
    r = OK(nn_max(n, 1, 0, &idx));
    if (r) CHECK_VALUES(r, 0, NAN, 6);
    if (idx) CHECK_VALUES(idx, 0, 1, 2);
    nn_release(r), nn_release(idx);
    idx = NULL;
    r = OK(nn_min(n, 0, 0, &idx));
    if (r) CHECK_VALUES(r, 0, 1, NAN, 3);
    if (idx) CHECK_VALUES(idx, 0, 0, 0, 0);
    nn_release(r), nn_release(idx);
    r = OK(nn_argmax(n, NN_ALL_DIMS, 0));
    if (r) CHECK_VALUES(r, 0, 1);
    nn_release(r);
    r = OK(nn_sum(n, 1, 0));
    if (r) CHECK_VALUES(r, 0, NAN, 15);
    nn_release(r);
    nn_release(n);
  }

  /* a million float32 ones sum to exactly a million */
  nn_tensor *ones = OK(nn_ones(NN_FLOAT32, 1, SZ(1000000)));
  if (ones) {
    nn_tensor *s = OK(nn_sum(ones, NN_ALL_DIMS, 0));
    if (s) {
      CHECK(s->dtype == NN_FLOAT32);
      CHECK_VALUES(s, 0, 1e6);
    }
    nn_release(s);
    nn_tensor *m = OK(nn_mean(ones, NN_ALL_DIMS, 0));
    if (m) CHECK_VALUES(m, 0, 1);
    nn_release(m);
    nn_tensor *o2 = OK(nn_view(ones, 2, SZ(1000, 1000)));
    nn_tensor *s2 = o2 ? OK(nn_sum(o2, 0, 0)) : NULL;
    if (s2) CHECK(nn_get_flat(s2, 0) == 1000 && nn_get_flat(s2, 999) == 1000);
    nn_release(s2), nn_release(o2);
  }
  nn_release(ones);
  /* float32 sums accumulate wide: 2^24 + 1 + 1 is 2^24 + 2, where a float32
     accumulator would lose both ones */
  nn_tensor *mix = OK(TENSOR(NN_FLOAT32, 1, SZ(3), 16777216, 1, 1));
  if (mix) {
    nn_tensor *s = OK(nn_sum(mix, NN_ALL_DIMS, 0));
    if (s) CHECK_VALUES(s, 0, 16777218);
    nn_release(s);
  }
  nn_release(mix);

  /* dtypes: integer sums stay int64, bool sums count, mean needs floats */
  nn_tensor *li = OK(TENSOR(NN_INT64, 2, SZ(2, 2), 1, 2, 3, 4));
  if (li) {
    nn_tensor *s = OK(nn_sum(li, NN_ALL_DIMS, 0));
    if (s) {
      CHECK(s->dtype == NN_INT64);
      CHECK_VALUES(s, 0, 10);
    }
    nn_release(s);
    nn_tensor *mx = OK(nn_max(li, 0, 0, NULL));
    if (mx) {
      CHECK(mx->dtype == NN_INT64);
      CHECK_VALUES(mx, 0, 3, 4);
    }
    nn_release(mx);
    CHECK_FAILS(nn_mean(li, NN_ALL_DIMS, 0), "mean");
    CHECK_FAILS(nn_norm(li, 2, NN_ALL_DIMS, 0), "norm");
  }
  nn_release(li);
  nn_tensor *bl = OK(TENSOR(NN_BOOL, 1, SZ(4), 1, 0, 1, 1));
  if (bl) {
    nn_tensor *s = OK(nn_sum(bl, NN_ALL_DIMS, 0));
    if (s) {
      CHECK(s->dtype == NN_INT64);
      CHECK_VALUES(s, 0, 3);
    }
    nn_release(s);
  }
  nn_release(bl);
  /* empty and 0-dim inputs */
  nn_tensor *e = OK(nn_zeros(NN_FLOAT32, 2, SZ(0, 3)));
  if (e) {
    nn_tensor *s = OK(nn_sum(e, NN_ALL_DIMS, 0));
    if (s) CHECK_VALUES(s, 0, 0);
    nn_release(s);
    s = OK(nn_sum(e, 0, 0));
    if (s) {
      CHECK_SHAPE(s, 1, 3);
      CHECK_VALUES(s, 0, 0, 0, 0);
    }
    nn_release(s);
    CHECK_FAILS(nn_max(e, NN_ALL_DIMS, 0, NULL), "empty");
  }
  nn_release(e);
  nn_tensor *z = OK(nn_full(NN_FLOAT64, 0, NULL, -4));
  if (z) {
    nn_tensor *s = OK(nn_sum(z, NN_ALL_DIMS, 0));
    if (s) {
      CHECK_SCALAR_SHAPE(s);
      CHECK_VALUES(s, 0, -4);
    }
    nn_release(s);
    nn_tensor *n = OK(nn_norm(z, 1, NN_ALL_DIMS, 0));
    if (n) CHECK_VALUES(n, 0, 4);
    nn_release(n);
    nn_tensor *mx = OK(nn_max(z, 0, 0, NULL));
    if (mx) CHECK_VALUES(mx, 0, -4);
    nn_release(mx);
  }
  nn_release(z);
  /* norm: known values; p = 0 counts the nonzeros, -inf is the smallest
     magnitude, a negative p is (sum |x|^p)^(1/p), as PyTorch */
  nn_tensor *v = OK(TENSOR(NN_FLOAT64, 1, SZ(3), 3, -4, 0));
  if (v) {
    static const struct { double p, want; } norms[] = {
        {1, 7}, {2, 5}, {INFINITY, 4}, {0, 2}, {-INFINITY, 0}, {-1, 0}};
    for (size_t i = 0; i < sizeof norms / sizeof norms[0]; i++) {
      nn_tensor *n = OK(nn_norm(v, norms[i].p, NN_ALL_DIMS, 0));
      if (n) CHECK_VALUES(n, 0, norms[i].want);
      nn_release(n);
    }
    CHECK_FAILS(nn_norm(v, NAN, NN_ALL_DIMS, 0), "norm");
    CHECK_FAILS(nn_norm(v, 2, 1, 0), "norm");
  }
  nn_release(v);
  /* norm along a dim, keepdim or not */
  nn_tensor *m = OK(TENSOR(NN_FLOAT64, 2, SZ(2, 2), 3, -4, 0, 2));
  if (m) {
    nn_tensor *rows = OK(nn_norm(m, 2, 1, 0)), *cols = OK(nn_norm(m, 1, 0, 1));
    if (rows) {
      CHECK_SHAPE(rows, 1, 2);
      CHECK_VALUES(rows, 0, 5, 2);
    }
    if (cols) {
      CHECK_SHAPE(cols, 2, 1, 2);
      CHECK_VALUES(cols, 0, 3, 6);
    }
    nn_release(rows), nn_release(cols);
  }
  nn_release(m);
  /* sum_to_shape: a gradient summed back over broadcast dims */
  nn_tensor *g = OK(nn_arange(0, 24, 1, NN_FLOAT64));
  nn_tensor *g3 = g ? OK(nn_view(g, 3, SZ(2, 3, 4))) : NULL;
  if (g3) {
    nn_tensor *r = OK(nn_sum_to_shape(g3, 2, SZ(3, 1)));
    if (r) {
      CHECK_SHAPE(r, 2, 3, 1);
      /* row j: the sum over i, k of 12i + 4j + k is 60 + 32j */
      CHECK_VALUES(r, 0, 60, 92, 124);
    }
    nn_release(r);
    r = OK(nn_sum_to_shape(g3, 1, SZ(4)));
    if (r) CHECK_VALUES(r, 0, 60, 66, 72, 78);
    nn_release(r);
    CHECK_FAILS(nn_sum_to_shape(g3, 2, SZ(2, 4)), "sum_to_shape");
  }
  nn_release(g3), nn_release(g);
}

/* ---- elementwise ------------------------------------------------------- */
static double binary_ref(nn_binary_op op, double x, double y) {
  switch (op) {
  case NN_ADD: return x + y;
  case NN_SUB: return x - y;
  case NN_MUL: return x * y;
  case NN_DIV: return x / y;
  case NN_POW: return pow(x, y);
  case NN_MAXIMUM: return isnan(x) || isnan(y) ? NAN : (x > y ? x : y);
  case NN_MINIMUM: return isnan(x) || isnan(y) ? NAN : (x < y ? x : y);
  case NN_GT: return x > y;
  case NN_GE: return x >= y;
  case NN_LT: return x < y;
  case NN_LE: return x <= y;
  case NN_EQ: return x == y;
  default: return x != y;
  }
}

/* The same in float32 arithmetic. */
static double binary_ref_f(nn_binary_op op, float x, float y) {
  switch (op) {
  case NN_ADD: return (float)(x + y);
  case NN_SUB: return (float)(x - y);
  case NN_MUL: return (float)(x * y);
  case NN_DIV: return (float)(x / y);
  case NN_POW: return powf(x, y);
  default: return binary_ref(op, x, y);
  }
}

static double unary_ref(nn_unary_op op, double x) {
  switch (op) {
  case NN_NEG: return -x;
  case NN_EXP: return exp(x);
  case NN_LOG: return log(x);
  case NN_SQRT: return sqrt(x);
  case NN_ABS: return fabs(x);
  case NN_SIGMOID: return 1 / (1 + exp(-x));
  case NN_TANH: return tanh(x);
  case NN_RELU: return x > 0 ? x : 0;
  case NN_STEP: return x > 0 ? 1 : 0;
  case NN_SIN: return sin(x);
  case NN_COS: return cos(x);
  case NN_SIGN: return x > 0 ? 1 : (x < 0 ? -1 : 0);
  case NN_FLOOR: return floor(x);
  case NN_CEIL: return ceil(x);
  default: return nearbyint(x); /* half to even, as torch.round */
  }
}

static int is_comparison(nn_binary_op op) { return op >= NN_GT; }

static void test_binary_ops(void) {
  static const double xs[] = {-2, -0.5, 0, 0.3, 1, 2.5, 0, 4, -3, 7};
  static const double ys[] = {0.5, 2, -1, 0.3, 3, -2, 0, 0.5, 3, 7};
  enum { N = sizeof xs / sizeof xs[0] };
  char label[128];
  for (int d = 0; d < 2; d++) {
    nn_dtype dt = d ? NN_FLOAT64 : NN_FLOAT32;
    nn_tensor *x = OK(tensor_of(dt, 1, SZ(N), xs)), *y = OK(tensor_of(dt, 1, SZ(N), ys));
    /* the same values through transposed (2,5) views of (5,2) tensors */
    double xt_vals[N], yt_vals[N];
    for (int i = 0; i < 2; i++)
      for (int j = 0; j < 5; j++) xt_vals[j * 2 + i] = xs[i * 5 + j], yt_vals[j * 2 + i] = ys[i * 5 + j];
    nn_tensor *xb = OK(tensor_of(dt, 2, SZ(5, 2), xt_vals)), *yb = OK(tensor_of(dt, 2, SZ(5, 2), yt_vals));
    nn_tensor *xt = xb ? OK(nn_transpose(xb, 0, 1)) : NULL, *yt = yb ? OK(nn_transpose(yb, 0, 1)) : NULL;
    if (x && y && xt && yt) {
      for (int op = NN_ADD; op <= NN_NE; op++) {
        double want[N];
        for (int i = 0; i < N; i++)
          want[i] = d ? binary_ref((nn_binary_op)op, xs[i], ys[i])
                      : binary_ref_f((nn_binary_op)op, (float)xs[i], (float)ys[i]);
        double tol = op == NN_POW ? (d ? 1e-15 : 1e-6) : 0;
        nn_dtype want_dt = is_comparison((nn_binary_op)op) ? NN_BOOL : dt;
        for (int layout = 0; layout < 2; layout++) {
          snprintf(label, sizeof label, "%s %s%s", nn_dtype_name(dt),
                   nn_binary_op_name((nn_binary_op)op), layout ? " transposed" : "");
          nn_tensor *r = layout ? nn_binary((nn_binary_op)op, xt, yt) : nn_binary((nn_binary_op)op, x, y);
          if (check_at(r != NULL, __FILE__, __LINE__, "%s failed: %s", label, nn_error())) {
            check_at(r->dtype == want_dt, __FILE__, __LINE__, "%s: dtype %s, expected %s", label,
                     nn_dtype_name(r->dtype), nn_dtype_name(want_dt));
            /* the transposed result is (2,5); its logical order is xs' order */
            check_values_at(r, want, N, tol, __FILE__, __LINE__, label);
          }
          nn_release(r);
        }
      }
    }
    nn_release(x), nn_release(y), nn_release(xt), nn_release(yt), nn_release(xb), nn_release(yb);

    /* NaN: maximum/minimum propagate it from either side, comparisons are false
       (ne true) */
    nn_tensor *a = OK(TENSOR(dt, 1, SZ(3), NAN, 1, NAN));
    nn_tensor *b = OK(TENSOR(dt, 1, SZ(3), 1, NAN, NAN));
    if (a && b) {
      nn_tensor *r = OK(nn_binary(NN_MAXIMUM, a, b));
      if (r) CHECK_VALUES(r, 0, NAN, NAN, NAN);
      nn_release(r);
      r = OK(nn_binary(NN_MINIMUM, a, b));
      if (r) CHECK_VALUES(r, 0, NAN, NAN, NAN);
      nn_release(r);
      r = OK(nn_binary(NN_EQ, a, b));
      if (r) CHECK_VALUES(r, 0, 0, 0, 0);
      nn_release(r);
      r = OK(nn_binary(NN_NE, a, a));
      if (r) CHECK_VALUES(r, 0, 1, 0, 1);
      nn_release(r);
      r = OK(nn_binary(NN_GE, a, b));
      if (r) CHECK_VALUES(r, 0, 0, 0, 0);
      nn_release(r);
    }
    nn_release(a), nn_release(b);
  }
  CHECK(strcmp(nn_binary_op_name(NN_MAXIMUM), "maximum") == 0);
  CHECK(strcmp(nn_unary_op_name(NN_SIGMOID), "sigmoid") == 0);
}

static void test_unary_ops(void) {
  static const double xs[] = {-3.7, -2.5, -1.5, -0.5, -0.3, 0, 0.3, 0.5, 1, 1.5, 2.5, 3.7, 20};
  enum { N = sizeof xs / sizeof xs[0] };
  char label[128];
  for (int d = 0; d < 2; d++) {
    nn_dtype dt = d ? NN_FLOAT64 : NN_FLOAT32;
    nn_tensor *x = OK(tensor_of(dt, 1, SZ(N), xs));
    /* the same values seen through a step-2 view */
    double wide[2 * N];
    for (int i = 0; i < N; i++) wide[2 * i] = -99, wide[2 * i + 1] = xs[i];
    nn_tensor *wb = OK(tensor_of(dt, 2, SZ(N, 2), wide));
    nn_tensor *xs2 = wb ? OK(nn_select(wb, 1, 1)) : NULL;
    if (x && xs2) {
      for (int op = NN_NEG; op <= NN_ROUND; op++) {
        double want[N];
        for (int i = 0; i < N; i++) {
          double v = d ? xs[i] : (double)(float)xs[i];
          want[i] = unary_ref((nn_unary_op)op, v);
          if (!d) want[i] = (float)want[i];
        }
        double tol = d ? 1e-15 : 2e-7;
        for (int layout = 0; layout < 2; layout++) {
          snprintf(label, sizeof label, "%s %s%s", nn_dtype_name(dt),
                   nn_unary_op_name((nn_unary_op)op), layout ? " strided" : "");
          nn_tensor *r = nn_unary((nn_unary_op)op, layout ? xs2 : x);
          if (check_at(r != NULL, __FILE__, __LINE__, "%s failed: %s", label, nn_error())) {
            check_at(r->dtype == dt, __FILE__, __LINE__, "%s: dtype %s", label,
                     nn_dtype_name(r->dtype));
            check_values_at(r, want, N, tol, __FILE__, __LINE__, label);
          }
          nn_release(r);
        }
      }
      /* in place over the strided view leaves the other column alone */
      CHECK_STATUS_OK(nn_unary_(NN_ABS, xs2));
      CHECK(nn_get_flat(wb, 0) == -99 && nn_get_flat(wb, 1) == (d ? 3.7 : (float)3.7));
      CHECK_STATUS_OK(nn_unary_(NN_NEG, xs2));
      CHECK(nn_get_flat(xs2, 12) == -20 && nn_get_flat(wb, 24) == -99);
    }
    nn_release(xs2), nn_release(wb), nn_release(x);

    /* log and sqrt outside their domains, round half to even */
    nn_tensor *e = OK(TENSOR(dt, 1, SZ(4), -1, 0, 4, INFINITY));
    if (e) {
      nn_tensor *r = OK(nn_unary(NN_LOG, e));
      if (r) CHECK_VALUES(r, 1e-7, NAN, -INFINITY, log(4), INFINITY);
      nn_release(r);
      r = OK(nn_unary(NN_SQRT, e));
      if (r) CHECK_VALUES(r, 0, NAN, 0, 2, INFINITY);
      nn_release(r);
      r = OK(nn_unary(NN_EXP, e));
      if (r) CHECK_VALUES(r, 1e-7, exp(-1), 1, exp(4), INFINITY);
      nn_release(r);
    }
    nn_release(e);
    nn_tensor *h = OK(TENSOR(dt, 1, SZ(6), 0.5, 1.5, 2.5, -0.5, -1.5, -2.5));
    if (h) {
      nn_tensor *r = OK(nn_unary(NN_ROUND, h));
      if (r) CHECK_VALUES(r, 0, 0, 2, 2, -0.0, -2, -2);
      nn_release(r);
    }
    nn_release(h);

    /* sigmoid and tanh at +-1000: finite, exactly 1 and 0 (-1) */
    nn_tensor *big = OK(TENSOR(dt, 1, SZ(4), 1000, -1000, 100, -100));
    if (big) {
      nn_tensor *s = OK(nn_unary(NN_SIGMOID, big));
      if (s) {
        CHECK(isfinite(nn_get_flat(s, 0)) && isfinite(nn_get_flat(s, 1)));
        CHECK(nn_get_flat(s, 0) == 1);
        CHECK(nn_get_flat(s, 1) == 0);
        CHECK(nn_get_flat(s, 2) == 1);
        CHECK(nn_get_flat(s, 3) >= 0 && nn_get_flat(s, 3) < 1e-40);
      }
      nn_release(s);
      nn_tensor *t = OK(nn_unary(NN_TANH, big));
      if (t) CHECK_VALUES(t, 0, 1, -1, 1, -1);
      nn_release(t);
      nn_tensor *r = OK(nn_unary(NN_RELU, big));
      if (r) CHECK_VALUES(r, 0, 1000, 0, 100, 0);
      nn_release(r);
      nn_tensor *st = OK(nn_unary(NN_STEP, big));
      if (st) CHECK_VALUES(st, 0, 1, 0, 1, 0);
      nn_release(st);
      /* in place, the same */
      CHECK_STATUS_OK(nn_unary_(NN_SIGMOID, big));
      CHECK_VALUES(big, 0, 1, 0, 1, nn_get_flat(big, 3));
    }
    nn_release(big);
  }

  /* integer inputs: exact ops keep int64 (bool becomes int64), the rest go to float32 */
  nn_tensor *li = OK(TENSOR(NN_INT64, 1, SZ(4), -3, 0, 2, 5));
  if (li) {
    nn_tensor *r = OK(nn_unary(NN_NEG, li));
    if (r) {
      CHECK(r->dtype == NN_INT64);
      CHECK_VALUES(r, 0, 3, 0, -2, -5);
    }
    nn_release(r);
    r = OK(nn_unary(NN_ABS, li));
    if (r) CHECK(r->dtype == NN_INT64);
    nn_release(r);
    r = OK(nn_unary(NN_RELU, li));
    if (r) {
      CHECK(r->dtype == NN_INT64);
      CHECK_VALUES(r, 0, 0, 0, 2, 5);
    }
    nn_release(r);
    r = OK(nn_unary(NN_SQRT, li));
    if (r) {
      CHECK(r->dtype == NN_FLOAT32);
      CHECK_VALUES(r, 1e-7, NAN, 0, sqrt(2), sqrt(5));
    }
    nn_release(r);
    CHECK_STATUS_FAILS(nn_unary_(NN_EXP, li), "exp");
  }
  nn_release(li);
}

static void test_scalar_forms(void) {
  for (int d = 0; d < 2; d++) {
    nn_dtype dt = d ? NN_FLOAT64 : NN_FLOAT32;
    nn_tensor *a = OK(TENSOR(dt, 1, SZ(3), 1, 2, 4));
    if (!a) continue;
    struct { nn_binary_op op; double s; int first; double want[3]; } cases[] = {
        {NN_SUB, 3, 0, {-2, -1, 1}},   {NN_SUB, 3, 1, {2, 1, -1}},
        {NN_ADD, 0.5, 1, {1.5, 2.5, 4.5}},
        {NN_DIV, 8, 1, {8, 4, 2}},     {NN_DIV, 8, 0, {0.125, 0.25, 0.5}},
        {NN_MUL, -2, 0, {-2, -4, -8}}, {NN_POW, 2, 0, {1, 4, 16}},
        {NN_POW, 2, 1, {2, 4, 16}},    {NN_POW, 0.5, 0, {1, sqrt(2), 2}},
        {NN_MAXIMUM, 2, 0, {2, 2, 4}}, {NN_MINIMUM, 2, 1, {1, 2, 2}},
        {NN_GT, 2, 0, {0, 0, 1}},      {NN_GT, 2, 1, {1, 0, 0}},
        {NN_LE, 2, 1, {0, 1, 1}},      {NN_EQ, 4, 0, {0, 0, 1}},
        {NN_NE, 4, 1, {1, 1, 0}},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
      nn_tensor *r = nn_binary_scalar(cases[i].op, a, cases[i].s, cases[i].first);
      char label[96];
      snprintf(label, sizeof label, "%s %s %s %g", nn_dtype_name(dt),
               cases[i].first ? "scalar" : "tensor", nn_binary_op_name(cases[i].op), cases[i].s);
      if (check_at(r != NULL, __FILE__, __LINE__, "%s failed: %s", label, nn_error())) {
        nn_dtype want_dt = is_comparison(cases[i].op) ? NN_BOOL : dt;
        check_at(r->dtype == want_dt, __FILE__, __LINE__, "%s: dtype %s", label,
                 nn_dtype_name(r->dtype));
        check_values_at(r, cases[i].want, 3, d ? 1e-15 : 1e-7, __FILE__, __LINE__, label);
      }
      nn_release(r);
    }
    /* in place: a = a op s (the tensor always first) */
    nn_tensor *c = OK(nn_clone(a));
    if (c) {
      CHECK_STATUS_OK(nn_binary_scalar_(NN_SUB, c, 1));
      CHECK_VALUES(c, 0, 0, 1, 3);
      CHECK_STATUS_OK(nn_binary_scalar_(NN_MUL, c, 2));
      CHECK_VALUES(c, 0, 0, 2, 6);
      CHECK_STATUS_OK(nn_binary_scalar_(NN_DIV, c, 4));
      CHECK_VALUES(c, 0, 0, 0.5, 1.5);
      CHECK_STATUS_OK(nn_binary_scalar_(NN_POW, c, 2));
      CHECK_VALUES(c, 0, 0, 0.25, 2.25);
      CHECK_STATUS_OK(nn_binary_scalar_(NN_GT, c, 0.5));
      CHECK(c->dtype == dt);
      CHECK_VALUES(c, 0, 0, 0, 1);
    }
    nn_release(c);
    nn_release(a);
  }
  /* in place with a tensor operand, broadcast to the target */
  nn_tensor *m = OK(TENSOR(NN_FLOAT32, 2, SZ(2, 3), 1, 2, 3, 4, 5, 6));
  nn_tensor *row = OK(TENSOR(NN_FLOAT32, 1, SZ(3), 10, 20, 30));
  nn_tensor *col = OK(TENSOR(NN_FLOAT64, 2, SZ(2, 1), 2, 3));
  if (m && row && col) {
    CHECK_STATUS_OK(nn_binary_(NN_ADD, m, row));
    CHECK_VALUES(m, 0, 11, 22, 33, 14, 25, 36);
    CHECK_STATUS_OK(nn_binary_(NN_MUL, m, col)); /* float64 into float32 is allowed */
    CHECK_VALUES(m, 0, 22, 44, 66, 42, 75, 108);
    CHECK(m->dtype == NN_FLOAT32);
    CHECK_STATUS_FAILS(nn_binary_(NN_ADD, row, m), "shape"); /* would broadcast beyond row */
    CHECK_VALUES(row, 0, 10, 20, 30);
    /* through a transposed view: writes land in the base */
    nn_tensor *mt = OK(nn_transpose(m, 0, 1)); /* (3,2) */
    if (mt) {
      CHECK_STATUS_OK(nn_binary_(NN_SUB, mt, mt));
      CHECK_VALUES(m, 0, 0, 0, 0, 0, 0, 0);
    }
    nn_release(mt);
  }
  nn_release(m), nn_release(row), nn_release(col);
}

static void test_clamp(void) {
  for (int d = 0; d < 2; d++) {
    nn_dtype dt = d ? NN_FLOAT64 : NN_FLOAT32;
    nn_tensor *x = OK(TENSOR(dt, 1, SZ(6), -2, -0.5, 0.5, 2, NAN, 1));
    if (!x) continue;
    nn_tensor *r = OK(nn_clamp(x, -1, 1));
    if (r) {
      CHECK(r->dtype == dt);
      CHECK_VALUES(r, 0, -1, -0.5, 0.5, 1, NAN, 1);
    }
    nn_release(r);
    r = OK(nn_clamp(x, 0, INFINITY)); /* lower bound only */
    if (r) CHECK_VALUES(r, 0, 0, 0, 0.5, 2, NAN, 1);
    nn_release(r);
    r = OK(nn_clamp(x, -INFINITY, 0)); /* upper bound only */
    if (r) CHECK_VALUES(r, 0, -2, -0.5, 0, 0, NAN, 0);
    nn_release(r);
    r = OK(nn_clamp(x, 0.5, 0.5));
    if (r) CHECK_VALUES(r, 0, 0.5, 0.5, 0.5, 0.5, NAN, 0.5);
    nn_release(r);
    /* PyTorch 1.13: min(max(x, lo), hi), so lo > hi gives hi; a NaN bound
       gives NaN, unless it is the only bound */
    r = OK(nn_clamp(x, 1, -1));
    if (r) CHECK_VALUES(r, 0, -1, -1, -1, -1, NAN, -1);
    nn_release(r);
    r = OK(nn_clamp(x, NAN, 1));
    if (r) CHECK_VALUES(r, 0, NAN, NAN, NAN, NAN, NAN, NAN);
    nn_release(r);
    r = OK(nn_clamp(x, NAN, INFINITY));
    if (r) CHECK_VALUES(r, 0, -2, -0.5, 0.5, 2, NAN, 1);
    nn_release(r);
    /* in place, on a narrowed view */
    nn_tensor *n = OK(nn_narrow(x, 0, 0, 2));
    if (n) {
      CHECK_STATUS_OK(nn_clamp_(n, -1, INFINITY));
      CHECK_VALUES(x, 0, -1, -0.5, 0.5, 2, NAN, 1);
    }
    nn_release(n);
    nn_release(x);
  }
  nn_tensor *li = OK(TENSOR(NN_INT64, 1, SZ(4), -5, 0, 3, 9));
  if (li) {
    nn_tensor *r = OK(nn_clamp(li, 0, 4));
    if (r) {
      CHECK(r->dtype == NN_INT64);
      CHECK_VALUES(r, 0, 0, 0, 3, 4);
    }
    nn_release(r);
    r = OK(nn_clamp(li, 0.5, INFINITY));
    if (r) {
      CHECK(r->dtype == NN_FLOAT32);
      CHECK_VALUES(r, 0, 0.5, 0.5, 3, 9);
    }
    nn_release(r);
    CHECK_STATUS_FAILS(nn_clamp_(li, 0.5, INFINITY), "clamp_"); /* float32 into int64 */
  }
  nn_release(li);
}

static void test_promotion(void) {
  nn_tensor *i7 = OK(TENSOR(NN_INT64, 1, SZ(3), 7, -7, 6));
  nn_tensor *i2 = OK(TENSOR(NN_INT64, 1, SZ(3), 2, 2, 4));
  nn_tensor *bt = OK(TENSOR(NN_BOOL, 1, SZ(3), 1, 1, 0));
  nn_tensor *bf = OK(TENSOR(NN_BOOL, 1, SZ(3), 1, 0, 0));
  nn_tensor *f = OK(TENSOR(NN_FLOAT32, 1, SZ(3), 0.5, 0.5, 0.5));
  nn_tensor *dd = OK(TENSOR(NN_FLOAT64, 1, SZ(3), 0.25, 0.25, 0.25));
  if (!(i7 && i2 && bt && bf && f && dd)) goto done;
  struct { nn_binary_op op; nn_tensor *a, *b; nn_dtype dt; double want[3]; const char *what; } cases[] = {
      {NN_DIV, i7, i2, NN_FLOAT32, {3.5, -3.5, 1.5}, "int64 / int64"},
      {NN_ADD, i7, i2, NN_INT64, {9, -5, 10}, "int64 + int64"},
      {NN_MUL, i7, i2, NN_INT64, {14, -14, 24}, "int64 * int64"},
      {NN_SUB, i7, i2, NN_INT64, {5, -9, 2}, "int64 - int64"},
      {NN_POW, i2, i2, NN_INT64, {4, 4, 256}, "int64 ^ int64"},
      {NN_MAXIMUM, i7, i2, NN_INT64, {7, 2, 6}, "maximum int64"},
      {NN_ADD, bt, bf, NN_BOOL, {1, 1, 0}, "bool + bool"}, /* logical or, as PyTorch */
      {NN_MUL, bt, bf, NN_BOOL, {1, 0, 0}, "bool * bool"},
      {NN_DIV, bt, i2, NN_FLOAT32, {0.5, 0.5, 0}, "bool / int64"},
      {NN_ADD, bt, i7, NN_INT64, {8, -6, 6}, "bool + int64"},
      {NN_ADD, i7, f, NN_FLOAT32, {7.5, -6.5, 6.5}, "int64 + float32"},
      {NN_MUL, bt, f, NN_FLOAT32, {0.5, 0.5, 0}, "bool * float32"},
      {NN_ADD, f, dd, NN_FLOAT64, {0.75, 0.75, 0.75}, "float32 + float64"},
      {NN_SUB, i7, dd, NN_FLOAT64, {6.75, -7.25, 5.75}, "int64 - float64"},
      {NN_GT, i7, f, NN_BOOL, {1, 0, 1}, "int64 > float32"},
      {NN_EQ, bt, bf, NN_BOOL, {1, 0, 1}, "bool == bool"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    nn_tensor *r = nn_binary(cases[i].op, cases[i].a, cases[i].b);
    if (check_at(r != NULL, __FILE__, __LINE__, "%s failed: %s", cases[i].what, nn_error())) {
      check_at(r->dtype == cases[i].dt, __FILE__, __LINE__, "%s: dtype %s, expected %s",
               cases[i].what, nn_dtype_name(r->dtype), nn_dtype_name(cases[i].dt));
      check_values_at(r, cases[i].want, 3, 0, __FILE__, __LINE__, cases[i].what);
    }
    nn_release(r);
  }
  /* with a number: integers stay integers unless the number or the op is not */
  struct { nn_binary_op op; nn_tensor *a; double s; int first; nn_dtype dt; double want[3]; const char *what; } sc[] = {
      {NN_ADD, i7, 2, 0, NN_INT64, {9, -5, 8}, "int64 + 2"},
      {NN_SUB, i7, 2, 1, NN_INT64, {-5, 9, -4}, "2 - int64"},
      {NN_MUL, i7, 2.5, 0, NN_FLOAT32, {17.5, -17.5, 15}, "int64 * 2.5"},
      {NN_DIV, i7, 2, 0, NN_FLOAT32, {3.5, -3.5, 3}, "int64 / 2"},
      {NN_DIV, i2, 1, 1, NN_FLOAT32, {0.5, 0.5, 0.25}, "1 / int64"},
      {NN_ADD, bt, 1, 0, NN_INT64, {2, 2, 1}, "bool + 1"},
      {NN_LT, i7, 6.5, 0, NN_BOOL, {0, 1, 1}, "int64 < 6.5"},
  };
  for (size_t i = 0; i < sizeof sc / sizeof sc[0]; i++) {
    nn_tensor *r = nn_binary_scalar(sc[i].op, sc[i].a, sc[i].s, sc[i].first);
    if (check_at(r != NULL, __FILE__, __LINE__, "%s failed: %s", sc[i].what, nn_error())) {
      check_at(r->dtype == sc[i].dt, __FILE__, __LINE__, "%s: dtype %s, expected %s", sc[i].what,
               nn_dtype_name(r->dtype), nn_dtype_name(sc[i].dt));
      check_values_at(r, sc[i].want, 3, 0, __FILE__, __LINE__, sc[i].what);
    }
    nn_release(r);
  }
  /* in place cannot store a float result into an integer tensor */
  nn_tensor *c = OK(nn_clone(i7));
  if (c) {
    CHECK_STATUS_FAILS(nn_binary_(NN_DIV, c, i2), "div");
    CHECK_STATUS_FAILS(nn_binary_(NN_ADD, c, f), "add");
    CHECK_STATUS_FAILS(nn_binary_scalar_(NN_MUL, c, 0.5), "mul");
    CHECK_VALUES(c, 0, 7, -7, 6);
    CHECK_STATUS_OK(nn_binary_scalar_(NN_ADD, c, 3));
    CHECK_STATUS_OK(nn_binary_(NN_MUL, c, i2));
    CHECK(c->dtype == NN_INT64);
    CHECK_VALUES(c, 0, 20, -8, 36);
  }
  nn_release(c);
done:
  nn_release(i7), nn_release(i2), nn_release(bt), nn_release(bf), nn_release(f), nn_release(dd);
}

/* ---- autograd ------------------------------------------------------------ */
static void test_autograd(void) {
  for (int d = 0; d < 2; d++) {
    nn_dtype dt = d ? NN_FLOAT64 : NN_FLOAT32;
    nn_tensor *x = OK(TENSOR(dt, 1, SZ(3), 1, -2, 3));
    if (!x) continue;
    CHECK(!x->requires_grad);
    CHECK_STATUS_OK(nn_set_requires_grad(x, 1));
    CHECK(x->requires_grad && x->grad == NULL && x->grad_fn == NULL);
    nn_tensor *xx = OK(nn_binary(NN_MUL, x, x));
    nn_tensor *y = xx ? OK(nn_sum(xx, NN_ALL_DIMS, 0)) : NULL;
    if (y) {
      CHECK(y->requires_grad);
      CHECK(nn_grad_fn_name(y) && strcmp(nn_grad_fn_name(y), "SumBackward0") == 0);
      CHECK(nn_grad_fn_name(xx) && strcmp(nn_grad_fn_name(xx), "MulBackward0") == 0);
      CHECK(nn_grad_fn_name(x) == NULL);
      CHECK_VALUES(y, 0, 14);
      CHECK_STATUS_OK(nn_backward(y, NULL, 0));
      if (CHECK(x->grad != NULL)) {
        CHECK(x->grad->dtype == dt);
        CHECK_SHAPE(x->grad, 1, 3);
        CHECK_VALUES(x->grad, 0, 2, -4, 6);
      }
      /* the graph is gone: a second backward fails and says so */
      CHECK_STATUS_FAILS(nn_backward(y, NULL, 0), "freed");
      if (x->grad) CHECK_VALUES(x->grad, 0, 2, -4, 6);
    }
    nn_release(y), nn_release(xx);

    /* retain_graph keeps it: a second backward accumulates */
    nn_zero_grad(x);
    xx = OK(nn_binary(NN_MUL, x, x));
    y = xx ? OK(nn_sum(xx, NN_ALL_DIMS, 0)) : NULL;
    if (y) {
      CHECK_STATUS_OK(nn_backward(y, NULL, 1));
      CHECK_STATUS_OK(nn_backward(y, NULL, 0));
      if (x->grad) CHECK_VALUES(x->grad, 0, 4, -8, 12);
      CHECK_STATUS_FAILS(nn_backward(y, NULL, 1), "freed");
    }
    nn_release(y), nn_release(xx);

    /* a non-scalar needs its gradient */
    CHECK_STATUS_OK(nn_set_grad(x, NULL));
    xx = OK(nn_binary(NN_MUL, x, x));
    if (xx) {
      CHECK_STATUS_FAILS(nn_backward(xx, NULL, 0), "backward");
      CHECK(x->grad == NULL);
      nn_tensor *g = OK(TENSOR(dt, 1, SZ(3), 1, 10, 100));
      if (g) {
        CHECK_STATUS_OK(nn_backward(xx, g, 0));
        if (CHECK(x->grad != NULL)) CHECK_VALUES(x->grad, 0, 2, -40, 600);
        nn_tensor *g2 = OK(TENSOR(dt, 1, SZ(2), 1, 1));
        if (g2) CHECK_STATUS_FAILS(nn_backward(xx, g2, 0), "backward");
        nn_release(g2);
      }
      nn_release(g);
    }
    nn_release(xx);

    /* an in-place change to a saved tensor before backward fails */
    CHECK_STATUS_OK(nn_set_grad(x, NULL));
    nn_tensor *w = OK(TENSOR(dt, 1, SZ(3), 1, 2, 3));
    nn_tensor *xw = w ? OK(nn_binary(NN_MUL, x, w)) : NULL;
    y = xw ? OK(nn_sum(xw, NN_ALL_DIMS, 0)) : NULL;
    if (y) {
      CHECK_STATUS_OK(nn_binary_scalar_(NN_ADD, w, 1)); /* w needs no grad: allowed */
      CHECK_STATUS_FAILS(nn_backward(y, NULL, 0), "in-place");
      CHECK(x->grad == NULL);
    }
    nn_release(y), nn_release(xw), nn_release(w);
    /* ... and a change to the leaf itself, made under no_grad */
    xx = OK(nn_binary(NN_MUL, x, x));
    y = xx ? OK(nn_sum(xx, NN_ALL_DIMS, 0)) : NULL;
    if (y) {
      nn_set_grad_enabled(0);
      CHECK_STATUS_OK(nn_binary_scalar_(NN_MUL, x, 1));
      nn_set_grad_enabled(1);
      CHECK_STATUS_FAILS(nn_backward(y, NULL, 0), "in-place");
    }
    nn_release(y), nn_release(xx);
    /* the leaf refuses in-place ops while grad mode is on; results in a
       graph record them (test_autograd.c checks their gradients) */
    CHECK_STATUS_FAILS(nn_binary_scalar_(NN_ADD, x, 1), "leaf");
    CHECK_STATUS_FAILS(nn_unary_(NN_EXP, x), "leaf");
    CHECK_STATUS_FAILS(nn_clamp_(x, 0, 1), "leaf");
    xx = OK(nn_binary(NN_MUL, x, x));
    if (xx) {
      CHECK_STATUS_OK(nn_binary_scalar_(NN_ADD, xx, 1));
      nn_tensor *plain = OK(nn_ones(dt, 1, SZ(3)));
      if (plain) {
        CHECK_STATUS_OK(nn_binary_(NN_ADD, plain, xx));
        CHECK(plain->requires_grad && strcmp(nn_grad_fn_name(plain), "AddBackward0") == 0);
      }
      nn_release(plain);
    }
    nn_release(xx);

    /* a linear layer: db = N ones summed, dw = g^T x, dx = g w */
    nn_tensor *in = OK(TENSOR(dt, 2, SZ(2, 3), 1, 2, 3, 4, 5, 6));
    nn_tensor *wt = OK(TENSOR(dt, 2, SZ(2, 3), 1, 0, -1, 2, 1, 0));
    nn_tensor *b = OK(TENSOR(dt, 1, SZ(2), 0.5, -0.5));
    if (in && wt && b) {
      CHECK_STATUS_OK(nn_set_requires_grad(in, 1));
      CHECK_STATUS_OK(nn_set_requires_grad(wt, 1));
      CHECK_STATUS_OK(nn_set_requires_grad(b, 1));
      nn_tensor *out = OK(nn_linear(in, wt, b));
      nn_tensor *loss = out ? OK(nn_sum(out, NN_ALL_DIMS, 0)) : NULL;
      if (loss) {
        CHECK_VALUES(out, 0, -1.5, 3.5, -1.5, 12.5);
        CHECK_STATUS_OK(nn_backward(loss, NULL, 0));
        if (CHECK(b->grad && wt->grad && in->grad)) {
          CHECK_VALUES(b->grad, 0, 2, 2);
          CHECK_VALUES(wt->grad, 0, 5, 7, 9, 5, 7, 9);
          CHECK_VALUES(in->grad, 0, 3, 1, -1, 3, 1, -1);
        }
      }
      nn_release(loss), nn_release(out);
    }
    nn_release(in), nn_release(wt), nn_release(b);

    /* matmul through non-contiguous operands, both sides of the threshold:
       d sum(a b) / da = row sums of b, / db = column sums of a */
    static const int64_t mk[][3] = {{3, 4, 5}, {64, 70, 80}};
    for (int s = 0; s < 2; s++) {
      int64_t m = mk[s][0], k = mk[s][1], n = mk[s][2];
      nn_tensor *a = matrix(dt, m, k, L_TRANSPOSED), *bm = matrix(dt, k, n, L_NARROW_COLS);
      if (!a || !bm) {
        CHECK(0);
        nn_release(a), nn_release(bm);
        continue;
      }
      CHECK_STATUS_OK(nn_set_requires_grad(a, 1));
      CHECK_STATUS_OK(nn_set_requires_grad(bm, 1));
      nn_tensor *ab = OK(nn_matmul(a, bm));
      nn_tensor *l = ab ? OK(nn_sum(ab, NN_ALL_DIMS, 0)) : NULL;
      if (l && CHECK_STATUS_OK(nn_backward(l, NULL, 0)) && CHECK(a->grad && bm->grad)) {
        double tol = d ? 1e-13 : 1e-5;
        int ok = 1;
        for (int64_t i = 0; i < m && ok; i++)
          for (int64_t p = 0; p < k && ok; p++) {
            double want = 0;
            for (int64_t j = 0; j < n; j++) want += nn_get(bm, SZ(p, j));
            ok = near(nn_get(a->grad, SZ(i, p)), want, tol);
          }
        CHECKF(ok, "matmul %lldx%lldx%lld: grad of a is b's row sums", (long long)m, (long long)k,
               (long long)n);
        ok = 1;
        for (int64_t p = 0; p < k && ok; p++)
          for (int64_t j = 0; j < n && ok; j++) {
            double want = 0;
            for (int64_t i = 0; i < m; i++) want += nn_get(a, SZ(i, p));
            ok = near(nn_get(bm->grad, SZ(p, j)), want, tol);
          }
        CHECKF(ok, "matmul %lldx%lldx%lld: grad of b is a's column sums", (long long)m,
               (long long)k, (long long)n);
      }
      nn_release(l), nn_release(ab), nn_release(a), nn_release(bm);
    }

    /* backward of something that needs no grad fails */
    nn_tensor *plain = OK(nn_ones(dt, 0, NULL));
    if (plain) CHECK_STATUS_FAILS(nn_backward(plain, NULL, 0), "grad");
    nn_release(plain);
    nn_release(x);
  }
  nn_tensor *li = OK(nn_ones(NN_INT64, 1, SZ(2)));
  if (li) {
    CHECK_STATUS_FAILS(nn_set_requires_grad(li, 1), "floating");
    CHECK(!li->requires_grad);
  }
  nn_release(li);
  CHECK(nn_grad_enabled());
}

/* In place, a source that shares the target's storage: refused when an
   element is read at one position and written at another (PyTorch's
   "partial overlap"), allowed when the elements are the very same or when
   the views share no element. */
static void test_overlap(void) {
  nn_tensor *r = OK(TENSOR(NN_FLOAT32, 2, SZ(2, 2), 1, 2, 3, 4));
  nn_tensor *q = OK(TENSOR(NN_FLOAT32, 1, SZ(5), 1, 2, 3, 4, 5));
  nn_tensor *rt = r ? OK(nn_t(r)) : NULL, *row = r ? OK(nn_select(r, 0, 0)) : NULL;
  nn_tensor *head = q ? OK(nn_narrow(q, 0, 0, 3)) : NULL, *tail = q ? OK(nn_narrow(q, 0, 1, 3)) : NULL;
  if (rt && row && head && tail) {
    CHECK_STATUS_FAILS(nn_binary_(NN_ADD, r, rt), "overlap");
    CHECK_STATUS_FAILS(nn_binary_(NN_MUL, r, row), "overlap");
    CHECK_STATUS_FAILS(nn_copy_(r, rt), "copy_");
    CHECK_STATUS_FAILS(nn_copy_(tail, head), "overlap");
    CHECK_VALUES(r, 0, 1, 2, 3, 4); /* nothing was written */
    CHECK_VALUES(q, 0, 1, 2, 3, 4, 5);
    CHECK_STATUS_OK(nn_binary_(NN_ADD, r, r));
    CHECK_STATUS_OK(nn_copy_(r, r));
    CHECK_VALUES(r, 0, 2, 4, 6, 8);
    nn_tensor *col0 = OK(nn_select(r, 1, 0)), *col1 = OK(nn_select(r, 1, 1));
    if (col0 && col1) { /* columns interleave without sharing an element */
      CHECK_STATUS_OK(nn_binary_(NN_ADD, col0, col1));
      CHECK_VALUES(r, 0, 6, 4, 14, 8);
    }
    nn_release(col0), nn_release(col1);
    nn_tensor *last = OK(nn_narrow(q, 0, 3, 2)), *first = OK(nn_narrow(q, 0, 0, 2));
    if (last && first) {
      CHECK_STATUS_OK(nn_copy_(first, last));
      CHECK_VALUES(q, 0, 4, 5, 3, 4, 5);
    }
    nn_release(last), nn_release(first);
  }
  nn_release(rt), nn_release(row), nn_release(head), nn_release(tail);
  nn_release(r), nn_release(q);
}

/* Integers compute exactly, past 2^53 where a double would round; float32
   operands compare after rounding the other side to float32, as PyTorch. */
static void test_exact_dtypes(void) {
  nn_tensor *big = OK(nn_full(NN_INT64, 1, SZ(1), 9007199254740992.0)); /* 2^53 */
  if (big) {
    nn_tensor *r = OK(nn_binary_scalar(NN_ADD, big, 1, 0));
    nn_tensor *diff = r ? OK(nn_binary(NN_SUB, r, big)) : NULL;
    nn_tensor *gt = r ? OK(nn_binary(NN_GT, r, big)) : NULL;
    if (diff) CHECK_VALUES(diff, 0, 1);
    if (gt) CHECK_VALUES(gt, 0, 1);
    nn_release(r), nn_release(diff), nn_release(gt);
  }
  nn_release(big);
  nn_tensor *f = OK(TENSOR(NN_FLOAT32, 1, SZ(1), 0.1));
  nn_tensor *d0 = OK(nn_full(NN_FLOAT64, 0, NULL, 0.1));
  if (f && d0) {
    nn_tensor *a = OK(nn_binary_scalar(NN_GT, f, 0.1, 0)), *b = OK(nn_binary(NN_GT, f, d0));
    if (a) CHECK_VALUES(a, 0, 0);
    if (b) CHECK_VALUES(b, 0, 0);
    nn_release(a), nn_release(b);
  }
  nn_release(f), nn_release(d0);
}

/* A float32 2x2 max pool that records its backward, no indices asked,
   keeps a byte a window for it on the CPU (its tap), not an int64 index:
   the graph holds the output and an eighth of the indices' bytes. */
static void test_pool_keeps_taps(void) {
  int64_t size[4] = {4, 8, 32, 32};
  nn_tensor *x = nn_full(NN_FLOAT32, 4, size, 1.0);
  nn_pool2d_options o = {NN_POOL_MAX, {2, 2}, {2, 2}, {0, 0}, {1, 1}, 0, 0, 0, {0, 0}};
  if (!CHECK(x && nn_set_requires_grad(x, 1) == 0)) return;
  size_t before = nn_memory_in_use();
  nn_tensor *y = nn_pool2d(x, &o, NULL, 0);
  size_t windows = 4 * 8 * 16 * 16, held = nn_memory_in_use() - before;
  CHECKF(y && held >= windows * 5 && held < windows * 6, "a 2x2 pool's graph holds %zu bytes for %zu windows", held,
         windows);
  nn_release(y), nn_release(x);
}

int main(void) {
  size_t start = nn_memory_in_use();
  test_pool_keeps_taps();
  test_matmul_2d();
  test_matmul_vectors_batched();
  test_matmul_edges();
  test_linear();
  test_reductions();
  test_binary_ops();
  test_unary_ops();
  test_scalar_forms();
  test_clamp();
  test_promotion();
  test_overlap();
  test_exact_dtypes();
  test_autograd();
  CHECKF(nn_memory_in_use() == start, "storage in use at the end: %zu bytes, at the start %zu",
         nn_memory_in_use(), start);
  nn_memory_trim();
  return check_finish();
}

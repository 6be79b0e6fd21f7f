/* matmul.c: matrix products (matmul and the fused linear layer) with their
 * backwards. Tiny products run as plain loops: a 4x10 by 10x10 product
 * costs less than entering BLAS. The rest goes to the backend's gemm
 * (OpenBLAS on the CPU). */
#include "backend.h"

#include <cblas.h>
/* The copies below are a few floats long: a call to memcpy or memset,
   which gcc would put in their place, costs more than the loop. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("no-tree-loop-distribute-patterns")
#endif
#if defined(__SSE2__)
#include <emmintrin.h>
#endif
#include <stdio.h>

/* Below this many multiply-adds a product is done in place, without BLAS. */
#define SMALL_PRODUCT (48 * 48 * 48)

/* ---- threads: the engine runs no threads of its own; large products use
   OpenBLAS's pool, sized here, so nothing competes with it. ------------ */
/* Below this many multiply-adds a product runs on one thread even when the
   pool has more: OpenBLAS splits any product above 262,144 multiply-adds,
   and for the thin ones of a small network (128x512 by 512x10: 655,360)
   waking a second thread and joining it costs more than the work it takes
   (scripts/bench/mlp.lua prints each product's time on 1 and 2 threads). */
#define SERIAL_PRODUCT (4 * 1024 * 1024)

/* the pool's size as set here; 0 until nn_set_num_threads is first called
   (then OpenBLAS's own default stands, read when needed) */
static int pool_threads = 0;

void nn_set_num_threads(int n) {
  pool_threads = n < 1 ? 1 : n;
  openblas_set_num_threads(pool_threads);
}
int nn_get_num_threads(void) { return pool_threads ? pool_threads : openblas_get_num_threads(); }

/* ---- the CPU backend's gemm: row-major, BLAS conventions ------------- */
void nn_cpu_gemm(nn_dtype dtype, int trans_a, int trans_b, int64_t m, int64_t n, int64_t k,
                 double alpha, const void *a, int64_t lda, const void *b, int64_t ldb,
                 double beta, void *c, int64_t ldc) {
  enum CBLAS_TRANSPOSE ta = trans_a ? CblasTrans : CblasNoTrans;
  enum CBLAS_TRANSPOSE tb = trans_b ? CblasTrans : CblasNoTrans;
  int threads = nn_get_num_threads();
  int serial = threads > 1 && (double)m * (double)n * (double)k < SERIAL_PRODUCT;
  if (serial) openblas_set_num_threads(1); /* only lowers a counter: no thread starts or stops */
  if (dtype == NN_FLOAT32)
    cblas_sgemm(CblasRowMajor, ta, tb, (blasint)m, (blasint)n, (blasint)k, (float)alpha, a,
                (blasint)lda, b, (blasint)ldb, (float)beta, c, (blasint)ldc);
  else
    cblas_dgemm(CblasRowMajor, ta, tb, (blasint)m, (blasint)n, (blasint)k, alpha, a, (blasint)lda,
                b, (blasint)ldb, beta, c, (blasint)ldc);
  if (serial) openblas_set_num_threads(threads);
}

/* c = alpha a b + beta c with arbitrary strides, for tiny products. The
   i-k-j order keeps the innermost loop on c's contiguous rows. */
/* acc = the 4x4 block sum over p of pa[p][0..4) (x) pb[p][0..4), pa and pb
   packed (pb rows ldb apart). SSE2 is part of every x86-64 processor; other
   machines get the same sums in plain C. */
static void block_4x4(int64_t k, const float *pa, const float *pb, int64_t ldb, float acc[4][4]) {
#if defined(__SSE2__)
  __m128 c0 = _mm_setzero_ps(), c1 = _mm_setzero_ps(), c2 = _mm_setzero_ps(), c3 = _mm_setzero_ps();
  for (int64_t p = 0; p < k; p++) {
    __m128 bv = _mm_loadu_ps(pb + p * ldb);
    const float *ap = pa + p * 4;
    c0 = _mm_add_ps(c0, _mm_mul_ps(_mm_set1_ps(ap[0]), bv));
    c1 = _mm_add_ps(c1, _mm_mul_ps(_mm_set1_ps(ap[1]), bv));
    c2 = _mm_add_ps(c2, _mm_mul_ps(_mm_set1_ps(ap[2]), bv));
    c3 = _mm_add_ps(c3, _mm_mul_ps(_mm_set1_ps(ap[3]), bv));
  }
  _mm_storeu_ps(acc[0], c0);
  _mm_storeu_ps(acc[1], c1);
  _mm_storeu_ps(acc[2], c2);
  _mm_storeu_ps(acc[3], c3);
#else
  for (int r = 0; r < 4; r++)
    for (int j = 0; j < 4; j++) acc[r][j] = 0;
  for (int64_t p = 0; p < k; p++)
    for (int r = 0; r < 4; r++)
      for (int j = 0; j < 4; j++) acc[r][j] += pa[p * 4 + r] * pb[p * ldb + j];
#endif
}

/* For a product with few rows (a small batch), the four rows of a panel of
   c go in the lanes of one vector: a is packed as columns of four, b is
   read where it lies (any strides, no packing), one broadcast per term. */
static void few_rows_f32(int64_t m, int64_t n, int64_t k, float alpha, const float *a, int64_t a0,
                         int64_t a1, const float *b, int64_t b0, int64_t b1, float beta, float *c,
                         int64_t c0, float *pa) {
  for (int64_t i0 = 0; i0 < m; i0 += 4) {
    int64_t rows = m - i0 < 4 ? m - i0 : 4;
    for (int64_t p = 0; p < k; p++)
      for (int r = 0; r < 4; r++) pa[p * 4 + r] = r < rows ? a[(i0 + r) * a0 + p * a1] : 0.0f;
    for (int64_t j = 0; j < n; j++) {
      float col[4];
      const float *bj = b + j * b1;
#if defined(__SSE2__)
      __m128 acc = _mm_setzero_ps();
      for (int64_t p = 0; p < k; p++)
        acc = _mm_add_ps(acc, _mm_mul_ps(_mm_loadu_ps(pa + p * 4), _mm_set1_ps(bj[p * b0])));
      _mm_storeu_ps(col, acc);
#else
      col[0] = col[1] = col[2] = col[3] = 0;
      for (int64_t p = 0; p < k; p++)
        for (int r = 0; r < 4; r++) col[r] += pa[p * 4 + r] * bj[p * b0];
#endif
      for (int64_t r = 0; r < rows; r++) {
        float *cij = c + (i0 + r) * c0 + j;
        *cij = alpha == 1 && beta == 0 ? col[r]
             : alpha == 1 && beta == 1 ? *cij + col[r]
             : alpha * col[r] + (beta == 0 ? 0 : beta * *cij);
      }
    }
  }
}

/* c = alpha a b + beta c for tiny products, a and b with any strides.
   Both are packed first, b row-major with its width padded with zeros to a
   multiple of four, a in panels of four rows; then each 4x4 block of c is
   sixteen accumulators that stay in registers while the k terms stream
   past (the micro-kernel shape of BLIS and OpenBLAS, without their
   set-up cost). The packing moves k (n + 4) values, small beside the
   m n k multiply-adds. */
#define PACK_LIMIT (SMALL_PRODUCT / 8)
static void small_gemm_f32(int64_t m, int64_t n, int64_t k, float alpha, const float *a, int64_t a0,
                           int64_t a1, const float *b, int64_t b0, int64_t b1, float beta, float *c,
                           int64_t c0) {
  float pb[PACK_LIMIT], pa[PACK_LIMIT / 4];
  int64_t n4 = (n + 3) & ~(int64_t)3;
  if (k * n4 > PACK_LIMIT || 4 * k > PACK_LIMIT / 4) { /* long and thin: plain loops */
    for (int64_t i = 0; i < m; i++)
      for (int64_t j = 0; j < n; j++) {
        float acc = 0;
        for (int64_t p = 0; p < k; p++) acc += a[i * a0 + p * a1] * b[p * b0 + j * b1];
        c[i * c0 + j] = alpha * acc + (beta == 0 ? 0 : beta * c[i * c0 + j]);
      }
    return;
  }
  if (m <= 16) {
    few_rows_f32(m, n, k, alpha, a, a0, a1, b, b0, b1, beta, c, c0, pa);
    return;
  }
  for (int64_t p = 0; p < k; p++) {
    float *row = pb + p * n4;
    const float *src = b + p * b0;
    if (b1 == 1)
      for (int64_t j = 0; j < n; j++) row[j] = src[j];
    else
      for (int64_t j = 0; j < n; j++) row[j] = src[j * b1];
    switch (n4 - n) { /* the padding: at most three zeros */
    case 3: row[n + 2] = 0; /* fall through */
    case 2: row[n + 1] = 0; /* fall through */
    case 1: row[n] = 0; /* fall through */
    default: break;
    }
  }
  for (int64_t i0 = 0; i0 < m; i0 += 4) {
    int64_t rows = m - i0 < 4 ? m - i0 : 4;
    for (int64_t p = 0; p < k; p++)
      for (int r = 0; r < 4; r++) pa[p * 4 + r] = r < rows ? a[(i0 + r) * a0 + p * a1] : 0.0f;
    for (int64_t j0 = 0; j0 < n4; j0 += 4) {
      float acc[4][4];
      block_4x4(k, pa, pb + j0, n4, acc);
      int64_t cols = n - j0 < 4 ? n - j0 : 4;
      if (rows == 4 && cols == 4 && alpha == 1 && (beta == 0 || beta == 1)) {
        for (int r = 0; r < 4; r++) {
          float *crow = c + (i0 + r) * c0 + j0;
          for (int jj = 0; jj < 4; jj++) crow[jj] = beta == 0 ? acc[r][jj] : crow[jj] + acc[r][jj];
        }
        continue;
      }
      for (int64_t r = 0; r < rows; r++) {
        float *crow = c + (i0 + r) * c0 + j0;
        if (beta == 0 && alpha == 1)
          for (int64_t jj = 0; jj < cols; jj++) crow[jj] = acc[r][jj];
        else if (beta == 1 && alpha == 1)
          for (int64_t jj = 0; jj < cols; jj++) crow[jj] += acc[r][jj];
        else
          for (int64_t jj = 0; jj < cols; jj++)
            crow[jj] = alpha * acc[r][jj] + (beta == 0 ? 0 : beta * crow[jj]);
      }
    }
  }
}

static void small_gemm_f64(int64_t m, int64_t n, int64_t k, double alpha, const double *a,
                           int64_t a0, int64_t a1, const double *b, int64_t b0, int64_t b1,
                           double beta, double *c, int64_t c0) {
  for (int64_t i = 0; i < m; i++) {
    double *crow = c + i * c0;
    if (beta == 0) {
      for (int64_t j = 0; j < n; j++) crow[j] = 0;
    } else if (beta != 1) {
      for (int64_t j = 0; j < n; j++) crow[j] *= beta;
    }
    for (int64_t p = 0; p < k; p++) {
      double s = alpha * a[i * a0 + p * a1];
      const double *brow = b + p * b0;
      for (int64_t j = 0; j < n; j++) crow[j] += s * brow[j * b1];
    }
  }
}

/* How BLAS can read a 2-D view: row-major with leading dimension ld, or
   (flipped) as the transpose of a row-major matrix. 0 when it cannot. */
static int blas_layout(const nn_tensor *t, int *flip, int64_t *ld) {
  int64_t rows = t->size[0], cols = t->size[1], s0 = t->stride[0], s1 = t->stride[1];
  if ((s1 == 1 || cols == 1) && (rows == 1 || s0 >= (cols > 1 ? cols : 1))) {
    *flip = 0;
    *ld = rows == 1 ? (cols > 1 ? cols : 1) : s0;
    return 1;
  }
  if ((s0 == 1 || rows == 1) && (cols == 1 || s1 >= (rows > 1 ? rows : 1))) {
    *flip = 1;
    *ld = cols == 1 ? (rows > 1 ? rows : 1) : s1;
    return 1;
  }
  return 0;
}

int nn_gemm_tensors(int trans_a, int trans_b, double alpha, nn_tensor *a, nn_tensor *b,
                    double beta, nn_tensor *c) {
  int64_t m = c->size[0], n = c->size[1], k = trans_a ? a->size[0] : a->size[1];
  if (m == 0 || n == 0) return 0;
  if (k == 0) /* alpha * (an empty sum) = 0; beta == 0 overwrites whatever c held */
    return beta == 0 ? nn_fill_(c, 0) : nn_binary_scalar_(NN_MUL, c, beta);
  int64_t a0 = trans_a ? a->stride[1] : a->stride[0], a1 = trans_a ? a->stride[0] : a->stride[1];
  int64_t b0 = trans_b ? b->stride[1] : b->stride[0], b1 = trans_b ? b->stride[0] : b->stride[1];
  if (m * n * k <= SMALL_PRODUCT && c->device == NN_CPU) {
    if (c->dtype == NN_FLOAT32)
      small_gemm_f32(m, n, k, (float)alpha, nn_data(a), a0, a1, nn_data(b), b0, b1, (float)beta,
                     nn_data(c), c->stride[0]);
    else
      small_gemm_f64(m, n, k, alpha, nn_data(a), a0, a1, nn_data(b), b0, b1, beta, nn_data(c),
                     c->stride[0]);
    return 0;
  }
  nn_tensor *ac = nn_retain(a), *bc = nn_retain(b);
  int fa, fb;
  int64_t lda, ldb;
  if (!blas_layout(ac, &fa, &lda)) {
    nn_release(ac);
    ac = nn_clone(a);
    if (!ac || !blas_layout(ac, &fa, &lda)) goto fail;
  }
  if (!blas_layout(bc, &fb, &ldb)) {
    nn_release(bc);
    bc = nn_clone(b);
    if (!bc || !blas_layout(bc, &fb, &ldb)) goto fail;
  }
  nn_backend_for(c->device)->gemm(c->dtype, trans_a ^ fa, trans_b ^ fb, m, n, k, alpha, nn_data(ac),
                                  lda, nn_data(bc), ldb, beta, nn_data(c), c->stride[0]);
  nn_release(ac), nn_release(bc);
  return 0;
fail:
  nn_release(ac), nn_release(bc);
  return -1;
}

static int check_operands(const char *op, nn_tensor *a, nn_tensor *b) {
  if (a->device != b->device) {
    nn_error_set("%s: tensors are on different devices (%s and %s)", op, nn_device_name(a->device),
                 nn_device_name(b->device));
    return -1;
  }
  if (nn_check_cpu(op, a) < 0) return -1;
  if (!nn_dtype_is_floating(a->dtype) || a->dtype != b->dtype) {
    nn_error_set("%s: operands must both be float32 or both float64, got %s and %s", op,
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
  int64_t batch = a->size[0], size[3] = {batch, a->size[1], b->size[2]};
  nn_tensor *out = nn_empty_like_shape(a, a->dtype, 3, size);
  if (!out) return NULL;
  for (int64_t i = 0; i < batch; i++) {
    nn_tensor *ai = nn_select(a, 0, i), *bi = nn_select(b, 0, i), *oi = nn_select(out, 0, i);
    int st = ai && bi && oi ? nn_gemm_tensors(0, 0, 1, ai, bi, 0, oi) : -1;
    nn_release(ai), nn_release(bi), nn_release(oi);
    if (st < 0) {
      nn_release(out);
      return NULL;
    }
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
  nn_tensor *out = nn_empty_like_shape(a, a->dtype, 2, size);
  if (!out) return NULL;
  if (nn_gemm_tensors(0, 0, 1, a, b, 0, out) < 0) {
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
  if (a2 && b2) out = (a2->ndim == 2 && b2->ndim == 2) ? mm(a2, b2) : batched(a2, b2);
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

/* ---- linear: y = x w^T + b, x (N, in), w (out, in), b (out) ------------ */
static int linear_backward(nn_node *node, nn_tensor *g, nn_tensor **gi) {
  nn_tensor *x = node->saved[0], *w = node->saved[1];
  if (node->inputs[0]) { /* dx = g w : (N, out)(out, in) */
    int64_t size[2] = {g->size[0], w->size[1]};
    if (!(gi[0] = nn_empty_like_shape(g, g->dtype, 2, size))) return -1;
    if (nn_gemm_tensors(0, 0, 1, g, w, 0, gi[0]) < 0) return -1;
  }
  if (node->inputs[1]) { /* dw = g^T x : (out, N)(N, in), into w.grad when it exists */
    nn_tensor *into = node->accumulate_into[1];
    if (into) {
      if (nn_gemm_tensors(1, 0, 1, g, x, 1, into) < 0) return -1;
      nn_bump_version(into);
    } else {
      if (!(gi[1] = nn_empty_like(w))) return -1;
      if (nn_gemm_tensors(1, 0, 1, g, x, 0, gi[1]) < 0) return -1;
    }
  }
  if (node->inputs[2]) { /* db = sum of g's rows */
    if (g->dtype == NN_FLOAT32 && nn_is_contiguous(g)) {
      int64_t rows = g->size[0], cols = g->size[1];
      nn_tensor *into = node->accumulate_into[2];
      if (!into && !(gi[2] = nn_zeros(NN_FLOAT32, 1, &cols))) return -1;
      float *db = nn_data(into ? into : gi[2]);
      if (into) nn_bump_version(into);
      const float *pg = nn_data(g);
      for (int64_t i = 0; i < rows; i++)
        for (int64_t j = 0; j < cols; j++) db[j] += pg[i * cols + j];
    } else if (!(gi[2] = nn_sum(g, 0, 0))) {
      return -1;
    }
  }
  return 0;
}

static nn_tensor *linear_2d(nn_tensor *x, nn_tensor *w, nn_tensor *b) {
  int64_t n = x->size[0], out_features = w->size[0], size[2] = {n, out_features};
  nn_tensor *out = nn_empty_like_shape(x, x->dtype, 2, size);
  if (!out) return NULL;
  if (b) { /* each row starts as the bias, the product adds onto it */
    size_t row = (size_t)out_features * nn_dtype_size(x->dtype);
    nn_tensor *bc = nn_contiguous(b);
    if (!bc) goto fail;
    for (int64_t i = 0; i < n; i++) memcpy((char *)nn_data(out) + (size_t)i * row, nn_data(bc), row);
    nn_release(bc);
  }
  if (nn_gemm_tensors(0, 1, 1, x, w, b ? 1 : 0, out) < 0) goto fail;
  if (nn_needs_grad(x, w, b)) {
    nn_node *node = nn_node_attach(out, b ? "AddmmBackward0" : "MmBackward0", linear_backward, 3, x,
                                   w, b);
    if (!node) goto fail;
    nn_node_save(node, 0, x);
    nn_node_save(node, 1, w);
  }
  return out;
fail:
  nn_release(out);
  return NULL;
}

nn_tensor *nn_linear(nn_tensor *x, nn_tensor *w, nn_tensor *b) {
  if (check_operands("linear", x, w) < 0 || (b && check_operands("linear", x, b) < 0)) return NULL;
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
  /* Any leading dims are a batch: flatten to 2-D and back. */
  int64_t flat[2] = {-1, w->size[1]}, size[NN_MAX_DIMS];
  nn_tensor *x2 = nn_reshape(x, 2, flat), *y2 = x2 ? linear_2d(x2, w, b) : NULL, *y = NULL;
  if (y2) {
    for (int i = 0; i < x->ndim - 1; i++) size[i] = x->size[i];
    size[x->ndim - 1] = w->size[0];
    y = nn_reshape(y2, x->ndim, size);
  }
  nn_release(x2), nn_release(y2);
  return y;
}

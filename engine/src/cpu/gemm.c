/* cpu/gemm.c: batched matrix products. Tiny ones run as plain loops
 * (register-blocked for float32): a 4x10 by 10x10 product costs less than
 * entering BLAS. Where the processor fuses multiply-adds, float32 products
 * that are tiny or skinny (a batch of 1 to 8 rows against a layer's
 * weights, or a weight gradient summed over such a batch) run in the
 * kernels of cpu/gemm_kernels.h, which read the weights where they lie
 * (OpenBLAS's sgemm would copy them all on every call), and a single row
 * goes through sgemv. The rest go to OpenBLAS, whose thread pool is the
 * engine's only one (sized here), with a copy packed where BLAS cannot
 * read a layout. */
#include "cpu/cpu.h"
#include "cpu/vector.h"

#include <cblas.h>
#include <stdlib.h>
#include <string.h>
/* The copies below are a few floats long: a call to memcpy or memset,
   which gcc would put in their place, costs more than the loop. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("no-tree-loop-distribute-patterns")
#endif
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

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

void nn_cpu_set_num_threads(int n) {
  pool_threads = n < 1 ? 1 : n;
  openblas_set_num_threads(pool_threads);
}
int nn_cpu_get_num_threads(void) { return pool_threads ? pool_threads : openblas_get_num_threads(); }

/* ---- BLAS: row-major, BLAS conventions -------------------------------- */
static void blas_call(nn_dtype dtype, int trans_a, int trans_b, int64_t m, int64_t n, int64_t k,
                      double alpha, const void *a, int64_t lda, const void *b, int64_t ldb,
                      double beta, void *c, int64_t ldc) {
  enum CBLAS_TRANSPOSE ta = trans_a ? CblasTrans : CblasNoTrans;
  enum CBLAS_TRANSPOSE tb = trans_b ? CblasTrans : CblasNoTrans;
  if (dtype == NN_FLOAT32)
    cblas_sgemm(CblasRowMajor, ta, tb, (blasint)m, (blasint)n, (blasint)k, (float)alpha, a,
                (blasint)lda, b, (blasint)ldb, (float)beta, c, (blasint)ldc);
  else
    cblas_dgemm(CblasRowMajor, ta, tb, (blasint)m, (blasint)n, (blasint)k, alpha, a, (blasint)lda,
                b, (blasint)ldb, beta, c, (blasint)ldc);
}

/* A large product as pieces of c's rows or columns, each one call of
   OpenBLAS on one thread. OpenBLAS's own threaded driver blocks k and
   tiles c differently from its serial one (and its serial result for an
   element depends on the shape it is part of), so letting it thread gave
   other sums at two threads than at one (the CNN lesson's loss in the 6th
   digit). The cut depends on the shape alone, never on the thread count:
   at one thread the pieces run in turn, at more they are shared out, and
   every element is the same sum either way (threads_spec). The larger of
   m and n is cut, so that the operand each piece packs again is the
   smaller one. */
#define MAX_PRODUCT_PIECES 16
typedef struct {
  nn_dtype dtype;
  int trans_a, trans_b, by_rows;
  int64_t m, n, k, lda, ldb, ldc, count; /* count: pieces the cut dimension makes */
  double alpha, beta;
  const char *a, *b;
  char *c;
  const char *bias; /* n values each row of c starts as (beta then 1), or NULL */
  int zeros_first;  /* c reads as zeros not yet written: each piece writes its block's, then adds (beta 1) */
} product_pieces;

/* rows of c, ldc elements apart, each set to the cols values at bias
   (elements of es bytes): where a product with a bias starts, before it
   adds itself onto them (every path below that does not hand the bias to
   its kernel) */
static inline void bias_rows(char *c, int64_t rows, int64_t ldc, const char *bias, int64_t cols,
                             size_t es) {
  if (cols == 1) { /* one output (a binary classifier's): a move, where es is known, not a call */
    for (int64_t i = 0; i < rows; i++) memcpy(c + (size_t)(i * ldc) * es, bias, es);
    return;
  }
  for (int64_t i = 0; i < rows; i++) memcpy(c + (size_t)(i * ldc) * es, bias, (size_t)cols * es);
}

/* c's rows [row, row + rows), columns [col, col + cols) set to the bias's
   columns: by the piece that then adds its product onto them, on its own
   thread, so that no thread writes what another then reads back */
static void bias_block(const product_pieces *p, int64_t row, int64_t rows, int64_t col, int64_t cols) {
  size_t es = nn_element_size(p->dtype);
  bias_rows(p->c + (size_t)(row * p->ldc + col) * es, rows, p->ldc, p->bias + (size_t)col * es, cols, es);
}

/* Where piece i of the cut dimension starts: pieces of whole 64-byte lines
   of c (16 floats) as even as lines allow, the odd lines spread over them,
   so that the threads' shares differ by a line or so per piece: 784
   columns in four pieces of 208 (the last 160) left one thread 416 to the
   other's 368, now 192, 192, 192, 208. */
static int64_t cut_start(int64_t cut, int64_t count, int64_t i) {
  int64_t lines = (cut + 15) / 16;
  return i >= count ? cut : lines * i / count * 16;
}

static int64_t piece_start(const product_pieces *p, int64_t i) {
  return cut_start(p->by_rows ? p->m : p->n, p->count, i);
}

/* How many pieces a cut dimension of this length makes: pieces of 256 or
   more (each packs the other operand again, so more of them cost memory
   traffic: 10% on 2048 x 1024 x 1024 with pieces of 128); an even count,
   so that two threads share them evenly; none under a line of c. */
static int64_t pieces_of(int64_t cut) {
  int64_t count = cut / 256, lines = (cut + 15) / 16;
  count = count < 2 ? 2 : count > MAX_PRODUCT_PIECES ? MAX_PRODUCT_PIECES : count + (count & 1);
  return count > lines ? lines : count;
}

/* OpenBLAS on one thread whatever the pool's size, for the pieces that
   run on the pool's threads through cpu/parallel.c (its own threading
   would split a product by the thread count, and give other sums at two
   threads than at one). Setting the count only lowers a counter (no
   thread starts or stops). It must be running first: a lazily loaded
   OpenBLAS (cpu/openblas_loader.c) that is told 1 before it starts starts
   no thread, and the pieces would be handed to a thread that does not
   exist and waited for ever (a script whose first use of OpenBLAS was a
   large product after nn.set_num_threads(2)). Asking its count starts it.
   Returns the pool's size, for blas_threads_back. */
static int blas_one_thread(void) {
  int threads = nn_cpu_get_num_threads();
  if (threads > 1) {
    (void)openblas_get_num_threads();
    openblas_set_num_threads(1);
  }
  return threads;
}

static void blas_threads_back(int threads) {
  if (threads > 1) openblas_set_num_threads(threads);
}

/* c's rows [row, row + rows), columns [col, col + cols) set to zero: the
   zeros a product over zeros not yet written adds onto (beta 1), written
   by the piece that adds, on its own thread, while its block is in cache */
static void zero_block(const product_pieces *p, int64_t row, int64_t rows, int64_t col, int64_t cols) {
  size_t es = nn_element_size(p->dtype);
  for (int64_t i = 0; i < rows; i++) memset(p->c + (size_t)((row + i) * p->ldc + col) * es, 0, (size_t)cols * es);
}

static void run_product_pieces(const void *ctx, int64_t first, int64_t last) {
  const product_pieces *p = ctx;
  size_t es = nn_element_size(p->dtype);
  double beta = p->bias || p->zeros_first ? 1 : p->beta;
  for (int64_t piece = first; piece < last; piece++) {
    int64_t from = piece_start(p, piece), extent = piece_start(p, piece + 1) - from;
    if (extent <= 0) continue;
    if (p->by_rows) { /* rows of c: rows of op(a) */
      if (p->zeros_first) zero_block(p, from, extent, 0, p->n);
      if (p->bias) bias_block(p, from, extent, 0, p->n);
      blas_call(p->dtype, p->trans_a, p->trans_b, extent, p->n, p->k, p->alpha,
                p->a + (size_t)(p->trans_a ? from : from * p->lda) * es, p->lda, p->b, p->ldb, beta,
                p->c + (size_t)(from * p->ldc) * es, p->ldc);
    } else { /* columns of c: columns of op(b) */
      if (p->zeros_first) zero_block(p, 0, p->m, from, extent);
      if (p->bias) bias_block(p, 0, p->m, from, extent);
      blas_call(p->dtype, p->trans_a, p->trans_b, p->m, extent, p->k, p->alpha, p->a, p->lda,
                p->b + (size_t)(p->trans_b ? from * p->ldb : from) * es, p->ldb, beta,
                p->c + (size_t)from * es, p->ldc);
    }
  }
}

/* zeros_first: c reads as zeros not yet written (NN_GEMM_OVER_ZEROS):
   OpenBLAS's beta 0 may take another path than its beta 1 (sgemm_direct,
   other sums), so the zeros are written and the product added onto them */
static void blas_gemm(nn_dtype dtype, int trans_a, int trans_b, int64_t m, int64_t n, int64_t k,
                      double alpha, const void *a, int64_t lda, const void *b, int64_t ldb,
                      double beta, void *c, int64_t ldc, const void *bias, int zeros_first) {
  int threads = blas_one_thread();
  if ((double)m * (double)n * (double)k < SERIAL_PRODUCT) {
    product_pieces whole = {dtype, trans_a, trans_b, 1, m, n, k, lda, ldb, ldc, 1, alpha, beta,
                            a, b, c, bias, zeros_first};
    run_product_pieces(&whole, 0, 1);
  } else {
    int by_rows = m >= n;
    int64_t count = pieces_of(by_rows ? m : n);
    product_pieces p = {dtype, trans_a, trans_b, by_rows, m, n, k, lda, ldb, ldc, count, alpha, beta,
                        a, b, c, bias, zeros_first};
    nn_parallel_for(count, m * n * k / count, 1, run_product_pieces, &p);
  }
  blas_threads_back(threads);
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

/* One column j of a panel of up to four rows of c, from its sums col:
   c = col (the common forward), c += col (a gradient added into place),
   or the general form. */
static inline void store_column(float *cj, int64_t c0, int64_t rows, const float *col, int plain,
                                int adding, float alpha, float beta) {
  if (rows == 4 && plain) {
    cj[0] = col[0], cj[c0] = col[1], cj[2 * c0] = col[2], cj[3 * c0] = col[3];
  } else if (rows == 4 && adding) {
    cj[0] = cj[0] + col[0], cj[c0] = cj[c0] + col[1];
    cj[2 * c0] = cj[2 * c0] + col[2], cj[3 * c0] = cj[3 * c0] + col[3];
  } else if (plain) {
    for (int64_t r = 0; r < rows; r++) cj[r * c0] = col[r];
  } else if (adding) {
    for (int64_t r = 0; r < rows; r++) cj[r * c0] = cj[r * c0] + col[r];
  } else {
    for (int64_t r = 0; r < rows; r++) cj[r * c0] = alpha * col[r] + (beta == 0 ? 0 : beta * cj[r * c0]);
  }
}

/* For a product with few rows (a small batch), the four rows of a panel of
   c go in the lanes of one vector: a is packed as columns of four, b is
   read where it lies (any strides, no packing), one broadcast per term;
   two columns at a time share the loads of a. */
static void few_rows_f32(int64_t m, int64_t n, int64_t k, float alpha, const float *a, int64_t a0,
                         int64_t a1, const float *b, int64_t b0, int64_t b1, float beta, float *c,
                         int64_t c0, float *pa) {
  int plain = alpha == 1 && beta == 0, adding = alpha == 1 && beta == 1;
  for (int64_t i0 = 0; i0 < m; i0 += 4) {
    int64_t rows = m - i0 < 4 ? m - i0 : 4;
    if (rows == 4) {
      const float *a_row = a + i0 * a0;
      for (int64_t p = 0; p < k; p++) {
        const float *ap = a_row + p * a1;
        pa[p * 4] = ap[0], pa[p * 4 + 1] = ap[a0], pa[p * 4 + 2] = ap[2 * a0], pa[p * 4 + 3] = ap[3 * a0];
      }
    } else {
      for (int64_t p = 0; p < k; p++)
        for (int r = 0; r < 4; r++) pa[p * 4 + r] = r < rows ? a[(i0 + r) * a0 + p * a1] : 0.0f;
    }
    float *c_panel = c + i0 * c0;
    int64_t j = 0;
#if defined(__SSE2__)
    for (; j + 2 <= n; j += 2) {
      float col[8];
      const float *bj = b + j * b1, *bk = bj + b1;
      __m128 acc0 = _mm_setzero_ps(), acc1 = _mm_setzero_ps();
      for (int64_t p = 0; p < k; p++) {
        __m128 av = _mm_loadu_ps(pa + p * 4);
        acc0 = _mm_add_ps(acc0, _mm_mul_ps(av, _mm_set1_ps(bj[p * b0])));
        acc1 = _mm_add_ps(acc1, _mm_mul_ps(av, _mm_set1_ps(bk[p * b0])));
      }
      _mm_storeu_ps(col, acc0);
      _mm_storeu_ps(col + 4, acc1);
      store_column(c_panel + j, c0, rows, col, plain, adding, alpha, beta);
      store_column(c_panel + j + 1, c0, rows, col + 4, plain, adding, alpha, beta);
    }
#endif
    for (; j < n; j++) {
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
      store_column(c_panel + j, c0, rows, col, plain, adding, alpha, beta);
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
static __attribute__((noinline)) void small_gemm_f32(int64_t m, int64_t n, int64_t k, float alpha, const float *a, int64_t a0,
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

/* How BLAS can read a matrix of rows x cols with these strides: row-major
   with leading dimension ld (trans 0), or as the transpose of a row-major
   matrix (trans 1). 0 when it cannot. */
static int blas_layout(int64_t rows, int64_t cols, int64_t s0, int64_t s1, int *trans, int64_t *ld) {
  if ((s1 == 1 || cols == 1) && (rows == 1 || s0 >= (cols > 1 ? cols : 1))) {
    *trans = 0;
    *ld = rows == 1 ? (cols > 1 ? cols : 1) : s0;
    return 1;
  }
  if ((s0 == 1 || rows == 1) && (cols == 1 || s1 >= (rows > 1 ? rows : 1))) {
    *trans = 1;
    *ld = cols == 1 ? (rows > 1 ? rows : 1) : s1;
    return 1;
  }
  return 0;
}

/* A BLAS-readable view of a rows x cols matrix: itself, or a row-major
   copy packed into *scratch (malloc'd, the caller frees it). */
static const char *readable(const char *p, int64_t rows, int64_t cols, int64_t s0, int64_t s1,
                            size_t es, int *trans, int64_t *ld, char **scratch) {
  *scratch = NULL;
  if (blas_layout(rows, cols, s0, s1, trans, ld)) return p;
  char *packed = malloc((size_t)(rows * cols) * es);
  if (!packed) {
    nn_error_set("matmul: out of memory");
    return NULL;
  }
  for (int64_t i = 0; i < rows; i++)
    for (int64_t j = 0; j < cols; j++)
      memcpy(packed + (size_t)(i * cols + j) * es, p + (size_t)(i * s0 + j * s1) * es, es);
  *scratch = packed;
  *trans = 0;
  *ld = cols > 1 ? cols : 1;
  return packed;
}

/* c = beta c, rows of n elements row_stride apart (an empty product) */
static void scale_rows(nn_dtype dtype, char *c, int64_t m, int64_t n, int64_t row_stride,
                       double beta) {
  for (int64_t i = 0; i < m; i++) {
    if (dtype == NN_FLOAT32) {
      float *r = (float *)c + i * row_stride, fb = (float)beta;
      for (int64_t j = 0; j < n; j++) r[j] = beta == 0 ? 0.0f : r[j] * fb;
    } else {
      double *r = (double *)c + i * row_stride;
      for (int64_t j = 0; j < n; j++) r[j] = beta == 0 ? 0.0 : r[j] * beta;
    }
  }
}

/* ---- float32 through the kernels of a variant with FMA ----------------- */
/* At most this many multiply-adds go to the kernels whatever the shape;
   a product that needs b copied first (x w^T with many rows: w transposed
   for rows) only up to SMALL_PRODUCT. Measured with
   scripts/bench/gemm_paths.c --squares, one thread, against OpenBLAS 0.3.21
   (whose kernels on this Zen 4 are AVX2 ones), us per call:
                     rows (b in place)      x w^T (b copied)
                     4^3   16^3  128^3      16^3   48^3   64^3  128^3
     AVX-512 kernel  0.03  0.07  24         0.31   3.0    5.9   43
     AVX2 kernel     0.03  0.11  40         0.18   3.5    7.8   55
     sgemm           0.11  0.20  42-46      0.29   2.6-3.3 6.2-6.9 42-48
   (the AVX-512 rows kernel stays at half sgemm's time up to 256^3; the
   AVX2 one meets it from 96^3). */
#define FMA_SMALL_PRODUCT (128 * 128 * 128)
/* Products with at most this many rows (m: a batch through a layer) or
   terms (k: a weight gradient summed over a batch) go to the kernels at
   any size: sgemm's copy of the other operand costs more than the product. */
#define SKINNY 8

/* Whether fma_f32 takes a product of any size: skinny ones, and a matrix
   times one column (w v), which goes to sgemv like one row times a matrix
   (v^T w^T): sgemm would copy all of w on every call, where sgemv reads it
   once where it lies (4096 x 4096 by 4096 x 1: 32-44 ms, now 13-16 ms, on
   a loaded two-core machine). */
static int skinny(int64_t m, int64_t n, int64_t k) { return m <= SKINNY || k <= SKINNY || n == 1; }

/* A matrix-vector product y = alpha M v + beta y in pieces, each one call
   of sgemv: M rows x cols, row-major ld apart (pieces of y's elements: of
   M's rows), or (trans) the transpose of such a matrix S (pieces of S's
   rows, each summed into a partial y of its own, the partials then added
   in order: a piece of y's elements would be a strip of S's columns, read
   a kilobyte a row, twice as slow as S's rows read in order). */
typedef struct {
  int trans;
  int64_t rows, cols, ld, inc_v, inc_y, count; /* count: pieces of the cut dimension */
  float alpha, beta;
  const float *mat, *v;
  float *y;
  float *partials; /* trans: count partial y's of `rows` each */
} gemv_pieces;

static void run_gemv_pieces(const void *ctx, int64_t first, int64_t last) {
  const gemv_pieces *p = ctx;
  for (int64_t piece = first; piece < last; piece++) {
    int64_t from = cut_start(p->trans ? p->cols : p->rows, p->count, piece);
    int64_t extent = cut_start(p->trans ? p->cols : p->rows, p->count, piece + 1) - from;
    if (p->trans) { /* S's rows [from, from + extent) against v's elements there */
      float *part = p->partials + piece * p->rows;
      for (int64_t i = 0; i < p->rows; i++) part[i] = 0; /* sgemv's beta 0 would keep NaN */
      if (extent > 0)
        cblas_sgemv(CblasRowMajor, CblasTrans, (blasint)extent, (blasint)p->rows, 1.0f,
                    p->mat + from * p->ld, (blasint)p->ld, p->v + from * p->inc_v,
                    (blasint)p->inc_v, 0.0f, part, 1);
    } else if (extent > 0) {
      cblas_sgemv(CblasRowMajor, CblasNoTrans, (blasint)extent, (blasint)p->cols, p->alpha,
                  p->mat + from * p->ld, (blasint)p->ld, p->v, (blasint)p->inc_v, p->beta,
                  p->y + from * p->inc_y, (blasint)p->inc_y);
    }
  }
}

/* y = alpha (the partials added in order) + beta y */
static void gemv_partials_sum(const gemv_pieces *p) {
  for (int64_t i = 0; i < p->rows; i++) {
    float sum = p->partials[i];
    for (int64_t piece = 1; piece < p->count; piece++) sum += p->partials[piece * p->rows + i];
    float *yi = p->y + i * p->inc_y;
    *yi = p->beta == 0 ? p->alpha * sum : p->alpha * sum + p->beta * *yi;
  }
}

/* c = alpha a b + beta c through f's kernels, or through sgemv for one
   row; 0 when neither suits the shape or layout (then BLAS takes it). */
/* y = alpha M v + beta y through sgemv, M rows x cols with strides s0,
   s1 (either contiguous), v and y spaced inc_v and inc_y; 0 when BLAS
   cannot read M. */
static int gemv_f32(int64_t rows, int64_t cols, float alpha, const float *mat, int64_t s0,
                    int64_t s1, const float *v, int64_t inc_v, float beta, float *y,
                    int64_t inc_y) {
  int trans, lda_ok;
  int64_t ld;
  if (rows > INT32_MAX || cols > INT32_MAX || !blas_layout(rows, cols, s0, s1, &trans, &ld)) return 0;
  lda_ok = ld <= INT32_MAX;
  if (cols == 1) inc_v = 1; /* strides of a dimension of one element are never used */
  if (rows == 1) inc_y = 1;
  if (!lda_ok || inc_v <= 0 || inc_v > INT32_MAX || inc_y <= 0 || inc_y > INT32_MAX) return 0;
  if (beta == 0) /* must overwrite NaN, which sgemv's scaling by 0 would keep */
    for (int64_t i = 0; i < rows; i++) y[i * inc_y] = 0;
  /* Cut as a large product is (blas_gemm): the cut set by the shape alone,
     each piece one call of OpenBLAS on one thread, so that every element
     is the same sum at any thread count. Left to thread itself,
     OpenBLAS's sgemv splits by its thread count, and the transposed one
     (g w: the input gradient of a batch of one) gave other sums in some
     elements at two threads than at one. The transposed one is cut by S's
     rows, about 512 a piece, at most 8 pieces (partials of at most 2 MB);
     a small product, or a long y, is one piece. */
  gemv_pieces p = {trans, rows, cols, ld, inc_v, inc_y, 1, alpha, beta, mat, v, y, NULL};
  int threads = blas_one_thread();
  int64_t count = 1;
  if ((double)rows * (double)cols >= SERIAL_PRODUCT) {
    count = trans ? cols / 512 + (cols / 512 & 1) : pieces_of(rows);
    if (trans && count > 8) count = 8;
    if (trans && count * rows > 512 * 1024) count = 1;
  }
  if (count < 2) {
    if (trans)
      cblas_sgemv(CblasRowMajor, CblasTrans, (blasint)cols, (blasint)rows, alpha, mat, (blasint)ld,
                  v, (blasint)inc_v, beta, y, (blasint)inc_y);
    else
      run_gemv_pieces(&p, 0, 1);
  } else if (!trans) {
    p.count = count;
    nn_parallel_for(count, rows * cols / count, 1, run_gemv_pieces, &p);
  } else {
    p.count = count;
    p.partials = malloc(sizeof(float) * (size_t)(count * rows));
    if (!p.partials) {
      blas_threads_back(threads);
      return 0; /* BLAS's sgemm takes it */
    }
    nn_parallel_for(count, rows * cols / count, 1, run_gemv_pieces, &p);
    gemv_partials_sum(&p);
    free(p.partials);
  }
  blas_threads_back(threads);
  return 1;
}

/* One call of a kernel of f (dots, or rows), which a large skinny product
   splits by columns of c over the pool's threads (sgemm would split it
   too: at 2 threads a step must not lose the second core by coming here). */
typedef struct {
  const nn_cpu_gemm_f32 *f;
  int dots;
  int64_t m, n, k, a0, a1, b0, b1, c0;
  float alpha, beta;
  const float *a, *b;
  float *c;
} kernel_call;

static void run_columns(const void *ctx, int64_t first, int64_t last) {
  const kernel_call *k = ctx;
  if (k->dots)
    k->f->dots(k->m, last - first, k->k, k->alpha, k->a, k->a0, k->b + first * k->b1, k->b1,
               k->beta, k->c + first, k->c0);
  else
    k->f->rows(k->m, last - first, k->k, k->alpha, k->a, k->a0, k->a1, k->b + first, k->b0,
               k->beta, k->c + first, k->c0);
}

static void run_kernel(const kernel_call *k) {
  /* below SERIAL_PRODUCT the pool is not asked (asking loads OpenBLAS,
     which products of this size never need); pieces of whole 64-byte lines
     of c's rows, so no two threads share one */
  if ((double)k->m * (double)k->n * (double)k->k < SERIAL_PRODUCT || k->n < 128) {
    run_columns(k, 0, k->n);
    return;
  }
  nn_parallel_for(k->n, k->m * k->k, 16, run_columns, k);
}

/* c = alpha a b + beta c through f->rows on a copy of b made row-major.
   Its own function, kept out of line: the copy's buffer, tens of
   kilobytes of stack, would otherwise be probed page by page at every
   entry of fma_f32, whichever way a product goes. */
static __attribute__((noinline)) int rows_of_copy(const nn_cpu_gemm_f32 *f, int64_t m, int64_t n,
                                                  int64_t k, float alpha, const float *a,
                                                  int64_t a0, int64_t a1, const float *b,
                                                  int64_t b0, int64_t b1, float beta, float *c,
                                                  int64_t c0) {
  float stack[PACK_LIMIT], *pb = k * n <= PACK_LIMIT ? stack : malloc(sizeof(float) * (size_t)(k * n));
  if (!pb) return 0; /* BLAS takes it, needing no copy */
  if (b0 == 1) /* w's rows, read in order, become pb's columns */
    for (int64_t j = 0; j < n; j++)
      for (int64_t p = 0; p < k; p++) pb[p * n + j] = b[j * b1 + p];
  else
    for (int64_t p = 0; p < k; p++)
      for (int64_t j = 0; j < n; j++) pb[p * n + j] = b[p * b0 + j * b1];
  f->rows(m, n, k, alpha, a, a0, a1, pb, n, beta, c, c0);
  if (pb != stack) free(pb);
  return 1;
}

/* Whether a small x w^T (a's rows and b's columns contiguous) goes to the
   dots kernel: few rows and long sums; or few outputs and long sums where
   BLAS would take it (see fma_f32). */
static inline int dots_suit(int64_t m, int64_t n, int64_t k) {
  return 8 * m <= k || (n <= 16 && k >= 256 && (double)m * (double)n * (double)k > SMALL_PRODUCT);
}

/* The kernel of f that fma_f32 gives a small product (m n k at most
   FMA_SMALL_PRODUCT, k > 0: one thread), by the same tests in its order;
   SMALL_OTHER where it copies b for rows first or leaves it to BLAS. */
typedef enum { SMALL_OTHER, SMALL_ROWS, SMALL_DOTS, SMALL_COLUMNS } small_kernel;

/* inlined: out of line it cost a tiny layer's forward 40 instructions a call (callgrind, XOR) */
static inline __attribute__((always_inline)) small_kernel
small_kernel_of(const nn_cpu_gemm_f32 *f, int64_t m, int64_t n, int64_t k, int64_t a1, int64_t b0,
                int64_t b1) {
  int b_rows = b1 == 1 || n == 1, a_rows = a1 == 1 || k == 1, b_columns = b0 == 1 || k == 1;
  if (b_rows) return SMALL_ROWS;
  if (a_rows && b_columns && dots_suit(m, n, k)) return SMALL_DOTS;
  if ((double)m * (double)n * (double)k > SMALL_PRODUCT) return SMALL_OTHER;
  if (b_columns && m <= f->columns_rows && k <= f->columns_terms) return SMALL_COLUMNS;
  return SMALL_OTHER;
}

/* Whether fma_f32 takes this product to f->columns: gemm_one then hands
   it the bias too, instead of copying the bias into c's rows first. */
static int takes_columns(const nn_cpu_gemm_f32 *f, int64_t m, int64_t n, int64_t k, int64_t a1,
                         int64_t b0, int64_t b1) {
  return f && k > 0 && small_kernel_of(f, m, n, k, a1, b0, b1) == SMALL_COLUMNS;
}

static int fma_f32(const nn_cpu_gemm_f32 *f, int64_t m, int64_t n, int64_t k, float alpha,
                   const float *a, int64_t a0, int64_t a1, const float *b, int64_t b0, int64_t b1,
                   float beta, float *c, int64_t c0) {
  int small = (double)m * (double)n * (double)k <= FMA_SMALL_PRODUCT;
  if (!small && !skinny(m, n, k)) return 0;
  /* a stride along a dimension of one element is never used */
  int b_rows = b1 == 1 || n == 1, a_rows = a1 == 1 || k == 1, b_columns = b0 == 1 || k == 1;
  if ((m == 1 || n == 1) && !small)
    return m == 1 ? gemv_f32(n, k, alpha, b, b1, b0, a, a1, beta, c, 1)
                  : gemv_f32(m, k, alpha, a, a0, a1, b, b0, beta, c, c0);
  kernel_call call = {f, 0, m, n, k, a0, a1, b0, b1, c0, alpha, beta, a, b, c};
  if (b_rows) {
    run_kernel(&call);
    return 1;
  }
  /* x w^T: dots reads w in place but sums each of c's m n elements across
     its lanes at the end (about ten instructions); rows wants a copy of w
     transposed first (k n moves). Few rows and long sums: dots. So do few
     outputs and long sums (a classifier's last layer): sgemm copies all of
     x for the few columns it makes of each row, where dots reads x once
     in place (128x512 by 512x10, the Fashion lesson's second layer: 72-80
     us through sgemm, 21-34 us in dots, one thread; with sums of 128 terms
     or fewer, dots loses). */
  if (a_rows && b_columns && (!small || dots_suit(m, n, k))) {
    call.dots = 1;
    run_kernel(&call);
    return 1;
  }
  if ((double)m * (double)n * (double)k > SMALL_PRODUCT) return 0;
  if (b_columns && m <= f->columns_rows && k <= f->columns_terms) {
    f->columns(m, n, k, alpha, a, a0, a1, b, b1, beta, c, c0, NULL);
    return 1;
  }
  return rows_of_copy(f, m, n, k, alpha, a, a0, a1, b, b0, b1, beta, c, c0);
}

static int gemm_one(const nn_gemm_args *g, const nn_cpu_gemm_f32 *fast, const char *a,
                    const char *b, char *c) {
  int64_t m = g->m, n = g->n, k = g->k, c0 = g->c.row_stride;
  int64_t a0 = g->a.row_stride, a1 = g->a.col_stride, b0 = g->b.row_stride, b1 = g->b.col_stride;
  size_t es = nn_element_size(g->dtype);
  double beta = g->beta;
  if (g->bias && g->dtype == NN_FLOAT32 && takes_columns(fast, m, n, k, a1, b0, b1)) {
    /* a small batch through a layer: the kernel reads the bias itself */
    fast->columns(m, n, k, (float)g->alpha, (const float *)a, a0, a1, (const float *)b, b1, 1.0f,
                  (float *)c, c0, (const float *)g->bias);
    return 0;
  }
  /* A product that blas_gemm cuts into pieces (large, and not one for the
     kernels, which fma_f32 declines at once for these shapes) gets the
     bias there, each piece's block set by the thread that adds onto it;
     any other starts from rows set to the bias here. */
  double product = (double)m * (double)n * (double)k;
  const void *piece_bias = g->bias && k > 0 && product >= SERIAL_PRODUCT &&
                           (!fast || g->dtype != NN_FLOAT32 || !skinny(m, n, k))
                         ? g->bias : NULL;
  if (g->bias && !piece_bias) { /* each row starts as the bias, the product adds onto it */
    bias_rows(c, m, c0, g->bias, n, es);
    beta = 1;
  }
  /* Over zeros not yet written, the loops below (kernels, sgemv, the tiny
     products) write c = a b with beta 0: bit for bit the zeros plus the
     product, as their sums start from +0 and never come out -0 (alpha a b
     may: alpha < 0 times a zero sum; such a product gets its zeros written
     here). BLAS gets the zeros written first (blas_gemm). */
  int zeros_first = nn_gemm_over_zeros(g->beta) && !g->bias;
  if (zeros_first && g->alpha != 1) {
    scale_rows(g->dtype, c, m, n, c0, 0);
    zeros_first = 0;
    beta = 1;
  } else if (zeros_first) {
    beta = 0;
  }
  if (k == 0) { /* alpha * (an empty sum) = 0; beta == 0 overwrites whatever c held */
    scale_rows(g->dtype, c, m, n, c0, beta);
    return 0;
  }
  if (fast && g->dtype == NN_FLOAT32 &&
      fma_f32(fast, m, n, k, (float)g->alpha, (const float *)a, a0, a1, (const float *)b, b0, b1,
              (float)beta, (float *)c, c0))
    return 0;
  if (m * n * k <= SMALL_PRODUCT) {
    if (g->dtype == NN_FLOAT32)
      small_gemm_f32(m, n, k, (float)g->alpha, (const float *)a, a0, a1, (const float *)b, b0, b1,
                     (float)beta, (float *)c, c0);
    else
      small_gemm_f64(m, n, k, g->alpha, (const double *)a, a0, a1, (const double *)b, b0, b1, beta,
                     (double *)c, c0);
    return 0;
  }
  int ta, tb;
  int64_t lda, ldb;
  char *sa, *sb;
  const char *pa = readable(a, m, k, a0, a1, es, &ta, &lda, &sa);
  const char *pb = pa ? readable(b, k, n, b0, b1, es, &tb, &ldb, &sb) : NULL;
  if (pb) blas_gemm(g->dtype, ta, tb, m, n, k, g->alpha, pa, lda, pb, ldb, beta, c, c0, piece_bias, zeros_first);
  free(sa);
  if (pa) free(sb);
  return pb ? 0 : -1;
}

int nn_cpu_gemm_variant(const nn_gemm_args *g, const nn_cpu_vector *v) {
  if (g->m == 0 || g->n == 0) return 0;
  const nn_cpu_gemm_f32 *fast = v->gemm;
  if (g->batch == 1) return gemm_one(g, fast, g->a.data, g->b.data, g->c.data);
  size_t es = nn_element_size(g->dtype);
  for (int64_t i = 0; i < g->batch; i++) {
    if (gemm_one(g, fast, g->a.data + (size_t)(i * g->a.batch_stride) * es,
                 g->b.data + (size_t)(i * g->b.batch_stride) * es,
                 g->c.data + (size_t)(i * g->c.batch_stride) * es) < 0)
      return -1;
  }
  return 0;
}

int nn_cpu_gemm(const nn_gemm_args *g) { return nn_cpu_gemm_variant(g, nn_cpu_vector_best()); }

/* ---- a small product prepared for a plan's replay ----------------------
   What gemm_one does for a float32 product small enough for one thread
   in the kernels (rows, dots or columns, with the bias as gemm_one gives
   it), the tests made once: a replay calls the kernel itself. */
/* out of line: inlined, its loop's registers were saved and restored at
   every call of the kernels below, bias or none */
static __attribute__((noinline)) void direct_bias_rows(const nn_gemm_direct *d) {
  bias_rows((char *)d->c, d->m, d->c0, (const char *)d->bias, d->n, sizeof(float));
}

static void direct_rows(const nn_gemm_direct *d) {
  const nn_cpu_gemm_f32 *f = d->kernels;
  if (d->bias_rows) direct_bias_rows(d);
  f->rows(d->m, d->n, d->k, d->alpha, d->a, d->a0, d->a1, d->b, d->b0, d->beta, d->c, d->c0);
}

static void direct_dots(const nn_gemm_direct *d) {
  const nn_cpu_gemm_f32 *f = d->kernels;
  if (d->bias_rows) direct_bias_rows(d);
  f->dots(d->m, d->n, d->k, d->alpha, d->a, d->a0, d->b, d->b1, d->beta, d->c, d->c0);
}

static void direct_columns(const nn_gemm_direct *d) {
  const nn_cpu_gemm_f32 *f = d->kernels;
  if (d->bias_rows) direct_bias_rows(d);
  f->columns(d->m, d->n, d->k, d->alpha, d->a, d->a0, d->a1, d->b, d->b1, d->beta, d->c, d->c0,
             d->bias_rows ? NULL : d->bias);
}

int nn_cpu_gemm_prepare(const nn_gemm_args *g, nn_gemm_direct *d) {
  const nn_cpu_gemm_f32 *f = nn_cpu_vector_best()->gemm;
  int64_t m = g->m, n = g->n, k = g->k;
  if (!f || g->dtype != NN_FLOAT32 || g->batch != 1 || m <= 0 || n <= 0 || k <= 0 ||
      (double)m * (double)n * (double)k > FMA_SMALL_PRODUCT)
    return 0;
  small_kernel kernel = small_kernel_of(f, m, n, k, g->a.col_stride, g->b.row_stride, g->b.col_stride);
  if (kernel == SMALL_OTHER) return 0;
  memset(d, 0, sizeof *d);
  d->run = kernel == SMALL_ROWS ? direct_rows : kernel == SMALL_DOTS ? direct_dots : direct_columns;
  d->kernels = f;
  d->m = m, d->n = n, d->k = k;
  d->a0 = g->a.row_stride, d->a1 = g->a.col_stride, d->b0 = g->b.row_stride, d->b1 = g->b.col_stride;
  d->c0 = g->c.row_stride;
  d->alpha = (float)g->alpha;
  /* with a bias: the columns kernel reads it, the others add onto rows set to it (gemm_one) */
  d->beta = g->bias ? 1.0f : (float)g->beta;
  d->a = (const float *)g->a.data, d->b = (const float *)g->b.data, d->c = (float *)g->c.data;
  d->bias = (const float *)g->bias;
  d->bias_rows = g->bias && kernel != SMALL_COLUMNS;
  return 1;
}

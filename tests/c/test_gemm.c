/* test_gemm.c: the CPU backend's float32 products through each variant
 * of cpu/vector.h (baseline, AVX2 and AVX-512 with FMA: those built and
 * run by this processor), held to the float64 product: every layout the
 * fronts hand over (a, b, both transposed, neither readable by BLAS), the
 * tiny sizes with every remainder of a vector and of a block of rows,
 * the skinny ones (1 to 8 rows, or 1 to 8 terms, against a large
 * operand: the kernels and sgemv; split over two threads), sizes where OpenBLAS takes over, empty
 * ones, and c = alpha a b + beta c for the forms the engine uses (c = ab,
 * c += ab, a bias, the general one, beta 0 over NaN). The padding around
 * c must stay untouched. */
#include "check.h"
#include "cpu/cpu.h"
#include "cpu/vector.h"

#include <stdint.h>

/* values in [-1, 1), a few exact zeros */
static float value(uint32_t *seed) {
  *seed = *seed * 1664525u + 1013904223u;
  if ((*seed >> 7) % 17 == 0) return 0.0f;
  return (float)(*seed >> 8) / 8388608.0f - 1.0f;
}

/* Strides (in elements) of a rows x cols matrix laid out as `how` (0:
   row-major, 1: its transpose stored row-major, 2: neither, strides
   2 cols + 3 and 2), and the elements its storage needs. */
static int64_t strides(int how, int64_t rows, int64_t cols, int64_t *s0, int64_t *s1) {
  if (how == 0) *s0 = cols, *s1 = 1;
  else if (how == 1) *s0 = 1, *s1 = rows;
  else *s1 = 2, *s0 = 2 * cols + 3;
  return (rows ? rows - 1 : 0) * *s0 + (cols ? cols - 1 : 0) * *s1 + 1;
}

enum { FORM_WRITE, FORM_ADD, FORM_SCALE, FORM_BIAS, FORM_NAN };
static const char *const form_names[] = {"c = ab", "c += ab", "c = 0.5 ab - 2 c", "c = bias + ab",
                                         "c = ab over NaN"};

static int64_t products_checked;

/* One product through variant v; returns whether every element is within
   the bound of the float64 product. */
static int one(const nn_cpu_vector *v, int64_t batch, int64_t m, int64_t n, int64_t k, int la,
               int lb, int form) {
  int64_t a0, a1, b0, b1, c0 = n + 3;
  int64_t a_size = strides(la, m, k, &a0, &a1), b_size = strides(lb, k, n, &b0, &b1);
  int64_t c_size = m * c0 + 1;
  float *a = malloc(sizeof(float) * (size_t)(a_size * batch + 1));
  float *b = malloc(sizeof(float) * (size_t)(b_size * batch + 1));
  float *c = malloc(sizeof(float) * (size_t)(c_size * batch + 1));
  float *c_before = malloc(sizeof(float) * (size_t)(c_size * batch + 1));
  float *bias = malloc(sizeof(float) * (size_t)(n + 1));
  if (!a || !b || !c || !c_before || !bias) {
    free(a), free(b), free(c), free(c_before), free(bias);
    return CHECK(!"out of memory");
  }
  uint32_t seed = (uint32_t)(m * 131 + n * 17 + k * 7 + la * 3 + lb + form * 11);
  for (int64_t i = 0; i < a_size * batch; i++) a[i] = value(&seed);
  for (int64_t i = 0; i < b_size * batch; i++) b[i] = value(&seed);
  for (int64_t i = 0; i < c_size * batch; i++) c[i] = form == FORM_NAN ? NAN : value(&seed);
  for (int64_t j = 0; j < n; j++) bias[j] = value(&seed);
  memcpy(c_before, c, sizeof(float) * (size_t)(c_size * batch));
  double alpha = form == FORM_SCALE ? 0.5 : 1, beta = form == FORM_ADD ? 1 : form == FORM_SCALE ? -2 : 0;
  nn_gemm_args g = {.dtype = NN_FLOAT32, .batch = batch, .m = m, .n = n, .k = k,
                    .alpha = alpha, .beta = beta,
                    .a = {(char *)a, a_size, a0, a1}, .b = {(char *)b, b_size, b0, b1},
                    .c = {(char *)c, c_size, c0, 1}, .bias = form == FORM_BIAS ? (char *)bias : NULL};
  int ok = CHECKF(nn_cpu_gemm_variant(&g, v) == 0, "%s: failed: %s", v->name, nn_error());
  for (int64_t s = 0; ok && s < batch; s++) {
    const float *as = a + s * a_size, *bs = b + s * b_size;
    const float *cs = c + s * c_size, *old = c_before + s * c_size;
    for (int64_t i = 0; i < m && ok; i++) {
      for (int64_t j = 0; j < n; j++) {
        double sum = 0, size = 0;
        for (int64_t p = 0; p < k; p++) {
          double t = (double)as[i * a0 + p * a1] * bs[p * b0 + j * b1];
          sum += t, size += fabs(t);
        }
        double start = form == FORM_BIAS ? bias[j] : beta == 0 ? 0 : beta * old[i * c0 + j];
        double want = alpha * sum + start;
        size = fabs(alpha) * size + fabs(start);
        /* a sum of k + 2 rounded terms, each rounding at most 2^-24 of
           the running magnitude */
        double bound = (double)(k + 3) * 1.2e-7 * size + 1e-30;
        double err = fabs(cs[i * c0 + j] - want);
        if (!(err <= bound)) {
          ok = CHECKF(0, "%s: batch %lld, %lldx%lld by %lldx%lld, layouts %d %d, %s: c[%lld][%lld] = %.9g, want %.9g",
                      v->name, (long long)batch, (long long)m, (long long)k, (long long)k,
                      (long long)n, la, lb, form_names[form], (long long)i, (long long)j,
                      (double)cs[i * c0 + j], want);
          break;
        }
      }
      for (int64_t j = n; j < c0 && ok && i * c0 + j < c_size; j++) /* the padding */
        if (memcmp(&cs[i * c0 + j], &old[i * c0 + j], sizeof(float)) != 0)
          ok = CHECKF(0, "%s: %lldx%lld by %lldx%lld wrote past row %lld", v->name, (long long)m,
                      (long long)k, (long long)k, (long long)n, (long long)i);
    }
  }
  if (ok) CHECK(1);
  products_checked++;
  free(a), free(b), free(c), free(c_before), free(bias);
  return ok;
}

/* every layout of a and b, every form */
static void all_ways(const nn_cpu_vector *v, int64_t batch, int64_t m, int64_t n, int64_t k) {
  for (int la = 0; la < 3; la++)
    for (int lb = 0; lb < 3; lb++)
      for (int form = 0; form < 5; form++)
        if (!one(v, batch, m, n, k, la, lb, form)) return;
}

/* every layout, the forms that reach sgemv's own handling of beta */
static void every_layout(const nn_cpu_vector *v, int64_t m, int64_t n, int64_t k) {
  for (int la = 0; la < 3; la++)
    for (int lb = 0; lb < 3; lb++)
      if (!one(v, 1, m, n, k, la, lb, FORM_NAN) || !one(v, 1, m, n, k, la, lb, FORM_SCALE)) return;
}

/* A variant's columns kernel (few rows, b's columns contiguous: x w^T)
   against its rows kernel on b copied row-major, bit for bit, for each
   update of c: the forward's result must not change when it skips the
   copy. */
static void columns_match_rows(const nn_cpu_vector *v) {
  const nn_cpu_gemm_f32 *f = v->gemm;
  if (!f) return;
  static const int64_t widths[] = {1, 2, 3, 4, 5, 7, 8, 9, 10, 13};
  static const int64_t terms[] = {1, 2, 3, 10, 17, 33};
  static const float alphas[] = {1, 1, 0.5f, 0.5f}, betas[] = {0, 1, -2, 0};
  static const char *const forms[] = {"c = ab", "c += ab", "c = 0.5 ab - 2 c", "c = 0.5 ab over NaN",
                                      "c = bias + ab"};
  enum { M = 4, N = 13, K = 128 };
  float a[M * 2 * K + 3 * M], w[N * K], wt[K * N], c0[M * N], c1[M * N], bias[N];
  uint32_t seed = 12345;
  int bad = 0;
  for (int64_t m = 1; m <= f->columns_rows && !bad; m++)
    for (size_t jn = 0; jn < sizeof widths / sizeof widths[0] && !bad; jn++)
      for (size_t jk = 0; jk < sizeof terms / sizeof terms[0] && !bad; jk++)
        for (int la = 0; la < 3 && !bad; la++)
          for (int form = 0; form < 5 && !bad; form++) {
            int64_t n = widths[jn], k = terms[jk], a0, a1;
            strides(la, m, k, &a0, &a1);
            for (size_t i = 0; i < sizeof a / sizeof a[0]; i++) a[i] = value(&seed);
            for (int64_t i = 0; i < n * k; i++) w[i] = value(&seed);
            for (int64_t j = 0; j < n; j++)
              for (int64_t p = 0; p < k; p++) wt[p * n + j] = w[j * k + p];
            for (int64_t i = 0; i < m * n; i++) c0[i] = c1[i] = form == 3 ? NAN : value(&seed);
            for (int64_t j = 0; j < n; j++) bias[j] = value(&seed);
            if (form == 4) { /* c = bias + ab: the bias copied into c's rows, then c += ab */
              for (int64_t i = 0; i < m * n; i++) c1[i] = bias[i % n];
              f->columns(m, n, k, 1, a, a0, a1, w, k, 0, c0, n, bias);
              f->rows(m, n, k, 1, a, a0, a1, wt, n, 1, c1, n);
            } else {
              f->columns(m, n, k, alphas[form], a, a0, a1, w, k, betas[form], c0, n, NULL);
              f->rows(m, n, k, alphas[form], a, a0, a1, wt, n, betas[form], c1, n);
            }
            products_checked++;
            if (memcmp(c0, c1, sizeof(float) * (size_t)(m * n)) != 0) {
              bad = 1;
              CHECK(!"columns kernel differs from rows");
              printf("%s: columns %lld x %lld x %lld (a layout %d, %s) differs from rows\n", v->name,
                     (long long)m, (long long)n, (long long)k, la, forms[form]);
            }
          }
}

/* x w^T with few outputs and long sums (a classifier's last layer, 128x512
   by 512x10: past the tiny products, where BLAS took it) goes to the dots
   kernel, whose sum for an element does not depend on the rows around
   it: each row of the batch's product, bit for bit, is that row's product
   alone (one row: dots already), and both are held to the float64 bound. */
static void few_outputs_by_rows(const nn_cpu_vector *v) {
  if (!v->gemm) return;
  enum { M = 128, N = 10, K = 512 };
  static float x[M * K], w[N * K], c[M * N], row[N];
  uint32_t seed = 777;
  for (int i = 0; i < M * K; i++) x[i] = value(&seed);
  for (int i = 0; i < N * K; i++) w[i] = value(&seed);
  nn_gemm_args g = {.dtype = NN_FLOAT32, .batch = 1, .m = M, .n = N, .k = K, .alpha = 1, .beta = 0,
                    .a = {(char *)x, 0, K, 1}, .b = {(char *)w, 0, 1, K}, .c = {(char *)c, 0, N, 1}};
  if (!CHECKF(nn_cpu_gemm_variant(&g, v) == 0, "%s: failed: %s", v->name, nn_error())) return;
  for (int64_t i = 0; i < M; i++) {
    nn_gemm_args one_row = g;
    one_row.m = 1;
    one_row.a.data = (char *)(x + i * K);
    one_row.c.data = (char *)row;
    if (!CHECKF(nn_cpu_gemm_variant(&one_row, v) == 0, "%s: failed: %s", v->name, nn_error())) return;
    if (memcmp(row, c + i * N, sizeof row) != 0) {
      CHECKF(0, "%s: row %lld of 128x512 by 512x10 differs from that row's own product", v->name,
             (long long)i);
      return;
    }
  }
  CHECK(1);
  all_ways(v, 1, M, N, K);
}

static void variant(const nn_cpu_vector *v) {
  columns_match_rows(v);
  few_outputs_by_rows(v);
  /* tiny: every remainder of 8 and 16 lanes and of blocks of 4, 6 and 8 rows */
  static const int64_t tiny[] = {1, 2, 3, 4, 5, 7, 8, 9, 10, 13, 16, 17, 31, 33};
  for (size_t i = 0; i < sizeof tiny / sizeof tiny[0]; i++)
    for (size_t j = 0; j < sizeof tiny / sizeof tiny[0]; j += 3)
      for (size_t p = i % 2; p < sizeof tiny / sizeof tiny[0]; p += 4)
        all_ways(v, 1, tiny[i], tiny[j], tiny[p]);
  /* the XOR network's products, forward and backward */
  all_ways(v, 1, 4, 10, 2), all_ways(v, 1, 4, 10, 10), all_ways(v, 1, 4, 1, 10);
  all_ways(v, 1, 10, 10, 4), all_ways(v, 1, 1, 10, 4), all_ways(v, 1, 4, 10, 1);
  /* skinny: a batch of 1 to 8 rows through a large layer, and the weight
     gradient summed over it (above the size of the tiny products) */
  static const int64_t rows[] = {1, 2, 3, 5, 8};
  for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
    all_ways(v, 1, rows[i], 523, 530);
    all_ways(v, 1, 523, 530, rows[i]);
  }
  /* one row, or one column, of a product past the tiny ones: sgemv */
  every_layout(v, 1, 1500, 1450), every_layout(v, 1500, 1, 1450);
  /* skinny and large enough to be split over two threads by columns: the
     linear layer's three products (x w^T, g w, g^T x added into place) */
  nn_cpu_set_num_threads(2);
  one(v, 1, 4, 1100, 1000, 0, 1, FORM_WRITE);
  one(v, 1, 3, 1100, 1300, 0, 0, FORM_BIAS);
  one(v, 1, 1100, 1000, 4, 1, 0, FORM_ADD);
  nn_cpu_set_num_threads(1);
  /* past the kernels: OpenBLAS's sizes and a batch of products */
  all_ways(v, 1, 9, 300, 301);
  all_ways(v, 1, 70, 65, 66);
  all_ways(v, 3, 5, 7, 9);
  all_ways(v, 2, 2, 600, 300);
  /* empty: nothing to do, or c = beta c */
  all_ways(v, 1, 0, 5, 3), all_ways(v, 1, 5, 0, 3), all_ways(v, 1, 5, 3, 0), all_ways(v, 1, 2, 600, 0);
}

int main(void) {
  const char *names[] = {"baseline", "avx2", "avx512"};
  for (int i = 0; i < 3; i++) {
    const nn_cpu_vector *v = nn_cpu_vector_named(names[i]);
    if (v) variant(v);
    else printf("%s: not built, or not run by this processor\n", names[i]);
  }
  printf("%lld products\n", (long long)products_checked);
  return check_finish();
}

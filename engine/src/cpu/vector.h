/* cpu/vector.h: the contiguous float32 loops of the elementwise kernels
 * (activations, their gradients, add and multiply), compiled once for
 * baseline x86-64 (SSE2) and again for AVX2 and AVX-512 where the compiler
 * can (vector_avx2.c, vector_avx512.c, with their own -m flags), and chosen
 * when first used for the processor it runs on. Every variant is the same
 * C (vector_loops.h), without contraction into FMA: its results are those
 * of the baseline bit for bit, only more elements go through an
 * instruction (tests/c/test_vector.c compares them). The wider variants
 * also carry float32 product kernels with fused multiply-adds
 * (gemm_kernels.h), which round differently from the baseline's products
 * (tests/c/test_gemm.c holds each to the float64 product). */
#ifndef NN_CPU_VECTOR_H
#define NN_CPU_VECTOR_H

#include <stdint.h>

/* The float32 product kernels of a variant with fused multiply-adds
   (cpu/gemm_kernels.h: what each wants of its operands' layout); k > 0,
   c row-major with rows c0 apart, c = alpha a b + beta c. */
typedef struct nn_cpu_gemm_f32 {
  int lanes; /* floats in a vector */
  /* b's rows b0 apart and contiguous, a any strides */
  void (*rows)(int64_t m, int64_t n, int64_t k, float alpha, const float *a, int64_t a0,
               int64_t a1, const float *b, int64_t b0, float beta, float *c, int64_t c0);
  /* a's rows a0 apart and contiguous, b's columns b1 apart and contiguous */
  void (*dots)(int64_t m, int64_t n, int64_t k, float alpha, const float *a, int64_t a0,
               const float *b, int64_t b1, float beta, float *c, int64_t c0);
  /* a any strides, b's columns b1 apart and contiguous; for at most
     columns_rows rows and columns_terms terms: rows' sums bit for bit,
     without b copied transposed for it; with bias (not NULL), each row
     of c = alpha a b + bias, as c = bias then beta 1 would give */
  int columns_rows, columns_terms;
  void (*columns)(int64_t m, int64_t n, int64_t k, float alpha, const float *a, int64_t a0,
                  int64_t a1, const float *b, int64_t b1, float beta, float *c, int64_t c0,
                  const float *bias);
} nn_cpu_gemm_f32;

typedef struct nn_cpu_vector {
  const char *name; /* "baseline", "avx2", "avx512" */
  void (*sigmoid)(int64_t n, const float *x, float *out);
  void (*relu)(int64_t n, const float *x, float *out);
  /* gi = g where x > 0 or x is NaN, else 0 */
  void (*relu_grad)(int64_t n, const float *g, const float *x, float *gi);
  /* gi = g (1 - y) y, sigmoid's backward from its output y */
  void (*sigmoid_grad)(int64_t n, const float *g, const float *y, float *gi);
  void (*add)(int64_t n, const float *x, const float *y, float *out);
  void (*mul)(int64_t n, const float *x, const float *y, float *out);
  /* NULL for the baseline, whose products are cpu/gemm.c's SSE2 loops and
     OpenBLAS, rounded as before */
  const nn_cpu_gemm_f32 *gemm;
  /* out = op(x) over contiguous float32 (cpu/elementwise.c's unary ops);
     0 when op has no loop here */
  int (*unary)(int op, int64_t n, const float *x, float *out);
  /* out = x op y, or x op s where y is NULL (cpu/elementwise.c's binary
     ops); 0 when op has no loop here */
  int (*binary)(int op, int64_t n, const float *x, const float *y, float s, float *out);
  /* out[0..n) = v (full, full_like and every fill of a float32 run) */
  void (*fill)(int64_t n, float v, float *out);
  /* batch norm's sums over a float32 run (cpu/pool.c), in double: with
     d = p[i] - ps, a[lane] += d and b[lane] += d (q[i] - qs) for each
     element i in turn. Element i of the whole groups of eight goes to lane
     i % 8, the next whole group of four to lanes 0-3, each element left to
     lane 0: the same additions in the same order in every variant, so the
     same bits; eight chains of additions, not one. */
  void (*moments)(double a[8], double b[8], const float *p, double ps, const float *q, double qs, int64_t n);
  /* d[j] += s[i cols + j] for each of the rows i in turn (a linear
     layer's bias gradient), s rows x cols contiguous */
  void (*add_rows)(int64_t rows, int64_t cols, const float *s, float *d);
  /* p[i] = p[i] + -lr g[i] (plain SGD's step, cpu/optim.c) */
  void (*sgd_plain)(int64_t n, float *p, const float *g, float lr);
  /* the largest (want_max) or smallest number among x[0..n), NaN left
     out, *nan whether x holds one; n >= extreme_min (NULL in the
     baseline: cpu/reduce.c's own lanes) */
  float (*extreme)(int64_t n, const float *x, int want_max, int *nan);
  int extreme_min;
} nn_cpu_vector;

/* The fastest variant this processor runs; NN_CPU_VECTOR=baseline (or avx2)
   in the environment, read at the first call, caps it (to compare them). */
const nn_cpu_vector *nn_cpu_vector_best(void);
/* The variant of that name when it was built and this processor runs it,
   else NULL. */
const nn_cpu_vector *nn_cpu_vector_named(const char *name);

#endif

/* cpu/vector.h: the contiguous float32 loops of the elementwise kernels
 * (activations, their gradients, add and multiply), compiled once for
 * baseline x86-64 (SSE2) and again for AVX2 and AVX-512 where the compiler
 * can (vector_avx2.c, vector_avx512.c, with their own -m flags), and chosen
 * when first used for the processor it runs on. Every variant is the same
 * C (vector_loops.h), without contraction into FMA: its results are those
 * of the baseline bit for bit, only more elements go through an
 * instruction (tests/c/test_vector.c compares them). */
#ifndef NN_CPU_VECTOR_H
#define NN_CPU_VECTOR_H

#include <stdint.h>

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
} nn_cpu_vector;

/* The fastest variant this processor runs; NN_CPU_VECTOR=baseline (or avx2)
   in the environment, read at the first call, caps it (to compare them). */
const nn_cpu_vector *nn_cpu_vector_best(void);
/* The variant of that name when it was built and this processor runs it,
   else NULL. */
const nn_cpu_vector *nn_cpu_vector_named(const char *name);

#endif

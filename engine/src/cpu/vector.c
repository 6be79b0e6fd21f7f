/* cpu/vector.c: the baseline loops of cpu/vector.h and the choice among
 * the variants. */
#include <stdlib.h>
#include <string.h>

#include "cpu/vector_loops.h"

static const nn_cpu_vector baseline = {"baseline",        sigmoid_loop, relu_loop, relu_grad_loop,
                                       sigmoid_grad_loop, add_loop,     mul_loop, NULL,
                                       unary_loop,        binary_loop, fill_loop,
                                       moments_loop,      add_rows_loop,
                                       sgd_plain_loop, NULL, 0};

/* Built where CMake found the compiler flag (NN_VECTOR_AVX2, NN_VECTOR_AVX512). */
extern const nn_cpu_vector nn_cpu_vector_avx2, nn_cpu_vector_avx512;

/* The variants from slowest to fastest, each with whether this processor
   (and its operating system, which must save the wider registers) runs it. */
static int runs_here(const char *name) {
  if (strcmp(name, "baseline") == 0) return 1;
#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
  __builtin_cpu_init();
  /* the variants' products fuse multiply-adds */
  int fma = __builtin_cpu_supports("fma");
  if (strcmp(name, "avx2") == 0) return __builtin_cpu_supports("avx2") && fma;
  if (strcmp(name, "avx512") == 0) return __builtin_cpu_supports("avx512f") && fma;
#endif
  return 0;
}

static const nn_cpu_vector *const variants[] = {
    &baseline,
#ifdef NN_VECTOR_AVX2
    &nn_cpu_vector_avx2,
#endif
#ifdef NN_VECTOR_AVX512
    &nn_cpu_vector_avx512,
#endif
};
enum { VARIANT_COUNT = sizeof variants / sizeof variants[0] };

const nn_cpu_vector *nn_cpu_vector_named(const char *name) {
  for (int i = 0; i < VARIANT_COUNT; i++)
    if (strcmp(variants[i]->name, name) == 0) return runs_here(name) ? variants[i] : NULL;
  return NULL;
}

static const nn_cpu_vector *choose(void) {
  const char *cap = getenv("NN_CPU_VECTOR");
  const nn_cpu_vector *best = &baseline;
  for (int i = 1; i < VARIANT_COUNT; i++) {
    if (!runs_here(variants[i]->name)) break;
    best = variants[i];
    if (cap && strcmp(cap, best->name) == 0) break;
  }
  if (cap && strcmp(cap, "baseline") == 0) best = &baseline;
  return best;
}

const nn_cpu_vector *nn_cpu_vector_best(void) {
  /* every thread that races here stores the same pointer */
  static const nn_cpu_vector *chosen;
  const nn_cpu_vector *v = __atomic_load_n(&chosen, __ATOMIC_RELAXED);
  if (!v) {
    v = choose();
    __atomic_store_n(&chosen, v, __ATOMIC_RELAXED);
  }
  return v;
}

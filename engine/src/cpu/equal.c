/* cpu/equal.c: whether two tensors hold the same values, element for
 * element (PyTorch's torch.equal). One pass over both, compared by value
 * (NaN differs from everything, -0 equals +0), stopping at the first
 * block that holds a difference; the threads share one flag, so a
 * difference found by one stops the others too. */
#include "cpu/cpu.h"

#include <string.h>

/* Elements compared between looks at the shared flag: long enough that the
   compare vectorises, short enough that a difference stops a pass early. */
#define EQUAL_BLOCK 4096

struct equal_ctx {
  nn_dtype dtype;
  int differs; /* read and written with __atomic: the pool's threads share it */
};

/* Whether n elements (a, sa) and (b, sb) of dtype differ anywhere. Whole
   blocks are or-ed without a branch each element, so that they vectorise;
   integers and bools compare by their bytes (one value, one pattern). */
static int run_differs(nn_dtype dtype, int64_t n, const char *a, int64_t sa, const char *b, int64_t sb) {
  int contiguous = sa == 1 && sb == 1;
  if (contiguous && dtype == NN_FLOAT32) {
    const float *x = (const float *)a, *y = (const float *)b;
    int d = 0;
    for (int64_t i = 0; i < n; i++) d |= x[i] != y[i];
    return d;
  }
  if (contiguous && dtype == NN_FLOAT64) {
    const double *x = (const double *)a, *y = (const double *)b;
    int d = 0;
    for (int64_t i = 0; i < n; i++) d |= x[i] != y[i];
    return d;
  }
  if (contiguous && !nn_dtype_is_floating(dtype))
    return memcmp(a, b, (size_t)n * nn_element_size(dtype)) != 0;
  if (dtype == NN_FLOAT32) {
    const float *x = (const float *)a, *y = (const float *)b;
    int d = 0;
    for (int64_t i = 0; i < n; i++) d |= x[i * sa] != y[i * sb];
    return d;
  }
  for (int64_t i = 0; i < n; i++)
    if (nn_load(dtype, a, i * sa) != nn_load(dtype, b, i * sb)) return 1;
  return 0;
}

/* (a, b) */
static void equal_inner(void *vctx, int64_t n, char **data, const int64_t *st) {
  struct equal_ctx *c = vctx;
  size_t es = nn_element_size(c->dtype);
  for (int64_t i = 0; i < n; i += EQUAL_BLOCK) {
    if (__atomic_load_n(&c->differs, __ATOMIC_RELAXED)) return;
    int64_t m = n - i < EQUAL_BLOCK ? n - i : EQUAL_BLOCK;
    if (run_differs(c->dtype, m, data[0] + i * st[0] * (int64_t)es, st[0],
                    data[1] + i * st[1] * (int64_t)es, st[1])) {
      __atomic_store_n(&c->differs, 1, __ATOMIC_RELAXED);
      return;
    }
  }
}

int nn_cpu_equal(const nn_iter *it, int *result) {
  struct equal_ctx c = {it->dtype[0], 0};
  nn_iter_run_parallel(it, equal_inner, &c, 1);
  *result = !c.differs;
  return 0;
}

/* math/fill.h: the values of the tensors the engine makes (arange, linspace). */
#ifndef NN_MATH_FILL_H
#define NN_MATH_FILL_H

#include "math/common.h"

/* Element i of n: start + i step before half, end - (n - 1 - i) step from
   there. arange counts from start alone (half = n); linspace, as PyTorch,
   fills its first half from start and its second from end (half = n / 2),
   so that both ends are exact. */
NN_HD static inline double nn_ramp_value(int64_t i, int64_t n, int64_t half, double start,
                                         double step, double end) {
  return i < half ? start + step * (double)i : end - step * (double)(n - 1 - i);
}

#endif

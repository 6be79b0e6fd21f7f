/* math/dtype.h: reading and writing one element of any dtype as a double,
 * the generic path of every kernel on every device (the hot float32 and
 * float64 loops read their type directly). A new dtype is added here. */
#ifndef NN_MATH_DTYPE_H
#define NN_MATH_DTYPE_H

#include "common.h"

/* Element sizes by dtype, inline: nn_data runs on every op. */
NN_HD static inline size_t nn_element_size(nn_dtype dtype) {
  return dtype == NN_BOOL ? 1 : (dtype == NN_FLOAT32 ? 4 : 8);
}

NN_HD static inline double nn_load(nn_dtype dtype, const void *p, int64_t i) {
  switch (dtype) {
  case NN_FLOAT32: return ((const float *)p)[i];
  case NN_FLOAT64: return ((const double *)p)[i];
  case NN_INT64: return (double)((const int64_t *)p)[i];
  default: return ((const unsigned char *)p)[i];
  }
}

NN_HD static inline void nn_store(nn_dtype dtype, void *p, int64_t i, double v) {
  switch (dtype) {
  case NN_FLOAT32: ((float *)p)[i] = (float)v; break;
  case NN_FLOAT64: ((double *)p)[i] = v; break;
  case NN_INT64: /* out-of-range doubles saturate: the cast alone is undefined */
    ((int64_t *)p)[i] = isnan(v) ? 0 : v >= 9223372036854775807.0 ? INT64_MAX
                        : v <= -9223372036854775808.0 ? INT64_MIN : (int64_t)v;
    break;
  default: ((unsigned char *)p)[i] = v != 0; break;
  }
}

#endif

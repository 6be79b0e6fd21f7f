/* math/dtype.h: element sizes and the conversions every generic kernel
 * goes through. A dtype is added here (and in tensor.c's name table); the
 * kernels' generic paths then handle it, and only their float32 and
 * float64 fast paths are written per dtype. */
#ifndef NN_MATH_DTYPE_H
#define NN_MATH_DTYPE_H

#include "math/common.h"

NN_HD static inline size_t nn_element_size(nn_dtype dtype) {
  return dtype == NN_BOOL ? 1 : (dtype == NN_FLOAT32 ? 4 : 8);
}

NN_HD static inline int nn_floating_dtype(nn_dtype dtype) {
  return dtype == NN_FLOAT32 || dtype == NN_FLOAT64;
}

/* Element i of p, as a double. */
NN_HD static inline double nn_load(nn_dtype dtype, const void *p, int64_t i) {
  switch (dtype) {
  case NN_FLOAT32: return ((const float *)p)[i];
  case NN_FLOAT64: return ((const double *)p)[i];
  case NN_INT64: return (double)((const int64_t *)p)[i];
  default: return ((const unsigned char *)p)[i];
  }
}

/* Saturates where the cast alone is undefined: NaN is 0, out of range the nearest end. */
NN_HD static inline int64_t nn_double_to_int64(double v) {
  return isnan(v) ? 0 : v >= 9223372036854775807.0 ? INT64_MAX
                      : v <= -9223372036854775808.0 ? INT64_MIN : (int64_t)v;
}

NN_HD static inline void nn_store(nn_dtype dtype, void *p, int64_t i, double v) {
  switch (dtype) {
  case NN_FLOAT32: ((float *)p)[i] = (float)v; break;
  case NN_FLOAT64: ((double *)p)[i] = v; break;
  case NN_INT64: ((int64_t *)p)[i] = nn_double_to_int64(v); break;
  default: ((unsigned char *)p)[i] = v != 0; break;
  }
}

/* v as dtype holds it (float32 rounds), back as a double. */
NN_HD static inline double nn_round_to(nn_dtype dtype, double v) {
  return dtype == NN_FLOAT32 ? (double)(float)v : v;
}

/* Integers (and bools, as 0 and 1) compute exactly, as int64. */
NN_HD static inline int64_t nn_load_integer(nn_dtype dtype, const void *p, int64_t i) {
  return dtype == NN_INT64 ? ((const int64_t *)p)[i] : ((const unsigned char *)p)[i];
}
NN_HD static inline void nn_store_integer(nn_dtype dtype, void *p, int64_t i, int64_t v) {
  if (dtype == NN_INT64) ((int64_t *)p)[i] = v;
  else ((unsigned char *)p)[i] = v != 0;
}

#endif

/* math/exp.h: exp(x) for float32, branch-free so that a loop of them
 * vectorises (glibc's expf is one call per element; it dominated sigmoid
 * and cross_entropy):
 * x = n ln2 + r with |r| <= ln2 / 2, exp(r) from Cephes' expf polynomial
 * (Moshier, Cephes Math Library, 1984-2000; under 2 ulp), 2^n written into
 * the exponent bits. Below -87.3 the result would be subnormal: it is 0;
 * NaN stays NaN. (Its callers pass x <= 0; past 88 it gives inf a little
 * early.) The clamp is written so that NaN lands on the bound: the
 * polynomial and the exponent bits then see a finite number (a NaN
 * converted to an integer is undefined behaviour), and the last select
 * hands the NaN back. (Its selects vectorise because the build does not
 * treat comparisons as trapping: -fno-trapping-math, CMakeLists.txt.) */
#ifndef NN_MATH_EXP_H
#define NN_MATH_EXP_H

#include "math/common.h"

NN_HD static inline float nn_exp_f32(float x) {
  float xc = x > -87.3f ? x : -87.3f; /* false for NaN */
  xc = xc < 88.7f ? xc : 88.7f;
  /* adding 1.5 * 2^23 rounds to an integer (nearbyintf is a call without SSE4.1) */
  float n = (xc * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
  float r = xc - n * 0.693359375f + n * 2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  uint32_t bits = (uint32_t)((int32_t)n + 127) << 23;
  float scale;
  memcpy(&scale, &bits, sizeof scale);
  float e = x < -87.3f ? 0.0f : p * scale;
  e = x > 88.7f ? INFINITY : e;
  return x == x ? e : x;
}

#endif

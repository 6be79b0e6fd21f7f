/* math/random.h: how random bits become numbers. The CPU backend draws
 * its bits from PyTorch's mt19937 (cpu/random.c) and turns them into
 * numbers exactly as PyTorch 1.13's CPU kernels do (the transforms and the
 * Box-Muller forms below, fma where PyTorch's compiler fused, the Cephes
 * polynomials of its AVX2 kernel); a device backend draws from Philox
 * (Salmon, Moraes, Dror and Shaw, "Parallel random numbers: as easy as 1,
 * 2, 3", SC 2011), a counter-based generator any thread can index, and
 * uses the same transforms. */
#ifndef NN_MATH_RANDOM_H
#define NN_MATH_RANDOM_H

#include "math/common.h"

/* Double precision pi, as c10::pi<double>; M_PI is not ISO C. */
#define NN_PI 3.14159265358979323846

/* transformation::uniform_real for float: the low 24 bits (float's digits)
   of one 32-bit draw, scaled into [0, 1) and then into [from, to), all in
   float. */
NN_HD static inline float nn_uniform_f32(uint32_t bits, float from, float to) {
  float x = (float)(bits & UINT32_C(0xffffff)) * (1.0f / 16777216.0f);
  return fmaf(x, to - from, from);
}

/* The same for double: the low 53 bits of a 64-bit draw. */
NN_HD static inline double nn_uniform_f64(uint64_t bits, double from, double to) {
  double x = (double)(bits & ((UINT64_C(1) << 53) - 1)) * (1.0 / 9007199254740992.0);
  return fma(x, to - from, from);
}

/* at::normal_distribution<double>: Box-Muller on two uniforms u1, u2 in
   [0, 1), the radius from the second, the angle from the first: the
   cosine sample, and the sine sample in *second. */
NN_HD static inline double nn_box_muller_f64(double u1, double u2, double *second) {
  double r = sqrt(-2.0 * log(1.0 - u2));
  double theta = 2.0 * NN_PI * u1;
  *second = r * sin(theta);
  return r * cos(theta);
}

/* ---- float32 Box-Muller, as PyTorch's AVX2 kernel computes it ----------
 * For float32, PyTorch's normal_fill runs normal_fill_16_AVX2, whose log,
 * sine and cosine are not libm's but the Cephes polynomials of
 * avx_mathfun.h (Giovanni Garberoglio's AVX port of Julien Pommier's
 * sse_mathfun, zlib licence). libm's logf/sinf/cosf round differently in the
 * last bit, so the two functions below evaluate the same Cephes polynomials
 * (Stephen Moshier's constants) one lane at a time, with an explicit fmaf
 * exactly where gcc fuses the vector code's multiply and add. Checked
 * against torch.randn on 250,000 samples: bit-identical. */
NN_HD static inline float nn_float_from_bits(uint32_t b) {
  float f;
  memcpy(&f, &b, sizeof f);
  return f;
}

NN_HD static inline uint32_t nn_bits_from_float(float f) {
  uint32_t b;
  memcpy(&b, &f, sizeof b);
  return b;
}

/* Cephes logf: x = m 2^e with m in [sqrt(1/2), sqrt(2)), then a degree 9
   polynomial in m - 1 and log(2) split in two parts for precision. */
NN_HD static inline float nn_cephes_logf(float x) {
  if (x <= 0) return NAN; /* never reached from normal_: 1 - u is in (0, 1] */
  const float min_normal = nn_float_from_bits(UINT32_C(0x00800000));
  if (!(x > min_normal)) x = min_normal;
  uint32_t bits = nn_bits_from_float(x);
  float e = (float)((int32_t)(bits >> 23) - 0x7f) + 1.0f;
  /* keep the mantissa, with the exponent of 0.5: m in [0.5, 1) */
  x = nn_float_from_bits((bits & ~UINT32_C(0x7f800000)) | nn_bits_from_float(0.5f));
  /* the vector code adds x or +0 and subtracts 1 or +0 branch-free; the
     same operations here keep the roundings the same */
  int small = x < 0.707106781186547524f;
  float extra = small ? x : 0.0f;
  x = x - 1.0f;
  e = e - (small ? 1.0f : 0.0f);
  x = x + extra;
  float z = x * x;
  float y = fmaf(7.0376836292E-2f, x, -1.1514610310E-1f);
  y = fmaf(y, x, 1.1676998740E-1f);
  y = fmaf(y, x, -1.2420140846E-1f);
  y = fmaf(y, x, 1.4249322787E-1f);
  y = fmaf(y, x, -1.6668057665E-1f);
  y = fmaf(y, x, 2.0000714765E-1f);
  y = fmaf(y, x, -2.4999993993E-1f);
  y = fmaf(y, x, 3.3333331174E-1f);
  y = y * x;
  y = fmaf(y, z, e * -2.12194440e-4f);
  y = fmaf(-z, 0.5f, y);
  x = x + y;
  return fmaf(e, 0.693359375f, x);
}

/* Cephes sinf and cosf together: reduce by multiples of pi/4 (pi/4 split
   in three parts, the "extended precision modular arithmetic"), evaluate
   both polynomials, and let the octant choose which is sine and which
   cosine, and their signs. */
NN_HD static inline void nn_cephes_sincosf(float x, float *sine, float *cosine) {
  uint32_t sign_sin = nn_bits_from_float(x) & UINT32_C(0x80000000);
  x = fabsf(x);
  int32_t j = (int32_t)(x * 1.27323954473516f); /* 4 / pi, truncated */
  j = (j + 1) & ~1;
  float y = (float)j;
  sign_sin ^= ((uint32_t)j & 4u) << 29;
  uint32_t sign_cos = (~(uint32_t)(j - 2) & 4u) << 29;
  int sine_is_first = (j & 2) == 0;
  x = fmaf(y, -0.78515625f, x);
  x = fmaf(y, -2.4187564849853515625e-4f, x);
  x = fmaf(y, -3.77489497744594108e-8f, x);
  float z = x * x;
  float c = fmaf(2.443315711809948E-005f, z, -1.388731625493765E-003f);
  c = fmaf(c, z, 4.166664568298827E-002f);
  c = c * z;
  c = fmaf(c, z, -(z * 0.5f));
  c = c + 1.0f;
  float s = fmaf(-1.9515295891E-4f, z, 8.3321608736E-3f);
  s = fmaf(s, z, -1.6666654611E-1f);
  s = s * z;
  s = fmaf(s, x, x);
  /* the vector code's masked select, as adds and subtracts of +0 */
  float sin_from_s = sine_is_first ? s : 0.0f;
  float sin_from_c = sine_is_first ? 0.0f : c;
  float sin_value = sin_from_c + sin_from_s;
  float cos_value = (c - sin_from_c) + (s - sin_from_s);
  *sine = nn_float_from_bits(nn_bits_from_float(sin_value) ^ sign_sin);
  *cosine = nn_float_from_bits(nn_bits_from_float(cos_value) ^ sign_cos);
}

/* normal_fill_16's pair (u, v) -> two samples: 1 - u maps [0, 1) to (0, 1]
   so that log never sees 0. For float32 the angle's factor is 2 pi
   rounded to float and log, sin and cos are Cephes', as in the AVX2
   kernel; float64 takes libm's, the angle in double (the scalar kernel). */
NN_HD static inline void nn_normal_pair_f32(float *a, float *b, float mean, float std) {
  const float two_pi = (float)(2.0 * NN_PI);
  float radius = sqrtf(-2.0f * nn_cephes_logf(1.0f - *a));
  float theta = two_pi * *b;
  float sine, cosine;
  nn_cephes_sincosf(theta, &sine, &cosine);
  *a = fmaf(radius * cosine, std, mean);
  *b = fmaf(radius * sine, std, mean);
}
NN_HD static inline void nn_normal_pair_f64(double *a, double *b, double mean, double std) {
  double radius = sqrt(-2.0 * log(1.0 - *a));
  double theta = 2.0 * NN_PI * *b;
  *a = fma(radius * cos(theta), std, mean);
  *b = fma(radius * sin(theta), std, mean);
}

/* ---- Philox4x32-10 ------------------------------------------------------
   Ten rounds of the Philox bijection on a 128-bit counter under a 64-bit
   key: four independent 32-bit draws per counter value. Seed with the key,
   count with the counter; any (key, counter) pair is reproducible alone. */
NN_HD static inline uint32_t nn_mul_hi_lo32(uint32_t a, uint32_t b, uint32_t *hi) {
  uint64_t p = (uint64_t)a * b;
  *hi = (uint32_t)(p >> 32);
  return (uint32_t)p;
}

NN_HD static inline void nn_philox4x32(const uint32_t counter[4], const uint32_t key[2],
                                       uint32_t out[4]) {
  uint32_t c0 = counter[0], c1 = counter[1], c2 = counter[2], c3 = counter[3];
  uint32_t k0 = key[0], k1 = key[1];
  for (int round = 0; round < 10; round++) {
    uint32_t hi0, hi1;
    uint32_t lo0 = nn_mul_hi_lo32(UINT32_C(0xD2511F53), c0, &hi0);
    uint32_t lo1 = nn_mul_hi_lo32(UINT32_C(0xCD9E8D57), c2, &hi1);
    uint32_t n0 = hi1 ^ c1 ^ k0, n1 = lo1, n2 = hi0 ^ c3 ^ k1, n3 = lo0;
    c0 = n0, c1 = n1, c2 = n2, c3 = n3;
    k0 += UINT32_C(0x9E3779B9); /* the golden ratio and sqrt(3) - 1, the paper's Weyl keys */
    k1 += UINT32_C(0xBB67AE85);
  }
  out[0] = c0, out[1] = c1, out[2] = c2, out[3] = c3;
}

#endif

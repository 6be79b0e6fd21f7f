/* math/log.h: log2, log1p and expm1 for float32, branch-free so that a
 * loop of them vectorises (glibc's log1pf and expm1f are one call per
 * element, 8 and 5 times PyTorch's SLEEF loops at 1e6).
 *
 * log2 and log1p compute in float (16 lanes in an AVX-512 register, no
 * conversions; in double they cost 1.2 ns an element against PyTorch's 1.0
 * and 1.14), within 1 ulp of the true value (tests/c/test_math.c, over the
 * float range against glibc's double functions: measured 0.87 and 0.82):
 * u = 2^k m with m in [sqrt(1/2), sqrt(2)), f = m - 1 (exact), s = f / (2
 * + f), and ln(1 + f) = f - f^2/2 + s (f^2/2 + R(s^2)), R the minimax
 * polynomial of fdlibm's logf (Sun Microsystems, 1993; its four
 * coefficients, 2^-34 of error on that range). Where the result is small
 * the leading terms f - f^2/2 would round too early: they are split into
 * hi (f - f^2/2 cut to its top 12 bits) and lo, the exact rest, so that
 * one rounding at the end carries the error (log2 multiplies both parts by
 * 1/ln2 in two pieces, the high one exact on 12 bits). log1p(x): u = 1 + x
 * rounded and c = (1 + x - u) / u, the first-order correction for the
 * rounding (1 - (u - x) or x - (u - 1), each exact); for x in (sqrt(1/2) -
 * 1, sqrt(2) - 1) f is x itself, k and c 0.
 *
 * expm1 computes in double and rounds once to float: the double result is
 * within about 1e-15 of the true value, far below float's half ulp (6e-8).
 *
 * ln(u) in double (nn_log_positive_d, for math/special.h's erfinv): u =
 * 2^e m with m in [sqrt(1/2), sqrt(2)), f = m - 1 (exact), s = f / (2 +
 * f), and ln(m) = 2 atanh(s) = 2s (1 + s^2/3 + s^4/5 + ...): |s| <= 0.172,
 * so the series' terms up to s^12/13 leave under 1e-13 of ln(m)'s value.
 * The series is atanh's Taylor series, its coefficients 1/(2k+1).
 *
 * expm1(x): x = n ln2 + r, |r| <= ln2/2 (ln2 in two parts, the first with
 * zeros in its low 32 bits so that n ln2_hi is exact), e^r - 1 by its
 * Taylor series to r^11/11! (the rest under 7e-15), then
 * 2^n (e^r - 1) + (2^n - 1).
 *
 * Integers are made from doubles and back by adding 1.5 * 2^52 (which
 * leaves the integer in the low bits), never by a conversion: AVX2 has no
 * vector conversion between int64 and double. */
#ifndef NN_MATH_LOG_H
#define NN_MATH_LOG_H

#include "math/common.h"
#include "math/dtype.h" /* nn_float_bits, nn_bits_float */

NN_HD static inline uint64_t nn_double_bits(double v) {
  uint64_t b;
  memcpy(&b, &v, sizeof b);
  return b;
}
NN_HD static inline double nn_bits_double(uint64_t b) {
  double v;
  memcpy(&v, &b, sizeof v);
  return v;
}

/* ln(u) for a positive normal finite double u */
NN_HD static inline double nn_log_positive_d(double u) {
  uint64_t b = nn_double_bits(u), mant = b & 0xfffffffffffffULL;
  /* the biased exponent as a double, exactly */
  double k = nn_bits_double(0x4330000000000000ULL | (b >> 52)) - 4503599627370496.0;
  int high = (int64_t)mant > (int64_t)0x6a09e667f3bcdLL; /* m > sqrt(2) */
  double m = nn_bits_double(mant | (high ? 0x3fe0000000000000ULL : 0x3ff0000000000000ULL));
  double e = k - 1023.0 + (high ? 1.0 : 0.0);
  double f = m - 1.0, s = f / (2.0 + f), z = s * s;
  double p = 1.0 / 13;
  p = p * z + 1.0 / 11;
  p = p * z + 1.0 / 9;
  p = p * z + 1.0 / 7;
  p = p * z + 1.0 / 5;
  p = p * z + 1.0 / 3;
  double ln_m = 2.0 * s + 2.0 * s * (z * p);
  return e * 0.69314718055994530942 + ln_m;
}

/* s (f^2/2 + R(s^2)) with s = f / (2 + f), for f in [sqrt(1/2) - 1,
   sqrt(2) - 1]; *half_square = f^2/2 */
NN_HD static inline float nn_log1p_tail_f32(float f, float *half_square) {
  float s = f / (2.0f + f), z = s * s, w = z * z;
  float odd = w * (0.40000972152f + w * 0.24279078841f);
  float even = z * (0.66666662693f + w * 0.28498786688f);
  float h = 0.5f * f * f;
  *half_square = h;
  return s * (h + (even + odd));
}

/* u's exponent k (as a float) and u / 2^k - 1, for a positive normal u */
NN_HD static inline float nn_log_reduce_f32(float u, float *k) {
  uint32_t b = nn_float_bits(u), mant = b & 0x7fffffu;
  int high = mant > 0x3504f3u; /* the significand above sqrt(2): halved, k + 1 */
  *k = (float)((int32_t)(b >> 23) - 127 + high);
  return nn_bits_float(mant | (high ? 0x3f000000u : 0x3f800000u)) - 1.0f;
}

/* hi: f - half_square cut to its top 12 bits */
NN_HD static inline float nn_log_head_f32(float f, float half_square) {
  return nn_bits_float(nn_float_bits(f - half_square) & 0xfffff000u);
}

NN_HD static inline float nn_log2_f32(float x) {
  int subnormal = x < 1.17549435e-38f; /* scaled by 2^25 into the normals */
  float k, h, f = nn_log_reduce_f32(subnormal ? x * 33554432.0f : x, &k);
  k = subnormal ? k - 25.0f : k;
  float r = nn_log1p_tail_f32(f, &h), hi = nn_log_head_f32(f, h);
  float lo = (f - hi) - h + r; /* f - hi is exact: the two are within a factor 2 */
  /* 1/ln2 = 1.4428710938 (12 bits) - 1.7605285393e-04 */
  float y = (lo + hi) * -1.7605285393e-04f + lo * 1.4428710938f + hi * 1.4428710938f + k;
  y = x == 0.0f ? -INFINITY : y;
  y = x == INFINITY ? INFINITY : y;
  return (x < 0.0f) | (x != x) ? NAN : y;
}

NN_HD static inline float nn_log1p_f32(float x) {
  float u = 1.0f + x;
  u = (x > -1.0f) & (u < INFINITY) ? u : 1.0f; /* x > -1: u >= 2^-24, a normal */
  float k, f = nn_log_reduce_f32(u, &k);
  float c = u >= 2.0f ? 1.0f - (u - x) : x - (u - 1.0f); /* exact: Sterbenz */
  c = c / u;
  int direct = (x > -0.29289323f) & (x < 0.41421354f);
  f = direct ? x : f;
  k = direct ? 0.0f : k;
  c = direct ? 0.0f : c;
  float h, r = nn_log1p_tail_f32(f, &h), hi = nn_log_head_f32(f, h);
  /* ln2 = 6.9313812256e-01 (12 bits: k ln2_hi is exact) + 9.0580006145e-06 */
  float lo = ((f - hi) - h) + (r + (k * 9.0580006145e-06f + c));
  float y = k * 6.9313812256e-01f + (hi + lo);
  y = x == -1.0f ? -INFINITY : y;
  y = x == INFINITY ? INFINITY : y;
  return (x < -1.0f) | (x != x) ? NAN : y;
}

NN_HD static inline float nn_expm1_f32(float x) {
  /* past 89 the float is inf; below -104, -1 (NaN lands on a bound, and is handed back) */
  double xd = x > -104.0f ? (double)x : -104.0;
  xd = xd < 89.0 ? xd : 89.0;
  double shifted = xd * 1.44269504088896340736 + 6755399441055744.0;
  double n = shifted - 6755399441055744.0;
  double r = (xd - n * 0.693147180369123816490) - n * 1.90821492927058770002e-10;
  double q = 1.0 / 39916800;
  q = q * r + 1.0 / 3628800;
  q = q * r + 1.0 / 362880;
  q = q * r + 1.0 / 40320;
  q = q * r + 1.0 / 5040;
  q = q * r + 1.0 / 720;
  q = q * r + 1.0 / 120;
  q = q * r + 1.0 / 24;
  q = q * r + 1.0 / 6;
  q = q * r + 0.5;
  double p = r + r * r * q;
  /* 2^n: n sits in shifted's low bits (two's complement, |n| < 2^51) */
  double scale = nn_bits_double((nn_double_bits(shifted) - 0x4338000000000000ULL + 1023) << 52);
  float e = (float)(scale * p + (scale - 1.0));
  return x == x ? e : x;
}

#endif

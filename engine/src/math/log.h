/* math/log.h: log2, log1p and expm1 for float32, branch-free so that a
 * loop of them vectorises (glibc's log1pf and expm1f are one call per
 * element, 8 and 5 times PyTorch's SLEEF loops at 1e6).
 *
 * Each computes in double and rounds once to float: the double result is
 * within about 1e-15 of the true value, far below float's half ulp (6e-8),
 * so the float is the correctly rounded one except where the true value
 * lies within 1e-15 relative of a halfway point between two floats, and
 * even there 1 ulp at most (tests/c/test_math.c measures it over the
 * float range against glibc's double functions).
 *
 * ln(u), u a positive normal double: u = 2^e m with m in [sqrt(1/2),
 * sqrt(2)), f = m - 1 (exact), s = f / (2 + f), and ln(m) = 2 atanh(s) =
 * 2s (1 + s^2/3 + s^4/5 + ...): |s| <= 0.172, so the series' terms up to
 * s^12/13 leave under 1e-13 of ln(m)'s value. The series is atanh's
 * Taylor series, its coefficients 1/(2k+1).
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

NN_HD static inline float nn_log2_f32(float x) {
  double u = (double)x; /* a float's subnormals are normal doubles */
  double ok = (x > 0.0f) & (x < INFINITY) ? u : 1.0;
  float r = (float)(nn_log_positive_d(ok) * 1.44269504088896340736);
  r = x == 0.0f ? -INFINITY : r;
  r = x == INFINITY ? INFINITY : r;
  return (x < 0.0f) | (x != x) ? NAN : r;
}

NN_HD static inline float nn_log1p_f32(float x) {
  double xd = (double)x, u = 1.0 + xd; /* exact for 2^-29 < |x| < 2^24 */
  double ok = (x > -1.0f) & (x < INFINITY) ? u : 1.0;
  double big = nn_log_positive_d(ok);
  /* below 2^-20 the series itself: x - x^2/2 + x^3/3, the rest under 2^-60 of it */
  double small = xd * (1.0 - xd * (0.5 - xd * (1.0 / 3)));
  float r = (float)(fabs(xd) < 9.5367431640625e-07 ? small : big);
  r = x == -1.0f ? -INFINITY : r;
  r = x == INFINITY ? INFINITY : r;
  return (x < -1.0f) | (x != x) ? NAN : r;
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

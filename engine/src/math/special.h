/* math/special.h: tan, atan, atan2, erf and erfinv for float32, branch-free
 * so that a loop of them vectorises (glibc's tanf, atanf, atan2f and erff
 * are one call per element: 8 to 13 times PyTorch's SLEEF loops at 1e6).
 *
 * As in math/log.h, each computes in double and rounds once to float: the
 * double is within about 1e-11 relative of the true value (the polynomials'
 * own error, tools/gen_special_poly.py), far under a float's half ulp
 * (6e-8), so the float is the correctly rounded one except within 1e-11
 * of a halfway point, and 1 ulp at most there (tests/c/test_special.c
 * measures each against glibc's double functions over dense sweeps).
 *
 * tan(x), |x| < 2^20: x = n pi/2 + r, |r| <= pi/4 (pi/2 in two parts, the
 * first of 32 bits so that n times it is exact, and x minus it exact by
 * Sterbenz's lemma); sin r and cos r by their Taylor series (to r^11/11!
 * and r^12/12!, the rest under 1e-11), tan x = sin r / cos r for even n,
 * -cos r / sin r for odd. Larger |x| (and inf, NaN) take double's tan: its exact
 * reduction needs pi's bits to 2^128 (nn_tan_quick says which).
 *
 * atan(t): |t| > tan(3pi/8) as pi/2 + atan(-1/t), |t| > tan(pi/8) as
 * pi/4 + atan((t - 1)/(t + 1)), leaving |u| <= tan(pi/8) for u P(u^2).
 * atan2(y, x) from the ratio lo/hi <= 1 of |x| and |y| (both exact in
 * double, so are lo - hi and lo + hi), then the octant: pi/2 - a where
 * |y| > |x|, pi - a where x's sign is negative (-0 too), y's sign: C99
 * Annex F's special cases fall out of it (0/0 and inf/inf are taken
 * apart).
 *
 * erf(x): x P(x^2) below 1; from 1, 1 - e^(-x^2) Q(x), Q(x) = e^(x^2)
 * erfc(x) (smooth, no cancellation; x^2 is exact in double for a float x).
 * From 4 on erf(x) rounds to 1 (erfc(4) = 1.5e-8, under half an ulp of 1).
 *
 * erfinv(y): Giles's single-precision approximation ("Approximating the
 * erfinv function", GPU Computing Gems, 2011; relative error about 1e-7)
 * in double, then one Newton step on erf(x) - y, which squares that
 * error; near |y| = 1 the step's residual is (1 - y) - erfc(x), both terms
 * exact or relatively accurate. */
#ifndef NN_MATH_SPECIAL_H
#define NN_MATH_SPECIAL_H

#include "math/common.h"
#include "math/log.h"

/* e^v for v in [-20, 0]: v = n ln2 + r, |r| <= ln2/2 (ln2_hi with zeros
   in its low 32 bits, so n ln2_hi is exact), e^r by Taylor to r^11/11!
   (the rest under 3e-13), 2^n into the exponent bits. */
NN_HD static inline double nn_exp_negative_d(double v) {
  double shifted = v * 1.44269504088896340736 + 6755399441055744.0;
  double n = shifted - 6755399441055744.0;
  double r = (v - n * 0.693147180369123816490) - n * 1.90821492927058770002e-10;
  double p = 1.0 / 39916800;
  p = p * r + 1.0 / 3628800;
  p = p * r + 1.0 / 362880;
  p = p * r + 1.0 / 40320;
  p = p * r + 1.0 / 5040;
  p = p * r + 1.0 / 720;
  p = p * r + 1.0 / 120;
  p = p * r + 1.0 / 24;
  p = p * r + 1.0 / 6;
  p = p * r + 0.5;
  p = p * r + 1.0;
  p = p * r + 1.0;
  double scale = nn_bits_double((nn_double_bits(shifted) - 0x4338000000000000ULL + 1023) << 52);
  return scale * p;
}

/* ---- tan ---- */
NN_HD static inline int nn_tan_quick(float x) { return fabsf(x) < 1048576.0f; }

NN_HD static inline float nn_tan_select_f32(float x) {
  double xd = nn_tan_quick(x) ? (double)x : 0.0;
  double shifted = xd * 0.63661977236758134308 + 6755399441055744.0;
  double n = shifted - 6755399441055744.0;
  double r = (xd - n * 1.5707963267341256) - n * 6.077100506506192e-11;
  double z = r * r;
  double s = -1.0 / 39916800;
  s = s * z + 1.0 / 362880;
  s = s * z - 1.0 / 5040;
  s = s * z + 1.0 / 120;
  s = s * z - 1.0 / 6;
  s = r + r * z * s;
  double c = 1.0 / 479001600;
  c = c * z - 1.0 / 3628800;
  c = c * z + 1.0 / 40320;
  c = c * z - 1.0 / 720;
  c = c * z + 1.0 / 24;
  c = c * z - 0.5;
  c = c * z + 1.0;
  /* n's parity, in doubles (SSE2 has no 64-bit integer compare): n/2 +
     1/4 rounds to n/2 for even n, up to the next whole one for odd */
  double half = (n * 0.5 + 0.25 + 6755399441055744.0) - 6755399441055744.0;
  int odd = n - 2.0 * half != 0.0;
  double num = odd ? -c : s, den = odd ? s : c;
  float t = (float)(num / den);
  return x == 0.0f ? x : t; /* r + r z S(z) loses -0's sign */
}

/* ---- atan, atan2 ---- */
/* atan(u) for |u| <= tan(pi/8): u P(u^2), P tools/gen_special_poly.py's
   (7.6e-13 relative) */
NN_HD static inline double nn_atan_reduced_d(double u) {
  double z = u * u;
  double p = -0.03765191781163322;
  p = p * z + 0.06973997584831665;
  p = p * z - 0.08992503333993615;
  p = p * z + 0.11103450786054755;
  p = p * z - 0.14285386162946462;
  p = p * z + 0.19999993041560996;
  p = p * z - 0.333333332767812;
  p = p * z + 0.9999999999992417;
  return u * p;
}

#define NN_TAN_PI_8 0.41421356237309503
#define NN_TAN_3PI_8 2.4142135623730949
#define NN_PI_D 3.14159265358979323846
#define NN_PI_2_D 1.57079632679489661923
#define NN_PI_4_D 0.78539816339744830962

NN_HD static inline float nn_atan_f32(float x) {
  double a = fabs((double)x);
  double num = a > NN_TAN_3PI_8 ? -1.0 : (a > NN_TAN_PI_8 ? a - 1.0 : a);
  double den = a > NN_TAN_3PI_8 ? a : (a > NN_TAN_PI_8 ? a + 1.0 : 1.0);
  double base = a > NN_TAN_3PI_8 ? NN_PI_2_D : (a > NN_TAN_PI_8 ? NN_PI_4_D : 0.0);
  double r = base + nn_atan_reduced_d(num / den); /* NaN stays NaN */
  return copysignf((float)r, x);
}

NN_HD static inline float nn_atan2_f32(float y, float x) {
  double ay = fabs((double)y), ax = fabs((double)x);
  double lo = ay < ax ? ay : ax, hi = ay < ax ? ax : ay;
  /* lo/hi past tan(pi/8): pi/4 + atan((lo - hi)/(lo + hi)); both
     infinite: pi/4 exactly */
  int both_inf = lo == INFINITY;
  int diagonal = (lo > NN_TAN_PI_8 * hi) | both_inf;
  double num = diagonal ? lo - hi : lo, den = diagonal ? lo + hi : hi;
  num = both_inf ? 0.0 : num;
  den = both_inf | (hi == 0.0) ? 1.0 : den; /* 0/0: the angle 0 */
  double a = (diagonal ? NN_PI_4_D : 0.0) + nn_atan_reduced_d(num / den);
  a = ay > ax ? NN_PI_2_D - a : a;
  a = copysignf(1.0f, x) < 0.0f ? NN_PI_D - a : a;
  float r = copysignf((float)a, y);
  return (x != x) | (y != y) ? x + y : r;
}

/* ---- erf, erfinv ---- */
/* erf(a) for 0 <= a <= 1: a P(a^2) (9.1e-13 relative) */
NN_HD static inline double nn_erf_small_d(double a) {
  double z = a * a;
  double p = 1.0589669222503694e-06;
  p = p * z - 1.3909457872311274e-05;
  p = p * z + 0.00011956582183201032;
  p = p * z - 0.0008542639702176934;
  p = p * z + 0.005223783559440816;
  p = p * z - 0.02686613325659061;
  p = p * z + 0.11283791308876304;
  p = p * z - 0.3761263888964752;
  p = p * z + 1.1283791670946772;
  return a * p;
}

/* erfc(a) for 1 <= a <= 4: e^(-a^2) Q(a), Q = e^(a^2) erfc(a) in powers
   of (a - 2.5) / 1.5 (2.0e-10 relative) */
NN_HD static inline double nn_erfc_large_d(double a) {
  double t = (a - 2.5) * (1.0 / 1.5);
  double q = 1.7581195834281971e-06;
  q = q * t - 5.053533360902899e-06;
  q = q * t + 7.665284961907066e-06;
  q = q * t - 2.0504708627792447e-05;
  q = q * t + 6.340935254485202e-05;
  q = q * t - 0.00016447866362862367;
  q = q * t + 0.0004087379735478199;
  q = q * t - 0.001004799700559526;
  q = q * t + 0.0024037214547475943;
  q = q * t - 0.005570925693452899;
  q = q * t + 0.012489367000340963;
  q = q * t - 0.027005276189772203;
  q = q * t + 0.05611049362977453;
  q = q * t - 0.1115210207347595;
  q = q * t + 0.21080636406114364;
  return nn_exp_negative_d(-(a * a)) * q;
}

/* erf where |x| < 1 (the contiguous loop's blocks of such elements skip
   the other piece; the same bits as nn_erf_f32 there) */
NN_HD static inline float nn_erf_small_f32(float x) { return (float)nn_erf_small_d((double)x); }

NN_HD static inline float nn_erf_f32(float x) {
  double a = fabs((double)x);
  double small = a < 1.0 ? a : 1.0;
  double large = a > 1.0 ? a : 1.0;
  large = large < 4.0 ? large : 4.0;
  double r = a < 1.0 ? nn_erf_small_d(small) : 1.0 - nn_erfc_large_d(large);
  float f = copysignf((float)r, x);
  return x == x ? f : x;
}

/* Giles's approximation of erfinv(y) / y from w = -ln((1 - y)(1 + y)),
   both pieces computed (selects, no branch) */
NN_HD static inline double nn_erfinv_start_d(double w) {
  double w1 = w - 2.5, p1 = 2.81022636e-08;
  p1 = 3.43273939e-07 + p1 * w1;
  p1 = -3.5233877e-06 + p1 * w1;
  p1 = -4.39150654e-06 + p1 * w1;
  p1 = 0.00021858087 + p1 * w1;
  p1 = -0.00125372503 + p1 * w1;
  p1 = -0.00417768164 + p1 * w1;
  p1 = 0.246640727 + p1 * w1;
  p1 = 1.50140941 + p1 * w1;
  double w2 = sqrt(w) - 3.0, p2 = -0.000200214257;
  p2 = 0.000100950558 + p2 * w2;
  p2 = 0.00134934322 + p2 * w2;
  p2 = -0.00367342844 + p2 * w2;
  p2 = 0.00573950773 + p2 * w2;
  p2 = -0.0076224613 + p2 * w2;
  p2 = 0.00943887047 + p2 * w2;
  p2 = 1.00167406 + p2 * w2;
  p2 = 2.83297682 + p2 * w2;
  return w < 5.0 ? p1 : p2;
}

NN_HD static inline float nn_erfinv_f32(float y) {
  double a = fabs((double)y);
  double ok = a < 1.0 ? a : 0.0; /* NaN too: its value is chosen below */
  double w = -nn_log_positive_d((1.0 - ok) * (1.0 + ok)); /* the product is exact */
  double x = nn_erfinv_start_d(w) * ok;
  /* erf(x) - ok, the form that keeps its digits on each side of 1 */
  double small = x < 1.0 ? x : 1.0, large = x > 1.0 ? x : 1.0;
  large = large < 4.0 ? large : 4.0;
  double residual = x < 1.0 ? nn_erf_small_d(small) - ok : (1.0 - ok) - nn_erfc_large_d(large);
  x -= residual / (1.1283791670955126 * nn_exp_negative_d(-(x * x)));
  float f = (float)x;
  f = a == 1.0 ? INFINITY : f;
  f = (a > 1.0) | (a != a) ? NAN : f;
  return copysignf(f, y);
}

/* tan past the quick range: double's tan rounded (glibc's tanf is 1.4 ulp
   off at some large x) */
NN_HD static inline float nn_tan_slow_f32(float x) { return (float)tan((double)x); }

/* tan for one element (the strided loops, CUDA); the contiguous loops
   select for all, then redo the slow ones. */
NN_HD static inline float nn_tan_f32(float x) { return nn_tan_quick(x) ? nn_tan_select_f32(x) : nn_tan_slow_f32(x); }

#endif

/* math/elementwise.h: the binary and unary ops, their derivatives and the
 * select-style gradients, for each dtype class: double (float64, and the
 * generic path of any dtype), float (float32 computes in float, as
 * PyTorch's kernels do), int64 (integers and bools compute exactly). */
#ifndef NN_MATH_ELEMENTWISE_H
#define NN_MATH_ELEMENTWISE_H

#include "backend.h"
#include "math/dtype.h"
#include "math/exp.h"
#include "math/log.h"
#include "math/special.h"

/* ---- binary ---------------------------------------------------------- */
/* truncf without its call (no SSE4.1 instruction at the baseline), as
   selects, so that a loop of it vectorises (GCC will not if-convert a
   float-to-integer conversion, which might trap): below 2^23, adding 2^23
   rounds |x| to a whole number (exactly: the sum has no bits below 1),
   one less where that rounded up; the sign put back keeps a zero's. From
   2^23 on (and inf, NaN) a float is whole already. */
NN_HD static inline float nn_trunc_f(float x) {
  float a = fabsf(x), r = (a + 8388608.0f) - 8388608.0f;
  r = r > a ? r - 1.0f : r;
  return a < 8388608.0f ? copysignf(r, x) : x;
}
/* trunc of a double t with |t| < 2^52, the same way */
NN_HD static inline double nn_trunc_small_d(double t) {
  double a = fabs(t), r = (a + 4503599627370496.0) - 4503599627370496.0;
  r = r > a ? r - 1.0 : r;
  return copysign(r, t);
}

/* fmodf's exact value without its call (a bit-by-bit division in glibc)
   where |x| < 2^23 |y| (so the quotient is under 2^23; the test is exact:
   scaling by 2^23 is, and an overflow to inf still compares right), and y
   is finite: q = trunc(x / y) in double, and x - q y is then exact in
   double (q y needs 47 bits, the difference's bits lie within 48). The
   rounded quotient can only be one too large in magnitude (rounding is
   monotone), which leaves x - q y of the other sign than x: one y back
   fixes it. Zero keeps x's sign, as fmodf's. The rest (y = 0 or inf, x inf
   or NaN, large quotients) take fmodf. The quick case is written as
   selects (a loop of it vectorises: cpu/vector_loops.h computes it for
   every element, then fmodf where nn_fmod_quick says so); its quotient is
   0 where the case does not hold. */
NN_HD static inline int nn_fmod_quick(float x, float y) {
  return (fabsf(x) < 8388608.0f * fabsf(y)) & (fabsf(y) < INFINITY); /* & : no branch */
}
/* Where fused multiply-adds are instructions (the AVX2 and AVX-512 loops,
   CUDA), the same in float, twice the lanes and no conversions: the float
   quotient rounded is also floor or floor + 1 of the true one in magnitude
   (the integers below 2^23 are floats, rounding is monotone), and then
   x - q y is a float (a multiple of the smaller of the two ulps, under |y|
   in magnitude), which the fused multiply-add gives exactly; so is the
   step back, which lands on the exact remainder. Both give fmodf's bits. */
#if defined(__FMA__) || defined(__CUDA_ARCH__)
NN_HD static inline float nn_fmod_select_f(float x, float y) {
  float t = x / y;
  t = nn_fmod_quick(x, y) ? t : 0.0f;
  float m = fmaf(-nn_trunc_f(t), y, x);
  float ay = fabsf(y), back = x < 0 ? -ay : ay;
  m = (m != 0) & ((m < 0) != (x < 0)) ? m + back : m;
  return m == 0 ? copysignf(0.0f, x) : m;
}
#else
NN_HD static inline float nn_fmod_select_f(float x, float y) {
  double t = (double)x / (double)y;
  t = nn_fmod_quick(x, y) ? t : 0.0;
  double m = (double)x - nn_trunc_small_d(t) * (double)y;
  double ay = fabs((double)y), back = x < 0 ? -ay : ay;
  m = (m != 0) & ((m < 0) != (x < 0)) ? m + back : m;
  float r = (float)m;
  return m == 0 ? copysignf(0.0f, x) : r;
}
#endif
NN_HD static inline float nn_fmod_f(float x, float y) {
  return nn_fmod_quick(x, y) ? nn_fmod_select_f(x, y) : fmodf(x, y);
}

/* PyTorch's remainder: the result takes the divisor's sign (Python's %). */
NN_HD static inline double nn_remainder(double x, double y) {
  double m = fmod(x, y);
  return m != 0 && ((y < 0) != (m < 0)) ? m + y : m;
}
/* fmod's m of x by y to remainder's */
NN_HD static inline float nn_remainder_from_fmod_f(float m, float y) {
  float r = m + y;
  return (m != 0) & ((y < 0) != (m < 0)) ? r : m;
}
NN_HD static inline float nn_remainder_f(float x, float y) {
  return nn_remainder_from_fmod_f(nn_fmod_f(x, y), y);
}

/* PyTorch's floor division of floats (c10's div_floor_floating, Python's
   float //): from fmod's exact remainder, (x - mod) / y is a whole number
   up to rounding; one less where the remainder's sign differs from y's;
   then floored, and rounded up where the rounding left it over a half
   below. A zero quotient takes the sign of x / y; a zero divisor gives
   IEEE's x / y. */
NN_HD static inline double nn_floor_divide(double x, double y) {
  if (y == 0) return x / y;
  double mod = fmod(x, y), div = (x - mod) / y;
  if (mod != 0 && (y < 0) != (mod < 0)) div -= 1;
  if (div == 0) return copysign(0.0, x / y);
  double f = floor(div);
  return div - f > 0.5 ? f + 1 : f;
}
NN_HD static inline float nn_floor_divide_f(float x, float y) {
  if (y == 0) return x / y;
  float mod = nn_fmod_f(x, y), div = (x - mod) / y;
  if (mod != 0 && (y < 0) != (mod < 0)) div -= 1;
  if (div == 0) return copysignf(0.0f, x / y);
  float f = floorf(div);
  return div - f > 0.5f ? f + 1 : f;
}

NN_HD static inline double nn_binary_apply(nn_binary_op op, double x, double y) {
  switch (op) {
  case NN_ADD: return x + y;
  case NN_SUB: return x - y;
  case NN_MUL: return x * y;
  case NN_DIV: return x / y;
  case NN_POW: return pow(x, y);
  case NN_MAXIMUM: return (x > y || isnan(x)) ? x : y;
  case NN_MINIMUM: return (x < y || isnan(x)) ? x : y;
  case NN_GT: return x > y;
  case NN_GE: return x >= y;
  case NN_LT: return x < y;
  case NN_LE: return x <= y;
  case NN_EQ: return x == y;
  case NN_ATAN2: return atan2(x, y);
  case NN_FMOD: return fmod(x, y);
  case NN_REMAINDER: return nn_remainder(x, y);
  case NN_LOGICAL_AND: return x != 0 && y != 0;
  case NN_LOGICAL_OR: return x != 0 || y != 0;
  case NN_LOGICAL_XOR: return (x != 0) != (y != 0);
  case NN_FLOOR_DIVIDE: return nn_floor_divide(x, y);
  case NN_TRUNC_DIVIDE: return trunc(x / y);
  default: return x != y;
  }
}

NN_HD static inline float nn_binary_apply_f(nn_binary_op op, float x, float y) {
  switch (op) {
  case NN_ADD: return x + y;
  case NN_SUB: return x - y;
  case NN_MUL: return x * y;
  case NN_DIV: return x / y;
  case NN_POW: return powf(x, y);
  case NN_ATAN2: return nn_atan2_f32(x, y);
  case NN_FMOD: return nn_fmod_f(x, y);
  case NN_REMAINDER: return nn_remainder_f(x, y);
  case NN_FLOOR_DIVIDE: return nn_floor_divide_f(x, y);
  case NN_TRUNC_DIVIDE: return truncf(x / y);
  default: return (float)nn_binary_apply(op, x, y);
  }
}

/* op in float for compute float32 or a half type: PyTorch's half kernels
   round the quotient of a truncating division to the half type before
   truncating it (7.5 / -0.30005 is -24.996, -25 in float16), where the
   other ops round their result only. */
NN_HD static inline float nn_binary_apply_in(nn_dtype compute, nn_binary_op op, float x, float y) {
  if (op == NN_TRUNC_DIVIDE && nn_half_dtype(compute)) return truncf((float)nn_round_to(compute, x / y));
  return nn_binary_apply_f(op, x, y);
}

/* x to the power of a number: PyTorch's pow_tensor_scalar computes these
   exponents as products, square roots and reciprocals, not by pow, and
   their values differ from pow's at some inputs (sqrt(-inf) is NaN,
   pow(-inf, 0.5) is inf). */
NN_HD static inline double nn_pow_number(double x, double e) {
  if (e == 2) return x * x;
  if (e == 3) return x * x * x;
  if (e == 0.5) return sqrt(x);
  if (e == -0.5) return 1 / sqrt(x);
  if (e == -1) return 1 / x;
  if (e == -2) return 1 / (x * x);
  return pow(x, e);
}
NN_HD static inline float nn_pow_number_f(float x, float e) {
  if (e == 2) return x * x;
  if (e == 3) return x * x * x;
  if (e == 0.5f) return sqrtf(x);
  if (e == -0.5f) return 1 / sqrtf(x);
  if (e == -1) return 1 / x;
  if (e == -2) return 1 / (x * x);
  return powf(x, e);
}

/* Integers wrap like two's complement, as PyTorch's int64 does; a double
   would lose digits past 2^53. */
NN_HD static inline int64_t nn_wrap_integer(uint64_t v) { return (int64_t)v; }

NN_HD static inline int64_t nn_pow_integer(int64_t base, int64_t e) {
  if (e < 0) return base == 1 ? 1 : base == -1 ? ((e & 1) ? -1 : 1) : 0;
  uint64_t r = 1, b = (uint64_t)base;
  for (; e; e >>= 1, b *= b)
    if (e & 1) r *= b;
  return nn_wrap_integer(r);
}

NN_HD static inline int64_t nn_integer_apply(nn_binary_op op, int64_t x, int64_t y) {
  switch (op) {
  case NN_ADD: return nn_wrap_integer((uint64_t)x + (uint64_t)y);
  case NN_SUB: return nn_wrap_integer((uint64_t)x - (uint64_t)y);
  case NN_MUL: return nn_wrap_integer((uint64_t)x * (uint64_t)y);
  case NN_POW: return nn_pow_integer(x, y);
  case NN_MAXIMUM: return x > y ? x : y;
  case NN_MINIMUM: return x < y ? x : y;
  case NN_GT: return x > y;
  case NN_GE: return x >= y;
  case NN_LT: return x < y;
  case NN_LE: return x <= y;
  case NN_EQ: return x == y;
  /* a zero divisor gives 0 here; the kernels report it (nn_integer_divides) */
  case NN_FMOD: return y == 0 || y == -1 ? 0 : x % y;
  case NN_REMAINDER: {
    int64_t m = y == 0 || y == -1 ? 0 : x % y;
    return m != 0 && ((y < 0) != (m < 0)) ? m + y : m;
  }
  case NN_LOGICAL_AND: return x != 0 && y != 0;
  case NN_LOGICAL_OR: return x != 0 || y != 0;
  case NN_LOGICAL_XOR: return (x != 0) != (y != 0);
  /* the lowest integer over -1 wraps to itself, as two's complement does
     (C's / traps there, and PyTorch 1.13 dies of SIGFPE) */
  case NN_TRUNC_DIVIDE: return y == 0 ? 0 : y == -1 ? nn_wrap_integer(0 - (uint64_t)x) : x / y;
  case NN_FLOOR_DIVIDE: {
    if (y == 0) return 0;
    if (y == -1) return nn_wrap_integer(0 - (uint64_t)x);
    int64_t q = x / y;
    return (x % y != 0 && (x < 0) != (y < 0)) ? q - 1 : q;
  }
  default: return x != y; /* NN_DIV and NN_ATAN2 never compute in integers */
  }
}

/* Integer fmod and remainder by zero: PyTorch raises ZeroDivisionError. */
NN_HD static inline int nn_integer_divides(nn_binary_op op) {
  return op == NN_FMOD || op == NN_REMAINDER || op == NN_FLOOR_DIVIDE || op == NN_TRUNC_DIVIDE;
}

/* The name an integer division by zero is reported under, on every device. */
static inline const char *nn_integer_division_name(nn_binary_op op) {
  return op == NN_FMOD ? "fmod" : op == NN_REMAINDER ? "remainder"
         : op == NN_FLOOR_DIVIDE ? "floor_divide" : "div";
}

/* ---- unary ----------------------------------------------------------- */
/* The inverse error function: Giles's single-precision approximation
   (math/special.h) as the start, then Newton steps on erf(x) - y, each of which doubles the
   correct digits, to full double precision. */
NN_HD static inline double nn_erfinv(double y) {
  if (!(y > -1 && y < 1)) return y == 1 ? INFINITY : (y == -1 ? -INFINITY : NAN);
  double x = nn_erfinv_start_d(-log((1 - y) * (1 + y))) * y;
  for (int i = 0; i < 2; i++) x -= (erf(x) - y) / (1.1283791670955126 * exp(-x * x));
  return x;
}

/* sigmoid in the form that never overflows: exp of a non-positive number. */
NN_HD static inline double nn_sigmoid(double x) {
  if (x >= 0) return 1.0 / (1.0 + exp(-x));
  double e = exp(x);
  return e / (1.0 + e);
}
NN_HD static inline float nn_sigmoid_f(float x) {
  if (x >= 0) return 1.0f / (1.0f + expf(-x));
  float e = expf(x);
  return e / (1.0f + e);
}

NN_HD static inline double nn_unary_apply(nn_unary_op op, double x) {
  switch (op) {
  case NN_NEG: return -x;
  case NN_EXP: return exp(x);
  case NN_LOG: return log(x);
  case NN_SQRT: return sqrt(x);
  case NN_ABS: return fabs(x);
  case NN_SIGMOID: return nn_sigmoid(x);
  case NN_TANH: return tanh(x);
  case NN_RELU: return x > 0 ? x : (isnan(x) ? x : 0);
  case NN_STEP: return x > 0 ? 1 : 0;
  case NN_SIN: return sin(x);
  case NN_COS: return cos(x);
  case NN_SIGN: return x > 0 ? 1 : (x < 0 ? -1 : 0);
  case NN_FLOOR: return floor(x);
  case NN_CEIL: return ceil(x);
  case NN_LOG1P: return log1p(x);
  case NN_EXPM1: return expm1(x);
  case NN_LOG2: return log2(x);
  case NN_LOG10: return log10(x);
  case NN_RSQRT: return 1 / sqrt(x);
  case NN_RECIPROCAL: return 1 / x;
  case NN_SQUARE: return x * x;
  case NN_TAN: return tan(x);
  case NN_ASIN: return asin(x);
  case NN_ACOS: return acos(x);
  case NN_ATAN: return atan(x);
  case NN_SINH: return sinh(x);
  case NN_COSH: return cosh(x);
  case NN_ERF: return erf(x);
  case NN_ERFINV: return nn_erfinv(x);
  case NN_TRUNC: return trunc(x);
  case NN_FRAC: return x - trunc(x);
  case NN_ISNAN: return isnan(x);
  case NN_ISINF: return isinf(x);
  case NN_ISFINITE: return isfinite(x);
  case NN_LOGICAL_NOT: return x == 0;
  default: return nearbyint(x); /* round half to even, as PyTorch */
  }
}

/* x - trunc(x): 0 for whole x, NaN for inf and NaN */
NN_HD static inline float nn_frac_f(float x) { return x - nn_trunc_f(x); }

NN_HD static inline float nn_unary_apply_f(nn_unary_op op, float x) {
  switch (op) {
  case NN_NEG: return -x;
  case NN_EXP: return expf(x);
  case NN_LOG: return logf(x);
  case NN_SQRT: return sqrtf(x);
  case NN_ABS: return fabsf(x);
  case NN_SIGMOID: return nn_sigmoid_f(x);
  case NN_TANH: return tanhf(x);
  case NN_RELU: return x > 0 ? x : (isnan(x) ? x : 0);
  case NN_LOG1P: return nn_log1p_f32(x);
  case NN_EXPM1: return nn_expm1_f32(x);
  case NN_LOG2: return nn_log2_f32(x);
  case NN_LOG10: return log10f(x);
  case NN_RSQRT: return 1 / sqrtf(x);
  case NN_RECIPROCAL: return 1 / x;
  case NN_SQUARE: return x * x;
  case NN_TAN: return nn_tan_f32(x);
  case NN_ASIN: return asinf(x);
  case NN_ACOS: return acosf(x);
  case NN_ATAN: return nn_atan_f32(x);
  case NN_SINH: return sinhf(x);
  case NN_COSH: return coshf(x);
  case NN_ERF: return nn_erf_f32(x);
  case NN_ERFINV: return nn_erfinv_f32(x);
  case NN_TRUNC: return nn_trunc_f(x);
  case NN_FRAC: return nn_frac_f(x);
  default: return (float)nn_unary_apply(op, x);
  }
}

/* The ops whose result is bool (the tests of a value); they have no gradient. */
NN_HD static inline int nn_unary_gives_bool(nn_unary_op op) {
  return op == NN_ISNAN || op == NN_ISINF || op == NN_ISFINITE || op == NN_LOGICAL_NOT;
}

/* sigmoid as a loop over an array computes it, vectorisable: e = exp(-|x|),
   then 1/(1+e) or e/(1+e) by the sign, the form that never overflows;
   selects between values computed beforehand, no branch. */
NN_HD static inline float nn_sigmoid_select_f32(float v) {
  float a = v < 0 ? -v : v;
  float e = nn_exp_f32(-a), s = 1.0f / (1.0f + e), es = e * s;
  float r = v >= 0 ? s : es;
  return v == v ? r : v;
}

/* relu as one compare and a select: x where x > 0 or x is NaN (PyTorch
   propagates NaN), else 0. */
NN_HD static inline float nn_relu_select_f32(float v) { return v <= 0 ? 0.0f : v; }

/* relu's backward, PyTorch's threshold_backward: 0 where x <= 0, else g, a
   select (so at a NaN input g passes, and where x <= 0 an infinite g
   gives 0, not NaN). */
NN_HD static inline float nn_relu_grad_select_f32(float g, float x) { return x <= 0 ? 0.0f : g; }
NN_HD static inline double nn_relu_grad(double g, double x) { return x <= 0 ? 0 : g; }

/* sigmoid's backward from its output y, in float for float32 data (the
   hot path of every sigmoid network; the generic path multiplies by
   nn_unary_derivative's double). */
NN_HD static inline float nn_sigmoid_grad_f32(float g, float y) { return g * (1.0f - y) * y; }

/* The local derivative reads the op's output y for these (sigmoid, tanh,
   exp, sqrt, and PyTorch's choices for expm1, rsqrt, reciprocal, tan,
   erfinv), its input x for the others. */
NN_HD static inline int nn_unary_grad_reads_output(nn_unary_op op) {
  return op == NN_EXP || op == NN_SQRT || op == NN_SIGMOID || op == NN_TANH || op == NN_EXPM1 ||
         op == NN_RSQRT || op == NN_RECIPROCAL || op == NN_TAN || op == NN_ERFINV;
}

/* d op / dx, from x or y as nn_unary_grad_reads_output says (relu's is
   nn_relu_grad: it selects). */
NN_HD static inline double nn_unary_derivative(nn_unary_op op, double x, double y) {
  switch (op) {
  case NN_NEG: return -1;
  case NN_EXP: return y;
  case NN_LOG: return 1 / x;
  case NN_SQRT: return 0.5 / y;
  case NN_ABS: return x > 0 ? 1 : (x < 0 ? -1 : 0);
  case NN_SIGMOID: return y * (1 - y);
  case NN_TANH: return 1 - y * y;
  case NN_SIN: return cos(x);
  case NN_COS: return -sin(x);
  case NN_LOG1P: return 1 / (x + 1);
  case NN_EXPM1: return y + 1;
  case NN_LOG2: return 1 / (x * 0.69314718055994531);
  case NN_LOG10: return 1 / (x * 2.3025850929940457);
  case NN_RSQRT: return -0.5 * y * y * y;
  case NN_RECIPROCAL: return -(y * y);
  case NN_SQUARE: return 2 * x;
  case NN_TAN: return 1 + y * y;
  case NN_ASIN: return 1 / sqrt(1 - x * x);
  case NN_ACOS: return -1 / sqrt(1 - x * x);
  case NN_ATAN: return 1 / (x * x + 1);
  case NN_SINH: return cosh(x);
  case NN_COSH: return sinh(x);
  case NN_ERF: return 1.1283791670955126 * exp(-x * x);   /* 2 / sqrt(pi) */
  case NN_ERFINV: return 0.88622692545275801 * exp(y * y); /* sqrt(pi) / 2 */
  case NN_FRAC: return 1;
  default: return 0; /* step, sign, floor, ceil, round, trunc: flat almost everywhere */
  }
}

/* ---- clamp ----------------------------------------------------------- */
/* min(max(x, lo), hi) with numbers for bounds: a NaN x stays NaN (both
   comparisons are false), lo > hi gives hi. */
NN_HD static inline double nn_clamp_value(double v, double lo, double hi) {
  v = v < lo ? lo : v;
  return v > hi ? hi : v;
}
NN_HD static inline float nn_clamp_value_f(float v, float lo, float hi) {
  v = v < lo ? lo : v;
  return v > hi ? hi : v;
}

/* ---- nan_to_num ------------------------------------------------------ */
/* NaN, +inf and -inf replaced by the given values, the rest unchanged. */
NN_HD static inline double nn_nan_to_num_value(double v, double nan, double posinf, double neginf) {
  return isnan(v) ? nan : (v == INFINITY ? posinf : (v == -INFINITY ? neginf : v));
}

/* ---- the select-style gradients (nn_pointwise_grad_op, backend.h) ----
   out is the forward's value where the rule reads it: x^y (POW_EXPONENT)
   or lo^x (NUMBER_BASE), as nn_pointwise_power recomputes it. */
NN_HD static inline double nn_pointwise_grad_value(nn_pointwise_grad_op op, double g, double x, double y,
                                             double out, double lo, double hi) {
  switch (op) {
  case NN_GRAD_POW_BASE: return y == 0 ? 0 : g * (y * pow(x, y - 1));
  case NN_GRAD_POW_EXPONENT: return g * (x == 0 && y >= 0 ? 0 : out * log(x));
  case NN_GRAD_MAXIMUM: return x < y ? 0 : (x == y ? g / 2 : g);
  case NN_GRAD_MINIMUM: return x > y ? 0 : (x == y ? g / 2 : g);
  case NN_GRAD_NUMBER_BASE: return g * (lo == 0 && x >= 0 ? 0 : out * log(lo));
  default: return x >= lo && x <= hi ? g : 0;
  }
}

/* The forward's power, as the binary kernels computed it in dtype (the
   gradient's): float32 in float, else in double. */
NN_HD static inline double nn_pointwise_power(nn_dtype dtype, double base, double e) {
  return dtype == NN_FLOAT32 ? (double)powf((float)base, (float)e) : pow(base, e);
}

#endif

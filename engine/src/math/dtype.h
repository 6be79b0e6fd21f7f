/* math/dtype.h: the dtypes' table (name, element size, category,
 * signedness) and the conversions every generic kernel goes through. A
 * dtype is added here (and in nn.h's enum); the kernels' generic paths then
 * handle it, and only their float32 and float64 fast paths are written per
 * dtype. Everything here is NN_HD: the CUDA kernels convert the same way. */
#ifndef NN_MATH_DTYPE_H
#define NN_MATH_DTYPE_H

#include "math/common.h"

/* bool < integer < floating: PyTorch's categories, in promotion order */
enum { NN_KIND_BOOL, NN_KIND_INTEGER, NN_KIND_FLOATING };

/* The table, one column a property, two bits a dtype (shifted by 2 *
   dtype): packed so that every kernel's question (element size, category)
   is a shift and a mask, with no branch, on the hot paths too. */
#define NN_DTYPE_COLUMN(f32, f64, i64, b, i32, i16, i8, u8, f16, bf16)                          \
  ((unsigned)(f32) << 2 * NN_FLOAT32 | (unsigned)(f64) << 2 * NN_FLOAT64 |                      \
   (unsigned)(i64) << 2 * NN_INT64 | (unsigned)(b) << 2 * NN_BOOL |                             \
   (unsigned)(i32) << 2 * NN_INT32 | (unsigned)(i16) << 2 * NN_INT16 |                          \
   (unsigned)(i8) << 2 * NN_INT8 | (unsigned)(u8) << 2 * NN_UINT8 |                             \
   (unsigned)(f16) << 2 * NN_FLOAT16 | (unsigned)(bf16) << 2 * NN_BFLOAT16)
/*                                 f32 f64 i64 bool i32 i16 i8 u8 f16 bf16 */
#define NN_DTYPE_LOG2_SIZES NN_DTYPE_COLUMN(2, 3, 3, 0, 2, 1, 0, 0, 1, 1)
#define NN_DTYPE_KINDS NN_DTYPE_COLUMN(2, 2, 1, 0, 1, 1, 1, 1, 2, 2)
#define NN_DTYPE_SIGNED NN_DTYPE_COLUMN(1, 1, 1, 0, 1, 1, 1, 0, 1, 1)

NN_HD static inline unsigned nn_dtype_column(unsigned column, nn_dtype dtype) {
  return (column >> (2 * (unsigned)dtype)) & 3u;
}

NN_HD static inline size_t nn_element_size(nn_dtype dtype) {
  return (size_t)1 << nn_dtype_column(NN_DTYPE_LOG2_SIZES, dtype);
}
NN_HD static inline int nn_dtype_kind(nn_dtype dtype) { return (int)nn_dtype_column(NN_DTYPE_KINDS, dtype); }
NN_HD static inline int nn_floating_dtype(nn_dtype dtype) { return nn_dtype_kind(dtype) == NN_KIND_FLOATING; }
NN_HD static inline int nn_signed_dtype(nn_dtype dtype) { return (int)nn_dtype_column(NN_DTYPE_SIGNED, dtype); }

/* PyTorch's name: torch.<name> */
static inline const char *nn_dtype_table_name(nn_dtype dtype) {
  switch (dtype) {
  case NN_FLOAT32: return "float32";
  case NN_FLOAT64: return "float64";
  case NN_INT64: return "int64";
  case NN_INT32: return "int32";
  case NN_INT16: return "int16";
  case NN_INT8: return "int8";
  case NN_UINT8: return "uint8";
  case NN_FLOAT16: return "float16";
  case NN_BFLOAT16: return "bfloat16";
  default: return "bool";
  }
}

/* float16 and bfloat16: stored in 16 bits, computed in float32 */
NN_HD static inline int nn_half_dtype(nn_dtype dtype) {
  return dtype == NN_FLOAT16 || dtype == NN_BFLOAT16;
}

/* PyTorch's promote_types (c10/core/ScalarType.h): the higher category;
   within one, the wider; uint8 beside a signed integer needs the next
   signed width (int8 + uint8 is int16); float16 beside bfloat16 neither
   holds the other, so float32. */
NN_HD static inline nn_dtype nn_promote_dtypes(nn_dtype a, nn_dtype b) {
  int ka = nn_dtype_kind(a), kb = nn_dtype_kind(b);
  size_t sa = nn_element_size(a), sb = nn_element_size(b);
  if (a == b) return a;
  if (ka != kb) return ka > kb ? a : b;
  if (ka == NN_KIND_FLOATING) {
    if (sa == sb) return NN_FLOAT32; /* float16 and bfloat16 */
    return sa > sb ? a : b;
  }
  int signed_a = nn_signed_dtype(a), signed_b = nn_signed_dtype(b);
  if (signed_a == signed_b) return sa > sb ? a : b;
  size_t size = signed_a ? (sa > 2 * sb ? sa : 2 * sb) : (sb > 2 * sa ? sb : 2 * sa);
  return size == 2 ? NN_INT16 : size == 4 ? NN_INT32 : NN_INT64;
}

/* ---- the 16-bit floating formats ----------------------------------------- */
NN_HD static inline uint32_t nn_float_bits(float f) {
  uint32_t u;
  memcpy(&u, &f, sizeof u);
  return u;
}
NN_HD static inline float nn_bits_float(uint32_t u) {
  float f;
  memcpy(&f, &u, sizeof f);
  return f;
}

/* IEEE binary16, rounded to nearest, ties to even; overflow to inf; NaN
   the quiet NaN of its sign (PyTorch's 0x7e00). */
NN_HD static inline uint16_t nn_float_to_half(float f) {
  uint32_t u = nn_float_bits(f);
  uint16_t sign = (uint16_t)((u >> 16) & 0x8000u);
  uint32_t a = u & 0x7fffffffu;
  if (a > 0x7f800000u) return (uint16_t)(sign | 0x7e00u);
  if (a >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u); /* 65520 and up round to inf */
  if (a < 0x38800000u) {                                    /* below 2^-14: subnormal or 0 */
    if (a < 0x33000000u) return sign;                       /* at most 2^-25: 0 */
    uint32_t mant = (a & 0x7fffffu) | 0x800000u;
    int shift = 126 - (int)(a >> 23); /* 14..24: the subnormal's scale */
    uint32_t kept = mant >> shift, rest = mant & ((1u << shift) - 1), half = 1u << (shift - 1);
    if (rest > half || (rest == half && (kept & 1))) kept++;
    return (uint16_t)(sign | kept);
  }
  uint32_t r = a + 0xfffu + ((a >> 13) & 1u); /* ties to even at bit 13 */
  return (uint16_t)(sign | ((r - 0x38000000u) >> 13));
}

NN_HD static inline float nn_half_to_float(uint16_t h) {
  uint32_t sign = (uint32_t)(h & 0x8000u) << 16, e = (h >> 10) & 0x1fu, m = h & 0x3ffu;
  if (e == 0x1f) return nn_bits_float(sign | 0x7f800000u | (m << 13));
  if (e == 0) { /* subnormal: m * 2^-24, exact in float */
    float v = (float)m * 5.9604644775390625e-8f;
    return sign ? -v : v;
  }
  return nn_bits_float(sign | ((e + 112u) << 23) | (m << 13));
}

/* bfloat16: float32's top half, rounded to nearest even; NaN as PyTorch
   writes it (0x7fc0, sign dropped). */
NN_HD static inline uint16_t nn_float_to_bfloat16(float f) {
  uint32_t u = nn_float_bits(f);
  if (f != f) return 0x7fc0u;
  return (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}
NN_HD static inline float nn_bfloat16_to_float(uint16_t b) { return nn_bits_float((uint32_t)b << 16); }

/* ---- loads and stores ---------------------------------------------------- */
/* Element i of p, as a double. */
NN_HD static inline double nn_load(nn_dtype dtype, const void *p, int64_t i) {
  switch (dtype) {
  case NN_FLOAT32: return ((const float *)p)[i];
  case NN_FLOAT64: return ((const double *)p)[i];
  case NN_INT64: return (double)((const int64_t *)p)[i];
  case NN_INT32: return ((const int32_t *)p)[i];
  case NN_INT16: return ((const int16_t *)p)[i];
  case NN_INT8: return ((const int8_t *)p)[i];
  case NN_FLOAT16: return nn_half_to_float(((const uint16_t *)p)[i]);
  case NN_BFLOAT16: return nn_bfloat16_to_float(((const uint16_t *)p)[i]);
  default: return ((const unsigned char *)p)[i];
  }
}

/* Saturates where the cast alone is undefined: NaN is 0, out of range the nearest end. */
NN_HD static inline int64_t nn_double_to_int64(double v) {
  return isnan(v) ? 0 : v >= 9223372036854775807.0 ? INT64_MAX
                      : v <= -9223372036854775808.0 ? INT64_MIN : (int64_t)v;
}

/* A floating value into a narrower integer, as PyTorch does on x86: through
   a 32-bit conversion (a value it cannot hold, NaN or infinite, gives
   INT32_MIN), then the low bits (300.0 is 44 as int8, -1.0 is 255 as
   uint8). */
NN_HD static inline int64_t nn_double_to_int32_bits(double v) {
  return (isnan(v) || v >= 2147483648.0 || v <= -2147483649.0) ? INT32_MIN : (int64_t)v;
}

/* v wrapped to dtype's width (two's complement), as an integer op's
   result is stored; bools are v != 0. */
NN_HD static inline void nn_store_integer(nn_dtype dtype, void *p, int64_t i, int64_t v) {
  switch (dtype) {
  case NN_INT64: ((int64_t *)p)[i] = v; break;
  case NN_INT32: ((int32_t *)p)[i] = (int32_t)(uint32_t)(uint64_t)v; break;
  case NN_INT16: ((int16_t *)p)[i] = (int16_t)(uint16_t)(uint64_t)v; break;
  case NN_INT8: ((int8_t *)p)[i] = (int8_t)(uint8_t)(uint64_t)v; break;
  case NN_UINT8: ((uint8_t *)p)[i] = (uint8_t)(uint64_t)v; break;
  case NN_FLOAT32: ((float *)p)[i] = (float)v; break;
  case NN_FLOAT64: ((double *)p)[i] = (double)v; break;
  case NN_FLOAT16: ((uint16_t *)p)[i] = nn_float_to_half((float)v); break;
  case NN_BFLOAT16: ((uint16_t *)p)[i] = nn_float_to_bfloat16((float)v); break;
  default: ((unsigned char *)p)[i] = v != 0; break;
  }
}

/* The half types round from float32, as PyTorch's c10::Half(float) does
   (a double is first rounded to float). */
NN_HD static inline void nn_store(nn_dtype dtype, void *p, int64_t i, double v) {
  switch (dtype) {
  case NN_FLOAT32: ((float *)p)[i] = (float)v; break;
  case NN_FLOAT64: ((double *)p)[i] = v; break;
  case NN_INT64: ((int64_t *)p)[i] = nn_double_to_int64(v); break;
  case NN_INT32: case NN_INT16: case NN_INT8: case NN_UINT8:
    nn_store_integer(dtype, p, i, nn_double_to_int32_bits(v));
    break;
  case NN_FLOAT16: ((uint16_t *)p)[i] = nn_float_to_half((float)v); break;
  case NN_BFLOAT16: ((uint16_t *)p)[i] = nn_float_to_bfloat16((float)v); break;
  default: ((unsigned char *)p)[i] = v != 0; break;
  }
}

/* v as dtype holds it (float32 and the half types round), back as a double. */
NN_HD static inline double nn_round_to(nn_dtype dtype, double v) {
  /* the conversions themselves, not nn_store into a 2-byte variable: the
     sanitizer build's compiler cannot tell that store's wider cases unused */
  if (dtype == NN_FLOAT32) return (double)(float)v;
  if (dtype == NN_FLOAT16) return nn_half_to_float(nn_float_to_half((float)v));
  if (dtype == NN_BFLOAT16) return nn_bfloat16_to_float(nn_float_to_bfloat16((float)v));
  return v;
}

/* Integers (and bools, as 0 and 1) compute exactly, as int64. */
NN_HD static inline int64_t nn_load_integer(nn_dtype dtype, const void *p, int64_t i) {
  switch (dtype) {
  case NN_INT64: return ((const int64_t *)p)[i];
  case NN_INT32: return ((const int32_t *)p)[i];
  case NN_INT16: return ((const int16_t *)p)[i];
  case NN_INT8: return ((const int8_t *)p)[i];
  case NN_UINT8: case NN_BOOL: return ((const unsigned char *)p)[i];
  default: return nn_double_to_int64(nn_load(dtype, p, i));
  }
}

/* Element j of src into element i of dst: integers (and bools) pass as
   int64, so that int64 beyond 2^53 stays exact and a narrower integer
   wraps (int64 300 is int8 44); floating values pass as doubles. */
NN_HD static inline void nn_convert(nn_dtype dst_dtype, void *dst, int64_t i, nn_dtype src_dtype,
                                    const void *src, int64_t j) {
  if (nn_floating_dtype(src_dtype)) nn_store(dst_dtype, dst, i, nn_load(src_dtype, src, j));
  else nn_store_integer(dst_dtype, dst, i, nn_load_integer(src_dtype, src, j));
}

#endif

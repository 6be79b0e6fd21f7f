/* cpu/vector_loops.h: the loops of cpu/vector.h, included by each file that
 * compiles them for one instruction set (vector.c, vector_avx2.c,
 * vector_avx512.c); see there. */
#ifndef NN_CPU_VECTOR_LOOPS_H
#define NN_CPU_VECTOR_LOOPS_H

#include "cpu/vector.h"
#include "math/elementwise.h"
#include "math/optim.h"

#if defined(__SSE2__)
#include <immintrin.h>
#endif

static void sigmoid_loop(int64_t n, const float *x, float *out) {
  for (int64_t i = 0; i < n; i++) out[i] = nn_sigmoid_select_f32(x[i]);
}

static void relu_loop(int64_t n, const float *x, float *out) {
  for (int64_t i = 0; i < n; i++) out[i] = nn_relu_select_f32(x[i]);
}

/* g is read whatever x is: a load under the condition would be a branch
   per element, not a select. */
static void relu_grad_loop(int64_t n, const float *g, const float *x, float *gi) {
  for (int64_t i = 0; i < n; i++) gi[i] = nn_relu_grad_select_f32(g[i], x[i]);
}

static void sigmoid_grad_loop(int64_t n, const float *g, const float *y, float *gi) {
  for (int64_t i = 0; i < n; i++) gi[i] = nn_sigmoid_grad_f32(g[i], y[i]);
}

static void add_loop(int64_t n, const float *x, const float *y, float *out) {
  for (int64_t i = 0; i < n; i++) out[i] = x[i] + y[i];
}

static void mul_loop(int64_t n, const float *x, const float *y, float *out) {
  for (int64_t i = 0; i < n; i++) out[i] = x[i] * y[i];
}

static void fill_loop(int64_t n, float v, float *out) {
  for (int64_t i = 0; i < n; i++) out[i] = v;
}

/* The whole groups of eight of moments_loop, in the widest registers the
   variant has: eight double lanes are one AVX-512 register, two AVX or
   four SSE2 ones. Multiplies and adds apart (no FMA), as in the scalar
   lines after; `same` (p and q one run about one shift: the statistics'
   own sums) widens each group once. Returns how far it went. */
static inline int64_t moments_eights(double *a, double *b, const float *p, double ps, const float *q, double qs,
                                     int64_t n, int same) {
  int64_t i = 0;
#if defined(__AVX512F__)
  __m512d a8 = _mm512_loadu_pd(a), b8 = _mm512_loadu_pd(b), pk = _mm512_set1_pd(ps), qk = _mm512_set1_pd(qs);
  for (; i + 8 <= n; i += 8) {
    __m512d d = _mm512_sub_pd(_mm512_cvtps_pd(_mm256_loadu_ps(p + i)), pk);
    __m512d e = same ? d : _mm512_sub_pd(_mm512_cvtps_pd(_mm256_loadu_ps(q + i)), qk);
    a8 = _mm512_add_pd(a8, d), b8 = _mm512_add_pd(b8, _mm512_mul_pd(d, e));
  }
  _mm512_storeu_pd(a, a8), _mm512_storeu_pd(b, b8);
#elif defined(__AVX__)
  __m256d a0 = _mm256_loadu_pd(a), a4 = _mm256_loadu_pd(a + 4), b0 = _mm256_loadu_pd(b), b4 = _mm256_loadu_pd(b + 4);
  __m256d pk = _mm256_set1_pd(ps), qk = _mm256_set1_pd(qs);
  for (; i + 8 <= n; i += 8) {
    __m256d d0 = _mm256_sub_pd(_mm256_cvtps_pd(_mm_loadu_ps(p + i)), pk);
    __m256d d4 = _mm256_sub_pd(_mm256_cvtps_pd(_mm_loadu_ps(p + i + 4)), pk);
    __m256d e0 = same ? d0 : _mm256_sub_pd(_mm256_cvtps_pd(_mm_loadu_ps(q + i)), qk);
    __m256d e4 = same ? d4 : _mm256_sub_pd(_mm256_cvtps_pd(_mm_loadu_ps(q + i + 4)), qk);
    a0 = _mm256_add_pd(a0, d0), a4 = _mm256_add_pd(a4, d4);
    b0 = _mm256_add_pd(b0, _mm256_mul_pd(d0, e0)), b4 = _mm256_add_pd(b4, _mm256_mul_pd(d4, e4));
  }
  _mm256_storeu_pd(a, a0), _mm256_storeu_pd(a + 4, a4), _mm256_storeu_pd(b, b0), _mm256_storeu_pd(b + 4, b4);
#elif defined(__SSE2__)
  __m128d av[4], bv[4], pk = _mm_set1_pd(ps), qk = _mm_set1_pd(qs);
  for (int l = 0; l < 4; l++) av[l] = _mm_loadu_pd(a + 2 * l), bv[l] = _mm_loadu_pd(b + 2 * l);
  for (; i + 8 <= n; i += 8) {
    __m128 p0 = _mm_loadu_ps(p + i), p4 = _mm_loadu_ps(p + i + 4);
    __m128d d[4] = {_mm_cvtps_pd(p0), _mm_cvtps_pd(_mm_movehl_ps(p0, p0)), _mm_cvtps_pd(p4),
                    _mm_cvtps_pd(_mm_movehl_ps(p4, p4))}, e[4];
    for (int l = 0; l < 4; l++) d[l] = _mm_sub_pd(d[l], pk);
    if (same) {
      for (int l = 0; l < 4; l++) e[l] = d[l];
    } else {
      __m128 q0 = _mm_loadu_ps(q + i), q4 = _mm_loadu_ps(q + i + 4);
      e[0] = _mm_cvtps_pd(q0), e[1] = _mm_cvtps_pd(_mm_movehl_ps(q0, q0));
      e[2] = _mm_cvtps_pd(q4), e[3] = _mm_cvtps_pd(_mm_movehl_ps(q4, q4));
      for (int l = 0; l < 4; l++) e[l] = _mm_sub_pd(e[l], qk);
    }
    for (int l = 0; l < 4; l++) av[l] = _mm_add_pd(av[l], d[l]), bv[l] = _mm_add_pd(bv[l], _mm_mul_pd(d[l], e[l]));
  }
  for (int l = 0; l < 4; l++) _mm_storeu_pd(a + 2 * l, av[l]), _mm_storeu_pd(b + 2 * l, bv[l]);
#else
  for (; i + 8 <= n; i += 8)
    for (int l = 0; l < 8; l++) {
      double d = (double)p[i + l] - ps;
      a[l] += d, b[l] += d * (same ? d : (double)q[i + l] - qs);
    }
#endif
  return i;
}

static void moments_loop(double *a, double *b, const float *p, double ps, const float *q, double qs, int64_t n) {
  int64_t i = p == q && ps == qs ? moments_eights(a, b, p, ps, q, qs, n, 1) : moments_eights(a, b, p, ps, q, qs, n, 0);
  if (i + 4 <= n)
    for (int l = 0; l < 4; l++, i++) {
      double d = (double)p[i] - ps;
      a[l] += d, b[l] += d * ((double)q[i] - qs);
    }
  for (; i < n; i++) {
    double d = (double)p[i] - ps;
    a[0] += d, b[0] += d * ((double)q[i] - qs);
  }
}

/* Each op a loop of its own, so that the compiler knows the op and
   vectorises it (a switch per element is left to -O3's unswitching, which
   each build's inlining may turn off); the formulas are the ones the
   strided loops of cpu/elementwise.c call (nn_unary_apply_f's cases; a
   call of it here is not vectorised), so the values are the same. */
/* tan: blocks of elements all in the quick range take the formula's
   vector loop; a block with one outside (|x| >= 2^20, inf, NaN) the one
   for each element, which gives the same bits (o may be x: in place). */
static void tan_loop(int64_t n, const float *x, float *o) {
  enum { BLOCK = 1024 };
  for (int64_t start = 0; start < n; start += BLOCK) {
    int64_t end = n - start < BLOCK ? n : start + BLOCK;
    int slow = 0;
    for (int64_t i = start; i < end; i++) slow |= !nn_tan_quick(x[i]);
    if (slow)
      for (int64_t i = start; i < end; i++) o[i] = nn_tan_f32(x[i]);
    else
      for (int64_t i = start; i < end; i++) o[i] = nn_tan_select_f32(x[i]);
  }
}

/* erf: blocks of elements all in (-1, 1) take the small piece alone */
static void erf_loop(int64_t n, const float *x, float *o) {
  enum { BLOCK = 1024 };
  for (int64_t start = 0; start < n; start += BLOCK) {
    int64_t end = n - start < BLOCK ? n : start + BLOCK;
    int small = 1;
    for (int64_t i = start; i < end; i++) small &= fabsf(x[i]) < 1.0f;
    if (small)
      for (int64_t i = start; i < end; i++) o[i] = nn_erf_small_f32(x[i]);
    else
      for (int64_t i = start; i < end; i++) o[i] = nn_erf_f32(x[i]);
  }
}

/* trunc is exact, so every way of computing it gives the same bits: with
   SSE4.1 (the AVX variants) one rounding instruction, truncf; without it
   truncf is a call, and the formula's selects vectorise instead. */
static inline float trunc_exact(float x) {
#if defined(__SSE4_1__)
  return truncf(x);
#else
  return nn_trunc_f(x);
#endif
}

static int unary_loop(int op, int64_t n, const float *x, float *o) {
  switch ((nn_unary_op)op) {
  case NN_NEG: for (int64_t i = 0; i < n; i++) o[i] = -x[i]; return 1;
  case NN_ABS: for (int64_t i = 0; i < n; i++) o[i] = fabsf(x[i]); return 1;
  case NN_SQRT: for (int64_t i = 0; i < n; i++) o[i] = sqrtf(x[i]); return 1;
  case NN_RSQRT: for (int64_t i = 0; i < n; i++) o[i] = 1 / sqrtf(x[i]); return 1;
  case NN_RECIPROCAL: for (int64_t i = 0; i < n; i++) o[i] = 1 / x[i]; return 1;
  case NN_SQUARE: for (int64_t i = 0; i < n; i++) o[i] = x[i] * x[i]; return 1;
  case NN_TRUNC: for (int64_t i = 0; i < n; i++) o[i] = trunc_exact(x[i]); return 1;
  case NN_FRAC: for (int64_t i = 0; i < n; i++) o[i] = x[i] - trunc_exact(x[i]); return 1;
  case NN_LOG2: for (int64_t i = 0; i < n; i++) o[i] = nn_log2_f32(x[i]); return 1;
  case NN_LOG1P: for (int64_t i = 0; i < n; i++) o[i] = nn_log1p_f32(x[i]); return 1;
  case NN_EXPM1: for (int64_t i = 0; i < n; i++) o[i] = nn_expm1_f32(x[i]); return 1;
  case NN_TAN: tan_loop(n, x, o); return 1;
  case NN_ATAN: for (int64_t i = 0; i < n; i++) o[i] = nn_atan_f32(x[i]); return 1;
  case NN_ERF: erf_loop(n, x, o); return 1;
  case NN_ERFINV: for (int64_t i = 0; i < n; i++) o[i] = nn_erfinv_f32(x[i]); return 1;
  default: return 0;
  }
}

/* fmod and remainder: the quick case for every element (selects), then
   fmodf's where it does not hold, found by a test that vectorises too. */
static void fmod_loop(int remainder, int64_t n, const float *x, const float *y, float s, float *o) {
  int slow = 0;
  if (y) {
    for (int64_t i = 0; i < n; i++) {
      float m = nn_fmod_select_f(x[i], y[i]);
      o[i] = remainder ? nn_remainder_from_fmod_f(m, y[i]) : m;
      slow |= !nn_fmod_quick(x[i], y[i]);
    }
  } else {
    for (int64_t i = 0; i < n; i++) {
      float m = nn_fmod_select_f(x[i], s);
      o[i] = remainder ? nn_remainder_from_fmod_f(m, s) : m;
      slow |= !nn_fmod_quick(x[i], s);
    }
  }
  if (!slow) return;
  for (int64_t i = 0; i < n; i++) {
    float yi = y ? y[i] : s;
    if (!nn_fmod_quick(x[i], yi)) o[i] = remainder ? nn_remainder_f(x[i], yi) : fmodf(x[i], yi);
  }
}

static int binary_loop(int op, int64_t n, const float *x, const float *y, float s, float *o) {
  switch ((nn_binary_op)op) {
  case NN_FMOD: case NN_REMAINDER: fmod_loop(op == NN_REMAINDER, n, x, y, s, o); return 1;
  default: break;
  }
  if (y) {
    switch ((nn_binary_op)op) {
    case NN_ADD: for (int64_t i = 0; i < n; i++) o[i] = x[i] + y[i]; return 1;
    case NN_SUB: for (int64_t i = 0; i < n; i++) o[i] = x[i] - y[i]; return 1;
    case NN_MUL: for (int64_t i = 0; i < n; i++) o[i] = x[i] * y[i]; return 1;
    case NN_DIV: for (int64_t i = 0; i < n; i++) o[i] = x[i] / y[i]; return 1;
    case NN_ATAN2: for (int64_t i = 0; i < n; i++) o[i] = nn_atan2_f32(x[i], y[i]); return 1;
    case NN_MAXIMUM: for (int64_t i = 0; i < n; i++) o[i] = nn_binary_apply_f(NN_MAXIMUM, x[i], y[i]); return 1;
    case NN_MINIMUM: for (int64_t i = 0; i < n; i++) o[i] = nn_binary_apply_f(NN_MINIMUM, x[i], y[i]); return 1;
    default: return 0;
    }
  }
  switch ((nn_binary_op)op) {
  case NN_ADD: for (int64_t i = 0; i < n; i++) o[i] = x[i] + s; return 1;
  case NN_SUB: for (int64_t i = 0; i < n; i++) o[i] = x[i] - s; return 1;
  case NN_MUL: for (int64_t i = 0; i < n; i++) o[i] = x[i] * s; return 1;
  case NN_DIV: for (int64_t i = 0; i < n; i++) o[i] = x[i] / s; return 1;
  case NN_ATAN2: for (int64_t i = 0; i < n; i++) o[i] = nn_atan2_f32(x[i], s); return 1;
  /* clamp_min and clamp_max (maximum and minimum with a number) */
  case NN_MAXIMUM: for (int64_t i = 0; i < n; i++) o[i] = nn_binary_apply_f(NN_MAXIMUM, x[i], s); return 1;
  case NN_MINIMUM: for (int64_t i = 0; i < n; i++) o[i] = nn_binary_apply_f(NN_MINIMUM, x[i], s); return 1;
  default: return 0;
  }
}

/* ---- loops over short runs: whole vectors, then the last one's first lanes
   through a mask (for the few values of a small layer the remainder loops
   of a vectorised C loop cost more than the vectors) ---- */
#if defined(__AVX512F__)
enum { MASKED_LANES = 16 };
typedef __m512 masked_vec;
typedef __mmask16 lane_mask;
/* the first count lanes, 1 <= count <= 16 */
static inline lane_mask first_lanes(int64_t count) { return (lane_mask)((1u << count) - 1); }
static inline masked_vec lanes_load(const float *p) { return _mm512_loadu_ps(p); }
static inline void lanes_store(float *p, masked_vec v) { _mm512_storeu_ps(p, v); }
static inline masked_vec masked_load(const float *p, lane_mask m) { return _mm512_maskz_loadu_ps(m, p); }
static inline void masked_store(float *p, masked_vec v, lane_mask m) { _mm512_mask_storeu_ps(p, m, v); }
static inline masked_vec lanes_add(masked_vec a, masked_vec b) { return _mm512_add_ps(a, b); }
static inline masked_vec lanes_mul(masked_vec a, masked_vec b) { return _mm512_mul_ps(a, b); }
static inline masked_vec lanes_of(float x) { return _mm512_set1_ps(x); }
#define MASKED_LOOPS 1
#elif defined(__AVX2__)
enum { MASKED_LANES = 8 };
typedef __m256 masked_vec;
typedef __m256i lane_mask;
/* the first count lanes, 1 <= count <= 8 */
static inline lane_mask first_lanes(int64_t count) {
  static const int32_t ones_then_zeros[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};
  return _mm256_loadu_si256((const __m256i *)(ones_then_zeros + 8 - count));
}
static inline masked_vec lanes_load(const float *p) { return _mm256_loadu_ps(p); }
static inline void lanes_store(float *p, masked_vec v) { _mm256_storeu_ps(p, v); }
static inline masked_vec masked_load(const float *p, lane_mask m) { return _mm256_maskload_ps(p, m); }
static inline void masked_store(float *p, masked_vec v, lane_mask m) { _mm256_maskstore_ps(p, m, v); }
static inline masked_vec lanes_add(masked_vec a, masked_vec b) { return _mm256_add_ps(a, b); }
static inline masked_vec lanes_mul(masked_vec a, masked_vec b) { return _mm256_mul_ps(a, b); }
static inline masked_vec lanes_of(float x) { return _mm256_set1_ps(x); }
#define MASKED_LOOPS 1
#endif

#if defined(MASKED_LOOPS)
/* add_rows_loop's block of V vectors of columns, the last one's first
   `last` lanes only (1 <= last <= MASKED_LANES): held in registers across
   the rows */
static inline __attribute__((always_inline)) void add_rows_block(const int V, int64_t rows, int64_t cols,
                                                                 int64_t last, const float *s, float *d) {
  lane_mask m = first_lanes(last);
  masked_vec a[4];
  for (int v = 0; v < V - 1; v++) a[v] = lanes_load(d + v * MASKED_LANES);
  a[V - 1] = masked_load(d + (V - 1) * MASKED_LANES, m);
  for (int64_t i = 0; i < rows; i++, s += cols) {
    for (int v = 0; v < V - 1; v++) a[v] = lanes_add(a[v], lanes_load(s + v * MASKED_LANES));
    a[V - 1] = lanes_add(a[V - 1], masked_load(s + (V - 1) * MASKED_LANES, m));
  }
  for (int v = 0; v < V - 1; v++) lanes_store(d + v * MASKED_LANES, a[v]);
  masked_store(d + (V - 1) * MASKED_LANES, a[V - 1], m);
}
#endif

/* d[j] += s[i cols + j] for each row i in turn (a linear layer's bias
   gradient: the batch's rows summed in order into d). Each block of up to
   four vectors of columns is held in registers across all the rows (four
   independent chains of additions), d loaded and stored once: the loop
   over columns for each row, which reloads d at every row and finishes
   each with a remainder loop, cost about 165 instructions for a 4 x 10
   gradient. Every column gets the same additions in the same order in
   each variant (the rows', from the first): the same bits. The baseline's
   plain loop (restrict: d and s never overlap) vectorises four lanes wide. */
static void add_rows_loop(int64_t rows, int64_t cols, const float *restrict s, float *restrict d) {
#if defined(MASKED_LOOPS)
  int64_t j = 0;
  for (; j + 4 * MASKED_LANES <= cols; j += 4 * MASKED_LANES)
    add_rows_block(4, rows, cols, MASKED_LANES, s + j, d + j);
  int64_t left = cols - j, vectors = (left + MASKED_LANES - 1) / MASKED_LANES;
  int64_t last = left - (vectors - 1) * MASKED_LANES;
  switch (vectors) {
  case 1: add_rows_block(1, rows, cols, last, s + j, d + j); break;
  case 2: add_rows_block(2, rows, cols, last, s + j, d + j); break;
  case 3: add_rows_block(3, rows, cols, last, s + j, d + j); break;
  case 4: add_rows_block(4, rows, cols, last, s + j, d + j); break;
  default: break;
  }
#else
  for (int64_t i = 0; i < rows; i++)
    for (int64_t j = 0; j < cols; j++) d[j] += s[i * cols + j];
#endif
}

/* Plain SGD (no momentum, weight decay or maximize): p = p + -lr g, a
   multiply and an add (nn_sgd_param_f32), the last vector through a mask;
   restrict in the baseline's loop (p and g never overlap), which the
   compiler vectorises. */
static void sgd_plain_loop(int64_t n, float *restrict p, const float *restrict g, float lr) {
#if defined(MASKED_LOOPS)
  masked_vec neg_lr = lanes_of(-lr);
  int64_t i = 0;
  for (; i + MASKED_LANES <= n; i += MASKED_LANES)
    lanes_store(p + i, lanes_add(lanes_load(p + i), lanes_mul(neg_lr, lanes_load(g + i))));
  if (i < n) {
    lane_mask m = first_lanes(n - i);
    masked_store(p + i, lanes_add(masked_load(p + i, m), lanes_mul(neg_lr, masked_load(g + i, m))), m);
  }
#else
  for (int64_t i = 0; i < n; i++) p[i] = nn_sgd_param_f32(p[i], lr, g[i]);
#endif
}

/* ---- max and min of a float32 run (cpu/reduce.c's amax, amin, max, min) ----
   The processor's max and min instructions: max(v, best) is v > best ? v :
   best, so a NaN never enters (a comparison with it is false) and best
   is the numbers' extreme, as the reduction's portable lanes find it;
   unordered comparisons of pairs of vectors note whether any element is
   NaN. The last block is the run's last EXTREME_BLOCK elements, read
   twice (an extreme does not mind). */
#if defined(__AVX512F__)
typedef __mmask16 unordered_mask;
static inline masked_vec lanes_max(masked_vec v, masked_vec best) { return _mm512_max_ps(v, best); }
static inline masked_vec lanes_min(masked_vec v, masked_vec best) { return _mm512_min_ps(v, best); }
static inline unordered_mask lanes_unordered(masked_vec a, masked_vec b) { return _mm512_cmp_ps_mask(a, b, _CMP_UNORD_Q); }
static inline unordered_mask unordered_either(unordered_mask a, unordered_mask b) { return a | b; }
static inline int unordered_any(unordered_mask m) { return m != 0; }
static inline unordered_mask unordered_none(void) { return 0; }
#elif defined(__AVX2__)
typedef __m256 unordered_mask;
static inline masked_vec lanes_max(masked_vec v, masked_vec best) { return _mm256_max_ps(v, best); }
static inline masked_vec lanes_min(masked_vec v, masked_vec best) { return _mm256_min_ps(v, best); }
static inline unordered_mask lanes_unordered(masked_vec a, masked_vec b) { return _mm256_cmp_ps(a, b, _CMP_UNORD_Q); }
static inline unordered_mask unordered_either(unordered_mask a, unordered_mask b) { return _mm256_or_ps(a, b); }
static inline int unordered_any(unordered_mask m) { return _mm256_movemask_ps(m) != 0; }
static inline unordered_mask unordered_none(void) { return _mm256_setzero_ps(); }
#endif

#if defined(MASKED_LOOPS)
enum { EXTREME_BLOCK = 4 * MASKED_LANES };

static inline __attribute__((always_inline)) float extreme_run(const int want_max, int64_t n, const float *x,
                                                               int *nan) {
  masked_vec best[4];
  for (int v = 0; v < 4; v++) best[v] = lanes_load(x + v * MASKED_LANES);
  unordered_mask odd = unordered_none();
  for (int64_t j = 0; j < n; j += EXTREME_BLOCK) {
    const float *at = x + (n - j < EXTREME_BLOCK ? n - EXTREME_BLOCK : j);
    masked_vec a = lanes_load(at), b = lanes_load(at + MASKED_LANES);
    masked_vec c = lanes_load(at + 2 * MASKED_LANES), d = lanes_load(at + 3 * MASKED_LANES);
    odd = unordered_either(odd, unordered_either(lanes_unordered(a, b), lanes_unordered(c, d)));
    best[0] = want_max ? lanes_max(a, best[0]) : lanes_min(a, best[0]);
    best[1] = want_max ? lanes_max(b, best[1]) : lanes_min(b, best[1]);
    best[2] = want_max ? lanes_max(c, best[2]) : lanes_min(c, best[2]);
    best[3] = want_max ? lanes_max(d, best[3]) : lanes_min(d, best[3]);
  }
  best[0] = want_max ? lanes_max(best[2], best[0]) : lanes_min(best[2], best[0]);
  best[1] = want_max ? lanes_max(best[3], best[1]) : lanes_min(best[3], best[1]);
  best[0] = want_max ? lanes_max(best[1], best[0]) : lanes_min(best[1], best[0]);
  float lane[MASKED_LANES];
  lanes_store(lane, best[0]);
  float e = lane[0];
  for (int l = 1; l < MASKED_LANES; l++) e = want_max ? (lane[l] > e ? lane[l] : e) : (lane[l] < e ? lane[l] : e);
  *nan = unordered_any(odd);
  return e;
}

/* the largest (smallest) number of x[0..n), n >= EXTREME_BLOCK */
static float extreme_loop(int64_t n, const float *x, int want_max, int *nan) {
  return want_max ? extreme_run(1, n, x, nan) : extreme_run(0, n, x, nan);
}
#endif

#endif

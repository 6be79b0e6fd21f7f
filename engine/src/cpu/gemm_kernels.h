/* cpu/gemm_kernels.h: the float32 product kernels of cpu/vector.h's
 * nn_cpu_gemm_f32, included by each file that compiles them for one
 * instruction set with fused multiply-adds (gemm_avx2.c: AVX2 and FMA,
 * 8 lanes; gemm_avx512.c: AVX-512 F, 16 lanes). cpu/gemm.c decides which
 * products come here.
 *
 * Both kernels keep a block of c's sums in registers while the k terms
 * stream past, and read a and b where they lie: nothing is packed, so a
 * product costs its multiply-adds and the loads of its operands, not the
 * set-up of a BLAS call (for a 4x10 by 10x10 product, more than the
 * product), nor a copy of b (OpenBLAS's sgemm packs the whole of b on
 * every call: for a batch of 1 to 8 rows against a layer's weights that
 * copy is most of the time).
 *   rows: c's rows in the lanes, the lanes of a row of b times one term of
 *         a, broadcast (the micro-kernel shape of BLIS and OpenBLAS);
 *         wants b's rows contiguous.
 *   dots: each sum a dot product of a row of a and a column of b, both
 *         contiguous (x w^T: the linear layer's forward), summed along k in
 *         the lanes and across them at the end.
 * A fused multiply-add rounds once where a multiply and an add round
 * twice, and dots adds in another order: the results differ from the
 * baseline's in the last bits (tests/c/test_gemm.c holds every variant to
 * the float64 product with a tolerance). */
#ifndef NN_CPU_GEMM_KERNELS_H
#define NN_CPU_GEMM_KERNELS_H

#include <immintrin.h>
#include <stdint.h>

#include "cpu/vector.h"

#define ALWAYS_INLINE inline __attribute__((always_inline))

#if defined(__AVX512F__)
/* 32 registers: a block of 8 rows by 2 vectors is 16 sums */
#define LANES 16
#define ROWS_MAX 8
#define DOT_ROWS_MAX 8
typedef __m512 vec;
typedef __mmask16 lane_mask;
static ALWAYS_INLINE lane_mask first_lanes(int64_t count) { return (lane_mask)((1u << count) - 1); }
static ALWAYS_INLINE vec zero(void) { return _mm512_setzero_ps(); }
static ALWAYS_INLINE vec splat(float x) { return _mm512_set1_ps(x); }
static ALWAYS_INLINE vec load(const float *p) { return _mm512_loadu_ps(p); }
static ALWAYS_INLINE vec load_first(const float *p, lane_mask m) { return _mm512_maskz_loadu_ps(m, p); }
static ALWAYS_INLINE void store(float *p, vec v) { _mm512_storeu_ps(p, v); }
static ALWAYS_INLINE void store_first(float *p, vec v, lane_mask m) { _mm512_mask_storeu_ps(p, m, v); }
static ALWAYS_INLINE vec add(vec x, vec y) { return _mm512_add_ps(x, y); }
static ALWAYS_INLINE vec mul(vec x, vec y) { return _mm512_mul_ps(x, y); }
static ALWAYS_INLINE vec mul_add(vec x, vec y, vec z) { return _mm512_fmadd_ps(x, y, z); }
static ALWAYS_INLINE float lane_sum(vec v) { return _mm512_reduce_add_ps(v); }
#elif defined(__AVX2__) && defined(__FMA__)
/* 16 registers: 6 rows by 2 vectors is 12 sums, 2 loads of b, 1 of a */
#define LANES 8
#define ROWS_MAX 6
#define DOT_ROWS_MAX 4
typedef __m256 vec;
typedef __m256i lane_mask;
static ALWAYS_INLINE lane_mask first_lanes(int64_t count) {
  static const int32_t ones_then_zeros[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};
  return _mm256_loadu_si256((const __m256i *)(ones_then_zeros + 8 - count));
}
static ALWAYS_INLINE vec zero(void) { return _mm256_setzero_ps(); }
static ALWAYS_INLINE vec splat(float x) { return _mm256_set1_ps(x); }
static ALWAYS_INLINE vec load(const float *p) { return _mm256_loadu_ps(p); }
static ALWAYS_INLINE vec load_first(const float *p, lane_mask m) { return _mm256_maskload_ps(p, m); }
static ALWAYS_INLINE void store(float *p, vec v) { _mm256_storeu_ps(p, v); }
static ALWAYS_INLINE void store_first(float *p, vec v, lane_mask m) { _mm256_maskstore_ps(p, m, v); }
static ALWAYS_INLINE vec add(vec x, vec y) { return _mm256_add_ps(x, y); }
static ALWAYS_INLINE vec mul(vec x, vec y) { return _mm256_mul_ps(x, y); }
static ALWAYS_INLINE vec mul_add(vec x, vec y, vec z) { return _mm256_fmadd_ps(x, y, z); }
static ALWAYS_INLINE float lane_sum(vec v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  return _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)));
}
#else
#error "gemm_kernels.h: compile with -mavx2 -mfma or -mavx512f -mfma"
#endif

/* How c takes its sums s: c = s (a forward), c += s (a gradient added
   into place), or c = alpha s + beta c (beta 0: whatever c held, NaN
   included, is overwritten). */
enum { WRITE, ADD_INTO, SCALE };
typedef struct {
  int how;
  float alpha, beta;
} c_update;

static ALWAYS_INLINE c_update update_of(float alpha, float beta) {
  c_update u = {SCALE, alpha, beta};
  if (alpha == 1 && beta == 0) u.how = WRITE;
  else if (alpha == 1 && beta == 1) u.how = ADD_INTO;
  return u;
}

static ALWAYS_INLINE vec updated(vec s, vec old, const c_update *u) {
  if (u->how == ADD_INTO) return add(old, s);
  s = mul(splat(u->alpha), s);
  return u->beta == 0 ? s : mul_add(splat(u->beta), old, s);
}

/* c[0..LANES) (or its first lanes of m, when part) from the sums s */
static ALWAYS_INLINE void put(float *c, vec s, const int part, lane_mask m, const c_update *u) {
  if (u->how != WRITE) {
    vec old = u->how == SCALE && u->beta == 0 ? zero() : part ? load_first(c, m) : load(c);
    s = updated(s, old, u);
  }
  if (part) store_first(c, s, m);
  else store(c, s);
}

static ALWAYS_INLINE void put_scalar(float *c, float s, const c_update *u) {
  if (u->how == WRITE) *c = s;
  else if (u->how == ADD_INTO) *c = *c + s;
  else *c = u->alpha * s + (u->beta == 0 ? 0.0f : u->beta * *c);
}

/* ---- rows ---------------------------------------------------------------- */
/* R rows of c by V vectors of columns (the last one's first lanes of m
   only, when part): sum over p of a[r a0 + p a1] b[p b0 + j]. */
static ALWAYS_INLINE void rows_block(const int R, const int V, const int part, lane_mask m, int64_t k,
                                     const float *a, int64_t a0, int64_t a1, const float *b,
                                     int64_t b0, float *c, int64_t c0, const c_update *u) {
  vec s[ROWS_MAX][2];
  for (int r = 0; r < R; r++)
    for (int v = 0; v < V; v++) s[r][v] = zero();
  for (int64_t p = 0; p < k; p++) {
    const float *bp = b + p * b0, *ap = a + p * a1;
    vec b_first = V == 1 && part ? load_first(bp, m) : load(bp);
    vec b_second = V == 2 ? (part ? load_first(bp + LANES, m) : load(bp + LANES)) : zero();
    for (int r = 0; r < R; r++) {
      vec x = splat(ap[r * a0]);
      s[r][0] = mul_add(x, b_first, s[r][0]);
      if (V == 2) s[r][1] = mul_add(x, b_second, s[r][1]);
    }
  }
  for (int r = 0; r < R; r++) {
    float *cr = c + r * c0;
    if (V == 1) {
      put(cr, s[r][0], part, m, u);
    } else {
      put(cr, s[r][0], 0, m, u);
      put(cr + LANES, s[r][1], part, m, u);
    }
  }
}

/* R rows of c, all n columns */
static ALWAYS_INLINE void rows_panel(const int R, int64_t n, int64_t k, const float *a, int64_t a0,
                                     int64_t a1, const float *b, int64_t b0, float *c, int64_t c0,
                                     const c_update *u) {
  lane_mask all = first_lanes(LANES);
  int64_t j = 0;
  for (; j + 2 * LANES <= n; j += 2 * LANES) rows_block(R, 2, 0, all, k, a, a0, a1, b + j, b0, c + j, c0, u);
  int64_t left = n - j;
  if (left > LANES) rows_block(R, 2, 1, first_lanes(left - LANES), k, a, a0, a1, b + j, b0, c + j, c0, u);
  else if (left == LANES) rows_block(R, 1, 0, all, k, a, a0, a1, b + j, b0, c + j, c0, u);
  else if (left > 0) rows_block(R, 1, 1, first_lanes(left), k, a, a0, a1, b + j, b0, c + j, c0, u);
}

/* c = alpha a b + beta c, a m x k (any strides), b k x n with rows b0
   apart and contiguous, c m x n with rows c0 apart; k > 0. */
static void rows_f32(int64_t m, int64_t n, int64_t k, float alpha, const float *a, int64_t a0,
                     int64_t a1, const float *b, int64_t b0, float beta, float *c, int64_t c0) {
  c_update u = update_of(alpha, beta);
  int64_t i = 0;
  for (; i + ROWS_MAX <= m; i += ROWS_MAX) rows_panel(ROWS_MAX, n, k, a + i * a0, a0, a1, b, b0, c + i * c0, c0, &u);
  const float *ai = a + i * a0;
  float *ci = c + i * c0;
  switch (m - i) { /* the rows left: a block of their own height, kept in registers */
  case 1: rows_panel(1, n, k, ai, a0, a1, b, b0, ci, c0, &u); break;
  case 2: rows_panel(2, n, k, ai, a0, a1, b, b0, ci, c0, &u); break;
  case 3: rows_panel(3, n, k, ai, a0, a1, b, b0, ci, c0, &u); break;
  case 4: rows_panel(4, n, k, ai, a0, a1, b, b0, ci, c0, &u); break;
  case 5: rows_panel(5, n, k, ai, a0, a1, b, b0, ci, c0, &u); break;
#if ROWS_MAX > 6
  case 6: rows_panel(6, n, k, ai, a0, a1, b, b0, ci, c0, &u); break;
  case 7: rows_panel(7, n, k, ai, a0, a1, b, b0, ci, c0, &u); break;
#endif
  default: break;
  }
}

/* ---- dots ---------------------------------------------------------------- */
/* R rows of a by J columns of b, R J sums of k terms: sum over p of
   a[r a0 + p] b[j b1 + p]. */
static ALWAYS_INLINE void dots_block(const int R, const int J, int64_t k, const float *a, int64_t a0,
                                     const float *b, int64_t b1, float *c, int64_t c0,
                                     const c_update *u) {
  vec s[DOT_ROWS_MAX][2];
  for (int r = 0; r < R; r++)
    for (int j = 0; j < J; j++) s[r][j] = zero();
  int64_t p = 0;
  for (; p + LANES <= k; p += LANES) {
    vec b_first = load(b + p), b_second = J == 2 ? load(b + b1 + p) : zero();
    for (int r = 0; r < R; r++) {
      vec x = load(a + r * a0 + p);
      s[r][0] = mul_add(x, b_first, s[r][0]);
      if (J == 2) s[r][1] = mul_add(x, b_second, s[r][1]);
    }
  }
  if (p < k) {
    lane_mask m = first_lanes(k - p);
    vec b_first = load_first(b + p, m), b_second = J == 2 ? load_first(b + b1 + p, m) : zero();
    for (int r = 0; r < R; r++) {
      vec x = load_first(a + r * a0 + p, m);
      s[r][0] = mul_add(x, b_first, s[r][0]);
      if (J == 2) s[r][1] = mul_add(x, b_second, s[r][1]);
    }
  }
  for (int r = 0; r < R; r++)
    for (int j = 0; j < J; j++) put_scalar(c + r * c0 + j, lane_sum(s[r][j]), u);
}

static ALWAYS_INLINE void dots_panel(const int R, int64_t n, int64_t k, const float *a, int64_t a0,
                                     const float *b, int64_t b1, float *c, int64_t c0,
                                     const c_update *u) {
  int64_t j = 0;
  for (; j + 2 <= n; j += 2) dots_block(R, 2, k, a, a0, b + j * b1, b1, c + j, c0, u);
  if (j < n) dots_block(R, 1, k, a, a0, b + j * b1, b1, c + j, c0, u);
}

/* c = alpha a b + beta c, a m x k with rows a0 apart and contiguous, b
   k x n with columns b1 apart and contiguous (b = w^T), c as in rows_f32;
   k > 0. */
static void dots_f32(int64_t m, int64_t n, int64_t k, float alpha, const float *a, int64_t a0,
                     const float *b, int64_t b1, float beta, float *c, int64_t c0) {
  c_update u = update_of(alpha, beta);
  int64_t i = 0;
  for (; i + DOT_ROWS_MAX <= m; i += DOT_ROWS_MAX)
    dots_panel(DOT_ROWS_MAX, n, k, a + i * a0, a0, b, b1, c + i * c0, c0, &u);
  const float *ai = a + i * a0;
  float *ci = c + i * c0;
  switch (m - i) {
  case 1: dots_panel(1, n, k, ai, a0, b, b1, ci, c0, &u); break;
  case 2: dots_panel(2, n, k, ai, a0, b, b1, ci, c0, &u); break;
  case 3: dots_panel(3, n, k, ai, a0, b, b1, ci, c0, &u); break;
#if DOT_ROWS_MAX > 4
  case 4: dots_panel(4, n, k, ai, a0, b, b1, ci, c0, &u); break;
  case 5: dots_panel(5, n, k, ai, a0, b, b1, ci, c0, &u); break;
  case 6: dots_panel(6, n, k, ai, a0, b, b1, ci, c0, &u); break;
  case 7: dots_panel(7, n, k, ai, a0, b, b1, ci, c0, &u); break;
#endif
  default: break;
  }
}


/* ---- columns ------------------------------------------------------------- */
/* A product of at most four rows whose b has contiguous columns (x w^T for
   a small batch: a layer's forward). The rows of c go in the lanes of a
   128-bit vector, a's columns packed as such vectors once (4 k moves), b's
   columns read where they lie, one broadcast per term. Each sum of c is
   the chain of fused multiply-adds over p that rows_f32 makes, from zero in
   the same order, then updated as put() updates it: the result of copying
   b transposed and calling rows_f32, bit for bit, without the k n moves of
   the copy. */
#define COLUMNS_ROWS_MAX 4
#define COLUMNS_TERMS_MAX 128

/* J columns of c from b's columns at bj (b1 apart): M rows of sums; c's
   old values are bias[j] for every row when bias is given */
static ALWAYS_INLINE void columns_block(const int M, const int J, int64_t k, const float *pa,
                                        const float *bj, int64_t b1, const float *bias, float *c,
                                        int64_t c0, const c_update *u) {
  __m128 s[4];
  for (int j = 0; j < J; j++) s[j] = _mm_setzero_ps();
  for (int64_t p = 0; p < k; p++) {
    __m128 x = _mm_loadu_ps(pa + 4 * p);
    for (int j = 0; j < J; j++) s[j] = _mm_fmadd_ps(x, _mm_set1_ps(bj[j * b1 + p]), s[j]);
  }
  for (int j = 0; j < J; j++) {
    if (u->how != WRITE) {
      __m128 o;
      if (bias) {
        o = _mm_set1_ps(bias[j]);
      } else {
        float old[4] = {0, 0, 0, 0};
        for (int r = 0; r < M; r++) old[r] = c[r * c0 + j];
        o = _mm_loadu_ps(old);
      }
      if (u->how == ADD_INTO) {
        s[j] = _mm_add_ps(o, s[j]);
      } else {
        s[j] = _mm_mul_ps(_mm_set1_ps(u->alpha), s[j]);
        if (u->beta != 0) s[j] = _mm_fmadd_ps(_mm_set1_ps(u->beta), o, s[j]);
      }
    }
  }
  if (M == 4 && J == 4) { /* a full block: its columns turned into c's rows, one store each */
    _MM_TRANSPOSE4_PS(s[0], s[1], s[2], s[3]);
    for (int r = 0; r < 4; r++) _mm_storeu_ps(c + r * c0, s[r]);
    return;
  }
  for (int j = 0; j < J; j++) {
    float sum[4];
    _mm_storeu_ps(sum, s[j]);
    for (int r = 0; r < M; r++) c[r * c0 + j] = sum[r];
  }
}

/* a's M rows as vectors of four (zeros past M), one per term */
static ALWAYS_INLINE void columns_pack(const int M, int64_t k, const float *a, int64_t a0, int64_t a1,
                                       float *pa) {
  for (int64_t p = 0; p < k; p++)
    for (int r = 0; r < 4; r++) pa[4 * p + r] = r < M ? a[r * a0 + p * a1] : 0.0f;
}

static ALWAYS_INLINE void columns_panel(const int M, int64_t n, int64_t k, const float *pa,
                                        const float *b, int64_t b1, const float *bias, float *c,
                                        int64_t c0, const c_update *u) {
  int64_t j = 0;
  for (; j + 4 <= n; j += 4) columns_block(M, 4, k, pa, b + j * b1, b1, bias ? bias + j : NULL, c + j, c0, u);
  const float *bj = b + j * b1, *biasj = bias ? bias + j : NULL;
  switch (n - j) {
  case 1: columns_block(M, 1, k, pa, bj, b1, biasj, c + j, c0, u); break;
  case 2: columns_block(M, 2, k, pa, bj, b1, biasj, c + j, c0, u); break;
  case 3: columns_block(M, 3, k, pa, bj, b1, biasj, c + j, c0, u); break;
  default: break;
  }
}

/* c = alpha a b + beta c, or with bias c = alpha a b + bias (each row;
   beta then unused: what c = bias, then c = alpha a b + c gives), a m x k
   (any strides, m <= COLUMNS_ROWS_MAX, k <= COLUMNS_TERMS_MAX), b k x n
   with columns b1 apart and contiguous, c as in rows_f32; k > 0. */
static void columns_f32(int64_t m, int64_t n, int64_t k, float alpha, const float *a, int64_t a0,
                        int64_t a1, const float *b, int64_t b1, float beta, float *c, int64_t c0,
                        const float *bias) {
  float pa[4 * COLUMNS_TERMS_MAX];
  c_update u = update_of(alpha, bias ? 1.0f : beta);
  switch (m) { /* a block of m's own height, packed and written for that height */
  case 1: columns_pack(1, k, a, a0, a1, pa), columns_panel(1, n, k, pa, b, b1, bias, c, c0, &u); break;
  case 2: columns_pack(2, k, a, a0, a1, pa), columns_panel(2, n, k, pa, b, b1, bias, c, c0, &u); break;
  case 3: columns_pack(3, k, a, a0, a1, pa), columns_panel(3, n, k, pa, b, b1, bias, c, c0, &u); break;
  case 4: columns_pack(4, k, a, a0, a1, pa), columns_panel(4, n, k, pa, b, b1, bias, c, c0, &u); break;
  default: break;
  }
}
#endif

/* test_special.c: the float32 formulas of math/special.h (tan, atan,
 * atan2, erf, erfinv) against glibc's double functions rounded to float
 * (erfinv: math/elementwise.h's double nn_erfinv, Newton on glibc's erf),
 * over every 97th float of the whole range (44 million of each sign and
 * exponent), every float where the reductions and pieces meet or cancel
 * (tan around odd multiples of pi/2 and near 2^20, erf around 1 and 4,
 * erfinv near +-1 and 0), atan2 over pairs of random bit patterns, pairs
 * near the diagonal and C99 Annex F's special cases: each is within 0.51
 * ulp of the reference (the formulas' doubles are within 1e-11 relative,
 * so a float result is the correctly rounded one or within 1e-4 ulp of a
 * halfway point: measured, printed; a coefficient off in its 7th digit
 * breaks the bound), and the cases Annex F
 * fixes are exact, signs of zeros included. The vector variants of
 * cpu/vector.h give the formulas' bits (which the strided loops compute). */
#include "check.h"
#include "cpu/vector.h"
#include "math/elementwise.h"
#include "math/special.h"

#include <float.h>
#include <stdint.h>

enum { STRIDE = 97, CHUNK = 4096 };
#define BOUND 0.51

static float from_bits(uint32_t b) {
  float v;
  memcpy(&v, &b, sizeof v);
  return v;
}

/* |got - want| in units of the last place of the float nearest want */
static double ulps(float got, double want) {
  int e;
  frexp(fabs(want), &e); /* |want| = f 2^e, f in [0.5, 1): floats there are 2^(e-24) apart */
  double ulp = ldexp(1.0, (e - 24) < -149 ? -149 : e - 24);
  return fabs((double)got - want) / ulp;
}

typedef struct {
  const char *name;
  double worst;
  float worst_at, worst_at2;
} tally;

/* got against want: NaN for NaN, the same infinity, the same zero (sign
   included), else at most BOUND ulp */
static void check_result(tally *t, float got, double want, float x, float x2) {
  float want_f = (float)want;
  if (isnan(want) || isinf(want_f)) {
    CHECKF((isnan(want) && isnan(got)) || got == want_f, "%s(%a, %a) = %a, expected %a", t->name, (double)x,
           (double)x2, (double)got, want);
    return;
  }
  if (got == 0.0f && want_f == 0.0f)
    CHECKF(!signbit(got) == !signbit(want), "%s(%a, %a) = %a, expected the sign of %a", t->name, (double)x,
           (double)x2, (double)got, want);
  double e = ulps(got, want);
  if (e > t->worst) t->worst = e, t->worst_at = x, t->worst_at2 = x2;
  if (!(e <= BOUND)) CHECKF(0, "%s(%a, %a) = %a, %.3f ulp from %a", t->name, (double)x, (double)x2, (double)got, e, want);
}

typedef struct {
  tally t;
  int op;
  float (*formula)(float);
  double (*reference)(double);
} unary_function;

static void check_unary(unary_function *f, float x) {
  check_result(&f->t, f->formula(x), f->reference((double)x), x, 0.0f);
}

static double tan_d(double x) { return tan(x); }
static double atan_d(double x) { return atan(x); }
static double erf_d(double x) { return erf(x); }
static double erfinv_d(double x) { return nn_erfinv(x); }

/* each variant's contiguous loop gives the formula's bits */
static const char *const variant_names[] = {"baseline", "avx2", "avx512"};

/* Whether n results are the same bits, a NaN matching any NaN: which
   operand's payload a NaN carries is left to each loop's compiled order. */
static int same_results(const float *a, const float *b, int n) {
  for (int i = 0; i < n; i++)
    if (!(isnan(a[i]) && isnan(b[i])) && memcmp(&a[i], &b[i], sizeof(float)) != 0) return 0;
  return 1;
}

static void check_unary_variants(unary_function *f, const float *x, int n) {
  static float want[CHUNK], got[CHUNK];
  for (int i = 0; i < n; i++) want[i] = f->formula(x[i]);
  for (int v = 0; v < 3; v++) {
    const nn_cpu_vector *vec = nn_cpu_vector_named(variant_names[v]);
    if (!vec) continue;
    memset(got, 0, sizeof got);
    CHECK(vec->unary(f->op, n, x, got));
    CHECKF(same_results(got, want, n), "%s: the %s loop differs from the formula",
           f->t.name, variant_names[v]);
  }
}

static void check_atan2_variants(const float *y, const float *x, int n) {
  static float want[CHUNK], got[CHUNK];
  for (int v = 0; v < 3; v++) {
    const nn_cpu_vector *vec = nn_cpu_vector_named(variant_names[v]);
    if (!vec) continue;
    for (int i = 0; i < n; i++) want[i] = nn_atan2_f32(y[i], x[i]);
    CHECK(vec->binary(NN_ATAN2, n, y, x, 0.0f, got));
    CHECKF(same_results(got, want, n), "atan2: the %s loop differs", variant_names[v]);
    for (int i = 0; i < n; i++) want[i] = nn_atan2_f32(y[i], x[0]);
    CHECK(vec->binary(NN_ATAN2, n, y, NULL, x[0], got));
    CHECKF(same_results(got, want, n), "atan2 by a number: the %s loop differs",
           variant_names[v]);
  }
}

static uint32_t lcg_state = 12345;
static uint32_t next_bits(void) {
  lcg_state = lcg_state * 1664525u + 1013904223u;
  uint32_t hi = lcg_state >> 16;
  lcg_state = lcg_state * 1664525u + 1013904223u;
  return (hi << 16) | (lcg_state >> 16);
}

static tally atan2_tally = {"atan2", 0, 0, 0};
static void check_atan2(float y, float x) { check_result(&atan2_tally, nn_atan2_f32(y, x), atan2((double)y, (double)x), y, x); }

int main(void) {
  unary_function fs[] = {
      {{"tan", 0, 0, 0}, NN_TAN, nn_tan_f32, tan_d},
      {{"atan", 0, 0, 0}, NN_ATAN, nn_atan_f32, atan_d},
      {{"erf", 0, 0, 0}, NN_ERF, nn_erf_f32, erf_d},
      {{"erfinv", 0, 0, 0}, NN_ERFINV, nn_erfinv_f32, erfinv_d},
  };
  enum { TAN, ATAN, ERF, ERFINV, COUNT };
  const float special[] = {0.0f, -0.0f, INFINITY, -INFINITY, NAN, -NAN, 1e-45f, -1e-45f, 1e-40f, -1e-40f,
                           FLT_MIN, -FLT_MIN, FLT_MAX, -FLT_MAX, 1.0f, -1.0f, 0.99999994f, -0.99999994f,
                           1.00000012f, -1.00000012f, 2.0f, 0.5f, 0.41421356f, 0.41421359f, 2.4142134f,
                           2.4142137f, 3.9f, 4.0f, 4.1f, -4.0f, 10.0f, 1.5707964f, -1.5707964f, 4.712389f,
                           1048575.9f, 1048576.0f, -1048576.0f, 1e10f, 1e30f, 0.7853982f, 1e-30f};
  for (int k = 0; k < COUNT; k++)
    for (size_t i = 0; i < sizeof special / sizeof special[0]; i++) check_unary(&fs[k], special[i]);
  /* what Annex F and PyTorch fix exactly */
  CHECK(signbit(nn_tan_f32(-0.0f)) && nn_tan_f32(-0.0f) == 0.0f);
  CHECK(isnan(nn_tan_f32(INFINITY)) && isnan(nn_tan_f32(-INFINITY)) && isnan(nn_tan_f32(NAN)));
  CHECK(nn_atan_f32(INFINITY) == (float)(M_PI / 2) && nn_atan_f32(-INFINITY) == -(float)(M_PI / 2));
  CHECK(signbit(nn_atan_f32(-0.0f)) && isnan(nn_atan_f32(NAN)));
  CHECK(nn_erf_f32(INFINITY) == 1.0f && nn_erf_f32(-INFINITY) == -1.0f && signbit(nn_erf_f32(-0.0f)));
  CHECK(nn_erfinv_f32(1.0f) == INFINITY && nn_erfinv_f32(-1.0f) == -INFINITY);
  CHECK(isnan(nn_erfinv_f32(1.00000012f)) && isnan(nn_erfinv_f32(-2.0f)) && isnan(nn_erfinv_f32(INFINITY)) &&
        isnan(nn_erfinv_f32(NAN)));
  CHECK(signbit(nn_erfinv_f32(-0.0f)) && nn_erfinv_f32(-0.0f) == 0.0f);

  /* every STRIDE-th bit pattern; a chunk of them also through the vector loops */
  static float chunk[CHUNK], chunk2[CHUNK];
  int filled = 0;
  for (uint64_t b = 0; b < 0x100000000ULL; b += STRIDE) {
    float x = from_bits((uint32_t)b);
    for (int k = 0; k < COUNT; k++) check_unary(&fs[k], x);
    if ((b / STRIDE) % 8192 == 0 && filled < CHUNK - 64) chunk[filled++] = x;
  }
  for (size_t i = 0; i < sizeof special / sizeof special[0]; i++) chunk[filled++] = special[i];
  /* tan: every float within 300 of each odd multiple of pi/2 up to 1000
     of them, and of some far ones; every float below 2^20 near it */
  for (int k = 0; k < 2000; k++) {
    double m = (2.0 * (k < 1000 ? k : 1000 + (k - 1000) * 331) + 1) * M_PI / 2;
    uint32_t c;
    float mf = (float)m;
    if (mf >= 1048576.0f) break;
    memcpy(&c, &mf, sizeof c);
    for (int d = -300; d <= 300; d++) {
      check_unary(&fs[TAN], from_bits(c + (uint32_t)d));
      check_unary(&fs[TAN], -from_bits(c + (uint32_t)d));
    }
  }
  for (uint32_t d = 0; d < 200000; d++) check_unary(&fs[TAN], from_bits(0x49800000u - d));
  /* erf: every float of [0.5, 4.5) by 3; erfinv: every float of [0.5, 1)
     and the first 2^20 */
  for (uint32_t b = 0x3f000000u; b < 0x40900000u; b += 3) {
    check_unary(&fs[ERF], from_bits(b));
    check_unary(&fs[ATAN], from_bits(b));
  }
  for (uint32_t b = 0x3f000000u; b < 0x3f800000u; b++) check_unary(&fs[ERFINV], from_bits(b));
  for (uint32_t b = 0; b < 0x100000u; b++) check_unary(&fs[ERFINV], from_bits(b));

  /* atan2: Annex F, then pairs */
  const float zeros_infs[] = {0.0f, -0.0f, INFINITY, -INFINITY, NAN, 1.0f, -1.0f, 3.5f, -3.5f, 1e-45f, -1e-45f,
                              FLT_MAX, -FLT_MAX};
  enum { ZI = sizeof zeros_infs / sizeof zeros_infs[0] };
  for (int i = 0; i < ZI; i++)
    for (int j = 0; j < ZI; j++) check_atan2(zeros_infs[i], zeros_infs[j]);
  CHECK(nn_atan2_f32(0.0f, -0.0f) == (float)M_PI && nn_atan2_f32(-0.0f, -0.0f) == -(float)M_PI);
  CHECK(nn_atan2_f32(0.0f, 0.0f) == 0.0f && !signbit(nn_atan2_f32(0.0f, 0.0f)));
  CHECK(signbit(nn_atan2_f32(-0.0f, 0.0f)) && signbit(nn_atan2_f32(-0.0f, 5.0f)));
  CHECK(nn_atan2_f32(-0.0f, -5.0f) == -(float)M_PI && nn_atan2_f32(5.0f, -0.0f) == (float)(M_PI / 2));
  CHECK(nn_atan2_f32(-5.0f, 0.0f) == -(float)(M_PI / 2));
  CHECK(nn_atan2_f32(INFINITY, -INFINITY) == (float)(3 * M_PI / 4) &&
        nn_atan2_f32(-INFINITY, INFINITY) == -(float)(M_PI / 4));
  CHECK(nn_atan2_f32(5.0f, -INFINITY) == (float)M_PI && signbit(nn_atan2_f32(-5.0f, INFINITY)));
  CHECK(nn_atan2_f32(INFINITY, 5.0f) == (float)(M_PI / 2) && isnan(nn_atan2_f32(NAN, 0.0f)) &&
        isnan(nn_atan2_f32(0.0f, NAN)));
  int filled2 = 0;
  for (int i = 0; i < 3000000; i++) {
    float y = from_bits(next_bits()), x = from_bits(next_bits());
    check_atan2(y, x);
    /* and near the diagonal and the axes' neighbourhoods */
    uint32_t xb;
    memcpy(&xb, &x, sizeof xb);
    float near = from_bits((xb & 0x807fffffu) | 0x3f000000u);
    float other = near * (float)(0.3 + (next_bits() % 1000) * 0.0025);
    check_atan2(other, near);
    check_atan2(near, -other);
    if (i % 1024 == 0 && filled2 < CHUNK - 64) chunk2[filled2++] = other, chunk2[filled2++] = near;
  }

  /* and blocks all inside (-1, 1), which the tan and erf loops take apart */
  static float inside[CHUNK];
  for (int i = 0; i < CHUNK; i++) inside[i] = (float)((next_bits() >> 8) * 0x1p-23 - 1.0);
  for (int k = 0; k < COUNT; k++) {
    check_unary_variants(&fs[k], inside, CHUNK);
    check_unary_variants(&fs[k], chunk, filled);
    printf("%s: at most %.4f ulp (at %a)\n", fs[k].t.name, fs[k].t.worst, (double)fs[k].t.worst_at);
  }
  check_atan2_variants(chunk, chunk + 1, filled - 1);
  check_atan2_variants(chunk2, chunk2 + 1, filled2 - 1);
  printf("atan2: at most %.4f ulp (at %a, %a)\n", atan2_tally.worst, (double)atan2_tally.worst_at,
         (double)atan2_tally.worst_at2);
  return check_finish();
}

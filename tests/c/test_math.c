/* test_math.c: the float32 formulas of math/log.h (log2, log1p, expm1)
 * against glibc's double functions, over every 61st float of the whole
 * range (70 million of each sign and exponent) plus the special values
 * (+-0, +-inf, NaN, subnormals, the ends of the reductions' ranges): the
 * error of each is at most 1 ulp of the float result (measured: log2 and
 * log1p, computed in float, under 0.87 ulp; expm1, in double, under 0.51;
 * printed); and the vector variants of cpu/vector.h give the scalar
 * formula's bits (which the strided loops compute). Also fmod and
 * remainder through each variant's loop (the AVX ones divide in float and
 * fuse the multiply-add) against fmodf's exact value, bit for bit, over
 * pairs of random bit patterns and of nearby exponents. */
#include "check.h"
#include "cpu/vector.h"
#include "math/log.h"

#include <float.h>
#include <stdint.h>

enum { STRIDE = 61, CHUNK = 4096 };

static uint32_t float_bits_of(float v) {
  uint32_t b;
  memcpy(&b, &v, sizeof b);
  return b;
}

static float from_bits(uint32_t b) {
  float v;
  memcpy(&v, &b, sizeof v);
  return v;
}

/* |got - want| in units of the last place of the float nearest want */
static double ulps(float got, double want) {
  double a = fabs(want);
  int e;
  frexp(a, &e); /* a = f 2^e, f in [0.5, 1): a float there is 2^(e-24) apart */
  double ulp = ldexp(1.0, (e - 24) < -149 ? -149 : e - 24);
  return fabs((double)got - want) / ulp;
}

typedef struct {
  const char *name;
  int op;
  float (*formula)(float);
  double (*reference)(double);
  double worst;
  float worst_at;
} function;

/* one value: 0 ulp where both are NaN or both the same infinity */
static void check_value(function *f, float x) {
  float got = f->formula(x);
  double want = f->reference((double)x);
  float want_f = (float)want;
  if (isnan(want) || isinf(want_f)) {
    CHECKF((isnan(want) && isnan(got)) || got == want_f, "%s(%a) = %a, expected %a", f->name, (double)x,
           (double)got, (double)want_f);
    return;
  }
  double e = ulps(got, want);
  if (e > f->worst) f->worst = e, f->worst_at = x;
  if (!(e <= 1.0)) CHECKF(0, "%s(%a) = %a, %.3f ulp from %a", f->name, (double)x, (double)got, e, want);
}

static double log2_d(double x) { return log2(x); }
static double log1p_d(double x) { return log1p(x); }
static double expm1_d(double x) { return expm1(x); }

/* each variant's contiguous loop gives the formula's bits */
static void check_variants(function *f, const float *x, int n) {
  static float want[CHUNK], got[CHUNK];
  for (int i = 0; i < n; i++) want[i] = f->formula(x[i]);
  const char *names[] = {"baseline", "avx2", "avx512"};
  for (int v = 0; v < 3; v++) {
    const nn_cpu_vector *vec = nn_cpu_vector_named(names[v]);
    if (!vec) continue;
    memset(got, 0, sizeof got);
    CHECK(vec->unary(f->op, n, x, got));
    CHECKF(memcmp(got, want, (size_t)n * sizeof(float)) == 0, "%s: the %s loop differs from the formula",
           f->name, names[v]);
  }
}

/* a xorshift generator: the same pairs every run */
static uint32_t next_bits(uint64_t *state) {
  *state ^= *state << 13, *state ^= *state >> 7, *state ^= *state << 17;
  return (uint32_t)(*state >> 11);
}

/* each variant's fmod and remainder loops give fmodf's bits (and
   remainder's move by y); pairs of any bits, and pairs whose exponents lie
   within 20 of each other, where the quotient is below 2^23 (the loops'
   own formula; the rest take fmodf) */
static void check_fmod(void) {
  enum { PAIRS = 1 << 22 };
  static float x[CHUNK], y[CHUNK], got[CHUNK];
  uint64_t state = 88172645463325252ULL;
  const char *names[] = {"baseline", "avx2", "avx512"};
  long checked = 0;
  for (int first = 0; first < PAIRS; first += CHUNK) {
    for (int i = 0; i < CHUNK; i++) {
      x[i] = from_bits(next_bits(&state));
      uint32_t b = next_bits(&state);
      if (i % 3) { /* y's exponent near x's */
        int32_t e = (int32_t)((float_bits_of(x[i]) >> 23) & 0xff) + (int32_t)(b % 41) - 20;
        b = (b & 0x807fffffu) | ((uint32_t)(e < 0 ? 0 : e > 254 ? 254 : e) << 23);
      }
      y[i] = from_bits(b);
    }
    for (int v = 0; v < 3; v++) {
      const nn_cpu_vector *vec = nn_cpu_vector_named(names[v]);
      if (!vec) continue;
      for (int op = 0; op < 2; op++) {
        CHECK(vec->binary(op ? NN_REMAINDER : NN_FMOD, CHUNK, x, y, 0, got));
        for (int i = 0; i < CHUNK; i++) {
          float m = fmodf(x[i], y[i]);
          float want = op && m != 0 && ((y[i] < 0) != (m < 0)) ? m + y[i] : m;
          if (memcmp(&want, &got[i], sizeof want) != 0 && !(isnan(want) && isnan(got[i]))) {
            CHECKF(0, "%s %s(%a, %a) = %a, expected %a", names[v], op ? "remainder" : "fmod",
                   (double)x[i], (double)y[i], (double)got[i], (double)want);
            return;
          }
        }
        checked += CHUNK;
      }
    }
  }
  printf("fmod, remainder: %ld pairs through the variants' loops\n", checked);
}

int main(void) {
  check_fmod();
  function fs[] = {
      {"log2", NN_LOG2, nn_log2_f32, log2_d, 0, 0},
      {"log1p", NN_LOG1P, nn_log1p_f32, log1p_d, 0, 0},
      {"expm1", NN_EXPM1, nn_expm1_f32, expm1_d, 0, 0},
  };
  const float special[] = {0.0f, -0.0f, INFINITY, -INFINITY, NAN, -NAN, 1e-45f, -1e-45f, 1e-40f,
                           FLT_MIN, -FLT_MIN, FLT_MAX, -FLT_MAX, 1.0f, -1.0f, 2.0f, 0.5f,
                           1.41421356f, 1.41421366f, 0.70710677f, -0.9999999f, -0.99999994f,
                           9.5367431640625e-07f, -9.5367431640625e-07f, 9.536743e-07f, 1.9073486e-06f,
                           88.72283f, 88.72284f, 89.0f, 89.5f, -103.9f, -104.0f, -104.5f,
                           0.34657359f, -0.34657359f, 0.3465736f, 1e-30f, -1e-30f};
  for (int k = 0; k < 3; k++)
    for (size_t i = 0; i < sizeof special / sizeof special[0]; i++) check_value(&fs[k], special[i]);
  /* every STRIDE-th bit pattern; a chunk of them also through the vector loops */
  static float chunk[CHUNK];
  int filled = 0;
  for (uint64_t b = 0; b < 0x100000000ULL; b += STRIDE) {
    float x = from_bits((uint32_t)b);
    for (int k = 0; k < 3; k++) check_value(&fs[k], x);
    if ((b / STRIDE) % 4096 == 0 && filled < CHUNK) chunk[filled++] = x;
  }
  /* around 1 (log2, log1p's cancellations) and 0 (expm1's), densely */
  for (int32_t d = -300000; d <= 300000; d++) {
    check_value(&fs[0], from_bits((uint32_t)(0x3f800000 + d)));
    check_value(&fs[1], from_bits((uint32_t)(0x00000000 + (d < 0 ? -d : d))));
    check_value(&fs[1], from_bits((uint32_t)(0x80000000 + (d < 0 ? -d : d))));
    check_value(&fs[2], from_bits((uint32_t)(0x3e000000 + d)));
    check_value(&fs[2], from_bits((uint32_t)(0xbe000000 + d)));
  }
  for (size_t i = 0; i < sizeof special / sizeof special[0] && filled < CHUNK; i++) chunk[filled++] = special[i];
  for (int k = 0; k < 3; k++) {
    check_variants(&fs[k], chunk, filled);
    printf("%s: at most %.4f ulp (at %a)\n", fs[k].name, fs[k].worst, (double)fs[k].worst_at);
  }
  return check_finish();
}

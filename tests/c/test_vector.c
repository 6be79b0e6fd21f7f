/* test_vector.c: the variants of cpu/vector.h's loops (baseline, AVX2,
 * AVX-512: those built and run by this processor) give the baseline's
 * results bit for bit, over values that reach every branch of the
 * formulas (0, -0, subnormals, the ends of exp's range, inf, NaN), at
 * lengths that leave every remainder of the vector width, in place too. */
#include "check.h"
#include "cpu/vector.h"
#include "nn.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

enum { LONGEST = 67 };

/* Awkward values first, then a spread of ordinary ones. */
static void fill(float *v, int64_t n, uint32_t seed) {
  static const float special[] = {0.0f, -0.0f, 1e-40f, -1e-40f, 1.0f, -1.0f, 87.2f, -87.2f,
                                  87.4f, -87.4f, 88.8f, -88.8f, 200.0f, -200.0f, INFINITY,
                                  -INFINITY, NAN, 0.5f, -0.5f, 3e38f, -3e38f, 8388607.5f,
                                  -8388607.5f, 4194303.75f, -0.25f};
  for (int64_t i = 0; i < n; i++) {
    seed = seed * 1664525u + 1013904223u;
    float spread = ((float)(seed >> 8) / 16777216.0f - 0.5f) * 40.0f;
    v[i] = (seed >> 3) % 3 == 0 ? special[(seed >> 5) % (sizeof special / sizeof special[0])] : spread;
  }
}

/* A differs from the baseline B where the bits of an output differ. */
static void compare(const nn_cpu_vector *a, const nn_cpu_vector *b) {
  float x[LONGEST], y[LONGEST], out_a[LONGEST], out_b[LONGEST];
  for (int64_t n = 0; n <= LONGEST; n++) {
    fill(x, n, (uint32_t)n + 1);
    fill(y, n, (uint32_t)n + 1000);
    const char *names[] = {"sigmoid", "relu", "relu_grad", "sigmoid_grad", "add", "mul",
                           "trunc", "frac", "fill", "maximum", "clamp_min"};
    for (int k = 0; k < 11; k++) {
      memset(out_a, 0, sizeof out_a);
      memset(out_b, 0, sizeof out_b);
      switch (k) {
      case 0: a->sigmoid(n, x, out_a), b->sigmoid(n, x, out_b); break;
      case 1: a->relu(n, x, out_a), b->relu(n, x, out_b); break;
      case 2: a->relu_grad(n, y, x, out_a), b->relu_grad(n, y, x, out_b); break;
      case 3: a->sigmoid_grad(n, y, x, out_a), b->sigmoid_grad(n, y, x, out_b); break;
      case 4: a->add(n, x, y, out_a), b->add(n, x, y, out_b); break;
      case 5: a->mul(n, x, y, out_a), b->mul(n, x, y, out_b); break;
      case 6: CHECK(a->unary(NN_TRUNC, n, x, out_a) && b->unary(NN_TRUNC, n, x, out_b)); break;
      case 7: CHECK(a->unary(NN_FRAC, n, x, out_a) && b->unary(NN_FRAC, n, x, out_b)); break;
      case 8: a->fill(n, n ? x[0] : 1.0f, out_a), b->fill(n, n ? x[0] : 1.0f, out_b); break;
      case 9: CHECK(a->binary(NN_MAXIMUM, n, x, y, 0, out_a) && b->binary(NN_MAXIMUM, n, x, y, 0, out_b)); break;
      default: /* a NaN bound too */
        CHECK(a->binary(NN_MAXIMUM, n, x, NULL, n ? y[0] : 0.5f, out_a) &&
              b->binary(NN_MAXIMUM, n, x, NULL, n ? y[0] : 0.5f, out_b));
        break;
      }
      CHECKF(memcmp(out_a, out_b, sizeof out_a) == 0, "%s: %s differs from %s at n = %lld",
             names[k], a->name, b->name, (long long)n);
    }
    /* in place, as x:sigmoid_() and relu_() run */
    memcpy(out_a, x, sizeof x);
    a->sigmoid(n, out_a, out_a);
    b->sigmoid(n, x, out_b);
    CHECKF(memcmp(out_a, out_b, (size_t)n * sizeof(float)) == 0, "sigmoid in place: %s at n = %lld",
           a->name, (long long)n);
  }
}

/* a and b hold the same doubles bit for bit, except that any NaN equals
   any NaN: which NaN an inf - inf or a NaN operand leaves (its sign and
   payload) depends on the order the compiler gave the operands of an
   add, which differs between optimisation levels (the sanitizer build
   found it), and nothing downstream reads it */
static int same_sums(const double *a, const double *b, int count) {
  for (int i = 0; i < count; i++)
    if (!(isnan(a[i]) && isnan(b[i])) && memcmp(&a[i], &b[i], sizeof a[i]) != 0) return 0;
  return 1;
}

/* batch norm's moments: the same sums, lane for lane, at every length
   (whole groups of eight, a group of four, single elements), for a run
   about its own shift (p = q) and for a gradient against the input. */
static void compare_moments(const nn_cpu_vector *a, const nn_cpu_vector *b) {
  float x[LONGEST], y[LONGEST];
  for (int64_t n = 0; n <= LONGEST; n++) {
    fill(x, n, (uint32_t)n + 7);
    fill(y, n, (uint32_t)n + 2000);
    for (int same = 0; same < 2; same++) {
      double sa[2][8], sb[2][8];
      for (int l = 0; l < 8; l++) sa[0][l] = sb[0][l] = l, sa[1][l] = sb[1][l] = -0.5 * l;
      const float *p = same ? x : y;
      double ps = same ? 1.25 : 0;
      a->moments(sa[0], sa[1], p, ps, x, 1.25, n);
      b->moments(sb[0], sb[1], p, ps, x, 1.25, n);
      CHECKF(same_sums(sa[0], sb[0], 16), "moments%s: %s differs from %s at n = %lld", same ? " (p = q)" : "",
             a->name, b->name, (long long)n);
    }
  }
}

/* a linear layer's bias gradient: rows summed in order into d, whose
   values past cols stay as they were; the rows and columns that reach
   each block of the variants (four vectors, one, the last one's lanes).
   Any NaN equals any NaN (which one an add of two leaves depends on the
   order the compiler gave its operands, as in same_sums). */
static void compare_add_rows(const nn_cpu_vector *a, const nn_cpu_vector *b) {
  enum { ROWS = 5 };
  float s[ROWS * LONGEST], da[LONGEST + 4], db[LONGEST + 4];
  for (int64_t rows = 0; rows <= ROWS; rows++)
    for (int64_t cols = 0; cols <= LONGEST; cols++) {
      fill(s, rows * cols, (uint32_t)(rows * 131 + cols));
      fill(da, LONGEST + 4, (uint32_t)cols + 3000);
      memcpy(db, da, sizeof da);
      a->add_rows(rows, cols, s, da);
      b->add_rows(rows, cols, s, db);
      int same = 1;
      for (int64_t j = 0; j < LONGEST + 4; j++)
        same &= (isnan(da[j]) && isnan(db[j])) || memcmp(&da[j], &db[j], sizeof da[j]) == 0;
      CHECKF(same, "add_rows: %s differs from %s at %lld x %lld", a->name, b->name, (long long)rows,
             (long long)cols);
    }
}

/* plain SGD's step, at every length (whole vectors, the last one's
   lanes), the values past n left as they were */
static void compare_sgd_plain(const nn_cpu_vector *a, const nn_cpu_vector *b) {
  float g[LONGEST], pa[LONGEST + 4], pb[LONGEST + 4];
  for (int64_t n = 0; n <= LONGEST; n++) {
    fill(g, n, (uint32_t)n + 11);
    fill(pa, LONGEST + 4, (uint32_t)n + 4000);
    memcpy(pb, pa, sizeof pa);
    float lr = n % 3 == 0 ? 0.1f : n % 3 == 1 ? 1.0f : 3e-5f;
    a->sgd_plain(n, pa, g, lr);
    b->sgd_plain(n, pb, g, lr);
    int same = 1;
    for (int64_t j = 0; j < LONGEST + 4; j++)
      same &= (isnan(pa[j]) && isnan(pb[j])) || memcmp(&pa[j], &pb[j], sizeof pa[j]) == 0;
    CHECKF(same, "sgd_plain: %s differs from %s at n = %lld", a->name, b->name, (long long)n);
  }
}

/* extreme: the largest (smallest) number of x and whether x holds a NaN,
   as a plain loop finds them, at every length from extreme_min past two
   blocks, over the awkward values (NaN, infinities, signed zeros) and
   runs of NaN alone. */
static void check_extreme(const nn_cpu_vector *a) {
  if (!a->extreme) return;
  enum { EXTREME_LONGEST = 3 * 64 + 7 };
  float x[EXTREME_LONGEST];
  for (int64_t n = a->extreme_min; n <= EXTREME_LONGEST; n++) {
    for (int pattern = 0; pattern < 3; pattern++) {
      fill(x, n, (uint32_t)n * 7 + (uint32_t)pattern);
      if (pattern == 1) /* no NaN: the extreme itself is checked */
        for (int64_t j = 0; j < n; j++) x[j] = isnan(x[j]) ? (float)j : x[j];
      if (pattern == 2)
        for (int64_t j = 0; j < n; j++) x[j] = NAN;
      for (int want_max = 0; want_max < 2; want_max++) {
        int nan = 0, any_nan = 0, seen = 0;
        float e = 0;
        for (int64_t j = 0; j < n; j++) {
          if (isnan(x[j])) { any_nan = 1; continue; }
          if (!seen || (want_max ? x[j] > e : x[j] < e)) e = x[j], seen = 1;
        }
        float got = a->extreme(n, x, want_max, &nan);
        CHECKF(nan == any_nan, "extreme: %s's NaN flag at n = %lld", a->name, (long long)n);
        CHECKF(any_nan || got == e, "extreme: %s gives %g, not %g, at n = %lld (%s)", a->name,
               (double)got, (double)e, (long long)n, want_max ? "max" : "min");
      }
    }
  }
}

int main(void) {
  const nn_cpu_vector *baseline = nn_cpu_vector_named("baseline");
  CHECK(baseline != NULL);
  CHECK(nn_cpu_vector_named("no such") == NULL);
  const nn_cpu_vector *best = nn_cpu_vector_best();
  CHECK(best != NULL && nn_cpu_vector_named(best->name) == best);
  const char *wider[] = {"avx2", "avx512"};
  for (int i = 0; i < 2; i++) {
    const nn_cpu_vector *v = nn_cpu_vector_named(wider[i]);
    if (v) {
      CHECK(strcmp(v->name, wider[i]) == 0);
      compare(v, baseline);
      compare_moments(v, baseline);
      compare_add_rows(v, baseline);
      compare_sgd_plain(v, baseline);
      check_extreme(v);
    } else {
      printf("%s: not built, or not run by this processor\n", wider[i]);
    }
  }
  return check_finish();
}

/* test_philox.c: the counter-based generator of the CUDA backend
 * (math/philox.h), computed on the CPU as the tests of the GPU's fills
 * will compute it.
 *
 * The known answers are Random123's (Salmon et al. 2011; the three
 * "philox4x32 10" lines of its tests/kat_vectors: counter, key, result).
 * In a build with CUDA, tests/cuda/test_philox_curand.cu also compares the
 * words with cuRAND's own code (curand_init(seed, g, 4 offset), curand()). */
#include "check.h"
#include "internal.h"
#include "math/philox.h"

static void test_known_answers(void) {
  static const struct {
    uint32_t counter[4], key[2], expected[4];
  } kat[] = {
      {{0, 0, 0, 0}, {0, 0}, {0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8}},
      {{0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff},
       {0xffffffff, 0xffffffff},
       {0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd}},
      {{0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344},
       {0xa4093822, 0x299f31d0},
       {0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1}},
  };
  for (size_t i = 0; i < sizeof kat / sizeof kat[0]; i++) {
    nn_philox_block c;
    memcpy(c.w, kat[i].counter, sizeof c.w);
    nn_philox_block r = nn_philox4x32_10(c, kat[i].key[0], kat[i].key[1]);
    for (int k = 0; k < 4; k++)
      CHECKF(r.w[k] == kat[i].expected[k], "known answer %zu word %d: %08x, expected %08x", i, k,
             r.w[k], kat[i].expected[k]);
  }
}

/* The fill's counter layout: offset in the low words, the group in the
   high ones, the seed as the key (low word first). */
static void test_counter_layout(void) {
  /* the third known answer, read as a fill's (seed, offset, group) */
  uint64_t seed = ((uint64_t)0x299f31d0 << 32) | 0xa4093822;
  uint64_t offset = ((uint64_t)0x85a308d3 << 32) | 0x243f6a88;
  uint64_t group = ((uint64_t)0x03707344 << 32) | 0x13198a2e;
  nn_philox_block r = nn_philox_group(seed, offset, group);
  CHECK(r.w[0] == 0xd16cfe09 && r.w[1] == 0x94fdcceb && r.w[2] == 0x5001e420 &&
        r.w[3] == 0x24126ea1);
  /* neighbouring groups and offsets differ */
  nn_philox_block a = nn_philox_group(1, 0, 0), b = nn_philox_group(1, 0, 1),
                  c = nn_philox_group(1, 1, 0), d = nn_philox_group(2, 0, 0);
  CHECK(memcmp(&a, &b, sizeof a) != 0 && memcmp(&a, &c, sizeof a) != 0 &&
        memcmp(&a, &d, sizeof a) != 0 && memcmp(&b, &c, sizeof a) != 0);
}

static void test_uniform(void) {
  CHECK(nn_philox_uniform_f32(0) == 0.0f);
  CHECK(nn_philox_uniform_f32(0xffffffffu) == 1.0f - 1.0f / 16777216.0f); /* below 1 */
  CHECK(nn_philox_uniform_f32(0x80000000u) == 0.5f);
  CHECK(nn_philox_uniform_f64(0, 0) == 0.0);
  CHECK(nn_philox_uniform_f64(0xffffffffu, 0xffffffffu) == 1.0 - 1.0 / 9007199254740992.0);
  CHECK(nn_philox_uniform_f64(0x80000000u, 0) == 0.5);
  /* a million draws: mean 1/2 and variance 1/12 within a few standard errors */
  double sum = 0, sum2 = 0;
  const int64_t n = 1 << 20;
  for (int64_t g = 0; g < n / 4; g++) {
    nn_philox_block w = nn_philox_group(777, 3, (uint64_t)g);
    for (int k = 0; k < 4; k++) {
      double u = nn_philox_uniform_f32(w.w[k]);
      sum += u, sum2 += u * u;
    }
  }
  double mean = sum / n, var = sum2 / n - mean * mean;
  CHECKF(fabs(mean - 0.5) < 5 * sqrt(1.0 / 12 / n), "uniform mean %.6f", mean);
  CHECKF(fabs(var - 1.0 / 12) < 1e-3, "uniform variance %.6f", var);
}

static void test_normal(void) {
  double sum = 0, sum2 = 0, sum4 = 0;
  const int64_t n = 1 << 20;
  int finite = 1;
  for (int64_t g = 0; g < n / 4; g++) {
    nn_philox_block w = nn_philox_group(42, 0, (uint64_t)g);
    float z[4];
    nn_philox_normal_pair_f32(w.w[0], w.w[1], &z[0], &z[1]);
    nn_philox_normal_pair_f32(w.w[2], w.w[3], &z[2], &z[3]);
    for (int k = 0; k < 4; k++) {
      finite = finite && isfinite(z[k]);
      sum += z[k], sum2 += (double)z[k] * z[k], sum4 += (double)z[k] * z[k] * z[k] * z[k];
    }
  }
  CHECK(finite);
  double mean = sum / n, var = sum2 / n - mean * mean;
  CHECKF(fabs(mean) < 5 / sqrt((double)n), "normal mean %.6f", mean);
  CHECKF(fabs(var - 1) < 0.01, "normal variance %.6f", var);
  CHECKF(fabs(sum4 / n - 3) < 0.05, "normal fourth moment %.6f (3 for a normal)", sum4 / n);
  /* the radius's uniform excludes 0: the largest word pair gives a finite value */
  float z0, z1;
  nn_philox_normal_pair_f32(0, 0, &z0, &z1);
  CHECK(isfinite(z0) && isfinite(z1) && z0 > 5.0f);
  double d0, d1;
  nn_philox_block top = {{0xffffffffu, 0xffffffffu, 0, 0}};
  nn_philox_normal_pair_f64(top, &d0, &d1);
  CHECK(isfinite(d0) && d0 > 8.0);
}

/* The generator's state: nn.manual_seed and nn.cuda.manual_seed seed it;
   each fill takes the next counters. */
static void test_generator(void) {
  nn_manual_seed(1234);
  CHECK(nn_cuda_initial_seed() == 1234);
  uint64_t seed, offset;
  nn_philox_next(1, &seed, &offset);
  CHECK(seed == 1234 && offset == 0);
  nn_philox_next(2, &seed, &offset);
  CHECK(offset == 1);
  nn_philox_next(1, &seed, &offset);
  CHECK(offset == 3);
  nn_cuda_manual_seed(99);
  nn_philox_next(1, &seed, &offset);
  CHECK(seed == 99 && offset == 0);
  CHECK(nn_initial_seed() == 1234); /* the CPU's generator is left alone */
}

int main(void) {
  test_known_answers();
  test_counter_layout();
  test_uniform();
  test_normal();
  test_generator();
  return check_finish();
}

/* test_philox_curand.cu: math/philox.h against cuRAND's own Philox4x32-10,
 * run on the host (no GPU needed): cuRAND's functions are compiled for the
 * host by giving its QUALIFIERS __host__. A fill's element words for
 * (seed, offset, group g) must be what curand() returns after
 * curand_init(seed, subsequence = g, offset = 4 * offset), so that a
 * kernel may use either. The kernel below is never launched: it checks
 * that the formulas compile for the device. */
#define QUALIFIERS static inline __host__ __device__
#include <curand_kernel.h>

#include <stdio.h>

extern "C" {
#include "math/philox.h"
}

__global__ void formulas_compile_for_the_device(float *out, uint64_t seed, uint64_t offset) {
  nn_philox_block w = nn_philox_group(seed, offset, threadIdx.x);
  float a, b;
  nn_philox_normal_pair_f32(w.w[0], w.w[1], &a, &b);
  double c, d;
  nn_philox_normal_pair_f64(w, &c, &d);
  out[threadIdx.x] = a + b + nn_philox_uniform_f32(w.w[2]) + (float)(c + d);
}

static uint64_t lcg = 0x2545F4914F6CDD1Dull;
static uint64_t next64(void) {
  lcg = lcg * 6364136223846793005ull + 1442695040888963407ull;
  return lcg ^ (lcg >> 29);
}

int main(void) {
  int passed = 0, failed = 0;
  for (int i = 0; i < 20000; i++) {
    uint64_t seed = next64(), offset = next64() >> (i % 64), g = next64() >> (i % 61);
    if (i % 4 == 0) offset = (uint64_t)i, g = (uint64_t)i * 3; /* small ones too */
    /* cuRAND's skipahead takes the offset in single draws: 4 per counter */
    if (offset >= (1ull << 62)) offset >>= 2;
    curandStatePhilox4_32_10_t state;
    curand_init(seed, g, 4 * offset, &state);
    nn_philox_block ours = nn_philox_group(seed, offset, g);
    int same = 1;
    for (int k = 0; k < 4; k++) same = same && curand(&state) == ours.w[k];
    if (same) {
      passed++;
    } else if (failed++ < 5) {
      printf("FAIL seed %016llx offset %llu group %llu\n", (unsigned long long)seed,
             (unsigned long long)offset, (unsigned long long)g);
    }
  }
  printf("%d passed, %d failed\n", passed, failed);
  return failed != 0;
}

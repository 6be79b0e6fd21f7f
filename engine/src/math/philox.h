/* math/philox.h: Philox4x32-10, the counter-based generator of the CUDA
 * backend's random numbers (Salmon, Moraes, Dror and Shaw, "Parallel random
 * numbers: as easy as 1, 2, 3", SC 2011), as cuRAND defines it
 * (curand_philox4x32_x.h): the same round function, key schedule and word
 * order, so that a value can be checked against cuRAND bit for bit.
 *
 * A counter-based generator needs no state that threads share: the numbers
 * of a random fill are a pure function of (seed, offset, element index).
 * A fill of values that take k words each (1 for a float32, 2 for a
 * float64) gives element i the words of block g = i / (4 / k):
 *     philox4x32_10(counter = {offset lo, offset hi, g lo, g hi},
 *                   key = {seed lo, seed hi})
 * which is cuRAND's curand_init(seed, subsequence = g, 4 * offset): any
 * launch shape gives the same numbers, and the CPU computes them too (the
 * tests do). The generator of a device is only (seed, offset); each fill
 * takes the next offset (nn_philox_next in rng.c).
 *
 * Only integer arithmetic decides the words; the conversions to floats
 * below are exact (uniform) or use the device's own log/sin/cos (normal),
 * so normals agree between CPU and GPU to a few ulp, uniforms exactly. */
#ifndef NN_MATH_PHILOX_H
#define NN_MATH_PHILOX_H

#include "common.h"

typedef struct { uint32_t w[4]; } nn_philox_block;

/* One round: two 32x32->64 products, their halves crossed and xored with
   the other words and the key (cuRAND's _philox4x32round). */
NN_HD static inline nn_philox_block nn_philox_round(nn_philox_block c, uint32_t k0, uint32_t k1) {
  uint64_t p0 = (uint64_t)0xD2511F53u * c.w[0];
  uint64_t p1 = (uint64_t)0xCD9E8D57u * c.w[2];
  nn_philox_block r;
  r.w[0] = (uint32_t)(p1 >> 32) ^ c.w[1] ^ k0;
  r.w[1] = (uint32_t)p1;
  r.w[2] = (uint32_t)(p0 >> 32) ^ c.w[3] ^ k1;
  r.w[3] = (uint32_t)p0;
  return r;
}

/* Ten rounds; the key grows by the Weyl constants (golden ratio and
   sqrt(3) - 1, as 32-bit fractions) between rounds. */
NN_HD static inline nn_philox_block nn_philox4x32_10(nn_philox_block counter, uint32_t k0,
                                                     uint32_t k1) {
  for (int round = 0; round < 10; round++) {
    counter = nn_philox_round(counter, k0, k1);
    k0 += 0x9E3779B9u;
    k1 += 0xBB67AE85u;
  }
  return counter;
}

/* The four words that serve elements 4g .. 4g + 3 of the fill that took
   (seed, offset). */
NN_HD static inline nn_philox_block nn_philox_group(uint64_t seed, uint64_t offset, uint64_t g) {
  nn_philox_block c;
  c.w[0] = (uint32_t)offset;
  c.w[1] = (uint32_t)(offset >> 32);
  c.w[2] = (uint32_t)g;
  c.w[3] = (uint32_t)(g >> 32);
  return nn_philox4x32_10(c, (uint32_t)seed, (uint32_t)(seed >> 32));
}

/* Uniform in [0, 1): the top 24 bits of a word (a float32 holds them
   exactly); float64 takes 53 bits from two words. */
NN_HD static inline float nn_philox_uniform_f32(uint32_t x) {
  return (float)(x >> 8) * (1.0f / 16777216.0f);
}
NN_HD static inline double nn_philox_uniform_f64(uint32_t hi, uint32_t lo) {
  uint64_t bits = ((uint64_t)(hi >> 5) << 26) | (lo >> 6);
  return (double)bits * (1.0 / 9007199254740992.0);
}

/* Box-Muller on two words: a pair of independent standard normals. The
   radius's uniform is taken in (0, 1] so that its log is finite. */
NN_HD static inline void nn_philox_normal_pair_f32(uint32_t a, uint32_t b, float *z0, float *z1) {
  float u = ((float)(a >> 8) + 1.0f) * (1.0f / 16777216.0f);
  float theta = 6.28318530717958648f * nn_philox_uniform_f32(b);
  float r = sqrtf(-2.0f * logf(u));
  *z0 = r * cosf(theta);
  *z1 = r * sinf(theta);
}
NN_HD static inline void nn_philox_normal_pair_f64(nn_philox_block w, double *z0, double *z1) {
  double u = 1.0 - nn_philox_uniform_f64(w.w[0], w.w[1]);
  double theta = 6.283185307179586477 * nn_philox_uniform_f64(w.w[2], w.w[3]);
  double r = sqrt(-2.0 * log(u));
  *z0 = r * cos(theta);
  *z1 = r * sin(theta);
}

#endif

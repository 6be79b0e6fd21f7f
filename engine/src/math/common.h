/* math/common.h: what every formula header needs. The headers of math/
 * hold each formula once, as `NN_HD static inline` functions that the C
 * compiler (for the CPU backend) and nvcc (for the CUDA backend) both
 * compile, so that both devices compute the same expression from one
 * source. They include nothing of the engine but nn.h's enums. */
#ifndef NN_MATH_COMMON_H
#define NN_MATH_COMMON_H

#include "nn.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

#if defined(__CUDACC__)
#define NN_HD __host__ __device__
#else
#define NN_HD
#endif

#endif

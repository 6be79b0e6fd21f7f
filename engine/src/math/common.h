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

/* GCC on the CPU only: comparisons that are not treated as trapping make
   the selects in these formulas branch-free, so that loops calling them
   vectorise. The engine never reads floating-point exception flags. */
#if defined(__GNUC__) && !defined(__clang__) && !defined(__CUDACC__)
#define NN_MATH_SELECTS_BEGIN _Pragma("GCC push_options") _Pragma("GCC optimize(\"no-trapping-math\")")
#define NN_MATH_SELECTS_END _Pragma("GCC pop_options")
#else
#define NN_MATH_SELECTS_BEGIN
#define NN_MATH_SELECTS_END
#endif

#endif

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

/* Comparisons that are not treated as trapping make the selects in these
   formulas branch-free, so that loops calling them vectorise: the whole
   build says so (-fno-trapping-math, CMakeLists.txt; the engine never
   reads floating-point exception flags). These marks once set the option
   around the formulas alone, which stopped GCC inlining them into callers
   compiled without it (a strided loop called nn_exp_f32 per element); they
   are kept empty for the loops that still carry them. */
#define NN_MATH_SELECTS_BEGIN
#define NN_MATH_SELECTS_END

#endif

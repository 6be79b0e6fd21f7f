/* cpu/gemm_avx2.c: cpu/gemm_kernels.h compiled with -mavx2 -mfma
 * (CMakeLists.txt, where the compiler takes them; else this file is
 * empty): the products of cpu/vector.h's "avx2" variant. */
#if defined(__AVX2__) && defined(__FMA__)
#include "cpu/gemm_kernels.h"

const nn_cpu_gemm_f32 nn_cpu_gemm_avx2 = {LANES, rows_f32, dots_f32, COLUMNS_ROWS_MAX, COLUMNS_TERMS_MAX, columns_f32};
#endif

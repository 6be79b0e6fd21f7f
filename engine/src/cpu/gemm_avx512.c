/* cpu/gemm_avx512.c: cpu/gemm_kernels.h compiled with -mavx512f -mfma
 * (CMakeLists.txt, where the compiler takes them; else this file is
 * empty): the products of cpu/vector.h's "avx512" variant. */
#if defined(__AVX512F__) && defined(__FMA__)
#include "cpu/gemm_kernels.h"

const nn_cpu_gemm_f32 nn_cpu_gemm_avx512 = {LANES, rows_f32, dots_f32, COLUMNS_ROWS_MAX, COLUMNS_TERMS_MAX, columns_f32};
#endif

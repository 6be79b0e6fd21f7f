/* cpu/vector_avx512.c: cpu/vector.h's loops for AVX-512 (F), compiled with
 * -mavx512f -mfma (CMakeLists.txt, where the compiler takes them; else
 * this file is empty). No contraction, as in vector_avx2.c. */
#ifdef __AVX512F__
#include "cpu/vector_loops.h"

extern const nn_cpu_gemm_f32 nn_cpu_gemm_avx512;

const nn_cpu_vector nn_cpu_vector_avx512 = {"avx512", sigmoid_loop, relu_loop, relu_grad_loop,
                                            sigmoid_grad_loop, add_loop, mul_loop, &nn_cpu_gemm_avx512,
                                            unary_loop, binary_loop, fill_loop, moments_loop,
                                            add_rows_loop, sgd_plain_loop, extreme_loop, EXTREME_BLOCK};
#endif

/* cpu/vector_avx2.c: cpu/vector.h's loops for AVX2, compiled with -mavx2
 * -mfma (CMakeLists.txt, where the compiler takes them; else this file is
 * empty). -ffp-contract=off: the elementwise loops fuse no multiply-add,
 * which would round differently from the baseline; only the products
 * (gemm_avx2.c) ask for one. */
#ifdef __AVX2__
#include "cpu/vector_loops.h"

extern const nn_cpu_gemm_f32 nn_cpu_gemm_avx2;

const nn_cpu_vector nn_cpu_vector_avx2 = {"avx2",   sigmoid_loop, relu_loop, relu_grad_loop,
                                          sigmoid_grad_loop, add_loop, mul_loop, &nn_cpu_gemm_avx2,
                                          unary_loop, binary_loop, fill_loop, moments_loop,
                                          add_rows_loop, sgd_plain_loop, extreme_loop, EXTREME_BLOCK};
#endif

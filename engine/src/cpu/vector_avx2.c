/* cpu/vector_avx2.c: cpu/vector.h's loops for AVX2, compiled with -mavx2
 * (CMakeLists.txt, where the compiler takes it; else this file is empty).
 * No -mfma: a fused multiply-add would round differently from the
 * baseline. */
#ifdef __AVX2__
#include "cpu/vector_loops.h"

const nn_cpu_vector nn_cpu_vector_avx2 = {"avx2",   sigmoid_loop, relu_loop, relu_grad_loop,
                                          sigmoid_grad_loop, add_loop, mul_loop};
#endif

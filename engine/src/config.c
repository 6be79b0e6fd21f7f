/* config.c: what the CPU backend runs on, for nn.config() and programs
 * that print it beside their figures (the benchmarks give PyTorch's
 * OpenBLAS the same kernels). */
#include <cblas.h>

#include "cpu/vector.h"
#include "nn.h"

const char *nn_blas_config(void) { return openblas_get_config(); }

const char *nn_blas_kernels(void) { return openblas_get_corename(); }

const char *nn_cpu_capability(void) { return nn_cpu_vector_best()->name; }

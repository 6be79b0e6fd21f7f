/* cuda/kernels_stub.cu: an empty nn_cuda_fill_kernels, so that the CUDA
 * backend builds before its kernels (branch i11-cudak) are merged: every
 * kernel entry then stays NULL and each op on "cuda" reports "<op>: not
 * implemented for cuda". The definition is weak, so the kernels' own
 * nn_cuda_fill_kernels replaces it when both are linked; delete this file
 * once they are in. */
#include "kernels.h"

extern "C" __attribute__((weak)) void nn_cuda_fill_kernels(nn_backend *b) { (void)b; }

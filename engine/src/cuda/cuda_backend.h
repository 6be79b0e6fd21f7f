/* cuda_backend.h: what the files of the CUDA backend (libnn_cuda.so)
 * share. The engine's headers are C; their declarations get C linkage here,
 * and the formulas of math/ compile for the device through NN_HD. */
#ifndef NN_CUDA_BACKEND_H
#define NN_CUDA_BACKEND_H

#include <cuda_runtime.h>

#include "backend.h"

/* The one stream every kernel and copy of this backend is queued on: the
   legacy default stream, which the kernels (cuda/common.cuh) launch on
   too. Work runs in the order it was asked for, so a block freed by the
   host can be reused at once by whatever is queued next. While a captured
   step's replay makes a graph (backend.cu's graph_begin), the stream being
   captured instead (kernels.cu defines it). */
extern cudaStream_t nn_cuda_launch_stream;

/* 0, or -1 with the error "cuda: what: message (cudaErrorName)". An
   error of an earlier kernel (an illegal address, say) is sticky: the
   context cannot be used again, and the message says so. */
int nn_cuda_check(cudaError_t status, const char *what);
/* After a launch: 0, or -1 when the kernel could not be started. */
int nn_cuda_backend_launched(const char *kernel);

/* Threads per block and blocks for n elements, for a grid-stride loop. */
enum { NN_CUDA_THREADS = 256 };
static inline unsigned nn_cuda_blocks(int64_t n) {
  int64_t blocks = (n + NN_CUDA_THREADS - 1) / NN_CUDA_THREADS;
  return blocks > 65535 * 8 ? 65535u * 8u : (unsigned)blocks;
}

/* copy.cu's copy and fill: the kernels every device needs for its tensors
   to be made and moved (the others come from nn_cuda_fill_kernels,
   kernels.h, which may replace these). */
int nn_cuda_backend_copy(const nn_iter *it);
int nn_cuda_backend_fill(const nn_iter *it, double value);

#endif

/* cuda/kernels.cu: nn_cuda_fill_kernels, which gathers the kernel files'
 * entries into a backend table, and the helpers of common.cuh. */
#include "cuda/common.cuh"
#include "cuda/kernels.h"

const nn_backend *nn_cuda_table;
cudaStream_t nn_cuda_launch_stream = 0;

extern "C" void nn_cuda_fill_kernels(nn_backend *b) {
  nn_cuda_table = b;
  nn_cuda_fill_copy_kernels(b);
  nn_cuda_fill_elementwise_kernels(b);
  nn_cuda_fill_activation_kernels(b);
  nn_cuda_fill_reduce_kernels(b);
  nn_cuda_fill_gemm_kernels(b);
  nn_cuda_fill_loss_kernels(b);
  nn_cuda_fill_optim_kernels(b);
  nn_cuda_fill_random_kernels(b);
  nn_cuda_fill_pool_kernels(b);
  nn_cuda_fill_conv_kernels(b);
  nn_cuda_fill_rnn_kernels(b);
  nn_cuda_fill_embedding_kernels(b);
  nn_cuda_fill_toolkit_kernels(b);
  nn_cuda_fill_collective_kernels(b);
}

int nn_cuda_status(const char *op, cudaError_t e) {
  if (e == cudaSuccess) return 0;
  nn_error_set("%s: cuda: %s", op, cudaGetErrorString(e));
  return -1;
}

int nn_cuda_launched(const char *op) { return nn_cuda_status(op, cudaGetLastError()); }

void *nn_cuda_scratch(const char *op, size_t nbytes) {
  void *p = nn_cuda_table && nn_cuda_table->alloc ? nn_cuda_table->alloc(nbytes ? nbytes : 1) : NULL;
  if (!p) nn_error_set("%s: cuda: out of memory (%zu bytes of scratch)", op, nbytes);
  return p;
}

void nn_cuda_scratch_release(void *p, size_t nbytes) {
  if (p) nn_cuda_table->free(p, nbytes ? nbytes : 1);
}

unsigned long long *nn_cuda_index_flag(const char *op) {
  unsigned long long *flag = (unsigned long long *)nn_cuda_scratch(op, sizeof *flag);
  if (!flag) return NULL;
  /* all bits set: NN_CUDA_NO_INDEX */
  if (nn_cuda_status(op, cudaMemsetAsync(flag, 0xff, sizeof *flag, nn_cuda_stream())) < 0) {
    nn_cuda_scratch_release(flag, sizeof *flag);
    return NULL;
  }
  return flag;
}

/* A failed read-back keeps the message to_host gave. */
unsigned long long nn_cuda_index_flag_read(unsigned long long *flag, int *status) {
  unsigned long long index = NN_CUDA_NO_INDEX;
  *status = nn_cuda_table->to_host(&index, flag, sizeof index);
  nn_cuda_scratch_release(flag, sizeof *flag);
  return *status < 0 ? NN_CUDA_NO_INDEX : index;
}

int nn_cuda_read_element(nn_dtype dtype, const void *data, int64_t i, double *v) {
  uint64_t bytes = 0; /* room for any element, aligned for any */
  size_t es = nn_element_size(dtype);
  if (nn_cuda_table->to_host(&bytes, (const char *)data + (size_t)i * es, es) < 0) return -1;
  *v = nn_load(dtype, &bytes, 0);
  return 0;
}

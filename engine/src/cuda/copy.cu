/* copy.cu: the strided copy (with dtype conversion and broadcasting) and
 * fill kernels, over the engine's iterator (nn_iter, passed by value): a
 * thread per element, its operands' offsets worked out from its linear
 * index, the last dimension fastest, as the CPU's nn_iter_run walks them. */
#include "cuda_backend.h"
#include "math/dtype.h"

/* The offsets of element `linear` in operands 0 and 1. */
__device__ static void offsets_of(const nn_iter &it, int64_t linear, int64_t *off0,
                                  int64_t *off1) {
  int64_t o0 = 0, o1 = 0;
  for (int d = it.ndim - 1; d >= 0; d--) {
    int64_t i = linear % it.size[d];
    linear /= it.size[d];
    o0 += i * it.stride[d][0];
    o1 += i * it.stride[d][1];
  }
  *off0 = o0;
  *off1 = o1;
}

static int64_t iter_numel(const nn_iter *it) {
  int64_t n = 1;
  for (int d = 0; d < it->ndim; d++) n *= it->size[d];
  return n;
}

/* Same dtype: the element's bytes, so that int64 beyond 2^53 stays exact;
   else nn_convert, as the CPU converts. */
__global__ static void copy_kernel(nn_iter it, int64_t n) {
  int64_t step = (int64_t)gridDim.x * blockDim.x;
  size_t esize = nn_element_size(it.dtype[0]);
  int same = it.dtype[0] == it.dtype[1];
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += step) {
    int64_t od, os;
    offsets_of(it, i, &od, &os);
    if (!same)
      nn_convert(it.dtype[0], it.data[0], od, it.dtype[1], it.data[1], os);
    else if (esize == 8)
      ((uint64_t *)it.data[0])[od] = ((const uint64_t *)it.data[1])[os];
    else if (esize == 4)
      ((uint32_t *)it.data[0])[od] = ((const uint32_t *)it.data[1])[os];
    else if (esize == 2)
      ((uint16_t *)it.data[0])[od] = ((const uint16_t *)it.data[1])[os];
    else
      ((unsigned char *)it.data[0])[od] = ((const unsigned char *)it.data[1])[os];
  }
}

int nn_cuda_backend_copy(const nn_iter *it) {
  int64_t n = iter_numel(it);
  if (n == 0) return 0;
  size_t esize = nn_element_size(it->dtype[0]);
  if (it->dtype[0] == it->dtype[1] && it->ndim == 1 && it->stride[0][0] == 1 &&
      it->stride[0][1] == 1)
    return nn_cuda_check(cudaMemcpyAsync(it->data[0], it->data[1], (size_t)n * esize,
                                         cudaMemcpyDeviceToDevice, nn_cuda_launch_stream),
                         "copy");
  copy_kernel<<<nn_cuda_blocks(n), NN_CUDA_THREADS, 0, nn_cuda_launch_stream>>>(*it, n);
  return nn_cuda_backend_launched("copy");
}

__global__ static void fill_kernel(nn_iter it, int64_t n, double value) {
  int64_t step = (int64_t)gridDim.x * blockDim.x;
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += step) {
    int64_t off = 0, linear = i;
    for (int d = it.ndim - 1; d >= 0; d--) {
      off += (linear % it.size[d]) * it.stride[d][0];
      linear /= it.size[d];
    }
    nn_store(it.dtype[0], it.data[0], off, value);
  }
}

int nn_cuda_backend_fill(const nn_iter *it, double value) {
  int64_t n = iter_numel(it);
  if (n == 0) return 0;
  if (value == 0 && !signbit(value) && it->ndim == 1 && it->stride[0][0] == 1)
    /* all-zero bits in every dtype */
    return nn_cuda_check(cudaMemsetAsync(it->data[0], 0, (size_t)n * nn_element_size(it->dtype[0]),
                                         nn_cuda_launch_stream),
                         "fill");
  fill_kernel<<<nn_cuda_blocks(n), NN_CUDA_THREADS, 0, nn_cuda_launch_stream>>>(*it, n, value);
  return nn_cuda_backend_launched("fill");
}

/* cuda/copy_kernels.cu: copies with dtype conversion, fills, the ramps of
 * arange and linspace, adding into a gradient, and the data loader's row
 * gather: cpu/copy.c's entries on the GPU. */
#include "cuda/common.cuh"
#include "math/fill.h"

/* ---- copy and fill ------------------------------------------------------ */
/* (dst, src): one dtype copies the element's bits; others convert
   through nn_convert (integers as int64, so that they wrap as the CPU's) */
struct copy_op {
  template <typename I> __device__ __forceinline__ void operator()(const nn_iter &it, const I *off) const {
    nn_dtype d = it.dtype[0], s = it.dtype[1];
    if (d != s) {
      nn_convert(d, it.data[0], off[0], s, it.data[1], off[1]);
      return;
    }
    switch (nn_element_size(d)) {
    case 8: ((uint64_t *)it.data[0])[off[0]] = ((const uint64_t *)it.data[1])[off[1]]; break;
    case 4: ((uint32_t *)it.data[0])[off[0]] = ((const uint32_t *)it.data[1])[off[1]]; break;
    case 2: ((uint16_t *)it.data[0])[off[0]] = ((const uint16_t *)it.data[1])[off[1]]; break;
    default: ((unsigned char *)it.data[0])[off[0]] = ((const unsigned char *)it.data[1])[off[1]]; break;
    }
  }
};

static int cuda_copy(const nn_iter *it) { return nn_cuda_run_iter<2>("copy", it, copy_op()); }

struct fill_op {
  double value;
  template <typename I> __device__ __forceinline__ void operator()(const nn_iter &it, const I *off) const {
    nn_store(it.dtype[0], it.data[0], off[0], value);
  }
};

static int cuda_fill(const nn_iter *it, double value) {
  return nn_cuda_run_iter<1>("fill", it, fill_op{value});
}

struct ramp_op {
  nn_dtype dtype;
  void *data;
  int64_t n, half;
  double start, step, end;
  __device__ __forceinline__ void operator()(int64_t i) const {
    nn_store(dtype, data, i, nn_ramp_value(i, n, half, start, step, end));
  }
};

static int cuda_ramp(nn_dtype dtype, void *data, int64_t n, int64_t half, double start, double step,
                     double end) {
  return nn_cuda_run_each("arange", n, ramp_op{dtype, data, n, half, start, step, end});
}

/* ---- adding into a gradient --------------------------------------------- */
/* acc + v as the CPU's loops add an element of dtype s into place in
   dtype d: float32 into float32 in float, anything else as a double sum
   stored in d (and read back, for the next addition). */
__device__ __forceinline__ double add_in_dtype(nn_dtype d, nn_dtype s, double acc, double v) {
  if (d == NN_FLOAT32 && s == NN_FLOAT32) return (double)((float)acc + (float)v);
  unsigned char held[8];
  nn_store(d, held, 0, acc + v);
  return nn_load(d, held, 0);
}

/* (dst, src) of one shape: dst = dst + src */
struct add_op {
  template <typename I> __device__ __forceinline__ void operator()(const nn_iter &it, const I *off) const {
    nn_dtype d = it.dtype[0], s = it.dtype[1];
    double acc = nn_load(d, it.data[0], off[0]);
    nn_store(d, it.data[0], off[0], add_in_dtype(d, s, acc, nn_load(s, it.data[1], off[1])));
  }
};

/* A broadcast dst as a reduction: each dst element is a line over the
   dims where dst's stride is 0; one thread adds them in the iterator's
   order (the CPU's sums, bit for bit), or a block sums a long line in
   double and adds the total once. */
template <bool BLOCK, typename I>
__global__ void add_lines_kernel(nn_reduce_geom r, I count, I length) {
  __shared__ double shared[32];
  nn_dtype d = r.it.dtype[0], s = r.it.dtype[1];
  for (I p = nn_cuda_first_line<BLOCK, I>(); p < count; p += nn_cuda_line_step<BLOCK, I>()) {
    I out = nn_cuda_line_start(r, 0, p), in = nn_cuda_line_start(r, 1, p);
    if (!BLOCK) {
      double acc = nn_load(d, r.it.data[0], out);
      for (I j = 0; j < length; j++)
        acc = add_in_dtype(d, s, acc, nn_load(s, r.it.data[1], in + nn_cuda_line_offset(r, 1, j)));
      nn_store(d, r.it.data[0], out, acc);
      continue;
    }
    double sum = 0;
    for (I j = nn_cuda_lane<BLOCK, I>(); j < length; j += nn_cuda_lanes<BLOCK, I>())
      sum += nn_load(s, r.it.data[1], in + nn_cuda_line_offset(r, 1, j));
    sum = nn_cuda_line_reduce<BLOCK>(sum, nn_cuda_add_double(), shared);
    if (threadIdx.x == 0)
      nn_store(d, r.it.data[0], out, add_in_dtype(d, NN_FLOAT64, nn_load(d, r.it.data[0], out), sum));
  }
}

static int cuda_add_into(const nn_iter *it) {
  int broadcast = 0;
  for (int d = 0; d < it->ndim; d++) broadcast |= it->stride[d][0] == 0 && it->size[d] > 1;
  if (!broadcast) return nn_cuda_run_iter<2>("add_into", it, add_op());
  nn_reduce_geom r;
  memset(&r, 0, sizeof r);
  r.it.n = 2;
  r.it.dtype[0] = it->dtype[0], r.it.dtype[1] = it->dtype[1];
  r.it.data[0] = it->data[0], r.it.data[1] = it->data[1];
  for (int d = 0; d < it->ndim; d++) {
    if (it->stride[d][0] == 0 && it->size[d] > 1) {
      r.rsize[r.rdims] = it->size[d];
      r.rstride[r.rdims][1] = it->stride[d][1];
      r.rdims++;
    } else {
      r.it.size[r.it.ndim] = it->size[d];
      r.it.stride[r.it.ndim][0] = it->stride[d][0];
      r.it.stride[r.it.ndim][1] = it->stride[d][1];
      r.it.ndim++;
    }
  }
  if (r.it.ndim == 0) r.it.ndim = 1, r.it.size[0] = 1;
  int64_t count = nn_cuda_iter_numel(&r.it), length = nn_cuda_line_length(&r);
  if (count == 0 || length == 0) return 0;
  int block = length > 4096 && count < 1024;
  int threads = block ? nn_cuda_line_threads(length) : NN_CUDA_THREADS;
  unsigned blocks = block ? nn_cuda_blocks(count, 1) : nn_cuda_blocks(count, threads);
  cudaStream_t st = nn_cuda_stream();
  if (nn_cuda_lines_fit32(&r)) {
    if (block) add_lines_kernel<true, int32_t><<<blocks, threads, 0, st>>>(r, (int32_t)count, (int32_t)length);
    else add_lines_kernel<false, int32_t><<<blocks, threads, 0, st>>>(r, (int32_t)count, (int32_t)length);
  } else {
    if (block) add_lines_kernel<true, int64_t><<<blocks, threads, 0, st>>>(r, count, length);
    else add_lines_kernel<false, int64_t><<<blocks, threads, 0, st>>>(r, count, length);
  }
  return nn_cuda_launched("add_into");
}

/* dst (cols) += the rows of src: a thread per column adds its rows in
   order (the CPU's sums); with many rows, blocks of rows are first summed
   in double into scratch, side by side, then added in order. */
enum { ROWS_PER_PIECE = 64 };

__global__ void add_rows_kernel(nn_dtype dtype, int64_t rows, int64_t cols, const void *src, void *dst) {
  int64_t step = (int64_t)gridDim.x * blockDim.x;
  for (int64_t j = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; j < cols; j += step) {
    double acc = nn_load(dtype, dst, j);
    for (int64_t i = 0; i < rows; i++) acc = add_in_dtype(dtype, dtype, acc, nn_load(dtype, src, i * cols + j));
    nn_store(dtype, dst, j, acc);
  }
}

__global__ void add_row_pieces_kernel(nn_dtype dtype, int64_t rows, int64_t cols, const void *src,
                                      double *pieces, int64_t count) {
  int64_t step = (int64_t)gridDim.x * blockDim.x;
  for (int64_t t = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; t < count * cols; t += step) {
    int64_t piece = t / cols, j = t - piece * cols, end = (piece + 1) * ROWS_PER_PIECE;
    double acc = 0;
    for (int64_t i = piece * ROWS_PER_PIECE; i < end && i < rows; i++) acc += nn_load(dtype, src, i * cols + j);
    pieces[t] = acc;
  }
}

__global__ void add_pieces_kernel(nn_dtype dtype, int64_t cols, const double *pieces, int64_t count,
                                  void *dst) {
  int64_t step = (int64_t)gridDim.x * blockDim.x;
  for (int64_t j = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; j < cols; j += step) {
    double acc = 0;
    for (int64_t piece = 0; piece < count; piece++) acc += pieces[piece * cols + j];
    nn_store(dtype, dst, j, add_in_dtype(dtype, NN_FLOAT64, nn_load(dtype, dst, j), acc));
  }
}

static int cuda_add_rows(nn_dtype dtype, int64_t rows, int64_t cols, const void *src, void *dst) {
  static const char op[] = "add_rows";
  if (rows <= 0 || cols <= 0) return 0;
  cudaStream_t st = nn_cuda_stream();
  if (rows <= ROWS_PER_PIECE) {
    add_rows_kernel<<<nn_cuda_blocks(cols, NN_CUDA_THREADS), NN_CUDA_THREADS, 0, st>>>(dtype, rows, cols, src, dst);
    return nn_cuda_launched(op);
  }
  int64_t count = (rows + ROWS_PER_PIECE - 1) / ROWS_PER_PIECE;
  size_t bytes = (size_t)(count * cols) * sizeof(double);
  double *pieces = (double *)nn_cuda_scratch(op, bytes);
  if (!pieces) return -1;
  add_row_pieces_kernel<<<nn_cuda_blocks(count * cols, NN_CUDA_THREADS), NN_CUDA_THREADS, 0, st>>>(
      dtype, rows, cols, src, pieces, count);
  int status = nn_cuda_launched(op);
  if (status == 0) {
    add_pieces_kernel<<<nn_cuda_blocks(cols, NN_CUDA_THREADS), NN_CUDA_THREADS, 0, st>>>(dtype, cols, pieces,
                                                                                        count, dst);
    status = nn_cuda_launched(op);
  }
  nn_cuda_scratch_release(pieces, bytes);
  return status;
}

/* ---- the data loader's rows --------------------------------------------- */
template <typename W>
__global__ void gather_rows_kernel(W *out, const W *src, const int64_t *rows, int64_t count, int64_t words) {
  int64_t step = (int64_t)gridDim.x * blockDim.x;
  for (int64_t t = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; t < count * words; t += step) {
    int64_t i = t / words, w = t - i * words;
    out[t] = src[rows[i] * words + w];
  }
}

static int cuda_gather_rows(void *out, const void *src, const int64_t *rows, int64_t count,
                            size_t row_bytes) {
  static const char op[] = "gather_rows";
  if (count <= 0 || row_bytes == 0) return 0;
  size_t bytes = (size_t)count * sizeof *rows;
  int64_t *device_rows = (int64_t *)nn_cuda_scratch(op, bytes);
  if (!device_rows) return -1;
  if (nn_cuda_table->from_host(device_rows, rows, bytes) < 0) {
    nn_cuda_scratch_release(device_rows, bytes);
    return -1;
  }
  /* the widest word that divides the rows and the pointers */
  uintptr_t align = (uintptr_t)out | (uintptr_t)src | (uintptr_t)row_bytes;
  cudaStream_t st = nn_cuda_stream();
  if (align % 8 == 0) {
    int64_t words = (int64_t)(row_bytes / 8);
    gather_rows_kernel<uint64_t><<<nn_cuda_blocks(count * words, NN_CUDA_THREADS), NN_CUDA_THREADS, 0, st>>>(
        (uint64_t *)out, (const uint64_t *)src, device_rows, count, words);
  } else if (align % 4 == 0) {
    int64_t words = (int64_t)(row_bytes / 4);
    gather_rows_kernel<uint32_t><<<nn_cuda_blocks(count * words, NN_CUDA_THREADS), NN_CUDA_THREADS, 0, st>>>(
        (uint32_t *)out, (const uint32_t *)src, device_rows, count, words);
  } else {
    int64_t words = (int64_t)row_bytes;
    gather_rows_kernel<unsigned char><<<nn_cuda_blocks(count * words, NN_CUDA_THREADS), NN_CUDA_THREADS, 0, st>>>(
        (unsigned char *)out, (const unsigned char *)src, device_rows, count, words);
  }
  int status = nn_cuda_launched(op);
  nn_cuda_scratch_release(device_rows, bytes);
  return status;
}

void nn_cuda_fill_copy_kernels(nn_backend *b) {
  b->copy = cuda_copy;
  b->fill = cuda_fill;
  b->ramp = cuda_ramp;
  b->add_into = cuda_add_into;
  b->add_rows = cuda_add_rows;
  b->gather_rows = cuda_gather_rows;
}

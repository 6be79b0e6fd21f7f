/* cuda/common.cuh: what the kernel files of cuda/ share: launching and
 * checking, scratch memory from the backend's own allocator, offsets from
 * a linear index through an nn_iter or along the lines of an
 * nn_reduce_geom, and deterministic block reductions.
 *
 * Index arithmetic runs in 32 bits wherever every index and offset of a
 * launch fits (the common case, and much cheaper on a GPU than 64-bit
 * division), else in 64 bits: each launcher picks the kernel's index type
 * from the geometry. */
#ifndef NN_CUDA_COMMON_CUH
#define NN_CUDA_COMMON_CUH

#include "backend.h"
#include "math/dtype.h"
#include "math/random.h"

#include <cuda_runtime.h>
#include <stdint.h>

/* The table nn_cuda_fill_kernels filled: the kernels' scratch memory and
   read-backs go through its alloc, free and to_host. */
extern const nn_backend *nn_cuda_table;

/* Each kernel file sets its own entries of the table. */
void nn_cuda_fill_copy_kernels(nn_backend *b);
void nn_cuda_fill_elementwise_kernels(nn_backend *b);
void nn_cuda_fill_activation_kernels(nn_backend *b);
void nn_cuda_fill_reduce_kernels(nn_backend *b);
void nn_cuda_fill_gemm_kernels(nn_backend *b);
void nn_cuda_fill_loss_kernels(nn_backend *b);
void nn_cuda_fill_optim_kernels(nn_backend *b);
void nn_cuda_fill_random_kernels(nn_backend *b);
void nn_cuda_fill_pool_kernels(nn_backend *b);
void nn_cuda_fill_conv_kernels(nn_backend *b);
void nn_cuda_fill_rnn_kernels(nn_backend *b);
void nn_cuda_fill_embedding_kernels(nn_backend *b);
void nn_cuda_fill_toolkit_kernels(nn_backend *b);
void nn_cuda_fill_collective_kernels(nn_backend *b);

/* The stream every kernel runs on: the backend's one stream, the legacy
   default, except while a captured step's replay makes a graph
   (backend.cu's graph_begin): then the stream being captured. */
extern cudaStream_t nn_cuda_launch_stream;
static inline cudaStream_t nn_cuda_stream(void) { return nn_cuda_launch_stream; }

/* -1 with "op: cuda: <cause>" for a failed call, else 0. */
int nn_cuda_status(const char *op, cudaError_t e);
/* The same for the launch just made (cudaGetLastError). */
int nn_cuda_launched(const char *op);

/* nbytes of device memory from the table's allocator (NULL with
   "op: cuda: out of memory"), and its return; a kernel queued on the
   stream before the release still sees it, the allocator reuses it only
   for later work on that stream. */
void *nn_cuda_scratch(const char *op, size_t nbytes);
void nn_cuda_scratch_release(void *p, size_t nbytes);

/* ---- the first bad element: a kernel lowers a device counter to the
   index of an element it refuses (atomicMin on integers: the smallest
   index wins whatever the order, so the message is deterministic) ---- */
#define NN_CUDA_NO_INDEX 0xffffffffffffffffULL
/* A counter set to NN_CUDA_NO_INDEX, or NULL with an error. */
unsigned long long *nn_cuda_index_flag(const char *op);
/* Reads the counter back (this synchronises) and releases it: the index,
   or NN_CUDA_NO_INDEX when nothing was refused; *status is -1 when the
   read failed (with to_host's message). */
unsigned long long nn_cuda_index_flag_read(unsigned long long *flag, int *status);
/* Element i of a dtype array on the device, as a double (synchronises). */
int nn_cuda_read_element(nn_dtype dtype, const void *data, int64_t i, double *v);

#define NN_CUDA_THREADS 256

/* Blocks for n items at `threads` a block, at most 2^20 (the kernels loop
   over the rest), at least 1. */
static inline unsigned nn_cuda_blocks(int64_t n, int threads) {
  int64_t b = (n + threads - 1) / threads;
  return b < 1 ? 1u : (b > (1 << 20) ? (1u << 20) : (unsigned)b);
}

/* The largest linear index a 32-bit kernel may see: below 2^30, so that
   adding a grid's stride (at most 2^28) never overflows. */
#define NN_CUDA_INDEX32_LIMIT (INT64_C(1) << 30)

static inline int64_t nn_cuda_iter_numel(const nn_iter *it) {
  int64_t n = 1;
  for (int d = 0; d < it->ndim; d++) n *= it->size[d];
  return n;
}

/* Whether every linear index and every operand's offset of it fits the
   32-bit kernels. */
static inline int nn_cuda_iter_fits32(const nn_iter *it) {
  if (nn_cuda_iter_numel(it) >= NN_CUDA_INDEX32_LIMIT) return 0;
  for (int k = 0; k < it->n; k++) {
    int64_t extent = 0;
    for (int d = 0; d < it->ndim; d++) {
      int64_t s = it->stride[d][k] < 0 ? -it->stride[d][k] : it->stride[d][k];
      extent += (it->size[d] > 0 ? it->size[d] - 1 : 0) * s;
    }
    if (extent >= NN_CUDA_INDEX32_LIMIT) return 0;
  }
  return 1;
}

/* ---- elementwise: one generic kernel over an nn_iter ------------------
   Operand k's element of linear index i (row-major over it.size) lies
   off[k] elements from it.data[k]. F is a functor with
   `template <typename I> __device__ void operator()(const nn_iter &it,
   const I *off) const`; N the operands it reads or writes. */
template <typename I, int N>
__device__ __forceinline__ void nn_cuda_iter_offsets(const nn_iter &it, I i, I *off) {
  for (int k = 0; k < N; k++) off[k] = 0;
  for (int d = it.ndim - 1; d > 0; d--) {
    I size = (I)it.size[d], q = i / size, idx = i - q * size;
    i = q;
    for (int k = 0; k < N; k++) off[k] += idx * (I)it.stride[d][k];
  }
  for (int k = 0; k < N; k++) off[k] += i * (I)it.stride[0][k];
}

template <typename I, int N, typename F>
__global__ void nn_cuda_iter_kernel(nn_iter it, I n, F f) {
  I step = (I)gridDim.x * (I)blockDim.x;
  for (I i = (I)blockIdx.x * (I)blockDim.x + (I)threadIdx.x; i < n; i += step) {
    I off[N];
    nn_cuda_iter_offsets<I, N>(it, i, off);
    f(it, (const I *)off);
  }
}

template <int N, typename F>
int nn_cuda_run_iter(const char *op, const nn_iter *it, const F &f) {
  int64_t n = nn_cuda_iter_numel(it);
  if (n <= 0) return 0;
  unsigned blocks = nn_cuda_blocks(n, NN_CUDA_THREADS);
  if (nn_cuda_iter_fits32(it))
    nn_cuda_iter_kernel<int32_t, N, F><<<blocks, NN_CUDA_THREADS, 0, nn_cuda_stream()>>>(*it, (int32_t)n, f);
  else
    nn_cuda_iter_kernel<int64_t, N, F><<<blocks, NN_CUDA_THREADS, 0, nn_cuda_stream()>>>(*it, n, f);
  return nn_cuda_launched(op);
}

/* ---- contiguous arrays: f(i) for i < n --------------------------------- */
template <typename F>
__global__ void nn_cuda_each_kernel(int64_t n, F f) {
  int64_t step = (int64_t)gridDim.x * blockDim.x;
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += step) f(i);
}

template <typename F>
int nn_cuda_run_each(const char *op, int64_t n, const F &f) {
  if (n <= 0) return 0;
  nn_cuda_each_kernel<F><<<nn_cuda_blocks(n, NN_CUDA_THREADS), NN_CUDA_THREADS, 0, nn_cuda_stream()>>>(n, f);
  return nn_cuda_launched(op);
}

/* ---- lines of a reduction geometry ---------------------------------------
   Line p (a kept position, linear over r.it) starts at r.it.data[k] +
   kept offset; its element j (row-major over rsize) is a line offset
   further. A line is walked by one thread (short lines, or outputs that
   lie closer in memory than a line's elements: neighbouring threads then
   read neighbouring elements) or by one block (long lines); a block
   combines its threads' partial results in a fixed tree, so that the same
   input gives the same bits on every run. */
static inline int64_t nn_cuda_line_length(const nn_reduce_geom *r) {
  int64_t n = 1;
  for (int d = 0; d < r->rdims; d++) n *= r->rsize[d];
  return n;
}

static inline int nn_cuda_lines_fit32(const nn_reduce_geom *r) {
  if (!nn_cuda_iter_fits32(&r->it) || nn_cuda_line_length(r) >= NN_CUDA_INDEX32_LIMIT) return 0;
  for (int k = 0; k < r->it.n; k++) {
    int64_t extent = 0;
    for (int d = 0; d < r->it.ndim; d++) {
      int64_t s = r->it.stride[d][k] < 0 ? -r->it.stride[d][k] : r->it.stride[d][k];
      extent += (r->it.size[d] > 0 ? r->it.size[d] - 1 : 0) * s;
    }
    for (int d = 0; d < r->rdims; d++) {
      int64_t s = r->rstride[d][k] < 0 ? -r->rstride[d][k] : r->rstride[d][k];
      extent += (r->rsize[d] > 0 ? r->rsize[d] - 1 : 0) * s;
    }
    if (extent >= NN_CUDA_INDEX32_LIMIT) return 0;
  }
  return 1;
}

/* One block a line, or one thread a line: see above. `operand` is the
   full-shape operand the line walk reads. */
static inline int nn_cuda_lines_by_block(const nn_reduce_geom *r, int operand) {
  int64_t count = nn_cuda_iter_numel(&r->it), length = nn_cuda_line_length(r);
  if (length <= 32) return 0;
  int64_t kept = r->it.stride[r->it.ndim - 1][operand];
  int64_t along = r->rdims ? r->rstride[r->rdims - 1][operand] : 0;
  kept = kept < 0 ? -kept : kept;
  along = along < 0 ? -along : along;
  return !(count >= 1024 && kept < along);
}

/* Threads of a block for lines of `length`: a multiple of 32, up to 256. */
static inline int nn_cuda_line_threads(int64_t length) {
  int64_t t = (length + 31) / 32 * 32;
  return t > NN_CUDA_THREADS ? NN_CUDA_THREADS : (int)t;
}

/* A launch over lines: how many, how long, walked by blocks or threads,
   the grid, and whether 32-bit indices do. */
typedef struct {
  int64_t count, length;
  int block, threads, fits32;
  unsigned blocks;
} nn_cuda_line_plan;

static inline nn_cuda_line_plan nn_cuda_plan_lines(const nn_reduce_geom *r, int operand) {
  nn_cuda_line_plan p;
  p.count = nn_cuda_iter_numel(&r->it);
  p.length = nn_cuda_line_length(r);
  p.block = nn_cuda_lines_by_block(r, operand);
  p.threads = p.block ? nn_cuda_line_threads(p.length) : NN_CUDA_THREADS;
  p.blocks = p.block ? nn_cuda_blocks(p.count, 1) : nn_cuda_blocks(p.count, p.threads);
  p.fits32 = nn_cuda_lines_fit32(r);
  return p;
}

template <typename I>
__device__ __forceinline__ I nn_cuda_line_offset(const nn_reduce_geom &r, int k, I j) {
  if (r.rdims == 1) return j * (I)r.rstride[0][k];
  I off = 0;
  for (int d = r.rdims - 1; d >= 0; d--) {
    I size = (I)r.rsize[d], q = j / size;
    off += (j - q * size) * (I)r.rstride[d][k];
    j = q;
  }
  return off;
}

/* Line p's first element of operand k, as an element index from data[k]. */
template <typename I>
__device__ __forceinline__ I nn_cuda_line_start(const nn_reduce_geom &r, int k, I p) {
  I off = 0;
  for (int d = r.it.ndim - 1; d > 0; d--) {
    I size = (I)r.it.size[d], q = p / size;
    off += (p - q * size) * (I)r.it.stride[d][k];
    p = q;
  }
  return off + p * (I)r.it.stride[0][k];
}

/* Who walks line p: a block (BLOCK) or a thread. first/step go over the
   lines, lane/lanes over a line's elements. */
template <bool BLOCK, typename I> __device__ __forceinline__ I nn_cuda_first_line() {
  return BLOCK ? (I)blockIdx.x : (I)blockIdx.x * (I)blockDim.x + (I)threadIdx.x;
}
template <bool BLOCK, typename I> __device__ __forceinline__ I nn_cuda_line_step() {
  return BLOCK ? (I)gridDim.x : (I)gridDim.x * (I)blockDim.x;
}
template <bool BLOCK, typename I> __device__ __forceinline__ I nn_cuda_lane() {
  return BLOCK ? (I)threadIdx.x : (I)0;
}
template <bool BLOCK, typename I> __device__ __forceinline__ I nn_cuda_lanes() {
  return BLOCK ? (I)blockDim.x : (I)1;
}

/* ---- deterministic block reductions (blockDim a multiple of 32) -------- */
__device__ __forceinline__ double nn_cuda_shfl_down(double v, int o) {
  return __shfl_down_sync(0xffffffffu, v, o);
}
__device__ __forceinline__ long long nn_cuda_shfl_down(long long v, int o) {
  return __shfl_down_sync(0xffffffffu, v, o);
}

/* Every thread's v combined (op(a, b), a from the lower threads) in one
   fixed tree; all threads get the result. `shared` holds 32 values. */
template <typename T, typename Op>
__device__ T nn_cuda_block_reduce(T v, Op op, T *shared) {
  for (int o = 16; o > 0; o >>= 1) v = op(v, nn_cuda_shfl_down(v, o));
  int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
  if (lane == 0) shared[warp] = v;
  __syncthreads();
  if (threadIdx.x == 0) {
    T t = shared[0];
    for (int w = 1; w < warps; w++) t = op(t, shared[w]);
    shared[0] = t;
  }
  __syncthreads();
  T total = shared[0];
  __syncthreads(); /* shared is free again for the next reduction */
  return total;
}

/* The same for one line's walkers: a block reduces, a thread has it all. */
template <bool BLOCK, typename T, typename Op>
__device__ __forceinline__ T nn_cuda_line_reduce(T v, Op op, T *shared) {
  if (BLOCK) return nn_cuda_block_reduce(v, op, shared);
  return v;
}

struct nn_cuda_add_double {
  __device__ double operator()(double a, double b) const { return a + b; }
};
/* integers wrap, as the CPU's int64 sums */
struct nn_cuda_add_integer {
  __device__ long long operator()(long long a, long long b) const {
    return (long long)((unsigned long long)a + (unsigned long long)b);
  }
};

/* ---- the generator (cuda/random.cu) ------------------------------------
   A fill's draws: the key is the seed, the counter's high half the fill's
   number (its offset since the seeding), the low half the group. */
__device__ __forceinline__ void nn_cuda_philox_draw(uint64_t seed, uint64_t offset, uint64_t group, uint32_t out[4]) {
  uint32_t counter[4] = {(uint32_t)group, (uint32_t)(group >> 32), (uint32_t)offset, (uint32_t)(offset >> 32)};
  uint32_t key[2] = {(uint32_t)seed, (uint32_t)(seed >> 32)};
  nn_philox4x32(counter, key, out);
}
/* The seed, and the offset of the next fill (which it takes). */
void nn_cuda_generator_next(uint64_t *seed, uint64_t *offset);

/* Element e's place in t (row-major over its own dims). */
__device__ __forceinline__ int64_t nn_cuda_strided_offset(const nn_strided &t, int64_t e) {
  int64_t off = 0;
  for (int d = t.ndim - 1; d >= 0; d--) {
    int64_t size = t.size[d], q = size ? e / size : 0;
    off += (e - q * size) * t.stride[d];
    e = q;
  }
  return off;
}

#endif

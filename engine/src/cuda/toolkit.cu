/* cuda/toolkit.cu: the tensor toolkit's kernels (issue 12): nan_to_num,
 * where, the index kernels (offsets, gather, put, nonzero), the scans
 * (cumsum, cumprod) and cumprod's gradient, prod's gradient, sort and the
 * scatter back along sorted lines, and the random integers and
 * permutations. cpu/index.c, cpu/scan.c, cpu/reduce.c and cpu/random.c
 * hold the CPU's forms; the results are the CPU's, element for element:
 *
 *  - sort is a bitonic network over (value, position) pairs compared in
 *    PyTorch's order (NaN above everything) and then by position: the
 *    order is total, so the network's result is the stable sort's;
 *  - index_put sorts the destinations the same way (the position breaks
 *    ties, so repeated destinations stay in iteration order), and one
 *    thread walks each run of equal destinations in that order: the last
 *    value wins, or the values add up in the CPU's order and rounding;
 *  - the scans walk each line in order (a block cuts a long line into
 *    contiguous pieces, each thread one piece, their totals combined in
 *    a fixed order): the same bits every run, equal to the CPU's up to
 *    the rounding of the grouped sums in double;
 *  - randint and randperm draw from the GPU's Philox generator
 *    (cuda/random.cu), so after the same seed their numbers differ from
 *    the CPU's (mt19937) as PyTorch's CUDA draws differ from its CPU's;
 *    the same seed gives the same numbers on every run. */
#include "cuda/common.cuh"
#include "math/elementwise.h"
#include "math/random.h"

#include <stdio.h>

/* ---- nan_to_num and where: elementwise ------------------------------------ */
struct nan_to_num_op {
  double nan, posinf, neginf;
  template <typename I> __device__ __forceinline__ void operator()(const nn_iter &it, const I *off) const {
    double v = nn_load(it.dtype[1], it.data[1], off[1]);
    nn_store(it.dtype[0], it.data[0], off[0], nn_nan_to_num_value(v, nan, posinf, neginf));
  }
};

static int cuda_nan_to_num(const nn_iter *it, double nan, double posinf, double neginf) {
  return nn_cuda_run_iter<2>("nan_to_num", it, nan_to_num_op{nan, posinf, neginf});
}

/* (out, cond, a, b) */
struct where_op {
  template <typename I> __device__ __forceinline__ void operator()(const nn_iter &it, const I *off) const {
    nn_dtype dt = it.dtype[0];
    int take_a = ((const unsigned char *)it.data[1])[off[1]] != 0;
    if (dt == NN_FLOAT32)
      ((float *)it.data[0])[off[0]] = take_a ? ((const float *)it.data[2])[off[2]] : ((const float *)it.data[3])[off[3]];
    else if (dt == NN_FLOAT64)
      ((double *)it.data[0])[off[0]] = take_a ? ((const double *)it.data[2])[off[2]] : ((const double *)it.data[3])[off[3]];
    else if (dt == NN_INT64)
      ((int64_t *)it.data[0])[off[0]] = take_a ? ((const int64_t *)it.data[2])[off[2]] : ((const int64_t *)it.data[3])[off[3]];
    else
      nn_store(dt, it.data[0], off[0], take_a ? nn_load(dt, it.data[2], off[2]) : nn_load(dt, it.data[3], off[3]));
  }
};

static int cuda_where(const nn_iter *it) { return nn_cuda_run_iter<4>("where", it, where_op{}); }

/* ---- index offsets: checked, the first bad index (in iteration order)
   named as the CPU names it ------------------------------------------------ */
struct offsets_op {
  int64_t n, scale;
  int base, negative;
  unsigned long long *bad;
  template <typename I> __device__ __forceinline__ void operator()(const nn_iter &it, const I *off) const {
    int64_t v = ((const int64_t *)it.data[1])[off[1]];
    int64_t r = v < 0 ? (negative ? n + v : -1) : v - base;
    if ((base == 1 && v == 0) || r < 0 || r >= n) {
      /* off[2] is the linear index (indexed_iter_kernel): the smallest
         wins, the CPU's first */
      atomicMin(bad, (unsigned long long)off[2]);
      return;
    }
    ((int64_t *)it.data[0])[off[0]] = r * scale;
  }
};

/* The iterator kernel with the linear index given to the functor as a
   third offset (offsets_op's failure report needs it). */
template <typename I, typename F>
__global__ void indexed_iter_kernel(nn_iter it, I n, F f) {
  I step = (I)gridDim.x * (I)blockDim.x;
  for (I i = (I)blockIdx.x * (I)blockDim.x + (I)threadIdx.x; i < n; i += step) {
    I off[3];
    nn_cuda_iter_offsets<I, 2>(it, i, off);
    off[2] = i;
    f(it, (const I *)off);
  }
}

/* Operand k's element offset at linear index i, on the host. */
static int64_t host_iter_offset(const nn_iter *it, int k, int64_t i) {
  int64_t off = 0;
  for (int d = it->ndim - 1; d >= 0; d--) {
    int64_t size = it->size[d], q = size ? i / size : 0;
    off += (i - q * size) * it->stride[d][k];
    i = q;
  }
  return off;
}

static int cuda_index_offsets(const nn_iter *it, int64_t n, int64_t scale, int base, int negative, int dim,
                              const char *op) {
  int64_t count = nn_cuda_iter_numel(it);
  if (count <= 0) return 0;
  unsigned long long *bad = nn_cuda_index_flag(op);
  if (!bad) return -1;
  offsets_op f = {n, scale, base, negative, bad};
  unsigned blocks = nn_cuda_blocks(count, NN_CUDA_THREADS);
  if (nn_cuda_iter_fits32(it))
    indexed_iter_kernel<int32_t><<<blocks, NN_CUDA_THREADS, 0, nn_cuda_stream()>>>(*it, (int32_t)count, f);
  else
    indexed_iter_kernel<int64_t><<<blocks, NN_CUDA_THREADS, 0, nn_cuda_stream()>>>(*it, count, f);
  if (nn_cuda_launched(op) < 0) {
    nn_cuda_scratch_release(bad, sizeof *bad);
    return -1;
  }
  int status = 0;
  unsigned long long first = nn_cuda_index_flag_read(bad, &status);
  if (status < 0) return -1;
  if (first == NN_CUDA_NO_INDEX) return 0;
  double v = 0;
  if (nn_cuda_read_element(NN_INT64, it->data[1], host_iter_offset(it, 1, (int64_t)first), &v) < 0) return -1;
  long long value = (long long)v;
  if (base == 1 && value == 0)
    nn_error_set("%s: index 0 is out of range (indices count from 1)", op);
  else if (dim < 0)
    nn_error_set("%s: index %lld is out of range for a tensor of %lld elements", op, value, (long long)n);
  else
    nn_error_set("%s: index %lld is out of range for dimension %d of size %lld", op, value, dim + 1, (long long)n);
  return -1;
}

/* (out, src, offset) */
struct gather_op {
  template <typename I> __device__ __forceinline__ void operator()(const nn_iter &it, const I *off) const {
    int64_t at = (int64_t)off[1] + ((const int64_t *)it.data[2])[off[2]];
    nn_dtype dt = it.dtype[0];
    if (dt == NN_FLOAT32) ((float *)it.data[0])[off[0]] = ((const float *)it.data[1])[at];
    else if (dt == NN_FLOAT64) ((double *)it.data[0])[off[0]] = ((const double *)it.data[1])[at];
    else if (dt == NN_INT64) ((int64_t *)it.data[0])[off[0]] = ((const int64_t *)it.data[1])[at];
    else nn_store(dt, it.data[0], off[0], nn_load(dt, it.data[1], at));
  }
};

static int cuda_index_gather(const nn_iter *it) { return nn_cuda_run_iter<3>("index_gather", it, gather_op{}); }

/* ---- sorting (value, position) pairs ----------------------------------------
   count segments of `width` pairs (a power of two), each sorted alone. A
   pair whose position is -1 is padding and goes after everything. */
struct sort_order {
  int descending;
  /* a goes before b */
  __device__ __forceinline__ bool operator()(double av, int64_t ai, double bv, int64_t bi) const {
    if (ai < 0 || bi < 0) return bi < 0 && ai >= 0;
    bool an = isnan(av), bn = isnan(bv);
    if (an || bn) {
      if (an && bn) return ai < bi;
      return descending ? an : bn;
    }
    if (av != bv) return descending ? av > bv : av < bv;
    return ai < bi;
  }
};

/* One compare-exchange of a bitonic network: the pair (i, i + j) of a
   segment, in stage k. */
__device__ __forceinline__ void bitonic_exchange(double *key, int64_t *pos, int64_t i, int64_t j, int64_t k,
                                                 sort_order order) {
  int64_t l = i + j;
  bool up = (i & k) == 0;
  double a = key[i], b = key[l];
  int64_t ia = pos[i], ib = pos[l];
  bool swap = up ? order(b, ib, a, ia) : order(a, ia, b, ib);
  if (swap) {
    key[i] = b, key[l] = a;
    pos[i] = ib, pos[l] = ia;
  }
}

/* Segments of up to SHARED_SORT pairs: a block each, in shared memory. */
#define SHARED_SORT 1024

__global__ void sort_shared_kernel(double *key, int64_t *pos, int64_t count, int width, sort_order order) {
  __shared__ double k_s[SHARED_SORT];
  __shared__ int64_t p_s[SHARED_SORT];
  for (int64_t seg = blockIdx.x; seg < count; seg += gridDim.x) {
    double *kg = key + seg * width;
    int64_t *pg = pos + seg * width;
    for (int t = threadIdx.x; t < width; t += blockDim.x) k_s[t] = kg[t], p_s[t] = pg[t];
    __syncthreads();
    for (int k = 2; k <= width; k <<= 1)
      for (int j = k >> 1; j > 0; j >>= 1) {
        for (int t = threadIdx.x; t < width / 2; t += blockDim.x) {
          int i = (t / j) * 2 * j + t % j;
          bitonic_exchange(k_s, p_s, i, j, k, order);
        }
        __syncthreads();
      }
    for (int t = threadIdx.x; t < width; t += blockDim.x) kg[t] = k_s[t], pg[t] = p_s[t];
    __syncthreads();
  }
}

/* One step (k, j) of the network over every segment, in global memory. */
__global__ void sort_step_kernel(double *key, int64_t *pos, int64_t pairs, int64_t width, int64_t k, int64_t j,
                                 sort_order order) {
  int64_t half = width / 2, step = (int64_t)gridDim.x * blockDim.x;
  for (int64_t q = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; q < pairs; q += step) {
    int64_t seg = q / half, t = q - seg * half;
    int64_t i = (t / j) * 2 * j + t % j;
    bitonic_exchange(key + seg * width, pos + seg * width, i, j, k, order);
  }
}

static int64_t power_of_two_above(int64_t n) {
  int64_t w = 1;
  while (w < n) w <<= 1;
  return w;
}

static int sort_pairs(const char *op, double *key, int64_t *pos, int64_t count, int64_t width, int descending) {
  if (width < 2 || count <= 0) return 0;
  sort_order order = {descending};
  cudaStream_t st = nn_cuda_stream();
  if (width <= SHARED_SORT) {
    int threads = (int)(width / 2 < NN_CUDA_THREADS ? width / 2 : NN_CUDA_THREADS);
    sort_shared_kernel<<<nn_cuda_blocks(count, 1), threads, 0, st>>>(key, pos, count, (int)width, order);
    return nn_cuda_launched(op);
  }
  int64_t pairs = count * width / 2;
  unsigned blocks = nn_cuda_blocks(pairs, NN_CUDA_THREADS);
  for (int64_t k = 2; k <= width; k <<= 1)
    for (int64_t j = k >> 1; j > 0; j >>= 1) {
      sort_step_kernel<<<blocks, NN_CUDA_THREADS, 0, st>>>(key, pos, pairs, width, k, j, order);
      if (nn_cuda_launched(op) < 0) return -1;
    }
  return 0;
}

/* Scratch for count segments of width pairs. */
typedef struct {
  double *key;
  int64_t *pos;
  size_t bytes;
} sort_scratch;

static int sort_scratch_take(const char *op, sort_scratch *s, int64_t pairs) {
  s->bytes = (size_t)pairs * (sizeof(double) + sizeof(int64_t));
  s->key = (double *)nn_cuda_scratch(op, s->bytes);
  s->pos = s->key ? (int64_t *)(s->key + pairs) : NULL;
  return s->key ? 0 : -1;
}

/* ---- sort: (values, indices, in), one reduced dim ------------------------- */
template <typename I>
__global__ void sort_load_kernel(nn_reduce_geom r, I count, I length, I width, double *key, int64_t *pos) {
  I step = (I)gridDim.x * (I)blockDim.x;
  for (I e = (I)blockIdx.x * (I)blockDim.x + (I)threadIdx.x; e < count * width; e += step) {
    I line = e / width, j = e - line * width;
    if (j < length) {
      key[e] = nn_load(r.it.dtype[2], r.it.data[2], nn_cuda_line_start(r, 2, line) + nn_cuda_line_offset(r, 2, j));
      pos[e] = (int64_t)j;
    } else {
      key[e] = 0;
      pos[e] = -1;
    }
  }
}

template <typename I>
__global__ void sort_store_kernel(nn_reduce_geom r, I count, I length, I width, const double *key, const int64_t *pos) {
  I step = (I)gridDim.x * (I)blockDim.x;
  for (I e = (I)blockIdx.x * (I)blockDim.x + (I)threadIdx.x; e < count * length; e += step) {
    I line = e / length, j = e - line * length;
    nn_store(r.it.dtype[0], r.it.data[0], nn_cuda_line_start(r, 0, line) + nn_cuda_line_offset(r, 0, j), key[line * width + j]);
    ((int64_t *)r.it.data[1])[nn_cuda_line_start(r, 1, line) + nn_cuda_line_offset(r, 1, j)] = pos[line * width + j];
  }
}

template <typename I>
static int sort_launch(const nn_reduce_geom *r, int descending, int64_t count, int64_t length) {
  static const char op[] = "sort";
  int64_t width = power_of_two_above(length);
  sort_scratch s;
  if (sort_scratch_take(op, &s, count * width) < 0) return -1;
  cudaStream_t st = nn_cuda_stream();
  sort_load_kernel<I><<<nn_cuda_blocks(count * width, NN_CUDA_THREADS), NN_CUDA_THREADS, 0, st>>>(
      *r, (I)count, (I)length, (I)width, s.key, s.pos);
  int status = nn_cuda_launched(op);
  if (status == 0) status = sort_pairs(op, s.key, s.pos, count, width, descending);
  if (status == 0) {
    sort_store_kernel<I><<<nn_cuda_blocks(count * length, NN_CUDA_THREADS), NN_CUDA_THREADS, 0, st>>>(
        *r, (I)count, (I)length, (I)width, s.key, s.pos);
    status = nn_cuda_launched(op);
  }
  nn_cuda_scratch_release(s.key, s.bytes);
  return status;
}

static int cuda_sort(int descending, const nn_reduce_geom *r) {
  int64_t count = nn_cuda_iter_numel(&r->it), length = nn_cuda_line_length(r);
  if (count <= 0 || length <= 0) return 0;
  /* the padded lines must fit the 32-bit kernels' indices too */
  int fits = nn_cuda_lines_fit32(r) && count * power_of_two_above(length) < NN_CUDA_INDEX32_LIMIT;
  return fits ? sort_launch<int32_t>(r, descending, count, length) : sort_launch<int64_t>(r, descending, count, length);
}

/* ---- scatter_line: (gi, g, indices) ----------------------------------------
   The indices of one line are distinct (sort, topk, kthvalue and median
   pick distinct positions), so each element adds its g without a race. */
template <typename I>
__global__ void scatter_line_kernel(nn_reduce_geom r, I count, I length, I stride) {
  I step = (I)gridDim.x * (I)blockDim.x;
  const nn_dtype *dt = r.it.dtype;
  for (I e = (I)blockIdx.x * (I)blockDim.x + (I)threadIdx.x; e < count * length; e += step) {
    I line = e / length, j = e - line * length;
    I k = (I)((const int64_t *)r.it.data[2])[nn_cuda_line_start(r, 2, line) + nn_cuda_line_offset(r, 2, j)];
    double g = nn_load(dt[1], r.it.data[1], nn_cuda_line_start(r, 1, line) + nn_cuda_line_offset(r, 1, j));
    I at = nn_cuda_line_start(r, 0, line) + k * stride;
    nn_store(dt[0], r.it.data[0], at, nn_load(dt[0], r.it.data[0], at) + g);
  }
}

static int cuda_scatter_line(const nn_reduce_geom *r, int64_t stride) {
  int64_t count = nn_cuda_iter_numel(&r->it), length = nn_cuda_line_length(r);
  if (count <= 0 || length <= 0) return 0;
  unsigned blocks = nn_cuda_blocks(count * length, NN_CUDA_THREADS);
  if (nn_cuda_lines_fit32(r) && count * length < NN_CUDA_INDEX32_LIMIT)
    scatter_line_kernel<int32_t><<<blocks, NN_CUDA_THREADS, 0, nn_cuda_stream()>>>(*r, (int32_t)count, (int32_t)length, (int32_t)stride);
  else
    scatter_line_kernel<int64_t><<<blocks, NN_CUDA_THREADS, 0, nn_cuda_stream()>>>(*r, count, length, stride);
  return nn_cuda_launched("sort backward");
}

/* ---- index_put: (dst, values, offset) ---------------------------------------
   Destinations (as element offsets from dst's data) sorted with their
   iteration positions; each run of one destination is walked in order by
   the thread that finds its start. */
template <typename I>
__global__ void put_keys_kernel(nn_iter it, I n, double *key, int64_t *pos, I width) {
  I step = (I)gridDim.x * (I)blockDim.x;
  for (I i = (I)blockIdx.x * (I)blockDim.x + (I)threadIdx.x; i < width; i += step) {
    if (i < n) {
      I off[3];
      nn_cuda_iter_offsets<I, 3>(it, i, off);
      key[i] = (double)((int64_t)off[0] + ((const int64_t *)it.data[2])[off[2]]);
      pos[i] = (int64_t)i;
    } else {
      key[i] = 0;
      pos[i] = -1;
    }
  }
}

template <typename I>
__global__ void put_runs_kernel(nn_iter it, I n, const double *key, const int64_t *pos, int accumulate) {
  I step = (I)gridDim.x * (I)blockDim.x;
  nn_dtype dt = it.dtype[0];
  for (I s = (I)blockIdx.x * (I)blockDim.x + (I)threadIdx.x; s < n; s += step) {
    if (s > 0 && key[s - 1] == key[s]) continue;
    int64_t at = (int64_t)key[s];
    I end = s + 1;
    while (end < n && key[end] == key[s]) end++;
    if (!accumulate) {
      I off[3];
      nn_cuda_iter_offsets<I, 3>(it, (I)pos[end - 1], off);
      if (dt == NN_INT64) nn_store_integer(dt, it.data[0], at, nn_load_integer(dt, it.data[1], off[1]));
      else nn_store(dt, it.data[0], at, nn_load(dt, it.data[1], off[1]));
      continue;
    }
    if (dt == NN_INT64) {
      int64_t acc = nn_load_integer(dt, it.data[0], at);
      for (I q = s; q < end; q++) {
        I off[3];
        nn_cuda_iter_offsets<I, 3>(it, (I)pos[q], off);
        acc = (int64_t)((uint64_t)acc + (uint64_t)nn_load_integer(dt, it.data[1], off[1]));
      }
      nn_store_integer(dt, it.data[0], at, acc);
    } else {
      /* rounded to dst's dtype after each addition, as the CPU's d += v */
      double acc = nn_load(dt, it.data[0], at);
      for (I q = s; q < end; q++) {
        I off[3];
        nn_cuda_iter_offsets<I, 3>(it, (I)pos[q], off);
        acc = nn_round_to(dt, acc + nn_load(dt, it.data[1], off[1]));
      }
      nn_store(dt, it.data[0], at, acc);
    }
  }
}

template <typename I>
static int put_launch(const nn_iter *it, int64_t n, int accumulate) {
  static const char op[] = "index_put";
  int64_t width = power_of_two_above(n);
  sort_scratch s;
  if (sort_scratch_take(op, &s, width) < 0) return -1;
  cudaStream_t st = nn_cuda_stream();
  put_keys_kernel<I><<<nn_cuda_blocks(width, NN_CUDA_THREADS), NN_CUDA_THREADS, 0, st>>>(*it, (I)n, s.key, s.pos, (I)width);
  int status = nn_cuda_launched(op);
  if (status == 0) status = sort_pairs(op, s.key, s.pos, 1, width, 0);
  if (status == 0) {
    put_runs_kernel<I><<<nn_cuda_blocks(n, NN_CUDA_THREADS), NN_CUDA_THREADS, 0, st>>>(*it, (I)n, s.key, s.pos, accumulate);
    status = nn_cuda_launched(op);
  }
  nn_cuda_scratch_release(s.key, s.bytes);
  return status;
}

static int cuda_index_put(const nn_iter *it, int accumulate) {
  int64_t n = nn_cuda_iter_numel(it);
  if (n <= 0) return 0;
  return nn_cuda_iter_fits32(it) && power_of_two_above(n) < NN_CUDA_INDEX32_LIMIT ? put_launch<int32_t>(it, n, accumulate)
                                                                                  : put_launch<int64_t>(it, n, accumulate);
}

/* ---- scans: (out, in), full shape ------------------------------------------- */
struct scan_acc {
  double v;
  unsigned long long i; /* integers wrap, as the CPU's uint64 */
};

__device__ __forceinline__ scan_acc scan_combine(nn_scan_op op, scan_acc a, scan_acc b) {
  if (op == NN_SCAN_PROD) return scan_acc{a.v * b.v, a.i * b.i};
  return scan_acc{a.v + b.v, a.i + b.i};
}

/* Elements [first, end) of line `line` in the scan's order, from acc;
   stores each partial result when `store`. Returns the running value. */
template <typename I>
__device__ scan_acc scan_piece(const nn_reduce_geom &r, nn_scan_op op, int reverse, I line, I length, I first, I end,
                               scan_acc acc, bool store) {
  const nn_dtype *dt = r.it.dtype;
  bool floating = nn_floating_dtype(dt[1]);
  I in = nn_cuda_line_start(r, 1, line), out = nn_cuda_line_start(r, 0, line);
  for (I j = first; j < end; j++) {
    I k = reverse ? length - 1 - j : j;
    scan_acc v;
    if (floating) v = scan_acc{nn_load(dt[1], r.it.data[1], in + nn_cuda_line_offset(r, 1, k)), 0};
    else v = scan_acc{0, (unsigned long long)nn_load_integer(dt[1], r.it.data[1], in + nn_cuda_line_offset(r, 1, k))};
    acc = scan_combine(op, acc, v);
    if (!store) continue;
    if (floating) nn_store(dt[0], r.it.data[0], out + nn_cuda_line_offset(r, 0, k), acc.v);
    else nn_store_integer(dt[0], r.it.data[0], out + nn_cuda_line_offset(r, 0, k), (int64_t)acc.i);
  }
  return acc;
}

/* A thread a line. */
template <typename I>
__global__ void scan_thread_kernel(nn_reduce_geom r, nn_scan_op op, int reverse, I count, I length) {
  I step = (I)gridDim.x * (I)blockDim.x;
  scan_acc start = op == NN_SCAN_PROD ? scan_acc{1, 1} : scan_acc{0, 0};
  for (I line = (I)blockIdx.x * (I)blockDim.x + (I)threadIdx.x; line < count; line += step)
    scan_piece<I>(r, op, reverse, line, length, 0, length, start, true);
}

/* A block a line: each thread totals its piece, thread 0 turns the totals
   into each piece's starting value in piece order, then every thread
   walks its piece again from there. */
template <typename I>
__global__ void scan_block_kernel(nn_reduce_geom r, nn_scan_op op, int reverse, I count, I length) {
  __shared__ scan_acc starts[NN_CUDA_THREADS];
  scan_acc unit = op == NN_SCAN_PROD ? scan_acc{1, 1} : scan_acc{0, 0};
  I piece = (length + (I)blockDim.x - 1) / (I)blockDim.x;
  I first = (I)threadIdx.x * piece, end = first + piece < length ? first + piece : length;
  if (first > end) first = end;
  for (I line = blockIdx.x; line < count; line += gridDim.x) {
    starts[threadIdx.x] = scan_piece<I>(r, op, reverse, line, length, first, end, unit, false);
    __syncthreads();
    if (threadIdx.x == 0) {
      scan_acc run = unit;
      for (unsigned t = 0; t < blockDim.x; t++) {
        scan_acc total = starts[t];
        starts[t] = run;
        run = scan_combine(op, run, total);
      }
    }
    __syncthreads();
    scan_piece<I>(r, op, reverse, line, length, first, end, starts[threadIdx.x], true);
    __syncthreads();
  }
}

static int cuda_scan(nn_scan_op op, int reverse, const nn_reduce_geom *r) {
  nn_cuda_line_plan l = nn_cuda_plan_lines(r, 1);
  if (l.count <= 0 || l.length <= 0) return 0;
  cudaStream_t st = nn_cuda_stream();
  int32_t c = (int32_t)l.count, n = (int32_t)l.length;
  if (l.block) {
    if (l.fits32) scan_block_kernel<int32_t><<<l.blocks, NN_CUDA_THREADS, 0, st>>>(*r, op, reverse, c, n);
    else scan_block_kernel<int64_t><<<l.blocks, NN_CUDA_THREADS, 0, st>>>(*r, op, reverse, l.count, l.length);
  } else {
    if (l.fits32) scan_thread_kernel<int32_t><<<l.blocks, l.threads, 0, st>>>(*r, op, reverse, c, n);
    else scan_thread_kernel<int64_t><<<l.blocks, l.threads, 0, st>>>(*r, op, reverse, l.count, l.length);
  }
  return nn_cuda_launched(op == NN_SCAN_PROD ? "cumprod" : "cumsum");
}

/* ---- cumprod's gradient: (gi, x, out, g), a thread a line (cpu/scan.c's
   walk: one pass backward for the sums, one forward for the zero's term) */
template <typename I>
__global__ void cumprod_backward_kernel(nn_reduce_geom r, I count, I n) {
  I step = (I)gridDim.x * (I)blockDim.x;
  const nn_dtype *dt = r.it.dtype;
  for (I p = (I)blockIdx.x * (I)blockDim.x + (I)threadIdx.x; p < count; p += step) {
    I s[4];
    for (int k = 0; k < 4; k++) s[k] = nn_cuda_line_start(r, k, p);
    auto value = [&](int k, I j) { return nn_load(dt[k], r.it.data[k], s[k] + nn_cuda_line_offset(r, k, j)); };
    I z = n;
    for (I j = 0; j < n && z == n; j++)
      if (value(1, j) == 0) z = j;
    double tail = 0;
    for (I k = n - 1; k >= 0; k--) {
      double gk = 0;
      if (k < z) {
        tail += value(3, k) * value(2, k);
        gk = tail / value(1, k);
      }
      nn_store(dt[0], r.it.data[0], s[0] + nn_cuda_line_offset(r, 0, k), gk);
    }
    if (z < n) {
      double before = z > 0 ? value(2, z - 1) : 1, run = before, sum = 0;
      for (I i = z; i < n; i++) {
        if (i > z) run *= value(1, i);
        sum += value(3, i) * run;
      }
      nn_store(dt[0], r.it.data[0], s[0] + nn_cuda_line_offset(r, 0, z), sum);
    }
  }
}

static int cuda_cumprod_backward(const nn_reduce_geom *r) {
  int64_t count = nn_cuda_iter_numel(&r->it), length = nn_cuda_line_length(r);
  if (count <= 0 || length <= 0) return 0;
  unsigned blocks = nn_cuda_blocks(count, NN_CUDA_THREADS);
  if (nn_cuda_lines_fit32(r))
    cumprod_backward_kernel<int32_t><<<blocks, NN_CUDA_THREADS, 0, nn_cuda_stream()>>>(*r, (int32_t)count, (int32_t)length);
  else
    cumprod_backward_kernel<int64_t><<<blocks, NN_CUDA_THREADS, 0, nn_cuda_stream()>>>(*r, count, length);
  return nn_cuda_launched("cumprod backward");
}

/* ---- prod's gradient: (gi, x, out, g), PyTorch's prod_backward ------------ */
struct multiply_double {
  __device__ double operator()(double a, double b) const { return a * b; }
};
struct larger_integer {
  __device__ long long operator()(long long a, long long b) const { return a > b ? a : b; }
};

template <bool BLOCK, typename I>
__global__ void prod_backward_kernel(nn_reduce_geom r, I count, I length) {
  __shared__ double shared[32];
  __shared__ long long ishared[32];
  const nn_dtype *dt = r.it.dtype;
  I lane = nn_cuda_lane<BLOCK, I>(), lanes = nn_cuda_lanes<BLOCK, I>();
  for (I p = nn_cuda_first_line<BLOCK, I>(); p < count; p += nn_cuda_line_step<BLOCK, I>()) {
    I gi = nn_cuda_line_start(r, 0, p), x = nn_cuda_line_start(r, 1, p);
    double out = nn_load(dt[2], r.it.data[2], nn_cuda_line_start(r, 2, p));
    double g = nn_load(dt[3], r.it.data[3], nn_cuda_line_start(r, 3, p));
    long long zeros = 0, zero_at = -1;
    double others = 1; /* the product of the nonzero elements */
    for (I j = lane; j < length; j += lanes) {
      double v = nn_load(dt[1], r.it.data[1], x + nn_cuda_line_offset(r, 1, j));
      if (v == 0) zeros++, zero_at = (long long)j;
      else others *= v;
    }
    zeros = nn_cuda_line_reduce<BLOCK>(zeros, nn_cuda_add_integer(), ishared);
    zero_at = nn_cuda_line_reduce<BLOCK>(zero_at, larger_integer(), ishared);
    others = nn_cuda_line_reduce<BLOCK>(others, multiply_double(), shared);
    for (I j = lane; j < length; j += lanes) {
      double v = nn_load(dt[1], r.it.data[1], x + nn_cuda_line_offset(r, 1, j)), gv;
      if (zeros == 0) gv = g * (out / v);
      else gv = zeros == 1 && (long long)j == zero_at ? g * others : 0;
      nn_store(dt[0], r.it.data[0], gi + nn_cuda_line_offset(r, 0, j), gv);
    }
  }
}

static int cuda_prod_backward(const nn_reduce_geom *r) {
  nn_cuda_line_plan l = nn_cuda_plan_lines(r, 1);
  if (l.count <= 0 || l.length <= 0) return 0;
  cudaStream_t st = nn_cuda_stream();
  int32_t c = (int32_t)l.count, n = (int32_t)l.length;
  if (l.fits32 && l.block) prod_backward_kernel<true, int32_t><<<l.blocks, l.threads, 0, st>>>(*r, c, n);
  else if (l.fits32) prod_backward_kernel<false, int32_t><<<l.blocks, l.threads, 0, st>>>(*r, c, n);
  else if (l.block) prod_backward_kernel<true, int64_t><<<l.blocks, l.threads, 0, st>>>(*r, l.count, l.length);
  else prod_backward_kernel<false, int64_t><<<l.blocks, l.threads, 0, st>>>(*r, l.count, l.length);
  return nn_cuda_launched("prod backward");
}

/* ---- nonzero: the coordinates of the first `count` nonzero elements -------
   Pieces of NONZERO_PIECE elements in row-major order: a thread counts
   each piece's nonzeros, one thread turns the counts into each piece's
   first row, and each piece's thread writes its rows. */
#define NONZERO_PIECE 1024

__global__ void nonzero_count_kernel(nn_strided t, int64_t numel, int64_t pieces, int64_t *counts) {
  int64_t step = (int64_t)gridDim.x * blockDim.x;
  for (int64_t q = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; q < pieces; q += step) {
    int64_t end = (q + 1) * NONZERO_PIECE < numel ? (q + 1) * NONZERO_PIECE : numel, found = 0;
    for (int64_t e = q * NONZERO_PIECE; e < end; e++)
      found += nn_load(t.dtype, t.data, nn_cuda_strided_offset(t, e)) != 0;
    counts[q] = found;
  }
}

__global__ void nonzero_starts_kernel(int64_t pieces, int64_t *counts) {
  int64_t run = 0;
  for (int64_t q = 0; q < pieces; q++) {
    int64_t c = counts[q];
    counts[q] = run;
    run += c;
  }
}

__global__ void nonzero_write_kernel(nn_strided t, int64_t numel, int64_t pieces, const int64_t *starts,
                                     int64_t *out, int64_t count) {
  int64_t step = (int64_t)gridDim.x * blockDim.x;
  for (int64_t q = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; q < pieces; q += step) {
    int64_t row = starts[q], end = (q + 1) * NONZERO_PIECE < numel ? (q + 1) * NONZERO_PIECE : numel;
    for (int64_t e = q * NONZERO_PIECE; e < end && row < count; e++) {
      if (nn_load(t.dtype, t.data, nn_cuda_strided_offset(t, e)) == 0) continue;
      int64_t rest = e;
      for (int d = t.ndim - 1; d >= 0; d--) {
        int64_t size = t.size[d], q2 = rest / size;
        out[row * t.ndim + d] = rest - q2 * size;
        rest = q2;
      }
      row++;
    }
  }
}

static int cuda_nonzero(const nn_strided *t, int64_t *out, int64_t count) {
  static const char op[] = "nonzero";
  int64_t numel = 1;
  for (int d = 0; d < t->ndim; d++) numel *= t->size[d];
  if (numel <= 0 || count <= 0) return 0;
  int64_t pieces = (numel + NONZERO_PIECE - 1) / NONZERO_PIECE;
  size_t bytes = (size_t)pieces * sizeof(int64_t);
  int64_t *counts = (int64_t *)nn_cuda_scratch(op, bytes);
  if (!counts) return -1;
  cudaStream_t st = nn_cuda_stream();
  unsigned blocks = nn_cuda_blocks(pieces, NN_CUDA_THREADS);
  nonzero_count_kernel<<<blocks, NN_CUDA_THREADS, 0, st>>>(*t, numel, pieces, counts);
  int status = nn_cuda_launched(op);
  if (status == 0) {
    nonzero_starts_kernel<<<1, 1, 0, st>>>(pieces, counts);
    status = nn_cuda_launched(op);
  }
  if (status == 0) {
    nonzero_write_kernel<<<blocks, NN_CUDA_THREADS, 0, st>>>(*t, numel, pieces, counts, out, count);
    status = nn_cuda_launched(op);
  }
  nn_cuda_scratch_release(counts, bytes);
  return status;
}

/* ---- random integers and permutations (Philox, cuda/random.cu) ------------ */
__global__ void random_int_kernel(nn_strided t, int64_t n, uint64_t seed, uint64_t offset, uint64_t range, int64_t base) {
  int64_t step = (int64_t)gridDim.x * blockDim.x;
  for (int64_t e = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; e < n; e += step) {
    uint32_t bits[4];
    nn_cuda_philox_draw(seed, offset, (uint64_t)e, bits);
    /* 32 bits when they cover the range, as PyTorch's random_from_to */
    uint64_t draw = range >= (UINT64_C(1) << 32) ? ((uint64_t)bits[0] << 32 | bits[1]) : bits[0];
    int64_t v = (int64_t)(draw % range + (uint64_t)base);
    if (t.dtype == NN_INT64) ((int64_t *)t.data)[nn_cuda_strided_offset(t, e)] = v;
    else nn_store(t.dtype, t.data, nn_cuda_strided_offset(t, e), (double)v);
  }
}

static int cuda_random_int(const nn_strided *t, uint64_t range, int64_t base) {
  int64_t n = 1;
  for (int d = 0; d < t->ndim; d++) n *= t->size[d];
  if (n <= 0) return 0;
  uint64_t seed, offset;
  nn_cuda_generator_next(&seed, &offset);
  random_int_kernel<<<nn_cuda_blocks(n, NN_CUDA_THREADS), NN_CUDA_THREADS, 0, nn_cuda_stream()>>>(*t, n, seed, offset, range, base);
  return nn_cuda_launched("randint");
}

/* Random keys (53 bits, exact as doubles) sorted with their positions:
   the positions in key order are the permutation (equal keys keep their
   order, which the sort's tie rule makes deterministic). */
__global__ void randperm_keys_kernel(int64_t n, int64_t width, uint64_t seed, uint64_t offset, double *key, int64_t *pos) {
  int64_t step = (int64_t)gridDim.x * blockDim.x;
  for (int64_t e = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; e < width; e += step) {
    uint32_t bits[4];
    nn_cuda_philox_draw(seed, offset, (uint64_t)e, bits);
    key[e] = (double)(((uint64_t)bits[0] << 32 | bits[1]) >> 11);
    pos[e] = e < n ? e : -1;
  }
}

__global__ void randperm_store_kernel(int64_t n, int64_t first, const int64_t *pos, int64_t *out) {
  int64_t step = (int64_t)gridDim.x * blockDim.x;
  for (int64_t e = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; e < n; e += step) out[e] = pos[e] + first;
}

static int cuda_randperm(int64_t n, int64_t first, int64_t *out) {
  static const char op[] = "randperm";
  if (n <= 0) return 0;
  int64_t width = power_of_two_above(n);
  sort_scratch s;
  if (sort_scratch_take(op, &s, width) < 0) return -1;
  uint64_t seed, offset;
  nn_cuda_generator_next(&seed, &offset);
  cudaStream_t st = nn_cuda_stream();
  randperm_keys_kernel<<<nn_cuda_blocks(width, NN_CUDA_THREADS), NN_CUDA_THREADS, 0, st>>>(n, width, seed, offset, s.key, s.pos);
  int status = nn_cuda_launched(op);
  if (status == 0) status = sort_pairs(op, s.key, s.pos, 1, width, 0);
  if (status == 0) {
    randperm_store_kernel<<<nn_cuda_blocks(n, NN_CUDA_THREADS), NN_CUDA_THREADS, 0, st>>>(n, first, s.pos, out);
    status = nn_cuda_launched(op);
  }
  nn_cuda_scratch_release(s.key, s.bytes);
  return status;
}

void nn_cuda_fill_toolkit_kernels(nn_backend *b) {
  b->nan_to_num = cuda_nan_to_num;
  b->where = cuda_where;
  b->index_offsets = cuda_index_offsets;
  b->index_gather = cuda_index_gather;
  b->index_put = cuda_index_put;
  b->nonzero = cuda_nonzero;
  b->sort = cuda_sort;
  b->scatter_line = cuda_scatter_line;
  b->scan = cuda_scan;
  b->cumprod_backward = cuda_cumprod_backward;
  b->prod_backward = cuda_prod_backward;
  b->random_int = cuda_random_int;
  b->randperm = cuda_randperm;
}

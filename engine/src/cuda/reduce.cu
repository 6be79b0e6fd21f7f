/* cuda/reduce.cu: reductions over the lines of an nn_reduce_geom (sum,
 * mean, p-norm), max and min with their indices, and the backward of max,
 * min and norm: cpu/reduce.c's entries. Formulas: math/reduce.h.
 *
 * A line is walked by a thread or a block (common.cuh); a few very long
 * lines (a sum of everything) are cut into pieces, each piece's partial
 * result goes to scratch, and a second kernel combines them in order.
 * Every combination is a fixed tree or a fixed order: no float atomics. */
#include "cuda/common.cuh"
#include "math/reduce.h"

/* ---- sum, mean, norm ----------------------------------------------------- */
struct reduce_params {
  nn_reduce_op op;
  double p;
  int integer; /* integer or bool input summed exactly, as int64 */
};

struct norm_combine {
  double p;
  __device__ double operator()(double a, double b) const { return nn_norm_combine(a, b, p); }
};

/* The result of a line whose accumulators are acc (floating) and iacc
   (integer), `length` elements long, into out's element o. */
__device__ void reduce_store(const nn_reduce_geom &r, const reduce_params &k, int64_t o, double acc,
                             long long iacc, int64_t length) {
  nn_dtype dt = r.it.dtype[0];
  if (k.op == NN_REDUCE_NORM) nn_store(dt, r.it.data[0], o, length ? nn_norm_finish(acc, k.p) : 0);
  else if (k.op == NN_REDUCE_MEAN) nn_store(dt, r.it.data[0], o, (k.integer ? (double)iacc : acc) / (double)length);
  else if (!k.integer) nn_store(dt, r.it.data[0], o, acc);
  else nn_store_integer(dt, r.it.data[0], o, iacc);
}

/* Piece q (line q / pieces, its piece q % pieces of `piece` elements):
   its accumulators, stored when the line is whole (pieces == 1), else
   into partial[q] / ipartial[q]. */
template <bool BLOCK, typename I>
__global__ void reduce_kernel(nn_reduce_geom r, reduce_params k, I count, I length, I pieces, I piece,
                              double *partial, long long *ipartial) {
  __shared__ double shared[32];
  __shared__ long long ishared[32];
  nn_dtype dt = r.it.dtype[1];
  I lane = nn_cuda_lane<BLOCK, I>(), lanes = nn_cuda_lanes<BLOCK, I>();
  for (I q = nn_cuda_first_line<BLOCK, I>(); q < count * pieces; q += nn_cuda_line_step<BLOCK, I>()) {
    I line = q / pieces, first = (q - line * pieces) * piece;
    I end = first + piece < length ? first + piece : length;
    I in = nn_cuda_line_start(r, 1, line);
    double acc = k.op == NN_REDUCE_NORM ? nn_norm_start(k.p) : 0;
    long long iacc = 0;
    for (I j = first + lane; j < end; j += lanes) {
      I at = in + nn_cuda_line_offset(r, 1, j);
      if (k.op == NN_REDUCE_NORM) acc = nn_norm_step(acc, fabs(nn_load(dt, r.it.data[1], at)), k.p);
      else if (k.integer) iacc = (long long)((unsigned long long)iacc + (unsigned long long)nn_load_integer(dt, r.it.data[1], at));
      else acc += nn_load(dt, r.it.data[1], at);
    }
    if (k.integer) iacc = nn_cuda_line_reduce<BLOCK>(iacc, nn_cuda_add_integer(), ishared);
    else if (k.op == NN_REDUCE_NORM) acc = nn_cuda_line_reduce<BLOCK>(acc, norm_combine{k.p}, shared);
    else acc = nn_cuda_line_reduce<BLOCK>(acc, nn_cuda_add_double(), shared);
    if (lane != 0) continue;
    if (pieces == 1) reduce_store(r, k, nn_cuda_line_start(r, 0, line), acc, iacc, length);
    else if (k.integer) ipartial[q] = iacc;
    else partial[q] = acc;
  }
}

/* A thread per line: its pieces' partial results, in order. */
template <typename I>
__global__ void reduce_pieces_kernel(nn_reduce_geom r, reduce_params k, I count, I length, I pieces,
                                     const double *partial, const long long *ipartial) {
  I step = (I)gridDim.x * (I)blockDim.x;
  for (I line = (I)blockIdx.x * (I)blockDim.x + (I)threadIdx.x; line < count; line += step) {
    double acc = k.integer ? 0 : partial[line * pieces];
    long long iacc = k.integer ? ipartial[line * pieces] : 0;
    for (I c = 1; c < pieces; c++) {
      if (k.integer) iacc = nn_cuda_add_integer()(iacc, ipartial[line * pieces + c]);
      else if (k.op == NN_REDUCE_NORM) acc = nn_norm_combine(acc, partial[line * pieces + c], k.p);
      else acc += partial[line * pieces + c];
    }
    reduce_store(r, k, nn_cuda_line_start(r, 0, line), acc, iacc, length);
  }
}

/* Lines cut into pieces of about this many elements when there are too few
   lines to fill the GPU. */
#define REDUCE_PIECE (16 * 1024)

template <typename I>
static int reduce_launch(const nn_reduce_geom *r, reduce_params k, int64_t count, int64_t length) {
  static const char op[] = "reduce";
  int block = nn_cuda_lines_by_block(r, 1);
  int64_t pieces = 1;
  if (block && count < 256 && length >= 2 * REDUCE_PIECE) {
    pieces = length / REDUCE_PIECE;
    if (pieces > 1024) pieces = 1024;
  }
  int64_t piece = (length + pieces - 1) / pieces;
  int threads = block ? nn_cuda_line_threads(piece) : NN_CUDA_THREADS;
  cudaStream_t st = nn_cuda_stream();
  if (pieces == 1) {
    if (block)
      reduce_kernel<true, I><<<nn_cuda_blocks(count, 1), threads, 0, st>>>(*r, k, (I)count, (I)length, 1, (I)length, NULL, NULL);
    else
      reduce_kernel<false, I><<<nn_cuda_blocks(count, threads), threads, 0, st>>>(*r, k, (I)count, (I)length, 1, (I)length, NULL, NULL);
    return nn_cuda_launched(op);
  }
  size_t bytes = (size_t)(count * pieces) * sizeof(double); /* a long long is as wide */
  void *partial = nn_cuda_scratch(op, bytes);
  if (!partial) return -1;
  reduce_kernel<true, I><<<nn_cuda_blocks(count * pieces, 1), threads, 0, st>>>(
      *r, k, (I)count, (I)length, (I)pieces, (I)piece, (double *)partial, (long long *)partial);
  int status = nn_cuda_launched(op);
  if (status == 0) {
    reduce_pieces_kernel<I><<<nn_cuda_blocks(count, NN_CUDA_THREADS), NN_CUDA_THREADS, 0, st>>>(
        *r, k, (I)count, (I)length, (I)pieces, (const double *)partial, (const long long *)partial);
    status = nn_cuda_launched(op);
  }
  nn_cuda_scratch_release(partial, bytes);
  return status;
}

static int cuda_reduce(nn_reduce_op op, const nn_reduce_geom *r, double p) {
  int64_t count = nn_cuda_iter_numel(&r->it), length = nn_cuda_line_length(r);
  if (count <= 0) return 0;
  reduce_params k = {op, p, op != NN_REDUCE_NORM && !nn_floating_dtype(r->it.dtype[1])};
  return nn_cuda_lines_fit32(r) ? reduce_launch<int32_t>(r, k, count, length)
                                : reduce_launch<int64_t>(r, k, count, length);
}

/* ---- max and min ------------------------------------------------------------ */
/* The better of two candidates (value, line index), index -1 for none:
   the earlier index wins unless the later is strictly better or NaN
   (nn_extreme_better), so that the result does not depend on which
   thread saw which element. */
__device__ __forceinline__ void extreme_pick(double &v, long long &j, double v2, long long j2, int want_max) {
  if (j2 < 0) return;
  if (j < 0) {
    v = v2, j = j2;
    return;
  }
  int later_is_second = j2 > j;
  double early = later_is_second ? v : v2, late = later_is_second ? v2 : v;
  long long early_j = later_is_second ? j : j2, late_j = later_is_second ? j2 : j;
  int take_late = nn_extreme_better(late, early, want_max);
  v = take_late ? late : early;
  j = take_late ? late_j : early_j;
}

/* (values, in, indices) */
template <bool BLOCK, typename I>
__global__ void extreme_kernel(nn_reduce_geom r, I count, I length, int want_max) {
  __shared__ double shared_v[32];
  __shared__ long long shared_j[32];
  nn_dtype dt = r.it.dtype[1];
  I lane = nn_cuda_lane<BLOCK, I>(), lanes = nn_cuda_lanes<BLOCK, I>();
  for (I p = nn_cuda_first_line<BLOCK, I>(); p < count; p += nn_cuda_line_step<BLOCK, I>()) {
    I in = nn_cuda_line_start(r, 1, p);
    double best = 0;
    long long best_j = -1;
    for (I j = lane; j < length; j += lanes)
      extreme_pick(best, best_j, nn_load(dt, r.it.data[1], in + nn_cuda_line_offset(r, 1, j)), (long long)j, want_max);
    if (BLOCK) {
      for (int o = 16; o > 0; o >>= 1) {
        double v2 = nn_cuda_shfl_down(best, o);
        long long j2 = nn_cuda_shfl_down(best_j, o);
        extreme_pick(best, best_j, v2, j2, want_max);
      }
      int warp = threadIdx.x >> 5;
      if ((threadIdx.x & 31) == 0) shared_v[warp] = best, shared_j[warp] = best_j;
      __syncthreads();
      if (threadIdx.x == 0)
        for (int w = 1; w < (int)(blockDim.x >> 5); w++) extreme_pick(best, best_j, shared_v[w], shared_j[w], want_max);
      __syncthreads();
    }
    if (lane != 0 || best_j < 0) continue;
    nn_store(r.it.dtype[0], r.it.data[0], nn_cuda_line_start(r, 0, p), best);
    if (r.it.n > 2) ((int64_t *)r.it.data[2])[nn_cuda_line_start(r, 2, p)] = best_j;
  }
}

static int cuda_extreme(int want_max, const nn_reduce_geom *r) {
  nn_cuda_line_plan l = nn_cuda_plan_lines(r, 1);
  if (l.count <= 0 || l.length <= 0) return 0;
  cudaStream_t st = nn_cuda_stream();
  int32_t c = (int32_t)l.count, n = (int32_t)l.length;
  if (l.fits32 && l.block) extreme_kernel<true, int32_t><<<l.blocks, l.threads, 0, st>>>(*r, c, n, want_max);
  else if (l.fits32) extreme_kernel<false, int32_t><<<l.blocks, l.threads, 0, st>>>(*r, c, n, want_max);
  else if (l.block) extreme_kernel<true, int64_t><<<l.blocks, l.threads, 0, st>>>(*r, l.count, l.length, want_max);
  else extreme_kernel<false, int64_t><<<l.blocks, l.threads, 0, st>>>(*r, l.count, l.length, want_max);
  return nn_cuda_launched(want_max ? "max" : "min");
}

/* (gi, g, indices): gi is zero; g lands at each line's index */
template <typename I>
__global__ void extreme_backward_kernel(nn_reduce_geom r, I count) {
  I step = (I)gridDim.x * (I)blockDim.x;
  for (I p = (I)blockIdx.x * (I)blockDim.x + (I)threadIdx.x; p < count; p += step) {
    I j = (I)((const int64_t *)r.it.data[2])[nn_cuda_line_start(r, 2, p)];
    double g = nn_load(r.it.dtype[1], r.it.data[1], nn_cuda_line_start(r, 1, p));
    nn_store(r.it.dtype[0], r.it.data[0], nn_cuda_line_start(r, 0, p) + nn_cuda_line_offset(r, 0, j), g);
  }
}

static int cuda_extreme_backward(const nn_reduce_geom *r) {
  int64_t count = nn_cuda_iter_numel(&r->it);
  if (count <= 0) return 0;
  unsigned blocks = nn_cuda_blocks(count, NN_CUDA_THREADS);
  if (nn_cuda_lines_fit32(r))
    extreme_backward_kernel<int32_t><<<blocks, NN_CUDA_THREADS, 0, nn_cuda_stream()>>>(*r, (int32_t)count);
  else
    extreme_backward_kernel<int64_t><<<blocks, NN_CUDA_THREADS, 0, nn_cuda_stream()>>>(*r, count);
  return nn_cuda_launched("max backward");
}

/* ---- gradients that share g over a line ----------------------------------- */
/* extreme_all_backward (gi, x, value, g): g / count where x attains value;
   norm_backward (gi, x, norm, g): nn_norm_grad, for p = +-inf shared by
   the elements that attain the norm. Both count the attaining elements
   first, then write every element. */
template <bool BLOCK, typename I>
__global__ void share_kernel(nn_reduce_geom r, I count, I length, int norm, double p) {
  __shared__ long long shared[32];
  const nn_dtype *dt = r.it.dtype;
  I lane = nn_cuda_lane<BLOCK, I>(), lanes = nn_cuda_lanes<BLOCK, I>();
  for (I line = nn_cuda_first_line<BLOCK, I>(); line < count; line += nn_cuda_line_step<BLOCK, I>()) {
    I out = nn_cuda_line_start(r, 0, line), x = nn_cuda_line_start(r, 1, line);
    double value = nn_load(dt[2], r.it.data[2], nn_cuda_line_start(r, 2, line));
    double g = nn_load(dt[3], r.it.data[3], nn_cuda_line_start(r, 3, line));
    long long attaining = 0;
    if (!norm || isinf(p)) {
      for (I j = lane; j < length; j += lanes) {
        double v = nn_load(dt[1], r.it.data[1], x + nn_cuda_line_offset(r, 1, j));
        attaining += norm ? nn_norm_attains(v, value) : nn_extreme_attains(v, value);
      }
      attaining = nn_cuda_line_reduce<BLOCK>(attaining, nn_cuda_add_integer(), shared);
    }
    for (I j = lane; j < length; j += lanes) {
      double v = nn_load(dt[1], r.it.data[1], x + nn_cuda_line_offset(r, 1, j));
      double gi = norm ? nn_norm_grad(v, value, g, p, attaining)
                       : (nn_extreme_attains(v, value) ? g / (double)attaining : 0);
      nn_store(dt[0], r.it.data[0], out + nn_cuda_line_offset(r, 0, j), gi);
    }
  }
}

static int share_launch(const char *op, const nn_reduce_geom *r, int norm, double p) {
  nn_cuda_line_plan l = nn_cuda_plan_lines(r, 1);
  if (l.count <= 0 || l.length <= 0) return 0;
  cudaStream_t st = nn_cuda_stream();
  int32_t c = (int32_t)l.count, n = (int32_t)l.length;
  if (l.fits32 && l.block) share_kernel<true, int32_t><<<l.blocks, l.threads, 0, st>>>(*r, c, n, norm, p);
  else if (l.fits32) share_kernel<false, int32_t><<<l.blocks, l.threads, 0, st>>>(*r, c, n, norm, p);
  else if (l.block) share_kernel<true, int64_t><<<l.blocks, l.threads, 0, st>>>(*r, l.count, l.length, norm, p);
  else share_kernel<false, int64_t><<<l.blocks, l.threads, 0, st>>>(*r, l.count, l.length, norm, p);
  return nn_cuda_launched(op);
}

static int cuda_extreme_all_backward(const nn_reduce_geom *r) {
  return share_launch("max backward", r, 0, 0);
}

static int cuda_norm_backward(double p, const nn_reduce_geom *r) {
  return share_launch("norm backward", r, 1, p);
}

void nn_cuda_fill_reduce_kernels(nn_backend *b) {
  b->reduce = cuda_reduce;
  b->extreme = cuda_extreme;
  b->extreme_backward = cuda_extreme_backward;
  b->extreme_all_backward = cuda_extreme_all_backward;
  b->norm_backward = cuda_norm_backward;
}

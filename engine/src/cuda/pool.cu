/* cuda/pool.cu: pooling, upsampling and batch normalisation on the GPU,
 * the same windows and formulas as cpu/pool.c (math/pool.h): a thread per
 * output element forward; backward zeroes the input's gradient and adds
 * each output's share with atomics (windows may overlap); batch norm's
 * per-channel sums are one block a channel, combined in a fixed tree
 * (common.cuh), in double. */
#include "cuda/common.cuh"
#include "math/pool.h"

/* p[i] += v in p's dtype, safely against other threads */
__device__ __forceinline__ void add_at(nn_dtype dt, void *p, int64_t i, double v) {
  if (dt == NN_FLOAT32) atomicAdd((float *)p + i, (float)v);
  else atomicAdd((double *)p + i, v);
}

static int clear(const char *op, void *p, nn_dtype dt, int64_t n) {
  return nn_cuda_status(op, cudaMemsetAsync(p, 0, (size_t)n * nn_element_size(dt), nn_cuda_stream()));
}

/* ---- pooling ------------------------------------------------------------- */
/* The window of output o (a plane's row oh, column ow) along each dim:
   [h0, h1) stepping dh, [w0, w1) stepping dw, and avg's divisor. */
struct pool_window {
  int64_t h0, h1, w0, w1, divisor;
  int dh, dw;
};

__device__ pool_window window_of(const nn_pool2d_args &a, int64_t oh, int64_t ow) {
  pool_window w;
  w.dh = w.dw = 1;
  w.divisor = 1;
  if (a.kind == NN_POOL_ADAPTIVE_MAX || a.kind == NN_POOL_ADAPTIVE_AVG) {
    nn_adaptive_window(oh, a.in_h, a.out_h, &w.h0, &w.h1);
    nn_adaptive_window(ow, a.in_w, a.out_w, &w.w0, &w.w1);
    w.divisor = (w.h1 - w.h0) * (w.w1 - w.w0);
  } else if (a.kind == NN_POOL_MAX) {
    nn_max_window(oh, a.in_h, a.stride[0], a.padding[0], a.kernel[0], a.dilation[0], &w.h0, &w.h1);
    nn_max_window(ow, a.in_w, a.stride[1], a.padding[1], a.kernel[1], a.dilation[1], &w.w0, &w.w1);
    w.dh = a.dilation[0], w.dw = a.dilation[1];
  } else {
    int64_t ph = nn_avg_window(oh, a.in_h, a.stride[0], a.padding[0], a.kernel[0], &w.h0, &w.h1);
    int64_t pw = nn_avg_window(ow, a.in_w, a.stride[1], a.padding[1], a.kernel[1], &w.w0, &w.w1);
    w.divisor = a.divisor ? a.divisor : a.count_include_pad ? ph * pw : (w.h1 - w.h0) * (w.w1 - w.w0);
  }
  return w;
}

struct pool_forward_op {
  nn_pool2d_args a;
  __device__ void operator()(int64_t o) const {
    int64_t oplane = a.out_h * a.out_w, p = o / oplane, r = o - p * oplane;
    pool_window w = window_of(a, r / a.out_w, r % a.out_w);
    int64_t base = p * a.in_h * a.in_w;
    if (a.kind == NN_POOL_MAX || a.kind == NN_POOL_ADAPTIVE_MAX) {
      int64_t best = w.h0 * a.in_w + w.w0;
      double value = -INFINITY;
      for (int64_t ih = w.h0; ih < w.h1; ih += w.dh)
        for (int64_t iw = w.w0; iw < w.w1; iw += w.dw) {
          double v = nn_load(a.dtype, a.x, base + ih * a.in_w + iw);
          if (v > value || isnan(v)) value = v, best = ih * a.in_w + iw;
        }
      nn_store(a.dtype, a.out, o, value);
      if (a.indices) a.indices[o] = best + a.index_base;
    } else {
      double sum = 0;
      for (int64_t ih = w.h0; ih < w.h1; ih++)
        for (int64_t iw = w.w0; iw < w.w1; iw++) sum += nn_load(a.dtype, a.x, base + ih * a.in_w + iw);
      nn_store(a.dtype, a.out, o, w.h0 >= w.h1 || w.w0 >= w.w1 ? 0.0 : sum / (double)w.divisor);
    }
  }
};

struct pool_backward_op {
  nn_pool2d_args a;
  __device__ void operator()(int64_t o) const {
    int64_t oplane = a.out_h * a.out_w, p = o / oplane, r = o - p * oplane;
    int64_t base = p * a.in_h * a.in_w;
    double g = nn_load(a.dtype, a.g, o);
    if (a.kind == NN_POOL_MAX || a.kind == NN_POOL_ADAPTIVE_MAX) {
      add_at(a.dtype, a.gx, base + a.indices[o] - a.index_base, g);
      return;
    }
    pool_window w = window_of(a, r / a.out_w, r % a.out_w);
    double share = g / (double)w.divisor;
    if (a.dtype == NN_FLOAT32) share = (float)share;
    for (int64_t ih = w.h0; ih < w.h1; ih++)
      for (int64_t iw = w.w0; iw < w.w1; iw++) add_at(a.dtype, a.gx, base + ih * a.in_w + iw, share);
  }
};

static int cuda_pool2d(const nn_pool2d_args *a) {
  return nn_cuda_run_each("pool2d", a->planes * a->out_h * a->out_w, pool_forward_op{*a});
}

static int cuda_pool2d_backward(const nn_pool2d_args *a) {
  const char *op = "pool2d backward";
  if (clear(op, a->gx, a->dtype, a->planes * a->in_h * a->in_w) < 0) return -1;
  return nn_cuda_run_each(op, a->planes * a->out_h * a->out_w, pool_backward_op{*a});
}

/* ---- upsampling ------------------------------------------------------------ */
/* The two source rows (columns) of output o and their weights; nearest
   has one source and weight 1. */
__device__ void taps(const nn_upsample2d_args &a, int64_t o, int64_t in, int64_t out, double scale,
                     int64_t *i0, int64_t *i1, double *l0, double *l1) {
  if (!a.bilinear) {
    *i0 = *i1 = nn_nearest_source(o, in, out, (float)scale);
    *l0 = 1, *l1 = 0;
    return;
  }
  if (in == out) {
    *i0 = *i1 = o, *l0 = 1, *l1 = 0;
    return;
  }
  double s = nn_linear_source(o, scale, a.align_corners);
  *i0 = (int64_t)s;
  *i1 = *i0 + (*i0 < in - 1 ? 1 : 0);
  double l = s - (double)*i0;
  *l1 = l < 0 ? 0 : l > 1 ? 1 : l;
  *l0 = 1 - *l1;
}

struct upsample_op {
  nn_upsample2d_args a;
  int backward;
  __device__ void operator()(int64_t o) const {
    int64_t oplane = a.out_h * a.out_w, p = o / oplane, r = o - p * oplane;
    int64_t h0, h1, w0, w1;
    double hl0, hl1, wl0, wl1;
    taps(a, r / a.out_w, a.in_h, a.out_h, a.scale_h, &h0, &h1, &hl0, &hl1);
    taps(a, r % a.out_w, a.in_w, a.out_w, a.scale_w, &w0, &w1, &wl0, &wl1);
    int64_t base = p * a.in_h * a.in_w;
    if (backward) {
      double g = nn_load(a.dtype, a.g, o);
      add_at(a.dtype, a.gx, base + h0 * a.in_w + w0, hl0 * wl0 * g);
      if (!a.bilinear) return;
      add_at(a.dtype, a.gx, base + h0 * a.in_w + w1, hl0 * wl1 * g);
      add_at(a.dtype, a.gx, base + h1 * a.in_w + w0, hl1 * wl0 * g);
      add_at(a.dtype, a.gx, base + h1 * a.in_w + w1, hl1 * wl1 * g);
      return;
    }
    double v = hl0 * (wl0 * nn_load(a.dtype, a.x, base + h0 * a.in_w + w0) +
                      wl1 * nn_load(a.dtype, a.x, base + h0 * a.in_w + w1)) +
               hl1 * (wl0 * nn_load(a.dtype, a.x, base + h1 * a.in_w + w0) +
                      wl1 * nn_load(a.dtype, a.x, base + h1 * a.in_w + w1));
    nn_store(a.dtype, a.out, o, v);
  }
};

static int cuda_upsample2d(const nn_upsample2d_args *a) {
  return nn_cuda_run_each("interpolate", a->planes * a->out_h * a->out_w, upsample_op{*a, 0});
}

static int cuda_upsample2d_backward(const nn_upsample2d_args *a) {
  const char *op = "interpolate backward";
  if (clear(op, a->gx, a->dtype, a->planes * a->in_h * a->in_w) < 0) return -1;
  return nn_cuda_run_each(op, a->planes * a->out_h * a->out_w, upsample_op{*a, 1});
}

/* ---- batch normalisation ---------------------------------------------------- */
/* Element j of channel c (j < outer inner) as a flat index. */
__device__ __forceinline__ int64_t channel_element(const nn_batch_norm_args &a, int64_t c, int64_t j) {
  return ((j / a.inner) * a.channels + c) * a.inner + j % a.inner;
}

/* A block per channel: the statistics (cpu/pool.c's shifted sums) and the
   running statistics' step; eval mode reads the running ones. */
__global__ void batch_norm_stats_kernel(nn_batch_norm_args a) {
  __shared__ double shared[32];
  int64_t n = a.outer * a.inner;
  for (int64_t c = blockIdx.x; c < a.channels; c += gridDim.x) {
    double mean, invstd;
    if (a.training) {
      double k = nn_load(a.dtype, a.x, c * a.inner), s1 = 0, s2 = 0;
      for (int64_t j = threadIdx.x; j < n; j += blockDim.x) {
        double d = nn_load(a.dtype, a.x, channel_element(a, c, j)) - k;
        s1 += d, s2 += d * d;
      }
      s1 = nn_cuda_block_reduce(s1, nn_cuda_add_double(), shared);
      s2 = nn_cuda_block_reduce(s2, nn_cuda_add_double(), shared);
      double m = s1 / (double)n, var = s2 / (double)n - m * m;
      var = var > 0 ? var : 0;
      mean = k + m;
      invstd = 1 / sqrt(var + a.eps);
      if (threadIdx.x == 0 && a.running_mean) {
        double mo = a.momentum;
        nn_store(a.dtype, a.running_mean, c, mo * mean + (1 - mo) * nn_load(a.dtype, a.running_mean, c));
        nn_store(a.dtype, a.running_var, c,
                 mo * var * (double)n / (double)(n - 1) + (1 - mo) * nn_load(a.dtype, a.running_var, c));
      }
    } else {
      mean = nn_load(a.dtype, a.running_mean, c);
      invstd = 1 / sqrt(nn_load(a.dtype, a.running_var, c) + a.eps);
    }
    if (threadIdx.x == 0) a.stats[c] = mean, a.stats[a.channels + c] = invstd;
  }
}

struct batch_norm_apply_op {
  nn_batch_norm_args a;
  __device__ void operator()(int64_t i) const {
    int64_t c = (i / a.inner) % a.channels;
    double invstd = a.stats[a.channels + c];
    double alpha = invstd * (a.weight ? nn_load(a.dtype, a.weight, c) : 1.0);
    double beta = (a.bias ? nn_load(a.dtype, a.bias, c) : 0.0) - a.stats[c] * alpha;
    nn_store(a.dtype, a.out, i, nn_load(a.dtype, a.x, i) * alpha + beta);
  }
};

static int cuda_batch_norm(const nn_batch_norm_args *a) {
  const char *op = "batch_norm";
  if (a->channels <= 0) return 0;
  batch_norm_stats_kernel<<<nn_cuda_blocks(a->channels, 1), NN_CUDA_THREADS, 0, nn_cuda_stream()>>>(*a);
  if (nn_cuda_launched(op) < 0) return -1;
  return nn_cuda_run_each(op, a->outer * a->channels * a->inner, batch_norm_apply_op{*a});
}

/* A block per channel: sum g and sum g (x - mean) into sums (2 channels
   doubles), and the weight's and bias's gradients. */
__global__ void batch_norm_sums_kernel(nn_batch_norm_args a, double *sums) {
  __shared__ double shared[32];
  int64_t n = a.outer * a.inner;
  for (int64_t c = blockIdx.x; c < a.channels; c += gridDim.x) {
    double mean = a.stats[c], sum = 0, dot = 0;
    for (int64_t j = threadIdx.x; j < n; j += blockDim.x) {
      int64_t i = channel_element(a, c, j);
      double g = nn_load(a.dtype, a.g, i);
      sum += g, dot += g * (nn_load(a.dtype, a.x, i) - mean);
    }
    sum = nn_cuda_block_reduce(sum, nn_cuda_add_double(), shared);
    dot = nn_cuda_block_reduce(dot, nn_cuda_add_double(), shared);
    if (threadIdx.x == 0) {
      sums[c] = sum, sums[a.channels + c] = dot;
      if (a.gw) nn_store(a.dtype, a.gw, c, dot * a.stats[a.channels + c]);
      if (a.gb) nn_store(a.dtype, a.gb, c, sum);
    }
  }
}

struct batch_norm_grad_op {
  nn_batch_norm_args a;
  const double *sums;
  __device__ void operator()(int64_t i) const {
    int64_t c = (i / a.inner) % a.channels, n = a.outer * a.inner;
    double mean = a.stats[c], invstd = a.stats[a.channels + c];
    double scale = invstd * (a.weight ? nn_load(a.dtype, a.weight, c) : 1.0);
    double g = nn_load(a.dtype, a.g, i);
    if (a.training) {
      double k = sums[a.channels + c] * invstd * invstd / (double)n, grad_mean = sums[c] / (double)n;
      g = g - grad_mean - (nn_load(a.dtype, a.x, i) - mean) * k;
    }
    nn_store(a.dtype, a.gx, i, g * scale);
  }
};

static int cuda_batch_norm_backward(const nn_batch_norm_args *a) {
  const char *op = "batch_norm backward";
  if (a->channels <= 0) return 0;
  size_t bytes = 2 * (size_t)a->channels * sizeof(double);
  double *sums = (double *)nn_cuda_scratch(op, bytes);
  if (!sums) return -1;
  batch_norm_sums_kernel<<<nn_cuda_blocks(a->channels, 1), NN_CUDA_THREADS, 0, nn_cuda_stream()>>>(*a, sums);
  int status = nn_cuda_launched(op);
  if (status == 0 && a->gx)
    status = nn_cuda_run_each(op, a->outer * a->channels * a->inner, batch_norm_grad_op{*a, sums});
  nn_cuda_scratch_release(sums, bytes);
  return status;
}

void nn_cuda_fill_pool_kernels(nn_backend *b) {
  b->pool2d = cuda_pool2d;
  b->pool2d_backward = cuda_pool2d_backward;
  b->upsample2d = cuda_upsample2d;
  b->upsample2d_backward = cuda_upsample2d_backward;
  b->batch_norm = cuda_batch_norm;
  b->batch_norm_backward = cuda_batch_norm_backward;
}

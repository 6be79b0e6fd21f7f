/* cpu/pool.c: pooling, upsampling and batch normalisation, forward and
 * backward: one pass per plane (pooling, upsampling) or per channel
 * (batch normalisation), the planes or channels split over the pool
 * (cpu/parallel.c) when there is enough work. Windows and source positions:
 * math/pool.h; the order of operations follows PyTorch 1.13's CPU
 * kernels (sums in double, gradients added in the tensor's dtype). */
#include "cpu/cpu.h"
#include "math/pool.h"

#include <math.h>
#include <string.h>

/* fn(args, first, last) over [0, n) items of `each` elements of work,
   on the pool (cpu/parallel.c) when there is enough of it. */
static void split(int64_t n, int64_t each, nn_range_fn fn, const void *args) {
  nn_parallel_for(n, each, 1, fn, args);
}

/* Element i of a float32 or float64 array; called with dt a constant, so
   that each loop is compiled once per dtype. */
static inline double get(nn_dtype dt, const void *p, int64_t i) {
  return dt == NN_FLOAT32 ? (double)((const float *)p)[i] : ((const double *)p)[i];
}
static inline void put(nn_dtype dt, void *p, int64_t i, double v) {
  if (dt == NN_FLOAT32) ((float *)p)[i] = (float)v;
  else ((double *)p)[i] = v;
}
/* p[i] += v in the array's dtype, as PyTorch's backward kernels add */
static inline void add(nn_dtype dt, void *p, int64_t i, double v) {
  if (dt == NN_FLOAT32) ((float *)p)[i] += (float)v;
  else ((double *)p)[i] += v;
}

/* ---- pooling -------------------------------------------------------------- */
NN_MATH_SELECTS_BEGIN
static inline void max_planes(nn_dtype dt, const nn_pool2d_args *a, int64_t first, int64_t last) {
  int64_t ih_n = a->in_h, iw_n = a->in_w, plane = ih_n * iw_n, oplane = a->out_h * a->out_w;
  int adaptive = a->kind == NN_POOL_ADAPTIVE_MAX;
  for (int64_t p = first; p < last; p++) {
    const char *x = (const char *)a->x + (size_t)(p * plane) * nn_element_size(dt);
    int64_t o = p * oplane;
    for (int64_t oh = 0; oh < a->out_h; oh++) {
      int64_t h0, h1, w0, w1;
      int dh = 1, dw = 1;
      if (adaptive) nn_adaptive_window(oh, ih_n, a->out_h, &h0, &h1);
      else nn_max_window(oh, ih_n, a->stride[0], a->padding[0], a->kernel[0], dh = a->dilation[0], &h0, &h1);
      for (int64_t ow = 0; ow < a->out_w; ow++, o++) {
        if (adaptive) nn_adaptive_window(ow, iw_n, a->out_w, &w0, &w1);
        else nn_max_window(ow, iw_n, a->stride[1], a->padding[1], a->kernel[1], dw = a->dilation[1], &w0, &w1);
        int64_t best = h0 * iw_n + w0;
        double value = -INFINITY;
        for (int64_t ih = h0; ih < h1; ih += dh)
          for (int64_t iw = w0; iw < w1; iw += dw) {
            /* selects, not a branch: which tap wins is unpredictable */
            double v = get(dt, x, ih * iw_n + iw);
            int wins = (v > value) | (v != v);
            value = wins ? v : value;
            best = wins ? ih * iw_n + iw : best;
          }
        put(dt, a->out, o, value);
        if (a->indices) a->indices[o] = best + a->index_base;
      }
    }
  }
}

NN_MATH_SELECTS_END

/* The average kinds: each output the mean of its window (avg_pool2d's
   divisor: divisor_override, the padded window or the clipped one). */
static inline void avg_planes(nn_dtype dt, const nn_pool2d_args *a, int64_t first, int64_t last,
                              int backward) {
  int64_t ih_n = a->in_h, iw_n = a->in_w, plane = ih_n * iw_n, oplane = a->out_h * a->out_w;
  int adaptive = a->kind == NN_POOL_ADAPTIVE_AVG;
  size_t es = nn_element_size(dt);
  for (int64_t p = first; p < last; p++) {
    const char *x = backward ? NULL : (const char *)a->x + (size_t)(p * plane) * es;
    char *gx = backward ? (char *)a->gx + (size_t)(p * plane) * es : NULL;
    if (backward) memset(gx, 0, (size_t)plane * es);
    int64_t o = p * oplane;
    for (int64_t oh = 0; oh < a->out_h; oh++) {
      int64_t h0, h1, w0, w1, padded_h = 0, padded_w = 0;
      if (adaptive) nn_adaptive_window(oh, ih_n, a->out_h, &h0, &h1);
      else padded_h = nn_avg_window(oh, ih_n, a->stride[0], a->padding[0], a->kernel[0], &h0, &h1);
      for (int64_t ow = 0; ow < a->out_w; ow++, o++) {
        if (adaptive) nn_adaptive_window(ow, iw_n, a->out_w, &w0, &w1);
        else padded_w = nn_avg_window(ow, iw_n, a->stride[1], a->padding[1], a->kernel[1], &w0, &w1);
        int64_t divisor = adaptive ? (h1 - h0) * (w1 - w0)
                          : a->divisor ? a->divisor
                          : a->count_include_pad ? padded_h * padded_w : (h1 - h0) * (w1 - w0);
        if (h0 >= h1 || w0 >= w1) {
          if (!backward) put(dt, a->out, o, 0);
          continue;
        }
        if (backward) {
          double share = get(dt, a->g, o) / (double)divisor;
          if (dt == NN_FLOAT32) share = (float)share;
          for (int64_t ih = h0; ih < h1; ih++)
            for (int64_t iw = w0; iw < w1; iw++) add(dt, gx, ih * iw_n + iw, share);
        } else {
          double sum = 0;
          for (int64_t ih = h0; ih < h1; ih++)
            for (int64_t iw = w0; iw < w1; iw++) sum += get(dt, x, ih * iw_n + iw);
          put(dt, a->out, o, sum / (double)divisor);
        }
      }
    }
  }
}

/* The max kinds' gradient: each g added where its maximum came from. */
static inline void max_backward_planes(nn_dtype dt, const nn_pool2d_args *a, int64_t first,
                                       int64_t last) {
  int64_t plane = a->in_h * a->in_w, oplane = a->out_h * a->out_w;
  size_t es = nn_element_size(dt);
  for (int64_t p = first; p < last; p++) {
    char *gx = (char *)a->gx + (size_t)(p * plane) * es;
    memset(gx, 0, (size_t)plane * es);
    for (int64_t o = p * oplane; o < (p + 1) * oplane; o++)
      add(dt, gx, a->indices[o] - a->index_base, get(dt, a->g, o));
  }
}

static void pool_range(const void *args, int64_t first, int64_t last) {
  const nn_pool2d_args *a = args;
  int is_max = a->kind == NN_POOL_MAX || a->kind == NN_POOL_ADAPTIVE_MAX;
  if (a->dtype == NN_FLOAT32) {
    if (is_max) max_planes(NN_FLOAT32, a, first, last);
    else avg_planes(NN_FLOAT32, a, first, last, 0);
  } else {
    if (is_max) max_planes(NN_FLOAT64, a, first, last);
    else avg_planes(NN_FLOAT64, a, first, last, 0);
  }
}

static void pool_backward_range(const void *args, int64_t first, int64_t last) {
  const nn_pool2d_args *a = args;
  int is_max = a->kind == NN_POOL_MAX || a->kind == NN_POOL_ADAPTIVE_MAX;
  if (a->dtype == NN_FLOAT32) {
    if (is_max) max_backward_planes(NN_FLOAT32, a, first, last);
    else avg_planes(NN_FLOAT32, a, first, last, 1);
  } else {
    if (is_max) max_backward_planes(NN_FLOAT64, a, first, last);
    else avg_planes(NN_FLOAT64, a, first, last, 1);
  }
}

int nn_cpu_pool2d(const nn_pool2d_args *a) {
  split(a->planes, a->in_h * a->in_w, pool_range, a);
  return 0;
}

int nn_cpu_pool2d_backward(const nn_pool2d_args *a) {
  split(a->planes, a->in_h * a->in_w, pool_backward_range, a);
  return 0;
}

/* ---- upsampling -------------------------------------------------------------- */
/* Bilinear's two source rows (or columns) of output o and their weights
   (compute_source_index_and_lambda). */
static inline void linear_taps(int64_t o, int64_t in, int64_t out, double scale, int align_corners,
                               int64_t *i0, int64_t *i1, double *l0, double *l1) {
  if (in == out) {
    *i0 = *i1 = o, *l0 = 1, *l1 = 0;
    return;
  }
  double s = nn_linear_source(o, scale, align_corners);
  *i0 = (int64_t)s;
  *i1 = *i0 + (*i0 < in - 1 ? 1 : 0);
  double l = s - (double)*i0;
  *l1 = l < 0 ? 0 : l > 1 ? 1 : l;
  *l0 = 1 - *l1;
}

static inline void upsample_planes(nn_dtype dt, const nn_upsample2d_args *a, int64_t first,
                                   int64_t last, int backward) {
  int64_t ih_n = a->in_h, iw_n = a->in_w, plane = ih_n * iw_n, oplane = a->out_h * a->out_w;
  size_t es = nn_element_size(dt);
  for (int64_t p = first; p < last; p++) {
    const char *x = backward ? NULL : (const char *)a->x + (size_t)(p * plane) * es;
    char *gx = backward ? (char *)a->gx + (size_t)(p * plane) * es : NULL;
    if (backward) memset(gx, 0, (size_t)plane * es);
    int64_t o = p * oplane;
    for (int64_t oh = 0; oh < a->out_h; oh++) {
      int64_t h0, h1;
      double hl0 = 1, hl1 = 0;
      if (a->bilinear) linear_taps(oh, ih_n, a->out_h, a->scale_h, a->align_corners, &h0, &h1, &hl0, &hl1);
      else h0 = h1 = nn_nearest_source(oh, ih_n, a->out_h, (float)a->scale_h);
      for (int64_t ow = 0; ow < a->out_w; ow++, o++) {
        int64_t w0, w1;
        double wl0 = 1, wl1 = 0;
        if (a->bilinear) linear_taps(ow, iw_n, a->out_w, a->scale_w, a->align_corners, &w0, &w1, &wl0, &wl1);
        else w0 = w1 = nn_nearest_source(ow, iw_n, a->out_w, (float)a->scale_w);
        if (!a->bilinear) {
          if (backward) add(dt, gx, h0 * iw_n + w0, get(dt, a->g, o));
          else put(dt, a->out, o, get(dt, x, h0 * iw_n + w0));
        } else if (backward) {
          double g = get(dt, a->g, o);
          add(dt, gx, h0 * iw_n + w0, hl0 * wl0 * g);
          add(dt, gx, h0 * iw_n + w1, hl0 * wl1 * g);
          add(dt, gx, h1 * iw_n + w0, hl1 * wl0 * g);
          add(dt, gx, h1 * iw_n + w1, hl1 * wl1 * g);
        } else {
          put(dt, a->out, o,
              hl0 * (wl0 * get(dt, x, h0 * iw_n + w0) + wl1 * get(dt, x, h0 * iw_n + w1)) +
                  hl1 * (wl0 * get(dt, x, h1 * iw_n + w0) + wl1 * get(dt, x, h1 * iw_n + w1)));
        }
      }
    }
  }
}

static void upsample_range(const void *args, int64_t first, int64_t last) {
  const nn_upsample2d_args *a = args;
  if (a->dtype == NN_FLOAT32) upsample_planes(NN_FLOAT32, a, first, last, 0);
  else upsample_planes(NN_FLOAT64, a, first, last, 0);
}

static void upsample_backward_range(const void *args, int64_t first, int64_t last) {
  const nn_upsample2d_args *a = args;
  if (a->dtype == NN_FLOAT32) upsample_planes(NN_FLOAT32, a, first, last, 1);
  else upsample_planes(NN_FLOAT64, a, first, last, 1);
}

int nn_cpu_upsample2d(const nn_upsample2d_args *a) {
  split(a->planes, a->out_h * a->out_w, upsample_range, a);
  return 0;
}

int nn_cpu_upsample2d_backward(const nn_upsample2d_args *a) {
  split(a->planes, a->out_h * a->out_w, upsample_backward_range, a);
  return 0;
}

/* ---- batch normalisation ------------------------------------------------------ */
/* One channel's statistics in one pass: sums of x - k and (x - k)^2 in
   double, k the channel's first element (a shift that keeps the
   difference of squares exact enough whatever the mean). */
static inline void channel_moments(nn_dtype dt, const nn_batch_norm_args *a, int64_t c,
                                   double *mean, double *var) {
  int64_t n = a->outer * a->inner, cstride = a->channels * a->inner;
  double k = get(dt, a->x, c * a->inner), s1 = 0, s2 = 0;
  for (int64_t b = 0; b < a->outer; b++) {
    int64_t base = b * cstride + c * a->inner;
    if (dt == NN_FLOAT32) {
      const float *x = (const float *)a->x + base;
      for (int64_t i = 0; i < a->inner; i++) {
        double d = (double)x[i] - k;
        s1 += d, s2 += d * d;
      }
    } else {
      const double *x = (const double *)a->x + base;
      for (int64_t i = 0; i < a->inner; i++) {
        double d = x[i] - k;
        s1 += d, s2 += d * d;
      }
    }
  }
  double m = s1 / (double)n, v = s2 / (double)n - m * m;
  *mean = k + m;
  *var = v > 0 ? v : 0;
}

static inline void batch_norm_channels(nn_dtype dt, const nn_batch_norm_args *a, int64_t first,
                                       int64_t last) {
  int64_t cstride = a->channels * a->inner, n = a->outer * a->inner;
  for (int64_t c = first; c < last; c++) {
    double mean, invstd;
    if (a->training) {
      double var;
      channel_moments(dt, a, c, &mean, &var);
      invstd = 1 / sqrt(var + a->eps);
      if (a->running_mean) {
        double m = a->momentum;
        put(dt, a->running_mean, c, m * mean + (1 - m) * get(dt, a->running_mean, c));
        put(dt, a->running_var, c, m * var * (double)n / (double)(n - 1) + (1 - m) * get(dt, a->running_var, c));
      }
    } else {
      mean = get(dt, a->running_mean, c);
      invstd = 1 / sqrt(get(dt, a->running_var, c) + a->eps);
    }
    a->stats[c] = mean, a->stats[a->channels + c] = invstd;
    /* y = x alpha + beta, as PyTorch's batch_norm_cpu_contiguous_impl */
    double alpha = invstd * (a->weight ? get(dt, a->weight, c) : 1);
    double beta = (a->bias ? get(dt, a->bias, c) : 0) - mean * alpha;
    for (int64_t b = 0; b < a->outer; b++) {
      int64_t base = b * cstride + c * a->inner;
      if (dt == NN_FLOAT32) {
        const float *x = (const float *)a->x + base;
        float *y = (float *)a->out + base, fa = (float)alpha, fb = (float)beta;
        for (int64_t i = 0; i < a->inner; i++) y[i] = x[i] * fa + fb;
      } else {
        const double *x = (const double *)a->x + base;
        double *y = (double *)a->out + base;
        for (int64_t i = 0; i < a->inner; i++) y[i] = x[i] * alpha + beta;
      }
    }
  }
}

/* PyTorch's batch_norm_backward_cpu_template, per channel: with the
   batch's statistics gx = (g - mean(g) - (x - mean) k) invstd w, k =
   sum(g (x - mean)) invstd^2 / n; with running ones gx = g invstd w. */
static inline void batch_norm_backward_channels(nn_dtype dt, const nn_batch_norm_args *a,
                                                int64_t first, int64_t last) {
  int64_t cstride = a->channels * a->inner, n = a->outer * a->inner;
  for (int64_t c = first; c < last; c++) {
    double mean = a->stats[c], invstd = a->stats[a->channels + c];
    double sum = 0, dot = 0;
    for (int64_t b = 0; b < a->outer; b++) {
      int64_t base = b * cstride + c * a->inner;
      for (int64_t i = 0; i < a->inner; i++) {
        double g = get(dt, a->g, base + i);
        sum += g, dot += g * (get(dt, a->x, base + i) - mean);
      }
    }
    if (a->gw) put(dt, a->gw, c, dot * invstd);
    if (a->gb) put(dt, a->gb, c, sum);
    if (!a->gx) continue;
    double w = a->weight ? get(dt, a->weight, c) : 1;
    double k = a->training ? dot * invstd * invstd / (double)n : 0;
    double grad_mean = a->training ? sum / (double)n : 0, scale = invstd * w;
    for (int64_t b = 0; b < a->outer; b++) {
      int64_t base = b * cstride + c * a->inner;
      if (dt == NN_FLOAT32) {
        const float *g = (const float *)a->g + base, *x = (const float *)a->x + base;
        float *gx = (float *)a->gx + base;
        float fm = (float)mean, fk = (float)k, fg = (float)grad_mean, fs = (float)scale;
        for (int64_t i = 0; i < a->inner; i++) gx[i] = (g[i] - fg - (x[i] - fm) * fk) * fs;
      } else {
        const double *g = (const double *)a->g + base, *x = (const double *)a->x + base;
        double *gx = (double *)a->gx + base;
        for (int64_t i = 0; i < a->inner; i++) gx[i] = (g[i] - grad_mean - (x[i] - mean) * k) * scale;
      }
    }
  }
}

static void batch_norm_range(const void *args, int64_t first, int64_t last) {
  const nn_batch_norm_args *a = args;
  if (a->dtype == NN_FLOAT32) batch_norm_channels(NN_FLOAT32, a, first, last);
  else batch_norm_channels(NN_FLOAT64, a, first, last);
}

static void batch_norm_backward_range(const void *args, int64_t first, int64_t last) {
  const nn_batch_norm_args *a = args;
  if (a->dtype == NN_FLOAT32) batch_norm_backward_channels(NN_FLOAT32, a, first, last);
  else batch_norm_backward_channels(NN_FLOAT64, a, first, last);
}

int nn_cpu_batch_norm(const nn_batch_norm_args *a) {
  split(a->channels, a->outer * a->inner, batch_norm_range, a);
  return 0;
}

int nn_cpu_batch_norm_backward(const nn_batch_norm_args *a) {
  split(a->channels, a->outer * a->inner, batch_norm_backward_range, a);
  return 0;
}

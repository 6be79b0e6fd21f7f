/* math/pool.h: the windows of pooling and the source positions of
 * upsampling, written once for the CPU and CUDA kernels (PyTorch 1.13's
 * ATen/native/Pool.h, AdaptivePooling.h, UpSample.h). */
#ifndef NN_MATH_POOL_H
#define NN_MATH_POOL_H

#include "math/common.h"

/* The input rows [*first, *last) that output row o of an adaptive pool
   reads: floor(o in / out) to ceil((o + 1) in / out). */
NN_HD static inline void nn_adaptive_window(int64_t o, int64_t in, int64_t out, int64_t *first,
                                            int64_t *last) {
  *first = (o * in) / out;
  *last = ((o + 1) * in + out - 1) / out;
}

/* An average pool's window along one dim for output o: [*first, *last)
   clipped to the input, and the window's length inside the padded input
   (what count_include_pad divides by). */
NN_HD static inline int64_t nn_avg_window(int64_t o, int64_t in, int stride, int pad, int kernel,
                                         int64_t *first, int64_t *last) {
  int64_t start = o * stride - pad;
  int64_t end = start + kernel;
  if (end > in + pad) end = in + pad;
  int64_t padded = end - start;
  *first = start < 0 ? 0 : start;
  *last = end > in ? in : end;
  return padded;
}

/* A max pool's window along one dim for output o: the first in-bounds
   tap (*first, stepping by dilation) and the end (exclusive). */
NN_HD static inline void nn_max_window(int64_t o, int64_t in, int stride, int pad, int kernel,
                                       int dilation, int64_t *first, int64_t *last) {
  int64_t start = o * stride - pad;
  int64_t end = start + (int64_t)(kernel - 1) * dilation + 1;
  *last = end < in ? end : in;
  while (start < 0) start += dilation;
  *first = start;
}

/* Whether a max pool's windows are 2 x 2 at stride 2, without padding or
   dilation, every window inside the plane (the lesson CNN's): they tile
   the plane without overlapping, and the CPU takes them four at a time
   and keeps a byte per window for backward (cpu/pool.c, pool.c). */
NN_HD static inline int nn_pool_tiles_2x2(const int *kernel, const int *stride, const int *padding,
                                          const int *dilation, int64_t in_h, int64_t in_w, int64_t out_h,
                                          int64_t out_w) {
  return kernel[0] == 2 && kernel[1] == 2 && stride[0] == 2 && stride[1] == 2 && padding[0] == 0 &&
         padding[1] == 0 && dilation[0] == 1 && dilation[1] == 1 && 2 * out_h <= in_h && 2 * out_w <= in_w;
}

/* Nearest upsampling's source index (nearest_idx): the same index at the
   same size, half at twice it, else floor(o scale) in float, scale being
   in / out or 1 / scale_factor when one was given. */
NN_HD static inline int64_t nn_nearest_source(int64_t o, int64_t in, int64_t out, float scale) {
  if (out == in) return o;
  if (out == 2 * in) return o >> 1;
  int64_t i = (int64_t)floorf((float)o * scale);
  return i < in - 1 ? i : in - 1;
}

/* Bilinear's source coordinate of output o (area_pixel_compute_source_index):
   align_corners maps the corners' centres onto each other; otherwise pixel
   centres, clamped at 0. The scale is (in - 1) / (out - 1) or in / out
   (1 / scale_factor when given). */
NN_HD static inline double nn_linear_source(int64_t o, double scale, int align_corners) {
  if (align_corners) return scale * (double)o;
  double s = scale * ((double)o + 0.5) - 0.5;
  return s < 0 ? 0 : s;
}

#endif

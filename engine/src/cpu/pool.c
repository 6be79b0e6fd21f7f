/* cpu/pool.c: pooling, upsampling and batch normalisation, forward and
 * backward: one pass per plane (pooling, upsampling) or per channel
 * (batch normalisation), the planes or channels split over the pool
 * (cpu/parallel.c) when there is enough work. Windows and source positions:
 * math/pool.h; the order of operations follows PyTorch 1.13's CPU
 * kernels (sums in double, gradients added in the tensor's dtype). */
#include "cpu/cpu.h"
#include "math/elementwise.h"
#include "math/pool.h"

#include "cpu/vector.h"

#include <math.h>
#include <string.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif
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

/* The lesson's 2 x 2 window at stride 2, every window inside the plane,
   float32: the same taps in the same order as max_planes (a window's first
   tap always wins against its -inf start, so it starts there), without the
   window arithmetic and the widening per tap. Which tap wins is random on
   real data: as branches (what GCC makes of the scalar selects) a third
   of them mispredict, so four windows at a time go through SSE2 masks. */
static inline void max_window_2x2(const float *r0, const float *r1, int64_t ow, float *value, int *tap) {
  float best = r0[2 * ow], v[3] = {r0[2 * ow + 1], r1[2 * ow], r1[2 * ow + 1]};
  int at = 0;
  for (int k = 0; k < 3; k++) {
    int wins = (v[k] > best) | (v[k] != v[k]);
    best = wins ? v[k] : best, at = wins ? k + 1 : at;
  }
  *value = best, *tap = at;
}

static void max_2x2_f32(const nn_pool2d_args *a, int64_t first, int64_t last) {
  int64_t iw_n = a->in_w, plane = a->in_h * iw_n, ow_n = a->out_w, oplane = a->out_h * ow_n;
#if defined(__SSE2__)
  /* indices fit 32-bit lanes in a plane under 2^30 elements */
  int narrow = plane + a->index_base < ((int64_t)1 << 30);
  /* the winner's offset from its window's first element (indices), or
     its tap (taps) */
  const __m128i tap_offset[4] = {_mm_setzero_si128(), _mm_set1_epi32(1),
                                 _mm_set1_epi32(a->taps ? 2 : (int32_t)iw_n),
                                 _mm_set1_epi32(a->taps ? 3 : (int32_t)iw_n + 1)};
#endif
  for (int64_t p = first; p < last; p++) {
    const float *x = (const float *)a->x + p * plane;
    float *out = (float *)a->out + p * oplane;
    int64_t *indices = a->indices ? a->indices + p * oplane : NULL;
    uint8_t *taps_out = a->taps ? a->taps + p * oplane : NULL;
    for (int64_t oh = 0; oh < a->out_h; oh++) {
      int64_t top = 2 * oh * iw_n;
      const float *r0 = x + top, *r1 = r0 + iw_n;
      int taps[4];
      int64_t ow = 0;
#if defined(__SSE2__)
      /* a row's last four windows overlap the group before (rows of 7 or
         14 windows): those recomputed write what they wrote. As many
         instructions as the scalar tail, without its branches (callgrind
         --branch-sim, the lesson CNN's two pools forward and backward:
         728k mispredicted -> 82k) */
      for (; ow_n >= 4 && ow < ow_n; ow += 4) {
        if (ow + 4 > ow_n) ow = ow_n - 4;
        __m128 a0 = _mm_loadu_ps(r0 + 2 * ow), a1 = _mm_loadu_ps(r0 + 2 * ow + 4);
        __m128 b0 = _mm_loadu_ps(r1 + 2 * ow), b1 = _mm_loadu_ps(r1 + 2 * ow + 4);
        __m128 v[4] = {_mm_shuffle_ps(a0, a1, _MM_SHUFFLE(2, 0, 2, 0)), _mm_shuffle_ps(a0, a1, _MM_SHUFFLE(3, 1, 3, 1)),
                       _mm_shuffle_ps(b0, b1, _MM_SHUFFLE(2, 0, 2, 0)), _mm_shuffle_ps(b0, b1, _MM_SHUFFLE(3, 1, 3, 1))};
        __m128 best = v[0];
        __m128i at = _mm_setzero_si128();
        for (int k = 1; k < 4; k++) {
          __m128 wins = _mm_or_ps(_mm_cmpgt_ps(v[k], best), _mm_cmpunord_ps(v[k], v[k]));
          __m128i w = _mm_castps_si128(wins);
          best = _mm_or_ps(_mm_and_ps(wins, v[k]), _mm_andnot_ps(wins, best));
          at = _mm_or_si128(_mm_and_si128(w, tap_offset[k]), _mm_andnot_si128(w, at));
        }
        _mm_storeu_ps(out + oh * ow_n + ow, best);
        if (taps_out) { /* four taps (0 to 3) narrowed to four bytes */
          __m128i bytes = _mm_packus_epi16(_mm_packs_epi32(at, at), _mm_setzero_si128());
          int32_t four = _mm_cvtsi128_si32(bytes);
          memcpy(taps_out + oh * ow_n + ow, &four, sizeof four);
        }
        if (!indices) continue;
        if (narrow) { /* the four indices in 32-bit lanes, widened (they are not negative) as stored */
          __m128i first = _mm_add_epi32(_mm_set1_epi32((int32_t)(top + 2 * ow + a->index_base)), _mm_set_epi32(6, 4, 2, 0));
          __m128i index = _mm_add_epi32(first, at), zero = _mm_setzero_si128();
          _mm_storeu_si128((__m128i *)(indices + oh * ow_n + ow), _mm_unpacklo_epi32(index, zero));
          _mm_storeu_si128((__m128i *)(indices + oh * ow_n + ow + 2), _mm_unpackhi_epi32(index, zero));
          continue;
        }
        _mm_storeu_si128((__m128i *)taps, at);
        for (int l = 0; l < 4; l++) indices[oh * ow_n + ow + l] = top + 2 * (ow + l) + taps[l] + a->index_base;
      }
#endif
      for (; ow < ow_n; ow++) {
        max_window_2x2(r0, r1, ow, out + oh * ow_n + ow, taps);
        if (taps_out) taps_out[oh * ow_n + ow] = (uint8_t)taps[0];
        if (indices) indices[oh * ow_n + ow] = top + 2 * ow + (taps[0] >> 1) * iw_n + (taps[0] & 1) + a->index_base;
      }
    }
  }
}

static int is_max_2x2(const nn_pool2d_args *a) {
  return a->kind == NN_POOL_MAX && a->dtype == NN_FLOAT32 &&
         nn_pool_tiles_2x2(a->kernel, a->stride, a->padding, a->dilation, a->in_h, a->in_w, a->out_h, a->out_w);
}

/* The indices of taps (x NULL: a recorded backward of a pool that kept
   taps, whose gradient is g scattered at indices) */
static void indices_of_taps(const void *args, int64_t first, int64_t last) {
  const nn_pool2d_args *a = args;
  int64_t iw_n = a->in_w, ow_n = a->out_w, oplane = a->out_h * ow_n;
  for (int64_t p = first; p < last; p++)
    for (int64_t oh = 0; oh < a->out_h; oh++)
      for (int64_t ow = 0; ow < ow_n; ow++) {
        int64_t o = p * oplane + oh * ow_n + ow, tap = a->taps[o];
        a->indices[o] = 2 * oh * iw_n + 2 * ow + (tap >> 1) * iw_n + (tap & 1) + a->index_base;
      }
}


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
    const int64_t *at = a->indices + p * oplane, base = a->index_base;
    if (dt == NN_FLOAT32) {
      const float *g = (const float *)a->g + p * oplane;
      for (int64_t o = 0; o < oplane; o++) ((float *)gx)[at[o] - base] += g[o];
    } else {
      const double *g = (const double *)a->g + p * oplane;
      for (int64_t o = 0; o < oplane; o++) ((double *)gx)[at[o] - base] += g[o];
    }
  }
}

/* The gradient of max_2x2_f32: its windows tile the plane without
   overlapping, so each window's four elements are written at once (g where
   its maximum came from, else 0) and the rows and columns no window covers
   are zeroed: every element written once, instead of a memset of the plane
   and then an add at each index. 0 + g is the general path's sum (a -0
   gradient becomes +0 there too). The indices are forward's, each inside
   its own window. */
static void max_2x2_backward_f32(const nn_pool2d_args *a, int64_t first, int64_t last) {
  int64_t iw_n = a->in_w, plane = a->in_h * iw_n, ow_n = a->out_w, oplane = a->out_h * ow_n;
  /* each window's winner as an offset from its first element (indices:
     0, 1, iw, iw + 1) or as its tap (taps: 0 to 3) */
  int64_t lower = a->taps ? 2 : iw_n;
#if defined(__SSE2__)
  int narrow = a->taps || plane + a->index_base < ((int64_t)1 << 30);
#endif
  for (int64_t p = first; p < last; p++) {
    float *gx = (float *)a->gx + p * plane;
    const float *g = (const float *)a->g + p * oplane;
    const int64_t *at = a->taps ? NULL : a->indices + p * oplane;
    const uint8_t *taps = a->taps ? a->taps + p * oplane : NULL;
    for (int64_t oh = 0; oh < a->out_h; oh++) {
      float *r0 = gx + 2 * oh * iw_n, *r1 = r0 + iw_n;
      int64_t top = 2 * oh * iw_n + a->index_base, ow = 0;
#if defined(__SSE2__)
      /* four windows at a time: each tap's mask picks 0 + g or 0, and the
         masks interleave into the two rows (the indices' low halves are
         the indices: narrow, as in max_2x2_f32) */
      for (; narrow && ow_n >= 4 && ow < ow_n; ow += 4) {
        if (ow + 4 > ow_n) ow = ow_n - 4; /* overlapping the group before, as in max_2x2_f32 */
        __m128i tap;
        if (taps) { /* four bytes widened to four lanes */
          int32_t four;
          memcpy(&four, taps + oh * ow_n + ow, sizeof four);
          __m128i zero = _mm_setzero_si128();
          tap = _mm_unpacklo_epi16(_mm_unpacklo_epi8(_mm_cvtsi32_si128(four), zero), zero);
        } else {
          const int64_t *i4 = at + oh * ow_n + ow;
          __m128i lo = _mm_loadu_si128((const __m128i *)i4), hi = _mm_loadu_si128((const __m128i *)(i4 + 2));
          __m128i index = _mm_castps_si128(_mm_shuffle_ps(_mm_castsi128_ps(lo), _mm_castsi128_ps(hi), _MM_SHUFFLE(2, 0, 2, 0)));
          __m128i first = _mm_add_epi32(_mm_set1_epi32((int32_t)(top + 2 * ow)), _mm_set_epi32(6, 4, 2, 0));
          tap = _mm_sub_epi32(index, first);
        }
        __m128 v = _mm_add_ps(_mm_setzero_ps(), _mm_loadu_ps(g + oh * ow_n + ow));
        __m128 e0 = _mm_and_ps(_mm_castsi128_ps(_mm_cmpeq_epi32(tap, _mm_setzero_si128())), v);
        __m128 e1 = _mm_and_ps(_mm_castsi128_ps(_mm_cmpeq_epi32(tap, _mm_set1_epi32(1))), v);
        __m128 e2 = _mm_and_ps(_mm_castsi128_ps(_mm_cmpeq_epi32(tap, _mm_set1_epi32((int32_t)lower))), v);
        __m128 e3 = _mm_and_ps(_mm_castsi128_ps(_mm_cmpeq_epi32(tap, _mm_set1_epi32((int32_t)lower + 1))), v);
        _mm_storeu_ps(r0 + 2 * ow, _mm_unpacklo_ps(e0, e1)), _mm_storeu_ps(r0 + 2 * ow + 4, _mm_unpackhi_ps(e0, e1));
        _mm_storeu_ps(r1 + 2 * ow, _mm_unpacklo_ps(e2, e3)), _mm_storeu_ps(r1 + 2 * ow + 4, _mm_unpackhi_ps(e2, e3));
      }
#endif
      for (; ow < ow_n; ow++) {
        int64_t tap = taps ? taps[oh * ow_n + ow] : at[oh * ow_n + ow] - top - 2 * ow;
        float v = 0.0f + g[oh * ow_n + ow];
        r0[2 * ow] = tap == 0 ? v : 0, r0[2 * ow + 1] = tap == 1 ? v : 0;
        r1[2 * ow] = tap == lower ? v : 0, r1[2 * ow + 1] = tap == lower + 1 ? v : 0;
      }
      for (int64_t iw = 2 * ow_n; iw < iw_n; iw++) r0[iw] = r1[iw] = 0;
    }
    memset(gx + 2 * a->out_h * iw_n, 0, (size_t)(plane - 2 * a->out_h * iw_n) * sizeof *gx);
  }
}

static void pool_range(const void *args, int64_t first, int64_t last) {
  const nn_pool2d_args *a = args;
  int is_max = a->kind == NN_POOL_MAX || a->kind == NN_POOL_ADAPTIVE_MAX;
  if (is_max_2x2(a)) {
    max_2x2_f32(a, first, last);
  } else if (a->dtype == NN_FLOAT32) {
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
  if (is_max_2x2(a)) {
    max_2x2_backward_f32(a, first, last);
  } else if (a->dtype == NN_FLOAT32) {
    if (is_max) max_backward_planes(NN_FLOAT32, a, first, last);
    else avg_planes(NN_FLOAT32, a, first, last, 1);
  } else {
    if (is_max) max_backward_planes(NN_FLOAT64, a, first, last);
    else avg_planes(NN_FLOAT64, a, first, last, 1);
  }
}

int nn_cpu_pool2d(const nn_pool2d_args *a) {
  if (a->taps && !a->x) {
    split(a->planes, a->out_h * a->out_w, indices_of_taps, a);
    return 0;
  }
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
/* Eight running sums a lane (cpu/vector.h's moments: the variant's
   widest registers, eight chains of additions instead of one), in double
   as PyTorch sums, combined at the end as a tree. Float32 only (the
   float64 kernels keep their one chain). */
typedef struct {
  double a[8], b[8];
} lane_sums;
enum { RELU_BLOCK = 1024 }; /* a multiple of eight */

static inline double lanes_total(const double *v) {
  return ((v[0] + v[1]) + (v[2] + v[3])) + ((v[4] + v[5]) + (v[6] + v[7]));
}

/* y = x alpha + beta over a run, as PyTorch's batch_norm_cpu_contiguous_impl,
   then relu's select where relu (the same bits as relu after it). */
NN_CPU_CLONES static void scale_shift_f32(int64_t n, const float *restrict x, float *restrict y, float alpha,
                                          float beta, int relu) {
  if (relu) for (int64_t i = 0; i < n; i++) y[i] = nn_relu_select_f32(x[i] * alpha + beta);
  else for (int64_t i = 0; i < n; i++) y[i] = x[i] * alpha + beta;
}

/* gx = (g - mean(g) - (x - mean) k) scale over a run */
NN_CPU_CLONES static void normalised_grad_f32(int64_t n, const float *restrict g, const float *restrict x,
                                              float *restrict gx, float mean, float k, float grad_mean, float scale) {
  for (int64_t i = 0; i < n; i++) gx[i] = (g[i] - grad_mean - (x[i] - mean) * k) * scale;
}

/* relu's gradient behind the fused forward: g where relu's result was not
   0, that result's test redone from x with the forward's alpha and beta
   (the same float operations, never contracted: -ffp-contract=off), so
   that backward reads neither relu's result nor a masked copy of g: y <= 0
   exactly where relu(y) <= 0 (a NaN y passes g, as relu's backward). */
static inline float relu_masked(float g, float x, float alpha, float beta) {
  return x * alpha + beta <= 0 ? 0.0f : g;
}

NN_CPU_CLONES static void relu_masked_f32(int64_t n, const float *restrict g, const float *restrict x,
                                          float *restrict masked, float alpha, float beta) {
  for (int64_t i = 0; i < n; i++) masked[i] = relu_masked(g[i], x[i], alpha, beta);
}

/* normalised_grad_f32 of relu's gradient, masked on the way */
NN_CPU_CLONES static void normalised_relu_grad_f32(int64_t n, const float *restrict g, const float *restrict x,
                                                   float *restrict gx, float alpha, float beta, float mean,
                                                   float k, float grad_mean, float scale) {
  for (int64_t i = 0; i < n; i++)
    gx[i] = (relu_masked(g[i], x[i], alpha, beta) - grad_mean - (x[i] - mean) * k) * scale;
}

/* A channel's run of the next sample (n floats), asked into L2 while
   this sample's run is summed: runs of a few kilobytes a whole sample
   apart (the lesson's first layer: 3 KB every 100 KB) each start a stream
   the hardware prefetcher has to find again. */
static inline void prefetch_run(const float *run, int64_t n) {
  for (int64_t i = 0; i < n; i += 16) __builtin_prefetch(run + i, 0, 2);
}

/* One channel's statistics in one pass: sums of x - k and (x - k)^2 in
   double, k the channel's first element (a shift that keeps the
   difference of squares exact enough whatever the mean). */
static inline void channel_moments(nn_dtype dt, const nn_batch_norm_args *a, int64_t c,
                                   double *mean, double *var) {
  int64_t n = a->outer * a->inner, cstride = a->channels * a->inner;
  double k = get(dt, a->x, c * a->inner), s1 = 0, s2 = 0;
  if (dt == NN_FLOAT32) {
    lane_sums s = {{0}, {0}};
    const nn_cpu_vector *v = nn_cpu_vector_best();
    for (int64_t b = 0; b < a->outer; b++) {
      const float *x = (const float *)a->x + b * cstride + c * a->inner;
      if (b + 1 < a->outer) prefetch_run(x + cstride, a->inner);
      v->moments(s.a, s.b, x, k, x, k, a->inner);
    }
    s1 = lanes_total(s.a), s2 = lanes_total(s.b);
  } else {
    for (int64_t b = 0; b < a->outer; b++) {
      int64_t base = b * cstride + c * a->inner;
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
    if (a->relu) a->stats[2 * a->channels + c] = (float)alpha, a->stats[3 * a->channels + c] = (float)beta;
    for (int64_t b = 0; b < a->outer; b++) {
      int64_t base = b * cstride + c * a->inner;
      if (dt == NN_FLOAT32) {
        scale_shift_f32(a->inner, (const float *)a->x + base, (float *)a->out + base, (float)alpha, (float)beta,
                        a->relu);
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
    float relu_alpha = a->relu ? (float)a->stats[2 * a->channels + c] : 1;
    float relu_beta = a->relu ? (float)a->stats[3 * a->channels + c] : 0;
    double sum = 0, dot = 0;
    if (dt == NN_FLOAT32) {
      lane_sums s = {{0}, {0}};
      const nn_cpu_vector *v = nn_cpu_vector_best();
      for (int64_t b = 0; b < a->outer; b++) {
        int64_t base = b * cstride + c * a->inner;
        const float *g = (const float *)a->g + base, *x = (const float *)a->x + base;
        if (b + 1 < a->outer) prefetch_run(g + cstride, a->inner), prefetch_run(x + cstride, a->inner);
        if (!a->relu) {
          v->moments(s.a, s.b, g, 0, x, mean, a->inner);
          continue;
        }
        /* relu's gradient a block at a time, in cache (blocks of whole
           groups of eight put each element in the lane one run would),
           its mask from x (relu_masked): the pass reads g and x, and the
           second pass reads them again, a channel's two (the lesson's
           first layer: 2 x 401 KB) still in L2; before, relu's result
           was read too and the masked gradient written out and back */
        float block[RELU_BLOCK];
        for (int64_t i = 0; i < a->inner; i += RELU_BLOCK) {
          int64_t len = a->inner - i < RELU_BLOCK ? a->inner - i : RELU_BLOCK;
          relu_masked_f32(len, g + i, x + i, block, relu_alpha, relu_beta);
          v->moments(s.a, s.b, block, 0, x + i, mean, len);
        }
      }
      sum = lanes_total(s.a), dot = lanes_total(s.b);
    } else {
      for (int64_t b = 0; b < a->outer; b++) {
        int64_t base = b * cstride + c * a->inner;
        const double *g = (const double *)a->g + base, *x = (const double *)a->x + base;
        for (int64_t i = 0; i < a->inner; i++) sum += g[i], dot += g[i] * (x[i] - mean);
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
      if (dt == NN_FLOAT32 && a->relu) {
        normalised_relu_grad_f32(a->inner, (const float *)a->g + base, (const float *)a->x + base,
                                 (float *)a->gx + base, relu_alpha, relu_beta, (float)mean, (float)k,
                                 (float)grad_mean, (float)scale);
      } else if (dt == NN_FLOAT32) {
        normalised_grad_f32(a->inner, (const float *)a->g + base, (const float *)a->x + base,
                            (float *)a->gx + base, (float)mean, (float)k, (float)grad_mean, (float)scale);
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

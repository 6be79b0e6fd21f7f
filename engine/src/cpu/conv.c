/* cpu/conv.c: convolution's patches. im2col lays every kernel tap of an
 * image out as a row of columns (one column per output position), so that
 * a convolution becomes one GEMM of the weights by those rows; col2im
 * adds such rows back onto the image (the input's gradient, a transposed
 * convolution, fold). One output row of a tap reads image elements
 * stride_w apart: the part inside the image is found once per tap, the
 * padding around it is zeros, and a stride of one is a plain copy. */
#include "cpu/cpu.h"

#include <string.h>

/* The output positions ox in [*lo, *hi) whose image column
   ox stride - pad + tap lies inside 0 .. width-1. */
static void inside(int64_t out, int64_t width, int64_t stride, int64_t pad, int64_t tap, int64_t *lo,
                   int64_t *hi) {
  int64_t first = pad - tap; /* ox stride >= first */
  int64_t a = first <= 0 ? 0 : (first + stride - 1) / stride;
  int64_t last = width - 1 + pad - tap; /* ox stride <= last */
  int64_t b = last < 0 ? 0 : last / stride + 1;
  if (b > out) b = out;
  if (a > b) a = b;
  *lo = a, *hi = b;
}

/* What happens to one output row of one tap: row is the columns' row, src
   the image element of output column lo (NULL when the row lies outside
   the image: above or below it, or no column of it inside); the image
   elements of columns lo .. hi-1 follow stride_w apart. */
typedef void (*row_fn)(const nn_patch_geom *g, char *src, char *row, int64_t lo, int64_t hi,
                       int in_image);

static void each_row(const nn_patch_geom *g, char *image, char *cols, row_fn fn) {
  size_t es = nn_element_size(g->dtype);
  int64_t kernel = g->kernel_h * g->kernel_w, plane = g->height * g->width;
  for (int64_t n = 0; n < g->batch; n++)
    for (int64_t c = 0; c < g->channels; c++)
      for (int64_t tap = 0; tap < kernel; tap++) {
        int64_t ty = tap / g->kernel_w * g->dilation_h, tx = tap % g->kernel_w * g->dilation_w;
        char *img = image + (size_t)(n * g->image_sample_stride + c * plane) * es;
        char *row = cols + (size_t)(n * g->col_sample_stride + (c * kernel + tap) * g->col_row_stride) * es;
        int64_t lo, hi;
        inside(g->out_w, g->width, g->stride_w, g->pad_w, tx, &lo, &hi);
        for (int64_t oy = 0; oy < g->out_h; oy++, row += (size_t)g->out_w * es) {
          int64_t iy = oy * g->stride_h - g->pad_h + ty;
          int in_image = iy >= 0 && iy < g->height && lo < hi;
          char *src = in_image ? img + (size_t)(iy * g->width + lo * g->stride_w + tx - g->pad_w) * es : NULL;
          fn(g, src, row, lo, hi, in_image);
        }
      }
}

static void gather_f32(const nn_patch_geom *g, char *src_bytes, char *row_bytes, int64_t lo, int64_t hi,
                       int in_image) {
  float *row = (float *)row_bytes;
  if (!in_image) {
    memset(row, 0, (size_t)g->out_w * sizeof *row);
    return;
  }
  const float *src = (const float *)src_bytes;
  for (int64_t ox = 0; ox < lo; ox++) row[ox] = 0;
  if (g->stride_w == 1) memcpy(row + lo, src, (size_t)(hi - lo) * sizeof *row);
  else for (int64_t ox = lo; ox < hi; ox++) row[ox] = src[(ox - lo) * g->stride_w];
  for (int64_t ox = hi; ox < g->out_w; ox++) row[ox] = 0;
}

static void gather_f64(const nn_patch_geom *g, char *src_bytes, char *row_bytes, int64_t lo, int64_t hi,
                       int in_image) {
  double *row = (double *)row_bytes;
  if (!in_image) {
    memset(row, 0, (size_t)g->out_w * sizeof *row);
    return;
  }
  const double *src = (const double *)src_bytes;
  for (int64_t ox = 0; ox < lo; ox++) row[ox] = 0;
  if (g->stride_w == 1) memcpy(row + lo, src, (size_t)(hi - lo) * sizeof *row);
  else for (int64_t ox = lo; ox < hi; ox++) row[ox] = src[(ox - lo) * g->stride_w];
  for (int64_t ox = hi; ox < g->out_w; ox++) row[ox] = 0;
}

static void scatter_f32(const nn_patch_geom *g, char *src_bytes, char *row_bytes, int64_t lo, int64_t hi,
                        int in_image) {
  if (!in_image) return;
  float *dst = (float *)src_bytes;
  const float *row = (const float *)row_bytes;
  int64_t s = g->stride_w;
  for (int64_t ox = lo; ox < hi; ox++) dst[(ox - lo) * s] += row[ox];
}

static void scatter_f64(const nn_patch_geom *g, char *src_bytes, char *row_bytes, int64_t lo, int64_t hi,
                        int in_image) {
  if (!in_image) return;
  double *dst = (double *)src_bytes;
  const double *row = (const double *)row_bytes;
  int64_t s = g->stride_w;
  for (int64_t ox = lo; ox < hi; ox++) dst[(ox - lo) * s] += row[ox];
}

int nn_cpu_im2col(const nn_patch_geom *g, const void *image, void *cols) {
  each_row(g, (char *)image, cols, g->dtype == NN_FLOAT32 ? gather_f32 : gather_f64);
  return 0;
}

int nn_cpu_col2im(const nn_patch_geom *g, const void *cols, void *image) {
  each_row(g, image, (char *)cols, g->dtype == NN_FLOAT32 ? scatter_f32 : scatter_f64);
  return 0;
}

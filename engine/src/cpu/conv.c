/* cpu/conv.c: convolution's patches. im2col lays every kernel tap of an
 * image out as a row of columns (one column per output position), so that
 * a convolution becomes one GEMM of the weights by those rows; col2im
 * adds such rows back onto the image (the input's gradient, a transposed
 * convolution, fold). One output row of a tap reads image elements
 * stride_w apart: the part inside the image is found once per tap, the
 * padding around it is zeros, and a stride of one is a plain copy. The
 * planes (sample, channel) are split over the pool (cpu/parallel.c). */
#include "cpu/cpu.h"
#include "cpu/vector.h"

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

/* One image plane (sample n, channel c) and its kernel's rows of
   columns: gathered into the rows (im2col) or added back onto the plane
   (col2im). Called with dt and scatter constants, so that each of the four
   loops is compiled on its own with the row's copy inlined. A plane's rows
   are written by it alone (im2col) and a plane is added to by its rows
   alone (col2im), in the same order whatever the split over threads. */
static inline void plane_rows(nn_dtype dt, int scatter, const nn_patch_geom *g, char *image, char *cols,
                              int64_t n, int64_t c) {
  size_t es = dt == NN_FLOAT32 ? sizeof(float) : sizeof(double);
  int64_t kernel = g->kernel_h * g->kernel_w, out_w = g->out_w, s = g->stride_w;
  char *img = image + (size_t)(n * g->image_sample_stride + c * g->height * g->width) * es;
  for (int64_t tap = 0; tap < kernel; tap++) {
    int64_t ty = tap / g->kernel_w * g->dilation_h, tx = tap % g->kernel_w * g->dilation_w;
    char *row = cols + (size_t)(n * g->col_sample_stride + (c * kernel + tap) * g->col_row_stride) * es;
    int64_t lo, hi;
    inside(out_w, g->width, s, g->pad_w, tx, &lo, &hi);
    for (int64_t oy = 0; oy < g->out_h; oy++, row += (size_t)out_w * es) {
      int64_t iy = oy * g->stride_h - g->pad_h + ty;
      int in_image = iy >= 0 && iy < g->height && lo < hi;
      if (!in_image) {
        if (!scatter) memset(row, 0, (size_t)out_w * es);
        continue;
      }
      char *at = img + (size_t)(iy * g->width + lo * s + tx - g->pad_w) * es;
      if (dt == NN_FLOAT32) {
        float *r = (float *)row, *x = (float *)at;
        if (scatter) {
          if (s == 1) for (int64_t ox = lo; ox < hi; ox++) x[ox - lo] += r[ox];
          else for (int64_t ox = lo; ox < hi; ox++) x[(ox - lo) * s] += r[ox];
        } else {
          for (int64_t ox = 0; ox < lo; ox++) r[ox] = 0;
          /* a short run (14 or 28 floats): glibc's copy takes fewer instructions than a vectorised loop's edges */
          if (s == 1) memcpy(r + lo, x, (size_t)(hi - lo) * sizeof *r);
          else for (int64_t ox = lo; ox < hi; ox++) r[ox] = x[(ox - lo) * s];
          for (int64_t ox = hi; ox < out_w; ox++) r[ox] = 0;
        }
      } else {
        double *r = (double *)row, *x = (double *)at;
        if (scatter) {
          for (int64_t ox = lo; ox < hi; ox++) x[(ox - lo) * s] += r[ox];
        } else {
          for (int64_t ox = 0; ox < lo; ox++) r[ox] = 0;
          for (int64_t ox = lo; ox < hi; ox++) r[ox] = x[(ox - lo) * s];
          for (int64_t ox = hi; ox < out_w; ox++) r[ox] = 0;
        }
      }
    }
  }
}

/* A "same" convolution's patches (stride 1, each output row as wide as
   the image's): a tap's rows of columns are the plane's rows shifted by
   (dy, dx), so the rows inside the image are one copy of the plane from
   the shifted start, after which the dx columns that wrapped round from
   the next or previous row are set to zero, as the padding. A copy per
   tap instead of one per output row (a 14-float row cost more in the
   call and its edges than in the copy). The same values as plane_rows. */
static int is_same_geometry(const nn_patch_geom *g) {
  return g->stride_h == 1 && g->stride_w == 1 && g->out_w == g->width && g->out_w > 0 && g->out_h > 0;
}

static void same_plane_rows(const nn_patch_geom *g, const char *image, char *cols, int64_t n, int64_t c) {
  size_t es = g->dtype == NN_FLOAT32 ? sizeof(float) : sizeof(double);
  int64_t kernel = g->kernel_h * g->kernel_w, w = g->width, plane = g->height * w;
  const char *img = image + (size_t)(n * g->image_sample_stride + c * plane) * es;
  for (int64_t tap = 0; tap < kernel; tap++) {
    int64_t dy = tap / g->kernel_w * g->dilation_h - g->pad_h, dx = tap % g->kernel_w * g->dilation_w - g->pad_w;
    char *row = cols + (size_t)(n * g->col_sample_stride + (c * kernel + tap) * g->col_row_stride) * es;
    /* output rows oy whose image row oy + dy lies inside: [first, last) */
    int64_t first = dy < 0 ? -dy : 0, last = g->height - dy < g->out_h ? g->height - dy : g->out_h;
    if (first > g->out_h) first = g->out_h;
    if (last < first || dx <= -w || dx >= w) last = first = g->out_h; /* all padding */
    memset(row, 0, (size_t)(first * w) * es);
    memset(row + (size_t)(last * w) * es, 0, (size_t)((g->out_h - last) * w) * es);
    if (first == last) continue;
    /* elements [from, to) of the rows first..last-1 read inside the plane */
    int64_t from = first * w + (dx < 0 ? -dx : 0), to = last * w - (dx > 0 ? dx : 0);
    memcpy(row + (size_t)from * es, img + (size_t)(from + dy * w + dx) * es, (size_t)(to - from) * es);
    /* the wrapped columns: the first -dx or last dx of each row */
    int64_t zero_at = dx < 0 ? 0 : w - dx, zeros = dx < 0 ? -dx : dx;
    /* one or two elements a row: strided stores down the rows, not a call
       to memset per row (which a loop along the row would become) */
    for (int64_t i = zero_at; i < zero_at + zeros; i++) {
      if (g->dtype == NN_FLOAT32) for (int64_t oy = first; oy < last; oy++) ((float *)row)[oy * w + i] = 0;
      else for (int64_t oy = first; oy < last; oy++) ((double *)row)[oy * w + i] = 0;
    }
  }
}

/* col2im of a "same" convolution: each tap's rows inside the image are
   added back as one run from the shifted start, as same_plane_rows copies
   them. The run also adds the wrapped columns (padding, whose gradient is
   dropped) onto the image's other edge, so those image elements are saved
   before and written back after, or, where the columns are a convolution's
   scratch (cols_scratch), those columns are made -0 first, which adds
   nothing (x + -0 is x, signed zeros included): the same additions in the
   same order as plane_rows, bit for bit; column by column down the rows, so that the
   compiler does not make a memcpy call of each row's one or two elements.
   NN_SAME_WRAP_MAX bounds the saved elements per
   tap; a geometry that needs more goes through plane_rows. */
enum { NN_SAME_WRAP_MAX = 512 };

static int same_scatter_fits(const nn_patch_geom *g) {
  int64_t widest = 0;
  for (int64_t tx = 0; tx < g->kernel_w; tx++) {
    int64_t dx = tx * g->dilation_w - g->pad_w, zeros = dx < 0 ? -dx : dx;
    if (zeros > widest) widest = zeros;
  }
  return widest < g->width && widest * g->out_h <= NN_SAME_WRAP_MAX;
}

/* x[0..n) += r[0..n): float32 through the vector loops (cpu/vector.h: the
   same additions, several a vector instruction; GCC's own loop here, with
   its alias checks and scalar edges, took three instructions an add). */
static inline void add_run(nn_dtype dt, const nn_cpu_vector *v, char *x, const char *r, int64_t n) {
  if (dt == NN_FLOAT32) v->add(n, (const float *)x, (const float *)r, (float *)x);
  else for (int64_t i = 0; i < n; i++) ((double *)x)[i] += ((const double *)r)[i];
}

static inline void same_plane_scatter(nn_dtype dt, const nn_cpu_vector *v, const nn_patch_geom *g, char *image,
                                      const char *cols, int64_t n, int64_t c) {
  int64_t kernel = g->kernel_h * g->kernel_w, w = g->width, plane = g->height * w;
  size_t es = dt == NN_FLOAT32 ? sizeof(float) : sizeof(double);
  char *img = image + (size_t)(n * g->image_sample_stride + c * plane) * es;
  for (int64_t tap = 0; tap < kernel; tap++) {
    int64_t dy = tap / g->kernel_w * g->dilation_h - g->pad_h, dx = tap % g->kernel_w * g->dilation_w - g->pad_w;
    const char *row = cols + (size_t)(n * g->col_sample_stride + (c * kernel + tap) * g->col_row_stride) * es;
    int64_t first = dy < 0 ? -dy : 0, last = g->height - dy < g->out_h ? g->height - dy : g->out_h;
    if (first >= last || dx <= -w || dx >= w) continue; /* all padding */
    int64_t from = first * w + (dx < 0 ? -dx : 0), to = last * w - (dx > 0 ? dx : 0), shift = dy * w + dx;
    /* the wrapped columns between from and to land on image elements
       [oy w + zero_at + shift, + zeros) for oy in [wrap_first, wrap_last) */
    int64_t zero_at = dx < 0 ? 0 : w - dx, zeros = dx < 0 ? -dx : dx;
    int64_t wrap_first = dx < 0 ? first + 1 : first, wrap_last = dx < 0 ? last : last - 1;
    char saved[NN_SAME_WRAP_MAX * sizeof(double)], *x = img + (size_t)shift * es, *at = saved;
    size_t down = (size_t)w * es;
    int64_t rows = wrap_last - wrap_first;
    if (g->cols_scratch) {
      /* the wrapped columns become -0, which added leaves every value as
         it was (+0 and -0 too): half the moves of a save and restore */
      char *r = (char *)row + (size_t)(wrap_first * w) * es;
      for (int64_t i = zero_at; i < zero_at + zeros; i++) {
        char *e = r + (size_t)i * es;
        for (int64_t k = 0; k < rows; k++, e += down) {
          if (dt == NN_FLOAT32) *(float *)e = -0.0f;
          else *(double *)e = -0.0;
        }
      }
      add_run(dt, v, x + (size_t)from * es, row + (size_t)from * es, to - from);
      continue;
    }
    /* elements moved as bytes (es a constant here: one load or store
       each), down each wrapped column by a pointer a row at a time */
    for (int64_t i = zero_at; i < zero_at + zeros; i++) {
      const char *e = x + (size_t)(wrap_first * w + i) * es;
      for (int64_t r = 0; r < rows; r++, e += down, at += es) memcpy(at, e, es);
    }
    add_run(dt, v, x + (size_t)from * es, row + (size_t)from * es, to - from);
    at = saved;
    for (int64_t i = zero_at; i < zero_at + zeros; i++) {
      char *e = x + (size_t)(wrap_first * w + i) * es;
      for (int64_t r = 0; r < rows; r++, e += down, at += es) memcpy(e, at, es);
    }
  }
}

typedef struct {
  const nn_patch_geom *g;
  char *image, *cols;
  int scatter;
} patch_job;

/* planes first .. last-1 of the batch's n x channels */
static void planes_range(const void *job, int64_t first, int64_t last) {
  const patch_job *j = job;
  int64_t channels = j->g->channels;
  if (!j->scatter && is_same_geometry(j->g)) {
    for (int64_t p = first; p < last; p++) same_plane_rows(j->g, j->image, j->cols, p / channels, p % channels);
    return;
  }
  if (j->scatter && is_same_geometry(j->g) && same_scatter_fits(j->g)) {
    const nn_cpu_vector *v = nn_cpu_vector_best();
    for (int64_t p = first; p < last; p++) {
      if (j->g->dtype == NN_FLOAT32) same_plane_scatter(NN_FLOAT32, v, j->g, j->image, j->cols, p / channels, p % channels);
      else same_plane_scatter(NN_FLOAT64, v, j->g, j->image, j->cols, p / channels, p % channels);
    }
    return;
  }
  for (int64_t p = first; p < last; p++) {
    if (j->g->dtype == NN_FLOAT32) {
      if (j->scatter) plane_rows(NN_FLOAT32, 1, j->g, j->image, j->cols, p / channels, p % channels);
      else plane_rows(NN_FLOAT32, 0, j->g, j->image, j->cols, p / channels, p % channels);
    } else {
      if (j->scatter) plane_rows(NN_FLOAT64, 1, j->g, j->image, j->cols, p / channels, p % channels);
      else plane_rows(NN_FLOAT64, 0, j->g, j->image, j->cols, p / channels, p % channels);
    }
  }
}

static void each_plane(const nn_patch_geom *g, char *image, char *cols, int scatter) {
  patch_job job = {g, image, cols, scatter};
  nn_parallel_for(g->batch * g->channels, g->kernel_h * g->kernel_w * g->out_h * g->out_w, 1, planes_range, &job);
}

int nn_cpu_im2col(const nn_patch_geom *g, const void *image, void *cols) {
  each_plane(g, (char *)image, cols, 0);
  return 0;
}

int nn_cpu_col2im(const nn_patch_geom *g, const void *cols, void *image) {
  each_plane(g, image, (char *)cols, 1);
  return 0;
}

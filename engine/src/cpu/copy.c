/* cpu/copy.c: copies with dtype conversion, fills, the ramps of arange and
 * linspace, adding into a gradient, and the data loader's row gather. */
#include "cpu/cpu.h"
#include "cpu/vector.h"
#include "math/fill.h"

struct copy_ctx { nn_dtype dst, src; };

#if defined(__GNUC__)
#define COPY_INLINE inline __attribute__((always_inline))
#else
#define COPY_INLINE inline
#endif

/* d[i sd] = s[i ss], elements of es bytes: a copy within one dtype moves
   bytes (every dtype of a size takes the same loop); a reversed run
   (flip) has a loop of its own, which vectorises */
static COPY_INLINE void copy_bytes(size_t es, int64_t n, char *d, int64_t sd, const char *s,
                                   int64_t ss) {
  if (sd == 1 && ss == -1) {
    for (int64_t i = 0; i < n; i++) memcpy(d + i * es, s - i * (int64_t)es, es);
  } else if (sd == 1 && ss == 0) {
    for (int64_t i = 0; i < n; i++) memcpy(d + i * es, s, es);
  } else {
    for (int64_t i = 0; i < n; i++) memcpy(d + i * sd * (int64_t)es, s + i * ss * (int64_t)es, es);
  }
}

static void copy_same(size_t es, int64_t n, char *d, int64_t sd, const char *s, int64_t ss) {
  if (sd == 1 && ss == 1) {
    memmove(d, s, (size_t)n * es);
    return;
  }
  switch (es) {
  case 1: copy_bytes(1, n, d, sd, s, ss); break;
  case 2: copy_bytes(2, n, d, sd, s, ss); break;
  case 4: copy_bytes(4, n, d, sd, s, ss); break;
  default: copy_bytes(8, n, d, sd, s, ss); break;
  }
}

static void copy_inner(void *ctx, int64_t n, char **data, const int64_t *stride) {
  const struct copy_ctx *c = ctx;
  if (c->dst == c->src && c->dst != NN_BOOL) {
    copy_same(nn_element_size(c->dst), n, data[0], stride[0], data[1], stride[1]);
  } else if (c->dst == NN_FLOAT32 && c->src == NN_FLOAT32) {
    float *d = (float *)data[0];
    const float *s = (const float *)data[1];
    for (int64_t i = 0; i < n; i++) d[i * stride[0]] = s[i * stride[1]];
  } else if (c->dst == NN_FLOAT64 && c->src == NN_FLOAT64) {
    double *d = (double *)data[0];
    const double *s = (const double *)data[1];
    for (int64_t i = 0; i < n; i++) d[i * stride[0]] = s[i * stride[1]];
  } else if (c->dst == NN_INT64 && c->src == NN_INT64) {
    int64_t *d = (int64_t *)data[0];
    const int64_t *s = (const int64_t *)data[1];
    for (int64_t i = 0; i < n; i++) d[i * stride[0]] = s[i * stride[1]];
  } else {
    for (int64_t i = 0; i < n; i++) nn_convert(c->dst, data[0], i * stride[0], c->src, data[1], i * stride[1]);
  }
}

int nn_cpu_copy(const nn_iter *it) {
  struct copy_ctx c = {it->dtype[0], it->dtype[1]};
  nn_iter_run_parallel(it, copy_inner, &c, 1);
  return 0;
}

struct fill_ctx { nn_dtype dtype; double v; };

static void fill_inner(void *ctx, int64_t n, char **data, const int64_t *stride) {
  const struct fill_ctx *c = ctx;
  if (c->dtype == NN_FLOAT32 && stride[0] == 1) {
    /* the processor's widest stores (the baseline's loop writes 16 bytes at a time) */
    nn_cpu_vector_best()->fill(n, (float)c->v, (float *)data[0]);
  } else if (c->dtype == NN_FLOAT32) {
    float *d = (float *)data[0], v = (float)c->v;
    for (int64_t i = 0; i < n; i++) d[i * stride[0]] = v;
  } else {
    for (int64_t i = 0; i < n; i++) nn_store(c->dtype, data[0], i * stride[0], c->v);
  }
}

/* zero_grad's fill: elements [first, last) of a contiguous run, cleared */
struct clear_ctx { char *data; size_t esize; };
static void clear_elements(const void *vctx, int64_t first, int64_t last) {
  const struct clear_ctx *c = vctx;
  memset(c->data + (size_t)first * c->esize, 0, (size_t)(last - first) * c->esize);
}

int nn_cpu_fill(const nn_iter *it, double value) {
  if (nn_cpu_fill_clears(it, value)) {
    /* one run of all-zero bits, in every dtype */
    struct clear_ctx c = {it->data[0], nn_element_size(it->dtype[0])};
    if (nn_parallel_pass_pieces(it->size[0]) < 2) memset(c.data, 0, (size_t)it->size[0] * c.esize);
    else nn_parallel_for(it->size[0], 1, NN_PARALLEL_ALIGN, clear_elements, &c);
    return 0;
  }
  struct fill_ctx c = {it->dtype[0], value};
  nn_iter_run_parallel(it, fill_inner, &c, 1);
  return 0;
}

int nn_cpu_ramp(nn_dtype dtype, void *data, int64_t n, int64_t half, double start, double step,
                double end) {
  for (int64_t i = 0; i < n; i++) nn_store(dtype, data, i, nn_ramp_value(i, n, half, start, step, end));
  return 0;
}

static void add_into_inner(void *ctx, int64_t n, char **data, const int64_t *st) {
  const nn_dtype *dtype = ctx;
  if (dtype[0] == NN_FLOAT32 && dtype[1] == NN_FLOAT32) {
    float *r = (float *)data[0];
    const float *g = (const float *)data[1];
    for (int64_t i = 0; i < n; i++) r[i * st[0]] += g[i * st[1]];
  } else if (dtype[0] == NN_FLOAT64 && dtype[1] == NN_FLOAT64) {
    double *r = (double *)data[0];
    const double *g = (const double *)data[1];
    for (int64_t i = 0; i < n; i++) r[i * st[0]] += g[i * st[1]];
  } else {
    for (int64_t i = 0; i < n; i++)
      nn_store(dtype[0], data[0], i * st[0],
               nn_load(dtype[0], data[0], i * st[0]) + nn_load(dtype[1], data[1], i * st[1]));
  }
}

int nn_cpu_add_into(const nn_iter *it) {
  nn_iter_run_parallel(it, add_into_inner, (void *)it->dtype, 1);
  return 0;
}

/* A linear layer's bias gradient (the batch's rows summed into dst, in
   order), on the calling thread at any thread count; float32 through the
   vector loop that a captured plan's replay calls too (cpu/vector.h's
   add_rows, cpu/prepare.c). Each column's sum is the same additions in the
   same order in every variant. */
int nn_cpu_add_rows(nn_dtype dtype, int64_t rows, int64_t cols, const void *src, void *dst) {
  if (dtype == NN_FLOAT32) {
    nn_cpu_vector_best()->add_rows(rows, cols, src, dst);
  } else if (dtype == NN_FLOAT64) {
    const double *s = src;
    double *d = dst;
    for (int64_t i = 0; i < rows; i++)
      for (int64_t j = 0; j < cols; j++) d[j] += s[i * cols + j];
  } else {
    for (int64_t i = 0; i < rows; i++)
      for (int64_t j = 0; j < cols; j++)
        nn_store(dtype, dst, j, nn_load(dtype, dst, j) + nn_load(dtype, src, i * cols + j));
  }
  return 0;
}

int nn_cpu_gather_rows(void *out, const void *src, const int64_t *rows, int64_t count,
                       size_t row_bytes) {
  char *o = out;
  const char *s = src;
  for (int64_t i = 0; i < count; i++) {
#if defined(__GNUC__)
    /* shuffled rows defeat the hardware prefetcher: ask for the row after
       next while this one is copied (about a fifth faster here) */
    if (i + 2 < count) __builtin_prefetch(s + (size_t)rows[i + 2] * row_bytes);
#endif
    memcpy(o + (size_t)i * row_bytes, s + (size_t)rows[i] * row_bytes, row_bytes);
  }
  return 0;
}

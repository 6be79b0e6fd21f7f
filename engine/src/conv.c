/* conv.c: the fronts of convolution (conv1d/conv2d through one 2-D path,
 * conv_transpose2d) and of the patches themselves (unfold, fold), with
 * their backwards.
 *
 * A convolution is an image side (the input: n x c x h x w) and a column
 * side (the output: n x o x oh x ow) joined by a weight (o, c / groups,
 * kh, kw). Three products cover every direction:
 *   forward_columns   column side = weight x patches(image)        conv's forward,
 *                                                                 conv_transpose's input gradient
 *   backward_columns  image side += col2im(weight^T x column side) conv's input gradient,
 *                                                                 conv_transpose's forward
 *                     weight gradient = column side x patches(image)^T
 * Each runs over chunks of samples: the patches of a chunk lie side by
 * side in each row (backend.h's nn_patch_geom), so a group's product is
 * one long GEMM (which OpenBLAS threads and runs near its peak) instead of
 * one small GEMM per sample; the price is a copy that puts the column
 * side's samples into that order and back. The patches and that copy live
 * in a scratch block per device that grows to the largest chunk and is
 * kept, so a training step allocates nothing for them. A 1x1 kernel with
 * stride 1 and no padding needs no patches: the image is its own columns. */
#include "internal.h"

#include <stddef.h>
#include <stdio.h>

/* ---- geometry ---------------------------------------------------------- */
typedef struct {
  const char *op;
  int64_t n, c, h, w; /* image side */
  int64_t o, oh, ow;  /* column side */
  int64_t kh, kw, sh, sw, ph, pw, dh, dw, groups;
} conv_geom;

static int64_t positions(const conv_geom *g) { return g->oh * g->ow; }

static int is_pointwise(const conv_geom *g) {
  return g->kh == 1 && g->kw == 1 && g->sh == 1 && g->sw == 1 && g->ph == 0 && g->pw == 0 &&
         g->oh == g->h && g->ow == g->w;
}

static nn_patch_geom patches_of(const conv_geom *g, nn_dtype dtype, int64_t batch) {
  nn_patch_geom p;
  p.dtype = dtype;
  p.batch = batch, p.channels = g->c, p.height = g->h, p.width = g->w;
  p.kernel_h = g->kh, p.kernel_w = g->kw, p.stride_h = g->sh, p.stride_w = g->sw;
  p.pad_h = g->ph, p.pad_w = g->pw, p.dilation_h = g->dh, p.dilation_w = g->dw;
  p.out_h = g->oh, p.out_w = g->ow;
  p.image_sample_stride = g->c * g->h * g->w;
  /* samples side by side in each row of a chunk */
  p.col_sample_stride = positions(g);
  p.col_row_stride = batch * positions(g);
  p.cols_scratch = 1; /* the scratch block */
  return p;
}

/* ---- scratch: one block per device, kept -------------------------------- */
static struct {
  void *data;
  size_t bytes;
} scratch[NN_DEVICE_COUNT];

static char *scratch_for(const char *op, const nn_backend *be, nn_device device, size_t bytes) {
  if (scratch[device].bytes >= bytes) return scratch[device].data;
  if (scratch[device].data) be->free(scratch[device].data, scratch[device].bytes);
  scratch[device].data = be->alloc(bytes);
  scratch[device].bytes = scratch[device].data ? bytes : 0;
  if (!scratch[device].data) {
    if (device == NN_CPU) nn_error_set("%s: out of memory (%zu bytes of scratch)", op, bytes);
    return NULL;
  }
  return scratch[device].data;
}

/* Samples per chunk: the patches and the reordered column side of a chunk
   fit in a budget. On a CPU, where the patches are written and read back
   (im2col then the forward's products; the input gradient's product then
   col2im), a core's L2 (1 MB): the lesson CNN's 6.8 MB chunks went out to
   L3 and back four times, OpenBLAS's zeroing of the beta-0 product
   included. A backward for the weight alone reads each chunk's patches
   once: 8 MB, so that its one product stays large enough to be cut over
   threads. A GPU takes large chunks, fewer launches. */
static int64_t chunk_of(const conv_geom *g, nn_dtype dtype, nn_device device, int patches_reread) {
  size_t budget = device != NN_CPU ? (size_t)256 << 20 : patches_reread ? (size_t)1 << 20 : (size_t)8 << 20;
  size_t per_sample = (size_t)((g->c * g->kh * g->kw + g->o) * positions(g)) * nn_element_size(dtype);
  int64_t chunk = per_sample ? (int64_t)(budget / per_sample) : g->n;
  if (chunk < 1) chunk = 1;
  return chunk < g->n ? chunk : g->n;
}

/* ---- the kernels' arguments -------------------------------------------- */
static nn_matrix matrix(char *data, int64_t batch_stride, int64_t row_stride, int64_t col_stride) {
  nn_matrix m = {data, batch_stride, row_stride, col_stride};
  return m;
}

static int gemm(const nn_backend *be, nn_dtype dtype, int64_t batch, int64_t m, int64_t n, int64_t k,
                nn_matrix a, nn_matrix b, double beta, nn_matrix c) {
  nn_gemm_args args = {dtype, batch, m, n, k, 1.0, beta, a, b, c, NULL};
  return be->gemm(&args);
}

/* A 3-D walk (size[0..2]) over two or three operands with the given
   strides (elements) from the given data. */
static nn_iter walk3(nn_dtype dtype, int n, const int64_t *size, char *const *data,
                     const int64_t (*stride)[3]) {
  nn_iter it;
  memset(&it, 0, sizeof it);
  it.n = n, it.ndim = 3;
  for (int d = 0; d < 3; d++) {
    it.size[d] = size[d];
    for (int k = 0; k < n; k++) it.stride[d][k] = stride[k][d];
  }
  for (int k = 0; k < n; k++) it.data[k] = data[k], it.dtype[k] = dtype;
  return it;
}

/* dst (count, rows, cols: dst_strides) = src (src_strides), plus bias[row]
   when bias is not NULL */
static int reorder(const nn_backend *be, nn_dtype dtype, int64_t count, int64_t rows, int64_t cols,
                   char *dst, const int64_t dst_stride[3], char *src, const int64_t src_stride[3],
                   char *bias) {
  int64_t size[3] = {count, rows, cols};
  int64_t strides[3][3] = {{dst_stride[0], dst_stride[1], dst_stride[2]},
                           {src_stride[0], src_stride[1], src_stride[2]},
                           {0, 1, 0}};
  char *data[3] = {dst, src, bias};
  nn_iter it = walk3(dtype, bias ? 3 : 2, size, data, strides);
  return bias ? be->binary(NN_ADD, dtype, &it) : be->copy(&it);
}

/* image (n, c, h, w) or column side (n, o, L) starting as bias[channel]
   everywhere, or zeros */
static int start_as(const nn_backend *be, nn_tensor *t, nn_tensor *bias) {
  int64_t count = t->size[0], channels = t->size[1], plane = nn_numel(t) / (count ? count : 1) / (channels ? channels : 1);
  if (!bias) {
    nn_tensor *tt[1] = {t};
    nn_iter it;
    nn_iter_init(&it, 1, tt, t->ndim, t->size);
    return be->fill(&it, 0);
  }
  int64_t dst[3] = {channels * plane, plane, 1}, src[3] = {0, 1, 0};
  return reorder(be, t->dtype, count, channels, plane, nn_data(t), dst, nn_data(bias), src, NULL);
}

/* ---- the three products ------------------------------------------------ */
/* Patches of at most this many rows a group (a first layer: one or three
   input channels, 3 x 3) take one product per sample, straight from or
   into the column side's own layout (forward_columns,
   weight_grad_by_sample). */
enum { FEW_PATCH_ROWS = 32 };

/* out (n, o, oh, ow) = weight x patches(x), plus bias[o] when bias */
static int forward_columns(const conv_geom *g, nn_tensor *x, nn_tensor *w, nn_tensor *bias, nn_tensor *out) {
  const nn_backend *be = nn_dispatch(g->op, offsetof(nn_backend, im2col), x, w, out);
  if (!be || (bias && nn_check_same_device(g->op, x, bias) < 0)) return -1;
  nn_dtype dt = x->dtype;
  size_t es = nn_element_size(dt);
  int64_t L = positions(g), og = g->o / g->groups, cg = g->c / g->groups, K = cg * g->kh * g->kw;
  char *xd = nn_data(x), *wd = nn_data(w), *od = nn_data(out);
  if (g->n == 0 || g->o == 0 || L == 0) return 0;
  if (is_pointwise(g)) { /* out[s] = w_group x[s]_group, sample by sample in one batched call */
    if (start_as(be, out, bias) < 0) return -1;
    for (int64_t gi = 0; gi < g->groups; gi++)
      if (gemm(be, dt, g->n, og, L, K, matrix(wd + (size_t)(gi * og * K) * es, 0, K, 1),
               matrix(xd + (size_t)(gi * K * L) * es, g->c * L, L, 1), 1,
               matrix(od + (size_t)(gi * og * L) * es, g->o * L, L, 1)) < 0)
        return -1;
    return 0;
  }
  /* One product per chunk of samples, W x the chunk's patches (o, count
     L), into the scratch after the patches, then copied into out's order
     (count, o, L), the bias added as it is copied. OpenBLAS packs W once
     per chunk (per sample before: 128 packings of the second convolution's
     64 x 288 weights a lesson step), and a chunk's product is large enough
     to be cut over the pool's threads (the per-sample products, each under
     the serial size, ran on one thread at any count). Each element is the
     same sum over k as before; the bias is added after it, as OpenBLAS
     added the sum onto a bias start (one rounding either way). */
  int64_t chunk = chunk_of(g, dt, x->device, 1), rows = g->c * g->kh * g->kw;
  char *cols = scratch_for(g->op, be, x->device, (size_t)((rows + g->o) * chunk * L) * es);
  if (!cols) return -1;
  char *product = cols + (size_t)(rows * chunk * L) * es; /* (o, count, L) */
  /* Few patch rows (a first layer, K = 9 or 27): each sample's product
     written in its place, the kernels' rows of W x patches (the same sums
     as the chunk's product: each element's over k alone), without the
     copy (the lesson's first convolution: 12.8 MB out of the scratch a
     step); the bias, where there is one, added onto the chunk's output
     while it is in cache, as the copy added it */
  int by_sample = K <= FEW_PATCH_ROWS && x->device == NN_CPU;
  for (int64_t s = 0; s < g->n; s += chunk) {
    int64_t count = g->n - s < chunk ? g->n - s : chunk, width = count * L;
    nn_patch_geom p = patches_of(g, dt, count);
    if (be->im2col(&p, xd + (size_t)(s * g->c * g->h * g->w) * es, cols) < 0) return -1;
    if (by_sample) {
      char *at = od + (size_t)(s * g->o * L) * es;
      for (int64_t j = 0; j < count; j++)
        for (int64_t gi = 0; gi < g->groups; gi++)
          if (gemm(be, dt, 1, og, L, K, matrix(wd + (size_t)(gi * og * K) * es, 0, K, 1),
                   matrix(cols + (size_t)(gi * K * width + j * L) * es, 0, width, 1), 0,
                   matrix(at + (size_t)(j * g->o * L + gi * og * L) * es, 0, L, 1)) < 0)
            return -1;
      int64_t in_place[3] = {g->o * L, L, 1};
      if (bias && reorder(be, dt, count, g->o, L, at, in_place, at, in_place, nn_data(bias)) < 0) return -1;
      continue;
    }
    for (int64_t gi = 0; gi < g->groups; gi++)
      if (gemm(be, dt, 1, og, width, K, matrix(wd + (size_t)(gi * og * K) * es, 0, K, 1),
               matrix(cols + (size_t)(gi * K * width) * es, 0, width, 1), 0,
               matrix(product + (size_t)(gi * og * width) * es, 0, width, 1)) < 0)
        return -1;
    int64_t dst[3] = {g->o * L, L, 1}, src[3] = {L, width, 1};
    if (reorder(be, dt, count, g->o, L, od + (size_t)(s * g->o * L) * es, dst, product, src,
                bias ? nn_data(bias) : NULL) < 0)
      return -1;
  }
  return 0;
}

/* With the column side's gradient (or conv_transpose's input) gc (n, o,
   oh, ow): image (when not NULL) += col2im(weight^T gc), image holding its
   start (a bias) or, when zero_image, nothing yet: each chunk's samples
   are then zeroed just before col2im adds onto them, in cache, instead of
   the whole image before the walk (the lesson's second convolution: 3.2 MB
   written out and read back); gw (when not NULL; (o, c/groups, kh, kw))
   = gc x patches(x)^T, or += when accumulate. */
static int zero_samples(const nn_backend *be, nn_dtype dtype, char *data, int64_t count) {
  int64_t size[3] = {1, 1, count}, stride[1][3] = {{0, 0, 1}};
  char *operands[1] = {data};
  nn_iter it = walk3(dtype, 1, size, operands, stride);
  return be->fill(&it, 0);
}

/* The weight's gradient alone where each group's patches have few rows (a
   first layer: one or three input channels, K = 9 or 27): one product per
   sample, gc's sample (og, L) as it lies times its patches (L, K), added
   up in order, each a dot per weight over L. The chunk path would copy
   gc into the product's order first (the lesson's first convolution:
   12.8 MB read, written to a scratch beyond L2 and read back a step) for
   a product of K = 9 output columns, where OpenBLAS's packing costs more
   than its arithmetic. The patches of a chunk (im2col, in L2) are each
   read by the chunk's products while in cache. Other sums than the chunk
   product's (last bits); one thread's work whatever the count, so 1 and 2
   threads agree. A GPU keeps the chunks (fewer launches). */
static int weight_grad_by_sample(const conv_geom *g, const nn_backend *be, nn_tensor *gc, nn_tensor *x,
                                 nn_tensor *gw, int accumulate) {
  nn_dtype dt = gc->dtype;
  size_t es = nn_element_size(dt);
  int64_t L = positions(g), og = g->o / g->groups, K = g->c / g->groups * g->kh * g->kw, rows = g->c * g->kh * g->kw;
  int64_t chunk = chunk_of(g, dt, gc->device, 1);
  char *gd = nn_data(gc), *xd = nn_data(x), *gwd = nn_data(gw);
  char *cols = scratch_for(g->op, be, gc->device, (size_t)(rows * chunk * L) * es);
  if (!cols) return -1;
  for (int64_t s = 0; s < g->n; s += chunk) {
    int64_t count = g->n - s < chunk ? g->n - s : chunk, width = count * L;
    nn_patch_geom p = patches_of(g, dt, count);
    if (be->im2col(&p, xd + (size_t)(s * g->c * g->h * g->w) * es, cols) < 0) return -1;
    for (int64_t j = 0; j < count; j++)
      for (int64_t gi = 0; gi < g->groups; gi++)
        if (gemm(be, dt, 1, og, K, L, matrix(gd + (size_t)((s + j) * g->o * L + gi * og * L) * es, 0, L, 1),
                 matrix(cols + (size_t)(gi * K * width + j * L) * es, 0, 1, width), s + j || accumulate ? 1 : 0,
                 matrix(gwd + (size_t)(gi * og * K) * es, 0, K, 1)) < 0)
          return -1;
  }
  return 0;
}

static int backward_columns(const conv_geom *g, nn_tensor *gc, nn_tensor *x, nn_tensor *w,
                            nn_tensor *image, nn_tensor *gw, int accumulate, int zero_image) {
  const nn_backend *be = nn_dispatch(g->op, offsetof(nn_backend, col2im), gc, w, image ? image : x);
  if (!be || (gw && nn_check_same_device(g->op, gc, gw) < 0) ||
      (gw && nn_check_same_device(g->op, gc, x) < 0))
    return -1;
  nn_dtype dt = gc->dtype;
  size_t es = nn_element_size(dt);
  int64_t L = positions(g), og = g->o / g->groups, cg = g->c / g->groups, K = cg * g->kh * g->kw;
  char *gd = nn_data(gc), *wd = nn_data(w), *xd = gw ? nn_data(x) : NULL;
  char *id = image ? nn_data(image) : NULL, *gwd = gw ? nn_data(gw) : NULL;
  if (gw && !accumulate && (g->n == 0 || L == 0)) { /* an empty sum */
    nn_tensor *tt[1] = {gw};
    nn_iter it;
    nn_iter_init(&it, 1, tt, gw->ndim, gw->size);
    if (be->fill(&it, 0) < 0) return -1;
  }
  if (image && zero_image && (g->n == 0 || L == 0 || is_pointwise(g)) && start_as(be, image, NULL) < 0) return -1;
  if (g->n == 0 || L == 0) return 0;
  if (is_pointwise(g)) {
    for (int64_t gi = 0; gi < g->groups; gi++) {
      nn_matrix wt = matrix(wd + (size_t)(gi * og * K) * es, 0, 1, K); /* (K, og) */
      if (image && gemm(be, dt, g->n, K, L, og, wt, matrix(gd + (size_t)(gi * og * L) * es, g->o * L, L, 1), 1,
                        matrix(id + (size_t)(gi * K * L) * es, g->c * L, L, 1)) < 0)
        return -1;
      /* the weight's gradient sums over samples: one product each, added up in order */
      for (int64_t s = 0; gw && s < g->n; s++)
        if (gemm(be, dt, 1, og, K, L, matrix(gd + (size_t)(s * g->o * L + gi * og * L) * es, 0, L, 1),
                 matrix(xd + (size_t)(s * g->c * L + gi * K * L) * es, 0, 1, L), s || accumulate ? 1 : 0,
                 matrix(gwd + (size_t)(gi * og * K) * es, 0, K, 1)) < 0)
          return -1;
    }
    return 0;
  }
  if (!image && K <= FEW_PATCH_ROWS && gc->device == NN_CPU) return weight_grad_by_sample(g, be, gc, x, gw, accumulate);
  int64_t chunk = chunk_of(g, dt, gc->device, image != NULL), rows = g->c * g->kh * g->kw;
  char *cols = scratch_for(g->op, be, gc->device, (size_t)((rows + g->o) * chunk * L) * es);
  if (!cols) return -1;
  char *gp = cols + (size_t)(rows * chunk * L) * es; /* gc's chunk as (o, count, L) */
  for (int64_t s = 0; s < g->n; s += chunk) {
    int64_t count = g->n - s < chunk ? g->n - s : chunk, width = count * L;
    int64_t dst[3] = {L, width, 1}, src[3] = {g->o * L, L, 1};
    if (reorder(be, dt, count, g->o, L, gp, dst, gd + (size_t)(s * g->o * L) * es, src, NULL) < 0) return -1;
    nn_patch_geom p = patches_of(g, dt, count);
    if (gw) {
      if (be->im2col(&p, xd + (size_t)(s * g->c * g->h * g->w) * es, cols) < 0) return -1;
      for (int64_t gi = 0; gi < g->groups; gi++)
        if (gemm(be, dt, 1, og, K, width, matrix(gp + (size_t)(gi * og * width) * es, 0, width, 1),
                 matrix(cols + (size_t)(gi * K * width) * es, 0, 1, width), s || accumulate ? 1 : 0,
                 matrix(gwd + (size_t)(gi * og * K) * es, 0, K, 1)) < 0)
          return -1;
    }
    if (image) {
      for (int64_t gi = 0; gi < g->groups; gi++)
        if (gemm(be, dt, 1, K, width, og, matrix(wd + (size_t)(gi * og * K) * es, 0, 1, K),
                 matrix(gp + (size_t)(gi * og * width) * es, 0, width, 1), 0,
                 matrix(cols + (size_t)(gi * K * width) * es, 0, width, 1)) < 0)
          return -1;
      char *at = id + (size_t)(s * g->c * g->h * g->w) * es;
      if (zero_image && zero_samples(be, dt, at, count * g->c * g->h * g->w) < 0) return -1;
      if (be->col2im(&p, cols, at) < 0) return -1;
    }
  }
  return 0;
}

/* ---- checks -------------------------------------------------------------- */
static int check_floating(const char *op, nn_tensor *x, nn_tensor *w, nn_tensor *b) {
  if (!nn_dtype_is_floating(x->dtype) || w->dtype != x->dtype || (b && b->dtype != x->dtype)) {
    nn_error_set("%s: input and weight%s must both be float32 or both float64, got %s and %s", op,
                 b ? " (and bias)" : "", nn_dtype_name(x->dtype),
                 nn_dtype_name(w->dtype != x->dtype || !b ? w->dtype : b->dtype));
    return -1;
  }
  return 0;
}

static int check_positive(const char *op, const char *what, const int64_t *v, int64_t least) {
  if (v[0] < least || v[1] < least) {
    nn_error_set("%s: %s must be %s, got (%lld, %lld)", op, what,
                 least ? "positive" : "non-negative", (long long)v[0], (long long)v[1]);
    return -1;
  }
  return 0;
}

static int check_options(const nn_conv_options *o) {
  if (check_positive(o->op, "stride", o->stride, 1) < 0 ||
      check_positive(o->op, "dilation", o->dilation, 1) < 0 ||
      check_positive(o->op, "padding", o->padding, 0) < 0 ||
      check_positive(o->op, "padding", o->padding_end, 0) < 0 ||
      check_positive(o->op, "output_padding", o->output_padding, 0) < 0)
    return -1;
  if (o->groups < 1) {
    nn_error_set("%s: groups must be positive, got %lld", o->op, (long long)o->groups);
    return -1;
  }
  return 0;
}

static int check_ranks(const char *op, nn_tensor *x, nn_tensor *w, nn_tensor *b) {
  if (x->ndim != 4 || w->ndim != 4) {
    nn_error_set("%s: expected a 4-D input and a 4-D weight, got %d-D and %d-D", op, x->ndim, w->ndim);
    return -1;
  }
  if (b && b->ndim != 1) {
    nn_error_set("%s: the bias must be 1-D, got %d-D", op, b->ndim);
    return -1;
  }
  return 0;
}

/* ---- conv2d -------------------------------------------------------------- */
static void save_geometry(nn_node *node, const conv_geom *g, int transposed) {
  int64_t v[8] = {g->sh, g->sw, g->ph, g->pw, g->dh, g->dw, g->groups, transposed};
  for (int i = 0; i < 8; i++) node->ints[i] = v[i];
}

/* The geometry of conv(image, w) whose column side is (n, o, oh, ow). */
static conv_geom geometry(const char *op, const nn_tensor *image, const nn_tensor *w, int64_t o, int64_t oh,
                          int64_t ow, const int64_t *ints) {
  conv_geom g = {op, image->size[0], image->size[1], image->size[2], image->size[3], o, oh, ow,
                 w->size[2], w->size[3], ints[0], ints[1], ints[2], ints[3], ints[4], ints[5], ints[6]};
  return g;
}

int nn_conv_backward(nn_tensor *g, nn_tensor *x, nn_tensor *w, const int64_t *ints, const int *need,
                     nn_tensor *const *into, nn_tensor **grads) {
  grads[0] = grads[1] = grads[2] = NULL;
  int transposed = (int)ints[7];
  const char *op = transposed ? "conv_transpose2d backward" : "conv2d backward";
  nn_tensor *gc = nn_contiguous(g);
  if (!gc) return -1;
  /* conv: image x, columns g; conv_transpose: image g, columns x */
  nn_tensor *image = transposed ? gc : x, *columns = transposed ? x : gc;
  conv_geom geo = geometry(op, image, w, w->size[0], columns->size[2], columns->size[3], ints);
  /* conv's two gradients come from one walk over the chunks (backward_columns
     reorders each chunk of g once for both products) */
  nn_tensor *dw = NULL, *dx = NULL;
  if (need[1] && !(dw = into[1] ? into[1] : (grads[1] = nn_empty_like(w)))) goto fail;
  if (need[0]) {
    if (transposed) {
      if (!(grads[0] = nn_empty_like(x)) || forward_columns(&geo, gc, w, NULL, grads[0]) < 0) goto fail;
    } else {
      if (!(grads[0] = nn_empty_like(x))) goto fail;
      dx = grads[0]; /* zeroed chunk by chunk in backward_columns */
    }
  }
  if ((dx || dw) && backward_columns(&geo, columns, image, w, dx, dw, into[1] != NULL, 1) < 0) goto fail;
  if (dw && into[1]) nn_bump_version(into[1]);
  if (need[2] && !(grads[2] = nn_sum_dims(gc, 1u | 4u | 8u, 0, 0))) goto fail;
  nn_release(gc);
  return 0;
fail:
  nn_release(gc);
  for (int k = 0; k < 3; k++) nn_release(grads[k]), grads[k] = NULL;
  return -1;
}

/* ---- higher orders: the three products as ops of their own ---------------
   While a backward pass records itself, conv's gradients are the products
   themselves, each recorded as a node. Each product is bilinear and the
   gradient of one is made of the other two (<h, C(i, w)> = <Dx(h, w), i> =
   <Dw(i, h), w>, with C the column side, Dx the image side, Dw the weight
   side), so the same three cover every order. */
enum { PART_COLUMNS, PART_IMAGE, PART_WEIGHT };

static nn_tensor *conv_part(const conv_geom *g, int part, nn_tensor *a, nn_tensor *b);

static int conv_part_backward(nn_node *node, nn_tensor *h, nn_tensor **gi) {
  const conv_geom *g = node->ctx;
  /* use the graph's aliases where they need a gradient: the recorded
     gradients must reach them */
  nn_tensor *a = node->inputs[0] ? node->inputs[0] : node->saved[0];
  nn_tensor *b = node->inputs[1] ? node->inputs[1] : node->saved[1];
  switch ((int)node->ints[0]) {
  case PART_COLUMNS: /* columns = C(image a, weight b) */
    if (node->inputs[0] && !(gi[0] = conv_part(g, PART_IMAGE, h, b))) return -1;
    if (node->inputs[1] && !(gi[1] = conv_part(g, PART_WEIGHT, a, h))) return -1;
    return 0;
  case PART_IMAGE: /* image = Dx(columns a, weight b) */
    if (node->inputs[0] && !(gi[0] = conv_part(g, PART_COLUMNS, h, b))) return -1;
    if (node->inputs[1] && !(gi[1] = conv_part(g, PART_WEIGHT, h, a))) return -1;
    return 0;
  default: /* weight = Dw(image a, columns b) */
    if (node->inputs[0] && !(gi[0] = conv_part(g, PART_IMAGE, b, h))) return -1;
    if (node->inputs[1] && !(gi[1] = conv_part(g, PART_COLUMNS, a, h))) return -1;
    return 0;
  }
}

static nn_tensor *conv_part(const conv_geom *g, int part, nn_tensor *a, nn_tensor *b) {
  int64_t size[3][4] = {{g->n, g->o, g->oh, g->ow}, {g->n, g->c, g->h, g->w},
                        {g->o, g->c / g->groups, g->kh, g->kw}};
  nn_grad_guard guard = nn_no_grad_begin();
  nn_tensor *ac = nn_contiguous(a), *bc = ac ? nn_contiguous(b) : NULL;
  nn_no_grad_end(guard);
  nn_tensor *out = bc ? nn_empty_like_shape(a, a->dtype, 4, size[part]) : NULL;
  const nn_backend *be = out ? nn_dispatch(g->op, offsetof(nn_backend, fill), a, b, NULL) : NULL;
  int status = !be ? -1
               : part == PART_COLUMNS ? forward_columns(g, ac, bc, NULL, out)
               : part == PART_IMAGE   ? backward_columns(g, ac, NULL, bc, out, NULL, 0, 1)
                                      : backward_columns(g, bc, ac, out, NULL, out, 0, 0);
  nn_release(ac), nn_release(bc);
  if (status < 0) {
    nn_release(out);
    return NULL;
  }
  if (!nn_needs_grad(a, b, NULL)) return out;
  conv_geom *kept = malloc(sizeof *kept);
  nn_node *node = kept ? nn_node_attach(out, part == PART_COLUMNS ? "ConvolutionBackward0" : "ConvolutionBackwardBackward0",
                                        conv_part_backward, 2, a, b, NULL)
                       : NULL;
  if (!node) {
    if (!kept) nn_error_set("%s: out of memory", g->op);
    free(kept);
    nn_release(out);
    return NULL;
  }
  *kept = *g;
  node->ctx = kept;
  node->free_ctx = free;
  node->ints[0] = part;
  nn_node_save(node, 0, a);
  nn_node_save(node, 1, b);
  return out;
}

/* conv's gradients as recorded products (conv_transpose: the image side is
   its output, the column side its input) */
static int conv_backward_recorded(nn_node *node, nn_tensor *g, nn_tensor **gi) {
  nn_tensor *x = node->inputs[0] ? node->inputs[0] : node->saved[0];
  nn_tensor *w = node->inputs[1] ? node->inputs[1] : node->saved[1];
  int transposed = (int)node->ints[7];
  nn_tensor *image = transposed ? g : x, *columns = transposed ? x : g;
  conv_geom geo = geometry(transposed ? "conv_transpose2d backward" : "conv2d backward", image, w,
                           w->size[0], columns->size[2], columns->size[3], node->ints);
  if (node->inputs[0] && !(gi[0] = transposed ? conv_part(&geo, PART_COLUMNS, g, w)
                                              : conv_part(&geo, PART_IMAGE, g, w)))
    return -1;
  if (node->inputs[1] && !(gi[1] = conv_part(&geo, PART_WEIGHT, image, columns))) return -1;
  if (node->inputs[2] && !(gi[2] = nn_sum_dims(g, 1u | 4u | 8u, 0, 0))) return -1;
  return 0;
}

static int conv_node_backward(nn_node *node, nn_tensor *g, nn_tensor **gi) {
  if (nn_recording_backward()) return conv_backward_recorded(node, g, gi);
  int need[3] = {node->inputs[0] != NULL, node->inputs[1] != NULL, node->inputs[2] != NULL};
  return nn_conv_backward(g, node->saved[0], node->saved[1], node->ints, need, node->accumulate_into, gi);
}

/* x and w contiguous (copies made outside the graph), the node recorded
   on the originals. */
static nn_tensor *record(nn_tensor *out, const conv_geom *g, int transposed, nn_tensor *x, nn_tensor *w,
                         nn_tensor *b, nn_tensor *xc, nn_tensor *wc) {
  if (!nn_needs_grad(x, w, b)) return out;
  nn_node *node = nn_node_attach(out, "ConvolutionBackward0", conv_node_backward, 3, x, w, b);
  if (!node) {
    nn_release(out);
    return NULL;
  }
  nn_node_save(node, 0, xc);
  nn_node_save(node, 1, wc);
  save_geometry(node, g, transposed);
  return out;
}

static int contiguous_pair(nn_tensor *x, nn_tensor *w, nn_tensor *b, nn_tensor **xc, nn_tensor **wc,
                           nn_tensor **bc) {
  nn_grad_guard guard = nn_no_grad_begin();
  *xc = nn_contiguous(x);
  *wc = *xc ? nn_contiguous(w) : NULL;
  *bc = b && *wc ? nn_contiguous(b) : NULL;
  nn_no_grad_end(guard);
  return *xc && *wc && (!b || *bc) ? 0 : -1;
}

static int check_spatial(const char *op, const int64_t *padded, const int64_t *span) {
  if (span[0] > padded[0] || span[1] > padded[1]) {
    nn_error_set("%s: the kernel (%lld x %lld with dilation) is larger than the padded input (%lld x %lld)", op,
                 (long long)span[0], (long long)span[1], (long long)padded[0], (long long)padded[1]);
    return -1;
  }
  return 0;
}

nn_tensor *nn_conv2d(nn_tensor *x, nn_tensor *w, nn_tensor *b, const nn_conv_options *o) {
  const char *op = o->op;
  if (check_options(o) < 0 || check_ranks(op, x, w, b) < 0 || check_floating(op, x, w, b) < 0) return NULL;
  int64_t groups = o->groups, out_channels = w->size[0];
  if (out_channels % groups) {
    nn_error_set("%s: groups (%lld) must divide the weight's %lld output channels", op, (long long)groups,
                 (long long)out_channels);
    return NULL;
  }
  if (x->size[1] != w->size[1] * groups) {
    nn_error_set("%s: input has %lld channels, layer expects %lld", op, (long long)x->size[1],
                 (long long)(w->size[1] * groups));
    return NULL;
  }
  if (b && b->size[0] != out_channels) {
    nn_error_set("%s: the bias has %lld elements, the layer has %lld output channels", op,
                 (long long)b->size[0], (long long)out_channels);
    return NULL;
  }
  if (w->size[2] < 1 || w->size[3] < 1) {
    nn_error_set("%s: the kernel must not be empty", op);
    return NULL;
  }
  int64_t padded[2], span[2], size[4];
  for (int d = 0; d < 2; d++) {
    padded[d] = x->size[2 + d] + o->padding[d] + o->padding_end[d];
    span[d] = o->dilation[d] * (w->size[2 + d] - 1) + 1;
  }
  if (check_spatial(op, padded, span) < 0) return NULL;
  size[0] = x->size[0], size[1] = out_channels;
  for (int d = 0; d < 2; d++) size[2 + d] = (padded[d] - span[d]) / o->stride[d] + 1;
  int64_t ints[7] = {o->stride[0], o->stride[1], o->padding[0], o->padding[1], o->dilation[0], o->dilation[1], groups};
  conv_geom g = geometry(op, x, w, out_channels, size[2], size[3], ints);
  nn_tensor *xc, *wc, *bc, *out = NULL;
  if (contiguous_pair(x, w, b, &xc, &wc, &bc) == 0 && (out = nn_empty_like_shape(x, x->dtype, 4, size)) &&
      forward_columns(&g, xc, wc, bc, out) == 0) {
    out = record(out, &g, 0, x, w, b, xc, wc);
  } else {
    nn_release(out);
    out = NULL;
  }
  nn_release(xc), nn_release(wc), nn_release(bc);
  return out;
}

/* ---- conv_transpose2d: the gradient of conv2d with respect to its input -- */
nn_tensor *nn_conv_transpose2d(nn_tensor *x, nn_tensor *w, nn_tensor *b, const nn_conv_options *o) {
  const char *op = o->op;
  if (check_options(o) < 0 || check_ranks(op, x, w, b) < 0 || check_floating(op, x, w, b) < 0) return NULL;
  int64_t groups = o->groups, out_channels = w->size[1] * groups;
  if (w->size[0] % groups) {
    nn_error_set("%s: groups (%lld) must divide the weight's %lld input channels", op, (long long)groups,
                 (long long)w->size[0]);
    return NULL;
  }
  if (x->size[1] != w->size[0]) {
    nn_error_set("%s: input has %lld channels, layer expects %lld", op, (long long)x->size[1],
                 (long long)w->size[0]);
    return NULL;
  }
  if (b && b->size[0] != out_channels) {
    nn_error_set("%s: the bias has %lld elements, the layer has %lld output channels", op,
                 (long long)b->size[0], (long long)out_channels);
    return NULL;
  }
  int64_t size[4] = {x->size[0], out_channels, 0, 0};
  for (int d = 0; d < 2; d++) {
    if (o->output_padding[d] >= o->stride[d] && o->output_padding[d] >= o->dilation[d]) {
      nn_error_set("%s: output_padding (%lld) must be smaller than either stride (%lld) or dilation (%lld)", op,
                   (long long)o->output_padding[d], (long long)o->stride[d], (long long)o->dilation[d]);
      return NULL;
    }
    size[2 + d] = (x->size[2 + d] - 1) * o->stride[d] - 2 * o->padding[d] +
                  o->dilation[d] * (w->size[2 + d] - 1) + o->output_padding[d] + 1;
    if (size[2 + d] < 1) {
      nn_error_set("%s: the output would be %lld x %lld, which is empty", op, (long long)size[2],
                   (long long)(d ? size[3] : 0));
      return NULL;
    }
  }
  /* the image side is the output: (n, out_channels, H, W); the column side the input */
  conv_geom g = {op, size[0], out_channels, size[2], size[3], w->size[0], x->size[2], x->size[3],
                 w->size[2], w->size[3], o->stride[0], o->stride[1], o->padding[0], o->padding[1],
                 o->dilation[0], o->dilation[1], groups};
  nn_tensor *xc, *wc, *bc, *out = NULL;
  const nn_backend *be = nn_dispatch(op, offsetof(nn_backend, fill), x, NULL, NULL);
  if (be && contiguous_pair(x, w, b, &xc, &wc, &bc) == 0) {
    if ((out = nn_empty_like_shape(x, x->dtype, 4, size)) && (!bc || start_as(be, out, bc) == 0) &&
        backward_columns(&g, xc, NULL, wc, out, NULL, 0, !bc) == 0) {
      out = record(out, &g, 1, x, w, b, xc, wc);
    } else {
      nn_release(out);
      out = NULL;
    }
  } else {
    xc = wc = bc = NULL;
  }
  nn_release(xc), nn_release(wc), nn_release(bc);
  return out;
}

/* ---- unfold and fold: the patches as a tensor -------------------------- */
static nn_tensor *fold_or_unfold(nn_tensor *x, const nn_patch_options *p, int fold);

static int patches_backward(nn_node *node, nn_tensor *g, nn_tensor **gi) {
  nn_patch_options p;
  for (int d = 0; d < 2; d++) {
    p.kernel[d] = node->ints[d], p.dilation[d] = node->ints[2 + d];
    p.padding[d] = node->ints[4 + d], p.stride[d] = node->ints[6 + d];
    p.output_size[d] = node->size[2 + d]; /* fold's output, unfold's input */
  }
  gi[0] = fold_or_unfold(g, &p, node->ndim == 3); /* unfold's gradient folds, and back */
  return gi[0] ? 0 : -1;
}

static nn_tensor *fold_or_unfold(nn_tensor *x, const nn_patch_options *p, int fold) {
  const char *op = fold ? "fold" : "unfold";
  if (check_positive(op, "kernel_size", p->kernel, 1) < 0 || check_positive(op, "dilation", p->dilation, 1) < 0 ||
      check_positive(op, "padding", p->padding, 0) < 0 || check_positive(op, "stride", p->stride, 1) < 0 ||
      (fold && check_positive(op, "output_size", p->output_size, 1) < 0))
    return NULL;
  if (!nn_dtype_is_floating(x->dtype)) {
    nn_error_set("%s: expected a float32 or float64 input, got %s", op, nn_dtype_name(x->dtype));
    return NULL;
  }
  if (x->ndim != (fold ? 3 : 4)) {
    nn_error_set("%s: expected a %d-D (batched) input, got %d-D", op, fold ? 3 : 4, x->ndim);
    return NULL;
  }
  int64_t kk = p->kernel[0] * p->kernel[1], image[2], out[2];
  for (int d = 0; d < 2; d++) {
    image[d] = fold ? p->output_size[d] : x->size[2 + d];
    int64_t padded = image[d] + 2 * p->padding[d], span = p->dilation[d] * (p->kernel[d] - 1) + 1;
    out[d] = padded < span ? 0 : (padded - span) / p->stride[d] + 1;
  }
  int64_t channels = fold ? x->size[1] / kk : x->size[1];
  if (out[0] < 1 || out[1] < 1) {
    nn_error_set("%s: the kernel (%lld x %lld with dilation) is larger than the padded input (%lld x %lld)", op,
                 (long long)(p->dilation[0] * (p->kernel[0] - 1) + 1), (long long)(p->dilation[1] * (p->kernel[1] - 1) + 1),
                 (long long)(image[0] + 2 * p->padding[0]), (long long)(image[1] + 2 * p->padding[1]));
    return NULL;
  }
  if (fold && x->size[1] % kk) {
    nn_error_set("fold: the input's %lld rows are not a multiple of the kernel's %lld elements",
                 (long long)x->size[1], (long long)kk);
    return NULL;
  }
  if (fold && x->size[2] != out[0] * out[1]) {
    nn_error_set("fold: the input has %lld blocks, the output size and kernel give %lld (%lld x %lld)",
                 (long long)x->size[2], (long long)(out[0] * out[1]), (long long)out[0], (long long)out[1]);
    return NULL;
  }
  const nn_backend *be = nn_dispatch(op, offsetof(nn_backend, im2col), x, NULL, NULL);
  if (!be) return NULL;
  int64_t n = x->size[0];
  int64_t isize[4] = {n, channels, image[0], image[1]}, csize[3] = {n, channels * kk, out[0] * out[1]};
  nn_grad_guard guard = nn_no_grad_begin();
  nn_tensor *xc = nn_contiguous(x);
  nn_no_grad_end(guard);
  nn_tensor *y = xc ? nn_empty_like_shape(x, x->dtype, fold ? 4 : 3, fold ? isize : csize) : NULL;
  if (!y) {
    nn_release(xc);
    return NULL;
  }
  nn_patch_geom pg = {x->dtype, n, channels, image[0], image[1], p->kernel[0], p->kernel[1],
                      p->stride[0], p->stride[1], p->padding[0], p->padding[1], p->dilation[0], p->dilation[1],
                      out[0], out[1], channels * image[0] * image[1], channels * kk * out[0] * out[1],
                      out[0] * out[1], 0};
  int st = 0;
  if (fold) st = start_as(be, y, NULL) < 0 || be->col2im(&pg, nn_data(xc), nn_data(y)) < 0 ? -1 : 0;
  else if (nn_numel(y)) st = be->im2col(&pg, nn_data(xc), nn_data(y));
  nn_release(xc);
  if (st < 0) {
    nn_release(y);
    return NULL;
  }
  if (nn_needs_grad(x, NULL, NULL)) {
    nn_node *node = nn_node_attach(y, fold ? "Col2ImBackward0" : "Im2ColBackward0", patches_backward, 1, x,
                                   NULL, NULL);
    if (!node) {
      nn_release(y);
      return NULL;
    }
    for (int d = 0; d < 2; d++) {
      node->ints[d] = p->kernel[d], node->ints[2 + d] = p->dilation[d];
      node->ints[4 + d] = p->padding[d], node->ints[6 + d] = p->stride[d];
      node->size[2 + d] = image[d];
    }
    node->ndim = fold ? 4 : 3; /* the gradient's rank: unfold's gradient is a fold */
  }
  return y;
}

nn_tensor *nn_unfold(nn_tensor *x, const nn_patch_options *p) { return fold_or_unfold(x, p, 0); }
nn_tensor *nn_fold(nn_tensor *x, const nn_patch_options *p) { return fold_or_unfold(x, p, 1); }

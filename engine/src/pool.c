/* pool.c: the fronts of pooling (max, average, adaptive), upsampling
 * (nearest, bilinear) and batch normalisation: checks, output shapes as
 * PyTorch 1.13 computes them (ATen/native/Pool.h, UpSample.h,
 * Normalization.cpp), and each backward beside its forward through a
 * backward op of its own. Each is one fused kernel per pass (cpu/pool.c,
 * cuda/pool.cu; windows in math/pool.h): these sit inside a CNN's
 * training step, where a composition of small tensor ops would cost
 * several passes and temporaries. */
#include "internal.h"
#include "math/pool.h"

#include <stddef.h>

/* t itself when contiguous, else a contiguous copy; never recorded (the
   op records its own node on the original). */
static nn_tensor *dense(nn_tensor *t) {
  if (nn_is_contiguous(t)) return nn_retain(t);
  nn_grad_guard guard = nn_no_grad_begin();
  nn_tensor *c = nn_contiguous(t);
  nn_no_grad_end(guard);
  return c;
}

static int check_float(const char *op, const nn_tensor *x) {
  if (nn_dtype_is_floating(x->dtype)) return 0;
  nn_error_set("%s: input must be float32 or float64, got %s", op, nn_dtype_name(x->dtype));
  return -1;
}

/* Two values of a pair packed into one int64 of a node's ints. */
static int64_t pack(int64_t h, int64_t w) { return (h << 32) | (w & 0xffffffff); }
static int unpack_h(int64_t v) { return (int)(v >> 32); }
static int unpack_w(int64_t v) { return (int)(int32_t)(v & 0xffffffff); }

/* ---- pooling ---------------------------------------------------------- */
static const char *pool_name(nn_pool_kind kind) {
  switch (kind) {
  case NN_POOL_MAX: return "max_pool2d";
  case NN_POOL_AVG: return "avg_pool2d";
  case NN_POOL_ADAPTIVE_MAX: return "adaptive_max_pool2d";
  default: return "adaptive_avg_pool2d";
  }
}

static const char *pool_node_name(nn_pool_kind kind) {
  switch (kind) {
  case NN_POOL_MAX: return "MaxPool2DWithIndicesBackward0";
  case NN_POOL_AVG: return "AvgPool2DBackward0";
  case NN_POOL_ADAPTIVE_MAX: return "AdaptiveMaxPool2DBackward0";
  default: return "AdaptiveAvgPool2DBackward0";
  }
}

static int is_max(nn_pool_kind kind) { return kind == NN_POOL_MAX || kind == NN_POOL_ADAPTIVE_MAX; }

/* PyTorch's pooling_output_shape: with ceil_mode the last window must
   start inside the input or its left padding. */
static int64_t pooled_size(int64_t in, int64_t kernel, int64_t pad, int64_t stride,
                           int64_t dilation, int ceil_mode) {
  int64_t span = in + 2 * pad - dilation * (kernel - 1) - 1 + (ceil_mode ? stride - 1 : 0);
  int64_t out = (span >= 0 ? span / stride : -((-span + stride - 1) / stride)) + 1;
  if (ceil_mode && (out - 1) * stride >= in + pad) out--;
  return out;
}

/* The input's (planes, H, W) view: 3-d (C, H, W) or 4-d (N, C, H, W). */
static int check_planes(const char *op, const nn_tensor *x) {
  if ((x->ndim == 3 || x->ndim == 4) && x->size[x->ndim - 1] > 0 && x->size[x->ndim - 2] > 0 &&
      x->size[x->ndim - 3] > 0)
    return 0;
  char shape[96];
  nn_error_set("%s: expected a non-empty 3-d (C, H, W) or 4-d (N, C, H, W) input, got shape %s", op,
               nn_shape_string(x, shape, sizeof shape));
  return -1;
}

/* Checks o against x and fills a's geometry and the output's (h, w). */
static int pool_geometry(const char *op, const nn_tensor *x, const nn_pool2d_options *o,
                         nn_pool2d_args *a) {
  int64_t in[2] = {x->size[x->ndim - 2], x->size[x->ndim - 1]}, out[2];
  if (o->kind == NN_POOL_ADAPTIVE_MAX || o->kind == NN_POOL_ADAPTIVE_AVG) {
    for (int d = 0; d < 2; d++) {
      if (o->output_size[d] < 1) {
        nn_error_set("%s: output_size must be positive, got (%lld, %lld)", op,
                     (long long)o->output_size[0], (long long)o->output_size[1]);
        return -1;
      }
      out[d] = o->output_size[d];
    }
  } else {
    for (int d = 0; d < 2; d++) {
      const char *bad = o->kernel[d] < 1 ? "kernel_size" : o->stride[d] < 1 ? "stride"
                        : o->dilation[d] < 1 ? "dilation" : NULL;
      if (bad) {
        nn_error_set("%s: %s must be positive, got (%lld, %lld)", op, bad,
                     (long long)(bad[0] == 'k' ? o->kernel : bad[0] == 's' ? o->stride : o->dilation)[0],
                     (long long)(bad[0] == 'k' ? o->kernel : bad[0] == 's' ? o->stride : o->dilation)[1]);
        return -1;
      }
      if (o->padding[d] < 0 || o->padding[d] > o->kernel[d] / 2) {
        nn_error_set("%s: pad should be at most half of kernel size, but got pad=%lld and kernel_size=%lld",
                     op, (long long)o->padding[d], (long long)o->kernel[d]);
        return -1;
      }
      if (o->kernel[d] > INT32_MAX || o->stride[d] > INT32_MAX || o->dilation[d] > INT32_MAX) {
        nn_error_set("%s: kernel_size, stride and dilation must be below 2^31", op);
        return -1;
      }
      out[d] = pooled_size(in[d], o->kernel[d], o->padding[d], o->stride[d], o->dilation[d], o->ceil_mode);
      a->kernel[d] = (int)o->kernel[d], a->stride[d] = (int)o->stride[d];
      a->padding[d] = (int)o->padding[d], a->dilation[d] = (int)o->dilation[d];
    }
    if (out[0] < 1 || out[1] < 1) {
      int64_t c = x->size[x->ndim - 3];
      nn_error_set("%s: Given input size: (%lldx%lldx%lld). Calculated output size: (%lldx%lldx%lld). "
                   "Output size is too small", op, (long long)c, (long long)in[0], (long long)in[1],
                   (long long)c, (long long)(out[0] < 0 ? 0 : out[0]), (long long)(out[1] < 0 ? 0 : out[1]));
      return -1;
    }
    if (o->divisor_override < 0) {
      nn_error_set("%s: divisor_override must be positive, got %lld", op, (long long)o->divisor_override);
      return -1;
    }
  }
  a->kind = o->kind;
  a->dtype = x->dtype;
  a->in_h = in[0], a->in_w = in[1], a->out_h = out[0], a->out_w = out[1];
  a->planes = nn_numel(x) / (in[0] * in[1]);
  a->count_include_pad = o->count_include_pad;
  a->divisor = o->divisor_override;
  return 0;
}

/* Whether the CPU keeps a byte a window (its tap) for this max pool's
   backward instead of indices (backend.h's nn_pool2d_args.taps). */
static int keeps_taps(const nn_pool2d_args *a, const nn_tensor *x) {
  return x->device == NN_CPU && a->kind == NN_POOL_MAX && x->dtype == NN_FLOAT32 &&
         nn_pool_tiles_2x2(a->kernel, a->stride, a->padding, a->dilation, a->in_h, a->in_w, a->out_h, a->out_w);
}

/* The pooling gradient, of x's shape (ndim, size), from g (out's shape);
   indices (max kinds) as forward wrote them, counted from base, or taps
   (uint8) where forward kept those. */
static nn_tensor *pool2d_backward(const nn_pool2d_args *geometry, nn_tensor *g, nn_tensor *indices,
                                  int ndim, const int64_t *size) {
  const char *op = pool_name(geometry->kind);
  const nn_backend *be = nn_dispatch(op, offsetof(nn_backend, pool2d_backward), g, indices, NULL);
  if (!be) return NULL;
  nn_tensor *gc = dense(g), *gx = gc ? nn_empty_like_shape(g, g->dtype, ndim, size) : NULL;
  if (!gx) {
    nn_release(gc);
    return NULL;
  }
  nn_pool2d_args a = *geometry;
  a.dtype = g->dtype;
  a.g = nn_data(gc);
  a.gx = nn_data(gx);
  int taps = indices && indices->dtype == NN_UINT8;
  a.indices = indices && !taps ? nn_data(indices) : NULL;
  a.taps = taps ? nn_data(indices) : NULL;
  int status = be->pool2d_backward(&a);
  nn_release(gc);
  if (status < 0) {
    nn_release(gx);
    return NULL;
  }
  return gx;
}

/* The node keeps the geometry in ints: kind and count_include_pad, then
   kernel, stride, padding, dilation as (h, w) pairs, divisor, base; its
   size is its input's shape, the shape of the gradient it gives. */
static void keep_pool_geometry(nn_node *node, const nn_pool2d_args *a, const nn_tensor *input) {
  node->ints[0] = (int64_t)a->kind | ((int64_t)a->count_include_pad << 8);
  const int *pairs[4] = {a->kernel, a->stride, a->padding, a->dilation};
  for (int k = 0; k < 4; k++) node->ints[1 + k] = pack(pairs[k][0], pairs[k][1]);
  node->ints[5] = a->divisor;
  node->ints[6] = a->index_base;
  node->ndim = input->ndim;
  memcpy(node->size, input->size, sizeof(int64_t) * (size_t)input->ndim);
}

/* The geometry a node kept, between an input of shape (ndim, in) and an
   output of shape (ndim, out). */
static nn_pool2d_args pool_geometry_of(const nn_node *node, int ndim, const int64_t *in,
                                       const int64_t *out) {
  nn_pool2d_args a = {0};
  a.kind = (nn_pool_kind)(node->ints[0] & 0xff);
  a.count_include_pad = (int)(node->ints[0] >> 8);
  int *pairs[4] = {a.kernel, a.stride, a.padding, a.dilation};
  for (int k = 0; k < 4; k++) pairs[k][0] = unpack_h(node->ints[1 + k]), pairs[k][1] = unpack_w(node->ints[1 + k]);
  a.divisor = node->ints[5];
  a.index_base = node->ints[6];
  a.in_h = in[ndim - 2], a.in_w = in[ndim - 1];
  a.out_h = out[ndim - 2], a.out_w = out[ndim - 1];
  a.planes = nn_shape_numel(ndim, in) / (a.in_h * a.in_w);
  return a;
}

static int pool2d_node_backward(nn_node *node, nn_tensor *g, nn_tensor **gi);
static int pool2d_adjoint_backward(nn_node *node, nn_tensor *h, nn_tensor **gi);

/* Records out = pool(input) (forward) or its adjoint, where input needs a gradient. */
static int pool_record(nn_tensor *out, const nn_pool2d_args *a, nn_tensor *input, int adjoint) {
  if (!nn_needs_grad(input, NULL, NULL)) return 0;
  nn_node *node = adjoint ? nn_node_attach(out, a->kind == NN_POOL_AVG ? "AvgPool2DBackwardBackward0" : "AdaptiveAvgPool2DBackwardBackward0",
                                           pool2d_adjoint_backward, 1, input, NULL, NULL)
                          : nn_node_attach(out, pool_node_name(a->kind), pool2d_node_backward, 1, input, NULL, NULL);
  if (!node) return -1;
  keep_pool_geometry(node, a, input);
  return 0;
}

/* ---- higher orders ----------------------------------------------------------
   The average kinds are linear and their backward reads only g: the
   gradient is the adjoint map of g, whose own gradient is the forward map
   again, so each records the other (its node) and every order alternates
   the two kernels. The max kinds' gradient is g scattered at the indices,
   recorded through the scatter front (whose gradient gathers). */
static nn_tensor *pool_scatter_recorded(const nn_node *node, nn_tensor *g, nn_tensor *indices) {
  int nd = node->ndim;
  int64_t flat_in[4], flat_out[4];
  for (int d = 0; d < nd - 2; d++) flat_in[d] = flat_out[d] = node->size[d];
  flat_in[nd - 2] = node->size[nd - 2] * node->size[nd - 1];
  flat_out[nd - 2] = g->size[nd - 2] * g->size[nd - 1];
  nn_tensor *zeros = nn_full_like_shape(g, g->dtype, nd - 1, flat_in, 0);
  nn_tensor *gf = zeros ? nn_reshape(g, nd - 1, flat_out) : NULL;
  nn_tensor *idx = gf ? nn_reshape(indices, nd - 1, flat_out) : NULL;
  nn_tensor *sum = idx ? nn_scatter(zeros, nd - 2, idx, gf, 1, (int)node->ints[6]) : NULL;
  nn_tensor *gx = sum ? nn_reshape(sum, nd, node->size) : NULL;
  nn_release(zeros), nn_release(gf), nn_release(idx), nn_release(sum);
  return gx;
}

/* The indices of the taps a pool kept (pool2d with x NULL) */
static nn_tensor *indices_of_taps(const nn_pool2d_args *geometry, nn_tensor *taps) {
  const nn_backend *be = nn_dispatch(pool_name(geometry->kind), offsetof(nn_backend, pool2d), taps, NULL, NULL);
  nn_tensor *indices = be ? nn_empty_like_shape(taps, NN_INT64, taps->ndim, taps->size) : NULL;
  nn_pool2d_args a = *geometry;
  a.taps = nn_data(taps);
  a.indices = indices ? nn_data(indices) : NULL;
  if (indices && be->pool2d(&a) < 0) nn_release(indices), indices = NULL;
  return indices;
}

static int pool2d_node_backward(nn_node *node, nn_tensor *g, nn_tensor **gi) {
  nn_pool2d_args a = pool_geometry_of(node, node->ndim, node->size, g->size);
  if (is_max(a.kind) && nn_backward_records(g, NULL, NULL)) {
    nn_tensor *kept = node->saved[0];
    nn_tensor *indices = kept->dtype == NN_UINT8 ? indices_of_taps(&a, kept) : nn_retain(kept);
    gi[0] = indices ? pool_scatter_recorded(node, g, indices) : NULL;
    nn_release(indices);
    return gi[0] ? 0 : -1;
  }
  gi[0] = pool2d_backward(&a, g, node->saved[0], node->ndim, node->size);
  if (gi[0] && !is_max(a.kind) && pool_record(gi[0], &a, g, 1) < 0) return -1;
  return gi[0] ? 0 : -1;
}

/* the adjoint's gradient: the average pooling of h, recorded */
static int pool2d_adjoint_backward(nn_node *node, nn_tensor *h, nn_tensor **gi) {
  nn_pool2d_args a = pool_geometry_of(node, node->ndim, h->size, node->size);
  const nn_backend *be = nn_dispatch(pool_name(a.kind), offsetof(nn_backend, pool2d), h, NULL, NULL);
  nn_tensor *hc = be ? dense(h) : NULL, *out = hc ? nn_empty_like_shape(h, h->dtype, node->ndim, node->size) : NULL;
  a.dtype = h->dtype;
  a.x = out ? nn_data(hc) : NULL;
  a.out = out ? nn_data(out) : NULL;
  if (out && (be->pool2d(&a) < 0 || pool_record(out, &a, h, 0) < 0)) nn_release(out), out = NULL;
  nn_release(hc);
  gi[0] = out;
  return out ? 0 : -1;
}

nn_tensor *nn_pool2d(nn_tensor *x, const nn_pool2d_options *o, nn_tensor **indices,
                     int64_t index_base) {
  if (indices) *indices = NULL;
  const char *op = pool_name(o->kind);
  const nn_backend *be = nn_dispatch(op, offsetof(nn_backend, pool2d), x, NULL, NULL);
  if (!be || check_float(op, x) < 0 || check_planes(op, x) < 0) return NULL;
  nn_pool2d_args a = {0};
  if (pool_geometry(op, x, o, &a) < 0) return NULL;
  int64_t size[4];
  for (int d = 0; d < x->ndim - 2; d++) size[d] = x->size[d];
  size[x->ndim - 2] = a.out_h, size[x->ndim - 1] = a.out_w;
  int record = nn_needs_grad(x, NULL, NULL);
  nn_tensor *xc = dense(x), *out = xc ? nn_empty_like_shape(x, x->dtype, x->ndim, size) : NULL;
  nn_tensor *idx = NULL;
  /* backward alone wants them: a byte a window where the CPU keeps taps
     (the lesson's pools: 7/8 of the indices' 9.6 MB written and read back
     a step not moved) */
  int taps = record && !indices && keeps_taps(&a, x);
  if (out && is_max(o->kind) && (indices || record))
    idx = nn_empty_like_shape(x, taps ? NN_UINT8 : NN_INT64, x->ndim, size);
  if (!out || (is_max(o->kind) && (indices || record) && !idx)) goto fail;
  a.index_base = index_base;
  a.x = nn_data(xc);
  a.out = nn_data(out);
  a.indices = idx && !taps ? nn_data(idx) : NULL;
  a.taps = idx && taps ? nn_data(idx) : NULL;
  if (be->pool2d(&a) < 0) goto fail;
  if (record) {
    if (pool_record(out, &a, x, 0) < 0) goto fail;
    if (idx) nn_node_save(out->grad_fn, 0, idx);
  }
  nn_release(xc);
  if (indices) *indices = idx;
  else nn_release(idx);
  return out;
fail:
  nn_release(xc), nn_release(out), nn_release(idx);
  return NULL;
}

/* ---- upsampling --------------------------------------------------------- */
/* PyTorch's area_pixel_compute_scale / compute_scales_value: the step in
   the input per output step. */
static double source_scale(int64_t in, int64_t out, double scale_factor, int bilinear,
                           int align_corners) {
  if (bilinear && align_corners) return out > 1 ? (double)(in - 1) / (double)(out - 1) : 0;
  return scale_factor > 0 ? 1.0 / scale_factor : (double)in / (double)out;
}

/* Upsampling is linear too: its gradient is the adjoint map of g (the
   backward kernel), whose gradient is the upsampling again (see the
   average pools). A node keeps bilinear and align_corners in ints, the
   source scales in scalar, its input's shape in size. */
static int upsample2d_node_backward(nn_node *node, nn_tensor *g, nn_tensor **gi);
static int upsample2d_adjoint_backward(nn_node *node, nn_tensor *h, nn_tensor **gi);

static int upsample_record(nn_tensor *out, const nn_upsample2d_args *a, nn_tensor *input, int adjoint) {
  if (!nn_needs_grad(input, NULL, NULL)) return 0;
  const char *name = adjoint ? (a->bilinear ? "UpsampleBilinear2DBackwardBackward0" : "UpsampleNearest2DBackwardBackward0")
                             : (a->bilinear ? "UpsampleBilinear2DBackward0" : "UpsampleNearest2DBackward0");
  nn_node *node = nn_node_attach(out, name, adjoint ? upsample2d_adjoint_backward : upsample2d_node_backward, 1,
                                 input, NULL, NULL);
  if (!node) return -1;
  node->ints[0] = a->bilinear, node->ints[1] = a->align_corners;
  node->scalar[0] = a->scale_h, node->scalar[1] = a->scale_w;
  node->ndim = 4;
  memcpy(node->size, input->size, sizeof(int64_t) * 4);
  return 0;
}

/* forward (out = up(t)) or adjoint (out = up^T(t)) into the shape
   (n, c, out_h, out_w), recorded where t needs a gradient */
static nn_tensor *upsample_apply(const nn_node *node, nn_tensor *t, int adjoint, int64_t out_h, int64_t out_w) {
  const nn_backend *be = nn_dispatch("interpolate", adjoint ? offsetof(nn_backend, upsample2d_backward)
                                                            : offsetof(nn_backend, upsample2d), t, NULL, NULL);
  if (!be) return NULL;
  int64_t size[4] = {t->size[0], t->size[1], out_h, out_w};
  const int64_t *small = adjoint ? size : t->size, *large = adjoint ? t->size : size;
  nn_tensor *tc = dense(t), *out = tc ? nn_empty_like_shape(t, t->dtype, 4, size) : NULL;
  if (!out) {
    nn_release(tc);
    return NULL;
  }
  nn_upsample2d_args a = {(int)node->ints[0], (int)node->ints[1], t->dtype, size[0] * size[1], small[2],
                          small[3], large[2], large[3], node->scalar[0], node->scalar[1],
                          adjoint ? NULL : nn_data(tc), adjoint ? NULL : nn_data(out),
                          adjoint ? nn_data(tc) : NULL, adjoint ? nn_data(out) : NULL};
  int status = adjoint ? be->upsample2d_backward(&a) : be->upsample2d(&a);
  nn_release(tc);
  if (status < 0 || upsample_record(out, &a, t, adjoint) < 0) {
    nn_release(out);
    return NULL;
  }
  return out;
}

static int upsample2d_node_backward(nn_node *node, nn_tensor *g, nn_tensor **gi) {
  gi[0] = upsample_apply(node, g, 1, node->size[2], node->size[3]);
  return gi[0] ? 0 : -1;
}

static int upsample2d_adjoint_backward(nn_node *node, nn_tensor *h, nn_tensor **gi) {
  gi[0] = upsample_apply(node, h, 0, node->size[2], node->size[3]);
  return gi[0] ? 0 : -1;
}

nn_tensor *nn_upsample2d(nn_tensor *x, int bilinear, int64_t out_h, int64_t out_w, double scale_h,
                         double scale_w, int align_corners) {
  const char *op = "interpolate";
  const nn_backend *be = nn_dispatch(op, offsetof(nn_backend, upsample2d), x, NULL, NULL);
  if (!be || check_float(op, x) < 0) return NULL;
  if (x->ndim != 4 || nn_numel(x) == 0) {
    char shape[96];
    nn_error_set("%s: expected a non-empty 4-d (N, C, H, W) input, got shape %s", op,
                 nn_shape_string(x, shape, sizeof shape));
    return NULL;
  }
  if (out_h < 1 || out_w < 1) {
    nn_error_set("%s: the output size must be positive, got (%lld, %lld)", op, (long long)out_h,
                 (long long)out_w);
    return NULL;
  }
  int64_t size[4] = {x->size[0], x->size[1], out_h, out_w};
  nn_tensor *xc = dense(x), *out = xc ? nn_empty_like_shape(x, x->dtype, 4, size) : NULL;
  if (!out) {
    nn_release(xc);
    return NULL;
  }
  nn_upsample2d_args a = {bilinear, align_corners, x->dtype, x->size[0] * x->size[1], x->size[2],
                          x->size[3], out_h, out_w,
                          source_scale(x->size[2], out_h, scale_h, bilinear, align_corners),
                          source_scale(x->size[3], out_w, scale_w, bilinear, align_corners),
                          nn_data(xc), nn_data(out), NULL, NULL};
  int status = be->upsample2d(&a);
  nn_release(xc);
  if (status < 0) goto fail;
  if (upsample_record(out, &a, x, 0) < 0) goto fail;
  return out;
fail:
  nn_release(out);
  return NULL;
}

/* ---- batch normalisation ------------------------------------------------ */
/* x (outer, channels, inner) as the kernels see it. */
static void channel_geometry(const nn_tensor *x, nn_batch_norm_args *a) {
  a->dtype = x->dtype;
  a->outer = x->size[0];
  a->channels = x->size[1];
  a->inner = 1;
  for (int d = 2; d < x->ndim; d++) a->inner *= x->size[d];
}

/* The gradients of batch_norm for g: grads[0] = dx, [1] = dweight,
   [2] = dbias, each where need[k]; stats as forward wrote them. */
static int batch_norm_backward(nn_tensor *g, nn_tensor *x, nn_tensor *weight, nn_tensor *stats,
                               int training, nn_tensor *relu_out, const int *need, nn_tensor **grads) {
  const char *op = "batch_norm";
  grads[0] = grads[1] = grads[2] = NULL;
  const nn_backend *be = nn_dispatch(op, offsetof(nn_backend, batch_norm_backward), g, x, stats);
  if (!be) return -1;
  nn_batch_norm_args a = {0};
  channel_geometry(x, &a);
  int64_t c = a.channels;
  nn_tensor *gc = dense(g);
  if (!gc || (need[0] && !(grads[0] = nn_empty_like(x))) ||
      (need[1] && !(grads[1] = nn_empty_like_shape(x, x->dtype, 1, &c))) ||
      (need[2] && !(grads[2] = nn_empty_like_shape(x, x->dtype, 1, &c))))
    goto fail;
  a.x = nn_data(x);
  a.weight = weight ? nn_data(weight) : NULL;
  a.training = training;
  a.stats = nn_data(stats);
  a.g = nn_data(gc);
  a.gx = grads[0] ? nn_data(grads[0]) : NULL;
  a.gw = grads[1] ? nn_data(grads[1]) : NULL;
  a.gb = grads[2] ? nn_data(grads[2]) : NULL;
  a.relu = relu_out != NULL;
  a.out = relu_out ? nn_data(relu_out) : NULL;
  if (be->batch_norm_backward(&a) < 0) goto fail;
  nn_release(gc);
  return 0;
fail:
  nn_release(gc);
  for (int k = 0; k < 3; k++) nn_release(grads[k]), grads[k] = NULL;
  return -1;
}

/* A node keeps training in ints[0], eps in scalar[0]; saved: x, weight, stats. */
static int batch_norm_node_backward(nn_node *node, nn_tensor *g, nn_tensor **gi) {
  if (nn_recording_backward()) {
    /* recorded from fronts (higher_order.c), on the graph's aliases where
       they need a gradient */
    nn_tensor *x = node->inputs[0] ? node->inputs[0] : node->saved[0];
    nn_tensor *w = node->inputs[1] ? node->inputs[1] : node->saved[1];
    int need[3] = {node->inputs[0] != NULL, node->inputs[1] != NULL, node->inputs[2] != NULL};
    return nn_batch_norm_backward_graph(g, x, w, node->saved[2], (int)node->ints[0], node->scalar[0],
                                        need, gi);
  }
  int need[3] = {node->inputs[0] != NULL, node->inputs[1] != NULL, node->inputs[2] != NULL};
  return batch_norm_backward(g, node->saved[0], node->saved[1], node->saved[2], (int)node->ints[0], NULL,
                             need, gi);
}

/* nn_batch_norm_relu's node: saved x, weight and its own result (relu's,
   whose zeros mask g); the statistics in ctx (the three saved places are
   taken). Recorded, it is relu's backward then batch norm's, as fronts. */
static int batch_norm_relu_node_backward(nn_node *node, nn_tensor *g, nn_tensor **gi) {
  int need[3] = {node->inputs[0] != NULL, node->inputs[1] != NULL, node->inputs[2] != NULL};
  nn_tensor *stats = node->ctx;
  if (nn_recording_backward()) {
    nn_tensor *x = node->inputs[0] ? node->inputs[0] : node->saved[0];
    nn_tensor *w = node->inputs[1] ? node->inputs[1] : node->saved[1];
    nn_tensor *masked = nn_unary_backward(NN_RELU, g, node->saved[2]);
    int status = masked ? nn_batch_norm_backward_graph(masked, x, w, stats, (int)node->ints[0], node->scalar[0],
                                                       need, gi)
                        : -1;
    nn_release(masked);
    return status;
  }
  return batch_norm_backward(g, node->saved[0], node->saved[1], stats, (int)node->ints[0], node->saved[2], need,
                             gi);
}

static void release_stats(void *stats) { nn_release(stats); }

/* weight, bias and the running statistics: NULL, or `channels` values of
   x's dtype on its device. */
static int check_per_channel(const nn_tensor *x, const nn_tensor *t, const char *what) {
  if (!t) return 0;
  if (nn_check_same_device("batch_norm", x, t) < 0) return -1;
  if (nn_numel(t) != x->size[1]) {
    char shape[96];
    nn_error_set("batch_norm: expected %lld channels, got %lld (%s has %lld values, the input has shape %s)",
                 (long long)nn_numel(t), (long long)x->size[1], what, (long long)nn_numel(t),
                 nn_shape_string(x, shape, sizeof shape));
    return -1;
  }
  if (t->dtype != x->dtype) {
    nn_error_set("batch_norm: %s is %s but the input is %s", what, nn_dtype_name(t->dtype),
                 nn_dtype_name(x->dtype));
    return -1;
  }
  return 0;
}

static nn_tensor *batch_norm_front(nn_tensor *x, nn_tensor *weight, nn_tensor *bias, nn_tensor *running_mean,
                                   nn_tensor *running_var, int training, double momentum, double eps, int relu) {
  const char *op = "batch_norm";
  const nn_backend *be = nn_dispatch(op, offsetof(nn_backend, batch_norm), x, weight, bias);
  if (!be || check_float(op, x) < 0) return NULL;
  char shape[96];
  if (x->ndim < 2) {
    nn_error_set("batch_norm: expected an input of 2 or more dims (N, C, ...), got shape %s",
                 nn_shape_string(x, shape, sizeof shape));
    return NULL;
  }
  if (check_per_channel(x, running_mean, "running_mean") < 0 ||
      check_per_channel(x, running_var, "running_var") < 0 ||
      check_per_channel(x, weight, "weight") < 0 || check_per_channel(x, bias, "bias") < 0)
    return NULL;
  if (!running_mean != !running_var) {
    nn_error_set("batch_norm: give both running_mean and running_var, or neither");
    return NULL;
  }
  if (!training && !running_mean) {
    nn_error_set("batch_norm: running_mean and running_var are needed when not training");
    return NULL;
  }
  if (!(eps >= 0)) {
    nn_error_set("batch_norm: eps must be a non-negative number, got %g", eps);
    return NULL;
  }
  nn_batch_norm_args a = {0};
  channel_geometry(x, &a);
  if (training && a.outer * a.inner <= 1) {
    nn_error_set("batch_norm: expected more than 1 value per channel when training, got input of shape %s",
                 nn_shape_string(x, shape, sizeof shape));
    return NULL;
  }
  nn_tensor *running[2] = {running_mean, running_var};
  for (int k = 0; k < 2; k++)
    if (running[k] && training && !nn_is_contiguous(running[k])) {
      nn_error_set("batch_norm: %s must be contiguous, since training updates it in place",
                   k ? "running_var" : "running_mean");
      return NULL;
    }
  /* with relu, the CPU kernel writes each channel's alpha and beta (out =
     x alpha + beta, as floats) after the statistics, and its backward redoes
     relu's test from x with them (cpu/pool.c, relu_masked) */
  int64_t stats_count = (relu ? 4 : 2) * a.channels;
  nn_tensor *xc = dense(x), *wc = NULL, *bc = NULL, *mc = NULL, *vc = NULL, *out = NULL, *stats = NULL;
  if (!xc || (weight && !(wc = dense(weight))) || (bias && !(bc = dense(bias))) ||
      (running_mean && !(mc = dense(running_mean))) || (running_var && !(vc = dense(running_var))) ||
      !(out = nn_empty_like(xc)) || !(stats = nn_empty_like_shape(x, NN_FLOAT64, 1, &stats_count)))
    goto fail;
  a.x = nn_data(xc);
  a.weight = wc ? nn_data(wc) : NULL;
  a.bias = bc ? nn_data(bc) : NULL;
  a.running_mean = mc ? nn_data(mc) : NULL;
  a.running_var = vc ? nn_data(vc) : NULL;
  a.training = training;
  a.momentum = momentum;
  a.eps = eps;
  a.stats = nn_data(stats);
  a.out = nn_data(out);
  a.relu = relu;
  if (be->batch_norm(&a) < 0) goto fail;
  if (training && mc) nn_bump_version(mc), nn_bump_version(vc);
  if (nn_needs_grad(x, weight, bias)) {
    /* the fused result is relu's: its node carries relu's name */
    nn_node *node = nn_node_attach(out, relu ? "ReluBackward0" : "NativeBatchNormBackward0",
                                   relu ? batch_norm_relu_node_backward : batch_norm_node_backward, 3, x, weight, bias);
    if (!node) goto fail;
    node->ints[0] = training;
    node->scalar[0] = eps;
    nn_node_save(node, 0, xc);
    if (wc) nn_node_save(node, 1, wc);
    if (relu) {
      nn_node_save_output(node, 2, out);
      node->ctx = nn_retain(stats);
      node->free_ctx = release_stats;
    } else {
      nn_node_save(node, 2, stats);
    }
  }
  nn_release(xc), nn_release(wc), nn_release(bc), nn_release(mc), nn_release(vc), nn_release(stats);
  return out;
fail:
  nn_release(xc), nn_release(wc), nn_release(bc), nn_release(mc), nn_release(vc);
  nn_release(out), nn_release(stats);
  return NULL;
}

nn_tensor *nn_batch_norm(nn_tensor *x, nn_tensor *weight, nn_tensor *bias, nn_tensor *running_mean,
                         nn_tensor *running_var, int training, double momentum, double eps) {
  return batch_norm_front(x, weight, bias, running_mean, running_var, training, momentum, eps, 0);
}

/* One pass where the kernels have it (float32 on the CPU): each result
   written once, and relu's backward folded into batch norm's; elsewhere
   the two ops. The same bits either way. */
nn_tensor *nn_batch_norm_relu(nn_tensor *x, nn_tensor *weight, nn_tensor *bias, nn_tensor *running_mean,
                              nn_tensor *running_var, int training, double momentum, double eps) {
  if (x->dtype == NN_FLOAT32 && x->device == NN_CPU)
    return batch_norm_front(x, weight, bias, running_mean, running_var, training, momentum, eps, 1);
  nn_tensor *y = nn_batch_norm(x, weight, bias, running_mean, running_var, training, momentum, eps);
  nn_tensor *out = y ? nn_unary(NN_RELU, y) : NULL;
  nn_release(y);
  return out;
}

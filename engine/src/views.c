/* views.c: tensors that share their base's storage (view, reshape,
 * transpose, permute, narrow, select, unsqueeze, squeeze, expand), and the
 * copies beside them (contiguous, clone, dtype conversion); each backward
 * beside its forward. */
#include "internal.h"

#include <stddef.h>

/* A view remembers the first tensor of its storage, its base, where an
   in-place change through the view writes its history. */
static nn_tensor *make_view(nn_tensor *t, int ndim, const int64_t *size, const int64_t *stride,
                            int64_t offset) {
  nn_tensor *v = nn_tensor_wrap(t->storage, t->dtype, ndim, size, stride, offset);
  if (v) {
    v->base = nn_retain(t->base ? t->base : t);
    v->view_version = t->storage->version;
  }
  return v;
}

/* Records a view's node; the input's shape is what backward restores. */
static nn_tensor *record(nn_tensor *out, nn_tensor *in, const char *name, nn_backward_fn fn) {
  if (!out || !nn_needs_grad(in, NULL, NULL)) return out;
  nn_node *node = nn_node_attach(out, name, fn, 1, in, NULL, NULL);
  if (!node) {
    nn_release(out);
    return NULL;
  }
  node->ndim = in->ndim;
  for (int i = 0; i < in->ndim; i++) node->size[i] = in->size[i];
  return out;
}

/* ---- view / reshape: (..) -> (size) ---------------------------------- */
static int reshape_backward(nn_node *node, nn_tensor *g, nn_tensor **gi) {
  gi[0] = nn_reshape(g, node->ndim, node->size);
  return gi[0] ? 0 : -1;
}

/* Resolves one -1 and checks the element count. */
static int infer_size(const char *op, const nn_tensor *t, int ndim, const int64_t *in, int64_t *out) {
  if (ndim > NN_MAX_DIMS || ndim < 0) {
    nn_error_set("%s: %d dimensions requested, at most %d are supported", op, ndim, NN_MAX_DIMS);
    return -1;
  }
  int infer = -1;
  int64_t known = 1;
  for (int i = 0; i < ndim; i++) {
    if (in[i] == -1) {
      if (infer >= 0) {
        nn_error_set("%s: only one dimension can be -1", op);
        return -1;
      }
      infer = i;
    } else if (in[i] < 0) {
      nn_error_set("%s: size %lld is invalid", op, (long long)in[i]);
      return -1;
    } else {
      if (in[i] && known > INT64_MAX / in[i]) {
        nn_error_set("%s: the requested shape is too large", op);
        return -1;
      }
      known *= in[i];
    }
    out[i] = in[i];
  }
  int64_t numel = nn_numel(t);
  if (infer >= 0) {
    if (known == 0 || numel % known != 0) {
      char b[96];
      nn_error_set("%s: shape %s cannot be viewed with a -1 over %lld elements", op,
                   nn_shape_string(t, b, sizeof b), (long long)known);
      return -1;
    }
    out[infer] = numel / known;
  } else if (known != numel) {
    char b[96];
    nn_error_set("%s: shape %s has %lld elements, the requested shape %lld", op,
                 nn_shape_string(t, b, sizeof b), (long long)numel, (long long)known);
    return -1;
  }
  /* an empty tensor matches any shape with a zero in it; the strides of
     that shape must still fit */
  return nn_check_shape(op, ndim, out);
}

/* Strides for viewing t with a new shape without copying, when the memory
   allows (PyTorch's computeStride); 0 when it does not. */
static int view_strides(const nn_tensor *t, int ndim, const int64_t *size, int64_t *stride) {
  if (nn_numel(t) == 0 || nn_is_contiguous(t)) {
    nn_contiguous_strides(ndim, size, stride);
    return 1;
  }
  /* Walk t's dims from the last, in chunks of dims that are contiguous with
     each other; each chunk must be covered exactly by whole view dims. */
  int view_d = ndim - 1;
  int64_t base_stride = t->stride[t->ndim - 1], tensor_numel = 1, view_numel = 1;
  for (int d = t->ndim - 1; d >= 0; d--) {
    tensor_numel *= t->size[d];
    int chunk_ends = d == 0 || (t->size[d - 1] != 1 && t->stride[d - 1] != tensor_numel * base_stride);
    if (!chunk_ends) continue;
    while (view_d >= 0 && (view_numel < tensor_numel || size[view_d] == 1)) {
      stride[view_d] = view_numel * base_stride;
      view_numel *= size[view_d];
      view_d--;
    }
    if (view_numel != tensor_numel) return 0;
    if (d > 0) {
      base_stride = t->stride[d - 1];
      tensor_numel = view_numel = 1;
    }
  }
  return view_d == -1;
}

nn_tensor *nn_view(nn_tensor *t, int ndim, const int64_t *size_in) {
  int64_t size[NN_MAX_DIMS], stride[NN_MAX_DIMS];
  if (infer_size("view", t, ndim, size_in, size) < 0) return NULL;
  if (!view_strides(t, ndim, size, stride)) {
    nn_error_set("view: the tensor's memory is not laid out for that shape; use reshape "
                 "(or contiguous() first)");
    return NULL;
  }
  return record(make_view(t, ndim, size, stride, t->offset), t, "ViewBackward0", reshape_backward);
}

nn_tensor *nn_reshape(nn_tensor *t, int ndim, const int64_t *size_in) {
  int64_t size[NN_MAX_DIMS], stride[NN_MAX_DIMS];
  if (infer_size("reshape", t, ndim, size_in, size) < 0) return NULL;
  if (view_strides(t, ndim, size, stride))
    return record(make_view(t, ndim, size, stride, t->offset), t, "ViewBackward0", reshape_backward);
  nn_tensor *c = nn_contiguous(t);
  if (!c) return NULL;
  nn_tensor *v = nn_view(c, ndim, size);
  nn_release(c);
  return v;
}

/* ---- transpose / permute --------------------------------------------- */
static int transpose_backward(nn_node *node, nn_tensor *g, nn_tensor **gi) {
  gi[0] = nn_transpose(g, (int)node->ints[0], (int)node->ints[1]);
  return gi[0] ? 0 : -1;
}

nn_tensor *nn_transpose(nn_tensor *t, int d0, int d1) {
  if ((d0 = nn_wrap_dim("transpose", d0, t->ndim)) < 0) return NULL;
  if ((d1 = nn_wrap_dim("transpose", d1, t->ndim)) < 0) return NULL;
  int64_t size[NN_MAX_DIMS], stride[NN_MAX_DIMS];
  for (int i = 0; i < t->ndim; i++) size[i] = t->size[i], stride[i] = t->stride[i];
  if (t->ndim > 0) {
    size[d0] = t->size[d1], stride[d0] = t->stride[d1];
    size[d1] = t->size[d0], stride[d1] = t->stride[d0];
  }
  nn_tensor *out = record(make_view(t, t->ndim, size, stride, t->offset), t, "TransposeBackward0",
                          transpose_backward);
  if (out && out->grad_fn) out->grad_fn->ints[0] = d0, out->grad_fn->ints[1] = d1;
  return out;
}

static int t_backward(nn_node *node, nn_tensor *g, nn_tensor **gi) {
  (void)node;
  gi[0] = nn_t(g);
  return gi[0] ? 0 : -1;
}

nn_tensor *nn_t(nn_tensor *t) {
  if (t->ndim > 2) {
    nn_error_set("t: expects a tensor of at most 2 dimensions, got %d (use transpose)", t->ndim);
    return NULL;
  }
  if (t->ndim < 2) return nn_retain(t);
  int64_t size[2] = {t->size[1], t->size[0]}, stride[2] = {t->stride[1], t->stride[0]};
  return record(make_view(t, 2, size, stride, t->offset), t, "TBackward0", t_backward);
}

static int permute_backward(nn_node *node, nn_tensor *g, nn_tensor **gi) {
  int inverse[NN_MAX_DIMS];
  for (int i = 0; i < node->ndim; i++) inverse[node->ints[i]] = i;
  gi[0] = nn_permute(g, inverse);
  return gi[0] ? 0 : -1;
}

nn_tensor *nn_permute(nn_tensor *t, const int *dims) {
  int64_t size[NN_MAX_DIMS], stride[NN_MAX_DIMS];
  int seen[NN_MAX_DIMS] = {0}, d[NN_MAX_DIMS];
  for (int i = 0; i < t->ndim; i++) {
    if ((d[i] = nn_wrap_dim("permute", dims[i], t->ndim)) < 0) return NULL;
    if (seen[d[i]]++) {
      nn_error_set("permute: dimension %d appears twice", d[i] + 1);
      return NULL;
    }
    size[i] = t->size[d[i]];
    stride[i] = t->stride[d[i]];
  }
  nn_tensor *out = record(make_view(t, t->ndim, size, stride, t->offset), t, "PermuteBackward0",
                          permute_backward);
  if (out && out->grad_fn)
    for (int i = 0; i < t->ndim; i++) out->grad_fn->ints[i] = d[i];
  return out;
}

/* ---- narrow / select: the gradient lands in a zero tensor ------------ */
/* gi[0] = z (zeros, consumed) with g copied into part (z's view, consumed). */
static int gradient_in_zeros(nn_tensor *z, nn_tensor *part, nn_tensor *g, nn_tensor **gi) {
  /* a recording pass records the copy (CopySlices), so g's history goes on */
  int st = !part ? -1 : nn_backward_records(g, NULL, NULL) ? nn_inplace_copy("backward", part, g)
                                                           : nn_copy_(part, g);
  nn_release(part);
  if (st < 0) {
    nn_release(z);
    return -1;
  }
  gi[0] = z;
  return 0;
}

static int slice_backward(nn_node *node, nn_tensor *g, nn_tensor **gi) {
  nn_tensor *z = nn_full_like_shape(g, g->dtype, node->ndim, node->size, 0);
  if (!z) return -1;
  int dim = (int)node->ints[0];
  nn_tensor *part = node->ints[2] < 0 ? nn_select(z, dim, node->ints[1])
                                      : nn_narrow(z, dim, node->ints[1], node->ints[2]);
  return gradient_in_zeros(z, part, g, gi);
}

nn_tensor *nn_narrow(nn_tensor *t, int dim, int64_t start, int64_t length) {
  if (t->ndim == 0) {
    nn_error_set("narrow: a 0-dimensional tensor cannot be narrowed");
    return NULL;
  }
  if ((dim = nn_wrap_dim("narrow", dim, t->ndim)) < 0) return NULL;
  if (start < 0 || length < 0 || start > t->size[dim] || length > t->size[dim] - start) {
    /* start is 0-based here; the message counts from 1 as the user does */
    nn_error_set("narrow: %lld elements from index %lld do not fit in dimension %d of size %lld",
                 (long long)length, (long long)start + (start < INT64_MAX), dim + 1,
                 (long long)t->size[dim]);
    return NULL;
  }
  int64_t size[NN_MAX_DIMS];
  for (int i = 0; i < t->ndim; i++) size[i] = t->size[i];
  size[dim] = length;
  nn_tensor *out = record(make_view(t, t->ndim, size, t->stride, t->offset + start * t->stride[dim]),
                          t, "NarrowBackward0", slice_backward);
  if (out && out->grad_fn) {
    out->grad_fn->ints[0] = dim;
    out->grad_fn->ints[1] = start;
    out->grad_fn->ints[2] = length;
  }
  return out;
}

nn_tensor *nn_select(nn_tensor *t, int dim, int64_t index) {
  if (t->ndim == 0) {
    nn_error_set("select: a 0-dimensional tensor has nothing to select");
    return NULL;
  }
  if ((dim = nn_wrap_dim("select", dim, t->ndim)) < 0) return NULL;
  if (index < 0 || index >= t->size[dim]) {
    nn_error_set("select: index %lld is out of range for dimension %d of size %lld",
                 (long long)index + (index < INT64_MAX), dim + 1, (long long)t->size[dim]);
    return NULL;
  }
  int64_t size[NN_MAX_DIMS], stride[NN_MAX_DIMS];
  int n = 0;
  for (int i = 0; i < t->ndim; i++)
    if (i != dim) size[n] = t->size[i], stride[n++] = t->stride[i];
  nn_tensor *out = record(make_view(t, n, size, stride, t->offset + index * t->stride[dim]), t,
                          "SelectBackward0", slice_backward);
  if (out && out->grad_fn) {
    out->grad_fn->ints[0] = dim;
    out->grad_fn->ints[1] = index;
    out->grad_fn->ints[2] = -1;
  }
  return out;
}

/* ---- unsqueeze / squeeze --------------------------------------------- */
nn_tensor *nn_unsqueeze(nn_tensor *t, int dim) {
  if (t->ndim >= NN_MAX_DIMS) {
    nn_error_set("unsqueeze: the tensor already has %d dimensions, the most supported", NN_MAX_DIMS);
    return NULL;
  }
  if (dim < -(t->ndim + 1) || dim > t->ndim) {
    nn_error_set("unsqueeze: dimension %d out of range for a tensor of %d dimensions",
                 dim >= 0 ? dim + 1 : dim, t->ndim);
    return NULL;
  }
  if (dim < 0) dim += t->ndim + 1;
  int64_t size[NN_MAX_DIMS], stride[NN_MAX_DIMS];
  for (int i = 0, j = 0; i <= t->ndim; i++) {
    if (i == dim) {
      size[i] = 1;
      stride[i] = j < t->ndim ? t->stride[j] * t->size[j] : 1;
    } else {
      size[i] = t->size[j], stride[i] = t->stride[j];
      j++;
    }
  }
  return record(make_view(t, t->ndim + 1, size, stride, t->offset), t, "UnsqueezeBackward0",
                reshape_backward);
}

nn_tensor *nn_squeeze(nn_tensor *t, int dim) {
  if (dim != NN_ALL_DIMS && (dim = nn_wrap_dim("squeeze", dim, t->ndim)) < 0) return NULL;
  int64_t size[NN_MAX_DIMS], stride[NN_MAX_DIMS];
  int n = 0;
  for (int i = 0; i < t->ndim; i++) {
    int drop = t->size[i] == 1 && (dim == NN_ALL_DIMS || dim == i);
    if (!drop) size[n] = t->size[i], stride[n++] = t->stride[i];
  }
  return record(make_view(t, n, size, stride, t->offset), t, "SqueezeBackward0", reshape_backward);
}

/* ---- expand: the gradient sums over the broadcast dims ---------------- */
static int expand_backward(nn_node *node, nn_tensor *g, nn_tensor **gi) {
  gi[0] = nn_sum_to_shape(g, node->ndim, node->size);
  return gi[0] ? 0 : -1;
}

nn_tensor *nn_expand(nn_tensor *t, int ndim, const int64_t *want) {
  if (ndim < t->ndim || ndim > NN_MAX_DIMS) {
    nn_error_set("expand: %d sizes given for a tensor of %d dimensions", ndim, t->ndim);
    return NULL;
  }
  int64_t size[NN_MAX_DIMS], stride[NN_MAX_DIMS];
  for (int i = 0; i < ndim; i++) {
    int j = t->ndim - ndim + i;
    int64_t have = j >= 0 ? t->size[j] : 1;
    int64_t s = want[i] == -1 ? have : want[i];
    if (want[i] == -1 && j < 0) {
      nn_error_set("expand: -1 is not allowed for the new leading dimension %d", i + 1);
      return NULL;
    }
    if (s < 0 || (have != 1 && have != s)) {
      nn_error_set("expand: dimension %d has size %lld and cannot be expanded to %lld", i + 1,
                   (long long)have, (long long)s);
      return NULL;
    }
    size[i] = s;
    stride[i] = (j >= 0 && have == s) ? t->stride[j] : 0;
  }
  if (nn_check_shape("expand", ndim, size) < 0) return NULL;
  return record(make_view(t, ndim, size, stride, t->offset), t, "ExpandBackward0", expand_backward);
}

/* ---- overlap between a tensor written in place and what it reads ---------- */
/* The storage elements t spans, [lo, hi); 0 when t is empty. */
static int element_span(const nn_tensor *t, int64_t *lo, int64_t *hi) {
  *lo = *hi = t->offset;
  for (int i = 0; i < t->ndim; i++) {
    if (t->size[i] == 0) return 0;
    int64_t extent = (t->size[i] - 1) * t->stride[i];
    if (extent < 0) *lo += extent;
    else *hi += extent;
  }
  *hi += 1;
  return 1;
}

/* dst's dims of size > 1 by decreasing stride, in order[]; their count, or
   -1 when a stride does not exceed the span of the smaller ones. Every view
   (a contiguous layout narrowed, selected, permuted, reshaped) passes, and
   then an element's storage offset has one decomposition into
   index * stride terms, found by dividing from the largest stride. */
static int nested_dims(const nn_tensor *dst, int *order) {
  int n = 0;
  for (int i = 0; i < dst->ndim; i++) {
    if (dst->size[i] == 1) continue;
    int j = n++;
    while (j > 0 && dst->stride[order[j - 1]] < dst->stride[i]) order[j] = order[j - 1], j--;
    order[j] = i;
  }
  int64_t span = 0;
  for (int k = n - 1; k >= 0; k--) {
    int64_t stride = dst->stride[order[k]];
    if (stride <= span) return -1;
    span += stride * (dst->size[order[k]] - 1);
  }
  return n;
}

/* True when some position of dst reads (through src broadcast to dst's
   shape, strides sstride) an element that dst holds at another position. */
static int reads_across(const nn_tensor *dst, const nn_tensor *src, const int64_t *sstride,
                        int64_t lo, int64_t hi) {
  int order[NN_MAX_DIMS];
  int n = nested_dims(dst, order);
  if (n < 0) return 1; /* a layout no view makes: assume the worst */
  int64_t counter[NN_MAX_DIMS] = {0};
  for (;;) {
    int64_t off = src->offset;
    for (int i = 0; i < dst->ndim; i++) off += counter[i] * sstride[i];
    if (off >= lo && off < hi) {
      int64_t rem = off - dst->offset;
      int same = rem >= 0, element = rem >= 0;
      for (int k = 0; k < n && element; k++) {
        int d = order[k];
        int64_t q = rem / dst->stride[d];
        if (q >= dst->size[d]) element = 0;
        rem -= q * dst->stride[d];
        same = same && q == counter[d];
      }
      if (element && rem == 0 && !same) return 1;
    }
    int d = dst->ndim - 1;
    while (d >= 0 && ++counter[d] == dst->size[d]) counter[d--] = 0;
    if (d < 0) return 0;
  }
}

int nn_check_partial_overlap(const char *op, const nn_tensor *dst, const nn_tensor *src) {
  int64_t dlo, dhi, slo, shi;
  if (!element_span(dst, &dlo, &dhi) || !element_span(src, &slo, &shi)) return 0;
  if (slo >= dhi || dlo >= shi) return 0;
  int64_t sstride[NN_MAX_DIMS];
  int identical = src->offset == dst->offset;
  for (int i = 0; i < dst->ndim; i++) {
    int j = src->ndim - dst->ndim + i;
    sstride[i] = (j >= 0 && src->size[j] != 1) ? src->stride[j] : 0;
    if (dst->size[i] != 1 && sstride[i] != dst->stride[i]) identical = 0;
  }
  if (identical || !reads_across(dst, src, sstride, dlo, dhi)) return 0;
  nn_error_set("%s: the operand and the tensor written to overlap in memory (an element is read "
               "at one position and written at another); clone() the operand first", op);
  return -1;
}

/* ---- copies ---------------------------------------------------------- */
static int identity_backward(nn_node *node, nn_tensor *g, nn_tensor **gi) {
  (void)node;
  gi[0] = nn_retain(g);
  return 0;
}

nn_tensor *nn_clone(nn_tensor *t) {
  if (!nn_dispatch("clone", offsetof(nn_backend, copy), t, NULL, NULL)) return NULL;
  nn_tensor *out = nn_empty_like(t);
  if (!out) return NULL;
  if (nn_copy_(out, t) < 0) {
    nn_release(out);
    return NULL;
  }
  return record(out, t, "CloneBackward0", identity_backward);
}

nn_tensor *nn_contiguous(nn_tensor *t) {
  if (nn_is_contiguous(t)) return nn_retain(t);
  return nn_clone(t);
}

nn_tensor *nn_detach(nn_tensor *t) { return nn_alias(t); }

static int to_dtype_backward(nn_node *node, nn_tensor *g, nn_tensor **gi) {
  gi[0] = nn_to_dtype(g, (nn_dtype)node->ints[0]);
  return gi[0] ? 0 : -1;
}

nn_tensor *nn_to_dtype(nn_tensor *t, nn_dtype dtype) {
  if (t->dtype == dtype) return nn_retain(t);
  if (!nn_dispatch("to", offsetof(nn_backend, copy), t, NULL, NULL)) return NULL;
  nn_tensor *out = nn_empty_like_shape(t, dtype, t->ndim, t->size);
  if (!out) return NULL;
  if (nn_copy_(out, t) < 0) {
    nn_release(out);
    return NULL;
  }
  if (!nn_dtype_is_floating(dtype)) return out; /* the gradient stops at an integer */
  out = record(out, t, "ToCopyBackward0", to_dtype_backward);
  if (out && out->grad_fn) out->grad_fn->ints[0] = t->dtype;
  return out;
}

static int to_device_backward(nn_node *node, nn_tensor *g, nn_tensor **gi) {
  gi[0] = nn_to_device(g, (nn_device)node->ints[0]);
  return gi[0] ? 0 : -1;
}

nn_tensor *nn_in_float32(nn_tensor *x, nn_float32_fn fn, const void *arg) {
  nn_tensor *xf = nn_to_dtype(x, NN_FLOAT32), *rf = xf ? fn(xf, arg) : NULL;
  nn_tensor *r = rf ? nn_to_dtype(rf, x->dtype) : NULL;
  nn_release(xf);
  nn_release(rf);
  return r;
}

/* A copy on device; its gradient goes back to t's device. */
nn_tensor *nn_to_device(nn_tensor *t, nn_device device) {
  if (t->device == device) return nn_retain(t);
  if (!nn_device_check("to", device)) return NULL;
  nn_tensor *out = nn_empty_on(device, t->dtype, t->ndim, t->size);
  if (!out) return NULL;
  if (nn_copy_(out, t) < 0) {
    nn_release(out);
    return NULL;
  }
  if (!nn_dtype_is_floating(t->dtype)) return out;
  out = record(out, t, "ToCopyBackward0", to_device_backward);
  if (out && out->grad_fn) out->grad_fn->ints[0] = t->device;
  return out;
}

/* ---- diagonal (issue 12) ------------------------------------------------ */
static int diagonal_backward(nn_node *node, nn_tensor *g, nn_tensor **gi) {
  nn_tensor *z = nn_full_like_shape(g, g->dtype, node->ndim, node->size, 0);
  nn_tensor *part = z ? nn_diagonal(z, node->ints[0], (int)node->ints[1], (int)node->ints[2]) : NULL;
  return gradient_in_zeros(z, part, g, gi);
}

nn_tensor *nn_diagonal(nn_tensor *t, int64_t offset, int d1, int d2) {
  if (t->ndim < 2) {
    nn_error_set("diagonal: the tensor needs at least 2 dimensions, it has %d", t->ndim);
    return NULL;
  }
  if ((d1 = nn_wrap_dim("diagonal", d1, t->ndim)) < 0 || (d2 = nn_wrap_dim("diagonal", d2, t->ndim)) < 0)
    return NULL;
  if (d1 == d2) {
    nn_error_set("diagonal: dim1 and dim2 are both dimension %d", d1 + 1);
    return NULL;
  }
  /* the diagonal's first element and length, as PyTorch's: empty when the
     offset runs past either dim */
  int64_t start = t->offset, length;
  if (offset >= 0) {
    length = t->size[d2] - offset < t->size[d1] ? t->size[d2] - offset : t->size[d1];
    if (length > 0) start += offset * t->stride[d2];
  } else {
    length = t->size[d1] + offset < t->size[d2] ? t->size[d1] + offset : t->size[d2];
    if (length > 0) start -= offset * t->stride[d1];
  }
  if (length < 0) length = 0;
  int64_t size[NN_MAX_DIMS], stride[NN_MAX_DIMS];
  int n = 0;
  for (int i = 0; i < t->ndim; i++)
    if (i != d1 && i != d2) size[n] = t->size[i], stride[n++] = t->stride[i];
  size[n] = length, stride[n++] = t->stride[d1] + t->stride[d2];
  nn_tensor *out = record(make_view(t, n, size, stride, start), t, "DiagonalBackward0", diagonal_backward);
  if (out && out->grad_fn) {
    out->grad_fn->ints[0] = offset;
    out->grad_fn->ints[1] = d1;
    out->grad_fn->ints[2] = d2;
  }
  return out;
}

/* ---- issue 12's views: strided slices, flip, in-place view ops -------- */
static int strided_slice_backward(nn_node *node, nn_tensor *g, nn_tensor **gi) {
  nn_tensor *z = nn_full_like_shape(g, g->dtype, node->ndim, node->size, 0);
  if (!z) return -1;
  nn_tensor *part = nn_slice(z, (int)node->ints[0], node->ints[1], node->ints[2], node->ints[3]);
  return gradient_in_zeros(z, part, g, gi);
}

nn_tensor *nn_slice(nn_tensor *t, int dim, int64_t start, int64_t length, int64_t step) {
  if (t->ndim == 0) {
    nn_error_set("slice: a 0-dimensional tensor cannot be sliced");
    return NULL;
  }
  if ((dim = nn_wrap_dim("slice", dim, t->ndim)) < 0) return NULL;
  if (step < 1) {
    nn_error_set("slice: step must be positive, got %lld", (long long)step);
    return NULL;
  }
  int64_t n = t->size[dim];
  if (start < 0 || length < 0 || start > n || (length > 0 && (length - 1) > (n - 1 - start) / step)) {
    nn_error_set("slice: %lld elements from index %lld with step %lld do not fit in dimension %d "
                 "of size %lld", (long long)length, (long long)start + 1, (long long)step, dim + 1,
                 (long long)n);
    return NULL;
  }
  int64_t size[NN_MAX_DIMS], stride[NN_MAX_DIMS];
  for (int i = 0; i < t->ndim; i++) size[i] = t->size[i], stride[i] = t->stride[i];
  size[dim] = length;
  if (length > 1) stride[dim] *= step;
  nn_tensor *out = record(make_view(t, t->ndim, size, stride, t->offset + start * t->stride[dim]),
                          t, "SliceBackward0", strided_slice_backward);
  if (out && out->grad_fn) {
    out->grad_fn->ints[0] = dim;
    out->grad_fn->ints[1] = start;
    out->grad_fn->ints[2] = length;
    out->grad_fn->ints[3] = step;
  }
  return out;
}

static int flip_backward(nn_node *node, nn_tensor *g, nn_tensor **gi) {
  gi[0] = nn_flip(g, (unsigned)node->ints[0]);
  return gi[0] ? 0 : -1;
}

nn_tensor *nn_flip(nn_tensor *t, unsigned dims) {
  /* a copy, as PyTorch's: read through a view with the flipped dims'
     strides negated, which no tensor a user sees ever has */
  int64_t stride[NN_MAX_DIMS], offset = t->offset;
  for (int i = 0; i < t->ndim; i++) {
    stride[i] = t->stride[i];
    if ((dims >> i & 1) && t->size[i] > 1) {
      offset += (t->size[i] - 1) * t->stride[i];
      stride[i] = -t->stride[i];
    }
  }
  if (nn_numel(t) == 0) offset = t->offset;
  nn_tensor *reversed = nn_tensor_wrap(t->storage, t->dtype, t->ndim, t->size, stride, offset);
  nn_tensor *out = reversed ? nn_empty_like(t) : NULL;
  if (out && nn_copy_(out, reversed) < 0) {
    nn_release(out);
    out = NULL;
  }
  nn_release(reversed);
  out = record(out, t, "FlipBackward0", flip_backward);
  if (out && out->grad_fn) out->grad_fn->ints[0] = dims;
  return out;
}

int nn_view_inplace(const char *op, nn_tensor *t, nn_tensor *v) {
  if (!v) return -1;
  if (t->requires_grad && !t->grad_fn && nn_grad_enabled()) {
    nn_release(v);
    nn_error_set("%s: a leaf tensor that requires grad cannot change its shape in place", op);
    return -1;
  }
  t->ndim = v->ndim;
  for (int i = 0; i < v->ndim; i++) t->size[i] = v->size[i], t->stride[i] = v->stride[i];
  t->offset = v->offset;
  t->contiguous = v->contiguous;
  t->view_version = v->view_version;
  if (v->grad_fn) {
    nn_node_release(t->grad_fn);
    t->grad_fn = v->grad_fn;
    v->grad_fn = NULL;
  }
  nn_release(v);
  return 0;
}

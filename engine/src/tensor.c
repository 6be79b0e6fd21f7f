/* tensor.c: the tensor's life (creation, reference counts, element access,
 * copies) and the strided iterator every elementwise kernel runs on. */
#include "hooks.h"

#include <stddef.h>
#include <stdio.h>

/* Tensor structs are recycled through a free list: an op's result costs no
   malloc in steady state. */
static nn_tensor *free_tensors;

static nn_tensor *tensor_struct(void) {
  nn_tensor *t = free_tensors;
  if (t) {
    free_tensors = t->grad;
  } else if (!(t = malloc(sizeof *t))) {
    nn_error_set("out of memory");
    return NULL;
  }
  t->refcount = 1;
  t->requires_grad = 0;
  t->grad = NULL;
  t->grad_fn = NULL;
  t->base = NULL;
  t->view_version = 0;
  t->hooks = NULL;
  t->grad_zero_deferred = 0;
  return t;
}

nn_tensor *nn_retain(nn_tensor *t) {
  if (t) t->refcount++;
  return t;
}

void nn_release(nn_tensor *t) {
  if (!t || --t->refcount > 0) return;
  nn_storage_release(t->storage);
  nn_release(t->grad);
  nn_node_release(t->grad_fn); /* never recurses deeply: see nn_node_release */
  if (t->base) nn_release(t->base); /* a base is never a view: one level */
  nn_hooks_free(t->hooks);
  t->grad = free_tensors;
  free_tensors = t;
}

/* ---- dtypes and devices --------------------------------------------- */
const char *nn_dtype_name(nn_dtype dtype) { return nn_dtype_table_name(dtype); }
size_t nn_dtype_size(nn_dtype dtype) { return nn_element_size(dtype); }
int nn_dtype_is_floating(nn_dtype dtype) { return nn_floating_dtype(dtype); }
nn_dtype nn_promote_types(nn_dtype a, nn_dtype b) { return nn_promote_dtypes(a, b); }

/* The table's names, and PyTorch's other names for them (torch.half, ...) */
int nn_dtype_from_name(const char *name) {
  static const struct { const char *name; nn_dtype dtype; } aliases[] = {
      {"float", NN_FLOAT32}, {"double", NN_FLOAT64}, {"long", NN_INT64}, {"int", NN_INT32},
      {"short", NN_INT16},   {"half", NN_FLOAT16}};
  for (int d = 0; d < NN_DTYPE_COUNT; d++)
    if (strcmp(name, nn_dtype_name((nn_dtype)d)) == 0) return d;
  for (size_t i = 0; i < sizeof aliases / sizeof aliases[0]; i++)
    if (strcmp(name, aliases[i].name) == 0) return (int)aliases[i].dtype;
  return -1;
}

const char *nn_device_name(nn_device device) { return device == NN_CPU ? "cpu" : "cuda"; }

int nn_device_from_name(const char *name) {
  if (strcmp(name, "cpu") == 0) return NN_CPU;
  if (strncmp(name, "cuda", 4) == 0 && (name[4] == 0 || strcmp(name + 4, ":0") == 0)) return NN_CUDA;
  return -1;
}

/* ---- shapes ---------------------------------------------------------- */
int64_t nn_shape_numel(int ndim, const int64_t *size) {
  int64_t n = 1;
  for (int i = 0; i < ndim; i++) n *= size[i];
  return n;
}

int64_t nn_numel(const nn_tensor *t) { return nn_shape_numel(t->ndim, t->size); }

void *nn_tensor_data(nn_tensor *t) { return nn_data(t); }
void nn_tensor_written(nn_tensor *t) { nn_bump_version(t); }

void nn_contiguous_strides(int ndim, const int64_t *size, int64_t *stride) {
  int64_t s = 1;
  for (int i = ndim - 1; i >= 0; i--) {
    stride[i] = s;
    s *= size[i] > 1 ? size[i] : 1;
  }
}

/* Row-major without gaps: what every op's fast path wants. */
static int dense_geometry(int ndim, const int64_t *size, const int64_t *stride) {
  int64_t s = 1;
  for (int i = ndim - 1; i >= 0; i--) {
    if (size[i] == 1) continue;
    if (stride[i] != s) return 0;
    s *= size[i];
  }
  return 1;
}

int nn_is_contiguous(const nn_tensor *t) { return t->contiguous; }

/* inline: a hint to LTO to inline it on the hot path (CMakeLists.txt, inline-unit-growth) */
inline int nn_same_shape(const nn_tensor *a, const nn_tensor *b) {
  if (a->ndim != b->ndim) return 0;
  for (int i = 0; i < a->ndim; i++)
    if (a->size[i] != b->size[i]) return 0;
  return 1;
}

char *nn_sizes_string(int ndim, const int64_t *size, char *buf, size_t len) {
  size_t used = 0;
  buf[0] = 0;
  if (ndim == 0) snprintf(buf, len, "scalar");
  for (int i = 0; i < ndim && used < len; i++)
    used += (size_t)snprintf(buf + used, len - used, i ? "x%lld" : "%lld", (long long)size[i]);
  return buf;
}

char *nn_shape_string(const nn_tensor *t, char *buf, size_t len) {
  return nn_sizes_string(t->ndim, t->size, buf, len);
}

/* The largest tensor the engine will try to allocate: 2^46 bytes (64 TiB);
   beyond it a request is certainly a mistake, and is refused cleanly. */
#define MAX_BYTES ((int64_t)1 << 46)

int nn_check_shape(const char *op, int ndim, const int64_t *size) {
  if (ndim < 0 || ndim > NN_MAX_DIMS) {
    nn_error_set("%s: %d dimensions requested, at most %d are supported", op, ndim, NN_MAX_DIMS);
    return -1;
  }
  /* The bound is on the product of the sizes with zeros counted as ones,
     which is what the contiguous strides multiply (nn_contiguous_strides):
     a zero elsewhere makes the tensor empty, but not its strides small. */
  int64_t n = 1;
  for (int i = 0; i < ndim; i++) {
    if (size[i] < 0) {
      nn_error_set("%s: size %lld of dimension %d is negative", op, (long long)size[i], i + 1);
      return -1;
    }
    if (size[i] > 1 && n > MAX_BYTES / 8 / size[i]) {
      nn_error_set("%s: a tensor of that shape is too large (its sizes multiply past 2^43, "
                   "sizes 0 counted as 1)", op);
      return -1;
    }
    if (size[i] > 1) n *= size[i];
  }
  return 0;
}

int nn_wrap_dim(const char *op, int dim, int ndim) {
  int n = ndim > 0 ? ndim : 1;
  if (dim < -n || dim >= n) {
    nn_error_set("%s: dimension %d out of range for a tensor of %d dimensions", op,
                 dim >= 0 ? dim + 1 : dim, ndim);
    return -1;
  }
  return dim < 0 ? dim + n : dim;
}

int nn_broadcast_shape(const char *op, const nn_tensor *a, const nn_tensor *b, int *ndim,
                       int64_t *size) {
  int n = a->ndim > b->ndim ? a->ndim : b->ndim;
  for (int i = 0; i < n; i++) {
    int ia = a->ndim - n + i, ib = b->ndim - n + i;
    int64_t sa = ia >= 0 ? a->size[ia] : 1, sb = ib >= 0 ? b->size[ib] : 1;
    if (sa != sb && sa != 1 && sb != 1) {
      char ba[96], bb[96];
      nn_error_set("%s: shapes %s and %s cannot be broadcast (dimension %d: %lld vs %lld)", op,
                   nn_shape_string(a, ba, sizeof ba), nn_shape_string(b, bb, sizeof bb), i + 1,
                   (long long)sa, (long long)sb);
      return -1;
    }
    size[i] = sa == 1 ? sb : sa;
  }
  *ndim = n;
  return 0;
}

/* ---- creation -------------------------------------------------------- */
nn_tensor *nn_tensor_wrap(nn_storage *s, nn_dtype dtype, int ndim, const int64_t *size,
                          const int64_t *stride, int64_t offset) {
  nn_tensor *t = tensor_struct();
  if (!t) return NULL;
  s->refcount++;
  t->storage = s;
  t->dtype = dtype;
  t->device = s->device;
  t->ndim = ndim;
  t->offset = offset;
  for (int i = 0; i < ndim; i++) {
    t->size[i] = size[i];
    t->stride[i] = stride[i];
  }
  t->contiguous = dense_geometry(ndim, size, stride);
  return t;
}

/* inline: a hint to LTO to inline it on the hot path (CMakeLists.txt, inline-unit-growth) */
inline nn_tensor *nn_empty_on(nn_device device, nn_dtype dtype, int ndim, const int64_t *size) {
  if (nn_check_shape("tensor", ndim, size) < 0) return NULL;
  int64_t stride[NN_MAX_DIMS];
  nn_contiguous_strides(ndim, size, stride);
  nn_storage *s = nn_storage_new(device, (size_t)nn_shape_numel(ndim, size) * nn_dtype_size(dtype));
  if (!s) return NULL;
  nn_tensor *t = nn_tensor_wrap(s, dtype, ndim, size, stride, 0);
  nn_storage_release(s);
  return t;
}

nn_tensor *nn_empty(nn_dtype dtype, int ndim, const int64_t *size) {
  return nn_empty_on(NN_CPU, dtype, ndim, size);
}

nn_tensor *nn_empty_like_shape(const nn_tensor *like, nn_dtype dtype, int ndim,
                               const int64_t *size) {
  return nn_empty_on(like->device, dtype, ndim, size);
}

nn_tensor *nn_empty_like(const nn_tensor *like) {
  return nn_empty_on(like->device, like->dtype, like->ndim, like->size);
}

/* a takes t's storage (retained) and geometry. autograd makes an alias for
   every computed input it records: whole-array copies, not a loop over the
   dims. */
static void share_storage(nn_tensor *a, const nn_tensor *t) {
  t->storage->refcount++;
  a->storage = t->storage;
  a->dtype = t->dtype;
  a->device = t->device;
  a->ndim = t->ndim;
  a->offset = t->offset;
  memcpy(a->size, t->size, sizeof a->size);
  memcpy(a->stride, t->stride, sizeof a->stride);
  a->contiguous = t->contiguous;
}

nn_tensor *nn_alias(const nn_tensor *t) {
  nn_tensor *a = tensor_struct();
  if (!a) return NULL;
  share_storage(a, t);
  return a;
}

int nn_set_data(nn_tensor *t, nn_tensor *src) {
  if (t->grad_fn || t->base) {
    nn_error_set("set_data: only a leaf tensor that is not a view can take new data");
    return -1;
  }
  if (t->requires_grad && !nn_dtype_is_floating(src->dtype)) {
    nn_error_set("set_data: a tensor that requires grad must stay floating point, not %s",
                 nn_dtype_name(src->dtype));
    return -1;
  }
  nn_storage *old = t->storage;
  share_storage(t, src);
  nn_storage_release(old);
  return 0;
}

nn_tensor *nn_full_like_shape(const nn_tensor *like, nn_dtype dtype, int ndim, const int64_t *size,
                              double value) {
  nn_tensor *t = nn_empty_on(like->device, dtype, ndim, size);
  if (t && nn_fill_(t, value) < 0) {
    nn_release(t);
    return NULL;
  }
  return t;
}

nn_tensor *nn_full(nn_dtype dtype, int ndim, const int64_t *size, double value) {
  nn_tensor *t = nn_empty(dtype, ndim, size);
  if (t) nn_fill_(t, value);
  return t;
}
nn_tensor *nn_zeros(nn_dtype dtype, int ndim, const int64_t *size) {
  return nn_full(dtype, ndim, size, 0);
}
nn_tensor *nn_ones(nn_dtype dtype, int ndim, const int64_t *size) {
  return nn_full(dtype, ndim, size, 1);
}

/* A new 1-D tensor of n values: nn_ramp_value (math/fill.h). */
static nn_tensor *ramp(const char *op, nn_dtype dtype, int64_t n, int64_t half, double start,
                       double step, double end) {
  nn_tensor *t = nn_empty(dtype, 1, &n);
  if (!t) return NULL;
  const nn_backend *be = nn_dispatch(op, offsetof(nn_backend, ramp), t, NULL, NULL);
  if (!be || be->ramp(dtype, nn_data(t), n, half, start, step, end) < 0) {
    nn_release(t);
    return NULL;
  }
  return t;
}

nn_tensor *nn_arange(double start, double end, double step, nn_dtype dtype) {
  if (step == 0 || isnan(step) || isnan(start) || isnan(end) || isinf(start) || isinf(end)) {
    nn_error_set("arange: step must be nonzero and the bounds finite");
    return NULL;
  }
  if ((end - start) / step < 0) {
    nn_error_set("arange: the step %g goes away from end (start %g, end %g)", step, start, end);
    return NULL;
  }
  double count = ceil((end - start) / step);
  if (count > 1e15) {
    nn_error_set("arange: %g elements is too many", count);
    return NULL;
  }
  int64_t n = (int64_t)count;
  return ramp("arange", dtype, n, n, start, step, start);
}

nn_tensor *nn_linspace(double start, double end, int64_t steps, nn_dtype dtype) {
  if (steps < 0) {
    nn_error_set("linspace: number of steps must be non-negative, got %lld", (long long)steps);
    return NULL;
  }
  double step = steps > 1 ? (end - start) / (double)(steps - 1) : 0;
  return ramp("linspace", dtype, steps, steps == 1 ? 1 : steps / 2, start, step, end);
}

nn_tensor *nn_eye(int64_t n, int64_t m, nn_dtype dtype) {
  int64_t size[2] = {n, m < 0 ? n : m};
  nn_tensor *t = nn_zeros(dtype, 2, size);
  if (!t) return NULL;
  /* the diagonal, as a view with a stride of one row and one column */
  int64_t diagonal = size[0] < size[1] ? size[0] : size[1], stride = size[1] + 1;
  nn_tensor *d = nn_tensor_wrap(t->storage, dtype, 1, &diagonal, &stride, 0);
  int status = d ? nn_fill_(d, 1) : -1;
  nn_release(d);
  if (status < 0) {
    nn_release(t);
    return NULL;
  }
  return t;
}

/* ---- element access -------------------------------------------------- */
static int64_t flat_to_offset(const nn_tensor *t, int64_t i) {
  int64_t off = t->offset;
  for (int d = t->ndim - 1; d >= 0; d--) {
    int64_t s = t->size[d];
    off += (i % s) * t->stride[d];
    i /= s;
  }
  return off;
}

/* Element `off` (in elements, from the storage's start) of t, wherever t
   lies; a host copy of it when t is on a device. */
static double load_element(const nn_tensor *t, int64_t off) {
  if (nn_capture_active) nn_capture_host_read("reading an element (t[i], totable)");
  if (t->device == NN_CPU) return nn_load(t->dtype, t->storage->data, off);
  const nn_backend *be = nn_backend_for(t->device);
  double bytes[1] = {0};
  size_t es = nn_element_size(t->dtype);
  if (!be || !be->to_host ||
      be->to_host(bytes, (const char *)t->storage->data + (size_t)off * es, es) < 0)
    return NAN;
  return nn_load(t->dtype, bytes, 0);
}

static void store_element(nn_tensor *t, int64_t off, double v) {
  if (nn_capture_active) nn_capture_host_write(t, "writing an element from Lua (t[i] = v)");
  if (t->device == NN_CPU) {
    nn_store(t->dtype, t->storage->data, off, v);
    return;
  }
  const nn_backend *be = nn_backend_for(t->device);
  double bytes[1];
  size_t es = nn_element_size(t->dtype);
  nn_store(t->dtype, bytes, 0, v);
  if (be && be->from_host) be->from_host((char *)t->storage->data + (size_t)off * es, bytes, es);
}

double nn_get_flat(const nn_tensor *t, int64_t i) { return load_element(t, flat_to_offset(t, i)); }

void nn_set_flat(nn_tensor *t, int64_t i, double v) { store_element(t, flat_to_offset(t, i), v); }

double nn_get(const nn_tensor *t, const int64_t *index) {
  int64_t off = t->offset;
  for (int d = 0; d < t->ndim; d++) off += index[d] * t->stride[d];
  return load_element(t, off);
}

int nn_item(const nn_tensor *t, double *out) {
  if (nn_numel(t) != 1) {
    char b[96];
    nn_error_set("item: only a one-element tensor has a single value, this one is %s",
                 nn_shape_string(t, b, sizeof b));
    return -1;
  }
  if (nn_capture_active) nn_capture_host_read("item()");
  if (t->device == NN_CPU) {
    *out = nn_load(t->dtype, t->storage->data, t->offset);
    return 0;
  }
  const nn_backend *be = nn_dispatch("item", offsetof(nn_backend, to_host), t, NULL, NULL);
  double bytes[1];
  size_t es = nn_element_size(t->dtype);
  if (!be || be->to_host(bytes, nn_data(t), es) < 0) return -1;
  *out = nn_load(t->dtype, bytes, 0);
  return 0;
}

/* ---- copies and fills ------------------------------------------------ */
/* src as a contiguous tensor on its own device: itself, or a copy. */
static nn_tensor *packed_copy(const nn_tensor *src) {
  if (nn_is_contiguous(src)) return nn_alias(src);
  nn_tensor *p = nn_empty_like(src);
  if (p && nn_copy_(p, src) < 0) {
    nn_release(p);
    return NULL;
  }
  return p;
}

/* dst = src across devices: src made contiguous on its device, its bytes
   moved, then spread into dst by dst's own copy kernel (strides,
   broadcasting, dtype) unless they can land in dst directly. The shapes
   are checked already. */
static int copy_across(nn_tensor *dst, const nn_tensor *src) {
  if (nn_capture_active) nn_capture_host_read("a copy between devices");
  const nn_backend *from_be = nn_device_check("copy", src->device);
  const nn_backend *to_be = nn_device_check("copy", dst->device);
  if (!from_be || !to_be) return -1;
  nn_tensor *packed = packed_copy(src), *landing = NULL;
  if (!packed) return -1;
  int direct = nn_is_contiguous(dst) && dst->dtype == src->dtype && nn_same_shape(dst, src);
  landing = direct ? nn_alias(dst) : nn_empty_on(dst->device, src->dtype, src->ndim, src->size);
  int status = -1;
  if (!landing) goto done;
  size_t nbytes = (size_t)nn_numel(src) * nn_element_size(src->dtype);
  void *to = nn_data(landing);
  const void *from = nn_data(packed);
  if (src->device == NN_CPU) {
    status = to_be->from_host(to, from, nbytes);
  } else if (dst->device == NN_CPU) {
    status = from_be->to_host(to, from, nbytes);
  } else { /* between two devices: through the host */
    void *host = malloc(nbytes ? nbytes : 1);
    if (!host) {
      nn_error_set("copy: out of memory");
      goto done;
    }
    status = from_be->to_host(host, from, nbytes);
    if (status == 0) status = to_be->from_host(to, host, nbytes);
    free(host);
  }
  if (status == 0 && !direct) status = nn_copy_(dst, landing);
  else if (status == 0) nn_bump_version(dst);
done:
  nn_release(packed);
  nn_release(landing);
  return status;
}

int nn_copy_(nn_tensor *dst, const nn_tensor *src) {
  /* across devices: the copy is dst's device's to finish (copy_across) */
  const nn_backend *be = nn_dispatch("copy", offsetof(nn_backend, copy), dst, NULL, NULL);
  if (!be) return -1;
  int ndim;
  int64_t size[NN_MAX_DIMS];
  if (nn_broadcast_shape("copy", dst, src, &ndim, size) < 0) return -1;
  if (!(ndim == dst->ndim && nn_shape_numel(ndim, size) == nn_numel(dst))) {
    char a[96], b[96];
    nn_error_set("copy: a tensor of shape %s cannot be written into one of shape %s",
                 nn_shape_string(src, b, sizeof b), nn_shape_string(dst, a, sizeof a));
    return -1;
  }
  if (dst->device != src->device) return copy_across(dst, src);
  if (nn_check_overlap("copy_", dst, src) < 0) return -1;
  nn_iter it;
  nn_tensor *ts[2] = {dst, (nn_tensor *)src};
  nn_iter_init(&it, 2, ts, dst->ndim, dst->size);
  if (be->copy(&it) < 0) return -1;
  nn_bump_version(dst);
  return 0;
}

int nn_fill_(nn_tensor *t, double value) {
  /* A few float32 elements on the CPU (backward's seed of a loss, a small
     zero): the kernel's value, (float)value, stored here without the
     dispatch and the iterator, which cost ten times the stores */
  if (!nn_capture_active && t->device == NN_CPU && t->dtype == NN_FLOAT32 && t->contiguous) {
    int64_t n = nn_numel(t);
    if (n <= 64) {
      float *d = nn_data(t), v = (float)value;
      for (int64_t i = 0; i < n; i++) d[i] = v;
      nn_bump_version(t);
      return 0;
    }
  }
  const nn_backend *be = nn_dispatch("fill", offsetof(nn_backend, fill), t, NULL, NULL);
  if (!be) return -1;
  nn_iter it;
  nn_iter_init(&it, 1, &t, t->ndim, t->size);
  if (be->fill(&it, value) < 0) return -1;
  nn_bump_version(t);
  return 0;
}

int nn_add_into(const char *op, nn_tensor *dst, nn_tensor *src) {
  const nn_backend *be = nn_dispatch(op, offsetof(nn_backend, add_into), dst, src, NULL);
  if (!be) return -1;
  nn_iter it;
  nn_tensor *ts[2] = {dst, src};
  nn_iter_init(&it, 2, ts, src->ndim, src->size);
  if (be->add_into(&it) < 0) return -1;
  nn_bump_version(dst);
  return 0;
}

/* tensor.c: the tensor's life (creation, reference counts, element access,
 * copies) and the strided iterator every elementwise kernel runs on. */
#include "backend.h"

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
  t->grad = free_tensors;
  free_tensors = t;
}

/* ---- dtypes and devices --------------------------------------------- */
static const char *const dtype_names[NN_DTYPE_COUNT] = {"float32", "float64", "int64", "bool"};
static const size_t dtype_sizes[NN_DTYPE_COUNT] = {4, 8, 8, 1};

const char *nn_dtype_name(nn_dtype dtype) { return dtype_names[dtype]; }
size_t nn_dtype_size(nn_dtype dtype) { return dtype_sizes[dtype]; }
int nn_dtype_is_floating(nn_dtype dtype) { return dtype == NN_FLOAT32 || dtype == NN_FLOAT64; }

int nn_dtype_from_name(const char *name) {
  static const struct { const char *name; nn_dtype dtype; } aliases[] = {
      {"float32", NN_FLOAT32}, {"float", NN_FLOAT32}, {"float64", NN_FLOAT64},
      {"double", NN_FLOAT64},  {"int64", NN_INT64},   {"long", NN_INT64},
      {"bool", NN_BOOL}};
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

int nn_check_cpu(const char *op, const nn_tensor *t) {
  if (t->device == NN_CPU) return 0;
  nn_error_set("%s: not implemented for %s tensors yet", op, nn_device_name(t->device));
  return -1;
}

/* ---- shapes ---------------------------------------------------------- */
int64_t nn_shape_numel(int ndim, const int64_t *size) {
  int64_t n = 1;
  for (int i = 0; i < ndim; i++) n *= size[i];
  return n;
}

int64_t nn_numel(const nn_tensor *t) { return nn_shape_numel(t->ndim, t->size); }

void nn_contiguous_strides(int ndim, const int64_t *size, int64_t *stride) {
  int64_t s = 1;
  for (int i = ndim - 1; i >= 0; i--) {
    stride[i] = s;
    s *= size[i] > 1 ? size[i] : 1;
  }
}

int nn_is_contiguous(const nn_tensor *t) {
  int64_t s = 1;
  for (int i = t->ndim - 1; i >= 0; i--) {
    if (t->size[i] == 1) continue;
    if (t->stride[i] != s) return 0;
    s *= t->size[i];
  }
  return 1;
}

int nn_same_shape(const nn_tensor *a, const nn_tensor *b) {
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
  return t;
}

nn_tensor *nn_empty_on(nn_device device, nn_dtype dtype, int ndim, const int64_t *size) {
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
  nn_tensor *t = nn_empty(dtype, 1, &n);
  if (!t) return NULL;
  for (int64_t i = 0; i < n; i++) nn_store(dtype, t->storage->data, i, start + (double)i * step);
  return t;
}

nn_tensor *nn_linspace(double start, double end, int64_t steps, nn_dtype dtype) {
  if (steps < 0) {
    nn_error_set("linspace: number of steps must be non-negative, got %lld", (long long)steps);
    return NULL;
  }
  nn_tensor *t = nn_empty(dtype, 1, &steps);
  if (!t) return NULL;
  if (steps == 1) {
    nn_store(dtype, t->storage->data, 0, start);
    return t;
  }
  double step = steps > 1 ? (end - start) / (double)(steps - 1) : 0;
  /* PyTorch fills the first half from start and the second from end, so
     that both ends are exact. */
  int64_t half = steps / 2;
  for (int64_t i = 0; i < steps; i++) {
    double v = i < half ? start + step * (double)i : end - step * (double)(steps - 1 - i);
    nn_store(dtype, t->storage->data, i, v);
  }
  return t;
}

nn_tensor *nn_eye(int64_t n, int64_t m, nn_dtype dtype) {
  int64_t size[2] = {n, m < 0 ? n : m};
  nn_tensor *t = nn_zeros(dtype, 2, size);
  if (!t) return NULL;
  for (int64_t i = 0; i < size[0] && i < size[1]; i++)
    nn_store(dtype, t->storage->data, i * size[1] + i, 1);
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

double nn_get_flat(const nn_tensor *t, int64_t i) {
  return nn_load(t->dtype, t->storage->data, flat_to_offset(t, i));
}

void nn_set_flat(nn_tensor *t, int64_t i, double v) {
  nn_store(t->dtype, t->storage->data, flat_to_offset(t, i), v);
}

double nn_get(const nn_tensor *t, const int64_t *index) {
  int64_t off = t->offset;
  for (int d = 0; d < t->ndim; d++) off += index[d] * t->stride[d];
  return nn_load(t->dtype, t->storage->data, off);
}

int nn_item(const nn_tensor *t, double *out) {
  if (nn_numel(t) != 1) {
    char b[96];
    nn_error_set("item: only a one-element tensor has a single value, this one is %s",
                 nn_shape_string(t, b, sizeof b));
    return -1;
  }
  if (t->device == NN_CPU) {
    *out = nn_load(t->dtype, t->storage->data, t->offset);
    return 0;
  }
  /* waits for the kernels that compute it */
  const nn_backend *be = nn_device_check("item", t->device);
  unsigned char value[sizeof(double)];
  if (!be || be->to_host(value, nn_data(t), nn_element_size(t->dtype)) < 0) return -1;
  *out = nn_load(t->dtype, value, 0);
  return 0;
}

/* ---- the iterator ---------------------------------------------------- */
void nn_iter_init(nn_iter *it, int n, nn_tensor *const *ts, int ndim, const int64_t *size) {
  it->n = n;
  for (int k = 0; k < n; k++) {
    const nn_tensor *t = ts[k];
    it->data[k] = nn_data(t);
    it->dtype[k] = t->dtype;
  }
  /* Drop size-1 dims, then merge neighbours that are contiguous for every
     operand, so the inner loop runs as long as possible. */
  int m = 0;
  for (int i = 0; i < ndim; i++) {
    if (size[i] == 1) continue;
    it->size[m] = size[i];
    for (int k = 0; k < n; k++) {
      const nn_tensor *t = ts[k];
      int j = t->ndim - ndim + i;
      it->stride[k][m] = (j >= 0 && t->size[j] != 1) ? t->stride[j] : 0;
    }
    if (m > 0) {
      int mergeable = 1;
      for (int k = 0; k < n; k++)
        if (it->stride[k][m - 1] != it->stride[k][m] * it->size[m]) mergeable = 0;
      if (mergeable) {
        it->size[m - 1] *= it->size[m];
        for (int k = 0; k < n; k++) it->stride[k][m - 1] = it->stride[k][m];
        continue;
      }
    }
    m++;
  }
  if (m == 0) {
    it->size[0] = nn_shape_numel(ndim, size) ? 1 : 0;
    for (int k = 0; k < n; k++) it->stride[k][0] = 0;
    m = 1;
  }
  it->ndim = m;
  for (int i = 0; i < ndim; i++)
    if (size[i] == 0) it->size[0] = 0;
}

void nn_iter_run(nn_iter *it, nn_inner_fn fn, void *ctx) {
  int nd = it->ndim, last = nd - 1;
  int64_t inner = it->size[last];
  if (inner == 0) return;
  for (int i = 0; i < nd; i++)
    if (it->size[i] == 0) return;
  int64_t stride[3];
  size_t esize[3];
  for (int k = 0; k < it->n; k++) {
    stride[k] = it->stride[k][last];
    esize[k] = nn_dtype_size(it->dtype[k]);
  }
  if (nd == 1) {
    fn(ctx, inner, it->data, stride);
    return;
  }
  int64_t counter[NN_MAX_DIMS] = {0};
  char *ptr[3];
  for (;;) {
    for (int k = 0; k < it->n; k++) {
      int64_t off = 0;
      for (int d = 0; d < last; d++) off += counter[d] * it->stride[k][d];
      ptr[k] = it->data[k] + off * (int64_t)esize[k];
    }
    fn(ctx, inner, ptr, stride);
    int d = last - 1;
    while (d >= 0 && ++counter[d] == it->size[d]) counter[d--] = 0;
    if (d < 0) break;
  }
}

/* ---- copies ---------------------------------------------------------- */
struct copy_ctx { nn_dtype dst, src; };

static void copy_inner(void *ctx, int64_t n, char **data, const int64_t *stride) {
  const struct copy_ctx *c = ctx;
  if (c->dst == NN_FLOAT32 && c->src == NN_FLOAT32) {
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
    for (int64_t i = 0; i < n; i++)
      nn_store(c->dst, data[0], i * stride[0], nn_load(c->src, data[1], i * stride[1]));
  }
}

int nn_cpu_copy(nn_iter *it) {
  struct copy_ctx c = {it->dtype[0], it->dtype[1]};
  nn_iter_run(it, copy_inner, &c);
  return 0;
}

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
  const nn_backend *be = nn_device_check("copy", dst->device);
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

struct fill_ctx { nn_dtype dtype; double v; };

static void fill_inner(void *ctx, int64_t n, char **data, const int64_t *stride) {
  const struct fill_ctx *c = ctx;
  if (c->dtype == NN_FLOAT32) {
    float *d = (float *)data[0], v = (float)c->v;
    for (int64_t i = 0; i < n; i++) d[i * stride[0]] = v;
  } else {
    for (int64_t i = 0; i < n; i++) nn_store(c->dtype, data[0], i * stride[0], c->v);
  }
}

int nn_cpu_fill(nn_iter *it, double value) {
  struct fill_ctx c = {it->dtype[0], value};
  nn_iter_run(it, fill_inner, &c);
  return 0;
}

int nn_fill_(nn_tensor *t, double value) {
  if (t->device == NN_CPU && value == 0 && !signbit(value) && nn_is_contiguous(t)) {
    /* zero_grad's case, without building an iterator */
    memset(nn_data(t), 0, (size_t)nn_numel(t) * nn_element_size(t->dtype));
    nn_bump_version(t);
    return 0;
  }
  const nn_backend *be = nn_device_check("fill", t->device);
  if (!be) return -1;
  nn_iter it;
  nn_iter_init(&it, 1, &t, t->ndim, t->size);
  if (be->fill(&it, value) < 0) return -1;
  nn_bump_version(t);
  return 0;
}

/* rng.c: the fronts of the random fills and the generator's seed and
 * state. The CPU's generator is PyTorch's, draw for draw (cpu/random.c
 * says how, math/random.h has the transforms): nn.manual_seed(777) starts
 * a script from the very weights PyTorch's would. Another device's
 * backend has a generator of its own, seeded by the same calls. */
#include "internal.h"

#include <stddef.h>

/* ---- checks shared by uniform_ and normal_ ------------------------------ */
static const nn_backend *check_fill_target(const char *op, size_t kernel, nn_tensor *t) {
  const nn_backend *be = nn_dispatch(op, kernel, t, NULL, NULL);
  if (!be) return NULL;
  if (!nn_dtype_is_floating(t->dtype)) {
    nn_error_set("%s: random values need a floating point tensor, this one is %s", op,
                 nn_dtype_name(t->dtype));
    return NULL;
  }
  return be;
}

/* t as it lies in memory, for the fills that follow its memory order. */
static nn_strided strided_of(const nn_tensor *t) {
  nn_strided s;
  s.dtype = t->dtype;
  s.ndim = t->ndim;
  for (int i = 0; i < t->ndim; i++) s.size[i] = t->size[i], s.stride[i] = t->stride[i];
  s.data = nn_data(t);
  return s;
}

/* ---- seeds and state ------------------------------------------------------ */
/* CUDA's seed, kept here as well as in its backend, so that seeding needs
   no library loaded (torch.cuda.manual_seed before any CUDA work, or on a
   machine without a GPU); the backend starts from it when it loads
   (device.c). Until seeded it is the CPU's, as in PyTorch. */
static uint64_t cuda_seed;
static int cuda_seeded;

void nn_cuda_manual_seed(uint64_t seed) {
  if (nn_capture_active) nn_capture_refuse("capture: manual_seed inside the step (a replay would not seed again)");
  cuda_seed = seed;
  cuda_seeded = 1;
  const nn_backend *be = nn_backend_loaded(NN_CUDA);
  if (be && be->manual_seed) be->manual_seed(seed);
}

uint64_t nn_cuda_initial_seed(void) {
  const nn_backend *be = nn_backend_loaded(NN_CUDA);
  if (be && be->initial_seed) return be->initial_seed();
  return cuda_seeded ? cuda_seed : nn_initial_seed();
}

void nn_manual_seed(uint64_t seed) {
  if (nn_capture_active) nn_capture_refuse("capture: manual_seed inside the step (a replay would not seed again)");
  cuda_seed = seed;
  cuda_seeded = 1;
  for (int d = 0; d < NN_DEVICE_COUNT; d++) {
    const nn_backend *be = nn_backend_loaded((nn_device)d);
    if (be && be->manual_seed) be->manual_seed(seed);
  }
}

uint64_t nn_initial_seed(void) { return nn_cpu_backend.initial_seed(); }

/* The CPU generator's whole state (PyTorch's get_rng_state is the CPU's). */
size_t nn_rng_state_size(void) { return nn_cpu_backend.rng_state_size(); }
void nn_rng_get_state(void *buf) { nn_cpu_backend.rng_get_state(buf); }
int nn_rng_set_state(const void *buf, size_t len) {
  if (nn_capture_active) nn_capture_refuse("capture: set_rng_state inside the step (a replay would not set it again)");
  return nn_cpu_backend.rng_set_state(buf, len);
}

/* The half types draw float32 values (the kernels are written for float32
   and float64) and round them into place. */
static int fill_half(nn_tensor *t, int normal, double a, double b) {
  nn_tensor *f = nn_empty_like_shape(t, NN_FLOAT32, t->ndim, t->size);
  int status = f ? (normal ? nn_normal_(f, a, b) : nn_uniform_(f, a, b)) : -1;
  if (status == 0) status = nn_copy_(t, f);
  nn_release(f);
  return status;
}

int nn_uniform_(nn_tensor *t, double from, double to) {
  if (nn_half_dtype(t->dtype)) return fill_half(t, 0, from, to);
  const nn_backend *be = check_fill_target("uniform_", offsetof(nn_backend, uniform), t);
  if (!be) return -1;
  if (!(from <= to)) {
    nn_error_set("uniform_: expects a range [from, to) with from <= to, got from=%g, to=%g", from,
                 to);
    return -1;
  }
  /* PyTorch casts the bounds to the tensor's type before anything else. */
  int fits = isfinite(from) && isfinite(to) && isfinite(to - from);
  if (t->dtype == NN_FLOAT32) {
    float from_f = (float)from, to_f = (float)to;
    fits = isfinite(from_f) && isfinite(to_f) && isfinite(to_f - from_f);
  }
  if (!fits) {
    nn_error_set("uniform_: the range [%g, %g) does not fit in %s", from, to,
                 nn_dtype_name(t->dtype));
    return -1;
  }
  nn_inplace ip;
  int record = nn_inplace_begin(&ip, "uniform_", t, NULL, 0);
  if (record < 0) return -1;
  nn_strided st = strided_of(t);
  if (be->uniform(&st, from, to) < 0) {
    if (record) nn_inplace_cancel(&ip);
    return -1;
  }
  nn_bump_version(t);
  return record ? nn_inplace_commit_written(&ip, "UniformBackward0") : 0;
}

int nn_normal_(nn_tensor *t, double mean, double std) {
  if (nn_half_dtype(t->dtype)) return fill_half(t, 1, mean, std);
  const nn_backend *be = check_fill_target("normal_", offsetof(nn_backend, normal), t);
  if (!be) return -1;
  if (!(std >= 0) || !isfinite(mean) || !isfinite(std)) {
    nn_error_set("normal_: expects a finite mean and std >= 0, got mean=%g, std=%g", mean, std);
    return -1;
  }
  nn_inplace ip;
  int record = nn_inplace_begin(&ip, "normal_", t, NULL, 0);
  if (record < 0) return -1;
  nn_strided st = strided_of(t);
  if (be->normal(&st, mean, std) < 0) {
    if (record) nn_inplace_cancel(&ip);
    return -1;
  }
  nn_bump_version(t);
  return record ? nn_inplace_commit_written(&ip, "NormalBackward0") : 0;
}

/* rand and randn check the dtype themselves, so that the message names the
   function the user called. */
static nn_tensor *random_tensor(const char *op, nn_dtype dtype, int ndim, const int64_t *size,
                                int normal) {
  if (dtype < 0 || dtype >= NN_DTYPE_COUNT || !nn_dtype_is_floating(dtype)) {
    nn_error_set("%s: random values need a floating point type, not %s", op,
                 dtype >= 0 && dtype < NN_DTYPE_COUNT ? nn_dtype_name(dtype) : "an unknown type");
    return NULL;
  }
  nn_tensor *t = nn_empty(dtype, ndim, size);
  if (!t) return NULL;
  int status = normal ? nn_normal_(t, 0.0, 1.0) : nn_uniform_(t, 0.0, 1.0);
  if (status < 0) {
    nn_release(t);
    return NULL;
  }
  return t;
}

nn_tensor *nn_rand(nn_dtype dtype, int ndim, const int64_t *size) {
  return random_tensor("rand", dtype, ndim, size, 0);
}

nn_tensor *nn_randn(nn_dtype dtype, int ndim, const int64_t *size) {
  return random_tensor("randn", dtype, ndim, size, 1);
}

/* ---- integers (issue 12) ---------------------------------------------------- */
nn_tensor *nn_randint(int64_t low, int64_t high, nn_dtype dtype, int ndim, const int64_t *size) {
  if (high <= low) {
    nn_error_set("randint: expects low < high, got low=%lld, high=%lld", (long long)low,
                 (long long)high);
    return NULL;
  }
  if (dtype == NN_BOOL && (low < 0 || high > 2)) {
    nn_error_set("randint: [%lld, %lld) does not fit in bool", (long long)low, (long long)high);
    return NULL;
  }
  nn_tensor *t = nn_empty(dtype, ndim, size);
  if (!t) return NULL;
  nn_strided st = strided_of(t);
  if (nn_kernels_of(NN_CPU)->random_int(&st, (uint64_t)high - (uint64_t)low, low) < 0) {
    nn_release(t);
    return NULL;
  }
  return t;
}

nn_tensor *nn_randperm(int64_t n, int64_t first) {
  if (n < 0) {
    nn_error_set("randperm: n must be non-negative, got %lld", (long long)n);
    return NULL;
  }
  nn_tensor *t = nn_empty(NN_INT64, 1, &n);
  if (t && nn_kernels_of(NN_CPU)->randperm(n, first, nn_data(t)) < 0) {
    nn_release(t);
    return NULL;
  }
  return t;
}

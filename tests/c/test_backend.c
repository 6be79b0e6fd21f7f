/* test_backend.c: the backend table (engine/src/backend.h).
 *
 *  - nn_backend_entries names every entry of the table once, and the CPU
 *    table fills every one: a new kernel group that the CPU forgets, or
 *    that the list forgets, fails here.
 *  - Without a CUDA backend (this build, or a machine without one), cuda
 *    tensors cannot be made and the message says why.
 *  - With a backend that has memory but no kernels (a stand-in for one
 *    that lacks some), every op reports "<op>: not implemented for cuda",
 *    an op mixing devices names both, and nothing runs on the wrong device.
 *  - Philox4x32-10 (math/random.h) gives the published known answers. */
#include "check.h"
#include "internal.h"
#include "math/random.h"

#include <stddef.h>

typedef void (*any_entry)(void);

static void test_entries_cover_the_table(void) {
  size_t first = offsetof(nn_backend, alloc), slots = (sizeof(nn_backend) - first) / sizeof(any_entry);
  CHECKF(first + slots * sizeof(any_entry) == sizeof(nn_backend),
         "the table holds function pointers only after its name");
  CHECKF(nn_backend_entry_count == slots, "nn_backend_entries lists %zu entries, the table has %zu",
         nn_backend_entry_count, slots);
  for (size_t k = 0; k < slots; k++) {
    size_t offset = first + k * sizeof(any_entry), named = 0;
    for (size_t e = 0; e < nn_backend_entry_count; e++) named += nn_backend_entries[e].offset == offset;
    CHECKF(named == 1, "slot %zu of the table is named %zu times in nn_backend_entries", k, named);
  }
}

static void test_cpu_fills_every_entry(void) {
  CHECK(strcmp(nn_cpu_backend.name, "cpu") == 0);
  for (size_t e = 0; e < nn_backend_entry_count; e++) {
    any_entry f;
    memcpy(&f, (const char *)&nn_cpu_backend + nn_backend_entries[e].offset, sizeof f);
    CHECKF(f != NULL, "the CPU backend leaves %s empty", nn_backend_entries[e].name);
  }
  CHECK(nn_backend_for(NN_CPU) == &nn_cpu_backend);
}

/* The CPU has no collectives of its own (nn.distributed sends host memory
   over MPI): asking names that, and nothing is started. */
static void test_cpu_has_no_collectives(void) {
  char why[256];
  CHECK(nn_collective_available(NN_CPU, why, sizeof why) == 0);
  CHECKF(strstr(why, "host memory goes over MPI") != NULL, "reason: %s", why);
  void *handle = NULL;
  float x = 1;
  nn_collective_args a = {NN_COLLECTIVE_ALL_REDUCE, NN_COLLECTIVE_SUM, 0, NN_FLOAT32, 1, &x, &x};
  CHECK(nn_collective_start(NN_CPU, &a, &handle) == -1 && handle == NULL);
  CHECKF(strstr(nn_error(), "collective: the CPU has no collectives") != NULL, "error: %s", nn_error());
  unsigned char id[NN_COLLECTIVE_ID_BYTES];
  CHECK(nn_collective_id(NN_CPU, id) == -1 && nn_collective_join(NN_CPU, id, 0, 1) == -1);
  nn_collective_abort(NN_CPU); /* nothing to abort: harmless */
  /* without a CUDA backend, the reason is the device's */
  CHECK(nn_collective_available(NN_CUDA, why, sizeof why) == 0);
  CHECKF(strcmp(why, nn_backend_unavailable(NN_CUDA)) == 0, "reason: %s", why);
}

static void test_without_cuda(void) {
  /* no GPU here: a CUDA build finds its library and it says why it cannot
     run; a build without CUDA says it has none */
  CHECK(nn_backend_for(NN_CUDA) == NULL);
  const char *why = nn_backend_unavailable(NN_CUDA);
  const char *built = getenv("NN_CUDA_BUILT");
  if (!built || strcmp(built, "ON") != 0)
    CHECKF(strstr(why, "no CUDA backend") != NULL, "reason: %s", why);
  CHECK(nn_storage_new(NN_CUDA, 64) == NULL && strncmp(nn_error(), "allocate: ", 10) == 0 &&
        strstr(nn_error(), why) != NULL);
  nn_tensor *t = OK(nn_ones(NN_FLOAT32, 1, (int64_t[]){3}));
  CHECK_FAILS(nn_to_device(t, NN_CUDA), why);
  nn_release(t);
}

/* ---- a device with memory and no kernels ------------------------------- */
static void *host_alloc(size_t nbytes) { return calloc(1, nbytes ? nbytes : 1); }
static void host_free(void *data, size_t nbytes) {
  (void)nbytes;
  free(data);
}
static int host_copy(void *dst, const void *src, size_t nbytes) {
  memcpy(dst, src, nbytes);
  return 0;
}

static const nn_backend memory_only = {
    .name = "cuda", .alloc = host_alloc, .free = host_free, .to_host = host_copy,
    .from_host = host_copy};

/* A tensor on the stand-in device, holding value in every element. */
static nn_tensor *on_device(nn_dtype dtype, int ndim, const int64_t *size, double value) {
  int64_t stride[NN_MAX_DIMS];
  nn_contiguous_strides(ndim, size, stride);
  int64_t n = nn_shape_numel(ndim, size);
  nn_storage *s = nn_storage_new(NN_CUDA, (size_t)n * nn_dtype_size(dtype));
  if (!s) return NULL;
  nn_tensor *t = nn_tensor_wrap(s, dtype, ndim, size, stride, 0);
  nn_storage_release(s);
  for (int64_t i = 0; t && i < n; i++) nn_store(dtype, s->data, i, value);
  return t;
}

static void test_missing_kernels(void) {
  nn_backend_set(NN_CUDA, &memory_only, NULL);
  CHECK(nn_backend_for(NN_CUDA) == &memory_only);
  int64_t size[2] = {2, 3}, classes = 3, batch = 2;
  nn_tensor *x = OK(on_device(NN_FLOAT32, 2, size, 0.5));
  nn_tensor *y = OK(on_device(NN_FLOAT32, 2, size, 0.25));
  nn_tensor *labels = OK(on_device(NN_INT64, 1, &batch, 1));
  nn_tensor *cpu = OK(nn_ones(NN_FLOAT32, 2, size));
  if (!x || !y || !labels || !cpu) return;
  CHECK(strcmp(nn_device_name(x->device), "cuda") == 0);

  /* element access goes through the device's copies */
  double v = 0;
  CHECK(nn_get_flat(x, 4) == 0.5);
  nn_set_flat(x, 5, 2);
  CHECK(nn_get_flat(x, 5) == 2);
  nn_tensor *one = OK(on_device(NN_FLOAT64, 0, NULL, 7));
  CHECK(one && nn_item(one, &v) == 0 && v == 7);
  nn_release(one);

  /* each op names itself and the device */
  CHECK_FAILS(nn_unary(NN_EXP, x), "exp: not implemented for cuda");
  CHECK_FAILS(nn_binary(NN_ADD, x, y), "add: not implemented for cuda");
  CHECK_FAILS(nn_binary_scalar(NN_MUL, x, 2, 0), "mul: not implemented for cuda");
  CHECK_STATUS_FAILS(nn_unary_(NN_NEG, x), "neg_: not implemented for cuda");
  CHECK_FAILS(nn_clamp(x, 0, 1), "clamp: not implemented for cuda");
  CHECK_FAILS(nn_activation(NN_ACT_GELU, x, 0, 0), "gelu: not implemented for cuda");
  CHECK_FAILS(nn_softmax(x, 1, 0), "softmax: not implemented for cuda");
  CHECK_FAILS(nn_sum(x, NN_ALL_DIMS, 0), "sum: not implemented for cuda");
  CHECK_FAILS(nn_max(x, 1, 0, NULL), "max: not implemented for cuda");
  CHECK_FAILS(nn_norm(x, 2, 0, 0), "norm: not implemented for cuda");
  nn_tensor *yt = OK(nn_t(y));
  CHECK_FAILS(nn_matmul(x, yt), "matmul: not implemented for cuda");
  nn_release(yt);
  CHECK_FAILS(nn_clone(x), "clone: not implemented for cuda");
  CHECK_FAILS(nn_to_dtype(x, NN_FLOAT64), "to: not implemented for cuda");
  CHECK_STATUS_FAILS(nn_fill_(x, 1), "fill: not implemented for cuda");
  CHECK_STATUS_FAILS(nn_uniform_(x, 0, 1), "uniform_: not implemented for cuda");
  CHECK_FAILS(nn_mse_loss(x, y, NN_REDUCTION_MEAN), "mse_loss: not implemented for cuda");
  CHECK_FAILS(nn_bce_loss(x, y, NULL, NN_REDUCTION_MEAN), "binary_cross_entropy: not implemented for cuda");
  CHECK_FAILS(nn_cross_entropy_loss(x, labels, NULL), "cross_entropy: not implemented for cuda");
  CHECK(classes == x->size[1]);
  nn_tensor *grad = OK(on_device(NN_FLOAT32, 2, size, 1));
  if (grad && nn_set_grad(x, grad) == 0) {
    nn_sgd_options sgd = {0.1, 0, 0, 0, 0, 0};
    CHECK_STATUS_FAILS(nn_sgd_step(x, NULL, &sgd), "sgd: not implemented for cuda");
    nn_set_grad(x, NULL);
  }
  nn_release(grad);

  /* an op mixing devices names both, whichever comes first */
  CHECK_FAILS(nn_binary(NN_ADD, x, cpu), "add: tensors are on different devices (cuda and cpu)");
  CHECK_FAILS(nn_binary(NN_MUL, cpu, x), "mul: tensors are on different devices (cpu and cuda)");
  CHECK_FAILS(nn_linear(cpu, x, NULL), "linear: tensors are on different devices (cpu and cuda)");
  CHECK_FAILS(nn_mse_loss(cpu, y, NN_REDUCTION_SUM), "mse_loss: tensors are on different devices");
  /* a copy is the one op across devices: through the host */
  CHECK_STATUS_OK(nn_copy_(cpu, x));
  CHECK(nn_get_flat(cpu, 0) == 0.5 && nn_get_flat(cpu, 5) == 2);

  nn_release(x), nn_release(y), nn_release(labels), nn_release(cpu);
  nn_memory_trim();
  nn_backend_set(NN_CUDA, NULL, "this build has no cuda backend");
  CHECK(nn_backend_for(NN_CUDA) == NULL);
}

/* Random123's known answers for Philox4x32-10 (its kat_vectors file). */
static void test_philox(void) {
  static const struct {
    uint32_t counter[4], key[2], out[4];
  } cases[] = {
      {{0, 0, 0, 0}, {0, 0}, {0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8}},
      {{0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff},
       {0xffffffff, 0xffffffff},
       {0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd}},
      {{0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344},
       {0xa4093822, 0x299f31d0},
       {0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1}},
  };
  for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
    uint32_t out[4];
    nn_philox4x32(cases[c].counter, cases[c].key, out);
    CHECKF(memcmp(out, cases[c].out, sizeof out) == 0, "philox case %zu: %08x %08x %08x %08x", c,
           out[0], out[1], out[2], out[3]);
  }
}

int main(void) {
  test_entries_cover_the_table();
  test_cpu_fills_every_entry();
  test_cpu_has_no_collectives();
  test_without_cuda();
  test_missing_kernels();
  test_philox();
  return check_finish();
}

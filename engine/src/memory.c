/* memory.c: storage blocks, pooled so that a training loop in steady state
 * allocates nothing from the system; and the engine's error message. */
#include "backend.h"

#include <stdarg.h>
#include <stdio.h>

/* ---- errors ---------------------------------------------------------- */
static char error_message[512];

const char *nn_error(void) { return error_message[0] ? error_message : "unknown error"; }

void nn_error_set(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(error_message, sizeof error_message, fmt, ap);
  va_end(ap);
}

/* ---- the storage pool -----------------------------------------------
 * Blocks are rounded up to size classes a quarter of a power of two apart
 * (at most 25% waste) and kept on a free list per class when released. The
 * pool keeps at most pool_limit bytes idle; beyond that blocks go back. */
#define CLASS_COUNT 256
#define MIN_BLOCK 64

static struct pool_block { struct pool_block *next; } *free_blocks[CLASS_COUNT];
static size_t pooled_bytes;
static const size_t pool_limit = (size_t)1 << 30;
static size_t bytes_in_use, bytes_allocated_since;

static nn_storage *free_storages;

static int size_class(size_t nbytes, size_t *rounded) {
  if (nbytes <= MIN_BLOCK) {
    *rounded = MIN_BLOCK;
    return 0;
  }
  int log2 = 63 - __builtin_clzll((unsigned long long)(nbytes - 1)); /* 2^log2 < nbytes */
  size_t base = (size_t)1 << log2, quarter = base / 4;
  size_t steps = (nbytes - base + quarter - 1) / quarter; /* 1..4 */
  *rounded = base + steps * quarter;
  return (log2 - 6) * 4 + (int)steps;
}

static void *cpu_alloc(size_t nbytes) {
  void *p = NULL;
  if (posix_memalign(&p, 64, nbytes) != 0) return NULL;
  return p;
}
static void cpu_free(void *data, size_t nbytes) {
  (void)nbytes;
  free(data);
}

/* The struct of a storage: recycled, as the blocks are. */
static nn_storage *storage_struct(void) {
  nn_storage *s = free_storages;
  if (s) free_storages = *(nn_storage **)s;
  else s = malloc(sizeof *s);
  return s;
}

static void storage_struct_free(nn_storage *s) {
  *(nn_storage **)s = free_storages;
  free_storages = s;
}

static nn_storage *storage_init(nn_storage *s, nn_device device, void *data, size_t rounded) {
  s->refcount = 1;
  s->device = device;
  s->data = data;
  s->nbytes = rounded;
  s->version = 0;
  bytes_in_use += rounded;
  bytes_allocated_since += rounded;
  return s;
}

/* A storage on a device other than the CPU: its blocks come from the
   caching allocator (device_memory.c). They count in the totals that pace
   Lua's collector, as the CPU's do. */
static nn_storage *device_storage_new(nn_device device, size_t nbytes) {
  const nn_backend *be = nn_device_check("allocate", device);
  if (!be) return NULL;
  nn_storage *s = storage_struct();
  if (!s) {
    nn_error_set("out of memory");
    return NULL;
  }
  size_t rounded;
  void *data = nn_device_alloc(device, be, nbytes, &rounded);
  if (!data) {
    storage_struct_free(s);
    return NULL;
  }
  return storage_init(s, device, data, rounded);
}

nn_storage *nn_storage_new(nn_device device, size_t nbytes) {
  if (device != NN_CPU) return device_storage_new(device, nbytes);
  size_t rounded;
  int cls = size_class(nbytes, &rounded);
  void *data = NULL;
  if (cls < CLASS_COUNT && free_blocks[cls]) {
    struct pool_block *b = free_blocks[cls];
    free_blocks[cls] = b->next;
    pooled_bytes -= rounded;
    data = b;
  } else {
    if (cls >= CLASS_COUNT) rounded = nbytes;
    data = nn_cpu_backend.alloc(rounded);
    if (!data) {
      nn_error_set("out of memory allocating %zu bytes", nbytes);
      return NULL;
    }
  }
  nn_storage *s = storage_struct();
  if (!s) {
    nn_cpu_backend.free(data, rounded);
    nn_error_set("out of memory");
    return NULL;
  }
  return storage_init(s, NN_CPU, data, rounded);
}

void nn_storage_release(nn_storage *s) {
  if (!s || --s->refcount > 0) return;
  bytes_in_use -= s->nbytes;
  if (s->device != NN_CPU) {
    nn_device_free(s->device, nn_backend_loaded(s->device), s->data, s->nbytes);
    storage_struct_free(s);
    return;
  }
  size_t rounded;
  int cls = size_class(s->nbytes, &rounded);
  if (cls < CLASS_COUNT && rounded == s->nbytes && pooled_bytes + rounded <= pool_limit) {
    struct pool_block *b = s->data;
    b->next = free_blocks[cls];
    free_blocks[cls] = b;
    pooled_bytes += rounded;
  } else {
    nn_cpu_backend.free(s->data, s->nbytes);
  }
  storage_struct_free(s);
}

size_t nn_memory_in_use(void) { return bytes_in_use; }

size_t nn_memory_take_allocated(void) {
  size_t n = bytes_allocated_since;
  bytes_allocated_since = 0;
  return n;
}

void nn_memory_trim(void) {
  for (int c = 0; c < CLASS_COUNT; c++) {
    while (free_blocks[c]) {
      struct pool_block *b = free_blocks[c];
      free_blocks[c] = b->next;
      nn_cpu_backend.free(b, 0);
    }
  }
  pooled_bytes = 0;
  while (free_storages) {
    nn_storage *s = free_storages;
    free_storages = *(nn_storage **)s;
    free(s);
  }
}

/* ---- the CPU's table ------------------------------------------------- */
static int cpu_transfer(void *dst, const void *src, size_t nbytes) {
  memcpy(dst, src, nbytes);
  return 0;
}
static int cpu_synchronize(void) { return 0; }

void nn_cpu_gemm(nn_dtype dtype, int trans_a, int trans_b, int64_t m, int64_t n, int64_t k,
                 double alpha, const void *a, int64_t lda, const void *b, int64_t ldb,
                 double beta, void *c, int64_t ldc);
int nn_cpu_copy(nn_iter *it);
int nn_cpu_fill(nn_iter *it, double value);

const nn_backend nn_cpu_backend = {
    .name = "cpu",
    .device_count = 1,
    .device_name = "cpu",
    .alloc = cpu_alloc,
    .free = cpu_free,
    .to_host = cpu_transfer,
    .from_host = cpu_transfer,
    .within = cpu_transfer,
    .synchronize = cpu_synchronize,
    .copy = nn_cpu_copy,
    .fill = nn_cpu_fill,
    .gemm = nn_cpu_gemm,
};

/* memory.c: storage blocks, pooled so that a training loop in steady state
 * allocates nothing from the system; and the engine's error message. */
#include "internal.h"

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

static struct pool_block { struct pool_block *next; } *free_blocks[NN_DEVICE_COUNT][CLASS_COUNT];
static size_t pooled_bytes;
static const size_t pool_limit = (size_t)1 << 30;
static size_t bytes_in_use, bytes_allocated_since;

static nn_storage *free_storages;

/* The bytes of a block of class cls. */
static size_t class_bytes(int cls) {
  if (cls == 0) return MIN_BLOCK;
  size_t base = (size_t)1 << (6 + (cls - 1) / 4);
  return base + (size_t)((cls - 1) % 4 + 1) * (base / 4);
}

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

/* inline: a hint to LTO to inline it on the hot path (CMakeLists.txt, inline-unit-growth) */
inline nn_storage *nn_storage_new(nn_device device, size_t nbytes) {
  /* the CPU's table without a call: every tensor the engine makes comes here */
  const nn_backend *be = device == NN_CPU ? &nn_cpu_backend : nn_device_check("allocate", device);
  if (!be) return NULL;
  size_t rounded;
  int cls = size_class(nbytes, &rounded);
  void *data = NULL;
  if (cls < CLASS_COUNT && free_blocks[device][cls]) {
    struct pool_block *b = free_blocks[device][cls];
    free_blocks[device][cls] = b->next;
    pooled_bytes -= rounded;
    data = b;
    bytes_allocated_since += rounded;
  } else {
    /* another device's allocator rounds to its own classes */
    if (cls >= CLASS_COUNT || device != NN_CPU) rounded = nbytes;
    /* another device's blocks come from its own caching allocator, which
       says why it failed (out of memory on cuda: ...) */
    data = be->alloc(rounded);
    if (!data) {
      if (device == NN_CPU) nn_error_set("out of memory allocating %zu bytes", nbytes);
      return NULL;
    }
    bytes_allocated_since += rounded;
  }
  nn_storage *s = free_storages;
  if (s) {
    free_storages = *(nn_storage **)s;
  } else if (!(s = malloc(sizeof *s))) {
    be->free(data, rounded);
    nn_error_set("out of memory");
    return NULL;
  }
  s->refcount = 1;
  s->device = device;
  s->data = data;
  s->nbytes = rounded;
  s->version = 0;
  s->pool_class = cls < CLASS_COUNT && device == NN_CPU ? cls : -1;
  bytes_in_use += rounded;
  if (nn_capture_active) nn_capture_storage_made(s);
  return s;
}

void nn_storage_release(nn_storage *s) {
  if (!s || --s->refcount > 0) return;
  /* the class the block was made in (nbytes is its rounded size): no
     recomputing it, a division, on every release */
  int cls = s->pool_class;
  bytes_in_use -= s->nbytes;
  if (cls >= 0 && pooled_bytes + s->nbytes <= pool_limit) {
    struct pool_block *b = s->data;
    b->next = free_blocks[NN_CPU][cls];
    free_blocks[NN_CPU][cls] = b;
    pooled_bytes += s->nbytes;
  } else {
    nn_backend_for(s->device)->free(s->data, s->nbytes);
  }
  *(nn_storage **)s = free_storages;
  free_storages = s;
}

size_t nn_memory_in_use(void) { return bytes_in_use; }

size_t nn_memory_take_allocated(void) {
  size_t n = bytes_allocated_since;
  bytes_allocated_since = 0;
  return n;
}

void nn_memory_trim(void) {
  for (int d = 0; d < NN_DEVICE_COUNT; d++) {
    const nn_backend *be = nn_backend_loaded((nn_device)d); /* trimming loads nothing */
    for (int c = 0; c < CLASS_COUNT; c++) {
      while (free_blocks[d][c]) {
        struct pool_block *b = free_blocks[d][c];
        free_blocks[d][c] = b->next;
        if (be) be->free(b, class_bytes(c));
      }
    }
  }
  pooled_bytes = 0;
  while (free_storages) {
    nn_storage *s = free_storages;
    free_storages = *(nn_storage **)s;
    free(s);
  }
}

/* device_memory.c: the caching allocator of device memory.
 *
 * cudaMalloc and cudaFree are slow (cudaFree waits for the whole device),
 * so, as PyTorch does, freed blocks are kept for reuse: a free list per size
 * class. Classes start at 512 bytes (PyTorch's smallest block) and are a
 * quarter of a power of two apart up to 1 MiB, a sixteenth beyond, so that
 * a large block wastes at most 6% of a GPU's memory. The blocks themselves
 * are device memory the host
 * cannot write into, so the lists are made of small host records, kept on
 * a spare list of their own: in steady state a training loop allocates
 * nothing on the device or on the host here.
 *
 * With one stream per device, a block freed by the host may be handed out
 * again at once even while queued kernels still use it: whatever runs next
 * with it is queued after them.
 *
 * "allocated" counts the blocks held by tensors (rounded sizes), "reserved"
 * those plus the cached ones: PyTorch's memory_allocated/memory_reserved. */
#include "backend.h"

#include <stdio.h>

#define CLASS_COUNT 1024
#define MIN_BLOCK 512
#define FINE_FROM 20 /* log2 of 1 MiB */

/* The class of a block of nbytes, and its size. */
static int device_class(size_t nbytes, size_t *rounded) {
  if (nbytes <= MIN_BLOCK) {
    *rounded = MIN_BLOCK;
    return 0;
  }
  int log2 = 63 - __builtin_clzll((unsigned long long)(nbytes - 1)); /* 2^log2 < nbytes */
  int parts = log2 < FINE_FROM ? 4 : 16;
  size_t base = (size_t)1 << log2, step = base / (size_t)parts;
  size_t steps = (nbytes - base + step - 1) / step; /* 1..parts */
  *rounded = base + steps * step;
  if (log2 < FINE_FROM) return (log2 - 9) * 4 + (int)steps;
  return (FINE_FROM - 9) * 4 + (log2 - FINE_FROM) * 16 + (int)steps;
}

typedef struct cached_block {
  void *data;
  size_t nbytes;
  struct cached_block *next;
} cached_block;

typedef struct {
  cached_block *free_blocks[CLASS_COUNT];
  size_t allocated, reserved;
} device_cache;

static device_cache caches[NN_DEVICE_COUNT];
static cached_block *spare_records;

static cached_block *record_new(void) {
  cached_block *r = spare_records;
  if (r) spare_records = r->next;
  else r = malloc(sizeof *r);
  return r;
}

static void record_free(cached_block *r) {
  r->next = spare_records;
  spare_records = r;
}

/* "1.50 GiB" */
static const char *bytes_text(size_t n, char *buf, size_t len) {
  static const char *const units[] = {"bytes", "KiB", "MiB", "GiB", "TiB"};
  double v = (double)n;
  int u = 0;
  while (v >= 1024 && u < 4) v /= 1024, u++;
  if (u == 0) snprintf(buf, len, "%zu bytes", n);
  else snprintf(buf, len, "%.2f %s", v, units[u]);
  return buf;
}

static void release_cached(device_cache *c, const nn_backend *be) {
  for (int k = 0; k < CLASS_COUNT; k++) {
    while (c->free_blocks[k]) {
      cached_block *r = c->free_blocks[k];
      c->free_blocks[k] = r->next;
      be->free(r->data, r->nbytes);
      c->reserved -= r->nbytes;
      record_free(r);
    }
  }
}

void *nn_device_alloc(nn_device device, const nn_backend *be, size_t nbytes, size_t *rounded) {
  device_cache *c = &caches[device];
  int cls = device_class(nbytes, rounded);
  cached_block *r = c->free_blocks[cls];
  if (r) {
    void *data = r->data;
    c->free_blocks[cls] = r->next;
    record_free(r);
    c->allocated += *rounded;
    return data;
  }
  void *data = be->alloc(*rounded);
  if (!data) {
    /* What is cached may be in other classes: give it all back and try
       once more, as PyTorch does. */
    release_cached(c, be);
    data = be->alloc(*rounded);
  }
  if (!data) {
    char why[256], want[32], held[32], kept[32];
    snprintf(why, sizeof why, "%s", nn_error());
    nn_error_set("out of memory on %s: tried to allocate %s (%s held by tensors, %s reserved "
                 "in all): %s",
                 nn_device_name(device), bytes_text(nbytes, want, sizeof want),
                 bytes_text(c->allocated, held, sizeof held),
                 bytes_text(c->reserved, kept, sizeof kept), why);
    return NULL;
  }
  c->allocated += *rounded;
  c->reserved += *rounded;
  return data;
}

void nn_device_free(nn_device device, const nn_backend *be, void *data, size_t rounded) {
  device_cache *c = &caches[device];
  size_t check;
  int cls = device_class(rounded, &check);
  cached_block *r = record_new();
  c->allocated -= rounded;
  if (!r || check != rounded) { /* no host memory for the record: give the block back */
    if (r) record_free(r);
    be->free(data, rounded);
    c->reserved -= rounded;
    return;
  }
  r->data = data;
  r->nbytes = rounded;
  r->next = c->free_blocks[cls];
  c->free_blocks[cls] = r;
}

size_t nn_device_memory_allocated(nn_device device) { return caches[device].allocated; }
size_t nn_device_memory_reserved(nn_device device) { return caches[device].reserved; }

void nn_device_release_cached(nn_device device, const nn_backend *be) {
  release_cached(&caches[device], be);
  while (spare_records) {
    cached_block *r = spare_records;
    spare_records = r->next;
    free(r);
  }
}

void nn_device_empty_cache(nn_device device) {
  const nn_backend *be = nn_backend_loaded(device);
  if (be && device != NN_CPU) nn_device_release_cached(device, be);
}

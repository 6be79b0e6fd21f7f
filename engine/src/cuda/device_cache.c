/* cuda/device_cache.c: the caching allocator of device memory
 * (device_cache.h). Classes start at 512 bytes (PyTorch's smallest block)
 * and are a quarter of a power of two apart up to 1 MiB, a sixteenth
 * beyond, so that a large block wastes at most 6% of a GPU's memory. The
 * blocks are device memory the host cannot write into, so the lists are
 * made of small host records, kept on a spare list of their own. */
#include "device_cache.h"

#include <stdio.h>
#include <stdlib.h>

#define MIN_BLOCK 512
#define FINE_FROM 20 /* log2 of 1 MiB */

struct nn_cached_block {
  void *data;
  size_t nbytes;
  nn_cached_block *next;
};

/* The class of a block of nbytes, and its size. */
static int block_class(size_t nbytes, size_t *rounded) {
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

size_t nn_device_cache_rounded(size_t nbytes) {
  size_t rounded;
  block_class(nbytes, &rounded);
  return rounded;
}

static nn_cached_block *record_new(nn_device_cache *c) {
  nn_cached_block *r = c->spare_records;
  if (r) c->spare_records = r->next;
  else r = malloc(sizeof *r);
  return r;
}

static void record_free(nn_device_cache *c, nn_cached_block *r) {
  r->next = c->spare_records;
  c->spare_records = r;
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

static void release_blocks(nn_device_cache *c) {
  for (int k = 0; k < NN_DEVICE_CACHE_CLASSES; k++) {
    while (c->free_blocks[k]) {
      nn_cached_block *r = c->free_blocks[k];
      c->free_blocks[k] = r->next;
      c->raw_free(r->data, r->nbytes);
      c->reserved -= r->nbytes;
      record_free(c, r);
    }
  }
}

void *nn_device_cache_alloc(nn_device_cache *c, size_t nbytes) {
  size_t rounded;
  int cls = block_class(nbytes, &rounded);
  if (cls >= NN_DEVICE_CACHE_CLASSES) {
    c->error_set("out of memory on %s: %zu bytes is more than any device holds", c->device, nbytes);
    return NULL;
  }
  nn_cached_block *r = c->free_blocks[cls];
  if (r) {
    void *data = r->data;
    c->free_blocks[cls] = r->next;
    record_free(c, r);
    c->allocated += rounded;
    return data;
  }
  char why[256] = "";
  void *data = c->raw_alloc(rounded, why, sizeof why);
  if (!data) {
    /* What is cached may be in other classes: give it all back and try
       once more, as PyTorch does. */
    release_blocks(c);
    data = c->raw_alloc(rounded, why, sizeof why);
  }
  if (!data) {
    char want[32], held[32], kept[32];
    c->error_set("out of memory on %s: tried to allocate %s (%s held by tensors, %s reserved in "
                 "all): %s",
                 c->device, bytes_text(nbytes, want, sizeof want),
                 bytes_text(c->allocated, held, sizeof held),
                 bytes_text(c->reserved, kept, sizeof kept), why);
    return NULL;
  }
  c->allocated += rounded;
  c->reserved += rounded;
  return data;
}

void nn_device_cache_free(nn_device_cache *c, void *data, size_t nbytes) {
  if (!data) return;
  size_t rounded;
  int cls = block_class(nbytes, &rounded);
  nn_cached_block *r = record_new(c);
  c->allocated -= rounded;
  if (!r) { /* no host memory for the record: give the block back */
    c->raw_free(data, rounded);
    c->reserved -= rounded;
    return;
  }
  r->data = data;
  r->nbytes = rounded;
  r->next = c->free_blocks[cls];
  c->free_blocks[cls] = r;
}

void nn_device_cache_empty(nn_device_cache *c) {
  release_blocks(c);
  while (c->spare_records) {
    nn_cached_block *r = c->spare_records;
    c->spare_records = r->next;
    free(r);
  }
}

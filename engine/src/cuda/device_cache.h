/* cuda/device_cache.h: the caching allocator a device backend puts in
 * front of its own malloc (cudaMalloc), as PyTorch's does. Plain C: it is
 * compiled into libnn_cuda.so and into the test device of
 * tests/c/fake_cuda.c, never into the engine (the CPU's pool is memory.c).
 *
 * cudaMalloc and cudaFree are slow (cudaFree waits for the whole device),
 * so freed blocks are kept on a free list per size class: a training loop
 * in steady state asks the device for nothing. When the device is full the
 * cache is given back and the allocation tried once more; then the error
 * "out of memory on cuda: ...".
 *
 * With one stream, a block freed by the host may be handed out again at
 * once while queued kernels still use it: whatever uses it next is queued
 * after them. */
#ifndef NN_DEVICE_CACHE_H
#define NN_DEVICE_CACHE_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#define NN_DEVICE_CACHE_CLASSES 1024

typedef struct nn_cached_block nn_cached_block;

typedef struct {
  const char *device; /* "cuda", for messages */
  /* the device's own allocation: NULL with the reason in why */
  void *(*raw_alloc)(size_t nbytes, char *why, size_t len);
  void (*raw_free)(void *data, size_t nbytes);
  void (*error_set)(const char *fmt, ...);
  nn_cached_block *free_blocks[NN_DEVICE_CACHE_CLASSES];
  nn_cached_block *spare_records; /* host records for the lists, reused */
  size_t allocated; /* bytes in blocks handed out: PyTorch's memory_allocated */
  size_t reserved;  /* those and the cached ones: memory_reserved */
} nn_device_cache;

/* A block of at least nbytes (its size rounded up to its class); NULL
   with the error set. */
void *nn_device_cache_alloc(nn_device_cache *c, size_t nbytes);
/* Gives back a block of nbytes, the size it was asked for with. */
void nn_device_cache_free(nn_device_cache *c, void *data, size_t nbytes);
/* Hands the cached blocks back to the device. */
void nn_device_cache_empty(nn_device_cache *c);
/* The size of the class nbytes falls in. */
size_t nn_device_cache_rounded(size_t nbytes);

#ifdef __cplusplus
}
#endif

#endif

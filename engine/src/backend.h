/* backend.h: the table of functions a device fills (struct nn_backend), and
 * what a backend loaded from its own shared library receives from the
 * engine (struct nn_host_api).
 *
 * The fronts (the .c files of engine/src) check arguments, work out shapes and dtypes,
 * record autograd nodes, and call kernels through nn_backend_for(device).
 * The CPU's table is built in (nn_cpu_backend); CUDA's comes from
 * libnn_cuda.so, opened at the first use of "cuda" (device.c), so that a
 * build with CUDA runs unchanged where there is no GPU, driver or CUDA
 * library.
 *
 * Kernels see plain data (pointers, the strided iterator nn_iter), never a
 * tensor, and return 0 or -1 with nn_error_set. On CUDA they are
 * asynchronous: a fault of a kernel surfaces at the next call that waits
 * for the device (synchronize, to_host). An entry a device lacks is NULL. */
#ifndef NN_BACKEND_H
#define NN_BACKEND_H

#include "internal.h"

/* Bumped whenever nn_backend, nn_host_api or nn_iter change shape: a
   libnn_cuda.so of another build refuses to open rather than misread
   them. */
#define NN_BACKEND_ABI 1

typedef struct nn_backend {
  /* "cpu", "cuda". The engine reads and writes the storage of a tensor
     directly only on the CPU; on any other device, even the test device
     of tests/c/fake_cuda.c whose memory is the host's, it goes through
     this table. */
  const char *name;

  /* ---- the device ---------------------------------------------------- */
  int device_count;
  const char *device_name; /* "NVIDIA H100 80GB HBM3" */

  /* ---- memory ----------------------------------------------------------
     Fresh blocks from the device. The engine keeps freed blocks for reuse
     (memory.c for the CPU, device_memory.c for the others), so these run
     only when a block of that size is not cached. alloc: NULL with an
     error saying why. */
  void *(*alloc)(size_t nbytes);
  void (*free)(void *data, size_t nbytes);

  /* ---- transfers -------------------------------------------------------
     to_host waits for the kernels queued before it and reports a fault of
     theirs; from_host returns once src may be reused; within is queued
     like a kernel. */
  int (*to_host)(void *host_dst, const void *device_src, size_t nbytes);
  int (*from_host)(void *device_dst, const void *host_src, size_t nbytes);
  int (*within)(void *dst, const void *src, size_t nbytes);
  /* Waits for every queued kernel; -1 when one of them failed. */
  int (*synchronize)(void);

  /* ---- kernels ---------------------------------------------------------
     copy: operand 0 = operand 1, converted to operand 0's dtype, over the
     iterator's shape (operand 1 may broadcast: stride 0). fill: operand 0
     = value. */
  int (*copy)(nn_iter *it);
  int (*fill)(nn_iter *it, double value);
  /* y = alpha * op(A) op(B) + beta * y, row-major, 2-D, float32 or float64 */
  void (*gemm)(nn_dtype dtype, int trans_a, int trans_b, int64_t m, int64_t n, int64_t k,
               double alpha, const void *a, int64_t lda, const void *b, int64_t ldb,
               double beta, void *c, int64_t ldc);
} nn_backend;

extern const nn_backend nn_cpu_backend;

/* The table of device, loading it at the first call for a device other
   than the CPU; NULL when the device is not available (nn_device_check
   says why). */
const nn_backend *nn_backend_for(nn_device device);
/* The table only if it is loaded already (NULL otherwise): for code that
   must not load a library, such as trimming caches. */
const nn_backend *nn_backend_loaded(nn_device device);
/* nn_backend_for, or NULL with the error "op: cuda is not available: why". */
const nn_backend *nn_device_check(const char *op, nn_device device);

/* ---- loading a backend from a shared library ---------------------------
   nn.so is loaded RTLD_LOCAL by Lua, so a library it opens cannot link
   against the engine's symbols: what a backend may call back into the
   engine comes in this table. */
typedef struct nn_host_api {
  int abi;               /* NN_BACKEND_ABI of the engine */
  size_t backend_size;   /* sizeof(nn_backend) */
  size_t iter_size;      /* sizeof(nn_iter) */
  void (*error_set)(const char *fmt, ...);
  /* The CPU's table: the test device runs the CPU's kernels on its host
     memory. */
  const nn_backend *cpu;
} nn_host_api;

/* Whether a library was built against this engine's tables; a backend
   refuses to open when not. */
static inline int nn_host_api_matches(const nn_host_api *host) {
  return host && host->abi == NN_BACKEND_ABI && host->backend_size == sizeof(nn_backend) &&
         host->iter_size == sizeof(nn_iter);
}

/* The one symbol a backend library exports: its filled table, or NULL with
   the reason (which device, driver or library is missing) in why. */
#define NN_CUDA_BACKEND_ENTRY "nn_cuda_backend_open"
typedef const nn_backend *(*nn_backend_open_fn)(const nn_host_api *host, char *why, size_t len);

/* ---- device memory (device_memory.c) -----------------------------------
   A caching allocator in front of a backend's alloc/free, as PyTorch's:
   freed blocks wait on free lists by size class, so that a training loop
   in steady state asks the device for nothing. When the device is out of
   memory, the cache is emptied and the allocation tried once more. */
void *nn_device_alloc(nn_device device, const nn_backend *be, size_t nbytes, size_t *rounded);
void nn_device_free(nn_device device, const nn_backend *be, void *data, size_t rounded);
/* Gives the cached blocks of device back through be (nn_device_empty_cache
   with the loaded backend). */
void nn_device_release_cached(nn_device device, const nn_backend *be);

#endif

/* fake_cuda.c: libnn_fake_cuda.so, a test device that stands in for
 * libnn_cuda.so where there is no GPU. It is NOT a GPU and never built for
 * users: it lives in the build's tests/ folder, is never installed, opens
 * only when NN_FAKE_CUDA=1 is set besides NN_CUDA_LIBRARY naming it, and
 * its device name says what it is.
 *
 * It is loaded the way the real backend is (NN_CUDA_LIBRARY, the entry
 * nn_cuda_backend_open, the host API), and the engine treats it as it
 * treats CUDA: tensors on it are "cuda" tensors, reached only through the
 * table. Its memory is the host's, so its kernels are the CPU's (from the
 * host API). What the tests need of a device that can fail:
 *   NN_FAKE_CUDA_MEMORY_LIMIT=bytes  fresh allocations fail beyond this total
 *                                    (the caching allocator's retry, out of
 *                                    memory errors, the collector's pacing);
 *   NN_FAKE_CUDA_FAULT=n             the n-th wait for the device (a
 *                                    synchronize or a copy to the host)
 *                                    reports a kernel fault, and every wait
 *                                    after it, as a sticky CUDA error does.
 *   NN_FAKE_CUDA_KERNELS=none        the table has memory, transfers, copy and
 *                                    fill but no other kernel: the CUDA
 *                                    backend before its kernels are merged,
 *                                    where every op must say "<op>: not
 *                                    implemented for cuda".
 * NN_FAKE_CUDA_STATS=path, when set, gets "allocs frees" written at exit:
 * how often the device was asked for memory. Its memory goes through the
 * CUDA backend's own caching allocator (engine/src/cuda/device_cache.c). */
#include "backend.h"
#include "cuda/device_cache.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const nn_host_api *host;
static nn_backend table;
static size_t memory_limit, memory_used;
static long fault_at, waits;
static long allocs, frees;

static size_t env_number(const char *name) {
  const char *v = getenv(name);
  return v && v[0] ? (size_t)strtoull(v, NULL, 10) : 0;
}

static void *fake_malloc(size_t nbytes, char *why, size_t len) {
  if (memory_limit && memory_used + nbytes > memory_limit) {
    snprintf(why, len, "fake cudaMalloc: out of memory (%zu of the test limit of %zu bytes in use)",
             memory_used, memory_limit);
    return NULL;
  }
  void *p = malloc(nbytes ? nbytes : 1);
  if (!p) {
    snprintf(why, len, "fake cudaMalloc: out of host memory");
    return NULL;
  }
  memory_used += nbytes;
  allocs++;
  return p;
}

static void fake_cudafree(void *data, size_t nbytes) {
  memory_used -= nbytes;
  frees++;
  free(data);
}

static nn_device_cache cache = {.device = "cuda", .raw_alloc = fake_malloc,
                                .raw_free = fake_cudafree};

static void *fake_alloc(size_t nbytes) { return nn_device_cache_alloc(&cache, nbytes); }
static void fake_free(void *data, size_t nbytes) { nn_device_cache_free(&cache, data, nbytes); }
static size_t fake_memory_allocated(void) { return cache.allocated; }
static size_t fake_memory_reserved(void) { return cache.reserved; }
static void fake_empty_cache(void) { nn_device_cache_empty(&cache); }

/* No NCCL here: nn.distributed stages this device's tensors through host
   memory over MPI, as it does on a GPU without libnccl. */
static int fake_collective_available(char *why, size_t len) {
  snprintf(why, len, "the test device has no collectives of its own");
  return 0;
}
static int fake_device_count(void) { return 1; }
static const char *fake_device_name(void) {
  return "nnlua fake CUDA device (tests only; host memory, not a GPU)";
}

static int fake_wait(void) {
  waits++;
  if (fault_at && waits >= fault_at) {
    host->error_set("cuda: a kernel failed: fake asynchronous fault (NN_FAKE_CUDA_FAULT=%ld); "
                    "the CUDA context cannot be used any more, restart the process",
                    fault_at);
    return -1;
  }
  return 0;
}

static int fake_to_host(void *dst, const void *src, size_t nbytes) {
  if (fake_wait() < 0) return -1;
  memcpy(dst, src, nbytes);
  return 0;
}

static int fake_from_host(void *dst, const void *src, size_t nbytes) {
  memcpy(dst, src, nbytes);
  return 0;
}

static void write_stats(void) {
  const char *path = getenv("NN_FAKE_CUDA_STATS");
  FILE *f = path ? fopen(path, "w") : NULL;
  if (!f) return;
  fprintf(f, "%ld %ld\n", allocs, frees);
  fclose(f);
}

__attribute__((visibility("default"))) const nn_backend *
nn_cuda_backend_open(const nn_host_api *h, char *why, size_t len) {
  if (!nn_host_api_matches(h)) {
    snprintf(why, len, "the fake CUDA device was built for another engine");
    return NULL;
  }
  const char *enabled = getenv("NN_FAKE_CUDA");
  if (!enabled || strcmp(enabled, "1") != 0) {
    snprintf(why, len, "this is nnlua's fake CUDA device for its own tests (host memory, not a "
             "GPU); it opens only with NN_FAKE_CUDA=1");
    return NULL;
  }
  host = h;
  memory_limit = env_number("NN_FAKE_CUDA_MEMORY_LIMIT");
  fault_at = (long)env_number("NN_FAKE_CUDA_FAULT");
  if (getenv("NN_FAKE_CUDA_STATS")) atexit(write_stats);
  cache.error_set = h->error_set;
  const char *kernels = getenv("NN_FAKE_CUDA_KERNELS");
  if (kernels && strcmp(kernels, "none") == 0) {
    memset(&table, 0, sizeof table);
    table.copy = h->cpu->copy;
    table.fill = h->cpu->fill;
  } else {
    table = *h->cpu;
  }
  table.name = "cuda";
  table.device_count = fake_device_count;
  table.device_name = fake_device_name;
  table.alloc = fake_alloc;
  table.free = fake_free;
  table.to_host = fake_to_host;
  table.from_host = fake_from_host;
  table.within = fake_from_host;
  table.synchronize = fake_wait;
  table.memory_allocated = fake_memory_allocated;
  table.memory_reserved = fake_memory_reserved;
  table.empty_cache = fake_empty_cache;
  table.collective_available = fake_collective_available;
  /* the CPU's BLAS threads are not the device's; its random fills draw
     from the CPU's generator, which loading this device must not reseed */
  table.set_num_threads = NULL;
  table.get_num_threads = NULL;
  table.manual_seed = NULL;
  table.initial_seed = NULL;
  table.rng_state_size = NULL;
  table.rng_get_state = NULL;
  table.rng_set_state = NULL;
  return &table;
}

/* cpu/memory.c: the CPU's memory is the process's. Blocks are 64-byte
 * aligned (a cache line, and the widest vector); the engine's pool
 * (memory.c) keeps released ones for reuse, so this counts what is held
 * from the system. */
#include "cpu/cpu.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static size_t bytes_held;

void *nn_cpu_alloc(size_t nbytes) {
  void *p = NULL;
  if (posix_memalign(&p, 64, nbytes) != 0) return NULL;
  bytes_held += nbytes;
  return p;
}

void nn_cpu_free(void *data, size_t nbytes) {
  if (data) bytes_held -= nbytes < bytes_held ? nbytes : bytes_held;
  free(data);
}

int nn_cpu_to_host(void *host, const void *data, size_t nbytes) {
  if (nbytes) memcpy(host, data, nbytes);
  return 0;
}

int nn_cpu_from_host(void *data, const void *host, size_t nbytes) {
  if (nbytes) memcpy(data, host, nbytes);
  return 0;
}

int nn_cpu_within(void *dst, const void *src, size_t nbytes) {
  if (nbytes) memmove(dst, src, nbytes);
  return 0;
}

int nn_cpu_synchronize(void) { return 0; /* every CPU kernel has finished when it returns */ }
int nn_cpu_device_count(void) { return 1; }
const char *nn_cpu_device_name(void) { return "cpu"; }
size_t nn_cpu_memory_allocated(void) { return bytes_held; }
size_t nn_cpu_memory_reserved(void) { return bytes_held; }
void nn_cpu_empty_cache(void) {} /* the engine's pool is emptied by nn_memory_trim */

/* The CPU's collectives are the host's business (nn.distributed calls MPI
   on host memory): the entries say so, and the others are never reached
   past available's answer. */
static const char *const cpu_collectives_why =
    "the CPU has no collectives of its own: host memory goes over MPI";

int nn_cpu_collective_available(char *why, size_t len) {
  snprintf(why, len, "%s", cpu_collectives_why);
  return 0;
}

static int cpu_collective_refuse(void) {
  nn_error_set("%s", cpu_collectives_why);
  return -1;
}

int nn_cpu_collective_id(unsigned char *id) {
  (void)id;
  return cpu_collective_refuse();
}

int nn_cpu_collective_join(const unsigned char *id, int rank, int size) {
  (void)id, (void)rank, (void)size;
  return cpu_collective_refuse();
}

int nn_cpu_collective_start(const nn_collective_args *a, void **handle) {
  (void)a, (void)handle;
  return cpu_collective_refuse();
}

int nn_cpu_collective_test(void *handle) {
  (void)handle;
  return cpu_collective_refuse();
}

void nn_cpu_collective_abort(void) {}

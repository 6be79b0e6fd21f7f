/* cpu/cpu.h: the CPU backend's kernels, shared between the files of cpu/
 * and gathered into nn_cpu_backend by cpu/backend.c. Each is the entry of
 * backend.h's table with the same name; see there for what it computes. */
#ifndef NN_CPU_H
#define NN_CPU_H

#include "backend.h"
#include "math/dtype.h"

/* memory.c */
void *nn_cpu_alloc(size_t nbytes);
void nn_cpu_free(void *data, size_t nbytes);
int nn_cpu_to_host(void *host, const void *data, size_t nbytes);
int nn_cpu_from_host(void *data, const void *host, size_t nbytes);
int nn_cpu_synchronize(void);
int nn_cpu_device_count(void);
size_t nn_cpu_memory_allocated(void);
size_t nn_cpu_memory_reserved(void);
void nn_cpu_empty_cache(void);

/* copy.c */
int nn_cpu_copy(const nn_iter *it);
int nn_cpu_fill(const nn_iter *it, double value);
int nn_cpu_ramp(nn_dtype dtype, void *data, int64_t n, int64_t half, double start, double step,
                double end);
int nn_cpu_add_into(const nn_iter *it);
int nn_cpu_gather_rows(void *out, const void *src, const int64_t *rows, int64_t count,
                       size_t row_bytes);

#endif

/* cuda/kernels.h: the CUDA backend's kernels, every entry of backend.h's
 * table but memory, host<->device copies and device management (those are
 * cuda/backend.cu's, which calls this while it builds its table).
 *
 * nn_cuda_fill_kernels sets each kernel entry of *b and remembers b: the
 * kernels take their scratch memory through b->alloc and b->free, and
 * read labels' and probabilities' checks back through b->to_host, so b
 * must outlive them. Filling calls nothing of the CUDA runtime (a machine
 * without a GPU may fill a table); cuBLAS starts at the first product.
 *
 * Entries left NULL here, with the reason:
 *   alloc free to_host from_host synchronize device_count memory_allocated
 *   memory_reserved empty_cache within device_name
 *                                 cuda/backend.cu's (memory and devices)
 *   set_num_threads get_num_threads   the CPU's BLAS pool: no meaning on a GPU
 *   topk logsumexp kthvalue       the CPU's fused shortcuts: without them the
 *                                 fronts sort whole lines, and compose
 *                                 logsumexp of other fronts, as before
 *   graph_begin graph_end graph_launch graph_free
 *                                 cuda/backend.cu's (they switch the stream
 *                                 the kernels launch on)
 * (the tensor toolkit's kernels are cuda/toolkit.cu's) */
#ifndef NN_CUDA_KERNELS_H
#define NN_CUDA_KERNELS_H

#include "backend.h"

#ifdef __cplusplus
extern "C" {
#endif

void nn_cuda_fill_kernels(nn_backend *b);

#ifdef __cplusplus
}
#endif

#endif

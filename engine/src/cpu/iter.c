/* cpu/iter.c: the CPU's loop over an nn_iter of several dims (cpu.h's
 * nn_iter_run does one run itself): the innermost dim is handed to a
 * function whole, so that a kernel's inner loop is a plain strided loop
 * over one run (and, with stride 1, one that vectorises). */
#include "cpu/cpu.h"

void nn_iter_run_outer(const nn_iter *it, nn_inner_fn fn, void *ctx) {
  int nd = it->ndim, last = nd - 1;
  for (int i = 0; i < nd; i++)
    if (it->size[i] == 0) return;
  int64_t counter[NN_MAX_DIMS] = {0};
  char *ptr[NN_ITER_MAX_OPERANDS];
  int64_t esize[NN_ITER_MAX_OPERANDS];
  for (int k = 0; k < it->n; k++) esize[k] = (int64_t)nn_element_size(it->dtype[k]);
  for (;;) {
    for (int k = 0; k < it->n; k++) {
      int64_t off = 0;
      for (int d = 0; d < last; d++) off += counter[d] * it->stride[d][k];
      ptr[k] = it->data[k] + off * esize[k];
    }
    fn(ctx, it->size[last], ptr, it->stride[last]);
    int d = last - 1;
    while (d >= 0 && ++counter[d] == it->size[d]) counter[d--] = 0;
    if (d < 0) break;
  }
}

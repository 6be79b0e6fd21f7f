/* cpu/iter.c: the CPU's loop over an nn_iter of several dims (cpu.h's
 * nn_iter_run does one run itself): the innermost dim is handed to a
 * function whole, so that a kernel's inner loop is a plain strided loop
 * over one run (and, with stride 1, one that vectorises). */
#include "cpu/cpu.h"

/* The runs [first, first + count) of it, in row-major order of its outer
   dims. */
static void run_outer_range(const nn_iter *it, nn_inner_fn fn, void *ctx, int64_t first,
                            int64_t count) {
  if (count <= 0) return; /* a dim of 0: nothing to visit, and no division by it */
  int nd = it->ndim, last = nd - 1;
  int64_t counter[NN_MAX_DIMS] = {0};
  char *ptr[NN_ITER_MAX_OPERANDS];
  int64_t esize[NN_ITER_MAX_OPERANDS];
  for (int k = 0; k < it->n; k++) esize[k] = (int64_t)nn_element_size(it->dtype[k]);
  for (int d = last - 1; d >= 0; d--) counter[d] = first % it->size[d], first /= it->size[d];
  for (int64_t run = 0; run < count; run++) {
    for (int k = 0; k < it->n; k++) {
      int64_t off = 0;
      for (int d = 0; d < last; d++) off += counter[d] * it->stride[d][k];
      ptr[k] = it->data[k] + off * esize[k];
    }
    fn(ctx, it->size[last], ptr, it->stride[last]);
    int d = last - 1;
    while (d >= 0 && ++counter[d] == it->size[d]) counter[d--] = 0;
  }
}

static int64_t outer_runs(const nn_iter *it) {
  int64_t runs = 1;
  for (int d = 0; d < it->ndim - 1; d++) runs *= it->size[d];
  return it->size[it->ndim - 1] == 0 ? 0 : runs;
}

void nn_iter_run_outer(const nn_iter *it, nn_inner_fn fn, void *ctx) {
  run_outer_range(it, fn, ctx, 0, outer_runs(it));
}

/* ---- the same loop cut over the pool (cpu/parallel.c) ---- */
struct iter_split { const nn_iter *it; nn_inner_fn fn; void *ctx; };

/* One run: elements [first, last) of it. */
static void one_run_range(const void *vctx, int64_t first, int64_t last) {
  const struct iter_split *s = vctx;
  const nn_iter *it = s->it;
  char *ptr[NN_ITER_MAX_OPERANDS];
  for (int k = 0; k < it->n; k++)
    ptr[k] = it->data[k] + first * it->stride[0][k] * (int64_t)nn_element_size(it->dtype[k]);
  s->fn(s->ctx, last - first, ptr, it->stride[0]);
}

/* Several dims: whole runs [first, last), never a run cut in two, so that
   a kernel's inner loop sees the runs the one-thread loop sees. */
static void outer_range(const void *vctx, int64_t first, int64_t last) {
  const struct iter_split *s = vctx;
  run_outer_range(s->it, s->fn, s->ctx, first, last - first);
}

void nn_iter_run_split(const nn_iter *it, nn_inner_fn fn, void *ctx, int64_t cost) {
  /* An output repeated along a dim (stride 0: add_into's sum into a
     broadcast gradient, a write into an expanded view) is written by
     several positions, in iteration order: one thread does them all. */
  for (int d = 0; d < it->ndim; d++)
    if (it->stride[d][0] == 0 && it->size[d] > 1) {
      nn_iter_run(it, fn, ctx);
      return;
    }
  struct iter_split s = {it, fn, ctx};
  int64_t inner = it->size[it->ndim - 1];
  if (it->ndim == 1) nn_parallel_for(inner, cost, NN_PARALLEL_ALIGN, one_run_range, &s);
  else nn_parallel_for(outer_runs(it), inner * cost, 1, outer_range, &s);
}

/* cpu/prepare.c: kernels of one iterator prepared for a captured plan's
 * replay (nn_backend.iter_prepare; capture.c). A tiny elementwise op's
 * call goes through its entry, the iterator's loop and the inner function
 * that picks the loop by dtypes and strides: for the 40 values of a small
 * layer that is as much work as the values. A plan's iterators never
 * change, so the pick is made here once, by the choosers the entries call
 * themselves (cpu.h: nn_cpu_unary_loop_of, nn_cpu_unary_grad_loop_of,
 * nn_cpu_fill_clears), for a call that runs on the calling thread, and a
 * replay calls the loop they would reach: the same bits. The same for a
 * linear layer's bias gradient (add_rows) and plain SGD's step of a small
 * parameter (cpu/optim.c's nn_cpu_sgd_prepare), which take no iterator
 * but are described by one (backend.h). */
#include "cpu/cpu.h"
#include "cpu/vector.h"

#include <stddef.h>
#include <string.h>

static void clear_run(const nn_iter_direct *d) { memset(d->data[0], 0, (size_t)d->n); }

/* kernels: the loop itself; data: out, x */
static void map_run(const nn_iter_direct *d) {
  nn_cpu_map_f32 loop = (nn_cpu_map_f32)d->kernels;
  loop(d->n, (const float *)d->data[1], (float *)d->data[0]);
}

/* kernels: the loop itself; data: grad_in, g, and y (sigmoid) or x (relu) */
static void grad_run(const nn_iter_direct *d) {
  nn_cpu_grad_f32 loop = (nn_cpu_grad_f32)d->kernels;
  loop(d->n, (const float *)d->data[1], (const float *)d->data[2], (float *)d->data[0]);
}

/* data: dst, src; rows of n values */
static void add_rows_run(const nn_iter_direct *d) {
  const nn_cpu_vector *v = d->kernels;
  v->add_rows(d->rows, d->n, (const float *)d->data[1], (float *)d->data[0]);
}

/* one run of it, short enough to stay on the calling thread (as
   nn_iter_run_parallel keeps it there) */
static int one_serial_run(const nn_iter *it) {
  return it->ndim == 1 && it->size[0] > 0 && it->size[0] < 2 * NN_PARALLEL_GRAIN;
}

/* add_rows(float32, rows, cols, src, dst) as backend.h describes it: dims
   {cols, rows}, dst's strides {1, 0}, src's {1, cols} */
static int is_float_add_rows(const nn_iter *it) {
  return it->n == 2 && it->ndim == 2 && it->dtype[0] == NN_FLOAT32 && it->dtype[1] == NN_FLOAT32 &&
         it->size[0] > 0 && it->size[1] > 0 && it->stride[0][0] == 1 && it->stride[0][1] == 1 &&
         it->stride[1][0] == 0 && it->stride[1][1] == it->size[0];
}

int nn_cpu_iter_prepare(size_t entry, int op, const nn_iter *it, double x, nn_iter_direct *d) {
  const nn_cpu_vector *v = nn_cpu_vector_best();
  memset(d, 0, sizeof *d);
  d->n = it->size[0];
  for (int k = 0; k < it->n && k < NN_ITER_MAX_OPERANDS; k++) d->data[k] = it->data[k];
  if (entry == offsetof(nn_backend, fill)) {
    if (!nn_cpu_fill_clears(it, x) || nn_parallel_pass_pieces(it->size[0]) >= 2) return 0;
    d->n = it->size[0] * (int64_t)nn_element_size(it->dtype[0]); /* bytes */
    d->run = clear_run;
    return 1;
  }
  if (entry == offsetof(nn_backend, unary) && it->n == 2 && one_serial_run(it)) {
    nn_cpu_map_f32 loop = nn_cpu_unary_loop_of(v, op, it->dtype[0], it->dtype[1], it->stride[0]);
    d->kernels = (const void *)loop;
    d->run = loop ? map_run : NULL;
    return loop != NULL;
  }
  if (entry == offsetof(nn_backend, unary_backward) && it->n == 3 && one_serial_run(it)) {
    nn_cpu_grad_f32 loop = nn_cpu_unary_grad_loop_of(v, op, it->dtype[0], it->stride[0]);
    d->kernels = (const void *)loop;
    d->run = loop ? grad_run : NULL;
    return loop != NULL;
  }
  if (entry == offsetof(nn_backend, add_rows) && is_float_add_rows(it)) {
    d->kernels = v;
    d->rows = it->size[1];
    d->run = add_rows_run;
    return 1;
  }
  if (entry == offsetof(nn_backend, sgd_step)) return nn_cpu_sgd_prepare(it, d);
  return 0;
}

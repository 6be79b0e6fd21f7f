/* cpu/prepare.c: kernels of one iterator prepared for a captured plan's
 * replay (nn_backend.iter_prepare; capture.c). A tiny elementwise op's
 * call goes through its entry, the iterator's loop and the inner function
 * that picks the loop by dtypes and strides: for the 40 values of a small
 * layer that is as much work as the values. A plan's iterators never
 * change, so the pick is made here once, by the same tests in the same
 * order as those entries make (cpu/copy.c's nn_cpu_fill, cpu/elementwise.c's
 * unary_inner and unary_grad_inner, one run on the calling thread), and a
 * replay calls the loop they would reach: the same bits. */
#include "cpu/cpu.h"
#include "cpu/vector.h"

#include <math.h>
#include <stddef.h>
#include <string.h>

static void clear_run(const nn_iter_direct *d) { memset(d->data[0], 0, (size_t)d->n); }

static void sigmoid_run(const nn_iter_direct *d) {
  const nn_cpu_vector *v = d->kernels;
  v->sigmoid(d->n, (const float *)d->data[1], (float *)d->data[0]);
}

static void relu_run(const nn_iter_direct *d) {
  const nn_cpu_vector *v = d->kernels;
  v->relu(d->n, (const float *)d->data[1], (float *)d->data[0]);
}

/* data: grad_in, g, and y (sigmoid) or x (relu) */
static void sigmoid_grad_run(const nn_iter_direct *d) {
  const nn_cpu_vector *v = d->kernels;
  v->sigmoid_grad(d->n, (const float *)d->data[1], (const float *)d->data[2], (float *)d->data[0]);
}

static void relu_grad_run(const nn_iter_direct *d) {
  const nn_cpu_vector *v = d->kernels;
  v->relu_grad(d->n, (const float *)d->data[1], (const float *)d->data[2], (float *)d->data[0]);
}

/* one contiguous run of float32 operands, short enough for one thread */
static int one_float_run(const nn_iter *it, int operands) {
  if (it->ndim != 1 || it->size[0] <= 0 || it->size[0] >= 2 * NN_PARALLEL_GRAIN) return 0;
  for (int k = 0; k < operands; k++)
    if (it->stride[0][k] != 1 || it->dtype[k] != NN_FLOAT32) return 0;
  return 1;
}

int nn_cpu_iter_prepare(size_t entry, int op, const nn_iter *it, double x, nn_iter_direct *d) {
  memset(d, 0, sizeof *d);
  d->kernels = nn_cpu_vector_best();
  d->n = it->size[0];
  for (int k = 0; k < it->n && k < NN_ITER_MAX_OPERANDS; k++) d->data[k] = it->data[k];
  if (entry == offsetof(nn_backend, fill)) {
    if (x != 0 || signbit(x) || it->ndim != 1 || it->stride[0][0] != 1 ||
        it->size[0] >= 2 * NN_PARALLEL_GRAIN)
      return 0;
    d->n = it->size[0] * (int64_t)nn_element_size(it->dtype[0]); /* bytes */
    d->run = clear_run;
    return 1;
  }
  if (entry == offsetof(nn_backend, unary) && one_float_run(it, 2)) {
    if (op == NN_SIGMOID) d->run = sigmoid_run;
    else if (op == NN_RELU) d->run = relu_run;
    return d->run != NULL;
  }
  if (entry == offsetof(nn_backend, unary_backward) && one_float_run(it, 3)) {
    if (op == NN_SIGMOID) d->run = sigmoid_grad_run;
    else if (op == NN_RELU) d->run = relu_grad_run;
    return d->run != NULL;
  }
  return 0;
}

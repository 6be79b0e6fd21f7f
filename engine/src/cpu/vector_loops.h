/* cpu/vector_loops.h: the loops of cpu/vector.h, included by each file that
 * compiles them for one instruction set (vector.c, vector_avx2.c,
 * vector_avx512.c); see there. */
#ifndef NN_CPU_VECTOR_LOOPS_H
#define NN_CPU_VECTOR_LOOPS_H

#include "cpu/vector.h"
#include "math/elementwise.h"

NN_MATH_SELECTS_BEGIN
static void sigmoid_loop(int64_t n, const float *x, float *out) {
  for (int64_t i = 0; i < n; i++) out[i] = nn_sigmoid_select_f32(x[i]);
}

static void relu_loop(int64_t n, const float *x, float *out) {
  for (int64_t i = 0; i < n; i++) out[i] = nn_relu_select_f32(x[i]);
}

/* g is read whatever x is: a load under the condition would be a branch
   per element, not a select. */
static void relu_grad_loop(int64_t n, const float *g, const float *x, float *gi) {
  for (int64_t i = 0; i < n; i++) gi[i] = nn_relu_grad_select_f32(g[i], x[i]);
}
NN_MATH_SELECTS_END

static void sigmoid_grad_loop(int64_t n, const float *g, const float *y, float *gi) {
  for (int64_t i = 0; i < n; i++) gi[i] = nn_sigmoid_grad_f32(g[i], y[i]);
}

static void add_loop(int64_t n, const float *x, const float *y, float *out) {
  for (int64_t i = 0; i < n; i++) out[i] = x[i] + y[i];
}

static void mul_loop(int64_t n, const float *x, const float *y, float *out) {
  for (int64_t i = 0; i < n; i++) out[i] = x[i] * y[i];
}

#endif

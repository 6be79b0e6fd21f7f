/* test_sgd_list.c: nn_sgd_list, the plain SGD step a captured step's
 * optimizer replays (engine/src/optim.c).
 *
 *  - Each step equals nn_sgd_step on every parameter, bit for bit, in
 *    float32 and float64, over several steps and options.
 *  - A gradient replaced between steps (another tensor, other values) is
 *    the one used; a parameter whose gradient is removed is left alone, as
 *    nn_sgd_step leaves it.
 *  - A parameter or gradient given other data by nn_set_data (another
 *    storage, shape or layout, even one at a freed storage's address) is
 *    checked again: stepped as nn_sgd_step steps it, or refused as it is.
 *  - Momentum is refused with a reason (its buffers are the caller's). */
#include "check.h"

enum { COUNT = 3 };

/* Twin parameter sets with equal values and gradients: one stepped by the
   list, the other by nn_sgd_step. */
static nn_tensor *made_param(nn_dtype dtype, int ndim, const int64_t *size) {
  nn_tensor *p = nn_randn(dtype, ndim, size);
  nn_tensor *g = nn_randn(dtype, ndim, size);
  CHECK(p && g && nn_set_grad(p, g) == 0);
  nn_release(g);
  return p;
}

static nn_tensor *twin_of(nn_tensor *p) {
  nn_tensor *q = nn_clone(p);
  if (p->grad) {
    nn_tensor *g = nn_clone(p->grad);
    CHECK(nn_set_grad(q, g) == 0);
    nn_release(g);
  }
  return q;
}

static int same_bits(nn_tensor *a, nn_tensor *b) {
  size_t bytes = (size_t)nn_numel(a) * (a->dtype == NN_FLOAT64 ? 8 : 4);
  return memcmp(nn_tensor_data(a), nn_tensor_data(b), bytes) == 0;
}

static void step_twins(nn_sgd_list *list, nn_tensor **eager, const nn_sgd_options *o) {
  CHECK(nn_sgd_list_step(list, o) == 0);
  for (int i = 0; i < COUNT; i++) {
    nn_tensor *none = NULL;
    CHECK(nn_sgd_step(eager[i], &none, o) == 0);
  }
}

static void check_twins(nn_tensor **listed, nn_tensor **eager, const char *when) {
  for (int i = 0; i < COUNT; i++)
    CHECKF(same_bits(listed[i], eager[i]), "parameter %d differs from nn_sgd_step's %s", i, when);
}

int main(void) {
  nn_manual_seed(3);
  const int64_t matrix[] = {3, 5}, vector[] = {7}, many[] = {300};
  nn_tensor *listed[COUNT] = {made_param(NN_FLOAT32, 2, matrix), made_param(NN_FLOAT64, 1, vector),
                              made_param(NN_FLOAT32, 1, many)};
  nn_tensor *eager[COUNT];
  for (int i = 0; i < COUNT; i++) eager[i] = twin_of(listed[i]);
  check_twins(listed, eager, "before any step");

  nn_sgd_list *list = nn_sgd_list_new(listed, COUNT);
  CHECK(list != NULL);
  nn_sgd_options plain = {0.1, 0, 0, 0, 0, 0}, decayed = {0.25, 0, 0, 0.01, 0, 1};
  for (int s = 0; s < 3; s++) step_twins(list, eager, s == 1 ? &decayed : &plain);
  check_twins(listed, eager, "after three steps");

  /* another gradient tensor, other values: the list must not step with the old one */
  for (int i = 0; i < COUNT; i++) {
    nn_tensor *g = nn_randn(listed[i]->dtype, listed[i]->ndim, listed[i]->size);
    nn_tensor *h = nn_clone(g);
    CHECK(nn_set_grad(listed[i], g) == 0 && nn_set_grad(eager[i], h) == 0);
    nn_release(g);
    nn_release(h);
  }
  step_twins(list, eager, &plain);
  check_twins(listed, eager, "after the gradients were replaced");

  /* no gradient: left alone */
  CHECK(nn_set_grad(listed[1], NULL) == 0 && nn_set_grad(eager[1], NULL) == 0);
  nn_tensor *before = nn_clone(listed[1]);
  step_twins(list, eager, &decayed);
  check_twins(listed, eager, "after a gradient was removed");
  CHECK(same_bits(before, listed[1]));
  nn_release(before);

  /* new data for parameter and gradient, of another length: stepped whole */
  const int64_t longer[] = {9};
  for (int i = 0; i < 2; i++) {
    nn_tensor *set[2] = {listed[0], eager[0]};
    nn_tensor *p = nn_randn(NN_FLOAT32, 1, longer), *g = nn_randn(NN_FLOAT32, 1, longer);
    nn_tensor *q = nn_clone(p), *h = nn_clone(g);
    CHECK(nn_set_data(set[0], i ? p : q) == 0 && nn_set_data(set[1], i ? q : p) == 0);
    CHECK(nn_set_data(set[0]->grad, i ? g : h) == 0 && nn_set_data(set[1]->grad, i ? h : g) == 0);
    nn_release(p), nn_release(g), nn_release(q), nn_release(h);
  }
  step_twins(list, eager, &plain);
  check_twins(listed, eager, "after set_data gave parameter and gradient 9 values");

  /* the parameter alone given 4 values, in storage that may come back at
     the address of the storage it had before: its gradient keeps 9 */
  const int64_t four[] = {4}, two[] = {2};
  nn_tensor *first = nn_randn(NN_FLOAT32, 1, two);
  CHECK(nn_set_data(listed[0], first) == 0);
  nn_release(first);
  for (int round = 0; round < 4; round++) {
    nn_tensor *again = nn_randn(NN_FLOAT32, 1, four);
    CHECK(nn_set_data(listed[0], again) == 0);
    nn_release(again);
    CHECK(nn_sgd_list_step(list, &plain) == -1);
    CHECK(strstr(nn_error(), "sgd") != NULL);
  }

  nn_sgd_options momentum = {0.1, 0.9, 0, 0, 0, 0};
  CHECK(nn_sgd_list_step(list, &momentum) == -1);
  CHECK(strstr(nn_error(), "momentum") != NULL);

  nn_sgd_list_free(list);
  for (int i = 0; i < COUNT; i++) {
    nn_release(listed[i]);
    nn_release(eager[i]);
  }
  return check_finish();
}

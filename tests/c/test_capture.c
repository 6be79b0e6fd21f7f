/* test_capture.c: the engine's captured plans (engine/src/capture.c).
 *
 *  - The recording table replaces every entry of the backend table but the
 *    ones that read or set no tensor's values (memory, devices, threads,
 *    the generator's read-only state, graphs): a new kernel entry that
 *    capture forgets would run unrecorded, and fails here instead.
 *  - A plan replays its kernels on the buffers it kept: new input values
 *    give the new results; host calls run in their place.
 *  - A value read on the host, or ops on a second device, refuse the plan
 *    with a reason; captures do not nest; a refused plan does not replay.
 *  - Freeing a plan gives back every storage it kept (the ASan build
 *    checks for leaks). */
#include "check.h"
#include "internal.h"

#include <stddef.h>

typedef void (*any_entry)(void);

static const char *const passed_through[] = {
    "alloc", "free", "synchronize", "device_count", "device_name", "memory_allocated",
    "memory_reserved", "empty_cache", "set_num_threads", "get_num_threads", "initial_seed",
    "rng_state_size", "rng_get_state", "graph_begin", "graph_end", "graph_launch", "graph_free",
};

static int is_passed_through(const char *name) {
  for (size_t i = 0; i < sizeof passed_through / sizeof passed_through[0]; i++)
    if (strcmp(passed_through[i], name) == 0) return 1;
  return 0;
}

static any_entry entry_of(const nn_backend *b, size_t offset) {
  any_entry f;
  memcpy(&f, (const char *)b + offset, sizeof f);
  return f;
}

static void test_recording_table_covers_every_kernel(void) {
  nn_tensor *t = OK(nn_ones(NN_FLOAT32, 1, SZ(3)));
  nn_plan *plan = nn_capture_begin();
  CHECK(plan != NULL);
  const nn_backend *rec = nn_dispatch("copy", offsetof(nn_backend, copy), t, NULL, NULL);
  CHECK(rec != &nn_cpu_backend);
  for (size_t e = 0; e < nn_backend_entry_count; e++) {
    const char *name = nn_backend_entries[e].name;
    size_t offset = nn_backend_entries[e].offset;
    int replaced = entry_of(rec, offset) != entry_of(&nn_cpu_backend, offset);
    if (is_passed_through(name))
      CHECKF(!replaced, "the recording table replaces %s, which sets no tensor's values", name);
    else
      CHECKF(replaced, "the recording table passes %s through: a capture would miss its calls", name);
  }
  CHECK(nn_capture_end(plan) == 0);
  nn_plan_free(plan);
  nn_release(t);
}

static int host_calls;
static int count_call(void *ctx, void *arg) {
  (void)ctx;
  host_calls += *(int *)arg;
  return 0;
}

static void test_replay_uses_the_kept_buffers(void) {
  nn_tensor *x = OK(nn_full(NN_FLOAT32, 1, SZ(4), 1.0));
  nn_tensor *w = OK(nn_full(NN_FLOAT32, 1, SZ(4), 3.0));
  nn_plan *plan = nn_capture_begin();
  CHECK(plan && nn_capture_recording());
  CHECK(nn_capture_begin() == NULL && strstr(nn_error(), "do not nest") != NULL);
  nn_tensor *e = OK(nn_unary(NN_EXP, x));
  nn_tensor *y = OK(nn_binary(NN_MUL, e, w));
  CHECK(nn_capture_host_call(count_call, NULL, NULL) == 0);
  CHECK(!nn_capture_recording()); /* a host call's own kernels are not recorded */
  nn_tensor *unrecorded = OK(nn_unary(NN_NEG, x));
  nn_capture_host_call_done();
  CHECK(nn_capture_recording());
  CHECK_STATUS_OK(nn_binary_(NN_ADD, w, x)); /* w = 4: an in-place write into a tensor from outside */
  CHECK(nn_capture_end(plan) == 0);
  CHECK(nn_plan_why(plan) == NULL);
  nn_release(e);
  nn_release(unrecorded);
  CHECK_VALUES(y, 1e-6, 3 * exp(1.0), 3 * exp(1.0), 3 * exp(1.0), 3 * exp(1.0));

  nn_plan_info info;
  nn_plan_describe(plan, &info);
  CHECK(info.kernels == 3 && info.host_calls == 1 && info.graphs == 0);
  CHECK(info.storages >= 4); /* x, w, and the two results */

  CHECK_STATUS_OK(nn_fill_(x, 2.0));
  int add = 5;
  CHECK_STATUS_OK(nn_plan_replay(plan, &add));
  CHECK(host_calls == 5);
  /* y = exp(2) * w (4 after the capture's add_), then w = 4 + 2 */
  CHECK_VALUES(y, 1e-5, 4 * exp(2.0), 4 * exp(2.0), 4 * exp(2.0), 4 * exp(2.0));
  CHECK_VALUES(w, 0, 6, 6, 6, 6);
  nn_plan_describe(plan, &info);
  CHECK(info.graphs == 0); /* the CPU replays call by call */
  nn_plan_free(plan);
  nn_release(y);
  nn_release(x);
  nn_release(w);
}

static void test_refusals(void) {
  nn_tensor *x = OK(nn_full(NN_FLOAT64, 1, SZ(2), 1.5));
  nn_plan *plan = nn_capture_begin();
  nn_tensor *y = OK(nn_unary(NN_EXP, x));
  double v = 0;
  nn_tensor *total = OK(nn_sum(y, NN_ALL_DIMS, 0));
  CHECK_STATUS_OK(nn_item(total, &v));
  nn_release(total);
  CHECK(!nn_capture_recording()); /* refused: the rest runs as it would */
  CHECK_STATUS_FAILS(nn_capture_end(plan), "item()");
  CHECK(strstr(nn_plan_why(plan), "item()") != NULL);
  CHECK_STATUS_FAILS(nn_plan_replay(plan, NULL), "cannot be replayed");
  nn_plan_free(plan);
  nn_release(y);

  plan = nn_capture_begin();
  nn_manual_seed(3);
  CHECK_STATUS_FAILS(nn_capture_end(plan), "manual_seed");
  nn_plan_free(plan);

  plan = nn_capture_begin();
  nn_tensor *z = OK(nn_zeros(NN_FLOAT64, 1, SZ(2)));
  nn_set_flat(z, 0, 4.0); /* into a tensor the step made: a constant of the plan */
  CHECK(nn_capture_recording());
  nn_set_flat(x, 0, 4.0); /* into one from outside: a replay would not write it */
  CHECK_STATUS_FAILS(nn_capture_end(plan), "t[i] = v");
  nn_plan_free(plan);
  nn_release(z);
  nn_release(x);
}

/* Freed mid-recording (an error in the step): the capture stops and
   everything is given back. */
static void test_free_while_recording(void) {
  size_t before = nn_memory_in_use();
  nn_plan *plan = nn_capture_begin();
  nn_tensor *t = OK(nn_ones(NN_FLOAT32, 2, SZ(3, 3)));
  nn_release(t);
  CHECK(nn_memory_in_use() > before); /* the plan keeps it */
  nn_plan_free(plan);
  CHECK(!nn_capture_recording());
  CHECK(nn_memory_in_use() == before);
  plan = nn_capture_begin(); /* a new capture may start */
  CHECK(plan != NULL);
  CHECK(nn_capture_end(plan) == 0);
  nn_plan_free(plan);
}

int main(void) {
  test_recording_table_covers_every_kernel();
  test_replay_uses_the_kept_buffers();
  test_refusals();
  test_free_while_recording();
  return check_finish();
}

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
    /* reached through nn_collective_*, never through dispatch; nn.distributed
       refuses a capture around them */
    "collective_available", "collective_id", "collective_join", "collective_start", "collective_test",
    "collective_abort",
    /* prepare a kernel call without running it: the recording asks the real ones */
    "gemm_prepare", "iter_prepare",
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

/* ---- graphs, on a device that defers -----------------------------------
   A stand-in for CUDA's stream capture: the CPU's kernels, except that
   fill and binary_number, while a graph is being made, are queued rather
   than run (as a captured stream's kernels are), and a graph is the queue,
   run by graph_launch. spoil_next makes graph_end fail, as a kernel that
   allocates while captured would. */
enum { QUEUE_MAX = 16 };
typedef struct {
  int is_fill;
  nn_iter it;
  double value;
} queued_call;
typedef struct {
  int count;
  queued_call calls[QUEUE_MAX];
} fake_graph;
static nn_backend deferring;
static fake_graph *making;
static int spoil_next, launches;

static void *host_alloc(size_t nbytes) { return calloc(1, nbytes ? nbytes : 1); }
static void host_free(void *data, size_t nbytes) {
  (void)nbytes;
  free(data);
}
static int host_copy(void *dst, const void *src, size_t nbytes) {
  memcpy(dst, src, nbytes);
  return 0;
}
static int deferred_fill(const nn_iter *it, double value) {
  if (!making) return nn_cpu_backend.fill(it, value);
  making->calls[making->count++] = (queued_call){1, *it, value};
  return 0;
}
/* adding spoiler, while a graph is made, spoils it (as a kernel that
   reads back would) */
static double spoiler = -1;
static int deferred_add(nn_binary_op op, nn_dtype compute, const nn_iter *it, double s, int first) {
  if (!making) return nn_cpu_backend.binary_number(op, compute, it, s, first);
  CHECK(op == NN_ADD && !first);
  if (s == spoiler) spoil_next = 1;
  making->calls[making->count++] = (queued_call){0, *it, s};
  return 0;
}
static int fake_graph_begin(void) {
  making = calloc(1, sizeof *making);
  return making ? 0 : -1;
}
static int fake_graph_end(void **graph) {
  *graph = making;
  making = NULL;
  if (spoil_next) {
    spoil_next = 0;
    free(*graph);
    *graph = NULL;
    return -1;
  }
  return 0;
}
static int fake_graph_launch(void *graph) {
  fake_graph *g = graph;
  launches++;
  for (int i = 0; i < g->count; i++) {
    queued_call *c = &g->calls[i];
    int st = c->is_fill ? nn_cpu_backend.fill(&c->it, c->value)
                        : nn_cpu_backend.binary_number(NN_ADD, c->it.dtype[0], &c->it, c->value, 0);
    if (st < 0) return -1;
  }
  return 0;
}
static void fake_graph_free(void *graph) { free(graph); }

static nn_tensor *on_deferring(double value) {
  int64_t size = 3, stride = 1;
  nn_storage *s = nn_storage_new(NN_CUDA, 3 * sizeof(double));
  if (!s) return NULL;
  nn_tensor *t = nn_tensor_wrap(s, NN_FLOAT64, 1, &size, &stride, 0);
  nn_storage_release(s);
  for (int i = 0; t && i < 3; i++) ((double *)s->data)[i] = value;
  return t;
}

static double first_value(const nn_tensor *t) { return ((const double *)t->storage->data)[0]; }

static void test_graphs_on_a_deferring_device(void) {
  deferring = nn_cpu_backend;
  deferring.name = "cuda";
  deferring.alloc = host_alloc, deferring.free = host_free;
  deferring.to_host = host_copy, deferring.from_host = host_copy;
  deferring.fill = deferred_fill, deferring.binary_number = deferred_add;
  deferring.graph_begin = fake_graph_begin, deferring.graph_end = fake_graph_end;
  deferring.graph_launch = fake_graph_launch, deferring.graph_free = fake_graph_free;
  nn_backend_set(NN_CUDA, &deferring, NULL);

  for (int spoiled = 0; spoiled <= 1; spoiled++) {
    nn_tensor *t = OK(on_deferring(0)), *noise = OK(on_deferring(0));
    nn_plan *plan = nn_capture_begin();
    CHECK_STATUS_OK(nn_fill_(t, 1.0));
    CHECK_STATUS_OK(nn_binary_scalar_(NN_ADD, t, 2.0));
    CHECK_STATUS_OK(nn_uniform_(noise, 0, 1)); /* a random fill ends a graph's run */
    CHECK_STATUS_OK(nn_binary_scalar_(NN_ADD, t, 4.0));
    CHECK(nn_capture_end(plan) == 0);
    CHECK(first_value(t) == 7);
    launches = 0;
    for (int replay = 0; replay < 3; replay++) {
      ((double *)t->storage->data)[0] = -100;
      spoil_next = spoiled && replay == 0;
      CHECK_STATUS_OK(nn_plan_replay(plan, NULL));
      CHECKF(first_value(t) == 7, "spoiled %d, replay %d: %g", spoiled, replay, first_value(t));
    }
    nn_plan_info info;
    nn_plan_describe(plan, &info);
    /* two runs of kernels around the random fill, each a graph; the first
       spoiled once is split in two graphs made at the next replay */
    CHECKF(info.graphs == (size_t)(spoiled ? 3 : 2), "spoiled %d: %zu graphs", spoiled, info.graphs);
    CHECKF(launches == (spoiled ? 1 + 3 + 3 : 6), "spoiled %d: %d launches", spoiled, launches);
    nn_plan_free(plan);
    nn_release(t);
    nn_release(noise);
  }

  /* a run with one kernel that spoils its graph: halved at each replay
     until that kernel alone goes call by call */
  nn_tensor *t = OK(on_deferring(0));
  nn_plan *plan = nn_capture_begin();
  CHECK_STATUS_OK(nn_fill_(t, 1.0));
  for (int k = 1; k <= 7; k++) CHECK_STATUS_OK(nn_binary_scalar_(NN_ADD, t, (double)k));
  CHECK(nn_capture_end(plan) == 0);
  spoiler = 3;
  for (int replay = 0; replay < 6; replay++) {
    ((double *)t->storage->data)[0] = -100;
    CHECK_STATUS_OK(nn_plan_replay(plan, NULL));
    CHECKF(first_value(t) == 29, "replay %d: %g", replay, first_value(t));
  }
  nn_plan_info info;
  nn_plan_describe(plan, &info);
  /* records 0..7, add 3 the fourth: [0, 8) halves to [0, 4) [4, 8), then
     [0, 2) [2, 4), then [2, 3) [3, 4): all graphs but [3, 4) */
  CHECKF(info.graphs == 3, "%zu graphs", info.graphs);
  spoiler = -1;
  nn_plan_free(plan);
  nn_release(t);
  nn_backend_set(NN_CUDA, NULL, "this build has no cuda backend");
}

int main(void) {
  test_recording_table_covers_every_kernel();
  test_replay_uses_the_kept_buffers();
  test_refusals();
  test_free_while_recording();
  test_graphs_on_a_deferring_device();
  return check_finish();
}

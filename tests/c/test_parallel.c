/* test_parallel.c: the pool of cpu/parallel.c. nn_parallel_for covers
 * [0, n) exactly once, in pieces that start at multiples of the alignment,
 * for lengths around the grain's boundaries; large loops at two threads
 * really run on two threads, small ones and one-thread loops on the
 * caller's alone; a forked child gets a working pool of its own, and the
 * parent keeps its; the iterator's split visits every element of views of
 * several dims exactly once. (The kernels' results at one and two threads:
 * tests/lua/threads_spec.lua.) */
#include "check.h"
#include "cpu/cpu.h"

#include <pthread.h>
#include <stdint.h>
#include <sys/wait.h>
#include <unistd.h>

enum { MAX_RECORDED = 64 };

/* What the pieces of one nn_parallel_for did. */
typedef struct {
  unsigned char *seen; /* per item: how many pieces visited it */
  int64_t align;
  int pieces, misaligned;
  pthread_t thread[MAX_RECORDED];
} record;

static void note(const void *vctx, int64_t first, int64_t last) {
  record *r = (record *)vctx;
  for (int64_t i = first; i < last; i++) r->seen[i]++;
  if (first % r->align != 0) __atomic_fetch_add(&r->misaligned, 1, __ATOMIC_RELAXED);
  int slot = __atomic_fetch_add(&r->pieces, 1, __ATOMIC_RELAXED);
  if (slot < MAX_RECORDED) r->thread[slot] = pthread_self();
}

static int distinct_threads(const record *r) {
  int count = 0, pieces = r->pieces < MAX_RECORDED ? r->pieces : MAX_RECORDED;
  for (int i = 0; i < pieces; i++) {
    int first_seen = 1;
    for (int j = 0; j < i; j++) first_seen &= !pthread_equal(r->thread[i], r->thread[j]);
    count += first_seen;
  }
  return count;
}

/* Runs one loop; returns how many threads ran it (0 on a coverage error). */
static int cover(int64_t n, int64_t cost, int64_t align) {
  record r = {calloc((size_t)(n > 0 ? n : 1), 1), align, 0, 0, {0}};
  if (!CHECK(r.seen != NULL)) return 0;
  nn_parallel_for(n, cost, align, note, &r);
  int64_t wrong = 0;
  for (int64_t i = 0; i < n; i++) wrong += r.seen[i] != 1;
  CHECKF(wrong == 0, "n %lld: %lld items not visited exactly once", (long long)n, (long long)wrong);
  CHECKF(r.misaligned == 0, "n %lld align %lld: a piece starts off the alignment", (long long)n,
         (long long)align);
  CHECKF(n == 0 ? r.pieces == 0 : r.pieces >= 1, "n %lld: %d pieces", (long long)n, r.pieces);
  free(r.seen);
  return wrong ? 0 : distinct_threads(&r);
}

static void coverage_around_the_grain(void) {
  const int64_t g = NN_PARALLEL_GRAIN;
  const int64_t lengths[] = {0, 1, 15, 16, 17, 1000, 2 * g - 1, 2 * g, 2 * g + 1, 2 * g + 15,
                             2 * g + 16, 3 * g + 7, 1000003};
  for (int t = 1; t <= 3; t++) {
    nn_set_num_threads(t);
    for (size_t i = 0; i < sizeof lengths / sizeof lengths[0]; i++) {
      int64_t n = lengths[i];
      int ran = cover(n, 1, NN_PARALLEL_ALIGN);
      /* below two grains, or on one thread, the caller's thread alone */
      int expect = t == 1 || n < 2 * g ? 1 : (n >= (int64_t)t * g ? t : 2);
      if (n > 0)
        CHECKF(ran == expect, "%d threads, n %lld: ran on %d threads, expected %d", t, (long long)n,
               ran, expect);
      cover(n, 1, 1);
    }
    /* few items of much work each (the lines of a reduction) are split too */
    CHECKF(cover(3, g, 1) == (t == 1 ? 1 : t), "%d threads: 3 items of a grain each", t);
    CHECK(cover(1, 100 * g, 1) == 1); /* one item is never cut */
  }
}

/* Light passes (zero_grad's fill, an SGD step) stay on the caller's thread
   below four grains, where a two-grain elementwise op is already cut. */
static void light_passes_need_four_grains(void) {
  const int64_t g = NN_PARALLEL_GRAIN;
  for (int t = 1; t <= 3; t++) {
    nn_set_num_threads(t);
    CHECKF(nn_parallel_pass_pieces(2 * g) == 1, "%d threads: a pass of two grains", t);
    CHECKF(nn_parallel_pass_pieces(4 * g - 1) == 1, "%d threads: a pass just under four grains", t);
    CHECKF(nn_parallel_pass_pieces(4 * g) == t, "%d threads: a pass of four grains", t);
    CHECKF(nn_parallel_pieces(2 * g, 1) == (t == 1 ? 1 : 2), "%d threads: two grains of an elementwise op", t);
  }
}

/* A fork while the pool has threads: the child starts a pool of its own
   and uses it; the parent's still works afterwards. */
static void pool_survives_fork(void) {
  nn_set_num_threads(2);
  const int64_t n = 1 << 20;
  CHECK(cover(n, 1, NN_PARALLEL_ALIGN) == 2); /* the pool's threads are up */
  fflush(stdout);
  pid_t child = fork();
  if (child == 0) {
    int ran = cover(n, 1, NN_PARALLEL_ALIGN);
    int ran_again = cover(n, 1, NN_PARALLEL_ALIGN);
    fflush(stdout);
    _exit(ran == 2 && ran_again == 2 && check_failed == 0 ? 0 : 1);
  }
  if (!CHECK(child > 0)) return;
  int status = 0;
  CHECK(waitpid(child, &status, 0) == child);
  CHECKF(WIFEXITED(status) && WEXITSTATUS(status) == 0, "the child's pool (status %d)", status);
  CHECK(cover(n, 1, NN_PARALLEL_ALIGN) == 2);
}

/* The iterator's split: every element of a 3-dim view with a padded,
   reversed-order layout visited once, each run whole. */
typedef struct {
  unsigned char *seen;
  const float *base;
} iter_record;

static void visit(void *vctx, int64_t n, char **data, const int64_t *stride) {
  iter_record *r = vctx;
  float *p = (float *)data[0];
  for (int64_t i = 0; i < n; i++) r->seen[(p + i * stride[0]) - r->base]++;
}

static void iterator_split(void) {
  nn_set_num_threads(2);
  /* dims of 7 x 50 x 601 over a buffer with row padding: runs of 601 */
  const int64_t d0 = 7, d1 = 50, d2 = 601, pad = 5, total = d0 * d1 * (d2 + pad);
  float *buf = calloc((size_t)total, sizeof *buf);
  unsigned char *seen = calloc((size_t)total, 1);
  if (!CHECK(buf && seen)) return;
  nn_iter it = {0};
  it.n = 1;
  it.ndim = 3;
  it.size[0] = d0, it.size[1] = d1, it.size[2] = d2;
  it.stride[0][0] = d1 * (d2 + pad), it.stride[1][0] = d2 + pad, it.stride[2][0] = 1;
  it.data[0] = (char *)buf;
  it.dtype[0] = NN_FLOAT32;
  iter_record r = {seen, buf};
  nn_iter_run_parallel(&it, visit, &r, 1);
  int64_t wrong = 0;
  for (int64_t i = 0; i < total; i++) wrong += seen[i] != ((i % (d2 + pad)) < d2);
  CHECKF(wrong == 0, "%lld elements visited wrongly", (long long)wrong);
  /* one dim, cut between elements */
  memset(seen, 0, (size_t)total);
  nn_iter one = {0};
  one.n = 1, one.ndim = 1, one.size[0] = total, one.stride[0][0] = 1;
  one.data[0] = (char *)buf, one.dtype[0] = NN_FLOAT32;
  nn_iter_run_parallel(&one, visit, &r, 1);
  wrong = 0;
  for (int64_t i = 0; i < total; i++) wrong += seen[i] != 1;
  CHECKF(wrong == 0, "one dim: %lld elements visited wrongly", (long long)wrong);
  free(buf);
  free(seen);
}

int main(void) {
  coverage_around_the_grain();
  light_passes_need_four_grains();
  pool_survives_fork();
  iterator_split();
  return check_finish();
}

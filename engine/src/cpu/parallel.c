/* cpu/parallel.c: the CPU kernels' one thread pool, which is OpenBLAS's.
 *
 * Large elementwise loops, reductions over many lines, optimizer steps and
 * fills are cut into pieces that run on the threads OpenBLAS already keeps
 * for its products, through its gotoblas_pthread entry (the caller's
 * thread runs the first piece, as in a product). A second pool of the
 * engine's own would share two cores with OpenBLAS's idle threads: after
 * each product they spin for OPENBLAS_THREAD_TIMEOUT before they sleep,
 * and an elementwise loop that woke other threads in that time would run
 * three threads on two cores, or, with OpenBLAS told to sleep at once,
 * every product of a step would pay for waking its threads again. One
 * pool has one size (nn.set_num_threads sets OpenBLAS's) and one idle
 * policy (the timeout, chosen in lua/nnlua.c and openblas_loader.c).
 *
 * Fork: OpenBLAS stops its threads before every fork (its own
 * pthread_atfork handler) and starts them again at its next use, in the
 * parent and in the child alike, so a child never waits on a thread it
 * has not (tests/c/test_parallel.c forks and uses the pool).
 *
 * A loop below two grains of work, or with one thread set, runs on the
 * caller's thread and starts nothing; so does everything when OpenBLAS
 * lacks the entry (an OpenMP build). Pieces begin at multiples of `align`
 * items, so a float32 piece never shares a cache line with the next one;
 * each element is computed by the same code either way, and no sum is
 * ever split, so the results do not depend on the thread count. */
#include "cpu/cpu.h"

/* OpenBLAS's undocumented entry (driver/others/blas_server.c): calls
   function(args + i stride) for i < numthreads, the first on the caller's
   thread, and returns when all have. Weak, for an OpenBLAS without it. */
extern int gotoblas_pthread(int numthreads, void *function, void *args, int stride)
#if defined(__GNUC__)
    __attribute__((weak))
#endif
    ;

#define MAX_PIECES 16

typedef struct {
  nn_range_fn fn;
  const void *ctx;
  int64_t first, last;
} piece;

static void piece_run(void *p) {
  const piece *w = p;
  w->fn(w->ctx, w->first, w->last);
}

int nn_parallel_pieces(int64_t n, int64_t cost) {
  if (n < 2 || (double)n * (double)cost < 2.0 * NN_PARALLEL_GRAIN || !gotoblas_pthread) return 1;
  int threads = nn_cpu_get_num_threads();
  if (threads < 2) return 1;
  double by_work = (double)n * (double)cost / NN_PARALLEL_GRAIN;
  int count = threads > MAX_PIECES ? MAX_PIECES : threads;
  if (by_work < count) count = (int)by_work;
  if (n < count) count = (int)n;
  return count;
}

int nn_parallel_pass_pieces(int64_t n) { return n < NN_PARALLEL_PASS ? 1 : nn_parallel_pieces(n, 1); }

void nn_parallel_for(int64_t n, int64_t cost, int64_t align, nn_range_fn fn, const void *ctx) {
  if (n <= 0) return;
  int count = nn_parallel_pieces(n, cost);
  if (count < 2) {
    fn(ctx, 0, n);
    return;
  }
  if (align < 1) align = 1;
  int64_t each = (n + count - 1) / count;
  each = (each + align - 1) / align * align;
  piece pieces[MAX_PIECES];
  int used = 0;
  for (int64_t first = 0; first < n && used < count; first += each)
    pieces[used++] = (piece){fn, ctx, first, n - first < each ? n : first + each};
  if (used == 1) piece_run(&pieces[0]);
  else gotoblas_pthread(used, (void *)piece_run, pieces, (int)sizeof pieces[0]);
}

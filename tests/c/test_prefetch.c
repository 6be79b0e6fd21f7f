/* test_prefetch.c: the data loader's background gather (nn_gather_rows_start
 * and _finish) across fork and across nn_prefetch_stop.
 *
 * A forked child has no prefetch thread: a batch the parent's thread was
 * still copying when the fork happened must not leave the child waiting
 * for ever (nn.sweep forks its trials from a process that may have a
 * batch in flight). The batches are large, so that the copy is still
 * running when fork is called; a child that hangs is ended by its alarm. */
#include "check.h"
#include "internal.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

enum { ROWS = 2048, COLS = 4096, HANG_SECONDS = 60 };

/* out holds src's rows in rows' order. */
static int gathered_correctly(const nn_tensor *out, const nn_tensor *src, const nn_tensor *rows) {
  if (!out || out->ndim != 2 || out->size[0] != ROWS || out->size[1] != COLS) return 0;
  const float *o = nn_data(out), *s = nn_data(src);
  const int64_t *index = nn_data(rows);
  for (int64_t i = 0; i < ROWS; i++)
    if (memcmp(o + i * COLS, s + index[i] * COLS, sizeof(float) * COLS) != 0) return 0;
  return 1;
}

/* A batch is in flight when the process forks: both processes get it. */
static void check_fork_during_a_copy(nn_tensor *src, nn_tensor *rows) {
  nn_gather_job *job = nn_gather_rows_start(src, rows, 0, ROWS);
  CHECK(job != NULL);
  if (!job) return;
  fflush(stdout);
  pid_t pid = fork();
  if (pid == 0) {
    alarm(HANG_SECONDS);
    nn_tensor *out = nn_gather_rows_finish(job);
    int ok = gathered_correctly(out, src, rows);
    /* and the child's own prefetch thread works */
    nn_gather_job *again = nn_gather_rows_start(src, rows, 0, ROWS);
    nn_tensor *out2 = nn_gather_rows_finish(again);
    ok = ok && gathered_correctly(out2, src, rows);
    _exit(ok ? 0 : 1);
  }
  CHECK(pid > 0);
  nn_tensor *out = nn_gather_rows_finish(job);
  CHECK(gathered_correctly(out, src, rows));
  nn_release(out);
  if (pid <= 0) return;
  int status = 0;
  CHECK(waitpid(pid, &status, 0) == pid);
  if (WIFSIGNALED(status))
    CHECKF(0, "the child died of signal %d (%s): it waited for the parent's copy", WTERMSIG(status),
           strsignal(WTERMSIG(status)));
  else
    CHECKF(WIFEXITED(status) && WEXITSTATUS(status) == 0, "the child's batches are wrong");
}

/* nn_prefetch_stop ends the thread after the batch in flight; the next batch
   starts a new one. */
static void check_stop_and_restart(nn_tensor *src, nn_tensor *rows) {
  nn_gather_job *job = nn_gather_rows_start(src, rows, 0, ROWS);
  nn_prefetch_stop();
  nn_tensor *out = nn_gather_rows_finish(job);
  CHECK(gathered_correctly(out, src, rows));
  nn_release(out);
  nn_prefetch_stop(); /* a second stop, with no thread, does nothing */
  job = nn_gather_rows_start(src, rows, 0, ROWS);
  out = nn_gather_rows_finish(job);
  CHECK(gathered_correctly(out, src, rows));
  nn_release(out);
  nn_prefetch_stop();
}

int main(void) {
  nn_tensor *src = OK(nn_randn(NN_FLOAT32, 2, (int64_t[]){ROWS, COLS}));
  nn_tensor *rows = OK(nn_permutation(ROWS, 7, 0));
  if (!src || !rows) return check_finish();
  for (int attempt = 0; attempt < 3; attempt++) check_fork_during_a_copy(src, rows);
  check_stop_and_restart(src, rows);
  nn_release(src);
  nn_release(rows);
  return check_finish();
}

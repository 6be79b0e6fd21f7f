/* thread.c: the engine's and the binding's background threads (the data
 * loader's prefetch, the sweep's file sync): started on first use in each
 * process, stopped on request, forgotten by a forked child. */
#define _GNU_SOURCE /* pthread_setname_np */
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include "nn.h"

/* The new thread inherits the signal mask in force while it is created:
   block everything for that moment, so that a signal sent to the process
   (a child's SIGCHLD, a Ctrl-C) is always taken by one of the caller's
   threads, which expect it, never by this one. */
static int start_blocked(pthread_t *thread, const char *name, void *(*main)(void *)) {
  sigset_t all, old;
  sigfillset(&all);
  int err = pthread_sigmask(SIG_SETMASK, &all, &old);
  if (err) return err;
  err = pthread_create(thread, NULL, main, NULL);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  if (err) return err;
  pthread_setname_np(*thread, name); /* only for debuggers and top -H: a failure is harmless */
  return 0;
}

int nn_worker_thread_start(nn_worker_thread *w, const char *name, void *(*main)(void *),
                           void (*before_fork)(void), void (*after_fork_parent)(void),
                           void (*after_fork_child)(void)) {
  if (w->owner == getpid()) return 0;
  if (!w->fork_handlers_set) {
    /* without them, a fork could leave the child waiting on a thread it has not */
    if (pthread_atfork(before_fork, after_fork_parent, after_fork_child) != 0) return -1;
    w->fork_handlers_set = 1;
  }
  if (start_blocked(&w->thread, name, main) != 0) return -1;
  w->owner = getpid();
  return 0;
}

void nn_worker_thread_stop(nn_worker_thread *w) {
  if (w->owner != getpid()) return;
  pthread_mutex_lock(&w->lock);
  w->stopping = 1;
  pthread_cond_signal(&w->wake);
  pthread_mutex_unlock(&w->lock);
  pthread_join(w->thread, NULL);
  w->stopping = 0;
  w->owner = 0;
}

void nn_worker_thread_forget(nn_worker_thread *w) {
  /* The lock may have been held by the forking thread, and the condition
     variable may count the parent's thread as a waiter. */
  pthread_mutex_init(&w->lock, NULL);
  pthread_cond_init(&w->wake, NULL);
  w->stopping = 0;
  w->owner = 0;
}

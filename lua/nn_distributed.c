/* nn_distributed.c: the C side of nn.distributed. A group of processes (the
 * ranks mpirun started, or this process alone) and its collectives on
 * tensors, run by MPI's non-blocking collectives (MPI_Iallreduce...) so
 * that a rank can do other work meanwhile (DataParallel sends gradients
 * while backward runs) and so that no wait is ever blind:
 *
 *  - Every wait polls its request and, between polls, a control channel (a
 *    communicator of its own) where a rank that leaves the program says so
 *    (its error, or that its script ended), and checks that the ranks on
 *    this machine are still alive. A peer that failed, died, or ended
 *    before the collective this rank waits in makes the wait raise an error
 *    that names it. Past the timeout (30 s unless nn.distributed.init says
 *    otherwise) the wait asks every rank where it is and raises an error
 *    that says which ranks did not answer or wait elsewhere.
 *  - Open MPI's mpirun itself stops every rank when one dies (SIGTERM): a
 *    handler then names the dead rank (as this program counts ranks, from
 *    1) before the process ends as the signal would end it.
 *  - At exit, a rank tells the others it leaves; after an error it waits a
 *    little for them to stop too (so that each prints why) and skips
 *    MPI_Finalize, which would wait for a failed rank for ever.
 *
 * Collectives are chosen by the tensors' device through a transport (the
 * tables below): CPU tensors go over MPI. CUDA tensors go over NCCL on
 * device memory (the engine's nn_collective_*), its communicator made at
 * the first CUDA collective from an id that rank 1 broadcasts over this
 * group's MPI, when every rank has NCCL; else they are staged through
 * host memory over MPI, as Gloo does for PyTorch. The waits, the control
 * channel and the Lua side are the same for both. */
#define _GNU_SOURCE /* on_exit */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "nn_binding.h"
#include "nn_mpi.h"

#define WORK_METATABLE "nn.distributed.Work"
#define MESSAGE_MAX 1000 /* what a rank's leaving message carries of its error */

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void sleep_seconds(double s) {
  struct timespec ts = {(time_t)s, (long)((s - floor(s)) * 1e9)};
  nanosleep(&ts, NULL);
}

/* ---- the group ---------------------------------------------------------- */
enum { CUDA_UNDECIDED, CUDA_OVER_NCCL, CUDA_THROUGH_HOST };
typedef enum { STAYS, ENDED, FAILED, STOPPED } leaving; /* STOPPED: failed because another did */

typedef struct {
  pid_t pid;
  int same_host;      /* its pid can be checked from here */
  int dead;           /* its process is gone (same host only) */
  leaving left;       /* what its leaving message said */
  uint64_t left_seq;  /* the collectives it had started when it left */
  char reason[MESSAGE_MAX + 1];
  /* its answer to this rank's last question (a timeout's diagnosis) */
  int answered, answer_waiting;
  uint64_t answer_seq;
  char answer_op[32];
} peer;

static struct {
  int up;              /* init was called */
  int multi;           /* over MPI (under mpirun), else a group of one */
  int rank, size;      /* 0-based rank */
  double timeout;      /* seconds a wait may last */
  nnl_mpi_handle data; /* the collectives' communicator */
  nnl_mpi_handle ctrl; /* the control channel's */
  uint64_t seq;        /* collectives started */
  /* where this rank is, for a peer's question */
  const char *waiting_op;
  uint64_t waiting_seq;
  peer *peers;         /* size of them (this rank's own unused) */
  char broken[1400];   /* why the group stopped; "" while it works */
  int cuda_over;       /* how CUDA tensors travel: CUDA_UNDECIDED until the first CUDA collective */
  int cuda_wanted;     /* init{cuda = }: CUDA_UNDECIDED (NCCL where every rank has it), or one of them */
  int exiting;
} group = {.timeout = 30};

static char fatal_message[MESSAGE_MAX + 1]; /* the error that ends the script, if any */

void nnl_note_fatal_error(const char *message) {
  /* the first line and what follows up to the traceback */
  const char *end = strstr(message, "\nstack traceback:");
  size_t n = end ? (size_t)(end - message) : strlen(message);
  if (n > MESSAGE_MAX) n = MESSAGE_MAX;
  memcpy(fatal_message, message, n);
  fatal_message[n] = '\0';
}

/* Marks the group failed; every later call raises this message. */
static void set_broken(const char *fmt, ...) {
  if (group.broken[0]) return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(group.broken, sizeof group.broken, fmt, ap);
  va_end(ap);
  nnl_mpi.abandoned = 1; /* MPI_Finalize would wait for the failed rank */
  /* NCCL's queued collectives would wait for the failed rank for ever */
  if (group.cuda_over == CUDA_OVER_NCCL) nn_collective_abort(NN_CUDA);
}

static int raise_broken(lua_State *L) { return nnl_error(L, "%s", group.broken); }

/* ---- liveness of the ranks on this machine ------------------------------ */
/* A pid means the same process only on the same machine, booted once, in
   the same pid namespace: the key of that, with the host's name. */
static void host_key(char *key, size_t len) {
  char host[64] = "?", boot[40] = "", ns[40] = "";
  gethostname(host, sizeof host - 1);
  int fd = open("/proc/sys/kernel/random/boot_id", O_RDONLY | O_CLOEXEC);
  if (fd >= 0) {
    ssize_t n = read(fd, boot, sizeof boot - 1);
    boot[n > 0 ? n : 0] = '\0';
    close(fd);
  }
  ssize_t n = readlink("/proc/self/ns/pid", ns, sizeof ns - 1);
  ns[n > 0 ? n : 0] = '\0';
  snprintf(key, len, "%s|%.36s|%s", host, boot, ns);
}

/* The process has exited (a zombie counts: it will never answer). Only
   async-signal-safe calls: the SIGTERM handler uses it. */
static int process_gone(pid_t pid) {
  if (kill(pid, 0) < 0 && errno == ESRCH) return 1;
  char path[40] = "/proc/", stat[256];
  size_t k = 6;
  char digits[16];
  int d = 0;
  for (pid_t p = pid; p > 0 && d < 15; p /= 10) digits[d++] = (char)('0' + p % 10);
  while (d > 0) path[k++] = digits[--d];
  memcpy(path + k, "/stat", 6);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 1;
  ssize_t n = read(fd, stat, sizeof stat - 1);
  close(fd);
  if (n <= 0) return 1;
  stat[n] = '\0';
  /* "pid (name) S ...": the state follows the last ')' */
  char *close_paren = NULL;
  for (char *c = stat; *c; c++)
    if (*c == ')') close_paren = c;
  return close_paren && close_paren[1] == ' ' && (close_paren[2] == 'Z' || close_paren[2] == 'X');
}

/* ---- the control channel ------------------------------------------------ */
enum { TAG_LEAVING = 1, TAG_QUESTION, TAG_ANSWER };

/* A control message's bytes stay until MPI is done with them. */
typedef struct outgoing {
  nnl_mpi_handle request;
  struct outgoing *next;
  char text[];
} outgoing;
static outgoing *sending;

static void finish_sends(void) {
  for (outgoing **p = &sending; *p;) {
    int done = 0;
    if (nnl_mpi.test(&(*p)->request, &done, NULL) != NNL_MPI_SUCCESS) done = 1; /* a dead peer */
    if (!done) {
      p = &(*p)->next;
      continue;
    }
    outgoing *o = *p;
    *p = o->next;
    free(o);
  }
}

static void send_control(int dest, int tag, const char *fmt, ...) {
  char text[MESSAGE_MAX + 64];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(text, sizeof text, fmt, ap);
  va_end(ap);
  if (n < 0) return;
  size_t len = strlen(text) + 1;
  outgoing *o = malloc(sizeof *o + len);
  if (!o) return; /* the message is lost; the peer's timeout remains */
  memcpy(o->text, text, len);
  if (nnl_mpi.isend(o->text, (int)len, nnl_mpi.byte, dest, tag, group.ctrl, &o->request) != NNL_MPI_SUCCESS) {
    free(o);
    return;
  }
  o->next = sending;
  sending = o;
}

/* Reads every control message that has arrived: leaving ranks, and
   questions (answered at once) and answers of a timeout's diagnosis. */
static void service_control(void) {
  finish_sends();
  for (;;) {
    int flag = 0, count = 0;
    nnl_mpi_status status;
    if (nnl_mpi.iprobe(NNL_MPI_ANY, NNL_MPI_ANY, group.ctrl, &flag, &status) != NNL_MPI_SUCCESS || !flag)
      return;
    if (nnl_mpi.get_count(&status, nnl_mpi.byte, &count) != NNL_MPI_SUCCESS || count < 0) return;
    char *text = malloc((size_t)count + 1);
    if (!text) return;
    if (nnl_mpi.recv(text, count, nnl_mpi.byte, status.source, status.tag, group.ctrl, &status) !=
        NNL_MPI_SUCCESS) {
      free(text);
      return;
    }
    text[count] = '\0';
    peer *p = status.source >= 0 && status.source < group.size ? &group.peers[status.source] : NULL;
    unsigned long long seq = 0;
    int kind = 0, offset = 0;
    if (p && status.tag == TAG_LEAVING && sscanf(text, "%llu %d %n", &seq, &kind, &offset) >= 2) {
      p->left = kind == FAILED || kind == STOPPED ? (leaving)kind : ENDED;
      p->left_seq = seq;
      snprintf(p->reason, sizeof p->reason, "%s", text + offset);
    } else if (p && status.tag == TAG_QUESTION) {
      send_control(status.source, TAG_ANSWER, "%llu %d %s",
                   (unsigned long long)(group.waiting_op ? group.waiting_seq : group.seq),
                   group.waiting_op != NULL, group.waiting_op ? group.waiting_op : "-");
    } else if (p && status.tag == TAG_ANSWER &&
               sscanf(text, "%llu %d %31s", &seq, &p->answer_waiting, p->answer_op) == 3) {
      p->answered = 1;
      p->answer_seq = seq;
    }
    free(text);
  }
}

static void check_liveness(void) {
  for (int r = 0; r < group.size; r++)
    if (r != group.rank && group.peers[r].same_host && !group.peers[r].dead)
      group.peers[r].dead = process_gone(group.peers[r].pid);
}

/* Whether a peer's state means the collective seq can never complete; if
   so, the group breaks with a message naming it. A rank that left after
   starting seq took part in it: the wait goes on. Own failures are named
   before ends, and those before ranks that stopped because of another. */
static int peers_prevent(const char *op, uint64_t seq) {
  static const leaving order[] = {FAILED, ENDED, STOPPED};
  for (int r = 0; r < group.size; r++) {
    peer *p = &group.peers[r];
    if (r != group.rank && p->dead && p->left == STAYS) {
      set_broken("distributed: rank %d (pid %d) died (killed, or it crashed) while rank %d waited "
                 "for it in %s #%llu", r + 1, (int)p->pid, group.rank + 1, op, (unsigned long long)seq);
      return 1;
    }
  }
  for (int k = 0; k < 3; k++)
    for (int r = 0; r < group.size; r++) {
      peer *p = &group.peers[r];
      if (r == group.rank || p->left != order[k] || p->left_seq >= seq) continue;
      if (p->left == ENDED)
        set_broken("distributed: rank %d ended its script before %s #%llu, which rank %d waits in "
                   "(the ranks did not make the same collective calls)", r + 1, op,
                   (unsigned long long)seq, group.rank + 1);
      else
        set_broken("distributed: rank %d failed: %s (rank %d was waiting for it in %s #%llu)", r + 1,
                   p->reason, group.rank + 1, op, (unsigned long long)seq);
      return 1;
    }
  return 0;
}

/* ---- work: one collective in flight -------------------------------------- */
typedef struct work {
  int refs;               /* the in-flight list's, and a Lua Work's */
  nnl_mpi_handle request; /* MPI's */
  void *device_request;   /* a device's own (NCCL's), when not NULL */
  int done;
  const char *op;
  uint64_t seq;
  nn_tensor *buffer;      /* what MPI writes (contiguous), held until done */
  nn_tensor *target;      /* the caller's tensor, when buffer is a copy of it */
  nn_tensor *send;        /* what MPI reads, when it is not buffer */
  double divide;          /* mean: the sum is divided by this when done */
  struct work *next;
} work;

static work *in_flight;

static void work_unref(work *w) {
  if (--w->refs > 0) return;
  nn_release(w->buffer);
  nn_release(w->target);
  nn_release(w->send);
  free(w);
}

/* The collective completed: the result is made final and what MPI used
   is let go (the caller's tensors stay with the caller). */
static void complete(work *w) {
  w->done = 1;
  if (w->buffer) {
    int recording = nn_grad_enabled();
    nn_set_grad_enabled(0);
    if (w->divide > 1 && nn_binary_scalar_(NN_DIV, w->buffer, w->divide) < 0)
      set_broken("distributed: %s: %s", w->op, nn_error());
    if (w->target && nn_copy_(w->target, w->buffer) < 0) set_broken("distributed: %s: %s", w->op, nn_error());
    nn_set_grad_enabled(recording);
    nn_tensor_written(w->target ? w->target : w->buffer);
  }
  nn_release(w->send);
  w->send = NULL;
}

/* Tests every collective in flight, completing those that are done. */
static void progress(void) {
  for (work **p = &in_flight; *p;) {
    work *w = *p;
    int done = 0, code = NNL_MPI_SUCCESS;
    if (w->device_request) {
      int state = nn_collective_test(NN_CUDA, w->device_request);
      if (state < 0) {
        w->device_request = NULL; /* gone with the failure */
        set_broken("distributed: %s #%llu failed in NCCL: %s", w->op, (unsigned long long)w->seq, nn_error());
        return;
      }
      if (state == 1) w->device_request = NULL, done = 1;
    } else {
      code = nnl_mpi.test(&w->request, &done, NULL);
    }
    if (code != NNL_MPI_SUCCESS) {
      char text[256];
      set_broken("distributed: %s #%llu failed in MPI: %s", w->op, (unsigned long long)w->seq,
                 nnl_mpi_error_text(code, text, sizeof text));
      return;
    }
    if (!done) {
      p = &w->next;
      continue;
    }
    complete(w);
    *p = w->next;
    work_unref(w);
  }
}

/* The ranks' answers to "where are you?", after a wait ran out of time. */
static void diagnose_timeout(const work *w) {
  for (int r = 0; r < group.size; r++) {
    group.peers[r].answered = 0;
    if (r != group.rank) send_control(r, TAG_QUESTION, "%llu", (unsigned long long)w->seq);
  }
  double until = now() + fmin(2, group.timeout);
  int missing = group.size - 1;
  while (missing > 0 && now() < until && !group.broken[0]) {
    progress();
    service_control();
    missing = 0;
    for (int r = 0; r < group.size; r++) missing += r != group.rank && !group.peers[r].answered;
    sleep_seconds(0.001);
  }
  char text[1024] = "";
  size_t used = 0;
  for (int r = 0; r < group.size && used < sizeof text; r++) {
    peer *p = &group.peers[r];
    if (r == group.rank || (p->answered && p->answer_seq == w->seq)) continue;
    if (!p->answered)
      used += snprintf(text + used, sizeof text - used, "; rank %d did not answer (busy outside "
                       "nn.distributed, or hung)", r + 1);
    else if (p->answer_waiting)
      used += snprintf(text + used, sizeof text - used, "; rank %d waits in %s #%llu", r + 1,
                       p->answer_op, (unsigned long long)p->answer_seq);
    else
      used += snprintf(text + used, sizeof text - used, "; rank %d has started %llu collectives and "
                       "waits in none", r + 1, (unsigned long long)p->answer_seq);
  }
  if (!used) snprintf(text, sizeof text, "; every rank waits in it, and MPI has not completed it");
  set_broken("distributed: %s #%llu did not complete within %g s%s (a rank that works longer "
             "alone needs a longer timeout: nn.distributed.init{timeout = seconds})",
             w->op, (unsigned long long)w->seq, group.timeout, text);
}

/* Waits until w completes; a peer's failure or the timeout breaks the
   group (the caller raises). Spins first, as MPI's own waits do (the
   transfers progress only inside MPI calls), then sleeps a little longer
   each time, so that a rank waiting long for others leaves them the CPU. */
static void wait_work(work *w) {
  double start = now(), next_check = start, nap = 20e-6;
  const char *outer_op = group.waiting_op;
  uint64_t outer_seq = group.waiting_seq;
  group.waiting_op = w->op;
  group.waiting_seq = w->seq;
  while (!w->done && !group.broken[0]) {
    progress();
    if (w->done || group.broken[0]) break;
    double t = now();
    if (t >= next_check && group.peers) {
      service_control();
      check_liveness();
      if (peers_prevent(w->op, w->seq)) break;
      next_check = t + 0.02;
    }
    if (t - start > group.timeout) {
      diagnose_timeout(w);
      break;
    }
    if (t - start < 0.05) {
      sched_yield();
    } else {
      sleep_seconds(nap);
      nap = fmin(nap * 2, 2e-3);
    }
  }
  group.waiting_op = outer_op;
  group.waiting_seq = outer_seq;
}

/* ---- the transport of CPU tensors: MPI ----------------------------------- */
typedef enum { OP_SUM, OP_MEAN, OP_MAX, OP_MIN } reduce_op;
static const char *const op_names[] = {"sum", "mean", "max", "min", NULL};

/* What a device's collectives do, on contiguous buffers of count elements;
   each starts one (setting w->request or w->device_request) and returns 0
   or the library's code, which error_text explains. */
struct work;
typedef struct {
  const char *name;
  int (*all_reduce)(struct work *w, void *buf, int count, nn_dtype dtype, reduce_op op);
  int (*broadcast)(struct work *w, void *buf, int count, nn_dtype dtype, int root);
  int (*all_gather)(struct work *w, const void *send, void *recv, int count, nn_dtype dtype);
  int (*reduce_scatter)(struct work *w, const void *send, void *recv, int count, nn_dtype dtype,
                        reduce_op op);
  const char *(*error_text)(int code, char *text, size_t len);
  int on_host;         /* works on host memory: a device's tensors are staged through it */
} transport;

static nnl_mpi_handle mpi_type(nn_dtype dtype) {
  switch (dtype) {
  case NN_FLOAT32: return nnl_mpi.float32;
  case NN_FLOAT64: return nnl_mpi.float64;
  case NN_INT64: return nnl_mpi.int64;
  default: return nnl_mpi.uint8; /* bool: one byte, 0 or 1 */
  }
}

/* A bool's sum is a logical or (as PyTorch's NCCL backend makes it): the
   maximum of 0s and 1s; mean has been divided out by the caller. */
static nnl_mpi_handle mpi_op(nn_dtype dtype, reduce_op op) {
  if (op == OP_MIN) return nnl_mpi.op_min;
  if (op == OP_MAX || dtype == NN_BOOL) return nnl_mpi.op_max;
  return nnl_mpi.op_sum;
}

static int mpi_all_reduce(work *w, void *buf, int count, nn_dtype dtype, reduce_op op) {
  return nnl_mpi.iallreduce(NNL_MPI_IN_PLACE, buf, count, mpi_type(dtype), mpi_op(dtype, op), group.data,
                            &w->request);
}
static int mpi_broadcast(work *w, void *buf, int count, nn_dtype dtype, int root) {
  return nnl_mpi.ibcast(buf, count, mpi_type(dtype), root, group.data, &w->request);
}
static int mpi_all_gather(work *w, const void *send, void *recv, int count, nn_dtype dtype) {
  return nnl_mpi.iallgather(send, count, mpi_type(dtype), recv, count, mpi_type(dtype), group.data,
                            &w->request);
}
static int mpi_reduce_scatter(work *w, const void *send, void *recv, int count, nn_dtype dtype, reduce_op op) {
  return nnl_mpi.ireduce_scatter_block(send, recv, count, mpi_type(dtype), mpi_op(dtype, op), group.data,
                                       &w->request);
}
static const char *mpi_text(int code, char *text, size_t len) { return nnl_mpi_error_text(code, text, len); }

static const transport mpi_transport = {"MPI", mpi_all_reduce, mpi_broadcast, mpi_all_gather,
                                        mpi_reduce_scatter, mpi_text, 1};

/* ---- the transport of CUDA tensors: NCCL ---------------------------------- */
static int nccl_start(work *w, nn_collective_kind kind, const void *send, void *recv, int count,
                      nn_dtype dtype, reduce_op op, int root) {
  nn_collective_op cop = op == OP_MAX ? NN_COLLECTIVE_MAX : op == OP_MIN ? NN_COLLECTIVE_MIN : NN_COLLECTIVE_SUM;
  nn_collective_args a = {kind, cop, root, dtype, count, send, recv};
  return nn_collective_start(NN_CUDA, &a, &w->device_request) < 0 ? -1 : 0;
}
static int nccl_all_reduce(work *w, void *buf, int count, nn_dtype dtype, reduce_op op) {
  return nccl_start(w, NN_COLLECTIVE_ALL_REDUCE, buf, buf, count, dtype, op, 0);
}
static int nccl_broadcast(work *w, void *buf, int count, nn_dtype dtype, int root) {
  return nccl_start(w, NN_COLLECTIVE_BROADCAST, buf, buf, count, dtype, OP_SUM, root);
}
static int nccl_all_gather(work *w, const void *send, void *recv, int count, nn_dtype dtype) {
  return nccl_start(w, NN_COLLECTIVE_ALL_GATHER, send, recv, count, dtype, OP_SUM, 0);
}
static int nccl_reduce_scatter(work *w, const void *send, void *recv, int count, nn_dtype dtype, reduce_op op) {
  return nccl_start(w, NN_COLLECTIVE_REDUCE_SCATTER, send, recv, count, dtype, op, 0);
}
static const char *nccl_text(int code, char *text, size_t len) {
  (void)code;
  snprintf(text, len, "%s", nn_error());
  return text;
}

static const transport nccl_transport = {"NCCL", nccl_all_reduce, nccl_broadcast, nccl_all_gather,
                                         nccl_reduce_scatter, nccl_text, 0};

/* ---- starting collectives ------------------------------------------------ */
static void check_group(lua_State *L, const char *op) {
  if (!group.up) nnl_error(L, "distributed.%s: call nn.distributed.init() first", op);
  if (group.broken[0]) raise_broken(L);
}

/* A new work (one reference: the caller's); the caller starts its request. */
static work *work_start(lua_State *L, const char *op) {
  work *w = calloc(1, sizeof *w);
  if (!w) nnl_error(L, "distributed.%s: out of memory", op);
  w->refs = 1;
  w->op = op;
  return w;
}

/* The request was started (code 0): the work joins those in flight, which
   hold a reference until it completes. Otherwise the group breaks: a
   collective that started on some ranks only cannot be taken back. */
static void work_launched(lua_State *L, work *w, const transport *tr, int code) {
  w->seq = ++group.seq;
  if (code != 0) {
    char text[512];
    set_broken("distributed: %s #%llu could not start in %s: %s", w->op, (unsigned long long)w->seq,
               tr->name, tr->error_text(code, text, sizeof text));
    work_unref(w);
    raise_broken(L);
  }
  w->refs++;
  work **end = &in_flight;
  while (*end) end = &(*end)->next;
  *end = w;
}

typedef struct {
  work *w;
} work_box;

/* Returns the work's result to Lua, taking the caller's reference: a Work
   (async) whose user value is the result, or, after waiting, the result
   itself (nothing for a barrier). */
static int finish(lua_State *L, work *w, int result_idx, int async) {
  if (async) {
    work_box *box = lua_newuserdatauv(L, sizeof *box, 1);
    box->w = NULL;
    luaL_setmetatable(L, WORK_METATABLE);
    box->w = w; /* after anything that could raise */
    if (result_idx) {
      lua_pushvalue(L, result_idx);
      lua_setiuservalue(L, -2, 1);
    }
    return 1;
  }
  wait_work(w);
  work_unref(w);
  if (group.broken[0]) return raise_broken(L);
  if (!result_idx) return 0;
  lua_pushvalue(L, result_idx);
  return 1;
}

/* These two drop the work (not yet started) before they raise. */
static int check_count(lua_State *L, work *w, const char *op, int64_t n) {
  if (n <= INT_MAX) return (int)n;
  work_unref(w);
  return nnl_error(L, "distributed.%s: %lld elements are more than one MPI call takes (2^31 - 1)", op,
                   (long long)n);
}

/* Starts one collective of MPI on a CPU tensor and waits for it: the
   choice of the CUDA transport (below) agrees through these. */
static void host_collective(lua_State *L, const char *op, nn_tensor *t, int broadcast) {
  work *w = work_start(L, op);
  w->buffer = nn_retain(t);
  int count = (int)nn_numel(t);
  work_launched(L, w, &mpi_transport,
                broadcast ? mpi_broadcast(w, nn_tensor_data(t), count, t->dtype, 0)
                          : mpi_all_reduce(w, nn_tensor_data(t), count, t->dtype, OP_MIN));
  wait_work(w);
  work_unref(w);
  if (group.broken[0]) raise_broken(L);
}

/* At the first collective on CUDA tensors (every rank calls it, in the
   same order as the others): NCCL when every rank has it, its group made
   from an id rank 1 sends the others; host memory over MPI otherwise. */
static void choose_cuda_transport(lua_State *L, const char *op) {
  if (group.cuda_over != CUDA_UNDECIDED) return;
  char why[512] = "";
  int here = group.cuda_wanted != CUDA_THROUGH_HOST && nn_collective_available(NN_CUDA, why, sizeof why);
  if (!group.multi) {
    /* a group of one that asked for NCCL (on one GPU: NCCL checked alone) */
    unsigned char alone[NN_COLLECTIVE_ID_BYTES];
    if (!here)
      nnl_error(L, "distributed.%s: NCCL was asked for (init{cuda = \"nccl\"}), but %s", op, why);
    if (nn_collective_id(NN_CUDA, alone) < 0 || nn_collective_join(NN_CUDA, alone, 0, 1) < 0)
      nnl_error(L, "distributed.%s: NCCL could not start: %s", op, nn_error());
    group.cuda_over = CUDA_OVER_NCCL;
    return;
  }
  int64_t one = 1, id_bytes = NN_COLLECTIVE_ID_BYTES;
  nn_tensor *every = nn_full(NN_INT64, 1, &one, here);
  if (!every) nnl_engine_error(L);
  nnl_push_tensor(L, every); /* Lua frees it, whatever happens */
  host_collective(L, op, every, 0);
  lua_pop(L, 1);
  if (*(const int64_t *)nn_tensor_data(every) == 0) {
    /* every rank learns the same, so every rank raises alike */
    if (group.cuda_wanted == CUDA_OVER_NCCL)
      nnl_error(L, "distributed.%s: NCCL was asked for (init{cuda = \"nccl\"}), but %s", op,
                here ? "another rank has none" : why);
    group.cuda_over = CUDA_THROUGH_HOST;
    return;
  }
  nn_tensor *id = nn_zeros(NN_UINT8, 1, &id_bytes);
  if (!id) nnl_engine_error(L);
  nnl_push_tensor(L, id);
  if (group.rank == 0 && nn_collective_id(NN_CUDA, nn_tensor_data(id)) < 0) {
    set_broken("distributed: %s: NCCL could not make a group on rank 1: %s", op, nn_error());
    raise_broken(L);
  }
  host_collective(L, op, id, 1);
  if (nn_collective_join(NN_CUDA, nn_tensor_data(id), group.rank, group.size) < 0) {
    set_broken("distributed: %s: rank %d could not join NCCL's group: %s", op, group.rank + 1, nn_error());
    raise_broken(L);
  }
  lua_pop(L, 1);
  group.cuda_over = CUDA_OVER_NCCL;
}

/* Whether a collective on t is a group of one's, which leaves t as it is:
   alone, unless a CUDA tensor is to go through NCCL all the same. */
static int alone_keeps(const nn_tensor *t) {
  return !group.multi && !(t->device == NN_CUDA && group.cuda_wanted == CUDA_OVER_NCCL);
}

/* How t travels; checked before a work is made (the choice of the CUDA
   transport is itself a collective). */
static const transport *transport_of(lua_State *L, const char *op, nn_tensor *t) {
  /* a replay would not talk to the other ranks: the step runs eagerly */
  nn_capture_refuse("capture: distributed.%s exchanges tensors with the other ranks, which a replay "
                    "cannot do", op);
  if (t->dtype != NN_FLOAT32 && t->dtype != NN_FLOAT64 && t->dtype != NN_INT64 && t->dtype != NN_BOOL)
    nnl_error(L, "distributed.%s: the collectives take float32, float64, int64 and bool tensors, this "
              "one is %s; convert it first", op, nn_dtype_name(t->dtype));
  if (t->device == NN_CPU) return &mpi_transport;
  choose_cuda_transport(L, op);
  return group.cuda_over == CUDA_OVER_NCCL ? &nccl_transport : &mpi_transport;
}

static reduce_op check_op(lua_State *L, int idx, const char *op, nn_tensor *t) {
  const char *name = luaL_optstring(L, idx, "sum");
  for (int k = 0; op_names[k]; k++) {
    if (strcmp(name, op_names[k]) != 0) continue;
    if (k == OP_MEAN && !nn_dtype_is_floating(t->dtype))
      nnl_error(L, "distributed.%s: mean needs a floating-point tensor, this one is %s (use \"sum\")",
                op, nn_dtype_name(t->dtype));
    return (reduce_op)k;
  }
  return (reduce_op)nnl_error(L, "distributed.%s: unknown operation \"%s\" (sum, mean, max or min)", op,
                              name);
}

/* t as the transport reads it: t itself when it is contiguous and where
   the transport works, else a copy (contiguous, in host memory for a
   transport on the host); NULL with the engine's error. */
static nn_tensor *readable(const transport *tr, nn_tensor *t) {
  if (tr->on_host && t->device != NN_CPU) {
    nn_tensor *host = nn_to_device(t, NN_CPU);
    nn_tensor *flat = host ? nn_contiguous(host) : NULL;
    nn_release(host);
    return flat;
  }
  return nn_contiguous(t);
}

/* A contiguous tensor the transport may write into: t itself, or a copy of
   it that the work copies back into t when done. */
static void take_buffer(lua_State *L, work *w, const transport *tr, nn_tensor *t) {
  if (nn_is_contiguous(t) && !(tr->on_host && t->device != NN_CPU)) {
    w->buffer = nn_retain(t);
    return;
  }
  w->buffer = readable(tr, t);
  if (!w->buffer) {
    work_unref(w);
    nnl_engine_error(L);
  }
  w->target = nn_retain(t);
}

/* dist_all_reduce(t, op, async) -> t, or a Work */
static int l_all_reduce(lua_State *L) {
  nn_tensor *t = nnl_check_tensor(L, 1, "all_reduce");
  check_group(L, "all_reduce");
  reduce_op op = check_op(L, 2, "all_reduce", t);
  int async = lua_toboolean(L, 3);
  const transport *tr = alone_keeps(t) ? NULL : transport_of(L, "all_reduce", t);
  work *w = work_start(L, "all_reduce");
  if (!tr) {
    w->done = 1; /* a group of one: the sum, max, min and mean of one tensor is itself */
    w->seq = ++group.seq;
    return finish(L, w, 1, async);
  }
  int count = check_count(L, w, "all_reduce", nn_numel(t));
  take_buffer(L, w, tr, t);
  if (op == OP_MEAN) w->divide = group.size;
  work_launched(L, w, tr, tr->all_reduce(w, nn_tensor_data(w->buffer), count, t->dtype, op));
  return finish(L, w, 1, async);
}

/* dist_broadcast(t, root, async) -> t, or a Work; root is 0-based here */
static int l_broadcast(lua_State *L) {
  nn_tensor *t = nnl_check_tensor(L, 1, "broadcast");
  check_group(L, "broadcast");
  lua_Integer root = luaL_checkinteger(L, 2);
  if (root < 0 || root >= group.size)
    return nnl_error(L, "distributed.broadcast: rank %I is not in the group (1..%d)", root + 1, group.size);
  int async = lua_toboolean(L, 3);
  const transport *tr = alone_keeps(t) ? NULL : transport_of(L, "broadcast", t);
  work *w = work_start(L, "broadcast");
  if (!tr) {
    w->done = 1;
    w->seq = ++group.seq;
    return finish(L, w, 1, async);
  }
  int count = check_count(L, w, "broadcast", nn_numel(t));
  take_buffer(L, w, tr, t);
  work_launched(L, w, tr, tr->broadcast(w, nn_tensor_data(w->buffer), count, t->dtype, (int)root));
  return finish(L, w, 1, async);
}

/* A new tensor of `rows` copies of t's shape (rows x t's sizes): all_gather's
   result; a first dimension of rows added to a shape. */
static nn_tensor *stacked(lua_State *L, nn_tensor *t, int64_t rows, const char *op) {
  if (t->ndim >= NN_MAX_DIMS)
    nnl_error(L, "distributed.%s: a tensor of %d dimensions has no room for the ranks' one", op, t->ndim);
  int64_t size[NN_MAX_DIMS];
  size[0] = rows;
  for (int i = 0; i < t->ndim; i++) size[i + 1] = t->size[i];
  nn_tensor *out = nn_zeros(t->dtype, t->ndim + 1, size);
  if (out && t->device != NN_CPU) {
    nn_tensor *moved = nn_to_device(out, t->device);
    nn_release(out);
    out = moved;
  }
  return out;
}

/* dist_all_gather(t, async) -> a tensor (size x t's shape): row r is rank r's t */
static int l_all_gather(lua_State *L) {
  nn_tensor *t = nnl_check_tensor(L, 1, "all_gather");
  check_group(L, "all_gather");
  int async = lua_toboolean(L, 2);
  const transport *tr = alone_keeps(t) ? NULL : transport_of(L, "all_gather", t);
  nn_tensor *out = stacked(L, t, group.size, "all_gather");
  nnl_push_tensor(L, out); /* owned by Lua from here */
  int result = lua_gettop(L);
  work *w = work_start(L, "all_gather");
  if (!tr) {
    nn_tensor *row = nn_select(out, 0, 0);
    int status = row ? nn_copy_(row, t) : -1;
    nn_release(row);
    if (status < 0) {
      work_unref(w);
      return nnl_engine_error(L);
    }
    w->done = 1;
    w->seq = ++group.seq;
    return finish(L, w, result, async);
  }
  w->send = readable(tr, t);
  if (!w->send) {
    work_unref(w);
    return nnl_engine_error(L);
  }
  take_buffer(L, w, tr, out);
  int count = check_count(L, w, "all_gather", nn_numel(out));
  work_launched(L, w, tr, tr->all_gather(w, nn_tensor_data(w->send), nn_tensor_data(w->buffer),
                                         count / group.size, t->dtype));
  return finish(L, w, result, async);
}

/* dist_reduce_scatter(x, op, async) -> x[rank] reduced over the ranks; x's
   first dimension is the group's size */
static int l_reduce_scatter(lua_State *L) {
  nn_tensor *x = nnl_check_tensor(L, 1, "reduce_scatter");
  check_group(L, "reduce_scatter");
  reduce_op op = check_op(L, 2, "reduce_scatter", x);
  int async = lua_toboolean(L, 3);
  if (x->ndim == 0 || x->size[0] != group.size)
    return nnl_error(L, "distributed.reduce_scatter: the tensor's first dimension must be the number of "
                     "ranks (%d), one block for each; got %s", group.size,
                     x->ndim == 0 ? "a 0-dimensional tensor" : "another size");
  const transport *tr = alone_keeps(x) ? NULL : transport_of(L, "reduce_scatter", x);
  nn_tensor *mine = nn_select(x, 0, group.rank);
  nn_tensor *out = mine ? nn_clone(mine) : NULL;
  nn_release(mine);
  if (!out) return nnl_engine_error(L);
  nnl_push_tensor(L, out);
  int result = lua_gettop(L);
  work *w = work_start(L, "reduce_scatter");
  if (!tr) {
    w->done = 1;
    w->seq = ++group.seq;
    return finish(L, w, result, async);
  }
  w->send = readable(tr, x);
  if (!w->send) {
    work_unref(w);
    return nnl_engine_error(L);
  }
  take_buffer(L, w, tr, out);
  if (op == OP_MEAN) w->divide = group.size;
  int count = check_count(L, w, "reduce_scatter", nn_numel(x));
  work_launched(L, w, tr, tr->reduce_scatter(w, nn_tensor_data(w->send), nn_tensor_data(w->buffer),
                                             count / group.size, x->dtype, op));
  return finish(L, w, result, async);
}

/* dist_barrier(async) */
static int l_barrier(lua_State *L) {
  check_group(L, "barrier");
  int async = lua_toboolean(L, 1);
  work *w = work_start(L, "barrier");
  if (!group.multi) {
    w->done = 1;
    w->seq = ++group.seq;
    return finish(L, w, 0, async);
  }
  nn_capture_refuse("capture: distributed.barrier waits for the other ranks, which a replay cannot do");
  work_launched(L, w, &mpi_transport, nnl_mpi.ibarrier(group.data, &w->request));
  return finish(L, w, 0, async);
}

/* dist_transport(device) -> "mpi", "nccl" or "mpi through host memory":
   how that device's tensors travel (for a CUDA tensor, chosen at the
   first CUDA collective, which this is then: every rank calls it). */
static int l_transport(lua_State *L) {
  static const char *const devices[] = {"cpu", "cuda", NULL};
  int device = luaL_checkoption(L, 1, NULL, devices);
  check_group(L, "get_backend");
  if (device == NN_CPU || (!group.multi && group.cuda_wanted != CUDA_OVER_NCCL)) {
    lua_pushstring(L, group.multi ? "mpi" : "none");
    return 1;
  }
  if (!nn_device_available(NN_CUDA))
    return nnl_error(L, "distributed.get_backend: cuda is not available: %s",
                     nn_device_unavailable_reason(NN_CUDA));
  choose_cuda_transport(L, "get_backend");
  lua_pushstring(L, group.cuda_over == CUDA_OVER_NCCL ? "nccl" : "mpi through host memory");
  return 1;
}

/* dist_progress(): moves the collectives in flight on (MPI moves data only
   inside its calls) and reads the control channel; DataParallel calls it
   from its gradient hooks while backward runs. Raises when the group broke. */
static int l_progress(lua_State *L) {
  if (!group.up || !group.multi) return 0;
  if (group.broken[0]) return raise_broken(L);
  progress();
  service_control();
  if (group.broken[0]) return raise_broken(L);
  return 0;
}

/* ---- Work objects ---------------------------------------------------------- */
static work *check_work(lua_State *L) {
  work_box *box = luaL_checkudata(L, 1, WORK_METATABLE);
  return box->w;
}

/* work:wait() -> the result (the tensor; nothing for a barrier) */
static int work_wait(lua_State *L) {
  work *w = check_work(L);
  if (!w->done) {
    if (group.broken[0]) return raise_broken(L);
    wait_work(w);
    if (group.broken[0]) return raise_broken(L);
  }
  lua_getiuservalue(L, 1, 1);
  return lua_isnil(L, -1) ? 0 : 1;
}

/* work:is_completed() -> whether it is done (testing it moves it on) */
static int work_is_completed(lua_State *L) {
  work *w = check_work(L);
  if (!w->done && group.multi && !group.broken[0]) {
    progress();
    service_control();
  }
  lua_pushboolean(L, w->done);
  return 1;
}

static int work_gc(lua_State *L) {
  work_box *box = luaL_checkudata(L, 1, WORK_METATABLE);
  if (box->w) work_unref(box->w);
  box->w = NULL;
  return 0;
}

static int work_tostring(lua_State *L) {
  work *w = check_work(L);
  lua_pushfstring(L, "Work(%s #%I, %s)", w->op, (lua_Integer)w->seq, w->done ? "completed" : "in flight");
  return 1;
}

/* ---- leaving: signals and exit ------------------------------------------- */
static void write_text(char *buf, size_t *used, size_t cap, const char *s) {
  while (*s && *used + 1 < cap) buf[(*used)++] = *s++;
}
static void write_number(char *buf, size_t *used, size_t cap, long v) {
  char digits[24];
  int d = 0;
  if (v == 0) digits[d++] = '0';
  for (; v > 0 && d < 23; v /= 10) digits[d++] = (char)('0' + v % 10);
  while (d > 0 && *used + 1 < cap) buf[(*used)++] = digits[--d];
}

/* mpirun ends every rank (SIGTERM) when one dies: name the dead one here,
   as this program counts ranks, and end as the signal would end us. Only
   async-signal-safe calls. */
static void on_sigterm(int sig) {
  if (!group.exiting) {
    char text[600];
    size_t used = 0;
    write_text(text, &used, sizeof text, "nnlua: distributed: rank ");
    write_number(text, &used, sizeof text, group.rank + 1);
    write_text(text, &used, sizeof text, " was stopped by mpirun");
    int named = 0;
    for (int r = 0; r < group.size; r++) {
      if (r == group.rank || !group.peers[r].same_host || !process_gone(group.peers[r].pid)) continue;
      write_text(text, &used, sizeof text, named++ ? ", rank " : " after rank ");
      write_number(text, &used, sizeof text, r + 1);
      write_text(text, &used, sizeof text, " (pid ");
      write_number(text, &used, sizeof text, group.peers[r].pid);
      /* a rank that did not say it leaves was killed, or crashed */
      write_text(text, &used, sizeof text,
                 group.peers[r].left == STAYS ? ") died" : group.peers[r].left == ENDED ? ") ended" : ") failed");
    }
    if (!named) write_text(text, &used, sizeof text, " (mpirun's message names the rank it lost, counting from 0)");
    text[used++] = '\n';
    ssize_t ignored = write(2, text, used);
    (void)ignored;
  }
  signal(sig, SIG_DFL);
  raise(sig);
}

static int all_peers_gone(void) {
  for (int r = 0; r < group.size; r++)
    if (r != group.rank && group.peers[r].left == STAYS && !group.peers[r].dead) return 0;
  return 1;
}

/* At exit, tell the others. After a clean end, the collectives still in
   flight complete first and MPI_Finalize follows (nn_mpi.c). After an
   error, or when the group broke, wait a little for the others to stop
   too, each saying why, and skip MPI_Finalize. */
static void leave(int status, void *unused) {
  (void)unused;
  if (!group.multi || !nnl_mpi_ready() || group.exiting) return;
  group.exiting = 1;
  fflush(NULL);
  int failed = status != 0 || group.broken[0];
  leaving how = !failed ? ENDED : group.broken[0] ? STOPPED : FAILED;
  char reason[MESSAGE_MAX + 1];
  if (how == STOPPED) snprintf(reason, sizeof reason, "%.*s", MESSAGE_MAX, group.broken);
  else if (fatal_message[0]) snprintf(reason, sizeof reason, "%s", fatal_message);
  else snprintf(reason, sizeof reason, "it exited with status %d", status);
  for (int r = 0; r < group.size; r++)
    if (r != group.rank) send_control(r, TAG_LEAVING, "%llu %d %s", (unsigned long long)group.seq, (int)how, reason);
  if (!failed) {
    for (work *w = in_flight; w && !group.broken[0]; w = in_flight) {
      w->refs++;
      wait_work(w);
      work_unref(w);
    }
  } else {
    double until = now() + fmin(3, group.timeout);
    while (now() < until) {
      service_control();
      check_liveness();
      if (all_peers_gone()) break;
      sleep_seconds(0.002);
    }
    nnl_mpi.abandoned = 1;
  }
  double until = now() + 1;
  while (sending && now() < until) { /* the leaving messages go out before MPI ends */
    finish_sends();
    sleep_seconds(0.001);
  }
}

#ifndef __GLIBC__
/* Without glibc's on_exit the exit status is unknown: an error the
   interpreter reported stands for it. */
static void leave_with_unknown_status(void) { leave(fatal_message[0] ? 1 : 0, NULL); }
#endif

/* ---- init ------------------------------------------------------------------- */
static int check_timeout(lua_State *L, int idx) {
  if (lua_isnoneornil(L, idx)) return 0;
  double t = luaL_checknumber(L, idx);
  if (!(t > 0)) return nnl_error(L, "distributed.init: timeout must be a positive number of seconds");
  group.timeout = t;
  return 0;
}

/* Waits for a request of the set-up, before the peers are known. */
static void wait_setup(lua_State *L, const char *what, int code, nnl_mpi_handle *request) {
  if (code != NNL_MPI_SUCCESS) {
    char text[256];
    set_broken("distributed.init: %s failed: %s", what, nnl_mpi_error_text(code, text, sizeof text));
    raise_broken(L);
  }
  double start = now();
  for (;;) {
    int done = 0;
    code = nnl_mpi.test(request, &done, NULL);
    if (code != NNL_MPI_SUCCESS) {
      char text[256];
      set_broken("distributed.init: %s failed: %s", what, nnl_mpi_error_text(code, text, sizeof text));
      raise_broken(L);
    }
    if (done) break;
    if (now() - start > group.timeout) {
      set_broken("distributed.init: %s did not complete within %g s: some rank has not called "
                 "nn.distributed.init()", what, group.timeout);
      raise_broken(L);
    }
    sleep_seconds(now() - start < 0.05 ? 0 : 1e-3);
  }
}

/* dist_init([timeout]) -> rank (0-based), size, over_mpi */
/* init's cuda option (argument 2): nil, "nccl" or "host"; a choice made
   already stays. */
static void check_cuda_wanted(lua_State *L) {
  static const char *const names[] = {"nccl", "host", NULL};
  if (lua_isnoneornil(L, 2)) return;
  if (lua_type(L, 2) != LUA_TSTRING)
    nnl_error(L, "distributed.init: cuda must be \"nccl\" or \"host\", got a %s", luaL_typename(L, 2));
  int k = 0;
  while (names[k] && strcmp(names[k], lua_tostring(L, 2)) != 0) k++;
  if (!names[k])
    nnl_error(L, "distributed.init: cuda must be \"nccl\" or \"host\", got \"%s\"", lua_tostring(L, 2));
  int wanted = k == 0 ? CUDA_OVER_NCCL : CUDA_THROUGH_HOST;
  if (group.cuda_over != CUDA_UNDECIDED && group.cuda_over != wanted)
    nnl_error(L, "distributed.init: CUDA tensors travel %s already (chosen at the first CUDA collective)",
              group.cuda_over == CUDA_OVER_NCCL ? "over NCCL" : "through host memory");
  group.cuda_wanted = wanted;
}

static int l_init(lua_State *L) {
  check_timeout(L, 1);
  check_cuda_wanted(L);
  if (group.broken[0]) return raise_broken(L);
  if (!group.up) {
    int under_mpirun = getenv("OMPI_COMM_WORLD_SIZE") || getenv("PMIX_RANK");
    group.size = 1;
    if (under_mpirun) {
      const char *failure = nnl_mpi_start();
      if (failure)
        return nnl_error(L, "distributed.init: this process was started by mpirun, but MPI cannot "
                         "start: %s", failure);
      group.rank = nnl_mpi.rank;
      group.size = nnl_mpi.size;
    }
    group.multi = group.size > 1;
    if (group.multi) {
      nnl_mpi_handle request;
      wait_setup(L, "MPI_Comm_idup", nnl_mpi.comm_idup(nnl_mpi.comm_world, &group.ctrl, &request), &request);
      wait_setup(L, "MPI_Comm_idup", nnl_mpi.comm_idup(nnl_mpi.comm_world, &group.data, &request), &request);
      nnl_mpi.comm_set_errhandler(group.ctrl, nnl_mpi.errors_return);
      nnl_mpi.comm_set_errhandler(group.data, nnl_mpi.errors_return);
      /* who is where: pids, and which of them this machine can check */
      typedef struct {
        int64_t pid;
        char host[184];
      } identity;
      identity *all = lua_newuserdatauv(L, sizeof *all * (size_t)group.size, 0), mine = {getpid(), ""};
      host_key(mine.host, sizeof mine.host);
      wait_setup(L, "MPI_Iallgather", nnl_mpi.iallgather(&mine, (int)sizeof mine, nnl_mpi.byte, all,
                                                         (int)sizeof mine, nnl_mpi.byte, group.ctrl, &request),
                 &request);
      group.peers = calloc((size_t)group.size, sizeof *group.peers);
      if (!group.peers) return nnl_error(L, "distributed.init: out of memory");
      for (int r = 0; r < group.size; r++) {
        group.peers[r].pid = (pid_t)all[r].pid;
        group.peers[r].same_host = strcmp(all[r].host, mine.host) == 0;
      }
      lua_pop(L, 1);
#ifdef __GLIBC__
      on_exit(leave, NULL);
#else
      atexit(leave_with_unknown_status);
#endif
      signal(SIGTERM, on_sigterm);
    }
    group.up = 1;
  }
  lua_pushinteger(L, group.rank);
  lua_pushinteger(L, group.size);
  lua_pushboolean(L, group.multi);
  return 3;
}

static int l_set_timeout(lua_State *L) { return check_timeout(L, 1); }

static const luaL_Reg distributed_functions[] = {
    {"dist_init", l_init}, {"dist_set_timeout", l_set_timeout}, {"dist_all_reduce", l_all_reduce},
    {"dist_broadcast", l_broadcast}, {"dist_all_gather", l_all_gather},
    {"dist_reduce_scatter", l_reduce_scatter}, {"dist_barrier", l_barrier},
    {"dist_progress", l_progress}, {"dist_transport", l_transport}, {NULL, NULL}};

static const luaL_Reg work_methods[] = {
    {"wait", work_wait}, {"is_completed", work_is_completed}, {NULL, NULL}};

void nnl_register_distributed(lua_State *L) {
  luaL_setfuncs(L, distributed_functions, 0);
  if (luaL_newmetatable(L, WORK_METATABLE)) {
    luaL_newlib(L, work_methods);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, work_gc);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, work_tostring);
    lua_setfield(L, -2, "__tostring");
    lua_pushliteral(L, "Work");
    lua_setfield(L, -2, "__name");
  }
  lua_pop(L, 1);
}

/* nn_system.c: what nn's Lua modules need from the operating system that
 * Lua's standard library lacks (processes, file sync, terminals).
 *
 * nn.sweep runs each trial in a forked copy of the interpreter and talks to
 * it through a pipe; the functions below are thin wrappers of the POSIX
 * calls it needs, registered in the core table as nn._C.sys_*, plus the
 * terminal questions a progress bar asks (sys_isatty, sys_terminal_width)
 * and one background thread that syncs a sweep's results file to the disk.
 * They report a failed system call the way Lua's io library does: nil and
 * a message.
 *
 * Under mpirun, nn.sweep also spreads trials over MPI ranks: its MPI calls
 * are in nn_mpi.c. */
#define _GNU_SOURCE /* sched_getaffinity and CPU_COUNT, pipe2 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif

#include "nn_binding.h"

/* Pushes nil and "what: strerror(errno)"; returns 2 (Lua's io convention). */
static int push_failure(lua_State *L, const char *what) {
  int saved = errno;
  lua_pushnil(L);
  lua_pushfstring(L, "%s: %s", what, strerror(saved));
  return 2;
}

/* A process id at idx; with group, a negative one names a process group.
 * Never 0 or -1, which kill(2) and waitpid(2) read as "my group" and
 * "every process". */
static pid_t check_pid(lua_State *L, int idx, int group) {
  lua_Integer pid = luaL_checkinteger(L, idx);
  int ok = pid >= 1 && pid <= INT_MAX;
  if (group) ok = ok || (pid <= -2 && pid >= -(lua_Integer)INT_MAX);
  if (!ok) luaL_argerror(L, idx, group ? "not a process or process group id" : "not a process id");
  return (pid_t)pid;
}

static int check_fd(lua_State *L, int idx) {
  lua_Integer fd = luaL_checkinteger(L, idx);
  if (fd < 0 || fd > INT_MAX) luaL_argerror(L, idx, "not a file descriptor");
  return (int)fd;
}

/* ---- processes --------------------------------------------------------- */

/* sys_fork([own_group]) -> pid in the parent, 0 in the child (nil, message
 * on failure): a process for one trial of a sweep. Buffered output is
 * flushed first, so that the child does not print the parent's pending
 * output a second time. The child is killed when its parent dies (Linux),
 * so a sweep killed with SIGKILL leaves no trials running behind it, and it
 * ignores SIGINT: a Ctrl-C at the terminal reaches the whole process group,
 * and it is the parent's to handle (it ends its trials), not a failure of
 * each trial. With own_group, the child leads a new process group (its id
 * is the child's pid), so that sys_kill(-pid, ...) also ends every process
 * the child starts in turn. */
static int l_fork(lua_State *L) {
  int own_group = lua_toboolean(L, 1);
  fflush(NULL);
  pid_t parent = getpid();
  pid_t pid = fork();
  if (pid < 0) return push_failure(L, "fork");
  if (pid == 0) {
    signal(SIGINT, SIG_IGN);
    /* Both sides set the group, so that it exists whichever runs first. */
    if (own_group && setpgid(0, 0) < 0) _exit(1);
#ifdef __linux__
    prctl(PR_SET_PDEATHSIG, SIGKILL);
#endif
    /* The parent may have died before prctl took effect. */
    if (getppid() != parent) _exit(1);
  } else if (own_group) {
    setpgid(pid, pid); /* fails only when the child already did it, or died */
  }
  lua_pushinteger(L, (lua_Integer)pid);
  return 1;
}

/* sys_exit(code): ends this process at once, after flushing stdio. Unlike
 * os.exit it runs no atexit handlers, which in a forked trial belong to the
 * parent (libmpi's, for one). */
static int l_exit(lua_State *L) {
  lua_Integer code = luaL_optinteger(L, 1, 0);
  fflush(NULL);
  _exit((int)(code & 0xff));
  return 0;
}

/* sys_waitpid(pid [, block]) -> nil while it runs; "exit", code; or
 * "signal", number, name. */
static int l_waitpid(lua_State *L) {
  pid_t pid = check_pid(L, 1, 0);
  int block = lua_toboolean(L, 2);
  int status = 0;
  pid_t got;
  do {
    got = waitpid(pid, &status, block ? 0 : WNOHANG);
  } while (got < 0 && errno == EINTR);
  if (got < 0) return push_failure(L, "waitpid");
  if (got == 0) {
    lua_pushnil(L);
    return 1;
  }
  if (WIFSIGNALED(status)) {
    int sig = WTERMSIG(status);
    lua_pushliteral(L, "signal");
    lua_pushinteger(L, sig);
    lua_pushstring(L, strsignal(sig));
    return 3;
  }
  lua_pushliteral(L, "exit");
  lua_pushinteger(L, WIFEXITED(status) ? WEXITSTATUS(status) : -1);
  return 2;
}

static const struct {
  const char *name;
  int number;
} signal_names[] = {{"KILL", SIGKILL}, {"TERM", SIGTERM}, {"INT", SIGINT},
                    {"SEGV", SIGSEGV}, {"ABRT", SIGABRT}, {"HUP", SIGHUP},
                    {"USR1", SIGUSR1}, {"USR2", SIGUSR2}, {NULL, 0}};

/* sys_kill(pid, signal): signal is a number or a name ("KILL", "TERM"...);
 * a negative pid is a process group (kill(2)'s convention). */
static int l_kill(lua_State *L) {
  pid_t pid = check_pid(L, 1, 1);
  int sig = -1;
  if (lua_type(L, 2) == LUA_TNUMBER) {
    lua_Integer number = luaL_checkinteger(L, 2);
    if (number < 0 || number > SIGRTMAX) return luaL_argerror(L, 2, "not a signal number");
    sig = (int)number;
  } else {
    const char *name = luaL_checkstring(L, 2);
    if (strncmp(name, "SIG", 3) == 0) name += 3;
    for (int i = 0; signal_names[i].name; i++)
      if (strcmp(name, signal_names[i].name) == 0) sig = signal_names[i].number;
    if (sig < 0) return luaL_argerror(L, 2, "unknown signal name");
  }
  if (kill(pid, sig) < 0) return push_failure(L, "kill");
  lua_pushboolean(L, 1);
  return 1;
}

static int l_getpid(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)getpid());
  return 1;
}

/* sys_cpu_count(): the cores this process may run on (its affinity mask,
 * which is what a container or taskset leaves it), at least 1. */
static int l_cpu_count(lua_State *L) {
  long n = 0;
#ifdef __linux__
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof set, &set) == 0) n = CPU_COUNT(&set);
#endif
  if (n < 1) n = sysconf(_SC_NPROCESSORS_ONLN);
  lua_pushinteger(L, n < 1 ? 1 : n);
  return 1;
}

static int l_hostname(lua_State *L) {
  char name[256];
  if (gethostname(name, sizeof name) < 0) return push_failure(L, "gethostname");
  name[sizeof name - 1] = '\0';
  lua_pushstring(L, name);
  return 1;
}

/* sys_sleep(seconds): sleeps, resuming after signals. */
static int l_sleep(lua_State *L) {
  double s = luaL_checknumber(L, 1);
  if (!(s > 0)) return 0;
  if (s > 1e9) s = 1e9; /* 30 years: within any time_t */
  struct timespec ts = {(time_t)s, (long)((s - floor(s)) * 1e9)};
  while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {
  }
  return 0;
}

/* ---- pipes and descriptors ---------------------------------------------- */

/* sys_pipe() -> read_fd, write_fd. Both close on exec; the read end does
 * not block, since the parent reads it only after poll says so. */
static int l_pipe(lua_State *L) {
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) < 0) return push_failure(L, "pipe");
  int flags = fcntl(fds[0], F_GETFL);
  if (flags < 0 || fcntl(fds[0], F_SETFL, flags | O_NONBLOCK) < 0) {
    int saved = errno;
    close(fds[0]);
    close(fds[1]);
    errno = saved;
    return push_failure(L, "pipe");
  }
  lua_pushinteger(L, fds[0]);
  lua_pushinteger(L, fds[1]);
  return 2;
}

static int l_close(lua_State *L) {
  if (close(check_fd(L, 1)) < 0 && errno != EINTR) return push_failure(L, "close");
  lua_pushboolean(L, 1);
  return 1;
}

/* sys_write(fd, s): writes all of s (a pipe may take it in pieces). */
static int l_write(lua_State *L) {
  int fd = check_fd(L, 1);
  size_t len;
  const char *s = luaL_checklstring(L, 2, &len);
  while (len > 0) {
    ssize_t n = write(fd, s, len);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        struct pollfd p = {fd, POLLOUT, 0};
        poll(&p, 1, -1);
        continue;
      }
      return push_failure(L, "write");
    }
    s += n;
    len -= (size_t)n;
  }
  lua_pushboolean(L, 1);
  return 1;
}

/* sys_read(fd [, max]) -> the bytes available (up to max, default 64 KiB),
 * "" at end of file, or false when nothing is there yet. */
static int l_read(lua_State *L) {
  int fd = check_fd(L, 1);
  lua_Integer max = luaL_optinteger(L, 2, 65536);
  if (max < 1 || max > (1 << 24)) return luaL_argerror(L, 2, "size out of range");
  luaL_Buffer b;
  char *p = luaL_buffinitsize(L, &b, (size_t)max);
  ssize_t n;
  do {
    n = read(fd, p, (size_t)max);
  } while (n < 0 && errno == EINTR);
  if (n < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      lua_pushboolean(L, 0);
      return 1;
    }
    return push_failure(L, "read");
  }
  luaL_pushresultsize(&b, (size_t)n);
  return 1;
}

/* sys_poll(fds, timeout) -> the list of fds that can be read (or were
 * closed at the other end). timeout in seconds; negative or nil waits for
 * ever. A signal ends the wait early with an empty list. */
static int l_poll(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  double timeout = luaL_optnumber(L, 2, -1);
  lua_Integer n = luaL_len(L, 1);
  if (n < 0 || n > 65536) return luaL_argerror(L, 1, "too many descriptors");
  struct pollfd *p = lua_newuserdatauv(L, sizeof *p * (size_t)(n > 0 ? n : 1), 0);
  for (lua_Integer i = 0; i < n; i++) {
    lua_geti(L, 1, i + 1);
    p[i].fd = check_fd(L, -1);
    p[i].events = POLLIN;
    p[i].revents = 0;
    lua_pop(L, 1);
  }
  int ms = -1;
  if (timeout >= 0) ms = timeout * 1000 >= INT_MAX ? INT_MAX : (int)ceil(timeout * 1000);
  int ready = poll(p, (nfds_t)n, ms);
  if (ready < 0 && errno != EINTR) return push_failure(L, "poll");
  lua_createtable(L, ready > 0 ? ready : 0, 0);
  lua_Integer k = 0;
  for (lua_Integer i = 0; i < n && ready > 0; i++)
    if (p[i].revents) {
      lua_pushinteger(L, p[i].fd);
      lua_rawseti(L, -2, ++k);
    }
  return 1;
}

/* sys_redirect(fd, path): points fd (1 for stdout) at path, appending. */
static int l_redirect(lua_State *L) {
  int fd = check_fd(L, 1);
  const char *path = luaL_checkstring(L, 2);
  fflush(NULL);
  int to = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (to < 0) return push_failure(L, path);
  int ok = dup2(to, fd) >= 0;
  int saved = errno;
  close(to);
  errno = saved;
  if (!ok) return push_failure(L, "dup2");
  lua_pushboolean(L, 1);
  return 1;
}

/* ---- terminals ---------------------------------------------------------- */

/* sys_isatty(fd) -> whether fd (2 for stderr) is a terminal. */
static int l_isatty(lua_State *L) {
  lua_pushboolean(L, isatty(check_fd(L, 1)));
  return 1;
}

/* sys_terminal_width(fd) -> the terminal's columns and rows, or nothing. */
static int l_terminal_width(lua_State *L) {
  struct winsize ws;
  if (ioctl(check_fd(L, 1), TIOCGWINSZ, &ws) < 0 || ws.ws_col == 0) return 0;
  lua_pushinteger(L, ws.ws_col);
  lua_pushinteger(L, ws.ws_row);
  return 2;
}

/* ---- files --------------------------------------------------------------- */

static FILE *check_file(lua_State *L, int idx) {
  luaL_Stream *stream = luaL_checkudata(L, idx, LUA_FILEHANDLE);
  if (stream->closef == NULL || stream->f == NULL) luaL_argerror(L, idx, "file is closed");
  return stream->f;
}

/* Background sync. A sweep's results must reach the disk, but fdatasync
 * takes milliseconds on many disks, as long as a short trial: the
 * scheduler flushes each line itself (after which a kill -9 of the process
 * loses nothing) and leaves the fdatasync to this thread, which covers every
 * line written before it starts, so bursts cost one sync. The thread is
 * stopped (after its last sync) before the module can be unloaded (see
 * "the module's lifetime" below), and a forked child starts without it. */
static struct {
  nn_worker_thread thread; /* its lock guards what follows */
  pthread_cond_t idle;
  int fd, error;
  unsigned long requested, completed;
} syncer = {.thread = NN_WORKER_THREAD_INIT, .idle = PTHREAD_COND_INITIALIZER, .fd = -1};

static int sync_fd(int fd) {
  int rc;
  do {
    rc = fdatasync(fd);
  } while (rc < 0 && errno == EINTR);
  /* Some files (pipes, /dev/null) cannot sync: nothing to lose there. */
  return rc < 0 && errno != EINVAL && errno != EROFS ? errno : 0;
}

static void *sync_thread(void *unused) {
  (void)unused;
  pthread_mutex_lock(&syncer.thread.lock);
  for (;;) {
    while (syncer.completed == syncer.requested && !syncer.thread.stopping)
      pthread_cond_wait(&syncer.thread.wake, &syncer.thread.lock);
    if (syncer.completed == syncer.requested) break; /* stopping, all synced */
    unsigned long target = syncer.requested;
    int fd = syncer.fd;
    pthread_mutex_unlock(&syncer.thread.lock);
    int err = sync_fd(fd);
    pthread_mutex_lock(&syncer.thread.lock);
    if (err && !syncer.error) syncer.error = err;
    syncer.completed = target;
    pthread_cond_broadcast(&syncer.idle);
  }
  pthread_mutex_unlock(&syncer.thread.lock);
  return NULL;
}

/* fork: the child has no sync thread (the parent's syncs are the parent's
   to finish); it starts its own at its first sys_sync_later. */
static void syncer_before_fork(void) { pthread_mutex_lock(&syncer.thread.lock); }
static void syncer_after_fork_parent(void) { pthread_mutex_unlock(&syncer.thread.lock); }
static void syncer_after_fork_child(void) {
  nn_worker_thread_forget(&syncer.thread);
  pthread_cond_init(&syncer.idle, NULL);
  syncer.fd = -1;
  syncer.error = 0;
  syncer.requested = syncer.completed = 0;
}

/* Starts this process's sync thread unless it runs; 0 when it cannot. */
static int syncer_ready(void) {
  return nn_worker_thread_start(&syncer.thread, "nn-sync", sync_thread, syncer_before_fork,
                                syncer_after_fork_parent, syncer_after_fork_child) == 0;
}

/* Waits until every requested sync is done; returns its first error. */
static int sync_wait_all(void) {
  if (syncer.thread.owner != getpid()) return 0;
  pthread_mutex_lock(&syncer.thread.lock);
  while (syncer.completed != syncer.requested) pthread_cond_wait(&syncer.idle, &syncer.thread.lock);
  int err = syncer.error;
  syncer.error = 0;
  pthread_mutex_unlock(&syncer.thread.lock);
  return err;
}

/* sys_fsync(file): flushes a Lua file and waits until its data is on the
 * disk (fdatasync: the data and the size, which is all a reader needs). */
static int l_fsync(lua_State *L) {
  FILE *f = check_file(L, 1);
  if (fflush(f) != 0) return push_failure(L, "fflush");
  errno = sync_fd(fileno(f));
  if (errno) return push_failure(L, "fsync");
  lua_pushboolean(L, 1);
  return 1;
}

/* sys_sync_later(file): flushes a Lua file now and has its data synced to
 * the disk in the background; sys_sync_wait() waits for that. An error of
 * an earlier background sync is reported by the next call. */
static int l_sync_later(lua_State *L) {
  FILE *f = check_file(L, 1);
  if (fflush(f) != 0) return push_failure(L, "fflush");
  int fd = fileno(f);
  if (!syncer_ready()) { /* no thread: sync here */
    errno = sync_fd(fd);
    if (errno) return push_failure(L, "fsync");
    lua_pushboolean(L, 1);
    return 1;
  }
  /* One file at a time: a new one waits until the last one's syncs are done. */
  if (syncer.fd != fd) {
    errno = sync_wait_all();
    if (errno) return push_failure(L, "fsync");
  }
  pthread_mutex_lock(&syncer.thread.lock);
  errno = syncer.error;
  syncer.error = 0;
  syncer.fd = fd;
  syncer.requested++;
  pthread_cond_signal(&syncer.thread.wake);
  pthread_mutex_unlock(&syncer.thread.lock);
  if (errno) return push_failure(L, "fsync");
  lua_pushboolean(L, 1);
  return 1;
}

static int l_sync_wait(lua_State *L) {
  errno = sync_wait_all();
  if (errno) return push_failure(L, "fsync");
  lua_pushboolean(L, 1);
  return 1;
}

/* sys_lock(file) -> true, or false when another process holds the lock:
 * an exclusive advisory lock on an open Lua file, held until it closes. */
static int l_lock(lua_State *L) {
  FILE *f = check_file(L, 1);
  if (flock(fileno(f), LOCK_EX | LOCK_NB) < 0) {
    if (errno == EWOULDBLOCK) {
      lua_pushboolean(L, 0);
      return 1;
    }
    return push_failure(L, "flock");
  }
  lua_pushboolean(L, 1);
  return 1;
}

/* nn.config(): what the CPU backend runs on */
static int l_config(lua_State *L) {
  nnl_check_nargs(L, 0, 0, "config", "");
  lua_createtable(L, 0, 4);
  lua_pushstring(L, nn_blas_config());
  lua_setfield(L, -2, "blas");
  lua_pushstring(L, nn_blas_kernels());
  lua_setfield(L, -2, "blas_kernels");
  lua_pushstring(L, nn_cpu_capability());
  lua_setfield(L, -2, "cpu_capability");
  lua_pushinteger(L, nn_get_num_threads());
  lua_setfield(L, -2, "threads");
  return 1;
}
/*** nn.config()
 * What the CPU backend runs on, as a table (PyTorch's
 * torch.__config__.show() and torch.backends.cpu.get_cpu_capability()):
 * blas, OpenBLAS's description of its build; blas_kernels, the kernels it
 * runs on this processor (where OPENBLAS_CORETYPE is not set, nnlua names
 * them from the processor's features: an OpenBLAS older than the processor
 * would run its slowest ones); cpu_capability, the instruction set of
 * nnlua's own loops ("avx512", "avx2" or "baseline"; NN_CPU_VECTOR caps
 * it); threads, nn.get_num_threads(). It loads OpenBLAS.
 *   local c = nn.config(); print(c.blas_kernels, c.cpu_capability)   --> SkylakeX  avx512
 */

static const luaL_Reg system_functions[] = {
    {"config", l_config},
    {"sys_fork", l_fork}, {"sys_exit", l_exit}, {"sys_waitpid", l_waitpid},
    {"sys_kill", l_kill}, {"sys_getpid", l_getpid}, {"sys_cpu_count", l_cpu_count},
    {"sys_hostname", l_hostname}, {"sys_sleep", l_sleep}, {"sys_pipe", l_pipe},
    {"sys_close", l_close}, {"sys_write", l_write}, {"sys_read", l_read},
    {"sys_poll", l_poll}, {"sys_redirect", l_redirect}, {"sys_fsync", l_fsync},
    {"sys_sync_later", l_sync_later}, {"sys_sync_wait", l_sync_wait}, {"sys_lock", l_lock}, {"sys_isatty", l_isatty}, {"sys_terminal_width", l_terminal_width},
    {NULL, NULL}};

/* ---- the module's lifetime -----------------------------------------------
 * A stock lua5.4 unloads nn.so (dlclose) when its state closes, and a
 * program that embeds Lua may go on running after that. Threads the module
 * started would then sleep on unmapped condition variables, and the next
 * signal that wakes one (a child's SIGCHLD) restarts the wait on unmapped
 * memory: glibc aborts the process. So:
 *  - each state that opens nn keeps a userdata in its registry whose __gc
 *    stops the threads when the last such state closes. It is marked for
 *    finalization after package's CLIBS table (made when the package
 *    library opened, before any require), and Lua runs finalizers in the
 *    reverse order of marking, so it runs before CLIBS's __gc unloads the
 *    library; so does every tensor's and gather job's, newer still;
 *  - nn.so is also marked never to be unloaded (RTLD_NODELETE), so that
 *    code of it that is still reachable in some other way (a thread
 *    restarted by a later finalizer, an atexit or atfork handler) stays
 *    mapped. */
#define MODULE_LIFETIME "nn.Lifetime"   /* the userdata's metatable */
#define MODULE_HOLD "nn.lifetime"         /* this state's userdata */

static pthread_mutex_t open_states_lock = PTHREAD_MUTEX_INITIALIZER;
static int open_states; /* Lua states in this process that opened nn */

static int lifetime_gc(lua_State *L) {
  int *open = luaL_checkudata(L, 1, MODULE_LIFETIME);
  if (!*open) return 0;
  *open = 0;
  pthread_mutex_lock(&open_states_lock);
  int last = --open_states == 0;
  pthread_mutex_unlock(&open_states_lock);
  if (last) {
    nn_prefetch_stop();
    nn_worker_thread_stop(&syncer.thread);
  }
  return 0;
}

static void keep_module_mapped(void) {
  Dl_info self;
  if (!dladdr((void *)keep_module_mapped, &self) || !self.dli_fname) return;
  /* RTLD_NOLOAD: only flags the object already loaded (nn.so, or nothing
     when this code is built into an executable such as nnlua). */
  void *handle = dlopen(self.dli_fname, RTLD_NOW | RTLD_NOLOAD | RTLD_NODELETE);
  if (handle) dlclose(handle);
}

static void hold_module(lua_State *L) {
  static pthread_once_t mapped_once = PTHREAD_ONCE_INIT;
  pthread_once(&mapped_once, keep_module_mapped);
  int *open = lua_newuserdatauv(L, sizeof *open, 0);
  *open = 0;
  if (luaL_newmetatable(L, MODULE_LIFETIME)) {
    lua_pushcfunction(L, lifetime_gc);
    lua_setfield(L, -2, "__gc");
    lua_pushboolean(L, 0); /* getmetatable shows nothing to call */
    lua_setfield(L, -2, "__metatable");
  }
  lua_setmetatable(L, -2);
  lua_setfield(L, LUA_REGISTRYINDEX, MODULE_HOLD);
  *open = 1;
  pthread_mutex_lock(&open_states_lock);
  open_states++;
  pthread_mutex_unlock(&open_states_lock);
}

void nnl_register_system(lua_State *L) {
  luaL_setfuncs(L, system_functions, 0);
  hold_module(L);
}

/* host_close.c: a program that embeds Lua, loads nn.so with require (as a
 * stock lua5.4 does), has the module start its background threads (the
 * data loader's prefetch, the sweep's file sync), closes the state and
 * goes on living.
 *
 * Closing the state unloads nn.so unless nn prevents it. A thread of nn's
 * left sleeping on a condition variable in the unmapped library is killed
 * by glibc ("The futex facility returned an unexpected error code") as
 * soon as a signal wakes it, which is what the SIGCHLD below does when the
 * main thread blocks it (as busted's os.execute does while its child runs).
 *
 * Usage: host_close BUILD_DIR (the folder that holds nn.so). */
#define _GNU_SOURCE /* RTLD_NOLOAD */
#include <dirent.h>
#include <dlfcn.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

static int failures;

static void check(int ok, const char *what) {
  if (!ok) {
    failures++;
    printf("FAIL: %s\n", what);
    fflush(stdout);
  }
}

/* The threads of this process called name (the kernel's comm). */
static int count_threads(const char *name) {
  DIR *tasks = opendir("/proc/self/task");
  if (!tasks) return -1;
  int count = 0;
  struct dirent *e;
  while ((e = readdir(tasks))) {
    if (e->d_name[0] == '.') continue;
    char path[300], comm[64] = "";
    snprintf(path, sizeof path, "/proc/self/task/%s/comm", e->d_name);
    FILE *f = fopen(path, "r");
    if (!f) continue; /* the thread ended while we looked */
    if (fgets(comm, sizeof comm, f)) comm[strcspn(comm, "\n")] = '\0';
    fclose(f);
    if (strcmp(comm, name) == 0) count++;
  }
  closedir(tasks);
  return count;
}

/* Loads nn, runs an epoch of a DataLoader (its prefetch thread starts) and
   a background sync (the sync thread starts). */
static const char *const use_nn =
    "local build = ...\n"
    "package.cpath = build .. '/?.so'\n"
    "local nn = require 'nn'\n"
    "local X, Y = nn.randn(64, 4), nn.randn(64, 1)\n"
    "local loader = nn.data.DataLoader(nn.data.TensorDataset(X, Y), {batch_size = 8})\n"
    "local batches = 0\n"
    "for x in loader:iter() do batches = batches + 1 end\n"
    "assert(batches == 8, 'batches: ' .. batches)\n"
    "local path = os.tmpname()\n"
    "local f = assert(io.open(path, 'w'))\n"
    "f:write('synced')\n"
    "local ok, err = nn._C.sys_sync_later(f)\n"
    "assert(ok, err)\n"
    "assert(nn._C.sys_sync_wait())\n"
    "f:close()\n"
    "os.remove(path)\n";

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: %s BUILD_DIR\n", argv[0]);
    return 2;
  }
  lua_State *L = luaL_newstate();
  if (!L) {
    fprintf(stderr, "host_close: cannot create a Lua state\n");
    return 1;
  }
  luaL_openlibs(L);
  if (luaL_loadstring(L, use_nn) != LUA_OK) {
    fprintf(stderr, "host_close: %s\n", lua_tostring(L, -1));
    return 1;
  }
  lua_pushstring(L, argv[1]);
  if (lua_pcall(L, 1, 0, 0) != LUA_OK) {
    fprintf(stderr, "host_close: %s\n", lua_tostring(L, -1));
    return 1;
  }
  /* Otherwise the checks after lua_close would prove nothing. */
  check(count_threads("nn-prefetch") == 1, "the prefetch thread runs while the state is open");
  check(count_threads("nn-sync") == 1, "the sync thread runs while the state is open");

  lua_close(L);
  check(count_threads("nn-prefetch") == 0, "no prefetch thread outlives the state");
  check(count_threads("nn-sync") == 0, "no sync thread outlives the state");
  char so[4096];
  snprintf(so, sizeof so, "%s/nn.so", argv[1]);
  void *still = dlopen(so, RTLD_NOW | RTLD_NOLOAD);
  check(still != NULL, "nn.so stays mapped after its state closes");
  if (still) dlclose(still);

  /* Block SIGCHLD here, so that the kernel hands it to another thread. */
  sigset_t chld;
  sigemptyset(&chld);
  sigaddset(&chld, SIGCHLD);
  pthread_sigmask(SIG_BLOCK, &chld, NULL);
  kill(getpid(), SIGCHLD);
  struct timespec pause = {0, 200 * 1000 * 1000};
  nanosleep(&pause, NULL);
  printf("host_close: %s\n", failures ? "FAILED" : "alive after closing its Lua state");
  return failures ? 1 : 0;
}

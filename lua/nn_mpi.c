/* nn_mpi.c: Open MPI, opened with dlopen at first use (nn_mpi.h says why
 * and what of its ABI is declared here), and the few messages nn.sweep
 * sends between ranks: nn._C.mpi_init, mpi_send, mpi_recv, mpi_finalize. */
#define _GNU_SOURCE
#include "nn_mpi.h"

#include <dlfcn.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "nn_binding.h"

nnl_mpi_library nnl_mpi;

/* Finalizes MPI when the process that started it exits normally; a forked
   trial that calls exit() must not, nor a process whose peer failed (see
   nn_distributed.c: MPI_Finalize would wait for that peer for ever). */
void nnl_mpi_finalize(void) {
  int done = 1;
  if (!nnl_mpi.finalize || nnl_mpi.ended || getpid() != nnl_mpi.owner) return;
  nnl_mpi.ended = 1;
  nnl_mpi.size = 0;
  if (nnl_mpi.abandoned) return;
  if (nnl_mpi.finalized(&done) == NNL_MPI_SUCCESS && !done) nnl_mpi.finalize();
}

int nnl_mpi_ready(void) { return nnl_mpi.size > 0 && !nnl_mpi.ended && getpid() == nnl_mpi.owner; }

const char *nnl_mpi_error_text(int code, char *buf, int len) {
  int n = 0;
  /* MPI_MAX_ERROR_STRING is 256 in Open MPI */
  char text[256];
  if (!nnl_mpi.error_string || nnl_mpi.error_string(code, text, &n) != NNL_MPI_SUCCESS) n = 0;
  if (n <= 0 || n >= (int)sizeof text) snprintf(buf, (size_t)len, "MPI error %d", code);
  else snprintf(buf, (size_t)len, "%.*s", n, text);
  return buf;
}

static void *symbol(const char *name, const char **missing) {
  void *p = dlsym(nnl_mpi.library, name);
  if (!p && !*missing) *missing = name;
  return p;
}

/* The function pointers are typed by nn_mpi.h; dlsym gives a void *. */
#define LOOKUP(field, name) *(void **)(&nnl_mpi.field) = symbol(name, &missing)

const char *nnl_mpi_start(void) {
  static char reason[512];
  if (nnl_mpi.ended) return "MPI was finalized in this process and cannot start again";
  if (nnl_mpi.size > 0) return getpid() == nnl_mpi.owner ? NULL : "MPI belongs to the parent process";
  static const char *const names[] = {"libmpi.so.40", "libmpi.so", "libmpi.so.12", NULL};
  for (int i = 0; names[i] && !nnl_mpi.library; i++)
    /* RTLD_GLOBAL: Open MPI's plugins expect libmpi's symbols to be global. */
    nnl_mpi.library = dlopen(names[i], RTLD_NOW | RTLD_GLOBAL);
  if (!nnl_mpi.library) {
    snprintf(reason, sizeof reason, "cannot load Open MPI's libmpi.so.40 (%s); install openmpi-bin",
             dlerror());
    return reason;
  }
  const char *missing = NULL;
  nnl_mpi.comm_world = symbol("ompi_mpi_comm_world", &missing);
  nnl_mpi.errors_return = symbol("ompi_mpi_errors_return", &missing);
  nnl_mpi.byte = symbol("ompi_mpi_byte", &missing);
  nnl_mpi.float32 = symbol("ompi_mpi_float", &missing);
  nnl_mpi.float64 = symbol("ompi_mpi_double", &missing);
  nnl_mpi.int64 = symbol("ompi_mpi_int64_t", &missing);
  nnl_mpi.uint8 = symbol("ompi_mpi_uint8_t", &missing);
  nnl_mpi.op_sum = symbol("ompi_mpi_op_sum", &missing);
  nnl_mpi.op_max = symbol("ompi_mpi_op_max", &missing);
  nnl_mpi.op_min = symbol("ompi_mpi_op_min", &missing);
  LOOKUP(init_thread, "MPI_Init_thread");
  LOOKUP(initialized, "MPI_Initialized");
  LOOKUP(finalized, "MPI_Finalized");
  LOOKUP(comm_rank, "MPI_Comm_rank");
  LOOKUP(comm_size, "MPI_Comm_size");
  LOOKUP(comm_idup, "MPI_Comm_idup");
  LOOKUP(comm_set_errhandler, "MPI_Comm_set_errhandler");
  LOOKUP(error_string, "MPI_Error_string");
  LOOKUP(send, "MPI_Send");
  LOOKUP(recv, "MPI_Recv");
  LOOKUP(isend, "MPI_Isend");
  LOOKUP(iprobe, "MPI_Iprobe");
  LOOKUP(probe, "MPI_Probe");
  LOOKUP(get_count, "MPI_Get_count");
  LOOKUP(test, "MPI_Test");
  LOOKUP(request_free, "MPI_Request_free");
  LOOKUP(iallreduce, "MPI_Iallreduce");
  LOOKUP(ibcast, "MPI_Ibcast");
  LOOKUP(iallgather, "MPI_Iallgather");
  LOOKUP(ireduce_scatter_block, "MPI_Ireduce_scatter_block");
  LOOKUP(ibarrier, "MPI_Ibarrier");
  int (*finalize)(void) = NULL;
  *(void **)(&finalize) = symbol("MPI_Finalize", &missing);
  if (missing) {
    snprintf(reason, sizeof reason, "libmpi has no %s: not Open MPI?", missing);
    return reason;
  }
  /* Open MPI's non-blocking allreduce (libnbc) otherwise picks, for fewer
     than 4 ranks or a buffer reduced in place, the binomial tree: one rank
     receives and reduces everything, about 3 times slower than a ring for
     a 25 MB gradient bucket (scripts/bench/distributed.lua measures it).
     The ring is what the blocking MPI_Allreduce achieves. A value given
     to mpirun (--mca coll_libnbc_iallreduce_algorithm) is kept. */
  setenv("OMPI_MCA_coll_libnbc_iallreduce_algorithm", "1", 0);
  int already = 0, provided = 0;
  nnl_mpi.initialized(&already);
  /* Only the thread that starts MPI calls it (FUNNELED): the engine's
     worker threads never do. */
  if (!already && nnl_mpi.init_thread(NULL, NULL, NNL_MPI_THREAD_FUNNELED, &provided) != NNL_MPI_SUCCESS)
    return "MPI_Init_thread failed";
  int rank = 0, size = 0;
  if (nnl_mpi.comm_rank(nnl_mpi.comm_world, &rank) != NNL_MPI_SUCCESS ||
      nnl_mpi.comm_size(nnl_mpi.comm_world, &size) != NNL_MPI_SUCCESS)
    return "MPI_Comm_rank/MPI_Comm_size failed";
  nnl_mpi.rank = rank;
  nnl_mpi.size = size;
  nnl_mpi.owner = getpid();
  if (!nnl_mpi.finalize) {
    nnl_mpi.finalize = finalize;
    atexit(nnl_mpi_finalize);
  }
  return NULL;
}

/* ---- nn.sweep's messages ------------------------------------------------ */

/* mpi_init() -> rank, size (0-based rank); or nil, message. */
static int l_mpi_init(lua_State *L) {
  const char *failure = nnl_mpi_start();
  if (failure) {
    lua_pushnil(L);
    lua_pushstring(L, failure);
    return 2;
  }
  lua_pushinteger(L, nnl_mpi.rank);
  lua_pushinteger(L, nnl_mpi.size);
  return 2;
}

static int check_int(lua_State *L, int idx) {
  lua_Integer v = luaL_checkinteger(L, idx);
  if (v < 0 || v > INT_MAX) luaL_argerror(L, idx, "out of range");
  return (int)v;
}

static void check_mpi(lua_State *L) {
  if (!nnl_mpi_ready()) luaL_error(L, "MPI is not initialized in this process");
}

/* mpi_send(dest, tag, bytes): a blocking send of a string. */
static int l_mpi_send(lua_State *L) {
  check_mpi(L);
  int dest = check_int(L, 1), tag = check_int(L, 2);
  size_t len;
  const char *s = luaL_checklstring(L, 3, &len);
  if (len > INT_MAX) return luaL_argerror(L, 3, "message too long");
  if (nnl_mpi.send(s, (int)len, nnl_mpi.byte, dest, tag, nnl_mpi.comm_world) != NNL_MPI_SUCCESS) {
    lua_pushnil(L);
    lua_pushfstring(L, "MPI_Send to rank %d failed", dest);
    return 2;
  }
  lua_pushboolean(L, 1);
  return 1;
}

/* mpi_recv([block]) -> bytes, source, tag: the next message from any rank
 * with any tag; without block, nil when none has arrived. */
static int l_mpi_recv(lua_State *L) {
  check_mpi(L);
  int block = lua_toboolean(L, 1);
  nnl_mpi_status status;
  memset(&status, 0, sizeof status);
  if (block) {
    if (nnl_mpi.probe(NNL_MPI_ANY, NNL_MPI_ANY, nnl_mpi.comm_world, &status) != NNL_MPI_SUCCESS)
      return luaL_error(L, "MPI_Probe failed");
  } else {
    int flag = 0;
    if (nnl_mpi.iprobe(NNL_MPI_ANY, NNL_MPI_ANY, nnl_mpi.comm_world, &flag, &status) != NNL_MPI_SUCCESS)
      return luaL_error(L, "MPI_Iprobe failed");
    if (!flag) return 0;
  }
  int count = 0;
  if (nnl_mpi.get_count(&status, nnl_mpi.byte, &count) != NNL_MPI_SUCCESS || count < 0)
    return luaL_error(L, "MPI_Get_count failed");
  int source = status.source, tag = status.tag;
  luaL_Buffer b;
  char *p = luaL_buffinitsize(L, &b, (size_t)count + 1);
  if (nnl_mpi.recv(p, count, nnl_mpi.byte, source, tag, nnl_mpi.comm_world, &status) != NNL_MPI_SUCCESS)
    return luaL_error(L, "MPI_Recv from rank %d failed", source);
  luaL_pushresultsize(&b, (size_t)count);
  lua_pushinteger(L, source);
  lua_pushinteger(L, tag);
  return 3;
}

static int l_mpi_finalize(lua_State *L) {
  (void)L;
  nnl_mpi_finalize();
  return 0;
}

static const luaL_Reg mpi_functions[] = {{"mpi_init", l_mpi_init},
                                         {"mpi_send", l_mpi_send},
                                         {"mpi_recv", l_mpi_recv},
                                         {"mpi_finalize", l_mpi_finalize},
                                         {NULL, NULL}};

void nnl_register_mpi(lua_State *L) { luaL_setfuncs(L, mpi_functions, 0); }

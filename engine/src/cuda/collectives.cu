/* cuda/collectives.cu: collectives across processes on CUDA memory, through
 * NCCL (nn.h's nn_collective_*; nn.distributed uses them for CUDA tensors).
 *
 * NCCL is loaded at the first question, not linked: libnn_cuda.so runs
 * where it is missing (nn.distributed then stages CUDA tensors through host
 * memory over MPI), and its 200 MB are not read by a process that never
 * asks. Where it is looked for: NN_NCCL_LIBRARY when set, that file and no
 * other; else libnccl.so.2 on the loader's path (a CUDA toolkit's lib64, or
 * the nvidia-nccl wheel's lib directory in LD_LIBRARY_PATH).
 *
 * A collective is queued on the backend's one stream, after the kernels
 * that wrote its input, and an event is recorded behind it: the handle is
 * that event, which test polls. A failure NCCL sees on the wire (a peer
 * gone) surfaces through ncclCommGetAsyncError while test polls; abort
 * tears the communicator down so that nothing queued waits for ever. */
#include <dlfcn.h>
#include <nccl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda/common.cuh"
#include "cuda/kernels.h"

static_assert(NCCL_UNIQUE_ID_BYTES == NN_COLLECTIVE_ID_BYTES, "nn.h's id is NCCL's");

/* NCCL's functions, resolved from the library by name; their types are
   the header's own. */
static struct {
  int tried;          /* the library was looked for (found or not) */
  char why[512];      /* why it is not there */
  decltype(&ncclGetUniqueId) get_unique_id;
  decltype(&ncclCommInitRank) comm_init_rank;
  decltype(&ncclCommAbort) comm_abort;
  decltype(&ncclCommGetAsyncError) comm_get_async_error;
  decltype(&ncclGetErrorString) get_error_string;
  decltype(&ncclAllReduce) all_reduce;
  decltype(&ncclBroadcast) broadcast;
  decltype(&ncclAllGather) all_gather;
  decltype(&ncclReduceScatter) reduce_scatter;
  ncclComm_t comm;    /* the group's, once joined */
} nccl;

/* Sets *slot to the symbol; 0, or -1 with the reason kept. */
template <typename F> static int resolve(void *lib, const char *name, F *slot) {
  void *p = dlsym(lib, name);
  if (!p) {
    snprintf(nccl.why, sizeof nccl.why, "NCCL's library has no %s (NCCL older than 2.7?)", name);
    return -1;
  }
  memcpy(slot, &p, sizeof p);
  return 0;
}

static int load_nccl(void) {
  if (nccl.tried) return nccl.get_unique_id ? 0 : -1;
  nccl.tried = 1;
  const char *path = getenv("NN_NCCL_LIBRARY");
  if (!path || !*path) path = "libnccl.so.2";
  void *lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
  if (!lib) {
    const char *e = dlerror();
    snprintf(nccl.why, sizeof nccl.why, "NCCL is not there (cannot load %s: %s; NN_NCCL_LIBRARY names "
             "the file)", path, e ? e : "unknown error");
    return -1;
  }
  decltype(&ncclGetUniqueId) get_unique_id = NULL;
  if (resolve(lib, "ncclCommInitRank", &nccl.comm_init_rank) < 0 ||
      resolve(lib, "ncclCommAbort", &nccl.comm_abort) < 0 ||
      resolve(lib, "ncclCommGetAsyncError", &nccl.comm_get_async_error) < 0 ||
      resolve(lib, "ncclGetErrorString", &nccl.get_error_string) < 0 ||
      resolve(lib, "ncclAllReduce", &nccl.all_reduce) < 0 ||
      resolve(lib, "ncclBroadcast", &nccl.broadcast) < 0 ||
      resolve(lib, "ncclAllGather", &nccl.all_gather) < 0 ||
      resolve(lib, "ncclReduceScatter", &nccl.reduce_scatter) < 0 ||
      resolve(lib, "ncclGetUniqueId", &get_unique_id) < 0) {
    dlclose(lib);
    return -1;
  }
  nccl.get_unique_id = get_unique_id; /* last: it marks the library as usable */
  return 0;
}

/* 0, or -1 with "op: nccl: message". */
static int nccl_status(const char *op, ncclResult_t r) {
  if (r == ncclSuccess) return 0;
  nn_error_set("%s: nccl: %s", op, nccl.get_error_string ? nccl.get_error_string(r) : "failed");
  return -1;
}

static int collective_available(char *why, size_t len) {
  if (load_nccl() == 0) return 1;
  snprintf(why, len, "%s", nccl.why);
  return 0;
}

static int collective_id(unsigned char *id) {
  ncclUniqueId u;
  if (nccl_status("collective id", nccl.get_unique_id(&u)) < 0) return -1;
  memcpy(id, u.internal, sizeof u.internal);
  return 0;
}

static int collective_join(const unsigned char *id, int rank, int size) {
  if (nccl.comm) {
    nn_error_set("collective join: this process has joined a group already");
    return -1;
  }
  ncclUniqueId u;
  memcpy(u.internal, id, sizeof u.internal);
  return nccl_status("collective join", nccl.comm_init_rank(&nccl.comm, size, u, rank));
}

/* ---- handles: events behind the queued collectives, reused ------------- */
typedef struct pending {
  cudaEvent_t event;
  struct pending *next;
} pending;
static pending *spare; /* events whose collective completed */

static pending *pending_new(void) {
  pending *p = spare;
  if (p) {
    spare = p->next;
    return p;
  }
  p = (pending *)calloc(1, sizeof *p);
  if (!p) {
    nn_error_set("collective: out of memory");
    return NULL;
  }
  if (nn_cuda_status("collective", cudaEventCreateWithFlags(&p->event, cudaEventDisableTiming)) < 0) {
    free(p);
    return NULL;
  }
  return p;
}

static void pending_done(pending *p) {
  p->next = spare;
  spare = p;
}

static int nccl_type(nn_dtype dtype, ncclDataType_t *type) {
  switch (dtype) {
  case NN_FLOAT32: *type = ncclFloat32; return 0;
  case NN_FLOAT64: *type = ncclFloat64; return 0;
  case NN_FLOAT16: *type = ncclFloat16; return 0;
  case NN_BFLOAT16: *type = ncclBfloat16; return 0;
  case NN_INT64: *type = ncclInt64; return 0;
  case NN_INT32: *type = ncclInt32; return 0;
  case NN_INT8: *type = ncclInt8; return 0;
  case NN_UINT8: *type = ncclUint8; return 0;
  case NN_BOOL: *type = ncclUint8; return 0;
  default:
    nn_error_set("collective: NCCL carries no int16 (convert the tensor first)");
    return -1;
  }
}

/* A bool's sum is a logical or: the maximum of its 0s and 1s. */
static ncclRedOp_t nccl_op(nn_dtype dtype, nn_collective_op op) {
  if (op == NN_COLLECTIVE_MIN) return ncclMin;
  if (op == NN_COLLECTIVE_MAX || dtype == NN_BOOL) return ncclMax;
  return ncclSum;
}

static int collective_start(const nn_collective_args *a, void **handle) {
  *handle = NULL;
  if (!nccl.comm) {
    nn_error_set("collective: this process has joined no group");
    return -1;
  }
  ncclDataType_t type;
  if (nccl_type(a->dtype, &type) < 0) return -1;
  size_t count = (size_t)a->count;
  /* the legacy default stream, which every kernel and copy of the backend
     is queued on (cuda_backend.h) */
  cudaStream_t stream = 0;
  ncclResult_t r = ncclSuccess;
  switch (a->kind) {
  case NN_COLLECTIVE_ALL_REDUCE:
    r = nccl.all_reduce(a->send, a->recv, count, type, nccl_op(a->dtype, a->op), nccl.comm, stream);
    break;
  case NN_COLLECTIVE_BROADCAST:
    r = nccl.broadcast(a->send, a->recv, count, type, a->root, nccl.comm, stream);
    break;
  case NN_COLLECTIVE_ALL_GATHER:
    r = nccl.all_gather(a->send, a->recv, count, type, nccl.comm, stream);
    break;
  case NN_COLLECTIVE_REDUCE_SCATTER:
    r = nccl.reduce_scatter(a->send, a->recv, count, type, nccl_op(a->dtype, a->op), nccl.comm, stream);
    break;
  default:
    nn_error_set("collective: unknown kind %d", (int)a->kind);
    return -1;
  }
  if (nccl_status("collective", r) < 0) return -1;
  pending *p = pending_new();
  if (!p) return -1;
  if (nn_cuda_status("collective", cudaEventRecord(p->event, stream)) < 0) {
    pending_done(p);
    return -1;
  }
  *handle = p;
  return 0;
}

static int collective_test(void *handle) {
  pending *p = (pending *)handle;
  cudaError_t e = cudaEventQuery(p->event);
  if (e == cudaSuccess) {
    pending_done(p);
    return 1;
  }
  if (e != cudaErrorNotReady) {
    pending_done(p);
    return nn_cuda_status("collective", e);
  }
  /* still queued: a peer that failed shows here, not in the event */
  ncclResult_t async = ncclSuccess;
  ncclResult_t r = nccl.comm_get_async_error(nccl.comm, &async);
  if (r == ncclSuccess && (async == ncclSuccess || async == ncclInProgress)) return 0;
  pending_done(p);
  return nccl_status("collective", r != ncclSuccess ? r : async);
}

static void collective_abort(void) {
  if (!nccl.comm) return;
  nccl.comm_abort(nccl.comm);
  nccl.comm = NULL;
}

void nn_cuda_fill_collective_kernels(nn_backend *b) {
  b->collective_available = collective_available;
  b->collective_id = collective_id;
  b->collective_join = collective_join;
  b->collective_start = collective_start;
  b->collective_test = collective_test;
  b->collective_abort = collective_abort;
}

/* backend.cu: libnn_cuda.so's entry, the device it runs on, its memory and
 * transfers, and the table it hands to the engine (backend.h).
 *
 * The library exports one symbol, nn_cuda_backend_open. The CUDA runtime
 * is linked in statically, so what this library needs at run time is the
 * driver (libcuda.so.1, which the runtime opens itself, and whose absence
 * is an error code, not a failed load) and cuBLAS. */
#include "cuda_backend.h"
#include "device_cache.h"
#include "kernels.h"

#include <cublas_v2.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>


static const nn_host_api *host;
static char device_name[256];
static int device_count;

/* The engine's nn_error_set, reached through the host API: nn.so is loaded
   RTLD_LOCAL, so its symbols are not visible here. Kernels call it by its
   usual name, as the CPU's do. */
extern "C" void nn_error_set(const char *fmt, ...) {
  char message[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(message, sizeof message, fmt, ap);
  va_end(ap);
  host->error_set("%s", message);
}

/* Errors that leave the context unusable: every later call fails too. */
static int is_sticky(cudaError_t e) {
  switch (e) {
  case cudaErrorIllegalAddress:
  case cudaErrorLaunchFailure:
  case cudaErrorLaunchTimeout:
  case cudaErrorIllegalInstruction:
  case cudaErrorMisalignedAddress:
  case cudaErrorInvalidAddressSpace:
  case cudaErrorInvalidPc:
  case cudaErrorHardwareStackError:
  case cudaErrorAssert:
  case cudaErrorECCUncorrectable:
    return 1;
  default:
    return 0;
  }
}

int nn_cuda_check(cudaError_t status, const char *what) {
  if (status == cudaSuccess) return 0;
  if (is_sticky(status)) {
    nn_error_set("cuda: %s: a kernel failed: %s (%s); the CUDA context cannot be used any "
                 "more, restart the process",
                 what, cudaGetErrorString(status), cudaGetErrorName(status));
  } else {
    (void)cudaGetLastError(); /* a plain error is not kept for the next call */
    nn_error_set("cuda: %s: %s (%s)", what, cudaGetErrorString(status), cudaGetErrorName(status));
  }
  return -1;
}

int nn_cuda_backend_launched(const char *kernel) {
  cudaError_t e = cudaPeekAtLastError();
  if (e == cudaSuccess) return 0;
  char what[96];
  snprintf(what, sizeof what, "launching %s", kernel);
  return nn_cuda_check(e, what);
}

/* ---- memory ----------------------------------------------------------
   Tensors' blocks come from the caching allocator (device_cache.h) in
   front of cudaMalloc: a training loop in steady state calls no
   cudaMalloc, and a full device gets the cache back and one more try. */
static void *raw_alloc(size_t nbytes, char *why, size_t len) {
  void *p = NULL;
  cudaError_t e = cudaMalloc(&p, nbytes);
  if (e == cudaSuccess) return p;
  (void)cudaGetLastError(); /* out of memory is not sticky: the next call may succeed */
  snprintf(why, len, "cudaMalloc: %s (%s)", cudaGetErrorString(e), cudaGetErrorName(e));
  return NULL;
}

static void raw_free(void *data, size_t nbytes) {
  (void)nbytes;
  /* A failure here is a fault of an earlier kernel; the next wait reports
     it. */
  (void)cudaFree(data);
}

static nn_device_cache cache = {"cuda", raw_alloc, raw_free, nn_error_set, {}, NULL, 0, 0};

/* ---- graphs: a captured step's replay (engine/src/capture.c) ----------
   A run of a plan's kernels is captured from a stream of its own (the
   legacy default stream cannot be captured), then launched as one graph on
   the default stream, in order with everything else. A kernel that
   allocates, frees or reads back while captured spoils the graph: it would
   bake in a scratch block that goes back to the cache, or wait for work
   that has not run. The plan then replays that run call by call. */
static cudaStream_t capture_stream;
static int capturing, capture_spoiled;

static void *cuda_alloc(size_t nbytes) {
  capture_spoiled |= capturing;
  return nn_device_cache_alloc(&cache, nbytes);
}
static void cuda_free(void *data, size_t nbytes) {
  capture_spoiled |= capturing;
  nn_device_cache_free(&cache, data, nbytes);
}

static int cuda_graph_begin(void) {
  if (!capture_stream &&
      nn_cuda_check(cudaStreamCreateWithFlags(&capture_stream, cudaStreamNonBlocking),
                    "making a graph") < 0)
    return -1;
  if (nn_cuda_check(cudaStreamBeginCapture(capture_stream, cudaStreamCaptureModeThreadLocal),
                    "making a graph") < 0)
    return -1;
  nn_cuda_launch_stream = capture_stream;
  capturing = 1;
  capture_spoiled = 0;
  return 0;
}

static int cuda_graph_end(void **out) {
  *out = NULL;
  if (!capturing) {
    nn_error_set("cuda: graph_end without graph_begin");
    return -1;
  }
  cudaGraph_t graph = NULL;
  cudaError_t e = cudaStreamEndCapture(capture_stream, &graph);
  nn_cuda_launch_stream = 0;
  capturing = 0;
  if (e != cudaSuccess || !graph || capture_spoiled) {
    (void)cudaGetLastError(); /* a spoiled capture is not an error of the next call */
    if (graph) (void)cudaGraphDestroy(graph);
    nn_error_set("cuda: these kernels cannot make a graph (one allocates or reads back)");
    return -1;
  }
  cudaGraphExec_t exec = NULL;
  e = cudaGraphInstantiate(&exec, graph, 0ull);
  (void)cudaGraphDestroy(graph);
  if (nn_cuda_check(e, "making a graph") < 0) return -1;
  *out = (void *)exec;
  return 0;
}

static int cuda_graph_launch(void *graph) {
  return nn_cuda_check(cudaGraphLaunch((cudaGraphExec_t)graph, nn_cuda_launch_stream),
                       "launching a graph");
}

static void cuda_graph_free(void *graph) { (void)cudaGraphExecDestroy((cudaGraphExec_t)graph); }
static size_t cuda_memory_allocated(void) { return cache.allocated; }
static size_t cuda_memory_reserved(void) { return cache.reserved; }
static void cuda_empty_cache(void) { nn_device_cache_empty(&cache); }

/* ---- transfers ------------------------------------------------------- */
static int cuda_synchronize(void) {
  if (capturing) {
    capture_spoiled = 1;
    nn_error_set("cuda: synchronize while a graph is being made");
    return -1;
  }
  return nn_cuda_check(cudaStreamSynchronize(nn_cuda_launch_stream), "synchronize");
}

static int cuda_to_host(void *host_dst, const void *device_src, size_t nbytes) {
  if (capturing) { /* nothing has run yet: there is nothing to read */
    capture_spoiled = 1;
    nn_error_set("cuda: a copy to the host while a graph is being made");
    return -1;
  }
  if (nn_cuda_check(cudaMemcpyAsync(host_dst, device_src, nbytes, cudaMemcpyDeviceToHost,
                                    nn_cuda_launch_stream),
                    "copy to the host") < 0)
    return -1;
  /* the bytes are the host's only once the stream has reached them */
  return nn_cuda_check(cudaStreamSynchronize(nn_cuda_launch_stream), "copy to the host");
}

static int cuda_from_host(void *device_dst, const void *host_src, size_t nbytes) {
  /* From pageable memory, the call returns once host_src has been staged:
     the caller may free or reuse it at once. */
  return nn_cuda_check(cudaMemcpyAsync(device_dst, host_src, nbytes, cudaMemcpyHostToDevice,
                                       nn_cuda_launch_stream),
                       "copy from the host");
}

static int cuda_within(void *dst, const void *src, size_t nbytes) {
  return nn_cuda_check(
      cudaMemcpyAsync(dst, src, nbytes, cudaMemcpyDeviceToDevice, nn_cuda_launch_stream),
      "copy within the device");
}

/* ---- the device ------------------------------------------------------ */
static int cuda_device_count(void) { return device_count; }
static const char *cuda_device_name(void) { return device_name; }

/* ---- opening ---------------------------------------------------------- */
static nn_backend table;

/* What to tell a user whose machine cannot run CUDA, from the error of the
   first runtime call. */
static void explain(cudaError_t e, char *why, size_t len) {
  const char *hint = "";
  if (e == cudaErrorInsufficientDriver)
    hint = " (no NVIDIA driver was found, or it is older than this CUDA runtime needs: libcuda.so.1 "
           "comes with the driver)";
  else if (e == cudaErrorNoDevice)
    hint = " (the driver sees no GPU)";
  int runtime = 0;
  (void)cudaRuntimeGetVersion(&runtime);
  snprintf(why, len, "no usable CUDA device: %s (%s)%s; nnlua's CUDA runtime is %d.%d",
           cudaGetErrorString(e), cudaGetErrorName(e), hint, runtime / 1000, runtime % 1000 / 10);
}

/* The GPU this process uses: the first, unless it is one of several ranks
   that mpirun started on this machine (Open MPI's, MPICH's or a launcher's
   local rank), which then take the GPUs in turn, as NCCL needs (one GPU
   per rank). CUDA_VISIBLE_DEVICES still chooses which GPUs there are. */
static int local_rank_device(int count) {
  const char *names[] = {"OMPI_COMM_WORLD_LOCAL_RANK", "MPI_LOCALRANKID", "LOCAL_RANK"};
  for (size_t k = 0; k < sizeof names / sizeof names[0]; k++) {
    const char *v = getenv(names[k]);
    char *end;
    long rank = v ? strtol(v, &end, 10) : -1;
    if (v && *v && !*end && rank >= 0) return (int)(rank % count);
  }
  return 0;
}

extern "C" __attribute__((visibility("default"))) const nn_backend *
nn_cuda_backend_open(const nn_host_api *h, char *why, size_t len) {
  if (!nn_host_api_matches(h)) {
    snprintf(why, len, "libnn_cuda.so was built with another version of nnlua's engine (backend "
             "ABI %d, engine %d): rebuild them together", NN_BACKEND_ABI, h ? h->abi : -1);
    return NULL;
  }
  host = h;
  int count = 0;
  cudaError_t e = cudaGetDeviceCount(&count);
  if (e != cudaSuccess) {
    explain(e, why, len);
    return NULL;
  }
  if (count < 1) {
    explain(cudaErrorNoDevice, why, len);
    return NULL;
  }
  cudaDeviceProp prop;
  int device = local_rank_device(count);
  /* cudaFree(0) makes the context now, so that its failure is told here */
  if ((e = cudaSetDevice(device)) != cudaSuccess ||
      (e = cudaGetDeviceProperties(&prop, device)) != cudaSuccess || (e = cudaFree(0)) != cudaSuccess) {
    snprintf(why, len, "the CUDA device could not be opened: %s (%s)", cudaGetErrorString(e),
             cudaGetErrorName(e));
    return NULL;
  }
  snprintf(device_name, sizeof device_name, "%s", prop.name);
  /* cuBLAS loaded with this library; asking its version checks it answers
     (its handle is made at the first matrix product). */
  int cublas_major = 0;
  if (cublasGetProperty(MAJOR_VERSION, &cublas_major) != CUBLAS_STATUS_SUCCESS || cublas_major < 1) {
    snprintf(why, len, "cuBLAS did not answer (cublasGetProperty)");
    return NULL;
  }

  device_count = count;
  table.name = "cuda";
  table.alloc = cuda_alloc;
  table.free = cuda_free;
  table.to_host = cuda_to_host;
  table.from_host = cuda_from_host;
  table.within = cuda_within;
  table.synchronize = cuda_synchronize;
  table.device_count = cuda_device_count;
  table.device_name = cuda_device_name;
  table.memory_allocated = cuda_memory_allocated;
  table.memory_reserved = cuda_memory_reserved;
  table.empty_cache = cuda_empty_cache;
  table.graph_begin = cuda_graph_begin;
  table.graph_end = cuda_graph_end;
  table.graph_launch = cuda_graph_launch;
  table.graph_free = cuda_graph_free;
  table.copy = nn_cuda_backend_copy;
  table.fill = nn_cuda_backend_fill;
  /* the kernels (kernels.h); an entry they leave NULL is "<op>: not
     implemented for cuda" */
  nn_cuda_fill_kernels(&table);
  return &table;
}

/* device.c: loading the CUDA backend
 * from its own library at the first use of "cuda".
 *
 * libnn_cuda.so holds the CUDA kernels and links cuBLAS and the CUDA
 * runtime; the engine itself links neither, so that a build with CUDA runs
 * where they are missing. Where the library is looked for:
 *   - NN_CUDA_LIBRARY, when set: that file and no other;
 *   - else beside the file that holds the engine (nn.so, or the nnlua
 *     executable), found with dladdr, then in the directory it is
 *     installed to (NN_CUDA_INSTALL_DIR, given by CMake).
 * Any failure (the library or one it needs is missing, no driver, no
 * device) leaves CUDA unavailable with the reason kept for nn.cuda.why().
 * The library is never closed once its entry has run: the CUDA runtime
 * registers exit handlers inside it. */
#define _GNU_SOURCE /* dladdr */
#include "internal.h"

#include <dlfcn.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <unistd.h>

static pthread_once_t cuda_once = PTHREAD_ONCE_INIT;
static char cuda_why[1024];

static const nn_host_api host_api = {
    NN_BACKEND_ABI, sizeof(nn_backend), sizeof(nn_iter), sizeof(nn_reduce_geom), nn_error_set,
    &nn_cpu_backend,
};

/* Opens path and asks its entry for the table; the reason in cuda_why when
   that fails. */
static const nn_backend *open_library(const char *path) {
  void *lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
  if (!lib) {
    const char *e = dlerror();
    snprintf(cuda_why, sizeof cuda_why, "cannot load %s: %s", path, e ? e : "unknown error");
    return NULL;
  }
  nn_backend_open_fn open = (nn_backend_open_fn)(uintptr_t)dlsym(lib, NN_CUDA_BACKEND_ENTRY);
  if (!open) {
    snprintf(cuda_why, sizeof cuda_why, "%s is not an nnlua CUDA backend (it has no %s)", path,
             NN_CUDA_BACKEND_ENTRY);
    dlclose(lib);
    return NULL;
  }
  char why[768] = "";
  const nn_backend *be = open(&host_api, why, sizeof why);
  if (!be) {
    snprintf(cuda_why, sizeof cuda_why, "%s", why[0] ? why : "the CUDA backend did not start");
    return NULL;
  }
  if (!be->alloc || !be->free || !be->to_host || !be->from_host || !be->within ||
      !be->synchronize || !be->device_count || !be->device_name || !be->memory_allocated ||
      !be->memory_reserved || !be->empty_cache || !be->copy || !be->fill) {
    snprintf(cuda_why, sizeof cuda_why, "%s gave an incomplete backend table", path);
    return NULL;
  }
  return be;
}

#ifdef NN_CUDA_INSTALL_DIR
/* The directory of the file holding this code, with a trailing '/'; "" when
   it cannot be told. */
static void engine_directory(char *dir, size_t len) {
  dir[0] = 0;
  Dl_info info;
  char path[PATH_MAX];
  const char *file = NULL;
  if (dladdr((void *)engine_directory, &info) && info.dli_fname && strchr(info.dli_fname, '/'))
    file = info.dli_fname;
  /* For code inside the main program glibc gives argv[0], which may be a
     bare name found on PATH: ask the kernel instead. */
  if (!file || access(file, F_OK) != 0) {
    ssize_t n = readlink("/proc/self/exe", path, sizeof path - 1);
    if (n <= 0) return;
    path[n] = 0;
    file = path;
  }
  char resolved[PATH_MAX];
  if (realpath(file, resolved)) file = resolved;
  const char *slash = strrchr(file, '/');
  size_t n = (size_t)(slash - file) + 1;
  if (n >= len) return;
  memcpy(dir, file, n);
  dir[n] = 0;
}
#endif

static const nn_backend *find_cuda(void) {
  const char *forced = getenv("NN_CUDA_LIBRARY");
  if (forced && forced[0]) {
    const nn_backend *be = open_library(forced);
    if (!be && strstr(cuda_why, forced) == NULL) {
      size_t used = strlen(cuda_why);
      snprintf(cuda_why + used, sizeof cuda_why - used, " (NN_CUDA_LIBRARY=%s)", forced);
    }
    return be;
  }
#ifndef NN_CUDA_INSTALL_DIR
  snprintf(cuda_why, sizeof cuda_why,
           "this build of nnlua has no CUDA backend (it was configured with NN_CUDA=OFF, or "
           "CMake found no CUDA compiler)");
#else
  char dirs[2][PATH_MAX];
  engine_directory(dirs[0], sizeof dirs[0]);
  snprintf(dirs[1], sizeof dirs[1], "%s/", NN_CUDA_INSTALL_DIR);
  for (int i = 0; i < 2; i++) {
    char path[PATH_MAX + 32];
    if (!dirs[i][0] || (i == 1 && strcmp(dirs[0], dirs[1]) == 0)) continue;
    snprintf(path, sizeof path, "%slibnn_cuda.so", dirs[i]);
    if (access(path, F_OK) != 0) continue;
    return open_library(path);
  }
  snprintf(cuda_why, sizeof cuda_why,
           "libnn_cuda.so, nnlua's CUDA backend, was not found (looked in %.400s and %.400s; "
           "NN_CUDA_LIBRARY may name it)",
           dirs[0][0] ? dirs[0] : "the engine's directory", dirs[1]);
#endif
  return NULL;
}

static void load_cuda(void) {
  const nn_backend *be = find_cuda();
  /* PyTorch's CUDA generator starts where the CPU's is (its default seed,
     or the last manual_seed) */
  if (be && be->manual_seed) be->manual_seed(nn_cuda_initial_seed());
  nn_backend_set(NN_CUDA, be, be ? NULL : cuda_why);
}

void nn_cuda_load(void) { pthread_once(&cuda_once, load_cuda); }

const nn_backend *nn_device_check(const char *op, nn_device device) {
  const nn_backend *be = nn_backend_for(device);
  if (!be)
    nn_error_set("%s: %s is not available: %s", op, nn_device_name(device),
                 nn_backend_unavailable(device));
  return be;
}

/* ---- the public API (nn.h) ------------------------------------------- */
int nn_device_available(nn_device device) { return nn_backend_for(device) != NULL; }

const char *nn_device_unavailable_reason(nn_device device) {
  return nn_backend_for(device) ? "" : nn_backend_unavailable(device);
}

int nn_device_count(nn_device device) {
  const nn_backend *be = nn_backend_for(device);
  return be ? be->device_count() : 0;
}

const char *nn_device_description(nn_device device) {
  const nn_backend *be = nn_backend_for(device);
  return be ? be->device_name() : NULL;
}

int nn_device_synchronize(nn_device device) {
  const nn_backend *be = nn_device_check("synchronize", device);
  return be ? be->synchronize() : -1;
}

/* The memory figures never load a backend: before its first use a device
   holds nothing. */
size_t nn_device_memory_allocated(nn_device device) {
  const nn_backend *be = nn_backend_loaded(device);
  return be ? be->memory_allocated() : 0;
}

size_t nn_device_memory_reserved(nn_device device) {
  const nn_backend *be = nn_backend_loaded(device);
  return be ? be->memory_reserved() : 0;
}

void nn_device_empty_cache(nn_device device) {
  const nn_backend *be = nn_backend_loaded(device);
  if (be) be->empty_cache();
}

/* ---- collectives: each asks the device's table, which says whether it
   has any (backend.h); a device that is not there has none. */
int nn_collective_available(nn_device device, char *reason, size_t len) {
  const nn_backend *be = nn_backend_for(device);
  if (!be) {
    snprintf(reason, len, "%s", nn_backend_unavailable(device));
    return 0;
  }
  if (!be->collective_available) {
    snprintf(reason, len, "the %s backend has no collectives", nn_device_name(device));
    return 0;
  }
  reason[0] = 0;
  return be->collective_available(reason, len);
}

/* The table of a device that has collectives, or NULL with the reason. */
static const nn_backend *collective_device(const char *op, nn_device device) {
  char why[512];
  if (!nn_collective_available(device, why, sizeof why)) {
    nn_error_set("%s: %s", op, why);
    return NULL;
  }
  return nn_backend_for(device);
}

int nn_collective_id(nn_device device, unsigned char id[NN_COLLECTIVE_ID_BYTES]) {
  const nn_backend *be = collective_device("collective id", device);
  return be ? be->collective_id(id) : -1;
}

int nn_collective_join(nn_device device, const unsigned char id[NN_COLLECTIVE_ID_BYTES], int rank, int size) {
  const nn_backend *be = collective_device("collective join", device);
  if (!be) return -1;
  if (size < 1 || rank < 0 || rank >= size) {
    nn_error_set("collective join: rank %d is not in a group of %d", rank, size);
    return -1;
  }
  return be->collective_join(id, rank, size);
}

int nn_collective_start(nn_device device, const nn_collective_args *a, void **handle) {
  const nn_backend *be = collective_device("collective", device);
  if (!be) return -1;
  if (a->count < 0) {
    nn_error_set("collective: a negative count (%lld)", (long long)a->count);
    return -1;
  }
  return be->collective_start(a, handle);
}

int nn_collective_test(nn_device device, void *handle) {
  const nn_backend *be = nn_backend_loaded(device);
  if (!be || !be->collective_test) {
    nn_error_set("collective: %s has no collectives in flight", nn_device_name(device));
    return -1;
  }
  return be->collective_test(handle);
}

void nn_collective_abort(nn_device device) {
  const nn_backend *be = nn_backend_loaded(device);
  if (be && be->collective_abort) be->collective_abort();
}

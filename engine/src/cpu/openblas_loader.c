/* openblas_loader.c: OpenBLAS, loaded the first time the engine calls it.
 *
 * Loading libopenblas costs more than everything else nnlua does to start:
 * the dynamic linker relocates its thousands of symbols, and its
 * constructor probes the processor and starts its threads. A script that
 * never reaches a large product, and every `nnlua -e`, needs none of it.
 * So where OpenBLAS is a shared library the engine is not linked against
 * it: these definitions of the OpenBLAS entries the engine calls open the
 * library on the first call (dlopen, by the soname the build linked with)
 * and forward to it. A program may set OpenBLAS's environment
 * (OPENBLAS_THREAD_TIMEOUT, OPENBLAS_NUM_THREADS) up to that moment, which
 * is when OpenBLAS reads it and starts its threads; where it has not, the
 * engine sets them for that moment (see load): the kernels for this
 * processor (nn_cpu_blas_kernels), the idle threads' spin
 * (NN_BLAS_THREAD_TIMEOUT, the same in nnlua and under a stock lua5.4) and
 * the count nn.set_num_threads asked for before OpenBLAS was needed, so
 * that nn.set_num_threads(1) starts no thread at all.
 *
 * Empty without NN_OPENBLAS_LAZY (CMakeLists.txt): a static OpenBLAS
 * is linked in directly. An entry the engine starts calling must be added
 * here too; the link fails until it is. */
#include "cpu/cpu.h"

/* The kernels OpenBLAS is to run on this processor, as OPENBLAS_CORETYPE
 * names them, or NULL to leave the choice to OpenBLAS.
 *
 * A DYNAMIC_ARCH OpenBLAS (Debian's) picks its kernels by the processor's
 * family and model, from a table fixed when it was released; a model it
 * does not know gets its SSE3 kernels ("Prescott"). Debian 12's 0.3.21 does
 * not know Sapphire Rapids: there every product ran at a quarter of its
 * speed (a 1000 x 1000 sgemm at 25 GFLOP/s on one core against 80 to 95
 * with the AVX-512 kernels, scripts/bench/mlp.lua's products alike). So
 * the choice is made from what the processor can do instead, the same
 * choice OpenBLAS makes for the models it knows: AVX-512 (F, CD, BW, DQ,
 * VL, with the operating system saving the registers) its Skylake-X
 * kernels, AVX2 with FMA its Haswell kernels (which its Zen and Skylake
 * targets also run), anything older its own choice. Only where the user
 * has not set OPENBLAS_CORETYPE (see load, and lua/nnlua.c for a static
 * OpenBLAS). */
const char *nn_cpu_blas_kernels(void) {
#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
  __builtin_cpu_init();
  if (!__builtin_cpu_supports("avx2") || !__builtin_cpu_supports("fma")) return NULL;
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512cd") &&
      __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq") &&
      __builtin_cpu_supports("avx512vl"))
    return "SkylakeX";
  return "Haswell";
#else
  return NULL;
#endif
}

#ifdef NN_OPENBLAS_LAZY

#include <cblas.h>
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef NN_OPENBLAS_SONAME
#error "NN_OPENBLAS_SONAME: the file name to dlopen OpenBLAS by"
#endif

/* Only the engine calls these: a program that links libnn and OpenBLAS
   itself keeps OpenBLAS's own. */
#define INTERNAL __attribute__((visibility("hidden")))

typedef void sgemm_fn(enum CBLAS_ORDER, enum CBLAS_TRANSPOSE, enum CBLAS_TRANSPOSE, blasint,
                      blasint, blasint, float, const float *, blasint, const float *, blasint,
                      float, float *, blasint);
typedef void dgemm_fn(enum CBLAS_ORDER, enum CBLAS_TRANSPOSE, enum CBLAS_TRANSPOSE, blasint,
                      blasint, blasint, double, const double *, blasint, const double *,
                      blasint, double, double *, blasint);
typedef int pool_run_fn(int, void *, void *, int);
typedef void sgemv_fn(enum CBLAS_ORDER, enum CBLAS_TRANSPOSE, blasint, blasint, float,
                      const float *, blasint, const float *, blasint, float, float *, blasint);

/* How long OpenBLAS's idle threads spin before they sleep: 2^n cycles of
   the time-stamp counter. The README's section on threads has the
   measurements behind it; lua/nnlua.c sets the same for a static OpenBLAS. */
#define NN_BLAS_THREAD_TIMEOUT "22"

static struct {
  sgemm_fn *sgemm;
  dgemm_fn *dgemm;
  void (*set_num_threads)(int);
  int (*get_num_threads)(void);
  pool_run_fn *pool_run; /* NULL when this OpenBLAS lacks it (see gotoblas_pthread) */
  sgemv_fn *sgemv; /* products of one row (cpu/gemm.c) */
  char *(*get_config)(void); /* nn_blas_config, nn_blas_kernels (config.c) */
  char *(*get_corename)(void);
} blas;

static pthread_once_t blas_once = PTHREAD_ONCE_INIT;
/* set once blas is filled in: after that a call costs one load, not a call
   to pthread_once (the optimizers ask for the thread count at every step) */
static int blas_loaded;
/* the thread count set before OpenBLAS was loaded (0: none) */
static int threads_before_load;

/* The process cannot go on without it, and the engine's products have no
   error path: this is the failure the dynamic linker would have reported
   at start-up, reported at first use instead, with its exit status. */
static void missing(const char *what) {
  fprintf(stderr, "nn: cannot use OpenBLAS (%s): %s\n", NN_OPENBLAS_SONAME, what);
  exit(127);
}

static void *entry(void *library, const char *name) {
  void *f = dlsym(library, name);
  if (!f) missing(dlerror());
  return f;
}

/* name=value in the environment while OpenBLAS starts, unless the user
   set it (or, with `force`, whatever was there); *saved: what to put back */
static int set_for_start(const char *name, const char *value, int force, char **saved) {
  const char *old = getenv(name);
  *saved = NULL;
  if (old && !force) return 0;
  if (old && !(*saved = strdup(old))) return 0;
  if (setenv(name, value, 1) != 0) {
    free(*saved);
    return 0;
  }
  return 1;
}

static void put_back(const char *name, char *saved) {
  if (saved) setenv(name, saved, 1);
  else unsetenv(name);
  free(saved);
}

static void load(void) {
  /* OpenBLAS reads these in its constructor, during dlopen, and never
     again: they are set for that moment only, so that programs this
     process starts see the environment it was given. (The engine's other
     threads, if any run yet, never read the environment.) */
  char count[16], *saved_timeout, *saved_count, *saved_kernels;
  int requested = __atomic_load_n(&threads_before_load, __ATOMIC_ACQUIRE);
  const char *kernels = nn_cpu_blas_kernels();
  int kernels_set = kernels && set_for_start("OPENBLAS_CORETYPE", kernels, 0, &saved_kernels);
  int timeout_set = !getenv("GOTO_THREAD_TIMEOUT") && /* the user's older spelling */
                    set_for_start("OPENBLAS_THREAD_TIMEOUT", NN_BLAS_THREAD_TIMEOUT, 0, &saved_timeout);
  snprintf(count, sizeof count, "%d", requested);
  int count_set = requested > 0 && set_for_start("OPENBLAS_NUM_THREADS", count, 1, &saved_count);
  /* never closed: its threads run until the process ends */
  void *library = dlopen(NN_OPENBLAS_SONAME, RTLD_NOW | RTLD_LOCAL);
  if (timeout_set) put_back("OPENBLAS_THREAD_TIMEOUT", saved_timeout);
  if (count_set) put_back("OPENBLAS_NUM_THREADS", saved_count);
  if (kernels_set) put_back("OPENBLAS_CORETYPE", saved_kernels);
  if (!library) missing(dlerror());
  blas.sgemm = (sgemm_fn *)entry(library, "cblas_sgemm");
  blas.dgemm = (dgemm_fn *)entry(library, "cblas_dgemm");
  blas.set_num_threads = (void (*)(int))entry(library, "openblas_set_num_threads");
  blas.get_num_threads = (int (*)(void))entry(library, "openblas_get_num_threads");
  blas.pool_run = (pool_run_fn *)dlsym(library, "gotoblas_pthread");
  if (requested > 0) blas.set_num_threads(requested); /* OpenBLAS's other variables too */
  blas.sgemv = (sgemv_fn *)entry(library, "cblas_sgemv");
  blas.get_config = (char *(*)(void))entry(library, "openblas_get_config");
  blas.get_corename = (char *(*)(void))entry(library, "openblas_get_corename");
  __atomic_store_n(&blas_loaded, 1, __ATOMIC_RELEASE);
}

static inline void ready(void) {
  if (!__atomic_load_n(&blas_loaded, __ATOMIC_ACQUIRE)) pthread_once(&blas_once, load);
}

INTERNAL void cblas_sgemm(enum CBLAS_ORDER order, enum CBLAS_TRANSPOSE ta, enum CBLAS_TRANSPOSE tb,
                          blasint m, blasint n, blasint k, float alpha, const float *a,
                          blasint lda, const float *b, blasint ldb, float beta, float *c,
                          blasint ldc) {
  ready();
  blas.sgemm(order, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

INTERNAL void cblas_dgemm(enum CBLAS_ORDER order, enum CBLAS_TRANSPOSE ta, enum CBLAS_TRANSPOSE tb,
                          blasint m, blasint n, blasint k, double alpha, const double *a,
                          blasint lda, const double *b, blasint ldb, double beta, double *c,
                          blasint ldc) {
  ready();
  blas.dgemm(order, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

INTERNAL void cblas_sgemv(enum CBLAS_ORDER order, enum CBLAS_TRANSPOSE trans, blasint m, blasint n,
                          float alpha, const float *a, blasint lda, const float *x, blasint incx,
                          float beta, float *y, blasint incy) {
  ready();
  blas.sgemv(order, trans, m, n, alpha, a, lda, x, incx, beta, y, incy);
}

/* Before OpenBLAS is needed, only noted: load() starts it with n threads.
   (A count set while another thread loads it may land late: the next
   set applies it.) */
INTERNAL void openblas_set_num_threads(int n) {
  if (!__atomic_load_n(&blas_loaded, __ATOMIC_ACQUIRE)) {
    __atomic_store_n(&threads_before_load, n, __ATOMIC_RELEASE);
    return;
  }
  blas.set_num_threads(n);
}

INTERNAL int openblas_get_num_threads(void) {
  ready();
  return blas.get_num_threads();
}

INTERNAL char *openblas_get_config(void) {
  ready();
  return blas.get_config();
}

INTERNAL char *openblas_get_corename(void) {
  ready();
  return blas.get_corename();
}

/* OpenBLAS's undocumented entry for running function(args + i stride),
   i < numthreads, on its pool (the engine declares it weak). Without it
   the pieces run one after the other on the caller's thread: the same
   work, the same results. */
INTERNAL int gotoblas_pthread(int numthreads, void *function, void *args, int stride) {
  ready();
  if (blas.pool_run) return blas.pool_run(numthreads, function, args, stride);
  void (*run)(void *) = (void (*)(void *))function;
  for (int i = 0; i < numthreads; i++) run((char *)args + (size_t)i * (size_t)stride);
  return 0;
}

#endif /* NN_OPENBLAS_LAZY */

/* gemm_paths.c: the float32 products of the linear layer through each path
 * cpu/gemm.c can take, timed in one run, interleaved round by round so
 * that every path sees the same load: what its thresholds (FMA_SMALL_PRODUCT,
 * SKINNY, sgemv for one row) were chosen from. Built beside the tests
 * (target gemm_paths, against the engine's internals):
 *   build/gemm_paths [--quick] [--squares] [--threads N]
 * (--squares: only the square sizes, where the kernels meet sgemm)
 * For each shape (batch m, in features k, out features n) and each of the
 * layer's three products (forward x w^T, input gradient g w, weight
 * gradient g^T x) it prints microseconds per call of
 *   engine  nn_cpu_gemm (what the engine does now, its best variant)
 *   base    the same through the baseline variant (SSE2 loops, OpenBLAS)
 *   sgemm   cblas_sgemm alone
 *   rows    the variant's rows kernel (b's rows contiguous; the weight
 *           gradient and the input gradient read in place)
 *   dots    the variant's dots kernel (forward only)
 *   sgemv   one row through cblas_sgemv (m = 1, or k = 1 for the weight
 *           gradient: no, a rank-one update is not a gemv: "-")
 * The best of the rounds, each the mean of enough calls to last ~2 ms:
 * on a machine shared with other work the least disturbed round is the
 * nearest to the path's own time. */
#include "cpu/cpu.h"
#include "cpu/vector.h"

#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int by_value(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

enum { FORWARD, INPUT_GRAD, WEIGHT_GRAD };
enum { ENGINE, BASE, SGEMM, ROWS, DOTS, SGEMV, PATHS };
static const char *const path_names[PATHS] = {"engine", "base", "sgemm", "rows", "dots", "sgemv"};
static const char *const product_names[3] = {"x w^T", "g w", "g^T x"};

typedef struct {
  int product;
  int64_t m, n, k; /* of c = a b */
  int64_t a0, a1, b0, b1;
  float *a, *b, *c;
  float beta;
} problem;

static const nn_cpu_vector *best, *baseline;

/* Whether the path applies; runs it once when it does. */
static int run(const problem *q, int path) {
  const nn_cpu_gemm_f32 *f = best->gemm;
  nn_gemm_args g = {.dtype = NN_FLOAT32, .batch = 1, .m = q->m, .n = q->n, .k = q->k, .alpha = 1,
                    .beta = q->beta, .a = {(char *)q->a, 0, q->a0, q->a1},
                    .b = {(char *)q->b, 0, q->b0, q->b1}, .c = {(char *)q->c, 0, q->n, 1}};
  switch (path) {
  case ENGINE: return nn_cpu_gemm(&g) == 0;
  case BASE: return nn_cpu_gemm_variant(&g, baseline) == 0;
  case SGEMM:
    cblas_sgemm(CblasRowMajor, q->a1 == 1 ? CblasNoTrans : CblasTrans,
                q->b1 == 1 ? CblasNoTrans : CblasTrans, (blasint)q->m, (blasint)q->n, (blasint)q->k,
                1, q->a, (blasint)(q->a1 == 1 ? q->a0 : q->a1), q->b,
                (blasint)(q->b1 == 1 ? q->b0 : q->b1), q->beta, q->c, (blasint)q->n);
    return 1;
  case ROWS:
    if (!f || q->b1 != 1) return 0;
    f->rows(q->m, q->n, q->k, 1, q->a, q->a0, q->a1, q->b, q->b0, q->beta, q->c, q->n);
    return 1;
  case DOTS:
    if (!f || q->a1 != 1 || q->b0 != 1) return 0;
    f->dots(q->m, q->n, q->k, 1, q->a, q->a0, q->b, q->b1, q->beta, q->c, q->n);
    return 1;
  default:
    if (q->m != 1) return 0;
    if (q->product == FORWARD) /* c^T = w x^T */
      cblas_sgemv(CblasRowMajor, CblasNoTrans, (blasint)q->n, (blasint)q->k, 1, q->b,
                  (blasint)q->b1, q->a, 1, q->beta, q->c, 1);
    else if (q->product == INPUT_GRAD) /* c^T = w^T g^T */
      cblas_sgemv(CblasRowMajor, CblasTrans, (blasint)q->k, (blasint)q->n, 1, q->b, (blasint)q->b0,
                  q->a, 1, q->beta, q->c, 1);
    else
      return 0;
    return 1;
  }
}

static float *filled(int64_t count) {
  float *p = malloc(sizeof(float) * (size_t)count);
  if (!p) {
    fprintf(stderr, "gemm_paths: out of memory\n");
    exit(1);
  }
  for (int64_t i = 0; i < count; i++) p[i] = (float)((i * 7919) % 1000) / 1000.0f - 0.5f;
  return p;
}

static void shape(int64_t batch, int64_t in, int64_t out, int rounds) {
  float *x = filled(batch * in), *w = filled(out * in), *g = filled(batch * out);
  float *y = filled(batch * out), *dx = filled(batch * in), *dw = filled(out * in);
  problem qs[3] = {
      /* y = x w^T: (batch, in)(in, out), w read as its transpose */
      {FORWARD, batch, out, in, in, 1, 1, in, x, w, y, 0},
      /* dx = g w: (batch, out)(out, in) */
      {INPUT_GRAD, batch, in, out, out, 1, in, 1, g, w, dx, 0},
      /* dw += g^T x: (out, batch)(batch, in), into the gradient */
      {WEIGHT_GRAD, out, in, batch, 1, out, in, 1, g, x, dw, 1},
  };
  for (int p = 0; p < 3; p++) {
    const problem *q = &qs[p];
    double macs = (double)q->m * (double)q->n * (double)q->k;
    int calls = (int)(2e-3 / (macs / 8e9 + 2e-7));
    if (calls < 1) calls = 1;
    double times[PATHS][64];
    int applies[PATHS];
    for (int path = 0; path < PATHS; path++) applies[path] = run(q, path);
    for (int r = 0; r < rounds; r++)
      for (int path = 0; path < PATHS; path++) {
        if (!applies[path]) continue;
        double t0 = now();
        for (int i = 0; i < calls; i++) run(q, path);
        times[path][r] = (now() - t0) / calls;
      }
    printf("%5lld %5lld %5lld  %-6s", (long long)batch, (long long)in, (long long)out,
           product_names[p]);
    for (int path = 0; path < PATHS; path++) {
      if (!applies[path]) {
        printf(" %9s", "-");
        continue;
      }
      qsort(times[path], (size_t)rounds, sizeof(double), by_value);
      printf(" %9.2f", times[path][0] * 1e6);
    }
    printf("\n");
  }
  free(x), free(w), free(g), free(y), free(dx), free(dw);
}

int main(int argc, char **argv) {
  int quick = 0, squares_only = 0, threads = 1;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--quick") == 0) quick = 1;
    else if (strcmp(argv[i], "--squares") == 0) squares_only = 1;
    else if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc) threads = atoi(argv[++i]);
    else {
      fprintf(stderr, "usage: gemm_paths [--quick] [--squares] [--threads N]\n");
      return 2;
    }
  }
  setvbuf(stdout, NULL, _IOLBF, 0); /* each row as it is measured */
  nn_cpu_set_num_threads(threads < 1 ? 1 : threads);
  best = nn_cpu_vector_best();
  baseline = nn_cpu_vector_named("baseline");
  int rounds = quick ? 3 : 15;
  printf("variant %s, %d thread(s); microseconds per call (best of %d rounds)\n", best->name,
         threads, rounds);
  printf("%5s %5s %5s  %-6s", "batch", "in", "out", "c =");
  for (int path = 0; path < PATHS; path++) printf(" %9s", path_names[path]);
  printf("\n");
  /* tiny and small: where the kernels give way to OpenBLAS */
  static const int64_t square[] = {4, 10, 16, 24, 32, 48, 64, 96, 128, 160, 192, 256};
  for (size_t i = 0; i < sizeof square / sizeof square[0]; i++)
    if (!quick || square[i] <= 16) shape(square[i], square[i], square[i], rounds);
  if (squares_only) return 0;
  /* skinny: a small batch through a wide layer */
  static const int64_t batches[] = {1, 2, 4, 8, 16, 32};
  static const int64_t widths[] = {256, 1024, 4096};
  for (size_t w = 0; w < sizeof widths / sizeof widths[0]; w++)
    for (size_t b = 0; b < sizeof batches / sizeof batches[0]; b++)
      if (!quick || (widths[w] == 256 && batches[b] <= 2)) shape(batches[b], widths[w], widths[w], rounds);
  return 0;
}

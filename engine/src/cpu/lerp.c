/* cpu/lerp.c: lerp with a number weight in one pass, the values of the
 * three ops it was (d = end - start; then start + d w, or end - d (1 - w)
 * from w = 1/2 on), each rounded to the dtype as they rounded: no fused
 * multiply-add, whatever the compiler may contract (ISO C11 does not). */
#include "cpu/cpu.h"

struct lerp_ctx { nn_dtype dtype; double w; };

/* Unit strides: loops that vectorise, compiled for baseline x86-64 and
   AVX2 (without FMA: the ops stay separately rounded). */
#if defined(__GNUC__) && defined(__x86_64__) && !defined(__clang__)
#define LERP_RUN_FN __attribute__((noinline, target_clones("default", "avx2")))
#else
#define LERP_RUN_FN
#endif
LERP_RUN_FN static void lerp_run_f32(int low, int64_t n, float *o, const float *s, const float *e, float k) {
  if (low)
    for (int64_t i = 0; i < n; i++) o[i] = s[i] + (e[i] - s[i]) * k;
  else
    for (int64_t i = 0; i < n; i++) o[i] = e[i] - (e[i] - s[i]) * k;
}

/* (out, start, end) */
static void lerp_inner(void *vctx, int64_t n, char **data, const int64_t *st) {
  const struct lerp_ctx *c = vctx;
  int low = c->w < 0.5;
  if (c->dtype == NN_FLOAT32) {
    float *o = (float *)data[0], k = (float)(low ? c->w : 1 - c->w);
    const float *s = (const float *)data[1], *e = (const float *)data[2];
    if (st[0] == 1 && st[1] == 1 && st[2] == 1) {
      lerp_run_f32(low, n, o, s, e, k);
      return;
    }
    for (int64_t i = 0; i < n; i++) {
      float a = s[i * st[1]], b = e[i * st[2]], d = b - a;
      o[i * st[0]] = low ? a + d * k : b - d * k;
    }
    return;
  }
  double *o = (double *)data[0], k = low ? c->w : 1 - c->w;
  const double *s = (const double *)data[1], *e = (const double *)data[2];
  for (int64_t i = 0; i < n; i++) {
    double a = s[i * st[1]], b = e[i * st[2]], d = b - a;
    o[i * st[0]] = low ? a + d * k : b - d * k;
  }
}

int nn_cpu_lerp(const nn_iter *it, double w) {
  struct lerp_ctx c = {it->dtype[0], w};
  nn_iter_run_parallel(it, lerp_inner, &c, 1);
  return 0;
}

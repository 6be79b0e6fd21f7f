/* check.h: the little assertion kit the C tests share.
 *
 * Each CHECK counts one pass or one failure; a failure prints where it was
 * and what was expected, and the test goes on. check_finish() prints the
 * "N passed, N failed" line every test ends with and gives main its exit
 * status. Only the public API (nn.h) is used. */
#ifndef NN_TEST_CHECK_H
#define NN_TEST_CHECK_H

#include "nn.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(__GNUC__)
#define CHECK_UNUSED __attribute__((unused))
#define CHECK_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define CHECK_UNUSED
#define CHECK_PRINTF(f, a)
#endif

static int check_passed, check_failed;

/* Counts one check; prints file:line and the message when it fails.
   Returns ok, so that a caller can skip what depends on it. */
static CHECK_UNUSED CHECK_PRINTF(4, 5) int check_at(int ok, const char *file, int line,
                                                    const char *fmt, ...) {
  if (ok) {
    check_passed++;
    return 1;
  }
  check_failed++;
  printf("FAIL %s:%d: ", file, line);
  va_list ap;
  va_start(ap, fmt);
  vprintf(fmt, ap);
  va_end(ap);
  printf("\n");
  return 0;
}

/* CHECK(cond): the condition's text is the message. */
#define CHECK(cond) check_at(!!(cond), __FILE__, __LINE__, "%s", #cond)
/* CHECKF(cond, fmt, ...): a message of one's own. */
#define CHECKF(cond, ...) check_at(!!(cond), __FILE__, __LINE__, __VA_ARGS__)

/* A tensor-returning call that must succeed: on NULL the engine's message is
   printed. Evaluates to the tensor. */
static CHECK_UNUSED nn_tensor *check_ok_at(nn_tensor *t, const char *file, int line,
                                           const char *what) {
  check_at(t != NULL, file, line, "%s returned NULL: %s", what, nn_error());
  return t;
}
#define OK(expr) check_ok_at((expr), __FILE__, __LINE__, #expr)

/* A tensor-returning call that must fail (NULL) with an error message that
   contains needle. A tensor it wrongly returned is released. */
static CHECK_UNUSED int check_fails_at(nn_tensor *t, const char *needle, const char *file,
                                       int line, const char *what) {
  if (t) {
    nn_release(t);
    return check_at(0, file, line, "%s succeeded, expected an error mentioning \"%s\"", what,
                    needle);
  }
  return check_at(strstr(nn_error(), needle) != NULL, file, line,
                  "%s failed with \"%s\", expected a message mentioning \"%s\"", what, nn_error(),
                  needle);
}
#define CHECK_FAILS(expr, needle) check_fails_at((expr), (needle), __FILE__, __LINE__, #expr)

/* A status-returning call (0 / negative) that must fail with needle. */
static CHECK_UNUSED int check_status_fails_at(int status, const char *needle, const char *file,
                                              int line, const char *what) {
  if (status >= 0)
    return check_at(0, file, line, "%s returned %d, expected an error mentioning \"%s\"", what,
                    status, needle);
  return check_at(strstr(nn_error(), needle) != NULL, file, line,
                  "%s failed with \"%s\", expected a message mentioning \"%s\"", what, nn_error(),
                  needle);
}
#define CHECK_STATUS_FAILS(expr, needle) \
  check_status_fails_at((expr), (needle), __FILE__, __LINE__, #expr)

/* A status-returning call that must succeed. */
#define CHECK_STATUS_OK(expr) \
  check_at((expr) >= 0, __FILE__, __LINE__, "%s failed: %s", #expr, nn_error())

/* x and y agree within tol, relative to the larger magnitude (absolute
   below 1). NaN matches NaN; infinities must be equal. */
static CHECK_UNUSED int near(double x, double y, double tol) {
  if (isnan(x) || isnan(y)) return isnan(x) && isnan(y);
  if (isinf(x) || isinf(y)) return x == y;
  double scale = fabs(x) > fabs(y) ? fabs(x) : fabs(y);
  return fabs(x - y) <= tol * (scale > 1 ? scale : 1);
}

/* Exactly equal, NaN matching NaN. */
static CHECK_UNUSED int same(double x, double y) { return x == y || (isnan(x) && isnan(y)); }

/* t has exactly this shape. */
static CHECK_UNUSED int check_shape_at(const nn_tensor *t, int ndim, const int64_t *size,
                                       const char *file, int line, const char *what) {
  if (!t) return check_at(0, file, line, "%s: no tensor", what);
  int ok = t->ndim == ndim;
  for (int i = 0; ok && i < ndim; i++) ok = t->size[i] == size[i];
  char got[128], want[128];
  size_t used = 0;
  want[0] = 0;
  for (int i = 0; i < ndim && used < sizeof want; i++)
    used += (size_t)snprintf(want + used, sizeof want - used, i ? "x%lld" : "%lld",
                             (long long)size[i]);
  if (ndim == 0) snprintf(want, sizeof want, "scalar");
  return check_at(ok, file, line, "%s: shape %s, expected %s", what,
                  nn_shape_string(t, got, sizeof got), want);
}
#define CHECK_SHAPE(t, ndim, ...) \
  check_shape_at((t), (ndim), (const int64_t[]){__VA_ARGS__}, __FILE__, __LINE__, #t)
#define CHECK_SCALAR_SHAPE(t) check_shape_at((t), 0, NULL, __FILE__, __LINE__, #t)

/* Every element of t (logical order) against expected[i] within tol (0:
   exact). Reports the first difference only; counts one check. */
static CHECK_UNUSED int check_values_at(const nn_tensor *t, const double *expected, int64_t n,
                                        double tol, const char *file, int line, const char *what) {
  if (!t) return check_at(0, file, line, "%s: no tensor", what);
  if (nn_numel(t) != n)
    return check_at(0, file, line, "%s: %lld elements, expected %lld", what,
                    (long long)nn_numel(t), (long long)n);
  for (int64_t i = 0; i < n; i++) {
    double got = nn_get_flat(t, i);
    int ok = tol == 0 ? same(got, expected[i]) : near(got, expected[i], tol);
    if (!ok)
      return check_at(0, file, line, "%s[%lld] = %.17g, expected %.17g", what, (long long)i, got,
                      expected[i]);
  }
  return check_at(1, file, line, "%s", what);
}
#define CHECK_VALUES(t, tol, ...)                                                       \
  check_values_at((t), (const double[]){__VA_ARGS__},                                   \
                  (int64_t)(sizeof((const double[]){__VA_ARGS__}) / sizeof(double)), (tol), \
                  __FILE__, __LINE__, #t)
#define CHECK_VALUES_N(t, expected, n, tol) \
  check_values_at((t), (expected), (n), (tol), __FILE__, __LINE__, #t)

/* A new contiguous tensor holding values (row-major); NULL on failure. */
static CHECK_UNUSED nn_tensor *tensor_of(nn_dtype dtype, int ndim, const int64_t *size,
                                         const double *values) {
  nn_tensor *t = nn_empty(dtype, ndim, size);
  if (!t) return NULL;
  for (int64_t i = 0, n = nn_numel(t); i < n; i++) nn_set_flat(t, i, values[i]);
  return t;
}
/* A size array in place: nn_zeros(NN_FLOAT32, 2, SZ(3, 4)). */
#define SZ(...) ((const int64_t[]){__VA_ARGS__})
/* TENSOR(NN_FLOAT32, 2, SZ(2, 2), 1, 2, 3, 4) */
#define TENSOR(dtype, ndim, size, ...) tensor_of((dtype), (ndim), (size), (const double[]){__VA_ARGS__})

/* A deterministic generator for test data, independent of the engine's. */
static uint64_t check_rng_state = 0x9E3779B97F4A7C15ull;
static CHECK_UNUSED double check_uniform(void) { /* in [-1, 1) */
  check_rng_state = check_rng_state * 6364136223846793005ull + 1442695040888963407ull;
  return (double)(check_rng_state >> 11) / (double)(1ull << 53) * 2.0 - 1.0;
}

/* A contiguous tensor of uniform values in [-1, 1), exactly representable in
   float32 so both dtypes hold the same numbers. */
static CHECK_UNUSED nn_tensor *random_tensor(nn_dtype dtype, int ndim, const int64_t *size) {
  nn_tensor *t = nn_empty(dtype, ndim, size);
  if (!t) return NULL;
  for (int64_t i = 0, n = nn_numel(t); i < n; i++) nn_set_flat(t, i, (float)check_uniform());
  return t;
}

/* The last line of every test, and main's exit status. */
static CHECK_UNUSED int check_finish(void) {
  printf("%d passed, %d failed\n", check_passed, check_failed);
  return check_failed ? 1 : 0;
}

#endif

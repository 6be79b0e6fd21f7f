/* cpu/band.c: tril and triu. A row of a matrix keeps one run of columns
 * (j - i <= k for tril, j - i >= k for triu): each row is a copy of that
 * run and zeros on either side, whatever the dtype (all bits zero is 0 in
 * every one). The rows go over the pool; each is written by one thread. */
#include "cpu/cpu.h"

#include <string.h>

struct band_ctx {
  size_t es;
  int64_t rows, cols, k;
  int upper;
  const char *in;
  char *out;
};

static void band_rows(const void *vctx, int64_t first, int64_t last) {
  const struct band_ctx *c = vctx;
  int64_t cols = c->cols;
  for (int64_t q = first; q < last; q++) {
    int64_t i = q % c->rows, edge = i + c->k; /* k clamped: no overflow */
    int64_t lo = c->upper ? edge : 0, hi = c->upper ? cols : edge + 1;
    lo = lo < 0 ? 0 : (lo > cols ? cols : lo);
    hi = hi < lo ? lo : (hi > cols ? cols : hi);
    size_t row = (size_t)(q * cols) * c->es;
    memset(c->out + row, 0, (size_t)lo * c->es);
    memcpy(c->out + row + (size_t)lo * c->es, c->in + row + (size_t)lo * c->es, (size_t)(hi - lo) * c->es);
    memset(c->out + row + (size_t)hi * c->es, 0, (size_t)(cols - hi) * c->es);
  }
}

int nn_cpu_band(nn_dtype dtype, int64_t batch, int64_t rows, int64_t cols, int64_t k, int upper,
                const void *in, void *out) {
  if (batch <= 0 || rows <= 0 || cols <= 0) return 0;
  /* past these bounds every row keeps all or nothing alike */
  if (k > cols + 1) k = cols + 1;
  if (k < -rows - 1) k = -rows - 1;
  struct band_ctx c = {nn_element_size(dtype), rows, cols, k, upper, in, out};
  nn_parallel_for(batch * rows, cols, 1, band_rows, &c);
  return 0;
}

/* cpu/scan.c: kernels that walk each line in order: the scans (cumsum,
 * cumprod) and cumprod's gradient, sorting, and the scatter that takes a
 * gradient back to the positions sort picked. Lines come from an
 * nn_reduce_geom with one reduced dim (or none, for lines of one element). */
#include "cpu/cpu.h"

#include <stdlib.h>

struct scan_ctx {
  const nn_reduce_geom *r;
  int64_t n;
  nn_scan_op op;
  int reverse; /* sort: descending */
  int failed;  /* out of memory for a sort's scratch */
  int64_t stride; /* scatter_line: the gradient's stride along the dim; topk: k */
};

/* Element j of operand k's line at run position p, as a double. */
static inline double value_at(const nn_reduce_geom *r, char **data, const int64_t *st, int k,
                              int64_t p, int64_t j) {
  return nn_load(r->it.dtype[k], at(r, data, st, k, p, j), 0);
}

/* The j-th element of a line in the scan's order. */
static inline int64_t scan_index(const struct scan_ctx *c, int64_t j) {
  return c->reverse ? c->n - 1 - j : j;
}

/* (out, in): running sums accumulate in double (float inputs) or int64,
   each partial result stored in out's dtype as it comes. */
static void scan_inner(void *vctx, int64_t count, char **data, const int64_t *st) {
  const struct scan_ctx *c = vctx;
  const nn_reduce_geom *r = c->r;
  const nn_dtype *dt = r->it.dtype;
  int floating = nn_floating_dtype(dt[1]);
  for (int64_t p = 0; p < count; p++) {
    double acc = c->op == NN_SCAN_PROD ? 1 : 0;
    uint64_t iacc = c->op == NN_SCAN_PROD ? 1 : 0;
    for (int64_t j = 0; j < c->n; j++) {
      int64_t k = scan_index(c, j);
      if (floating) {
        double v = nn_load(dt[1], at(r, data, st, 1, p, k), 0);
        acc = c->op == NN_SCAN_PROD ? acc * v : acc + v;
        nn_store(dt[0], at(r, data, st, 0, p, k), 0, acc);
      } else {
        uint64_t v = (uint64_t)nn_load_integer(dt[1], at(r, data, st, 1, p, k), 0);
        iacc = c->op == NN_SCAN_PROD ? iacc * v : iacc + v;
        nn_store_integer(dt[0], at(r, data, st, 0, p, k), 0, (int64_t)iacc);
      }
    }
  }
}

int nn_cpu_scan(nn_scan_op op, int reverse, const nn_reduce_geom *r) {
  struct scan_ctx c = {r, line_length(r), op, reverse, 0, 0};
  nn_iter_run(&r->it, scan_inner, &c);
  return 0;
}

/* (gi, x, out, g): before the line's first zero z, x_k is not 0 and
   gi_k = sum_{i >= k} g_i out_i / x_k (out_i is 0 from z on); at z, the
   product before it times sum_{i >= z} g_i prod_{z < j <= i} x_j; after
   z, 0 (every product holds x_z). One pass backward for the sums, one
   forward for z's term. */
static void cumprod_backward_inner(void *vctx, int64_t count, char **data, const int64_t *st) {
  const struct scan_ctx *c = vctx;
  const nn_reduce_geom *r = c->r;
  const nn_dtype *dt = r->it.dtype;
  for (int64_t p = 0; p < count; p++) {
    int64_t z = c->n;
    for (int64_t j = 0; j < c->n && z == c->n; j++)
      if (value_at(r, data, st, 1, p, j) == 0) z = j;
    double tail = 0;
    for (int64_t k = c->n - 1; k >= 0; k--) {
      double gk = 0;
      if (k < z) {
        tail += value_at(r, data, st, 3, p, k) * value_at(r, data, st, 2, p, k);
        gk = tail / value_at(r, data, st, 1, p, k);
      }
      nn_store(dt[0], at(r, data, st, 0, p, k), 0, gk);
    }
    if (z < c->n) {
      double before = z > 0 ? value_at(r, data, st, 2, p, z - 1) : 1, run = before, sum = 0;
      for (int64_t i = z; i < c->n; i++) {
        if (i > z) run *= value_at(r, data, st, 1, p, i);
        sum += value_at(r, data, st, 3, p, i) * run;
      }
      nn_store(dt[0], at(r, data, st, 0, p, z), 0, sum);
    }
  }
}

int nn_cpu_cumprod_backward(const nn_reduce_geom *r) {
  struct scan_ctx c = {r, line_length(r), NN_SCAN_PROD, 0, 0, 0};
  nn_iter_run(&r->it, cumprod_backward_inner, &c);
  return 0;
}

/* ---- sort ----------------------------------------------------------------- */
typedef struct { double v; int64_t i; } keyed;

/* a goes before b: ascending with NaN last, descending with NaN first
   (PyTorch's order); ties keep their positions (the merge is stable). */
static inline int before(const keyed *a, const keyed *b, int descending) {
  if (isnan(a->v) || isnan(b->v)) return descending ? isnan(a->v) && !isnan(b->v) : !isnan(a->v) && isnan(b->v);
  return descending ? a->v > b->v : a->v < b->v;
}

/* Stable merge sort of e[0..n) with scratch tmp of n elements. */
static void merge_sort(keyed *e, keyed *tmp, int64_t n, int descending) {
  for (int64_t width = 1; width < n; width *= 2) {
    for (int64_t lo = 0; lo < n; lo += 2 * width) {
      int64_t mid = lo + width < n ? lo + width : n, hi = lo + 2 * width < n ? lo + 2 * width : n;
      int64_t i = lo, j = mid, k = lo;
      while (i < mid && j < hi) tmp[k++] = before(&e[j], &e[i], descending) ? e[j++] : e[i++];
      while (i < mid) tmp[k++] = e[i++];
      while (j < hi) tmp[k++] = e[j++];
    }
    memcpy(e, tmp, (size_t)n * sizeof *e);
  }
}

/* (values, indices, in) */
static void sort_inner(void *vctx, int64_t count, char **data, const int64_t *st) {
  struct scan_ctx *c = vctx;
  const nn_reduce_geom *r = c->r;
  const nn_dtype *dt = r->it.dtype;
  keyed *e = malloc((size_t)(c->n ? c->n : 1) * 2 * sizeof *e);
  if (!e) {
    c->failed = 1;
    return;
  }
  for (int64_t p = 0; p < count; p++) {
    for (int64_t j = 0; j < c->n; j++) {
      e[j].v = nn_load(dt[2], at(r, data, st, 2, p, j), 0);
      e[j].i = j;
    }
    merge_sort(e, e + c->n, c->n, c->reverse);
    for (int64_t j = 0; j < c->n; j++) {
      nn_store(dt[0], at(r, data, st, 0, p, j), 0, e[j].v);
      *(int64_t *)at(r, data, st, 1, p, j) = e[j].i;
    }
  }
  free(e);
}

int nn_cpu_sort(int descending, const nn_reduce_geom *r) {
  struct scan_ctx c = {r, line_length(r), NN_SCAN_SUM, descending, 0, 0};
  nn_iter_run(&r->it, sort_inner, &c);
  if (c.failed) {
    nn_error_set("sort: out of memory for a line of %lld elements", (long long)c.n);
    return -1;
  }
  return 0;
}

/* ---- topk: the k first of each line in sort's order ---------------------- */
/* Past this k a whole sort costs less than insertions into the kept run. */
#define TOPK_INSERTION_MAX 64

/* (values, indices, in), all full shape: the first k positions of each line
   get what a stable sort would put there; the rest is left unwritten. The
   kept run stays sorted; an element enters only when strictly before the
   run's last, after every equal one (it comes later): the stable order. */
static void topk_inner(void *vctx, int64_t count, char **data, const int64_t *st) {
  struct scan_ctx *c = vctx;
  const nn_reduce_geom *r = c->r;
  const nn_dtype *dt = r->it.dtype;
  int64_t k = c->stride, whole = k > TOPK_INSERTION_MAX;
  keyed *e = malloc((size_t)(whole ? c->n * 2 + 1 : k + 1) * sizeof *e);
  if (!e) {
    c->failed = 1;
    return;
  }
  for (int64_t p = 0; p < count; p++) {
    if (whole) {
      for (int64_t j = 0; j < c->n; j++) e[j] = (keyed){value_at(r, data, st, 2, p, j), j};
      merge_sort(e, e + c->n, c->n, c->reverse);
    } else {
      int64_t kept = 0;
      for (int64_t j = 0; j < c->n; j++) {
        keyed x = {value_at(r, data, st, 2, p, j), j};
        if (kept == k && (k == 0 || !before(&x, &e[k - 1], c->reverse))) continue;
        int64_t pos = kept < k ? kept++ : k - 1;
        for (; pos > 0 && before(&x, &e[pos - 1], c->reverse); pos--) e[pos] = e[pos - 1];
        e[pos] = x;
      }
    }
    for (int64_t j = 0; j < k; j++) {
      nn_store(dt[0], at(r, data, st, 0, p, j), 0, e[j].v);
      *(int64_t *)at(r, data, st, 1, p, j) = e[j].i;
    }
  }
  free(e);
}

int nn_cpu_topk(int largest, int64_t k, const nn_reduce_geom *r) {
  struct scan_ctx c = {r, line_length(r), NN_SCAN_SUM, largest, 0, k};
  nn_iter_run(&r->it, topk_inner, &c);
  if (c.failed) {
    nn_error_set("topk: out of memory for a line of %lld elements", (long long)c.n);
    return -1;
  }
  return 0;
}

/* (gi, g, indices) */
static void scatter_line_inner(void *vctx, int64_t count, char **data, const int64_t *st) {
  const struct scan_ctx *c = vctx;
  const nn_reduce_geom *r = c->r;
  const nn_dtype *dt = r->it.dtype;
  int64_t stride = c->stride;
  for (int64_t p = 0; p < count; p++) {
    char *gi = at(r, data, st, 0, p, 0);
    for (int64_t j = 0; j < c->n; j++) {
      int64_t k = *(const int64_t *)at(r, data, st, 2, p, j);
      double g = nn_load(dt[1], at(r, data, st, 1, p, j), 0);
      nn_store(dt[0], gi, k * stride, nn_load(dt[0], gi, k * stride) + g);
    }
  }
}

int nn_cpu_scatter_line(const nn_reduce_geom *r, int64_t stride) {
  struct scan_ctx c = {r, line_length(r), NN_SCAN_SUM, 0, 0, stride};
  nn_iter_run(&r->it, scatter_line_inner, &c);
  return 0;
}

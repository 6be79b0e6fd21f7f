/* cpu/reduce.c: reductions over the lines of an nn_reduce_geom (sum, mean,
 * p-norm), max and min with their indices, and the backward of max, min
 * and norm. Formulas: math/reduce.h. */
#include "cpu/cpu.h"
#include "math/reduce.h"

#include <stdlib.h>

/* What every kernel here hands its inner function: the geometry, the
   lines' length, and the kernel's own parameters. */
struct lines_ctx {
  const nn_reduce_geom *r;
  int64_t n;
  nn_reduce_op op;
  double p;     /* the norm's order */
  int want_max; /* max, not min */
};

/* ---- sum, mean, norm ----------------------------------------------------- */

static void store_result(const struct lines_ctx *c, char *out, double sum, int64_t isum) {
  nn_dtype dt = c->r->it.dtype[0];
  if (c->op == NN_REDUCE_VAR) nn_store(dt, out, 0, sum / ((double)c->n - c->p));
  else if (c->op == NN_REDUCE_NORM) nn_store(dt, out, 0, c->n ? nn_norm_finish(sum, c->p) : 0);
  else if (c->op == NN_REDUCE_MEAN) nn_store(dt, out, 0, sum / (double)c->n);
  else if (nn_floating_dtype(c->r->it.dtype[1])) nn_store(dt, out, 0, sum);
  else if (c->op == NN_REDUCE_PROD) nn_store_integer(dt, out, 0, isum);
  else nn_store_integer(dt, out, 0, isum);
}

/* One output per line, the line walked element by element. */
static void reduce_lines(const struct lines_ctx *c, int64_t count, char **data, const int64_t *st) {
  const nn_reduce_geom *r = c->r;
  nn_dtype dt = r->it.dtype[1];
  int floating = nn_floating_dtype(dt);
  for (int64_t p = 0; p < count; p++) {
    const char *x = at(r, data, st, 1, p, 0);
    double acc = c->op == NN_REDUCE_NORM ? nn_norm_start(c->p) : (c->op == NN_REDUCE_PROD ? 1 : 0);
    int64_t iacc = c->op == NN_REDUCE_PROD ? 1 : 0;
    if (c->op == NN_REDUCE_PROD && dt == NN_FLOAT32 && r->rdims == 1) {
      const float *xf = (const float *)x;
      int64_t s = r->rstride[0][1];
      for (int64_t j = 0; j < c->n; j++) acc *= xf[j * s];
    } else if (c->op == NN_REDUCE_PROD && floating) {
      for (int64_t j = 0; j < c->n; j++) acc *= nn_load(dt, x, line_offset(r, 1, j));
    } else if (c->op == NN_REDUCE_PROD) {
      for (int64_t j = 0; j < c->n; j++)
        iacc = (int64_t)((uint64_t)iacc * (uint64_t)nn_load_integer(dt, x, line_offset(r, 1, j)));
    } else if (c->op == NN_REDUCE_VAR) { /* two passes: the mean, then the squares about it */
      double mean = 0;
      for (int64_t j = 0; j < c->n; j++) mean += nn_load(dt, x, line_offset(r, 1, j));
      mean /= (double)c->n;
      for (int64_t j = 0; j < c->n; j++) {
        double d = nn_load(dt, x, line_offset(r, 1, j)) - mean;
        acc += d * d;
      }
    } else if (c->op == NN_REDUCE_NORM) {
      for (int64_t j = 0; j < c->n && !isnan(acc); j++)
        acc = nn_norm_step(acc, fabs(nn_load(dt, x, line_offset(r, 1, j))), c->p);
    } else if (dt == NN_FLOAT32 && r->rdims == 1) {
      const float *xf = (const float *)x;
      int64_t s = r->rstride[0][1];
      for (int64_t j = 0; j < c->n; j++) acc += xf[j * s];
    } else if (floating) {
      for (int64_t j = 0; j < c->n; j++) acc += nn_load(dt, x, line_offset(r, 1, j));
    } else {
      for (int64_t j = 0; j < c->n; j++)
        iacc = (int64_t)((uint64_t)iacc + (uint64_t)nn_load_integer(dt, x, line_offset(r, 1, j)));
    }
    store_result(c, at(r, data, st, 0, p, 0), acc, iacc);
  }
}

/* The same sums with the loops swapped, when the outputs lie closer in
   memory than a line's elements (a sum over rows): each line index in turn
   over every output of the run, so that memory is read in one pass. Each
   output still adds its elements in line order: the same sums. */
static int sum_across(const struct lines_ctx *c, int64_t count, char **data, const int64_t *st) {
  const nn_reduce_geom *r = c->r;
  nn_dtype dt = r->it.dtype[1];
  double stack[256], *acc = count <= 256 ? stack : malloc((size_t)count * sizeof *acc);
  if (!acc) return 0; /* the line-by-line loop needs no memory */
  for (int64_t p = 0; p < count; p++) acc[p] = 0;
  int64_t es = (int64_t)nn_element_size(dt);
  for (int64_t j = 0; j < c->n; j++) {
    const char *x = data[1] + line_offset(r, 1, j) * es;
    if (dt == NN_FLOAT32) {
      const float *xf = (const float *)x;
      for (int64_t p = 0; p < count; p++) acc[p] += xf[p * st[1]];
    } else {
      for (int64_t p = 0; p < count; p++) acc[p] += nn_load(dt, x, p * st[1]);
    }
  }
  for (int64_t p = 0; p < count; p++) store_result(c, at(r, data, st, 0, p, 0), acc[p], 0);
  if (acc != stack) free(acc);
  return 1;
}

static void reduce_inner(void *vctx, int64_t count, char **data, const int64_t *st) {
  const struct lines_ctx *c = vctx;
  const nn_reduce_geom *r = c->r;
  int64_t inner = r->rdims ? r->rstride[r->rdims - 1][1] : 0;
  if ((c->op == NN_REDUCE_SUM || c->op == NN_REDUCE_MEAN) && nn_floating_dtype(r->it.dtype[1]) &&
      count > 1 && c->n > 1 &&
      llabs(st[1]) < llabs(inner) && sum_across(c, count, data, st))
    return;
  reduce_lines(c, count, data, st);
}

int nn_cpu_reduce(nn_reduce_op op, const nn_reduce_geom *r, double p) {
  struct lines_ctx c = {r, line_length(r), op, p, 0};
  nn_iter_run_parallel(&r->it, reduce_inner, &c, c.n);
  return 0;
}

/* ---- max and min ----------------------------------------------------------- */

/* (values, in, indices) */
static void extreme_inner(void *vctx, int64_t count, char **data, const int64_t *st) {
  const struct lines_ctx *c = vctx;
  const nn_reduce_geom *r = c->r;
  nn_dtype dt = r->it.dtype[1];
  for (int64_t p = 0; p < count; p++) {
    const char *x = at(r, data, st, 1, p, 0);
    double best = nn_load(dt, x, 0);
    int64_t best_j = 0;
    if (dt == NN_FLOAT32 && r->rdims == 1) { /* typed loads: no per-element dtype switch */
      const float *xf = (const float *)x;
      int64_t s = r->rstride[0][1];
      for (int64_t j = 1; j < c->n; j++)
        if (nn_extreme_better(xf[j * s], best, c->want_max)) best = xf[j * s], best_j = j;
    } else {
      for (int64_t j = 1; j < c->n; j++) {
        double v = nn_load(dt, x, line_offset(r, 1, j));
        if (nn_extreme_better(v, best, c->want_max)) best = v, best_j = j;
      }
    }
    nn_store(r->it.dtype[0], at(r, data, st, 0, p, 0), 0, best);
    *(int64_t *)at(r, data, st, 2, p, 0) = best_j;
  }
}

int nn_cpu_extreme(int want_max, const nn_reduce_geom *r) {
  struct lines_ctx c = {r, line_length(r), NN_REDUCE_SUM, 0, want_max};
  nn_iter_run_parallel(&r->it, extreme_inner, &c, c.n);
  return 0;
}

/* ---- logsumexp ---------------------------------------------------------------- */
/* One pass over each line for the max and one for the exps, nothing
   allocated: the fronts it replaces (amax, nan_to_num, sub, exp, sum, log,
   add) made four full-size temporaries. Rounded as they round: exp and log
   in the dtype (expf, logf for float32), the sum in double. */
static void logsumexp_inner(void *vctx, int64_t count, char **data, const int64_t *st) {
  const struct lines_ctx *c = vctx;
  const nn_reduce_geom *r = c->r;
  for (int64_t p = 0; p < count; p++) {
    double acc = 0;
    if (r->it.dtype[1] == NN_FLOAT32) {
      const float *x = (const float *)at(r, data, st, 1, p, 0);
      float m = x[0];
      for (int64_t j = 1; j < c->n; j++)
        if (nn_extreme_better(x[line_offset(r, 1, j)], m, 1)) m = x[line_offset(r, 1, j)];
      m = isinf(m) ? 0.0f : m;
      for (int64_t j = 0; j < c->n; j++) acc += expf(x[line_offset(r, 1, j)] - m);
      *(float *)at(r, data, st, 0, p, 0) = logf((float)acc) + m;
    } else {
      const double *x = (const double *)at(r, data, st, 1, p, 0);
      double m = x[0];
      for (int64_t j = 1; j < c->n; j++)
        if (nn_extreme_better(x[line_offset(r, 1, j)], m, 1)) m = x[line_offset(r, 1, j)];
      m = isinf(m) ? 0.0 : m;
      for (int64_t j = 0; j < c->n; j++) acc += exp(x[line_offset(r, 1, j)] - m);
      *(double *)at(r, data, st, 0, p, 0) = log(acc) + m;
    }
  }
}

int nn_cpu_logsumexp(const nn_reduce_geom *r) {
  struct lines_ctx c = {r, line_length(r), NN_REDUCE_SUM, 0, 0};
  nn_iter_run_parallel(&r->it, logsumexp_inner, &c, c.n);
  return 0;
}

/* (gi, g, indices): gi is zero; g lands at each line's index */
static void extreme_backward_inner(void *vctx, int64_t count, char **data, const int64_t *st) {
  const nn_reduce_geom *r = vctx;
  for (int64_t p = 0; p < count; p++) {
    int64_t j = *(const int64_t *)at(r, data, st, 2, p, 0);
    double g = nn_load(r->it.dtype[1], at(r, data, st, 1, p, 0), 0);
    nn_store(r->it.dtype[0], at(r, data, st, 0, p, j), 0, g);
  }
}

int nn_cpu_extreme_backward(const nn_reduce_geom *r) {
  nn_iter_run_parallel(&r->it, extreme_backward_inner, (void *)r, 1);
  return 0;
}

/* (gi, x, value, g) */
static void extreme_all_backward_inner(void *vctx, int64_t count, char **data, const int64_t *st) {
  const struct lines_ctx *c = vctx;
  const nn_reduce_geom *r = c->r;
  const nn_dtype *dt = r->it.dtype;
  for (int64_t p = 0; p < count; p++) {
    double value = nn_load(dt[2], at(r, data, st, 2, p, 0), 0);
    double g = nn_load(dt[3], at(r, data, st, 3, p, 0), 0);
    int64_t n_equal = 0;
    for (int64_t j = 0; j < c->n; j++)
      n_equal += nn_extreme_attains(nn_load(dt[1], at(r, data, st, 1, p, j), 0), value);
    for (int64_t j = 0; j < c->n; j++) {
      int attains = nn_extreme_attains(nn_load(dt[1], at(r, data, st, 1, p, j), 0), value);
      nn_store(dt[0], at(r, data, st, 0, p, j), 0, attains ? g / (double)n_equal : 0);
    }
  }
}

int nn_cpu_extreme_all_backward(const nn_reduce_geom *r) {
  struct lines_ctx c = {r, line_length(r), NN_REDUCE_SUM, 0, 0};
  nn_iter_run_parallel(&r->it, extreme_all_backward_inner, &c, c.n);
  return 0;
}

/* ---- norm's gradient ---------------------------------------------------------- */

/* (gi, x, norm, g) */
static void norm_backward_inner(void *vctx, int64_t count, char **data, const int64_t *st) {
  const struct lines_ctx *c = vctx;
  const nn_reduce_geom *r = c->r;
  const nn_dtype *dt = r->it.dtype;
  for (int64_t p = 0; p < count; p++) {
    double norm = nn_load(dt[2], at(r, data, st, 2, p, 0), 0);
    double g = nn_load(dt[3], at(r, data, st, 3, p, 0), 0);
    int64_t attaining = 0;
    if (isinf(c->p))
      for (int64_t j = 0; j < c->n; j++)
        attaining += nn_norm_attains(nn_load(dt[1], at(r, data, st, 1, p, j), 0), norm);
    for (int64_t j = 0; j < c->n; j++) {
      double v = nn_load(dt[1], at(r, data, st, 1, p, j), 0);
      nn_store(dt[0], at(r, data, st, 0, p, j), 0, nn_norm_grad(v, norm, g, c->p, attaining));
    }
  }
}

int nn_cpu_norm_backward(double p, const nn_reduce_geom *r) {
  struct lines_ctx c = {r, line_length(r), NN_REDUCE_NORM, p, 0};
  nn_iter_run_parallel(&r->it, norm_backward_inner, &c, c.n);
  return 0;
}

/* ---- prod's gradient --------------------------------------------------------- */

/* (gi, x, out, g): PyTorch's prod_backward, line by line */
static void prod_backward_inner(void *vctx, int64_t count, char **data, const int64_t *st) {
  const struct lines_ctx *c = vctx;
  const nn_reduce_geom *r = c->r;
  const nn_dtype *dt = r->it.dtype;
  for (int64_t p = 0; p < count; p++) {
    double out = nn_load(dt[2], at(r, data, st, 2, p, 0), 0);
    double g = nn_load(dt[3], at(r, data, st, 3, p, 0), 0);
    int64_t zeros = 0, zero_at = 0;
    double others = 1; /* the product of the nonzero elements */
    for (int64_t j = 0; j < c->n; j++) {
      double v = nn_load(dt[1], at(r, data, st, 1, p, j), 0);
      if (v == 0) zeros++, zero_at = j;
      else others *= v;
    }
    for (int64_t j = 0; j < c->n; j++) {
      double v = nn_load(dt[1], at(r, data, st, 1, p, j), 0), gv;
      if (zeros == 0) gv = g * (out / v);
      else gv = zeros == 1 && j == zero_at ? g * others : 0;
      nn_store(dt[0], at(r, data, st, 0, p, j), 0, gv);
    }
  }
}

int nn_cpu_prod_backward(const nn_reduce_geom *r) {
  struct lines_ctx c = {r, line_length(r), NN_REDUCE_PROD, 0, 0};
  nn_iter_run_parallel(&r->it, prod_backward_inner, &c, c.n);
  return 0;
}

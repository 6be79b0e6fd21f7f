/* cpu/index.c: the indexing kernels: index tensors turned into element
 * offsets (checked), reads and writes at those offsets, where, and the
 * coordinates of nonzero elements. */
#include "cpu/cpu.h"

struct offsets_ctx {
  int64_t n, scale;
  int base, negative, dim;
  const char *op;
  int failed;
};

static void offsets_inner(void *ctx, int64_t n, char **data, const int64_t *stride) {
  struct offsets_ctx *c = ctx;
  int64_t *out = (int64_t *)data[0];
  const int64_t *in = (const int64_t *)data[1];
  for (int64_t i = 0; i < n && !c->failed; i++) {
    int64_t v = in[i * stride[1]], r = v < 0 ? (c->negative ? c->n + v : -1) : v - c->base;
    if ((c->base == 1 && v == 0) || r < 0 || r >= c->n) {
      if (c->base == 1 && v == 0)
        nn_error_set("%s: index 0 is out of range (indices count from 1)", c->op);
      else if (c->dim < 0)
        nn_error_set("%s: index %lld is out of range for a tensor of %lld elements", c->op,
                     (long long)v, (long long)c->n);
      else
        nn_error_set("%s: index %lld is out of range for dimension %d of size %lld", c->op,
                     (long long)v, c->dim + 1, (long long)c->n);
      c->failed = 1;
      return;
    }
    out[i * stride[0]] = r * c->scale;
  }
}

int nn_cpu_index_offsets(const nn_iter *it, int64_t n, int64_t scale, int base, int negative,
                         int dim, const char *op) {
  struct offsets_ctx c = {n, scale, base, negative, dim, op, 0};
  nn_iter_run(it, offsets_inner, &c);
  return c.failed ? -1 : 0;
}

static void gather_inner(void *ctx, int64_t n, char **data, const int64_t *stride) {
  nn_dtype dtype = *(const nn_dtype *)ctx;
  const int64_t *off = (const int64_t *)data[2];
  if (dtype == NN_FLOAT32) {
    float *out = (float *)data[0];
    const float *src = (const float *)data[1];
    for (int64_t i = 0; i < n; i++) out[i * stride[0]] = src[i * stride[1] + off[i * stride[2]]];
  } else if (dtype == NN_FLOAT64) {
    double *out = (double *)data[0];
    const double *src = (const double *)data[1];
    for (int64_t i = 0; i < n; i++) out[i * stride[0]] = src[i * stride[1] + off[i * stride[2]]];
  } else {
    for (int64_t i = 0; i < n; i++)
      nn_store(dtype, data[0], i * stride[0],
               nn_load(dtype, data[1], i * stride[1] + off[i * stride[2]]));
  }
}

int nn_cpu_index_gather(const nn_iter *it) {
  nn_iter_run(it, gather_inner, (void *)&it->dtype[0]);
  return 0;
}

struct put_ctx { nn_dtype dtype; int accumulate; };

static void put_inner(void *ctx, int64_t n, char **data, const int64_t *stride) {
  const struct put_ctx *c = ctx;
  const int64_t *off = (const int64_t *)data[2];
  if (c->dtype == NN_FLOAT32) {
    float *dst = (float *)data[0];
    const float *v = (const float *)data[1];
    for (int64_t i = 0; i < n; i++) {
      float *d = dst + i * stride[0] + off[i * stride[2]];
      *d = c->accumulate ? *d + v[i * stride[1]] : v[i * stride[1]];
    }
  } else if (c->dtype == NN_FLOAT64) {
    double *dst = (double *)data[0];
    const double *v = (const double *)data[1];
    for (int64_t i = 0; i < n; i++) {
      double *d = dst + i * stride[0] + off[i * stride[2]];
      *d = c->accumulate ? *d + v[i * stride[1]] : v[i * stride[1]];
    }
  } else {
    for (int64_t i = 0; i < n; i++) {
      int64_t at = i * stride[0] + off[i * stride[2]];
      double v = nn_load(c->dtype, data[1], i * stride[1]);
      if (c->dtype == NN_INT64) { /* exact beyond 2^53 */
        int64_t w = nn_load_integer(NN_INT64, data[1], i * stride[1]);
        nn_store_integer(NN_INT64, data[0], at, c->accumulate ? nn_load_integer(NN_INT64, data[0], at) + w : w);
      } else
        nn_store(c->dtype, data[0], at, c->accumulate ? nn_load(c->dtype, data[0], at) + v : v);
    }
  }
}

int nn_cpu_index_put(const nn_iter *it, int accumulate) {
  struct put_ctx c = {it->dtype[0], accumulate};
  nn_iter_run(it, put_inner, &c);
  return 0;
}

static void where_inner(void *ctx, int64_t n, char **data, const int64_t *stride) {
  nn_dtype dtype = *(const nn_dtype *)ctx;
  const unsigned char *cond = (const unsigned char *)data[1];
  if (dtype == NN_FLOAT32) {
    float *out = (float *)data[0];
    const float *a = (const float *)data[2], *b = (const float *)data[3];
    for (int64_t i = 0; i < n; i++)
      out[i * stride[0]] = cond[i * stride[1]] ? a[i * stride[2]] : b[i * stride[3]];
  } else if (dtype == NN_FLOAT64) {
    double *out = (double *)data[0];
    const double *a = (const double *)data[2], *b = (const double *)data[3];
    for (int64_t i = 0; i < n; i++)
      out[i * stride[0]] = cond[i * stride[1]] ? a[i * stride[2]] : b[i * stride[3]];
  } else {
    for (int64_t i = 0; i < n; i++)
      nn_store(dtype, data[0], i * stride[0],
               cond[i * stride[1]] ? nn_load(dtype, data[2], i * stride[2])
                                   : nn_load(dtype, data[3], i * stride[3]));
  }
}

int nn_cpu_where(const nn_iter *it) {
  nn_iter_run(it, where_inner, (void *)&it->dtype[0]);
  return 0;
}

int nn_cpu_nonzero(const nn_strided *t, int64_t *out, int64_t count) {
  int64_t counter[NN_MAX_DIMS] = {0}, numel = 1, found = 0;
  for (int d = 0; d < t->ndim; d++) numel *= t->size[d];
  for (int64_t i = 0; i < numel && found < count; i++) {
    int64_t off = 0;
    for (int d = 0; d < t->ndim; d++) off += counter[d] * t->stride[d];
    if (nn_load(t->dtype, t->data, off) != 0) {
      for (int d = 0; d < t->ndim; d++) out[found * t->ndim + d] = counter[d];
      found++;
    }
    for (int d = t->ndim - 1; d >= 0 && ++counter[d] == t->size[d]; d--) counter[d] = 0;
  }
  return 0;
}

/* cpu/index.c: the indexing kernels: index tensors turned into element
 * offsets (checked), reads and writes at those offsets, where, and the
 * coordinates of nonzero elements.
 *
 * Reads and plain writes move elements as bytes of their size (every
 * dtype of one size takes the same loop), with the common layouts (a
 * contiguous run of offsets and results) as loops of their own; only
 * accumulation needs the dtype. */
#include "cpu/cpu.h"

#if defined(__GNUC__)
#define INDEX_INLINE inline __attribute__((always_inline))
#else
#define INDEX_INLINE inline
#endif
/* The checked loops of the common layout compiled for baseline x86-64,
   AVX2 and AVX-512 (chosen once by the loader): with 64-bit vector
   compares, a block's check of its indices vectorises. */
#if defined(__GNUC__)
#define INDEX_CLONES __attribute__((noinline)) NN_CPU_CLONES
#else
#define INDEX_CLONES
#endif

/* How an index tensor is read: positions into a dim of n (from base;
   negative ones from the end when allowed), times scale. */
typedef struct {
  int64_t n, scale;
  int base, negative, dim;
  const char *op;
} index_rule;

/* v as a 0-based position, or something outside [0, n) */
static INDEX_INLINE int64_t position_of(const index_rule *c, int64_t v) {
  return v < 0 ? (c->negative ? c->n + v : -1) : v - c->base;
}

static INDEX_INLINE int out_of_range(const index_rule *c, int64_t r) {
  return (uint64_t)r >= (uint64_t)c->n;
}

static void report_index(const index_rule *c, int64_t v) {
  if (c->base == 1 && v == 0)
    nn_error_set("%s: index 0 is out of range (indices count from 1)", c->op);
  else if (c->dim < 0)
    nn_error_set("%s: index %lld is out of range for a tensor of %lld elements", c->op,
                 (long long)v, (long long)c->n);
  else
    nn_error_set("%s: index %lld is out of range for dimension %d of size %lld", c->op,
                 (long long)v, c->dim + 1, (long long)c->n);
}

/* out[i] = offset of in[i] for i < count; the out-of-range ones are only
   noted (the loop stays free of branches), then the first is reported.
   Returns 0, or -1 with the message set. */
static int offsets_run(const index_rule *rule, int64_t count, int64_t *out, int64_t so,
                       const int64_t *in, int64_t si) {
  const index_rule local = *rule, *c = &local; /* not reloaded after each store */
  uint64_t bad = 0;
  if (so == 1 && si == 1) {
    for (int64_t i = 0; i < count; i++) {
      int64_t r = position_of(c, in[i]);
      bad |= out_of_range(c, r);
      out[i] = r * c->scale;
    }
  } else {
    for (int64_t i = 0; i < count; i++) {
      int64_t r = position_of(c, in[i * si]);
      bad |= out_of_range(c, r);
      out[i * so] = r * c->scale;
    }
  }
  if (!bad) return 0;
  for (int64_t i = 0; i < count; i++)
    if (out_of_range(c, position_of(c, in[i * si]))) {
      report_index(c, in[i * si]);
      break;
    }
  return -1;
}

struct offsets_ctx {
  index_rule rule;
  int failed;
};

static void offsets_inner(void *ctx, int64_t n, char **data, const int64_t *stride) {
  struct offsets_ctx *c = ctx;
  if (c->failed) return;
  if (offsets_run(&c->rule, n, (int64_t *)data[0], stride[0], (const int64_t *)data[1], stride[1]) < 0)
    c->failed = 1;
}

int nn_cpu_index_offsets(const nn_iter *it, int64_t n, int64_t scale, int base, int negative,
                         int dim, const char *op) {
  struct offsets_ctx c = {{n, scale, base, negative, dim, op}, 0};
  nn_iter_run(it, offsets_inner, &c);
  return c.failed ? -1 : 0;
}

/* ---- reads and writes at offsets ---- */
/* gather_bytes' contiguous layouts (ss 0: src at the offsets alone, as
   index_select's rows; ss 1: src moving with out), 8 elements a turn: at
   one a turn the loop's count and branch were half of index_select's 6
   instructions an element */
static INDEX_INLINE void gather_contiguous(size_t es, int64_t ss, int64_t n, char *out, const char *src,
                                           const int64_t *off) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int64_t u = i; u < i + 8; u++) memcpy(out + u * es, src + (u * ss + off[u]) * es, es);
  for (; i < n; i++) memcpy(out + i * es, src + (i * ss + off[i]) * es, es);
}

/* out[i] = src[i ss + off[i]] over a run, elements of es bytes */
static INDEX_INLINE void gather_bytes(size_t es, int64_t n, char *out, int64_t so, const char *src,
                                      int64_t ss, const int64_t *off, int64_t sf) {
  if (so == 1 && sf == 1 && ss == 0) {
    gather_contiguous(es, 0, n, out, src, off);
  } else if (so == 1 && sf == 1 && ss == 1) {
    gather_contiguous(es, 1, n, out, src, off);
  } else {
    for (int64_t i = 0; i < n; i++)
      memcpy(out + i * so * (int64_t)es, src + (i * ss + off[i * sf]) * (int64_t)es, es);
  }
}

static void gather_run(size_t es, int64_t n, char *out, int64_t so, const char *src, int64_t ss,
                       const int64_t *off, int64_t sf) {
  switch (es) {
  case 1: gather_bytes(1, n, out, so, src, ss, off, sf); break;
  case 2: gather_bytes(2, n, out, so, src, ss, off, sf); break;
  case 4: gather_bytes(4, n, out, so, src, ss, off, sf); break;
  default: gather_bytes(8, n, out, so, src, ss, off, sf); break;
  }
}

/* dst[i sd + off[i]] = v[i sv] over a run, elements of es bytes, in order
   (a repeated offset keeps the last value) */
static INDEX_INLINE void put_bytes(size_t es, int64_t n, char *dst, int64_t sd, const char *v,
                                   int64_t sv, const int64_t *off, int64_t sf) {
  if (sd == 0 && sf == 1 && sv == 1) {
    for (int64_t i = 0; i < n; i++) memcpy(dst + off[i] * es, v + i * es, es);
  } else if (sd == 0 && sf == 1 && sv == 0) {
    for (int64_t i = 0; i < n; i++) memcpy(dst + off[i] * es, v, es);
  } else {
    for (int64_t i = 0; i < n; i++)
      memcpy(dst + (i * sd + off[i * sf]) * (int64_t)es, v + i * sv * (int64_t)es, es);
  }
}

/* dst[i sd + off[i]] += v[i sv], in order (repeated offsets sum in
   iteration order) */
static void accumulate_run(nn_dtype dtype, int64_t n, char *dst_, int64_t sd, const char *v_,
                           int64_t sv, const int64_t *off, int64_t sf) {
  if (dtype == NN_FLOAT32) {
    float *dst = (float *)dst_;
    const float *v = (const float *)v_;
    for (int64_t i = 0; i < n; i++) {
      float *d = dst + i * sd + off[i * sf];
      *d = *d + v[i * sv];
    }
  } else if (dtype == NN_FLOAT64) {
    double *dst = (double *)dst_;
    const double *v = (const double *)v_;
    for (int64_t i = 0; i < n; i++) {
      double *d = dst + i * sd + off[i * sf];
      *d = *d + v[i * sv];
    }
  } else if (dtype == NN_INT64) { /* exact beyond 2^53 */
    int64_t *dst = (int64_t *)dst_;
    const int64_t *v = (const int64_t *)v_;
    for (int64_t i = 0; i < n; i++) {
      int64_t *d = dst + i * sd + off[i * sf];
      *d = *d + v[i * sv];
    }
  } else {
    for (int64_t i = 0; i < n; i++) {
      int64_t at = i * sd + off[i * sf];
      nn_store(dtype, dst_, at, nn_load(dtype, dst_, at) + nn_load(dtype, v_, i * sv));
    }
  }
}

static void put_run(nn_dtype dtype, int accumulate, int64_t n, char *dst, int64_t sd, const char *v,
                    int64_t sv, const int64_t *off, int64_t sf) {
  if (accumulate) {
    accumulate_run(dtype, n, dst, sd, v, sv, off, sf);
    return;
  }
  switch (nn_element_size(dtype)) {
  case 1: put_bytes(1, n, dst, sd, v, sv, off, sf); break;
  case 2: put_bytes(2, n, dst, sd, v, sv, off, sf); break;
  case 4: put_bytes(4, n, dst, sd, v, sv, off, sf); break;
  default: put_bytes(8, n, dst, sd, v, sv, off, sf); break;
  }
}

static void gather_inner(void *ctx, int64_t n, char **data, const int64_t *stride) {
  size_t es = *(const size_t *)ctx;
  gather_run(es, n, data[0], stride[0], data[1], stride[1], (const int64_t *)data[2], stride[2]);
}

int nn_cpu_index_gather(const nn_iter *it) {
  size_t es = nn_element_size(it->dtype[0]);
  nn_iter_run(it, gather_inner, &es);
  return 0;
}

struct put_ctx { nn_dtype dtype; int accumulate; };

static void put_inner(void *ctx, int64_t n, char **data, const int64_t *stride) {
  const struct put_ctx *c = ctx;
  put_run(c->dtype, c->accumulate, n, data[0], stride[0], data[1], stride[1],
          (const int64_t *)data[2], stride[2]);
}

int nn_cpu_index_put(const nn_iter *it, int accumulate) {
  struct put_ctx c = {it->dtype[0], accumulate};
  nn_iter_run(it, put_inner, &c);
  return 0;
}

/* ---- the same with the index check folded in ---- */
/* Offsets are made a block at a time into a buffer that stays in L1,
   then read or written through: one pass over the index tensor instead of
   an offsets tensor written and read back. */
#define CHECKED_BLOCK 512

struct checked_ctx {
  index_rule rule;
  int mode; /* 0 read, 1 write, 2 add */
  nn_dtype dtype;
  int failed;
};

/* Element i of a checked block: read (mode 0), write (1) or add (2, in
   dtype: float32, float64 or int64) at index ix[i]. The side at the
   offsets (b when reading, a otherwise) comes biased by the rule's -base
   times scale, so that a non-negative index needs no subtraction; unit:
   the scale is 1 (a constant then: no multiply either). A negative index
   (counting from the end) adds size and takes the bias back. */
static INDEX_INLINE void checked_element(size_t es, int mode, nn_dtype dtype, int negative, int unit,
                                         int64_t size, int64_t shift, int64_t scale, char *a,
                                         const char *b, int64_t sv, const int64_t *ix, int64_t i) {
  const int64_t esize = (int64_t)es, step = unit ? 1 : scale;
  int64_t v = ix[i], r = negative && v < 0 ? (v + size) * step - shift : v * step;
  if (mode == 0) memcpy(a + i * esize, b + r * esize, es);
  else if (mode == 1) memcpy(a + r * esize, b + i * sv * esize, es);
  else if (dtype == NN_FLOAT32) ((float *)a)[r] += ((const float *)b)[i * sv];
  else if (dtype == NN_FLOAT64) ((double *)a)[r] += ((const double *)b)[i * sv];
  else ((int64_t *)a)[r] += ((const int64_t *)b)[i * sv];
}

/* p moved by bytes, which may lie outside p's block (a biased base that
   only in-range offsets are added to): through the integers, so that no
   out-of-bounds pointer arithmetic is written. */
static INDEX_INLINE char *biased(const char *p, int64_t bytes) {
  return (char *)((uintptr_t)p + (uintptr_t)bytes);
}

/* The common layout: results (mode 0) or values (modes 1 and 2: stride sv
   of 0 or 1) and indices contiguous, the other side at the offsets alone.
   A block of indices is checked first (the largest position, taken
   unsigned, below n: no branch an element), then read or written through
   while it is still in L1, in order (a repeated index: the last write,
   the adds in order), eight elements a turn (the loop's own count and
   branch were three of an element's seven instructions at one a turn;
   gcc's unroll pragma does not survive the link-time build), with the
   next block's indices fetched meanwhile. es: bytes an element; negative
   and unit as the rule's, constants here so that each case is a loop of
   its own. */
static INDEX_INLINE int checked_run(size_t es, int mode, nn_dtype dtype, int negative, int unit,
                                    const index_rule *c, int64_t n, char *a, const char *b,
                                    int64_t sv, const int64_t *idx) {
  const int64_t size = c->n, scale = c->scale, base = c->base, esize = (int64_t)es;
  const int64_t shift = -base * (unit ? 1 : scale);
  for (int64_t first = 0; first < n; first += CHECKED_BLOCK) {
    int64_t count = n - first < CHECKED_BLOCK ? n - first : CHECKED_BLOCK;
    const int64_t *ix = idx + first;
    uint64_t worst = 0;
    for (int64_t i = 0; i < count; i++) {
      int64_t v = ix[i], r = negative && v < 0 ? v + size : v - base;
      worst = (uint64_t)r > worst ? (uint64_t)r : worst;
    }
    if (worst >= (uint64_t)size) {
      for (int64_t i = 0; i < count; i++)
        if (out_of_range(c, position_of(c, ix[i]))) {
          report_index(c, ix[i]);
          break;
        }
      return -1;
    }
    char *dst = mode == 0 ? a + first * esize : biased(a, shift * esize);
    const char *src = mode == 0 ? biased(b, shift * esize) : b + first * sv * esize;
    int64_t i = 0;
    for (; i + 8 <= count; i += 8) {
      /* the next block's indices, the line of this turn's 8 a block
         ahead: its check then finds them in cache instead of waiting on
         memory with nothing else to do (a prefetch past the end is
         dropped, never faults) */
      __builtin_prefetch(biased((const char *)(ix + i), CHECKED_BLOCK * (int64_t)sizeof *ix));
      for (int u = 0; u < 8; u++)
        checked_element(es, mode, dtype, negative, unit, size, shift, scale, dst, src, sv, ix, i + u);
    }
    for (; i < count; i++)
      checked_element(es, mode, dtype, negative, unit, size, shift, scale, dst, src, sv, ix, i);
  }
  return 0;
}

/* A read (mode 0) or a write (1) of es bytes by checked_run, es and mode
   constants, with the rule's negative and unit as constants too. */
static INDEX_INLINE int checked_layout(size_t es, int mode, const struct checked_ctx *c, int unit,
                                       int64_t n, char *a, const char *b, int64_t sv,
                                       const int64_t *idx) {
  const index_rule *r = &c->rule;
  if (!r->negative) {
    return unit ? checked_run(es, mode, c->dtype, 0, 1, r, n, a, b, sv, idx)
                : checked_run(es, mode, c->dtype, 0, 0, r, n, a, b, sv, idx);
  }
  return unit ? checked_run(es, mode, c->dtype, 1, 1, r, n, a, b, sv, idx)
              : checked_run(es, mode, c->dtype, 1, 0, r, n, a, b, sv, idx);
}

/* checked_run with its constants: 0 done, -1 failed, 1 not a case of its */
INDEX_CLONES static int checked_fast(const struct checked_ctx *c, int64_t n, char *a, const char *b, int64_t sv,
                        const int64_t *idx) {
  const index_rule *r = &c->rule;
  int unit = r->scale == 1; /* along the last dim, and take: no multiply */
  if (c->mode == 2) {
    if (r->negative) return 1; /* (scatter_add counts along a dim: never negative) */
    switch (c->dtype * 2 + unit) {
    case NN_FLOAT32 * 2: return checked_run(4, 2, NN_FLOAT32, 0, 0, r, n, a, b, sv, idx);
    case NN_FLOAT32 * 2 + 1: return checked_run(4, 2, NN_FLOAT32, 0, 1, r, n, a, b, sv, idx);
    case NN_FLOAT64 * 2: return checked_run(8, 2, NN_FLOAT64, 0, 0, r, n, a, b, sv, idx);
    case NN_FLOAT64 * 2 + 1: return checked_run(8, 2, NN_FLOAT64, 0, 1, r, n, a, b, sv, idx);
    case NN_INT64 * 2: return checked_run(8, 2, NN_INT64, 0, 0, r, n, a, b, sv, idx);
    case NN_INT64 * 2 + 1: return checked_run(8, 2, NN_INT64, 0, 1, r, n, a, b, sv, idx);
    default: return 1;
    }
  }
  size_t es = nn_element_size(c->dtype);
  int read = c->mode == 0;
  if (es == 4)
    return read ? checked_layout(4, 0, c, unit, n, a, b, sv, idx) : checked_layout(4, 1, c, unit, n, a, b, sv, idx);
  if (es == 8)
    return read ? checked_layout(8, 0, c, unit, n, a, b, sv, idx) : checked_layout(8, 1, c, unit, n, a, b, sv, idx);
  /* 1 and 2 bytes: their own loops are not worth the code */
  return read ? checked_run(es, 0, c->dtype, r->negative, 0, r, n, a, b, sv, idx)
              : checked_run(es, 1, c->dtype, r->negative, 0, r, n, a, b, sv, idx);
}

static void checked_inner(void *ctx, int64_t n, char **data, const int64_t *stride) {
  struct checked_ctx *c = ctx;
  if (c->failed) return;
  int fast = stride[2] == 1 && (c->mode == 0 ? stride[0] == 1 && stride[1] == 0
                                             : stride[0] == 0 && stride[1] <= 1 && stride[1] >= 0);
  if (fast) {
    int st = checked_fast(c, n, data[0], data[1], stride[1], (const int64_t *)data[2]);
    if (st < 0) c->failed = 1;
    if (st <= 0) return;
  }
  size_t es = nn_element_size(c->dtype);
  int64_t off[CHECKED_BLOCK];
  for (int64_t first = 0; first < n; first += CHECKED_BLOCK) {
    int64_t count = n - first < CHECKED_BLOCK ? n - first : CHECKED_BLOCK;
    const int64_t *idx = (const int64_t *)data[2] + first * stride[2];
    if (offsets_run(&c->rule, count, off, 1, idx, stride[2]) < 0) {
      c->failed = 1;
      return;
    }
    char *a = data[0] + first * stride[0] * (int64_t)es;
    char *b = data[1] + first * stride[1] * (int64_t)es;
    if (c->mode == 0) gather_run(es, count, a, stride[0], b, stride[1], off, 1);
    else put_run(c->dtype, c->mode == 2, count, a, stride[0], b, stride[1], off, 1);
  }
}

int nn_cpu_index_checked(const nn_iter *it, int mode, int64_t n, int64_t scale, int base,
                         int negative, int dim, const char *op) {
  struct checked_ctx c = {{n, scale, base, negative, dim, op}, mode, it->dtype[0], 0};
  nn_iter_run(it, checked_inner, &c);
  return c.failed ? -1 : 0;
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

/* ---- nonzero ---- */
/* Whether element i of a run is nonzero, as 0 or 1: -0.0 is zero and NaN
   is not, as nn_load(...) != 0 says; the half types by their bits. */
static INDEX_INLINE int64_t is_nonzero(nn_dtype dtype, const char *p, int64_t i) {
  switch (dtype) {
  case NN_FLOAT32: return ((const float *)p)[i] != 0;
  case NN_FLOAT64: return ((const double *)p)[i] != 0;
  case NN_FLOAT16:
  case NN_BFLOAT16: return (((const uint16_t *)p)[i] & 0x7fff) != 0;
  case NN_INT64: return ((const int64_t *)p)[i] != 0;
  case NN_INT32: return ((const int32_t *)p)[i] != 0;
  case NN_INT16: return ((const int16_t *)p)[i] != 0;
  default: return ((const unsigned char *)p)[i] != 0;
  }
}

/* One run along the last dim: the coordinates of its nonzero elements
   appended at out (rows of ndim; the leading ndim - 1 from counter), up
   to count rows in all; returns the rows found so far. With room for the
   whole run, every element's row is written and kept only when nonzero
   (no branch on the data). */
static INDEX_INLINE int64_t nonzero_run(nn_dtype dtype, const char *p, int64_t len, int64_t st,
                                        int ndim, const int64_t *counter, int64_t *out,
                                        int64_t found, int64_t count) {
  if (count - found >= len) {
    if (ndim == 1 && st == 1) {
      for (int64_t j = 0; j < len; j++) {
        out[found] = j;
        found += is_nonzero(dtype, p, j);
      }
    } else {
      for (int64_t j = 0; j < len; j++) {
        int64_t *row = out + found * ndim;
        for (int d = 0; d < ndim - 1; d++) row[d] = counter[d];
        row[ndim - 1] = j;
        found += is_nonzero(dtype, p, j * st);
      }
    }
    return found;
  }
  for (int64_t j = 0; j < len && found < count; j++) {
    if (!is_nonzero(dtype, p, j * st)) continue;
    int64_t *row = out + found * ndim;
    for (int d = 0; d < ndim - 1; d++) row[d] = counter[d];
    row[ndim - 1] = j;
    found++;
  }
  return found;
}

static INDEX_INLINE int64_t nonzero_typed(nn_dtype dtype, const nn_strided *t, int64_t *out, int64_t count) {
  int nd = t->ndim, last = nd - 1;
  int64_t counter[NN_MAX_DIMS] = {0}, runs = 1, found = 0;
  for (int d = 0; d < last; d++) runs *= t->size[d];
  int64_t len = t->size[last], esize = (int64_t)nn_element_size(dtype);
  for (int64_t r = 0; r < runs && found < count; r++) {
    int64_t off = 0;
    for (int d = 0; d < last; d++) off += counter[d] * t->stride[d];
    found = nonzero_run(dtype, t->data + off * esize, len, t->stride[last], nd, counter, out, found,
                        count);
    for (int d = last - 1; d >= 0 && ++counter[d] == t->size[d]; d--) counter[d] = 0;
  }
  return found;
}

int nn_cpu_nonzero(const nn_strided *t, int64_t *out, int64_t count) {
  if (t->ndim == 0) return 0; /* a row of no coordinates: nothing to write */
  for (int d = 0; d < t->ndim; d++)
    if (t->size[d] == 0) return 0;
  switch (t->dtype) { /* each dtype's test inlined into its own loop */
  case NN_FLOAT32: nonzero_typed(NN_FLOAT32, t, out, count); break;
  case NN_FLOAT64: nonzero_typed(NN_FLOAT64, t, out, count); break;
  case NN_FLOAT16: nonzero_typed(NN_FLOAT16, t, out, count); break;
  case NN_BFLOAT16: nonzero_typed(NN_BFLOAT16, t, out, count); break;
  case NN_INT64: nonzero_typed(NN_INT64, t, out, count); break;
  case NN_INT32: nonzero_typed(NN_INT32, t, out, count); break;
  case NN_INT16: nonzero_typed(NN_INT16, t, out, count); break;
  default: nonzero_typed(NN_BOOL, t, out, count); break; /* bool and the bytes */
  }
  return 0;
}

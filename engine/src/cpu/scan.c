/* cpu/scan.c: kernels that walk each line in order: the scans (cumsum,
 * cumprod) and cumprod's gradient, sorting, and the scatter that takes a
 * gradient back to the positions sort picked. Lines come from an
 * nn_reduce_geom with one reduced dim (or none, for lines of one element). */
#include "cpu/cpu.h"

#include <stdlib.h>
#include <string.h>

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

#define SCAN_LINES 4

/* The j-th element of a line in the scan's order. */
static inline int64_t scan_index(const struct scan_ctx *c, int64_t j) {
  return c->reverse ? c->n - 1 - j : j;
}

/* (out, in): running sums accumulate in double (float inputs) or int64,
   each partial result stored in out's dtype as it comes. */
/* The same loop with typed loads and stores, for float32 and float64 in
   and out: the same sums, without a dtype switch per element. */
static int scan_typed(const struct scan_ctx *c, int64_t count, char **data, const int64_t *st) {
  const nn_reduce_geom *r = c->r;
  nn_dtype dt = r->it.dtype[1];
  if (dt != r->it.dtype[0] || (dt != NN_FLOAT32 && dt != NN_FLOAT64)) return 0;
  int64_t n = c->n, step = c->reverse ? -1 : 1;
  int64_t so = (r->rdims ? r->rstride[0][0] : 0) * step, sx = (r->rdims ? r->rstride[0][1] : 0) * step;
  int prod = c->op == NN_SCAN_PROD;
  int64_t p = 0, first = c->reverse ? n - 1 : 0;
  /* A line's running product is one chain of multiplies, each waiting on
     the one before; SCAN_LINES lines at a time let their chains overlap.
     Each line's own steps are unchanged. */
  if (dt == NN_FLOAT32)
    for (; p + SCAN_LINES <= count; p += SCAN_LINES) {
      float *o[SCAN_LINES];
      const float *x[SCAN_LINES];
      double acc[SCAN_LINES];
      for (int q = 0; q < SCAN_LINES; q++) {
        o[q] = (float *)at(r, data, st, 0, p + q, first);
        x[q] = (const float *)at(r, data, st, 1, p + q, first);
        acc[q] = prod ? 1 : 0;
      }
      if (prod)
        for (int64_t j = 0; j < n; j++)
          for (int q = 0; q < SCAN_LINES; q++) o[q][j * so] = (float)(acc[q] *= x[q][j * sx]);
      else
        for (int64_t j = 0; j < n; j++)
          for (int q = 0; q < SCAN_LINES; q++) o[q][j * so] = (float)(acc[q] += x[q][j * sx]);
    }
  for (; p < count; p++) {
    double acc = prod ? 1 : 0;
    if (dt == NN_FLOAT32) {
      float *o = (float *)at(r, data, st, 0, p, first);
      const float *x = (const float *)at(r, data, st, 1, p, first);
      if (prod)
        for (int64_t j = 0; j < n; j++) o[j * so] = (float)(acc *= x[j * sx]);
      else
        for (int64_t j = 0; j < n; j++) o[j * so] = (float)(acc += x[j * sx]);
    } else {
      double *o = (double *)at(r, data, st, 0, p, first);
      const double *x = (const double *)at(r, data, st, 1, p, first);
      if (prod)
        for (int64_t j = 0; j < n; j++) o[j * so] = acc *= x[j * sx];
      else
        for (int64_t j = 0; j < n; j++) o[j * so] = acc += x[j * sx];
    }
  }
  return 1;
}

static void scan_inner(void *vctx, int64_t count, char **data, const int64_t *st) {
  const struct scan_ctx *c = vctx;
  const nn_reduce_geom *r = c->r;
  const nn_dtype *dt = r->it.dtype;
  int floating = nn_floating_dtype(dt[1]);
  if (c->n > 0 && scan_typed(c, count, data, st)) return;
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
/* Sort's order as unsigned keys, so that one integer comparison (or a
   radix pass) decides: ascending with NaN last (every NaN one key, above
   +inf's), -0 the key of +0 (they tie, as == has them), integers exact
   (int64 beyond 2^53 too); descending flips every bit of the key, which
   puts NaN first (PyTorch's order). Ties are equal keys and every sort
   below is stable, so equal elements keep their order. Keys of float64
   and int64 take 8 bytes; the other dtypes' fit in 4 (half types through
   float32, which holds them exactly), which halves the radix passes. */
typedef struct { uint64_t k; int64_t i; } keyed;

/* Negative numbers flip every bit, the others only the sign's; written
   without branches (the loads vectorise). */
static inline uint64_t double_key(double v) {
  v += 0.0; /* -0 becomes +0 */
  uint64_t b;
  memcpy(&b, &v, sizeof b);
  uint64_t k = b ^ ((uint64_t)((int64_t)b >> 63) | (1ull << 63));
  return v != v ? UINT64_MAX : k;
}

static inline uint64_t float_key(float v) {
  v += 0.0f;
  uint32_t b;
  memcpy(&b, &v, sizeof b);
  uint32_t k = b ^ ((uint32_t)((int32_t)b >> 31) | (1u << 31));
  return v != v ? UINT32_MAX : k;
}

static inline int key_bytes(nn_dtype dt) { return dt == NN_FLOAT64 || dt == NN_INT64 ? 8 : 4; }

/* The key of every NaN, ascending (the largest key of its width). */
static inline uint64_t nan_key(nn_dtype dt) { return key_bytes(dt) == 8 ? UINT64_MAX : UINT32_MAX; }

/* k[j kst] = the key of x[j s] for the n elements of a line (kst: 2 into
   the keys of a keyed array, 1 into plain keys); one switch a line, not
   one an element. */
static void line_keys(nn_dtype dt, const char *x, int64_t s, int64_t n, int descending, uint64_t *k,
                      int64_t kst) {
  switch (dt) {
  case NN_FLOAT32:
    for (int64_t j = 0; j < n; j++) k[j * kst] = float_key(((const float *)x)[j * s]);
    break;
  case NN_FLOAT64:
    for (int64_t j = 0; j < n; j++) k[j * kst] = double_key(((const double *)x)[j * s]);
    break;
  case NN_INT64:
    for (int64_t j = 0; j < n; j++) k[j * kst] = (uint64_t)((const int64_t *)x)[j * s] ^ (1ull << 63);
    break;
  case NN_FLOAT16: case NN_BFLOAT16:
    for (int64_t j = 0; j < n; j++) k[j * kst] = float_key((float)nn_load(dt, x, j * s));
    break;
  default: /* the narrower integers, through int32 */
    for (int64_t j = 0; j < n; j++)
      k[j * kst] = (uint32_t)nn_load_integer(dt, x, j * s) ^ (1u << 31);
    break;
  }
  if (descending) {
    uint64_t flip = key_bytes(dt) == 8 ? UINT64_MAX : UINT32_MAX;
    for (int64_t j = 0; j < n; j++) k[j * kst] ^= flip;
  }
}

/* e[j] = {key of x[j s], j} */
static void load_keys(nn_dtype dt, const char *x, int64_t s, int64_t n, int descending, keyed *e) {
  line_keys(dt, x, s, n, descending, &e[0].k, (int64_t)(sizeof *e / sizeof e[0].k));
  for (int64_t j = 0; j < n; j++) e[j].i = j;
}

/* out[j so] = x[e[j].i sx] for j < n: the sorted values, copied as they
   are (bit for bit: a NaN keeps its payload), by element size. */
static void gather_values(size_t size, char *out, int64_t so, const char *x, int64_t sx,
                          const keyed *e, int64_t n) {
  switch (size) {
  case 8:
    for (int64_t j = 0; j < n; j++) ((uint64_t *)out)[j * so] = ((const uint64_t *)x)[e[j].i * sx];
    break;
  case 4:
    for (int64_t j = 0; j < n; j++) ((uint32_t *)out)[j * so] = ((const uint32_t *)x)[e[j].i * sx];
    break;
  case 2:
    for (int64_t j = 0; j < n; j++) ((uint16_t *)out)[j * so] = ((const uint16_t *)x)[e[j].i * sx];
    break;
  default:
    for (int64_t j = 0; j < n; j++) out[j * so] = x[e[j].i * sx];
    break;
  }
}

/* Stable: an element moves only past strictly greater keys. */
static void insertion_sort(keyed *e, int64_t n) {
  for (int64_t j = 1; j < n; j++) {
    keyed x = e[j];
    int64_t p = j;
    for (; p > 0 && x.k < e[p - 1].k; p--) e[p] = e[p - 1];
    e[p] = x;
  }
}

/* Least significant byte first, each pass a stable counting sort, so the
   whole is stable; a byte that every key shares is skipped (the top bytes
   of floats of one sign and exponent range). The passes cost no
   comparisons, hence no mispredicted branches: on a line of 1000 floats
   about three times faster than a merge sort. It sorts n records of
   `record` bytes whose key is the uint64_t at their start (the `bytes`
   low bytes of it): keyed elements (16 bytes), or keys alone (8 bytes:
   unique without inverse needs no index, and moves half as much); tmp
   holds n records. Inlined into each caller, where `record` is a constant
   and each move one load and one store. */
#if defined(__GNUC__)
#define RADIX_INLINE inline __attribute__((always_inline))
#else
#define RADIX_INLINE inline
#endif
static RADIX_INLINE uint64_t record_key(const char *p) {
  uint64_t k;
  memcpy(&k, p, sizeof k);
  return k;
}

static RADIX_INLINE void radix_sort(void *records, void *tmp, int64_t n, int bytes, size_t record) {
  size_t count[8][256];
  memset(count, 0, sizeof count[0] * (size_t)bytes);
  char *src = records, *dst = tmp;
  for (int64_t j = 0; j < n; j++) {
    uint64_t key = record_key(src + (size_t)j * record);
    for (int b = 0; b < bytes; b++) count[b][(key >> (8 * b)) & 255]++;
  }
  for (int b = 0; b < bytes; b++) {
    size_t *at = count[b];
    if (at[(record_key(src) >> (8 * b)) & 255] == (size_t)n) continue;
    size_t start = 0;
    for (int d = 0; d < 256; d++) {
      size_t c = at[d];
      at[d] = start;
      start += c;
    }
    for (int64_t j = 0; j < n; j++) {
      const char *from = src + (size_t)j * record;
      memcpy(dst + at[(record_key(from) >> (8 * b)) & 255]++ * record, from, record);
    }
    char *t = src;
    src = dst, dst = t;
  }
  if (src != (char *)records) memcpy(records, src, (size_t)n * record);
}

/* Up to this length, insertion sorts a line in fewer instructions than a
   radix sort spends on its counts. */
#define SORT_INSERTION_MAX 32

static void sort_keyed(keyed *e, keyed *tmp, int64_t n, int bytes) {
  if (n <= SORT_INSERTION_MAX) insertion_sort(e, n);
  else radix_sort(e, tmp, n, bytes, sizeof *e);
}

/* Scratch of n elements of size `size` for each line, on the stack below
   this many bytes (a call on a small tensor allocates nothing). */
#define SCRATCH_STACK_BYTES 8192

static void *scratch(void *stack, size_t n, size_t size) {
  return n * size <= SCRATCH_STACK_BYTES ? stack : malloc(n * size);
}

/* The stride of operand k along the line (lines of one have none). */
static inline int64_t line_stride(const nn_reduce_geom *r, int k) {
  return r->rdims ? r->rstride[0][k] : 0;
}

/* (values, indices, in) */
static void sort_inner(void *vctx, int64_t count, char **data, const int64_t *st) {
  struct scan_ctx *c = vctx;
  const nn_reduce_geom *r = c->r;
  const nn_dtype *dt = r->it.dtype;
  int64_t n = c->n;
  _Alignas(16) char stack[SCRATCH_STACK_BYTES];
  keyed *e = scratch(stack, (size_t)(n ? n : 1) * 2, sizeof *e);
  if (!e) {
    c->failed = 1;
    return;
  }
  int64_t sv = line_stride(r, 0), si = line_stride(r, 1), sx = line_stride(r, 2);
  size_t size = nn_element_size(dt[2]);
  for (int64_t p = 0; p < count; p++) {
    const char *x = at(r, data, st, 2, p, 0);
    load_keys(dt[2], x, sx, n, c->reverse, e);
    sort_keyed(e, e + n, n, key_bytes(dt[2]));
    gather_values(size, at(r, data, st, 0, p, 0), sv, x, sx, e, n);
    int64_t *idx = (int64_t *)at(r, data, st, 1, p, 0);
    for (int64_t j = 0; j < n; j++) idx[j * si] = e[j].i;
  }
  if ((void *)e != stack) free(e);
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
/* Keys are made this many at a time into a buffer that stays in L1 (the
   key loops vectorise); the selection then only compares each with the
   run's last, and a line of any length needs no scratch beyond the run. */
#define TOPK_CHUNK 256

/* y into the kept run e[0..*kept) of at most k, sorted: an element enters
   only when strictly before the run's last, after every equal one (it
   comes later): the stable order. */
static inline void topk_insert(keyed *e, int64_t *kept, int64_t k, keyed y) {
  int64_t pos = *kept < k ? (*kept)++ : k - 1;
  for (; pos > 0 && y.k < e[pos - 1].k; pos--) e[pos] = e[pos - 1];
  e[pos] = y;
}

/* A contiguous float32 line, the run full, goes a block at a time: a
   block is passed over when none of it can enter. x enters only when its
   key is below that of thr, the run's last element, which needs
   !(x <= thr) (descending) or !(x >= thr): NaN on either side, and a zero
   against a zero, go on to the keys' own test. The keys and insertions
   are topk_select's, so is the result; most of a long line costs one
   vector compare a block. */
#define TOPK_BLOCK 16

/* (not inlined: unrolled into its caller's loop, the compares stay scalar) */
#if defined(__GNUC__)
__attribute__((noinline))
#endif
static int topk_block_may_enter(const float *x, float thr, int descending) {
  int held = 0; /* a count of the compares, which gcc vectorises (an or of them it does not) */
  if (descending)
    for (int l = 0; l < TOPK_BLOCK; l++) held += x[l] <= thr;
  else
    for (int l = 0; l < TOPK_BLOCK; l++) held += x[l] >= thr;
  return held != TOPK_BLOCK;
}

static void topk_select_f32(const float *x, int64_t n, int descending, keyed *e, int64_t k) {
  uint64_t flip = descending ? UINT32_MAX : 0;
  int64_t kept = 0, j = 0;
  for (; j < n && kept < k; j++) topk_insert(e, &kept, k, (keyed){float_key(x[j]) ^ flip, j});
  while (j < n) {
    if (j + TOPK_BLOCK <= n && !topk_block_may_enter(x + j, x[e[k - 1].i], descending)) {
      j += TOPK_BLOCK;
      continue;
    }
    for (int64_t end = j + TOPK_BLOCK < n ? j + TOPK_BLOCK : n; j < end; j++) {
      uint64_t key = float_key(x[j]) ^ flip;
      if (key < e[k - 1].k) topk_insert(e, &kept, k, (keyed){key, j});
    }
  }
}

/* The first k of a line of n (k <= TOPK_INSERTION_MAX) into e. */
static void topk_select(nn_dtype dt, const char *x, int64_t s, int64_t n, int descending, keyed *e,
                        int64_t k) {
  uint64_t key[TOPK_CHUNK];
  int64_t kept = 0;
  size_t es = nn_element_size(dt);
  if (k == 0) return;
  if (dt == NN_FLOAT32 && s == 1) {
    topk_select_f32((const float *)x, n, descending, e, k);
    return;
  }
  for (int64_t first = 0; first < n; first += TOPK_CHUNK) {
    int64_t m = n - first < TOPK_CHUNK ? n - first : TOPK_CHUNK;
    line_keys(dt, x + first * s * (int64_t)es, s, m, descending, key, 1);
    int64_t j = 0;
    for (; j < m && kept < k; j++) topk_insert(e, &kept, k, (keyed){key[j], first + j});
    for (; j < m; j++)
      if (key[j] < e[k - 1].k) topk_insert(e, &kept, k, (keyed){key[j], first + j});
  }
}

/* (values, indices, in), all full shape: the first k positions of each line
   get what a stable sort would put there; the rest is left unwritten. */
static void topk_inner(void *vctx, int64_t count, char **data, const int64_t *st) {
  struct scan_ctx *c = vctx;
  const nn_reduce_geom *r = c->r;
  const nn_dtype *dt = r->it.dtype;
  int64_t n = c->n, k = c->stride, whole = k > TOPK_INSERTION_MAX;
  _Alignas(16) char stack[SCRATCH_STACK_BYTES];
  keyed *e = whole ? scratch(stack, (size_t)n * 2, sizeof *e) : (keyed *)stack;
  if (!e) {
    c->failed = 1;
    return;
  }
  int64_t sv = line_stride(r, 0), si = line_stride(r, 1), sx = line_stride(r, 2);
  size_t size = nn_element_size(dt[2]);
  for (int64_t p = 0; p < count; p++) {
    const char *x = at(r, data, st, 2, p, 0);
    if (whole) {
      load_keys(dt[2], x, sx, n, c->reverse, e);
      sort_keyed(e, e + n, n, key_bytes(dt[2]));
    } else {
      topk_select(dt[2], x, sx, n, c->reverse, e, k);
    }
    gather_values(size, at(r, data, st, 0, p, 0), sv, x, sx, e, k);
    int64_t *idx = (int64_t *)at(r, data, st, 1, p, 0);
    for (int64_t j = 0; j < k; j++) idx[j * si] = e[j].i;
  }
  if ((void *)e != stack) free(e);
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

/* ---- kthvalue, median: one element of each line, by selection ------------- */
/* v[lo..hi] in order (small ranges, and the rare input that defeats the
   pivots below). */
static void sort_range(uint64_t *v, int64_t lo, int64_t hi) {
  for (int64_t j = lo + 1; j <= hi; j++) {
    uint64_t x = v[j];
    int64_t p = j;
    for (; p > lo && x < v[p - 1]; p--) v[p] = v[p - 1];
    v[p] = x;
  }
}

/* Heap sort of v[lo..hi]: n log n whatever the input. */
static void heap_sort_range(uint64_t *v, int64_t lo, int64_t hi) {
  uint64_t *h = v + lo;
  int64_t n = hi - lo + 1;
  for (int64_t end = n, start = n / 2; end > 1;) {
    int64_t root;
    if (start > 0) {
      root = --start;
    } else {
      uint64_t t = h[0];
      h[0] = h[--end], h[end] = t;
      root = 0;
    }
    for (int64_t child; (child = 2 * root + 1) < end; root = child) {
      if (child + 1 < end && h[child + 1] > h[child]) child++;
      if (h[root] >= h[child]) break;
      uint64_t t = h[root];
      h[root] = h[child], h[child] = t;
    }
  }
}

/* The key of rank k (from 0) among v[0..n), v reordered: Hoare's
   quickselect with a median-of-three pivot, linear on average; past
   2 log2(n) + 8 rounds (an input built against the pivots) the rest is
   heap sorted, so no input takes quadratic time. */
static uint64_t select_key(uint64_t *v, int64_t n, int64_t k) {
  int64_t lo = 0, hi = n - 1, rounds = 8;
  for (int64_t m = n; m > 1; m /= 2) rounds += 2;
  while (hi - lo > 16) {
    if (rounds-- == 0) {
      heap_sort_range(v, lo, hi);
      return v[k];
    }
    uint64_t a = v[lo], b = v[lo + (hi - lo) / 2], c = v[hi];
    uint64_t pivot = a < b ? (b < c ? b : a < c ? c : a) : (a < c ? a : b < c ? c : b);
    int64_t i = lo, j = hi;
    while (i <= j) {
      while (v[i] < pivot) i++;
      while (v[j] > pivot) j--;
      if (i <= j) {
        uint64_t t = v[i];
        v[i++] = v[j], v[j--] = t;
      }
    }
    /* [lo, j] <= pivot <= [i, hi], and what lies between equals it */
    if (k <= j) hi = j;
    else if (k >= i) lo = i;
    else return pivot;
  }
  sort_range(v, lo, hi);
  return v[k];
}

struct select_ctx {
  const nn_reduce_geom *r;
  int64_t n, k;
  int median; /* a line holding NaN gives its first NaN */
  int failed;
};

/* (values, indices, in): values and indices of the kept shape. The
   element a stable sort puts at rank k: its key by selection, then the
   line walked once for the elements of smaller keys, and among the equal
   ones, the (k - smaller)-th in line order. */
static void select_inner(void *vctx, int64_t count, char **data, const int64_t *st) {
  struct select_ctx *c = vctx;
  const nn_reduce_geom *r = c->r;
  const nn_dtype *dt = r->it.dtype;
  int64_t n = c->n;
  _Alignas(16) char stack[SCRATCH_STACK_BYTES];
  uint64_t *v = scratch(stack, (size_t)n, sizeof *v), nan = nan_key(dt[2]);
  if (!v) {
    c->failed = 1;
    return;
  }
  int64_t sx = line_stride(r, 2);
  int check_nan = c->median && nn_floating_dtype(dt[2]);
  size_t size = nn_element_size(dt[2]);
  for (int64_t p = 0; p < count; p++) {
    const char *x = at(r, data, st, 2, p, 0);
    line_keys(dt[2], x, sx, n, 0, v, 1);
    int64_t pick = -1;
    if (check_nan)
      for (int64_t j = 0; j < n && pick < 0; j++)
        if (v[j] == nan) pick = j;
    if (pick < 0) {
      uint64_t kth = select_key(v, n, c->k);
      /* the keys again in line order (selection moved them) */
      line_keys(dt[2], x, sx, n, 0, v, 1);
      int64_t smaller = 0;
      for (int64_t j = 0; j < n; j++) smaller += v[j] < kth;
      for (int64_t j = 0, seen = smaller; j < n && pick < 0; j++)
        if (v[j] == kth && seen++ == c->k) pick = j;
    }
    memcpy(at(r, data, st, 0, p, 0), x + pick * sx * (int64_t)size, size);
    *(int64_t *)at(r, data, st, 1, p, 0) = pick;
  }
  if ((void *)v != stack) free(v);
}

int nn_cpu_kthvalue(int64_t k, int median, const nn_reduce_geom *r) {
  struct select_ctx c = {r, line_length(r), k, median, 0};
  nn_iter_run(&r->it, select_inner, &c);
  if (c.failed) {
    nn_error_set("%s: out of memory for a line of %lld elements", median ? "median" : "kthvalue",
                 (long long)c.n);
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

/* ---- unique: a sort, then one walk over its runs ---------------------------- */
/* The element whose key (ascending) is k, written as element g of out:
   the inverse of line_keys for every value but -0 (whose key is +0's) and
   NaN (one key for all), which the caller copies from the input. */
static void store_key(nn_dtype dt, char *out, int64_t g, uint64_t k) {
  switch (dt) {
  case NN_FLOAT64: {
    uint64_t b = k >> 63 ? k ^ (1ull << 63) : ~k;
    memcpy(out + g * 8, &b, 8);
    break;
  }
  case NN_INT64: ((int64_t *)out)[g] = (int64_t)(k ^ (1ull << 63)); break;
  case NN_FLOAT32: case NN_FLOAT16: case NN_BFLOAT16: {
    uint32_t k32 = (uint32_t)k, b = k32 >> 31 ? k32 ^ (1u << 31) : ~k32;
    float f;
    memcpy(&f, &b, sizeof f);
    if (dt == NN_FLOAT32) ((float *)out)[g] = f;
    else nn_store(dt, out, g, f);
    break;
  }
  default: nn_store_integer(dt, out, g, (int32_t)((uint32_t)k ^ (1u << 31))); break;
  }
}

/* Lengths from which unique sorts keys alone (below, sort's keyed sort:
   the same order, and shorter lines sort by insertion). */
#define UNIQUE_KEYS_MIN 4096

/* Without inverse, on a long input: keys alone, each distinct key decoded
   back (the value of +0's key copied from the first zero of x, so -0 where
   it came first; each NaN copied from x in its order, after the rest). */
static int64_t unique_by_keys(nn_dtype dt, const char *x, int64_t n, char *values, int64_t *counts) {
  uint64_t *k = malloc(sizeof *k * (size_t)n * 2);
  if (!k) return -1;
  line_keys(dt, x, 1, n, 0, k, 1);
  int bytes = key_bytes(dt);
  radix_sort(k, k + n, n, bytes, sizeof *k);
  int floating = nn_floating_dtype(dt);
  uint64_t nan = nan_key(dt), zero = dt == NN_FLOAT64 ? 1ull << 63 : 1u << 31;
  size_t es = nn_element_size(dt);
  int64_t groups = 0, j = 0;
  while (j < n && !(floating && k[j] == nan)) {
    int64_t start = j;
    for (j++; j < n && k[j] == k[start]; j++) {}
    if (floating && k[start] == zero) {
      int64_t z = 0;
      while (nn_load(dt, x, z) != 0) z++;
      memcpy(values + groups * (int64_t)es, x + z * (int64_t)es, es);
    } else {
      store_key(dt, values, groups, k[start]);
    }
    if (counts) counts[groups] = j - start;
    groups++;
  }
  for (int64_t i = 0; j < n; i++) { /* the NaNs, each its own */
    double v = nn_load(dt, x, i);
    if (v == v) continue;
    memcpy(values + groups * (int64_t)es, x + i * (int64_t)es, es);
    if (counts) counts[groups] = 1;
    groups++, j++;
  }
  free(k);
  return groups;
}

int64_t nn_cpu_unique(nn_dtype dt, const char *x, int64_t n, char *values, int64_t *counts,
                      int64_t *inverse) {
  if (n == 0) return 0;
  if (!inverse && n >= UNIQUE_KEYS_MIN) {
    int64_t groups = unique_by_keys(dt, x, n, values, counts);
    if (groups < 0) nn_error_set("unique: out of memory for %lld elements", (long long)n);
    return groups;
  }
  keyed *e = malloc(sizeof *e * (size_t)n * 2);
  if (!e) {
    nn_error_set("unique: out of memory for %lld elements", (long long)n);
    return -1;
  }
  load_keys(dt, x, 1, n, 0, e);
  sort_keyed(e, e + n, n, key_bytes(dt));
  /* each run's first element in the stable order is its first in x */
  uint64_t nan = nn_floating_dtype(dt) ? nan_key(dt) : 0;
  size_t es = nn_element_size(dt);
  int64_t groups = 0, start = 0;
  for (int64_t j = 0; j < n; j++) {
    if (j == 0 || e[j].k != e[j - 1].k || (nan && e[j].k == nan)) {
      if (groups && counts) counts[groups - 1] = j - start;
      memcpy(values + groups * (int64_t)es, x + e[j].i * (int64_t)es, es);
      groups++, start = j;
    }
    if (inverse) inverse[e[j].i] = groups - 1;
  }
  if (counts) counts[groups - 1] = n - start;
  free(e);
  return groups;
}

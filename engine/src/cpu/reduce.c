/* cpu/reduce.c: reductions over the lines of an nn_reduce_geom (sum, mean,
 * p-norm), max and min with their indices, and the backward of max, min
 * and norm. Formulas: math/reduce.h. */
#include "cpu/cpu.h"
#include "math/exp.h"
#include "math/reduce.h"

#include <stdlib.h>
#include <string.h>

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
  /* PyTorch's divisor, max(0, n - correction): no more elements than the
     correction gives 0 / 0, NaN (not -0) */
  if (c->op == NN_REDUCE_VAR) nn_store(dt, out, 0, sum / fmax((double)c->n - c->p, 0));
  else if (c->op == NN_REDUCE_NORM) nn_store(dt, out, 0, c->n ? nn_norm_finish(sum, c->p) : 0);
  else if (c->op == NN_REDUCE_MEAN) nn_store(dt, out, 0, sum / (double)c->n);
  else if (nn_floating_dtype(c->r->it.dtype[1])) nn_store(dt, out, 0, sum);
  else if (c->op == NN_REDUCE_PROD) nn_store_integer(dt, out, 0, isum);
  else nn_store_integer(dt, out, 0, isum);
}

/* ---- contiguous lines in lanes ---------------------------------------------- */
/* A long reduction of one line as a single chain (acc = acc op x, each
   step waiting on the one before) runs at the latency of one multiply or
   add an element. These loops keep LINE_LANES independent accumulators
   (element j goes to lane j mod LINE_LANES, the lanes combined in order at
   the end, then the tail), which the compiler maps onto vector registers.
   The lanes are written out in C, so the order of the operations, and so
   every result, is the same whatever the vector width: each function is
   compiled for baseline x86-64, AVX2 and AVX-512 (target_clones, chosen
   once by the loader for the processor), without contraction into FMA
   (-std=c11), and the answer never depends on the thread count (a line is
   never split between threads). */
#define LINE_LANES 16
#define LINE_LANES_MIN 64 /* shorter lines: the plain loops */
#if defined(__GNUC__)
#define LINE_LANES_FN __attribute__((noinline)) NN_CPU_CLONES
#else
#define LINE_LANES_FN
#endif

/* A line the lanes below read: contiguous float32 or float64 (r NULL), or
   any other (strided, over several dims, any floating dtype) through
   nn_load, which gives the same doubles: so a line gives the same result
   to the bit however it lies in memory (a reduction over rows against the
   same lines made contiguous). */
struct lanes_line {
  const char *x;
  nn_dtype dt;
  const nn_reduce_geom *r;
};

static inline double line_element(const struct lanes_line *line, int64_t j) {
  if (line->r) return nn_load(line->dt, line->x, line_offset(line->r, 1, j));
  return line->dt == NN_FLOAT32 ? ((const float *)line->x)[j] : ((const double *)line->x)[j];
}

#if defined(__GNUC__)
#define LANES_INLINE inline __attribute__((always_inline))
#else
#define LANES_INLINE inline
#endif

/* The typed inner loops: `blocks` blocks of LINE_LANES elements, element
   l of a block into lane l. Each is inlined into its clone of the lanes
   function, where it vectorises. */
static LANES_INLINE void prod_blocks_f64(double *lane, const double *x, int64_t blocks) {
  for (int64_t b = 0; b < blocks; b++, x += LINE_LANES)
    for (int l = 0; l < LINE_LANES; l++) lane[l] *= x[l];
}

static LANES_INLINE void prod_blocks_any(double *lane, const struct lanes_line *line, int64_t blocks) {
  for (int64_t j = 0; j < blocks * LINE_LANES; j += LINE_LANES)
    for (int l = 0; l < LINE_LANES; l++) lane[l] *= line_element(line, j + l);
}

/* float32 multiplies in float lanes, as PyTorch's prod does (a product in
   double lanes cost a conversion an element and twice the registers); a
   strided line reads the same floats (nn_load widens them exactly). */
#define PROD_LANES_F32 32

static LANES_INLINE void prod_blocks_f32(float *lane, const float *x, int64_t blocks) {
  for (int64_t b = 0; b < blocks; b++, x += PROD_LANES_F32)
    for (int l = 0; l < PROD_LANES_F32; l++) lane[l] *= x[l];
}

static LANES_INLINE void prod_blocks_f32_any(float *lane, const struct lanes_line *line, int64_t blocks) {
  for (int64_t j = 0; j < blocks * PROD_LANES_F32; j += PROD_LANES_F32)
    for (int l = 0; l < PROD_LANES_F32; l++) lane[l] *= (float)line_element(line, j + l);
}

/* The tail goes into the lanes too (element j into lane j mod 32, as the
   blocks'), and the lanes are combined as a tree, halves times halves: a
   chain of 32 + 31 dependent multiplies per line cost as much as the
   blocks of a 1000-long line, and multiplied terms below 2^-126 one by
   one through float's subnormals, each a slow microcoded step, where the
   tree's few products jump past them. */
LINE_LANES_FN static float prod_lanes_f32(const struct lanes_line *line, int64_t n) {
  float lane[PROD_LANES_F32];
  for (int l = 0; l < PROD_LANES_F32; l++) lane[l] = 1;
  int64_t blocks = n / PROD_LANES_F32, done = blocks * PROD_LANES_F32;
  if (line->r) prod_blocks_f32_any(lane, line, blocks);
  else prod_blocks_f32(lane, (const float *)line->x, blocks);
  for (int64_t j = done; j < n; j++) lane[j - done] *= (float)line_element(line, j);
  for (int half = PROD_LANES_F32 / 2; half >= 1; half /= 2)
    for (int l = 0; l < half; l++) lane[l] *= lane[l + half];
  return lane[0];
}

/* The product of a line's n elements, in double (float32 in float). */
LINE_LANES_FN static double prod_lanes(const struct lanes_line *line, int64_t n) {
  if (line->dt == NN_FLOAT32) return prod_lanes_f32(line, n);
  double lane[LINE_LANES], acc = 1;
  for (int l = 0; l < LINE_LANES; l++) lane[l] = 1;
  int64_t blocks = n / LINE_LANES;
  if (line->r) prod_blocks_any(lane, line, blocks);
  else prod_blocks_f64(lane, (const double *)line->x, blocks);
  for (int l = 0; l < LINE_LANES; l++) acc *= lane[l];
  for (int64_t j = blocks * LINE_LANES; j < n; j++) acc *= line_element(line, j);
  return acc;
}

/* What power_sum adds for an element: (x - centre)^2 when square, else
   |x| when magnitude (centre 0), else x - centre. */
static LANES_INLINE double power_term(double d, int square, int magnitude) {
  return square ? d * d : (magnitude ? fabs(d) : d);
}

static LANES_INLINE void power_blocks_f32(double *lane, const float *x, int64_t blocks, double centre,
                                          int square, int magnitude) {
  for (int64_t b = 0; b < blocks; b++, x += LINE_LANES)
    for (int l = 0; l < LINE_LANES; l++) lane[l] += power_term(x[l] - centre, square, magnitude);
}

static LANES_INLINE void power_blocks_f64(double *lane, const double *x, int64_t blocks, double centre,
                                          int square, int magnitude) {
  for (int64_t b = 0; b < blocks; b++, x += LINE_LANES)
    for (int l = 0; l < LINE_LANES; l++) lane[l] += power_term(x[l] - centre, square, magnitude);
}

static LANES_INLINE void power_blocks_any(double *lane, const struct lanes_line *line, int64_t blocks,
                                          double centre, int square, int magnitude) {
  for (int64_t j = 0; j < blocks * LINE_LANES; j += LINE_LANES)
    for (int l = 0; l < LINE_LANES; l++)
      lane[l] += power_term(line_element(line, j + l) - centre, square, magnitude);
}

/* sum of (x - centre)^power, power 1 or 2 (centre 0 for the 1- and
   2-norms' sums, which take |x|: the square ignores the sign). Each case
   a constant in its own call, so that each inner loop is one formula. */
static LANES_INLINE double power_sum(const struct lanes_line *line, int64_t n, double centre, int square,
                                     int magnitude) {
  double lane[LINE_LANES] = {0}, acc = 0;
  int64_t blocks = n / LINE_LANES;
  if (line->r) power_blocks_any(lane, line, blocks, centre, square, magnitude);
  else if (line->dt == NN_FLOAT32) power_blocks_f32(lane, (const float *)line->x, blocks, centre, square, magnitude);
  else power_blocks_f64(lane, (const double *)line->x, blocks, centre, square, magnitude);
  for (int l = 0; l < LINE_LANES; l++) acc += lane[l];
  for (int64_t j = blocks * LINE_LANES; j < n; j++)
    acc += power_term(line_element(line, j) - centre, square, magnitude);
  return acc;
}

LINE_LANES_FN static double power_sum_lanes(const struct lanes_line *line, int64_t n, double centre,
                                            int square, int magnitude) {
  if (square) return power_sum(line, n, centre, 1, 0);
  if (magnitude) return power_sum(line, n, 0, 0, 1);
  return power_sum(line, n, centre, 0, 0);
}

/* The nonzero elements (NaN among them) of a block of x, bytes (bool,
   uint8, int8), float32 or float64, in a 32-bit count: a block holds
   fewer than 2^32 elements, so it cannot overflow. */
#define COUNT_BLOCK (1 << 20)
static LANES_INLINE uint32_t count_block_bytes(const uint8_t *x, int64_t n) {
  uint32_t c = 0;
  for (int64_t j = 0; j < n; j++) c += x[j] != 0;
  return c;
}

static LANES_INLINE uint32_t count_block_f32(const float *x, int64_t n) {
  uint32_t c = 0;
  for (int64_t j = 0; j < n; j++) c += x[j] != 0;
  return c;
}

static LANES_INLINE uint32_t count_block_f64(const double *x, int64_t n) {
  uint32_t c = 0;
  for (int64_t j = 0; j < n; j++) c += x[j] != 0;
  return c;
}

LINE_LANES_FN static int64_t count_nonzero(const char *x, nn_dtype dt, int64_t n) {
  int64_t count = 0;
  for (int64_t first = 0; first < n; first += COUNT_BLOCK) {
    int64_t m = n - first < COUNT_BLOCK ? n - first : COUNT_BLOCK;
    if (dt == NN_FLOAT32) count += count_block_f32((const float *)x + first, m);
    else if (dt == NN_FLOAT64) count += count_block_f64((const double *)x + first, m);
    else count += count_block_bytes((const uint8_t *)x + first, m);
  }
  return count;
}

/* Whether a line of c's op goes through the lanes: prod, var and the 1-
   and 2-norms of a floating line long enough. Those never take the
   swapped loops of reduce_across, which would sum in another order. */
static int in_lanes(const struct lines_ctx *c, nn_dtype dt) {
  return c->n >= LINE_LANES_MIN && nn_floating_dtype(dt) &&
         (c->op == NN_REDUCE_PROD || c->op == NN_REDUCE_VAR ||
          (c->op == NN_REDUCE_NORM && (c->p == 1 || c->p == 2)));
}

/* A line's prod, var (sum of squares about the mean), 1- or 2-norm's sum
   in lanes, or a contiguous line's count of nonzeros (0-norm): 1 with
   *acc set, else 0 (the element-by-element loop takes it). */
static int reduce_contiguous(const struct lines_ctx *c, nn_dtype dt, const char *x, double *acc) {
  int64_t n = c->n;
  const nn_reduce_geom *r = c->r;
  int contiguous = r->rdims == 1 && r->rstride[0][1] == 1;
  if (n < LINE_LANES_MIN) return 0;
  if (in_lanes(c, dt)) {
    struct lanes_line line = {x, dt, contiguous && (dt == NN_FLOAT32 || dt == NN_FLOAT64) ? NULL : r};
    if (c->op == NN_REDUCE_PROD) {
      *acc = prod_lanes(&line, n);
    } else if (c->op == NN_REDUCE_VAR) {
      double mean = power_sum_lanes(&line, n, 0, 0, 0) / (double)n;
      *acc = power_sum_lanes(&line, n, mean, 1, 0);
    } else {
      *acc = power_sum_lanes(&line, n, 0, c->p == 2, c->p == 1);
    }
    return 1;
  }
  /* a bool line's sum is its count (a mask's sum: how many are true) */
  int count = (c->op == NN_REDUCE_NORM && c->p == 0) || (c->op == NN_REDUCE_SUM && dt == NN_BOOL);
  if (!contiguous || !count) return 0;
  if (dt != NN_BOOL && dt != NN_UINT8 && dt != NN_INT8 && dt != NN_FLOAT32 && dt != NN_FLOAT64) return 0;
  *acc = (double)count_nonzero(x, dt, n);
  return 1;
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
    if (reduce_contiguous(c, dt, x, &acc)) {
      if (!floating) iacc = (int64_t)acc; /* a count (the only integer result here) */
    } else if (c->op == NN_REDUCE_PROD && dt == NN_FLOAT32 && r->rdims == 1) {
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

/* Whether the outputs of a run lie closer in memory than a line's
   elements (a reduction over rows, or over the outer dims): then the
   kernels below swap their loops, each line index in turn over every
   output of the run, reading memory in one pass (the inner loop
   vectorises). Each output still takes its elements in line order: the
   same results as the line-by-line loops, to the bit. */
static int walk_across(const nn_reduce_geom *r, int64_t count, int64_t n, const int64_t *st) {
  int64_t inner = r->rdims ? r->rstride[r->rdims - 1][1] : 0;
  return count > 1 && n > 1 && llabs(st[1]) < llabs(inner);
}

/* Scratch of count doubles per array, on the stack for short runs. */
#define ACROSS_STACK 256

/* acc[p] (op p of the run) for sum, mean, prod, var and the p-norms of a
   floating input, the loops swapped. */
static void across_pass(const struct lines_ctx *c, int64_t count, char **data, const int64_t *st,
                        double *acc, const double *mean) {
  const nn_reduce_geom *r = c->r;
  nn_dtype dt = r->it.dtype[1];
  int64_t es = (int64_t)nn_element_size(dt), s = st[1];
  nn_reduce_op op = mean ? NN_REDUCE_SUM : c->op;
  double pn = c->p;
  for (int64_t j = 0; j < c->n; j++) {
    const char *x = data[1] + line_offset(r, 1, j) * es;
    const float *xf = (const float *)x;
    if (dt == NN_FLOAT32 && mean) {
      for (int64_t p = 0; p < count; p++) {
        double d = xf[p * s] - mean[p];
        acc[p] += d * d;
      }
    } else if (dt == NN_FLOAT32 && op == NN_REDUCE_PROD) {
      for (int64_t p = 0; p < count; p++) acc[p] *= xf[p * s];
    } else if (dt == NN_FLOAT32 && op != NN_REDUCE_NORM) {
      for (int64_t p = 0; p < count; p++) acc[p] += xf[p * s];
    } else if (dt == NN_FLOAT32 && pn == 2) {
      for (int64_t p = 0; p < count; p++) acc[p] += (double)xf[p * s] * xf[p * s];
    } else {
      for (int64_t p = 0; p < count; p++) {
        double v = nn_load(dt, x, p * s);
        if (mean) acc[p] += (v - mean[p]) * (v - mean[p]);
        else if (op == NN_REDUCE_PROD) acc[p] *= v;
        else if (op == NN_REDUCE_NORM) acc[p] = nn_norm_step(acc[p], fabs(v), pn);
        else acc[p] += v;
      }
    }
  }
}

static int reduce_across(const struct lines_ctx *c, int64_t count, char **data, const int64_t *st) {
  const nn_reduce_geom *r = c->r;
  int var = c->op == NN_REDUCE_VAR;
  double stack[2 * ACROSS_STACK];
  double *acc = count <= ACROSS_STACK ? stack : malloc((size_t)count * (var ? 2 : 1) * sizeof *acc);
  if (!acc) return 0; /* the line-by-line loop needs no memory */
  double start = c->op == NN_REDUCE_NORM ? nn_norm_start(c->p) : c->op == NN_REDUCE_PROD ? 1 : 0;
  for (int64_t p = 0; p < count; p++) acc[p] = start;
  if (var) { /* the means first, then the squares about them (reduce_lines' two passes) */
    double *mean = acc + (count <= ACROSS_STACK ? ACROSS_STACK : count);
    for (int64_t p = 0; p < count; p++) mean[p] = 0;
    struct lines_ctx sum = *c;
    sum.op = NN_REDUCE_SUM;
    across_pass(&sum, count, data, st, mean, NULL);
    for (int64_t p = 0; p < count; p++) mean[p] /= (double)c->n;
    across_pass(c, count, data, st, acc, mean);
  } else {
    across_pass(c, count, data, st, acc, NULL);
  }
  for (int64_t p = 0; p < count; p++) store_result(c, at(r, data, st, 0, p, 0), acc[p], 0);
  if (acc != stack) free(acc);
  return 1;
}

static void reduce_inner(void *vctx, int64_t count, char **data, const int64_t *st) {
  const struct lines_ctx *c = vctx;
  const nn_reduce_geom *r = c->r;
  if (nn_floating_dtype(r->it.dtype[1]) && !in_lanes(c, r->it.dtype[1]) && walk_across(r, count, c->n, st) &&
      reduce_across(c, count, data, st))
    return;
  reduce_lines(c, count, data, st);
}

int nn_cpu_reduce(nn_reduce_op op, const nn_reduce_geom *r, double p) {
  struct lines_ctx c = {r, line_length(r), op, p, 0};
  nn_iter_run_parallel(&r->it, reduce_inner, &c, c.n);
  return 0;
}

/* ---- dot (dot, mv) ----------------------------------------------------------- */
/* float32: the products summed in DOT_LANES float lanes (element j into
   lane j mod DOT_LANES), the lanes folded in halves, then the tail: what
   PyTorch's sdot and sgemv do (float sums in vector lanes), where the sum
   of each product widened to double cost two conversions an element. The
   lanes are written out in C, so every layout (strided, transposed, one
   row of a matrix) and every vector width gives the same bits. */
#define DOT_LANES 32

static LANES_INLINE void dot_blocks_f32(float *lane, const float *a, const float *b, int64_t blocks) {
  for (int64_t k = 0; k < blocks; k++, a += DOT_LANES, b += DOT_LANES)
    for (int l = 0; l < DOT_LANES; l++) lane[l] += a[l] * b[l];
}

/* the same sums over lines of any strides (a float32 widened by nn_load
   and narrowed back is itself) */
static LANES_INLINE float dot_element(const nn_reduce_geom *r, const char *a, const char *b, int64_t j) {
  return (float)nn_load(NN_FLOAT32, a, line_offset(r, 1, j)) *
         (float)nn_load(NN_FLOAT32, b, line_offset(r, 2, j));
}

/* r NULL: a and b contiguous */
LINE_LANES_FN static float dot_f32(const nn_reduce_geom *r, const char *a, const char *b, int64_t n) {
  float lane[DOT_LANES] = {0}, acc;
  int64_t blocks = n / DOT_LANES;
  if (!r) {
    dot_blocks_f32(lane, (const float *)a, (const float *)b, blocks);
  } else {
    for (int64_t j = 0; j < blocks * DOT_LANES; j += DOT_LANES)
      for (int l = 0; l < DOT_LANES; l++) lane[l] += dot_element(r, a, b, j + l);
  }
  for (int width = DOT_LANES / 2; width > 0; width /= 2)
    for (int l = 0; l < width; l++) lane[l] += lane[l + width];
  acc = lane[0];
  for (int64_t j = blocks * DOT_LANES; j < n; j++)
    acc += r ? dot_element(r, a, b, j) : ((const float *)a)[j] * ((const float *)b)[j];
  return acc;
}

/* float64: each product summed in LINE_LANES double lanes */
LINE_LANES_FN static double dot_f64(const double *a, const double *b, int64_t n) {
  double lane[LINE_LANES] = {0}, acc = 0;
  int64_t j = 0;
  for (; j + LINE_LANES <= n; j += LINE_LANES)
    for (int l = 0; l < LINE_LANES; l++) lane[l] += a[j + l] * b[j + l];
  for (int l = 0; l < LINE_LANES; l++) acc += lane[l];
  for (; j < n; j++) acc += a[j] * b[j];
  return acc;
}

/* (out, a, b) */
static void dot_inner(void *vctx, int64_t count, char **data, const int64_t *st) {
  const struct lines_ctx *c = vctx;
  const nn_reduce_geom *r = c->r;
  const nn_dtype *dt = r->it.dtype;
  int contiguous = r->rdims == 1 && r->rstride[0][1] == 1 && r->rstride[0][2] == 1;
  for (int64_t p = 0; p < count; p++) {
    const char *a = at(r, data, st, 1, p, 0), *b = at(r, data, st, 2, p, 0);
    double acc = 0;
    if (dt[1] == NN_FLOAT32 && dt[2] == NN_FLOAT32)
      acc = dot_f32(contiguous ? NULL : r, a, b, c->n);
    else if (contiguous && dt[1] == NN_FLOAT64 && dt[2] == NN_FLOAT64)
      acc = dot_f64((const double *)a, (const double *)b, c->n);
    else
      for (int64_t j = 0; j < c->n; j++)
        acc += nn_load(dt[1], a, line_offset(r, 1, j)) * nn_load(dt[2], b, line_offset(r, 2, j));
    nn_store(dt[0], at(r, data, st, 0, p, 0), 0, acc);
  }
}

int nn_cpu_dot(const nn_reduce_geom *r) {
  struct lines_ctx c = {r, line_length(r), NN_REDUCE_SUM, 0, 0};
  nn_iter_run_parallel(&r->it, dot_inner, &c, c.n);
  return 0;
}

/* ---- max and min ----------------------------------------------------------- */

/* The first index of a contiguous float32 line's largest (smallest)
   element, or of its first NaN: what the loop of extreme_inner finds, in
   passes that vectorise. The extreme is found in lanes (x > lane ? x :
   lane, a vector max, which never lets a NaN in: comparisons with it are
   false) while other lanes note whether any element is NaN; then the line
   is searched, a block at a time, for the first element equal to the
   extreme (or the first NaN). The element at the index is the loop's
   pick: of +0 and -0, the first. */
#define EXTREME_LANES_MIN 64 /* shorter lines: the plain loop costs less */

/* Inlined into its caller's loop over lines, gcc no longer vectorises the
   lanes (it tries the outer loop); a call a line costs nothing beside
   64 elements or more. */
#if defined(__GNUC__)
#define LANES_NOINLINE __attribute__((noinline))
#else
#define LANES_NOINLINE
#endif

/* gcc does not vectorise a max kept in an array of lanes; its vector
   types (8 floats: two SSE registers in the baseline clone, one AVX
   register in the others) say it directly. */
typedef float f32x8 __attribute__((vector_size(32)));
typedef int32_t i32x8 __attribute__((vector_size(32)));
#define EXTREME_VECTORS 4 /* independent maxima in flight */

/* (pointers, not values: a 32-byte vector passed by value would change
   the baseline clone's calling convention, which gcc warns about) */
static inline void load_f32x8(f32x8 *v, const float *x) { memcpy(v, x, sizeof *v); }

static inline int any_lane(const i32x8 *m) {
  int32_t lane[8];
  memcpy(lane, m, sizeof lane);
  int32_t any = 0;
  for (int l = 0; l < 8; l++) any |= lane[l];
  return any != 0;
}

/* best_v[k] = the larger (smaller) of best_v[k] and v, lane by lane */
static inline void keep_extreme(f32x8 *best, const f32x8 *v, int want_max) {
  i32x8 take = want_max ? *v > *best : *v < *best;
  *best = (f32x8)(((i32x8)*v & take) | ((i32x8)*best & ~take));
}

/* The line's largest (smallest) number, *nan whether it holds a NaN (n >=
   32). The tail is one more block, the line's last 32 elements (read
   twice: an extreme does not mind), and the lanes meet as a tree: a chain
   of 31 selects, then one per tail element, each waiting on the one before,
   cost as much as the blocks of a 1000-long line. Which lane meets which
   changes nothing: the numbers' extreme is one value (of +0 and -0, and
   of NaNs, the caller takes the first in the line). */
LINE_LANES_FN static float extreme_value_f32(const float *x, int64_t n, int want_max, int *nan) {
  enum { BLOCK = 8 * EXTREME_VECTORS };
  f32x8 best_v[EXTREME_VECTORS];
  const f32x8 inf = {INFINITY, INFINITY, INFINITY, INFINITY, INFINITY, INFINITY, INFINITY, INFINITY};
  i32x8 odd = {0};
  for (int k = 0; k < EXTREME_VECTORS; k++) load_f32x8(&best_v[k], x);
  for (int64_t j = 0; j < n; j += BLOCK) {
    int64_t at = n - j < BLOCK ? n - BLOCK : j;
    for (int k = 0; k < EXTREME_VECTORS; k++) {
      f32x8 v;
      load_f32x8(&v, x + at + 8 * k);
      keep_extreme(&best_v[k], &v, want_max);
      odd |= ~(v <= inf); /* NaN: no order holds */
    }
  }
  for (int half = EXTREME_VECTORS / 2; half >= 1; half /= 2)
    for (int k = 0; k < half; k++) keep_extreme(&best_v[k], &best_v[k + half], want_max);
  float lane[8];
  memcpy(lane, &best_v[0], sizeof lane);
  for (int half = 4; half >= 1; half /= 2)
    for (int l = 0; l < half; l++)
      lane[l] = want_max ? (lane[l + half] > lane[l] ? lane[l + half] : lane[l])
                         : (lane[l + half] < lane[l] ? lane[l + half] : lane[l]);
  *nan = any_lane(&odd) || x[0] != x[0];
  return lane[0];
}

/* The first j with x[j] == value, or with x[j] NaN when nan; one exists. */
LINE_LANES_FN static int64_t first_equal_f32(const float *x, int64_t n, float value, int nan) {
  int64_t j = 0;
  const f32x8 target = {value, value, value, value, value, value, value, value};
  const f32x8 inf = {INFINITY, INFINITY, INFINITY, INFINITY, INFINITY, INFINITY, INFINITY, INFINITY};
  for (; j + 32 <= n; j += 32) {
    f32x8 a, b, c, d;
    load_f32x8(&a, x + j), load_f32x8(&b, x + j + 8), load_f32x8(&c, x + j + 16), load_f32x8(&d, x + j + 24);
    i32x8 hit = nan ? ~((a <= inf) & (b <= inf) & (c <= inf) & (d <= inf))
                    : (a == target) | (b == target) | (c == target) | (d == target);
    if (any_lane(&hit)) break;
  }
  if (nan)
    while (x[j] == x[j]) j++;
  else
    while (x[j] != value) j++;
  return j;
}

/* The vector table's loop where it has one (the max and min instructions,
   which gcc does not make of the lanes above), else the lanes: the same
   extreme, the same NaN flag. */
static inline float line_extreme_f32(const float *x, int64_t n, int want_max, int *nan) {
  const nn_cpu_vector *v = nn_cpu_vector_best();
  if (v->extreme && n >= v->extreme_min) return v->extreme(n, x, want_max, nan);
  return extreme_value_f32(x, n, want_max, nan);
}

LANES_NOINLINE static int64_t extreme_line_f32(const float *x, int64_t n, int want_max) {
  int nan;
  float best = line_extreme_f32(x, n, want_max, &nan);
  /* a NaN at x[0] seeds the lanes: then best is NaN and nan is set */
  return first_equal_f32(x, n, best, nan);
}

/* The element extreme_line_f32 picks, without its index (amax, amin):
   the lanes' extreme itself, unless it is a NaN or a zero, which the
   search picks (the first NaN with its payload; the first of +0 and -0). */
LANES_NOINLINE static float extreme_value_line_f32(const float *x, int64_t n, int want_max) {
  int nan;
  float best = line_extreme_f32(x, n, want_max, &nan);
  return nan || best == 0 ? x[first_equal_f32(x, n, best, nan)] : best;
}

/* max/min of each output's line, the loops swapped (walk_across). */
static int extreme_across(const struct lines_ctx *c, int64_t count, char **data, const int64_t *st) {
  const nn_reduce_geom *r = c->r;
  nn_dtype dt = r->it.dtype[1];
  double stack[ACROSS_STACK];
  int64_t stack_j[ACROSS_STACK];
  double *best = count <= ACROSS_STACK ? stack : malloc((size_t)count * sizeof *best);
  int64_t *best_j = count <= ACROSS_STACK ? stack_j : malloc((size_t)count * sizeof *best_j);
  if (!best || !best_j) {
    if (best != stack) free(best);
    if (best_j != stack_j) free(best_j);
    return 0;
  }
  int64_t es = (int64_t)nn_element_size(dt), s = st[1];
  for (int64_t p = 0; p < count; p++) best[p] = nn_load(dt, data[1], p * s), best_j[p] = 0;
  for (int64_t j = 1; j < c->n; j++) {
    const char *x = data[1] + line_offset(r, 1, j) * es;
    if (dt == NN_FLOAT32) {
      const float *xf = (const float *)x;
      for (int64_t p = 0; p < count; p++)
        if (nn_extreme_better(xf[p * s], best[p], c->want_max)) best[p] = xf[p * s], best_j[p] = j;
    } else {
      for (int64_t p = 0; p < count; p++) {
        double v = nn_load(dt, x, p * s);
        if (nn_extreme_better(v, best[p], c->want_max)) best[p] = v, best_j[p] = j;
      }
    }
  }
  for (int64_t p = 0; p < count; p++) {
    nn_store(r->it.dtype[0], at(r, data, st, 0, p, 0), 0, best[p]);
    if (r->it.n > 2) *(int64_t *)at(r, data, st, 2, p, 0) = best_j[p];
  }
  if (best != stack) free(best);
  if (best_j != stack_j) free(best_j);
  return 1;
}

/* (values, in, indices) */
static void extreme_inner(void *vctx, int64_t count, char **data, const int64_t *st) {
  const struct lines_ctx *c = vctx;
  const nn_reduce_geom *r = c->r;
  nn_dtype dt = r->it.dtype[1];
  if (walk_across(r, count, c->n, st) && extreme_across(c, count, data, st)) return;
  if (dt == NN_FLOAT32 && r->it.dtype[0] == NN_FLOAT32 && r->rdims == 1 && r->rstride[0][1] == 1 &&
      c->n >= EXTREME_LANES_MIN) {
    for (int64_t p = 0; p < count; p++) {
      const float *x = (const float *)at(r, data, st, 1, p, 0);
      if (r->it.n == 2) {
        *(float *)at(r, data, st, 0, p, 0) = extreme_value_line_f32(x, c->n, c->want_max);
        continue;
      }
      int64_t j = extreme_line_f32(x, c->n, c->want_max);
      *(float *)at(r, data, st, 0, p, 0) = x[j];
      *(int64_t *)at(r, data, st, 2, p, 0) = j;
    }
    return;
  }
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
    if (r->it.n > 2) *(int64_t *)at(r, data, st, 2, p, 0) = best_j;
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
   add) made four full-size temporaries. The sum in double; float64 takes
   exp and log in double; float32 its exps in float (nn_exp_f32, branch-free
   so that the loop vectorises, under 2 ulp: as the float32 softmax) and
   logf. An infinite max counts as 0 (lines of -inf give -inf, not NaN). */
#define EXP_LANES 16
/* A contiguous line's sum of exps in lanes of doubles (a sum in line order
   would chain every add to the one before; the lanes let the exps and adds
   vectorise). 16 lanes: with 8 the exps ran 8 floats an instruction and
   the adds waited on each other (two chains of 4 doubles); 16 fill a
   512-bit register of floats and give the adds two 8-double chains (0.82
   -> 0.50 ns an element in a loop of 1000-long lines). */
LINE_LANES_FN static double exp_sum_f32(const float *x, int64_t s, int64_t n, float m) {
  double lane[EXP_LANES] = {0}, acc = 0;
  int64_t j = 0;
  if (s == 1) {
    for (; j + EXP_LANES <= n; j += EXP_LANES)
      for (int l = 0; l < EXP_LANES; l++) lane[l] += nn_exp_f32(x[j + l] - m);
    /* a half block too: short lines (a 10-long one) kept the vector exps */
    if (j + EXP_LANES / 2 <= n) {
      for (int l = 0; l < EXP_LANES / 2; l++) lane[l] += nn_exp_f32(x[j + l] - m);
      j += EXP_LANES / 2;
    }
  }
  for (int l = 0; l < EXP_LANES; l++) acc += lane[l];
  for (; j < n; j++) acc += nn_exp_f32(x[j * s] - m);
  return acc;
}

/* logsumexp of each output's line, the loops swapped (walk_across). */
static int logsumexp_across(const struct lines_ctx *c, int64_t count, char **data, const int64_t *st) {
  const nn_reduce_geom *r = c->r;
  nn_dtype dt = r->it.dtype[1];
  double stack[2 * ACROSS_STACK];
  double *m = count <= ACROSS_STACK ? stack : malloc((size_t)count * 2 * sizeof *m);
  if (!m) return 0;
  double *acc = m + (count <= ACROSS_STACK ? ACROSS_STACK : count);
  int64_t es = (int64_t)nn_element_size(dt), s = st[1];
  for (int64_t p = 0; p < count; p++) m[p] = nn_load(dt, data[1], p * s), acc[p] = 0;
  for (int64_t j = 1; j < c->n; j++) {
    const char *x = data[1] + line_offset(r, 1, j) * es;
    if (dt == NN_FLOAT32) {
      const float *xf = (const float *)x;
      for (int64_t p = 0; p < count; p++)
        if (nn_extreme_better(xf[p * s], m[p], 1)) m[p] = xf[p * s];
    } else {
      const double *xd = (const double *)x;
      for (int64_t p = 0; p < count; p++)
        if (nn_extreme_better(xd[p * s], m[p], 1)) m[p] = xd[p * s];
    }
  }
  for (int64_t p = 0; p < count; p++) m[p] = isinf(m[p]) ? 0 : m[p];
  for (int64_t j = 0; j < c->n; j++) {
    const char *x = data[1] + line_offset(r, 1, j) * es;
    if (dt == NN_FLOAT32) {
      const float *xf = (const float *)x;
      for (int64_t p = 0; p < count; p++) acc[p] += nn_exp_f32(xf[p * s] - (float)m[p]);
    } else {
      const double *xd = (const double *)x;
      for (int64_t p = 0; p < count; p++) acc[p] += exp(xd[p * s] - m[p]);
    }
  }
  for (int64_t p = 0; p < count; p++) {
    if (dt == NN_FLOAT32) *(float *)at(r, data, st, 0, p, 0) = logf((float)acc[p]) + (float)m[p];
    else *(double *)at(r, data, st, 0, p, 0) = log(acc[p]) + m[p];
  }
  if (m != stack) free(m);
  return 1;
}

static void logsumexp_inner(void *vctx, int64_t count, char **data, const int64_t *st) {
  const struct lines_ctx *c = vctx;
  const nn_reduce_geom *r = c->r;
  if (walk_across(r, count, c->n, st) && logsumexp_across(c, count, data, st)) return;
  for (int64_t p = 0; p < count; p++) {
    double acc = 0;
    if (r->it.dtype[1] == NN_FLOAT32) {
      const float *x = (const float *)at(r, data, st, 1, p, 0);
      float m;
      if (r->rdims == 1 && r->rstride[0][1] == 1 && c->n >= EXTREME_LANES_MIN) {
        m = extreme_value_line_f32(x, c->n, 1); /* the value alone: no search for its index */
      } else {
        m = x[0];
        for (int64_t j = 1; j < c->n; j++)
          if (nn_extreme_better(x[line_offset(r, 1, j)], m, 1)) m = x[line_offset(r, 1, j)];
      }
      m = isinf(m) ? 0.0f : m;
      if (r->rdims == 1) {
        acc = exp_sum_f32(x, r->rstride[0][1], c->n, m);
      } else {
        for (int64_t j = 0; j < c->n; j++) acc += nn_exp_f32(x[line_offset(r, 1, j)] - m);
      }
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

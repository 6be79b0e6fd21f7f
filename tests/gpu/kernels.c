/* kernels.c: the CUDA kernels (engine/src/cuda) against the CPU's, entry
 * by entry, on a GPU. Each case builds its geometry with the fronts' own
 * helpers (nn_iter_init, nn_reduce_init) over host tensors, copies every
 * operand's storage to the device, runs the CPU table on the host and the
 * CUDA table on the copies, and compares the written storage element by
 * element: float64 to 1e-12, float32 to 1e-5 relative (the products and
 * the reduction trees may round differently), integers and bools exactly.
 *
 * The memory entries here are this test's own (cudaMalloc, cudaMemcpy):
 * it checks the kernels alone, whatever cuda/backend.cu does. Without a
 * GPU it says so and exits 77, which ctest counts as skipped.
 * Run: build/tests/cuda_kernels_check (tests/gpu/check.sh runs it). */
#include "check.h"
#include "cuda/kernels.h"
#include "internal.h"

#include <cuda_runtime_api.h>
#include <stdio.h>

static nn_backend gpu;

static void *gpu_alloc(size_t nbytes) {
  void *p = NULL;
  return cudaMalloc(&p, nbytes ? nbytes : 1) == cudaSuccess ? p : NULL;
}
static void gpu_free(void *p, size_t nbytes) {
  (void)nbytes;
  cudaFree(p);
}
static int gpu_status(cudaError_t e) {
  if (e == cudaSuccess) return 0;
  nn_error_set("cuda: %s", cudaGetErrorString(e));
  return -1;
}
static int gpu_to_host(void *host, const void *data, size_t nbytes) {
  return gpu_status(cudaMemcpy(host, data, nbytes, cudaMemcpyDeviceToHost));
}
static int gpu_from_host(void *data, const void *host, size_t nbytes) {
  return gpu_status(cudaMemcpy(data, host, nbytes, cudaMemcpyHostToDevice));
}

/* ---- host tensors and their device copies -------------------------------- */
enum { MAX_MIRRORS = 64 };
static struct {
  nn_storage *s;
  char *dev;
} mirrors[MAX_MIRRORS];
static int mirror_count;

/* Copies t's whole storage to the device (once per storage). */
static void mirror(const nn_tensor *t) {
  for (int i = 0; i < mirror_count; i++)
    if (mirrors[i].s == t->storage) return;
  if (!CHECK(mirror_count < MAX_MIRRORS)) return;
  char *dev = gpu_alloc(t->storage->nbytes);
  CHECK(dev && gpu_from_host(dev, t->storage->data, t->storage->nbytes) == 0);
  mirrors[mirror_count].s = t->storage;
  mirrors[mirror_count++].dev = dev;
}

/* The device address of host address p inside t's storage. */
static void *dev_at(const nn_tensor *t, const void *p) {
  for (int i = 0; i < mirror_count; i++)
    if (mirrors[i].s == t->storage) return mirrors[i].dev + ((const char *)p - (const char *)t->storage->data);
  CHECKF(0, "a tensor was not mirrored");
  return NULL;
}
static void *dev_data(const nn_tensor *t) { return dev_at(t, nn_data(t)); }

static void unmirror_all(void) {
  for (int i = 0; i < mirror_count; i++) gpu_free(mirrors[i].dev, 0);
  mirror_count = 0;
}

/* Every element of t's storage as the CPU left it against the device's. */
static void compare(const char *name, const nn_tensor *t, double tol) {
  size_t nbytes = t->storage->nbytes, es = nn_dtype_size(t->dtype);
  char *back = malloc(nbytes ? nbytes : 1);
  CHECK(back && gpu_to_host(back, dev_at(t, t->storage->data), nbytes) == 0);
  int reported = 0;
  for (size_t i = 0; back && i < nbytes / es && reported < 3; i++) {
    double want = nn_load(t->dtype, t->storage->data, (int64_t)i), got = nn_load(t->dtype, back, (int64_t)i);
    double t_tol = nn_floating_dtype(t->dtype) ? (t->dtype == NN_FLOAT32 ? tol * 1e-5 : tol * 1e-12) : 0;
    int ok = near(want, got, t_tol) || (want == got);
    if (!ok) reported++;
    CHECKF(ok, "%s: element %zu: cpu %.17g, cuda %.17g", name, i, want, got);
  }
  free(back);
}

static nn_tensor *randn(nn_dtype dtype, int ndim, const int64_t *size) {
  return OK(nn_randn(dtype, ndim, size));
}

/* ---- elementwise ---------------------------------------------------------- */
typedef int (*iter_call)(const nn_backend *b, const nn_iter *it, const void *ctx);

/* ts[0] written, the others read; the iterator over shape_of's shape. */
static void check_iter_over(const char *name, int n, nn_tensor **ts, const nn_tensor *shape_of, iter_call call,
                            const void *ctx, double tol) {
  nn_iter it, dit;
  nn_iter_init(&it, n, ts, shape_of->ndim, shape_of->size);
  for (int k = 0; k < n; k++) mirror(ts[k]);
  dit = it;
  for (int k = 0; k < n; k++) dit.data[k] = dev_at(ts[k], it.data[k]);
  CHECKF(call(&gpu, &dit, ctx) == 0, "%s: cuda: %s", name, nn_error());
  CHECKF(call(&nn_cpu_backend, &it, ctx) == 0, "%s: cpu: %s", name, nn_error());
  compare(name, ts[0], tol);
  unmirror_all();
}

static void check_iter(const char *name, int n, nn_tensor **ts, iter_call call, const void *ctx, double tol) {
  check_iter_over(name, n, ts, ts[0], call, ctx, tol);
}

typedef struct { int op, flag; nn_dtype compute; double a, b; } op_ctx;

static int call_binary(const nn_backend *b, const nn_iter *it, const void *c) {
  const op_ctx *o = c;
  return b->binary((nn_binary_op)o->op, o->compute, it);
}
static int call_binary_number(const nn_backend *b, const nn_iter *it, const void *c) {
  const op_ctx *o = c;
  return b->binary_number((nn_binary_op)o->op, o->compute, it, o->a, o->flag);
}
static int call_unary(const nn_backend *b, const nn_iter *it, const void *c) {
  return b->unary((nn_unary_op)((const op_ctx *)c)->op, it);
}
static int call_unary_backward(const nn_backend *b, const nn_iter *it, const void *c) {
  return b->unary_backward((nn_unary_op)((const op_ctx *)c)->op, it);
}
static int call_clamp(const nn_backend *b, const nn_iter *it, const void *c) {
  return b->clamp(it, ((const op_ctx *)c)->a, ((const op_ctx *)c)->b);
}
static int call_pointwise_grad(const nn_backend *b, const nn_iter *it, const void *c) {
  const op_ctx *o = c;
  return b->pointwise_grad((nn_pointwise_grad_op)o->op, it, o->a, o->b);
}
static int call_activation(const nn_backend *b, const nn_iter *it, const void *c) {
  const op_ctx *o = c;
  return b->activation((nn_activation_op)o->op, it, o->a, o->b);
}
static int call_activation_backward(const nn_backend *b, const nn_iter *it, const void *c) {
  const op_ctx *o = c;
  return b->activation_backward((nn_activation_op)o->op, it, o->a, o->b);
}
static int call_copy(const nn_backend *b, const nn_iter *it, const void *c) {
  (void)c;
  return b->copy(it);
}
static int call_fill(const nn_backend *b, const nn_iter *it, const void *c) {
  return b->fill(it, ((const op_ctx *)c)->a);
}
static int call_add_into(const nn_backend *b, const nn_iter *it, const void *c) {
  (void)c;
  return b->add_into(it);
}

static void test_elementwise(nn_dtype dt) {
  int64_t shape[3] = {3, 4, 5};
  for (int op = NN_ADD; op <= NN_NE; op++) {
    nn_tensor *a = randn(dt, 3, shape), *b = randn(dt, 2, SZ(4, 1));
    nn_tensor *at = OK(nn_transpose(a, 0, 2)); /* strided: (5, 4, 3) */
    nn_tensor *out = OK(nn_empty(op >= NN_GT ? NN_BOOL : dt, 3, at->size));
    nn_tensor *ts[3] = {out, at, b};
    op_ctx c = {op, 0, dt, 0, 0};
    check_iter("binary", 3, ts, call_binary, &c, 1);
    nn_tensor *o2 = OK(nn_empty(op >= NN_GT ? NN_BOOL : dt, 3, shape)), *t2[2] = {o2, a};
    op_ctx n1 = {op, 0, dt, 2, 0}, n2 = {op, 1, dt, 0.5, 0}, n3 = {op, 0, dt, 3.7, 0};
    check_iter("binary number", 2, t2, call_binary_number, &n1, 1);
    check_iter("binary number first", 2, t2, call_binary_number, &n2, 1);
    check_iter("binary number 3.7", 2, t2, call_binary_number, &n3, 1);
    nn_release(a), nn_release(b), nn_release(at), nn_release(out), nn_release(o2);
  }
  for (int op = NN_NEG; op <= NN_ROUND; op++) {
    nn_tensor *a = randn(dt, 3, shape), *at = OK(nn_transpose(a, 0, 1));
    nn_tensor *out = OK(nn_empty(dt, 3, at->size)), *ts[2] = {out, at};
    op_ctx c = {op, 0, dt, 0, 0};
    check_iter("unary", 2, ts, call_unary, &c, 1);
    nn_tensor *g = randn(dt, 3, shape), *gi = OK(nn_empty(dt, 3, shape)), *t3[3] = {gi, g, a};
    if (op != NN_LOG && op != NN_SQRT) check_iter("unary backward", 3, t3, call_unary_backward, &c, 1);
    nn_release(a), nn_release(at), nn_release(out), nn_release(g), nn_release(gi);
  }
  nn_tensor *a = randn(dt, 3, shape), *y = randn(dt, 3, shape), *g = randn(dt, 3, shape);
  nn_tensor *out = OK(nn_empty(dt, 3, shape)), *t2[2] = {out, a}, *t3[3] = {out, g, a}, *t4[4] = {out, g, a, y};
  op_ctx clamp = {0, 0, dt, -0.5, 0.7};
  check_iter("clamp", 2, t2, call_clamp, &clamp, 1);
  for (int op = NN_GRAD_POW_BASE; op <= NN_GRAD_CLAMP; op++) {
    op_ctx c = {op, 0, dt, op == NN_GRAD_CLAMP ? -0.5 : 1.5, 0.7};
    if (op <= NN_GRAD_MINIMUM) check_iter("pointwise grad", 4, t4, call_pointwise_grad, &c, 1);
    else check_iter("pointwise grad", 3, t3, call_pointwise_grad, &c, 1);
  }
  for (int op = 0; op < NN_ACT_COUNT; op++) {
    op_ctx c = {op, 0, dt, 0.5, 1.5};
    check_iter("activation", 2, t2, call_activation, &c, 1);
    check_iter("activation backward", 3, t3, call_activation_backward, &c, 1);
  }
  /* copies between dtypes, fills, adding into a broadcast gradient */
  nn_tensor *other = OK(nn_empty(dt == NN_FLOAT32 ? NN_FLOAT64 : NN_FLOAT32, 3, shape)), *tc[2] = {other, a};
  check_iter("copy", 2, tc, call_copy, NULL, 1);
  nn_tensor *ints = OK(nn_empty(NN_INT64, 3, shape)), *ti[2] = {ints, a};
  check_iter("copy to int64", 2, ti, call_copy, NULL, 1);
  op_ctx fill = {0, 0, dt, 0.25, 0};
  nn_tensor *at = OK(nn_transpose(out, 0, 2)), *tf[1] = {at};
  check_iter("fill", 1, tf, call_fill, &fill, 1);
  nn_tensor *row = randn(dt, 3, SZ(1, 4, 1)), *ta[2] = {row, a};
  check_iter_over("add_into broadcast", 2, ta, a, call_add_into, NULL, 1);
  nn_tensor *big = randn(dt, 1, SZ(20000)), *one = randn(dt, 1, SZ(1)), *tb[2] = {one, big};
  check_iter_over("add_into long", 2, tb, big, call_add_into, NULL, 1e3);
  nn_tensor *same = randn(dt, 3, shape), *ts[2] = {same, a};
  check_iter("add_into", 2, ts, call_add_into, NULL, 1);
  nn_release(a), nn_release(y), nn_release(g), nn_release(out), nn_release(other), nn_release(ints);
  nn_release(at), nn_release(row), nn_release(big), nn_release(one), nn_release(same);
}

static void test_integers(void) {
  nn_tensor *a = OK(nn_arange(-30, 30, 1, NN_INT64)), *b = OK(nn_arange(0, 60, 1, NN_INT64));
  nn_tensor *out = OK(nn_empty(NN_INT64, 1, SZ(60))), *ts[3] = {out, a, b};
  int ops[] = {NN_ADD, NN_SUB, NN_MUL, NN_POW, NN_MAXIMUM, NN_MINIMUM};
  for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++) {
    op_ctx c = {ops[i], 0, NN_INT64, 0, 0};
    check_iter("int64 binary", 3, ts, call_binary, &c, 0);
  }
  nn_release(a), nn_release(b), nn_release(out);
}

/* ---- ramp, rows ---------------------------------------------------------------- */
static void test_rows(nn_dtype dt) {
  nn_tensor *r = OK(nn_empty(dt, 1, SZ(1001)));
  mirror(r);
  CHECK(gpu.ramp(dt, dev_data(r), 1001, 500, -1, 0.002, 1) == 0);
  nn_cpu_backend.ramp(dt, nn_data(r), 1001, 500, -1, 0.002, 1);
  compare("ramp", r, 1);
  unmirror_all();
  int64_t rows_n[] = {7, 300};
  for (int i = 0; i < 2; i++) {
    nn_tensor *src = randn(dt, 2, SZ(rows_n[i], 33)), *dst = randn(dt, 1, SZ(33));
    mirror(src), mirror(dst);
    CHECK(gpu.add_rows(dt, rows_n[i], 33, dev_data(src), dev_data(dst)) == 0);
    nn_cpu_backend.add_rows(dt, rows_n[i], 33, nn_data(src), nn_data(dst));
    compare("add_rows", dst, 1e2);
    unmirror_all();
    nn_release(src), nn_release(dst);
  }
  nn_tensor *src = randn(dt, 2, SZ(10, 6)), *out = OK(nn_zeros(dt, 2, SZ(4, 6)));
  int64_t rows[4] = {9, 0, 3, 3};
  mirror(src), mirror(out);
  size_t row_bytes = 6 * nn_dtype_size(dt);
  CHECK(gpu.gather_rows(dev_data(out), dev_data(src), rows, 4, row_bytes) == 0);
  nn_cpu_backend.gather_rows(nn_data(out), nn_data(src), rows, 4, row_bytes);
  compare("gather_rows", out, 0);
  unmirror_all();
  nn_release(r), nn_release(src), nn_release(out);
}

/* ---- along dims ------------------------------------------------------------------- */
typedef int (*reduce_call)(const nn_backend *b, const nn_reduce_geom *r, const void *ctx);

static void check_lines(const char *name, int n, nn_tensor **ts, unsigned full, const nn_tensor *shape_of,
                        unsigned reduced, reduce_call call, const void *ctx, int written, double tol) {
  nn_reduce_geom r, dr;
  nn_reduce_init(&r, n, ts, full, shape_of->ndim, shape_of->size, reduced);
  for (int k = 0; k < n; k++) mirror(ts[k]);
  dr = r;
  for (int k = 0; k < n; k++) dr.it.data[k] = dev_at(ts[k], r.it.data[k]);
  CHECKF(call(&gpu, &dr, ctx) == 0, "%s: cuda: %s", name, nn_error());
  CHECKF(call(&nn_cpu_backend, &r, ctx) == 0, "%s: cpu: %s", name, nn_error());
  for (int k = 0; k < n; k++)
    if (written & (1 << k)) compare(name, ts[k], tol);
  unmirror_all();
}

static int call_reduce(const nn_backend *b, const nn_reduce_geom *r, const void *c) {
  const op_ctx *o = c;
  return b->reduce((nn_reduce_op)o->op, r, o->a);
}
static int call_softmax(const nn_backend *b, const nn_reduce_geom *r, const void *c) {
  const op_ctx *o = c;
  return o->flag ? b->softmax_backward(r, o->op) : b->softmax(r, o->op);
}
static int call_extreme(const nn_backend *b, const nn_reduce_geom *r, const void *c) {
  return b->extreme(((const op_ctx *)c)->op, r);
}
static int call_extreme_backward(const nn_backend *b, const nn_reduce_geom *r, const void *c) {
  (void)c;
  return b->extreme_backward(r);
}
static int call_extreme_all_backward(const nn_backend *b, const nn_reduce_geom *r, const void *c) {
  (void)c;
  return b->extreme_all_backward(r);
}
static int call_norm_backward(const nn_backend *b, const nn_reduce_geom *r, const void *c) {
  return b->norm_backward(((const op_ctx *)c)->a, r);
}

/* shape, the dim reduced (-1: all), for lines short and long, few and many */
static const struct {
  int ndim;
  int64_t size[3];
  int dim;
} line_cases[] = {
    {3, {4, 7, 5}, 1}, {2, {3, 3000}, 1}, {2, {3000, 3}, 0}, {2, {2000, 300}, 0},
    {1, {100000, 0, 0}, 0}, {3, {4, 7, 5}, -1}, {2, {300, 500}, -1},
};

static void test_lines(nn_dtype dt) {
  for (size_t c = 0; c < sizeof line_cases / sizeof line_cases[0]; c++) {
    int ndim = line_cases[c].ndim, dim = line_cases[c].dim;
    const int64_t *size = line_cases[c].size;
    unsigned reduced = dim < 0 ? (1u << ndim) - 1 : 1u << dim;
    int64_t kept[3];
    for (int d = 0; d < ndim; d++) kept[d] = (reduced >> d) & 1 ? 1 : size[d];
    nn_tensor *x = randn(dt, ndim, size), *out = OK(nn_empty(dt, ndim, kept));
    nn_tensor *t2[2] = {out, x};
    double ps[] = {2, 1, 3, 0, INFINITY, -INFINITY, 0.5};
    op_ctx sum = {NN_REDUCE_SUM, 0, dt, 0, 0}, mean = {NN_REDUCE_MEAN, 0, dt, 0, 0};
    check_lines("sum", 2, t2, 2, x, reduced, call_reduce, &sum, 1, 10);
    check_lines("mean", 2, t2, 2, x, reduced, call_reduce, &mean, 1, 10);
    for (size_t i = 0; i < sizeof ps / sizeof ps[0]; i++) {
      op_ctx norm = {NN_REDUCE_NORM, 0, dt, ps[i], 0};
      check_lines("norm", 2, t2, 2, x, reduced, call_reduce, &norm, 1, 10);
    }
    /* max and min: values, indices, and both backwards */
    nn_tensor *idx = OK(nn_empty(NN_INT64, ndim, kept)), *t3[3] = {out, x, idx};
    for (int want_max = 0; want_max < 2; want_max++) {
      op_ctx e = {want_max, 0, dt, 0, 0};
      check_lines("extreme", 3, t3, 2, x, reduced, call_extreme, &e, 1 | 4, 0);
    }
    nn_tensor *g = randn(dt, ndim, kept), *gi = OK(nn_zeros(dt, ndim, size));
    if (dim >= 0) {
      nn_tensor *tb[3] = {gi, g, idx};
      nn_reduce_geom r;
      nn_tensor *te[3] = {out, x, idx};
      nn_reduce_init(&r, 3, te, 2, ndim, size, reduced);
      nn_cpu_backend.extreme(1, &r); /* the indices the backward scatters to */
      check_lines("extreme backward", 3, tb, 1, x, reduced, call_extreme_backward, NULL, 1, 0);
    }
    nn_tensor *t4[4] = {gi, x, out, g};
    check_lines("extreme all backward", 4, t4, 3, x, reduced, call_extreme_all_backward, NULL, 1, 1);
    double nps[] = {2, INFINITY, 3};
    for (int i = 0; i < 3; i++) {
      op_ctx norm = {NN_REDUCE_NORM, 0, dt, nps[i], 0};
      nn_reduce_geom r;
      nn_reduce_init(&r, 2, t2, 2, ndim, size, reduced);
      nn_cpu_backend.reduce(NN_REDUCE_NORM, &r, nps[i]); /* out holds the norm */
      check_lines("norm backward", 4, t4, 3, x, reduced, call_norm_backward, &norm, 1, 10);
    }
    if (dim >= 0) { /* softmax along a dim */
      nn_tensor *y = OK(nn_empty(dt, ndim, size)), *ty[2] = {y, x};
      nn_tensor *gy = randn(dt, ndim, size), *tg[3] = {gi, gy, y};
      for (int log_form = 0; log_form < 2; log_form++) {
        op_ctx f = {log_form, 0, dt, 0, 0}, b = {log_form, 1, dt, 0, 0};
        check_lines("softmax", 2, ty, 3, x, reduced, call_softmax, &f, 1, 10);
        nn_reduce_geom r;
        nn_reduce_init(&r, 2, ty, 3, ndim, size, reduced);
        nn_cpu_backend.softmax(&r, log_form);
        check_lines("softmax backward", 3, tg, 7, x, reduced, call_softmax, &b, 1, 10);
      }
      nn_release(y), nn_release(gy);
    }
    nn_release(x), nn_release(out), nn_release(idx), nn_release(g), nn_release(gi);
  }
  /* integers sum exactly */
  nn_tensor *ints = OK(nn_arange(0, 5000, 1, NN_INT64)), *isum = OK(nn_empty(NN_INT64, 1, SZ(1)));
  nn_tensor *ti[2] = {isum, ints};
  op_ctx sum = {NN_REDUCE_SUM, 0, NN_INT64, 0, 0};
  check_lines("int64 sum", 2, ti, 2, ints, 1, call_reduce, &sum, 1, 0);
  nn_release(ints), nn_release(isum);
}

/* ---- prelu, gemm -------------------------------------------------------------------- */
static void test_prelu(nn_dtype dt) {
  nn_tensor *x = randn(dt, 3, SZ(4, 3, 5)), *w = randn(dt, 1, SZ(3)), *g = randn(dt, 3, SZ(4, 3, 5));
  nn_tensor *out = OK(nn_empty(dt, 3, SZ(4, 3, 5))), *gx = OK(nn_empty(dt, 3, SZ(4, 3, 5)));
  nn_tensor *gw = OK(nn_empty(dt, 1, SZ(3)));
  mirror(x), mirror(w), mirror(g), mirror(out), mirror(gx), mirror(gw);
  nn_prelu_args h = {dt, 60, 3, 5, nn_data(x), nn_data(w), nn_data(g), nn_data(out), nn_data(gx), nn_data(gw)};
  nn_prelu_args d = {dt, 60, 3, 5, dev_data(x), dev_data(w), dev_data(g), dev_data(out), dev_data(gx), dev_data(gw)};
  CHECK(gpu.prelu(&d) == 0 && gpu.prelu_backward(&d) == 0);
  nn_cpu_backend.prelu(&h), nn_cpu_backend.prelu_backward(&h);
  compare("prelu", out, 1), compare("prelu gx", gx, 1), compare("prelu gw", gw, 10);
  unmirror_all();
  nn_release(x), nn_release(w), nn_release(g), nn_release(out), nn_release(gx), nn_release(gw);
}

static void check_gemm(const char *name, nn_gemm_args h, nn_tensor *a, nn_tensor *b, nn_tensor *c,
                       nn_tensor *bias) {
  mirror(a), mirror(b), mirror(c);
  if (bias) mirror(bias);
  nn_gemm_args d = h;
  d.a.data = dev_at(a, h.a.data), d.b.data = dev_at(b, h.b.data), d.c.data = dev_at(c, h.c.data);
  d.bias = bias ? dev_data(bias) : NULL;
  CHECKF(gpu.gemm(&d) == 0, "%s: cuda: %s", name, nn_error());
  CHECKF(nn_cpu_backend.gemm(&h) == 0, "%s: cpu: %s", name, nn_error());
  compare(name, c, 100);
  unmirror_all();
}

static void test_gemm(nn_dtype dt) {
  int64_t m = 37, k = 53, n = 29;
  nn_tensor *a = randn(dt, 3, SZ(3, m, k)), *b = randn(dt, 3, SZ(3, k, n)), *c = randn(dt, 3, SZ(3, m, n));
  nn_tensor *bias = randn(dt, 1, SZ(n)), *wide = randn(dt, 1, SZ(3 * m * k * 2));
  nn_gemm_args g = {dt, 1, m, n, k, 1, 0, {nn_data(a), 0, k, 1}, {nn_data(b), 0, n, 1}, {nn_data(c), 0, n, 1}, NULL};
  check_gemm("gemm", g, a, b, c, NULL);
  g.alpha = 0.5, g.beta = 2;
  check_gemm("gemm alpha beta", g, a, b, c, NULL);
  nn_gemm_args t = g; /* a read transposed: a's storage as k x m */
  t.a.row_stride = 1, t.a.col_stride = m, t.beta = 0;
  check_gemm("gemm transposed a", t, a, b, c, NULL);
  nn_gemm_args s = g; /* neither stride 1: packed */
  s.a.data = nn_data(wide), s.a.row_stride = 2 * k, s.a.col_stride = 2, s.beta = 0;
  check_gemm("gemm packed a", s, wide, b, c, NULL);
  nn_gemm_args batched = {dt, 3, m, n, k, 1, 0, {nn_data(a), m * k, k, 1}, {nn_data(b), 0, n, 1},
                          {nn_data(c), m * n, n, 1}, NULL};
  check_gemm("gemm batched, b broadcast", batched, a, b, c, NULL);
  batched.bias = nn_data(bias);
  check_gemm("gemm batched with bias", batched, a, b, c, bias);
  nn_gemm_args empty = g;
  empty.k = 0, empty.beta = 0;
  check_gemm("gemm k = 0", empty, a, b, c, NULL);
  nn_release(a), nn_release(b), nn_release(c), nn_release(bias), nn_release(wide);
}

/* ---- losses ---------------------------------------------------------------------- */
static void test_losses(nn_dtype dt) {
  int64_t n = 5000;
  for (int kind = NN_LOSS_MSE; kind <= NN_LOSS_BCE_WITH_LOGITS; kind++) {
    for (int reduced = 0; reduced < 2; reduced++) {
      nn_tensor *x = OK(nn_rand(dt, 1, SZ(n))), *y = OK(nn_rand(dt, 1, SZ(n)));
      nn_tensor *w = OK(nn_rand(dt, 1, SZ(n))), *p = OK(nn_rand(dt, 1, SZ(n)));
      nn_tensor *out = OK(nn_empty(dt, 1, SZ(reduced ? 1 : n))), *g = randn(dt, 1, SZ(reduced ? 1 : n));
      nn_tensor *gx = OK(nn_empty(dt, 1, SZ(n))), *gy = OK(nn_empty(dt, 1, SZ(n)));
      int weighted = kind == NN_LOSS_BCE || kind == NN_LOSS_BCE_WITH_LOGITS;
      nn_tensor *all[8] = {x, y, w, p, out, g, gx, gy};
      for (int i = 0; i < 8; i++) mirror(all[i]);
      nn_loss_args h = {(nn_loss_kind)kind, dt, n, nn_data(x), nn_data(y), weighted ? nn_data(w) : NULL,
                        kind == NN_LOSS_BCE_WITH_LOGITS ? nn_data(p) : NULL, 0.7, reduced, reduced ? (double)n : 1,
                        nn_data(out), nn_data(g), nn_data(gx), kind == NN_LOSS_BCE ? NULL : nn_data(gy)};
      nn_loss_args d = h;
      d.x = dev_data(x), d.y = dev_data(y), d.weight = h.weight ? dev_data(w) : NULL;
      d.pos_weight = h.pos_weight ? dev_data(p) : NULL, d.out = dev_data(out), d.g = dev_data(g);
      d.gx = dev_data(gx), d.gy = h.gy ? dev_data(gy) : NULL;
      CHECKF(gpu.loss(&d) == 0 && gpu.loss_backward(&d) == 0, "loss %d: %s", kind, nn_error());
      nn_cpu_backend.loss(&h), nn_cpu_backend.loss_backward(&h);
      compare("loss", out, 10), compare("loss gx", gx, 1), compare("loss gy", gy, 1);
      if (kind == NN_LOSS_BCE) { /* an input outside [0, 1], named as the CPU names it */
        uint64_t bad = 0;
        nn_store(dt, &bad, 0, 1.5);
        CHECK(gpu.from_host((char *)d.x + 7 * nn_dtype_size(dt), &bad, nn_dtype_size(dt)) == 0);
        CHECK_STATUS_FAILS(gpu.loss(&d), "element 8 is 1.5");
      }
      unmirror_all();
      for (int i = 0; i < 8; i++) nn_release(all[i]);
    }
  }
}

static void test_class_losses(nn_dtype dt) {
  int64_t outer = 6, classes = 5, inner = 3, positions = outer * inner;
  for (int variant = 0; variant < 6; variant++) {
    int probabilities = variant == 5, weighted = variant & 1, from_logits = variant != 4;
    int reduction = variant == 2 ? NN_REDUCTION_NONE : (variant == 3 ? NN_REDUCTION_SUM : NN_REDUCTION_MEAN);
    nn_tensor *x = randn(dt, 3, SZ(outer, classes, inner));
    nn_tensor *t = probabilities ? OK(nn_rand(dt, 3, SZ(outer, classes, inner))) : OK(nn_empty(NN_INT64, 1, SZ(positions)));
    if (!probabilities)
      for (int64_t i = 0; i < positions; i++) ((int64_t *)nn_data(t))[i] = i == 4 ? -100 : (i * 7) % classes;
    nn_tensor *aux = OK(nn_empty(NN_FLOAT64, 1, SZ(classes + positions + 1)));
    for (int64_t c = 0; c < classes; c++) ((double *)nn_data(aux))[c] = 0.5 + c;
    int64_t out_n = reduction == NN_REDUCTION_NONE ? positions : 1;
    nn_tensor *out = OK(nn_empty(dt, 1, SZ(out_n))), *g = randn(dt, 1, SZ(out_n));
    nn_tensor *gx = OK(nn_zeros(dt, 3, SZ(outer, classes, inner))), *gy = OK(nn_zeros(dt, 3, SZ(outer, classes, inner)));
    nn_tensor *all[7] = {x, t, aux, out, g, gx, gy};
    for (int i = 0; i < 7; i++) mirror(all[i]);
    double *p = nn_data(aux);
    nn_class_loss_args h = {"cross_entropy", dt, outer, classes, inner, nn_data(x), nn_data(t), t->dtype,
                            probabilities, from_logits, weighted ? p : NULL, from_logits ? p + classes : NULL,
                            p + classes + positions, -100, 0, variant == 1 ? 0.1 : 0, reduction, nn_data(out),
                            nn_data(g), nn_data(gx), probabilities ? nn_data(gy) : NULL};
    nn_class_loss_args d = h;
    d.x = dev_data(x), d.target = dev_data(t), d.weight = h.weight ? dev_at(aux, h.weight) : NULL;
    d.lse = h.lse ? dev_at(aux, h.lse) : NULL, d.total_weight = dev_at(aux, h.total_weight);
    d.out = dev_data(out), d.g = dev_data(g), d.gx = dev_data(gx), d.gy = h.gy ? dev_data(gy) : NULL;
    CHECKF(gpu.class_loss(&d) == 0 && gpu.class_loss_backward(&d) == 0, "class loss %d: %s", variant, nn_error());
    nn_cpu_backend.class_loss(&h), nn_cpu_backend.class_loss_backward(&h);
    compare("class loss", out, 10), compare("class loss aux", aux, 10);
    compare("class loss gx", gx, 10), compare("class loss gy", gy, 10);
    if (!probabilities) { /* a label past the classes, named as the CPU names it */
      int64_t bad = 9;
      CHECK(gpu.from_host((int64_t *)d.target + 11, &bad, sizeof bad) == 0);
      CHECK_STATUS_FAILS(gpu.class_loss(&d), "target element 12 is class 9, outside the classes 0..4");
    }
    unmirror_all();
    for (int i = 0; i < 7; i++) nn_release(all[i]);
  }
}

/* ---- optimizers ---------------------------------------------------------------------- */
static void test_optimizers(nn_dtype dt) {
  int64_t n = 3001;
  for (int which = 0; which < 12; which++) {
    nn_tensor *p = randn(dt, 1, SZ(n)), *g = randn(dt, 1, SZ(n)), *b1 = randn(dt, 1, SZ(n));
    nn_tensor *b2 = OK(nn_rand(dt, 1, SZ(n))), *b3 = OK(nn_rand(dt, 1, SZ(n)));
    nn_tensor *all[5] = {p, g, b1, b2, b3};
    for (int i = 0; i < 5; i++) mirror(all[i]);
    void *hp = nn_data(p), *hg = nn_data(g), *h1 = nn_data(b1), *h2 = nn_data(b2), *h3 = nn_data(b3);
    void *dp = dev_data(p), *dg = dev_data(g), *d1 = dev_data(b1), *d2 = dev_data(b2), *d3 = dev_data(b3);
    int ok = 1;
    if (which == 0) {
      nn_sgd_options o = {0.1, 0.9, 0.1, 0.01, 1, 0};
      ok = gpu.sgd_step(dt, n, dp, dg, d1, 0, &o) == 0;
      nn_cpu_backend.sgd_step(dt, n, hp, hg, h1, 0, &o);
    } else if (which == 1) {
      nn_sgd_options o = {0.1, 0, 0, 0, 0, 1};
      ok = gpu.sgd_step(dt, n, dp, dg, NULL, 1, &o) == 0;
      nn_cpu_backend.sgd_step(dt, n, hp, hg, NULL, 1, &o);
    } else if (which <= 3) {
      /* 2: Adam with amsgrad and weight decay; 3: AdamW */
      nn_adam_options o = {1e-3, 0.9, 0.999, 1e-8, which == 2 ? 0.01 : 0.1, which == 2, 0, which == 3};
      ok = gpu.adam_step(dt, n, dp, dg, d1, d2, which == 2 ? d3 : NULL, 5, &o) == 0;
      nn_cpu_backend.adam_step(dt, n, hp, hg, h1, h2, which == 2 ? h3 : NULL, 5, &o);
    } else if (which == 4) {
      nn_rmsprop_options o = {1e-2, 0.99, 1e-8, 0.01, 0.9, 1, 0};
      ok = gpu.rmsprop_step(dt, n, dp, dg, d2, d1, d3, &o) == 0;
      nn_cpu_backend.rmsprop_step(dt, n, hp, hg, h2, h1, h3, &o);
    } else if (which == 5) {
      nn_adagrad_options o = {1e-2, 0.01, 0.01, 0, 1e-10, 0};
      ok = gpu.adagrad_step(dt, n, dp, dg, d2, 3, &o) == 0;
      nn_cpu_backend.adagrad_step(dt, n, hp, hg, h2, 3, &o);
    } else if (which == 6) { /* issue 13's: the buffers that must be >= 0 from rand */
      nn_adadelta_options o = {0.5, 0.9, 1e-6, 0.01, 1};
      ok = gpu.adadelta_step(dt, n, dp, dg, d2, d3, &o) == 0;
      nn_cpu_backend.adadelta_step(dt, n, hp, hg, h2, h3, &o);
    } else if (which == 7) {
      nn_adamax_options o = {2e-3, 0.9, 0.999, 1e-8, 0.01, 0};
      ok = gpu.adamax_step(dt, n, dp, dg, d1, d2, 4, &o) == 0;
      nn_cpu_backend.adamax_step(dt, n, hp, hg, h1, h2, 4, &o);
    } else if (which == 8) {
      nn_nadam_options o = {2e-3, 0.9, 0.999, 1e-8, 0.01, 4e-3};
      ok = gpu.nadam_step(dt, n, dp, dg, d1, d2, 4, 0.5, &o) == 0;
      nn_cpu_backend.nadam_step(dt, n, hp, hg, h1, h2, 4, 0.5, &o);
    } else if (which == 9) {
      nn_radam_options o = {1e-3, 0.9, 0.999, 1e-8, 0.01};
      ok = gpu.radam_step(dt, n, dp, dg, d1, d2, 7, &o) == 0;
      nn_cpu_backend.radam_step(dt, n, hp, hg, h1, h2, 7, &o);
    } else if (which == 10) {
      nn_asgd_options o = {1e-2, 1e-4, 0.75, 1, 0.01, 0};
      ok = gpu.asgd_step(dt, n, dp, dg, d1, 9e-3, 0.5, &o) == 0;
      nn_cpu_backend.asgd_step(dt, n, hp, hg, h1, 9e-3, 0.5, &o);
    } else {
      nn_rprop_options o = {1e-2, 0.5, 1.2, 1e-6, 50, 1};
      ok = gpu.rprop_step(dt, n, dp, dg, d1, d2, &o) == 0;
      nn_cpu_backend.rprop_step(dt, n, hp, hg, h1, h2, &o);
    }
    CHECKF(ok, "optimizer %d: %s", which, nn_error());
    compare("optimizer param", p, 1), compare("optimizer buffer", b1, 1);
    compare("optimizer buffer 2", b2, 1), compare("optimizer buffer 3", b3, 1);
    unmirror_all();
    for (int i = 0; i < 5; i++) nn_release(all[i]);
  }
}

/* ---- random ---------------------------------------------------------------------------- */
static void test_random(nn_dtype dt) {
  int64_t n = 1 << 20;
  nn_tensor *a = OK(nn_empty(dt, 1, SZ(n))), *b = OK(nn_empty(dt, 1, SZ(n)));
  mirror(a), mirror(b);
  nn_strided sa = {dt, 1, {n}, {1}, dev_data(a)}, sb = {dt, 1, {n}, {1}, dev_data(b)};
  for (int normal = 0; normal < 2; normal++) {
    gpu.manual_seed(777);
    CHECK(normal ? gpu.normal(&sa, 0, 1) == 0 : gpu.uniform(&sa, 0, 1) == 0);
    gpu.manual_seed(777);
    CHECK(normal ? gpu.normal(&sb, 0, 1) == 0 : gpu.uniform(&sb, 0, 1) == 0);
    size_t bytes = (size_t)n * nn_dtype_size(dt);
    char *ha = malloc(bytes), *hb = malloc(bytes);
    CHECK(ha && hb && gpu.to_host(ha, sa.data, bytes) == 0 && gpu.to_host(hb, sb.data, bytes) == 0);
    CHECKF(memcmp(ha, hb, bytes) == 0, "random %d: the same seed gives other numbers", normal);
    double sum = 0, sq = 0;
    for (int64_t i = 0; i < n; i++) {
      double v = nn_load(dt, ha, i);
      sum += v, sq += v * v;
    }
    double mean = sum / (double)n, var = sq / (double)n - mean * mean;
    CHECKF(fabs(mean - (normal ? 0 : 0.5)) < 0.01 && fabs(var - (normal ? 1 : 1.0 / 12)) < 0.01,
           "random %d: mean %g variance %g", normal, mean, var);
    CHECK(normal ? gpu.normal(&sb, 0, 1) == 0 : gpu.uniform(&sb, 0, 1) == 0); /* the next call differs */
    CHECK(gpu.to_host(hb, sb.data, bytes) == 0 && memcmp(ha, hb, bytes) != 0);
    free(ha), free(hb);
  }
  unmirror_all();
  nn_release(a), nn_release(b);
}

int main(void) {
  int devices = 0;
  if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) {
    printf("cuda_kernels_check: no GPU here: skipped\n");
    return 77;
  }
  gpu.name = "cuda";
  gpu.alloc = gpu_alloc, gpu.free = gpu_free, gpu.to_host = gpu_to_host, gpu.from_host = gpu_from_host;
  nn_cuda_fill_kernels(&gpu);
  nn_manual_seed(1234);
  nn_dtype dtypes[2] = {NN_FLOAT32, NN_FLOAT64};
  for (int i = 0; i < 2; i++) {
    test_elementwise(dtypes[i]);
    test_rows(dtypes[i]);
    test_lines(dtypes[i]);
    test_prelu(dtypes[i]);
    test_gemm(dtypes[i]);
    test_losses(dtypes[i]);
    test_class_losses(dtypes[i]);
    test_optimizers(dtypes[i]);
    test_random(dtypes[i]);
  }
  test_integers();
  CHECKF(cudaDeviceSynchronize() == cudaSuccess, "a kernel faulted: %s", cudaGetErrorString(cudaGetLastError()));
  return check_finish();
}

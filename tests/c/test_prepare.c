/* test_prepare.c: the CPU's kernel calls prepared for a captured plan's
 * replay (nn_backend.gemm_prepare, cpu/gemm.c; iter_prepare,
 * cpu/prepare.c). A prepared call must give the entry's own bits, padding
 * untouched, for every product and iterator it accepts: products of every
 * small shape, both layouts of a and b, c = ab, c += ab, the general form
 * and a bias; sigmoid and relu forward and backward, and the zero fill.
 * The small layers' calls (XOR's: a batch of 4 through 2-10-10-10-1) must
 * be accepted, and what the entries do otherwise (strided, float64, large,
 * a fill of another value) declined. Likewise a bias gradient (add_rows)
 * and plain SGD's step, whose learning rate is set at each run. */
#include "check.h"
#include "cpu/cpu.h"
#include "cpu/vector.h"
#include "internal.h"

#include <stddef.h>
#include <stdint.h>

static float value(uint32_t *seed) {
  *seed = *seed * 1664525u + 1013904223u;
  return (float)(*seed >> 8) / 8388608.0f - 1.0f;
}

enum { FORM_WRITE, FORM_ADD, FORM_SCALE, FORM_BIAS, FORMS };

static int64_t prepared_products;

/* One product through gemm and through its prepared call; returns whether
   it was prepared. a is m x k (transposed when ta), b k x n (likewise). */
static int product(int64_t m, int64_t n, int64_t k, int ta, int tb, int form) {
  enum { CAP = 140 * 140 };
  static float a[CAP], b[CAP], bias[CAP], c_gemm[CAP], c_direct[CAP];
  int64_t c0 = n + 2, used = m * c0 + 8; /* c's rows, their padding and past the last */
  uint32_t seed = (uint32_t)(m * 131 + n * 17 + k * 7 + ta * 3 + tb + form * 11);
  if (!CHECK(m * k <= CAP && k * n <= CAP && used <= CAP)) return 0;
  for (int64_t i = 0; i < m * k; i++) a[i] = value(&seed);
  for (int64_t i = 0; i < k * n; i++) b[i] = value(&seed);
  for (int64_t i = 0; i < n; i++) bias[i] = value(&seed);
  for (int64_t i = 0; i < used; i++) c_gemm[i] = c_direct[i] = value(&seed);
  double alpha = form == FORM_SCALE ? 0.5 : 1, beta = form == FORM_ADD ? 1 : form == FORM_SCALE ? -2 : 0;
  nn_gemm_args g = {.dtype = NN_FLOAT32, .batch = 1, .m = m, .n = n, .k = k, .alpha = alpha, .beta = beta,
                    .a = {(char *)a, 0, ta ? 1 : k, ta ? m : 1},
                    .b = {(char *)b, 0, tb ? 1 : n, tb ? k : 1},
                    .c = {(char *)c_gemm, 0, c0, 1},
                    .bias = form == FORM_BIAS ? (const char *)bias : NULL};
  CHECK(nn_cpu_backend.gemm(&g) == 0);
  g.c.data = (char *)c_direct;
  nn_gemm_direct d;
  if (nn_cpu_backend.gemm_prepare(&g, &d) != 1) return 0;
  prepared_products++;
  d.run(&d);
  CHECKF(memcmp(c_gemm, c_direct, sizeof(float) * (size_t)used) == 0,
         "%lldx%lldx%lld (a%s, b%s, form %d): the prepared product differs from gemm's",
         (long long)m, (long long)n, (long long)k, ta ? "^T" : "", tb ? "^T" : "", form);
  return 1;
}

static void test_products_give_gemms_bits(void) {
  const int64_t ms[] = {1, 2, 3, 4, 5, 7, 10}, ns[] = {1, 3, 4, 10, 17}, ks[] = {1, 2, 4, 10, 33};
  for (size_t i = 0; i < sizeof ms / sizeof ms[0]; i++)
    for (size_t j = 0; j < sizeof ns / sizeof ns[0]; j++)
      for (size_t p = 0; p < sizeof ks / sizeof ks[0]; p++)
        for (int ta = 0; ta < 2; ta++)
          for (int tb = 0; tb < 2; tb++)
            for (int form = 0; form < FORMS; form++) product(ms[i], ns[j], ks[p], ta, tb, form);
  printf("%lld prepared products\n", (long long)prepared_products);
}

static void test_small_layers_are_prepared(void) {
  if (!nn_cpu_vector_best()->gemm) {
    printf("no kernels with fused multiply-adds here: nothing is prepared\n");
    CHECK(!product(4, 10, 2, 0, 1, FORM_BIAS));
    return;
  }
  CHECK(product(4, 10, 2, 0, 1, FORM_BIAS));  /* x w^T + b: the columns kernel reads the bias */
  CHECK(product(4, 1, 10, 0, 1, FORM_BIAS));  /* one output: rows over c set to the bias */
  CHECK(product(4, 10, 10, 0, 0, FORM_WRITE)); /* g w: the input's gradient */
  CHECK(product(10, 10, 4, 1, 0, FORM_ADD));  /* g^T x added into w.grad */
  CHECK(product(1, 5, 64, 0, 1, FORM_WRITE)); /* one row, long sums: dots */
  CHECK(!product(130, 130, 130, 0, 0, FORM_WRITE)); /* BLAS's */
}

/* One elementwise call through its entry and through its prepared call,
   operands of n float32 (stride apart), or float64 when wide. */
static int elementwise(size_t entry, int op, double x, int64_t n, int64_t stride, int wide) {
  enum { CAP = 512 };
  static double out_entry[CAP], out_direct[CAP], in1[CAP], in2[CAP];
  uint32_t seed = (uint32_t)(entry + (size_t)op * 7 + (size_t)n);
  float *f1 = (float *)in1, *f2 = (float *)in2;
  for (int i = 0; i < CAP; i++) in1[i] = in2[i] = out_entry[i] = out_direct[i] = 0;
  for (int i = 0; i < CAP; i++) f1[i] = 8 * value(&seed), f2[i] = value(&seed);
  nn_dtype dt = wide ? NN_FLOAT64 : NN_FLOAT32;
  nn_iter it = {.n = entry == offsetof(nn_backend, fill) ? 1 : entry == offsetof(nn_backend, unary) ? 2 : 3,
                .ndim = 1, .size = {n}};
  char *data[3] = {(char *)out_entry, (char *)in1, (char *)in2};
  for (int k = 0; k < it.n; k++) it.stride[0][k] = stride, it.data[k] = data[k], it.dtype[k] = dt;
  if (entry == offsetof(nn_backend, fill)) CHECK(nn_cpu_backend.fill(&it, x) == 0);
  else if (entry == offsetof(nn_backend, unary)) CHECK(nn_cpu_backend.unary((nn_unary_op)op, &it) == 0);
  else CHECK(nn_cpu_backend.unary_backward((nn_unary_op)op, &it) == 0);
  it.data[0] = (char *)out_direct;
  nn_iter_direct d;
  if (nn_cpu_backend.iter_prepare(entry, op, &it, x, &d) != 1) return 0;
  d.run(&d);
  CHECKF(memcmp(out_entry, out_direct, sizeof out_entry) == 0,
         "entry at %zu, op %d, %lld elements: the prepared call differs from the entry's", entry, op,
         (long long)n);
  return 1;
}

static void test_elementwise_calls_give_the_entries_bits(void) {
  const size_t unary = offsetof(nn_backend, unary), backward = offsetof(nn_backend, unary_backward);
  const size_t fill = offsetof(nn_backend, fill);
  const int64_t sizes[] = {1, 3, 4, 7, 8, 9, 16, 40, 100};
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
    int64_t n = sizes[i];
    CHECK(elementwise(unary, NN_SIGMOID, 0, n, 1, 0));
    CHECK(elementwise(unary, NN_RELU, 0, n, 1, 0));
    CHECK(elementwise(backward, NN_SIGMOID, 0, n, 1, 0));
    CHECK(elementwise(backward, NN_RELU, 0, n, 1, 0));
    CHECK(elementwise(fill, 0, 0.0, n, 1, 0));
    CHECK(elementwise(fill, 0, 0.0, n, 1, 1));
    CHECK(!elementwise(unary, NN_SIGMOID, 0, n, 2, 0)); /* strided */
    CHECK(!elementwise(unary, NN_SIGMOID, 0, n, 1, 1)); /* float64 */
    CHECK(!elementwise(unary, NN_EXP, 0, n, 1, 0));
    CHECK(!elementwise(fill, 0, 1.5, n, 1, 0));
    CHECK(!elementwise(fill, 0, -0.0, n, 1, 0));
  }
}

/* A bias gradient (add_rows) through its entry and through its prepared
   call, described by the iterator backend.h gives: rows of cols values
   into a row with padding after it; returns whether it was prepared. */
static int bias_gradient(int64_t rows, int64_t cols, int wide) {
  enum { CAP = 12 * 70 };
  static double src[CAP], dst_entry[80], dst_direct[80];
  uint32_t seed = (uint32_t)(rows * 97 + cols);
  float *f = (float *)src;
  if (!CHECK(rows * cols <= CAP && cols + 8 <= 80)) return 0;
  for (int i = 0; i < CAP; i++) src[i] = 0;
  for (int64_t i = 0; i < rows * cols; i++) {
    if (wide) src[i] = value(&seed);
    else f[i] = value(&seed);
  }
  for (int i = 0; i < 80; i++) dst_entry[i] = dst_direct[i] = value(&seed);
  nn_dtype dt = wide ? NN_FLOAT64 : NN_FLOAT32;
  CHECK(nn_cpu_backend.add_rows(dt, rows, cols, src, dst_entry) == 0);
  nn_iter it = {.n = 2, .ndim = 2, .size = {cols, rows}, .stride = {{1, 1}, {0, cols}},
                .data = {(char *)dst_direct, (char *)src}, .dtype = {dt, dt}};
  nn_iter_direct d;
  if (nn_cpu_backend.iter_prepare(offsetof(nn_backend, add_rows), 0, &it, 0, &d) != 1) return 0;
  d.run(&d);
  CHECKF(memcmp(dst_entry, dst_direct, sizeof dst_entry) == 0,
         "add_rows %lld x %lld: the prepared call differs from the entry's", (long long)rows,
         (long long)cols);
  return 1;
}

static void test_bias_gradients_give_the_entrys_bits(void) {
  const int64_t rows[] = {1, 2, 4, 5, 12}, cols[] = {1, 2, 7, 8, 9, 10, 16, 17, 31, 32, 33, 64, 70};
  for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++)
    for (size_t j = 0; j < sizeof cols / sizeof cols[0]; j++) {
      CHECK(bias_gradient(rows[i], cols[j], 0));
      CHECK(!bias_gradient(rows[i], cols[j], 1)); /* float64: the entry's */
    }
  /* an iterator of another layout is not add_rows */
  float s[8] = {0}, d[4] = {0};
  nn_iter_direct direct;
  nn_iter it = {.n = 2, .ndim = 2, .size = {4, 2}, .stride = {{1, 1}, {1, 4}},
                .data = {(char *)d, (char *)s}, .dtype = {NN_FLOAT32, NN_FLOAT32}};
  CHECK(nn_cpu_backend.iter_prepare(offsetof(nn_backend, add_rows), 0, &it, 0, &direct) == 0);
}

/* Plain SGD of n float32 values through the entry and through the kernel
   prepared for it, the learning rate set after preparing (as a list
   does at each step); returns whether it was prepared. */
static int sgd_plain(int64_t n, int64_t stride, int wide, double lr) {
  enum { CAP = 600 };
  static double p_entry[CAP], p_direct[CAP], grad[CAP];
  uint32_t seed = (uint32_t)(n * 13 + stride);
  float *pe = (float *)p_entry, *pd = (float *)p_direct, *g = (float *)grad;
  if (!CHECK(n * stride < CAP)) return 0;
  for (int i = 0; i < CAP; i++) p_entry[i] = p_direct[i] = grad[i] = 0;
  for (int64_t i = 0; i < CAP; i++) pe[i] = pd[i] = 4 * value(&seed), g[i] = value(&seed);
  nn_dtype dt = wide ? NN_FLOAT64 : NN_FLOAT32;
  nn_sgd_options o = {.lr = lr};
  CHECK(nn_cpu_backend.sgd_step(dt, n, pe, g, NULL, 0, &o) == 0);
  nn_iter it = {.n = 2, .ndim = 1, .size = {n}, .stride = {{stride, stride}},
                .data = {(char *)pd, (char *)g}, .dtype = {dt, dt}};
  nn_iter_direct d;
  if (nn_cpu_backend.iter_prepare(offsetof(nn_backend, sgd_step), 0, &it, 0.5, &d) != 1) return 0;
  d.x = lr;
  d.run(&d);
  CHECKF(memcmp(p_entry, p_direct, sizeof p_entry) == 0,
         "sgd_step of %lld values: the prepared call differs from the entry's", (long long)n);
  return 1;
}

static void test_sgd_steps_give_the_entrys_bits(void) {
  const int64_t sizes[] = {1, 3, 4, 7, 8, 9, 10, 16, 20, 33, 100, 257};
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
    CHECK(sgd_plain(sizes[i], 1, 0, 0.1));
    CHECK(sgd_plain(sizes[i], 1, 0, 1.0 / 3));
    CHECK(!sgd_plain(sizes[i], 1, 1, 0.1)); /* float64: the entry's */
    if (sizes[i] > 1) CHECK(!sgd_plain(sizes[i], 2, 0, 0.1)); /* not contiguous */
  }
}

int main(void) {
  test_products_give_gemms_bits();
  test_small_layers_are_prepared();
  test_elementwise_calls_give_the_entries_bits();
  test_bias_gradients_give_the_entrys_bits();
  test_sgd_steps_give_the_entrys_bits();
  return check_finish();
}

/* test_format.c: nn_format against PyTorch 1.13's str(tensor).
 *
 * Every expected string below was printed by PyTorch 1.13 itself
 * (/usr/bin/python3 -c 'import torch; print(repr(str(torch.tensor(...))))'),
 * with the PyTorch expression that made it beside each case, so a
 * difference is a difference from PyTorch, not from a guess at it. Only
 * the public API is used; grad_fn=<...> needs a real autograd graph and is
 * left to the Lua specs. */
#include "nn.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int passed, failed;

/* Formats t, compares with expected, and releases t. */
static void check(const char *name, nn_tensor *t, const char *expected) {
  if (!t) {
    printf("FAIL %s: could not build the tensor: %s\n", name, nn_error());
    failed++;
    return;
  }
  char *got = nn_format(t);
  if (!got) {
    printf("FAIL %s: nn_format returned NULL: %s\n", name, nn_error());
    failed++;
  } else if (strcmp(got, expected) != 0) {
    printf("FAIL %s\n--- expected\n%s\n--- got\n%s\n---\n", name, expected, got);
    failed++;
  } else {
    passed++;
  }
  free(got);
  nn_release(t);
}

/* A contiguous tensor holding values in row-major order. */
static nn_tensor *filled(nn_dtype dtype, int ndim, const int64_t *size, const double *values) {
  nn_tensor *t = nn_empty(dtype, ndim, size);
  if (!t) return NULL;
  for (int64_t i = 0; i < nn_numel(t); i++) nn_set_flat(t, i, values[i]);
  return t;
}

/* Element i holds i * mul / div, the way arange(n) * mul / div does. */
static nn_tensor *ramp(nn_dtype dtype, int ndim, const int64_t *size, double mul, double div) {
  nn_tensor *t = nn_empty(dtype, ndim, size);
  if (!t) return NULL;
  for (int64_t i = 0; i < nn_numel(t); i++) nn_set_flat(t, i, (double)i * mul / div);
  return t;
}

static nn_tensor *with_grad(nn_tensor *t) {
  if (t) t->requires_grad = 1;
  return t;
}

static void test_values(void) {
  /* torch.tensor([[1.1169e-04],[0.99983],[0.99984],[1.8530e-04]]) */
  check("4x1 scientific", filled(NN_FLOAT32, 2, (int64_t[]){4, 1},
                                 (double[]){1.1169e-04, 0.99983, 0.99984, 1.8530e-04}),
        "tensor([[1.1169e-04],\n"
        "        [9.9983e-01],\n"
        "        [9.9984e-01],\n"
        "        [1.8530e-04]])");
  /* torch.tensor([[1.,2.],[3.,4.]]) */
  check("2x2 whole", filled(NN_FLOAT32, 2, (int64_t[]){2, 2}, (double[]){1, 2, 3, 4}),
        "tensor([[1., 2.],\n"
        "        [3., 4.]])");
  /* torch.tensor([0.5,1.25]) */
  check("fixed", filled(NN_FLOAT32, 1, (int64_t[]){2}, (double[]){0.5, 1.25}),
        "tensor([0.5000, 1.2500])");
  /* torch.arange(12.).reshape(3,4)/7 */
  check("sevenths", ramp(NN_FLOAT32, 2, (int64_t[]){3, 4}, 1, 7),
        "tensor([[0.0000, 0.1429, 0.2857, 0.4286],\n"
        "        [0.5714, 0.7143, 0.8571, 1.0000],\n"
        "        [1.1429, 1.2857, 1.4286, 1.5714]])");
  /* torch.tensor([1e10, 1.0]) */
  check("whole beyond 1e8", filled(NN_FLOAT32, 1, (int64_t[]){2}, (double[]){1e10, 1.0}),
        "tensor([1.0000e+10, 1.0000e+00])");
  /* torch.tensor([1e9, 1.0, 0.0]) */
  check("whole spread over 1000", filled(NN_FLOAT32, 1, (int64_t[]){3}, (double[]){1e9, 1, 0}),
        "tensor([1.0000e+09, 1.0000e+00, 0.0000e+00])");
  /* torch.tensor([0.1, 100.]) */
  check("fixed padded", filled(NN_FLOAT32, 1, (int64_t[]){2}, (double[]){0.1, 100}),
        "tensor([  0.1000, 100.0000])");
  /* torch.tensor([1e-5, 0.5]) */
  check("below 1e-4", filled(NN_FLOAT32, 1, (int64_t[]){2}, (double[]){1e-5, 0.5}),
        "tensor([1.0000e-05, 5.0000e-01])");
  /* torch.zeros(3) */
  check("all zero", filled(NN_FLOAT32, 1, (int64_t[]){3}, (double[]){0, 0, 0}),
        "tensor([0., 0., 0.])");
  /* torch.tensor([-1.5, 2.25]) */
  check("negative", filled(NN_FLOAT32, 1, (int64_t[]){2}, (double[]){-1.5, 2.25}),
        "tensor([-1.5000,  2.2500])");
  /* torch.tensor([-0., 1.]) */
  check("negative zero", filled(NN_FLOAT32, 1, (int64_t[]){2}, (double[]){-0.0, 1}),
        "tensor([-0., 1.])");
}

static void test_nonfinite(void) {
  /* torch.tensor([nan, inf, -1]) */
  check("nan inf", filled(NN_FLOAT32, 1, (int64_t[]){3}, (double[]){NAN, INFINITY, -1}),
        "tensor([nan, inf, -1.])");
  /* torch.tensor([-nan, 1.5]): C would print "-nan", Python "nan" */
  check("negative nan", filled(NN_FLOAT32, 1, (int64_t[]){2}, (double[]){-NAN, 1.5}),
        "tensor([   nan, 1.5000])");
  /* torch.tensor([nan, -inf, inf]) */
  check("only non-finite", filled(NN_FLOAT32, 1, (int64_t[]){3}, (double[]){NAN, -INFINITY, INFINITY}),
        "tensor([nan, -inf, inf])");
  /* torch.tensor(nan) */
  check("0-dim nan", filled(NN_FLOAT32, 0, (int64_t[]){1}, (double[]){-NAN}), "tensor(nan)");
}

static void test_dtypes(void) {
  /* torch.tensor([1,2,3]) */
  check("int64", filled(NN_INT64, 1, (int64_t[]){3}, (double[]){1, 2, 3}), "tensor([1, 2, 3])");
  /* torch.tensor([-5, 12345678901234, 7, -4611686018427387904]) */
  check("int64 wide",
        filled(NN_INT64, 1, (int64_t[]){4}, (double[]){-5, 12345678901234.0, 7, -4611686018427387904.0}),
        "tensor([                  -5,       12345678901234,                    7,\n"
        "        -4611686018427387904])");
  /* torch.tensor([[1,-20],[300,4]]) */
  check("int64 2-D", filled(NN_INT64, 2, (int64_t[]){2, 2}, (double[]){1, -20, 300, 4}),
        "tensor([[  1, -20],\n"
        "        [300,   4]])");
  /* torch.tensor([True, False]) */
  check("bool", filled(NN_BOOL, 1, (int64_t[]){2}, (double[]){1, 0}), "tensor([ True, False])");
  /* torch.tensor([[True,False,True],[False,False,True]]) */
  check("bool 2-D", filled(NN_BOOL, 2, (int64_t[]){2, 3}, (double[]){1, 0, 1, 0, 0, 1}),
        "tensor([[ True, False,  True],\n"
        "        [False, False,  True]])");
  /* torch.tensor([1.,2.], dtype=torch.float64) */
  check("float64", filled(NN_FLOAT64, 1, (int64_t[]){2}, (double[]){1, 2}),
        "tensor([1., 2.], dtype=torch.float64)");
  /* torch.tensor([1/3, -2/3], dtype=torch.float64) */
  check("float64 fixed", filled(NN_FLOAT64, 1, (int64_t[]){2}, (double[]){1.0 / 3, -2.0 / 3}),
        "tensor([ 0.3333, -0.6667], dtype=torch.float64)");
  /* torch.tensor([1e-300, 1.], dtype=torch.float64): three-digit exponent */
  check("float64 tiny", filled(NN_FLOAT64, 1, (int64_t[]){2}, (double[]){1e-300, 1}),
        "tensor([1.0000e-300,  1.0000e+00], dtype=torch.float64)");
}

static void test_scalars_and_empty(void) {
  /* torch.tensor(3.5) */
  check("0-dim", filled(NN_FLOAT32, 0, (int64_t[]){1}, (double[]){3.5}), "tensor(3.5000)");
  /* torch.tensor(42) */
  check("0-dim int64", filled(NN_INT64, 0, (int64_t[]){1}, (double[]){42}), "tensor(42)");
  /* torch.tensor(False) */
  check("0-dim bool", filled(NN_BOOL, 0, (int64_t[]){1}, (double[]){0}), "tensor(False)");
  /* torch.zeros(0,3) */
  check("empty 0x3", nn_empty(NN_FLOAT32, 2, (int64_t[]){0, 3}), "tensor([], size=(0, 3))");
  /* torch.zeros(0) */
  check("empty 1-D", nn_empty(NN_FLOAT32, 1, (int64_t[]){0}), "tensor([])");
  /* torch.zeros(0, dtype=torch.int64): an empty tensor names even int64 */
  check("empty int64", nn_empty(NN_INT64, 1, (int64_t[]){0}), "tensor([], dtype=torch.int64)");
  /* torch.zeros(2,0, dtype=torch.bool) */
  check("empty bool 2x0", nn_empty(NN_BOOL, 2, (int64_t[]){2, 0}),
        "tensor([], size=(2, 0), dtype=torch.bool)");
}

static void test_layout(void) {
  /* torch.arange(30.).reshape(2,3,5) */
  check("3-D", ramp(NN_FLOAT32, 3, (int64_t[]){2, 3, 5}, 1, 1),
        "tensor([[[ 0.,  1.,  2.,  3.,  4.],\n"
        "         [ 5.,  6.,  7.,  8.,  9.],\n"
        "         [10., 11., 12., 13., 14.]],\n"
        "\n"
        "        [[15., 16., 17., 18., 19.],\n"
        "         [20., 21., 22., 23., 24.],\n"
        "         [25., 26., 27., 28., 29.]]])");
  /* torch.arange(16.).reshape(2,2,2,2) */
  check("4-D", ramp(NN_FLOAT32, 4, (int64_t[]){2, 2, 2, 2}, 1, 1),
        "tensor([[[[ 0.,  1.],\n"
        "          [ 2.,  3.]],\n"
        "\n"
        "         [[ 4.,  5.],\n"
        "          [ 6.,  7.]]],\n"
        "\n"
        "\n"
        "        [[[ 8.,  9.],\n"
        "          [10., 11.]],\n"
        "\n"
        "         [[12., 13.],\n"
        "          [14., 15.]]]])");
  /* torch.linspace(0,1,25) */
  check("row wrap", ramp(NN_FLOAT32, 1, (int64_t[]){25}, 1, 24),
        "tensor([0.0000, 0.0417, 0.0833, 0.1250, 0.1667, 0.2083, 0.2500, 0.2917, 0.3333,\n"
        "        0.3750, 0.4167, 0.4583, 0.5000, 0.5417, 0.5833, 0.6250, 0.6667, 0.7083,\n"
        "        0.7500, 0.7917, 0.8333, 0.8750, 0.9167, 0.9583, 1.0000])");
  /* torch.arange(100.) */
  check("row wrap whole", ramp(NN_FLOAT32, 1, (int64_t[]){100}, 1, 1),
        "tensor([ 0.,  1.,  2.,  3.,  4.,  5.,  6.,  7.,  8.,  9., 10., 11., 12., 13.,\n"
        "        14., 15., 16., 17., 18., 19., 20., 21., 22., 23., 24., 25., 26., 27.,\n"
        "        28., 29., 30., 31., 32., 33., 34., 35., 36., 37., 38., 39., 40., 41.,\n"
        "        42., 43., 44., 45., 46., 47., 48., 49., 50., 51., 52., 53., 54., 55.,\n"
        "        56., 57., 58., 59., 60., 61., 62., 63., 64., 65., 66., 67., 68., 69.,\n"
        "        70., 71., 72., 73., 74., 75., 76., 77., 78., 79., 80., 81., 82., 83.,\n"
        "        84., 85., 86., 87., 88., 89., 90., 91., 92., 93., 94., 95., 96., 97.,\n"
        "        98., 99.])");
  /* torch.arange(40.).reshape(2,20)*1e-5: nested rows wrap one column further in */
  check("nested row wrap", ramp(NN_FLOAT32, 2, (int64_t[]){2, 20}, 1e-5, 1),
        "tensor([[0.0000e+00, 1.0000e-05, 2.0000e-05, 3.0000e-05, 4.0000e-05, 5.0000e-05,\n"
        "         6.0000e-05, 7.0000e-05, 8.0000e-05, 9.0000e-05, 1.0000e-04, 1.1000e-04,\n"
        "         1.2000e-04, 1.3000e-04, 1.4000e-04, 1.5000e-04, 1.6000e-04, 1.7000e-04,\n"
        "         1.8000e-04, 1.9000e-04],\n"
        "        [2.0000e-04, 2.1000e-04, 2.2000e-04, 2.3000e-04, 2.4000e-04, 2.5000e-04,\n"
        "         2.6000e-04, 2.7000e-04, 2.8000e-04, 2.9000e-04, 3.0000e-04, 3.1000e-04,\n"
        "         3.2000e-04, 3.3000e-04, 3.4000e-04, 3.5000e-04, 3.6000e-04, 3.7000e-04,\n"
        "         3.8000e-04, 3.9000e-04]])");
}

static void test_views(void) {
  /* torch.arange(6.).reshape(2,3).t(): the strides are swapped by hand */
  nn_tensor *t = ramp(NN_FLOAT32, 2, (int64_t[]){2, 3}, 1, 1);
  if (t) {
    t->size[0] = 3;
    t->size[1] = 2;
    t->stride[0] = 1;
    t->stride[1] = 3;
  }
  check("transposed", t,
        "tensor([[0., 3.],\n"
        "        [1., 4.],\n"
        "        [2., 5.]])");
  /* torch.arange(6.).reshape(2,3)[:, 1:]: a view with an offset */
  t = ramp(NN_FLOAT32, 2, (int64_t[]){2, 3}, 1, 1);
  if (t) {
    t->size[1] = 2;
    t->offset = 1;
  }
  check("narrowed", t,
        "tensor([[1., 2.],\n"
        "        [4., 5.]])");
  /* torch.tensor([1.5, 2.]).expand(3, 2): a zero stride */
  t = filled(NN_FLOAT32, 1, (int64_t[]){2}, (double[]){1.5, 2});
  if (t) {
    t->ndim = 2;
    t->size[0] = 3;
    t->size[1] = 2;
    t->stride[0] = 0;
    t->stride[1] = 1;
  }
  check("expanded", t,
        "tensor([[1.5000, 2.0000],\n"
        "        [1.5000, 2.0000],\n"
        "        [1.5000, 2.0000]])");
}

static void test_summarised(void) {
  /* torch.arange(2000.): the formatter sees only 0,1,2,1997,1998,1999 */
  check("1-D summarised", ramp(NN_FLOAT32, 1, (int64_t[]){2000}, 1, 1),
        "tensor([0.0000e+00, 1.0000e+00, 2.0000e+00,  ..., 1.9970e+03, 1.9980e+03,\n"
        "        1.9990e+03])");
  /* torch.arange(2000) */
  check("int64 summarised", ramp(NN_INT64, 1, (int64_t[]){2000}, 1, 1),
        "tensor([   0,    1,    2,  ..., 1997, 1998, 1999])");
  /* torch.arange(2000) % 3 == 0 */
  nn_tensor *t = nn_empty(NN_BOOL, 1, (int64_t[]){2000});
  if (t)
    for (int64_t i = 0; i < 2000; i++) nn_set_flat(t, i, i % 3 == 0);
  check("bool summarised", t, "tensor([ True, False, False,  ..., False,  True, False])");
  /* torch.arange(3000.).reshape(1000,3) */
  check("2-D summarised rows", ramp(NN_FLOAT32, 2, (int64_t[]){1000, 3}, 1, 1),
        "tensor([[0.0000e+00, 1.0000e+00, 2.0000e+00],\n"
        "        [3.0000e+00, 4.0000e+00, 5.0000e+00],\n"
        "        [6.0000e+00, 7.0000e+00, 8.0000e+00],\n"
        "        ...,\n"
        "        [2.9910e+03, 2.9920e+03, 2.9930e+03],\n"
        "        [2.9940e+03, 2.9950e+03, 2.9960e+03],\n"
        "        [2.9970e+03, 2.9980e+03, 2.9990e+03]])");
  /* torch.arange(3000.).reshape(3,1000) */
  check("2-D summarised columns", ramp(NN_FLOAT32, 2, (int64_t[]){3, 1000}, 1, 1),
        "tensor([[0.0000e+00, 1.0000e+00, 2.0000e+00,  ..., 9.9700e+02, 9.9800e+02,\n"
        "         9.9900e+02],\n"
        "        [1.0000e+03, 1.0010e+03, 1.0020e+03,  ..., 1.9970e+03, 1.9980e+03,\n"
        "         1.9990e+03],\n"
        "        [2.0000e+03, 2.0010e+03, 2.0020e+03,  ..., 2.9970e+03, 2.9980e+03,\n"
        "         2.9990e+03]])");
  /* torch.arange(1331.).reshape(11,11,11)[:2]: the first two blocks of the
     summarised cube, checked as a prefix (the whole runs to 90 lines) */
  t = ramp(NN_FLOAT32, 3, (int64_t[]){11, 11, 11}, 1, 1);
  char *got = t ? nn_format(t) : NULL;
  const char *cube_head =
      "tensor([[[0.0000e+00, 1.0000e+00, 2.0000e+00,  ..., 8.0000e+00,\n"
      "          9.0000e+00, 1.0000e+01],\n"
      "         [1.1000e+01, 1.2000e+01, 1.3000e+01,  ..., 1.9000e+01,\n"
      "          2.0000e+01, 2.1000e+01],\n"
      "         [2.2000e+01, 2.3000e+01, 2.4000e+01,  ..., 3.0000e+01,\n"
      "          3.1000e+01, 3.2000e+01],\n"
      "         ...,\n"
      "         [8.8000e+01, 8.9000e+01, 9.0000e+01,  ..., 9.6000e+01,\n"
      "          9.7000e+01, 9.8000e+01],\n"
      "         [9.9000e+01, 1.0000e+02, 1.0100e+02,  ..., 1.0700e+02,\n"
      "          1.0800e+02, 1.0900e+02],\n"
      "         [1.1000e+02, 1.1100e+02, 1.1200e+02,  ..., 1.1800e+02,\n"
      "          1.1900e+02, 1.2000e+02]],\n"
      "\n"
      "        [[1.2100e+02, 1.2200e+02, 1.2300e+02,  ..., 1.2900e+02,\n";
  const char *cube_middle =
      "          3.6100e+02, 3.6200e+02]],\n"
      "\n"
      "        ...,\n"
      "\n"
      "        [[9.6800e+02, 9.6900e+02, 9.7000e+02,  ..., 9.7600e+02,\n";
  const char *cube_tail =
      "         [1.3200e+03, 1.3210e+03, 1.3220e+03,  ..., 1.3280e+03,\n"
      "          1.3290e+03, 1.3300e+03]]])";
  if (got && strncmp(got, cube_head, strlen(cube_head)) == 0 && strstr(got, cube_middle) &&
      strlen(got) >= strlen(cube_tail) &&
      strcmp(got + strlen(got) - strlen(cube_tail), cube_tail) == 0) {
    passed++;
  } else {
    printf("FAIL 3-D summarised\n--- got\n%s\n---\n", got ? got : nn_error());
    failed++;
  }
  free(got);
  nn_release(t);
}

static void test_suffixes(void) {
  /* torch.tensor([1.,2.], dtype=torch.float64, requires_grad=True) */
  check("float64 requires_grad", with_grad(filled(NN_FLOAT64, 1, (int64_t[]){2}, (double[]){1, 2})),
        "tensor([1., 2.], dtype=torch.float64, requires_grad=True)");
  /* torch.tensor(3.5, requires_grad=True) */
  check("0-dim requires_grad", with_grad(filled(NN_FLOAT32, 0, (int64_t[]){1}, (double[]){3.5})),
        "tensor(3.5000, requires_grad=True)");
  /* torch.linspace(0,1,25).requires_grad_(): no room on the last line */
  check("suffix on its own line", with_grad(ramp(NN_FLOAT32, 1, (int64_t[]){25}, 1, 24)),
        "tensor([0.0000, 0.0417, 0.0833, 0.1250, 0.1667, 0.2083, 0.2500, 0.2917, 0.3333,\n"
        "        0.3750, 0.4167, 0.4583, 0.5000, 0.5417, 0.5833, 0.6250, 0.6667, 0.7083,\n"
        "        0.7500, 0.7917, 0.8333, 0.8750, 0.9167, 0.9583, 1.0000],\n"
        "       requires_grad=True)");
  /* torch.linspace(0,1,25,dtype=torch.float64).requires_grad_() */
  check("two suffixes on their own line", with_grad(ramp(NN_FLOAT64, 1, (int64_t[]){25}, 1, 24)),
        "tensor([0.0000, 0.0417, 0.0833, 0.1250, 0.1667, 0.2083, 0.2500, 0.2917, 0.3333,\n"
        "        0.3750, 0.4167, 0.4583, 0.5000, 0.5417, 0.5833, 0.6250, 0.6667, 0.7083,\n"
        "        0.7500, 0.7917, 0.8333, 0.8750, 0.9167, 0.9583, 1.0000],\n"
        "       dtype=torch.float64, requires_grad=True)");
}

static void test_errors(void) {
  if (nn_format(NULL) == NULL) {
    passed++;
  } else {
    printf("FAIL NULL tensor: expected NULL\n");
    failed++;
  }
  /* A tensor claiming another device is refused with a message, never read. */
  nn_tensor *t = nn_zeros(NN_FLOAT32, 1, (int64_t[]){2});
  if (!t) {
    printf("FAIL device: could not build the tensor: %s\n", nn_error());
    failed++;
    return;
  }
  t->device = NN_CUDA;
  char *got = nn_format(t);
  if (got == NULL && strstr(nn_error(), "cuda is not available")) {
    passed++;
  } else {
    printf("FAIL device: expected NULL and an error, got %s\n", got ? got : "NULL");
    failed++;
  }
  free(got);
  t->device = NN_CPU;
  nn_release(t);
}

int main(void) {
  test_values();
  test_nonfinite();
  test_dtypes();
  test_scalars_and_empty();
  test_layout();
  test_views();
  test_summarised();
  test_suffixes();
  test_errors();
  printf("%d passed, %d failed\n", passed, failed);
  return failed ? 1 : 0;
}

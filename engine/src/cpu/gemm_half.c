/* cpu/gemm_half.c: the CPU's GEMM entry for every floating dtype. float32
 * and float64 go to gemm.c; float16 and bfloat16 operands are widened to
 * float32, multiplied by gemm.c's float32 product (OpenBLAS's sgemm) and
 * the result rounded once into c: a half product accumulates in float32,
 * as cuBLAS's half GEMMs with float32 compute do (PyTorch 1.13's CPU
 * accumulates some bfloat16 layouts in bfloat16, and refuses float16). */
#include "cpu/cpu.h"
#include "math/dtype.h"

#include <stdlib.h>

/* batch x rows x cols elements of mx (of dtype) as contiguous floats, or
   NULL (out of memory); mx NULL: uninitialised room */
static float *widened(nn_dtype dtype, const nn_matrix *mx, int64_t batch, int64_t rows, int64_t cols) {
  size_t count = (size_t)(batch * rows * cols);
  float *w = malloc((count ? count : 1) * sizeof *w);
  if (!w || !mx) return w;
  float *out = w;
  for (int64_t b = 0; b < batch; b++)
    for (int64_t i = 0; i < rows; i++)
      for (int64_t j = 0; j < cols; j++)
        *out++ = (float)nn_load(dtype, mx->data, b * mx->batch_stride + i * mx->row_stride + j * mx->col_stride);
  return w;
}

int nn_cpu_gemm_dtypes(const nn_gemm_args *g) {
  if (!nn_half_dtype(g->dtype)) return nn_cpu_gemm(g);
  if (g->m == 0 || g->n == 0 || g->batch == 0) return 0;
  int64_t B = g->batch, m = g->m, n = g->n, k = g->k;
  /* c is read only where beta counts it and no bias replaces it */
  int reads_c = !g->bias && g->beta != 0;
  nn_matrix bias_row = {(char *)g->bias, 0, 0, 1};
  float *a = widened(g->dtype, &g->a, B, m, k), *b = widened(g->dtype, &g->b, B, k, n);
  float *c = widened(g->dtype, reads_c ? &g->c : NULL, B, m, n);
  float *bias = g->bias ? widened(g->dtype, &bias_row, 1, 1, n) : NULL;
  int status = -1;
  if (!a || !b || !c || (g->bias && !bias)) {
    nn_error_set("matmul: out of memory");
    goto done;
  }
  nn_gemm_args f = *g;
  f.dtype = NN_FLOAT32;
  f.a = (nn_matrix){(char *)a, m * k, k, 1};
  f.b = (nn_matrix){(char *)b, k * n, n, 1};
  f.c = (nn_matrix){(char *)c, m * n, n, 1};
  f.bias = (const char *)bias;
  if ((status = nn_cpu_gemm(&f)) < 0) goto done;
  const float *from = c;
  for (int64_t bi = 0; bi < B; bi++)
    for (int64_t i = 0; i < m; i++)
      for (int64_t j = 0; j < n; j++)
        nn_store(g->dtype, g->c.data, bi * g->c.batch_stride + i * g->c.row_stride + j, *from++);
done:
  free(a), free(b), free(c), free(bias);
  return status;
}

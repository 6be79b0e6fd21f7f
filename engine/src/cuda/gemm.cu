/* cuda/gemm.cu: batched matrix products through cuBLAS (float16 and
 * bfloat16 through GemmEx, computing in float32).
 *
 * cuBLAS is column-major and the engine row-major: a row-major m x n C is
 * a column-major n x m C^T, and C^T = B^T A^T, so every product is handed
 * over with its operands swapped (B first) and m and n exchanged; a
 * row-major operand is then an untransposed column-major one with the
 * same leading dimension, a transposed view a transposed one. A layout
 * cuBLAS cannot read (neither dim of stride 1) is first packed into
 * scratch. One handle per device, made at the first product and kept. */
#include "cuda/common.cuh"

#include <cublas_v2.h>
#include <limits.h>

enum { MAX_DEVICES = 64 };
static cublasHandle_t handles[MAX_DEVICES];

static int cublas_status(const char *op, cublasStatus_t s) {
  if (s == CUBLAS_STATUS_SUCCESS) return 0;
  nn_error_set("%s: cuda: cuBLAS: %s", op, cublasGetStatusString(s));
  return -1;
}

static cublasHandle_t handle_for(const char *op) {
  int device = 0;
  if (nn_cuda_status(op, cudaGetDevice(&device)) < 0) return NULL;
  if (device < 0 || device >= MAX_DEVICES) {
    nn_error_set("%s: cuda: device %d is past the %d this backend serves", op, device, MAX_DEVICES);
    return NULL;
  }
  if (!handles[device]) {
    cublasHandle_t h;
    if (cublas_status(op, cublasCreate(&h)) < 0) return NULL;
    handles[device] = h;
  }
  if (cublas_status(op, cublasSetStream(handles[device], nn_cuda_stream())) < 0) return NULL;
  return handles[device];
}

/* How cuBLAS reads a rows x cols row-major operand with strides (s0, s1):
   as itself with leading dimension ld (trans 0) or as the transpose of a
   rows-major matrix (trans 1); 0 when it cannot. A dim of size 1 takes
   any stride. */
static int cublas_layout(int64_t rows, int64_t cols, int64_t s0, int64_t s1, int *trans, int64_t *ld) {
  if ((s1 == 1 || cols == 1) && (rows == 1 || s0 >= (cols > 1 ? cols : 1))) {
    *trans = 0;
    *ld = rows == 1 ? (cols > 1 ? cols : 1) : s0;
    return 1;
  }
  if ((s0 == 1 || rows == 1) && (cols == 1 || s1 >= (rows > 1 ? rows : 1))) {
    *trans = 1;
    *ld = cols == 1 ? (rows > 1 ? rows : 1) : s1;
    return 1;
  }
  return 0;
}

/* (packed, source) over (batch, rows, cols): a bit copy of one dtype */
struct pack_op {
  template <typename I> __device__ __forceinline__ void operator()(const nn_iter &it, const I *off) const {
    if (it.dtype[0] == NN_FLOAT32) ((uint32_t *)it.data[0])[off[0]] = ((const uint32_t *)it.data[1])[off[1]];
    else if (nn_half_dtype(it.dtype[0])) ((uint16_t *)it.data[0])[off[0]] = ((const uint16_t *)it.data[1])[off[1]];
    else ((uint64_t *)it.data[0])[off[0]] = ((const uint64_t *)it.data[1])[off[1]];
  }
};

/* An operand cuBLAS can read: m itself, or a contiguous copy in *scratch
   (whose size is *scratch_bytes), with its batch stride. */
static int readable(const nn_gemm_args *g, const nn_matrix *m, int64_t rows, int64_t cols, int *trans,
                    int64_t *ld, const char **data, int64_t *batch_stride, void **scratch,
                    size_t *scratch_bytes) {
  *scratch = NULL;
  *data = m->data;
  *batch_stride = m->batch_stride;
  if (cublas_layout(rows, cols, m->row_stride, m->col_stride, trans, ld)) return 0;
  size_t es = nn_element_size(g->dtype);
  *scratch_bytes = (size_t)(g->batch * rows * cols) * es;
  *scratch = nn_cuda_scratch("matmul", *scratch_bytes);
  if (!*scratch) return -1;
  nn_iter it;
  memset(&it, 0, sizeof it);
  it.n = 2, it.ndim = 3;
  it.size[0] = g->batch, it.size[1] = rows, it.size[2] = cols;
  it.stride[0][0] = rows * cols, it.stride[1][0] = cols, it.stride[2][0] = 1;
  it.stride[0][1] = m->batch_stride, it.stride[1][1] = m->row_stride, it.stride[2][1] = m->col_stride;
  it.data[0] = (char *)*scratch, it.data[1] = m->data;
  it.dtype[0] = it.dtype[1] = g->dtype;
  if (nn_cuda_run_iter<2>("matmul", &it, pack_op()) < 0) return -1;
  *data = (const char *)*scratch;
  *batch_stride = rows * cols;
  *trans = 0;
  *ld = cols > 1 ? cols : 1;
  return 0;
}

/* c's rows start as the bias (bias set), or c = beta c (an empty sum:
   beta == 0 overwrites whatever c held, NaN included). */
struct rows_op {
  nn_dtype dtype;
  const char *bias;
  double beta;
  template <typename I> __device__ __forceinline__ void operator()(const nn_iter &it, const I *off) const {
    if (nn_half_dtype(dtype)) { /* the bits of a half bias; beta c in float32, rounded */
      uint16_t *c = (uint16_t *)it.data[0] + off[0];
      if (bias) *c = ((const uint16_t *)bias)[off[1]];
      else nn_store(dtype, c, 0, beta == 0 ? 0.0 : (double)((float)nn_load(dtype, c, 0) * (float)beta));
    } else if (bias) {
      if (dtype == NN_FLOAT32) ((float *)it.data[0])[off[0]] = ((const float *)bias)[off[1]];
      else ((double *)it.data[0])[off[0]] = ((const double *)bias)[off[1]];
    } else if (dtype == NN_FLOAT32) {
      float *c = (float *)it.data[0] + off[0];
      *c = beta == 0 ? 0.0f : *c * (float)beta;
    } else {
      double *c = (double *)it.data[0] + off[0];
      *c = beta == 0 ? 0.0 : *c * beta;
    }
  }
};

static int set_rows(const nn_gemm_args *g, const char *bias, double beta) {
  nn_iter it;
  memset(&it, 0, sizeof it);
  it.n = 2, it.ndim = 3;
  it.size[0] = g->batch, it.size[1] = g->m, it.size[2] = g->n;
  it.stride[0][0] = g->c.batch_stride, it.stride[1][0] = g->c.row_stride, it.stride[2][0] = 1;
  it.stride[2][1] = 1; /* the bias: one row, for every row of every product */
  it.data[0] = g->c.data, it.data[1] = (char *)bias;
  it.dtype[0] = it.dtype[1] = g->dtype;
  return nn_cuda_run_iter<2>("matmul", &it, rows_op{g->dtype, bias, beta});
}

static int fits_int(int64_t v) { return v >= 0 && v <= INT_MAX; }

static int cuda_gemm(const nn_gemm_args *g) {
  static const char op[] = "matmul";
  if (g->m == 0 || g->n == 0 || g->batch == 0) return 0;
  double beta = g->beta;
  if (g->bias) {
    if (set_rows(g, g->bias, 1) < 0) return -1;
    beta = 1;
  }
  if (g->k == 0) return beta == 1 ? 0 : set_rows(g, NULL, beta);
  if (!fits_int(g->m) || !fits_int(g->n) || !fits_int(g->k) || !fits_int(g->batch) ||
      !fits_int(g->c.row_stride)) {
    nn_error_set("%s: cuda: a %lld x %lld by %lld x %lld product is past cuBLAS's 32-bit sizes", op,
                 (long long)g->m, (long long)g->k, (long long)g->k, (long long)g->n);
    return -1;
  }
  cublasHandle_t h = handle_for(op);
  if (!h) return -1;
  int ta, tb, status = -1;
  int64_t lda, ldb, sa, sb;
  const char *pa, *pb;
  void *scratch_a = NULL, *scratch_b = NULL;
  size_t bytes_a = 0, bytes_b = 0;
  if (readable(g, &g->a, g->m, g->k, &ta, &lda, &pa, &sa, &scratch_a, &bytes_a) < 0 ||
      readable(g, &g->b, g->k, g->n, &tb, &ldb, &pb, &sb, &scratch_b, &bytes_b) < 0)
    goto done;
  if (!fits_int(lda) || !fits_int(ldb)) {
    nn_error_set("%s: cuda: a leading dimension is past cuBLAS's 32-bit sizes", op);
    goto done;
  }
  {
    cublasOperation_t opa = ta ? CUBLAS_OP_T : CUBLAS_OP_N, opb = tb ? CUBLAS_OP_T : CUBLAS_OP_N;
    int m = (int)g->m, n = (int)g->n, k = (int)g->k, ia = (int)lda, ib = (int)ldb;
    int ic = g->m == 1 && g->c.row_stride < g->n ? n : (int)g->c.row_stride; /* one row: any stride */
    cublasStatus_t s;
    if (g->dtype == NN_FLOAT32) {
      float alpha = (float)g->alpha, fbeta = (float)beta;
      if (g->batch == 1)
        s = cublasSgemm(h, opb, opa, n, m, k, &alpha, (const float *)pb, ib, (const float *)pa, ia, &fbeta,
                        (float *)g->c.data, ic);
      else
        s = cublasSgemmStridedBatched(h, opb, opa, n, m, k, &alpha, (const float *)pb, ib, sb,
                                      (const float *)pa, ia, sa, &fbeta, (float *)g->c.data, ic,
                                      g->c.batch_stride, (int)g->batch);
    } else if (nn_half_dtype(g->dtype)) {
      /* half operands and result, float32 products and sums (PyTorch's
         CUDA half GEMMs): the result is rounded once */
      float alpha = (float)g->alpha, fbeta = (float)beta;
      cudaDataType t = g->dtype == NN_FLOAT16 ? CUDA_R_16F : CUDA_R_16BF;
      if (g->batch == 1)
        s = cublasGemmEx(h, opb, opa, n, m, k, &alpha, pb, t, ib, pa, t, ia, &fbeta, g->c.data, t, ic,
                         CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
      else
        s = cublasGemmStridedBatchedEx(h, opb, opa, n, m, k, &alpha, pb, t, ib, sb, pa, t, ia, sa, &fbeta,
                                       g->c.data, t, ic, g->c.batch_stride, (int)g->batch,
                                       CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
    } else {
      double alpha = g->alpha;
      if (g->batch == 1)
        s = cublasDgemm(h, opb, opa, n, m, k, &alpha, (const double *)pb, ib, (const double *)pa, ia, &beta,
                        (double *)g->c.data, ic);
      else
        s = cublasDgemmStridedBatched(h, opb, opa, n, m, k, &alpha, (const double *)pb, ib, sb,
                                      (const double *)pa, ia, sa, &beta, (double *)g->c.data, ic,
                                      g->c.batch_stride, (int)g->batch);
    }
    status = cublas_status(op, s);
  }
done:
  nn_cuda_scratch_release(scratch_a, bytes_a);
  nn_cuda_scratch_release(scratch_b, bytes_b);
  return status;
}

void nn_cuda_fill_gemm_kernels(nn_backend *b) { b->gemm = cuda_gemm; }

/* cuda/embedding.cu: the embedding kernels of backend.h (nn_embedding_args)
 * on the GPU, over the index rule and renorm scale of math/embedding.h that
 * the CPU's cpu/embedding.c uses too. An index out of range lowers a
 * device counter to its position (the first bad one is reported, as on
 * the CPU); the backward sums gradient rows with atomic adds, so rows
 * named several times may sum in another order than the CPU's. */
#include "cuda/common.cuh"
#include "math/embedding.h"

/* Checks the indices and, with out set, copies each row: element e of
   the result is row indices[e / dim], column e % dim. */
struct embedding_gather_op {
  nn_embedding_args a;
  unsigned long long *bad;
  __device__ __forceinline__ void operator()(int64_t e) const {
    int64_t i = e / a.dim, j = e - i * a.dim;
    int64_t row = nn_embedding_row(a.indices[i], a.base, a.num_embeddings);
    if (row < 0) {
      atomicMin(bad, (unsigned long long)i);
      return;
    }
    if (a.out) nn_store(a.dtype, a.out, e, nn_load(a.dtype, a.weight, row * a.dim + j));
  }
};

/* Indices only (a zero-width table still checks them): one thread each. */
struct embedding_check_op {
  nn_embedding_args a;
  unsigned long long *bad;
  __device__ __forceinline__ void operator()(int64_t i) const {
    if (nn_embedding_row(a.indices[i], a.base, a.num_embeddings) < 0) atomicMin(bad, (unsigned long long)i);
  }
};

/* Runs the checking kernel (and the copy, with a.out) and reports the
   first index out of range, as the CPU words it. */
static int gather_checked(const char *op, const nn_embedding_args *a, int copy) {
  unsigned long long *bad = nn_cuda_index_flag(op);
  if (!bad) return -1;
  nn_embedding_args b = *a;
  if (!copy) b.out = NULL;
  int status = b.dim > 0 && copy ? nn_cuda_run_each(op, b.n * b.dim, embedding_gather_op{b, bad})
                                 : nn_cuda_run_each(op, b.n, embedding_check_op{b, bad});
  int read;
  unsigned long long first = nn_cuda_index_flag_read(bad, &read);
  if (status < 0 || read < 0) return -1;
  if (first == NN_CUDA_NO_INDEX) return 0;
  int64_t index;
  if (nn_cuda_table->to_host(&index, a->indices + first, sizeof index) < 0) return -1;
  nn_error_set(NN_EMBEDDING_RANGE_MESSAGE, (long long)index, (long long)a->num_embeddings);
  return -1;
}

static int cuda_embedding(const nn_embedding_args *a) {
  if (a->n <= 0) return 0;
  return gather_checked("embedding", a, 1);
}

struct count_rows_op {
  nn_embedding_args a;
  unsigned long long *counts;
  __device__ __forceinline__ void operator()(int64_t i) const {
    atomicAdd(&counts[a.indices[i] - a.base], 1ULL);
  }
};

template <typename T>
struct add_grad_rows_op {
  nn_embedding_args a;
  const unsigned long long *counts;
  __device__ __forceinline__ void operator()(int64_t e) const {
    int64_t i = e / a.dim, j = e - i * a.dim;
    int64_t row = a.indices[i] - a.base;
    if (row == a.padding_idx) return;
    T g = ((const T *)a.grad)[e];
    if (counts) g = g * ((T)1 / (T)counts[row]);
    atomicAdd((T *)a.grad_weight + row * a.dim + j, g);
  }
};

static int cuda_embedding_backward(const nn_embedding_args *a) {
  static const char op[] = "embedding backward";
  if (a->dtype != NN_FLOAT32 && a->dtype != NN_FLOAT64) {
    nn_error_set("%s: only float32 and float64 are implemented on cuda", op);
    return -1;
  }
  size_t bytes = (size_t)(a->num_embeddings * a->dim) * nn_element_size(a->dtype);
  if (nn_cuda_status(op, cudaMemsetAsync(a->grad_weight, 0, bytes, nn_cuda_stream())) < 0) return -1;
  if (a->n <= 0) return 0;
  if (gather_checked(op, a, 0) < 0) return -1;
  if (a->dim <= 0) return 0;
  unsigned long long *counts = NULL;
  size_t count_bytes = (size_t)a->num_embeddings * sizeof *counts;
  if (a->scale_grad_by_freq) {
    if (!(counts = (unsigned long long *)nn_cuda_scratch(op, count_bytes))) return -1;
    if (nn_cuda_status(op, cudaMemsetAsync(counts, 0, count_bytes, nn_cuda_stream())) < 0 ||
        nn_cuda_run_each(op, a->n, count_rows_op{*a, counts}) < 0) {
      nn_cuda_scratch_release(counts, count_bytes);
      return -1;
    }
  }
  int status = a->dtype == NN_FLOAT32
                   ? nn_cuda_run_each(op, a->n * a->dim, add_grad_rows_op<float>{*a, counts})
                   : nn_cuda_run_each(op, a->n * a->dim, add_grad_rows_op<double>{*a, counts});
  nn_cuda_scratch_release(counts, count_bytes);
  return status;
}

/* One thread an index: the first occurrence of a row rescales it, later
   ones leave it (a row is scaled once however often it is named). */
struct renorm_op {
  nn_embedding_args a;
  __device__ __forceinline__ void operator()(int64_t i) const {
    int64_t index = a.indices[i];
    for (int64_t k = 0; k < i; k++)
      if (a.indices[k] == index) return;
    int64_t row = index - a.base;
    double acc = 0;
    for (int64_t j = 0; j < a.dim; j++) acc = nn_embedding_norm_add(acc, nn_load(a.dtype, a.weight, row * a.dim + j), a.norm_type);
    double scale = nn_embedding_renorm_scale(nn_embedding_norm_finish(acc, a.norm_type), a.max_norm);
    if (scale == 1.0) return;
    for (int64_t j = 0; j < a.dim; j++)
      nn_store(a.dtype, a.weight, row * a.dim + j, nn_load(a.dtype, a.weight, row * a.dim + j) * scale);
  }
};

static int cuda_embedding_renorm(const nn_embedding_args *a) {
  if (a->n <= 0) return 0;
  if (gather_checked("embedding", a, 0) < 0) return -1;
  return nn_cuda_run_each("embedding", a->n, renorm_op{*a});
}

void nn_cuda_fill_embedding_kernels(nn_backend *b) {
  b->embedding = cuda_embedding;
  b->embedding_backward = cuda_embedding_backward;
  b->embedding_renorm = cuda_embedding_renorm;
}

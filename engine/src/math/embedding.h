/* math/embedding.h: an embedding's index rule and its renorm scale, for the
 * CPU and CUDA kernels alike (PyTorch 1.13's embedding and
 * embedding_renorm_, aten/src/ATen/native/Embedding.cpp). */
#ifndef NN_MATH_EMBEDDING_H
#define NN_MATH_EMBEDDING_H

#include "math/common.h"

/* The message of an index outside the table, with the index as the user
   gave it and the number of rows. */
#define NN_EMBEDDING_RANGE_MESSAGE "embedding: index %lld is out of range for %lld embeddings"

/* The 0-based row of index (counting from base), or -1 when it names none:
   as in PyTorch, a negative index is out of range, not counted from the end. */
NN_HD static inline int64_t nn_embedding_row(int64_t index, int base, int64_t rows) {
  int64_t row = index - base;
  return row >= 0 && row < rows ? row : -1;
}

/* The factor a row of the given norm is multiplied by: max_norm / (norm +
   1e-7) where the norm exceeds max_norm (the 1e-7 is PyTorch's), else 1. */
NN_HD static inline double nn_embedding_renorm_scale(double norm, double max_norm) {
  return norm > max_norm ? max_norm / (norm + 1e-7) : 1.0;
}

/* The norm_type-norm of a row as torch.norm computes it: acc starts at 0,
   takes each element through nn_embedding_norm_add, and
   nn_embedding_norm_finish gives the norm (p = inf: the largest |x|; p = 0:
   the count of non-zeros). */
NN_HD static inline double nn_embedding_norm_add(double acc, double x, double p) {
  double a = fabs(x);
  if (isinf(p)) return a > acc ? a : acc;
  if (p == 1.0) return acc + a;
  if (p == 2.0) return acc + a * a;
  if (p == 0.0) return acc + (a != 0.0 ? 1.0 : 0.0);
  return acc + pow(a, p);
}

NN_HD static inline double nn_embedding_norm_finish(double acc, double p) {
  if (isinf(p) || p == 1.0 || p == 0.0) return acc;
  if (p == 2.0) return sqrt(acc);
  return pow(acc, 1.0 / p);
}

#endif

/* cpu/embedding.c: an embedding's row copies, the sum of its gradient rows
 * and the in-place renorm of the rows it names (backend.h's
 * nn_embedding_args; the index rule and the scale in math/embedding.h). */
#include "cpu/cpu.h"
#include "math/embedding.h"

#include <stdlib.h>
#include <string.h>

/* The first index out of range fails with the user's index. */
static int check_indices(const nn_embedding_args *a) {
  for (int64_t i = 0; i < a->n; i++) {
    if (nn_embedding_row(a->indices[i], a->base, a->num_embeddings) < 0) {
      nn_error_set(NN_EMBEDDING_RANGE_MESSAGE, (long long)a->indices[i], (long long)a->num_embeddings);
      return -1;
    }
  }
  return 0;
}

int nn_cpu_embedding(const nn_embedding_args *a) {
  if (check_indices(a) < 0) return -1;
  size_t row_bytes = (size_t)a->dim * nn_element_size(a->dtype);
  const char *w = a->weight;
  char *out = a->out;
  for (int64_t i = 0; i < a->n; i++) {
    int64_t row = a->indices[i] - a->base;
    memcpy(out + (size_t)i * row_bytes, w + (size_t)row * row_bytes, row_bytes);
  }
  return 0;
}

/* How often each row is named (scale_grad_by_freq), or NULL with an error. */
static int64_t *row_counts(const nn_embedding_args *a) {
  int64_t *counts = calloc((size_t)(a->num_embeddings > 0 ? a->num_embeddings : 1), sizeof *counts);
  if (!counts) {
    nn_error_set("embedding backward: out of memory");
    return NULL;
  }
  for (int64_t i = 0; i < a->n; i++) counts[a->indices[i] - a->base]++;
  return counts;
}

/* In index order, so that a row named twice sums its gradients in the
   order PyTorch's CPU loop does. */
int nn_cpu_embedding_backward(const nn_embedding_args *a) {
  if (check_indices(a) < 0) return -1;
  int64_t *counts = NULL;
  if (a->scale_grad_by_freq && !(counts = row_counts(a))) return -1;
  memset(a->grad_weight, 0, (size_t)(a->num_embeddings * a->dim) * nn_element_size(a->dtype));
  int64_t d = a->dim;
  for (int64_t i = 0; i < a->n; i++) {
    int64_t row = a->indices[i] - a->base;
    if (row == a->padding_idx) continue;
    if (a->dtype == NN_FLOAT32) {
      float *gw = (float *)a->grad_weight + row * d;
      const float *g = (const float *)a->grad + i * d;
      if (counts) {
        float scale = 1.0f / (float)counts[row];
        for (int64_t j = 0; j < d; j++) gw[j] += g[j] * scale;
      } else {
        for (int64_t j = 0; j < d; j++) gw[j] += g[j];
      }
    } else {
      double scale = counts ? 1.0 / (double)counts[row] : 1.0;
      for (int64_t j = 0; j < d; j++) {
        double v = nn_load(a->dtype, a->grad_weight, row * d + j) + nn_load(a->dtype, a->grad, i * d + j) * scale;
        nn_store(a->dtype, a->grad_weight, row * d + j, v);
      }
    }
  }
  free(counts);
  return 0;
}

int nn_cpu_embedding_renorm(const nn_embedding_args *a) {
  if (check_indices(a) < 0) return -1;
  unsigned char *done = calloc((size_t)(a->num_embeddings > 0 ? a->num_embeddings : 1), 1);
  if (!done) {
    nn_error_set("embedding: out of memory");
    return -1;
  }
  int64_t d = a->dim;
  for (int64_t i = 0; i < a->n; i++) {
    int64_t row = a->indices[i] - a->base;
    if (done[row]) continue;
    done[row] = 1;
    double acc = 0;
    for (int64_t j = 0; j < d; j++) acc = nn_embedding_norm_add(acc, nn_load(a->dtype, a->weight, row * d + j), a->norm_type);
    double scale = nn_embedding_renorm_scale(nn_embedding_norm_finish(acc, a->norm_type), a->max_norm);
    if (scale == 1.0) continue;
    for (int64_t j = 0; j < d; j++) {
      nn_store(a->dtype, a->weight, row * d + j, nn_load(a->dtype, a->weight, row * d + j) * scale);
    }
  }
  free(done);
  return 0;
}

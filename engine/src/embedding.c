/* embedding.c: looking rows of a weight up by index (PyTorch's
 * F.embedding, Torch7's LookupTable), its backward (the gradient rows
 * summed into the rows they came from) and the in-place renorm that
 * max_norm asks for. The kernels are backend.h's embedding entries. */
#include "internal.h"

#include <stddef.h>

static const char op_name[] = "embedding";

static nn_tensor *contiguous_untracked(nn_tensor *t) {
  nn_grad_guard guard = nn_no_grad_begin();
  nn_tensor *c = nn_contiguous(t);
  nn_no_grad_end(guard);
  return c;
}

static int check_weight(const nn_tensor *weight) {
  if (weight->ndim != 2) {
    char shape[96];
    nn_error_set("embedding: the weight must be 2-dimensional (num_embeddings, embedding_dim), got shape %s",
                 nn_shape_string(weight, shape, sizeof shape));
    return -1;
  }
  if (!nn_dtype_is_floating(weight->dtype)) {
    nn_error_set("embedding: the weight must be floating point, got %s", nn_dtype_name(weight->dtype));
    return -1;
  }
  return 0;
}

static int check_indices(const nn_tensor *weight, const nn_tensor *indices) {
  if (nn_check_same_device(op_name, weight, indices) < 0) return -1;
  if (indices->dtype != NN_INT64) {
    nn_error_set("embedding: indices must be an int64 tensor, got %s", nn_dtype_name(indices->dtype));
    return -1;
  }
  return 0;
}

static nn_embedding_args args_of(const nn_tensor *weight, const nn_tensor *indices, int base) {
  nn_embedding_args a = {0};
  a.dtype = weight->dtype;
  a.num_embeddings = weight->size[0];
  a.dim = weight->size[1];
  a.n = nn_numel(indices);
  a.indices = nn_data(indices);
  a.base = base;
  a.padding_idx = -1;
  return a;
}

nn_tensor *nn_embedding_backward(nn_tensor *grad, nn_tensor *indices, int64_t num_embeddings,
                                 int64_t padding_idx, int scale_grad_by_freq, int base) {
  const nn_backend *be = nn_dispatch(op_name, offsetof(nn_backend, embedding_backward), grad, indices, NULL);
  if (!be) return NULL;
  int64_t n = nn_numel(indices);
  int64_t dim = grad->ndim > 0 ? grad->size[grad->ndim - 1] : 0;
  if (grad->ndim != indices->ndim + 1 || nn_numel(grad) != n * dim) {
    nn_error_set("embedding backward: the gradient's shape does not match the indices'");
    return NULL;
  }
  nn_tensor *gc = contiguous_untracked(grad), *ic = gc ? nn_contiguous(indices) : NULL;
  int64_t size[2] = {num_embeddings, dim};
  nn_tensor *gw = ic ? nn_empty_like_shape(grad, grad->dtype, 2, size) : NULL;
  if (gw) {
    nn_embedding_args a = {0};
    a.dtype = grad->dtype;
    a.num_embeddings = num_embeddings;
    a.dim = dim;
    a.n = n;
    a.indices = nn_data(ic);
    a.base = base;
    a.padding_idx = padding_idx;
    a.scale_grad_by_freq = scale_grad_by_freq;
    a.grad = nn_data(gc);
    a.grad_weight = nn_data(gw);
    if (be->embedding_backward(&a) < 0) {
      nn_release(gw);
      gw = NULL;
    }
  }
  nn_release(gc), nn_release(ic);
  return gw;
}

/* saved[0]: the indices (contiguous); ints: num_embeddings, padding_idx,
   scale_grad_by_freq, base. */
/* The weight's gradient is linear in g: while a pass records, the kernel's
   result gets a node whose gradient selects the rows back, 0 at
   padding_idx (PyTorch's embedding_dense_double_backward, which leaves out
   scale_grad_by_freq's factors: "the first backward takes care of them").
   The node keeps the embedding node's ints and indices. */
static int embedding_double_backward(nn_node *node, nn_tensor *h, nn_tensor **gi) {
  nn_tensor *indices = node->saved[0];
  int64_t n = nn_numel(indices), column[2] = {n, 1}, base = node->ints[3];
  nn_tensor *flat = nn_reshape(indices, 1, &n), *keep = NULL;
  if (flat && node->ints[1] >= 0) { /* 0/1 per position, untracked */
    nn_grad_guard guard = nn_no_grad_begin();
    nn_tensor *other = nn_binary_scalar(NN_NE, flat, (double)(node->ints[1] + base), 0);
    nn_tensor *typed = other ? nn_to_dtype(other, h->dtype) : NULL;
    keep = typed ? nn_reshape(typed, 2, column) : NULL;
    nn_no_grad_end(guard);
    nn_release(other), nn_release(typed);
    if (!keep) {
      nn_release(flat);
      return -1;
    }
  }
  nn_tensor *rows = flat ? nn_index_select(h, 0, flat, (int)base) : NULL;
  nn_tensor *kept = rows && keep ? nn_binary(NN_MUL, rows, keep) : nn_retain(rows);
  gi[0] = kept ? nn_reshape(kept, node->ndim, node->size) : NULL;
  nn_release(flat), nn_release(keep), nn_release(rows), nn_release(kept);
  return gi[0] ? 0 : -1;
}

static int embedding_backward(nn_node *node, nn_tensor *g, nn_tensor **gi) {
  gi[0] = nn_embedding_backward(g, node->saved[0], node->ints[0], node->ints[1], (int)node->ints[2],
                                (int)node->ints[3]);
  if (!gi[0]) return -1;
  if (!nn_backward_records(g, NULL, NULL)) return 0;
  nn_node *twice = nn_node_attach(gi[0], "EmbeddingDenseBackwardBackward0", embedding_double_backward, 1, g,
                                  NULL, NULL);
  if (!twice) return -1;
  nn_node_save(twice, 0, node->saved[0]);
  memcpy(twice->ints, node->ints, sizeof twice->ints);
  twice->ndim = g->ndim;
  memcpy(twice->size, g->size, sizeof(int64_t) * (size_t)g->ndim);
  return 0;
}

nn_tensor *nn_embedding(nn_tensor *weight, nn_tensor *indices, int64_t padding_idx,
                        int scale_grad_by_freq, int base) {
  const nn_backend *be = nn_dispatch(op_name, offsetof(nn_backend, embedding), weight, indices, NULL);
  if (!be || check_weight(weight) < 0 || check_indices(weight, indices) < 0) return NULL;
  if (padding_idx < -1 || padding_idx >= weight->size[0]) {
    nn_error_set("embedding: padding_idx must name one of the %lld embeddings", (long long)weight->size[0]);
    return NULL;
  }
  if (indices->ndim + 1 > NN_MAX_DIMS) {
    nn_error_set("embedding: the indices have too many dimensions (%d)", indices->ndim);
    return NULL;
  }
  int64_t size[NN_MAX_DIMS];
  for (int i = 0; i < indices->ndim; i++) size[i] = indices->size[i];
  size[indices->ndim] = weight->size[1];
  nn_tensor *wc = contiguous_untracked(weight), *ic = wc ? nn_contiguous(indices) : NULL;
  nn_tensor *out = ic ? nn_empty_like_shape(weight, weight->dtype, indices->ndim + 1, size) : NULL;
  if (!out) goto fail;
  nn_embedding_args a = args_of(wc, ic, base);
  a.weight = nn_data(wc);
  a.out = nn_data(out);
  if (be->embedding(&a) < 0) goto fail;
  if (nn_needs_grad(weight, NULL, NULL)) {
    nn_node *node = nn_node_attach(out, "EmbeddingBackward0", embedding_backward, 1, weight, NULL, NULL);
    if (!node) goto fail;
    nn_node_save(node, 0, ic);
    node->ints[0] = weight->size[0];
    node->ints[1] = padding_idx;
    node->ints[2] = scale_grad_by_freq;
    node->ints[3] = base;
  }
  nn_release(wc), nn_release(ic);
  return out;
fail:
  nn_release(wc), nn_release(ic), nn_release(out);
  return NULL;
}

int nn_embedding_renorm_(nn_tensor *weight, nn_tensor *indices, double max_norm, double norm_type,
                         int base) {
  const nn_backend *be = nn_dispatch(op_name, offsetof(nn_backend, embedding_renorm), weight, indices, NULL);
  if (!be || check_weight(weight) < 0 || check_indices(weight, indices) < 0) return -1;
  if (!nn_is_contiguous(weight)) {
    nn_error_set("embedding: max_norm renormalises the weight in place, which must be contiguous");
    return -1;
  }
  if (!(max_norm >= 0) || !(norm_type >= 0)) {
    nn_error_set("embedding: max_norm and norm_type must be non-negative numbers, got %g and %g", max_norm,
                 norm_type);
    return -1;
  }
  nn_tensor *ic = nn_contiguous(indices);
  if (!ic) return -1;
  nn_embedding_args a = args_of(weight, ic, base);
  a.weight = nn_data(weight);
  a.max_norm = max_norm;
  a.norm_type = norm_type;
  int status = be->embedding_renorm(&a);
  nn_release(ic);
  if (status == 0) nn_bump_version(weight);
  return status;
}

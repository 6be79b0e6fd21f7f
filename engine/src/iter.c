/* iter.c: the geometry fronts hand to kernels: the strided iterator over
 * operands of one (broadcast) shape, and a reduction's split into kept
 * positions and reduced lines (backend.h has both structs). Pure
 * arithmetic on shapes and strides: no element is read here. */
#include "internal.h"

/* Every operand is contiguous and has exactly this shape: the common case,
   one run of numel elements. (The output, first, usually hands in its own
   size array.) */
static int all_dense(int n, nn_tensor *const *ts, int ndim, const int64_t *size) {
  for (int k = 0; k < n; k++)
    if (!ts[k]->contiguous || ts[k]->ndim != ndim) return 0;
  for (int k = 0; k < n; k++) {
    if (ts[k]->size == size) continue;
    for (int i = 0; i < ndim; i++)
      if (ts[k]->size[i] != size[i]) return 0;
  }
  return 1;
}

/* inline: a hint to LTO to inline it on the hot path (CMakeLists.txt, inline-unit-growth) */
inline void nn_iter_init(nn_iter *it, int n, nn_tensor *const *ts, int ndim, const int64_t *size) {
  it->n = n;
  for (int k = 0; k < n; k++) {
    const nn_tensor *t = ts[k];
    it->data[k] = nn_data(t);
    it->dtype[k] = t->dtype;
  }
  if (all_dense(n, ts, ndim, size)) {
    it->ndim = 1;
    it->size[0] = nn_shape_numel(ndim, size);
    for (int k = 0; k < n; k++) it->stride[0][k] = 1;
    return;
  }
  /* Drop size-1 dims, then merge neighbours that are contiguous for every
     operand, so the inner loop runs as long as possible. */
  int m = 0;
  for (int i = 0; i < ndim; i++) {
    if (size[i] == 1) continue;
    it->size[m] = size[i];
    for (int k = 0; k < n; k++) {
      const nn_tensor *t = ts[k];
      int j = t->ndim - ndim + i;
      it->stride[m][k] = (j >= 0 && t->size[j] != 1) ? t->stride[j] : 0;
    }
    if (m > 0) {
      int mergeable = 1;
      for (int k = 0; k < n; k++)
        if (it->stride[m - 1][k] != it->stride[m][k] * it->size[m]) mergeable = 0;
      if (mergeable) {
        it->size[m - 1] *= it->size[m];
        for (int k = 0; k < n; k++) it->stride[m - 1][k] = it->stride[m][k];
        continue;
      }
    }
    m++;
  }
  if (m == 0) {
    it->size[0] = nn_shape_numel(ndim, size) ? 1 : 0;
    for (int k = 0; k < n; k++) it->stride[0][k] = 0;
    m = 1;
  }
  it->ndim = m;
  for (int i = 0; i < ndim; i++)
    if (size[i] == 0) it->size[0] = 0;
}

void nn_reduce_init(nn_reduce_geom *r, int n, nn_tensor *const *ts, unsigned full, int ndim,
                    const int64_t *size, unsigned reduced) {
  int64_t kept[NN_MAX_DIMS] = {0}; /* (none read when ndim is 0) */
  for (int i = 0; i < ndim; i++) kept[i] = (reduced >> i & 1) ? 1 : size[i];
  /* full-shape operands see size 1 at the reduced dims: the iterator skips
     them, leaving each operand's first element of the line */
  nn_iter_init(&r->it, n, ts, ndim, kept);
  int m = 0;
  for (int i = 0; i < ndim; i++) {
    if (!(reduced >> i & 1) || size[i] == 1) continue;
    r->rsize[m] = size[i];
    for (int k = 0; k < n; k++) r->rstride[m][k] = (full >> k & 1) ? ts[k]->stride[i] : 0;
    int mergeable = m > 0;
    for (int k = 0; k < n && mergeable; k++)
      mergeable = r->rstride[m - 1][k] == r->rstride[m][k] * r->rsize[m];
    if (mergeable) {
      r->rsize[m - 1] *= r->rsize[m];
      for (int k = 0; k < n; k++) r->rstride[m - 1][k] = r->rstride[m][k];
      continue;
    }
    m++;
  }
  r->rdims = m;
}

/* iter.c: the geometry fronts hand to kernels: the strided iterator over
 * operands of one (broadcast) shape, and a reduction's split into kept
 * positions and reduced lines (backend.h has both structs). Pure
 * arithmetic on shapes and strides: no element is read here. */
#include "internal.h"

/* t has exactly this shape and is contiguous: the common case, one run. */
static int dense_of_shape(const nn_tensor *t, int ndim, const int64_t *size) {
  if (t->ndim != ndim) return 0;
  int64_t s = 1;
  for (int i = ndim - 1; i >= 0; i--) {
    if (t->size[i] != size[i] || (size[i] != 1 && t->stride[i] != s)) return 0;
    s *= size[i];
  }
  return 1;
}

void nn_iter_init(nn_iter *it, int n, nn_tensor *const *ts, int ndim, const int64_t *size) {
  it->n = n;
  int dense = 1;
  for (int k = 0; k < n; k++) {
    const nn_tensor *t = ts[k];
    it->data[k] = nn_data(t);
    it->dtype[k] = t->dtype;
    dense = dense && dense_of_shape(t, ndim, size);
  }
  if (dense) {
    it->ndim = 1;
    it->size[0] = nn_shape_numel(ndim, size);
    for (int k = 0; k < n; k++) it->stride[k][0] = 1;
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
      it->stride[k][m] = (j >= 0 && t->size[j] != 1) ? t->stride[j] : 0;
    }
    if (m > 0) {
      int mergeable = 1;
      for (int k = 0; k < n; k++)
        if (it->stride[k][m - 1] != it->stride[k][m] * it->size[m]) mergeable = 0;
      if (mergeable) {
        it->size[m - 1] *= it->size[m];
        for (int k = 0; k < n; k++) it->stride[k][m - 1] = it->stride[k][m];
        continue;
      }
    }
    m++;
  }
  if (m == 0) {
    it->size[0] = nn_shape_numel(ndim, size) ? 1 : 0;
    for (int k = 0; k < n; k++) it->stride[k][0] = 0;
    m = 1;
  }
  it->ndim = m;
  for (int i = 0; i < ndim; i++)
    if (size[i] == 0) it->size[0] = 0;
}

/* internal.h: what the engine's files share and the public header hides. */
#ifndef NN_INTERNAL_H
#define NN_INTERNAL_H

#include "nn.h"
#include "math/dtype.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* A block of memory on one device, shared by every view of it. */
struct nn_storage {
  int refcount;
  nn_device device;
  void *data;
  size_t nbytes;
  unsigned version; /* bumped by every in-place write, checked by backward */
};

/* ---- storage and tensor allocation (memory.c, tensor.c) -------------- */
nn_storage *nn_storage_new(nn_device device, size_t nbytes);
void nn_storage_release(nn_storage *s);
/* A new tensor struct over s (retained), with the given geometry. */
nn_tensor *nn_tensor_wrap(nn_storage *s, nn_dtype dtype, int ndim, const int64_t *size,
                          const int64_t *stride, int64_t offset);
/* Same dtype/device as like, new contiguous storage of the given shape. */
nn_tensor *nn_empty_like_shape(const nn_tensor *like, nn_dtype dtype, int ndim,
                               const int64_t *size);
nn_tensor *nn_empty_like(const nn_tensor *like);
/* A new contiguous tensor on device (its storage from that device's
   allocator). */
nn_tensor *nn_empty_on(nn_device device, nn_dtype dtype, int ndim, const int64_t *size);
/* Another tensor struct over t's storage and geometry, without autograd:
   what a graph node saves, so that it never keeps its own output alive. */
nn_tensor *nn_alias(const nn_tensor *t);
void nn_contiguous_strides(int ndim, const int64_t *size, int64_t *stride);
int64_t nn_shape_numel(int ndim, const int64_t *size);
/* nn_shape_string for a shape not yet a tensor's */
char *nn_sizes_string(int ndim, const int64_t *size, char *buf, size_t len);
/* A dim in [-ndim, ndim) normalised to [0, ndim); -1 with an error. */
int nn_wrap_dim(const char *op, int dim, int ndim);
/* Broadcast shape of a and b; -1 with an error naming op. */
int nn_broadcast_shape(const char *op, const nn_tensor *a, const nn_tensor *b, int *ndim,
                       int64_t *size);
int nn_check_cpu(const char *op, const nn_tensor *t);
/* The (seed, offset) a random fill on CUDA draws from (math/philox.h),
   moving the CUDA generator on by the counters it uses: 1 for a fill
   that takes one Philox block per group of elements. */
void nn_philox_next(uint64_t counters, uint64_t *seed, uint64_t *offset);

static inline void *nn_data(const nn_tensor *t) {
  return (char *)t->storage->data + (size_t)t->offset * nn_element_size(t->dtype);
}

/* exp(x) for float32, branch-free so that a loop of them vectorises
   (glibc's expf is one call per element; it dominated sigmoid and
   cross_entropy):
   x = n ln2 + r with |r| <= ln2 / 2, exp(r) from Cephes' expf polynomial
   (Moshier, Cephes Math Library, 1984-2000; under 2 ulp), 2^n written into
   the exponent bits. Below -87.3 the result would be subnormal: it is 0;
   NaN stays NaN. (Its callers pass x <= 0; past 88 it gives inf a little
   early.) The clamp is written so that NaN lands on the bound: the
   polynomial and the exponent bits then see a finite number (a NaN
   converted to an integer is undefined behaviour), and the last select
   hands the NaN back. */
#if defined(__GNUC__) && !defined(__clang__) && !defined(__CUDACC__)
/* Its selects are branch-free only when comparisons are not treated as
   trapping; the engine never reads floating-point exception flags. Loops
   that call it need the same option to vectorise. */
#pragma GCC push_options
#pragma GCC optimize("no-trapping-math")
#endif
static inline float nn_exp_f32(float x) {
  float xc = x > -87.3f ? x : -87.3f; /* false for NaN */
  xc = xc < 88.7f ? xc : 88.7f;
  /* adding 1.5 * 2^23 rounds to an integer (nearbyintf is a call without SSE4.1) */
  float n = (xc * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
  float r = xc - n * 0.693359375f + n * 2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  uint32_t bits = (uint32_t)((int32_t)n + 127) << 23;
  float scale;
  memcpy(&scale, &bits, sizeof scale);
  float e = x < -87.3f ? 0.0f : p * scale;
  e = x > 88.7f ? INFINITY : e;
  return x == x ? e : x;
}
#if defined(__GNUC__) && !defined(__clang__) && !defined(__CUDACC__)
#pragma GCC pop_options
#endif

/* ---- strided iteration over up to three operands -------------------- */
typedef struct {
  int ndim;                      /* after merging contiguous dims; >= 1 */
  int64_t size[NN_MAX_DIMS];
  int64_t stride[3][NN_MAX_DIMS]; /* per operand, in elements */
  char *data[3];
  nn_dtype dtype[3];
  int n;
} nn_iter;
/* ts[k] seen through shape (ndim, size): broadcast dims get stride 0. */
void nn_iter_init(nn_iter *it, int n, nn_tensor *const *ts, int ndim, const int64_t *size);
/* Calls fn over the innermost dimension for every outer position. */
typedef void (*nn_inner_fn)(void *ctx, int64_t n, char **data, const int64_t *stride);
void nn_iter_run(nn_iter *it, nn_inner_fn fn, void *ctx);

/* A contiguous tensor seen as (outer, n, inner) around dim: a line of n
   elements `inner` apart for every (outer, inner) pair; NN_ALL_DIMS makes
   one line of every element. */
typedef struct { int64_t outer, n, inner; } nn_line_shape;
static inline nn_line_shape nn_lines_around(const nn_tensor *t, int dim) {
  nn_line_shape s = {1, 1, 1};
  if (dim == NN_ALL_DIMS || t->ndim == 0) {
    s.n = nn_shape_numel(t->ndim, t->size);
    return s;
  }
  s.n = t->size[dim];
  for (int i = 0; i < dim; i++) s.outer *= t->size[i];
  for (int i = dim + 1; i < t->ndim; i++) s.inner *= t->size[i];
  return s;
}

/* ---- autograd (autograd.c) ------------------------------------------ */
#define NN_NODE_INPUTS 3
#define NN_NODE_SAVED 3
typedef int (*nn_backward_fn)(nn_node *node, nn_tensor *grad_out, nn_tensor **grad_in);

struct nn_node {
  int refcount;
  const char *name;
  nn_backward_fn backward;
  int n_inputs;
  /* NULL where no gradient is needed; a leaf itself (backward adds into its
     .grad); for a computed tensor, an alias that carries its grad_fn as it
     was when this node was recorded (see nn_node_attach). */
  nn_tensor *inputs[NN_NODE_INPUTS];
  nn_tensor *saved[NN_NODE_SAVED];   /* aliases of what backward reads */
  unsigned saved_version[NN_NODE_SAVED];
  double scalar[2];
  int64_t ints[NN_MAX_DIMS];
  int ndim;                         /* a shape backward needs (input's, before a view) */
  int64_t size[NN_MAX_DIMS];
  int64_t offset;                   /* a view's offset from its base, with size and ints as strides */
  nn_node *wrapped;                 /* CopySlices: the in-place op applied to the view */
  int freed;
  int broken;                       /* a save ran out of memory: backward must refuse */
  /* backward's bookkeeping */
  /* Where an input is a leaf whose .grad already exists (contiguous, of its
     shape and dtype), backward may add its gradient straight into it and
     leave grad_in[k] NULL: no temporary, no second pass. */
  nn_tensor *accumulate_into[NN_NODE_INPUTS];
  nn_tensor *grad;
  int pending;
  unsigned mark;
  nn_node *release_next; /* the list of nodes waiting to be freed */
};

/* True when an op on these inputs must record a node. */
int nn_needs_grad(nn_tensor *a, nn_tensor *b, nn_tensor *c);
/* A node for out, over inputs that need grad (others recorded as NULL).
   Returns the node (owned by out) or NULL on allocation failure. */
nn_node *nn_node_attach(nn_tensor *out, const char *name, nn_backward_fn backward, int n_inputs,
                        nn_tensor *a, nn_tensor *b, nn_tensor *c);
/* Saves input t in slot i, with its version for the in-place check. */
void nn_node_save(nn_node *node, int i, nn_tensor *t);
/* Saves the op's own output: an alias, so the node never keeps alive the
   tensor that owns it. */
void nn_node_save_output(nn_node *node, int i, const nn_tensor *out);
void nn_node_release(nn_node *node);
/* While backward runs, ops record nothing. */
typedef struct { int previous; } nn_grad_guard;
nn_grad_guard nn_no_grad_begin(void);
void nn_no_grad_end(nn_grad_guard g);

/* ---- in-place ops and autograd (autograd.c) -------------------------
   As PyTorch does, an in-place op on a tensor in a graph records a node
   whose input is the tensor's history before the write, and gives the
   tensor that node as its new history; through a view, the view's base
   gets the new history (CopySlices). The op computes its result out of
   place from ip.self, the tensor as it was, and hands it over:

     nn_inplace ip;
     int record = nn_inplace_begin(&ip, "exp_", t, NULL, 0);
     if (record < 0) return -1;
     if (record) return nn_inplace_commit(&ip, nn_unary(NN_EXP, ip.self), NULL);
     ... write into t directly, nn_bump_version(t) ...

   Slot 0 of the node's saved tensors is, by convention, self's value
   (its input): commit keeps a copy of it, since the write would change it.
   Saved outputs of the result come to alias t, so that a later in-place
   change of t fails backward's version check, as in PyTorch. */
typedef struct {
  const char *op;
  nn_tensor *target, *other; /* the tensor written to; an operand or NULL */
  nn_tensor *self;           /* target as the op reads it, with its history */
  nn_tensor *base;           /* target's base when target is a view */
} nn_inplace;
/* -1: refused (error set); 0: nothing to record, write directly;
   1: record (ip.self is set; commit or cancel must follow). overlap_ok: the
   op may write into a tensor whose elements share memory (fill_, zero_). */
int nn_inplace_begin(nn_inplace *ip, const char *op, nn_tensor *t, nn_tensor *other,
                     int overlap_ok);
/* Writes result (a new tensor of target's shape, consumed) into target and
   makes result's node target's history; a result without a node (a
   comparison) records one named zero_grad_name whose gradients are zero. */
int nn_inplace_commit(nn_inplace *ip, nn_tensor *result, const char *zero_grad_name);
/* For ops that wrote into target themselves (fill_, uniform_): records a
   node named name whose gradient is zero. */
int nn_inplace_commit_written(nn_inplace *ip, const char *name);
void nn_inplace_cancel(nn_inplace *ip);

/* ---- kernels shared between files ----------------------------------- */
/* y = alpha op(A) op(B) + beta y over 2-D views, any strides; picks naive
   loops for tiny products and BLAS for the rest. */
int nn_gemm_tensors(int trans_a, int trans_b, double alpha, nn_tensor *a, nn_tensor *b,
                    double beta, nn_tensor *c);
/* Refuses (-1, with an error naming op) an in-place write into dst that
   reads src where src holds some of dst's elements at other positions (a
   partial overlap): the loop would read values it has already overwritten.
   The very same elements are fine (x:add_(x)). src must broadcast to dst's
   shape. Separate storages, the common case, cost one comparison. */
int nn_check_partial_overlap(const char *op, const nn_tensor *dst, const nn_tensor *src);
static inline int nn_check_overlap(const char *op, const nn_tensor *dst, const nn_tensor *src) {
  return dst->storage == src->storage ? nn_check_partial_overlap(op, dst, src) : 0;
}
/* bump the version of t's storage after an in-place write */
static inline void nn_bump_version(nn_tensor *t) { t->storage->version++; }

#endif

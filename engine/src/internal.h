/* internal.h: what the engine's files share and the public header hides. */
#ifndef NN_INTERNAL_H
#define NN_INTERNAL_H

#include "nn.h"
#include "backend.h"
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
  int pool_class;   /* memory.c: the CPU pool's size class of data, or -1 (its device frees it) */
};

/* ---- backends (backend.c; the table itself is backend.h) ----------- */
extern const nn_backend nn_cpu_backend;
/* The table of device's backend, or NULL when there is none (not built in,
   not loadable, no such device). The CPU's is always there; another
   device's comes from nn_backend_of_device (backend.c: where a backend is
   loaded at first use). */
const nn_backend *nn_backend_of_device(nn_device device);
static inline const nn_backend *nn_backend_for(nn_device device) {
  return device == NN_CPU ? &nn_cpu_backend : nn_backend_of_device(device);
}
/* Why nn_backend_for(device) is NULL: "this build has no cuda backend". */
const char *nn_backend_unavailable(nn_device device);
/* The table of device's backend if it is loaded already (never loads
   one): what a seed reaches. */
const nn_backend *nn_backend_loaded(nn_device device);
/* Installs a device's table (the CUDA loader; tests), or removes it (NULL,
   with the reason nn_backend_unavailable will give). */
void nn_backend_set(nn_device device, const nn_backend *table, const char *why_not);

/* The table that runs op on a's device, which must have the entry at
   offset kernel (offsetof(nn_backend, entry)); b and c, when not NULL,
   must be on a's device. Otherwise NULL, with "op: tensors are on
   different devices (cpu and cuda)", "op: this build has no cuda backend"
   or "op: not implemented for cuda". The CPU's table is complete (the
   tests check it), so CPU tensors take the inline path. */
const nn_backend *nn_dispatch_any(const char *op, size_t kernel, const nn_tensor *a,
                                  const nn_tensor *b, const nn_tensor *c);
/* The plan recording now (capture.c), or NULL: also while a host call
   runs. While it is set, dispatch hands out the recording table. */
extern nn_plan *nn_capture_active;
static inline const nn_backend *nn_dispatch(const char *op, size_t kernel, const nn_tensor *a,
                                            const nn_tensor *b, const nn_tensor *c) {
  if (!nn_capture_active && a->device == NN_CPU && (!b || b->device == NN_CPU) &&
      (!c || c->device == NN_CPU))
    return &nn_cpu_backend;
  return nn_dispatch_any(op, kernel, a, b, c);
}
/* Refuses (-1, "op: tensors are on different devices (cpu and cuda)")
   operands beyond the three nn_dispatch checks. */
int nn_check_same_device(const char *op, const nn_tensor *a, const nn_tensor *b);
/* nn_backend_for, or NULL with "op: cuda is not available: why" (an op
   that names a device rather than taking its tensors'). */
const nn_backend *nn_device_check(const char *op, nn_device device);
/* The CUDA loader (device.c): opens libnn_cuda.so once, installs its
   table with nn_backend_set or the reason it cannot. */
void nn_cuda_load(void);

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
/* The same, every element value. */
nn_tensor *nn_full_like_shape(const nn_tensor *like, nn_dtype dtype, int ndim, const int64_t *size,
                              double value);
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

static inline void *nn_data(const nn_tensor *t) {
  return (char *)t->storage->data + (size_t)t->offset * nn_element_size(t->dtype);
}

/* ---- the strided iterator (nn_iter: backend.h) ------------------------ */
/* ts[k] seen through shape (ndim, size): broadcast dims get stride 0
   (iter.c; front-side arithmetic, reads no element). */
void nn_iter_init(nn_iter *it, int n, nn_tensor *const *ts, int ndim, const int64_t *size);

/* A reduction's geometry (backend.h's nn_reduce_geom) over a shape (ndim,
   size) reduced along the dims whose bits are set in `reduced`: operand k
   has that full shape where bit k of `full` is set, else the kept shape
   (size 1 at the reduced dims: keepdim's). Reduced dims of size 1 are
   dropped, neighbours merged where every operand allows. */
void nn_reduce_init(nn_reduce_geom *r, int n, nn_tensor *const *ts, unsigned full, int ndim,
                    const int64_t *size, unsigned reduced);

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
  nn_hooks *hooks;       /* NN_HOOK_GRAD hooks of the tensor it made (hooks.c) */
  /* issue 12, higher orders: the saved slots that hold the node's own
     output (a backward that records differentiates through them), whether
     an nn_grad pass must run the node (it leads to an input asked for),
     and where the op was called when anomaly mode was on (or NULL) */
  unsigned saved_output;
  int needed, topo_pending;
  char *where;
  /* a user's function (nn_function_attach): its context, freed with the node */
  void *ctx;
  void (*free_ctx)(void *);
  /* zero_grad's deferred zeros (nn_zero_grad_deferred): overwrites, set by
     the op, has a bit for each input whose accumulate_into its backward
     can write over instead of adding onto; a plain pass sets that bit in
     into_zeros where the gradient there reads as zeros, and the backward
     clears it once it has written the whole gradient there. */
  unsigned overwrites_into, into_zeros;
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
/* True while a backward pass records itself (create_graph): backward ops
   then record nodes where their operands need gradients. */
int nn_recording_backward(void);
/* The error a backward op gives when asked to record its own gradient and
   it has none (first-order only): -1 with "op: second-order gradients are
   not implemented". */
int nn_first_order_only(const char *op);
/* While backward runs, ops record nothing (unless create_graph). */
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

/* The p-norm of every element of a (floating), into a 0-d tensor of
   dtype (accumulated in double whatever the dtype); no autograd. */
nn_tensor *nn_norm_all(nn_tensor *a, double p, nn_dtype dtype);

/* ---- backward ops: fronts of their own, which backward functions call
   (never a kernel directly), so that a later version can record them -- */
/* gi = g op'(v): v is op's output where nn_unary_grad_reads_output(op)
   (math/elementwise.h), else its input; g and v of one shape and dtype. */
nn_tensor *nn_unary_backward(nn_unary_op op, nn_tensor *g, nn_tensor *v);
/* The select-style gradients (backend.h's nn_pointwise_grad_op), of g's
   shape and dtype; x and y (NULL where op reads none) broadcast to it. */
nn_tensor *nn_pointwise_grad(nn_pointwise_grad_op op, nn_tensor *g, nn_tensor *x, nn_tensor *y,
                             double lo, double hi);

/* gi = g op'(x) for nn_activation's op with parameters a, b. */
nn_tensor *nn_activation_backward(nn_activation_op op, nn_tensor *g, nn_tensor *x, double a,
                                  double b);
/* softmax's (log_form 0) or log_softmax's gradient along dim from its
   output y. */
nn_tensor *nn_softmax_backward(nn_tensor *g, nn_tensor *y, int dim, int log_form);
/* PReLU's gradients for contiguous x and w (channels `inner` elements
   apart): *gx when need_x, *gw when need_w, else NULL. */
int nn_prelu_backward(nn_tensor *g, nn_tensor *x, nn_tensor *w, int64_t inner, int need_x,
                      int need_w, nn_tensor **gx, nn_tensor **gw);

/* max's or min's gradient, of x's shape (ndim, size): along dim, g at
   the forward's indices; over all dims (NN_ALL_DIMS, indices NULL), g
   shared by the elements of x equal to the forward's value. */
nn_tensor *nn_extreme_backward(nn_tensor *g, nn_tensor *indices, nn_tensor *x, nn_tensor *value,
                               unsigned dim, int ndim, const int64_t *size);
/* The p-norm's gradient along dim (or NN_ALL_DIMS) for input x whose norm
   (the forward's result) is norm. */
nn_tensor *nn_norm_backward(nn_tensor *g, nn_tensor *x, nn_tensor *norm, double p, unsigned dim);

/* The gradients of y = x w^T + b for grad g (N, out): grads[0] = dx (N,
   in), grads[1] = dw (out, in), grads[2] = db (out), each where need[k];
   into[1] and into[2] (NULL or an existing .grad: contiguous, the
   parameter's shape and dtype) take their gradient added in place, and
   grads[k] stays NULL. */
int nn_linear_backward(nn_tensor *g, nn_tensor *x, nn_tensor *w, const int *need,
                       nn_tensor *const *into, nn_tensor **grads);
/* addmm as one GEMM where nothing needs a gradient (matmul.c): 0 where it
   does not apply, else 1 with *out the result (NULL on an error). */
int nn_addmm_one_gemm(nn_tensor *input, nn_tensor *a, nn_tensor *b, double beta, double alpha,
                      nn_tensor **out);
/* matmul.c: bmm's product of (B, m, k) and (B, k, n) tensors whose shapes
   linalg.c checked: one batched GEMM with its own node (BmmBackward0). */
nn_tensor *nn_bmm_product(nn_tensor *a, nn_tensor *b);

/* An elementwise loss (backend.h's nn_loss_kind) as its backward needs it:
   weights is the contiguous (k n) tensor of weight then pos_weight values
   (those present), or NULL. */
typedef struct {
  nn_loss_kind kind;
  double param;   /* smooth_l1's beta, huber's delta */
  int reduction;  /* nn_reduction, or NN_REDUCTION_BATCHMEAN */
  double divisor; /* what the reduced sum was divided by */
  nn_tensor *weights;
  int has_weight, has_pos_weight;
} nn_loss_spec;
/* dl/dinput (when need_x) and dl/dtarget (when need_y) times g. */
int nn_loss_backward(const nn_loss_spec *spec, nn_tensor *g, nn_tensor *input, nn_tensor *target,
                     int need_x, int need_y, nn_tensor **gx, nn_tensor **gy);
/* cross_entropy's (from_logits) or nll_loss's gradients; aux is what the
   forward left (weights, lse, the targets' total weight); o->weight only
   says whether there are weights. */
int nn_class_loss_backward(const char *op, int from_logits, int probabilities,
                           const nn_class_loss_options *o, nn_tensor *g, nn_tensor *input,
                           nn_tensor *target, nn_tensor *aux, int need_x, int need_y,
                           nn_tensor **gx, nn_tensor **gy);

/* ---- the same backward ops while a pass records itself (higher_order.c):
   made of fronts that record, so that the gradient they give can be
   differentiated again; each front above calls its form here when
   nn_recording_backward() and an operand needs a gradient ------------- */
nn_tensor *nn_unary_backward_graph(nn_unary_op op, nn_tensor *g, nn_tensor *v);
nn_tensor *nn_activation_backward_graph(nn_activation_op op, nn_tensor *g, nn_tensor *x, double a,
                                        double b);
nn_tensor *nn_softmax_backward_graph(nn_tensor *g, nn_tensor *y, int dim, int log_form);
nn_tensor *nn_pointwise_grad_graph(nn_pointwise_grad_op op, nn_tensor *g, nn_tensor *x,
                                   nn_tensor *y, double lo, double hi);
int nn_linear_backward_graph(nn_tensor *g, nn_tensor *x, nn_tensor *w, const int *need,
                             nn_tensor **grads);
nn_tensor *nn_norm_backward_graph(nn_tensor *g, nn_tensor *x, nn_tensor *norm, double p,
                                  unsigned mask);
nn_tensor *nn_extreme_backward_graph(nn_tensor *g, nn_tensor *indices, nn_tensor *x,
                                     nn_tensor *value, unsigned mask, int ndim,
                                     const int64_t *size);
nn_tensor *nn_scatter_line_backward_graph(nn_tensor *g, nn_tensor *indices, int dim, int ndim,
                                          const int64_t *size);
int nn_loss_backward_graph(const nn_loss_spec *spec, nn_tensor *g, nn_tensor *x, nn_tensor *y,
                           int need_x, int need_y, nn_tensor **gx, nn_tensor **gy);
/* cross_entropy (from_logits) and nll_loss: coef is dl/dlp for a gradient
   of ones (labels) or the class weights (probabilities; NULL: none). */
/* batch_norm's gradients (grads[0] x, [1] weight, [2] bias, where need[k]):
   through the batch's statistics, recomputed from x with eps, when
   training; else through stats (the running ones, as forward wrote them) */
int nn_batch_norm_backward_graph(nn_tensor *g, nn_tensor *x, nn_tensor *w, nn_tensor *stats,
                                 int training, double eps, const int *need, nn_tensor **grads);
int nn_prelu_backward_graph(nn_tensor *g, nn_tensor *x, nn_tensor *w, int need_x, int need_w,
                            nn_tensor **gx, nn_tensor **gw);
nn_tensor *nn_cumprod_backward_graph(nn_tensor *g, nn_tensor *x, nn_tensor *out, int dim);
nn_tensor *nn_prod_backward_graph(nn_tensor *g, nn_tensor *x, unsigned mask);
/* The recurrent layers' gradients (rnn.c's layout) from fronts (rnn_recorded.c). */
int nn_rnn_backward_graph(nn_rnn_mode mode, int reverse, nn_tensor *g, nn_tensor *x_gates,
                          nn_tensor *state0, nn_tensor *weights, nn_tensor *batch_sizes, int64_t H,
                          const int *need, nn_tensor **grads);
int nn_class_loss_backward_graph(int from_logits, int probabilities, int reduction,
                                 double smoothing, nn_tensor *g, nn_tensor *x, nn_tensor *y,
                                 nn_tensor *coef, int need_x, int need_y, nn_tensor **gx,
                                 nn_tensor **gy);
/* True when a backward op must take its recorded form: a pass records
   itself and one of the operands needs a gradient. */
static inline int nn_backward_records(nn_tensor *a, nn_tensor *b, nn_tensor *c) {
  return nn_recording_backward() && nn_needs_grad(a, b, c);
}

/* ---- reductions over a set of dims (reduce.c): a bit mask, bit i for
   dim i; all of an n-dim tensor's is (1 << n) - 1, and 0 reduces nothing
   (each line one element) ------------------------------------------------ */
unsigned nn_dim_mask(int ndim, int dim); /* one dim, or NN_ALL_DIMS */
/* The reduced dims set to size 1. */
void nn_kept_shape(int ndim, const int64_t *size, unsigned mask, int64_t *kept);
/* kept (a's kept shape) with the reduced dims dropped unless keepdim;
   consumes kept. */
nn_tensor *nn_squeeze_kept(nn_tensor *kept, const nn_tensor *a, unsigned mask, int keepdim);
/* t (a reduction's result, dims kept or not) reshaped to the kept shape of
   (ndim, size), untracked: what a kernel reads per line. */
nn_tensor *nn_as_kept(nn_tensor *t, int ndim, const int64_t *size, unsigned mask);
/* The gradient of a reduction along the dims of mask from a line kernel
   over (gi, x, result, g) (reduce.c): norm's and prod's backward. */
typedef int (*nn_line_grad_run)(const nn_backend *be, const nn_reduce_geom *r, const void *arg);
nn_tensor *nn_line_grad(const char *op, size_t kernel, nn_tensor *g, nn_tensor *x,
                        nn_tensor *result, unsigned mask, nn_line_grad_run run, const void *arg);
/* out (kept shape) = op over a's lines; no autograd. */
int nn_run_reduce(nn_reduce_op op, nn_tensor *out, nn_tensor *a, unsigned mask, double p);
int64_t nn_line_count(const nn_tensor *a, unsigned mask);

/* The backward ops of statistics.c and sort.c: prod's gradient for input
   x whose product over mask is out; cumprod's along dim; g put back at
   the positions along dim that indices (of g's shape) picked from a
   tensor of shape (ndim, size). */
nn_tensor *nn_prod_backward(nn_tensor *g, nn_tensor *x, nn_tensor *out, unsigned mask);
nn_tensor *nn_cumprod_backward(nn_tensor *g, nn_tensor *x, nn_tensor *out, int dim);
nn_tensor *nn_scatter_line_backward(nn_tensor *g, nn_tensor *indices, int dim, int ndim,
                                    const int64_t *size);

/* ---- in-place writes ------------------------------------------------- */
/* Refuses (-1, with an error naming op) an in-place write into dst that
   reads src where src holds some of dst's elements at other positions (a
   partial overlap): the loop would read values it has already overwritten.
   The very same elements are fine (x:add_(x)). src must broadcast to dst's
   shape. Separate storages, the common case, cost one comparison. */
int nn_check_partial_overlap(const char *op, const nn_tensor *dst, const nn_tensor *src);
static inline int nn_check_overlap(const char *op, const nn_tensor *dst, const nn_tensor *src) {
  return dst->storage == src->storage ? nn_check_partial_overlap(op, dst, src) : 0;
}
/* dst += src over src's shape, dst broadcast to it: where dst's elements
   repeat (stride 0, a smaller shape), every element of src landing there
   adds in, in order. No autograd, no checks beyond the devices: what
   backward uses to add a gradient into place. */
int nn_add_into(const char *op, nn_tensor *dst, nn_tensor *src);
/* ---- dtypes ----------------------------------------------------------- */
/* float32 and float64: the dtypes the specialised kernels (activations,
   losses, GEMM, optimizers) are written for. Their fronts refuse others, or
   take float16 and bfloat16 through nn_in_float32. */
static inline int nn_float_kernel_dtype(nn_dtype d) { return d == NN_FLOAT32 || d == NN_FLOAT64; }
/* fn(x converted to float32, arg) converted back to x's half dtype, both
   conversions recorded by autograd: a half type computes in float32 and
   rounds its result, and its gradient comes back in its own dtype. */
typedef nn_tensor *(*nn_float32_fn)(nn_tensor *x, const void *arg);
nn_tensor *nn_in_float32(nn_tensor *x, nn_float32_fn fn, const void *arg);

/* bump the version of t's storage after an in-place write */
static inline void nn_bump_version(nn_tensor *t) { t->storage->version++; }

/* The gradients of conv2d (ints[7] == 0) or conv_transpose2d (1) for
   grad g: grads[0] of x, grads[1] of w, grads[2] of the bias, each where
   need[k]; ints: stride (2), padding (2), dilation (2), groups,
   transposed; x and w contiguous. into[1] (an existing .grad of w) takes
   the weight's gradient added in place, and grads[1] stays NULL. */
int nn_conv_backward(nn_tensor *g, nn_tensor *x, nn_tensor *w, const int64_t *ints, const int *need,
                     nn_tensor *const *into, nn_tensor **grads);

/* ---- captured steps (capture.c; nn.h has the plan's API) -------------- */
/* While a capture records: the recording table in place of real (device's
   table), whose kernel entries record each call into the plan and then
   make it; the storages of a, b, c (any may be NULL) kept by the plan. A
   plan runs on one device: another device's table comes back unchanged,
   the plan refused. kernel: the entry's offset, or NN_ANY_KERNEL. */
#define NN_ANY_KERNEL ((size_t)-1)
const nn_backend *nn_capture_dispatch(const nn_backend *real, nn_device device, size_t kernel,
                                      const nn_tensor *a, const nn_tensor *b, const nn_tensor *c);
/* A device's kernels for a front that tests which entries the device has
   (NULL ones) rather than dispatching: the recording table while a
   capture records. */
static inline const nn_backend *nn_kernels_of(nn_device device) {
  const nn_backend *be = nn_backend_for(device);
  return nn_capture_active && be ? nn_capture_dispatch(be, device, NN_ANY_KERNEL, NULL, NULL, NULL)
                                  : be;
}
/* A storage made while a capture records: the plan keeps it. */
void nn_capture_storage_made(nn_storage *s);
/* A value read on the host (item, print, a copy to the host): a replay
   could not read it again, so the recording plan is refused. */
void nn_capture_host_read(const char *what);
/* A value written from the host into t (t[i] = v): fine into a storage
   the step made itself (a constant), refused into one from outside. */
void nn_capture_host_write(const nn_tensor *t, const char *what);

/* cpu/scan.c: unique of the n contiguous elements of dt at x on the host
   (nn_unique's CPU path): the distinct values in sort's order (every NaN
   its own, last; of +0 and -0 the first in x) written to values (room
   for n), how often each occurs to counts and each element's 0-based
   group to inverse (each when not NULL; counts with room for n); the
   number of values, or -1 with the error set. */
int64_t nn_cpu_unique(nn_dtype dt, const char *x, int64_t n, char *values, int64_t *counts,
                      int64_t *inverse);

#endif

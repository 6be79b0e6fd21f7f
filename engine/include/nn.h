/* nn.h: the public C API of libnn, nnlua's engine.
 *
 * Conventions
 *  - Every function that can fail returns NULL (for a tensor) or a negative
 *    status, and leaves a message in nn_error(): "matmul: sizes 4x3 and 2x5
 *    do not match". The engine never aborts on bad input.
 *  - Dimensions and indices here are 0-based; the Lua binding translates the
 *    1-based indices a Lua user sees.
 *  - Tensors are reference counted. A function returning nn_tensor* hands the
 *    caller one reference; release it with nn_release().
 */
#ifndef NN_H
#define NN_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

#define NN_MAX_DIMS 8
/* Reductions over every element take this in place of a dimension. */
#define NN_ALL_DIMS (-1000)

/* The first four keep their numbers (files and tables use them); the rest
   are PyTorch's other storage types. Properties: engine/src/math/dtype.h. */
typedef enum {
  NN_FLOAT32 = 0, NN_FLOAT64, NN_INT64, NN_BOOL,
  NN_INT32, NN_INT16, NN_INT8, NN_UINT8, NN_FLOAT16, NN_BFLOAT16,
  NN_DTYPE_COUNT
} nn_dtype;
typedef enum { NN_CPU = 0, NN_CUDA, NN_DEVICE_COUNT } nn_device;

typedef struct nn_storage nn_storage;
typedef struct nn_node nn_node;
typedef struct nn_hooks nn_hooks;

typedef struct nn_tensor {
  int refcount;
  nn_dtype dtype;
  nn_device device;
  int ndim;
  int64_t size[NN_MAX_DIMS];
  int64_t stride[NN_MAX_DIMS]; /* in elements */
  int64_t offset;              /* in elements, into storage */
  /* nn_is_contiguous(t), computed when the tensor is made: a tensor's
     geometry never changes after, and every op asks */
  int contiguous;
  nn_storage *storage;
  int requires_grad; /* a leaf that collects .grad, or a result that needs one */
  struct nn_tensor *grad;
  nn_node *grad_fn; /* the operation that produced it; NULL for a leaf */
  /* A view holds the tensor whose storage it shares (the first one, never
     another view): an in-place change through the view changes that
     tensor's history too. view_version is the storage's version when the
     view's grad_fn was last set; see nn_sync_view. */
  struct nn_tensor *base;
  unsigned view_version;
  nn_hooks *hooks; /* a leaf's hooks (nn_add_hook); NULL when it has none */
  /* A leaf whose zero_grad left its .grad's zeros unwritten
     (nn_zero_grad_deferred): grad reads as zeros. nn_leaf_grad writes them
     first; backward writes its gradient over them. */
  int grad_zero_deferred;
} nn_tensor;

/* ---- errors ---------------------------------------------------------- */
const char *nn_error(void);
void nn_error_set(const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 1, 2)))
#endif
    ;

/* ---- lifetime and memory --------------------------------------------- */
nn_tensor *nn_retain(nn_tensor *t);
void nn_release(nn_tensor *t);
/* Bytes of tensor storage currently allocated (live, not pooled). */
size_t nn_memory_in_use(void);
/* Bytes of storage handed out (fresh or from the pool) since the last
   call: lets a host's garbage collector pace itself by tensor traffic it
   cannot see. */
size_t nn_memory_take_allocated(void);
/* Give pooled, unused storage back to the system. */
void nn_memory_trim(void);

/* ---- devices ---------------------------------------------------------
   The CPU is always there. CUDA's backend is a library of its own, loaded
   at the first of these calls (or the first tensor made on "cuda"); it is
   available when that library, the libraries it needs, a driver and a GPU
   are all there. */
int nn_device_available(nn_device device);
/* Why device is not available, in a sentence ("" when it is). */
const char *nn_device_unavailable_reason(nn_device device);
int nn_device_count(nn_device device);           /* 0 when not available */
const char *nn_device_description(nn_device device); /* the GPU's name; NULL when not available */
/* Waits for the work queued on device; -1, with the error, when a kernel
   of it failed (CUDA runs kernels asynchronously: a fault surfaces here,
   or at the next copy to the host). */
int nn_device_synchronize(nn_device device);
/* Bytes of device memory held by tensors, and those plus the blocks the
   caching allocator keeps for reuse; empty_cache gives the kept ones back. */
size_t nn_device_memory_allocated(nn_device device);
size_t nn_device_memory_reserved(nn_device device);
void nn_device_empty_cache(nn_device device);

/* ---- collectives across processes, on a device's own memory ----------
   A group of processes (nn.distributed's ranks, which MPI started and
   counts) reduces, broadcasts and gathers buffers of a device's memory
   without a trip through the host: CUDA's through NCCL, loaded at the
   first call (NN_NCCL_LIBRARY, else libnccl.so.2 on the loader's path).
   The CPU has none here (nn.distributed sends host memory over MPI
   itself), nor has a CUDA build without NCCL: nn_collective_available
   says so, and why. Each rank of the group calls join with the same id
   (made by one of them with nn_collective_id and sent to the others),
   then starts the same collectives in the same order. A collective is
   queued after the work already queued on the device and runs
   asynchronously: test polls it (1: done, and the handle is gone; 0: not
   yet; -1: failed, the handle is gone and the error set). abort stops the
   group's collectives (a peer failed): none then blocks for ever. */
#define NN_COLLECTIVE_ID_BYTES 128
typedef enum {
  NN_COLLECTIVE_ALL_REDUCE,    /* recv = op over the ranks' send (count each) */
  NN_COLLECTIVE_BROADCAST,     /* recv = root's send (count) */
  NN_COLLECTIVE_ALL_GATHER,    /* recv = every rank's send (count each), rank by rank */
  NN_COLLECTIVE_REDUCE_SCATTER /* recv = op over the ranks of their send's block `rank` (count each) */
} nn_collective_kind;
typedef enum { NN_COLLECTIVE_SUM, NN_COLLECTIVE_MAX, NN_COLLECTIVE_MIN } nn_collective_op;
typedef struct {
  nn_collective_kind kind;
  nn_collective_op op; /* reductions */
  int root;            /* broadcast: 0-based */
  nn_dtype dtype;
  int64_t count;       /* elements per rank, as noted above */
  const void *send;    /* the device's pointers; send may equal recv (in place) */
  void *recv;
} nn_collective_args;
/* 1 when device can do collectives itself; else 0 with why in reason. */
int nn_collective_available(nn_device device, char *reason, size_t len);
int nn_collective_id(nn_device device, unsigned char id[NN_COLLECTIVE_ID_BYTES]);
int nn_collective_join(nn_device device, const unsigned char id[NN_COLLECTIVE_ID_BYTES], int rank, int size);
int nn_collective_start(nn_device device, const nn_collective_args *a, void **handle);
int nn_collective_test(nn_device device, void *handle);
void nn_collective_abort(nn_device device);

/* ---- properties ------------------------------------------------------ */
const char *nn_dtype_name(nn_dtype dtype);  /* "float32" */
int nn_dtype_from_name(const char *name);   /* -1 when unknown */
size_t nn_dtype_size(nn_dtype dtype);
int nn_dtype_is_floating(nn_dtype dtype);
/* PyTorch's torch.promote_types: int8 and uint8 give int16, an integer and
   a floating dtype the floating one, float16 and bfloat16 float32. */
nn_dtype nn_promote_types(nn_dtype a, nn_dtype b);
const char *nn_device_name(nn_device device);
int nn_device_from_name(const char *name);  /* -1 when unknown */
int64_t nn_numel(const nn_tensor *t);
int nn_is_contiguous(const nn_tensor *t);
int nn_same_shape(const nn_tensor *a, const nn_tensor *b);
/* "4x10" into buf; returns buf. */
char *nn_shape_string(const nn_tensor *t, char *buf, size_t len);

/* ---- creation -------------------------------------------------------- */
/* Checks a shape for negative sizes and absurd totals; names op in the error. */
int nn_check_shape(const char *op, int ndim, const int64_t *size);
nn_tensor *nn_empty(nn_dtype dtype, int ndim, const int64_t *size);
/* A new contiguous tensor on device, its values unset. */
nn_tensor *nn_empty_on(nn_device device, nn_dtype dtype, int ndim, const int64_t *size);
nn_tensor *nn_full(nn_dtype dtype, int ndim, const int64_t *size, double value);
nn_tensor *nn_zeros(nn_dtype dtype, int ndim, const int64_t *size);
nn_tensor *nn_ones(nn_dtype dtype, int ndim, const int64_t *size);
nn_tensor *nn_arange(double start, double end, double step, nn_dtype dtype);
nn_tensor *nn_linspace(double start, double end, int64_t steps, nn_dtype dtype);
nn_tensor *nn_eye(int64_t n, int64_t m, nn_dtype dtype);
nn_tensor *nn_rand(nn_dtype dtype, int ndim, const int64_t *size);
nn_tensor *nn_randn(nn_dtype dtype, int ndim, const int64_t *size);

/* ---- element access (flat index into the logical, row-major order) --- */
double nn_get_flat(const nn_tensor *t, int64_t i);
void nn_set_flat(nn_tensor *t, int64_t i, double v);
double nn_get(const nn_tensor *t, const int64_t *index);
/* The single value of a one-element tensor. */
int nn_item(const nn_tensor *t, double *out);

/* ---- views: share storage with their base ---------------------------- */
nn_tensor *nn_view(nn_tensor *t, int ndim, const int64_t *size); /* one size may be -1 */
nn_tensor *nn_reshape(nn_tensor *t, int ndim, const int64_t *size);
nn_tensor *nn_transpose(nn_tensor *t, int d0, int d1);
nn_tensor *nn_permute(nn_tensor *t, const int *dims);
/* t(): the transpose of a matrix (a vector or scalar as it is). */
nn_tensor *nn_t(nn_tensor *t);
nn_tensor *nn_narrow(nn_tensor *t, int dim, int64_t start, int64_t length);
nn_tensor *nn_select(nn_tensor *t, int dim, int64_t index);
nn_tensor *nn_unsqueeze(nn_tensor *t, int dim);
nn_tensor *nn_squeeze(nn_tensor *t, int dim); /* NN_ALL_DIMS: every size-1 dim */
nn_tensor *nn_expand(nn_tensor *t, int ndim, const int64_t *size); /* -1 keeps */
nn_tensor *nn_contiguous(nn_tensor *t);
nn_tensor *nn_clone(nn_tensor *t);
nn_tensor *nn_detach(nn_tensor *t);
nn_tensor *nn_to_dtype(nn_tensor *t, nn_dtype dtype);
nn_tensor *nn_to_device(nn_tensor *t, nn_device device);
/* dst[...] = src, src broadcast to dst's shape; no autograd. src may share
   dst's storage only as the very same elements (else an error: it overlaps). */
int nn_copy_(nn_tensor *dst, const nn_tensor *src);
/* Refuses (-1, with an error naming op) an in-place write to t that
   autograd could not follow (a leaf that requires grad, or a view of one)
   or that PyTorch refuses (several elements at one memory location);
   0 where the write may go ahead. The in-place ops check this themselves. */
int nn_check_inplace(const char *op, nn_tensor *t);
/* Fills t with value; no checks, no autograd (what the engine uses on
   tensors it has just made). */
int nn_fill_(nn_tensor *t, double value);
/* The in-place ops as a user calls them (t:copy_(src), t:fill_(v),
   t:zero_(), t[i] = v): checked as above and recorded by autograd, as
   PyTorch records them. op names the operation in messages. */
int nn_inplace_copy(const char *op, nn_tensor *dst, nn_tensor *src);
int nn_inplace_fill(const char *op, nn_tensor *t, double value);
int nn_inplace_zero(nn_tensor *t);

/* ---- elementwise ----------------------------------------------------- */
typedef enum {
  NN_ADD, NN_SUB, NN_MUL, NN_DIV, NN_POW, NN_MAXIMUM, NN_MINIMUM,
  NN_GT, NN_GE, NN_LT, NN_LE, NN_EQ, NN_NE,
  /* issue 12's math: atan2 divides (integers give float32), fmod and
     remainder keep integers (a zero divisor is then an error), the logical
     ops give bool and take any nonzero (NaN too) as true */
  NN_ATAN2, NN_FMOD, NN_REMAINDER, NN_LOGICAL_AND, NN_LOGICAL_OR, NN_LOGICAL_XOR,
  /* a / b rounded toward -inf (floor_divide, Lua's //) or toward 0 (div's
     rounding_mode "trunc"): integers stay integers (a zero divisor is then
     an error), the gradient is zero */
  NN_FLOOR_DIVIDE, NN_TRUNC_DIVIDE
} nn_binary_op;

typedef enum {
  NN_NEG, NN_EXP, NN_LOG, NN_SQRT, NN_ABS, NN_SIGMOID, NN_TANH, NN_RELU, NN_STEP,
  NN_SIN, NN_COS, NN_SIGN, NN_FLOOR, NN_CEIL, NN_ROUND,
  /* issue 12's math: square and trunc keep integers, frac refuses them;
     the tests (isnan ... logical_not) give bool and have no gradient */
  NN_LOG1P, NN_EXPM1, NN_LOG2, NN_LOG10, NN_RSQRT, NN_RECIPROCAL, NN_SQUARE, NN_TAN, NN_ASIN,
  NN_ACOS, NN_ATAN, NN_SINH, NN_COSH, NN_ERF, NN_ERFINV, NN_TRUNC, NN_FRAC, NN_ISNAN, NN_ISINF,
  NN_ISFINITE, NN_LOGICAL_NOT
} nn_unary_op;

const char *nn_binary_op_name(nn_binary_op op);
const char *nn_unary_op_name(nn_unary_op op);
/* Result dtypes follow PyTorch's promotion: tensors with dimensions outrank
   0-dimensional ones, which outrank numbers, unless the lower tier brings a
   higher category (bool < integer < floating); division is true division.
   Subtraction with a bool operand, and the power of two bools, are refused. */
/* a op b with broadcasting. */
nn_tensor *nn_binary(nn_binary_op op, nn_tensor *a, nn_tensor *b);
/* How a number takes part in promotion: PyTorch's Python int or float.
   NN_NUMBER_AUTO: an integer when the value is whole, else a float. */
typedef enum { NN_NUMBER_AUTO = 0, NN_NUMBER_INTEGER, NN_NUMBER_FLOAT } nn_number_kind;
/* a op s, or s op a when scalar_first; maximum and minimum with a number
   are PyTorch's clamp_min and clamp_max. */
nn_tensor *nn_binary_number(nn_binary_op op, nn_tensor *a, double s, int scalar_first,
                            nn_number_kind kind);
nn_tensor *nn_binary_scalar(nn_binary_op op, nn_tensor *a, double s, int scalar_first); /* AUTO */
/* a = a op b (b broadcast to a's shape); a = a op s. b may share a's
   storage only as the very same elements (else an error: it overlaps). */
int nn_binary_(nn_binary_op op, nn_tensor *a, nn_tensor *b);
int nn_binary_number_(nn_binary_op op, nn_tensor *a, double s, nn_number_kind kind);
int nn_binary_scalar_(nn_binary_op op, nn_tensor *a, double s); /* AUTO */
/* Integers keep their dtype through the ops exact on them (neg, abs, sign,
   floor, ceil, round, relu; step gives int64), the others give float32; a
   bool keeps its dtype through sign, and neg, abs, relu and the roundings
   of a bool are refused, as PyTorch refuses them. */
nn_tensor *nn_unary(nn_unary_op op, nn_tensor *a);
int nn_unary_(nn_unary_op op, nn_tensor *a);
/* min(max(a, lo), hi), PyTorch's: lo > hi gives hi, a NaN bound gives NaN;
   -INFINITY / INFINITY for a bound that is not given. */
nn_tensor *nn_clamp(nn_tensor *a, double lo, double hi);
int nn_clamp_(nn_tensor *a, double lo, double hi);

/* ---- issue 12's math (pointwise.c) ----------------------------------- */
/* NaN, +inf, -inf replaced (a NaN posinf or neginf: the dtype's largest or
   lowest finite value); integer tensors come back as a copy. */
nn_tensor *nn_nan_to_num(nn_tensor *a, double nan, double posinf, double neginf);
/* start + weight (end - start), weight a tensor or (weight NULL) the number w. */
nn_tensor *nn_lerp(nn_tensor *start, nn_tensor *end, nn_tensor *weight, double w);
/* *result = 1 when every |a - b| <= atol + rtol |b| (PyTorch's isclose), else 0. */
int nn_allclose(nn_tensor *a, nn_tensor *b, double rtol, double atol, int equal_nan, int *result);
/* *result = 1 when a and b have one shape and equal elements. */
int nn_equal(nn_tensor *a, nn_tensor *b, int *result);

/* ---- reductions ------------------------------------------------------ */
/* dim is 0-based or NN_ALL_DIMS. */
nn_tensor *nn_sum(nn_tensor *a, int dim, int keepdim);
nn_tensor *nn_mean(nn_tensor *a, int dim, int keepdim);
/* max/min: values; when indices is not NULL and dim is a dimension, the
   0-based positions as int64 too. */
nn_tensor *nn_max(nn_tensor *a, int dim, int keepdim, nn_tensor **indices);
nn_tensor *nn_min(nn_tensor *a, int dim, int keepdim, nn_tensor **indices);
nn_tensor *nn_argmax(nn_tensor *a, int dim, int keepdim); /* 0-based, int64 */
nn_tensor *nn_argmin(nn_tensor *a, int dim, int keepdim);
/* The p-norm over dim (or NN_ALL_DIMS): p = 0 counts the nonzeros, +-INFINITY
   is the largest (smallest) magnitude, any other p (sum |x|^p)^(1/p).
   Gradients are PyTorch's norm_backward (none for p = 0). */
nn_tensor *nn_norm(nn_tensor *a, double p, int dim, int keepdim);
/* ---- reductions over several dims (issue 12): mask has bit i set for
   each reduced dim i (0-based) ---------------------------------------- */
nn_tensor *nn_sum_dims(nn_tensor *a, unsigned mask, int keepdim, int mean);
nn_tensor *nn_norm_dims(nn_tensor *a, double p, unsigned mask, int keepdim);
/* statistics.c. prod takes one dim or NN_ALL_DIMS, as PyTorch's; integers
   give int64. var and std divide by n - correction (1: PyTorch's unbiased
   default). amax and amin share the gradient among ties. count_nonzero
   gives int64, all and any bool. dist is the p-norm of a - b. */
nn_tensor *nn_prod(nn_tensor *a, int dim, int keepdim);
nn_tensor *nn_var(nn_tensor *a, unsigned mask, double correction, int keepdim);
nn_tensor *nn_std(nn_tensor *a, unsigned mask, double correction, int keepdim);
nn_tensor *nn_logsumexp(nn_tensor *a, unsigned mask, int keepdim);
nn_tensor *nn_amax(nn_tensor *a, unsigned mask, int keepdim);
nn_tensor *nn_amin(nn_tensor *a, unsigned mask, int keepdim);
nn_tensor *nn_count_nonzero(nn_tensor *a, unsigned mask);
nn_tensor *nn_all(nn_tensor *a, unsigned mask, int keepdim);
nn_tensor *nn_any(nn_tensor *a, unsigned mask, int keepdim);
nn_tensor *nn_dist(nn_tensor *a, nn_tensor *b, double p);
/* sort.c: along one dim (0-based); indices are 0-based int64. sort is
   stable, NaN above every number. topk's k largest (or smallest) come
   sorted; kthvalue's k counts from 1, as PyTorch's; median is the lower
   one, over dim or NN_ALL_DIMS (no indices then). */
nn_tensor *nn_cumsum(nn_tensor *a, int dim);
nn_tensor *nn_cumprod(nn_tensor *a, int dim);
nn_tensor *nn_sort(nn_tensor *a, int dim, int descending, nn_tensor **indices);
nn_tensor *nn_topk(nn_tensor *a, int64_t k, int dim, int largest, nn_tensor **indices);
nn_tensor *nn_kthvalue(nn_tensor *a, int64_t k, int dim, int keepdim, nn_tensor **indices);
nn_tensor *nn_median(nn_tensor *a, int dim, int keepdim, nn_tensor **indices);
nn_tensor *nn_unique(nn_tensor *a, nn_tensor **inverse, nn_tensor **counts);
nn_tensor *nn_mode(nn_tensor *a, int dim, int keepdim, nn_tensor **indices);
/* Sum a gradient down to a shape it was broadcast from. */
nn_tensor *nn_sum_to_shape(nn_tensor *a, int ndim, const int64_t *size);

/* ---- background threads ---------------------------------------------- */
/* A thread that sleeps on wake (under lock) until its owner hands it work,
   one per process: nn_worker_thread_start starts it unless it already runs
   in this process (a forked child has none: threads do not survive fork),
   named name (15 characters at most) and with every signal blocked. The
   first start also registers the three fork handlers with pthread_atfork;
   the child's handler must call nn_worker_thread_forget. Returns 0, or -1
   when the thread cannot start (the caller does the work itself).
   nn_worker_thread_stop sets stopping, wakes the thread and joins it: the
   thread's loop must then finish the work it was given and return. */
typedef struct {
  pthread_mutex_t lock;
  pthread_cond_t wake;
  int stopping;
  int fork_handlers_set;
  pid_t owner; /* the process the thread runs in; 0 when none runs */
  pthread_t thread;
} nn_worker_thread;
#define NN_WORKER_THREAD_INIT {.lock = PTHREAD_MUTEX_INITIALIZER, .wake = PTHREAD_COND_INITIALIZER}
int nn_worker_thread_start(nn_worker_thread *w, const char *name, void *(*main)(void *),
                           void (*before_fork)(void), void (*after_fork_parent)(void),
                           void (*after_fork_child)(void));
void nn_worker_thread_stop(nn_worker_thread *w);
void nn_worker_thread_forget(nn_worker_thread *w);

/* ---- linear algebra -------------------------------------------------- */
/* Threads of the one BLAS pool the engine uses (OpenBLAS's own). */
void nn_set_num_threads(int n);
int nn_get_num_threads(void);
nn_tensor *nn_matmul(nn_tensor *a, nn_tensor *b);
/* ---- issue 12's linear algebra (linalg.c; diagonal in views.c) ------- */
/* PyTorch's torch.mm, bmm, mv, dot (shapes checked as theirs), outer, and
   beta input + alpha product for addmm (2-D) and baddbmm (3-D). */
nn_tensor *nn_mm(nn_tensor *a, nn_tensor *b);
nn_tensor *nn_bmm(nn_tensor *a, nn_tensor *b);
nn_tensor *nn_mv(nn_tensor *a, nn_tensor *v);
nn_tensor *nn_dot(nn_tensor *a, nn_tensor *b);
nn_tensor *nn_outer(nn_tensor *a, nn_tensor *b);
nn_tensor *nn_addmm(nn_tensor *input, nn_tensor *a, nn_tensor *b, double beta, double alpha);
nn_tensor *nn_baddbmm(nn_tensor *input, nn_tensor *a, nn_tensor *b, double beta, double alpha);
/* The view of the diagonal offset above (below, when negative) the main
   one of dims d1 and d2, those dims replaced by a last one. */
nn_tensor *nn_diagonal(nn_tensor *t, int64_t offset, int d1, int d2);
/* tril keeps the elements on and below diagonal k of the last two dims,
   triu on and above; the rest are 0. */
nn_tensor *nn_tril(nn_tensor *t, int64_t k, int upper);
/* 1-D: the matrix with t on diagonal k; 2-D: diagonal k as 1-D. */
nn_tensor *nn_diag(nn_tensor *t, int64_t k);
nn_tensor *nn_trace(nn_tensor *t);
/* einsum over terms of letters ("ij,jk->ik"; "->" optional), n operands. */
nn_tensor *nn_einsum(const char *equation, nn_tensor *const *operands, int n);
/* y = x w^T + b; x: (N, in) or (in), w: (out, in), b: (out) or NULL. */
nn_tensor *nn_linear(nn_tensor *x, nn_tensor *w, nn_tensor *b);

/* ---- losses ---------------------------------------------------------- */
typedef enum { NN_REDUCTION_NONE = 0, NN_REDUCTION_MEAN, NN_REDUCTION_SUM } nn_reduction;
int nn_reduction_from_name(const char *name); /* -1 when unknown */
nn_tensor *nn_mse_loss(nn_tensor *input, nn_tensor *target, nn_reduction reduction);
nn_tensor *nn_bce_loss(nn_tensor *input, nn_tensor *target, nn_tensor *weight,
                       nn_reduction reduction);

/* ---- activations (activations.c) ------------------------------------- */
/* Elementwise activations with up to two parameters (a, b); the ones
   without parameters ignore them. Formulas follow PyTorch 1.13. */
typedef enum {
  NN_ACT_LEAKY_RELU,   /* a: negative_slope (>= 0) */
  NN_ACT_ELU,          /* a: alpha (>= 0) */
  NN_ACT_SELU,         /* ELU with the paper's alpha and scale */
  NN_ACT_SILU,         /* x sigmoid(x), also called swish */
  NN_ACT_GELU,         /* x Phi(x), the exact erf form */
  NN_ACT_GELU_TANH,    /* GELU's tanh approximation */
  NN_ACT_SOFTPLUS,     /* a: beta (> 0), b: threshold */
  NN_ACT_MISH,         /* x tanh(softplus(x)) */
  NN_ACT_HARDTANH,     /* a: min_val, b: max_val (min_val <= max_val) */
  NN_ACT_HARDSIGMOID,  /* clamp(x / 6 + 1 / 2, 0, 1) */
  NN_ACT_LOG_SIGMOID,  /* log(sigmoid(x)) */
  NN_ACT_SOFTSIGN,     /* x / (1 + |x|) */
  NN_ACT_HARDSWISH,    /* x hardsigmoid(x) */
  NN_ACT_CELU,         /* a: alpha (!= 0): max(0, x) + min(0, alpha (e^(x/alpha) - 1)) */
  NN_ACT_SOFTSHRINK,   /* a: lambd (>= 0): x -+ lambd outside [-lambd, lambd], else 0 */
  NN_ACT_HARDSHRINK,   /* a: lambd: x outside [-lambd, lambd], else 0 */
  NN_ACT_TANHSHRINK,   /* x - tanh(x) */
  NN_ACT_THRESHOLD,    /* a: threshold, b: value: x > threshold ? x : value */
  NN_ACT_COUNT
} nn_activation_op;

/* "leaky_relu", "gelu", ...; NULL for a value outside the enum. */
const char *nn_activation_op_name(nn_activation_op op);
/* op(x) elementwise; x float32 or float64. */
nn_tensor *nn_activation(nn_activation_op op, nn_tensor *x, double a, double b);
/* softmax (log_form = 0) or log_softmax (log_form = 1) along dim (0-based,
   negative from the end), in the max-subtracted form. */
nn_tensor *nn_softmax(nn_tensor *x, int dim, int log_form);
/* x > 0 ? x : weight * x; weight holds one value, or one per channel, the
   channel being dim 1 of an x with at least 2 dims. */
nn_tensor *nn_prelu(nn_tensor *x, nn_tensor *weight);

/* ---- losses beyond MSE and BCE (loss.c) ------------------------------ */
/* Unless said otherwise, input and target have one shape and one dtype
   (float32 or float64), and the target may require grad. With d = x - y: */
/* l = |d| */
nn_tensor *nn_l1_loss(nn_tensor *input, nn_tensor *target, nn_reduction reduction);
/* l = 0.5 d^2 / beta where |d| < beta, else |d| - 0.5 beta; beta >= 0 */
nn_tensor *nn_smooth_l1_loss(nn_tensor *input, nn_tensor *target, nn_reduction reduction,
                             double beta);
/* l = 0.5 d^2 where |d| < delta, else delta (|d| - 0.5 delta); delta > 0 */
nn_tensor *nn_huber_loss(nn_tensor *input, nn_tensor *target, nn_reduction reduction,
                         double delta);
/* Binary cross-entropy of logits x, in the form that never overflows:
   l = w ((1 - y) x + (1 + (pos_weight - 1) y) log(1 + exp(-x))).
   weight and pos_weight broadcast to the input's shape; NULL for none. */
nn_tensor *nn_bce_with_logits_loss(nn_tensor *input, nn_tensor *target, nn_tensor *weight,
                                   nn_tensor *pos_weight, nn_reduction reduction);

/* Options of the losses over C classes; NULL means the defaults
   {NULL, NN_REDUCTION_MEAN, -100, 0, 0}, PyTorch's. */
typedef struct {
  nn_tensor *weight;       /* (C): each class's weight, or NULL */
  nn_reduction reduction;  /* a weighted mean divides by the weights of the targets */
  int64_t ignore_index;    /* a label, as written in target, that adds nothing */
  double label_smoothing;  /* cross_entropy only, in [0, 1] */
  int64_t first_label;     /* the label of the first class: 0 in C, 1 from Lua */
} nn_class_loss_options;
/* Input: logits (N, C), (C) or (N, C, d1, ...). Target: class labels
   (int64, or whole numbers in a float tensor) of shape (N), () or
   (N, d1, ...), or class probabilities of the input's shape and dtype. */
nn_tensor *nn_cross_entropy_loss(nn_tensor *input, nn_tensor *target,
                                 const nn_class_loss_options *options);
/* The same over log-probabilities, with class labels only. */
nn_tensor *nn_nll_loss(nn_tensor *input, nn_tensor *target, const nn_class_loss_options *options);

/* kl_div's reductions: those of nn_reduction, or this one, PyTorch's
   "batchmean": the sum divided by the input's first size. */
#define NN_REDUCTION_BATCHMEAN 3
/* Input: log-probabilities; target: probabilities (log-probabilities when
   log_target). l = y (log y - x), or exp(y) (y - x). */
nn_tensor *nn_kl_div_loss(nn_tensor *input, nn_tensor *target, int reduction, int log_target);
/* CTC's loss per sample (N) over log_probs (T, N, C): targets (N, S) int64
   0-based labels padded past target_lengths, the lengths int64 (N), blank
   0-based; zero_infinity sets the loss and gradient of an impossible
   alignment to 0. Backward: CtcLossBackward0, first order only. */
nn_tensor *nn_ctc_loss(nn_tensor *log_probs, nn_tensor *targets, nn_tensor *input_lengths,
                       nn_tensor *target_lengths, int64_t blank, int zero_infinity);

/* ---- autograd -------------------------------------------------------- */
int nn_grad_enabled(void);
void nn_set_grad_enabled(int enabled);
int nn_set_requires_grad(nn_tensor *t, int requires_grad);
/* Backpropagate from t. grad is NULL for a one-element t (taken as 1). */
int nn_backward(nn_tensor *t, nn_tensor *grad, int retain_graph);
/* The same; with create_graph the pass records itself (gradients of
   gradients): backward ops record nodes, and a leaf's .grad becomes a new
   tensor with a history (its old value plus the new part) on each pass. */
int nn_backward_graph(nn_tensor *t, nn_tensor *grad, int retain_graph, int create_graph);
/* PyTorch's torch.autograd.grad: the gradients of outputs (each started
   from grad_outputs[i], or 1 for a one-element output when grad_outputs
   or its entry is NULL) with respect to inputs, into results[i] (new
   references; NULL for an input the outputs do not depend on, which is an
   error unless allow_unused). No .grad is touched; only the nodes that
   lead to an input run. */
typedef struct {
  int retain_graph, create_graph, allow_unused;
} nn_grad_options;
int nn_grad(int n_out, nn_tensor *const *outputs, nn_tensor *const *grad_outputs, int n_in,
            nn_tensor *const *inputs, const nn_grad_options *o, nn_tensor **results);
/* Anomaly mode: while on, each recorded node keeps where (a string that
   where() returns, malloc'd, freed with the node; NULL records nothing)
   the op was called, and backward stops at the first node whose gradient
   holds a NaN, naming it and that place. */
void nn_set_detect_anomaly(int enabled, char *(*where)(void));
int nn_detect_anomaly_enabled(void);
/* A user's differentiable function (nn.autograd.Function): out, computed
   from input without a graph, gets a node named name whose backward is
   fn(ctx, grad, output, &grad_input): output is out (with out's history
   while a pass records itself); grad_input a new reference of input's
   shape, or NULL for none; 0 or -1 after nn_error_set. free_ctx(ctx) runs
   when the node is freed (or attaching fails). */
typedef int (*nn_function_backward)(void *ctx, nn_tensor *grad, nn_tensor *output,
                                    nn_tensor **grad_input);
int nn_function_attach(nn_tensor *out, const char *name, nn_tensor *input,
                       nn_function_backward fn, void *ctx, void (*free_ctx)(void *));
/* Name of the operation that produced t ("AddmmBackward0"), or NULL. */
const char *nn_grad_fn_name(const nn_tensor *t);
/* A view whose storage was written to since its grad_fn was set takes its
   history from its base again (as PyTorch regenerates a view's grad_fn):
   the base may have a new one from an in-place op. The engine does this
   before it uses a tensor; call it before reading t->requires_grad or
   t->grad_fn directly. */
void nn_sync_view(nn_tensor *t);
/* Replace t's gradient (NULL clears it); zero it in place. */
int nn_set_grad(nn_tensor *t, nn_tensor *grad);
/* PyTorch's t.data = src: t, a leaf that is not a view, takes src's
   storage, shape, dtype and device, and stays the same tensor (its grad,
   requires_grad and identity kept): how a module moves its parameters to
   another device or dtype while an optimizer holds them. */
int nn_set_data(nn_tensor *t, nn_tensor *src);
void nn_zero_grad(nn_tensor *t);
/* zero_grad as a training step wants it: where nothing but t holds t's
   gradient (a contiguous CPU tensor in a storage of its own, no capture
   recording), its zeros are left unwritten (t->grad_zero_deferred), and
   the next backward writes its gradient over them instead of adding onto
   them: one pass over each weight's gradient saved, and another read.
   Elsewhere it is nn_zero_grad. A leaf's .grad must then be read through
   nn_leaf_grad, as the engine and the Lua binding do. */
void nn_zero_grad_deferred(nn_tensor *t);
/* t->grad, with the zeros a deferred zero_grad left unwritten written
   first: a leaf's gradient as every reader must see it. */
nn_tensor *nn_leaf_grad(nn_tensor *t);

/* ---- hooks: code that backward runs as it reaches a tensor -------------
   NN_HOOK_GRAD sees the gradient that arrives for t in a backward pass and
   may hand back a replacement (PyTorch's Tensor.register_hook): for a leaf,
   the sum over all of t's uses, before it is added to t->grad; for a
   computed tensor, before t's node passes it on (the hook belongs to t's
   history as it is when the hook is added: aliases share it, an in-place
   op that gives t a new history later does not take it along).
   NN_HOOK_POST_ACCUMULATE, for a leaf only, runs once t->grad holds the
   whole gradient of the pass (PyTorch's register_post_accumulate_grad_hook:
   where data-parallel training starts sending a gradient while backward
   goes on); grad is then t->grad and replace is NULL.
   A hook gets grad (borrowed) and, for NN_HOOK_GRAD, may store a new
   reference of the same shape, dtype and device in *replace. It returns
   0, or -1 after nn_error_set: backward stops and returns -1 with that
   message. Hooks of a tensor run in the order they were added, with
   gradient recording off; they may compute with tensors, but not start
   another backward. */
typedef enum { NN_HOOK_GRAD, NN_HOOK_POST_ACCUMULATE } nn_hook_kind;
typedef int (*nn_hook_fn)(void *ctx, nn_tensor *grad, nn_tensor **replace);
/* Adds a hook to t (which must require grad); returns its id (> 0) for
   nn_remove_hook, or -1. free_ctx(ctx), when not NULL, runs when the hook
   is removed or its tensor (or node) is freed, and when adding fails. */
int64_t nn_add_hook(nn_tensor *t, nn_hook_kind kind, nn_hook_fn fn, void *ctx,
                    void (*free_ctx)(void *));
/* 1 when t (or its history) had the hook and it is gone, 0 when not. A hook
   may remove itself, or others, while it runs. */
int nn_remove_hook(nn_tensor *t, int64_t id);
/* From a hook: fn(ctx, failed) runs after the current backward has walked
   the whole graph, before nn_backward returns, in the order queued
   (PyTorch's queue_callback: how data-parallel training waits for its last
   gradients). It always runs once: failed is 1 when backward stopped on an
   error, and the error it may report then is dropped for the first one;
   else its -1 is backward's error. Returns -1 outside a backward. */
typedef int (*nn_backward_callback)(void *ctx, int failed);
int nn_queue_backward_callback(nn_backward_callback fn, void *ctx);

/* ---- raw memory, for libraries that move bytes (MPI, NCCL) -------------
   The address of t's first element on its device (a device pointer for a
   CUDA tensor); a contiguous t holds nn_numel(t) elements from there.
   After writing through it, call nn_tensor_written(t): backward checks a
   tensor's version to refuse values that changed after they were saved. */
void *nn_tensor_data(nn_tensor *t);
void nn_tensor_written(nn_tensor *t);

/* ---- optimizers: one fused loop per parameter ------------------------ */
typedef struct {
  double lr, momentum, dampening, weight_decay;
  int nesterov, maximize;
} nn_sgd_options;
/* *momentum_buffer is created on the first step when momentum != 0. */
int nn_sgd_step(nn_tensor *param, nn_tensor **momentum_buffer, const nn_sgd_options *opt);
/* Plain SGD (momentum 0) on a fixed list of parameters, step after step (a
   captured step's optimizer): each step is nn_sgd_step(params[i], &none,
   opt) for every i, in order, bit for bit, errors and all; a parameter
   whose gradient is the tensor it had at the previous step (a tensor's
   geometry and storage never change) is not checked again. The list
   retains the parameters and the gradients it has seen. */
typedef struct nn_sgd_list nn_sgd_list;
nn_sgd_list *nn_sgd_list_new(nn_tensor *const *params, int64_t n);
int nn_sgd_list_step(nn_sgd_list *list, const nn_sgd_options *opt);
void nn_sgd_list_free(nn_sgd_list *list);

/* ---- more optimizers (optim.c) -------------------------------------- */
/* Each step updates one parameter from its .grad in one fused loop, in
   the order of operations of PyTorch 1.13's _single_tensor_* functions;
   a parameter without .grad is left alone. The state holds references:
   a buffer that is NULL is created on the first step (the caller then owns
   it), and on failure nothing in the state changes. */

/* Adam (Kingma and Ba, 2015) and, with decoupled_weight_decay, AdamW
   (Loshchilov and Hutter, 2019): torch/optim/adam.py and adamw.py. */
typedef struct {
  double lr, beta1, beta2, eps, weight_decay;
  int amsgrad, maximize;
  int decoupled_weight_decay; /* AdamW: p *= 1 - lr wd, instead of grad += wd p */
} nn_adam_options;
typedef struct {
  int64_t step; /* steps taken; the bias corrections use it */
  nn_tensor *exp_avg, *exp_avg_sq, *max_exp_avg_sq; /* the last only with amsgrad */
} nn_adam_state;
int nn_adam_step(nn_tensor *param, nn_adam_state *state, const nn_adam_options *opt);

/* RMSprop (Hinton's lecture 6e; centered: Graves, 2013): torch/optim/rmsprop.py. */
typedef struct {
  double lr, alpha, eps, weight_decay, momentum;
  int centered, maximize;
} nn_rmsprop_options;
typedef struct {
  int64_t step;
  nn_tensor *square_avg, *momentum_buffer, *grad_avg; /* buffer: momentum > 0; grad_avg: centered */
} nn_rmsprop_state;
int nn_rmsprop_step(nn_tensor *param, nn_rmsprop_state *state, const nn_rmsprop_options *opt);

/* Adagrad (Duchi et al., 2011): torch/optim/adagrad.py. */
typedef struct {
  double lr, lr_decay, weight_decay, initial_accumulator_value, eps;
  int maximize;
} nn_adagrad_options;
typedef struct {
  int64_t step;
  nn_tensor *sum; /* created filled with initial_accumulator_value */
} nn_adagrad_state;
int nn_adagrad_step(nn_tensor *param, nn_adagrad_state *state, const nn_adagrad_options *opt);

/* Issue 13's optimizers: torch/optim/adadelta.py, adamax.py, nadam.py,
   radam.py, asgd.py, rprop.py. A state whose step is 0 is a new one: its
   scalars (NAdam's mu_product, ASGD's eta and mu) start as PyTorch's do. */
typedef struct {
  double lr, rho, eps, weight_decay;
  int maximize;
} nn_adadelta_options;
typedef struct {
  int64_t step;
  nn_tensor *square_avg, *acc_delta;
} nn_adadelta_state;
int nn_adadelta_step(nn_tensor *param, nn_adadelta_state *state, const nn_adadelta_options *opt);

typedef struct {
  double lr, beta1, beta2, eps, weight_decay;
  int maximize;
} nn_adamax_options;
typedef struct {
  int64_t step;
  nn_tensor *exp_avg, *exp_inf;
} nn_adamax_state;
int nn_adamax_step(nn_tensor *param, nn_adamax_state *state, const nn_adamax_options *opt);

/* PyTorch 1.13's NAdam and RAdam have no maximize */
typedef struct {
  double lr, beta1, beta2, eps, weight_decay, momentum_decay;
} nn_nadam_options;
typedef struct {
  int64_t step;
  double mu_product; /* a float32 number, as PyTorch keeps it in a float32 tensor */
  nn_tensor *exp_avg, *exp_avg_sq;
} nn_nadam_state;
int nn_nadam_step(nn_tensor *param, nn_nadam_state *state, const nn_nadam_options *opt);

typedef struct {
  double lr, beta1, beta2, eps, weight_decay;
} nn_radam_options;
typedef struct {
  int64_t step;
  nn_tensor *exp_avg, *exp_avg_sq;
} nn_radam_state;
int nn_radam_step(nn_tensor *param, nn_radam_state *state, const nn_radam_options *opt);

typedef struct {
  double lr, lambd, alpha, t0, weight_decay;
  int maximize;
} nn_asgd_options;
typedef struct {
  int64_t step;
  double eta, mu; /* float32 numbers, as PyTorch's float32 tensors */
  nn_tensor *ax;  /* the average of the parameter */
} nn_asgd_state;
int nn_asgd_step(nn_tensor *param, nn_asgd_state *state, const nn_asgd_options *opt);

typedef struct {
  double lr, etaminus, etaplus, step_size_min, step_size_max;
  int maximize;
} nn_rprop_options;
typedef struct {
  int64_t step;
  nn_tensor *prev, *step_size; /* step_size starts at lr */
} nn_rprop_state;
int nn_rprop_step(nn_tensor *param, nn_rprop_state *state, const nn_rprop_options *opt);

/* Gradient clipping, torch/nn/utils/clip_grad.py. Both skip entries whose
   .grad is NULL. clip_grad_norm scales every gradient by
   min(1, max_norm / (total + 1e-6)), where total is the norm_type-norm of
   all gradients together (INFINITY: the largest magnitude), and stores the
   total in *total_norm (rounded to float32 when every gradient is float32,
   as PyTorch's float32 result is); error_if_nonfinite refuses a NaN or
   infinite total. clip_grad_value clamps each gradient to [-v, v]. */
int nn_clip_grad_norm(nn_tensor *const *params, int64_t n, double max_norm, double norm_type,
                      int error_if_nonfinite, double *total_norm);
int nn_clip_grad_value(nn_tensor *const *params, int64_t n, double clip_value);

/* ---- random numbers: PyTorch's CPU generator, draw for draw ---------- */
void nn_manual_seed(uint64_t seed);
uint64_t nn_initial_seed(void);
/* The generator's whole state, for checkpoints. */
size_t nn_rng_state_size(void);
void nn_rng_get_state(void *buf);
int nn_rng_set_state(const void *buf, size_t len);
/* The CUDA generator alone (the backend's own, counter-based Philox;
   math/random.h): nn_manual_seed seeds it too, as torch.manual_seed seeds
   every device. Without CUDA, seeding does nothing. */
void nn_cuda_manual_seed(uint64_t seed);
uint64_t nn_cuda_initial_seed(void);
int nn_uniform_(nn_tensor *t, double from, double to);
int nn_normal_(nn_tensor *t, double mean, double std);
/* Integers uniform in [low, high), PyTorch's randint draw for draw (on the
   CPU; move the result to another device). */
nn_tensor *nn_randint(int64_t low, int64_t high, nn_dtype dtype, int ndim, const int64_t *size);
/* A random permutation of first .. first + n - 1 (int64), PyTorch's
   randperm draw for draw when first is 0. */
nn_tensor *nn_randperm(int64_t n, int64_t first);

/* ---- printing -------------------------------------------------------- */
/* PyTorch's rendering: "tensor([[0.5000, 1.0000]], dtype=torch.float64)".
   Returns a malloc'd string the caller frees, or NULL. */
char *nn_format(const nn_tensor *t);

/* ---- files (io.c) ---------------------------------------------------- */
/* An IDX file (the MNIST format), plain or gzip-compressed, as a tensor of
   the file's shape. dtype: an nn_dtype, or -1 for the natural one (int64
   for the integer element types, float32/float64 for the float ones);
   every element is multiplied by scale (1 keeps the values). A bad magic
   number, a truncated file, data that disagrees with the header or a path
   that is not a regular file is an error. Memory is taken as the data
   arrives, never on the header's word alone. */
nn_tensor *nn_read_idx(const char *path, int dtype, double scale);
/* rows[start .. start+count) (0-based int64 row indices) of src, gathered
   into a new contiguous tensor of count rows: a data loader's batch. */
nn_tensor *nn_gather_rows(const nn_tensor *src, const nn_tensor *rows, int64_t start,
                          int64_t count);
/* The same, refilling buf in place (and returning it, retained) when buf is
   a batch of that dtype and shape that nothing else holds: one reference
   to it and to its storage, no autograd; otherwise a new tensor. */
/* The same gather, done by a background thread while the caller goes on
   (a data loader prefetching the next batch during a training step).
   nn_gather_rows_start checks everything, makes the batch tensor and starts
   the copy; the tensor must not be read before nn_gather_rows_finish, which
   waits for the copy and hands the batch over (NULL on failure). A job
   that is never finished must still be finished (or the copy writes into
   a released tensor). Only plain contiguous sources are gathered in the
   background; others are copied at once by start. */
typedef struct nn_gather_job nn_gather_job;
nn_gather_job *nn_gather_rows_start(const nn_tensor *src, const nn_tensor *rows, int64_t start,
                                    int64_t count);
nn_tensor *nn_gather_rows_finish(nn_gather_job *job);
/* Stops the thread that runs those copies, once the copy in flight is done
   (a later nn_gather_rows_start starts a new one). Code that may be
   unloaded with the engine (nn.so, when its Lua state closes) calls it
   first: the thread must not outlive the memory it waits on. */
void nn_prefetch_stop(void);
nn_tensor *nn_gather_rows_reuse(nn_tensor *buf, const nn_tensor *src, const nn_tensor *rows,
                                int64_t start, int64_t count);
/* A permutation of 0..n-1 (int64), a function of (seed, stream) alone
   (xoshiro256** seeded by splitmix64; Fisher-Yates). */
nn_tensor *nn_permutation(int64_t n, uint64_t seed, uint64_t stream);
/* Writes path atomically: a temporary file beside it, fsync, rename, fsync
   of the directory. On failure the old file, if any, is untouched. A
   symbolic link is followed (the file it leads to is replaced, the link
   stays); a target that is not a regular file is refused. Temporary files
   of earlier writes of path whose process is gone are removed first. */
int nn_write_file_atomic(const char *path, const void *data, size_t len);

/* safetensors: an 8-byte little-endian header length, a JSON header, the
   data. The caller parses the JSON; these check and copy the bytes. */
typedef struct {
  const char *name;   /* for messages */
  const char *dtype;  /* "F32", "F64", "I64", "BOOL"; also read: F16, BF16
                         (as float32), I32, I16, I8, U8, U16, U32 (as int64) */
  int ndim;
  int64_t shape[NN_MAX_DIMS];
  uint64_t begin, end; /* data_offsets, relative to the end of the header */
} nn_safetensors_entry;
/* "F32" for NN_FLOAT32 ...; NULL for a dtype safetensors has no name for. */
const char *nn_safetensors_dtype_name(nn_dtype dtype);
/* The header (malloc'd, NUL-terminated, *header_len bytes) after checking
   that path is a regular file and the length fits it. Like a save, it
   removes the temporary files that killed saves of path left behind. */
char *nn_safetensors_read_header(const char *path, size_t *header_len);
/* Checks every entry (known dtype, shape, offsets inside the data and of
   the shape's size, no two overlapping), then reads each into out[i]. On
   failure nothing is left in out. */
int nn_safetensors_read(const char *path, size_t header_len, const nn_safetensors_entry *entries,
                        int64_t n, nn_tensor **out);
/* Writes the header and the tensors' bytes in order, atomically. */
int nn_safetensors_write(const char *path, const char *header, size_t header_len,
                         nn_tensor *const *tensors, int64_t n);

/* ---- PyTorch's files (torch_file.c) ----------------------------------
   torch.save's format (PyTorch 1.6 and later): a ZIP file holding
   <name>/data.pkl, a pickle (protocol 2) of the saved value whose tensors
   refer to storages by key, and <name>/data/<key>, each storage's bytes
   (little-endian), beside <name>/version and, since PyTorch 2.1,
   <name>/byteorder. The pickle is read by a restricted reader that runs
   nothing: it knows the few callables a tensor file names
   (collections.OrderedDict, torch._utils._rebuild_tensor_v2,
   _rebuild_tensor and _rebuild_parameter, torch.Size, the storage types,
   _codecs.encode and bytes for bytes) and refuses any other, and any
   opcode that would build an object of a class. */
typedef enum {
  NN_PT_NONE, NN_PT_BOOL, NN_PT_INT, NN_PT_FLOAT, NN_PT_STRING, NN_PT_BYTES,
  NN_PT_LIST, NN_PT_TUPLE, NN_PT_DICT, NN_PT_TENSOR
} nn_pt_kind;

/* One value of a file. A file's values form a tree that may share
   subtrees (a pickle's memo), never a cycle; all are freed with the file. */
typedef struct nn_pt_value {
  nn_pt_kind kind;
  int64_t integer;            /* NN_PT_BOOL (0 or 1), NN_PT_INT */
  double number;              /* NN_PT_FLOAT */
  const char *bytes;          /* NN_PT_STRING (UTF-8), NN_PT_BYTES: len bytes */
  size_t len;
  struct nn_pt_value **items; /* NN_PT_LIST, NN_PT_TUPLE: count items; NN_PT_DICT: count
                                 pairs, each key then value, in the file's order */
  int64_t count;
  int ordered;                /* NN_PT_DICT: a collections.OrderedDict */
  struct nn_pt_value *state;  /* NN_PT_DICT: an OrderedDict's attributes (a dict,
                                 e.g. a state_dict's _metadata), or NULL */
  nn_tensor *tensor;          /* NN_PT_TENSOR: held by the file; retain to keep it.
                                 Tensors saved over one storage share it here too. */
  int parameter;              /* NN_PT_TENSOR: saved as a torch.nn.Parameter */
} nn_pt_value;

typedef struct nn_pt_file nn_pt_file;

/* What a file holds, judged by its first bytes: NN_FILE_ZIP (a ZIP file,
   as torch.save writes), NN_FILE_PICKLE (a bare pickle: torch.save's
   legacy format) or NN_FILE_OTHER; -1 with "load: ..." when path is not a
   regular file that can be read. */
enum { NN_FILE_OTHER = 0, NN_FILE_ZIP = 1, NN_FILE_PICKLE = 2 };
int nn_file_kind(const char *path);
/* Reads a torch.save file; NULL with "load: path: cause" for anything it
   refuses (a malformed or damaged file, a callable or opcode the reader
   does not know, a tensor outside its storage, a cycle, nesting deeper
   than 200 levels, a dtype nnlua lacks). Tensors load on the CPU: float32,
   float64, int64 and bool as they are, float16 and bfloat16 as float32,
   int32, int16, int8 and uint8 as int64. */
nn_pt_file *nn_pt_read(const char *path);
const nn_pt_value *nn_pt_root(const nn_pt_file *f);
void nn_pt_close(nn_pt_file *f);

/* Elements [first, first + count) of tensor's storage, written as one
   storage record of a file. */
typedef struct {
  nn_tensor *tensor;
  int64_t first, count;
} nn_pt_storage;
/* Writes a torch.save file atomically: pickle as archive/data.pkl (the
   caller makes it; its storage keys are "0", "1", ..., the positions in
   storages), each storage as archive/data/<key>, archive/byteorder and
   archive/version. Storages on a GPU are copied to the host. */
int nn_pt_write(const char *path, const void *pickle, size_t pickle_len,
                const nn_pt_storage *storages, int64_t n);

/* ---- joining, splitting and indexing (issue 12: views.c, join.c, index.c) ----
   Index tensors are int64 and count from base: 1 from Lua, 0 from C;
   negative indices count from the end in either. */
/* A view of length elements of dim from start, every step-th (step >= 1). */
nn_tensor *nn_slice(nn_tensor *t, int dim, int64_t start, int64_t length, int64_t step);
/* A copy with the dims whose bits are set reversed. */
nn_tensor *nn_flip(nn_tensor *t, unsigned dims);
/* t takes v's geometry and history (squeeze_, t_, ...); v is consumed. */
int nn_view_inplace(const char *op, nn_tensor *t, nn_tensor *v);
nn_tensor *nn_cat(int n, nn_tensor *const *ts, int dim);
nn_tensor *nn_stack(int n, nn_tensor *const *ts, int dim);
nn_tensor *nn_repeat(nn_tensor *t, int n, const int64_t *repeats);
/* n == 0: the flattened tensor rolled by shifts[0], shape kept */
nn_tensor *nn_roll(nn_tensor *t, int n, const int64_t *shifts, const int *dims);
nn_tensor *nn_index_select(nn_tensor *t, int dim, nn_tensor *index, int base);
nn_tensor *nn_gather(nn_tensor *t, int dim, nn_tensor *index, int base);
/* src: a tensor at least index's size in every dim, or (scatter only) a
   0-dimensional value; accumulate: scatter_add */
nn_tensor *nn_scatter(nn_tensor *t, int dim, nn_tensor *index, nn_tensor *src, int accumulate,
                      int base);
nn_tensor *nn_index_add(nn_tensor *t, int dim, nn_tensor *index, nn_tensor *src, double alpha,
                        int base);
nn_tensor *nn_take(nn_tensor *t, nn_tensor *index, int base);
/* t[index[0], ..., index[k-1]]: int64 tensors broadcast together over the
   leading k dims, or one bool mask over the leading dims */
nn_tensor *nn_index(nn_tensor *t, int k, nn_tensor *const *index, int base);
int nn_index_put_(nn_tensor *t, int k, nn_tensor *const *index, nn_tensor *values, int accumulate,
                  int base);
nn_tensor *nn_where(nn_tensor *cond, nn_tensor *a, nn_tensor *b);
nn_tensor *nn_masked_fill(nn_tensor *t, nn_tensor *mask, double value);
nn_tensor *nn_masked_select(nn_tensor *t, nn_tensor *mask);
/* (count, ndim) int64 coordinates of the nonzero elements */
nn_tensor *nn_nonzero(nn_tensor *t, int base);


/* ---- convolution (conv.c) ---------------------------------------------
   2-D over (N, C, H, W); a 1-D convolution is a 2-D one of height 1. */
typedef struct {
  const char *op;             /* "conv1d", "conv2d", "conv_transpose2d": what messages name */
  int64_t stride[2];
  int64_t padding[2];         /* before the input (top, left); conv_transpose2d: both sides */
  int64_t padding_end[2];     /* after it (bottom, right); conv2d only ("same" may differ by one) */
  int64_t dilation[2];
  int64_t output_padding[2];  /* conv_transpose2d: extra rows and columns at the end */
  int64_t groups;
} nn_conv_options;
/* x (N, C, H, W), w (O, C / groups, kh, kw), b (O) or NULL: (N, O, H', W') */
nn_tensor *nn_conv2d(nn_tensor *x, nn_tensor *w, nn_tensor *b, const nn_conv_options *o);
/* x (N, Cin, H, W), w (Cin, Cout / groups, kh, kw), b (Cout) or NULL: the
   gradient of conv2d with respect to its input, plus b */
nn_tensor *nn_conv_transpose2d(nn_tensor *x, nn_tensor *w, nn_tensor *b, const nn_conv_options *o);
typedef struct {
  int64_t kernel[2], dilation[2], padding[2], stride[2];
  int64_t output_size[2]; /* fold's */
} nn_patch_options;
/* unfold: (N, C, H, W) -> (N, C kh kw, L), PyTorch's im2col; fold: the
   sum of such columns back onto (N, C, output_size) */
nn_tensor *nn_unfold(nn_tensor *x, const nn_patch_options *p);
nn_tensor *nn_fold(nn_tensor *x, const nn_patch_options *p);
/* ---- pooling, upsampling, batch normalisation (pool.c) ---------------
   Over the last two dims of a 3-d (C, H, W) or 4-d (N, C, H, W) float
   input; 1-d forms are these over an H of 1. */
typedef enum {
  NN_POOL_MAX,          /* kernel, stride, padding, dilation, ceil_mode */
  NN_POOL_AVG,          /* kernel, stride, padding, ceil_mode, count_include_pad, divisor_override */
  NN_POOL_ADAPTIVE_MAX, /* output_size */
  NN_POOL_ADAPTIVE_AVG  /* output_size */
} nn_pool_kind;
typedef struct {
  nn_pool_kind kind;
  int64_t kernel[2], stride[2], padding[2], dilation[2]; /* (h, w) */
  int ceil_mode, count_include_pad;
  int64_t divisor_override; /* 0: none */
  int64_t output_size[2];
} nn_pool2d_options;
/* PyTorch's max_pool2d, avg_pool2d, adaptive_{max,avg}_pool2d; for the
   max kinds *indices (when not NULL) gets each maximum's flat position in
   its H x W plane, counted from index_base. */
nn_tensor *nn_pool2d(nn_tensor *x, const nn_pool2d_options *o, nn_tensor **indices,
                     int64_t index_base);
/* Nearest (bilinear 0) or bilinear upsampling to out_h x out_w; scale_h,
   scale_w: the scale_factor a user gave (0: none), which nearest and
   bilinear without align_corners use as PyTorch does. */
nn_tensor *nn_upsample2d(nn_tensor *x, int bilinear, int64_t out_h, int64_t out_w, double scale_h,
                         double scale_w, int align_corners);
/* Batch normalisation of x (N, C, ...) over every dim but C (PyTorch's
   batch_norm): weight, bias, running_mean, running_var are NULL or C
   values of x's dtype; training uses the batch's statistics and moves the
   running ones (when given) by momentum, otherwise the running ones. */
nn_tensor *nn_batch_norm(nn_tensor *x, nn_tensor *weight, nn_tensor *bias,
                         nn_tensor *running_mean, nn_tensor *running_var, int training,
                         double momentum, double eps);
/* relu(nn_batch_norm(...)), bit for bit, in one pass where it can (the
   result's grad_fn is relu's). */
nn_tensor *nn_batch_norm_relu(nn_tensor *x, nn_tensor *weight, nn_tensor *bias,
                              nn_tensor *running_mean, nn_tensor *running_var, int training,
                              double momentum, double eps);

/* ---- recurrent layers (rnn.c) ------------------------------------------ */
typedef enum { NN_RNN_TANH = 0, NN_RNN_RELU, NN_RNN_LSTM, NN_RNN_GRU } nn_rnn_mode;
/* One direction of one recurrent layer over a packed sequence:
   batch_sizes (int64, on the CPU, non-increasing, its first the batch B)
   gives how many sequences are active at each of its T steps, and the rows
   of a step follow those of the step before (PyTorch's PackedSequence; a
   padded batch is T steps of B). x_gates (total x G H, total the sum of
   batch_sizes): the input's products with weight_ih, b_ih included;
   state0 (S B x H; S = 2 for LSTM: h0's rows then c0's); weights: weight_hh
   (G H x H) flattened, followed by bias_hh (G H) when the layer has one;
   reverse: the steps from the last. Returns (total + S B) x H: the output
   h of each row, then h_n (and c_n). Differentiable in x_gates, state0 and
   weights (its backward records nothing). */
nn_tensor *nn_rnn_layer(nn_rnn_mode mode, nn_tensor *x_gates, nn_tensor *state0,
                        nn_tensor *weights, nn_tensor *batch_sizes, int reverse);

/* ---- embedding (embedding.c) ----
   weight (num_embeddings, dim) looked up at int64 indices of any shape
   counting from base: the result has the indices' shape plus dim. The row
   padding_idx (0-based; -1 for none) gets no gradient; scale_grad_by_freq
   divides each row's gradient by how often the indices name it. */
nn_tensor *nn_embedding(nn_tensor *weight, nn_tensor *indices, int64_t padding_idx,
                        int scale_grad_by_freq, int base);
/* The weight's gradient from the result's (the backward op of nn_embedding). */
nn_tensor *nn_embedding_backward(nn_tensor *grad, nn_tensor *indices, int64_t num_embeddings,
                                 int64_t padding_idx, int scale_grad_by_freq, int base);
/* In place, unrecorded: each row the indices name whose norm_type-norm
   exceeds max_norm is scaled to max_norm (PyTorch's embedding_renorm_). */
int nn_embedding_renorm_(nn_tensor *weight, nn_tensor *indices, double max_norm, double norm_type,
                         int base);

/* ---- captured steps (capture.c) ----------------------------------------
   A plan is one run of a function (a training step) recorded as the kernel
   calls its ops made, each with its arguments by value: the geometry and
   the device pointers of the buffers. Replaying it calls the same kernels
   on the same buffers again, with no front, no autograd and no
   allocation: the plan keeps every storage a recorded kernel touched. The
   ops still run while they are recorded, so the recorded run is an eager
   run. What a replay cannot redo (a value read on the host, an op on a
   second device, a seed set) refuses the plan with a reason instead. */
typedef struct nn_plan nn_plan;
/* Starts recording into a new plan; NULL with an error when a capture is
   recording already (they do not nest) or memory is short. */
nn_plan *nn_capture_begin(void);
/* Stops recording: 0 when the plan can replay, -1 when something in the
   run could not be recorded (nn_plan_why says what). Free it either way. */
int nn_capture_end(nn_plan *plan);
/* Why the plan cannot replay ("capture: item() reads ..."), or NULL. */
const char *nn_plan_why(const nn_plan *plan);
/* True while a capture records (not inside a host call). */
int nn_capture_recording(void);
/* Marks the recording plan unusable, with the reason (the first one is
   kept); nothing when no capture records. */
void nn_capture_refuse(const char *fmt, ...);
/* A host call: work a replay must run again as a whole rather than as the
   kernels it made, such as an optimizer's step, which reads its learning
   rate and step count from its state at every step. fn(ctx, arg) is called
   at each replay with replay's arg, in its place among the kernels;
   free_ctx(ctx) when the plan is freed. Recording stops until
   nn_capture_host_call_done, so the call's own kernels run unrecorded. */
int nn_capture_host_call(int (*fn)(void *ctx, void *arg), void *ctx, void (*free_ctx)(void *));
void nn_capture_host_call_done(void);
/* Runs the plan again; arg goes to its host calls. */
int nn_plan_replay(nn_plan *plan, void *arg);
void nn_plan_free(nn_plan *plan);
typedef struct {
  size_t kernels;    /* kernel calls recorded */
  size_t host_calls;
  size_t storages;   /* storages the plan keeps alive */
  size_t bytes;      /* their bytes */
  size_t graphs;     /* device graphs made at replay (CUDA) */
} nn_plan_info;
void nn_plan_describe(const nn_plan *plan, nn_plan_info *info);
/* dst = src for a replay's argument, into the plan's copy of it (the same
   shape, dtype and device): nn_copy_, and for two contiguous tensors one
   copy of their bytes without its broadcast, overlap and iterator set-up. */
int nn_plan_copy_input(nn_tensor *dst, const nn_tensor *src);

/* ---- what the CPU backend runs on (config.c) ------------------------ */
/* OpenBLAS's description of its build ("OpenBLAS 0.3.21 DYNAMIC_ARCH ...")
   and the name of the kernels it runs on this processor ("SkylakeX"; where
   the user has not set OPENBLAS_CORETYPE, the engine names them from the
   processor's features: cpu/openblas_loader.c). Either loads OpenBLAS.
   The strings are OpenBLAS's, valid for the life of the process. */
const char *nn_blas_config(void);
const char *nn_blas_kernels(void);
/* The instruction set of the engine's own elementwise loops and small
   products: "avx512", "avx2" or "baseline" (NN_CPU_VECTOR caps it). */
const char *nn_cpu_capability(void);

/* Dropout's noise for a tensor like `like` (float32 or float64, any
   device): bernoulli(1 - p) / (1 - p) in like's dtype and shape, on the
   CPU, drawn as nn.rand(like's shape, float64) < 1 - p would draw it
   (PyTorch 1.13's CPU dropout, value for value). 1 with *noise set; 0 when
   it does not make it (a capture records, or another dtype): make it from
   ops; -1 on error (p outside (0, 1)). */
int nn_dropout_noise(const nn_tensor *like, double p, nn_tensor **noise);
/* Layer normalisation of x over rows of its last n values (n the product
   of the normalized shape), y = (x - mean) / sqrt(var + eps) w + b (w, b:
   n values each, or NULL), recorded for autograd: 1 with *out set; 0 when
   it does not run it (x not float32 or float64 on the CPU, w or b of
   another dtype, device or size, a capture recording): make it from ops;
   -1 on error. */
int nn_layer_norm(nn_tensor *x, int64_t n, nn_tensor *w, nn_tensor *b, double eps, nn_tensor **out);

#ifdef __cplusplus
}
#endif

#endif

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

#include <stddef.h>
#include <stdint.h>

#define NN_MAX_DIMS 8
/* Reductions over every element take this in place of a dimension. */
#define NN_ALL_DIMS (-1000)

typedef enum { NN_FLOAT32 = 0, NN_FLOAT64, NN_INT64, NN_BOOL, NN_DTYPE_COUNT } nn_dtype;
typedef enum { NN_CPU = 0, NN_CUDA, NN_DEVICE_COUNT } nn_device;

typedef struct nn_storage nn_storage;
typedef struct nn_node nn_node;

typedef struct nn_tensor {
  int refcount;
  nn_dtype dtype;
  nn_device device;
  int ndim;
  int64_t size[NN_MAX_DIMS];
  int64_t stride[NN_MAX_DIMS]; /* in elements */
  int64_t offset;              /* in elements, into storage */
  nn_storage *storage;
  int requires_grad; /* a leaf that collects .grad, or a result that needs one */
  struct nn_tensor *grad;
  nn_node *grad_fn; /* the operation that produced it; NULL for a leaf */
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

/* ---- properties ------------------------------------------------------ */
const char *nn_dtype_name(nn_dtype dtype);  /* "float32" */
int nn_dtype_from_name(const char *name);   /* -1 when unknown */
size_t nn_dtype_size(nn_dtype dtype);
int nn_dtype_is_floating(nn_dtype dtype);
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
/* dst[...] = src, src broadcast to dst's shape; no autograd. */
int nn_copy_(nn_tensor *dst, const nn_tensor *src);
/* Refuses (-1, with an error naming op) an in-place write to t that
   autograd could not follow: a leaf that requires grad, or a graph node. */
int nn_check_inplace(const char *op, nn_tensor *t);
int nn_fill_(nn_tensor *t, double value);

/* ---- elementwise ----------------------------------------------------- */
typedef enum {
  NN_ADD, NN_SUB, NN_MUL, NN_DIV, NN_POW, NN_MAXIMUM, NN_MINIMUM,
  NN_GT, NN_GE, NN_LT, NN_LE, NN_EQ, NN_NE
} nn_binary_op;

typedef enum {
  NN_NEG, NN_EXP, NN_LOG, NN_SQRT, NN_ABS, NN_SIGMOID, NN_TANH, NN_RELU, NN_STEP,
  NN_SIN, NN_COS, NN_SIGN, NN_FLOOR, NN_CEIL, NN_ROUND
} nn_unary_op;

const char *nn_binary_op_name(nn_binary_op op);
const char *nn_unary_op_name(nn_unary_op op);
/* a op b with broadcasting. */
nn_tensor *nn_binary(nn_binary_op op, nn_tensor *a, nn_tensor *b);
/* a op s, or s op a when scalar_first. */
nn_tensor *nn_binary_scalar(nn_binary_op op, nn_tensor *a, double s, int scalar_first);
/* a = a op b (b broadcast to a's shape); a = a op s. */
int nn_binary_(nn_binary_op op, nn_tensor *a, nn_tensor *b);
int nn_binary_scalar_(nn_binary_op op, nn_tensor *a, double s);
nn_tensor *nn_unary(nn_unary_op op, nn_tensor *a);
int nn_unary_(nn_unary_op op, nn_tensor *a);
/* NAN for a bound that is not given. */
nn_tensor *nn_clamp(nn_tensor *a, double lo, double hi);
int nn_clamp_(nn_tensor *a, double lo, double hi);

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
nn_tensor *nn_norm(nn_tensor *a, double p);
/* Sum a gradient down to a shape it was broadcast from. */
nn_tensor *nn_sum_to_shape(nn_tensor *a, int ndim, const int64_t *size);

/* ---- linear algebra -------------------------------------------------- */
nn_tensor *nn_matmul(nn_tensor *a, nn_tensor *b);
/* y = x w^T + b; x: (N, in) or (in), w: (out, in), b: (out) or NULL. */
nn_tensor *nn_linear(nn_tensor *x, nn_tensor *w, nn_tensor *b);

/* ---- losses ---------------------------------------------------------- */
typedef enum { NN_REDUCTION_NONE = 0, NN_REDUCTION_MEAN, NN_REDUCTION_SUM } nn_reduction;
int nn_reduction_from_name(const char *name); /* -1 when unknown */
nn_tensor *nn_mse_loss(nn_tensor *input, nn_tensor *target, nn_reduction reduction);
nn_tensor *nn_bce_loss(nn_tensor *input, nn_tensor *target, nn_tensor *weight,
                       nn_reduction reduction);

/* ---- autograd -------------------------------------------------------- */
int nn_grad_enabled(void);
void nn_set_grad_enabled(int enabled);
int nn_set_requires_grad(nn_tensor *t, int requires_grad);
/* Backpropagate from t. grad is NULL for a one-element t (taken as 1). */
int nn_backward(nn_tensor *t, nn_tensor *grad, int retain_graph);
/* Name of the operation that produced t ("AddmmBackward0"), or NULL. */
const char *nn_grad_fn_name(const nn_tensor *t);
/* Replace t's gradient (NULL clears it); zero it in place. */
int nn_set_grad(nn_tensor *t, nn_tensor *grad);
void nn_zero_grad(nn_tensor *t);

/* ---- optimizers: one fused loop per parameter ------------------------ */
typedef struct {
  double lr, momentum, dampening, weight_decay;
  int nesterov, maximize;
} nn_sgd_options;
/* *momentum_buffer is created on the first step when momentum != 0. */
int nn_sgd_step(nn_tensor *param, nn_tensor **momentum_buffer, const nn_sgd_options *opt);

/* ---- random numbers: PyTorch's CPU generator, draw for draw ---------- */
void nn_manual_seed(uint64_t seed);
uint64_t nn_initial_seed(void);
/* The generator's whole state, for checkpoints. */
size_t nn_rng_state_size(void);
void nn_rng_get_state(void *buf);
int nn_rng_set_state(const void *buf, size_t len);
int nn_uniform_(nn_tensor *t, double from, double to);
int nn_normal_(nn_tensor *t, double mean, double std);

/* ---- printing -------------------------------------------------------- */
/* PyTorch's rendering: "tensor([[0.5000, 1.0000]], dtype=torch.float64)".
   Returns a malloc'd string the caller frees, or NULL. */
char *nn_format(const nn_tensor *t);

#endif

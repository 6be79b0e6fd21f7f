/* backend.h: THE backend table. Every kernel an op's front may call, for
 * one device: the CPU backend (engine/src/cpu/) and the CUDA backend
 * (engine/src/cuda/, a shared library loaded at first use) each fill one
 * `nn_backend`. A front (a file of engine/src: checks, shapes, dtypes,
 * autograd) reaches the table of its tensors' device through nn_dispatch
 * (internal.h), which turns a NULL entry into "<op>: not implemented for
 * cuda" and refuses tensors on different devices.
 *
 * Where to find an op: its front (forward, and its backward beside it,
 * which calls the backward op named here: a front of its own), the CPU
 * kernel, and the formula both the CPU and CUDA kernels compute:
 *
 *   op                         front file      backward op             CPU kernel         formula
 *   copy fill arange eye       tensor.c        (views.c, autograd.c)   cpu/copy.c         math/fill.h
 *   clone contiguous to        views.c         -                       cpu/copy.c         math/dtype.h
 *   + - * / ^ maximum compare  elementwise.c   nn_pointwise_grad       cpu/elementwise.c  math/elementwise.h
 *   neg exp log ... relu clamp elementwise.c   nn_unary_backward       cpu/elementwise.c  math/elementwise.h
 *   gelu elu silu ... softplus activations.c   nn_activation_backward  cpu/activation.c   math/activation.h
 *   softmax log_softmax prelu  activations.c   nn_softmax_backward,    cpu/activation.c   math/activation.h
 *                                              nn_prelu_backward
 *   sum mean sum_to_shape      reduce.c        (views: expand)         cpu/reduce.c       math/reduce.h
 *   max min argmax norm        reduce.c        nn_extreme_backward,    cpu/reduce.c       math/reduce.h
 *                                              nn_norm_backward
 *   prod var std amax amin     statistics.c    nn_prod_backward,       cpu/reduce.c       math/reduce.h
 *   logsumexp all any ...                      (fronts: var, std ...)
 *   cumsum cumprod sort topk   sort.c          nn_cumprod_backward,    cpu/scan.c         -
 *   kthvalue median                            nn_scatter_line_backward
 *   nan_to_num lerp allclose   pointwise.c     (fronts)                cpu/elementwise.c  math/elementwise.h
 *   matmul linear              matmul.c        nn_linear_backward      cpu/gemm.c         (BLAS)
 *   mm bmm ... einsum tril     linalg.c        (fronts; tril: select)  (gemm, elementwise) -
 *   losses                     loss.c          nn_loss_backward,       cpu/loss.c         math/loss.h
 *                                              nn_class_loss_backward
 *   optimizers, clipping       optim.c         -                       cpu/optim.c        math/optim.h
 *   rand randn randint seeds   rng.c           -                       cpu/random.c       math/random.h
 *   index_select gather        index.c         nn_index_put (and back) cpu/index.c        -
 *   scatter where nonzero ...
 *   cat stack flip roll ...    join.c          (views, index ops)      cpu/copy.c         -
 *   gather_rows (data loader)  io.c            -                       cpu/copy.c         -
 *   conv conv_transpose        conv.c          nn_conv_columns_backward cpu/conv.c        -
 *   unfold fold                                (each other's front)
 *   the strided loop           iter.c          -                       cpu/iter.c         -
 *   pool2d upsample2d          pool.c          nn_pool2d_backward,     cpu/pool.c         math/pool.h
 *   batch_norm                                 nn_upsample2d_backward,
 *                                              nn_batch_norm_backward
 *   rnn_layer (RNN LSTM GRU)   rnn.c           nn_rnn_layer_backward   cpu/rnn.c          math/rnn.h
 *   embedding                  embedding.c     nn_embedding_backward   cpu/embedding.c    -
 *
 * Conventions, for every entry:
 *  - Geometry is plain data, never an nn_tensor: an nn_iter (elementwise),
 *    an nn_reduce_geom (along dims), an nn_matrix (GEMM), or contiguous
 *    pointers with a count. Pointers are the device's; data pointers
 *    already include the tensor's offset.
 *  - An nn_iter's operand 0 is what the kernel writes; the others are read.
 *    Each kernel's comment lists its operands in order.
 *  - Every entry returns 0, or -1 with nn_error_set (the CPU: out of memory
 *    for scratch, a bad label; CUDA: a failed launch or allocation, which
 *    may also surface at the next synchronize).
 *  - A kernel never builds graph nodes nor calls a front; its scratch
 *    memory comes from its own backend.
 *  - A device without a kernel leaves its entry NULL: the front reports it,
 *    and nothing ever falls back to another device. The CPU fills every
 *    entry (tests/c/test_backend.c checks it); a CUDA backend lists the
 *    entries it lacks.
 *  - Unless an entry says otherwise, floating-point kernels take float32
 *    and float64; integer and bool operands go through nn_load/nn_store
 *    (math/dtype.h), so a new dtype is added there.
 *
 * Entries are only function pointers after `name` (the test walks them as
 * such); add one to nn_backend_entries (backend.c) as well. This header is
 * plain C that nvcc also compiles (the .cu files of cuda/ include it). */
#ifndef NN_BACKEND_H
#define NN_BACKEND_H

#include "math/common.h"

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- geometry --------------------------------------------------------- */
#define NN_ITER_MAX_OPERANDS 4

/* Strided iteration over up to four operands of one shape (operands
   broadcast to it have stride 0 there). nn_iter_init (iter.c) drops size-1
   dims and merges neighbours that are contiguous for every operand, so the
   innermost dim is as long as possible; ndim >= 1, and size[0] == 0 when
   the shape is empty. A CUDA kernel reads it by value and finds operand
   k's element of linear index i from size and stride[.][k] (row-major).
   Strides are stored dim by dim, so that stride[d] lists every operand's
   stride along dim d (what a CPU loop over that dim takes). */
typedef struct {
  int n;                                               /* operands */
  int ndim;                                            /* dims after merging, >= 1 */
  int64_t size[NN_MAX_DIMS];
  int64_t stride[NN_MAX_DIMS][NN_ITER_MAX_OPERANDS];   /* [dim][operand], in elements */
  char *data[NN_ITER_MAX_OPERANDS];                    /* each operand's first element */
  nn_dtype dtype[NN_ITER_MAX_OPERANDS];
} nn_iter;

/* A reduction's geometry: `it` runs over the kept positions (one per
   output element); each reduced position is a "line" of the reduced dims
   (rdims of them, merged like the iterator's; 0 dims: a line of one
   element). Operands come in two kinds: full-shape ones (the reduced
   input, a gradient of its shape) whose data[k] is the line's first
   element and rstride[.][k] walks the line; and kept-shape ones (the
   output, an upstream gradient, indices) with rstride[.][k] all 0. The line index
   of an element is its row-major position over rsize: for one reduced dim,
   its index along that dim; over every dim, its flat index. */
typedef struct {
  nn_iter it;
  int rdims;
  int64_t rsize[NN_MAX_DIMS];
  int64_t rstride[NN_MAX_DIMS][NN_ITER_MAX_OPERANDS]; /* [reduced dim][operand] */
} nn_reduce_geom;

/* A tensor as it lies in memory, dims unmerged and in their own order
   (the random fills visit elements in PyTorch's memory order). */
typedef struct {
  nn_dtype dtype;
  int ndim;
  int64_t size[NN_MAX_DIMS];
  int64_t stride[NN_MAX_DIMS];
  char *data;
} nn_strided;

/* Matrices of a batched product, element (b, i, j) at
   data[b batch_stride + i row_stride + j col_stride], strides in elements
   (a transposed operand is a matter of strides). */
typedef struct {
  char *data;
  int64_t batch_stride, row_stride, col_stride;
} nn_matrix;

/* c = alpha a b + beta c for each of `batch` products; a is m x k, b is
   k x n, c is m x n with col_stride 1 and row_stride >= n. beta == 0
   overwrites c (whatever it held, NaN included); k == 0 gives beta c.
   With a bias (linear's: n contiguous values of dtype), every row of c
   starts as the bias and beta is 1: c = bias + alpha a b. */
typedef struct {
  nn_dtype dtype; /* float32, float64, float16 or bfloat16, all three (a half type accumulates in float32) */
  int64_t batch, m, n, k;
  double alpha, beta;
  nn_matrix a, b, c;
  const char *bias;
} nn_gemm_args;

/* beta NN_GEMM_OVER_ZEROS (0 with its sign bit set) says that c holds
   zeros not yet written (a gradient whose zero_grad was deferred): c =
   alpha a b, bit for bit what writing the zeros and adding the product
   onto them (beta 1) gives. A backend that does not look for it
   overwrites c, as any beta 0 says. */
#define NN_GEMM_OVER_ZEROS (-0.0)
static inline int nn_gemm_over_zeros(double beta) { return beta == 0 && signbit(beta); }

/* A float32 product prepared once for a plan's replay (gemm_prepare): run
   does what gemm does with the arguments it was prepared from, the kernel
   chosen and the shapes, strides and pointers fixed; kernels and the rest
   are the backend's own. */
typedef struct nn_gemm_direct {
  void (*run)(const struct nn_gemm_direct *d);
  const void *kernels;
  int64_t m, n, k, a0, a1, b0, b1, c0;
  float alpha, beta;
  const float *a, *b, *bias;
  float *c;
  int bias_rows; /* c's rows set to the bias before the product adds onto them */
} nn_gemm_direct;

/* A kernel of one iterator prepared once for a plan's replay
   (iter_prepare): run does what the entry does with the arguments it was
   prepared from, over n elements at data (the iterator's operands). */
typedef struct nn_iter_direct {
  void (*run)(const struct nn_iter_direct *d);
  const void *kernels;
  int64_t n;
  char *data[NN_ITER_MAX_OPERANDS];
  int64_t rows; /* add_rows: the rows of n values summed into data[0] */
  double x;     /* sgd_step: the learning rate, which the caller sets before each run */
} nn_iter_direct;

/* Convolution's patches (im2col and col2im, cpu/conv.c): an image of
   `channels` planes of height x width, contiguous, samples
   image_sample_stride elements apart, and its columns: row
   (c kernel_h + i) kernel_w + j holds, for each output position
   (oy, ox) in row-major order (out_h out_w of them, contiguous), the
   image's element (oy stride_h - pad_h + i dilation_h,
   ox stride_w - pad_w + j dilation_w) of plane c, or 0 outside the image
   (the zero padding; pads are those before the image, the output size
   fixes those after). A column block of a sample starts col_sample_stride
   elements after the previous sample's, its rows col_row_stride apart:
   PyTorch's unfold layout (rows L apart, samples rows * L apart), or the
   samples side by side in each row (samples L apart, rows batch L apart),
   which makes one long GEMM of a batch. */
typedef struct {
  nn_dtype dtype; /* float32 or float64 */
  int64_t batch, channels, height, width;
  int64_t kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w, dilation_h, dilation_w;
  int64_t out_h, out_w;
  int64_t image_sample_stride, col_sample_stride, col_row_stride;
  /* col2im may write into the columns (a convolution's scratch, not a
     fold's input): 1, else 0 */
  int cols_scratch;
} nn_patch_geom;

/* ---- ops beyond nn.h's enums ------------------------------------------ */
/* Reductions of nn_backend.reduce; float inputs accumulate in double,
   integers and bools in int64. */
typedef enum {
  NN_REDUCE_SUM,
  NN_REDUCE_MEAN, /* the sum divided by the line's length, in double */
  NN_REDUCE_NORM, /* the p-norm of math/reduce.h: p = 0 counts nonzeros, +-inf max/min |x| */
  NN_REDUCE_PROD, /* the product (integers wrap in int64) */
  NN_REDUCE_VAR   /* sum (x - mean)^2 / (n - p), p the correction; mean first, in double */
} nn_reduce_op;

/* Scans along one dim: out_i = op of in_0 .. in_i (reverse: in_i .. in_n-1). */
typedef enum { NN_SCAN_SUM, NN_SCAN_PROD } nn_scan_op;

/* Backward formulas that select rather than multiply by a mask (a product
   would turn 0 * inf into NaN where PyTorch gives 0); math/elementwise.h
   has each one. gi, g: the gradient's dtype; x, y any dtype. */
typedef enum {
  NN_GRAD_POW_BASE,     /* d(x^y)/dx: 0 where y == 0, else g y x^(y-1)       (gi, g, x, y) */
  NN_GRAD_POW_EXPONENT, /* d(x^y)/dy: 0 where x == 0 and y >= 0, else g x^y log x,
                           x^y recomputed in g's dtype as the forward did  (gi, g, x, y) */
  NN_GRAD_MAXIMUM,      /* maximum(x, y) for x: g, g/2 on a tie, 0 where x < y (gi, g, x, y) */
  NN_GRAD_MINIMUM,      /* minimum(x, y) for x: g, g/2 on a tie, 0 where x > y (gi, g, x, y) */
  NN_GRAD_NUMBER_BASE,  /* d(s^x)/dx with s = lo: 0 where s == 0 and x >= 0,
                           else g s^x log s                                   (gi, g, x) */
  NN_GRAD_CLAMP         /* g where lo <= x <= hi (the bounds pass), else 0     (gi, g, x) */
} nn_pointwise_grad_op;

/* ---- argument blocks ---------------------------------------------------- */
/* PReLU over a contiguous x of n elements whose channel is
   (i / inner) % channels (channels == 1: one weight for all).
   Forward: out = x > 0 ? x : w_c x. Backward: gx = x > 0 ? g : w_c g (when
   gx), gw_c = sum over channel c of (x > 0 ? 0 : x g), in double (when gw). */
typedef struct {
  nn_dtype dtype;
  int64_t n, channels, inner;
  const void *x, *weight, *g;
  void *out, *gx, *gw;
} nn_prelu_args;

/* Embedding lookups (embedding.c): weight is num_embeddings rows of dim
   contiguous values, indices n contiguous int64 counting from base.
   Forward: out row i = weight row indices[i], every index checked first
   (base .. base + num_embeddings - 1; the first bad one fails as "embedding:
   index 12 is out of range for 10 embeddings"). Backward: grad_weight
   (written whole) = the sum of the grad rows at each index, none into
   padding_idx (0-based; -1 for none), each divided by how often its index
   occurs when scale_grad_by_freq. Renorm (in place on weight): each row
   named, once however often named, scaled by max_norm / (norm + 1e-7)
   where its norm_type-norm exceeds max_norm (PyTorch's embedding_renorm_). */
typedef struct {
  nn_dtype dtype;
  int64_t num_embeddings, dim, n;
  const int64_t *indices;
  int base;
  int64_t padding_idx;
  int scale_grad_by_freq;
  double max_norm, norm_type;
  void *weight;          /* read by forward; written by renorm */
  void *out;             /* forward: n x dim */
  const void *grad;      /* backward: n x dim */
  void *grad_weight;     /* backward: num_embeddings x dim */
} nn_embedding_args;

/* The pointwise losses: l_i = f(x_i, y_i) (math/loss.h), forward and
   backward over contiguous data of one dtype. */
typedef enum {
  NN_LOSS_MSE,               /* (x - y)^2 */
  NN_LOSS_BCE,               /* -w (y log x + (1 - y) log(1 - x)), logs clamped at -100;
                                an x outside [0, 1] is an error */
  NN_LOSS_L1,                /* |x - y| */
  NN_LOSS_SMOOTH_L1,         /* param: beta */
  NN_LOSS_HUBER,             /* param: delta */
  NN_LOSS_KL_DIV,            /* y (log y - x) */
  NN_LOSS_KL_DIV_LOG_TARGET, /* exp(y) (y - x) */
  NN_LOSS_BCE_WITH_LOGITS    /* with weight and pos_weight */
} nn_loss_kind;

typedef struct {
  nn_loss_kind kind;
  nn_dtype dtype;         /* of everything below: float32 or float64 */
  int64_t n;              /* elements of x, y (and weight, pos_weight, out, g, gx, gy when per element) */
  const void *x, *y;
  const void *weight;     /* BCE, BCE with logits: n values, or NULL */
  const void *pos_weight; /* BCE with logits: n values, or NULL */
  double param;
  int reduced;            /* 0: out (and g) hold n values; 1: one, the reduced value */
  double divisor;         /* reduced: out = sum / divisor (1 for a sum), and g is divided by it */
  void *out;              /* forward's result */
  const void *g;          /* backward: the upstream gradient (n values, or one when reduced) */
  void *gx, *gy;          /* backward: dl/dx g, dl/dy g (n values), either NULL when not needed */
} nn_loss_args;

/* Cross-entropy and NLL over C classes (math/loss.h has the formulas):
   x is (outer, classes, inner), contiguous; a position (o, k) is one
   distribution. */
typedef struct {
  const char *op;          /* "cross_entropy" or "nll_loss": a bad label's message names it */
  nn_dtype dtype;          /* of x, out, g, gx, gy */
  int64_t outer, classes, inner;
  const void *x;
  const void *target;      /* labels: one per position, target_dtype (whole numbers);
                              probabilities: like x */
  nn_dtype target_dtype;
  int probabilities;
  int from_logits;         /* cross_entropy: lp = log_softmax(x); nll_loss: lp = x */
  const double *weight;    /* one per class, or NULL */
  double *lse;             /* from_logits: one per position, written by forward, read by backward */
  double *total_weight;    /* labels: sum of the positions' weights, written by forward, read by backward */
  int64_t ignore_index, first_label;
  double smoothing;
  int reduction;           /* NN_REDUCTION_NONE: out, g per position; else one value */
  void *out;
  const void *g;           /* backward */
  void *gx, *gy;           /* backward: gy only with probabilities; either may be NULL */
} nn_class_loss_args;

/* CTC over log_probs (T, N, C) contiguous. plan: int64, the N input
   lengths, the N target lengths, then the (N, S) 0-based target labels.
   alpha (float64): per sample (T, L) log alphas, then the N
   log-likelihoods; written by forward, read by backward. The kernels check
   lengths and labels and fail naming the first bad one. */
typedef struct {
  nn_dtype dtype;
  int64_t T, N, C, S, L; /* L = 2 (the longest target) + 1 */
  const void *lp;
  const int64_t *plan;
  int64_t blank; /* 0-based */
  int zero_infinity;
  double *alpha;
  void *out;     /* forward: the N losses */
  double *work;  /* backward: N (2 L + C) doubles */
  const void *g; /* backward: one per sample */
  void *gx;      /* backward: like lp, zeroed by the front */
} nn_ctc_args;

/* Pooling over the last two dims of `planes` contiguous planes in_h x
   in_w into planes out_h x out_w (nn.h's nn_pool_kind; windows:
   math/pool.h). Max kinds write indices (int64): each maximum's flat
   position in its plane plus index_base; NaN wins, the first maximum on a
   tie. Backward writes all of gx (contiguous, x's shape) from g (out's
   shape): each g to the position its max came from, or spread over its
   window divided as forward divided. */
typedef struct {
  nn_pool_kind kind;
  nn_dtype dtype; /* of x, out, g, gx */
  int64_t planes, in_h, in_w, out_h, out_w;
  int kernel[2], stride[2], padding[2], dilation[2]; /* (h, w); not for adaptive kinds */
  int count_include_pad;
  int64_t divisor;    /* avg: divisor_override, or 0 */
  int64_t index_base; /* 0 or 1 */
  const void *x;
  void *out;
  int64_t *indices;   /* max kinds */
  const void *g;      /* backward */
  void *gx;
  /* max 2 x 2 float32 on the CPU, no indices asked (pool.c): forward
     writes each window's winning tap here (0 to 3, the window's elements
     row by row) instead of indices, a byte for eight; backward reads them.
     pool2d with x NULL writes indices from taps (a recorded backward). */
  uint8_t *taps;
} nn_pool2d_args;

/* Nearest or bilinear upsampling of contiguous planes (math/pool.h has
   the source positions); backward writes all of gx from g. */
typedef struct {
  int bilinear, align_corners;
  nn_dtype dtype;
  int64_t planes, in_h, in_w, out_h, out_w;
  double scale_h, scale_w; /* output to source: in / out (bilinear align_corners:
                              (in - 1) / (out - 1)), or 1 / scale_factor */
  const void *x;
  void *out;
  const void *g; /* backward */
  void *gx;
} nn_upsample2d_args;

/* Batch normalisation of contiguous x (outer, channels, inner) per channel
   over outer and inner (Ioffe & Szegedy, 2015). Forward writes stats
   (channels means, then channels 1 / sqrt(var + eps)): the batch's
   (biased variance) when training, else from the running statistics; out
   = (x - mean) invstd weight + bias (weight, bias: NULL for none). Training
   moves running_mean and running_var (when not NULL) by momentum towards
   the batch's mean and unbiased variance. Backward reads stats and writes
   gx, gw, gb (each NULL when not wanted; PyTorch's
   batch_norm_backward_cpu: through the batch's statistics when training,
   else a per-channel scale). Sums accumulate in double. */
typedef struct {
  nn_dtype dtype; /* of x, out, g, gx, weight, bias, the running statistics, gw, gb */
  int64_t outer, channels, inner;
  const void *x, *weight, *bias;
  void *running_mean, *running_var;
  int training;
  double momentum, eps;
  double *stats;
  void *out;
  const void *g; /* backward */
  void *gx, *gw, *gb;
  /* float32 on the CPU (nn_batch_norm_relu): forward writes relu(out),
     and after the statistics each channel's alpha and beta as floats
     (out = x alpha + beta; stats then holds 4 channels values); backward
     takes g where x alpha + beta > 0, recomputed from x, as relu's
     backward then batch norm's would */
  int relu;
} nn_batch_norm_args;

/* One time step of a recurrent layer (math/rnn.h) over `rows` sequences,
   all row-major with rows of H (hidden) or G H values (G = 1 Elman, 4 LSTM,
   3 GRU) or A (act: H Elman, 4H LSTM and GRU); one dtype, float32 or
   float64. Forward reads xg, hg, h (GRU), c (LSTM) and writes h, c,
   h_seq, act, c_seq, h_prev, c_prev; backward reads act, c_seq, c_prev,
   h_prev, g_seq, dh, dc and writes dxg, dhg, dc and (GRU) dh. */
typedef struct {
  nn_rnn_mode mode;
  nn_dtype dtype;
  int64_t rows, hidden;
  const void *xg, *hg;   /* the input's and the hidden state's products (biases included) */
  void *h, *c;           /* the state: the previous one in, the new one out (c: LSTM) */
  void *h_seq;           /* the new h, the layer's output at this step */
  void *act;             /* what backward reads: LSTM i f g o, GRU r z n hn, Elman h */
  void *c_seq;           /* LSTM: the new c */
  void *h_prev, *c_prev; /* copies of the previous state (c_prev: LSTM) */
  const void *g_seq;     /* backward: the gradient of h_seq */
  void *dh, *dc;         /* the new state's gradient in; dc out: the previous c's; GRU's dh
                            out: z dh (the rest comes through the hidden product) */
  void *dxg, *dhg;       /* the products' gradients; dhg NULL: the same as dxg (not GRU) */
} nn_rnn_step_args;

/* ---- the table ---------------------------------------------------------- */
typedef struct nn_backend {
  const char *name; /* "cpu", "cuda" */

  /* -- memory -- */
  /* NULL when out of memory: the CPU sets no message (its caller does);
     another device says why ("out of memory on cuda: ...") */
  void *(*alloc)(size_t nbytes);
  void (*free)(void *data, size_t nbytes); /* nbytes may be 0 (unknown) */
  int (*to_host)(void *host, const void *data, size_t nbytes);   /* synchronises */
  int (*from_host)(void *data, const void *host, size_t nbytes);
  /* dst = src, nbytes of the device's memory, queued like a kernel */
  int (*within)(void *dst, const void *src, size_t nbytes);
  int (*synchronize)(void);        /* waits for the queued kernels; reports their faults */
  int (*device_count)(void);
  const char *(*device_name)(void); /* "NVIDIA H100 80GB HBM3"; the CPU's: "cpu" */
  size_t (*memory_allocated)(void); /* bytes in tensors now */
  size_t (*memory_reserved)(void);  /* bytes held from the system (cached included) */
  void (*empty_cache)(void);        /* gives the cached, unused blocks back */

  /* -- collectives across processes (nn.h's nn_collective_*): a device
     that has none (the CPU: MPI carries host memory) answers available
     with 0 and the reason, and its other entries are never called -- */
  int (*collective_available)(char *why, size_t len);
  int (*collective_id)(unsigned char *id); /* NN_COLLECTIVE_ID_BYTES of them */
  int (*collective_join)(const unsigned char *id, int rank, int size);
  int (*collective_start)(const nn_collective_args *a, void **handle);
  int (*collective_test)(void *handle); /* 1 done, 0 not yet, -1 failed (handle gone unless 0) */
  void (*collective_abort)(void);

  /* -- threads (the CPU's BLAS pool) -- */
  void (*set_num_threads)(int n);
  int (*get_num_threads)(void);

  /* -- copies and fills -- */
  int (*copy)(const nn_iter *it);              /* (dst, src): dst = src converted to dst's dtype */
  int (*fill)(const nn_iter *it, double value); /* (dst) */
  /* data[i] = i < half ? start + i step : end - (n - 1 - i) step, i < n
     (arange: half = n; linspace: half = n / 2, both ends exact) */
  int (*ramp)(nn_dtype dtype, void *data, int64_t n, int64_t half, double start, double step,
              double end);
  /* (dst, src): dst += src in dst's dtype, in iteration order; dst may be
     broadcast (stride 0), its repeated elements then sum every src
     element that lands there (a view's gradient, a bias's row sum) */
  int (*add_into)(const nn_iter *it);
  /* dst (cols) += each row of src (rows x cols, contiguous) in turn, in
     dtype: a bias's gradient summed into place, row by row */
  int (*add_rows)(nn_dtype dtype, int64_t rows, int64_t cols, const void *src, void *dst);
  /* out's row i = src's row rows[i], i < count; rows (int64) on the host,
     already checked; rows of row_bytes bytes, contiguous */
  int (*gather_rows)(void *out, const void *src, const int64_t *rows, int64_t count,
                     size_t row_bytes);

  /* -- elementwise (math/elementwise.h) -- */
  /* (out, a, b): out = a op b computed in `compute` (each operand converted
     to it), stored in out's dtype (bool for comparisons) */
  int (*binary)(nn_binary_op op, nn_dtype compute, const nn_iter *it);
  /* (out, a): out = a op s, or s op a when scalar_first; a power with a
     number exponent uses nn_pow_number */
  int (*binary_number)(nn_binary_op op, nn_dtype compute, const nn_iter *it, double s,
                       int scalar_first);
  int (*unary)(nn_unary_op op, const nn_iter *it); /* (out, a), a in out's dtype or converted */
  /* (gi, g, v): gi = g op'(v), one floating dtype; v is the op's output
     where nn_unary_grad_reads_output(op), else its input */
  int (*unary_backward)(nn_unary_op op, const nn_iter *it);
  int (*clamp)(const nn_iter *it, double lo, double hi); /* (out, a), bounds not NaN */
  int (*pointwise_grad)(nn_pointwise_grad_op op, const nn_iter *it, double lo, double hi);
  /* (out, a): nn_nan_to_num of each element, the values already in a's dtype's range */
  int (*nan_to_num)(const nn_iter *it, double nan, double posinf, double neginf);

  /* -- activations (math/activation.h) -- */
  int (*activation)(nn_activation_op op, const nn_iter *it, double a, double b); /* (y, x) */
  /* (gi, g, x): gi = g op'(x) */
  int (*activation_backward)(nn_activation_op op, const nn_iter *it, double a, double b);
  /* (y, x), one reduced dim: max-subtracted softmax or log_softmax along it */
  int (*softmax)(const nn_reduce_geom *r, int log_form);
  /* (gi, g, y): softmax: gi = y (g - sum g y); log_softmax: gi = g - e^y sum g */
  int (*softmax_backward)(const nn_reduce_geom *r, int log_form);
  int (*prelu)(const nn_prelu_args *a);          /* writes out */
  int (*prelu_backward)(const nn_prelu_args *a); /* writes gx, gw (either may be NULL) */

  /* -- reductions (math/reduce.h) -- */
  int (*reduce)(nn_reduce_op op, const nn_reduce_geom *r, double p); /* (out, in) */
  /* (values, in, indices): the largest (want_max) or smallest element of
     each line, NaN winning, the first on a tie; indices (int64) its line
     index. (values, in) alone (it.n == 2, amax and amin): the values only */
  int (*extreme)(int want_max, const nn_reduce_geom *r);
  /* (out, in), both float32 or both float64: m + log(sum exp(x - m)) of
     each line, m its max (NaN winning; an infinite max taken as 0), each
     step rounded as the fronts exp, sum, log and add would round it (NULL:
     the front runs those fronts) */
  int (*logsumexp)(const nn_reduce_geom *r);
  /* (gi, g, indices), one reduced dim: gi (already zero) at each line's
     index = g: the gradient of max/min along a dim */
  int (*extreme_backward)(const nn_reduce_geom *r);
  /* (gi, x, value, g): gi = g / count where x equals value (or both are
     NaN), count such elements in the line, else 0: max/min over all */
  int (*extreme_all_backward)(const nn_reduce_geom *r);
  /* (gi, x, norm, g): PyTorch's norm_backward for the p-norm of each line */
  int (*norm_backward)(double p, const nn_reduce_geom *r);

  /* (gi, x, out, g): prod's gradient, PyTorch's prod_backward: g out / x
     where the line has no zero, the product of the others at its one zero */
  int (*prod_backward)(const nn_reduce_geom *r);
  /* (out, in), both full shape, one reduced dim (or none: lines of one) */
  int (*scan)(nn_scan_op op, int reverse, const nn_reduce_geom *r);
  /* (gi, x, out, g), all full shape, one reduced dim: cumprod's gradient,
     gi_k = sum over i >= k of g_i prod_{j <= i, j != k} x_j */
  int (*cumprod_backward)(const nn_reduce_geom *r);
  /* (values, indices, in), all full shape, one reduced dim: each line
     sorted, stably, NaN above everything (PyTorch's order); indices int64 */
  int (*sort)(int descending, const nn_reduce_geom *r);
  /* sort's geometry; only the first k positions of each line written, what
     sort would put there (NULL: the front sorts whole lines instead) */
  int (*topk)(int largest, int64_t k, const nn_reduce_geom *r);
  /* (gi, g, indices): gi (already zero) += g at each line's indices, gi's
     elements `stride` apart along the dim (the gradient of what sort,
     topk and kthvalue pick) */
  int (*scatter_line)(const nn_reduce_geom *r, int64_t stride);

  /* -- matrix products -- */
  int (*gemm)(const nn_gemm_args *a);

  /* -- losses (math/loss.h) -- */
  int (*loss)(const nn_loss_args *a);
  int (*loss_backward)(const nn_loss_args *a);
  /* labels: checks each (a whole number in first_label .. first_label +
     classes - 1, or ignore_index) and fails naming the first bad one */
  int (*class_loss)(const nn_class_loss_args *a);
  int (*class_loss_backward)(const nn_class_loss_args *a);
  int (*ctc_loss)(const nn_ctc_args *a);
  int (*ctc_loss_backward)(const nn_ctc_args *a);

  /* -- optimizer steps, one fused loop per parameter (math/optim.h) --
     param, grad and the buffers: n contiguous elements of dtype */
  int (*sgd_step)(nn_dtype dtype, int64_t n, void *param, const void *grad, void *momentum_buffer,
                  int first_step, const nn_sgd_options *o);
  int (*adam_step)(nn_dtype dtype, int64_t n, void *param, const void *grad, void *exp_avg,
                   void *exp_avg_sq, void *max_exp_avg_sq, int64_t step, const nn_adam_options *o);
  int (*rmsprop_step)(nn_dtype dtype, int64_t n, void *param, const void *grad, void *square_avg,
                      void *momentum_buffer, void *grad_avg, const nn_rmsprop_options *o);
  int (*adagrad_step)(nn_dtype dtype, int64_t n, void *param, const void *grad, void *sum,
                      int64_t step, const nn_adagrad_options *o);
  /* issue 13's: the step's scalars (NAdam's mu_product after this step's
     factor, ASGD's eta and mu before it) computed by the front */
  int (*adadelta_step)(nn_dtype dtype, int64_t n, void *param, const void *grad, void *square_avg,
                       void *acc_delta, const nn_adadelta_options *o);
  int (*adamax_step)(nn_dtype dtype, int64_t n, void *param, const void *grad, void *exp_avg,
                     void *exp_inf, int64_t step, const nn_adamax_options *o);
  int (*nadam_step)(nn_dtype dtype, int64_t n, void *param, const void *grad, void *exp_avg,
                    void *exp_avg_sq, int64_t step, double mu_product, const nn_nadam_options *o);
  int (*radam_step)(nn_dtype dtype, int64_t n, void *param, const void *grad, void *exp_avg,
                    void *exp_avg_sq, int64_t step, const nn_radam_options *o);
  int (*asgd_step)(nn_dtype dtype, int64_t n, void *param, const void *grad, void *ax, double eta,
                   double mu, const nn_asgd_options *o);
  int (*rprop_step)(nn_dtype dtype, int64_t n, void *param, const void *grad, void *prev,
                    void *step_size, const nn_rprop_options *o);

  /* -- indexing (index.c) --
     Index tensors are int64. */
  /* (out, idx): out = idx as a 0-based position into a dim of size n
     (base 1: 1..n; base 0: 0..n-1; and when negative, -n..-1 from the
     end), times scale; an index out of range fails naming op and dim
     (0-based, shown 1-based; -1: the tensor as flat) */
  int (*index_offsets)(const nn_iter *it, int64_t n, int64_t scale, int base, int negative,
                       int dim, const char *op);
  /* (out, src, offset): out = src[offset], offset (int64) in elements
     from src's own position; out and src of one dtype */
  int (*index_gather)(const nn_iter *it);
  /* (dst, values, offset): dst[offset] = values, or += (accumulate: in
     iteration order, so repeated offsets sum); one dtype */
  int (*index_put)(const nn_iter *it, int accumulate);
  /* (out, cond, a, b): out = cond ? a : b; cond bool, a and b out's dtype */
  int (*where)(const nn_iter *it);
  /* the 0-based coordinates of t's first `count` nonzero elements in
     row-major order: count rows of t->ndim int64 at out (t's device) */
  int (*nonzero)(const nn_strided *t, int64_t *out, int64_t count);

  /* -- random numbers (math/random.h); the device's own generator -- */
  int (*uniform)(const nn_strided *t, double from, double to); /* floating t */
  int (*normal)(const nn_strided *t, double mean, double std);
  /* t = base + draw % range, element by element (PyTorch's random_from_to) */
  int (*random_int)(const nn_strided *t, uint64_t range, int64_t base);
  /* out (n contiguous int64) = a random permutation of first .. first + n - 1 */
  int (*randperm)(int64_t n, int64_t first, int64_t *out);
  void (*manual_seed)(uint64_t seed);
  uint64_t (*initial_seed)(void);
  size_t (*rng_state_size)(void);
  void (*rng_get_state)(void *buf);
  int (*rng_set_state)(const void *buf, size_t len);

  /* -- convolution's patches (nn_patch_geom) -- */
  int (*im2col)(const nn_patch_geom *g, const void *image, void *cols); /* writes every column */
  /* image += each column's elements at their places (overlaps sum) */
  int (*col2im)(const nn_patch_geom *g, const void *cols, void *image);
  /* -- pooling, upsampling, batch normalisation (pool.c; math/pool.h) -- */
  int (*pool2d)(const nn_pool2d_args *a);          /* writes out (and indices) */
  int (*pool2d_backward)(const nn_pool2d_args *a); /* writes gx */
  int (*upsample2d)(const nn_upsample2d_args *a);
  int (*upsample2d_backward)(const nn_upsample2d_args *a);
  int (*batch_norm)(const nn_batch_norm_args *a);
  int (*batch_norm_backward)(const nn_batch_norm_args *a);

  /* -- recurrent layers (rnn.c; math/rnn.h) -- */
  int (*rnn_step)(const nn_rnn_step_args *a);
  int (*rnn_step_backward)(const nn_rnn_step_args *a);

  /* -- embedding (embedding.c; nn_embedding_args above) -- */
  int (*embedding)(const nn_embedding_args *a);          /* writes out */
  int (*embedding_backward)(const nn_embedding_args *a); /* writes grad_weight */
  int (*embedding_renorm)(const nn_embedding_args *a);   /* rescales weight's named rows */

  /* -- device graphs: a captured step's replay (capture.c) --
     graph_begin: 0 when the kernels queued from now on are captured into a
     graph rather than run; 1 when the device makes no graphs (the CPU,
     whose kernels run as they are called: a plan replays call by call);
     -1 on error. graph_end stops capturing: 0 with *graph something
     graph_launch runs (all its kernels, in order), or -1 when the capture
     failed (a kernel allocated or read back while captured), nothing kept. */
  int (*graph_begin)(void);
  int (*graph_end)(void **graph);
  int (*graph_launch)(void *graph);
  void (*graph_free)(void *graph);

  /* -- selection (sort.c) -- */
  /* (values, indices, in): values and int64 indices of the kept shape, in
     full, one reduced dim (or none): the element a stable sort of the line
     puts at rank k (from 0), and its index; with median set, a line that
     holds NaN gives its first NaN instead (NULL: the fronts sort whole
     lines and take a view) */
  int (*kthvalue)(int64_t k, int median, const nn_reduce_geom *r);

  /* -- dot, mv, tril, triu (linalg.c) -- */
  /* (out, a, b), a and b float32 (or both float64): out = the sum of a b
     along each line, float32 in float lanes as sdot sums (NULL: the
     fronts multiply through matmul) */
  int (*dot)(const nn_reduce_geom *r);
  /* in and out contiguous, batch matrices of rows x cols of dtype: out =
     in where j - i <= k (tril; upper: j - i >= k, triu), else 0 (NULL:
     the front selects through pointwise_grad) */
  int (*band)(nn_dtype dtype, int64_t batch, int64_t rows, int64_t cols, int64_t k, int upper,
              const void *in, void *out);

  /* -- indexing with the check folded in (index.c) --
     (out, src, idx) for mode 0, (dst, values, idx) for modes 1 and 2: idx
     read as index_offsets reads it (n, scale, base, negative, dim, op),
     then mode 0: out = src[offset] (index_gather), 1: dst[offset] = values,
     2: dst[offset] += values (index_put, in iteration order); one pass over
     idx, no offsets tensor. An index out of range fails as index_offsets
     does; a put may have written the elements before it (the fronts write
     only into a tensor of their own). NULL: the fronts make offsets. */
  int (*index_checked)(const nn_iter *it, int mode, int64_t n, int64_t scale, int base,
                       int negative, int dim, const char *op);

  /* -- equal (pointwise.c) --
     (a, b) of one dtype, nothing written: *result = 1 when every a == b
     (by value: NaN differs, -0 equals +0), else 0; it may stop at the first
     difference. NULL: the front compares through binary and sum. */
  int (*equal)(const nn_iter *it, int *result);

  /* -- lerp with a number weight (pointwise.c) --
     (out, start, end), all float32 or all float64: d = end - start, then
     out = start + d w for w < 1/2, else end - d (1 - w), each op rounded to
     the dtype (NULL: the front composes sub, mul and add) */
  int (*lerp)(const nn_iter *it, double w);

  /* -- a product prepared for a plan (capture.c) --
     fills *d with a direct call doing what gemm(a) does, bit for bit, for
     as long as a's pointers hold what a replay gives them: 1 when it did,
     0 when the product has to go through gemm at each call (NULL: always) */
  int (*gemm_prepare)(const nn_gemm_args *a, nn_gemm_direct *d);
  /* the same for an entry of one iterator: fill (x the value), unary and
     unary_backward (op): 1 when it prepared *d, 0 when the entry itself
     has to run at each call (NULL: always). Two entries without an
     iterator of their own are described by one: add_rows(dtype, rows,
     cols, src, dst) as (dst, src) over dims {cols, rows}, dst's strides
     {1, 0}, src's {1, cols}; sgd_step of plain SGD (no momentum buffer,
     weight decay 0, not maximizing) as (param, grad), contiguous, whose
     run reads the learning rate from d->x, set before each run (the
     pointers in d->data may be set again too: the kernel is chosen by
     dtypes, strides and n). */
  int (*iter_prepare)(size_t entry, int op, const nn_iter *it, double x, nn_iter_direct *d);
} nn_backend;

/* The entries by name and place, for messages and for the test that every
   entry of the CPU table is filled (backend.c). */
typedef struct {
  const char *name;
  size_t offset; /* offsetof(nn_backend, name) */
} nn_backend_entry;
extern const nn_backend_entry nn_backend_entries[];
extern const size_t nn_backend_entry_count;

/* ---- a backend in a shared library of its own --------------------------
   The CUDA backend is libnn_cuda.so, opened at the first use of "cuda"
   (device.c). nn.so is loaded RTLD_LOCAL by Lua, so the library cannot
   link against the engine's symbols: what it may call back into the engine
   comes in nn_host_api. NN_BACKEND_ABI is bumped whenever nn_backend,
   nn_host_api or a geometry struct above changes shape, so that a library
   of another build refuses to open rather than misread them. */
#define NN_BACKEND_ABI 9

typedef struct nn_host_api {
  int abi;             /* NN_BACKEND_ABI of the engine */
  size_t backend_size; /* sizeof(nn_backend) */
  size_t iter_size;    /* sizeof(nn_iter) */
  size_t reduce_size;  /* sizeof(nn_reduce_geom) */
  void (*error_set)(const char *fmt, ...);
  /* The CPU's table: the test device (tests/c/fake_cuda.c) runs the CPU's
     kernels on its host memory. */
  const struct nn_backend *cpu;
} nn_host_api;

/* Whether a library was built against this engine's tables. */
static inline int nn_host_api_matches(const nn_host_api *host) {
  return host && host->abi == NN_BACKEND_ABI && host->backend_size == sizeof(nn_backend) &&
         host->iter_size == sizeof(nn_iter) && host->reduce_size == sizeof(nn_reduce_geom);
}

/* The one symbol such a library exports: its filled table, or NULL with
   the reason (which device, driver or library is missing) in why. The
   engine then checks the entries every device needs (memory, transfers,
   copy, fill); a NULL kernel is "<op>: not implemented for cuda". */
#define NN_CUDA_BACKEND_ENTRY "nn_cuda_backend_open"
typedef const nn_backend *(*nn_backend_open_fn)(const nn_host_api *host, char *why, size_t len);

#ifdef __cplusplus
}
#endif

#endif

/* cpu/cpu.h: the CPU backend's kernels, shared between the files of cpu/
 * and gathered into nn_cpu_backend by cpu/backend.c. Each is the entry of
 * backend.h's table with the same name; see there for what it computes. */
#ifndef NN_CPU_H
#define NN_CPU_H

#include "backend.h"
#include "math/dtype.h"

/* A loop compiled for baseline x86-64, AVX2 and AVX-512, the variant for
   the processor chosen once by the loader (GCC's target_clones, an ifunc:
   glibc on x86-64). For loops whose every variant gives the same bits:
   the lanes are written out in C, or each element is computed alone. */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
#define NN_CPU_CLONES __attribute__((target_clones("default", "avx2", "avx512f")))
#else
#define NN_CPU_CLONES
#endif

/* iter.c: the loop over an nn_iter. fn gets the innermost dimension for
   every outer position: n elements, data[k] and stride[k] (in elements)
   for operand k. */
typedef void (*nn_inner_fn)(void *ctx, int64_t n, char **data, const int64_t *stride);
void nn_iter_run_outer(const nn_iter *it, nn_inner_fn fn, void *ctx);
/* Inline, so that a kernel's call of it with its own fn becomes a direct
   call of fn for the common case of a single run (tiny tensors pay for
   every instruction around their few elements). */
static inline void nn_iter_run(const nn_iter *it, nn_inner_fn fn, void *ctx) {
  if (it->ndim > 1) nn_iter_run_outer(it, fn, ctx);
  else if (it->size[0] > 0) fn(ctx, it->size[0], (char **)it->data, it->stride[0]);
}

/* parallel.c: the pool (OpenBLAS's threads). fn(ctx, first, last) runs
   for pieces [first, last) covering [0, n), each `cost` elements of work
   per item, pieces starting at multiples of align items; on the caller's
   thread alone below two grains of work or with one thread set. fn must
   only write what its own items own. */
#define NN_PARALLEL_GRAIN (32 * 1024)
/* pieces of an elementwise run start 16 elements apart: 64 bytes of float32 */
#define NN_PARALLEL_ALIGN 16
typedef void (*nn_range_fn)(const void *ctx, int64_t first, int64_t last);
void nn_parallel_for(int64_t n, int64_t cost, int64_t align, nn_range_fn fn, const void *ctx);
/* how many pieces nn_parallel_for would cut n items of cost into (1: none) */
int nn_parallel_pieces(int64_t n, int64_t cost);
/* A light pass over a parameter-sized buffer (zero_grad's fill, an SGD
   step: a store, or a load, a multiply-add and a store, an element) is
   handed to the pool only from this many elements: below it, waking a
   thread and waiting for it costs about what the second core saves (the
   65,536-element weights of mlp_sweep's 256-wide rows: two fills and two
   steps a step, four dispatches that did not pay for themselves). */
#define NN_PARALLEL_PASS (4 * NN_PARALLEL_GRAIN)
/* how many pieces such a pass of n elements is cut into (1: none) */
int nn_parallel_pass_pieces(int64_t n);

/* nn_iter_run over the pool: a run of one dim is cut between elements,
   several dims between whole runs. cost: elements of work per position
   (1 elementwise; a reduction's line length). */
void nn_iter_run_split(const nn_iter *it, nn_inner_fn fn, void *ctx, int64_t cost);
static inline void nn_iter_run_parallel(const nn_iter *it, nn_inner_fn fn, void *ctx, int64_t cost) {
  if (it->ndim == 1 && it->size[0] * cost < 2 * NN_PARALLEL_GRAIN) nn_iter_run(it, fn, ctx);
  else nn_iter_run_split(it, fn, ctx, cost);
}

/* ---- the lines of an nn_reduce_geom (reduce.c, scan.c) ---- */
/* Where element j of a line lies for operand k, in elements from the
   line's first. */
static inline int64_t line_offset(const nn_reduce_geom *r, int k, int64_t j) {
  if (r->rdims == 1) return j * r->rstride[0][k];
  /* a line's start: also where an empty line (a size 0 among rsize, which
     the walk below would divide by) begins */
  if (j == 0) return 0;
  int64_t off = 0;
  for (int d = r->rdims - 1; d >= 0; d--) {
    off += (j % r->rsize[d]) * r->rstride[d][k];
    j /= r->rsize[d];
  }
  return off;
}

static inline int64_t line_length(const nn_reduce_geom *r) {
  int64_t n = 1;
  for (int d = 0; d < r->rdims; d++) n *= r->rsize[d];
  return n;
}

/* The element of operand k at position p of a run (data, st) and line
   index j. */
static inline char *at(const nn_reduce_geom *r, char **data, const int64_t *st, int k, int64_t p,
                       int64_t j) {
  return data[k] + (p * st[k] + line_offset(r, k, j)) * (int64_t)nn_element_size(r->it.dtype[k]);
}

/* memory.c */
void *nn_cpu_alloc(size_t nbytes);
void nn_cpu_free(void *data, size_t nbytes);
int nn_cpu_to_host(void *host, const void *data, size_t nbytes);
int nn_cpu_from_host(void *data, const void *host, size_t nbytes);
int nn_cpu_within(void *dst, const void *src, size_t nbytes);
int nn_cpu_synchronize(void);
int nn_cpu_device_count(void);
const char *nn_cpu_device_name(void);
size_t nn_cpu_memory_allocated(void);
size_t nn_cpu_memory_reserved(void);
void nn_cpu_empty_cache(void);
/* OPENBLAS_CORETYPE's name for the kernels this processor runs best, or
   NULL (cpu/openblas_loader.c; lua/nnlua.c uses it for a static OpenBLAS) */
const char *nn_cpu_blas_kernels(void);
/* none: nn.distributed sends host memory over MPI itself (memory.c) */
int nn_cpu_collective_available(char *why, size_t len);
int nn_cpu_collective_id(unsigned char *id);
int nn_cpu_collective_join(const unsigned char *id, int rank, int size);
int nn_cpu_collective_start(const nn_collective_args *a, void **handle);
int nn_cpu_collective_test(void *handle);
void nn_cpu_collective_abort(void);

/* copy.c */
int nn_cpu_copy(const nn_iter *it);
int nn_cpu_fill(const nn_iter *it, double value);
int nn_cpu_ramp(nn_dtype dtype, void *data, int64_t n, int64_t half, double start, double step,
                double end);
int nn_cpu_add_into(const nn_iter *it);
int nn_cpu_add_rows(nn_dtype dtype, int64_t rows, int64_t cols, const void *src, void *dst);
int nn_cpu_gather_rows(void *out, const void *src, const int64_t *rows, int64_t count,
                       size_t row_bytes);

/* elementwise.c */
int nn_cpu_binary(nn_binary_op op, nn_dtype compute, const nn_iter *it);
int nn_cpu_binary_number(nn_binary_op op, nn_dtype compute, const nn_iter *it, double s,
                         int scalar_first);
int nn_cpu_unary(nn_unary_op op, const nn_iter *it);
int nn_cpu_unary_backward(nn_unary_op op, const nn_iter *it);
int nn_cpu_clamp(const nn_iter *it, double lo, double hi);
int nn_cpu_nan_to_num(const nn_iter *it, double nan, double posinf, double neginf);
int nn_cpu_pointwise_grad(nn_pointwise_grad_op op, const nn_iter *it, double lo, double hi);

/* activation.c */
int nn_cpu_activation(nn_activation_op op, const nn_iter *it, double a, double b);
int nn_cpu_activation_backward(nn_activation_op op, const nn_iter *it, double a, double b);
int nn_cpu_softmax(const nn_reduce_geom *r, int log_form);
int nn_cpu_softmax_backward(const nn_reduce_geom *r, int log_form);
int nn_cpu_prelu(const nn_prelu_args *a);
int nn_cpu_prelu_backward(const nn_prelu_args *a);

/* reduce.c */
int nn_cpu_reduce(nn_reduce_op op, const nn_reduce_geom *r, double p);
int nn_cpu_extreme(int want_max, const nn_reduce_geom *r);
int nn_cpu_logsumexp(const nn_reduce_geom *r);
int nn_cpu_extreme_backward(const nn_reduce_geom *r);
int nn_cpu_extreme_all_backward(const nn_reduce_geom *r);
int nn_cpu_norm_backward(double p, const nn_reduce_geom *r);
int nn_cpu_prod_backward(const nn_reduce_geom *r);
int nn_cpu_dot(const nn_reduce_geom *r);
/* band.c */
int nn_cpu_band(nn_dtype dtype, int64_t batch, int64_t rows, int64_t cols, int64_t k, int upper,
                const void *in, void *out);

/* scan.c */
int nn_cpu_scan(nn_scan_op op, int reverse, const nn_reduce_geom *r);
int nn_cpu_cumprod_backward(const nn_reduce_geom *r);
int nn_cpu_sort(int descending, const nn_reduce_geom *r);
int nn_cpu_topk(int largest, int64_t k, const nn_reduce_geom *r);
int nn_cpu_kthvalue(int64_t k, int median, const nn_reduce_geom *r);
int nn_cpu_scatter_line(const nn_reduce_geom *r, int64_t stride);

/* gemm.c */
void nn_cpu_set_num_threads(int n);
int nn_cpu_get_num_threads(void);
int nn_cpu_gemm(const nn_gemm_args *a);
/* gemm_half.c: the table's entry, float16 and bfloat16 too */
int nn_cpu_gemm_dtypes(const nn_gemm_args *a);
int nn_cpu_gemm_prepare(const nn_gemm_args *a, nn_gemm_direct *d);
int nn_cpu_iter_prepare(size_t entry, int op, const nn_iter *it, double x, nn_iter_direct *d);
/* optim.c: iter_prepare's sgd_step (plain SGD, float32, one thread) */
int nn_cpu_sgd_prepare(const nn_iter *it, nn_iter_direct *d);
/* nn_cpu_gemm through the products of variant v (cpu/vector.h), to
   compare the variants */
struct nn_cpu_vector;
int nn_cpu_gemm_variant(const nn_gemm_args *a, const struct nn_cpu_vector *v);

/* loss.c */
int nn_cpu_loss(const nn_loss_args *a);
int nn_cpu_loss_backward(const nn_loss_args *a);
int nn_cpu_class_loss(const nn_class_loss_args *a);
int nn_cpu_class_loss_backward(const nn_class_loss_args *a);
int nn_cpu_ctc_loss(const nn_ctc_args *a);
int nn_cpu_ctc_loss_backward(const nn_ctc_args *a);

/* optim.c */
int nn_cpu_sgd_step(nn_dtype dtype, int64_t n, void *param, const void *grad, void *momentum_buffer,
                    int first, const nn_sgd_options *o);
int nn_cpu_adam_step(nn_dtype dtype, int64_t n, void *param, const void *grad, void *exp_avg,
                     void *exp_avg_sq, void *max_exp_avg_sq, int64_t step, const nn_adam_options *o);
int nn_cpu_rmsprop_step(nn_dtype dtype, int64_t n, void *param, const void *grad, void *square_avg,
                        void *momentum_buffer, void *grad_avg, const nn_rmsprop_options *o);
int nn_cpu_adagrad_step(nn_dtype dtype, int64_t n, void *param, const void *grad, void *sum,
                        int64_t step, const nn_adagrad_options *o);
int nn_cpu_adadelta_step(nn_dtype dtype, int64_t n, void *param, const void *grad, void *square_avg,
                         void *acc_delta, const nn_adadelta_options *o);
int nn_cpu_adamax_step(nn_dtype dtype, int64_t n, void *param, const void *grad, void *exp_avg,
                       void *exp_inf, int64_t step, const nn_adamax_options *o);
int nn_cpu_nadam_step(nn_dtype dtype, int64_t n, void *param, const void *grad, void *exp_avg,
                      void *exp_avg_sq, int64_t step, double mu_product, const nn_nadam_options *o);
int nn_cpu_radam_step(nn_dtype dtype, int64_t n, void *param, const void *grad, void *exp_avg,
                      void *exp_avg_sq, int64_t step, const nn_radam_options *o);
int nn_cpu_asgd_step(nn_dtype dtype, int64_t n, void *param, const void *grad, void *ax, double eta,
                     double mu, const nn_asgd_options *o);
int nn_cpu_rprop_step(nn_dtype dtype, int64_t n, void *param, const void *grad, void *prev,
                      void *step_size, const nn_rprop_options *o);

/* index.c */
int nn_cpu_index_offsets(const nn_iter *it, int64_t n, int64_t scale, int base, int negative,
                         int dim, const char *op);
int nn_cpu_index_gather(const nn_iter *it);
int nn_cpu_index_put(const nn_iter *it, int accumulate);
int nn_cpu_where(const nn_iter *it);
int nn_cpu_nonzero(const nn_strided *t, int64_t *out, int64_t count);
int nn_cpu_index_checked(const nn_iter *it, int mode, int64_t n, int64_t scale, int base,
                         int negative, int dim, const char *op);

/* random.c */
void nn_cpu_manual_seed(uint64_t seed);
uint64_t nn_cpu_initial_seed(void);
size_t nn_cpu_rng_state_size(void);
void nn_cpu_rng_get_state(void *buf);
int nn_cpu_rng_set_state(const void *buf, size_t len);
int nn_cpu_uniform(const nn_strided *t, double from, double to);
int nn_cpu_random_int(const nn_strided *t, uint64_t range, int64_t base);
int nn_cpu_randperm(int64_t n, int64_t first, int64_t *out);
int nn_cpu_normal(const nn_strided *t, double mean, double std);

/* conv.c */
int nn_cpu_im2col(const nn_patch_geom *g, const void *image, void *cols);
int nn_cpu_col2im(const nn_patch_geom *g, const void *cols, void *image);
/* pool.c */
int nn_cpu_pool2d(const nn_pool2d_args *a);
int nn_cpu_pool2d_backward(const nn_pool2d_args *a);
int nn_cpu_upsample2d(const nn_upsample2d_args *a);
int nn_cpu_upsample2d_backward(const nn_upsample2d_args *a);
int nn_cpu_batch_norm(const nn_batch_norm_args *a);
int nn_cpu_batch_norm_backward(const nn_batch_norm_args *a);

/* rnn.c */
int nn_cpu_rnn_step(const nn_rnn_step_args *a);
int nn_cpu_rnn_step_backward(const nn_rnn_step_args *a);

/* embedding.c */
int nn_cpu_embedding(const nn_embedding_args *a);
int nn_cpu_embedding_backward(const nn_embedding_args *a);
int nn_cpu_embedding_renorm(const nn_embedding_args *a);

/* equal.c */
int nn_cpu_equal(const nn_iter *it, int *result);

/* lerp.c */
int nn_cpu_lerp(const nn_iter *it, double w);

/* ---- the loop a contiguous float32 elementwise call runs ----------------
   One choice, made by the entries (cpu/elementwise.c's unary and
   unary_backward, cpu/copy.c's fill) at every call and by prepare.c once
   for a captured plan, so that a replay runs the loop the entry would. */
#include "cpu/vector.h"

typedef void (*nn_cpu_map_f32)(int64_t n, const float *x, float *out);
typedef void (*nn_cpu_grad_f32)(int64_t n, const float *g, const float *v, float *gi);

/* unary op over (out, x) of the dtypes out and in, strides st: the loop
   of v for it, or NULL (the entry's other loops) */
static inline nn_cpu_map_f32 nn_cpu_unary_loop_of(const nn_cpu_vector *v, int op, nn_dtype out,
                                                  nn_dtype in, const int64_t *st) {
  if (out != NN_FLOAT32 || in != NN_FLOAT32 || st[0] != 1 || st[1] != 1) return NULL;
  return op == NN_SIGMOID ? v->sigmoid : op == NN_RELU ? v->relu : NULL;
}

/* op's backward over (grad_in, g, y or x), grad_in of dtype out (the
   others' too), strides st: the loop of v for it, or NULL */
static inline nn_cpu_grad_f32 nn_cpu_unary_grad_loop_of(const nn_cpu_vector *v, int op, nn_dtype out,
                                                        const int64_t *st) {
  if (out != NN_FLOAT32 || st[0] != 1 || st[1] != 1 || st[2] != 1) return NULL;
  return op == NN_SIGMOID ? v->sigmoid_grad : op == NN_RELU ? v->relu_grad : NULL;
}

/* whether filling it with value is clearing one run of its bytes (+0 has
   all-zero bits in every dtype) */
static inline int nn_cpu_fill_clears(const nn_iter *it, double value) {
  return value == 0 && !signbit(value) && it->ndim == 1 && it->stride[0][0] == 1;
}

#endif

/* cuda/activation.cu: the activations forward and backward, softmax and
 * log_softmax along a dim, and PReLU: cpu/activation.c's entries.
 * Formulas: math/activation.h (in double, float32 rounded once, as the CPU). */
#include "cuda/common.cuh"
#include "math/activation.h"

/* ---- elementwise activations ---------------------------------------- */
/* (y, x), one dtype */
struct activation_op {
  nn_activation_op op;
  double a, b;
  template <typename I> __device__ __forceinline__ void operator()(const nn_iter &it, const I *off) const {
    nn_dtype dt = it.dtype[0];
    nn_store(dt, it.data[0], off[0], nn_activation_value(op, nn_load(dt, it.data[1], off[1]), a, b));
  }
};

static int cuda_activation(nn_activation_op op, const nn_iter *it, double a, double b) {
  return nn_cuda_run_iter<2>("activation", it, activation_op{op, a, b});
}

/* (gi, g, x): gi = g op'(x) */
struct activation_backward_op {
  nn_activation_op op;
  double a, b;
  template <typename I> __device__ __forceinline__ void operator()(const nn_iter &it, const I *off) const {
    nn_dtype dt = it.dtype[0];
    double g = nn_load(dt, it.data[1], off[1]), x = nn_load(dt, it.data[2], off[2]);
    nn_store(dt, it.data[0], off[0], g * nn_activation_derivative(op, x, a, b));
  }
};

static int cuda_activation_backward(nn_activation_op op, const nn_iter *it, double a, double b) {
  return nn_cuda_run_iter<3>("activation backward", it, activation_backward_op{op, a, b});
}

/* ---- softmax and log_softmax along one dim ------------------------------- */
struct softmax_max {
  __device__ double operator()(double m, double v) const { return nn_softmax_max_step(m, v); }
};

/* (y, x): the line's max (NaN wins), the sum of e^(x - max) in double,
   then each y; softmax divides e^(x - max) as the dtype holds it, as the
   CPU's stored exponentials are divided. */
template <bool BLOCK, typename I>
__global__ void softmax_kernel(nn_reduce_geom r, I count, I length, int log_form) {
  __shared__ double shared[32];
  nn_dtype dt = r.it.dtype[0];
  I lane = nn_cuda_lane<BLOCK, I>(), lanes = nn_cuda_lanes<BLOCK, I>();
  for (I p = nn_cuda_first_line<BLOCK, I>(); p < count; p += nn_cuda_line_step<BLOCK, I>()) {
    const char *x = r.it.data[1] + (int64_t)nn_cuda_line_start(r, 1, p) * (int64_t)nn_element_size(dt);
    char *y = r.it.data[0] + (int64_t)nn_cuda_line_start(r, 0, p) * (int64_t)nn_element_size(dt);
    double m = -INFINITY, sum = 0;
    for (I j = lane; j < length; j += lanes) m = nn_softmax_max_step(m, nn_load(dt, x, nn_cuda_line_offset(r, 1, j)));
    m = nn_cuda_line_reduce<BLOCK>(m, softmax_max(), shared);
    for (I j = lane; j < length; j += lanes) sum += exp(nn_load(dt, x, nn_cuda_line_offset(r, 1, j)) - m);
    sum = nn_cuda_line_reduce<BLOCK>(sum, nn_cuda_add_double(), shared);
    double shift = m + log(sum);
    for (I j = lane; j < length; j += lanes) {
      double v = nn_load(dt, x, nn_cuda_line_offset(r, 1, j));
      nn_store(dt, y, nn_cuda_line_offset(r, 0, j), log_form ? v - shift : nn_round_to(dt, exp(v - m)) / sum);
    }
  }
}

/* (gi, g, y): softmax: gi = y (g - sum g y); log_softmax: gi = g - e^y sum g */
template <bool BLOCK, typename I>
__global__ void softmax_backward_kernel(nn_reduce_geom r, I count, I length, int log_form) {
  __shared__ double shared[32];
  nn_dtype dt = r.it.dtype[0];
  int64_t es = (int64_t)nn_element_size(dt);
  I lane = nn_cuda_lane<BLOCK, I>(), lanes = nn_cuda_lanes<BLOCK, I>();
  for (I p = nn_cuda_first_line<BLOCK, I>(); p < count; p += nn_cuda_line_step<BLOCK, I>()) {
    char *gi = r.it.data[0] + (int64_t)nn_cuda_line_start(r, 0, p) * es;
    const char *g = r.it.data[1] + (int64_t)nn_cuda_line_start(r, 1, p) * es;
    const char *y = r.it.data[2] + (int64_t)nn_cuda_line_start(r, 2, p) * es;
    double acc = 0;
    for (I j = lane; j < length; j += lanes) {
      double gj = nn_load(dt, g, nn_cuda_line_offset(r, 1, j));
      acc += log_form ? gj : gj * nn_load(dt, y, nn_cuda_line_offset(r, 2, j));
    }
    acc = nn_cuda_line_reduce<BLOCK>(acc, nn_cuda_add_double(), shared);
    for (I j = lane; j < length; j += lanes) {
      double gj = nn_load(dt, g, nn_cuda_line_offset(r, 1, j)), yj = nn_load(dt, y, nn_cuda_line_offset(r, 2, j));
      nn_store(dt, gi, nn_cuda_line_offset(r, 0, j),
               log_form ? nn_log_softmax_grad(gj, yj, acc) : nn_softmax_grad(gj, yj, acc));
    }
  }
}

static int cuda_softmax_run(const nn_reduce_geom *r, int log_form, int backward) {
  nn_cuda_line_plan l = nn_cuda_plan_lines(r, 1);
  if (l.count <= 0) return 0;
  cudaStream_t st = nn_cuda_stream();
  int32_t c = (int32_t)l.count, n = (int32_t)l.length;
  if (backward) {
    if (l.fits32 && l.block) softmax_backward_kernel<true, int32_t><<<l.blocks, l.threads, 0, st>>>(*r, c, n, log_form);
    else if (l.fits32) softmax_backward_kernel<false, int32_t><<<l.blocks, l.threads, 0, st>>>(*r, c, n, log_form);
    else if (l.block) softmax_backward_kernel<true, int64_t><<<l.blocks, l.threads, 0, st>>>(*r, l.count, l.length, log_form);
    else softmax_backward_kernel<false, int64_t><<<l.blocks, l.threads, 0, st>>>(*r, l.count, l.length, log_form);
  } else {
    if (l.fits32 && l.block) softmax_kernel<true, int32_t><<<l.blocks, l.threads, 0, st>>>(*r, c, n, log_form);
    else if (l.fits32) softmax_kernel<false, int32_t><<<l.blocks, l.threads, 0, st>>>(*r, c, n, log_form);
    else if (l.block) softmax_kernel<true, int64_t><<<l.blocks, l.threads, 0, st>>>(*r, l.count, l.length, log_form);
    else softmax_kernel<false, int64_t><<<l.blocks, l.threads, 0, st>>>(*r, l.count, l.length, log_form);
  }
  return nn_cuda_launched(backward ? "softmax backward" : "softmax");
}

static int cuda_softmax(const nn_reduce_geom *r, int log_form) { return cuda_softmax_run(r, log_form, 0); }
static int cuda_softmax_backward(const nn_reduce_geom *r, int log_form) {
  return cuda_softmax_run(r, log_form, 1);
}

/* ---- PReLU -------------------------------------------------------------- */
struct prelu_op {
  nn_prelu_args a;
  __device__ __forceinline__ void operator()(int64_t i) const {
    double w = nn_load(a.dtype, a.weight, nn_prelu_channel(i, a.channels, a.inner));
    nn_store(a.dtype, a.out, i, nn_prelu_value(nn_load(a.dtype, a.x, i), w));
  }
};

static int cuda_prelu(const nn_prelu_args *a) { return nn_cuda_run_each("prelu", a->n, prelu_op{*a}); }

struct prelu_grad_input_op {
  nn_prelu_args a;
  __device__ __forceinline__ void operator()(int64_t i) const {
    double w = nn_load(a.dtype, a.weight, nn_prelu_channel(i, a.channels, a.inner));
    nn_store(a.dtype, a.gx, i, nn_prelu_grad_input(nn_load(a.dtype, a.x, i), w, nn_load(a.dtype, a.g, i)));
  }
};

/* gw_c: a block per channel sums its elements' terms in double */
__global__ void prelu_grad_weight_kernel(nn_prelu_args a) {
  __shared__ double shared[32];
  int64_t per_channel = a.channels == 1 ? a.n : a.n / a.channels;
  for (int64_t c = blockIdx.x; c < a.channels; c += gridDim.x) {
    double acc = 0;
    for (int64_t j = threadIdx.x; j < per_channel; j += blockDim.x) {
      int64_t i = a.channels == 1 ? j : ((j / a.inner) * a.channels + c) * a.inner + j % a.inner;
      acc += nn_prelu_grad_weight(nn_load(a.dtype, a.x, i), nn_load(a.dtype, a.g, i));
    }
    acc = nn_cuda_block_reduce(acc, nn_cuda_add_double(), shared);
    if (threadIdx.x == 0) nn_store(a.dtype, a.gw, c, acc);
  }
}

static int cuda_prelu_backward(const nn_prelu_args *a) {
  if (a->gx && nn_cuda_run_each("prelu backward", a->n, prelu_grad_input_op{*a}) < 0) return -1;
  if (!a->gw || a->channels <= 0) return 0;
  prelu_grad_weight_kernel<<<nn_cuda_blocks(a->channels, 1), NN_CUDA_THREADS, 0, nn_cuda_stream()>>>(*a);
  return nn_cuda_launched("prelu backward");
}

void nn_cuda_fill_activation_kernels(nn_backend *b) {
  b->activation = cuda_activation;
  b->activation_backward = cuda_activation_backward;
  b->softmax = cuda_softmax;
  b->softmax_backward = cuda_softmax_backward;
  b->prelu = cuda_prelu;
  b->prelu_backward = cuda_prelu_backward;
}

/* cuda/rnn.cu: one time step of a recurrent layer, forward and backward
 * (cpu/rnn.c's entries): a thread per unit of each row, computing
 * math/rnn.h's element functions, the very ones the CPU computes. */
#include "cuda/common.cuh"
#include "math/rnn.h"

struct rnn_step_op {
  nn_rnn_step_args a;
  __device__ __forceinline__ void operator()(int64_t i) const {
    nn_rnn_step_element(&a, i / a.hidden, i % a.hidden);
  }
};

struct rnn_step_backward_op {
  nn_rnn_step_args a;
  __device__ __forceinline__ void operator()(int64_t i) const {
    nn_rnn_step_backward_element(&a, i / a.hidden, i % a.hidden);
  }
};

static int cuda_rnn_step(const nn_rnn_step_args *a) {
  return nn_cuda_run_each("rnn step", a->rows * a->hidden, rnn_step_op{*a});
}

static int cuda_rnn_step_backward(const nn_rnn_step_args *a) {
  return nn_cuda_run_each("rnn step backward", a->rows * a->hidden, rnn_step_backward_op{*a});
}

void nn_cuda_fill_rnn_kernels(nn_backend *b) {
  b->rnn_step = cuda_rnn_step;
  b->rnn_step_backward = cuda_rnn_step_backward;
}

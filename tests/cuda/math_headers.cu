// Compiles every formula of engine/src/math/ and the backend table as CUDA
// C++, host and device, as the CUDA backend will: a formula that only the
// C compiler accepts fails here first. Built, not run, by the test
// nvcc.math_headers (CMakeLists.txt) where nvcc is found.
#include "backend.h"
#include "math/activation.h"
#include "math/common.h"
#include "math/dtype.h"
#include "math/elementwise.h"
#include "math/exp.h"
#include "math/fill.h"
#include "math/loss.h"
#include "math/optim.h"
#include "math/random.h"
#include "math/rnn.h"
#include "math/reduce.h"
#include "math/special.h"

__global__ void every_formula(nn_iter it, nn_reduce_geom r, double *out) {
  double x = nn_load(it.dtype[1], it.data[1], threadIdx.x), y = 0.5, s = 0;
  nn_store(it.dtype[0], it.data[0], threadIdx.x, x);
  s += nn_ramp_value(threadIdx.x, 10, 5, 0.0, 0.1, 1.0) + nn_exp_f32((float)x);
  s += nn_binary_apply(NN_POW, x, y) + nn_binary_apply_f(NN_DIV, (float)x, 2.0f);
  s += nn_pow_number(x, 3) + nn_pow_number_f((float)x, 0.5f) + (double)nn_integer_apply(NN_POW, 3, 4);
  s += nn_unary_apply(NN_ROUND, x) + nn_unary_apply_f(NN_SIGMOID, (float)x);
  s += nn_sigmoid_select_f32((float)x) + nn_relu_select_f32((float)x) + nn_relu_grad_select_f32(1, (float)x);
  s += nn_unary_derivative(NN_TANH, x, y) * nn_unary_grad_reads_output(NN_EXP) + nn_relu_grad(1, x);
  s += nn_clamp_value(x, -1, 1) + nn_clamp_value_f((float)x, -1, 1);
  s += nn_remainder(x, y) + nn_remainder_f((float)x, 0.5f) + nn_erfinv(0.5 * y) +
       nn_integer_divides(NN_FMOD) + nn_unary_gives_bool(NN_ISNAN) + nn_nan_to_num_value(x, 0, 1, -1);
  s += nn_pointwise_grad_value(NN_GRAD_POW_EXPONENT, 1, x, y, nn_pointwise_power(NN_FLOAT32, x, y), 0, 0);
  for (int op = 0; op < NN_ACT_COUNT; op++)
    s += nn_activation_value((nn_activation_op)op, x, 0.1, 20) +
         nn_activation_derivative((nn_activation_op)op, x, 0.1, 20);
  s += nn_softmax_max_step(s, x) + nn_softmax_grad(1, y, 0.5) + nn_log_softmax_grad(1, y, 0.5);
  s += nn_prelu_value(x, 0.25) + nn_prelu_grad_input(x, 0.25, 1) + nn_prelu_grad_weight(x, 1) +
       (double)nn_prelu_channel(threadIdx.x, 3, 2);
  s += nn_extreme_better(x, y, 1) + nn_extreme_attains(x, y);
  s += nn_norm_finish(nn_norm_step(nn_norm_start(3), x, 3), 3) + nn_norm_attains(x, y) +
       nn_norm_grad(x, 2, 1, 3, 1) + nn_sgn(x);
  s += nn_mse_value(x, y) + nn_mse_value_f32((float)x, (float)y) + nn_bce_input_ok(x);
  s += nn_bce_value(x, y) + nn_bce_value_f32((float)x, (float)y) + nn_bce_grad(1, x, y) +
       nn_bce_grad_f32(1, (float)x, (float)y);
  for (int kind = NN_LOSS_L1; kind <= NN_LOSS_KL_DIV_LOG_TARGET; kind++)
    s += nn_pointwise_value((nn_loss_kind)kind, 1, x, y) +
         nn_pointwise_grad_input((nn_loss_kind)kind, 1, x, y) +
         nn_pointwise_grad_target((nn_loss_kind)kind, 1, x, y);
  s += nn_bce_logits_value(x, y, 1, 2) + nn_bce_logits_grad_input(x, y, 1, 2, 1) +
       nn_bce_logits_grad_target(x, 1, 2, 1);
  s += nn_bce_logits_value_f32((float)x, (float)y, 1, 2) +
       nn_bce_logits_grad_input_f32((float)x, (float)y, 1, 2, 1) +
       nn_bce_logits_grad_target_f32((float)x, 1, 2, 1);
  s += nn_smoothed_loss(x, y, 0.1, 10) + nn_smoothed_target(y, 0.1, 10);
  s += nn_maximum_f32(1, (float)x) + nn_maximum_f64(1, x);
  s += nn_tan_f32((float)x) + nn_atan_f32((float)x) + nn_atan2_f32((float)x, 2.0f) + nn_erf_f32((float)x) +
       nn_erfinv_f32((float)y);
  s += nn_sgd_param_f32(nn_sgd_buffer_f32(1, nn_sgd_direction_f32(1, (float)x, 1, 0), 0.9f, 1, 0), 0.1f, 1);
  s += nn_sgd_param_f64(nn_sgd_buffer_f64(1, nn_sgd_direction_f64(1, x, 1, 0), 0.9, 0, 0), 0.1, 1);
  s += nn_adam_param_f32(1, -0.1f, nn_adam_first_f32(0, 0.9f, 0.1f, 1), nn_adam_second_f32(0, 0.99f, 0.01f, 1), 1, 1e-8f);
  s += nn_adam_param_f64(1, -0.1, nn_adam_first_f64(0, 0.9, 0.1, 1), nn_adam_second_f64(0, 0.99, 0.01, 1), 1, 1e-8);
  float ga = 0.5f;
  double gad = 0.5;
  s += nn_rmsprop_denominator_f32(nn_rmsprop_square_f32(1, 0.9f, 0.1f, 1), &ga, 1e-8f) +
       nn_rmsprop_average_f32(0, 0.9f, 0.1f, 1);
  s += nn_rmsprop_denominator_f64(nn_rmsprop_square_f64(1, 0.9, 0.1, 1), &gad, 1e-8) +
       nn_rmsprop_average_f64(0, 0.9, 0.1, 1);
  s += nn_adagrad_param_f32(1, -0.1f, 1, 1, 1e-10f) + nn_adagrad_param_f64(1, -0.1, 1, 1, 1e-10) +
       nn_adagrad_rate(0.1, 0.01, 3) + nn_bias_correction(0.9, 3);
  uint32_t counter[4] = {threadIdx.x, 0, 0, 0}, key[2] = {1, 2}, bits[4];
  nn_philox4x32(counter, key, bits);
  float a = nn_uniform_f32(bits[0], 0, 1), b = nn_uniform_f32(bits[1], 0, 1);
  double second;
  nn_normal_pair_f32(&a, &b, 0, 1);
  double c = nn_uniform_f64((uint64_t)bits[2] << 32 | bits[3], 0, 1), d = 0.5;
  nn_normal_pair_f64(&c, &d, 0, 1);
  s += a + b + c + d + nn_box_muller_f64(0.25, 0.5, &second) + second;
  out[threadIdx.x] = s + r.rsize[0] + nn_floating_dtype(it.dtype[0]) + (double)nn_double_to_int64(x) +
                     nn_round_to(NN_FLOAT32, x) + (double)nn_load_integer(NN_INT64, it.data[2], 0);
}

// The table's entries, as a backend library fills them.
static int gemm_stub(const nn_gemm_args *) { return 0; }
nn_backend stub_backend() {
  nn_backend table = {};
  table.name = "stub";
  table.gemm = gemm_stub;
  return table;
}

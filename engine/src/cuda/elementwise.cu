/* cuda/elementwise.cu: binary ops (tensor op tensor, tensor op number),
 * unary ops and their derivatives, clamp and the select-style gradients:
 * cpu/elementwise.c's entries, one thread an element over the iterator.
 * float32 operands compute in float and float64 ones in double as the CPU
 * does; mixed dtypes convert to the compute dtype through nn_load. */
#include "cuda/common.cuh"
#include "math/elementwise.h"

/* ---- binary: (out, a, b), or (out, a) and a number -------------------- */
struct binary_op {
  nn_binary_op op;
  nn_dtype compute;
  int has_b;
  double scalar;
  int scalar_first;
  /* set (to 0) by any element whose integer divisor is zero; NULL when
     the op cannot divide by zero */
  unsigned long long *divided_by_zero;

  __device__ double with_number(double x) const {
    if (scalar_first) return nn_binary_apply(op, scalar, x);
    return op == NN_POW ? nn_pow_number(x, scalar) : nn_binary_apply(op, x, scalar);
  }
  __device__ float with_number_f(float x, float s) const {
    if (scalar_first) return nn_binary_apply_in(compute, op, s, x);
    return op == NN_POW ? nn_pow_number_f(x, s) : nn_binary_apply_in(compute, op, x, s);
  }

  template <typename I> __device__ __forceinline__ void operator()(const nn_iter &it, const I *off) const {
    nn_dtype o = it.dtype[0], a = it.dtype[1], b = has_b ? it.dtype[2] : a;
    if (o == NN_FLOAT32 && a == NN_FLOAT32 && b == NN_FLOAT32) {
      float x = ((const float *)it.data[1])[off[1]];
      ((float *)it.data[0])[off[0]] =
          has_b ? nn_binary_apply_f(op, x, ((const float *)it.data[2])[off[2]]) : with_number_f(x, (float)scalar);
    } else if (compute == NN_FLOAT32 || nn_half_dtype(compute)) {
      /* the half types in float32, on a number rounded to their precision,
         as the CPU's loops */
      float x = (float)nn_load(a, it.data[1], off[1]);
      float v = has_b ? nn_binary_apply_in(compute, op, x, (float)nn_load(b, it.data[2], off[2]))
                      : with_number_f(x, (float)nn_round_to(compute, scalar));
      nn_store(o, it.data[0], off[0], v);
    } else if (compute == NN_FLOAT64) {
      double x = nn_load(a, it.data[1], off[1]);
      double v = has_b ? nn_binary_apply(op, x, nn_load(b, it.data[2], off[2])) : with_number(x);
      nn_store(o, it.data[0], off[0], v);
    } else {
      /* integers and bools exactly, as int64; a number is whole, saturated */
      int64_t x = nn_load_integer(a, it.data[1], off[1]);
      int64_t y = has_b ? nn_load_integer(b, it.data[2], off[2]) : nn_double_to_int64(scalar);
      if (divided_by_zero && (scalar_first ? x : y) == 0) *divided_by_zero = 0;
      int64_t v = scalar_first ? nn_integer_apply(op, y, x) : nn_integer_apply(op, x, y);
      nn_store_integer(o, it.data[0], off[0], v);
    }
  }
};

static int integer_division_by_zero(nn_binary_op op) {
  nn_error_set("%s: integer division by zero (ZeroDivisionError)", nn_integer_division_name(op));
  return -1;
}

/* Integer division by zero is an error, as on the CPU: the kernel marks a
   flag that is read back after it (a wait for the device, paid only by
   integer fmod, remainder and floor or trunc division by a tensor). */
template <int Operands>
static int run_binary(nn_binary_op op, nn_dtype compute, const nn_iter *it, double s, int scalar_first) {
  static const char name[] = "binary op";
  int checked = nn_integer_divides(op) && compute != NN_FLOAT32 && compute != NN_FLOAT64 &&
                !nn_half_dtype(compute);
  if (checked && Operands == 2 && !scalar_first) {
    if (nn_double_to_int64(s) == 0 && nn_cuda_iter_numel(it) > 0) return integer_division_by_zero(op);
    checked = 0; /* a number divisor was checked here */
  }
  unsigned long long *bad = NULL;
  if (checked && nn_cuda_iter_numel(it) > 0 && !(bad = nn_cuda_index_flag(name))) return -1;
  int status = nn_cuda_run_iter<Operands>(name, it, binary_op{op, compute, Operands == 3, s, scalar_first, bad});
  if (!bad) return status;
  int read;
  unsigned long long flag = nn_cuda_index_flag_read(bad, &read);
  if (status < 0 || read < 0) return -1;
  return flag == NN_CUDA_NO_INDEX ? 0 : integer_division_by_zero(op);
}

static int cuda_binary(nn_binary_op op, nn_dtype compute, const nn_iter *it) {
  return run_binary<3>(op, compute, it, 0, 0);
}

static int cuda_binary_number(nn_binary_op op, nn_dtype compute, const nn_iter *it, double s,
                              int scalar_first) {
  return run_binary<2>(op, compute, it, s, scalar_first);
}

/* ---- unary: (out, a) ---------------------------------------------------- */
struct unary_op {
  nn_unary_op op;
  template <typename I> __device__ __forceinline__ void operator()(const nn_iter &it, const I *off) const {
    nn_dtype o = it.dtype[0], a = it.dtype[1];
    if (o == NN_FLOAT32 && a == NN_FLOAT32) {
      float x = ((const float *)it.data[1])[off[1]];
      /* the forms of the CPU's contiguous float32 loops */
      float v = op == NN_SIGMOID ? nn_sigmoid_select_f32(x)
                : op == NN_RELU  ? nn_relu_select_f32(x)
                                 : nn_unary_apply_f(op, x);
      ((float *)it.data[0])[off[0]] = v;
    } else if (nn_half_dtype(o)) { /* computed in float32, rounded on the way out */
      nn_store(o, it.data[0], off[0], nn_unary_apply_f(op, (float)nn_load(a, it.data[1], off[1])));
    } else {
      nn_store(o, it.data[0], off[0], nn_unary_apply(op, nn_load(a, it.data[1], off[1])));
    }
  }
};

static int cuda_unary(nn_unary_op op, const nn_iter *it) {
  return nn_cuda_run_iter<2>("unary op", it, unary_op{op});
}

/* (gi, g, v): gi = g op'(v), v the output or the input as
   nn_unary_grad_reads_output says; relu selects */
struct unary_backward_op {
  nn_unary_op op;
  template <typename I> __device__ __forceinline__ void operator()(const nn_iter &it, const I *off) const {
    int out_mode = nn_unary_grad_reads_output(op);
    if (it.dtype[0] == NN_FLOAT32) {
      float g = ((const float *)it.data[1])[off[1]], v = ((const float *)it.data[2])[off[2]];
      float gi = op == NN_SIGMOID ? nn_sigmoid_grad_f32(g, v)
                 : op == NN_RELU  ? nn_relu_grad_select_f32(g, v)
                                  : g * (float)nn_unary_derivative(op, out_mode ? 0 : v, out_mode ? v : 0);
      ((float *)it.data[0])[off[0]] = gi;
    } else {
      double g = ((const double *)it.data[1])[off[1]], v = ((const double *)it.data[2])[off[2]];
      ((double *)it.data[0])[off[0]] =
          op == NN_RELU ? nn_relu_grad(g, v) : g * nn_unary_derivative(op, out_mode ? 0 : v, out_mode ? v : 0);
    }
  }
};

static int cuda_unary_backward(nn_unary_op op, const nn_iter *it) {
  return nn_cuda_run_iter<3>("unary backward", it, unary_backward_op{op});
}

/* ---- clamp: (out, a) ------------------------------------------------------ */
struct clamp_op {
  double lo, hi;
  template <typename I> __device__ __forceinline__ void operator()(const nn_iter &it, const I *off) const {
    if (it.dtype[0] == NN_FLOAT32 && it.dtype[1] == NN_FLOAT32) {
      ((float *)it.data[0])[off[0]] =
          nn_clamp_value_f(((const float *)it.data[1])[off[1]], (float)lo, (float)hi);
      return;
    }
    nn_store(it.dtype[0], it.data[0], off[0], nn_clamp_value(nn_load(it.dtype[1], it.data[1], off[1]), lo, hi));
  }
};

static int cuda_clamp(const nn_iter *it, double lo, double hi) {
  return nn_cuda_run_iter<2>("clamp", it, clamp_op{lo, hi});
}

/* ---- the select-style gradients: (gi, g, x) or (gi, g, x, y) ----------- */
template <int N>
struct pointwise_grad_op {
  nn_pointwise_grad_op op;
  double lo, hi;
  template <typename I> __device__ __forceinline__ void operator()(const nn_iter &it, const I *off) const {
    const nn_dtype *dt = it.dtype;
    double g = nn_load(dt[1], it.data[1], off[1]), x = nn_load(dt[2], it.data[2], off[2]);
    double y = N > 3 ? nn_load(dt[N - 1], it.data[N - 1], off[N - 1]) : 0, out = 0;
    if (op == NN_GRAD_POW_EXPONENT) out = nn_pointwise_power(dt[0], x, y);
    else if (op == NN_GRAD_NUMBER_BASE) out = nn_pointwise_power(dt[0], lo, x);
    nn_store(dt[0], it.data[0], off[0], nn_pointwise_grad_value(op, g, x, y, out, lo, hi));
  }
};

static int cuda_pointwise_grad(nn_pointwise_grad_op op, const nn_iter *it, double lo, double hi) {
  if (it->n > 3) return nn_cuda_run_iter<4>("pointwise grad", it, pointwise_grad_op<4>{op, lo, hi});
  return nn_cuda_run_iter<3>("pointwise grad", it, pointwise_grad_op<3>{op, lo, hi});
}

void nn_cuda_fill_elementwise_kernels(nn_backend *b) {
  b->binary = cuda_binary;
  b->binary_number = cuda_binary_number;
  b->unary = cuda_unary;
  b->unary_backward = cuda_unary_backward;
  b->clamp = cuda_clamp;
  b->pointwise_grad = cuda_pointwise_grad;
}

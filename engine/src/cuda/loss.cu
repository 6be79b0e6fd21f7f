/* cuda/loss.cu: the losses forward and backward: cpu/loss.c's entries.
 * Formulas: math/loss.h; each element computes what the CPU's loop
 * computes for it (float32's float forms where the CPU has them).
 *
 * A reduced loss sums its terms in double in a fixed tree (blocks of
 * LOSS_PIECE elements, then one block over the pieces) and writes the one
 * value on the device. Inputs a loss refuses (BCE's input outside [0, 1], a
 * label that is no class) are found on the device, the first one's index
 * read back (a synchronisation) and named in the error, as on the CPU. */
#include "cuda/common.cuh"
#include "math/loss.h"

#include <stdio.h>

#define LOSS_PIECE 2048

/* ---- sums in a fixed order ------------------------------------------------ */
/* Piece b (elements b LOSS_PIECE ...) of sum f(i): into partial[b], or,
   when there is one piece, straight into out as sum / divisor. */
template <typename F>
__global__ void loss_sum_kernel(int64_t n, F f, double *partial, nn_dtype dtype, void *out, double divisor) {
  __shared__ double shared[32];
  int64_t start = (int64_t)blockIdx.x * LOSS_PIECE, end = start + LOSS_PIECE < n ? start + LOSS_PIECE : n;
  double acc = 0;
  for (int64_t i = start + threadIdx.x; i < end; i += blockDim.x) acc += f(i);
  acc = nn_cuda_block_reduce(acc, nn_cuda_add_double(), shared);
  if (threadIdx.x != 0) return;
  if (gridDim.x == 1) nn_store(dtype, out, 0, acc / divisor); /* the mean of nothing is NaN */
  else partial[blockIdx.x] = acc;
}

__global__ void loss_pieces_kernel(const double *partial, int64_t pieces, nn_dtype dtype, void *out,
                                   double divisor) {
  __shared__ double shared[32];
  double acc = 0;
  for (int64_t i = threadIdx.x; i < pieces; i += blockDim.x) acc += partial[i];
  acc = nn_cuda_block_reduce(acc, nn_cuda_add_double(), shared);
  if (threadIdx.x == 0) nn_store(dtype, out, 0, acc / divisor);
}

/* out = sum over i < n of f(i) / divisor, f also writing what it writes */
template <typename F>
static int loss_sum(const char *op, int64_t n, const F &f, nn_dtype dtype, void *out, double divisor) {
  int64_t pieces = n > 0 ? (n + LOSS_PIECE - 1) / LOSS_PIECE : 1;
  cudaStream_t st = nn_cuda_stream();
  if (pieces == 1) {
    loss_sum_kernel<F><<<1, NN_CUDA_THREADS, 0, st>>>(n, f, NULL, dtype, out, divisor);
    return nn_cuda_launched(op);
  }
  size_t bytes = (size_t)pieces * sizeof(double);
  double *partial = (double *)nn_cuda_scratch(op, bytes);
  if (!partial) return -1;
  loss_sum_kernel<F><<<(unsigned)pieces, NN_CUDA_THREADS, 0, st>>>(n, f, partial, dtype, out, divisor);
  int status = nn_cuda_launched(op);
  if (status == 0) {
    loss_pieces_kernel<<<1, NN_CUDA_THREADS, 0, st>>>(partial, pieces, dtype, out, divisor);
    status = nn_cuda_launched(op);
  }
  nn_cuda_scratch_release(partial, bytes);
  return status;
}

/* ---- the elementwise losses -------------------------------------------------- */
/* l_i, stored in out when the loss is not reduced; returns what the
   reduced sum adds (the CPU's: float32 values where its loop sums them). */
struct loss_forward_op {
  nn_loss_args a;
  unsigned long long *bad; /* BCE: the first input outside [0, 1] */

  __device__ __forceinline__ double operator()(int64_t i) const {
    nn_dtype dt = a.dtype;
    int f32 = dt == NN_FLOAT32, store = !a.reduced;
    double x = nn_load(dt, a.x, i), y = nn_load(dt, a.y, i), v;
    switch (a.kind) {
    case NN_LOSS_MSE:
      v = f32 ? (double)nn_mse_value_f32((float)x, (float)y) : nn_mse_value(x, y);
      break;
    case NN_LOSS_BCE:
      if (!nn_bce_input_ok(x)) {
        atomicMin(bad, (unsigned long long)i);
        return 0;
      }
      if (f32 && !a.weight && a.reduced) return nn_bce_value_f32((float)x, (float)y);
      v = nn_bce_value(x, y);
      if (a.weight) v *= nn_load(dt, a.weight, i);
      if (a.reduced) return nn_round_to(dt, v); /* the sum of the stored losses */
      break;
    case NN_LOSS_BCE_WITH_LOGITS: {
      double w = a.weight ? nn_load(dt, a.weight, i) : 1, p = a.pos_weight ? nn_load(dt, a.pos_weight, i) : 1;
      v = f32 ? (double)nn_bce_logits_value_f32((float)x, (float)y, (float)w, (float)p)
              : nn_bce_logits_value(x, y, w, p);
      break;
    }
    default:
      v = nn_pointwise_value(a.kind, a.param, x, y);
      break;
    }
    if (store) nn_store(dt, a.out, i, v);
    return v;
  }
};

struct loss_each_op {
  loss_forward_op f;
  __device__ __forceinline__ void operator()(int64_t i) const { (void)f(i); }
};

static int cuda_loss(const nn_loss_args *a) {
  static const char op[] = "loss";
  const char *name = a->kind == NN_LOSS_BCE ? "binary_cross_entropy" : op;
  unsigned long long *bad = NULL;
  if (a->kind == NN_LOSS_BCE && !(bad = nn_cuda_index_flag(name))) return -1;
  loss_forward_op f = {*a, bad};
  int status = a->reduced ? loss_sum(name, a->n, f, a->dtype, a->out, a->divisor)
                          : nn_cuda_run_each(name, a->n, loss_each_op{f});
  if (!bad) return status;
  int read;
  unsigned long long first = nn_cuda_index_flag_read(bad, &read);
  if (status < 0 || read < 0) return -1;
  if (first == NN_CUDA_NO_INDEX) return 0;
  double x;
  if (nn_cuda_read_element(a->dtype, a->x, (int64_t)first, &x) < 0) return -1;
  nn_error_set("binary_cross_entropy: input values must be probabilities in [0, 1], element %lld is %g",
               (long long)first + 1, x);
  return -1;
}

/* dl/dx g into gx, dl/dy g into gy (either may be NULL) for element i */
struct loss_backward_op {
  nn_loss_args a;

  __device__ double upstream(int64_t i) const {
    return a.reduced ? nn_load(a.dtype, a.g, 0) / a.divisor : nn_load(a.dtype, a.g, i);
  }

  __device__ __forceinline__ void operator()(int64_t i) const {
    nn_dtype dt = a.dtype;
    int f32 = dt == NN_FLOAT32;
    double x = nn_load(dt, a.x, i), y = nn_load(dt, a.y, i), gx, gy;
    switch (a.kind) {
    case NN_LOSS_MSE:
      if (f32 && a.reduced) {
        float scale = (float)(2 * upstream(0));
        gx = scale * ((float)x - (float)y);
      } else {
        gx = nn_round_to(dt, 2 * (x - y) * upstream(i));
      }
      gy = -gx;
      break;
    case NN_LOSS_BCE:
      if (f32 && !a.weight && a.reduced) {
        float v = nn_bce_grad_f32((float)nn_load(dt, a.g, 0), (float)x, (float)y);
        gx = a.divisor != 1 ? v / (float)a.divisor : v;
      } else {
        gx = nn_bce_grad(upstream(i), x, y);
        if (a.weight) gx *= nn_load(dt, a.weight, i);
      }
      gy = 0;
      break;
    case NN_LOSS_BCE_WITH_LOGITS: {
      int has_p = a.pos_weight != NULL;
      double w = a.weight ? nn_load(dt, a.weight, i) : 1, p = has_p ? nn_load(dt, a.pos_weight, i) : 1;
      double s = upstream(i);
      if (f32) {
        float sf = (float)s;
        gx = nn_bce_logits_grad_input_f32((float)x, (float)y, (float)w, (float)p, has_p) * sf;
        gy = nn_bce_logits_grad_target_f32((float)x, (float)w, (float)p, has_p) * sf;
      } else {
        gx = nn_bce_logits_grad_input(x, y, w, p, has_p) * s;
        gy = nn_bce_logits_grad_target(x, w, p, has_p) * s;
      }
      break;
    }
    default: {
      double s = upstream(i);
      gx = nn_pointwise_grad_input(a.kind, a.param, x, y) * s;
      gy = nn_pointwise_grad_target(a.kind, a.param, x, y) * s;
      break;
    }
    }
    if (a.gx) nn_store(dt, a.gx, i, gx);
    if (a.gy && a.kind != NN_LOSS_BCE) nn_store(dt, a.gy, i, gy); /* BCE has no target gradient */
  }
};

static int cuda_loss_backward(const nn_loss_args *a) {
  return nn_cuda_run_each("loss backward", a->n, loss_backward_op{*a});
}

/* ---- cross-entropy and NLL over classes ------------------------------------- */
__device__ __forceinline__ double class_weight(const nn_class_loss_args &a, int64_t c) {
  return a.weight ? a.weight[c] : 1.0;
}

__device__ __forceinline__ void add_at(nn_dtype dtype, void *p, int64_t i, double v) {
  nn_store(dtype, p, i, nn_load(dtype, p, i) + v);
}

__device__ __forceinline__ int64_t class_at(const nn_class_loss_args &a, int64_t pos) {
  int whole;
  int64_t label = nn_label_value(a.target_dtype, a.target, pos, &whole);
  return nn_label_class(label, whole, a.first_label, a.classes, a.ignore_index);
}

/* A thread per position: its loss (when not reduced) and, into terms,
   what the reduction sums: labels (nll, smoothing term, weight) at
   pos, pos + positions, pos + 2 positions; probabilities its loss at pos. */
__global__ void class_forward_kernel(nn_class_loss_args a, double *terms, unsigned long long *bad) {
  int64_t positions = a.outer * a.inner, step = (int64_t)gridDim.x * blockDim.x;
  int64_t classes = a.classes, inner = a.inner;
  int per_position = a.reduction == NN_REDUCTION_NONE;
  nn_dtype dt = a.dtype;
  double s = a.smoothing;
  for (int64_t pos = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; pos < positions; pos += step) {
    int64_t outer = pos / inner, k = pos - outer * inner, base = outer * classes * inner + k;
    if (a.probabilities) {
      double lse = nn_classes_logsumexp(dt, a.x, base, inner, classes), v = 0;
      a.lse[pos] = lse;
      for (int64_t c = 0; c < classes; c++) {
        int64_t at = base + c * inner;
        v -= class_weight(a, c) * nn_smoothed_target(nn_load(dt, a.target, at), s, classes) *
             (nn_load(dt, a.x, at) - lse);
      }
      if (per_position) nn_store(dt, a.out, pos, v);
      terms[pos] = v;
      continue;
    }
    int64_t label = class_at(a, pos);
    double nll = 0, smooth = 0, wt = 0;
    if (label == -2) atomicMin(bad, (unsigned long long)pos);
    if (label < 0) {
      if (per_position) nn_store(dt, a.out, pos, 0);
      if (a.lse) a.lse[pos] = 0;
    } else {
      double lse = a.from_logits ? nn_classes_logsumexp(dt, a.x, base, inner, classes) : 0;
      if (a.lse) a.lse[pos] = lse;
      wt = class_weight(a, label);
      nll = -wt * (nn_load(dt, a.x, base + label * inner) - lse);
      if (s > 0)
        for (int64_t c = 0; c < classes; c++) smooth -= class_weight(a, c) * (nn_load(dt, a.x, base + c * inner) - lse);
      if (per_position) nn_store(dt, a.out, pos, nn_smoothed_loss(nll, smooth, s, classes));
    }
    terms[pos] = nll, terms[pos + positions] = smooth, terms[pos + 2 * positions] = wt;
  }
}

/* One block: the terms' sums in a fixed tree; labels write the targets'
   total weight, and the reduced loss. */
__global__ void class_total_kernel(nn_class_loss_args a, const double *terms) {
  __shared__ double shared[32];
  int64_t positions = a.outer * a.inner;
  double sums[3] = {0, 0, 0};
  for (int t = 0; t < (a.probabilities ? 1 : 3); t++) {
    double acc = 0;
    for (int64_t i = threadIdx.x; i < positions; i += blockDim.x) acc += terms[t * positions + i];
    sums[t] = nn_cuda_block_reduce(acc, nn_cuda_add_double(), shared);
  }
  if (threadIdx.x != 0) return;
  if (a.probabilities) {
    /* PyTorch's mean divides by the number of positions, weights or not */
    if (a.reduction != NN_REDUCTION_NONE)
      nn_store(a.dtype, a.out, 0, sums[0] / (a.reduction == NN_REDUCTION_MEAN ? (double)positions : 1.0));
    return;
  }
  *a.total_weight = sums[2];
  if (a.reduction != NN_REDUCTION_NONE) {
    double divisor = a.reduction == NN_REDUCTION_MEAN ? sums[2] : 1.0;
    nn_store(a.dtype, a.out, 0, nn_smoothed_loss(sums[0] / divisor, sums[1] / divisor, a.smoothing, a.classes));
  }
}

/* The message the CPU gives for the label of target element i. */
static void label_error(const nn_class_loss_args *a, int64_t i) {
  long long first = (long long)a->first_label, last = (long long)(a->first_label + a->classes - 1);
  double v;
  if (nn_cuda_read_element(a->target_dtype, a->target, i, &v) < 0) return;
  if (a->target_dtype == NN_INT64 || (v == floor(v) && fabs(v) <= 9.0e15)) {
    long long label = (long long)v;
    if (a->target_dtype == NN_INT64 && nn_cuda_table->to_host(&label, (const int64_t *)a->target + i, sizeof label) < 0)
      return;
    nn_error_set("%s: target element %lld is class %lld, outside the classes %lld..%lld", a->op,
                 (long long)i + 1, label, first, last);
  } else {
    nn_error_set("%s: target element %lld is %g, not a class label (a whole number in %lld..%lld)", a->op,
                 (long long)i + 1, v, first, last);
  }
}

static int cuda_class_loss(const nn_class_loss_args *a) {
  int64_t positions = a->outer * a->inner;
  size_t bytes = (size_t)(positions > 0 ? positions : 1) * 3 * sizeof(double);
  double *terms = (double *)nn_cuda_scratch(a->op, bytes);
  if (!terms) return -1;
  unsigned long long *bad = a->probabilities ? NULL : nn_cuda_index_flag(a->op);
  int status = -1;
  if (a->probabilities || bad) {
    cudaStream_t st = nn_cuda_stream();
    class_forward_kernel<<<nn_cuda_blocks(positions, NN_CUDA_THREADS), NN_CUDA_THREADS, 0, st>>>(*a, terms, bad);
    status = nn_cuda_launched(a->op);
    if (status == 0) {
      class_total_kernel<<<1, NN_CUDA_THREADS, 0, st>>>(*a, terms);
      status = nn_cuda_launched(a->op);
    }
  }
  nn_cuda_scratch_release(terms, bytes);
  if (!bad) return status;
  int read;
  unsigned long long first = nn_cuda_index_flag_read(bad, &read);
  if (status < 0 || read < 0) return -1;
  if (first == NN_CUDA_NO_INDEX) return 0;
  label_error(a, (int64_t)first);
  return -1;
}

/* A thread per position writes its row of gx (which starts at zero) and
   of gy. A label that is no class was refused by the forward; it is left
   alone here, like an ignored one. */
__global__ void class_backward_kernel(nn_class_loss_args a) {
  int64_t positions = a.outer * a.inner, step = (int64_t)gridDim.x * blockDim.x;
  int64_t classes = a.classes, inner = a.inner;
  int per_position = a.reduction == NN_REDUCTION_NONE;
  nn_dtype dt = a.dtype;
  double s = a.smoothing, g0 = per_position ? 0 : nn_load(dt, a.g, 0);
  for (int64_t pos = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; pos < positions; pos += step) {
    int64_t outer = pos / inner, k = pos - outer * inner, base = outer * classes * inner + k;
    if (a.probabilities) {
      double divisor = a.reduction == NN_REDUCTION_MEAN ? (double)positions : 1.0;
      double scale = per_position ? nn_load(dt, a.g, pos) : g0 / divisor, lse = a.lse[pos], total = 0;
      for (int64_t c = 0; c < classes; c++)
        total -= scale * class_weight(a, c) * nn_smoothed_target(nn_load(dt, a.target, base + c * inner), s, classes);
      if (a.gx) nn_softmax_times(dt, a.x, a.gx, base, inner, classes, lse, total);
      for (int64_t c = 0; c < classes; c++) {
        int64_t at = base + c * inner;
        double wc = class_weight(a, c), yc = nn_smoothed_target(nn_load(dt, a.target, at), s, classes);
        if (a.gx) add_at(dt, a.gx, at, -scale * wc * yc);
        if (a.gy) nn_store(dt, a.gy, at, -scale * wc * (1 - s) * (nn_load(dt, a.x, at) - lse));
      }
      continue;
    }
    int64_t label = class_at(a, pos);
    if (label < 0 || !a.gx) continue; /* its row stays 0 */
    double scale = per_position ? nn_load(dt, a.g, pos)
                                : (a.reduction == NN_REDUCTION_MEAN ? g0 / *a.total_weight : g0);
    double hot = -scale * (1 - s) * class_weight(a, label), spread = -scale * (s / (double)classes);
    if (a.from_logits) {
      double all_weights = 0; /* sum_c w_c, for the smoothing term */
      for (int64_t c = 0; c < classes; c++) all_weights += class_weight(a, c);
      nn_softmax_times(dt, a.x, a.gx, base, inner, classes, a.lse[pos], hot + spread * all_weights);
    }
    add_at(dt, a.gx, base + label * inner, hot);
    if (s > 0)
      for (int64_t c = 0; c < classes; c++) add_at(dt, a.gx, base + c * inner, spread * class_weight(a, c));
  }
}

static int cuda_class_loss_backward(const nn_class_loss_args *a) {
  int64_t positions = a->outer * a->inner;
  if (positions <= 0) return 0;
  class_backward_kernel<<<nn_cuda_blocks(positions, NN_CUDA_THREADS), NN_CUDA_THREADS, 0, nn_cuda_stream()>>>(*a);
  return nn_cuda_launched(a->op);
}

void nn_cuda_fill_loss_kernels(nn_backend *b) {
  b->loss = cuda_loss;
  b->loss_backward = cuda_loss_backward;
  b->class_loss = cuda_class_loss;
  b->class_loss_backward = cuda_class_loss_backward;
}

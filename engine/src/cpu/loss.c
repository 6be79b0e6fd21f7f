/* cpu/loss.c: the losses' loops, forward and backward. Each reads
 * contiguous data and, reduced, writes the one reduced value itself.
 * Formulas: math/loss.h. */
#include "cpu/cpu.h"
#include "math/loss.h"

#include <stdlib.h>

/* The upstream gradient's factor for element i: g_i (per element), or the
   reduced loss's one g divided as the forward divided. */
static inline double upstream(const nn_loss_args *a, int64_t i) {
  return a->reduced ? nn_load(a->dtype, a->g, 0) / a->divisor : nn_load(a->dtype, a->g, i);
}

/* ---- MSE ---------------------------------------------------------------- */
/* The sum of the float32 squares in double, over eight independent lanes:
   one running sum is a chain of dependent additions, each waiting for the
   last (about four cycles an element: the MLP step's largest piece of
   work outside its products, on the calling thread alone). The lanes add
   in a fixed order, whatever the thread count and whichever variant the
   processor runs (the widest: the lanes are its vector's lanes). */
enum { MSE_LANES = 8 };
NN_CPU_CLONES
static double mse_sum_f32(int64_t n, const float *px, const float *py) {
  double lane[MSE_LANES] = {0};
  int64_t i = 0;
  for (; i + MSE_LANES <= n; i += MSE_LANES)
    for (int j = 0; j < MSE_LANES; j++) lane[j] += nn_mse_value_f32(px[i + j], py[i + j]);
  for (int j = 0; i < n; i++, j++) lane[j] += nn_mse_value_f32(px[i], py[i]);
  return ((lane[0] + lane[1]) + (lane[2] + lane[3])) + ((lane[4] + lane[5]) + (lane[6] + lane[7]));
}

static void mse_forward(const nn_loss_args *a) {
  int64_t n = a->n;
  double sum = 0;
  if (a->dtype == NN_FLOAT32 && a->reduced) {
    sum = mse_sum_f32(n, a->x, a->y);
  } else if (a->dtype == NN_FLOAT32) {
    const float *px = a->x, *py = a->y;
    float *po = a->out;
    for (int64_t i = 0; i < n; i++) po[i] = nn_mse_value_f32(px[i], py[i]);
  } else {
    const double *px = a->x, *py = a->y;
    double *po = a->reduced ? NULL : a->out;
    for (int64_t i = 0; i < n; i++) {
      double v = nn_mse_value(px[i], py[i]);
      if (po) po[i] = v;
      sum += v;
    }
  }
  if (a->reduced) nn_store(a->dtype, a->out, 0, sum / a->divisor); /* the mean of nothing is NaN */
}

/* The reduced float32 gradient, scale (x - y) into gx and its negation
   into gy (either NULL): one loop per case, so that each runs as wide as
   the processor goes (the loop that tested both pointers at every element
   ran at two instructions an element, on the calling thread alone). */
NN_CPU_CLONES
static void mse_grad_f32(int64_t n, const float *restrict px, const float *restrict py, float scale,
                         float *restrict ox, float *restrict oy) {
  if (ox && oy) {
    for (int64_t i = 0; i < n; i++) {
      float v = scale * (px[i] - py[i]);
      ox[i] = v, oy[i] = -v;
    }
  } else if (ox) {
    for (int64_t i = 0; i < n; i++) ox[i] = scale * (px[i] - py[i]);
  } else if (oy) {
    for (int64_t i = 0; i < n; i++) oy[i] = -(scale * (px[i] - py[i]));
  }
}

/* dl/dx = 2 (x - y) g, dl/dy its negation */
static void mse_backward(const nn_loss_args *a) {
  int64_t n = a->n;
  if (a->dtype == NN_FLOAT32 && a->reduced) {
    mse_grad_f32(n, a->x, a->y, (float)(2 * upstream(a, 0)), a->gx, a->gy);
    return;
  }
  for (int64_t i = 0; i < n; i++) {
    double v = nn_round_to(a->dtype, 2 * (nn_load(a->dtype, a->x, i) - nn_load(a->dtype, a->y, i)) *
                                         upstream(a, i));
    if (a->gx) nn_store(a->dtype, a->gx, i, v);
    if (a->gy) nn_store(a->dtype, a->gy, i, -v);
  }
}

/* ---- BCE ----------------------------------------------------------------- */
static int bce_refuse(int64_t i, double x) {
  nn_error_set("binary_cross_entropy: input values must be probabilities in [0, 1], "
               "element %lld is %g", (long long)i + 1, x);
  return -1;
}

static int bce_forward(const nn_loss_args *a) {
  int64_t n = a->n;
  double sum = 0;
  if (a->dtype == NN_FLOAT32 && !a->weight && a->reduced) {
    /* the common case in float, as PyTorch computes it, summed directly */
    const float *px = a->x, *py = a->y;
    for (int64_t i = 0; i < n; i++) {
      if (!nn_bce_input_ok(px[i])) return bce_refuse(i, px[i]);
      sum += nn_bce_value_f32(px[i], py[i]);
    }
  } else {
    for (int64_t i = 0; i < n; i++) {
      double x = nn_load(a->dtype, a->x, i), y = nn_load(a->dtype, a->y, i);
      if (!nn_bce_input_ok(x)) return bce_refuse(i, x);
      double v = nn_bce_value(x, y);
      if (a->weight) v *= nn_load(a->dtype, a->weight, i);
      if (a->reduced) sum += nn_round_to(a->dtype, v); /* the sum of the stored losses */
      else nn_store(a->dtype, a->out, i, v);
    }
  }
  if (a->reduced) nn_store(a->dtype, a->out, 0, sum / a->divisor);
  return 0;
}

static void bce_backward(const nn_loss_args *a) {
  int64_t n = a->n;
  if (a->dtype == NN_FLOAT32 && !a->weight && a->reduced) {
    /* the XOR network's hot path: float all the way, as PyTorch computes it */
    const float *px = a->x, *py = a->y;
    float *pg = a->gx, scale = (float)nn_load(NN_FLOAT32, a->g, 0);
    for (int64_t i = 0; i < n; i++) pg[i] = nn_bce_grad_f32(scale, px[i], py[i]);
    if (a->divisor != 1)
      for (int64_t i = 0; i < n; i++) pg[i] /= (float)a->divisor;
    return;
  }
  for (int64_t i = 0; i < n; i++) {
    double v = nn_bce_grad(upstream(a, i), nn_load(a->dtype, a->x, i), nn_load(a->dtype, a->y, i));
    nn_store(a->dtype, a->gx, i, a->weight ? v * nn_load(a->dtype, a->weight, i) : v);
  }
}

/* ---- pointwise losses ------------------------------------------------------ */
/* The loops below are written once, over any kind, and compiled once per
   kind (pointwise_forward_loop and pointwise_backward_loop call them with
   the kind a constant): each copy has its formula inlined and no dispatch
   per element. */
#if defined(__GNUC__)
#define LOSS_ALWAYS_INLINE __attribute__((always_inline)) inline
#else
#define LOSS_ALWAYS_INLINE inline
#endif

/* Forward over contiguous x and y: every l_i into out (when not NULL),
   and their sum, accumulated in double. */
static LOSS_ALWAYS_INLINE double pointwise_forward_kernel(nn_loss_kind kind, double param,
                                                          int64_t n, nn_dtype dtype, const void *x,
                                                          const void *y, void *out) {
  double sum = 0;
  if (dtype == NN_FLOAT32) {
    const float *px = x, *py = y;
    float *po = out;
    for (int64_t i = 0; i < n; i++) {
      double v = nn_pointwise_value(kind, param, px[i], py[i]);
      if (po) po[i] = (float)v;
      sum += v;
    }
  } else {
    const double *px = x, *py = y;
    double *po = out;
    for (int64_t i = 0; i < n; i++) {
      double v = nn_pointwise_value(kind, param, px[i], py[i]);
      if (po) po[i] = v;
      sum += v;
    }
  }
  return sum;
}

/* Backward over contiguous data: gx_i = dl/dx_i s_i and gy_i = dl/dy_i s_i
   (either output may be NULL), s_i = g_i (g not NULL) or scale. */
static LOSS_ALWAYS_INLINE void pointwise_backward_kernel(nn_loss_kind kind, double param,
                                                         int64_t n, nn_dtype dtype, const void *x,
                                                         const void *y, const void *g,
                                                         double scale, void *gx, void *gy) {
  if (dtype == NN_FLOAT32) {
    const float *px = x, *py = y, *pg = g;
    float *ox = gx, *oy = gy;
    for (int64_t i = 0; i < n; i++) {
      double s = pg ? pg[i] : scale;
      if (ox) ox[i] = (float)(nn_pointwise_grad_input(kind, param, px[i], py[i]) * s);
      if (oy) oy[i] = (float)(nn_pointwise_grad_target(kind, param, px[i], py[i]) * s);
    }
  } else {
    const double *px = x, *py = y, *pg = g;
    double *ox = gx, *oy = gy;
    for (int64_t i = 0; i < n; i++) {
      double s = pg ? pg[i] : scale;
      if (ox) ox[i] = nn_pointwise_grad_input(kind, param, px[i], py[i]) * s;
      if (oy) oy[i] = nn_pointwise_grad_target(kind, param, px[i], py[i]) * s;
    }
  }
}

static double pointwise_forward_loop(nn_loss_kind kind, double param, int64_t n, nn_dtype dtype,
                                     const void *x, const void *y, void *out) {
  switch (kind) {
  case NN_LOSS_L1: return pointwise_forward_kernel(NN_LOSS_L1, param, n, dtype, x, y, out);
  case NN_LOSS_SMOOTH_L1:
    return pointwise_forward_kernel(NN_LOSS_SMOOTH_L1, param, n, dtype, x, y, out);
  case NN_LOSS_HUBER: return pointwise_forward_kernel(NN_LOSS_HUBER, param, n, dtype, x, y, out);
  case NN_LOSS_KL_DIV: return pointwise_forward_kernel(NN_LOSS_KL_DIV, param, n, dtype, x, y, out);
  default:
    return pointwise_forward_kernel(NN_LOSS_KL_DIV_LOG_TARGET, param, n, dtype, x, y, out);
  }
}

static void pointwise_backward_loop(nn_loss_kind kind, double param, int64_t n, nn_dtype dtype,
                                    const void *x, const void *y, const void *g, double scale,
                                    void *gx, void *gy) {
  switch (kind) {
  case NN_LOSS_L1:
    pointwise_backward_kernel(NN_LOSS_L1, param, n, dtype, x, y, g, scale, gx, gy);
    break;
  case NN_LOSS_SMOOTH_L1:
    pointwise_backward_kernel(NN_LOSS_SMOOTH_L1, param, n, dtype, x, y, g, scale, gx, gy);
    break;
  case NN_LOSS_HUBER:
    pointwise_backward_kernel(NN_LOSS_HUBER, param, n, dtype, x, y, g, scale, gx, gy);
    break;
  case NN_LOSS_KL_DIV:
    pointwise_backward_kernel(NN_LOSS_KL_DIV, param, n, dtype, x, y, g, scale, gx, gy);
    break;
  default:
    pointwise_backward_kernel(NN_LOSS_KL_DIV_LOG_TARGET, param, n, dtype, x, y, g, scale, gx, gy);
  }
}


static void pointwise_forward(const nn_loss_args *a) {
  double sum = pointwise_forward_loop(a->kind, a->param, a->n, a->dtype, a->x, a->y,
                                      a->reduced ? NULL : a->out);
  if (a->reduced) nn_store(a->dtype, a->out, 0, sum / a->divisor);
}

static void pointwise_backward(const nn_loss_args *a) {
  double scale = a->reduced ? nn_load(a->dtype, a->g, 0) / a->divisor : 0;
  pointwise_backward_loop(a->kind, a->param, a->n, a->dtype, a->x, a->y, a->reduced ? NULL : a->g,
                          scale, a->gx, a->gy);
}

/* ---- BCE with logits --------------------------------------------------------- */
/* Forward over contiguous data: l_i into out (when not NULL), and the sum.
   w and p point at n values each, or are NULL. */
static double bce_logits_forward_loop(int64_t n, nn_dtype dtype, const void *x, const void *y,
                                      const void *w, const void *p, void *out) {
  double sum = 0;
  if (dtype == NN_FLOAT32) {
    /* blocks of values into a buffer (out, or one on the stack), in a loop
       that vectorises, then summed in double with four accumulators */
    enum { BLOCK = 256 };
    const float *px = x, *py = y, *pw = w, *pp = p;
    float block[BLOCK];
    for (int64_t start = 0; start < n; start += BLOCK) {
      int64_t len = n - start < BLOCK ? n - start : BLOCK;
      float *v = out ? (float *)out + start : block;
      const float *bx = px + start, *by = py + start;
      if (!pw && !pp) {
        for (int64_t i = 0; i < len; i++) v[i] = nn_bce_logits_value_f32(bx[i], by[i], 1.0f, 1.0f);
      } else {
        for (int64_t i = 0; i < len; i++)
          v[i] = nn_bce_logits_value_f32(bx[i], by[i], pw ? pw[start + i] : 1.0f,
                                      pp ? pp[start + i] : 1.0f);
      }
      double partial[4] = {0, 0, 0, 0};
      int64_t i = 0;
      for (; i + 4 <= len; i += 4)
        for (int j = 0; j < 4; j++) partial[j] += v[i + j];
      for (; i < len; i++) partial[0] += v[i];
      sum += (partial[0] + partial[1]) + (partial[2] + partial[3]);
    }
  } else {
    const double *px = x, *py = y, *pw = w, *pp = p;
    double *po = out;
    for (int64_t i = 0; i < n; i++) {
      double v = nn_bce_logits_value(px[i], py[i], pw ? pw[i] : 1.0, pp ? pp[i] : 1.0);
      if (po) po[i] = v;
      sum += v;
    }
  }
  return sum;
}

static void bce_logits_backward_loop(int64_t n, nn_dtype dtype, const void *x, const void *y,
                                     const void *w, const void *p, const void *g, double scale,
                                     void *gx, void *gy) {
  int has_p = p != NULL;
  if (dtype == NN_FLOAT32) {
    const float *px = x, *py = y, *pw = w, *pp = p, *pg = g;
    float *ox = gx, *oy = gy;
    float scale_f = (float)scale;
    if (!pw && !pp && !pg && ox && !oy) { /* the common case, in a loop that vectorises */
      for (int64_t i = 0; i < n; i++) ox[i] = (nn_stable_sigmoid_f32(px[i]) - py[i]) * scale_f;
      return;
    }
    for (int64_t i = 0; i < n; i++) {
      float s = pg ? pg[i] : scale_f, wi = pw ? pw[i] : 1.0f, pi = pp ? pp[i] : 1.0f;
      if (ox) ox[i] = nn_bce_logits_grad_input_f32(px[i], py[i], wi, pi, has_p) * s;
      if (oy) oy[i] = nn_bce_logits_grad_target_f32(px[i], wi, pi, has_p) * s;
    }
  } else {
    const double *px = x, *py = y, *pw = w, *pp = p, *pg = g;
    double *ox = gx, *oy = gy;
    for (int64_t i = 0; i < n; i++) {
      double s = pg ? pg[i] : scale, wi = pw ? pw[i] : 1.0, pi = pp ? pp[i] : 1.0;
      if (ox) ox[i] = nn_bce_logits_grad_input(px[i], py[i], wi, pi, has_p) * s;
      if (oy) oy[i] = nn_bce_logits_grad_target(px[i], wi, pi, has_p) * s;
    }
  }
}


static void bce_logits_forward(const nn_loss_args *a) {
  double sum = bce_logits_forward_loop(a->n, a->dtype, a->x, a->y, a->weight, a->pos_weight,
                                       a->reduced ? NULL : a->out);
  if (a->reduced) nn_store(a->dtype, a->out, 0, sum / a->divisor);
}

static void bce_logits_backward(const nn_loss_args *a) {
  double scale = a->reduced ? nn_load(a->dtype, a->g, 0) / a->divisor : 0;
  bce_logits_backward_loop(a->n, a->dtype, a->x, a->y, a->weight, a->pos_weight,
                           a->reduced ? NULL : a->g, scale, a->gx, a->gy);
}

int nn_cpu_loss(const nn_loss_args *a) {
  switch (a->kind) {
  case NN_LOSS_MSE: mse_forward(a); return 0;
  case NN_LOSS_BCE: return bce_forward(a);
  case NN_LOSS_BCE_WITH_LOGITS: bce_logits_forward(a); return 0;
  default: pointwise_forward(a); return 0;
  }
}

int nn_cpu_loss_backward(const nn_loss_args *a) {
  switch (a->kind) {
  case NN_LOSS_MSE: mse_backward(a); break;
  case NN_LOSS_BCE: bce_backward(a); break;
  case NN_LOSS_BCE_WITH_LOGITS: bce_logits_backward(a); break;
  default: pointwise_backward(a); break;
  }
  return 0;
}

/* ---- cross-entropy and NLL over classes ------------------------------------------
   The layout and the formulas: loss.c's section on them, math/loss.h. */
/* log sum_c exp(x_c) over count values stride apart from x[base], shifted
   by the largest so that nothing overflows. A NaN among them comes out as
   NaN through its exp. float32 runs in float, as PyTorch's does; a row of
   consecutive values in eight lanes, which vectorise. */
static double classes_logsumexp(nn_dtype dtype, const void *x, int64_t base, int64_t stride,
                                int64_t count) {
  double sum = 0;
  if (dtype == NN_FLOAT32 && stride == 1) {
    enum { LANES = 8 };
    const float *p = (const float *)x + base;
    float lane_max[LANES], lane_sum[LANES] = {0}, max = -INFINITY;
    int64_t c = 0;
    for (int j = 0; j < LANES; j++) lane_max[j] = -INFINITY;
    for (; c + LANES <= count; c += LANES)
      for (int j = 0; j < LANES; j++) lane_max[j] = p[c + j] > lane_max[j] ? p[c + j] : lane_max[j];
    for (int j = 0; j < LANES; j++) max = lane_max[j] > max ? lane_max[j] : max;
    for (; c < count; c++) max = p[c] > max ? p[c] : max;
    for (c = 0; c + LANES <= count; c += LANES)
      for (int j = 0; j < LANES; j++) lane_sum[j] += nn_exp_f32(p[c + j] - max);
    for (; c < count; c++) sum += nn_exp_f32(p[c] - max);
    for (int j = 0; j < LANES; j++) sum += lane_sum[j];
    return max + log(sum);
  }
  return nn_classes_logsumexp(dtype, x, base, stride, count);
}

/* gx_c = -softmax_c total over one position, softmax_c = exp(x_c - lse):
   the log_softmax backward's second term. */
static void softmax_times(nn_dtype dtype, const void *x, void *gx, int64_t base, int64_t stride,
                          int64_t count, double lse, double total) {
  if (dtype == NN_FLOAT32 && stride == 1) { /* the same loop, one that vectorises */
    const float *p = (const float *)x + base;
    float *g = (float *)gx + base, l = (float)lse, t = (float)total;
    for (int64_t c = 0; c < count; c++) g[c] = -nn_exp_f32(p[c] - l) * t;
    return;
  }
  nn_softmax_times(dtype, x, gx, base, stride, count, lse, total);
}


static inline double class_weight(const nn_class_loss_args *a, int64_t c) {
  return a->weight ? a->weight[c] : 1.0;
}

static inline void add_at(nn_dtype dtype, void *p, int64_t i, double v) {
  nn_store(dtype, p, i, nn_load(dtype, p, i) + v);
}

/* The class of target element i: 0..classes-1, -1 where the label is
   ignore_index, -2 with an error when it is no label. */
static int64_t class_of(const nn_class_loss_args *a, int64_t i) {
  int64_t first = a->first_label, classes = a->classes;
  int whole;
  int64_t label = nn_label_value(a->target_dtype, a->target, i, &whole);
  int64_t c = nn_label_class(label, whole, first, classes, a->ignore_index);
  if (c != -2) return c;
  if (!whole)
    nn_error_set("%s: target element %lld is %g, not a class label (a whole number in %lld..%lld)",
                 a->op, (long long)i + 1, nn_load(a->target_dtype, a->target, i), (long long)first,
                 (long long)(first + classes - 1));
  else
    nn_error_set("%s: target element %lld is class %lld, outside the classes %lld..%lld", a->op,
                 (long long)i + 1, (long long)label, (long long)first,
                 (long long)(first + classes - 1));
  return -2;
}

static int labels_forward(const nn_class_loss_args *a) {
  int64_t classes = a->classes, inner = a->inner;
  double s = a->smoothing, nll_sum = 0, smooth_sum = 0, total_weight = 0;
  nn_dtype dtype = a->dtype;
  int per_position = a->reduction == NN_REDUCTION_NONE;
  for (int64_t outer = 0; outer < a->outer; outer++) {
    for (int64_t k = 0; k < inner; k++) {
      int64_t pos = outer * inner + k, base = outer * classes * inner + k;
      int64_t label = class_of(a, pos);
      if (label == -2) return -1;
      if (label == -1) {
        if (per_position) nn_store(dtype, a->out, pos, 0);
        if (a->lse) a->lse[pos] = 0;
        continue;
      }
      double lse = a->from_logits ? classes_logsumexp(dtype, a->x, base, inner, classes) : 0;
      if (a->lse) a->lse[pos] = lse;
      double wt = class_weight(a, label);
      double nll = -wt * (nn_load(dtype, a->x, base + label * inner) - lse), smooth = 0;
      if (s > 0)
        for (int64_t c = 0; c < classes; c++)
          smooth -= class_weight(a, c) * (nn_load(dtype, a->x, base + c * inner) - lse);
      if (per_position) nn_store(dtype, a->out, pos, nn_smoothed_loss(nll, smooth, s, classes));
      nll_sum += nll;
      smooth_sum += smooth;
      total_weight += wt;
    }
  }
  *a->total_weight = total_weight;
  if (!per_position) {
    /* a weighted mean divides by the weights of the targets, the smoothing term too */
    double divisor = a->reduction == NN_REDUCTION_MEAN ? total_weight : 1.0;
    nn_store(dtype, a->out, 0, nn_smoothed_loss(nll_sum / divisor, smooth_sum / divisor, s, classes));
  }
  return 0;
}

/* gx starts at zero */
static int labels_backward(const nn_class_loss_args *a) {
  int64_t classes = a->classes, inner = a->inner;
  double s = a->smoothing, total_weight = *a->total_weight;
  nn_dtype dtype = a->dtype;
  int per_position = a->reduction == NN_REDUCTION_NONE;
  double all_weights = 0; /* sum_c w_c, for the smoothing term */
  for (int64_t c = 0; c < classes; c++) all_weights += class_weight(a, c);
  double g0 = per_position ? 0 : nn_load(dtype, a->g, 0);
  for (int64_t outer = 0; outer < a->outer; outer++) {
    for (int64_t k = 0; k < inner; k++) {
      int64_t pos = outer * inner + k, base = outer * classes * inner + k;
      int64_t label = class_of(a, pos);
      if (label == -2) return -1;
      if (label == -1) continue; /* its row stays 0 */
      double scale = per_position ? nn_load(dtype, a->g, pos)
                                  : (a->reduction == NN_REDUCTION_MEAN ? g0 / total_weight : g0);
      double hot = -scale * (1 - s) * class_weight(a, label);
      double spread = -scale * (s / (double)classes);
      if (a->from_logits)
        softmax_times(dtype, a->x, a->gx, base, inner, classes, a->lse[pos], hot + spread * all_weights);
      add_at(dtype, a->gx, base + label * inner, hot);
      if (s > 0)
        for (int64_t c = 0; c < classes; c++)
          add_at(dtype, a->gx, base + c * inner, spread * class_weight(a, c));
    }
  }
  return 0;
}

static void probabilities_forward(const nn_class_loss_args *a) {
  int64_t classes = a->classes, inner = a->inner, positions = a->outer * inner;
  double s = a->smoothing, sum = 0;
  nn_dtype dtype = a->dtype;
  for (int64_t outer = 0; outer < a->outer; outer++) {
    for (int64_t k = 0; k < inner; k++) {
      int64_t pos = outer * inner + k, base = outer * classes * inner + k;
      double lse = classes_logsumexp(dtype, a->x, base, inner, classes), v = 0;
      a->lse[pos] = lse;
      for (int64_t c = 0; c < classes; c++) {
        int64_t at = base + c * inner;
        double yc = nn_smoothed_target(nn_load(dtype, a->target, at), s, classes);
        v -= class_weight(a, c) * yc * (nn_load(dtype, a->x, at) - lse);
      }
      if (a->reduction == NN_REDUCTION_NONE) nn_store(dtype, a->out, pos, v);
      sum += v;
    }
  }
  /* PyTorch's mean divides by the number of positions, weights or not */
  if (a->reduction != NN_REDUCTION_NONE)
    nn_store(dtype, a->out, 0, sum / (a->reduction == NN_REDUCTION_MEAN ? (double)positions : 1.0));
}

static void probabilities_backward(const nn_class_loss_args *a) {
  int64_t classes = a->classes, inner = a->inner, positions = a->outer * inner;
  double s = a->smoothing;
  nn_dtype dtype = a->dtype;
  int per_position = a->reduction == NN_REDUCTION_NONE;
  double divisor = a->reduction == NN_REDUCTION_MEAN ? (double)positions : 1.0;
  double g0 = per_position ? 0 : nn_load(dtype, a->g, 0) / divisor;
  for (int64_t outer = 0; outer < a->outer; outer++) {
    for (int64_t k = 0; k < inner; k++) {
      int64_t pos = outer * inner + k, base = outer * classes * inner + k;
      double scale = per_position ? nn_load(dtype, a->g, pos) : g0, lse = a->lse[pos];
      double total = 0; /* sum_c dl/dlp_c */
      for (int64_t c = 0; c < classes; c++) {
        double yc = nn_smoothed_target(nn_load(dtype, a->target, base + c * inner), s, classes);
        total -= scale * class_weight(a, c) * yc;
      }
      if (a->gx) softmax_times(dtype, a->x, a->gx, base, inner, classes, lse, total);
      for (int64_t c = 0; c < classes; c++) {
        int64_t at = base + c * inner;
        double wc = class_weight(a, c);
        double yc = nn_smoothed_target(nn_load(dtype, a->target, at), s, classes);
        if (a->gx) add_at(dtype, a->gx, at, -scale * wc * yc);
        if (a->gy)
          nn_store(dtype, a->gy, at, -scale * wc * (1 - s) * (nn_load(dtype, a->x, at) - lse));
      }
    }
  }
}

int nn_cpu_class_loss(const nn_class_loss_args *a) {
  if (a->probabilities) {
    probabilities_forward(a);
    return 0;
  }
  return labels_forward(a);
}

int nn_cpu_class_loss_backward(const nn_class_loss_args *a) {
  if (a->probabilities) {
    probabilities_backward(a);
    return 0;
  }
  return labels_backward(a);
}

/* ---- CTC: the alpha recursion forward, beta backward (math/loss.h) ---- */
static int ctc_check(const nn_ctc_args *a) {
  const int64_t *in_len = a->plan, *tg_len = a->plan + a->N;
  for (int64_t n = 0; n < a->N; n++) {
    if (in_len[n] < 0 || in_len[n] > a->T) {
      nn_error_set("ctc_loss: input_lengths[%lld] = %lld is outside 0..%lld", (long long)n + 1,
                   (long long)in_len[n], (long long)a->T);
      return -1;
    }
    if (tg_len[n] < 0 || tg_len[n] > a->S || 2 * tg_len[n] + 1 > a->L) {
      nn_error_set("ctc_loss: target_lengths[%lld] = %lld is outside 0..%lld", (long long)n + 1,
                   (long long)tg_len[n], (long long)a->S);
      return -1;
    }
    const int64_t *target = a->plan + 2 * a->N + n * a->S;
    for (int64_t s = 0; s < tg_len[n]; s++)
      if (target[s] < 0 || target[s] >= a->C || target[s] == a->blank) {
        nn_error_set("ctc_loss: target label %lld of sample %lld is outside the classes or the "
                     "blank", (long long)s + 1, (long long)n + 1);
        return -1;
      }
  }
  return 0;
}

/* log_probs at time t of sample n, class c */
static inline double ctc_lp(const nn_ctc_args *a, int64_t t, int64_t n, int64_t c) {
  return nn_load(a->dtype, a->lp, (t * a->N + n) * a->C + c);
}

int nn_cpu_ctc_loss(const nn_ctc_args *a) {
  if (ctc_check(a) < 0) return -1;
  double *ll = a->alpha + a->N * a->T * a->L;
  for (int64_t n = 0; n < a->N; n++) {
    int64_t Tn = a->plan[n], Ln = 2 * a->plan[a->N + n] + 1;
    const int64_t *target = a->plan + 2 * a->N + n * a->S;
    double *al = a->alpha + n * a->T * a->L;
    for (int64_t s = 0; s < Ln && Tn > 0; s++)
      al[s] = s < 2 ? ctc_lp(a, 0, n, nn_ctc_state_label(target, s, a->blank)) : -INFINITY;
    for (int64_t t = 1; t < Tn; t++) {
      const double *prev = al + (t - 1) * a->L;
      double *cur = al + t * a->L;
      for (int64_t s = 0; s < Ln; s++) {
        double sum = prev[s];
        if (s >= 1) sum = nn_ctc_log_add(sum, prev[s - 1]);
        if (nn_ctc_may_skip(target, s)) sum = nn_ctc_log_add(sum, prev[s - 2]);
        cur[s] = sum + ctc_lp(a, t, n, nn_ctc_state_label(target, s, a->blank));
      }
    }
    double total = -INFINITY;
    if (Tn > 0) {
      const double *last = al + (Tn - 1) * a->L;
      total = Ln > 1 ? nn_ctc_log_add(last[Ln - 1], last[Ln - 2]) : last[0];
    }
    ll[n] = total;
    double loss = -total;
    if (a->zero_infinity && loss == INFINITY) loss = 0;
    nn_store(a->dtype, a->out, n, loss);
  }
  return 0;
}

/* dl/dlp[t, c] = -g exp(log sum over the states s labelled c of
   alpha_t(s) beta_t(s), less lp[t, c] and the log-likelihood): the true
   gradient w.r.t. log_probs (PyTorch's adds exp(lp) g, which a
   log_softmax before the loss cancels). */
int nn_cpu_ctc_loss_backward(const nn_ctc_args *a) {
  if (ctc_check(a) < 0) return -1;
  const double *ll = a->alpha + a->N * a->T * a->L;
  for (int64_t n = 0; n < a->N; n++) {
    int64_t Tn = a->plan[n], Ln = 2 * a->plan[a->N + n] + 1;
    if (Tn == 0) continue;
    if (ll[n] == -INFINITY) { /* no alignment: zero_infinity's 0, or NaN over the input's steps, as PyTorch */
      if (!a->zero_infinity)
        for (int64_t i = 0; i < Tn * a->C; i++) nn_store(a->dtype, a->gx, ((i / a->C) * a->N + n) * a->C + i % a->C, NAN);
      continue;
    }
    const int64_t *target = a->plan + 2 * a->N + n * a->S;
    const double *al = a->alpha + n * a->T * a->L;
    double *beta = a->work + n * (2 * a->L + a->C), *next = beta + a->L, *acc = next + a->L;
    double g = nn_load(a->dtype, a->g, n);
    for (int64_t t = Tn - 1; t >= 0; t--) {
      for (int64_t s = 0; s < Ln; s++) {
        double lp = ctc_lp(a, t, n, nn_ctc_state_label(target, s, a->blank));
        if (t == Tn - 1) {
          beta[s] = s >= Ln - 2 ? lp : -INFINITY;
          continue;
        }
        double sum = next[s];
        if (s + 1 < Ln) sum = nn_ctc_log_add(sum, next[s + 1]);
        if (s + 2 < Ln && nn_ctc_may_skip(target, s + 2)) sum = nn_ctc_log_add(sum, next[s + 2]);
        beta[s] = sum + lp;
      }
      for (int64_t c = 0; c < a->C; c++) acc[c] = -INFINITY;
      for (int64_t s = 0; s < Ln; s++) {
        int64_t c = nn_ctc_state_label(target, s, a->blank);
        acc[c] = nn_ctc_log_add(acc[c], al[t * a->L + s] + beta[s]);
      }
      for (int64_t c = 0; c < a->C; c++) {
        if (acc[c] == -INFINITY) continue;
        nn_store(a->dtype, a->gx, (t * a->N + n) * a->C + c,
                 -g * exp(acc[c] - ctc_lp(a, t, n, c) - ll[n]));
      }
      double *swap = beta;
      beta = next, next = swap;
    }
  }
  return 0;
}

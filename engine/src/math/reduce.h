/* math/reduce.h: the steps of the reductions: which element wins a max or
 * min (NaN wins, as in PyTorch), the p-norm's accumulation and its
 * gradient (PyTorch 1.13's norm_backward, FunctionsManual.cpp). */
#ifndef NN_MATH_REDUCE_H
#define NN_MATH_REDUCE_H

#include "math/common.h"

/* x replaces best: NaN wins, and a later element only when strictly better. */
NN_HD static inline int nn_extreme_better(double x, double best, int want_max) {
  if (isnan(best)) return 0;
  if (isnan(x)) return 1;
  return want_max ? x > best : x < best;
}

/* x attains the extreme value (or both are NaN): the elements that share
   max/min's gradient over all elements. */
NN_HD static inline int nn_extreme_attains(double x, double value) {
  return x == value || (isnan(value) && isnan(x));
}

/* The p-norm of a line: acc starts at nn_norm_start(p), takes each
   element's magnitude through nn_norm_step, and nn_norm_finish gives the
   norm. p = 0 counts the nonzeros, +-inf keeps the largest (smallest)
   magnitude (NaN wins), other p sum |x|^p. Once acc is NaN it stays NaN. */
NN_HD static inline double nn_norm_start(double p) { return isinf(p) && p < 0 ? INFINITY : 0; }
NN_HD static inline double nn_norm_step(double acc, double v, double p) {
  if (p == 0) return acc + (v != 0);
  if (isinf(p)) return isnan(v) || (p > 0 ? v > acc : v < acc) ? v : acc;
  return acc + (p == 1 ? v : (p == 2 ? v * v : pow(v, p)));
}
NN_HD static inline double nn_norm_finish(double acc, double p) {
  if (p == 0 || p == 1 || isinf(p)) return acc;
  return p == 2 ? sqrt(acc) : pow(acc, 1 / p);
}

NN_HD static inline double nn_sgn(double x) { return x > 0 ? 1 : (x < 0 ? -1 : 0); }

/* d norm / d x times g for one element x of a line whose norm is norm,
   with PyTorch's masks: 0 where the norm is 0 (and, for p < 1, where x
   is); for p = +-inf the gradient is shared evenly by the `count` elements
   that attain the norm (or are NaN): nn_norm_attains. */
NN_HD static inline int nn_norm_attains(double x, double norm) {
  double a = fabs(x);
  return a == norm || isnan(a);
}
NN_HD static inline double nn_norm_grad(double v, double norm, double g, double p, int64_t count) {
  double a = fabs(v);
  if (p == 1) return nn_sgn(v) * g;
  if (p == 2) return g * (norm == 0 ? 0 : v / norm);
  if (isinf(p)) return nn_sgn(v) * (g / (double)count * (a == norm || isnan(a)));
  if (p < 1) return nn_sgn(v) * (v == 0 ? 0 : pow(a, p - 1)) * g * pow(norm, 1 - p);
  double scale = norm == 0 ? 0 : g / pow(norm, p - 1);
  return (p < 2 ? nn_sgn(v) * pow(a, p - 1) : v * pow(a, p - 2)) * scale;
}

#endif

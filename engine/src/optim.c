/* optim.c: optimizer steps, one fused loop per parameter, in the order of
 * operations PyTorch's implementation uses (torch/optim/sgd.py). */
#include "internal.h"

static int check_param(const char *op, nn_tensor *p) {
  if (nn_check_cpu(op, p) < 0) return -1;
  if (!nn_dtype_is_floating(p->dtype) || !nn_is_contiguous(p) || !nn_is_contiguous(p->grad) ||
      p->grad->dtype != p->dtype || !nn_same_shape(p, p->grad)) {
    nn_error_set("%s: a parameter must be a contiguous floating-point tensor with a gradient "
                 "of its own shape and dtype", op);
    return -1;
  }
  return 0;
}

/* d = grad (+ wd p); buf = m buf + (1 - dampening) d; d = nesterov ? d + m buf : buf;
   p -= lr d. float32 parameters are updated in float, as PyTorch does. */
int nn_sgd_step(nn_tensor *param, nn_tensor **momentum_buffer, const nn_sgd_options *o) {
  if (!param->grad) return 0; /* a parameter that took no part in the loss */
  if (check_param("sgd", param) < 0) return -1;
  int64_t n = nn_numel(param);
  int first = 0;
  if (o->momentum != 0 && !*momentum_buffer) {
    if (!(*momentum_buffer = nn_empty_like(param))) return -1;
    first = 1;
  }
  nn_tensor *buf = o->momentum != 0 ? *momentum_buffer : NULL;
  if (buf && (!nn_same_shape(buf, param) || buf->dtype != param->dtype || !nn_is_contiguous(buf))) {
    nn_error_set("sgd: the momentum buffer does not match its parameter");
    return -1;
  }
  double sign = o->maximize ? -1 : 1;
  if (param->dtype == NN_FLOAT32) {
    float *p = nn_data(param), *b = buf ? nn_data(buf) : NULL;
    const float *g = nn_data(param->grad);
    float lr = (float)o->lr, wd = (float)o->weight_decay, m = (float)o->momentum;
    float damp = (float)(1 - o->dampening);
    if (!b && wd == 0 && sign == 1) { /* plain SGD: one vectorisable loop */
      for (int64_t i = 0; i < n; i++) p[i] = p[i] + -lr * g[i];
      nn_bump_version(param);
      return 0;
    }
    for (int64_t i = 0; i < n; i++) {
      float d = (float)sign * g[i];
      if (wd != 0) d = d + wd * p[i];
      if (b) {
        b[i] = first ? d : m * b[i] + damp * d;
        d = o->nesterov ? d + m * b[i] : b[i];
      }
      p[i] = p[i] + -lr * d;
    }
  } else {
    double *p = nn_data(param), *b = buf ? nn_data(buf) : NULL;
    const double *g = nn_data(param->grad);
    for (int64_t i = 0; i < n; i++) {
      double d = sign * g[i];
      if (o->weight_decay != 0) d = d + o->weight_decay * p[i];
      if (b) {
        b[i] = first ? d : o->momentum * b[i] + (1 - o->dampening) * d;
        d = o->nesterov ? d + o->momentum * b[i] : b[i];
      }
      p[i] = p[i] + -o->lr * d;
    }
  }
  nn_bump_version(param);
  return 0;
}

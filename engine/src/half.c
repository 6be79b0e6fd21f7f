/* half.c: float16 and bfloat16 in the fronts whose kernels are written for
 * float32 and float64 (products, losses, optimizer steps): the operands go
 * to float32, the float32 front computes, its result is rounded back. */
#include "half.h"

int nn_half_enter(const char *op, nn_half_call *call, int n, nn_tensor **ops) {
  call->n = 0;
  int half = -1, first = -1;
  for (int k = 0; k < n; k++) {
    if (!ops[k] || !nn_dtype_is_floating(ops[k]->dtype)) continue;
    if (first < 0) first = k;
    if (nn_half_dtype(ops[k]->dtype)) half = ops[k]->dtype;
  }
  if (half < 0) return 0;
  for (int k = 0; k < n; k++) {
    if (ops[k] && nn_dtype_is_floating(ops[k]->dtype) && ops[k]->dtype != ops[first]->dtype) {
      nn_error_set("%s: operands must have one floating dtype, got %s and %s", op,
                   nn_dtype_name(ops[first]->dtype), nn_dtype_name(ops[k]->dtype));
      return -1;
    }
  }
  call->half = (nn_dtype)half;
  call->n = n;
  for (int k = 0; k < n; k++) {
    call->copies[k] = NULL;
    if (!ops[k] || ops[k]->dtype != call->half) continue;
    if (!(call->copies[k] = nn_to_dtype(ops[k], NN_FLOAT32))) {
      nn_half_leave(call, NULL);
      return -1;
    }
    ops[k] = call->copies[k];
  }
  return 1;
}

nn_tensor *nn_half_leave(nn_half_call *call, nn_tensor *result) {
  for (int k = 0; k < call->n; k++) nn_release(call->copies[k]);
  call->n = 0;
  if (!result || result->dtype != NN_FLOAT32) return result; /* an int64 index rides along */
  nn_tensor *rounded = nn_to_dtype(result, call->half);
  nn_release(result);
  return rounded;
}

/* a copy of t in dtype on device, outside autograd */
static nn_tensor *plain_copy(nn_tensor *t, nn_dtype dtype, nn_device device) {
  nn_tensor *c = nn_empty_on(device, dtype, t->ndim, t->size);
  if (c && nn_copy_(c, t) < 0) {
    nn_release(c);
    return NULL;
  }
  return c;
}

int nn_half_step_enter(nn_half_step *s, const char *op, nn_tensor *param, int n,
                       nn_tensor **const *slots) {
  s->param = param;
  s->n = 0;
  s->param32 = NULL;
  if (param->grad->dtype != param->dtype) {
    nn_error_set("%s: the gradient is %s, its parameter %s", op, nn_dtype_name(param->grad->dtype),
                 nn_dtype_name(param->dtype));
    return -1;
  }
  for (int k = 0; k < n; k++) {
    nn_tensor *b = *slots[k];
    if (b && (b->dtype != param->dtype || !nn_same_shape(b, param))) {
      char bs[96], ps[96];
      nn_error_set("%s: a state buffer (%s %s) does not match its parameter (%s %s)", op,
                   nn_shape_string(b, bs, sizeof bs), nn_dtype_name(b->dtype),
                   nn_shape_string(param, ps, sizeof ps), nn_dtype_name(param->dtype));
      return -1;
    }
  }
  nn_tensor *grad32 = NULL;
  if (!(s->param32 = plain_copy(param, NN_FLOAT32, param->device)) ||
      !(grad32 = plain_copy(param->grad, NN_FLOAT32, param->device))) {
    nn_release(s->param32);
    s->param32 = NULL;
    return -1;
  }
  s->param32->grad = grad32;
  for (int k = 0; k < n; k++) {
    s->slots[k] = slots[k];
    s->buffers32[k] = NULL;
    s->n = k + 1;
    /* on the parameter's device: a buffer left behind by m:to(device) follows it */
    if (*slots[k] && !(s->buffers32[k] = plain_copy(*slots[k], NN_FLOAT32, param->device)))
      return nn_half_step_leave(s, -1);
  }
  return 0;
}

int nn_half_step_leave(nn_half_step *s, int status) {
  /* round the buffers first: a failure leaves the parameter as it was */
  for (int k = 0; status == 0 && k < s->n; k++) {
    nn_tensor *b32 = s->buffers32[k], **slot = s->slots[k];
    if (!b32) continue;
    if (*slot && (*slot)->device == s->param->device && nn_is_contiguous(*slot)) {
      if (nn_copy_(*slot, b32) < 0) status = -1;
    } else {
      nn_tensor *made = plain_copy(b32, s->param->dtype, s->param->device);
      if (!made) {
        status = -1;
      } else {
        *slot = made; /* the caller owns what the slot held, as prepare_buffers assumes */
      }
    }
  }
  if (status == 0 && nn_copy_(s->param, s->param32) < 0) status = -1;
  for (int k = 0; k < s->n; k++) nn_release(s->buffers32[k]);
  nn_release(s->param32);
  s->n = 0;
  s->param32 = NULL;
  return status;
}

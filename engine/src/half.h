/* half.h: float16 and bfloat16 through the float32 fronts (half.c). */
#ifndef NN_HALF_H
#define NN_HALF_H

#include "internal.h"

/* An op's operands taken to float32 for a front whose kernels are written
   for float32 and float64 (the losses): nn_half_enter replaces, in
   ops, every float16 or bfloat16 operand by a float32 copy that autograd
   records, when the floating operands present (NULL ones are skipped,
   integer ones stay as they are) all have one half dtype; nn_half_leave
   rounds the front's float32 result back to that dtype and releases the
   copies. So a half type accumulates in float32 and rounds once, at the
   end, and its gradients come back in its own dtype. A half operand beside
   one of another floating dtype is an error naming op. */
#define NN_HALF_MAX_OPERANDS 4
typedef struct {
  nn_dtype half;
  int n;
  nn_tensor *copies[NN_HALF_MAX_OPERANDS];
} nn_half_call;

/* 1: ops now hold float32 operands, call the front on them and pass its
   result to nn_half_leave; 0: no half operand; -1: error. */
int nn_half_enter(const char *op, nn_half_call *call, int n, nn_tensor **ops);
nn_tensor *nn_half_leave(nn_half_call *call, nn_tensor *result);

/* An optimizer step on a half parameter: the parameter, its gradient and
   its state buffers go to float32 copies (never recorded); the float32
   step runs on them; nn_half_step_leave rounds the parameter and the
   buffers back into the parameter's dtype, writing into the buffers that
   existed (the state stays in the parameter's dtype, as PyTorch keeps it)
   and making the new ones. The step is computed in float32 and each value
   rounded once per step: PyTorch 1.13 rounds after every tensor op. */
#define NN_HALF_MAX_BUFFERS 3
typedef struct {
  nn_tensor *param, *param32;
  int n;
  nn_tensor **slots[NN_HALF_MAX_BUFFERS];
  nn_tensor *buffers32[NN_HALF_MAX_BUFFERS];
} nn_half_step;

int nn_half_step_enter(nn_half_step *s, const char *op, nn_tensor *param, int n, nn_tensor **const *slots);
int nn_half_step_leave(nn_half_step *s, int status);

#endif

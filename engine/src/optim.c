/* optim.c: the fronts of the optimizer steps and of gradient clipping.
 * Each step is one fused loop per parameter (cpu/optim.c) that follows,
 * operation for operation, PyTorch 1.13's _single_tensor_* implementation
 * in torch/optim/<name>.py (math/optim.h): the same roundings in the same
 * order, with the hyperparameters rounded to the parameter's dtype where
 * PyTorch passes them to a kernel as scalars. Clipping is made of ops. */
#include "half.h"
#include "math/optim.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

/* The backend that steps p (its gradient on its device), or NULL. */
static const nn_backend *check_param(const char *op, size_t kernel, nn_tensor *p) {
  const nn_backend *be = nn_dispatch(op, kernel, p, p->grad, NULL);
  if (!be) return NULL;
  if (!nn_float_kernel_dtype(p->dtype) || !nn_is_contiguous(p) || !nn_is_contiguous(p->grad) ||
      p->grad->dtype != p->dtype || !nn_same_shape(p, p->grad)) {
    nn_error_set("%s: a parameter must be a contiguous float32 or float64 tensor with a gradient "
                 "of its own shape and dtype", op);
    return NULL;
  }
  return be;
}

/* One buffer of an optimizer's state: its name (for errors), where the
   caller keeps it, and the value a new one starts at. */
typedef struct {
  const char *name;
  nn_tensor **slot;
  double fill;
} state_buffer;

/* Checks the buffers that exist against param, then creates the missing
   ones on param's device. A buffer on another device follows its
   parameter there (after m:to(device), the next step moves the state):
   the copy replaces it in its slot. All or nothing: on failure the
   buffers made here are released and the slots hold what they held, so
   the caller's state is as it was. */
static int prepare_buffers(const char *op, nn_tensor *param, state_buffer *bufs, int n) {
  nn_tensor *was[4];
  for (int k = 0; k < n; k++) {
    nn_tensor *b = was[k] = *bufs[k].slot;
    if (b && (b->dtype != param->dtype || !nn_same_shape(b, param) || !nn_is_contiguous(b))) {
      char bs[96], ps[96];
      nn_error_set("%s: the %s buffer (%s %s) does not match its parameter (%s %s)", op,
                   bufs[k].name, nn_shape_string(b, bs, sizeof bs), nn_dtype_name(b->dtype),
                   nn_shape_string(param, ps, sizeof ps), nn_dtype_name(param->dtype));
      return -1;
    }
  }
  for (int k = 0; k < n; k++) {
    nn_tensor *b = was[k];
    if (b && b->device == param->device) continue;
    nn_tensor *made = b ? nn_to_device(b, param->device)
                        : nn_full_like_shape(param, param->dtype, param->ndim, param->size,
                                             bufs[k].fill);
    if (!made) {
      for (int j = 0; j < k; j++) {
        if (*bufs[j].slot == was[j]) continue;
        nn_release(*bufs[j].slot);
        *bufs[j].slot = was[j];
      }
      return -1;
    }
    *bufs[k].slot = made;
  }
  return 0;
}

/* ---- SGD ------------------------------------------------------------- */
int nn_sgd_step(nn_tensor *param, nn_tensor **momentum_buffer, const nn_sgd_options *o) {
  if (!nn_leaf_grad(param)) return 0; /* a parameter that took no part in the loss */
  if (nn_half_dtype(param->dtype)) {
    nn_half_step h;
    nn_tensor **slots[] = {momentum_buffer};
    if (nn_half_step_enter(&h, "sgd", param, 1, slots) < 0) return -1;
    return nn_half_step_leave(&h, nn_sgd_step(h.param32, &h.buffers32[0], o));
  }
  const nn_backend *be = check_param("sgd", offsetof(nn_backend, sgd_step), param);
  if (!be) return -1;
  int first = 0;
  nn_tensor *buf = NULL;
  if (o->momentum != 0) {
    /* a new buffer is filled by the first step itself: no need to zero it */
    first = *momentum_buffer == NULL;
    state_buffer bufs[] = {{"momentum_buffer", momentum_buffer, 0}};
    if (prepare_buffers("sgd", param, bufs, 1) < 0) return -1;
    buf = *momentum_buffer;
  }
  if (be->sgd_step(param->dtype, nn_numel(param), nn_data(param), nn_data(param->grad),
                   buf ? nn_data(buf) : NULL, first, o) < 0)
    return -1;
  nn_bump_version(param);
  return 0;
}

/* ---- plain SGD on a list, step after step ------------------------------ */
/* What nn_sgd_step found fit stays fit while the parameter and its gradient
   are the tensors checked, in the storages they had, with the geometry
   they had: set_data (Module:to, a user's) gives the same tensor another
   storage and shape. The parameter's storage is retained so that a freed
   one cannot come back at the same address. The gradient is not held: a
   gradient held by anything but its parameter cannot have its zero_grad
   deferred (nn_zero_grad_deferred); what the step takes from it (its
   dtype, shape, layout and data) is read anew at every step, and its
   device is its parameter's (nn_set_grad), so another gradient that came
   to the same addresses would be stepped as it should be. */
typedef struct {
  nn_tensor *param; /* retained */
  const nn_tensor *grad; /* the one checked last, not held */
  nn_storage *storage; /* retained: the parameter's when checked */
  const nn_storage *grad_storage; /* the gradient's when checked, not held */
  const nn_backend *be;              /* NULL: step through nn_sgd_step */
  nn_dtype dtype;
  int ndim;
  int64_t numel, size[NN_MAX_DIMS]; /* the shape both had */
  /* plain SGD's kernel as the backend prepared it for this parameter
     (iter_prepare), run with the step's learning rate; run NULL: none */
  nn_iter_direct plain;
} sgd_list_item;

struct nn_sgd_list {
  int64_t n;
  sgd_list_item item[];
};

/* p (with a gradient) and its gradient as checked: the same tensors in the
   same storages, contiguous, of the dtype and shape they had (where each
   is in its storage nn_data says) */
static int sgd_item_as_checked(const sgd_list_item *it, const nn_tensor *p) {
  const nn_tensor *g = p->grad;
  if (!it->be || g != it->grad || p->storage != it->storage || g->storage != it->grad_storage ||
      !p->contiguous || !g->contiguous || p->dtype != it->dtype || g->dtype != it->dtype ||
      p->ndim != it->ndim || g->ndim != it->ndim)
    return 0;
  for (int d = 0; d < it->ndim; d++)
    if (p->size[d] != it->size[d] || g->size[d] != it->size[d]) return 0;
  return 1;
}

static void sgd_item_forget(sgd_list_item *it) {
  nn_storage_release(it->storage);
  it->grad = NULL;
  it->storage = NULL;
  it->grad_storage = NULL;
  it->be = NULL;
  it->plain.run = NULL;
}

/* Asks p's backend for plain SGD's kernel over p and its gradient, the
   tests that choose it made once (a step of a small layer costs less than
   the entry's choice of loop): it->plain.run stays NULL where it has none. */
static void sgd_item_prepare(sgd_list_item *it, nn_tensor *p) {
  memset(&it->plain, 0, sizeof it->plain);
  if (!it->be->iter_prepare) return;
  nn_iter i = {.n = 2, .ndim = 1, .size = {it->numel}, .stride = {{1, 1}},
               .data = {nn_data(p), nn_data(p->grad)}, .dtype = {p->dtype, p->dtype}};
  if (it->be->iter_prepare(offsetof(nn_backend, sgd_step), 0, &i, 0, &it->plain) <= 0)
    it->plain.run = NULL;
}

nn_sgd_list *nn_sgd_list_new(nn_tensor *const *params, int64_t n) {
  nn_sgd_list *l = calloc(1, sizeof *l + (size_t)(n > 0 ? n : 0) * sizeof l->item[0]);
  if (!l) {
    nn_error_set("sgd: out of memory");
    return NULL;
  }
  l->n = n;
  for (int64_t i = 0; i < n; i++) l->item[i].param = nn_retain(params[i]);
  return l;
}

int nn_sgd_list_step(nn_sgd_list *l, const nn_sgd_options *o) {
  if (o->momentum != 0) {
    nn_error_set("sgd: a parameter list steps plain SGD only (momentum 0)");
    return -1;
  }
  /* what the prepared kernels do: no weight decay, not maximizing (the
     backends' plain loop, which the entry would pick too) */
  int plain = o->weight_decay == 0 && !o->maximize;
  for (int64_t i = 0; i < l->n; i++) {
    sgd_list_item *it = &l->item[i];
    nn_tensor *p = it->param;
    if (nn_leaf_grad(p) && sgd_item_as_checked(it, p)) {
      if (plain && it->plain.run) {
        it->plain.data[0] = nn_data(p);
        it->plain.data[1] = nn_data(p->grad);
        it->plain.x = o->lr;
        it->plain.run(&it->plain);
      } else if (it->be->sgd_step(p->dtype, it->numel, nn_data(p), nn_data(p->grad), NULL, 0, o) <
                 0) {
        return -1;
      }
      nn_bump_version(p);
      continue;
    }
    sgd_item_forget(it);
    nn_tensor *none = NULL;
    if (nn_sgd_step(p, &none, o) < 0) return -1;
    if (!p->grad || nn_half_dtype(p->dtype) || nn_capture_active) continue;
    it->be = nn_dispatch("sgd", offsetof(nn_backend, sgd_step), p, p->grad, NULL);
    if (!it->be) continue;
    it->grad = p->grad;
    it->storage = p->storage;
    it->grad_storage = p->grad->storage;
    it->storage->refcount++;
    it->dtype = p->dtype;
    it->ndim = p->ndim;
    it->numel = nn_numel(p);
    memcpy(it->size, p->size, sizeof it->size);
    sgd_item_prepare(it, p);
  }
  return 0;
}

void nn_sgd_list_free(nn_sgd_list *l) {
  if (!l) return;
  for (int64_t i = 0; i < l->n; i++) {
    nn_release(l->item[i].param);
    sgd_item_forget(&l->item[i]);
  }
  free(l);
}

/* ---- Adam and AdamW -------------------------------------------------- */
int nn_adam_step(nn_tensor *param, nn_adam_state *state, const nn_adam_options *o) {
  const char *op = o->decoupled_weight_decay ? "adamw" : "adam";
  if (!nn_leaf_grad(param)) return 0;
  if (nn_half_dtype(param->dtype)) {
    nn_half_step h;
    nn_tensor **slots[] = {&state->exp_avg, &state->exp_avg_sq, &state->max_exp_avg_sq};
    if (nn_half_step_enter(&h, op, param, 3, slots) < 0) return -1;
    nn_adam_state s32 = {state->step, h.buffers32[0], h.buffers32[1], h.buffers32[2]};
    int status = nn_adam_step(h.param32, &s32, o);
    h.buffers32[0] = s32.exp_avg, h.buffers32[1] = s32.exp_avg_sq, h.buffers32[2] = s32.max_exp_avg_sq;
    if ((status = nn_half_step_leave(&h, status)) == 0) state->step = s32.step;
    return status;
  }
  const nn_backend *be = check_param(op, offsetof(nn_backend, adam_step), param);
  if (!be) return -1;
  state_buffer bufs[] = {{"exp_avg", &state->exp_avg, 0},
                         {"exp_avg_sq", &state->exp_avg_sq, 0},
                         {"max_exp_avg_sq", &state->max_exp_avg_sq, 0}};
  if (prepare_buffers(op, param, bufs, o->amsgrad ? 3 : 2) < 0) return -1;
  int64_t step = state->step + 1;
  if (be->adam_step(param->dtype, nn_numel(param), nn_data(param), nn_data(param->grad),
                    nn_data(state->exp_avg), nn_data(state->exp_avg_sq),
                    o->amsgrad ? nn_data(state->max_exp_avg_sq) : NULL, step, o) < 0)
    return -1;
  state->step = step;
  nn_bump_version(param);
  return 0;
}

/* ---- RMSprop --------------------------------------------------------- */
int nn_rmsprop_step(nn_tensor *param, nn_rmsprop_state *state, const nn_rmsprop_options *o) {
  if (!nn_leaf_grad(param)) return 0;
  if (nn_half_dtype(param->dtype)) {
    nn_half_step h;
    nn_tensor **slots[] = {&state->square_avg, &state->momentum_buffer, &state->grad_avg};
    if (nn_half_step_enter(&h, "rmsprop", param, 3, slots) < 0) return -1;
    nn_rmsprop_state s32 = {state->step, h.buffers32[0], h.buffers32[1], h.buffers32[2]};
    int status = nn_rmsprop_step(h.param32, &s32, o);
    h.buffers32[0] = s32.square_avg, h.buffers32[1] = s32.momentum_buffer, h.buffers32[2] = s32.grad_avg;
    if ((status = nn_half_step_leave(&h, status)) == 0) state->step = s32.step;
    return status;
  }
  const nn_backend *be = check_param("rmsprop", offsetof(nn_backend, rmsprop_step), param);
  if (!be) return -1;
  int use_momentum = o->momentum > 0, centered = o->centered;
  /* only the buffers this configuration uses are checked and made */
  state_buffer bufs[3];
  int nbufs = 0;
  bufs[nbufs++] = (state_buffer){"square_avg", &state->square_avg, 0};
  if (use_momentum) bufs[nbufs++] = (state_buffer){"momentum_buffer", &state->momentum_buffer, 0};
  if (centered) bufs[nbufs++] = (state_buffer){"grad_avg", &state->grad_avg, 0};
  if (prepare_buffers("rmsprop", param, bufs, nbufs) < 0) return -1;
  if (be->rmsprop_step(param->dtype, nn_numel(param), nn_data(param), nn_data(param->grad),
                       nn_data(state->square_avg),
                       use_momentum ? nn_data(state->momentum_buffer) : NULL,
                       centered ? nn_data(state->grad_avg) : NULL, o) < 0)
    return -1;
  state->step++;
  nn_bump_version(param);
  return 0;
}

/* ---- Adagrad --------------------------------------------------------- */
int nn_adagrad_step(nn_tensor *param, nn_adagrad_state *state, const nn_adagrad_options *o) {
  if (!nn_leaf_grad(param)) return 0;
  if (nn_half_dtype(param->dtype)) {
    nn_half_step h;
    nn_tensor **slots[] = {&state->sum};
    if (nn_half_step_enter(&h, "adagrad", param, 1, slots) < 0) return -1;
    nn_adagrad_state s32 = {state->step, h.buffers32[0]};
    int status = nn_adagrad_step(h.param32, &s32, o);
    h.buffers32[0] = s32.sum;
    if ((status = nn_half_step_leave(&h, status)) == 0) state->step = s32.step;
    return status;
  }
  const nn_backend *be = check_param("adagrad", offsetof(nn_backend, adagrad_step), param);
  if (!be) return -1;
  state_buffer bufs[] = {{"sum", &state->sum, o->initial_accumulator_value}};
  if (prepare_buffers("adagrad", param, bufs, 1) < 0) return -1;
  int64_t step = state->step + 1;
  if (be->adagrad_step(param->dtype, nn_numel(param), nn_data(param), nn_data(param->grad),
                       nn_data(state->sum), step, o) < 0)
    return -1;
  state->step = step;
  nn_bump_version(param);
  return 0;
}

/* ---- issue 13's: Adadelta, Adamax, NAdam, RAdam, ASGD, Rprop ------------ */
/* The backend that steps param, with its buffers checked and made. */
static const nn_backend *prepare_step(const char *op, size_t kernel, nn_tensor *param, state_buffer *bufs,
                                      int n) {
  const nn_backend *be = check_param(op, kernel, param);
  return be && prepare_buffers(op, param, bufs, n) == 0 ? be : NULL;
}

/* A half parameter's step (half.h): the same front on float32 copies, with
   a copy of the state whose buffers (the tensors at offsets) are theirs;
   on success the state takes the copy's scalars and the rounded buffers. */
typedef int (*step_front)(nn_tensor *param, void *state, const void *options);
static int half_step(const char *op, nn_tensor *param, void *state, size_t state_size, const size_t *offsets,
                     int n, step_front front, const void *options) {
  union {
    max_align_t align;
    unsigned char bytes[64];
  } copy;
  nn_tensor **slots[NN_HALF_MAX_BUFFERS];
  nn_half_step h;
  if (state_size > sizeof copy.bytes || n > NN_HALF_MAX_BUFFERS) {
    nn_error_set("%s: internal error: a state too large for a half step", op);
    return -1;
  }
  memcpy(copy.bytes, state, state_size);
  for (int k = 0; k < n; k++) slots[k] = (nn_tensor **)((char *)state + offsets[k]);
  if (nn_half_step_enter(&h, op, param, n, slots) < 0) return -1;
  for (int k = 0; k < n; k++) memcpy(copy.bytes + offsets[k], &h.buffers32[k], sizeof(nn_tensor *));
  int status = front(h.param32, copy.bytes, options);
  for (int k = 0; k < n; k++) memcpy(&h.buffers32[k], copy.bytes + offsets[k], sizeof(nn_tensor *));
  if ((status = nn_half_step_leave(&h, status)) < 0) return -1;
  for (int k = 0; k < n; k++) memcpy(copy.bytes + offsets[k], slots[k], sizeof(nn_tensor *));
  memcpy(state, copy.bytes, state_size);
  return 0;
}

/* One parameter's step: nothing without a gradient, a half parameter
   through half_step, and the version bumped after a step that changed it. */
static int optimizer_step(const char *op, nn_tensor *param, void *state, size_t state_size,
                          const size_t *offsets, int n, step_front front, const void *options) {
  if (!nn_leaf_grad(param)) return 0;
  int status = nn_half_dtype(param->dtype)
                   ? half_step(op, param, state, state_size, offsets, n, front, options)
                   : front(param, state, options);
  if (status == 0) nn_bump_version(param);
  return status;
}

static int adadelta_front(nn_tensor *param, void *vstate, const void *voptions) {
  nn_adadelta_state *state = vstate;
  const nn_adadelta_options *o = voptions;
  state_buffer bufs[] = {{"square_avg", &state->square_avg, 0}, {"acc_delta", &state->acc_delta, 0}};
  const nn_backend *be = prepare_step("adadelta", offsetof(nn_backend, adadelta_step), param, bufs, 2);
  if (!be || be->adadelta_step(param->dtype, nn_numel(param), nn_data(param), nn_data(param->grad),
                               nn_data(state->square_avg), nn_data(state->acc_delta), o) < 0)
    return -1;
  state->step++;
  return 0;
}

int nn_adadelta_step(nn_tensor *param, nn_adadelta_state *state, const nn_adadelta_options *o) {
  static const size_t buffers[] = {offsetof(nn_adadelta_state, square_avg), offsetof(nn_adadelta_state, acc_delta)};
  return optimizer_step("adadelta", param, state, sizeof *state, buffers, 2, adadelta_front, o);
}

static int adamax_front(nn_tensor *param, void *vstate, const void *voptions) {
  nn_adamax_state *state = vstate;
  const nn_adamax_options *o = voptions;
  state_buffer bufs[] = {{"exp_avg", &state->exp_avg, 0}, {"exp_inf", &state->exp_inf, 0}};
  const nn_backend *be = prepare_step("adamax", offsetof(nn_backend, adamax_step), param, bufs, 2);
  int64_t step = state->step + 1;
  if (!be || be->adamax_step(param->dtype, nn_numel(param), nn_data(param), nn_data(param->grad),
                             nn_data(state->exp_avg), nn_data(state->exp_inf), step, o) < 0)
    return -1;
  state->step = step;
  return 0;
}

int nn_adamax_step(nn_tensor *param, nn_adamax_state *state, const nn_adamax_options *o) {
  static const size_t buffers[] = {offsetof(nn_adamax_state, exp_avg), offsetof(nn_adamax_state, exp_inf)};
  return optimizer_step("adamax", param, state, sizeof *state, buffers, 2, adamax_front, o);
}

static int nadam_front(nn_tensor *param, void *vstate, const void *voptions) {
  nn_nadam_state *state = vstate;
  const nn_nadam_options *o = voptions;
  state_buffer bufs[] = {{"exp_avg", &state->exp_avg, 0}, {"exp_avg_sq", &state->exp_avg_sq, 0}};
  const nn_backend *be = prepare_step("nadam", offsetof(nn_backend, nadam_step), param, bufs, 2);
  int64_t step = state->step + 1;
  /* mu_product *= mu_t in PyTorch's float32 tensor (1 in a new state) */
  float mu_product = state->step == 0 ? 1.0f : (float)state->mu_product;
  mu_product = mu_product * (float)nn_nadam_mu(o->beta1, o->momentum_decay, step);
  if (!be || be->nadam_step(param->dtype, nn_numel(param), nn_data(param), nn_data(param->grad),
                            nn_data(state->exp_avg), nn_data(state->exp_avg_sq), step, mu_product, o) < 0)
    return -1;
  state->step = step;
  state->mu_product = mu_product;
  return 0;
}

int nn_nadam_step(nn_tensor *param, nn_nadam_state *state, const nn_nadam_options *o) {
  static const size_t buffers[] = {offsetof(nn_nadam_state, exp_avg), offsetof(nn_nadam_state, exp_avg_sq)};
  return optimizer_step("nadam", param, state, sizeof *state, buffers, 2, nadam_front, o);
}

static int radam_front(nn_tensor *param, void *vstate, const void *voptions) {
  nn_radam_state *state = vstate;
  const nn_radam_options *o = voptions;
  state_buffer bufs[] = {{"exp_avg", &state->exp_avg, 0}, {"exp_avg_sq", &state->exp_avg_sq, 0}};
  const nn_backend *be = prepare_step("radam", offsetof(nn_backend, radam_step), param, bufs, 2);
  int64_t step = state->step + 1;
  if (!be || be->radam_step(param->dtype, nn_numel(param), nn_data(param), nn_data(param->grad),
                            nn_data(state->exp_avg), nn_data(state->exp_avg_sq), step, o) < 0)
    return -1;
  state->step = step;
  return 0;
}

int nn_radam_step(nn_tensor *param, nn_radam_state *state, const nn_radam_options *o) {
  static const size_t buffers[] = {offsetof(nn_radam_state, exp_avg), offsetof(nn_radam_state, exp_avg_sq)};
  return optimizer_step("radam", param, state, sizeof *state, buffers, 2, radam_front, o);
}

/* x rounded to float32, as PyTorch's float32 state tensors hold it. Through
   a volatile float: GCC 12.2 at -O3 miscompiles two adjacent stores of
   (float) round trips into double fields. Its SLP vectorizer packs them
   into one vector conversion pair, and the late FRE pass then folds
   (vector double)(vector float)v to v, dropping the rounding; ASGD's
   eta and mu after a step were the unrounded doubles. A scan of the
   -fdump-tree-slp2 dumps of every engine file, and of the LTO link's,
   found no other vector float-to-double conversion (notes of issue 13). */
static double float32_value(double x) {
  volatile float f = (float)x;
  return f;
}

static int asgd_front(nn_tensor *param, void *vstate, const void *voptions) {
  nn_asgd_state *state = vstate;
  const nn_asgd_options *o = voptions;
  state_buffer bufs[] = {{"ax", &state->ax, 0}};
  const nn_backend *be = prepare_step("asgd", offsetof(nn_backend, asgd_step), param, bufs, 1);
  int64_t step = state->step + 1;
  /* eta and mu are PyTorch's float32 tensors, lr and 1 in a new state */
  double eta = state->step == 0 ? float32_value(o->lr) : state->eta, mu = state->step == 0 ? 1 : state->mu;
  if (!be || be->asgd_step(param->dtype, nn_numel(param), nn_data(param), nn_data(param->grad),
                           nn_data(state->ax), eta, mu, o) < 0)
    return -1;
  state->step = step;
  state->eta = float32_value(o->lr / pow(1 + o->lambd * o->lr * (double)step, o->alpha));
  state->mu = float32_value(1 / fmax(1, (double)step - o->t0));
  return 0;
}

int nn_asgd_step(nn_tensor *param, nn_asgd_state *state, const nn_asgd_options *o) {
  static const size_t buffers[] = {offsetof(nn_asgd_state, ax)};
  return optimizer_step("asgd", param, state, sizeof *state, buffers, 1, asgd_front, o);
}

static int rprop_front(nn_tensor *param, void *vstate, const void *voptions) {
  nn_rprop_state *state = vstate;
  const nn_rprop_options *o = voptions;
  state_buffer bufs[] = {{"prev", &state->prev, 0}, {"step_size", &state->step_size, o->lr}};
  const nn_backend *be = prepare_step("rprop", offsetof(nn_backend, rprop_step), param, bufs, 2);
  if (!be || be->rprop_step(param->dtype, nn_numel(param), nn_data(param), nn_data(param->grad),
                            nn_data(state->prev), nn_data(state->step_size), o) < 0)
    return -1;
  state->step++;
  return 0;
}

int nn_rprop_step(nn_tensor *param, nn_rprop_state *state, const nn_rprop_options *o) {
  static const size_t buffers[] = {offsetof(nn_rprop_state, prev), offsetof(nn_rprop_state, step_size)};
  return optimizer_step("rprop", param, state, sizeof *state, buffers, 2, rprop_front, o);
}

/* ---- gradient clipping ----------------------------------------------- */
/* A gradient clipping may scale or clamp in place: floating point, and no
   two elements sharing one memory location. */
static int check_clip_grad(const char *op, const nn_tensor *g) {
  if (!nn_dtype_is_floating(g->dtype)) {
    nn_error_set("%s: a gradient is %s; gradients must be floating point", op,
                 nn_dtype_name(g->dtype));
    return -1;
  }
  for (int d = 0; d < g->ndim; d++) {
    if (g->stride[d] == 0 && g->size[d] > 1) {
      nn_error_set("%s: a gradient is an expanded view (elements share memory) and cannot be "
                   "changed in place", op);
      return -1;
    }
  }
  return 0;
}

/* The norm_type-norm of one gradient, in double. */
static int grad_norm(nn_tensor *g, double norm_type, double *norm) {
  nn_tensor *t = nn_norm_all(g, norm_type, NN_FLOAT64);
  int st = t ? nn_item(t, norm) : -1;
  nn_release(t);
  return st;
}

/* torch/nn/utils/clip_grad.py: each gradient's norm, then the norm of
   those norms (each rounded to the gradients' dtype, float32 or one half
   type, as the stacked norms are in PyTorch); clip_coef = max_norm / (total + 1e-6), which PyTorch
   evaluates as reciprocal(total + 1e-6) * max_norm in the total's dtype,
   clamped at 1 and applied to every gradient, even when it is 1. */
int nn_clip_grad_norm(nn_tensor *const *params, int64_t n, double max_norm, double norm_type,
                      int error_if_nonfinite, double *total_norm) {
  const char *op = "clip_grad_norm_";
  *total_norm = 0;
  if (!(norm_type > 0)) {
    nn_error_set("%s: norm_type must be positive or inf, got %g", op, norm_type);
    return -1;
  }
  if (!(max_norm >= 0)) {
    nn_error_set("%s: max_norm must be a non-negative number, got %g", op, max_norm);
    return -1;
  }
  int any = 0, all_float32 = 1, all_half = 1;
  nn_dtype half = NN_FLOAT16;
  for (int64_t k = 0; k < n; k++) {
    nn_tensor *g = nn_leaf_grad(params[k]);
    if (!g) continue;
    if (check_clip_grad(op, g) < 0) return -1;
    if (!any) half = g->dtype;
    any = 1;
    if (g->dtype != NN_FLOAT32) all_float32 = 0;
    if (g->dtype != half || !nn_half_dtype(g->dtype)) all_half = 0;
  }
  if (!any) return 0;
  int is_inf = isinf(norm_type);
  double acc = 0;
  for (int64_t k = 0; k < n; k++) {
    nn_tensor *g = nn_leaf_grad(params[k]);
    double norm;
    if (!g) continue;
    if (grad_norm(g, norm_type, &norm) < 0) return -1;
    if (all_float32) norm = (float)norm;
    if (all_half) norm = nn_round_to(half, norm);
    if (is_inf) acc = norm > acc || norm != norm ? norm : acc;
    else acc += norm_type == 2 ? norm * norm : norm_type == 1 ? norm : pow(norm, norm_type);
  }
  double total = is_inf || norm_type == 1 ? acc
                 : norm_type == 2         ? sqrt(acc)
                                          : pow(acc, 1 / norm_type);
  double coef;
  if (all_float32) {
    float total_f = (float)total;
    total = total_f;
    coef = (1.0f / (total_f + 1e-6f)) * (float)max_norm;
  } else if (all_half) { /* the same ops on half tensors, each computed in float and rounded */
    float total_h = (float)nn_round_to(half, total);
    total = total_h;
    float sum = (float)nn_round_to(half, total_h + 1e-6f), inverse = (float)nn_round_to(half, 1.0f / sum);
    coef = nn_round_to(half, inverse * (float)max_norm);
  } else {
    coef = (1.0 / (total + 1e-6)) * max_norm;
  }
  *total_norm = total;
  if (error_if_nonfinite && !isfinite(total)) {
    nn_error_set("%s: the total norm of order %g of the gradients is non-finite (%g), so they "
                 "cannot be clipped; pass error_if_nonfinite = false to scale them anyway",
                 op, norm_type, total);
    return -1;
  }
  if (coef > 1) coef = 1; /* torch.clamp(max=1): a NaN stays NaN */
  for (int64_t k = 0; k < n; k++) {
    nn_tensor *g = nn_leaf_grad(params[k]);
    /* g *= coef in g's dtype (a float32 product of two floats rounds the
       same whether computed in float or in double) */
    if (g && nn_binary_number_(NN_MUL, g, coef, NN_NUMBER_FLOAT) < 0) return -1;
  }
  return 0;
}

/* torch/nn/utils/clip_grad.py: grad.clamp_(-v, v) for each gradient. */
int nn_clip_grad_value(nn_tensor *const *params, int64_t n, double clip_value) {
  const char *op = "clip_grad_value_";
  if (!(clip_value >= 0)) {
    nn_error_set("%s: clip_value must be a non-negative number, got %g", op, clip_value);
    return -1;
  }
  for (int64_t k = 0; k < n; k++) {
    if (nn_leaf_grad(params[k]) && check_clip_grad(op, nn_leaf_grad(params[k])) < 0) return -1;
  }
  for (int64_t k = 0; k < n; k++) {
    nn_tensor *g = nn_leaf_grad(params[k]);
    /* clamp as PyTorch's: a NaN stays NaN; float32 clamps at the bound rounded */
    if (g && nn_clamp_(g, -clip_value, clip_value) < 0) return -1;
  }
  return 0;
}

/* nn_optim.c: the binding's C functions for nn.optim and nn.utils' clipping.
 *
 * An optimizer's step for one parameter group is one call:
 *   optim_<name>(group, states [, flag])
 * group is the Lua parameter group ({params = {...}, lr = ..., ...}, its
 * hyperparameters already checked by nn/optim.lua); states is that group's
 * table of per-parameter state tables, by position in group.params, each
 * {step = n, <buffer name> = tensor, ...}. A state table is made on the
 * first step of a parameter that has a gradient; the buffers the engine
 * creates are stored into it under PyTorch's names. */
#include <math.h>

#include "nn_binding.h"

/* group[key] as a number; nn/optim.lua has checked it, so a failure here
   means the group was changed behind the optimizer's back. */
static double group_number(lua_State *L, int group, const char *key, const char *op) {
  lua_getfield(L, group, key);
  int ok;
  double v = lua_tonumberx(L, -1, &ok);
  if (!ok) nnl_error(L, "%s: the parameter group's %s must be a number, got %s", op, key,
                     luaL_typename(L, -1));
  lua_pop(L, 1);
  return v;
}

static int group_flag(lua_State *L, int group, const char *key) {
  lua_getfield(L, group, key);
  int v = lua_toboolean(L, -1);
  lua_pop(L, 1);
  return v;
}

/* group.betas[i] */
static double group_beta(lua_State *L, int group, int i, const char *op) {
  if (lua_getfield(L, group, "betas") != LUA_TTABLE)
    nnl_error(L, "%s: the parameter group's betas must be a table of two numbers", op);
  lua_rawgeti(L, -1, i);
  int ok;
  double v = lua_tonumberx(L, -1, &ok);
  if (!ok) nnl_error(L, "%s: the parameter group's betas[%d] must be a number", op, i);
  lua_pop(L, 2);
  return v;
}

/* Pushes group.params[i] and returns it; NULL (nothing pushed) when it
   has no gradient, so that it gets no state, as in PyTorch. */
static nn_tensor *param_at(lua_State *L, int params, lua_Integer i, const char *op) {
  lua_rawgeti(L, params, i);
  nn_tensor *p = nnl_check_tensor(L, -1, op);
  lua_pop(L, 1); /* group.params keeps it alive */
  return p->grad ? p : NULL;
}

/* Pushes states[i] and returns its stack index, or 0 (nothing pushed)
   when there is none yet. */
static int get_state(lua_State *L, int states, lua_Integer i) {
  if (lua_rawgeti(L, states, i) == LUA_TTABLE) return lua_gettop(L);
  lua_pop(L, 1);
  return 0;
}

/* The state table of a parameter after a successful step: the one there
   was, or a new one stored as states[i]. A failed step makes none. */
static int ensure_state(lua_State *L, int states, lua_Integer i, int state) {
  if (state) return state;
  lua_createtable(L, 0, 4);
  lua_pushvalue(L, -1);
  lua_rawseti(L, states, i);
  return lua_gettop(L);
}

/* state[key] as a tensor, or NULL (also when there is no state); the
   state table keeps it alive. */
static nn_tensor *state_tensor(lua_State *L, int state, const char *key) {
  if (!state) return NULL;
  lua_getfield(L, state, key);
  nn_tensor *t = nnl_to_tensor(L, -1);
  lua_pop(L, 1);
  return t;
}

static int64_t state_step(lua_State *L, int state) {
  if (!state) return 0;
  lua_getfield(L, state, "step");
  int64_t step = (int64_t)lua_tointeger(L, -1); /* 0 when absent */
  lua_pop(L, 1);
  return step;
}

/* Stores a buffer the engine made (now differs from before). */
static void store_new(lua_State *L, int state, const char *key, nn_tensor *now,
                      nn_tensor *before) {
  if (now == before) return;
  nnl_push_tensor(L, now);
  lua_setfield(L, state, key);
}

static void store_step(lua_State *L, int state, int64_t step) {
  lua_pushinteger(L, (lua_Integer)step);
  lua_setfield(L, state, "step");
}

/* Checks the two table arguments; returns #group.params with group.params
   at stack index 3. */
static lua_Integer begin_step(lua_State *L, const char *op) {
  luaL_checktype(L, 1, LUA_TTABLE);
  luaL_checktype(L, 2, LUA_TTABLE);
  lua_settop(L, 2);
  if (lua_getfield(L, 1, "params") != LUA_TTABLE)
    nnl_error(L, "%s: the parameter group has no params list", op);
  return (lua_Integer)lua_rawlen(L, 3);
}

/* optim_sgd(group, states): momentum_buffer (no state without momentum) */
static int l_optim_sgd(lua_State *L) {
  const char *op = "sgd";
  lua_Integer n = begin_step(L, op);
  nn_sgd_options o = {group_number(L, 1, "lr", op), group_number(L, 1, "momentum", op),
                      group_number(L, 1, "dampening", op),
                      group_number(L, 1, "weight_decay", op), group_flag(L, 1, "nesterov"),
                      group_flag(L, 1, "maximize")};
  for (lua_Integer i = 1; i <= n; i++) {
    nn_tensor *p = param_at(L, 3, i, op);
    if (!p) continue;
    if (o.momentum == 0) { /* plain SGD keeps no state: the fast path of a training loop */
      nn_tensor *none = NULL;
      if (nn_sgd_step(p, &none, &o) < 0) return nnl_engine_error(L);
      continue;
    }
    int st = get_state(L, 2, i);
    nn_tensor *before = state_tensor(L, st, "momentum_buffer"), *buf = before;
    if (nn_sgd_step(p, &buf, &o) < 0) return nnl_engine_error(L);
    st = ensure_state(L, 2, i, st);
    store_new(L, st, "momentum_buffer", buf, before);
    lua_settop(L, 3);
  }
  return 0;
}

/* optim_adam(group, states, decoupled): exp_avg, exp_avg_sq, max_exp_avg_sq;
   decoupled (AdamW) decays the weights instead of the gradient. */
static int l_optim_adam(lua_State *L) {
  int decoupled = lua_toboolean(L, 3);
  const char *op = decoupled ? "adamw" : "adam";
  lua_Integer n = begin_step(L, op);
  nn_adam_options o = {group_number(L, 1, "lr", op),
                       group_beta(L, 1, 1, op),
                       group_beta(L, 1, 2, op),
                       group_number(L, 1, "eps", op),
                       group_number(L, 1, "weight_decay", op),
                       group_flag(L, 1, "amsgrad"),
                       group_flag(L, 1, "maximize"),
                       decoupled};
  for (lua_Integer i = 1; i <= n; i++) {
    nn_tensor *p = param_at(L, 3, i, op);
    if (!p) continue;
    int st = get_state(L, 2, i);
    nn_adam_state s = {state_step(L, st), state_tensor(L, st, "exp_avg"),
                       state_tensor(L, st, "exp_avg_sq"), state_tensor(L, st, "max_exp_avg_sq")};
    nn_adam_state before = s;
    if (nn_adam_step(p, &s, &o) < 0) return nnl_engine_error(L);
    st = ensure_state(L, 2, i, st);
    store_new(L, st, "exp_avg", s.exp_avg, before.exp_avg);
    store_new(L, st, "exp_avg_sq", s.exp_avg_sq, before.exp_avg_sq);
    store_new(L, st, "max_exp_avg_sq", s.max_exp_avg_sq, before.max_exp_avg_sq);
    store_step(L, st, s.step);
    lua_settop(L, 3);
  }
  return 0;
}

/* optim_rmsprop(group, states): square_avg, momentum_buffer, grad_avg */
static int l_optim_rmsprop(lua_State *L) {
  const char *op = "rmsprop";
  lua_Integer n = begin_step(L, op);
  nn_rmsprop_options o = {group_number(L, 1, "lr", op),
                          group_number(L, 1, "alpha", op),
                          group_number(L, 1, "eps", op),
                          group_number(L, 1, "weight_decay", op),
                          group_number(L, 1, "momentum", op),
                          group_flag(L, 1, "centered"),
                          group_flag(L, 1, "maximize")};
  for (lua_Integer i = 1; i <= n; i++) {
    nn_tensor *p = param_at(L, 3, i, op);
    if (!p) continue;
    int st = get_state(L, 2, i);
    nn_rmsprop_state s = {state_step(L, st), state_tensor(L, st, "square_avg"),
                          state_tensor(L, st, "momentum_buffer"), state_tensor(L, st, "grad_avg")};
    nn_rmsprop_state before = s;
    if (nn_rmsprop_step(p, &s, &o) < 0) return nnl_engine_error(L);
    st = ensure_state(L, 2, i, st);
    store_new(L, st, "square_avg", s.square_avg, before.square_avg);
    store_new(L, st, "momentum_buffer", s.momentum_buffer, before.momentum_buffer);
    store_new(L, st, "grad_avg", s.grad_avg, before.grad_avg);
    store_step(L, st, s.step);
    lua_settop(L, 3);
  }
  return 0;
}

/* optim_adagrad(group, states): sum */
static int l_optim_adagrad(lua_State *L) {
  const char *op = "adagrad";
  lua_Integer n = begin_step(L, op);
  nn_adagrad_options o = {group_number(L, 1, "lr", op),
                          group_number(L, 1, "lr_decay", op),
                          group_number(L, 1, "weight_decay", op),
                          group_number(L, 1, "initial_accumulator_value", op),
                          group_number(L, 1, "eps", op),
                          group_flag(L, 1, "maximize")};
  for (lua_Integer i = 1; i <= n; i++) {
    nn_tensor *p = param_at(L, 3, i, op);
    if (!p) continue;
    int st = get_state(L, 2, i);
    nn_adagrad_state s = {state_step(L, st), state_tensor(L, st, "sum")};
    nn_tensor *before = s.sum;
    if (nn_adagrad_step(p, &s, &o) < 0) return nnl_engine_error(L);
    st = ensure_state(L, 2, i, st);
    store_new(L, st, "sum", s.sum, before);
    store_step(L, st, s.step);
    lua_settop(L, 3);
  }
  return 0;
}

/* The tensors of the list at idx, in a scratch array owned by a userdata
   pushed on the stack (so an error cannot leak it). */
static nn_tensor **tensor_list(lua_State *L, int idx, const char *op, lua_Integer *count) {
  luaL_checktype(L, idx, LUA_TTABLE);
  lua_Integer n = (lua_Integer)lua_rawlen(L, idx);
  nn_tensor **list = lua_newuserdatauv(L, (size_t)(n > 0 ? n : 1) * sizeof *list, 0);
  for (lua_Integer i = 1; i <= n; i++) {
    lua_rawgeti(L, idx, i);
    list[i - 1] = nnl_check_tensor(L, -1, op);
    lua_pop(L, 1);
  }
  *count = n;
  return list;
}

/* clip_grad_norm(params, max_norm, norm_type, error_if_nonfinite) -> the
   total norm as a 0-dim tensor: float32 unless some gradient is float64
   (PyTorch's float32 tensor(0.) when no parameter has a gradient). */
static int l_clip_grad_norm(lua_State *L) {
  const char *op = "clip_grad_norm_";
  double max_norm = luaL_checknumber(L, 2), norm_type = luaL_optnumber(L, 3, 2);
  int error_if_nonfinite = lua_toboolean(L, 4);
  lua_Integer n;
  nn_tensor **list = tensor_list(L, 1, op, &n);
  nn_dtype dtype = NN_FLOAT32;
  for (lua_Integer i = 0; i < n; i++)
    if (list[i]->grad && list[i]->grad->dtype == NN_FLOAT64) dtype = NN_FLOAT64;
  double total;
  if (nn_clip_grad_norm(list, (int64_t)n, max_norm, norm_type, error_if_nonfinite, &total) < 0)
    return nnl_engine_error(L);
  nnl_push_tensor(L, nn_full(dtype, 0, NULL, total));
  return 1;
}

/* clip_grad_value(params, clip_value) */
static int l_clip_grad_value(lua_State *L) {
  const char *op = "clip_grad_value_";
  double clip_value = luaL_checknumber(L, 2);
  lua_Integer n;
  nn_tensor **list = tensor_list(L, 1, op, &n);
  if (nn_clip_grad_value(list, (int64_t)n, clip_value) < 0) return nnl_engine_error(L);
  return 0;
}

static const luaL_Reg optim_functions[] = {
    {"optim_sgd", l_optim_sgd},         {"optim_adam", l_optim_adam},
    {"optim_rmsprop", l_optim_rmsprop}, {"optim_adagrad", l_optim_adagrad},
    {"clip_grad_norm", l_clip_grad_norm}, {"clip_grad_value", l_clip_grad_value},
    {NULL, NULL}};

void nnl_register_optim(lua_State *L) { luaL_setfuncs(L, optim_functions, 0); }

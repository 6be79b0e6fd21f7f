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
#include <stdlib.h>

#include "nn_binding.h"

/* The table keys these functions read and write, kept as the upvalues of
   each (nnl_push_closure_with_keys), so that a step interns no string. */
enum {
  K_PARAMS = 1, K_LR, K_MOMENTUM, K_DAMPENING, K_WEIGHT_DECAY, K_NESTEROV, K_MAXIMIZE, K_BETAS,
  K_EPS, K_AMSGRAD, K_ALPHA, K_CENTERED, K_LR_DECAY, K_INITIAL_ACCUMULATOR_VALUE, K_STEP,
  K_MOMENTUM_BUFFER, K_EXP_AVG, K_EXP_AVG_SQ, K_MAX_EXP_AVG_SQ, K_SQUARE_AVG, K_GRAD_AVG, K_SUM,
  K_PARAM_GROUPS, K_STATE, K_UPDATE, K_RHO, K_ACC_DELTA, K_EXP_INF, K_MOMENTUM_DECAY, K_MU_PRODUCT,
  K_LAMBD, K_T0, K_ETA, K_MU, K_AX, K_ETAS, K_STEP_SIZES, K_PREV, K_STEP_SIZE, K_NAME, K_COUNT = K_NAME
};
static const char *const OPTIM_KEYS[K_COUNT] = {
    "params", "lr", "momentum", "dampening", "weight_decay", "nesterov", "maximize", "betas",
    "eps", "amsgrad", "alpha", "centered", "lr_decay", "initial_accumulator_value", "step",
    "momentum_buffer", "exp_avg", "exp_avg_sq", "max_exp_avg_sq", "square_avg", "grad_avg", "sum",
    "param_groups", "state", "_update", "rho", "acc_delta", "exp_inf", "momentum_decay", "mu_product",
    "lambd", "t0", "eta", "mu", "ax", "etas", "step_sizes", "prev", "step_size", "__name"};

/* t[key] onto the stack (t at an absolute index), metamethods and all, as
   lua_getfield would; returns its type. */
static int get_key(lua_State *L, int t, int key) {
  lua_pushvalue(L, lua_upvalueindex(key));
  return lua_gettable(L, t);
}

/* t[key] = the value on top (popped), as lua_setfield would. */
static void set_key(lua_State *L, int t, int key) {
  lua_pushvalue(L, lua_upvalueindex(key));
  lua_insert(L, -2);
  lua_settable(L, t);
}

static const char *key_name(lua_State *L, int key) { return lua_tostring(L, lua_upvalueindex(key)); }

/* group[key] as a number; nn/optim.lua has checked it, so a failure here
   means the group was changed behind the optimizer's back. */
static double group_number(lua_State *L, int group, int key, const char *op) {
  get_key(L, group, key);
  int ok;
  double v = lua_tonumberx(L, -1, &ok);
  if (!ok) nnl_error(L, "%s: the parameter group's %s must be a number, got %s", op, key_name(L, key),
                     luaL_typename(L, -1));
  lua_pop(L, 1);
  return v;
}

static int group_flag(lua_State *L, int group, int key) {
  get_key(L, group, key);
  int v = lua_toboolean(L, -1);
  lua_pop(L, 1);
  return v;
}

/* group[key][i], of a pair such as betas or etas */
static double group_pair(lua_State *L, int group, int key, int i, const char *op) {
  if (get_key(L, group, key) != LUA_TTABLE)
    nnl_error(L, "%s: the parameter group's %s must be a table of two numbers", op, key_name(L, key));
  lua_rawgeti(L, -1, i);
  int ok;
  double v = lua_tonumberx(L, -1, &ok);
  if (!ok) nnl_error(L, "%s: the parameter group's %s[%d] must be a number", op, key_name(L, key), i);
  lua_pop(L, 2);
  return v;
}

static double group_beta(lua_State *L, int group, int i, const char *op) {
  return group_pair(L, group, K_BETAS, i, op);
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
static nn_tensor *state_tensor(lua_State *L, int state, int key) {
  if (!state) return NULL;
  get_key(L, state, key);
  nn_tensor *t = nnl_to_tensor(L, -1);
  lua_pop(L, 1);
  return t;
}

static int64_t state_step(lua_State *L, int state) {
  if (!state) return 0;
  get_key(L, state, K_STEP);
  int64_t step = (int64_t)lua_tointeger(L, -1); /* 0 when absent */
  lua_pop(L, 1);
  return step;
}

/* Stores a buffer the engine made (now differs from before). */
static void store_new(lua_State *L, int state, int key, nn_tensor *now, nn_tensor *before) {
  if (now == before) return;
  nnl_push_tensor(L, now);
  set_key(L, state, key);
}

static void store_step(lua_State *L, int state, int64_t step) {
  lua_pushinteger(L, (lua_Integer)step);
  set_key(L, state, K_STEP);
}

/* state[key] as a number, or fallback (also when there is no state) */
static double state_number(lua_State *L, int state, int key, double fallback) {
  if (!state) return fallback;
  get_key(L, state, key);
  int ok;
  double v = lua_tonumberx(L, -1, &ok);
  lua_pop(L, 1);
  return ok ? v : fallback;
}

static void store_number(lua_State *L, int state, int key, double v) {
  lua_pushnumber(L, v);
  set_key(L, state, key);
}

/* Checks the two table arguments; returns #group.params with group.params
   at stack index 3. */
static lua_Integer begin_step(lua_State *L, const char *op) {
  luaL_checktype(L, 1, LUA_TTABLE);
  luaL_checktype(L, 2, LUA_TTABLE);
  lua_settop(L, 2);
  if (get_key(L, 1, K_PARAMS) != LUA_TTABLE)
    nnl_error(L, "%s: the parameter group has no params list", op);
  return (lua_Integer)lua_rawlen(L, 3);
}

/* ---- plain SGD in a captured step ------------------------------------------
   A replay of optim_sgd without a Lua call: the group's options read
   afresh (a scheduler's lr counts), then the step of each parameter of
   the list group.params held at capture, through the same front as eager.
   Anything else (momentum, whose buffers live in Lua tables; another
   params list, or one of another length; an option that is not a number)
   runs optim_sgd itself, as it would have, errors and all. */
typedef struct {
  const void *list; /* group.params at capture */
  lua_Integer n;
  nn_sgd_list *steps; /* the engine's step of those tensors */
  const void *box[]; /* the list's userdata at capture */
} sgd_replay;

static void free_sgd_replay(void *data) {
  sgd_replay *r = data;
  nn_sgd_list_free(r->steps);
  free(r);
}

/* group.params (group at index 1) as a sgd_replay; NULL when it is not a
   list of tensors (optim_sgd then says what is wrong), the group has
   momentum, or memory is short. */
static sgd_replay *sgd_snapshot(lua_State *L) {
  if (!lua_istable(L, 1)) return NULL;
  get_key(L, 1, K_MOMENTUM);
  int plain = lua_type(L, -1) == LUA_TNUMBER && lua_tonumber(L, -1) == 0;
  lua_pop(L, 1);
  if (!plain) return NULL;
  if (get_key(L, 1, K_PARAMS) != LUA_TTABLE) {
    lua_pop(L, 1);
    return NULL;
  }
  lua_Integer n = (lua_Integer)lua_rawlen(L, -1);
  sgd_replay *r = malloc(sizeof *r + (size_t)n * sizeof r->box[0]);
  nn_tensor **params = malloc((size_t)(n > 0 ? n : 1) * sizeof *params);
  int ok = r && params;
  for (lua_Integer i = 1; ok && i <= n; i++) {
    lua_rawgeti(L, -1, i);
    params[i - 1] = nnl_to_tensor(L, -1);
    r->box[i - 1] = lua_touserdata(L, -1);
    ok = params[i - 1] != NULL;
    lua_pop(L, 1);
  }
  if (ok) {
    r->list = lua_topointer(L, -1);
    r->n = n;
    ok = (r->steps = nn_sgd_list_new(params, n)) != NULL;
  }
  lua_pop(L, 1);
  free(params);
  if (!ok) {
    free(r);
    return NULL;
  }
  return r;
}

/* fn (optim_sgd itself, at a stack index) keeps the keys as upvalues.
   Raw reads, one C API call each: a field present in the group reads the
   same raw as through metamethods, and an absent one (nil) sends the step
   to optim_sgd, which reads as eager does (lua_getfield, which finds a
   literal key through Lua's string cache and a strcmp, costs more than
   the upvalue and the raw read together). The list's elements are
   compared as userdata with those at capture (a box keeps its tensor
   unless closed: checked too); the engine's list steps them. nesterov is
   not read: without momentum it changes nothing, and optim_sgd reads it
   as a flag, which no value fails. */
static int sgd_native_replay(lua_State *L, int fn, void *data) {
  static const int keys[] = {K_LR, K_MOMENTUM, K_DAMPENING, K_WEIGHT_DECAY, K_MAXIMIZE, K_PARAMS};
  const sgd_replay *r = data;
  int group = fn + 1, first = lua_gettop(L) + 1, list = first + 5;
  if (!lua_checkstack(L, 7 + (int)r->n)) return 0;
  for (int k = 0; k < 6; k++) {
    lua_getupvalue(L, fn, keys[k]);
    lua_rawget(L, group);
  }
  int ok[4];
  nn_sgd_options o = {lua_tonumberx(L, first, &ok[0]), lua_tonumberx(L, first + 1, &ok[1]),
                      lua_tonumberx(L, first + 2, &ok[2]), lua_tonumberx(L, first + 3, &ok[3]),
                      0, lua_toboolean(L, first + 4)};
  if (!ok[0] || !ok[1] || !ok[2] || !ok[3] || o.momentum != 0 || lua_isnil(L, first + 4) ||
      lua_topointer(L, list) != r->list || (lua_Integer)lua_rawlen(L, list) != r->n)
    return 0;
  /* a tensor replaced inside the list: the step eager would take */
  for (lua_Integer i = 0; i < r->n; i++) lua_rawgeti(L, list, i + 1);
  for (lua_Integer i = 0; i < r->n; i++) {
    const void *box = lua_touserdata(L, list + 1 + (int)i);
    if (box != r->box[i] || !nnl_box_tensor(box)) return 0;
  }
  return nn_sgd_list_step(r->steps, &o) < 0 ? -1 : 1;
}

/* ---- plain SGD, eager: each parameter checked once ---------------------------
   A training loop steps the same list of the same parameters every time:
   the engine's nn_sgd_list checks each once (again when the parameter or
   its gradient changed: another gradient tensor, set_data's new storage or
   shape), where nn_sgd_step checks it every call. One list is kept per
   group.params table (in the table that is the functions' upvalue
   SGD_LISTS, weak in its keys, so the list goes with the table), as a
   userdata whose user value keeps the boxes it was made from alive: a box
   at the same address is the same box. A step uses it while every element
   is the box it was and holds the tensor it held. */
typedef struct {
  nn_sgd_list *steps;
  lua_Integer n;
  struct {
    const void *box;
    const nn_tensor *param;
  } item[];
} sgd_eager;

#define SGD_LISTS (K_COUNT + 1)

static int sgd_eager_gc(lua_State *L) {
  sgd_eager *c = lua_touserdata(L, 1);
  if (c) {
    nn_sgd_list_free(c->steps);
    c->steps = NULL;
  }
  return 0;
}

/* The n boxes of group.params are at first..first+n-1: 1 when c steps them */
static int sgd_eager_fits(const sgd_eager *c, lua_State *L, int first, lua_Integer n) {
  if (!c || !c->steps || c->n != n) return 0;
  for (lua_Integer i = 0; i < n; i++) {
    const void *box = lua_touserdata(L, first + (int)i);
    if (box != c->item[i].box || nnl_box_tensor(box) != c->item[i].param) return 0;
  }
  return 1;
}

/* A list for the n boxes at first.. (lists at index lists, group.params at
   3), stored there; NULL when some element is not a tensor (optim_sgd's
   loop says so) or memory is short (the loop steps them one by one). */
static sgd_eager *sgd_eager_make(lua_State *L, int lists, int first, lua_Integer n) {
  nn_tensor **params = malloc((size_t)(n > 0 ? n : 1) * sizeof *params);
  if (!params) return NULL;
  for (lua_Integer i = 0; i < n; i++) {
    if (!(params[i] = nnl_to_tensor(L, first + (int)i))) {
      free(params);
      return NULL;
    }
  }
  sgd_eager *c = lua_newuserdatauv(L, sizeof *c + (size_t)n * sizeof c->item[0], 1);
  c->n = n;
  c->steps = NULL;
  if (luaL_newmetatable(L, "nn.sgd_list")) {
    lua_pushcfunction(L, sgd_eager_gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_setmetatable(L, -2);
  lua_createtable(L, (int)n, 0); /* the boxes, kept alive */
  for (lua_Integer i = 0; i < n; i++) {
    lua_pushvalue(L, first + (int)i);
    lua_rawseti(L, -2, i + 1);
    nn_tensor *p = params[i];
    c->item[i].box = lua_touserdata(L, first + (int)i);
    c->item[i].param = p;
  }
  lua_setiuservalue(L, -2, 1);
  c->steps = nn_sgd_list_new(params, n);
  free(params);
  if (!c->steps) return NULL;
  lua_pushvalue(L, 3);
  lua_pushvalue(L, -2);
  lua_rawset(L, lists);
  return c;
}

/* Steps group.params (at 3, n long) as plain SGD through its list: 1 when
   it did (an engine error raised as the step by step loop would), 0 when
   the caller must step them one by one. The stack is left at 3. */
static int sgd_eager_step(lua_State *L, lua_Integer n, const nn_sgd_options *o) {
  if (n < 1 || n > 1000 || !lua_checkstack(L, (int)n + 8)) return 0;
  lua_pushvalue(L, lua_upvalueindex(SGD_LISTS)); /* 4 */
  lua_pushvalue(L, 3);
  lua_rawget(L, 4); /* 5: the list, or nil */
  for (lua_Integer i = 1; i <= n; i++) lua_rawgeti(L, 3, i);
  sgd_eager *c = lua_touserdata(L, 5);
  if (!sgd_eager_fits(c, L, 6, n)) c = sgd_eager_make(L, 4, 6, n);
  int status = c ? nn_sgd_list_step(c->steps, o) : 0;
  lua_settop(L, 3);
  if (status < 0) nnl_engine_error(L);
  return c != NULL;
}

/* optim_sgd(group, states): momentum_buffer (no state without momentum) */
static int l_optim_sgd(lua_State *L) {
  const char *op = "sgd";
  sgd_replay *snapshot = nn_capture_recording() ? sgd_snapshot(L) : NULL;
  int recorded = snapshot ? nnl_capture_call_native(L, 2, sgd_native_replay, snapshot, free_sgd_replay)
                          : nnl_capture_call(L, 2);
  lua_Integer n = begin_step(L, op);
  nn_sgd_options o = {group_number(L, 1, K_LR, op), group_number(L, 1, K_MOMENTUM, op),
                      group_number(L, 1, K_DAMPENING, op),
                      group_number(L, 1, K_WEIGHT_DECAY, op), group_flag(L, 1, K_NESTEROV),
                      group_flag(L, 1, K_MAXIMIZE)};
  /* plain SGD keeps no state: the fast path of a training loop. While a
     step is being recorded, each parameter's step must be seen. */
  if (o.momentum == 0 && !nn_capture_recording() && sgd_eager_step(L, n, &o)) n = 0;
  if (o.momentum == 0) {
    luaL_checkstack(L, (int)(n < 1000 ? n : 1000), op);
    for (lua_Integer first = 1; first <= n; first += 1000) { /* the list pushed, popped once */
      lua_Integer last = first + 999 < n ? first + 999 : n;
      for (lua_Integer i = first; i <= last; i++) lua_rawgeti(L, 3, i);
      for (lua_Integer i = first; i <= last; i++) {
        nn_tensor *p = nnl_check_tensor(L, 4 + (int)(i - first), op), *none = NULL;
        if (nn_sgd_step(p, &none, &o) < 0) return nnl_engine_error(L);
      }
      lua_settop(L, 3);
    }
    n = 0;
  }
  for (lua_Integer i = 1; i <= n; i++) {
    nn_tensor *p = param_at(L, 3, i, op);
    if (!p) continue;
    int st = get_state(L, 2, i);
    nn_tensor *before = state_tensor(L, st, K_MOMENTUM_BUFFER), *buf = before;
    if (nn_sgd_step(p, &buf, &o) < 0) return nnl_engine_error(L);
    st = ensure_state(L, 2, i, st);
    store_new(L, st, K_MOMENTUM_BUFFER, buf, before);
    lua_settop(L, 3);
  }
  if (recorded) nn_capture_host_call_done();
  return 0;
}

/* optim_adam(group, states, decoupled): exp_avg, exp_avg_sq, max_exp_avg_sq;
   decoupled (AdamW) decays the weights instead of the gradient. */
static int l_optim_adam(lua_State *L) {
  int decoupled = lua_toboolean(L, 3);
  const char *op = decoupled ? "adamw" : "adam";
  int recorded = nnl_capture_call(L, 3);
  lua_Integer n = begin_step(L, op);
  nn_adam_options o = {group_number(L, 1, K_LR, op),
                       group_beta(L, 1, 1, op),
                       group_beta(L, 1, 2, op),
                       group_number(L, 1, K_EPS, op),
                       group_number(L, 1, K_WEIGHT_DECAY, op),
                       group_flag(L, 1, K_AMSGRAD),
                       group_flag(L, 1, K_MAXIMIZE),
                       decoupled};
  for (lua_Integer i = 1; i <= n; i++) {
    nn_tensor *p = param_at(L, 3, i, op);
    if (!p) continue;
    int st = get_state(L, 2, i);
    nn_adam_state s = {state_step(L, st), state_tensor(L, st, K_EXP_AVG),
                       state_tensor(L, st, K_EXP_AVG_SQ), state_tensor(L, st, K_MAX_EXP_AVG_SQ)};
    nn_adam_state before = s;
    if (nn_adam_step(p, &s, &o) < 0) return nnl_engine_error(L);
    st = ensure_state(L, 2, i, st);
    store_new(L, st, K_EXP_AVG, s.exp_avg, before.exp_avg);
    store_new(L, st, K_EXP_AVG_SQ, s.exp_avg_sq, before.exp_avg_sq);
    store_new(L, st, K_MAX_EXP_AVG_SQ, s.max_exp_avg_sq, before.max_exp_avg_sq);
    store_step(L, st, s.step);
    lua_settop(L, 3);
  }
  if (recorded) nn_capture_host_call_done();
  return 0;
}

/* optim_rmsprop(group, states): square_avg, momentum_buffer, grad_avg */
static int l_optim_rmsprop(lua_State *L) {
  const char *op = "rmsprop";
  int recorded = nnl_capture_call(L, 2);
  lua_Integer n = begin_step(L, op);
  nn_rmsprop_options o = {group_number(L, 1, K_LR, op),
                          group_number(L, 1, K_ALPHA, op),
                          group_number(L, 1, K_EPS, op),
                          group_number(L, 1, K_WEIGHT_DECAY, op),
                          group_number(L, 1, K_MOMENTUM, op),
                          group_flag(L, 1, K_CENTERED),
                          group_flag(L, 1, K_MAXIMIZE)};
  for (lua_Integer i = 1; i <= n; i++) {
    nn_tensor *p = param_at(L, 3, i, op);
    if (!p) continue;
    int st = get_state(L, 2, i);
    nn_rmsprop_state s = {state_step(L, st), state_tensor(L, st, K_SQUARE_AVG),
                          state_tensor(L, st, K_MOMENTUM_BUFFER), state_tensor(L, st, K_GRAD_AVG)};
    nn_rmsprop_state before = s;
    if (nn_rmsprop_step(p, &s, &o) < 0) return nnl_engine_error(L);
    st = ensure_state(L, 2, i, st);
    store_new(L, st, K_SQUARE_AVG, s.square_avg, before.square_avg);
    store_new(L, st, K_MOMENTUM_BUFFER, s.momentum_buffer, before.momentum_buffer);
    store_new(L, st, K_GRAD_AVG, s.grad_avg, before.grad_avg);
    store_step(L, st, s.step);
    lua_settop(L, 3);
  }
  if (recorded) nn_capture_host_call_done();
  return 0;
}

/* optim_adagrad(group, states): sum */
static int l_optim_adagrad(lua_State *L) {
  const char *op = "adagrad";
  int recorded = nnl_capture_call(L, 2);
  lua_Integer n = begin_step(L, op);
  nn_adagrad_options o = {group_number(L, 1, K_LR, op),
                          group_number(L, 1, K_LR_DECAY, op),
                          group_number(L, 1, K_WEIGHT_DECAY, op),
                          group_number(L, 1, K_INITIAL_ACCUMULATOR_VALUE, op),
                          group_number(L, 1, K_EPS, op),
                          group_flag(L, 1, K_MAXIMIZE)};
  for (lua_Integer i = 1; i <= n; i++) {
    nn_tensor *p = param_at(L, 3, i, op);
    if (!p) continue;
    int st = get_state(L, 2, i);
    nn_adagrad_state s = {state_step(L, st), state_tensor(L, st, K_SUM)};
    nn_tensor *before = s.sum;
    if (nn_adagrad_step(p, &s, &o) < 0) return nnl_engine_error(L);
    st = ensure_state(L, 2, i, st);
    store_new(L, st, K_SUM, s.sum, before);
    store_step(L, st, s.step);
    lua_settop(L, 3);
  }
  if (recorded) nn_capture_host_call_done();
  return 0;
}

/* ---- issue 13's: Adadelta, Adamax, NAdam, RAdam, ASGD, Rprop ---------------
   Each optim_<name>(group, states) reads the group's options, then steps
   every parameter with a gradient through step_one(L, p, i, st, options):
   i its place in group.params, st its state table (0: none yet); the
   state table is made (ensure_state) after a successful step only. */
typedef int (*param_step)(lua_State *L, nn_tensor *p, lua_Integer i, int st, const void *options);
static void each_param(lua_State *L, const char *op, int recorded, param_step step_one, const void *options) {
  lua_Integer n = (lua_Integer)lua_rawlen(L, 3);
  for (lua_Integer i = 1; i <= n; i++) {
    nn_tensor *p = param_at(L, 3, i, op);
    if (!p) continue;
    if (step_one(L, p, i, get_state(L, 2, i), options) < 0) nnl_engine_error(L);
    lua_settop(L, 3);
  }
  if (recorded) nn_capture_host_call_done();
}

static int adadelta_one(lua_State *L, nn_tensor *p, lua_Integer i, int st, const void *o) {
  nn_adadelta_state s = {state_step(L, st), state_tensor(L, st, K_SQUARE_AVG), state_tensor(L, st, K_ACC_DELTA)};
  nn_adadelta_state before = s;
  if (nn_adadelta_step(p, &s, o) < 0) return -1;
  st = ensure_state(L, 2, i, st);
  store_new(L, st, K_SQUARE_AVG, s.square_avg, before.square_avg);
  store_new(L, st, K_ACC_DELTA, s.acc_delta, before.acc_delta);
  store_step(L, st, s.step);
  return 0;
}

/* optim_adadelta(group, states): square_avg, acc_delta */
static int l_optim_adadelta(lua_State *L) {
  const char *op = "adadelta";
  int recorded = nnl_capture_call(L, 2);
  begin_step(L, op);
  nn_adadelta_options o = {group_number(L, 1, K_LR, op), group_number(L, 1, K_RHO, op),
                           group_number(L, 1, K_EPS, op), group_number(L, 1, K_WEIGHT_DECAY, op),
                           group_flag(L, 1, K_MAXIMIZE)};
  each_param(L, op, recorded, adadelta_one, &o);
  return 0;
}

static int adamax_one(lua_State *L, nn_tensor *p, lua_Integer i, int st, const void *o) {
  nn_adamax_state s = {state_step(L, st), state_tensor(L, st, K_EXP_AVG), state_tensor(L, st, K_EXP_INF)};
  nn_adamax_state before = s;
  if (nn_adamax_step(p, &s, o) < 0) return -1;
  st = ensure_state(L, 2, i, st);
  store_new(L, st, K_EXP_AVG, s.exp_avg, before.exp_avg);
  store_new(L, st, K_EXP_INF, s.exp_inf, before.exp_inf);
  store_step(L, st, s.step);
  return 0;
}

/* optim_adamax(group, states): exp_avg, exp_inf */
static int l_optim_adamax(lua_State *L) {
  const char *op = "adamax";
  int recorded = nnl_capture_call(L, 2);
  begin_step(L, op);
  nn_adamax_options o = {group_number(L, 1, K_LR, op), group_beta(L, 1, 1, op), group_beta(L, 1, 2, op),
                         group_number(L, 1, K_EPS, op), group_number(L, 1, K_WEIGHT_DECAY, op),
                         group_flag(L, 1, K_MAXIMIZE)};
  each_param(L, op, recorded, adamax_one, &o);
  return 0;
}

static int nadam_one(lua_State *L, nn_tensor *p, lua_Integer i, int st, const void *o) {
  nn_nadam_state s = {state_step(L, st), state_number(L, st, K_MU_PRODUCT, 1),
                      state_tensor(L, st, K_EXP_AVG), state_tensor(L, st, K_EXP_AVG_SQ)};
  nn_nadam_state before = s;
  if (nn_nadam_step(p, &s, o) < 0) return -1;
  st = ensure_state(L, 2, i, st);
  store_number(L, st, K_MU_PRODUCT, s.mu_product);
  store_new(L, st, K_EXP_AVG, s.exp_avg, before.exp_avg);
  store_new(L, st, K_EXP_AVG_SQ, s.exp_avg_sq, before.exp_avg_sq);
  store_step(L, st, s.step);
  return 0;
}

/* optim_nadam(group, states): mu_product (a number), exp_avg, exp_avg_sq */
static int l_optim_nadam(lua_State *L) {
  const char *op = "nadam";
  int recorded = nnl_capture_call(L, 2);
  begin_step(L, op);
  nn_nadam_options o = {group_number(L, 1, K_LR, op), group_beta(L, 1, 1, op), group_beta(L, 1, 2, op),
                        group_number(L, 1, K_EPS, op), group_number(L, 1, K_WEIGHT_DECAY, op),
                        group_number(L, 1, K_MOMENTUM_DECAY, op)};
  each_param(L, op, recorded, nadam_one, &o);
  return 0;
}

static int radam_one(lua_State *L, nn_tensor *p, lua_Integer i, int st, const void *o) {
  nn_radam_state s = {state_step(L, st), state_tensor(L, st, K_EXP_AVG), state_tensor(L, st, K_EXP_AVG_SQ)};
  nn_radam_state before = s;
  if (nn_radam_step(p, &s, o) < 0) return -1;
  st = ensure_state(L, 2, i, st);
  store_new(L, st, K_EXP_AVG, s.exp_avg, before.exp_avg);
  store_new(L, st, K_EXP_AVG_SQ, s.exp_avg_sq, before.exp_avg_sq);
  store_step(L, st, s.step);
  return 0;
}

/* optim_radam(group, states): exp_avg, exp_avg_sq */
static int l_optim_radam(lua_State *L) {
  const char *op = "radam";
  int recorded = nnl_capture_call(L, 2);
  begin_step(L, op);
  nn_radam_options o = {group_number(L, 1, K_LR, op), group_beta(L, 1, 1, op), group_beta(L, 1, 2, op),
                        group_number(L, 1, K_EPS, op), group_number(L, 1, K_WEIGHT_DECAY, op)};
  each_param(L, op, recorded, radam_one, &o);
  return 0;
}

static int asgd_one(lua_State *L, nn_tensor *p, lua_Integer i, int st, const void *o) {
  nn_asgd_state s = {state_step(L, st), state_number(L, st, K_ETA, (float)((const nn_asgd_options *)o)->lr), state_number(L, st, K_MU, 1),
                     state_tensor(L, st, K_AX)};
  nn_tensor *before = s.ax;
  if (nn_asgd_step(p, &s, o) < 0) return -1;
  st = ensure_state(L, 2, i, st);
  store_number(L, st, K_ETA, s.eta);
  store_number(L, st, K_MU, s.mu);
  store_new(L, st, K_AX, s.ax, before);
  store_step(L, st, s.step);
  return 0;
}

/* optim_asgd(group, states): eta, mu (numbers), ax */
static int l_optim_asgd(lua_State *L) {
  const char *op = "asgd";
  int recorded = nnl_capture_call(L, 2);
  begin_step(L, op);
  nn_asgd_options o = {group_number(L, 1, K_LR, op), group_number(L, 1, K_LAMBD, op),
                       group_number(L, 1, K_ALPHA, op), group_number(L, 1, K_T0, op),
                       group_number(L, 1, K_WEIGHT_DECAY, op), group_flag(L, 1, K_MAXIMIZE)};
  each_param(L, op, recorded, asgd_one, &o);
  return 0;
}

static int rprop_one(lua_State *L, nn_tensor *p, lua_Integer i, int st, const void *o) {
  nn_rprop_state s = {state_step(L, st), state_tensor(L, st, K_PREV), state_tensor(L, st, K_STEP_SIZE)};
  nn_rprop_state before = s;
  if (nn_rprop_step(p, &s, o) < 0) return -1;
  st = ensure_state(L, 2, i, st);
  store_new(L, st, K_PREV, s.prev, before.prev);
  store_new(L, st, K_STEP_SIZE, s.step_size, before.step_size);
  store_step(L, st, s.step);
  return 0;
}

/* optim_rprop(group, states): prev, step_size */
static int l_optim_rprop(lua_State *L) {
  const char *op = "rprop";
  int recorded = nnl_capture_call(L, 2);
  begin_step(L, op);
  nn_rprop_options o = {group_number(L, 1, K_LR, op),
                        group_pair(L, 1, K_ETAS, 1, op),
                        group_pair(L, 1, K_ETAS, 2, op),
                        group_pair(L, 1, K_STEP_SIZES, 1, op),
                        group_pair(L, 1, K_STEP_SIZES, 2, op),
                        group_flag(L, 1, K_MAXIMIZE)};
  each_param(L, op, recorded, rprop_one, &o);
  return 0;
}

/* Zeros (or, to_none, removes) the .grad of each tensor of the list at idx. */
static void zero_grads(lua_State *L, int idx, int to_none) {
  luaL_checktype(L, idx, LUA_TTABLE);
  /* A plan writes the gradients it was captured with: a gradient dropped
     here would be made anew, and another plan or an eager step would then
     leave the optimizer reading a different one. */
  if (to_none)
    nn_capture_refuse("capture: zero_grad(true) inside the step drops the gradients, whose "
                      "buffers the plan writes (zero_grad() zeroes them; the step runs eagerly)");
  lua_Integer n = (lua_Integer)lua_rawlen(L, idx);
  /* the list on the stack first, popped once: a training loop's every step comes here */
  int top = lua_gettop(L);
  luaL_checkstack(L, (int)(n < 1000 ? n : 1000), "zero_grad");
  for (lua_Integer first = 1; first <= n; first += 1000) {
    lua_Integer last = first + 999 < n ? first + 999 : n;
    for (lua_Integer i = first; i <= last; i++) lua_rawgeti(L, idx, i);
    for (lua_Integer i = first; i <= last; i++) {
      nn_tensor *p = nnl_check_tensor(L, top + 1 + (int)(i - first), "zero_grad");
      if (to_none) nn_set_grad(p, NULL);
      else nn_zero_grad_deferred(p);
    }
    lua_settop(L, top);
  }
}

/* zero_grads(params [, set_to_none]) */
static int l_zero_grads(lua_State *L) {
  zero_grads(L, 1, lua_toboolean(L, 2));
  return 0;
}

/* Optimizer:zero_grad([set_to_none]) and Optimizer:step([closure]) are C,
   as the step of every training loop calls them: no Lua call of their own,
   and no wrapper to check their arguments (they check them here). */
static int l_optimizer_zero_grad(lua_State *L) {
  nnl_check_method_args(L, "Optimizer", "zero_grad", 1, "set_to_none");
  luaL_checktype(L, 1, LUA_TTABLE);
  int to_none = lua_toboolean(L, 2);
  lua_settop(L, 1);
  get_key(L, 1, K_PARAM_GROUPS); /* 2 */
  for (lua_Integer i = 1; lua_geti(L, 2, i) != LUA_TNIL; i++) { /* ipairs */
    get_key(L, 3, K_PARAMS);
    zero_grads(L, 4, to_none);
    lua_settop(L, 2);
  }
  return 0;
}

/* step's upvalue after the keys: nn.enable_grad, which runs a closure with
   gradients on (and copes with coroutines). */
#define STEP_ENABLE_GRAD (K_COUNT + 1)

static int l_optimizer_step(lua_State *L) {
  nnl_check_method_args(L, "Optimizer", "step", 1, "closure");
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 2);
  if (!lua_isnil(L, 2)) { /* loss = nn.enable_grad(closure) */
    if (!lua_isfunction(L, 2)) {
      get_key(L, 1, K_NAME);
      nnl_error(L, "%s: step(closure): closure must be a function", luaL_tolstring(L, -1, NULL));
    }
    lua_pushvalue(L, lua_upvalueindex(STEP_ENABLE_GRAD));
    lua_pushvalue(L, 2);
    lua_call(L, 1, 1);
    lua_replace(L, 2);
  }
  get_key(L, 1, K_UPDATE);       /* 3 */
  get_key(L, 1, K_PARAM_GROUPS); /* 4 */
  get_key(L, 1, K_STATE);        /* 5 */
  for (lua_Integer i = 1; lua_geti(L, 4, i) != LUA_TNIL; i++) { /* update(group, self.state[i]) */
    lua_pushvalue(L, 3);
    lua_insert(L, -2);
    lua_geti(L, 5, i);
    lua_call(L, 2, 0);
  }
  lua_settop(L, 2);
  return 1; /* the closure's loss, or nil */
}

/* optimizer_step(enable_grad): Optimizer:step, given nn.enable_grad. */
static int l_make_optimizer_step(lua_State *L) {
  luaL_checktype(L, 1, LUA_TFUNCTION);
  luaL_checkstack(L, K_COUNT + 1, "optimizer_step");
  for (int k = 0; k < K_COUNT; k++) lua_pushstring(L, OPTIM_KEYS[k]);
  lua_pushvalue(L, 1);
  lua_pushcclosure(L, l_optimizer_step, K_COUNT + 1);
  return 1;
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
  /* the stacked norms' dtype: float64 if any, one half type when all are it, else float32 */
  nn_dtype dtype = NN_FLOAT32, first = NN_FLOAT32;
  int any = 0, one_half = 1;
  for (lua_Integer i = 0; i < n; i++) {
    nn_tensor *g = list[i]->grad;
    if (!g) continue;
    if (!any) first = g->dtype, any = 1;
    if (g->dtype == NN_FLOAT64) dtype = NN_FLOAT64;
    if (g->dtype != first || (g->dtype != NN_FLOAT16 && g->dtype != NN_BFLOAT16)) one_half = 0;
  }
  if (any && one_half) dtype = first;
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
    {"optim_adadelta", l_optim_adadelta}, {"optim_adamax", l_optim_adamax},
    {"optim_nadam", l_optim_nadam}, {"optim_radam", l_optim_radam},
    {"optim_asgd", l_optim_asgd}, {"optim_rprop", l_optim_rprop},
    {"clip_grad_norm", l_clip_grad_norm}, {"clip_grad_value", l_clip_grad_value},
    {"zero_grads", l_zero_grads}, {"optimizer_zero_grad", l_optimizer_zero_grad},
    {"optimizer_step", l_make_optimizer_step}, {NULL, NULL}};

void nnl_register_optim(lua_State *L) {
  /* more upvalues than the LUA_MINSTACK slots a C function is given */
  luaL_checkstack(L, K_COUNT + 1, "nnl_register_optim");
  for (int k = 0; k < K_COUNT; k++) lua_pushstring(L, OPTIM_KEYS[k]);
  lua_newtable(L); /* SGD_LISTS */
  lua_createtable(L, 0, 1);
  lua_pushliteral(L, "k");
  lua_setfield(L, -2, "__mode");
  lua_setmetatable(L, -2);
  luaL_setfuncs(L, optim_functions, K_COUNT + 1);
}

/* nn_losses.c: the binding's C functions for nn's losses beyond MSE and
 * BCE (those two are in nn_module.c). Each reads its arguments in the
 * order lua/nn/loss.lua passes them; class labels reach the engine as the
 * user wrote them, 1-based, with first_label = 1. */
#include <string.h>

#include "nn_binding.h"

/* reduction at idx: "mean" (also when absent), "sum", "none", and
   "batchmean" where allowed. */
static int check_reduction(lua_State *L, int idx, const char *op, int allow_batchmean) {
  const char *name = luaL_optstring(L, idx, "mean");
  int r = nn_reduction_from_name(name);
  if (r < 0 && allow_batchmean && strcmp(name, "batchmean") == 0) r = NN_REDUCTION_BATCHMEAN;
  if (r >= 0) return r;
  if (allow_batchmean)
    return nnl_error(L, "%s: reduction must be 'mean', 'batchmean', 'sum' or 'none', got '%s'", op,
                     name);
  return nnl_error(L, "%s: reduction must be 'mean', 'sum' or 'none', got '%s'", op, name);
}

/* A tensor at idx, or NULL for nil. */
static nn_tensor *opt_tensor(lua_State *L, int idx, const char *op) {
  return lua_isnoneornil(L, idx) ? NULL : nnl_check_tensor(L, idx, op);
}

/* A number at idx, or def when absent. */
static double opt_number(lua_State *L, int idx, const char *op, const char *what, double def) {
  if (lua_isnoneornil(L, idx)) return def;
  if (lua_type(L, idx) != LUA_TNUMBER)
    return nnl_error(L, "%s: %s must be a number, got %s", op, what, luaL_typename(L, idx));
  return lua_tonumber(L, idx);
}

/* l1_loss(input, target [, reduction]) */
static int l_l1_loss(lua_State *L) {
  nn_tensor *x = nnl_check_tensor(L, 1, "l1_loss"), *y = nnl_check_tensor(L, 2, "l1_loss");
  nnl_push_tensor(L, nn_l1_loss(x, y, (nn_reduction)check_reduction(L, 3, "l1_loss", 0)));
  return 1;
}

/* smooth_l1_loss(input, target [, reduction [, beta = 1]]) */
static int l_smooth_l1_loss(lua_State *L) {
  const char *op = "smooth_l1_loss";
  nn_tensor *x = nnl_check_tensor(L, 1, op), *y = nnl_check_tensor(L, 2, op);
  nn_reduction r = (nn_reduction)check_reduction(L, 3, op, 0);
  nnl_push_tensor(L, nn_smooth_l1_loss(x, y, r, opt_number(L, 4, op, "beta", 1.0)));
  return 1;
}

/* huber_loss(input, target [, reduction [, delta = 1]]) */
static int l_huber_loss(lua_State *L) {
  const char *op = "huber_loss";
  nn_tensor *x = nnl_check_tensor(L, 1, op), *y = nnl_check_tensor(L, 2, op);
  nn_reduction r = (nn_reduction)check_reduction(L, 3, op, 0);
  nnl_push_tensor(L, nn_huber_loss(x, y, r, opt_number(L, 4, op, "delta", 1.0)));
  return 1;
}

/* binary_cross_entropy_with_logits(input, target, weight, pos_weight [, reduction]) */
static int l_bce_with_logits_loss(lua_State *L) {
  const char *op = "binary_cross_entropy_with_logits";
  nn_tensor *x = nnl_check_tensor(L, 1, op), *y = nnl_check_tensor(L, 2, op);
  nn_tensor *w = opt_tensor(L, 3, op), *pw = opt_tensor(L, 4, op);
  nn_reduction r = (nn_reduction)check_reduction(L, 5, op, 0);
  nnl_push_tensor(L, nn_bce_with_logits_loss(x, y, w, pw, r));
  return 1;
}

/* The options of cross_entropy and nll_loss from weight, reduction,
   ignore_index and label_smoothing at idx.. idx+3. */
static nn_class_loss_options class_options(lua_State *L, int idx, const char *op) {
  nn_class_loss_options o = {opt_tensor(L, idx, op), NN_REDUCTION_MEAN, -100, 0, 1};
  o.reduction = (nn_reduction)check_reduction(L, idx + 1, op, 0);
  if (!lua_isnoneornil(L, idx + 2)) {
    int ok;
    lua_Integer v = lua_tointegerx(L, idx + 2, &ok);
    if (!ok || lua_type(L, idx + 2) != LUA_TNUMBER)
      nnl_error(L, "%s: ignore_index must be an integer, got %s", op,
                lua_type(L, idx + 2) == LUA_TNUMBER ? lua_tostring(L, idx + 2)
                                                     : luaL_typename(L, idx + 2));
    o.ignore_index = (int64_t)v;
  }
  o.label_smoothing = opt_number(L, idx + 3, op, "label_smoothing", 0.0);
  return o;
}

/* cross_entropy(input, target, weight [, reduction [, ignore_index = -100
   [, label_smoothing = 0]]]) */
static int l_cross_entropy(lua_State *L) {
  const char *op = "cross_entropy";
  nn_tensor *x = nnl_check_tensor(L, 1, op), *y = nnl_check_tensor(L, 2, op);
  nn_class_loss_options o = class_options(L, 3, op);
  nnl_push_tensor(L, nn_cross_entropy_loss(x, y, &o));
  return 1;
}

/* nll_loss(input, target, weight [, reduction [, ignore_index = -100]]) */
static int l_nll_loss(lua_State *L) {
  const char *op = "nll_loss";
  nn_tensor *x = nnl_check_tensor(L, 1, op), *y = nnl_check_tensor(L, 2, op);
  lua_settop(L, 5); /* no label_smoothing */
  nn_class_loss_options o = class_options(L, 3, op);
  nnl_push_tensor(L, nn_nll_loss(x, y, &o));
  return 1;
}

/* kl_div(input, target [, reduction [, log_target = false]]) */
static int l_kl_div(lua_State *L) {
  nn_tensor *x = nnl_check_tensor(L, 1, "kl_div"), *y = nnl_check_tensor(L, 2, "kl_div");
  int r = check_reduction(L, 3, "kl_div", 1);
  nnl_push_tensor(L, nn_kl_div_loss(x, y, r, lua_toboolean(L, 4)));
  return 1;
}

/* A loss module's forward(self, input, target), as a C closure made by
   loss_forward(fn, class_name, field...): fn(input, target, self[field]...).
   A training step calls it every time: written in C it costs no Lua call
   and checks its own arguments (no wrapper). Upvalues: fn, the class's
   name, then the fields' names. */
enum { FORWARD_FN = 1, FORWARD_CLASS, FORWARD_FIELDS };
static int l_loss_forward_call(lua_State *L) {
  nnl_check_method_args(L, lua_tostring(L, lua_upvalueindex(FORWARD_CLASS)), "forward", 2,
                        "input, target");
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 3);
  lua_pushvalue(L, lua_upvalueindex(FORWARD_FN));
  lua_pushvalue(L, 2);
  lua_pushvalue(L, 3);
  int n = 0;
  while (lua_type(L, lua_upvalueindex(FORWARD_FIELDS + n)) == LUA_TSTRING) {
    lua_pushvalue(L, lua_upvalueindex(FORWARD_FIELDS + n++));
    lua_gettable(L, 1);
  }
  lua_call(L, 2 + n, 1);
  return 1;
}

/* The same, where fn is a C function without upvalues (every built-in
   loss's): its arguments are laid out where it reads them and it runs in
   this frame, without a lua_call (about 200 instructions a loss). */
static int l_loss_forward_direct(lua_State *L) {
  nnl_check_method_args(L, lua_tostring(L, lua_upvalueindex(FORWARD_CLASS)), "forward", 2,
                        "input, target");
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 3);
  int n = 0;
  while (lua_type(L, lua_upvalueindex(FORWARD_FIELDS + n)) == LUA_TSTRING) {
    lua_pushvalue(L, lua_upvalueindex(FORWARD_FIELDS + n++));
    lua_gettable(L, 1);
  }
  lua_remove(L, 1); /* input, target, the fields: fn's arguments */
  return lua_tocfunction(L, lua_upvalueindex(FORWARD_FN))(L);
}

static int l_loss_forward(lua_State *L) {
  luaL_checktype(L, 1, LUA_TFUNCTION);
  luaL_checkstring(L, 2);
  int top = lua_gettop(L);
  if (top > 2 + 16) return nnl_error(L, "loss_forward: at most 16 fields");
  for (int i = 3; i <= top; i++) luaL_checkstring(L, i);
  int direct = 0;
  if (lua_tocfunction(L, 1)) {
    if (lua_getupvalue(L, 1, 1)) lua_pop(L, 1);
    else direct = 1;
  }
  lua_pushcclosure(L, direct ? l_loss_forward_direct : l_loss_forward_call, top);
  return 1;
}

/* ctc_loss(log_probs (T, N, C), targets (N, S) int64 0-based, input_lengths,
   target_lengths (N) int64, blank (0-based), zero_infinity): the losses (N) */
static int l_ctc_loss(lua_State *L) {
  const char *op = "ctc_loss";
  nn_tensor *lp = nnl_check_tensor(L, 1, op), *targets = nnl_check_tensor(L, 2, op);
  nn_tensor *in_len = nnl_check_tensor(L, 3, op), *tg_len = nnl_check_tensor(L, 4, op);
  lua_Integer blank = luaL_checkinteger(L, 5);
  nnl_push_tensor(L, nn_ctc_loss(lp, targets, in_len, tg_len, (int64_t)blank, lua_toboolean(L, 6)));
  return 1;
}

static const luaL_Reg loss_functions[] = {
    {"loss_forward", l_loss_forward},
    {"l1_loss", l_l1_loss},
    {"smooth_l1_loss", l_smooth_l1_loss},
    {"huber_loss", l_huber_loss},
    {"binary_cross_entropy_with_logits", l_bce_with_logits_loss},
    {"cross_entropy", l_cross_entropy},
    {"nll_loss", l_nll_loss},
    {"kl_div", l_kl_div},
    {"ctc_loss", l_ctc_loss},
    {NULL, NULL}};

void nnl_register_losses(lua_State *L) { luaL_setfuncs(L, loss_functions, 0); }

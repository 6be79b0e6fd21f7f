/* nn_activations.c: the binding's C functions for nn's activations
 * (lua/nn/activations.lua checks the arguments a user passes and calls
 * these). */
#include "nn_binding.h"

/* activation(op, x [, a [, b]]): op is a number from activation_ops. */
static int l_activation(lua_State *L) {
  int ok;
  lua_Integer op = lua_tointegerx(L, 1, &ok);
  if (!ok || op < 0 || op >= NN_ACT_COUNT)
    return nnl_error(L, "activation: unknown activation %s", luaL_tolstring(L, 1, NULL));
  const char *name = nn_activation_op_name((nn_activation_op)op);
  nn_tensor *x = nnl_check_tensor(L, 2, name);
  double a = luaL_optnumber(L, 3, 0), b = luaL_optnumber(L, 4, 0);
  nnl_push_tensor(L, nn_activation((nn_activation_op)op, x, a, b));
  return 1;
}

/* softmax(x, dim [, log]): dim 1-based or negative from the end. */
static int l_softmax(lua_State *L) {
  int log_form = lua_toboolean(L, 3);
  const char *name = log_form ? "log_softmax" : "softmax";
  nn_tensor *x = nnl_check_tensor(L, 1, name);
  nnl_push_tensor(L, nn_softmax(x, nnl_check_dim(L, 2, name), log_form));
  return 1;
}

/* prelu(x, weight) */
static int l_prelu(lua_State *L) {
  nn_tensor *x = nnl_check_tensor(L, 1, "prelu"), *w = nnl_check_tensor(L, 2, "prelu");
  nnl_push_tensor(L, nn_prelu(x, w));
  return 1;
}

/* The result of a front that may decline (made: 1 made, 0 declined, -1
   error): the tensor, nil (the caller makes it from ops) or the error. */
static int push_made(lua_State *L, int made, nn_tensor *t) {
  if (made < 0) return nnl_engine_error(L);
  if (made == 0) lua_pushnil(L);
  else nnl_push_tensor(L, t);
  return 1;
}

/* dropout_noise(x, p): dropout's noise for x (nn_dropout_noise), or nil
   where the caller must make it from ops. */
static int l_dropout_noise(lua_State *L) {
  nn_tensor *x = nnl_check_tensor(L, 1, "dropout"), *noise = NULL;
  int made = nn_dropout_noise(x, luaL_checknumber(L, 2), &noise);
  return push_made(L, made, noise);
}

/* layer_norm(x, n, weight, bias, eps): nn_layer_norm (weight and bias may
   be nil), or nil where the caller must make it from ops. */
static int l_layer_norm(lua_State *L) {
  nn_tensor *x = nnl_check_tensor(L, 1, "layer_norm"), *out = NULL;
  lua_Integer n = luaL_checkinteger(L, 2);
  nn_tensor *w = lua_isnil(L, 3) ? NULL : nnl_check_tensor(L, 3, "layer_norm");
  nn_tensor *b = lua_isnil(L, 4) ? NULL : nnl_check_tensor(L, 4, "layer_norm");
  int made = nn_layer_norm(x, (int64_t)n, w, b, luaL_checknumber(L, 5), &out);
  return push_made(L, made, out);
}

static const luaL_Reg functions[] = {{"activation", l_activation}, {"softmax", l_softmax},
                                     {"prelu", l_prelu},           {"dropout_noise", l_dropout_noise},
                                     {"layer_norm", l_layer_norm}, {NULL, NULL}};

void nnl_register_activations(lua_State *L) {
  luaL_setfuncs(L, functions, 0);
  /* activation_ops: name -> the engine's number, for activation() */
  lua_createtable(L, 0, NN_ACT_COUNT);
  for (int op = 0; op < NN_ACT_COUNT; op++) {
    lua_pushinteger(L, op);
    lua_setfield(L, -2, nn_activation_op_name((nn_activation_op)op));
  }
  lua_setfield(L, -2, "activation_ops");
}

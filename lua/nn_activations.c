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

static const luaL_Reg functions[] = {
    {"activation", l_activation}, {"softmax", l_softmax}, {"prelu", l_prelu}, {NULL, NULL}};

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

/* nn_rnn.c: the binding's C function of the recurrent layers
 * (lua/nn/rnn_layers.lua checks what a user passes and calls it). */
#include "nn_binding.h"

#include <string.h>

/* rnn_layer(mode, x_gates, state0, weights, batch_sizes, reverse):
   mode "rnn_tanh", "rnn_relu", "lstm" or "gru"; see nn_rnn_layer (nn.h). */
static int l_rnn_layer(lua_State *L) {
  static const char *const modes[] = {"rnn_tanh", "rnn_relu", "lstm", "gru", NULL};
  int mode = luaL_checkoption(L, 1, NULL, modes);
  const char *op = modes[mode];
  nn_tensor *x = nnl_check_tensor(L, 2, op), *state = nnl_check_tensor(L, 3, op);
  nn_tensor *weights = nnl_check_tensor(L, 4, op), *sizes = nnl_check_tensor(L, 5, op);
  nnl_push_tensor(L, nn_rnn_layer((nn_rnn_mode)mode, x, state, weights, sizes, lua_toboolean(L, 6)));
  return 1;
}

static const luaL_Reg functions[] = {{"rnn_layer", l_rnn_layer}, {NULL, NULL}};

void nnl_register_rnn(lua_State *L) { luaL_setfuncs(L, functions, 0); }

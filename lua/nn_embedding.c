/* nn_embedding.c: the core functions behind nn.F.embedding and
 * nn.Embedding (lua/nn/attention_layers.lua). Indices count from 1, as
 * every index a Lua user sees. */
#include "nn_binding.h"

#define LUA_BASE 1

/* embedding(weight, indices, padding_idx (0-based, or nil), scale_grad_by_freq) */
static int l_embedding(lua_State *L) {
  nnl_check_nargs(L, 0, 4, "embedding", "weight, indices, padding_idx, scale_grad_by_freq");
  nn_tensor *weight = nnl_check_tensor(L, 1, "embedding");
  nn_tensor *indices = nnl_check_tensor(L, 2, "embedding");
  lua_Integer padding = luaL_optinteger(L, 3, -1);
  int scale = lua_toboolean(L, 4);
  nnl_push_tensor(L, nn_embedding(weight, indices, (int64_t)padding, scale, LUA_BASE));
  return 1;
}

/* embedding_renorm_(weight, indices, max_norm, norm_type) */
static int l_embedding_renorm(lua_State *L) {
  nnl_check_nargs(L, 0, 4, "embedding_renorm_", "weight, indices, max_norm, norm_type");
  nn_tensor *weight = nnl_check_tensor(L, 1, "embedding");
  nn_tensor *indices = nnl_check_tensor(L, 2, "embedding");
  double max_norm = luaL_checknumber(L, 3), norm_type = luaL_checknumber(L, 4);
  if (nn_embedding_renorm_(weight, indices, max_norm, norm_type, LUA_BASE) < 0) return nnl_engine_error(L);
  lua_settop(L, 1);
  return 1;
}

static const luaL_Reg functions[] = {{"embedding", l_embedding}, {"embedding_renorm_", l_embedding_renorm},
                                     {NULL, NULL}};

void nnl_register_embedding(lua_State *L) { luaL_setfuncs(L, functions, 0); }

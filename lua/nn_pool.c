/* nn_pool.c: the binding's C functions for pooling, upsampling and batch
 * normalisation (lua/nn/pool_layers.lua checks what a user passes and
 * calls these with every argument in place). */
#include "nn_binding.h"

/* A tensor at idx, or NULL for nil. */
static nn_tensor *optional_tensor(lua_State *L, int idx, const char *op) {
  return lua_isnoneornil(L, idx) ? NULL : nnl_check_tensor(L, idx, op);
}

/* pool2d(x, kind, kh, kw, sh, sw, ph, pw, dh, dw, ceil_mode, count_include_pad,
   divisor_override, return_indices) for max (0) and avg (1);
   pool2d(x, kind, out_h, out_w, ..., return_indices) for adaptive max (2)
   and avg (3). Returns the output, and the 1-based indices when asked. */
static int l_pool2d(lua_State *L) {
  nn_pool2d_options o = {0};
  lua_Integer kind = luaL_checkinteger(L, 2);
  if (kind < NN_POOL_MAX || kind > NN_POOL_ADAPTIVE_AVG) return nnl_error(L, "pool2d: unknown kind %d", (int)kind);
  o.kind = (nn_pool_kind)kind;
  nn_tensor *x = nnl_check_tensor(L, 1, "pool2d");
  if (o.kind == NN_POOL_ADAPTIVE_MAX || o.kind == NN_POOL_ADAPTIVE_AVG) {
    o.output_size[0] = luaL_checkinteger(L, 3), o.output_size[1] = luaL_checkinteger(L, 4);
  } else {
    int64_t *pairs[4] = {o.kernel, o.stride, o.padding, o.dilation};
    for (int k = 0; k < 4; k++)
      pairs[k][0] = luaL_checkinteger(L, 3 + 2 * k), pairs[k][1] = luaL_checkinteger(L, 4 + 2 * k);
    o.ceil_mode = lua_toboolean(L, 11);
    o.count_include_pad = lua_toboolean(L, 12);
    o.divisor_override = luaL_optinteger(L, 13, 0);
  }
  int want_indices = lua_toboolean(L, 14);
  nn_tensor *indices = NULL;
  nnl_push_tensor(L, nn_pool2d(x, &o, want_indices ? &indices : NULL, 1));
  if (!want_indices) return 1;
  nnl_push_tensor(L, indices);
  return 2;
}

/* upsample2d(x, bilinear, out_h, out_w, scale_h, scale_w, align_corners) */
static int l_upsample2d(lua_State *L) {
  nn_tensor *x = nnl_check_tensor(L, 1, "interpolate");
  nnl_push_tensor(L, nn_upsample2d(x, lua_toboolean(L, 2), luaL_checkinteger(L, 3), luaL_checkinteger(L, 4),
                                   luaL_optnumber(L, 5, 0), luaL_optnumber(L, 6, 0), lua_toboolean(L, 7)));
  return 1;
}

/* batch_norm(x, weight, bias, running_mean, running_var, training, momentum, eps), or
   batch_norm_relu (the same arguments): nn_batch_norm or nn_batch_norm_relu */
static int batch_norm_call(lua_State *L, int relu) {
  const char *op = "batch_norm";
  nn_tensor *x = nnl_check_tensor(L, 1, op);
  nn_tensor *w = optional_tensor(L, 2, op), *b = optional_tensor(L, 3, op);
  nn_tensor *rm = optional_tensor(L, 4, op), *rv = optional_tensor(L, 5, op);
  int training = lua_toboolean(L, 6);
  double momentum = luaL_checknumber(L, 7), eps = luaL_checknumber(L, 8);
  nnl_push_tensor(L, relu ? nn_batch_norm_relu(x, w, b, rm, rv, training, momentum, eps)
                          : nn_batch_norm(x, w, b, rm, rv, training, momentum, eps));
  return 1;
}

static int l_batch_norm(lua_State *L) { return batch_norm_call(L, 0); }
static int l_batch_norm_relu(lua_State *L) { return batch_norm_call(L, 1); }

static const luaL_Reg pool_functions[] = {
    {"pool2d", l_pool2d}, {"upsample2d", l_upsample2d}, {"batch_norm", l_batch_norm},
    {"batch_norm_relu", l_batch_norm_relu}, {NULL, NULL}};

void nnl_register_pool(lua_State *L) { luaL_setfuncs(L, pool_functions, 0); }

/* nn_conv.c: the binding of the convolution fronts (engine/src/conv.c).
 * lua/nn/conv_layers.lua reads a user's arguments (ints or pairs, "same",
 * padding modes, unbatched inputs) and calls these with plain integers. */
#include "nn_binding.h"

#include <string.h>

static int64_t int_arg(lua_State *L, int idx, const char *op) {
  int ok = 0;
  lua_Integer v = lua_tointegerx(L, idx, &ok);
  if (!ok) return nnl_error(L, "%s: argument %d must be an integer", op, idx);
  return (int64_t)v;
}

static void pairs_from(lua_State *L, int idx, const char *op, int count, int64_t (*out)[2]) {
  for (int i = 0; i < count; i++) {
    out[i][0] = int_arg(L, idx + 2 * i, op);
    out[i][1] = int_arg(L, idx + 2 * i + 1, op);
  }
}

/* conv2d(op, x, w, b|nil, sh, sw, ph, pw, ph_end, pw_end, dh, dw, groups);
   conv_transpose2d(op, x, w, b|nil, sh, sw, ph, pw, oph, opw, dh, dw, groups) */
static int convolution(lua_State *L, int transposed) {
  nn_conv_options o;
  memset(&o, 0, sizeof o);
  o.op = luaL_checkstring(L, 1);
  nn_tensor *x = nnl_check_tensor(L, 2, o.op), *w = nnl_check_tensor(L, 3, o.op);
  nn_tensor *b = lua_isnil(L, 4) ? NULL : nnl_check_tensor(L, 4, o.op);
  int64_t v[4][2];
  pairs_from(L, 5, o.op, 4, v);
  memcpy(o.stride, v[0], sizeof o.stride);
  memcpy(o.padding, v[1], sizeof o.padding);
  memcpy(transposed ? o.output_padding : o.padding_end, v[2], sizeof o.padding_end);
  memcpy(o.dilation, v[3], sizeof o.dilation);
  o.groups = int_arg(L, 13, o.op);
  nnl_push_tensor(L, transposed ? nn_conv_transpose2d(x, w, b, &o) : nn_conv2d(x, w, b, &o));
  return 1;
}
static int l_conv2d(lua_State *L) { return convolution(L, 0); }
static int l_conv_transpose2d(lua_State *L) { return convolution(L, 1); }

/* unfold(x, kh, kw, dh, dw, ph, pw, sh, sw); fold(x, oh, ow, kh, kw, dh, dw, ph, pw, sh, sw) */
static int patches(lua_State *L, int fold) {
  const char *op = fold ? "fold" : "unfold";
  nn_tensor *x = nnl_check_tensor(L, 1, op);
  nn_patch_options p;
  memset(&p, 0, sizeof p);
  int64_t v[5][2];
  pairs_from(L, 2, op, fold ? 5 : 4, v);
  int k = 0;
  if (fold) memcpy(p.output_size, v[k++], sizeof p.output_size);
  memcpy(p.kernel, v[k++], sizeof p.kernel);
  memcpy(p.dilation, v[k++], sizeof p.dilation);
  memcpy(p.padding, v[k++], sizeof p.padding);
  memcpy(p.stride, v[k++], sizeof p.stride);
  nnl_push_tensor(L, fold ? nn_fold(x, &p) : nn_unfold(x, &p));
  return 1;
}
static int l_unfold(lua_State *L) { return patches(L, 0); }
static int l_fold(lua_State *L) { return patches(L, 1); }

static const luaL_Reg functions[] = {{"conv2d", l_conv2d},
                                     {"conv_transpose2d", l_conv_transpose2d},
                                     {"unfold", l_unfold},
                                     {"fold", l_fold},
                                     {NULL, NULL}};

void nnl_register_conv(lua_State *L) { luaL_setfuncs(L, functions, 0); }

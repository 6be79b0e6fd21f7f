/* nn_autograd.c: the engine's autograd passes and modes for nn/autograd.lua
 * (issue 12), as nn._C functions:
 *   grad(outputs, inputs, grad_outputs|nil, retain, create, allow_unused)
 *       -> a list of gradients (nil where unused), with its length in n
 *   set_detect_anomaly(on), is_anomaly_enabled()
 *   function_attach(out, name, input, backward) -> out, now with a node
 *       whose backward calls backward(grad, output) -> gradient or nil
 * Lua code that runs inside backward (a Function's backward) runs on the
 * thread that started the pass, protected, as hooks do (nn_hooks.c). */
#include <stdlib.h>
#include <string.h>

#include "nn_binding.h"

extern lua_State *nnl_backward_state;
extern int nnl_hook_raised;

/* The tensors of the list at idx (a Lua sequence of n tensors) into ts. */
static nn_tensor **tensor_list(lua_State *L, int idx, int n, const char *what, int holes) {
  nn_tensor **ts = lua_newuserdatauv(L, (size_t)(n > 0 ? n : 1) * sizeof *ts, 0);
  for (int i = 0; i < n; i++) {
    lua_geti(L, idx, i + 1);
    ts[i] = nnl_to_tensor(L, -1);
    if (!ts[i] && !(holes && lua_isnil(L, -1)))
      nnl_error(L, "grad: %s[%d] must be a tensor, got %s", what, i + 1, luaL_typename(L, -1));
    lua_pop(L, 1);
  }
  return ts;
}

/* The pass's result, raising a Lua hook's or function's error as it is. */
static int pass_status(lua_State *L, int status) {
  if (status < 0 && nnl_hook_raised) {
    nnl_hook_raised = 0;
    lua_pushstring(L, nn_error());
    return lua_error(L);
  }
  if (status < 0) return nnl_engine_error(L);
  return 0;
}

static int l_grad(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  luaL_checktype(L, 2, LUA_TTABLE);
  int n_out = (int)luaL_len(L, 1), n_in = (int)luaL_len(L, 2);
  nn_tensor **outputs = tensor_list(L, 1, n_out, "outputs", 0);
  nn_tensor **inputs = tensor_list(L, 2, n_in, "inputs", 0);
  nn_tensor **grad_outputs = NULL;
  if (!lua_isnoneornil(L, 3)) {
    luaL_checktype(L, 3, LUA_TTABLE);
    grad_outputs = tensor_list(L, 3, n_out, "grad_outputs", 1);
  }
  nn_grad_options o = {lua_toboolean(L, 4), lua_toboolean(L, 5), lua_toboolean(L, 6)};
  nn_tensor **results = lua_newuserdatauv(L, (size_t)(n_in > 0 ? n_in : 1) * sizeof *results, 0);
  lua_State *outer = nnl_backward_state;
  nnl_backward_state = L;
  nnl_hook_raised = 0;
  int status = nn_grad(n_out, outputs, grad_outputs, n_in, inputs, &o, results);
  nnl_backward_state = outer;
  pass_status(L, status);
  lua_createtable(L, n_in, 1);
  for (int i = 0; i < n_in; i++) {
    if (!results[i]) continue;
    nnl_push_tensor(L, results[i]);
    lua_seti(L, -2, i + 1);
  }
  lua_pushinteger(L, n_in);
  lua_setfield(L, -2, "n");
  return 1;
}

/* ---- anomaly mode ------------------------------------------------------ */
static lua_State *anomaly_state;

/* file:line of the user's code now running (nnl_where's), malloc'd. */
static char *anomaly_where(void) {
  lua_State *L = anomaly_state;
  if (!L || !lua_checkstack(L, 4)) return NULL;
  nnl_where(L);
  size_t len;
  const char *s = lua_tolstring(L, -1, &len);
  while (len > 0 && (s[len - 1] == ' ' || s[len - 1] == ':')) len--;
  char *copy = len ? malloc(len + 1) : NULL;
  if (copy) {
    memcpy(copy, s, len);
    copy[len] = '\0';
  }
  lua_pop(L, 1);
  return copy;
}

static int l_set_detect_anomaly(lua_State *L) {
  int on = lua_toboolean(L, 1);
  lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_MAINTHREAD);
  anomaly_state = on ? L : NULL;
  lua_pop(L, 1);
  nn_set_detect_anomaly(on, on ? anomaly_where : NULL);
  return 0;
}

static int l_is_anomaly_enabled(lua_State *L) {
  lua_pushboolean(L, nn_detect_anomaly_enabled());
  return 1;
}

/* ---- a user's function ------------------------------------------------- */
typedef struct {
  lua_State *main;
  int ref; /* backward(grad, output), in the registry */
} lua_function;

static void function_free(void *ctx) {
  lua_function *f = ctx;
  luaL_unref(f->main, LUA_REGISTRYINDEX, f->ref);
  free(f);
}

static int call_protected(lua_State *L) {
  lua_function *f = lua_touserdata(L, 1);
  nn_tensor **result = lua_touserdata(L, 4);
  lua_rawgeti(L, LUA_REGISTRYINDEX, f->ref);
  nnl_push_tensor(L, nn_retain(lua_touserdata(L, 2)));
  nnl_push_tensor(L, nn_retain(lua_touserdata(L, 3)));
  lua_call(L, 2, 1);
  if (!lua_isnil(L, -1)) {
    nn_tensor *t = nnl_to_tensor(L, -1);
    if (!t) return luaL_error(L, "function backward: returned a %s", luaL_typename(L, -1));
    *result = nn_retain(t);
  }
  return 0;
}

static int run_function(void *ctx, nn_tensor *grad, nn_tensor *output, nn_tensor **grad_input) {
  lua_State *L = nnl_backward_state;
  if (!L) {
    nn_error_set("Function: backward was started outside Lua, which cannot run a Lua function");
    return -1;
  }
  if (!lua_checkstack(L, 8)) {
    nn_error_set("Function: Lua's stack is full");
    return -1;
  }
  lua_pushcfunction(L, call_protected);
  lua_pushlightuserdata(L, ctx);
  lua_pushlightuserdata(L, grad);
  lua_pushlightuserdata(L, output);
  lua_pushlightuserdata(L, grad_input);
  if (lua_pcall(L, 4, 0, 0) == LUA_OK) return 0;
  const char *msg = lua_tostring(L, -1);
  nn_error_set("%s", msg ? msg : "Function: backward raised an error that is not a string");
  nnl_hook_raised = 1;
  lua_pop(L, 1);
  return -1;
}

static int l_function_attach(lua_State *L) {
  nn_tensor *out = nnl_check_tensor(L, 1, "Function");
  const char *name = luaL_checkstring(L, 2);
  nn_tensor *input = nnl_check_tensor(L, 3, "Function");
  luaL_checktype(L, 4, LUA_TFUNCTION);
  lua_function *f = malloc(sizeof *f);
  if (!f) return nnl_error(L, "%s: out of memory", name);
  lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_MAINTHREAD);
  f->main = lua_tothread(L, -1);
  lua_pop(L, 1);
  lua_pushvalue(L, 4);
  f->ref = luaL_ref(L, LUA_REGISTRYINDEX);
  if (nn_function_attach(out, name, input, run_function, f, function_free) < 0)
    return nnl_engine_error(L);
  lua_settop(L, 1);
  return 1;
}

static const luaL_Reg autograd_functions[] = {{"grad", l_grad},
                                              {"set_detect_anomaly", l_set_detect_anomaly},
                                              {"is_anomaly_enabled", l_is_anomaly_enabled},
                                              {"function_attach", l_function_attach},
                                              {NULL, NULL}};

void nnl_register_autograd(lua_State *L) { luaL_setfuncs(L, autograd_functions, 0); }

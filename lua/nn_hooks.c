/* nn_hooks.c: Lua functions as the engine's gradient hooks and
 * end-of-backward callbacks (nn.h, "hooks"), for nn's own Lua modules:
 *   nn._C.add_hook(t, "grad" | "post_accumulate", fn) -> id
 *   nn._C.remove_hook(t, id) -> true when t had it
 *   nn._C.queue_backward_callback(fn)   (from a hook: fn(failed) at the end)
 * A "grad" hook's fn(grad) may return a tensor that replaces the gradient;
 * a "post_accumulate" hook's fn(t.grad) returns nothing. DataParallel
 * starts its communication from them; Tensor:register_hook and
 * Tensor:retain_grad (nn/autograd.lua) are built on the same two functions.
 *
 * A hook runs inside the engine's backward, which must not be left by a
 * Lua error (longjmp): every call into Lua is protected, and an error
 * becomes the hook's -1 and message, which backward returns and
 * t:backward() raises. */
#include <stdlib.h>

#include "nn_binding.h"

lua_State *nnl_backward_state;
int nnl_hook_raised;

typedef struct {
  lua_State *main; /* the state's main thread: the registry's owner */
  int ref;         /* the function, in the registry */
} lua_hook;

static void hook_free(void *ctx) {
  lua_hook *h = ctx;
  luaL_unref(h->main, LUA_REGISTRYINDEX, h->ref);
  free(h);
}

/* In protected mode: fn(grad), and a replacement when one is wanted. */
static int call_protected(lua_State *L) {
  lua_hook *h = lua_touserdata(L, 1);
  nn_tensor *grad = lua_touserdata(L, 2);
  nn_tensor **replace = lua_touserdata(L, 3);
  lua_rawgeti(L, LUA_REGISTRYINDEX, h->ref);
  if (grad) nnl_push_tensor(L, nn_retain(grad));
  else lua_pushboolean(L, lua_toboolean(L, 4)); /* a callback's "failed" */
  lua_call(L, 1, 1);
  if (replace && !lua_isnil(L, -1)) {
    nn_tensor *t = nnl_to_tensor(L, -1);
    if (!t) return luaL_error(L, "hook: returned a %s, expected a tensor (the new gradient) or nothing",
                              luaL_typename(L, -1));
    *replace = nn_retain(t);
  }
  return 0;
}

/* Calls the hook's function on the thread running t:backward(); 0, or -1
   with the Lua error as the engine's message. */
static int call(lua_hook *h, nn_tensor *grad, nn_tensor **replace, int failed) {
  lua_State *L = nnl_backward_state;
  if (!L) {
    nn_error_set("hook: backward was started outside Lua, which cannot run a Lua hook");
    return -1;
  }
  if (!lua_checkstack(L, 8)) {
    nn_error_set("hook: Lua's stack is full");
    return -1;
  }
  lua_pushcfunction(L, call_protected);
  lua_pushlightuserdata(L, h);
  lua_pushlightuserdata(L, grad);
  lua_pushlightuserdata(L, replace);
  lua_pushboolean(L, failed);
  if (lua_pcall(L, 4, 0, 0) == LUA_OK) return 0;
  const char *msg = lua_tostring(L, -1);
  nn_error_set("%s", msg ? msg : "hook: raised an error that is not a string");
  nnl_hook_raised = 1;
  lua_pop(L, 1);
  return -1;
}

static int run_hook(void *ctx, nn_tensor *grad, nn_tensor **replace) {
  return call(ctx, grad, replace, 0);
}

static int run_callback(void *ctx, int failed) {
  int status = call(ctx, NULL, NULL, failed);
  hook_free(ctx);
  return status;
}

/* A registry reference to the function at idx, kept by a new lua_hook. */
static lua_hook *new_lua_hook(lua_State *L, int idx, const char *op) {
  luaL_checktype(L, idx, LUA_TFUNCTION);
  lua_hook *h = malloc(sizeof *h);
  if (!h) {
    nnl_error(L, "%s: out of memory", op);
    return NULL;
  }
  lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_MAINTHREAD);
  h->main = lua_tothread(L, -1);
  lua_pop(L, 1);
  lua_pushvalue(L, idx);
  h->ref = luaL_ref(L, LUA_REGISTRYINDEX);
  return h;
}

static int l_add_hook(lua_State *L) {
  nn_tensor *t = nnl_check_tensor(L, 1, "add_hook");
  static const char *const kinds[] = {"grad", "post_accumulate", NULL};
  int kind = luaL_checkoption(L, 2, NULL, kinds);
  lua_hook *h = new_lua_hook(L, 3, "add_hook");
  int64_t id = nn_add_hook(t, kind == 0 ? NN_HOOK_GRAD : NN_HOOK_POST_ACCUMULATE, run_hook, h, hook_free);
  if (id < 0) return nnl_engine_error(L);
  lua_pushinteger(L, (lua_Integer)id);
  return 1;
}

static int l_remove_hook(lua_State *L) {
  nn_tensor *t = nnl_check_tensor(L, 1, "remove_hook");
  lua_pushboolean(L, nn_remove_hook(t, (int64_t)luaL_checkinteger(L, 2)));
  return 1;
}

static int l_queue_backward_callback(lua_State *L) {
  lua_hook *h = new_lua_hook(L, 1, "queue_backward_callback");
  if (nn_queue_backward_callback(run_callback, h) < 0) {
    hook_free(h);
    return nnl_engine_error(L);
  }
  return 0;
}

static const luaL_Reg hook_functions[] = {{"add_hook", l_add_hook},
                                          {"remove_hook", l_remove_hook},
                                          {"queue_backward_callback", l_queue_backward_callback},
                                          {NULL, NULL}};

void nnl_register_hooks(lua_State *L) { luaL_setfuncs(L, hook_functions, 0); }

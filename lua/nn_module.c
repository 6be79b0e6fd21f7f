/* nn_module.c: luaopen_nn, the functions of the nn table that are C, and
 * the loader of the Lua modules compiled into the binding. */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "nn_binding.h"
#include "nn_embed.h"

void nnl_register_tensor_constructor(lua_State *L);

/* ---- creation --------------------------------------------------------- */
typedef nn_tensor *(*shape_ctor)(nn_dtype, int, const int64_t *);

/* Pushes a freshly created tensor; a failure is reported under op's name. */
static void push_created(lua_State *L, nn_tensor *t, const char *op) {
  if (t) {
    nnl_push_tensor(L, t);
    return;
  }
  const char *msg = nn_error();
  if (strncmp(msg, op, strlen(op)) == 0) nnl_engine_error(L);
  nnl_error(L, "%s: %s", op, msg);
}

static void check_shape(lua_State *L, const char *op, int ndim, const int64_t *size) {
  if (nn_check_shape(op, ndim, size) < 0) nnl_engine_error(L);
}

/* ctor's tensor made on device itself: filled there, random values drawn
   from the device's own generator (as torch.rand(..., device="cuda")). */
static nn_tensor *make_on(shape_ctor ctor, nn_device device, nn_dtype dtype, int n,
                          const int64_t *size) {
  if (device == NN_CPU) return ctor(dtype, n, size);
  nn_tensor *t = nn_empty_on(device, dtype, n, size);
  if (!t) return NULL;
  int status = ctor == nn_rand    ? nn_uniform_(t, 0, 1)
               : ctor == nn_randn ? nn_normal_(t, 0, 1)
                                  : nn_fill_(t, ctor == nn_ones ? 1 : 0);
  if (status < 0) {
    nn_release(t);
    return NULL;
  }
  return t;
}

static int make_from_shape(lua_State *L, const char *op, shape_ctor ctor) {
  int64_t size[NN_MAX_DIMS];
  int opt;
  int n = nnl_check_sizes(L, 1, op, size, &opt);
  if (opt) nnl_check_nargs(L, 0, opt, op, "sizes [, options]"); /* nothing after the options */
  nnl_options o;
  nnl_read_options(L, opt, op, &o);
  if ((ctor == nn_rand || ctor == nn_randn) && !nn_dtype_is_floating(o.dtype))
    return nnl_error(L, "%s: dtype must be float32 or float64, got %s", op, nn_dtype_name(o.dtype));
  check_shape(L, op, n, size);
  push_created(L, nnl_apply_options(L, make_on(ctor, o.device, o.dtype, n, size), &o, op), op);
  return 1;
}

static int l_zeros(lua_State *L) { return make_from_shape(L, "zeros", nn_zeros); }
static int l_ones(lua_State *L) { return make_from_shape(L, "ones", nn_ones); }
static int l_empty(lua_State *L) { return make_from_shape(L, "empty", nn_zeros); }
static int l_rand(lua_State *L) { return make_from_shape(L, "rand", nn_rand); }
static int l_randn(lua_State *L) { return make_from_shape(L, "randn", nn_randn); }

static int l_full(lua_State *L) {
  /* full({2, 3}, 7.5 [, options]) or full(2, 3, 7.5 [, options]): the fill
     value is the number after the sizes */
  int top = nnl_drop_trailing_nils(L), sizes_table = lua_istable(L, 1);
  int opt_idx = top > 1 && lua_istable(L, top) ? top : 0;
  int value_idx = sizes_table ? 2 : (opt_idx ? opt_idx : top + 1) - 1;
  if (value_idx < 2 || lua_type(L, value_idx) != LUA_TNUMBER || (sizes_table && top > 3))
    return nnl_error(L, "full: expected sizes then a fill value, as full(2, 3, 7.5) or full({2, 3}, 7.5)");
  double v = lua_tonumber(L, value_idx);
  int64_t size[NN_MAX_DIMS];
  int n = 0;
  if (sizes_table) {
    int ignored;
    n = nnl_check_sizes(L, 1, "full", size, &ignored);
  } else {
    for (int i = 1; i < value_idx; i++) {
      if (n >= NN_MAX_DIMS) return nnl_error(L, "full: at most %d dimensions", NN_MAX_DIMS);
      lua_Integer s = luaL_checkinteger(L, i);
      if (s < 0) return nnl_error(L, "full: size %I is negative", (lua_Integer)s);
      size[n++] = s;
    }
  }
  nnl_options o;
  nnl_read_options(L, opt_idx, "full", &o);
  check_shape(L, "full", n, size);
  nn_tensor *t = nn_empty_on(o.device, o.dtype, n, size);
  if (t && nn_fill_(t, v) < 0) {
    nn_release(t);
    t = NULL;
  }
  push_created(L, nnl_apply_options(L, t, &o, "full"), "full");
  return 1;
}

static int l_arange(lua_State *L) {
  /* arange(end), arange(start, end [, step]) with an optional options table */
  int top = nnl_drop_trailing_nils(L), opt = lua_istable(L, top) ? top : 0, nums = opt ? top - 1 : top;
  double start = 0, end, step = 1;
  if (nums < 1) return nnl_error(L, "arange: expected arange(end) or arange(start, end [, step])");
  if (nums > 3) return nnl_error(L, "arange: takes at most 3 numbers (start, end, step), got %d", nums);
  if (nums == 1) end = luaL_checknumber(L, 1);
  else start = luaL_checknumber(L, 1), end = luaL_checknumber(L, 2);
  if (nums >= 3) step = luaL_checknumber(L, 3);
  nnl_options o;
  nnl_read_options(L, opt, "arange", &o);
  push_created(L, nnl_apply_options(L, nn_arange(start, end, step, o.dtype), &o, "arange"), "arange");
  return 1;
}

static int l_linspace(lua_State *L) {
  nnl_check_nargs(L, 0, 4, "linspace", "start, end, steps [, options]");
  double a = luaL_checknumber(L, 1), b = luaL_checknumber(L, 2);
  lua_Integer steps = luaL_checkinteger(L, 3);
  nnl_options o;
  nnl_read_options(L, 4, "linspace", &o);
  int64_t size[1] = {steps};
  check_shape(L, "linspace", 1, size);
  push_created(L, nnl_apply_options(L, nn_linspace(a, b, steps, o.dtype), &o, "linspace"), "linspace");
  return 1;
}

static int l_eye(lua_State *L) {
  nnl_check_nargs(L, 0, 3, "eye", "n [, m] [, options]");
  lua_Integer n = luaL_checkinteger(L, 1), m = n;
  int opt = 2;
  if (lua_type(L, 2) == LUA_TNUMBER) m = luaL_checkinteger(L, 2), opt = 3;
  else nnl_check_nargs(L, 0, 2, "eye", "n [, m] [, options]");
  if (n < 0 || m < 0) return nnl_error(L, "eye: sizes must be non-negative, got %I and %I", (lua_Integer)n, (lua_Integer)m);
  nnl_options o;
  nnl_read_options(L, opt, "eye", &o);
  int64_t size[2] = {n, m};
  check_shape(L, "eye", 2, size);
  push_created(L, nnl_apply_options(L, nn_eye(n, m, o.dtype), &o, "eye"), "eye");
  return 1;
}

/* nn.set_num_threads(n) / nn.get_num_threads(): the pool's size (OpenBLAS's) */
static int l_set_num_threads(lua_State *L) {
  nnl_check_nargs(L, 0, 1, "set_num_threads", "n");
  lua_Integer n = luaL_checkinteger(L, 1);
  if (n < 1) return nnl_error(L, "set_num_threads: the number of threads must be at least 1, got %I", n);
  nn_set_num_threads(n > 1024 ? 1024 : (int)n);
  return 0;
}

static int l_get_num_threads(lua_State *L) {
  nnl_check_nargs(L, 0, 0, "get_num_threads", "");
  lua_pushinteger(L, nn_get_num_threads());
  return 1;
}

static int l_is_tensor(lua_State *L) {
  nnl_check_nargs(L, 0, 1, "is_tensor", "value");
  lua_pushboolean(L, nnl_to_tensor(L, 1) != NULL);
  return 1;
}

/* ---- random numbers ---------------------------------------------------- */
uint64_t nnl_check_seed(lua_State *L, const char *op) {
  nnl_check_nargs(L, 0, 1, op, "seed");
  int ok;
  lua_Integer seed = lua_tointegerx(L, 1, &ok);
  if (!ok) nnl_error(L, "%s: the seed must be an integer, got %s", op, luaL_typename(L, 1));
  return (uint64_t)seed;
}

static int l_manual_seed(lua_State *L) {
  nn_manual_seed(nnl_check_seed(L, "manual_seed"));
  return 0;
}

static int l_initial_seed(lua_State *L) {
  nnl_check_nargs(L, 0, 0, "initial_seed", "");
  lua_pushinteger(L, (lua_Integer)nn_initial_seed());
  return 1;
}

static int l_get_rng_state(lua_State *L) {
  nnl_check_nargs(L, 0, 0, "get_rng_state", "");
  luaL_Buffer b;
  size_t n = nn_rng_state_size();
  nn_rng_get_state(luaL_buffinitsize(L, &b, n));
  luaL_pushresultsize(&b, n);
  return 1;
}

static int l_set_rng_state(lua_State *L) {
  nnl_check_nargs(L, 0, 1, "set_rng_state", "state");
  size_t n;
  const char *s = luaL_checklstring(L, 1, &n);
  if (nn_rng_set_state(s, n) < 0) return nnl_engine_error(L);
  return 0;
}

/* ---- autograd mode ------------------------------------------------------ */
static int l_is_grad_enabled(lua_State *L) {
  nnl_check_nargs(L, 0, 0, "is_grad_enabled", "");
  lua_pushboolean(L, nn_grad_enabled());
  return 1;
}

static int l_set_grad_enabled(lua_State *L) {
  nnl_check_nargs(L, 0, 1, "set_grad_enabled", "mode");
  if (!lua_isboolean(L, 1))
    return nnl_error(L, "set_grad_enabled: expected a boolean, got %s", luaL_typename(L, 1));
  nn_set_grad_enabled(lua_toboolean(L, 1));
  return 0;
}

/* ---- layers, losses, optimizers: the C halves of nn's Lua modules ------- */
static int l_linear(lua_State *L) {
  nnl_check_nargs(L, 0, 3, "linear", "input, weight [, bias]");
  nn_tensor *x = nnl_check_tensor(L, 1, "linear"), *w = nnl_check_tensor(L, 2, "linear");
  nn_tensor *b = lua_isnoneornil(L, 3) ? NULL : nnl_check_tensor(L, 3, "linear");
  nnl_push_tensor(L, nn_linear(x, w, b));
  return 1;
}

static nn_reduction check_reduction(lua_State *L, int idx, const char *op) {
  const char *name = luaL_optstring(L, idx, "mean");
  int r = nn_reduction_from_name(name);
  if (r < 0) nnl_error(L, "%s: reduction must be 'mean', 'sum' or 'none', got '%s'", op, name);
  return (nn_reduction)r;
}

static int l_mse_loss(lua_State *L) {
  nn_tensor *x = nnl_check_tensor(L, 1, "mse_loss"), *y = nnl_check_tensor(L, 2, "mse_loss");
  nnl_push_tensor(L, nn_mse_loss(x, y, check_reduction(L, 3, "mse_loss")));
  return 1;
}

static int l_bce_loss(lua_State *L) {
  nn_tensor *x = nnl_check_tensor(L, 1, "binary_cross_entropy");
  nn_tensor *y = nnl_check_tensor(L, 2, "binary_cross_entropy");
  nn_tensor *w = lua_isnoneornil(L, 3) ? NULL : nnl_check_tensor(L, 3, "binary_cross_entropy");
  nnl_push_tensor(L, nn_bce_loss(x, y, w, check_reduction(L, 4, "binary_cross_entropy")));
  return 1;
}

/* native_op(name): the code a built-in layer's class stores as _native so
   that sequential_forward needs no string comparison: -1 for "linear",
   else the unary op of that name. */
#define NATIVE_LINEAR (-1)
static int l_native_op(lua_State *L) {
  const char *name = luaL_checkstring(L, 1);
  if (strcmp(name, "linear") == 0) {
    lua_pushinteger(L, NATIVE_LINEAR);
    return 1;
  }
  for (int k = 0; k <= NN_ROUND; k++) {
    if (strcmp(name, nn_unary_op_name((nn_unary_op)k)) == 0) {
      lua_pushinteger(L, k);
      return 1;
    }
  }
  return nnl_error(L, "native_op: no engine op is called '%s'", name);
}

/* Sequential:forward(x), in C: the step of a training loop should cost no
   Lua call it does not need. When every child is a built-in layer the
   engine knows (its class, not a subclass, carries _native, a code from
   native_op), the children run back to back without returning to Lua, and
   the intermediate tensors never become Lua values; otherwise each child's
   forward is called in turn, as Lua would. The keys it reads are its
   upvalues (SEQUENTIAL_KEYS), so that no call interns a string. */
enum { KEY_NATIVE = 1, KEY_WEIGHT, KEY_BIAS, KEY_MODULES, KEY_FORWARD, KEY_FORWARD_RELU };
static const char *const SEQUENTIAL_KEYS[] = {"_native", "weight", "bias", "_modules", "forward", "_forward_relu"};
#define SEQUENTIAL_KEY(k) lua_pushvalue(L, lua_upvalueindex(k))

enum { MAX_NATIVE_LAYERS = 64 };
typedef struct { int unary; nn_unary_op op; nn_tensor *w, *b; } native_layer;

/* Child i of the Sequential at index 1 as a native layer; 0 when it is not
   one. Pushes what it reads; the caller drops it. */
static int native_layer_at(lua_State *L, lua_Integer i, native_layer *layer) {
  if (lua_rawgeti(L, 1, i) != LUA_TTABLE || !lua_getmetatable(L, -1)) return 0;
  int child = lua_gettop(L) - 1, is_code;
  SEQUENTIAL_KEY(KEY_NATIVE);
  lua_rawget(L, -2);
  lua_Integer code = lua_tointegerx(L, -1, &is_code);
  if (!is_code || code < NATIVE_LINEAR || code > NN_ROUND) return 0;
  if (code != NATIVE_LINEAR) {
    layer->unary = 1;
    layer->op = (nn_unary_op)code;
    return 1;
  }
  layer->unary = 0;
  SEQUENTIAL_KEY(KEY_WEIGHT);
  lua_rawget(L, child);
  layer->w = nnl_to_tensor(L, -1);
  SEQUENTIAL_KEY(KEY_BIAS);
  lua_rawget(L, child);
  layer->b = nnl_to_tensor(L, -1);
  return layer->w && (layer->b || lua_isnil(L, -1));
}

/* The n children of the Sequential at index 1 as native layers; 0 when
   some child is not one. */
static int native_layers(lua_State *L, lua_Integer n, native_layer *layer) {
  /* what each child pushes (at most 5 values) stays until all are read:
     one settop a forward, not one a child */
  if (n < 1 || n > MAX_NATIVE_LAYERS || !lua_checkstack(L, 5 * (int)n)) return 0;
  int top = lua_gettop(L), ok = 1;
  for (lua_Integer i = 1; i <= n && ok; i++) ok = native_layer_at(L, i, &layer[i - 1]);
  lua_settop(L, top);
  return ok;
}

/* With child i (a table) on top: whether its class (not a subclass, and
   no forward of the instance's own) fuses itself with a ReLU (a built-in
   one, as native_layer_at sees it) that is child i + 1; if so its
   _forward_relu is pushed above it (BatchNorm2d's: one pass writes
   relu's result, the same bits as the two layers). */
static int forward_relu_of(lua_State *L, lua_Integer i) {
  int top = lua_gettop(L), fused = 0;
  SEQUENTIAL_KEY(KEY_FORWARD);
  if (lua_type(L, top) == LUA_TTABLE && lua_rawget(L, top) == LUA_TNIL && lua_getmetatable(L, top)) {
    SEQUENTIAL_KEY(KEY_FORWARD_RELU);
    if (lua_rawget(L, -2) == LUA_TFUNCTION && lua_rawgeti(L, 1, i + 1) == LUA_TTABLE && lua_getmetatable(L, -1)) {
      SEQUENTIAL_KEY(KEY_NATIVE);
      lua_rawget(L, -2);
      int is_code;
      fused = lua_tointegerx(L, -1, &is_code) == NN_RELU && is_code;
    }
  }
  if (fused) lua_copy(L, top + 3, top + 1); /* the function, where the settop leaves it */
  lua_settop(L, top + fused);
  return fused;
}

static int l_sequential_forward(lua_State *L) {
  nnl_check_method_args(L, "Sequential", "forward", 1, "x");
  luaL_checktype(L, 1, LUA_TTABLE);
  nn_tensor *x = nnl_check_tensor(L, 2, "Sequential");
  lua_settop(L, 2);
  native_layer layer[MAX_NATIVE_LAYERS];
  lua_Integer n = (lua_Integer)lua_rawlen(L, 1);
  if (native_layers(L, n, layer)) {
    /* Every tensor above stays referenced by its module while this runs. */
    nn_tensor *h = nn_retain(x);
    for (lua_Integer i = 0; i < n && h; i++) {
      nn_tensor *next = layer[i].unary ? nn_unary(layer[i].op, h) : nn_linear(h, layer[i].w, layer[i].b);
      nn_release(h);
      h = next;
    }
    nnl_push_tensor(L, h);
    return 1;
  }
  /* for i = 1, #self._modules do x = self[i]:forward(x) end */
  SEQUENTIAL_KEY(KEY_MODULES);
  lua_gettable(L, 1);
  n = luaL_len(L, -1);
  lua_pop(L, 1);
  for (lua_Integer i = 1; i <= n; i++) {
    lua_geti(L, 1, i); /* the child, under its forward */
    int with_relu = i < n && forward_relu_of(L, i);
    if (!with_relu) {
      SEQUENTIAL_KEY(KEY_FORWARD);
      lua_gettable(L, -2);
    }
    lua_insert(L, -2);
    lua_pushvalue(L, 2);
    lua_call(L, 2, 1);
    lua_replace(L, 2);
    i += with_relu;
  }
  return 1;
}

/* Sequential's __call, m(...) = m:forward(...), in C: the forward found
   as m:forward would find it (an instance's own, a subclass's), and when
   that is Sequential's own C forward it runs here, without the Lua call of
   Module's __call and a second C call (about 400 instructions a model
   call). The closure carries SEQUENTIAL_KEYS, as the forward does, so
   the forward runs with this frame's upvalues. */
static int sequential_call_done(lua_State *L, int status, lua_KContext base) {
  (void)status;
  return lua_gettop(L) - (int)base;
}

static int l_sequential_call(lua_State *L) {
  SEQUENTIAL_KEY(KEY_FORWARD);
  lua_gettable(L, 1);
  if (lua_tocfunction(L, -1) == l_sequential_forward) {
    lua_pop(L, 1);
    return l_sequential_forward(L);
  }
  lua_insert(L, 1);
  lua_callk(L, lua_gettop(L) - 1, LUA_MULTRET, 0, sequential_call_done);
  return lua_gettop(L);
}

/* arity(f): the number of f's fixed parameters and whether it takes `...`
   too (a C function: 0, true), without the table debug.getinfo builds:
   nn/init.lua asks it of every public function as nn loads. */
static int l_arity(lua_State *L) {
  luaL_checktype(L, 1, LUA_TFUNCTION);
  lua_Debug ar;
  lua_settop(L, 1);
  lua_getinfo(L, ">u", &ar);
  lua_pushinteger(L, ar.nparams);
  lua_pushboolean(L, ar.isvararg);
  return 2;
}

/* copy_metamethods(from, to): sets to[k] = from[k] for every string key k
   of from that starts with "__" (raw). Module:extend gives a new class its
   parent's metamethods this way: the same loop in Lua cost about 50,000
   instructions a class, and nn makes some eighty classes as it loads. */
static int l_copy_metamethods(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  luaL_checktype(L, 2, LUA_TTABLE);
  lua_settop(L, 2);
  lua_pushnil(L);
  while (lua_next(L, 1)) {
    size_t len;
    const char *k = lua_type(L, -2) == LUA_TSTRING ? lua_tolstring(L, -2, &len) : NULL;
    if (k && len >= 2 && k[0] == '_' && k[1] == '_') {
      lua_pushvalue(L, -2);
      lua_insert(L, -2);
      lua_rawset(L, 2);
    } else {
      lua_pop(L, 1);
    }
  }
  return 0;
}

/* The walk of nn._check_counts (lua/nn/init.lua), in C: a walk in Lua over
   nn's thousand-odd public names cost some 3M instructions, and it runs as
   nn loads and again after each family that loads on first use. Arguments
   on the Lua stack: 1 the table, 2 seen (table -> true), 3 wrapped_from
   (wrapper -> the function it checks), 4 nn.Tensor, 5 visit, 6 the
   table's name. visit(t, key, fn, receiver, owner) is called for each Lua
   function of fixed arity under a public key (a string not starting with
   "_") that is not a wrapper already, and for the __call of a table's
   metatable; receiver is "class" (t is its own __index), "tensor" (t is
   nn.Tensor) or nil, owner t's __name or the key t was found under. */
static int needs_check(lua_State *L, int fn) {
  if (lua_type(L, fn) != LUA_TFUNCTION || lua_iscfunction(L, fn)) return 0;
  lua_pushvalue(L, fn);
  if (lua_rawget(L, 3) != LUA_TNIL) {
    lua_pop(L, 1);
    return 0; /* a wrapper already */
  }
  lua_pop(L, 1);
  lua_Debug ar;
  lua_pushvalue(L, fn);
  lua_getinfo(L, ">u", &ar);
  return !ar.isvararg; /* a function of `...` checks its own arguments */
}

static void visit_function(lua_State *L, int t, int key, int fn, const char *receiver, int owner) {
  lua_pushvalue(L, 5);
  lua_pushvalue(L, t);
  lua_pushvalue(L, key);
  lua_pushvalue(L, fn);
  if (receiver) lua_pushstring(L, receiver);
  else lua_pushnil(L);
  lua_pushvalue(L, owner);
  lua_call(L, 5, 0);
}

/* t and its name are on the top of the stack; leaves the stack as it was */
static void walk_public(lua_State *L) {
  luaL_checkstack(L, 12, "check_counts");
  int t = lua_gettop(L) - 1, name = lua_gettop(L);
  lua_pushvalue(L, t);
  if (lua_rawget(L, 2) != LUA_TNIL) {
    lua_pop(L, 1);
    return;
  }
  lua_pop(L, 1);
  lua_pushvalue(L, t);
  lua_pushboolean(L, 1);
  lua_rawset(L, 2);
  lua_pushliteral(L, "__name");
  if (lua_rawget(L, t) != LUA_TSTRING) {
    lua_pop(L, 1);
    lua_pushvalue(L, name);
  }
  int owner = lua_gettop(L);
  const char *receiver = NULL;
  lua_pushliteral(L, "__index");
  lua_rawget(L, t);
  if (lua_rawequal(L, -1, t)) receiver = "class";
  else if (lua_rawequal(L, t, 4)) receiver = "tensor";
  lua_pop(L, 1);
  lua_pushnil(L);
  while (lua_next(L, t)) {
    int key = lua_gettop(L) - 1, value = key + 1;
    size_t len;
    const char *k = lua_type(L, key) == LUA_TSTRING ? lua_tolstring(L, key, &len) : NULL;
    if (k && (len == 0 || k[0] != '_')) {
      if (lua_type(L, value) == LUA_TTABLE) {
        lua_pushvalue(L, value);
        lua_pushvalue(L, key);
        walk_public(L);
        lua_pop(L, 2);
      } else if (needs_check(L, value)) {
        visit_function(L, t, key, value, receiver, owner);
      }
    }
    lua_pop(L, 1);
  }
  if (lua_getmetatable(L, t)) {
    int mt = lua_gettop(L);
    lua_pushliteral(L, "__call");
    int call = lua_gettop(L);
    lua_pushvalue(L, call);
    lua_rawget(L, mt);
    if (needs_check(L, call + 1)) visit_function(L, mt, call, call + 1, "class", owner);
    lua_settop(L, mt - 1);
  }
  lua_settop(L, name);
}

static int l_check_counts_walk(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  luaL_checktype(L, 2, LUA_TTABLE);
  luaL_checktype(L, 3, LUA_TTABLE);
  luaL_checktype(L, 5, LUA_TFUNCTION);
  lua_settop(L, 6);
  lua_pushvalue(L, 1);
  lua_pushvalue(L, 6);
  walk_public(L);
  return 0;
}

/* tensor_set_data(t, src): nn_set_data, for Module:_apply */
static int l_tensor_set_data(lua_State *L) {
  nn_tensor *t = nnl_check_tensor(L, 1, "set_data"), *src = nnl_check_tensor(L, 2, "set_data");
  if (nn_set_data(t, src) < 0) return nnl_engine_error(L);
  return 0;
}

static int l_memory_in_use(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)nn_memory_in_use());
  return 1;
}

static int l_memory_trim(lua_State *L) {
  (void)L;
  nn_memory_trim();
  return 0;
}

/* nn.clock(): seconds on a monotonic clock, for timing (wall time, not CPU) */
static int l_clock(lua_State *L) {
  nnl_check_nargs(L, 0, 0, "clock", "");
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  lua_pushnumber(L, (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9);
  return 1;
}

/*** nn.zeros(size... [, {dtype = "float32", device = "cpu", requires_grad = false}])
 * A tensor of zeros. The sizes come as numbers or as one table:
 * nn.zeros(2, 3) and nn.zeros({2, 3}) are the same 2x3 tensor.
 *   local z = nn.zeros(2, 3, {dtype = "float64"})
 */
/*** nn.ones(size... [, {dtype = "float32", device = "cpu", requires_grad = false}])
 * A tensor of ones; sizes and options as for nn.zeros.
 *   local o = nn.ones(4, 1)
 */
/*** nn.empty(size... [, {dtype = "float32", device = "cpu", requires_grad = false}])
 * A tensor whose values are to be overwritten (here they start at zero);
 * sizes and options as for nn.zeros.
 *   local buffer = nn.empty(128, 10)
 */
/*** nn.full(size..., value [, {dtype = "float32", device = "cpu", requires_grad = false}])
 * A tensor filled with value, the number after the sizes.
 *   nn.full(2, 3, 7.5)        nn.full({2, 3}, -1, {dtype = "int64"})
 */
/*** nn.rand(size... [, {dtype = "float32", device = "cpu", requires_grad = false}])
 * Uniform random numbers in [0, 1) from nn's generator (see nn.manual_seed);
 * dtype float32 or float64.
 *   nn.manual_seed(777); local u = nn.rand(3, 3)
 */
/*** nn.randn(size... [, {dtype = "float32", device = "cpu", requires_grad = false}])
 * Standard normal random numbers (mean 0, variance 1) from nn's generator;
 * dtype float32 or float64.
 *   local noise = nn.randn(64, 2) * 0.1
 */
/*** nn.arange(end), nn.arange(start, end [, step = 1] [, {dtype =, device =}])
 * The numbers start, start + step, ... up to end, end excluded, as
 * torch.arange. start defaults to 0.
 *   nn.arange(5)            --> tensor([0., 1., 2., 3., 4.])
 *   nn.arange(1, 2, 0.25)
 */
/*** nn.linspace(start, stop, steps [, {dtype = "float32", device = "cpu"}])
 * steps numbers evenly spaced from start to stop, both included.
 *   nn.linspace(0, 1, 5)    --> tensor([0.0000, 0.2500, 0.5000, 0.7500, 1.0000])
 */
/*** nn.eye(n [, m = n] [, {dtype = "float32", device = "cpu"}])
 * The n x m identity matrix: ones on the diagonal, zeros elsewhere.
 *   nn.eye(3)
 */
/*** nn.is_tensor(v)
 * true when v is a tensor, false for anything else.
 *   nn.is_tensor(nn.zeros(1))   --> true
 */
/*** nn.set_num_threads(n), nn.get_num_threads()
 * Sets (n >= 1) or reads the number of threads large operations use: the
 * products (OpenBLAS) and, on the same threads, large elementwise ops,
 * reductions, fills and optimizer steps. Results do not depend on it; set
 * to 1 before the first product, no thread is started.
 *   nn.set_num_threads(4); print(nn.get_num_threads())
 */
/*** nn.manual_seed(seed), nn.initial_seed()
 * Seeds nn's random number generator (nn.rand, nn.randn, dropout, weight
 * initialisation) with an integer, so that a run can be repeated;
 * initial_seed() gives back the seed in use.
 *   nn.manual_seed(777)
 */
/*** nn.get_rng_state(), nn.set_rng_state(state)
 * The generator's state as a string, and putting a saved state back: the
 * random numbers that follow repeat.
 *   local s = nn.get_rng_state(); local a = nn.rand(2)
 *   nn.set_rng_state(s); local b = nn.rand(2)   -- b equals a
 */
/*** nn.is_grad_enabled(), nn.set_grad_enabled(on)
 * Whether operations record the graph that backward() walks (true by
 * default), and switching it for the whole program; nn.no_grad(fn) switches
 * it off around one function and puts it back even on an error.
 *   nn.set_grad_enabled(false)   -- evaluation only from here on
 */
/*** nn.clock()
 * Seconds on a monotonic clock (wall time, not CPU time), for timing.
 *   local t0 = nn.clock(); train(); print(nn.clock() - t0, "s")
 */
static const luaL_Reg functions[] = {
    {"zeros", l_zeros}, {"ones", l_ones}, {"empty", l_empty}, {"full", l_full},
    {"rand", l_rand}, {"randn", l_randn}, {"arange", l_arange}, {"linspace", l_linspace},
    {"eye", l_eye}, {"is_tensor", l_is_tensor}, {"set_num_threads", l_set_num_threads},
    {"get_num_threads", l_get_num_threads}, {"manual_seed", l_manual_seed},
    {"initial_seed", l_initial_seed}, {"get_rng_state", l_get_rng_state},
    {"set_rng_state", l_set_rng_state}, {"is_grad_enabled", l_is_grad_enabled},
    {"set_grad_enabled", l_set_grad_enabled}, {"linear", l_linear}, {"mse_loss", l_mse_loss},
    {"binary_cross_entropy", l_bce_loss},
    {"memory_in_use", l_memory_in_use}, {"memory_trim", l_memory_trim},
    {"clock", l_clock}, {"tensor_set_data", l_tensor_set_data},
    {"native_op", l_native_op}, {"arity", l_arity}, {"copy_metamethods", l_copy_metamethods},
    {"check_counts_walk", l_check_counts_walk},
    {NULL, NULL}};

void nnl_push_closure_with_keys(lua_State *L, lua_CFunction f, const char *const *keys, int n) {
  luaL_checkstack(L, n, "nnl_push_closure_with_keys");
  for (int i = 0; i < n; i++) lua_pushstring(L, keys[i]);
  lua_pushcclosure(L, f, n);
}

void nnl_register_functions(lua_State *L) {
  luaL_setfuncs(L, functions, 0);
  nnl_push_closure_with_keys(L, l_sequential_forward, SEQUENTIAL_KEYS,
                             (int)(sizeof SEQUENTIAL_KEYS / sizeof *SEQUENTIAL_KEYS));
  lua_setfield(L, -2, "sequential_forward");
  nnl_push_closure_with_keys(L, l_sequential_call, SEQUENTIAL_KEYS,
                             (int)(sizeof SEQUENTIAL_KEYS / sizeof *SEQUENTIAL_KEYS));
  lua_setfield(L, -2, "sequential_call");
  nnl_register_tensor_constructor(L);
  nnl_register_activations(L);
  nnl_register_losses(L);
  nnl_register_optim(L);
  nnl_register_system(L);
  nnl_register_data(L);
  nnl_register_cuda(L);
  nnl_register_torch(L);
  nnl_register_mpi(L);
  nnl_register_hooks(L);
  nnl_register_autograd(L);
  nnl_register_distributed(L);
  nnl_register_math(L);
  nnl_register_index(L);
  nnl_register_conv(L);
  nnl_register_pool(L);
  nnl_register_rnn(L);
  nnl_register_embedding(L);
  nnl_register_capture(L);
  luaL_getmetatable(L, NNL_TENSOR);
  lua_getfield(L, -1, "methods");
  lua_setfield(L, -3, "tensor_methods");
  lua_pop(L, 1);
}

/* ---- the embedded Lua modules ------------------------------------------ */
static int load_embedded(lua_State *L) {
  const struct nn_lua_source *src = &nn_lua_sources[lua_tointeger(L, lua_upvalueindex(1))];
  char chunk[128];
  snprintf(chunk, sizeof chunk, "@[nn]/%s.lua", src->name); /* bytecode carries the same name */
  int bytecode = nn_lua_bytecode_release[0] != '\0';
  if (luaL_loadbufferx(L, src->code, src->length, chunk, bytecode ? "b" : "t") != LUA_OK) {
    if (bytecode)
      return luaL_error(L, "nn: module %s is bytecode of %s, which this Lua cannot load (%s)",
                        src->name, nn_lua_bytecode_release, lua_tostring(L, -1));
    return lua_error(L);
  }
  lua_pushstring(L, src->name);
  lua_call(L, 1, 1);
  return 1;
}

int luaopen_nn(lua_State *L) {
  /* What nn makes as it loads (tables, functions, the modules' code) lives
     as long as nn does, so the collector's steps meanwhile would be work
     for nothing; it starts again once nn is loaded, unless the program had
     stopped it. */
  int collector_was_running = lua_gc(L, LUA_GCISRUNNING);
  lua_gc(L, LUA_GCSTOP);
  nnl_open_tensor(L);
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
  for (int i = 0; i < nn_lua_source_count; i++) {
    lua_pushinteger(L, i);
    lua_pushcclosure(L, load_embedded, 1);
    lua_setfield(L, -2, nn_lua_sources[i].name);
  }
  lua_pop(L, 1);
  /* nn.init builds the nn table from the C functions, handed to it as the
     module "nn.core". */
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
  lua_createtable(L, 0, 160); /* nn.core's 135 functions and tables, never rehashed */
  nnl_register_functions(L);
  lua_setfield(L, -2, "nn.core");
  lua_pop(L, 1);
  lua_getglobal(L, "require");
  lua_pushliteral(L, "nn.init");
  lua_call(L, 1, 1);
  /* nn.init (which returns nn) and nn.core are modules only while nn is
     made. Left in package.loaded, they are where Lua looks first for the
     name of a function called without one (pcall(nn.roll, t), a function
     passed as a value): "bad argument #2 to 'nn.init.roll'" named an
     initialiser that does not exist. */
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
  lua_pushnil(L);
  lua_setfield(L, -2, "nn.init");
  lua_pushnil(L);
  lua_setfield(L, -2, "nn.core");
  lua_pop(L, 1);
  if (collector_was_running) lua_gc(L, LUA_GCRESTART);
  return 1;
}

/* nn_tensor.c: the Tensor type as Lua sees it: a userdata boxing an engine
 * tensor, its methods, operators and fields. */
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include <stdint.h>
#include <stdio.h>

#include "nn_binding.h"

/* A box is recognised by its size and a tag, without the metatable lookup
   luaL_testudata does: the check runs on every argument of every op. Only
   C code makes userdata, and no other library's starts with this tag. */
#define BOX_TAG 0x6e6e6c7561546eULL /* "nnluaTn" */
typedef struct { uint64_t tag; nn_tensor *t; } tensor_box;

static tensor_box *to_box(lua_State *L, int idx) {
  /* lua_touserdata gives NULL for anything but a userdata, and a light
     userdata's raw length is 0: no lua_type needed (one C API call fewer
     for every tensor argument) */
  tensor_box *b = lua_touserdata(L, idx);
  if (b && lua_rawlen(L, idx) == sizeof *b && b->tag == BOX_TAG) return b;
  return NULL;
}

/* ---- boxes ------------------------------------------------------------ */
nn_tensor *nnl_to_tensor(lua_State *L, int idx) {
  tensor_box *b = to_box(L, idx);
  return b ? b->t : NULL;
}

nn_tensor *nnl_box_tensor(const void *box) { return ((const tensor_box *)box)->t; }

nn_tensor *nnl_check_tensor(lua_State *L, int idx, const char *op) {
  tensor_box *b = to_box(L, idx);
  if (!b) {
    const char *got = luaL_typename(L, idx);
    return (nnl_error(L, "%s: argument %d must be a tensor, got %s", op, idx, got), NULL);
  }
  if (!b->t) return (nnl_error(L, "%s: the tensor was closed", op), NULL);
  return b->t;
}

static const char metatable_key = 0; /* its address keys the metatable in the registry */

/* Tensor memory is invisible to Lua's collector, which only sees the small
   boxes. Two things keep it bounded:
   - when what boxes may hold has grown by 256 KiB since the last step of
     the collector, a step, so that young garbage tensors go back to the
     pool at a rate set by the memory they hold, not by the size of the
     Lua heap. What they may hold: the growth of the storage in use (from
     its lowest level seen since the step), and BOX_WEIGHT for each box
     made, for the structs a storage count misses. Growth, not traffic: a
     tensor the engine frees before a box is made (Sequential's
     intermediates, backward's temporaries) leaves nothing for the
     collector to find, and a step costs a young collection whatever it
     finds (an XOR epoch made 3 KB of such traffic and 2 boxes: a step
     every 85 epochs, 1,650 instructions an epoch with the boxes'
     finalizers; now one every 230 or so);
   - in generational mode a box that survives two minor collections is
     "old" and only a major collection frees it, which tensor memory never
     brings on by itself (a data loader's batches live that long). So when
     the storage in use has grown by a quarter since the last full
     collection (and by at least 32 MiB), a full collection runs: garbage
     tensors stay within that margin of what is really held, in either
     mode, and the cost of the collections (which walk only the Lua heap)
     stays proportional to the tensor memory. */
static size_t in_use_after_full, in_use_low, boxes_since_step;
/* What a box keeps beyond its storage: the box, its tensor and storage
   structs, the node of its history */
enum { BOX_WEIGHT = 512 };

void nnl_account_memory(lua_State *L) {
  size_t in_use = nn_memory_in_use();
  if (in_use < in_use_low) in_use_low = in_use;
  size_t grown = in_use - in_use_low + ++boxes_since_step * BOX_WEIGHT;
  if (grown < 256 * 1024) return;
  size_t grown_kb = grown / 1024;
  lua_gc(L, LUA_GCSTEP, grown_kb > 1 << 30 ? 1 << 30 : (int)grown_kb);
  in_use = nn_memory_in_use();
  size_t margin = in_use_after_full / 4;
  if (margin < (size_t)32 << 20) margin = (size_t)32 << 20;
  if (in_use > in_use_after_full + margin) {
    lua_gc(L, LUA_GCCOLLECT);
    in_use = in_use_after_full = nn_memory_in_use();
  }
  in_use_low = in_use;
  boxes_since_step = 0;
}

void nnl_push_tensor(lua_State *L, nn_tensor *t) {
  if (!t) {
    nnl_engine_error(L);
    return;
  }
  tensor_box *b = lua_newuserdatauv(L, sizeof *b, 0);
  b->tag = BOX_TAG;
  b->t = t;
  lua_rawgetp(L, LUA_REGISTRYINDEX, &metatable_key); /* faster than by name */
  lua_setmetatable(L, -2);
  nnl_account_memory(L);
}

void nnl_where(lua_State *L) {
  lua_Debug ar;
  for (int level = 1; lua_getstack(L, level, &ar); level++) {
    lua_getinfo(L, "Sl", &ar);
    if (ar.currentline > 0 && strncmp(ar.source, "@[nn]/", 6) != 0) {
      lua_pushfstring(L, "%s:%d: ", ar.short_src, ar.currentline);
      return;
    }
  }
  lua_pushliteral(L, "");
}

int nnl_error(lua_State *L, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  nnl_where(L);
  lua_pushvfstring(L, fmt, ap);
  va_end(ap);
  lua_concat(L, 2);
  return lua_error(L);
}

int nnl_drop_trailing_nils(lua_State *L) {
  int top = lua_gettop(L);
  while (top > 0 && lua_isnil(L, top)) top--;
  lua_settop(L, top);
  return top;
}

void nnl_check_nargs(lua_State *L, int self, int max, const char *op, const char *signature) {
  int top = lua_gettop(L);
  if (top <= self + max) return;
  while (top > self + max && lua_isnil(L, top)) top--;
  if (top <= self + max) return;
  int got = top - self;
  if (max == 0) nnl_error(L, "%s: takes no arguments, got %d", op, got);
  nnl_error(L, "%s: takes %s%d argument%s (%s), got %d", op, strchr(signature, '[') ? "at most " : "",
            max, max == 1 ? "" : "s", signature, got);
}

void nnl_check_method_args(lua_State *L, const char *class_name, const char *method, int max,
                           const char *names) {
  int top = lua_gettop(L);
  int missing_self = lua_isnoneornil(L, 1);
  if (top <= 1 + max && !missing_self) return;
  while (top > 1 + max && lua_isnil(L, top)) top--;
  if (top <= 1 + max && !missing_self) return;
  /* the messages of nn/init.lua's count check, which wraps the Lua methods */
  if (lua_type(L, 1) == LUA_TTABLE && lua_getfield(L, 1, "__name") == LUA_TSTRING)
    class_name = lua_tostring(L, -1); /* a subclass's own name; the stack keeps it */
  int is_call = strcmp(method, "forward") == 0;
  const char *sep = is_call ? "" : ":", *shown = is_call ? "" : method;
  if (missing_self)
    nnl_error(L, "%s%s%s: call it on its object with a colon, as obj:%s(...)", class_name, sep, shown,
              method);
  if (max == 0) nnl_error(L, "%s%s%s: takes no arguments, got %d", class_name, sep, shown, top - 1);
  nnl_error(L, "%s%s%s: takes at most %d argument%s (%s), got %d", class_name, sep, shown, max,
            max == 1 ? "" : "s", names, top - 1);
}

int nnl_engine_error(lua_State *L) {
  return nnl_error(L, "%s", nn_error());
}

static int status_or_error(lua_State *L, int status) {
  if (status < 0) nnl_engine_error(L);
  return 0;
}

int nnl_check_dim(lua_State *L, int idx, const char *op) {
  lua_Integer d = luaL_checkinteger(L, idx);
  if (d == 0) nnl_error(L, "%s: dimension 0 does not exist; dimensions count from 1", op);
  if (d > NN_MAX_DIMS || d < -NN_MAX_DIMS)
    nnl_error(L, "%s: dimension %I is out of range", op, (lua_Integer)d);
  return d > 0 ? (int)d - 1 : (int)d;
}

/* A boolean flag at idx (keepdim, retain_graph...), def when absent:
   a number or a string there is a mistake, not "true". */
static int opt_flag(lua_State *L, int idx, const char *op, const char *name, int def) {
  if (lua_isnoneornil(L, idx)) return def;
  if (!lua_isboolean(L, idx)) nnl_error(L, "%s: %s must be a boolean, got %s", op, name, luaL_typename(L, idx));
  return lua_toboolean(L, idx);
}

static int opt_dim(lua_State *L, int idx, const char *op) {
  return lua_isnoneornil(L, idx) ? NN_ALL_DIMS : nnl_check_dim(L, idx, op);
}

/* A Lua index (1-based, or negative from the end) into a dim of size n. */
static int64_t check_index(lua_State *L, int idx, int64_t n, const char *op) {
  lua_Integer i = luaL_checkinteger(L, idx);
  if (i == 0 || i > n || i < -n)
    nnl_error(L, "%s: index %I is out of range for a dimension of size %I", op, (lua_Integer)i, (lua_Integer)n);
  return i > 0 ? i - 1 : n + i;
}

/* ---- options and sizes -------------------------------------------------- */
void nnl_read_options(lua_State *L, int idx, const char *op, nnl_options *o) {
  o->dtype = NN_FLOAT32;
  o->device = NN_CPU;
  o->requires_grad = 0;
  if (idx == 0 || lua_isnoneornil(L, idx)) return;
  luaL_checktype(L, idx, LUA_TTABLE);
  if (lua_getfield(L, idx, "dtype") != LUA_TNIL) {
    const char *name = lua_tostring(L, -1);
    int d = name ? nn_dtype_from_name(name) : -1;
    if (d < 0) nnl_error(L, "%s: unknown dtype '%s' (float32, float64, float16, bfloat16, int64, "
                          "int32, int16, int8, uint8 or bool)", op,
                          name ? name : luaL_typename(L, -1));
    o->dtype = (nn_dtype)d;
  }
  if (lua_getfield(L, idx, "device") != LUA_TNIL) {
    const char *name = lua_tostring(L, -1);
    int d = name ? nn_device_from_name(name) : -1;
    if (d < 0) nnl_error(L, "%s: unknown device '%s' (cpu or cuda)", op,
                          name ? name : luaL_typename(L, -1));
    o->device = (nn_device)d;
  }
  if (lua_getfield(L, idx, "requires_grad") != LUA_TNIL) o->requires_grad = lua_toboolean(L, -1);
  lua_pop(L, 3);
}

static int64_t check_size(lua_State *L, int idx, const char *op) {
  int ok;
  lua_Integer n = lua_tointegerx(L, idx, &ok);
  if (!ok) {
    if (lua_type(L, idx) == LUA_TNUMBER)
      nnl_error(L, "%s: size %s is not a whole number (or is too large)", op, lua_tostring(L, idx));
    nnl_error(L, "%s: sizes must be integers, got %s", op, luaL_typename(L, idx));
  }
  if (n < 0) nnl_error(L, "%s: size %I is negative", op, (lua_Integer)n);
  return n;
}

int nnl_check_sizes(lua_State *L, int idx, const char *op, int64_t *size, int *options_idx) {
  int top = nnl_drop_trailing_nils(L), n = 0;
  *options_idx = 0;
  /* {2, 3} [, options]; {} followed by options is the size of a 0-d tensor,
     while a lone {...} with no list part is options alone */
  if (lua_istable(L, idx) && (lua_rawlen(L, idx) > 0 || top > idx)) {
    int len = (int)lua_rawlen(L, idx);
    if (len > NN_MAX_DIMS) nnl_error(L, "%s: at most %d dimensions", op, NN_MAX_DIMS);
    for (int i = 1; i <= len; i++) {
      lua_rawgeti(L, idx, i);
      size[n++] = check_size(L, -1, op);
      lua_pop(L, 1);
    }
    if (idx + 1 <= top) *options_idx = idx + 1;
    return n;
  }
  for (int i = idx; i <= top; i++) { /* 2, 3 [, options] */
    if (lua_istable(L, i) && i == top) {
      *options_idx = i;
      break;
    }
    if (n >= NN_MAX_DIMS) nnl_error(L, "%s: at most %d dimensions", op, NN_MAX_DIMS);
    size[n++] = check_size(L, i, op);
  }
  return n;
}

nn_tensor *nnl_apply_options(lua_State *L, nn_tensor *t, const nnl_options *o, const char *op) {
  if (!t) return NULL;
  if (t->device != o->device) {
    nn_tensor *moved = nn_to_device(t, o->device);
    nn_release(t);
    if (!(t = moved)) return NULL;
  }
  if (o->requires_grad && nn_set_requires_grad(t, 1) < 0) {
    nn_release(t);
    (void)L, (void)op;
    return NULL;
  }
  return t;
}

/* ---- construction from Lua tables -------------------------------------- */
/* First pass: the shape, from the first element at each depth. */
static int table_shape(lua_State *L, int idx, int64_t *size, int *is_bool) {
  int ndim = 0;
  lua_pushvalue(L, idx);
  while (lua_istable(L, -1)) {
    if (ndim >= NN_MAX_DIMS) nnl_error(L, "tensor: nested deeper than %d levels", NN_MAX_DIMS);
    size[ndim++] = (int64_t)lua_rawlen(L, -1);
    if (size[ndim - 1] == 0) break;
    lua_rawgeti(L, -1, 1);
    lua_remove(L, -2);
  }
  *is_bool = lua_isboolean(L, -1);
  lua_pop(L, 1);
  return ndim;
}

/* Second pass: every element, checking the table is not ragged. */
static void fill_from_table(lua_State *L, nn_tensor *t, int depth, int64_t *pos, char *path,
                            size_t path_len) {
  int64_t n = t->size[depth];
  if ((int64_t)lua_rawlen(L, -1) != n)
    nnl_error(L, "tensor: ragged table: %s has %d elements where %d were expected",
               path_len ? path : "the top level", (int)lua_rawlen(L, -1), (int)n);
  for (int64_t i = 1; i <= n; i++) {
    int type = lua_rawgeti(L, -1, i);
    size_t len = path_len + (size_t)snprintf(path + path_len, 160 - path_len, "[%d]", (int)i);
    if (len >= 150) len = 150;
    if (depth + 1 < t->ndim) {
      if (type != LUA_TTABLE) nnl_error(L, "tensor: ragged table: element %s is a %s, expected a table",
                                         path, lua_typename(L, type));
      fill_from_table(L, t, depth + 1, pos, path, len);
    } else {
      double v = 0;
      if (type == LUA_TNUMBER) v = lua_tonumber(L, -1);
      else if (type == LUA_TBOOLEAN) v = lua_toboolean(L, -1);
      else nnl_error(L, "tensor: element %s is a %s, expected a number", path, lua_typename(L, type));
      nn_set_flat(t, (*pos)++, v);
    }
    lua_pop(L, 1);
    path[path_len] = 0;
  }
}

static int l_tensor(lua_State *L) {
  nnl_check_nargs(L, 0, 2, "tensor", "data [, options]");
  nnl_options o;
  int64_t size[NN_MAX_DIMS];
  if (lua_type(L, 1) == LUA_TNUMBER || lua_type(L, 1) == LUA_TBOOLEAN) {
    nnl_read_options(L, 2, "tensor", &o);
    if (lua_isboolean(L, 1) && (lua_isnoneornil(L, 2) || (lua_getfield(L, 2, "dtype"), lua_isnil(L, -1))))
      o.dtype = NN_BOOL;
    nn_tensor *t = nn_full(o.dtype, 0, NULL, lua_isboolean(L, 1) ? lua_toboolean(L, 1) : lua_tonumber(L, 1));
    nnl_push_tensor(L, nnl_apply_options(L, t, &o, "tensor"));
    return 1;
  }
  if (nnl_to_tensor(L, 1)) { /* a copy, as torch.tensor(t) */
    nnl_read_options(L, 2, "tensor", &o);
    nn_tensor *src = nnl_check_tensor(L, 1, "tensor");
    if (lua_isnoneornil(L, 2) || (lua_getfield(L, 2, "dtype"), lua_isnil(L, -1))) o.dtype = src->dtype;
    /* the copy stays on src's device unless told otherwise, as torch.tensor(t) */
    if (lua_isnoneornil(L, 2) || (lua_getfield(L, 2, "device"), lua_isnil(L, -1))) o.device = src->device;
    nn_tensor *d = nn_detach(src), *c = d ? nn_to_dtype(d, o.dtype) : NULL;
    nn_tensor *t = c ? nn_clone(c) : NULL;
    nn_release(d), nn_release(c);
    nnl_push_tensor(L, nnl_apply_options(L, t, &o, "tensor"));
    return 1;
  }
  if (!lua_istable(L, 1))
    return nnl_error(L, "tensor: expected a number or a (nested) table of numbers, got %s",
                      luaL_typename(L, 1));
  int is_bool;
  int ndim = table_shape(L, 1, size, &is_bool);
  nnl_read_options(L, 2, "tensor", &o);
  if (is_bool && (lua_isnoneornil(L, 2) || (lua_getfield(L, 2, "dtype"), lua_isnil(L, -1))))
    o.dtype = NN_BOOL;
  lua_settop(L, 2);
  nn_tensor *t = nn_empty(o.dtype, ndim, size);
  if (!t) return nnl_engine_error(L);
  nnl_push_tensor(L, t); /* owned by Lua from here: an error below frees it */
  char path[160] = "";
  int64_t pos = 0;
  lua_pushvalue(L, 1);
  if (ndim > 0) fill_from_table(L, t, 0, &pos, path, 0);
  lua_pop(L, 1);
  /* moved first: a tensor made on a device with requires_grad is a leaf there */
  if (o.device != NN_CPU) nnl_push_tensor(L, t = nn_to_device(t, o.device));
  if (o.requires_grad && nn_set_requires_grad(t, 1) < 0) return nnl_engine_error(L);
  return 1;
}

/* ---- properties ---------------------------------------------------------- */
static const char sizes_metatable_key = 0; /* its address keys the sizes' metatable */

/* A list of sizes or strides prints as {2, 3}, as the prompt shows a table:
   print(t:size()) in a script reads the same as t:size() at the prompt. */
static int sizes_tostring(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  luaL_addchar(&b, '{');
  lua_Integer n = (lua_Integer)lua_rawlen(L, 1);
  for (lua_Integer i = 1; i <= n; i++) {
    if (i > 1) luaL_addstring(&b, ", ");
    lua_rawgeti(L, 1, i);
    luaL_tolstring(L, -1, NULL);
    lua_remove(L, -2);
    luaL_addvalue(&b);
  }
  luaL_addchar(&b, '}');
  luaL_pushresult(&b);
  return 1;
}

/* Pushes dims 1..ndim of values (sizes or strides), or the one at the dim
   of argument 2 (1-based, negative from the end). */
static int push_dims(lua_State *L, const char *op, const nn_tensor *t, const int64_t *values) {
  nnl_check_nargs(L, 1, 1, op, "[dim]");
  if (!lua_isnoneornil(L, 2)) {
    if (t->ndim == 0) return nnl_error(L, "%s: a 0-dimensional tensor has no dimension %I", op, (lua_Integer)lua_tointeger(L, 2));
    int d = nnl_check_dim(L, 2, op);
    if (d < -t->ndim || d >= t->ndim)
      return nnl_error(L, "%s: dimension %I out of range for a tensor of %d dimensions", op,
                        (lua_Integer)lua_tointeger(L, 2), t->ndim);
    lua_pushinteger(L, values[d < 0 ? d + t->ndim : d]);
    return 1;
  }
  lua_createtable(L, t->ndim, 0);
  for (int i = 0; i < t->ndim; i++) {
    lua_pushinteger(L, values[i]);
    lua_rawseti(L, -2, i + 1);
  }
  lua_rawgetp(L, LUA_REGISTRYINDEX, &sizes_metatable_key);
  lua_setmetatable(L, -2);
  return 1;
}

static int m_size(lua_State *L) {
  nn_tensor *t = nnl_check_tensor(L, 1, "size");
  return push_dims(L, "size", t, t->size);
}

static int m_stride(lua_State *L) {
  nn_tensor *t = nnl_check_tensor(L, 1, "stride");
  return push_dims(L, "stride", t, t->stride);
}

static int m_dim(lua_State *L) {
  nnl_check_nargs(L, 1, 0, "dim", "");
  lua_pushinteger(L, nnl_check_tensor(L, 1, "dim")->ndim);
  return 1;
}

static int m_numel(lua_State *L) {
  nnl_check_nargs(L, 1, 0, "numel", "");
  lua_pushinteger(L, nn_numel(nnl_check_tensor(L, 1, "numel")));
  return 1;
}

static int m_len(lua_State *L) {
  nn_tensor *t = nnl_check_tensor(L, 1, "#");
  if (t->ndim == 0) return nnl_error(L, "#: a 0-dimensional tensor has no length");
  lua_pushinteger(L, t->size[0]);
  return 1;
}

static int m_is_contiguous(lua_State *L) {
  nnl_check_nargs(L, 1, 0, "is_contiguous", "");
  lua_pushboolean(L, nn_is_contiguous(nnl_check_tensor(L, 1, "is_contiguous")));
  return 1;
}

static int m_element_size(lua_State *L) {
  nnl_check_nargs(L, 1, 0, "element_size", "");
  lua_pushinteger(L, (lua_Integer)nn_dtype_size(nnl_check_tensor(L, 1, "element_size")->dtype));
  return 1;
}

static int m_is_floating_point(lua_State *L) {
  nnl_check_nargs(L, 1, 0, "is_floating_point", "");
  lua_pushboolean(L, nn_dtype_is_floating(nnl_check_tensor(L, 1, "is_floating_point")->dtype));
  return 1;
}

/* An element's value v as Lua has it for dtype dt: a boolean, an integer
   or a float. */
static void push_element(lua_State *L, nn_dtype dt, double v) {
  if (dt == NN_BOOL) lua_pushboolean(L, v != 0);
  else if (!nn_dtype_is_floating(dt)) lua_pushinteger(L, (lua_Integer)v);
  else lua_pushnumber(L, v);
}

static int m_item(lua_State *L) {
  nnl_check_nargs(L, 1, 0, "item", "");
  nn_tensor *t = nnl_check_tensor(L, 1, "item");
  double v;
  if (nn_item(t, &v) < 0) return nnl_engine_error(L);
  push_element(L, t->dtype, v);
  return 1;
}

/* ---- totable -------------------------------------------------------------
   One table a dim, each row of the last dim read through its stride from
   t's data: float32 and float64 typed, the other dtypes, and every dtype
   while a capture records (which refuses host reads), through nn_get at
   the element's index; never a flat position turned back into an offset
   (two divisions a dim). */
static void totable_rec(lua_State *L, nn_tensor *t, int depth, int64_t *index, int64_t offset, int typed) {
  int64_t n = t->size[depth], s = t->stride[depth];
  lua_createtable(L, (int)n, 0);
  if (depth + 1 < t->ndim) {
    for (index[depth] = 0; index[depth] < n; index[depth]++) {
      totable_rec(L, t, depth + 1, index, offset + index[depth] * s, typed);
      lua_rawseti(L, -2, index[depth] + 1);
    }
    return;
  }
  if (typed && t->dtype == NN_FLOAT32) {
    const float *x = (const float *)nn_tensor_data(t) + offset; /* data: at t's first element */
    for (int64_t i = 0; i < n; i++) lua_pushnumber(L, x[i * s]), lua_rawseti(L, -2, i + 1);
  } else if (typed && t->dtype == NN_FLOAT64) {
    const double *x = (const double *)nn_tensor_data(t) + offset;
    for (int64_t i = 0; i < n; i++) lua_pushnumber(L, x[i * s]), lua_rawseti(L, -2, i + 1);
  } else {
    for (index[depth] = 0; index[depth] < n; index[depth]++) {
      push_element(L, t->dtype, nn_get(t, index));
      lua_rawseti(L, -2, index[depth] + 1);
    }
  }
}

/* totable, and tolist (its PyTorch name): upvalue 1 the name, for errors */
static int m_totable(lua_State *L) {
  const char *name = lua_tostring(L, lua_upvalueindex(1));
  nnl_check_nargs(L, 1, 0, name, "");
  nn_tensor *t = nnl_check_tensor(L, 1, name);
  if (t->device != NN_CPU) { /* its values on the host, which waits for them */
    nn_tensor *d = nn_detach(t), *h = d ? nn_to_device(d, NN_CPU) : NULL;
    nn_release(d);
    nnl_push_tensor(L, h); /* Lua owns it: an error below frees it */
    t = h;
  }
  if (t->ndim == 0) {
    push_element(L, t->dtype, nn_get(t, NULL));
    return 1;
  }
  int64_t index[NN_MAX_DIMS];
  totable_rec(L, t, 0, index, 0, !nn_capture_recording());
  return 1;
}

static int m_tostring(lua_State *L) {
  tensor_box *b = to_box(L, 1);
  if (!b) return nnl_error(L, "tostring: expected a tensor");
  if (!b->t) {
    lua_pushliteral(L, "tensor(closed)");
    return 1;
  }
  nn_sync_view(b->t); /* the grad_fn it shows */
  char *s = nn_format(b->t);
  if (!s) return nnl_engine_error(L);
  lua_pushstring(L, s);
  free(s);
  return 1;
}

/* __gc and __close: the collector and a to-be-closed variable pass a box,
   but both are reachable from Lua (getmetatable(t).__gc(x)). */
static int release_box(lua_State *L, const char *op) {
  tensor_box *b = to_box(L, 1);
  if (!b) return nnl_error(L, "%s: argument 1 must be a tensor, got %s", op, luaL_typename(L, 1));
  nn_release(b->t);
  b->t = NULL;
  return 0;
}

static int m_gc(lua_State *L) { return release_box(L, "__gc"); }

static int m_eq(lua_State *L) { /* identity: elementwise equality is :eq() */
  nn_tensor *a = nnl_to_tensor(L, 1);
  lua_pushboolean(L, a != NULL && a == nnl_to_tensor(L, 2));
  return 1;
}

/* Lua's < and <= must give a boolean, so they cannot compare tensors
   elementwise: the message names the method that does, for the comparison
   as the user most likely wrote it (h > 0.5 reaches __lt as 0.5 < h). */
static int refuse_comparison(lua_State *L, const char *symbol, const char *method,
                             const char *mirrored_symbol, const char *mirrored_method) {
  const char *why = "(<, <=, >, >= cannot return a tensor in Lua)";
  if (to_box(L, 1) && lua_type(L, 2) == LUA_TNUMBER)
    return nnl_error(L, "comparison: tensors are compared with methods: use t:%s(%s) for t %s %s %s",
                     method, lua_tostring(L, 2), symbol, lua_tostring(L, 2), why);
  if (to_box(L, 2) && lua_type(L, 1) == LUA_TNUMBER)
    return nnl_error(L, "comparison: tensors are compared with methods: use t:%s(%s) for t %s %s %s",
                     mirrored_method, lua_tostring(L, 1), mirrored_symbol, lua_tostring(L, 1), why);
  if (to_box(L, 1) && to_box(L, 2)) /* a < b and b > a look the same from here */
    return nnl_error(L, "comparison: tensors are compared with methods: use a:%s(b) for a %s b, "
                     "a:%s(b) for a %s b %s", method, symbol, mirrored_method, mirrored_symbol, why);
  return nnl_error(L, "comparison: tensors are compared with methods (gt, ge, lt, le), "
                   "with a tensor or a number, not a %s %s",
                   luaL_typename(L, to_box(L, 1) ? 2 : 1), why);
}

static int m_lt(lua_State *L) { return refuse_comparison(L, "<", "lt", ">", "gt"); }
static int m_le(lua_State *L) { return refuse_comparison(L, "<=", "le", ">=", "ge"); }

/* ---- views ---------------------------------------------------------------- */
/* The sizes a method takes after self, as numbers (2, 3) or one table
   ({2, 3}); -1 is allowed (the engine says where it means something). */
static int read_sizes_argument(lua_State *L, const char *op, int64_t *size) {
  int n = 0, top = nnl_drop_trailing_nils(L);
  int table = lua_istable(L, 2);
  if (table) nnl_check_nargs(L, 1, 1, op, "sizes as numbers or one table");
  int count = table ? (int)lua_rawlen(L, 2) : top - 1;
  if (count > NN_MAX_DIMS) return nnl_error(L, "%s: at most %d dimensions", op, NN_MAX_DIMS);
  for (int i = 0; i < count; i++) {
    if (table) lua_rawgeti(L, 2, i + 1);
    else lua_pushvalue(L, i + 2);
    int ok;
    lua_Integer v = lua_tointegerx(L, -1, &ok);
    if (!ok) nnl_error(L, "%s: sizes must be integers, got %s", op,
                       lua_type(L, -1) == LUA_TNUMBER ? lua_tostring(L, -1) : luaL_typename(L, -1));
    size[n++] = v;
    lua_pop(L, 1);
  }
  return n;
}

static int m_view_like(lua_State *L, int reshape) {
  const char *op = reshape ? "reshape" : "view";
  nn_tensor *t = nnl_check_tensor(L, 1, op);
  int64_t size[NN_MAX_DIMS];
  int n = read_sizes_argument(L, op, size);
  nnl_push_tensor(L, reshape ? nn_reshape(t, n, size) : nn_view(t, n, size));
  return 1;
}
static int m_view(lua_State *L) { return m_view_like(L, 0); }
static int m_reshape(lua_State *L) { return m_view_like(L, 1); }

static int m_transpose(lua_State *L) {
  nnl_check_nargs(L, 1, 2, "transpose", "dim0, dim1");
  nn_tensor *t = nnl_check_tensor(L, 1, "transpose");
  nnl_push_tensor(L, nn_transpose(t, nnl_check_dim(L, 2, "transpose"), nnl_check_dim(L, 3, "transpose")));
  return 1;
}

static int m_t(lua_State *L) {
  nnl_check_nargs(L, 1, 0, "t", "");
  nnl_push_tensor(L, nn_t(nnl_check_tensor(L, 1, "t")));
  return 1;
}

static int m_permute(lua_State *L) {
  nn_tensor *t = nnl_check_tensor(L, 1, "permute");
  int dims[NN_MAX_DIMS], n = 0;
  int table = lua_istable(L, 2), count = table ? (int)lua_rawlen(L, 2) : nnl_drop_trailing_nils(L) - 1;
  if (table) nnl_check_nargs(L, 1, 1, "permute", "dims as numbers or one table");
  if (count != t->ndim)
    return nnl_error(L, "permute: %d dimensions given for a tensor of %d", count, t->ndim);
  for (int i = 0; i < count; i++) {
    if (table) lua_rawgeti(L, 2, i + 1);
    else lua_pushvalue(L, i + 2);
    dims[n++] = nnl_check_dim(L, -1, "permute");
    lua_pop(L, 1);
  }
  nnl_push_tensor(L, nn_permute(t, dims));
  return 1;
}

static int m_narrow(lua_State *L) {
  nnl_check_nargs(L, 1, 3, "narrow", "dim, start, length");
  nn_tensor *t = nnl_check_tensor(L, 1, "narrow");
  int d = nnl_check_dim(L, 2, "narrow");
  lua_Integer start = luaL_checkinteger(L, 3), length = luaL_checkinteger(L, 4);
  if (start < 1) return nnl_error(L, "narrow: start %I is out of range (indices count from 1)", (lua_Integer)start);
  nnl_push_tensor(L, nn_narrow(t, d, start - 1, length));
  return 1;
}

static int m_select(lua_State *L) {
  nnl_check_nargs(L, 1, 2, "select", "dim, index");
  nn_tensor *t = nnl_check_tensor(L, 1, "select");
  int d = nnl_check_dim(L, 2, "select");
  if (t->ndim == 0) return nnl_error(L, "select: a 0-dimensional tensor has nothing to select");
  int w = d < 0 ? d + t->ndim : d;
  if (w < 0 || w >= t->ndim)
    return nnl_error(L, "select: dimension %I out of range for a tensor of %d dimensions",
                      (lua_Integer)lua_tointeger(L, 2), t->ndim);
  nnl_push_tensor(L, nn_select(t, w, check_index(L, 3, t->size[w], "select")));
  return 1;
}

static int m_unsqueeze(lua_State *L) {
  nnl_check_nargs(L, 1, 1, "unsqueeze", "dim");
  nn_tensor *t = nnl_check_tensor(L, 1, "unsqueeze");
  lua_Integer d = luaL_checkinteger(L, 2);
  if (d == 0) return nnl_error(L, "unsqueeze: dimension 0 does not exist; dimensions count from 1");
  if (d > NN_MAX_DIMS + 1 || d < -NN_MAX_DIMS - 1) return nnl_error(L, "unsqueeze: dimension %I is out of range", (lua_Integer)d);
  nnl_push_tensor(L, nn_unsqueeze(t, d > 0 ? (int)d - 1 : (int)d));
  return 1;
}

static int m_squeeze(lua_State *L) {
  nnl_check_nargs(L, 1, 1, "squeeze", "[dim]");
  nn_tensor *t = nnl_check_tensor(L, 1, "squeeze");
  nnl_push_tensor(L, nn_squeeze(t, opt_dim(L, 2, "squeeze")));
  return 1;
}

static int m_expand(lua_State *L) {
  nn_tensor *t = nnl_check_tensor(L, 1, "expand");
  int64_t size[NN_MAX_DIMS];
  int n = read_sizes_argument(L, "expand", size);
  nnl_push_tensor(L, nn_expand(t, n, size));
  return 1;
}

static int m_contiguous(lua_State *L) {
  nnl_check_nargs(L, 1, 0, "contiguous", "");
  nnl_push_tensor(L, nn_contiguous(nnl_check_tensor(L, 1, "contiguous")));
  return 1;
}
static int m_clone(lua_State *L) {
  nnl_check_nargs(L, 1, 0, "clone", "");
  nnl_push_tensor(L, nn_clone(nnl_check_tensor(L, 1, "clone")));
  return 1;
}
static int m_detach(lua_State *L) {
  nnl_check_nargs(L, 1, 0, "detach", "");
  nnl_push_tensor(L, nn_detach(nnl_check_tensor(L, 1, "detach")));
  return 1;
}

static const struct { const char *name; nn_dtype dtype; } conversions[] = {
    {"float", NN_FLOAT32}, {"double", NN_FLOAT64}, {"long", NN_INT64}, {"bool", NN_BOOL},
    {"half", NN_FLOAT16},  {"bfloat16", NN_BFLOAT16}, {"int", NN_INT32}, {"short", NN_INT16},
    {"char", NN_INT8},     {"byte", NN_UINT8}};

/* float(), double(), long(), bool(), half(), ...: PyTorch's conversions by
   name; the upvalue is the index in conversions */
static int m_to_dtype(lua_State *L) {
  lua_Integer k = lua_tointeger(L, lua_upvalueindex(1));
  const char *name = conversions[k].name;
  nnl_check_nargs(L, 1, 0, name, "");
  nnl_push_tensor(L, nn_to_dtype(nnl_check_tensor(L, 1, name), conversions[k].dtype));
  return 1;
}

static int m_to(lua_State *L) {
  nnl_check_nargs(L, 1, 1, "to", "device_or_dtype");
  nn_tensor *t = nnl_check_tensor(L, 1, "to");
  if (lua_type(L, 2) != LUA_TSTRING)
    return nnl_error(L, "to: expected a device (cpu, cuda) or a dtype name, got %s", luaL_typename(L, 2));
  const char *name = lua_tostring(L, 2);
  int dev = nn_device_from_name(name), dt = nn_dtype_from_name(name);
  if (dev >= 0) nnl_push_tensor(L, nn_to_device(t, (nn_device)dev));
  else if (dt >= 0) nnl_push_tensor(L, nn_to_dtype(t, (nn_dtype)dt));
  else return nnl_error(L, "to: '%s' is neither a device (cpu, cuda) nor a dtype", name);
  return 1;
}

static int m_cuda(lua_State *L) {
  nnl_check_nargs(L, 1, 0, "cuda", "");
  nnl_push_tensor(L, nn_to_device(nnl_check_tensor(L, 1, "cuda"), NN_CUDA));
  return 1;
}
static int m_cpu(lua_State *L) {
  nnl_check_nargs(L, 1, 0, "cpu", "");
  nnl_push_tensor(L, nn_to_device(nnl_check_tensor(L, 1, "cpu"), NN_CPU));
  return 1;
}

/* ---- elementwise ---------------------------------------------------------- */
/* A Lua number is PyTorch's Python number: an integer (2) or a float (2.0). */
static nn_number_kind number_kind(lua_State *L, int idx) {
  return lua_isinteger(L, idx) ? NN_NUMBER_INTEGER : NN_NUMBER_FLOAT;
}

/* a op b where either side may be a number (operators) */
static int binary_any(lua_State *L, nn_binary_op op) {
  const char *name = nn_binary_op_name(op);
  nn_tensor *a = nnl_to_tensor(L, 1), *b = nnl_to_tensor(L, 2);
  if (a && b) {
    nnl_push_tensor(L, nn_binary(op, a, b));
  } else if (a && lua_type(L, 2) == LUA_TNUMBER) {
    nnl_push_tensor(L, nn_binary_number(op, a, lua_tonumber(L, 2), 0, number_kind(L, 2)));
  } else if (b && lua_type(L, 1) == LUA_TNUMBER) {
    nnl_push_tensor(L, nn_binary_number(op, b, lua_tonumber(L, 1), 1, number_kind(L, 1)));
  } else {
    if (a) return nnl_error(L, "%s: the other operand must be a tensor or a number, got %s", name, luaL_typename(L, 2));
    if (b) return nnl_error(L, "%s: the other operand must be a tensor or a number, got %s", name, luaL_typename(L, 1));
    nnl_check_tensor(L, 1, name);
    nnl_check_tensor(L, 2, name);
  }
  return 1;
}

static int m_binary(lua_State *L) {
  nn_binary_op op = (nn_binary_op)lua_tointeger(L, lua_upvalueindex(1));
  nnl_check_nargs(L, 1, 1, nn_binary_op_name(op), "other");
  nnl_check_tensor(L, 1, nn_binary_op_name(op));
  return binary_any(L, op);
}

static int m_binary_(lua_State *L) {
  nn_binary_op op = (nn_binary_op)lua_tointeger(L, lua_upvalueindex(1));
  const char *name = nn_binary_op_name(op);
  char inplace_name[32];
  snprintf(inplace_name, sizeof inplace_name, "%s_", name);
  nnl_check_nargs(L, 1, 1, inplace_name, "other");
  nn_tensor *a = nnl_check_tensor(L, 1, inplace_name), *b = nnl_to_tensor(L, 2);
  if (b) status_or_error(L, nn_binary_(op, a, b));
  else if (lua_type(L, 2) == LUA_TNUMBER)
    status_or_error(L, nn_binary_number_(op, a, lua_tonumber(L, 2), number_kind(L, 2)));
  else return nnl_error(L, "%s_: the other operand must be a tensor or a number, got %s", name, luaL_typename(L, 2));
  lua_settop(L, 1);
  return 1;
}

static int mt_add(lua_State *L) { return binary_any(L, NN_ADD); }
static int mt_sub(lua_State *L) { return binary_any(L, NN_SUB); }
static int mt_mul(lua_State *L) { return binary_any(L, NN_MUL); }
static int mt_div(lua_State *L) { return binary_any(L, NN_DIV); }
static int mt_pow(lua_State *L) { return binary_any(L, NN_POW); }
static int mt_idiv(lua_State *L) { return binary_any(L, NN_FLOOR_DIVIDE); }
/* t % other: Python's %, PyTorch's remainder (the divisor's sign). A
   number on the left (5 % t) is made a 0-dim tensor first, as PyTorch's
   remainder(Scalar, Tensor) does: of t's dtype, unless the number is a
   float (5.0, as PyTorch's float scalar) and t holds integers (float32
   then), or t is bool (int64 for an integer). */
static int mt_mod(lua_State *L) {
  nn_tensor *b = nnl_to_tensor(L, 2);
  if (lua_type(L, 1) != LUA_TNUMBER || !b) return binary_any(L, NN_REMAINDER);
  double x = lua_tonumber(L, 1);
  int whole = lua_isinteger(L, 1);
  nn_dtype dtype = b->dtype == NN_BOOL                              ? (whole ? NN_INT64 : NN_FLOAT32)
                   : nn_dtype_is_floating(b->dtype) || whole ? b->dtype
                                                             : NN_FLOAT32;
  nn_tensor *a = nn_full(dtype, 0, NULL, x);
  if (!a) return nnl_engine_error(L);
  nn_tensor *device_a = nn_to_device(a, b->device);
  nn_release(a);
  if (!device_a) return nnl_engine_error(L);
  nn_tensor *r = nn_binary(NN_REMAINDER, device_a, b);
  nn_release(device_a);
  nnl_push_tensor(L, r);
  return 1;
}

/* t & m, t | m, t ~ m (Lua's xor), ~t: PyTorch's &, |, ^ and ~ on bool
   tensors (masks), where they are the logical ops. PyTorch's are bitwise
   on integer tensors, which nn has not: an error, rather than a logical
   op's different answer. */
static void check_mask_operand(lua_State *L, int idx, const char *symbol, const char *op) {
  nn_tensor *t = nnl_to_tensor(L, idx);
  if (!t) nnl_error(L, "%s: %s takes bool tensors, got %s", symbol, op, luaL_typename(L, idx));
  if (t->dtype != NN_BOOL)
    nnl_error(L, "%s: %s takes bool tensors (masks), got %s (bitwise operations on integer tensors are not "
                 "supported)", symbol, op, nn_dtype_name(t->dtype));
}

static int mask_operator(lua_State *L, nn_binary_op op, const char *symbol) {
  check_mask_operand(L, 1, symbol, nn_binary_op_name(op));
  check_mask_operand(L, 2, symbol, nn_binary_op_name(op));
  return binary_any(L, op);
}

static int mt_band(lua_State *L) { return mask_operator(L, NN_LOGICAL_AND, "&"); }
static int mt_bor(lua_State *L) { return mask_operator(L, NN_LOGICAL_OR, "|"); }
static int mt_bxor(lua_State *L) { return mask_operator(L, NN_LOGICAL_XOR, "~"); }
static int mt_bnot(lua_State *L) {
  check_mask_operand(L, 1, "~", "logical_not");
  nnl_push_tensor(L, nn_unary(NN_LOGICAL_NOT, nnl_to_tensor(L, 1)));
  return 1;
}

/* div's optional {rounding_mode = "trunc" | "floor"} (PyTorch's; nil: true
   division) as the op it selects. */
static nn_binary_op division_op(lua_State *L, int idx, const char *op) {
  if (lua_isnoneornil(L, idx)) return NN_DIV;
  if (!lua_istable(L, idx) || nnl_to_tensor(L, idx))
    nnl_error(L, "%s: options must be a table {rounding_mode =}, got %s", op, luaL_typename(L, idx));
  lua_getfield(L, idx, "rounding_mode");
  nn_binary_op chosen = NN_DIV;
  if (lua_type(L, -1) == LUA_TSTRING && strcmp(lua_tostring(L, -1), "trunc") == 0) chosen = NN_TRUNC_DIVIDE;
  else if (lua_type(L, -1) == LUA_TSTRING && strcmp(lua_tostring(L, -1), "floor") == 0) chosen = NN_FLOOR_DIVIDE;
  else if (lua_type(L, -1) == LUA_TSTRING)
    nnl_error(L, "%s: rounding_mode must be nil, \"trunc\" or \"floor\", got \"%s\"", op, lua_tostring(L, -1));
  else if (!lua_isnil(L, -1))
    nnl_error(L, "%s: rounding_mode must be nil, \"trunc\" or \"floor\", got a %s", op, luaL_typename(L, -1));
  lua_pop(L, 1);
  return chosen;
}

/*** t:div(other [, {rounding_mode =}]), t:div_(other [, {rounding_mode =}]), t:floor_divide(other), t:floor_divide_(other), t // other
 * Division with broadcasting, other a tensor or a number. Without a
 * rounding_mode, true division (integers give float32); "trunc" rounds the
 * quotient toward 0, "floor" toward -inf, keeping integer dtypes (an
 * integer division by zero is an error). floor_divide and Lua's // are
 * PyTorch's floor_divide (//): rounding toward -inf, for floats as Python's
 * float // (5 // 0.0 is inf, -5 // inf is -1). Their gradient is zero (PyTorch's
 * floor_divide has none: its backward raises). Also nn.div(a, b, ...), nn.floor_divide(a, b).
 *   nn.tensor({7, -7}, {dtype = "int64"}) // 2        --> {3, -4}
 *   x:div(2, {rounding_mode = "trunc"})               --> x / 2 toward 0
 */
static int m_div(lua_State *L) {
  nnl_check_nargs(L, 1, 2, "div", "other [, {rounding_mode =}]");
  nnl_check_tensor(L, 1, "div");
  nn_binary_op op = division_op(L, 3, "div");
  lua_settop(L, 2);
  return binary_any(L, op);
}

static int m_div_(lua_State *L) {
  nnl_check_nargs(L, 1, 2, "div_", "other [, {rounding_mode =}]");
  nn_tensor *a = nnl_check_tensor(L, 1, "div_"), *b = nnl_to_tensor(L, 2);
  nn_binary_op op = division_op(L, 3, "div_");
  if (b) status_or_error(L, nn_binary_(op, a, b));
  else if (lua_type(L, 2) == LUA_TNUMBER)
    status_or_error(L, nn_binary_number_(op, a, lua_tonumber(L, 2), number_kind(L, 2)));
  else return nnl_error(L, "div_: the other operand must be a tensor or a number, got %s", luaL_typename(L, 2));
  lua_settop(L, 1);
  return 1;
}
static int mt_unm(lua_State *L) {
  nnl_push_tensor(L, nn_unary(NN_NEG, nnl_check_tensor(L, 1, "neg")));
  return 1;
}

static int m_unary(lua_State *L) {
  nn_unary_op op = (nn_unary_op)lua_tointeger(L, lua_upvalueindex(1));
  nnl_check_nargs(L, 1, 0, nn_unary_op_name(op), "");
  nnl_push_tensor(L, nn_unary(op, nnl_check_tensor(L, 1, nn_unary_op_name(op))));
  return 1;
}

static int m_unary_(lua_State *L) {
  nn_unary_op op = (nn_unary_op)lua_tointeger(L, lua_upvalueindex(1));
  char inplace_name[32];
  snprintf(inplace_name, sizeof inplace_name, "%s_", nn_unary_op_name(op));
  nnl_check_nargs(L, 1, 0, inplace_name, "");
  status_or_error(L, nn_unary_(op, nnl_check_tensor(L, 1, inplace_name)));
  lua_settop(L, 1);
  return 1;
}

/* A bound not given is an infinity: it clamps nothing. */
static double opt_bound(lua_State *L, int idx, double absent) {
  return lua_isnoneornil(L, idx) ? absent : luaL_checknumber(L, idx);
}

static void check_bounds(lua_State *L, const char *op) {
  if (lua_isnoneornil(L, 2) && lua_isnoneornil(L, 3))
    nnl_error(L, "%s: give at least one of min and max", op);
}

static int m_clamp(lua_State *L) {
  nnl_check_nargs(L, 1, 2, "clamp", "[min] [, max]");
  nn_tensor *t = nnl_check_tensor(L, 1, "clamp");
  check_bounds(L, "clamp");
  nnl_push_tensor(L, nn_clamp(t, opt_bound(L, 2, -INFINITY), opt_bound(L, 3, INFINITY)));
  return 1;
}

static int m_clamp_(lua_State *L) {
  nnl_check_nargs(L, 1, 2, "clamp_", "[min] [, max]");
  nn_tensor *t = nnl_check_tensor(L, 1, "clamp_");
  check_bounds(L, "clamp_");
  status_or_error(L, nn_clamp_(t, opt_bound(L, 2, -INFINITY), opt_bound(L, 3, INFINITY)));
  lua_settop(L, 1);
  return 1;
}

static int m_fill_(lua_State *L) {
  nnl_check_nargs(L, 1, 1, "fill_", "value");
  nn_tensor *t = nnl_check_tensor(L, 1, "fill_");
  double v = lua_isboolean(L, 2) ? lua_toboolean(L, 2) : luaL_checknumber(L, 2);
  status_or_error(L, nn_inplace_fill("fill_", t, v));
  lua_settop(L, 1);
  return 1;
}

static int m_zero_(lua_State *L) {
  nnl_check_nargs(L, 1, 0, "zero_", "");
  status_or_error(L, nn_inplace_zero(nnl_check_tensor(L, 1, "zero_")));
  lua_settop(L, 1);
  return 1;
}

static int m_copy_(lua_State *L) {
  nnl_check_nargs(L, 1, 1, "copy_", "src");
  nn_tensor *t = nnl_check_tensor(L, 1, "copy_"), *src = nnl_check_tensor(L, 2, "copy_");
  status_or_error(L, nn_inplace_copy("copy_", t, src));
  lua_settop(L, 1);
  return 1;
}

/* uniform_(from, to) and normal_(mean, std): in place, from the generator */
static int m_uniform_(lua_State *L) {
  nnl_check_nargs(L, 1, 2, "uniform_", "[from [, to]]");
  nn_tensor *t = nnl_check_tensor(L, 1, "uniform_");
  double a = luaL_optnumber(L, 2, 0), b = luaL_optnumber(L, 3, 1);
  status_or_error(L, nn_uniform_(t, a, b));
  lua_settop(L, 1);
  return 1;
}

static int m_normal_(lua_State *L) {
  nnl_check_nargs(L, 1, 2, "normal_", "[mean [, std]]");
  nn_tensor *t = nnl_check_tensor(L, 1, "normal_");
  double mean = luaL_optnumber(L, 2, 0), std = luaL_optnumber(L, 3, 1);
  if (!(std >= 0)) return nnl_error(L, "normal_: std must be non-negative, got %f", std);
  status_or_error(L, nn_normal_(t, mean, std));
  lua_settop(L, 1);
  return 1;
}

/* ---- reductions ----------------------------------------------------------- */
static int m_sum(lua_State *L) {
  nnl_check_nargs(L, 1, 2, "sum", "[dim [, keepdim]]");
  nn_tensor *t = nnl_check_tensor(L, 1, "sum");
  int d = opt_dim(L, 2, "sum");
  nnl_push_tensor(L, nn_sum(t, d, opt_flag(L, 3, "sum", "keepdim", 0)));
  return 1;
}

static int m_mean(lua_State *L) {
  nnl_check_nargs(L, 1, 2, "mean", "[dim [, keepdim]]");
  nn_tensor *t = nnl_check_tensor(L, 1, "mean");
  int d = opt_dim(L, 2, "mean");
  nnl_push_tensor(L, nn_mean(t, d, opt_flag(L, 3, "mean", "keepdim", 0)));
  return 1;
}

/* Indices come back 1-based, as everything a Lua user sees: a new tensor,
   since the engine may have saved the 0-based one for backward. */
/* The engine's 0-based indices made 1-based for Lua. */
nn_tensor *nnl_one_based(nn_tensor *idx) {
  if (!idx) return NULL;
  nn_tensor *shifted = nn_binary_scalar(NN_ADD, idx, 1, 0);
  nn_release(idx);
  return shifted;
}

static int max_min(lua_State *L, int want_max) {
  const char *op = want_max ? "max" : "min";
  nnl_check_nargs(L, 1, 2, op, "[dim [, keepdim]], or other");
  nn_tensor *t = nnl_check_tensor(L, 1, op);
  if (nnl_to_tensor(L, 2)) { /* max(a, b): elementwise, as torch.max(a, b) */
    nnl_check_nargs(L, 1, 1, op, "other");
    nnl_push_tensor(L, nn_binary(want_max ? NN_MAXIMUM : NN_MINIMUM, t, nnl_to_tensor(L, 2)));
    return 1;
  }
  if (lua_isnoneornil(L, 2)) {
    nnl_push_tensor(L, want_max ? nn_max(t, NN_ALL_DIMS, 0, NULL) : nn_min(t, NN_ALL_DIMS, 0, NULL));
    return 1;
  }
  int d = nnl_check_dim(L, 2, op);
  nn_tensor *idx = NULL;
  int keepdim = opt_flag(L, 3, op, "keepdim", 0);
  nn_tensor *v = want_max ? nn_max(t, d, keepdim, &idx) : nn_min(t, d, keepdim, &idx);
  if (!v) return nnl_engine_error(L);
  nnl_push_tensor(L, v);
  nnl_push_tensor(L, nnl_one_based(idx));
  return 2;
}
static int m_max(lua_State *L) { return max_min(L, 1); }
static int m_min(lua_State *L) { return max_min(L, 0); }

static int arg_extreme(lua_State *L, int want_max) {
  const char *op = want_max ? "argmax" : "argmin";
  nnl_check_nargs(L, 1, 2, op, "[dim [, keepdim]]");
  nn_tensor *t = nnl_check_tensor(L, 1, op);
  int d = opt_dim(L, 2, op);
  int keepdim = opt_flag(L, 3, op, "keepdim", 0);
  nnl_push_tensor(L, nnl_one_based(want_max ? nn_argmax(t, d, keepdim) : nn_argmin(t, d, keepdim)));
  return 1;
}
static int m_argmax(lua_State *L) { return arg_extreme(L, 1); }
static int m_argmin(lua_State *L) { return arg_extreme(L, 0); }

/* t:norm([p [, dim [, keepdim]]]): p a number, "fro" (2), "inf" or "-inf";
   dim one dimension, or nil for all. */
static int m_norm(lua_State *L) {
  nnl_check_nargs(L, 1, 3, "norm", "[p [, dim [, keepdim]]]");
  nn_tensor *t = nnl_check_tensor(L, 1, "norm");
  double p = 2;
  if (lua_type(L, 2) == LUA_TSTRING) {
    const char *s = lua_tostring(L, 2);
    if (strcmp(s, "inf") == 0) p = INFINITY;
    else if (strcmp(s, "-inf") == 0) p = -INFINITY;
    else if (strcmp(s, "fro") == 0) p = 2;
    else if (strcmp(s, "nuc") == 0)
      return nnl_error(L, "norm: the nuclear norm ('nuc') is not supported (a number, 'fro', 'inf' or '-inf')");
    else return nnl_error(L, "norm: unknown norm '%s' (a number, 'fro', 'inf' or '-inf')", s);
  } else if (!lua_isnoneornil(L, 2)) {
    if (lua_type(L, 2) != LUA_TNUMBER)
      return nnl_error(L, "norm: p must be a number, 'fro', 'inf' or '-inf', got %s", luaL_typename(L, 2));
    p = lua_tonumber(L, 2);
  }
  if (!lua_isnoneornil(L, 4) && !lua_isboolean(L, 4))
    return nnl_error(L, "norm: keepdim must be a boolean, got %s", luaL_typename(L, 4));
  if (lua_istable(L, 3)) /* several dims (issue 12) */
    nnl_push_tensor(L, nn_norm_dims(t, p, nnl_check_dims(L, 3, t, "norm"), lua_toboolean(L, 4)));
  else
    nnl_push_tensor(L, nn_norm(t, p, opt_dim(L, 3, "norm"), lua_toboolean(L, 4)));
  return 1;
}

static int m_matmul(lua_State *L) {
  nnl_check_nargs(L, 1, 1, "matmul", "other");
  nn_tensor *a = nnl_check_tensor(L, 1, "matmul"), *b = nnl_check_tensor(L, 2, "matmul");
  nnl_push_tensor(L, nn_matmul(a, b));
  return 1;
}

/* ---- autograd ------------------------------------------------------------- */
/* backward's options, from an options table at idx or a boolean
   (retain_graph, the older form). */
static int backward_options(lua_State *L, int idx, int *retain_graph, int *create_graph) {
  if (lua_isnoneornil(L, idx)) return 0;
  if (lua_isboolean(L, idx)) {
    *retain_graph = lua_toboolean(L, idx);
    return 0;
  }
  if (!lua_istable(L, idx))
    return nnl_error(L, "backward: expected retain_graph (a boolean) or an options table, got %s",
                     luaL_typename(L, idx));
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    const char *key = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : NULL;
    int known = key && (strcmp(key, "retain_graph") == 0 || strcmp(key, "create_graph") == 0);
    if (!known) {
      lua_pushvalue(L, -2);
      return nnl_error(L, "backward: unknown option %s (the options are retain_graph and create_graph)",
                       luaL_tolstring(L, -1, NULL));
    }
    if (!lua_isboolean(L, -1))
      return nnl_error(L, "backward: option %s must be a boolean, got %s", key, luaL_typename(L, -1));
    if (key[0] == 'r') *retain_graph = lua_toboolean(L, -1);
    else *create_graph = lua_toboolean(L, -1);
    lua_pop(L, 1);
  }
  /* as PyTorch: retain_graph defaults to create_graph */
  if (*create_graph && lua_getfield(L, idx, "retain_graph") == LUA_TNIL) *retain_graph = 1;
  lua_pop(L, 1);
  return 0;
}

static int m_backward(lua_State *L) {
  nn_tensor *t = nnl_check_tensor(L, 1, "backward"), *g = nnl_to_tensor(L, 2);
  int n = lua_gettop(L), opts = 2, retain = 0, create = 0;
  if (g || (n >= 3 && lua_isnil(L, 2))) opts = 3; /* a gradient (or nil) comes first */
  else if (n >= 2 && !lua_isnil(L, 2) && !lua_isboolean(L, 2) && !lua_istable(L, 2))
    return nnl_error(L, "backward: expected a gradient tensor, retain_graph (a boolean) or an options table, got %s",
                     luaL_typename(L, 2));
  if (n > opts)
    return nnl_error(L, "backward: takes a gradient and retain_graph or an options table, got %d arguments",
                     n - 1);
  backward_options(L, opts, &retain, &create);
  lua_State *outer = nnl_backward_state; /* a hook's thread is this one */
  nnl_backward_state = L;
  nnl_hook_raised = 0;
  int status = nn_backward_graph(t, g, retain, create);
  nnl_backward_state = outer;
  if (status < 0 && nnl_hook_raised) {
    nnl_hook_raised = 0;
    lua_pushstring(L, nn_error());
    return lua_error(L);
  }
  status_or_error(L, status);
  return 0;
}

static int m_requires_grad_(lua_State *L) {
  nnl_check_nargs(L, 1, 1, "requires_grad_", "[requires_grad]");
  nn_tensor *t = nnl_check_tensor(L, 1, "requires_grad_");
  status_or_error(L, nn_set_requires_grad(t, opt_flag(L, 2, "requires_grad_", "requires_grad", 1)));
  lua_settop(L, 1);
  return 1;
}

static int m_close(lua_State *L) { return release_box(L, "__close"); }

/* Fields: t.grad, t.requires_grad, t.dtype, t.device, t.shape, t.is_leaf,
   t.grad_fn; t[i] selects along the first dim. */
static int mt_index(lua_State *L) {
  if (lua_type(L, 2) == LUA_TSTRING) {
    lua_pushvalue(L, 2);
    if (lua_rawget(L, lua_upvalueindex(1)) != LUA_TNIL) return 1;
    const char *k = lua_tostring(L, 2);
    nn_tensor *t = nnl_check_tensor(L, 1, k);
    nn_sync_view(t); /* its history may have changed through its base */
    if (strcmp(k, "grad") == 0) {
      if (t->grad) nnl_push_tensor(L, nn_retain(nn_leaf_grad(t)));
      else lua_pushnil(L);
    } else if (strcmp(k, "requires_grad") == 0) {
      lua_pushboolean(L, t->requires_grad);
    } else if (strcmp(k, "dtype") == 0) {
      lua_pushstring(L, nn_dtype_name(t->dtype));
    } else if (strcmp(k, "device") == 0) {
      lua_pushstring(L, nn_device_name(t->device));
    } else if (strcmp(k, "is_cuda") == 0) {
      lua_pushboolean(L, t->device == NN_CUDA);
    } else if (strcmp(k, "shape") == 0) {
      lua_settop(L, 1);
      return m_size(L);
    } else if (strcmp(k, "is_leaf") == 0) {
      lua_pushboolean(L, t->grad_fn == NULL);
    } else if (strcmp(k, "grad_fn") == 0) {
      const char *name = nn_grad_fn_name(t);
      if (name) lua_pushstring(L, name);
      else lua_pushnil(L);
    } else if (luaL_getmetafield(L, 1, "properties") == LUA_TTABLE &&
               lua_getfield(L, -1, k) == LUA_TFUNCTION) {
      /* a property that nn's Lua modules define (t.retains_grad) */
      lua_pushvalue(L, 1);
      lua_call(L, 1, 1);
    } else {
      /* a method of a family not loaded yet (t:glu()): the methods' own
         __index loads it (lua/nn/init.lua); only a miss comes here */
      lua_getfield(L, lua_upvalueindex(1), k);
    }
    return 1;
  }
  /* issue 12: t[{...}], t[mask], t[index] (nn_index.c) */
  if (lua_istable(L, 2) || nnl_to_tensor(L, 2)) return nnl_index_get(L);
  nn_tensor *t = nnl_check_tensor(L, 1, "index");
  if (lua_type(L, 2) != LUA_TNUMBER)
    return nnl_error(L, "index: a tensor is indexed by an integer or a method name, got %s", luaL_typename(L, 2));
  if (t->ndim == 0) return nnl_error(L, "index: a 0-dimensional tensor cannot be indexed");
  nnl_push_tensor(L, nn_select(t, 0, check_index(L, 2, t->size[0], "index")));
  return 1;
}

static int mt_newindex(lua_State *L) {
  nn_tensor *t = nnl_check_tensor(L, 1, "newindex");
  if (lua_type(L, 2) == LUA_TSTRING) {
    const char *k = lua_tostring(L, 2);
    if (strcmp(k, "grad") == 0) {
      nn_tensor *g = lua_isnil(L, 3) ? NULL : nnl_check_tensor(L, 3, "grad");
      return status_or_error(L, nn_set_grad(t, g));
    }
    if (strcmp(k, "requires_grad") == 0) {
      if (!lua_isboolean(L, 3))
        return nnl_error(L, "requires_grad: must be set to a boolean, got %s", luaL_typename(L, 3));
      return status_or_error(L, nn_set_requires_grad(t, lua_toboolean(L, 3)));
    }
    return nnl_error(L, "a tensor has no settable field '%s'", k);
  }
  /* issue 12: t[{...}] = v, t[mask] = v, t[index] = v (nn_index.c) */
  if (lua_istable(L, 2) || nnl_to_tensor(L, 2)) return nnl_index_set(L);
  if (t->ndim == 0) return nnl_error(L, "index: a 0-dimensional tensor cannot be indexed");
  nn_tensor *src = nnl_to_tensor(L, 3);
  if (!src && lua_type(L, 3) != LUA_TNUMBER && !lua_isboolean(L, 3))
    return nnl_error(L, "index assignment: the value must be a number or a tensor, got %s", luaL_typename(L, 3));
  nn_tensor *row = nn_select(t, 0, check_index(L, 2, t->size[0], "index"));
  if (!row) return nnl_engine_error(L);
  /* a write through the view row: autograd records it on t's base */
  int status = src ? nn_inplace_copy("index assignment", row, src)
                   : nn_inplace_fill("index assignment", row,
                                     lua_isboolean(L, 3) ? lua_toboolean(L, 3) : lua_tonumber(L, 3));
  nn_release(row);
  return status_or_error(L, status);
}

/* ---- registration --------------------------------------------------------- */
/*** nn.Tensor: the methods every tensor has (t:sum(), t:view(...)); functions
 * added to nn.Tensor reach every tensor. Fields: t.dtype ("float32",
 * "float64", "int64", "bool"), t.device ("cpu", "cuda"), t.is_cuda, t.shape, t.grad,
 * t.requires_grad, t.is_leaf, t.grad_fn; t[i] selects along the first
 * dimension. Dimensions and indices are 1-based; a negative dimension counts
 * from the end. Operators + - * / ^ and unary - broadcast as in PyTorch;
 * comparisons are methods (t:gt(0)), since Lua's < must give a boolean.
 *   local t = nn.tensor({{1, 2}, {3, 4}})
 *   print(t:sum(), t:size(1), t.dtype)
 */
/*** t:size([dim]), t:stride([dim]), t:dim(), t:numel(), t:nelement()
 * The sizes as a table {d1, d2, ...} (or the size of one dimension, 1-based,
 * negative from the end); the strides in elements, likewise; the number of
 * dimensions; the number of elements (#t is the size of the first dim).
 *   nn.zeros(2, 3):size()   --> {2, 3}       nn.zeros(2, 3):size(-1) --> 3
 */
/*** t:is_contiguous()
 * true when the elements lie in memory in row-major order with no gaps.
 *   nn.zeros(2, 3):t():is_contiguous()   --> false
 */
/*** t:item()
 * The value of a one-element tensor as a Lua number (a boolean for bool).
 *   local loss_value = loss:item()
 */
/*** t:totable(), t:tolist()
 * The values as nested Lua tables (a number for a 0-dimensional tensor);
 * tolist is PyTorch's name.
 *   nn.eye(2):totable()   --> {{1, 0}, {0, 1}}
 */
/*** t:view(size...), t:reshape(size...)
 * The same elements with another shape; one size may be -1 (inferred).
 * view shares storage and needs a compatible layout; reshape copies when it
 * must. Sizes as numbers or one table.
 *   nn.arange(6):view(2, 3)       x:reshape(-1)
 */
/*** t:transpose(dim1, dim2), t:t(), t:permute(dims...)
 * Views with dimensions swapped (t() swaps the two of a matrix) or
 * reordered (permute(3, 1, 2) puts the last dimension first).
 *   local wt = w:t()
 */
/*** t:narrow(dim, start, length), t:select(dim, index)
 * Views: length entries of dim from start (1-based); or the slice at index
 * of dim, which removes that dimension (t[i] is t:select(1, i)).
 *   x:narrow(1, 2, 3)      x:select(2, 1)
 */
/*** t:unsqueeze(dim), t:squeeze([dim]), t:expand(size...)
 * Views: a new dimension of size 1 at dim; dimensions of size 1 removed (all,
 * or only dim); size-1 dimensions repeated to the given sizes without
 * copying (-1 keeps a size).
 *   nn.ones(3):unsqueeze(1):expand(4, 3)
 */
/*** t:contiguous(), t:clone(), t:detach()
 * A contiguous tensor (t itself when it already is); a copy that stays in the
 * graph (gradients flow back to t); the same values cut from the graph
 * (shares storage, requires no grad).
 *   local target = prediction:detach()
 */
/*** t:to(device_or_dtype), t:cuda(), t:cpu()
 * A copy on another device ("cpu", "cuda" or "cuda:0") or of another dtype
 * ("float32", "float64", "float16", "bfloat16", "int64", "int32", "int16",
 * "int8", "uint8", "bool", or PyTorch's other names: "half", "int", ...);
 * t itself when nothing changes.
 * A copy to another device is recorded by autograd: the gradient comes
 * back to t's device. Copies to the CPU wait for the GPU's results.
 *   x = x:to("cuda")        y = y:to("float64")        print(x.device, x.is_cuda)
 */
/*** t:float(), t:double(), t:half(), t:bfloat16(), t:long(), t:int(), t:short(), t:char(), t:byte(), t:bool()
 * Conversions to float32, float64, float16, bfloat16, int64, int32, int16,
 * int8, uint8 and bool, as PyTorch converts: a float into an integer drops
 * its fraction, an integer too wide wraps (300 is 44 as int8, -1 is 255 as
 * uint8), float16 and bfloat16 round to nearest even (NaN stays NaN).
 * float16 and bfloat16 compute in float32 and round each result.
 *   local predicted = h:gt(0.5):float()
 *   local pixels = nn.tensor({0, 128, 255}):byte()
 */
/*** t:clamp([min] [, max]), t:clamp_([min] [, max])
 * Values limited to [min, max] (nil for an open side); clamp_ in place.
 *   probs:clamp(1e-7, 1 - 1e-7)
 */
/*** t:fill_(value), t:zero_(), t:copy_(src)
 * In place: every element set to value, or to 0; src's values copied in
 * (broadcast to t's shape, converted to its dtype). They return t. As every
 * in-place op, on a tensor in a graph they are recorded for backward (through
 * a view, on the view's base), as PyTorch records them; a leaf that requires
 * grad is changed only inside nn.no_grad.
 *   w:fill_(0.5)
 */
/*** t:uniform_([from = 0, to = 1]), t:normal_([mean = 0, std = 1])
 * In place: random values from nn's generator, uniform in [from, to) or
 * normal. They return t.
 *   nn.empty(3, 3):uniform_(-0.1, 0.1)
 */
/*** t:sum([dim [, keepdim = false]]), t:mean([dim [, keepdim = false]])
 * The sum or mean of all elements (a 0-dimensional tensor), or along dim,
 * keeping it as size 1 when keepdim is true.
 *   x:sum()        x:mean(1, true)
 */
/*** t:max([dim [, keepdim = false]]), t:min([dim [, keepdim = false]])
 * The largest (smallest) element; along dim, the values and their 1-based
 * indices (two tensors); with a tensor argument, the elementwise maximum
 * (minimum) of the two, as t:maximum(other).
 *   local values, indices = scores:max(2)
 */
/*** t:argmax([dim [, keepdim = false]]), t:argmin([dim [, keepdim = false]])
 * The 1-based index of the largest (smallest) element, over the flattened
 * tensor or along dim (int64).
 *   local predicted_class = logits:argmax(2)
 */
/*** t:norm([p = 2 [, dim [, keepdim = false]]])
 * The p-norm of all elements, or along one dimension: p a number (0 counts
 * the nonzeros), "fro" (2), "inf" (largest |x|) or "-inf" (smallest).
 *   grad:norm()          rows:norm(2, 2)
 */
/*** t:matmul(other)
 * Matrix product with PyTorch's rules: vectors, matrices, and batches of
 * matrices broadcast over the leading dimensions.
 *   local y = x:matmul(w:t())
 */
/*** t:backward([grad] [, retain_graph = false]), t:backward([grad,] {retain_graph =, create_graph =})
 * Computes the gradients of t with respect to every leaf that requires grad
 * and adds them to their .grad. grad is needed when t is not a single
 * number; retain_graph keeps the graph for a second backward.
 * create_graph = true records the backward pass itself: each .grad is then a
 * tensor with a history, which can be differentiated again (second
 * derivatives; retain_graph then defaults to true). Set x.grad = nil before
 * the next pass: the .grad holds the graph that holds x (PyTorch warns of
 * the same cycle); nn.autograd.grad avoids it.
 *   local loss = criterion(model(x), y); loss:backward()
 *   y:backward{create_graph = true}; local g = x.grad; x.grad = nil; g:sum():backward()
 */
/*** t:requires_grad_([on = true])
 * Marks (or unmarks) a leaf tensor as one whose gradient backward computes;
 * returns t.
 *   local w = nn.randn(3):requires_grad_()
 */
/*** t:add(other), t:sub(other), t:mul(other), t:div(other), t:pow(other),
 * t:maximum(other), t:minimum(other),
 * t:add_(other), t:sub_(other), t:mul_(other), t:div_(other), t:pow_(other),
 * t:maximum_(other), t:minimum_(other)
 * Elementwise arithmetic with a tensor (broadcast) or a number, as the
 * operators + - * / ^ do; the forms ending in _ change t in place and return
 * it.
 *   x:add(1)        w:sub_(g:mul(lr))
 */
/*** t:gt(other), t:ge(other), t:lt(other), t:le(other), t:eq(other), t:ne(other),
 * t:gt_(other), t:ge_(other), t:lt_(other), t:le_(other), t:eq_(other), t:ne_(other)
 * Elementwise comparisons with a tensor or a number: a bool tensor (in place:
 * 1 or 0 in t's dtype). Lua's own < and == cannot give tensors, hence methods.
 *   local accuracy = h:gt(0.5):float():eq(y):float():mean():item()
 */
/*** t:neg(), t:exp(), t:log(), t:sqrt(), t:abs(), t:sign(),
 * t:sin(), t:cos(), t:floor(), t:ceil(), t:round(),
 * t:sigmoid(), t:tanh(), t:relu(), t:step(),
 * t:neg_(), t:exp_(), t:log_(), t:sqrt_(), t:abs_(), t:sign_(),
 * t:sin_(), t:cos_(), t:floor_(), t:ceil_(), t:round_(),
 * t:sigmoid_(), t:tanh_(), t:relu_(), t:step_()
 * Elementwise functions (step: 1 where x > 0, else 0); the forms ending in _
 * work in place and return t. All have gradients where they are defined.
 *   local h = x:matmul(w:t()):sigmoid()
 */
static const luaL_Reg methods[] = {
    {"size", m_size}, {"stride", m_stride}, {"dim", m_dim}, {"numel", m_numel},
    {"nelement", m_numel}, {"is_contiguous", m_is_contiguous}, {"item", m_item},
    {"view", m_view}, {"reshape", m_reshape}, {"transpose", m_transpose},
    {"t", m_t}, {"permute", m_permute}, {"narrow", m_narrow}, {"select", m_select},
    {"unsqueeze", m_unsqueeze}, {"squeeze", m_squeeze}, {"expand", m_expand},
    {"contiguous", m_contiguous}, {"clone", m_clone}, {"detach", m_detach}, {"to", m_to},
    {"cuda", m_cuda}, {"cpu", m_cpu}, {"clamp", m_clamp}, {"clamp_", m_clamp_},
    {"fill_", m_fill_}, {"zero_", m_zero_}, {"copy_", m_copy_}, {"uniform_", m_uniform_},
    {"normal_", m_normal_}, {"sum", m_sum}, {"mean", m_mean}, {"max", m_max}, {"min", m_min},
    {"argmax", m_argmax}, {"argmin", m_argmin}, {"norm", m_norm}, {"matmul", m_matmul},
    {"backward", m_backward}, {"requires_grad_", m_requires_grad_},
    {"element_size", m_element_size}, {"is_floating_point", m_is_floating_point}, {NULL, NULL}};

static const struct { const char *name; nn_binary_op op; } binary_methods[] = {
    {"add", NN_ADD}, {"sub", NN_SUB}, {"mul", NN_MUL}, {"div", NN_DIV}, {"pow", NN_POW},
    {"maximum", NN_MAXIMUM}, {"minimum", NN_MINIMUM}, {"gt", NN_GT}, {"ge", NN_GE},
    {"lt", NN_LT}, {"le", NN_LE}, {"eq", NN_EQ}, {"ne", NN_NE},
    /* issue 12's math (lua/nn_math.c documents them) */
    {"atan2", NN_ATAN2}, {"fmod", NN_FMOD}, {"remainder", NN_REMAINDER},
    {"logical_and", NN_LOGICAL_AND}, {"logical_or", NN_LOGICAL_OR},
    {"logical_xor", NN_LOGICAL_XOR}, {"floor_divide", NN_FLOOR_DIVIDE}};

static const struct { const char *name; nn_unary_op op; } unary_methods[] = {
    {"neg", NN_NEG}, {"exp", NN_EXP}, {"log", NN_LOG}, {"sqrt", NN_SQRT}, {"abs", NN_ABS},
    {"sigmoid", NN_SIGMOID}, {"tanh", NN_TANH}, {"relu", NN_RELU}, {"step", NN_STEP},
    {"sin", NN_SIN}, {"cos", NN_COS}, {"sign", NN_SIGN}, {"floor", NN_FLOOR}, {"ceil", NN_CEIL},
    {"round", NN_ROUND},
    /* issue 12's math (lua/nn_math.c documents them); the tests isnan,
       isinf and isfinite have no in-place form, as in PyTorch */
    {"log1p", NN_LOG1P}, {"expm1", NN_EXPM1}, {"log2", NN_LOG2}, {"log10", NN_LOG10},
    {"rsqrt", NN_RSQRT}, {"reciprocal", NN_RECIPROCAL}, {"square", NN_SQUARE}, {"tan", NN_TAN},
    {"asin", NN_ASIN}, {"acos", NN_ACOS}, {"atan", NN_ATAN}, {"sinh", NN_SINH},
    {"cosh", NN_COSH}, {"erf", NN_ERF}, {"erfinv", NN_ERFINV}, {"trunc", NN_TRUNC},
    {"frac", NN_FRAC}, {"logical_not", NN_LOGICAL_NOT}, {"isnan", NN_ISNAN}, {"isinf", NN_ISINF},
    {"isfinite", NN_ISFINITE}};

static void set_closure(lua_State *L, lua_CFunction fn, lua_Integer up, const char *name) {
  lua_pushinteger(L, up);
  lua_pushcclosure(L, fn, 1);
  lua_setfield(L, -2, name);
}

void nnl_open_tensor(lua_State *L) {
  luaL_newmetatable(L, NNL_TENSOR);
  /* methods: sized for what nn puts in it as it loads (some 270, the
     families' stand-ins among them), so that it never grows meanwhile */
  lua_createtable(L, 0, 288);
  luaL_setfuncs(L, methods, 0);
  lua_pushliteral(L, "totable");
  lua_pushcclosure(L, m_totable, 1);
  lua_setfield(L, -2, "totable");
  lua_pushliteral(L, "tolist"); /* totable under PyTorch's name, naming itself in errors */
  lua_pushcclosure(L, m_totable, 1);
  lua_setfield(L, -2, "tolist");
  char name[32];
  for (size_t i = 0; i < sizeof binary_methods / sizeof binary_methods[0]; i++) {
    set_closure(L, m_binary, binary_methods[i].op, binary_methods[i].name);
    snprintf(name, sizeof name, "%s_", binary_methods[i].name);
    set_closure(L, m_binary_, binary_methods[i].op, name);
  }
  lua_pushcfunction(L, m_div);
  lua_setfield(L, -2, "div");
  lua_pushcfunction(L, m_div_);
  lua_setfield(L, -2, "div_");
  for (size_t i = 0; i < sizeof unary_methods / sizeof unary_methods[0]; i++) {
    set_closure(L, m_unary, unary_methods[i].op, unary_methods[i].name);
    snprintf(name, sizeof name, "%s_", unary_methods[i].name);
    if (unary_methods[i].op < NN_ISNAN) set_closure(L, m_unary_, unary_methods[i].op, name);
  }
  for (size_t i = 0; i < sizeof conversions / sizeof conversions[0]; i++)
    set_closure(L, m_to_dtype, (lua_Integer)i, conversions[i].name);
  lua_pushvalue(L, -1);
  lua_setfield(L, -3, "methods"); /* metatable.methods: Lua code adds to it */
  lua_pushcclosure(L, mt_index, 1);
  lua_setfield(L, -2, "__index");
  static const luaL_Reg meta[] = {
      {"__newindex", mt_newindex}, {"__tostring", m_tostring}, {"__gc", m_gc},
      {"__close", m_close}, {"__len", m_len}, {"__eq", m_eq}, {"__add", mt_add},
      {"__sub", mt_sub}, {"__mul", mt_mul}, {"__div", mt_div}, {"__pow", mt_pow},
      {"__unm", mt_unm}, {"__lt", m_lt}, {"__le", m_le}, {"__idiv", mt_idiv},
      {"__mod", mt_mod}, {"__band", mt_band}, {"__bor", mt_bor}, {"__bxor", mt_bxor}, {"__bnot", mt_bnot},
      {NULL, NULL}};
  luaL_setfuncs(L, meta, 0);
  lua_pushliteral(L, "nn.Tensor");
  lua_setfield(L, -2, "__name");
  lua_rawsetp(L, LUA_REGISTRYINDEX, &metatable_key);
  lua_createtable(L, 0, 1);
  lua_pushcfunction(L, sizes_tostring);
  lua_setfield(L, -2, "__tostring");
  lua_rawsetp(L, LUA_REGISTRYINDEX, &sizes_metatable_key);
}

/*** nn.tensor(data [, {dtype = "float32", device = "cpu", requires_grad = false}])
 * A tensor from a number (0-dimensional), nested Lua tables of numbers or
 * booleans (every row the same length), or another tensor (copied).
 * dtype: "float32", "float64", "float16", "bfloat16", "int64", "int32",
 * "int16", "int8", "uint8" or "bool"; device: "cpu" or "cuda".
 *   local X = nn.tensor({{0, 0}, {0, 1}, {1, 0}, {1, 1}})
 *   local w = nn.tensor({0.5, -0.5}, {dtype = "float64", requires_grad = true})
 */

/*** t:element_size(), t:is_floating_point()
 * The bytes of one element (2 for float16, 1 for uint8, ...); whether the
 * dtype is float16, bfloat16, float32 or float64.
 *   nn.zeros(3, {dtype = "bfloat16"}):element_size()   --> 2
 */
/*** nn.promote_types(dtype1, dtype2)
 * The dtype an op on tensors of these two dtypes computes in and returns,
 * PyTorch's torch.promote_types: the higher category (bool < integer <
 * floating), the wider within one; int8 with uint8 gives int16, float16
 * with bfloat16 gives float32. A tensor with dimensions outranks a 0-d one
 * or a number of its category: int8 tensor + 300 stays int8 (and wraps).
 *   nn.promote_types("int8", "uint8")   --> "int16"
 */
static int l_promote_types(lua_State *L) {
  nnl_check_nargs(L, 2, 2, "promote_types", "dtype1, dtype2");
  int d[2];
  for (int i = 0; i < 2; i++) {
    const char *name = luaL_checkstring(L, i + 1);
    if ((d[i] = nn_dtype_from_name(name)) < 0) return nnl_error(L, "promote_types: unknown dtype '%s'", name);
  }
  lua_pushstring(L, nn_dtype_name(nn_promote_types((nn_dtype)d[0], (nn_dtype)d[1])));
  return 1;
}

void nnl_register_tensor_constructor(lua_State *L);
void nnl_register_tensor_constructor(lua_State *L) {
  lua_pushcfunction(L, l_tensor);
  lua_setfield(L, -2, "tensor");
  lua_pushcfunction(L, l_promote_types);
  lua_setfield(L, -2, "promote_types");
}

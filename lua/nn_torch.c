/* nn_torch.c: the binding's C functions behind nn.load and nn.save of
 * PyTorch's .pt files (engine/src/torch_file.c does the reading and the
 * writing; lua/nn/torch_file.lua makes the pickle a save writes). */
#include <string.h>

#include "nn_binding.h"

/* file_kind(path) -> "zip", "pickle" or "other" */
static int l_file_kind(lua_State *L) {
  int kind = nn_file_kind(luaL_checkstring(L, 1));
  if (kind < 0) return nnl_engine_error(L);
  lua_pushstring(L, kind == NN_FILE_ZIP ? "zip" : kind == NN_FILE_PICKLE ? "pickle" : "other");
  return 1;
}

/* The file being converted, closed by __gc even when an error is raised. */
#define PT_FILE "nn.TorchFile"

static int pt_file_gc(lua_State *L) {
  nn_pt_file **box = luaL_checkudata(L, 1, PT_FILE);
  nn_pt_close(*box);
  *box = NULL;
  return 0;
}

typedef struct {
  const char *path;
  int cache; /* value (light userdata) -> its Lua value, so that shared values stay shared */
  int info;  /* the table's side information (nn._ordered.info) */
  int metatable; /* ordered tables' metatable */
} conversion;

static void push_value(lua_State *L, const conversion *c, const nn_pt_value *v);

/* A dict key as a Lua key: strings and bytes, numbers, booleans. */
static void push_key(lua_State *L, const conversion *c, const nn_pt_value *k) {
  switch (k->kind) {
  case NN_PT_STRING: case NN_PT_BYTES: case NN_PT_INT: case NN_PT_BOOL:
    push_value(L, c, k);
    return;
  case NN_PT_FLOAT:
    if (k->number != k->number) nnl_error(L, "load: %s: a dict key is NaN, which a Lua table cannot hold", c->path);
    push_value(L, c, k);
    return;
  default:
    nnl_error(L, "load: %s: a dict key is %s, which a Lua table cannot hold as a key", c->path,
              k->kind == NN_PT_NONE ? "None" : k->kind == NN_PT_TUPLE ? "a tuple" : "a tensor");
  }
}

/* info[t] = {kind = kind, keys = keys-table-on-top (popped) or none, state = ...}
   for the table at index t. */
static void set_info(lua_State *L, const conversion *c, int t, const char *kind, int keys, int state) {
  lua_pushvalue(L, t);
  lua_createtable(L, 0, 3);
  lua_pushstring(L, kind);
  lua_setfield(L, -2, "kind");
  if (keys) {
    lua_pushvalue(L, keys);
    lua_setfield(L, -2, "keys");
  }
  if (state) {
    lua_pushvalue(L, state);
    lua_setfield(L, -2, "state");
  }
  lua_rawset(L, c->info);
}

static void push_container(lua_State *L, const conversion *c, const nn_pt_value *v) {
  luaL_checkstack(L, 8, "load: nesting");
  int dict = v->kind == NN_PT_DICT;
  lua_createtable(L, dict ? 0 : (int)v->count, dict ? (int)v->count : 0);
  int t = lua_gettop(L);
  /* cached before its items are converted: the engine has refused cycles,
     and a value shared below this one converts once */
  lua_pushlightuserdata(L, (void *)v);
  lua_pushvalue(L, t);
  lua_rawset(L, c->cache);
  if (!dict) {
    for (int64_t i = 0; i < v->count; i++) {
      push_value(L, c, v->items[i]); /* None leaves a hole: Lua's nil */
      lua_rawseti(L, t, (lua_Integer)i + 1);
    }
    set_info(L, c, t, v->kind == NN_PT_LIST ? "list" : "tuple", 0, 0);
    return;
  }
  lua_createtable(L, (int)v->count, 0);
  int keys = lua_gettop(L);
  lua_Integer nkeys = 0;
  for (int64_t i = 0; i < v->count; i++) {
    push_key(L, c, v->items[2 * i]);
    lua_pushvalue(L, -1);
    if (lua_rawget(L, t) == LUA_TNIL) { /* a new key: its place in the order */
      lua_pushvalue(L, -2);
      lua_rawseti(L, keys, ++nkeys);
    }
    lua_pop(L, 1);
    push_value(L, c, v->items[2 * i + 1]);
    lua_rawset(L, t);
  }
  int state = 0;
  if (v->state) {
    push_value(L, c, v->state);
    state = lua_gettop(L);
  }
  set_info(L, c, t, v->ordered ? "OrderedDict" : "dict", keys, state);
  if (state) lua_pop(L, 1);
  lua_pop(L, 1); /* keys */
  lua_pushvalue(L, c->metatable);
  lua_setmetatable(L, t);
}

static void push_value(lua_State *L, const conversion *c, const nn_pt_value *v) {
  luaL_checkstack(L, 4, "load: nesting");
  switch (v->kind) {
  case NN_PT_NONE: lua_pushnil(L); return;
  case NN_PT_BOOL: lua_pushboolean(L, (int)v->integer); return;
  case NN_PT_INT: lua_pushinteger(L, (lua_Integer)v->integer); return;
  case NN_PT_FLOAT: lua_pushnumber(L, v->number); return;
  case NN_PT_STRING: case NN_PT_BYTES: lua_pushlstring(L, v->bytes, v->len); return;
  default: break;
  }
  lua_pushlightuserdata(L, (void *)v);
  if (lua_rawget(L, c->cache) != LUA_TNIL) return;
  lua_pop(L, 1);
  if (v->kind == NN_PT_TENSOR) {
    nnl_push_tensor(L, nn_retain(v->tensor));
    lua_pushlightuserdata(L, (void *)v);
    lua_pushvalue(L, -2);
    lua_rawset(L, c->cache);
    return;
  }
  push_container(L, c, v);
}

/* pt_read(path, info, metatable) -> the value a torch.save file holds:
   dicts as tables in their order (ordered by metatable; what they were
   recorded in info), lists and tuples as sequences, tensors, numbers,
   strings, booleans; None as nil. */
static int l_pt_read(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  luaL_checktype(L, 2, LUA_TTABLE);
  luaL_checktype(L, 3, LUA_TTABLE);
  nn_pt_file **box = lua_newuserdatauv(L, sizeof *box, 0);
  *box = NULL;
  if (luaL_newmetatable(L, PT_FILE)) {
    lua_pushcfunction(L, pt_file_gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_setmetatable(L, -2);
  int file = lua_gettop(L);
  if (!(*box = nn_pt_read(path))) return nnl_engine_error(L);
  lua_newtable(L);
  conversion c = {path, lua_gettop(L), 2, 3};
  push_value(L, &c, nn_pt_root(*box));
  nnl_account_memory(L);
  /* the tensors hold their storages; the file's own references go now */
  lua_pushcfunction(L, pt_file_gc);
  lua_pushvalue(L, file);
  lua_call(L, 1, 0);
  return 1;
}

/* tensor_storage(t) -> the storage's identity (a light userdata) and the
   tensor's offset into it, in elements from 0 */
static int l_tensor_storage(lua_State *L) {
  nn_tensor *t = nnl_check_tensor(L, 1, "save");
  lua_pushlightuserdata(L, (void *)t->storage);
  lua_pushinteger(L, (lua_Integer)t->offset);
  return 2;
}

/* pt_write(path, pickle, storages): storages[i] = {tensor, first, count},
   written as the record of key i - 1 */
static int l_pt_write(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  size_t len;
  const char *pickle = luaL_checklstring(L, 2, &len);
  luaL_checktype(L, 3, LUA_TTABLE);
  lua_Integer n = (lua_Integer)lua_rawlen(L, 3);
  nn_pt_storage *storages = lua_newuserdatauv(L, sizeof *storages * (size_t)(n > 0 ? n : 1), 0);
  for (lua_Integer i = 1; i <= n; i++) {
    lua_rawgeti(L, 3, i);
    luaL_checktype(L, -1, LUA_TTABLE);
    lua_rawgeti(L, -1, 1);
    storages[i - 1].tensor = nnl_check_tensor(L, -1, "save"); /* kept alive by argument 3 */
    lua_rawgeti(L, -2, 2);
    lua_rawgeti(L, -3, 3);
    storages[i - 1].first = (int64_t)luaL_checkinteger(L, -2);
    storages[i - 1].count = (int64_t)luaL_checkinteger(L, -1);
    lua_pop(L, 4);
  }
  if (nn_pt_write(path, pickle, len, storages, (int64_t)n) < 0) return nnl_engine_error(L);
  return 0;
}

static const luaL_Reg torch_functions[] = {
    {"file_kind", l_file_kind},
    {"pt_read", l_pt_read},
    {"tensor_storage", l_tensor_storage},
    {"pt_write", l_pt_write},
    {NULL, NULL}};

void nnl_register_torch(lua_State *L) { luaL_setfuncs(L, torch_functions, 0); }

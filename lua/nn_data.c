/* nn_data.c: the binding's C functions behind nn.data (IDX files, the data
 * loader's gather and permutation) and nn.save/nn.load (safetensors bytes,
 * atomic writes). The engine's io.c does the work; these read arguments
 * in the order lua/nn/data.lua and lua/nn/serialize.lua pass them. */
#include <stdlib.h>
#include <string.h>

#include "nn_binding.h"

/* data_read_idx(path [, dtype [, scale = 1]]) -> tensor */
static int l_read_idx(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  int dtype = -1;
  if (!lua_isnoneornil(L, 2)) {
    const char *name = luaL_checkstring(L, 2);
    dtype = nn_dtype_from_name(name);
    if (dtype < 0) return nnl_error(L, "idx: unknown dtype '%s'", name);
  }
  double scale = luaL_optnumber(L, 3, 1.0);
  nnl_push_tensor(L, nn_read_idx(path, dtype, scale));
  nnl_account_memory(L);
  return 1;
}

/* The batch's first row (1-based, at idx) as the engine's 0-based start,
   and its row count (at idx + 1). */
static int64_t check_batch_rows(lua_State *L, int idx, int64_t *count) {
  lua_Integer first = luaL_checkinteger(L, idx), n = luaL_checkinteger(L, idx + 1);
  if (first < 1) nnl_error(L, "DataLoader: the first row of a batch must be 1 or more, got %I", first);
  if (n < 0) nnl_error(L, "DataLoader: a batch cannot have %I rows", n);
  *count = n;
  return first - 1;
}

/* data_gather(src, rows, first, count) -> rows[first .. first+count-1] of
   src (first 1-based into rows; rows hold 0-based row numbers) */
static int l_gather(lua_State *L) {
  nn_tensor *src = nnl_check_tensor(L, 1, "DataLoader");
  nn_tensor *rows = nnl_check_tensor(L, 2, "DataLoader");
  int64_t count, start = check_batch_rows(L, 3, &count);
  nnl_push_tensor(L, nn_gather_rows(src, rows, start, count));
  return 1;
}

/* data_gather_start(src, rows, first, count) -> a job copying those rows
   on the prefetch thread; data_gather_finish(job) -> the batch. A job
   dropped unfinished (a loop left early) is finished by the collector, so
   the copy never outlives its tensors. */
#define GATHER_JOB "nn.GatherJob"

static int l_gather_start(lua_State *L) {
  nn_tensor *src = nnl_check_tensor(L, 1, "DataLoader");
  nn_tensor *rows = nnl_check_tensor(L, 2, "DataLoader");
  int64_t count, start = check_batch_rows(L, 3, &count);
  nn_gather_job **box = lua_newuserdatauv(L, sizeof *box, 0);
  *box = NULL;
  luaL_setmetatable(L, GATHER_JOB);
  if (!(*box = nn_gather_rows_start(src, rows, start, count))) return nnl_engine_error(L);
  return 1;
}

static int l_gather_finish(lua_State *L) {
  nn_gather_job **box = luaL_checkudata(L, 1, GATHER_JOB);
  if (!*box) return nnl_error(L, "DataLoader: this batch was already taken");
  nn_tensor *out = nn_gather_rows_finish(*box);
  *box = NULL;
  nnl_push_tensor(L, out);
  return 1;
}

static int gather_job_gc(lua_State *L) {
  nn_gather_job **box = luaL_checkudata(L, 1, GATHER_JOB);
  if (*box) nn_release(nn_gather_rows_finish(*box));
  *box = NULL;
  return 0;
}

/* data_gather_reuse(buf, src, rows, first, count): the same, refilling buf
   (returned as the same Lua value) when nothing else holds it */
static int l_gather_reuse(lua_State *L) {
  nn_tensor *buf = lua_isnil(L, 1) ? NULL : nnl_check_tensor(L, 1, "DataLoader");
  nn_tensor *src = nnl_check_tensor(L, 2, "DataLoader");
  nn_tensor *rows = nnl_check_tensor(L, 3, "DataLoader");
  int64_t count, start = check_batch_rows(L, 4, &count);
  nn_tensor *out = nn_gather_rows_reuse(buf, src, rows, start, count);
  if (out && out == buf) {
    nn_release(out); /* the Lua value at 1 keeps its own reference */
    lua_pushvalue(L, 1);
    return 1;
  }
  nnl_push_tensor(L, out);
  return 1;
}

/* data_permutation(n, seed, stream) -> int64 tensor of 0..n-1 shuffled */
static int l_permutation(lua_State *L) {
  lua_Integer n = luaL_checkinteger(L, 1), seed = luaL_checkinteger(L, 2);
  lua_Integer stream = luaL_optinteger(L, 3, 0);
  nnl_push_tensor(L, nn_permutation(n, (uint64_t)seed, (uint64_t)stream));
  return 1;
}

/* write_file_atomic(path, bytes) */
static int l_write_file_atomic(lua_State *L) {
  size_t len;
  const char *path = luaL_checkstring(L, 1), *data = luaL_checklstring(L, 2, &len);
  if (nn_write_file_atomic(path, data, len) < 0) return nnl_engine_error(L);
  return 0;
}

/* safetensors_dtype(tensor) -> "F32", ... */
static int l_safetensors_dtype(lua_State *L) {
  nn_tensor *t = nnl_check_tensor(L, 1, "save");
  const char *name = nn_safetensors_dtype_name(t->dtype);
  if (!name) return nnl_error(L, "save: safetensors cannot hold dtype %s", nn_dtype_name(t->dtype));
  lua_pushstring(L, name);
  lua_pushinteger(L, (lua_Integer)nn_dtype_size(t->dtype));
  return 2;
}

/* safetensors_read_header(path) -> the JSON header (a string) */
static int l_safetensors_read_header(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  size_t len;
  char *header = nn_safetensors_read_header(path, &len);
  if (!header) return nnl_engine_error(L);
  lua_pushlstring(L, header, len);
  free(header);
  return 1;
}

/* A non-negative integer field of the entry table on top: a Lua integer,
   never a string or a float that happens to convert. */
static uint64_t entry_offset(lua_State *L, int idx, lua_Integer k, const char *name) {
  lua_rawgeti(L, idx, k);
  int ok = lua_isinteger(L, -1);
  lua_Integer v = lua_tointeger(L, -1);
  lua_pop(L, 1);
  if (!ok || v < 0)
    nnl_error(L, "load: tensor '%s': data_offsets must be two non-negative integers", name);
  return (uint64_t)v;
}

/* The entries and their tensors, freed by __gc even when an error is raised. */
typedef struct {
  int64_t n;
  nn_safetensors_entry *entries;
  nn_tensor **tensors;
} read_job;

#define READ_JOB "nn.SafetensorsReadJob"

static int read_job_gc(lua_State *L) {
  read_job *job = luaL_checkudata(L, 1, READ_JOB);
  if (job->tensors)
    for (int64_t i = 0; i < job->n; i++) nn_release(job->tensors[i]);
  free(job->entries), free(job->tensors);
  job->entries = NULL, job->tensors = NULL;
  return 0;
}

/* safetensors_read(path, header_len, entries) -> list of tensors, where
   entries[i] = {name, dtype, shape (list), begin, end}: everything is
   checked against the file in C before a byte is copied. */
static int l_safetensors_read(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  lua_Integer header_len = luaL_checkinteger(L, 2);
  luaL_checktype(L, 3, LUA_TTABLE);
  lua_Integer n = (lua_Integer)lua_rawlen(L, 3);
  if (header_len < 0) return nnl_error(L, "load: bad header length");
  read_job *job = lua_newuserdatauv(L, sizeof *job, 0);
  job->n = 0, job->entries = NULL, job->tensors = NULL;
  if (luaL_newmetatable(L, READ_JOB)) {
    lua_pushcfunction(L, read_job_gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_setmetatable(L, -2);
  int job_idx = lua_gettop(L);
  job->entries = calloc((size_t)(n > 0 ? n : 1), sizeof *job->entries);
  job->tensors = calloc((size_t)(n > 0 ? n : 1), sizeof *job->tensors);
  if (!job->entries || !job->tensors) return nnl_error(L, "load: out of memory");
  for (lua_Integer i = 1; i <= n; i++) {
    nn_safetensors_entry *e = &job->entries[i - 1];
    lua_rawgeti(L, 3, i);
    int entry = lua_gettop(L);
    luaL_checktype(L, entry, LUA_TTABLE);
    lua_rawgeti(L, entry, 1);
    lua_rawgeti(L, entry, 2);
    if (lua_type(L, -2) != LUA_TSTRING || lua_type(L, -1) != LUA_TSTRING)
      return nnl_error(L, "load: a tensor entry lacks its name or dtype");
    /* both strings stay alive: the entry table, kept by argument 3, holds them */
    e->name = lua_tostring(L, -2);
    e->dtype = lua_tostring(L, -1);
    lua_pop(L, 2);
    lua_rawgeti(L, entry, 3);
    if (!lua_istable(L, -1)) return nnl_error(L, "load: tensor '%s': shape must be a list", e->name);
    lua_Integer nd = (lua_Integer)lua_rawlen(L, -1);
    if (nd > NN_MAX_DIMS)
      return nnl_error(L, "load: tensor '%s' has %I dimensions, at most %d are supported", e->name,
                       nd, NN_MAX_DIMS);
    e->ndim = (int)nd;
    for (int d = 0; d < e->ndim; d++) {
      lua_rawgeti(L, -1, d + 1);
      int ok = lua_isinteger(L, -1);
      lua_Integer s = lua_tointeger(L, -1);
      if (!ok || s < 0)
        return nnl_error(L, "load: tensor '%s': the shape must hold non-negative integers", e->name);
      e->shape[d] = s;
      lua_pop(L, 1);
    }
    lua_pop(L, 1);
    e->begin = entry_offset(L, entry, 4, e->name);
    e->end = entry_offset(L, entry, 5, e->name);
    /* the entry table stays on the stack only while read: its strings are
       kept by entries, itself kept by argument 3 */
    lua_pop(L, 1);
  }
  job->n = n;
  if (nn_safetensors_read(path, (size_t)header_len, job->entries, n, job->tensors) < 0)
    return nnl_engine_error(L);
  lua_createtable(L, (int)n, 0);
  for (lua_Integer i = 1; i <= n; i++) {
    nnl_push_tensor(L, job->tensors[i - 1]);
    job->tensors[i - 1] = NULL; /* Lua owns it now */
    lua_rawseti(L, -2, i);
  }
  lua_remove(L, job_idx);
  nnl_account_memory(L);
  return 1;
}

/* safetensors_write(path, header, tensors) */
static int l_safetensors_write(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  size_t header_len;
  const char *header = luaL_checklstring(L, 2, &header_len);
  luaL_checktype(L, 3, LUA_TTABLE);
  lua_Integer n = (lua_Integer)lua_rawlen(L, 3);
  nn_tensor **tensors = lua_newuserdatauv(L, sizeof *tensors * (size_t)(n > 0 ? n : 1), 0);
  for (lua_Integer i = 1; i <= n; i++) {
    lua_rawgeti(L, 3, i);
    tensors[i - 1] = nnl_check_tensor(L, -1, "save"); /* kept alive by argument 3 */
    lua_pop(L, 1);
  }
  if (nn_safetensors_write(path, header, header_len, tensors, n) < 0) return nnl_engine_error(L);
  return 0;
}

static const luaL_Reg data_functions[] = {
    {"data_read_idx", l_read_idx},
    {"data_gather", l_gather},
    {"data_gather_reuse", l_gather_reuse}, {"data_gather_start", l_gather_start},
    {"data_gather_finish", l_gather_finish},
    {"data_permutation", l_permutation},
    {"write_file_atomic", l_write_file_atomic},
    {"safetensors_dtype", l_safetensors_dtype},
    {"safetensors_read_header", l_safetensors_read_header},
    {"safetensors_read", l_safetensors_read},
    {"safetensors_write", l_safetensors_write},
    {NULL, NULL}};

void nnl_register_data(lua_State *L) {
  luaL_setfuncs(L, data_functions, 0);
  if (luaL_newmetatable(L, GATHER_JOB)) {
    lua_pushcfunction(L, gather_job_gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_pop(L, 1);
}

/* nn_index.c: the tensor methods and nn.* functions of joining, splitting
 * and indexing (issue 12), and the table, mask and index-tensor forms of
 * t[...] and t[...] = v. Indices a Lua user gives or gets count from 1. */
#include <string.h>

#include "nn_binding.h"

#define LUA_BASE 1 /* index tensors from Lua count from 1 */

static int push_or_error(lua_State *L, nn_tensor *t) {
  nnl_push_tensor(L, t);
  return 1;
}

static int status_or_error(lua_State *L, int status) {
  if (status < 0) nnl_engine_error(L);
  return 0;
}

/* A dim argument at idx, or def (0-based) when absent. */
static int opt_dim_or(lua_State *L, int idx, const char *op, int def) {
  return lua_isnoneornil(L, idx) ? def : nnl_check_dim(L, idx, op);
}

/* A dim of t, wrapped to 0 .. ndim-1, with the op's message when out of range. */
static int check_dim_of(lua_State *L, const nn_tensor *t, int d, const char *op) {
  int w = d < 0 ? d + t->ndim : d;
  if (w < 0 || w >= t->ndim)
    nnl_error(L, "%s: dimension %d out of range for a tensor of %d dimensions", op,
              d >= 0 ? d + 1 : d, t->ndim);
  return w;
}

/* Integers given as numbers from idx on, or as one table at idx. */
static int read_integers(lua_State *L, int idx, const char *op, const char *what, int64_t *out,
                         int max) {
  int top = nnl_drop_trailing_nils(L);
  int table = lua_istable(L, idx);
  int count = table ? (int)lua_rawlen(L, idx) : top - idx + 1;
  if (count < 0) count = 0;
  if (count > max) nnl_error(L, "%s: takes at most %d %s", op, max, what);
  for (int i = 0; i < count; i++) {
    if (table) lua_rawgeti(L, idx, i + 1);
    else lua_pushvalue(L, idx + i);
    int ok;
    lua_Integer v = lua_tointegerx(L, -1, &ok);
    if (!ok) nnl_error(L, "%s: %s must be integers, got %s", op, what, luaL_typename(L, -1));
    out[i] = v;
    lua_pop(L, 1);
  }
  return count;
}

/* The tensors of a Lua list at idx (borrowed: the list keeps them). */
static int read_tensor_list(lua_State *L, int idx, const char *op, nn_tensor ***out) {
  if (!lua_istable(L, idx))
    return nnl_error(L, "%s: expected a list of tensors, got %s", op, luaL_typename(L, idx));
  int n = (int)lua_rawlen(L, idx);
  nn_tensor **ts = lua_newuserdatauv(L, (size_t)(n > 0 ? n : 1) * sizeof *ts, 0);
  for (int i = 0; i < n; i++) {
    lua_rawgeti(L, idx, i + 1);
    ts[i] = nnl_to_tensor(L, -1);
    if (!ts[i]) nnl_error(L, "%s: element %d of the list is a %s, not a tensor", op, i + 1, luaL_typename(L, -1));
    lua_pop(L, 1);
  }
  *out = ts;
  return n;
}

/* ---- joining ------------------------------------------------------------ */
static int join(lua_State *L, int stack) {
  const char *op = stack ? "stack" : "cat";
  nnl_check_nargs(L, 0, 2, op, "tensors [, dim]");
  int dim = opt_dim_or(L, 2, op, 0);
  nn_tensor **ts;
  int n = read_tensor_list(L, 1, op, &ts);
  return push_or_error(L, stack ? nn_stack(n, ts, dim) : nn_cat(n, ts, dim));
}
static int l_cat(lua_State *L) { return join(L, 0); }
static int l_stack(lua_State *L) { return join(L, 1); }

/* ---- splitting: Lua lists of views ---------------------------------------- */
static int m_split(lua_State *L) {
  nnl_check_nargs(L, 1, 2, "split", "size_or_sizes [, dim]");
  nn_tensor *t = nnl_check_tensor(L, 1, "split");
  if (t->ndim == 0) return nnl_error(L, "split: a 0-dimensional tensor cannot be split");
  int dim = check_dim_of(L, t, opt_dim_or(L, 3, "split", 0), "split");
  int64_t n = t->size[dim];
  lua_newtable(L);
  int out = lua_gettop(L);
  if (lua_istable(L, 2)) {
    int count = (int)lua_rawlen(L, 2);
    int64_t start = 0;
    for (int i = 1; i <= count; i++) {
      lua_rawgeti(L, 2, i);
      int ok;
      lua_Integer s = lua_tointegerx(L, -1, &ok);
      lua_pop(L, 1);
      if (!ok || s < 0) return nnl_error(L, "split: sizes must be non-negative integers");
      if (s > n - start) break;
      nnl_push_tensor(L, nn_narrow(t, dim, start, s));
      lua_rawseti(L, out, i);
      start += s;
    }
    if (start != n || lua_rawlen(L, out) != (lua_Unsigned)count)
      return nnl_error(L, "split: the sizes must add up to %I, the size of dimension %d",
                       (lua_Integer)n, dim + 1);
    return 1;
  }
  int ok;
  lua_Integer size = lua_tointegerx(L, 2, &ok);
  if (!ok || size < 0 || (size == 0 && n > 0))
    return nnl_error(L, "split: split_size must be a positive integer or a list of sizes, got %s",
                     lua_type(L, 2) == LUA_TNUMBER ? lua_tostring(L, 2) : luaL_typename(L, 2));
  int i = 1;
  for (int64_t start = 0; start < n || (n == 0 && i == 1); start += size, i++) {
    int64_t len = n - start < size ? n - start : size;
    nnl_push_tensor(L, nn_narrow(t, dim, start, len));
    lua_rawseti(L, out, i);
  }
  return 1;
}

static int m_chunk(lua_State *L) {
  nnl_check_nargs(L, 1, 2, "chunk", "chunks [, dim]");
  nn_tensor *t = nnl_check_tensor(L, 1, "chunk");
  lua_Integer chunks = luaL_checkinteger(L, 2);
  if (chunks < 1) return nnl_error(L, "chunk: the number of chunks must be at least 1, got %I", chunks);
  if (t->ndim == 0) return nnl_error(L, "chunk: a 0-dimensional tensor cannot be split");
  int dim = check_dim_of(L, t, opt_dim_or(L, 3, "chunk", 0), "chunk");
  int64_t n = t->size[dim], size = (n + chunks - 1) / chunks;
  lua_settop(L, 1);
  lua_pushinteger(L, size > 0 ? size : 1);
  lua_pushinteger(L, dim + 1);
  return m_split(L);
}

static int m_unbind(lua_State *L) {
  nnl_check_nargs(L, 1, 1, "unbind", "[dim]");
  nn_tensor *t = nnl_check_tensor(L, 1, "unbind");
  if (t->ndim == 0) return nnl_error(L, "unbind: a 0-dimensional tensor cannot be unbound");
  int dim = check_dim_of(L, t, opt_dim_or(L, 2, "unbind", 0), "unbind");
  lua_createtable(L, (int)t->size[dim], 0);
  for (int64_t i = 0; i < t->size[dim]; i++) {
    nnl_push_tensor(L, nn_select(t, dim, i));
    lua_rawseti(L, -2, i + 1);
  }
  return 1;
}

/* ---- rearranging ----------------------------------------------------------- */
static int m_repeat(lua_State *L) {
  nn_tensor *t = nnl_check_tensor(L, 1, "repeat");
  int64_t reps[NN_MAX_DIMS];
  int n = read_integers(L, 2, "repeat", "repeats", reps, NN_MAX_DIMS);
  return push_or_error(L, nn_repeat(t, n, reps));
}

static int m_tile(lua_State *L) {
  nn_tensor *t = nnl_check_tensor(L, 1, "tile");
  int64_t given[NN_MAX_DIMS], reps[NN_MAX_DIMS];
  int n = read_integers(L, 2, "tile", "repeats", given, NN_MAX_DIMS);
  int total = n > t->ndim ? n : t->ndim; /* missing repeats are leading 1s */
  for (int i = 0; i < total; i++) reps[i] = i < total - n ? 1 : given[i - (total - n)];
  return push_or_error(L, nn_repeat(t, total, reps));
}

/* Dims given as numbers or one table, as a bit set; each once. */
static unsigned read_dim_set(lua_State *L, int idx, const nn_tensor *t, const char *op) {
  int64_t d[NN_MAX_DIMS];
  int n = read_integers(L, idx, op, "dims", d, NN_MAX_DIMS);
  unsigned set = 0;
  for (int i = 0; i < n; i++) {
    if (d[i] == 0) nnl_error(L, "%s: dimension 0 does not exist; dimensions count from 1", op);
    int w = check_dim_of(L, t, d[i] > 0 ? (int)d[i] - 1 : (int)d[i], op);
    if (set >> w & 1) nnl_error(L, "%s: dimension %d appears twice", op, w + 1);
    set |= 1u << w;
  }
  return set;
}

static int m_flip(lua_State *L) {
  nn_tensor *t = nnl_check_tensor(L, 1, "flip");
  return push_or_error(L, nn_flip(t, read_dim_set(L, 2, t, "flip")));
}

static int m_roll(lua_State *L) {
  nnl_check_nargs(L, 1, 2, "roll", "shifts [, dims]");
  nn_tensor *t = nnl_check_tensor(L, 1, "roll");
  int64_t shifts[NN_MAX_DIMS], d[NN_MAX_DIMS];
  int dims[NN_MAX_DIMS];
  int ns, nd = 0;
  if (lua_istable(L, 2)) ns = read_integers(L, 2, "roll", "shifts", shifts, NN_MAX_DIMS);
  else shifts[0] = luaL_checkinteger(L, 2), ns = 1;
  if (lua_istable(L, 3)) {
    nd = read_integers(L, 3, "roll", "dims", d, NN_MAX_DIMS);
  } else if (!lua_isnoneornil(L, 3)) {
    d[0] = luaL_checkinteger(L, 3);
    nd = 1;
  }
  if (nd == 0 && ns != 1) return nnl_error(L, "roll: without dims, give one shift");
  if (nd != 0 && nd != ns)
    return nnl_error(L, "roll: %d shifts for %d dims; give one shift per dim", ns, nd);
  for (int i = 0; i < nd; i++) {
    if (d[i] == 0) return nnl_error(L, "roll: dimension 0 does not exist; dimensions count from 1");
    dims[i] = check_dim_of(L, t, d[i] > 0 ? (int)d[i] - 1 : (int)d[i], "roll");
  }
  return push_or_error(L, nn_roll(t, nd, shifts, dims));
}

/* One dim (a number) or several (a table) at idx. */
static int read_dims_arg(lua_State *L, int idx, const char *op, int64_t *out) {
  if (!lua_istable(L, idx)) {
    out[0] = luaL_checkinteger(L, idx);
    return 1;
  }
  int n = (int)lua_rawlen(L, idx);
  if (n > NN_MAX_DIMS) nnl_error(L, "%s: at most %d dims", op, NN_MAX_DIMS);
  for (int i = 0; i < n; i++) {
    lua_rawgeti(L, idx, i + 1);
    int ok;
    out[i] = lua_tointegerx(L, -1, &ok);
    if (!ok) nnl_error(L, "%s: dims must be integers, got %s", op, luaL_typename(L, -1));
    lua_pop(L, 1);
  }
  return n;
}

static int m_movedim(lua_State *L) {
  nnl_check_nargs(L, 1, 2, "movedim", "source, destination");
  nn_tensor *t = nnl_check_tensor(L, 1, "movedim");
  int64_t src[NN_MAX_DIMS], dst[NN_MAX_DIMS];
  int ns = read_dims_arg(L, 2, "movedim", src), ndst = read_dims_arg(L, 3, "movedim", dst);
  if (ns != ndst)
    return nnl_error(L, "movedim: %d source dims and %d destination dims; give as many", ns, ndst);
  int perm[NN_MAX_DIMS], used_src[NN_MAX_DIMS] = {0}, placed[NN_MAX_DIMS] = {0};
  for (int i = 0; i < t->ndim; i++) perm[i] = -1;
  for (int i = 0; i < ns; i++) {
    if (src[i] == 0 || dst[i] == 0)
      return nnl_error(L, "movedim: dimension 0 does not exist; dimensions count from 1");
    int s = check_dim_of(L, t, src[i] > 0 ? (int)src[i] - 1 : (int)src[i], "movedim");
    int d = check_dim_of(L, t, dst[i] > 0 ? (int)dst[i] - 1 : (int)dst[i], "movedim");
    if (used_src[s]++ || placed[d]++) return nnl_error(L, "movedim: repeated dim in source or destination");
    perm[d] = s;
  }
  for (int i = 0, s = 0; i < t->ndim; i++) { /* the rest keep their order */
    if (perm[i] >= 0) continue;
    while (used_src[s]) s++;
    perm[i] = s++;
  }
  return push_or_error(L, nn_permute(t, perm));
}

static int m_swapaxes(lua_State *L) {
  nnl_check_nargs(L, 1, 2, "swapaxes", "dim0, dim1");
  nn_tensor *t = nnl_check_tensor(L, 1, "swapaxes");
  return push_or_error(L, nn_transpose(t, nnl_check_dim(L, 2, "swapaxes"), nnl_check_dim(L, 3, "swapaxes")));
}

/* view_as, expand_as, reshape_as, type_as: the other tensor's shape or
   dtype; the upvalue is the index in like_ops */
static const char *const like_ops[] = {"view_as", "expand_as", "reshape_as", "type_as"};
static int m_like(lua_State *L) {
  lua_Integer k = lua_tointeger(L, lua_upvalueindex(1));
  const char *op = like_ops[k];
  nnl_check_nargs(L, 1, 1, op, "other");
  nn_tensor *t = nnl_check_tensor(L, 1, op), *o = nnl_check_tensor(L, 2, op);
  switch (k) {
  case 0: return push_or_error(L, nn_view(t, o->ndim, o->size));
  case 1: return push_or_error(L, nn_expand(t, o->ndim, o->size));
  case 2: return push_or_error(L, nn_reshape(t, o->ndim, o->size));
  default: return push_or_error(L, nn_to_dtype(t, o->dtype));
  }
}

/* squeeze_, unsqueeze_, t_, transpose_: the view's geometry given to t */
static int view_inplace(lua_State *L, const char *op, nn_tensor *t, nn_tensor *v) {
  if (!v) return nnl_engine_error(L);
  status_or_error(L, nn_view_inplace(op, t, v));
  lua_settop(L, 1);
  return 1;
}
static int m_squeeze_(lua_State *L) {
  nnl_check_nargs(L, 1, 1, "squeeze_", "[dim]");
  nn_tensor *t = nnl_check_tensor(L, 1, "squeeze_");
  int d = lua_isnoneornil(L, 2) ? NN_ALL_DIMS : nnl_check_dim(L, 2, "squeeze_");
  return view_inplace(L, "squeeze_", t, nn_squeeze(t, d));
}
static int m_unsqueeze_(lua_State *L) {
  nnl_check_nargs(L, 1, 1, "unsqueeze_", "dim");
  nn_tensor *t = nnl_check_tensor(L, 1, "unsqueeze_");
  lua_Integer d = luaL_checkinteger(L, 2);
  if (d == 0) return nnl_error(L, "unsqueeze_: dimension 0 does not exist; dimensions count from 1");
  if (d > NN_MAX_DIMS + 1 || d < -NN_MAX_DIMS - 1)
    return nnl_error(L, "unsqueeze_: dimension %I is out of range", d);
  return view_inplace(L, "unsqueeze_", t, nn_unsqueeze(t, d > 0 ? (int)d - 1 : (int)d));
}
static int m_t_(lua_State *L) {
  nnl_check_nargs(L, 1, 0, "t_", "");
  nn_tensor *t = nnl_check_tensor(L, 1, "t_");
  return view_inplace(L, "t_", t, nn_t(t));
}
static int m_transpose_(lua_State *L) {
  nnl_check_nargs(L, 1, 2, "transpose_", "dim0, dim1");
  nn_tensor *t = nnl_check_tensor(L, 1, "transpose_");
  return view_inplace(L, "transpose_", t,
                      nn_transpose(t, nnl_check_dim(L, 2, "transpose_"), nnl_check_dim(L, 3, "transpose_")));
}

/* ---- indexing ops --------------------------------------------------------- */
static int m_index_select(lua_State *L) {
  nnl_check_nargs(L, 1, 2, "index_select", "dim, index");
  nn_tensor *t = nnl_check_tensor(L, 1, "index_select");
  int d = nnl_check_dim(L, 2, "index_select");
  return push_or_error(L, nn_index_select(t, d, nnl_check_tensor(L, 3, "index_select"), LUA_BASE));
}

static int m_gather(lua_State *L) {
  nnl_check_nargs(L, 1, 2, "gather", "dim, index");
  nn_tensor *t = nnl_check_tensor(L, 1, "gather");
  int d = nnl_check_dim(L, 2, "gather");
  return push_or_error(L, nn_gather(t, d, nnl_check_tensor(L, 3, "gather"), LUA_BASE));
}

/* A value argument: a tensor, or a number made a 0-d tensor of like's dtype. */
static nn_tensor *value_tensor(lua_State *L, int idx, const nn_tensor *like, const char *op,
                               int *made) {
  nn_tensor *v = nnl_to_tensor(L, idx);
  *made = 0;
  if (v) return v;
  if (lua_type(L, idx) != LUA_TNUMBER && !lua_isboolean(L, idx))
    nnl_error(L, "%s: the value must be a number or a tensor, got %s", op, luaL_typename(L, idx));
  double x = lua_isboolean(L, idx) ? lua_toboolean(L, idx) : lua_tonumber(L, idx);
  v = nn_full(like->dtype, 0, NULL, x);
  if (v && like->device != NN_CPU) {
    nn_tensor *moved = nn_to_device(v, like->device);
    nn_release(v);
    v = moved;
  }
  if (!v) nnl_engine_error(L);
  *made = 1;
  return v;
}

/* The result of an op, or written into self for its in-place form. */
static int result_or_inplace(lua_State *L, const char *op, int inplace, nn_tensor *t,
                             nn_tensor *result) {
  if (!result) return nnl_engine_error(L);
  if (!inplace) return push_or_error(L, result);
  int st = nn_inplace_copy(op, t, result);
  nn_release(result);
  status_or_error(L, st);
  lua_settop(L, 1);
  return 1;
}

static int scatter_like(lua_State *L, const char *op, int accumulate, int inplace) {
  nnl_check_nargs(L, 1, 3, op, "dim, index, src");
  nn_tensor *t = nnl_check_tensor(L, 1, op);
  int d = nnl_check_dim(L, 2, op);
  nn_tensor *index = nnl_check_tensor(L, 3, op);
  int made = 0;
  nn_tensor *src = accumulate ? nnl_check_tensor(L, 4, op) : value_tensor(L, 4, t, op, &made);
  nn_tensor *out = nn_scatter(t, d, index, src, accumulate, LUA_BASE);
  if (made) nn_release(src);
  return result_or_inplace(L, op, inplace, t, out);
}
static int m_scatter(lua_State *L) { return scatter_like(L, "scatter", 0, 0); }
static int m_scatter_(lua_State *L) { return scatter_like(L, "scatter_", 0, 1); }
static int m_scatter_add(lua_State *L) { return scatter_like(L, "scatter_add", 1, 0); }
static int m_scatter_add_(lua_State *L) { return scatter_like(L, "scatter_add_", 1, 1); }

static int index_add_like(lua_State *L, const char *op, int inplace) {
  nnl_check_nargs(L, 1, 4, op, "dim, index, source [, alpha]");
  nn_tensor *t = nnl_check_tensor(L, 1, op);
  int d = nnl_check_dim(L, 2, op);
  nn_tensor *index = nnl_check_tensor(L, 3, op), *src = nnl_check_tensor(L, 4, op);
  double alpha = 1;
  if (lua_istable(L, 5)) {
    lua_getfield(L, 5, "alpha");
    alpha = lua_isnil(L, -1) ? 1 : luaL_checknumber(L, -1);
  } else if (!lua_isnoneornil(L, 5)) {
    alpha = luaL_checknumber(L, 5);
  }
  return result_or_inplace(L, op, inplace, t, nn_index_add(t, d, index, src, alpha, LUA_BASE));
}
static int m_index_add(lua_State *L) { return index_add_like(L, "index_add", 0); }
static int m_index_add_(lua_State *L) { return index_add_like(L, "index_add_", 1); }

static int masked_fill_like(lua_State *L, const char *op, int inplace) {
  nnl_check_nargs(L, 1, 2, op, "mask, value");
  nn_tensor *t = nnl_check_tensor(L, 1, op), *mask = nnl_check_tensor(L, 2, op);
  if (lua_type(L, 3) != LUA_TNUMBER && !lua_isboolean(L, 3))
    return nnl_error(L, "%s: the value must be a number, got %s", op, luaL_typename(L, 3));
  double v = lua_isboolean(L, 3) ? lua_toboolean(L, 3) : lua_tonumber(L, 3);
  return result_or_inplace(L, op, inplace, t, nn_masked_fill(t, mask, v));
}
static int m_masked_fill(lua_State *L) { return masked_fill_like(L, "masked_fill", 0); }
static int m_masked_fill_(lua_State *L) { return masked_fill_like(L, "masked_fill_", 1); }

static int m_masked_select(lua_State *L) {
  nnl_check_nargs(L, 1, 1, "masked_select", "mask");
  nn_tensor *t = nnl_check_tensor(L, 1, "masked_select");
  return push_or_error(L, nn_masked_select(t, nnl_check_tensor(L, 2, "masked_select")));
}

static int m_take(lua_State *L) {
  nnl_check_nargs(L, 1, 1, "take", "index");
  nn_tensor *t = nnl_check_tensor(L, 1, "take");
  return push_or_error(L, nn_take(t, nnl_check_tensor(L, 2, "take"), LUA_BASE));
}

static int m_nonzero(lua_State *L) {
  nnl_check_nargs(L, 1, 0, "nonzero", "");
  return push_or_error(L, nn_nonzero(nnl_check_tensor(L, 1, "nonzero"), LUA_BASE));
}

/* nn.where(cond, a, b): a and b tensors or numbers; nn.where(cond): the
   indices of the true elements, one tensor per dim, in a list. */
static int l_where(lua_State *L) {
  nnl_check_nargs(L, 0, 3, "where", "condition [, a, b]");
  nn_tensor *cond = nnl_check_tensor(L, 1, "where");
  if (lua_isnoneornil(L, 2) && lua_isnoneornil(L, 3)) {
    nn_tensor *coords = nn_nonzero(cond, LUA_BASE);
    if (!coords) return nnl_engine_error(L);
    nnl_push_tensor(L, coords);
    lua_createtable(L, cond->ndim, 0);
    for (int d = 0; d < cond->ndim; d++) {
      nnl_push_tensor(L, nn_select(coords, 1, d));
      lua_rawseti(L, -2, d + 1);
    }
    return 1;
  }
  nn_tensor *a = nnl_to_tensor(L, 2), *b = nnl_to_tensor(L, 3);
  const nn_tensor *like = a ? a : b;
  nn_tensor *number_like = NULL;
  if (!like) { /* two numbers: PyTorch's default dtype, or int64 for two integers */
    number_like = nn_full(lua_isinteger(L, 2) && lua_isinteger(L, 3) ? NN_INT64 : NN_FLOAT32, 0, NULL, 0);
    if (!number_like) return nnl_engine_error(L);
    nnl_push_tensor(L, number_like); /* the box releases it */
    like = number_like;
  }
  /* a number beside a tensor takes its dtype, float32 beside an integer tensor */
  nn_tensor float_like = *like;
  if (!nn_dtype_is_floating(like->dtype) && ((!a && !lua_isinteger(L, 2)) || (!b && !lua_isinteger(L, 3))))
    float_like.dtype = NN_FLOAT32;
  int made_a = 0, made_b = 0;
  if (!a) a = value_tensor(L, 2, &float_like, "where", &made_a);
  if (!b) b = value_tensor(L, 3, &float_like, "where", &made_b);
  nn_tensor *out = nn_where(cond, a, b);
  if (made_a) nn_release(a);
  if (made_b) nn_release(b);
  return push_or_error(L, out);
}

static int m_where(lua_State *L) { /* x:where(cond, y) is nn.where(cond, x, y) */
  nnl_check_nargs(L, 1, 2, "where", "condition, other");
  nnl_check_tensor(L, 1, "where");
  lua_settop(L, 3);
  lua_pushcfunction(L, l_where);
  lua_pushvalue(L, 2);
  lua_pushvalue(L, 1);
  lua_pushvalue(L, 3);
  lua_call(L, 3, 1);
  return 1;
}

/* ---- t[...] and t[...] = v ------------------------------------------------- */
/* An index of a table key in a dim of size n: 1..n or -n..-1, 0-based. */
static int64_t table_position(lua_State *L, lua_Integer i, int64_t n, int dim) {
  if (i == 0 || i > n || i < -n)
    nnl_error(L, "index: index %I is out of range for dimension %d of size %I", i, dim + 1, (lua_Integer)n);
  return i > 0 ? i - 1 : n + i;
}

static lua_Integer table_integer(lua_State *L, int tbl, int k, const char *what) {
  lua_rawgeti(L, tbl, k);
  int ok;
  lua_Integer v = lua_tointegerx(L, -1, &ok);
  if (!ok) nnl_error(L, "index: a range's %s must be an integer, got %s", what, luaL_typename(L, -1));
  lua_pop(L, 1);
  return v;
}

/* The view t[{...}] (Torch7's table form, PyTorch's meaning): an integer
   selects (its dim goes), {} keeps a dim whole, {i} keeps index i as a dim
   of size 1, {first, last [, step]} the inclusive range. */
static nn_tensor *table_view(lua_State *L, nn_tensor *t, int key) {
  int count = (int)lua_rawlen(L, key);
  if (count > t->ndim)
    nnl_error(L, "index: %d indices for a tensor of %d dimensions", count, t->ndim);
  nn_tensor *cur = nn_retain(t);
  int dim = 0;
  for (int k = 1; k <= count; k++) {
    lua_rawgeti(L, key, k);
    int type = lua_type(L, -1);
    nn_tensor *next = NULL;
    if (type == LUA_TNUMBER) {
      int ok;
      lua_Integer i = lua_tointegerx(L, -1, &ok);
      lua_pop(L, 1);
      if (!ok) {
        nn_release(cur);
        nnl_error(L, "index: indices must be integers");
      }
      int64_t n = cur->size[dim];
      if (i == 0 || i > n || i < -n) nn_release(cur);
      next = nn_select(cur, dim, table_position(L, i, n, dim));
    } else if (type == LUA_TTABLE) {
      int tbl = lua_gettop(L), len = (int)lua_rawlen(L, tbl);
      int64_t n = cur->size[dim];
      if (len == 0) {
        lua_pop(L, 1);
        dim++;
        continue;
      }
      if (len > 3) {
        nn_release(cur);
        nnl_error(L, "index: a range is {first, last [, step]}, got %d numbers", len);
      }
      lua_Integer first = table_integer(L, tbl, 1, "first index");
      lua_Integer last = len >= 2 ? table_integer(L, tbl, 2, "last index") : first;
      lua_Integer step = len == 3 ? table_integer(L, tbl, 3, "step") : 1;
      lua_pop(L, 1);
      if (step < 1) {
        nn_release(cur);
        nnl_error(L, "index: a range's step must be positive, got %I", step);
      }
      int bad_first = first == 0 || first > n || first < -n, bad_last = last == 0 || last > n || last < -n;
      if (bad_first || bad_last) nn_release(cur);
      int64_t s = table_position(L, first, n, dim), e = table_position(L, last, n, dim);
      int64_t length = e >= s ? (e - s) / step + 1 : 0;
      next = nn_slice(cur, dim, s, length, step);
      dim++;
    } else {
      nn_release(cur);
      nnl_error(L, "index: a table index holds integers and {first, last [, step]} ranges, got %s",
                luaL_typename(L, -1));
    }
    nn_release(cur);
    if (!(cur = next)) nnl_engine_error(L);
  }
  return cur;
}

int nnl_index_get(lua_State *L) {
  nn_tensor *t = nnl_check_tensor(L, 1, "index");
  nn_tensor *key = nnl_to_tensor(L, 2);
  if (key) return push_or_error(L, nn_index(t, 1, &key, LUA_BASE));
  if (t->ndim == 0 && lua_rawlen(L, 2) > 0)
    return nnl_error(L, "index: a 0-dimensional tensor cannot be indexed");
  return push_or_error(L, table_view(L, t, 2));
}

int nnl_index_set(lua_State *L) {
  nn_tensor *t = nnl_check_tensor(L, 1, "index assignment");
  nn_tensor *key = nnl_to_tensor(L, 2);
  int made = 0;
  nn_tensor *v = value_tensor(L, 3, t, "index assignment", &made);
  int status;
  if (key) {
    status = nn_index_put_(t, 1, &key, v, 0, LUA_BASE);
  } else {
    if (t->ndim == 0 && lua_rawlen(L, 2) > 0) {
      if (made) nn_release(v);
      return nnl_error(L, "index: a 0-dimensional tensor cannot be indexed");
    }
    nn_tensor *view = table_view(L, t, 2);
    status = nn_inplace_copy("index assignment", view, v);
    nn_release(view);
    if (status < 0 && strncmp(nn_error(), "index assignment", 16) != 0) {
      if (made) nn_release(v);
      return nnl_error(L, "index assignment: %s", nn_error());
    }
  }
  if (made) nn_release(v);
  return status_or_error(L, status);
}

/* ---- registration --------------------------------------------------------- */
/*** nn.cat(tensors [, dim = 1]), nn.stack(tensors [, dim = 1])
 * cat joins a list of tensors along an existing dimension (every other size
 * equal); stack along a new one (every shape equal). dtypes promote as in
 * PyTorch; gradients flow back to each part.
 *   nn.cat({nn.zeros(2, 3), nn.ones(1, 3)})        --> 3x3
 *   nn.stack({nn.zeros(3), nn.ones(3)}, 2)          --> 3x2
 */
/*** t:split(size_or_sizes [, dim = 1]), t:chunk(chunks [, dim = 1]), t:unbind([dim = 1]),
 * nn.split(t, ...), nn.chunk(t, ...), nn.unbind(t, ...)
 * Lists of views: pieces of split_size along dim (the last may be shorter),
 * or of the listed sizes; chunks pieces as equal as possible (fewer when
 * the size does not allow them); every slice along dim, the dim removed.
 *   local parts = nn.arange(10):split(4)   --> sizes 4, 4, 2
 *   local rows = nn.eye(3):unbind()        --> three vectors
 */
/*** t:repeatTensor(repeats...), t:repeat(repeats...), t:tile(repeats...), nn.tile(t, ...)
 * A copy repeated along each dimension: repeat takes at least one count per
 * dimension (more add leading dimensions); tile pads missing counts with
 * leading 1s. Counts as numbers or one table. `repeat` is a word of Lua's
 * own: t:repeat(2) does not parse, so write t:repeatTensor(2) (Torch7's name)
 * or t["repeat"](t, 2).
 *   nn.tensor({1, 2}):repeatTensor(2, 2)   --> {{1, 2, 1, 2}, {1, 2, 1, 2}}
 *   nn.tensor({{1, 2}}):tile(2)      --> {{1, 2, 1, 2}}
 */
/*** t:flip(dims...), t:roll(shifts [, dims]), nn.flip(t, ...), nn.roll(t, ...)
 * flip: a copy with the given dimensions reversed. roll: elements shifted
 * along dims (numbers or tables, one shift per dim), those past the end
 * coming back at the start; without dims, over the flattened tensor.
 *   nn.arange(4):flip(1)    --> {3, 2, 1, 0}
 *   nn.arange(4):roll(1)    --> {3, 0, 1, 2}
 */
/*** t:movedim(source, destination), t:swapaxes(dim0, dim1), t:swapdims(dim0, dim1),
 * nn.movedim(t, ...), nn.swapaxes(t, ...), nn.swapdims(t, ...)
 * Views with dimensions moved: movedim puts source dims (a number or a
 * table) at the destination positions, the others keeping their order;
 * swapaxes and swapdims are transpose.
 *   nn.zeros(2, 3, 4):movedim(3, 1):size()   --> {4, 2, 3}
 */
/*** t:view_as(other), t:expand_as(other), t:reshape_as(other), t:type_as(other)
 * view, expand or reshape to other's shape; a conversion to other's dtype.
 *   local b = bias:expand_as(x)
 */
/*** t:squeeze_([dim]), t:unsqueeze_(dim), t:t_(), t:transpose_(dim0, dim1)
 * In place: t itself takes the shape and strides of squeeze, unsqueeze, t
 * and transpose (no copy) and is returned. Not on a leaf that requires grad.
 *   x:unsqueeze_(1)
 */
/*** t:index_select(dim, index), t:gather(dim, index), t:take(index),
 * nn.index_select(t, ...), nn.gather(t, ...), nn.take(t, ...)
 * Elements picked by an int64 index tensor (1-based, negative from the
 * end): index_select takes whole slices along dim (a 1-d index); gather
 * takes out[i][j] = t[i][index[i][j]] along dim 2 (likewise for any dim; index
 * as many dims as t); take reads t as if flattened. Gradients flow back to t.
 *   x:index_select(1, nn.tensor({3, 1}, {dtype = "int64"}))
 *   probs:gather(2, labels:view(-1, 1))
 */
/*** t:scatter(dim, index, src), t:scatter_add(dim, index, src), t:index_add(dim, index, source [, alpha]),
 * t:scatter_(dim, index, src), t:scatter_add_(dim, index, src), t:index_add_(dim, index, source [, alpha]),
 * nn.scatter(t, ...), nn.scatter_add(t, ...), nn.index_add(t, ...)
 * Copies of t with values written where gather would read: scatter writes
 * src's elements (or one number), scatter_add adds them (repeats add up),
 * index_add adds alpha times source's slices at index along dim. The forms
 * ending in _ (scatter_, scatter_add_, index_add_) write into t.
 *   nn.zeros(3):scatter_add(1, nn.tensor({1, 1, 3}, {dtype = "int64"}), nn.ones(3))  --> {2, 0, 1}
 */
/*** t:masked_fill(mask, value), t:masked_fill_(mask, value), t:masked_select(mask),
 * nn.masked_fill(t, ...), nn.masked_select(t, ...)
 * value where the bool mask (broadcast to t) is true; masked_fill_ in place;
 * masked_select: the elements where the mask is true, as a 1-d tensor.
 *   scores:masked_fill(padding, -math.huge)
 */
/*** nn.where(condition, a, b), t:where(condition, other), nn.where(condition)
 * Elementwise a where the bool condition is true, else b (tensors or numbers,
 * broadcast); t:where(cond, y) is nn.where(cond, t, y). With the condition
 * alone: the 1-based indices of its true elements, one int64 tensor per
 * dimension, in a list.
 *   nn.where(x:gt(0), x, 0)
 */
/*** t:nonzero(), nn.nonzero(t)
 * The 1-based indices of the nonzero elements, one row per element (an
 * int64 tensor of size count x dims), in row-major order.
 *   nn.tensor({0, 3, 0, 4}):nonzero()   --> {{2}, {4}}
 */
/*** t[{...}], t[mask], t[index], and the same on the left of =
 * Torch7's table form with PyTorch's meaning: per dimension an integer
 * (selects; the dimension goes), {} (all of it), {i} (index i, kept as a
 * dimension of size 1), {first, last} or {first, last, step} (inclusive,
 * 1-based, negative from the end); these are views. A bool mask of t's
 * leading shape picks elements (a copy); an int64 tensor picks slices along
 * dimension 1. Assignment writes a number or a tensor (broadcast) there.
 *   x[{{}, {2, 3}}]     x[{1, {1, -1, 2}}]     x[x:lt(0)] = 0     x[{{}, 2}] = y
 */
static const luaL_Reg methods[] = {
    {"split", m_split}, {"chunk", m_chunk}, {"unbind", m_unbind}, {"repeat", m_repeat},
    {"repeatTensor", m_repeat},
    {"tile", m_tile}, {"flip", m_flip}, {"roll", m_roll}, {"movedim", m_movedim},
    {"swapaxes", m_swapaxes}, {"swapdims", m_swapaxes},
    {"squeeze_", m_squeeze_}, {"unsqueeze_", m_unsqueeze_}, {"t_", m_t_},
    {"transpose_", m_transpose_}, {"index_select", m_index_select}, {"gather", m_gather},
    {"scatter", m_scatter}, {"scatter_", m_scatter_}, {"scatter_add", m_scatter_add},
    {"scatter_add_", m_scatter_add_}, {"index_add", m_index_add}, {"index_add_", m_index_add_},
    {"masked_fill", m_masked_fill}, {"masked_fill_", m_masked_fill_},
    {"masked_select", m_masked_select}, {"take", m_take}, {"nonzero", m_nonzero},
    {"where", m_where}, {NULL, NULL}};

static const luaL_Reg functions[] = {{"cat", l_cat}, {"stack", l_stack}, {"where", l_where}, {NULL, NULL}};

void nnl_register_index(lua_State *L) {
  luaL_setfuncs(L, functions, 0);
  luaL_getmetatable(L, NNL_TENSOR);
  lua_getfield(L, -1, "methods");
  luaL_setfuncs(L, methods, 0);
  for (lua_Integer k = 0; k < (lua_Integer)(sizeof like_ops / sizeof like_ops[0]); k++) {
    lua_pushinteger(L, k);
    lua_pushcclosure(L, m_like, 1);
    lua_setfield(L, -2, like_ops[k]);
  }
  lua_pop(L, 2);
}

/* nn_math.c: issue 12's tensor toolkit on the Lua side: the methods of the
 * math ops, reductions, creation and linear algebra it adds, and the nn.*
 * functions of the same names (nn.log1p(t) is t:log1p()). The elementwise
 * ops that are opcodes of the binary and unary kernels are registered with
 * the others in nn_tensor.c and documented here. Indices are 1-based, as
 * argmax's. */
#include <math.h>
#include <string.h>

#include "nn_binding.h"

static int status_or_error(lua_State *L, int status) {
  if (status < 0) nnl_engine_error(L);
  return 0;
}

static int opt_flag(lua_State *L, int idx, const char *op, const char *name, int def) {
  if (lua_isnoneornil(L, idx)) return def;
  if (!lua_isboolean(L, idx))
    nnl_error(L, "%s: %s must be a boolean, got %s", op, name, luaL_typename(L, idx));
  return lua_toboolean(L, idx);
}

static double opt_number(lua_State *L, int idx, const char *op, const char *name, double def) {
  if (lua_isnoneornil(L, idx)) return def;
  if (lua_type(L, idx) != LUA_TNUMBER)
    nnl_error(L, "%s: %s must be a number, got %s", op, name, luaL_typename(L, idx));
  return lua_tonumber(L, idx);
}

/* A dim of t at idx (1-based, negative from the end), 0-based; a
   0-dimensional tensor takes 1 or -1. */
static int check_dim_of(lua_State *L, int idx, const nn_tensor *t, const char *op) {
  if (lua_type(L, idx) != LUA_TNUMBER || !lua_isinteger(L, idx))
    nnl_error(L, "%s: dim must be an integer, got %s", op, luaL_typename(L, idx));
  lua_Integer d = lua_tointeger(L, idx), n = t->ndim ? t->ndim : 1;
  if (d == 0) nnl_error(L, "%s: dimension 0 does not exist; dimensions count from 1", op);
  if (d > n || d < -n)
    nnl_error(L, "%s: dimension %I is out of range for a tensor of %d dimensions", op, d, t->ndim);
  return d > 0 ? (int)d - 1 : (int)(n + d);
}

unsigned nnl_check_dims(lua_State *L, int idx, const nn_tensor *t, const char *op) {
  if (lua_isnoneornil(L, idx)) return (1u << t->ndim) - 1;
  if (!lua_istable(L, idx)) {
    unsigned d = (unsigned)check_dim_of(L, idx, t, op);
    return t->ndim ? 1u << d : 0;
  }
  unsigned mask = 0;
  lua_Integer n = (lua_Integer)lua_rawlen(L, idx);
  for (lua_Integer i = 1; i <= n; i++) {
    lua_rawgeti(L, idx, i);
    int d = check_dim_of(L, lua_gettop(L), t, op);
    lua_pop(L, 1);
    if (t->ndim == 0) continue;
    if (mask >> d & 1) nnl_error(L, "%s: dimension %d appears twice in the list", op, d + 1);
    mask |= 1u << d;
  }
  return mask;
}

/* 0-based indices made 1-based (consumes idx). */
/* Pushes values and 1-based indices (NULL values: the engine's error). */
static int push_pair(lua_State *L, nn_tensor *values, nn_tensor *indices) {
  if (!values) return nnl_engine_error(L);
  nnl_push_tensor(L, values);
  nnl_push_tensor(L, nnl_one_based(indices));
  return 2;
}

/* ---- math ------------------------------------------------------------------ */
/*** t:log1p(), t:expm1(), t:log2(), t:log10(), t:rsqrt(), t:reciprocal(), t:square(),
 * t:tan(), t:asin(), t:acos(), t:atan(), t:sinh(), t:cosh(), t:erf(), t:erfinv(),
 * t:trunc(), t:frac(),
 * t:log1p_(), t:expm1_(), t:log2_(), t:log10_(), t:rsqrt_(), t:reciprocal_(), t:square_(),
 * t:tan_(), t:asin_(), t:acos_(), t:atan_(), t:sinh_(), t:cosh_(), t:erf_(), t:erfinv_(),
 * t:trunc_(), t:frac_()
 * Elementwise functions with their gradients: log(1 + x) and exp(x) - 1
 * (exact near 0), base-2 and base-10 logs, 1/sqrt(x), 1/x, x^2, the
 * trigonometric and hyperbolic functions, the error function and its
 * inverse, and the integer and fractional parts (toward 0). Integers give
 * float32, except square and trunc, which keep them; frac refuses them.
 * Each is also nn.<name>(t).
 *   nn.tensor({1e-10, 1}):log1p()       x:erfinv()       nn.atan(x)
 */
/*** t:atan2(other), t:fmod(other), t:remainder(other),
 * t:atan2_(other), t:fmod_(other), t:remainder_(other)
 * Elementwise with broadcasting: the angle of the point (other, t) in
 * (-pi, pi]; the remainder of t / other with t's sign (C's fmod) or with
 * other's sign (Python's %). fmod and remainder take a number too and keep
 * integer dtypes (an integer division by zero is an error). Gradients as
 * PyTorch's: fmod's for other is -trunc(t / other) g, remainder's
 * -floor(t / other) g. Also nn.atan2(a, b), nn.fmod(a, b), nn.remainder(a, b).
 *   nn.tensor({-7, 7}):remainder(3)   --> {2, 1}      y:atan2(x)
 */
/*** t:logical_and(other), t:logical_or(other), t:logical_xor(other), t:logical_not(),
 * t:logical_and_(other), t:logical_or_(other), t:logical_xor_(other), t:logical_not_()
 * Elementwise logic on any dtype, nonzero (NaN included) being true: a bool
 * tensor. The in-place forms store 1 or 0 in t's dtype. Also
 * nn.logical_and(a, b), nn.logical_or(a, b), nn.logical_xor(a, b), nn.logical_not(t).
 *   mask:logical_and(x:gt(0))        mask:logical_not()
 */
/*** t:isnan(), t:isinf(), t:isfinite()
 * Bool tensors: where t is NaN, infinite, or neither (every element of an
 * integer tensor is finite). Also nn.isnan(t), nn.isinf(t), nn.isfinite(t).
 *   local bad = loss:isnan():any():item()
 */
/*** t:clamp_min(min), t:clamp_max(max), t:clamp_min_(min), t:clamp_max_(max)
 * clamp with one bound: max(t, min) or min(t, max), the bound a number or
 * a tensor (broadcast). The gradient passes where t is within the bound.
 *   x:clamp_min(0)          probs:clamp_max(1 - 1e-7)
 */
static int clamp_one(lua_State *L, const char *op, int lower, int inplace) {
  nnl_check_nargs(L, 1, 1, op, lower ? "min" : "max");
  nn_tensor *t = nnl_check_tensor(L, 1, op), *b = nnl_to_tensor(L, 2);
  if (!b && lua_type(L, 2) != LUA_TNUMBER)
    return nnl_error(L, "%s: the bound must be a number or a tensor, got %s", op, luaL_typename(L, 2));
  double v = b ? 0 : lua_tonumber(L, 2);
  if (inplace) {
    nn_binary_op bop = lower ? NN_MAXIMUM : NN_MINIMUM;
    status_or_error(L, b ? nn_binary_(bop, t, b)
                         : nn_clamp_(t, lower ? v : -INFINITY, lower ? INFINITY : v));
    lua_settop(L, 1);
    return 1;
  }
  if (b) nnl_push_tensor(L, nn_binary(lower ? NN_MAXIMUM : NN_MINIMUM, t, b));
  else nnl_push_tensor(L, nn_clamp(t, lower ? v : -INFINITY, lower ? INFINITY : v));
  return 1;
}
static int m_clamp_min(lua_State *L) { return clamp_one(L, "clamp_min", 1, 0); }
static int m_clamp_max(lua_State *L) { return clamp_one(L, "clamp_max", 0, 0); }
static int m_clamp_min_(lua_State *L) { return clamp_one(L, "clamp_min_", 1, 1); }
static int m_clamp_max_(lua_State *L) { return clamp_one(L, "clamp_max_", 0, 1); }

/*** t:lerp(end, weight), nn.lerp(start, end, weight)
 * Linear interpolation start + weight (end - start), weight a number or a
 * tensor, all broadcast; one floating dtype. Gradients reach all three.
 *   local ema = average:lerp(value, 0.1)
 */
static int m_lerp(lua_State *L) {
  nnl_check_nargs(L, 1, 2, "lerp", "end, weight");
  nn_tensor *a = nnl_check_tensor(L, 1, "lerp"), *b = nnl_check_tensor(L, 2, "lerp");
  nn_tensor *w = nnl_to_tensor(L, 3);
  if (!w && lua_type(L, 3) != LUA_TNUMBER)
    return nnl_error(L, "lerp: weight must be a number or a tensor, got %s", luaL_typename(L, 3));
  nnl_push_tensor(L, nn_lerp(a, b, w, w ? 0 : lua_tonumber(L, 3)));
  return 1;
}

/*** t:nan_to_num([nan = 0 [, posinf [, neginf]]]), t:nan_to_num_(...)
 * NaN, +inf and -inf replaced by the given numbers (the infinities by
 * default by the dtype's largest and lowest finite values). The gradient
 * passes where t is finite.
 *   logits:nan_to_num(0, 1e4, -1e4)
 */
static int nan_to_num(lua_State *L, int inplace) {
  const char *op = inplace ? "nan_to_num_" : "nan_to_num";
  nnl_check_nargs(L, 1, 3, op, "[nan [, posinf [, neginf]]]");
  nn_tensor *t = nnl_check_tensor(L, 1, op);
  double nan = opt_number(L, 2, op, "nan", 0), posinf = opt_number(L, 3, op, "posinf", NAN);
  double neginf = opt_number(L, 4, op, "neginf", NAN);
  nn_tensor *r = nn_nan_to_num(t, nan, posinf, neginf);
  if (!inplace) {
    nnl_push_tensor(L, r);
    return 1;
  }
  if (!r) return nnl_engine_error(L);
  int st = nn_inplace_copy(op, t, r);
  nn_release(r);
  status_or_error(L, st);
  lua_settop(L, 1);
  return 1;
}
static int m_nan_to_num(lua_State *L) { return nan_to_num(L, 0); }
static int m_nan_to_num_(lua_State *L) { return nan_to_num(L, 1); }

/*** t:allclose(other [, rtol = 1e-5 [, atol = 1e-8 [, equal_nan = false]]]), t:equal(other)
 * Lua booleans: whether every |t - other| <= atol + rtol |other| (equal
 * infinities pass; NaN only with equal_nan), and whether the two have one
 * shape and equal elements. Also nn.allclose(a, b, ...), nn.equal(a, b).
 *   assert(y:allclose(expected, 1e-4))
 */
static int m_allclose(lua_State *L) {
  nnl_check_nargs(L, 1, 4, "allclose", "other [, rtol [, atol [, equal_nan]]]");
  nn_tensor *a = nnl_check_tensor(L, 1, "allclose"), *b = nnl_check_tensor(L, 2, "allclose");
  double rtol = opt_number(L, 3, "allclose", "rtol", 1e-5), atol = opt_number(L, 4, "allclose", "atol", 1e-8);
  int equal_nan = opt_flag(L, 5, "allclose", "equal_nan", 0), result = 0;
  status_or_error(L, nn_allclose(a, b, rtol, atol, equal_nan, &result));
  lua_pushboolean(L, result);
  return 1;
}

static int m_equal(lua_State *L) {
  nnl_check_nargs(L, 1, 1, "equal", "other");
  nn_tensor *a = nnl_check_tensor(L, 1, "equal"), *b = nnl_check_tensor(L, 2, "equal");
  int result = 0;
  status_or_error(L, nn_equal(a, b, &result));
  lua_pushboolean(L, result);
  return 1;
}

/* ---- reductions --------------------------------------------------------------- */
/*** t:prod([dim [, keepdim = false]])
 * The product of all elements, or along one dim (integers give int64). The
 * gradient is right with zeros in the input, as PyTorch's.
 *   nn.tensor({{1, 2}, {3, 4}}):prod(2)   --> {2, 12}
 */
static int m_prod(lua_State *L) {
  nnl_check_nargs(L, 1, 2, "prod", "[dim [, keepdim]]");
  nn_tensor *t = nnl_check_tensor(L, 1, "prod");
  int dim = lua_isnoneornil(L, 2) ? NN_ALL_DIMS : check_dim_of(L, 2, t, "prod");
  nnl_push_tensor(L, nn_prod(t, dim, opt_flag(L, 3, "prod", "keepdim", 0)));
  return 1;
}

/*** t:cumsum(dim), t:cumprod(dim)
 * Running sums and products along dim, of t's shape (integers give int64);
 * cumprod's gradient is right with zeros in the input.
 *   nn.tensor({1, 2, 3}):cumsum(1)   --> {1, 3, 6}
 */
static int scan(lua_State *L, int prod) {
  const char *op = prod ? "cumprod" : "cumsum";
  nnl_check_nargs(L, 1, 1, op, "dim");
  nn_tensor *t = nnl_check_tensor(L, 1, op);
  if (lua_isnoneornil(L, 2)) return nnl_error(L, "%s: give the dim to run along", op);
  int d = check_dim_of(L, 2, t, op);
  nnl_push_tensor(L, prod ? nn_cumprod(t, d) : nn_cumsum(t, d));
  return 1;
}
static int m_cumsum(lua_State *L) { return scan(L, 0); }
static int m_cumprod(lua_State *L) { return scan(L, 1); }

/*** t:var([dims] [, unbiased = true] [, keepdim = false]), t:std(...)
 * Variance and standard deviation over every element, one dim or a table of
 * dims; unbiased divides by n - 1 (PyTorch's default), else by n. t:var(false)
 * is the biased variance of all elements.
 *   x:std()         x:var({1, 2}, false, true)
 */
static int var_std(lua_State *L, int std) {
  const char *op = std ? "std" : "var";
  nnl_check_nargs(L, 1, 3, op, "[dims] [, unbiased] [, keepdim]");
  nn_tensor *t = nnl_check_tensor(L, 1, op);
  int next = 2;
  unsigned mask = (1u << t->ndim) - 1;
  if (!lua_isboolean(L, 2)) mask = nnl_check_dims(L, next++, t, op);
  int unbiased = opt_flag(L, next, op, "unbiased", 1);
  int keepdim = opt_flag(L, next + 1, op, "keepdim", 0);
  nnl_push_tensor(L, std ? nn_std(t, mask, unbiased, keepdim) : nn_var(t, mask, unbiased, keepdim));
  return 1;
}
static int m_var(lua_State *L) { return var_std(L, 0); }
static int m_std(lua_State *L) { return var_std(L, 1); }

/* name([dims [, keepdim]]) for the reductions over several dims. */
static int dims_reduction(lua_State *L, const char *op, nn_tensor *(*fn)(nn_tensor *, unsigned, int)) {
  nnl_check_nargs(L, 1, 2, op, "[dims [, keepdim]]");
  nn_tensor *t = nnl_check_tensor(L, 1, op);
  unsigned mask = nnl_check_dims(L, 2, t, op);
  nnl_push_tensor(L, fn(t, mask, opt_flag(L, 3, op, "keepdim", 0)));
  return 1;
}

/*** t:logsumexp([dims [, keepdim = false]])
 * log(sum(exp(t))) over the dims (all when absent), computed without
 * overflow; its gradient is the softmax.
 *   local log_z = scores:logsumexp(2)
 */
static int m_logsumexp(lua_State *L) { return dims_reduction(L, "logsumexp", nn_logsumexp); }

/*** t:amax([dims [, keepdim = false]]), t:amin([dims [, keepdim = false]])
 * The largest (smallest) value over the dims (all when absent), without
 * indices; the gradient is shared evenly by the elements that tie.
 *   images:amax({2, 3})
 */
static int m_amax(lua_State *L) { return dims_reduction(L, "amax", nn_amax); }
static int m_amin(lua_State *L) { return dims_reduction(L, "amin", nn_amin); }

/*** t:all([dims [, keepdim = false]]), t:any([dims [, keepdim = false]]), t:count_nonzero([dims])
 * Whether every (any) element over the dims is nonzero, as bool tensors;
 * the number of nonzero elements (int64). NaN counts as nonzero.
 *   if mask:any():item() then ... end        x:count_nonzero(1)
 */
static int m_all(lua_State *L) { return dims_reduction(L, "all", nn_all); }
static int m_any(lua_State *L) { return dims_reduction(L, "any", nn_any); }
static int m_count_nonzero(lua_State *L) {
  nnl_check_nargs(L, 1, 1, "count_nonzero", "[dims]");
  nn_tensor *t = nnl_check_tensor(L, 1, "count_nonzero");
  nnl_push_tensor(L, nn_count_nonzero(t, nnl_check_dims(L, 2, t, "count_nonzero")));
  return 1;
}

/*** t:dist(other [, p = 2])
 * The p-norm of t - other (broadcast), a 0-dimensional tensor.
 *   a:dist(b)          a:dist(b, 1)
 */
static int m_dist(lua_State *L) {
  nnl_check_nargs(L, 1, 2, "dist", "other [, p]");
  nn_tensor *a = nnl_check_tensor(L, 1, "dist"), *b = nnl_check_tensor(L, 2, "dist");
  nnl_push_tensor(L, nn_dist(a, b, opt_number(L, 3, "dist", "p", 2)));
  return 1;
}

/*** t:sort([dim = -1 [, descending = false]]), t:argsort([dim = -1 [, descending = false]])
 * The values sorted along dim and their 1-based positions in t (ties keep
 * their order; NaN sorts above every number); argsort gives the positions
 * alone.
 *   local values, order = scores:sort(1, true)
 */
static int sort(lua_State *L, int values_too) {
  const char *op = values_too ? "sort" : "argsort";
  nnl_check_nargs(L, 1, 2, op, "[dim [, descending]]");
  nn_tensor *t = nnl_check_tensor(L, 1, op);
  int d = lua_isnoneornil(L, 2) ? (t->ndim ? t->ndim - 1 : 0) : check_dim_of(L, 2, t, op);
  nn_tensor *idx = NULL, *values = nn_sort(t, d, opt_flag(L, 3, op, "descending", 0), &idx);
  if (values_too) return push_pair(L, values, idx);
  if (!values) return nnl_engine_error(L);
  nn_release(values);
  nnl_push_tensor(L, nnl_one_based(idx));
  return 1;
}
static int m_sort(lua_State *L) { return sort(L, 1); }
static int m_argsort(lua_State *L) { return sort(L, 0); }

/*** t:topk(k [, dim = -1 [, largest = true]])
 * The k largest (smallest) values along dim, in order, and their 1-based
 * positions.
 *   local best, classes = probs:topk(5)
 */
static int m_topk(lua_State *L) {
  nnl_check_nargs(L, 1, 3, "topk", "k [, dim [, largest]]");
  nn_tensor *t = nnl_check_tensor(L, 1, "topk");
  lua_Integer k = luaL_checkinteger(L, 2);
  int d = lua_isnoneornil(L, 3) ? (t->ndim ? t->ndim - 1 : 0) : check_dim_of(L, 3, t, "topk");
  nn_tensor *idx = NULL, *values = nn_topk(t, k, d, opt_flag(L, 4, "topk", "largest", 1), &idx);
  return push_pair(L, values, idx);
}

/*** t:kthvalue(k [, dim = -1 [, keepdim = false]])
 * The k-th smallest value along dim (k from 1) and its 1-based position.
 *   local second, where = x:kthvalue(2)
 */
static int m_kthvalue(lua_State *L) {
  nnl_check_nargs(L, 1, 3, "kthvalue", "k [, dim [, keepdim]]");
  nn_tensor *t = nnl_check_tensor(L, 1, "kthvalue");
  lua_Integer k = luaL_checkinteger(L, 2);
  int d = lua_isnoneornil(L, 3) ? (t->ndim ? t->ndim - 1 : 0) : check_dim_of(L, 3, t, "kthvalue");
  nn_tensor *idx = NULL, *values = nn_kthvalue(t, k, d, opt_flag(L, 4, "kthvalue", "keepdim", 0), &idx);
  return push_pair(L, values, idx);
}

/*** t:median([dim [, keepdim = false]])
 * The lower median of all elements (a 0-dimensional tensor), or along dim
 * with its 1-based position; NaN where a NaN is present.
 *   local m = x:median()          local m, where = x:median(1)
 */
static int m_median(lua_State *L) {
  nnl_check_nargs(L, 1, 2, "median", "[dim [, keepdim]]");
  nn_tensor *t = nnl_check_tensor(L, 1, "median");
  if (lua_isnoneornil(L, 2)) {
    nnl_push_tensor(L, nn_median(t, NN_ALL_DIMS, 0, NULL));
    return 1;
  }
  int d = check_dim_of(L, 2, t, "median");
  nn_tensor *idx = NULL, *values = nn_median(t, d, opt_flag(L, 3, "median", "keepdim", 0), &idx);
  return push_pair(L, values, idx);
}



/*** t:unique([{sorted = true, return_inverse = false, return_counts = false}])
 * The distinct values of t, flattened and in ascending order (sorted =
 * false gives them sorted too, an order PyTorch allows); with
 * return_inverse, also each element's 1-based position among them (int64,
 * t's shape); with return_counts, also how often each occurs (int64). No
 * gradient flows through unique, as in PyTorch. The dim option is not
 * supported yet; int64 values beyond 2^53 may merge.
 *   local values, where, counts = labels:unique({return_inverse = true, return_counts = true})
 */
static int m_unique(lua_State *L) {
  nnl_check_nargs(L, 1, 1, "unique", "[options]");
  nn_tensor *t = nnl_check_tensor(L, 1, "unique");
  int flags[3] = {1, 0, 0};
  if (!lua_isnoneornil(L, 2)) {
    static const char *const keys[] = {"sorted", "return_inverse", "return_counts", "dim"};
    if (!lua_istable(L, 2)) return nnl_error(L, "unique: options must be a table, got %s", luaL_typename(L, 2));
    lua_pushnil(L);
    while (lua_next(L, 2)) {
      int known = -1;
      for (int i = 0; i < 4; i++)
        if (lua_type(L, -2) == LUA_TSTRING && !strcmp(lua_tostring(L, -2), keys[i])) known = i;
      if (known < 0)
        return nnl_error(L, "unique: unknown option %s", lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : luaL_typename(L, -2));
      if (known == 3) return nnl_error(L, "unique: the dim option is not supported yet; unique flattens t");
      flags[known] = opt_flag(L, lua_gettop(L), "unique", keys[known], flags[known]);
      lua_pop(L, 1);
    }
  }
  nn_tensor *inverse = NULL, *counts = NULL;
  nn_tensor *values = nn_unique(t, flags[1] ? &inverse : NULL, flags[2] ? &counts : NULL);
  if (!values) return nnl_engine_error(L);
  nnl_push_tensor(L, values);
  if (flags[1]) nnl_push_tensor(L, nnl_one_based(inverse));
  if (flags[2]) nnl_push_tensor(L, counts);
  return 1 + flags[1] + flags[2];
}

/*** t:mode([dim = -1 [, keepdim = false]])
 * The most frequent value along dim (the smallest of those tied) and the
 * 1-based position of its last occurrence, as PyTorch's mode; the values'
 * gradient goes to that position, as max(dim)'s.
 *   local votes, where = predictions:mode(2)
 */
static int m_mode(lua_State *L) {
  nnl_check_nargs(L, 1, 2, "mode", "[dim [, keepdim]]");
  nn_tensor *t = nnl_check_tensor(L, 1, "mode");
  int d = lua_isnoneornil(L, 2) ? (t->ndim ? t->ndim - 1 : 0) : check_dim_of(L, 2, t, "mode");
  nn_tensor *idx = NULL, *values = nn_mode(t, d, opt_flag(L, 3, "mode", "keepdim", 0), &idx);
  return push_pair(L, values, idx);
}

/* ---- linear algebra ---------------------------------------------------------------- */
/*** t:mm(other), t:bmm(other), t:mv(vec), t:dot(other), t:outer(other)
 * PyTorch's products with their shape rules: matrix by matrix (2-D only),
 * batch by batch (3-D, one batch size), matrix by vector, the dot product
 * of two vectors (0-dimensional), the outer product of two vectors. t:matmul
 * takes any of these shapes, and broadcasts batches of matrices. Each is
 * also nn.<name>(a, b).
 *   local scores = q:bmm(k:transpose(2, 3))       u:outer(v)
 */
static int product(lua_State *L, const char *op, nn_tensor *(*fn)(nn_tensor *, nn_tensor *)) {
  nnl_check_nargs(L, 1, 1, op, "other");
  nn_tensor *a = nnl_check_tensor(L, 1, op), *b = nnl_check_tensor(L, 2, op);
  nnl_push_tensor(L, fn(a, b));
  return 1;
}
static int m_mm(lua_State *L) { return product(L, "mm", nn_mm); }
static int m_bmm(lua_State *L) { return product(L, "bmm", nn_bmm); }
static int m_mv(lua_State *L) { return product(L, "mv", nn_mv); }
static int m_dot(lua_State *L) { return product(L, "dot", nn_dot); }
static int m_outer(lua_State *L) { return product(L, "outer", nn_outer); }

/*** t:addmm(mat1, mat2 [, {beta = 1, alpha = 1}]), t:baddbmm(batch1, batch2 [, {beta = 1, alpha = 1}])
 * beta t + alpha mat1 mat2 (t broadcast to the product's shape; beta 0
 * ignores t, NaN included), and the same over batches of matrices. Also
 * nn.addmm(input, mat1, mat2, ...), nn.baddbmm(input, batch1, batch2, ...).
 *   local y = b:addmm(x, w:t())
 */
static int add_product(lua_State *L, const char *op,
                       nn_tensor *(*fn)(nn_tensor *, nn_tensor *, nn_tensor *, double, double)) {
  nnl_check_nargs(L, 1, 3, op, "mat1, mat2 [, options]");
  nn_tensor *t = nnl_check_tensor(L, 1, op), *a = nnl_check_tensor(L, 2, op), *b = nnl_check_tensor(L, 3, op);
  double beta = 1, alpha = 1;
  if (!lua_isnoneornil(L, 4)) {
    if (!lua_istable(L, 4)) return nnl_error(L, "%s: options must be a table {beta =, alpha =}, got %s", op, luaL_typename(L, 4));
    lua_getfield(L, 4, "beta");
    beta = opt_number(L, -1, op, "beta", 1);
    lua_getfield(L, 4, "alpha");
    alpha = opt_number(L, -1, op, "alpha", 1);
    lua_pop(L, 2);
  }
  nnl_push_tensor(L, fn(t, a, b, beta, alpha));
  return 1;
}
static int m_addmm(lua_State *L) { return add_product(L, "addmm", nn_addmm); }
static int m_baddbmm(lua_State *L) { return add_product(L, "baddbmm", nn_baddbmm); }

static lua_Integer opt_integer(lua_State *L, int idx, const char *op, const char *name, lua_Integer def) {
  if (lua_isnoneornil(L, idx)) return def;
  if (!lua_isinteger(L, idx))
    nnl_error(L, "%s: %s must be an integer, got %s", op, name, luaL_typename(L, idx));
  return lua_tointeger(L, idx);
}

/*** t:tril([k = 0]), t:triu([k = 0])
 * The elements on and below (above) diagonal k of the last two dims, the
 * others 0; k > 0 counts diagonals above the main one.
 *   local causal = scores:tril()        nn.ones(3, 3):triu(1)
 */
static int band(lua_State *L, int upper) {
  const char *op = upper ? "triu" : "tril";
  nnl_check_nargs(L, 1, 1, op, "[k]");
  nn_tensor *t = nnl_check_tensor(L, 1, op);
  nnl_push_tensor(L, nn_tril(t, opt_integer(L, 2, op, "k", 0), upper));
  return 1;
}
static int m_tril(lua_State *L) { return band(L, 0); }
static int m_triu(lua_State *L) { return band(L, 1); }

/*** t:diag([k = 0]), t:diagonal([offset = 0 [, dim1 = 1 [, dim2 = 2]]]), t:trace()
 * diag: a vector becomes the square matrix with it on diagonal k; a matrix
 * gives its diagonal k. diagonal is the view of a diagonal of dims dim1 and
 * dim2, which become its last dim. trace is the sum of the main diagonal.
 *   nn.tensor({1, 2}):diag()      x:diagonal(0, 2, 3)      m:trace()
 */
static int m_diag(lua_State *L) {
  nnl_check_nargs(L, 1, 1, "diag", "[k]");
  nn_tensor *t = nnl_check_tensor(L, 1, "diag");
  nnl_push_tensor(L, nn_diag(t, opt_integer(L, 2, "diag", "k", 0)));
  return 1;
}

static int m_diagonal(lua_State *L) {
  nnl_check_nargs(L, 1, 3, "diagonal", "[offset [, dim1 [, dim2]]]");
  nn_tensor *t = nnl_check_tensor(L, 1, "diagonal");
  lua_Integer offset = opt_integer(L, 2, "diagonal", "offset", 0);
  if (t->ndim < 2) return nnl_error(L, "diagonal: the tensor needs at least 2 dimensions, it has %d", t->ndim);
  int d1 = lua_isnoneornil(L, 3) ? 0 : check_dim_of(L, 3, t, "diagonal");
  int d2 = lua_isnoneornil(L, 4) ? 1 : check_dim_of(L, 4, t, "diagonal");
  nnl_push_tensor(L, nn_diagonal(t, offset, d1, d2));
  return 1;
}

static int m_trace(lua_State *L) {
  nnl_check_nargs(L, 1, 0, "trace", "");
  nnl_push_tensor(L, nn_trace(nnl_check_tensor(L, 1, "trace")));
  return 1;
}

/*** nn.einsum(equation, operands...)
 * Einstein summation: "ij,jk->ik" multiplies the operands along the letters
 * they share and sums the letters missing after "->" (without "->", the
 * output is the letters seen once, in alphabetical order); a letter twice in
 * one term takes a diagonal. Operands as arguments or one table. Gradients
 * reach every operand. ("..." is not supported.)
 *   nn.einsum("bij,bjk->bik", a, b)      nn.einsum("ii", m)
 */
static int l_einsum(lua_State *L) {
  const char *eq = luaL_checkstring(L, 1);
  int n = lua_gettop(L) - 1, from_table = n == 1 && lua_istable(L, 2);
  if (from_table) n = (int)lua_rawlen(L, 2);
  if (n < 1 || n > 16) return nnl_error(L, "einsum: expected 1 to 16 operands, got %d", n);
  nn_tensor *ops[16];
  for (int i = 0; i < n; i++) {
    if (from_table) {
      lua_rawgeti(L, 2, i + 1);
      ops[i] = nnl_check_tensor(L, lua_gettop(L), "einsum");
      lua_pop(L, 1); /* the table keeps it alive */
    } else {
      ops[i] = nnl_check_tensor(L, i + 2, "einsum");
    }
  }
  nnl_push_tensor(L, nn_einsum(eq, ops, n));
  return 1;
}

/* ---- creation ------------------------------------------------------------------- */
/* Options at idx for a tensor made like t: its dtype and device unless the
   table names others. */
static void like_options(lua_State *L, int idx, const char *op, const nn_tensor *t, nnl_options *o) {
  nnl_read_options(L, idx, op, o);
  int has_dtype = 0, has_device = 0;
  if (idx && lua_istable(L, idx)) {
    has_dtype = lua_getfield(L, idx, "dtype") != LUA_TNIL;
    has_device = lua_getfield(L, idx, "device") != LUA_TNIL;
    lua_pop(L, 2);
  }
  if (!has_dtype) o->dtype = t->dtype;
  if (!has_device) o->device = t->device;
}

enum { MAKE_ZEROS, MAKE_ONES, MAKE_FULL, MAKE_EMPTY, MAKE_RAND, MAKE_RANDN };

static nn_tensor *make(lua_State *L, const char *op, int kind, double value, const nnl_options *o,
                       int ndim, const int64_t *size) {
  if (nn_check_shape(op, ndim, size) < 0) nnl_engine_error(L);
  if ((kind == MAKE_RAND || kind == MAKE_RANDN) && !nn_dtype_is_floating(o->dtype))
    nnl_error(L, "%s: random values need float32 or float64, got %s", op, nn_dtype_name(o->dtype));
  nn_tensor *t = kind == MAKE_RAND    ? nn_rand(o->dtype, ndim, size)
                 : kind == MAKE_RANDN ? nn_randn(o->dtype, ndim, size)
                                      : nn_full(o->dtype, ndim, size,
                                                kind == MAKE_ONES ? 1 : (kind == MAKE_FULL ? value : 0));
  return nnl_apply_options(L, t, o, op);
}

/*** nn.zeros_like(t [, options]), nn.ones_like(t [, options]), nn.full_like(t, value [, options]),
 * nn.empty_like(t [, options]), nn.rand_like(t [, options]), nn.randn_like(t [, options])
 * A new tensor of t's shape, dtype and device (options {dtype =, device =,
 * requires_grad =} change them): zeros, ones, value, uninitialised (here
 * zeros), uniform in [0, 1) or normal, the draws PyTorch's after the same
 * nn.manual_seed.
 *   local noise = nn.randn_like(x) * 0.1
 */
static int like(lua_State *L, const char *op, int kind) {
  int with_value = kind == MAKE_FULL;
  nnl_check_nargs(L, 0, 2 + with_value, op, with_value ? "t, value [, options]" : "t [, options]");
  nn_tensor *t = nnl_check_tensor(L, 1, op);
  double value = with_value ? luaL_checknumber(L, 2) : 0;
  int opt = 2 + with_value;
  if (!lua_isnoneornil(L, opt) && !lua_istable(L, opt))
    return nnl_error(L, "%s: options must be a table, got %s", op, luaL_typename(L, opt));
  nnl_options o;
  like_options(L, lua_isnoneornil(L, opt) ? 0 : opt, op, t, &o);
  nnl_push_tensor(L, make(L, op, kind, value, &o, t->ndim, t->size));
  return 1;
}
static int l_zeros_like(lua_State *L) { return like(L, "zeros_like", MAKE_ZEROS); }
static int l_ones_like(lua_State *L) { return like(L, "ones_like", MAKE_ONES); }
static int l_full_like(lua_State *L) { return like(L, "full_like", MAKE_FULL); }
static int l_empty_like(lua_State *L) { return like(L, "empty_like", MAKE_EMPTY); }
static int l_rand_like(lua_State *L) { return like(L, "rand_like", MAKE_RAND); }
static int l_randn_like(lua_State *L) { return like(L, "randn_like", MAKE_RANDN); }

/*** t:new_zeros(sizes [, options]), t:new_ones(sizes [, options]), t:new_full(sizes, value [, options])
 * A new tensor of the given sizes (numbers, or one table) with t's dtype and
 * device unless options say otherwise.
 *   local mask = x:new_ones(4, 4)       x:new_full({2}, -1)
 */
static int new_sized(lua_State *L, const char *op, int kind) {
  nn_tensor *t = nnl_check_tensor(L, 1, op);
  int64_t size[NN_MAX_DIMS];
  double value = 0;
  int opt = 0, n;
  if (kind == MAKE_FULL) {
    nnl_check_nargs(L, 1, 3, op, "sizes, value [, options]");
    if (!lua_istable(L, 2) || lua_type(L, 3) != LUA_TNUMBER)
      return nnl_error(L, "new_full: expected a table of sizes then a fill value, as new_full({2, 3}, 7)");
    n = nnl_check_sizes(L, 2, op, size, &opt);
    value = lua_tonumber(L, 3);
    opt = lua_istable(L, 4) ? 4 : 0;
    if (!opt && !lua_isnoneornil(L, 4))
      return nnl_error(L, "new_full: options must be a table, got %s", luaL_typename(L, 4));
  } else {
    n = nnl_check_sizes(L, 2, op, size, &opt);
    if (opt) nnl_check_nargs(L, 0, opt, op, "sizes [, options]");
  }
  nnl_options o;
  like_options(L, opt, op, t, &o);
  nnl_push_tensor(L, make(L, op, kind, value, &o, n, size));
  return 1;
}
static int m_new_zeros(lua_State *L) { return new_sized(L, "new_zeros", MAKE_ZEROS); }
static int m_new_ones(lua_State *L) { return new_sized(L, "new_ones", MAKE_ONES); }
static int m_new_full(lua_State *L) { return new_sized(L, "new_full", MAKE_FULL); }

/*** nn.randint([low = 0,] high, sizes [, options])
 * Integers uniform in [low, high) (int64 unless options give a dtype), the
 * draws PyTorch's torch.randint after the same nn.manual_seed.
 *   nn.manual_seed(0); local labels = nn.randint(1, 11, {64})
 */
static int l_randint(lua_State *L) {
  nnl_check_nargs(L, 0, 4, "randint", "[low,] high, sizes [, options]");
  int top = nnl_drop_trailing_nils(L);
  int opt = top >= 2 && lua_istable(L, top) && lua_istable(L, top - 1) ? top : 0;
  int sizes_idx = opt ? top - 1 : top, numbers = sizes_idx - 1;
  if (sizes_idx < 2 || numbers > 2 || !lua_istable(L, sizes_idx))
    return nnl_error(L, "randint: expected randint([low,] high, sizes [, options]), sizes a table");
  lua_Integer bound[2] = {0, 0};
  for (int i = 1; i <= numbers; i++) {
    int ok;
    bound[i - 1] = lua_tointegerx(L, i, &ok);
    if (!ok || lua_type(L, i) != LUA_TNUMBER)
      return nnl_error(L, "randint: low and high must be integers, got %s",
                       lua_type(L, i) == LUA_TNUMBER ? lua_tostring(L, i) : luaL_typename(L, i));
  }
  lua_Integer low = numbers == 2 ? bound[0] : 0, high = numbers == 2 ? bound[1] : bound[0];
  int64_t size[NN_MAX_DIMS];
  int ignored;
  int n = nnl_check_sizes(L, sizes_idx, "randint", size, &ignored);
  nnl_options o;
  nnl_read_options(L, opt, "randint", &o);
  if (!opt || (lua_getfield(L, opt, "dtype"), lua_isnil(L, -1))) o.dtype = NN_INT64;
  if (nn_check_shape("randint", n, size) < 0) return nnl_engine_error(L);
  nnl_push_tensor(L, nnl_apply_options(L, nn_randint(low, high, o.dtype, n, size), &o, "randint"));
  return 1;
}

/*** nn.randperm(n [, options])
 * A random order of 1..n (int64), for indexing: PyTorch's torch.randperm(n)
 * plus 1, draw for draw after the same nn.manual_seed.
 *   local order = nn.randperm(#dataset)
 */
static int l_randperm(lua_State *L) {
  nnl_check_nargs(L, 0, 2, "randperm", "n [, options]");
  int whole;
  lua_Integer n = lua_tointegerx(L, 1, &whole);
  if (!whole || lua_type(L, 1) != LUA_TNUMBER)
    return nnl_error(L, "randperm: n must be an integer, got %s", luaL_typename(L, 1));
  nnl_options o;
  nnl_read_options(L, lua_isnoneornil(L, 2) ? 0 : 2, "randperm", &o);
  int has_dtype = lua_istable(L, 2) && (lua_getfield(L, 2, "dtype"), !lua_isnil(L, -1));
  nn_tensor *p = nn_randperm(n, 1);
  if (p && has_dtype && o.dtype != NN_INT64) {
    nn_tensor *c = nn_to_dtype(p, o.dtype);
    nn_release(p);
    p = c;
  }
  nnl_push_tensor(L, nnl_apply_options(L, p, &o, "randperm"));
  return 1;
}

/*** nn.as_tensor(data [, options])
 * data as a tensor: a tensor of the asked dtype and device is returned as
 * it is (no copy, still in its graph), another tensor converted, anything
 * else made as nn.tensor(data, options) makes it.
 *   local x = nn.as_tensor(batch, {dtype = "float32"})
 */
static int l_as_tensor(lua_State *L) {
  nnl_check_nargs(L, 0, 2, "as_tensor", "data [, options]");
  nn_tensor *t = nnl_to_tensor(L, 1);
  if (!t) { /* nn.tensor, upvalue 1 */
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, lua_gettop(L) - 1, 1);
    return 1;
  }
  if (!lua_isnoneornil(L, 2) && !lua_istable(L, 2))
    return nnl_error(L, "as_tensor: options must be a table, got %s", luaL_typename(L, 2));
  nnl_options o;
  like_options(L, lua_isnoneornil(L, 2) ? 0 : 2, "as_tensor", t, &o);
  nn_tensor *c = nn_to_dtype(t, o.dtype), *d = c ? nn_to_device(c, o.device) : NULL;
  nn_release(c);
  nnl_push_tensor(L, d);
  return 1;
}

/* ---- registration ----------------------------------------------------------------- */
static const luaL_Reg math_methods[] = {
    {"clamp_min", m_clamp_min}, {"clamp_max", m_clamp_max}, {"clamp_min_", m_clamp_min_},
    {"clamp_max_", m_clamp_max_}, {"lerp", m_lerp}, {"nan_to_num", m_nan_to_num},
    {"nan_to_num_", m_nan_to_num_}, {"allclose", m_allclose}, {"equal", m_equal},
    {"prod", m_prod}, {"cumsum", m_cumsum}, {"cumprod", m_cumprod}, {"var", m_var},
    {"std", m_std}, {"logsumexp", m_logsumexp}, {"amax", m_amax}, {"amin", m_amin},
    {"all", m_all}, {"any", m_any}, {"count_nonzero", m_count_nonzero}, {"dist", m_dist},
    {"sort", m_sort}, {"argsort", m_argsort}, {"topk", m_topk}, {"kthvalue", m_kthvalue},
    {"median", m_median}, {"unique", m_unique}, {"mode", m_mode}, {"new_zeros", m_new_zeros}, {"new_ones", m_new_ones},
    {"new_full", m_new_full}, {"mm", m_mm}, {"bmm", m_bmm}, {"mv", m_mv}, {"dot", m_dot},
    {"outer", m_outer}, {"addmm", m_addmm}, {"baddbmm", m_baddbmm}, {"tril", m_tril},
    {"triu", m_triu}, {"diag", m_diag}, {"diagonal", m_diagonal}, {"trace", m_trace},
    {NULL, NULL}};

static const luaL_Reg creation_functions[] = {
    {"zeros_like", l_zeros_like}, {"ones_like", l_ones_like}, {"full_like", l_full_like},
    {"empty_like", l_empty_like}, {"rand_like", l_rand_like}, {"randn_like", l_randn_like},
    {"randint", l_randint}, {"randperm", l_randperm}, {"einsum", l_einsum}, {NULL, NULL}};

/*** nn.log1p(t), nn.expm1(t), nn.log2(t), nn.log10(t), nn.rsqrt(t), nn.reciprocal(t),
 * nn.square(t), nn.tan(t), nn.asin(t), nn.acos(t), nn.atan(t), nn.sinh(t), nn.cosh(t),
 * nn.erf(t), nn.erfinv(t), nn.trunc(t), nn.frac(t), nn.isnan(t), nn.isinf(t), nn.isfinite(t),
 * nn.logical_not(t), nn.atan2(t, ...), nn.fmod(t, ...), nn.remainder(t, ...),
 * nn.logical_and(t, ...), nn.logical_or(t, ...), nn.logical_xor(t, ...),
 * nn.clamp_min(t, ...), nn.clamp_max(t, ...), nn.lerp(t, ...), nn.allclose(t, ...),
 * nn.equal(t, ...), nn.dist(t, ...), nn.nan_to_num(t, ...), nn.prod(t, ...),
 * nn.cumsum(t, ...), nn.cumprod(t, ...), nn.var(t, ...), nn.std(t, ...),
 * nn.logsumexp(t, ...), nn.amax(t, ...), nn.amin(t, ...), nn.all(t, ...), nn.any(t, ...),
 * nn.count_nonzero(t, ...), nn.sort(t, ...), nn.argsort(t, ...), nn.topk(t, ...),
 * nn.kthvalue(t, ...), nn.median(t, ...), nn.unique(t, ...), nn.mode(t, ...), nn.mm(t, ...), nn.bmm(t, ...), nn.mv(t, ...),
 * nn.dot(t, ...), nn.outer(t, ...), nn.addmm(t, ...), nn.baddbmm(t, ...), nn.tril(t, ...),
 * nn.triu(t, ...), nn.diag(t, ...), nn.diagonal(t, ...), nn.trace(t), nn.div(t, ...),
 * nn.floor_divide(t, ...)
 * PyTorch's torch.<name> functions: each is the tensor method of that name
 * called on its first argument, nn.sort(x, 1) being x:sort(1); see the
 * methods for what they compute.
 *   local values, order = nn.sort(scores, 1, true)      nn.logsumexp(x, 2)
 */
/* The methods that are also nn.<name>(t, ...), as PyTorch's torch.<name>. */
static const char *const function_names[] = {
    "log1p", "expm1", "log2", "log10", "rsqrt", "reciprocal", "square", "tan", "asin", "acos",
    "atan", "sinh", "cosh", "erf", "erfinv", "trunc", "frac", "isnan", "isinf", "isfinite",
    "logical_not", "atan2", "fmod", "remainder", "logical_and", "logical_or", "logical_xor",
    "clamp_min", "clamp_max", "lerp", "nan_to_num", "allclose", "equal", "prod", "cumsum",
    "cumprod", "var", "std", "logsumexp", "amax", "amin", "all", "any", "count_nonzero", "dist",
    "sort", "argsort", "topk", "kthvalue", "median", "unique", "mode", "mm", "bmm", "mv", "dot", "outer", "addmm",
    "baddbmm", "tril", "triu", "diag", "diagonal", "trace", "div", "floor_divide", NULL};

/* nn.<name>(t, ...): t's method of that name (upvalue 1), or an error
   naming it when t is not a tensor. */
static int l_method_as_function(lua_State *L) {
  const char *name = lua_tostring(L, lua_upvalueindex(2));
  nnl_check_tensor(L, 1, name);
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_insert(L, 1);
  lua_call(L, lua_gettop(L) - 1, LUA_MULTRET);
  return lua_gettop(L);
}

void nnl_register_math(lua_State *L) {
  luaL_getmetatable(L, NNL_TENSOR);
  lua_getfield(L, -1, "methods");
  luaL_setfuncs(L, math_methods, 0);
  lua_createtable(L, 0, 80); /* core.math_functions (76): init.lua copies them into nn */
  for (int i = 0; function_names[i]; i++) {
    lua_getfield(L, -2, function_names[i]);
    lua_pushstring(L, function_names[i]);
    lua_pushcclosure(L, l_method_as_function, 2);
    lua_setfield(L, -2, function_names[i]);
  }
  luaL_setfuncs(L, creation_functions, 0);
  lua_getfield(L, -4, "tensor");
  lua_pushcclosure(L, l_as_tensor, 1);
  lua_setfield(L, -2, "as_tensor");
  lua_setfield(L, -4, "math_functions");
  lua_pop(L, 2);
}

/* nn_capture.c: nn.capture, a training step recorded once and replayed
 * (the engine's plan: engine/src/capture.c).
 *
 * A step object calls its function eagerly the first time (the warm-up,
 * which makes the gradients and the optimizer's state), captures it the
 * second time, and replays the plan from then on while the arguments have
 * the shapes, dtypes and devices it was captured with. New ones capture a
 * new plan; the step keeps the last MAX_PLANS plans, so that an epoch's
 * last, partial batch does not capture twice an epoch.
 *
 * The function runs on copies of the arguments that the plan owns; a
 * replay copies the new values into them first. What the function
 * returns, the plan's tensors, comes back from every replay: the same
 * tensor objects with new values, overwritten by the next call (as
 * torch.cuda.graphs' outputs are).
 *
 * nn.optim's steps are host calls of the plan (nnl_capture_call): a
 * replay calls their C function again with the same group and state
 * tables, so that a scheduler's learning rate and Adam's step count are
 * read afresh, in C, at every step. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "nn_binding.h"

#define NNL_CAPTURED_STEP "nn.CapturedStep"
#define MAX_PLANS 4

/* The step's uservalues. */
enum { UV_FUNCTION = 1, UV_WHY, UV_PLAN_TABLES, UV_COUNT = UV_PLAN_TABLES };
/* Each plan's Lua table: [PLAN_RESULTS] its results, [PLAN_HELD] the
   values its host calls need (their functions and arguments). */
enum { PLAN_RESULTS = 1, PLAN_HELD = 2 };

typedef struct {
  nn_plan *plan;       /* NULL: an empty slot */
  int nargs, nresults;
  nn_tensor **inputs;  /* the copies the function ran on */
  unsigned long last_use;
} captured_plan;

/* A step is recognised by its size and this tag (as a tensor's box is),
   without luaL_testudata's lookup of the metatable by name: each replay
   checks it. Only C code makes userdata. */
#define STEP_TAG 0x6e6e6c7561537450ULL /* "nnluaStP" */

typedef struct {
  uint64_t tag;
  unsigned long calls;
  int eager; /* the step could not be captured: it runs eagerly from now on */
  captured_plan plans[MAX_PLANS];
} captured_step;

/* ---- host calls ---------------------------------------------------------- */
/* Where the host calls of the plan being captured keep their values: a
   registry reference to its PLAN_HELD table, and the next free slot. */
static struct {
  int active;
  int held_ref;
  lua_Integer next_slot;
} session;

typedef struct {
  lua_Integer first; /* the function, then its arguments, from here in the held table */
  int nargs;
  /* when set, tried first at a replay, with the arguments on the stack
     (nnl_capture_call_native); the call itself when it gives 0 */
  nnl_native_replay native;
  void *data;
  void (*free_data)(void *);
} held_call;

static void free_held_call(void *ctx) {
  held_call *c = ctx;
  if (c->free_data) c->free_data(c->data);
  free(c);
}

typedef struct {
  lua_State *L;
  int held; /* the stack index of the plan's held table */
} replay_context;

static int replay_held_call(void *ctx, void *arg) {
  const held_call *c = ctx;
  const replay_context *r = arg;
  lua_State *L = r->L;
  if (!lua_checkstack(L, c->nargs + 1)) {
    nn_error_set("capture: the Lua stack is full");
    return -1;
  }
  if (c->native) {
    /* no Lua call: the arguments only, and the native replay on them */
    int top = lua_gettop(L);
    for (int i = 0; i <= c->nargs; i++) lua_rawgeti(L, r->held, c->first + i);
    int done = c->native(L, top + 1, c->data);
    lua_settop(L, top);
    if (done != 0) return done < 0 ? -1 : 0;
  }
  for (int i = 0; i <= c->nargs; i++) lua_rawgeti(L, r->held, c->first + i);
  if (lua_pcall(L, c->nargs, 0, 0) != LUA_OK) {
    nn_error_set("%s", lua_tostring(L, -1));
    lua_pop(L, 1);
    return -1;
  }
  return 0;
}

int nnl_capture_call_native(lua_State *L, int nargs, nnl_native_replay native, void *data,
                            void (*free_data)(void *)) {
  if (!session.active || !nn_capture_recording()) {
    if (free_data) free_data(data);
    return 0;
  }
  held_call *c = malloc(sizeof *c);
  lua_Debug ar;
  if (!c || !lua_getstack(L, 0, &ar)) {
    free(c);
    if (free_data) free_data(data);
    nn_capture_refuse("capture: out of memory recording the step");
    return 0;
  }
  c->native = native;
  c->data = data;
  c->free_data = free_data;
  luaL_checkstack(L, 3, "capture");
  lua_rawgeti(L, LUA_REGISTRYINDEX, session.held_ref);
  c->first = session.next_slot;
  c->nargs = nargs;
  lua_getinfo(L, "f", &ar); /* the running function itself, upvalues and all */
  lua_rawseti(L, -2, session.next_slot++);
  for (int i = 1; i <= nargs; i++) {
    lua_pushvalue(L, i);
    lua_rawseti(L, -2, session.next_slot++);
  }
  lua_pop(L, 1);
  nn_capture_host_call(replay_held_call, c, free_held_call);
  return 1;
}

int nnl_capture_call(lua_State *L, int nargs) {
  return nnl_capture_call_native(L, nargs, NULL, NULL, NULL);
}

/* ---- the step object ------------------------------------------------------- */
static captured_step *to_step(lua_State *L, int idx) {
  captured_step *s = lua_touserdata(L, idx);
  if (s && lua_rawlen(L, idx) == sizeof *s && s->tag == STEP_TAG) return s;
  return NULL;
}

static captured_step *check_step(lua_State *L, const char *method) {
  captured_step *s = to_step(L, 1);
  if (!s)
    nnl_error(L, "capture: %s expects a captured step (step:%s()), got %s", method, method,
              luaL_typename(L, 1));
  return s;
}

static void release_inputs(captured_plan *p) {
  if (p->inputs)
    for (int i = 0; i < p->nargs; i++) nn_release(p->inputs[i]);
  free(p->inputs);
  p->inputs = NULL;
}

static void clear_plan(captured_plan *p) {
  nn_plan_free(p->plan);
  release_inputs(p);
  memset(p, 0, sizeof *p);
}

static int step_gc(lua_State *L) {
  captured_step *s = luaL_checkudata(L, 1, NNL_CAPTURED_STEP);
  for (int i = 0; i < MAX_PLANS; i++) clear_plan(&s->plans[i]);
  return 0;
}

/* The step's arguments as tensors, looked up once a call: up to this
   many kept in the caller's array, more looked up again where needed. */
#define KEPT_ARGS 16
static const nn_tensor *arg_tensor(lua_State *L, nn_tensor *const *args, int i) {
  return args ? args[i] : nnl_to_tensor(L, i + 2);
}

/* Checks the step's arguments (stack 2 .. nargs + 1): tensors, none
   requiring grad (the plan's copies would take its gradient); fills args
   (when not NULL) with them. */
static void check_arguments(lua_State *L, int nargs, nn_tensor **args) {
  for (int i = 1; i <= nargs; i++) {
    nn_tensor *t = nnl_to_tensor(L, i + 1);
    if (args) args[i - 1] = t;
    if (!t)
      nnl_error(L, "capture: the step's argument %d must be a tensor, got %s", i,
                luaL_typename(L, i + 1));
    if (t->requires_grad)
      nnl_error(L, "capture: the step's argument %d requires grad; a captured step takes data "
                "(its gradient would go to the plan's copy)", i);
  }
}

static int same_signature(const captured_plan *p, lua_State *L, int nargs, nn_tensor *const *args) {
  if (!p->plan || p->nargs != nargs) return 0;
  for (int i = 0; i < nargs; i++) {
    const nn_tensor *a = arg_tensor(L, args, i), *in = p->inputs[i];
    if (a->dtype != in->dtype || a->device != in->device || a->ndim != in->ndim) return 0;
    for (int d = 0; d < a->ndim; d++)
      if (a->size[d] != in->size[d]) return 0;
  }
  return 1;
}

static int run_eagerly(lua_State *L, int nargs) {
  lua_getiuservalue(L, 1, UV_FUNCTION);
  lua_insert(L, 2);
  lua_call(L, nargs, LUA_MULTRET);
  return lua_gettop(L) - 1;
}

/* Pushes plan slot i's table. */
static void push_plan_table(lua_State *L, int i) {
  lua_getiuservalue(L, 1, UV_PLAN_TABLES);
  lua_rawgeti(L, -1, i + 1);
  lua_remove(L, -2);
}

static int replay(lua_State *L, captured_step *s, captured_plan *p, int nargs,
                  nn_tensor *const *args) {
  for (int i = 0; i < nargs; i++)
    if (nn_plan_copy_input(p->inputs[i], arg_tensor(L, args, i)) < 0) return nnl_engine_error(L);
  lua_settop(L, 1);
  push_plan_table(L, (int)(p - s->plans)); /* 2 */
  lua_rawgeti(L, 2, PLAN_RESULTS);         /* 3 */
  lua_rawgeti(L, 2, PLAN_HELD);            /* 4 */
  replay_context ctx = {L, 4};
  if (nn_plan_replay(p->plan, &ctx) < 0) return nnl_engine_error(L);
  luaL_checkstack(L, p->nresults, "capture");
  for (int i = 1; i <= p->nresults; i++) lua_rawgeti(L, 3, i);
  return p->nresults;
}

/* The slot a new plan goes to: an empty one, or the one used longest ago. */
static int free_slot(captured_step *s) {
  int best = 0;
  for (int i = 0; i < MAX_PLANS; i++) {
    if (!s->plans[i].plan) return i;
    if (s->plans[i].last_use < s->plans[best].last_use) best = i;
  }
  return best;
}

static void set_why(lua_State *L, const char *why) {
  lua_pushstring(L, why);
  lua_setiuservalue(L, 1, UV_WHY);
}

/* Runs the function on fresh copies of the arguments while a plan
   records, and keeps the plan when it can replay. */
static int capture(lua_State *L, captured_step *s, int nargs) {
  int slot = free_slot(s);
  captured_plan *p = &s->plans[slot];
  clear_plan(p);
  lua_getiuservalue(L, 1, UV_PLAN_TABLES);
  lua_createtable(L, 2, 0);
  lua_newtable(L);
  lua_rawseti(L, -2, PLAN_RESULTS);
  lua_newtable(L);
  lua_rawseti(L, -2, PLAN_HELD);
  lua_pushvalue(L, -1);
  lua_rawseti(L, -3, slot + 1);
  lua_remove(L, -2); /* the plan's table, at base */
  int base = lua_gettop(L);

  p->inputs = calloc((size_t)(nargs ? nargs : 1), sizeof *p->inputs);
  if (!p->inputs) return nnl_error(L, "capture: out of memory");
  p->nargs = nargs;
  for (int i = 0; i < nargs; i++) {
    const nn_tensor *a = nnl_to_tensor(L, i + 2);
    nn_tensor *in = nn_empty_on(a->device, a->dtype, a->ndim, a->size);
    if (!in || nn_copy_(in, a) < 0) {
      nn_release(in);
      clear_plan(p);
      return nnl_engine_error(L);
    }
    p->inputs[i] = in;
  }

  luaL_checkstack(L, nargs + 2, "capture");
  lua_getiuservalue(L, 1, UV_FUNCTION);
  for (int i = 0; i < nargs; i++) nnl_push_tensor(L, nn_retain(p->inputs[i]));
  lua_rawgeti(L, base, PLAN_HELD);
  session.held_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  session.next_slot = 1;
  p->plan = nn_capture_begin();
  if (!p->plan) {
    luaL_unref(L, LUA_REGISTRYINDEX, session.held_ref);
    clear_plan(p);
    return nnl_engine_error(L);
  }
  session.active = 1;
  int status = lua_pcall(L, nargs, LUA_MULTRET, 0);
  int recorded = nn_capture_end(p->plan) == 0;
  session.active = 0;
  luaL_unref(L, LUA_REGISTRYINDEX, session.held_ref);
  if (status != LUA_OK) {
    clear_plan(p);
    return lua_error(L);
  }
  int nresults = lua_gettop(L) - base;
  const char *why = recorded ? NULL : nn_plan_why(p->plan);
  for (int i = 1; recorded && i <= nresults; i++) {
    int idx = base + i;
    if (lua_isnil(L, idx) || nnl_to_tensor(L, idx)) continue;
    lua_pushfstring(L, "capture: the step returns a %s; a captured step returns tensors (it "
                    "runs eagerly)", luaL_typename(L, idx));
    lua_setiuservalue(L, 1, UV_WHY);
    recorded = 0;
  }
  if (!recorded) {
    if (why) set_why(L, why);
    s->eager = 1;
    for (int i = 0; i < MAX_PLANS; i++) clear_plan(&s->plans[i]);
    return nresults;
  }
  /* The results as the plan's tensors without their graph: the same
     storage, no history keeping the step's nodes alive. */
  lua_rawgeti(L, base, PLAN_RESULTS);
  for (int i = 1; i <= nresults; i++) {
    nn_tensor *t = nnl_to_tensor(L, base + i);
    if (t) {
      nnl_push_tensor(L, nn_detach(t));
      lua_replace(L, base + i);
    }
    lua_pushvalue(L, base + i);
    lua_rawseti(L, -2, i);
  }
  lua_pop(L, 1);
  p->nresults = nresults;
  p->last_use = s->calls;
  return nresults;
}

static int step_call(lua_State *L) {
  captured_step *s = check_step(L, "call");
  int nargs = lua_gettop(L) - 1;
  nn_tensor *kept_args[KEPT_ARGS], **args = nargs <= KEPT_ARGS ? kept_args : NULL;
  check_arguments(L, nargs, args);
  /* inside another step's capture: its ops are that plan's to record */
  if (session.active) return run_eagerly(L, nargs);
  s->calls++;
  if (s->eager || s->calls == 1) return run_eagerly(L, nargs);
  for (int i = 0; i < MAX_PLANS; i++) {
    captured_plan *p = &s->plans[i];
    if (same_signature(p, L, nargs, args)) {
      p->last_use = s->calls;
      return replay(L, s, p, nargs, args);
    }
  }
  return capture(L, s, nargs);
}

/*** step:why()
 * Why a captured step runs eagerly: a sentence starting "capture:" (the
 * step read a value on the host, ran on two devices, ...), or nil while it
 * captures and replays.
 *   local step = nn.capture(function(x, y) ... print(loss:item()) ... end)
 *   step(x, y); step(x, y)
 *   print(step:why())  --> capture: item() inside the step reads values on the host, ...
 */
static int step_why(lua_State *L) {
  check_step(L, "why");
  nnl_check_nargs(L, 1, 0, "why", "");
  lua_getiuservalue(L, 1, UV_WHY);
  return 1;
}

/*** step:stats()
 * What a captured step holds: {calls =, plans =, kernels =, host_calls =,
 * storages =, bytes =, graphs =}, summed over its plans (at most 4, one per
 * signature of its arguments); kernels and host_calls are what one replay
 * runs of the plan used last.
 */
static int step_stats(lua_State *L) {
  captured_step *s = check_step(L, "stats");
  nnl_check_nargs(L, 1, 0, "stats", "");
  nn_plan_info total = {0, 0, 0, 0, 0}, last = {0, 0, 0, 0, 0};
  int plans = 0;
  unsigned long latest = 0;
  for (int i = 0; i < MAX_PLANS; i++) {
    if (!s->plans[i].plan) continue;
    nn_plan_info info;
    nn_plan_describe(s->plans[i].plan, &info);
    plans++;
    total.storages += info.storages;
    total.bytes += info.bytes;
    total.graphs += info.graphs;
    if (s->plans[i].last_use >= latest) latest = s->plans[i].last_use, last = info;
  }
  lua_createtable(L, 0, 7);
  lua_pushinteger(L, (lua_Integer)s->calls);
  lua_setfield(L, -2, "calls");
  lua_pushinteger(L, plans);
  lua_setfield(L, -2, "plans");
  lua_pushinteger(L, (lua_Integer)last.kernels);
  lua_setfield(L, -2, "kernels");
  lua_pushinteger(L, (lua_Integer)last.host_calls);
  lua_setfield(L, -2, "host_calls");
  lua_pushinteger(L, (lua_Integer)total.storages);
  lua_setfield(L, -2, "storages");
  lua_pushinteger(L, (lua_Integer)total.bytes);
  lua_setfield(L, -2, "bytes");
  lua_pushinteger(L, (lua_Integer)total.graphs);
  lua_setfield(L, -2, "graphs");
  return 1;
}

static int step_tostring(lua_State *L) {
  captured_step *s = luaL_checkudata(L, 1, NNL_CAPTURED_STEP);
  int plans = 0;
  for (int i = 0; i < MAX_PLANS; i++) plans += s->plans[i].plan != NULL;
  if (s->eager) lua_pushliteral(L, "CapturedStep(eager: see step:why())");
  else if (s->calls == 0) lua_pushliteral(L, "CapturedStep(not called yet)");
  else lua_pushfstring(L, "CapturedStep(%d plan%s)", plans, plans == 1 ? "" : "s");
  return 1;
}

/*** nn.capture(fn)
 * A training step recorded once and replayed: returns a step, called as fn
 * would be, step(x, y, ...) with tensor arguments, which runs fn eagerly
 * the first time (creating the gradients and the optimizer's state),
 * records it the second time into a plan of kernel calls over buffers it
 * keeps, and from then on replays the plan: no Lua code, no graph building,
 * no allocation, the results equal to eager execution bit for bit. nn.optim's
 * steps run again whole (a scheduler's lr, Adam's step count stay exact).
 * New shapes, dtypes or devices of the arguments record a new plan (the
 * last 4 are kept). fn's results are the plan's tensors: the same objects,
 * overwritten by the next call (copy one with clone() to keep it).
 * What fn does on the Lua side is not recorded, only the ops it makes: a
 * Lua branch, a number read from a Lua variable are fixed as they were at
 * capture. A step that reads a value on the host (item(), print, totable)
 * or otherwise cannot replay runs eagerly from then on, step:why() says
 * why. README: "Captured steps: what may and may not be captured".
 *   local step = nn.capture(function(x, y)
 *     optimizer:zero_grad()
 *     local loss = criterion(model(x), y)
 *     loss:backward()
 *     optimizer:step()
 *     return loss
 *   end)
 *   for epoch = 1, 1000 do local loss = step(X, Y) end
 */
static int l_capture(lua_State *L) {
  nnl_check_nargs(L, 0, 1, "capture", "fn");
  if (lua_type(L, 1) != LUA_TFUNCTION)
    return nnl_error(L, "capture: expects a function (the step), got %s", luaL_typename(L, 1));
  captured_step *s = lua_newuserdatauv(L, sizeof *s, UV_COUNT);
  memset(s, 0, sizeof *s);
  s->tag = STEP_TAG;
  luaL_setmetatable(L, NNL_CAPTURED_STEP);
  lua_pushvalue(L, 1);
  lua_setiuservalue(L, -2, UV_FUNCTION);
  lua_createtable(L, MAX_PLANS, 0);
  lua_setiuservalue(L, -2, UV_PLAN_TABLES);
  return 1;
}

static const luaL_Reg step_methods[] = {{"why", step_why}, {"stats", step_stats}, {NULL, NULL}};

void nnl_register_capture(lua_State *L) {
  if (luaL_newmetatable(L, NNL_CAPTURED_STEP)) {
    lua_pushcfunction(L, step_call);
    lua_setfield(L, -2, "__call");
    lua_pushcfunction(L, step_gc);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, step_tostring);
    lua_setfield(L, -2, "__tostring");
    luaL_newlib(L, step_methods);
    lua_setfield(L, -2, "__index");
    lua_pushliteral(L, "CapturedStep");
    lua_setfield(L, -2, "__name");
  }
  lua_pop(L, 1);
  lua_pushcfunction(L, l_capture);
  lua_setfield(L, -2, "capture");
}

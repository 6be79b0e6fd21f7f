/* fuzz_load.c: libFuzzer harness for nn.load as a script calls it: the
 * Lua half (the JSON header's parser and checks, lua/nn/serialize.lua)
 * and the C half behind it, in one Lua state made once; an input that is a
 * ZIP goes to the .pt reader and its conversion into Lua values
 * (lua/nn_torch.c), as nn.load sends it. The input is the
 * file. Lua code is not instrumented, so coverage guides the search only
 * through the binding and the engine; run.sh seeds it with valid files and
 * a dictionary of the header's words to make up for that.
 *
 * Any outcome but a value or a Lua error whose message names the
 * operation ("load: ...") is a finding: a crash, a sanitizer report, or
 * an error such as a stack overflow that nn.load let through. */
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "fuzz_file.h"

int luaopen_nn(lua_State *L);

static lua_State *L;

/* load(path) -> true, or false and the message */
static const char try_load[] =
    "local nn = require 'nn'\n"
    "return function(path)\n"
    "  local ok, err = pcall(nn.load, path)\n"
    "  if ok then return true end\n"
    "  return false, tostring(err)\n"
    "end\n";

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc, (void)argv;
  L = luaL_newstate();
  if (!L) abort();
  luaL_openlibs(L);
  luaL_requiref(L, "nn", luaopen_nn, 0);
  lua_pop(L, 1);
  if (luaL_loadstring(L, try_load) != LUA_OK || lua_pcall(L, 0, 1, 0) != LUA_OK) {
    fprintf(stderr, "fuzz_load: %s\n", lua_tostring(L, -1));
    abort();
  }
  lua_setglobal(L, "fuzz_try_load");
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const char *path = fuzz_write_file(data, size);
  lua_getglobal(L, "fuzz_try_load");
  lua_pushstring(L, path);
  if (lua_pcall(L, 1, 2, 0) != LUA_OK) {
    fprintf(stderr, "fuzz_load: the harness failed: %s\n", lua_tostring(L, -1));
    abort();
  }
  if (!lua_toboolean(L, -2)) {
    const char *msg = lua_tostring(L, -1);
    if (!msg || !strstr(msg, "load: ")) {
      fprintf(stderr, "fuzz_load: an error that does not name the operation: %s\n",
              msg ? msg : "(none)");
      abort();
    }
  }
  lua_pop(L, 2);
  /* a full collection now and then keeps memory flat: the collector
     alone does not see what the engine's tensors hold */
  static unsigned runs;
  if (++runs % 64 == 0) lua_gc(L, LUA_GCCOLLECT);
  return 0;
}

/* lua_compile.c: compiles one Lua source file to the bytecode the build
 * embeds (cmake/embed_lua.cmake), with the very Lua library nnlua links.
 *
 *   lua_compile CHUNKNAME INPUT OUTPUT
 *
 * CHUNKNAME is the name the chunk is loaded under at run time ("@[nn]/nn.optim.lua"):
 * it is stored in the bytecode, with the line of every instruction and the
 * names of the locals, so that error messages and tracebacks read exactly
 * as they would from the source. A syntax error fails the build. */
#include <stdio.h>
#include <stdlib.h>

#include "lauxlib.h"
#include "lua.h"

static int write_chunk(lua_State *L, const void *p, size_t size, void *out) {
  (void)L;
  return fwrite(p, 1, size, out) == size ? 0 : 1;
}

static char *read_file(const char *path, size_t *length) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  size_t capacity = 1 << 16, used = 0;
  char *buffer = malloc(capacity);
  while (buffer) {
    used += fread(buffer + used, 1, capacity - used, f);
    if (used < capacity) break;
    char *bigger = realloc(buffer, capacity * 2);
    if (!bigger) free(buffer);
    buffer = bigger;
    capacity *= 2;
  }
  int failed = ferror(f);
  fclose(f);
  if (failed) {
    free(buffer);
    return NULL;
  }
  *length = used;
  return buffer;
}

int main(int argc, char **argv) {
  if (argc != 4) {
    fprintf(stderr, "usage: %s CHUNKNAME INPUT OUTPUT\n", argv[0]);
    return 2;
  }
  const char *chunkname = argv[1], *input = argv[2], *output = argv[3];
  size_t length = 0;
  char *source = read_file(input, &length);
  if (!source) {
    fprintf(stderr, "lua_compile: cannot read %s\n", input);
    return 1;
  }
  lua_State *L = luaL_newstate();
  if (!L) {
    fprintf(stderr, "lua_compile: cannot create a Lua state\n");
    free(source);
    return 1;
  }
  int status = 1;
  if (luaL_loadbufferx(L, source, length, chunkname, "t") != LUA_OK) {
    fprintf(stderr, "lua_compile: %s: %s\n", input, lua_tostring(L, -1));
  } else {
    FILE *out = fopen(output, "wb");
    if (!out) {
      fprintf(stderr, "lua_compile: cannot write %s\n", output);
    } else {
      int dumped = lua_dump(L, write_chunk, out, 0) == 0; /* 0: keep the debug information */
      if (fclose(out) == 0 && dumped) status = 0;
      else fprintf(stderr, "lua_compile: cannot write %s\n", output);
      if (status) remove(output); /* never a half-written file for the next step */
    }
  }
  lua_close(L);
  free(source);
  return status;
}

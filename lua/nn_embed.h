/* nn_embed.h: the Lua modules of lua/nn, compiled into the binding.
 *
 * The table is generated at build time by cmake/embed_lua.cmake from every
 * .lua file under lua/nn, so nn.so and nnlua carry their Lua side with them and
 * need no search path. Each module is Lua bytecode made by the build's own
 * Lua library (nn_lua_bytecode_release names it), or its source where the
 * build could not vouch for the Lua that will load it. */
#ifndef NN_EMBED_H
#define NN_EMBED_H

#include <stddef.h>

struct nn_lua_source {
  const char *name; /* module name: lua/nn/optim/sgd.lua -> "nn.optim.sgd" */
  const char *code; /* the module's bytecode or source, NUL-terminated */
  size_t length;    /* bytes in code, the NUL not counted */
};

/* Sorted by name, followed by one {NULL, NULL, 0} entry. */
extern const struct nn_lua_source nn_lua_sources[];
/* Number of modules (the final NULL entry not counted). */
extern const int nn_lua_source_count;
/* The Lua release ("Lua 5.4.4") whose bytecode the modules are; "" when
   they are sources. */
extern const char nn_lua_bytecode_release[];

#endif

/* nn_embed.h: the Lua modules of lua/nn, compiled into the binding.
 *
 * The table is generated at build time by cmake/embed_lua.cmake from every
 * .lua file under lua/nn, so nn.so and nnlua carry their Lua side with them and
 * need no search path. */
#ifndef NN_EMBED_H
#define NN_EMBED_H

#include <stddef.h>

struct nn_lua_source {
  const char *name; /* module name: lua/nn/optim/sgd.lua -> "nn.optim.sgd" */
  const char *code; /* the file's bytes, NUL-terminated */
  size_t length;    /* bytes in code, the NUL not counted */
};

/* Sorted by name, followed by one {NULL, NULL, 0} entry. */
extern const struct nn_lua_source nn_lua_sources[];
/* Number of modules (the final NULL entry not counted). */
extern const int nn_lua_source_count;

#endif

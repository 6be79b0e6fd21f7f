/* nn_binding.h: what the binding's files share. The binding turns engine
 * errors into Lua errors and Lua's 1-based indices into the engine's
 * 0-based ones; it does no math of its own. */
#ifndef NN_BINDING_H
#define NN_BINDING_H

#include <lauxlib.h>
#include <lua.h>

#include "nn.h"

#define NNL_TENSOR "nn.Tensor"

/* A tensor argument, or a Lua error naming op. */
nn_tensor *nnl_check_tensor(lua_State *L, int idx, const char *op);
/* A tensor, or NULL when the value is not one. */
nn_tensor *nnl_to_tensor(lua_State *L, int idx);
/* The tensor in box, a userdata nnl_to_tensor has accepted before (NULL
   once the tensor is closed): no C API call. */
nn_tensor *nnl_box_tensor(const void *box);
/* Pushes t (taking its reference); a NULL t raises the engine's error. */
void nnl_push_tensor(lua_State *L, nn_tensor *t);
/* Raises the engine's last error as a Lua error at the user's position. */
int nnl_engine_error(lua_State *L);
/* 0-based engine indices as a new 1-based tensor, idx released (NULL
   stays NULL; a failure gives NULL with the engine's error). */
nn_tensor *nnl_one_based(nn_tensor *idx);
/* Like luaL_error, but the position is that of the first caller outside
   nn's own Lua modules, so an error from inside nn.Linear points at the
   user's line, not nn's. */
int nnl_error(lua_State *L, const char *fmt, ...);
/* Raises "op: takes 1 argument (other), got 4" when more than max
   arguments follow the first `self` ones (1 for a tensor's method, 0 for
   a function), so that an argument a function does not take is an error,
   not silently dropped. Trailing nils do not count. signature names the
   arguments as the docs write them, [] around optional ones. */
void nnl_check_nargs(lua_State *L, int self, int max, const char *op, const char *signature);
/* The same checks for a class's method written in C (Sequential:forward,
   Optimizer:step), with the messages the Lua modules' own methods give
   (nn/init.lua): self must be given (m.step() for m:step()), and at most
   max arguments follow it. The message names self's class when it has a
   name, else class_name; a forward is named by its class alone. */
void nnl_check_method_args(lua_State *L, const char *class_name, const char *method, int max,
                           const char *names);
/* Pops the nils at the end of the arguments, so that a function with a
   variable number of them reads f(2, 3, nil) as f(2, 3); returns the new top. */
int nnl_drop_trailing_nils(lua_State *L);
/* Pushes f as a C closure whose upvalues 1..n are the strings keys[0..n-1]:
   a function on a training step's path reads its table keys from there
   (lua_pushvalue(L, lua_upvalueindex(k))), since lua_getfield and
   lua_pushstring with a literal look the string up in Lua's string table
   at every call. */
void nnl_push_closure_with_keys(lua_State *L, lua_CFunction f, const char *const *keys, int n);
/* Pushes "file:line: " for that frame (or "" when there is none). */
void nnl_where(lua_State *L);
/* A Lua dim (1-based, or negative from the end) as the engine's 0-based. */
int nnl_check_dim(lua_State *L, int idx, const char *op);
/* Tensor options {dtype=, device=, requires_grad=} at idx (may be absent). */
typedef struct { nn_dtype dtype; nn_device device; int requires_grad; } nnl_options;
void nnl_read_options(lua_State *L, int idx, const char *op, nnl_options *o);
/* Sizes as varargs (2, 3) or one table ({2, 3}) from idx; a trailing
   options table is left alone. Returns the number of dims. */
int nnl_check_sizes(lua_State *L, int idx, const char *op, int64_t *size, int *options_idx);
/* Applies options (device, requires_grad) to a fresh tensor. */
nn_tensor *nnl_apply_options(lua_State *L, nn_tensor *t, const nnl_options *o, const char *op);
/* The seed argument (1) of a seeding function named op: an integer. */
uint64_t nnl_check_seed(lua_State *L, const char *op);
/* Tells Lua's collector about storage the engine allocated outside it. */
void nnl_account_memory(lua_State *L);

void nnl_open_tensor(lua_State *L);       /* the Tensor metatable and methods */
void nnl_register_functions(lua_State *L); /* nn.* functions into the table on top */
/* Each adds its C functions to the core table on top of the stack. */
void nnl_register_activations(lua_State *L); /* nn_activations.c */
void nnl_register_losses(lua_State *L);      /* nn_losses.c */
void nnl_register_optim(lua_State *L);       /* nn_optim.c */
void nnl_register_system(lua_State *L);      /* nn_system.c: processes, files, terminals */
void nnl_register_data(lua_State *L);        /* nn_data.c: data files, safetensors */
void nnl_register_cuda(lua_State *L);        /* nn_cuda.c: nn.cuda */
void nnl_register_torch(lua_State *L);       /* nn_torch.c: PyTorch's .pt files */
void nnl_register_mpi(lua_State *L);         /* nn_mpi.c: nn.sweep's MPI messages */
void nnl_register_hooks(lua_State *L);       /* nn_hooks.c: Lua gradient hooks */
void nnl_register_autograd(lua_State *L);    /* nn_autograd.c: grad, anomaly mode, Function */
/* The thread running t:backward(), which Lua hooks run on (nn_hooks.c). */
extern lua_State *nnl_backward_state;
/* A Lua hook's error ended the last backward: its message, which already
   says where, is backward's error as it is (nn_hooks.c). */
extern int nnl_hook_raised;
void nnl_register_distributed(lua_State *L); /* nn_distributed.c: collectives, hooks */
/* The interpreter reports an error that ends the script (nnlua.c): a
   distributed run tells the other ranks, naming it, as this rank exits. */
void nnl_note_fatal_error(const char *message);
/* nn_math.c: issue 12's math, reductions, creation and linear algebra:
   their tensor methods, and the nn.* functions of the same names */
void nnl_register_math(lua_State *L);
/* Dims at idx as the engine's bit mask for t: nil for every dim, one dim,
   or a table of them (1-based, negative from the end, none twice). */
unsigned nnl_check_dims(lua_State *L, int idx, const nn_tensor *t, const char *op);
/* nn_index.c: joining, splitting, indexing; t[table or tensor] and its assignment */
void nnl_register_index(lua_State *L);
void nnl_register_rnn(lua_State *L);         /* nn_rnn.c: the recurrent layers */
int nnl_index_get(lua_State *L); /* (t, key) */
int nnl_index_set(lua_State *L); /* (t, key, value) */
void nnl_register_pool(lua_State *L); /* nn_pool.c: pooling, upsampling, batch_norm */

/* nn_conv.c: the convolution fronts, for lua/nn/conv_layers.lua */
void nnl_register_conv(lua_State *L);
/* nn_embedding.c: the core of nn.F.embedding */
void nnl_register_embedding(lua_State *L);
/* nn_capture.c: nn.capture, the captured training step */
void nnl_register_capture(lua_State *L);
/* Called first by a C function that a captured step's replay must call
   again whole (an optimizer's step): while a step is captured, records the
   running function with its first nargs arguments as a host call of the
   plan and returns 1; the caller then calls nn_capture_host_call_done()
   when it is done (its own kernels are not recorded). Else returns 0. */
int nnl_capture_call(lua_State *L, int nargs);
/* nnl_capture_call with a replay of its own: a replay pushes the recorded
   function (its upvalues are at hand) at stack index fn, its arguments
   above it, and calls native(L, fn, data), which
   returns 1 when it did the call's work, 0 when the call must run as
   recorded (it then does, as nnl_capture_call's would), -1 on an engine
   error; it must not raise. data is the native replay's, freed with
   free_data when the plan goes (or at once when nothing is recorded). */
typedef int (*nnl_native_replay)(lua_State *L, int fn, void *data);
int nnl_capture_call_native(lua_State *L, int nargs, nnl_native_replay native, void *data,
                            void (*free_data)(void *));

#endif

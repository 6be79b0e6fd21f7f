/* nn_cuda.c: the binding's C functions for nn.cuda (lua/nn/init.lua makes
 * the namespace of them). Asking anything of CUDA loads its backend
 * (engine/src/device.c) the first time; where it cannot load, only
 * is_available, why_unavailable, device_count and the seeds answer, and
 * the rest raise an error that says why. */
#include "nn_binding.h"

/* The backend, or a Lua error "op: cuda is not available: why". */
static void require_cuda(lua_State *L, const char *op) {
  if (!nn_device_available(NN_CUDA))
    nnl_error(L, "%s: cuda is not available: %s", op, nn_device_unavailable_reason(NN_CUDA));
}

static int l_is_available(lua_State *L) {
  nnl_check_nargs(L, 0, 0, "cuda.is_available", "");
  lua_pushboolean(L, nn_device_available(NN_CUDA));
  return 1;
}

static int l_why_unavailable(lua_State *L) {
  nnl_check_nargs(L, 0, 0, "cuda.why_unavailable", "");
  if (nn_device_available(NN_CUDA)) lua_pushnil(L);
  else lua_pushstring(L, nn_device_unavailable_reason(NN_CUDA));
  return 1;
}

static int l_device_count(lua_State *L) {
  nnl_check_nargs(L, 0, 0, "cuda.device_count", "");
  lua_pushinteger(L, nn_device_count(NN_CUDA));
  return 1;
}

/* The only device is cuda:0, as 'cuda:0' in a printed tensor says. */
static void check_device_argument(lua_State *L, int idx, const char *op) {
  if (lua_isnoneornil(L, idx)) return;
  int ok;
  lua_Integer d = lua_tointegerx(L, idx, &ok);
  if (ok && d == 0) return;
  if (lua_type(L, idx) == LUA_TSTRING && nn_device_from_name(lua_tostring(L, idx)) == NN_CUDA) return;
  nnl_error(L, "%s: device %s does not exist (nnlua uses one GPU, device 0, 'cuda:0')", op,
            luaL_tolstring(L, idx, NULL));
}

static int l_current_device(lua_State *L) {
  nnl_check_nargs(L, 0, 0, "cuda.current_device", "");
  require_cuda(L, "cuda.current_device");
  lua_pushinteger(L, 0);
  return 1;
}

static int l_get_device_name(lua_State *L) {
  nnl_check_nargs(L, 0, 1, "cuda.get_device_name", "[device]");
  check_device_argument(L, 1, "cuda.get_device_name");
  require_cuda(L, "cuda.get_device_name");
  lua_pushstring(L, nn_device_description(NN_CUDA));
  return 1;
}

static int l_synchronize(lua_State *L) {
  nnl_check_nargs(L, 0, 1, "cuda.synchronize", "[device]");
  check_device_argument(L, 1, "cuda.synchronize");
  require_cuda(L, "cuda.synchronize");
  if (nn_device_synchronize(NN_CUDA) < 0) return nnl_engine_error(L);
  return 0;
}

static int l_manual_seed(lua_State *L) {
  nn_cuda_manual_seed(nnl_check_seed(L, "cuda.manual_seed"));
  return 0;
}

static int l_initial_seed(lua_State *L) {
  nnl_check_nargs(L, 0, 0, "cuda.initial_seed", "");
  lua_pushinteger(L, (lua_Integer)nn_cuda_initial_seed());
  return 1;
}

/* The memory counters read 0 until CUDA is used; they load nothing. */
static int l_memory_allocated(lua_State *L) {
  nnl_check_nargs(L, 0, 1, "cuda.memory_allocated", "[device]");
  check_device_argument(L, 1, "cuda.memory_allocated");
  lua_pushinteger(L, (lua_Integer)nn_device_memory_allocated(NN_CUDA));
  return 1;
}

static int l_memory_reserved(lua_State *L) {
  nnl_check_nargs(L, 0, 1, "cuda.memory_reserved", "[device]");
  check_device_argument(L, 1, "cuda.memory_reserved");
  lua_pushinteger(L, (lua_Integer)nn_device_memory_reserved(NN_CUDA));
  return 1;
}

static int l_empty_cache(lua_State *L) {
  nnl_check_nargs(L, 0, 0, "cuda.empty_cache", "");
  nn_device_empty_cache(NN_CUDA);
  return 0;
}

/*** nn.cuda.is_available(), nn.cuda.why_unavailable()
 * Whether tensors can live on the GPU ("cuda"), and if not, why: a sentence
 * naming what is missing (a build without CUDA, libnn_cuda.so or cuBLAS not
 * found, no NVIDIA driver, no GPU), or nil when CUDA is available. PyTorch
 * has no such call; is_available() alone cannot tell a user which of those
 * to fix. The first call loads the CUDA backend.
 *   local device = nn.cuda.is_available() and "cuda" or "cpu"
 *   if device == "cpu" then print("CPU only: " .. nn.cuda.why_unavailable()) end
 */
/*** nn.cuda.device_count(), nn.cuda.current_device(), nn.cuda.get_device_name([device])
 * How many GPUs CUDA sees (0 when it is not available); the device nnlua
 * runs on (always 0: one GPU, 'cuda:0'); that GPU's name.
 *   print(nn.cuda.get_device_name())   --> NVIDIA H100 80GB HBM3
 */
/*** nn.cuda.synchronize([device])
 * Waits until the GPU has finished what was asked of it. Operations on
 * "cuda" tensors are queued and run asynchronously; item(), totable(),
 * print and copies to the CPU wait by themselves. A kernel that failed
 * (an illegal memory access, say) is reported here as an error.
 *   nn.cuda.synchronize(); print(nn.clock() - t0)
 */
/*** nn.cuda.manual_seed(seed), nn.cuda.manual_seed_all(seed), nn.cuda.initial_seed()
 * Seeds the GPU's random numbers (Philox4x32-10, counter-based: the same
 * numbers run after run, however the kernels are launched); nn.manual_seed
 * seeds them too. manual_seed_all is the same call (one GPU).
 *   nn.cuda.manual_seed(777)
 */
/*** nn.cuda.memory_allocated([device]), nn.cuda.memory_reserved([device]), nn.cuda.empty_cache()
 * Bytes of GPU memory held by tensors; those plus the blocks kept for reuse
 * (freed tensors' memory stays with nnlua, so that a training loop does not
 * ask the driver for memory at every step); empty_cache() gives the kept
 * blocks back to the driver. When the GPU runs out of memory, the cache is
 * emptied and the allocation tried once more before an error is raised.
 *   print(nn.cuda.memory_allocated() / 2^20, "MiB")
 */
static const luaL_Reg functions[] = {
    {"cuda_is_available", l_is_available},
    {"cuda_why_unavailable", l_why_unavailable},
    {"cuda_device_count", l_device_count},
    {"cuda_current_device", l_current_device},
    {"cuda_get_device_name", l_get_device_name},
    {"cuda_synchronize", l_synchronize},
    {"cuda_manual_seed", l_manual_seed},
    {"cuda_initial_seed", l_initial_seed},
    {"cuda_memory_allocated", l_memory_allocated},
    {"cuda_memory_reserved", l_memory_reserved},
    {"cuda_empty_cache", l_empty_cache},
    {NULL, NULL}};

void nnl_register_cuda(lua_State *L) { luaL_setfuncs(L, functions, 0); }

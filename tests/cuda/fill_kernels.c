/* fill_kernels.c: nn_cuda_fill_kernels (engine/src/cuda/kernels.h) fills
 * every kernel entry of a backend table, leaves the ones cuda/backend.cu
 * owns (memory, devices) and the CPU's thread pool alone, and calls
 * nothing of the CUDA runtime while it fills: this runs on a machine
 * without a GPU. A new entry of backend.h that the CUDA kernels lack
 * fails here until it is written or named below. The random entries that
 * are host-side state (seed, state bytes) are checked for behaviour too. */
#include "check.h"
#include "cuda/kernels.h"
#include "internal.h"

#include <stddef.h>

typedef void (*any_entry)(void);

/* Entries the kernels do not fill, and why (kernels.h says the same). */
static const char *const not_kernels[] = {
    "alloc", "free", "to_host", "from_host", "synchronize", "device_count",
    "memory_allocated", "memory_reserved", "empty_cache", "within", "device_name",
    /* cuda/backend.cu */
    "set_num_threads", "get_num_threads",                 /* the CPU's BLAS pool */
    "topk", "logsumexp", /* the CPU's shortcuts; the fronts' general paths serve CUDA */
    "graph_begin", "graph_end", "graph_launch", "graph_free", /* cuda/backend.cu: the stream */
    "kthvalue",          /* the CPU's selection; kthvalue and median sort on CUDA */
    "dot", "band",       /* the CPU's shortcuts for dot, mv, tril, triu; matmul and a select on CUDA */
    "index_checked",     /* the CPU's one-pass indexing; CUDA makes offsets first */
    "equal",             /* the CPU's one-pass compare; CUDA compares through binary and sum */
    "lerp",              /* the CPU's one-pass lerp; CUDA composes sub, mul and add */
    "ctc_loss", "ctc_loss_backward", /* the CPU's CTC; on CUDA nn.F.ctc_loss composes tensor ops */
    "gemm_prepare", "iter_prepare", /* the CPU's kernels prepared for a plan; a CUDA plan makes graphs */
};

static int is_not_kernel(const char *name) {
  for (size_t i = 0; i < sizeof not_kernels / sizeof not_kernels[0]; i++)
    if (strcmp(not_kernels[i], name) == 0) return 1;
  return 0;
}

static any_entry entry_of(const nn_backend *b, size_t offset) {
  any_entry f;
  memcpy(&f, (const char *)b + offset, sizeof f);
  return f;
}

static void test_fills_every_kernel_entry(void) {
  nn_backend table;
  memset(&table, 0, sizeof table);
  table.name = "cuda";
  nn_cuda_fill_kernels(&table);
  CHECK(strcmp(table.name, "cuda") == 0);
  size_t filled = 0;
  for (size_t e = 0; e < nn_backend_entry_count; e++) {
    const char *name = nn_backend_entries[e].name;
    any_entry f = entry_of(&table, nn_backend_entries[e].offset);
    if (is_not_kernel(name)) {
      CHECKF(f == NULL, "nn_cuda_fill_kernels sets %s, which cuda/backend.cu owns", name);
    } else {
      CHECKF(f != NULL, "nn_cuda_fill_kernels leaves %s empty", name);
      filled += f != NULL;
    }
  }
  size_t expected = nn_backend_entry_count - sizeof not_kernels / sizeof not_kernels[0];
  CHECKF(filled == expected, "%zu kernel entries filled, %zu expected", filled, expected);
}

/* The generator's host state: seeding, and a state that round-trips and
   refuses bytes that are not one. */
static void test_generator_state(void) {
  nn_backend table;
  memset(&table, 0, sizeof table);
  nn_cuda_fill_kernels(&table);
  table.manual_seed(777);
  CHECK(table.initial_seed() == 777);
  size_t size = table.rng_state_size();
  unsigned char state[64], other[64];
  CHECK(size <= sizeof state);
  table.rng_get_state(state);
  table.manual_seed(1);
  CHECK(table.initial_seed() == 1);
  CHECK_STATUS_OK(table.rng_set_state(state, size));
  CHECK(table.initial_seed() == 777);
  table.rng_get_state(other);
  CHECK(memcmp(state, other, size) == 0);
  CHECK_STATUS_FAILS(table.rng_set_state(state, size - 1), "cuda generator state is");
  state[0] ^= 1;
  CHECK_STATUS_FAILS(table.rng_set_state(state, size), "not a cuda generator state");
  CHECK(table.initial_seed() == 777);
}

int main(void) {
  test_fills_every_kernel_entry();
  test_generator_state();
  return check_finish();
}

/* backend.c: which table serves which device, and the dispatch every
 * front goes through (internal.h's nn_dispatch). */
#include "internal.h"

#include <stddef.h>

static const nn_backend *tables[NN_DEVICE_COUNT] = {&nn_cpu_backend, NULL};
static const char *unavailable[NN_DEVICE_COUNT];
/* whether the device's table was installed or refused (nn_backend_set):
   CUDA's loader then does not run again, nor after a test's own table */
static int settled[NN_DEVICE_COUNT] = {1, 0};

const nn_backend *nn_backend_of_device(nn_device device) {
  if ((unsigned)device >= NN_DEVICE_COUNT) return NULL;
  if (device == NN_CUDA && !settled[device]) nn_cuda_load();
  return tables[device];
}

const nn_backend *nn_backend_loaded(nn_device device) {
  return (unsigned)device < NN_DEVICE_COUNT ? tables[device] : NULL;
}

const char *nn_backend_unavailable(nn_device device) {
  if ((unsigned)device < NN_DEVICE_COUNT && unavailable[device]) return unavailable[device];
  return device == NN_CUDA ? "this build has no cuda backend" : "no such device";
}

void nn_backend_set(nn_device device, const nn_backend *table, const char *why_not) {
  if ((unsigned)device >= NN_DEVICE_COUNT || device == NN_CPU) return;
  tables[device] = table;
  unavailable[device] = table ? NULL : why_not;
  settled[device] = 1;
}

int nn_check_same_device(const char *op, const nn_tensor *a, const nn_tensor *b) {
  /* the operands beyond dispatch's three (running statistics, indices):
     a plan keeps them too */
  if (nn_capture_active && b && a->device == b->device)
    nn_capture_dispatch(nn_backend_for(a->device), a->device, NN_ANY_KERNEL, a, b, NULL);
  if (!b || a->device == b->device) return 0;
  nn_error_set("%s: tensors are on different devices (%s and %s)", op, nn_device_name(a->device),
               nn_device_name(b->device));
  return -1;
}

/* A table's entry as a plain function pointer; every entry after `name` is
   one, and all function pointers share a representation here. */
typedef void (*any_entry)(void);

static int has_entry(const nn_backend *be, size_t offset) {
  any_entry f;
  memcpy(&f, (const char *)be + offset, sizeof f);
  return f != NULL;
}

const nn_backend *nn_dispatch_any(const char *op, size_t kernel, const nn_tensor *a,
                                  const nn_tensor *b, const nn_tensor *c) {
  if (nn_check_same_device(op, a, b) < 0 || nn_check_same_device(op, a, c) < 0) return NULL;
  const nn_backend *be = nn_backend_for(a->device);
  if (!be) {
    nn_error_set("%s: %s", op, nn_backend_unavailable(a->device));
    return NULL;
  }
  if (!has_entry(be, kernel)) {
    nn_error_set("%s: not implemented for %s", op, nn_device_name(a->device));
    return NULL;
  }
  return nn_capture_active ? nn_capture_dispatch(be, a->device, kernel, a, b, c) : be;
}

#define ENTRY(e) {#e, offsetof(nn_backend, e)}
const nn_backend_entry nn_backend_entries[] = {
    ENTRY(alloc), ENTRY(free), ENTRY(to_host), ENTRY(from_host), ENTRY(within), ENTRY(synchronize),
    ENTRY(device_count), ENTRY(device_name), ENTRY(memory_allocated), ENTRY(memory_reserved), ENTRY(empty_cache),
    ENTRY(collective_available), ENTRY(collective_id), ENTRY(collective_join), ENTRY(collective_start),
    ENTRY(collective_test), ENTRY(collective_abort),
    ENTRY(set_num_threads), ENTRY(get_num_threads),
    ENTRY(copy), ENTRY(fill), ENTRY(ramp), ENTRY(add_into), ENTRY(add_rows), ENTRY(gather_rows),
    ENTRY(binary), ENTRY(binary_number), ENTRY(unary), ENTRY(unary_backward), ENTRY(clamp), ENTRY(nan_to_num),
    ENTRY(pointwise_grad),
    ENTRY(activation), ENTRY(activation_backward), ENTRY(softmax), ENTRY(softmax_backward),
    ENTRY(prelu), ENTRY(prelu_backward),
    ENTRY(reduce), ENTRY(extreme), ENTRY(logsumexp), ENTRY(extreme_backward), ENTRY(extreme_all_backward), ENTRY(prod_backward), ENTRY(scan),
    ENTRY(cumprod_backward), ENTRY(sort), ENTRY(topk), ENTRY(scatter_line),
    ENTRY(norm_backward),
    ENTRY(gemm),
    ENTRY(loss), ENTRY(loss_backward), ENTRY(class_loss), ENTRY(class_loss_backward),
    ENTRY(sgd_step), ENTRY(adam_step), ENTRY(rmsprop_step), ENTRY(adagrad_step),
    ENTRY(adadelta_step), ENTRY(adamax_step), ENTRY(nadam_step), ENTRY(radam_step), ENTRY(asgd_step),
    ENTRY(rprop_step),
    ENTRY(index_offsets), ENTRY(index_gather), ENTRY(index_put), ENTRY(where), ENTRY(nonzero),
    ENTRY(uniform), ENTRY(normal), ENTRY(random_int), ENTRY(randperm), ENTRY(manual_seed), ENTRY(initial_seed),
    ENTRY(rng_state_size), ENTRY(rng_get_state), ENTRY(rng_set_state),
    ENTRY(im2col), ENTRY(col2im),
    ENTRY(pool2d), ENTRY(pool2d_backward), ENTRY(upsample2d), ENTRY(upsample2d_backward),
    ENTRY(batch_norm), ENTRY(batch_norm_backward),
    ENTRY(rnn_step), ENTRY(rnn_step_backward),
    ENTRY(embedding), ENTRY(embedding_backward), ENTRY(embedding_renorm),
    ENTRY(graph_begin), ENTRY(graph_end), ENTRY(graph_launch), ENTRY(graph_free),
    ENTRY(kthvalue),
    ENTRY(dot), ENTRY(band),
    ENTRY(index_checked),
    ENTRY(equal),
    ENTRY(lerp),
    ENTRY(ctc_loss), ENTRY(ctc_loss_backward),
    ENTRY(gemm_prepare), ENTRY(iter_prepare),
};
#undef ENTRY
const size_t nn_backend_entry_count = sizeof nn_backend_entries / sizeof nn_backend_entries[0];

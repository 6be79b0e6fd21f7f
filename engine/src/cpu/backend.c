/* cpu/backend.c: the CPU backend's table. Every entry is filled
 * (tests/c/test_backend.c checks it). */
#include "cpu/cpu.h"

const nn_backend nn_cpu_backend = {
    .name = "cpu",
    .alloc = nn_cpu_alloc,
    .free = nn_cpu_free,
    .to_host = nn_cpu_to_host,
    .from_host = nn_cpu_from_host,
    .synchronize = nn_cpu_synchronize,
    .device_count = nn_cpu_device_count,
    .memory_allocated = nn_cpu_memory_allocated,
    .memory_reserved = nn_cpu_memory_reserved,
    .empty_cache = nn_cpu_empty_cache,
    .copy = nn_cpu_copy,
    .fill = nn_cpu_fill,
    .ramp = nn_cpu_ramp,
    .add_into = nn_cpu_add_into,
    .gather_rows = nn_cpu_gather_rows,
    .binary = nn_cpu_binary,
    .binary_number = nn_cpu_binary_number,
    .unary = nn_cpu_unary,
    .unary_backward = nn_cpu_unary_backward,
    .clamp = nn_cpu_clamp,
    .pointwise_grad = nn_cpu_pointwise_grad,
    .activation = nn_cpu_activation,
    .activation_backward = nn_cpu_activation_backward,
    .softmax = nn_cpu_softmax,
    .softmax_backward = nn_cpu_softmax_backward,
    .prelu = nn_cpu_prelu,
    .prelu_backward = nn_cpu_prelu_backward,
};

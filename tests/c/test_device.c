/* test_device.c: tensors on a device other than the CPU, through the test
 * device (tests/c/fake_cuda.c, loaded as libnn_cuda.so is): copies both
 * ways (strided, broadcast, converted), item and printing, gradients that
 * cross devices, memory accounting, and ops that must refuse. */
#include "internal.h"
#include "check.h"

static nn_tensor *on_cuda(nn_tensor *t) {
  nn_tensor *c = nn_to_device(t, NN_CUDA);
  nn_release(t);
  return c;
}

static nn_tensor *on_cpu(nn_tensor *t) { return nn_to_device(t, NN_CPU); }

static void test_loaded(void) {
  CHECKF(nn_device_available(NN_CUDA), "the test device did not open: %s",
         nn_device_unavailable_reason(NN_CUDA));
  CHECK(nn_device_count(NN_CUDA) == 1);
  CHECK(strstr(nn_device_description(NN_CUDA), "not a GPU") != NULL);
  CHECK(strcmp(nn_device_unavailable_reason(NN_CUDA), "") == 0);
}

static void test_round_trips(void) {
  nn_tensor *f = OK(on_cuda(TENSOR(NN_FLOAT32, 2, SZ(2, 3), 1, 2, 3, 4, 5, 6.5)));
  CHECK(f && f->device == NN_CUDA && f->storage->device == NN_CUDA);
  nn_tensor *back = OK(on_cpu(f));
  CHECK_VALUES(back, 0, 1, 2, 3, 4, 5, 6.5);
  CHECK_SHAPE(back, 2, 2, 3);
  nn_release(back);
  /* int64 beyond 2^53 and bools arrive bit for bit */
  nn_tensor *big = nn_empty(NN_INT64, 1, SZ(2));
  ((int64_t *)nn_data(big))[0] = INT64_C(1152921504606846977); /* 2^60 + 1 */
  ((int64_t *)nn_data(big))[1] = INT64_MIN;
  nn_tensor *big_back = OK(on_cpu(big = on_cuda(big)));
  CHECK(big_back && ((int64_t *)nn_data(big_back))[0] == INT64_C(1152921504606846977) &&
        ((int64_t *)nn_data(big_back))[1] == INT64_MIN);
  nn_release(big), nn_release(big_back);
  nn_tensor *b = OK(on_cuda(TENSOR(NN_BOOL, 1, SZ(3), 1, 0, 1)));
  nn_tensor *b_back = OK(on_cpu(b));
  CHECK_VALUES(b_back, 0, 1, 0, 1);
  nn_release(b), nn_release(b_back);
  /* a strided source is made contiguous on its own device first */
  nn_tensor *m = TENSOR(NN_FLOAT64, 2, SZ(2, 3), 1, 2, 3, 4, 5, 6);
  nn_tensor *mt = nn_t(m);
  nn_tensor *mt_cuda = OK(nn_to_device(mt, NN_CUDA));
  nn_tensor *mt_back = OK(on_cpu(mt_cuda));
  CHECK_VALUES(mt_back, 0, 1, 4, 2, 5, 3, 6);
  nn_tensor *cuda_view = nn_t(mt_cuda); /* a strided tensor on the device, to the host */
  nn_tensor *view_back = OK(on_cpu(cuda_view));
  CHECK_VALUES(view_back, 0, 1, 2, 3, 4, 5, 6);
  nn_release(m), nn_release(mt), nn_release(mt_cuda), nn_release(mt_back);
  nn_release(cuda_view), nn_release(view_back);
  nn_release(f);
}

/* copy_ across devices lands in strided destinations, broadcasts and
   converts, as within one device. */
static void test_copy_into(void) {
  nn_tensor *dst = OK(on_cuda(nn_zeros(NN_FLOAT32, 2, SZ(2, 3))));
  nn_tensor *col = nn_narrow(dst, 1, 1, 2); /* 2x2, strided */
  nn_tensor *src = TENSOR(NN_INT64, 1, SZ(2), 7, 8); /* broadcast over rows, converted */
  CHECK_STATUS_OK(nn_copy_(col, src));
  nn_tensor *back = OK(on_cpu(dst));
  CHECK_VALUES(back, 0, 0, 7, 8, 0, 7, 8);
  /* and from the device into a strided host tensor */
  nn_tensor *host = nn_zeros(NN_FLOAT64, 2, SZ(3, 2));
  nn_tensor *host_t = nn_t(host);
  CHECK_STATUS_OK(nn_copy_(host_t, dst));
  CHECK_VALUES(host, 0, 0, 0, 7, 7, 8, 8);
  CHECK_STATUS_FAILS(nn_copy_(dst, host), "cannot be broadcast");
  nn_release(dst), nn_release(col), nn_release(src), nn_release(back);
  nn_release(host), nn_release(host_t);
}

static void test_item_and_format(void) {
  nn_tensor *s = OK(on_cuda(nn_full(NN_FLOAT64, 0, NULL, 2.5)));
  double v = 0;
  CHECK_STATUS_OK(nn_item(s, &v));
  CHECK(v == 2.5);
  char *text = nn_format(s);
  CHECKF(text && strcmp(text, "tensor(2.5000, device='cuda:0', dtype=torch.float64)") == 0, "%s",
         text ? text : nn_error());
  free(text);
  nn_release(s);
  nn_tensor *e = OK(on_cuda(nn_zeros(NN_INT64, 2, SZ(0, 3))));
  text = nn_format(e);
  CHECKF(text && strcmp(text, "tensor([], device='cuda:0', size=(0, 3), dtype=torch.int64)") == 0,
         "%s", text ? text : nn_error());
  free(text);
  nn_release(e);
}

/* The copy is in the graph: a gradient comes back to the source's device,
   and a leaf on the device collects one there. */
static void test_gradients_cross(void) {
  nn_tensor *x = TENSOR(NN_FLOAT32, 1, SZ(3), 1, 2, 3);
  nn_set_requires_grad(x, 1);
  nn_tensor *y = OK(nn_to_device(x, NN_CUDA));
  CHECK(y && y->grad_fn && strcmp(nn_grad_fn_name(y), "ToCopyBackward0") == 0);
  nn_tensor *z = OK(nn_to_device(y, NN_CPU));
  nn_tensor *loss = OK(nn_sum(z, NN_ALL_DIMS, 0));
  CHECK_STATUS_OK(nn_backward(loss, NULL, 0));
  CHECK(x->grad && x->grad->device == NN_CPU);
  CHECK_VALUES(x->grad, 0, 1, 1, 1);
  nn_release(y), nn_release(z), nn_release(loss);
  nn_tensor *leaf = OK(on_cuda(TENSOR(NN_FLOAT32, 1, SZ(2), 4, 5)));
  nn_set_requires_grad(leaf, 1);
  nn_tensor *h = OK(nn_to_device(leaf, NN_CPU));
  nn_tensor *l2 = OK(nn_sum(h, NN_ALL_DIMS, 0));
  CHECK_STATUS_OK(nn_backward(l2, NULL, 0));
  CHECK(leaf->grad && leaf->grad->device == NN_CUDA);
  nn_tensor *g = leaf->grad ? OK(on_cpu(leaf->grad)) : NULL;
  CHECK_VALUES(g, 0, 1, 1);
  nn_release(g), nn_release(h), nn_release(l2), nn_release(leaf), nn_release(x);
}

/* The test device runs the CPU's kernels on its memory: results stay on
   the device; an op given tensors on two devices names both. (With
   NN_FAKE_CUDA_KERNELS=none every op refuses by name: fake_cuda_spec.) */
static void test_ops_stay(void) {
  nn_tensor *a = OK(on_cuda(TENSOR(NN_FLOAT32, 1, SZ(2), 1, 2)));
  nn_tensor *b = nn_ones(NN_FLOAT32, 1, SZ(2));
  CHECK_FAILS(nn_binary(NN_ADD, a, b), "add: tensors are on different devices (cuda and cpu)");
  CHECK_FAILS(nn_matmul(b, a), "matmul: tensors are on different devices (cpu and cuda)");
  nn_tensor *sum = OK(nn_binary(NN_ADD, a, a));
  nn_tensor *total = OK(nn_sum(a, NN_ALL_DIMS, 0));
  CHECK(sum && sum->device == NN_CUDA && total && total->device == NN_CUDA);
  nn_tensor *back = sum ? OK(on_cpu(sum)) : NULL;
  CHECK_VALUES(back, 0, 2, 4);
  double v = 0;
  CHECK(total && nn_item(total, &v) == 0 && v == 3);
  nn_release(back), nn_release(sum), nn_release(total), nn_release(a), nn_release(b);
}

/* Storage on the device counts in the engine's totals (which pace Lua's
   collector) and in the device's own. */
static void test_memory_counts(void) {
  size_t in_use = nn_memory_in_use(), held = nn_device_memory_allocated(NN_CUDA);
  nn_memory_take_allocated();
  nn_tensor *t = OK(on_cuda(nn_zeros(NN_FLOAT32, 1, SZ(1000))));
  /* the engine counts the bytes asked for; the device's allocator its
     class's size */
  CHECK(nn_memory_in_use() == in_use + 4000);
  CHECK(nn_device_memory_allocated(NN_CUDA) == held + 4096);
  CHECK(nn_memory_take_allocated() >= 4096 + 4000); /* the host's zeros and the device's copy */
  size_t reserved = nn_device_memory_reserved(NN_CUDA);
  nn_release(t);
  CHECK(nn_memory_in_use() == in_use);
  CHECK(nn_device_memory_allocated(NN_CUDA) == held);
  CHECK(nn_device_memory_reserved(NN_CUDA) == reserved); /* kept for the next one */
  nn_device_empty_cache(NN_CUDA);
  CHECK(nn_device_memory_reserved(NN_CUDA) == nn_device_memory_allocated(NN_CUDA));
}

/* A module's parameter moves in place (nn_set_data), so that an optimizer
   holding it keeps it. */
static void test_set_data(void) {
  nn_tensor *p = TENSOR(NN_FLOAT32, 1, SZ(2), 1, 2);
  nn_set_requires_grad(p, 1);
  nn_tensor *moved = OK(nn_to_device(p, NN_CUDA));
  nn_tensor *detached = nn_detach(moved);
  CHECK_STATUS_OK(nn_set_data(p, detached));
  CHECK(p->device == NN_CUDA && p->requires_grad && !p->grad_fn);
  nn_tensor *back = OK(on_cpu(p));
  CHECK_VALUES(back, 0, 1, 2);
  nn_tensor *ints = nn_zeros(NN_INT64, 1, SZ(2));
  CHECK_STATUS_FAILS(nn_set_data(p, ints), "floating point");
  nn_tensor *view = nn_narrow(back, 0, 0, 1);
  CHECK_STATUS_FAILS(nn_set_data(view, ints), "not a view");
  nn_release(moved), nn_release(detached), nn_release(back), nn_release(ints), nn_release(view);
  nn_release(p);
}

/* Optimizer state follows its parameter's device: a buffer left on the
   device while the parameter is on the CPU is moved there by the step. */
static void test_state_follows(void) {
  nn_tensor *p = TENSOR(NN_FLOAT32, 1, SZ(2), 1, 2);
  nn_set_requires_grad(p, 1);
  nn_set_grad(p, TENSOR(NN_FLOAT32, 1, SZ(2), 1, 1));
  nn_release(p->grad); /* nn_set_grad retained it */
  nn_tensor *buf = OK(on_cuda(TENSOR(NN_FLOAT32, 1, SZ(2), 0.5, 0.5)));
  nn_tensor *slot = buf;
  nn_sgd_options o = {.lr = 0.1, .momentum = 0.9};
  CHECK_STATUS_OK(nn_sgd_step(p, &slot, &o));
  CHECK(slot != buf && slot->device == NN_CPU);
  /* buf = 0.9 * 0.5 + 1 = 1.45; p = p - 0.1 * 1.45 */
  CHECK_VALUES(slot, 1e-6, 1.45, 1.45);
  CHECK_VALUES(p, 1e-6, 1 - 0.145, 2 - 0.145);
  nn_release(slot), nn_release(buf), nn_release(p);
}

int main(void) {
  /* the test device, opened as CUDA's library would be */
  const char *fake = getenv("NN_FAKE_CUDA_LIBRARY");
  if (!fake) {
    printf("FAIL NN_FAKE_CUDA_LIBRARY is not set (ctest sets it)\n");
    return 1;
  }
  setenv("NN_CUDA_LIBRARY", fake, 1);
  setenv("NN_FAKE_CUDA", "1", 1);
  test_loaded();
  if (!nn_device_available(NN_CUDA)) return check_finish();
  test_round_trips();
  test_copy_into();
  test_item_and_format();
  test_gradients_cross();
  test_ops_stay();
  test_memory_counts();
  test_set_data();
  test_state_follows();
  nn_device_empty_cache(NN_CUDA);
  nn_memory_trim();
  return check_finish();
}

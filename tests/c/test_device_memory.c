/* test_device_memory.c: the caching allocator of device memory
 * (engine/src/cuda/device_cache.c) in front of a counting test device: freed blocks are
 * reused by size class, a steady loop asks the device for nothing, a full
 * device gets the cache back and one more try, and then a clear error. */
#include "check.h"
#include "cuda/device_cache.h"
#include "internal.h"

static int device_allocs, device_frees;
static size_t device_limit, device_used;

static void *counting_alloc(size_t nbytes, char *why, size_t len) {
  if (device_limit && device_used + nbytes > device_limit) {
    snprintf(why, len, "test device: no room for %zu bytes", nbytes);
    return NULL;
  }
  void *p = malloc(nbytes);
  if (!p) return NULL;
  device_used += nbytes;
  device_allocs++;
  return p;
}

static void counting_free(void *data, size_t nbytes) {
  device_used -= nbytes;
  device_frees++;
  free(data);
}

static nn_device_cache counting = {.device = "cuda", .raw_alloc = counting_alloc,
                                   .raw_free = counting_free, .error_set = nn_error_set};

static void *cache_alloc(size_t nbytes, size_t *rounded) {
  *rounded = nn_device_cache_rounded(nbytes);
  return nn_device_cache_alloc(&counting, nbytes);
}

static void test_reuse(void) {
  size_t rounded;
  void *a = cache_alloc(1000, &rounded);
  CHECK(a && rounded == 1024 && device_allocs == 1);
  CHECK(counting.allocated == 1024 && counting.reserved == 1024);
  nn_device_cache_free(&counting, a, rounded);
  CHECK(device_frees == 0); /* kept */
  CHECK(counting.allocated == 0 && counting.reserved == 1024);
  size_t again;
  void *b = cache_alloc(900, &again); /* the same class */
  CHECK(b == a && again == 1024 && device_allocs == 1);
  void *c = cache_alloc(1100, &rounded); /* the next class */
  CHECK(c && c != b && rounded == 1280 && device_allocs == 2);
  nn_device_cache_free(&counting, b, again);
  nn_device_cache_free(&counting, c, rounded);
  nn_device_cache_empty(&counting);
  CHECK(device_frees == 2 && device_used == 0);
  CHECK(counting.reserved == 0 && counting.allocated == 0);
}

/* A training step's allocations, over and over: after the first step the
   device is asked for nothing. */
static void test_steady_state(void) {
  static const size_t sizes[] = {4, 512, 40000, 40000, 3 << 20, 128 * 1024 + 1};
  enum { N = sizeof sizes / sizeof sizes[0] };
  int after_first = 0;
  for (int step = 0; step < 50; step++) {
    void *blocks[N];
    size_t rounded[N];
    for (int i = 0; i < N; i++) blocks[i] = cache_alloc(sizes[i], &rounded[i]);
    for (int i = 0; i < N; i++) nn_device_cache_free(&counting, blocks[i], rounded[i]);
    if (step == 0) after_first = device_allocs;
  }
  CHECKF(device_allocs == after_first, "%d device allocations after the first step's %d",
         device_allocs, after_first);
  CHECK(counting.allocated == 0);
  nn_device_cache_empty(&counting);
  CHECK(device_used == 0 && device_allocs == device_frees);
}

/* Out of device memory: the cache (blocks of other sizes) is given back and
   the allocation tried again; when that fails too, the error says how much
   was asked, held and reserved, and why the device refused. */
static void test_out_of_memory(void) {
  device_limit = 8192;
  size_t r1, r2, r3;
  void *a = cache_alloc(3000, &r1); /* 3072 */
  void *b = cache_alloc(3000, &r2);
  CHECK(a && b && device_used == 6144);
  nn_device_cache_free(&counting, a, r1);
  nn_device_cache_free(&counting, b, r2);
  int frees = device_frees;
  void *c = cache_alloc(4096, &r3); /* only fits once the cache is gone */
  CHECKF(c != NULL, "the retry after emptying the cache failed: %s", nn_error());
  CHECK(device_frees == frees + 2);
  CHECK(counting.allocated == 4096 && counting.reserved == 4096);
  size_t r4 = 0;
  void *d = cache_alloc(6100, &r4); /* 6144 with its class */
  CHECK(d == NULL);
  CHECKF(strstr(nn_error(), "out of memory on cuda: tried to allocate 5.96 KiB (4.00 KiB held by "
                            "tensors, 4.00 KiB reserved in all): test device: no room for 6144 "
                            "bytes") != NULL,
         "message: %s", nn_error());
  CHECK(counting.allocated == 4096 && counting.reserved == 4096);
  nn_device_cache_free(&counting, c, r3);
  nn_device_cache_empty(&counting);
  CHECK(device_used == 0);
  device_limit = 0;
}

/* Sizes round to 512 bytes at least, to quarters of a power of two below
   1 MiB and to sixteenths above (a large block wastes at most 6%). */
static void test_classes(void) {
  static const struct { size_t asked, rounded; } cases[] = {
      {1, 512},
      {512, 512},
      {513, 640},
      {4000, 4096},
      {(1 << 20), (1 << 20)},
      {(1 << 20) + 1, (1 << 20) + (1 << 16)},
      {(size_t)400 << 30, (size_t)400 << 30},
      {((size_t)16 << 30) + 1, (size_t)17 << 30},
  };
  device_limit = 1; /* nothing fits: only the rounding is looked at */
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    size_t rounded = 0;
    CHECK(cache_alloc(cases[i].asked, &rounded) == NULL);
    CHECKF(rounded == cases[i].rounded, "%zu bytes rounded to %zu, expected %zu", cases[i].asked,
           rounded, cases[i].rounded);
  }
  device_limit = 0;
}

int main(void) {
  test_classes();
  test_reuse();
  test_steady_state();
  test_out_of_memory();
  return check_finish();
}

/* fuzz_idx.c: libFuzzer harness for nn_read_idx. The input is the file,
 * plain or gzip; it is read as its own dtype and as scaled float32 (the
 * two conversion loops and the general one). Any outcome but a tensor or
 * an "idx: ..." error is a finding; the sanitizers catch the rest. */
#include "nn.h"
#include "fuzz_file.h"

static void read_as(const char *path, int dtype, double scale) {
  nn_tensor *t = nn_read_idx(path, dtype, scale);
  if (!t && strncmp(nn_error(), "idx: ", 5) != 0) {
    fprintf(stderr, "fuzz_idx: an error that does not name the operation: %s\n", nn_error());
    abort();
  }
  nn_release(t);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const char *path = fuzz_write_file(data, size);
  read_as(path, -1, 1.0);
  read_as(path, NN_FLOAT32, 1.0 / 255);
  read_as(path, NN_BOOL, 1.0);
  return 0;
}

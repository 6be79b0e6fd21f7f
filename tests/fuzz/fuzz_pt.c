/* fuzz_pt.c: libFuzzer harness for nn_pt_read, the reader of torch.save
 * files (engine/src/zip.c and torch_file.c).
 *
 * A checksum guards every entry of a ZIP, so a mutated file almost never
 * gets past the container to the pickle. The first byte therefore chooses
 * what the rest is:
 *   odd    the file itself: the ZIP reader's checks
 *   even   u16 length (big-endian), a pickle of that length, and storage
 *          bytes, which the harness wraps into a valid ZIP (archive/data.pkl,
 *          the storage bytes cut into records archive/data/0..3 as the
 *          low bits of the byte choose, archive/version): the pickle reader,
 *          its callables and the tensor checks
 * Whatever loads is walked, the first elements and the last of every tensor
 * read (so that the sanitizers see a tensor reaching outside its storage). Any
 * outcome but a value or a "load: ..." error is a finding. */
#include "nn.h"
#include "zip.h"
#include "fuzz_file.h"

/* Visits v and what it holds, up to budget values (a shared value is
   visited as often as it is reached: the budget bounds a wide DAG). */
static void walk(const nn_pt_value *v, long *budget) {
  if (!v || --*budget < 0) return;
  switch (v->kind) {
  case NN_PT_LIST: case NN_PT_TUPLE:
    for (int64_t i = 0; i < v->count; i++) walk(v->items[i], budget);
    break;
  case NN_PT_DICT:
    for (int64_t i = 0; i < 2 * v->count; i++) walk(v->items[i], budget);
    walk(v->state, budget);
    break;
  case NN_PT_STRING: case NN_PT_BYTES: {
    volatile unsigned char sum = 0;
    for (size_t i = 0; i < v->len; i++) sum += (unsigned char)v->bytes[i];
    break;
  }
  case NN_PT_TENSOR: {
    /* the first elements and the last: a tensor reaching outside its
       storage reaches furthest at its last element */
    int64_t n = nn_numel(v->tensor);
    volatile double sum = 0;
    for (int64_t i = 0; i < n && i < 4096; i++) sum += nn_get_flat(v->tensor, i);
    if (n > 0) sum += nn_get_flat(v->tensor, n - 1);
    break;
  }
  default: break;
  }
}

static char wrapped_path[96];
static void remove_wrapped(void) { unlink(wrapped_path); }

/* Writes the pickle and the storage records as a torch.save file (beside
   the scratch file; ZIP64 records when bit 3 of the first byte is set). */
static const char *wrap(const uint8_t *data, size_t size) {
  if (!wrapped_path[0]) {
    snprintf(wrapped_path, sizeof wrapped_path, "%s.pt", fuzz_write_file((const uint8_t *)"", 0));
    atexit(remove_wrapped);
  }
  const char *path = wrapped_path;
  const uint8_t *pickle = data + (size < 3 ? size : 3), *end = data + size;
  size_t len = size < 3 ? 0 : (size_t)(data[1] << 8 | data[2]);
  if (len > (size_t)(end - pickle)) len = (size_t)(end - pickle);
  const uint8_t *rest = pickle + len;
  size_t rest_len = (size_t)(end - rest);
  int records = data[0] >> 1 & 3;
  nn_zip_writer *w = nn_zip_writer_open("fuzz", path, data[0] >> 3 & 1);
  if (!w) return NULL;
  int ok = nn_zip_writer_add(w, "archive/data.pkl", pickle, len) == 0;
  for (int k = 0; ok && k <= records; k++) {
    char name[32];
    snprintf(name, sizeof name, "archive/data/%d", k);
    size_t from = rest_len * (size_t)k / (size_t)(records + 1), to = rest_len * (size_t)(k + 1) / (size_t)(records + 1);
    ok = nn_zip_writer_add(w, name, rest + from, to - from) == 0;
  }
  ok = ok && nn_zip_writer_add(w, "archive/version", "3\n", 2) == 0;
  if (!ok) {
    nn_zip_writer_abandon(w);
    return NULL;
  }
  return nn_zip_writer_finish(w) == 0 ? path : NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size == 0) return 0;
  const char *path = (data[0] & 1) ? fuzz_write_file(data + 1, size - 1) : wrap(data, size);
  if (!path) {
    fprintf(stderr, "fuzz_pt: cannot write the input: %s\n", nn_error());
    abort();
  }
  nn_pt_file *f = nn_pt_read(path);
  if (!f) {
    if (strncmp(nn_error(), "load: ", 6) != 0) {
      fprintf(stderr, "fuzz_pt: an error that does not name the operation: %s\n", nn_error());
      abort();
    }
    return 0;
  }
  long budget = 1 << 16;
  walk(nn_pt_root(f), &budget);
  nn_pt_close(f);
  return 0;
}

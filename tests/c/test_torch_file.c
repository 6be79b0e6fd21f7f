/* test_torch_file.c: the engine's writer and reader of torch.save files on
 * their own: a file written with every ZIP record in its ZIP64 form (as
 * one past 4 GiB has them) reads back, and so does the plain form; a
 * storage range outside its tensor's storage is refused. (The Lua spec,
 * tests/lua/torch_file_spec.lua, checks files PyTorch wrote and hostile
 * ones.) */
#include "check.h"
#include "torch_file.h"

#include <unistd.h>

/* {'w': _rebuild_tensor_v2(('storage', torch.FloatStorage, '0', 'cpu', 3),
   1, (2,), (1,), False, OrderedDict())}: elements 1 and 2 of storage 0 */
static const char pickle[] =
    "\x80\x02\x7d\x71\x00\x58\x01\x00\x00\x00\x77\x71\x01\x63\x74\x6f\x72\x63\x68\x2e"
    "\x5f\x75\x74\x69\x6c\x73\x0a\x5f\x72\x65\x62\x75\x69\x6c\x64\x5f\x74\x65\x6e\x73"
    "\x6f\x72\x5f\x76\x32\x0a\x71\x02\x28\x28\x58\x07\x00\x00\x00\x73\x74\x6f\x72\x61"
    "\x67\x65\x71\x03\x63\x74\x6f\x72\x63\x68\x0a\x46\x6c\x6f\x61\x74\x53\x74\x6f\x72"
    "\x61\x67\x65\x0a\x71\x04\x58\x01\x00\x00\x00\x30\x71\x05\x58\x03\x00\x00\x00\x63"
    "\x70\x75\x71\x06\x4b\x03\x74\x71\x07\x51\x4b\x01\x4b\x02\x85\x71\x08\x4b\x01\x85"
    "\x71\x09\x89\x63\x63\x6f\x6c\x6c\x65\x63\x74\x69\x6f\x6e\x73\x0a\x4f\x72\x64\x65"
    "\x72\x65\x64\x44\x69\x63\x74\x0a\x71\x0a\x29\x52\x71\x0b\x74\x71\x0c\x52\x71\x0d"
    "\x73\x2e";

static const nn_pt_value *entry(const nn_pt_value *dict, const char *key) {
  for (int64_t i = 0; dict && dict->kind == NN_PT_DICT && i < dict->count; i++) {
    const nn_pt_value *k = dict->items[2 * i];
    if (k->kind == NN_PT_STRING && k->len == strlen(key) && memcmp(k->bytes, key, k->len) == 0)
      return dict->items[2 * i + 1];
  }
  return NULL;
}

/* The last 22 bytes of path: its end of central directory record. */
static int end_record(const char *path, unsigned char *end) {
  FILE *f = fopen(path, "rb");
  if (!f) return 0;
  int ok = fseek(f, -22, SEEK_END) == 0 && fread(end, 1, 22, f) == 22;
  fclose(f);
  return ok;
}

static void round_trip(const char *path, int zip64) {
  float values[4] = {10, 11, 12, 13};
  int64_t size = 4;
  nn_tensor *t = OK(nn_empty(NN_FLOAT32, 1, &size));
  if (!t) return;
  for (int64_t i = 0; i < 4; i++) nn_set_flat(t, i, values[i]);
  /* storage 0 is elements 1..3 of t's storage; the pickle's tensor is
     elements 1..2 of that, so it holds 12 and 13 */
  nn_pt_storage s = {t, 1, 3};
  CHECKF(nn_pt_write_zip(path, pickle, sizeof pickle - 1, &s, 1, zip64) == 0, "write: %s", nn_error());
  unsigned char end[22];
  if (CHECK(end_record(path, end)))
    CHECKF((end[10] == 0xff && end[11] == 0xff) == zip64, "zip64=%d: the end record's entry count", zip64);
  nn_pt_file *f = nn_pt_read(path);
  CHECKF(f != NULL, "read: %s", nn_error());
  if (f) {
    const nn_pt_value *w = entry(nn_pt_root(f), "w");
    if (CHECK(w && w->kind == NN_PT_TENSOR)) {
      CHECK(w->tensor->ndim == 1 && w->tensor->size[0] == 2);
      CHECK(nn_get_flat(w->tensor, 0) == 12 && nn_get_flat(w->tensor, 1) == 13);
    }
    nn_pt_close(f);
  }
  nn_release(t);
}

int main(void) {
  char dir[] = "/tmp/nn-test-torch-file-XXXXXX";
  if (!mkdtemp(dir)) return 1;
  char plain[64], zip64[64];
  snprintf(plain, sizeof plain, "%s/plain.pt", dir);
  snprintf(zip64, sizeof zip64, "%s/zip64.pt", dir);
  round_trip(plain, 0);
  round_trip(zip64, 1);

  /* a range outside the tensor's storage is refused, and nothing is written */
  int64_t size = 2;
  nn_tensor *t = OK(nn_empty(NN_FLOAT64, 1, &size));
  char refused[64];
  snprintf(refused, sizeof refused, "%s/refused.pt", dir);
  nn_pt_storage s = {t, 0, 1 << 20};
  CHECK(nn_pt_write(refused, pickle, sizeof pickle - 1, &s, 1) < 0);
  CHECKF(strstr(nn_error(), "save: storage 0") != NULL, "message: %s", nn_error());
  CHECK(access(refused, F_OK) != 0);
  nn_release(t);

  unlink(plain), unlink(zip64);
  rmdir(dir);
  return check_finish();
}

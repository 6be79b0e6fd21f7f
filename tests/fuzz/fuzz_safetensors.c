/* fuzz_safetensors.c: libFuzzer harness for the C half of nn.load:
 * nn_safetensors_read_header, then nn_safetensors_read with the entries
 * the Lua half would hand it.
 *
 * The input is a list of entries followed by the file. The JSON header is
 * parsed in Lua (lua/nn/serialize.lua; fuzz_load.c fuzzes that path
 * whole); here the entries come straight from the input, so that every
 * dtype, rank, shape and offset the binding could pass reaches the checks,
 * edge values included:
 *   byte 0        the number of entries (mod 5)
 *   each entry    dtype selector (1 byte), rank selector (1 byte: -1..9),
 *                 one u32 per dimension, begin u32, end u32 (big-endian);
 *                 a u32 of 0xfffffff0 or more stands for an edge value
 *   the rest      the file
 * Any outcome but tensors or a "load: ..." error is a finding. */
#include "nn.h"
#include "fuzz_file.h"

enum { MAX_ENTRIES = 4 };

static const char *const dtype_names[] = {"F32", "F64", "I64",  "BOOL", "F16", "BF16", "I32", "I16",
                                          "I8",  "U8",  "U16",  "U32",  "Q7",  "",     "f32"};

static const uint64_t edge_values[16] = {
    UINT64_MAX,           UINT64_MAX - 1,       (uint64_t)INT64_MAX, (uint64_t)INT64_MAX + 1,
    (uint64_t)1 << 62,    (uint64_t)1 << 44,    (uint64_t)1 << 43,   ((uint64_t)1 << 43) + 1,
    (uint64_t)1 << 40,    (uint64_t)1 << 32,    UINT32_MAX,          (uint64_t)1 << 31,
    (uint64_t)1 << 20,    (uint64_t)1 << 16,    UINT64_MAX / 8,      UINT64_MAX / 4 + 1};

typedef struct {
  const uint8_t *at, *end;
} cursor;

static int take_byte(cursor *c, unsigned *v) {
  if (c->at >= c->end) return 0;
  *v = *c->at++;
  return 1;
}

static int take_u32(cursor *c, uint64_t *v) {
  if (c->end - c->at < 4) return 0;
  uint32_t x = (uint32_t)c->at[0] << 24 | (uint32_t)c->at[1] << 16 | (uint32_t)c->at[2] << 8 | c->at[3];
  c->at += 4;
  *v = x >= 0xfffffff0u ? edge_values[x - 0xfffffff0u] : x;
  return 1;
}

static void expect_load_error(const char *what) {
  if (strncmp(nn_error(), "load: ", 6) != 0) {
    fprintf(stderr, "fuzz_safetensors: %s failed with an error that does not name the "
                    "operation: %s\n", what, nn_error());
    abort();
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  cursor c = {data, data + size};
  nn_safetensors_entry entries[MAX_ENTRIES];
  char names[MAX_ENTRIES][8];
  unsigned count = 0;
  int64_t n = 0;
  if (take_byte(&c, &count)) count %= MAX_ENTRIES + 1;
  for (; n < (int64_t)count; n++) {
    nn_safetensors_entry *e = &entries[n];
    unsigned dtype, rank;
    if (!take_byte(&c, &dtype) || !take_byte(&c, &rank)) break;
    snprintf(names[n], sizeof names[n], "t%d", (int)n);
    e->name = names[n];
    e->dtype = dtype_names[dtype % (sizeof dtype_names / sizeof dtype_names[0])];
    e->ndim = (int)(rank % 11) - 1;
    int ok = 1;
    for (int d = 0; ok && d < (e->ndim > 0 ? e->ndim : 0) && d < NN_MAX_DIMS; d++) {
      uint64_t v;
      ok = take_u32(&c, &v);
      e->shape[d] = (int64_t)v;
    }
    if (!ok || !take_u32(&c, &e->begin) || !take_u32(&c, &e->end)) break;
  }
  const char *path = fuzz_write_file(c.at, (size_t)(c.end - c.at));
  size_t header_len;
  char *header = nn_safetensors_read_header(path, &header_len);
  if (!header) {
    expect_load_error("nn_safetensors_read_header");
    return 0;
  }
  if (strlen(header) > header_len) abort(); /* it must be NUL-terminated at header_len */
  free(header);
  nn_tensor *out[MAX_ENTRIES];
  if (nn_safetensors_read(path, header_len, entries, n, out) < 0) {
    expect_load_error("nn_safetensors_read");
    for (int64_t i = 0; i < n; i++)
      if (out[i]) abort(); /* nothing is left in out on failure */
    return 0;
  }
  for (int64_t i = 0; i < n; i++) {
    if (!out[i] || out[i]->ndim != entries[i].ndim) abort();
    nn_release(out[i]);
  }
  return 0;
}

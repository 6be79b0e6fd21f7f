/* torch_file.c: PyTorch's files (torch.save, PyTorch 1.6 and later), read
 * and written without Python and without ever running code from a file.
 *
 * A file is a ZIP (zip.c) holding <name>/data.pkl, a pickle of the saved
 * value, and one record <name>/data/<key> per tensor storage. Python's
 * pickle is a small stack machine whose GLOBAL and REDUCE opcodes name
 * and call any function: torch.load's default reader of its day ran
 * whatever a file named. The reader here implements the data opcodes of
 * pickle protocols 2 to 5 (Python's Lib/pickle.py and pickletools.py
 * document them) and knows exactly the callables a tensor file needs,
 * each of which it implements itself:
 *
 *   collections.OrderedDict()                    an ordered dict
 *   torch._utils._rebuild_tensor_v2(storage, offset, size, stride,
 *       requires_grad, backward_hooks[, metadata])
 *   torch._utils._rebuild_tensor(storage, offset, size, stride)
 *   torch._utils._rebuild_parameter(tensor, requires_grad, backward_hooks)
 *   torch.Size(tuple)                            a tuple
 *   _codecs.encode(text, "latin1"), bytes()      bytes (pickle protocol 2)
 *   torch.<Type>Storage, through persistent_load ('storage', type, key,
 *       location, numel): the storage record, read and checked
 *
 * Any other global is refused when the pickle names it, as is any opcode
 * that builds an object of a class (INST, OBJ, NEWOBJ, ...), BUILD on
 * anything but an OrderedDict, and every opcode it does not know. A
 * tensor must lie inside its storage; the value must hold no cycle and
 * nest no deeper than MAX_DEPTH. Memory is bounded by the file: storage
 * records are stored, not compressed, and never overlap (zip.c), each is
 * read once however many tensors share it, and every value the pickle
 * makes costs at least one of its bytes.
 *
 * Writing takes a pickle made by the caller (lua/nn/torch_file.lua makes
 * the very bytes torch.save would) and the storages, and writes the ZIP. */
#include <stdio.h>
#include <unistd.h>

#include "files.h"
#include "internal.h"
#include "torch_file.h"
#include "zip.h"

#define MAX_DEPTH 200
/* A data.pkl larger than this is not a tensor file's (its tensors' bytes
   are elsewhere). */
#define MAX_PICKLE ((uint64_t)1 << 30)

/* ==== values =========================================================== */

/* What a value on the reader's stack may be besides data: a callable or a
   storage type the pickle named, or a storage it loaded. Neither may be
   left in the result. */
enum { PLAIN = 0, GLOBAL_REF, STORAGE_REF };

typedef struct {
  nn_pt_value v; /* first: a node is its value */
  int special;   /* PLAIN, GLOBAL_REF or STORAGE_REF */
  int index;     /* which global, or which storage */
  size_t cap;    /* room in v.items, in pointers */
  char *owned;   /* bytes this value owns (v.bytes points into it) */
  unsigned char visit; /* the final check's mark */
} node;

typedef struct {
  char *key;
  nn_storage *storage;
  nn_dtype dtype;
  int64_t numel;
} loaded_storage;

struct nn_pt_file {
  unsigned char *pickle; /* data.pkl, which strings point into */
  node **nodes;
  size_t node_count, node_cap;
  loaded_storage *storages;
  size_t storage_count, storage_cap;
  int64_t *storage_slots; /* a hash of the keys: index + 1, 0 for none */
  size_t slot_count;
  nn_pt_value *root;
};

/* ==== what the pickle may name ========================================= */

enum {
  G_ORDERED_DICT, G_REBUILD_TENSOR_V2, G_REBUILD_TENSOR, G_REBUILD_PARAMETER, G_SIZE, G_ENCODE,
  G_BYTES, G_STORAGE /* + the index in storage_types */
};

static const struct {
  const char *module, *name;
  int id;
} known_globals[] = {
    {"collections", "OrderedDict", G_ORDERED_DICT},
    {"torch._utils", "_rebuild_tensor_v2", G_REBUILD_TENSOR_V2},
    {"torch._utils", "_rebuild_tensor", G_REBUILD_TENSOR},
    {"torch._utils", "_rebuild_parameter", G_REBUILD_PARAMETER},
    {"torch", "Size", G_SIZE},
    {"_codecs", "encode", G_ENCODE},
    {"__builtin__", "bytes", G_BYTES}, /* protocol 2's name for builtins.bytes */
    {"builtins", "bytes", G_BYTES},
};

/* PyTorch's storage types and the dtype each holds, byte for byte. */
static const struct {
  const char *name;
  nn_dtype dtype;
} storage_types[] = {
    {"FloatStorage", NN_FLOAT32}, {"DoubleStorage", NN_FLOAT64},
    {"LongStorage", NN_INT64},    {"BoolStorage", NN_BOOL},
    {"HalfStorage", NN_FLOAT16},  {"BFloat16Storage", NN_BFLOAT16},
    {"IntStorage", NN_INT32},     {"ShortStorage", NN_INT16},
    {"CharStorage", NN_INT8},     {"ByteStorage", NN_UINT8},
};
#define STORAGE_TYPE_COUNT (int)(sizeof storage_types / sizeof storage_types[0])

/* Storage types nnlua has no dtype for, named in the refusal. */
static const struct {
  const char *name, *what;
} refused_storages[] = {
    {"ComplexFloatStorage", "complex64"}, {"ComplexDoubleStorage", "complex128"},
    {"ComplexHalfStorage", "complex32"},  {"QInt8Storage", "quantized qint8"},
    {"QUInt8Storage", "quantized quint8"}, {"QInt32Storage", "quantized qint32"},
    {"QUInt4x2Storage", "quantized quint4x2"}, {"QUInt2x4Storage", "quantized quint2x4"},
    {"UntypedStorage", "untyped bytes"},
};

static const char *global_name(int id) {
  if (id >= G_STORAGE) return storage_types[id - G_STORAGE].name;
  for (size_t k = 0; k < sizeof known_globals / sizeof known_globals[0]; k++)
    if (known_globals[k].id == id) return known_globals[k].name;
  return "?";
}

/* The opcodes of pickle protocols 0 to 5, for messages. */
static const char *opcode_name(int op) {
  switch (op) {
  case '(': return "MARK"; case '.': return "STOP"; case '0': return "POP";
  case '1': return "POP_MARK"; case '2': return "DUP"; case 'F': return "FLOAT";
  case 'I': return "INT"; case 'J': return "BININT"; case 'K': return "BININT1";
  case 'L': return "LONG"; case 'M': return "BININT2"; case 'N': return "NONE";
  case 'P': return "PERSID"; case 'Q': return "BINPERSID"; case 'R': return "REDUCE";
  case 'S': return "STRING"; case 'T': return "BINSTRING"; case 'U': return "SHORT_BINSTRING";
  case 'V': return "UNICODE"; case 'X': return "BINUNICODE"; case 'a': return "APPEND";
  case 'b': return "BUILD"; case 'c': return "GLOBAL"; case 'd': return "DICT";
  case '}': return "EMPTY_DICT"; case 'e': return "APPENDS"; case 'g': return "GET";
  case 'h': return "BINGET"; case 'i': return "INST"; case 'j': return "LONG_BINGET";
  case 'l': return "LIST"; case ']': return "EMPTY_LIST"; case 'o': return "OBJ";
  case 'p': return "PUT"; case 'q': return "BINPUT"; case 'r': return "LONG_BINPUT";
  case 's': return "SETITEM"; case 't': return "TUPLE"; case ')': return "EMPTY_TUPLE";
  case 'u': return "SETITEMS"; case 'G': return "BINFLOAT"; case 'B': return "BINBYTES";
  case 'C': return "SHORT_BINBYTES"; case 0x80: return "PROTO"; case 0x81: return "NEWOBJ";
  case 0x82: return "EXT1"; case 0x83: return "EXT2"; case 0x84: return "EXT4";
  case 0x85: return "TUPLE1"; case 0x86: return "TUPLE2"; case 0x87: return "TUPLE3";
  case 0x88: return "NEWTRUE"; case 0x89: return "NEWFALSE"; case 0x8a: return "LONG1";
  case 0x8b: return "LONG4"; case 0x8c: return "SHORT_BINUNICODE"; case 0x8d: return "BINUNICODE8";
  case 0x8e: return "BINBYTES8"; case 0x8f: return "EMPTY_SET"; case 0x90: return "ADDITEMS";
  case 0x91: return "FROZENSET"; case 0x92: return "NEWOBJ_EX"; case 0x93: return "STACK_GLOBAL";
  case 0x94: return "MEMOIZE"; case 0x95: return "FRAME"; case 0x96: return "BYTEARRAY8";
  case 0x97: return "NEXT_BUFFER"; case 0x98: return "READONLY_BUFFER";
  default: return NULL;
  }
}

static const char *kind_name(const nn_pt_value *v) {
  const node *n = (const node *)v;
  if (n->special == GLOBAL_REF) return global_name(n->index);
  if (n->special == STORAGE_REF) return "a storage";
  switch (v->kind) {
  case NN_PT_NONE: return "None";
  case NN_PT_BOOL: return "a bool";
  case NN_PT_INT: return "an int";
  case NN_PT_FLOAT: return "a float";
  case NN_PT_STRING: return "a string";
  case NN_PT_BYTES: return "bytes";
  case NN_PT_LIST: return "a list";
  case NN_PT_TUPLE: return "a tuple";
  case NN_PT_DICT: return v->ordered ? "an OrderedDict" : "a dict";
  case NN_PT_TENSOR: return "a tensor";
  }
  return "?";
}

/* ==== the reader's state =============================================== */

typedef struct {
  const char *path;
  nn_pt_file *file;
  nn_zip_reader *zip;
  char prefix[256]; /* "archive/": the records' directory */
  const unsigned char *start, *at, *end;
  nn_pt_value **stack;
  size_t top, stack_cap;
  size_t *marks;
  size_t mark_count, mark_cap;
  nn_pt_value **memo;
  size_t memo_len, memo_cap;
} unpickler;

/* "load: path: message", -1 */
#define fail(u, ...) nn_file_fail((u)->path, __VA_ARGS__)

static int grow(void **items, size_t *cap, size_t need, size_t size) {
  if (need <= *cap) return 0;
  size_t cap2 = *cap ? *cap : 8;
  while (cap2 < need) cap2 *= 2;
  void *p = realloc(*items, cap2 * size);
  if (!p) return -1;
  *items = p, *cap = cap2;
  return 0;
}

static nn_pt_value *new_value(unpickler *u, nn_pt_kind kind) {
  nn_pt_file *f = u->file;
  if (grow((void **)&f->nodes, &f->node_cap, f->node_count + 1, sizeof *f->nodes) < 0) {
    fail(u, "out of memory");
    return NULL;
  }
  node *n = calloc(1, sizeof *n);
  if (!n) {
    fail(u, "out of memory");
    return NULL;
  }
  n->v.kind = kind;
  f->nodes[f->node_count++] = n;
  return &n->v;
}

static int push(unpickler *u, nn_pt_value *v) {
  if (!v) return -1;
  if (grow((void **)&u->stack, &u->stack_cap, u->top + 1, sizeof *u->stack) < 0)
    return fail(u, "out of memory");
  u->stack[u->top++] = v;
  return 0;
}

/* The stack as the current MARK leaves it: nothing below the mark may be
   popped, as in Python's reader. */
static size_t frame_base(const unpickler *u) {
  return u->mark_count ? u->marks[u->mark_count - 1] : 0;
}

static nn_pt_value *pop(unpickler *u, int op) {
  if (u->top <= frame_base(u)) {
    fail(u, "the pickle is malformed: %s finds its stack empty", opcode_name(op));
    return NULL;
  }
  return u->stack[--u->top];
}

static nn_pt_value *peek(unpickler *u, int op) {
  if (u->top <= frame_base(u)) {
    fail(u, "the pickle is malformed: %s finds its stack empty", opcode_name(op));
    return NULL;
  }
  return u->stack[u->top - 1];
}

/* Closes the innermost MARK; *first is where its items start. */
static int pop_mark(unpickler *u, int op, size_t *first) {
  if (u->mark_count == 0) return fail(u, "the pickle is malformed: %s without a MARK", opcode_name(op));
  *first = u->marks[--u->mark_count];
  return 0;
}

static int add_items(unpickler *u, nn_pt_value *to, nn_pt_value *const *items, size_t n) {
  if (n == 0) return 0;
  node *t = (node *)to;
  if (grow((void **)&to->items, &t->cap, (size_t)to->count + n, sizeof *to->items) < 0)
    return fail(u, "out of memory");
  memcpy(to->items + to->count, items, n * sizeof *items);
  to->count += (int64_t)n;
  return 0;
}

/* A new list, tuple or dict of the n values at items. */
static nn_pt_value *new_container(unpickler *u, nn_pt_kind kind, nn_pt_value *const *items, size_t n) {
  nn_pt_value *v = new_value(u, kind);
  if (v && n > 0 && add_items(u, v, items, n) < 0) return NULL;
  if (v && kind == NN_PT_DICT) v->count /= 2;
  return v;
}

/* ==== bytes of the pickle ============================================== */

static int take(unpickler *u, size_t n, const unsigned char **p) {
  if ((size_t)(u->end - u->at) < n)
    return fail(u, "the pickle is truncated: it ends inside an opcode at byte %zu",
                (size_t)(u->at - u->start));
  *p = u->at;
  u->at += n;
  return 0;
}

static uint64_t little_endian(const unsigned char *p, size_t n) {
  uint64_t v = 0;
  for (size_t k = n; k-- > 0;) v = v << 8 | p[k];
  return v;
}

static int push_int(unpickler *u, int64_t x) {
  nn_pt_value *v = new_value(u, NN_PT_INT);
  if (!v) return -1;
  v->integer = x;
  return push(u, v);
}

/* LONG1 and LONG4: n bytes of two's complement, little-endian. */
static int push_long(unpickler *u, size_t n) {
  const unsigned char *p;
  if (take(u, n, &p) < 0) return -1;
  if (n > 8) {
    /* a longer encoding still fits when its extra bytes only extend the sign */
    unsigned char sign = (p[7] & 0x80) ? 0xff : 0;
    for (size_t k = 8; k < n; k++)
      if (p[k] != sign) return fail(u, "the pickle holds an integer of %zu bytes, beyond 64 bits", n);
    n = 8;
  }
  uint64_t bits = little_endian(p, n);
  if (n > 0 && n < 8 && (p[n - 1] & 0x80)) bits |= ~(uint64_t)0 << (8 * n);
  int64_t x;
  memcpy(&x, &bits, sizeof x);
  return push_int(u, x);
}

/* A string or bytes whose length takes len_bytes (BINSTRING's is signed). */
static int push_text(unpickler *u, nn_pt_kind kind, size_t len_bytes, int is_signed) {
  const unsigned char *p;
  if (take(u, len_bytes, &p) < 0) return -1;
  uint64_t len = little_endian(p, len_bytes);
  if (is_signed && (len >> 31)) return fail(u, "the pickle holds a string of negative length");
  if (len > (uint64_t)(u->end - u->at))
    return fail(u, "the pickle is truncated: a string of %llu bytes runs past its end",
                (unsigned long long)len);
  nn_pt_value *v = new_value(u, kind);
  if (!v) return -1;
  v->bytes = (const char *)u->at;
  v->len = (size_t)len;
  u->at += len;
  return push(u, v);
}

/* ==== globals ========================================================== */

static int push_global(unpickler *u, const char *module, size_t module_len, const char *name,
                       size_t name_len) {
  int id = -1;
  for (size_t k = 0; k < sizeof known_globals / sizeof known_globals[0] && id < 0; k++)
    if (strlen(known_globals[k].module) == module_len && strlen(known_globals[k].name) == name_len &&
        memcmp(known_globals[k].module, module, module_len) == 0 &&
        memcmp(known_globals[k].name, name, name_len) == 0)
      id = known_globals[k].id;
  if (id < 0 && module_len == 5 && memcmp(module, "torch", 5) == 0) {
    for (int k = 0; k < STORAGE_TYPE_COUNT && id < 0; k++)
      if (strlen(storage_types[k].name) == name_len && memcmp(storage_types[k].name, name, name_len) == 0)
        id = G_STORAGE + k;
    for (size_t k = 0; k < sizeof refused_storages / sizeof refused_storages[0]; k++)
      if (strlen(refused_storages[k].name) == name_len &&
          memcmp(refused_storages[k].name, name, name_len) == 0)
        return fail(u, "it holds a tensor of torch.%s (%s), a dtype nnlua does not have",
                    refused_storages[k].name, refused_storages[k].what);
  }
  if (id < 0) {
    /* printable in the message whatever the bytes are */
    char shown[160];
    size_t n = 0;
    for (size_t k = 0; k < module_len + 1 + name_len && n + 5 < sizeof shown; k++) {
      unsigned char c = k < module_len ? (unsigned char)module[k]
                        : k == module_len ? '.' : (unsigned char)name[k - module_len - 1];
      n += (size_t)snprintf(shown + n, sizeof shown - n, c >= 32 && c < 127 ? "%c" : "\\x%02x", c);
    }
    return fail(u, "the pickle names %s, which a tensor file never needs: refused (nothing in the "
                "file is run; a state_dict or a table of tensors, numbers and strings loads)", shown);
  }
  node *n = (node *)new_value(u, NN_PT_NONE);
  if (!n) return -1;
  n->special = GLOBAL_REF;
  n->index = id;
  return push(u, &n->v);
}

/* GLOBAL: "module\nname\n" in the opcode's argument. */
static int read_global(unpickler *u) {
  const unsigned char *lines[2];
  size_t lens[2];
  for (int k = 0; k < 2; k++) {
    const unsigned char *nl = memchr(u->at, '\n', (size_t)(u->end - u->at));
    if (!nl) return fail(u, "the pickle is truncated inside a GLOBAL");
    lines[k] = u->at, lens[k] = (size_t)(nl - u->at);
    u->at = nl + 1;
  }
  return push_global(u, (const char *)lines[0], lens[0], (const char *)lines[1], lens[1]);
}

/* ==== storages ========================================================= */

static uint64_t hash_key(const char *s, size_t len) {
  uint64_t h = 1469598103934665603u; /* FNV-1a */
  for (size_t k = 0; k < len; k++) h = (h ^ (unsigned char)s[k]) * 1099511628211u;
  return h;
}

static int64_t find_storage(const nn_pt_file *f, const char *key, size_t len) {
  if (!f->slot_count) return -1;
  for (size_t i = (size_t)hash_key(key, len) & (f->slot_count - 1);; i = (i + 1) & (f->slot_count - 1)) {
    int64_t s = f->storage_slots[i];
    if (s == 0) return -1;
    const char *k = f->storages[s - 1].key;
    if (strlen(k) == len && memcmp(k, key, len) == 0) return s - 1;
  }
}

static void insert_slot(int64_t *table, size_t slots, const char *key, int64_t index) {
  size_t i = (size_t)hash_key(key, strlen(key)) & (slots - 1);
  while (table[i]) i = (i + 1) & (slots - 1);
  table[i] = index + 1;
}

/* A new table with room for twice the storages, so that it stays at most
   half full. */
static int index_storages(nn_pt_file *f) {
  size_t slots = 16;
  while (slots < 4 * f->storage_count) slots *= 2;
  int64_t *table = calloc(slots, sizeof *table);
  if (!table) return -1;
  for (size_t s = 0; s < f->storage_count; s++)
    insert_slot(table, slots, f->storages[s].key, (int64_t)s);
  free(f->storage_slots);
  f->storage_slots = table, f->slot_count = slots;
  return 0;
}

/* Reads the record of key as numel elements of storage type k. */
static int load_storage(unpickler *u, int k, const char *key, size_t key_len, int64_t numel) {
  char name[512];
  if (key_len > 200 || memchr(key, 0, key_len) || memchr(key, '/', key_len))
    return fail(u, "the pickle names a storage with a malformed key");
  snprintf(name, sizeof name, "%sdata/%.*s", u->prefix, (int)key_len, key);
  const nn_zip_entry *e = nn_zip_find(u->zip, name);
  if (!e) return fail(u, "the pickle refers to a storage '%s' the file lacks", name);
  size_t esize = nn_dtype_size(storage_types[k].dtype);
  if (numel < 0 || (uint64_t)numel > e->size / esize || (uint64_t)numel * esize != e->size)
    return fail(u, "storage '%s' holds %llu bytes, the pickle says %lld elements of %s (%zu bytes "
                "each)", name, (unsigned long long)e->size, (long long)numel, storage_types[k].name, esize);
  nn_dtype dtype = storage_types[k].dtype;
  nn_storage *s = nn_storage_new(NN_CPU, (size_t)numel * nn_dtype_size(dtype));
  if (!s) return fail(u, "out of memory for storage '%s' (%lld elements)", name, (long long)numel);
  int rc = nn_zip_read(u->zip, e, s->data);
  if (rc == 0 && dtype == NN_BOOL) { /* any non-zero byte is true; stored as 1 */
    unsigned char *b = s->data;
    for (int64_t j = 0; j < numel; j++) b[j] = b[j] != 0;
  }
  nn_pt_file *f = u->file;
  char *copy = rc == 0 ? malloc(key_len + 1) : NULL;
  if (rc == 0 && (!copy || grow((void **)&f->storages, &f->storage_cap, f->storage_count + 1,
                                sizeof *f->storages) < 0))
    rc = fail(u, "out of memory");
  if (rc < 0) {
    free(copy);
    nn_storage_release(s);
    return -1;
  }
  memcpy(copy, key, key_len);
  copy[key_len] = 0;
  f->storages[f->storage_count++] = (loaded_storage){copy, s, dtype, numel};
  if (2 * f->storage_count > f->slot_count) {
    if (index_storages(f) < 0) return fail(u, "out of memory");
  } else {
    insert_slot(f->storage_slots, f->slot_count, copy, (int64_t)f->storage_count - 1);
  }
  return 0;
}

static int is_string(const nn_pt_value *v, const char *text) {
  return v->kind == NN_PT_STRING && ((const node *)v)->special == PLAIN && v->len == strlen(text) &&
         memcmp(v->bytes, text, v->len) == 0;
}

/* BINPERSID: the id torch.save gives a storage,
   ('storage', torch.<Type>Storage, key, location, numel). */
static int persistent_load(unpickler *u) {
  nn_pt_value *pid = pop(u, 'Q');
  if (!pid) return -1;
  if (pid->kind != NN_PT_TUPLE || ((node *)pid)->special || pid->count < 1 ||
      !is_string(pid->items[0], "storage"))
    return fail(u, "the pickle asks to load %s by persistent id; only torch's storages load that way",
                kind_name(pid));
  nn_pt_value **it = pid->items;
  if (pid->count != 5 || ((node *)it[1])->special != GLOBAL_REF || ((node *)it[1])->index < G_STORAGE ||
      it[2]->kind != NN_PT_STRING || it[3]->kind != NN_PT_STRING || it[4]->kind != NN_PT_INT)
    return fail(u, "a storage's persistent id is not ('storage', type, key, location, numel)");
  int k = ((node *)it[1])->index - G_STORAGE;
  int64_t s = find_storage(u->file, it[2]->bytes, it[2]->len);
  if (s >= 0) {
    loaded_storage *ls = &u->file->storages[s];
    if (ls->dtype != storage_types[k].dtype || ls->numel != it[4]->integer)
      return fail(u, "storage '%s' is named twice with different types or sizes", ls->key);
  } else {
    if (load_storage(u, k, it[2]->bytes, it[2]->len, it[4]->integer) < 0) return -1;
    s = (int64_t)u->file->storage_count - 1;
  }
  node *n = (node *)new_value(u, NN_PT_NONE);
  if (!n) return -1;
  n->special = STORAGE_REF;
  n->index = (int)s;
  return push(u, &n->v);
}

/* ==== the callables ==================================================== */

static int is_plain(const nn_pt_value *v, nn_pt_kind kind) {
  return v->kind == kind && ((const node *)v)->special == PLAIN;
}

/* A tuple of n ints, each >= 0, into out (n <= NN_MAX_DIMS). */
static int read_sizes(unpickler *u, const nn_pt_value *t, int64_t *out, const char *what) {
  for (int64_t d = 0; d < t->count; d++) {
    const nn_pt_value *x = t->items[d];
    if (!is_plain(x, NN_PT_INT)) return fail(u, "a tensor's %s holds %s, not an int", what, kind_name(x));
    if (x->integer < 0) return fail(u, "a tensor has a negative %s (%lld)", what, (long long)x->integer);
    out[d] = x->integer;
  }
  return 0;
}

/* _rebuild_tensor(_v2): a view of a loaded storage, checked to lie inside it. */
static nn_pt_value *rebuild_tensor(unpickler *u, nn_pt_value *const *a, const nn_pt_value *grad) {
  const node *sn = (const node *)a[0];
  if (sn->special != STORAGE_REF) {
    fail(u, "a tensor is rebuilt from %s, not a storage", kind_name(a[0]));
    return NULL;
  }
  if (!is_plain(a[1], NN_PT_INT) || !is_plain(a[2], NN_PT_TUPLE) || !is_plain(a[3], NN_PT_TUPLE)) {
    fail(u, "a tensor's offset, size or stride is malformed");
    return NULL;
  }
  loaded_storage *ls = &u->file->storages[sn->index];
  int64_t ndim = a[2]->count, size[NN_MAX_DIMS], stride[NN_MAX_DIMS], offset = a[1]->integer;
  if (ndim > NN_MAX_DIMS) {
    fail(u, "a tensor has %lld dimensions, at most %d are supported", (long long)ndim, NN_MAX_DIMS);
    return NULL;
  }
  if (a[3]->count != ndim) {
    fail(u, "a tensor has %lld sizes and %lld strides", (long long)ndim, (long long)a[3]->count);
    return NULL;
  }
  if (read_sizes(u, a[2], size, "size") < 0 || read_sizes(u, a[3], stride, "stride") < 0) return NULL;
  if (nn_check_shape("load", (int)ndim, size) < 0) {
    char message[256];
    snprintf(message, sizeof message, "%s", nn_error());
    fail(u, "a tensor has an impossible shape (%s)", message);
    return NULL;
  }
  if (offset < 0) {
    fail(u, "a tensor has a negative storage offset (%lld)", (long long)offset);
    return NULL;
  }
  /* the last element it reaches, added up without overflow */
  int64_t last = offset, numel = nn_shape_numel((int)ndim, size);
  int inside = offset <= ls->numel;
  for (int64_t d = 0; inside && numel > 0 && d < ndim; d++) {
    if (stride[d] > 0 && size[d] - 1 > (ls->numel - 1 - last) / stride[d]) inside = 0;
    else last += (size[d] - 1) * stride[d];
  }
  if (!inside || (numel > 0 && last >= ls->numel)) {
    fail(u, "a tensor (offset %lld, %lld dimensions) reaches past the end of storage '%s' (%lld "
         "elements)", (long long)offset, (long long)ndim, ls->key, (long long)ls->numel);
    return NULL;
  }
  int requires_grad = 0;
  if (grad) {
    if (!is_plain(grad, NN_PT_BOOL)) {
      fail(u, "a tensor's requires_grad is %s, not a bool", kind_name(grad));
      return NULL;
    }
    requires_grad = (int)grad->integer;
  }
  if (requires_grad && !nn_dtype_is_floating(ls->dtype)) {
    fail(u, "a tensor of %s requires grad; only floating-point ones can", nn_dtype_name(ls->dtype));
    return NULL;
  }
  nn_pt_value *v = new_value(u, NN_PT_TENSOR);
  if (!v) return NULL;
  if (!(v->tensor = nn_tensor_wrap(ls->storage, ls->dtype, (int)ndim, size, stride, offset))) {
    fail(u, "out of memory");
    return NULL;
  }
  v->tensor->requires_grad = requires_grad;
  return v;
}

/* backward_hooks and metadata: torch writes an empty OrderedDict (or dict,
   or None for metadata); hooks are functions, which no file can hold. */
static int check_empty(unpickler *u, const nn_pt_value *v, const char *what) {
  if (is_plain(v, NN_PT_NONE) || (is_plain(v, NN_PT_DICT) && v->count == 0)) return 0;
  return fail(u, "a tensor's %s is %s, not empty: refused", what, kind_name(v));
}

/* _codecs.encode(text, "latin1"): text's code points, each below 256, as bytes. */
static nn_pt_value *latin1_bytes(unpickler *u, const nn_pt_value *text) {
  node *n = (node *)new_value(u, NN_PT_BYTES);
  if (!n) return NULL;
  if (!(n->owned = malloc(text->len > 0 ? text->len : 1))) {
    fail(u, "out of memory");
    return NULL;
  }
  const unsigned char *p = (const unsigned char *)text->bytes, *end = p + text->len;
  size_t len = 0;
  while (p < end) {
    if (p[0] < 0x80) {
      n->owned[len++] = (char)*p++;
    } else if ((p[0] & 0xe0) == 0xc0 && end - p >= 2 && (p[1] & 0xc0) == 0x80 && p[0] <= 0xc3 &&
               p[0] >= 0xc2) {
      n->owned[len++] = (char)(((p[0] & 0x1f) << 6) | (p[1] & 0x3f));
      p += 2;
    } else {
      fail(u, "bytes encoded as latin-1 hold a character beyond it");
      return NULL;
    }
  }
  n->v.bytes = n->owned, n->v.len = len;
  return &n->v;
}

static int reduce(unpickler *u) {
  nn_pt_value *args = pop(u, 'R');
  nn_pt_value *fn = args ? pop(u, 'R') : NULL;
  if (!fn) return -1;
  if (((node *)fn)->special != GLOBAL_REF)
    return fail(u, "the pickle calls %s, which is not a function the reader knows: refused",
                kind_name(fn));
  int id = ((node *)fn)->index;
  if (!is_plain(args, NN_PT_TUPLE))
    return fail(u, "the pickle calls %s with %s, not a tuple of arguments", global_name(id),
                kind_name(args));
  nn_pt_value *const *a = args->items, *v = NULL;
  int64_t n = args->count;
  switch (id) {
  case G_ORDERED_DICT:
    if (n != 0) return fail(u, "the pickle calls OrderedDict with arguments");
    if ((v = new_value(u, NN_PT_DICT))) v->ordered = 1;
    break;
  case G_REBUILD_TENSOR_V2:
    if (n != 6 && n != 7) return fail(u, "_rebuild_tensor_v2 takes 6 or 7 arguments, the pickle gives %lld", (long long)n);
    if (check_empty(u, a[5], "backward_hooks") < 0 || (n == 7 && check_empty(u, a[6], "metadata") < 0))
      return -1;
    v = rebuild_tensor(u, a, a[4]);
    break;
  case G_REBUILD_TENSOR:
    if (n != 4) return fail(u, "_rebuild_tensor takes 4 arguments, the pickle gives %lld", (long long)n);
    v = rebuild_tensor(u, a, NULL);
    break;
  case G_REBUILD_PARAMETER:
    if (n != 3 || !is_plain(a[0], NN_PT_TENSOR) || !is_plain(a[1], NN_PT_BOOL))
      return fail(u, "_rebuild_parameter takes (tensor, requires_grad, hooks)");
    if (check_empty(u, a[2], "backward_hooks") < 0) return -1;
    if (a[1]->integer && !nn_dtype_is_floating(a[0]->tensor->dtype))
      return fail(u, "a parameter of %s requires grad; only floating-point ones can",
                  nn_dtype_name(a[0]->tensor->dtype));
    if ((v = new_value(u, NN_PT_TENSOR))) {
      v->tensor = nn_retain(a[0]->tensor);
      v->tensor->requires_grad = (int)a[1]->integer;
      v->parameter = 1;
    }
    break;
  case G_SIZE:
    if (n != 1 || !is_plain(a[0], NN_PT_TUPLE)) return fail(u, "torch.Size takes one tuple");
    v = new_container(u, NN_PT_TUPLE, a[0]->items, (size_t)a[0]->count);
    break;
  case G_ENCODE:
    if (n != 2 || !is_plain(a[0], NN_PT_STRING) ||
        !(is_string(a[1], "latin1") || is_string(a[1], "latin-1")))
      return fail(u, "_codecs.encode is called other than as pickle encodes bytes, (text, 'latin1')");
    v = latin1_bytes(u, a[0]);
    break;
  case G_BYTES:
    if (n != 0) return fail(u, "bytes is called with arguments");
    v = new_value(u, NN_PT_BYTES);
    if (v) v->bytes = "";
    break;
  default:
    return fail(u, "the pickle calls %s, a storage type, as a function: refused", global_name(id));
  }
  return v ? push(u, v) : -1;
}

/* ==== the machine ====================================================== */

static int is_hashable(const nn_pt_value *key) {
  return key->kind != NN_PT_LIST && key->kind != NN_PT_DICT;
}

static int set_items(unpickler *u, nn_pt_value *dict, nn_pt_value *const *items, size_t n, int op) {
  if (!is_plain(dict, NN_PT_DICT))
    return fail(u, "the pickle sets items (%s) of %s, not of a dict", opcode_name(op), kind_name(dict));
  if (n % 2) return fail(u, "the pickle is malformed: %s with an odd number of items", opcode_name(op));
  for (size_t k = 0; k < n; k += 2)
    if (!is_hashable(items[k])) return fail(u, "the pickle uses %s as a dict key", kind_name(items[k]));
  int64_t pairs = dict->count;
  dict->count *= 2; /* add_items counts pointers */
  int rc = add_items(u, dict, items, n);
  dict->count = rc < 0 ? pairs : dict->count / 2;
  return rc;
}

static int memo_put(unpickler *u, uint64_t index) {
  nn_pt_value *v = peek(u, 'q');
  if (!v) return -1;
  /* Python's pickler numbers its memo 0, 1, 2...: an index may replace one
     or come next, which bounds the memo by the pickle's size */
  if (index > u->memo_len)
    return fail(u, "the pickle stores memo entry %llu before entry %zu", (unsigned long long)index,
                u->memo_len);
  if (index == u->memo_len) {
    if (grow((void **)&u->memo, &u->memo_cap, u->memo_len + 1, sizeof *u->memo) < 0)
      return fail(u, "out of memory");
    u->memo_len++;
  }
  u->memo[index] = v;
  return 0;
}

static int memo_get(unpickler *u, uint64_t index) {
  if (index >= u->memo_len)
    return fail(u, "the pickle reads memo entry %llu, which it never stored", (unsigned long long)index);
  return push(u, u->memo[index]);
}

static int refuse(unpickler *u, int op) {
  const char *name = opcode_name(op);
  if (!name)
    return fail(u, "the pickle has an unknown opcode 0x%02x at byte %zu", op,
                (size_t)(u->at - u->start - 1));
  char shown[8];
  snprintf(shown, sizeof shown, op >= 32 && op < 127 ? "'%c'" : "0x%02x", op);
  return fail(u, "the pickle uses opcode %s (%s), which a tensor file never needs: refused "
              "(nothing in the file is run)", name, shown);
}

/* Runs the pickle to its STOP; the result is u->file->root. */
static int run(unpickler *u) {
  const unsigned char *p;
  for (;;) {
    if (u->at >= u->end) return fail(u, "the pickle is truncated: it ends without STOP");
    int op = *u->at++;
    size_t first;
    nn_pt_value *v, *w;
    switch (op) {
    case 0x80: /* PROTO */
      if (take(u, 1, &p) < 0) return -1;
      if (*p > 5) return fail(u, "the pickle is of protocol %d; protocols up to 5 are read", *p);
      break;
    case 0x95: /* FRAME: a length that only helps a reader buffer */
      if (take(u, 8, &p) < 0) return -1;
      break;
    case '.': /* STOP */
      if (!(u->file->root = pop(u, op))) return -1;
      return 0;
    case '(': /* MARK */
      if (grow((void **)&u->marks, &u->mark_cap, u->mark_count + 1, sizeof *u->marks) < 0)
        return fail(u, "out of memory");
      u->marks[u->mark_count++] = u->top;
      break;
    case '0': /* POP: the top, or the innermost mark when its frame is empty */
      if (u->top > frame_base(u)) u->top--;
      else if (pop_mark(u, op, &first) < 0) return -1;
      break;
    case '1': /* POP_MARK */
      if (pop_mark(u, op, &first) < 0) return -1;
      u->top = first;
      break;
    case '2': /* DUP */
      if (!(v = peek(u, op)) || push(u, v) < 0) return -1;
      break;
    case 'N': if (push(u, new_value(u, NN_PT_NONE)) < 0) return -1; break;
    case 0x88: case 0x89: /* NEWTRUE, NEWFALSE */
      if (!(v = new_value(u, NN_PT_BOOL))) return -1;
      v->integer = op == 0x88;
      if (push(u, v) < 0) return -1;
      break;
    case 'K': if (take(u, 1, &p) < 0 || push_int(u, p[0]) < 0) return -1; break;
    case 'M': if (take(u, 2, &p) < 0 || push_int(u, (int64_t)little_endian(p, 2)) < 0) return -1; break;
    case 'J': if (take(u, 4, &p) < 0 || push_int(u, (int32_t)(uint32_t)little_endian(p, 4)) < 0) return -1; break;
    case 0x8a: /* LONG1 */
      if (take(u, 1, &p) < 0 || push_long(u, p[0]) < 0) return -1;
      break;
    case 0x8b: /* LONG4 */
      if (take(u, 4, &p) < 0) return -1;
      if (little_endian(p, 4) >> 31) return fail(u, "the pickle holds a LONG4 of negative length");
      if (push_long(u, (size_t)little_endian(p, 4)) < 0) return -1;
      break;
    case 'G': { /* BINFLOAT: big-endian IEEE double */
      if (take(u, 8, &p) < 0 || !(v = new_value(u, NN_PT_FLOAT))) return -1;
      uint64_t bits = 0;
      for (int k = 0; k < 8; k++) bits = bits << 8 | p[k];
      memcpy(&v->number, &bits, sizeof v->number);
      if (push(u, v) < 0) return -1;
      break;
    }
    case 'X': if (push_text(u, NN_PT_STRING, 4, 0) < 0) return -1; break; /* BINUNICODE */
    case 0x8c: if (push_text(u, NN_PT_STRING, 1, 0) < 0) return -1; break; /* SHORT_BINUNICODE */
    case 0x8d: if (push_text(u, NN_PT_STRING, 8, 0) < 0) return -1; break; /* BINUNICODE8 */
    case 'U': if (push_text(u, NN_PT_STRING, 1, 0) < 0) return -1; break; /* SHORT_BINSTRING */
    case 'T': if (push_text(u, NN_PT_STRING, 4, 1) < 0) return -1; break; /* BINSTRING */
    case 'C': if (push_text(u, NN_PT_BYTES, 1, 0) < 0) return -1; break; /* SHORT_BINBYTES */
    case 'B': if (push_text(u, NN_PT_BYTES, 4, 0) < 0) return -1; break; /* BINBYTES */
    case 0x8e: if (push_text(u, NN_PT_BYTES, 8, 0) < 0) return -1; break; /* BINBYTES8 */
    case ')': if (push(u, new_value(u, NN_PT_TUPLE)) < 0) return -1; break;
    case ']': if (push(u, new_value(u, NN_PT_LIST)) < 0) return -1; break;
    case '}': if (push(u, new_value(u, NN_PT_DICT)) < 0) return -1; break;
    case 0x85: case 0x86: case 0x87: { /* TUPLE1..3 */
      size_t n = (size_t)(op - 0x84);
      if (u->top < frame_base(u) + n)
        return fail(u, "the pickle is malformed: %s finds too few items", opcode_name(op));
      u->top -= n;
      if (push(u, new_container(u, NN_PT_TUPLE, u->stack + u->top, n)) < 0) return -1;
      break;
    }
    case 't': case 'l': case 'd': /* TUPLE, LIST, DICT: the items since the mark */
      if (pop_mark(u, op, &first) < 0) return -1;
      if (op == 'd' && (u->top - first) % 2) return fail(u, "the pickle is malformed: DICT with an odd number of items");
      if (op == 'd')
        for (size_t k = first; k < u->top; k += 2)
          if (!is_hashable(u->stack[k])) return fail(u, "the pickle uses %s as a dict key", kind_name(u->stack[k]));
      v = new_container(u, op == 't' ? NN_PT_TUPLE : op == 'l' ? NN_PT_LIST : NN_PT_DICT,
                        u->top > first ? u->stack + first : NULL, u->top - first);
      u->top = first;
      if (push(u, v) < 0) return -1;
      break;
    case 'a': /* APPEND */
      if (!(v = pop(u, op)) || !(w = peek(u, op))) return -1;
      if (!is_plain(w, NN_PT_LIST)) return fail(u, "the pickle appends to %s, not to a list", kind_name(w));
      if (add_items(u, w, &v, 1) < 0) return -1;
      break;
    case 'e': /* APPENDS */
      if (pop_mark(u, op, &first) < 0) return -1;
      if (first <= frame_base(u)) return fail(u, "the pickle is malformed: APPENDS has no list");
      w = u->stack[first - 1];
      if (!is_plain(w, NN_PT_LIST)) return fail(u, "the pickle appends to %s, not to a list", kind_name(w));
      if (add_items(u, w, u->stack + first, u->top - first) < 0) return -1;
      u->top = first;
      break;
    case 's': /* SETITEM */
      if (u->top < frame_base(u) + 3) return fail(u, "the pickle is malformed: SETITEM finds too few items");
      if (set_items(u, u->stack[u->top - 3], u->stack + u->top - 2, 2, op) < 0) return -1;
      u->top -= 2;
      break;
    case 'u': /* SETITEMS */
      if (pop_mark(u, op, &first) < 0) return -1;
      if (first <= frame_base(u)) return fail(u, "the pickle is malformed: SETITEMS has no dict");
      if (set_items(u, u->stack[first - 1], u->stack + first, u->top - first, op) < 0) return -1;
      u->top = first;
      break;
    case 'q': if (take(u, 1, &p) < 0 || memo_put(u, p[0]) < 0) return -1; break;
    case 'r': if (take(u, 4, &p) < 0 || memo_put(u, little_endian(p, 4)) < 0) return -1; break;
    case 0x94: if (memo_put(u, u->memo_len) < 0) return -1; break; /* MEMOIZE */
    case 'h': if (take(u, 1, &p) < 0 || memo_get(u, p[0]) < 0) return -1; break;
    case 'j': if (take(u, 4, &p) < 0 || memo_get(u, little_endian(p, 4)) < 0) return -1; break;
    case 'c': if (read_global(u) < 0) return -1; break;
    case 0x93: /* STACK_GLOBAL: module and name from the stack */
      if (!(w = pop(u, op)) || !(v = pop(u, op))) return -1;
      if (!is_plain(v, NN_PT_STRING) || !is_plain(w, NN_PT_STRING))
        return fail(u, "the pickle is malformed: STACK_GLOBAL takes two strings");
      if (push_global(u, v->bytes, v->len, w->bytes, w->len) < 0) return -1;
      break;
    case 'Q': if (persistent_load(u) < 0) return -1; break;
    case 'R': if (reduce(u) < 0) return -1; break;
    case 'b': /* BUILD: an OrderedDict's attributes, such as a state_dict's _metadata */
      if (!(v = pop(u, op)) || !(w = peek(u, op))) return -1;
      if (!is_plain(w, NN_PT_DICT) || !w->ordered)
        return fail(u, "the pickle sets the state of %s; only an OrderedDict's is read (BUILD refused)",
                    kind_name(w));
      if (is_plain(v, NN_PT_NONE)) break;
      if (!is_plain(v, NN_PT_DICT))
        return fail(u, "the pickle sets an OrderedDict's state to %s, not a dict", kind_name(v));
      w->state = v;
      break;
    default:
      return refuse(u, op);
    }
  }
}

/* The result, depth first without recursion: no cycle, no deeper than
   MAX_DEPTH, and nothing but data in it. */
static int check_result(unpickler *u) {
  enum { UNSEEN, OPEN, DONE };
  typedef struct { nn_pt_value *v; int64_t next; } frame;
  frame *path = malloc((MAX_DEPTH + 2) * sizeof *path);
  if (!path) return fail(u, "out of memory");
  int depth = 0, rc = 0;
  path[0] = (frame){u->file->root, 0};
  ((node *)u->file->root)->visit = OPEN;
  while (depth >= 0 && rc == 0) {
    frame *f = &path[depth];
    node *n = (node *)f->v;
    if (n->special) {
      rc = fail(u, "the pickle's value holds %s itself, not data", kind_name(f->v));
      break;
    }
    int64_t children = f->v->kind == NN_PT_DICT ? 2 * f->v->count + 1
                       : f->v->kind == NN_PT_LIST || f->v->kind == NN_PT_TUPLE ? f->v->count : 0;
    if (f->next >= children) {
      n->visit = DONE;
      depth--;
      continue;
    }
    int64_t k = f->next++;
    nn_pt_value *child = k < (f->v->kind == NN_PT_DICT ? 2 * f->v->count : children) ? f->v->items[k]
                                                                                     : f->v->state;
    if (!child) continue;
    node *c = (node *)child;
    if (c->visit == OPEN) rc = fail(u, "the pickle's value contains itself (%s inside itself)", kind_name(child));
    else if (c->visit == UNSEEN && depth + 1 >= MAX_DEPTH)
      rc = fail(u, "the pickle's value is nested deeper than %d levels", MAX_DEPTH);
    else if (c->visit == UNSEEN) {
      c->visit = OPEN;
      path[++depth] = (frame){child, 0};
    }
  }
  free(path);
  return rc;
}

/* ==== the file ========================================================= */

int nn_file_kind(const char *path) {
  uint64_t size;
  int fd = nn_file_open_regular("load", path, &size);
  if (fd < 0) return -1;
  unsigned char head[4] = {0};
  int rc = size >= 4 ? nn_file_read_at(fd, head, 4, 0, path) : 0;
  close(fd);
  if (rc < 0) return -1;
  if (size >= 4 && head[0] == 'P' && head[1] == 'K' && ((head[2] == 3 && head[3] == 4) ||
                                                         (head[2] == 5 && head[3] == 6)))
    return NN_FILE_ZIP;
  if (size >= 2 && head[0] == 0x80 && head[1] >= 2 && head[1] <= 5) return NN_FILE_PICKLE;
  return NN_FILE_OTHER;
}

void nn_pt_close(nn_pt_file *f) {
  if (!f) return;
  for (size_t i = 0; i < f->node_count; i++) {
    node *n = f->nodes[i];
    free(n->v.items);
    free(n->owned);
    nn_release(n->v.tensor);
    free(n);
  }
  for (size_t i = 0; i < f->storage_count; i++) {
    free(f->storages[i].key);
    nn_storage_release(f->storages[i].storage);
  }
  free(f->nodes);
  free(f->storages);
  free(f->storage_slots);
  free(f->pickle);
  free(f);
}

const nn_pt_value *nn_pt_root(const nn_pt_file *f) { return f->root; }

/* A small record (version, byteorder) as text, NUL-terminated; "" when absent. */
static int read_small(unpickler *u, const char *record, char *out, size_t cap) {
  char name[300];
  snprintf(name, sizeof name, "%s%s", u->prefix, record);
  const nn_zip_entry *e = nn_zip_find(u->zip, name);
  out[0] = 0;
  if (!e) return 0;
  if (e->size >= cap) return fail(u, "its record '%s' is %llu bytes long", name, (unsigned long long)e->size);
  if (nn_zip_read(u->zip, e, out) < 0) return -1;
  out[e->size] = 0;
  return 0;
}

/* The records' directory: that of the first entry, as PyTorch's reader
   takes it ("archive/" since PyTorch 2, the file's own name before). */
static int find_prefix(unpickler *u) {
  const nn_zip_entry *first = NULL;
  for (int64_t i = 0; i < u->zip->count; i++)
    if (!first || u->zip->entries[i].header < first->header) first = &u->zip->entries[i];
  const char *slash = first ? strchr(first->name, '/') : NULL;
  if (!slash || (size_t)(slash - first->name) + 2 > sizeof u->prefix)
    return fail(u, "not a torch.save file: its first entry is not in a directory");
  size_t n = (size_t)(slash - first->name) + 1;
  memcpy(u->prefix, first->name, n);
  u->prefix[n] = 0;
  return 0;
}

nn_pt_file *nn_pt_read(const char *path) {
  nn_file_remove_stale_temps(path);
  unpickler u = {.path = path};
  nn_zip_reader zip;
  if (!nn_file_host_is_little_endian()) {
    nn_error_set("load: %s: torch.save data is little-endian; this host is not", path);
    return NULL;
  }
  if (nn_zip_open(&zip, path) < 0) return NULL;
  u.zip = &zip;
  if (!(u.file = calloc(1, sizeof *u.file))) {
    fail(&u, "out of memory");
    goto fail;
  }
  if (find_prefix(&u) < 0) goto fail;
  char text[64];
  if (read_small(&u, "byteorder", text, sizeof text) < 0) goto fail;
  if (text[0] && strcmp(text, "little") != 0) {
    if (strcmp(text, "big") == 0) fail(&u, "it was written on a big-endian machine; only little-endian data is read");
    else fail(&u, "its byteorder record says neither 'little' nor 'big'");
    goto fail;
  }
  if (read_small(&u, "version", text, sizeof text) < 0) goto fail;
  char pkl[300];
  snprintf(pkl, sizeof pkl, "%sdata.pkl", u.prefix);
  const nn_zip_entry *e = nn_zip_find(&zip, pkl);
  if (!e) {
    fail(&u, "not a torch.save file: it has no %s", pkl);
    goto fail;
  }
  if (e->size > MAX_PICKLE) {
    fail(&u, "its pickle is %llu bytes, more than a tensor file's", (unsigned long long)e->size);
    goto fail;
  }
  if (!(u.file->pickle = malloc(e->size > 0 ? (size_t)e->size : 1))) {
    fail(&u, "out of memory");
    goto fail;
  }
  if (nn_zip_read(&zip, e, u.file->pickle) < 0) goto fail;
  u.start = u.at = u.file->pickle;
  u.end = u.at + e->size;
  if (run(&u) < 0 || check_result(&u) < 0) goto fail;
  free(u.stack), free(u.marks), free(u.memo);
  nn_zip_close(&zip);
  return u.file;
fail:
  free(u.stack), free(u.marks), free(u.memo);
  nn_zip_close(&zip);
  nn_pt_close(u.file);
  return NULL;
}

/* ==== writing ========================================================== */

int nn_pt_write_zip(const char *path, const void *pickle, size_t pickle_len,
                    const nn_pt_storage *storages, int64_t n, int force_zip64) {
  if (!nn_file_host_is_little_endian()) {
    nn_error_set("save: torch.save data is little-endian; this host is not");
    return -1;
  }
  for (int64_t i = 0; i < n; i++) {
    const nn_pt_storage *s = &storages[i];
    size_t esize = s->tensor ? nn_element_size(s->tensor->dtype) : 1;
    if (!s->tensor || s->first < 0 || s->count < 0 ||
        (uint64_t)s->first + (uint64_t)s->count > s->tensor->storage->nbytes / esize) {
      nn_error_set("save: storage %lld: elements %lld..+%lld lie outside the tensor's storage",
                   (long long)i, (long long)s->first, (long long)s->count);
      return -1;
    }
  }
  nn_zip_writer *w = nn_zip_writer_open("save", path, force_zip64);
  if (!w) return -1;
  if (nn_zip_writer_add(w, "archive/data.pkl", pickle, pickle_len) < 0 ||
      nn_zip_writer_add(w, "archive/byteorder", "little", 6) < 0)
    goto fail;
  for (int64_t i = 0; i < n; i++) {
    const nn_pt_storage *s = &storages[i];
    nn_tensor *t = s->tensor, *host = NULL;
    size_t esize = nn_element_size(t->dtype);
    const void *data = (const char *)t->storage->data + (size_t)s->first * esize;
    if (t->device != NN_CPU) {
      int64_t one = 1;
      nn_tensor *view = nn_tensor_wrap(t->storage, t->dtype, 1, &s->count, &one, s->first);
      host = view ? nn_to_device(view, NN_CPU) : NULL;
      nn_release(view);
      if (!host) goto fail;
      data = nn_data(host);
    }
    char name[64];
    snprintf(name, sizeof name, "archive/data/%lld", (long long)i);
    int rc = nn_zip_writer_add(w, name, data, (uint64_t)s->count * esize);
    nn_release(host);
    if (rc < 0) goto fail;
  }
  if (nn_zip_writer_add(w, "archive/version", "3\n", 2) < 0) goto fail;
  return nn_zip_writer_finish(w);
fail:
  nn_zip_writer_abandon(w);
  return -1;
}

int nn_pt_write(const char *path, const void *pickle, size_t pickle_len,
                const nn_pt_storage *storages, int64_t n) {
  return nn_pt_write_zip(path, pickle, pickle_len, storages, n, 0);
}

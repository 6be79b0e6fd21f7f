/* zip.c: the ZIP container of PyTorch's files (torch.save since 1.6), read
 * and written as PKWARE's APPNOTE.TXT (6.3) describes it.
 *
 * Reading trusts nothing: the central directory is found from the end of
 * the file, every entry must be stored (torch.save never compresses, so
 * no decompression is ever done and a "zip bomb" has nothing to expand),
 * lie inside the file and overlap no other entry (so that the entries
 * together never hold more bytes than the file), and its bytes must match
 * their CRC-32 when read. ZIP64 records are read where sizes or offsets
 * need them.
 *
 * Writing is atomic (files.h): a file is the old one or the whole new one. */
#include <stdio.h>
#include <unistd.h>
#include <zlib.h>

#include "files.h"
#include "internal.h"
#include "zip.h"

#define SIG_LOCAL 0x04034b50u
#define SIG_CENTRAL 0x02014b50u
#define SIG_END 0x06054b50u
#define SIG_END64 0x06064b50u
#define SIG_LOCATOR64 0x07064b50u
#define LOCAL_SIZE 30
#define CENTRAL_SIZE 46
#define END_SIZE 22
#define END64_SIZE 56
#define LOCATOR64_SIZE 20
#define MAX_COMMENT 65535
#define ZIP64_EXTRA 0x0001
#define U32_FULL 0xffffffffu
#define U16_FULL 0xffffu

static uint16_t le16(const unsigned char *p) { return (uint16_t)(p[0] | p[1] << 8); }
static uint32_t le32(const unsigned char *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static uint64_t le64(const unsigned char *p) { return le32(p) | (uint64_t)le32(p + 4) << 32; }

/* "load: path: message", -1 */
#define zip_fail(z, ...) nn_file_fail((z)->path, __VA_ARGS__)

/* CRC-32 of len bytes, in pieces that zlib's unsigned int can count. */
static uint32_t crc_of(const void *data, uint64_t len) {
  const unsigned char *p = data;
  uLong crc = crc32(0L, Z_NULL, 0);
  while (len > 0) {
    uInt piece = len > (1u << 30) ? (1u << 30) : (uInt)len;
    crc = crc32(crc, p, piece);
    p += piece, len -= piece;
  }
  return (uint32_t)crc;
}

/* ==== reading ========================================================== */

/* The end of central directory record (and its ZIP64 twin when there is
   one): where the central directory starts, how long it is, how many
   entries it holds, and where the directory must end. */
static int find_directory(nn_zip_reader *z, uint64_t *cd_offset, uint64_t *cd_size,
                          uint64_t *count, uint64_t *cd_limit) {
  if (z->file_size < END_SIZE)
    return zip_fail(z, "not a ZIP file: %llu bytes, fewer than its end record's %d",
                    (unsigned long long)z->file_size, END_SIZE);
  uint64_t tail_len = z->file_size < END_SIZE + MAX_COMMENT ? z->file_size : END_SIZE + MAX_COMMENT;
  uint64_t tail_at = z->file_size - tail_len;
  unsigned char *tail = malloc((size_t)tail_len);
  if (!tail) return zip_fail(z, "out of memory");
  if (nn_file_read_at(z->fd, tail, (size_t)tail_len, tail_at, z->path) < 0) {
    free(tail);
    return -1;
  }
  /* the last signature whose comment runs exactly to the end of the file */
  int64_t at = -1;
  for (int64_t i = (int64_t)tail_len - END_SIZE; i >= 0; i--) {
    const unsigned char *p = tail + i;
    if (le32(p) == SIG_END && (uint64_t)i + END_SIZE + le16(p + 20) == tail_len) {
      at = i;
      break;
    }
  }
  if (at < 0) {
    free(tail);
    return zip_fail(z, "not a ZIP file, or a truncated one: it has no end of central directory record");
  }
  const unsigned char *end = tail + at;
  uint64_t end_at = tail_at + (uint64_t)at;
  unsigned disk = le16(end + 4), cd_disk = le16(end + 6);
  uint64_t on_disk = le16(end + 8);
  *count = le16(end + 10);
  *cd_size = le32(end + 12);
  *cd_offset = le32(end + 16);
  *cd_limit = end_at;
  free(tail);
  if (end_at >= LOCATOR64_SIZE) {
    unsigned char loc[LOCATOR64_SIZE];
    if (nn_file_read_at(z->fd, loc, sizeof loc, end_at - LOCATOR64_SIZE, z->path) < 0) return -1;
    if (le32(loc) == SIG_LOCATOR64) {
      uint64_t end64_at = le64(loc + 8);
      if (le32(loc + 4) != 0 || le32(loc + 16) > 1)
        return zip_fail(z, "a ZIP file split across several disks is not supported");
      if (end64_at > end_at - LOCATOR64_SIZE || end_at - LOCATOR64_SIZE - end64_at < END64_SIZE)
        return zip_fail(z, "its ZIP64 end record lies outside the file");
      unsigned char e64[END64_SIZE];
      if (nn_file_read_at(z->fd, e64, sizeof e64, end64_at, z->path) < 0) return -1;
      if (le32(e64) != SIG_END64) return zip_fail(z, "its ZIP64 end record is damaged");
      disk = le32(e64 + 16), cd_disk = le32(e64 + 20);
      on_disk = le64(e64 + 24);
      *count = le64(e64 + 32);
      *cd_size = le64(e64 + 40);
      *cd_offset = le64(e64 + 48);
      *cd_limit = end64_at;
    } else if (*count == U16_FULL || *cd_size == U32_FULL || *cd_offset == U32_FULL) {
      return zip_fail(z, "its end record calls for ZIP64 records that are missing");
    }
  }
  if (disk != 0 || cd_disk != 0 || on_disk != *count)
    return zip_fail(z, "a ZIP file split across several disks is not supported");
  if (*cd_offset > *cd_limit || *cd_size > *cd_limit - *cd_offset)
    return zip_fail(z, "its central directory (%llu bytes at %llu) lies outside the file",
                    (unsigned long long)*cd_size, (unsigned long long)*cd_offset);
  if (*count > *cd_size / CENTRAL_SIZE)
    return zip_fail(z, "its end record claims %llu entries, more than a central directory of "
                    "%llu bytes holds", (unsigned long long)*count, (unsigned long long)*cd_size);
  return 0;
}

/* The ZIP64 extended information of a central directory entry: the fields
   whose 32-bit values are full, as 64-bit values, in this order. */
static int read_zip64_extra(nn_zip_reader *z, const char *name, const unsigned char *extra,
                            size_t len, uint64_t *size, uint64_t *csize, uint64_t *offset) {
  while (len >= 4) {
    unsigned id = le16(extra), n = le16(extra + 2);
    if (n > len - 4) return zip_fail(z, "entry '%s' has a damaged extra field", name);
    if (id == ZIP64_EXTRA) {
      const unsigned char *p = extra + 4, *stop = p + n;
      uint64_t *fields[3] = {size, csize, offset};
      for (int k = 0; k < 3; k++) {
        if (*fields[k] != U32_FULL) continue;
        if (stop - p < 8) return zip_fail(z, "entry '%s' has a damaged ZIP64 field", name);
        *fields[k] = le64(p);
        p += 8;
      }
      return 0;
    }
    extra += 4 + n, len -= 4 + (size_t)n;
  }
  if (*size == U32_FULL || *csize == U32_FULL || *offset == U32_FULL)
    return zip_fail(z, "entry '%s' calls for a ZIP64 field it lacks", name);
  return 0;
}

static int by_header(const void *a, const void *b) {
  const nn_zip_entry *x = a, *y = b;
  return (x->header > y->header) - (x->header < y->header);
}

static int by_name(const void *a, const void *b) {
  return strcmp(((const nn_zip_entry *)a)->name, ((const nn_zip_entry *)b)->name);
}

static int parse_directory(nn_zip_reader *z, const unsigned char *cd, uint64_t cd_size,
                           uint64_t cd_offset) {
  const unsigned char *p = cd, *stop = cd + cd_size;
  for (int64_t i = 0; i < z->count; i++) {
    nn_zip_entry *e = &z->entries[i];
    if (stop - p < CENTRAL_SIZE || le32(p) != SIG_CENTRAL)
      return zip_fail(z, "its central directory is damaged at entry %lld", (long long)i + 1);
    unsigned flags = le16(p + 8), method = le16(p + 10);
    size_t name_len = le16(p + 28), extra_len = le16(p + 30), comment_len = le16(p + 32);
    if ((size_t)(stop - p - CENTRAL_SIZE) < name_len + extra_len + comment_len)
      return zip_fail(z, "its central directory is damaged at entry %lld", (long long)i + 1);
    if (name_len == 0 || memchr(p + CENTRAL_SIZE, 0, name_len))
      return zip_fail(z, "entry %lld has an empty or malformed name", (long long)i + 1);
    if (!(e->name = malloc(name_len + 1))) return zip_fail(z, "out of memory");
    memcpy(e->name, p + CENTRAL_SIZE, name_len);
    e->name[name_len] = 0;
    uint64_t csize = le32(p + 20);
    e->crc = le32(p + 16);
    e->size = le32(p + 24);
    e->header = le32(p + 42);
    if (read_zip64_extra(z, e->name, p + CENTRAL_SIZE + name_len, extra_len, &e->size, &csize,
                         &e->header) < 0)
      return -1;
    if (flags & 1) return zip_fail(z, "entry '%s' is encrypted", e->name);
    if (method != 0)
      return zip_fail(z, "entry '%s' is compressed (method %u); torch.save stores its entries "
                      "as they are, and only such entries are read", e->name, method);
    if (csize != e->size)
      return zip_fail(z, "entry '%s' is stored, yet its sizes differ (%llu and %llu bytes)", e->name,
                      (unsigned long long)csize, (unsigned long long)e->size);
    p += CENTRAL_SIZE + name_len + extra_len + comment_len;
  }
  /* every entry, its local header and data, must end before the next one
     starts (or the central directory): no two share a byte */
  qsort(z->entries, (size_t)z->count, sizeof *z->entries, by_header);
  for (int64_t i = 0; i < z->count; i++) {
    nn_zip_entry *e = &z->entries[i];
    e->limit = i + 1 < z->count ? z->entries[i + 1].header : cd_offset;
    uint64_t least = LOCAL_SIZE + strlen(e->name);
    if (e->header > e->limit || e->limit - e->header < least || e->limit - e->header - least < e->size)
      return zip_fail(z, "entry '%s' (%llu bytes at %llu) overlaps %s", e->name,
                      (unsigned long long)e->size, (unsigned long long)e->header,
                      i + 1 < z->count ? "the next entry" : "the central directory");
  }
  qsort(z->entries, (size_t)z->count, sizeof *z->entries, by_name);
  for (int64_t i = 1; i < z->count; i++)
    if (strcmp(z->entries[i - 1].name, z->entries[i].name) == 0)
      return zip_fail(z, "two entries are named '%s'", z->entries[i].name);
  return 0;
}

int nn_zip_open(nn_zip_reader *z, const char *path) {
  z->path = path, z->entries = NULL, z->count = 0;
  if ((z->fd = nn_file_open_regular("load", path, &z->file_size)) < 0) return -1;
  uint64_t cd_offset, cd_size, count, cd_limit;
  unsigned char *cd = NULL;
  if (find_directory(z, &cd_offset, &cd_size, &count, &cd_limit) < 0) goto fail;
  if (!(cd = malloc(cd_size > 0 ? (size_t)cd_size : 1)) ||
      !(z->entries = calloc(count > 0 ? (size_t)count : 1, sizeof *z->entries))) {
    zip_fail(z, "out of memory for a central directory of %llu bytes", (unsigned long long)cd_size);
    goto fail;
  }
  z->count = (int64_t)count;
  if (nn_file_read_at(z->fd, cd, (size_t)cd_size, cd_offset, path) < 0) goto fail;
  if (parse_directory(z, cd, cd_size, cd_offset) < 0) goto fail;
  free(cd);
  return 0;
fail:
  free(cd);
  nn_zip_close(z);
  return -1;
}

const nn_zip_entry *nn_zip_find(const nn_zip_reader *z, const char *name) {
  nn_zip_entry key = {.name = (char *)name};
  return z->count > 0 ? bsearch(&key, z->entries, (size_t)z->count, sizeof key, by_name) : NULL;
}

int nn_zip_read(const nn_zip_reader *z, const nn_zip_entry *e, void *buf) {
  unsigned char local[LOCAL_SIZE];
  if (nn_file_read_at(z->fd, local, sizeof local, e->header, z->path) < 0) return -1;
  size_t name_len = le16(local + 26), extra_len = le16(local + 28);
  if (le32(local) != SIG_LOCAL || name_len != strlen(e->name))
    return zip_fail(z, "the local header of entry '%s' is damaged", e->name);
  uint64_t data = e->header + LOCAL_SIZE + name_len + extra_len;
  if (data > e->limit || e->limit - data < e->size)
    return zip_fail(z, "the data of entry '%s' (%llu bytes) runs into the next entry", e->name,
                    (unsigned long long)e->size);
  char name[65536];
  if (nn_file_read_at(z->fd, name, name_len, e->header + LOCAL_SIZE, z->path) < 0) return -1;
  if (memcmp(name, e->name, name_len) != 0)
    return zip_fail(z, "the local header of entry '%s' names another", e->name);
  /* in pieces, each checked while it is still in the cache */
  uLong crc = crc32(0L, Z_NULL, 0);
  for (uint64_t done = 0; done < e->size;) {
    size_t piece = e->size - done > ((uint64_t)1 << 22) ? (size_t)1 << 22 : (size_t)(e->size - done);
    unsigned char *at = (unsigned char *)buf + done;
    if (nn_file_read_at(z->fd, at, piece, data + done, z->path) < 0) return -1;
    crc = crc32(crc, at, (uInt)piece);
    done += piece;
  }
  if ((uint32_t)crc != e->crc)
    return zip_fail(z, "entry '%s' is damaged: its CRC-32 is %08x, the directory says %08x", e->name,
                    (unsigned)crc, (unsigned)e->crc);
  return 0;
}

void nn_zip_close(nn_zip_reader *z) {
  if (z->entries)
    for (int64_t i = 0; i < z->count; i++) free(z->entries[i].name);
  free(z->entries);
  z->entries = NULL, z->count = 0;
  if (z->fd >= 0) close(z->fd);
  z->fd = -1;
}

/* ==== writing ========================================================== */

/* Data starts at a multiple of this, as in PyTorch's own files. */
#define ALIGNMENT 64
/* The extra field that pads a local header to that alignment: an ID no
   ZIP tool assigns a meaning to ("NN"), so readers skip it. */
#define PADDING_EXTRA 0x4e4e
/* 1980-01-01 00:00, the earliest MS-DOS date: a fixed time makes the same
   content give the same bytes. */
#define DOS_DATE 0x0021

typedef struct {
  char *name;
  uint64_t header, size;
  uint32_t crc;
} written_entry;

struct nn_zip_writer {
  nn_atomic_file *file;
  const char *op;
  uint64_t offset; /* bytes written so far */
  int force_zip64;
  written_entry *entries;
  size_t count, cap;
};

typedef struct {
  unsigned char bytes[128];
  size_t len;
} header_buffer;

static void put16(header_buffer *b, unsigned v) {
  b->bytes[b->len++] = (unsigned char)v;
  b->bytes[b->len++] = (unsigned char)(v >> 8);
}
static void put32(header_buffer *b, uint32_t v) {
  put16(b, v & 0xffff);
  put16(b, v >> 16);
}
static void put64(header_buffer *b, uint64_t v) {
  put32(b, (uint32_t)v);
  put32(b, (uint32_t)(v >> 32));
}

static int write_bytes(nn_zip_writer *w, const void *data, uint64_t len) {
  if (len > 0 && nn_atomic_file_write(w->file, data, (size_t)len) < 0) return -1;
  w->offset += len;
  return 0;
}

nn_zip_writer *nn_zip_writer_open(const char *op, const char *path, int force_zip64) {
  nn_zip_writer *w = calloc(1, sizeof *w);
  if (!w) {
    nn_error_set("%s: out of memory", op);
    return NULL;
  }
  w->op = op, w->force_zip64 = force_zip64;
  if (!(w->file = nn_atomic_file_open(op, path))) {
    free(w);
    return NULL;
  }
  return w;
}

int nn_zip_writer_add(nn_zip_writer *w, const char *name, const void *data, uint64_t len) {
  size_t name_len = strlen(name);
  if (name_len == 0 || name_len > 0xffff) {
    nn_error_set("%s: an entry name of %zu bytes", w->op, name_len);
    return -1;
  }
  if (w->count == w->cap) {
    size_t cap = w->cap ? 2 * w->cap : 16;
    written_entry *grown = realloc(w->entries, cap * sizeof *grown);
    if (!grown) {
      nn_error_set("%s: out of memory", w->op);
      return -1;
    }
    w->entries = grown, w->cap = cap;
  }
  written_entry *e = &w->entries[w->count];
  if (!(e->name = malloc(name_len + 1))) {
    nn_error_set("%s: out of memory", w->op);
    return -1;
  }
  memcpy(e->name, name, name_len + 1);
  w->count++;
  e->header = w->offset, e->size = len, e->crc = crc_of(data, len);
  int zip64 = w->force_zip64 || len >= U32_FULL;
  header_buffer h = {.len = 0};
  put32(&h, SIG_LOCAL);
  put16(&h, zip64 ? 45 : 20); /* version needed: 4.5 for ZIP64 */
  put16(&h, 0);               /* flags */
  put16(&h, 0);               /* stored */
  put16(&h, 0);               /* time */
  put16(&h, DOS_DATE);
  put32(&h, e->crc);
  put32(&h, zip64 ? U32_FULL : (uint32_t)len);
  put32(&h, zip64 ? U32_FULL : (uint32_t)len);
  put16(&h, (unsigned)name_len);
  size_t extra_at = h.len;
  put16(&h, 0); /* the extra fields' length, set below */
  header_buffer extra = {.len = 0};
  if (zip64) {
    put16(&extra, ZIP64_EXTRA);
    put16(&extra, 16);
    put64(&extra, len);
    put64(&extra, len);
  }
  uint64_t data_at = w->offset + LOCAL_SIZE + name_len + extra.len + 4;
  unsigned pad = (unsigned)((ALIGNMENT - data_at % ALIGNMENT) % ALIGNMENT);
  put16(&extra, PADDING_EXTRA);
  put16(&extra, pad);
  h.bytes[extra_at] = (unsigned char)((extra.len + pad) & 0xff);
  h.bytes[extra_at + 1] = (unsigned char)((extra.len + pad) >> 8);
  static const unsigned char zeros[ALIGNMENT];
  if (write_bytes(w, h.bytes, h.len) < 0 || write_bytes(w, name, name_len) < 0 ||
      write_bytes(w, extra.bytes, extra.len) < 0 || write_bytes(w, zeros, pad) < 0 ||
      write_bytes(w, data, len) < 0)
    return -1;
  return 0;
}

int nn_zip_writer_finish(nn_zip_writer *w) {
  uint64_t cd_offset = w->offset;
  int rc = -1;
  for (size_t i = 0; i < w->count; i++) {
    written_entry *e = &w->entries[i];
    int big_size = w->force_zip64 || e->size >= U32_FULL;
    int big_offset = w->force_zip64 || e->header >= U32_FULL;
    header_buffer h = {.len = 0}, extra = {.len = 0};
    if (big_size || big_offset) {
      put16(&extra, ZIP64_EXTRA);
      put16(&extra, (big_size ? 16 : 0) + (big_offset ? 8 : 0));
      if (big_size) put64(&extra, e->size), put64(&extra, e->size);
      if (big_offset) put64(&extra, e->header);
    }
    unsigned version = big_size || big_offset ? 45 : 20;
    size_t name_len = strlen(e->name);
    put32(&h, SIG_CENTRAL);
    put16(&h, version); /* made by: MS-DOS attributes, this version */
    put16(&h, version);
    put16(&h, 0);
    put16(&h, 0);
    put16(&h, 0);
    put16(&h, DOS_DATE);
    put32(&h, e->crc);
    put32(&h, big_size ? U32_FULL : (uint32_t)e->size);
    put32(&h, big_size ? U32_FULL : (uint32_t)e->size);
    put16(&h, (unsigned)name_len);
    put16(&h, (unsigned)extra.len);
    put16(&h, 0); /* comment */
    put16(&h, 0); /* disk */
    put16(&h, 0); /* internal attributes */
    put32(&h, 0); /* external attributes */
    put32(&h, big_offset ? U32_FULL : (uint32_t)e->header);
    if (write_bytes(w, h.bytes, h.len) < 0 || write_bytes(w, e->name, name_len) < 0 ||
        write_bytes(w, extra.bytes, extra.len) < 0)
      goto done;
  }
  uint64_t cd_size = w->offset - cd_offset, count = w->count;
  int zip64 = w->force_zip64 || count >= U16_FULL || cd_offset >= U32_FULL || cd_size >= U32_FULL;
  if (zip64) {
    uint64_t end64_at = w->offset;
    header_buffer h = {.len = 0};
    put32(&h, SIG_END64);
    put64(&h, END64_SIZE - 12); /* the record's size after this field */
    put16(&h, 45);
    put16(&h, 45);
    put32(&h, 0);
    put32(&h, 0);
    put64(&h, count);
    put64(&h, count);
    put64(&h, cd_size);
    put64(&h, cd_offset);
    put32(&h, SIG_LOCATOR64);
    put32(&h, 0);
    put64(&h, end64_at);
    put32(&h, 1);
    if (write_bytes(w, h.bytes, h.len) < 0) goto done;
  }
  header_buffer h = {.len = 0};
  put32(&h, SIG_END);
  put16(&h, 0);
  put16(&h, 0);
  put16(&h, zip64 ? U16_FULL : (unsigned)count);
  put16(&h, zip64 ? U16_FULL : (unsigned)count);
  put32(&h, zip64 ? U32_FULL : (uint32_t)cd_size);
  put32(&h, zip64 ? U32_FULL : (uint32_t)cd_offset);
  put16(&h, 0);
  if (write_bytes(w, h.bytes, h.len) < 0) goto done;
  rc = nn_atomic_file_commit(w->file);
  w->file = NULL;
done:
  if (w->file) nn_atomic_file_abandon(w->file);
  w->file = NULL;
  nn_zip_writer_abandon(w);
  return rc;
}

void nn_zip_writer_abandon(nn_zip_writer *w) {
  if (!w) return;
  if (w->file) nn_atomic_file_abandon(w->file);
  for (size_t i = 0; i < w->count; i++) free(w->entries[i].name);
  free(w->entries);
  free(w);
}

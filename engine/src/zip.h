/* zip.h: the ZIP container of PyTorch's files (zip.c), as much of the
 * format (PKWARE's APPNOTE.TXT, 6.3) as torch.save writes: stored entries,
 * ZIP64 for large ones. */
#ifndef NN_ZIP_H
#define NN_ZIP_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
  char *name;           /* NUL-terminated */
  uint64_t header;      /* where its local header starts */
  uint64_t size;        /* its bytes, stored as they are */
  uint64_t limit;       /* where the next entry (or the central directory) starts */
  uint32_t crc;
} nn_zip_entry;

typedef struct {
  int fd;
  const char *path; /* for messages; not owned */
  uint64_t file_size;
  nn_zip_entry *entries; /* sorted by name */
  int64_t count;
} nn_zip_reader;

/* Reads the central directory of path and checks every entry against the
   file: stored (not compressed, not encrypted), inside the file, no two
   overlapping. -1 with "load: path: ..." otherwise. */
int nn_zip_open(nn_zip_reader *z, const char *path);
/* The entry of that exact name, or NULL. */
const nn_zip_entry *nn_zip_find(const nn_zip_reader *z, const char *name);
/* Reads an entry's e->size bytes into buf and checks their CRC-32. */
int nn_zip_read(const nn_zip_reader *z, const nn_zip_entry *e, void *buf);
void nn_zip_close(nn_zip_reader *z);

/* A new ZIP file written atomically (op names the operation in messages):
   each entry stored, its data aligned to 64 bytes (so that it can be
   mapped), ZIP64 where a size or an offset needs it (or everywhere when
   force_zip64, for the tests). */
typedef struct nn_zip_writer nn_zip_writer;
nn_zip_writer *nn_zip_writer_open(const char *op, const char *path, int force_zip64);
int nn_zip_writer_add(nn_zip_writer *w, const char *name, const void *data, uint64_t len);
/* Writes the central directory and puts the file in place; frees w. */
int nn_zip_writer_finish(nn_zip_writer *w);
/* Gives up: the target is untouched; frees w. */
void nn_zip_writer_abandon(nn_zip_writer *w);

#endif

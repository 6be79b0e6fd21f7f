/* files.h: io.c's file handling, shared with the other readers and writers
 * of the engine (zip.c, torch_file.c): regular files only, reads that
 * never go past what a file holds, atomic writes. */
#ifndef NN_FILES_H
#define NN_FILES_H

#include <stddef.h>
#include <stdint.h>

/* Opens path for reading if it is a regular file (never waits on a FIFO);
   -1 with "op: ..." otherwise. *file_size is its size. */
int nn_file_open_regular(const char *op, const char *path, uint64_t *file_size);
/* Reads exactly len bytes at offset; -1 with "load: cannot read path: ...". */
int nn_file_read_at(int fd, void *buf, size_t len, uint64_t offset, const char *path);
/* Sets the error "load: path: message" (message formatted as printf's);
   returns -1, for a reader to return it. */
int nn_file_fail(const char *path, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
/* Removes the temporary files that killed saves of path left behind. */
void nn_file_remove_stale_temps(const char *path);

/* A file written whole or not at all: a temporary file beside path,
   renamed over it by commit. op names the operation in messages. Commit
   and abandon free the handle; after a failed write, abandon it. */
typedef struct nn_atomic_file nn_atomic_file;
nn_atomic_file *nn_atomic_file_open(const char *op, const char *path);
int nn_atomic_file_write(nn_atomic_file *f, const void *data, size_t len);
int nn_atomic_file_commit(nn_atomic_file *f);
void nn_atomic_file_abandon(nn_atomic_file *f);

/* Whether multi-byte numbers are stored little-endian here, as the file
   formats read and write them (the copies are plain memcpy). */
int nn_file_host_is_little_endian(void);


#endif

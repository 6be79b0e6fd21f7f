/* io.c: the byte-level work behind nn.data and nn.save/nn.load.
 *
 *  - IDX files (the MNIST format, LeCun et al., yann.lecun.com/exdb/mnist),
 *    plain or gzip-compressed (zlib's gzread reads both), into tensors.
 *  - The data loader's row gather and its seeded permutation.
 *  - safetensors (github.com/huggingface/safetensors, its README's "Format"):
 *    the 8-byte header length, the checks of every entry's dtype, shape and
 *    data_offsets against the file before any byte is copied, and the copies.
 *    The JSON header itself is parsed by the caller (lua/nn/serialize.lua);
 *    this file trusts nothing it is handed from it either.
 *  - Atomic file writes: a temporary file in the same directory, written
 *    whole, fsync'ed, renamed over the target, and the directory fsync'ed,
 *    so that the target is either the old file or the whole new one. A
 *    symbolic link is followed (the file it leads to is replaced); any
 *    other target but a regular file is refused. The temporary files of
 *    writers killed outright are removed by the next write or load.
 *  - Only regular files are read: a FIFO or a device is refused at once,
 *    never waited on.
 *
 * Every failure leaves a message "op: cause" in nn_error() and returns
 * NULL or -1; nothing here aborts or reads past what a file holds. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>
#include <zlib.h>

#include "files.h"
#include "internal.h"

#include <stddef.h>

/* Multi-byte data here is little-endian on disk (safetensors); the copies
   below are plain memcpy, so the host must be too. */
static int host_is_little_endian(void) {
  const uint16_t one = 1;
  unsigned char first;
  memcpy(&first, &one, 1);
  return first == 1;
}

/* ==== opening files ==================================================== */

/* What kind of thing a file that is not a regular one is, for messages. */
static const char *file_kind(mode_t mode) {
  if (S_ISDIR(mode)) return "a directory";
  if (S_ISFIFO(mode)) return "a FIFO";
  if (S_ISCHR(mode)) return "a character device";
  if (S_ISBLK(mode)) return "a block device";
  if (S_ISSOCK(mode)) return "a socket";
  if (S_ISLNK(mode)) return "a symbolic link";
  return "not a regular file";
}

/* Opens path for reading if it is a regular file; -1 with "op: ..." if it
   is anything else. O_NONBLOCK makes the open itself return at once where
   a plain one would wait (a FIFO without a writer), and the check is made
   on what was opened, so nothing can be swapped in between; O_NOCTTY keeps
   a terminal named by mistake from becoming ours. */
static int open_regular(const char *op, const char *path, uint64_t *file_size) {
  int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
  if (fd < 0) {
    nn_error_set("%s: cannot open %s: %s", op, path, strerror(errno));
    return -1;
  }
  struct stat st;
  if (fstat(fd, &st) < 0) {
    nn_error_set("%s: cannot open %s: %s", op, path, strerror(errno));
    close(fd);
    return -1;
  }
  if (!S_ISREG(st.st_mode)) {
    nn_error_set("%s: %s is %s, not a regular file", op, path, file_kind(st.st_mode));
    close(fd);
    return -1;
  }
  int flags = fcntl(fd, F_GETFL);
  if (flags < 0 || fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) < 0) {
    nn_error_set("%s: cannot open %s: %s", op, path, strerror(errno));
    close(fd);
    return -1;
  }
  *file_size = (uint64_t)st.st_size;
  return fd;
}

/* ==== IDX ============================================================== */

/* Reads exactly len bytes; returns the count read (short at end of file)
   or -1 on a read or decompression error (message set). */
static int64_t gz_read_all(gzFile gz, void *buf, size_t len, const char *path) {
  size_t done = 0;
  while (done < len) {
    size_t chunk = len - done > (1u << 30) ? (1u << 30) : len - done;
    int got = gzread(gz, (char *)buf + done, (unsigned)chunk);
    if (got < 0) {
      int code;
      const char *msg = gzerror(gz, &code);
      nn_error_set("idx: %s: cannot read: %s", path,
                   code == Z_ERRNO ? strerror(errno) : msg);
      return -1;
    }
    if (got == 0) {
      int code;
      const char *msg = gzerror(gz, &code);
      /* a gzip stream cut short reads as an early end with Z_BUF_ERROR */
      if (code != Z_OK && code != Z_BUF_ERROR) {
        nn_error_set("idx: %s: cannot read: %s", path, msg);
        return -1;
      }
      break;
    }
    done += (size_t)got;
  }
  return (int64_t)done;
}

static uint32_t big_endian_u32(const unsigned char *p) {
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

/* One element of IDX type code at p (big-endian), as a double. */
static double idx_element(int code, const unsigned char *p) {
  switch (code) {
  case 0x08: return p[0];
  case 0x09: return (signed char)p[0];
  case 0x0B: return (int16_t)(uint16_t)((unsigned)p[0] << 8 | p[1]);
  case 0x0C: return (int32_t)big_endian_u32(p);
  case 0x0D: {
    uint32_t bits = big_endian_u32(p);
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
  }
  default: {
    uint64_t bits = (uint64_t)big_endian_u32(p) << 32 | big_endian_u32(p + 4);
    double d;
    memcpy(&d, &bits, sizeof d);
    return d;
  }
  }
}

/* The tensor an IDX read fills: room for cap of the file's n elements,
   with the file's shape once cap reaches n (1-D until then); the first
   filled elements of old (if any) are carried over and old released. */
static nn_tensor *idx_room(nn_tensor *old, int64_t filled, int64_t cap, nn_dtype dtype, int ndim,
                           const int64_t *size, int64_t n) {
  nn_tensor *t = cap == n ? nn_empty(dtype, ndim, size) : nn_empty(dtype, 1, &cap);
  if (t && old) memcpy(nn_data(t), nn_data(old), (size_t)filled * nn_element_size(dtype));
  nn_release(old);
  return t;
}

nn_tensor *nn_read_idx(const char *path, int dtype, double scale) {
  uint64_t file_size;
  int fd = open_regular("idx", path, &file_size);
  if (fd < 0) return NULL;
  gzFile gz = gzdopen(fd, "rb"); /* owns fd from here: gzclose closes it */
  if (!gz) {
    nn_error_set("idx: out of memory opening %s", path);
    close(fd);
    return NULL;
  }
  gzbuffer(gz, 1 << 17);
  nn_tensor *out = NULL;
  unsigned char *raw = NULL;
  unsigned char head[4 + 4 * NN_MAX_DIMS];
  int64_t got = gz_read_all(gz, head, 4, path);
  if (got < 0) goto done;
  if (got < 4) {
    nn_error_set("idx: %s is truncated: %lld bytes, shorter than the 4-byte magic number", path,
                 (long long)got);
    goto done;
  }
  int code = head[2], ndim = head[3];
  size_t elem;
  switch (code) {
  case 0x08: case 0x09: elem = 1; break;
  case 0x0B: elem = 2; break;
  case 0x0C: case 0x0D: elem = 4; break;
  case 0x0E: elem = 8; break;
  default: elem = 0; break;
  }
  if (head[0] != 0 || head[1] != 0 || elem == 0 || ndim < 1) {
    nn_error_set("idx: %s: bad magic number 0x%02x%02x%02x%02x (an IDX file starts with two zero "
                 "bytes, a type code 0x08, 0x09, 0x0B, 0x0C, 0x0D or 0x0E, and the number of dimensions)",
                 path, head[0], head[1], head[2], head[3]);
    goto done;
  }
  if (ndim > NN_MAX_DIMS) {
    nn_error_set("idx: %s has %d dimensions, at most %d are supported", path, ndim, NN_MAX_DIMS);
    goto done;
  }
  got = gz_read_all(gz, head + 4, 4 * (size_t)ndim, path);
  if (got < 0) goto done;
  if (got < 4 * ndim) {
    nn_error_set("idx: %s is truncated inside its header (%d dimensions)", path, ndim);
    goto done;
  }
  int64_t size[NN_MAX_DIMS];
  for (int d = 0; d < ndim; d++) size[d] = big_endian_u32(head + 4 + 4 * d);
  if (nn_check_shape("idx", ndim, size) < 0) goto done;
  int64_t n = nn_shape_numel(ndim, size);
  char shape[64];
  nn_sizes_string(ndim, size, shape, sizeof shape);
  /* Before allocating what the header asks for, check that the file can
     hold it: a plain file exactly, a compressed one by deflate's largest
     ratio (1032:1, zlib's FAQ), so that a corrupt size is an error, not an
     attempt at a huge allocation. */
  uint64_t want = (uint64_t)n * elem, head_bytes = 4 + 4 * (uint64_t)ndim;
  int direct = gzdirect(gz);
  if (direct && file_size != head_bytes + want) {
    if (file_size < head_bytes + want)
      nn_error_set("idx: %s is truncated: its header says %s, %lld elements of %zu bytes, the "
                   "data ends after %llu bytes", path, shape, (long long)n, elem,
                   (unsigned long long)(file_size - head_bytes));
    else
      nn_error_set("idx: %s holds more data than its header says (%s, %lld elements of %zu bytes)",
                   path, shape, (long long)n, elem);
    goto done;
  }
  if (!direct && want / 1032 > file_size + 1024) {
    nn_error_set("idx: %s is truncated: its header says %s, %lld elements of %zu bytes, more "
                 "than %llu compressed bytes can hold", path, shape, (long long)n, elem,
                 (unsigned long long)file_size);
    goto done;
  }
  if (dtype < 0) dtype = code == 0x0D ? NN_FLOAT32 : code == 0x0E ? NN_FLOAT64 : NN_INT64;
  if (dtype >= NN_DTYPE_COUNT) {
    nn_error_set("idx: unknown dtype code %d", dtype);
    goto done;
  }
  /* Room for every element at once for a plain file, whose size was just
     checked. A compressed file gets room ahead of its data for 16 times
     its own size at most (real IDX files compress 2 to 5 times, so they
     still get one allocation); beyond that the tensor grows as the data
     arrives, and a small file that claims a large shape costs little. */
  int64_t cap = n;
  if (!direct && (uint64_t)cap > file_size * 16 / elem + 4096)
    cap = (int64_t)(file_size * 16 / elem + 4096);
  if (!(out = idx_room(NULL, 0, cap, (nn_dtype)dtype, ndim, size, n))) goto done;
  /* the data is read in blocks, converted as it comes: a 47-million-byte
     image file never exists twice over in memory */
  const size_t max_block = (size_t)1 << 20;
  size_t block = 0;
  for (int64_t at = 0; at < n;) {
    if (at == cap) {
      cap = cap > n - cap ? n : 2 * cap;
      if (!(out = idx_room(out, at, cap, (nn_dtype)dtype, ndim, size, n))) goto done;
    }
    if (block < max_block && block < (size_t)cap) {
      size_t grown_block = (size_t)cap < max_block ? (size_t)cap : max_block;
      unsigned char *grown = realloc(raw, grown_block * elem);
      if (!grown) {
        nn_error_set("idx: out of memory reading %s", path);
        nn_release(out), out = NULL;
        goto done;
      }
      raw = grown, block = grown_block;
    }
    size_t count = (size_t)(cap - at) < block ? (size_t)(cap - at) : block;
    got = gz_read_all(gz, raw, count * elem, path);
    if (got < 0 || (size_t)got < count * elem) {
      if (got >= 0)
        nn_error_set("idx: %s is truncated: its header says %s, %lld elements of %zu bytes, the "
                     "data ends after %lld bytes", path, shape, (long long)n, elem,
                     (long long)(at * (int64_t)elem + got));
      nn_release(out), out = NULL;
      goto done;
    }
    void *dst = nn_data(out);
    if (code == 0x08 && dtype == NN_FLOAT32) { /* images: the common case, kept tight */
      float *o = (float *)dst + at;
      float s = (float)scale;
      for (size_t i = 0; i < count; i++) o[i] = (float)raw[i] * s;
    } else if (code == 0x08 && dtype == NN_UINT8 && scale == 1) { /* bytes as they are */
      memcpy((unsigned char *)dst + at, raw, count);
    } else if (code == 0x08 && dtype == NN_INT64 && scale == 1) {
      int64_t *o = (int64_t *)dst + at;
      for (size_t i = 0; i < count; i++) o[i] = raw[i];
    } else {
      for (size_t i = 0; i < count; i++)
        nn_store((nn_dtype)dtype, dst, at + (int64_t)i, idx_element(code, raw + i * elem) * scale);
    }
    at += (int64_t)count;
  }
  unsigned char extra;
  got = gz_read_all(gz, &extra, 1, path);
  if (got != 0) {
    if (got > 0)
      nn_error_set("idx: %s holds more data than its header says (%s, %lld elements of %zu bytes)",
                   path, shape, (long long)n, elem);
    nn_release(out), out = NULL;
  }
done:
  free(raw);
  gzclose(gz);
  return out;
}

/* ==== the data loader's gather and permutation ========================= */

/* Checks a gather and makes its batch tensor, not yet filled; *index is
   where the batch's row numbers start. */
static nn_tensor *gather_prepare(const nn_tensor *src, const nn_tensor *rows, int64_t start,
                                 int64_t count, const int64_t **index, const nn_backend **be) {
  if (!(*be = nn_dispatch("gather_rows", offsetof(nn_backend, gather_rows), src, rows, NULL)))
    return NULL;
  if (src->ndim < 1) {
    nn_error_set("gather_rows: the source has no rows (0 dimensions)");
    return NULL;
  }
  if (rows->dtype != NN_INT64 || rows->ndim != 1 || !nn_is_contiguous(rows)) {
    nn_error_set("gather_rows: the row indices must be a contiguous 1-D int64 tensor");
    return NULL;
  }
  if (start < 0 || count < 0 || start > rows->size[0] - count) {
    /* (start + count might not even fit an int64) */
    nn_error_set("gather_rows: %lld rows from index %lld are outside the %lld indices",
                 (long long)count, (long long)start, (long long)rows->size[0]);
    return NULL;
  }
  *index = (const int64_t *)nn_data(rows) + start;
  int64_t nrows = src->size[0];
  for (int64_t i = 0; i < count; i++) {
    if ((*index)[i] < 0 || (*index)[i] >= nrows) {
      nn_error_set("gather_rows: row %lld is outside the %lld rows", (long long)(*index)[i] + 1,
                   (long long)nrows);
      return NULL;
    }
  }
  int64_t size[NN_MAX_DIMS];
  memcpy(size, src->size, sizeof size);
  size[0] = count;
  return nn_empty_like_shape(src, src->dtype, src->ndim, size);
}

static size_t gather_row_bytes(const nn_tensor *src) {
  return (size_t)nn_shape_numel(src->ndim - 1, src->size + 1) * nn_element_size(src->dtype);
}

nn_tensor *nn_gather_rows(const nn_tensor *src, const nn_tensor *rows, int64_t start,
                          int64_t count) {
  const int64_t *index;
  const nn_backend *be;
  nn_tensor *out = gather_prepare(src, rows, start, count, &index, &be);
  if (!out) return NULL;
  if (nn_is_contiguous(src)) {
    if (be->gather_rows(nn_data(out), nn_data(src), index, count, gather_row_bytes(src)) < 0) {
      nn_release(out);
      return NULL;
    }
    return out;
  }
  /* a strided source: each selected row is copied through a view of it */
  for (int64_t i = 0; i < count; i++) {
    nn_tensor *from = nn_select((nn_tensor *)src, 0, index[i]);
    nn_tensor *to = from ? nn_select(out, 0, i) : NULL;
    int ok = to && nn_copy_(to, from) == 0;
    nn_release(from), nn_release(to);
    if (!ok) {
      nn_release(out);
      return NULL;
    }
  }
  return out;
}

/* ---- the prefetch thread ---------------------------------------------
   One worker per process copies the next batch's rows while the training
   step runs; the engine's own state (pools, graph) is only ever touched by
   the caller's thread.
   Two events outlive a plain detached thread, so the worker is joinable
   and tracked:
   - fork: only the forking thread survives in the child, so a job the
     worker had not finished would never finish there. The fork waits for
     the job in flight (there is at most one), and the child starts with no
     worker and fresh locks; it starts its own worker at its first job.
   - unloading: nn.so may be unmapped when its Lua state closes, taking the
     code and the condition variables the worker sleeps on with it; a signal
     that wakes it then restarts the wait on unmapped memory. The binding
     calls nn_prefetch_stop before that can happen. */
struct nn_gather_job {
  nn_tensor *out, *src, *rows; /* held until finish */
  const int64_t *index;
  int64_t count;
  size_t row_bytes;
  /* the backend's kernel: the rows of a contiguous source copied, memory
     only, no engine state, so it may run on the prefetch thread */
  int (*gather)(void *out, const void *src, const int64_t *rows, int64_t count, size_t row_bytes);
  int background; /* handed to the worker: done is then the worker's to set, under its lock */
  int done;
};

static struct {
  nn_worker_thread thread; /* its lock guards what follows */
  pthread_cond_t finished;
  nn_gather_job *queued;
} worker = {.thread = NN_WORKER_THREAD_INIT, .finished = PTHREAD_COND_INITIALIZER};

static void *worker_main(void *unused) {
  (void)unused;
  pthread_mutex_lock(&worker.thread.lock);
  for (;;) {
    while (!worker.queued && !worker.thread.stopping)
      pthread_cond_wait(&worker.thread.wake, &worker.thread.lock);
    if (!worker.queued) break; /* stopping, with nothing left to copy */
    nn_gather_job *job = worker.queued;
    pthread_mutex_unlock(&worker.thread.lock);
    job->gather(nn_data(job->out), nn_data(job->src), job->index, job->count, job->row_bytes);
    pthread_mutex_lock(&worker.thread.lock);
    job->done = 1;
    worker.queued = NULL;
    pthread_cond_broadcast(&worker.finished);
  }
  pthread_mutex_unlock(&worker.thread.lock);
  return NULL;
}

static void worker_before_fork(void) {
  pthread_mutex_lock(&worker.thread.lock);
  while (worker.queued) pthread_cond_wait(&worker.finished, &worker.thread.lock);
}

static void worker_after_fork_parent(void) { pthread_mutex_unlock(&worker.thread.lock); }

static void worker_after_fork_child(void) {
  nn_worker_thread_forget(&worker.thread);
  pthread_cond_init(&worker.finished, NULL);
  worker.queued = NULL;
}

/* 1 when this process's worker runs; 0 when it cannot (the caller then
   copies the rows itself). */
static int worker_ready(void) {
  return nn_worker_thread_start(&worker.thread, "nn-prefetch", worker_main, worker_before_fork,
                                worker_after_fork_parent, worker_after_fork_child) == 0;
}

void nn_prefetch_stop(void) { nn_worker_thread_stop(&worker.thread); }

nn_gather_job *nn_gather_rows_start(const nn_tensor *src, const nn_tensor *rows, int64_t start,
                                    int64_t count) {
  nn_gather_job *job = calloc(1, sizeof *job);
  if (!job) {
    nn_error_set("gather_rows: out of memory");
    return NULL;
  }
  if (!nn_is_contiguous(src)) { /* rare: done now, through views */
    if (!(job->out = nn_gather_rows(src, rows, start, count))) {
      free(job);
      return NULL;
    }
    job->done = 1;
    return job;
  }
  const nn_backend *be;
  if (!(job->out = gather_prepare(src, rows, start, count, &job->index, &be))) {
    free(job);
    return NULL;
  }
  job->gather = be->gather_rows;
  job->src = nn_retain((nn_tensor *)src);
  job->rows = nn_retain((nn_tensor *)rows);
  job->count = count;
  job->row_bytes = gather_row_bytes(src);
  int queued = 0;
  if (worker_ready()) {
    pthread_mutex_lock(&worker.thread.lock);
    if (!worker.queued) { /* one batch in flight; a second is copied here */
      worker.queued = job;
      job->background = 1;
      pthread_cond_signal(&worker.thread.wake);
      queued = 1;
    }
    pthread_mutex_unlock(&worker.thread.lock);
  }
  if (!queued) {
    job->gather(nn_data(job->out), nn_data(src), job->index, count, job->row_bytes);
    job->done = 1;
  }
  return job;
}

nn_tensor *nn_gather_rows_finish(nn_gather_job *job) {
  if (!job) return NULL;
  if (job->background) {
    pthread_mutex_lock(&worker.thread.lock);
    while (!job->done) pthread_cond_wait(&worker.finished, &worker.thread.lock);
    pthread_mutex_unlock(&worker.thread.lock);
  }
  nn_tensor *out = job->out;
  nn_release(job->src);
  nn_release(job->rows);
  free(job);
  return out;
}

nn_tensor *nn_gather_rows_reuse(nn_tensor *buf, const nn_tensor *src, const nn_tensor *rows,
                                int64_t start, int64_t count) {
  /* buf may be refilled only when nothing else can see it: one reference to
     the struct (the caller's) and to its storage (no view, no graph node's
     saved alias), no autograd. Otherwise a fresh tensor. */
  int reusable = buf && buf->refcount == 1 && buf->storage->refcount == 1 && !buf->requires_grad &&
                 !buf->grad_fn && buf->device == NN_CPU && buf->dtype == src->dtype &&
                 buf->ndim == src->ndim && buf->offset == 0 && nn_is_contiguous(buf) &&
                 src->ndim >= 1 && buf->size[0] == count &&
                 memcmp(buf->size + 1, src->size + 1, sizeof(int64_t) * (size_t)(src->ndim - 1)) == 0;
  if (!reusable) return nn_gather_rows(src, rows, start, count);
  if (!nn_is_contiguous(src)) return nn_gather_rows(src, rows, start, count);
  const nn_backend *be =
      nn_dispatch("gather_rows", offsetof(nn_backend, gather_rows), src, rows, buf);
  if (!be) return NULL;
  if (rows->dtype != NN_INT64 || rows->ndim != 1 || !nn_is_contiguous(rows) || start < 0 ||
      count < 0 || start > rows->size[0] - count)
    return nn_gather_rows(src, rows, start, count); /* for its error */
  const int64_t *index = (const int64_t *)nn_data(rows) + start;
  for (int64_t i = 0; i < count; i++)
    if (index[i] < 0 || index[i] >= src->size[0]) return nn_gather_rows(src, rows, start, count);
  if (be->gather_rows(nn_data(buf), nn_data(src), index, count, gather_row_bytes(src)) < 0)
    return NULL;
  nn_bump_version(buf); /* a graph that still saved it would notice */
  return nn_retain(buf);
}

/* splitmix64 (Steele, Lea and Flood, "Fast splittable pseudorandom number
   generators", OOPSLA 2014) seeds xoshiro256** (Blackman and Vigna,
   "Scrambled linear pseudorandom number generators", 2018). */
static uint64_t splitmix64(uint64_t *x) {
  uint64_t z = (*x += 0x9e3779b97f4a7c15u);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
  return z ^ (z >> 31);
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static uint64_t xoshiro_next(uint64_t s[4]) {
  uint64_t result = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
  s[2] ^= s[0], s[3] ^= s[1], s[1] ^= s[2], s[0] ^= s[3];
  s[2] ^= t;
  s[3] = rotl(s[3], 45);
  return result;
}

/* A uniform integer in [0, bound), without modulo bias (rejection). */
static uint64_t bounded(uint64_t s[4], uint64_t bound) {
  uint64_t limit = UINT64_MAX - UINT64_MAX % bound;
  uint64_t r;
  do r = xoshiro_next(s);
  while (r >= limit);
  return r % bound;
}

nn_tensor *nn_permutation(int64_t n, uint64_t seed, uint64_t stream) {
  if (n < 0) {
    nn_error_set("permutation: the length %lld is negative", (long long)n);
    return NULL;
  }
  nn_tensor *out = nn_empty(NN_INT64, 1, &n);
  if (!out) return NULL;
  int64_t *p = nn_data(out);
  for (int64_t i = 0; i < n; i++) p[i] = i;
  uint64_t s[4], x = seed ^ (stream * 0xd1342543de82ef95u);
  for (int k = 0; k < 4; k++) s[k] = splitmix64(&x);
  /* Fisher-Yates, from the end (Knuth, TAOCP vol. 2, Algorithm P) */
  for (int64_t i = n - 1; i > 0; i--) {
    int64_t j = (int64_t)bounded(s, (uint64_t)i + 1);
    int64_t tmp = p[i];
    p[i] = p[j], p[j] = tmp;
  }
  return out;
}

/* ==== atomic writes ==================================================== */

/* The directory part of path ("." when it has none), malloc'd. */
static char *directory_of(const char *path) {
  const char *slash = strrchr(path, '/');
  if (!slash) return strdup(".");
  if (slash == path) return strdup("/");
  size_t n = (size_t)(slash - path);
  char *dir = malloc(n + 1);
  if (dir) memcpy(dir, path, n), dir[n] = 0;
  return dir;
}

/* The file path names once symbolic links are followed (malloc'd); it need
   not exist (*exists says), and *st is its lstat when it does. NULL with
   "op: ..." for a loop of links or a path that cannot be looked at. */
static char *follow_links(const char *op, const char *path, struct stat *st, int *exists) {
  char *at = strdup(path);
  for (int hops = 0; at; hops++) {
    if (lstat(at, st) < 0) {
      if (errno == ENOENT) {
        *exists = 0;
        return at;
      }
      nn_error_set("%s: cannot reach %s: %s", op, at, strerror(errno));
      free(at);
      return NULL;
    }
    if (!S_ISLNK(st->st_mode)) {
      *exists = 1;
      return at;
    }
    char link[PATH_MAX];
    ssize_t n = hops < 40 ? readlink(at, link, sizeof link) : -1; /* 40: Linux's MAXSYMLINKS */
    if (n < 0 || (size_t)n == sizeof link) {
      nn_error_set("%s: cannot follow the symbolic link %s: %s", op, at,
                   hops < 40 && n < 0 ? strerror(errno) : "too many levels or too long");
      free(at);
      return NULL;
    }
    link[n] = 0;
    char *next, *dir = link[0] == '/' ? NULL : directory_of(at);
    if (link[0] == '/') {
      next = strdup(link);
    } else if ((next = dir ? malloc(strlen(dir) + (size_t)n + 2) : NULL)) {
      sprintf(next, "%s/%s", dir, link);
    }
    free(dir);
    free(at);
    at = next;
  }
  nn_error_set("%s: out of memory", op);
  return NULL;
}

/* ---- temporary files and their writers --------------------------------
   A temporary file is named <target>.tmp-<machine><boot>-<pid>-<start>-<n>,
   which says who wrote it: the machine (a hash of its host name and PID
   namespace: where that pid means that process), the boot (a hash of the
   kernel's boot id), the process (pid, and its start time in clock ticks
   since boot, which tells it from a later process given the same pid).
   A save killed outright (SIGKILL, the OOM killer, a power cut) cannot
   remove its file; the next save or load of the target does, once the
   name shows that its writer is gone. */
typedef struct {
  uint32_t machine, boot;
  long pid;
  unsigned long long start; /* 0 when unknown */
} writer_id;

/* FNV-1a (Fowler, Noll, Vo), 32 bits. */
static uint32_t fnv1a(uint32_t h, const char *s, size_t n) {
  for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 16777619u;
  return h;
}

/* Up to len - 1 bytes of a small file such as one of /proc's, NUL-ended;
   the count, 0 when it cannot be read. */
static size_t read_small_file(const char *path, char *buf, size_t len) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  ssize_t n = fd >= 0 ? read(fd, buf, len - 1) : -1;
  if (fd >= 0) close(fd);
  buf[n > 0 ? n : 0] = 0;
  return n > 0 ? (size_t)n : 0;
}

/* When the process pid started (/proc/<pid>/stat's 22nd field); 0 when
   that cannot be known. */
static unsigned long long process_start(long pid) {
  char path[64], stat_line[1024];
  snprintf(path, sizeof path, "/proc/%ld/stat", pid);
  if (!read_small_file(path, stat_line, sizeof stat_line)) return 0;
  const char *p = strrchr(stat_line, ')'); /* the command name may hold spaces and ')' */
  for (int field = 2; p && field < 22; field++) p = strchr(p + 1, ' ');
  return p ? strtoull(p + 1, NULL, 10) : 0;
}

static void writer_self(writer_id *w) {
  char text[256] = "";
  gethostname(text, sizeof text - 1);
  uint32_t h = fnv1a(2166136261u, text, strlen(text));
  ssize_t n = readlink("/proc/self/ns/pid", text, sizeof text);
  w->machine = fnv1a(h, text, n > 0 ? (size_t)n : 0);
  w->boot = fnv1a(2166136261u, text, read_small_file("/proc/sys/kernel/random/boot_id", text, sizeof text));
  w->pid = (long)getpid();
  w->start = process_start(w->pid);
}

/* Reads the writer from what follows ".tmp-" in a temporary file's name;
   0 when it is not such a name. */
static int parse_temp_name(const char *s, writer_id *w) {
  char tag[17];
  unsigned counter;
  int end = -1;
  if (sscanf(s, "%16[0-9a-f]-%ld-%llu-%u%n", tag, &w->pid, &w->start, &counter, &end) != 4 ||
      end < 0 || s[end] != 0 || strlen(tag) != 16 || w->pid <= 0 || w->pid > INT_MAX)
    return 0;
  w->boot = (uint32_t)strtoul(tag + 8, NULL, 16);
  tag[8] = 0;
  w->machine = (uint32_t)strtoul(tag, NULL, 16);
  return 1;
}

/* Whether the writer w is certainly gone. Another machine's writer may be
   alive (a shared file system): it is never taken for gone. */
static int writer_gone(const writer_id *self, const writer_id *w) {
  if (w->machine != self->machine) return 0;
  if (w->boot != self->boot) return 1;
  if (kill((pid_t)w->pid, 0) < 0 && errno == ESRCH) return 1;
  unsigned long long start = process_start(w->pid);
  return start != 0 && w->start != 0 && start != w->start;
}

/* Removes the temporary files of target whose writers are gone; a live
   writer's file stays. Best effort: it never fails a save or a load. */
static void remove_stale_temps(const char *target) {
  char *dir = directory_of(target);
  DIR *d = dir ? opendir(dir) : NULL;
  free(dir);
  if (!d) return;
  const char *slash = strrchr(target, '/');
  const char *base = slash ? slash + 1 : target;
  size_t base_len = strlen(base);
  writer_id self, w;
  writer_self(&self);
  struct dirent *ent;
  while ((ent = readdir(d))) {
    const char *name = ent->d_name;
    if (strncmp(name, base, base_len) != 0 || strncmp(name + base_len, ".tmp-", 5) != 0 ||
        !parse_temp_name(name + base_len + 5, &w) || !writer_gone(&self, &w))
      continue;
    struct stat st;
    if (fstatat(dirfd(d), name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode))
      unlinkat(dirfd(d), name, 0);
  }
  closedir(d);
}

typedef struct {
  const char *op;
  char *path; /* the file replaced: the target once links are followed, malloc'd */
  char *temp; /* the temporary file's name, malloc'd */
  int fd;
} atomic_file;

/* Opens a new temporary file beside the file path names; -1 with a
   message. A symbolic link is followed, so that the link stays and the
   file it leads to is replaced (as a plain write through it would do);
   anything but a regular file there (a device, a FIFO, a directory) is
   refused before anything is written. */
static int atomic_open(atomic_file *f, const char *op, const char *path) {
  static unsigned counter;
  f->op = op, f->fd = -1, f->temp = NULL;
  struct stat st;
  int exists;
  if (!(f->path = follow_links(op, path, &st, &exists))) return -1;
  if (exists && !S_ISREG(st.st_mode)) {
    if (strcmp(path, f->path) != 0)
      nn_error_set("%s: %s leads to %s, which is %s: a save replaces only a regular file", op,
                   path, f->path, file_kind(st.st_mode));
    else
      nn_error_set("%s: %s is %s: a save replaces only a regular file", op, path,
                   file_kind(st.st_mode));
    free(f->path), f->path = NULL;
    return -1;
  }
  remove_stale_temps(f->path);
  writer_id self;
  writer_self(&self);
  size_t len = strlen(f->path) + 96;
  if (!(f->temp = malloc(len))) {
    nn_error_set("%s: out of memory", op);
    free(f->path), f->path = NULL;
    return -1;
  }
  for (int attempt = 0; attempt < 100; attempt++) {
    snprintf(f->temp, len, "%s.tmp-%08x%08x-%ld-%llu-%u", f->path, (unsigned)self.machine,
             (unsigned)self.boot, self.pid, self.start, counter++);
    /* 0666 less the umask, as any new file; O_EXCL: never someone else's file */
    f->fd = open(f->temp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (f->fd >= 0) return 0;
    if (errno != EEXIST) break;
  }
  nn_error_set("%s: cannot create %s: %s", op, f->temp, strerror(errno));
  free(f->temp), f->temp = NULL;
  free(f->path), f->path = NULL;
  return -1;
}

static int atomic_write(atomic_file *f, const void *data, size_t len) {
  const char *p = data;
  while (len > 0) {
    ssize_t n = write(f->fd, p, len > ((size_t)1 << 30) ? ((size_t)1 << 30) : len);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      nn_error_set("%s: cannot write %s: %s", f->op, f->path, n < 0 ? strerror(errno) : "no progress");
      return -1;
    }
    p += n, len -= (size_t)n;
  }
  return 0;
}

/* Gives up: the temporary file goes, the target is untouched. */
static void atomic_abandon(atomic_file *f) {
  if (f->fd >= 0) close(f->fd);
  if (f->temp) unlink(f->temp);
  free(f->temp), free(f->path);
  f->fd = -1, f->temp = NULL, f->path = NULL;
}

/* Sync, close, rename over the target, sync the directory (so that the
   rename itself survives a crash). */
static int atomic_commit(atomic_file *f) {
  if (fsync(f->fd) < 0) {
    nn_error_set("%s: cannot sync %s: %s", f->op, f->temp, strerror(errno));
    atomic_abandon(f);
    return -1;
  }
  int rc = close(f->fd);
  f->fd = -1;
  if (rc < 0) {
    nn_error_set("%s: cannot close %s: %s", f->op, f->temp, strerror(errno));
    atomic_abandon(f);
    return -1;
  }
  if (rename(f->temp, f->path) < 0) {
    nn_error_set("%s: cannot rename %s to %s: %s", f->op, f->temp, f->path, strerror(errno));
    atomic_abandon(f);
    return -1;
  }
  free(f->temp), f->temp = NULL;
  char *dir = directory_of(f->path);
  if (dir) {
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
      fsync(dfd); /* some file systems refuse a directory sync; the file is whole anyway */
      close(dfd);
    }
    free(dir);
  }
  free(f->path), f->path = NULL;
  return 0;
}

int nn_write_file_atomic(const char *path, const void *data, size_t len) {
  atomic_file f;
  if (atomic_open(&f, "write_file", path) < 0) return -1;
  if (atomic_write(&f, data, len) < 0) {
    atomic_abandon(&f);
    return -1;
  }
  return atomic_commit(&f);
}

/* ==== safetensors ====================================================== */

/* The reference implementation's bound on a header (safetensors'
   MAX_HEADER_SIZE): a larger one is taken as a corrupt length. */
#define SAFETENSORS_MAX_HEADER ((uint64_t)100000000)

static const struct {
  const char *name;
  size_t size;
  nn_dtype dtype; /* what it loads as */
} safetensors_dtypes[] = {
    {"F32", 4, NN_FLOAT32}, {"F64", 8, NN_FLOAT64}, {"I64", 8, NN_INT64}, {"BOOL", 1, NN_BOOL},
    {"F16", 2, NN_FLOAT16}, {"BF16", 2, NN_BFLOAT16}, {"I32", 4, NN_INT32}, {"I16", 2, NN_INT16},
    {"I8", 1, NN_INT8},     {"U8", 1, NN_UINT8},
    /* PyTorch 1.13 has no unsigned types beyond uint8: these widen */
    {"U16", 2, NN_INT32}, {"U32", 4, NN_INT64},
    {NULL, 0, NN_FLOAT32}};

static int safetensors_dtype_index(const char *name) {
  for (int k = 0; safetensors_dtypes[k].name; k++)
    if (strcmp(safetensors_dtypes[k].name, name) == 0) return k;
  return -1;
}

const char *nn_safetensors_dtype_name(nn_dtype dtype) {
  for (int k = 0; safetensors_dtypes[k].name; k++)
    if (safetensors_dtypes[k].dtype == dtype && safetensors_dtypes[k].size == nn_dtype_size(dtype))
      return safetensors_dtypes[k].name;
  return NULL;
}

/* One element of a stored dtype nnlua has none of (U16, U32) at p
   (little-endian), as a double. */
static double safetensors_element(const char *name, const unsigned char *p) {
  if (strcmp(name, "U16") == 0) { uint16_t v; memcpy(&v, p, 2); return v; }
  uint32_t v;
  memcpy(&v, p, 4);
  return v;
}

/* Reads exactly len bytes at offset; -1 with a message. */
static int read_at(int fd, void *buf, size_t len, uint64_t offset, const char *path) {
  char *p = buf;
  while (len > 0) {
    ssize_t n = pread(fd, p, len > ((size_t)1 << 30) ? ((size_t)1 << 30) : len, (off_t)offset);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      nn_error_set("load: cannot read %s: %s", path, n < 0 ? strerror(errno) : "the file ended early");
      return -1;
    }
    p += n, len -= (size_t)n, offset += (uint64_t)n;
  }
  return 0;
}

char *nn_safetensors_read_header(const char *path, size_t *header_len) {
  /* a load clears what killed saves of this file left behind, as a save does */
  struct stat st;
  int exists;
  char *target = follow_links("load", path, &st, &exists);
  if (target) remove_stale_temps(target);
  free(target);
  uint64_t file_size;
  int fd = open_regular("load", path, &file_size);
  if (fd < 0) return NULL;
  char *header = NULL;
  unsigned char lenbytes[8];
  if (file_size < 8) {
    nn_error_set("load: %s is not a safetensors file: %llu bytes, fewer than the 8 of the header "
                 "length", path, (unsigned long long)file_size);
    goto done;
  }
  if (read_at(fd, lenbytes, 8, 0, path) < 0) goto done;
  uint64_t n = 0;
  for (int k = 7; k >= 0; k--) n = n << 8 | lenbytes[k];
  if (n < 2 || n > SAFETENSORS_MAX_HEADER || n > file_size - 8) {
    nn_error_set("load: %s is not a safetensors file: bad header length %llu (the file has %llu "
                 "bytes after the length)", path, (unsigned long long)n,
                 (unsigned long long)(file_size - 8));
    goto done;
  }
  header = malloc((size_t)n + 1);
  if (!header) {
    nn_error_set("load: out of memory for a header of %llu bytes", (unsigned long long)n);
    goto done;
  }
  if (read_at(fd, header, (size_t)n, 8, path) < 0) {
    free(header), header = NULL;
    goto done;
  }
  header[n] = 0;
  *header_len = (size_t)n;
done:
  close(fd);
  return header;
}

/* Order of entries by where their data begins, for the overlap check. */
static const nn_safetensors_entry *sort_base;
static int by_begin(const void *a, const void *b) {
  const nn_safetensors_entry *x = &sort_base[*(const int64_t *)a], *y = &sort_base[*(const int64_t *)b];
  return x->begin < y->begin ? -1 : x->begin > y->begin ? 1 : (x->end > y->end) - (x->end < y->end);
}

int nn_safetensors_read(const char *path, size_t header_len, const nn_safetensors_entry *entries,
                        int64_t n, nn_tensor **out) {
  for (int64_t i = 0; i < n; i++) out[i] = NULL;
  if (!host_is_little_endian()) {
    nn_error_set("load: safetensors data is little-endian; this host is not");
    return -1;
  }
  uint64_t file_size;
  int fd = open_regular("load", path, &file_size);
  if (fd < 0) return -1;
  int64_t *order = malloc((size_t)(n > 0 ? n : 1) * sizeof *order);
  unsigned char *scratch = NULL;
  int rc = -1;
  if (!order) {
    nn_error_set("load: out of memory");
    goto done;
  }
  if (file_size < 8 + (uint64_t)header_len) {
    nn_error_set("load: %s changed while it was read", path);
    goto done;
  }
  uint64_t data_size = file_size - 8 - header_len;
  /* 1. every entry on its own: a known dtype, a shape, offsets that hold
        exactly that many bytes inside the data */
  for (int64_t i = 0; i < n; i++) {
    const nn_safetensors_entry *e = &entries[i];
    int k = safetensors_dtype_index(e->dtype);
    if (k < 0) {
      nn_error_set("load: %s: tensor '%s' has an unknown dtype '%s'", path, e->name, e->dtype);
      goto done;
    }
    if (e->ndim < 0 || e->ndim > NN_MAX_DIMS) {
      nn_error_set("load: %s: tensor '%s' has %d dimensions, at most %d are supported", path,
                   e->name, e->ndim, NN_MAX_DIMS);
      goto done;
    }
    /* the engine's own bound on shapes, zeros included, so that what
       passes here is a tensor nn_empty makes */
    if (nn_check_shape("load", e->ndim, e->shape) < 0) {
      nn_error_set("load: %s: tensor '%s' has an impossible shape", path, e->name);
      goto done;
    }
    uint64_t count = (uint64_t)nn_shape_numel(e->ndim, e->shape);
    if (e->begin > e->end || e->end > data_size) {
      nn_error_set("load: %s: tensor '%s' has data_offsets [%llu, %llu] outside the %llu bytes of "
                   "data", path, e->name, (unsigned long long)e->begin,
                   (unsigned long long)e->end, (unsigned long long)data_size);
      goto done;
    }
    if (e->end - e->begin != count * safetensors_dtypes[k].size) {
      nn_error_set("load: %s: tensor '%s' has %llu bytes of data, its shape and dtype %s need %llu",
                   path, e->name, (unsigned long long)(e->end - e->begin), e->dtype,
                   (unsigned long long)(count * safetensors_dtypes[k].size));
      goto done;
    }
    order[i] = i;
  }
  /* 2. together: no two share a byte (empty tensors take none) */
  sort_base = entries;
  qsort(order, (size_t)n, sizeof *order, by_begin);
  uint64_t covered = 0;
  const char *last = NULL;
  for (int64_t i = 0; i < n; i++) {
    const nn_safetensors_entry *e = &entries[order[i]];
    if (e->begin == e->end) continue;
    if (e->begin < covered) {
      nn_error_set("load: %s: tensors '%s' and '%s' overlap in the data", path, last, e->name);
      goto done;
    }
    covered = e->end, last = e->name;
  }
  /* 3. the copies */
  for (int64_t i = 0; i < n; i++) {
    const nn_safetensors_entry *e = &entries[i];
    int k = safetensors_dtype_index(e->dtype);
    nn_tensor *t = nn_empty(safetensors_dtypes[k].dtype, e->ndim, e->shape);
    if (!t) goto done;
    out[i] = t;
    size_t nbytes = (size_t)(e->end - e->begin);
    if (nbytes == 0) continue;
    uint64_t at = 8 + header_len + e->begin;
    int direct = strcmp(e->dtype, nn_safetensors_dtype_name(t->dtype) ? nn_safetensors_dtype_name(t->dtype) : "") == 0;
    if (direct) {
      if (read_at(fd, nn_data(t), nbytes, at, path) < 0) goto done;
      if (t->dtype == NN_BOOL) { /* any non-zero byte is true; stored as 1 */
        unsigned char *b = nn_data(t);
        for (size_t j = 0; j < nbytes; j++) b[j] = b[j] != 0;
      }
      continue;
    }
    unsigned char *grown = realloc(scratch, nbytes);
    if (!grown) {
      nn_error_set("load: out of memory");
      goto done;
    }
    scratch = grown;
    if (read_at(fd, scratch, nbytes, at, path) < 0) goto done;
    int64_t count = nn_numel(t);
    size_t esize = safetensors_dtypes[k].size;
    void *dst = nn_data(t);
    for (int64_t j = 0; j < count; j++)
      nn_store(t->dtype, dst, j, safetensors_element(e->dtype, scratch + (size_t)j * esize));
  }
  rc = 0;
done:
  if (rc < 0)
    for (int64_t i = 0; i < n; i++) nn_release(out[i]), out[i] = NULL;
  free(order);
  free(scratch);
  close(fd);
  return rc;
}

int nn_safetensors_write(const char *path, const char *header, size_t header_len,
                         nn_tensor *const *tensors, int64_t n) {
  if (!host_is_little_endian()) {
    nn_error_set("save: safetensors data is little-endian; this host is not");
    return -1;
  }
  atomic_file f;
  if (atomic_open(&f, "save", path) < 0) return -1;
  unsigned char lenbytes[8];
  uint64_t len = header_len;
  for (int k = 0; k < 8; k++) lenbytes[k] = (unsigned char)(len >> (8 * k));
  if (atomic_write(&f, lenbytes, 8) < 0 || atomic_write(&f, header, header_len) < 0) {
    atomic_abandon(&f);
    return -1;
  }
  for (int64_t i = 0; i < n; i++) {
    if (!nn_safetensors_dtype_name(tensors[i]->dtype)) {
      nn_error_set("save: tensor %lld has a dtype safetensors cannot hold", (long long)i + 1);
      atomic_abandon(&f);
      return -1;
    }
    nn_tensor *cpu = nn_to_device(tensors[i], NN_CPU);
    nn_tensor *c = cpu ? nn_contiguous(cpu) : NULL;
    nn_release(cpu);
    int ok = c && atomic_write(&f, nn_data(c), (size_t)nn_numel(c) * nn_element_size(c->dtype)) == 0;
    nn_release(c);
    if (!ok) {
      atomic_abandon(&f);
      return -1;
    }
  }
  return atomic_commit(&f);
}

/* ==== for the engine's other files (files.h) ============================ */

int nn_file_open_regular(const char *op, const char *path, uint64_t *file_size) {
  return open_regular(op, path, file_size);
}

int nn_file_read_at(int fd, void *buf, size_t len, uint64_t offset, const char *path) {
  return read_at(fd, buf, len, offset, path);
}

int nn_file_fail(const char *path, const char *fmt, ...) {
  char message[400];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(message, sizeof message, fmt, ap);
  va_end(ap);
  nn_error_set("load: %s: %s", path, message);
  return -1;
}

void nn_file_remove_stale_temps(const char *path) {
  struct stat st;
  int exists;
  char *target = follow_links("load", path, &st, &exists);
  if (target) remove_stale_temps(target);
  free(target);
}

struct nn_atomic_file {
  atomic_file file;
};

nn_atomic_file *nn_atomic_file_open(const char *op, const char *path) {
  nn_atomic_file *f = malloc(sizeof *f);
  if (!f) {
    nn_error_set("%s: out of memory", op);
    return NULL;
  }
  if (atomic_open(&f->file, op, path) < 0) {
    free(f);
    return NULL;
  }
  return f;
}

int nn_atomic_file_write(nn_atomic_file *f, const void *data, size_t len) {
  return atomic_write(&f->file, data, len);
}

int nn_atomic_file_commit(nn_atomic_file *f) {
  int rc = atomic_commit(&f->file);
  free(f);
  return rc;
}

void nn_atomic_file_abandon(nn_atomic_file *f) {
  atomic_abandon(&f->file);
  free(f);
}

int nn_file_host_is_little_endian(void) { return host_is_little_endian(); }

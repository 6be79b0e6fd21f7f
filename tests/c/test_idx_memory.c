/* test_idx_memory.c: what nn_read_idx allocates is bounded by what the file
 * holds, not by what its header claims.
 *
 * The measure is the growth of the process's peak address space
 * (/proc/self/status VmPeak) past its size just before the read: memory
 * taken and given back within the read still shows, touched or not. Each
 * read runs in a fresh child process, so that no memory freed earlier can
 * be reused unseen. A real read of the same size is measured too, so that
 * the measure is known to see what it should. */
#include "check.h"

#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>

/* A field of /proc/self/status in kB; -1 when it cannot be read. */
static long status_kb(const char *field) {
  FILE *f = fopen("/proc/self/status", "r");
  if (!f) return -1;
  char line[256];
  long kb = -1;
  size_t n = strlen(field);
  while (fgets(line, sizeof line, f))
    if (strncmp(line, field, n) == 0 && line[n] == ':') kb = strtol(line + n + 1, NULL, 10);
  fclose(f);
  return kb;
}

/* Reads path as dtype in a child process; the growth of its peak address
   space during the read in kB, its outcome in *read_ok. -1 on failure. */
static long read_growth_kb(const char *path, int dtype, int *read_ok) {
  int fds[2];
  if (pipe(fds) < 0) return -1;
  pid_t pid = fork();
  if (pid < 0) return -1;
  if (pid == 0) {
    close(fds[0]);
    long before = status_kb("VmSize");
    nn_tensor *t = nn_read_idx(path, dtype, 1.0);
    long result[2] = {status_kb("VmPeak") - before, t != NULL};
    nn_release(t);
    ssize_t w = write(fds[1], result, sizeof result);
    _exit(w == (ssize_t)sizeof result ? 0 : 1);
  }
  close(fds[1]);
  long result[2] = {-1, 0};
  ssize_t got = read(fds[0], result, sizeof result);
  close(fds[0]);
  int status;
  waitpid(pid, &status, 0);
  if (got != (ssize_t)sizeof result) return -1;
  *read_ok = (int)result[1];
  return result[0];
}

/* An IDX header: magic (0, 0, type, ndim) and big-endian sizes. */
static size_t idx_header(unsigned char *out, int type_code, int ndim, const uint32_t *size) {
  out[0] = 0, out[1] = 0, out[2] = (unsigned char)type_code, out[3] = (unsigned char)ndim;
  for (int d = 0; d < ndim; d++)
    for (int k = 0; k < 4; k++) out[4 + 4 * d + k] = (unsigned char)(size[d] >> (24 - 8 * k));
  return 4 + 4 * (size_t)ndim;
}

static int write_plain(const char *path, const void *bytes, size_t len) {
  FILE *f = fopen(path, "wb");
  if (!f) return -1;
  size_t w = fwrite(bytes, 1, len, f);
  return fclose(f) == 0 && w == len ? 0 : -1;
}

/* header, then data_len bytes of fill, gzip-compressed */
static int write_gzip(const char *path, const unsigned char *header, size_t header_len,
                      size_t data_len, unsigned char fill) {
  gzFile gz = gzopen(path, "wb9");
  if (!gz) return -1;
  int ok = gzwrite(gz, header, (unsigned)header_len) == (int)header_len;
  unsigned char block[4096];
  memset(block, fill, sizeof block);
  for (size_t done = 0; ok && done < data_len; done += sizeof block) {
    unsigned n = (unsigned)(data_len - done < sizeof block ? data_len - done : sizeof block);
    ok = gzwrite(gz, block, n) == (int)n;
  }
  return gzclose(gz) == Z_OK && ok ? 0 : -1;
}

int main(void) {
  char dir[] = "/tmp/nn_idx_memory_XXXXXX";
  if (!mkdtemp(dir)) {
    printf("FAIL: cannot make a temporary directory\n");
    return 1;
  }
  char path[128];
  unsigned char head[64];
  int read_ok = 0;
  long kb;

  /* one float64: a block buffer sized for a million elements is 8 MiB */
  snprintf(path, sizeof path, "%s/one-idx", dir);
  uint32_t one[1] = {1};
  size_t n = idx_header(head, 0x0E, 1, one);
  memset(head + n, 0x3f, 8);
  CHECK(write_plain(path, head, n + 8) == 0);
  kb = read_growth_kb(path, -1, &read_ok);
  CHECKF(read_ok, "a one-element IDX file reads");
  CHECKF(kb >= 0 && kb < 2048, "reading one float64 grew the address space by %ld kB", kb);

  /* a few dozen compressed bytes claiming a million bytes, read as
     float64: 8 MB asked for by a file that holds 8 bytes of data */
  snprintf(path, sizeof path, "%s/claims-idx.gz", dir);
  uint32_t claim[2] = {1000, 1000};
  n = idx_header(head, 0x08, 2, claim);
  CHECK(write_gzip(path, head, n, 8, 7) == 0);
  kb = read_growth_kb(path, NN_FLOAT64, &read_ok);
  CHECKF(!read_ok, "the truncated file is refused");
  CHECKF(kb >= 0 && kb < 2048, "a small compressed file claiming 1000x1000 grew the address "
                               "space by %ld kB", kb);

  /* the same claim, held whole (it compresses to about a kilobyte): the
     tensor grows to its 8 MB as the data arrives, and the measure sees it */
  snprintf(path, sizeof path, "%s/holds-idx.gz", dir);
  CHECK(write_gzip(path, head, n, 1000000, 7) == 0);
  kb = read_growth_kb(path, NN_FLOAT64, &read_ok);
  CHECKF(read_ok, "the whole file reads");
  CHECKF(kb >= 7800, "reading 8 MB of float64 grew the address space by only %ld kB", kb);
  nn_tensor *t = nn_read_idx(path, NN_FLOAT64, 1.0);
  if (CHECK(t != NULL)) {
    CHECK_SHAPE(t, 2, 1000, 1000);
    CHECK(nn_get_flat(t, 0) == 7 && nn_get_flat(t, 999999) == 7 && nn_get_flat(t, 123456) == 7);
  }
  nn_release(t);

  char command[160];
  snprintf(command, sizeof command, "rm -rf %s", dir);
  if (system(command) != 0) printf("note: could not remove %s\n", dir);
  return check_finish();
}

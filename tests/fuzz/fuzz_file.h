/* fuzz_file.h: what the fuzz harnesses share. The engine reads files by
 * name, so each input is written to one scratch file (on /dev/shm when
 * there is one: no disk in the loop) and read back from there. */
#ifndef NN_FUZZ_FILE_H
#define NN_FUZZ_FILE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The scratch file's name, made on first use and removed at exit. */
static char fuzz_path[64];

static void fuzz_remove_file(void) { unlink(fuzz_path); }

/* Replaces the scratch file's bytes with data; returns its name. */
static const char *fuzz_write_file(const uint8_t *data, size_t size) {
  if (!fuzz_path[0]) {
    const char *dir = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    snprintf(fuzz_path, sizeof fuzz_path, "%s/nn-fuzz-XXXXXX", dir);
    int fd = mkstemp(fuzz_path);
    if (fd < 0) {
      perror("fuzz: mkstemp");
      abort();
    }
    close(fd);
    atexit(fuzz_remove_file);
  }
  FILE *f = fopen(fuzz_path, "wb");
  if (!f || fwrite(data, 1, size, f) != size || fclose(f) != 0) {
    perror("fuzz: writing the input");
    abort();
  }
  return fuzz_path;
}

#endif

/* zlib_loader.c: zlib, loaded the first time the engine reads a gzip'd
 * file (nn_read_idx) or sums a CRC (the zip files of .pt), not when the
 * process starts.
 *
 * A stock lua5.4 loads nn.so with RTLD_NOW: every library nn.so needs is
 * mapped and relocated, and every name it imports bound, before
 * luaopen_nn runs. zlib cost `require "nn"` about 50,000 instructions and
 * a dozen system calls, and `nnlua -e ''` the same, for a library that
 * only reading MNIST and saving a .pt use. So where zlib is a shared
 * library the engine is not linked against it: these definitions of the
 * zlib entries the engine calls open it on the first call (dlopen, by the
 * soname the build found) and forward to it, as cpu/openblas_loader.c does
 * for OpenBLAS.
 *
 * Empty without NN_ZLIB_LAZY (CMakeLists.txt): a static zlib
 * (tools/build_gpu.sh) is linked in directly. An entry the engine starts
 * calling must be added here too; the link fails until it is. */
#ifdef NN_ZLIB_LAZY

#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <zlib.h>

#ifndef NN_ZLIB_SONAME
#error "NN_ZLIB_SONAME: the file name to dlopen zlib by"
#endif

/* Only the engine calls these: a program that links libnn and zlib itself
   keeps zlib's own. */
#define INTERNAL __attribute__((visibility("hidden")))

static struct {
  gzFile (*dopen)(int, const char *);
  int (*buffer)(gzFile, unsigned);
  int (*read)(gzFile, voidp, unsigned);
  const char *(*error)(gzFile, int *);
  int (*direct)(gzFile);
  int (*close)(gzFile);
  uLong (*crc32)(uLong, const Bytef *, uInt);
} z;

static pthread_once_t z_once = PTHREAD_ONCE_INIT;

/* The failure the dynamic linker would have reported at start-up,
   reported at first use instead, with its exit status: the engine's
   callers have no error path for a missing library. */
static void missing(const char *what) {
  fprintf(stderr, "nn: cannot use zlib (%s): %s\n", NN_ZLIB_SONAME, what);
  exit(127);
}

static void *entry(void *library, const char *name) {
  void *f = dlsym(library, name);
  if (!f) missing(dlerror());
  return f;
}

static void load(void) {
  void *library = dlopen(NN_ZLIB_SONAME, RTLD_NOW | RTLD_LOCAL); /* never closed */
  if (!library) missing(dlerror());
  z.dopen = (gzFile(*)(int, const char *))entry(library, "gzdopen");
  z.buffer = (int (*)(gzFile, unsigned))entry(library, "gzbuffer");
  z.read = (int (*)(gzFile, voidp, unsigned))entry(library, "gzread");
  z.error = (const char *(*)(gzFile, int *))entry(library, "gzerror");
  z.direct = (int (*)(gzFile))entry(library, "gzdirect");
  z.close = (int (*)(gzFile))entry(library, "gzclose");
  z.crc32 = (uLong(*)(uLong, const Bytef *, uInt))entry(library, "crc32");
}

static inline void ready(void) { pthread_once(&z_once, load); }

INTERNAL gzFile gzdopen(int fd, const char *mode) {
  ready();
  return z.dopen(fd, mode);
}

INTERNAL int gzbuffer(gzFile file, unsigned size) {
  ready();
  return z.buffer(file, size);
}

INTERNAL int gzread(gzFile file, voidp buf, unsigned len) {
  ready();
  return z.read(file, buf, len);
}

INTERNAL const char *gzerror(gzFile file, int *errnum) {
  ready();
  return z.error(file, errnum);
}

INTERNAL int gzdirect(gzFile file) {
  ready();
  return z.direct(file);
}

INTERNAL int gzclose(gzFile file) {
  ready();
  return z.close(file);
}

INTERNAL uLong crc32(uLong crc, const Bytef *buf, uInt len) {
  ready();
  return z.crc32(crc, buf, len);
}

#endif /* NN_ZLIB_LAZY */

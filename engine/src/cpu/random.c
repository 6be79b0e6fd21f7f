/* cpu/random.c: PyTorch's CPU random number generator, draw for draw.
 *
 * A script ported from PyTorch that seeds with 777 must start from the very
 * weights PyTorch starts from, or its printed costs can never be compared
 * with the original's. So this file reproduces PyTorch 1.13's CPU generator
 * bit for bit: the engine (at::mt19937, ATen/core/MT19937RNGEngine.h:
 * Matsumoto and Nishimura's mt19937 with Cokus's twist), the way draws become
 * numbers (ATen/core/TransformationHelper.h, DistributionsHelper.h), and the
 * order in which the kernels consume draws and transform them
 * (ATen/native/cpu/DistributionTemplates.h).
 *
 * Fused multiply-adds. PyTorch's kernels are compiled once per CPU
 * capability, and the AVX2 build (what PyTorch picks on any x86 machine of
 * the last ten years, and what the fixtures in tests/fixtures were made
 * with) is compiled with -mfma under GNU C++'s -ffp-contract=fast, so gcc
 * fuses every `a * b + c` in those kernels into one FMA with a single
 * rounding. Written as plain C (which ISO C11 compiles with contraction off)
 * our results differed from PyTorch's in the last bit for about a third of
 * uniform_ draws. So wherever PyTorch's compiler fused, we call fma()/fmaf()
 * explicitly, and nowhere else: that reproduces PyTorch exactly whatever
 * -ffp-contract this file is compiled with (but not under -ffast-math).
 * A PyTorch forced to its scalar kernels (ATEN_CPU_CAPABILITY=default)
 * rounds twice instead and differs from both in the last bit. */
#include "cpu/cpu.h"
#include "math/random.h"

/* ---- the engine: mt19937 ------------------------------------------------ */
enum { MT_N = 624, MT_M = 397 };
static const uint32_t mt_matrix_a = 0x9908b0dfu;
static const uint32_t mt_upper_mask = 0x80000000u;
static const uint32_t mt_lower_mask = 0x7fffffffu;

/* PyTorch's default_rng_seed_val: the seed a generator has before anyone
   seeds it. */
static const uint64_t default_seed = UINT64_C(67280421310721);

typedef struct {
  uint64_t seed;
  uint32_t state[MT_N];
  uint32_t left; /* draws until the next twist, counting this one: 1..MT_N */
  uint32_t next; /* index of the next word of state to temper */
  /* Box-Muller makes two samples; PyTorch keeps the second for the next
     call (CPUGeneratorImpl's next_double_normal_sample and
     next_float_normal_sample), and so must we. No float kernel of
     PyTorch's fills the float cache today, but it is part of the state
     PyTorch saves, and so of ours. */
  int has_next_double;
  double next_double;
  int has_next_float;
  float next_float;
} generator;

static generator the_generator;
static int the_generator_seeded;

static void generator_seed(generator *g, uint64_t seed) {
  g->seed = seed;
  /* at::mt19937 takes the low 32 bits of the seed, then Knuth's
     initialisation recurrence (mt19937ar.c, init_genrand). */
  g->state[0] = (uint32_t)(seed & 0xffffffffu);
  for (uint32_t j = 1; j < MT_N; j++) {
    uint32_t prev = g->state[j - 1];
    g->state[j] = UINT32_C(1812433253) * (prev ^ (prev >> 30)) + j;
  }
  /* left = 1 makes the first draw twist the freshly initialised state. */
  g->left = 1;
  g->next = 0;
  g->has_next_double = 0;
  g->next_double = 0;
  g->has_next_float = 0;
  g->next_float = 0;
}

static generator *default_generator(void) {
  if (!the_generator_seeded) {
    generator_seed(&the_generator, default_seed);
    the_generator_seeded = 1;
  }
  return &the_generator;
}

static uint32_t mt_twist_pair(uint32_t u, uint32_t v) {
  uint32_t mixed = (u & mt_upper_mask) | (v & mt_lower_mask);
  return (mixed >> 1) ^ ((v & 1u) ? mt_matrix_a : 0u);
}

/* Regenerates all MT_N words at once (Cokus's formulation, as at::mt19937). */
static void mt_next_state(generator *g) {
  uint32_t *s = g->state;
  int k = 0;
  for (; k < MT_N - MT_M; k++) s[k] = s[k + MT_M] ^ mt_twist_pair(s[k], s[k + 1]);
  for (; k < MT_N - 1; k++) s[k] = s[k + MT_M - MT_N] ^ mt_twist_pair(s[k], s[k + 1]);
  s[MT_N - 1] = s[MT_M - 1] ^ mt_twist_pair(s[MT_N - 1], s[0]);
  g->left = MT_N;
  g->next = 0;
}

/* One 32-bit draw: CPUGeneratorImpl::random(). */
static uint32_t random32(generator *g) {
  if (--g->left == 0) mt_next_state(g);
  uint32_t y = g->state[g->next++];
  y ^= y >> 11;
  y ^= (y << 7) & 0x9d2c5680u;
  y ^= (y << 15) & 0xefc60000u;
  y ^= y >> 18;
  return y;
}

/* CPUGeneratorImpl::random64(): the first draw is the high word. Two
   statements, because C leaves the order of evaluation of `f() << 32 | f()`
   unspecified. */
static uint64_t random64(generator *g) {
  uint64_t hi = random32(g);
  uint64_t lo = random32(g);
  return (hi << 32) | lo;
}

/* ---- distributions ---------------------------------------------------- */
static float uniform_float(generator *g, float from, float to) {
  return nn_uniform_f32(random32(g), from, to);
}

static double uniform_double(generator *g, double from, double to) {
  return nn_uniform_f64(random64(g), from, to);
}

/* at::normal_distribution<double>: the cosine sample, the sine sample kept
   for the next call (the radius comes from the second draw and the angle
   from the first, the reverse of normal_fill below). */
static double normal_double(generator *g, double mean, double std) {
  double z;
  if (g->has_next_double) {
    z = g->next_double;
    g->has_next_double = 0;
  } else {
    double u1 = uniform_double(g, 0.0, 1.0);
    double u2 = uniform_double(g, 0.0, 1.0);
    z = nn_box_muller_f64(u1, u2, &g->next_double);
    g->has_next_double = 1;
  }
  return fma(z, std, mean);
}

/* normal_fill_16: Box-Muller over a block of 16 uniforms, pairing element j
   with element j + 8 (math/random.h's nn_normal_pair). */
static void normal_block_float(float *data, float mean, float std) {
  for (int j = 0; j < 8; j++) nn_normal_pair_f32(&data[j], &data[j + 8], mean, std);
}

static void normal_block_double(double *data, double mean, double std) {
  for (int j = 0; j < 8; j++) nn_normal_pair_f64(&data[j], &data[j + 8], mean, std);
}

/* normal_fill: PyTorch's path for contiguous tensors of 16 or more elements.
   Every element first gets a uniform draw; then blocks of 16 are
   transformed. When n is not a multiple of 16, the last 16 elements are
   drawn again and transformed as one more block, overlapping the previous
   one: the first draws for those elements are simply thrown away. */
static void normal_fill_float(generator *g, float *data, int64_t n, float mean, float std) {
  for (int64_t i = 0; i < n; i++) data[i] = uniform_float(g, 0.0f, 1.0f);
  for (int64_t i = 0; i + 16 <= n; i += 16) normal_block_float(data + i, mean, std);
  if (n % 16 != 0) {
    float *tail = data + n - 16;
    for (int i = 0; i < 16; i++) tail[i] = uniform_float(g, 0.0f, 1.0f);
    normal_block_float(tail, mean, std);
  }
}

static void normal_fill_double(generator *g, double *data, int64_t n, double mean, double std) {
  for (int64_t i = 0; i < n; i++) data[i] = uniform_double(g, 0.0, 1.0);
  for (int64_t i = 0; i + 16 <= n; i += 16) normal_block_double(data + i, mean, std);
  if (n % 16 != 0) {
    double *tail = data + n - 16;
    for (int i = 0; i < 16; i++) tail[i] = uniform_double(g, 0.0, 1.0);
    normal_block_double(tail, mean, std);
  }
}

/* ---- the order elements receive their draws ---------------------------
 * PyTorch fills through a TensorIterator, which visits elements in memory
 * order, not in logical order: a transposed tensor gets its draws column by
 * column. To draw the same numbers into the same places we sort the
 * dimensions the way TensorIteratorBase::reorder_dimensions does for a
 * single output (by stride, ties broken by size) and walk them in that
 * order. For a contiguous tensor this is plain row-major order. */
typedef struct {
  int ndim;                      /* outermost first */
  int64_t size[NN_MAX_DIMS];
  int64_t stride[NN_MAX_DIMS];
  int64_t index[NN_MAX_DIMS];
  int64_t offset;                /* of the current element, from the first */
} fill_walk;

/* reorder_dimensions' comparison: 1 when dim a should move after dim b in
   the fastest-first order, -1 when it must stay before, 0 when ambiguous. */
static int fill_should_swap(const nn_strided *t, int a, int b) {
  int64_t sa = t->stride[a], sb = t->stride[b];
  if (sa == 0 || sb == 0) return 0;
  if (sa < sb) return -1;
  if (sa > sb) return 1;
  return t->size[a] > t->size[b] ? 1 : 0;
}

static void fill_walk_init(fill_walk *w, const nn_strided *t) {
  int n = t->ndim;
  int perm[NN_MAX_DIMS]; /* fastest-moving dimension first */
  for (int i = 0; i < n; i++) perm[i] = n - 1 - i;
  /* the same insertion sort, which stops at the first strict "stay" */
  for (int i = 1; i < n; i++) {
    int d1 = i;
    for (int d0 = i - 1; d0 >= 0; d0--) {
      int c = fill_should_swap(t, perm[d0], perm[d1]);
      if (c > 0) {
        int tmp = perm[d0];
        perm[d0] = perm[d1];
        perm[d1] = tmp;
        d1 = d0;
      } else if (c < 0) {
        break;
      }
    }
  }
  w->ndim = n;
  for (int i = 0; i < n; i++) {
    w->size[i] = t->size[perm[n - 1 - i]];
    w->stride[i] = t->stride[perm[n - 1 - i]];
    w->index[i] = 0;
  }
  w->offset = 0;
}

static void fill_walk_next(fill_walk *w) {
  for (int d = w->ndim - 1; d >= 0; d--) {
    w->offset += w->stride[d];
    if (++w->index[d] < w->size[d]) return;
    w->offset -= w->stride[d] * w->size[d];
    w->index[d] = 0;
  }
}

/* The serialized state, little-endian whatever the machine:
     "NNRG", seed u64, left u32, next u32, state MT_N x u32,
     has_next_double u8, next_double (IEEE bits) u64,
     has_next_float u8, next_float (IEEE bits) u32. */
static const unsigned char state_magic[4] = {'N', 'N', 'R', 'G'};
enum { STATE_SIZE = 4 + 8 + 4 + 4 + 4 * MT_N + 1 + 8 + 1 + 4 };

size_t nn_cpu_rng_state_size(void) { return STATE_SIZE; }

static unsigned char *put_bytes(unsigned char *p, uint64_t v, int nbytes) {
  for (int i = 0; i < nbytes; i++) p[i] = (unsigned char)(v >> (8 * i));
  return p + nbytes;
}

static const unsigned char *get_bytes(const unsigned char *p, uint64_t *v, int nbytes) {
  uint64_t x = 0;
  for (int i = 0; i < nbytes; i++) x |= (uint64_t)p[i] << (8 * i);
  *v = x;
  return p + nbytes;
}

void nn_cpu_rng_get_state(void *buf) {
  const generator *g = default_generator();
  unsigned char *p = buf;
  memcpy(p, state_magic, sizeof state_magic);
  p += sizeof state_magic;
  p = put_bytes(p, g->seed, 8);
  p = put_bytes(p, g->left, 4);
  p = put_bytes(p, g->next, 4);
  for (int i = 0; i < MT_N; i++) p = put_bytes(p, g->state[i], 4);
  uint64_t dbits;
  uint32_t fbits;
  memcpy(&dbits, &g->next_double, sizeof dbits);
  memcpy(&fbits, &g->next_float, sizeof fbits);
  p = put_bytes(p, (uint64_t)(g->has_next_double != 0), 1);
  p = put_bytes(p, dbits, 8);
  p = put_bytes(p, (uint64_t)(g->has_next_float != 0), 1);
  put_bytes(p, fbits, 4);
}

int nn_cpu_rng_set_state(const void *buf, size_t len) {
  if (!buf || len != STATE_SIZE) {
    nn_error_set("rng_set_state: a generator state is %d bytes, got %zu", STATE_SIZE,
                 buf ? len : (size_t)0);
    return -1;
  }
  const unsigned char *p = buf;
  if (memcmp(p, state_magic, sizeof state_magic) != 0) {
    nn_error_set("rng_set_state: these bytes are not a generator state");
    return -1;
  }
  p += sizeof state_magic;
  /* Decode into a copy and install it only once it is known to be valid,
     so that a bad state leaves the generator as it was. */
  generator g;
  uint64_t v;
  p = get_bytes(p, &g.seed, 8);
  p = get_bytes(p, &v, 4);
  g.left = (uint32_t)v;
  p = get_bytes(p, &v, 4);
  g.next = (uint32_t)v;
  for (int i = 0; i < MT_N; i++) {
    p = get_bytes(p, &v, 4);
    g.state[i] = (uint32_t)v;
  }
  uint64_t has_double, dbits, has_float, fbits;
  p = get_bytes(p, &has_double, 1);
  p = get_bytes(p, &dbits, 8);
  p = get_bytes(p, &has_float, 1);
  get_bytes(p, &fbits, 4);
  /* random32 reads state[next], state[next + 1], ... for left - 1 draws
     before it twists, so next + left - 1 words must be there: a seeded
     generator has (left 1, next 0) and one past a twist next + left =
     MT_N + 1. at::mt19937::is_valid checks left and next each alone, which
     lets a crafted state read past the array. */
  if (g.left < 1 || g.left > MT_N || g.next > MT_N || g.next + g.left > MT_N + 1) {
    nn_error_set("rng_set_state: the generator state is corrupt (left %u, next %u)",
                 (unsigned)g.left, (unsigned)g.next);
    return -1;
  }
  /* Mersenne Twister's state must not be all zeros (the low 31 bits of the
     first word play no part): from there it draws nothing but zeros. */
  uint32_t any = g.state[0] & mt_upper_mask;
  for (int i = 1; i < MT_N; i++) any |= g.state[i];
  if (!any) {
    nn_error_set("rng_set_state: the generator state is corrupt (all zeros)");
    return -1;
  }
  /* the cached normal samples come from Box-Muller: finite, flags 0 or 1 */
  uint32_t fbits32 = (uint32_t)fbits;
  memcpy(&g.next_double, &dbits, sizeof dbits);
  memcpy(&g.next_float, &fbits32, sizeof fbits32);
  if (has_double > 1 || has_float > 1 || (has_double && !isfinite(g.next_double)) ||
      (has_float && !isfinite(g.next_float))) {
    nn_error_set("rng_set_state: the generator state is corrupt (its cached normal sample)");
    return -1;
  }
  g.has_next_double = (int)has_double;
  g.has_next_float = (int)has_float;
  the_generator = g;
  the_generator_seeded = 1;
  return 0;
}

/* ---- the backend's entries ------------------------------------------------ */
void nn_cpu_manual_seed(uint64_t seed) {
  generator_seed(&the_generator, seed);
  the_generator_seeded = 1;
}

uint64_t nn_cpu_initial_seed(void) { return default_generator()->seed; }

static int64_t strided_numel(const nn_strided *t) {
  int64_t n = 1;
  for (int i = 0; i < t->ndim; i++) n *= t->size[i];
  return n;
}

static int strided_contiguous(const nn_strided *t) {
  int64_t s = 1;
  for (int i = t->ndim - 1; i >= 0; i--) {
    if (t->size[i] == 1) continue;
    if (t->stride[i] != s) return 0;
    s *= t->size[i];
  }
  return 1;
}

/* ---- uniform float32 over contiguous memory: whole runs of draws -------------
   The same draws as n calls of random32, in the same order: the state's
   words a run at a time between twists, tempered in a loop that
   vectorises, then made floats as uniform_float makes them. */
static void random32_run(generator *g, uint32_t *out, int64_t n) {
  while (n > 0) {
    /* random32 twists when left reaches 0 and then takes word 0 without
       counting it: as if left were MT_N + 1 with no twist due */
    if (g->left == 1) {
      mt_next_state(g);
      g->left = MT_N + 1;
    }
    int64_t m = g->left - 1 < n ? g->left - 1 : n;
    const uint32_t *s = g->state + g->next;
    for (int64_t i = 0; i < m; i++) {
      uint32_t y = s[i];
      y ^= y >> 11;
      y ^= (y << 7) & 0x9d2c5680u;
      y ^= (y << 15) & 0xefc60000u;
      y ^= y >> 18;
      out[i] = y;
    }
    g->next += (uint32_t)m;
    g->left -= (uint32_t)m;
    out += m, n -= m;
  }
}

/* nn_uniform_f32 over a run: its fmaf is one instruction where the CPU
   has FMA (a call of libm's otherwise, which rounds the same once) */
#define UNIFORM_BODY                                                      \
  for (int64_t i = 0; i < n; i++) out[i] = nn_uniform_f32(bits[i], from, to)
static void uniform_run_f32(float *out, const uint32_t *bits, int64_t n, float from, float to) {
  UNIFORM_BODY;
}
#if defined(__GNUC__) && defined(__x86_64__)
#define UNIFORM_HAS_FMA_RUN 1
__attribute__((target("avx2,fma"))) static void uniform_run_f32_fma(float *out, const uint32_t *bits,
                                                                     int64_t n, float from, float to) {
  UNIFORM_BODY;
}
#endif
#undef UNIFORM_BODY

/* float64 draws: each is random64's two words, the first the high one,
   made a double as uniform_double makes it. Its fma() is a call of libm's
   where the code is not compiled for FMA: a million draws took 15 ms
   through the element walk against 2.5 for float32 (dropout's noise is
   drawn in float64, as PyTorch's CPU dropout draws it). */
#define UNIFORM_BODY_F64                                                                     \
  for (int64_t i = 0; i < n; i++)                                                            \
  out[i] = nn_uniform_f64(((uint64_t)bits[2 * i] << 32) | bits[2 * i + 1], from, to)
static void uniform_run_f64(double *out, const uint32_t *bits, int64_t n, double from, double to) {
  UNIFORM_BODY_F64;
}
#ifdef UNIFORM_HAS_FMA_RUN
__attribute__((target("avx2,fma"))) static void uniform_run_f64_fma(double *out, const uint32_t *bits,
                                                                     int64_t n, double from, double to) {
  UNIFORM_BODY_F64;
}
#endif
#undef UNIFORM_BODY_F64

/* m numbers of dtype dt (float32 or float64) made from their words, by
   the run compiled for FMA where the CPU has it. */
static void uniform_run(nn_dtype dt, int fma, void *out, const uint32_t *bits, int64_t m, double from,
                        double to) {
#ifdef UNIFORM_HAS_FMA_RUN
  if (fma) {
    if (dt == NN_FLOAT64) uniform_run_f64_fma(out, bits, m, from, to);
    else uniform_run_f32_fma(out, bits, m, (float)from, (float)to);
    return;
  }
#else
  (void)fma;
#endif
  if (dt == NN_FLOAT64) uniform_run_f64(out, bits, m, from, to);
  else uniform_run_f32(out, bits, m, (float)from, (float)to);
}

/* n uniform draws into contiguous float32 (one word a draw) or float64
   (two words) memory, a piece of UNIFORM_RUN words at a time: the words
   as random32 gives them, in its order, then made numbers. */
#define UNIFORM_RUN 2048 /* words a piece: 8 KiB of bits, in L1 */
static void uniform_fill(generator *g, nn_dtype dt, void *data, int64_t n, double from, double to) {
  uint32_t bits[UNIFORM_RUN];
  int64_t words = dt == NN_FLOAT64 ? 2 : 1, piece = UNIFORM_RUN / words;
  size_t size = dt == NN_FLOAT64 ? sizeof(double) : sizeof(float);
  int fma = 0;
#ifdef UNIFORM_HAS_FMA_RUN
  fma = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#endif
  for (int64_t i = 0; i < n; i += piece) {
    int64_t m = n - i < piece ? n - i : piece;
    random32_run(g, bits, words * m);
    uniform_run(dt, fma, (char *)data + (size_t)i * size, bits, m, from, to);
  }
}

int nn_cpu_uniform(const nn_strided *t, double from, double to) {
  generator *g = default_generator();
  int64_t n = strided_numel(t);
  if ((t->dtype == NN_FLOAT32 || t->dtype == NN_FLOAT64) && strided_contiguous(t)) {
    uniform_fill(g, t->dtype, t->data, n, from, to);
    return 0;
  }
  fill_walk w;
  fill_walk_init(&w, t);
  if (t->dtype == NN_FLOAT32) {
    float *data = (float *)t->data, from_f = (float)from, to_f = (float)to;
    for (int64_t i = 0; i < n; i++, fill_walk_next(&w)) data[w.offset] = uniform_float(g, from_f, to_f);
  } else {
    double *data = (double *)t->data;
    for (int64_t i = 0; i < n; i++, fill_walk_next(&w)) data[w.offset] = uniform_double(g, from, to);
  }
  return 0;
}

int nn_cpu_normal(const nn_strided *t, double mean, double std) {
  generator *g = default_generator();
  int64_t n = strided_numel(t);
  if (n >= 16 && strided_contiguous(t)) {
    if (t->dtype == NN_FLOAT32)
      normal_fill_float(g, (float *)t->data, n, (float)mean, (float)std);
    else
      normal_fill_double(g, (double *)t->data, n, mean, std);
    return 0;
  }
  /* Small or strided tensors take one double-precision sample per element,
     in the iterator's order, whatever the tensor's type. */
  fill_walk w;
  fill_walk_init(&w, t);
  for (int64_t i = 0; i < n; i++, fill_walk_next(&w))
    nn_store(t->dtype, t->data, w.offset, normal_double(g, mean, std));
  return 0;
}

/* PyTorch's random_from_to kernel: base + draw % range, a 32-bit draw
   unless the range needs 64 bits, in the iterator's order. */
int nn_cpu_random_int(const nn_strided *t, uint64_t range, int64_t base) {
  generator *g = default_generator();
  int64_t n = strided_numel(t);
  fill_walk w;
  fill_walk_init(&w, t);
  for (int64_t i = 0; i < n; i++, fill_walk_next(&w)) {
    uint64_t draw = range >= (UINT64_C(1) << 32) ? random64(g) : random32(g);
    int64_t v = (int64_t)(draw % range + (uint64_t)base);
    if (t->dtype == NN_INT64) ((int64_t *)t->data)[w.offset] = v;
    else nn_store(t->dtype, t->data, w.offset, (double)v);
  }
  return 0;
}

/* PyTorch 1.13's randperm_cpu: 0 .. n-1, then for each i < n - 1 a swap
   of i with i + random() % (n - i); out holds n int64, first + each.
   The draws come a piece at a time (random32_run: random32's words in its
   order), each swap's target is worked out for the whole piece first
   (remainders that do not wait on each other, in 32 bits where n fits),
   and the swaps fetch their far element RANDPERM_AHEAD swaps early: past
   the caches (1e6 elements: 8 MB) each was a miss, waited on in turn. */
#define RANDPERM_PIECE 1024
#define RANDPERM_AHEAD 16
int nn_cpu_randperm(int64_t n, int64_t first, int64_t *out) {
  generator *g = default_generator();
  for (int64_t i = 0; i < n; i++) out[i] = i + first;
  uint32_t bits[RANDPERM_PIECE];
  int64_t target[RANDPERM_PIECE];
  for (int64_t i = 0; i + 1 < n; i += RANDPERM_PIECE) {
    int64_t m = n - 1 - i < RANDPERM_PIECE ? n - 1 - i : RANDPERM_PIECE;
    random32_run(g, bits, m);
    if (n <= (int64_t)UINT32_MAX) {
      for (int64_t j = 0; j < m; j++) target[j] = i + j + bits[j] % (uint32_t)(n - i - j);
    } else {
      for (int64_t j = 0; j < m; j++) target[j] = i + j + (int64_t)(bits[j] % (uint64_t)(n - i - j));
    }
    for (int64_t j = 0; j < m; j++) {
#if defined(__GNUC__)
      if (j + RANDPERM_AHEAD < m) __builtin_prefetch(out + target[j + RANDPERM_AHEAD], 1);
#endif
      int64_t saved = out[i + j];
      out[i + j] = out[target[j]];
      out[target[j]] = saved;
    }
  }
  return 0;
}

/* rng.c: PyTorch's CPU random number generator, draw for draw.
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
#include "internal.h"

/* ---- the engine: mt19937 ------------------------------------------------ */
enum { MT_N = 624, MT_M = 397 };
static const uint32_t mt_matrix_a = 0x9908b0dfu;
static const uint32_t mt_upper_mask = 0x80000000u;
static const uint32_t mt_lower_mask = 0x7fffffffu;

/* PyTorch's default_rng_seed_val: the seed a generator has before anyone
   seeds it. */
static const uint64_t default_seed = UINT64_C(67280421310721);

/* Double precision pi, as c10::pi<double>; M_PI is not ISO C. */
static const double pi_double = 3.14159265358979323846;

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
/* transformation::uniform_real for float: the low 24 bits (float's digits)
   of one 32-bit draw, scaled into [0, 1) and then into [from, to), all in
   float. */
static float uniform_float(generator *g, float from, float to) {
  float x = (float)(random32(g) & UINT32_C(0xffffff)) * (1.0f / 16777216.0f);
  return fmaf(x, to - from, from);
}

/* The same for double: the low 53 bits of a 64-bit draw. */
static double uniform_double(generator *g, double from, double to) {
  uint64_t bits = random64(g) & ((UINT64_C(1) << 53) - 1);
  double x = (double)bits * (1.0 / 9007199254740992.0);
  return fma(x, to - from, from);
}

/* at::normal_distribution<double>: Box-Muller on two uniform draws,
   returning the cosine sample and caching the sine sample. Note that the
   radius comes from the second draw and the angle from the first, the
   reverse of normal_fill below. */
static double normal_double(generator *g, double mean, double std) {
  double z;
  if (g->has_next_double) {
    z = g->next_double;
    g->has_next_double = 0;
  } else {
    double u1 = uniform_double(g, 0.0, 1.0);
    double u2 = uniform_double(g, 0.0, 1.0);
    double r = sqrt(-2.0 * log(1.0 - u2));
    double theta = 2.0 * pi_double * u1;
    g->next_double = r * sin(theta);
    g->has_next_double = 1;
    z = r * cos(theta);
  }
  return fma(z, std, mean);
}

/* ---- float32 Box-Muller, as PyTorch's AVX2 kernel computes it ----------
 * For float32, PyTorch's normal_fill runs normal_fill_16_AVX2, whose log,
 * sine and cosine are not libm's but the Cephes polynomials of
 * avx_mathfun.h (Giovanni Garberoglio's AVX port of Julien Pommier's
 * sse_mathfun, zlib licence). libm's logf/sinf/cosf round differently in the
 * last bit, so the two functions below evaluate the same Cephes polynomials
 * (Stephen Moshier's constants) one lane at a time, with an explicit fmaf
 * exactly where gcc fuses the vector code's multiply and add. Checked
 * against torch.randn on 250,000 samples: bit-identical. */
static float float_from_bits(uint32_t b) {
  float f;
  memcpy(&f, &b, sizeof f);
  return f;
}

static uint32_t bits_from_float(float f) {
  uint32_t b;
  memcpy(&b, &f, sizeof b);
  return b;
}

/* Cephes logf: x = m 2^e with m in [sqrt(1/2), sqrt(2)), then a degree 9
   polynomial in m - 1 and log(2) split in two parts for precision. */
static float cephes_logf(float x) {
  if (x <= 0) return NAN; /* never reached from normal_: 1 - u is in (0, 1] */
  const float min_normal = float_from_bits(UINT32_C(0x00800000));
  if (!(x > min_normal)) x = min_normal;
  uint32_t bits = bits_from_float(x);
  float e = (float)((int32_t)(bits >> 23) - 0x7f) + 1.0f;
  /* keep the mantissa, with the exponent of 0.5: m in [0.5, 1) */
  x = float_from_bits((bits & ~UINT32_C(0x7f800000)) | bits_from_float(0.5f));
  /* the vector code adds x or +0 and subtracts 1 or +0 branch-free; the
     same operations here keep the roundings the same */
  int small = x < 0.707106781186547524f;
  float extra = small ? x : 0.0f;
  x = x - 1.0f;
  e = e - (small ? 1.0f : 0.0f);
  x = x + extra;
  float z = x * x;
  float y = fmaf(7.0376836292E-2f, x, -1.1514610310E-1f);
  y = fmaf(y, x, 1.1676998740E-1f);
  y = fmaf(y, x, -1.2420140846E-1f);
  y = fmaf(y, x, 1.4249322787E-1f);
  y = fmaf(y, x, -1.6668057665E-1f);
  y = fmaf(y, x, 2.0000714765E-1f);
  y = fmaf(y, x, -2.4999993993E-1f);
  y = fmaf(y, x, 3.3333331174E-1f);
  y = y * x;
  y = fmaf(y, z, e * -2.12194440e-4f);
  y = fmaf(-z, 0.5f, y);
  x = x + y;
  return fmaf(e, 0.693359375f, x);
}

/* Cephes sinf and cosf together: reduce by multiples of pi/4 (pi/4 split
   in three parts, the "extended precision modular arithmetic"), evaluate
   both polynomials, and let the octant choose which is sine and which
   cosine, and their signs. */
static void cephes_sincosf(float x, float *sine, float *cosine) {
  uint32_t sign_sin = bits_from_float(x) & UINT32_C(0x80000000);
  x = fabsf(x);
  int32_t j = (int32_t)(x * 1.27323954473516f); /* 4 / pi, truncated */
  j = (j + 1) & ~1;
  float y = (float)j;
  sign_sin ^= ((uint32_t)j & 4u) << 29;
  uint32_t sign_cos = (~(uint32_t)(j - 2) & 4u) << 29;
  int sine_is_first = (j & 2) == 0;
  x = fmaf(y, -0.78515625f, x);
  x = fmaf(y, -2.4187564849853515625e-4f, x);
  x = fmaf(y, -3.77489497744594108e-8f, x);
  float z = x * x;
  float c = fmaf(2.443315711809948E-005f, z, -1.388731625493765E-003f);
  c = fmaf(c, z, 4.166664568298827E-002f);
  c = c * z;
  c = fmaf(c, z, -(z * 0.5f));
  c = c + 1.0f;
  float s = fmaf(-1.9515295891E-4f, z, 8.3321608736E-3f);
  s = fmaf(s, z, -1.6666654611E-1f);
  s = s * z;
  s = fmaf(s, x, x);
  /* the vector code's masked select, as adds and subtracts of +0 */
  float sin_from_s = sine_is_first ? s : 0.0f;
  float sin_from_c = sine_is_first ? 0.0f : c;
  float sin_value = sin_from_c + sin_from_s;
  float cos_value = (c - sin_from_c) + (s - sin_from_s);
  *sine = float_from_bits(bits_from_float(sin_value) ^ sign_sin);
  *cosine = float_from_bits(bits_from_float(cos_value) ^ sign_cos);
}

/* normal_fill_16: Box-Muller over a block of 16 uniforms, pairing element j
   with element j + 8. 1 - u maps [0, 1) to (0, 1] so that log never sees 0.
   For float32 the angle's factor is 2 pi rounded to float, as in the AVX2
   kernel. */
static void normal_block_float(float *data, float mean, float std) {
  const float two_pi = (float)(2.0 * pi_double);
  for (int j = 0; j < 8; j++) {
    float u1 = 1.0f - data[j];
    float u2 = data[j + 8];
    float radius = sqrtf(-2.0f * cephes_logf(u1));
    float theta = two_pi * u2;
    float sine, cosine;
    cephes_sincosf(theta, &sine, &cosine);
    data[j] = fmaf(radius * cosine, std, mean);
    data[j + 8] = fmaf(radius * sine, std, mean);
  }
}

/* The scalar kernel, used for float64: libm's functions, the angle in
   double. */
static void normal_block_double(double *data, double mean, double std) {
  for (int j = 0; j < 8; j++) {
    double u1 = 1.0 - data[j];
    double u2 = data[j + 8];
    double radius = sqrt(-2.0 * log(u1));
    double theta = 2.0 * pi_double * u2;
    data[j] = fma(radius * cos(theta), std, mean);
    data[j + 8] = fma(radius * sin(theta), std, mean);
  }
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
  int64_t offset;                /* storage offset of the current element */
} fill_walk;

/* reorder_dimensions' comparison: 1 when dim a should move after dim b in
   the fastest-first order, -1 when it must stay before, 0 when ambiguous. */
static int fill_should_swap(const nn_tensor *t, int a, int b) {
  int64_t sa = t->stride[a], sb = t->stride[b];
  if (sa == 0 || sb == 0) return 0;
  if (sa < sb) return -1;
  if (sa > sb) return 1;
  return t->size[a] > t->size[b] ? 1 : 0;
}

static void fill_walk_init(fill_walk *w, const nn_tensor *t) {
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
  w->offset = t->offset;
}

static void fill_walk_next(fill_walk *w) {
  for (int d = w->ndim - 1; d >= 0; d--) {
    w->offset += w->stride[d];
    if (++w->index[d] < w->size[d]) return;
    w->offset -= w->stride[d] * w->size[d];
    w->index[d] = 0;
  }
}

/* ---- checks shared by uniform_ and normal_ ------------------------------ */
static int check_fill_target(const char *op, nn_tensor *t) {
  if (nn_check_cpu(op, t) < 0) return -1;
  if (!nn_dtype_is_floating(t->dtype)) {
    nn_error_set("%s: random values need a floating point tensor, this one is %s", op,
                 nn_dtype_name(t->dtype));
    return -1;
  }
  return 0;
}

/* ---- the CUDA generator -------------------------------------------------
   Philox is counter-based (math/philox.h): its whole state is the seed and
   how many fills have drawn from it, so a run repeats after a seed however
   the kernels are launched. PyTorch's CUDA generator starts from the same
   default seed as the CPU's. */
static struct { uint64_t seed, offset; } philox = {UINT64_C(67280421310721), 0};

void nn_cuda_manual_seed(uint64_t seed) {
  philox.seed = seed;
  philox.offset = 0;
}

uint64_t nn_cuda_initial_seed(void) { return philox.seed; }

void nn_philox_next(uint64_t counters, uint64_t *seed, uint64_t *offset) {
  *seed = philox.seed;
  *offset = philox.offset;
  philox.offset += counters;
}

/* ---- public API -------------------------------------------------------- */
void nn_manual_seed(uint64_t seed) {
  generator_seed(&the_generator, seed);
  the_generator_seeded = 1;
  nn_cuda_manual_seed(seed);
}

uint64_t nn_initial_seed(void) { return default_generator()->seed; }

/* The serialized state, little-endian whatever the machine:
     "NNRG", seed u64, left u32, next u32, state MT_N x u32,
     has_next_double u8, next_double (IEEE bits) u64,
     has_next_float u8, next_float (IEEE bits) u32. */
static const unsigned char state_magic[4] = {'N', 'N', 'R', 'G'};
enum { STATE_SIZE = 4 + 8 + 4 + 4 + 4 * MT_N + 1 + 8 + 1 + 4 };

size_t nn_rng_state_size(void) { return STATE_SIZE; }

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

void nn_rng_get_state(void *buf) {
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

int nn_rng_set_state(const void *buf, size_t len) {
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

int nn_uniform_(nn_tensor *t, double from, double to) {
  if (check_fill_target("uniform_", t) < 0) return -1;
  if (!(from <= to)) {
    nn_error_set("uniform_: expects a range [from, to) with from <= to, got from=%g, to=%g", from,
                 to);
    return -1;
  }
  /* PyTorch casts the bounds to the tensor's type before anything else. */
  float from_f = 0, to_f = 0;
  int fits = isfinite(from) && isfinite(to) && isfinite(to - from);
  if (t->dtype == NN_FLOAT32) {
    from_f = (float)from, to_f = (float)to;
    fits = isfinite(from_f) && isfinite(to_f) && isfinite(to_f - from_f);
  }
  if (!fits) {
    nn_error_set("uniform_: the range [%g, %g) does not fit in %s", from, to,
                 nn_dtype_name(t->dtype));
    return -1;
  }
  nn_inplace ip;
  int record = nn_inplace_begin(&ip, "uniform_", t, NULL, 0);
  if (record < 0) return -1;
  generator *g = default_generator();
  int64_t n = nn_numel(t);
  fill_walk w;
  fill_walk_init(&w, t);
  if (t->dtype == NN_FLOAT32) {
    float *data = t->storage->data;
    for (int64_t i = 0; i < n; i++, fill_walk_next(&w))
      data[w.offset] = uniform_float(g, from_f, to_f);
  } else {
    double *data = t->storage->data;
    for (int64_t i = 0; i < n; i++, fill_walk_next(&w))
      data[w.offset] = uniform_double(g, from, to);
  }
  nn_bump_version(t);
  return record ? nn_inplace_commit_written(&ip, "UniformBackward0") : 0;
}

int nn_normal_(nn_tensor *t, double mean, double std) {
  if (check_fill_target("normal_", t) < 0) return -1;
  if (!(std >= 0) || !isfinite(mean) || !isfinite(std)) {
    nn_error_set("normal_: expects a finite mean and std >= 0, got mean=%g, std=%g", mean, std);
    return -1;
  }
  nn_inplace ip;
  int record = nn_inplace_begin(&ip, "normal_", t, NULL, 0);
  if (record < 0) return -1;
  generator *g = default_generator();
  int64_t n = nn_numel(t);
  if (n >= 16 && nn_is_contiguous(t)) {
    if (t->dtype == NN_FLOAT32)
      normal_fill_float(g, nn_data(t), n, (float)mean, (float)std);
    else
      normal_fill_double(g, nn_data(t), n, mean, std);
  } else {
    /* Small or strided tensors take one double-precision sample per element,
       in the iterator's order, whatever the tensor's type. */
    fill_walk w;
    fill_walk_init(&w, t);
    for (int64_t i = 0; i < n; i++, fill_walk_next(&w))
      nn_store(t->dtype, t->storage->data, w.offset, normal_double(g, mean, std));
  }
  nn_bump_version(t);
  return record ? nn_inplace_commit_written(&ip, "NormalBackward0") : 0;
}

/* rand and randn check the dtype themselves, so that the message names the
   function the user called. */
static nn_tensor *random_tensor(const char *op, nn_dtype dtype, int ndim, const int64_t *size,
                                int normal) {
  if (dtype < 0 || dtype >= NN_DTYPE_COUNT || !nn_dtype_is_floating(dtype)) {
    nn_error_set("%s: random values need a floating point type, not %s", op,
                 dtype >= 0 && dtype < NN_DTYPE_COUNT ? nn_dtype_name(dtype) : "an unknown type");
    return NULL;
  }
  nn_tensor *t = nn_empty(dtype, ndim, size);
  if (!t) return NULL;
  int status = normal ? nn_normal_(t, 0.0, 1.0) : nn_uniform_(t, 0.0, 1.0);
  if (status < 0) {
    nn_release(t);
    return NULL;
  }
  return t;
}

nn_tensor *nn_rand(nn_dtype dtype, int ndim, const int64_t *size) {
  return random_tensor("rand", dtype, ndim, size, 0);
}

nn_tensor *nn_randn(nn_dtype dtype, int ndim, const int64_t *size) {
  return random_tensor("randn", dtype, ndim, size, 1);
}

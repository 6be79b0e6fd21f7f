/* cuda/random.cu: the GPU's own generator, Philox4x32-10 (math/random.h),
 * and the uniform and normal fills over it.
 *
 * A fill is one call: the generator's key is the seed, and the call's
 * number (the offset, counted from the last seeding) is the high half of
 * every counter it uses; the low half numbers the groups of elements, one
 * Philox draw (four 32-bit words) per group: four float32 values or two
 * float64 ones. So any thread computes its own elements alone, and the same
 * seed gives the same numbers run after run whatever the launch shape.
 * The draws differ from the CPU's (PyTorch's mt19937); the transforms from
 * bits to numbers are the CPU's (math/random.h). */
#include "cuda/common.cuh"
#include "math/random.h"

/* PyTorch's default seed, as the CPU generator's. */
static const uint64_t default_seed = UINT64_C(67280421310721);
static uint64_t generator_seed = default_seed;
static uint64_t generator_offset;

/* Elements of one fill per Philox draw. */
__device__ __forceinline__ int per_draw(nn_dtype dtype) { return dtype == NN_FLOAT32 ? 4 : 2; }


/* u in [0, 1): the k-th value a draw gives for dtype */
__device__ __forceinline__ double draw_uniform(nn_dtype dtype, const uint32_t bits[4], int k, double from,
                                               double to) {
  if (dtype == NN_FLOAT32) return nn_uniform_f32(bits[k], (float)from, (float)to);
  uint64_t b = ((uint64_t)bits[2 * k] << 32) | bits[2 * k + 1];
  return nn_uniform_f64(b, from, to);
}

__global__ void random_kernel(nn_strided t, int64_t n, uint64_t seed, uint64_t offset, int normal, double a,
                              double b) {
  int each = per_draw(t.dtype);
  int64_t groups = (n + each - 1) / each, step = (int64_t)gridDim.x * blockDim.x;
  for (int64_t group = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; group < groups; group += step) {
    uint32_t bits[4];
    nn_cuda_philox_draw(seed, offset, (uint64_t)group, bits);
    double values[4];
    if (!normal) {
      for (int k = 0; k < each; k++) values[k] = draw_uniform(t.dtype, bits, k, a, b);
    } else if (t.dtype == NN_FLOAT32) {
      /* Box-Muller on pairs: (radius's uniform, angle's uniform) */
      for (int k = 0; k < 4; k += 2) {
        float u = nn_uniform_f32(bits[k], 0.0f, 1.0f), v = nn_uniform_f32(bits[k + 1], 0.0f, 1.0f);
        nn_normal_pair_f32(&u, &v, (float)a, (float)b);
        values[k] = u, values[k + 1] = v;
      }
    } else {
      double u = draw_uniform(NN_FLOAT64, bits, 0, 0, 1), v = draw_uniform(NN_FLOAT64, bits, 1, 0, 1);
      nn_normal_pair_f64(&u, &v, a, b);
      values[0] = u, values[1] = v;
    }
    for (int k = 0; k < each && group * each + k < n; k++)
      nn_store(t.dtype, t.data, nn_cuda_strided_offset(t, group * each + k), values[k]);
  }
}

static int random_fill(const char *op, const nn_strided *t, int normal, double a, double b) {
  int64_t n = 1;
  for (int d = 0; d < t->ndim; d++) n *= t->size[d];
  if (n <= 0) return 0;
  int64_t groups = (n + 1) / 2; /* at most: two elements a draw */
  random_kernel<<<nn_cuda_blocks(groups, NN_CUDA_THREADS), NN_CUDA_THREADS, 0, nn_cuda_stream()>>>(
      *t, n, generator_seed, generator_offset, normal, a, b);
  if (nn_cuda_launched(op) < 0) return -1;
  generator_offset++;
  return 0;
}

static int cuda_uniform(const nn_strided *t, double from, double to) {
  return random_fill("uniform", t, 0, from, to);
}

static int cuda_normal(const nn_strided *t, double mean, double std) {
  return random_fill("normal", t, 1, mean, std);
}

void nn_cuda_generator_next(uint64_t *seed, uint64_t *offset) {
  *seed = generator_seed;
  *offset = generator_offset++;
}

static void cuda_manual_seed(uint64_t seed) {
  generator_seed = seed;
  generator_offset = 0;
}

static uint64_t cuda_initial_seed(void) { return generator_seed; }

/* The serialized state, little-endian whatever the machine: "NNCR", seed
   u64, offset u64. */
static const unsigned char state_magic[4] = {'N', 'N', 'C', 'R'};
enum { STATE_SIZE = 4 + 8 + 8 };

static size_t cuda_rng_state_size(void) { return STATE_SIZE; }

static void cuda_rng_get_state(void *buf) {
  unsigned char *p = (unsigned char *)buf;
  memcpy(p, state_magic, sizeof state_magic);
  for (int i = 0; i < 8; i++) p[4 + i] = (unsigned char)(generator_seed >> (8 * i));
  for (int i = 0; i < 8; i++) p[12 + i] = (unsigned char)(generator_offset >> (8 * i));
}

static int cuda_rng_set_state(const void *buf, size_t len) {
  const unsigned char *p = (const unsigned char *)buf;
  if (!buf || len != STATE_SIZE) {
    nn_error_set("rng_set_state: a cuda generator state is %d bytes, got %zu", STATE_SIZE, buf ? len : (size_t)0);
    return -1;
  }
  if (memcmp(p, state_magic, sizeof state_magic) != 0) {
    nn_error_set("rng_set_state: these bytes are not a cuda generator state");
    return -1;
  }
  uint64_t seed = 0, offset = 0;
  for (int i = 0; i < 8; i++) seed |= (uint64_t)p[4 + i] << (8 * i);
  for (int i = 0; i < 8; i++) offset |= (uint64_t)p[12 + i] << (8 * i);
  generator_seed = seed;
  generator_offset = offset;
  return 0;
}

void nn_cuda_fill_random_kernels(nn_backend *b) {
  b->uniform = cuda_uniform;
  b->normal = cuda_normal;
  b->manual_seed = cuda_manual_seed;
  b->initial_seed = cuda_initial_seed;
  b->rng_state_size = cuda_rng_state_size;
  b->rng_get_state = cuda_rng_get_state;
  b->rng_set_state = cuda_rng_set_state;
}

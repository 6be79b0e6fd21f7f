/* cuda/conv.cu: convolution's patches on the GPU, the kernels of
 * cpu/conv.c (backend.h's nn_patch_geom says what they compute).
 * im2col: one thread per element of the columns, which reads its image
 * element or writes the padding's zero. col2im: one thread per image
 * element, which sums the column elements that land on it (no atomics, so
 * the sums come out in the same order on every run). */
#include "cuda/common.cuh"

/* Where column element (sample n, row, position l) lies in the columns. */
__device__ __forceinline__ int64_t column_at(const nn_patch_geom &g, int64_t n, int64_t row, int64_t l) {
  return n * g.col_sample_stride + row * g.col_row_stride + l;
}

template <typename T>
__global__ void im2col_kernel(nn_patch_geom g, const T *image, T *cols, int64_t total) {
  int64_t positions = g.out_h * g.out_w, kernel = g.kernel_h * g.kernel_w;
  int64_t step = (int64_t)gridDim.x * blockDim.x;
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += step) {
    /* i runs over (n, c, tap, oy, ox), positions innermost */
    int64_t l = i % positions, rest = i / positions;
    int64_t tap = rest % kernel, nc = rest / kernel;
    int64_t c = nc % g.channels, n = nc / g.channels;
    int64_t oy = l / g.out_w, ox = l % g.out_w;
    int64_t iy = oy * g.stride_h - g.pad_h + tap / g.kernel_w * g.dilation_h;
    int64_t ix = ox * g.stride_w - g.pad_w + tap % g.kernel_w * g.dilation_w;
    T v = 0;
    if (iy >= 0 && iy < g.height && ix >= 0 && ix < g.width)
      v = image[n * g.image_sample_stride + (c * g.height + iy) * g.width + ix];
    cols[column_at(g, n, c * kernel + tap, l)] = v;
  }
}

template <typename T>
__global__ void col2im_kernel(nn_patch_geom g, const T *cols, T *image, int64_t total) {
  int64_t kernel = g.kernel_h * g.kernel_w, plane = g.height * g.width;
  int64_t step = (int64_t)gridDim.x * blockDim.x;
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += step) {
    /* i runs over (n, c, y, x) */
    int64_t x = i % g.width, y = i / g.width % g.height, nc = i / plane;
    int64_t c = nc % g.channels, n = nc / g.channels;
    T sum = 0;
    for (int64_t ki = 0; ki < g.kernel_h; ki++) {
      int64_t ty = y + g.pad_h - ki * g.dilation_h; /* oy stride_h */
      if (ty < 0 || ty % g.stride_h) continue;
      int64_t oy = ty / g.stride_h;
      if (oy >= g.out_h) continue;
      for (int64_t kj = 0; kj < g.kernel_w; kj++) {
        int64_t tx = x + g.pad_w - kj * g.dilation_w;
        if (tx < 0 || tx % g.stride_w) continue;
        int64_t ox = tx / g.stride_w;
        if (ox >= g.out_w) continue;
        sum += cols[column_at(g, n, c * kernel + ki * g.kernel_w + kj, oy * g.out_w + ox)];
      }
    }
    image[n * g.image_sample_stride + c * plane + y * g.width + x] += sum;
  }
}

static int cuda_im2col(const nn_patch_geom *g, const void *image, void *cols) {
  int64_t total = g->batch * g->channels * g->kernel_h * g->kernel_w * g->out_h * g->out_w;
  if (total <= 0) return 0;
  unsigned blocks = nn_cuda_blocks(total, NN_CUDA_THREADS);
  if (g->dtype == NN_FLOAT32)
    im2col_kernel<float><<<blocks, NN_CUDA_THREADS, 0, nn_cuda_stream()>>>(*g, (const float *)image,
                                                                            (float *)cols, total);
  else
    im2col_kernel<double><<<blocks, NN_CUDA_THREADS, 0, nn_cuda_stream()>>>(*g, (const double *)image,
                                                                             (double *)cols, total);
  return nn_cuda_launched("im2col");
}

static int cuda_col2im(const nn_patch_geom *g, const void *cols, void *image) {
  int64_t total = g->batch * g->channels * g->height * g->width;
  if (total <= 0) return 0;
  unsigned blocks = nn_cuda_blocks(total, NN_CUDA_THREADS);
  if (g->dtype == NN_FLOAT32)
    col2im_kernel<float><<<blocks, NN_CUDA_THREADS, 0, nn_cuda_stream()>>>(*g, (const float *)cols,
                                                                            (float *)image, total);
  else
    col2im_kernel<double><<<blocks, NN_CUDA_THREADS, 0, nn_cuda_stream()>>>(*g, (const double *)cols,
                                                                             (double *)image, total);
  return nn_cuda_launched("col2im");
}

void nn_cuda_fill_conv_kernels(nn_backend *b) {
  b->im2col = cuda_im2col;
  b->col2im = cuda_col2im;
}

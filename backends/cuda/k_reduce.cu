/* Per-channel sums (kernels_optim.h: amp_cuda_reduce_channels): the bias gradients of Conv
 * (x = dY as [N, C, H*W]) and Gemm (x = dY as [rows, N, 1]).
 *
 * Two kernels, both deterministic (a fixed order of f32 adds, no atomics):
 * - inner >= 32: one block per channel; its threads walk the channel's outer * inner elements
 *   with a block-wide stride (consecutive threads read consecutive i, so loads coalesce), then
 *   a shared-memory tree adds the threads' partial sums.
 * - inner < 32: one thread per channel adds its elements in order (consecutive threads read
 *   consecutive channels when inner is 1, the Gemm case); no barrier, so a plain launch. */
#include "backends/cuda/launch.h"

#include "backends/cuda/kernels_optim.h"

#define RED_THREADS 256 /* a power of two: the tree halves it */
#define RED_INNER_MIN 32

static __device__ void store_channel(amp_dtype yt, void *y, int64_t c, float sum, float alpha, float beta) {
  float v = alpha * sum;
  if (beta != 0.0f) v += beta * amp_cuda_ldf(yt, y, c);
  amp_cuda_stf(yt, y, c, v);
}

/* barrier 0 is the planted bug of amp_cuda_reduce_channels_flags (a test proves it is caught) */
__global__ void reduce_channels_block(amp_dtype xt, const void *x, amp_dtype yt, void *y, int64_t outer,
                                      int64_t channels, int64_t inner, float alpha, float beta, int barrier) {
  __shared__ float part[RED_THREADS];
  const unsigned t = threadIdx.x;
  const int64_t c = blockIdx.x, n = outer * inner;
  /* element k = o * inner + i of the channel, k = t, t + blockDim, ...; (o, i) follow k */
  int64_t o = (int64_t)t / inner, i = (int64_t)t % inner;
  float acc = 0.0f;
  for (int64_t k = t; k < n; k += blockDim.x) {
    acc += amp_cuda_ldf(xt, x, (o * channels + c) * inner + i);
    i += blockDim.x;
    while (i >= inner) {
      i -= inner;
      o++;
    }
  }
  part[t] = acc;
  if (barrier) __syncthreads();
  for (unsigned h = blockDim.x / 2; h > 0; h /= 2) {
    if (t < h) part[t] += part[t + h];
    __syncthreads();
  }
  if (t == 0) store_channel(yt, y, c, part[0], alpha, beta);
}

__global__ void reduce_channels_thread(amp_dtype xt, const void *x, amp_dtype yt, void *y, int64_t outer,
                                       int64_t channels, int64_t inner, float alpha, float beta) {
  const int64_t c = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (c >= channels) return;
  float acc = 0.0f;
  for (int64_t o = 0; o < outer; o++)
    for (int64_t i = 0; i < inner; i++) acc += amp_cuda_ldf(xt, x, (o * channels + c) * inner + i);
  store_channel(yt, y, c, acc, alpha, beta);
}

extern "C" cudaError_t amp_cuda_reduce_channels_flags(cudaStream_t s, amp_dtype xt, const void *x, amp_dtype yt,
                                                      void *y, int64_t outer, int64_t channels, int64_t inner,
                                                      float alpha, float beta, unsigned flags) {
  const bool xok = xt == AMP_F32 || xt == AMP_F16 || xt == AMP_BF16, yok = yt == AMP_F32 || yt == AMP_F16 || yt == AMP_BF16;
  if (!xok || !yok || outer < 0 || channels < 0 || inner < 0 || channels > 0x7fffffff) return cudaErrorInvalidValue;
  if (channels == 0) return cudaSuccess;
  /* one channel: its elements are contiguous, [1, 1, outer * inner] */
  if (channels == 1) {
    inner *= outer;
    outer = 1;
  }
  if (outer == 0 || inner == 0) outer = inner = 0;
  if (inner >= RED_INNER_MIN)
    return AMP_CUDA_LAUNCH(reduce_channels_block, dim3((unsigned)channels), dim3(RED_THREADS), 0, s, xt, x, yt, y,
                           outer, channels, inner, alpha, beta, (flags & AMP_CUDA_REDUCE_PLANT_NO_BARRIER) ? 0 : 1);
  const unsigned threads = channels < RED_THREADS ? (unsigned)channels : RED_THREADS;
  const unsigned blocks = (unsigned)((channels + threads - 1) / threads);
  return AMP_CUDA_LAUNCH_PLAIN(reduce_channels_thread, dim3(blocks), dim3(threads), 0, s, xt, x, yt, y, outer,
                               channels, inner, alpha, beta);
}

extern "C" cudaError_t amp_cuda_reduce_channels(cudaStream_t s, amp_dtype xt, const void *x, amp_dtype yt, void *y,
                                                int64_t outer, int64_t channels, int64_t inner, float alpha,
                                                float beta) {
  return amp_cuda_reduce_channels_flags(s, xt, x, yt, y, outer, channels, inner, alpha, beta, 0);
}

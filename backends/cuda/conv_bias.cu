/* Conv's bias and its gradient on the device (conv_bias.h). */
#include "backends/cuda/launch.h"

#include "backends/cuda/conv_bias.h"
#include "base/half.h"

namespace {

__device__ __forceinline__ float load(amp_dtype dt, const void *p, int64_t i) {
  if (dt == AMP_F16) return amp_f16_to_f32(static_cast<const uint16_t *>(p)[i]);
  if (dt == AMP_BF16) return amp_bf16_to_f32(static_cast<const uint16_t *>(p)[i]);
  return static_cast<const float *>(p)[i];
}

__device__ __forceinline__ void store(amp_dtype dt, void *p, int64_t i, float v) {
  if (dt == AMP_F16)
    static_cast<uint16_t *>(p)[i] = amp_f32_to_f16(v);
  else if (dt == AMP_BF16)
    static_cast<uint16_t *>(p)[i] = amp_f32_to_bf16(v);
  else
    static_cast<float *>(p)[i] = v;
}

__global__ void conv_bias_add(amp_dtype dt, void *y, const void *b, int64_t C, int64_t S, int64_t total) {
  int64_t step = (int64_t)gridDim.x * blockDim.x;
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += step)
    store(dt, y, i, load(dt, y, i) + load(dt, b, (i / S) % C));
}

constexpr int kGradThreads = 256;

/* one block per channel: each thread sums a strided part of the channel's N*S values, then the
 * block adds the partial sums (shared memory down to a warp, shuffles within it) */
__global__ void conv_bias_grad(amp_dtype dt, const void *dy, void *db, int64_t N, int64_t C, int64_t S) {
  __shared__ float part[kGradThreads];
  int64_t c = blockIdx.x, count = N * S;
  float acc = 0.0f;
  for (int64_t j = threadIdx.x; j < count; j += blockDim.x) acc += load(dt, dy, ((j / S) * C + c) * S + j % S);
  part[threadIdx.x] = acc;
  __syncthreads();
  for (unsigned half = kGradThreads / 2; half >= 32; half /= 2) {
    if (threadIdx.x < half) part[threadIdx.x] += part[threadIdx.x + half];
    __syncthreads();
  }
  if (threadIdx.x < 32) {
    float v = part[threadIdx.x];
    for (int off = 16; off > 0; off /= 2) v += __shfl_down_sync(0xffffffffu, v, (unsigned)off);
    if (threadIdx.x == 0) store(dt, db, c, v);
  }
}

}  // namespace

extern "C" cudaError_t amp_cuda_conv_bias_add(cudaStream_t stream, amp_dtype dt, void *y, const void *b, int64_t N,
                                              int64_t C, int64_t S) {
  int64_t total = N * C * S;
  if (total == 0) return cudaSuccess;
  int64_t blocks = (total + 255) / 256;
  if (blocks > 4096) blocks = 4096;
  return AMP_CUDA_LAUNCH_PLAIN(conv_bias_add, dim3((unsigned)blocks), dim3(256), 0, stream, dt, y, b, C, S, total);
}

extern "C" cudaError_t amp_cuda_conv_bias_grad(cudaStream_t stream, amp_dtype dt, const void *dy, void *db, int64_t N,
                                               int64_t C, int64_t S) {
  if (C == 0) return cudaSuccess;
  return AMP_CUDA_LAUNCH(conv_bias_grad, dim3((unsigned)C), dim3(kGradThreads), 0, stream, dt, dy, db, N, C, S);
}

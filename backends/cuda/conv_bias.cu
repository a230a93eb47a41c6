/* Conv's bias and activation on the device (conv_bias.h). */
#include "backends/cuda/launch.h"

#include "backends/cuda/conv_bias.h"
#include "backends/cuda/kernels_optim.h" /* amp_cuda_ldf, amp_cuda_stf */
#include "backends/elementwise.h"        /* amp_relu_f: the CPU's Relu */

namespace {

__global__ void conv_bias_add(amp_dtype dt, void *y, const void *b, int64_t C, int64_t S, int64_t total, bool relu) {
  int64_t step = (int64_t)gridDim.x * blockDim.x;
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += step) {
    float v = amp_cuda_ldf(dt, y, i) + amp_cuda_ldf(dt, b, (i / S) % C);
    amp_cuda_stf(dt, y, i, relu ? amp_relu_f(v) : v);
  }
}

/* relu alone: a conv without bias whose fused graph did not finalise */
__global__ void conv_relu(amp_dtype dt, void *y, int64_t total) {
  int64_t step = (int64_t)gridDim.x * blockDim.x;
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += step)
    amp_cuda_stf(dt, y, i, amp_relu_f(amp_cuda_ldf(dt, y, i)));
}

}  // namespace

extern "C" cudaError_t amp_cuda_conv_bias_add(cudaStream_t stream, amp_dtype dt, void *y, const void *b, int64_t N,
                                              int64_t C, int64_t S, bool relu) {
  int64_t total = N * C * S;
  if (total == 0 || (!b && !relu)) return cudaSuccess;
  int64_t blocks = (total + 255) / 256;
  if (blocks > 4096) blocks = 4096;
  if (!b) return AMP_CUDA_LAUNCH_PLAIN(conv_relu, dim3((unsigned)blocks), dim3(256), 0, stream, dt, y, total);
  return AMP_CUDA_LAUNCH_PLAIN(conv_bias_add, dim3((unsigned)blocks), dim3(256), 0, stream, dt, y, b, C, S, total,
                               relu);
}

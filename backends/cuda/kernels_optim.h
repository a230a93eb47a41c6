/* Launchers of amprt's own reduction, optimizer and loss-scaling kernels (k_reduce.cu,
 * k_optim.cu), callable from C. Each enqueues its work on the stream it is given and returns the
 * launch's status; none allocates, none synchronises, none reads device memory on the host.
 * Every pointer is device memory. */
#ifndef AMP_BACKENDS_CUDA_KERNELS_OPTIM_H
#define AMP_BACKENDS_CUDA_KERNELS_OPTIM_H

#include <cuda_runtime_api.h>
#include <stdbool.h>
#include <stdint.h>

#include "base/base.h" /* amp_dtype, amp_tensor */

#ifdef __cplusplus
extern "C" {
#endif

/* Per-channel sums: y[c] = alpha * sum over (o, i) of x[o, c, i] + beta * y[c], for x of shape
 * [outer, channels, inner] (contiguous) and y of [channels]. x and y are f32, f16 or bf16 (they
 * may differ); the sums run in f32, in a fixed order (no atomics), so a launch gives the same
 * bits every time. beta 0: y is not read (it may hold anything, NaN included). An empty x
 * (outer or inner 0) gives y = beta * y. ConvGrad's bias gradient is (N, C, H*W); GemmCGrad's
 * bias is (rows, N, 1).
 * cudaErrorInvalidValue for another dtype, a negative size or more than 2^31-1 channels. */
cudaError_t amp_cuda_reduce_channels(cudaStream_t s, amp_dtype xt, const void *x, amp_dtype yt, void *y,
                                     int64_t outer, int64_t channels, int64_t inner, float alpha, float beta);

/* Test only. AMP_CUDA_REDUCE_PLANT_NO_BARRIER leaves out the barrier between the threads'
 * partial sums and the shared-memory tree that adds them (a planted bug the emulator must
 * expose); flags 0 is amp_cuda_reduce_channels. */
enum { AMP_CUDA_REDUCE_PLANT_NO_BARRIER = 1 };
cudaError_t amp_cuda_reduce_channels_flags(cudaStream_t s, amp_dtype xt, const void *x, amp_dtype yt, void *y,
                                           int64_t outer, int64_t channels, int64_t inner, float alpha, float beta,
                                           unsigned flags);

#ifdef __cplusplus
}
#endif

/* ---- device side: for the kernel files (nvcc, or the host compiler through the emulator) ---- */
#if defined(__CUDACC__) || defined(AMP_CUDA_EMU_H)
#include "base/half.h"

/* element i of an f32, f16 or bf16 array, in f32 */
static inline __device__ float amp_cuda_ldf(amp_dtype t, const void *p, int64_t i) {
  switch (t) {
    case AMP_F16: return amp_f16_to_f32(((const uint16_t *)p)[i]);
    case AMP_BF16: return amp_bf16_to_f32(((const uint16_t *)p)[i]);
    default: return ((const float *)p)[i];
  }
}

/* stores v, rounded to nearest even for f16 and bf16 */
static inline __device__ void amp_cuda_stf(amp_dtype t, void *p, int64_t i, float v) {
  switch (t) {
    case AMP_F16: ((uint16_t *)p)[i] = amp_f32_to_f16(v); break;
    case AMP_BF16: ((uint16_t *)p)[i] = amp_f32_to_bf16(v); break;
    default: ((float *)p)[i] = v; break;
  }
}
#endif

#endif

/* The convolution family's own kernel (conv_bias.cu): Conv's bias. (Its gradient is
 * amp_cuda_reduce_channels, kernels_optim.h.) */
#ifndef AMP_BACKENDS_CUDA_CONV_BIAS_H
#define AMP_BACKENDS_CUDA_CONV_BIAS_H

#include <cuda_runtime_api.h>
#include <stdint.h>

#include "amprt/amprt.h"

#ifdef __cplusplus
extern "C" {
#endif

/* y[n, c, s] += b[c] over N images of C channels of S positions (NCHW, packed) in f32, f16 or
 * bf16, added in f32 and rounded once on store; enqueued on stream */
cudaError_t amp_cuda_conv_bias_add(cudaStream_t stream, amp_dtype dt, void *y, const void *b, int64_t N, int64_t C,
                                   int64_t S);

#ifdef __cplusplus
}
#endif

#endif

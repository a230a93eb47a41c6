/* The convolution family's own kernel (conv_bias.cu): Conv's bias and activation where cuDNN's
 * graph does not fuse them. (The bias gradient is amp_cuda_reduce_channels, kernels_optim.h.) */
#ifndef AMP_BACKENDS_CUDA_CONV_BIAS_H
#define AMP_BACKENDS_CUDA_CONV_BIAS_H

#include <cuda_runtime_api.h>
#include <stdbool.h>
#include <stdint.h>

#include "amprt/amprt.h"

#ifdef __cplusplus
extern "C" {
#endif

/* y[n, c, s] = act(y[n, c, s] + b[c]) over N images of C channels of S positions (NCHW, packed)
 * in f32, f16 or bf16, computed in f32 and rounded once on store; act is relu (amp_relu_f) when
 * relu, else none. b NULL: no bias (relu alone; nothing to do without relu). Enqueued on stream. */
cudaError_t amp_cuda_conv_bias_add(cudaStream_t stream, amp_dtype dt, void *y, const void *b, int64_t N, int64_t C,
                                   int64_t S, bool relu);

#ifdef __cplusplus
}
#endif

#endif

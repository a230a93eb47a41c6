/* The convolution family's own kernels (conv_bias.cu): the bias of Conv and its gradient.
 *
 * Both take the tensor as N images of C channels of S positions (NCHW, packed) in f32, f16 or
 * bf16, compute in f32 and round once on store, and enqueue on stream. */
#ifndef AMP_BACKENDS_CUDA_CONV_BIAS_H
#define AMP_BACKENDS_CUDA_CONV_BIAS_H

#include <cuda_runtime_api.h>
#include <stdint.h>

#include "amprt/amprt.h"

#ifdef __cplusplus
extern "C" {
#endif

/* y[n, c, s] += b[c] */
cudaError_t amp_cuda_conv_bias_add(cudaStream_t stream, amp_dtype dt, void *y, const void *b, int64_t N, int64_t C,
                                   int64_t S);
/* db[c] = sum over n and s of dy[n, c, s] (one block per channel) */
cudaError_t amp_cuda_conv_bias_grad(cudaStream_t stream, amp_dtype dt, const void *dy, void *db, int64_t N, int64_t C,
                                    int64_t S);

#ifdef __cplusplus
}
#endif

#endif

/* CUDA runtime, cuBLASLt and cuDNN statuses as amp statuses.
 *
 * Every library call of the CUDA backend goes through one of these, as an expression:
 *
 *     amp_status s = AMP_CUDA_RT(ctx, cudaMalloc(&p, n));
 *     if (s) goto fail;
 *
 * On failure the context's message names the call, the file and line, and the library's own
 * words (cudaGetErrorString, cublasLtGetStatusString, cudnnGetErrorString and cuDNN's last
 * error text). Mapping: out of device or host memory is AMP_ERR_NO_MEMORY; no device, no driver
 * or a driver too old is AMP_ERR_NO_DEVICE; "not supported" from cuBLASLt or cuDNN is
 * AMP_ERR_UNSUPPORTED; everything else is AMP_ERR_BACKEND. */
#ifndef AMP_BACKENDS_CUDA_CUDA_STATUS_H
#define AMP_BACKENDS_CUDA_CUDA_STATUS_H

#include <cublasLt.h>
#include <cuda_runtime_api.h>
#include <cudnn.h>

#include "base/base.h"

#ifdef __cplusplus
extern "C" {
#endif

amp_status amp_cuda_rt_status(amp_context *ctx, cudaError_t e, const char *call, const char *file, int line);
amp_status amp_cuda_lt_status(amp_context *ctx, cublasStatus_t e, const char *call, const char *file, int line);
amp_status amp_cuda_dnn_status(amp_context *ctx, cudnnStatus_t e, const char *call, const char *file, int line);

/* The amp status of one status code, without a message (tests, and callers that add their own). */
amp_status amp_cuda_rt_code(cudaError_t e);
amp_status amp_cuda_lt_code(cublasStatus_t e);
amp_status amp_cuda_dnn_code(cudnnStatus_t e);

#ifdef __cplusplus
}
#endif

#define AMP_CUDA_RT(ctx, call) amp_cuda_rt_status((ctx), (call), #call, __FILE__, __LINE__)
#define AMP_CUDA_LT(ctx, call) amp_cuda_lt_status((ctx), (call), #call, __FILE__, __LINE__)
#define AMP_CUDA_DNN(ctx, call) amp_cuda_dnn_status((ctx), (call), #call, __FILE__, __LINE__)

#endif

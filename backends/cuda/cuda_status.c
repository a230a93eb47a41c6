/* CUDA runtime, cuBLASLt and cuDNN statuses as amp statuses (cuda_status.h). */
#include <string.h>

#include "backends/cuda/cuda_status.h"

/* the file name without its folders, as the messages elsewhere in amprt name files */
static const char *base_name(const char *file) {
    const char *slash = strrchr(file, '/');
    return slash ? slash + 1 : file;
}

amp_status amp_cuda_rt_code(cudaError_t e) {
    switch (e) {
    case cudaSuccess: return AMP_OK;
    case cudaErrorMemoryAllocation: return AMP_ERR_NO_MEMORY;
    case cudaErrorNoDevice:
    case cudaErrorInsufficientDriver:
    case cudaErrorInvalidDevice:
    case cudaErrorDevicesUnavailable:
    case cudaErrorStubLibrary: return AMP_ERR_NO_DEVICE;
    case cudaErrorNotSupported: return AMP_ERR_UNSUPPORTED;
    default: return AMP_ERR_BACKEND;
    }
}

amp_status amp_cuda_lt_code(cublasStatus_t e) {
    switch (e) {
    case CUBLAS_STATUS_SUCCESS: return AMP_OK;
    case CUBLAS_STATUS_ALLOC_FAILED: return AMP_ERR_NO_MEMORY;
    case CUBLAS_STATUS_NOT_SUPPORTED:
    case CUBLAS_STATUS_ARCH_MISMATCH: return AMP_ERR_UNSUPPORTED;
    case CUBLAS_STATUS_NOT_INITIALIZED: return AMP_ERR_NO_DEVICE;
    default: return AMP_ERR_BACKEND;
    }
}

amp_status amp_cuda_dnn_code(cudnnStatus_t e) {
    if (e == CUDNN_STATUS_SUCCESS) return AMP_OK;
    switch ((int)e) {
    case CUDNN_STATUS_INTERNAL_ERROR_HOST_ALLOCATION_FAILED:
    case CUDNN_STATUS_INTERNAL_ERROR_DEVICE_ALLOCATION_FAILED: return AMP_ERR_NO_MEMORY;
    case CUDNN_STATUS_NOT_SUPPORTED_INCOMPATIBLE_CUDA_DRIVER:
    case CUDNN_STATUS_NOT_SUPPORTED_ARCH_MISMATCH: return AMP_ERR_NO_DEVICE;
    default: break;
    }
    if ((int)e >= 3000 && (int)e < 4000) return AMP_ERR_UNSUPPORTED;
    return AMP_ERR_BACKEND;
}

amp_status amp_cuda_rt_status(amp_context *ctx, cudaError_t e, const char *call, const char *file, int line) {
    amp_status s = amp_cuda_rt_code(e);
    if (!s) return AMP_OK;
    return amp_seterr(ctx, s, "%s:%d: %s failed: %s (%s)", base_name(file), line, call, cudaGetErrorString(e),
                      cudaGetErrorName(e));
}

amp_status amp_cuda_lt_status(amp_context *ctx, cublasStatus_t e, const char *call, const char *file, int line) {
    amp_status s = amp_cuda_lt_code(e);
    if (!s) return AMP_OK;
    return amp_seterr(ctx, s, "%s:%d: %s failed: %s (%s)", base_name(file), line, call, cublasLtGetStatusString(e),
                      cublasLtGetStatusName(e));
}

amp_status amp_cuda_dnn_status(amp_context *ctx, cudnnStatus_t e, const char *call, const char *file, int line) {
    amp_status s = amp_cuda_dnn_code(e);
    if (!s) return AMP_OK;
    char last[512];
    last[0] = '\0';
    cudnnGetLastErrorString(last, sizeof last);
    return amp_seterr(ctx, s, "%s:%d: %s failed: %s%s%s", base_name(file), line, call, cudnnGetErrorString(e),
                      last[0] ? ": " : "", last);
}

/* Statuses of the CUDA runtime, cuBLASLt and cuDNN as amp statuses: the mapping and the message
 * (call, file and line, the library's words). */
#include "backends/cuda/cuda_status.h"
#include "tests/cuda/cuda_test.h"

static void t_codes(void) {
    CT_CHECK(amp_cuda_rt_code(cudaSuccess) == AMP_OK, "success");
    CT_CHECK(amp_cuda_rt_code(cudaErrorMemoryAllocation) == AMP_ERR_NO_MEMORY, "device memory");
    CT_CHECK(amp_cuda_rt_code(cudaErrorNoDevice) == AMP_ERR_NO_DEVICE, "no device");
    CT_CHECK(amp_cuda_rt_code(cudaErrorInsufficientDriver) == AMP_ERR_NO_DEVICE, "old driver");
    CT_CHECK(amp_cuda_rt_code(cudaErrorLaunchFailure) == AMP_ERR_BACKEND, "launch failure");
    CT_CHECK(amp_cuda_lt_code(CUBLAS_STATUS_ALLOC_FAILED) == AMP_ERR_NO_MEMORY, "cublasLt memory");
    CT_CHECK(amp_cuda_lt_code(CUBLAS_STATUS_NOT_SUPPORTED) == AMP_ERR_UNSUPPORTED, "cublasLt unsupported");
    CT_CHECK(amp_cuda_lt_code(CUBLAS_STATUS_EXECUTION_FAILED) == AMP_ERR_BACKEND, "cublasLt failure");
    CT_CHECK(amp_cuda_dnn_code(CUDNN_STATUS_SUCCESS) == AMP_OK, "cudnn success");
    CT_CHECK(amp_cuda_dnn_code(CUDNN_STATUS_NOT_SUPPORTED_SHAPE) == AMP_ERR_UNSUPPORTED, "cudnn shape");
    CT_CHECK(amp_cuda_dnn_code(CUDNN_STATUS_INTERNAL_ERROR_DEVICE_ALLOCATION_FAILED) == AMP_ERR_NO_MEMORY,
             "cudnn memory");
    CT_CHECK(amp_cuda_dnn_code(CUDNN_STATUS_BAD_PARAM) == AMP_ERR_BACKEND, "cudnn bad param");
}

static void t_messages(void) {
    amp_context *ctx = NULL;
    CT_CHECK(amp_context_create(NULL, &ctx) == AMP_OK, "context");
    amp_status s = AMP_CUDA_LT(ctx, CUBLAS_STATUS_NOT_SUPPORTED);
    const char *m = amp_context_last_error(ctx);
    int ok = s == AMP_ERR_UNSUPPORTED && strstr(m, "test_cuda_status.c:") && strstr(m, "CUBLAS_STATUS_NOT_SUPPORTED");
    if (!ok) amp_context_destroy(ctx);
    CT_CHECK(ok, "cublasLt message: %s", m);
    s = AMP_CUDA_DNN(ctx, CUDNN_STATUS_BAD_PARAM);
    m = amp_context_last_error(ctx);
    ok = s == AMP_ERR_BACKEND && strstr(m, "CUDNN_STATUS_BAD_PARAM") && strstr(m, "failed");
    if (!ok) amp_context_destroy(ctx);
    CT_CHECK(ok, "cudnn message: %s", m);
    s = AMP_CUDA_LT(ctx, CUBLAS_STATUS_SUCCESS);
    amp_context_destroy(ctx);
    CT_CHECK(s == AMP_OK, "success sets no error");
}

static const ct_case cases[] = {{"codes", t_codes}, {"messages", t_messages}, {NULL, NULL}};

int main(int argc, char **argv) { return ct_main(argc, argv, cases); }

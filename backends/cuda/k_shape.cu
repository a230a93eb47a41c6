/* Shape's output written by a kernel whose arguments carry the values (kernels.h:
 * amp_k_write_i64): the dims are known when the step is planned, and a host-to-device copy of
 * them would read host memory at run time (and a captured graph would keep reading it). Also
 * the launch detail of kernels.h. */
#include "backends/cuda/kernels_dev.h"

struct amp_k_i64x8 {
    int64_t v[8];
};

/* One thread; the unrolled loop indexes v with constants, so v stays in the parameter space
 * (an index by thread would copy it to local memory). */
__global__ void amp_k_write_i64_kernel(int64_t *y, amp_k_i64x8 v, int n) {
#ifdef __CUDACC__
#pragma unroll
#endif
    for (int j = 0; j < 8; j++)
        if (j < n) y[j] = v.v[j];
}

extern "C" cudaError_t amp_k_write_i64(cudaStream_t stream, int64_t *y, const int64_t *v, int n) {
    if (n < 0 || n > 8) return cudaErrorInvalidValue;
    if (n == 0) return cudaSuccess;
    amp_k_i64x8 a = {{0}};
    for (int i = 0; i < n; i++) a.v[i] = v[i];
    return AMP_CUDA_LAUNCH_PLAIN(amp_k_write_i64_kernel, 1, 1, 0, stream, y, a, n);
}

extern "C" const char *amp_k_launch_detail(void) {
#ifdef __CUDACC__
    return "";
#else
    return amp_emu_last_error();
#endif
}

/* Test-only kernels of tests/cuda/test_kernels.c (the host C++ compiler compiles this file
 * through the emulator): softmax's row log-sum-exp of backends/cuda/kernels_dev.h as the loss
 * kernels run it, and the PLANTED BUG, the same reduction with its __syncthreads removed, which
 * the emulator must catch (a wrong result or a failed launch). Also the emulator's order switch
 * for C callers. */
#include "backends/cuda/kernels_dev.h"

__global__ void kt_row_lse_kernel(const float *x, int64_t c, double *out) {
    __shared__ double sh[32];
    double mx, sum;
    double lse = amp_k_row_lse<true>(x, AMP_K_F32, (int64_t)blockIdx.x * c, 1, c, sh, &mx, &sum);
    if (threadIdx.x == 0) out[blockIdx.x] = lse;
}

/* PLANTED BUG: no barrier between the warps' partials and warp 0's read of them, nor before
 * the broadcast read or the next reduction's writes. */
__global__ void kt_row_lse_planted_kernel(const float *x, int64_t c, double *out) {
    __shared__ double sh[32];
    double mx, sum;
    double lse = amp_k_row_lse<false>(x, AMP_K_F32, (int64_t)blockIdx.x * c, 1, c, sh, &mx, &sum);
    if (threadIdx.x == 0) out[blockIdx.x] = lse;
}

extern "C" cudaError_t kt_row_lse(int planted, const float *x, int64_t rows, int64_t c, unsigned threads,
                                  double *out) {
    if (planted) return AMP_CUDA_LAUNCH(kt_row_lse_planted_kernel, (unsigned)rows, threads, 0, 0, x, c, out);
    return AMP_CUDA_LAUNCH(kt_row_lse_kernel, (unsigned)rows, threads, 0, 0, x, c, out);
}

extern "C" int kt_set_order(int flags) {
#ifdef __CUDACC__
    (void)flags;
    return 0;
#else
    return amp_emu_set_order(flags);
#endif
}

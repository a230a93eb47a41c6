/* Cast between f32, f16 and bf16 (kernels.h: amp_k_cast).
 *
 * Every conversion is base/half.h's, so the bits are the CPU backend's (backends/cpu/
 * elementwise_cast.c): 16-bit to f32 is exact; f32 to 16-bit rounds to nearest even, or toward
 * zero with AMP_NODE_CAST_RTZ (from f32 only, as on the CPU); f16 <-> bf16 goes through f32
 * (exact) and rounds once. NaN payloads: half.h keeps them (the top payload bits survive a
 * narrowing, the quiet bit is set), which is what amprt promises on every backend; CUDA's own
 * __float2half would return a canonical NaN instead, so it is not used. */
#include "backends/cuda/kernels_dev.h"

template <int S, int D, int RTZ, bool VEC>
__global__ void amp_k_cast_kernel(const void *__restrict__ x, void *__restrict__ y, int64_t n) {
    amp_k_cast_range<S, D, RTZ>(x, y, n, VEC);
}

typedef void (*amp_k_cast_fn)(const void *, void *, int64_t);

/* [four at once][src][dst]; the diagonal is a copy, not a kernel */
#define AMP_K_CASTS(V, R)                                                                                    \
    {{NULL, amp_k_cast_kernel<AMP_K_F32, AMP_K_F16, R, V>, amp_k_cast_kernel<AMP_K_F32, AMP_K_BF16, R, V>},   \
     {amp_k_cast_kernel<AMP_K_F16, AMP_K_F32, 0, V>, NULL, amp_k_cast_kernel<AMP_K_F16, AMP_K_BF16, 0, V>},   \
     {amp_k_cast_kernel<AMP_K_BF16, AMP_K_F32, 0, V>, amp_k_cast_kernel<AMP_K_BF16, AMP_K_F16, 0, V>, NULL}}
/* round toward zero applies from f32 only, as on the CPU */
static const amp_k_cast_fn amp_k_casts[2][2][3][3] = {{AMP_K_CASTS(false, 0), AMP_K_CASTS(true, 0)},
                                                      {AMP_K_CASTS(false, 1), AMP_K_CASTS(true, 1)}};

extern "C" cudaError_t amp_k_cast(cudaStream_t stream, amp_k_dtype src, amp_k_dtype dst, bool rtz, const void *x,
                                  void *y, int64_t n) {
    if ((unsigned)src >= 3u || (unsigned)dst >= 3u || src == dst) return cudaErrorInvalidValue;
    if (n <= 0) return cudaSuccess;
    const bool vec = amp_k_aligned4(x, src) && amp_k_aligned4(y, dst);
    return AMP_CUDA_LAUNCH_PLAIN(amp_k_casts[rtz][vec][src][dst], amp_k_blocks4(n, vec), AMP_K_THREADS, 0, stream, x,
                                 y, n);
}

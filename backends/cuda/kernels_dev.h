/* Device-side helpers of amprt's own kernels (backends/cuda/k_*.cu): launch shapes, element
 * loads and stores by amp_k_dtype, and block-wide reductions. Included by .cu files only (nvcc,
 * or the host C++ compiler through the emulator). */
#ifndef AMP_BACKENDS_CUDA_KERNELS_DEV_H
#define AMP_BACKENDS_CUDA_KERNELS_DEV_H

/* first: under the emulator the CUDA spellings must be defined before the toolkit's headers */
#include "backends/cuda/launch.h"

#include <math.h>
#include <stdint.h>

#include "backends/cuda/kernels.h"
#include "base/half.h"

/* ---- launch shapes -------------------------------------------------------------------------- */

/* Threads per block of the elementwise kernels. */
#define AMP_K_THREADS 256u
/* At most this many blocks: the kernels loop over the rest (grid-stride), so one launch covers
 * any size, 2^31 elements and more (indices are 64-bit). */
#define AMP_K_MAX_BLOCKS 65535u

/* Blocks for n work items of `per_block` each; n > 0. */
static inline unsigned amp_k_blocks(int64_t n, unsigned per_block) {
    int64_t b = (n + (int64_t)per_block - 1) / (int64_t)per_block;
    return b < (int64_t)AMP_K_MAX_BLOCKS ? (unsigned)b : AMP_K_MAX_BLOCKS;
}

/* The first element of this thread and the step of a grid-stride loop, 64-bit. */
#define AMP_K_FOR(i, n)                                                                         \
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x, i##_step = (int64_t)gridDim.x * blockDim.x; \
         i < (n); i += i##_step)

/* ---- elements ------------------------------------------------------------------------------- */

/* Element i of p (dtype dt) as f32; exact for every dtype. A constant dt folds the branches. */
__device__ __forceinline__ float amp_k_ld(const void *p, int dt, int64_t i) {
    if (dt == AMP_K_F32) return ((const float *)p)[i];
    uint16_t h = ((const uint16_t *)p)[i];
    return dt == AMP_K_F16 ? amp_f16_to_f32(h) : amp_bf16_to_f32(h);
}

/* Stores v as element i of p (dtype dt), rounded to nearest even (rtz: toward zero). */
__device__ __forceinline__ void amp_k_st(void *p, int dt, int64_t i, float v, int rtz = 0) {
    if (dt == AMP_K_F32)
        ((float *)p)[i] = v;
    else if (dt == AMP_K_F16)
        ((uint16_t *)p)[i] = amp_f32_to_f16_mode(v, rtz);
    else
        ((uint16_t *)p)[i] = amp_f32_to_bf16_mode(v, rtz);
}

/* The quiet NaN C's NAN is (positive, no payload): what the CPU kernels store for a computed NaN. */
__device__ __forceinline__ float amp_k_nan(void) { return amp_bits_f32(0x7fc00000u); }

/* ---- block reductions ----------------------------------------------------------------------- */

struct amp_k_sum_op {
    static __device__ __forceinline__ double identity() { return 0.0; }
    static __device__ __forceinline__ double apply(double a, double b) { return a + b; }
};
/* The maximum that keeps a NaN from either side (the CPU's `v > m || isnan(v)` scan). */
struct amp_k_max_op {
    static __device__ __forceinline__ double identity() { return -INFINITY; }
    static __device__ __forceinline__ double apply(double a, double b) {
        if (a != a) return a;
        if (b != b) return b;
        return b > a ? b : a;
    }
};

/* Op over every thread's v, returned to every thread of the block. blockDim.x is a multiple of
 * 32 and at most 1024; sh is 32 doubles of the calling kernel's shared memory. The order of the
 * combination depends on blockDim only, so the result is the same every run. Barriers: before
 * warp 0 reads the warps' partials, before every thread reads the result, and after, so the
 * next reduction may reuse sh. Barriers = false exists only for the planted-bug test
 * (tests/cuda/test_kernels_planted.cu), which must see this go wrong without them. */
template <class Op, bool Barriers = true>
__device__ __forceinline__ double amp_k_block_reduce(double v, double *sh) {
    const unsigned lane = threadIdx.x & 31u, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
    for (unsigned o = 16; o > 0; o >>= 1) v = Op::apply(v, __shfl_down_sync(0xffffffffu, v, o));
    if (lane == 0) sh[warp] = v;
    if (Barriers) __syncthreads();
    if (warp == 0) {
        v = lane < nw ? sh[lane] : Op::identity();
        for (unsigned o = 16; o > 0; o >>= 1) v = Op::apply(v, __shfl_down_sync(0xffffffffu, v, o));
        if (lane == 0) sh[0] = v;
    }
    if (Barriers) __syncthreads();
    v = sh[0];
    if (Barriers) __syncthreads();
    return v;
}

/* Softmax's row statistics, one block per row: the maximum (*mx) and the sum of exp(x - max)
 * (*sum) over the n elements x[base + j * stride] (dtype dt), in double; returns the
 * log-sum-exp. Every thread gets all three. Barriers = false only for the planted-bug test. */
template <bool Barriers = true>
__device__ __forceinline__ double amp_k_row_lse(const void *x, int dt, int64_t base, int64_t stride, int64_t n,
                                                double *sh, double *mx, double *sum) {
    double m = amp_k_max_op::identity();
    for (int64_t j = threadIdx.x; j < n; j += blockDim.x) m = amp_k_max_op::apply(m, amp_k_ld(x, dt, base + j * stride));
    m = amp_k_block_reduce<amp_k_max_op, Barriers>(m, sh);
    double s = 0.0;
    for (int64_t j = threadIdx.x; j < n; j += blockDim.x) s += exp((double)amp_k_ld(x, dt, base + j * stride) - m);
    s = amp_k_block_reduce<amp_k_sum_op, Barriers>(s, sh);
    *mx = m;
    *sum = s;
    return m + log(s);
}

/* Threads per block for a row of n elements reduced by one block: a warp for short rows (LeNet's
 * ten classes), up to 256. */
static inline unsigned amp_k_row_threads(int64_t n) {
    return n <= 32 ? 32u : n <= 64 ? 64u : n <= 128 ? 128u : 256u;
}

#endif

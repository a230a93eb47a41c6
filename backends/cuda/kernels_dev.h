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

/* ---- four elements at once --------------------------------------------------------------------
 * Memory-bound kernels move four consecutive elements with one load and one store (16 bytes of
 * f32, 8 of f16 or bf16) when every pointer is aligned to that size: amp_k_aligned4 decides on
 * the host, per launch; a misaligned view (a slice of a buffer) takes the scalar loop. */
static inline bool amp_k_aligned4(const void *p, int dt) {
    return ((uintptr_t)p & (uintptr_t)(dt == AMP_K_F32 ? 15u : 7u)) == 0;
}

/* The element a thread of a four-at-once kernel does alone: past the last whole four, one per
 * thread of the grid (n % 4 < 4 <= the threads of any grid); n or more for the others. */
__device__ __forceinline__ int64_t amp_k_tail4(int64_t n) {
    return (n & ~(int64_t)3) + (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
}

/* Blocks of a launch over n elements, four at once (vec) or one. */
static inline unsigned amp_k_blocks4(int64_t n, bool vec) {
    return amp_k_blocks(vec ? (n >> 2 > 0 ? n >> 2 : 1) : n, AMP_K_THREADS);
}

__device__ __forceinline__ float amp_k_from16(int dt, unsigned h) {
    return dt == AMP_K_F16 ? amp_f16_to_f32((uint16_t)h) : amp_bf16_to_f32((uint16_t)h);
}
__device__ __forceinline__ unsigned amp_k_to16(int dt, float v, int rtz) {
    return dt == AMP_K_F16 ? amp_f32_to_f16_mode(v, rtz) : amp_f32_to_bf16_mode(v, rtz);
}

/* Elements 4q .. 4q+3 of p (dtype dt; p aligned as amp_k_aligned4 says). */
__device__ __forceinline__ void amp_k_ld4(const void *p, int dt, int64_t q, float v[4]) {
    if (dt == AMP_K_F32) {
        const float4 a = ((const float4 *)p)[q];
        v[0] = a.x, v[1] = a.y, v[2] = a.z, v[3] = a.w;
    } else {
        const uint2 a = ((const uint2 *)p)[q];
        v[0] = amp_k_from16(dt, a.x & 0xffffu), v[1] = amp_k_from16(dt, a.x >> 16);
        v[2] = amp_k_from16(dt, a.y & 0xffffu), v[3] = amp_k_from16(dt, a.y >> 16);
    }
}
__device__ __forceinline__ void amp_k_st4(void *p, int dt, int64_t q, const float v[4], int rtz = 0) {
    if (dt == AMP_K_F32) {
        float4 a;
        a.x = v[0], a.y = v[1], a.z = v[2], a.w = v[3];
        ((float4 *)p)[q] = a;
    } else {
        uint2 a;
        a.x = amp_k_to16(dt, v[0], rtz) | amp_k_to16(dt, v[1], rtz) << 16;
        a.y = amp_k_to16(dt, v[2], rtz) | amp_k_to16(dt, v[3], rtz) << 16;
        ((uint2 *)p)[q] = a;
    }
}

/* y[0, n) = x[0, n) from dtype S to dtype D (S != D; RTZ: round toward zero), over the grid, four
 * elements at once when vec (both pointers four-element aligned: amp_k_aligned4). Cast
 * (k_cast.cu) and CastMulti (k_fused.cu) are this loop. */
template <int S, int D, int RTZ>
__device__ __forceinline__ void amp_k_cast_range(const void *__restrict__ x, void *__restrict__ y, int64_t n,
                                                 bool vec) {
    if (vec) {
        AMP_K_FOR(q, n >> 2) {
            float v[4];
            amp_k_ld4(x, S, q, v);
            amp_k_st4(y, D, q, v, RTZ);
        }
        const int64_t i = amp_k_tail4(n);
        if (i < n) amp_k_st(y, D, i, amp_k_ld(x, S, i), RTZ);
    } else {
        AMP_K_FOR(i, n) amp_k_st(y, D, i, amp_k_ld(x, S, i), RTZ);
    }
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

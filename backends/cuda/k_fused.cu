/* The fused family's own kernels (kernels_fused.h): CastMulti's casts, Attention's masked
 * softmax. Semantics and bits are the CPU kernels' (backends/cpu/fused.c, elementwise_cast.c). */
#include "backends/cuda/kernels_dev.h"
#include "backends/cuda/kernels_fused.h"

/* ---- CastMulti -------------------------------------------------------------------------------
 * Block row blockIdx.y is pair q; its blocks stride over the pair's elements, four at once when
 * both of the pair's pointers allow it (as k_cast.cu decides per launch). The pair's dtypes are
 * read once per thread and select a loop whose conversion is fixed at compile time. */

template <int S, int D, int RTZ>
__device__ __forceinline__ void cm_loop(const void *__restrict__ x, void *__restrict__ y, int64_t n, bool vec) {
    if (S == D) {
        /* a bit copy (a NaN's payload untouched) */
        if (S == AMP_K_F32) AMP_K_FOR(i, n)((uint32_t *)y)[i] = ((const uint32_t *)x)[i];
        else AMP_K_FOR(i, n)((uint16_t *)y)[i] = ((const uint16_t *)x)[i];
    } else {
        amp_k_cast_range<S, D, RTZ>(x, y, n, vec);
    }
}

/* round toward zero applies from f32 only, as Cast's (k_cast.cu) */
template <int S>
__device__ __forceinline__ void cm_from(int d, bool rtz, const void *x, void *y, int64_t n, bool vec) {
    const bool z = rtz && S == AMP_K_F32;
    if (d == AMP_K_F32) cm_loop<S, AMP_K_F32, 0>(x, y, n, vec);
    else if (d == AMP_K_F16) z ? cm_loop<S, AMP_K_F16, 1>(x, y, n, vec) : cm_loop<S, AMP_K_F16, 0>(x, y, n, vec);
    else z ? cm_loop<S, AMP_K_BF16, 1>(x, y, n, vec) : cm_loop<S, AMP_K_BF16, 0>(x, y, n, vec);
}

__global__ void amp_k_cast_multi_kernel(amp_k_cast_multi p, unsigned vec) {
    const unsigned q = blockIdx.y;
    const void *x = p.x[q];
    void *y = p.y[q];
    const int64_t n = p.n[q];
    const int s = p.src[q], d = p.dst[q];
    const bool v = (vec >> q) & 1u;
    if (s == AMP_K_F32) cm_from<AMP_K_F32>(d, p.rtz, x, y, n, v);
    else if (s == AMP_K_F16) cm_from<AMP_K_F16>(d, p.rtz, x, y, n, v);
    else cm_from<AMP_K_BF16>(d, p.rtz, x, y, n, v);
}

static size_t cm_bytes(int dt, int64_t n) { return (size_t)n * (dt == AMP_K_F32 ? 4u : 2u); }

extern "C" cudaError_t amp_k_cast_multi_run(cudaStream_t stream, const amp_k_cast_multi *p) {
    static_assert(AMP_K_CAST_PAIRS <= 32, "one bit of vec per pair");
    if (p->pairs < 0 || p->pairs > AMP_K_CAST_PAIRS) return cudaErrorInvalidValue;
    int64_t most = 0;
    unsigned vec = 0;
    bool all_vec = true;
    for (int q = 0; q < p->pairs; q++) {
        if (p->src[q] >= AMP_K_DTYPE_COUNT || p->dst[q] >= AMP_K_DTYPE_COUNT || p->n[q] < 0) return cudaErrorInvalidValue;
#ifndef __CUDACC__
        /* the emulator's check of pointer arguments does not reach into the struct: the pairs'
         * ranges are checked here, when the launch is enqueued */
        if (p->n[q] && (!amp_emu_is_device(p->x[q], cm_bytes(p->src[q], p->n[q])) ||
                        !amp_emu_is_device(p->y[q], cm_bytes(p->dst[q], p->n[q])))) {
            amp_emu_set_error("amp_k_cast_multi_kernel: pair %d's x %p (%s) or y %p (%s) is not device memory of its "
                              "size (cudaErrorInvalidDevicePointer)",
                              q, p->x[q], amp_emu_pointer_kind(p->x[q]), p->y[q], amp_emu_pointer_kind(p->y[q]));
            return cudaErrorInvalidDevicePointer;
        }
#else
        (void)cm_bytes;
#endif
        const bool v = amp_k_aligned4(p->x[q], p->src[q]) && amp_k_aligned4(p->y[q], p->dst[q]);
        vec |= (unsigned)v << q;
        all_vec &= v || p->n[q] == 0;
        if (p->n[q] > most) most = p->n[q];
    }
    if (most == 0) return cudaSuccess;
    /* enough blocks for the largest pair; the others' surplus blocks find nothing to do */
    const dim3 grid(amp_k_blocks4(most, all_vec), (unsigned)p->pairs);
    return AMP_CUDA_LAUNCH_PLAIN(amp_k_cast_multi_kernel, grid, AMP_K_THREADS, 0, stream, *p, vec);
}

/* ---- Attention's masked softmax ----------------------------------------------------------------
 * One block per row, in place: the maximum and the sum of exp(z - max) by block reductions in
 * double (the CPU sums in order: the double may move by an ulp, the stored value almost never),
 * then every element written once. The barriers of the reductions keep every read of the row
 * before the first write. */

__global__ void amp_k_att_softmax_rows(amp_k_att_softmax p, void *s, const void *mask) {
    __shared__ double sh[32];
    for (int64_t r = blockIdx.x; r < p.rows; r += gridDim.x) {
        const int64_t b = r / p.sq, base = r * p.sk;
        int64_t moff = (r - b * p.sq) * p.ms_row, rem = b;
#ifdef __CUDACC__
#pragma unroll /* constant indices: lead and ms_lead stay out of local memory */
#endif
        for (int d = AMP_K_ATT_LEAD - 1; d >= 0; d--)
            if (d < p.nlead) {
                const int64_t c = rem / p.lead[d];
                moff += (rem - c * p.lead[d]) * p.ms_lead[d];
                rem = c;
            }
        /* z = S + mask in double, not rounded (the CPU's row) */
#define AMP_K_ATT_Z(j) \
    ((double)amp_k_ld(s, p.t, base + (j)) + (mask ? (double)amp_k_ld(mask, p.t, moff + (j) * p.ms_col) : 0.0))
        double mx = amp_k_max_op::identity();
        for (int64_t j = threadIdx.x; j < p.sk; j += blockDim.x) mx = amp_k_max_op::apply(mx, AMP_K_ATT_Z(j));
        mx = amp_k_block_reduce<amp_k_max_op>(mx, sh);
        double sum = 0.0;
        for (int64_t j = threadIdx.x; j < p.sk; j += blockDim.x) sum += exp(AMP_K_ATT_Z(j) - mx);
        sum = amp_k_block_reduce<amp_k_sum_op>(sum, sh);
        /* all -inf: mx is -inf and z - mx NaN, as on the CPU */
        const double inv = 1.0 / sum;
        for (int64_t j = threadIdx.x; j < p.sk; j += blockDim.x)
            amp_k_st(s, p.t, base + j, (float)(exp(AMP_K_ATT_Z(j) - mx) * inv));
#undef AMP_K_ATT_Z
    }
}

extern "C" cudaError_t amp_k_att_softmax_run(cudaStream_t stream, const amp_k_att_softmax *p, void *s,
                                             const void *mask) {
    if ((unsigned)p->t >= (unsigned)AMP_K_DTYPE_COUNT || p->nlead < 0 || p->nlead > AMP_K_ATT_LEAD || p->sq < 1)
        return p->rows == 0 ? cudaSuccess : cudaErrorInvalidValue;
    if (p->rows == 0 || p->sk == 0) return cudaSuccess;
    const unsigned blocks = p->rows < (int64_t)AMP_K_MAX_BLOCKS ? (unsigned)p->rows : AMP_K_MAX_BLOCKS;
    return AMP_CUDA_LAUNCH(amp_k_att_softmax_rows, blocks, amp_k_row_threads(p->sk), 0, stream, *p, s, mask);
}

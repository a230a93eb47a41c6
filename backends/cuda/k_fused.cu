/* The fused family's own kernels (kernels_fused.h): CastMulti's casts, Attention's masked
 * softmax. Semantics and bits are the CPU kernels' (backends/cpu/fused.c, elementwise_cast.c). */
#include "backends/cuda/kernels_dev.h"
#include "backends/cuda/kernels_fused.h"

/* ---- CastMulti -------------------------------------------------------------------------------
 * Block row blockIdx.y is pair q; its blocks stride over the pair's elements. The pair's dtypes
 * are read once per thread and select a loop whose conversion is fixed at compile time. */

template <int S, int D, int RTZ>
__device__ __forceinline__ void cm_loop(const void *__restrict__ x, void *__restrict__ y, int64_t n) {
    AMP_K_FOR(i, n) {
        if (S == D && S == AMP_K_F32) ((uint32_t *)y)[i] = ((const uint32_t *)x)[i];
        else if (S == D) ((uint16_t *)y)[i] = ((const uint16_t *)x)[i];
        else amp_k_st(y, D, i, amp_k_ld(x, S, i), RTZ);
    }
}

/* round toward zero applies from f32 only, as Cast's (k_cast.cu) */
template <int S>
__device__ __forceinline__ void cm_from(int d, bool rtz, const void *x, void *y, int64_t n) {
    const bool z = rtz && S == AMP_K_F32;
    if (d == AMP_K_F32) cm_loop<S, AMP_K_F32, 0>(x, y, n);
    else if (d == AMP_K_F16) z ? cm_loop<S, AMP_K_F16, 1>(x, y, n) : cm_loop<S, AMP_K_F16, 0>(x, y, n);
    else z ? cm_loop<S, AMP_K_BF16, 1>(x, y, n) : cm_loop<S, AMP_K_BF16, 0>(x, y, n);
}

__global__ void amp_k_cast_multi_kernel(amp_k_cast_multi p) {
    const unsigned q = blockIdx.y;
    const void *x = p.x[q];
    void *y = p.y[q];
    const int64_t n = p.n[q];
    const int s = p.src[q], d = p.dst[q];
    if (s == AMP_K_F32) cm_from<AMP_K_F32>(d, p.rtz, x, y, n);
    else if (s == AMP_K_F16) cm_from<AMP_K_F16>(d, p.rtz, x, y, n);
    else cm_from<AMP_K_BF16>(d, p.rtz, x, y, n);
}

extern "C" cudaError_t amp_k_cast_multi_run(cudaStream_t stream, const amp_k_cast_multi *p) {
    if (p->pairs < 0 || p->pairs > AMP_K_CAST_PAIRS) return cudaErrorInvalidValue;
    int64_t most = 0;
    for (int q = 0; q < p->pairs; q++) {
        if (p->src[q] >= AMP_K_DTYPE_COUNT || p->dst[q] >= AMP_K_DTYPE_COUNT) return cudaErrorInvalidValue;
        if (p->n[q] > most) most = p->n[q];
    }
    if (most == 0) return cudaSuccess;
    /* enough blocks for the largest pair; the others' surplus blocks find nothing to do */
    const dim3 grid(amp_k_blocks(most, AMP_K_THREADS), (unsigned)p->pairs);
    return AMP_CUDA_LAUNCH_PLAIN(amp_k_cast_multi_kernel, grid, AMP_K_THREADS, 0, stream, *p);
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

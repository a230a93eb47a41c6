/* ReduceSum, ReduceMean, ReduceL1, ReduceSumSquare, ReduceL2, ReduceLogSum (kernels_reduce.h:
 * amp_k_reduce_sum). The geometry is collapsed on the
 * host into kept and reduced dims (amp_k_s2s_plan); each output element is summed in double in a
 * fixed order: a thread per output element when few elements are summed or the outputs are
 * many, else a block per output element whose threads stride over the reduced positions and
 * then reduce in a fixed tree (amp_k_block_reduce). Their gradients (those that need no
 * statistics of X) are elementwise over X: backends/reduce_grad.h's formula per element. */
#include "backends/cuda/kernels_dev.h"
#include "backends/reduce_grad.h"
#include "backends/cuda/kernels_reduce.h"

/* x's offset of index j over collapsed dims (row-major) with x's strides; one dim (the common
 * case: a contiguous or evenly strided run) without a division */
__device__ __forceinline__ int64_t amp_k_red_off(const int64_t *dims, const int64_t *str, int nd, int64_t j) {
    if (nd == 1) return j * str[0];
    int64_t off = 0;
    for (int d = nd - 1; d > 0; d--) {
        const int64_t q = j / dims[d];
        off += (j - q * dims[d]) * str[d];
        j = q;
    }
    return off + j * str[0];
}

template <int OP>
__device__ __forceinline__ double amp_k_red_map(double v) {
    return OP == AMP_K_RS_L1 ? fabs(v) : OP == AMP_K_RS_SUM_SQUARE || OP == AMP_K_RS_L2 ? v * v : v;
}
template <int OP>
__device__ __forceinline__ float amp_k_red_finish(double s, double div) {
    return (float)(OP == AMP_K_RS_L2 ? sqrt(s) : OP == AMP_K_RS_LOG_SUM ? log(s) : s / div);
}

template <int T, int OP>
__global__ void amp_k_red_thread(amp_k_s2s g, const void *x, void *y, double div) {
    AMP_K_FOR(j, g.m) {
        const int64_t base = amp_k_red_off(g.kd, g.ks, g.nk, j);
        double s = 0.0;
        for (int64_t t = 0; t < g.r; t++)
            s += amp_k_red_map<OP>((double)amp_k_ld(x, T, base + amp_k_red_off(g.rd, g.rs, g.nr, t)));
        amp_k_st(y, T, j, amp_k_red_finish<OP>(s, div));
    }
}

template <int T, int OP>
__global__ void amp_k_red_block(amp_k_s2s g, const void *x, void *y, double div) {
    __shared__ double sh[32];
    for (int64_t j = blockIdx.x; j < g.m; j += gridDim.x) {
        const int64_t base = amp_k_red_off(g.kd, g.ks, g.nk, j);
        double s = 0.0;
        for (int64_t t = threadIdx.x; t < g.r; t += blockDim.x)
            s += amp_k_red_map<OP>((double)amp_k_ld(x, T, base + amp_k_red_off(g.rd, g.rs, g.nr, t)));
        s = amp_k_block_reduce<amp_k_sum_op>(s, sh);
        if (threadIdx.x == 0) amp_k_st(y, T, j, amp_k_red_finish<OP>(s, div));
    }
}

typedef void (*amp_k_red_fn)(amp_k_s2s, const void *, void *, double);
#define AMP_K_RED_DT(K, OP) {K<AMP_K_F32, OP>, K<AMP_K_F16, OP>, K<AMP_K_BF16, OP>}
#define AMP_K_RED_OPS(K)                                                                                           \
    {AMP_K_RED_DT(K, AMP_K_RS_SUM), AMP_K_RED_DT(K, AMP_K_RS_L1), AMP_K_RED_DT(K, AMP_K_RS_SUM_SQUARE),         \
     AMP_K_RED_DT(K, AMP_K_RS_L2), AMP_K_RED_DT(K, AMP_K_RS_LOG_SUM)}
static const amp_k_red_fn amp_k_red_threads[AMP_K_RS_COUNT][AMP_K_DTYPE_COUNT] = AMP_K_RED_OPS(amp_k_red_thread);
static const amp_k_red_fn amp_k_red_blocks[AMP_K_RS_COUNT][AMP_K_DTYPE_COUNT] = AMP_K_RED_OPS(amp_k_red_block);

extern "C" cudaError_t amp_k_reduce_sum(cudaStream_t stream, amp_k_rsum op, amp_k_dtype dt, const amp_k_s2s *g,
                                        const void *x, void *y, double div) {
    if ((unsigned)op >= AMP_K_RS_COUNT || (unsigned)dt >= AMP_K_DTYPE_COUNT || !g) return cudaErrorInvalidValue;
    if (g->m <= 0) return cudaSuccess;
    /* a block per element once an element sums a warp's worth or more and the elements are too
     * few to fill the device thread by thread */
    if (g->r >= 32 && g->m < 64 * 1024)
        return AMP_CUDA_LAUNCH(amp_k_red_blocks[op][dt], amp_k_blocks(g->m, 1), amp_k_row_threads(g->r), 0, stream,
                               *g, x, y, div);
    return AMP_CUDA_LAUNCH_PLAIN(amp_k_red_threads[op][dt], amp_k_blocks(g->m, AMP_K_THREADS), AMP_K_THREADS, 0,
                                 stream, *g, x, y, div);
}

/* ---- ReduceMax, ReduceMin, ReduceProd, ReduceLogSumExp -------------------------------------- */

/* the minimum that keeps a NaN from either side (the CPU's `v < m || isnan(v)` scan) */
struct amp_k_min_op {
    static __device__ __forceinline__ double identity() { return INFINITY; }
    static __device__ __forceinline__ double apply(double a, double b) {
        if (a != a) return a;
        if (b != b) return b;
        return b < a ? b : a;
    }
};
struct amp_k_prod_op {
    static __device__ __forceinline__ double identity() { return 1.0; }
    static __device__ __forceinline__ double apply(double a, double b) { return a * b; }
};
template <int OP>
struct amp_k_rx_op; /* the combination of each op (log-sum-exp: its maximum pass) */
template <>
struct amp_k_rx_op<AMP_K_RX_MAX> : amp_k_max_op {};
template <>
struct amp_k_rx_op<AMP_K_RX_MIN> : amp_k_min_op {};
template <>
struct amp_k_rx_op<AMP_K_RX_PROD> : amp_k_prod_op {};
template <>
struct amp_k_rx_op<AMP_K_RX_LSE> : amp_k_max_op {};

__device__ __forceinline__ double amp_k_lse_finish(double m, double s) { return m != m || isinf(m) ? m : m + log(s); }

template <int T, int OP>
__global__ void amp_k_rx_thread(amp_k_s2s g, const void *x, void *y) {
    typedef amp_k_rx_op<OP> Op;
    AMP_K_FOR(j, g.m) {
        const int64_t base = amp_k_red_off(g.kd, g.ks, g.nk, j);
        double a = Op::identity();
        for (int64_t t = 0; t < g.r; t++)
            a = Op::apply(a, (double)amp_k_ld(x, T, base + amp_k_red_off(g.rd, g.rs, g.nr, t)));
        if (OP == AMP_K_RX_LSE && !(a != a || isinf(a))) {
            double s = 0.0;
            for (int64_t t = 0; t < g.r; t++) s += exp((double)amp_k_ld(x, T, base + amp_k_red_off(g.rd, g.rs, g.nr, t)) - a);
            a = amp_k_lse_finish(a, s);
        }
        amp_k_st(y, T, j, (float)a);
    }
}

template <int T, int OP>
__global__ void amp_k_rx_block(amp_k_s2s g, const void *x, void *y) {
    typedef amp_k_rx_op<OP> Op;
    __shared__ double sh[32];
    for (int64_t j = blockIdx.x; j < g.m; j += gridDim.x) {
        const int64_t base = amp_k_red_off(g.kd, g.ks, g.nk, j);
        double a = Op::identity();
        for (int64_t t = threadIdx.x; t < g.r; t += blockDim.x)
            a = Op::apply(a, (double)amp_k_ld(x, T, base + amp_k_red_off(g.rd, g.rs, g.nr, t)));
        a = amp_k_block_reduce<Op>(a, sh); /* every thread gets it */
        if (OP == AMP_K_RX_LSE && !(a != a || isinf(a))) {
            double s = 0.0;
            for (int64_t t = threadIdx.x; t < g.r; t += blockDim.x)
                s += exp((double)amp_k_ld(x, T, base + amp_k_red_off(g.rd, g.rs, g.nr, t)) - a);
            a = amp_k_lse_finish(a, amp_k_block_reduce<amp_k_sum_op>(s, sh));
        }
        if (threadIdx.x == 0) amp_k_st(y, T, j, (float)a);
    }
}

typedef void (*amp_k_rx_fn)(amp_k_s2s, const void *, void *);
#define AMP_K_RX_OPS(K)                                                                                            \
    {AMP_K_RED_DT(K, AMP_K_RX_MAX), AMP_K_RED_DT(K, AMP_K_RX_MIN), AMP_K_RED_DT(K, AMP_K_RX_PROD),                \
     AMP_K_RED_DT(K, AMP_K_RX_LSE)}
static const amp_k_rx_fn amp_k_rx_threads[AMP_K_RX_COUNT][AMP_K_DTYPE_COUNT] = AMP_K_RX_OPS(amp_k_rx_thread);
static const amp_k_rx_fn amp_k_rx_blocks[AMP_K_RX_COUNT][AMP_K_DTYPE_COUNT] = AMP_K_RX_OPS(amp_k_rx_block);

extern "C" cudaError_t amp_k_reduce_ext(cudaStream_t stream, amp_k_rext op, amp_k_dtype dt, const amp_k_s2s *g,
                                        const void *x, void *y) {
    if ((unsigned)op >= AMP_K_RX_COUNT || (unsigned)dt >= AMP_K_DTYPE_COUNT || !g) return cudaErrorInvalidValue;
    if (g->m <= 0) return cudaSuccess;
    /* the block's branch on the maximum is uniform: every thread holds the same value */
    if (g->r >= 32 && g->m < 64 * 1024)
        return AMP_CUDA_LAUNCH(amp_k_rx_blocks[op][dt], amp_k_blocks(g->m, 1), amp_k_row_threads(g->r), 0, stream, *g,
                               x, y);
    return AMP_CUDA_LAUNCH_PLAIN(amp_k_rx_threads[op][dt], amp_k_blocks(g->m, AMP_K_THREADS), AMP_K_THREADS, 0, stream,
                                 *g, x, y);
}

/* ---- ArgMax, ArgMin ---------------------------------------------------------------------------- */

template <int T, bool MAX, bool LAST>
__global__ void amp_k_argminmax_kernel(int64_t outer, int64_t len, int64_t inner, const void *x, int64_t *y) {
    AMP_K_FOR(oi, outer * inner) {
        const int64_t o = oi / inner, i = oi - o * inner, base = o * len * inner + i;
        float best = amp_k_ld(x, T, base);
        int64_t bj = 0;
        for (int64_t j = 1; j < len; j++) {
            const float v = amp_k_ld(x, T, base + j * inner);
            const bool vnan = v != v;
            if (best != best && !(LAST && vnan)) continue; /* a NaN holds (or the last NaN) */
            if (vnan || (MAX ? v > best : v < best) || (LAST && v == best)) {
                best = v;
                bj = j;
            }
        }
        y[oi] = bj;
    }
}

typedef void (*amp_k_arg_fn)(int64_t, int64_t, int64_t, const void *, int64_t *);
#define AMP_K_ARG_DT(M, L) {amp_k_argminmax_kernel<AMP_K_F32, M, L>, amp_k_argminmax_kernel<AMP_K_F16, M, L>, \
                            amp_k_argminmax_kernel<AMP_K_BF16, M, L>}
/* [max][last][dtype] */
static const amp_k_arg_fn amp_k_args[2][2][AMP_K_DTYPE_COUNT] = {{AMP_K_ARG_DT(false, false), AMP_K_ARG_DT(false, true)},
                                                                  {AMP_K_ARG_DT(true, false), AMP_K_ARG_DT(true, true)}};

extern "C" cudaError_t amp_k_argminmax(cudaStream_t stream, amp_k_dtype dt, bool max, bool last, int64_t outer,
                                       int64_t len, int64_t inner, const void *x, int64_t *y) {
    if ((unsigned)dt >= AMP_K_DTYPE_COUNT || outer < 0 || inner < 0 || len < 1) return cudaErrorInvalidValue;
    const int64_t n = outer * inner;
    if (n == 0) return cudaSuccess;
    return AMP_CUDA_LAUNCH_PLAIN(amp_k_args[max][last][dt], amp_k_blocks(n, AMP_K_THREADS), AMP_K_THREADS, 0, stream,
                                 outer, len, inner, x, y);
}

/* ---- ReduceGrad ------------------------------------------------------------------------------- */

/* the statistics of output element j (backends/cpu/reduce_grad.c's rg_stats, in its order) */
template <int T, int M>
__global__ void amp_k_rg_stats(amp_k_s2s g, const void *x, double *st) {
    AMP_K_FOR(j, g.m) {
        const int64_t base = amp_k_red_off(g.kd, g.ks, g.nk, j);
        double a = M == AMP_RG_MAX || M == AMP_RG_LSE ? -INFINITY : M == AMP_RG_MIN ? INFINITY : M == AMP_RG_PROD ? 1.0 : 0.0;
        double b = 0.0;
        for (int64_t t = 0; t < g.r; t++) {
            const double v = (double)amp_k_ld(x, T, base + amp_k_red_off(g.rd, g.rs, g.nr, t));
            if (M == AMP_RG_MAX || M == AMP_RG_MIN) {
                if (v != v || (a == a && (M == AMP_RG_MAX ? v > a : v < a))) a = a != a ? a : v;
            } else if (M == AMP_RG_PROD) {
                if (v == 0) b += 1;
                else a *= v;
            } else if (M == AMP_RG_L2) {
                a += v * v;
            } else if (M == AMP_RG_LOG_SUM) {
                a += v;
            } else if (v > a || v != v) { /* log-sum-exp's maximum */
                a = v;
            }
        }
        /* the second pass: the ties of the extreme, or the sum of exp(x - max) */
        if (M == AMP_RG_MAX || M == AMP_RG_MIN || M == AMP_RG_LSE)
            for (int64_t t = 0; t < g.r; t++) {
                const double v = (double)amp_k_ld(x, T, base + amp_k_red_off(g.rd, g.rs, g.nr, t));
                if (M == AMP_RG_LSE) b += exp(v - a);
                else if (v == a || (v != v && a != a)) b += 1;
            }
        if (M == AMP_RG_L2) a = sqrt(a);
        if (M == AMP_RG_LSE) a = isinf(a) || a != a ? a : a + log(b);
        st[2 * j] = a;
        st[2 * j + 1] = b;
    }
}

template <int T, int M>
__global__ void amp_k_red_grad(amp_k_bcast g, const void *dy, const void *x, void *dx, double count, const double *st) {
    AMP_K_FOR(i, g.n) {
        int64_t rem = i, oy = 0, ox = 0;
        for (int d = g.rank - 1; d >= 0; d--) {
            const int64_t q = rem / g.dims[d], c = rem - q * g.dims[d];
            rem = q;
            oy += c * g.sa[d];
            ox += c * g.sb[d];
        }
        const bool stats = M >= AMP_RG_L2;
        const double xv = M == AMP_RG_SUM || M == AMP_RG_MEAN ? 0.0 : (double)amp_k_ld(x, T, ox);
        const double s0 = stats ? st[2 * oy] : 0.0, s1 = stats ? st[2 * oy + 1] : 0.0;
        amp_k_st(dx, T, i, (float)amp_reduce_dx_d(M, xv, (double)amp_k_ld(dy, T, oy), s0, s1, count));
    }
}

#define AMP_K_RG_MODES 10 /* AMP_RG_SUM .. AMP_RG_PROD */
typedef void (*amp_k_rg_stats_fn)(amp_k_s2s, const void *, double *);
typedef void (*amp_k_red_grad_fn)(amp_k_bcast, const void *, const void *, void *, double, const double *);
#define AMP_K_RG_DT(K, M) {K<AMP_K_F32, M>, K<AMP_K_F16, M>, K<AMP_K_BF16, M>}
#define AMP_K_RG_MODE_TABLE(K)                                                                                      \
    {AMP_K_RG_DT(K, AMP_RG_SUM), AMP_K_RG_DT(K, AMP_RG_MEAN), AMP_K_RG_DT(K, AMP_RG_SUM_SQUARE),                   \
     AMP_K_RG_DT(K, AMP_RG_L1),  AMP_K_RG_DT(K, AMP_RG_L2),   AMP_K_RG_DT(K, AMP_RG_LOG_SUM),                      \
     AMP_K_RG_DT(K, AMP_RG_LSE), AMP_K_RG_DT(K, AMP_RG_MAX),  AMP_K_RG_DT(K, AMP_RG_MIN),                          \
     AMP_K_RG_DT(K, AMP_RG_PROD)}
static const amp_k_red_grad_fn amp_k_red_grads[AMP_K_RG_MODES][AMP_K_DTYPE_COUNT] = AMP_K_RG_MODE_TABLE(amp_k_red_grad);
static const amp_k_rg_stats_fn amp_k_rg_statss[AMP_K_RG_MODES][AMP_K_DTYPE_COUNT] = AMP_K_RG_MODE_TABLE(amp_k_rg_stats);

extern "C" cudaError_t amp_k_reduce_grad(cudaStream_t stream, amp_k_dtype dt, int mode, const amp_k_bcast *g,
                                         const amp_k_s2s *rg, const void *dy, const void *x, void *dx, double count,
                                         double *ws) {
    if ((unsigned)dt >= AMP_K_DTYPE_COUNT || mode < AMP_RG_SUM || mode > AMP_RG_PROD || !g) return cudaErrorInvalidValue;
    if (g->n <= 0) return cudaSuccess;
    if (mode >= AMP_RG_L2) {
        if (!rg || !ws) return cudaErrorInvalidValue;
        const cudaError_t e = AMP_CUDA_LAUNCH_PLAIN(amp_k_rg_statss[mode][dt], amp_k_blocks(rg->m, AMP_K_THREADS),
                                                    AMP_K_THREADS, 0, stream, *rg, x, ws);
        if (e != cudaSuccess) return e;
    }
    return AMP_CUDA_LAUNCH_PLAIN(amp_k_red_grads[mode][dt], amp_k_blocks(g->n, AMP_K_THREADS), AMP_K_THREADS, 0,
                                 stream, *g, dy, x, dx, count, (const double *)ws);
}

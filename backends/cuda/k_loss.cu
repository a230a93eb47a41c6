/* SoftmaxCrossEntropyLoss and its gradient (kernels.h: amp_k_sce_fwd, amp_k_sce_grad).
 *
 * One block per row (a position n, d1, ... over the C classes, class stride D): the row's
 * maximum, sum of exponentials and log-sum-exp in double by block reductions (warp shuffles,
 * then shared memory across the warps), as the CPU kernels (backends/cpu/nn_loss.c,
 * nn_grad.c) compute them in double; the gradient's formulas are backends/nn_grad.h's. The sums
 * over the batch (the loss of sum and mean, the weight sum of mean) run in one block in a fixed
 * order, never with float atomics, so every run gives the same bits. */
#include "backends/cuda/kernels_dev.h"
#include "backends/nn_grad.h"

__device__ __forceinline__ int64_t amp_k_target(const amp_k_sce &p, const void *t, int64_t r) {
    return p.t64 ? ((const int64_t *)t)[r] : (int64_t)((const int32_t *)t)[r];
}

/* The weight of target tg: 0 when ignored, NaN when outside [0, C) (the CPU fails the step; the
 * device cannot, so the NaN reaches the loss and the gradient). */
__device__ __forceinline__ double amp_k_target_weight(const amp_k_sce &p, const void *w, int64_t tg) {
    if (p.has_ii && tg == p.ii) return 0.0;
    if (tg < 0 || tg >= p.c) return (double)amp_k_nan();
    return p.has_weight ? (double)amp_k_ld(w, p.wt, tg) : 1.0;
}

/* Per row: log_prob (when asked for) and the row's loss; for reduction none the loss itself,
 * else the loss and the weight into the workspace for amp_k_sce_total. */
__global__ void amp_k_sce_rows(amp_k_sce p, const void *x, const void *t, const void *w, void *loss, void *logp,
                               double *rowloss, double *roww) {
    __shared__ double sh[32];
    for (int64_t r = blockIdx.x; r < p.rows; r += gridDim.x) {
        const int64_t base = (r / p.d) * p.c * p.d + r % p.d;
        double mx, sum;
        const double lse = amp_k_row_lse(x, p.xt, base, p.d, p.c, sh, &mx, &sum);
        if (logp)
            for (int64_t c = threadIdx.x; c < p.c; c += blockDim.x) {
                const int64_t at = base + c * p.d;
                amp_k_st(logp, p.xt, at, (float)((double)amp_k_ld(x, p.xt, at) - lse));
            }
        if (threadIdx.x == 0) {
            const int64_t tg = amp_k_target(p, t, r);
            const double wt = amp_k_target_weight(p, w, tg);
            /* an ignored row adds 0 (not 0 times a NaN score) */
            const double l = wt == 0.0 ? 0.0 : wt != wt ? wt : -((double)amp_k_ld(x, p.xt, base + tg * p.d) - lse) * wt;
            if (p.red == AMP_K_RED_NONE) {
                amp_k_st(loss, p.xt, r, (float)l);
            } else {
                rowloss[r] = l;
                roww[r] = wt;
            }
        }
    }
}

/* One block: the sums over the rows, each thread a fixed stride of them, then the block. */
__global__ void amp_k_sce_total(amp_k_sce p, const double *rowloss, const double *roww, void *loss) {
    __shared__ double sh[32];
    double a = 0.0, b = 0.0;
    for (int64_t r = threadIdx.x; r < p.rows; r += blockDim.x) {
        a += rowloss[r];
        b += roww[r];
    }
    a = amp_k_block_reduce<amp_k_sum_op>(a, sh);
    b = amp_k_block_reduce<amp_k_sum_op>(b, sh);
    /* mean with every target ignored is 0 / 0 = NaN, as on the CPU and in the ONNX reference */
    if (threadIdx.x == 0) amp_k_st(loss, p.xt, 0, (float)(p.red == AMP_K_RED_MEAN ? a / b : a));
}

/* One block: the factor every row of a sum or mean gets, dY (divided by the weight sum for mean),
 * into scale[0]. */
__global__ void amp_k_sce_grad_scale(amp_k_sce p, const void *dy, const void *t, const void *w, double *scale) {
    __shared__ double sh[32];
    double b = 0.0;
    if (p.red == AMP_K_RED_MEAN)
        for (int64_t r = threadIdx.x; r < p.rows; r += blockDim.x) b += amp_k_target_weight(p, w, amp_k_target(p, t, r));
    b = amp_k_block_reduce<amp_k_sum_op>(b, sh);
    if (threadIdx.x == 0) {
        const double g = amp_k_ld(dy, p.dyt, 0);
        scale[0] = p.red == AMP_K_RED_MEAN ? g / b : g;
    }
}

/* Per row: dX = coef (p - onehot(t)) + dl - p sum(dl), coef = w[t] times the row's incoming
 * gradient (backends/nn_grad.h); the target's p - 1 from the other classes' sum, as the CPU
 * does, so it keeps its digits. */
__global__ void amp_k_sce_grad_rows(amp_k_sce p, const void *dy, const void *x, const void *t, const void *w,
                                    const void *dl, void *dx, const double *scale) {
    __shared__ double sh[32];
    for (int64_t r = blockIdx.x; r < p.rows; r += gridDim.x) {
        const int64_t base = (r / p.d) * p.c * p.d + r % p.d;
        int64_t tg = amp_k_target(p, t, r);
        double coef = 0.0;
        if (!p.has_dy || (p.has_ii && tg == p.ii)) {
            tg = -1;
        } else {
            coef = amp_k_target_weight(p, w, tg);
            if (coef != coef) tg = -1;
            coef *= p.red == AMP_K_RED_NONE ? (double)amp_k_ld(dy, p.dyt, r) : scale[0];
        }
        double mx, sum;
        const double lse = amp_k_row_lse(x, p.xt, base, p.d, p.c, sh, &mx, &sum);
        double rest = 0.0, sdl = 0.0;
        for (int64_t c = threadIdx.x; c < p.c; c += blockDim.x) {
            if (c != tg) rest += exp((double)amp_k_ld(x, p.xt, base + c * p.d) - mx);
            if (dl) sdl += amp_k_ld(dl, p.dlt, base + c * p.d);
        }
        rest = amp_k_block_reduce<amp_k_sum_op>(rest, sh);
        if (dl) sdl = amp_k_block_reduce<amp_k_sum_op>(sdl, sh);
        for (int64_t c = threadIdx.x; c < p.c; c += blockDim.x) {
            const int64_t at = base + c * p.d;
            const double pr = exp((double)amp_k_ld(x, p.xt, at) - lse);
            const double g = dl ? (double)amp_k_ld(dl, p.dlt, at) : 0.0;
            const double v = c == tg ? amp_sce_target_dx_d(rest / sum, coef, g, pr * sdl) : amp_sce_dx_d(pr, coef, g, pr * sdl);
            amp_k_st(dx, p.xt, at, (float)v);
        }
    }
}

static size_t amp_k_align8(size_t b) { return (b + 7u) & ~(size_t)7u; }

extern "C" size_t amp_k_sce_ws(const amp_k_sce *p) {
    return p->red == AMP_K_RED_NONE ? 0 : amp_k_align8(2 * sizeof(double) * (size_t)(p->rows > 0 ? p->rows : 1));
}

extern "C" size_t amp_k_sce_grad_ws(const amp_k_sce *p) { return p->red == AMP_K_RED_NONE ? 0 : sizeof(double); }

/* Blocks of the row kernels: one per row, up to the grid limit (the rows loop past it). */
static unsigned amp_k_row_blocks(int64_t rows) {
    return rows < (int64_t)AMP_K_MAX_BLOCKS ? (unsigned)rows : AMP_K_MAX_BLOCKS;
}

extern "C" cudaError_t amp_k_sce_fwd(cudaStream_t stream, const amp_k_sce *p, const void *x, const void *t,
                                     const void *w, void *loss, void *logp, void *ws) {
    double *rowloss = (double *)ws, *roww = rowloss ? rowloss + (p->rows > 0 ? p->rows : 1) : NULL;
    cudaError_t e = cudaSuccess;
    if (p->rows > 0 && p->c > 0)
        e = AMP_CUDA_LAUNCH(amp_k_sce_rows, amp_k_row_blocks(p->rows), amp_k_row_threads(p->c), 0, stream, *p, x, t, w,
                            loss, logp, rowloss, roww);
    if (e != cudaSuccess || p->red == AMP_K_RED_NONE) return e;
    if (p->rows > 0 && p->c == 0) return cudaErrorInvalidValue; /* no class for any target */
    return AMP_CUDA_LAUNCH(amp_k_sce_total, 1, AMP_K_THREADS, 0, stream, *p, (const double *)rowloss,
                           (const double *)roww, loss);
}

extern "C" cudaError_t amp_k_sce_grad(cudaStream_t stream, const amp_k_sce *p, const void *dy, const void *x,
                                      const void *t, const void *w, const void *dlogp, void *dx, void *ws) {
    if (p->rows <= 0 || p->c <= 0) return cudaSuccess;
    double *scale = (double *)ws;
    if (p->has_dy && p->red != AMP_K_RED_NONE) {
        cudaError_t e = AMP_CUDA_LAUNCH(amp_k_sce_grad_scale, 1, AMP_K_THREADS, 0, stream, *p, dy, t, w, scale);
        if (e != cudaSuccess) return e;
    }
    return AMP_CUDA_LAUNCH(amp_k_sce_grad_rows, amp_k_row_blocks(p->rows), amp_k_row_threads(p->c), 0, stream, *p, dy,
                           x, t, w, dlogp, dx, (const double *)scale);
}

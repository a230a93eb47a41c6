/* The Reduce family's C-callable launchers (k_reduce_ops.cu), for op_reduce.c. */
#ifndef AMP_BACKENDS_CUDA_KERNELS_REDUCE_H
#define AMP_BACKENDS_CUDA_KERNELS_REDUCE_H

#include "backends/cuda/kernels.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The sum-like reductions: each element mapped (v, |v|, v * v), summed, then finished (/ div,
 * sqrt, log), all in double as the CPU's reduce_float, rounded once on store. */
typedef enum amp_k_rsum {
    AMP_K_RS_SUM = 0, /* and ReduceMean with div the count */
    AMP_K_RS_L1,
    AMP_K_RS_SUM_SQUARE,
    AMP_K_RS_L2,
    AMP_K_RS_LOG_SUM,
    AMP_K_RS_COUNT
} amp_k_rsum;

/* y = finish(sum of map(x) over the reduced dims of g) / div, each output element summed in
 * double in a fixed order. The geometry is SumToShape's (amp_k_s2s_plan with the kept shape); an
 * element that sums nothing gives finish(0) / div (NaN for a mean, as the CPU). */
cudaError_t amp_k_reduce_sum(cudaStream_t stream, amp_k_rsum op, amp_k_dtype dt, const amp_k_s2s *g, const void *x,
                             void *y, double div);

/* The other reductions, in double as the CPU's reduce_float: the maximum and minimum (a NaN
 * anywhere gives NaN; over nothing -inf and +inf), the product (over nothing 1) and
 * log-sum-exp (max + log(sum exp(x - max)); a NaN or infinite max is the result; over nothing
 * -inf). Geometry as amp_k_reduce_sum. */
typedef enum amp_k_rext { AMP_K_RX_MAX = 0, AMP_K_RX_MIN, AMP_K_RX_PROD, AMP_K_RX_LSE, AMP_K_RX_COUNT } amp_k_rext;
cudaError_t amp_k_reduce_ext(cudaStream_t stream, amp_k_rext op, amp_k_dtype dt, const amp_k_s2s *g, const void *x,
                             void *y);

/* ArgMax (max) or ArgMin over x viewed as [outer, len, inner] (len >= 1), int64 indices into
 * y[outer * inner]: the first extreme (the last with select_last_index), a NaN winning over
 * numbers, as the CPU; one thread per output element scanning in order. */
cudaError_t amp_k_argminmax(cudaStream_t stream, amp_k_dtype dt, bool max, bool last, int64_t outer, int64_t len,
                            int64_t inner, const void *x, int64_t *y);

/* dx of every reduction (mode: AMP_RG_* of backends/reduce_grad.h, the CPU's formulas in double,
 * rounded once): over X's shape, g with a = dY in X's frame (strides 0 along the reduced dims)
 * and b = X; count: elements per group. The modes from AMP_RG_L2 on need two statistics per
 * output element (rg: the reduction's geometry over X), computed first into ws (2 doubles per
 * output element) by a thread per output element scanning in the CPU's order. */
cudaError_t amp_k_reduce_grad(cudaStream_t stream, amp_k_dtype dt, int mode, const amp_k_bcast *g,
                              const amp_k_s2s *rg, const void *dy, const void *x, void *dx, double count, double *ws);

/* ---- 2-D average pooling (k_reduce_pool.cu) ----------------------------------------------------
 * Planes of h x w in, oh x ow out (NCHW: planes = N * C; one spatial dim is a leading dim of 1);
 * window kh x kw, strides, dilations, leading pads (ph, pw) and trailing pads (peh, pew: the
 * divisor's padded extent with count_include_pad). ceil_mode is in oh and ow already. */
typedef struct amp_k_avgpool {
    int64_t planes, h, w, oh, ow;
    int64_t kh, kw, sh, sw, dh, dw, ph, pw, peh, pew;
    int count_pad;
} amp_k_avgpool;

/* y = the window's sum in f32, taps in row-major order, over its count (the taps inside the input,
 * or inside the padded extent with count_pad), NaN for a count of 0: the CPU's bits. */
cudaError_t amp_k_avg_pool2d(cudaStream_t stream, amp_k_dtype dt, const amp_k_avgpool *g, const void *x, void *y);
/* dx = the sum over the windows holding each element of dY / count, added in f32 in the CPU's
 * order (output rows, then chunks of 256 columns, then kernel columns), so the same bits. */
cudaError_t amp_k_avg_pool2d_grad(cudaStream_t stream, amp_k_dtype dt, const amp_k_avgpool *g, const void *dy,
                                  void *dx);

#ifdef __cplusplus
}
#endif

#endif

/* Launchers of the norm family's CUDA kernels (backends/cuda/k_norm.cu): Softmax and LogSoftmax,
 * Hardmax, LayerNormalization, InstanceNormalization, GroupNormalization, BatchNormalization,
 * LRN, MeanVarianceNormalization and their gradients, callable from C
 * (backends/cuda/op_norm.c).
 *
 * Every launcher enqueues its work on `stream` and returns the launch's cudaError_t; none
 * allocates, synchronises or reads device memory on the host. Pointers are device memory; an
 * optional one is NULL when absent. Element types are amp_k_dtype codes (kernels.h); statistics,
 * sums and dot products run in double, one block per row in a fixed order (warp shuffles, then
 * shared memory across the warps: the same bits every run), as the CPU kernels compute them
 * (backends/cpu/nn_softmax.c, nn_grad.c, norm_layer.c, norm_grad.c); every element is computed
 * in double like theirs and rounded once on store. The per-element gradient formulas are
 * backends/nn_grad.h's and backends/norm_grad.h's. */
#ifndef AMP_BACKENDS_CUDA_KERNELS_NORM_H
#define AMP_BACKENDS_CUDA_KERNELS_NORM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cuda_runtime_api.h>

#include "backends/cuda/kernels.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- Softmax, LogSoftmax, their gradients ------------------------------------------------------
 * The tensor as [outer, len, inner] reduced over len: rows = outer * inner rows, row r's
 * elements at (r / inner) * len * inner + r % inner + j * inner. */
typedef struct amp_k_softmax {
    int64_t rows, len, inner;
    bool log;                  /* LogSoftmax */
    amp_k_dtype xt, yt;        /* forward: X, Y; gradient: Y, dX */
    amp_k_dtype dyt;           /* gradient: dY */
} amp_k_softmax;

/* y = softmax(x) (or log-softmax) over each row: the maximum, then the sum of exp(x - max) in
 * double; a row of -inf or with a NaN gives NaN, as on the CPU. */
cudaError_t amp_k_softmax_fwd(cudaStream_t stream, const amp_k_softmax *p, const void *x, void *y);
/* Hardmax: 1 at each row's first maximum (a NaN counts as the maximum), 0 elsewhere; a thread
 * per row scans it in order. */
cudaError_t amp_k_hardmax(cudaStream_t stream, const amp_k_softmax *p, const void *x, void *y);
/* dx from dy and the forward's y: y (dy - sum(dy y)), or dy - exp(y) sum(dy) for LogSoftmax. */
cudaError_t amp_k_softmax_grad(cudaStream_t stream, const amp_k_softmax *p, const void *dy, const void *y, void *dx);

/* A layer norm's statistics (Mean, InvStdDev and their gradients) may also be f64 (stash_type
 * double): this code, beside amp_k_dtype's, says so. */
#define AMP_K_STAT_F64 ((amp_k_dtype)AMP_K_DTYPE_COUNT)

/* ---- LayerNormalization and its gradient -------------------------------------------------------
 * rows x cols (the dims before and from axis). Scale and B broadcast one way onto X: indexed by
 * the column when they span exactly the normalised dims, else through their strides along X's
 * dims (0 where broadcast). */
typedef struct amp_k_ln {
    int64_t rows, cols;
    double eps;
    int rank;                                        /* X's rank and dims (for a non-column parameter) */
    int64_t xd[AMP_K_BC_RANK];
    bool scol, bcol;                                 /* Scale, B indexed by the column */
    int64_t sst[AMP_K_BC_RANK], bst[AMP_K_BC_RANK];  /* else their strides along X's dims */
    amp_k_s2s sg, bg;                                /* gradient: X summed to Scale's and B's shapes */
    amp_k_dtype xt, yt, st, bt; /* X (gradient: X), Y (gradient: dX), Scale, B */
    amp_k_dtype mt, it;         /* Mean, InvStdDev (the gradient: the saved ones); AMP_K_STAT_F64 too */
    bool fast;                  /* forward: the CPU's f32 loop (y in f32 from f32 mean and inv) */
    /* gradient only */
    amp_k_dtype dyt, gmt, git, dst, dbt; /* dY, dMean, dInvStdDev (AMP_K_STAT_F64 too), dScale, dB */
} amp_k_ln;

/* y, and mean and inv (1 / sqrt(var + eps)) per row where they are not NULL. */
cudaError_t amp_k_layer_norm(cudaStream_t stream, const amp_k_ln *p, const void *x, const void *scale, const void *b,
                             void *y, void *mean, void *inv);
/* AddLayerNorm (the fused family's, op_fused.c) in one launch: the layer norm above of
 * s = round_T(x + r) (Add's f32 sum of the loaded values, rounded once to p->xt; r of the same
 * dtype), r's row being the row modulo rrows (R broadcast over the leading rows, rrows = numel(R)
 * / cols; rrows = rows when R has X's dims); s also stored where not NULL. The same bits as
 * Add's kernel writing s, then amp_k_layer_norm over it. */
cudaError_t amp_k_add_layer_norm(cudaStream_t stream, const amp_k_ln *p, int64_t rrows, const void *x,
                                 const void *r, const void *scale, const void *b, void *y, void *s, void *mean,
                                 void *inv);
/* Workspace of the gradient: the rows' statistics and the column sums' partials (multiple of 8). */
size_t amp_k_layer_norm_grad_ws(const amp_k_ln *p);
/* dx, dscale and db (NULL: not asked for) from dy (NULL: zero), x, scale, the saved mean and
 * inv (NULL: recomputed from x) and the gradients gm, gi of those (NULL: zero). The column sums
 * of dscale and db run over fixed chunks of rows, then over the chunks in order; a parameter
 * broadcast otherwise takes a block per element over the X elements it reaches (sg, bg). */
cudaError_t amp_k_layer_norm_grad(cudaStream_t stream, const amp_k_ln *p, const void *dy, const void *x,
                                  const void *scale, const void *smean, const void *sinv, const void *gm,
                                  const void *gi, void *dx, void *dscale, void *db, void *ws);

/* ---- InstanceNormalization and its gradient ----------------------------------------------------
 * X as [n, c, sp]; statistics per (n, c) row, Scale and B per channel. */
typedef struct amp_k_inorm {
    int64_t n, c, sp;
    double eps;
    amp_k_dtype xt, yt, st, bt; /* X, Y (gradient: dX), Scale, B */
    amp_k_dtype dyt, dst, dbt;  /* gradient: dY, dScale, dB */
} amp_k_inorm;

cudaError_t amp_k_instance_norm(cudaStream_t stream, const amp_k_inorm *p, const void *x, const void *scale,
                                const void *b, void *y);
size_t amp_k_instance_norm_grad_ws(const amp_k_inorm *p);
/* dx, and dscale and db (NULL: not asked for) summed per channel over n in order. */
cudaError_t amp_k_instance_norm_grad(cudaStream_t stream, const amp_k_inorm *p, const void *dy, const void *x,
                                     const void *scale, void *dx, void *dscale, void *db, void *ws);

/* ---- GroupNormalization and its gradient -------------------------------------------------------
 * X as [n, c, sp]; statistics per (n, group) of cpg = c / groups consecutive channels; Scale and
 * B per channel (opset 21) or per group (18). */
typedef struct amp_k_gnorm {
    int64_t n, c, sp, groups, cpg;
    double eps;
    bool per_channel;
    bool fast;                  /* forward: the CPU's f32 loop (shifted one-pass statistics, y in f32) */
    amp_k_dtype xt, yt, st, bt; /* X, Y (gradient: dX), Scale, B */
    amp_k_dtype dyt, dst, dbt;  /* gradient: dY, dScale, dB */
} amp_k_gnorm;

cudaError_t amp_k_group_norm(cudaStream_t stream, const amp_k_gnorm *p, const void *x, const void *scale,
                             const void *b, void *y);
size_t amp_k_group_norm_grad_ws(const amp_k_gnorm *p);
/* dx, and dscale and db (NULL: not asked for): per (n, channel) sums in the workspace, added
 * over n (and a group's channels, opset 18) in the CPU's order. */
cudaError_t amp_k_group_norm_grad(cudaStream_t stream, const amp_k_gnorm *p, const void *dy, const void *x,
                                  const void *scale, void *dx, void *dscale, void *db, void *ws);

/* ---- BatchNormalization and its gradient --------------------------------------------------------
 * X as [n, ch, sp]; one block per channel over its n * sp elements. */
typedef struct amp_k_bnorm {
    int64_t n, ch, sp;
    double eps, mom;
    bool training;
    amp_k_dtype xt, yt, st, bt, mt, vt; /* X, Y (gradient: dX), scale, B, mean, var */
    amp_k_dtype rmt, rvt, smt, sit;     /* running mean and var, saved mean and inv std (forward
                                           outputs; the gradient: their incoming gradients) */
    amp_k_dtype dyt, dst, dbt, dmt, dvt; /* gradient: dY, dscale, dB, dmean, dvar */
} amp_k_bnorm;

/* Workspace of the inference forward (the per-channel affine map; multiple of 8). */
size_t amp_k_batch_norm_ws(const amp_k_bnorm *p);
/* Inference: y = x a + b per channel, a = scale / sqrt(var + eps), b = B - mean a. Training:
 * the batch's statistics normalise, and the running ones (rmean, rvar) and the saved mean and
 * inv std (smean, sinv) are written where not NULL. */
cudaError_t amp_k_batch_norm(cudaStream_t stream, const amp_k_bnorm *p, const void *x, const void *scale,
                             const void *b, const void *mean, const void *var, void *y, void *rmean, void *rvar,
                             void *smean, void *sinv, void *ws);
/* dx, dscale, db, dmean, dvar (NULL: not asked for) from dy (NULL: zero), x, scale, mean, var
 * and the statistics outputs' gradients grm, grv, gsm, gsi (NULL: zero). */
cudaError_t amp_k_batch_norm_grad(cudaStream_t stream, const amp_k_bnorm *p, const void *dy, const void *x,
                                  const void *scale, const void *mean, const void *var, const void *grm,
                                  const void *grv, const void *gsm, const void *gsi, void *dx, void *dscale, void *db,
                                  void *dmean, void *dvar);

/* ---- LRN and its gradient ---------------------------------------------------------------------
 * X as [n, ch, sp]; each element's window is the channels [c - lo, c + hi] clipped to [0, ch),
 * lo = (size - 1) / 2, hi = size / 2; D = bias + alpha / size * (sum of the window's squares),
 * Y = X D^-beta. */
typedef struct amp_k_lrn {
    int64_t n, ch, sp, lo, hi;
    double bias, scale, beta; /* scale = alpha / size */
    bool fast;                /* the CPU's f32 loop (float sums of squares) */
    amp_k_dtype xt, yt, dyt;  /* X, Y (gradient: dX), dY */
} amp_k_lrn;

cudaError_t amp_k_lrn_fwd(cudaStream_t stream, const amp_k_lrn *p, const void *x, void *y);
/* Workspace of the gradient: dY X D^(-beta-1) per element, in double. */
size_t amp_k_lrn_grad_ws(const amp_k_lrn *p);
cudaError_t amp_k_lrn_grad(cudaStream_t stream, const amp_k_lrn *p, const void *dy, const void *x, void *dx, void *ws);

/* ---- MeanVarianceNormalization and its gradient --------------------------------------------------
 * The kept and reduced dims of X as SumToShape plans them (kernels.h: amp_k_s2s_plan with 1 at
 * the reduced axes): one block per kept position over its g->r reduced elements;
 * Y = (X - mean) / (sqrt(var) + 1e-9). */
cudaError_t amp_k_mvn(cudaStream_t stream, const amp_k_s2s *g, amp_k_dtype xt, amp_k_dtype yt, const void *x, void *y);
cudaError_t amp_k_mvn_grad(cudaStream_t stream, const amp_k_s2s *g, amp_k_dtype dyt, amp_k_dtype xt, amp_k_dtype dxt,
                           const void *dy, const void *x, void *dx);

#ifdef __cplusplus
}
#endif

#endif

/* Launchers of the data-movement kernels (backends/cuda/k_data.cu) for op_data.c: Gather and
 * GatherGrad, Transpose, Slice and SliceGrad. Copies move raw elements of es bytes (1, 2, 4 or 8), so every dtype
 * is handled alike; GatherGrad sums f32, f16 or bf16 in double in the indices' order. */
#ifndef AMP_BACKENDS_CUDA_KERNELS_DATA_H
#define AMP_BACKENDS_CUDA_KERNELS_DATA_H

#include <stdbool.h>
#include <stdint.h>

#include "backends/cuda/kernels.h"

#ifdef __cplusplus
extern "C" {
#endif

#define AMP_K_DATA_MAX_RANK 8

/* y[o, j, i] = x[o, ind[j], i] (x: outer x len x inner, y: outer x nidx x inner); a negative
 * index counts from the end; one out of range (the CPU refuses it) writes zeros. */
typedef struct amp_k_gather {
    int64_t outer, len, nidx, inner;
    int es;       /* element bytes: 1, 2, 4, 8 */
    bool ind64;   /* indices int64, else int32 */
} amp_k_gather;
cudaError_t amp_k_gather_fwd(cudaStream_t stream, const amp_k_gather *g, const void *x, const void *ind, void *y);
/* dx[o, v, i] = sum over j with ind[j] = v of dy[o, j, i], in double, j ascending. */
cudaError_t amp_k_gather_grad(cudaStream_t stream, amp_k_dtype dt, const amp_k_gather *g, const void *dy,
                              const void *ind, void *dx);

/* A dense side (dims odims, row-major) and a strided side (element strides istride per dim, any
 * sign): Transpose and Slice read x strided into a dense y; SliceGrad (scatter) writes a dense x
 * into y at the strides. */
typedef struct amp_k_perm {
    int rank;
    int es;
    int64_t odims[AMP_K_DATA_MAX_RANK];
    int64_t istride[AMP_K_DATA_MAX_RANK];
} amp_k_perm;
cudaError_t amp_k_strided(cudaStream_t stream, const amp_k_perm *p, bool scatter, const void *x, void *y,
                          int64_t n);

/* TileGrad: dx (dims xd, row-major, in dy's rank) sums dy over every repeat: dy's coordinate
 * along d is c + t * xd[d], t < rep[d]; in double, repeats in row-major order. */
typedef struct amp_k_tile_grad {
    int rank;
    int64_t xd[AMP_K_DATA_MAX_RANK], rep[AMP_K_DATA_MAX_RANK], ys[AMP_K_DATA_MAX_RANK];
    int64_t nrep; /* product of rep */
} amp_k_tile_grad;
cudaError_t amp_k_tile_grad_run(cudaStream_t stream, amp_k_dtype dt, const amp_k_tile_grad *g, const void *dy,
                                void *dx, int64_t n);

/* Pad: y (dims yd) at coordinate c reads x (dims xd) at c - pb, the constant cval (raw bits)
 * where that falls outside x, or (edge) the coordinate clamped into x. PadGrad of constant
 * mode is the same read with pb negated and a zero constant (each dX element has one source). */
typedef struct amp_k_pad {
    int rank, es;
    bool edge;
    uint64_t cval;
    int64_t yd[AMP_K_DATA_MAX_RANK], xd[AMP_K_DATA_MAX_RANK], pb[AMP_K_DATA_MAX_RANK];
} amp_k_pad;
cudaError_t amp_k_pad_run(cudaStream_t stream, const amp_k_pad *g, const void *x, void *y, int64_t n);

/* Resize over the last two axes (the others copied), per-axis tables by value (the forward's
 * sampling tables of ir/ops/resize.h, built on the host at plan time): output row j reads kh
 * source rows ih[j * kh + a] with weights wh, column i likewise; taps 1 or 2. */
#define AMP_K_RESIZE_TAB 128
typedef struct amp_k_resize2d {
    int64_t planes, h, w, ho, wo;
    int kh, kw, es; /* es: element bytes of a nearest copy; 0 for interpolation */
    int32_t ih[AMP_K_RESIZE_TAB], iw[AMP_K_RESIZE_TAB];
    float wh[AMP_K_RESIZE_TAB], ww[AMP_K_RESIZE_TAB];
} amp_k_resize2d;
cudaError_t amp_k_resize2d_fwd(cudaStream_t stream, amp_k_dtype dt, const amp_k_resize2d *g, const void *x, void *y);
/* dx[p, h, w] sums wh * ww * dy over the outputs that read (h, w), in double, in output order */
cudaError_t amp_k_resize2d_grad(cudaStream_t stream, amp_k_dtype dt, const amp_k_resize2d *g, const void *dy,
                                void *dx);

#ifdef __cplusplus
}
#endif

#endif

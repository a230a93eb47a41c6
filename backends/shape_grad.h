/* Index math of the shape family's gradient ops (ir/ops/shape_grad.def), shared by shape
 * inference, the CPU kernels and CUDA device code so that every backend reads and writes the
 * same elements.
 *
 * Slice, Pad, Tile, Expand and Gather all read Y[y] = X[map(y)] with a map that works on each
 * dim alone (Gather once its index dims are seen as one). Their gradient is the "fold"
 * dX[x] = sum of dY[y] over every y with map(y) = x, summed in increasing y, and their kernels
 * share one implementation that needs, per dim of the common view, the map (Y coordinate to X
 * coordinate or -1) and its inverse lists: amp_gs_fold_ws_bytes sizes that scratch. */
#ifndef AMP_BACKENDS_GRAD_SHAPE_H
#define AMP_BACKENDS_GRAD_SHAPE_H

#include <stddef.h>
#include <stdint.h>

#include "ir/ops/shape.h"
#include "base/half.h"

enum { AMP_GS_PAD_CONSTANT, AMP_GS_PAD_REFLECT, AMP_GS_PAD_EDGE, AMP_GS_PAD_WRAP };


/* Pad: the input coordinate that output coordinate i (already shifted by the begin pad) reads,
 * or -1 where the constant is written (the forward op's rule, backends/cpu/gather.c). */
AMP_HD int64_t amp_gs_pad_map(int64_t i, int64_t n, int mode) {
    if (i >= 0 && i < n) return i;
    if (mode == AMP_GS_PAD_CONSTANT || n == 0) return -1;
    if (mode == AMP_GS_PAD_EDGE) return i < 0 ? 0 : n - 1;
    if (mode == AMP_GS_PAD_WRAP) return ((i % n) + n) % n;
    if (n == 1) return 0;
    int64_t p = 2 * (n - 1), m = ((i % p) + p) % p;
    return m < n ? m : p - m;
}

/* DepthToSpace backward: the channel, row and column of dY (shape N x OC x H*b x W*b) that
 * element (ic, h, w) of dX (N x OC*b*b x H x W) receives. DCR: ic = (i*b + j)*OC + oc;
 * CRD: ic = (oc*b + i)*b + j; (i, j) is the position inside the b x b block. */
AMP_HD void amp_gs_d2s_grad_src(int64_t ic, int64_t h, int64_t w, int64_t b, int64_t oc_count, int crd,
                                int64_t *oc, int64_t *oh, int64_t *ow) {
    int64_t i, j;
    if (crd) {
        *oc = ic / (b * b);
        i = ic / b % b;
        j = ic % b;
    } else {
        *oc = ic % oc_count;
        j = ic / oc_count % b;
        i = ic / (oc_count * b);
    }
    *oh = h * b + i;
    *ow = w * b + j;
}

/* Scratch of the fold over a view of rank r (X dims xd, Y dims yd): per dim the map (yd
 * entries), the inverse lists' offsets (xd + 1) and the lists (yd), as int64. */
AMP_HD size_t amp_gs_fold_ws_bytes(int r, const int64_t *xd, const int64_t *yd) {
    size_t n = 0;
    for (int d = 0; d < r; d++) n += (size_t)(2 * yd[d] + xd[d] + 1);
    return n * sizeof(int64_t);
}

#endif

/* Gradients of convolution and pooling: what shape inference (ir/ops/conv_grad.c) and the
 * kernels (backends/cpu/grad_conv.c, later backends/cuda) must agree on, and the per-window
 * rules the backward kernels share with the forward pooling kernels.
 *
 * ConvGrad and ConvTransposeGrad read (dY, X, W) and write any of (dX, dW, dB); the forward
 * attributes are copied onto them. Both are written in one form: A is the tensor on the large
 * side of the window map (Conv: X, ConvTranspose: dY), B the one on the small side (Conv: dY,
 * ConvTranspose: X); per group W is a [cb, ca * ksz] matrix in both ops, and
 *     dW_g += B_g col(A_g)^T,   Conv: dX_g = col2im(W_g^T dY_g),   ConvTranspose: dX_g = W_g col(dY_g).
 * MaxPoolGrad reads (dY, X) and routes each dY to its window's winner; AveragePoolGrad reads
 * (dY, shape of X) and spreads dY over the window. Both take "global" = 1 for the global pools. */
#ifndef AMP_BACKENDS_GRAD_CONV_H
#define AMP_BACKENDS_GRAD_CONV_H

#include <stddef.h>
#include <stdint.h>

#include "ir/half.h"
#include "ir/ir.h"

#include "ir/ops/conv.h"
/* -------------------------------------------------------------------------------------------- */

/* The shape of one convolution gradient, in the A/B form above. */
typedef struct amp_conv_grad_dims {
    int transpose;                 /* ConvTransposeGrad */
    int nsp;
    int64_t big[AMP_MAX_RANK];     /* spatial dims of A */
    int64_t small[AMP_MAX_RANK];   /* spatial dims of B (the column count of the im2col matrix) */
    int64_t k[AMP_MAX_RANK], s[AMP_MAX_RANK], d[AMP_MAX_RANK], pb[AMP_MAX_RANK];
    int64_t N, G;                  /* batch, groups */
    int64_t ca, cb;                /* channels per group of A and of B */
    int64_t ksz, bigsz, P, R;      /* kernel size, A plane size, B plane size, ca * ksz */
    int64_t wnumel;
    int direct;                    /* 1x1 kernel, stride 1, no padding: A is its own column matrix */
} amp_conv_grad_dims;

/* Workspace of ConvGrad / ConvTransposeGrad in elements of the compute type (float for f32,
 * f16, bf16; double for f64): `shared` first (W widened to f32 for 16-bit dX), then `slots`
 * slots of `slot` elements, one per concurrent work item (image, group). Offsets inside a slot
 * are -1 for parts that the requested outputs do not need. */
typedef struct amp_conv_grad_ws {
    int64_t shared, slot, slots;
    int64_t col;  /* im2col matrix [R, P] (also the dcol of Conv's dX) */
    int64_t a, b; /* 16-bit: A and B slices widened, [ca, bigsz] and [cb, P] */
    int64_t dx;   /* 16-bit: the dX slice in f32 */
    int64_t dw;   /* this slot's partial dW [wnumel] */
    size_t esize;
} amp_conv_grad_ws;

/* Fill d from the forward attributes of n (ConvGrad or ConvTransposeGrad) and the dims of X and
 * W, then the workspace layout for the outputs wanted. Returns AMP_OK, or a status with a message
 * in msg when the geometry is invalid or a size overflows. Defined in ir/ops/conv_grad.c. */
amp_status amp_conv_grad_plan(const amp_node *n, amp_dtype dt, int xrank, const int64_t *xdims, const int64_t *wdims,
                              int want_dx, int want_dw, amp_conv_grad_dims *d, amp_conv_grad_ws *w, char *msg,
                              size_t cap);

/* Window geometry of MaxPoolGrad / AveragePoolGrad (global = 1: one window over every spatial
 * dim), the same as the forward pool's. Defined in ir/ops/conv_grad.c. */
amp_status amp_pool_grad_geom(const amp_node *n, int rank, const int64_t *xdims, amp_conv_geom *g, char *msg,
                              size_t cap);
/* Workspace of the pool gradients: 16-bit planes are widened to f32 (dY, and X for MaxPool)
 * and accumulate in f32, one plane per slot of amp_pool_grad_slot floats. Sets *slots (0 when
 * none is needed); returns 0 when the size overflows. */
int amp_pool_grad_ws(amp_dtype dt, int is_max, int64_t planes, int64_t insz, int64_t outsz, int64_t *slots);
AMP_HD int64_t amp_pool_grad_slot(int is_max, int64_t insz, int64_t outsz) {
    return insz + outsz + (is_max ? insz : 0);
}

/* ---- per-window rules, the same in every backend ----------------------------------------- */

/* The kernel taps t in [0, k) whose input index b + t*d lies in [0, n). */
AMP_HD void amp_pool_taps(int64_t b, int64_t d, int64_t k, int64_t n, int64_t *lo, int64_t *hi) {
    if (b >= 0 && b + (k - 1) * d < n) { /* the interior: no division */
        *lo = 0;
        *hi = k;
        return;
    }
    int64_t l = b >= 0 ? 0 : (-b + d - 1) / d;
    int64_t h = n - b <= 0 ? 0 : (n - b + d - 1) / d;
    if (h > k) h = k;
    if (l > h) l = h;
    *lo = l;
    *hi = h;
}

/* Taps inside the padded extent [-pb, n + pe): AveragePool's divisor with count_include_pad. */
AMP_HD int64_t amp_pool_taps_padded(int64_t b, int64_t d, int64_t k, int64_t n, int64_t pb, int64_t pe) {
    int64_t lo, hi;
    amp_pool_taps(b + pb, d, k, n + pb + pe, &lo, &hi);
    return hi - lo;
}

/* Whether v replaces the running maximum best of a window, taps visited in row-major order:
 * the first of equal values wins and a NaN wins over numbers, as the forward MaxPool picks
 * its Indices. */
AMP_HD int amp_pool_max_takes_f(float v, float best) { return (v > best) | ((v != v) & (best == best)); }
AMP_HD int amp_pool_max_takes_d(double v, double best) { return (v > best) | ((v != v) & (best == best)); }

#endif

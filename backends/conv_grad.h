/* Gradients of convolution and pooling: the per-window rules the backward kernels
 * (backends/cpu/conv_grad.c, later backends/cuda) share with the forward pooling kernels. The
 * geometry that shape inference and kernels agree on (amp_conv_grad_dims, amp_conv_grad_plan,
 * amp_pool_grad_geom) is in ir/ops/conv.h.
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

#include "base/half.h"
#include "ir/ir.h"

#include "ir/ops/conv.h"
/* -------------------------------------------------------------------------------------------- */

/* Floats per slot of the pool gradients' workspace (backends/cpu/conv_grad.c): 16-bit planes are
 * widened to f32 (dY, and X for MaxPool) and accumulate in f32, one plane per slot. */
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

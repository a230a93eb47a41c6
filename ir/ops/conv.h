/* Convolution and pooling geometry, shared by shape inference (ir/ops/conv.c and conv_grad.c,
 * which define the functions), the CPU kernels (backends/cpu/conv.c, conv_pool.c, quant.c) and the
 * gradient kernels (backends/cpu/conv_grad.c). */
#ifndef AMP_IR_OPS_CONV_H
#define AMP_IR_OPS_CONV_H

#include "ir/ir.h"

enum { AMP_GEOM_CONV = 0, AMP_GEOM_POOL = 1, AMP_GEOM_CONV_T = 2 };

typedef struct amp_conv_geom {
    int nsp; /* spatial dims */
    int64_t in[AMP_MAX_RANK], k[AMP_MAX_RANK], s[AMP_MAX_RANK], d[AMP_MAX_RANK];
    int64_t pb[AMP_MAX_RANK], pe[AMP_MAX_RANK]; /* pads at the start and the end; may be < 0 only for ConvTranspose */
    int64_t out[AMP_MAX_RANK];
} amp_conv_geom;

/* Geometry of node n (kind AMP_GEOM_*) over input dims xdims (rank) and weight dims wdims
 * (NULL for pools); a message into msg on failure. */
amp_status amp_conv_geom_init(const amp_node *n, int kind, int rank, const int64_t *xdims, const int64_t *wdims,
                              amp_conv_geom *g, char *msg, size_t cap);

/* ---- gradients (ir/ops/conv_grad.def) ---------------------------------------------------------- */

/* The shape of one convolution gradient in the A/B form of backends/conv_grad.h: A is the tensor
 * on the large side of the window map (Conv: X, ConvTranspose: dY), B the one on the small side. */
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

/* Fill d from the forward attributes of n (ConvGrad or ConvTransposeGrad) and the dims of X and
 * W. Returns AMP_OK, or a status with a message in msg when the geometry is invalid, a size
 * overflows or a matrix dim passes the BLAS int range. Defined in ir/ops/conv_grad.c. */
amp_status amp_conv_grad_dims_init(const amp_node *n, int xrank, const int64_t *xdims, const int64_t *wdims,
                                   amp_conv_grad_dims *d, char *msg, size_t cap);

/* Window geometry of MaxPoolGrad / AveragePoolGrad (global = 1: one window over every spatial
 * dim), the same as the forward pool's. Defined in ir/ops/conv_grad.c. */
amp_status amp_pool_grad_geom(const amp_node *n, int rank, const int64_t *xdims, amp_conv_geom *g, char *msg,
                              size_t cap);

#endif

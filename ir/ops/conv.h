/* Convolution and pooling geometry, shared by shape inference (ir/ops/conv.c, which defines the
 * functions), the CPU kernels (backends/cpu/conv.c, pool.c) and the gradient kernels
 * (backends/grad_conv.h). */
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

/* Workspace of one Conv/ConvTranspose run: shared elements plus one slot per concurrent item. */
typedef struct amp_conv_ws {
    int64_t shared; /* elements of the compute type used by every work item */
    int64_t slot;   /* elements each concurrent work item needs */
    int64_t slots;  /* how many slots inference reserved */
    size_t esize;   /* bytes of the compute type (float or double) */
} amp_conv_ws;

/* Geometry of node n (kind AMP_GEOM_*) over input dims xdims (rank) and weight dims wdims
 * (NULL for pools); a message into msg on failure. */
amp_status amp_conv_geom_init(const amp_node *n, int kind, int rank, const int64_t *xdims, const int64_t *wdims,
                              amp_conv_geom *g, char *msg, size_t cap);
int amp_conv_ws_layout(const amp_node *n, amp_dtype dt, const int64_t *xdims, const int64_t *wdims,
                       const amp_conv_geom *g, amp_conv_ws *w);

#endif

/* Resize and Upsample geometry, shared by shape inference (ir/ops/resize.c), the gradient op
 * (ir/ops/resize_grad.c) and the CPU kernels (backends/cpu/resize.c, backends/cpu/resize_grad.c).
 *
 * A resize is separable: along axis d, output index j reads taps[d] source indices with weights
 * (one tap of weight 1 for nearest), and the N-D result is the product of the per-axis weights.
 * The tables of indices and weights depend only on the geometry, so a kernel builds them once
 * per run, on the host, in its workspace; the forward kernel gathers through them and the
 * gradient kernel scatters through the same tables (the transpose of the interpolation). */
#ifndef AMP_IR_OPS_RESIZE_H
#define AMP_IR_OPS_RESIZE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ir/ir.h"

enum { AMP_RZ_NEAREST, AMP_RZ_LINEAR, AMP_RZ_CUBIC };

/* coordinate_transformation_mode (legacy Resize-10 and Upsample: asymmetric) */
enum {
    AMP_RZ_HALF_PIXEL,
    AMP_RZ_HALF_PIXEL_SYMMETRIC,
    AMP_RZ_PYTORCH_HALF_PIXEL,
    AMP_RZ_ALIGN_CORNERS,
    AMP_RZ_ASYMMETRIC,
    AMP_RZ_TF_HALF_PIXEL_FOR_NN,
    AMP_RZ_TF_CROP_AND_RESIZE
};

/* nearest_mode; SIMPLE is what Resize-10 and Upsample do (no attribute): ceil when the axis
 * shrinks, floor otherwise, as onnxruntime implements them */
enum { AMP_RZ_ROUND_PREFER_FLOOR, AMP_RZ_ROUND_PREFER_CEIL, AMP_RZ_FLOOR, AMP_RZ_CEIL, AMP_RZ_SIMPLE };

typedef struct amp_resize_geom {
    int rank;
    int mode, ctm, nearest;
    bool exclude_outside, antialias;
    double cubic_a, extrapolation;
    int64_t in[AMP_MAX_RANK], out[AMP_MAX_RANK];
    double scale[AMP_MAX_RANK];  /* the scale the coordinate transform divides by: as given, or out/in */
    double roi_lo[AMP_MAX_RANK], roi_hi[AMP_MAX_RANK]; /* tf_crop_and_resize (0 and 1 elsewhere) */
    bool roi_known;              /* roi_lo/hi hold the roi's values (kernels always know them) */
    int64_t taps[AMP_MAX_RANK];  /* source taps per output index; 0 on an identity or empty axis */
    bool identity[AMP_MAX_RANK]; /* the axis copies through unchanged, whatever the roi */
} amp_resize_geom;

/* Where a node keeps roi, scales and sizes: input slots, -1 when the op has no such input. */
typedef struct amp_resize_slots {
    bool upsample; /* Upsample, or ResizeGrad of an Upsample */
    int64_t opset; /* of the forward op */
    int roi, scales, sizes;
} amp_resize_slots;

/* Slots of a forward Resize/Upsample node at opset. */
void amp_resize_forward_slots(const amp_node *n, int64_t opset, amp_resize_slots *s);

/* The geometry of a node (attributes of n; values of roi, scales and sizes: NULL when the input
 * is absent or empty; roi_present tells an omitted roi from one whose value is not known yet).
 * Validates every attribute and value; on failure returns AMP_ERR_INVALID_GRAPH, AMP_ERR_SHAPE,
 * AMP_ERR_OVERFLOW, AMP_ERR_LIMIT or AMP_ERR_UNSUPPORTED with a message in why. */
amp_status amp_resize_geometry(const amp_node *n, const amp_resize_slots *sl, int rank, const int64_t *xdims,
                               const amp_tensor *roi, bool roi_present, const amp_tensor *scales,
                               const amp_tensor *sizes, amp_resize_geom *g, char *why, size_t whylen);

/* Workspace layout of one run. */
typedef struct amp_resize_plan {
    amp_dtype ct;              /* compute type of interpolation: AMP_F32 (f32, f16, bf16) or AMP_F64 */
    int npass;                 /* axes that are not identity, in the order the passes run */
    int axes[AMP_MAX_RANK];
    bool direct2d;             /* forward f32 linear/cubic: the last two axes in one pass, no buffer */
    size_t tab[AMP_MAX_RANK];  /* workspace offset of axis d's tables (axes of the plan only) */
    size_t buf[2];             /* intermediate results (compute type), alternating between passes */
    size_t acc;                /* gradient: dX accumulated in the compute type when dX is 16-bit */
    size_t bytes;              /* workspace size */
} amp_resize_plan;

/* Plan a forward (grad false: X -> Y) or gradient (dY -> dX) run over dtype dt. limit bounds
 * table and buffer element counts (the context's max_tensor_elements): AMP_ERR_LIMIT beyond. */
amp_status amp_resize_plan_make(const amp_resize_geom *g, amp_dtype dt, bool grad, int64_t limit,
                                amp_resize_plan *p, char *why, size_t whylen);

typedef struct amp_resize_tab {
    const int64_t *idx;     /* [out * taps] source indices, clamped into [0, in) */
    const float *wf;        /* [out * taps] weights (f32) */
    const double *wd;       /* [out * taps] weights (f64) */
    const uint8_t *outside; /* [out] 1 where tf_crop_and_resize writes extrapolation_value */
} amp_resize_tab;

/* Build the tables of every axis of the plan in ws (p->bytes at least) and point tab[d] at them.
 * Needs g->roi_known for tf_crop_and_resize. */
void amp_resize_tables(const amp_resize_geom *g, const amp_resize_plan *p, void *ws, amp_resize_tab *tab);

/* An optional value input (roi, scales, sizes) of a Resize-family node, NULL when absent or
 * empty. For inference *present says whether it was given; a given input whose value is not
 * known yet also comes back NULL. */
static inline const amp_tensor *amp_resize_infer_input(const amp_infer *c, int slot, bool *present) {
    *present = false;
    if (slot < 0 || slot >= c->nin || !c->in[slot]) return NULL;
    const amp_tinfo *t = c->in[slot];
    for (int d = 0; d < t->rank; d++)
        if (t->dims[d] == 0) return NULL;
    *present = true;
    return t->value;
}
/* The same at plan time, for sizing a kernel's workspace (views whose data is set only for
 * values known before running): *present as for inference, NULL for a value not known yet. */
static inline const amp_tensor *amp_resize_plan_input(const amp_kernel *k, int slot, bool *present) {
    *present = false;
    if (slot < 0 || slot >= k->nin || !k->in[slot] || k->in[slot]->numel == 0) return NULL;
    *present = true;
    return k->in[slot]->data ? k->in[slot] : NULL;
}
static inline const amp_tensor *amp_resize_kernel_input(const amp_kernel *k, int slot) {
    if (slot < 0 || slot >= k->nin || !k->in[slot] || k->in[slot]->numel == 0) return NULL;
    return k->in[slot];
}

#endif

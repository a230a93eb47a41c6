/* Gradients of Resize and Upsample (see ir/grad.h): the builder, which appends one ResizeGrad
 * node (ir/ops/resize_grad.def) per forward node, and ResizeGrad's shape inference.
 *
 * The forward output is linear in X: every output element is a weighted sum of input elements
 * with weights from the per-axis sampling tables (ir/ops/resize.h). The gradient scatters dY back
 * through the same tables, so every mode the forward supports (nearest, linear, cubic, antialias,
 * every coordinate transform, extrapolated tf_crop_and_resize outputs passing nothing back) has
 * its gradient. roi and scales get no gradient: scales and sizes choose the shape, and the crop
 * box of tf_crop_and_resize is treated as fixed. */
#include <string.h>

#include "ir/grad.h"
#include "ir/ops/resize.h"

amp_status amp_grad_resize(amp_grad_ctx *c) {
    const amp_node *f = amp_grad_fwd(c);
    if (f->op != AMP_OP_RESIZE && f->op != AMP_OP_UPSAMPLE) return AMP_ERR_NOT_FOUND;
    if (!c->need[0] || c->dy[0] < 0) return AMP_OK;
    int64_t opset = amp_grad_opset(c);
    amp_resize_slots sl;
    amp_resize_forward_slots(f, opset, &sl);
    const char *op = sl.upsample ? "Upsample" : "Resize";
    int x = amp_grad_in(c, 0);
    int ins[5] = {c->dy[0], -1, amp_grad_in(c, sl.roi), amp_grad_in(c, sl.scales), amp_grad_in(c, sl.sizes)};
    amp_status s = amp_grad_node(c, "Shape", "", 1, &x, 1, &ins[1], NULL);
    if (s) return s;
    int nin = 5;
    while (nin > 2 && ins[nin - 1] < 0) nin--;
    amp_node *n = NULL;
    int out = -1;
    if ((s = amp_grad_node(c, "ResizeGrad", AMP_TRAIN_DOMAIN, nin, ins, 1, &out, &n))) return s;
    if ((s = amp_grad_copy_attrs(c, n)) || (s = amp_grad_attr_str(c, n, "fwd_op", op)) ||
        (s = amp_grad_attr_int(c, n, "fwd_opset", opset)))
        return s;
    c->dx[0] = out;
    return AMP_OK;
}

/* The forward op and opset a ResizeGrad node differentiates, and where its inputs are. */
static amp_status grad_slots(amp_infer *c, amp_resize_slots *sl) {
    const char *op = amp_attr_str(c->n, "fwd_op", "");
    int64_t opset = amp_attr_int(c->n, "fwd_opset", 0);
    sl->upsample = strcmp(op, "Upsample") == 0;
    if (!sl->upsample && strcmp(op, "Resize") != 0)
        return amp_infer_fail(c, AMP_ERR_INVALID_GRAPH, "fwd_op must be \"Resize\" or \"Upsample\"");
    const amp_op_info *oi = &amp_op_table[sl->upsample ? AMP_OP_UPSAMPLE : AMP_OP_RESIZE];
    if (opset < oi->opset_lo || opset > oi->opset_hi)
        return amp_infer_fail(c, AMP_ERR_UNSUPPORTED, "fwd_opset %lld is not supported for %s", (long long)opset, op);
    sl->opset = opset;
    sl->roi = 2;
    sl->scales = 3;
    sl->sizes = 4;
    return AMP_OK;
}

amp_status amp_infer_resize_grad(amp_infer *c) {
    amp_status s;
    if ((s = amp_infer_need_inputs(c, 2, 5))) return s;
    const amp_tinfo *dy = c->in[0];
    if ((s = amp_infer_dtype_in(c, dy->dtype, amp_dt_float))) return s;
    amp_resize_slots sl;
    if ((s = grad_slots(c, &sl))) return s;
    int64_t xdims[AMP_MAX_RANK];
    int rank = 0;
    if ((s = amp_infer_const_ints(c, 1, xdims, AMP_MAX_RANK, &rank))) return s;
    if (rank != dy->rank)
        return amp_infer_fail(c, AMP_ERR_SHAPE, "the shape has %d dims, dY has rank %d", rank, dy->rank);
    bool roi_p, sc_p, sz_p;
    const amp_tensor *roi = amp_resize_infer_input(c, sl.roi, &roi_p);
    const amp_tensor *scales = amp_resize_infer_input(c, sl.scales, &sc_p);
    const amp_tensor *sizes = amp_resize_infer_input(c, sl.sizes, &sz_p);
    if ((sc_p && !scales) || (sz_p && !sizes))
        return amp_infer_fail(c, AMP_ERR_UNSUPPORTED, "data-dependent shape: %s must be known before running",
                              sc_p && !scales ? "scales" : "sizes");
    amp_resize_geom g;
    char why[256];
    if ((s = amp_resize_geometry(c->n, &sl, rank, xdims, roi, roi_p, scales, sizes, &g, why, sizeof why)))
        return amp_infer_fail(c, s, "%s", why);
    for (int d = 0; d < rank; d++)
        if (dy->dims[d] != g.out[d])
            return amp_infer_fail(c, AMP_ERR_SHAPE, "dY dim %d is %lld, the forward output's is %lld", d,
                                  (long long)dy->dims[d], (long long)g.out[d]);
    amp_tinfo *dx = c->out[0];
    dx->dtype = dy->dtype;
    dx->rank = rank;
    memcpy(dx->dims, xdims, sizeof(int64_t) * (size_t)rank);
    if ((s = amp_shape_numel(rank, xdims, dx->dtype, NULL, NULL)))
        return amp_infer_fail(c, s, "the shape overflows or is invalid");
    return AMP_OK;
}

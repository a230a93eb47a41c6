/* Gradients of the sample family (ir/grad.h): the builder amp_grad_sample and the shape inference
 * of its training-domain ops (ir/ops/sample_grad.def; kernels in backends/cpu/sample_grad.c).
 *
 *  GridSample  (dX, dGrid) = GridSampleGrad(dY, X, Grid), only the wanted outputs made: X's
 *              gradient spreads dY back through the sampling weights, Grid's is dY times the
 *              derivative of the interpolation along each coordinate. Every mode and padding:
 *              nearest passes nothing to Grid (piecewise constant), border padding nothing where
 *              it clamps, reflection flips the sign where it reflects.
 *  AffineGrid  dTheta = AffineGridGrad(dGrid, size): the op is linear in theta, so dTheta is
 *              dGrid contracted with the base coordinates. size gets none.
 *  RoiAlign    dX = RoiAlignGrad(dY, Shape(X), rois, batch_indices[, X]): avg spreads dY over
 *              every sample's bilinear weights divided by the sample count; max (which needs X)
 *              routes it to the corner term that won. rois get no gradient (treated as fixed
 *              boxes, as torchvision does); batch_indices are integers. */
#include <string.h>

#include "ir/grad.h"

static const amp_dtype index_types[] = {AMP_I64, AMP_I32, AMP_UNDEFINED};

/* ---- inference of the training ops ------------------------------------------------------------ */

static amp_status same_dims(amp_infer *c, const amp_tinfo *t, const char *what, const amp_tinfo *want) {
    if (!amp_tinfo_same_shape(t, want)) return amp_infer_fail(c, AMP_ERR_SHAPE, "%s does not have the shape the forward op gives", what);
    return AMP_OK;
}

/* The forward opset (attribute fwd_opset), checked against the forward op's range. */
static amp_status fwd_opset(amp_infer *c, amp_op op, int64_t *opset) {
    const amp_op_info *oi = &amp_op_table[op];
    *opset = amp_attr_int(c->n, "fwd_opset", oi->opset_hi);
    if (*opset < oi->opset_lo || *opset > oi->opset_hi)
        return amp_infer_fail(c, AMP_ERR_UNSUPPORTED, "fwd_opset %lld is outside %s's opsets %d to %d",
                              (long long)*opset, oi->name, oi->opset_lo, oi->opset_hi);
    return AMP_OK;
}

/* GridSampleGrad(dY, X, Grid) -> (dX, dGrid): the forward's checks on (X, Grid), dY of the
 * forward output's shape. */
amp_status amp_infer_grid_sample_grad(amp_infer *c) {
    amp_status s = amp_infer_need_inputs(c, 3, 3);
    if (s) return s;
    if (c->nout < 1 || c->nout > 2) return amp_infer_fail(c, AMP_ERR_INVALID_GRAPH, "has 2 outputs, not %d", c->nout);
    const amp_tinfo *dy = c->in[0], *x = c->in[1], *g = c->in[2];
    if ((s = amp_infer_dtype_in(c, dy->dtype, amp_dt_float))) return s;
    if (x->dtype != dy->dtype)
        return amp_infer_fail(c, AMP_ERR_SHAPE, "dY is %s, X %s", amp_dtype_name(dy->dtype), amp_dtype_name(x->dtype));
    int64_t opset;
    if ((s = fwd_opset(c, AMP_OP_GRID_SAMPLE, &opset))) return s;
    amp_tinfo y = {0};
    const amp_tinfo *fin[2] = {x, g};
    amp_tinfo *fout[1] = {&y};
    amp_infer f = {.ctx = c->ctx, .g = c->g, .n = c->n, .opset = opset, .nin = 2, .nout = 1, .in = fin, .out = fout};
    if ((s = amp_infer_grid_sample(&f))) return s;
    if ((s = same_dims(c, dy, "dY", &y))) return s;
    if ((s = amp_infer_set_out(c, 0, x->dtype, x->rank, x->dims))) return s;
    if (c->nout > 1 && (s = amp_infer_set_out(c, 1, g->dtype, g->rank, g->dims))) return s;
    return AMP_OK;
}

/* AffineGridGrad(dGrid, size) -> dTheta: theta's shape follows from size. */
amp_status amp_infer_affine_grid_grad(amp_infer *c) {
    amp_status s = amp_infer_need_inputs(c, 2, 2);
    if (s) return s;
    const amp_tinfo *dg = c->in[0], *sz = c->in[1];
    if ((s = amp_infer_dtype_in(c, dg->dtype, amp_dt_float))) return s;
    if (sz->rank != 1 || (sz->dims[0] != 4 && sz->dims[0] != 5))
        return amp_infer_fail(c, AMP_ERR_SHAPE, "size must hold 4 or 5 values");
    int64_t v[5];
    int nv = 0;
    if ((s = amp_infer_const_ints(c, 1, v, 5, &nv))) return s;
    int k = nv - 2;
    amp_tinfo th = {.dtype = dg->dtype, .rank = 3, .dims = {v[0], k, k + 1}};
    amp_tinfo y = {0};
    const amp_tinfo *fin[2] = {&th, sz};
    amp_tinfo *fout[1] = {&y};
    amp_infer f = {.ctx = c->ctx, .g = c->g, .n = c->n, .opset = 20, .nin = 2, .nout = 1, .in = fin, .out = fout};
    if ((s = amp_infer_affine_grid(&f))) return s;
    if ((s = same_dims(c, dg, "dGrid", &y))) return s;
    return amp_infer_set_out(c, 0, dg->dtype, 3, th.dims);
}

/* RoiAlignGrad(dY, shape, rois, batch_indices[, X]) -> dX; max mode needs X. */
amp_status amp_infer_roi_align_grad(amp_infer *c) {
    amp_status s = amp_infer_need_inputs(c, 4, 5);
    if (s) return s;
    const amp_tinfo *dy = c->in[0];
    if ((s = amp_infer_dtype_in(c, dy->dtype, amp_dt_float))) return s;
    if ((s = amp_infer_dtype_in(c, c->in[3]->dtype, index_types))) return s;
    int64_t opset;
    if ((s = fwd_opset(c, AMP_OP_ROI_ALIGN, &opset))) return s;
    int64_t xd[AMP_MAX_RANK];
    int rank = 0;
    if ((s = amp_infer_const_ints(c, 1, xd, AMP_MAX_RANK, &rank))) return s;
    if (rank != 4) return amp_infer_fail(c, AMP_ERR_SHAPE, "the shape of X must have 4 dims, has %d", rank);
    amp_tinfo x = {.dtype = dy->dtype, .rank = 4, .dims = {xd[0], xd[1], xd[2], xd[3]}};
    for (int d = 0; d < 4; d++)
        if (xd[d] < 0) return amp_infer_fail(c, AMP_ERR_SHAPE, "the shape of X has a negative dim");
    bool is_max = strcmp(amp_attr_str(c->n, "mode", "avg"), "max") == 0;
    const amp_tinfo *xin = c->nin > 4 ? c->in[4] : NULL;
    if (is_max && !xin) return amp_infer_fail(c, AMP_ERR_INVALID_GRAPH, "mode max needs X (input 4)");
    if (xin && xin->dtype != dy->dtype)
        return amp_infer_fail(c, AMP_ERR_SHAPE, "X is %s, dY %s", amp_dtype_name(xin->dtype),
                              amp_dtype_name(dy->dtype));
    if (xin && (s = same_dims(c, xin, "X", &x))) return s;
    amp_tinfo y = {0};
    const amp_tinfo *fin[3] = {&x, c->in[2], c->in[3]};
    amp_tinfo *fout[1] = {&y};
    amp_infer f = {.ctx = c->ctx, .g = c->g, .n = c->n, .opset = opset, .nin = 3, .nout = 1, .in = fin, .out = fout};
    if ((s = amp_infer_roi_align(&f))) return s;
    if ((s = same_dims(c, dy, "dY", &y))) return s;
    return amp_infer_set_out(c, 0, dy->dtype, 4, x.dims);
}

/* ---- the builder ------------------------------------------------------------------------------ */

static const char *label(const amp_grad_ctx *c) {
    const amp_node *f = amp_grad_fwd(c);
    return f->name && f->name[0] ? f->name : f->op_type;
}

static amp_status with_fwd_attrs(amp_grad_ctx *c, amp_node *n, int64_t opset) {
    amp_status s = amp_grad_copy_attrs(c, n);
    if (!s) s = amp_grad_attr_int(c, n, "fwd_opset", opset);
    return s;
}

static amp_status grad_grid_sample(amp_grad_ctx *c) {
    bool want[2] = {c->need[0], c->nin > 1 && c->need[1]};
    if ((!want[0] && !want[1]) || c->dy[0] < 0) return AMP_OK;
    int ins[3] = {c->dy[0], amp_grad_in(c, 0), amp_grad_in(c, 1)}, outs[2];
    int64_t opset = amp_grad_opset(c);
    amp_node *n = NULL;
    amp_status s = amp_grad_sparse_node(c, "GridSampleGrad", 3, ins, 2, want, outs, &n);
    if (s || (s = with_fwd_attrs(c, n, opset))) return s;
    c->dx[0] = outs[0];
    c->dx[1] = outs[1];
    return AMP_OK;
}

static amp_status grad_affine_grid(amp_grad_ctx *c) {
    if (!c->need[0] || c->dy[0] < 0) return AMP_OK;
    int ins[2] = {c->dy[0], amp_grad_in(c, 1)};
    amp_node *n = NULL;
    amp_status s = amp_grad_node(c, "AffineGridGrad", AMP_TRAIN_DOMAIN, 2, ins, 1, &c->dx[0], &n);
    if (s) return s;
    return amp_grad_attr_int(c, n, "align_corners", amp_attr_int(amp_grad_fwd(c), "align_corners", 0));
}

static amp_status grad_roi_align(amp_grad_ctx *c) {
    if (!c->need[0] || c->dy[0] < 0) return AMP_OK;
    bool is_max = strcmp(amp_attr_str(amp_grad_fwd(c), "mode", "avg"), "max") == 0;
    int x = amp_grad_in(c, 0);
    if (x < 0) return amp_seterr(c->ctx, AMP_ERR_INVALID_GRAPH, "node '%s': RoiAlign without X", label(c));
    int ins[5] = {c->dy[0], -1, amp_grad_in(c, 1), amp_grad_in(c, 2), x};
    int64_t opset = amp_grad_opset(c);
    amp_status s = amp_grad_node(c, "Shape", "", 1, &x, 1, &ins[1], NULL);
    if (s) return s;
    amp_node *n = NULL;
    /* avg needs only X's shape: X itself stays out so the planner can free it early */
    if ((s = amp_grad_node(c, "RoiAlignGrad", AMP_TRAIN_DOMAIN, is_max ? 5 : 4, ins, 1, &c->dx[0], &n))) return s;
    return with_fwd_attrs(c, n, opset);
}

amp_status amp_grad_sample(amp_grad_ctx *c) {
    switch (amp_grad_fwd(c)->op) {
    case AMP_OP_GRID_SAMPLE: return grad_grid_sample(c);
    case AMP_OP_AFFINE_GRID: return grad_affine_grid(c);
    case AMP_OP_ROI_ALIGN: return grad_roi_align(c);
    default: return AMP_ERR_NOT_FOUND;
    }
}

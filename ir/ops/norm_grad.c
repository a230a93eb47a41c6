/* Gradients of the norm family: the builder amp_grad_norm (GroupNormalization, LRN,
 * MeanVarianceNormalization) and the shape inference of its training-domain ops
 * (ir/ops/norm_grad.def; kernels in backends/cpu/norm_grad.c).
 *
 * Each op gets one fused backward op. Composed from ONNX ops they would need reshapes to
 * (N, G, -1) built from shapes unknown while the backward graph is made, and LRN's window sum
 * and its transpose have no ONNX form short of a convolution. The fused ops read X (not Y) and
 * recompute the statistics, so no forward intermediate has to be kept. */
#include <string.h>

#include "ir/grad.h"

/* ---- the builder ----------------------------------------------------------------------------- */

/* A training node with the forward attributes and opset (GroupNormalization's parameter shapes
 * depend on it). */
static amp_status fused(amp_grad_ctx *c, const char *op, int nin, const int *ins, int nout, int *outs) {
    const int64_t opset = amp_grad_opset(c);
    amp_node *n;
    amp_status s = amp_grad_node(c, op, AMP_TRAIN_DOMAIN, nin, ins, nout, outs, &n);
    if (!s) s = amp_grad_copy_attrs(c, n);
    if (!s) s = amp_grad_attr_int(c, n, "fwd_opset", opset);
    return s;
}

/* GroupNormalizationGrad(dY, X, scale, bias) -> dX, dscale, dbias (bias is read for its
 * dtype only). */
static amp_status grad_group_norm(amp_grad_ctx *c) {
    int ins[4] = {c->dy[0], amp_grad_in(c, 0), amp_grad_in(c, 1), amp_grad_in(c, 2)};
    int outs[3];
    amp_status s = fused(c, "GroupNormalizationGrad", 4, ins, 3, outs);
    if (s) return s;
    for (int i = 0; i < 3; i++)
        if (c->need[i]) c->dx[i] = outs[i];
    return AMP_OK;
}

/* LRNGrad / MeanVarianceNormalizationGrad(dY, X) -> dX. */
static amp_status grad_x_only(amp_grad_ctx *c, const char *op) {
    int ins[2] = {c->dy[0], amp_grad_in(c, 0)};
    return fused(c, op, 2, ins, 1, &c->dx[0]);
}

amp_status amp_grad_norm(amp_grad_ctx *c) {
    switch (amp_grad_fwd(c)->op) {
    case AMP_OP_GROUP_NORM: return grad_group_norm(c);
    case AMP_OP_LRN: return grad_x_only(c, "LRNGrad");
    case AMP_OP_MEAN_VARIANCE_NORM: return grad_x_only(c, "MeanVarianceNormalizationGrad");
    default: return AMP_ERR_NOT_FOUND;
    }
}

/* ---- shape inference of the training ops ------------------------------------------------------ */

/* Inputs 1.. of a training op are the forward's inputs: check them (and the copied attributes)
 * with the forward's own inference at the forward opset, which also shapes output 0 like X.
 * Then dY (input 0) must be a float tensor of X's shape. */
static amp_status check_as_forward(amp_infer *c, int fwd_nin, amp_infer_fn fwd, int64_t def_opset) {
    if (c->nin != fwd_nin + 1)
        return amp_infer_fail(c, AMP_ERR_INVALID_GRAPH, "expects %d inputs, has %d", fwd_nin + 1, c->nin);
    for (int i = 0; i < c->nin; i++)
        if (!c->in[i]) return amp_infer_fail(c, AMP_ERR_INVALID_GRAPH, "input %d is required", i);
    if (c->nout < 1) return amp_infer_fail(c, AMP_ERR_INVALID_GRAPH, "has no outputs");
    amp_infer f = *c;
    f.opset = amp_attr_int(c->n, "fwd_opset", def_opset);
    f.nin = fwd_nin;
    f.in = c->in + 1;
    f.nout = 1;
    amp_status s = fwd(&f);
    if (s) return s;
    const amp_tinfo *dy = c->in[0], *x = c->in[1];
    if ((s = amp_infer_dtype_in(c, dy->dtype, amp_dt_float))) return s;
    if (!amp_tinfo_same_shape(dy, x)) return amp_infer_fail(c, AMP_ERR_SHAPE, "dY does not have X's shape");
    return AMP_OK;
}

static void set_like(amp_infer *c, int i, const amp_tinfo *t) {
    amp_tinfo *o = c->out[i];
    o->dtype = t->dtype;
    o->rank = t->rank;
    memcpy(o->dims, t->dims, sizeof o->dims);
    o->value = NULL;
}

/* GroupNormalizationGrad(dY, X, scale, bias) -> dX, dscale?, dbias?. */
amp_status amp_infer_group_norm_grad(amp_infer *c) {
    amp_status s = check_as_forward(c, 3, amp_infer_group_norm, 21);
    if (s) return s;
    if (c->nout > 3) return amp_infer_fail(c, AMP_ERR_INVALID_GRAPH, "has %d outputs, expects 1 to 3", c->nout);
    for (int i = 1; i < c->nout; i++) set_like(c, i, c->in[i + 1]);
    return AMP_OK;
}

/* LRNGrad(dY, X) -> dX. */
amp_status amp_infer_lrn_grad(amp_infer *c) {
    amp_status s = check_as_forward(c, 1, amp_infer_lrn, 13);
    if (s) return s;
    if (c->nout != 1) return amp_infer_fail(c, AMP_ERR_INVALID_GRAPH, "has %d outputs, expects 1", c->nout);
    return AMP_OK;
}

/* MeanVarianceNormalizationGrad(dY, X) -> dX, with the forward's axes. */
amp_status amp_infer_mvn_grad(amp_infer *c) {
    amp_status s = check_as_forward(c, 1, amp_infer_mvn, 13);
    if (s) return s;
    if (c->nout != 1) return amp_infer_fail(c, AMP_ERR_INVALID_GRAPH, "has %d outputs, expects 1", c->nout);
    return AMP_OK;
}

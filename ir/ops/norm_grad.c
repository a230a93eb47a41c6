/* Gradients of the norm family: the builder amp_grad_norm (BatchNormalization,
 * InstanceNormalization, LayerNormalization, GroupNormalization, LRN,
 * MeanVarianceNormalization) and the shape inference of its training-domain ops
 * (ir/ops/norm_grad.def; kernels in backends/cpu/norm_grad.c; helpers shared with the nn family
 * in ir/ops/nn_grad.h).
 *
 * Each op gets one fused backward op. Composed from ONNX ops they would need reshapes to
 * (N, G, -1) built from shapes unknown while the backward graph is made, and LRN's window sum
 * and its transpose have no ONNX form short of a convolution. The fused ops read X (not Y) and
 * recompute the statistics, so no forward intermediate has to be kept. */
#include <string.h>

#include "ir/grad.h"
#include "ir/ops/nn_grad.h"

/* ---- the builder ----------------------------------------------------------------------------- */

/* GroupNormalizationGrad(dY, X, scale, bias) -> dX, dscale, dbias (bias is read for its
 * dtype only). */
static amp_status grad_group_norm(amp_grad_ctx *c) {
    int ins[4] = {c->dy[0], amp_grad_in(c, 0), amp_grad_in(c, 1), amp_grad_in(c, 2)};
    int outs[3];
    amp_node *n;
    amp_status s = fused(c, "GroupNormalizationGrad", 4, ins, 3, outs, &n);
    if (s) return s;
    for (int i = 0; i < 3; i++)
        if (c->need[i]) c->dx[i] = outs[i];
    return AMP_OK;
}

/* LRNGrad / MeanVarianceNormalizationGrad(dY, X) -> dX. */
static amp_status grad_x_only(amp_grad_ctx *c, const char *op) {
    int ins[2] = {c->dy[0], amp_grad_in(c, 0)};
    amp_node *n;
    return fused(c, op, 2, ins, 1, &c->dx[0], &n);
}

/* Record a training node's outputs as the gradients of forward inputs first..first+n-1 that
 * are wanted. */
static void take(amp_grad_ctx *c, const int *outs, int first, int n) {
    for (int i = 0; i < n; i++)
        if (first + i < c->nin && c->need[first + i]) c->dx[first + i] = outs[i];
}

/* Training mode exactly as the forward kernel decides it (backends/cpu/norm_layer.c). */
static bool bn_training(const amp_grad_ctx *c) {
    const amp_node *f = amp_grad_fwd(c);
    const int64_t opset = amp_grad_opset(c);
    if (opset >= 14) return amp_attr_int(f, "training_mode", 0) != 0;
    if (c->nout < 2 || amp_grad_out(c, 1) < 0) return false;
    return opset >= 7 || amp_attr_int(f, "is_test", 0) == 0;
}

static amp_status grad_batch_norm(amp_grad_ctx *c) {
    const bool training = bn_training(c);
    /* the running-statistics outputs (and opsets 7-13's saved ones) may carry gradients too */
    int ins[9] = {c->dy[0],    amp_grad_in(c, 0), amp_grad_in(c, 1), amp_grad_in(c, 3), amp_grad_in(c, 4),
                  dy_at(c, 1), dy_at(c, 2),       dy_at(c, 3),       dy_at(c, 4)};
    int outs[5];
    amp_node *n;
    amp_status s = fused(c, "BatchNormalizationGrad", 9, ins, 5, outs, &n);
    if (!s) s = amp_grad_attr_int(c, n, "training", training);
    if (s) return s;
    /* forward inputs: X, scale, B, mean, var; outputs: dX, dscale, dB, dmean, dvar */
    take(c, outs, 0, 5);
    return AMP_OK;
}

static amp_status grad_instance_norm(amp_grad_ctx *c) {
    int ins[4] = {c->dy[0], amp_grad_in(c, 0), amp_grad_in(c, 1), amp_grad_in(c, 2)};
    int outs[3];
    amp_node *n;
    amp_status s = fused(c, "InstanceNormalizationGrad", 4, ins, 3, outs, &n);
    if (s) return s;
    take(c, outs, 0, 3);
    return AMP_OK;
}

static amp_status grad_layer_norm(amp_grad_ctx *c) {
    const amp_node *f = amp_grad_fwd(c);
    const int x = amp_grad_in(c, 0), bias = in_at(c, 2);
    const int om = amp_grad_out(c, 1), oi = amp_grad_out(c, 2);
    /* The forward's Mean and InvStdDev save a pass over X, unless they were stored coarser than
     * X (an f64 X with the default f32 stash_type, or a 16-bit stash): then they are recomputed. */
    const int64_t stash = amp_attr_int(f, "stash_type", AMP_F32);
    const bool precise = stash == AMP_F64 || (stash == AMP_F32 && vdtype(c, x) != AMP_F64);
    const bool saved = om >= 0 && oi >= 0 && precise;
    int ins[8] = {c->dy[0], x, amp_grad_in(c, 1), bias, saved ? om : -1, saved ? oi : -1, dy_at(c, 1), dy_at(c, 2)};
    int outs[3];
    amp_node *n;
    amp_status s = fused(c, "LayerNormalizationGrad", 8, ins, bias >= 0 ? 3 : 2, outs, &n);
    if (s) return s;
    take(c, outs, 0, bias >= 0 ? 3 : 2);
    return AMP_OK;
}

amp_status amp_grad_norm(amp_grad_ctx *c) {
    switch (amp_grad_fwd(c)->op) {
    case AMP_OP_GROUP_NORM: return grad_group_norm(c);
    case AMP_OP_LRN: return grad_x_only(c, "LRNGrad");
    case AMP_OP_MEAN_VARIANCE_NORM: return grad_x_only(c, "MeanVarianceNormalizationGrad");
    case AMP_OP_BATCH_NORM: return grad_batch_norm(c);
    case AMP_OP_INSTANCE_NORM: return grad_instance_norm(c);
    case AMP_OP_LAYER_NORM: return grad_layer_norm(c);
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

/* BatchNormalizationGrad(dY?, X, scale, mean, var, dRunningMean?, dRunningVar?, dSavedMean?,
 * dSavedInvStd?) -> dX, dscale, dB, dmean, dvar. */
amp_status amp_infer_batch_norm_grad(amp_infer *c) {
    amp_status s;
    if ((s = need_present(c, 1, 5, 9)) || (s = need_outputs(c, 1, 5))) return s;
    const amp_tinfo *x = c->in[1], *sc = c->in[2], *mn = c->in[3];
    if ((s = need_float(c, 1)) || (s = check_grad_like(c, 0, x, "Y"))) return s;
    if (x->rank < 1) return amp_infer_fail(c, AMP_ERR_SHAPE, "X must have rank >= 1 (N x C x D1 ...)");
    /* per-activation parameters (opset < 9, spatial=0) have X's shape without N */
    const bool per_act = sc->rank > 1;
    const int64_t ch = per_act ? amp_tinfo_numel(sc) : x->rank > 1 ? x->dims[1] : 1;
    static const char *names[4] = {"scale", "mean", "var", "B"};
    for (int i = 2; i < 5; i++) {
        const amp_tinfo *p = c->in[i];
        if ((s = need_float(c, i))) return s;
        bool ok = per_act ? p->rank == x->rank - 1 : p->rank == 1 && p->dims[0] == ch;
        for (int d = 0; per_act && ok && d < p->rank; d++) ok = p->dims[d] == x->dims[d + 1];
        if (!ok) return amp_infer_fail(c, AMP_ERR_SHAPE, "%s does not match X's channels", names[i - 2]);
    }
    for (int i = 5; i < c->nin; i++)
        if ((s = check_grad_like(c, i, mn, "a statistics output"))) return s;
    set_like(c, 0, x);
    for (int i = 1; i < c->nout; i++) set_like(c, i, i < 3 ? sc : mn);
    return AMP_OK;
}

/* InstanceNormalizationGrad(dY, X, scale, B) -> dX, dscale, dB (B is read for its dtype and
 * shape only: the two parameters may differ in dtype). */
amp_status amp_infer_instance_norm_grad(amp_infer *c) {
    amp_status s;
    if ((s = amp_infer_need_inputs(c, 4, 4)) || (s = need_outputs(c, 1, 3)) || (s = need_float(c, 1)) ||
        (s = need_float(c, 2)) || (s = need_float(c, 3)))
        return s;
    const amp_tinfo *x = c->in[1], *sc = c->in[2], *b = c->in[3];
    if ((s = check_grad_like(c, 0, x, "Y"))) return s;
    if (x->rank < 3)
        return amp_infer_fail(c, AMP_ERR_SHAPE, "X must have rank >= 3 (N x C x D1 ...), has %d", x->rank);
    if (sc->rank != 1 || sc->dims[0] != x->dims[1] || !amp_tinfo_same_shape(sc, b))
        return amp_infer_fail(c, AMP_ERR_SHAPE, "scale and B must be 1-D of length %lld (the channel count)",
                              (long long)x->dims[1]);
    set_like(c, 0, x);
    for (int i = 1; i < c->nout; i++) set_like(c, i, i == 1 ? sc : b);
    return AMP_OK;
}

/* Scale and B broadcast one way onto X (numpy rules, X's shape wins), as in the forward. */
static amp_status check_bcast_to(amp_infer *c, int i, const char *what, const amp_tinfo *x) {
    const amp_tinfo *p = c->in[i];
    amp_status s = need_float(c, i);
    if (s) return s;
    if (p->rank > x->rank)
        return amp_infer_fail(c, AMP_ERR_SHAPE, "%s has rank %d, more than X's %d", what, p->rank, x->rank);
    for (int d = 0; d < p->rank; d++) {
        int64_t pd = p->dims[d], xd = x->dims[x->rank - p->rank + d];
        if (pd != xd && pd != 1)
            return amp_infer_fail(c, AMP_ERR_SHAPE, "%s dim %d is %lld, cannot broadcast to X's %lld", what, d,
                                  (long long)pd, (long long)xd);
    }
    return AMP_OK;
}

/* LayerNormalizationGrad(dY?, X, Scale, B?, Mean?, InvStdDev?, dMean?, dInvStdDev?) -> dX,
 * dScale, dB (when B is given). */
amp_status amp_infer_layer_norm_grad(amp_infer *c) {
    amp_status s;
    if ((s = need_present(c, 1, 3, 8)) || (s = need_outputs(c, 2, 3)) || (s = need_float(c, 1))) return s;
    const amp_tinfo *x = c->in[1], *sc = c->in[2], *b = opt_in(c, 3);
    if ((s = check_grad_like(c, 0, x, "Y"))) return s;
    if (x->rank < 1) return amp_infer_fail(c, AMP_ERR_SHAPE, "X must have rank >= 1");
    int axis;
    if ((s = amp_infer_axis(c, amp_attr_int(c->n, "axis", -1), x->rank, &axis))) return s;
    if ((s = check_bcast_to(c, 2, "Scale", x)) || (b && (s = check_bcast_to(c, 3, "B", x)))) return s;
    if (c->nout == 3 && !b) return amp_infer_fail(c, AMP_ERR_INVALID_GRAPH, "dB asked for without B");
    int64_t rows = 1;
    for (int d = 0; d < axis; d++) rows *= x->dims[d];
    for (int i = 4; i < c->nin; i++) {
        const amp_tinfo *t = c->in[i];
        if (!t) continue;
        if ((s = need_float(c, i))) return s;
        if (amp_tinfo_numel(t) != rows)
            return amp_infer_fail(c, AMP_ERR_SHAPE, "input %d must hold one value per normalised row (%lld)", i,
                                  (long long)rows);
    }
    set_like(c, 0, x);
    set_like(c, 1, sc);
    if (c->nout == 3) set_like(c, 2, b);
    return AMP_OK;
}

/* Gradients of the nn family: the builder amp_grad_nn (the softmax family and the
 * classification losses) and the shape inference of its training-domain ops
 * (ir/ops/nn_grad.def; kernels in backends/cpu/nn_grad.c).
 *
 * Everything that needs a reduction back to a broadcast shape, batch statistics or a per-row dot
 * product gets one fused op, because composing those from ONNX ops would need shapes that are
 * often unknown while the backward graph is built (symbolic batch dims, values behind autocast's
 * casts). */
#include <string.h>

#include "ir/grad.h"
#include "ir/ops/nn_grad.h"

/* ---- the builder ---------------------------------------------------------------------------- */

static amp_status grad_softmax(amp_grad_ctx *c) {
    int ins[2] = {c->dy[0], amp_grad_out(c, 0)};
    amp_node *n;
    const bool lg = amp_grad_fwd(c)->op == AMP_OP_LOG_SOFTMAX;
    return fused(c, lg ? "LogSoftmaxGrad" : "SoftmaxGrad", 2, ins, 1, &c->dx[0], &n);
}

static amp_status grad_nll(amp_grad_ctx *c) {
    int ins[4] = {c->dy[0], amp_grad_in(c, 0), amp_grad_in(c, 1), in_at(c, 2)};
    amp_node *n;
    return fused(c, "NegativeLogLikelihoodLossGrad", 4, ins, 1, &c->dx[0], &n);
}

/* The loss and log_prob gradients in one node. log_prob itself is not read: the kernel
 * recomputes the softmax from the scores in double, which is exact for 16-bit scores too and
 * lets log_prob's buffer go as soon as the forward is done with it. */
static amp_status grad_sce(amp_grad_ctx *c) {
    int ins[5] = {c->dy[0], amp_grad_in(c, 0), amp_grad_in(c, 1), in_at(c, 2), dy_at(c, 1)};
    amp_node *n;
    return fused(c, "SoftmaxCrossEntropyLossGrad", 5, ins, 1, &c->dx[0], &n);
}

amp_status amp_grad_nn(amp_grad_ctx *c) {
    switch (amp_grad_fwd(c)->op) {
    case AMP_OP_SOFTMAX:
    case AMP_OP_LOG_SOFTMAX: return c->dy[0] < 0 ? AMP_OK : grad_softmax(c);
    case AMP_OP_NLL_LOSS: return grad_nll(c);
    case AMP_OP_SOFTMAX_CE_LOSS: return grad_sce(c);
    default: return AMP_ERR_NOT_FOUND;
    }
}

/* ---- shape inference of the training ops ------------------------------------------------------ */

/* SoftmaxGrad / LogSoftmaxGrad(dY, Y) -> dX, with the forward's axis and opset. */
amp_status amp_infer_softmax_grad(amp_infer *c) {
    amp_status s;
    if ((s = amp_infer_need_inputs(c, 2, 2)) || (s = need_outputs(c, 1, 1)) || (s = need_float(c, 1))) return s;
    const amp_tinfo *dy = c->in[0], *y = c->in[1];
    if (dy->dtype != y->dtype || !amp_tinfo_same_shape(dy, y))
        return amp_infer_fail(c, AMP_ERR_SHAPE, "dY and Y must have one dtype and shape");
    const int64_t opset = amp_attr_int(c->n, "fwd_opset", 13);
    if (opset >= 13) {
        int axis;
        if ((s = amp_infer_axis(c, amp_attr_int(c->n, "axis", -1), y->rank, &axis))) return s;
    } else {
        int64_t axis = amp_attr_int(c->n, "axis", 1);
        if (axis < -y->rank || axis > y->rank)
            return amp_infer_fail(c, AMP_ERR_INVALID_GRAPH, "axis %lld out of range for rank %d", (long long)axis,
                                  y->rank);
    }
    set_like(c, 0, y);
    return AMP_OK;
}

static const amp_dtype dt_index[] = {AMP_I64, AMP_I32, AMP_UNDEFINED};

/* Checks shared by the loss gradients: X (input 1) N x C x d1..., target (input 2) N x d1...,
 * weight (input 3) of length C, dY (input 0) shaped by the reduction. */
static amp_status check_loss_grad(amp_infer *c) {
    amp_status s;
    const amp_tinfo *x = c->in[1], *t = c->in[2], *w = opt_in(c, 3), *dy = c->in[0];
    if ((s = need_float(c, 1)) || (s = amp_infer_dtype_in(c, t->dtype, dt_index))) return s;
    if (x->rank < 2) return amp_infer_fail(c, AMP_ERR_SHAPE, "X must have rank >= 2 (N x C x d1 ...)");
    bool ok = t->rank == x->rank - 1 && t->dims[0] == x->dims[0];
    for (int d = 1; ok && d < t->rank; d++) ok = t->dims[d] == x->dims[d + 1];
    if (!ok)
        return amp_infer_fail(c, AMP_ERR_SHAPE, "target must have shape N x d1 x ... matching X (N x C x d1 x ...)");
    if (w) {
        if ((s = need_float(c, 3))) return s;
        if (w->rank != 1 || w->dims[0] != x->dims[1])
            return amp_infer_fail(c, AMP_ERR_SHAPE, "weight must be 1-D of length %lld (the class count)",
                                  (long long)x->dims[1]);
    }
    const char *red = amp_attr_str(c->n, "reduction", "mean");
    const bool none = strcmp(red, "none") == 0;
    if (!none && strcmp(red, "sum") != 0 && strcmp(red, "mean") != 0)
        return amp_infer_fail(c, AMP_ERR_INVALID_GRAPH, "reduction '%s' is not none, sum or mean", red);
    if (dy) {
        if ((s = need_float(c, 0))) return s;
        if (none ? !amp_tinfo_same_shape(dy, t) : amp_tinfo_numel(dy) != 1)
            return amp_infer_fail(c, AMP_ERR_SHAPE, "dY does not have the loss's shape");
    }
    return AMP_OK;
}

/* NegativeLogLikelihoodLossGrad(dY, X, target, weight?) -> dX. */
amp_status amp_infer_nll_loss_grad(amp_infer *c) {
    amp_status s;
    if ((s = amp_infer_need_inputs(c, 3, 4)) || (s = need_outputs(c, 1, 1)) || (s = check_loss_grad(c))) return s;
    set_like(c, 0, c->in[1]);
    return AMP_OK;
}

/* SoftmaxCrossEntropyLossGrad(dY?, scores, labels, weight?, dLogProb?) -> dscores. */
amp_status amp_infer_sce_loss_grad(amp_infer *c) {
    amp_status s;
    if ((s = need_present(c, 1, 3, 5)) || (s = need_outputs(c, 1, 1)) || (s = check_loss_grad(c)) ||
        (s = check_grad_like(c, 4, c->in[1], "log_prob")))
        return s;
    set_like(c, 0, c->in[1]);
    return AMP_OK;
}


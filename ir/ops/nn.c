/* Shape inference for the softmax family and the classification losses. */
#include <string.h>

#include "ir/ir.h"
#include "ir/ops/nn.h"

/* ---- Softmax, LogSoftmax, Hardmax --------------------------------------------------------- */

amp_status amp_infer_softmax(amp_infer *c) {
    amp_status s = amp_infer_need_inputs(c, 1, 1);
    if (s) return s;
    const amp_tinfo *x = c->in[0];
    if ((s = amp_infer_dtype_in(c, x->dtype, amp_dt_float))) return s;
    if (c->nout != 1) return amp_infer_fail(c, AMP_ERR_INVALID_GRAPH, "has %d outputs, expects 1", c->nout);
    if (c->opset >= 13) {
        int axis;
        if ((s = amp_infer_axis(c, amp_attr_int(c->n, "axis", -1), x->rank, &axis))) return s;
    } else {
        /* Before 13 the input is coerced to 2-D [d0*..*d(axis-1), d(axis)*..]; axis == rank
         * is allowed there (every row then has one element). */
        int64_t axis = amp_attr_int(c->n, "axis", 1);
        if (axis < -x->rank || axis > x->rank)
            return amp_infer_fail(c, AMP_ERR_INVALID_GRAPH, "axis %lld out of range for rank %d", (long long)axis,
                                  x->rank);
    }
    set_out(c, 0, x->dtype, x->rank, x->dims);
    return AMP_OK;
}

/* ---- NegativeLogLikelihoodLoss, SoftmaxCrossEntropyLoss ------------------------------------ */

static const amp_dtype dt_index[] = {AMP_I64, AMP_I32, AMP_UNDEFINED};

/* Common checks of (input N x C x d1.., target N x d1.., weight C, reduction); writes the loss
 * output 0. */
static amp_status infer_loss(amp_infer *c, const char *xname, const char *tname) {
    amp_status s = amp_infer_need_inputs(c, 2, 3);
    if (s) return s;
    const amp_tinfo *x = c->in[0], *t = c->in[1];
    const amp_tinfo *w = c->nin > 2 ? c->in[2] : NULL;
    if ((s = amp_infer_dtype_in(c, x->dtype, amp_dt_float))) return s;
    if ((s = amp_infer_dtype_in(c, t->dtype, dt_index))) return s;
    if (x->rank < 2) return amp_infer_fail(c, AMP_ERR_SHAPE, "%s must have rank >= 2 (N x C x d1 ...)", xname);
    bool ok = t->rank == x->rank - 1 && t->dims[0] == x->dims[0];
    for (int d = 1; ok && d < t->rank; d++) ok = t->dims[d] == x->dims[d + 1];
    if (!ok)
        return amp_infer_fail(c, AMP_ERR_SHAPE, "%s must have shape N x d1 x ... matching %s (N x C x d1 x ...)",
                              tname, xname);
    if (w && (s = check_param(c, 2, "weight", x->dims[1]))) return s;
    const char *red = amp_attr_str(c->n, "reduction", "mean");
    bool none = strcmp(red, "none") == 0;
    if (!none && strcmp(red, "sum") != 0 && strcmp(red, "mean") != 0)
        return amp_infer_fail(c, AMP_ERR_INVALID_GRAPH, "reduction '%s' is not none, sum or mean", red);
    if (none) set_out(c, 0, x->dtype, t->rank, t->dims);
    else set_out(c, 0, x->dtype, 0, NULL);
    return AMP_OK;
}

amp_status amp_infer_nll_loss(amp_infer *c) {
    if (c->nout != 1) return amp_infer_fail(c, AMP_ERR_INVALID_GRAPH, "has %d outputs, expects 1", c->nout);
    return infer_loss(c, "input", "target");
}

amp_status amp_infer_sce_loss(amp_infer *c) {
    if (c->nout < 1 || c->nout > 2)
        return amp_infer_fail(c, AMP_ERR_INVALID_GRAPH, "has %d outputs, expects 1 or 2", c->nout);
    amp_status s = infer_loss(c, "scores", "labels");
    if (s) return s;
    if (c->nout > 1) set_out(c, 1, c->in[0]->dtype, c->in[0]->rank, c->in[0]->dims);
    return AMP_OK;
}

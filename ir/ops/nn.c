/* Shape inference for normalisation, the softmax family and the classification losses. */
#include <string.h>

#include "ir/ir.h"

/* An output the graph names (an omitted optional output has id -1, or is past the end). */
static bool out_named(const amp_infer *c, int i) {
    if (i >= c->nout) return false;
    return !c->n->outputs || c->n->outputs[i] >= 0;
}

static void set_out(amp_infer *c, int i, amp_dtype dt, int rank, const int64_t *dims) {
    amp_tinfo *o = c->out[i];
    o->dtype = dt;
    o->rank = rank;
    if (rank > 0) memcpy(o->dims, dims, sizeof(int64_t) * (size_t)rank);
    o->value = NULL;
}

/* A per-channel parameter: float dtype (it may differ from X's: autocast keeps parameters in
 * f32 beside 16-bit activations, and opset 15 allows it) and 1-D of length ch. */
static amp_status check_param(amp_infer *c, int i, const char *what, int64_t ch) {
    const amp_tinfo *p = c->in[i];
    amp_status s = amp_infer_dtype_in(c, p->dtype, amp_dt_float);
    if (s) return s;
    if (p->rank != 1 || p->dims[0] != ch)
        return amp_infer_fail(c, AMP_ERR_SHAPE, "%s must be 1-D of length %lld (the channel count)", what,
                              (long long)ch);
    return AMP_OK;
}

/* ---- BatchNormalization ------------------------------------------------------------------ */

amp_status amp_infer_batch_norm(amp_infer *c) {
    amp_status s = amp_infer_need_inputs(c, 5, 5);
    if (s) return s;
    const amp_tinfo *x = c->in[0];
    if ((s = amp_infer_dtype_in(c, x->dtype, amp_dt_float))) return s;
    if (x->rank < 1) return amp_infer_fail(c, AMP_ERR_SHAPE, "X must have rank >= 1 (N x C x D1 ...)");

    /* Before opset 9, spatial=0 normalises every activation on its own: the parameters then
     * have shape C x D1 x ... Dn. */
    bool per_activation = c->opset < 9 && amp_attr_int(c->n, "spatial", 1) == 0 && x->rank > 2;
    int64_t ch = x->rank > 1 ? x->dims[1] : 1;
    if (per_activation) {
        static const char *names[4] = {"scale", "B", "mean", "var"};
        for (int i = 1; i < 5; i++) {
            const amp_tinfo *p = c->in[i];
            if ((s = amp_infer_dtype_in(c, p->dtype, amp_dt_float))) return s;
            bool ok = p->rank == x->rank - 1;
            for (int d = 0; ok && d < p->rank; d++) ok = p->dims[d] == x->dims[d + 1];
            if (!ok)
                return amp_infer_fail(c, AMP_ERR_SHAPE, "%s must have shape C x D1 x ... when spatial=0",
                                      names[i - 1]);
        }
    } else {
        if ((s = check_param(c, 1, "scale", ch)) || (s = check_param(c, 2, "B", ch)) ||
            (s = check_param(c, 3, "mean", ch)) || (s = check_param(c, 4, "var", ch)))
            return s;
    }
    if (c->in[1]->dtype != c->in[2]->dtype)
        return amp_infer_fail(c, AMP_ERR_SHAPE, "scale and B must have the same dtype");
    if (c->in[3]->dtype != c->in[4]->dtype)
        return amp_infer_fail(c, AMP_ERR_SHAPE, "mean and var must have the same dtype");

    int max_out = 1;
    if (c->opset >= 14) {
        if (amp_attr_int(c->n, "training_mode", 0)) max_out = 3;
    } else if (out_named(c, 1) && (c->opset >= 7 || amp_attr_int(c->n, "is_test", 0) == 0)) {
        max_out = 5; /* mean, var, saved_mean, saved_var (training) */
    }
    if (c->nout < 1 || c->nout > (c->opset >= 14 ? 3 : 5))
        return amp_infer_fail(c, AMP_ERR_INVALID_GRAPH, "has %d outputs", c->nout);
    for (int i = max_out; i < c->nout; i++)
        if (out_named(c, i))
            return amp_infer_fail(c, AMP_ERR_INVALID_GRAPH,
                                  "output %d is only produced in training mode (training_mode=1)", i);

    set_out(c, 0, x->dtype, x->rank, x->dims);
    for (int i = 1; i < c->nout; i++) set_out(c, i, c->in[3]->dtype, c->in[3]->rank, c->in[3]->dims);
    return AMP_OK;
}

/* ---- InstanceNormalization --------------------------------------------------------------- */

amp_status amp_infer_instance_norm(amp_infer *c) {
    amp_status s = amp_infer_need_inputs(c, 3, 3);
    if (s) return s;
    const amp_tinfo *x = c->in[0];
    if ((s = amp_infer_dtype_in(c, x->dtype, amp_dt_float))) return s;
    if (x->rank < 3)
        return amp_infer_fail(c, AMP_ERR_SHAPE, "input must have rank >= 3 (N x C x D1 ...), has %d", x->rank);
    if ((s = check_param(c, 1, "scale", x->dims[1])) || (s = check_param(c, 2, "B", x->dims[1]))) return s;
    if (c->nout != 1) return amp_infer_fail(c, AMP_ERR_INVALID_GRAPH, "has %d outputs, expects 1", c->nout);
    set_out(c, 0, x->dtype, x->rank, x->dims);
    return AMP_OK;
}

/* ---- LayerNormalization ------------------------------------------------------------------ */

/* Scale and B broadcast one way onto X (numpy rules, X's shape wins). */
static amp_status check_bcast_to(amp_infer *c, int i, const char *what, const amp_tinfo *x) {
    const amp_tinfo *p = c->in[i];
    amp_status s = amp_infer_dtype_in(c, p->dtype, amp_dt_float);
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

amp_status amp_infer_layer_norm(amp_infer *c) {
    amp_status s = amp_infer_need_inputs(c, 2, 3);
    if (s) return s;
    const amp_tinfo *x = c->in[0];
    if ((s = amp_infer_dtype_in(c, x->dtype, amp_dt_float))) return s;
    if (x->rank < 1) return amp_infer_fail(c, AMP_ERR_SHAPE, "X must have rank >= 1");
    int axis;
    if ((s = amp_infer_axis(c, amp_attr_int(c->n, "axis", -1), x->rank, &axis))) return s;
    if ((s = check_bcast_to(c, 1, "Scale", x))) return s;
    if (c->nin > 2 && c->in[2] && (s = check_bcast_to(c, 2, "B", x))) return s;
    int64_t stash = amp_attr_int(c->n, "stash_type", AMP_F32);
    if (stash != AMP_F32 && stash != AMP_F64 && stash != AMP_F16 && stash != AMP_BF16)
        return amp_infer_fail(c, AMP_ERR_UNSUPPORTED, "stash_type %lld is not a supported float type",
                              (long long)stash);
    if (c->nout < 1 || c->nout > 3)
        return amp_infer_fail(c, AMP_ERR_INVALID_GRAPH, "has %d outputs, expects 1 to 3", c->nout);
    set_out(c, 0, x->dtype, x->rank, x->dims);
    int64_t rdims[AMP_MAX_RANK];
    for (int d = 0; d < x->rank; d++) rdims[d] = d < axis ? x->dims[d] : 1;
    for (int i = 1; i < c->nout; i++) set_out(c, i, (amp_dtype)stash, x->rank, rdims);
    return AMP_OK;
}

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

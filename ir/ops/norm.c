/* Shape inference for BatchNormalization, InstanceNormalization and LayerNormalization (kernels
 * in backends/cpu/norm_layer.c), and for GroupNormalization (opsets 18 and 21), LRN (1 and 13)
 * and MeanVarianceNormalization (9 and 13) (kernels in backends/cpu/norm.c; their training ops
 * in ir/ops/norm_grad.c validate their forward inputs through these same functions). */
#include <string.h>

#include "ir/ir.h"
#include "ir/ops/nn.h"

static void set_like(amp_infer *c, int i, const amp_tinfo *t) {
    amp_tinfo *o = c->out[i];
    o->dtype = t->dtype;
    o->rank = t->rank;
    memcpy(o->dims, t->dims, sizeof o->dims);
    o->value = NULL;
}

static amp_status need_one_output(amp_infer *c) {
    if (c->nout != 1) return amp_infer_fail(c, AMP_ERR_INVALID_GRAPH, "has %d outputs, expects 1", c->nout);
    return AMP_OK;
}

/* ---- GroupNormalization -------------------------------------------------------------------- */

/* Opset 18 gives scale and bias one value per group; opset 21 one per channel and adds
 * stash_type, the precision of the statistics. The kernel accumulates in double whatever the
 * stash type, so f32 (the default) and f64 are both honoured; a 16-bit stash would have to
 * round the statistics on purpose and is refused. */
amp_status amp_infer_group_norm(amp_infer *c) {
    amp_status s = amp_infer_need_inputs(c, 3, 3);
    if (s || (s = need_one_output(c))) return s;
    const amp_tinfo *x = c->in[0];
    if ((s = amp_infer_dtype_in(c, x->dtype, amp_dt_float))) return s;
    /* N x C x D1 ...: the ONNX function reshapes to (N, G, C/G, D1...), which is defined for
     * rank 2 as well (no spatial dims). */
    if (x->rank < 2)
        return amp_infer_fail(c, AMP_ERR_SHAPE, "X must have rank >= 2 (N x C x D1 ...), has %d", x->rank);
    const amp_attr *ga = amp_node_attr(c->n, "num_groups");
    if (!ga || ga->kind != AMP_ATTR_INT)
        return amp_infer_fail(c, AMP_ERR_INVALID_GRAPH, "the integer attribute num_groups is required");
    const int64_t ch = x->dims[1], groups = ga->i;
    if (groups < 1) return amp_infer_fail(c, AMP_ERR_INVALID_GRAPH, "num_groups %lld must be >= 1", (long long)groups);
    if (ch % groups != 0)
        return amp_infer_fail(c, AMP_ERR_SHAPE, "num_groups %lld does not divide the channel count %lld",
                              (long long)groups, (long long)ch);
    const bool per_channel = c->opset >= 21;
    if (per_channel) {
        const int64_t stash = amp_attr_int(c->n, "stash_type", AMP_F32);
        if (stash == AMP_F16 || stash == AMP_BF16)
            return amp_infer_fail(c, AMP_ERR_UNSUPPORTED, "stash_type %s is not supported (float and double are)",
                                  amp_dtype_name((amp_dtype)stash));
        if (stash != AMP_F32 && stash != AMP_F64)
            return amp_infer_fail(c, AMP_ERR_INVALID_GRAPH, "stash_type %lld is not a floating-point type",
                                  (long long)stash);
    }
    const int64_t plen = per_channel ? ch : groups;
    static const char *const names[2] = {"scale", "bias"};
    for (int i = 1; i < 3; i++) {
        const amp_tinfo *p = c->in[i];
        /* T for all three in the schema; a float parameter of another width is read exactly
         * (as InstanceNormalization allows), so only the kind is checked. */
        if ((s = amp_infer_dtype_in(c, p->dtype, amp_dt_float))) return s;
        if (p->rank != 1 || p->dims[0] != plen)
            return amp_infer_fail(c, AMP_ERR_SHAPE, "%s must be 1-D of length %lld (the %s count at opset %lld)",
                                  names[i - 1], (long long)plen, per_channel ? "channel" : "group",
                                  (long long)c->opset);
    }
    set_like(c, 0, x);
    return AMP_OK;
}

/* ---- LRN --------------------------------------------------------------------------------- */

amp_status amp_infer_lrn(amp_infer *c) {
    amp_status s = amp_infer_need_inputs(c, 1, 1);
    if (s || (s = need_one_output(c))) return s;
    const amp_tinfo *x = c->in[0];
    if ((s = amp_infer_dtype_in(c, x->dtype, amp_dt_float))) return s;
    if (x->rank < 2)
        return amp_infer_fail(c, AMP_ERR_SHAPE, "X must have rank >= 2 (N x C x D1 ...), has %d", x->rank);
    const amp_attr *sa = amp_node_attr(c->n, "size");
    if (!sa || sa->kind != AMP_ATTR_INT)
        return amp_infer_fail(c, AMP_ERR_INVALID_GRAPH, "the integer attribute size is required");
    if (sa->i < 1) return amp_infer_fail(c, AMP_ERR_INVALID_GRAPH, "size %lld must be >= 1", (long long)sa->i);
    set_like(c, 0, x);
    return AMP_OK;
}

/* ---- MeanVarianceNormalization ------------------------------------------------------------- */

amp_status amp_infer_mvn(amp_infer *c) {
    amp_status s = amp_infer_need_inputs(c, 1, 1);
    if (s || (s = need_one_output(c))) return s;
    const amp_tinfo *x = c->in[0];
    if ((s = amp_infer_dtype_in(c, x->dtype, amp_dt_float))) return s;
    static const int64_t def_axes[3] = {0, 2, 3};
    const int64_t *axes = def_axes;
    int n = amp_attr_ints(c->n, "axes", &axes);
    if (n < 0) {
        axes = def_axes;
        n = 3;
    }
    /* An empty list reduces over every axis: the opset-13 function passes it to ReduceMean-18 as
     * an empty axes input, which (noop_with_empty_axes = 0) means all of them. */
    bool seen[AMP_MAX_RANK] = {false};
    for (int i = 0; i < n; i++) {
        if (axes[i] < -x->rank || axes[i] >= x->rank)
            return amp_infer_fail(c, AMP_ERR_INVALID_GRAPH, "axis %lld out of range for rank %d%s", (long long)axes[i],
                                  x->rank, axes == def_axes ? " (the default axes are 0, 2, 3)" : "");
        int a = (int)(axes[i] < 0 ? axes[i] + x->rank : axes[i]);
        if (seen[a]) return amp_infer_fail(c, AMP_ERR_INVALID_GRAPH, "axis %d appears twice", a);
        seen[a] = true;
    }
    set_like(c, 0, x);
    return AMP_OK;
}

/* An output the graph names (an omitted optional output has id -1, or is past the end). */
static bool out_named(const amp_infer *c, int i) {
    if (i >= c->nout) return false;
    return !c->n->outputs || c->n->outputs[i] >= 0;
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

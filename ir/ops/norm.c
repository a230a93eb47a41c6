/* Shape inference for GroupNormalization (opsets 18 and 21), LRN (1 and 13) and
 * MeanVarianceNormalization (9 and 13). Kernels in backends/cpu/norm.c; the training ops
 * of these (ir/ops/norm_grad.c) validate their forward inputs through these same functions. */
#include <string.h>

#include "ir/ir.h"

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

/* Shape inference for reductions (ReduceMean ... ReduceSumSquare), ArgMax/ArgMin and CumSum. */
#include <string.h>

#include "ir/ir.h"

/* ReduceMax/Min take every numeric type; the arithmetic reductions leave out the 8-bit
 * integers (the spec lists int32/int64/uint32/uint64 and the floats). bf16 is accepted at every
 * opset because autocast may choose it for any node. */
static const amp_dtype reduce_arith_types[] = {AMP_F32, AMP_F16, AMP_BF16, AMP_F64, AMP_I64, AMP_I32, AMP_UNDEFINED};
/* ReduceMax/Min and ArgMax/Min compare in int64 for integers, so uint64 is not held here. */
static const amp_dtype minmax_types[] = {AMP_F32, AMP_F16, AMP_BF16, AMP_F64, AMP_I64, AMP_I32, AMP_I16,
                                         AMP_I8,  AMP_U32, AMP_U16, AMP_U8,  AMP_UNDEFINED};
static const amp_dtype cumsum_types[] = {AMP_F32, AMP_F16, AMP_BF16, AMP_F64, AMP_I64, AMP_I32, AMP_UNDEFINED};

static amp_status check_out_size(amp_infer *c) {
    amp_status s = amp_shape_numel(c->out[0]->rank, c->out[0]->dims, c->out[0]->dtype, NULL, NULL);
    if (s) return amp_infer_fail(c, s, "output shape overflows or is invalid");
    return AMP_OK;
}

/* ReduceSum took axes as an input from opset 13, the other reductions from opset 18. */
static bool axes_is_input(const amp_node *n, int64_t opset) {
    return n->op == AMP_OP_REDUCE_SUM ? opset >= 13 : opset >= 18;
}

amp_status amp_infer_reduce(amp_infer *c) {
    bool from_input = axes_is_input(c->n, c->opset);
    amp_status s = amp_infer_need_inputs(c, 1, from_input ? 2 : 1);
    if (s) return s;
    const amp_tinfo *x = c->in[0];
    bool minmax = c->n->op == AMP_OP_REDUCE_MAX || c->n->op == AMP_OP_REDUCE_MIN;
    /* bool ReduceMax/Min (any/all) came with opset 20 */
    if (minmax && x->dtype == AMP_BOOL && c->opset >= 20) s = AMP_OK;
    else s = amp_infer_dtype_in(c, x->dtype, minmax ? minmax_types : reduce_arith_types);
    if (s) return s;

    int64_t axes[2 * AMP_MAX_RANK];
    int naxes = 0;
    if (from_input) {
        if (c->nin > 1 && c->in[1]) {
            s = amp_infer_const_ints(c, 1, axes, 2 * AMP_MAX_RANK, &naxes);
            if (s) return s;
        }
    } else {
        const int64_t *a = NULL;
        int na = amp_attr_ints(c->n, "axes", &a);
        if (na > 2 * AMP_MAX_RANK) return amp_infer_fail(c, AMP_ERR_INVALID_GRAPH, "too many axes (%d)", na);
        if (na > 0) {
            memcpy(axes, a, sizeof(int64_t) * (size_t)na);
            naxes = na;
        }
    }
    int64_t keepdims = amp_attr_int(c->n, "keepdims", 1);
    int64_t noop = from_input ? amp_attr_int(c->n, "noop_with_empty_axes", 0) : 0;

    bool red[AMP_MAX_RANK] = {false};
    for (int i = 0; i < naxes; i++) {
        if (axes[i] < -x->rank || axes[i] >= x->rank)
            return amp_infer_fail(c, AMP_ERR_INVALID_GRAPH, "axis %lld out of range for rank %d", (long long)axes[i],
                                  x->rank);
        int a = (int)(axes[i] < 0 ? axes[i] + x->rank : axes[i]);
        if (red[a]) return amp_infer_fail(c, AMP_ERR_INVALID_GRAPH, "axis %lld is repeated", (long long)axes[i]);
        red[a] = true;
    }
    amp_tinfo *y = c->out[0];
    y->dtype = x->dtype;
    if (naxes == 0 && noop) {
        y->rank = x->rank;
        memcpy(y->dims, x->dims, sizeof y->dims);
        return check_out_size(c);
    }
    if (naxes == 0)
        for (int d = 0; d < x->rank; d++) red[d] = true;
    int r = 0;
    for (int d = 0; d < x->rank; d++) {
        if (!red[d]) y->dims[r++] = x->dims[d];
        else if (keepdims) y->dims[r++] = 1;
    }
    y->rank = r;
    return check_out_size(c);
}

amp_status amp_infer_argminmax(amp_infer *c) {
    amp_status s = amp_infer_need_inputs(c, 1, 1);
    if (s) return s;
    const amp_tinfo *x = c->in[0];
    s = amp_infer_dtype_in(c, x->dtype, minmax_types);
    if (s) return s;
    if (x->rank < 1) return amp_infer_fail(c, AMP_ERR_SHAPE, "input must have rank >= 1");
    int axis;
    s = amp_infer_axis(c, amp_attr_int(c->n, "axis", 0), x->rank, &axis);
    if (s) return s;
    int64_t keepdims = amp_attr_int(c->n, "keepdims", 1);
    int64_t last = amp_attr_int(c->n, "select_last_index", 0);
    if (last != 0 && last != 1)
        return amp_infer_fail(c, AMP_ERR_INVALID_GRAPH, "select_last_index must be 0 or 1, not %lld", (long long)last);
    amp_tinfo *y = c->out[0];
    y->dtype = AMP_I64;
    int r = 0;
    bool empty_out = false;
    for (int d = 0; d < x->rank; d++) {
        if (d != axis) {
            y->dims[r++] = x->dims[d];
            empty_out = empty_out || x->dims[d] == 0;
        } else if (keepdims) {
            y->dims[r++] = 1;
        }
    }
    y->rank = r;
    /* an index into an empty axis does not exist; an empty output needs none */
    if (x->dims[axis] == 0 && !empty_out)
        return amp_infer_fail(c, AMP_ERR_SHAPE, "axis %d has no elements to choose from", axis);
    return check_out_size(c);
}

amp_status amp_infer_cumsum(amp_infer *c) {
    amp_status s = amp_infer_need_inputs(c, 2, 2);
    if (s) return s;
    const amp_tinfo *x = c->in[0], *ax = c->in[1];
    s = amp_infer_dtype_in(c, x->dtype, cumsum_types);
    if (s) return s;
    if (x->rank < 1) return amp_infer_fail(c, AMP_ERR_SHAPE, "input must have rank >= 1");
    if (ax->dtype != AMP_I64 && ax->dtype != AMP_I32)
        return amp_infer_fail(c, AMP_ERR_INVALID_GRAPH, "axis must be int32 or int64");
    if (ax->rank > 1 || (ax->rank == 1 && ax->dims[0] != 1))
        return amp_infer_fail(c, AMP_ERR_SHAPE, "axis must be a scalar");
    if (ax->value) {
        int64_t a[1];
        int na = 0;
        s = amp_infer_const_ints(c, 1, a, 1, &na);
        if (s) return s;
        int axis;
        s = amp_infer_axis(c, a[0], x->rank, &axis);
        if (s) return s;
    }
    int64_t excl = amp_attr_int(c->n, "exclusive", 0), rev = amp_attr_int(c->n, "reverse", 0);
    if ((excl != 0 && excl != 1) || (rev != 0 && rev != 1))
        return amp_infer_fail(c, AMP_ERR_INVALID_GRAPH, "exclusive and reverse must be 0 or 1");
    amp_tinfo *y = c->out[0];
    y->dtype = x->dtype;
    y->rank = x->rank;
    memcpy(y->dims, x->dims, sizeof y->dims);
    return AMP_OK;
}

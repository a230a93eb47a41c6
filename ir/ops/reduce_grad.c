/* Gradients of the reduce family: the builder amp_grad_reduce (every reduction and CumSum) and
 * the shape inference of its training-domain op ReduceGrad (ir/ops/reduce_grad.def; kernel in
 * backends/cpu/reduce_grad.c). Every reduction gets one fused ReduceGrad that recomputes the
 * statistics it needs from X; CumSum's gradient is a CumSum running the other way. */
#include <string.h>

#include "ir/grad.h"
#include "ir/ops/nn_grad.h"

/* ---- the builder ---------------------------------------------------------------------------- */

static amp_status grad_reduce(amp_grad_ctx *c) {
    const amp_node *f = amp_grad_fwd(c);
    const char *op = f->op_type;
    int ins[3] = {c->dy[0], amp_grad_in(c, 0), in_at(c, 1)};
    amp_node *n;
    amp_status s = fused(c, "ReduceGrad", 3, ins, 1, &c->dx[0], &n);
    if (!s) s = amp_grad_attr_str(c, n, "fwd_op", op);
    return s;
}

/* dX is the cumulative sum of dY the other way round, with the same exclusivity. */
static amp_status grad_cumsum(amp_grad_ctx *c) {
    const bool rev = amp_attr_int(amp_grad_fwd(c), "reverse", 0) != 0;
    int ins[2] = {c->dy[0], amp_grad_in(c, 1)};
    amp_node *n;
    amp_status s = amp_grad_node(c, "CumSum", "", 2, ins, 1, &c->dx[0], &n);
    if (!s) s = amp_grad_copy_attrs(c, n);
    if (!s) s = amp_grad_attr_int(c, n, "reverse", !rev);
    return s;
}

amp_status amp_grad_reduce(amp_grad_ctx *c) {
    switch (amp_grad_fwd(c)->op) {
    case AMP_OP_REDUCE_MEAN:
    case AMP_OP_REDUCE_SUM:
    case AMP_OP_REDUCE_MAX:
    case AMP_OP_REDUCE_MIN:
    case AMP_OP_REDUCE_PROD:
    case AMP_OP_REDUCE_L1:
    case AMP_OP_REDUCE_L2:
    case AMP_OP_REDUCE_LOG_SUM:
    case AMP_OP_REDUCE_LOG_SUM_EXP:
    case AMP_OP_REDUCE_SUM_SQUARE: return grad_reduce(c);
    case AMP_OP_CUM_SUM: return grad_cumsum(c);
    default: return AMP_ERR_NOT_FOUND;
    }
}

/* ---- shape inference of the training op ---------------------------------------------------- */

static const char *const reduce_names[] = {"ReduceSum",    "ReduceMean",      "ReduceSumSquare", "ReduceL1",
                                           "ReduceL2",     "ReduceLogSum",    "ReduceLogSumExp", "ReduceMax",
                                           "ReduceMin",    "ReduceProd",      NULL};

/* ReduceGrad(dY, X, axes?) -> dX, for the forward named by fwd_op at fwd_opset. */
amp_status amp_infer_reduce_grad(amp_infer *c) {
    amp_status s;
    if ((s = amp_infer_need_inputs(c, 2, 3)) || (s = need_outputs(c, 1, 1)) || (s = need_float(c, 1))) return s;
    const amp_tinfo *dy = c->in[0], *x = c->in[1];
    const char *op = amp_attr_str(c->n, "fwd_op", "");
    bool known = false;
    for (int i = 0; reduce_names[i]; i++) known = known || strcmp(op, reduce_names[i]) == 0;
    if (!known) return amp_infer_fail(c, AMP_ERR_INVALID_GRAPH, "fwd_op '%s' is not a reduction", op);
    if (dy->dtype != x->dtype) return amp_infer_fail(c, AMP_ERR_INVALID_GRAPH, "dY and X must have one dtype");
    const int64_t opset = amp_attr_int(c->n, "fwd_opset", 18);
    const bool from_input = strcmp(op, "ReduceSum") == 0 ? opset >= 13 : opset >= 18;
    /* The axes, when known here, give dY's element count; otherwise the kernel checks it. */
    int64_t axes[2 * AMP_MAX_RANK];
    int naxes = 0;
    bool have = true;
    if (from_input) {
        const amp_tinfo *a = opt_in(c, 2);
        if (a && a->value) {
            if ((s = amp_infer_const_ints(c, 2, axes, 2 * AMP_MAX_RANK, &naxes))) return s;
        } else if (a) {
            have = false;
        }
    } else {
        const int64_t *v = NULL;
        int na = amp_attr_ints(c->n, "axes", &v);
        if (na > 2 * AMP_MAX_RANK) return amp_infer_fail(c, AMP_ERR_INVALID_GRAPH, "too many axes (%d)", na);
        for (int i = 0; i < na; i++) axes[i] = v[i];
        naxes = na > 0 ? na : 0;
    }
    if (have) {
        bool red[AMP_MAX_RANK] = {false};
        for (int i = 0; i < naxes; i++) {
            if (axes[i] < -x->rank || axes[i] >= x->rank)
                return amp_infer_fail(c, AMP_ERR_INVALID_GRAPH, "axis %lld out of range for rank %d",
                                      (long long)axes[i], x->rank);
            red[axes[i] < 0 ? axes[i] + x->rank : axes[i]] = true;
        }
        const bool noop = naxes == 0 && from_input && amp_attr_int(c->n, "noop_with_empty_axes", 0) != 0;
        int64_t ny = 1;
        for (int d = 0; d < x->rank; d++)
            if (noop || (naxes > 0 && !red[d])) ny *= x->dims[d];
        if (amp_tinfo_numel(dy) != ny)
            return amp_infer_fail(c, AMP_ERR_SHAPE, "dY has %lld elements, the reduction gives %lld",
                                  (long long)amp_tinfo_numel(dy), (long long)ny);
    }
    set_like(c, 0, x);
    return AMP_OK;
}

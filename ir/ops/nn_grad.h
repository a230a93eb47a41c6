/* Gradient helpers of the nn family that the norm family (ir/ops/norm_grad.c), split off from
 * it, shares: the builder's accessors and fused-node constructor, and the training ops'
 * input checks. Included by ir/ops/nn_grad.c and ir/ops/norm_grad.c. */
#ifndef AMP_IR_OPS_NN_GRAD_H
#define AMP_IR_OPS_NN_GRAD_H

#include "ir/grad.h"
#include "ir/ops/nn.h"

static inline amp_dtype vdtype(const amp_grad_ctx *c, int v) { return v >= 0 ? c->g->values[v].dtype : AMP_UNDEFINED; }
static inline int dy_at(const amp_grad_ctx *c, int k) { return k < c->nout ? c->dy[k] : -1; }
static inline int in_at(const amp_grad_ctx *c, int i) { return i < c->nin ? amp_grad_in(c, i) : -1; }

/* A fused training node: forward attributes copied, plus the forward opset where the kernel
 * needs it. */
static inline amp_status fused(amp_grad_ctx *c, const char *op, int nin, const int *ins, int nout, int *outs,
                               amp_node **n) {
    const int64_t opset = amp_grad_opset(c);
    amp_status s = amp_grad_node(c, op, AMP_TRAIN_DOMAIN, nin, ins, nout, outs, n);
    if (!s) s = amp_grad_copy_attrs(c, *n);
    if (!s) s = amp_grad_attr_int(c, *n, "fwd_opset", opset);
    return s;
}

static inline void set_like(amp_infer *c, int i, const amp_tinfo *t) { set_out(c, i, t->dtype, t->rank, t->dims); }

static inline const amp_tinfo *opt_in(const amp_infer *c, int i) { return i < c->nin ? c->in[i] : NULL; }

/* Inputs lo..hi-1 must be present (others may be omitted); nin within [lo, max]. */
static inline amp_status need_present(amp_infer *c, int lo, int hi, int max) {
    if (c->nin < hi || c->nin > max)
        return amp_infer_fail(c, AMP_ERR_INVALID_GRAPH, "expects %d to %d inputs, has %d", hi, max, c->nin);
    for (int i = lo; i < hi; i++)
        if (!c->in[i]) return amp_infer_fail(c, AMP_ERR_INVALID_GRAPH, "input %d is required", i);
    return AMP_OK;
}

static inline amp_status need_outputs(amp_infer *c, int lo, int hi) {
    if (c->nout < lo || c->nout > hi)
        return amp_infer_fail(c, AMP_ERR_INVALID_GRAPH, "has %d outputs, expects %d to %d", c->nout, lo, hi);
    return AMP_OK;
}

static inline amp_status need_float(amp_infer *c, int i) {
    return amp_infer_dtype_in(c, c->in[i]->dtype, amp_dt_float);
}

/* An incoming gradient (input i, may be omitted) must match the value it belongs to. */
static inline amp_status check_grad_like(amp_infer *c, int i, const amp_tinfo *like, const char *what) {
    const amp_tinfo *g = opt_in(c, i);
    if (!g) return AMP_OK;
    amp_status s = need_float(c, i);
    if (s) return s;
    if (!amp_tinfo_same_shape(g, like))
        return amp_infer_fail(c, AMP_ERR_SHAPE, "the gradient of %s (input %d) does not have its shape", what, i);
    return AMP_OK;
}

#endif

/* Shape inference of the fused family (ir/ops/fused.def): each op checks what its kernels count
 * on and gives its outputs; the parts that are an existing op's (Conv, LayerNormalization, Cast)
 * are inferred by that op's own function, so a fused node accepts exactly what its pieces do. */
#include <string.h>

#include "ir/ir.h"

static amp_status need_outputs(amp_infer *c, int lo, int hi) {
    if (c->nout < lo || c->nout > hi || !c->out[0])
        return amp_infer_fail(c, AMP_ERR_INVALID_GRAPH, "has %d outputs, expects %d to %d", c->nout, lo, hi);
    return AMP_OK;
}

/* The operands of a product share input 0's float dtype (f32, f16, bf16, f64). */
static amp_status same_float(amp_infer *c, int n) {
    amp_status s = amp_infer_dtype_in(c, c->in[0]->dtype, amp_dt_float);
    for (int i = 1; !s && i < n && i < c->nin; i++)
        if (c->in[i]) s = amp_infer_same_dtype(c, i);
    return s;
}

/* Output i, when the node has it, as A's dims with the last one n. */
static amp_status rows_by(amp_infer *c, int i, const amp_tinfo *a, int64_t n) {
    int64_t dims[AMP_MAX_RANK];
    memcpy(dims, a->dims, sizeof dims);
    dims[a->rank - 1] = n;
    return i < c->nout ? amp_infer_set_out(c, i, a->dtype, a->rank, dims) : AMP_OK;
}

amp_status amp_infer_fused_gemm(amp_infer *c) {
    amp_status s;
    if ((s = amp_infer_need_inputs(c, 2, 3)) || (s = need_outputs(c, 1, 2)) || (s = same_float(c, 3))) return s;
    const amp_tinfo *a = c->in[0], *b = c->in[1], *bias = c->nin > 2 ? c->in[2] : NULL;
    const char *act = amp_attr_str(c->n, "activation", "");
    if (strcmp(act, "") && strcmp(act, "Relu") && strcmp(act, "Gelu") && strcmp(act, "GeluTanh"))
        return amp_infer_fail(c, AMP_ERR_UNSUPPORTED, "activation '%s' (none, Relu, Gelu, GeluTanh)", act);
    if (a->rank < 2 || b->rank != 2)
        return amp_infer_fail(c, AMP_ERR_SHAPE, "A must have rank >= 2 and B rank 2, have %d and %d", a->rank, b->rank);
    const bool tb = amp_attr_int(c->n, "trans_b", 0) != 0;
    const int64_t k = a->dims[a->rank - 1], bk = b->dims[tb ? 1 : 0], n = b->dims[tb ? 0 : 1];
    if (k != bk)
        return amp_infer_fail(c, AMP_ERR_SHAPE, "A's last dim %lld does not match B's %lld", (long long)k, (long long)bk);
    if (bias && (bias->rank != 1 || bias->dims[0] != n))
        return amp_infer_fail(c, AMP_ERR_SHAPE, "bias must be 1-D of %lld elements", (long long)n);
    if ((s = rows_by(c, 0, a, n))) return s;
    return rows_by(c, 1, a, n);
}

amp_status amp_infer_fused_conv(amp_infer *c) {
    const char *act = amp_attr_str(c->n, "activation", "");
    if (strcmp(act, "Relu"))
        return amp_infer_fail(c, AMP_ERR_UNSUPPORTED, "activation '%s' (Relu only)", act);
    return amp_infer_conv(c);
}

/* X + R (numpy broadcasting), then LayerNormalization's inference over (S, Scale, B) with outputs (Y, Mean, InvStdDev). */
amp_status amp_infer_add_layer_norm(amp_infer *c) {
    amp_status s;
    if ((s = amp_infer_need_inputs(c, 3, 4)) || (s = need_outputs(c, 1, 4))) return s;
    const amp_tinfo *x = c->in[0], *r = c->in[1];
    if ((s = amp_infer_same_dtype(c, 1))) return s;
    amp_tinfo sum = *x;
    if ((s = amp_broadcast_shape(c, x->rank, x->dims, r->rank, r->dims, &sum.rank, sum.dims))) return s;
    sum.value = NULL;
    const amp_tinfo *in[3] = {&sum, c->in[2], c->nin > 3 ? c->in[3] : NULL};
    amp_tinfo *out[3] = {c->out[0], c->nout > 2 ? c->out[2] : c->out[0], c->nout > 3 ? c->out[3] : c->out[0]};
    amp_infer ln = *c;
    ln.nin = c->nin - 1;
    ln.nout = c->nout > 2 ? c->nout - 1 : 1;
    ln.in = in;
    ln.out = out;
    if ((s = amp_infer_layer_norm(&ln))) return s;
    return c->nout > 1 ? amp_infer_set_out(c, 1, x->dtype, sum.rank, sum.dims) : AMP_OK;
}

amp_status amp_infer_attention(amp_infer *c) {
    amp_status s;
    if ((s = amp_infer_need_inputs(c, 3, 4)) || (s = need_outputs(c, 1, 2)) || (s = same_float(c, 4))) return s;
    const amp_tinfo *q = c->in[0], *k = c->in[1], *v = c->in[2], *mask = c->nin > 3 ? c->in[3] : NULL;
    const int r = q->rank;
    if (r < 2 || k->rank != r || v->rank != r)
        return amp_infer_fail(c, AMP_ERR_SHAPE, "Q, K and V must have one rank >= 2, have %d, %d and %d", r, k->rank,
                              v->rank);
    for (int d = 0; d < r - 2; d++)
        if (k->dims[d] != q->dims[d] || v->dims[d] != q->dims[d])
            return amp_infer_fail(c, AMP_ERR_SHAPE, "Q, K and V differ in leading dim %d", d);
    const bool tk = amp_attr_int(c->n, "trans_k", 0) != 0;
    const int64_t dq = q->dims[r - 1];
    const int64_t sk = k->dims[tk ? r - 1 : r - 2], dk = k->dims[tk ? r - 2 : r - 1];
    if (dk != dq) return amp_infer_fail(c, AMP_ERR_SHAPE, "Q's depth %lld and K's %lld differ", (long long)dq, (long long)dk);
    if (v->dims[r - 2] != sk)
        return amp_infer_fail(c, AMP_ERR_SHAPE, "V has %lld rows, K %lld", (long long)v->dims[r - 2], (long long)sk);
    int64_t pdims[AMP_MAX_RANK];
    memcpy(pdims, q->dims, sizeof pdims);
    pdims[r - 1] = sk;
    if (mask) {
        int rb;
        int64_t bd[AMP_MAX_RANK];
        if ((s = amp_broadcast_shape(c, r, pdims, mask->rank, mask->dims, &rb, bd))) return s;
        if (rb != r || memcmp(bd, pdims, sizeof(int64_t) * (size_t)r))
            return amp_infer_fail(c, AMP_ERR_SHAPE, "the mask does not broadcast to the scores' shape");
    }
    if ((s = rows_by(c, 0, q, v->dims[r - 1]))) return s;
    return c->nout > 1 ? amp_infer_set_out(c, 1, q->dtype, r, pdims) : AMP_OK;
}

/* Each pair through Cast's own inference. */
amp_status amp_infer_cast_multi(amp_infer *c) {
    if (c->nin < 1 || c->nout != c->nin)
        return amp_infer_fail(c, AMP_ERR_INVALID_GRAPH, "has %d inputs and %d outputs, expects n >= 1 of each", c->nin,
                              c->nout);
    for (int i = 0; i < c->nin; i++) {
        if (!c->in[i]) return amp_infer_fail(c, AMP_ERR_INVALID_GRAPH, "input %d is missing", i);
        amp_infer one = *c;
        one.nin = one.nout = 1;
        one.in = c->in + i;
        one.out = c->out + i;
        amp_status s = amp_infer_cast(&one);
        if (s) return s;
    }
    return AMP_OK;
}

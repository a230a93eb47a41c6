/* Gradients of the matmul family: the builder amp_grad_matmul (Gemm, MatMul) and the shape
 * inference of its training-domain ops (ir/ops/matmul_grad.def; kernels in
 * backends/cpu/matmul_grad.c).
 *
 * Gemm's operand gradients are Gemm nodes (BLAS, any transposition) and C's a GemmCGrad that
 * sums dY back to C's broadcast shape; MatMul's are one fused MatMulGrad per operand, which
 * sums over the batch dims that operand was broadcast along (shapes often unknown while the
 * backward graph is built). */
#include "ir/grad.h"
#include "ir/ops/nn_grad.h"

/* ---- the builder ---------------------------------------------------------------------------- */

static amp_status grad_gemm(amp_grad_ctx *c) {
    const amp_node *f = amp_grad_fwd(c);
    const int ta = amp_attr_int(f, "transA", 0) != 0, tb = amp_attr_int(f, "transB", 0) != 0;
    const float alpha = amp_attr_float(f, "alpha", 1.0f), beta = amp_attr_float(f, "beta", 1.0f);
    const int a = amp_grad_in(c, 0), b = amp_grad_in(c, 1), cc = in_at(c, 2), dy = c->dy[0];
    amp_status s;
    amp_node *n;
    /* Before opset 11 Gemm requires C: a zero scalar with beta 0 stands in for it. */
    int zero = -1;
    if (amp_grad_opset(c) < 11 && (c->need[0] || c->need[1])) {
        const amp_dtype dt = vdtype(c, a);
        if (!amp_dtype_is_float(dt))
            return amp_seterr(c->ctx, AMP_ERR_UNSUPPORTED, "node '%s': Gemm of %s has no gradient", f->name,
                              amp_dtype_name(dt));
        zero = amp_grad_const_scalar(c, dt, 0.0);
        if (zero < 0) return AMP_ERR_NO_MEMORY;
    }
    const int nin = zero >= 0 ? 3 : 2;
    if (c->need[0]) {
        /* dA = alpha dY op(B)^T, transposed back when A was */
        int ins[3] = {ta ? b : dy, ta ? dy : b, zero};
        if ((s = amp_grad_node(c, "Gemm", "", nin, ins, 1, &c->dx[0], &n)) ||
            (s = amp_grad_attr_int(c, n, "transA", ta ? tb : 0)) ||
            (s = amp_grad_attr_int(c, n, "transB", ta ? 1 : !tb)) || (s = amp_grad_attr_float(c, n, "alpha", alpha)) ||
            (s = amp_grad_attr_float(c, n, "beta", 0.0f)))
            return s;
    }
    if (c->need[1]) {
        /* dB = alpha op(A)^T dY, transposed back when B was */
        int ins[3] = {tb ? dy : a, tb ? a : dy, zero};
        if ((s = amp_grad_node(c, "Gemm", "", nin, ins, 1, &c->dx[1], &n)) ||
            (s = amp_grad_attr_int(c, n, "transA", tb ? 1 : !ta)) ||
            (s = amp_grad_attr_int(c, n, "transB", tb ? ta : 0)) || (s = amp_grad_attr_float(c, n, "alpha", alpha)) ||
            (s = amp_grad_attr_float(c, n, "beta", 0.0f)))
            return s;
    }
    if (cc >= 0 && c->need[2]) {
        int ins[2] = {dy, cc};
        if ((s = amp_grad_node(c, "GemmCGrad", AMP_TRAIN_DOMAIN, 2, ins, 1, &c->dx[2], &n)) ||
            (s = amp_grad_attr_float(c, n, "beta", beta)))
            return s;
    }
    return AMP_OK;
}

static amp_status grad_matmul(amp_grad_ctx *c) {
    int ins[3] = {c->dy[0], amp_grad_in(c, 0), amp_grad_in(c, 1)};
    for (int i = 0; i < 2; i++) {
        if (!c->need[i]) continue;
        amp_node *n;
        amp_status s = amp_grad_node(c, "MatMulGrad", AMP_TRAIN_DOMAIN, 3, ins, 1, &c->dx[i], &n);
        if (!s) s = amp_grad_attr_int(c, n, "wrt", i);
        if (s) return s;
    }
    return AMP_OK;
}

amp_status amp_grad_matmul(amp_grad_ctx *c) {
    switch (amp_grad_fwd(c)->op) {
    case AMP_OP_GEMM: return grad_gemm(c);
    case AMP_OP_MAT_MUL: return grad_matmul(c);
    default: return AMP_ERR_NOT_FOUND;
    }
}

/* ---- shape inference of the training ops ---------------------------------------------------- */

/* GemmCGrad(dY [M,N], C) -> dC: beta times dY summed over the dims C broadcasts along. */
amp_status amp_infer_gemm_c_grad(amp_infer *c) {
    amp_status s;
    if ((s = amp_infer_need_inputs(c, 2, 2)) || (s = need_outputs(c, 1, 1)) || (s = need_float(c, 0)) ||
        (s = need_float(c, 1)))
        return s;
    const amp_tinfo *dy = c->in[0], *cc = c->in[1];
    if (dy->rank != 2) return amp_infer_fail(c, AMP_ERR_SHAPE, "dY must be 2-D, has rank %d", dy->rank);
    if (cc->rank > 2) return amp_infer_fail(c, AMP_ERR_SHAPE, "C must have rank <= 2, has %d", cc->rank);
    for (int i = 0; i < cc->rank; i++) {
        int64_t d = cc->dims[i], t = dy->dims[2 - cc->rank + i];
        if (d != t && d != 1)
            return amp_infer_fail(c, AMP_ERR_SHAPE, "C dim %d is %lld, does not broadcast to %lld", i, (long long)d,
                                  (long long)t);
    }
    set_like(c, 0, cc);
    return AMP_OK;
}

/* MatMulGrad(dY, A, B), wrt=0: dA, wrt=1: dB, each summed over the batch dims its operand was
 * broadcast along. */
amp_status amp_infer_matmul_grad(amp_infer *c) {
    amp_status s;
    if ((s = amp_infer_need_inputs(c, 3, 3)) || (s = need_outputs(c, 1, 1))) return s;
    const amp_tinfo *dy = c->in[0], *a = c->in[1], *b = c->in[2];
    if ((s = need_float(c, 1))) return s;
    if (dy->dtype != a->dtype || b->dtype != a->dtype)
        return amp_infer_fail(c, AMP_ERR_INVALID_GRAPH, "dY, A and B must have one dtype");
    const int64_t wrt = amp_attr_int(c->n, "wrt", -1);
    if (wrt != 0 && wrt != 1)
        return amp_infer_fail(c, AMP_ERR_INVALID_GRAPH, "wrt must be 0 (A) or 1 (B), is %lld", (long long)wrt);
    if (a->rank < 1 || b->rank < 1) return amp_infer_fail(c, AMP_ERR_SHAPE, "MatMul operands must have rank >= 1");
    const int64_t M = a->rank == 1 ? 1 : a->dims[a->rank - 2], K = a->dims[a->rank - 1];
    const int64_t K2 = b->rank == 1 ? b->dims[0] : b->dims[b->rank - 2], N = b->rank == 1 ? 1 : b->dims[b->rank - 1];
    if (K != K2)
        return amp_infer_fail(c, AMP_ERR_SHAPE, "inner dims differ: %lld and %lld", (long long)K, (long long)K2);
    int ra = a->rank > 2 ? a->rank - 2 : 0, rb = b->rank > 2 ? b->rank - 2 : 0, rbat;
    int64_t want[AMP_MAX_RANK + 2];
    if ((s = amp_broadcast_shape(c, ra, a->dims, rb, b->dims, &rbat, want))) return s;
    int rw = rbat;
    if (a->rank > 1) want[rw++] = M;
    if (b->rank > 1) want[rw++] = N;
    bool ok = dy->rank == rw;
    for (int d = 0; ok && d < rw; d++) ok = dy->dims[d] == want[d];
    if (!ok) return amp_infer_fail(c, AMP_ERR_SHAPE, "dY does not have the shape of A x B");
    const amp_tinfo *o = wrt ? b : a;
    set_like(c, 0, o);
    return AMP_OK;
}

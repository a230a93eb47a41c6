/* Gradients of the conv family: the builder (Conv, ConvTranspose, MaxPool, AveragePool,
 * GlobalAveragePool, GlobalMaxPool) and the shape inference of its training-domain ops
 * ConvGrad, ConvTransposeGrad, MaxPoolGrad and AveragePoolGrad (see backends/conv_grad.h for
 * what each computes).
 *
 * The convolution gradients are one fused op each rather than a composition: im2col of the
 * input serves both dW and dX, and only the outputs that autodiff asks for are computed
 * (the others are omitted, -1). Pool gradients recompute the windows from the forward
 * attributes; AveragePoolGrad takes X's shape rather than X, so X need not stay alive until
 * the backward pass. */
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "ir/grad.h"
#include "ir/ir.h"
#include "ir/ops/conv.h"

static int mul_ok(int64_t a, int64_t b, int64_t *r) { return !__builtin_mul_overflow(a, b, r); }

static int prod_ok(int n, const int64_t *v, int64_t *r) {
    int64_t p = 1;
    for (int i = 0; i < n; i++)
        if (!mul_ok(p, v[i], &p)) return 0;
    *r = p;
    return 1;
}

static amp_status pfail(char *msg, size_t cap, amp_status s, const char *what) {
    snprintf(msg, cap, "%s", what);
    return s;
}

amp_status amp_conv_grad_dims_init(const amp_node *n, int xrank, const int64_t *xdims, const int64_t *wdims,
                                   amp_conv_grad_dims *d, char *msg, size_t cap) {
    amp_status s;
    amp_conv_geom g;
    int transpose = n->op == AMP_OP_CONV_TRANSPOSE_GRAD;
    memset(d, 0, sizeof *d);
    if ((s = amp_conv_geom_init(n, transpose ? AMP_GEOM_CONV_T : AMP_GEOM_CONV, xrank, xdims, wdims, &g, msg, cap)))
        return s;
    int64_t G = amp_attr_int(n, "group", 1);
    if (G < 1 || xdims[1] % G) return pfail(msg, cap, AMP_ERR_INVALID_GRAPH, "group does not divide the channels");
    d->transpose = transpose;
    d->nsp = g.nsp;
    d->N = xdims[0];
    d->G = G;
    if (transpose) {
        d->ca = wdims[1];
        d->cb = xdims[1] / G;
    } else {
        if (wdims[0] % G) return pfail(msg, cap, AMP_ERR_INVALID_GRAPH, "group does not divide the filters");
        d->ca = xdims[1] / G;
        d->cb = wdims[0] / G;
    }
    d->direct = 1;
    for (int i = 0; i < g.nsp; i++) {
        d->big[i] = transpose ? g.out[i] : g.in[i];
        d->small[i] = transpose ? g.in[i] : g.out[i];
        d->k[i] = g.k[i];
        d->s[i] = g.s[i];
        d->d[i] = g.d[i];
        d->pb[i] = g.pb[i];
        if (g.k[i] != 1 || g.s[i] != 1 || g.pb[i] != 0 || d->big[i] != d->small[i]) d->direct = 0;
    }
    if (!prod_ok(g.nsp, g.k, &d->ksz) || !prod_ok(g.nsp, d->big, &d->bigsz) || !prod_ok(g.nsp, d->small, &d->P) ||
        !mul_ok(d->ca, d->ksz, &d->R) || !prod_ok(xrank, wdims, &d->wnumel))
        return pfail(msg, cap, AMP_ERR_OVERFLOW, "sizes overflow");
    int64_t BIG = (int64_t)INT_MAX;
    if (d->R >= BIG || d->P >= BIG || d->cb >= BIG || d->bigsz >= BIG)
        return pfail(msg, cap, AMP_ERR_LIMIT, "matrix dims exceed the BLAS int range");

    return AMP_OK;
}

amp_status amp_pool_grad_geom(const amp_node *n, int rank, const int64_t *xdims, amp_conv_geom *g, char *msg,
                              size_t cap) {
    if (amp_attr_int(n, "global", 0)) {
        memset(g, 0, sizeof *g);
        if (rank < 3) return pfail(msg, cap, AMP_ERR_SHAPE, "input must have rank >= 3");
        g->nsp = rank - 2;
        for (int i = 0; i < g->nsp; i++) {
            g->in[i] = g->k[i] = xdims[i + 2];
            g->s[i] = g->d[i] = g->out[i] = 1;
        }
        return AMP_OK;
    }
    amp_status s = amp_conv_geom_init(n, AMP_GEOM_POOL, rank, xdims, NULL, g, msg, cap);
    if (s) return s;
    for (int i = 0; i < g->nsp; i++)
        if (g->pb[i] >= (g->k[i] - 1) * g->d[i] + 1 || g->pe[i] >= (g->k[i] - 1) * g->d[i] + 1)
            return pfail(msg, cap, AMP_ERR_INVALID_GRAPH, "pads are not smaller than the kernel");
    return AMP_OK;
}

/* ---- shape inference ----------------------------------------------------------------------- */

static amp_status same_dtype(amp_infer *c, int i, int ref) {
    if (c->in[i]->dtype != c->in[ref]->dtype)
        return amp_infer_fail(c, AMP_ERR_SHAPE, "input %d has dtype %s, input %d has %s", i,
                              amp_dtype_name(c->in[i]->dtype), ref, amp_dtype_name(c->in[ref]->dtype));
    return AMP_OK;
}

static amp_status check_dy(amp_infer *c, const amp_tinfo *dy, int rank, const int64_t *dims) {
    bool ok = dy->rank == rank;
    for (int i = 0; ok && i < rank; i++) ok = dy->dims[i] == dims[i];
    if (!ok) return amp_infer_fail(c, AMP_ERR_SHAPE, "dY does not have the forward output's shape");
    return AMP_OK;
}

static void copy_info(amp_tinfo *o, amp_dtype dt, int rank, const int64_t *dims) {
    o->dtype = dt;
    o->rank = rank;
    memcpy(o->dims, dims, sizeof(int64_t) * (size_t)rank);
    o->value = NULL;
}

/* ConvGrad and ConvTransposeGrad: (dY, X, W) -> (dX, dW, dB), each output optional. */
amp_status amp_infer_conv_grad(amp_infer *c) {
    amp_status s;
    char msg[256];
    int transpose = c->n->op == AMP_OP_CONV_TRANSPOSE_GRAD;
    if ((s = amp_infer_need_inputs(c, 3, 3))) return s;
    if (c->nout < 1 || c->nout > 3) return amp_infer_fail(c, AMP_ERR_INVALID_GRAPH, "expects 1 to 3 outputs");
    const amp_tinfo *dy = c->in[0], *x = c->in[1], *w = c->in[2];
    if ((s = amp_infer_dtype_in(c, x->dtype, amp_dt_float)) || (s = same_dtype(c, 0, 1)) || (s = same_dtype(c, 2, 1)))
        return s;
    /* The forward inference validates X, W and the attributes exactly as the forward op did. */
    amp_tinfo y;
    memset(&y, 0, sizeof y);
    const amp_tinfo *fin[2] = {x, w};
    amp_tinfo *fout[1] = {&y};
    amp_infer f = {.ctx = c->ctx, .g = c->g, .n = c->n, .opset = c->opset, .nin = 2, .nout = 1, .in = fin, .out = fout};
    if ((s = transpose ? amp_infer_conv_transpose(&f) : amp_infer_conv(&f))) return s;
    if ((s = check_dy(c, dy, y.rank, y.dims))) return s;
    amp_conv_grad_dims d;
    if ((s = amp_conv_grad_dims_init(c->n, x->rank, x->dims, w->dims, &d, msg, sizeof msg)))
        return amp_infer_fail(c, s, "%s", msg);
    copy_info(c->out[0], x->dtype, x->rank, x->dims);
    if (c->nout > 1) copy_info(c->out[1], w->dtype, w->rank, w->dims);
    if (c->nout > 2) copy_info(c->out[2], x->dtype, 1, &y.dims[1]);
    return AMP_OK;
}

static amp_status pool_common(amp_infer *c, const amp_tinfo *dy, int rank, const int64_t *xdims) {
    amp_status s;
    char msg[256];
    amp_conv_geom g;
    if (c->nout != 1) return amp_infer_fail(c, AMP_ERR_INVALID_GRAPH, "expects one output");
    if ((s = amp_pool_grad_geom(c->n, rank, xdims, &g, msg, sizeof msg))) return amp_infer_fail(c, s, "%s", msg);
    int64_t ydims[AMP_MAX_RANK] = {xdims[0], xdims[1]}, planes, insz = 1, outsz = 1;
    for (int i = 0; i < g.nsp; i++) {
        ydims[i + 2] = g.out[i];
        if (__builtin_mul_overflow(insz, g.in[i], &insz) || __builtin_mul_overflow(outsz, g.out[i], &outsz))
            return amp_infer_fail(c, AMP_ERR_OVERFLOW, "input size overflows");
    }
    /* the 2-D kernels keep offsets inside a plane in 32 bits */
    if (insz > INT32_MAX)
        return amp_infer_fail(c, AMP_ERR_LIMIT, "a plane of %lld elements is too large", (long long)insz);
    if ((s = check_dy(c, dy, rank, ydims))) return s;
    if (__builtin_mul_overflow(xdims[0], xdims[1], &planes))
        return amp_infer_fail(c, AMP_ERR_OVERFLOW, "input size overflows");
    copy_info(c->out[0], dy->dtype, rank, xdims);
    return AMP_OK;
}

/* MaxPoolGrad: (dY, X) -> dX. */
amp_status amp_infer_max_pool_grad(amp_infer *c) {
    amp_status s;
    if ((s = amp_infer_need_inputs(c, 2, 2))) return s;
    const amp_tinfo *dy = c->in[0], *x = c->in[1];
    if ((s = amp_infer_dtype_in(c, x->dtype, amp_dt_float)) || (s = same_dtype(c, 0, 1))) return s;
    return pool_common(c, dy, x->rank, x->dims);
}

/* AveragePoolGrad: (dY, shape of X) -> dX; the shape must be known when planning. */
amp_status amp_infer_avg_pool_grad(amp_infer *c) {
    amp_status s;
    if ((s = amp_infer_need_inputs(c, 2, 2))) return s;
    const amp_tinfo *dy = c->in[0];
    if ((s = amp_infer_dtype_in(c, dy->dtype, amp_dt_float))) return s;
    int64_t xdims[AMP_MAX_RANK];
    int rank = 0;
    if ((s = amp_infer_const_ints(c, 1, xdims, AMP_MAX_RANK, &rank))) return s;
    if (rank != dy->rank)
        return amp_infer_fail(c, AMP_ERR_SHAPE, "the shape has %d dims, dY has rank %d", rank, dy->rank);
    for (int i = 0; i < rank; i++)
        if (xdims[i] < 0) return amp_infer_fail(c, AMP_ERR_SHAPE, "the shape has a negative dim");
    return pool_common(c, dy, rank, xdims);
}

/* ---- the builder ---------------------------------------------------------------------------- */

static amp_status grad_conv(amp_grad_ctx *c, const char *op) {
    bool want[3];
    for (int i = 0; i < 3; i++) want[i] = i < c->nin && c->need[i] && amp_grad_in(c, i) >= 0;
    if (!want[0] && !want[1] && !want[2]) return AMP_OK;
    int ins[3] = {c->dy[0], amp_grad_in(c, 0), amp_grad_in(c, 1)}, outs[3];
    if (ins[0] < 0) return AMP_OK;
    amp_node *n = NULL;
    amp_status s = amp_grad_sparse_node(c, op, 3, ins, 3, want, outs, &n);
    if (s || (s = amp_grad_copy_attrs(c, n))) return s;
    for (int i = 0; i < 3; i++)
        if (want[i]) c->dx[i] = outs[i];
    return AMP_OK;
}

static amp_status grad_pool(amp_grad_ctx *c, int is_max, int global) {
    int dy = c->dy[0], x = amp_grad_in(c, 0); /* MaxPool's Indices carry no gradient */
    if (!c->need[0] || dy < 0 || x < 0) return AMP_OK;
    int ins[2] = {dy, x}, out;
    amp_status s;
    if (!is_max && (s = amp_grad_node(c, "Shape", "", 1, &x, 1, &ins[1], NULL))) return s;
    amp_node *n = NULL;
    if ((s = amp_grad_node(c, is_max ? "MaxPoolGrad" : "AveragePoolGrad", AMP_TRAIN_DOMAIN, 2, ins, 1, &out, &n)))
        return s;
    /* "global" is set either way: a stray attribute of that name on the forward node must not
     * change the gradient's windows */
    if ((s = amp_grad_copy_attrs(c, n)) || (s = amp_grad_attr_int(c, n, "global", global))) return s;
    c->dx[0] = out;
    return AMP_OK;
}

amp_status amp_grad_conv(amp_grad_ctx *c) {
    switch (amp_grad_fwd(c)->op) {
    case AMP_OP_CONV: return grad_conv(c, "ConvGrad");
    case AMP_OP_CONV_TRANSPOSE: return grad_conv(c, "ConvTransposeGrad");
    case AMP_OP_MAX_POOL: return grad_pool(c, 1, 0);
    case AMP_OP_GLOBAL_MAX_POOL: return grad_pool(c, 1, 1);
    case AMP_OP_AVERAGE_POOL: return grad_pool(c, 0, 0);
    case AMP_OP_GLOBAL_AVERAGE_POOL: return grad_pool(c, 0, 1);
    default: return AMP_ERR_NOT_FOUND;
    }
}

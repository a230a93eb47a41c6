/* Shape inference for convolution and pooling: Conv, ConvTranspose, MaxPool, AveragePool,
 * GlobalAveragePool, GlobalMaxPool (Gemm and MatMul: ir/ops/matmul.c).
 *
 * The window geometry (amp_conv_geom_init, ir/ops/conv.h) is shared with the kernels
 * (backends/cpu/conv.c, conv_pool.c): inference and kernel must agree on it to the element. The
 * kernels' scratch is sized by the backend (backends/cpu/workspace.def). */
#include <stdio.h>
#include <string.h>

#include "ir/ir.h"

/* Attribute values beyond this are rejected, so that every size computed from them (products
 * of a few of them with dims that are themselves bounded) stays far from int64 overflow. */
#define GEOM_MAX ((int64_t)1 << 31)

#include "ir/ops/conv.h"

static amp_status gfail(char *msg, size_t cap, amp_status s, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 4, 5)))
#endif
    ;
static amp_status gfail(char *msg, size_t cap, amp_status s, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, cap, fmt, ap);
    va_end(ap);
    return s;
}

/* Reads an INTS attribute of exactly want values into v (def when absent). */
static amp_status read_ints(const amp_node *n, const char *name, int want, int64_t def, int64_t lo, int64_t *v,
                            int *present, char *msg, size_t cap) {
    const int64_t *a;
    int cnt = amp_attr_ints(n, name, &a);
    if (present) *present = cnt >= 0;
    if (cnt < 0) {
        for (int i = 0; i < want; i++)
            v[i] = def;
        return AMP_OK;
    }
    if (cnt != want)
        return gfail(msg, cap, AMP_ERR_INVALID_GRAPH, "attribute %s has %d values, expected %d", name, cnt, want);
    for (int i = 0; i < want; i++) {
        if (a[i] < lo || a[i] > GEOM_MAX)
            return gfail(msg, cap, AMP_ERR_INVALID_GRAPH, "attribute %s[%d] = %lld is out of range", name, i,
                         (long long)a[i]);
        v[i] = a[i];
    }
    return AMP_OK;
}

static int64_t floor_div(int64_t a, int64_t b) { return a >= 0 ? a / b : -((-a + b - 1) / b); }
static int64_t ceil_div(int64_t a, int64_t b) { return -floor_div(-a, b); }

/* Window geometry of Conv (kind CONV, wdims = weight dims), pooling (kind POOL, wdims NULL) and
 * ConvTranspose (kind CONV_T). xdims are the input's dims (rank >= 3). On failure writes a
 * message into msg and returns the status. */
amp_status amp_conv_geom_init(const amp_node *n, int kind, int rank, const int64_t *xdims, const int64_t *wdims,
                              amp_conv_geom *g, char *msg, size_t cap) {
    amp_status s;
    int nsp = rank - 2;
    memset(g, 0, sizeof *g);
    if (nsp < 1) return gfail(msg, cap, AMP_ERR_SHAPE, "input must have rank >= 3, has %d", rank);
    g->nsp = nsp;
    for (int i = 0; i < nsp; i++) {
        g->in[i] = xdims[i + 2];
        if (g->in[i] > GEOM_MAX) return gfail(msg, cap, AMP_ERR_LIMIT, "spatial dim %d is too large", i);
    }

    int has_k = 0;
    int64_t ks[AMP_MAX_RANK];
    if ((s = read_ints(n, "kernel_shape", nsp, 1, 1, ks, &has_k, msg, cap))) return s;
    if (kind == AMP_GEOM_POOL && !has_k)
        return gfail(msg, cap, AMP_ERR_INVALID_GRAPH, "attribute kernel_shape is required");
    for (int i = 0; i < nsp; i++) {
        if (wdims) {
            if (wdims[i + 2] < 1 || wdims[i + 2] > GEOM_MAX)
                return gfail(msg, cap, AMP_ERR_SHAPE, "weight spatial dim %d is %lld", i, (long long)wdims[i + 2]);
            if (has_k && ks[i] != wdims[i + 2])
                return gfail(msg, cap, AMP_ERR_SHAPE, "kernel_shape[%d] = %lld disagrees with the weight's %lld", i,
                             (long long)ks[i], (long long)wdims[i + 2]);
            g->k[i] = wdims[i + 2];
        } else {
            g->k[i] = ks[i];
        }
    }
    if ((s = read_ints(n, "strides", nsp, 1, 1, g->s, NULL, msg, cap))) return s;
    if ((s = read_ints(n, "dilations", nsp, 1, 1, g->d, NULL, msg, cap))) return s;
    int64_t pads[2 * AMP_MAX_RANK];
    if ((s = read_ints(n, "pads", 2 * nsp, 0, 0, pads, NULL, msg, cap))) return s;
    for (int i = 0; i < nsp; i++) {
        g->pb[i] = pads[i];
        g->pe[i] = pads[i + nsp];
    }
    const char *ap = amp_attr_str(n, "auto_pad", "NOTSET");
    int mode;
    if (strcmp(ap, "NOTSET") == 0 || ap[0] == 0)
        mode = 0;
    else if (strcmp(ap, "SAME_UPPER") == 0)
        mode = 1;
    else if (strcmp(ap, "SAME_LOWER") == 0)
        mode = 2;
    else if (strcmp(ap, "VALID") == 0)
        mode = 3;
    else
        return gfail(msg, cap, AMP_ERR_INVALID_GRAPH, "unknown auto_pad '%s'", ap);

    if (kind == AMP_GEOM_CONV_T) {
        int64_t opad[AMP_MAX_RANK], oshape[AMP_MAX_RANK + 2];
        if ((s = read_ints(n, "output_padding", nsp, 0, 0, opad, NULL, msg, cap))) return s;
        const int64_t *os;
        int nos = amp_attr_ints(n, "output_shape", &os);
        if (nos >= 0) {
            /* Either the spatial dims alone or the whole output shape. */
            if (nos != nsp && nos != nsp + 2)
                return gfail(msg, cap, AMP_ERR_INVALID_GRAPH, "output_shape has %d values, expected %d", nos, nsp);
            for (int i = 0; i < nsp; i++) {
                oshape[i] = os[i + nos - nsp];
                if (oshape[i] < 0 || oshape[i] > GEOM_MAX)
                    return gfail(msg, cap, AMP_ERR_INVALID_GRAPH, "output_shape[%d] is out of range", i);
            }
        }
        for (int i = 0; i < nsp; i++) {
            int64_t dk = (g->k[i] - 1) * g->d[i] + 1;
            int64_t full = g->s[i] * (g->in[i] - 1) + opad[i] + dk;
            if (g->in[i] == 0) full = 0;
            if (nos >= 0 || mode == 1 || mode == 2) {
                int64_t o = nos >= 0 ? oshape[i] : g->in[i] * g->s[i];
                int64_t total = full - o;
                /* Python's floor division, as the ONNX reference does: a requested output larger
                 * than the natural one grows at the end. */
                if (mode == 1) {
                    g->pb[i] = floor_div(total, 2);
                    g->pe[i] = total - g->pb[i];
                } else {
                    g->pe[i] = floor_div(total, 2);
                    g->pb[i] = total - g->pe[i];
                }
                g->out[i] = o;
            } else {
                if (mode == 3) g->pb[i] = g->pe[i] = 0;
                g->out[i] = full - g->pb[i] - g->pe[i];
                if (g->out[i] < 0)
                    return gfail(msg, cap, AMP_ERR_SHAPE, "pads exceed the output along spatial dim %d", i);
            }
        }
        return AMP_OK;
    }

    int ceil_mode = kind == AMP_GEOM_POOL && amp_attr_int(n, "ceil_mode", 0) != 0;
    for (int i = 0; i < nsp; i++) {
        int64_t dk = (g->k[i] - 1) * g->d[i] + 1;
        if (mode == 1 || mode == 2) {
            g->out[i] = ceil_div(g->in[i], g->s[i]);
            int64_t total = (g->out[i] - 1) * g->s[i] + dk - g->in[i];
            if (total < 0) total = 0;
            if (mode == 1) {
                g->pb[i] = total / 2;
                g->pe[i] = total - g->pb[i];
            } else {
                g->pe[i] = total / 2;
                g->pb[i] = total - g->pe[i];
            }
            continue;
        }
        if (mode == 3) g->pb[i] = g->pe[i] = 0;
        int64_t span = g->in[i] + g->pb[i] + g->pe[i] - dk;
        if (span < 0)
            return gfail(msg, cap, AMP_ERR_SHAPE,
                         "kernel extent %lld exceeds the padded input %lld along spatial dim %d", (long long)dk,
                         (long long)(g->in[i] + g->pb[i] + g->pe[i]), i);
        if (ceil_mode) {
            g->out[i] = ceil_div(span, g->s[i]) + 1;
            /* a last window starting in the end padding would see no input */
            if ((g->out[i] - 1) * g->s[i] >= g->in[i] + g->pb[i]) g->out[i]--;
        } else {
            g->out[i] = span / g->s[i] + 1;
        }
    }
    return AMP_OK;
}

static const amp_dtype dt_pool_max[] = {AMP_F32, AMP_F16, AMP_BF16, AMP_F64, AMP_I8, AMP_U8, AMP_UNDEFINED};

/* Conv and ConvTranspose after their channel checks: the bias, the geometry and Y with M
 * channels. */
static amp_status conv_output(amp_infer *c, int kind, const amp_tinfo *x, const amp_tinfo *w, const amp_tinfo *b,
                              int64_t M) {
    char msg[256];
    amp_status s;
    if (b && (b->rank != 1 || b->dims[0] != M))
        return amp_infer_fail(c, AMP_ERR_SHAPE, "B must have shape [%lld]", (long long)M);
    amp_conv_geom g;
    if ((s = amp_conv_geom_init(c->n, kind, x->rank, x->dims, w->dims, &g, msg, sizeof msg)))
        return amp_infer_fail(c, s, "%s", msg);
    amp_tinfo *y = c->out[0];
    y->dtype = x->dtype;
    y->rank = x->rank;
    y->dims[0] = x->dims[0];
    y->dims[1] = M;
    for (int i = 0; i < g.nsp; i++)
        y->dims[i + 2] = g.out[i];
    return AMP_OK;
}

amp_status amp_infer_conv(amp_infer *c) {
    amp_status s;
    if ((s = amp_infer_need_inputs(c, 2, 3))) return s;
    const amp_tinfo *x = c->in[0], *w = c->in[1], *b = c->nin > 2 ? c->in[2] : NULL;
    if ((s = amp_infer_dtype_in(c, x->dtype, amp_dt_float)) || (s = amp_infer_same_dtype(c, 1)) || (b && (s = amp_infer_same_dtype(c, 2))))
        return s;
    if (x->rank < 3) return amp_infer_fail(c, AMP_ERR_SHAPE, "X must have rank >= 3, has %d", x->rank);
    if (w->rank != x->rank) return amp_infer_fail(c, AMP_ERR_SHAPE, "W has rank %d, X has rank %d", w->rank, x->rank);
    int64_t group = amp_attr_int(c->n, "group", 1);
    if (group < 1 || group > GEOM_MAX)
        return amp_infer_fail(c, AMP_ERR_INVALID_GRAPH, "group %lld is invalid", (long long)group);
    int64_t C = x->dims[1], M = w->dims[0];
    if (w->dims[1] * group != C)
        return amp_infer_fail(c, AMP_ERR_SHAPE, "X has %lld channels, W expects %lld x group %lld", (long long)C,
                              (long long)w->dims[1], (long long)group);
    if (M % group)
        return amp_infer_fail(c, AMP_ERR_SHAPE, "W has %lld filters, not a multiple of group %lld", (long long)M,
                              (long long)group);
    return conv_output(c, AMP_GEOM_CONV, x, w, b, M);
}

amp_status amp_infer_conv_transpose(amp_infer *c) {
    amp_status s;
    if ((s = amp_infer_need_inputs(c, 2, 3))) return s;
    const amp_tinfo *x = c->in[0], *w = c->in[1], *b = c->nin > 2 ? c->in[2] : NULL;
    if ((s = amp_infer_dtype_in(c, x->dtype, amp_dt_float)) || (s = amp_infer_same_dtype(c, 1)) || (b && (s = amp_infer_same_dtype(c, 2))))
        return s;
    if (x->rank < 3) return amp_infer_fail(c, AMP_ERR_SHAPE, "X must have rank >= 3, has %d", x->rank);
    if (w->rank != x->rank) return amp_infer_fail(c, AMP_ERR_SHAPE, "W has rank %d, X has rank %d", w->rank, x->rank);
    int64_t group = amp_attr_int(c->n, "group", 1);
    if (group < 1 || group > GEOM_MAX)
        return amp_infer_fail(c, AMP_ERR_INVALID_GRAPH, "group %lld is invalid", (long long)group);
    int64_t C = x->dims[1];
    if (w->dims[0] != C)
        return amp_infer_fail(c, AMP_ERR_SHAPE, "X has %lld channels, W has %lld", (long long)C, (long long)w->dims[0]);
    if (C % group)
        return amp_infer_fail(c, AMP_ERR_SHAPE, "%lld channels are not a multiple of group %lld", (long long)C,
                              (long long)group);
    int64_t M;
    if (__builtin_mul_overflow(w->dims[1], group, &M))
        return amp_infer_fail(c, AMP_ERR_OVERFLOW, "output channels overflow");
    return conv_output(c, AMP_GEOM_CONV_T, x, w, b, M);
}

amp_status amp_infer_pool(amp_infer *c) {
    amp_status s;
    char msg[256];
    int is_max = c->n->op == AMP_OP_MAX_POOL;
    if ((s = amp_infer_need_inputs(c, 1, 1))) return s;
    const amp_tinfo *x = c->in[0];
    /* int8 and uint8 MaxPool came with opset 12 */
    if ((s = amp_infer_dtype_in(c, x->dtype, is_max && c->opset >= 12 ? dt_pool_max : amp_dt_float))) return s;
    if (x->rank < 3) return amp_infer_fail(c, AMP_ERR_SHAPE, "X must have rank >= 3, has %d", x->rank);
    if (!is_max && c->nout > 1) return amp_infer_fail(c, AMP_ERR_INVALID_GRAPH, "AveragePool has one output");
    if (c->nout > 2) return amp_infer_fail(c, AMP_ERR_INVALID_GRAPH, "MaxPool has at most two outputs");
    int64_t so = amp_attr_int(c->n, "storage_order", 0);
    if (so != 0 && so != 1) return amp_infer_fail(c, AMP_ERR_INVALID_GRAPH, "storage_order must be 0 or 1");
    amp_conv_geom g;
    if ((s = amp_conv_geom_init(c->n, AMP_GEOM_POOL, x->rank, x->dims, NULL, &g, msg, sizeof msg)))
        return amp_infer_fail(c, s, "%s", msg);
    for (int i = 0; i < g.nsp; i++)
        if (g.pb[i] >= (g.k[i] - 1) * g.d[i] + 1 || g.pe[i] >= (g.k[i] - 1) * g.d[i] + 1)
            return amp_infer_fail(c, AMP_ERR_INVALID_GRAPH, "pads along spatial dim %d are not smaller than the kernel",
                                  i);
    for (int o = 0; o < c->nout; o++) {
        amp_tinfo *y = c->out[o];
        y->dtype = o == 0 ? x->dtype : AMP_I64;
        y->rank = x->rank;
        y->dims[0] = x->dims[0];
        y->dims[1] = x->dims[1];
        for (int i = 0; i < g.nsp; i++)
            y->dims[i + 2] = g.out[i];
    }
    return AMP_OK;
}

amp_status amp_infer_global_pool(amp_infer *c) {
    amp_status s;
    if ((s = amp_infer_need_inputs(c, 1, 1))) return s;
    const amp_tinfo *x = c->in[0];
    if ((s = amp_infer_dtype_in(c, x->dtype, amp_dt_float))) return s;
    if (x->rank < 3) return amp_infer_fail(c, AMP_ERR_SHAPE, "X must have rank >= 3, has %d", x->rank);
    amp_tinfo *y = c->out[0];
    y->dtype = x->dtype;
    y->rank = x->rank;
    y->dims[0] = x->dims[0];
    y->dims[1] = x->dims[1];
    for (int i = 2; i < x->rank; i++) {
        if (x->dims[i] == 0 && c->n->op == AMP_OP_GLOBAL_MAX_POOL)
            return amp_infer_fail(c, AMP_ERR_SHAPE, "GlobalMaxPool of an empty spatial dim");
        y->dims[i] = 1;
    }
    return AMP_OK;
}

/* Shape inference of the quantization family: QuantizeLinear, DequantizeLinear (opsets 10, 13, 19
 * and 21: per-tensor, per-axis and blocked scales), DynamicQuantizeLinear, MatMulInteger,
 * ConvInteger, QLinearMatMul and QLinearConv. Kernels in backends/cpu/quant.c.
 *
 * amp_quant_layout and amp_quant_mm_param are shared with the kernels (backends/cpu/quant.c
 * declares them itself), so that inference and kernel read scales and zero points alike. */
#include <stdio.h>
#include <string.h>

#include "ir/ops/conv.h"
#include "ir/ops/quant.h"

/* The integer types a quantized tensor may have here (ONNX also allows float8 and 4-bit types,
 * which amprt does not hold, so the importer or these lists reject them). */
static const amp_dtype q8[] = {AMP_U8, AMP_I8, AMP_UNDEFINED};
static const amp_dtype q16[] = {AMP_U8, AMP_I8, AMP_U16, AMP_I16, AMP_UNDEFINED};
static const amp_dtype dq10[] = {AMP_U8, AMP_I8, AMP_I32, AMP_UNDEFINED};
static const amp_dtype dq21[] = {AMP_U8, AMP_I8, AMP_U16, AMP_I16, AMP_I32, AMP_UNDEFINED};
static const amp_dtype f32_only[] = {AMP_F32, AMP_UNDEFINED};
static const amp_dtype scale19[] = {AMP_F32, AMP_F16, AMP_BF16, AMP_UNDEFINED};
static const amp_dtype qx10[] = {AMP_F32, AMP_I32, AMP_UNDEFINED};
static const amp_dtype qx19[] = {AMP_F32, AMP_F16, AMP_BF16, AMP_I32, AMP_UNDEFINED};

/* Scale and zero point must have one shape; a scalar and a one-element vector are taken as the
 * same (exporters write both). */
static amp_status pair_shape(amp_infer *c, int is, int iz) {
    const amp_tinfo *s = c->in[is], *z = iz < c->nin ? c->in[iz] : NULL;
    if (!z) return AMP_OK;
    if (amp_tinfo_same_shape(s, z) || (amp_tinfo_numel(s) == 1 && amp_tinfo_numel(z) == 1)) return AMP_OK;
    return amp_infer_fail(c, AMP_ERR_SHAPE, "input %d (zero point) must have the shape of input %d (scale)", iz, is);
}

static amp_status same_dtype(amp_infer *c, int i, int j) {
    if (i < c->nin && j < c->nin && c->in[i] && c->in[j] && c->in[i]->dtype != c->in[j]->dtype)
        return amp_infer_fail(c, AMP_ERR_SHAPE, "input %d has dtype %s, input %d has %s", j,
                              amp_dtype_name(c->in[j]->dtype), i, amp_dtype_name(c->in[i]->dtype));
    return AMP_OK;
}

static amp_status numel_one(amp_infer *c, int i, const char *what) {
    if (i < c->nin && c->in[i] && amp_tinfo_numel(c->in[i]) != 1)
        return amp_infer_fail(c, AMP_ERR_SHAPE, "%s (input %d) must be a scalar", what, i);
    return AMP_OK;
}

/* ---- QuantizeLinear, DequantizeLinear -------------------------------------------------------- */

/* How x's elements find their scale. x is read as [outer, len, inner]; element (o, a, i) uses
 * scale element o*q[4] + (a / q[3])*q[5] + i*q[6]; q[0..2] are outer, len, inner.
 *   per tensor: scale has one element (any shape of one element, as the reference takes it);
 *   per axis (opset 13+): scale is 1-D with x's length along axis;
 *   blocked (opset 21+, block_size > 0): scale has x's rank and dims except along axis, where it
 *   has ceil(D / block_size) entries. */
amp_status amp_quant_layout(const amp_node *n, int64_t opset, int xrank, const int64_t *xdims, int srank,
                            const int64_t *sdims, int64_t *q, char *msg, size_t cap) {
    int64_t bs = opset >= 21 ? amp_attr_int(n, "block_size", 0) : 0;
    int64_t sn = amp_dims_numel(srank, sdims), xn = amp_dims_numel(xrank, xdims);
    if (bs < 0) {
        snprintf(msg, cap, "block_size %lld must be >= 0", (long long)bs);
        return AMP_ERR_INVALID_GRAPH;
    }
    if (sn == 1) {
        q[0] = 1, q[1] = 1, q[2] = xn, q[3] = 1, q[4] = q[5] = q[6] = 0;
        return AMP_OK;
    }
    if (bs == 0 && (srank != 1 || opset < 13)) {
        snprintf(msg, cap, "scale must be a scalar%s (has rank %d and %lld elements)",
                 opset < 13 ? " before opset 13" : " or a 1-D tensor", srank, (long long)sn);
        return AMP_ERR_SHAPE;
    }
    int64_t axis = amp_attr_int(n, "axis", 1);
    if (xrank < 1 || axis < -xrank || axis >= xrank) {
        snprintf(msg, cap, "axis %lld out of range for input rank %d", (long long)axis, xrank);
        return AMP_ERR_INVALID_GRAPH;
    }
    int ax = (int)(axis < 0 ? axis + xrank : axis);
    int64_t outer = 1, inner = 1;
    for (int d = 0; d < ax; d++) outer *= xdims[d];
    for (int d = ax + 1; d < xrank; d++) inner *= xdims[d];
    q[0] = outer, q[1] = xdims[ax], q[2] = inner;
    if (bs == 0) {
        if (sdims[0] != xdims[ax]) {
            snprintf(msg, cap, "per-axis scale has %lld elements, input dim %d has %lld", (long long)sdims[0], ax,
                     (long long)xdims[ax]);
            return AMP_ERR_SHAPE;
        }
        q[3] = 1, q[4] = 0, q[5] = 1, q[6] = 0;
        return AMP_OK;
    }
    if (srank != xrank) {
        snprintf(msg, cap, "blocked quantization needs a scale of the input's rank %d, has rank %d", xrank, srank);
        return AMP_ERR_SHAPE;
    }
    for (int d = 0; d < xrank; d++) {
        int64_t want = d == ax ? xdims[d] / bs + (xdims[d] % bs != 0) : xdims[d];
        if (sdims[d] != want) {
            snprintf(msg, cap, "blocked scale dim %d is %lld, expected %lld (block_size %lld)", d,
                     (long long)sdims[d], (long long)want, (long long)bs);
            return AMP_ERR_SHAPE;
        }
    }
    q[3] = bs, q[4] = sdims[ax] * inner, q[5] = inner, q[6] = 1;
    return AMP_OK;
}

static amp_status check_layout(amp_infer *c) {
    char msg[200];
    int64_t q[7];
    const amp_tinfo *x = c->in[0], *s = c->in[1];
    amp_status st = amp_quant_layout(c->n, c->opset, x->rank, x->dims, s->rank, s->dims, q, msg, sizeof msg);
    if (st) return amp_infer_fail(c, st, "%s", msg);
    return pair_shape(c, 1, 2);
}

amp_status amp_infer_quantize_linear(amp_infer *c) {
    amp_status s;
    if ((s = amp_infer_need_inputs(c, 2, 3))) return s;
    if (c->nout != 1) return amp_infer_fail(c, AMP_ERR_INVALID_GRAPH, "has %d outputs, expects 1", c->nout);
    const amp_tinfo *x = c->in[0], *sc = c->in[1], *zp = c->nin > 2 ? c->in[2] : NULL;
    if ((s = amp_infer_dtype_in(c, x->dtype, c->opset >= 19 ? qx19 : qx10))) return s;
    if (c->opset >= 19) {
        /* x and y_scale share T1 from opset 19 */
        if ((s = same_dtype(c, 0, 1))) return s;
    } else if ((s = amp_infer_dtype_in(c, sc->dtype, f32_only))) {
        return s;
    }
    const amp_dtype *outs = c->opset >= 21 ? q16 : q8;
    int64_t od = c->opset >= 21 ? amp_attr_int(c->n, "output_dtype", 0) : 0;
    amp_dtype yt;
    if (zp) {
        yt = zp->dtype;
        if (od && od != (int64_t)yt)
            return amp_infer_fail(c, AMP_ERR_INVALID_GRAPH, "output_dtype %lld differs from y_zero_point's %s",
                                  (long long)od, amp_dtype_name(yt));
    } else {
        yt = od ? (amp_dtype)od : AMP_U8;
        if (od < 0 || od > 64)
            return amp_infer_fail(c, AMP_ERR_INVALID_GRAPH, "output_dtype %lld is invalid", (long long)od);
    }
    if ((s = amp_infer_dtype_in(c, yt, outs))) return s;
    if ((s = check_layout(c))) return s;
    return amp_infer_set_out(c, 0, yt, x->rank, x->dims);
}

amp_status amp_infer_dequantize_linear(amp_infer *c) {
    amp_status s;
    if ((s = amp_infer_need_inputs(c, 2, 3))) return s;
    if (c->nout != 1) return amp_infer_fail(c, AMP_ERR_INVALID_GRAPH, "has %d outputs, expects 1", c->nout);
    const amp_tinfo *x = c->in[0], *sc = c->in[1];
    if ((s = amp_infer_dtype_in(c, x->dtype, c->opset >= 21 ? dq21 : dq10))) return s;
    if ((s = same_dtype(c, 0, 2))) return s;
    if ((s = amp_infer_dtype_in(c, sc->dtype, c->opset >= 19 ? scale19 : f32_only))) return s;
    if ((s = check_layout(c))) return s;
    return amp_infer_set_out(c, 0, sc->dtype, x->rank, x->dims);
}

amp_status amp_infer_dynamic_quantize_linear(amp_infer *c) {
    amp_status s;
    if ((s = amp_infer_need_inputs(c, 1, 1))) return s;
    if (c->nout < 1 || c->nout > 3) return amp_infer_fail(c, AMP_ERR_INVALID_GRAPH, "has 3 outputs, not %d", c->nout);
    const amp_tinfo *x = c->in[0];
    if ((s = amp_infer_dtype_in(c, x->dtype, f32_only))) return s;
    if ((s = amp_infer_set_out(c, 0, AMP_U8, x->rank, x->dims))) return s;
    if (c->nout > 1 && (s = amp_infer_set_out(c, 1, AMP_F32, 0, NULL))) return s;
    if (c->nout > 2 && (s = amp_infer_set_out(c, 2, AMP_U8, 0, NULL))) return s;
    return AMP_OK;
}

/* ---- MatMulInteger, QLinearMatMul ------------------------------------------------------------ */

/* A zero point or scale of a matmul operand (side 0: A, per row; side 1: B, per column), as
 * strides over the operand's dims (pst[orank], 0 where the parameter is broadcast). It has one
 * element, or broadcasts to the operand's shape with 1 along K; for A a 1-D parameter of M
 * elements stands for [M, 1], as the spec writes it. False when it fits none of these. */
bool amp_quant_mm_param(int side, int prank, const int64_t *pdims, int orank, const int64_t *odims, int64_t *pst) {
    for (int j = 0; j < orank; j++) pst[j] = 0;
    if (amp_dims_numel(prank, pdims) == 1) return true;
    if (orank < 2) return false;
    int64_t d[AMP_MAX_RANK + 1];
    int r = prank;
    for (int i = 0; i < prank; i++) d[i] = pdims[i];
    if (side == 0 && prank == 1) {
        d[1] = 1;
        r = 2;
    }
    if (r > orank) return false;
    int kdim = side == 0 ? orank - 1 : orank - 2;
    int64_t st = 1;
    for (int i = r - 1; i >= 0; i--) {
        int j = orank - r + i;
        if (d[i] != 1) {
            if (j == kdim || d[i] != odims[j]) return false;
            pst[j] = st;
        }
        st *= d[i];
    }
    return true;
}

static amp_status mm_param(amp_infer *c, int i, int side, const amp_tinfo *op) {
    int64_t pst[AMP_MAX_RANK];
    const amp_tinfo *p = i < c->nin ? c->in[i] : NULL;
    if (!p || amp_quant_mm_param(side, p->rank, p->dims, op->rank, op->dims, pst)) return AMP_OK;
    return amp_infer_fail(c, AMP_ERR_SHAPE, "input %d must have one element or one per %s of %s", i,
                          side == 0 ? "row" : "column", side == 0 ? "A" : "B");
}

/* Output shape of the integer matmul of a and b (numpy rules). */
static amp_status mm_shape(amp_infer *c, const amp_tinfo *a, const amp_tinfo *b, amp_dtype yt) {
    amp_status s;
    if (a->rank < 1 || b->rank < 1) return amp_infer_fail(c, AMP_ERR_SHAPE, "matmul operands must have rank >= 1");
    int64_t M = a->rank == 1 ? 1 : a->dims[a->rank - 2], K = a->dims[a->rank - 1];
    int64_t K2 = b->rank == 1 ? b->dims[0] : b->dims[b->rank - 2], N = b->rank == 1 ? 1 : b->dims[b->rank - 1];
    if (K != K2)
        return amp_infer_fail(c, AMP_ERR_SHAPE, "inner dims differ: %lld and %lld", (long long)K, (long long)K2);
    int ra = a->rank > 2 ? a->rank - 2 : 0, rb = b->rank > 2 ? b->rank - 2 : 0, rbat;
    int64_t dims[AMP_MAX_RANK + 2];
    if ((s = amp_broadcast_shape(c, ra, a->dims, rb, b->dims, &rbat, dims))) return s;
    int r = rbat;
    if (a->rank > 1) dims[r++] = M;
    if (b->rank > 1) dims[r++] = N;
    return amp_infer_set_out(c, 0, yt, r, dims);
}

amp_status amp_infer_matmul_integer(amp_infer *c) {
    amp_status s;
    if ((s = amp_infer_need_inputs(c, 2, 4))) return s;
    if (c->nout != 1) return amp_infer_fail(c, AMP_ERR_INVALID_GRAPH, "has %d outputs, expects 1", c->nout);
    const amp_tinfo *a = c->in[0], *b = c->in[1];
    if ((s = amp_infer_dtype_in(c, a->dtype, q8)) || (s = amp_infer_dtype_in(c, b->dtype, q8))) return s;
    if ((s = same_dtype(c, 0, 2)) || (s = same_dtype(c, 1, 3))) return s;
    if ((s = mm_shape(c, a, b, AMP_I32))) return s;
    if ((s = mm_param(c, 2, 0, a)) || (s = mm_param(c, 3, 1, b))) return s;
    return AMP_OK;
}

/* Scales: float, or (QLinearMatMul from opset 21) float, float16 or bfloat16, one type for all. */
static amp_status scales(amp_infer *c, int n, const int *idx, bool wide) {
    amp_status s;
    for (int i = 0; i < n; i++) {
        if ((s = amp_infer_dtype_in(c, c->in[idx[i]]->dtype, wide ? scale19 : f32_only))) return s;
        if ((s = same_dtype(c, idx[0], idx[i]))) return s;
    }
    return AMP_OK;
}

amp_status amp_infer_qlinear_matmul(amp_infer *c) {
    amp_status s;
    if ((s = amp_infer_need_inputs(c, 8, 8))) return s;
    if (c->nout != 1) return amp_infer_fail(c, AMP_ERR_INVALID_GRAPH, "has %d outputs, expects 1", c->nout);
    const amp_tinfo *a = c->in[0], *b = c->in[3];
    if ((s = amp_infer_dtype_in(c, a->dtype, q8)) || (s = amp_infer_dtype_in(c, b->dtype, q8)) ||
        (s = amp_infer_dtype_in(c, c->in[7]->dtype, q8)))
        return s;
    if ((s = same_dtype(c, 0, 2)) || (s = same_dtype(c, 3, 5))) return s;
    static const int sidx[3] = {1, 4, 6};
    if ((s = scales(c, 3, sidx, c->opset >= 21))) return s;
    if ((s = mm_shape(c, a, b, c->in[7]->dtype))) return s;
    if ((s = mm_param(c, 1, 0, a)) || (s = mm_param(c, 2, 0, a)) || (s = mm_param(c, 4, 1, b)) ||
        (s = mm_param(c, 5, 1, b)))
        return s;
    if ((s = pair_shape(c, 1, 2)) || (s = pair_shape(c, 4, 5))) return s;
    if ((s = numel_one(c, 6, "y_scale")) || (s = numel_one(c, 7, "y_zero_point"))) return s;
    return AMP_OK;
}

/* ---- ConvInteger, QLinearConv ---------------------------------------------------------------- */

/* Channel checks, geometry and output of an integer convolution of x (input ix) with w (input
 * iw). */
static amp_status conv_shape(amp_infer *c, int ix, int iw, amp_dtype yt) {
    amp_status s;
    const amp_tinfo *x = c->in[ix], *w = c->in[iw];
    if (x->rank < 3) return amp_infer_fail(c, AMP_ERR_SHAPE, "x must have rank >= 3, has %d", x->rank);
    if (w->rank != x->rank) return amp_infer_fail(c, AMP_ERR_SHAPE, "w has rank %d, x has rank %d", w->rank, x->rank);
    int64_t group = amp_attr_int(c->n, "group", 1);
    if (group < 1 || group > ((int64_t)1 << 31))
        return amp_infer_fail(c, AMP_ERR_INVALID_GRAPH, "group %lld is invalid", (long long)group);
    int64_t C = x->dims[1], M = w->dims[0], wc;
    if (__builtin_mul_overflow(w->dims[1], group, &wc) || wc != C)
        return amp_infer_fail(c, AMP_ERR_SHAPE, "x has %lld channels, w expects %lld x group %lld", (long long)C,
                              (long long)w->dims[1], (long long)group);
    if (M % group)
        return amp_infer_fail(c, AMP_ERR_SHAPE, "w has %lld filters, not a multiple of group %lld", (long long)M,
                              (long long)group);
    char msg[256];
    amp_conv_geom g;
    if ((s = amp_conv_geom_init(c->n, AMP_GEOM_CONV, x->rank, x->dims, w->dims, &g, msg, sizeof msg)))
        return amp_infer_fail(c, s, "%s", msg);
    int64_t dims[AMP_MAX_RANK];
    dims[0] = x->dims[0];
    dims[1] = M;
    for (int i = 0; i < g.nsp; i++) dims[i + 2] = g.out[i];
    return amp_infer_set_out(c, 0, yt, x->rank, dims);
}

/* w's zero point or scale: one element, or one per output channel. */
static amp_status per_channel(amp_infer *c, int i, int64_t M, const char *what) {
    const amp_tinfo *p = i < c->nin ? c->in[i] : NULL;
    if (!p || amp_tinfo_numel(p) == 1 || (p->rank == 1 && p->dims[0] == M)) return AMP_OK;
    return amp_infer_fail(c, AMP_ERR_SHAPE, "%s (input %d) must be a scalar or have %lld elements", what, i,
                          (long long)M);
}

amp_status amp_infer_conv_integer(amp_infer *c) {
    amp_status s;
    if ((s = amp_infer_need_inputs(c, 2, 4))) return s;
    if (c->nout != 1) return amp_infer_fail(c, AMP_ERR_INVALID_GRAPH, "has %d outputs, expects 1", c->nout);
    const amp_tinfo *x = c->in[0], *w = c->in[1];
    if ((s = amp_infer_dtype_in(c, x->dtype, q8)) || (s = amp_infer_dtype_in(c, w->dtype, q8))) return s;
    if ((s = same_dtype(c, 0, 2)) || (s = same_dtype(c, 1, 3))) return s;
    if ((s = numel_one(c, 2, "x_zero_point"))) return s;
    if ((s = conv_shape(c, 0, 1, AMP_I32))) return s;
    return per_channel(c, 3, w->dims[0], "w_zero_point");
}

amp_status amp_infer_qlinear_conv(amp_infer *c) {
    amp_status s;
    if ((s = amp_infer_need_inputs(c, 8, 9))) return s;
    if (c->nout != 1) return amp_infer_fail(c, AMP_ERR_INVALID_GRAPH, "has %d outputs, expects 1", c->nout);
    const amp_tinfo *x = c->in[0], *w = c->in[3], *y_zp = c->in[7], *b = c->nin > 8 ? c->in[8] : NULL;
    if ((s = amp_infer_dtype_in(c, x->dtype, q8)) || (s = amp_infer_dtype_in(c, w->dtype, q8)) ||
        (s = amp_infer_dtype_in(c, y_zp->dtype, q8)))
        return s;
    if ((s = same_dtype(c, 0, 2)) || (s = same_dtype(c, 3, 5))) return s;
    static const int sidx[3] = {1, 4, 6};
    if ((s = scales(c, 3, sidx, false))) return s;
    if ((s = numel_one(c, 1, "x_scale")) || (s = numel_one(c, 2, "x_zero_point")) ||
        (s = numel_one(c, 6, "y_scale")) || (s = numel_one(c, 7, "y_zero_point")))
        return s;
    if ((s = conv_shape(c, 0, 3, y_zp->dtype))) return s;
    int64_t M = w->dims[0];
    if ((s = per_channel(c, 4, M, "w_scale")) || (s = per_channel(c, 5, M, "w_zero_point"))) return s;
    if (b) {
        if ((s = amp_infer_dtype_in(c, b->dtype, (const amp_dtype[]){AMP_I32, AMP_UNDEFINED}))) return s;
        if (b->rank != 1 || b->dims[0] != M)
            return amp_infer_fail(c, AMP_ERR_SHAPE, "B must have shape [%lld]", (long long)M);
    }
    return AMP_OK;
}

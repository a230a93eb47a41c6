/* Shape inference for gathers and scatters and assorted tensor builders: Gather,
 * GatherElements, ScatterElements, OneHot, Trilu, Range, Pad, DepthToSpace/SpaceToDepth,
 * EyeLike. */
#include <math.h>
#include <string.h>

#include "base/half.h"
#include "ir/ir.h"

static const amp_dtype index_types[] = {AMP_I64, AMP_I32, AMP_UNDEFINED};
static const amp_dtype range_types[] = {AMP_F32, AMP_F64, AMP_I64, AMP_I32, AMP_UNDEFINED};
/* EyeLike's spec lists no bfloat16. */
static const amp_dtype eye_types[] = {AMP_F32, AMP_F16, AMP_F64, AMP_I64, AMP_I32, AMP_I8, AMP_U8, AMP_BOOL,
                                      AMP_UNDEFINED};

static amp_status check_out_size(amp_infer *c, int i) {
    amp_status s = amp_shape_numel(c->out[i]->rank, c->out[i]->dims, c->out[i]->dtype, NULL, NULL);
    if (s) return amp_infer_fail(c, s, "output shape overflows or is invalid");
    return AMP_OK;
}

static bool is_scalar(const amp_tinfo *t) {
    return t->rank == 0 || (t->rank == 1 && t->dims[0] == 1);
}

amp_status amp_infer_gather(amp_infer *c) {
    amp_status s = amp_infer_need_inputs(c, 2, 2);
    if (s) return s;
    const amp_tinfo *x = c->in[0], *ind = c->in[1];
    if ((s = amp_infer_dtype_in(c, x->dtype, amp_dt_all))) return s;
    if ((s = amp_infer_dtype_in(c, ind->dtype, index_types))) return s;
    if (x->rank < 1) return amp_infer_fail(c, AMP_ERR_SHAPE, "data must have rank >= 1");
    int axis;
    if ((s = amp_infer_axis(c, amp_attr_int(c->n, "axis", 0), x->rank, &axis))) return s;
    int r = x->rank + ind->rank - 1;
    if (r > AMP_MAX_RANK) return amp_infer_fail(c, AMP_ERR_UNSUPPORTED, "output rank %d exceeds %d", r, AMP_MAX_RANK);
    amp_tinfo *y = c->out[0];
    y->dtype = x->dtype;
    y->rank = r;
    int o = 0;
    for (int d = 0; d < axis; d++) y->dims[o++] = x->dims[d];
    for (int d = 0; d < ind->rank; d++) y->dims[o++] = ind->dims[d];
    for (int d = axis + 1; d < x->rank; d++) y->dims[o++] = x->dims[d];
    return check_out_size(c, 0);
}

/* Indices of GatherElements/ScatterElements: same rank as data, no dim larger than data's
 * except along axis (the kernels address data with indices' coordinates). */
static amp_status check_elem_indices(amp_infer *c, const amp_tinfo *x, const amp_tinfo *ind, int *axis) {
    amp_status s;
    if ((s = amp_infer_dtype_in(c, x->dtype, amp_dt_all))) return s;
    if ((s = amp_infer_dtype_in(c, ind->dtype, index_types))) return s;
    if (x->rank < 1) return amp_infer_fail(c, AMP_ERR_SHAPE, "data must have rank >= 1");
    if (ind->rank != x->rank)
        return amp_infer_fail(c, AMP_ERR_SHAPE, "indices rank %d differs from data rank %d", ind->rank, x->rank);
    if ((s = amp_infer_axis(c, amp_attr_int(c->n, "axis", 0), x->rank, axis))) return s;
    for (int d = 0; d < x->rank; d++)
        if (d != *axis && ind->dims[d] > x->dims[d])
            return amp_infer_fail(c, AMP_ERR_SHAPE, "indices dim %d (%lld) exceeds data dim (%lld)", d,
                                  (long long)ind->dims[d], (long long)x->dims[d]);
    return AMP_OK;
}

amp_status amp_infer_gather_elements(amp_infer *c) {
    amp_status s = amp_infer_need_inputs(c, 2, 2);
    if (s) return s;
    int axis;
    if ((s = check_elem_indices(c, c->in[0], c->in[1], &axis))) return s;
    amp_tinfo *y = c->out[0];
    y->dtype = c->in[0]->dtype;
    y->rank = c->in[1]->rank;
    memcpy(y->dims, c->in[1]->dims, sizeof y->dims);
    return check_out_size(c, 0);
}

amp_status amp_infer_scatter_elements(amp_infer *c) {
    amp_status s = amp_infer_need_inputs(c, 3, 3);
    if (s) return s;
    const amp_tinfo *x = c->in[0], *ind = c->in[1], *upd = c->in[2];
    int axis;
    if ((s = check_elem_indices(c, x, ind, &axis))) return s;
    if (upd->dtype != x->dtype)
        return amp_infer_fail(c, AMP_ERR_SHAPE, "updates dtype %s differs from data dtype %s",
                              amp_dtype_name(upd->dtype), amp_dtype_name(x->dtype));
    bool same = upd->rank == ind->rank;
    for (int d = 0; same && d < ind->rank; d++) same = upd->dims[d] == ind->dims[d];
    if (!same) return amp_infer_fail(c, AMP_ERR_SHAPE, "updates must have the shape of indices");
    const char *red = amp_attr_str(c->n, "reduction", "none");
    if (strcmp(red, "none") && strcmp(red, "add") && strcmp(red, "mul") && strcmp(red, "max") && strcmp(red, "min"))
        return amp_infer_fail(c, AMP_ERR_INVALID_GRAPH, "unknown reduction '%s'", red);
    amp_tinfo *y = c->out[0];
    y->dtype = x->dtype;
    y->rank = x->rank;
    memcpy(y->dims, x->dims, sizeof y->dims);
    return AMP_OK;
}

amp_status amp_infer_one_hot(amp_infer *c) {
    amp_status s = amp_infer_need_inputs(c, 3, 3);
    if (s) return s;
    const amp_tinfo *ind = c->in[0], *depth = c->in[1], *vals = c->in[2];
    if ((s = amp_infer_dtype_in(c, ind->dtype, amp_dt_numeric))) return s;
    if ((s = amp_infer_dtype_in(c, depth->dtype, amp_dt_numeric))) return s;
    if ((s = amp_infer_dtype_in(c, vals->dtype, amp_dt_all))) return s;
    if (!is_scalar(depth)) return amp_infer_fail(c, AMP_ERR_SHAPE, "depth must be a scalar");
    if (vals->rank != 1 || vals->dims[0] != 2)
        return amp_infer_fail(c, AMP_ERR_SHAPE, "values must be a 1-D tensor of two elements");
    if (ind->rank + 1 > AMP_MAX_RANK)
        return amp_infer_fail(c, AMP_ERR_UNSUPPORTED, "output rank exceeds %d", AMP_MAX_RANK);
    int64_t axis = amp_attr_int(c->n, "axis", -1);
    if (axis < -(ind->rank + 1) || axis > ind->rank)
        return amp_infer_fail(c, AMP_ERR_INVALID_GRAPH, "axis %lld out of range for output rank %d", (long long)axis,
                              ind->rank + 1);
    if (axis < 0) axis += ind->rank + 1;
    if (!depth->value)
        return amp_infer_fail(c, AMP_ERR_UNSUPPORTED, "data-dependent shape: depth must be known before running");
    const amp_tensor *dv = depth->value;
    int64_t n;
    if (amp_dtype_is_float(dv->dtype)) {
        double v;
        switch (dv->dtype) {
        case AMP_F32: v = ((const float *)dv->data)[0]; break;
        case AMP_F64: v = ((const double *)dv->data)[0]; break;
        case AMP_F16: v = amp_f16_to_f32(((const uint16_t *)dv->data)[0]); break;
        default: v = amp_bf16_to_f32(((const uint16_t *)dv->data)[0]); break;
        }
        if (!(v >= 1.0 && v < 9.0e18)) return amp_infer_fail(c, AMP_ERR_SHAPE, "depth %g must be >= 1", v);
        n = (int64_t)v;
    } else {
        switch (dv->dtype) {
        case AMP_I64: n = ((const int64_t *)dv->data)[0]; break;
        case AMP_I32: n = ((const int32_t *)dv->data)[0]; break;
        case AMP_I8: n = ((const int8_t *)dv->data)[0]; break;
        default: n = ((const uint8_t *)dv->data)[0]; break;
        }
        if (n < 1) return amp_infer_fail(c, AMP_ERR_SHAPE, "depth %lld must be >= 1", (long long)n);
    }
    amp_tinfo *y = c->out[0];
    y->dtype = vals->dtype;
    y->rank = ind->rank + 1;
    for (int d = 0, o = 0; d < y->rank; d++) y->dims[d] = d == axis ? n : ind->dims[o++];
    return check_out_size(c, 0);
}

amp_status amp_infer_trilu(amp_infer *c) {
    amp_status s = amp_infer_need_inputs(c, 1, 2);
    if (s) return s;
    const amp_tinfo *x = c->in[0];
    if ((s = amp_infer_dtype_in(c, x->dtype, amp_dt_all))) return s;
    if (x->rank < 2) return amp_infer_fail(c, AMP_ERR_SHAPE, "input must have rank >= 2, has %d", x->rank);
    if (c->nin > 1 && c->in[1]) {
        if ((s = amp_infer_dtype_in(c, c->in[1]->dtype, index_types))) return s;
        if (!is_scalar(c->in[1])) return amp_infer_fail(c, AMP_ERR_SHAPE, "k must be a scalar");
    }
    amp_tinfo *y = c->out[0];
    y->dtype = x->dtype;
    y->rank = x->rank;
    memcpy(y->dims, x->dims, sizeof y->dims);
    return AMP_OK;
}

amp_status amp_infer_range(amp_infer *c) {
    amp_status s = amp_infer_need_inputs(c, 3, 3);
    if (s) return s;
    amp_dtype dt = c->in[0]->dtype;
    if ((s = amp_infer_dtype_in(c, dt, range_types))) return s;
    for (int i = 0; i < 3; i++) {
        if (c->in[i]->dtype != dt) return amp_infer_fail(c, AMP_ERR_SHAPE, "start, limit and delta must share a dtype");
        if (!is_scalar(c->in[i])) return amp_infer_fail(c, AMP_ERR_SHAPE, "input %d must be a scalar", i);
    }
    for (int i = 0; i < 3; i++)
        if (!c->in[i]->value)
            return amp_infer_fail(c, AMP_ERR_UNSUPPORTED,
                                  "data-dependent shape: input %d must be known before running", i);
    const void *p0 = c->in[0]->value->data, *p1 = c->in[1]->value->data, *p2 = c->in[2]->value->data;
    int64_t n = 0;
    if (dt == AMP_I64 || dt == AMP_I32) {
        int64_t a, b, d;
        if (dt == AMP_I64) a = *(const int64_t *)p0, b = *(const int64_t *)p1, d = *(const int64_t *)p2;
        else a = *(const int32_t *)p0, b = *(const int32_t *)p1, d = *(const int32_t *)p2;
        if (d == 0) return amp_infer_fail(c, AMP_ERR_INVALID_ARG, "delta is zero");
        int64_t diff;
        if (__builtin_sub_overflow(b, a, &diff)) return amp_infer_fail(c, AMP_ERR_OVERFLOW, "limit - start overflows");
        if ((diff > 0 && d > 0) || (diff < 0 && d < 0)) {
            /* ceil(diff / d) for operands of one sign, without overflowing */
            uint64_t ud = diff > 0 ? (uint64_t)diff : 0u - (uint64_t)diff;
            uint64_t ur = d > 0 ? (uint64_t)d : 0u - (uint64_t)d;
            n = (int64_t)(ud / ur + (ud % ur != 0));
        }
    } else {
        double q;
        if (dt == AMP_F32) {
            /* the spec's formula, evaluated in the tensor's type */
            float a = *(const float *)p0, b = *(const float *)p1, d = *(const float *)p2;
            if (d == 0.0f) return amp_infer_fail(c, AMP_ERR_INVALID_ARG, "delta is zero");
            q = ceilf((b - a) / d);
        } else {
            double a = *(const double *)p0, b = *(const double *)p1, d = *(const double *)p2;
            if (d == 0.0) return amp_infer_fail(c, AMP_ERR_INVALID_ARG, "delta is zero");
            q = ceil((b - a) / d);
        }
        if (isnan(q)) return amp_infer_fail(c, AMP_ERR_INVALID_ARG, "start, limit or delta is not a number");
        if (q > (double)c->ctx->max_tensor_elements)
            return amp_infer_fail(c, AMP_ERR_LIMIT, "range of %g elements exceeds the limit", q);
        n = q > 0 ? (int64_t)q : 0;
    }
    if (n > c->ctx->max_tensor_elements)
        return amp_infer_fail(c, AMP_ERR_LIMIT, "range of %lld elements exceeds the limit", (long long)n);
    amp_tinfo *y = c->out[0];
    y->dtype = dt;
    y->rank = 1;
    y->dims[0] = n;
    return check_out_size(c, 0);
}

/* Pad: opset < 11 reads pads/value attributes; later opsets read the pads, constant_value
 * and (opset 18) axes inputs. */
amp_status amp_infer_pad(amp_infer *c) {
    bool attr_form = c->opset < 11;
    amp_status s = amp_infer_need_inputs(c, attr_form ? 1 : 2, attr_form ? 1 : 4);
    if (s) return s;
    const amp_tinfo *x = c->in[0];
    if ((s = amp_infer_dtype_in(c, x->dtype, amp_dt_all))) return s;
    const char *mode = amp_attr_str(c->n, "mode", "constant");
    bool constant = strcmp(mode, "constant") == 0;
    if (!constant && strcmp(mode, "reflect") && strcmp(mode, "edge") && strcmp(mode, "wrap"))
        return amp_infer_fail(c, AMP_ERR_INVALID_GRAPH, "unknown mode '%s'", mode);
    int r = x->rank;
    int64_t pads[4 * AMP_MAX_RANK];
    int np = 0;
    if (attr_form) {
        const int64_t *p = NULL;
        np = amp_attr_ints(c->n, "pads", &p);
        if (np < 0) return amp_infer_fail(c, AMP_ERR_INVALID_GRAPH, "pads attribute is required");
        if (np > 4 * AMP_MAX_RANK) return amp_infer_fail(c, AMP_ERR_INVALID_GRAPH, "too many pads");
        memcpy(pads, p, sizeof(int64_t) * (size_t)np);
    } else {
        if ((s = amp_infer_dtype_in(c, c->in[1]->dtype, index_types))) return s;
        if ((s = amp_infer_const_ints(c, 1, pads, 4 * AMP_MAX_RANK, &np))) return s;
        if (c->nin > 2 && c->in[2]) {
            if (c->in[2]->dtype != x->dtype)
                return amp_infer_fail(c, AMP_ERR_SHAPE, "constant_value dtype differs from data dtype");
            if (!is_scalar(c->in[2])) return amp_infer_fail(c, AMP_ERR_SHAPE, "constant_value must be a scalar");
        }
    }
    /* which dims the pads apply to, in pads order */
    int axes[AMP_MAX_RANK], na = r;
    for (int d = 0; d < r; d++) axes[d] = d;
    if (!attr_form && c->nin > 3 && c->in[3]) {
        int64_t a[2 * AMP_MAX_RANK];
        if ((s = amp_infer_const_ints(c, 3, a, 2 * AMP_MAX_RANK, &na))) return s;
        bool seen[AMP_MAX_RANK] = {false};
        for (int i = 0; i < na; i++) {
            if ((s = amp_infer_axis(c, a[i], r, &axes[i]))) return s;
            if (r == 0 || seen[axes[i]]) return amp_infer_fail(c, AMP_ERR_INVALID_GRAPH, "axes repeat or are invalid");
            seen[axes[i]] = true;
        }
    }
    if (np != 2 * na)
        return amp_infer_fail(c, AMP_ERR_INVALID_GRAPH, "pads has %d values, expected %d", np, 2 * na);
    amp_tinfo *y = c->out[0];
    y->dtype = x->dtype;
    y->rank = r;
    memcpy(y->dims, x->dims, sizeof y->dims);
    for (int i = 0; i < na; i++) {
        int d = axes[i];
        int64_t b = pads[i], e = pads[i + na], n;
        if (__builtin_add_overflow(x->dims[d], b, &n) || __builtin_add_overflow(n, e, &n))
            return amp_infer_fail(c, AMP_ERR_OVERFLOW, "padded dim %d overflows", d);
        if (n < 0) return amp_infer_fail(c, AMP_ERR_SHAPE, "pads remove more than dim %d holds", d);
        if (!constant && x->dims[d] == 0 && n > 0)
            return amp_infer_fail(c, AMP_ERR_SHAPE, "cannot pad empty dim %d in %s mode", d, mode);
        y->dims[d] = n;
    }
    return check_out_size(c, 0);
}

amp_status amp_infer_depth_to_space(amp_infer *c) {
    amp_status s = amp_infer_need_inputs(c, 1, 1);
    if (s) return s;
    const amp_tinfo *x = c->in[0];
    if ((s = amp_infer_dtype_in(c, x->dtype, amp_dt_all))) return s;
    if (x->rank != 4) return amp_infer_fail(c, AMP_ERR_SHAPE, "input must have rank 4, has %d", x->rank);
    const amp_attr *ba = amp_node_attr(c->n, "blocksize");
    if (!ba || ba->kind != AMP_ATTR_INT) return amp_infer_fail(c, AMP_ERR_INVALID_GRAPH, "blocksize is required");
    int64_t b = ba->i;
    if (b < 1 || b > (int64_t)1 << 31) return amp_infer_fail(c, AMP_ERR_INVALID_GRAPH, "blocksize %lld is invalid", (long long)b);
    amp_tinfo *y = c->out[0];
    y->dtype = x->dtype;
    y->rank = 4;
    y->dims[0] = x->dims[0];
    if (c->n->op == AMP_OP_DEPTH_TO_SPACE) {
        const char *mode = amp_attr_str(c->n, "mode", "DCR");
        if (strcmp(mode, "DCR") && strcmp(mode, "CRD"))
            return amp_infer_fail(c, AMP_ERR_INVALID_GRAPH, "unknown mode '%s'", mode);
        if (x->dims[1] % (b * b))
            return amp_infer_fail(c, AMP_ERR_SHAPE, "channels %lld are not a multiple of blocksize^2 (%lld)",
                                  (long long)x->dims[1], (long long)(b * b));
        y->dims[1] = x->dims[1] / (b * b);
        if (__builtin_mul_overflow(x->dims[2], b, &y->dims[2]) || __builtin_mul_overflow(x->dims[3], b, &y->dims[3]))
            return amp_infer_fail(c, AMP_ERR_OVERFLOW, "output dims overflow");
    } else {
        if (x->dims[2] % b || x->dims[3] % b)
            return amp_infer_fail(c, AMP_ERR_SHAPE, "height and width must be multiples of blocksize %lld",
                                  (long long)b);
        if (__builtin_mul_overflow(x->dims[1], b * b, &y->dims[1]))
            return amp_infer_fail(c, AMP_ERR_OVERFLOW, "output channels overflow");
        y->dims[2] = x->dims[2] / b;
        y->dims[3] = x->dims[3] / b;
    }
    return check_out_size(c, 0);
}

amp_status amp_infer_eye_like(amp_infer *c) {
    amp_status s = amp_infer_need_inputs(c, 1, 1);
    if (s) return s;
    const amp_tinfo *x = c->in[0];
    if ((s = amp_infer_dtype_in(c, x->dtype, eye_types))) return s;
    if (x->rank != 2) return amp_infer_fail(c, AMP_ERR_SHAPE, "input must have rank 2, has %d", x->rank);
    int64_t dt = amp_attr_int(c->n, "dtype", (int64_t)x->dtype);
    if (dt < 0 || dt > 64 || (s = amp_infer_dtype_in(c, (amp_dtype)dt, eye_types)))
        return amp_infer_fail(c, AMP_ERR_UNSUPPORTED, "dtype %lld is not supported", (long long)dt);
    amp_tinfo *y = c->out[0];
    y->dtype = (amp_dtype)dt;
    y->rank = 2;
    y->dims[0] = x->dims[0];
    y->dims[1] = x->dims[1];
    return AMP_OK;
}

/* Helpers for shape inference functions and CPU kernels. */
#include <stdio.h>
#include <string.h>

#include "ir/ir.h"

const amp_dtype amp_dt_float[] = {AMP_F32, AMP_F16, AMP_BF16, AMP_F64, AMP_UNDEFINED};
const amp_dtype amp_dt_numeric[] = {AMP_F32, AMP_F16, AMP_BF16, AMP_F64, AMP_I64, AMP_I32, AMP_I16, AMP_I8,
                                    AMP_U64, AMP_U32, AMP_U16,  AMP_U8,  AMP_UNDEFINED};
const amp_dtype amp_dt_signed[] = {AMP_F32, AMP_F16, AMP_BF16, AMP_F64, AMP_I64, AMP_I32, AMP_I16, AMP_I8, AMP_UNDEFINED};
const amp_dtype amp_dt_all[] = {AMP_F32, AMP_F16, AMP_BF16, AMP_F64, AMP_I64, AMP_I32, AMP_I16,  AMP_I8,
                                AMP_U64, AMP_U32, AMP_U16,  AMP_U8,  AMP_BOOL, AMP_UNDEFINED};

static amp_status vfail(amp_context *ctx, const amp_node *n, amp_status s, const char *fmt, va_list ap) {
    char msg[768];
    vsnprintf(msg, sizeof msg, fmt, ap);
    return amp_seterr(ctx, s, "node '%s' (%s): %s", n && n->name && n->name[0] ? n->name : "<unnamed>",
                      n ? n->op_type : "?", msg);
}

amp_status amp_infer_fail(amp_infer *c, amp_status s, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vfail(c->ctx, c->n, s, fmt, ap);
    va_end(ap);
    return s;
}

amp_status amp_kernel_fail(const amp_kernel *k, amp_status s, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vfail(k->ctx, k->n, s, fmt, ap);
    va_end(ap);
    return s;
}

amp_status amp_infer_need_inputs(amp_infer *c, int lo, int hi) {
    if (c->nin < lo || c->nin > hi)
        return amp_infer_fail(c, AMP_ERR_INVALID_GRAPH, "expects %d to %d inputs, has %d", lo, hi, c->nin);
    for (int i = 0; i < lo; i++)
        if (!c->in[i]) return amp_infer_fail(c, AMP_ERR_INVALID_GRAPH, "input %d is required", i);
    return AMP_OK;
}

amp_status amp_infer_dtype_in(amp_infer *c, amp_dtype dt, const amp_dtype *allowed) {
    for (const amp_dtype *a = allowed; *a != AMP_UNDEFINED; a++)
        if (*a == dt) return AMP_OK;
    return amp_infer_fail(c, AMP_ERR_UNSUPPORTED, "dtype %s is not supported", amp_dtype_name(dt));
}

amp_status amp_infer_same_dtype(amp_infer *c, int i) {
    if (c->in[i] && c->in[i]->dtype != c->in[0]->dtype)
        return amp_infer_fail(c, AMP_ERR_SHAPE, "input %d has dtype %s, input 0 has %s", i,
                              amp_dtype_name(c->in[i]->dtype), amp_dtype_name(c->in[0]->dtype));
    return AMP_OK;
}

amp_status amp_infer_const_ints(amp_infer *c, int input, int64_t *v, int cap, int *n) {
    const amp_tinfo *t = input < c->nin ? c->in[input] : NULL;
    if (!t) return amp_infer_fail(c, AMP_ERR_INVALID_GRAPH, "input %d is missing", input);
    if (!t->value)
        return amp_infer_fail(c, AMP_ERR_UNSUPPORTED,
                              "data-dependent shape: input %d must be known before running", input);
    const amp_tensor *x = t->value;
    if (x->rank > 1) return amp_infer_fail(c, AMP_ERR_INVALID_GRAPH, "input %d must be 1-D", input);
    if (x->numel > cap) return amp_infer_fail(c, AMP_ERR_LIMIT, "input %d has too many values", input);
    for (int64_t i = 0; i < x->numel; i++) {
        if (x->dtype == AMP_I64) v[i] = ((const int64_t *)x->data)[i];
        else if (x->dtype == AMP_I32) v[i] = ((const int32_t *)x->data)[i];
        else return amp_infer_fail(c, AMP_ERR_INVALID_GRAPH, "input %d must be int64 or int32", input);
    }
    *n = (int)x->numel;
    return AMP_OK;
}

amp_status amp_broadcast_shape(amp_infer *c, int ra, const int64_t *a, int rb, const int64_t *b, int *rout,
                               int64_t *out) {
    int r = ra > rb ? ra : rb;
    for (int i = 0; i < r; i++) {
        int64_t da = i - (r - ra) >= 0 ? a[i - (r - ra)] : 1;
        int64_t db = i - (r - rb) >= 0 ? b[i - (r - rb)] : 1;
        if (da == db || db == 1) out[i] = da;
        else if (da == 1) out[i] = db;
        else
            return amp_infer_fail(c, AMP_ERR_SHAPE, "shapes cannot broadcast: dim %d is %lld and %lld", i,
                                  (long long)da, (long long)db);
    }
    *rout = r;
    return AMP_OK;
}

amp_status amp_infer_axis(amp_infer *c, int64_t axis, int rank, int *out) {
    if (axis < -rank || axis >= (rank > 0 ? rank : 1))
        return amp_infer_fail(c, AMP_ERR_INVALID_GRAPH, "axis %lld out of range for rank %d", (long long)axis, rank);
    *out = (int)(axis < 0 ? axis + rank : axis);
    return AMP_OK;
}

amp_status amp_infer_set_out(amp_infer *c, int i, amp_dtype dt, int rank, const int64_t *dims) {
    if (i < 0 || i >= c->nout) return AMP_OK;
    if (rank < 0 || rank > AMP_MAX_RANK)
        return amp_infer_fail(c, AMP_ERR_UNSUPPORTED, "output %d would have rank %d, over %d", i, rank, AMP_MAX_RANK);
    for (int d = 0; d < rank; d++)
        if (dims[d] < 0) return amp_infer_fail(c, AMP_ERR_SHAPE, "output %d: dim %d is negative", i, d);
    amp_status s = amp_shape_numel(rank, dims, dt, NULL, NULL);
    if (s == AMP_ERR_OVERFLOW) return amp_infer_fail(c, s, "output %d: size overflows", i);
    if (s) return amp_infer_fail(c, s, "output %d: dtype %s is not supported", i, amp_dtype_name(dt));
    amp_tinfo *o = c->out[i];
    o->dtype = dt;
    o->rank = rank;
    memset(o->dims, 0, sizeof o->dims);
    for (int d = 0; d < rank; d++) o->dims[d] = dims[d];
    o->value = NULL;
    return AMP_OK;
}

amp_status amp_infer_int_attr(amp_infer *c, const char *name, int64_t def, int64_t *v) {
    const amp_attr *a = amp_node_attr(c->n, name);
    if (!a) {
        *v = def;
        return AMP_OK;
    }
    if (a->kind != AMP_ATTR_INT) return amp_infer_fail(c, AMP_ERR_INVALID_GRAPH, "attribute %s must be an int", name);
    *v = a->i;
    return AMP_OK;
}

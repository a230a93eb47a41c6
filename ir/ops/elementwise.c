/* Shape and dtype inference for the elementwise ops: binary arithmetic, comparison and logic
 * with numpy broadcasting, variadic Min/Max/Sum/Mean, Where, unary math and activations,
 * IsNaN/IsInf, Clip, Dropout, Cast and CastLike. */
#include <string.h>

#include "base/half.h"
#include "ir/ir.h"

/* ---- helpers ------------------------------------------------------------------------------ */

static amp_status set_out(amp_infer *c, int i, amp_dtype dt, int rank, const int64_t *dims) {
    if (i >= c->nout) return AMP_OK;
    amp_status s = amp_shape_numel(rank, dims, dt, NULL, NULL);
    if (s == AMP_ERR_OVERFLOW) return amp_infer_fail(c, s, "output %d: element count overflows", i);
    if (s) return amp_infer_fail(c, AMP_ERR_SHAPE, "output %d: invalid shape", i);
    amp_tinfo *o = c->out[i];
    o->dtype = dt;
    o->rank = rank;
    for (int d = 0; d < rank; d++) o->dims[d] = dims[d];
    o->value = NULL;
    return AMP_OK;
}

static amp_status need_outputs(amp_infer *c, int lo, int hi) {
    if (c->nout < lo || c->nout > hi)
        return amp_infer_fail(c, AMP_ERR_INVALID_GRAPH, "expects %d to %d outputs, has %d", lo, hi, c->nout);
    return AMP_OK;
}

/* Ops that carried the legacy `broadcast`/`axis` attributes before opset 7. */
static bool has_legacy_broadcast(amp_op op) {
    switch (op) {
    case AMP_OP_ADD: case AMP_OP_SUB: case AMP_OP_MUL: case AMP_OP_DIV: case AMP_OP_POW:
    case AMP_OP_AND: case AMP_OP_OR: case AMP_OP_XOR:
    case AMP_OP_EQUAL: case AMP_OP_LESS: case AMP_OP_GREATER:
        return true;
    default:
        return false;
    }
}

/* B broadcast onto A (A's shape is the output): before opset 7 B may only broadcast in one
 * direction, aligned at `axis` when given (trailing dims otherwise); PRelu's slope is always
 * one-directional, and before opset 7 a 1-D slope of length C follows axis 1 (channels). */
static amp_status onto_a(amp_infer *c, const amp_tinfo *a, const amp_tinfo *b, int axis) {
    if (b->rank > a->rank)
        return amp_infer_fail(c, AMP_ERR_SHAPE, "input 1 (rank %d) cannot broadcast onto input 0 (rank %d)",
                              b->rank, a->rank);
    int off = axis >= 0 ? axis : a->rank - b->rank;
    if (off + b->rank > a->rank)
        return amp_infer_fail(c, AMP_ERR_SHAPE, "input 1 (rank %d) does not fit input 0 (rank %d) at axis %d",
                              b->rank, a->rank, axis);
    for (int i = 0; i < b->rank; i++)
        if (b->dims[i] != 1 && b->dims[i] != a->dims[off + i])
            return amp_infer_fail(c, AMP_ERR_SHAPE, "input 1 dim %d is %lld, cannot broadcast onto %lld", i,
                                  (long long)b->dims[i], (long long)a->dims[off + i]);
    return AMP_OK;
}

/* Output shape of a two-input elementwise op, following its opset's broadcasting rule. */
static amp_status binary_shape(amp_infer *c, int *rank, int64_t *dims) {
    const amp_tinfo *a = c->in[0], *b = c->in[1];
    amp_op op = c->n->op;
    amp_status s;
    if (op == AMP_OP_PRELU) {
        int axis = -1;
        if (c->opset < 7 && b->rank == 1 && a->rank >= 2 && b->dims[0] != 1 && b->dims[0] == a->dims[1]) axis = 1;
        if ((s = onto_a(c, a, b, axis))) return s;
    } else if (c->opset < 7 && has_legacy_broadcast(op)) {
        if (amp_attr_int(c->n, "broadcast", 0)) {
            int axis = -1;
            if (amp_node_attr(c->n, "axis") && (s = amp_infer_axis(c, amp_attr_int(c->n, "axis", 0), a->rank, &axis)))
                return s;
            if ((s = onto_a(c, a, b, axis))) return s;
        } else {
            bool same = a->rank == b->rank;
            for (int i = 0; same && i < a->rank; i++) same = a->dims[i] == b->dims[i];
            if (!same)
                return amp_infer_fail(c, AMP_ERR_SHAPE, "shapes differ and broadcast=0 (opset %lld)",
                                      (long long)c->opset);
        }
    } else {
        return amp_broadcast_shape(c, a->rank, a->dims, b->rank, b->dims, rank, dims);
    }
    *rank = a->rank;
    memcpy(dims, a->dims, sizeof(int64_t) * (size_t)a->rank);
    return AMP_OK;
}

static amp_status same_dtype(amp_infer *c, int i, int j) {
    if (c->in[i]->dtype != c->in[j]->dtype)
        return amp_infer_fail(c, AMP_ERR_SHAPE, "input %d is %s but input %d is %s", i,
                              amp_dtype_name(c->in[i]->dtype), j, amp_dtype_name(c->in[j]->dtype));
    return AMP_OK;
}

/* ---- binary --------------------------------------------------------------------------------- */

/* PRelu: float always; int32/int64 from opset 16. */
static const amp_dtype dt_prelu[] = {AMP_F32, AMP_F16, AMP_BF16, AMP_F64, AMP_I64, AMP_I32, AMP_UNDEFINED};

amp_status amp_infer_binary(amp_infer *c) {
    amp_status s;
    if ((s = amp_infer_need_inputs(c, 2, 2)) || (s = need_outputs(c, 1, 1))) return s;
    amp_dtype dt = c->in[0]->dtype;
    if ((s = amp_infer_dtype_in(c, dt, c->n->op == AMP_OP_PRELU ? dt_prelu : amp_dt_numeric))) return s;
    if ((s = same_dtype(c, 0, 1))) return s;
    if (c->n->op == AMP_OP_MOD) {
        int64_t fm = amp_attr_int(c->n, "fmod", 0);
        if (fm != 0 && fm != 1) return amp_infer_fail(c, AMP_ERR_INVALID_GRAPH, "fmod must be 0 or 1, is %lld", (long long)fm);
        if (amp_dtype_is_float(dt) && fm != 1 && c->opset < 28)
            return amp_infer_fail(c, AMP_ERR_INVALID_GRAPH, "floating-point Mod requires fmod=1 before opset 28");
    }
    int rank;
    int64_t dims[AMP_MAX_RANK];
    if ((s = binary_shape(c, &rank, dims))) return s;
    return set_out(c, 0, dt, rank, dims);
}

amp_status amp_infer_pow(amp_infer *c) {
    amp_status s;
    if ((s = amp_infer_need_inputs(c, 2, 2)) || (s = need_outputs(c, 1, 1))) return s;
    amp_dtype dt = c->in[0]->dtype;
    /* Opset 12 lets the exponent have its own dtype; before that both must agree. */
    if ((s = amp_infer_dtype_in(c, dt, c->opset >= 12 ? amp_dt_numeric : amp_dt_float))) return s;
    if ((s = amp_infer_dtype_in(c, c->in[1]->dtype, c->opset >= 12 ? amp_dt_numeric : amp_dt_float))) return s;
    if (c->opset < 12 && (s = same_dtype(c, 0, 1))) return s;
    int rank;
    int64_t dims[AMP_MAX_RANK];
    if ((s = binary_shape(c, &rank, dims))) return s;
    return set_out(c, 0, dt, rank, dims);
}

static const amp_dtype dt_bool[] = {AMP_BOOL, AMP_UNDEFINED};

amp_status amp_infer_logic(amp_infer *c) {
    amp_status s;
    if ((s = amp_infer_need_inputs(c, 2, 2)) || (s = need_outputs(c, 1, 1))) return s;
    if ((s = amp_infer_dtype_in(c, c->in[0]->dtype, dt_bool)) || (s = amp_infer_dtype_in(c, c->in[1]->dtype, dt_bool)))
        return s;
    int rank;
    int64_t dims[AMP_MAX_RANK];
    if ((s = binary_shape(c, &rank, dims))) return s;
    return set_out(c, 0, AMP_BOOL, rank, dims);
}

/* BitShift (unsigned, opset 11) and BitwiseAnd/Or/Xor/Not (every integer type, opset 18). */
static const amp_dtype dt_unsigned[] = {AMP_U64, AMP_U32, AMP_U16, AMP_U8, AMP_UNDEFINED};
static const amp_dtype dt_ints[] = {AMP_I64, AMP_I32, AMP_I16, AMP_I8, AMP_U64, AMP_U32, AMP_U16, AMP_U8, AMP_UNDEFINED};

amp_status amp_infer_bitwise(amp_infer *c) {
    amp_status s;
    bool unary = c->n->op == AMP_OP_BITWISE_NOT;
    if ((s = amp_infer_need_inputs(c, unary ? 1 : 2, unary ? 1 : 2)) || (s = need_outputs(c, 1, 1))) return s;
    amp_dtype dt = c->in[0]->dtype;
    if ((s = amp_infer_dtype_in(c, dt, c->n->op == AMP_OP_BIT_SHIFT ? dt_unsigned : dt_ints))) return s;
    if (c->n->op == AMP_OP_BIT_SHIFT) {
        const char *dir = amp_attr_str(c->n, "direction", "");
        if (strcmp(dir, "LEFT") != 0 && strcmp(dir, "RIGHT") != 0)
            return amp_infer_fail(c, AMP_ERR_INVALID_GRAPH, "direction must be LEFT or RIGHT, is '%s'", dir);
    }
    if (unary) return set_out(c, 0, dt, c->in[0]->rank, c->in[0]->dims);
    if ((s = same_dtype(c, 0, 1))) return s;
    int rank;
    int64_t dims[AMP_MAX_RANK];
    if ((s = binary_shape(c, &rank, dims))) return s;
    return set_out(c, 0, dt, rank, dims);
}

amp_status amp_infer_compare(amp_infer *c) {
    amp_status s;
    if ((s = amp_infer_need_inputs(c, 2, 2)) || (s = need_outputs(c, 1, 1))) return s;
    /* Equal also takes bool (opset 11); the ordering comparisons take numbers only. */
    if ((s = amp_infer_dtype_in(c, c->in[0]->dtype, c->n->op == AMP_OP_EQUAL ? amp_dt_all : amp_dt_numeric))) return s;
    if ((s = same_dtype(c, 0, 1))) return s;
    int rank;
    int64_t dims[AMP_MAX_RANK];
    if ((s = binary_shape(c, &rank, dims))) return s;
    return set_out(c, 0, AMP_BOOL, rank, dims);
}

amp_status amp_infer_variadic(amp_infer *c) {
    amp_status s;
    if (c->nin < 1) return amp_infer_fail(c, AMP_ERR_INVALID_GRAPH, "needs at least one input");
    if ((s = amp_infer_need_inputs(c, c->nin, c->nin)) || (s = need_outputs(c, 1, 1))) return s;
    amp_op op = c->n->op;
    /* Min/Max take integers from opset 12; Sum/Mean stay floating point. */
    const amp_dtype *allowed = (op == AMP_OP_MIN || op == AMP_OP_MAX) && c->opset >= 12 ? amp_dt_numeric : amp_dt_float;
    if ((s = amp_infer_dtype_in(c, c->in[0]->dtype, allowed))) return s;
    int rank = c->in[0]->rank;
    int64_t dims[AMP_MAX_RANK];
    memcpy(dims, c->in[0]->dims, sizeof dims);
    for (int i = 1; i < c->nin; i++) {
        if ((s = same_dtype(c, 0, i))) return s;
        int64_t tmp[AMP_MAX_RANK];
        if ((s = amp_broadcast_shape(c, rank, dims, c->in[i]->rank, c->in[i]->dims, &rank, tmp))) return s;
        memcpy(dims, tmp, sizeof tmp);
    }
    amp_dtype dt = c->in[0]->dtype;
    return set_out(c, 0, dt, rank, dims);
}

amp_status amp_infer_where(amp_infer *c) {
    amp_status s;
    if ((s = amp_infer_need_inputs(c, 3, 3)) || (s = need_outputs(c, 1, 1))) return s;
    if ((s = amp_infer_dtype_in(c, c->in[0]->dtype, dt_bool))) return s;
    if ((s = amp_infer_dtype_in(c, c->in[1]->dtype, amp_dt_all)) || (s = same_dtype(c, 1, 2))) return s;
    int r1, r2;
    int64_t d1[AMP_MAX_RANK], d2[AMP_MAX_RANK];
    if ((s = amp_broadcast_shape(c, c->in[0]->rank, c->in[0]->dims, c->in[1]->rank, c->in[1]->dims, &r1, d1)) ||
        (s = amp_broadcast_shape(c, r1, d1, c->in[2]->rank, c->in[2]->dims, &r2, d2)))
        return s;
    return set_out(c, 0, c->in[1]->dtype, r2, d2);
}

/* ---- unary -------------------------------------------------------------------------------- */

static const amp_dtype *unary_dtypes(amp_op op) {
    switch (op) {
    case AMP_OP_RELU: case AMP_OP_NEG: return amp_dt_signed;
    case AMP_OP_ABS: case AMP_OP_SIGN: case AMP_OP_ERF: case AMP_OP_SHRINK: return amp_dt_numeric;
    case AMP_OP_NOT: return dt_bool;
    case AMP_OP_IDENTITY: return amp_dt_all;
    default: return amp_dt_float;
    }
}

amp_status amp_infer_unary(amp_infer *c) {
    amp_status s;
    if ((s = amp_infer_need_inputs(c, 1, 1)) || (s = need_outputs(c, 1, 1))) return s;
    const amp_tinfo *x = c->in[0];
    if ((s = amp_infer_dtype_in(c, x->dtype, unary_dtypes(c->n->op)))) return s;
    switch (c->n->op) {
    case AMP_OP_GELU: {
        const char *ap = amp_attr_str(c->n, "approximate", "none");
        if (strcmp(ap, "none") != 0 && strcmp(ap, "tanh") != 0)
            return amp_infer_fail(c, AMP_ERR_INVALID_GRAPH, "approximate must be \"none\" or \"tanh\", is \"%s\"", ap);
        break;
    }
    case AMP_OP_CELU:
        if (amp_attr_float(c->n, "alpha", 1.0f) == 0.0f)
            return amp_infer_fail(c, AMP_ERR_INVALID_GRAPH, "alpha must not be 0");
        break;
    case AMP_OP_SHRINK:
        if (amp_attr_float(c->n, "lambd", 0.5f) < 0.0f)
            return amp_infer_fail(c, AMP_ERR_INVALID_GRAPH, "lambd must not be negative");
        break;
    default:
        break;
    }
    return set_out(c, 0, x->dtype, x->rank, x->dims);
}

amp_status amp_infer_isclass(amp_infer *c) {
    amp_status s;
    if ((s = amp_infer_need_inputs(c, 1, 1)) || (s = need_outputs(c, 1, 1))) return s;
    const amp_tinfo *x = c->in[0];
    if ((s = amp_infer_dtype_in(c, x->dtype, amp_dt_float))) return s;
    return set_out(c, 0, AMP_BOOL, x->rank, x->dims);
}

/* ---- Clip, Dropout ------------------------------------------------------------------------ */

static bool is_scalar_like(const amp_tinfo *t) {
    for (int i = 0; i < t->rank; i++)
        if (t->dims[i] != 1) return false;
    return true;
}

amp_status amp_infer_clip(amp_infer *c) {
    amp_status s;
    if (c->opset < 11) {
        if ((s = amp_infer_need_inputs(c, 1, 1))) return s;
    } else if ((s = amp_infer_need_inputs(c, 1, 3))) {
        return s;
    }
    if ((s = need_outputs(c, 1, 1))) return s;
    const amp_tinfo *x = c->in[0];
    /* Integer Clip arrived in opset 12. */
    if ((s = amp_infer_dtype_in(c, x->dtype, c->opset >= 12 ? amp_dt_numeric : amp_dt_float))) return s;
    for (int i = 1; i < c->nin; i++) {
        if (!c->in[i]) continue;
        if ((s = same_dtype(c, 0, i))) return s;
        if (!is_scalar_like(c->in[i]))
            return amp_infer_fail(c, AMP_ERR_SHAPE, "input %d (%s) must be a scalar", i, i == 1 ? "min" : "max");
    }
    return set_out(c, 0, x->dtype, x->rank, x->dims);
}

amp_status amp_infer_dropout(amp_infer *c) {
    amp_status s;
    if ((s = amp_infer_need_inputs(c, 1, c->opset >= 12 ? 3 : 1)) || (s = need_outputs(c, 1, 2))) return s;
    const amp_tinfo *x = c->in[0];
    if ((s = amp_infer_dtype_in(c, x->dtype, amp_dt_float))) return s;
    if (c->opset < 12) {
        float r = amp_attr_float(c->n, "ratio", 0.5f);
        if (!(r >= 0.0f && r <= 1.0f)) return amp_infer_fail(c, AMP_ERR_INVALID_GRAPH, "ratio %g is not in [0, 1]", r);
    } else {
        const amp_tinfo *ratio = c->nin > 1 ? c->in[1] : NULL;
        const amp_tinfo *train = c->nin > 2 ? c->in[2] : NULL;
        if (ratio) {
            if ((s = amp_infer_dtype_in(c, ratio->dtype, amp_dt_float))) return s;
            if (!is_scalar_like(ratio)) return amp_infer_fail(c, AMP_ERR_SHAPE, "ratio must be a scalar");
            if (ratio->value && ratio->value->numel == 1) {
                const amp_tensor *v = ratio->value;
                double r = v->dtype == AMP_F32    ? ((const float *)v->data)[0]
                           : v->dtype == AMP_F64  ? ((const double *)v->data)[0]
                           : v->dtype == AMP_F16  ? amp_f16_to_f32(((const uint16_t *)v->data)[0])
                                                  : amp_bf16_to_f32(((const uint16_t *)v->data)[0]);
                if (!(r >= 0.0 && r <= 1.0))
                    return amp_infer_fail(c, AMP_ERR_INVALID_GRAPH, "ratio %g is not in [0, 1]", r);
            }
        }
        if (train) {
            if ((s = amp_infer_dtype_in(c, train->dtype, dt_bool))) return s;
            if (!is_scalar_like(train)) return amp_infer_fail(c, AMP_ERR_SHAPE, "training_mode must be a scalar");
        }
    }
    if ((s = set_out(c, 0, x->dtype, x->rank, x->dims))) return s;
    /* The mask was of the data's type until opset 10 made it bool. */
    return set_out(c, 1, c->opset >= 10 ? AMP_BOOL : x->dtype, x->rank, x->dims);
}

/* ---- Cast, CastLike ----------------------------------------------------------------------- */

/* ONNX TensorProto.DataType names, for messages and for Cast-1's string `to`. */
static const char *const onnx_type_names[] = {
    "UNDEFINED", "FLOAT", "UINT8", "INT8", "UINT16", "INT16", "INT32", "INT64", "STRING", "BOOL",
    "FLOAT16", "DOUBLE", "UINT32", "UINT64", "COMPLEX64", "COMPLEX128", "BFLOAT16", "FLOAT8E4M3FN",
    "FLOAT8E4M3FNUZ", "FLOAT8E5M2", "FLOAT8E5M2FNUZ", "UINT4", "INT4", "FLOAT4E2M1"};
#define N_ONNX_TYPES ((int64_t)(sizeof onnx_type_names / sizeof onnx_type_names[0]))

static bool held_dtype(int64_t t) {
    switch (t) {
    case AMP_F32: case AMP_F16: case AMP_BF16: case AMP_F64: case AMP_I64: case AMP_I32: case AMP_I16:
    case AMP_I8: case AMP_U64: case AMP_U32: case AMP_U16: case AMP_U8: case AMP_BOOL:
        return true;
    default:
        return false;
    }
}

amp_status amp_infer_cast(amp_infer *c) {
    amp_status s;
    bool like = c->n->op == AMP_OP_CAST_LIKE;
    if ((s = amp_infer_need_inputs(c, like ? 2 : 1, like ? 2 : 1)) || (s = need_outputs(c, 1, 1))) return s;
    const amp_tinfo *x = c->in[0];
    if ((s = amp_infer_dtype_in(c, x->dtype, amp_dt_all))) return s;
    int64_t to;
    if (like) {
        to = c->in[1]->dtype;
    } else {
        const amp_attr *a = amp_node_attr(c->n, "to");
        if (!a) return amp_infer_fail(c, AMP_ERR_INVALID_GRAPH, "attribute 'to' is required");
        if (a->kind == AMP_ATTR_INT) {
            to = a->i;
        } else if (a->kind == AMP_ATTR_STRING) { /* Cast-1 named the type */
            to = -1;
            for (int64_t i = 1; i < N_ONNX_TYPES; i++)
                if (a->s && strcmp(a->s, onnx_type_names[i]) == 0) to = i;
            if (to < 0) return amp_infer_fail(c, AMP_ERR_INVALID_GRAPH, "unknown type name '%s' in 'to'", a->s ? a->s : "");
        } else {
            return amp_infer_fail(c, AMP_ERR_INVALID_GRAPH, "attribute 'to' must be an int");
        }
    }
    if (!held_dtype(to)) {
        if (to > 0 && to < N_ONNX_TYPES)
            return amp_infer_fail(c, AMP_ERR_UNSUPPORTED, "cast to %s is not supported", onnx_type_names[to]);
        return amp_infer_fail(c, AMP_ERR_INVALID_GRAPH, "'to' = %lld is not an ONNX type", (long long)to);
    }
    return set_out(c, 0, (amp_dtype)to, x->rank, x->dims);
}

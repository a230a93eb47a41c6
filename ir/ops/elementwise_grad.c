/* Gradients of the elementwise ops (ir/grad.h): the builder amp_grad_elementwise, and the shape
 * inference of the family's training ops (listed and specified in ir/ops/elementwise_grad.def).
 *
 * Plain ONNX nodes carry the gradient where they are enough (Add, Sub, Mul, Div, Sum, Mean,
 * Where, Neg, Cast); fused training ops do the rest in one pass over memory. Every input of a
 * broadcasting op gets its gradient summed back to its own shape by SumToShape, skipped only
 * when the graph already proves the shapes equal. */
#include <stdio.h>
#include <string.h>

#include "ir/ops/elementwise.h"
#include "ir/grad.h"

/* ---- small graph-building helpers ---------------------------------------------------------- */

static amp_dtype vtype(const amp_grad_ctx *c, int v) { return c->g->values[v].dtype; }

/* A value's dims as far as they bind the run: an initializer's exact dims, or a graph input's
 * declared dims (the session rejects inputs that contradict them). value_info of intermediate
 * values is not checked against the run, so it is not trusted here. */
static bool bound_dim(const amp_value *v, int d, amp_dim *out) {
    if (v->init) {
        *out = (amp_dim){v->init->dims[d], -1};
        return true;
    }
    *out = v->dims[d];
    return v->is_input && (out->value >= 0 || out->sym >= 0);
}

static int bound_rank(const amp_value *v) { return v->init ? v->init->rank : v->is_input ? v->rank : -1; }

/* Two forward values whose shapes are provably equal for every run: same rank, every dim the
 * same number or the same symbol. Anything unknown is not equal. */
static bool same_static_shape(const amp_grad_ctx *c, int a, int b) {
    const amp_value *x = &c->g->values[a], *y = &c->g->values[b];
    int r = bound_rank(x);
    if (r < 0 || r != bound_rank(y)) return false;
    for (int d = 0; d < r; d++) {
        amp_dim p, q;
        if (!bound_dim(x, d, &p) || !bound_dim(y, d, &q)) return false;
        if (p.value >= 0 ? p.value != q.value : p.sym != q.sym) return false;
    }
    return true;
}

static amp_status add1(amp_grad_ctx *c, const char *op, const char *domain, int nin, const int *ins, int *out,
                       amp_node **made) {
    return amp_grad_node(c, op, domain, nin, ins, 1, out, made);
}

static amp_status unary_onnx(amp_grad_ctx *c, const char *op, int x, int *out) {
    return add1(c, op, "", 1, &x, out, NULL);
}

/* Binary ONNX node; before opset 7 the legacy broadcast flag (and axis) must be spelled out for
 * b to broadcast onto a. */
static amp_status binary_onnx(amp_grad_ctx *c, const char *op, int a, int b, bool legacy_bcast, bool has_axis,
                              int64_t axis, int *out) {
    int ins[2] = {a, b};
    amp_node *n = NULL;
    amp_status s = add1(c, op, "", 2, ins, out, &n);
    if (s || !legacy_bcast) return s;
    if ((s = amp_grad_attr_int(c, n, "broadcast", 1))) return s;
    return has_axis ? amp_grad_attr_int(c, n, "axis", axis) : AMP_OK;
}

/* The status of a failed amp_grad_const_scalar (the context already holds the message). */
static amp_status const_fail(amp_dtype dt) { return amp_dtype_is_float(dt) ? AMP_ERR_NO_MEMORY : AMP_ERR_UNSUPPORTED; }

static amp_status sum_to(amp_grad_ctx *c, int grad, int like, bool has_axis, int64_t axis, int *out) {
    int shape = -1;
    amp_status s = unary_onnx(c, "Shape", like, &shape);
    if (s) return s;
    int ins[2] = {grad, shape};
    amp_node *n = NULL;
    if ((s = add1(c, "SumToShape", AMP_TRAIN_DOMAIN, 2, ins, out, &n))) return s;
    return has_axis ? amp_grad_attr_int(c, n, "axis", axis) : AMP_OK;
}

/* grad (at some broadcast shape) summed back to the shape of the value like: Shape(like) then
 * SumToShape. Shared with other families (see ir/ops/elementwise_grad.def). */
amp_status amp_grad_sum_to_shape(amp_grad_ctx *c, int grad, int like, int *out) {
    return sum_to(c, grad, like, false, 0, out);
}

/* ---- binary arithmetic ------------------------------------------------------------------------ */

static bool legacy_broadcast_op(amp_op op) {
    return op == AMP_OP_ADD || op == AMP_OP_SUB || op == AMP_OP_MUL || op == AMP_OP_DIV || op == AMP_OP_POW;
}

/* How B lines up with A (the output) for a forward binary node. */
typedef struct align {
    bool legacy;       /* before opset 7: the output has A's shape */
    bool bcast;        /* legacy broadcast=1 (else the shapes are equal) */
    bool has_axis;
    int64_t axis;
    bool same;         /* shapes provably equal: no reduction anywhere */
} align;

/* PRelu before opset 7 puts a 1-D slope of C values on axis 1; which alignment applies depends
 * on shapes, so it is decided here from the declared shapes (value_info included: a wrong one
 * makes SumToShape fail on the real shapes, except when C equals the last dim as well):
 * 1 axis 1, 0 trailing, -1 unknown. */
static int legacy_prelu_axis(const amp_grad_ctx *c, int x, int slope) {
    const amp_value *a = &c->g->values[x], *b = &c->g->values[slope];
    int ar = a->init ? a->init->rank : a->rank, br = b->init ? b->init->rank : b->rank;
    if (br < 0) return -1;
    if (br != 1) return 0;
    amp_dim bd = b->init ? (amp_dim){b->init->dims[0], -1} : b->dims[0];
    if (bd.value == 1) return 0;
    if (ar < 0) return -1;
    if (ar < 2) return 0;
    amp_dim ad = a->init ? (amp_dim){a->init->dims[1], -1} : a->dims[1];
    /* equal symbols: axis 1 is right, and when the common value is 1 both alignments agree */
    if (bd.sym >= 0 && bd.sym == ad.sym) return 1;
    if (bd.value < 0 || ad.value < 0) return -1;
    return bd.value == ad.value ? 1 : 0;
}

static amp_status grad_binary(amp_grad_ctx *c) {
    const amp_node *f = amp_grad_fwd(c);
    amp_op op = f->op;
    int64_t opset = amp_grad_opset(c);
    int a = amp_grad_in(c, 0), b = amp_grad_in(c, 1), y = amp_grad_out(c, 0), dy = c->dy[0];
    align al = {0};
    al.same = same_static_shape(c, a, b);
    if (opset < 7 && legacy_broadcast_op(op)) {
        al.legacy = true;
        al.bcast = amp_attr_int(f, "broadcast", 0) != 0;
        al.has_axis = al.bcast && amp_node_attr(f, "axis") != NULL;
        al.axis = amp_attr_int(f, "axis", 0);
        if (!al.bcast) al.same = true;
    }
    /* A's gradient needs no reduction when A has the output's shape: legacy (one-directional)
     * broadcasting and PRelu's X. */
    bool reduce_a = !al.same && !al.legacy && op != AMP_OP_PRELU;
    bool reduce_b = !al.same;
    if (op == AMP_OP_PRELU && opset < 7 && reduce_b && c->need[1]) {
        int ax = legacy_prelu_axis(c, a, b);
        if (ax < 0)
            return amp_seterr(c->ctx, AMP_ERR_UNSUPPORTED,
                              "node '%s': the slope gradient of PRelu before opset 7 needs the declared shapes of "
                              "X and slope (a 1-D slope may follow axis 1 or the last axis)",
                              f->name && f->name[0] ? f->name : f->op_type);
        al.has_axis = ax == 1;
        al.axis = 1;
    }
    amp_status s = AMP_OK;
    int ga = -1, gb = -1; /* gradients at the output shape, before reduction */
    bool neg_b = false;
    switch (op) {
    case AMP_OP_ADD: ga = gb = dy; break;
    case AMP_OP_SUB:
        ga = gb = dy;
        neg_b = true; /* negate after reducing: fewer elements */
        break;
    case AMP_OP_MUL:
        if (c->need[0] && (s = binary_onnx(c, "Mul", dy, b, al.legacy && al.bcast, al.has_axis, al.axis, &ga)))
            return s;
        if (c->need[1] && (s = binary_onnx(c, "Mul", dy, a, false, false, 0, &gb))) return s;
        break;
    case AMP_OP_DIV: {
        /* dA = dY / B, dB = -dY A / B^2 = -(dY / B) Y */
        int t = -1;
        if ((s = binary_onnx(c, "Div", dy, b, al.legacy && al.bcast, al.has_axis, al.axis, &t))) return s;
        ga = t;
        if (c->need[1] && (s = binary_onnx(c, "Mul", t, y, false, false, 0, &gb))) return s;
        neg_b = true;
        break;
    }
    case AMP_OP_POW:
    case AMP_OP_PRELU:
        for (int w = 0; w < 2; w++) {
            if (!c->need[w]) continue;
            int ins[3] = {dy, a, b};
            amp_node *n = NULL;
            int *dst = w == 0 ? &ga : &gb;
            if ((s = add1(c, "BinaryGrad", AMP_TRAIN_DOMAIN, 3, ins, dst, &n)) || (s = amp_grad_copy_attrs(c, n)) ||
                (s = amp_grad_attr_str(c, n, "op", op == AMP_OP_POW ? "Pow" : "PRelu")) ||
                (s = amp_grad_attr_int(c, n, "wrt", w)) || (s = amp_grad_attr_int(c, n, "fwd_opset", opset)))
                return s;
        }
        break;
    default: return AMP_ERR_NOT_FOUND;
    }
    if (c->need[0]) {
        if (reduce_a) {
            if ((s = sum_to(c, ga, a, false, 0, &c->dx[0]))) return s;
        } else {
            c->dx[0] = ga;
        }
    }
    if (c->need[1]) {
        int r = gb;
        if (reduce_b && (s = sum_to(c, gb, b, al.has_axis, al.axis, &r))) return s;
        if (neg_b && (s = unary_onnx(c, "Neg", r, &r))) return s;
        c->dx[1] = r;
    }
    return AMP_OK;
}

/* ---- variadic Sum, Mean, Min, Max ---------------------------------------------------------- */

static amp_status grad_variadic(amp_grad_ctx *c) {
    const amp_node *f = amp_grad_fwd(c);
    amp_op op = f->op;
    int n = c->nin, dy = c->dy[0], y = amp_grad_out(c, 0);
    amp_dtype dt = vtype(c, y);
    int64_t opset = amp_grad_opset(c);
    if (n == 1) {
        /* one input: the op is the identity */
        if (c->need[0]) c->dx[0] = dy;
        return AMP_OK;
    }
    bool all_same = true;
    for (int i = 1; i < n; i++) all_same = all_same && same_static_shape(c, amp_grad_in(c, 0), amp_grad_in(c, i));
    /* MinMaxGrad reads every input plus dY and Y; a node has at most 32 inputs */
    int ins[32];
    bool minmax = op == AMP_OP_MIN || op == AMP_OP_MAX;
    if (minmax && n > 30)
        return amp_seterr(c->ctx, AMP_ERR_UNSUPPORTED, "node '%s': %s with more than 30 inputs has no gradient",
                          f->name && f->name[0] ? f->name : f->op_type, f->op_type);
    int count = -1;
    amp_status s;
    for (int i = 0; i < n; i++) {
        if (!c->need[i]) continue;
        int x = amp_grad_in(c, i), gi = dy;
        if (minmax) {
            ins[0] = dy;
            ins[1] = y;
            for (int j = 0; j < n; j++) ins[2 + j] = amp_grad_in(c, j);
            amp_node *m = NULL;
            if ((s = add1(c, "MinMaxGrad", AMP_TRAIN_DOMAIN, n + 2, ins, &gi, &m)) ||
                (s = amp_grad_attr_int(c, m, "index", i)))
                return s;
        }
        if (!all_same && (s = sum_to(c, gi, x, false, 0, &gi))) return s;
        if (op == AMP_OP_MEAN) {
            /* divide by n after the reduction (fewer elements); n is exact in every float type */
            if (count < 0 && (count = amp_grad_const_scalar(c, dt, (double)n)) < 0) return const_fail(dt);
            if ((s = binary_onnx(c, "Div", gi, count, opset < 7, false, 0, &gi))) return s;
        }
        c->dx[i] = gi;
    }
    return AMP_OK;
}

/* ---- Where ---------------------------------------------------------------------------------- */

static amp_status grad_where(amp_grad_ctx *c) {
    int cond = amp_grad_in(c, 0), dy = c->dy[0];
    amp_dtype dt = vtype(c, amp_grad_out(c, 0));
    int zero = amp_grad_const_scalar(c, dt, 0.0);
    if (zero < 0) return const_fail(dt);
    bool same = same_static_shape(c, cond, amp_grad_in(c, 1)) && same_static_shape(c, cond, amp_grad_in(c, 2));
    amp_status s;
    for (int i = 1; i <= 2; i++) {
        if (!c->need[i]) continue;
        int ins[3] = {cond, i == 1 ? dy : zero, i == 1 ? zero : dy}, gi = -1;
        if ((s = add1(c, "Where", "", 3, ins, &gi, NULL))) return s;
        if (!same && (s = sum_to(c, gi, amp_grad_in(c, i), false, 0, &gi))) return s;
        c->dx[i] = gi;
    }
    return AMP_OK;
}

/* ---- unary ---------------------------------------------------------------------------------- */

/* Ops whose UnaryGrad reads the forward output (see ir/ops/elementwise_grad.def). */
static bool reads_output(amp_op op) {
    switch (op) {
    case AMP_OP_RELU: case AMP_OP_SIGMOID: case AMP_OP_TANH: case AMP_OP_EXP: case AMP_OP_SQRT:
    case AMP_OP_RECIPROCAL: case AMP_OP_TAN:
        return true;
    default:
        return false;
    }
}

static bool unary_grad_op(amp_op op) {
    switch (op) {
    case AMP_OP_RELU: case AMP_OP_SIGMOID: case AMP_OP_TANH: case AMP_OP_EXP: case AMP_OP_SQRT:
    case AMP_OP_RECIPROCAL: case AMP_OP_TAN: case AMP_OP_LEAKY_RELU: case AMP_OP_ERF: case AMP_OP_GELU:
    case AMP_OP_LOG: case AMP_OP_ABS: case AMP_OP_SIN: case AMP_OP_COS: case AMP_OP_ASIN: case AMP_OP_ACOS:
    case AMP_OP_ATAN: case AMP_OP_SINH: case AMP_OP_COSH: case AMP_OP_ASINH: case AMP_OP_ACOSH: case AMP_OP_ATANH:
    case AMP_OP_SOFTPLUS: case AMP_OP_SOFTSIGN: case AMP_OP_ELU: case AMP_OP_SELU: case AMP_OP_CELU:
    case AMP_OP_HARD_SIGMOID: case AMP_OP_HARD_SWISH: case AMP_OP_THRESHOLDED_RELU: case AMP_OP_SHRINK:
    case AMP_OP_MISH:
        return true;
    default:
        return false;
    }
}

static amp_status grad_unary(amp_grad_ctx *c) {
    const amp_node *f = amp_grad_fwd(c);
    amp_op op = f->op;
    char name[64];
    snprintf(name, sizeof name, "%s", f->op_type);
    int ins[2] = {c->dy[0], reads_output(op) ? amp_grad_out(c, 0) : amp_grad_in(c, 0)};
    amp_node *n = NULL;
    amp_status s;
    if ((s = add1(c, "UnaryGrad", AMP_TRAIN_DOMAIN, 2, ins, &c->dx[0], &n)) || (s = amp_grad_copy_attrs(c, n)) ||
        (s = amp_grad_attr_str(c, n, "op", name)))
        return s;
    return AMP_OK;
}

/* ---- Clip, Dropout, Cast ------------------------------------------------------------------- */

static amp_status grad_clip(amp_grad_ctx *c) {
    int64_t opset = amp_grad_opset(c);
    int ins[4] = {c->dy[0], amp_grad_in(c, 0), amp_grad_in(c, 1), amp_grad_in(c, 2)};
    int nin = opset >= 11 ? (c->nin < 3 ? c->nin + 1 : 4) : 2;
    amp_node *n = NULL;
    amp_status s;
    /* min and max get no gradient: a bound moves the output only where X is outside it, and
     * bounds are rarely trained */
    if ((s = add1(c, "ClipGrad", AMP_TRAIN_DOMAIN, nin, ins, &c->dx[0], &n)) || (s = amp_grad_copy_attrs(c, n)) ||
        (s = amp_grad_attr_int(c, n, "fwd_opset", opset)))
        return s;
    return AMP_OK;
}

/* A known scalar bool, from an initializer; -1 when not known while building. */
static int known_bool(const amp_grad_ctx *c, int v) {
    if (v < 0) return -1;
    const amp_tensor *t = c->g->values[v].init;
    if (!t || t->numel != 1 || t->dtype != AMP_BOOL) return -1;
    return ((const uint8_t *)t->data)[0] != 0;
}

/* Dropout. Before opset 12, and without training_mode (or with a constant false), the forward
 * is the identity and so is its gradient. In training mode the gradient must drop exactly the
 * units the forward dropped: when the forward node outputs its mask, DropoutGrad reads it (one
 * byte per element, and X may be freed after the forward); otherwise DropoutGrad draws the mask
 * again from the same stream (the `seed` attribute, or a hash of X, which then stays alive),
 * because a builder cannot add an output to a forward node. */
static amp_status grad_dropout(amp_grad_ctx *c) {
    int64_t opset = amp_grad_opset(c);
    int train = c->nin > 2 ? amp_grad_in(c, 2) : -1;
    if (opset < 12 || train < 0 || known_bool(c, train) == 0) {
        c->dx[0] = c->dy[0];
        return AMP_OK;
    }
    int mask = amp_grad_out(c, 1);
    int ins[5] = {c->dy[0], mask, mask >= 0 ? -1 : amp_grad_in(c, 0), amp_grad_in(c, 1), train};
    amp_node *n = NULL;
    amp_status s;
    if ((s = add1(c, "DropoutGrad", AMP_TRAIN_DOMAIN, 5, ins, &c->dx[0], &n)) || (s = amp_grad_copy_attrs(c, n)))
        return s;
    return AMP_OK;
}

/* Cast and CastLike: the gradient is cast back to the input's dtype (how FP32 master weights
 * receive FP32 gradients through autocast's casts). CastLike's target only lends its dtype and
 * gets no gradient. */
static amp_status grad_cast(amp_grad_ctx *c) {
    int x = amp_grad_in(c, 0);
    amp_dtype from = vtype(c, x), to = vtype(c, amp_grad_out(c, 0));
    if (from == to) {
        c->dx[0] = c->dy[0];
        return AMP_OK;
    }
    if (!amp_dtype_is_float(from)) return AMP_OK;
    amp_node *n = NULL;
    amp_status s = add1(c, "Cast", "", 1, &c->dy[0], &c->dx[0], &n);
    if (s) return s;
    return amp_grad_attr_int(c, n, "to", (int64_t)from);
}

/* ---- the builder ----------------------------------------------------------------------------- */

amp_status amp_grad_elementwise(amp_grad_ctx *c) {
    amp_op op = amp_grad_fwd(c)->op;
    bool mine = unary_grad_op(op);
    switch (op) {
    case AMP_OP_ADD: case AMP_OP_SUB: case AMP_OP_MUL: case AMP_OP_DIV: case AMP_OP_POW: case AMP_OP_PRELU:
    case AMP_OP_MIN: case AMP_OP_MAX: case AMP_OP_SUM: case AMP_OP_MEAN: case AMP_OP_WHERE: case AMP_OP_NEG:
    case AMP_OP_IDENTITY: case AMP_OP_CLIP: case AMP_OP_DROPOUT: case AMP_OP_CAST: case AMP_OP_CAST_LIKE:
        mine = true;
        break;
    default: break;
    }
    if (!mine) return AMP_ERR_NOT_FOUND;
    /* only output 0 carries a gradient in this family (Dropout's mask is bool) */
    if (c->nout < 1 || c->dy[0] < 0) return AMP_OK;
    switch (op) {
    case AMP_OP_ADD: case AMP_OP_SUB: case AMP_OP_MUL: case AMP_OP_DIV: case AMP_OP_POW: case AMP_OP_PRELU:
        return grad_binary(c);
    case AMP_OP_MIN: case AMP_OP_MAX: case AMP_OP_SUM: case AMP_OP_MEAN: return grad_variadic(c);
    case AMP_OP_WHERE: return grad_where(c);
    case AMP_OP_NEG: return c->need[0] ? unary_onnx(c, "Neg", c->dy[0], &c->dx[0]) : AMP_OK;
    case AMP_OP_IDENTITY:
        if (c->need[0]) c->dx[0] = c->dy[0];
        return AMP_OK;
    case AMP_OP_CLIP: return c->need[0] ? grad_clip(c) : AMP_OK;
    case AMP_OP_DROPOUT: return c->need[0] ? grad_dropout(c) : AMP_OK;
    case AMP_OP_CAST: case AMP_OP_CAST_LIKE: return c->need[0] ? grad_cast(c) : AMP_OK;
    default: return c->need[0] ? grad_unary(c) : AMP_OK;
    }
}

/* ---- shape inference of the training ops ------------------------------------------------------ */

static amp_status set_out(amp_infer *c, amp_dtype dt, int rank, const int64_t *dims) {
    amp_status s = amp_shape_numel(rank, dims, dt, NULL, NULL);
    if (s == AMP_ERR_OVERFLOW) return amp_infer_fail(c, s, "output element count overflows");
    if (s) return amp_infer_fail(c, AMP_ERR_SHAPE, "invalid output shape");
    amp_tinfo *o = c->out[0];
    o->dtype = dt;
    o->rank = rank;
    for (int d = 0; d < rank; d++) o->dims[d] = dims[d];
    o->value = NULL;
    return AMP_OK;
}

static amp_status one_output(amp_infer *c) {
    if (c->nout != 1) return amp_infer_fail(c, AMP_ERR_INVALID_GRAPH, "expects 1 output, has %d", c->nout);
    return AMP_OK;
}

static amp_status need_same(amp_infer *c, int i, int j) {
    const amp_tinfo *a = c->in[i], *b = c->in[j];
    if (a->dtype != b->dtype)
        return amp_infer_fail(c, AMP_ERR_SHAPE, "input %d is %s but input %d is %s", i, amp_dtype_name(a->dtype), j,
                              amp_dtype_name(b->dtype));
    if (!amp_tinfo_same_shape(a, b)) return amp_infer_fail(c, AMP_ERR_SHAPE, "inputs %d and %d differ in shape", i, j);
    return AMP_OK;
}

static bool scalar_like(const amp_tinfo *t) {
    for (int d = 0; d < t->rank; d++)
        if (t->dims[d] != 1) return false;
    return true;
}

/* b's dims placed into a rank-r frame at offset off (1 elsewhere); false when they do not fit. */
static bool place(const amp_tinfo *b, int r, int off, int64_t *ed) {
    if (off < 0 || off + b->rank > r) return false;
    for (int d = 0; d < r; d++) ed[d] = 1;
    for (int d = 0; d < b->rank; d++) ed[off + d] = b->dims[d];
    return true;
}

/* t broadcasts onto dims (rank r) at offset off: every dim 1 or equal. */
static amp_status check_onto(amp_infer *c, int i, int r, const int64_t *dims, int off) {
    int64_t ed[AMP_MAX_RANK];
    if (!place(c->in[i], r, off, ed))
        return amp_infer_fail(c, AMP_ERR_SHAPE, "input %d (rank %d) does not fit the gradient (rank %d)", i,
                              c->in[i]->rank, r);
    for (int d = 0; d < r; d++)
        if (ed[d] != 1 && ed[d] != dims[d])
            return amp_infer_fail(c, AMP_ERR_SHAPE, "input %d dim %d is %lld, cannot broadcast to %lld", i, d,
                                  (long long)ed[d], (long long)dims[d]);
    return AMP_OK;
}

amp_status amp_infer_sum_to_shape(amp_infer *c) {
    amp_status s;
    if ((s = amp_infer_need_inputs(c, 2, 2)) || (s = one_output(c))) return s;
    const amp_tinfo *g = c->in[0];
    if ((s = amp_infer_dtype_in(c, g->dtype, amp_dt_float))) return s;
    int64_t td[AMP_MAX_RANK];
    int tr = 0;
    if ((s = amp_infer_const_ints(c, 1, td, AMP_MAX_RANK, &tr))) return s;
    int off = g->rank - tr;
    const amp_attr *ax = amp_node_attr(c->n, "axis");
    if (ax) {
        if (ax->kind != AMP_ATTR_INT) return amp_infer_fail(c, AMP_ERR_INVALID_GRAPH, "axis must be an int");
        int64_t a = ax->i < 0 ? ax->i + g->rank : ax->i;
        if (a < 0 || a > g->rank)
            return amp_infer_fail(c, AMP_ERR_INVALID_GRAPH, "axis %lld is out of range for rank %d", (long long)ax->i,
                                  g->rank);
        off = (int)a;
    }
    if (off < 0 || off + tr > g->rank)
        return amp_infer_fail(c, AMP_ERR_SHAPE, "target rank %d does not fit the gradient's rank %d at dim %d", tr,
                              g->rank, off);
    for (int d = 0; d < tr; d++)
        if (td[d] != 1 && td[d] != g->dims[off + d])
            return amp_infer_fail(c, AMP_ERR_SHAPE, "target dim %d is %lld; it must be 1 or %lld", d,
                                  (long long)td[d], (long long)g->dims[off + d]);
    if ((s = set_out(c, g->dtype, tr, td))) return s;
    if ((s = amp_shape_numel(g->rank, g->dims, g->dtype, NULL, NULL)))
        return amp_infer_fail(c, AMP_ERR_SHAPE, "invalid gradient shape");
    return AMP_OK;
}

amp_status amp_infer_unary_grad(amp_infer *c) {
    amp_status s;
    if ((s = amp_infer_need_inputs(c, 2, 2)) || (s = one_output(c))) return s;
    if ((s = amp_infer_dtype_in(c, c->in[0]->dtype, amp_dt_float)) || (s = need_same(c, 0, 1))) return s;
    const char *name = amp_attr_str(c->n, "op", "");
    amp_op op = amp_op_lookup(name, "");
    if (!unary_grad_op(op))
        return amp_infer_fail(c, AMP_ERR_INVALID_GRAPH, "attribute op '%s' is not a unary op UnaryGrad knows", name);
    if (op == AMP_OP_GELU) {
        const char *ap = amp_attr_str(c->n, "approximate", "none");
        if (strcmp(ap, "none") != 0 && strcmp(ap, "tanh") != 0)
            return amp_infer_fail(c, AMP_ERR_INVALID_GRAPH, "approximate must be \"none\" or \"tanh\", is \"%s\"", ap);
    }
    if (op == AMP_OP_CELU && amp_attr_float(c->n, "alpha", 1.0f) == 0.0f)
        return amp_infer_fail(c, AMP_ERR_INVALID_GRAPH, "alpha must not be 0");
    return set_out(c, c->in[0]->dtype, c->in[0]->rank, c->in[0]->dims);
}

amp_status amp_infer_binary_grad(amp_infer *c) {
    amp_status s;
    if ((s = amp_infer_need_inputs(c, 3, 3)) || (s = one_output(c))) return s;
    const amp_tinfo *dy = c->in[0], *a = c->in[1], *b = c->in[2];
    const char *name = amp_attr_str(c->n, "op", "");
    bool prelu = strcmp(name, "PRelu") == 0;
    if (!prelu && strcmp(name, "Pow") != 0)
        return amp_infer_fail(c, AMP_ERR_INVALID_GRAPH, "attribute op must be \"Pow\" or \"PRelu\", is \"%s\"", name);
    int64_t wrt = amp_attr_int(c->n, "wrt", -1);
    if (wrt != 0 && wrt != 1) return amp_infer_fail(c, AMP_ERR_INVALID_GRAPH, "attribute wrt must be 0 or 1");
    int64_t fo = amp_attr_int(c->n, "fwd_opset", 17);
    if ((s = amp_infer_dtype_in(c, dy->dtype, amp_dt_float))) return s;
    if (a->dtype != dy->dtype)
        return amp_infer_fail(c, AMP_ERR_SHAPE, "input 1 is %s but the gradient is %s", amp_dtype_name(a->dtype),
                              amp_dtype_name(dy->dtype));
    if (prelu && b->dtype != a->dtype) return amp_infer_fail(c, AMP_ERR_SHAPE, "slope and X differ in dtype");
    if ((s = amp_infer_dtype_in(c, b->dtype, wrt == 1 ? amp_dt_float : amp_dt_numeric))) return s;
    /* A and B must broadcast to dY's shape by the forward's rule */
    if ((s = check_onto(c, 1, dy->rank, dy->dims, dy->rank - a->rank))) return s;
    int off = amp_binary_grad_b_offset(fo, prelu, amp_attr_int(c->n, "broadcast", 0) != 0,
                                       amp_node_attr(c->n, "axis") != NULL, amp_attr_int(c->n, "axis", 0), dy->rank,
                                       a->rank, b->rank, b->rank > 0 ? b->dims[0] : 1, a->rank > 1 ? a->dims[1] : 1);
    if ((s = check_onto(c, 2, dy->rank, dy->dims, off))) return s;
    if ((fo < 7 || prelu) && !amp_tinfo_same_shape(a, dy))
        return amp_infer_fail(c, AMP_ERR_SHAPE, "input 1 must have the gradient's shape (one-directional broadcast)");
    return set_out(c, c->in[1 + wrt]->dtype, dy->rank, dy->dims);
}

amp_status amp_infer_min_max_grad(amp_infer *c) {
    amp_status s;
    if (c->nin < 3) return amp_infer_fail(c, AMP_ERR_INVALID_GRAPH, "expects at least 3 inputs, has %d", c->nin);
    if ((s = amp_infer_need_inputs(c, c->nin, c->nin)) || (s = one_output(c))) return s;
    const amp_tinfo *dy = c->in[0];
    if ((s = amp_infer_dtype_in(c, dy->dtype, amp_dt_float)) || (s = need_same(c, 0, 1))) return s;
    int64_t idx = amp_attr_int(c->n, "index", -1);
    if (idx < 0 || idx >= c->nin - 2)
        return amp_infer_fail(c, AMP_ERR_INVALID_GRAPH, "attribute index %lld is not in [0, %d)", (long long)idx,
                              c->nin - 2);
    for (int i = 2; i < c->nin; i++) {
        if (c->in[i]->dtype != dy->dtype) return amp_infer_fail(c, AMP_ERR_SHAPE, "input %d differs in dtype", i);
        if ((s = check_onto(c, i, dy->rank, dy->dims, dy->rank - c->in[i]->rank))) return s;
    }
    return set_out(c, dy->dtype, dy->rank, dy->dims);
}

amp_status amp_infer_clip_grad(amp_infer *c) {
    amp_status s;
    if ((s = amp_infer_need_inputs(c, 2, 4)) || (s = one_output(c))) return s;
    if ((s = amp_infer_dtype_in(c, c->in[0]->dtype, amp_dt_float)) || (s = need_same(c, 0, 1))) return s;
    for (int i = 2; i < c->nin; i++) {
        if (!c->in[i]) continue;
        if (c->in[i]->dtype != c->in[1]->dtype) return amp_infer_fail(c, AMP_ERR_SHAPE, "input %d differs in dtype", i);
        if (!scalar_like(c->in[i])) return amp_infer_fail(c, AMP_ERR_SHAPE, "input %d must be a scalar", i);
    }
    return set_out(c, c->in[0]->dtype, c->in[0]->rank, c->in[0]->dims);
}

amp_status amp_infer_dropout_grad(amp_infer *c) {
    amp_status s;
    if ((s = amp_infer_need_inputs(c, 1, 5)) || (s = one_output(c))) return s;
    const amp_tinfo *dy = c->in[0];
    const amp_tinfo *mask = c->nin > 1 ? c->in[1] : NULL, *x = c->nin > 2 ? c->in[2] : NULL;
    const amp_tinfo *ratio = c->nin > 3 ? c->in[3] : NULL, *train = c->nin > 4 ? c->in[4] : NULL;
    if ((s = amp_infer_dtype_in(c, dy->dtype, amp_dt_float))) return s;
    if (!mask && !x) return amp_infer_fail(c, AMP_ERR_INVALID_GRAPH, "needs the mask (input 1) or X (input 2)");
    if (mask && !amp_tinfo_same_shape(mask, dy)) return amp_infer_fail(c, AMP_ERR_SHAPE, "mask and gradient differ in shape");
    if (x && (s = need_same(c, 0, 2))) return s;
    if (ratio) {
        if ((s = amp_infer_dtype_in(c, ratio->dtype, amp_dt_float))) return s;
        if (!scalar_like(ratio)) return amp_infer_fail(c, AMP_ERR_SHAPE, "ratio must be a scalar");
    }
    if (train && (train->dtype != AMP_BOOL || !scalar_like(train)))
        return amp_infer_fail(c, AMP_ERR_SHAPE, "training_mode must be a bool scalar");
    return set_out(c, dy->dtype, dy->rank, dy->dims);
}

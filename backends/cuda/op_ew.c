/* amprt's own CUDA kernels as an op family (cuda_backend.h): more elementwise ops. Pow with
 * numpy broadcasting and its BinaryGrad (with PRelu's), Clip (bounds as plan-time values, device
 * tensors or the attributes of opsets < 11) and ClipGrad, Where (three-way broadcasting, any
 * element type), the variadic Sum, Mean, Min and Max (broadcasting; the common case, every input
 * of the output's shape, one launch four elements at once), and ConstantOfShape. Kernels:
 * backends/cuda/k_ew.cu through kernels_ew.h. The unary math ops (Erf, Sqrt, Neg, Exp, ...) and
 * their UnaryGrad are op_kernels.c's, beside the other activations.
 *
 * As in op_kernels.c: why_not() says why a node cannot run here, supports() asks it, prepare()
 * fails with its answer naming the node; prepare reads attributes, plan-time values and geometry
 * once and keeps the launch parameters in the step's state; run only enqueues on cu->stream. */
#include <stdio.h>
#include <string.h>

#include "backends/cuda/cuda_backend.h"
#include "backends/cuda/op_util.h"
#include "backends/cuda/kernels_ew.h"
#include "base/elem.h"
#include "ir/ops/elementwise.h"

/* ---- shared ----------------------------------------------------------------------------------- */

/* an exponent's or slope's type (kernels_ew.h) */
static bool knum(amp_dtype t, amp_k_num *out) {
    switch (t) {
    case AMP_F32: *out = AMP_K_NUM_F32; return true;
    case AMP_F16: *out = AMP_K_NUM_F16; return true;
    case AMP_BF16: *out = AMP_K_NUM_BF16; return true;
    case AMP_I32: *out = AMP_K_NUM_I32; return true;
    case AMP_I64: *out = AMP_K_NUM_I64; return true;
    default: return false;
    }
}

static amp_k_dtype kd(amp_dtype t) {
    amp_k_dtype d = AMP_K_F32;
    kdtype(t, &d);
    return d;
}

static bool all_float_as(const amp_tensor *t, const amp_tensor *like) {
    amp_k_dtype d;
    return t && like && t->dtype == like->dtype && kdtype(t->dtype, &d);
}

/* The geometry of inputs first .. first + nin - 1 broadcast to output 0. */
static bool plan_n(const amp_kernel *k, int first, int nin, amp_k_nbc *g) {
    int ranks[AMP_K_NBC_IN];
    const int64_t *dims[AMP_K_NBC_IN];
    for (int i = 0; i < nin; i++) {
        ranks[i] = k->in[first + i]->rank;
        dims[i] = k->in[first + i]->dims;
    }
    return amp_k_nbc_plan(k->out[0]->rank, k->out[0]->dims, nin, ranks, dims, g);
}

/* ---- Pow ---------------------------------------------------------------------------------------- */

typedef struct pow_state {
    amp_k_dtype dt;
    bool mixed;   /* the exponent's type differs from the base's: in double */
    amp_k_num bt;
    amp_k_nbc g;
} pow_state;

/* Pow's geometry: B right-aligned or, before opset 7 with broadcast = 1 and an axis, placed at
 * that axis (negative: from A's end), as the CPU's align_dims places it. */
static bool pow_plan(const amp_kernel *k, amp_k_nbc *g) {
    const amp_tensor *a = k->in[0], *b = k->in[1], *y = k->out[0];
    int off = y->rank - b->rank;
    if (k->opset < 7 && amp_attr_int(k->n, "broadcast", 0) && amp_node_attr(k->n, "axis")) {
        const int64_t ax = amp_attr_int(k->n, "axis", 0);
        off = (int)(ax < 0 ? ax + a->rank : ax);
    }
    if (off < 0 || off + b->rank > y->rank) return false;
    int64_t bd[AMP_MAX_RANK];
    for (int i = 0; i < y->rank; i++) bd[i] = 1;
    for (int i = 0; i < b->rank; i++) bd[off + i] = b->dims[i];
    const int ranks[2] = {a->rank, y->rank};
    const int64_t *dims[2] = {a->dims, bd};
    return amp_k_nbc_plan(y->rank, y->dims, 2, ranks, dims, g);
}

static const char *why_pow(const amp_kernel *k) {
    const amp_tensor *a = k->in[0], *b = in_opt(k, 1), *y = k->out[0];
    amp_k_nbc g;
    if (!b) return "needs two inputs";
    amp_k_num bt;
    if (!all_float_as(a, y) || !knum(b->dtype, &bt)) return "runs f32, f16 and bf16 bases, float or int32/int64 exponents";
    if (!pow_plan(k, &g)) return "inputs do not broadcast to the output";
    return NULL;
}

static amp_status prepare_pow(const amp_kernel *k, void **state) {
    amp_status s = new_state(k, sizeof(pow_state), state);
    if (s) return s;
    pow_state *p = *state;
    const amp_tensor *a = k->in[0], *b = k->in[1];
    p->dt = kd(a->dtype);
    p->mixed = b->dtype != a->dtype;
    knum(b->dtype, &p->bt);
    pow_plan(k, &p->g);
    return AMP_OK;
}

static amp_status run_pow(amp_cuda *cu, const amp_kernel *k, void *state) {
    const pow_state *p = state;
    const void *a = k->in[0]->data, *b = k->in[1]->data;
    if (p->mixed) return LAUNCH(k, amp_k_pow_mixed(cu->stream, p->dt, p->bt, &p->g, a, b, k->out[0]->data));
    return LAUNCH(k, amp_k_pow(cu->stream, p->dt, &p->g, a, b, k->out[0]->data));
}

/* ---- Clip, ClipGrad ----------------------------------------------------------------------------- */

typedef struct clip_state {
    amp_k_dtype dt;
    float lo, hi;
    int lo_in, hi_in; /* the input read on the device at run (its value was not known while planning), or -1 */
} clip_state;

/* A bound given as an optional input; absent when omitted or empty (as the CPU reads it). */
static const amp_tensor *bound_input(const amp_kernel *k, int i) {
    const amp_tensor *t = in_opt(k, i);
    return t && t->numel > 0 ? t : NULL;
}

/* Clip reads X at 0 and its bounds at 1, 2 (opset >= 11); ClipGrad X at 1 and the forward's
 * bounds at 2, 3 (fwd_opset >= 11). Before opset 11 the bounds are float attributes. */
static int64_t clip_opset(const amp_kernel *k, bool grad) { return grad ? amp_attr_int(k->n, "fwd_opset", 17) : k->opset; }

static const char *why_clip(const amp_kernel *k, bool grad) {
    const amp_tensor *x = in_opt(k, grad ? 1 : 0), *y = k->out[0];
    if (!x || (grad && !k->in[0])) return grad ? "needs dY and X" : "needs X";
    if (!all_float_as(x, y) || (grad && !all_float_as(k->in[0], y))) return "runs f32, f16 and bf16 of one dtype";
    if (x->numel != y->numel || (grad && k->in[0]->numel != y->numel)) return "inputs and output differ in size";
    if (clip_opset(k, grad) >= 11)
        for (int i = 0; i < 2; i++) {
            const amp_tensor *b = bound_input(k, (grad ? 2 : 1) + i);
            if (b && b->dtype != x->dtype) return "has min or max of another dtype than X's";
        }
    return NULL;
}

static amp_status prepare_clip(const amp_kernel *k, bool grad, void **state) {
    amp_status s = new_state(k, sizeof(clip_state), state);
    if (s) return s;
    clip_state *p = *state;
    const amp_tensor *x = k->in[grad ? 1 : 0];
    p->dt = kd(x->dtype);
    const bool old = clip_opset(k, grad) < 11;
    p->lo = old ? amp_attr_float(k->n, "min", -INFINITY) : -INFINITY;
    p->hi = old ? amp_attr_float(k->n, "max", INFINITY) : INFINITY;
    p->lo_in = p->hi_in = -1;
    for (int i = 0; !old && i < 2; i++) {
        const int at = (grad ? 2 : 1) + i;
        const amp_tensor *b = bound_input(k, at);
        if (!b) continue;
        /* a value known while planning is host memory now; else read on the device at run */
        if (b->data) *(i ? &p->hi : &p->lo) = (float)amp_ld(b->dtype, b->data, 0);
        else *(i ? &p->hi_in : &p->lo_in) = at;
    }
    return AMP_OK;
}

static const void *bound_ptr(const amp_kernel *k, int i) { return i >= 0 ? k->in[i]->data : NULL; }

static amp_status run_clip(amp_cuda *cu, const amp_kernel *k, void *state) {
    const clip_state *p = state;
    return LAUNCH(k, amp_k_clip(cu->stream, p->dt, p->lo, p->hi, bound_ptr(k, p->lo_in), bound_ptr(k, p->hi_in),
                                k->in[0]->data, k->out[0]->data, k->out[0]->numel));
}

static amp_status run_clip_grad(amp_cuda *cu, const amp_kernel *k, void *state) {
    const clip_state *p = state;
    return LAUNCH(k, amp_k_clip_grad(cu->stream, p->dt, p->lo, p->hi, bound_ptr(k, p->lo_in), bound_ptr(k, p->hi_in),
                                     k->in[0]->data, k->in[1]->data, k->out[0]->data, k->out[0]->numel));
}

/* ---- Where -------------------------------------------------------------------------------------- */

typedef struct where_state {
    int es;
    amp_k_nbc g;
} where_state;

static const char *why_where(const amp_kernel *k) {
    const amp_tensor *c = k->in[0], *a = in_opt(k, 1), *b = in_opt(k, 2), *y = k->out[0];
    amp_k_nbc g;
    if (k->nin != 3 || !a || !b) return "needs three inputs";
    if (c->dtype != AMP_BOOL) return "needs a bool condition";
    if (a->dtype != y->dtype || b->dtype != y->dtype) return "needs both branches of the output's dtype";
    size_t es = amp_dtype_size(y->dtype);
    if (es != 1 && es != 2 && es != 4 && es != 8) return "moves elements of 1, 2, 4 or 8 bytes only";
    if (!plan_n(k, 0, 3, &g)) return "inputs do not broadcast to the output";
    return NULL;
}

static amp_status prepare_where(const amp_kernel *k, void **state) {
    amp_status s = new_state(k, sizeof(where_state), state);
    if (s) return s;
    where_state *p = *state;
    p->es = (int)amp_dtype_size(k->out[0]->dtype);
    plan_n(k, 0, 3, &p->g);
    return AMP_OK;
}

static amp_status run_where(amp_cuda *cu, const amp_kernel *k, void *state) {
    const where_state *p = state;
    return LAUNCH(k, amp_k_where(cu->stream, p->es, &p->g, k->in[0]->data, k->in[1]->data, k->in[2]->data,
                                 k->out[0]->data));
}

/* ---- Sum, Mean, Min, Max ------------------------------------------------------------------------ */

typedef struct var_state {
    amp_k_varop op;
    amp_k_dtype dt;
    amp_k_nbc plans[]; /* amp_k_variadic_launches(nin) */
} var_state;

static amp_k_varop varop_of(amp_op op) {
    switch (op) {
    case AMP_OP_MEAN: return AMP_K_VMEAN;
    case AMP_OP_MIN: return AMP_K_VMIN;
    case AMP_OP_MAX: return AMP_K_VMAX;
    default: return AMP_K_VSUM;
    }
}

static bool plan_var(const amp_kernel *k, amp_k_nbc *plans) {
    int ranks[AMP_K_VAR_MAX];
    const int64_t *dims[AMP_K_VAR_MAX];
    for (int i = 0; i < k->nin; i++) {
        ranks[i] = k->in[i]->rank;
        dims[i] = k->in[i]->dims;
    }
    return amp_k_variadic_plan(k->out[0]->rank, k->out[0]->dims, k->nin, ranks, dims, plans);
}

static const char *why_var(const amp_kernel *k) {
    const amp_tensor *y = k->out[0];
    if (k->nin > AMP_K_VAR_MAX) return "has more inputs than this backend folds (64)";
    for (int i = 0; i < k->nin; i++)
        if (!all_float_as(k->in[i], y)) return "runs f32, f16 and bf16 inputs of the output's dtype";
    if (k->nin == 1) return k->in[0]->numel == y->numel ? NULL : "output size differs from the input's";
    amp_k_nbc plans[(AMP_K_VAR_MAX + AMP_K_NBC_IN - 2) / (AMP_K_NBC_IN - 1) + 1];
    if (!plan_var(k, plans)) return "inputs do not broadcast to the output";
    return NULL;
}

static amp_status prepare_var(const amp_kernel *k, void **state, size_t *ws_bytes) {
    if (k->nin == 1) return AMP_OK; /* a copy */
    const int nl = amp_k_variadic_launches(k->nin);
    amp_status s = new_state(k, sizeof(var_state) + (size_t)nl * sizeof(amp_k_nbc), state);
    if (s) return s;
    var_state *p = *state;
    p->op = varop_of(k->n->op);
    p->dt = kd(k->out[0]->dtype);
    plan_var(k, p->plans);
    *ws_bytes = amp_k_variadic_ws(p->dt, k->nin, k->out[0]->numel);
    return AMP_OK;
}

static amp_status run_var(amp_cuda *cu, const amp_kernel *k, void *state) {
    if (k->nin == 1) return copy_bytes(cu, k, k->out[0]->data, k->in[0]->data, k->out[0]->nbytes);
    const var_state *p = state;
    const void *in[AMP_K_VAR_MAX];
    for (int i = 0; i < k->nin; i++) in[i] = k->in[i]->data;
    return LAUNCH(k, amp_k_variadic(cu->stream, p->op, p->dt, p->plans, k->nin, in, k->ws, k->out[0]->data));
}

/* ---- BinaryGrad (Pow, PRelu) -------------------------------------------------------------------- */

typedef struct bgrad_state {
    amp_k_bgop op;
    amp_k_dtype dyt, at, ot;
    amp_k_num bt;
    amp_k_nbc g;
} bgrad_state;

/* The kernel and the geometry (B placed where the forward placed it, A right-aligned). */
static const char *bgrad_plan(const amp_kernel *k, bgrad_state *p) {
    const amp_tensor *dy = k->in[0], *a = in_opt(k, 1), *b = in_opt(k, 2), *out = k->out[0];
    if (k->nin != 3 || !a || !b) return "needs dY, A and B";
    const char *op = amp_attr_str(k->n, "op", "");
    const bool prelu = strcmp(op, "PRelu") == 0, pw = strcmp(op, "Pow") == 0;
    const int64_t wrt = amp_attr_int(k->n, "wrt", -1);
    if ((!prelu && !pw) || (wrt != 0 && wrt != 1)) return "has an op other than Pow or PRelu, or a bad wrt";
    amp_k_dtype d;
    amp_k_num bn;
    if (!kdtype(dy->dtype, &d) || !kdtype(a->dtype, &d) || !knum(b->dtype, &bn))
        return "runs f32, f16 and bf16, B also int32 or int64";
    if (out->dtype != (wrt ? b : a)->dtype || !kdtype(out->dtype, &d) || out->numel != dy->numel ||
        out->rank != dy->rank)
        return "output does not match the forward";
    const int r = dy->rank;
    const int boff = amp_binary_grad_b_offset(amp_attr_int(k->n, "fwd_opset", 17), prelu,
                                              amp_attr_int(k->n, "broadcast", 0) != 0,
                                              amp_node_attr(k->n, "axis") != NULL, amp_attr_int(k->n, "axis", 0), r,
                                              a->rank, b->rank, b->rank > 0 ? b->dims[0] : 1,
                                              a->rank > 1 ? a->dims[1] : 1);
    if (boff < 0 || boff + b->rank > r || a->rank > r) return "A or B does not fit the gradient's shape";
    int64_t bd[AMP_MAX_RANK];
    for (int i = 0; i < r; i++) bd[i] = 1;
    for (int i = 0; i < b->rank; i++) bd[boff + i] = b->dims[i];
    const int ranks[3] = {r, a->rank, r};
    const int64_t *dims[3] = {dy->dims, a->dims, bd};
    if (!amp_k_nbc_plan(r, dy->dims, 3, ranks, dims, &p->g)) return "A or B does not broadcast to the gradient's shape";
    p->op = pw ? (wrt ? AMP_K_POW_GRAD_EXP : AMP_K_POW_GRAD_BASE) : (wrt ? AMP_K_PRELU_GRAD_SLOPE : AMP_K_PRELU_GRAD_X);
    p->dyt = kd(dy->dtype);
    p->at = kd(a->dtype);
    p->bt = bn;
    p->ot = kd(out->dtype);
    return NULL;
}

static const char *why_bgrad(const amp_kernel *k) {
    bgrad_state p;
    return bgrad_plan(k, &p);
}

static amp_status prepare_bgrad(const amp_kernel *k, void **state) {
    amp_status s = new_state(k, sizeof(bgrad_state), state);
    if (s) return s;
    bgrad_plan(k, *state);
    return AMP_OK;
}

static amp_status run_bgrad(amp_cuda *cu, const amp_kernel *k, void *state) {
    const bgrad_state *p = state;
    return LAUNCH(k, amp_k_binary_grad(cu->stream, p->op, &p->g, p->dyt, p->at, p->bt, p->ot, k->in[0]->data,
                                       k->in[1]->data, k->in[2]->data, k->out[0]->data));
}

/* ---- ConstantOfShape ---------------------------------------------------------------------------- */

typedef struct fill_state {
    int es;           /* 0: all bytes zero (a memset) */
    uint64_t pattern;
} fill_state;

static const char *why_fill(const amp_kernel *k) {
    const amp_tensor *v = amp_attr_tensor(k->n, "value"), *y = k->out[0];
    if (!v) return NULL; /* f32 zeros */
    if (v->dtype != y->dtype || v->numel != 1) return "output does not match the value";
    size_t es = amp_dtype_size(y->dtype);
    if (es != 1 && es != 2 && es != 4 && es != 8) return "fills elements of 1, 2, 4 or 8 bytes only";
    return NULL;
}

static amp_status prepare_fill(const amp_kernel *k, void **state) {
    amp_status s = new_state(k, sizeof(fill_state), state);
    if (s) return s;
    fill_state *p = *state;
    const amp_tensor *v = amp_attr_tensor(k->n, "value");
    if (!v) return AMP_OK;
    size_t es = amp_dtype_size(v->dtype);
    memcpy(&p->pattern, v->data, es); /* little-endian: the low es bytes */
    p->es = p->pattern ? (int)es : 0;
    return AMP_OK;
}

static amp_status run_fill(amp_cuda *cu, const amp_kernel *k, void *state) {
    const fill_state *p = state;
    amp_tensor *y = k->out[0];
    if (y->nbytes == 0) return AMP_OK;
    if (!p->es) return AMP_CUDA_RT(k->ctx, cudaMemsetAsync(y->data, 0, y->nbytes, cu->stream));
    return LAUNCH(k, amp_k_fill(cu->stream, p->es, p->pattern, y->data, y->numel));
}

/* ---- MinMaxGrad ---------------------------------------------------------------------------------- */

typedef struct mmg_state {
    amp_k_dtype dt;
    int index;
    amp_k_nbc g;
} mmg_state;

static const char *why_mmg(const amp_kernel *k) {
    const amp_tensor *dy = k->in[0], *out = k->out[0];
    if (k->nin < 3) return "needs dY, Y and the forward's inputs";
    if (k->nin > AMP_K_NBC_IN) return "differentiates Min or Max of more than 6 inputs";
    const int64_t index = amp_attr_int(k->n, "index", -1);
    if (index < 0 || index >= k->nin - 2) return "has an index outside the forward's inputs";
    for (int i = 0; i < k->nin; i++)
        if (!all_float_as(k->in[i], dy)) return "runs f32, f16 and bf16 inputs of one dtype";
    if (!all_float_as(out, dy) || out->numel != dy->numel || k->in[1]->numel != dy->numel)
        return "output, dY and Y differ";
    amp_k_nbc g;
    if (!plan_n(k, 0, k->nin, &g)) return "inputs do not broadcast to the gradient's shape";
    return NULL;
}

static amp_status prepare_mmg(const amp_kernel *k, void **state) {
    amp_status s = new_state(k, sizeof(mmg_state), state);
    if (s) return s;
    mmg_state *p = *state;
    p->dt = kd(k->in[0]->dtype);
    p->index = (int)amp_attr_int(k->n, "index", -1);
    plan_n(k, 0, k->nin, &p->g);
    return AMP_OK;
}

static amp_status run_mmg(amp_cuda *cu, const amp_kernel *k, void *state) {
    const mmg_state *p = state;
    const void *in[AMP_K_NBC_IN];
    for (int i = 0; i < k->nin; i++) in[i] = k->in[i]->data;
    return LAUNCH(k, amp_k_min_max_grad(cu->stream, p->dt, &p->g, p->index, in, k->out[0]->data));
}

/* ---- Dropout, DropoutGrad ---------------------------------------------------------------------- */

typedef enum drop_kind { DROP_COPY = 0, DROP_MASK, DROP_COUNTER, DROP_MT } drop_kind;

typedef struct drop_state {
    drop_kind kind;
    amp_k_dtype dt;
    double ratio, scale;
    uint32_t seed;
    uint64_t ones;   /* the identity's mask: 1 in the mask's dtype */
    int ones_es;
} drop_state;

/* A scalar input's value known while planning: *v (as a double) and true; absent: true and
 * *v untouched; given but unknown: false. */
static bool plan_scalar(const amp_tensor *t, double *v) {
    if (!t || t->numel == 0) return true;
    if (!t->data) return false;
    *v = amp_ld(t->dtype, t->data, 0);
    return true;
}

/* The decision as the CPU kernels make it (backends/cpu/elementwise_cast.c, elementwise_grad.c);
 * NULL or why not. */
static const char *drop_plan(const amp_kernel *k, bool grad, drop_state *p) {
    const amp_tensor *x = k->in[0], *y = k->out[0];
    const amp_tensor *mask_out = !grad && k->nout > 1 ? k->out[1] : NULL;
    const amp_tensor *mask_in = grad ? in_opt(k, 1) : NULL, *gx = grad ? in_opt(k, 2) : NULL;
    memset(p, 0, sizeof *p);
    if (!all_float_as(x, y) || x->numel != y->numel) return "runs f32, f16 and bf16, the output like the input";
    p->dt = kd(x->dtype);
    double ratio = 0.5, train = 0.0;
    if (grad || k->opset >= 12) {
        const int ri = grad ? 3 : 1;
        if (!plan_scalar(in_opt(k, ri), &ratio) || !plan_scalar(in_opt(k, ri + 1), &train))
            return "needs ratio and training_mode known while planning";
    }
    if (mask_out && mask_out->numel != x->numel) return "has a mask unlike the input";
    if (train == 0.0 || ratio <= 0.0) {
        p->kind = DROP_COPY;
        if (mask_out) { /* all ones, in the mask's dtype (bool since opset 10, X's before) */
            switch (mask_out->dtype) {
            case AMP_BOOL: p->ones = 1, p->ones_es = 1; break;
            case AMP_F32: p->ones = 0x3f800000u, p->ones_es = 4; break;
            case AMP_F16: p->ones = 0x3c00u, p->ones_es = 2; break;
            case AMP_BF16: p->ones = 0x3f80u, p->ones_es = 2; break;
            default: return "has a mask of a dtype this backend does not write";
            }
        }
        return NULL;
    }
    if (!(ratio <= 1.0)) return "has a ratio outside [0, 1]";
    if (mask_out && mask_out->dtype != AMP_BOOL) return "writes bool masks only";
    p->ratio = ratio;
    p->scale = ratio < 1.0 ? 1.0 / (1.0 - ratio) : 0.0;
    const amp_attr *sa = amp_node_attr_of(k->n, "seed", AMP_ATTR_INT);
    if (grad && mask_in) {
        if (mask_in->dtype != AMP_BOOL || mask_in->numel != x->numel) return "reads bool masks of dY's size only";
        p->kind = DROP_MASK;
    } else if (sa && sa->kind == AMP_ATTR_INT) {
        p->kind = DROP_MT;
        p->seed = (uint32_t)sa->i;
    } else {
        if (grad && !gx) return "needs the mask or X to draw the mask again";
        if (grad && gx->numel != x->numel) return "has X unlike dY";
        const amp_tensor *src = grad ? gx : x;
        size_t es = amp_dtype_size(src->dtype);
        if (es == 0 || es > 8) return "draws the mask from an X of an odd element size";
        p->kind = DROP_COUNTER;
    }
    return NULL;
}

static const char *why_drop(const amp_kernel *k, bool grad) {
    drop_state p;
    return drop_plan(k, grad, &p);
}

static amp_status prepare_drop(const amp_kernel *k, bool grad, void **state, size_t *ws_bytes) {
    amp_status s = new_state(k, sizeof(drop_state), state);
    if (s) return s;
    drop_state *p = *state;
    drop_plan(k, grad, p);
    if (p->kind == DROP_COUNTER) *ws_bytes = sizeof(uint64_t); /* the content seed */
    return AMP_OK;
}

static amp_status run_drop_common(amp_cuda *cu, const amp_kernel *k, const drop_state *p, bool grad) {
    const amp_tensor *x = k->in[0];
    amp_tensor *y = k->out[0], *mask = !grad && k->nout > 1 ? k->out[1] : NULL;
    uint8_t *mo = mask ? mask->data : NULL;
    switch (p->kind) {
    case DROP_COPY: {
        amp_status s = copy_bytes(cu, k, y->data, x->data, y->nbytes);
        if (!s && mask) s = LAUNCH(k, amp_k_fill(cu->stream, p->ones_es, p->ones, mask->data, mask->numel));
        return s;
    }
    case DROP_MASK:
        return LAUNCH(k, amp_k_dropout_mask(cu->stream, p->dt, p->scale, k->in[1]->data, x->data, y->data, y->numel));
    case DROP_MT:
        return LAUNCH(k, amp_k_dropout_mt(cu->stream, p->dt, !grad, p->seed, p->ratio, p->scale, x->data, y->data, mo,
                                          y->numel));
    default: {
        const amp_tensor *src = grad ? k->in[2] : x;
        return LAUNCH(k, amp_k_dropout_counter(cu->stream, p->dt, p->ratio, p->scale, src->data,
                                               (int)amp_dtype_size(src->dtype), src->numel, k->ws, x->data, y->data,
                                               mo, y->numel));
    }
    }
}

static amp_status run_drop(amp_cuda *cu, const amp_kernel *k, void *state) { return run_drop_common(cu, k, state, false); }
static amp_status run_drop_grad(amp_cuda *cu, const amp_kernel *k, void *state) {
    return run_drop_common(cu, k, state, true);
}

/* ---- the family --------------------------------------------------------------------------------- */

/* Why this family cannot run k (NULL: it can). */
static const char *why_not(const amp_kernel *k) {
    if (k->nout < 1 || !k->out[0]) return "needs its first output";
    if (k->n->op != AMP_OP_CONSTANT_OF_SHAPE && (k->nin < 1 || !k->in[0])) return "needs its first input";
    switch (k->n->op) {
    case AMP_OP_POW: return why_pow(k);
    case AMP_OP_CLIP: return why_clip(k, false);
    case AMP_OP_CLIP_GRAD: return why_clip(k, true);
    case AMP_OP_WHERE: return why_where(k);
    case AMP_OP_SUM:
    case AMP_OP_MEAN:
    case AMP_OP_MIN:
    case AMP_OP_MAX: return why_var(k);
    case AMP_OP_BINARY_GRAD: return why_bgrad(k);
    case AMP_OP_CONSTANT_OF_SHAPE: return why_fill(k);
    case AMP_OP_MIN_MAX_GRAD: return why_mmg(k);
    case AMP_OP_DROPOUT: return why_drop(k, false);
    case AMP_OP_DROPOUT_GRAD: return why_drop(k, true);
    default: return "is not an op of this family";
    }
}

static bool supports(amp_cuda *cu, const amp_kernel *k) {
    (void)cu;
    return why_not(k) == NULL;
}

static amp_status prepare(amp_cuda *cu, const amp_kernel *k, void **state, size_t *ws_bytes) {
    (void)cu;
    *state = NULL;
    *ws_bytes = 0;
    const char *why = why_not(k);
    if (why) {
        return refuse(k, in_opt(k, 0), why);
    }
    switch (k->n->op) {
    case AMP_OP_POW: return prepare_pow(k, state);
    case AMP_OP_CLIP: return prepare_clip(k, false, state);
    case AMP_OP_CLIP_GRAD: return prepare_clip(k, true, state);
    case AMP_OP_WHERE: return prepare_where(k, state);
    case AMP_OP_SUM:
    case AMP_OP_MEAN:
    case AMP_OP_MIN:
    case AMP_OP_MAX: return prepare_var(k, state, ws_bytes);
    case AMP_OP_BINARY_GRAD: return prepare_bgrad(k, state);
    case AMP_OP_CONSTANT_OF_SHAPE: return prepare_fill(k, state);
    case AMP_OP_MIN_MAX_GRAD: return prepare_mmg(k, state);
    case AMP_OP_DROPOUT: return prepare_drop(k, false, state, ws_bytes);
    case AMP_OP_DROPOUT_GRAD: return prepare_drop(k, true, state, ws_bytes);
    default: return AMP_OK;
    }
}

#define ENTRY(op, run) {AMP_OP_##op, supports, prepare, release_state, run}

const amp_cuda_op amp_cuda_ops_ew[] = {
    ENTRY(POW, run_pow),
    ENTRY(CLIP, run_clip),
    ENTRY(CLIP_GRAD, run_clip_grad),
    ENTRY(WHERE, run_where),
    ENTRY(SUM, run_var),
    ENTRY(MEAN, run_var),
    ENTRY(MIN, run_var),
    ENTRY(MAX, run_var),
    ENTRY(BINARY_GRAD, run_bgrad),
    ENTRY(CONSTANT_OF_SHAPE, run_fill),
    ENTRY(MIN_MAX_GRAD, run_mmg),
    ENTRY(DROPOUT, run_drop),
    ENTRY(DROPOUT_GRAD, run_drop_grad),
    {AMP_OP_UNKNOWN, NULL, NULL, NULL, NULL},
};

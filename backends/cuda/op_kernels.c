/* amprt's own CUDA kernels as an op family (cuda_backend.h): Cast and CastLike, Add, Sub, Mul
 * and Div with numpy broadcasting and SumToShape (their gradients' reduction), Relu and the
 * other activations whose math is shared with the CPU (LeakyRelu, Sigmoid, Tanh, Gelu) and their
 * UnaryGrad, MaxPool and MaxPoolGrad (1 or 2 spatial dims), the shape ops that only copy
 * (Reshape, Flatten, Squeeze, Unsqueeze, Identity, ReshapeGrad), Shape, and
 * SoftmaxCrossEntropyLoss with its gradient. Kernels: backends/cuda/k_*.cu through kernels.h.
 *
 * One function says why a node cannot run here (why_not); supports() asks it and prepare()
 * fails with its answer, naming the node, so a refusal is always explained. Prepare reads the
 * attributes and the geometry once per step and keeps the launch parameters in the step's
 * state; run only enqueues on cu->stream: no allocation, no synchronisation, no host read of
 * device memory. */
#include <stdio.h>
#include <string.h>

#include "backends/cuda/cuda_backend.h"
#include "backends/cuda/op_util.h"
#include "backends/cuda/kernels.h"
#include "ir/ops/conv.h"

/* ---- Cast, CastLike --------------------------------------------------------------------------- */

static const char *why_cast(const amp_kernel *k) {
    const amp_tensor *x = k->in[0], *y = k->out[0];
    if (!is_kfloat(x) || !is_kfloat(y)) return "casts only between f32, f16 and bf16";
    if (x->numel != y->numel) return "output size differs from the input's";
    return NULL;
}

static amp_status run_cast(amp_cuda *cu, const amp_kernel *k, void *state) {
    (void)state;
    const amp_tensor *x = k->in[0];
    amp_tensor *y = k->out[0];
    amp_k_dtype s = AMP_K_F32, d = AMP_K_F32;
    kdtype(x->dtype, &s);
    kdtype(y->dtype, &d);
    if (s == d) return copy_bytes(cu, k, y->data, x->data, y->nbytes);
    bool rtz = (k->n->flags & AMP_NODE_CAST_RTZ) != 0;
    return LAUNCH(k, amp_k_cast(cu->stream, s, d, rtz, x->data, y->data, x->numel));
}

/* ---- activations and UnaryGrad ---------------------------------------------------------------- */

typedef struct unary_state {
    amp_k_unary op;
    amp_k_dtype dt;
    float alpha, beta;
} unary_state;

/* The kernel of a forward op with its attributes (as the CPU kernels read them), or false. */
static bool unary_of(amp_op op, const amp_node *n, amp_k_unary *u, float *alpha, float *beta) {
    *alpha = *beta = 0.0f;
    switch (op) {
    case AMP_OP_RELU: *u = AMP_K_RELU; return true;
    case AMP_OP_LEAKY_RELU:
        *u = AMP_K_LEAKY_RELU;
        *alpha = amp_attr_float(n, "alpha", 0.01f);
        return true;
    case AMP_OP_SIGMOID: *u = AMP_K_SIGMOID; return true;
    case AMP_OP_TANH: *u = AMP_K_TANH; return true;
    case AMP_OP_GELU: {
        const char *ap = amp_attr_str(n, "approximate", "none");
        if (strcmp(ap, "tanh") == 0) *u = AMP_K_GELU_TANH;
        else if (strcmp(ap, "none") == 0) *u = AMP_K_GELU;
        else return false;
        return true;
    }
    case AMP_OP_ERF: *u = AMP_K_ERF; return true;
    case AMP_OP_SQRT: *u = AMP_K_SQRT; return true;
    case AMP_OP_NEG: *u = AMP_K_NEG; return true;
    case AMP_OP_EXP: *u = AMP_K_EXP; return true;
    case AMP_OP_LOG: *u = AMP_K_LOG; return true;
    case AMP_OP_ABS: *u = AMP_K_ABS; return true;
    case AMP_OP_RECIPROCAL: *u = AMP_K_RECIPROCAL; return true;
    case AMP_OP_SOFTPLUS: *u = AMP_K_SOFTPLUS; return true;
    case AMP_OP_ELU:
        *u = AMP_K_ELU;
        *alpha = amp_attr_float(n, "alpha", 1.0f);
        return true;
    case AMP_OP_HARD_SWISH: *u = AMP_K_HARD_SWISH; return true;
    case AMP_OP_HARD_SIGMOID:
        *u = AMP_K_HARD_SIGMOID;
        *alpha = amp_attr_float(n, "alpha", 0.2f);
        *beta = amp_attr_float(n, "beta", 0.5f);
        return true;
    default: return false;
    }
}

/* The forward op a UnaryGrad node differentiates. */
static amp_op grad_op(const amp_node *n) { return amp_op_lookup(amp_attr_str(n, "op", ""), ""); }

static const char *why_unary(const amp_kernel *k) {
    const amp_tensor *x = k->in[0], *y = k->out[0];
    amp_k_unary u;
    float alpha, beta;
    if (!unary_of(k->n->op, k->n, &u, &alpha, &beta)) return "has attributes this backend does not run";
    if (!is_kfloat(x) || y->dtype != x->dtype) return "runs f32, f16 and bf16 only";
    if (y->numel != x->numel) return "output size differs from the input's";
    return NULL;
}

static const char *why_unary_grad(const amp_kernel *k) {
    amp_k_unary u;
    float alpha, beta;
    /* Neg's gradient is a Neg node: UnaryGrad has no Neg (nor does the CPU's) */
    if (!unary_of(grad_op(k->n), k->n, &u, &alpha, &beta) || u == AMP_K_NEG)
        return "differentiates an op this backend has no gradient kernel for";
    const amp_tensor *dy = in_opt(k, 0), *v = in_opt(k, 1), *dx = k->out[0];
    if (k->nin != 2 || !dy || !v) return "needs dY and one forward value";
    if (!is_kfloat(dy) || v->dtype != dy->dtype || dx->dtype != dy->dtype) return "runs f32, f16 and bf16 only";
    if (v->numel != dy->numel || dx->numel != dy->numel) return "inputs and output differ in size";
    return NULL;
}

static amp_status prepare_unary_common(const amp_kernel *k, amp_op op, void **state) {
    unary_state *st;
    amp_status s = new_state(k, sizeof *st, state);
    if (s) return s;
    st = *state;
    unary_of(op, k->n, &st->op, &st->alpha, &st->beta);
    kdtype(k->out[0]->dtype, &st->dt);
    return AMP_OK;
}

static amp_status run_unary(amp_cuda *cu, const amp_kernel *k, void *state) {
    const unary_state *st = state;
    return LAUNCH(k, amp_k_unary_fwd2(cu->stream, st->op, st->dt, st->alpha, st->beta, k->in[0]->data,
                                      k->out[0]->data, k->out[0]->numel));
}

static amp_status run_unary_grad(amp_cuda *cu, const amp_kernel *k, void *state) {
    const unary_state *st = state;
    return LAUNCH(k, amp_k_unary_grad2(cu->stream, st->op, st->dt, st->alpha, st->beta, k->in[0]->data,
                                       k->in[1]->data, k->out[0]->data, k->out[0]->numel));
}

/* ---- MaxPool, MaxPoolGrad --------------------------------------------------------------------- */

typedef struct pool_state {
    amp_k_pool2d g;
    amp_k_dtype dt;
} pool_state;

static const char *why_pool(const amp_kernel *k) {
    const amp_tensor *x = k->in[0];
    if (!is_kfloat(x) || k->out[0]->dtype != x->dtype) return "runs f32, f16 and bf16 only";
    if (x->rank != 3 && x->rank != 4) return "pools 1 or 2 spatial dims only";
    if (out_opt(k, 1)) return "does not write the Indices output";
    return NULL;
}

static const char *why_pool_grad(const amp_kernel *k) {
    const amp_tensor *dy = in_opt(k, 0), *x = in_opt(k, 1), *dx = k->out[0];
    if (k->nin < 2 || !dy || !x) return "needs dY and X";
    if (!is_kfloat(dx) || dy->dtype != dx->dtype || x->dtype != dx->dtype) return "runs f32, f16 and bf16 only";
    if (dx->rank != 3 && dx->rank != 4) return "pools 1 or 2 spatial dims only";
    if (amp_attr_int(k->n, "global", 0) != 0) return "has no kernel for the global pool's gradient";
    return NULL;
}

/* The 2-D launch geometry of g over planes of x (one spatial dim becomes a leading dim of 1). */
static void pool2d_of(const amp_conv_geom *g, const amp_tensor *x, amp_k_pool2d *p) {
    int two = g->nsp == 2, a = two ? 1 : 0;
    p->planes = x->dims[0] * x->dims[1];
    p->h = two ? g->in[0] : 1;
    p->oh = two ? g->out[0] : 1;
    p->kh = two ? g->k[0] : 1;
    p->sh = two ? g->s[0] : 1;
    p->dh = two ? g->d[0] : 1;
    p->ph = two ? g->pb[0] : 0;
    p->w = g->in[a];
    p->ow = g->out[a];
    p->kw = g->k[a];
    p->sw = g->s[a];
    p->dw = g->d[a];
    p->pw = g->pb[a];
}

static amp_status prepare_pool_common(const amp_kernel *k, bool grad, void **state) {
    char msg[256];
    amp_conv_geom g;
    const amp_tensor *x = grad ? k->out[0] : k->in[0], *small = grad ? k->in[0] : k->out[0];
    amp_status s = grad ? amp_pool_grad_geom(k->n, x->rank, x->dims, &g, msg, sizeof msg)
                        : amp_conv_geom_init(k->n, AMP_GEOM_POOL, x->rank, x->dims, NULL, &g, msg, sizeof msg);
    if (s) return amp_kernel_fail(k, s, "%s", msg);
    int64_t outsz = x->dims[0] * x->dims[1];
    for (int i = 0; i < g.nsp; i++) outsz *= g.out[i];
    if (small->numel != outsz)
        return amp_kernel_fail(k, AMP_ERR_SHAPE, "%s has %lld elements, the windows give %lld", grad ? "dY" : "Y",
                               (long long)small->numel, (long long)outsz);
    if (grad && k->in[1]->numel != x->numel) return amp_kernel_fail(k, AMP_ERR_SHAPE, "X and dX differ in size");
    pool_state *st;
    if ((s = new_state(k, sizeof *st, state))) return s;
    st = *state;
    pool2d_of(&g, x, &st->g);
    kdtype(x->dtype, &st->dt);
    return AMP_OK;
}

static amp_status run_pool(amp_cuda *cu, const amp_kernel *k, void *state) {
    const pool_state *st = state;
    return LAUNCH(k, amp_k_max_pool2d(cu->stream, st->dt, &st->g, k->in[0]->data, k->out[0]->data));
}

static amp_status run_pool_grad(amp_cuda *cu, const amp_kernel *k, void *state) {
    const pool_state *st = state;
    return LAUNCH(k, amp_k_max_pool2d_grad(cu->stream, st->dt, &st->g, k->in[0]->data, k->in[1]->data,
                                           k->out[0]->data));
}

/* ---- the shape ops that copy, Shape ----------------------------------------------------------- */

static const char *why_copy(const amp_kernel *k) {
    const amp_tensor *x = k->in[0], *y = k->out[0];
    if (x->dtype != y->dtype || x->nbytes != y->nbytes) return "output differs from the input in dtype or size";
    return NULL;
}

static amp_status run_copy(amp_cuda *cu, const amp_kernel *k, void *state) {
    (void)state;
    return copy_bytes(cu, k, k->out[0]->data, k->in[0]->data, k->out[0]->nbytes);
}

typedef struct shape_state {
    int n;
    int64_t v[AMP_MAX_RANK];
} shape_state;

/* Shape's first dim (opset 15's start, clamped as the CPU kernel does). */
static int64_t shape_start(const amp_kernel *k) {
    int64_t r = k->in[0]->rank, start = 0;
    if (k->opset >= 15) {
        start = amp_attr_int(k->n, "start", 0);
        if (start < 0) start += r;
        start = start < 0 ? 0 : start > r ? r : start;
    }
    return start;
}

static const char *why_shape(const amp_kernel *k) {
    const amp_tensor *y = k->out[0];
    if (y->dtype != AMP_I64 || y->rank != 1) return "output is not a 1-D int64 tensor";
    if (y->dims[0] < 0 || shape_start(k) + y->dims[0] > k->in[0]->rank) return "output does not match the input's rank";
    return NULL;
}

static amp_status prepare_shape(const amp_kernel *k, void **state) {
    shape_state *st;
    amp_status s = new_state(k, sizeof *st, state);
    if (s) return s;
    st = *state;
    int64_t start = shape_start(k);
    st->n = (int)k->out[0]->dims[0];
    for (int i = 0; i < st->n; i++) st->v[i] = k->in[0]->dims[start + i];
    return AMP_OK;
}

static amp_status run_shape(amp_cuda *cu, const amp_kernel *k, void *state) {
    const shape_state *st = state;
    return LAUNCH(k, amp_k_write_i64(cu->stream, k->out[0]->data, st->v, st->n));
}

/* ---- SoftmaxCrossEntropyLoss and its gradient ------------------------------------------------- */

/* Forward: (scores, labels, weight?) -> (loss, log_prob?). Gradient: (dY?, scores, labels,
 * weight?, dLogProb?) -> dScores. */
static const char *why_sce(const amp_kernel *k, bool grad) {
    int o = grad ? 1 : 0;
    const amp_tensor *x = in_opt(k, o), *t = in_opt(k, o + 1), *w = in_opt(k, o + 2);
    if (!x || !t) return "needs the scores and the labels";
    if (!is_kfloat(x)) return "runs f32, f16 and bf16 scores only";
    if (t->dtype != AMP_I64 && t->dtype != AMP_I32) return "takes int64 or int32 labels only";
    if (w && !is_kfloat(w)) return "takes f32, f16 or bf16 weights only";
    if (x->rank < 2 || x->dims[1] == 0) return "needs scores N x C x ... with at least one class";
    if (t->numel * x->dims[1] != x->numel) return "labels do not match the scores";
    if (k->out[0]->dtype != x->dtype || (out_opt(k, 1) && k->out[1]->dtype != x->dtype))
        return "outputs must have the scores' dtype";
    if (grad) {
        const amp_tensor *dy = in_opt(k, 0), *dl = in_opt(k, 4);
        if ((dy && !is_kfloat(dy)) || (dl && !is_kfloat(dl))) return "takes f32, f16 or bf16 gradients only";
        if (dl && dl->numel != x->numel) return "dLogProb does not match the scores";
        if (k->out[0]->numel != x->numel) return "dScores does not match the scores";
    }
    return NULL;
}

static amp_status prepare_sce_common(const amp_kernel *k, bool grad, void **state, size_t *ws_bytes) {
    int o = grad ? 1 : 0;
    const amp_tensor *x = k->in[o], *t = k->in[o + 1], *w = in_opt(k, o + 2);
    amp_k_sce *p;
    amp_status s = new_state(k, sizeof *p, state);
    if (s) return s;
    p = *state;
    p->c = x->dims[1];
    p->d = 1;
    for (int i = 2; i < x->rank; i++) p->d *= x->dims[i];
    p->rows = x->dims[0] * p->d;
    kdtype(x->dtype, &p->xt);
    p->t64 = t->dtype == AMP_I64;
    p->has_weight = w != NULL;
    if (w) kdtype(w->dtype, &p->wt);
    const amp_attr *ii = amp_node_attr_of(k->n, "ignore_index", AMP_ATTR_INT);
    p->has_ii = ii != NULL;
    p->ii = ii ? ii->i : 0;
    const char *red = amp_attr_str(k->n, "reduction", "mean");
    p->red = strcmp(red, "none") == 0 ? AMP_K_RED_NONE : strcmp(red, "sum") == 0 ? AMP_K_RED_SUM : AMP_K_RED_MEAN;
    if (grad) {
        const amp_tensor *dy = in_opt(k, 0), *dl = in_opt(k, 4);
        p->has_dy = dy != NULL;
        p->has_dlogp = dl != NULL;
        if (dy) kdtype(dy->dtype, &p->dyt);
        if (dl) kdtype(dl->dtype, &p->dlt);
    }
    *ws_bytes = grad ? amp_k_sce_grad_ws(p) : amp_k_sce_ws(p);
    return AMP_OK;
}

static amp_status run_sce(amp_cuda *cu, const amp_kernel *k, void *state) {
    const amp_k_sce *p = state;
    const amp_tensor *w = in_opt(k, 2);
    amp_tensor *logp = out_opt(k, 1);
    return LAUNCH(k, amp_k_sce_fwd(cu->stream, p, k->in[0]->data, k->in[1]->data, w ? w->data : NULL,
                                   k->out[0]->data, logp ? logp->data : NULL, k->ws));
}

static amp_status run_sce_grad(amp_cuda *cu, const amp_kernel *k, void *state) {
    const amp_k_sce *p = state;
    const amp_tensor *dy = in_opt(k, 0), *w = in_opt(k, 3), *dl = in_opt(k, 4);
    return LAUNCH(k, amp_k_sce_grad(cu->stream, p, dy ? dy->data : NULL, k->in[1]->data, k->in[2]->data,
                                    w ? w->data : NULL, dl ? dl->data : NULL, k->out[0]->data, k->ws));
}

/* ---- Add, Sub, Mul, Div; SumToShape ------------------------------------------------------------ */

static bool binop_of(amp_op op, amp_k_binop *b) {
    switch (op) {
    case AMP_OP_ADD: *b = AMP_K_ADD; return true;
    case AMP_OP_SUB: *b = AMP_K_SUB; return true;
    case AMP_OP_MUL: *b = AMP_K_MUL; return true;
    case AMP_OP_DIV: *b = AMP_K_DIV; return true;
    default: return false;
    }
}

typedef struct binary_state {
    amp_k_binop op;
    amp_k_dtype dt;
    amp_k_bcast g;
} binary_state;

static const char *why_binary(const amp_kernel *k) {
    const amp_tensor *a = k->in[0], *b = in_opt(k, 1), *y = k->out[0];
    amp_k_bcast g;
    if (!b) return "needs two inputs";
    if (!is_kfloat(a) || a->dtype != b->dtype || y->dtype != a->dtype) return "runs f32, f16 and bf16 of one dtype";
    /* opset < 7: the "broadcast" and "axis" attributes of the old limited broadcasting */
    if (amp_node_attr(k->n, "broadcast") || amp_node_attr(k->n, "axis")) return "has the pre-opset-7 broadcast attributes";
    if (!amp_k_bcast_plan(y->rank, y->dims, a->rank, a->dims, b->rank, b->dims, &g))
        return "inputs do not broadcast to the output";
    return NULL;
}

static amp_status prepare_binary(const amp_kernel *k, void **state) {
    amp_status s = new_state(k, sizeof(binary_state), state);
    if (s) return s;
    binary_state *p = *state;
    const amp_tensor *a = k->in[0], *b = k->in[1], *y = k->out[0];
    binop_of(k->n->op, &p->op);
    kdtype(a->dtype, &p->dt);
    amp_k_bcast_plan(y->rank, y->dims, a->rank, a->dims, b->rank, b->dims, &p->g);
    return AMP_OK;
}

static amp_status run_binary(amp_cuda *cu, const amp_kernel *k, void *state) {
    const binary_state *p = state;
    return LAUNCH(k, amp_k_binary(cu->stream, p->op, p->dt, &p->g, k->in[0]->data, k->in[1]->data, k->out[0]->data));
}

typedef struct s2s_state {
    amp_k_dtype dt;
    amp_k_s2s g;
} s2s_state;

/* The target's dims in x's frame (1 where summed), as the CPU kernel places them ("axis": where
 * the target's first dim lands, else right-aligned). */
static bool s2s_frame(const amp_kernel *k, int64_t *td) {
    const amp_tensor *x = k->in[0], *r = k->out[0];
    int off = x->rank - r->rank;
    const amp_attr *ax = amp_node_attr(k->n, "axis");
    if (ax && ax->kind == AMP_ATTR_INT) off = (int)(ax->i < 0 ? ax->i + x->rank : ax->i);
    if (off < 0 || off + r->rank > x->rank) return false;
    for (int d = 0; d < x->rank; d++) td[d] = 1;
    for (int d = 0; d < r->rank; d++) td[off + d] = r->dims[d];
    return true;
}

static const char *why_s2s(const amp_kernel *k) {
    const amp_tensor *x = k->in[0], *r = k->out[0];
    int64_t td[AMP_MAX_RANK];
    amp_k_s2s g;
    if (!is_kfloat(x) || r->dtype != x->dtype) return "runs f32, f16 and bf16 of one dtype";
    if (!s2s_frame(k, td) || !amp_k_s2s_plan(x->rank, x->dims, td, &g)) return "target does not broadcast to the input";
    return NULL;
}

static amp_status prepare_s2s(const amp_kernel *k, void **state) {
    amp_status s = new_state(k, sizeof(s2s_state), state);
    if (s) return s;
    s2s_state *p = *state;
    int64_t td[AMP_MAX_RANK];
    kdtype(k->in[0]->dtype, &p->dt);
    s2s_frame(k, td);
    amp_k_s2s_plan(k->in[0]->rank, k->in[0]->dims, td, &p->g);
    return AMP_OK;
}

static amp_status run_s2s(amp_cuda *cu, const amp_kernel *k, void *state) {
    const s2s_state *p = state;
    if (p->g.r == 1) return copy_bytes(cu, k, k->out[0]->data, k->in[0]->data, k->out[0]->nbytes); /* nothing summed */
    if (p->g.r == 0 && k->out[0]->nbytes) /* sums over nothing: +0, all-zero bits in every float dtype */
        return AMP_CUDA_RT(k->ctx, cudaMemsetAsync(k->out[0]->data, 0, k->out[0]->nbytes, cu->stream));
    return LAUNCH(k, amp_k_sum_to_shape(cu->stream, p->dt, &p->g, k->in[0]->data, k->out[0]->data));
}

/* ---- the family ------------------------------------------------------------------------------- */

/* Why this family cannot run k (NULL: it can). */
static const char *why_not(const amp_kernel *k) {
    if (k->nout < 1 || !k->out[0]) return "needs its first output";
    /* the loss gradient's dY is optional; every other op here reads input 0 */
    if (k->n->op != AMP_OP_SCE_LOSS_GRAD && (k->nin < 1 || !k->in[0])) return "needs its first input";
    switch (k->n->op) {
    case AMP_OP_CAST:
    case AMP_OP_CAST_LIKE: return why_cast(k);
    case AMP_OP_RELU:
    case AMP_OP_LEAKY_RELU:
    case AMP_OP_SIGMOID:
    case AMP_OP_TANH:
    case AMP_OP_GELU:
    case AMP_OP_ERF:
    case AMP_OP_SQRT:
    case AMP_OP_NEG:
    case AMP_OP_EXP:
    case AMP_OP_LOG:
    case AMP_OP_ABS:
    case AMP_OP_RECIPROCAL:
    case AMP_OP_SOFTPLUS:
    case AMP_OP_ELU:
    case AMP_OP_HARD_SWISH:
    case AMP_OP_HARD_SIGMOID: return why_unary(k);
    case AMP_OP_UNARY_GRAD: return why_unary_grad(k);
    case AMP_OP_MAX_POOL: return why_pool(k);
    case AMP_OP_MAX_POOL_GRAD: return why_pool_grad(k);
    case AMP_OP_RESHAPE:
    case AMP_OP_FLATTEN:
    case AMP_OP_SQUEEZE:
    case AMP_OP_UNSQUEEZE:
    case AMP_OP_IDENTITY:
    case AMP_OP_RESHAPE_GRAD: return why_copy(k);
    case AMP_OP_SHAPE: return why_shape(k);
    case AMP_OP_SOFTMAX_CE_LOSS: return why_sce(k, false);
    case AMP_OP_SCE_LOSS_GRAD: return why_sce(k, true);
    case AMP_OP_ADD:
    case AMP_OP_SUB:
    case AMP_OP_MUL:
    case AMP_OP_DIV: return why_binary(k);
    case AMP_OP_SUM_TO_SHAPE: return why_s2s(k);
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
        return refuse(k, in_opt(k, k->n->op == AMP_OP_SCE_LOSS_GRAD ? 1 : 0), why);
    }
    switch (k->n->op) {
    case AMP_OP_RELU:
    case AMP_OP_LEAKY_RELU:
    case AMP_OP_SIGMOID:
    case AMP_OP_TANH:
    case AMP_OP_GELU:
    case AMP_OP_ERF:
    case AMP_OP_SQRT:
    case AMP_OP_NEG:
    case AMP_OP_EXP:
    case AMP_OP_LOG:
    case AMP_OP_ABS:
    case AMP_OP_RECIPROCAL:
    case AMP_OP_SOFTPLUS:
    case AMP_OP_ELU:
    case AMP_OP_HARD_SWISH:
    case AMP_OP_HARD_SIGMOID: return prepare_unary_common(k, k->n->op, state);
    case AMP_OP_UNARY_GRAD: return prepare_unary_common(k, grad_op(k->n), state);
    case AMP_OP_MAX_POOL: return prepare_pool_common(k, false, state);
    case AMP_OP_MAX_POOL_GRAD: return prepare_pool_common(k, true, state);
    case AMP_OP_SHAPE: return prepare_shape(k, state);
    case AMP_OP_SOFTMAX_CE_LOSS: return prepare_sce_common(k, false, state, ws_bytes);
    case AMP_OP_SCE_LOSS_GRAD: return prepare_sce_common(k, true, state, ws_bytes);
    case AMP_OP_ADD:
    case AMP_OP_SUB:
    case AMP_OP_MUL:
    case AMP_OP_DIV: return prepare_binary(k, state);
    case AMP_OP_SUM_TO_SHAPE: return prepare_s2s(k, state);
    default: return AMP_OK; /* Cast and the copies need no state */
    }
}

#define ENTRY(op, run) {AMP_OP_##op, supports, prepare, release_state, run}

const amp_cuda_op amp_cuda_ops_kernels[] = {
    ENTRY(CAST, run_cast),
    ENTRY(CAST_LIKE, run_cast),
    ENTRY(RELU, run_unary),
    ENTRY(LEAKY_RELU, run_unary),
    ENTRY(SIGMOID, run_unary),
    ENTRY(TANH, run_unary),
    ENTRY(GELU, run_unary),
    ENTRY(ERF, run_unary),
    ENTRY(SQRT, run_unary),
    ENTRY(NEG, run_unary),
    ENTRY(EXP, run_unary),
    ENTRY(LOG, run_unary),
    ENTRY(ABS, run_unary),
    ENTRY(RECIPROCAL, run_unary),
    ENTRY(SOFTPLUS, run_unary),
    ENTRY(ELU, run_unary),
    ENTRY(HARD_SWISH, run_unary),
    ENTRY(HARD_SIGMOID, run_unary),
    ENTRY(UNARY_GRAD, run_unary_grad),
    ENTRY(MAX_POOL, run_pool),
    ENTRY(MAX_POOL_GRAD, run_pool_grad),
    ENTRY(RESHAPE, run_copy),
    ENTRY(FLATTEN, run_copy),
    ENTRY(SQUEEZE, run_copy),
    ENTRY(UNSQUEEZE, run_copy),
    ENTRY(IDENTITY, run_copy),
    ENTRY(RESHAPE_GRAD, run_copy),
    ENTRY(SHAPE, run_shape),
    ENTRY(SOFTMAX_CE_LOSS, run_sce),
    ENTRY(SCE_LOSS_GRAD, run_sce_grad),
    ENTRY(ADD, run_binary),
    ENTRY(SUB, run_binary),
    ENTRY(MUL, run_binary),
    ENTRY(DIV, run_binary),
    ENTRY(SUM_TO_SHAPE, run_s2s),
    {AMP_OP_UNKNOWN, NULL, NULL, NULL, NULL},
};

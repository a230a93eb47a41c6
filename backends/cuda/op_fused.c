/* The fused ops (ir/ops/fused.def) made by the fusion pass, as an op family (cuda_backend.h):
 * AddLayerNorm, CastMulti and Attention. Semantics are the CPU kernels' (backends/cpu/fused.c).
 *
 * AddLayerNorm: the norm family's LayerNormalization entry plans the layer norm over (S, Scale,
 * B). Where one of X and R has S's dims and the other repeats over S's rows (its dims, leading
 * ones dropped, a suffix of S's spanning the normalised ones), one launch of the norm family's
 * amp_k_add_layer_norm computes S = X + R as it loads it, and writes S only when the node
 * outputs it. Otherwise the broadcasting Add of kernels.h writes S (into S when the node outputs
 * it, else into the workspace), then the LayerNormalization entry runs over it: two launches.
 * Either way the same bits as the unfused ops' CUDA kernels, as the CPU kernel is Add then its
 * LayerNormalization kernel. CastMulti: every pair in one launch
 * (k_fused.cu, chunks of AMP_K_CAST_PAIRS). Attention: a batched cuBLASLt GEMM (alpha = scale)
 * writes S (into P when the node outputs it, else into the workspace), one kernel adds the mask
 * and takes the softmax in place, a second batched GEMM multiplies by V.
 *
 * One function says why a node cannot run here (why_not); supports() asks it and prepare()
 * fails with its answer, naming the node. Prepare reads attributes and geometry once and keeps
 * the launch parameters in the step's state; run only enqueues on cu->stream. */
#include <stdio.h>
#include <string.h>

#include "backends/cuda/cuda_backend.h"
#include "backends/cuda/gemm.h"
#include "backends/cuda/kernels_fused.h"
#include "backends/cuda/kernels_norm.h"
#include "backends/cuda/op_util.h"

/* the alignment of every tensor's first byte that the GEMM family counts on (op_gemm.c) */
#define TENSOR_ALIGN 16u

static amp_k_dtype kd(const amp_tensor *t) {
    amp_k_dtype d = AMP_K_F32;
    if (t) kdtype(t->dtype, &d);
    return d;
}

static bool same_kfloat(const amp_tensor *a, const amp_tensor *b) { return !b || (is_kfloat(b) && b->dtype == a->dtype); }

static size_t round256(size_t b) { return (b + 255u) & ~(size_t)255u; }

/* a failure of a library call on cu->ctx, carried onto the node */
static amp_status on_node(amp_cuda *cu, const amp_kernel *k, amp_status s) {
    if (!s) return AMP_OK;
    char msg[512];
    snprintf(msg, sizeof msg, "%s", amp_context_last_error(cu->ctx));
    return amp_kernel_fail(k, s, "%s", msg);
}

/* ---- AddLayerNorm ------------------------------------------------------------------------------
 * (X, R, Scale, B?) -> (Y, S?, Mean?, InvStdDev?). */

/* The LayerNormalization inside an AddLayerNorm node: the node as LayerNormalization (same
 * attributes and name), inputs (S, Scale, B), outputs (Y, Mean, InvStdDev), as the CPU kernel
 * builds it. S is a view of Y's dims over s_data. */
typedef struct ln_part {
    amp_node n;
    amp_tensor s;
    amp_tensor *in[3], *out[3];
    amp_kernel k;
} ln_part;

static void ln_part_of(const amp_kernel *k, void *s_data, ln_part *p) {
    p->n = *k->n;
    p->n.op = AMP_OP_LAYER_NORM;
    p->s = *k->out[0];
    p->s.dtype = k->in[0]->dtype;
    p->s.data = s_data;
    p->s.owns = 0;
    p->in[0] = &p->s;
    p->in[1] = k->in[2];
    p->in[2] = (amp_tensor *)in_opt(k, 3);
    p->out[0] = k->out[0];
    p->out[1] = out_opt(k, 2);
    p->out[2] = out_opt(k, 3);
    p->k = *k;
    p->k.n = &p->n;
    p->k.nin = k->nin - 1;
    p->k.nout = k->nout > 2 ? k->nout - 1 : 1;
    p->k.in = p->in;
    p->k.out = p->out;
    p->k.ws = NULL;
    p->k.ws_bytes = 0;
}

static const amp_cuda_op *ln_entry(void) {
    for (const amp_cuda_op *e = amp_cuda_ops_norm; e->run; e++)
        if (e->op == AMP_OP_LAYER_NORM) return e;
    return NULL;
}

/* why_aln's answer when the LayerNormalization part is refused: prepare asks the norm family's
 * prepare for the reason */
static const char ln_refused[] = "has a LayerNormalization part the norm family does not run";

static const char *why_aln(amp_cuda *cu, const amp_kernel *k) {
    const amp_tensor *x = k->in[0], *r = in_opt(k, 1), *sc = in_opt(k, 2), *s = out_opt(k, 1), *y = k->out[0];
    if (k->nin < 3 || k->nin > 4 || !r || !sc) return "needs X, R and Scale";
    if (!is_kfloat(x) || !same_kfloat(x, r) || !same_kfloat(x, s)) return "runs f32, f16 and bf16 X, R and S only";
    amp_k_bcast g;
    if (!amp_k_bcast_plan(y->rank, y->dims, x->rank, x->dims, r->rank, r->dims, &g) || (s && s->numel != y->numel))
        return "has X and R that do not broadcast to Y's shape";
    const amp_cuda_op *ln = ln_entry();
    ln_part p;
    ln_part_of(k, NULL, &p);
    if (!ln || !ln->supports(cu, &p.k)) return ln_refused;
    return NULL;
}

typedef struct aln_state {
    amp_k_bcast g;
    amp_k_dtype dt;
    const amp_cuda_op *ln;
    void *ln_state;
    bool one;      /* one launch (amp_k_add_layer_norm) */
    bool swap;     /* there: R has S's dims and X repeats over the rows */
    int64_t rrows; /* the rows of the repeating one */
} aln_state;

/* Whether t repeats over S's rows of cols elements: t has S's size, or its dims, leading ones
 * dropped, are S's last ones and span at least the cols (S's dims from axis on). Its rows then. */
static bool aln_rows_of(const amp_tensor *t, const amp_tensor *s, int64_t cols, int64_t *rows) {
    *rows = cols > 0 ? t->numel / cols : 1;
    if (t->numel == s->numel) return true;
    int lead = 0;
    while (lead < t->rank && t->dims[lead] == 1) lead++;
    const int tr = t->rank - lead;
    if (tr > s->rank) return false;
    int64_t span = 1;
    for (int i = 0; i < tr; i++) {
        if (t->dims[lead + i] != s->dims[s->rank - tr + i]) return false;
        span *= t->dims[lead + i];
    }
    return cols > 0 && span % cols == 0;
}

static void release_aln(amp_cuda *cu, void *state) {
    aln_state *st = state;
    if (!st) return;
    if (st->ln && st->ln->release) st->ln->release(cu, st->ln_state);
    release_state(cu, st);
}

/* The one-launch path: X or R (then swapped: the sum is commutative) with S's dims, the other
 * repeating over the rows, and the LayerNormalization part rows x cols of S (its plan is op_norm.c's
 * state, an amp_k_ln). */
static void aln_plan_one(const amp_kernel *k, aln_state *st) {
    const amp_tensor *x = k->in[0], *r = k->in[1], *y = k->out[0];
    const amp_k_ln *p = st->ln_state;
    int64_t rr = 1;
    st->one = false;
    if (x->numel == y->numel && aln_rows_of(r, y, p->cols, &rr)) st->one = true, st->swap = false;
    else if (r->numel == y->numel && aln_rows_of(x, y, p->cols, &rr)) st->one = true, st->swap = true;
    st->rrows = rr;
}

static amp_status prepare_aln(amp_cuda *cu, const amp_kernel *k, void **state, size_t *ws_bytes) {
    const amp_tensor *x = k->in[0], *r = k->in[1], *y = k->out[0];
    aln_state *st;
    amp_status s = new_state(k, sizeof *st, state);
    if (s) return s;
    st = *state;
    amp_k_bcast_plan(y->rank, y->dims, x->rank, x->dims, r->rank, r->dims, &st->g);
    st->dt = kd(x);
    ln_part p;
    ln_part_of(k, NULL, &p);
    size_t ln_ws = 0;
    s = ln_entry()->prepare(cu, &p.k, &st->ln_state, &ln_ws);
    if (!s && ln_ws) s = amp_kernel_fail(k, AMP_ERR_INTERNAL, "LayerNormalization asks for a workspace");
    if (s) {
        release_aln(cu, st);
        *state = NULL;
        return s;
    }
    st->ln = ln_entry();
    aln_plan_one(k, st);
    /* two launches: S in the workspace when the node does not output it */
    *ws_bytes = out_opt(k, 1) || st->one ? 0 : (size_t)y->numel * amp_dtype_size(x->dtype);
    return AMP_OK;
}

static void *data_or_null(const amp_tensor *t) { return t ? t->data : NULL; }

static amp_status run_aln(amp_cuda *cu, const amp_kernel *k, void *state) {
    const aln_state *st = state;
    amp_tensor *s_out = out_opt(k, 1);
    if (st->one) {
        const void *x = k->in[st->swap ? 1 : 0]->data, *r = k->in[st->swap ? 0 : 1]->data;
        return LAUNCH(k, amp_k_add_layer_norm(cu->stream, st->ln_state, st->rrows, x, r, k->in[2]->data,
                                              data_or_null(in_opt(k, 3)), k->out[0]->data,
                                              data_or_null(s_out), data_or_null(out_opt(k, 2)),
                                              data_or_null(out_opt(k, 3))));
    }
    void *s_data = s_out ? s_out->data : k->ws;
    amp_status s = LAUNCH(k, amp_k_binary(cu->stream, AMP_K_ADD, st->dt, &st->g, k->in[0]->data, k->in[1]->data, s_data));
    if (s) return s;
    ln_part p;
    ln_part_of(k, s_data, &p);
    return st->ln->run(cu, &p.k, st->ln_state);
}

/* ---- CastMulti ---------------------------------------------------------------------------------
 * (X1..Xn) -> (Y1..Yn), the node's round-toward-zero flag for every pair. */

static const char *why_cm(const amp_kernel *k) {
    if (k->nin < 1 || k->nout != k->nin) return "needs n inputs and n outputs";
    for (int i = 0; i < k->nin; i++) {
        const amp_tensor *x = k->in[i], *y = k->out[i];
        if (!x || !y) return "needs every input and output";
        if (!is_kfloat(x) || !is_kfloat(y)) return "casts only between f32, f16 and bf16";
        if (x->numel != y->numel) return "has an output whose size differs from its input's";
    }
    return NULL;
}

typedef struct cm_state {
    bool rtz;
    int pairs;
    uint8_t src[]; /* the pairs' source codes, then their destination codes */
} cm_state;

static amp_status prepare_cm(const amp_kernel *k, void **state) {
    cm_state *st;
    amp_status s = new_state(k, sizeof *st + 2 * (size_t)k->nin, state);
    if (s) return s;
    st = *state;
    st->rtz = (k->n->flags & AMP_NODE_CAST_RTZ) != 0;
    st->pairs = k->nin;
    for (int i = 0; i < k->nin; i++) {
        st->src[i] = (uint8_t)kd(k->in[i]);
        st->src[k->nin + i] = (uint8_t)kd(k->out[i]);
    }
    return AMP_OK;
}

static amp_status run_cm(amp_cuda *cu, const amp_kernel *k, void *state) {
    const cm_state *st = state;
    for (int first = 0; first < st->pairs; first += AMP_K_CAST_PAIRS) {
        amp_k_cast_multi p;
        memset(&p, 0, sizeof p);
        p.rtz = st->rtz;
        for (int q = 0; q < AMP_K_CAST_PAIRS && first + q < st->pairs; q++, p.pairs++) {
            const int i = first + q;
            p.x[q] = k->in[i]->data;
            p.y[q] = k->out[i]->data;
            p.n[q] = k->in[i]->numel;
            p.src[q] = st->src[i];
            p.dst[q] = st->src[st->pairs + i];
        }
        amp_status s = LAUNCH(k, amp_k_cast_multi_run(cu->stream, &p));
        if (s) return s;
    }
    return AMP_OK;
}

/* ---- Attention ----------------------------------------------------------------------------------
 * (Q, K, V, Mask?) -> (O, P?). Q [..., Sq, D], K [..., Sk, D] (trans_k: [..., D, Sk]), V [..., Sk,
 * Dv]; the leading dims are the batch. */

typedef struct att_state {
    int64_t batch, sq, sk, d, dv;
    amp_cuda_gemm *qk, *pv;       /* S = scale Q K^T, O = P V */
    size_t s_off;                 /* S's offset in the workspace (when P is not an output) */
    amp_k_att_softmax sm;
} att_state;

static const char *why_att(const amp_kernel *k) {
    const amp_tensor *q = k->in[0], *kk = in_opt(k, 1), *v = in_opt(k, 2), *m = in_opt(k, 3);
    const amp_tensor *o = k->out[0], *p = out_opt(k, 1);
    if (k->nin < 3 || k->nin > 4 || !kk || !v) return "needs Q, K and V";
    if (k->nout > 2) return "has more than two outputs";
    if (!is_kfloat(q) || !same_kfloat(q, kk) || !same_kfloat(q, v) || !same_kfloat(q, m) || !same_kfloat(q, o) ||
        !same_kfloat(q, p))
        return "runs f32, f16 and bf16 only, one dtype for every input and output";
    const int r = q->rank;
    if (r < 2 || kk->rank != r || v->rank != r) return "needs Q, K and V of one rank >= 2";
    if (r - 2 > AMP_K_ATT_LEAD) return "has more leading dims than the kernel's six";
    for (int d = 0; d < r - 2; d++)
        if (kk->dims[d] != q->dims[d] || v->dims[d] != q->dims[d]) return "has Q, K and V with different leading dims";
    const bool tk = amp_attr_int(k->n, "trans_k", 0) != 0;
    const int64_t sk = kk->dims[tk ? r - 1 : r - 2];
    if (kk->dims[tk ? r - 2 : r - 1] != q->dims[r - 1] || v->dims[r - 2] != sk) return "has Q, K and V that do not multiply";
    if (m) {
        if (m->rank > r) return "has a mask of higher rank than the scores";
        for (int d = 0; d < m->rank; d++) {
            const int64_t md = m->dims[d], pd = d + r - m->rank == r - 1 ? sk : q->dims[d + r - m->rank];
            if (md != 1 && md != pd) return "has a mask that does not broadcast to the scores";
        }
    }
    return NULL;
}

static void release_att(amp_cuda *cu, void *state) {
    att_state *st = state;
    if (!st) return;
    amp_cuda_gemm_free(st->qk);
    amp_cuda_gemm_free(st->pv);
    release_state(cu, st);
}

/* The mask's element strides over the scores' dims [lead..., Sq, Sk] (0 where it broadcasts),
 * as the CPU's mask_strides. */
static void mask_strides(const amp_tensor *m, int r, const int64_t *pdims, int64_t *st) {
    int64_t s = 1;
    for (int d = r - 1; d >= 0; d--) {
        const int md = d - (r - m->rank);
        const int64_t dim = md >= 0 ? m->dims[md] : 1;
        st[d] = dim == 1 || pdims[d] == 1 ? 0 : s;
        s *= dim;
    }
}

/* One batched product of the step: every operand TENSOR_ALIGN-aligned, strides in elements. */
static amp_status att_plan(amp_cuda *cu, const amp_kernel *k, amp_cuda_gemm_desc d, amp_cuda_gemm **g, size_t *ws) {
    const int64_t es = (int64_t)amp_dtype_size(d.dtype);
    const int64_t strides[3] = {d.stride_a * es, d.stride_b * es, d.stride_d * es};
    d.align = amp_cuda_gemm_align(TENSOR_ALIGN, 3, strides);
    return on_node(cu, k, amp_cuda_gemm_plan(cu, &d, g, ws));
}

static amp_status prepare_att(amp_cuda *cu, const amp_kernel *k, void **state, size_t *ws_bytes) {
    const amp_tensor *q = k->in[0], *kk = k->in[1], *v = k->in[2], *m = in_opt(k, 3);
    const int r = q->rank;
    att_state *st;
    amp_status s = new_state(k, sizeof *st, state);
    if (s) return s;
    st = *state;
    const bool tk = amp_attr_int(k->n, "trans_k", 0) != 0;
    st->batch = 1;
    for (int d = 0; d < r - 2; d++) st->batch *= q->dims[d];
    st->sq = q->dims[r - 2];
    st->d = q->dims[r - 1];
    st->sk = kk->dims[tk ? r - 1 : r - 2];
    st->dv = v->dims[r - 1];
    /* the softmax's rows and the mask's strides */
    amp_k_att_softmax *sm = &st->sm;
    sm->rows = st->batch * st->sq;
    sm->sq = st->sq;
    sm->sk = st->sk;
    sm->t = kd(q);
    sm->nlead = r - 2;
    int64_t pdims[AMP_MAX_RANK], mst[AMP_MAX_RANK] = {0};
    memcpy(pdims, q->dims, sizeof pdims);
    pdims[r - 1] = st->sk;
    if (m) mask_strides(m, r, pdims, mst);
    for (int d = 0; d < r - 2; d++) {
        sm->lead[d] = q->dims[d];
        sm->ms_lead[d] = mst[d];
    }
    sm->ms_row = mst[r - 2];
    sm->ms_col = mst[r - 1];
    if (sm->rows == 0) return AMP_OK; /* nothing to compute: no plans */
    /* S [sq, sk] = scale Q [sq, d] K^T: K stored [sk, d] is B^T, [d, sk] (trans_k) is B */
    amp_cuda_gemm_desc d1 = {.dtype = q->dtype, .m = st->sq, .n = st->sk, .k = st->d, .trans_b = !tk,
                             .alpha = amp_attr_float(k->n, "scale", 1.0f), .batch = st->batch,
                             .stride_a = st->sq * st->d, .stride_b = st->sk * st->d, .stride_d = st->sq * st->sk};
    /* O [sq, dv] = P [sq, sk] V [sk, dv] */
    amp_cuda_gemm_desc d2 = {.dtype = q->dtype, .m = st->sq, .n = st->dv, .k = st->sk, .alpha = 1.0f,
                             .batch = st->batch, .stride_a = st->sq * st->sk, .stride_b = st->sk * st->dv,
                             .stride_d = st->sq * st->dv};
    size_t w1 = 0, w2 = 0;
    if ((s = att_plan(cu, k, d1, &st->qk, &w1)) || (s = att_plan(cu, k, d2, &st->pv, &w2))) {
        release_att(cu, st);
        *state = NULL;
        return s;
    }
    /* the two products run one after the other: one GEMM workspace, then S */
    st->s_off = round256(w1 > w2 ? w1 : w2);
    *ws_bytes = st->s_off + (out_opt(k, 1) ? 0 : (size_t)(st->batch * st->sq * st->sk) * amp_dtype_size(q->dtype));
    return AMP_OK;
}

static amp_status run_att(amp_cuda *cu, const amp_kernel *k, void *state) {
    const att_state *st = state;
    if (st->sm.rows == 0) return AMP_OK;
    amp_tensor *p = out_opt(k, 1);
    const amp_tensor *m = in_opt(k, 3);
    void *s = p ? p->data : (char *)k->ws + st->s_off, *ws = st->s_off ? k->ws : NULL;
    amp_status e = on_node(cu, k, amp_cuda_gemm_run(cu, st->qk, k->in[0]->data, k->in[1]->data, NULL, s, NULL, ws));
    if (!e) e = LAUNCH(k, amp_k_att_softmax_run(cu->stream, &st->sm, s, m ? m->data : NULL));
    if (!e) e = on_node(cu, k, amp_cuda_gemm_run(cu, st->pv, s, k->in[2]->data, NULL, k->out[0]->data, NULL, ws));
    return e;
}

/* ---- the family ------------------------------------------------------------------------------- */

static const char *why_not(amp_cuda *cu, const amp_kernel *k) {
    if (k->nout < 1 || !k->out[0]) return "needs its first output";
    if (k->nin < 1 || !k->in[0]) return "needs its first input";
    switch (k->n->op) {
    case AMP_OP_ADD_LAYER_NORM: return why_aln(cu, k);
    case AMP_OP_CAST_MULTI: return why_cm(k);
    case AMP_OP_ATTENTION: return why_att(k);
    default: return "is not an op of this family";
    }
}

static bool supports(amp_cuda *cu, const amp_kernel *k) { return why_not(cu, k) == NULL; }

static amp_status prepare(amp_cuda *cu, const amp_kernel *k, void **state, size_t *ws_bytes) {
    *state = NULL;
    *ws_bytes = 0;
    const char *why = why_not(cu, k);
    if (why == ln_refused) {
        /* the norm family's prepare explains its refusal, naming the node */
        ln_part p;
        ln_part_of(k, NULL, &p);
        void *ln_state = NULL;
        size_t ln_ws = 0;
        const amp_cuda_op *ln = ln_entry();
        amp_status s = ln ? ln->prepare(cu, &p.k, &ln_state, &ln_ws) : AMP_ERR_UNSUPPORTED;
        if (ln && ln->release) ln->release(cu, ln_state);
        if (s) return s;
    }
    if (why) return refuse(k, in_opt(k, 0), why);
    switch (k->n->op) {
    case AMP_OP_ADD_LAYER_NORM: return prepare_aln(cu, k, state, ws_bytes);
    case AMP_OP_CAST_MULTI: return prepare_cm(k, state);
    case AMP_OP_ATTENTION: return prepare_att(cu, k, state, ws_bytes);
    default: return AMP_OK;
    }
}

const amp_cuda_op amp_cuda_ops_fused[] = {
    {AMP_OP_ADD_LAYER_NORM, supports, prepare, release_aln, run_aln},
    {AMP_OP_CAST_MULTI, supports, prepare, release_state, run_cm},
    {AMP_OP_ATTENTION, supports, prepare, release_att, run_att},
    {AMP_OP_UNKNOWN, NULL, NULL, NULL, NULL},
};

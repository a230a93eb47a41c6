/* amprt's own CUDA kernels as an op family (cuda_backend.h): LSTM (forward).
 *
 * Per direction, as backends/cpu/rnn.c computes it: X*W^T for every step as one cuBLASLt GEMM
 * (gemm.h), then per step H*R^T (one GEMM over the batch) and one pointwise kernel for the gates
 * and the c and h update (k_rnn.cu), then the outputs after the last step. Everything is
 * enqueued on cu->stream at run (no host sync, graph-capturable); descriptors and algorithms are
 * chosen at prepare, the scratch (products, state, GEMM workspace) is the planned workspace.
 *
 * f16 and bf16: the CPU widens X, W and R to f32, multiplies in f32 and keeps the state h and c
 * in f32 from step to step, rounding only what it stores (Y, Y_h, Y_c). Feeding the recurrent
 * GEMM a 16-bit h would round the state every step and drift from the CPU, so here too X, W and
 * R are widened into the workspace and every GEMM is FP32 (no TF32 unless cu->allow_tf32).
 *
 * Refused: activations other than the defaults (Sigmoid, Tanh, Tanh; also the only ones with a
 * gradient), dtypes other than f32/f16/bf16. sequence_lens is read on the device (every step
 * runs for every row; rows past their length keep their state, as on the CPU). */
#include <string.h>

#include "backends/cuda/cuda_backend.h"
#include "backends/cuda/gemm.h"
#include "backends/cuda/kernels_rnn.h"
#include "ir/ops/rnn.h"

enum { ACT_TANH = 1, ACT_SIGMOID = 2 }; /* numbers of ir/ops/rnn.c */

/* Every tensor a step sees starts 16-byte aligned (as op_gemm.c counts on); the workspace's
 * parts start 256-byte aligned. */
#define TENSOR_ALIGN 16u
#define WS_ALIGN 256u

/* The kernels' code for an f32, f16 or bf16 tensor dtype; false for any other. */
static bool kdtype(amp_dtype t, amp_k_dtype *out) {
    *out = t == AMP_F16 ? AMP_K_F16 : t == AMP_BF16 ? AMP_K_BF16 : AMP_K_F32;
    return t == AMP_F32 || t == AMP_F16 || t == AMP_BF16;
}

/* Optional inputs and outputs: NULL when absent or past the node's count. */
static const amp_tensor *in_opt(const amp_kernel *k, int i) { return i < k->nin ? k->in[i] : NULL; }
static amp_tensor *out_opt(const amp_kernel *k, int i) { return i < k->nout ? k->out[i] : NULL; }

/* A launch's status, failing the node with what the runtime (and the emulator) said. */
static amp_status launched(const amp_kernel *k, amp_status s) {
    if (!s) return AMP_OK;
    const char *detail = amp_k_launch_detail();
    return amp_kernel_fail(k, s, "%s%s%s", amp_context_last_error(k->ctx), detail[0] ? ": " : "", detail);
}
#define LAUNCH(k, call) launched((k), AMP_CUDA_RT((k)->ctx, call))

static size_t ws_round(size_t bytes) { return (bytes + WS_ALIGN - 1) / WS_ALIGN * WS_ALIGN; }

/* ---- LSTM ------------------------------------------------------------------------------------ */

/* The attributes and sizes every LSTM kernel here needs; NULL when k's node can run, else why not. */
typedef struct lstm_shape {
    int64_t S, B, I, H, D;
    int layout;
    bool reverse, coupled, has_clip;
    float clip;
    amp_k_dtype dt;
} lstm_shape;

static const char *lstm_read(const amp_kernel *k, lstm_shape *sh) {
    const amp_tensor *X = in_opt(k, 0), *W = in_opt(k, 1), *R = in_opt(k, 2);
    if (!X || !W || !R) return "needs X, W and R";
    if (!kdtype(X->dtype, &sh->dt)) return "runs f32, f16 and bf16 only";
    if (X->rank != 3 || W->rank != 3 || R->rank != 3) return "needs X, W and R of rank 3";
    const int idx[5] = {1, 2, 3, 5, 6};
    for (int j = 0; j < 5; j++) {
        const amp_tensor *t = in_opt(k, idx[j]);
        if (t && t->dtype != X->dtype) return "needs W, R, B, initial_h, initial_c and P in X's dtype";
    }
    const amp_tensor *P = in_opt(k, 7), *SL = in_opt(k, 4);
    if (P && P->dtype != X->dtype) return "needs P in X's dtype";
    if (SL && SL->dtype != AMP_I32) return "needs int32 sequence_lens";
    for (int o = 0; o < 3; o++) {
        const amp_tensor *y = out_opt(k, o);
        if (y && y->dtype != X->dtype) return "needs its outputs in X's dtype";
    }
    sh->layout = (int)amp_attr_int(k->n, "layout", 0);
    if (sh->layout != 0 && sh->layout != 1) return "has a layout other than 0 and 1";
    sh->S = X->dims[sh->layout ? 1 : 0];
    sh->B = X->dims[sh->layout ? 0 : 1];
    sh->I = X->dims[2];
    sh->H = R->dims[2];
    sh->D = amp_rnn_directions(k->n);
    if (sh->D < 1 || W->dims[0] != sh->D) return "has an invalid direction";
    int kind[6];
    float al[6], be[6];
    char why[160];
    if (!amp_rnn_activations(k->n, (int)sh->D, kind, al, be, why, sizeof why)) return "has invalid activations";
    for (int i = 0; i < 3 * sh->D; i++)
        if (kind[i] != (i % 3 ? ACT_TANH : ACT_SIGMOID))
            return "runs only the default activations (Sigmoid for the gates, Tanh otherwise)";
    const int64_t lim = (int64_t)1 << 31;
    if (sh->S * sh->B >= lim || 4 * sh->H >= lim || sh->I >= lim) return "has a size of 2^31 or more";
    sh->reverse = strcmp(amp_attr_str(k->n, "direction", "forward"), "reverse") == 0;
    sh->coupled = amp_attr_int(k->n, "input_forget", 0) != 0;
    const amp_attr *clip = amp_node_attr_of(k->n, "clip", AMP_ATTR_FLOAT);
    sh->has_clip = clip != NULL;
    sh->clip = clip ? clip->f : 0.0f;
    return NULL;
}

/* The step's plans and the workspace layout (byte offsets into k->ws). */
typedef struct lstm_state {
    lstm_shape sh;
    amp_cuda_gemm *xw_plan; /* xw [S*B, 4H] = X [S*B, I] W_d^T */
    amp_cuda_gemm *hr_plan; /* hr [B, 4H] = h [B, H] R_d^T */
    size_t off_xw, off_hr, off_h, off_c, off_x, off_w, off_r;
} lstm_state;

static void lstm_release(amp_cuda *cu, void *state) {
    lstm_state *st = state;
    if (!st) return;
    amp_cuda_gemm_free(st->xw_plan);
    amp_cuda_gemm_free(st->hr_plan);
    amp_free(cu->ctx, st);
}

/* An FP32 GEMM D [m, n] = A [m, k] B^T (B stored [n, k]); b_step bytes between directions' B. */
static amp_status plan_abt(amp_cuda *cu, const amp_kernel *k, int64_t m, int64_t n, int64_t kk, int64_t b_step,
                           amp_cuda_gemm **out, size_t *ws) {
    amp_cuda_gemm_desc d = {.dtype = AMP_F32, .m = m, .n = n, .k = kk, .trans_b = true, .alpha = 1.0f};
    d.align = amp_cuda_gemm_align(TENSOR_ALIGN, 1, &b_step);
    amp_status s = amp_cuda_gemm_plan(cu, &d, out, ws);
    return s ? amp_kernel_fail(k, s, "%s", amp_context_last_error(cu->ctx)) : AMP_OK;
}

static amp_status lstm_prepare(amp_cuda *cu, const amp_kernel *k, lstm_state **out, size_t *ws_bytes) {
    lstm_state *st = amp_calloc(k->ctx, 1, sizeof *st);
    if (!st) return amp_kernel_fail(k, AMP_ERR_NO_MEMORY, "no memory for the step's state");
    lstm_read(k, &st->sh);
    const lstm_shape *sh = &st->sh;
    const int64_t SB = sh->S * sh->B, GH = 4 * sh->H;
    size_t ws[2] = {0, 0};
    amp_status s = plan_abt(cu, k, SB, GH, sh->I, GH * sh->I * 4, &st->xw_plan, &ws[0]);
    if (!s) s = plan_abt(cu, k, sh->B, GH, sh->H, GH * sh->H * 4, &st->hr_plan, &ws[1]);
    if (s) {
        lstm_release(cu, st);
        return s;
    }
    /* the GEMMs run one after another on one stream: they share one workspace */
    size_t at = ws_round(ws[0] > ws[1] ? ws[0] : ws[1]);
    const size_t f = sizeof(float);
    st->off_xw = at, at += ws_round(f * (size_t)(SB * GH));
    st->off_hr = at, at += ws_round(f * (size_t)(sh->B * GH));
    st->off_h = at, at += ws_round(f * (size_t)(sh->B * sh->H));
    st->off_c = at, at += ws_round(f * (size_t)(sh->B * sh->H));
    if (sh->dt != AMP_K_F32) {
        st->off_x = at, at += ws_round(f * (size_t)(SB * sh->I));
        st->off_w = at, at += ws_round(f * (size_t)(sh->D * GH * sh->I));
        st->off_r = at, at += ws_round(f * (size_t)(sh->D * GH * sh->H));
    }
    *out = st;
    *ws_bytes = at;
    return AMP_OK;
}

/* x, w, r as f32: the tensors themselves, or widened into the workspace. */
static amp_status lstm_operands(amp_cuda *cu, const amp_kernel *k, const lstm_state *st, const float **x,
                                const float **w, const float **r) {
    const amp_tensor *in[3] = {k->in[0], k->in[1], k->in[2]};
    const size_t off[3] = {st->off_x, st->off_w, st->off_r};
    const float **dst[3] = {x, w, r};
    for (int j = 0; j < 3; j++) {
        if (st->sh.dt == AMP_K_F32) {
            *dst[j] = in[j]->data;
            continue;
        }
        float *wide = (float *)((char *)k->ws + off[j]);
        amp_status s = LAUNCH(k, amp_k_cast(cu->stream, st->sh.dt, AMP_K_F32, false, in[j]->data, wide, in[j]->numel));
        if (s) return s;
        *dst[j] = wide;
    }
    return AMP_OK;
}

static amp_status lstm_run(amp_cuda *cu, const amp_kernel *k, void *state) {
    const lstm_state *st = state;
    const lstm_shape *sh = &st->sh;
    if (sh->B * sh->H == 0) return AMP_OK; /* every output is empty */
    const amp_tensor *bias = in_opt(k, 3), *sl = in_opt(k, 4), *h0 = in_opt(k, 5), *c0 = in_opt(k, 6), *P = in_opt(k, 7);
    amp_tensor *Y = out_opt(k, 0), *Yh = out_opt(k, 1), *Yc = out_opt(k, 2);
    char *ws = k->ws;
    float *xw = (float *)(ws + st->off_xw), *hr = (float *)(ws + st->off_hr);
    float *h = (float *)(ws + st->off_h), *c = (float *)(ws + st->off_c);
    const float *x = NULL, *w = NULL, *r = NULL;
    amp_status s = lstm_operands(cu, k, st, &x, &w, &r);
    const int64_t GH = 4 * sh->H;
    const int32_t *lens = sl ? sl->data : NULL;
    amp_k_lstm_geom g = {.S = sh->S, .B = sh->B, .H = sh->H, .D = sh->D, .layout = sh->layout,
                         .coupled = sh->coupled, .has_clip = sh->has_clip, .clip = sh->clip, .dt = sh->dt};
    for (int d = 0; !s && d < (int)sh->D; d++) {
        g.d = d;
        g.fwd = sh->reverse ? false : d == 0;
        s = LAUNCH(k, amp_k_lstm_init(cu->stream, g, h0 ? h0->data : NULL, c0 ? c0->data : NULL, h, c));
        if (!s && sh->S > 0) s = amp_cuda_gemm_run(cu, st->xw_plan, x, w + d * GH * sh->I, NULL, xw, NULL, ws);
        for (int64_t step = 0; !s && step < sh->S; step++) {
            s = amp_cuda_gemm_run(cu, st->hr_plan, h, r + d * GH * sh->H, NULL, hr, NULL, ws);
            if (!s)
                s = LAUNCH(k, amp_k_lstm_step(cu->stream, g, step, xw, hr, bias ? bias->data : NULL,
                                              P ? P->data : NULL, lens, h, c, Y ? Y->data : NULL));
        }
        if (!s)
            s = LAUNCH(k, amp_k_lstm_finish(cu->stream, g, lens, h, c, Y ? Y->data : NULL, Yh ? Yh->data : NULL,
                                            Yc ? Yc->data : NULL));
    }
    return s;
}

/* ---- the family ------------------------------------------------------------------------------- */

/* Why this family cannot run k (NULL: it can). */
static const char *why_not(const amp_kernel *k) {
    lstm_shape sh;
    switch (k->n->op) {
    case AMP_OP_LSTM: return lstm_read(k, &sh);
    default: return "is not an op of this family";
    }
}

static bool supports(amp_cuda *cu, const amp_kernel *k) {
    (void)cu;
    return why_not(k) == NULL;
}

static amp_status prepare(amp_cuda *cu, const amp_kernel *k, void **state, size_t *ws_bytes) {
    *state = NULL;
    *ws_bytes = 0;
    const char *why = why_not(k);
    if (why) {
        const amp_tensor *x = in_opt(k, 0);
        return amp_kernel_fail(k, AMP_ERR_UNSUPPORTED, "%s on CUDA %s (input dtype %s)", k->n->op_type, why,
                               x ? amp_dtype_name(x->dtype) : "none");
    }
    return lstm_prepare(cu, k, (lstm_state **)state, ws_bytes);
}

const amp_cuda_op amp_cuda_ops_rnn[] = {
    {AMP_OP_LSTM, supports, prepare, lstm_release, lstm_run},
    {AMP_OP_UNKNOWN, NULL, NULL, NULL, NULL},
};

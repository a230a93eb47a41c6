/* amprt's own CUDA kernels as an op family (cuda_backend.h): LSTM and LSTMGrad.
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
#include "backends/cuda/op_util.h"
#include "backends/cuda/gemm.h"
#include "backends/cuda/kernels_rnn.h"
#include "ir/ops/rnn.h"

enum { ACT_TANH = 1, ACT_SIGMOID = 2 }; /* numbers of ir/ops/rnn.c */

/* Every tensor a step sees starts 16-byte aligned (as op_gemm.c counts on); the workspace's
 * parts start 256-byte aligned. */
#define TENSOR_ALIGN 16u
#define WS_ALIGN 256u

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
    /* LSTMGrad carries the forward node's attributes: read them as the LSTM's */
    amp_node fwd = *k->n;
    fwd.op = AMP_OP_LSTM;
    if (!amp_rnn_activations(&fwd, (int)sh->D, kind, al, be, why, sizeof why)) return "has invalid activations";
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

/* An FP32 GEMM D [m, n] = op(A) op(B) whose pointers sit at the byte offsets offs[0..noff) (and
 * their multiples) from TENSOR_ALIGN-aligned starts. */
static amp_status plan_gemm(amp_cuda *cu, const amp_kernel *k, int64_t m, int64_t n, int64_t kk, bool ta, bool tb,
                            int noff, const int64_t *offs, amp_cuda_gemm **out, size_t *ws) {
    amp_cuda_gemm_desc d = {.dtype = AMP_F32, .m = m, .n = n, .k = kk, .trans_a = ta, .trans_b = tb, .alpha = 1.0f};
    d.align = amp_cuda_gemm_align(TENSOR_ALIGN, noff, offs);
    size_t need = 0;
    amp_status s = amp_cuda_gemm_plan(cu, &d, out, &need);
    if (s) return amp_kernel_fail(k, s, "%s", amp_context_last_error(cu->ctx));
    *ws = need > *ws ? need : *ws;
    return AMP_OK;
}

/* D [m, n] = A [m, k] B^T (B stored [n, k]); b_step bytes between directions' B. */
static amp_status plan_abt(amp_cuda *cu, const amp_kernel *k, int64_t m, int64_t n, int64_t kk, int64_t b_step,
                           amp_cuda_gemm **out, size_t *ws) {
    return plan_gemm(cu, k, m, n, kk, false, true, 1, &b_step, out, ws);
}

/* Bump allocation of the workspace's parts, each WS_ALIGN-aligned; returns the offset. */
static size_t ws_take(size_t *at, int64_t floats) {
    const size_t off = *at;
    *at += ws_round(sizeof(float) * (size_t)floats);
    return off;
}

/* Room for X, W and R widened to f32 (16-bit dtypes only). */
static void lstm_wide_ws(lstm_state *st, size_t *at) {
    const lstm_shape *sh = &st->sh;
    if (sh->dt == AMP_K_F32) return;
    st->off_x = ws_take(at, sh->S * sh->B * sh->I);
    st->off_w = ws_take(at, sh->D * 4 * sh->H * sh->I);
    st->off_r = ws_take(at, sh->D * 4 * sh->H * sh->H);
}

static amp_status lstm_prepare(amp_cuda *cu, const amp_kernel *k, lstm_state **out, size_t *ws_bytes) {
    lstm_state *st = amp_calloc(k->ctx, 1, sizeof *st);
    if (!st) return amp_kernel_fail(k, AMP_ERR_NO_MEMORY, "no memory for the step's state");
    lstm_read(k, &st->sh);
    const lstm_shape *sh = &st->sh;
    const int64_t SB = sh->S * sh->B, GH = 4 * sh->H;
    size_t gws = 0;
    amp_status s = plan_abt(cu, k, SB, GH, sh->I, GH * sh->I * 4, &st->xw_plan, &gws);
    if (!s) s = plan_abt(cu, k, sh->B, GH, sh->H, GH * sh->H * 4, &st->hr_plan, &gws);
    if (s) {
        lstm_release(cu, st);
        return s;
    }
    /* the GEMMs run one after another on one stream: they share one workspace */
    size_t at = ws_round(gws);
    st->off_xw = ws_take(&at, SB * GH);
    st->off_hr = ws_take(&at, sh->B * GH);
    st->off_h = ws_take(&at, sh->B * sh->H);
    st->off_c = ws_take(&at, sh->B * sh->H);
    lstm_wide_ws(st, &at);
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


/* ---- LSTMGrad ---------------------------------------------------------------------------------
 * backends/cpu/rnn_grad.c's algorithm per direction: X gathered in step order, X*W^T for every
 * step (one GEMM), the forward pass recomputed keeping every state and gate, then the steps
 * backwards (a pointwise kernel for the gate gradients, one GEMM with R for the gradient
 * reaching the previous state); dW, dX and dR are each one GEMM over all steps at the end, dB
 * and dP column sums in the CPU's order. f32 throughout (16-bit inputs widened, the gradients
 * accumulated in f32 and rounded once into the outputs, as the CPU does). */

enum { G_DY = 8, G_DYH = 9, G_DYC = 10 };          /* inputs after the forward op's eight */
enum { G_DX, G_DW, G_DR, G_DB, G_DH0, G_DC0, G_DP }; /* outputs */

typedef struct lstm_grad_state {
    lstm_state f; /* shape, xw_plan (a = xs W^T), hr_plan (hs[step] R^T), widened operands */
    amp_cuda_gemm *dhp_plan, *dw_plan, *dx_plan, *dr_plan;
    size_t off_xs, off_a, off_hs, off_cs, off_gt, off_hr, off_dh, off_dc, off_dhp, off_pc;
    size_t off_gx, off_gw, off_gr, off_gb, off_gp; /* f32 gradients (16-bit dtypes only) */
} lstm_grad_state;

static const char *lstm_grad_read(const amp_kernel *k, lstm_shape *sh) {
    if (k->nin != 11 || k->nout != 7) return "needs 11 inputs and 7 outputs";
    const char *why = lstm_read(k, sh);
    if (why) return why;
    if (sh->has_clip) return "has no gradient with clip";
    const amp_dtype dt = k->in[0]->dtype;
    for (int i = G_DY; i <= G_DYC; i++)
        if (k->in[i] && k->in[i]->dtype != dt) return "needs dY, dY_h and dY_c in X's dtype";
    for (int o = 0; o < 7; o++)
        if (k->out[o] && k->out[o]->dtype != dt) return "needs its outputs in X's dtype";
    if (!k->out[G_DX] || !k->out[G_DW] || !k->out[G_DR] || !k->out[G_DB] || !k->out[G_DH0])
        return "needs dX, dW, dR, dB and dinitial_h";
    return NULL;
}

static void lstm_grad_release(amp_cuda *cu, void *state) {
    lstm_grad_state *st = state;
    if (!st) return;
    amp_cuda_gemm_free(st->dhp_plan);
    amp_cuda_gemm_free(st->dw_plan);
    amp_cuda_gemm_free(st->dx_plan);
    amp_cuda_gemm_free(st->dr_plan);
    amp_cuda_gemm_free(st->f.xw_plan);
    amp_cuda_gemm_free(st->f.hr_plan);
    amp_free(cu->ctx, st);
}

static amp_status lstm_grad_prepare(amp_cuda *cu, const amp_kernel *k, lstm_grad_state **out, size_t *ws_bytes) {
    lstm_grad_state *st = amp_calloc(k->ctx, 1, sizeof *st);
    if (!st) return amp_kernel_fail(k, AMP_ERR_NO_MEMORY, "no memory for the step's state");
    lstm_grad_read(k, &st->f.sh);
    const lstm_shape *sh = &st->f.sh;
    const int64_t S = sh->S, B = sh->B, I = sh->I, H = sh->H, D = sh->D, SB = S * B, GH = 4 * H;
    /* byte offsets the pointers move by: per direction (W, R and their gradients), per step */
    const int64_t o_hr[2] = {B * H * 4, GH * H * 4}, o_dhp[2] = {B * GH * 4, GH * H * 4};
    const int64_t o_w = GH * I * 4, o_r = GH * H * 4;
    size_t gws = 0;
    amp_status s = plan_abt(cu, k, SB, GH, I, o_w, &st->f.xw_plan, &gws);
    if (!s) s = plan_gemm(cu, k, B, GH, H, false, true, 2, o_hr, &st->f.hr_plan, &gws);
    if (!s) s = plan_gemm(cu, k, B, H, GH, false, false, 2, o_dhp, &st->dhp_plan, &gws);
    if (!s) s = plan_gemm(cu, k, GH, I, SB, true, false, 1, &o_w, &st->dw_plan, &gws);
    if (!s) s = plan_gemm(cu, k, SB, I, GH, false, false, 1, &o_w, &st->dx_plan, &gws);
    if (!s) s = plan_gemm(cu, k, GH, H, SB, true, false, 1, &o_r, &st->dr_plan, &gws);
    if (s) {
        lstm_grad_release(cu, st);
        return s;
    }
    size_t at = ws_round(gws);
    st->off_xs = ws_take(&at, SB * I);
    st->off_a = ws_take(&at, SB * GH);
    st->off_hs = ws_take(&at, (S + 1) * B * H);
    st->off_cs = ws_take(&at, (S + 1) * B * H);
    st->off_gt = ws_take(&at, SB * GH);
    st->off_hr = ws_take(&at, B * GH);
    st->off_dh = ws_take(&at, B * H);
    st->off_dc = ws_take(&at, B * H);
    st->off_dhp = ws_take(&at, B * H);
    st->off_pc = ws_take(&at, SB * 3 * H);
    lstm_wide_ws(&st->f, &at);
    if (sh->dt != AMP_K_F32) {
        st->off_gx = ws_take(&at, SB * I);
        st->off_gw = ws_take(&at, D * GH * I);
        st->off_gr = ws_take(&at, D * GH * H);
        st->off_gb = ws_take(&at, D * 2 * GH);
        st->off_gp = ws_take(&at, D * 3 * H);
    }
    *out = st;
    *ws_bytes = at;
    return AMP_OK;
}

/* Where the f32 gradient of output o is made: the output itself for f32, else the workspace. */
static float *grad_buf(const amp_kernel *k, const lstm_grad_state *st, int o, size_t off) {
    if (!k->out[o]) return NULL;
    return st->f.sh.dt == AMP_K_F32 ? k->out[o]->data : (float *)((char *)k->ws + off);
}

static amp_status zero_outputs(amp_cuda *cu, const amp_kernel *k) {
    for (int o = 0; o < k->nout; o++)
        if (k->out[o] && k->out[o]->nbytes) {
            amp_status s = AMP_CUDA_RT(k->ctx, cudaMemsetAsync(k->out[o]->data, 0, k->out[o]->nbytes, cu->stream));
            if (s) return s;
        }
    return AMP_OK;
}

/* Direction g.d: its slices of dW, dR, dB, dP, its share of dX and its dinitial_h/c. */
static amp_status lstm_grad_direction(amp_cuda *cu, const amp_kernel *k, const lstm_grad_state *st,
                                      amp_k_lstm_geom g, const float *x, const float *w, const float *r,
                                      float *const gout[5]) {
    const lstm_shape *sh = &st->f.sh;
    const int64_t S = sh->S, B = sh->B, I = sh->I, H = sh->H, GH = 4 * H, d = g.d;
    char *ws = k->ws;
    float *xs = (float *)(ws + st->off_xs), *a = (float *)(ws + st->off_a), *hs = (float *)(ws + st->off_hs);
    float *cs = (float *)(ws + st->off_cs), *gt = (float *)(ws + st->off_gt), *hr = (float *)(ws + st->off_hr);
    float *dh = (float *)(ws + st->off_dh), *dc = (float *)(ws + st->off_dc), *dhp = (float *)(ws + st->off_dhp);
    float *pc = (float *)(ws + st->off_pc);
    const float *wd = w + d * GH * I, *rd = r + d * GH * H;
    const amp_tensor *bias = k->in[3], *sl = k->in[4], *h0 = k->in[5], *c0 = k->in[6], *P = k->in[7];
    const void *bp = bias ? bias->data : NULL, *pp = P ? P->data : NULL;
    const int32_t *lens = sl ? sl->data : NULL;
    const void *dy = k->in[G_DY] ? k->in[G_DY]->data : NULL;
    amp_status s = LAUNCH(k, amp_k_lstm_gather(cu->stream, g, x, lens, xs));
    if (!s) s = amp_cuda_gemm_run(cu, st->f.xw_plan, xs, wd, NULL, a, NULL, ws);
    if (!s) s = LAUNCH(k, amp_k_lstm_init(cu->stream, g, h0 ? h0->data : NULL, c0 ? c0->data : NULL, hs, cs));
    for (int64_t step = 0; !s && step < S; step++) {
        s = amp_cuda_gemm_run(cu, st->f.hr_plan, hs + step * B * H, rd, NULL, hr, NULL, ws);
        if (!s) s = LAUNCH(k, amp_k_lstm_fwd_step(cu->stream, g, step, a, hr, bp, pp, lens, hs, cs, gt));
    }
    if (!s)
        s = LAUNCH(k, amp_k_lstm_bwd_init(cu->stream, g, lens, k->in[G_DYH] ? k->in[G_DYH]->data : NULL,
                                          k->in[G_DYC] ? k->in[G_DYC]->data : NULL, dh, dc));
    for (int64_t step = S - 1; !s && step >= 0; step--) {
        float *da = a + step * B * GH;
        s = LAUNCH(k, amp_k_lstm_bwd_step(cu->stream, g, step, gt, cs, dy, pp, lens, dh, dc, a, dhp, pc));
        if (!s) s = amp_cuda_gemm_run(cu, st->dhp_plan, da, rd, NULL, dhp, NULL, ws);
        if (!s) s = LAUNCH(k, amp_k_lstm_bwd_commit(cu->stream, g, step, lens, dhp, dh));
    }
    void *dh0 = k->out[G_DH0]->data, *dc0 = k->out[G_DC0] ? k->out[G_DC0]->data : NULL;
    if (!s) s = LAUNCH(k, amp_k_lstm_put_state(cu->stream, g, dh, dc, dh0, dc0));
    /* dW = dA^T Xs; dX (step order) = dA W into xs, added at the rows' times; dR = dA^T H_prev */
    if (!s) s = amp_cuda_gemm_run(cu, st->dw_plan, a, xs, NULL, gout[1] + d * GH * I, NULL, ws);
    if (!s) s = amp_cuda_gemm_run(cu, st->dx_plan, a, wd, NULL, xs, NULL, ws);
    if (!s) s = LAUNCH(k, amp_k_lstm_scatter(cu->stream, g, lens, xs, gout[0]));
    if (!s) s = amp_cuda_gemm_run(cu, st->dr_plan, a, hs, NULL, gout[2] + d * GH * H, NULL, ws);
    if (!s)
        s = LAUNCH(k, amp_k_lstm_sums(cu->stream, g, a, pc, gout[3] + d * 2 * GH, gout[4] ? gout[4] + d * 3 * H : NULL));
    return s;
}

static amp_status lstm_grad_run(amp_cuda *cu, const amp_kernel *k, void *state) {
    const lstm_grad_state *st = state;
    const lstm_shape *sh = &st->f.sh;
    if (sh->S * sh->B == 0 || sh->H == 0) return zero_outputs(cu, k); /* nothing runs: every gradient is zero */
    const float *x = NULL, *w = NULL, *r = NULL;
    amp_status s = lstm_operands(cu, k, &st->f, &x, &w, &r);
    float *const gout[5] = {grad_buf(k, st, G_DX, st->off_gx), grad_buf(k, st, G_DW, st->off_gw),
                            grad_buf(k, st, G_DR, st->off_gr), grad_buf(k, st, G_DB, st->off_gb),
                            grad_buf(k, st, G_DP, st->off_gp)};
    if (!s)
        s = AMP_CUDA_RT(k->ctx, cudaMemsetAsync(gout[0], 0, sizeof(float) * (size_t)k->out[G_DX]->numel, cu->stream));
    amp_k_lstm_geom g = {.S = sh->S, .B = sh->B, .H = sh->H, .D = sh->D, .I = sh->I, .layout = sh->layout,
                         .coupled = sh->coupled, .dt = sh->dt};
    for (int d = 0; !s && d < (int)sh->D; d++) {
        g.d = d;
        g.fwd = sh->reverse ? false : d == 0;
        s = lstm_grad_direction(cu, k, st, g, x, w, r, gout);
    }
    if (sh->dt == AMP_K_F32) return s;
    const int outs[5] = {G_DX, G_DW, G_DR, G_DB, G_DP};
    for (int j = 0; !s && j < 5; j++)
        if (k->out[outs[j]])
            s = LAUNCH(k, amp_k_cast(cu->stream, AMP_K_F32, sh->dt, false, gout[j], k->out[outs[j]]->data,
                                     k->out[outs[j]]->numel));
    return s;
}

/* ---- the family ------------------------------------------------------------------------------- */

/* Why this family cannot run k (NULL: it can). */
static const char *why_not(const amp_kernel *k) {
    lstm_shape sh;
    switch (k->n->op) {
    case AMP_OP_LSTM: return lstm_read(k, &sh);
    case AMP_OP_LSTM_GRAD: return lstm_grad_read(k, &sh);
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
        return refuse(k, in_opt(k, 0), why);
    }
    if (k->n->op == AMP_OP_LSTM_GRAD) return lstm_grad_prepare(cu, k, (lstm_grad_state **)state, ws_bytes);
    return lstm_prepare(cu, k, (lstm_state **)state, ws_bytes);
}

const amp_cuda_op amp_cuda_ops_rnn[] = {
    {AMP_OP_LSTM, supports, prepare, lstm_release, lstm_run},
    {AMP_OP_LSTM_GRAD, supports, prepare, lstm_grad_release, lstm_grad_run},
    {AMP_OP_UNKNOWN, NULL, NULL, NULL, NULL},
};

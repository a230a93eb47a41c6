/* Backpropagation through time for RNN, GRU and LSTM on the CPU: the kernels of the training
 * ops RNNGrad, GRUGrad and LSTMGrad (shape inference and the builder in ir/ops/rnn_grad.c).
 *
 * Per direction: the steps' inputs are first gathered in step order (the reverse direction and
 * sequence_lens make a row's step j read time len_b-1-j), so that X*W^T, dW, dX and dR are each
 * one GEMM over all steps; the forward pass is recomputed keeping every step's state and gate
 * values; then the steps run backwards, one GEMM with R per step for the gradient flowing to
 * the previous state. Rows past their length carry their state (and its gradient) unchanged,
 * so Y_h's gradient reaches the row's last step. Default activations only (sigmoid gates, tanh
 * elsewhere; inference refuses the rest). f32 and f64 compute in their own type (the typed
 * half of this file is compiled once per type by including itself); f16 and bf16 in f32. */
#ifndef RG_T

#include <math.h>
#include <string.h>

#include "backends/cpu/cpu.h"
#include "backends/cpu/gemm.h"
#include "backends/cpu/kernels.h"
#include "ir/ops/rnn.h"

typedef struct rg_job {
    amp_op op;                /* the forward op */
    int64_t S, B, I, H, D, G; /* steps, batch, input size, hidden size, directions, gate blocks */
    int layout;
    bool reverse;             /* direction "reverse": the only direction runs backwards */
    bool lbr;                 /* GRU linear_before_reset */
    bool coupled;             /* LSTM input_forget: f = 1 - i */
    const int32_t *lens;      /* NULL: every row runs S steps */
    int threads;
} rg_job;

/* Forward inputs in the tensors' own dtype (x, w, r, p), tensors read or written by rows, and
 * the outputs. */
typedef struct rg_io {
    amp_dtype dt;
    const void *x, *w, *r, *p;
    const amp_tensor *bias, *h0, *c0, *dy, *dyh, *dyc;
    amp_tensor *dx, *dw, *dr, *db, *dh0, *dc0, *dp;
} rg_io;

static int64_t len_of(const rg_job *j, int64_t b) { return j->lens ? j->lens[b] : j->S; }
static int64_t x_row(const rg_job *j, int64_t t, int64_t b) { return j->layout ? b * j->S + t : t * j->B + b; }
static int64_t y_off(const rg_job *j, int64_t t, int d, int64_t b) {
    return (j->layout ? (b * j->S + t) * j->D + d : (t * j->D + d) * j->B + b) * j->H;
}
static int64_t h_off(const rg_job *j, int d, int64_t b) { return (j->layout ? b * j->D + d : d * j->B + b) * j->H; }

/* Time step of row b at step `step` of a direction; false when the row has ended. */
static bool step_time(const rg_job *j, bool fwd, int64_t step, int64_t b, int64_t *t) {
    const int64_t len = len_of(j, b);
    if (step >= len) return false;
    *t = fwd ? step : len - 1 - step;
    return true;
}

/* The typed half, once per compute type (it undefines its parameters at its end). */
#define RG_T float
#define RG_DT AMP_F32
#define RG_WIDE16 1 /* also computes f16 and bf16 */
#define RG_EXP expf
#define RG_TANH tanhf
#define RG_FN(name) name##_f32
#define RG_GEMM amp_cpu_sgemm
#include __FILE__

#define RG_T double
#define RG_DT AMP_F64
#define RG_WIDE16 0
#define RG_EXP exp
#define RG_TANH tanh
#define RG_FN(name) name##_f64
#define RG_GEMM amp_cpu_dgemm
#include __FILE__

/* RNNGrad, GRUGrad and LSTMGrad: one direction's buffers (reused by the next),
 * amp_rnn_grad_ws_elems elements of the compute type. Inputs: the forward's, then dY. */
amp_status amp_cpu_ws_rnn_grad(const amp_kernel *k, size_t *bytes) {
    const amp_op op = k->n->op;
    const amp_op fop = op == AMP_OP_RNN_GRAD ? AMP_OP_RNN : op == AMP_OP_GRU_GRAD ? AMP_OP_GRU : AMP_OP_LSTM;
    if (k->nin < 3 || !k->in[0] || !k->in[1] || !k->in[2])
        return amp_kernel_fail(k, AMP_ERR_INVALID_GRAPH, "X, W and R are required");
    const amp_tensor *X = k->in[0], *W = k->in[1], *R = k->in[2];
    const amp_dtype dt = X->dtype;
    const int64_t layout = amp_attr_int(k->n, "layout", 0);
    const int64_t S = X->dims[layout ? 1 : 0], B = X->dims[layout ? 0 : 1], I = X->dims[2];
    const int64_t n = amp_rnn_grad_ws_elems(fop, dt == AMP_F16 || dt == AMP_BF16, S, B, I, R->dims[2], W->dims[0]);
    return amp_cpu_ws_elems(k, n, dt == AMP_F64 ? sizeof(double) : sizeof(float), bytes);
}

amp_status amp_cpu_rnn_grad(amp_kernel *k) {
    const amp_op op = k->n->op;
    const amp_op fop = op == AMP_OP_RNN_GRAD ? AMP_OP_RNN : op == AMP_OP_GRU_GRAD ? AMP_OP_GRU : AMP_OP_LSTM;
    const bool lstm = fop == AMP_OP_LSTM;
    const int nfi = lstm ? 8 : 6, nfo = lstm ? 3 : 2;
    if (k->nin != nfi + nfo || k->nout != (lstm ? 7 : 5))
        return amp_kernel_fail(k, AMP_ERR_INTERNAL, "%d inputs and %d outputs", k->nin, k->nout);
    const amp_tensor *X = k->in[0], *W = k->in[1], *R = k->in[2], *SL = k->in[4];
    rg_io io = {.dt = X->dtype, .x = X->data, .w = W->data, .r = R->data, .bias = k->in[3], .h0 = k->in[5],
                .c0 = lstm ? k->in[6] : NULL, .dy = k->in[nfi], .dyh = k->in[nfi + 1],
                .dyc = lstm ? k->in[nfi + 2] : NULL, .dx = k->out[0], .dw = k->out[1], .dr = k->out[2],
                .db = k->out[3], .dh0 = k->out[4], .dc0 = lstm ? k->out[5] : NULL, .dp = lstm ? k->out[6] : NULL};
    io.p = lstm && k->in[7] ? k->in[7]->data : NULL;
    rg_job j = {.op = fop, .threads = k->threads < 1 ? 1 : k->threads};
    j.layout = (int)amp_attr_int(k->n, "layout", 0);
    j.S = X->dims[j.layout ? 1 : 0];
    j.B = X->dims[j.layout ? 0 : 1];
    j.I = X->dims[2];
    j.H = R->dims[2];
    j.D = amp_rnn_directions(k->n);
    j.G = amp_rnn_ngates(fop);
    j.reverse = strcmp(amp_attr_str(k->n, "direction", "forward"), "reverse") == 0;
    j.lbr = amp_attr_int(k->n, "linear_before_reset", 0) != 0;
    j.coupled = amp_attr_int(k->n, "input_forget", 0) != 0;
    if (SL) {
        j.lens = SL->data;
        for (int64_t b = 0; b < j.B; b++)
            if (j.lens[b] < 0 || j.lens[b] > j.S)
                return amp_kernel_fail(k, AMP_ERR_INVALID_ARG, "sequence_lens[%lld] = %d is outside [0, %lld]",
                                       (long long)b, (int)j.lens[b], (long long)j.S);
    }
    const bool wide = io.dt == AMP_F16 || io.dt == AMP_BF16;
    const size_t es = io.dt == AMP_F64 ? sizeof(double) : sizeof(float);
    const int64_t need = amp_rnn_grad_ws_elems(fop, wide, j.S, j.B, j.I, j.H, j.D);
    if (need < 0 || (!k->ws && need > 0) || k->ws_bytes < (size_t)need * es)
        return amp_kernel_fail(k, AMP_ERR_INTERNAL, "workspace too small");
    if (io.dt == AMP_F64) run_f64(&j, &io, k->ws);
    else run_f32(&j, &io, k->ws);
    return AMP_OK;
}

#else /* RG_T: the typed half ----------------------------------------------------------------- */

#define real RG_T

/* dst[0..n) = (or +=) n elements of a tensor of dtype dt from element offset off. */
static void RG_FN(get)(amp_dtype dt, const void *src, int64_t off, real *dst, int64_t n) {
    if (dt == RG_DT) memcpy(dst, (const real *)src + off, sizeof(real) * (size_t)n);
    else
        for (int64_t i = 0; i < n; i++) dst[i] = (real)amp_ld(dt, src, off + i);
}
static void RG_FN(add)(amp_dtype dt, const void *src, int64_t off, real *dst, int64_t n) {
    if (dt == RG_DT)
        for (int64_t i = 0; i < n; i++) dst[i] += ((const real *)src)[off + i];
    else
        for (int64_t i = 0; i < n; i++) dst[i] += (real)amp_ld(dt, src, off + i);
}
static void RG_FN(put)(amp_tensor *t, int64_t off, const real *src, int64_t n) {
    if (t->dtype == RG_DT) memcpy((real *)t->data + off, src, sizeof(real) * (size_t)n);
    else
        for (int64_t i = 0; i < n; i++) amp_st(t->dtype, t->data, off + i, src[i]);
}

static real *RG_FN(carve)(real **ws, int64_t n) {
    real *p = *ws;
    *ws += (n + 15) / 16 * 16;
    return p;
}

static void RG_FN(zero)(real *p, int64_t n) { memset(p, 0, sizeof(real) * (size_t)n); }

/* C = A op B (+ C when acc), with K == 0 and empty products handled. */
static void RG_FN(gemm)(const rg_job *j, int ta, int tb, int64_t M, int64_t N, int64_t K, const real *A, int64_t lda,
                        const real *B, int64_t ldb, bool acc, real *C, int64_t ldc) {
    if (M == 0 || N == 0) return;
    if (K == 0) {
        if (!acc)
            for (int64_t m = 0; m < M; m++) RG_FN(zero)(C + m * ldc, N);
        return;
    }
    /* small products (most per-step ones) on one thread: see RNN_GEMM_PAR_MIN in rnn.c */
    RG_GEMM(M * N * K >= ((int64_t)1 << 20) ? j->threads : 1, ta, tb, M, N, K, 1, A, lda, B, ldb, acc ? 1 : 0, C, ldc);
}

/* Workspace of one direction (reused by the next), as amp_rnn_grad_ws_elems counts it. */
typedef struct RG_FN(bufs) {
    real *xs;   /* [S*B, I] X in step order (zero rows past a row's end); later dX in step order */
    real *a;    /* [S*B, GH] gate pre-activations from X, then their gradients (the X side) */
    real *hs;   /* [(S+1)*B, H] hidden state before every step and after the last */
    real *cs;   /* [(S+1)*B, H] LSTM cell state, likewise */
    real *gt;   /* [S*B, 4H] gate values: LSTM i o f g; GRU z r n and q = H*Rh^T + Rbh (lbr) or
                   u = r (.) H (no lbr); GRU's R-side gradients replace z r n after use */
    real *hr;   /* [B, GH] per-step H*R^T */
    real *dh, *dc, *dhp, *tmp; /* [B, H] */
    real *bias; /* [2GH] this direction's Wb and Rb (zero when absent) */
} RG_FN(bufs);

/* sigmoid and tanh over v[0..n): the vectorised f32 loops of backends/cpu/rnn.c, libm for f64 */
static void RG_FN(sigmoid_v)(real *v, int64_t n) {
#if RG_WIDE16
    amp_cpu_rnn_sigmoid_f32(v, n);
#else
    for (int64_t i = 0; i < n; i++) v[i] = v[i] >= 0 ? 1 / (1 + RG_EXP(-v[i])) : RG_EXP(v[i]) / (1 + RG_EXP(v[i]));
#endif
}
static void RG_FN(tanh_v)(real *v, int64_t n) {
#if RG_WIDE16
    amp_cpu_rnn_tanh_f32(v, n);
#else
    for (int64_t i = 0; i < n; i++) v[i] = RG_TANH(v[i]);
#endif
}

/* Forward recompute of direction d, keeping states and gates. */
static void RG_FN(forward)(const rg_job *j, int d, bool fwd, const RG_FN(bufs) *w, const real *rd, const real *pd) {
    const int64_t B = j->B, H = j->H, GH = j->G * H, S = j->S;
    const real *wb = w->bias, *rb = w->bias + GH;
    const bool gru0 = j->op == AMP_OP_GRU && !j->lbr;
    for (int64_t step = 0; step < S; step++) {
        const real *hp = w->hs + step * B * H, *cp = w->cs ? w->cs + step * B * H : NULL;
        real *hn = w->hs + (step + 1) * B * H, *cn = w->cs ? w->cs + (step + 1) * B * H : NULL;
        real *gs = w->gt ? w->gt + step * B * 4 * H : NULL;
        RG_FN(gemm)(j, 0, 1, B, gru0 ? 2 * H : GH, H, hp, H, rd, H, false, w->hr, GH);
        for (int64_t b = 0; b < B; b++) {
            int64_t t;
            const real *xa = w->a + (step * B + b) * GH, *a = w->hr + b * GH, *h0 = hp + b * H;
            real *h1 = hn + b * H, *g = gs ? gs + b * 4 * H : NULL;
            if (!step_time(j, fwd, step, b, &t)) {
                memcpy(h1, h0, sizeof(real) * (size_t)H);
                if (cn) memcpy(cn + b * H, cp + b * H, sizeof(real) * (size_t)H);
                if (g) RG_FN(zero)(g, 4 * H);
                continue;
            }
            if (j->op == AMP_OP_RNN) {
                for (int64_t i = 0; i < H; i++) h1[i] = xa[i] + a[i] + wb[i] + rb[i];
                RG_FN(tanh_v)(h1, H);
            } else if (j->op == AMP_OP_GRU) {
                for (int64_t i = 0; i < 2 * H; i++) g[i] = xa[i] + a[i] + wb[i] + rb[i];
                RG_FN(sigmoid_v)(g, 2 * H);
                if (j->lbr) {
                    for (int64_t i = 0; i < H; i++) {
                        g[3 * H + i] = a[2 * H + i] + rb[2 * H + i]; /* q */
                        g[2 * H + i] = xa[2 * H + i] + wb[2 * H + i] + g[H + i] * g[3 * H + i];
                    }
                    RG_FN(tanh_v)(g + 2 * H, H);
                    for (int64_t i = 0; i < H; i++) h1[i] = (1 - g[i]) * g[2 * H + i] + g[i] * h0[i];
                } else {
                    for (int64_t i = 0; i < H; i++) g[3 * H + i] = g[H + i] * h0[i]; /* u, for the second GEMM */
                }
            } else {
                /* gates i o f c in g; peepholes read the old cell state for i and f, the new one for o */
                const real *c0 = cp + b * H;
                real *c1 = cn + b * H, *tc = w->tmp + b * H;
                for (int64_t i = 0; i < GH; i++) g[i] = xa[i] + a[i] + wb[i] + rb[i];
                if (pd)
                    for (int64_t i = 0; i < H; i++) {
                        g[i] += pd[i] * c0[i];
                        g[2 * H + i] += pd[2 * H + i] * c0[i];
                    }
                RG_FN(sigmoid_v)(g, j->coupled ? H : 3 * H); /* o is redone below */
                if (j->coupled)
                    for (int64_t i = 0; i < H; i++) g[2 * H + i] = 1 - g[i];
                RG_FN(tanh_v)(g + 3 * H, H);
                for (int64_t i = 0; i < H; i++) {
                    c1[i] = g[2 * H + i] * c0[i] + g[i] * g[3 * H + i];
                    g[H + i] = xa[H + i] + a[H + i] + wb[H + i] + rb[H + i] + (pd ? pd[H + i] * c1[i] : 0);
                    tc[i] = c1[i];
                }
                RG_FN(sigmoid_v)(g + H, H);
                RG_FN(tanh_v)(tc, H);
                for (int64_t i = 0; i < H; i++) h1[i] = g[H + i] * tc[i];
            }
        }
        if (gru0) {
            /* the h gate: (r (.) H) Rh^T, then the new state */
            RG_FN(gemm)(j, 0, 1, B, H, H, gs + 3 * H, 4 * H, rd + 2 * H * H, H, false, w->hr + 2 * H, GH);
            for (int64_t b = 0; b < B; b++) {
                int64_t t;
                if (!step_time(j, fwd, step, b, &t)) continue;
                const real *xa = w->a + (step * B + b) * GH, *a = w->hr + b * GH, *h0 = hp + b * H;
                real *g = gs + b * 4 * H, *h1 = hn + b * H;
                for (int64_t i = 2 * H; i < 3 * H; i++) g[i] = xa[i] + wb[i] + a[i] + rb[i];
                RG_FN(tanh_v)(g + 2 * H, H);
                for (int64_t i = 0; i < H; i++) h1[i] = (1 - g[i]) * g[2 * H + i] + g[i] * h0[i];
            }
        }
    }
}

/* Backward pass of direction d: leaves in w->a the gradients of the gate pre-activations (X
 * side), in w->gt GRU's R-side gradients, in dh/dc those of the initial state; adds dP. */
static void RG_FN(backward)(const rg_job *j, int d, bool fwd, const rg_io *io, const RG_FN(bufs) *w, const real *rd,
                            const real *pd, real *gp) {
    const int64_t B = j->B, H = j->H, GH = j->G * H, S = j->S;
    for (int64_t b = 0; b < B; b++) {
        RG_FN(zero)(w->dh + b * H, H);
        if (w->cs) RG_FN(zero)(w->dc + b * H, H);
        if (len_of(j, b) == 0) continue; /* Y_h is zero then, whatever the initial state */
        if (io->dyh) RG_FN(get)(io->dyh->dtype, io->dyh->data, h_off(j, d, b), w->dh + b * H, H);
        if (io->dyc && w->cs) RG_FN(get)(io->dyc->dtype, io->dyc->data, h_off(j, d, b), w->dc + b * H, H);
    }
    for (int64_t step = S - 1; step >= 0; step--) {
        const real *hp = w->hs + step * B * H, *hn = w->hs + (step + 1) * B * H;
        const real *cp = w->cs ? w->cs + step * B * H : NULL, *cn = w->cs ? w->cs + (step + 1) * B * H : NULL;
        real *ga = w->a + step * B * GH, *gs = w->gt ? w->gt + step * B * 4 * H : NULL;
        for (int64_t b = 0; b < B; b++) {
            int64_t t;
            real *da = ga + b * GH, *dh = w->dh + b * H, *dhp = w->dhp + b * H;
            if (!step_time(j, fwd, step, b, &t)) {
                RG_FN(zero)(da, GH);
                RG_FN(zero)(dhp, H);
                continue;
            }
            if (io->dy) RG_FN(add)(io->dy->dtype, io->dy->data, y_off(j, t, d, b), dh, H);
            if (j->op == AMP_OP_RNN) {
                const real *h = hn + b * H;
                for (int64_t i = 0; i < H; i++) da[i] = dh[i] * (1 - h[i] * h[i]);
            } else if (j->op == AMP_OP_GRU) {
                real *g = gs + b * 4 * H;
                const real *h0 = hp + b * H;
                for (int64_t i = 0; i < H; i++) {
                    const real z = g[i], r = g[H + i], n = g[2 * H + i];
                    const real dan = dh[i] * (1 - z) * (1 - n * n);
                    const real daz = dh[i] * (h0[i] - n) * z * (1 - z);
                    da[i] = daz;
                    da[2 * H + i] = dan;
                    dhp[i] = dh[i] * z;
                    if (j->lbr) {
                        const real q = g[3 * H + i];
                        da[H + i] = dan * q * r * (1 - r);
                        /* R side: z, r as on the X side; the h block sees dq = dan * r */
                        g[i] = daz;
                        g[H + i] = da[H + i];
                        g[2 * H + i] = dan * r;
                    }
                }
            } else {
                const real *g = gs + b * 4 * H, *c0 = cp + b * H, *c1 = cn + b * H;
                real *dc = w->dc + b * H, *tcs = w->tmp + b * H;
                memcpy(tcs, c1, sizeof(real) * (size_t)H);
                RG_FN(tanh_v)(tcs, H);
                for (int64_t i = 0; i < H; i++) {
                    const real gi = g[i], go = g[H + i], gf = g[2 * H + i], gc = g[3 * H + i];
                    const real tc = tcs[i];
                    const real dao = dh[i] * tc * go * (1 - go);
                    const real dct = dc[i] + dh[i] * go * (1 - tc * tc) + (pd ? dao * pd[H + i] : 0);
                    real di = dct * gc;
                    const real df = dct * c0[i];
                    real daf = 0;
                    if (j->coupled) di -= df; /* f = 1 - i */
                    else daf = df * gf * (1 - gf);
                    const real dai = di * gi * (1 - gi), dac = dct * gi * (1 - gc * gc);
                    dc[i] = dct * gf + (pd ? dai * pd[i] + daf * pd[2 * H + i] : 0);
                    if (gp) {
                        gp[i] += dai * c0[i];
                        gp[H + i] += dao * c1[i];
                        gp[2 * H + i] += daf * c0[i];
                    }
                    da[i] = dai, da[H + i] = dao, da[2 * H + i] = daf, da[3 * H + i] = dac;
                }
            }
        }
        /* the gradient reaching the previous state */
        if (j->op == AMP_OP_GRU && j->lbr) {
            RG_FN(gemm)(j, 0, 0, B, H, GH, gs, 4 * H, rd, H, true, w->dhp, H);
        } else if (j->op == AMP_OP_GRU) {
            /* du = dan Rh; dr = du (.) H; the previous state also gets du (.) r */
            RG_FN(gemm)(j, 0, 0, B, H, H, ga + 2 * H, GH, rd + 2 * H * H, H, false, w->tmp, H);
            for (int64_t b = 0; b < B; b++) {
                int64_t t;
                if (!step_time(j, fwd, step, b, &t)) continue;
                const real *g = gs + b * 4 * H, *du = w->tmp + b * H, *h0 = hp + b * H;
                real *da = ga + b * GH, *dhp = w->dhp + b * H;
                for (int64_t i = 0; i < H; i++) {
                    const real r = g[H + i];
                    da[H + i] = du[i] * h0[i] * r * (1 - r);
                    dhp[i] += du[i] * r;
                }
            }
            RG_FN(gemm)(j, 0, 0, B, H, 2 * H, ga, GH, rd, H, true, w->dhp, H);
        } else {
            RG_FN(gemm)(j, 0, 0, B, H, GH, ga, GH, rd, H, false, w->dhp, H);
        }
        for (int64_t b = 0; b < B; b++) {
            int64_t t;
            if (step_time(j, fwd, step, b, &t)) memcpy(w->dh + b * H, w->dhp + b * H, sizeof(real) * (size_t)H);
        }
    }
}

/* Direction d: its slices of dW, dR, dB, dP (gw, gr, gb, gp) and its share of dX (gx). */
static void RG_FN(direction)(const rg_job *j, int d, const rg_io *io, const RG_FN(bufs) *w, const real *x,
                             const real *wt, const real *r, const real *p, real *gx, real *gw, real *gr, real *gb,
                             real *gp) {
    const int64_t S = j->S, B = j->B, I = j->I, H = j->H, GH = j->G * H, SB = S * B;
    const bool fwd = j->reverse ? false : d == 0;
    const real *wd = wt + d * GH * I, *rd = r + d * GH * H, *pd = p ? p + d * 3 * H : NULL;

    if (io->bias) RG_FN(get)(io->bias->dtype, io->bias->data, d * 2 * GH, w->bias, 2 * GH);
    else RG_FN(zero)(w->bias, 2 * GH);
    for (int64_t step = 0; step < S; step++)
        for (int64_t b = 0; b < B; b++) {
            int64_t t;
            real *row = w->xs + (step * B + b) * I;
            if (step_time(j, fwd, step, b, &t)) memcpy(row, x + x_row(j, t, b) * I, sizeof(real) * (size_t)I);
            else RG_FN(zero)(row, I);
        }
    RG_FN(gemm)(j, 0, 1, SB, GH, I, w->xs, I, wd, I, false, w->a, GH);
    for (int64_t b = 0; b < B; b++) {
        if (io->h0) RG_FN(get)(io->h0->dtype, io->h0->data, h_off(j, d, b), w->hs + b * H, H);
        else RG_FN(zero)(w->hs + b * H, H);
        if (!w->cs) continue;
        if (io->c0) RG_FN(get)(io->c0->dtype, io->c0->data, h_off(j, d, b), w->cs + b * H, H);
        else RG_FN(zero)(w->cs + b * H, H);
    }
    RG_FN(forward)(j, d, fwd, w, rd, pd);
    RG_FN(backward)(j, d, fwd, io, w, rd, pd, gp);
    for (int64_t b = 0; b < B; b++) {
        RG_FN(put)(io->dh0, h_off(j, d, b), w->dh + b * H, H);
        if (io->dc0) RG_FN(put)(io->dc0, h_off(j, d, b), w->dc + b * H, H);
    }

    /* dW = dA^T Xs, then dX (step order) = dA W into xs, added back at the rows' times */
    RG_FN(gemm)(j, 1, 0, GH, I, SB, w->a, GH, w->xs, I, false, gw, I);
    RG_FN(gemm)(j, 0, 0, SB, I, GH, w->a, GH, wd, I, false, w->xs, I);
    for (int64_t step = 0; step < S; step++)
        for (int64_t b = 0; b < B; b++) {
            int64_t t;
            if (!step_time(j, fwd, step, b, &t)) continue;
            const real *src = w->xs + (step * B + b) * I;
            real *dst = gx + x_row(j, t, b) * I;
            for (int64_t i = 0; i < I; i++) dst[i] += src[i];
        }
    /* dR = sum over steps of (R-side gate gradients)^T H_prev */
    if (j->op == AMP_OP_GRU && j->lbr) {
        RG_FN(gemm)(j, 1, 0, GH, H, SB, w->gt, 4 * H, w->hs, H, false, gr, H);
    } else if (j->op == AMP_OP_GRU) {
        RG_FN(gemm)(j, 1, 0, 2 * H, H, SB, w->a, GH, w->hs, H, false, gr, H);
        RG_FN(gemm)(j, 1, 0, H, H, SB, w->a + 2 * H, GH, w->gt + 3 * H, 4 * H, false, gr + 2 * H * H, H);
    } else {
        RG_FN(gemm)(j, 1, 0, GH, H, SB, w->a, GH, w->hs, H, false, gr, H);
    }
    /* dWb = column sums of dA; dRb the same except GRU's h block with linear_before_reset */
    RG_FN(zero)(gb, 2 * GH);
    for (int64_t row = 0; row < SB; row++) {
        const real *da = w->a + row * GH;
        for (int64_t i = 0; i < GH; i++) gb[i] += da[i];
    }
    memcpy(gb + GH, gb, sizeof(real) * (size_t)GH);
    if (j->op == AMP_OP_GRU && j->lbr) {
        RG_FN(zero)(gb + GH + 2 * H, H);
        for (int64_t row = 0; row < SB; row++)
            for (int64_t i = 0; i < H; i++) gb[GH + 2 * H + i] += w->gt[row * 4 * H + 2 * H + i];
    }
}

static void RG_FN(run)(const rg_job *j, const rg_io *io, void *wsv) {
    const int64_t S = j->S, B = j->B, I = j->I, H = j->H, D = j->D, GH = j->G * H;
    const bool lstm = j->op == AMP_OP_LSTM;
    real *ws = wsv;
    RG_FN(bufs) w;
    w.xs = RG_FN(carve)(&ws, S * B * I);
    w.a = RG_FN(carve)(&ws, S * B * GH);
    w.hs = RG_FN(carve)(&ws, (S + 1) * B * H);
    w.cs = lstm ? RG_FN(carve)(&ws, (S + 1) * B * H) : NULL;
    w.gt = j->G > 1 ? RG_FN(carve)(&ws, S * B * 4 * H) : NULL;
    w.hr = RG_FN(carve)(&ws, B * GH);
    w.dh = RG_FN(carve)(&ws, B * H);
    w.dc = RG_FN(carve)(&ws, B * H);
    w.dhp = RG_FN(carve)(&ws, B * H);
    w.tmp = RG_FN(carve)(&ws, B * H);
    w.bias = RG_FN(carve)(&ws, 2 * GH);
    const real *x = io->x, *wt = io->w, *r = io->r, *p = io->p;
    real *gx, *gw, *gr, *gb, *gp;
#if RG_WIDE16
    const bool wide = io->dt == AMP_F16 || io->dt == AMP_BF16;
    if (wide) {
        real *xc = RG_FN(carve)(&ws, S * B * I), *wc = RG_FN(carve)(&ws, D * GH * I);
        real *rc = RG_FN(carve)(&ws, D * GH * H), *pc = RG_FN(carve)(&ws, D * 3 * H);
        amp_widen16(io->dt, io->x, xc, S * B * I);
        amp_widen16(io->dt, io->w, wc, D * GH * I);
        amp_widen16(io->dt, io->r, rc, D * GH * H);
        if (io->p) amp_widen16(io->dt, io->p, pc, D * 3 * H);
        x = xc, wt = wc, r = rc, p = io->p ? pc : NULL;
        gx = RG_FN(carve)(&ws, S * B * I);
        gw = RG_FN(carve)(&ws, D * GH * I);
        gr = RG_FN(carve)(&ws, D * GH * H);
        gb = RG_FN(carve)(&ws, D * 2 * GH);
        gp = RG_FN(carve)(&ws, D * 3 * H);
    } else
#endif
    {
        gx = io->dx->data, gw = io->dw->data, gr = io->dr->data, gb = io->db->data;
        gp = io->dp ? io->dp->data : NULL;
    }
    RG_FN(zero)(gx, S * B * I);
    if (gp) RG_FN(zero)(gp, D * 3 * H);
    for (int d = 0; d < (int)D; d++)
        RG_FN(direction)(j, d, io, &w, x, wt, r, p, gx, gw + d * GH * I, gr + d * GH * H, gb + d * 2 * GH,
                         gp ? gp + d * 3 * H : NULL);
#if RG_WIDE16
    if (wide) {
        amp_narrow16(io->dt, gx, io->dx->data, S * B * I);
        amp_narrow16(io->dt, gw, io->dw->data, D * GH * I);
        amp_narrow16(io->dt, gr, io->dr->data, D * GH * H);
        amp_narrow16(io->dt, gb, io->db->data, D * 2 * GH);
        if (io->dp) amp_narrow16(io->dt, gp, io->dp->data, D * 3 * H);
    }
#endif
}

/* parameters of this pass */
#undef real
#undef RG_T
#undef RG_DT
#undef RG_WIDE16
#undef RG_EXP
#undef RG_TANH
#undef RG_FN
#undef RG_GEMM

#endif /* RG_T */

/* RNN, GRU and LSTM on the CPU (ONNX semantics, opsets 7 to 21; shape inference in
 * ir/ops/rnn.c).
 *
 * One direction at a time: X*W^T for every step in one GEMM, then per step H*R^T (one GEMM
 * over the batch) and the gate arithmetic row by row. f32 and f64 compute in their own type:
 * the typed second half of this file is compiled once for each, by including the file itself
 * with RNN_T set, so the hot loops stay plain C over one type. f16 and bf16 are widened to f32
 * in the workspace and the outputs rounded once per row.
 *
 * sequence_lens: batch row b takes steps 0..len_b-1, the reverse direction starting at time
 * len_b-1; Y past len_b is zero, and Y_h/Y_c hold the state after the row's last step, zero
 * when len_b is 0 (onnxruntime does the same). Clip bounds the pre-activation of every gate,
 * not the cell state fed to h (as onnxruntime). */
#ifndef RNN_T

#include <math.h>

#include "backends/cpu/cpu.h"
#include "backends/cpu/gemm.h"
#include "backends/cpu/kernels.h"
#include "backends/cpu/par.h"
#include "backends/cpu/vmath.h"
#include "ir/ops/rnn.h"

/* Activation numbers of ir/ops/rnn.c (the order of the ONNX operator docs). */
enum {
    ACT_RELU,
    ACT_TANH,
    ACT_SIGMOID,
    ACT_AFFINE,
    ACT_LEAKY_RELU,
    ACT_THRESHOLDED_RELU,
    ACT_SCALED_TANH,
    ACT_HARD_SIGMOID,
    ACT_ELU,
    ACT_SOFTSIGN,
    ACT_SOFTPLUS
};

/* Below this many gate values per step the rows run on one thread. */
#define RNN_PAR_MIN 16384
/* Below this many multiply-adds a GEMM runs on one thread: the per-step products are small and
 * come once per step, so a fork and join each time costs more than it saves (measured: an
 * LSTM of hidden size 32 at batch 64 ran 1.5x slower on two threads). */
#define RNN_GEMM_PAR_MIN ((int64_t)1 << 20)

static int gemm_threads(int threads, int64_t M, int64_t N, int64_t K) {
    return M * N * K >= RNN_GEMM_PAR_MIN ? threads : 1;
}

typedef struct rnn_job {
    amp_op op;
    int64_t S, B, I, H, D, G; /* steps, batch, input size, hidden size, directions, gate blocks */
    int layout;
    bool reverse;      /* direction "reverse": the only direction runs backwards */
    bool lbr;          /* GRU linear_before_reset */
    bool coupled;      /* LSTM input_forget: f = 1 - i */
    bool has_clip;
    float clip;
    int nf;            /* activations per direction */
    int kind[6];
    float alpha[6], beta[6];
    const int32_t *lens; /* NULL: every row runs S steps */
    int threads;
} rnn_job;

/* Inputs in the tensors' own dtype (x, w, r, p) and tensors read or written row by row. */
typedef struct rnn_io {
    const void *x, *w, *r, *p;
    const amp_tensor *bias, *h0, *c0;
    amp_tensor *y, *yh, *yc;
} rnn_io;

static int64_t len_of(const rnn_job *j, int64_t b) { return j->lens ? j->lens[b] : j->S; }

/* Row offsets (in elements) of X / X*W^T rows, Y rows and initial_h / Y_h rows. */
static int64_t x_row(const rnn_job *j, int64_t t, int64_t b) { return j->layout ? b * j->S + t : t * j->B + b; }
static int64_t y_off(const rnn_job *j, int64_t t, int d, int64_t b) {
    return (j->layout ? (b * j->S + t) * j->D + d : (t * j->D + d) * j->B + b) * j->H;
}
static int64_t h_off(const rnn_job *j, int d, int64_t b) { return (j->layout ? b * j->D + d : d * j->B + b) * j->H; }

/* ---- f32 sigmoid and tanh over arrays ---------------------------------------------------------
 * The gate activations are most of an RNN's time at the usual hidden sizes (libm's tanhf costs
 * more than the GEMM's multiply-adds per element): the vectorised functions of
 * backends/cpu/vmath.c, in place; also used by backends/cpu/rnn_grad.c. */

void amp_cpu_rnn_sigmoid_f32(float *v, int64_t n) { amp_vsigmoidf(v, v, n); }

void amp_cpu_rnn_tanh_f32(float *v, int64_t n) { amp_vtanhf(v, v, n); }

/* n elements of t from element offset off set to zero (all-zero bits in every float dtype). */
static void zero_out(amp_tensor *t, int64_t off, int64_t n) {
    const size_t es = amp_dtype_size(t->dtype);
    memset((char *)t->data + (size_t)off * es, 0, es * (size_t)n);
}

/* The typed half, once per compute type (it undefines its parameters at its end). */
#define RNN_T float
#define RNN_DT AMP_F32
#define RNN_WIDE16 1 /* also computes f16 and bf16 */
#define RNN_EXP expf
#define RNN_TANH tanhf
#define RNN_LOG1P log1pf
#define RNN_FABS fabsf
#define RNN_FN(name) name##_f32
#define RNN_GEMM amp_cpu_sgemm
#include __FILE__

#define RNN_T double
#define RNN_DT AMP_F64
#define RNN_WIDE16 0
#define RNN_EXP exp
#define RNN_TANH tanh
#define RNN_LOG1P log1p
#define RNN_FABS fabs
#define RNN_FN(name) name##_f64
#define RNN_GEMM amp_cpu_dgemm
#include __FILE__

/* RNN, GRU and LSTM: one direction's buffers (reused by the next), amp_rnn_fwd_ws_elems
 * elements of the compute type. */
amp_status amp_cpu_ws_rnn(const amp_kernel *k, size_t *bytes) {
    const amp_tensor *X = k->in[0], *R = k->in[2];
    const amp_dtype dt = X->dtype;
    const int64_t layout = amp_attr_int(k->n, "layout", 0);
    const int64_t S = X->dims[layout ? 1 : 0], B = X->dims[layout ? 0 : 1], I = X->dims[2], H = R->dims[2];
    const int64_t n = amp_rnn_fwd_ws_elems(k->n->op, dt == AMP_F16 || dt == AMP_BF16, S, B, I, H,
                                           amp_rnn_directions(k->n));
    return amp_cpu_ws_elems(k, n, dt == AMP_F64 ? sizeof(double) : sizeof(float), bytes);
}

static amp_status run_recurrent(amp_kernel *k) {
    const amp_tensor *X = k->in[0], *W = k->in[1], *R = k->in[2];
    const amp_tensor *Bi = k->nin > 3 ? k->in[3] : NULL, *SL = k->nin > 4 ? k->in[4] : NULL;
    const amp_tensor *H0 = k->nin > 5 ? k->in[5] : NULL, *C0 = k->nin > 6 ? k->in[6] : NULL;
    const amp_tensor *P = k->nin > 7 ? k->in[7] : NULL;
    amp_tensor *Y = k->nout > 0 ? k->out[0] : NULL, *Yh = k->nout > 1 ? k->out[1] : NULL;
    amp_tensor *Yc = k->nout > 2 ? k->out[2] : NULL;
    rnn_job j = {.op = k->n->op, .threads = k->threads < 1 ? 1 : k->threads};
    j.layout = (int)amp_attr_int(k->n, "layout", 0);
    j.S = X->dims[j.layout ? 1 : 0];
    j.B = X->dims[j.layout ? 0 : 1];
    j.I = X->dims[2];
    j.H = R->dims[2];
    j.D = amp_rnn_directions(k->n);
    j.G = amp_rnn_ngates(j.op);
    j.nf = amp_rnn_nacts(j.op);
    j.reverse = strcmp(amp_attr_str(k->n, "direction", "forward"), "reverse") == 0;
    j.lbr = amp_attr_int(k->n, "linear_before_reset", 0) != 0;
    j.coupled = amp_attr_int(k->n, "input_forget", 0) != 0;
    const amp_attr *clip = amp_node_attr_of(k->n, "clip", AMP_ATTR_FLOAT);
    j.has_clip = clip != NULL;
    j.clip = clip ? clip->f : 0.0f;
    char why[160];
    if (j.D < 1 || !amp_rnn_activations(k->n, (int)j.D, j.kind, j.alpha, j.beta, why, sizeof why))
        return amp_kernel_fail(k, AMP_ERR_INVALID_GRAPH, "bad attributes");
    if (SL) {
        j.lens = SL->data;
        for (int64_t b = 0; b < j.B; b++)
            if (j.lens[b] < 0 || j.lens[b] > j.S)
                return amp_kernel_fail(k, AMP_ERR_INVALID_ARG, "sequence_lens[%lld] = %d is outside [0, %lld]",
                                       (long long)b, (int)j.lens[b], (long long)j.S);
    }
    const amp_dtype dt = X->dtype;
    const bool wide = dt == AMP_F16 || dt == AMP_BF16;
    const size_t es = dt == AMP_F64 ? sizeof(double) : sizeof(float);
    const int64_t need = amp_rnn_fwd_ws_elems(j.op, wide, j.S, j.B, j.I, j.H, j.D);
    if (need < 0 || (!k->ws && need > 0) || k->ws_bytes < (size_t)need * es)
        return amp_kernel_fail(k, AMP_ERR_INTERNAL, "workspace too small");
    rnn_io io = {.x = X->data, .w = W->data, .r = R->data, .bias = Bi, .p = P ? P->data : NULL,
                 .h0 = H0, .c0 = C0, .y = Y, .yh = Yh, .yc = Yc};
    if (dt == AMP_F64) return run_f64(&j, &io, dt, k->ws);
    return run_f32(&j, &io, dt, k->ws);
}

amp_status amp_cpu_rnn(amp_kernel *k) { return run_recurrent(k); }
amp_status amp_cpu_gru(amp_kernel *k) { return run_recurrent(k); }
amp_status amp_cpu_lstm(amp_kernel *k) { return run_recurrent(k); }

#else /* RNN_T: the typed half ---------------------------------------------------------------- */

#define real RNN_T

#if !RNN_WIDE16
static real RNN_FN(sigmoid)(real x) {
    /* never exp of a large positive number */
    if (x >= 0) return 1 / (1 + RNN_EXP(-x));
    real e = RNN_EXP(x);
    return e / (1 + e);
}
#endif

/* v[0..n) = f(v) for activation kind with alpha a, beta b; the switch sits outside the loops. */
static void RNN_FN(activate)(int kind, real a, real b, real *v, int64_t n) {
    switch (kind) {
    case ACT_RELU:
        for (int64_t i = 0; i < n; i++) v[i] = v[i] > 0 ? v[i] : 0;
        break;
#if RNN_WIDE16
    case ACT_TANH: amp_cpu_rnn_tanh_f32(v, n); break;
    case ACT_SIGMOID: amp_cpu_rnn_sigmoid_f32(v, n); break;
#else
    case ACT_TANH:
        for (int64_t i = 0; i < n; i++) v[i] = RNN_TANH(v[i]);
        break;
    case ACT_SIGMOID:
        for (int64_t i = 0; i < n; i++) v[i] = RNN_FN(sigmoid)(v[i]);
        break;
#endif
    case ACT_AFFINE:
        for (int64_t i = 0; i < n; i++) v[i] = a * v[i] + b;
        break;
    case ACT_LEAKY_RELU:
        for (int64_t i = 0; i < n; i++) v[i] = v[i] >= 0 ? v[i] : a * v[i];
        break;
    case ACT_THRESHOLDED_RELU:
        for (int64_t i = 0; i < n; i++) v[i] = v[i] > a ? v[i] : 0;
        break;
    case ACT_SCALED_TANH:
        for (int64_t i = 0; i < n; i++) v[i] = a * RNN_TANH(b * v[i]);
        break;
    case ACT_HARD_SIGMOID:
        for (int64_t i = 0; i < n; i++) {
            real t = a * v[i] + b;
            v[i] = t < 0 ? 0 : t > 1 ? 1 : t;
        }
        break;
    case ACT_ELU:
        for (int64_t i = 0; i < n; i++) v[i] = v[i] >= 0 ? v[i] : a * (RNN_EXP(v[i]) - 1);
        break;
    case ACT_SOFTSIGN:
        for (int64_t i = 0; i < n; i++) v[i] = v[i] / (1 + RNN_FABS(v[i]));
        break;
    case ACT_SOFTPLUS:
        /* log(1 + e^x) without overflow */
        for (int64_t i = 0; i < n; i++) v[i] = v[i] > 0 ? v[i] + RNN_LOG1P(RNN_EXP(-v[i])) : RNN_LOG1P(RNN_EXP(v[i]));
        break;
    default: break;
    }
}

static void RNN_FN(clip)(const rnn_job *j, real *v, int64_t n) {
    if (!j->has_clip) return;
    const real c = (real)j->clip;
    for (int64_t i = 0; i < n; i++) v[i] = v[i] > c ? c : v[i] < -c ? -c : v[i];
}

/* Activation f (slot 0), g (1) or h (2) of direction d, over v[0..n). */
static void RNN_FN(act)(const rnn_job *j, int d, int slot, real *v, int64_t n) {
    int i = d * j->nf + slot;
    RNN_FN(activate)(j->kind[i], (real)j->alpha[i], (real)j->beta[i], v, n);
}

/* n elements of a tensor (dtype dt) from element offset off into dst, and back. */
static void RNN_FN(get)(amp_dtype dt, const void *src, int64_t off, real *dst, int64_t n) {
    if (dt == RNN_DT) memcpy(dst, (const real *)src + off, sizeof(real) * (size_t)n);
    else
        for (int64_t i = 0; i < n; i++) dst[i] = (real)amp_ld(dt, src, off + i);
}

static void RNN_FN(put)(amp_dtype dt, void *dst, int64_t off, const real *src, int64_t n) {
    if (dt == RNN_DT) memcpy((real *)dst + off, src, sizeof(real) * (size_t)n);
    else
        for (int64_t i = 0; i < n; i++) amp_st(dt, dst, off + i, src[i]);
}

/* The next n elements of the workspace, 16-aligned like amp_rnn_fwd_ws_elems counts them. */
static real *RNN_FN(carve)(real **ws, int64_t n) {
    real *p = *ws;
    *ws += (n + 15) / 16 * 16;
    return p;
}

/* One step of one direction: rows with step < len_b update their state from gates hr (H*R^T
 * already in it; rewritten with the gate values) and xw. */
typedef struct RNN_FN(step_ctx) {
    const rnn_job *j;
    int d;
    bool fwd;
    int64_t step;
    const real *xw, *r, *wb, *rb, *p;
    real *hr, *h, *c, *rh;
} RNN_FN(step_ctx);

static bool RNN_FN(active)(const RNN_FN(step_ctx) *s, int64_t b, int64_t *t) {
    int64_t len = len_of(s->j, b);
    if (s->step >= len) return false;
    *t = s->fwd ? s->step : len - 1 - s->step;
    return true;
}

static void RNN_FN(rnn_row)(const RNN_FN(step_ctx) *s, int64_t b, int64_t t) {
    const int64_t H = s->j->H;
    const real *x = s->xw + x_row(s->j, t, b) * H;
    real *a = s->hr + b * H, *h = s->h + b * H;
    for (int64_t i = 0; i < H; i++) a[i] += x[i] + s->wb[i] + s->rb[i];
    RNN_FN(clip)(s->j, a, H);
    RNN_FN(act)(s->j, s->d, 0, a, H);
    memcpy(h, a, sizeof(real) * (size_t)H);
}

/* GRU z and r (gates 0 and 1) of row b, into hr; for linear_before_reset 0 also r (.) H. */
static void RNN_FN(gru_zr_row)(const RNN_FN(step_ctx) *s, int64_t b, int64_t t) {
    const int64_t H = s->j->H, GH = 3 * H;
    const real *x = s->xw + x_row(s->j, t, b) * GH;
    real *a = s->hr + b * GH;
    for (int64_t i = 0; i < 2 * H; i++) a[i] += x[i] + s->wb[i] + s->rb[i];
    RNN_FN(clip)(s->j, a, 2 * H);
    RNN_FN(act)(s->j, s->d, 0, a, 2 * H);
    if (!s->j->lbr)
        for (int64_t i = 0; i < H; i++) s->rh[b * H + i] = a[H + i] * s->h[b * H + i];
}

static void RNN_FN(gru_h_row)(const RNN_FN(step_ctx) *s, int64_t b, int64_t t) {
    const int64_t H = s->j->H, GH = 3 * H;
    const real *x = s->xw + x_row(s->j, t, b) * GH + 2 * H;
    real *a = s->hr + b * GH, *n = a + 2 * H, *h = s->h + b * H;
    const real *wbh = s->wb + 2 * H, *rbh = s->rb + 2 * H;
    if (s->j->lbr)
        for (int64_t i = 0; i < H; i++) n[i] = x[i] + wbh[i] + a[H + i] * (n[i] + rbh[i]);
    else
        for (int64_t i = 0; i < H; i++) n[i] += x[i] + wbh[i] + rbh[i];
    RNN_FN(clip)(s->j, n, H);
    RNN_FN(act)(s->j, s->d, 1, n, H);
    for (int64_t i = 0; i < H; i++) h[i] = (1 - a[i]) * n[i] + a[i] * h[i];
}

static void RNN_FN(lstm_row)(const RNN_FN(step_ctx) *s, int64_t b, int64_t t) {
    const int64_t H = s->j->H, GH = 4 * H;
    const real *x = s->xw + x_row(s->j, t, b) * GH;
    real *a = s->hr + b * GH, *h = s->h + b * H, *c = s->c + b * H;
    real *gi = a, *go = a + H, *gf = a + 2 * H, *gc = a + 3 * H;
    for (int64_t i = 0; i < GH; i++) a[i] += x[i] + s->wb[i] + s->rb[i];
    if (s->p)
        for (int64_t i = 0; i < H; i++) {
            gi[i] += s->p[i] * c[i];
            gf[i] += s->p[2 * H + i] * c[i];
        }
    RNN_FN(clip)(s->j, gi, H);
    RNN_FN(act)(s->j, s->d, 0, gi, H);
    if (s->j->coupled) {
        for (int64_t i = 0; i < H; i++) gf[i] = 1 - gi[i];
    } else {
        RNN_FN(clip)(s->j, gf, H);
        RNN_FN(act)(s->j, s->d, 0, gf, H);
    }
    RNN_FN(clip)(s->j, gc, H);
    RNN_FN(act)(s->j, s->d, 1, gc, H);
    for (int64_t i = 0; i < H; i++) c[i] = gf[i] * c[i] + gi[i] * gc[i];
    if (s->p)
        for (int64_t i = 0; i < H; i++) go[i] += s->p[H + i] * c[i];
    RNN_FN(clip)(s->j, go, H);
    RNN_FN(act)(s->j, s->d, 0, go, H);
    /* h(C) into gc, which is spent */
    memcpy(gc, c, sizeof(real) * (size_t)H);
    RNN_FN(act)(s->j, s->d, 2, gc, H);
    for (int64_t i = 0; i < H; i++) h[i] = go[i] * gc[i];
}

typedef void (*RNN_FN(row_fn))(const RNN_FN(step_ctx) *s, int64_t b, int64_t t);

/* fn over the active rows of the step, on several threads when the step is large. */
static void RNN_FN(rows)(const RNN_FN(step_ctx) *s, RNN_FN(row_fn) fn) {
    const rnn_job *j = s->j;
    const int nt = j->threads > 1 && j->B > 1 && j->B * j->G * j->H >= RNN_PAR_MIN ? j->threads : 1;
    AMP_PAR_FOR(nt > 1, num_threads(nt) schedule(static),
    for (int64_t b = 0; b < j->B; b++) {
        int64_t t;
        if (RNN_FN(active)(s, b, &t)) fn(s, b, t);
    });
}

/* The workspace of one direction (reused by the next), as amp_rnn_fwd_ws_elems counts it. */
typedef struct RNN_FN(bufs) {
    real *xw;   /* [S*B, GH] X*W^T, rows in X's order */
    real *hr;   /* [B, GH] H*R^T of the step, then the gate values */
    real *h, *c; /* [B, H] hidden and cell state */
    real *rh;   /* [B, H] GRU's r (.) H */
    real *bias; /* [2GH] Wb and Rb (zero when absent) */
} RNN_FN(bufs);

/* Direction d over every step. x, w, r, p are in the compute type. */
static void RNN_FN(direction)(const rnn_job *j, int d, const rnn_io *io, const real *x, const real *w,
                              const real *r, const real *p, const RNN_FN(bufs) *ws) {
    const int64_t S = j->S, B = j->B, I = j->I, H = j->H, GH = j->G * H;
    real *xw = ws->xw, *hr = ws->hr, *h = ws->h, *c = ws->c, *rh = ws->rh, *bias = ws->bias;
    const real *wd = w + d * GH * I, *rd = r + d * GH * H;
    const bool fwd = j->reverse ? false : d == 0;

    /* rows that never run still go through GRU's r (.) H GEMM: no garbage there */
    memset(rh, 0, sizeof(real) * (size_t)(B * H));
    /* biases (zero when absent) and the initial state */
    if (io->bias) RNN_FN(get)(io->bias->dtype, io->bias->data, d * 2 * GH, bias, 2 * GH);
    else memset(bias, 0, sizeof(real) * (size_t)(2 * GH));
    for (int64_t b = 0; b < B; b++) {
        if (io->h0) RNN_FN(get)(io->h0->dtype, io->h0->data, h_off(j, d, b), h + b * H, H);
        else memset(h + b * H, 0, sizeof(real) * (size_t)H);
        if (j->op != AMP_OP_LSTM) continue;
        if (io->c0) RNN_FN(get)(io->c0->dtype, io->c0->data, h_off(j, d, b), c + b * H, H);
        else memset(c + b * H, 0, sizeof(real) * (size_t)H);
    }

    /* X*W^T of every step at once; rows in X's own order */
    if (I > 0) RNN_GEMM(gemm_threads(j->threads, S * B, GH, I), 0, 1, S * B, GH, I, 1, x, I, wd, I, 0, xw, GH);
    else memset(xw, 0, sizeof(real) * (size_t)(S * B * GH));

    RNN_FN(step_ctx) s = {.j = j, .d = d, .fwd = fwd, .xw = xw, .r = rd, .wb = bias, .rb = bias + GH,
                          .p = p ? p + d * 3 * H : NULL, .hr = hr, .h = h, .c = c, .rh = rh};
    int64_t steps = 0;
    for (int64_t b = 0; b < B; b++) steps = len_of(j, b) > steps ? len_of(j, b) : steps;
    for (int64_t step = 0; step < steps; step++) {
        s.step = step;
        if (j->op == AMP_OP_GRU && !j->lbr) {
            /* z and r first: the h gate multiplies r (.) H by Rh */
            RNN_GEMM(gemm_threads(j->threads, B, 2 * H, H), 0, 1, B, 2 * H, H, 1, h, H, rd, H, 0, hr, GH);
            RNN_FN(rows)(&s, RNN_FN(gru_zr_row));
            RNN_GEMM(gemm_threads(j->threads, B, H, H), 0, 1, B, H, H, 1, rh, H, rd + 2 * H * H, H, 0, hr + 2 * H, GH);
            RNN_FN(rows)(&s, RNN_FN(gru_h_row));
        } else {
            RNN_GEMM(gemm_threads(j->threads, B, GH, H), 0, 1, B, GH, H, 1, h, H, rd, H, 0, hr, GH);
            if (j->op == AMP_OP_RNN) RNN_FN(rows)(&s, RNN_FN(rnn_row));
            else if (j->op == AMP_OP_LSTM) RNN_FN(rows)(&s, RNN_FN(lstm_row));
            else {
                RNN_FN(rows)(&s, RNN_FN(gru_zr_row));
                RNN_FN(rows)(&s, RNN_FN(gru_h_row));
            }
        }
        if (io->y)
            for (int64_t b = 0; b < B; b++) {
                int64_t t;
                if (RNN_FN(active)(&s, b, &t)) RNN_FN(put)(io->y->dtype, io->y->data, y_off(j, t, d, b), h + b * H, H);
            }
    }
    /* Y past each row's end is zero; Y_h and Y_c are the last state (zero for an empty row) */
    for (int64_t b = 0; b < B; b++) {
        const int64_t len = len_of(j, b);
        if (io->y)
            for (int64_t t = len; t < S; t++) zero_out(io->y, y_off(j, t, d, b), H);
        amp_tensor *outs[2] = {io->yh, io->yc};
        real *state[2] = {h, c};
        for (int o = 0; o < 2; o++) {
            if (!outs[o]) continue;
            if (len > 0) RNN_FN(put)(outs[o]->dtype, outs[o]->data, h_off(j, d, b), state[o] + b * H, H);
            else zero_out(outs[o], h_off(j, d, b), H);
        }
    }
}

/* Every direction; io's tensors are of dtype dt (RNN_DT, or f16/bf16 computed in f32). */
static amp_status RNN_FN(run)(const rnn_job *j, const rnn_io *io, amp_dtype dt, void *wsv) {
    const int64_t S = j->S, B = j->B, H = j->H, D = j->D, GH = j->G * H;
    real *ws = wsv;
    RNN_FN(bufs) w;
    w.xw = RNN_FN(carve)(&ws, S * B * GH);
    w.hr = RNN_FN(carve)(&ws, B * GH);
    w.h = RNN_FN(carve)(&ws, B * H);
    w.c = RNN_FN(carve)(&ws, B * H);
    w.rh = RNN_FN(carve)(&ws, B * H);
    w.bias = RNN_FN(carve)(&ws, 2 * GH);
    const real *x = io->x, *wt = io->w, *r = io->r, *p = io->p;
#if RNN_WIDE16
    if (dt == AMP_F16 || dt == AMP_BF16) {
        const int64_t I = j->I;
        real *xc = RNN_FN(carve)(&ws, S * B * I), *wc = RNN_FN(carve)(&ws, D * GH * I);
        real *rc = RNN_FN(carve)(&ws, D * GH * H), *pc = RNN_FN(carve)(&ws, D * 3 * H);
        amp_widen16(dt, io->x, xc, S * B * I);
        amp_widen16(dt, io->w, wc, D * GH * I);
        amp_widen16(dt, io->r, rc, D * GH * H);
        if (io->p) amp_widen16(dt, io->p, pc, D * 3 * H);
        x = xc, wt = wc, r = rc, p = io->p ? pc : NULL;
    }
#endif
    (void)dt;
    for (int d = 0; d < (int)D; d++) RNN_FN(direction)(j, d, io, x, wt, r, p, &w);
    return AMP_OK;
}

/* parameters of this pass */
#undef real
#undef RNN_T
#undef RNN_DT
#undef RNN_FN
#undef RNN_GEMM
#undef RNN_WIDE16
#undef RNN_EXP
#undef RNN_TANH
#undef RNN_LOG1P
#undef RNN_FABS

#endif /* RNN_T */

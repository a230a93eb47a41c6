/* The LSTM family (backends/cuda/op_rnn.c, k_rnn.cu) on the emulator against the CPU backend:
 * LSTM and LSTMGrad through their amp_cuda_ops_rnn entries (supports, prepare, run, release) on
 * device memory, the same node on the CPU (amp_backend_run_once; for LSTMGrad the CPU's
 * gradient kernel), in f32, f16 and bf16, odd sizes (batch 3, hidden 5, input 7, 4 steps and 1;
 * one longer case of 9 steps, batch 7, input 33, hidden 17; no steps; no rows), each direction
 * and layout, with and without bias, initial states, peepholes and sequence_lens (with an empty
 * row), clip (forward only) and input_forget; every output compared.
 *
 * Thresholds: the GEMMs (cuBLASLt's, emulated from its descriptors) sum in another order than
 * the CPU's, so a product differs by an ulp or so, and the recurrence carries it through every
 * step's sigmoid and tanh: f32 1e-6 relative L2 holds (the gate math itself is the CPU's,
 * operation for operation); f16 1e-3, bf16 8e-3 (a rounding flipped by such an ulp moves a value
 * by one 16-bit ulp). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "backends/backend.h"
#include "backends/cuda/cuda_backend.h"
#ifdef AMP_CUDA_EMULATED
#include "backends/cuda/emu/fake_runtime.h"
#endif
#include "base/elem.h"
#include "ir/grad.h"
#include "tests/cuda/cuda_optest.h"

/* One LSTM variant. */
typedef struct lstm_case {
    int64_t S, B, I, H;
    const char *dir;
    int layout;
    bool bias, h0, c0, peep, lens, clip, coupled;
} lstm_case;

static const lstm_case lstm_cases[] = {
    {4, 3, 7, 5, "forward", 0, true, true, true, false, false, false, false},
    {4, 3, 7, 5, "forward", 0, false, false, false, false, false, false, false},
    {1, 3, 7, 5, "forward", 0, true, false, false, false, false, false, false},
    {4, 3, 7, 5, "reverse", 0, true, true, true, false, false, false, false},
    {4, 3, 7, 5, "bidirectional", 0, true, true, true, false, false, false, false},
    {1, 3, 7, 5, "bidirectional", 1, false, true, false, false, false, false, false},
    {4, 3, 7, 5, "bidirectional", 1, true, true, true, true, false, false, false},
    {4, 3, 7, 5, "forward", 0, true, true, true, true, true, false, false},
    {4, 3, 7, 5, "bidirectional", 0, true, false, false, false, true, true, false},
    {4, 3, 7, 5, "reverse", 1, true, true, true, true, true, false, true},
    {4, 1, 1, 1, "forward", 0, true, true, true, false, false, false, false},
    {9, 7, 33, 17, "bidirectional", 0, true, true, true, true, true, false, false}, /* longer */
    {0, 3, 7, 5, "bidirectional", 0, true, true, true, false, false, false, false}, /* no steps */
    {4, 0, 7, 5, "forward", 1, true, true, true, false, false, false, false},       /* no rows */
};

/* inputs of case c in dtype dt: X W R B sequence_lens initial_h initial_c P */
static void lstm_inputs(const lstm_case *c, amp_dtype dt, uint64_t seed, amp_tensor **in) {
    const int64_t D = strcmp(c->dir, "bidirectional") ? 1 : 2;
    const int64_t xd[3] = {c->layout ? c->B : c->S, c->layout ? c->S : c->B, c->I};
    const int64_t wd[3] = {D, 4 * c->H, c->I}, rd[3] = {D, 4 * c->H, c->H}, bd[2] = {D, 8 * c->H};
    const int64_t hd[3] = {c->layout ? c->B : D, c->layout ? D : c->B, c->H}, pd[2] = {D, 3 * c->H};
    in[0] = rnd(dt, 3, xd, seed, -1.5f, 1.5f);
    in[1] = rnd(dt, 3, wd, seed + 1, -0.7f, 0.7f);
    in[2] = rnd(dt, 3, rd, seed + 2, -0.7f, 0.7f);
    in[3] = c->bias ? rnd(dt, 2, bd, seed + 3, -0.5f, 0.5f) : NULL;
    in[4] = NULL;
    if (c->lens) {
        in[4] = tens(AMP_I32, 1, &c->B);
        for (int64_t b = 0; b < c->B; b++) ((int32_t *)in[4]->data)[b] = (int32_t)((c->S - b) > 0 ? c->S - b : 0);
        if (c->B > 2) ((int32_t *)in[4]->data)[2] = 0; /* an empty row */
    }
    in[5] = c->h0 ? rnd(dt, 3, hd, seed + 5, -0.8f, 0.8f) : NULL;
    in[6] = c->c0 ? rnd(dt, 3, hd, seed + 6, -0.8f, 0.8f) : NULL;
    in[7] = c->peep ? rnd(dt, 2, pd, seed + 7, -0.5f, 0.5f) : NULL;
}

static void lstm_node(tnode *t, const lstm_case *c) {
    tn_init(t, "LSTM", false);
    tn_i(t, "hidden_size", c->H);
    tn_s(t, "direction", c->dir);
    tn_i(t, "layout", c->layout);
    if (c->clip) tn_f(t, "clip", 0.9f);
    if (c->coupled) tn_i(t, "input_forget", 1);
}

static void t_lstm(void) {
    CT_CHECK(setup_lt(), "setup");
    worst_reset();
    for (size_t c = 0; c < sizeof lstm_cases / sizeof lstm_cases[0]; c++)
        for (int d = 0; d < 3; d++) {
            const lstm_case *lc = &lstm_cases[c];
            tnode t;
            lstm_node(&t, lc);
            amp_tensor *in[8];
            lstm_inputs(lc, kfloats[d], 100 + c, in);
            CHECK_NODE(&t, 8, in, 3, false, tol_of(kfloats[d]), "LSTM case %zu %s %s layout %d", c, lc->dir,
                       amp_dtype_name(kfloats[d]), lc->layout);
            free_all(in, 8);
        }
    worst_print();
}

/* Y alone (Y_h and Y_c not asked for), and Y_h alone. */
static void t_lstm_some_outputs(void) {
    CT_CHECK(setup_lt(), "setup");
    const lstm_case *lc = &lstm_cases[4];
    for (int nout = 1; nout <= 2; nout++) {
        tnode t;
        lstm_node(&t, lc);
        amp_tensor *in[8];
        lstm_inputs(lc, AMP_F32, 7, in);
        CHECK_NODE(&t, 3, in, nout, false, 1e-6, "LSTM with %d outputs", nout);
        free_all(in, 8);
    }
}

/* Other activations are refused, and prepare says why. */
static void t_lstm_refused(void) {
    CT_CHECK(setup_lt(), "setup");
    const lstm_case *lc = &lstm_cases[0];
    tnode t;
    lstm_node(&t, lc);
    const char *acts[3] = {"Sigmoid", "Relu", "Tanh"};
    amp_attr *a = tn_add(&t, "activations", AMP_ATTR_STRINGS);
    a->strings = (char **)acts;
    a->n = 3;
    amp_tensor *in[8], *ref[3], *got[3];
    lstm_inputs(lc, AMP_F32, 9, in);
    amp_status s = run_both(&t, 8, in, 3, ref, got);
    CT_CHECK(s == AMP_ERR_UNSUPPORTED, "LSTM with Relu: %s", amp_status_name(s));
    amp_kernel k = {.ctx = ctx, .n = &t.n, .opset = t.opset, .nin = 8, .nout = 0, .in = in, .out = NULL};
    void *state = NULL;
    size_t ws = 0;
    s = amp_cuda_ops_rnn[0].prepare(&cu, &k, &state, &ws);
    CT_CHECK(s == AMP_ERR_UNSUPPORTED && strstr(amp_context_last_error(ctx), "default activations"),
             "prepare's message: %s", amp_context_last_error(ctx));
    free_all(in, 8);
}


/* ---- LSTMGrad -------------------------------------------------------------------------------
 * The node has 11 inputs and 7 outputs, more than cuda_optest.h's run_both holds (8 and 4), so
 * it runs here: the CPU's gradient kernel into ref, the family entry on device memory into got. */

#define GIN 11
#define GOUT 7

/* Output shapes: dX, dW, dR like X, W, R; dB [D, 8H]; dh0, dc0 [D, B, H] (layout 1: [B, D, H]); dP [D, 3H]. */
static void grad_outputs(const lstm_case *c, amp_dtype dt, amp_tensor *const *in, amp_tensor **out) {
    const int64_t D = in[1]->dims[0], H = c->H;
    const int64_t bd[2] = {D, 8 * H}, pd[2] = {D, 3 * H};
    const int64_t hd[3] = {c->layout ? c->B : D, c->layout ? D : c->B, H};
    out[0] = tens(dt, 3, in[0]->dims);
    out[1] = tens(dt, 3, in[1]->dims);
    out[2] = tens(dt, 3, in[2]->dims);
    out[3] = tens(dt, 2, bd);
    out[4] = tens(dt, 3, hd);
    out[5] = tens(dt, 3, hd);
    out[6] = tens(dt, 2, pd);
    for (int o = 0; o < GOUT; o++)
        if (out[o]->nbytes) memset(out[o]->data, 0x7f, out[o]->nbytes);
}

/* A host tensor's device twin (same view, data on the device; NULL stays NULL). */
static amp_tensor *dev_twin(amp_tensor *v, const amp_tensor *t, bool copy) {
    if (!t) return NULL;
    *v = *t;
    v->owns = 0;
    v->data = NULL;
    if (t->nbytes && cudaMalloc(&v->data, t->nbytes) != cudaSuccess) return NULL;
    if (copy && t->nbytes && cudaMemcpy(v->data, t->data, t->nbytes, cudaMemcpyHostToDevice) != cudaSuccess) return NULL;
    return v;
}

static amp_status grad_both(tnode *t, amp_tensor *const *in, amp_tensor **ref, amp_tensor **got) {
    static int ids_in[GIN], ids_out[GOUT];
    for (int i = 0; i < GIN; i++) ids_in[i] = in[i] ? i : -1;
    for (int o = 0; o < GOUT; o++) ids_out[o] = o;
    t->n.inputs = ids_in;
    t->n.n_inputs = GIN;
    t->n.outputs = ids_out;
    t->n.n_outputs = GOUT;
    amp_kernel k = {.ctx = ctx, .n = &t->n, .opset = t->opset, .nin = GIN, .nout = GOUT, .in = in, .out = ref,
                    .threads = 1};
    amp_status s = amp_backend_run_once(cpu, &k);
    if (s) return s;
    amp_tensor dv[GIN + GOUT], pv[GIN + GOUT], *din[GIN], *dout[GOUT], *pin[GIN], *pout[GOUT];
    for (int i = 0; i < GIN; i++) {
        din[i] = dev_twin(&dv[i], in[i], true);
        if (in[i] && !din[i]) s = AMP_ERR_BACKEND;
        pin[i] = NULL;
        if (!in[i]) continue;
        pv[i] = *in[i];
        pv[i].data = NULL; /* LSTMGrad has no plan-time values the kernels read */
        pin[i] = &pv[i];
    }
    for (int o = 0; o < GOUT; o++) {
        dout[o] = dev_twin(&dv[GIN + o], ref[o], false);
        if (!dout[o]) s = AMP_ERR_BACKEND;
        pv[GIN + o] = *ref[o];
        pv[GIN + o].data = NULL;
        pout[o] = &pv[GIN + o];
    }
    const amp_cuda_op *e = entry_of(t->n.op);
    amp_kernel kp = {.ctx = ctx, .n = &t->n, .opset = t->opset, .nin = GIN, .nout = GOUT, .in = pin, .out = pout};
    amp_kernel kd = {.ctx = ctx, .n = &t->n, .opset = t->opset, .nin = GIN, .nout = GOUT, .in = din, .out = dout};
    void *state = NULL, *ws = NULL;
    size_t ws_bytes = 0;
    if (!s && (!e || !e->supports(&cu, &kp))) s = AMP_ERR_UNSUPPORTED;
    if (!s) s = e->prepare(&cu, &kp, &state, &ws_bytes);
    if (!s && ws_bytes && cudaMalloc(&ws, ws_bytes) != cudaSuccess) s = AMP_ERR_BACKEND;
    kd.ws = ws;
    kd.ws_bytes = ws_bytes;
    if (!s) s = e->run(&cu, &kd, state);
    if (!s && cudaStreamSynchronize(cu.stream) != cudaSuccess) s = AMP_ERR_BACKEND;
    for (int o = 0; o < GOUT; o++) {
        got[o] = tens(ref[o]->dtype, ref[o]->rank, ref[o]->dims);
        if (!s && got[o]->nbytes &&
            cudaMemcpy(got[o]->data, dout[o]->data, got[o]->nbytes, cudaMemcpyDeviceToHost) != cudaSuccess)
            s = AMP_ERR_BACKEND;
    }
    if (e && e->release) e->release(&cu, state);
    cudaFree(ws);
    for (int i = 0; i < GIN; i++)
        if (din[i]) cudaFree(din[i]->data);
    for (int o = 0; o < GOUT; o++)
        if (dout[o]) cudaFree(dout[o]->data);
    return s;
}

static void t_lstm_grad(void) {
    CT_CHECK(setup_lt(), "setup");
    worst_reset();
    int compared = 0;
    for (size_t c = 0; c < sizeof lstm_cases / sizeof lstm_cases[0]; c++) {
        const lstm_case *lc = &lstm_cases[c];
        if (lc->clip) continue; /* clip has no gradient */
        for (int d = 0; d < 3; d++) {
            const amp_dtype dt = kfloats[d];
            tnode t;
            lstm_node(&t, lc);
            tn_init(&t, "LSTMGrad", true);
            /* the forward node's attributes on the gradient node */
            tn_i(&t, "hidden_size", lc->H);
            tn_s(&t, "direction", lc->dir);
            tn_i(&t, "layout", lc->layout);
            if (lc->coupled) tn_i(&t, "input_forget", 1);
            amp_tensor *in[GIN], *ref[GOUT], *got[GOUT];
            lstm_inputs(lc, dt, 300 + c, in);
            const int64_t D = in[1]->dims[0];
            const int64_t yd[4] = {lc->layout ? lc->B : lc->S, lc->layout ? lc->S : D, lc->layout ? D : lc->B, lc->H};
            const int64_t hd[3] = {lc->layout ? lc->B : D, lc->layout ? D : lc->B, lc->H};
            in[8] = rnd(dt, 4, yd, 400 + c, -1.0f, 1.0f);
            in[9] = c % 2 ? rnd(dt, 3, hd, 500 + c, -1.0f, 1.0f) : NULL;
            in[10] = c % 3 ? rnd(dt, 3, hd, 600 + c, -1.0f, 1.0f) : NULL;
            grad_outputs(lc, dt, in, ref);
            amp_status s = grad_both(&t, in, ref, got);
            CT_CHECK(s == AMP_OK, "LSTMGrad case %zu %s: %s: %s", c, amp_dtype_name(dt), amp_status_name(s),
                     amp_context_last_error(ctx));
            for (int o = 0; o < GOUT; o++) {
                const double e = rel_err(got[o], ref[o]);
                worst_note(dt, e);
                const bool ok = e <= tol_of(dt);
                if (!ok) {
                    const int64_t at = first_diff(got[o], ref[o]);
                    fprintf(stderr, "  LSTMGrad case %zu %s output %d: error %g (at %lld: %.9g vs CPU %.9g)\n", c,
                            amp_dtype_name(dt), o, e, (long long)at, amp_ld(dt, got[o]->data, at),
                            amp_ld(dt, ref[o]->data, at));
                }
                CT_CHECK(ok, "LSTMGrad case %zu %s output %d: error %g > %g", c, amp_dtype_name(dt), o, e, tol_of(dt));
                compared++;
            }
            free_all(in, GIN);
            free_all(ref, GOUT);
            free_all(got, GOUT);
        }
    }
    CT_CHECK(compared > 0, "nothing compared");
    worst_print();
}

/* LSTMGrad with clip (no gradient) is refused, and prepare says why. */
static void t_lstm_grad_refused(void) {
    CT_CHECK(setup_lt(), "setup");
    const lstm_case *lc = &lstm_cases[0];
    tnode t;
    tn_init(&t, "LSTMGrad", true);
    tn_i(&t, "hidden_size", lc->H);
    tn_f(&t, "clip", 0.5f);
    amp_tensor *in[GIN] = {NULL}, *out[GOUT];
    lstm_inputs(lc, AMP_F32, 11, in);
    grad_outputs(lc, AMP_F32, in, out);
    amp_kernel k = {.ctx = ctx, .n = &t.n, .opset = t.opset, .nin = GIN, .nout = GOUT, .in = in, .out = out};
    const amp_cuda_op *e = entry_of(AMP_OP_LSTM_GRAD);
    CT_CHECK(e && !e->supports(&cu, &k), "LSTMGrad with clip is supported");
    void *state = NULL;
    size_t ws = 0;
    amp_status s = e->prepare(&cu, &k, &state, &ws);
    CT_CHECK(s == AMP_ERR_UNSUPPORTED && strstr(amp_context_last_error(ctx), "clip"), "prepare's message: %s",
             amp_context_last_error(ctx));
    free_all(in, GIN);
    free_all(out, GOUT);
}

static const ct_case cases[] = {
    {"lstm", t_lstm},
    {"lstm_some_outputs", t_lstm_some_outputs},
    {"lstm_refused", t_lstm_refused},
    {"lstm_grad", t_lstm_grad},
    {"lstm_grad_refused", t_lstm_grad_refused},
    {NULL, NULL},
};

int main(int argc, char **argv) { return ot_main(argc, argv, cases); }

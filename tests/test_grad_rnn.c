/* Gradients of RNN, GRU and LSTM (ir/ops/rnn_grad.c, backends/cpu/rnn_grad.c).
 *
 * Finite-difference checks (tests/gradcheck.h) in f64 with eps 1e-6 at seq 3, batch 2, input
 * 3, hidden 4: every direction and layout, with and without sequence_lens (a row shorter than
 * the sequence, one of length zero), GRU with and without linear_before_reset, LSTM with
 * peepholes and input_forget; the gradient of X, W, R, B, initial_h (, initial_c, P) must
 * agree within a relative L2 error of 1e-5, with every output in the loss and with Y or Y_h
 * alone. The training ops also run in f16, bf16 and f32 against their f64 result on the same
 * rounded inputs, and configurations without a gradient must be refused. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "backends/cpu/cpu.h"
#include "gradcheck.h"
#include "ir/grad.h"
#include "testutil.h"

static amp_context *ctx;
static void setup(void) { cr_assert_eq(amp_context_create(NULL, &ctx), AMP_OK); }
static void teardown(void) { amp_context_destroy(ctx); }
TestSuite(grad_rnn, .init = setup, .fini = teardown, .timeout = 60);

#define GC_TOL 1e-5
#define SEQ 3
#define BATCH 2
#define INP 3
#define HID 4

static uint64_t seed_next = 1;

static amp_tensor *rnd(int rank, const int64_t *dims, double lo, double hi) {
    return tt_rand(ctx, AMP_F64, rank, dims, lo, hi, seed_next++);
}

static void free_in(amp_tensor **in, int n) {
    for (int i = 0; i < n; i++) {
        amp_tensor_destroy(in[i]);
        in[i] = NULL;
    }
}

typedef struct cfg {
    const char *op;
    const char *direction;
    int layout;
    int lens;          /* 0: no sequence_lens; 1: {3, 2}; 2: {1, 0} */
    bool bias, h0, c0, peep;
    int lbr, input_forget;
} cfg;

static int gates_of(const char *op) { return !strcmp(op, "RNN") ? 1 : !strcmp(op, "GRU") ? 3 : 4; }

/* The inputs of a case (f64; sequence_lens int32), in[] of the op's full length. */
static int make_inputs(const cfg *c, amp_tensor **in) {
    const bool lstm = !strcmp(c->op, "LSTM");
    const int64_t D = !strcmp(c->direction, "bidirectional") ? 2 : 1, G = gates_of(c->op);
    const int64_t xd[3] = {c->layout ? BATCH : SEQ, c->layout ? SEQ : BATCH, INP};
    const int64_t wd[3] = {D, G * HID, INP}, rd[3] = {D, G * HID, HID}, bd[2] = {D, 2 * G * HID};
    const int64_t hd[3] = {c->layout ? BATCH : D, c->layout ? D : BATCH, HID}, pd[2] = {D, 3 * HID}, sd[1] = {BATCH};
    const int nin = lstm ? 8 : 6;
    memset(in, 0, sizeof(amp_tensor *) * (size_t)nin);
    in[0] = rnd(3, xd, -1, 1);
    in[1] = rnd(3, wd, -0.7, 0.7);
    in[2] = rnd(3, rd, -0.7, 0.7);
    if (c->bias) in[3] = rnd(2, bd, -0.5, 0.5);
    if (c->lens) {
        const double lv[3][BATCH] = {{0, 0}, {3, 2}, {1, 0}};
        in[4] = tt_make(ctx, AMP_I32, 1, sd, lv[c->lens]);
    }
    if (c->h0) in[5] = rnd(3, hd, -1, 1);
    if (lstm && c->c0) in[6] = rnd(3, hd, -1, 1);
    if (lstm && c->peep) in[7] = rnd(2, pd, -0.5, 0.5);
    return nin;
}

static amp_test_node *make_node(const cfg *c) {
    amp_test_node *t = tn_new(ctx, c->op);
    t->opset = 14;
    tn_int(t, "hidden_size", HID);
    tn_str(t, "direction", c->direction);
    if (c->layout) tn_int(t, "layout", 1);
    if (c->lbr) tn_int(t, "linear_before_reset", 1);
    if (c->input_forget) tn_int(t, "input_forget", 1);
    return t;
}

static void describe(const cfg *c, char *buf, size_t n) {
    snprintf(buf, n, "%s %s layout %d lens#%d bias %d h0 %d c0 %d P %d lbr %d input_forget %d", c->op, c->direction,
             c->layout, c->lens, c->bias, c->h0, c->c0, c->peep, c->lbr, c->input_forget);
}

/* Finite-difference check of every float input, with the first nout outputs in the loss. */
static void check_case(const cfg *c, int nout) {
    amp_tensor *in[8];
    const int nin = make_inputs(c, in);
    amp_test_node *t = make_node(c);
    bool wrt[8];
    int want = 0;
    for (int i = 0; i < nin; i++) {
        wrt[i] = in[i] && amp_dtype_is_float(in[i]->dtype);
        want += wrt[i];
    }
    char what[200];
    describe(c, what, sizeof what);
    gc_result r;
    amp_status s = gc_check(t, nin, in, wrt, nout, 1e-6, &r);
    cr_assert_eq(s, AMP_OK, "%s (%d outputs): status %d: %s", what, nout, s, r.why);
    cr_assert_eq(r.checked, want, "%s: %d inputs checked, expected %d", what, r.checked, want);
    cr_assert(r.max_rel < GC_TOL, "%s (%d outputs): max_rel %g at input %d", what, nout, r.max_rel, r.worst_input);
    tn_free(t);
    free_in(in, nin);
}

static const char *const dirs[3] = {"forward", "reverse", "bidirectional"};

/* Every direction, layout and sequence_lens variant of one op configuration. */
static void sweep(cfg base) {
    const bool lstm = !strcmp(base.op, "LSTM");
    for (int d = 0; d < 3; d++)
        for (int layout = 0; layout < 2; layout++)
            for (int lens = 0; lens < 3; lens++) {
                cfg c = base;
                c.direction = dirs[d];
                c.layout = layout;
                c.lens = lens;
                check_case(&c, lstm ? 3 : 2);
            }
}

Test(grad_rnn, rnn_every_direction_layout_and_length) {
    sweep((cfg){.op = "RNN", .bias = true, .h0 = true});
}

Test(grad_rnn, gru_every_direction_layout_and_length) {
    sweep((cfg){.op = "GRU", .bias = true, .h0 = true});
}

Test(grad_rnn, gru_linear_before_reset) {
    sweep((cfg){.op = "GRU", .bias = true, .h0 = true, .lbr = 1});
}

Test(grad_rnn, lstm_every_direction_layout_and_length) {
    sweep((cfg){.op = "LSTM", .bias = true, .h0 = true, .c0 = true, .peep = true});
}

Test(grad_rnn, lstm_input_forget) {
    sweep((cfg){.op = "LSTM", .bias = true, .h0 = true, .c0 = true, .peep = true, .input_forget = 1});
}

/* Omitted optional inputs and outputs outside the loss. */
Test(grad_rnn, optional_inputs_and_output_subsets) {
    const char *ops[3] = {"RNN", "GRU", "LSTM"};
    for (int o = 0; o < 3; o++)
        for (int d = 0; d < 3; d++) {
            const bool lstm = o == 2;
            cfg bare = {.op = ops[o], .direction = dirs[d]};
            check_case(&bare, lstm ? 3 : 2);
            cfg full = {.op = ops[o], .direction = dirs[d], .bias = true, .h0 = true, .c0 = true, .peep = true,
                        .lens = 1, .layout = d == 1};
            check_case(&full, 1); /* Y alone */
        }
}

static amp_test_node *train_node(const cfg *c) {
    char name[16];
    snprintf(name, sizeof name, "%sGrad", c->op);
    amp_test_node *t = make_node(c);
    t->node.op_type = strcmp(c->op, "RNN") == 0 ? "RNNGrad" : strcmp(c->op, "GRU") == 0 ? "GRUGrad" : "LSTMGrad";
    t->node.domain = AMP_TRAIN_DOMAIN;
    t->node.op = amp_op_lookup(name, AMP_TRAIN_DOMAIN);
    cr_assert_neq(t->node.op, AMP_OP_UNKNOWN, "%s is not in the op table", name);
    t->opset = 1;
    tn_int(t, "fwd_opset", 14);
    return t;
}

Test(grad_rnn, training_ops_in_16_bit_and_f32) {
    static const amp_dtype dts[3] = {AMP_F16, AMP_BF16, AMP_F32};
    static const double tols[3] = {2e-2, 5e-2, 1e-5};
    const char *ops[3] = {"RNN", "GRU", "LSTM"};
    for (int o = 0; o < 3; o++) {
        const bool lstm = o == 2;
        cfg c = {.op = ops[o], .direction = "bidirectional", .layout = 1, .lens = 1, .bias = true, .h0 = true,
                 .c0 = true, .peep = true, .lbr = o == 1};
        amp_tensor *in[11] = {0};
        const int nfi = make_inputs(&c, in), nfo = lstm ? 3 : 2, nout = lstm ? 7 : 5;
        /* the output gradients, shaped by a forward run */
        amp_test_node *f = make_node(&c);
        amp_tensor *y[3] = {0};
        cr_assert_eq(tn_run(f, nfi, in, nfo, y), AMP_OK, "%s", amp_context_last_error(ctx));
        for (int k = 0; k < nfo; k++) {
            in[nfi + k] = rnd(y[k]->rank, y[k]->dims, -1, 1);
            amp_tensor_destroy(y[k]);
        }
        tn_free(f);
        amp_test_node *t = train_node(&c);
        for (int k = 0; k < 3; k++) {
            amp_tensor *lo[11] = {0}, *hi[11] = {0}, *olo[7] = {0}, *ohi[7] = {0};
            for (int i = 0; i < nfi + nfo; i++) {
                if (!in[i]) continue;
                const bool fl = amp_dtype_is_float(in[i]->dtype);
                lo[i] = tt_convert(ctx, in[i], fl ? dts[k] : in[i]->dtype);
                hi[i] = tt_convert(ctx, lo[i], fl ? AMP_F64 : in[i]->dtype);
            }
            cr_assert_eq(tn_run(t, nfi + nfo, lo, nout, olo), AMP_OK, "%s %s: %s", ops[o], amp_dtype_name(dts[k]),
                         amp_context_last_error(ctx));
            cr_assert_eq(tn_run(t, nfi + nfo, hi, nout, ohi), AMP_OK, "%s f64: %s", ops[o],
                         amp_context_last_error(ctx));
            for (int q = 0; q < nout; q++) {
                cr_assert_eq(olo[q]->dtype, dts[k]);
                double e = sqrt(tt_nse(olo[q], ohi[q]));
                cr_assert(e < tols[k], "%s (%s): output %d rel L2 %g", ops[o], amp_dtype_name(dts[k]), q, e);
            }
            free_in(lo, 11);
            free_in(hi, 11);
            free_in(olo, 7);
            free_in(ohi, 7);
        }
        /* an absent output gradient reads as zeros */
        for (int k = 0; k < nfo; k++) {
            amp_tensor *zin[11], *zout[7] = {0}, *nout_[7] = {0};
            memcpy(zin, in, sizeof zin);
            zin[nfi + k] = tt_convert(ctx, in[nfi + k], AMP_F64);
            memset(zin[nfi + k]->data, 0, zin[nfi + k]->nbytes);
            cr_assert_eq(tn_run(t, nfi + nfo, zin, nout, zout), AMP_OK, "%s", amp_context_last_error(ctx));
            amp_tensor_destroy(zin[nfi + k]);
            zin[nfi + k] = NULL;
            cr_assert_eq(tn_run(t, nfi + nfo, zin, nout, nout_), AMP_OK, "%s", amp_context_last_error(ctx));
            for (int q = 0; q < nout; q++)
                cr_assert(tt_equal(zout[q], nout_[q]), "%s: dY %d absent, output %d", ops[o], k, q);
            free_in(zout, 7);
            free_in(nout_, 7);
        }
        tn_free(t);
        free_in(in, 11);
    }
}

/* The builder alone, on a graph holding one f64 forward node of op with the given
 * activations; the status, and its message in msg. */
static amp_status build_grad(const char *op, int nacts, const char *const *acts, char *msg, size_t cap) {
    amp_graph *g;
    cr_assert_eq(amp_graph_create(ctx, &g), AMP_OK);
    g->opset = 14;
    const int64_t G = gates_of(op), dims[3][3] = {{SEQ, BATCH, INP}, {1, G * HID, INP}, {1, G * HID, HID}};
    const char *names[6] = {"X", "W", "R", "Y", "Y_h", "dY"};
    int v[6];
    for (int i = 0; i < 6; i++) {
        v[i] = amp_graph_new_value(g, names[i]);
        cr_assert_geq(v[i], 0);
        g->values[v[i]].dtype = AMP_F64;
        if (i < 3) {
            g->values[v[i]].rank = 3;
            for (int d = 0; d < 3; d++) g->values[v[i]].dims[d] = (amp_dim){dims[i][d], -1};
        }
    }
    amp_node n;
    memset(&n, 0, sizeof n);
    n.name = amp_strdup(ctx, "fwd");
    n.op_type = amp_strdup(ctx, op);
    n.domain = amp_strdup(ctx, "");
    n.op = amp_op_lookup(op, "");
    n.inputs = amp_alloc(ctx, sizeof(int) * 3);
    n.outputs = amp_alloc(ctx, sizeof(int) * 2);
    for (int i = 0; i < 3; i++) n.inputs[i] = v[i];
    n.outputs[0] = v[3];
    n.outputs[1] = v[4];
    n.n_inputs = 3;
    n.n_outputs = 2;
    n.attrs = amp_calloc(ctx, 2, sizeof(amp_attr));
    n.n_attrs = 2;
    n.attrs[0] = (amp_attr){.name = amp_strdup(ctx, "hidden_size"), .kind = AMP_ATTR_INT, .i = HID};
    n.attrs[1] = (amp_attr){.name = amp_strdup(ctx, "activations"), .kind = AMP_ATTR_STRINGS, .n = nacts};
    n.attrs[1].strings = amp_calloc(ctx, (size_t)nacts, sizeof(char *));
    for (int i = 0; i < nacts; i++) n.attrs[1].strings[i] = amp_strdup(ctx, acts[i]);
    cr_assert_eq(amp_graph_add_node(g, &n), AMP_OK);
    int dy[2] = {v[5], -1}, dx[3] = {-1, -1, -1};
    bool need[3] = {true, true, true};
    amp_grad_ctx c = {.ctx = ctx, .g = g, .node = 0, .nin = 3, .nout = 2, .dy = dy, .dx = dx, .need = need};
    amp_status s = amp_grad_rnn(&c);
    snprintf(msg, cap, "%s", amp_context_last_error(ctx));
    amp_graph_destroy(g);
    return s;
}

/* Non-default activations and clip have no gradient: they must be refused with a message, the
 * default activations named explicitly accepted. */
Test(grad_rnn, unsupported_configurations_are_refused) {
    cfg c = {.op = "LSTM", .direction = "forward", .bias = true};
    amp_tensor *in[8];
    const int nin = make_inputs(&c, in);
    amp_test_node *t = make_node(&c);
    tn_float(t, "clip", 3.0f);
    bool wrt[8] = {true, true, true, true};
    gc_result r;
    amp_status s = gc_check(t, nin, in, wrt, 1, 1e-6, &r);
    cr_assert_eq(s, AMP_ERR_UNSUPPORTED, "clip: status %d (%s)", s, r.why);
    cr_assert(strstr(r.why, "clip"), "%s", r.why);
    tn_free(t);
    free_in(in, nin);

    static const char *const relu[3] = {"Sigmoid", "Tanh", "Relu"}, *hsig[2] = {"HardSigmoid", "Tanh"};
    static const char *const lstm_def[3] = {"sigmoid", "Tanh", "TANH"}, *rnn_relu[1] = {"Relu"};
    char msg[512];
    cr_assert_eq(build_grad("LSTM", 3, relu, msg, sizeof msg), AMP_ERR_UNSUPPORTED);
    cr_assert(strstr(msg, "activation"), "%s", msg);
    cr_assert_eq(build_grad("GRU", 2, hsig, msg, sizeof msg), AMP_ERR_UNSUPPORTED);
    cr_assert_eq(build_grad("RNN", 1, rnn_relu, msg, sizeof msg), AMP_ERR_UNSUPPORTED);
    cr_assert_eq(build_grad("LSTM", 3, lstm_def, msg, sizeof msg), AMP_OK, "%s", msg);
}

/* The norm family's CUDA kernels (backends/cuda/op_norm.c, k_norm.cu) on the emulator against the
 * CPU backend: every op through its amp_cuda_ops_norm entry (supports, prepare, run, release) on
 * device memory, the same node run by the CPU backend (amp_backend_run_once), in f32, f16 and
 * bf16 (and 16-bit activations beside f32 parameters, as autocast leaves them), odd shapes of
 * rank 1 to 5, empty tensors, negative axes, the opset < 13 softmax coercion and the attribute
 * variants the models use; every output compared.
 *
 * Both sides compute in double and round once; they differ only in the order of the row sums
 * (the CPU's sequential loop, the device's block tree), which moves a double by an ulp or so and
 * almost never flips the final rounding. Thresholds are set for a real GPU, whose exp and log
 * differ from the host's by an ulp: f32 1e-6, f16 1e-3, bf16 8e-3 (one 16-bit rounding flipped).
 * The barrier kernels run in every thread and block order the emulator has and must give the
 * same bits. */
#include <stdlib.h>

#include "backends/backend.h"
#include "backends/cuda/cuda_backend.h"
#include "base/elem.h"
#include "ir/grad.h"
#include "tests/cuda/cuda_optest.h"

/* tests/cuda/test_norm_order.cu (on a GPU it does nothing) */
int kn_set_order(int flags);

typedef struct shape {
    int rank;
    int64_t dims[5];
    int64_t axis;
} shape;

/* ---- Softmax, LogSoftmax ------------------------------------------------------------------------- */

typedef struct sm_case {
    shape s;
    int64_t opset;
} sm_case;

static const sm_case sm_cases[] = {
    {{1, {1}, -1}, 13},         {{1, {7}, 0}, 13},           {{2, {3, 33}, -1}, 13},      {{2, {4, 300}, 1}, 13},
    {{3, {2, 5, 7}, 1}, 13},    {{3, {2, 5, 7}, -3}, 13},    {{4, {2, 3, 4, 5}, 1}, 11},  {{5, {2, 1, 3, 2, 5}, -2}, 13},
    {{3, {2, 3, 4}, 2}, 11},    {{3, {2, 3, 4}, -1}, 1},     {{2, {0, 5}, -1}, 13},       {{2, {3, 0}, -1}, 13},
    {{2, {3, 9}, 0}, 11},
};

static const char *const sm_ops[] = {"Softmax", "LogSoftmax", "Hardmax"};

static void t_softmax(void) {
    CT_CHECK(setup(), "setup");
    worst_reset();
    for (int o = 0; o < 3; o++)
        for (size_t c = 0; c < sizeof sm_cases / sizeof sm_cases[0]; c++)
            for (int d = 0; d < 3; d++) {
                const sm_case *sc = &sm_cases[c];
                tnode t;
                tn_init(&t, sm_ops[o], false);
                t.opset = sc->opset;
                tn_i(&t, "axis", sc->s.axis);
                amp_tensor *x = rnd(kfloats[d], sc->s.rank, sc->s.dims, 31 + c, -6.0f, 6.0f);
                /* Hardmax only compares and writes 0 or 1: bit for bit */
                CHECK_NODE(&t, 1, &x, 1, o == 2, o == 2 ? 0.0 : tol_of(kfloats[d]), "%s %s case %zu", sm_ops[o],
                           amp_dtype_name(kfloats[d]), c);
                amp_tensor_destroy(x);
            }
    worst_print();
}

/* rows of -inf (NaN out, as on the CPU), with a NaN, with a +inf, masked by -1e9, all -1e9
 * (Hardmax: the first maximum, a NaN winning, ties to the first) */
static void t_softmax_specials(void) {
    CT_CHECK(setup(), "setup");
    int64_t dims[2] = {6, 9};
    amp_tensor *x = rnd(AMP_F32, 2, dims, 5, -3.0f, 3.0f);
    float *v = x->data;
    for (int j = 0; j < 9; j++) v[j] = -INFINITY;
    v[9 + 4] = NAN;
    v[18 + 2] = INFINITY;
    for (int j = 0; j < 6; j++) v[27 + j] = -1e9f;
    for (int j = 0; j < 9; j++) v[36 + j] = -1e9f;
    for (int o = 0; o < 3; o++) {
        tnode t;
        tn_init(&t, sm_ops[o], false);
        t.opset = 13;
        CHECK_NODE(&t, 1, &x, 1, o == 2, o == 2 ? 0.0 : 1e-6, "%s specials", sm_ops[o]);
    }
    amp_tensor_destroy(x);
}

static void t_softmax_grad(void) {
    CT_CHECK(setup(), "setup");
    worst_reset();
    const char *ops[2] = {"SoftmaxGrad", "LogSoftmaxGrad"};
    for (int o = 0; o < 2; o++)
        for (size_t c = 0; c < sizeof sm_cases / sizeof sm_cases[0]; c++)
            for (int d = 0; d < 3; d++) {
                const sm_case *sc = &sm_cases[c];
                tnode t;
                tn_init(&t, ops[o], true);
                tn_i(&t, "axis", sc->s.axis);
                tn_i(&t, "fwd_opset", sc->opset);
                amp_tensor *in[2] = {rnd(kfloats[d], sc->s.rank, sc->s.dims, 41 + c, -2.0f, 2.0f),
                                     o ? rnd(kfloats[d], sc->s.rank, sc->s.dims, 51 + c, -4.0f, -0.01f)
                                       : rnd(kfloats[d], sc->s.rank, sc->s.dims, 51 + c, 0.01f, 1.0f)};
                CHECK_NODE(&t, 2, in, 1, false, tol_of(kfloats[d]), "%s %s case %zu", ops[o],
                           amp_dtype_name(kfloats[d]), c);
                free_all(in, 2);
            }
    worst_print();
}

/* ---- LayerNormalization ---------------------------------------------------------------------------- */

typedef struct ln_case {
    shape s;
    bool has_b;
    int nout;
} ln_case;

static const ln_case ln_cases[] = {
    {{1, {7}, -1}, true, 3},         {{2, {3, 33}, -1}, true, 3},    {{2, {5, 300}, -1}, false, 1},
    {{3, {2, 3, 5}, 1}, true, 3},    {{3, {2, 3, 5}, 0}, true, 2},   {{4, {2, 3, 4, 5}, -2}, true, 3},
    {{2, {1, 1}, -1}, true, 3},      {{2, {70, 3}, -1}, false, 3},   {{5, {2, 1, 3, 2, 5}, 2}, true, 3},
    {{2, {0, 8}, -1}, true, 3},
};

/* Scale (and B) dims: X's from axis on. */
static int param_dims(const shape *s, int64_t *pd) {
    int axis = (int)(s->axis < 0 ? s->axis + s->rank : s->axis), n = 0;
    for (int d = axis; d < s->rank; d++) pd[n++] = s->dims[d];
    return n;
}

/* Mean and InvStdDev dims: X's before axis, 1 after. */
static void stat_dims(const shape *s, int64_t *sd) {
    int axis = (int)(s->axis < 0 ? s->axis + s->rank : s->axis);
    for (int d = 0; d < s->rank; d++) sd[d] = d < axis ? s->dims[d] : 1;
}

static void ln_attrs(tnode *t, const shape *s, int c) {
    tn_i(t, "axis", s->axis);
    if (c % 2) tn_f(t, "epsilon", 1e-3f);
}

static void t_layer_norm(void) {
    CT_CHECK(setup(), "setup");
    worst_reset();
    for (size_t c = 0; c < sizeof ln_cases / sizeof ln_cases[0]; c++)
        for (int d = 0; d < 3; d++)
            for (int pf = 0; pf < (d ? 2 : 1); pf++) {
                const ln_case *lc = &ln_cases[c];
                const amp_dtype xt = kfloats[d], pt = pf ? AMP_F32 : xt;
                int64_t pd[5];
                int np = param_dims(&lc->s, pd);
                tnode t;
                tn_init(&t, "LayerNormalization", false);
                ln_attrs(&t, &lc->s, (int)c);
                if (c == 3) tn_i(&t, "stash_type", AMP_F16);
                if (c == 5) tn_i(&t, "stash_type", AMP_F64);
                amp_tensor *in[3] = {rnd(xt, lc->s.rank, lc->s.dims, 61 + c, -3.0f, 5.0f),
                                     rnd(pt, np, pd, 71 + c, 0.5f, 1.5f),
                                     lc->has_b ? rnd(pt, np, pd, 81 + c, -1.0f, 1.0f) : NULL};
                CHECK_NODE(&t, lc->has_b ? 3 : 2, in, lc->nout, false, tol_of(xt), "LayerNorm %s params %s case %zu",
                           amp_dtype_name(xt), amp_dtype_name(pt), c);
                free_all(in, 3);
            }
    worst_print();
}

/* dY?, X, Scale, B?, Mean?, InvStdDev?, dMean?, dInvStdDev? (f32, or f64 in one case) by variant: 0 everything but the
 * statistics' gradients, 1 no saved statistics (recomputed), 2 with dMean and dInvStdDev, 3 no dY
 * (only the statistics' gradients flow). */
static void t_layer_norm_grad(void) {
    CT_CHECK(setup(), "setup");
    worst_reset();
    for (size_t c = 0; c < sizeof ln_cases / sizeof ln_cases[0]; c++)
        for (int v = 0; v < 4; v++)
            for (int d = 0; d < 3; d++)
                for (int pf = 0; pf < (d ? 2 : 1); pf++) {
                    const ln_case *lc = &ln_cases[c];
                    const amp_dtype xt = kfloats[d], pt = pf ? AMP_F32 : xt;
                    const uint64_t sd = 100 + 10 * c + (uint64_t)v;
                    /* saved statistics (and their gradients) in f64 once: a double stash */
                    const amp_dtype stt = c == 5 ? AMP_F64 : AMP_F32;
                    int64_t pd[5], st[5];
                    int np = param_dims(&lc->s, pd);
                    stat_dims(&lc->s, st);
                    tnode t;
                    tn_init(&t, "LayerNormalizationGrad", true);
                    ln_attrs(&t, &lc->s, (int)c);
                    const int rk = lc->s.rank;
                    amp_tensor *in[8] = {
                        v == 3 ? NULL : rnd(xt, rk, lc->s.dims, sd, -1.0f, 1.0f),
                        rnd(xt, rk, lc->s.dims, sd + 1, -3.0f, 5.0f),
                        rnd(pt, np, pd, sd + 2, 0.5f, 1.5f),
                        lc->has_b ? rnd(pt, np, pd, sd + 3, -1.0f, 1.0f) : NULL,
                        v == 1 ? NULL : rnd(stt, rk, st, sd + 4, -0.5f, 0.5f),
                        v == 1 ? NULL : rnd(stt, rk, st, sd + 5, 0.5f, 2.0f),
                        v >= 2 ? rnd(stt, rk, st, sd + 6, -1.0f, 1.0f) : NULL,
                        v >= 2 ? rnd(stt, rk, st, sd + 7, -1.0f, 1.0f) : NULL};
                    CHECK_NODE(&t, 8, in, lc->has_b ? 3 : 2, false, tol_of(xt),
                               "LayerNormGrad %s params %s case %zu variant %d", amp_dtype_name(xt),
                               amp_dtype_name(pt), c, v);
                    free_all(in, 8);
                }
    worst_print();
}

/* Scale and B broadcast other than by the column (a single value, along a normalised dim of
 * X, or over a dim before the axis), beside one by the column: forward and gradient. */
static void t_layer_norm_broadcast(void) {
    CT_CHECK(setup(), "setup");
    worst_reset();
    const struct {
        shape s;
        int sr, br;
        int64_t sd[3], bd[3];
    } cases[] = {
        {{3, {2, 3, 4}, 1}, 1, 2, {1}, {3, 4}},        {{3, {2, 3, 4}, 1}, 2, 1, {3, 1}, {4}},
        {{2, {5, 6}, 0}, 1, 2, {6}, {5, 6}},           {{3, {2, 3, 4}, -1}, 1, 1, {1}, {1}},
        {{4, {2, 3, 4, 5}, 1}, 3, 2, {3, 1, 5}, {4, 1}}, {{3, {0, 3, 4}, 1}, 1, 1, {1}, {4}},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++)
        for (int g = 0; g < 2; g++)
            for (int d = 0; d < 3; d++) {
                const shape *s = &cases[c].s;
                const amp_dtype xt = kfloats[d];
                const uint64_t sd = 800 + 10 * c;
                int64_t st[5];
                stat_dims(s, st);
                tnode t;
                tn_init(&t, g ? "LayerNormalizationGrad" : "LayerNormalization", g);
                tn_i(&t, "axis", s->axis);
                amp_tensor *in[8] = {rnd(xt, s->rank, s->dims, sd, -1.0f, 1.0f),
                                     rnd(xt, s->rank, s->dims, sd + 1, -3.0f, 5.0f),
                                     rnd(AMP_F32, cases[c].sr, cases[c].sd, sd + 2, 0.5f, 1.5f),
                                     rnd(AMP_F32, cases[c].br, cases[c].bd, sd + 3, -1.0f, 1.0f),
                                     rnd(AMP_F32, s->rank, st, sd + 4, -0.5f, 0.5f),
                                     rnd(AMP_F32, s->rank, st, sd + 5, 0.5f, 2.0f), NULL, NULL};
                CHECK_NODE(&t, g ? 8 : 3, g ? in : in + 1, 3, false, tol_of(xt), "%s %s case %zu", t.n.op_type,
                           amp_dtype_name(xt), c);
                free_all(in, 8);
            }
    worst_print();
}

/* ---- InstanceNormalization --------------------------------------------------------------------------- */

static const shape in_shapes[] = {
    {3, {1, 1, 1}, 0},   {3, {2, 3, 5}, 0},        {4, {2, 4, 3, 5}, 0}, {5, {3, 2, 7, 1, 3}, 0},
    {3, {1, 2, 300}, 0}, {4, {2, 3, 33, 1}, 0},    {3, {0, 3, 4}, 0},    {3, {2, 3, 0}, 0},
};

static void t_instance_norm(void) {
    CT_CHECK(setup(), "setup");
    worst_reset();
    for (size_t c = 0; c < sizeof in_shapes / sizeof in_shapes[0]; c++)
        for (int g = 0; g < 2; g++)
            for (int d = 0; d < 3; d++)
                for (int pf = 0; pf < (d ? 2 : 1); pf++) {
                    const shape *s = &in_shapes[c];
                    const amp_dtype xt = kfloats[d], pt = pf ? AMP_F32 : xt;
                    const int64_t ch = s->dims[1];
                    const uint64_t sd = 200 + 10 * c;
                    tnode t;
                    tn_init(&t, g ? "InstanceNormalizationGrad" : "InstanceNormalization", g);
                    if (c % 2) tn_f(&t, "epsilon", 1e-3f);
                    amp_tensor *in[4] = {rnd(xt, s->rank, s->dims, sd, -1.0f, 1.0f),
                                         rnd(xt, s->rank, s->dims, sd + 1, -3.0f, 5.0f), rnd(pt, 1, &ch, sd + 2, 0.5f, 1.5f),
                                         rnd(pt, 1, &ch, sd + 3, -1.0f, 1.0f)};
                    /* forward: X, scale, B; gradient: dY, X, scale, B -> dX, dscale, dB */
                    CHECK_NODE(&t, g ? 4 : 3, g ? in : in + 1, g ? 3 : 1, false, tol_of(xt), "%s %s params %s case %zu",
                               t.n.op_type, amp_dtype_name(xt), amp_dtype_name(pt), c);
                    free_all(in, 4);
                }
    worst_print();
}

/* The gradient asked for dX alone. */
static void t_instance_norm_grad_dx_only(void) {
    CT_CHECK(setup(), "setup");
    int64_t dims[4] = {2, 3, 4, 5}, ch = 3;
    amp_tensor *in[4] = {rnd(AMP_F32, 4, dims, 1, -1, 1), rnd(AMP_F32, 4, dims, 2, -2, 2), rnd(AMP_F32, 1, &ch, 3, 0.5f, 1.5f),
                         rnd(AMP_F32, 1, &ch, 4, -1, 1)};
    tnode t;
    tn_init(&t, "InstanceNormalizationGrad", true);
    CHECK_NODE(&t, 4, in, 1, false, 1e-6, "InstanceNormalizationGrad dX only");
    free_all(in, 4);
}

/* ---- GroupNormalization ---------------------------------------------------------------------------------- */

typedef struct gn_case {
    shape s;
    int64_t groups;
} gn_case;

static const gn_case gn_cases[] = {
    {{2, {2, 6}, 0}, 3},          {{3, {2, 6, 5}, 0}, 2},    {{4, {1, 4, 3, 5}, 0}, 4}, {{4, {2, 6, 33, 1}, 0}, 1},
    {{5, {1, 4, 2, 3, 2}, 0}, 2}, {{3, {1, 2, 300}, 0}, 1},  {{3, {0, 4, 3}, 0}, 2},    {{3, {2, 4, 0}, 0}, 2},
};

/* opsets 18 (parameters per group) and 21 (per channel, and once with a double stash) */
static void t_group_norm(void) {
    CT_CHECK(setup(), "setup");
    worst_reset();
    for (size_t c = 0; c < sizeof gn_cases / sizeof gn_cases[0]; c++)
        for (int v = 0; v < 3; v++)
            for (int g = 0; g < 2; g++)
                for (int d = 0; d < 3; d++)
                    for (int pf = 0; pf < (d ? 2 : 1); pf++) {
                        const gn_case *gc = &gn_cases[c];
                        const amp_dtype xt = kfloats[d], pt = pf ? AMP_F32 : xt;
                        const int64_t opset = v == 0 ? 18 : 21, plen = opset >= 21 ? gc->s.dims[1] : gc->groups;
                        const uint64_t sd = 300 + 10 * c + (uint64_t)v;
                        tnode t;
                        tn_init(&t, g ? "GroupNormalizationGrad" : "GroupNormalization", g);
                        tn_i(&t, "num_groups", gc->groups);
                        if (c % 2) tn_f(&t, "epsilon", 1e-3f);
                        if (v == 2) tn_i(&t, "stash_type", AMP_F64);
                        if (g) tn_i(&t, "fwd_opset", opset);
                        else t.opset = opset;
                        amp_tensor *in[4] = {rnd(xt, gc->s.rank, gc->s.dims, sd, -1.0f, 1.0f),
                                             rnd(xt, gc->s.rank, gc->s.dims, sd + 1, -3.0f, 5.0f),
                                             rnd(pt, 1, &plen, sd + 2, 0.5f, 1.5f), rnd(pt, 1, &plen, sd + 3, -1.0f, 1.0f)};
                        CHECK_NODE(&t, g ? 4 : 3, g ? in : in + 1, g ? 3 : 1, false, tol_of(xt),
                                   "%s opset %lld %s params %s case %zu", t.n.op_type, (long long)opset,
                                   amp_dtype_name(xt), amp_dtype_name(pt), c);
                        free_all(in, 4);
                    }
    worst_print();
}

/* CHECK_NODE compares up to four outputs; BatchNormalization has five. Every output within tol
 * (worst errors noted); false with a message otherwise. */
static bool check_all(tnode *t, int nin, amp_tensor *const *in, int nout, double tol, const char *what) {
    amp_tensor *ref[8], *got[8];
    amp_status s = run_both(t, nin, in, nout, ref, got);
    if (s) {
        fprintf(stderr, "  %s: %s: %s\n", what, amp_status_name(s), amp_context_last_error(ctx));
        return false;
    }
    bool ok = true;
    for (int o = 0; o < nout; o++) {
        double e = rel_err(got[o], ref[o]);
        worst_note(ref[o]->dtype, e);
        if (e > tol) {
            fprintf(stderr, "  %s: output %d: error %g > %g\n", what, o, e, tol);
            ok = false;
        }
    }
    free_all(ref, nout);
    free_all(got, nout);
    return ok;
}

/* ---- BatchNormalization --------------------------------------------------------------------------------- */

static const shape bn_shapes[] = {
    {1, {7}, 0},       {2, {5, 3}, 0},          {3, {2, 3, 5}, 0},   {4, {2, 4, 3, 5}, 0},
    {5, {2, 3, 2, 1, 3}, 0}, {4, {3, 2, 33, 1}, 0}, {3, {1, 2, 300}, 0}, {3, {0, 3, 4}, 0},
};

static int64_t bn_channels(const shape *s) { return s->rank > 1 ? s->dims[1] : 1; }

/* modes: 0 inference (opset 15), 1 training (opset 15: Y and the running statistics), 2 training
 * at opset 9 (the running and the saved statistics) */
static void t_batch_norm(void) {
    CT_CHECK(setup(), "setup");
    worst_reset();
    for (size_t c = 0; c < sizeof bn_shapes / sizeof bn_shapes[0]; c++)
        for (int m = 0; m < 3; m++)
            for (int d = 0; d < 3; d++)
                for (int pf = 0; pf < (d ? 2 : 1); pf++) {
                    const shape *s = &bn_shapes[c];
                    const amp_dtype xt = kfloats[d], pt = pf ? AMP_F32 : xt;
                    const int64_t ch = bn_channels(s);
                    const uint64_t sd = 400 + 10 * c + (uint64_t)m;
                    tnode t;
                    tn_init(&t, "BatchNormalization", false);
                    t.opset = m == 2 ? 9 : 15;
                    if (m < 2) tn_i(&t, "training_mode", m);
                    if (c % 2) tn_f(&t, "epsilon", 1e-3f), tn_f(&t, "momentum", 0.8f);
                    amp_tensor *in[5] = {rnd(xt, s->rank, s->dims, sd, -3.0f, 5.0f), rnd(pt, 1, &ch, sd + 1, 0.5f, 1.5f),
                                         rnd(pt, 1, &ch, sd + 2, -1.0f, 1.0f), rnd(pt, 1, &ch, sd + 3, -0.5f, 0.5f),
                                         rnd(pt, 1, &ch, sd + 4, 0.5f, 2.0f)};
                    char what[160];
                    snprintf(what, sizeof what, "BatchNorm mode %d %s params %s case %zu", m, amp_dtype_name(xt),
                             amp_dtype_name(pt), c);
                    bool ok = check_all(&t, 5, in, m == 0 ? 1 : m == 1 ? 3 : 5, tol_of(xt), what);
                    free_all(in, 5);
                    CT_CHECK(ok, "%s", what);
                }
    worst_print();
}

/* Opset 7's spatial=0: parameters of C x D1 x ... (one per activation), forward in inference and
 * training and the gradient in both modes. */
static void t_batch_norm_per_activation(void) {
    CT_CHECK(setup(), "setup");
    worst_reset();
    int64_t xd[3] = {4, 3, 5}, pd[2] = {3, 5};
    for (int m = 0; m < 4; m++)
        for (int d = 0; d < 3; d++) {
            const amp_dtype xt = kfloats[d];
            const bool grad = m >= 2;
            amp_tensor *in[8] = {rnd(xt, 3, xd, 900 + (uint64_t)m, -1.0f, 1.0f), rnd(xt, 3, xd, 901, -3.0f, 5.0f),
                                 rnd(AMP_F32, 2, pd, 902, 0.5f, 1.5f), rnd(AMP_F32, 2, pd, 903, -1.0f, 1.0f),
                                 rnd(AMP_F32, 2, pd, 904, 0.5f, 2.0f), rnd(AMP_F32, 2, pd, 905, -1.0f, 1.0f),
                                 rnd(AMP_F32, 2, pd, 906, -1.0f, 1.0f), NULL};
            /* forward: X, scale, B, mean, var; gradient: dY, X, scale, mean, var, dRunningMean, dRunningVar */
            amp_tensor *fin[5] = {in[1], in[2], in[3], in[3], in[4]};
            amp_tensor *gin[7] = {in[0], in[1], in[2], in[3], in[4], in[5], in[6]};
            tnode t;
            tn_init(&t, grad ? "BatchNormalizationGrad" : "BatchNormalization", grad);
            if (grad) {
                tn_i(&t, "training", m == 3);
            } else {
                t.opset = 7;
                tn_i(&t, "spatial", 0);
            }
            char what[120];
            snprintf(what, sizeof what, "BatchNorm per activation mode %d %s", m, amp_dtype_name(xt));
            bool ok = grad ? check_all(&t, 7, gin, 5, tol_of(xt), what) : check_all(&t, 5, fin, m == 0 ? 1 : 3, tol_of(xt), what);
            free_all(in, 8);
            CT_CHECK(ok, "%s", what);
        }
    worst_print();
}

/* variants: 0 training with the statistics' gradients, 1 training with dY alone, 2 training
 * without dY (the statistics' gradients alone), 3 inference. The harness runs at most eight
 * inputs, so the ninth (dSavedInvStd) stays absent. */
static void t_batch_norm_grad(void) {
    CT_CHECK(setup(), "setup");
    worst_reset();
    for (size_t c = 0; c < sizeof bn_shapes / sizeof bn_shapes[0]; c++)
        for (int v = 0; v < 4; v++)
            for (int d = 0; d < 3; d++)
                for (int pf = 0; pf < (d ? 2 : 1); pf++) {
                    const shape *s = &bn_shapes[c];
                    const amp_dtype xt = kfloats[d], pt = pf ? AMP_F32 : xt;
                    const int64_t ch = bn_channels(s);
                    const uint64_t sd = 500 + 10 * c + (uint64_t)v;
                    const bool stats = v == 0 || v == 2;
                    tnode t;
                    tn_init(&t, "BatchNormalizationGrad", true);
                    tn_i(&t, "training", v < 3);
                    if (c % 2) tn_f(&t, "epsilon", 1e-3f), tn_f(&t, "momentum", 0.8f);
                    amp_tensor *in[8] = {v == 2 ? NULL : rnd(xt, s->rank, s->dims, sd, -1.0f, 1.0f),
                                         rnd(xt, s->rank, s->dims, sd + 1, -3.0f, 5.0f),
                                         rnd(pt, 1, &ch, sd + 2, 0.5f, 1.5f),
                                         rnd(pt, 1, &ch, sd + 3, -0.5f, 0.5f),
                                         rnd(pt, 1, &ch, sd + 4, 0.5f, 2.0f),
                                         stats ? rnd(pt, 1, &ch, sd + 5, -1.0f, 1.0f) : NULL,
                                         stats ? rnd(pt, 1, &ch, sd + 6, -1.0f, 1.0f) : NULL,
                                         stats ? rnd(pt, 1, &ch, sd + 7, -1.0f, 1.0f) : NULL};
                    char what[160];
                    snprintf(what, sizeof what, "BatchNormGrad variant %d %s params %s case %zu", v, amp_dtype_name(xt),
                             amp_dtype_name(pt), c);
                    bool ok = check_all(&t, 8, in, 5, tol_of(xt), what);
                    free_all(in, 8);
                    CT_CHECK(ok, "%s", what);
                }
    worst_print();
}

/* ---- LRN ----------------------------------------------------------------------------------------------- */

static void t_lrn(void) {
    CT_CHECK(setup(), "setup");
    worst_reset();
    const shape shapes[] = {{2, {2, 5}, 0}, {3, {1, 7, 9}, 0}, {4, {2, 6, 3, 5}, 0}, {5, {1, 4, 2, 3, 2}, 0},
                            {4, {1, 1, 3, 3}, 0}, {3, {0, 4, 3}, 0}};
    const struct {
        int64_t size;
        float beta;
    } attrs[] = {{5, 0.75f}, {3, 0.5f}, {2, 1.0f}, {4, 0.6f}, {1, 0.75f}};
    for (size_t c = 0; c < sizeof shapes / sizeof shapes[0]; c++)
        for (size_t a = 0; a < sizeof attrs / sizeof attrs[0]; a++)
            for (int g = 0; g < 2; g++)
                for (int d = 0; d < 3; d++) {
                    const shape *s = &shapes[c];
                    const amp_dtype xt = kfloats[d];
                    tnode t;
                    tn_init(&t, g ? "LRNGrad" : "LRN", g);
                    tn_i(&t, "size", attrs[a].size);
                    tn_f(&t, "beta", attrs[a].beta);
                    tn_f(&t, "alpha", 0.3f);
                    if (a % 2) tn_f(&t, "bias", 2.0f);
                    amp_tensor *in[2] = {rnd(xt, s->rank, s->dims, 600 + c, -1.0f, 1.0f),
                                         rnd(xt, s->rank, s->dims, 610 + c, -3.0f, 3.0f)};
                    CHECK_NODE(&t, g ? 2 : 1, g ? in : in + 1, 1, false, tol_of(xt), "%s %s case %zu size %lld beta %g",
                               t.n.op_type, amp_dtype_name(xt), c, (long long)attrs[a].size, attrs[a].beta);
                    free_all(in, 2);
                }
    worst_print();
}

/* ---- MeanVarianceNormalization ------------------------------------------------------------------------ */

static void t_mvn(void) {
    CT_CHECK(setup(), "setup");
    worst_reset();
    const struct {
        shape s;
        int naxes; /* -1: the default 0, 2, 3 */
        int64_t axes[4];
    } cases[] = {
        {{4, {2, 3, 4, 5}, 0}, -1, {0}},  {{4, {2, 3, 1, 7}, 0}, -1, {0}},   {{3, {3, 5, 7}, 0}, 1, {-1}},
        {{3, {3, 5, 7}, 0}, 2, {0, 2}},   {{2, {4, 33}, 0}, 0, {0}},         {{5, {2, 1, 3, 2, 5}, 0}, 3, {1, 3, -1}},
        {{1, {300}, 0}, 1, {0}},          {{4, {2, 3, 4, 5}, 0}, 1, {1}},    {{4, {0, 3, 4, 5}, 0}, -1, {0}},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++)
        for (int g = 0; g < 2; g++)
            for (int d = 0; d < 3; d++) {
                const shape *s = &cases[c].s;
                const amp_dtype xt = kfloats[d];
                tnode t;
                tn_init(&t, g ? "MeanVarianceNormalizationGrad" : "MeanVarianceNormalization", g);
                if (!g) t.opset = 13;
                if (cases[c].naxes >= 0) tn_is(&t, "axes", cases[c].naxes, cases[c].axes);
                amp_tensor *in[2] = {rnd(xt, s->rank, s->dims, 700 + c, -1.0f, 1.0f),
                                     rnd(xt, s->rank, s->dims, 710 + c, -3.0f, 5.0f)};
                CHECK_NODE(&t, g ? 2 : 1, g ? in : in + 1, 1, false, tol_of(xt), "%s %s case %zu", t.n.op_type,
                           amp_dtype_name(xt), c);
                free_all(in, 2);
            }
    worst_print();
}

/* ---- orders, refusals ---------------------------------------------------------------------------------- */

/* The node's CUDA outputs in every thread and block order: the same bits as in the first; -1
 * when they are, else the order that differed or failed. */
static int order_mismatch(tnode *t, int nin, amp_tensor *const *in, int nout) {
    amp_tensor *first[5] = {NULL}, *ref[5], *got[5];
    int bad = -1;
    for (int order = 0; order < 4 && bad < 0; order++) {
        int old = kn_set_order(order);
        amp_status s = run_both(t, nin, in, nout, ref, got);
        kn_set_order(old);
        if (s) {
            bad = order;
            break;
        }
        for (int i = 0; i < nout; i++) {
            if (!first[i]) first[i] = got[i], got[i] = NULL;
            else if (!bits_equal(got[i], first[i])) bad = order;
        }
        free_all(ref, nout);
        free_all(got, nout);
    }
    free_all(first, nout);
    return bad;
}

/* The barrier kernels and the workspace sums give the same bits in every thread and block order. */
static void t_orders(void) {
    CT_CHECK(setup(), "setup");
    int64_t dims[2] = {40, 70}, pd = 70, st[2] = {40, 1}, d4[4] = {3, 6, 5, 7}, ch = 6, ng = 3;
    amp_tensor *in[8] = {rnd(AMP_F32, 2, dims, 1, -1, 1), rnd(AMP_F32, 2, dims, 2, -3, 5), rnd(AMP_F32, 1, &pd, 3, 0.5f, 1.5f),
                         rnd(AMP_F32, 1, &pd, 4, -1, 1), NULL, NULL, rnd(AMP_F32, 2, st, 5, -1, 1), NULL};
    amp_tensor *cv[8] = {rnd(AMP_F32, 4, d4, 6, -1, 1), rnd(AMP_F32, 4, d4, 7, -3, 5), rnd(AMP_F32, 1, &ch, 8, 0.5f, 1.5f),
                         rnd(AMP_F32, 1, &ch, 9, -1, 1), rnd(AMP_F32, 1, &ch, 10, 0.5f, 2), rnd(AMP_F32, 1, &ch, 11, -1, 1),
                         rnd(AMP_F32, 1, &ng, 12, 0.5f, 1.5f), rnd(AMP_F32, 1, &ng, 13, -1, 1)};
    tnode t;
    int bad[6];
    tn_init(&t, "LayerNormalizationGrad", true);
    bad[0] = order_mismatch(&t, 8, in, 3);
    tn_init(&t, "LogSoftmax", false);
    bad[1] = order_mismatch(&t, 1, in + 1, 1);
    tn_init(&t, "SoftmaxGrad", true);
    bad[2] = order_mismatch(&t, 2, in, 1);
    tn_init(&t, "InstanceNormalizationGrad", true);
    bad[3] = order_mismatch(&t, 4, cv, 3);
    /* dY, X, scale, mean, var, dRunningMean */
    amp_tensor *bn[6] = {cv[0], cv[1], cv[2], cv[3], cv[4], cv[5]};
    tn_init(&t, "BatchNormalizationGrad", true);
    tn_i(&t, "training", 1);
    bad[4] = order_mismatch(&t, 6, bn, 5);
    amp_tensor *gn[4] = {cv[0], cv[1], cv[6], cv[7]};
    tn_init(&t, "GroupNormalizationGrad", true);
    tn_i(&t, "num_groups", 3);
    tn_i(&t, "fwd_opset", 18);
    bad[5] = order_mismatch(&t, 4, gn, 3);
    free_all(in, 8);
    free_all(cv, 8);
    for (int i = 0; i < 6; i++)
        CT_CHECK(bad[i] < 0, "node %d: order %d gave other bits (or failed: %s)", i, bad[i], amp_context_last_error(ctx));
}

/* The CPU runs these; this family refuses them, and prepare says why, naming the op. */
static void t_refused(void) {
    CT_CHECK(setup(), "setup");
    int64_t dims[2] = {3, 5}, five = 5;
    struct {
        const char *op;
        amp_dtype xt;
        int64_t *pdims;
        int64_t stash;
        const char *says;
    } cases[] = {
        {"LayerNormalization", AMP_F64, &five, AMP_F32, "f32, f16 and bf16"},
        {"Softmax", AMP_F64, NULL, 0, "f32, f16 and bf16"},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        tnode t;
        tn_init(&t, cases[c].op, false);
        const bool ln = cases[c].pdims != NULL;
        if (ln) tn_i(&t, "stash_type", cases[c].stash);
        amp_tensor *in[2] = {rnd(cases[c].xt, 2, dims, 9, -1, 1), ln ? rnd(AMP_F32, 1, cases[c].pdims, 8, 0.5f, 1.5f) : NULL};
        amp_tensor *ref[3], *got[3];
        amp_status s = run_both(&t, ln ? 2 : 1, in, ln ? 3 : 1, ref, got);
        CT_CHECK(s == AMP_ERR_UNSUPPORTED, "%s case %zu is refused, got %s", cases[c].op, c, amp_status_name(s));
        /* prepare explains the refusal */
        amp_tensor xv, sv, yv[3];
        int64_t sd[2] = {3, 1};
        amp_tensor_view(&xv, cases[c].xt, 2, dims, NULL);
        if (ln) amp_tensor_view(&sv, AMP_F32, 1, cases[c].pdims, NULL);
        amp_tensor_view(&yv[0], cases[c].xt, 2, dims, NULL);
        amp_tensor_view(&yv[1], (amp_dtype)cases[c].stash, 2, sd, NULL);
        amp_tensor_view(&yv[2], (amp_dtype)cases[c].stash, 2, sd, NULL);
        amp_tensor *pi[2] = {&xv, &sv}, *po[3] = {&yv[0], &yv[1], &yv[2]};
        amp_kernel k = {.ctx = ctx, .n = &t.n, .opset = 17, .nin = ln ? 2 : 1, .nout = ln ? 3 : 1, .in = pi, .out = po};
        void *state = NULL;
        size_t ws = 0;
        s = entry_of(t.n.op)->prepare(&cu, &k, &state, &ws);
        const char *m = amp_context_last_error(ctx);
        free_all(in, 2);
        CT_CHECK(s == AMP_ERR_UNSUPPORTED && strstr(m, cases[c].op) && strstr(m, cases[c].says), "message: %s", m);
    }
}

static const ct_case cases[] = {
    {"softmax", t_softmax},
    {"softmax_specials", t_softmax_specials},
    {"softmax_grad", t_softmax_grad},
    {"layer_norm", t_layer_norm},
    {"layer_norm_grad", t_layer_norm_grad},
    {"layer_norm_broadcast", t_layer_norm_broadcast},
    {"instance_norm", t_instance_norm},
    {"instance_norm_grad_dx_only", t_instance_norm_grad_dx_only},
    {"group_norm", t_group_norm},
    {"batch_norm", t_batch_norm},
    {"batch_norm_grad", t_batch_norm_grad},
    {"batch_norm_per_activation", t_batch_norm_per_activation},
    {"lrn", t_lrn},
    {"mvn", t_mvn},
    {"orders", t_orders},
    {"refused", t_refused},
    {NULL, NULL},
};

int main(int argc, char **argv) { return ot_main(argc, argv, cases); }

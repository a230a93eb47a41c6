/* Gradients of the norm family (ir/ops/norm_grad.c, backends/cpu/norm_grad.c):
 * BatchNormalization, InstanceNormalization, LayerNormalization, GroupNormalization (opsets 18
 * and 21; X, scale and bias), LRN and MeanVarianceNormalization.
 *
 * Every case is a finite-difference check (tests/gradcheck.h) through the autodiff pass, in f64
 * with eps 1e-6; the analytic gradient must agree within a relative L2 error of 1e-5. Each
 * training op also runs in f16, bf16 and f32 against its own f64 result on the same (rounded)
 * inputs, within a relative L2 error of 1e-2 (1e-5 for f32), with shapes big enough for the
 * threaded loops; and bad inputs must fail with the right status and no outputs. */
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
TestSuite(grad_norm, .init = setup, .fini = teardown, .timeout = 60);

#include "nn_gradutil.h"

/* Finite-difference check of every input (all float here). */
static void gc_all(amp_test_node *t, int nin, amp_tensor **in, const char *what) {
    bool all[MAXIN];
    for (int i = 0; i < nin; i++) all[i] = true;
    char msg[640];
    cr_assert(gc_passes(t, nin, in, all, 1, GC_TOL, msg, sizeof msg), "%s: %s", what, msg);
}

/* Run t with every input in f16, bf16 and f32, and in f64 on the same rounded values; each of
 * the nout outputs must agree with the f64 one within relative L2 1e-2 (16-bit) or 1e-5. */
static void cmp_all(amp_test_node *t, int nin, amp_tensor **in64, int nout, const char *what) {
    static const amp_dtype dts[3] = {AMP_F16, AMP_BF16, AMP_F32};
    static const double tols[3] = {1e-2, 1e-2, 1e-5};
    for (int k = 0; k < 3; k++) {
        amp_tensor *lo[MAXIN] = {0}, *hi[MAXIN] = {0}, *olo[3] = {0}, *ohi[3] = {0};
        for (int i = 0; i < nin; i++) {
            lo[i] = tt_convert(ctx, in64[i], dts[k]);
            hi[i] = tt_convert(ctx, lo[i], AMP_F64);
        }
        amp_status s = tn_run(t, nin, lo, nout, olo);
        cr_assert_eq(s, AMP_OK, "%s (%s): %s", what, amp_dtype_name(dts[k]), amp_context_last_error(ctx));
        s = tn_run(t, nin, hi, nout, ohi);
        cr_assert_eq(s, AMP_OK, "%s (f64): %s", what, amp_context_last_error(ctx));
        for (int o = 0; o < nout; o++) {
            cr_assert_eq(olo[o]->dtype, dts[k]);
            double e = sqrt(tt_nse(olo[o], ohi[o]));
            cr_assert(e < tols[k], "%s (%s): output %d rel L2 %g", what, amp_dtype_name(dts[k]), o, e);
        }
        free_in(lo, nin);
        free_in(hi, nin);
        free_in(olo, nout);
        free_in(ohi, nout);
    }
}

/* ---- GroupNormalization ------------------------------------------------------------------------- */

typedef struct gn_case {
    int rank;
    int64_t dims[5], groups;
} gn_case;

static const gn_case gn_cases[] = {
    {3, {2, 4, 3}, 2},       {4, {2, 6, 2, 3}, 3}, {4, {1, 4, 2, 2}, 4}, /* a group per channel */
    {4, {2, 4, 3, 2}, 1},                                                /* one group */
    {2, {3, 4}, 2},                                                      /* no spatial dims */
    {5, {1, 4, 2, 1, 3}, 2},
};

Test(grad_norm, group_norm_both_opsets) {
    for (int op = 0; op < 2; op++) {
        const int64_t opset = op ? 21 : 18;
        for (size_t ci = 0; ci < sizeof gn_cases / sizeof gn_cases[0]; ci++) {
            const gn_case *gc = &gn_cases[ci];
            const int64_t pd[1] = {op ? gc->dims[1] : gc->groups};
            amp_tensor *in[3] = {rnd(gc->rank, gc->dims, -2, 2), rnd(1, pd, 0.5, 1.5), rnd(1, pd, -1, 1)};
            amp_test_node *t = tn_new(ctx, "GroupNormalization");
            t->opset = opset;
            tn_int(t, "num_groups", gc->groups);
            tn_float(t, "epsilon", 1e-3f);
            char what[96];
            snprintf(what, sizeof what, "GroupNormalization-%lld case %zu", (long long)opset, ci);
            gc_all(t, 3, in, what);
            tn_free(t);
            free_in(in, 3);
        }
    }
}

Test(grad_norm, group_norm_grad_16bit_and_threads) {
    const int64_t xd[4] = {3, 8, 40, 12};
    for (int op = 0; op < 2; op++) {
        const int64_t pd[1] = {op ? 8 : 4};
        amp_tensor *in[4] = {rnd(4, xd, -1, 1), rnd(4, xd, -2, 2), rnd(1, pd, 0.5, 1.5), rnd(1, pd, -1, 1)};
        amp_test_node *t = tn_train(ctx, "GroupNormalizationGrad");
        t->threads = 4;
        tn_int(t, "num_groups", 4);
        tn_int(t, "fwd_opset", op ? 21 : 18);
        cmp_all(t, 4, in, 3, op ? "GroupNormalizationGrad-21" : "GroupNormalizationGrad-18");
        tn_free(t);
        free_in(in, 4);
    }
}

Test(grad_norm, group_norm_grad_outputs_optional_and_empty) {
    /* dX alone; and an empty batch: dscale and dbias are zeros of the parameter's shape */
    const int64_t xd[3] = {2, 4, 3}, pd[1] = {4}, ed[3] = {0, 4, 3};
    amp_tensor *in[4] = {rnd(3, xd, -1, 1), rnd(3, xd, -2, 2), rnd(1, pd, 0.5, 1.5), rnd(1, pd, -1, 1)};
    amp_tensor *out[3] = {0};
    amp_test_node *t = tn_train(ctx, "GroupNormalizationGrad");
    tn_int(t, "num_groups", 2);
    cr_assert_eq(tn_run(t, 4, in, 1, out), AMP_OK, "%s", amp_context_last_error(ctx));
    cr_assert_eq(out[0]->numel, 24);
    free_in(out, 1);
    amp_tensor *ein[4] = {rnd(3, ed, -1, 1), rnd(3, ed, -1, 1), in[2], in[3]};
    cr_assert_eq(tn_run(t, 4, ein, 3, out), AMP_OK, "%s", amp_context_last_error(ctx));
    cr_assert_eq(out[0]->numel, 0);
    for (int i = 1; i < 3; i++)
        for (int64_t e = 0; e < 4; e++) cr_assert_eq(tt_get(out[i], e), 0.0);
    free_in(out, 3);
    free_in(ein, 2);
    /* a huge batch of nothing (C x spatial = 0 elements each): the same, without looping */
    const int64_t hd[3] = {(int64_t)1 << 40, 4, 0};
    amp_tensor *hin[4] = {rnd(3, hd, -1, 1), rnd(3, hd, -1, 1), in[2], in[3]};
    cr_assert_eq(tn_run(t, 4, hin, 3, out), AMP_OK, "%s", amp_context_last_error(ctx));
    for (int i = 1; i < 3; i++)
        for (int64_t e = 0; e < 4; e++) cr_assert_eq(tt_get(out[i], e), 0.0);
    free_in(out, 3);
    free_in(hin, 2);
    tn_free(t);
    const int64_t ld[4] = {(int64_t)1 << 40, 3, 0, (int64_t)1 << 40};
    amp_tensor *lin[2] = {rnd(4, ld, -1, 1), rnd(4, ld, -1, 1)};
    static const char *const xonly[2] = {"LRNGrad", "MeanVarianceNormalizationGrad"};
    for (int i = 0; i < 2; i++) {
        t = tn_train(ctx, xonly[i]);
        tn_int(t, "size", 3);
        tn_ints(t, "axes", 2, (const int64_t[]){0, 3});
        cr_assert_eq(tn_run(t, 2, lin, 1, out), AMP_OK, "%s: %s", xonly[i], amp_context_last_error(ctx));
        cr_assert_eq(out[0]->numel, 0);
        free_in(out, 1);
        tn_free(t);
    }
    free_in(lin, 2);
    free_in(in, 4);
}

/* ---- LRN ------------------------------------------------------------------------------------------ */

Test(grad_norm, lrn_sizes_and_attributes) {
    /* alpha large enough that the window term is a real part of the gradient */
    const int64_t x3[3] = {2, 5, 3}, x4[4] = {1, 6, 2, 2}, x2[2] = {3, 4};
    const struct {
        int rank;
        const int64_t *dims;
        int64_t size;
        float alpha, beta, bias;
    } cases[] = {
        {3, x3, 3, 0.8f, 0.75f, 1.0f}, {3, x3, 2, 0.8f, 0.75f, 1.0f}, {4, x4, 4, 1.2f, 0.6f, 2.0f},
        {4, x4, 5, 0.5f, 0.5f, 1.0f},  {2, x2, 1, 0.9f, 1.0f, 0.7f},  {4, x4, 9, 0.7f, 0.8f, 1.5f},
    };
    for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++) {
        amp_tensor *in[1] = {rnd(cases[ci].rank, cases[ci].dims, -2, 2)};
        amp_test_node *t = tn_new(ctx, "LRN");
        t->opset = ci % 2 ? 13 : 12;
        tn_int(t, "size", cases[ci].size);
        tn_float(t, "alpha", cases[ci].alpha);
        tn_float(t, "beta", cases[ci].beta);
        tn_float(t, "bias", cases[ci].bias);
        char what[64];
        snprintf(what, sizeof what, "LRN case %zu", ci);
        gc_all(t, 1, in, what);
        tn_free(t);
        free_in(in, 1);
    }
}

Test(grad_norm, lrn_grad_16bit_and_threads) {
    const int64_t xd[4] = {2, 10, 40, 45};
    amp_tensor *in[2] = {rnd(4, xd, -1, 1), rnd(4, xd, -2, 2)};
    amp_test_node *t = tn_train(ctx, "LRNGrad");
    t->threads = 4;
    tn_int(t, "size", 5);
    tn_float(t, "alpha", 0.6f);
    cmp_all(t, 2, in, 1, "LRNGrad");
    tn_free(t);
    free_in(in, 2);
}

/* ---- MeanVarianceNormalization ---------------------------------------------------------------------- */

Test(grad_norm, mvn_axes) {
    const int64_t x4[4] = {2, 3, 2, 3}, x3[3] = {3, 2, 4};
    const int64_t a23[2] = {2, 3}, a1[1] = {1}, a02[2] = {0, 2}, am1[1] = {-1};
    const struct {
        int rank;
        const int64_t *dims;
        int naxes; /* -1: default axes */
        const int64_t *axes;
    } cases[] = {
        {4, x4, -1, NULL}, {4, x4, 2, a23}, {4, x4, 1, a1}, {4, x4, 0, a1}, {3, x3, 2, a02}, {3, x3, 1, am1},
    };
    for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++) {
        amp_tensor *in[1] = {rnd(cases[ci].rank, cases[ci].dims, -2, 2)};
        amp_test_node *t = tn_new(ctx, "MeanVarianceNormalization");
        t->opset = ci % 2 ? 13 : 9;
        if (cases[ci].naxes >= 0) tn_ints(t, "axes", cases[ci].naxes, cases[ci].axes);
        char what[64];
        snprintf(what, sizeof what, "MeanVarianceNormalization case %zu", ci);
        gc_all(t, 1, in, what);
        tn_free(t);
        free_in(in, 1);
    }
}

Test(grad_norm, mvn_grad_16bit_and_threads) {
    const int64_t xd[4] = {4, 6, 30, 40}, a23[2] = {2, 3};
    amp_tensor *in[2] = {rnd(4, xd, -1, 1), rnd(4, xd, -2, 2)};
    for (int v = 0; v < 2; v++) {
        amp_test_node *t = tn_train(ctx, "MeanVarianceNormalizationGrad");
        t->threads = 4;
        if (v) tn_ints(t, "axes", 2, a23);
        cmp_all(t, 2, in, 1, v ? "MeanVarianceNormalizationGrad axes 2,3" : "MeanVarianceNormalizationGrad");
        tn_free(t);
    }
    free_in(in, 2);
}

/* ---- the builder and bad input ------------------------------------------------------------------------ */

Test(grad_norm, op_table_and_builder_scope) {
    static const char *const ops[3] = {"GroupNormalizationGrad", "LRNGrad", "MeanVarianceNormalizationGrad"};
    for (int i = 0; i < 3; i++) {
        amp_op op = amp_op_lookup(ops[i], AMP_TRAIN_DOMAIN);
        cr_assert_neq(op, AMP_OP_UNKNOWN, "%s", ops[i]);
        cr_assert_eq(amp_op_table[op].cast_class, AMP_CLASS_NONE);
        cr_assert_eq(amp_op_lookup(ops[i], ""), AMP_OP_UNKNOWN, "%s leaked into the default domain", ops[i]);
    }
}

Test(grad_norm, bad_inputs_fail_cleanly) {
    const int64_t xd[4] = {2, 4, 3, 3}, wrong[4] = {2, 4, 3, 2}, pd[1] = {4}, p2[1] = {2};
    amp_tensor *x = rnd(4, xd, -1, 1), *dy = rnd(4, xd, -1, 1), *dyw = rnd(4, wrong, -1, 1);
    amp_tensor *s4 = rnd(1, pd, 0.5, 1.5), *s2 = rnd(1, p2, 0.5, 1.5);
    amp_tensor *xi = tt_rand(ctx, AMP_I64, 4, xd, -3, 3, 99);
    amp_tensor *out[4] = {0};

    amp_test_node *t = tn_train(ctx, "GroupNormalizationGrad");
    tn_int(t, "num_groups", 2);
    cr_assert_eq(tn_run(t, 4, (amp_tensor *[]){dyw, x, s4, s4}, 3, out), AMP_ERR_SHAPE);
    cr_assert(strstr(amp_context_last_error(ctx), "dY") != NULL, "message: %s", amp_context_last_error(ctx));
    cr_assert_eq(tn_run(t, 4, (amp_tensor *[]){dy, x, s2, s2}, 3, out), AMP_ERR_SHAPE); /* opset 21: per channel */
    cr_assert_eq(tn_run(t, 3, (amp_tensor *[]){dy, x, s4}, 3, out), AMP_ERR_INVALID_GRAPH);
    cr_assert_eq(tn_run(t, 4, (amp_tensor *[]){dy, x, s4, s4}, 4, out), AMP_ERR_INVALID_GRAPH);
    cr_assert_eq(tn_run(t, 4, (amp_tensor *[]){xi, x, s4, s4}, 3, out), AMP_ERR_UNSUPPORTED);
    tn_free(t);
    t = tn_train(ctx, "GroupNormalizationGrad");
    tn_int(t, "num_groups", 3);
    tn_int(t, "fwd_opset", 18);
    cr_assert_eq(tn_run(t, 4, (amp_tensor *[]){dy, x, s2, s2}, 3, out), AMP_ERR_SHAPE);
    tn_free(t);
    t = tn_train(ctx, "GroupNormalizationGrad"); /* num_groups missing */
    cr_assert_eq(tn_run(t, 4, (amp_tensor *[]){dy, x, s4, s4}, 3, out), AMP_ERR_INVALID_GRAPH);
    tn_free(t);

    t = tn_train(ctx, "LRNGrad");
    cr_assert_eq(tn_run(t, 2, (amp_tensor *[]){dy, x}, 1, out), AMP_ERR_INVALID_GRAPH); /* size missing */
    tn_int(t, "size", 3);
    cr_assert_eq(tn_run(t, 2, (amp_tensor *[]){dyw, x}, 1, out), AMP_ERR_SHAPE);
    cr_assert_eq(tn_run(t, 2, (amp_tensor *[]){dy, xi}, 1, out), AMP_ERR_UNSUPPORTED);
    cr_assert_eq(tn_run(t, 2, (amp_tensor *[]){dy, x}, 2, out), AMP_ERR_INVALID_GRAPH);
    tn_free(t);

    t = tn_train(ctx, "MeanVarianceNormalizationGrad");
    tn_ints(t, "axes", 2, (const int64_t[]){1, 5});
    cr_assert_eq(tn_run(t, 2, (amp_tensor *[]){dy, x}, 1, out), AMP_ERR_INVALID_GRAPH);
    tn_free(t);
    t = tn_train(ctx, "MeanVarianceNormalizationGrad");
    cr_assert_eq(tn_run(t, 2, (amp_tensor *[]){dyw, x}, 1, out), AMP_ERR_SHAPE);
    cr_assert_eq(tn_run(t, 1, (amp_tensor *[]){x}, 1, out), AMP_ERR_INVALID_GRAPH);
    tn_free(t);

    for (int i = 0; i < 4; i++) cr_assert_null(out[i]);
    amp_tensor *all[6] = {x, dy, dyw, s4, s2, xi};
    free_in(all, 6);
}

/* ---- BatchNormalization --------------------------------------------------------------------------- */

static void bn_case(int64_t opset, int rank, const int64_t *xd, int per_act, int training, int nout, const char *what) {
    const int64_t ch = xd[1 < rank ? 1 : 0];
    int prank = per_act ? rank - 1 : 1;
    int64_t pd[4] = {ch};
    if (per_act)
        for (int d = 1; d < rank; d++) pd[d - 1] = xd[d];
    amp_tensor *in[5] = {rnd(rank, xd, -2, 2), rnd(prank, pd, 0.5, 1.5), rnd(prank, pd, -1, 1), rnd(prank, pd, -1, 1),
                         rnd(prank, pd, 0.5, 1.5)};
    amp_test_node *t = tn_new(ctx, "BatchNormalization");
    t->opset = opset;
    tn_float(t, "epsilon", 1e-3f);
    tn_float(t, "momentum", 0.8f);
    if (opset >= 14) tn_int(t, "training_mode", training);
    if (per_act) tn_int(t, "spatial", 0);
    gc_ok(t, 5, in, NULL, nout, what);
    tn_free(t);
    free_in(in, 5);
}

Test(grad_norm, batch_norm_training) {
    const int64_t x2[2] = {5, 3}, x3[3] = {2, 3, 4}, x4[4] = {3, 2, 2, 3};
    bn_case(15, 2, x2, 0, 1, 1, "BN training 2-D, Y only");
    bn_case(15, 3, x3, 0, 1, 3, "BN training 3-D, running stats");
    bn_case(15, 4, x4, 0, 1, 3, "BN training 4-D, running stats");
    bn_case(14, 4, x4, 0, 1, 1, "BN training opset 14");
    /* opsets 7-13: training when the statistics outputs are asked for; saved mean and inv std */
    bn_case(12, 4, x4, 0, 1, 5, "BN opset 12, five outputs");
    bn_case(9, 3, x3, 0, 1, 5, "BN opset 9, five outputs");
    /* opset 8, spatial=0: statistics per activation */
    bn_case(8, 3, x3, 1, 1, 5, "BN opset 8 spatial=0 training");
}

Test(grad_norm, batch_norm_inference) {
    const int64_t x2[2] = {5, 3}, x4[4] = {3, 2, 2, 3}, x3[3] = {2, 3, 4};
    bn_case(15, 2, x2, 0, 0, 1, "BN inference 2-D");
    bn_case(15, 4, x4, 0, 0, 1, "BN inference 4-D");
    bn_case(12, 4, x4, 0, 0, 1, "BN opset 12 inference");
    bn_case(8, 3, x3, 1, 0, 1, "BN opset 8 spatial=0 inference");
}

Test(grad_norm, batch_norm_grad_16bit_and_mixed) {
    const int64_t xd[4] = {4, 3, 5, 7}, pd[1] = {3};
    amp_tensor *in[9] = {rnd(4, xd, -1, 1), rnd(4, xd, -2, 2), rnd(1, pd, 0.5, 1.5), rnd(1, pd, -1, 1),
                         rnd(1, pd, 0.5, 1.5), rnd(1, pd, -1, 1), rnd(1, pd, -1, 1), NULL, NULL};
    for (int training = 0; training < 2; training++) {
        amp_test_node *t = tn_train(ctx, "BatchNormalizationGrad");
        tn_int(t, "training", training);
        /* everything 16-bit, then 16-bit activations beside f32 parameters (autocast) */
        cmp_narrow(t, 7, in, (const bool[]){true, true, true, true, true, true, true}, 5, "BatchNormalizationGrad");
        amp_tensor *mixed[9];
        for (int i = 0; i < 7; i++) mixed[i] = i < 2 ? in[i] : tt_convert(ctx, in[i], AMP_F32);
        cmp_narrow(t, 7, mixed, (const bool[]){true, true, false, false, false, false, false}, 5,
              "BatchNormalizationGrad mixed");
        amp_tensor *o[5];
        cr_assert_eq(tn_run(t, 7, mixed, 5, o), AMP_OK);
        cr_assert_eq(o[0]->dtype, AMP_F64);
        for (int i = 1; i < 5; i++) cr_assert_eq(o[i]->dtype, AMP_F32, "output %d keeps its parameter's dtype", i);
        free_in(o, 5);
        for (int i = 2; i < 7; i++) amp_tensor_destroy(mixed[i]);
        tn_free(t);
    }
    free_in(in, 9);
}

/* ---- InstanceNormalization ---------------------------------------------------------------------- */

Test(grad_norm, instance_norm) {
    const int64_t x3[3] = {2, 3, 5}, x4[4] = {2, 2, 3, 3}, pd[1] = {3}, pd2[1] = {2};
    amp_tensor *a[3] = {rnd(3, x3, -2, 2), rnd(1, pd, 0.5, 1.5), rnd(1, pd, -1, 1)};
    amp_tensor *b[3] = {rnd(4, x4, -2, 2), rnd(1, pd2, 0.5, 1.5), rnd(1, pd2, -1, 1)};
    amp_test_node *t = tn_new(ctx, "InstanceNormalization");
    tn_float(t, "epsilon", 1e-3f);
    gc_ok(t, 3, a, NULL, 1, "InstanceNorm 3-D");
    gc_ok(t, 3, b, NULL, 1, "InstanceNorm 4-D");
    tn_free(t);
    free_in(a, 3);
    free_in(b, 3);
}

Test(grad_norm, instance_norm_grad_16bit) {
    const int64_t xd[4] = {3, 4, 6, 5}, pd[1] = {4};
    amp_tensor *in[4] = {rnd(4, xd, -1, 1), rnd(4, xd, -2, 2), rnd(1, pd, 0.5, 1.5), rnd(1, pd, -1, 1)};
    amp_test_node *t = tn_train(ctx, "InstanceNormalizationGrad");
    cmp_narrow(t, 4, in, (const bool[]){true, true, true, true}, 3, "InstanceNormalizationGrad");
    tn_free(t);
    free_in(in, 4);
}

/* ---- LayerNormalization -------------------------------------------------------------------------- */

static void ln_case(int axis, int rs, const int64_t *sd, int rb, const int64_t *bd, int nout, int64_t stash,
                    const char *what) {
    const int64_t xd[3] = {3, 4, 5};
    amp_tensor *in[3] = {rnd(3, xd, -2, 2), rnd(rs, sd, 0.5, 1.5), rb >= 0 ? rnd(rb, bd, -1, 1) : NULL};
    amp_test_node *t = tn_new(ctx, "LayerNormalization");
    tn_int(t, "axis", axis);
    tn_float(t, "epsilon", 1e-3f);
    if (stash) tn_int(t, "stash_type", stash);
    gc_ok(t, rb >= 0 ? 3 : 2, in, NULL, nout, what);
    tn_free(t);
    free_in(in, 3);
}

Test(grad_norm, layer_norm) {
    const int64_t s5[1] = {5}, s45[2] = {4, 5}, s41[2] = {4, 1}, s1[1] = {1}, s345[3] = {3, 4, 5};
    ln_case(-1, 1, s5, 1, s5, 1, 0, "LN axis -1");
    ln_case(-1, 1, s5, -1, NULL, 1, 0, "LN axis -1 without B");
    ln_case(1, 2, s45, 2, s45, 1, 0, "LN axis 1");
    ln_case(0, 3, s345, 3, s345, 1, 0, "LN axis 0 (one row)");
    /* Scale varying along a row dim, B a broadcast scalar: the general parameter path */
    ln_case(2, 2, s41, 1, s1, 1, 0, "LN broadcast parameters");
    ln_case(1, 1, s1, 2, s45, 1, 0, "LN scalar Scale");
    /* Mean and InvStdDev in the loss; f64 stash: the saved statistics are used */
    ln_case(-1, 1, s5, 1, s5, 3, AMP_F64, "LN with Mean and InvStdDev outputs");
    ln_case(1, 2, s45, -1, NULL, 3, AMP_F64, "LN axis 1 with statistics, no B");
}

Test(grad_norm, layer_norm_f32_stash_with_f64_x) {
    /* Mean/InvStdDev in f32 beside an f64 X are recomputed: gradients keep f64 accuracy */
    const int64_t xd[2] = {4, 6}, sd[1] = {6};
    amp_tensor *in[3] = {rnd(2, xd, -2, 2), rnd(1, sd, 0.5, 1.5), rnd(1, sd, -1, 1)};
    amp_test_node *t = tn_new(ctx, "LayerNormalization");
    tn_float(t, "epsilon", 1e-3f);
    /* three outputs exist (a forward run gives the node all three), only Y is in the loss */
    amp_tensor *o[3];
    cr_assert_eq(tn_run(t, 3, in, 3, o), AMP_OK);
    free_in(o, 3);
    gc_ok(t, 3, in, NULL, 1, "LN with unused f32 statistics");
    tn_free(t);
    free_in(in, 3);
}

Test(grad_norm, layer_norm_grad_16bit) {
    const int64_t xd[3] = {6, 7, 40}, sd[1] = {40}, rd[3] = {6, 7, 1}, s71[2] = {7, 1};
    amp_tensor *in[8] = {rnd(3, xd, -1, 1), rnd(3, xd, -2, 2), rnd(1, sd, 0.5, 1.5), rnd(1, sd, -1, 1), NULL, NULL,
                         rnd(3, rd, -1, 1), rnd(3, rd, -1, 1)};
    amp_test_node *t = tn_train(ctx, "LayerNormalizationGrad");
    tn_int(t, "axis", -1);
    cmp_narrow(t, 8, in, (const bool[]){true, true, true, true, false, false, true, true}, 3, "LayerNormalizationGrad");
    tn_free(t);
    /* general broadcast of Scale */
    amp_tensor *g = rnd(2, s71, 0.5, 1.5);
    amp_tensor *in2[3] = {in[0], in[1], g};
    t = tn_train(ctx, "LayerNormalizationGrad");
    tn_int(t, "axis", 2);
    cmp_narrow(t, 3, in2, (const bool[]){true, true, true}, 2, "LayerNormalizationGrad broadcast");
    tn_free(t);
    amp_tensor_destroy(g);
    free_in(in, 8);
}

/* ---- empty tensors ------------------------------------------------------------------------------ */

Test(grad_norm, zero_size_dims) {
    {
        const int64_t xd[3] = {0, 3, 2}, pd[1] = {3};
        amp_tensor *in[5] = {rnd(3, xd, -1, 1), rnd(1, pd, 0.5, 1.5), rnd(1, pd, -1, 1), rnd(1, pd, -1, 1),
                             rnd(1, pd, 0.5, 1.5)};
        amp_test_node *t = tn_new(ctx, "BatchNormalization");
        tn_int(t, "training_mode", 1);
        gc_ok(t, 5, in, NULL, 1, "BN training N=0");
        tn_free(t);
        free_in(in, 5);
    }
    {
        const int64_t xd[3] = {2, 3, 0}, pd[1] = {3};
        amp_tensor *in[3] = {rnd(3, xd, -1, 1), rnd(1, pd, 0.5, 1.5), rnd(1, pd, -1, 1)};
        amp_test_node *t = tn_new(ctx, "InstanceNormalization");
        gc_ok(t, 3, in, NULL, 1, "InstanceNorm with no spatial elements");
        tn_free(t);
        free_in(in, 3);
    }
    {
        const int64_t xd[2] = {0, 5}, pd[1] = {5};
        amp_tensor *in[3] = {rnd(2, xd, -1, 1), rnd(1, pd, 0.5, 1.5), rnd(1, pd, -1, 1)};
        amp_test_node *t = tn_new(ctx, "LayerNormalization");
        gc_ok(t, 3, in, NULL, 1, "LayerNorm with no rows");
        tn_free(t);
        free_in(in, 3);
    }
}

Test(grad_norm, layer_norm_grad_bad_shape_fails_cleanly) {
    const int64_t bd[2] = {4, 5}, yd[2] = {3, 5}, wrong[2] = {3, 6};
    amp_tensor *b = rnd(2, bd, -1, 1), *dy = rnd(2, yd, -1, 1), *dyw = rnd(2, wrong, -1, 1);
    amp_tensor *out[2] = {0};
    amp_test_node *t = tn_train(ctx, "LayerNormalizationGrad");
    tn_int(t, "axis", -1);
    cr_assert_eq(tn_run(t, 3, (amp_tensor *[]){dyw, dy, b}, 2, out), AMP_ERR_SHAPE);
    tn_free(t);
    for (int i = 0; i < 2; i++) cr_assert_null(out[i]);
    amp_tensor *all[3] = {b, dy, dyw};
    free_in(all, 3);
}

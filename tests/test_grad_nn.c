/* Gradients of the nn family (ir/ops/nn_grad.c, backends/cpu/nn_grad.c): Softmax/LogSoftmax and
 * the classification losses.
 *
 * Every case is a finite-difference check (tests/gradcheck.h) in f64 with eps 1e-6 and random
 * inputs kept away from kinks; the analytic gradient must agree within a relative L2 error of
 * 1e-5. Each training-domain kernel also runs in f16, bf16 and f32 against its own f64 result
 * on the same (rounded) inputs, within a relative L2 error of 1e-2 (1e-5 for f32).  */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backends/cpu/cpu.h"
#include "gradcheck.h"
#include "ir/grad.h"
#include "testutil.h"

static amp_context *ctx;
static void setup(void) { cr_assert_eq(amp_context_create(NULL, &ctx), AMP_OK); }
static void teardown(void) { amp_context_destroy(ctx); }
TestSuite(grad_nn, .init = setup, .fini = teardown);

#include "nn_gradutil.h"

/* ---- Softmax, LogSoftmax ------------------------------------------------------------------------- */

Test(grad_nn, softmax_and_log_softmax) {
    const char *ops[2] = {"Softmax", "LogSoftmax"};
    const int64_t d2[2] = {3, 5}, d3[3] = {2, 3, 4};
    struct {
        int64_t opset;
        int has_axis;
        int64_t axis;
        int rank;
        const int64_t *dims;
    } cases[] = {{13, 0, 0, 2, d2}, {13, 1, 1, 3, d3}, {13, 1, 0, 3, d3}, {17, 1, -2, 3, d3},
                 {11, 1, 1, 3, d3}, {11, 0, 0, 3, d3}, {11, 1, 0, 3, d3}, {11, 1, 2, 3, d3}};
    for (int o = 0; o < 2; o++)
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
            amp_tensor *in[1] = {rnd(cases[i].rank, cases[i].dims, -2, 2)};
            amp_test_node *t = tn_new(ctx, ops[o]);
            t->opset = cases[i].opset;
            if (cases[i].has_axis) tn_int(t, "axis", cases[i].axis);
            char what[64];
            snprintf(what, sizeof what, "%s case %zu", ops[o], i);
            gc_ok(t, 1, in, NULL, 1, what);
            tn_free(t);
            free_in(in, 1);
        }
}

Test(grad_nn, softmax_grad_16bit) {
    const char *ops[2] = {"SoftmaxGrad", "LogSoftmaxGrad"};
    const int64_t d[3] = {4, 30, 9};
    for (int o = 0; o < 2; o++) {
        for (int opset = 11; opset <= 13; opset += 2) {
            amp_tensor *x = rnd(3, d, -2, 2), *y[1];
            amp_test_node *f = tn_new(ctx, o ? "LogSoftmax" : "Softmax");
            f->opset = opset;
            tn_int(f, "axis", 1);
            cr_assert_eq(tn_run(f, 1, &x, 1, y), AMP_OK);
            amp_tensor *in[2] = {rnd(3, d, -1, 1), y[0]};
            amp_test_node *t = tn_train(ctx, ops[o]);
            tn_int(t, "axis", 1);
            tn_int(t, "fwd_opset", opset);
            cmp_narrow(t, 2, in, (const bool[]){true, true}, 1, ops[o]);
            tn_free(t);
            tn_free(f);
            amp_tensor_destroy(x);
            free_in(in, 2);
        }
    }
}

/* ---- NegativeLogLikelihoodLoss, SoftmaxCrossEntropyLoss ------------------------------------------ */

static void loss_cases(const char *op, int nout) {
    const char *reds[3] = {"none", "sum", "mean"};
    const int64_t x2[2] = {6, 4}, t2[1] = {6}, x4[4] = {2, 4, 3, 2}, t4[3] = {2, 3, 2}, wd[1] = {4};
    const double tv2[6] = {0, 3, 1, -1, 2, 3};
    const double tv4[12] = {0, 1, 2, 3, -1, 0, 3, 3, 2, 1, -1, 0};
    for (int nd = 0; nd < 2; nd++)
        for (int r = 0; r < 3; r++)
            for (int w = 0; w < 2; w++)
                for (int ii = 0; ii < 2; ii++) {
                    amp_tensor *in[3] = {nd ? rnd(4, x4, -2, 2) : rnd(2, x2, -2, 2),
                                         nd ? ints(3, t4, tv4) : ints(1, t2, tv2), w ? rnd(1, wd, 0.2, 2) : NULL};
                    /* without ignore_index the -1 targets become class 1 */
                    if (!ii)
                        for (int64_t e = 0; e < in[1]->numel; e++)
                            if (amp_ldi(AMP_I64, in[1]->data, e) < 0) ((int64_t *)in[1]->data)[e] = 1;
                    amp_test_node *t = tn_new(ctx, op);
                    tn_str(t, "reduction", reds[r]);
                    if (ii) tn_int(t, "ignore_index", -1);
                    char what[128];
                    snprintf(what, sizeof what, "%s %s %s weights=%d ignore=%d outputs=%d", op, nd ? "N-D" : "2-D",
                             reds[r], w, ii, nout);
                    /* the gradient goes to the scores only */
                    gc_ok(t, w ? 3 : 2, in, (const bool[]){true, false, false}, nout, what);
                    tn_free(t);
                    free_in(in, 3);
                }
}

Test(grad_nn, nll_loss) { loss_cases("NegativeLogLikelihoodLoss", 1); }
Test(grad_nn, softmax_cross_entropy_loss) { loss_cases("SoftmaxCrossEntropyLoss", 1); }
Test(grad_nn, softmax_cross_entropy_loss_with_log_prob) { loss_cases("SoftmaxCrossEntropyLoss", 2); }

/* The f32 training path against softmax - onehot computed here in double. */
Test(grad_nn, sce_grad_f32_exact) {
    const int64_t N = 64, C = 1000, xd[2] = {N, C}, td[1] = {N}, sd[1] = {0};
    amp_tensor *x = tt_rand(ctx, AMP_F32, 2, xd, -8, 8, 77), *w = tt_rand(ctx, AMP_F32, 1, (int64_t[]){C}, 0.5, 2, 78);
    double tv[64];
    for (int i = 0; i < N; i++) tv[i] = (i * 37) % C;
    tv[5] = -100; /* ignored */
    /* one row where the target dominates: p_t close to 1 */
    for (int c = 0; c < C; c++) amp_st(AMP_F32, x->data, 7 * C + c, c == (7 * 37) % C ? 30.0 : 0.0);
    amp_tensor *t = ints(1, td, tv), *dy = tt_make(ctx, AMP_F32, 0, sd, (double[]){1.7});
    amp_test_node *n = tn_train(ctx, "SoftmaxCrossEntropyLossGrad");
    tn_int(n, "ignore_index", -100);
    amp_tensor *in[4] = {dy, x, t, w}, *out[1];
    cr_assert_eq(tn_run(n, 4, in, 1, out), AMP_OK, "%s", amp_context_last_error(ctx));
    double wsum = 0;
    for (int i = 0; i < N; i++)
        if (tv[i] >= 0) wsum += tt_get(w, (int64_t)tv[i]);
    double worst = 0;
    for (int i = 0; i < N; i++) {
        double mx = -INFINITY, s = 0, others = 0;
        for (int c = 0; c < C; c++) mx = fmax(mx, tt_get(x, i * C + c));
        for (int c = 0; c < C; c++) {
            s += exp(tt_get(x, i * C + c) - mx);
            if (c != tv[i]) others += exp(tt_get(x, i * C + c) - mx);
        }
        for (int c = 0; c < C; c++) {
            double ref = 0;
            if (tv[i] >= 0) {
                /* p - 1 for the target is -(the other classes' share): no cancellation */
                double coef = 1.7 * tt_get(w, (int64_t)tv[i]) / wsum, p = exp(tt_get(x, i * C + c) - mx) / s;
                ref = c == tv[i] ? -coef * others / s : coef * p;
            }
            double got = tt_get(out[0], i * C + c);
            /* a few f32 roundings of each value */
            double err = fabs(got - ref) / fmax(fabs(ref), 1e-30);
            if (ref == 0) cr_assert_eq(got, 0.0, "row %d class %d should be 0", i, c);
            else worst = fmax(worst, err);
        }
    }
    cr_assert(worst < 4e-6, "largest relative error %g", worst);
    amp_tensor_destroy(out[0]);
    tn_free(n);
    amp_tensor *all[4] = {dy, x, t, w};
    free_in(all, 4);
}

Test(grad_nn, loss_grads_16bit) {
    const int64_t xd[3] = {8, 10, 6}, td[2] = {8, 6}, wd[1] = {10}, sd[1] = {0};
    double tv[48];
    for (int i = 0; i < 48; i++) tv[i] = i % 11 == 10 ? -1 : (i * 7) % 10;
    for (int r = 0; r < 3; r++) {
        const char *red = r == 0 ? "none" : r == 1 ? "sum" : "mean";
        amp_tensor *dy = r == 0 ? rnd(2, td, -1, 1) : rnd(0, sd, 0.5, 1.5);
        amp_tensor *in[5] = {dy, rnd(3, xd, -3, 3), ints(2, td, tv), rnd(1, wd, 0.5, 2), rnd(3, xd, -1, 1)};
        amp_test_node *t = tn_train(ctx, "NegativeLogLikelihoodLossGrad");
        tn_str(t, "reduction", red);
        tn_int(t, "ignore_index", -1);
        cmp_narrow(t, 4, in, (const bool[]){true, true, false, true}, 1, "NegativeLogLikelihoodLossGrad");
        tn_free(t);
        t = tn_train(ctx, "SoftmaxCrossEntropyLossGrad");
        tn_str(t, "reduction", red);
        tn_int(t, "ignore_index", -1);
        cmp_narrow(t, 5, in, (const bool[]){true, true, false, true, true}, 1, "SoftmaxCrossEntropyLossGrad");
        cmp_narrow(t, 3, in, (const bool[]){true, true, false}, 1, "SoftmaxCrossEntropyLossGrad without weights");
        tn_free(t);
        free_in(in, 5);
    }
}

/* ---- zero-size dims ------------------------------------------------------------------------------- */

Test(grad_nn, zero_size_dims) {
    {
        const int64_t xd[2] = {0, 5};
        amp_tensor *in[1] = {rnd(2, xd, -1, 1)};
        amp_test_node *t = tn_new(ctx, "Softmax");
        gc_ok(t, 1, in, NULL, 1, "Softmax with no rows");
        tn_free(t);
        free_in(in, 1);
    }
    {
        const int64_t xd[2] = {0, 4}, td[1] = {0};
        amp_tensor *in[2] = {rnd(2, xd, -1, 1), ints(1, td, NULL)};
        amp_test_node *t = tn_new(ctx, "SoftmaxCrossEntropyLoss");
        tn_str(t, "reduction", "sum");
        gc_ok(t, 2, in, (const bool[]){true, false}, 1, "SoftmaxCrossEntropyLoss N=0");
        tn_free(t);
        free_in(in, 2);
    }
}

/* ---- bad input -------------------------------------------------------------------------------------- */

Test(grad_nn, bad_attributes_and_shapes_fail_cleanly) {
    const int64_t yd[2] = {3, 5};
    amp_tensor *dy = rnd(2, yd, -1, 1);
    amp_tensor *out[3] = {0};

    amp_test_node *t = tn_train(ctx, "SoftmaxGrad");
    tn_int(t, "axis", 2);
    cr_assert_eq(tn_run(t, 2, (amp_tensor *[]){dy, dy}, 1, out), AMP_ERR_INVALID_GRAPH);
    tn_free(t);

    /* a target out of range is found by the kernel: an error, no write past the end */
    const int64_t td[1] = {3}, sd[1] = {0};
    amp_tensor *tg = ints(1, td, (const double[]){0, 9, 1}), *g = rnd(0, sd, 1, 2);
    t = tn_train(ctx, "SoftmaxCrossEntropyLossGrad");
    cr_assert_eq(tn_run(t, 3, (amp_tensor *[]){g, dy, tg}, 1, out), AMP_ERR_INVALID_ARG);
    cr_assert(strstr(amp_context_last_error(ctx), "outside") != NULL, "message: %s", amp_context_last_error(ctx));
    tn_free(t);
    t = tn_train(ctx, "NegativeLogLikelihoodLossGrad");
    tn_str(t, "reduction", "average");
    cr_assert_eq(tn_run(t, 3, (amp_tensor *[]){g, dy, tg}, 1, out), AMP_ERR_INVALID_GRAPH);
    tn_free(t);

    for (int i = 0; i < 3; i++) cr_assert_null(out[i]);
    amp_tensor *all[3] = {dy, tg, g};
    free_in(all, 3);
}

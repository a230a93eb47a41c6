/* Gradients of the nn family (ir/ops/nn_grad.c, backends/cpu/nn_grad.c): Softmax/LogSoftmax, the classification losses, the reductions and CumSum.
 *
 * Every case is a finite-difference check (tests/gradcheck.h) in f64 with eps 1e-6 and random
 * inputs kept away from kinks; the analytic gradient must agree within a relative L2 error of
 * 1e-5. Each training-domain kernel also runs in f16, bf16 and f32 against its own f64 result
 * on the same (rounded) inputs, within a relative L2 error of 1e-2 (1e-5 for f32). Conventions
 * finite differences cannot see (ties of ReduceMax/Min) are checked against values worked out
 * here by hand. */
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

/* Uniform in [lo, hi) with a random sign: |x| stays away from 0 (kinks of L1, poles of x^-1). */
static amp_tensor *rnd_signed(int rank, const int64_t *dims, double lo, double hi) {
    amp_tensor *t = rnd(rank, dims, lo, hi);
    amp_tensor *s = rnd(rank, dims, -1, 1);
    for (int64_t i = 0; i < t->numel; i++)
        if (tt_get(s, i) < 0) amp_st(AMP_F64, t->data, i, -tt_get(t, i));
    amp_tensor_destroy(s);
    return t;
}

static amp_tensor *ints(int rank, const int64_t *dims, const double *v) { return tt_make(ctx, AMP_I64, rank, dims, v); }

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

/* ---- reductions ------------------------------------------------------------------------------------ */

static const char *reduce_ops[] = {"ReduceSum",    "ReduceMean",   "ReduceSumSquare", "ReduceL1",  "ReduceL2",
                                   "ReduceLogSum", "ReduceLogSumExp", "ReduceMax",     "ReduceMin", "ReduceProd"};
#define N_REDUCE 10

/* inputs away from each op's kinks: L1 away from 0, LogSum with a positive sum, Prod moderate */
static amp_tensor *reduce_input(const char *op, int rank, const int64_t *dims) {
    if (strcmp(op, "ReduceLogSum") == 0 || strcmp(op, "ReduceProd") == 0) return rnd(rank, dims, 0.5, 1.5);
    return rnd_signed(rank, dims, 0.2, 2);
}

typedef struct red_case {
    int64_t opset;
    int naxes;           /* -1: no axes at all */
    int64_t axes[3];
    int keepdims;        /* -1: default */
    int noop;
    bool as_input;       /* axes given as an input (opset >= 13 for ReduceSum, 18 for the rest) */
} red_case;

static void reduce_run(const char *op, const red_case *rc, const char *what) {
    const int64_t xd[3] = {3, 4, 5};
    amp_tensor *in[2] = {reduce_input(op, 3, xd), NULL};
    amp_test_node *t = tn_new(ctx, op);
    t->opset = rc->opset;
    if (rc->keepdims >= 0) tn_int(t, "keepdims", rc->keepdims);
    if (rc->noop) tn_int(t, "noop_with_empty_axes", 1);
    int nin = 1;
    if (rc->as_input) {
        if (rc->naxes >= 0) {
            double v[3];
            for (int i = 0; i < rc->naxes; i++) v[i] = (double)rc->axes[i];
            int64_t ad[1] = {rc->naxes};
            in[1] = ints(1, ad, v);
            nin = 2;
        }
    } else if (rc->naxes >= 0) {
        tn_ints(t, "axes", rc->naxes, rc->axes);
    }
    gc_ok(t, nin, in, (const bool[]){true, false}, 1, what);
    tn_free(t);
    free_in(in, 2);
}

Test(grad_nn, reductions_every_axes_form) {
    for (int o = 0; o < N_REDUCE; o++) {
        const char *op = reduce_ops[o];
        const bool sum = strcmp(op, "ReduceSum") == 0;
        const int64_t attr_opset = sum ? 11 : 13, in_opset = 13;
        /* axes as an input: ReduceSum from opset 13; the others take it from 18, where the
         * loss's Mul of the finite-difference harness is not in the op table, so they are
         * checked against the attribute form in reduce_axes_input_matches_attribute */
        const size_t ncases = sum ? 10 : 4;
        const red_case cases[] = {
            {attr_opset, 1, {1}, -1, 0, false},      /* one axis, keepdims */
            {attr_opset, 2, {0, 2}, 0, 0, false},    /* two axes, dropped */
            {attr_opset, 1, {-1}, 0, 0, false},      /* negative axis */
            {attr_opset, -1, {0}, 0, 0, false},      /* every axis */
            {in_opset, 1, {-2}, 1, 0, true},         /* axes input */
            {in_opset, 2, {2, 0}, 0, 0, true},       /* axes input, unordered */
            {in_opset, -1, {0}, 0, 0, true},         /* no axes input: every axis */
            {in_opset, 0, {0}, 1, 0, true},          /* empty axes: every axis */
            {in_opset, 0, {0}, 1, 1, true},          /* empty axes with noop: identity */
            {in_opset, 3, {0, 1, 2}, 1, 0, true},    /* every axis named */
        };
        for (size_t i = 0; i < ncases; i++) {
            char what[96];
            snprintf(what, sizeof what, "%s case %zu", op, i);
            reduce_run(op, &cases[i], what);
        }
    }
}

/* From opset 18 every reduction reads its axes from an input: the gradient must be the one
 * the attribute form gives (checked by finite differences above), and empty axes with
 * noop_with_empty_axes pass dY through unchanged. */
Test(grad_nn, reduce_axes_input_matches_attribute) {
    const int64_t xd[3] = {3, 4, 5};
    const struct {
        int naxes;
        int64_t axes[3];
        int keepdims;
    } forms[] = {{1, {1}, 1}, {2, {2, 0}, 0}, {1, {-1}, 0}, {3, {0, 1, 2}, 1}, {-1, {0}, 0}, {0, {0}, 1}};
    for (int o = 0; o < N_REDUCE; o++)
        for (size_t f = 0; f < sizeof forms / sizeof forms[0]; f++) {
            amp_tensor *x = reduce_input(reduce_ops[o], 3, xd), *y[1];
            amp_test_node *fw = tn_new(ctx, reduce_ops[o]);
            fw->opset = 11;
            if (forms[f].naxes > 0) tn_ints(fw, "axes", forms[f].naxes, forms[f].axes);
            tn_int(fw, "keepdims", forms[f].keepdims);
            cr_assert_eq(tn_run(fw, 1, &x, 1, y), AMP_OK);
            amp_tensor *dy = rnd(y[0]->rank, y[0]->dims, -1, 1), *g13[1], *g18[1];
            amp_test_node *a = tn_train(ctx, "ReduceGrad"), *b = tn_train(ctx, "ReduceGrad");
            tn_str(a, "fwd_op", reduce_ops[o]);
            tn_int(a, "fwd_opset", 11);
            if (forms[f].naxes > 0) tn_ints(a, "axes", forms[f].naxes, forms[f].axes);
            tn_int(a, "keepdims", forms[f].keepdims);
            tn_str(b, "fwd_op", reduce_ops[o]);
            tn_int(b, "fwd_opset", 18);
            tn_int(b, "keepdims", forms[f].keepdims);
            amp_tensor *ax = NULL;
            if (forms[f].naxes >= 0) {
                double v[3];
                for (int i = 0; i < forms[f].naxes; i++) v[i] = (double)forms[f].axes[i];
                ax = ints(1, (int64_t[]){forms[f].naxes}, v);
            }
            cr_assert_eq(tn_run(a, 2, (amp_tensor *[]){dy, x}, 1, g13), AMP_OK, "%s", amp_context_last_error(ctx));
            cr_assert_eq(tn_run(b, ax ? 3 : 2, (amp_tensor *[]){dy, x, ax}, 1, g18), AMP_OK, "%s",
                         amp_context_last_error(ctx));
            cr_assert(tt_equal(g13[0], g18[0]), "%s form %zu: opset 18 differs", reduce_ops[o], f);
            amp_tensor_destroy(g18[0]);
            /* noop_with_empty_axes: dY itself */
            if (forms[f].naxes == 0) {
                amp_tensor *dyx = rnd(3, xd, -1, 1);
                tn_int(b, "noop_with_empty_axes", 1);
                cr_assert_eq(tn_run(b, 3, (amp_tensor *[]){dyx, x, ax}, 1, g18), AMP_OK);
                cr_assert(tt_equal(g18[0], dyx), "%s: noop does not pass dY through", reduce_ops[o]);
                amp_tensor_destroy(g18[0]);
                amp_tensor_destroy(dyx);
            }
            tn_free(a);
            tn_free(b);
            tn_free(fw);
            amp_tensor *all[5] = {x, y[0], dy, g13[0], ax};
            free_in(all, 5);
        }
}

Test(grad_nn, reduce_prod_with_zeros) {
    /* the product is a polynomial: smooth through zeros, so finite differences see it exactly */
    const int64_t xd[2] = {3, 4};
    const double v[12] = {0.5, 0.0, 1.5, 0.7, 0.0, 1.2, 0.0, 0.9, 1.1, 0.8, 1.3, 0.6};
    amp_tensor *in[1] = {tt_make(ctx, AMP_F64, 2, xd, v)};
    for (int axis = 0; axis < 2; axis++) {
        amp_test_node *t = tn_new(ctx, "ReduceProd");
        t->opset = 13;
        tn_ints(t, "axes", 1, (int64_t[]){axis});
        gc_ok(t, 1, in, NULL, 1, axis ? "ReduceProd zeros along rows" : "ReduceProd zeros along columns");
        tn_free(t);
    }
    free_in(in, 1);
}

/* Ties share the gradient evenly, as PyTorch's amax/amin: worked out by hand. */
Test(grad_nn, reduce_max_min_ties_split_evenly) {
    const int64_t xd[2] = {2, 4}, yd[1] = {2};
    const double x[8] = {1, 3, 3, 2, -1, -1, -1, 5};
    const double g[2] = {0.6, 0.9};
    const double want_max[8] = {0, 0.3, 0.3, 0, 0, 0, 0, 0.9};
    const double want_min[8] = {0.6, 0, 0, 0, 0.3, 0.3, 0.3, 0};
    for (int o = 0; o < 2; o++) {
        amp_tensor *in[2] = {tt_make(ctx, AMP_F64, 1, yd, g), tt_make(ctx, AMP_F64, 2, xd, x)}, *out[1];
        amp_test_node *t = tn_train(ctx, "ReduceGrad");
        tn_str(t, "fwd_op", o ? "ReduceMin" : "ReduceMax");
        tn_int(t, "fwd_opset", 13);
        tn_ints(t, "axes", 1, (int64_t[]){1});
        tn_int(t, "keepdims", 0);
        cr_assert_eq(tn_run(t, 2, in, 1, out), AMP_OK, "%s", amp_context_last_error(ctx));
        for (int i = 0; i < 8; i++) {
            double want = (o ? want_min : want_max)[i];
            cr_assert(fabs(tt_get(out[0], i) - want) <= 1e-15 * fabs(want) + 1e-300, "%s element %d: %g, want %g",
                      o ? "min" : "max", i, tt_get(out[0], i), want);
        }
        amp_tensor_destroy(out[0]);
        tn_free(t);
        free_in(in, 2);
    }
}

Test(grad_nn, reduce_grad_16bit) {
    const int64_t xd[3] = {7, 9, 40}, yd[2] = {7, 40};
    for (int o = 0; o < N_REDUCE; o++) {
        amp_tensor *in[2] = {rnd(2, yd, -1, 1), reduce_input(reduce_ops[o], 3, xd)};
        /* keep ReduceProd's 9-factor products and their 16-bit rounding tame */
        amp_test_node *t = tn_train(ctx, "ReduceGrad");
        tn_str(t, "fwd_op", reduce_ops[o]);
        tn_int(t, "fwd_opset", 11);
        tn_ints(t, "axes", 1, (int64_t[]){1});
        tn_int(t, "keepdims", 0);
        cmp_narrow(t, 2, in, (const bool[]){true, true}, 1, reduce_ops[o]);
        tn_free(t);
        free_in(in, 2);
    }
}

/* ---- CumSum ------------------------------------------------------------------------------------------ */

Test(grad_nn, cumsum_exclusive_reverse) {
    const int64_t xd[3] = {3, 4, 2}, ad[1] = {1};
    const double axes[3] = {1, -1, 0};
    for (int e = 0; e < 2; e++)
        for (int r = 0; r < 2; r++)
            for (int a = 0; a < 3; a++) {
                amp_tensor *in[2] = {rnd(3, xd, -1, 1), ints(a == 2 ? 0 : 1, ad, &axes[a])};
                amp_test_node *t = tn_new(ctx, "CumSum");
                tn_int(t, "exclusive", e);
                tn_int(t, "reverse", r);
                char what[64];
                snprintf(what, sizeof what, "CumSum exclusive=%d reverse=%d axis#%d", e, r, a);
                gc_ok(t, 2, in, (const bool[]){true, false}, 1, what);
                tn_free(t);
                free_in(in, 2);
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
    {
        const int64_t xd[2] = {0, 3};
        const char *ops[2] = {"ReduceSum", "ReduceMean"};
        for (int o = 0; o < 2; o++) {
            amp_tensor *in[1] = {rnd(2, xd, -1, 1)};
            amp_test_node *t = tn_new(ctx, ops[o]);
            t->opset = 11;
            tn_ints(t, "axes", 1, (int64_t[]){0});
            tn_int(t, "keepdims", 0);
            gc_ok(t, 1, in, NULL, 1, ops[o]);
            tn_free(t);
            free_in(in, 1);
        }
    }
}

/* ---- bad input -------------------------------------------------------------------------------------- */

Test(grad_nn, bad_attributes_and_shapes_fail_cleanly) {
    const int64_t yd[2] = {3, 5};
    amp_tensor *dy = rnd(2, yd, -1, 1);
    amp_tensor *out[3] = {0};

    amp_test_node *t = tn_train(ctx, "ReduceGrad");
    tn_str(t, "fwd_op", "ReduceEverything");
    cr_assert_eq(tn_run(t, 2, (amp_tensor *[]){dy, dy}, 1, out), AMP_ERR_INVALID_GRAPH);
    tn_free(t);

    t = tn_train(ctx, "ReduceGrad");
    tn_str(t, "fwd_op", "ReduceSum");
    tn_int(t, "fwd_opset", 11);
    tn_ints(t, "axes", 1, (int64_t[]){4});
    cr_assert_eq(tn_run(t, 2, (amp_tensor *[]){dy, dy}, 1, out), AMP_ERR_INVALID_GRAPH);
    tn_free(t);

    t = tn_train(ctx, "SoftmaxGrad");
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

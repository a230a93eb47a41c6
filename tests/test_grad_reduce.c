/* Gradients of the reduce family (ir/ops/reduce_grad.c, backends/cpu/reduce_grad.c): every
 * reduction, in every axes form, and CumSum.
 *
 * Every case is a finite-difference check (tests/gradcheck.h) in f64 with eps 1e-6 and random
 * inputs kept away from kinks; the analytic gradient must agree within a relative L2 error of
 * 1e-5. ReduceGrad also runs in f16, bf16 and f32 against its own f64 result on the same
 * (rounded) inputs. Conventions finite differences cannot see (ties of ReduceMax/Min) are checked
 * against values worked out here by hand. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/elem.h"
#include "gradcheck.h"
#include "ir/grad.h"
#include "testutil.h"

static amp_context *ctx;
static void setup(void) { cr_assert_eq(amp_context_create(NULL, &ctx), AMP_OK); }
static void teardown(void) { amp_context_destroy(ctx); }
TestSuite(grad_reduce, .init = setup, .fini = teardown);

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

Test(grad_reduce, reductions_every_axes_form) {
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
Test(grad_reduce, reduce_axes_input_matches_attribute) {
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

Test(grad_reduce, reduce_prod_with_zeros) {
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
Test(grad_reduce, reduce_max_min_ties_split_evenly) {
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

Test(grad_reduce, reduce_grad_16bit) {
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

Test(grad_reduce, cumsum_exclusive_reverse) {
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

/* ---- zero-size dims --------------------------------------------------------------------------- */

Test(grad_reduce, zero_size_dims) {
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

/* ---- bad input -------------------------------------------------------------------------------- */

Test(grad_reduce, bad_attributes_fail_cleanly) {
    const int64_t yd[2] = {3, 5};
    amp_tensor *dy = rnd(2, yd, -1, 1);
    amp_tensor *out[1] = {0};

    amp_test_node *t = tn_train(ctx, "ReduceGrad");
    tn_str(t, "fwd_op", "ReduceEverything");
    cr_assert_eq(tn_run(t, 2, (amp_tensor *[]){dy, dy}, 1, out), AMP_ERR_INVALID_GRAPH);
    cr_assert(strstr(amp_context_last_error(ctx), "ReduceEverything") != NULL, "message: %s",
              amp_context_last_error(ctx));
    tn_free(t);

    t = tn_train(ctx, "ReduceGrad");
    tn_str(t, "fwd_op", "ReduceSum");
    tn_int(t, "fwd_opset", 11);
    tn_ints(t, "axes", 1, (int64_t[]){4});
    cr_assert_eq(tn_run(t, 2, (amp_tensor *[]){dy, dy}, 1, out), AMP_ERR_INVALID_GRAPH);
    tn_free(t);

    cr_assert_null(out[0]);
    free_in(&dy, 1);
}

/* The softmax family and the classification losses against reference loops
 * written here in double. 16-bit inputs are rounded on creation and the references read those
 * rounded values, so the only error left is the kernel's own arithmetic and the output store. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

static amp_context *ctx;
static void setup(void) { cr_assert_eq(amp_context_create(NULL, &ctx), AMP_OK); }
static void teardown(void) { amp_context_destroy(ctx); }
TestSuite(nn, .init = setup, .fini = teardown);

#include "nn_testutil.h"

/* =========================================================================================== */
/* Softmax, LogSoftmax, Hardmax                                                                */

enum { SM, LSM, HM };
static const char *SM_NAMES[] = {"Softmax", "LogSoftmax", "Hardmax"};

/* opset >= 13: along one axis, visiting each element's line through its multi-index */
static void ref_softmax_axis(int kind, const double *x, int rank, const int64_t *dims, int axis, double *y) {
    int64_t n = numel_of(rank, dims), stride = 1;
    for (int d = rank - 1; d > axis; d--) stride *= dims[d];
    for (int64_t e = 0; e < n; e++) {
        int64_t pos = (e / stride) % dims[axis];
        int64_t first = e - pos * stride;
        double mx = -INFINITY, sum = 0;
        int64_t arg = -1;
        for (int64_t j = 0; j < dims[axis]; j++) {
            double v = x[first + j * stride];
            if (arg < 0 || v > mx) {
                mx = v;
                arg = j;
            }
        }
        for (int64_t j = 0; j < dims[axis]; j++) sum += exp(x[first + j * stride] - mx);
        if (kind == SM) y[e] = exp(x[e] - mx) / sum;
        else if (kind == LSM) y[e] = x[e] - mx - log(sum);
        else y[e] = pos == arg ? 1 : 0;
    }
}

/* opset < 13: coerced to 2-D [prod(dims[:axis]), prod(dims[axis:])] */
static void ref_softmax_2d(int kind, const double *x, int rank, const int64_t *dims, int axis, double *y) {
    int64_t rows = 1, n = numel_of(rank, dims);
    for (int d = 0; d < axis; d++) rows *= dims[d];
    int64_t cols = rows ? n / rows : 0;
    for (int64_t r = 0; r < rows; r++) {
        const double *xr = x + r * cols;
        double mx = xr[0], sum = 0;
        int64_t arg = 0;
        for (int64_t j = 1; j < cols; j++)
            if (xr[j] > mx) mx = xr[j], arg = j;
        for (int64_t j = 0; j < cols; j++) sum += exp(xr[j] - mx);
        for (int64_t j = 0; j < cols; j++)
            y[r * cols + j] = kind == SM ? exp(xr[j] - mx) / sum : kind == LSM ? xr[j] - mx - log(sum) : j == arg;
    }
}

static amp_status run1(const char *op, int64_t opset, const int64_t *axis, amp_tensor *x, amp_tensor **y) {
    amp_test_node *t = tn_new(ctx, op);
    t->opset = opset;
    if (axis) tn_int(t, "axis", *axis);
    amp_status s = tn_run(t, 1, &x, 1, y);
    tn_free(t);
    return s;
}

Test(nn, softmax_family_every_axis_and_dtype) {
    const int64_t dims[4] = {3, 5, 7, 2};
    for (int kind = SM; kind <= HM; kind++)
        for (int di = 0; di < N_FLOATS; di++) {
            amp_dtype dt = FLOATS[di];
            amp_tensor *x = tt_rand(ctx, dt, 4, dims, -6, 6, 11 + (uint64_t)di);
            double *xv = vals(x), *ref = malloc(sizeof(double) * 210);
            for (int64_t axis = -4; axis < 4; axis++) {
                amp_tensor *y = NULL;
                cr_assert_eq(run1(SM_NAMES[kind], 13, &axis, x, &y), AMP_OK, "%s", amp_context_last_error(ctx));
                ref_softmax_axis(kind, xv, 4, dims, (int)(axis < 0 ? axis + 4 : axis), ref);
                if (kind == HM) {
                    for (int64_t i = 0; i < 210; i++)
                        cr_assert_eq(tt_get(y, i), ref[i], "hardmax axis %lld", (long long)axis);
                } else {
                    expect_close(y, dt, 4, dims, ref, SM_NAMES[kind]);
                }
                amp_tensor_destroy(y);
            }
            /* default axis is -1 from opset 13 */
            amp_tensor *y = NULL;
            cr_assert_eq(run1(SM_NAMES[kind], 13, NULL, x, &y), AMP_OK);
            ref_softmax_axis(kind, xv, 4, dims, 3, ref);
            expect_close(y, dt, 4, dims, ref, "default axis");
            amp_tensor_destroy(y);
            amp_tensor_destroy(x);
            free(xv);
            free(ref);
        }
}

Test(nn, softmax_family_opset11_coerces_to_2d) {
    const int64_t dims[3] = {3, 4, 5};
    double ref[60];
    for (int kind = SM; kind <= HM; kind++)
        for (int di = 0; di < N_FLOATS; di++) {
            amp_tensor *x = tt_rand(ctx, FLOATS[di], 3, dims, -4, 4, 7);
            double *xv = vals(x);
            const int64_t axes[] = {0, 1, 2, 3, -1, -3};
            for (int ai = 0; ai < 6; ai++) {
                amp_tensor *y = NULL;
                cr_assert_eq(run1(SM_NAMES[kind], 11, &axes[ai], x, &y), AMP_OK, "%s", amp_context_last_error(ctx));
                int64_t a = axes[ai] < 0 ? axes[ai] + 3 : axes[ai];
                ref_softmax_2d(kind, xv, 3, dims, (int)a, ref);
                expect_close(y, FLOATS[di], 3, dims, ref, "opset 11");
                amp_tensor_destroy(y);
            }
            /* default axis is 1 before opset 13 */
            amp_tensor *y = NULL;
            cr_assert_eq(run1(SM_NAMES[kind], 1, NULL, x, &y), AMP_OK);
            ref_softmax_2d(kind, xv, 3, dims, 1, ref);
            expect_close(y, FLOATS[di], 3, dims, ref, "opset 1 default axis");
            amp_tensor_destroy(y);
            amp_tensor_destroy(x);
            free(xv);
        }
}

Test(nn, hardmax_first_maximum_wins) {
    const int64_t dims[2] = {3, 4};
    const double xv[12] = {1, 3, 3, 2, /**/ -1, -1, -1, -1, /**/ 0.5, 2, 0.25, 2};
    const double want[12] = {0, 1, 0, 0, /**/ 1, 0, 0, 0, /**/ 0, 1, 0, 0};
    for (int di = 0; di < N_FLOATS; di++) {
        amp_tensor *x = tt_make(ctx, FLOATS[di], 2, dims, xv), *y = NULL, *w = tt_make(ctx, FLOATS[di], 2, dims, want);
        cr_assert_eq(run1("Hardmax", 13, NULL, x, &y), AMP_OK);
        cr_assert(tt_equal(y, w), "%s", amp_dtype_name(FLOATS[di]));
        amp_tensor_destroy(x);
        amp_tensor_destroy(y);
        amp_tensor_destroy(w);
    }
}

Test(nn, softmax_masked_rows_stay_finite) {
    /* row 0: partly masked with -1e9; row 1: masked entirely with -1e9 (uniform);
     * row 2: large logits that overflow exp without the max shift */
    const int64_t dims[2] = {3, 5};
    const double xv[15] = {0.5, -1e9, 2, -1e9, -1e9, /**/ -1e9, -1e9, -1e9, -1e9, -1e9,
                           /**/ 1000, 1001, 1002, 999, 1000.5};
    double ref[15];
    ref_softmax_axis(SM, xv, 2, dims, 1, ref);
    for (int di = 0; di < N_FLOATS; di++) {
        amp_dtype dt = FLOATS[di];
        double xs[15];
        for (int i = 0; i < 15; i++) xs[i] = xv[i];
        if (dt == AMP_F16) /* -1e9 is -inf in f16: mask with the most negative finite value */
            for (int i = 0; i < 10; i++) xs[i] = xs[i] == -1e9 ? -65504.0 : xs[i];
        amp_tensor *x = tt_make(ctx, dt, 2, dims, xs), *y = NULL;
        double *xr = vals(x);
        ref_softmax_axis(SM, xr, 2, dims, 1, ref);
        cr_assert_eq(run1("Softmax", 13, NULL, x, &y), AMP_OK);
        for (int i = 0; i < 15; i++) cr_assert(isfinite(tt_get(y, i)), "%s element %d", amp_dtype_name(dt), i);
        for (int i = 5; i < 10; i++) cr_assert_float_eq(tt_get(y, i), 0.2, 1e-3);
        expect_close(y, dt, 2, dims, ref, "masked softmax");
        amp_tensor_destroy(y);
        cr_assert_eq(run1("LogSoftmax", 13, NULL, x, &y), AMP_OK);
        for (int i = 0; i < 15; i++) cr_assert(!isnan(tt_get(y, i)), "log %s element %d", amp_dtype_name(dt), i);
        amp_tensor_destroy(y);
        amp_tensor_destroy(x);
        free(xr);
    }
}

Test(nn, softmax_all_neg_inf_row_is_nan_like_reference) {
    /* the ONNX reference computes exp(x - max) with max = -inf: NaN for that row only */
    const int64_t dims[2] = {2, 3};
    const double xv[6] = {-INFINITY, -INFINITY, -INFINITY, 1, -INFINITY, 2};
    amp_tensor *x = tt_make(ctx, AMP_F32, 2, dims, xv), *y = NULL;
    cr_assert_eq(run1("Softmax", 13, NULL, x, &y), AMP_OK);
    for (int i = 0; i < 3; i++) cr_assert(isnan(tt_get(y, i)));
    cr_assert_eq(tt_get(y, 4), 0.0);
    cr_assert_float_eq(tt_get(y, 3) + tt_get(y, 5), 1.0, 1e-6);
    amp_tensor_destroy(y);
    amp_tensor_destroy(x);
}

Test(nn, softmax_odd_ranks_and_empty_dims) {
    /* rank 1, rank 8 and zero-sized dims */
    const int64_t d1[1] = {13};
    const int64_t d8[8] = {2, 1, 3, 1, 2, 3, 1, 2};
    const int64_t dz[3] = {3, 0, 4};
    amp_tensor *x = tt_rand(ctx, AMP_F32, 1, d1, -3, 3, 5), *y = NULL;
    double *xv = vals(x), ref[72];
    cr_assert_eq(run1("Softmax", 13, NULL, x, &y), AMP_OK);
    ref_softmax_axis(SM, xv, 1, d1, 0, ref);
    expect_close(y, AMP_F32, 1, d1, ref, "rank 1");
    amp_tensor_destroy(y);
    amp_tensor_destroy(x);
    free(xv);

    x = tt_rand(ctx, AMP_F32, 8, d8, -3, 3, 6);
    xv = vals(x);
    for (int64_t axis = 0; axis < 8; axis++) {
        cr_assert_eq(run1("LogSoftmax", 13, &axis, x, &y), AMP_OK);
        ref_softmax_axis(LSM, xv, 8, d8, (int)axis, ref);
        expect_close(y, AMP_F32, 8, d8, ref, "rank 8");
        amp_tensor_destroy(y);
    }
    amp_tensor_destroy(x);
    free(xv);

    x = tt_make(ctx, AMP_F32, 3, dz, NULL);
    for (int64_t axis = 0; axis < 3; axis++) {
        cr_assert_eq(run1("Softmax", 13, &axis, x, &y), AMP_OK);
        cr_assert_eq(amp_tensor_numel(y), 0);
        amp_tensor_destroy(y);
    }
    amp_tensor_destroy(x);
}

Test(nn, softmax_bad_inputs) {
    const int64_t dims[2] = {2, 3};
    amp_tensor *x = tt_rand(ctx, AMP_I32, 2, dims, -3, 3, 1), *y = NULL;
    cr_assert_eq(run1("Softmax", 13, NULL, x, &y), AMP_ERR_UNSUPPORTED);
    amp_tensor_destroy(x);
    x = tt_rand(ctx, AMP_F32, 2, dims, -3, 3, 1);
    int64_t axis = 2;
    cr_assert_eq(run1("Softmax", 13, &axis, x, &y), AMP_ERR_INVALID_GRAPH);
    axis = -3;
    cr_assert_eq(run1("LogSoftmax", 13, &axis, x, &y), AMP_ERR_INVALID_GRAPH);
    axis = 3;
    cr_assert_eq(run1("Hardmax", 11, &axis, x, &y), AMP_ERR_INVALID_GRAPH);
    cr_assert_null(y);
    amp_tensor_destroy(x);
    x = tt_make(ctx, AMP_F32, 0, NULL, (const double[]){1.5});
    cr_assert_eq(run1("Softmax", 13, NULL, x, &y), AMP_ERR_INVALID_GRAPH);
    amp_tensor_destroy(x);
}

/* =========================================================================================== */
/* NegativeLogLikelihoodLoss, SoftmaxCrossEntropyLoss                                          */

typedef struct loss_case {
    int rank;
    const int64_t *dims; /* input N x C x d1 ... */
    const char *reduction; /* NULL: default (mean) */
    int weighted;
    int has_ii;
    int64_t ii;
    amp_dtype tdt;
} loss_case;

/* Reference of both losses. sce: x holds scores; logp receives the log-softmax over C. */
static void ref_loss(const loss_case *c, int sce, const double *x, const int64_t *tg, const double *w, double *out,
                     double *logp) {
    int64_t n = c->dims[0], ch = c->dims[1], d = numel_of(c->rank - 2, c->dims + 2);
    double total = 0, wsum = 0;
    for (int64_t i = 0; i < n; i++)
        for (int64_t k = 0; k < d; k++) {
            double lse = 0;
            if (sce) {
                double mx = -INFINITY, s = 0;
                for (int64_t cc = 0; cc < ch; cc++) mx = fmax(mx, x[(i * ch + cc) * d + k]);
                for (int64_t cc = 0; cc < ch; cc++) s += exp(x[(i * ch + cc) * d + k] - mx);
                lse = mx + log(s);
                for (int64_t cc = 0; cc < ch; cc++) logp[(i * ch + cc) * d + k] = x[(i * ch + cc) * d + k] - lse;
            }
            int64_t t = tg[i * d + k];
            double l = 0, wt = 0;
            if (!(c->has_ii && t == c->ii)) {
                wt = c->weighted ? w[t] : 1;
                l = -(x[(i * ch + t) * d + k] - lse) * wt;
            }
            if (c->reduction && strcmp(c->reduction, "none") == 0) out[i * d + k] = l;
            total += l;
            wsum += wt;
        }
    if (!c->reduction || strcmp(c->reduction, "mean") == 0) out[0] = total / wsum;
    else if (strcmp(c->reduction, "sum") == 0) out[0] = total;
}

static void check_loss(const loss_case *c, int sce, amp_dtype dt, int want_logp) {
    int64_t n = c->dims[0], ch = c->dims[1];
    int64_t tdims[8];
    tdims[0] = n;
    for (int i = 2; i < c->rank; i++) tdims[i - 1] = c->dims[i];
    int64_t nt = numel_of(c->rank - 1, tdims), nx = numel_of(c->rank, c->dims);
    /* NLL takes log-probabilities: make them negative like real ones */
    amp_tensor *x = sce ? tt_rand(ctx, dt, c->rank, c->dims, -4, 4, 51)
                        : tt_rand(ctx, dt, c->rank, c->dims, -5, -0.01, 51);
    amp_tensor *t = tt_rand(ctx, c->tdt, c->rank - 1, tdims, 0, (double)ch, 52);
    amp_tensor *w = c->weighted ? param(dt, ch, 0.1, 2, 53) : NULL;
    /* plant the ignored index at some positions (every third one) */
    if (c->has_ii)
        for (int64_t i = 0; i < nt; i += 3) {
            if (c->tdt == AMP_I64) ((int64_t *)amp_tensor_data(t))[i] = c->ii;
            else ((int32_t *)amp_tensor_data(t))[i] = (int32_t)c->ii;
        }
    int64_t *tg = malloc(sizeof(int64_t) * (size_t)nt);
    for (int64_t i = 0; i < nt; i++) tg[i] = (int64_t)tt_get(t, i);
    double *xv = vals(x), *wv = w ? vals(w) : NULL;
    double *ref = malloc(sizeof(double) * (size_t)nt), *logp = malloc(sizeof(double) * (size_t)nx);
    ref_loss(c, sce, xv, tg, wv, ref, logp);

    amp_test_node *node = tn_new(ctx, sce ? "SoftmaxCrossEntropyLoss" : "NegativeLogLikelihoodLoss");
    node->opset = 13;
    if (c->reduction) tn_str(node, "reduction", c->reduction);
    if (c->has_ii) tn_int(node, "ignore_index", c->ii);
    amp_tensor *in[3] = {x, t, w}, *out[2] = {0};
    int nout = sce && want_logp ? 2 : 1;
    cr_assert_eq(tn_run(node, w ? 3 : 2, in, nout, out), AMP_OK, "%s", amp_context_last_error(ctx));
    int none = c->reduction && strcmp(c->reduction, "none") == 0;
    if (none) expect_close(out[0], dt, c->rank - 1, tdims, ref, "loss");
    else expect_close(out[0], dt, 0, NULL, ref, "reduced loss");
    if (nout == 2) expect_close(out[1], dt, c->rank, c->dims, logp, "log_prob");
    free_all(out, 2);
    tn_free(node);
    amp_tensor_destroy(x);
    amp_tensor_destroy(t);
    amp_tensor_destroy(w);
    free(tg);
    free(xv);
    free(wv);
    free(ref);
    free(logp);
}

static void loss_matrix(int sce) {
    const int64_t d2[2] = {7, 5}, d3[3] = {3, 4, 5}, d5[5] = {2, 3, 3, 1, 4};
    const struct {
        int rank;
        const int64_t *dims;
    } shapes[3] = {{2, d2}, {3, d3}, {5, d5}};
    const char *reds[4] = {NULL, "none", "sum", "mean"};
    for (int si = 0; si < 3; si++)
        for (int ri = 0; ri < 4; ri++)
            for (int weighted = 0; weighted < 2; weighted++)
                for (int iic = 0; iic < 3; iic++) {
                    /* ignore_index absent, inside [0, C), negative */
                    loss_case c = {shapes[si].rank, shapes[si].dims, reds[ri], weighted, iic > 0,
                                   iic == 1 ? 1 : -3, (si + ri) % 2 ? AMP_I32 : AMP_I64};
                    for (int di = 0; di < N_FLOATS; di++) check_loss(&c, sce, FLOATS[di], (di + ri) % 2);
                }
}

Test(nn, nll_loss_matrix) { loss_matrix(0); }
Test(nn, sce_loss_matrix) { loss_matrix(1); }

Test(nn, sce_loss_mean_weighted_ignore_by_hand) {
    /* N=2, C=3, equal scores so every log-prob is -log(3); target 1 ignored:
     * loss = w[2]*log3 / w[2] = log 3, not log3 * w[2] / (w[0..] sum) */
    const int64_t xd[2] = {2, 3}, td[1] = {2}, wd[1] = {3};
    amp_tensor *x = tt_make(ctx, AMP_F32, 2, xd, (const double[]){0.5, 0.5, 0.5, 0.5, 0.5, 0.5});
    amp_tensor *t = tt_make(ctx, AMP_I64, 1, td, (const double[]){1, 2});
    amp_tensor *w = tt_make(ctx, AMP_F32, 1, wd, (const double[]){1, 4, 0.25});
    amp_test_node *node = tn_new(ctx, "SoftmaxCrossEntropyLoss");
    tn_int(node, "ignore_index", 1);
    amp_tensor *out[2] = {0};
    cr_assert_eq(tn_run(node, 3, (amp_tensor *[]){x, t, w}, 2, out), AMP_OK);
    cr_assert_float_eq(tt_get(out[0], 0), log(3.0), 1e-6);
    for (int i = 0; i < 6; i++) cr_assert_float_eq(tt_get(out[1], i), -log(3.0), 1e-6);
    free_all(out, 2);
    tn_free(node);
    /* every target ignored: 0/0 as the ONNX reference */
    node = tn_new(ctx, "NegativeLogLikelihoodLoss");
    tn_int(node, "ignore_index", 1);
    amp_tensor *t1 = tt_make(ctx, AMP_I64, 1, td, (const double[]){1, 1});
    cr_assert_eq(tn_run(node, 2, (amp_tensor *[]){x, t1}, 1, out), AMP_OK);
    cr_assert(isnan(tt_get(out[0], 0)));
    free_all(out, 1);
    tn_free(node);
    amp_tensor_destroy(x);
    amp_tensor_destroy(t);
    amp_tensor_destroy(t1);
    amp_tensor_destroy(w);
}

Test(nn, sce_loss_large_scores_stable) {
    const int64_t xd[2] = {2, 4}, td[1] = {2};
    amp_tensor *x = tt_make(ctx, AMP_F32, 2, xd, (const double[]){1000, 1001, 1002, 1003, -1e4, -1e4 + 1, -1e4, -1e4});
    amp_tensor *t = tt_make(ctx, AMP_I32, 1, td, (const double[]){3, 1});
    amp_test_node *node = tn_new(ctx, "SoftmaxCrossEntropyLoss");
    tn_str(node, "reduction", "none");
    amp_tensor *out[1] = {0};
    cr_assert_eq(tn_run(node, 2, (amp_tensor *[]){x, t}, 1, out), AMP_OK);
    double l0 = log(1 + exp(-1) + exp(-2) + exp(-3)), l1 = log(1 + 3 * exp(-1));
    cr_assert_float_eq(tt_get(out[0], 0), l0, 1e-6);
    cr_assert_float_eq(tt_get(out[0], 1), l1, 1e-6);
    free_all(out, 1);
    tn_free(node);
    amp_tensor_destroy(x);
    amp_tensor_destroy(t);
}

Test(nn, loss_bad_inputs) {
    const int64_t xd[3] = {2, 3, 4}, td[2] = {2, 4}, tbad[2] = {2, 3}, w3[1] = {3}, w4[1] = {4};
    amp_tensor *x = tt_rand(ctx, AMP_F32, 3, xd, -2, -0.1, 1);
    amp_tensor *t = tt_rand(ctx, AMP_I64, 2, td, 0, 3, 2), *tb = tt_rand(ctx, AMP_I64, 2, tbad, 0, 3, 3);
    amp_tensor *tf = tt_rand(ctx, AMP_F32, 2, td, 0, 3, 4), *w = tt_rand(ctx, AMP_F32, 1, w4, 0.5, 1, 5);
    amp_tensor *wok = tt_rand(ctx, AMP_F32, 1, w3, 0.5, 1, 6), *xi = tt_rand(ctx, AMP_I32, 3, xd, -5, 0, 7);
    amp_tensor *tr = tt_rand(ctx, AMP_I64, 2, td, 0, 3, 8);
    ((int64_t *)amp_tensor_data(tr))[5] = 3; /* class 3 of 3 */
    amp_tensor *out[2] = {0};
    for (int sce = 0; sce < 2; sce++) {
        amp_test_node *n = tn_new(ctx, sce ? "SoftmaxCrossEntropyLoss" : "NegativeLogLikelihoodLoss");
        cr_assert_eq(tn_run(n, 2, (amp_tensor *[]){x, tb}, 1, out), AMP_ERR_SHAPE);
        cr_assert_eq(tn_run(n, 2, (amp_tensor *[]){x, tf}, 1, out), AMP_ERR_UNSUPPORTED);
        cr_assert_eq(tn_run(n, 2, (amp_tensor *[]){xi, t}, 1, out), AMP_ERR_UNSUPPORTED);
        cr_assert_eq(tn_run(n, 3, (amp_tensor *[]){x, t, w}, 1, out), AMP_ERR_SHAPE);
        cr_assert_eq(tn_run(n, 2, (amp_tensor *[]){x, tr}, 1, out), AMP_ERR_INVALID_ARG);
        cr_assert_eq(tn_run(n, 2, (amp_tensor *[]){t, t}, 1, out), AMP_ERR_UNSUPPORTED);
        cr_assert_eq(tn_run(n, 1, (amp_tensor *[]){x}, 1, out), AMP_ERR_INVALID_GRAPH);
        tn_free(n);
        n = tn_new(ctx, sce ? "SoftmaxCrossEntropyLoss" : "NegativeLogLikelihoodLoss");
        tn_str(n, "reduction", "avg");
        cr_assert_eq(tn_run(n, 3, (amp_tensor *[]){x, t, wok}, 1, out), AMP_ERR_INVALID_GRAPH);
        tn_free(n);
        /* ignore_index makes an out-of-range value legal */
        n = tn_new(ctx, sce ? "SoftmaxCrossEntropyLoss" : "NegativeLogLikelihoodLoss");
        tn_int(n, "ignore_index", 3);
        cr_assert_eq(tn_run(n, 3, (amp_tensor *[]){x, tr, wok}, 1, out), AMP_OK);
        cr_assert(isfinite(tt_get(out[0], 0)));
        free_all(out, 2);
        tn_free(n);
    }
    amp_tensor *extra[2] = {0};
    amp_test_node *n = tn_new(ctx, "NegativeLogLikelihoodLoss");
    cr_assert_eq(tn_run(n, 2, (amp_tensor *[]){x, t}, 2, extra), AMP_ERR_INVALID_GRAPH);
    tn_free(n);
    amp_tensor_destroy(x);
    amp_tensor_destroy(t);
    amp_tensor_destroy(tb);
    amp_tensor_destroy(tf);
    amp_tensor_destroy(w);
    amp_tensor_destroy(wok);
    amp_tensor_destroy(xi);
    amp_tensor_destroy(tr);
}

/* =========================================================================================== */
/* Sizes large enough for the kernels' OpenMP loops, with several threads                      */

Test(nn, large_inputs_take_the_parallel_paths) {
    const int64_t ds[2] = {67, 301};
    amp_tensor *x = tt_rand(ctx, AMP_F32, 2, ds, -8, 8, 61), *y = NULL;
    double *xv = vals(x), *ref = malloc(sizeof(double) * 67 * 301);
    for (int kind = SM; kind <= HM; kind++)
        for (int64_t axis = 0; axis < 2; axis++) {
            amp_test_node *t = tn_new(ctx, SM_NAMES[kind]);
            t->threads = 4;
            tn_int(t, "axis", axis);
            cr_assert_eq(tn_run(t, 1, &x, 1, &y), AMP_OK);
            ref_softmax_axis(kind, xv, 2, ds, (int)axis, ref);
            expect_close(y, AMP_F32, 2, ds, ref, "parallel softmax");
            amp_tensor_destroy(y);
            tn_free(t);
        }
    free(xv);
    free(ref);
    amp_tensor_destroy(x);

    /* the losses over 9 x 11 x 13 x 17 */
    const int64_t dl[4] = {9, 11, 13, 17};
    loss_case lc = {4, dl, "mean", 1, 1, 2, AMP_I64};
    check_loss(&lc, 0, AMP_F32, 0);
    check_loss(&lc, 1, AMP_F32, 1);
    lc.reduction = "none";
    check_loss(&lc, 1, AMP_F32, 1);
}

Test(nn, zero_sized_inputs_run_cleanly) {
    const int64_t dx[3] = {0, 3, 4}, dt[2] = {0, 4};
    amp_tensor *x = tt_make(ctx, AMP_F32, 3, dx, NULL);
    amp_tensor *t = tt_make(ctx, AMP_I64, 2, dt, NULL), *out[3] = {0};
    amp_test_node *n = tn_new(ctx, "SoftmaxCrossEntropyLoss");
    tn_str(n, "reduction", "sum");
    cr_assert_eq(tn_run(n, 2, (amp_tensor *[]){x, t}, 2, out), AMP_OK);
    cr_assert_eq(tt_get(out[0], 0), 0.0); /* an empty sum */
    free_all(out, 3);
    tn_free(n);
    amp_tensor_destroy(x);
    amp_tensor_destroy(t);
}

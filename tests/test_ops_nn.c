/* Normalisation, the softmax family and the classification losses against reference loops
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

static const amp_dtype FLOATS[] = {AMP_F32, AMP_F16, AMP_BF16, AMP_F64};
#define N_FLOATS 4

/* normalised squared error allowed for an output stored in dt */
static double tol(amp_dtype dt) {
    switch (dt) {
    case AMP_F64: return 1e-22;
    case AMP_F32: return 1e-12;
    case AMP_F16: return 1e-6;
    default: return 3e-5; /* bf16: 8 significant bits */
    }
}

static int64_t numel_of(int rank, const int64_t *dims) {
    int64_t n = 1;
    for (int i = 0; i < rank; i++) n *= dims[i];
    return n;
}

/* the tensor's elements as doubles (the values the kernel sees) */
static double *vals(const amp_tensor *t) {
    int64_t n = amp_tensor_numel(t);
    double *v = malloc(sizeof(double) * (size_t)(n ? n : 1));
    for (int64_t i = 0; i < n; i++) v[i] = tt_get(t, i);
    return v;
}

static void expect_close(const amp_tensor *got, amp_dtype dt, int rank, const int64_t *dims, const double *ref,
                         const char *what) {
    cr_assert_not_null(got, "%s: no output", what);
    cr_assert_eq(amp_tensor_dtype(got), dt, "%s: dtype %s", what, amp_dtype_name(amp_tensor_dtype(got)));
    amp_tensor *r = tt_make(ctx, AMP_F64, rank, dims, ref);
    double e = tt_nse(got, r);
    cr_assert(e <= tol(dt), "%s (%s): nse %g > %g", what, amp_dtype_name(dt), e, tol(dt));
    amp_tensor_destroy(r);
}

static void free_all(amp_tensor **t, int n) {
    for (int i = 0; i < n; i++) {
        amp_tensor_destroy(t[i]);
        t[i] = NULL;
    }
}

/* Offset of X's element flat in a parameter of shape pdims broadcast (numpy, right-aligned)
 * onto X's shape. */
static int64_t bcast_off(int xrank, const int64_t *xdims, int prank, const int64_t *pdims, int64_t flat) {
    int64_t idx[8], off = 0, stride = 1;
    for (int d = xrank - 1; d >= 0; d--) {
        idx[d] = flat % xdims[d];
        flat /= xdims[d];
    }
    for (int d = prank - 1; d >= 0; d--) {
        int xd = xrank - prank + d;
        if (pdims[d] != 1) off += idx[xd] * stride;
        stride *= pdims[d];
    }
    return off;
}

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
/* LayerNormalization                                                                          */

typedef struct ln_case {
    int rank;
    const int64_t *dims;
    int axis; /* normalised, >= 0 */
    int srank, brank;
    const int64_t *sdims, *bdims; /* brank < 0: no bias */
    double eps;
} ln_case;

static void ref_layer_norm(const ln_case *c, const double *x, const double *s, const double *b, double *y,
                           double *mean, double *inv) {
    int64_t rows = 1, cols = 1;
    for (int d = 0; d < c->rank; d++) *(d < c->axis ? &rows : &cols) *= c->dims[d];
    for (int64_t r = 0; r < rows; r++) {
        double m = 0, v = 0;
        for (int64_t j = 0; j < cols; j++) m += x[r * cols + j];
        m /= (double)cols;
        for (int64_t j = 0; j < cols; j++) v += (x[r * cols + j] - m) * (x[r * cols + j] - m);
        v /= (double)cols;
        double is = 1 / sqrt(v + (double)(float)c->eps); /* the attribute is a float */
        mean[r] = m;
        inv[r] = is;
        for (int64_t j = 0; j < cols; j++) {
            int64_t e = r * cols + j;
            y[e] = (x[e] - m) * is * s[bcast_off(c->rank, c->dims, c->srank, c->sdims, e)];
            if (b) y[e] += b[bcast_off(c->rank, c->dims, c->brank, c->bdims, e)];
        }
    }
}

static void check_layer_norm(const ln_case *c, amp_dtype dt, amp_dtype pdt, int64_t stash, int with_stats,
                             int64_t attr_axis) {
    amp_tensor *x = tt_rand(ctx, dt, c->rank, c->dims, -3, 5, 100 + (uint64_t)c->axis);
    amp_tensor *s = tt_rand(ctx, pdt, c->srank, c->sdims, 0.5, 2, 200);
    amp_tensor *b = c->brank >= 0 ? tt_rand(ctx, pdt, c->brank, c->bdims, -1, 1, 300) : NULL;
    double *xv = vals(x), *sv = vals(s), *bv = b ? vals(b) : NULL;
    int64_t n = numel_of(c->rank, c->dims);
    double *ref = malloc(sizeof(double) * (size_t)n), *mean = malloc(sizeof(double) * (size_t)n),
           *inv = malloc(sizeof(double) * (size_t)n);
    ref_layer_norm(c, xv, sv, bv, ref, mean, inv);

    amp_test_node *t = tn_new(ctx, "LayerNormalization");
    tn_int(t, "axis", attr_axis);
    if (c->eps != 1e-5) tn_float(t, "epsilon", (float)c->eps);
    if (stash) tn_int(t, "stash_type", stash);
    amp_tensor *in[3] = {x, s, b}, *out[3] = {0};
    int nout = with_stats ? 3 : 1;
    cr_assert_eq(tn_run(t, b ? 3 : 2, in, nout, out), AMP_OK, "%s", amp_context_last_error(ctx));
    expect_close(out[0], dt, c->rank, c->dims, ref, "LayerNormalization Y");
    if (with_stats) {
        int64_t rd[8];
        for (int d = 0; d < c->rank; d++) rd[d] = d < c->axis ? c->dims[d] : 1;
        amp_dtype sdt = stash ? (amp_dtype)stash : AMP_F32;
        expect_close(out[1], sdt, c->rank, rd, mean, "Mean");
        expect_close(out[2], sdt, c->rank, rd, inv, "InvStdDev");
    }
    free_all(out, 3);
    tn_free(t);
    amp_tensor_destroy(x);
    amp_tensor_destroy(s);
    amp_tensor_destroy(b);
    free(xv);
    free(sv);
    free(bv);
    free(ref);
    free(mean);
    free(inv);
}

Test(nn, layer_norm_every_axis_and_dtype) {
    const int64_t dims[4] = {2, 3, 5, 7};
    for (int di = 0; di < N_FLOATS; di++)
        for (int axis = -4; axis < 4; axis++) {
            int a = axis < 0 ? axis + 4 : axis;
            ln_case c = {4, dims, a, 4 - a, 4 - a, dims + a, dims + a, 1e-5};
            check_layer_norm(&c, FLOATS[di], FLOATS[di], 0, 1, axis);
        }
}

Test(nn, layer_norm_variants) {
    const int64_t dims[3] = {4, 5, 7};
    const int64_t s17[2] = {1, 7}, s1[1] = {1}, s57[2] = {5, 7}, s457[3] = {4, 1, 7};
    /* no bias, epsilon 0.1 */
    ln_case c1 = {3, dims, 1, 2, -1, s57, NULL, 0.1};
    check_layer_norm(&c1, AMP_F32, AMP_F32, 0, 1, 1);
    /* Scale broadcast along the normalised dims, scalar-like B */
    ln_case c2 = {3, dims, 1, 2, 1, s17, s1, 1e-5};
    check_layer_norm(&c2, AMP_F32, AMP_F32, 0, 1, -2);
    /* Scale that varies along a non-normalised dim too */
    ln_case c3 = {3, dims, 2, 3, 2, s457, s17, 1e-3};
    check_layer_norm(&c3, AMP_F64, AMP_F64, 0, 0, 2);
    /* f16 activations with f32 parameters, statistics stashed in double */
    ln_case c4 = {3, dims, 2, 1, 1, dims + 2, dims + 2, 1e-5};
    check_layer_norm(&c4, AMP_F16, AMP_F32, AMP_F64, 1, -1);
    check_layer_norm(&c4, AMP_BF16, AMP_BF16, AMP_BF16, 1, -1);
    /* rank 1 */
    ln_case c5 = {1, dims + 2, 0, 1, 1, dims + 2, dims + 2, 1e-5};
    check_layer_norm(&c5, AMP_F32, AMP_F32, 0, 1, 0);
}

Test(nn, layer_norm_f16_large_values_no_nan) {
    /* values near 3e4: their squares overflow f16 and f32 sums of squares lose everything to
     * cancellation if the variance is taken as E[x^2] - E[x]^2 */
    const int64_t dims[2] = {3, 64};
    double xv[192];
    for (int i = 0; i < 192; i++) xv[i] = 30000.0 + (double)((i * 37) % 23) * 8.0 - 88.0;
    amp_tensor *x = tt_make(ctx, AMP_F16, 2, dims, xv);
    double *xr = vals(x), *ones = malloc(sizeof(double) * 64);
    for (int i = 0; i < 64; i++) ones[i] = 1;
    amp_tensor *s = tt_make(ctx, AMP_F16, 1, dims + 1, ones);
    amp_test_node *t = tn_new(ctx, "LayerNormalization");
    amp_tensor *in[2] = {x, s}, *out[3] = {0};
    cr_assert_eq(tn_run(t, 2, in, 3, out), AMP_OK);
    for (int i = 0; i < 192; i++) cr_assert(isfinite(tt_get(out[0], i)), "element %d", i);
    ln_case c = {2, dims, 1, 1, -1, dims + 1, NULL, 1e-5};
    double ref[192], mean[3], inv[3];
    ref_layer_norm(&c, xr, ones, NULL, ref, mean, inv);
    expect_close(out[0], AMP_F16, 2, dims, ref, "large f16");
    const int64_t rd[2] = {3, 1};
    expect_close(out[1], AMP_F32, 2, rd, mean, "large f16 mean");
    free_all(out, 3);
    tn_free(t);
    amp_tensor_destroy(x);
    amp_tensor_destroy(s);
    free(xr);
    free(ones);
}

Test(nn, layer_norm_bad_inputs) {
    const int64_t dims[3] = {2, 3, 4}, bad[1] = {3}, d4[1] = {4};
    amp_tensor *x = tt_rand(ctx, AMP_F32, 3, dims, -1, 1, 1), *s = tt_rand(ctx, AMP_F32, 1, bad, 1, 2, 2);
    amp_tensor *s4 = tt_rand(ctx, AMP_F32, 1, d4, 1, 2, 3), *xi = tt_rand(ctx, AMP_I32, 3, dims, -5, 5, 4);
    amp_tensor *out[3] = {0};
    amp_test_node *t = tn_new(ctx, "LayerNormalization");
    cr_assert_eq(tn_run(t, 2, (amp_tensor *[]){x, s}, 1, out), AMP_ERR_SHAPE);
    cr_assert_eq(tn_run(t, 2, (amp_tensor *[]){xi, s4}, 1, out), AMP_ERR_UNSUPPORTED);
    cr_assert_eq(tn_run(t, 3, (amp_tensor *[]){x, s4, s}, 1, out), AMP_ERR_SHAPE);
    cr_assert_eq(tn_run(t, 1, (amp_tensor *[]){x}, 1, out), AMP_ERR_INVALID_GRAPH);
    tn_free(t);
    t = tn_new(ctx, "LayerNormalization");
    tn_int(t, "axis", 3);
    cr_assert_eq(tn_run(t, 2, (amp_tensor *[]){x, s4}, 1, out), AMP_ERR_INVALID_GRAPH);
    tn_free(t);
    t = tn_new(ctx, "LayerNormalization");
    tn_int(t, "stash_type", AMP_I32);
    cr_assert_eq(tn_run(t, 2, (amp_tensor *[]){x, s4}, 3, out), AMP_ERR_UNSUPPORTED);
    tn_free(t);
    cr_assert_null(out[0]);
    amp_tensor_destroy(x);
    amp_tensor_destroy(s);
    amp_tensor_destroy(s4);
    amp_tensor_destroy(xi);
}

/* =========================================================================================== */
/* BatchNormalization, InstanceNormalization                                                   */

/* Parameters p[0..3] = scale, B, mean, var per channel; spatial = product of dims[2:]. */
static void ref_bn_infer(const double *x, int64_t n, int64_t ch, int64_t sp, const double *sc, const double *b,
                         const double *m, const double *v, double eps, double *y) {
    for (int64_t i = 0; i < n; i++)
        for (int64_t c = 0; c < ch; c++)
            for (int64_t s = 0; s < sp; s++) {
                int64_t e = (i * ch + c) * sp + s;
                y[e] = sc[c] * (x[e] - m[c]) / sqrt(v[c] + eps) + b[c];
            }
}

static amp_tensor *param(amp_dtype dt, int64_t ch, double lo, double hi, uint64_t seed) {
    return tt_rand(ctx, dt, 1, &ch, lo, hi, seed);
}

Test(nn, batch_norm_inference_every_dtype_and_rank) {
    const int64_t d4[4] = {3, 5, 4, 3}, d2[2] = {7, 5}, d1[1] = {6}, d5[5] = {2, 3, 1, 3, 2};
    const struct {
        int rank;
        const int64_t *dims;
    } shapes[4] = {{4, d4}, {2, d2}, {1, d1}, {5, d5}};
    for (int si = 0; si < 4; si++)
        for (int di = 0; di < N_FLOATS; di++) {
            amp_dtype dt = FLOATS[di];
            int rank = shapes[si].rank;
            const int64_t *dims = shapes[si].dims;
            int64_t n = dims[0], ch = rank > 1 ? dims[1] : 1, sp = 1;
            for (int d = 2; d < rank; d++) sp *= dims[d];
            amp_tensor *in[5] = {tt_rand(ctx, dt, rank, dims, -4, 4, 1), param(dt, ch, 0.5, 2, 2),
                                 param(dt, ch, -1, 1, 3), param(dt, ch, -1, 1, 4), param(dt, ch, 0.2, 3, 5)};
            double *v[5];
            for (int i = 0; i < 5; i++) v[i] = vals(in[i]);
            double *ref = malloc(sizeof(double) * (size_t)(n * ch * sp));
            for (int eps_case = 0; eps_case < 2; eps_case++) {
                double eps = eps_case ? (double)0.01f : (double)1e-5f;
                ref_bn_infer(v[0], n, ch, sp, v[1], v[2], v[3], v[4], eps, ref);
                amp_test_node *t = tn_new(ctx, "BatchNormalization");
                t->opset = eps_case ? 9 : 15;
                if (eps_case) tn_float(t, "epsilon", 0.01f);
                amp_tensor *out[1] = {0};
                cr_assert_eq(tn_run(t, 5, in, 1, out), AMP_OK, "%s", amp_context_last_error(ctx));
                expect_close(out[0], dt, rank, dims, ref, "BatchNormalization");
                free_all(out, 1);
                tn_free(t);
            }
            free(ref);
            for (int i = 0; i < 5; i++) {
                free(v[i]);
                amp_tensor_destroy(in[i]);
            }
        }
}

static void check_bn_training(amp_dtype xdt, amp_dtype pdt, amp_dtype sdt, double momentum, int64_t opset, int nout) {
    const int64_t dims[4] = {3, 4, 5, 3};
    const int64_t n = 3, ch = 4, sp = 15, cnt = n * sp;
    amp_tensor *in[5] = {tt_rand(ctx, xdt, 4, dims, -2, 6, 21), param(pdt, ch, 0.5, 2, 22), param(pdt, ch, -1, 1, 23),
                         param(sdt, ch, -1, 1, 24), param(sdt, ch, 0.2, 3, 25)};
    double *v[5];
    for (int i = 0; i < 5; i++) v[i] = vals(in[i]);
    double bm[4], bv[4], rm[4], rv[4], inv[4], ref[180];
    const double mom = (float)momentum; /* attributes are floats */
    for (int64_t c = 0; c < ch; c++) {
        double s = 0, q = 0;
        for (int64_t i = 0; i < n; i++)
            for (int64_t k = 0; k < sp; k++) s += v[0][(i * ch + c) * sp + k];
        bm[c] = s / (double)cnt;
        for (int64_t i = 0; i < n; i++)
            for (int64_t k = 0; k < sp; k++) q += pow(v[0][(i * ch + c) * sp + k] - bm[c], 2);
        bv[c] = q / (double)cnt; /* population variance, as the ONNX reference */
        rm[c] = v[3][c] * mom + bm[c] * (1 - mom);
        rv[c] = v[4][c] * mom + bv[c] * (1 - mom);
        inv[c] = 1 / sqrt(bv[c] + (double)1e-5f);
    }
    ref_bn_infer(v[0], n, ch, sp, v[1], v[2], bm, bv, (double)1e-5f, ref);
    amp_test_node *t = tn_new(ctx, "BatchNormalization");
    t->opset = opset;
    if (opset >= 14) tn_int(t, "training_mode", 1);
    if (momentum != 0.9) tn_float(t, "momentum", (float)momentum);
    amp_tensor *out[5] = {0};
    cr_assert_eq(tn_run(t, 5, in, nout, out), AMP_OK, "%s", amp_context_last_error(ctx));
    expect_close(out[0], xdt, 4, dims, ref, "training Y");
    expect_close(out[1], sdt, 1, &ch, rm, "running_mean");
    expect_close(out[2], sdt, 1, &ch, rv, "running_var");
    if (nout == 5) {
        expect_close(out[3], sdt, 1, &ch, bm, "saved_mean");
        expect_close(out[4], sdt, 1, &ch, inv, "saved_inv_std");
    }
    free_all(out, 5);
    tn_free(t);
    for (int i = 0; i < 5; i++) {
        free(v[i]);
        amp_tensor_destroy(in[i]);
    }
}

Test(nn, batch_norm_training_mode) {
    for (int di = 0; di < N_FLOATS; di++) check_bn_training(FLOATS[di], FLOATS[di], FLOATS[di], 0.9, 15, 3);
    check_bn_training(AMP_F32, AMP_F32, AMP_F32, 0.7, 14, 3);
    /* opset 15: scale/B and mean/var each in their own float type */
    check_bn_training(AMP_F16, AMP_F32, AMP_F32, 0.9, 15, 3);
    check_bn_training(AMP_BF16, AMP_BF16, AMP_F64, 0.5, 15, 3);
    /* opsets 7-13 train when the statistics outputs are asked for */
    check_bn_training(AMP_F32, AMP_F32, AMP_F32, 0.9, 9, 5);
}

Test(nn, batch_norm_spatial0_per_activation) {
    /* opset 7, spatial=0: every activation (c, h) has its own statistics */
    const int64_t dims[3] = {2, 3, 5}, pd[2] = {3, 5};
    amp_tensor *in[5] = {tt_rand(ctx, AMP_F32, 3, dims, -2, 2, 31), tt_rand(ctx, AMP_F32, 2, pd, 0.5, 2, 32),
                         tt_rand(ctx, AMP_F32, 2, pd, -1, 1, 33), tt_rand(ctx, AMP_F32, 2, pd, -1, 1, 34),
                         tt_rand(ctx, AMP_F32, 2, pd, 0.2, 2, 35)};
    double *v[5], ref[30];
    for (int i = 0; i < 5; i++) v[i] = vals(in[i]);
    ref_bn_infer(v[0], 2, 15, 1, v[1], v[2], v[3], v[4], (double)1e-5f, ref);
    amp_test_node *t = tn_new(ctx, "BatchNormalization");
    t->opset = 7;
    tn_int(t, "spatial", 0);
    amp_tensor *out[1] = {0};
    cr_assert_eq(tn_run(t, 5, in, 1, out), AMP_OK, "%s", amp_context_last_error(ctx));
    expect_close(out[0], AMP_F32, 3, dims, ref, "spatial=0");
    free_all(out, 1);
    tn_free(t);
    for (int i = 0; i < 5; i++) {
        free(v[i]);
        amp_tensor_destroy(in[i]);
    }
}

Test(nn, batch_norm_bad_inputs) {
    const int64_t dims[4] = {2, 5, 3, 3};
    amp_tensor *x = tt_rand(ctx, AMP_F32, 4, dims, -1, 1, 1), *p5 = param(AMP_F32, 5, 0.5, 1, 2),
               *p4 = param(AMP_F32, 4, 0.5, 1, 3), *xi = tt_rand(ctx, AMP_I64, 4, dims, -3, 3, 4),
               *p5h = param(AMP_F16, 5, 0.5, 1, 5);
    amp_tensor *out[3] = {0};
    amp_test_node *t = tn_new(ctx, "BatchNormalization");
    cr_assert_eq(tn_run(t, 5, (amp_tensor *[]){x, p5, p5, p4, p5}, 1, out), AMP_ERR_SHAPE); /* channel mismatch */
    cr_assert_eq(tn_run(t, 5, (amp_tensor *[]){xi, p5, p5, p5, p5}, 1, out), AMP_ERR_UNSUPPORTED);
    /* mean and var in different dtypes */
    cr_assert_eq(tn_run(t, 5, (amp_tensor *[]){x, p5, p5, p5, p5h}, 1, out), AMP_ERR_SHAPE);
    cr_assert_eq(tn_run(t, 4, (amp_tensor *[]){x, p5, p5, p5}, 1, out), AMP_ERR_INVALID_GRAPH);
    /* running statistics are only produced in training mode */
    cr_assert_eq(tn_run(t, 5, (amp_tensor *[]){x, p5, p5, p5, p5}, 3, out), AMP_ERR_INVALID_GRAPH);
    cr_assert_eq(tn_run(t, 5, (amp_tensor *[]){x, x, p5, p5, p5}, 1, out), AMP_ERR_SHAPE); /* scale not 1-D */
    cr_assert_null(out[0]);
    tn_free(t);
    amp_tensor_destroy(x);
    amp_tensor_destroy(p5);
    amp_tensor_destroy(p4);
    amp_tensor_destroy(xi);
    amp_tensor_destroy(p5h);
}

Test(nn, instance_norm_every_dtype) {
    const int64_t d4[4] = {2, 3, 5, 7}, d3[3] = {3, 4, 11};
    const int64_t *shapes[2] = {d4, d3};
    const int ranks[2] = {4, 3};
    for (int si = 0; si < 2; si++)
        for (int di = 0; di < N_FLOATS; di++)
            for (int eps_case = 0; eps_case < 2; eps_case++) {
                amp_dtype dt = FLOATS[di];
                const int64_t *dims = shapes[si];
                int rank = ranks[si];
                int64_t n = dims[0], ch = dims[1], sp = numel_of(rank - 2, dims + 2);
                double eps = eps_case ? (double)0.01f : (double)1e-5f;
                amp_tensor *in[3] = {tt_rand(ctx, dt, rank, dims, -3, 5, 41), param(dt, ch, 0.5, 2, 42),
                                     param(dt, ch, -1, 1, 43)};
                double *x = vals(in[0]), *sc = vals(in[1]), *b = vals(in[2]);
                double *ref = malloc(sizeof(double) * (size_t)(n * ch * sp));
                for (int64_t i = 0; i < n * ch; i++) {
                    double m = 0, v = 0;
                    for (int64_t s = 0; s < sp; s++) m += x[i * sp + s];
                    m /= (double)sp;
                    for (int64_t s = 0; s < sp; s++) v += pow(x[i * sp + s] - m, 2);
                    v /= (double)sp;
                    for (int64_t s = 0; s < sp; s++)
                        ref[i * sp + s] = sc[i % ch] * (x[i * sp + s] - m) / sqrt(v + eps) + b[i % ch];
                }
                amp_test_node *t = tn_new(ctx, "InstanceNormalization");
                t->opset = 6;
                if (eps_case) tn_float(t, "epsilon", (float)eps);
                amp_tensor *out[1] = {0};
                cr_assert_eq(tn_run(t, 3, in, 1, out), AMP_OK, "%s", amp_context_last_error(ctx));
                expect_close(out[0], dt, rank, dims, ref, "InstanceNormalization");
                free_all(out, 1);
                tn_free(t);
                free_all(in, 3);
                free(x);
                free(sc);
                free(b);
                free(ref);
            }
}

Test(nn, instance_norm_bad_inputs) {
    const int64_t d2[2] = {4, 3}, d3[3] = {2, 3, 4};
    amp_tensor *x2 = tt_rand(ctx, AMP_F32, 2, d2, -1, 1, 1), *x3 = tt_rand(ctx, AMP_F32, 3, d3, -1, 1, 2),
               *p3 = param(AMP_F32, 3, 1, 2, 3), *p4 = param(AMP_F32, 4, 1, 2, 4);
    amp_tensor *out[1] = {0};
    amp_test_node *t = tn_new(ctx, "InstanceNormalization");
    cr_assert_eq(tn_run(t, 3, (amp_tensor *[]){x2, p3, p3}, 1, out), AMP_ERR_SHAPE); /* rank 2 */
    cr_assert_eq(tn_run(t, 3, (amp_tensor *[]){x3, p4, p3}, 1, out), AMP_ERR_SHAPE); /* channel mismatch */
    cr_assert_eq(tn_run(t, 2, (amp_tensor *[]){x3, p3}, 1, out), AMP_ERR_INVALID_GRAPH);
    tn_free(t);
    amp_tensor_destroy(x2);
    amp_tensor_destroy(x3);
    amp_tensor_destroy(p3);
    amp_tensor_destroy(p4);
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

    /* LayerNormalization over the last dim */
    ln_case c = {2, ds, 1, 1, 1, ds + 1, ds + 1, 1e-5};
    check_layer_norm(&c, AMP_F32, AMP_F32, 0, 1, -1);

    /* BatchNormalization training and InstanceNormalization on 8 x 16 x 17 x 15 */
    const int64_t db[4] = {8, 16, 17, 15};
    const int64_t n = 8, ch = 16, sp = 17 * 15, ne = n * ch * sp;
    amp_tensor *in[5] = {tt_rand(ctx, AMP_F32, 4, db, -3, 5, 62), param(AMP_F32, ch, 0.5, 2, 63),
                         param(AMP_F32, ch, -1, 1, 64), param(AMP_F32, ch, -1, 1, 65), param(AMP_F32, ch, 0.2, 3, 66)};
    double *v[5];
    for (int i = 0; i < 5; i++) v[i] = vals(in[i]);
    double bm[16], bv[16], rm[16], *yr = malloc(sizeof(double) * (size_t)ne);
    for (int64_t cc = 0; cc < ch; cc++) {
        double s = 0, q = 0;
        for (int64_t i = 0; i < n; i++)
            for (int64_t k = 0; k < sp; k++) s += v[0][(i * ch + cc) * sp + k];
        bm[cc] = s / (double)(n * sp);
        for (int64_t i = 0; i < n; i++)
            for (int64_t k = 0; k < sp; k++) q += pow(v[0][(i * ch + cc) * sp + k] - bm[cc], 2);
        bv[cc] = q / (double)(n * sp);
        rm[cc] = v[3][cc] * (double)0.9f + bm[cc] * (1 - (double)0.9f);
    }
    ref_bn_infer(v[0], n, ch, sp, v[1], v[2], bm, bv, (double)1e-5f, yr);
    amp_test_node *t = tn_new(ctx, "BatchNormalization");
    t->threads = 4;
    tn_int(t, "training_mode", 1);
    amp_tensor *out[3] = {0};
    cr_assert_eq(tn_run(t, 5, in, 3, out), AMP_OK, "%s", amp_context_last_error(ctx));
    expect_close(out[0], AMP_F32, 4, db, yr, "parallel batch norm");
    expect_close(out[1], AMP_F32, 1, &ch, rm, "parallel running mean");
    free_all(out, 3);
    tn_free(t);
    free(yr);
    for (int i = 0; i < 5; i++) {
        free(v[i]);
        amp_tensor_destroy(in[i]);
    }

    /* the losses over 9 x 11 x 13 x 17 */
    const int64_t dl[4] = {9, 11, 13, 17};
    loss_case lc = {4, dl, "mean", 1, 1, 2, AMP_I64};
    check_loss(&lc, 0, AMP_F32, 0);
    check_loss(&lc, 1, AMP_F32, 1);
    lc.reduction = "none";
    check_loss(&lc, 1, AMP_F32, 1);
}

Test(nn, zero_sized_inputs_run_cleanly) {
    const int64_t dx[3] = {0, 3, 4}, dr[3] = {2, 0, 4}, dt[2] = {0, 4};
    amp_tensor *x = tt_make(ctx, AMP_F32, 3, dx, NULL), *xr = tt_make(ctx, AMP_F16, 3, dr, NULL);
    amp_tensor *p = param(AMP_F32, 3, 0.5, 1, 1), *p4 = param(AMP_F16, 4, 0.5, 1, 2);
    amp_tensor *t = tt_make(ctx, AMP_I64, 2, dt, NULL), *out[3] = {0};
    amp_test_node *n = tn_new(ctx, "BatchNormalization");
    cr_assert_eq(tn_run(n, 5, (amp_tensor *[]){x, p, p, p, p}, 1, out), AMP_OK);
    cr_assert_eq(amp_tensor_numel(out[0]), 0);
    free_all(out, 3);
    tn_free(n);
    n = tn_new(ctx, "InstanceNormalization");
    cr_assert_eq(tn_run(n, 3, (amp_tensor *[]){x, p, p}, 1, out), AMP_OK);
    free_all(out, 3);
    tn_free(n);
    n = tn_new(ctx, "LayerNormalization");
    cr_assert_eq(tn_run(n, 2, (amp_tensor *[]){xr, p4}, 3, out), AMP_OK);
    cr_assert_eq(amp_tensor_numel(out[1]), 0);
    free_all(out, 3);
    tn_free(n);
    n = tn_new(ctx, "SoftmaxCrossEntropyLoss");
    tn_str(n, "reduction", "sum");
    cr_assert_eq(tn_run(n, 2, (amp_tensor *[]){x, t}, 2, out), AMP_OK);
    cr_assert_eq(tt_get(out[0], 0), 0.0); /* an empty sum */
    free_all(out, 3);
    tn_free(n);
    amp_tensor_destroy(x);
    amp_tensor_destroy(xr);
    amp_tensor_destroy(p);
    amp_tensor_destroy(p4);
    amp_tensor_destroy(t);
}

/* BatchNormalization, InstanceNormalization, LayerNormalization, GroupNormalization (opsets
 * 18 and 21), LRN and MeanVarianceNormalization against reference
 * loops written here in double, in every float dtype, with attribute variants, odd shapes,
 * shapes big enough for the threaded loops, and bad inputs that must fail with the right
 * status. References are computed from the inputs as the dtype holds them, so the only error
 * measured is the kernel's own; it is a relative L2 error (tt_nse). */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backends/cpu/cpu.h"
#include "testutil.h"

static amp_context *ctx;
static void setup(void) { cr_assert_eq(amp_context_create(NULL, &ctx), AMP_OK); }
static void teardown(void) { amp_context_destroy(ctx); }
TestSuite(group_norm, .init = setup, .fini = teardown, .timeout = 60);
TestSuite(lrn, .init = setup, .fini = teardown, .timeout = 60);
TestSuite(mvn, .init = setup, .fini = teardown, .timeout = 60);
TestSuite(norm, .init = setup, .fini = teardown, .timeout = 60);

#include "nn_testutil.h"

static const amp_dtype float_types[] = {AMP_F32, AMP_F16, AMP_BF16, AMP_F64};
#define N_FLOAT 4

/* Relative L2 error allowed per dtype: the output rounding of 16-bit types dominates. */
static double tol_of(amp_dtype dt) {
    switch (dt) {
    case AMP_F64: return 1e-12;
    case AMP_F32: return 2e-6;
    case AMP_F16: return 2e-3;
    default: return 1.6e-2;
    }
}

static uint64_t seed_next = 1;

static amp_tensor *rnd(amp_dtype dt, int rank, const int64_t *dims, double lo, double hi) {
    return tt_rand(ctx, dt, rank, dims, lo, hi, seed_next++);
}

static amp_tensor *f64_like(const amp_tensor *t) {
    amp_tensor *o;
    cr_assert_eq(amp_tensor_create(ctx, AMP_F64, t->rank, t->dims, &o), AMP_OK);
    return o;
}

static void expect_near(const amp_tensor *y, const amp_tensor *ref, double tol, const char *what) {
    cr_assert_eq(y->dtype == AMP_F64 || y->dtype == AMP_F32 || y->dtype == AMP_F16 || y->dtype == AMP_BF16, true);
    double e = sqrt(tt_nse(y, ref));
    cr_assert(e < tol, "%s (%s): relative L2 error %g over %g", what, amp_dtype_name(y->dtype), e, tol);
}

/* Run t and expect status s with no output left behind. */
static void expect_fail(amp_test_node *t, int nin, amp_tensor **in, int nout, amp_status want, const char *what) {
    amp_tensor *y[2] = {NULL, NULL};
    amp_status s = tn_run(t, nin, in, nout, y);
    cr_assert_eq(s, want, "%s: status %d (%s), expected %d", what, s, amp_context_last_error(ctx), want);
    cr_assert_null(y[0]);
    cr_assert_null(y[1]);
}

/* ---- GroupNormalization ------------------------------------------------------------------------- */

static void gn_ref(const amp_tensor *x, const amp_tensor *sc, const amp_tensor *bi, int64_t groups, bool per_channel,
                   double eps, amp_tensor *y) {
    const int64_t n = x->dims[0], ch = x->dims[1], cpg = ch / groups;
    int64_t sp = 1;
    for (int d = 2; d < x->rank; d++) sp *= x->dims[d];
    for (int64_t i = 0; i < n; i++)
        for (int64_t g = 0; g < groups; g++) {
            double sum = 0, sq = 0;
            for (int64_t c = g * cpg; c < (g + 1) * cpg; c++)
                for (int64_t s = 0; s < sp; s++) sum += tt_get(x, (i * ch + c) * sp + s);
            const double mean = sum / (double)(cpg * sp);
            for (int64_t c = g * cpg; c < (g + 1) * cpg; c++)
                for (int64_t s = 0; s < sp; s++) {
                    const double d = tt_get(x, (i * ch + c) * sp + s) - mean;
                    sq += d * d;
                }
            const double sd = sqrt(sq / (double)(cpg * sp) + eps);
            for (int64_t c = g * cpg; c < (g + 1) * cpg; c++) {
                const int64_t p = per_channel ? c : g;
                for (int64_t s = 0; s < sp; s++) {
                    const int64_t at = (i * ch + c) * sp + s;
                    amp_st(AMP_F64, y->data, at, (tt_get(x, at) - mean) / sd * tt_get(sc, p) + tt_get(bi, p));
                }
            }
        }
}

/* One GroupNormalization case: X of dtype dt (values in [lo, hi)), parameters of dtype pt. */
static void check_gn(int64_t opset, amp_dtype dt, amp_dtype pt, int rank, const int64_t *dims, int64_t groups,
                     double eps, double lo, double hi, int threads, double tol) {
    const bool per_channel = opset >= 21;
    const int64_t pd[1] = {per_channel ? dims[1] : groups};
    amp_tensor *x = rnd(dt, rank, dims, lo, hi), *sc = rnd(pt, 1, pd, 0.5, 2), *bi = rnd(pt, 1, pd, -1, 1);
    amp_tensor *in[3] = {x, sc, bi}, *y = NULL, *ref = f64_like(x);
    amp_test_node *t = tn_new(ctx, "GroupNormalization");
    t->opset = opset;
    t->threads = threads;
    tn_int(t, "num_groups", groups);
    if (eps != 1e-5) tn_float(t, "epsilon", (float)eps);
    cr_assert_eq(tn_run(t, 3, in, 1, &y), AMP_OK, "%s", amp_context_last_error(ctx));
    cr_assert_eq(y->dtype, dt);
    cr_assert_eq(y->rank, rank);
    for (int d = 0; d < rank; d++) cr_assert_eq(y->dims[d], dims[d]);
    gn_ref(x, sc, bi, groups, per_channel, (double)(float)eps, ref);
    char what[96];
    snprintf(what, sizeof what, "GroupNormalization-%lld G=%lld rank %d", (long long)opset, (long long)groups, rank);
    expect_near(y, ref, tol > 0 ? tol : tol_of(dt), what);
    tn_free(t);
    amp_tensor_destroy(x);
    amp_tensor_destroy(sc);
    amp_tensor_destroy(bi);
    amp_tensor_destroy(y);
    amp_tensor_destroy(ref);
}

Test(group_norm, worked_example) {
    /* 1 x 2 x 2, one group, opset 18 (scale and bias per group), epsilon 0: mean 2.5, variance
     * 1.25, so y = 2 (x - 2.5) / sqrt(1.25) + 1 */
    const int64_t xd[3] = {1, 2, 2}, pd[1] = {1};
    amp_tensor *x = tt_make(ctx, AMP_F32, 3, xd, (const double[]){1, 2, 3, 4});
    amp_tensor *sc = tt_make(ctx, AMP_F32, 1, pd, (const double[]){2});
    amp_tensor *bi = tt_make(ctx, AMP_F32, 1, pd, (const double[]){1});
    amp_tensor *in[3] = {x, sc, bi}, *y = NULL;
    amp_test_node *t = tn_new(ctx, "GroupNormalization");
    t->opset = 18;
    tn_int(t, "num_groups", 1);
    tn_float(t, "epsilon", 0.0f);
    cr_assert_eq(tn_run(t, 3, in, 1, &y), AMP_OK, "%s", amp_context_last_error(ctx));
    const double want[4] = {-1.6832815729997477, 0.10557280900008403, 1.894427190999916, 3.683281572999748};
    for (int i = 0; i < 4; i++)
        cr_assert(fabs(tt_get(y, i) - want[i]) < 1e-6 * fabs(want[i]) + 1e-7, "y[%d] = %.9g, want %.9g", i,
                  tt_get(y, i), want[i]);
    tn_free(t);
    amp_tensor_destroy(x);
    amp_tensor_destroy(sc);
    amp_tensor_destroy(bi);
    amp_tensor_destroy(y);
}

Test(group_norm, every_dtype_both_opsets) {
    const int64_t d4[4] = {2, 6, 5, 3}, d3[3] = {1, 4, 7}, d2[2] = {4, 6}, d5[5] = {2, 4, 3, 2, 3};
    const int64_t d1s[4] = {3, 8, 1, 1};
    for (int op = 0; op < 2; op++) {
        const int64_t opset = op ? 21 : 18;
        for (int ti = 0; ti < N_FLOAT; ti++) {
            const amp_dtype dt = float_types[ti];
            check_gn(opset, dt, dt, 4, d4, 3, 1e-5, -3, 3, 1, 0);
            check_gn(opset, dt, dt, 4, d4, 1, 1e-5, -3, 3, 2, 0);  /* one group: LayerNorm over C x H x W */
            check_gn(opset, dt, dt, 4, d4, 6, 1e-5, -3, 3, 2, 0);  /* a group per channel: InstanceNorm */
            check_gn(opset, dt, dt, 3, d3, 2, 0.1, -1, 4, 1, 0);   /* epsilon */
            check_gn(opset, dt, dt, 2, d2, 2, 1e-5, -2, 2, 1, 0);  /* no spatial dims */
            check_gn(opset, dt, dt, 5, d5, 4, 1e-5, 0, 5, 2, 0);
            check_gn(opset, dt, dt, 4, d1s, 4, 1e-3, -1, 1, 1, 0); /* 1 x 1 spatial */
        }
    }
}

Test(group_norm, threaded_large) {
    const int64_t d[4] = {2, 32, 33, 17};
    for (int ti = 0; ti < N_FLOAT; ti++)
        for (int op = 0; op < 2; op++)
            check_gn(op ? 21 : 18, float_types[ti], float_types[ti], 4, d, 8, 1e-5, -2, 3, 4, 0);
    /* groups of one channel with many threads */
    check_gn(21, AMP_F32, AMP_F32, 4, d, 32, 1e-5, -2, 3, 3, 0);
}

Test(group_norm, mixed_parameter_dtype) {
    /* 16-bit activations beside f32 parameters (what autocast leaves around a denied op) */
    const int64_t d[4] = {2, 4, 3, 5};
    check_gn(21, AMP_F16, AMP_F32, 4, d, 2, 1e-5, -3, 3, 1, 0);
    check_gn(18, AMP_BF16, AMP_F32, 4, d, 2, 1e-5, -3, 3, 1, 0);
    check_gn(21, AMP_F32, AMP_F64, 4, d, 4, 1e-5, -3, 3, 1, 0);
}

Test(group_norm, large_offset_keeps_precision) {
    /* mean 1000, spread 1: a naive E[x^2] - E[x]^2 in f32 loses everything; the f32 path's
     * error is bounded by the resolution of x itself (|x| * 2^-24 relative to the spread) */
    const int64_t d[4] = {2, 4, 16, 16};
    check_gn(21, AMP_F32, AMP_F32, 4, d, 2, 1e-5, 999.5, 1000.5, 1, 5e-4);
    check_gn(18, AMP_F64, AMP_F64, 4, d, 2, 1e-5, 999.5, 1000.5, 1, 1e-9);
}

Test(group_norm, stash_type_double) {
    /* opset 21, stash_type = double on f32 X: the first stage runs in double */
    const int64_t d[4] = {2, 6, 4, 3}, pd[1] = {6};
    amp_tensor *x = rnd(AMP_F32, 4, d, 99, 101), *sc = rnd(AMP_F32, 1, pd, 0.5, 2), *bi = rnd(AMP_F32, 1, pd, -1, 1);
    amp_tensor *in[3] = {x, sc, bi}, *y = NULL, *ref = f64_like(x);
    amp_test_node *t = tn_new(ctx, "GroupNormalization");
    t->opset = 21;
    tn_int(t, "num_groups", 3);
    tn_int(t, "stash_type", AMP_F64);
    cr_assert_eq(tn_run(t, 3, in, 1, &y), AMP_OK, "%s", amp_context_last_error(ctx));
    gn_ref(x, sc, bi, 3, true, (double)1e-5f, ref);
    expect_near(y, ref, 1e-6, "GroupNormalization stash double");
    tn_free(t);
    amp_tensor_destroy(x);
    amp_tensor_destroy(sc);
    amp_tensor_destroy(bi);
    amp_tensor_destroy(y);
    amp_tensor_destroy(ref);
}

Test(group_norm, empty_batch) {
    const int64_t d[3] = {0, 4, 3}, pd[1] = {2};
    amp_tensor *x = rnd(AMP_F32, 3, d, -1, 1), *sc = rnd(AMP_F32, 1, pd, 1, 2), *bi = rnd(AMP_F32, 1, pd, 1, 2);
    amp_tensor *in[3] = {x, sc, bi}, *y = NULL;
    amp_test_node *t = tn_new(ctx, "GroupNormalization");
    t->opset = 18;
    tn_int(t, "num_groups", 2);
    cr_assert_eq(tn_run(t, 3, in, 1, &y), AMP_OK, "%s", amp_context_last_error(ctx));
    cr_assert_eq(y->numel, 0);
    tn_free(t);
    amp_tensor_destroy(x);
    amp_tensor_destroy(sc);
    amp_tensor_destroy(bi);
    amp_tensor_destroy(y);
}

/* Empty tensors whose other dims are huge: no loop may run over those dims. */
Test(group_norm, empty_with_huge_dims) {
    const int64_t big = (int64_t)1 << 40;
    const int64_t dg[3] = {big, 4, 0}, pd[1] = {4}, dl[4] = {big, 3, 0, big}, dm[4] = {big, 0, big, 3};
    amp_tensor *x = rnd(AMP_F32, 3, dg, -1, 1), *sc = rnd(AMP_F32, 1, pd, 1, 2), *y = NULL;
    amp_tensor *in[3] = {x, sc, sc};
    amp_test_node *t = tn_new(ctx, "GroupNormalization");
    t->opset = 21;
    tn_int(t, "num_groups", 2);
    cr_assert_eq(tn_run(t, 3, in, 1, &y), AMP_OK, "%s", amp_context_last_error(ctx));
    cr_assert_eq(y->numel, 0);
    amp_tensor_destroy(y);
    tn_free(t);
    amp_tensor_destroy(x);
    x = rnd(AMP_F32, 4, dl, -1, 1);
    t = tn_new(ctx, "LRN");
    tn_int(t, "size", 3);
    cr_assert_eq(tn_run(t, 1, &x, 1, &y), AMP_OK, "%s", amp_context_last_error(ctx));
    amp_tensor_destroy(y);
    tn_free(t);
    amp_tensor_destroy(x);
    x = rnd(AMP_F32, 4, dm, -1, 1);
    t = tn_new(ctx, "MeanVarianceNormalization");
    cr_assert_eq(tn_run(t, 1, &x, 1, &y), AMP_OK, "%s", amp_context_last_error(ctx));
    amp_tensor_destroy(y);
    tn_free(t);
    amp_tensor_destroy(x);
    amp_tensor_destroy(sc);
}

Test(group_norm, op_table) {
    amp_op op = amp_op_lookup("GroupNormalization", "");
    cr_assert_neq(op, AMP_OP_UNKNOWN);
    cr_assert_eq(amp_op_table[op].cast_class, AMP_CLASS_DENY);
    cr_assert_eq(amp_op_table[op].opset_lo, 18);
    cr_assert_eq(amp_op_table[op].opset_hi, 28);
    cr_assert(amp_op_table[op].has_grad);
}

Test(group_norm, bad_inputs) {
    const int64_t d[4] = {2, 6, 3, 3}, p2[1] = {2}, p6[1] = {6}, d1[1] = {6};
    amp_tensor *x = rnd(AMP_F32, 4, d, -1, 1), *s2 = rnd(AMP_F32, 1, p2, 1, 2), *s6 = rnd(AMP_F32, 1, p6, 1, 2);
    amp_tensor *xi = rnd(AMP_I32, 4, d, -5, 5), *x1 = rnd(AMP_F32, 1, d1, -1, 1);
    amp_tensor *in[3] = {x, s2, s2};
    amp_test_node *t = tn_new(ctx, "GroupNormalization");
    t->opset = 18;
    expect_fail(t, 3, in, 1, AMP_ERR_INVALID_GRAPH, "num_groups missing");
    tn_free(t);

    const struct {
        int64_t opset, groups, stash;
        amp_tensor *x, *sc, *bi;
        int nin, nout;
        amp_status want;
        const char *what;
    } cases[] = {
        {18, 0, -1, x, s2, s2, 3, 1, AMP_ERR_INVALID_GRAPH, "num_groups 0"},
        {18, -2, -1, x, s2, s2, 3, 1, AMP_ERR_INVALID_GRAPH, "num_groups negative"},
        {18, 4, -1, x, s2, s2, 3, 1, AMP_ERR_SHAPE, "num_groups does not divide C"},
        {18, 2, -1, x, s6, s6, 3, 1, AMP_ERR_SHAPE, "opset 18 parameters per channel"},
        {21, 2, -1, x, s2, s2, 3, 1, AMP_ERR_SHAPE, "opset 21 parameters per group"},
        {21, 2, -1, x, s6, s2, 3, 1, AMP_ERR_SHAPE, "opset 21 bias per group"},
        {21, 2, AMP_F16, x, s6, s6, 3, 1, AMP_ERR_UNSUPPORTED, "stash_type float16"},
        {21, 2, AMP_I64, x, s6, s6, 3, 1, AMP_ERR_INVALID_GRAPH, "stash_type int64"},
        {18, 2, -1, xi, s2, s2, 3, 1, AMP_ERR_UNSUPPORTED, "int32 X"},
        {18, 2, -1, x, xi, s2, 3, 1, AMP_ERR_UNSUPPORTED, "int32 scale"},
        {18, 2, -1, x1, s2, s2, 3, 1, AMP_ERR_SHAPE, "rank 1 X"},
        {18, 2, -1, x, s2, s2, 2, 1, AMP_ERR_INVALID_GRAPH, "two inputs"},
        {18, 2, -1, x, s2, s2, 3, 2, AMP_ERR_INVALID_GRAPH, "two outputs"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        t = tn_new(ctx, "GroupNormalization");
        t->opset = cases[i].opset;
        tn_int(t, "num_groups", cases[i].groups);
        if (cases[i].stash >= 0) tn_int(t, "stash_type", cases[i].stash);
        amp_tensor *ci[3] = {cases[i].x, cases[i].sc, cases[i].bi};
        expect_fail(t, cases[i].nin, ci, cases[i].nout, cases[i].want, cases[i].what);
        tn_free(t);
    }
    /* num_groups as a float is not the integer the schema requires */
    t = tn_new(ctx, "GroupNormalization");
    t->opset = 18;
    tn_float(t, "num_groups", 2.0f);
    expect_fail(t, 3, in, 1, AMP_ERR_INVALID_GRAPH, "num_groups float");
    tn_free(t);
    amp_tensor_destroy(x);
    amp_tensor_destroy(s2);
    amp_tensor_destroy(s6);
    amp_tensor_destroy(xi);
    amp_tensor_destroy(x1);
}

/* ---- LRN ------------------------------------------------------------------------------------------ */

static void lrn_ref(const amp_tensor *x, int64_t size, double alpha, double beta, double bias, amp_tensor *y) {
    const int64_t n = x->dims[0], ch = x->dims[1];
    int64_t sp = 1;
    for (int d = 2; d < x->rank; d++) sp *= x->dims[d];
    const int64_t lo = (int64_t)floor((double)(size - 1) / 2), hi = (int64_t)ceil((double)(size - 1) / 2);
    for (int64_t i = 0; i < n; i++)
        for (int64_t c = 0; c < ch; c++)
            for (int64_t s = 0; s < sp; s++) {
                double sq = 0;
                for (int64_t j = c - lo; j <= c + hi; j++)
                    if (j >= 0 && j < ch) {
                        const double v = tt_get(x, (i * ch + j) * sp + s);
                        sq += v * v;
                    }
                const int64_t at = (i * ch + c) * sp + s;
                amp_st(AMP_F64, y->data, at, tt_get(x, at) / pow(bias + alpha / (double)size * sq, beta));
            }
}

/* alpha, beta, bias < 0: attribute left out (default). */
static void check_lrn(int64_t opset, amp_dtype dt, int rank, const int64_t *dims, int64_t size, double alpha,
                      double beta, double bias, int threads) {
    amp_tensor *x = rnd(dt, rank, dims, -3, 3), *y = NULL, *ref = f64_like(x);
    amp_test_node *t = tn_new(ctx, "LRN");
    t->opset = opset;
    t->threads = threads;
    tn_int(t, "size", size);
    if (alpha >= 0) tn_float(t, "alpha", (float)alpha);
    if (beta >= 0) tn_float(t, "beta", (float)beta);
    if (bias >= 0) tn_float(t, "bias", (float)bias);
    cr_assert_eq(tn_run(t, 1, &x, 1, &y), AMP_OK, "%s", amp_context_last_error(ctx));
    cr_assert_eq(y->dtype, dt);
    lrn_ref(x, size, alpha >= 0 ? (float)alpha : 1e-4f, beta >= 0 ? (float)beta : 0.75f, bias >= 0 ? (float)bias : 1.0f,
            ref);
    char what[96];
    snprintf(what, sizeof what, "LRN size %lld alpha %g beta %g bias %g", (long long)size, alpha, beta, bias);
    expect_near(y, ref, tol_of(dt), what);
    tn_free(t);
    amp_tensor_destroy(x);
    amp_tensor_destroy(y);
    amp_tensor_destroy(ref);
}

Test(lrn, every_dtype_size_and_attribute) {
    const int64_t d4[4] = {2, 7, 3, 4}, d2[2] = {3, 5}, d5[5] = {1, 6, 2, 3, 2};
    for (int ti = 0; ti < N_FLOAT; ti++) {
        const amp_dtype dt = float_types[ti];
        for (int64_t size = 1; size <= 9; size++) check_lrn(13, dt, 4, d4, size, 0.5, 0.75, 1.0, 1);
        check_lrn(13, dt, 4, d4, 3, -1, -1, -1, 1); /* defaults: alpha 1e-4, beta 0.75, bias 1 */
        check_lrn(1, dt, 4, d4, 5, 0.3, 0.5, 2.0, 1);
        check_lrn(12, dt, 4, d4, 4, 0.9, 1.0, 1.5, 2);
        check_lrn(13, dt, 2, d2, 3, 0.7, 0.6, 1.2, 1); /* pow path, no spatial dims */
        check_lrn(13, dt, 5, d5, 2, 1.1, 0.9, 0.5, 1);
    }
}

Test(lrn, threaded_large) {
    const int64_t d[4] = {2, 16, 40, 30};
    for (int ti = 0; ti < N_FLOAT; ti++) check_lrn(13, float_types[ti], 4, d, 5, 0.4, 0.75, 1.0, 4);
}

Test(lrn, op_table) {
    amp_op op = amp_op_lookup("LRN", "");
    cr_assert_neq(op, AMP_OP_UNKNOWN);
    cr_assert_eq(amp_op_table[op].cast_class, AMP_CLASS_DENY);
    cr_assert_eq(amp_op_table[op].opset_lo, 1);
    cr_assert(amp_op_table[op].has_grad);
}

Test(lrn, bad_inputs) {
    const int64_t d[4] = {1, 3, 2, 2}, d1[1] = {4};
    amp_tensor *x = rnd(AMP_F32, 4, d, -1, 1), *xi = rnd(AMP_I64, 4, d, -5, 5), *x1 = rnd(AMP_F32, 1, d1, -1, 1);
    amp_test_node *t = tn_new(ctx, "LRN");
    expect_fail(t, 1, &x, 1, AMP_ERR_INVALID_GRAPH, "size missing");
    tn_free(t);
    const struct {
        int64_t size;
        amp_tensor *x;
        amp_status want;
        const char *what;
    } cases[] = {
        {0, x, AMP_ERR_INVALID_GRAPH, "size 0"},
        {-3, x, AMP_ERR_INVALID_GRAPH, "size negative"},
        {3, xi, AMP_ERR_UNSUPPORTED, "int64 X"},
        {3, x1, AMP_ERR_SHAPE, "rank 1 X"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        t = tn_new(ctx, "LRN");
        tn_int(t, "size", cases[i].size);
        amp_tensor *ci = cases[i].x;
        expect_fail(t, 1, &ci, 1, cases[i].want, cases[i].what);
        tn_free(t);
    }
    t = tn_new(ctx, "LRN");
    tn_int(t, "size", 3);
    amp_tensor *two[2] = {x, x};
    expect_fail(t, 2, two, 1, AMP_ERR_INVALID_GRAPH, "two inputs");
    tn_free(t);
    amp_tensor_destroy(x);
    amp_tensor_destroy(xi);
    amp_tensor_destroy(x1);
}

/* ---- MeanVarianceNormalization ---------------------------------------------------------------------- */

/* red[d]: dim d is reduced. Each element's group is its flat index with reduced coordinates
 * set to 0. */
static void mvn_ref(const amp_tensor *x, const bool *red, amp_tensor *y) {
    const int64_t n = x->numel;
    double *sum = calloc((size_t)n, sizeof(double)), *sq = calloc((size_t)n, sizeof(double));
    double *cnt = calloc((size_t)n, sizeof(double));
    int64_t *key = malloc(sizeof(int64_t) * (size_t)n);
    int64_t st[AMP_MAX_RANK];
    amp_strides(x->rank, x->dims, st);
    for (int64_t i = 0; i < n; i++) {
        int64_t k = 0;
        for (int d = 0; d < x->rank; d++)
            if (!red[d]) k += (i / st[d]) % x->dims[d] * st[d];
        key[i] = k;
        sum[k] += tt_get(x, i);
        cnt[k] += 1;
    }
    for (int64_t i = 0; i < n; i++) {
        const double d = tt_get(x, i) - sum[key[i]] / cnt[key[i]];
        sq[key[i]] += d * d;
    }
    for (int64_t i = 0; i < n; i++) {
        const int64_t k = key[i];
        const double mean = sum[k] / cnt[k];
        amp_st(AMP_F64, y->data, i, (tt_get(x, i) - mean) / (sqrt(sq[k] / cnt[k]) + 1e-9));
    }
    free(sum);
    free(sq);
    free(cnt);
    free(key);
}

/* naxes < 0: attribute left out (default axes 0, 2, 3). */
static void check_mvn(int64_t opset, amp_dtype dt, int rank, const int64_t *dims, int naxes, const int64_t *axes,
                      int threads, double lo, double hi) {
    amp_tensor *x = rnd(dt, rank, dims, lo, hi), *y = NULL, *ref = f64_like(x);
    amp_test_node *t = tn_new(ctx, "MeanVarianceNormalization");
    t->opset = opset;
    t->threads = threads;
    bool red[AMP_MAX_RANK] = {false};
    if (naxes >= 0) {
        tn_ints(t, "axes", naxes, axes);
        for (int i = 0; i < naxes; i++) red[axes[i] < 0 ? axes[i] + rank : axes[i]] = true;
        if (naxes == 0)
            for (int d = 0; d < rank; d++) red[d] = true;
    } else {
        red[0] = red[2] = red[3] = true;
    }
    cr_assert_eq(tn_run(t, 1, &x, 1, &y), AMP_OK, "%s", amp_context_last_error(ctx));
    cr_assert_eq(y->dtype, dt);
    mvn_ref(x, red, ref);
    char what[96];
    snprintf(what, sizeof what, "MeanVarianceNormalization rank %d, %d axes", rank, naxes);
    expect_near(y, ref, tol_of(dt), what);
    tn_free(t);
    amp_tensor_destroy(x);
    amp_tensor_destroy(y);
    amp_tensor_destroy(ref);
}

Test(mvn, every_dtype_and_axes) {
    const int64_t d4[4] = {2, 3, 4, 5}, d2[2] = {5, 6}, d3[3] = {3, 1, 4}, d5[5] = {2, 3, 1, 3, 2};
    const int64_t a23[2] = {2, 3}, a1[1] = {1}, am1[1] = {-1}, aall[4] = {0, 1, 2, 3}, a0[1] = {0};
    const int64_t a02[2] = {0, 2}, a13[2] = {1, 3}, a_mixed[3] = {-5, 2, 4};
    for (int ti = 0; ti < N_FLOAT; ti++) {
        const amp_dtype dt = float_types[ti];
        for (int op = 0; op < 2; op++) {
            const int64_t opset = op ? 13 : 9;
            check_mvn(opset, dt, 4, d4, -1, NULL, 1, -2, 3);
            check_mvn(opset, dt, 4, d4, 2, a23, 1, -2, 3);
            check_mvn(opset, dt, 4, d4, 1, a1, 2, -2, 3);
            check_mvn(opset, dt, 4, d4, 1, am1, 1, -2, 3);
            check_mvn(opset, dt, 4, d4, 4, aall, 1, -2, 3);
            check_mvn(opset, dt, 4, d4, 0, a0, 1, -2, 3);   /* empty list: every axis */
            check_mvn(opset, dt, 4, d4, 2, a13, 2, -2, 3);  /* two separate reduced runs */
            check_mvn(opset, dt, 2, d2, 1, a0, 1, -2, 3);   /* strided inner run */
            check_mvn(opset, dt, 3, d3, 2, a02, 1, 5, 9);   /* reduced dims around a size-1 dim */
            check_mvn(opset, dt, 5, d5, 3, a_mixed, 1, -2, 3);
        }
    }
}

Test(mvn, threaded_large) {
    const int64_t d[4] = {4, 8, 32, 40};
    const int64_t a23[2] = {2, 3};
    for (int ti = 0; ti < N_FLOAT; ti++) {
        check_mvn(13, float_types[ti], 4, d, -1, NULL, 4, -1, 2);
        check_mvn(13, float_types[ti], 4, d, 2, a23, 3, -1, 2);
    }
}

Test(mvn, constant_slice_is_zero) {
    /* a slice with no spread: (x - mean) = 0 over (0 + 1e-9) */
    const int64_t d[4] = {2, 2, 3, 3};
    double v[36];
    for (int i = 0; i < 36; i++) v[i] = (i / 9) % 2 ? 3.0 : 1.0 + (i % 9) * (i % 9) * 0.25; /* channel 1 constant */
    amp_tensor *x = tt_make(ctx, AMP_F32, 4, d, v), *y = NULL;
    amp_test_node *t = tn_new(ctx, "MeanVarianceNormalization");
    const int64_t a23[2] = {2, 3};
    tn_ints(t, "axes", 2, a23);
    cr_assert_eq(tn_run(t, 1, &x, 1, &y), AMP_OK, "%s", amp_context_last_error(ctx));
    for (int i = 0; i < 36; i++) {
        if ((i / 9) % 2) cr_assert_eq(tt_get(y, i), 0.0, "y[%d] = %g", i, tt_get(y, i));
        else cr_assert(fabs(tt_get(y, i)) > 0.05, "y[%d] = %g", i, tt_get(y, i));
    }
    tn_free(t);
    amp_tensor_destroy(x);
    amp_tensor_destroy(y);
}

Test(mvn, op_table) {
    amp_op op = amp_op_lookup("MeanVarianceNormalization", "");
    cr_assert_neq(op, AMP_OP_UNKNOWN);
    cr_assert_eq(amp_op_table[op].cast_class, AMP_CLASS_DENY);
    cr_assert_eq(amp_op_table[op].opset_lo, 9);
    cr_assert(amp_op_table[op].has_grad);
}

Test(mvn, bad_inputs) {
    const int64_t d3[3] = {2, 3, 4}, d4[4] = {2, 3, 4, 5};
    amp_tensor *x3 = rnd(AMP_F32, 3, d3, -1, 1), *x4 = rnd(AMP_F32, 4, d4, -1, 1), *xi = rnd(AMP_I32, 4, d4, -5, 5);
    const int64_t dup[2] = {1, -2}, big[1] = {4}, neg[1] = {-5};
    amp_test_node *t = tn_new(ctx, "MeanVarianceNormalization");
    expect_fail(t, 1, &x3, 1, AMP_ERR_INVALID_GRAPH, "default axes on rank 3");
    tn_free(t);
    t = tn_new(ctx, "MeanVarianceNormalization");
    tn_ints(t, "axes", 2, dup);
    expect_fail(t, 1, &x3, 1, AMP_ERR_INVALID_GRAPH, "duplicate axis");
    tn_free(t);
    t = tn_new(ctx, "MeanVarianceNormalization");
    tn_ints(t, "axes", 1, big);
    expect_fail(t, 1, &x4, 1, AMP_ERR_INVALID_GRAPH, "axis 4 on rank 4");
    tn_free(t);
    t = tn_new(ctx, "MeanVarianceNormalization");
    tn_ints(t, "axes", 1, neg);
    expect_fail(t, 1, &x4, 1, AMP_ERR_INVALID_GRAPH, "axis -5 on rank 4");
    tn_free(t);
    t = tn_new(ctx, "MeanVarianceNormalization");
    expect_fail(t, 1, &xi, 1, AMP_ERR_UNSUPPORTED, "int32 X");
    expect_fail(t, 1, &x4, 2, AMP_ERR_INVALID_GRAPH, "two outputs");
    tn_free(t);
    amp_tensor_destroy(x3);
    amp_tensor_destroy(x4);
    amp_tensor_destroy(xi);
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

Test(norm, layer_norm_every_axis_and_dtype) {
    const int64_t dims[4] = {2, 3, 5, 7};
    for (int di = 0; di < N_FLOATS; di++)
        for (int axis = -4; axis < 4; axis++) {
            int a = axis < 0 ? axis + 4 : axis;
            ln_case c = {4, dims, a, 4 - a, 4 - a, dims + a, dims + a, 1e-5};
            check_layer_norm(&c, FLOATS[di], FLOATS[di], 0, 1, axis);
        }
}

Test(norm, layer_norm_variants) {
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

Test(norm, layer_norm_f16_large_values_no_nan) {
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

Test(norm, layer_norm_bad_inputs) {
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

Test(norm, batch_norm_inference_every_dtype_and_rank) {
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

Test(norm, batch_norm_training_mode) {
    for (int di = 0; di < N_FLOATS; di++) check_bn_training(FLOATS[di], FLOATS[di], FLOATS[di], 0.9, 15, 3);
    check_bn_training(AMP_F32, AMP_F32, AMP_F32, 0.7, 14, 3);
    /* opset 15: scale/B and mean/var each in their own float type */
    check_bn_training(AMP_F16, AMP_F32, AMP_F32, 0.9, 15, 3);
    check_bn_training(AMP_BF16, AMP_BF16, AMP_F64, 0.5, 15, 3);
    /* opsets 7-13 train when the statistics outputs are asked for */
    check_bn_training(AMP_F32, AMP_F32, AMP_F32, 0.9, 9, 5);
}

Test(norm, batch_norm_spatial0_per_activation) {
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

Test(norm, batch_norm_bad_inputs) {
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

Test(norm, instance_norm_every_dtype) {
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

Test(norm, instance_norm_bad_inputs) {
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
/* threaded paths and empty tensors                                                            */

Test(norm, large_inputs_take_the_parallel_paths) {
    const int64_t ds[2] = {67, 301};
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
}

Test(norm, zero_sized_inputs_run_cleanly) {
    const int64_t dx[3] = {0, 3, 4}, dr[3] = {2, 0, 4};
    amp_tensor *x = tt_make(ctx, AMP_F32, 3, dx, NULL), *xr = tt_make(ctx, AMP_F16, 3, dr, NULL);
    amp_tensor *p = param(AMP_F32, 3, 0.5, 1, 1), *p4 = param(AMP_F16, 4, 0.5, 1, 2);
    amp_tensor *out[3] = {0};
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
    amp_tensor_destroy(x);
    amp_tensor_destroy(xr);
    amp_tensor_destroy(p);
    amp_tensor_destroy(p4);
}

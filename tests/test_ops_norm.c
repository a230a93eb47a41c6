/* GroupNormalization (opsets 18 and 21), LRN and MeanVarianceNormalization against reference
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

static void expect_close(const amp_tensor *y, const amp_tensor *ref, double tol, const char *what) {
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
    expect_close(y, ref, tol > 0 ? tol : tol_of(dt), what);
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
    expect_close(y, ref, 1e-6, "GroupNormalization stash double");
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
    expect_close(y, ref, tol_of(dt), what);
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
    expect_close(y, ref, tol_of(dt), what);
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

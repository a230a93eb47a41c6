/* Elementwise ops: binary with broadcasting, variadic, Where, unary, Clip, Dropout, Cast.
 * References are computed here with plain loops in double or int64, from the stored (already
 * rounded) input values. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "backends/cpu/cpu.h"
#include "backends/cpu/kernels.h"
#include "testutil.h"


static amp_context *ctx;
static void setup(void) { cr_assert_eq(amp_context_create(NULL, &ctx), AMP_OK); }
static void teardown(void) { amp_context_destroy(ctx); }
TestSuite(elementwise, .init = setup, .fini = teardown);

static const amp_dtype all_floats[] = {AMP_F32, AMP_F64, AMP_F16, AMP_BF16};
static const amp_dtype all_ints[] = {AMP_I64, AMP_I32, AMP_I8, AMP_U8, AMP_I16, AMP_U16, AMP_U32, AMP_U64};
#define N_INTS ((int)(sizeof all_ints / sizeof all_ints[0]))
static bool is_unsigned(amp_dtype t) { return t == AMP_U8 || t == AMP_U16 || t == AMP_U32 || t == AMP_U64; }

/* Tolerance on the normalised squared error, by output dtype. */
static double thr(amp_dtype dt) {
    switch (dt) {
    case AMP_F64: return 1e-24;
    case AMP_F32: return 1e-11;
    case AMP_F16: return 2e-6;
    case AMP_BF16: return 1e-4;
    default: return 0;
    }
}

/* Index into `in` of output element i under numpy broadcasting (trailing alignment). */
static int64_t bidx(const amp_tensor *in, const amp_tensor *out, int64_t i) {
    int64_t idx = 0, stride = 1;
    for (int d = out->rank - 1; d >= 0; d--) {
        int64_t coord = i % out->dims[d];
        i /= out->dims[d];
        int e = d - (out->rank - in->rank);
        if (e < 0) continue;
        if (in->dims[e] != 1) idx += coord * stride;
        stride *= in->dims[e];
    }
    return idx;
}

static void expect_dims(const amp_tensor *t, int rank, const int64_t *dims) {
    cr_assert_eq(t->rank, rank, "rank %d, expected %d", t->rank, rank);
    for (int i = 0; i < rank; i++) cr_assert_eq(t->dims[i], dims[i], "dim %d is %lld, expected %lld", i, (long long)t->dims[i], (long long)dims[i]);
}

/* Expected numpy broadcast shape, computed independently of the code under test. */
static void np_shape(int ra, const int64_t *a, int rb, const int64_t *b, int *r, int64_t *o) {
    *r = ra > rb ? ra : rb;
    for (int i = 0; i < *r; i++) {
        int64_t x = i - (*r - ra) >= 0 ? a[i - (*r - ra)] : 1, y = i - (*r - rb) >= 0 ? b[i - (*r - rb)] : 1;
        o[i] = x == 1 ? y : x;
    }
}

static amp_status run(amp_test_node *t, int nin, amp_tensor *const *in, int nout, amp_tensor **out) {
    return tn_run(t, nin, in, nout, out);
}

/* Run op on one node with the given inputs, kernel writing over in[0] (in place). */
static amp_status run_inplace(const char *op, int nin, amp_tensor **in) {
    amp_test_node *t = tn_new(ctx, op);
    amp_tensor *out[1] = {in[0]};
    amp_kernel k = {.ctx = ctx, .n = &t->node, .opset = 17, .nin = nin, .nout = 1, .in = in, .out = out, .threads = 2};
    amp_status s = tn_run_kernel(&k);
    tn_free(t);
    return s;
}

static void destroy_all(amp_tensor **t, int n) {
    for (int i = 0; i < n; i++) amp_tensor_destroy(t[i]);
}

/* ---- binary arithmetic ----------------------------------------------------------------------- */

static double ref_float(const char *op, double x, double y) {
    if (!strcmp(op, "Add")) return x + y;
    if (!strcmp(op, "Sub")) return x - y;
    if (!strcmp(op, "Mul")) return x * y;
    if (!strcmp(op, "Div")) return x / y;
    if (!strcmp(op, "Pow")) return pow(x, y);
    if (!strcmp(op, "Mod")) return fmod(x, y);
    if (!strcmp(op, "PRelu")) return x < 0 ? x * y : x;
    if (!strcmp(op, "Min")) return x < y ? x : y;
    if (!strcmp(op, "Max")) return x > y ? x : y;
    cr_assert_fail("no reference for %s", op);
    return 0;
}

static int64_t ref_int(const char *op, int64_t x, int64_t y, int fmod_flag) {
    if (!strcmp(op, "Add")) return x + y;
    if (!strcmp(op, "Sub")) return x - y;
    if (!strcmp(op, "Mul")) return x * y;
    if (!strcmp(op, "Div")) return x / y;
    if (!strcmp(op, "PRelu")) return x < 0 ? x * y : x;
    if (!strcmp(op, "Min")) return x < y ? x : y;
    if (!strcmp(op, "Max")) return x > y ? x : y;
    if (!strcmp(op, "Pow")) {
        int64_t r = 1;
        for (int64_t i = 0; i < y; i++) r *= x;
        return r;
    }
    if (!strcmp(op, "Mod")) {
        int64_t r = x - (x / y) * y;
        if (!fmod_flag && r != 0 && ((r < 0) != (y < 0))) r += y;
        return r;
    }
    cr_assert_fail("no reference for %s", op);
    return 0;
}

/* Operands with values suited to op: no zero divisors, moderate powers. */
static void operands(const char *op, amp_dtype dt, int ra, const int64_t *da, int rb, const int64_t *db,
                     amp_tensor **a, amp_tensor **b) {
    bool is_int = amp_dtype_is_int(dt);
    bool u8 = is_unsigned(dt);
    if (!strcmp(op, "Pow")) {
        *a = is_int ? tt_rand(ctx, dt, ra, da, u8 ? 0 : -5, 6, 11) : tt_rand(ctx, dt, ra, da, 0.2, 3, 11);
        *b = is_int ? tt_rand(ctx, dt, rb, db, 0, 5, 12) : tt_rand(ctx, dt, rb, db, -2, 3, 12);
        return;
    }
    double lo = u8 ? 0 : dt == AMP_I8 ? -10 : -100, hi = u8 ? 15 : dt == AMP_I8 ? 10 : 100;
    if (!is_int) lo = -4, hi = 4;
    *a = tt_rand(ctx, dt, ra, da, lo, hi, 21);
    *b = tt_rand(ctx, dt, rb, db, lo, hi, 22);
    if (!strcmp(op, "Div") || !strcmp(op, "Mod"))
        for (int64_t i = 0; i < (*b)->numel; i++)
            if (fabs(tt_get(*b, i)) < 0.5) amp_st(dt, (*b)->data, i, 3.0);
}

static void bin_case(const char *op, amp_dtype dt, int ra, const int64_t *da, int rb, const int64_t *db, int fmod_flag) {
    amp_tensor *a, *b, *out[1];
    operands(op, dt, ra, da, rb, db, &a, &b);
    amp_test_node *t = tn_new(ctx, op);
    if (!strcmp(op, "Mod")) tn_int(t, "fmod", fmod_flag);
    amp_tensor *in[2] = {a, b};
    cr_assert_eq(run(t, 2, in, 1, out), AMP_OK, "%s %s: %s", op, amp_dtype_name(dt), amp_context_last_error(ctx));
    int r;
    int64_t dims[AMP_MAX_RANK];
    np_shape(ra, da, rb, db, &r, dims);
    expect_dims(out[0], r, dims);
    cr_assert_eq(out[0]->dtype, dt);
    amp_tensor *ref;
    bool is_int = amp_dtype_is_int(dt);
    cr_assert_eq(amp_tensor_create(ctx, is_int ? dt : AMP_F64, r, dims, &ref), AMP_OK);
    for (int64_t i = 0; i < ref->numel; i++) {
        int64_t ia = bidx(a, out[0], i), ib = bidx(b, out[0], i);
        if (is_int) amp_sti(dt, ref->data, i, ref_int(op, amp_ldi(dt, a->data, ia), amp_ldi(dt, b->data, ib), fmod_flag));
        else amp_st(AMP_F64, ref->data, i, ref_float(op, tt_get(a, ia), tt_get(b, ib)));
    }
    if (is_int) cr_assert(tt_equal(out[0], ref), "%s %s differs", op, amp_dtype_name(dt));
    else cr_assert_lt(tt_nse(out[0], ref), thr(dt), "%s %s nse %g", op, amp_dtype_name(dt), tt_nse(out[0], ref));
    amp_tensor *all[4] = {a, b, out[0], ref};
    destroy_all(all, 4);
    tn_free(t);
}

/* Shape pairs: same shape, row, column, scalar, both-sided, rank 0, rank 8, zero-sized. */
static const struct {
    int ra, rb;
    int64_t da[AMP_MAX_RANK], db[AMP_MAX_RANK];
} shapes[] = {
    {3, 3, {5, 7, 11}, {5, 7, 11}},
    {3, 1, {5, 7, 11}, {11}},
    {2, 2, {13, 9}, {13, 1}},
    {3, 2, {5, 1, 11}, {7, 1}},
    {0, 2, {0}, {3, 4}},
    {2, 1, {3, 4}, {1}},
    {4, 3, {2, 3, 1, 5}, {3, 4, 1}},
    {8, 6, {2, 1, 3, 1, 2, 3, 1, 2}, {3, 1, 2, 1, 1, 2}},
    {2, 1, {0, 3}, {3}},
    {2, 2, {300, 257}, {1, 257}}, /* big enough for the threaded path */
    {0, 1, {0}, {1}},
    {0, 0, {0}, {0}},
};
#define N_SHAPES ((int)(sizeof shapes / sizeof shapes[0]))

static void bin_all_shapes(const char *op, amp_dtype dt, int fmod_flag) {
    for (int s = 0; s < N_SHAPES; s++) {
        bin_case(op, dt, shapes[s].ra, shapes[s].da, shapes[s].rb, shapes[s].db, fmod_flag);
        bin_case(op, dt, shapes[s].rb, shapes[s].db, shapes[s].ra, shapes[s].da, fmod_flag);
    }
}

Test(elementwise, arith_float_all_dtypes_and_shapes) {
    const char *ops[] = {"Add", "Sub", "Mul", "Div", "Pow", "Min", "Max"};
    for (int o = 0; o < 7; o++)
        for (int d = 0; d < 4; d++) bin_all_shapes(ops[o], all_floats[d], 0);
}

Test(elementwise, arith_int_all_dtypes_and_shapes) {
    const char *ops[] = {"Add", "Sub", "Mul", "Div", "Pow", "Min", "Max"};
    for (int o = 0; o < 7; o++)
        for (int d = 0; d < N_INTS; d++) bin_all_shapes(ops[o], all_ints[d], 0);
}

Test(elementwise, mod_int_both_sign_rules) {
    for (int d = 0; d < N_INTS; d++) {
        bin_all_shapes("Mod", all_ints[d], 0);
        bin_all_shapes("Mod", all_ints[d], 1);
    }
    /* the ONNX example: int32 mixed signs, fmod=0 */
    int64_t dims[1] = {6};
    amp_tensor *a = tt_make(ctx, AMP_I32, 1, dims, (double[]){-4, 7, 5, 4, -7, 8});
    amp_tensor *b = tt_make(ctx, AMP_I32, 1, dims, (double[]){2, -3, 8, -2, 3, 5});
    amp_tensor *want = tt_make(ctx, AMP_I32, 1, dims, (double[]){0, -2, 5, 0, 2, 3});
    amp_tensor *in[2] = {a, b}, *out[1];
    amp_test_node *t = tn_new(ctx, "Mod");
    cr_assert_eq(run(t, 2, in, 1, out), AMP_OK);
    cr_assert(tt_equal(out[0], want));
    amp_tensor *all[4] = {a, b, want, out[0]};
    destroy_all(all, 4);
    tn_free(t);
}

Test(elementwise, mod_float_requires_fmod) {
    for (int d = 0; d < 4; d++) bin_all_shapes("Mod", all_floats[d], 1);
    int64_t dims[1] = {3};
    amp_tensor *a = tt_rand(ctx, AMP_F32, 1, dims, -3, 3, 1), *b = tt_rand(ctx, AMP_F32, 1, dims, 1, 3, 2);
    amp_tensor *in[2] = {a, b}, *out[1];
    amp_test_node *t = tn_new(ctx, "Mod");
    cr_assert_eq(run(t, 2, in, 1, out), AMP_ERR_INVALID_GRAPH);
    tn_free(t);
    amp_tensor *all[2] = {a, b};
    destroy_all(all, 2);
}

Test(elementwise, int_div_truncates_and_pow_exact) {
    int64_t dims[1] = {6};
    amp_tensor *a = tt_make(ctx, AMP_I64, 1, dims, (double[]){7, -7, 7, -7, 1, -3});
    amp_tensor *b = tt_make(ctx, AMP_I64, 1, dims, (double[]){2, 2, -2, -2, 5, 3});
    amp_tensor *in[2] = {a, b}, *out[1];
    amp_test_node *t = tn_new(ctx, "Div");
    cr_assert_eq(run(t, 2, in, 1, out), AMP_OK);
    const int64_t want_div[6] = {3, -3, -3, 3, 0, -1};
    for (int i = 0; i < 6; i++) cr_assert_eq(((int64_t *)out[0]->data)[i], want_div[i], "i=%d", i);
    amp_tensor_destroy(out[0]);
    tn_free(t);
    /* 3^39 needs all 63 bits: exact, where a double round trip would not be */
    amp_tensor *p = tt_make(ctx, AMP_I64, 1, dims, (double[]){3, -2, 2, 1, -1, 5});
    amp_tensor *e = tt_make(ctx, AMP_I64, 1, dims, (double[]){39, 3, -1, -4, -3, 0});
    amp_tensor *in2[2] = {p, e};
    t = tn_new(ctx, "Pow");
    cr_assert_eq(run(t, 2, in2, 1, out), AMP_OK);
    const int64_t want_pow[6] = {4052555153018976267LL, -8, 0, 1, -1, 1};
    for (int i = 0; i < 6; i++) cr_assert_eq(((int64_t *)out[0]->data)[i], want_pow[i], "i=%d", i);
    amp_tensor *all[5] = {a, b, p, e, out[0]};
    destroy_all(all, 5);
    tn_free(t);
}

/* Pow with an exponent of another dtype (opset 12+), against double references. */
Test(elementwise, pow_mixed_dtypes) {
    int64_t da[2] = {3, 5}, db[1] = {5};
    const amp_dtype bases[] = {AMP_F32, AMP_F16, AMP_F64, AMP_I32, AMP_I64};
    const amp_dtype exps[] = {AMP_I64, AMP_I32, AMP_F32, AMP_F64, AMP_U8};
    for (int i = 0; i < 5; i++)
        for (int j = 0; j < 5; j++) {
            if (bases[i] == exps[j]) continue;
            bool ib = amp_dtype_is_int(bases[i]);
            amp_tensor *a = tt_rand(ctx, bases[i], 2, da, ib ? 1 : 0.3, ib ? 5 : 2.5, 3);
            amp_tensor *b = tt_rand(ctx, exps[j], 1, db, 0, 4, 4);
            amp_tensor *in[2] = {a, b}, *out[1];
            amp_test_node *t = tn_new(ctx, "Pow");
            cr_assert_eq(run(t, 2, in, 1, out), AMP_OK, "%s", amp_context_last_error(ctx));
            cr_assert_eq(out[0]->dtype, bases[i]);
            amp_tensor *ref;
            cr_assert_eq(amp_tensor_create(ctx, ib ? bases[i] : AMP_F64, 2, da, &ref), AMP_OK);
            for (int64_t k = 0; k < 15; k++) {
                double v = pow(tt_get(a, k), tt_get(b, k % 5));
                if (ib) amp_sti(bases[i], ref->data, k, (int64_t)v);
                else amp_st(AMP_F64, ref->data, k, v);
            }
            if (ib) cr_assert(tt_equal(out[0], ref), "%s^%s", amp_dtype_name(bases[i]), amp_dtype_name(exps[j]));
            else cr_assert_lt(tt_nse(out[0], ref), thr(bases[i]), "%s^%s", amp_dtype_name(bases[i]), amp_dtype_name(exps[j]));
            amp_tensor *all[4] = {a, b, out[0], ref};
            destroy_all(all, 4);
            tn_free(t);
        }
}

Test(elementwise, pow_mixed_rejected_before_opset_12) {
    int64_t d[1] = {4};
    amp_tensor *a = tt_rand(ctx, AMP_F32, 1, d, 1, 2, 1), *b = tt_rand(ctx, AMP_I64, 1, d, 1, 3, 2);
    amp_tensor *in[2] = {a, b}, *out[1];
    amp_test_node *t = tn_new(ctx, "Pow");
    t->opset = 11;
    cr_assert_eq(run(t, 2, in, 1, out), AMP_ERR_UNSUPPORTED);
    tn_free(t);
    amp_tensor *all[2] = {a, b};
    destroy_all(all, 2);
}

Test(elementwise, binary_bad_inputs) {
    int64_t d1[2] = {3, 4}, d2[2] = {3, 5};
    amp_tensor *a = tt_rand(ctx, AMP_F32, 2, d1, -1, 1, 1), *b = tt_rand(ctx, AMP_F32, 2, d2, -1, 1, 2);
    amp_tensor *c = tt_rand(ctx, AMP_F64, 2, d1, -1, 1, 3), *bo = tt_rand(ctx, AMP_BOOL, 2, d1, 0, 2, 4);
    amp_tensor *out[1];
    amp_test_node *t = tn_new(ctx, "Add");
    cr_assert_eq(run(t, 2, (amp_tensor *[]){a, b}, 1, out), AMP_ERR_SHAPE);
    cr_assert_eq(run(t, 2, (amp_tensor *[]){a, c}, 1, out), AMP_ERR_SHAPE);
    cr_assert_eq(run(t, 2, (amp_tensor *[]){bo, bo}, 1, out), AMP_ERR_UNSUPPORTED);
    cr_assert_eq(run(t, 1, (amp_tensor *[]){a}, 1, out), AMP_ERR_INVALID_GRAPH);
    cr_assert(strstr(amp_context_last_error(ctx), "test") != NULL, "message names the node");
    tn_free(t);
    t = tn_new(ctx, "And");
    cr_assert_eq(run(t, 2, (amp_tensor *[]){a, a}, 1, out), AMP_ERR_UNSUPPORTED);
    tn_free(t);
    t = tn_new(ctx, "Less");
    cr_assert_eq(run(t, 2, (amp_tensor *[]){bo, bo}, 1, out), AMP_ERR_UNSUPPORTED);
    tn_free(t);
    t = tn_new(ctx, "PRelu");
    cr_assert_eq(run(t, 2, (amp_tensor *[]){bo, bo}, 1, out), AMP_ERR_UNSUPPORTED);
    tn_free(t);
    amp_tensor *all[4] = {a, b, c, bo};
    destroy_all(all, 4);
}

Test(elementwise, broadcast_overflow_rejected) {
    /* [2^40, 1] x [1, 2^40] has 2^80 elements: inference must say so rather than wrap. Shapes
     * only: values unknown at plan time. */
    amp_tinfo a = {.dtype = AMP_F32, .rank = 2, .dims = {(int64_t)1 << 40, 1}};
    amp_tinfo b = {.dtype = AMP_F32, .rank = 2, .dims = {1, (int64_t)1 << 40}};
    amp_tinfo o = {0};
    const amp_tinfo *in[2] = {&a, &b};
    amp_tinfo *out[1] = {&o};
    amp_test_node *t = tn_new(ctx, "Mul");
    amp_infer c = {.ctx = ctx, .n = &t->node, .opset = 17, .nin = 2, .nout = 1, .in = in, .out = out};
    cr_assert_eq(amp_infer_binary(&c), AMP_ERR_OVERFLOW);
    tn_free(t);
}

Test(elementwise, legacy_broadcast_attr_opset6) {
    int64_t da[4] = {2, 3, 4, 5}, db[2] = {3, 4};
    amp_tensor *a = tt_rand(ctx, AMP_F32, 4, da, -1, 1, 1), *b = tt_rand(ctx, AMP_F32, 2, db, -1, 1, 2), *out[1];
    amp_test_node *t = tn_new(ctx, "Add");
    t->opset = 6;
    tn_int(t, "broadcast", 1);
    tn_int(t, "axis", 1);
    cr_assert_eq(run(t, 2, (amp_tensor *[]){a, b}, 1, out), AMP_OK, "%s", amp_context_last_error(ctx));
    expect_dims(out[0], 4, da);
    for (int64_t i = 0; i < a->numel; i++) {
        int64_t j = (i / 5) % 12; /* dims 1 and 2 of a */
        cr_assert_float_eq(tt_get(out[0], i), (float)(tt_get(a, i) + tt_get(b, j)), 1e-6);
    }
    amp_tensor_destroy(out[0]);
    tn_free(t);
    /* broadcast=1 without axis aligns trailing dims */
    int64_t dc[1] = {5};
    amp_tensor *c = tt_rand(ctx, AMP_F32, 1, dc, -1, 1, 3);
    t = tn_new(ctx, "Sub");
    t->opset = 6;
    tn_int(t, "broadcast", 1);
    cr_assert_eq(run(t, 2, (amp_tensor *[]){a, c}, 1, out), AMP_OK, "%s", amp_context_last_error(ctx));
    for (int64_t i = 0; i < a->numel; i++) cr_assert_float_eq(tt_get(out[0], i), (float)(tt_get(a, i) - tt_get(c, i % 5)), 1e-6);
    amp_tensor_destroy(out[0]);
    amp_tensor_destroy(c);
    tn_free(t);
    /* without broadcast=1 the shapes must agree */
    t = tn_new(ctx, "Add");
    t->opset = 6;
    cr_assert_eq(run(t, 2, (amp_tensor *[]){a, b}, 1, out), AMP_ERR_SHAPE);
    tn_free(t);
    amp_tensor *all[2] = {a, b};
    destroy_all(all, 2);
}

Test(elementwise, inplace_binary) {
    for (int d = 0; d < 4; d++) {
        amp_dtype dt = all_floats[d];
        int64_t da[2] = {37, 41}, db[1] = {41};
        amp_tensor *a = tt_rand(ctx, dt, 2, da, -2, 2, 7), *b = tt_rand(ctx, dt, 1, db, -2, 2, 8), *ref;
        cr_assert_eq(amp_tensor_create(ctx, AMP_F64, 2, da, &ref), AMP_OK);
        for (int64_t i = 0; i < a->numel; i++) amp_st(AMP_F64, ref->data, i, tt_get(a, i) * tt_get(b, i % 41));
        cr_assert_eq(run_inplace("Mul", 2, (amp_tensor *[]){a, b}), AMP_OK);
        cr_assert_lt(tt_nse(a, ref), thr(dt));
        amp_tensor *all[3] = {a, b, ref};
        destroy_all(all, 3);
    }
}

/* ---- PRelu ------------------------------------------------------------------------------- */

Test(elementwise, prelu_slope_broadcast) {
    const amp_dtype dts[] = {AMP_F32, AMP_F64, AMP_F16, AMP_BF16, AMP_I32, AMP_I64};
    int64_t dx[4] = {2, 3, 5, 7}, ds[3] = {3, 1, 1};
    for (int d = 0; d < 6; d++) {
        amp_dtype dt = dts[d];
        bool is_int = amp_dtype_is_int(dt);
        amp_tensor *x = tt_rand(ctx, dt, 4, dx, -5, 5, 1), *s = tt_rand(ctx, dt, 3, ds, is_int ? -3 : -1, 3, 2), *out[1];
        amp_test_node *t = tn_new(ctx, "PRelu");
        cr_assert_eq(run(t, 2, (amp_tensor *[]){x, s}, 1, out), AMP_OK);
        expect_dims(out[0], 4, dx);
        for (int64_t i = 0; i < x->numel; i++) {
            double v = tt_get(x, i), sl = tt_get(s, (i / 35) % 3);
            double want = v < 0 ? v * sl : v;
            if (is_int) cr_assert_eq(tt_get(out[0], i), want);
            else cr_assert(fabs(tt_get(out[0], i) - want) <= 1e-2 * fabs(want) + 1e-6, "%s i=%lld", amp_dtype_name(dt), (long long)i);
        }
        amp_tensor *all[3] = {x, s, out[0]};
        destroy_all(all, 3);
        tn_free(t);
    }
}

Test(elementwise, prelu_legacy_channel_slope_and_bad) {
    int64_t dx[3] = {2, 4, 3}, ds[1] = {4};
    amp_tensor *x = tt_rand(ctx, AMP_F32, 3, dx, -5, 5, 1), *s = tt_rand(ctx, AMP_F32, 1, ds, 0.1, 1, 2), *out[1];
    amp_test_node *t = tn_new(ctx, "PRelu");
    t->opset = 6;
    cr_assert_eq(run(t, 2, (amp_tensor *[]){x, s}, 1, out), AMP_OK, "%s", amp_context_last_error(ctx));
    for (int64_t i = 0; i < x->numel; i++) {
        double v = tt_get(x, i), sl = tt_get(s, (i / 3) % 4);
        cr_assert_float_eq(tt_get(out[0], i), (float)(v < 0 ? v * sl : v), 1e-6);
    }
    amp_tensor_destroy(out[0]);
    tn_free(t);
    /* from opset 7 a [4] slope must broadcast numpy-style onto [2,4,3]: it does not */
    t = tn_new(ctx, "PRelu");
    cr_assert_eq(run(t, 2, (amp_tensor *[]){x, s}, 1, out), AMP_ERR_SHAPE);
    /* and the slope may not grow the output */
    int64_t dbig[4] = {5, 2, 4, 3};
    amp_tensor *sb = tt_rand(ctx, AMP_F32, 4, dbig, 0, 1, 3);
    cr_assert_eq(run(t, 2, (amp_tensor *[]){x, sb}, 1, out), AMP_ERR_SHAPE);
    tn_free(t);
    amp_tensor *all[3] = {x, s, sb};
    destroy_all(all, 3);
}

/* ---- comparisons and logic ---------------------------------------------------------------- */

Test(elementwise, compare_all_dtypes) {
    const char *ops[] = {"Equal", "Less", "Greater", "LessOrEqual", "GreaterOrEqual"};
    const amp_dtype dts[] = {AMP_F32, AMP_F64, AMP_F16, AMP_BF16, AMP_I64, AMP_I32, AMP_I8, AMP_U8, AMP_BOOL};
    int64_t da[3] = {4, 1, 6}, db[2] = {5, 6};
    for (int o = 0; o < 5; o++)
        for (int d = 0; d < 9; d++) {
            amp_dtype dt = dts[d];
            if (dt == AMP_BOOL && o != 0) continue;
            /* few distinct values so that equality happens */
            amp_tensor *a = tt_rand(ctx, dt, 3, da, 0, dt == AMP_BOOL ? 2 : 4, 5), *b = tt_rand(ctx, dt, 2, db, 0, dt == AMP_BOOL ? 2 : 4, 6);
            if (amp_dtype_is_float(dt))
                for (int64_t i = 0; i < a->numel; i++) amp_st(dt, a->data, i, floor(tt_get(a, i)) - 1.5);
            if (amp_dtype_is_float(dt))
                for (int64_t i = 0; i < b->numel; i++) amp_st(dt, b->data, i, floor(tt_get(b, i)) - 1.5);
            amp_tensor *out[1];
            amp_test_node *t = tn_new(ctx, ops[o]);
            cr_assert_eq(run(t, 2, (amp_tensor *[]){a, b}, 1, out), AMP_OK, "%s %s: %s", ops[o], amp_dtype_name(dt), amp_context_last_error(ctx));
            cr_assert_eq(out[0]->dtype, AMP_BOOL);
            int64_t want_dims[3] = {4, 5, 6};
            expect_dims(out[0], 3, want_dims);
            for (int64_t i = 0; i < out[0]->numel; i++) {
                double x = tt_get(a, bidx(a, out[0], i)), y = tt_get(b, bidx(b, out[0], i));
                int w = o == 0 ? x == y : o == 1 ? x < y : o == 2 ? x > y : o == 3 ? x <= y : x >= y;
                cr_assert_eq(((uint8_t *)out[0]->data)[i], w, "%s %s i=%lld", ops[o], amp_dtype_name(dt), (long long)i);
            }
            amp_tensor *all[3] = {a, b, out[0]};
            destroy_all(all, 3);
            tn_free(t);
        }
}

Test(elementwise, compare_nan) {
    int64_t d[1] = {3};
    amp_tensor *a = tt_make(ctx, AMP_F32, 1, d, (double[]){NAN, 1, NAN});
    amp_tensor *b = tt_make(ctx, AMP_F32, 1, d, (double[]){NAN, NAN, 1});
    const char *ops[] = {"Equal", "Less", "GreaterOrEqual"};
    for (int o = 0; o < 3; o++) {
        amp_tensor *out[1];
        amp_test_node *t = tn_new(ctx, ops[o]);
        cr_assert_eq(run(t, 2, (amp_tensor *[]){a, b}, 1, out), AMP_OK);
        for (int i = 0; i < 3; i++) cr_assert_eq(((uint8_t *)out[0]->data)[i], 0);
        amp_tensor_destroy(out[0]);
        tn_free(t);
    }
    amp_tensor *all[2] = {a, b};
    destroy_all(all, 2);
}

Test(elementwise, logic_ops) {
    const char *ops[] = {"And", "Or", "Xor"};
    int64_t da[4] = {3, 4, 5, 6}, db[2] = {5, 6};
    amp_tensor *a = tt_rand(ctx, AMP_BOOL, 4, da, 0, 2, 1), *b = tt_rand(ctx, AMP_BOOL, 2, db, 0, 2, 2);
    for (int o = 0; o < 3; o++) {
        amp_tensor *out[1];
        amp_test_node *t = tn_new(ctx, ops[o]);
        cr_assert_eq(run(t, 2, (amp_tensor *[]){a, b}, 1, out), AMP_OK);
        cr_assert_eq(out[0]->dtype, AMP_BOOL);
        expect_dims(out[0], 4, da);
        for (int64_t i = 0; i < out[0]->numel; i++) {
            int x = tt_get(a, i) != 0, y = tt_get(b, i % 30) != 0;
            int w = o == 0 ? (x && y) : o == 1 ? (x || y) : (x != y);
            cr_assert_eq(((uint8_t *)out[0]->data)[i], w);
        }
        amp_tensor_destroy(out[0]);
        tn_free(t);
    }
    amp_tensor *all[2] = {a, b};
    destroy_all(all, 2);
}

/* ---- variadic ------------------------------------------------------------------------------ */

static void variadic_case(const char *op, amp_dtype dt, int nin) {
    static const int64_t dims[4][3] = {{4, 1, 6}, {5, 6}, {1}, {4, 5, 1}};
    static const int ranks[4] = {3, 2, 1, 3};
    amp_tensor *in[4], *out[1];
    for (int i = 0; i < nin; i++) in[i] = tt_rand(ctx, dt, ranks[i], dims[i], amp_dtype_is_int(dt) ? 0 : -3, amp_dtype_is_int(dt) ? 100 : 3, 30 + (uint64_t)i);
    amp_test_node *t = tn_new(ctx, op);
    cr_assert_eq(run(t, nin, in, 1, out), AMP_OK, "%s %s x%d: %s", op, amp_dtype_name(dt), nin, amp_context_last_error(ctx));
    int r = ranks[0];
    int64_t od[AMP_MAX_RANK];
    memcpy(od, dims[0], sizeof dims[0]);
    for (int i = 1; i < nin; i++) {
        int64_t tmp[AMP_MAX_RANK];
        np_shape(r, od, ranks[i], dims[i], &r, tmp);
        memcpy(od, tmp, sizeof tmp);
    }
    expect_dims(out[0], r, od);
    amp_tensor *ref;
    bool is_int = amp_dtype_is_int(dt);
    cr_assert_eq(amp_tensor_create(ctx, is_int ? dt : AMP_F64, r, od, &ref), AMP_OK);
    for (int64_t e = 0; e < ref->numel; e++) {
        double acc = tt_get(in[0], bidx(in[0], out[0], e));
        for (int i = 1; i < nin; i++) {
            double v = tt_get(in[i], bidx(in[i], out[0], e));
            if (!strcmp(op, "Min")) acc = v < acc ? v : acc;
            else if (!strcmp(op, "Max")) acc = v > acc ? v : acc;
            else acc += v;
        }
        if (!strcmp(op, "Mean")) acc /= nin;
        amp_st(ref->dtype, ref->data, e, acc);
    }
    if (is_int) cr_assert(tt_equal(out[0], ref), "%s %s", op, amp_dtype_name(dt));
    else cr_assert_lt(tt_nse(out[0], ref), thr(dt), "%s %s x%d nse %g", op, amp_dtype_name(dt), nin, tt_nse(out[0], ref));
    destroy_all(in, nin);
    amp_tensor *all[2] = {out[0], ref};
    destroy_all(all, 2);
    tn_free(t);
}

Test(elementwise, variadic_all) {
    const char *ops[] = {"Sum", "Mean", "Min", "Max"};
    for (int o = 0; o < 4; o++)
        for (int n = 1; n <= 4; n++) {
            for (int d = 0; d < 4; d++) variadic_case(ops[o], all_floats[d], n);
            if (o >= 2)
                for (int d = 0; d < N_INTS; d++) variadic_case(ops[o], all_ints[d], n);
        }
}

Test(elementwise, variadic_f16_accumulates_in_f32) {
    /* 4 x 30000 overflows f16 (65504) part way; the mean does not */
    int64_t d[1] = {3};
    amp_tensor *in[4], *out[1];
    for (int i = 0; i < 4; i++) in[i] = tt_make(ctx, AMP_F16, 1, d, (double[]){30000, -30000, 1});
    amp_test_node *t = tn_new(ctx, "Mean");
    cr_assert_eq(run(t, 4, in, 1, out), AMP_OK);
    cr_assert_eq(tt_get(out[0], 0), 30000.0);
    cr_assert_eq(tt_get(out[0], 1), -30000.0);
    cr_assert_eq(tt_get(out[0], 2), 1.0);
    amp_tensor_destroy(out[0]);
    tn_free(t);
    destroy_all(in, 4);
}

Test(elementwise, variadic_nan_and_bad) {
    int64_t d[1] = {2};
    amp_tensor *a = tt_make(ctx, AMP_F32, 1, d, (double[]){NAN, 1}), *b = tt_make(ctx, AMP_F32, 1, d, (double[]){0, NAN});
    amp_tensor *out[1];
    amp_test_node *t = tn_new(ctx, "Max");
    cr_assert_eq(run(t, 2, (amp_tensor *[]){a, b}, 1, out), AMP_OK);
    cr_assert(isnan(tt_get(out[0], 0)) && isnan(tt_get(out[0], 1)));
    amp_tensor_destroy(out[0]);
    tn_free(t);
    int64_t d3[1] = {3};
    amp_tensor *c = tt_rand(ctx, AMP_F32, 1, d3, 0, 1, 1), *i = tt_rand(ctx, AMP_I32, 1, d, 0, 5, 1);
    t = tn_new(ctx, "Sum");
    cr_assert_eq(run(t, 2, (amp_tensor *[]){a, c}, 1, out), AMP_ERR_SHAPE);
    cr_assert_eq(run(t, 2, (amp_tensor *[]){i, i}, 1, out), AMP_ERR_UNSUPPORTED);
    cr_assert_eq(run(t, 2, (amp_tensor *[]){a, i}, 1, out), AMP_ERR_SHAPE);
    tn_free(t);
    amp_tensor *all[4] = {a, b, c, i};
    destroy_all(all, 4);
}

/* ---- Where -------------------------------------------------------------------------------- */

Test(elementwise, where_all_dtypes) {
    const amp_dtype dts[] = {AMP_F32, AMP_F64, AMP_F16, AMP_BF16, AMP_I64, AMP_I32, AMP_I8, AMP_U8, AMP_BOOL};
    int64_t dc[3] = {3, 1, 5}, dx[2] = {4, 1}, dy[1] = {5};
    for (int d = 0; d < 9; d++) {
        amp_tensor *c = tt_rand(ctx, AMP_BOOL, 3, dc, 0, 2, 1), *x = tt_rand(ctx, dts[d], 2, dx, 0, 100, 2),
                   *y = tt_rand(ctx, dts[d], 1, dy, 0, 100, 3), *out[1];
        amp_test_node *t = tn_new(ctx, "Where");
        cr_assert_eq(run(t, 3, (amp_tensor *[]){c, x, y}, 1, out), AMP_OK, "%s", amp_context_last_error(ctx));
        int64_t want[3] = {3, 4, 5};
        expect_dims(out[0], 3, want);
        cr_assert_eq(out[0]->dtype, dts[d]);
        for (int64_t i = 0; i < out[0]->numel; i++) {
            double w = tt_get(c, bidx(c, out[0], i)) ? tt_get(x, bidx(x, out[0], i)) : tt_get(y, bidx(y, out[0], i));
            cr_assert_eq(tt_get(out[0], i), w, "%s i=%lld", amp_dtype_name(dts[d]), (long long)i);
        }
        amp_tensor *all[4] = {c, x, y, out[0]};
        destroy_all(all, 4);
        tn_free(t);
    }
}

Test(elementwise, where_big_and_bad) {
    int64_t d[2] = {301, 257};
    amp_tensor *c = tt_rand(ctx, AMP_BOOL, 2, d, 0, 2, 1), *x = tt_rand(ctx, AMP_F32, 2, d, -1, 1, 2),
               *y = tt_rand(ctx, AMP_F32, 2, d, -1, 1, 3), *out[1];
    amp_test_node *t = tn_new(ctx, "Where");
    cr_assert_eq(run(t, 3, (amp_tensor *[]){c, x, y}, 1, out), AMP_OK);
    for (int64_t i = 0; i < out[0]->numel; i++) cr_assert_eq(tt_get(out[0], i), tt_get(c, i) ? tt_get(x, i) : tt_get(y, i));
    amp_tensor_destroy(out[0]);
    amp_tensor *xd = tt_rand(ctx, AMP_F64, 2, d, -1, 1, 2);
    cr_assert_eq(run(t, 3, (amp_tensor *[]){c, x, xd}, 1, out), AMP_ERR_SHAPE);
    cr_assert_eq(run(t, 3, (amp_tensor *[]){x, x, y}, 1, out), AMP_ERR_UNSUPPORTED);
    tn_free(t);
    amp_tensor *all[4] = {c, x, y, xd};
    destroy_all(all, 4);
}

/* ---- unary -------------------------------------------------------------------------------- */

typedef struct ucase {
    const char *op;
    double lo, hi;
    const char *fa[2]; /* float attributes */
    float fv[2];
    const char *sa, *sv; /* a string attribute */
} ucase;

static double sp(double x) { return log(1 + exp(x)); }
static double clamp01(double v) { return v < 0 ? 0 : v > 1 ? 1 : v; }
static double round_half_even(double x) {
    double f = floor(x), r = x - f;
    if (r > 0.5) return f + 1;
    if (r < 0.5) return f;
    return fmod(f, 2) == 0 ? f : f + 1;
}

static double uref(const ucase *c, double x) {
    const char *op = c->op;
    double a0 = c->fa[0] ? c->fv[0] : NAN, a1 = c->fa[1] ? c->fv[1] : NAN;
    bool tanh_gelu = c->sv && !strcmp(c->sv, "tanh");
    if (!strcmp(op, "Relu")) return x > 0 ? x : 0;
    if (!strcmp(op, "LeakyRelu")) return x >= 0 ? x : (isnan(a0) ? (double)0.01f : a0) * x;
    if (!strcmp(op, "Sigmoid")) return 1 / (1 + exp(-x));
    if (!strcmp(op, "Tanh")) return tanh(x);
    if (!strcmp(op, "Erf")) return erf(x);
    if (!strcmp(op, "Gelu"))
        return tanh_gelu ? 0.5 * x * (1 + tanh(sqrt(2 / 3.14159265358979323846) * (x + 0.044715 * x * x * x))) : 0.5 * x * (1 + erf(x / sqrt(2)));
    if (!strcmp(op, "Sqrt")) return sqrt(x);
    if (!strcmp(op, "Exp")) return exp(x);
    if (!strcmp(op, "Log")) return log(x);
    if (!strcmp(op, "Neg")) return -x;
    if (!strcmp(op, "Abs")) return fabs(x);
    if (!strcmp(op, "Reciprocal")) return 1 / x;
    if (!strcmp(op, "Floor")) return floor(x);
    if (!strcmp(op, "Ceil")) return ceil(x);
    if (!strcmp(op, "Round")) return round_half_even(x);
    if (!strcmp(op, "Sign")) return x > 0 ? 1 : x < 0 ? -1 : 0;
    if (!strcmp(op, "Sin")) return sin(x);
    if (!strcmp(op, "Cos")) return cos(x);
    if (!strcmp(op, "Tan")) return tan(x);
    if (!strcmp(op, "Asin")) return asin(x);
    if (!strcmp(op, "Acos")) return acos(x);
    if (!strcmp(op, "Atan")) return atan(x);
    if (!strcmp(op, "Sinh")) return sinh(x);
    if (!strcmp(op, "Cosh")) return cosh(x);
    if (!strcmp(op, "Asinh")) return asinh(x);
    if (!strcmp(op, "Acosh")) return acosh(x);
    if (!strcmp(op, "Atanh")) return atanh(x);
    if (!strcmp(op, "Softplus")) return sp(x);
    if (!strcmp(op, "Softsign")) return x / (1 + fabs(x));
    if (!strcmp(op, "Elu")) return x >= 0 ? x : (isnan(a0) ? 1.0 : a0) * (exp(x) - 1);
    if (!strcmp(op, "Selu")) {
        /* the spec's defaults are these float32 values */
        double al = isnan(a0) ? 1.67326319217681884765625 : a0, ga = isnan(a1) ? 1.05070102214813232421875 : a1;
        return ga * (x > 0 ? x : al * (exp(x) - 1));
    }
    if (!strcmp(op, "Celu")) {
        double al = isnan(a0) ? 1.0 : a0;
        return fmax(0, x) + fmin(0, al * (exp(x / al) - 1));
    }
    if (!strcmp(op, "HardSigmoid")) return clamp01((isnan(a0) ? (double)0.2f : a0) * x + (isnan(a1) ? 0.5 : a1));
    if (!strcmp(op, "HardSwish")) return x * clamp01(x / 6 + 0.5);
    if (!strcmp(op, "ThresholdedRelu")) return x > (isnan(a0) ? 1.0 : a0) ? x : 0;
    if (!strcmp(op, "Shrink")) {
        double l = isnan(a0) ? 0.5 : a0, b = isnan(a1) ? 0 : a1;
        return x < -l ? x + b : x > l ? x - b : 0;
    }
    if (!strcmp(op, "Mish")) return x * tanh(sp(x));
    cr_assert_fail("no reference for %s", op);
    return 0;
}

static const ucase ucases[] = {
    {"Relu", -3, 3, {0}, {0}, 0, 0},
    {"LeakyRelu", -3, 3, {0}, {0}, 0, 0},
    {"LeakyRelu", -3, 3, {"alpha"}, {0.3f}, 0, 0},
    {"Sigmoid", -8, 8, {0}, {0}, 0, 0},
    {"Tanh", -4, 4, {0}, {0}, 0, 0},
    {"Erf", -3, 3, {0}, {0}, 0, 0},
    {"Gelu", -4, 4, {0}, {0}, 0, 0},
    {"Gelu", -4, 4, {0}, {0}, "approximate", "tanh"},
    {"Gelu", -4, 4, {0}, {0}, "approximate", "none"},
    {"Sqrt", 0.01, 10, {0}, {0}, 0, 0},
    {"Exp", -5, 5, {0}, {0}, 0, 0},
    {"Log", 0.01, 10, {0}, {0}, 0, 0},
    {"Neg", -5, 5, {0}, {0}, 0, 0},
    {"Abs", -5, 5, {0}, {0}, 0, 0},
    {"Reciprocal", 0.2, 5, {0}, {0}, 0, 0},
    {"Floor", -5, 5, {0}, {0}, 0, 0},
    {"Ceil", -5, 5, {0}, {0}, 0, 0},
    {"Round", -5, 5, {0}, {0}, 0, 0},
    {"Sign", -5, 5, {0}, {0}, 0, 0},
    {"Sin", -4, 4, {0}, {0}, 0, 0},
    {"Cos", -4, 4, {0}, {0}, 0, 0},
    {"Tan", -1.3, 1.3, {0}, {0}, 0, 0},
    {"Asin", -0.95, 0.95, {0}, {0}, 0, 0},
    {"Acos", -0.95, 0.95, {0}, {0}, 0, 0},
    {"Atan", -5, 5, {0}, {0}, 0, 0},
    {"Sinh", -4, 4, {0}, {0}, 0, 0},
    {"Cosh", -4, 4, {0}, {0}, 0, 0},
    {"Asinh", -5, 5, {0}, {0}, 0, 0},
    {"Acosh", 1.05, 6, {0}, {0}, 0, 0},
    {"Atanh", -0.95, 0.95, {0}, {0}, 0, 0},
    {"Softplus", -10, 10, {0}, {0}, 0, 0},
    {"Softsign", -5, 5, {0}, {0}, 0, 0},
    {"Elu", -4, 4, {0}, {0}, 0, 0},
    {"Elu", -4, 4, {"alpha"}, {0.5f}, 0, 0},
    {"Selu", -4, 4, {0}, {0}, 0, 0},
    {"Selu", -4, 4, {"alpha", "gamma"}, {2.0f, 3.0f}, 0, 0},
    {"Celu", -4, 4, {0}, {0}, 0, 0},
    {"Celu", -4, 4, {"alpha"}, {2.0f}, 0, 0},
    {"HardSigmoid", -5, 5, {0}, {0}, 0, 0},
    {"HardSigmoid", -5, 5, {"alpha", "beta"}, {0.5f, 0.6f}, 0, 0},
    {"HardSwish", -5, 5, {0}, {0}, 0, 0},
    {"ThresholdedRelu", -3, 3, {0}, {0}, 0, 0},
    {"ThresholdedRelu", -3, 3, {"alpha"}, {0.5f}, 0, 0},
    {"Shrink", -3, 3, {0}, {0}, 0, 0},
    {"Shrink", -3, 3, {"lambd", "bias"}, {1.5f, 1.0f}, 0, 0},
    {"Mish", -6, 6, {0}, {0}, 0, 0},
};

static amp_test_node *unode(const ucase *c) {
    amp_test_node *t = tn_new(ctx, c->op);
    if (!strcmp(c->op, "Mish")) t->opset = 18;
    if (!strcmp(c->op, "Gelu")) t->opset = 20;
    for (int j = 0; j < 2; j++)
        if (c->fa[j]) tn_float(t, c->fa[j], c->fv[j]);
    if (c->sa) tn_str(t, c->sa, c->sv);
    return t;
}

static void unary_case(const ucase *c, amp_dtype dt, int rank, const int64_t *dims, bool inplace) {
    amp_tensor *x = tt_rand(ctx, dt, rank, dims, c->lo, c->hi, 77), *out[1], *ref;
    cr_assert_eq(amp_tensor_create(ctx, AMP_F64, rank, dims, &ref), AMP_OK);
    for (int64_t i = 0; i < x->numel; i++) amp_st(AMP_F64, ref->data, i, uref(c, tt_get(x, i)));
    amp_test_node *t = unode(c);
    if (inplace) {
        amp_tensor *in[1] = {x};
        amp_kernel k = {.ctx = ctx, .n = &t->node, .opset = t->opset, .nin = 1, .nout = 1, .in = in, .out = in, .threads = 2};
        cr_assert_eq(tn_run_kernel(&k), AMP_OK, "%s", amp_context_last_error(ctx));
        cr_assert_lt(tt_nse(x, ref), thr(dt), "%s in place %s nse %g", c->op, amp_dtype_name(dt), tt_nse(x, ref));
    } else {
        cr_assert_eq(run(t, 1, &x, 1, out), AMP_OK, "%s %s: %s", c->op, amp_dtype_name(dt), amp_context_last_error(ctx));
        cr_assert_eq(out[0]->dtype, dt);
        expect_dims(out[0], rank, dims);
        cr_assert_lt(tt_nse(out[0], ref), thr(dt), "%s %s nse %g", c->op, amp_dtype_name(dt), tt_nse(out[0], ref));
        amp_tensor_destroy(out[0]);
    }
    amp_tensor *all[2] = {x, ref};
    destroy_all(all, 2);
    tn_free(t);
}

Test(elementwise, unary_float_all_ops_dtypes) {
    int64_t dims[3] = {3, 5, 7};
    for (size_t i = 0; i < sizeof ucases / sizeof ucases[0]; i++)
        for (int d = 0; d < 4; d++) unary_case(&ucases[i], all_floats[d], 3, dims, false);
}

Test(elementwise, unary_big_inplace_and_scalar) {
    int64_t big[2] = {300, 301};
    for (size_t i = 0; i < sizeof ucases / sizeof ucases[0]; i++) {
        unary_case(&ucases[i], AMP_F32, 2, big, true);
        unary_case(&ucases[i], AMP_F16, 0, big, false);
    }
    /* zero elements */
    int64_t zero[2] = {0, 3};
    unary_case(&ucases[0], AMP_F32, 2, zero, false);
}

/* 16-bit in place over several of the kernel's 256-value f32 chunks (the last one partial), the
 * way the ops with vector math (backends/cpu/vmath.c) widen, compute and narrow */
Test(elementwise, unary_16bit_chunks_in_place) {
    int64_t dims[1] = {1000};
    for (size_t i = 0; i < sizeof ucases / sizeof ucases[0]; i++) {
        unary_case(&ucases[i], AMP_F16, 1, dims, true);
        unary_case(&ucases[i], AMP_BF16, 1, dims, true);
    }
}

Test(elementwise, unary_int) {
    const char *ops[] = {"Relu", "Neg", "Abs", "Sign", "Shrink"};
    int64_t dims[2] = {7, 9};
    for (int o = 0; o < 5; o++)
        for (int d = 0; d < N_INTS; d++) {
            amp_dtype dt = all_ints[d];
            if (is_unsigned(dt) && o < 2) continue; /* Relu, Neg: signed types only */
            amp_tensor *x = tt_rand(ctx, dt, 2, dims, is_unsigned(dt) ? 0 : -100, 100, 5), *out[1];
            amp_test_node *t = tn_new(ctx, ops[o]);
            if (o == 4) {
                tn_float(t, "lambd", 10);
                tn_float(t, "bias", 3);
            }
            cr_assert_eq(run(t, 1, &x, 1, out), AMP_OK, "%s %s: %s", ops[o], amp_dtype_name(dt), amp_context_last_error(ctx));
            for (int64_t i = 0; i < x->numel; i++) {
                int64_t v = amp_ldi(dt, x->data, i), w;
                w = o == 0 ? (v > 0 ? v : 0) : o == 1 ? -v : o == 2 ? (v < 0 ? -v : v) : o == 3 ? (v > 0) - (v < 0)
                  : v < -10 ? v + 3 : v > 10 ? v - 3 : 0;
                cr_assert_eq(amp_ldi(dt, out[0]->data, i), w, "%s %s v=%lld", ops[o], amp_dtype_name(dt), (long long)v);
            }
            amp_tensor *all[2] = {x, out[0]};
            destroy_all(all, 2);
            tn_free(t);
        }
    /* Neg and Abs of the minimum wrap, as in two's complement */
    int64_t one[1] = {2};
    amp_tensor *m = tt_make(ctx, AMP_I8, 1, one, (double[]){-128, 127}), *out[1];
    amp_test_node *t = tn_new(ctx, "Neg");
    cr_assert_eq(run(t, 1, &m, 1, out), AMP_OK);
    cr_assert_eq(((int8_t *)out[0]->data)[0], -128);
    cr_assert_eq(((int8_t *)out[0]->data)[1], -127);
    amp_tensor_destroy(out[0]);
    tn_free(t);
    amp_tensor_destroy(m);
}

Test(elementwise, unary_special_values) {
    int64_t d[1] = {9};
    amp_tensor *x = tt_make(ctx, AMP_F32, 1, d, (double[]){0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 0.0, NAN, -0.0}), *out[1];
    amp_test_node *t = tn_new(ctx, "Round");
    cr_assert_eq(run(t, 1, &x, 1, out), AMP_OK);
    const double want[9] = {0, 2, 2, -0.0, -2, -2, 0, NAN, -0.0};
    for (int i = 0; i < 9; i++) {
        if (isnan(want[i])) cr_assert(isnan(tt_get(out[0], i)));
        else cr_assert_eq(tt_get(out[0], i), want[i], "i=%d", i);
    }
    amp_tensor_destroy(out[0]);
    tn_free(t);
    t = tn_new(ctx, "Sign");
    cr_assert_eq(run(t, 1, &x, 1, out), AMP_OK);
    cr_assert_eq(tt_get(out[0], 6), 0.0);
    cr_assert(isnan(tt_get(out[0], 7)));
    amp_tensor_destroy(out[0]);
    tn_free(t);
    /* Relu and Softplus keep NaN; Softplus of large values does not overflow */
    amp_tensor *y = tt_make(ctx, AMP_F32, 1, (int64_t[]){3}, (double[]){NAN, 100, -100});
    t = tn_new(ctx, "Relu");
    cr_assert_eq(run(t, 1, &y, 1, out), AMP_OK);
    cr_assert(isnan(tt_get(out[0], 0)));
    amp_tensor_destroy(out[0]);
    tn_free(t);
    t = tn_new(ctx, "Softplus");
    cr_assert_eq(run(t, 1, &y, 1, out), AMP_OK);
    cr_assert(isnan(tt_get(out[0], 0)));
    cr_assert_float_eq(tt_get(out[0], 1), 100.0, 1e-5);
    cr_assert(tt_get(out[0], 2) > 0 && tt_get(out[0], 2) < 1e-40);
    amp_tensor_destroy(out[0]);
    tn_free(t);
    amp_tensor *all[2] = {x, y};
    destroy_all(all, 2);
}

Test(elementwise, not_isnan_isinf) {
    int64_t d[1] = {6};
    amp_tensor *b = tt_make(ctx, AMP_BOOL, 1, d, (double[]){1, 0, 0, 1, 1, 0}), *out[1];
    amp_test_node *t = tn_new(ctx, "Not");
    cr_assert_eq(run(t, 1, &b, 1, out), AMP_OK);
    for (int i = 0; i < 6; i++) cr_assert_eq(tt_get(out[0], i), !tt_get(b, i));
    amp_tensor_destroy(out[0]);
    tn_free(t);
    for (int dd = 0; dd < 4; dd++) {
        amp_dtype dt = all_floats[dd];
        amp_tensor *x = tt_make(ctx, dt, 1, d, (double[]){1, NAN, INFINITY, -INFINITY, -2, 0});
        const int nan_w[6] = {0, 1, 0, 0, 0, 0};
        const int inf_w[3][6] = {{0, 0, 1, 1, 0, 0}, {0, 0, 1, 0, 0, 0}, {0, 0, 0, 1, 0, 0}};
        t = tn_new(ctx, "IsNaN");
        cr_assert_eq(run(t, 1, &x, 1, out), AMP_OK);
        cr_assert_eq(out[0]->dtype, AMP_BOOL);
        for (int i = 0; i < 6; i++) cr_assert_eq(tt_get(out[0], i), nan_w[i], "%s i=%d", amp_dtype_name(dt), i);
        amp_tensor_destroy(out[0]);
        tn_free(t);
        for (int m = 0; m < 3; m++) {
            t = tn_new(ctx, "IsInf");
            if (m == 1) tn_int(t, "detect_negative", 0);
            if (m == 2) tn_int(t, "detect_positive", 0);
            cr_assert_eq(run(t, 1, &x, 1, out), AMP_OK);
            for (int i = 0; i < 6; i++) cr_assert_eq(tt_get(out[0], i), inf_w[m][i], "m=%d i=%d", m, i);
            amp_tensor_destroy(out[0]);
            tn_free(t);
        }
        amp_tensor_destroy(x);
    }
    amp_tensor_destroy(b);
}

Test(elementwise, unary_bad_inputs) {
    int64_t d[1] = {4};
    amp_tensor *i = tt_rand(ctx, AMP_I32, 1, d, -5, 5, 1), *f = tt_rand(ctx, AMP_F32, 1, d, -1, 1, 1), *out[1];
    amp_tensor *u = tt_rand(ctx, AMP_U8, 1, d, 0, 5, 1);
    const char *float_only[] = {"Sqrt", "Sigmoid", "Exp", "Floor", "Round", "HardSwish", "IsNaN", "Softplus"};
    for (int k = 0; k < 8; k++) {
        amp_test_node *t = tn_new(ctx, float_only[k]);
        cr_assert_eq(run(t, 1, &i, 1, out), AMP_ERR_UNSUPPORTED, "%s on int32", float_only[k]);
        tn_free(t);
    }
    amp_test_node *t = tn_new(ctx, "Not");
    cr_assert_eq(run(t, 1, &f, 1, out), AMP_ERR_UNSUPPORTED);
    tn_free(t);
    t = tn_new(ctx, "Neg");
    cr_assert_eq(run(t, 1, &u, 1, out), AMP_ERR_UNSUPPORTED);
    tn_free(t);
    t = tn_new(ctx, "Gelu");
    tn_str(t, "approximate", "fast");
    cr_assert_eq(run(t, 1, &f, 1, out), AMP_ERR_INVALID_GRAPH);
    tn_free(t);
    t = tn_new(ctx, "Celu");
    tn_float(t, "alpha", 0);
    cr_assert_eq(run(t, 1, &f, 1, out), AMP_ERR_INVALID_GRAPH);
    tn_free(t);
    t = tn_new(ctx, "Relu");
    cr_assert_eq(run(t, 2, (amp_tensor *[]){f, f}, 1, out), AMP_ERR_INVALID_GRAPH);
    tn_free(t);
    amp_tensor *all[3] = {i, f, u};
    destroy_all(all, 3);
}

/* ---- Clip --------------------------------------------------------------------------------- */

static void clip_check(const amp_tensor *x, const amp_tensor *y, double lo, double hi) {
    for (int64_t i = 0; i < x->numel; i++) {
        double v = tt_get(x, i), w = v < lo ? lo : v;
        w = w > hi ? hi : w;
        double got = tt_get(y, i);
        /* bounds from float attributes round to the tensor's dtype on store */
        cr_assert(got == w || fabs(got - w) <= 1e-2 * fabs(w), "i=%lld got %g want %g", (long long)i, got, w);
    }
}

Test(elementwise, clip_inputs_all_dtypes) {
    const amp_dtype dts[] = {AMP_F32, AMP_F64, AMP_F16, AMP_BF16, AMP_I64, AMP_I32, AMP_I8, AMP_U8};
    int64_t d[3] = {3, 4, 5};
    for (int k = 0; k < 8; k++) {
        amp_dtype dt = dts[k];
        bool u = dt == AMP_U8;
        amp_tensor *x = tt_rand(ctx, dt, 3, d, u ? 0 : -50, 50, 1), *out[1];
        amp_tensor *lo = tt_make(ctx, dt, 0, NULL, (double[]){u ? 10 : -20}), *hi = tt_make(ctx, dt, 1, (int64_t[]){1}, (double[]){30});
        amp_test_node *t = tn_new(ctx, "Clip");
        cr_assert_eq(run(t, 3, (amp_tensor *[]){x, lo, hi}, 1, out), AMP_OK, "%s: %s", amp_dtype_name(dt), amp_context_last_error(ctx));
        clip_check(x, out[0], u ? 10 : -20, 30);
        amp_tensor_destroy(out[0]);
        /* only max (min omitted), only min */
        cr_assert_eq(run(t, 3, (amp_tensor *[]){x, NULL, hi}, 1, out), AMP_OK);
        clip_check(x, out[0], -INFINITY, 30);
        amp_tensor_destroy(out[0]);
        cr_assert_eq(run(t, 2, (amp_tensor *[]){x, lo}, 1, out), AMP_OK);
        clip_check(x, out[0], u ? 10 : -20, INFINITY);
        amp_tensor_destroy(out[0]);
        /* min > max: everything becomes max */
        cr_assert_eq(run(t, 3, (amp_tensor *[]){x, hi, lo}, 1, out), AMP_OK);
        for (int64_t i = 0; i < x->numel; i++) cr_assert_eq(tt_get(out[0], i), u ? 10 : -20);
        amp_tensor_destroy(out[0]);
        amp_tensor *all[3] = {x, lo, hi};
        destroy_all(all, 3);
        tn_free(t);
    }
}

Test(elementwise, clip_attrs_opset6_inplace_and_bad) {
    int64_t d[2] = {301, 300};
    amp_tensor *x = tt_rand(ctx, AMP_F32, 2, d, -2, 2, 1), *out[1];
    amp_test_node *t = tn_new(ctx, "Clip");
    t->opset = 6;
    tn_float(t, "min", -0.5f);
    tn_float(t, "max", 0.75f);
    cr_assert_eq(run(t, 1, &x, 1, out), AMP_OK);
    clip_check(x, out[0], -0.5, 0.75);
    amp_tensor_destroy(out[0]);
    tn_free(t);
    t = tn_new(ctx, "Clip");
    t->opset = 6; /* defaults: the float range */
    cr_assert_eq(run(t, 1, &x, 1, out), AMP_OK);
    cr_assert(tt_equal(out[0], x));
    amp_tensor_destroy(out[0]);
    tn_free(t);
    /* the default range is the dtype's, not float's */
    amp_tensor *wide = tt_make(ctx, AMP_F64, 1, (int64_t[]){2}, (double[]){1e300, -1e300});
    t = tn_new(ctx, "Clip");
    t->opset = 6;
    tn_float(t, "min", -5);
    cr_assert_eq(run(t, 1, &wide, 1, out), AMP_OK);
    cr_assert_eq(tt_get(out[0], 0), 1e300);
    cr_assert_eq(tt_get(out[0], 1), -5);
    amp_tensor_destroy(out[0]);
    amp_tensor_destroy(wide);
    tn_free(t);
    /* in place, inputs at opset 13 */
    amp_tensor *ref;
    amp_tensor_clone(ctx, x, &ref);
    amp_tensor *lo = tt_make(ctx, AMP_F32, 0, NULL, (double[]){-1}), *hi = tt_make(ctx, AMP_F32, 0, NULL, (double[]){1});
    cr_assert_eq(run_inplace("Clip", 3, (amp_tensor *[]){x, lo, hi}), AMP_OK);
    clip_check(ref, x, -1, 1);
    /* bad: a non-scalar bound, an int8 clip at opset 11, mismatched bound dtype */
    amp_tensor *two = tt_make(ctx, AMP_F32, 1, (int64_t[]){2}, (double[]){0, 1});
    t = tn_new(ctx, "Clip");
    cr_assert_eq(run(t, 2, (amp_tensor *[]){x, two}, 1, out), AMP_ERR_SHAPE);
    amp_tensor *i8 = tt_rand(ctx, AMP_I8, 1, d, -5, 5, 1), *lo64 = tt_make(ctx, AMP_F64, 0, NULL, (double[]){0});
    cr_assert_eq(run(t, 2, (amp_tensor *[]){x, lo64}, 1, out), AMP_ERR_SHAPE);
    t->opset = 11;
    cr_assert_eq(run(t, 1, &i8, 1, out), AMP_ERR_UNSUPPORTED);
    tn_free(t);
    amp_tensor *all[7] = {x, ref, lo, hi, two, i8, lo64};
    destroy_all(all, 7);
}

/* ---- Dropout ------------------------------------------------------------------------------ */

Test(elementwise, dropout_inference_is_identity) {
    int64_t d[3] = {3, 4, 5};
    for (int k = 0; k < 4; k++) {
        amp_dtype dt = all_floats[k];
        amp_tensor *x = tt_rand(ctx, dt, 3, d, -3, 3, 1), *out[2];
        amp_test_node *t = tn_new(ctx, "Dropout");
        tn_int(t, "seed", 0);
        amp_tensor *r = tt_make(ctx, AMP_F32, 0, NULL, (double[]){0.7});
        cr_assert_eq(run(t, 2, (amp_tensor *[]){x, r}, 2, out), AMP_OK, "%s", amp_context_last_error(ctx));
        cr_assert(tt_equal(out[0], x));
        cr_assert_eq(out[1]->dtype, AMP_BOOL);
        for (int64_t i = 0; i < x->numel; i++) cr_assert_eq(((uint8_t *)out[1]->data)[i], 1);
        destroy_all(out, 2);
        /* training with ratio 0 is also the identity */
        amp_tensor *zero = tt_make(ctx, AMP_F32, 0, NULL, (double[]){0}), *yes = tt_make(ctx, AMP_BOOL, 0, NULL, (double[]){1});
        cr_assert_eq(run(t, 3, (amp_tensor *[]){x, zero, yes}, 1, out), AMP_OK);
        cr_assert(tt_equal(out[0], x));
        amp_tensor_destroy(out[0]);
        tn_free(t);
        /* opset 7: mask has the data's type */
        t = tn_new(ctx, "Dropout");
        t->opset = 7;
        tn_float(t, "ratio", 0.3f);
        cr_assert_eq(run(t, 1, &x, 2, out), AMP_OK);
        cr_assert(tt_equal(out[0], x));
        cr_assert_eq(out[1]->dtype, dt);
        for (int64_t i = 0; i < x->numel; i++) cr_assert_eq(tt_get(out[1], i), 1.0);
        destroy_all(out, 2);
        tn_free(t);
        amp_tensor *all[4] = {x, r, zero, yes};
        destroy_all(all, 4);
    }
}

Test(elementwise, dropout_training) {
    int64_t d[2] = {257, 301};
    for (int k = 0; k < 4; k++) {
        amp_dtype dt = all_floats[k];
        amp_tensor *x = tt_rand(ctx, dt, 2, d, 0.5, 3, 1), *out[2], *again[2];
        amp_tensor *r = tt_make(ctx, AMP_F32, 0, NULL, (double[]){0.25}), *yes = tt_make(ctx, AMP_BOOL, 0, NULL, (double[]){1});
        amp_test_node *t = tn_new(ctx, "Dropout");
        tn_int(t, "seed", 42);
        cr_assert_eq(run(t, 3, (amp_tensor *[]){x, r, yes}, 2, out), AMP_OK, "%s", amp_context_last_error(ctx));
        int64_t kept = 0;
        for (int64_t i = 0; i < x->numel; i++) {
            int m = ((uint8_t *)out[1]->data)[i];
            double v = tt_get(out[0], i), want = m ? tt_get(x, i) / 0.75 : 0;
            kept += m;
            cr_assert(fabs(v - want) <= 4e-3 * fabs(want), "%s i=%lld %g vs %g", amp_dtype_name(dt), (long long)i, v, want);
        }
        double frac = (double)kept / (double)x->numel;
        cr_assert(frac > 0.74 && frac < 0.76, "kept %g", frac);
        /* the same seed gives the same mask, whatever the thread count */
        t->threads = 1;
        cr_assert_eq(run(t, 3, (amp_tensor *[]){x, r, yes}, 2, again), AMP_OK);
        cr_assert(tt_equal(out[1], again[1]));
        destroy_all(out, 2);
        destroy_all(again, 2);
        tn_free(t);
        amp_tensor *all[3] = {x, r, yes};
        destroy_all(all, 3);
    }
}

Test(elementwise, dropout_bad) {
    int64_t d[1] = {5};
    amp_tensor *x = tt_rand(ctx, AMP_F32, 1, d, 0, 1, 1), *xi = tt_rand(ctx, AMP_I32, 1, d, 0, 4, 1), *out[2];
    amp_tensor *r = tt_make(ctx, AMP_F32, 0, NULL, (double[]){1.5}), *ri = tt_make(ctx, AMP_I64, 0, NULL, (double[]){0});
    amp_test_node *t = tn_new(ctx, "Dropout");
    cr_assert_eq(run(t, 2, (amp_tensor *[]){x, r}, 1, out), AMP_ERR_INVALID_GRAPH);
    cr_assert_eq(run(t, 2, (amp_tensor *[]){x, ri}, 1, out), AMP_ERR_UNSUPPORTED);
    cr_assert_eq(run(t, 1, &xi, 1, out), AMP_ERR_UNSUPPORTED);
    cr_assert_eq(run(t, 3, (amp_tensor *[]){x, NULL, x}, 1, out), AMP_ERR_UNSUPPORTED); /* training_mode not bool */
    tn_free(t);
    amp_tensor *all[4] = {x, xi, r, ri};
    destroy_all(all, 4);
}

/* ---- Cast --------------------------------------------------------------------------------- */

/* Independent reference: the value a cast of v (exact in the source dtype) must produce. */
static double cast_ref(double v, amp_dtype to) {
    switch (to) {
    case AMP_BOOL: return v != 0;
    case AMP_F32: return (float)v;
    case AMP_F64: return v;
    case AMP_F16: return amp_f16_to_f32(amp_f32_to_f16((float)v));  /* test values are exact in float */
    case AMP_BF16: return amp_bf16_to_f32(amp_f32_to_bf16((float)v));
    default: {
        if (isnan(v)) return 0;
        int64_t i = (int64_t)trunc(v);
        int bits = (int)amp_dtype_size(to) * 8;
        if (bits == 64) return to == AMP_U64 ? (double)(uint64_t)i : (double)i;
        uint64_t m = (uint64_t)i & ((1ull << bits) - 1);
        if (is_unsigned(to)) return (double)m;
        return m >= (1ull << (bits - 1)) ? (double)m - (double)(1ull << bits) : (double)m;
    }
    }
}

Test(elementwise, cast_every_pair) {
    const amp_dtype dts[] = {AMP_F32, AMP_F16, AMP_BF16, AMP_F64, AMP_I64, AMP_I32, AMP_I8, AMP_U8,
                             AMP_BOOL, AMP_I16, AMP_U16, AMP_U32, AMP_U64};
    const int ndts = (int)(sizeof dts / sizeof dts[0]);
    /* values every source can hold exactly once stored (ints get the integral ones) */
    const double fvals[] = {0, 1, -1, 2.75, -2.75, 100.5, -3.25, 0.125, 120, 255};
    const double ivals[] = {0, 1, -1, 2, -3, 100, 127, -128, 255, 7};
    int64_t d[2] = {2, 5};
    for (int s = 0; s < ndts; s++)
        for (int o = 0; o < ndts; o++) {
            amp_dtype st = dts[s], to = dts[o];
            double vals[10];
            for (int i = 0; i < 10; i++) {
                double v = amp_dtype_is_float(st) ? fvals[i] : ivals[i];
                if (is_unsigned(st) && v < 0) v = -v;
                if (st == AMP_I8 && v > 127) v = 100;
                if (st == AMP_BOOL) v = i % 3 != 0;
                vals[i] = v;
            }
            amp_tensor *x = tt_make(ctx, st, 2, d, vals), *out[1];
            amp_test_node *t = tn_new(ctx, "Cast");
            tn_int(t, "to", to);
            cr_assert_eq(run(t, 1, &x, 1, out), AMP_OK, "%s->%s: %s", amp_dtype_name(st), amp_dtype_name(to), amp_context_last_error(ctx));
            cr_assert_eq(out[0]->dtype, to);
            expect_dims(out[0], 2, d);
            for (int i = 0; i < 10; i++) {
                double v = tt_get(x, i);
                cr_assert_eq(tt_get(out[0], i), cast_ref(v, to), "%s->%s v=%g got %g", amp_dtype_name(st),
                             amp_dtype_name(to), v, tt_get(out[0], i));
            }
            amp_tensor *all[2] = {x, out[0]};
            destroy_all(all, 2);
            tn_free(t);
        }
}

static amp_tensor *cast1(amp_tensor *x, amp_dtype to) {
    amp_tensor *out[1];
    amp_test_node *t = tn_new(ctx, "Cast");
    tn_int(t, "to", to);
    cr_assert_eq(run(t, 1, &x, 1, out), AMP_OK);
    tn_free(t);
    return out[0];
}

Test(elementwise, cast_rounding_and_edges) {
    int64_t d[1] = {4};
    /* f64 -> 16-bit rounds once: just above a tie must round up, not fall to the tie in f32 */
    amp_tensor *x = tt_make(ctx, AMP_F64, 1, d, (double[]){1 + 0x1p-11 + 0x1p-40, 1 + 0x1p-11, 1 + 0x1p-8 + 0x1p-40, 1e6});
    amp_tensor *h = cast1(x, AMP_F16), *b = cast1(x, AMP_BF16);
    cr_assert_eq(((uint16_t *)h->data)[0], 0x3c01);
    cr_assert_eq(((uint16_t *)h->data)[1], 0x3c00); /* exact tie: to even */
    cr_assert_eq(((uint16_t *)h->data)[3], 0x7c00); /* beyond f16: inf */
    cr_assert_eq(((uint16_t *)b->data)[2], 0x3f81);
    amp_tensor *all[3] = {x, h, b};
    destroy_all(all, 3);
    /* int64 -> bf16 rounds once too: 2^60 + 2^52 + 1 is above the tie */
    amp_tensor *big;
    cr_assert_eq(amp_tensor_create(ctx, AMP_I64, 1, d, &big), AMP_OK);
    int64_t *bp = big->data;
    bp[0] = ((int64_t)1 << 60) + ((int64_t)1 << 52) + 1;
    bp[1] = ((int64_t)1 << 60) + ((int64_t)1 << 52);
    bp[2] = INT64_MIN;
    bp[3] = 65519;
    b = cast1(big, AMP_BF16);
    h = cast1(big, AMP_F16);
    cr_assert_eq(((uint16_t *)b->data)[0], 0x5d81);
    cr_assert_eq(((uint16_t *)b->data)[1], 0x5d80);
    cr_assert_eq(((uint16_t *)b->data)[2], 0xdf00);
    cr_assert_eq(((uint16_t *)h->data)[3], 0x7bff);
    amp_tensor *f = cast1(big, AMP_F32);
    cr_assert_eq(((float *)f->data)[2], -0x1p63f);
    amp_tensor *all2[4] = {big, b, h, f};
    destroy_all(all2, 4);
    /* float -> int: toward zero, NaN -> 0, beyond int64 saturates; -> bool: NaN is true */
    amp_tensor *s = tt_make(ctx, AMP_F32, 1, d, (double[]){-2.9, NAN, 1e30, -1e30});
    amp_tensor *i64 = cast1(s, AMP_I64), *u8 = cast1(s, AMP_U8), *bo = cast1(s, AMP_BOOL);
    cr_assert_eq(((int64_t *)i64->data)[0], -2);
    cr_assert_eq(((int64_t *)i64->data)[1], 0);
    cr_assert_eq(((int64_t *)i64->data)[2], INT64_MAX);
    cr_assert_eq(((int64_t *)i64->data)[3], INT64_MIN);
    cr_assert_eq(((uint8_t *)u8->data)[0], 254); /* -2 wraps, as numpy */
    cr_assert_eq(((uint8_t *)bo->data)[1], 1);
    amp_tensor *all3[4] = {s, i64, u8, bo};
    destroy_all(all3, 4);
}

Test(elementwise, cast_big_parallel) {
    int64_t d[2] = {333, 301};
    amp_tensor *x = tt_rand(ctx, AMP_F32, 2, d, -1000, 1000, 9);
    amp_tensor *h = cast1(x, AMP_F16), *i = cast1(x, AMP_I32), *dd = cast1(x, AMP_F64);
    for (int64_t k = 0; k < x->numel; k++) {
        float v = ((float *)x->data)[k];
        cr_assert_eq(((uint16_t *)h->data)[k], amp_f32_to_f16(v));
        cr_assert_eq(((int32_t *)i->data)[k], (int32_t)v);
        cr_assert_eq(((double *)dd->data)[k], (double)v);
    }
    amp_tensor *all[4] = {x, h, i, dd};
    destroy_all(all, 4);
}

Test(elementwise, cast_attr_forms_castlike_and_bad) {
    int64_t d[1] = {3};
    amp_tensor *x = tt_make(ctx, AMP_F32, 1, d, (double[]){1.5, -2, 3}), *out[1];
    /* Cast-1 names the type */
    amp_test_node *t = tn_new(ctx, "Cast");
    t->opset = 1;
    tn_str(t, "to", "INT32");
    cr_assert_eq(run(t, 1, &x, 1, out), AMP_OK);
    cr_assert_eq(out[0]->dtype, AMP_I32);
    cr_assert_eq(((int32_t *)out[0]->data)[0], 1);
    amp_tensor_destroy(out[0]);
    tn_free(t);
    /* CastLike takes input 1's dtype */
    amp_tensor *like = tt_make(ctx, AMP_F16, 0, NULL, (double[]){0});
    t = tn_new(ctx, "CastLike");
    cr_assert_eq(run(t, 2, (amp_tensor *[]){x, like}, 1, out), AMP_OK);
    cr_assert_eq(out[0]->dtype, AMP_F16);
    expect_dims(out[0], 1, d);
    cr_assert_eq(tt_get(out[0], 0), 1.5);
    amp_tensor_destroy(out[0]);
    cr_assert_eq(run(t, 1, &x, 1, out), AMP_ERR_INVALID_GRAPH);
    tn_free(t);
    /* types amprt does not hold, unknown numbers, missing attribute */
    const int64_t unsupported[] = {8, 17, 15, 18, 14}; /* string, float8, complex128, float8, complex64 */
    for (int k = 0; k < 5; k++) {
        t = tn_new(ctx, "Cast");
        tn_int(t, "to", unsupported[k]);
        cr_assert_eq(run(t, 1, &x, 1, out), AMP_ERR_UNSUPPORTED, "to=%lld", (long long)unsupported[k]);
        tn_free(t);
    }
    t = tn_new(ctx, "Cast");
    tn_int(t, "to", 8);
    run(t, 1, &x, 1, out);
    cr_assert(strstr(amp_context_last_error(ctx), "STRING") != NULL, "%s", amp_context_last_error(ctx));
    tn_free(t);
    t = tn_new(ctx, "Cast");
    tn_int(t, "to", 99);
    cr_assert_eq(run(t, 1, &x, 1, out), AMP_ERR_INVALID_GRAPH);
    tn_free(t);
    t = tn_new(ctx, "Cast");
    cr_assert_eq(run(t, 1, &x, 1, out), AMP_ERR_INVALID_GRAPH);
    tn_free(t);
    amp_tensor *all[2] = {x, like};
    destroy_all(all, 2);
}

/* ---- unsigned 64-bit values above INT64_MAX, BitShift, Bitwise, float Mod at opset 28 ---- */

static amp_tensor *u64_tensor(int n, const uint64_t *v) {
    int64_t d[1] = {n};
    amp_tensor *t;
    cr_assert_eq(amp_tensor_create(ctx, AMP_U64, 1, d, &t), AMP_OK);
    memcpy(t->data, v, sizeof(uint64_t) * (size_t)n);
    return t;
}

static amp_tensor *run_bin(const char *op, amp_tensor *a, amp_tensor *b) {
    amp_tensor *in[2] = {a, b}, *out[1];
    amp_test_node *t = tn_new(ctx, op);
    cr_assert_eq(run(t, 2, in, 1, out), AMP_OK, "%s: %s", op, amp_context_last_error(ctx));
    tn_free(t);
    return out[0];
}

Test(elementwise, u64_above_int64_max) {
    const uint64_t big = 0xF000000000000001ull, mid = 0x8000000000000000ull;
    amp_tensor *a = u64_tensor(4, (uint64_t[]){big, 7, mid, 3}), *b = u64_tensor(4, (uint64_t[]){5, big, 3, mid});
    amp_tensor *mx = run_bin("Max", a, b), *mn = run_bin("Min", a, b), *dv = run_bin("Div", a, b),
               *md = run_bin("Mod", a, b), *gt = run_bin("Greater", a, b);
    const uint64_t *pa = a->data, *pb = b->data;
    for (int i = 0; i < 4; i++) {
        cr_assert_eq(((uint64_t *)mx->data)[i], pa[i] > pb[i] ? pa[i] : pb[i], "max %d", i);
        cr_assert_eq(((uint64_t *)mn->data)[i], pa[i] < pb[i] ? pa[i] : pb[i], "min %d", i);
        cr_assert_eq(((uint64_t *)dv->data)[i], pa[i] / pb[i], "div %d", i);
        cr_assert_eq(((uint64_t *)md->data)[i], pa[i] % pb[i], "mod %d", i);
        cr_assert_eq(((uint8_t *)gt->data)[i], pa[i] > pb[i], "greater %d", i);
    }
    /* Cast to float rounds the unsigned value, and Abs/Sign keep it */
    amp_tensor *f = cast1(a, AMP_F64), *h = cast1(a, AMP_BF16);
    for (int i = 0; i < 4; i++) {
        cr_assert_eq(((double *)f->data)[i], (double)pa[i]);
        cr_assert_eq(tt_get(h, i), amp_bf16_to_f32(amp_f32_to_bf16((float)pa[i])));
    }
    amp_tensor *out[1];
    amp_test_node *t = tn_new(ctx, "Abs");
    cr_assert_eq(run(t, 1, &a, 1, out), AMP_OK);
    cr_assert(tt_equal(out[0], a));
    tn_free(t);
    amp_tensor *all[9] = {a, b, mx, mn, dv, md, gt, f, h};
    destroy_all(all, 9);
    amp_tensor_destroy(out[0]);
}

Test(elementwise, bitshift_and_bitwise) {
    const amp_dtype uns[] = {AMP_U8, AMP_U16, AMP_U32, AMP_U64};
    for (int d = 0; d < 4; d++) {
        amp_dtype dt = uns[d];
        int bits = (int)amp_dtype_size(dt) * 8;
        int64_t dims[2] = {3, 4}, sd[1] = {4};
        amp_tensor *x = tt_rand(ctx, dt, 2, dims, 1, 250, 3 + (uint64_t)d);
        /* shift amounts include the width and beyond: those give 0 */
        amp_tensor *s = tt_make(ctx, dt, 1, sd, (double[]){0, 3, (double)bits, (double)bits + 2});
        for (int left = 0; left < 2; left++) {
            amp_tensor *in[2] = {x, s}, *out[1];
            amp_test_node *t = tn_new(ctx, "BitShift");
            tn_str(t, "direction", left ? "LEFT" : "RIGHT");
            cr_assert_eq(run(t, 2, in, 1, out), AMP_OK, "%s", amp_context_last_error(ctx));
            uint64_t mask = bits == 64 ? ~0ull : (1ull << bits) - 1;
            for (int64_t i = 0; i < x->numel; i++) {
                uint64_t v = (uint64_t)amp_ldi(dt, x->data, i), k = (uint64_t)amp_ldi(dt, s->data, i % 4);
                uint64_t want = k >= (uint64_t)bits ? 0 : ((left ? v << k : v >> k) & mask);
                cr_assert_eq((uint64_t)amp_ldi(dt, out[0]->data, i) & mask, want, "%s %s", amp_dtype_name(dt),
                             left ? "left" : "right");
            }
            amp_tensor_destroy(out[0]);
            tn_free(t);
        }
        amp_tensor_destroy(x);
        amp_tensor_destroy(s);
    }
    /* Bitwise ops on signed and unsigned types, with broadcasting */
    const amp_dtype ints[] = {AMP_I8, AMP_I16, AMP_I32, AMP_I64, AMP_U8, AMP_U16, AMP_U32, AMP_U64};
    const char *ops[] = {"BitwiseAnd", "BitwiseOr", "BitwiseXor", "BitwiseNot"};
    for (int d = 0; d < 8; d++)
        for (int o = 0; o < 4; o++) {
            amp_dtype dt = ints[d];
            int64_t da[2] = {5, 6}, db[1] = {6};
            amp_tensor *a = tt_rand(ctx, dt, 2, da, is_unsigned(dt) ? 0 : -100, 100, 9);
            amp_tensor *b = tt_rand(ctx, dt, 1, db, is_unsigned(dt) ? 0 : -100, 100, 10), *out[1];
            amp_test_node *t = tn_new(ctx, ops[o]);
            t->opset = 18;
            amp_tensor *in[2] = {a, b};
            cr_assert_eq(run(t, o == 3 ? 1 : 2, in, 1, out), AMP_OK, "%s %s: %s", ops[o], amp_dtype_name(dt),
                         amp_context_last_error(ctx));
            for (int64_t i = 0; i < a->numel; i++) {
                int64_t x = amp_ldi(dt, a->data, i), y = amp_ldi(dt, b->data, i % 6), w;
                w = o == 0 ? (x & y) : o == 1 ? (x | y) : o == 2 ? (x ^ y) : ~x;
                uint64_t cell = 0;
                amp_sti(dt, &cell, 0, w); /* the reference wrapped to the dtype */
                cr_assert_eq(amp_ldi(dt, out[0]->data, i), amp_ldi(dt, &cell, 0), "%s %s", ops[o], amp_dtype_name(dt));
            }
            amp_tensor *all[3] = {a, b, out[0]};
            destroy_all(all, 3);
            tn_free(t);
        }
    /* BitShift of a signed type, a bad direction and Bitwise on floats are rejected */
    int64_t d1[1] = {2};
    amp_tensor *si = tt_make(ctx, AMP_I32, 1, d1, (double[]){1, 2}), *fl = tt_make(ctx, AMP_F32, 1, d1, (double[]){1, 2});
    amp_tensor *u = tt_make(ctx, AMP_U8, 1, d1, (double[]){1, 2}), *out[1];
    amp_test_node *t = tn_new(ctx, "BitShift");
    tn_str(t, "direction", "LEFT");
    cr_assert_eq(run(t, 2, (amp_tensor *[]){si, si}, 1, out), AMP_ERR_UNSUPPORTED);
    tn_free(t);
    t = tn_new(ctx, "BitShift");
    tn_str(t, "direction", "UP");
    cr_assert_eq(run(t, 2, (amp_tensor *[]){u, u}, 1, out), AMP_ERR_INVALID_GRAPH);
    tn_free(t);
    t = tn_new(ctx, "BitwiseAnd");
    t->opset = 18;
    cr_assert_eq(run(t, 2, (amp_tensor *[]){fl, fl}, 1, out), AMP_ERR_UNSUPPORTED);
    tn_free(t);
    amp_tensor *all[3] = {si, fl, u};
    destroy_all(all, 3);
}

Test(elementwise, mod_float_floor_form_at_opset_28) {
    int64_t d[1] = {12};
    const double xs[] = {5.5, -5.5, 5.5, -5.5, 0.0, -0.0, 3.0, INFINITY, 2.0, 2.0, -2.0, NAN};
    const double ys[] = {2.0, 2.0, -2.0, -2.0, -3.0, 3.0, 0.0, 2.0, INFINITY, -INFINITY, INFINITY, 1.0};
    for (int f = 0; f < 4; f++) {
        amp_dtype dt = all_floats[f];
        amp_tensor *a = tt_make(ctx, dt, 1, d, xs), *b = tt_make(ctx, dt, 1, d, ys), *out[1];
        amp_test_node *t = tn_new(ctx, "Mod");
        t->opset = 28;
        cr_assert_eq(run(t, 2, (amp_tensor *[]){a, b}, 1, out), AMP_OK, "%s", amp_context_last_error(ctx));
        /* x - floor(x/y)*y with the sign of y; the spec's special cases */
        const double want[] = {1.5, 0.5, -0.5, -1.5, -0.0, 0.0, NAN, NAN, 2.0, -INFINITY, INFINITY, NAN};
        for (int i = 0; i < 12; i++) {
            double g = tt_get(out[0], i);
            if (isnan(want[i])) cr_assert(isnan(g), "%s i=%d got %g", amp_dtype_name(dt), i, g);
            else cr_assert(g == want[i] && signbit(g) == signbit(want[i]), "%s i=%d got %g want %g", amp_dtype_name(dt),
                           i, g, want[i]);
        }
        amp_tensor *all[3] = {a, b, out[0]};
        destroy_all(all, 3);
        tn_free(t);
    }
}

/* Pow with a constant exponent of 2 takes the x * x path: bit-identical to pow, for every float
 * dtype, with NaN and infinities, and with an exponent whose rank exceeds the base's. */
Test(elementwise, pow_square_path_matches_pow) {
    for (int f = 0; f < 4; f++) {
        amp_dtype dt = all_floats[f];
        int64_t d[2] = {3, 5};
        amp_tensor *x = tt_rand(ctx, dt, 2, d, -300, 300, 77);
        amp_st(dt, x->data, 0, NAN);
        amp_st(dt, x->data, 1, -INFINITY);
        amp_st(dt, x->data, 2, 1e-30);
        amp_st(dt, x->data, 3, -0.0);
        int64_t ed[3] = {1, 1, 1};
        amp_tensor *e = tt_make(ctx, dt, 3, ed, (double[]){2.0}), *out[1];
        amp_test_node *t = tn_new(ctx, "Pow");
        cr_assert_eq(run(t, 2, (amp_tensor *[]){x, e}, 1, out), AMP_OK, "%s", amp_context_last_error(ctx));
        int64_t od[3] = {1, 3, 5};
        expect_dims(out[0], 3, od);
        for (int64_t i = 0; i < x->numel; i++) {
            double v = tt_get(x, i), want;
            amp_tensor *ref = tt_make(ctx, dt, 0, NULL, (double[]){pow(v, 2.0)});
            want = tt_get(ref, 0);
            amp_tensor_destroy(ref);
            double got = tt_get(out[0], i);
            if (isnan(want)) cr_assert(isnan(got), "%s element %lld", amp_dtype_name(dt), (long long)i);
            else cr_assert(got == want, "%s element %lld: %g, pow gives %g", amp_dtype_name(dt), (long long)i, got, want);
        }
        amp_tensor *all[3] = {x, e, out[0]};
        destroy_all(all, 3);
        tn_free(t);
    }
}

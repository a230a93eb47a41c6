/* Reductions, ArgMax/ArgMin and CumSum against reference loops written here. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "backends/cpu/cpu.h"
#include "testutil.h"

static amp_context *ctx;
static void setup(void) { cr_assert_eq(amp_context_create(NULL, &ctx), AMP_OK); }
static void teardown(void) { amp_context_destroy(ctx); }
TestSuite(reduce, .init = setup, .fini = teardown);
TestSuite(argminmax, .init = setup, .fini = teardown);
TestSuite(cumsum, .init = setup, .fini = teardown);


/* Normalised squared error a 16-bit result may have after one rounding. */
static double tol_of(amp_dtype dt) {
    switch (dt) {
    case AMP_F16: return 1e-6;
    case AMP_BF16: return 5e-5;
    case AMP_F32: return 1e-12;
    default: return 1e-24;
    }
}

static amp_tensor *i64_vec(int n, const int64_t *v) {
    int64_t d[1] = {n};
    amp_tensor *t;
    cr_assert_eq(amp_tensor_create(ctx, AMP_I64, 1, d, &t), AMP_OK);
    if (n) memcpy(t->data, v, sizeof(int64_t) * (size_t)n);
    return t;
}

static amp_tensor *i64_scalar(int64_t v) {
    amp_tensor *t;
    cr_assert_eq(amp_tensor_create(ctx, AMP_I64, 0, NULL, &t), AMP_OK);
    *(int64_t *)t->data = v;
    return t;
}

/* ---- reductions -------------------------------------------------------------------------- */

static const char *reduce_names[] = {"ReduceMean", "ReduceSum", "ReduceMax", "ReduceMin", "ReduceProd",
                                     "ReduceL1", "ReduceL2", "ReduceLogSum", "ReduceLogSumExp", "ReduceSumSquare"};
enum { R_MEAN, R_SUM, R_MAX, R_MIN, R_PROD, R_L1, R_L2, R_LOGSUM, R_LSE, R_SUMSQ, R_COUNT };

/* Output linear index of input element i: row-major over the dims that are kept. */
static int64_t out_index(const amp_tensor *x, const bool *red, int64_t i) {
    int64_t c[AMP_MAX_RANK];
    for (int d = x->rank - 1; d >= 0; d--) {
        c[d] = i % x->dims[d];
        i /= x->dims[d];
    }
    int64_t o = 0;
    for (int d = 0; d < x->rank; d++)
        if (!red[d]) o = o * x->dims[d] + c[d];
    return o;
}

/* Reference in double for floats, returned as an f64 tensor of the output's shape. */
static amp_tensor *ref_reduce_float(int op, const amp_tensor *x, const bool *red, const amp_tensor *like) {
    int64_t n = like->numel;
    double *acc = calloc((size_t)n + 1, sizeof(double)), *mx = calloc((size_t)n + 1, sizeof(double));
    int64_t *cnt = calloc((size_t)n + 1, sizeof(int64_t));
    for (int64_t o = 0; o < n; o++) {
        acc[o] = op == R_PROD ? 1.0 : op == R_MAX ? -INFINITY : op == R_MIN ? INFINITY : 0.0;
        mx[o] = -INFINITY;
    }
    for (int64_t i = 0; i < x->numel; i++) {
        int64_t o = out_index(x, red, i);
        double v = tt_get(x, i);
        cnt[o]++;
        if (v > mx[o]) mx[o] = v;
        switch (op) {
        case R_MAX: acc[o] = v > acc[o] ? v : acc[o]; break;
        case R_MIN: acc[o] = v < acc[o] ? v : acc[o]; break;
        case R_PROD: acc[o] *= v; break;
        case R_L1: acc[o] += fabs(v); break;
        case R_L2:
        case R_SUMSQ: acc[o] += v * v; break;
        case R_LSE: acc[o] += exp(v); break;
        default: acc[o] += v; break;
        }
    }
    amp_tensor *ref;
    cr_assert_eq(amp_tensor_create(ctx, AMP_F64, like->rank, like->dims, &ref), AMP_OK);
    double *r = ref->data;
    for (int64_t o = 0; o < n; o++) {
        switch (op) {
        case R_MEAN: r[o] = acc[o] / (double)cnt[o]; break;
        case R_L2: r[o] = sqrt(acc[o]); break;
        case R_LOGSUM:
        case R_LSE: r[o] = log(acc[o]); break;
        default: r[o] = acc[o]; break;
        }
    }
    free(acc);
    free(mx);
    free(cnt);
    return ref;
}

/* Exact reference for integers, stored in the output's dtype. */
static amp_tensor *ref_reduce_int(int op, const amp_tensor *x, const bool *red, const amp_tensor *like) {
    int64_t n = like->numel;
    int64_t *acc = calloc((size_t)n + 1, sizeof(int64_t)), *cnt = calloc((size_t)n + 1, sizeof(int64_t));
    double *lse = calloc((size_t)n + 1, sizeof(double)), *mx = calloc((size_t)n + 1, sizeof(double));
    for (int64_t o = 0; o < n; o++) acc[o] = op == R_PROD ? 1 : op == R_MAX ? INT64_MIN : op == R_MIN ? INT64_MAX : 0;
    /* log-sum-exp shifted by the maximum, so a single element gives itself exactly */
    for (int64_t o = 0; o < n; o++) mx[o] = -INFINITY;
    for (int64_t i = 0; i < x->numel; i++) {
        int64_t o = out_index(x, red, i);
        double v = (double)amp_ldi(x->dtype, x->data, i);
        if (v > mx[o]) mx[o] = v;
    }
    for (int64_t i = 0; i < x->numel; i++) {
        int64_t o = out_index(x, red, i);
        int64_t v = amp_ldi(x->dtype, x->data, i);
        cnt[o]++;
        switch (op) {
        case R_MAX: acc[o] = v > acc[o] ? v : acc[o]; break;
        case R_MIN: acc[o] = v < acc[o] ? v : acc[o]; break;
        case R_PROD: acc[o] *= v; break;
        case R_L1: acc[o] += v < 0 ? -v : v; break;
        case R_L2:
        case R_SUMSQ: acc[o] += v * v; break;
        case R_LSE: lse[o] += exp((double)v - mx[o]); break;
        default: acc[o] += v; break;
        }
    }
    amp_tensor *ref;
    cr_assert_eq(amp_tensor_create(ctx, like->dtype, like->rank, like->dims, &ref), AMP_OK);
    for (int64_t o = 0; o < n; o++) {
        int64_t v;
        switch (op) {
        case R_MEAN: v = acc[o] / cnt[o]; break;
        case R_L2: v = (int64_t)sqrt((double)acc[o]); break;
        case R_LOGSUM: v = (int64_t)log((double)acc[o]); break;
        case R_LSE: v = (int64_t)(mx[o] + log(lse[o])); break;
        default: v = acc[o]; break;
        }
        amp_sti(like->dtype, ref->data, o, v);
    }
    free(acc);
    free(cnt);
    free(lse);
    free(mx);
    return ref;
}

typedef struct rcase {
    int rank;
    int64_t dims[6];
    int naxes;
    int64_t axes[6];
} rcase;

static const rcase rcases[] = {
    {1, {7}, 1, {0}},
    {1, {5}, 0, {0}},
    {2, {3, 5}, 1, {1}},
    {2, {3, 5}, 1, {-2}},
    {2, {4, 3}, 2, {0, 1}},
    {3, {2, 3, 4}, 1, {1}},
    {3, {2, 3, 4}, 2, {0, 2}},
    {3, {3, 1, 5}, 2, {-1, 1}},
    {4, {5, 1, 3, 2}, 2, {1, 3}},
    {4, {2, 3, 2, 3}, 3, {3, 0, 1}},
    {5, {2, 3, 1, 2, 3}, 2, {4, 1}},
    {5, {2, 1, 3, 2, 2}, 0, {0}},
};

/* Value ranges where every reduction stays finite and integer results stay exact. */
static void value_range(int op, bool isint, double *lo, double *hi) {
    if (op == R_LOGSUM || (isint && (op == R_LSE || op == R_L2))) *lo = 1, *hi = 6;
    else if (op == R_PROD) *lo = isint ? -2 : 0.6, *hi = isint ? 3 : 1.5;
    else if (isint) *lo = -20, *hi = 40;
    else *lo = -2, *hi = 2;
}

/* Runs op on x with the case's axes; axes go in as an input or an attribute as the opset
 * asks. Returns the status; *y the output. */
static amp_status run_reduce(int op, int64_t opset, amp_tensor *x, int naxes, const int64_t *axes, int keepdims,
                             int noop, bool pass_axes, amp_tensor **y) {
    amp_test_node *t = tn_new(ctx, reduce_names[op]);
    t->opset = opset;
    bool as_input = op == R_SUM ? opset >= 13 : opset >= 18;
    amp_tensor *ax = NULL;
    if (keepdims >= 0) tn_int(t, "keepdims", keepdims);
    if (noop >= 0) tn_int(t, "noop_with_empty_axes", noop);
    if (as_input) {
        if (pass_axes) ax = i64_vec(naxes, axes);
    } else if (naxes > 0) {
        tn_ints(t, "axes", naxes, axes);
    }
    amp_tensor *in[2] = {x, ax};
    amp_status s = tn_run(t, as_input ? 2 : 1, in, 1, y);
    amp_tensor_destroy(ax);
    tn_free(t);
    return s;
}

static void check_reduce(int op, int64_t opset, amp_dtype dt, const rcase *rc, int keepdims, uint64_t seed) {
    bool isint = !amp_dtype_is_float(dt);
    double lo, hi;
    value_range(op, isint, &lo, &hi);
    amp_tensor *x = tt_rand(ctx, dt, rc->rank, rc->dims, lo, hi, seed);
    amp_tensor *y = NULL;
    amp_status s = run_reduce(op, opset, x, rc->naxes, rc->axes, keepdims, -1, true, &y);
    cr_assert_eq(s, AMP_OK, "%s %s rank %d: %s", reduce_names[op], amp_dtype_name(dt), rc->rank,
                 amp_context_last_error(ctx));
    bool red[AMP_MAX_RANK] = {false};
    for (int d = 0; d < rc->rank; d++) red[d] = rc->naxes == 0;
    for (int i = 0; i < rc->naxes; i++) red[rc->axes[i] < 0 ? rc->axes[i] + rc->rank : rc->axes[i]] = true;
    /* expected shape */
    int r = 0;
    for (int d = 0; d < rc->rank; d++) {
        if (!red[d]) {
            cr_assert_eq(y->dims[r], rc->dims[d]);
            r++;
        } else if (keepdims) {
            cr_assert_eq(y->dims[r], 1);
            r++;
        }
    }
    cr_assert_eq(y->rank, r, "%s rank %d keepdims %d", reduce_names[op], y->rank, keepdims);
    cr_assert_eq(y->dtype, dt);
    if (isint) {
        amp_tensor *ref = ref_reduce_int(op, x, red, y);
        cr_assert(tt_equal(y, ref), "%s %s rank %d keepdims %d differs", reduce_names[op], amp_dtype_name(dt),
                  rc->rank, keepdims);
        amp_tensor_destroy(ref);
    } else {
        amp_tensor *ref = ref_reduce_float(op, x, red, y);
        double e = tt_nse(y, ref);
        cr_assert(e <= tol_of(dt), "%s %s rank %d keepdims %d: nse %g", reduce_names[op], amp_dtype_name(dt),
                  rc->rank, keepdims, e);
        amp_tensor_destroy(ref);
    }
    amp_tensor_destroy(x);
    amp_tensor_destroy(y);
}

Test(reduce, every_op_dtype_shape_and_keepdims) {
    const amp_dtype all[] = {AMP_F32, AMP_F16, AMP_BF16, AMP_F64, AMP_I64, AMP_I32, AMP_I8, AMP_U8};
    uint64_t seed = 1;
    for (int op = 0; op < R_COUNT; op++) {
        bool minmax = op == R_MAX || op == R_MIN;
        for (size_t ti = 0; ti < sizeof all / sizeof all[0]; ti++) {
            amp_dtype dt = all[ti];
            if (!minmax && (dt == AMP_I8 || dt == AMP_U8)) continue;
            for (size_t ci = 0; ci < sizeof rcases / sizeof rcases[0]; ci++)
                for (int keep = 0; keep <= 1; keep++) check_reduce(op, 17, dt, &rcases[ci], keep, seed++);
        }
    }
}

Test(reduce, axes_as_input_at_opset_18) {
    uint64_t seed = 100;
    for (int op = 0; op < R_COUNT; op++)
        for (size_t ci = 0; ci < sizeof rcases / sizeof rcases[0]; ci += 3) {
            check_reduce(op, 18, AMP_F32, &rcases[ci], 1, seed++);
            check_reduce(op, 18, AMP_I32, &rcases[ci], 0, seed++);
        }
}

Test(reduce, sum_axes_attribute_before_opset_13) {
    uint64_t seed = 200;
    for (size_t ci = 0; ci < sizeof rcases / sizeof rcases[0]; ci++) {
        check_reduce(R_SUM, 11, AMP_F32, &rcases[ci], 0, seed++);
        check_reduce(R_SUM, 1, AMP_I64, &rcases[ci], 1, seed++);
        check_reduce(R_MEAN, 13, AMP_F64, &rcases[ci], 1, seed++);
    }
}

Test(reduce, keepdims_defaults_to_one) {
    int64_t dims[3] = {2, 3, 4}, axes[1] = {1};
    amp_tensor *x = tt_rand(ctx, AMP_F32, 3, dims, -1, 1, 7), *y = NULL;
    cr_assert_eq(run_reduce(R_MEAN, 17, x, 1, axes, -1, -1, true, &y), AMP_OK);
    cr_assert_eq(y->rank, 3);
    cr_assert_eq(y->dims[1], 1);
    amp_tensor_destroy(x);
    amp_tensor_destroy(y);
}

Test(reduce, empty_axes_reduce_all_or_noop) {
    int64_t dims[3] = {3, 2, 5};
    amp_tensor *x = tt_rand(ctx, AMP_F32, 3, dims, -3, 3, 11), *y = NULL;
    /* omitted axes input: reduce everything */
    cr_assert_eq(run_reduce(R_SUM, 13, x, 0, NULL, 0, -1, false, &y), AMP_OK);
    cr_assert_eq(y->rank, 0);
    double s = 0;
    for (int64_t i = 0; i < x->numel; i++) s += tt_get(x, i);
    cr_assert_float_eq(tt_get(y, 0), s, 1e-5);
    amp_tensor_destroy(y);
    /* an empty axes tensor is the same */
    cr_assert_eq(run_reduce(R_SUM, 13, x, 0, NULL, 1, 0, true, &y), AMP_OK);
    cr_assert_eq(y->rank, 3);
    cr_assert_float_eq(tt_get(y, 0), s, 1e-5);
    amp_tensor_destroy(y);
    /* noop_with_empty_axes: the input comes back unchanged */
    for (int op = 0; op < R_COUNT; op++) {
        cr_assert_eq(run_reduce(op, 18, x, 0, NULL, 1, 1, true, &y), AMP_OK, "%s", reduce_names[op]);
        cr_assert(tt_equal(y, x), "%s noop", reduce_names[op]);
        amp_tensor_destroy(y);
        cr_assert_eq(run_reduce(op, 18, x, 0, NULL, 0, 1, false, &y), AMP_OK, "%s", reduce_names[op]);
        cr_assert(tt_equal(y, x), "%s noop, omitted axes", reduce_names[op]);
        amp_tensor_destroy(y);
    }
    amp_tensor_destroy(x);
}

Test(reduce, empty_set) {
    int64_t dims[2] = {3, 0}, axes[1] = {1};
    for (int f = 0; f < 2; f++) {
        amp_dtype dt = f ? AMP_F32 : AMP_I32;
        amp_tensor *x, *y = NULL;
        cr_assert_eq(amp_tensor_create(ctx, dt, 2, dims, &x), AMP_OK);
        const struct {
            int op;
            double fv;
            int64_t iv;
        } want[] = {{R_SUM, 0, 0},
                    {R_PROD, 1, 1},
                    {R_MAX, -INFINITY, INT32_MIN},
                    {R_MIN, INFINITY, INT32_MAX},
                    {R_L1, 0, 0},
                    {R_L2, 0, 0},
                    {R_SUMSQ, 0, 0},
                    {R_LOGSUM, -INFINITY, INT32_MIN},
                    {R_LSE, -INFINITY, INT32_MIN}};
        for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
            cr_assert_eq(run_reduce(want[i].op, 18, x, 1, axes, 0, -1, true, &y), AMP_OK);
            cr_assert_eq(y->rank, 1);
            cr_assert_eq(y->dims[0], 3);
            for (int j = 0; j < 3; j++) {
                if (f) cr_assert_eq(tt_get(y, j), want[i].fv, "%s", reduce_names[want[i].op]);
                else cr_assert_eq(amp_ldi(dt, y->data, j), want[i].iv, "%s", reduce_names[want[i].op]);
            }
            amp_tensor_destroy(y);
        }
        /* mean of nothing is NaN for floats */
        if (f) {
            cr_assert_eq(run_reduce(R_MEAN, 18, x, 1, axes, 1, -1, true, &y), AMP_OK);
            cr_assert(isnan(tt_get(y, 0)));
            amp_tensor_destroy(y);
        }
        amp_tensor_destroy(x);
    }
    /* f16 and u8 extremes of ReduceMax/Min */
    int64_t d1[1] = {0}, ax0[1] = {0};
    amp_tensor *h, *u, *y = NULL;
    cr_assert_eq(amp_tensor_create(ctx, AMP_F16, 1, d1, &h), AMP_OK);
    cr_assert_eq(amp_tensor_create(ctx, AMP_U8, 1, d1, &u), AMP_OK);
    cr_assert_eq(run_reduce(R_MIN, 17, h, 1, ax0, 0, -1, true, &y), AMP_OK);
    cr_assert_eq(y->rank, 0);
    cr_assert(isinf(tt_get(y, 0)) && tt_get(y, 0) > 0);
    amp_tensor_destroy(y);
    cr_assert_eq(run_reduce(R_MIN, 17, u, 1, ax0, 0, -1, true, &y), AMP_OK);
    cr_assert_eq(amp_ldi(AMP_U8, y->data, 0), 255);
    amp_tensor_destroy(y);
    cr_assert_eq(run_reduce(R_MAX, 17, u, 1, ax0, 0, -1, true, &y), AMP_OK);
    cr_assert_eq(amp_ldi(AMP_U8, y->data, 0), 0);
    amp_tensor_destroy(y);
    amp_tensor_destroy(h);
    amp_tensor_destroy(u);
}

Test(reduce, log_sum_exp_is_stable) {
    int64_t dims[2] = {2, 3}, axes[1] = {1};
    double v[6] = {1000, 1001, 999, -1000, -1001, -999};
    amp_tensor *x = tt_make(ctx, AMP_F32, 2, dims, v), *y = NULL;
    cr_assert_eq(run_reduce(R_LSE, 17, x, 1, axes, 0, -1, true, &y), AMP_OK);
    double e0 = 1001 + log(exp(-1) + 1 + exp(-2)), e1 = -999 + log(exp(-1) + exp(-2) + 1);
    cr_assert_float_eq(tt_get(y, 0), e0, 1e-3);
    cr_assert_float_eq(tt_get(y, 1), e1, 1e-3);
    amp_tensor_destroy(x);
    amp_tensor_destroy(y);
}

Test(reduce, max_propagates_nan) {
    int64_t dims[2] = {2, 3}, axes[1] = {1};
    double v[6] = {1, NAN, 3, 4, 5, -6};
    amp_tensor *x = tt_make(ctx, AMP_F32, 2, dims, v), *y = NULL;
    cr_assert_eq(run_reduce(R_MAX, 17, x, 1, axes, 0, -1, true, &y), AMP_OK);
    cr_assert(isnan(tt_get(y, 0)));
    cr_assert_eq(tt_get(y, 1), 5);
    amp_tensor_destroy(y);
    cr_assert_eq(run_reduce(R_MIN, 17, x, 1, axes, 0, -1, true, &y), AMP_OK);
    cr_assert(isnan(tt_get(y, 0)));
    cr_assert_eq(tt_get(y, 1), -6);
    amp_tensor_destroy(x);
    amp_tensor_destroy(y);
}

Test(reduce, integer_sums_are_exact) {
    /* 2^53 + 1 is not a double: a double accumulator would lose the 1 */
    int64_t dims[1] = {3}, axes[1] = {0};
    amp_tensor *x, *y = NULL;
    cr_assert_eq(amp_tensor_create(ctx, AMP_I64, 1, dims, &x), AMP_OK);
    int64_t *p = x->data;
    p[0] = (int64_t)1 << 53;
    p[1] = 1;
    p[2] = 2;
    cr_assert_eq(run_reduce(R_SUM, 17, x, 1, axes, 0, -1, true, &y), AMP_OK);
    cr_assert_eq(((int64_t *)y->data)[0], ((int64_t)1 << 53) + 3);
    amp_tensor_destroy(y);
    cr_assert_eq(run_reduce(R_PROD, 17, x, 1, axes, 0, -1, true, &y), AMP_OK);
    cr_assert_eq(((int64_t *)y->data)[0], (int64_t)1 << 54);
    amp_tensor_destroy(y);
    amp_tensor_destroy(x);
}

Test(reduce, large_input_uses_threads) {
    rcase rc = {3, {37, 129, 33}, 2, {0, 2}};
    check_reduce(R_SUM, 17, AMP_F32, &rc, 1, 5);
    check_reduce(R_MAX, 17, AMP_I32, &rc, 0, 6);
    rcase rc2 = {2, {513, 257}, 1, {1}};
    check_reduce(R_LSE, 18, AMP_F16, &rc2, 0, 8);
}

Test(reduce, bad_inputs) {
    int64_t dims[2] = {3, 4};
    amp_tensor *x = tt_rand(ctx, AMP_F32, 2, dims, -1, 1, 3), *y = NULL;
    int64_t bad[1] = {2}, neg[1] = {-3}, rep[2] = {1, -1};
    cr_assert_eq(run_reduce(R_MEAN, 17, x, 1, bad, 1, -1, true, &y), AMP_ERR_INVALID_GRAPH);
    cr_assert_eq(run_reduce(R_SUM, 17, x, 1, neg, 1, -1, true, &y), AMP_ERR_INVALID_GRAPH);
    cr_assert_eq(run_reduce(R_MAX, 18, x, 2, rep, 1, -1, true, &y), AMP_ERR_INVALID_GRAPH);
    cr_assert_null(y);
    amp_tensor_destroy(x);
    /* sums of bool and of 8-bit integers are not in the spec */
    amp_tensor *b = tt_rand(ctx, AMP_BOOL, 2, dims, 0, 2, 4), *i8 = tt_rand(ctx, AMP_I8, 2, dims, -3, 3, 5);
    int64_t ax[1] = {0};
    cr_assert_eq(run_reduce(R_SUM, 17, b, 1, ax, 1, -1, true, &y), AMP_ERR_UNSUPPORTED);
    cr_assert_eq(run_reduce(R_MAX, 17, b, 1, ax, 1, -1, true, &y), AMP_ERR_UNSUPPORTED);
    cr_assert_eq(run_reduce(R_MEAN, 17, i8, 1, ax, 1, -1, true, &y), AMP_ERR_UNSUPPORTED);
    cr_assert_eq(run_reduce(R_MAX, 17, i8, 1, ax, 1, -1, true, &y), AMP_OK);
    amp_tensor_destroy(y);
    amp_tensor_destroy(b);
    amp_tensor_destroy(i8);
}

/* ---- ArgMax / ArgMin ----------------------------------------------------------------------- */

static void check_arg(bool mx, amp_dtype dt, int rank, const int64_t *dims, int64_t axis, int keepdims, int last,
                      uint64_t seed) {
    /* few distinct values, so that ties happen and select_last_index matters */
    amp_tensor *x = tt_rand(ctx, dt, rank, dims, dt == AMP_U8 ? 0 : -3, 4, seed), *y = NULL;
    amp_test_node *t = tn_new(ctx, mx ? "ArgMax" : "ArgMin");
    tn_int(t, "axis", axis);
    if (keepdims >= 0) tn_int(t, "keepdims", keepdims);
    tn_int(t, "select_last_index", last);
    cr_assert_eq(tn_run(t, 1, &x, 1, &y), AMP_OK, "%s", amp_context_last_error(ctx));
    int a = (int)(axis < 0 ? axis + rank : axis);
    int64_t outer = 1, len = dims[a], inner = 1;
    for (int d = 0; d < a; d++) outer *= dims[d];
    for (int d = a + 1; d < rank; d++) inner *= dims[d];
    cr_assert_eq(y->dtype, AMP_I64);
    cr_assert_eq(y->rank, keepdims == 0 ? rank - 1 : rank);
    if (keepdims != 0) cr_assert_eq(y->dims[a], 1);
    for (int64_t o = 0; o < outer; o++)
        for (int64_t i = 0; i < inner; i++) {
            int64_t best = 0;
            double bv = tt_get(x, o * len * inner + i);
            for (int64_t j = 1; j < len; j++) {
                double v = tt_get(x, (o * len + j) * inner + i);
                if ((mx ? v > bv : v < bv) || (last && v == bv)) bv = v, best = j;
            }
            cr_assert_eq(((int64_t *)y->data)[o * inner + i], best, "%s %s axis %lld last %d",
                         mx ? "ArgMax" : "ArgMin", amp_dtype_name(dt), (long long)axis, last);
        }
    tn_free(t);
    amp_tensor_destroy(x);
    amp_tensor_destroy(y);
}

Test(argminmax, every_dtype_axis_and_flag) {
    const amp_dtype all[] = {AMP_F32, AMP_F16, AMP_BF16, AMP_F64, AMP_I64, AMP_I32, AMP_I8, AMP_U8};
    const struct {
        int rank;
        int64_t dims[4];
    } shapes[] = {{1, {9}}, {2, {3, 7}}, {3, {2, 5, 3}}, {4, {3, 1, 4, 2}}};
    uint64_t seed = 1;
    for (size_t ti = 0; ti < sizeof all / sizeof all[0]; ti++)
        for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++)
            for (int a = -shapes[si].rank; a < shapes[si].rank; a++)
                for (int keep = 0; keep <= 1; keep++)
                    for (int last = 0; last <= 1; last++) {
                        check_arg(true, all[ti], shapes[si].rank, shapes[si].dims, a, keep, last, seed++);
                        check_arg(false, all[ti], shapes[si].rank, shapes[si].dims, a, keep, last, seed++);
                    }
}

Test(argminmax, defaults_and_large) {
    int64_t dims[2] = {300, 211};
    check_arg(true, AMP_F32, 2, dims, 1, -1, 0, 9);
    check_arg(false, AMP_I64, 2, dims, 0, -1, 1, 10);
    /* no attributes: axis 0, keepdims 1 */
    int64_t d2[2] = {4, 3};
    double v[12] = {1, 9, 3, 7, 2, 8, 5, 5, 0, 2, 6, 1};
    amp_tensor *x = tt_make(ctx, AMP_F32, 2, d2, v), *y = NULL;
    amp_test_node *t = tn_new(ctx, "ArgMax");
    cr_assert_eq(tn_run(t, 1, &x, 1, &y), AMP_OK);
    cr_assert_eq(y->rank, 2);
    cr_assert_eq(y->dims[0], 1);
    int64_t want[3] = {1, 0, 1};
    for (int i = 0; i < 3; i++) cr_assert_eq(((int64_t *)y->data)[i], want[i]);
    tn_free(t);
    amp_tensor_destroy(x);
    amp_tensor_destroy(y);
}

Test(argminmax, bad_inputs) {
    int64_t dims[2] = {3, 4}, d0[2] = {3, 0};
    amp_tensor *x = tt_rand(ctx, AMP_F32, 2, dims, -1, 1, 3), *y = NULL;
    amp_test_node *t = tn_new(ctx, "ArgMax");
    tn_int(t, "axis", 2);
    cr_assert_eq(tn_run(t, 1, &x, 1, &y), AMP_ERR_INVALID_GRAPH);
    tn_free(t);
    t = tn_new(ctx, "ArgMin");
    tn_int(t, "axis", -3);
    cr_assert_eq(tn_run(t, 1, &x, 1, &y), AMP_ERR_INVALID_GRAPH);
    tn_free(t);
    amp_tensor_destroy(x);
    /* no element to choose along an empty axis */
    cr_assert_eq(amp_tensor_create(ctx, AMP_F32, 2, d0, &x), AMP_OK);
    t = tn_new(ctx, "ArgMax");
    tn_int(t, "axis", 1);
    cr_assert_eq(tn_run(t, 1, &x, 1, &y), AMP_ERR_SHAPE);
    tn_free(t);
    amp_tensor_destroy(x);
    x = tt_rand(ctx, AMP_BOOL, 2, dims, 0, 2, 3);
    t = tn_new(ctx, "ArgMax");
    cr_assert_eq(tn_run(t, 1, &x, 1, &y), AMP_ERR_UNSUPPORTED);
    tn_free(t);
    amp_tensor_destroy(x);
    cr_assert_null(y);
}

/* ---- CumSum ---------------------------------------------------------------------------------- */

static void check_cumsum(amp_dtype dt, amp_dtype axdt, int rank, const int64_t *dims, int64_t axis, int excl, int rev,
                         uint64_t seed) {
    bool isint = !amp_dtype_is_float(dt);
    amp_tensor *x = tt_rand(ctx, dt, rank, dims, isint ? -50 : -2, isint ? 50 : 2, seed), *y = NULL, *ax;
    cr_assert_eq(amp_tensor_create(ctx, axdt, 0, NULL, &ax), AMP_OK);
    amp_sti(axdt, ax->data, 0, axis);
    amp_test_node *t = tn_new(ctx, "CumSum");
    if (excl >= 0) tn_int(t, "exclusive", excl);
    if (rev >= 0) tn_int(t, "reverse", rev);
    amp_tensor *in[2] = {x, ax};
    cr_assert_eq(tn_run(t, 2, in, 1, &y), AMP_OK, "%s", amp_context_last_error(ctx));
    int a = (int)(axis < 0 ? axis + rank : axis);
    int64_t outer = 1, len = dims[a], inner = 1;
    for (int d = 0; d < a; d++) outer *= dims[d];
    for (int d = a + 1; d < rank; d++) inner *= dims[d];
    amp_tensor *ref;
    cr_assert_eq(amp_tensor_create(ctx, isint ? dt : AMP_F64, rank, dims, &ref), AMP_OK);
    for (int64_t o = 0; o < outer; o++)
        for (int64_t i = 0; i < inner; i++)
            for (int64_t j = 0; j < len; j++) {
                double s = 0;
                for (int64_t m = 0; m < len; m++) {
                    bool take = rev > 0 ? (excl > 0 ? m > j : m >= j) : (excl > 0 ? m < j : m <= j);
                    if (take) s += tt_get(x, (o * len + m) * inner + i);
                }
                amp_st(ref->dtype, ref->data, (o * len + j) * inner + i, s);
            }
    if (isint) cr_assert(tt_equal(y, ref), "CumSum %s axis %lld", amp_dtype_name(dt), (long long)axis);
    else
        cr_assert(tt_nse(y, ref) <= tol_of(dt), "CumSum %s axis %lld excl %d rev %d: nse %g", amp_dtype_name(dt),
                  (long long)axis, excl, rev, tt_nse(y, ref));
    tn_free(t);
    amp_tensor_destroy(x);
    amp_tensor_destroy(ax);
    amp_tensor_destroy(y);
    amp_tensor_destroy(ref);
}

Test(cumsum, every_dtype_axis_and_flag) {
    const amp_dtype all[] = {AMP_F32, AMP_F16, AMP_BF16, AMP_F64, AMP_I64, AMP_I32};
    const struct {
        int rank;
        int64_t dims[4];
    } shapes[] = {{1, {11}}, {2, {3, 7}}, {3, {2, 5, 3}}, {4, {3, 1, 4, 2}}};
    uint64_t seed = 1;
    for (size_t ti = 0; ti < sizeof all / sizeof all[0]; ti++)
        for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++)
            for (int a = -shapes[si].rank; a < shapes[si].rank; a++)
                for (int fl = 0; fl < 4; fl++)
                    check_cumsum(all[ti], (a & 1) ? AMP_I32 : AMP_I64, shapes[si].rank, shapes[si].dims, a, fl & 1,
                                 fl >> 1, seed++);
}

Test(cumsum, defaults_large_and_empty) {
    int64_t dims[2] = {257, 301};
    check_cumsum(AMP_F32, AMP_I64, 2, dims, 1, -1, -1, 3);
    check_cumsum(AMP_I64, AMP_I64, 2, dims, 0, 1, 1, 4);
    int64_t d0[2] = {0, 3};
    check_cumsum(AMP_F32, AMP_I64, 2, d0, 1, 0, 0, 5);
    check_cumsum(AMP_F32, AMP_I64, 2, d0, 0, 1, 1, 5);
}

Test(cumsum, bad_inputs) {
    int64_t dims[2] = {3, 4};
    amp_tensor *x = tt_rand(ctx, AMP_F32, 2, dims, -1, 1, 3), *y = NULL;
    amp_tensor *ax = i64_scalar(2);
    amp_tensor *in[2] = {x, ax};
    amp_test_node *t = tn_new(ctx, "CumSum");
    cr_assert_eq(tn_run(t, 2, in, 1, &y), AMP_ERR_INVALID_GRAPH);
    *(int64_t *)ax->data = -3;
    cr_assert_eq(tn_run(t, 2, in, 1, &y), AMP_ERR_INVALID_GRAPH);
    tn_free(t);
    amp_tensor_destroy(x);
    /* 8-bit integers and bool are not in CumSum's list */
    *(int64_t *)ax->data = 0;
    x = tt_rand(ctx, AMP_I8, 2, dims, -3, 3, 4);
    in[0] = x;
    t = tn_new(ctx, "CumSum");
    cr_assert_eq(tn_run(t, 2, in, 1, &y), AMP_ERR_UNSUPPORTED);
    tn_free(t);
    amp_tensor_destroy(x);
    amp_tensor_destroy(ax);
    cr_assert_null(y);
}

/* ReduceMax/ReduceMin of bool (opset 20) are any/all; before opset 20 bool is rejected. */
Test(reduce, bool_max_min_from_opset_20) {
    int64_t d[2] = {3, 4};
    const double v[12] = {0, 0, 0, 0, 1, 0, 1, 0, 1, 1, 1, 1};
    amp_tensor *x = tt_make(ctx, AMP_BOOL, 2, d, v), *y;
    int64_t axis[1] = {1};
    cr_assert_eq(run_reduce(R_MAX, 20, x, 1, axis, 0, -1, true, &y), AMP_OK, "%s", amp_context_last_error(ctx));
    cr_assert_eq(y->dtype, AMP_BOOL);
    cr_assert(tt_get(y, 0) == 0 && tt_get(y, 1) == 1 && tt_get(y, 2) == 1);
    amp_tensor_destroy(y);
    cr_assert_eq(run_reduce(R_MIN, 20, x, 1, axis, 0, -1, true, &y), AMP_OK);
    cr_assert(tt_get(y, 0) == 0 && tt_get(y, 1) == 0 && tt_get(y, 2) == 1);
    amp_tensor_destroy(y);
    cr_assert_eq(run_reduce(R_MAX, 18, x, 1, axis, 0, -1, true, &y), AMP_ERR_UNSUPPORTED);
    amp_tensor_destroy(x);
}

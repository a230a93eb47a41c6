/* QuantizeLinear, DequantizeLinear, DynamicQuantizeLinear, MatMulInteger, QLinearMatMul,
 * ConvInteger and QLinearConv against reference loops written here. Integer sums are exact in
 * int64 and wrap to int32 the way the spec allows the accumulation to; rounding is half to even
 * (rint). QuantizeLinear divides float inputs in f32 (as onnxruntime does), QLinearMatMul and
 * QLinearConv form their multiplier in f32 and apply it in double (as the ONNX reference does),
 * DequantizeLinear is compared in double with a relative measure. Integer outputs must match
 * exactly, and fixed cases pin ties, saturation, NaN and infinities. */
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
TestSuite(quantize_linear, .init = setup, .fini = teardown, .timeout = 60);
TestSuite(dequantize_linear, .init = setup, .fini = teardown, .timeout = 60);
TestSuite(dynamic_quantize_linear, .init = setup, .fini = teardown, .timeout = 60);
TestSuite(matmul_integer, .init = setup, .fini = teardown, .timeout = 60);
TestSuite(qlinear_matmul, .init = setup, .fini = teardown, .timeout = 60);
TestSuite(conv_integer, .init = setup, .fini = teardown, .timeout = 60);
TestSuite(qlinear_conv, .init = setup, .fini = teardown, .timeout = 60);
TestSuite(quant_table, .init = setup, .fini = teardown, .timeout = 60);

/* ---- helpers ----------------------------------------------------------------------------------- */

static amp_tensor *mk(amp_dtype dt, int rank, const int64_t *dims) {
    amp_tensor *t;
    cr_assert_eq(amp_tensor_create(ctx, dt, rank, dims, &t), AMP_OK);
    return t;
}

static amp_tensor *rnd(amp_dtype dt, int rank, const int64_t *dims, double lo, double hi, uint64_t seed) {
    amp_tensor *t = tt_rand(ctx, dt, rank, dims, lo, hi, seed);
    cr_assert_not_null(t);
    return t;
}

static amp_tensor *scalar_of(amp_dtype dt, double v) { return tt_make(ctx, dt, 0, NULL, &v); }

static void qrange(amp_dtype t, int64_t *lo, int64_t *hi) {
    switch (t) {
    case AMP_U8: *lo = 0, *hi = 255; break;
    case AMP_I8: *lo = -128, *hi = 127; break;
    case AMP_U16: *lo = 0, *hi = 65535; break;
    case AMP_I16: *lo = -32768, *hi = 32767; break;
    default: cr_assert_fail("no range for %s", amp_dtype_name(t));
    }
}

/* Random zero points well inside the type's range. */
static amp_tensor *rnd_zp(amp_dtype dt, int rank, const int64_t *dims, uint64_t seed) {
    int64_t lo, hi;
    if (dt == AMP_I32) return rnd(dt, rank, dims, -1000, 1000, seed);
    qrange(dt, &lo, &hi);
    double span = (double)(hi - lo);
    return rnd(dt, rank, dims, (double)lo + span * 0.2, (double)hi - span * 0.2, seed);
}

static int64_t sat(double v, int64_t lo, int64_t hi) {
    if (isnan(v) || v < (double)lo) return lo;
    return v > (double)hi ? hi : (int64_t)v;
}

static void unravel(int rank, const int64_t *dims, int64_t i, int64_t *c) {
    for (int d = rank - 1; d >= 0; d--) {
        c[d] = i % dims[d];
        i /= dims[d];
    }
}

static int64_t ravel(int rank, const int64_t *dims, const int64_t *c) {
    int64_t o = 0;
    for (int d = 0; d < rank; d++) o = o * dims[d] + c[d];
    return o;
}

static int64_t prod(int n, const int64_t *v) {
    int64_t p = 1;
    for (int i = 0; i < n; i++) p *= v[i];
    return p;
}

static void expect_ints(const amp_tensor *got, amp_dtype dt, const int64_t *ref, const char *what) {
    cr_assert_not_null(got, "%s: no output", what);
    cr_assert_eq(got->dtype, dt, "%s: dtype %s, want %s", what, amp_dtype_name(got->dtype), amp_dtype_name(dt));
    for (int64_t i = 0; i < got->numel; i++)
        cr_assert_eq(amp_ldi(got->dtype, got->data, i), ref[i], "%s: element %lld is %lld, want %lld", what,
                     (long long)i, (long long)amp_ldi(got->dtype, got->data, i), (long long)ref[i]);
}

static void expect_dims(const amp_tensor *got, int rank, const int64_t *dims, const char *what) {
    cr_assert_eq(got->rank, rank, "%s: rank %d, want %d", what, got->rank, rank);
    for (int d = 0; d < rank; d++)
        cr_assert_eq(got->dims[d], dims[d], "%s: dim %d is %lld, want %lld", what, d, (long long)got->dims[d],
                     (long long)dims[d]);
}

static void destroy_all(int n, amp_tensor **t) {
    for (int i = 0; i < n; i++) amp_tensor_destroy(t[i]);
}

/* Expect status want from a node run; nothing may leak (ASan checks) and no output is left. */
static void expect_status(amp_test_node *t, int nin, amp_tensor *const *in, int nout, amp_status want,
                          const char *what) {
    amp_tensor *out[3] = {NULL, NULL, NULL};
    amp_status s = tn_run(t, nin, in, nout, out);
    cr_assert_eq(s, want, "%s: status %s (%s), want %s", what, amp_status_str(s), amp_context_last_error(ctx),
                 amp_status_str(want));
    for (int i = 0; i < nout; i++) cr_assert_null(out[i], "%s: output %d left behind", what, i);
}

/* ---- QuantizeLinear ---------------------------------------------------------------------------- */

enum { PER_TENSOR, PER_AXIS, BLOCKED };

/* Scale shape of a mode: scalar, [D_axis], or x's dims with ceil(D_axis / block) along axis. */
static int scale_shape(int mode, int rank, const int64_t *dims, int axis, int64_t block, int64_t *sd) {
    if (mode == PER_TENSOR) return 0;
    if (mode == PER_AXIS) {
        sd[0] = dims[axis];
        return 1;
    }
    for (int d = 0; d < rank; d++) sd[d] = d == axis ? (dims[d] + block - 1) / block : dims[d];
    return rank;
}

/* Scale index of x's element at coordinates c. */
static int64_t scale_index(int mode, int rank, int axis, int64_t block, const int64_t *sd, const int64_t *c) {
    if (mode == PER_TENSOR) return 0;
    if (mode == PER_AXIS) return c[axis];
    int64_t b[AMP_MAX_RANK];
    for (int d = 0; d < rank; d++) b[d] = d == axis ? c[d] / block : c[d];
    return ravel(rank, sd, b);
}

typedef struct qcase {
    int64_t opset;
    amp_dtype xt, yt;
    int mode, rank, axis; /* axis as given to the node (may be negative) */
    int64_t dims[AMP_MAX_RANK];
    int64_t block;
    int zp;               /* 0: no zero point; 1: zero point input; 2: output_dtype attribute only */
    int threads;
} qcase;

static void check_quantize(const qcase *qc, uint64_t seed) {
    char what[160];
    snprintf(what, sizeof what, "QuantizeLinear-%lld %s->%s mode %d rank %d axis %d block %lld zp %d",
             (long long)qc->opset, amp_dtype_name(qc->xt), amp_dtype_name(qc->yt), qc->mode, qc->rank, qc->axis,
             (long long)qc->block, qc->zp);
    int axis = qc->axis < 0 ? qc->axis + qc->rank : qc->axis;
    int64_t sd[AMP_MAX_RANK], lo, hi;
    int srank = scale_shape(qc->mode, qc->rank, qc->dims, axis, qc->block, sd);
    qrange(qc->yt, &lo, &hi);
    /* x spans past the range at the smallest scales so that saturation is exercised */
    amp_dtype st = qc->opset >= 19 ? qc->xt : AMP_F32;
    double xr = (double)(hi - lo) * (st == AMP_I32 ? 1.6 : 0.8);
    amp_tensor *x = rnd(qc->xt, qc->rank, qc->dims, -xr, xr, seed);
    amp_tensor *sc = st == AMP_I32 ? rnd(st, srank, sd, 1, 3, seed + 1) /* int32 scales of 1 and 2 */
                                                         : rnd(st, srank, sd, 0.5, 1.2, seed + 1);
    amp_tensor *zp = qc->zp == 1 ? rnd_zp(qc->yt, srank, sd, seed + 2) : NULL;
    amp_test_node *t = tn_new(ctx, "QuantizeLinear");
    t->opset = qc->opset;
    t->threads = qc->threads ? qc->threads : 2;
    if (qc->opset >= 13 && (qc->mode != PER_TENSOR || qc->axis != 1)) tn_int(t, "axis", qc->axis);
    if (qc->mode == BLOCKED) tn_int(t, "block_size", qc->block);
    if (qc->zp == 2) tn_int(t, "output_dtype", qc->yt);
    amp_tensor *in[3] = {x, sc, zp}, *y = NULL;
    cr_assert_eq(tn_run(t, zp ? 3 : 2, in, 1, &y), AMP_OK, "%s: %s", what, amp_context_last_error(ctx));
    expect_dims(y, qc->rank, qc->dims, what);
    int64_t *ref = calloc((size_t)(x->numel + 1), sizeof(int64_t));
    int64_t c[AMP_MAX_RANK];
    int64_t nsat = 0;
    for (int64_t i = 0; i < x->numel; i++) {
        unravel(qc->rank, qc->dims, i, c);
        int64_t p = scale_index(qc->mode, qc->rank, axis, qc->block, sd, c);
        /* the quotient is f32 for float inputs (as the ONNX reference and onnxruntime form it), double
         * for int32 ones; ties go to even either way */
        double xv = tt_get(x, i), sv = tt_get(sc, p);
        double q = qc->xt == AMP_I32 ? rint(xv / sv) : (double)rintf((float)xv / (float)sv);
        double v = q + (zp ? (double)amp_ldi(zp->dtype, zp->data, p) : 0.0);
        ref[i] = sat(v, lo, hi);
        nsat += ref[i] == lo || ref[i] == hi;
    }
    expect_ints(y, qc->yt, ref, what);
    if (x->numel > 50)
        cr_assert(nsat > 0 && nsat < x->numel * 9 / 10, "%s: %lld of %lld saturated", what, (long long)nsat,
                  (long long)x->numel);
    free(ref);
    tn_free(t);
    amp_tensor *all[4] = {x, sc, zp, y};
    destroy_all(4, all);
}

Test(quantize_linear, per_tensor_every_dtype_and_opset) {
    uint64_t seed = 10;
    const amp_dtype x19[] = {AMP_F32, AMP_F16, AMP_BF16, AMP_I32};
    const amp_dtype y21[] = {AMP_U8, AMP_I8, AMP_U16, AMP_I16};
    for (int xi = 0; xi < 4; xi++)
        for (int yi = 0; yi < 4; yi++)
            for (int zp = 0; zp < 3; zp++) {
                qcase q = {.opset = 21, .xt = x19[xi], .yt = y21[yi], .mode = PER_TENSOR, .rank = 3,
                           .axis = 1, .dims = {3, 5, 7}, .zp = zp};
                if (zp == 0 && y21[yi] != AMP_U8) continue; /* without either, the output is uint8 */
                check_quantize(&q, seed++);
                if (yi < 2 && zp < 2) {
                    q.opset = 19;
                    check_quantize(&q, seed++);
                    if (x19[xi] == AMP_F32 || x19[xi] == AMP_I32) {
                        q.opset = 13;
                        check_quantize(&q, seed++);
                        q.opset = 10;
                        check_quantize(&q, seed++);
                    }
                }
            }
    /* rank 0 and 1, and a one-element vector scale */
    qcase r0 = {.opset = 13, .xt = AMP_F32, .yt = AMP_I8, .mode = PER_TENSOR, .rank = 0, .zp = 1};
    check_quantize(&r0, seed++);
    qcase r1 = {.opset = 21, .xt = AMP_F16, .yt = AMP_U8, .mode = PER_TENSOR, .rank = 1, .dims = {11}, .zp = 1};
    check_quantize(&r1, seed++);
}

Test(quantize_linear, per_axis_and_blocked) {
    uint64_t seed = 100;
    const amp_dtype xs[] = {AMP_F32, AMP_F16, AMP_BF16, AMP_I32};
    const amp_dtype ys[] = {AMP_U8, AMP_I8, AMP_U16, AMP_I16};
    for (int xi = 0; xi < 4; xi++)
        for (int axis = -3; axis < 3; axis++) {
            qcase q = {.opset = 21, .xt = xs[xi], .yt = ys[(xi + axis + 3) % 4], .mode = PER_AXIS, .rank = 3,
                       .axis = axis, .dims = {4, 6, 5}, .zp = 1};
            check_quantize(&q, seed++);
            if (q.yt == AMP_U8 || q.yt == AMP_I8) {
                q.opset = xs[xi] == AMP_F32 || xs[xi] == AMP_I32 ? 13 : 19;
                check_quantize(&q, seed++);
            }
            /* blocks that divide the axis, that leave a remainder, and one that covers it */
            int a = axis < 0 ? axis + 3 : axis;
            const int64_t blocks[3] = {2, 3, q.dims[a]};
            for (int b = 0; b < 3; b++) {
                qcase qb = q;
                qb.opset = 21;
                qb.mode = BLOCKED;
                qb.block = blocks[b];
                qb.zp = b == 2 ? 2 : 1;
                if (qb.zp == 2) qb.yt = AMP_I16;
                check_quantize(&qb, seed++);
            }
        }
    /* per-axis on rank 1 (the axis is the only dim) and rank 4 with odd sizes */
    qcase q1 = {.opset = 13, .xt = AMP_F32, .yt = AMP_U8, .mode = PER_AXIS, .rank = 1, .axis = 0, .dims = {9},
                .zp = 1};
    check_quantize(&q1, seed++);
    qcase q4 = {.opset = 21, .xt = AMP_BF16, .yt = AMP_I8, .mode = BLOCKED, .rank = 4, .axis = -1,
                .dims = {2, 3, 1, 13}, .block = 4, .zp = 1};
    check_quantize(&q4, seed++);
}

Test(quantize_linear, large_inputs_on_threads) {
    qcase a = {.opset = 13, .xt = AMP_F32, .yt = AMP_U8, .mode = PER_TENSOR, .rank = 2, .axis = 1,
               .dims = {301, 257}, .zp = 1, .threads = 4};
    check_quantize(&a, 1000);
    a.yt = AMP_I8;
    check_quantize(&a, 1001);
    a.mode = PER_AXIS;
    check_quantize(&a, 1002);
    a.opset = 21;
    a.mode = BLOCKED;
    a.block = 32;
    a.yt = AMP_U16;
    check_quantize(&a, 1003);
    a.axis = 0;
    a.xt = AMP_F16;
    check_quantize(&a, 1004);
}

/* Ties round to even, saturation, NaN and infinities at fixed values. */
Test(quantize_linear, ties_saturation_and_specials) {
    const double xv[] = {2.5, 3.5, -2.5, -3.5, 0.5, 1.5, -0.5, 300, -300, NAN, INFINITY, -INFINITY, 126.5, 127.5};
    const int64_t n = 14, d[1] = {n};
    const int64_t want_i8[] = {12, 14, 8, 6, 10, 12, 10, 127, -128, -128, 127, -128, 127, 127};
    const int64_t want_u8[] = {2, 4, 0, 0, 0, 2, 0, 255, 0, 0, 255, 0, 126, 128};
    amp_tensor *x = tt_make(ctx, AMP_F32, 1, d, xv), *s = scalar_of(AMP_F32, 1.0), *z = scalar_of(AMP_I8, 10);
    amp_tensor *in[3] = {x, s, z}, *y = NULL;
    amp_test_node *t = tn_new(ctx, "QuantizeLinear");
    t->opset = 13;
    cr_assert_eq(tn_run(t, 3, in, 1, &y), AMP_OK, "%s", amp_context_last_error(ctx));
    expect_ints(y, AMP_I8, want_i8, "int8 zero point 10");
    amp_tensor_destroy(y);
    cr_assert_eq(tn_run(t, 2, in, 1, &y), AMP_OK, "%s", amp_context_last_error(ctx));
    expect_ints(y, AMP_U8, want_u8, "no zero point");
    amp_tensor_destroy(y);
    /* the same through the generic path (f16 input, 16-bit output) */
    amp_tensor *xh = tt_make(ctx, AMP_F16, 1, d, xv), *sh = scalar_of(AMP_F16, 1.0), *zh = scalar_of(AMP_I16, 10);
    amp_tensor *inh[3] = {xh, sh, zh};
    t->opset = 21;
    cr_assert_eq(tn_run(t, 3, inh, 1, &y), AMP_OK, "%s", amp_context_last_error(ctx));
    const int64_t want_i16[] = {12, 14, 8, 6, 10, 12, 10, 310, -290, -32768, 32767, -32768, 136, 138};
    expect_ints(y, AMP_I16, want_i16, "int16 zero point 10");
    amp_tensor_destroy(y);
    tn_free(t);
    amp_tensor *all[6] = {x, s, z, xh, sh, zh};
    destroy_all(6, all);
}

Test(quantize_linear, bad_inputs) {
    const int64_t d[2] = {3, 4}, d3[1] = {3}, d4[1] = {4}, d2x2[2] = {2, 2}, d1[1] = {1};
    amp_tensor *x = rnd(AMP_F32, 2, d, -5, 5, 1), *s = scalar_of(AMP_F32, 0.5), *z = scalar_of(AMP_U8, 3);
    amp_tensor *xi8 = rnd(AMP_I8, 2, d, -5, 5, 2), *sh = scalar_of(AMP_F16, 0.5), *zf = scalar_of(AMP_F32, 1);
    amp_tensor *zu16 = scalar_of(AMP_U16, 1), *s3 = rnd(AMP_F32, 1, d3, 0.5, 1, 3);
    amp_tensor *s4 = rnd(AMP_F32, 1, d4, 0.5, 1, 4);
    amp_tensor *z4 = rnd(AMP_U8, 1, d4, 1, 9, 5), *s22 = rnd(AMP_F32, 2, d2x2, 0.5, 1, 6);
    amp_tensor *s1 = rnd(AMP_F32, 1, d1, 0.5, 1, 7), *z1 = rnd(AMP_U8, 1, d1, 1, 9, 8);
    amp_test_node *t = tn_new(ctx, "QuantizeLinear");
    t->opset = 13;
    amp_tensor *in[3] = {x, s, z};
    expect_status(t, 1, in, 1, AMP_ERR_INVALID_GRAPH, "one input");
    in[0] = xi8;
    expect_status(t, 3, in, 1, AMP_ERR_UNSUPPORTED, "int8 x");
    in[0] = x, in[1] = sh;
    expect_status(t, 3, in, 1, AMP_ERR_UNSUPPORTED, "float16 scale before opset 19");
    t->opset = 19;
    expect_status(t, 3, in, 1, AMP_ERR_SHAPE, "scale dtype differs from x at opset 19");
    in[1] = s, in[2] = zf;
    expect_status(t, 3, in, 1, AMP_ERR_UNSUPPORTED, "float zero point");
    in[2] = zu16;
    expect_status(t, 3, in, 1, AMP_ERR_UNSUPPORTED, "uint16 zero point before opset 21");
    in[2] = z, in[1] = s3;
    expect_status(t, 3, in, 1, AMP_ERR_SHAPE, "per-axis scale of the wrong length");
    tn_free(t);

    t = tn_new(ctx, "QuantizeLinear");
    t->opset = 13;
    tn_int(t, "axis", 2);
    in[1] = s4, in[2] = z4;
    expect_status(t, 3, in, 1, AMP_ERR_INVALID_GRAPH, "axis out of range");
    tn_free(t);

    t = tn_new(ctx, "QuantizeLinear");
    t->opset = 10;
    expect_status(t, 3, in, 1, AMP_ERR_SHAPE, "vector scale at opset 10");
    in[1] = s22, in[2] = NULL;
    t->opset = 13;
    expect_status(t, 2, in, 1, AMP_ERR_SHAPE, "rank-2 scale without block_size");
    tn_free(t);

    /* blocked: wrong scale dims, negative block size, output_dtype disagreeing or not held */
    t = tn_new(ctx, "QuantizeLinear");
    t->opset = 21;
    tn_int(t, "block_size", 3);
    expect_status(t, 2, in, 1, AMP_ERR_SHAPE, "blocked scale of the wrong shape");
    tn_free(t);
    t = tn_new(ctx, "QuantizeLinear");
    t->opset = 21;
    tn_int(t, "block_size", -1);
    expect_status(t, 2, in, 1, AMP_ERR_INVALID_GRAPH, "negative block_size");
    tn_free(t);
    t = tn_new(ctx, "QuantizeLinear");
    t->opset = 21;
    tn_int(t, "output_dtype", AMP_I8);
    in[1] = s, in[2] = z;
    expect_status(t, 3, in, 1, AMP_ERR_INVALID_GRAPH, "output_dtype differs from the zero point");
    tn_free(t);
    t = tn_new(ctx, "QuantizeLinear");
    t->opset = 21;
    tn_int(t, "output_dtype", 17); /* float8e4m3fn */
    expect_status(t, 2, in, 1, AMP_ERR_UNSUPPORTED, "float8 output_dtype");
    tn_free(t);

    /* zero point shape differs from the scale's; a one-element vector pairs with a scalar */
    t = tn_new(ctx, "QuantizeLinear");
    t->opset = 13;
    in[1] = s, in[2] = z4;
    expect_status(t, 3, in, 1, AMP_ERR_SHAPE, "zero point shape differs");
    in[1] = s1, in[2] = z;
    amp_tensor *y = NULL;
    cr_assert_eq(tn_run(t, 3, in, 1, &y), AMP_OK, "%s", amp_context_last_error(ctx));
    amp_tensor_destroy(y);
    in[1] = s, in[2] = z1;
    cr_assert_eq(tn_run(t, 3, in, 1, &y), AMP_OK, "%s", amp_context_last_error(ctx));
    amp_tensor_destroy(y);
    tn_free(t);
    amp_tensor *all[13] = {x, s, z, xi8, sh, zf, zu16, s3, s4, z4, s22, s1, z1};
    destroy_all(13, all);
}

/* ---- DequantizeLinear -------------------------------------------------------------------------- */

static void check_dequantize(int64_t opset, amp_dtype xt, amp_dtype st, int mode, int rank, const int64_t *dims,
                             int axis_attr, int64_t block, bool with_zp, uint64_t seed) {
    char what[160];
    snprintf(what, sizeof what, "DequantizeLinear-%lld %s->%s mode %d rank %d axis %d block %lld zp %d",
             (long long)opset, amp_dtype_name(xt), amp_dtype_name(st), mode, rank, axis_attr, (long long)block,
             with_zp);
    int axis = axis_attr < 0 ? axis_attr + rank : axis_attr;
    int64_t sd[AMP_MAX_RANK], lo = -100000, hi = 100000;
    int srank = scale_shape(mode, rank, dims, axis, block, sd);
    if (xt != AMP_I32) qrange(xt, &lo, &hi);
    amp_tensor *x = rnd(xt, rank, dims, (double)lo, (double)hi + 1, seed);
    /* scales keep |x - zp| * scale in f16's range */
    double span = (double)(hi - lo) + 1;
    amp_tensor *sc = rnd(st, srank, sd, 20.0 / span, 500.0 / span, seed + 1);
    amp_tensor *zp = with_zp ? rnd_zp(xt, srank, sd, seed + 2) : NULL;
    amp_test_node *t = tn_new(ctx, "DequantizeLinear");
    t->opset = opset;
    if (opset >= 13) tn_int(t, "axis", axis_attr);
    if (mode == BLOCKED) tn_int(t, "block_size", block);
    amp_tensor *in[3] = {x, sc, zp}, *y = NULL;
    cr_assert_eq(tn_run(t, zp ? 3 : 2, in, 1, &y), AMP_OK, "%s: %s", what, amp_context_last_error(ctx));
    cr_assert_eq(y->dtype, st, "%s: output dtype %s", what, amp_dtype_name(y->dtype));
    expect_dims(y, rank, dims, what);
    amp_tensor *ref = mk(AMP_F64, rank, dims);
    int64_t c[AMP_MAX_RANK];
    for (int64_t i = 0; i < x->numel; i++) {
        unravel(rank, dims, i, c);
        int64_t p = scale_index(mode, rank, axis, block, sd, c);
        double z = zp ? (double)amp_ldi(zp->dtype, zp->data, p) : 0.0;
        ((double *)ref->data)[i] = ((double)amp_ldi(xt, x->data, i) - z) * tt_get(sc, p);
    }
    /* one rounding to the output type: relative error of half an ulp of f32 / f16 / bf16 */
    double tol = st == AMP_F32 ? 1e-13 : st == AMP_F16 ? 3e-7 : 2e-5;
    double e = tt_nse(y, ref);
    cr_assert(e < tol, "%s: nse %g", what, e);
    tn_free(t);
    amp_tensor *all[4] = {x, sc, zp, y};
    destroy_all(4, all);
    amp_tensor_destroy(ref);
}

Test(dequantize_linear, every_dtype_mode_and_opset) {
    uint64_t seed = 200;
    const int64_t d3[3] = {3, 5, 7}, d1[1] = {6}, d4[4] = {2, 3, 2, 5};
    const amp_dtype xs21[] = {AMP_U8, AMP_I8, AMP_U16, AMP_I16, AMP_I32};
    const amp_dtype ss[] = {AMP_F32, AMP_F16, AMP_BF16};
    for (int xi = 0; xi < 5; xi++)
        for (int si = 0; si < 3; si++) {
            amp_dtype xt = xs21[xi], st = ss[si];
            bool old = xt == AMP_U8 || xt == AMP_I8 || xt == AMP_I32;
            for (int zp = 0; zp < 2; zp++) {
                check_dequantize(21, xt, st, PER_TENSOR, 3, d3, 1, 0, zp, seed++);
                check_dequantize(21, xt, st, PER_AXIS, 3, d3, -1, 0, zp, seed++);
                check_dequantize(21, xt, st, BLOCKED, 3, d3, 1, 2, zp, seed++);
                check_dequantize(21, xt, st, BLOCKED, 4, d4, 3, 3, zp, seed++);
                if (old) {
                    check_dequantize(19, xt, st, PER_AXIS, 3, d3, 0, 0, zp, seed++);
                    if (st == AMP_F32) {
                        check_dequantize(13, xt, st, PER_AXIS, 4, d4, 1, 0, zp, seed++);
                        check_dequantize(13, xt, st, PER_TENSOR, 1, d1, 1, 0, zp, seed++);
                        check_dequantize(10, xt, st, PER_TENSOR, 3, d3, 1, 0, zp, seed++);
                    }
                }
            }
        }
    /* the 8-bit table path and the threaded loops on larger inputs */
    const int64_t big[2] = {257, 300};
    check_dequantize(13, AMP_U8, AMP_F32, PER_TENSOR, 2, big, 1, 0, true, seed++);
    check_dequantize(13, AMP_I8, AMP_F32, PER_TENSOR, 2, big, 1, 0, true, seed++);
    check_dequantize(21, AMP_I16, AMP_BF16, PER_AXIS, 2, big, 1, 0, true, seed++);
    check_dequantize(21, AMP_U8, AMP_F16, BLOCKED, 2, big, 0, 64, true, seed++);
}

Test(dequantize_linear, bad_inputs) {
    const int64_t d[2] = {3, 4}, d2[1] = {2};
    amp_tensor *x = rnd(AMP_U8, 2, d, 0, 200, 1), *xf = rnd(AMP_F32, 2, d, -1, 1, 2);
    amp_tensor *x16 = rnd(AMP_U16, 2, d, 0, 9, 3);
    amp_tensor *s = scalar_of(AMP_F32, 0.5), *sh = scalar_of(AMP_F16, 0.5), *sd = scalar_of(AMP_F64, 0.5);
    amp_tensor *zi8 = scalar_of(AMP_I8, 1), *s2 = rnd(AMP_F32, 1, d2, 0.5, 1, 4);
    amp_test_node *t = tn_new(ctx, "DequantizeLinear");
    t->opset = 13;
    amp_tensor *in[3] = {xf, s, NULL};
    expect_status(t, 2, in, 1, AMP_ERR_UNSUPPORTED, "float x");
    in[0] = x16;
    expect_status(t, 2, in, 1, AMP_ERR_UNSUPPORTED, "uint16 x before opset 21");
    in[0] = x, in[2] = zi8;
    expect_status(t, 3, in, 1, AMP_ERR_SHAPE, "zero point dtype differs from x");
    in[1] = sh;
    expect_status(t, 2, in, 1, AMP_ERR_UNSUPPORTED, "float16 scale before opset 19");
    t->opset = 21;
    in[1] = sd;
    expect_status(t, 2, in, 1, AMP_ERR_UNSUPPORTED, "float64 scale");
    in[1] = s2;
    expect_status(t, 2, in, 1, AMP_ERR_SHAPE, "per-axis scale of the wrong length");
    tn_free(t);
    amp_tensor *all[8] = {x, xf, x16, s, sh, sd, zi8, s2};
    destroy_all(8, all);
}

/* ---- DynamicQuantizeLinear --------------------------------------------------------------------- */

/* The spec's formulas, in f32 as the schema states them. */
static void check_dynamic(int rank, const int64_t *dims, double lo, double hi, int threads, uint64_t seed) {
    char what[96];
    snprintf(what, sizeof what, "DynamicQuantizeLinear rank %d [%g, %g)", rank, lo, hi);
    amp_tensor *x = rnd(AMP_F32, rank, dims, lo, hi, seed), *out[3] = {NULL, NULL, NULL};
    amp_test_node *t = tn_new(ctx, "DynamicQuantizeLinear");
    t->opset = 11;
    t->threads = threads;
    cr_assert_eq(tn_run(t, 1, &x, 3, out), AMP_OK, "%s: %s", what, amp_context_last_error(ctx));
    expect_dims(out[0], rank, dims, what);
    cr_assert_eq(out[1]->rank, 0);
    cr_assert_eq(out[2]->rank, 0);
    cr_assert_eq(out[1]->dtype, AMP_F32);
    cr_assert_eq(out[2]->dtype, AMP_U8);
    const float *xd = x->data;
    float mx = 0, mn = 0;
    for (int64_t i = 0; i < x->numel; i++) {
        mx = fmaxf(mx, xd[i]);
        mn = fminf(mn, xd[i]);
    }
    float scale = (mx - mn) / 255.0f;
    float zp = rintf(fminf(255.0f, fmaxf(0.0f, -mn / scale)));
    cr_assert_eq(*(float *)out[1]->data, scale, "%s: scale %g, want %g", what, *(float *)out[1]->data, scale);
    cr_assert_eq(*(uint8_t *)out[2]->data, (uint8_t)zp, "%s: zero point", what);
    int64_t *ref = calloc((size_t)(x->numel + 1), sizeof(int64_t));
    for (int64_t i = 0; i < x->numel; i++) ref[i] = sat(rint((double)(xd[i] / scale)) + zp, 0, 255);
    expect_ints(out[0], AMP_U8, ref, what);
    /* quantized back, every element is within half a step of x (one more where the rounded zero
     * point pushes the maximum past 255) */
    for (int64_t i = 0; i < x->numel; i++)
        cr_assert(fabs(((double)ref[i] - zp) * scale - xd[i]) <= 1.5001 * scale, "%s: element %lld", what,
                  (long long)i);
    free(ref);
    tn_free(t);
    destroy_all(3, out);
    amp_tensor_destroy(x);
}

Test(dynamic_quantize_linear, ranges_and_shapes) {
    const int64_t d1[1] = {13}, d2[2] = {7, 9}, d3[3] = {2, 3, 5}, big[2] = {300, 131};
    check_dynamic(1, d1, -3, 5, 2, 1);
    check_dynamic(2, d2, 1, 9, 2, 2);       /* all positive: the range is widened to 0 */
    check_dynamic(3, d3, -20, -2, 2, 3);    /* all negative */
    check_dynamic(2, big, -0.7, 0.3, 4, 4); /* threaded min/max */
    /* fixed values: ties of x / scale and an all-zero input (scale then 1 / 255) */
    const double xv[6] = {0, 2, -3, -4, 5, 1};
    const int64_t d6[1] = {6};
    amp_tensor *x = tt_make(ctx, AMP_F32, 1, d6, xv), *out[3];
    amp_test_node *t = tn_new(ctx, "DynamicQuantizeLinear");
    cr_assert_eq(tn_run(t, 1, &x, 3, out), AMP_OK, "%s", amp_context_last_error(ctx));
    float scale = 9.0f / 255.0f;
    cr_assert_eq(*(float *)out[1]->data, scale);
    cr_assert_eq(*(uint8_t *)out[2]->data, 113); /* rint(4 / scale) = rint(113.33) */
    const int64_t want[6] = {113, 170, 28, 0, 255, 141};
    expect_ints(out[0], AMP_U8, want, "fixed values");
    destroy_all(3, out);
    amp_tensor_destroy(x);
    const double zv[3] = {0, 0, 0};
    const int64_t d3z[1] = {3}, wz[3] = {0, 0, 0};
    x = tt_make(ctx, AMP_F32, 1, d3z, zv);
    cr_assert_eq(tn_run(t, 1, &x, 3, out), AMP_OK, "%s", amp_context_last_error(ctx));
    cr_assert_eq(*(float *)out[1]->data, 1.0f / 255.0f);
    expect_ints(out[0], AMP_U8, wz, "zeros");
    destroy_all(3, out);
    amp_tensor_destroy(x);
    /* only f32 is in the schema */
    x = rnd(AMP_F16, 1, d1, -1, 1, 9);
    expect_status(t, 1, &x, 3, AMP_ERR_UNSUPPORTED, "float16 x");
    amp_tensor_destroy(x);
    tn_free(t);
}

/* ---- MatMulInteger, QLinearMatMul -------------------------------------------------------------- */

/* Reference integer matmul (numpy rules) of a - a_zp and b - b_zp; the zero points are indexed
 * by broadcasting into the operand's frame: a_zp over [..., M, 1] (a 1-D one is [M, 1]), b_zp
 * over [..., 1, N]. Returns the int32-wrapped sums in the output's order. */
static int64_t zp_of(const amp_tensor *zp, int side, const amp_tensor *op, const int64_t *oc) {
    if (!zp) return 0;
    if (zp->numel == 1) return amp_ldi(zp->dtype, zp->data, 0);
    int64_t zd[AMP_MAX_RANK + 1], c[AMP_MAX_RANK + 1];
    int zr = zp->rank;
    for (int d = 0; d < zr; d++) zd[d] = zp->dims[d];
    if (side == 0 && zr == 1) zd[zr++] = 1;
    for (int d = 0; d < zr; d++) {
        int od = op->rank - zr + d;
        c[d] = zd[d] == 1 ? 0 : oc[od];
    }
    return amp_ldi(zp->dtype, zp->data, ravel(zr, zd, c));
}

typedef struct mmgeo {
    int64_t M, N, K;
    int rb;
    int64_t bd[AMP_MAX_RANK];
} mmgeo;

static void mm_geo(const amp_tensor *a, const amp_tensor *b, mmgeo *g) {
    g->M = a->rank == 1 ? 1 : a->dims[a->rank - 2];
    g->K = a->dims[a->rank - 1];
    g->N = b->rank == 1 ? 1 : b->dims[b->rank - 1];
    int ra = a->rank > 2 ? a->rank - 2 : 0, rbb = b->rank > 2 ? b->rank - 2 : 0;
    g->rb = ra > rbb ? ra : rbb;
    for (int i = 0; i < g->rb; i++) {
        int ia = i - (g->rb - ra), ib = i - (g->rb - rbb);
        int64_t da = ia >= 0 ? a->dims[ia] : 1, db = ib >= 0 ? b->dims[ib] : 1;
        g->bd[i] = da == 1 ? db : da;
    }
}

/* Operand coordinates of batch coordinates bc (output frame) and the two matrix coordinates. */
static void op_coords(const amp_tensor *op, const mmgeo *g, const int64_t *bc, int64_t r, int64_t col, int64_t *oc) {
    int rop = op->rank > 2 ? op->rank - 2 : 0;
    for (int i = 0; i < rop; i++) {
        int ib = i + g->rb - rop;
        oc[i] = op->dims[i] == 1 ? 0 : bc[ib];
    }
    if (op->rank == 1) {
        oc[0] = r == -1 ? col : r; /* the vector's only dim */
        return;
    }
    oc[op->rank - 2] = r;
    oc[op->rank - 1] = col;
}

static void ref_mm(const amp_tensor *a, const amp_tensor *azp, const amp_tensor *b, const amp_tensor *bzp,
                   const mmgeo *g, int64_t *out) {
    int64_t nb = prod(g->rb, g->bd), bc[AMP_MAX_RANK], ac[AMP_MAX_RANK], bcc[AMP_MAX_RANK];
    for (int64_t bi = 0; bi < nb; bi++) {
        unravel(g->rb, g->bd, bi, bc);
        for (int64_t i = 0; i < g->M; i++)
            for (int64_t j = 0; j < g->N; j++) {
                int64_t acc = 0;
                for (int64_t kk = 0; kk < g->K; kk++) {
                    if (a->rank == 1) op_coords(a, g, bc, -1, kk, ac);
                    else op_coords(a, g, bc, i, kk, ac);
                    if (b->rank == 1) op_coords(b, g, bc, kk, 0, bcc);
                    else op_coords(b, g, bc, kk, j, bcc);
                    int64_t av = amp_ldi(a->dtype, a->data, ravel(a->rank, a->dims, ac)) - zp_of(azp, 0, a, ac);
                    int64_t bv = amp_ldi(b->dtype, b->data, ravel(b->rank, b->dims, bcc)) - zp_of(bzp, 1, b, bcc);
                    acc += av * bv;
                }
                out[(bi * g->M + i) * g->N + j] = (int32_t)(uint32_t)(uint64_t)acc;
            }
    }
}

/* Output dims of numpy matmul. */
static int mm_out_dims(const amp_tensor *a, const amp_tensor *b, const mmgeo *g, int64_t *yd) {
    int r = 0;
    for (int i = 0; i < g->rb; i++) yd[r++] = g->bd[i];
    if (a->rank > 1) yd[r++] = g->M;
    if (b->rank > 1) yd[r++] = g->N;
    return r;
}

static amp_tensor *q8_rand(amp_dtype dt, int rank, const int64_t *dims, uint64_t seed) {
    return dt == AMP_U8 ? rnd(dt, rank, dims, 0, 256, seed) : rnd(dt, rank, dims, -128, 128, seed);
}

typedef struct mmcase {
    int ra, rb;
    int64_t ad[AMP_MAX_RANK], bd[AMP_MAX_RANK];
    int azr, bzr; /* zero point ranks: -1 none, 0 scalar, else this rank with the shapes below */
    int64_t azd[AMP_MAX_RANK], bzd[AMP_MAX_RANK];
} mmcase;

static void check_matmul_integer(const mmcase *mc, amp_dtype at, amp_dtype bt, int threads, uint64_t seed) {
    char what[128];
    snprintf(what, sizeof what, "MatMulInteger %s x %s ranks %d x %d zp ranks %d %d", amp_dtype_name(at),
             amp_dtype_name(bt), mc->ra, mc->rb, mc->azr, mc->bzr);
    amp_tensor *a = q8_rand(at, mc->ra, mc->ad, seed), *b = q8_rand(bt, mc->rb, mc->bd, seed + 1);
    amp_tensor *azp = mc->azr >= 0 ? q8_rand(at, mc->azr, mc->azd, seed + 2) : NULL;
    amp_tensor *bzp = mc->bzr >= 0 ? q8_rand(bt, mc->bzr, mc->bzd, seed + 3) : NULL;
    amp_test_node *t = tn_new(ctx, "MatMulInteger");
    t->opset = 10;
    t->threads = threads;
    amp_tensor *in[4] = {a, b, azp, bzp}, *y = NULL;
    int nin = bzp ? 4 : azp ? 3 : 2;
    cr_assert_eq(tn_run(t, nin, in, 1, &y), AMP_OK, "%s: %s", what, amp_context_last_error(ctx));
    mmgeo g;
    mm_geo(a, b, &g);
    int64_t yd[AMP_MAX_RANK];
    int yr = mm_out_dims(a, b, &g, yd);
    expect_dims(y, yr, yd, what);
    int64_t *ref = calloc((size_t)(y->numel + 1), sizeof(int64_t));
    ref_mm(a, azp, b, bzp, &g, ref);
    expect_ints(y, AMP_I32, ref, what);
    free(ref);
    tn_free(t);
    amp_tensor *all[5] = {a, b, azp, bzp, y};
    destroy_all(5, all);
}

static const mmcase MM_CASES[] = {
    {2, 2, {5, 7}, {7, 3}, -1, -1, {0}, {0}},
    {2, 2, {5, 7}, {7, 3}, 0, 0, {0}, {0}},
    {2, 2, {5, 7}, {7, 3}, 1, 1, {5}, {3}},                   /* per row / per column */
    {2, 2, {4, 9}, {9, 6}, 2, 2, {4, 1}, {1, 6}},
    {3, 3, {2, 3, 4}, {2, 4, 5}, 3, 3, {2, 3, 1}, {2, 1, 5}}, /* per batch and row / column */
    {4, 3, {2, 1, 3, 5}, {4, 5, 7}, 1, 1, {1}, {7}},          /* broadcast batches */
    {3, 2, {3, 4, 6}, {6, 2}, 3, 2, {1, 4, 1}, {1, 2}},
    {1, 2, {6}, {6, 4}, 0, 1, {0}, {4}},                      /* vector times matrix */
    {2, 1, {3, 6}, {6}, 1, 0, {3}, {0}},                      /* matrix times vector */
    {1, 1, {8}, {8}, 0, 1, {0}, {1}},
    {3, 4, {1, 3, 1}, {2, 2, 1, 5}, -1, 4, {0}, {1, 2, 1, 5}},
};

Test(matmul_integer, dtypes_shapes_and_zero_points) {
    const amp_dtype q[2] = {AMP_U8, AMP_I8};
    uint64_t seed = 300;
    for (size_t ci = 0; ci < sizeof MM_CASES / sizeof MM_CASES[0]; ci++)
        for (int ai = 0; ai < 2; ai++)
            for (int bi = 0; bi < 2; bi++) check_matmul_integer(&MM_CASES[ci], q[ai], q[bi], 2, seed += 5);
    /* larger, on threads */
    mmcase big = {3, 2, {3, 67, 129}, {129, 71}, 1, 1, {67}, {71}};
    check_matmul_integer(&big, AMP_U8, AMP_I8, 4, 999);
    /* empty K: every sum is 0 */
    mmcase k0 = {2, 2, {3, 0}, {0, 4}, 0, 0, {0}, {0}};
    check_matmul_integer(&k0, AMP_I8, AMP_U8, 2, 1001);
}

/* Sums past 2^31 wrap modulo 2^32, the overflow the spec allows the accumulation. */
Test(matmul_integer, accumulation_wraps) {
    const int64_t K = 40000, ad[2] = {2, K}, bd[2] = {K, 1};
    amp_tensor *a = mk(AMP_U8, 2, ad), *b = mk(AMP_U8, 2, bd), *y = NULL;
    memset(a->data, 255, (size_t)a->numel);
    memset(b->data, 255, (size_t)b->numel);
    ((uint8_t *)a->data)[K] = 1; /* second row sums to 65025 less 254 * 255 */
    amp_test_node *t = tn_new(ctx, "MatMulInteger");
    amp_tensor *in[2] = {a, b};
    cr_assert_eq(tn_run(t, 2, in, 1, &y), AMP_OK, "%s", amp_context_last_error(ctx));
    int64_t s0 = K * 65025, s1 = s0 - 254 * 255;
    const int64_t want[2] = {(int32_t)(uint32_t)s0, (int32_t)(uint32_t)s1};
    cr_assert(want[0] < 0, "the test must overflow");
    expect_ints(y, AMP_I32, want, "wrapped sums");
    tn_free(t);
    amp_tensor *all[3] = {a, b, y};
    destroy_all(3, all);
}

Test(matmul_integer, bad_inputs) {
    const int64_t ad[2] = {3, 4}, bd[2] = {5, 2}, bd2[2] = {4, 2}, z2[1] = {2}, z3[1] = {3}, z4[2] = {3, 2};
    amp_tensor *a = q8_rand(AMP_U8, 2, ad, 1), *b = q8_rand(AMP_U8, 2, bd, 2), *b2 = q8_rand(AMP_I8, 2, bd2, 3);
    amp_tensor *a32 = rnd(AMP_I32, 2, ad, -3, 3, 4), *zi8 = scalar_of(AMP_I8, 1), *zu2 = q8_rand(AMP_U8, 1, z2, 5);
    amp_tensor *zi3 = q8_rand(AMP_I8, 1, z3, 6), *zi32 = q8_rand(AMP_I8, 2, z4, 7);
    amp_test_node *t = tn_new(ctx, "MatMulInteger");
    amp_tensor *in[4] = {a, b, NULL, NULL};
    expect_status(t, 2, in, 1, AMP_ERR_SHAPE, "inner dims differ");
    in[1] = b2, in[0] = a32;
    expect_status(t, 2, in, 1, AMP_ERR_UNSUPPORTED, "int32 A");
    in[0] = a, in[2] = zi8;
    expect_status(t, 3, in, 1, AMP_ERR_SHAPE, "a_zero_point dtype differs from A");
    in[2] = zu2;
    expect_status(t, 3, in, 1, AMP_ERR_SHAPE, "a_zero_point of 2 for 3 rows");
    in[2] = NULL, in[3] = zi3;
    expect_status(t, 4, in, 1, AMP_ERR_SHAPE, "b_zero_point of 3 for 2 columns");
    in[3] = zi32;
    expect_status(t, 4, in, 1, AMP_ERR_SHAPE, "b_zero_point varying along K");
    tn_free(t);
    amp_tensor *all[8] = {a, b, b2, a32, zi8, zu2, zi3, zi32};
    destroy_all(8, all);
}

/* Reference QLinearMatMul: the int32 sums, then round(sum * (sa * sb / sy)) + y_zp saturated. The
 * multiplier is formed in f32 from the scales (rounded to the scale type on creation). */
static void check_qlinear_matmul(const mmcase *mc, int64_t opset, amp_dtype at, amp_dtype bt, amp_dtype yt,
                                 amp_dtype st, int threads, uint64_t seed) {
    char what[160];
    snprintf(what, sizeof what, "QLinearMatMul-%lld %s x %s -> %s scales %s ranks %d x %d", (long long)opset,
             amp_dtype_name(at), amp_dtype_name(bt), amp_dtype_name(yt), amp_dtype_name(st), mc->ra, mc->rb);
    amp_tensor *a = q8_rand(at, mc->ra, mc->ad, seed), *b = q8_rand(bt, mc->rb, mc->bd, seed + 1);
    int azr = mc->azr < 0 ? 0 : mc->azr, bzr = mc->bzr < 0 ? 0 : mc->bzr;
    amp_tensor *azp = q8_rand(at, azr, mc->azd, seed + 2), *bzp = q8_rand(bt, bzr, mc->bzd, seed + 3);
    amp_tensor *as = rnd(st, azr, mc->azd, 0.01, 0.05, seed + 4), *bs = rnd(st, bzr, mc->bzd, 0.01, 0.05, seed + 5);
    /* y_scale near the typical |sum| * sa * sb / 100, so outputs spread over the range and some saturate */
    double ysv = sqrt((double)mc->ad[mc->ra - 1]) * 128.0 * 128.0 * 0.03 * 0.03 / 60.0;
    amp_tensor *ys = scalar_of(st, ysv), *yzp = yt == AMP_U8 ? scalar_of(yt, 120) : scalar_of(yt, -7);
    amp_test_node *t = tn_new(ctx, "QLinearMatMul");
    t->opset = opset;
    t->threads = threads;
    amp_tensor *in[8] = {a, as, azp, b, bs, bzp, ys, yzp}, *y = NULL;
    cr_assert_eq(tn_run(t, 8, in, 1, &y), AMP_OK, "%s: %s", what, amp_context_last_error(ctx));
    mmgeo g;
    mm_geo(a, b, &g);
    int64_t yd[AMP_MAX_RANK], lo, hi;
    int yr = mm_out_dims(a, b, &g, yd);
    expect_dims(y, yr, yd, what);
    qrange(yt, &lo, &hi);
    int64_t *ref = calloc((size_t)(y->numel + 1), sizeof(int64_t));
    ref_mm(a, azp, b, bzp, &g, ref);
    int64_t nb = prod(g.rb, g.bd), bc[AMP_MAX_RANK], ac[AMP_MAX_RANK], bcc[AMP_MAX_RANK], nsat = 0;
    float syf = (float)tt_get(ys, 0);
    for (int64_t bi = 0; bi < nb; bi++) {
        unravel(g.rb, g.bd, bi, bc);
        for (int64_t i = 0; i < g.M; i++)
            for (int64_t j = 0; j < g.N; j++) {
                op_coords(a, &g, bc, a->rank == 1 ? -1 : i, 0, ac);
                op_coords(b, &g, bc, 0, j, bcc);
                /* the scales sit where the zero points do (same shapes here) */
                int64_t ia = 0, ib = 0;
                if (as->numel > 1) {
                    int64_t zd[AMP_MAX_RANK + 1], c[AMP_MAX_RANK + 1];
                    int zr = as->rank;
                    for (int d = 0; d < zr; d++) zd[d] = as->dims[d];
                    if (zr == 1) zd[zr++] = 1;
                    for (int d = 0; d < zr; d++) c[d] = zd[d] == 1 ? 0 : ac[a->rank - zr + d];
                    ia = ravel(zr, zd, c);
                }
                if (bs->numel > 1) {
                    int64_t c[AMP_MAX_RANK];
                    for (int d = 0; d < bs->rank; d++) c[d] = bs->dims[d] == 1 ? 0 : bcc[b->rank - bs->rank + d];
                    ib = ravel(bs->rank, bs->dims, c);
                }
                float m = ((float)tt_get(as, ia) * (float)tt_get(bs, ib)) / syf;
                int64_t o = (bi * g.M + i) * g.N + j;
                ref[o] = sat(rint((double)ref[o] * (double)m) + tt_get(yzp, 0), lo, hi);
                nsat += ref[o] == lo || ref[o] == hi;
            }
    }
    expect_ints(y, yt, ref, what);
    if (y->numel > 100) cr_assert(nsat < y->numel / 2, "%s: %lld of %lld saturated", what, (long long)nsat,
                                  (long long)y->numel);
    free(ref);
    tn_free(t);
    amp_tensor *all[9] = {a, b, azp, bzp, as, bs, ys, yzp, y};
    destroy_all(9, all);
}

Test(qlinear_matmul, dtypes_shapes_and_scales) {
    const amp_dtype q[2] = {AMP_U8, AMP_I8};
    uint64_t seed = 500;
    for (size_t ci = 0; ci < sizeof MM_CASES / sizeof MM_CASES[0]; ci++)
        for (int ai = 0; ai < 2; ai++)
            for (int bi = 0; bi < 2; bi++) {
                amp_dtype yt = q[(ai + bi + ci) % 2];
                check_qlinear_matmul(&MM_CASES[ci], 10, q[ai], q[bi], yt, AMP_F32, 2, seed += 7);
                check_qlinear_matmul(&MM_CASES[ci], 21, q[ai], q[bi], yt, ci % 2 ? AMP_F16 : AMP_BF16, 2, seed += 7);
            }
    mmcase big = {3, 2, {2, 61, 200}, {200, 77}, 0, 1, {0}, {77}};
    check_qlinear_matmul(&big, 10, AMP_U8, AMP_I8, AMP_U8, AMP_F32, 4, 2000);
}

/* Fixed values: sums that land on .5 after scaling round to even. */
Test(qlinear_matmul, ties_round_to_even) {
    const int64_t ad[2] = {1, 4}, bd[2] = {4, 4};
    const double av[4] = {1, 2, 3, 4}, bv[16] = {1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1};
    amp_tensor *a = tt_make(ctx, AMP_U8, 2, ad, av), *b = tt_make(ctx, AMP_U8, 2, bd, bv);
    amp_tensor *as = scalar_of(AMP_F32, 1), *bs = scalar_of(AMP_F32, 1), *ys = scalar_of(AMP_F32, 2);
    amp_tensor *za = scalar_of(AMP_U8, 0), *zb = scalar_of(AMP_U8, 0), *zy = scalar_of(AMP_U8, 10), *y = NULL;
    amp_tensor *in[8] = {a, as, za, b, bs, zb, ys, zy};
    amp_test_node *t = tn_new(ctx, "QLinearMatMul");
    cr_assert_eq(tn_run(t, 8, in, 1, &y), AMP_OK, "%s", amp_context_last_error(ctx));
    const int64_t want[4] = {10, 11, 12, 12}; /* 0.5, 1, 1.5, 2 rounded to even, plus 10 */
    expect_ints(y, AMP_U8, want, "ties");
    tn_free(t);
    amp_tensor *all[9] = {a, b, as, bs, ys, za, zb, zy, y};
    destroy_all(9, all);
}

Test(qlinear_matmul, bad_inputs) {
    const int64_t ad[2] = {3, 4}, bd[2] = {4, 2}, v2[1] = {2};
    amp_tensor *a = q8_rand(AMP_U8, 2, ad, 1), *b = q8_rand(AMP_U8, 2, bd, 2), *s = scalar_of(AMP_F32, 0.1);
    amp_tensor *sh = scalar_of(AMP_F16, 0.1), *z = scalar_of(AMP_U8, 1), *zi = scalar_of(AMP_I8, 1);
    amp_tensor *sv = rnd(AMP_F32, 1, v2, 0.1, 0.2, 3), *zf = scalar_of(AMP_F32, 1);
    amp_test_node *t = tn_new(ctx, "QLinearMatMul");
    t->opset = 10;
    amp_tensor *in[8] = {a, s, z, b, s, z, s, z};
    expect_status(t, 7, in, 1, AMP_ERR_INVALID_GRAPH, "seven inputs");
    in[7] = NULL;
    expect_status(t, 8, in, 1, AMP_ERR_INVALID_GRAPH, "y_zero_point omitted");
    in[7] = zf;
    expect_status(t, 8, in, 1, AMP_ERR_UNSUPPORTED, "float y_zero_point");
    in[7] = z, in[6] = sv;
    expect_status(t, 8, in, 1, AMP_ERR_SHAPE, "vector y_scale");
    in[6] = s, in[2] = zi;
    expect_status(t, 8, in, 1, AMP_ERR_SHAPE, "a_zero_point dtype differs from a");
    in[2] = z, in[4] = sh;
    expect_status(t, 8, in, 1, AMP_ERR_UNSUPPORTED, "float16 scale before opset 21");
    t->opset = 21;
    expect_status(t, 8, in, 1, AMP_ERR_SHAPE, "scales of different dtypes");
    in[4] = sv;
    expect_status(t, 8, in, 1, AMP_ERR_SHAPE, "b_scale per column with a scalar b_zero_point");
    tn_free(t);
    amp_tensor *all[8] = {a, b, s, sh, z, zi, sv, zf};
    destroy_all(8, all);
}

/* ---- ConvInteger, QLinearConv ------------------------------------------------------------------ */

typedef struct ccase {
    int nsp;
    int64_t N, C, M, group;
    int64_t in[3], k[3], s[3], d[3], pads[6];
    const char *auto_pad; /* NULL: explicit pads */
    bool wzp_per_channel;
} ccase;

/* Output size and the start padding per spatial dim, as the spec defines them. */
static void conv_out(const ccase *cc, int64_t *out, int64_t *pb) {
    for (int i = 0; i < cc->nsp; i++) {
        int64_t dk = (cc->k[i] - 1) * cc->d[i] + 1;
        if (cc->auto_pad && strcmp(cc->auto_pad, "VALID")) {
            out[i] = (cc->in[i] + cc->s[i] - 1) / cc->s[i];
            int64_t total = (out[i] - 1) * cc->s[i] + dk - cc->in[i];
            if (total < 0) total = 0;
            pb[i] = strcmp(cc->auto_pad, "SAME_UPPER") == 0 ? total / 2 : total - total / 2;
        } else {
            int64_t p0 = cc->auto_pad ? 0 : cc->pads[i], p1 = cc->auto_pad ? 0 : cc->pads[i + cc->nsp];
            out[i] = (cc->in[i] + p0 + p1 - dk) / cc->s[i] + 1;
            pb[i] = p0;
        }
    }
}

/* Int64 sums of the convolution of x - x_zp with w - w_zp (plus bias), over [N, M, out...]. */
static void ref_conv(const ccase *cc, const amp_tensor *x, int64_t xzp, const amp_tensor *w, const amp_tensor *wzp,
                     const amp_tensor *bias, int64_t *ref) {
    int64_t out[3], pb[3], osz, ksz = prod(cc->nsp, cc->k), Cg = cc->C / cc->group, Mg = cc->M / cc->group;
    conv_out(cc, out, pb);
    osz = prod(cc->nsp, out);
    int64_t xd[5] = {cc->N, cc->C, cc->in[0], cc->in[1], cc->in[2]}, wd[5] = {cc->M, Cg, cc->k[0], cc->k[1], cc->k[2]};
    for (int64_t n = 0; n < cc->N; n++)
        for (int64_t m = 0; m < cc->M; m++) {
            int64_t wz = wzp ? amp_ldi(wzp->dtype, wzp->data, wzp->numel == 1 ? 0 : m) : 0;
            for (int64_t p = 0; p < osz; p++) {
                int64_t oc[3], acc = bias ? amp_ldi(AMP_I32, bias->data, m) : 0;
                unravel(cc->nsp, out, p, oc);
                for (int64_t c = 0; c < Cg; c++)
                    for (int64_t kt = 0; kt < ksz; kt++) {
                        int64_t kc[3], xc[5] = {n, (m / Mg) * Cg + c}, wc[5] = {m, c};
                        unravel(cc->nsp, cc->k, kt, kc);
                        bool inside = true;
                        for (int i = 0; i < cc->nsp; i++) {
                            xc[2 + i] = oc[i] * cc->s[i] - pb[i] + kc[i] * cc->d[i];
                            wc[2 + i] = kc[i];
                            inside = inside && xc[2 + i] >= 0 && xc[2 + i] < cc->in[i];
                        }
                        if (!inside) continue;
                        int64_t xv = amp_ldi(x->dtype, x->data, ravel(2 + cc->nsp, xd, xc)) - xzp;
                        int64_t wv = amp_ldi(w->dtype, w->data, ravel(2 + cc->nsp, wd, wc)) - wz;
                        acc += xv * wv;
                    }
                ref[(n * cc->M + m) * osz + p] = (int32_t)(uint32_t)(uint64_t)acc;
            }
        }
}

static void conv_attrs(amp_test_node *t, const ccase *cc) {
    if (cc->group != 1) tn_int(t, "group", cc->group);
    tn_ints(t, "strides", cc->nsp, cc->s);
    tn_ints(t, "dilations", cc->nsp, cc->d);
    if (cc->auto_pad) tn_str(t, "auto_pad", cc->auto_pad);
    else tn_ints(t, "pads", 2 * cc->nsp, cc->pads);
    if (cc->nsp > 1) tn_ints(t, "kernel_shape", cc->nsp, cc->k);
}

static void conv_tensors(const ccase *cc, amp_dtype xt, amp_dtype wt, uint64_t seed, amp_tensor **x, amp_tensor **w,
                         amp_tensor **xzp, amp_tensor **wzp) {
    int64_t xd[5] = {cc->N, cc->C, cc->in[0], cc->in[1], cc->in[2]};
    int64_t wd[5] = {cc->M, cc->C / cc->group, cc->k[0], cc->k[1], cc->k[2]}, md[1] = {cc->M};
    *x = q8_rand(xt, 2 + cc->nsp, xd, seed);
    *w = q8_rand(wt, 2 + cc->nsp, wd, seed + 1);
    *xzp = q8_rand(xt, 0, NULL, seed + 2);
    *wzp = q8_rand(wt, cc->wzp_per_channel ? 1 : 0, md, seed + 3);
}

static void check_conv_integer(const ccase *cc, amp_dtype xt, amp_dtype wt, int nzp, int threads, uint64_t seed) {
    char what[160];
    snprintf(what, sizeof what, "ConvInteger %s x %s %dd N%lld C%lld M%lld g%lld %s zp %d", amp_dtype_name(xt),
             amp_dtype_name(wt), cc->nsp, (long long)cc->N, (long long)cc->C, (long long)cc->M,
             (long long)cc->group, cc->auto_pad ? cc->auto_pad : "pads", nzp);
    amp_tensor *x, *w, *xzp, *wzp, *y = NULL;
    conv_tensors(cc, xt, wt, seed, &x, &w, &xzp, &wzp);
    amp_test_node *t = tn_new(ctx, "ConvInteger");
    t->opset = 10;
    t->threads = threads;
    conv_attrs(t, cc);
    amp_tensor *in[4] = {x, w, nzp > 0 ? xzp : NULL, nzp > 1 ? wzp : NULL};
    cr_assert_eq(tn_run(t, 2 + nzp, in, 1, &y), AMP_OK, "%s: %s", what, amp_context_last_error(ctx));
    int64_t out[3], pb[3], yd[5] = {cc->N, cc->M};
    conv_out(cc, out, pb);
    for (int i = 0; i < cc->nsp; i++) yd[2 + i] = out[i];
    expect_dims(y, 2 + cc->nsp, yd, what);
    int64_t *ref = calloc((size_t)(y->numel + 1), sizeof(int64_t));
    ref_conv(cc, x, nzp > 0 ? amp_ldi(xt, xzp->data, 0) : 0, w, nzp > 1 ? wzp : NULL, NULL, ref);
    expect_ints(y, AMP_I32, ref, what);
    free(ref);
    tn_free(t);
    amp_tensor *all[5] = {x, w, xzp, wzp, y};
    destroy_all(5, all);
}

static const ccase CONV_CASES[] = {
    {2, 1, 1, 1, 1, {3, 3}, {2, 2}, {1, 1}, {1, 1}, {0, 0, 0, 0}, NULL, false},
    {2, 2, 3, 4, 1, {7, 6}, {3, 2}, {2, 1}, {1, 2}, {1, 0, 2, 1}, NULL, true},
    {2, 1, 4, 6, 2, {5, 9}, {3, 3}, {1, 2}, {1, 1}, {1, 1, 1, 1}, NULL, true}, /* groups */
    {2, 2, 4, 4, 4, {6, 5}, {3, 3}, {1, 1}, {1, 1}, {0}, "SAME_UPPER", false}, /* depthwise */
    {2, 1, 2, 3, 1, {8, 7}, {2, 3}, {3, 2}, {1, 1}, {0}, "SAME_LOWER", true},
    {2, 1, 2, 3, 1, {8, 7}, {2, 3}, {2, 2}, {2, 1}, {0}, "VALID", false},
    {1, 3, 5, 2, 1, {11}, {3}, {2}, {2}, {2, 1}, NULL, true},
    {3, 1, 2, 3, 1, {4, 5, 3}, {2, 3, 2}, {1, 2, 1}, {1, 1, 2}, {1, 0, 0, 0, 1, 1}, NULL, true},
};

Test(conv_integer, dtypes_geometry_and_zero_points) {
    const amp_dtype q[2] = {AMP_U8, AMP_I8};
    uint64_t seed = 700;
    for (size_t ci = 0; ci < sizeof CONV_CASES / sizeof CONV_CASES[0]; ci++)
        for (int xi = 0; xi < 2; xi++)
            for (int wi = 0; wi < 2; wi++)
                check_conv_integer(&CONV_CASES[ci], q[xi], q[wi], (int)((ci + (size_t)xi + (size_t)wi) % 3), 2,
                                   seed += 5);
    ccase big = {2, 2, 8, 16, 2, {23, 19}, {3, 3}, {1, 1}, {1, 1}, {1, 1, 1, 1}, NULL, true};
    check_conv_integer(&big, AMP_U8, AMP_I8, 2, 4, 999);
}

static void check_qlinear_conv(const ccase *cc, amp_dtype xt, amp_dtype wt, amp_dtype yt, bool with_bias, int threads,
                               uint64_t seed) {
    char what[160];
    snprintf(what, sizeof what, "QLinearConv %s x %s -> %s %dd C%lld M%lld g%lld %s bias %d", amp_dtype_name(xt),
             amp_dtype_name(wt), amp_dtype_name(yt), cc->nsp, (long long)cc->C, (long long)cc->M,
             (long long)cc->group, cc->auto_pad ? cc->auto_pad : "pads", with_bias);
    amp_tensor *x, *w, *xzp, *wzp, *y = NULL;
    conv_tensors(cc, xt, wt, seed, &x, &w, &xzp, &wzp);
    int64_t md[1] = {cc->M}, lo, hi;
    amp_tensor *xs = scalar_of(AMP_F32, 0.02);
    amp_tensor *ws = rnd(AMP_F32, cc->wzp_per_channel ? 1 : 0, md, 0.01, 0.04, seed + 4);
    double ksz = (double)(cc->C / cc->group * prod(cc->nsp, cc->k));
    amp_tensor *ys = scalar_of(AMP_F32, sqrt(ksz) * 128 * 128 * 0.02 * 0.025 / 50.0);
    amp_tensor *yzp = yt == AMP_U8 ? scalar_of(yt, 131) : scalar_of(yt, 5);
    amp_tensor *bias = with_bias ? rnd(AMP_I32, 1, md, -3000, 3000, seed + 5) : NULL;
    amp_test_node *t = tn_new(ctx, "QLinearConv");
    t->opset = 10;
    t->threads = threads;
    conv_attrs(t, cc);
    amp_tensor *in[9] = {x, xs, xzp, w, ws, wzp, ys, yzp, bias};
    cr_assert_eq(tn_run(t, with_bias ? 9 : 8, in, 1, &y), AMP_OK, "%s: %s", what, amp_context_last_error(ctx));
    int64_t out[3], pb[3], yd[5] = {cc->N, cc->M};
    conv_out(cc, out, pb);
    for (int i = 0; i < cc->nsp; i++) yd[2 + i] = out[i];
    expect_dims(y, 2 + cc->nsp, yd, what);
    int64_t *ref = calloc((size_t)(y->numel + 1), sizeof(int64_t)), osz = prod(cc->nsp, out), nsat = 0;
    ref_conv(cc, x, amp_ldi(xt, xzp->data, 0), w, wzp, bias, ref);
    qrange(yt, &lo, &hi);
    for (int64_t i = 0; i < y->numel; i++) {
        int64_t m = (i / osz) % cc->M;
        float mult = ((float)tt_get(xs, 0) * (float)tt_get(ws, ws->numel == 1 ? 0 : m)) / (float)tt_get(ys, 0);
        ref[i] = sat(rint((double)ref[i] * (double)mult) + tt_get(yzp, 0), lo, hi);
        nsat += ref[i] == lo || ref[i] == hi;
    }
    expect_ints(y, yt, ref, what);
    if (y->numel > 100) cr_assert(nsat < y->numel / 2, "%s: %lld saturated", what, (long long)nsat);
    free(ref);
    tn_free(t);
    amp_tensor *all[10] = {x, w, xzp, wzp, xs, ws, ys, yzp, bias, y};
    destroy_all(10, all);
}

Test(qlinear_conv, dtypes_geometry_scales_and_bias) {
    const amp_dtype q[2] = {AMP_U8, AMP_I8};
    uint64_t seed = 900;
    for (size_t ci = 0; ci < sizeof CONV_CASES / sizeof CONV_CASES[0]; ci++)
        for (int xi = 0; xi < 2; xi++)
            for (int wi = 0; wi < 2; wi++)
                check_qlinear_conv(&CONV_CASES[ci], q[xi], q[wi], q[(ci + (size_t)wi) % 2], (xi + wi) % 2 == 0, 2,
                                   seed += 7);
    ccase big = {2, 2, 6, 8, 1, {21, 17}, {3, 3}, {1, 1}, {1, 1}, {1, 1, 1, 1}, NULL, true};
    check_qlinear_conv(&big, AMP_U8, AMP_I8, AMP_U8, true, 4, 1999);
}

Test(conv_integer, bad_inputs) {
    const int64_t xd[4] = {1, 2, 5, 5}, wd[4] = {3, 2, 3, 3}, wbad[4] = {3, 3, 3, 3}, x2[2] = {2, 5};
    const int64_t v2[1] = {2}, v3[1] = {3}, w3[3] = {3, 2, 3}, b4[1] = {4};
    amp_tensor *x = q8_rand(AMP_U8, 4, xd, 1), *w = q8_rand(AMP_I8, 4, wd, 2), *wb = q8_rand(AMP_I8, 4, wbad, 3);
    amp_tensor *xr2 = q8_rand(AMP_U8, 2, x2, 4), *zx2 = q8_rand(AMP_U8, 1, v2, 5), *zw2 = q8_rand(AMP_I8, 1, v2, 6);
    amp_tensor *zx = scalar_of(AMP_U8, 3), *zw = scalar_of(AMP_I8, 1), *wr3 = q8_rand(AMP_I8, 3, w3, 7);
    amp_tensor *x32 = rnd(AMP_I32, 4, xd, -3, 3, 8), *zwu = scalar_of(AMP_U8, 1);
    amp_test_node *t = tn_new(ctx, "ConvInteger");
    amp_tensor *in[4] = {xr2, w, NULL, NULL};
    expect_status(t, 2, in, 1, AMP_ERR_SHAPE, "rank-2 x");
    in[0] = x, in[1] = wr3;
    expect_status(t, 2, in, 1, AMP_ERR_SHAPE, "w rank differs");
    in[1] = wb;
    expect_status(t, 2, in, 1, AMP_ERR_SHAPE, "channels differ");
    in[1] = w, in[0] = x32;
    expect_status(t, 2, in, 1, AMP_ERR_UNSUPPORTED, "int32 x");
    in[0] = x, in[2] = zx2;
    expect_status(t, 3, in, 1, AMP_ERR_SHAPE, "vector x_zero_point");
    in[2] = zx, in[3] = zw2;
    expect_status(t, 4, in, 1, AMP_ERR_SHAPE, "w_zero_point of 2 for 3 filters");
    in[3] = zwu;
    expect_status(t, 4, in, 1, AMP_ERR_SHAPE, "w_zero_point dtype differs from w");
    tn_free(t);
    t = tn_new(ctx, "ConvInteger");
    const int64_t big_pads[4] = {0, 0, 0, 0}, ks[2] = {4, 4};
    tn_ints(t, "pads", 4, big_pads);
    tn_ints(t, "kernel_shape", 2, ks);
    in[2] = zx, in[3] = zw;
    expect_status(t, 4, in, 1, AMP_ERR_SHAPE, "kernel_shape disagrees with w");
    tn_free(t);

    /* QLinearConv: bias shape and dtype, vector x_scale */
    amp_tensor *s = scalar_of(AMP_F32, 0.1), *sv = rnd(AMP_F32, 1, v3, 0.1, 0.2, 9);
    amp_tensor *b = rnd(AMP_I32, 1, v3, -9, 9, 10), *bb = rnd(AMP_I32, 1, b4, -9, 9, 11);
    amp_tensor *bf = rnd(AMP_F32, 1, v3, -1, 1, 12);
    t = tn_new(ctx, "QLinearConv");
    amp_tensor *qin[9] = {x, s, zx, w, sv, zw, s, zx, bb};
    expect_status(t, 9, qin, 1, AMP_ERR_SHAPE, "bias of 4 for 3 filters");
    qin[8] = bf;
    expect_status(t, 9, qin, 1, AMP_ERR_UNSUPPORTED, "float bias");
    qin[8] = b, qin[1] = sv;
    expect_status(t, 9, qin, 1, AMP_ERR_SHAPE, "vector x_scale");
    qin[1] = s, qin[6] = sv;
    expect_status(t, 9, qin, 1, AMP_ERR_SHAPE, "vector y_scale");
    qin[6] = s;
    expect_status(t, 7, qin, 1, AMP_ERR_INVALID_GRAPH, "seven inputs");
    amp_tensor *y = NULL;
    cr_assert_eq(tn_run(t, 9, qin, 1, &y), AMP_OK, "%s", amp_context_last_error(ctx));
    amp_tensor_destroy(y);
    tn_free(t);
    amp_tensor *all[16] = {x, w, wb, xr2, zx2, zw2, zx, zw, wr3, x32, zwu, s, sv, b, bb, bf};
    destroy_all(16, all);
}

/* ---- empty tensors ------------------------------------------------------------------------------- */

/* Zero-size inputs give zero-size outputs (or sums of nothing) and read nothing. */
Test(quant_table, empty_tensors) {
    const int64_t e2[2] = {0, 3}, e3[3] = {2, 0, 4}, a2[2] = {3, 0}, b2[2] = {0, 2}, xe[4] = {0, 2, 5, 5},
                  we[4] = {3, 2, 3, 3}, xc0[4] = {1, 0, 4, 4}, wc0[4] = {2, 0, 2, 2};
    amp_tensor *y = NULL, *out[3] = {NULL, NULL, NULL};
    amp_tensor *xf = mk(AMP_F32, 2, e2), *s = scalar_of(AMP_F32, 0.5), *z = scalar_of(AMP_U8, 3);
    amp_tensor *in[3] = {xf, s, z};
    amp_test_node *t = tn_new(ctx, "QuantizeLinear");
    cr_assert_eq(tn_run(t, 3, in, 1, &y), AMP_OK, "%s", amp_context_last_error(ctx));
    expect_dims(y, 2, e2, "empty QuantizeLinear");
    amp_tensor_destroy(y);
    tn_free(t);
    amp_tensor *xq = mk(AMP_U8, 3, e3), *s4 = rnd(AMP_F32, 1, (const int64_t[]){4}, 0.1, 1, 1);
    amp_tensor *din[2] = {xq, s4};
    t = tn_new(ctx, "DequantizeLinear");
    tn_int(t, "axis", 2);
    cr_assert_eq(tn_run(t, 2, din, 1, &y), AMP_OK, "%s", amp_context_last_error(ctx));
    expect_dims(y, 3, e3, "empty DequantizeLinear");
    amp_tensor_destroy(y);
    tn_free(t);
    t = tn_new(ctx, "DynamicQuantizeLinear");
    cr_assert_eq(tn_run(t, 1, &xf, 3, out), AMP_OK, "%s", amp_context_last_error(ctx));
    cr_assert_eq(*(float *)out[1]->data, 1.0f / 255.0f, "empty input: scale as for all zeros");
    destroy_all(3, out);
    tn_free(t);
    /* K = 0 sums to 0 (MatMulInteger) or to the zero point (QLinearMatMul) */
    amp_tensor *a = mk(AMP_U8, 2, a2), *b = mk(AMP_I8, 2, b2), *zi = scalar_of(AMP_I8, 1), *yz = scalar_of(AMP_U8, 7);
    amp_tensor *min[4] = {a, b, z, zi};
    t = tn_new(ctx, "MatMulInteger");
    cr_assert_eq(tn_run(t, 4, min, 1, &y), AMP_OK, "%s", amp_context_last_error(ctx));
    const int64_t zeros[6] = {0}, sevens[6] = {7, 7, 7, 7, 7, 7};
    expect_ints(y, AMP_I32, zeros, "K = 0");
    amp_tensor_destroy(y);
    tn_free(t);
    amp_tensor *qin[8] = {a, s, z, b, s, zi, s, yz};
    t = tn_new(ctx, "QLinearMatMul");
    cr_assert_eq(tn_run(t, 8, qin, 1, &y), AMP_OK, "%s", amp_context_last_error(ctx));
    expect_ints(y, AMP_U8, sevens, "K = 0 requantized");
    amp_tensor_destroy(y);
    tn_free(t);
    /* an empty batch, and no input channels (every sum empty) */
    amp_tensor *x0 = mk(AMP_U8, 4, xe), *w = rnd(AMP_I8, 4, we, -5, 5, 2);
    amp_tensor *xc = mk(AMP_U8, 4, xc0), *wc = mk(AMP_I8, 4, wc0);
    amp_tensor *cin[2] = {x0, w};
    t = tn_new(ctx, "ConvInteger");
    cr_assert_eq(tn_run(t, 2, cin, 1, &y), AMP_OK, "%s", amp_context_last_error(ctx));
    cr_assert_eq(y->numel, 0);
    amp_tensor_destroy(y);
    cin[0] = xc, cin[1] = wc;
    cr_assert_eq(tn_run(t, 2, cin, 1, &y), AMP_OK, "%s", amp_context_last_error(ctx));
    const int64_t yd[4] = {1, 2, 3, 3};
    expect_dims(y, 4, yd, "no channels");
    int64_t z18[18] = {0};
    expect_ints(y, AMP_I32, z18, "no channels");
    amp_tensor_destroy(y);
    tn_free(t);
    amp_tensor *all[13] = {xf, s, z, xq, s4, a, b, zi, yz, x0, w, xc, wc};
    destroy_all(13, all);
}

/* ---- the op table -------------------------------------------------------------------------------- */

Test(quant_table, opsets_classes_and_gradients) {
    static const struct {
        const char *name;
        int lo, hi;
    } ops[] = {{"QuantizeLinear", 10, 22},  {"DequantizeLinear", 10, 22}, {"DynamicQuantizeLinear", 11, 28},
               {"MatMulInteger", 10, 28},   {"ConvInteger", 10, 28},      {"QLinearMatMul", 10, 28},
               {"QLinearConv", 10, 28}};
    for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++) {
        amp_op op = amp_op_lookup(ops[i].name, "");
        cr_assert_neq(op, AMP_OP_UNKNOWN, "%s is not in the table", ops[i].name);
        cr_assert_eq(amp_op_table[op].opset_lo, ops[i].lo, "%s", ops[i].name);
        cr_assert_eq(amp_op_table[op].opset_hi, ops[i].hi, "%s", ops[i].name);
        /* integer ops: autocast leaves them and their float scales alone, and they have no gradient */
        cr_assert_eq(amp_op_table[op].cast_class, AMP_CLASS_NONE, "%s", ops[i].name);
        cr_assert(!amp_op_table[op].has_grad, "%s", ops[i].name);
    }
}

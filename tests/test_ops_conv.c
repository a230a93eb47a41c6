/* Conv, ConvTranspose and the pools against direct loops written here in double.
 * 16-bit inputs are rounded on creation and the references read those rounded values, so what
 * is left is the kernel's f32 arithmetic and the one rounding on store. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backends/cpu/kernels.h"
#include "testutil.h"

static amp_context *ctx;
static void setup(void) { cr_assert_eq(amp_context_create(NULL, &ctx), AMP_OK); }
static void teardown(void) { amp_context_destroy(ctx); }
TestSuite(conv, .init = setup, .fini = teardown);

#include "conv_testutil.h"

static const amp_dtype FLOATS[] = {AMP_F32, AMP_F16, AMP_BF16, AMP_F64};
#define N_FLOATS 4

/* =========================================================================================== */
/* Conv                                                                                        */

typedef struct conv_case {
    int64_t N, C, M, group;
    int nsp;
    int64_t in[6], k[6], s[6], d[6], pb[6], pe[6];
    int bias;
    const char *auto_pad; /* NULL: pads given; otherwise pb/pe hold the pads it must produce */
    int kernel_attr;      /* also pass kernel_shape */
    int threads;
} conv_case;

static void ref_conv(const conv_case *cc, const amp_tensor *X, const amp_tensor *W, const amp_tensor *B,
                     const int64_t *out, double *y) {
    int nsp = cc->nsp;
    int64_t Cg = cc->C / cc->group, Mg = cc->M / cc->group;
    int64_t insz = prod(nsp, cc->in), ksz = prod(nsp, cc->k), outsz = prod(nsp, out);
    for (int64_t n = 0; n < cc->N; n++)
        for (int64_t m = 0; m < cc->M; m++) {
            int64_t g = m / Mg;
            int64_t o[6] = {0};
            for (int64_t p = 0; p < outsz; p++, step(nsp, o, out)) {
                double acc = B ? tt_get(B, m) : 0.0;
                for (int64_t c = 0; c < Cg; c++) {
                    int64_t kk[6] = {0};
                    for (int64_t q = 0; q < ksz; q++, step(nsp, kk, cc->k)) {
                        int64_t off = 0;
                        int inside = 1;
                        for (int i = 0; i < nsp; i++) {
                            int64_t ii = o[i] * cc->s[i] - cc->pb[i] + kk[i] * cc->d[i];
                            if (ii < 0 || ii >= cc->in[i]) inside = 0;
                            off = off * cc->in[i] + ii;
                        }
                        if (!inside) continue;
                        acc += tt_get(X, (n * cc->C + g * Cg + c) * insz + off) * tt_get(W, (m * Cg + c) * ksz + q);
                    }
                }
                y[(n * cc->M + m) * outsz + p] = acc;
            }
        }
}

static void run_conv_case(const conv_case *cc, amp_dtype dt, const char *what) {
    int nsp = cc->nsp, rank = nsp + 2;
    int64_t xd[8] = {cc->N, cc->C}, wd[8] = {cc->M, cc->C / cc->group}, bd[1] = {cc->M}, yd[8] = {cc->N, cc->M};
    int64_t out[6], pads[12];
    for (int i = 0; i < nsp; i++) {
        xd[i + 2] = cc->in[i];
        wd[i + 2] = cc->k[i];
        int64_t dk = (cc->k[i] - 1) * cc->d[i] + 1;
        out[i] = (cc->in[i] + cc->pb[i] + cc->pe[i] - dk) / cc->s[i] + 1;
        yd[i + 2] = out[i];
        pads[i] = cc->pb[i];
        pads[i + nsp] = cc->pe[i];
    }
    amp_tensor *in[3] = {tt_rand(ctx, dt, rank, xd, -1, 1, 11), tt_rand(ctx, dt, rank, wd, -1, 1, 12),
                         cc->bias ? tt_rand(ctx, dt, 1, bd, -1, 1, 13) : NULL};
    amp_tensor *y[1];
    amp_test_node *t = tn_new(ctx, "Conv");
    t->threads = cc->threads ? cc->threads : 2;
    if (cc->group != 1) tn_int(t, "group", cc->group);
    tn_ints(t, "strides", nsp, cc->s);
    tn_ints(t, "dilations", nsp, cc->d);
    if (cc->kernel_attr) tn_ints(t, "kernel_shape", nsp, cc->k);
    if (cc->auto_pad)
        tn_str(t, "auto_pad", cc->auto_pad);
    else
        tn_ints(t, "pads", 2 * nsp, pads);
    amp_status s = tn_run(t, cc->bias ? 3 : 2, in, 1, y);
    cr_assert_eq(s, AMP_OK, "%s: %s", what, amp_context_last_error(ctx));
    double *ref = malloc(sizeof(double) * (size_t)(prod(rank, yd) + 1));
    ref_conv(cc, in[0], in[1], in[2], out, ref);
    expect_close(y[0], dt, rank, yd, ref, what);
    free(ref);
    free_all(y, 1);
    free_all(in, 3);
    tn_free(t);
}

static void conv_all_dtypes(const conv_case *cc, const char *what) {
    for (int i = 0; i < N_FLOATS; i++)
        run_conv_case(cc, FLOATS[i], what);
}

Test(conv, conv2d_odd_grouped_strided_dilated_asymmetric_pads) {
    /* 5x7 images, 3 channels, kernel 3x2, stride 2, dilation 2, groups 3, asymmetric pads */
    conv_case cc = {.N = 2,
                    .C = 3,
                    .M = 6,
                    .group = 3,
                    .nsp = 2,
                    .in = {5, 7},
                    .k = {3, 2},
                    .s = {2, 2},
                    .d = {2, 2},
                    .pb = {1, 0},
                    .pe = {2, 1},
                    .bias = 1};
    conv_all_dtypes(&cc, "conv2d odd");
    cc.threads = 1;
    run_conv_case(&cc, AMP_F32, "conv2d odd, one thread");
}

/* Depthwise 2-D convolutions take a direct kernel: 3-wide kernels at strides 1 and 2 (its
 * unrolled rows), other widths, dilation, asymmetric pads, channel multipliers, planes narrower
 * than the kernel, and one or two threads. */
Test(conv, depthwise_direct_kernel) {
    const struct {
        int64_t C, mult, in[2], k[2], s[2], d[2], pb[2], pe[2];
    } dw[] = {
        {5, 1, {9, 11}, {3, 3}, {1, 1}, {1, 1}, {1, 1}, {1, 1}},
        {4, 1, {8, 13}, {3, 3}, {2, 2}, {1, 1}, {1, 1}, {1, 1}},
        {3, 2, {7, 6}, {3, 3}, {1, 2}, {2, 2}, {2, 0}, {1, 2}},
        {6, 1, {10, 9}, {5, 5}, {1, 1}, {1, 1}, {2, 2}, {2, 2}},
        {2, 3, {6, 7}, {2, 4}, {3, 1}, {1, 2}, {0, 3}, {1, 0}},
        {3, 1, {2, 2}, {3, 3}, {1, 1}, {1, 1}, {1, 1}, {1, 1}},
        {2, 1, {5, 1}, {3, 3}, {2, 1}, {1, 1}, {1, 1}, {1, 1}},
    };
    for (size_t i = 0; i < sizeof dw / sizeof dw[0]; i++)
        for (int th = 1; th <= 2; th++) {
            conv_case cc = {.N = 3, .C = dw[i].C, .M = dw[i].C * dw[i].mult, .group = dw[i].C, .nsp = 2,
                            .bias = (int)(i % 2), .threads = th};
            for (int a = 0; a < 2; a++) {
                cc.in[a] = dw[i].in[a];
                cc.k[a] = dw[i].k[a];
                cc.s[a] = dw[i].s[a];
                cc.d[a] = dw[i].d[a];
                cc.pb[a] = dw[i].pb[a];
                cc.pe[a] = dw[i].pe[a];
            }
            char what[64];
            snprintf(what, sizeof what, "depthwise case %zu, %d thread(s)", i, th);
            conv_all_dtypes(&cc, what);
        }
}

Test(conv, conv2d_plain_and_kernel_shape_attr) {
    conv_case cc = {.N = 3,
                    .C = 4,
                    .M = 5,
                    .group = 1,
                    .nsp = 2,
                    .in = {6, 5},
                    .k = {3, 3},
                    .s = {1, 1},
                    .d = {1, 1},
                    .bias = 1,
                    .kernel_attr = 1};
    conv_all_dtypes(&cc, "conv2d 3x3");
    cc.bias = 0;
    cc.s[1] = 3;
    conv_all_dtypes(&cc, "conv2d no bias, stride 1x3");
}

Test(conv, conv_1x1_is_a_plain_gemm) {
    conv_case cc = {
        .N = 3, .C = 4, .M = 5, .group = 1, .nsp = 2, .in = {6, 5}, .k = {1, 1}, .s = {1, 1}, .d = {1, 1}, .bias = 1};
    conv_all_dtypes(&cc, "conv 1x1");
    cc.group = 2;
    cc.M = 6;
    cc.bias = 0;
    conv_all_dtypes(&cc, "conv 1x1 grouped");
    cc.s[0] = 2; /* strided 1x1 needs the column matrix again */
    conv_all_dtypes(&cc, "conv 1x1 stride 2");
}

Test(conv, depthwise) {
    conv_case cc = {.N = 2,
                    .C = 4,
                    .M = 4,
                    .group = 4,
                    .nsp = 2,
                    .in = {7, 6},
                    .k = {3, 3},
                    .s = {1, 2},
                    .d = {1, 1},
                    .pb = {1, 1},
                    .pe = {1, 1},
                    .bias = 1};
    conv_all_dtypes(&cc, "depthwise");
    cc.M = 8; /* channel multiplier 2 */
    conv_all_dtypes(&cc, "depthwise x2");
}

Test(conv, conv1d_3d_and_4_spatial_dims) {
    conv_case c1 = {.N = 2,
                    .C = 3,
                    .M = 4,
                    .group = 1,
                    .nsp = 1,
                    .in = {11},
                    .k = {3},
                    .s = {2},
                    .d = {3},
                    .pb = {2},
                    .pe = {1},
                    .bias = 1};
    conv_all_dtypes(&c1, "conv1d");
    conv_case c3 = {.N = 2,
                    .C = 2,
                    .M = 3,
                    .group = 1,
                    .nsp = 3,
                    .in = {4, 5, 3},
                    .k = {2, 3, 2},
                    .s = {1, 2, 1},
                    .d = {1, 1, 2},
                    .pb = {1, 0, 1},
                    .pe = {0, 1, 1},
                    .bias = 1};
    conv_all_dtypes(&c3, "conv3d");
    conv_case c4 = {.N = 1,
                    .C = 2,
                    .M = 2,
                    .group = 2,
                    .nsp = 4,
                    .in = {3, 4, 3, 2},
                    .k = {2, 2, 1, 2},
                    .s = {1, 2, 1, 1},
                    .d = {1, 1, 1, 1},
                    .pb = {0, 1, 0, 1},
                    .pe = {1, 0, 0, 0},
                    .bias = 0};
    conv_all_dtypes(&c4, "conv 4 spatial dims");
}

Test(conv, auto_pad_modes) {
    /* in 6, kernel 3, stride 2: output 3 and one pad in all, at the end (UPPER) or start (LOWER) */
    conv_case cc = {.N = 2,
                    .C = 2,
                    .M = 3,
                    .group = 1,
                    .nsp = 2,
                    .in = {6, 5},
                    .k = {3, 2},
                    .s = {2, 1},
                    .d = {1, 1},
                    .pb = {0, 0},
                    .pe = {1, 1},
                    .bias = 1,
                    .auto_pad = "SAME_UPPER"};
    conv_all_dtypes(&cc, "SAME_UPPER");
    conv_case cl = cc;
    cl.auto_pad = "SAME_LOWER";
    cl.pb[0] = 1, cl.pe[0] = 0, cl.pb[1] = 1, cl.pe[1] = 0;
    conv_all_dtypes(&cl, "SAME_LOWER");
    conv_case cv = cc;
    cv.auto_pad = "VALID";
    memset(cv.pb, 0, sizeof cv.pb);
    memset(cv.pe, 0, sizeof cv.pe);
    conv_all_dtypes(&cv, "VALID");
    cv.auto_pad = "NOTSET";
    conv_all_dtypes(&cv, "NOTSET without pads");
}

Test(conv, larger_batch_runs_in_parallel) {
    conv_case cc = {.N = 9,
                    .C = 6,
                    .M = 8,
                    .group = 2,
                    .nsp = 2,
                    .in = {12, 10},
                    .k = {5, 3},
                    .s = {1, 1},
                    .d = {1, 1},
                    .pb = {2, 1},
                    .pe = {2, 1},
                    .bias = 1,
                    .threads = 4};
    run_conv_case(&cc, AMP_F32, "batch 9, 4 threads");
    run_conv_case(&cc, AMP_F16, "batch 9, 4 threads");
}

Test(conv, zero_batch) {
    int64_t xd[4] = {0, 2, 5, 5}, wd[4] = {3, 2, 3, 3};
    amp_tensor *in[2] = {tt_rand(ctx, AMP_F32, 4, xd, -1, 1, 1), tt_rand(ctx, AMP_F32, 4, wd, -1, 1, 2)}, *y[1];
    amp_test_node *t = tn_new(ctx, "Conv");
    cr_assert_eq(tn_run(t, 2, in, 1, y), AMP_OK, "%s", amp_context_last_error(ctx));
    int64_t want[4] = {0, 3, 3, 3};
    for (int i = 0; i < 4; i++)
        cr_assert_eq(y[0]->dims[i], want[i]);
    free_all(y, 1);
    free_all(in, 2);
    tn_free(t);
}

static amp_status conv_status(const char *op, amp_dtype dt, int rank, const int64_t *xd, const int64_t *wd,
                              const int64_t *bd, void (*attrs)(amp_test_node *)) {
    amp_tensor *in[3] = {tt_rand(ctx, dt, rank, xd, -1, 1, 1), tt_rand(ctx, dt, rank, wd, -1, 1, 2),
                         bd ? tt_rand(ctx, dt, 1, bd, -1, 1, 3) : NULL};
    amp_tensor *y[1];
    amp_test_node *t = tn_new(ctx, op);
    if (attrs) attrs(t);
    amp_status s = tn_run(t, bd ? 3 : 2, in, 1, y);
    if (s == AMP_OK) free_all(y, 1);
    free_all(in, 3);
    tn_free(t);
    return s;
}

static void attr_group2(amp_test_node *t) { tn_int(t, "group", 2); }
static void attr_bad_kernel(amp_test_node *t) {
    int64_t k[2] = {2, 2};
    tn_ints(t, "kernel_shape", 2, k);
}
static void attr_bad_pads(amp_test_node *t) {
    int64_t p[3] = {1, 1, 1};
    tn_ints(t, "pads", 3, p);
}
static void attr_bad_autopad(amp_test_node *t) { tn_str(t, "auto_pad", "SAME"); }
static void attr_zero_stride(amp_test_node *t) {
    int64_t s[2] = {1, 0};
    tn_ints(t, "strides", 2, s);
}

Test(conv, bad_inputs) {
    int64_t xd[4] = {1, 3, 5, 5}, wd[4] = {4, 2, 3, 3}, wok[4] = {4, 3, 3, 3}, b3[1] = {3}, big[4] = {4, 3, 7, 3};
    cr_assert_eq(conv_status("Conv", AMP_F32, 4, xd, wd, NULL, NULL), AMP_ERR_SHAPE, "channel mismatch");
    cr_assert_eq(conv_status("Conv", AMP_F32, 4, xd, wok, b3, NULL), AMP_ERR_SHAPE, "bias of the wrong size");
    cr_assert_eq(conv_status("Conv", AMP_F32, 4, xd, wok, NULL, attr_group2), AMP_ERR_SHAPE, "group 2 of 3 channels");
    cr_assert_eq(conv_status("Conv", AMP_F32, 4, xd, wok, NULL, attr_bad_kernel), AMP_ERR_SHAPE, "kernel_shape vs W");
    cr_assert_eq(conv_status("Conv", AMP_F32, 4, xd, wok, NULL, attr_bad_pads), AMP_ERR_INVALID_GRAPH, "3 pads");
    cr_assert_eq(conv_status("Conv", AMP_F32, 4, xd, wok, NULL, attr_bad_autopad), AMP_ERR_INVALID_GRAPH, "auto_pad");
    cr_assert_eq(conv_status("Conv", AMP_F32, 4, xd, wok, NULL, attr_zero_stride), AMP_ERR_INVALID_GRAPH, "stride 0");
    cr_assert_eq(conv_status("Conv", AMP_F32, 4, xd, big, NULL, NULL), AMP_ERR_SHAPE, "kernel larger than input");
    cr_assert_eq(conv_status("Conv", AMP_I32, 4, xd, wok, NULL, NULL), AMP_ERR_UNSUPPORTED, "int32 conv");
    int64_t x2[2] = {3, 5}, w2[2] = {4, 3};
    cr_assert_eq(conv_status("Conv", AMP_F32, 2, x2, w2, NULL, NULL), AMP_ERR_SHAPE, "rank 2");
    int64_t wct[4] = {2, 4, 3, 3};
    cr_assert_eq(conv_status("ConvTranspose", AMP_F32, 4, xd, wct, NULL, NULL), AMP_ERR_SHAPE,
                 "ConvTranspose channels");
    cr_assert_eq(conv_status("ConvTranspose", AMP_U8, 4, xd, wok, NULL, NULL), AMP_ERR_UNSUPPORTED, "uint8");
}

/* =========================================================================================== */
/* ConvTranspose                                                                               */

typedef struct convt_case {
    int64_t N, C, M, group; /* M: output channels */
    int nsp;
    int64_t in[6], k[6], s[6], d[6], pb[6], pe[6], opad[6];
    int bias;
    const char *auto_pad; /* with pb/pe the pads it must produce */
    int64_t out_shape[6]; /* nonzero: pass output_shape (pb/pe hold the pads it implies) */
} convt_case;

static void ref_convt(const convt_case *cc, const amp_tensor *X, const amp_tensor *W, const amp_tensor *B,
                      const int64_t *out, double *y) {
    int nsp = cc->nsp;
    int64_t Cg = cc->C / cc->group, Mg = cc->M / cc->group;
    int64_t insz = prod(nsp, cc->in), ksz = prod(nsp, cc->k), outsz = prod(nsp, out);
    for (int64_t n = 0; n < cc->N; n++)
        for (int64_t m = 0; m < cc->M; m++)
            for (int64_t p = 0; p < outsz; p++)
                y[(n * cc->M + m) * outsz + p] = B ? tt_get(B, m) : 0.0;
    for (int64_t n = 0; n < cc->N; n++)
        for (int64_t c = 0; c < cc->C; c++) {
            int64_t g = c / Cg;
            int64_t i[6] = {0};
            for (int64_t p = 0; p < insz; p++, step(nsp, i, cc->in)) {
                double xv = tt_get(X, (n * cc->C + c) * insz + p);
                int64_t kk[6] = {0};
                for (int64_t q = 0; q < ksz; q++, step(nsp, kk, cc->k)) {
                    int64_t off = 0;
                    int inside = 1;
                    for (int e = 0; e < nsp; e++) {
                        int64_t o = i[e] * cc->s[e] - cc->pb[e] + kk[e] * cc->d[e];
                        if (o < 0 || o >= out[e]) inside = 0;
                        off = off * out[e] + o;
                    }
                    if (!inside) continue;
                    for (int64_t m = 0; m < Mg; m++)
                        y[(n * cc->M + g * Mg + m) * outsz + off] += xv * tt_get(W, (c * Mg + m) * ksz + q);
                }
            }
        }
}

static void run_convt_case(const convt_case *cc, amp_dtype dt, const char *what) {
    int nsp = cc->nsp, rank = nsp + 2;
    int64_t xd[8] = {cc->N, cc->C}, wd[8] = {cc->C, cc->M / cc->group}, bd[1] = {cc->M}, yd[8] = {cc->N, cc->M};
    int64_t out[6], pads[12];
    for (int i = 0; i < nsp; i++) {
        xd[i + 2] = cc->in[i];
        wd[i + 2] = cc->k[i];
        out[i] = cc->s[i] * (cc->in[i] - 1) + cc->opad[i] + (cc->k[i] - 1) * cc->d[i] + 1 - cc->pb[i] - cc->pe[i];
        yd[i + 2] = out[i];
        pads[i] = cc->pb[i];
        pads[i + nsp] = cc->pe[i];
    }
    amp_tensor *in[3] = {tt_rand(ctx, dt, rank, xd, -1, 1, 21), tt_rand(ctx, dt, rank, wd, -1, 1, 22),
                         cc->bias ? tt_rand(ctx, dt, 1, bd, -1, 1, 23) : NULL};
    amp_tensor *y[1];
    amp_test_node *t = tn_new(ctx, "ConvTranspose");
    if (cc->group != 1) tn_int(t, "group", cc->group);
    tn_ints(t, "strides", nsp, cc->s);
    tn_ints(t, "dilations", nsp, cc->d);
    tn_ints(t, "output_padding", nsp, cc->opad);
    if (cc->out_shape[0]) tn_ints(t, "output_shape", nsp, cc->out_shape);
    if (cc->auto_pad)
        tn_str(t, "auto_pad", cc->auto_pad);
    else if (!cc->out_shape[0])
        tn_ints(t, "pads", 2 * nsp, pads);
    amp_status s = tn_run(t, cc->bias ? 3 : 2, in, 1, y);
    cr_assert_eq(s, AMP_OK, "%s: %s", what, amp_context_last_error(ctx));
    double *ref = malloc(sizeof(double) * (size_t)(prod(rank, yd) + 1));
    ref_convt(cc, in[0], in[1], in[2], out, ref);
    expect_close(y[0], dt, rank, yd, ref, what);
    free(ref);
    free_all(y, 1);
    free_all(in, 3);
    tn_free(t);
}

static void convt_all_dtypes(const convt_case *cc, const char *what) {
    for (int i = 0; i < N_FLOATS; i++)
        run_convt_case(cc, FLOATS[i], what);
}

Test(conv, conv_transpose_2d_odd) {
    convt_case cc = {.N = 2,
                     .C = 4,
                     .M = 6,
                     .group = 2,
                     .nsp = 2,
                     .in = {4, 3},
                     .k = {3, 2},
                     .s = {2, 3},
                     .d = {1, 2},
                     .pb = {1, 0},
                     .pe = {0, 2},
                     .opad = {1, 0},
                     .bias = 1};
    convt_all_dtypes(&cc, "convT 2d");
    convt_case c0 = {.N = 1, .C = 3, .M = 2, .group = 1, .nsp = 2, .in = {5, 7}, .k = {3, 3}, .s = {1, 1}, .d = {1, 1}};
    convt_all_dtypes(&c0, "convT plain");
}

Test(conv, conv_transpose_1d_3d) {
    convt_case c1 = {.N = 2,
                     .C = 3,
                     .M = 2,
                     .group = 1,
                     .nsp = 1,
                     .in = {6},
                     .k = {3},
                     .s = {2},
                     .d = {2},
                     .pb = {1},
                     .pe = {2},
                     .bias = 1};
    convt_all_dtypes(&c1, "convT 1d");
    convt_case c3 = {.N = 1,
                     .C = 2,
                     .M = 3,
                     .group = 1,
                     .nsp = 3,
                     .in = {3, 2, 4},
                     .k = {2, 3, 2},
                     .s = {2, 1, 2},
                     .d = {1, 1, 1},
                     .pb = {0, 1, 1},
                     .pe = {1, 1, 0},
                     .opad = {1, 0, 0},
                     .bias = 1};
    convt_all_dtypes(&c3, "convT 3d");
}

Test(conv, conv_transpose_output_shape_and_auto_pad) {
    /* Pads follow the ONNX reference (Python floor division): along dim 0 the natural size is
     * 2*(4-1)+3 = 9 and output_shape asks for 8, total pad 1: start 1 - 1//2 = 1, end 0. Along
     * dim 1 it is 3*(3-1)+2 = 8 and 10 is asked, total -2: both ends grow by one. */
    convt_case cs = {.N = 1,
                     .C = 2,
                     .M = 3,
                     .group = 1,
                     .nsp = 2,
                     .in = {4, 3},
                     .k = {3, 2},
                     .s = {2, 3},
                     .d = {1, 1},
                     .pb = {1, -1},
                     .pe = {0, -1},
                     .out_shape = {8, 10},
                     .bias = 1};
    convt_all_dtypes(&cs, "convT output_shape");
    /* SAME_UPPER asks for in*stride = (8, 9): totals 1 and -1; the start gets total//2 */
    convt_case cu = {.N = 1,
                     .C = 2,
                     .M = 3,
                     .group = 1,
                     .nsp = 2,
                     .in = {4, 3},
                     .k = {3, 2},
                     .s = {2, 3},
                     .d = {1, 1},
                     .pb = {0, -1},
                     .pe = {1, 0},
                     .auto_pad = "SAME_UPPER"};
    convt_all_dtypes(&cu, "convT SAME_UPPER");
    /* SAME_LOWER: the end gets total//2 */
    convt_case cl = cu;
    cl.auto_pad = "SAME_LOWER";
    cl.pb[0] = 1, cl.pe[0] = 0, cl.pb[1] = 0, cl.pe[1] = -1;
    convt_all_dtypes(&cl, "convT SAME_LOWER");
}

/* =========================================================================================== */
/* MaxPool, AveragePool                                                                        */

typedef struct pool_case {
    int64_t N, C;
    int nsp;
    int64_t in[6], k[6], s[6], d[6], pb[6], pe[6];
    int ceil_mode, count_pad, storage_order, indices;
    const char *auto_pad; /* pb/pe hold the pads it must produce */
} pool_case;

static int64_t pool_out(const pool_case *pc, int i) {
    int64_t dk = (pc->k[i] - 1) * pc->d[i] + 1, span = pc->in[i] + pc->pb[i] + pc->pe[i] - dk;
    if (!pc->ceil_mode) return span / pc->s[i] + 1;
    int64_t o = (span + pc->s[i] - 1) / pc->s[i] + 1;
    if ((o - 1) * pc->s[i] >= pc->in[i] + pc->pb[i]) o--;
    return o;
}

static void ref_pool(const pool_case *pc, int is_max, const amp_tensor *X, const int64_t *out, double *y, double *ind) {
    int nsp = pc->nsp;
    int64_t insz = prod(nsp, pc->in), ksz = prod(nsp, pc->k), outsz = prod(nsp, out);
    for (int64_t pl = 0; pl < pc->N * pc->C; pl++) {
        int64_t o[6] = {0};
        for (int64_t p = 0; p < outsz; p++, step(nsp, o, out)) {
            double best = -INFINITY, sum = 0;
            int64_t besti = -1, cnt = 0, cnt_pad = 0;
            int64_t kk[6] = {0};
            for (int64_t q = 0; q < ksz; q++, step(nsp, kk, pc->k)) {
                int64_t off = 0;
                int inside = 1, in_pad = 1;
                for (int i = 0; i < nsp; i++) {
                    int64_t ii = o[i] * pc->s[i] - pc->pb[i] + kk[i] * pc->d[i];
                    if (ii < 0 || ii >= pc->in[i]) inside = 0;
                    if (ii < -pc->pb[i] || ii >= pc->in[i] + pc->pe[i]) in_pad = 0;
                    off = off * pc->in[i] + ii;
                }
                cnt_pad += in_pad;
                if (!inside) continue;
                cnt++;
                double v = tt_get(X, pl * insz + off);
                sum += v;
                if (v > best) {
                    best = v;
                    besti = off;
                }
            }
            y[pl * outsz + p] = is_max ? best : sum / (double)(pc->count_pad ? cnt_pad : cnt);
            if (ind) {
                int64_t idx = besti;
                if (pc->storage_order) {
                    int64_t rem = besti, pos[6], mul = 1;
                    for (int i = nsp - 1; i >= 0; i--) {
                        pos[i] = rem % pc->in[i];
                        rem /= pc->in[i];
                    }
                    idx = 0;
                    for (int i = 0; i < nsp; i++) {
                        idx += pos[i] * mul;
                        mul *= pc->in[i];
                    }
                }
                ind[pl * outsz + p] = (double)(pl * insz + idx);
            }
        }
    }
}

static void run_pool_case(const pool_case *pc, const char *op, amp_dtype dt, const char *what) {
    int is_max = strcmp(op, "MaxPool") == 0, nsp = pc->nsp, rank = nsp + 2;
    int64_t xd[8] = {pc->N, pc->C}, yd[8] = {pc->N, pc->C}, out[6], pads[12];
    for (int i = 0; i < nsp; i++) {
        xd[i + 2] = pc->in[i];
        out[i] = yd[i + 2] = pool_out(pc, i);
        pads[i] = pc->pb[i];
        pads[i + nsp] = pc->pe[i];
    }
    /* integers: a range wide enough that windows rarely tie (ties pick the first anyway) */
    double lo = dt == AMP_U8 ? 0 : -100, hi = dt == AMP_U8 ? 250 : 100;
    if (amp_dtype_is_float(dt)) lo = -1, hi = 1;
    amp_tensor *in[1] = {tt_rand(ctx, dt, rank, xd, lo, hi, 31)}, *y[2] = {0};
    amp_test_node *t = tn_new(ctx, op);
    tn_ints(t, "kernel_shape", nsp, pc->k);
    tn_ints(t, "strides", nsp, pc->s);
    tn_ints(t, "dilations", nsp, pc->d);
    if (pc->ceil_mode) tn_int(t, "ceil_mode", 1);
    if (pc->count_pad) tn_int(t, "count_include_pad", 1);
    if (pc->storage_order) tn_int(t, "storage_order", 1);
    if (pc->auto_pad)
        tn_str(t, "auto_pad", pc->auto_pad);
    else
        tn_ints(t, "pads", 2 * nsp, pads);
    int nout = is_max && pc->indices ? 2 : 1;
    amp_status s = tn_run(t, 1, in, nout, y);
    cr_assert_eq(s, AMP_OK, "%s: %s", what, amp_context_last_error(ctx));
    int64_t n = prod(rank, yd);
    double *ref = malloc(sizeof(double) * (size_t)(n + 1)), *ind = malloc(sizeof(double) * (size_t)(n + 1));
    ref_pool(pc, is_max, in[0], out, ref, nout > 1 ? ind : NULL);
    if (is_max) {
        /* the maximum is an input element: exact in every dtype */
        cr_assert_eq(y[0]->numel, n);
        for (int64_t i = 0; i < n; i++)
            cr_assert_eq(tt_get(y[0], i), ref[i], "%s (%s): element %lld is %g, want %g", what, amp_dtype_name(dt),
                         (long long)i, tt_get(y[0], i), ref[i]);
        if (nout > 1) expect_close(y[1], AMP_I64, rank, yd, ind, what);
    } else {
        expect_close(y[0], dt, rank, yd, ref, what);
    }
    free(ref);
    free(ind);
    free_all(y, 2);
    free_all(in, 1);
    tn_free(t);
}

Test(conv, max_pool_2d_odd_every_dtype_with_indices) {
    static const amp_dtype dts[] = {AMP_F32, AMP_F16, AMP_BF16, AMP_F64, AMP_I8, AMP_U8};
    pool_case pc = {.N = 2,
                    .C = 3,
                    .nsp = 2,
                    .in = {5, 7},
                    .k = {3, 2},
                    .s = {2, 2},
                    .d = {2, 1},
                    .pb = {1, 0},
                    .pe = {2, 1},
                    .indices = 1};
    for (int i = 0; i < 6; i++)
        run_pool_case(&pc, "MaxPool", dts[i], "maxpool 2d");
    pc.ceil_mode = 1;
    pc.storage_order = 1;
    for (int i = 0; i < 6; i++)
        run_pool_case(&pc, "MaxPool", dts[i], "maxpool 2d ceil, column-major indices");
}

Test(conv, max_pool_1d_3d_and_same_pads) {
    pool_case p1 = {.N = 2,
                    .C = 2,
                    .nsp = 1,
                    .in = {11},
                    .k = {3},
                    .s = {2},
                    .d = {2},
                    .pb = {1},
                    .pe = {2},
                    .ceil_mode = 1,
                    .indices = 1,
                    .storage_order = 1};
    for (int i = 0; i < N_FLOATS; i++)
        run_pool_case(&p1, "MaxPool", FLOATS[i], "maxpool 1d");
    pool_case p3 = {.N = 1,
                    .C = 3,
                    .nsp = 3,
                    .in = {4, 5, 3},
                    .k = {2, 3, 2},
                    .s = {1, 2, 2},
                    .d = {1, 1, 1},
                    .pb = {1, 0, 1},
                    .pe = {0, 1, 0},
                    .indices = 1};
    for (int i = 0; i < N_FLOATS; i++)
        run_pool_case(&p3, "MaxPool", FLOATS[i], "maxpool 3d");
    p3.storage_order = 1;
    p3.ceil_mode = 1;
    run_pool_case(&p3, "MaxPool", AMP_I8, "maxpool 3d int8 column-major");
    /* 6 wide, kernel 3, stride 2: one pad at the end (UPPER) or the start (LOWER) */
    pool_case ps = {.N = 2,
                    .C = 2,
                    .nsp = 2,
                    .in = {6, 5},
                    .k = {3, 2},
                    .s = {2, 1},
                    .d = {1, 1},
                    .pb = {0, 0},
                    .pe = {1, 1},
                    .auto_pad = "SAME_UPPER"};
    run_pool_case(&ps, "MaxPool", AMP_F32, "maxpool SAME_UPPER");
    run_pool_case(&ps, "AveragePool", AMP_F32, "avgpool SAME_UPPER");
    ps.auto_pad = "SAME_LOWER";
    ps.pb[0] = ps.pb[1] = 1, ps.pe[0] = ps.pe[1] = 0;
    run_pool_case(&ps, "MaxPool", AMP_F32, "maxpool SAME_LOWER");
    run_pool_case(&ps, "AveragePool", AMP_F32, "avgpool SAME_LOWER");
    ps.auto_pad = "VALID";
    memset(ps.pb, 0, sizeof ps.pb);
    memset(ps.pe, 0, sizeof ps.pe);
    run_pool_case(&ps, "MaxPool", AMP_F32, "maxpool VALID");
}

Test(conv, average_pool_variants) {
    pool_case pc = {
        .N = 2, .C = 3, .nsp = 2, .in = {5, 7}, .k = {3, 2}, .s = {2, 2}, .d = {1, 1}, .pb = {1, 0}, .pe = {2, 1}};
    for (int cp = 0; cp < 2; cp++)
        for (int cm = 0; cm < 2; cm++) {
            pc.count_pad = cp;
            pc.ceil_mode = cm;
            for (int i = 0; i < N_FLOATS; i++)
                run_pool_case(&pc, "AveragePool", FLOATS[i], "avgpool 2d");
        }
    pc.d[1] = 2; /* dilations (AveragePool-19) */
    pc.count_pad = 1;
    run_pool_case(&pc, "AveragePool", AMP_F32, "avgpool dilated");
    pool_case p1 = {.N = 3,
                    .C = 1,
                    .nsp = 1,
                    .in = {9},
                    .k = {4},
                    .s = {3},
                    .d = {1},
                    .pb = {2},
                    .pe = {1},
                    .count_pad = 1,
                    .ceil_mode = 1};
    for (int i = 0; i < N_FLOATS; i++)
        run_pool_case(&p1, "AveragePool", FLOATS[i], "avgpool 1d");
    pool_case p3 = {.N = 1,
                    .C = 2,
                    .nsp = 3,
                    .in = {4, 5, 3},
                    .k = {2, 3, 2},
                    .s = {2, 1, 1},
                    .d = {1, 1, 1},
                    .pb = {1, 1, 0},
                    .pe = {0, 1, 1}};
    for (int cp = 0; cp < 2; cp++) {
        p3.count_pad = cp;
        for (int i = 0; i < N_FLOATS; i++)
            run_pool_case(&p3, "AveragePool", FLOATS[i], "avgpool 3d");
    }
}

Test(conv, pool_large_planes_in_parallel) {
    pool_case pc = {.N = 4, .C = 8, .nsp = 2, .in = {33, 31}, .k = {2, 2}, .s = {2, 2}, .d = {1, 1}, .indices = 1};
    run_pool_case(&pc, "MaxPool", AMP_F32, "maxpool big");
    run_pool_case(&pc, "AveragePool", AMP_F32, "avgpool big");
}

static amp_status pool_status(const char *op, amp_dtype dt, int64_t opset, void (*attrs)(amp_test_node *), int nout) {
    int64_t xd[4] = {1, 2, 5, 5};
    amp_tensor *in[1] = {tt_rand(ctx, dt, 4, xd, 0, 10, 1)}, *y[2] = {0};
    amp_test_node *t = tn_new(ctx, op);
    t->opset = opset;
    if (attrs) attrs(t);
    amp_status s = tn_run(t, 1, in, nout, y);
    if (s == AMP_OK) free_all(y, nout);
    free_all(in, 1);
    tn_free(t);
    return s;
}

static void attr_k3(amp_test_node *t) {
    int64_t k[2] = {3, 3};
    tn_ints(t, "kernel_shape", 2, k);
}
static void attr_k3_pads3(amp_test_node *t) {
    int64_t k[2] = {3, 3}, p[4] = {3, 0, 0, 0};
    tn_ints(t, "kernel_shape", 2, k);
    tn_ints(t, "pads", 4, p);
}
static void attr_k3_1d(amp_test_node *t) {
    int64_t k[1] = {3};
    tn_ints(t, "kernel_shape", 1, k);
}
static void attr_k7(amp_test_node *t) {
    int64_t k[2] = {7, 1};
    tn_ints(t, "kernel_shape", 2, k);
}

Test(conv, pool_bad_inputs) {
    cr_assert_eq(pool_status("MaxPool", AMP_F32, 17, NULL, 1), AMP_ERR_INVALID_GRAPH, "no kernel_shape");
    cr_assert_eq(pool_status("MaxPool", AMP_F32, 17, attr_k3_pads3, 1), AMP_ERR_INVALID_GRAPH, "pad = kernel");
    cr_assert_eq(pool_status("MaxPool", AMP_F32, 17, attr_k3_1d, 1), AMP_ERR_INVALID_GRAPH, "kernel rank");
    cr_assert_eq(pool_status("MaxPool", AMP_F32, 17, attr_k7, 1), AMP_ERR_SHAPE, "kernel larger than input");
    cr_assert_eq(pool_status("MaxPool", AMP_I32, 17, attr_k3, 1), AMP_ERR_UNSUPPORTED, "int32");
    cr_assert_eq(pool_status("MaxPool", AMP_U8, 11, attr_k3, 1), AMP_ERR_UNSUPPORTED, "uint8 before opset 12");
    cr_assert_eq(pool_status("MaxPool", AMP_U8, 12, attr_k3, 2), AMP_OK, "uint8 at opset 12");
    cr_assert_eq(pool_status("AveragePool", AMP_I8, 17, attr_k3, 1), AMP_ERR_UNSUPPORTED, "int8 average");
    cr_assert_eq(pool_status("AveragePool", AMP_F32, 17, attr_k3, 2), AMP_ERR_INVALID_GRAPH, "two outputs");
    cr_assert_eq(pool_status("GlobalAveragePool", AMP_I64, 17, NULL, 1), AMP_ERR_UNSUPPORTED, "int64 global");
}

/* =========================================================================================== */
/* GlobalAveragePool, GlobalMaxPool                                                            */

Test(conv, global_pools) {
    static const int64_t shapes[3][5] = {{2, 3, 7}, {2, 3, 5, 7}, {1, 4, 3, 2, 5}};
    for (int sh = 0; sh < 3; sh++) {
        int rank = sh + 3;
        int64_t yd[5], sz = 1;
        for (int i = 0; i < rank; i++)
            yd[i] = i < 2 ? shapes[sh][i] : 1;
        for (int i = 2; i < rank; i++)
            sz *= shapes[sh][i];
        for (int op = 0; op < 2; op++)
            for (int di = 0; di < N_FLOATS; di++) {
                amp_dtype dt = FLOATS[di];
                amp_tensor *in[1] = {tt_rand(ctx, dt, rank, shapes[sh], -1, 1, 41 + sh)}, *y[1];
                amp_test_node *t = tn_new(ctx, op ? "GlobalMaxPool" : "GlobalAveragePool");
                cr_assert_eq(tn_run(t, 1, in, 1, y), AMP_OK, "%s", amp_context_last_error(ctx));
                int64_t planes = yd[0] * yd[1];
                double ref[32];
                for (int64_t p = 0; p < planes; p++) {
                    double acc = op ? -INFINITY : 0;
                    for (int64_t i = 0; i < sz; i++) {
                        double v = tt_get(in[0], p * sz + i);
                        acc = op ? (v > acc ? v : acc) : acc + v;
                    }
                    ref[p] = op ? acc : acc / (double)sz;
                }
                expect_close(y[0], dt, rank, yd, ref, op ? "GlobalMaxPool" : "GlobalAveragePool");
                free_all(y, 1);
                free_all(in, 1);
                tn_free(t);
            }
    }
}

/* One image: the items run in turn and each GEMM is split over the threads (amp_cpu_sgemm). */
Test(conv, one_image_splits_its_gemm) {
    conv_case cc = {.N = 1,
                    .C = 16,
                    .M = 32,
                    .group = 1,
                    .nsp = 2,
                    .in = {20, 19},
                    .k = {3, 3},
                    .s = {1, 1},
                    .d = {1, 1},
                    .pb = {1, 0},
                    .pe = {1, 1},
                    .bias = 1,
                    .threads = 3};
    run_conv_case(&cc, AMP_F32, "conv one image, split GEMM");
    run_conv_case(&cc, AMP_F64, "conv one image, split GEMM");
    run_conv_case(&cc, AMP_BF16, "conv one image, split GEMM");
    convt_case ct = {.N = 1,
                     .C = 16,
                     .M = 16,
                     .group = 1,
                     .nsp = 2,
                     .in = {20, 20},
                     .k = {3, 3},
                     .s = {1, 1},
                     .d = {1, 1},
                     .pb = {1, 1},
                     .pe = {1, 1},
                     .bias = 1};
    run_convt_case(&ct, AMP_F32, "convT one image, split GEMM");
    run_convt_case(&ct, AMP_F64, "convT one image, split GEMM");
}

/* ---- workspace sizes: the CPU backend's answer (backends/cpu/workspace.def) ------------------ */

/* The CPU workspace of node t over views of the given dtypes and dims (no data), status out. */
static amp_status ws_of(amp_test_node *t, int nin, const amp_dtype *dt, const int *rank, const int64_t (*dims)[4],
                        int nout, size_t *bytes) {
    amp_tensor views[8], *pv[8];
    int ids[8];
    for (int i = 0; i < nin + nout; i++) {
        amp_tensor_view(&views[i], dt[i], rank[i], dims[i], NULL);
        pv[i] = &views[i];
        ids[i] = i;
    }
    t->node.inputs = ids;
    t->node.n_inputs = nin;
    t->node.outputs = ids + nin;
    t->node.n_outputs = nout;
    amp_kernel k = {.ctx = ctx, .n = &t->node, .opset = t->opset, .nin = nin, .nout = nout, .in = pv,
                    .out = pv + nin, .threads = 4};
    amp_status s = amp_cpu_workspace(&k, bytes);
    t->node.inputs = t->node.outputs = NULL;
    return s;
}

Test(conv, workspace_is_sized_by_the_cpu_backend) {
    /* 16-bit Gemm widens A, B and Y to f32; f32 runs on the tensors */
    amp_test_node *t = tn_new(ctx, "Gemm");
    const int r2[3] = {2, 2, 2};
    const int64_t gd[3][4] = {{3, 4}, {4, 5}, {3, 5}};
    const amp_dtype h3[3] = {AMP_F16, AMP_F16, AMP_F16}, f3[3] = {AMP_F32, AMP_F32, AMP_F32};
    size_t b = 1;
    cr_assert_eq(ws_of(t, 2, h3, r2, gd, 1, &b), AMP_OK, "%s", amp_context_last_error(ctx));
    cr_assert_eq(b, (size_t)(12 + 20 + 15) * sizeof(float));
    cr_assert_eq(ws_of(t, 2, f3, r2, gd, 1, &b), AMP_OK);
    cr_assert_eq(b, 0);
    tn_free(t);

    /* an op without a workspace.def line needs none */
    t = tn_new(ctx, "Relu");
    b = 1;
    cr_assert_eq(ws_of(t, 1, f3, r2, gd, 1, &b), AMP_OK);
    cr_assert_eq(b, 0);
    tn_free(t);

    /* Conv: the im2col matrix per slot; a kernel larger than the input fails naming the node */
    t = tn_new(ctx, "Conv");
    t->node.name = "c1";
    const int r4[3] = {4, 4, 4};
    const int64_t cd[3][4] = {{1, 2, 5, 5}, {3, 2, 3, 3}, {1, 3, 3, 3}};
    cr_assert_eq(ws_of(t, 2, f3, r4, cd, 1, &b), AMP_OK, "%s", amp_context_last_error(ctx));
    cr_assert_geq(b, (size_t)(2 * 9 * 9) * sizeof(float), "one 18 x 9 column matrix at least");
    const int64_t bad[3][4] = {{1, 2, 2, 2}, {3, 2, 3, 3}, {1, 3, 1, 1}};
    cr_assert_eq(ws_of(t, 2, f3, r4, bad, 1, &b), AMP_ERR_SHAPE);
    cr_assert(strstr(amp_context_last_error(ctx), "c1"), "%s", amp_context_last_error(ctx));
    tn_free(t);
}

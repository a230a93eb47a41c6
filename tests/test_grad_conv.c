/* Gradients of Conv, ConvTranspose, MaxPool, AveragePool, GlobalAveragePool and GlobalMaxPool.
 *
 * Every op and attribute variant goes through gc_check in f64 with eps 1e-6: Conv,
 * ConvTranspose and the average pools are linear in each input and MaxPool is piecewise
 * linear (its inputs are distinct values 0.1 apart, so no step crosses a tie), which leaves
 * only rounding: max_rel must stay under 1e-5. The training-domain kernels also run in f32,
 * f16 and bf16 against f64 on the same (rounded) inputs, by relative L2. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "backends/cpu/cpu.h"
#include "gradcheck.h"
#include "ir/grad.h"
#include "passes/passes.h"

static amp_context *ctx;
static void setup(void) { cr_assert_eq(amp_context_create(NULL, &ctx), AMP_OK); }
static void teardown(void) { amp_context_destroy(ctx); }
TestSuite(grad_conv, .init = setup, .fini = teardown);

#define GC_EPS 1e-6
#define GC_TOL 1e-5

static int64_t prod(int n, const int64_t *v) {
    int64_t p = 1;
    for (int i = 0; i < n; i++)
        p *= v[i];
    return p;
}

static void free_all(amp_tensor **t, int n) {
    for (int i = 0; i < n; i++) {
        amp_tensor_destroy(t[i]);
        t[i] = NULL;
    }
}

/* gc_check on every input with wrt set; all of them must be compared and agree. */
static void check(amp_test_node *t, int nin, amp_tensor **in, const bool *wrt, int nout, const char *what) {
    gc_result r;
    amp_status s = gc_check(t, nin, in, wrt, nout, GC_EPS, &r);
    cr_assert_eq(s, AMP_OK, "%s: %s (%s)", what, amp_status_name(s), r.why);
    int want = 0;
    for (int i = 0; i < nin; i++)
        want += wrt[i] && in[i];
    cr_assert_eq(r.checked, want, "%s: %d inputs checked, want %d", what, r.checked, want);
    cr_assert(r.max_rel < GC_TOL, "%s: max_rel %g on input %d", what, r.max_rel, r.worst_input);
}

/* Distinct values 0.1 apart in shuffled order: no two taps of a max window tie, even after
 * a finite-difference step. */
static amp_tensor *distinct(amp_dtype dt, int rank, const int64_t *dims, double step, uint64_t seed) {
    int64_t n = prod(rank, dims);
    double *v = malloc(sizeof(double) * (size_t)(n ? n : 1));
    for (int64_t i = 0; i < n; i++)
        v[i] = (double)(i - n / 2) * step;
    uint64_t s = seed * 0x9e3779b97f4a7c15ull + 1;
    for (int64_t i = n - 1; i > 0; i--) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        int64_t j = (int64_t)((s >> 33) % (uint64_t)(i + 1));
        double t = v[i];
        v[i] = v[j];
        v[j] = t;
    }
    amp_tensor *t = tt_make(ctx, dt, rank, dims, v);
    free(v);
    return t;
}

/* =========================================================================================== */
/* Conv and ConvTranspose through autodiff                                                      */

typedef struct conv_case {
    const char *op;
    int64_t N, C, M, group;
    int nsp;
    int64_t in[4], k[4];
    const int64_t *strides, *dil, *pads, *opad, *oshape;
    int n_oshape;
    const char *auto_pad;
    int bias;
    bool wrt[3];
} conv_case;

static void run_conv_case(const conv_case *c, const char *what) {
    int transpose = strcmp(c->op, "ConvTranspose") == 0;
    amp_test_node *t = tn_new(ctx, c->op);
    int nsp = c->nsp;
    if (c->group != 1) tn_int(t, "group", c->group);
    if (c->strides) tn_ints(t, "strides", nsp, c->strides);
    if (c->dil) tn_ints(t, "dilations", nsp, c->dil);
    if (c->pads) tn_ints(t, "pads", 2 * nsp, c->pads);
    if (c->opad) tn_ints(t, "output_padding", nsp, c->opad);
    if (c->oshape) tn_ints(t, "output_shape", c->n_oshape, c->oshape);
    if (c->auto_pad) tn_str(t, "auto_pad", c->auto_pad);
    int64_t xd[6] = {c->N, c->C}, wd[6], bd[1] = {c->M};
    wd[0] = transpose ? c->C : c->M;
    wd[1] = transpose ? c->M / c->group : c->C / c->group;
    for (int i = 0; i < nsp; i++) {
        xd[i + 2] = c->in[i];
        wd[i + 2] = c->k[i];
    }
    amp_tensor *in[3] = {tt_rand(ctx, AMP_F64, nsp + 2, xd, -1, 1, 11), tt_rand(ctx, AMP_F64, nsp + 2, wd, -1, 1, 12),
                         c->bias ? tt_rand(ctx, AMP_F64, 1, bd, -1, 1, 13) : NULL};
    bool wrt[3] = {c->wrt[0], c->wrt[1], c->wrt[2] && c->bias};
    check(t, 3, in, wrt, 1, what);
    free_all(in, 3);
    tn_free(t);
}

#define ALL {true, true, true}

Test(grad_conv, conv2d_grouped_strided_dilated_asymmetric_pads) {
    /* kernel 3x2 over a 7x6 input; kernel larger than the stride along H, pads differ per side */
    int64_t s[] = {2, 1}, d[] = {1, 2}, p[] = {1, 0, 2, 1};
    conv_case c = {"Conv", 2, 4, 6, 2, 2, {7, 6}, {3, 2}, s, d, p, NULL, NULL, 0, NULL, 1, ALL};
    run_conv_case(&c, "conv2d grouped");
}

Test(grad_conv, conv2d_single_image_and_depthwise) {
    conv_case c = {"Conv", 1, 3, 2, 1, 2, {5, 6}, {3, 3}, NULL, NULL, NULL, NULL, NULL, 0, NULL, 1, ALL};
    run_conv_case(&c, "conv2d one image (GEMMs split over threads)");
    int64_t s[] = {2, 2}, p[] = {1, 1, 1, 0};
    conv_case dw = {"Conv", 2, 3, 3, 3, 2, {6, 5}, {3, 3}, s, NULL, p, NULL, NULL, 0, NULL, 1, ALL};
    run_conv_case(&dw, "conv2d depthwise");
    conv_case mult = {"Conv", 2, 2, 4, 2, 2, {4, 4}, {2, 3}, s, NULL, p, NULL, NULL, 0, NULL, 0, ALL};
    run_conv_case(&mult, "conv2d group 2, two filters per group");
}

Test(grad_conv, conv1d_3d_4d) {
    int64_t s1[] = {3}, d1[] = {2}, p1[] = {2, 1};
    conv_case a = {"Conv", 3, 2, 3, 1, 1, {11}, {4}, s1, d1, p1, NULL, NULL, 0, NULL, 1, ALL};
    run_conv_case(&a, "conv1d kernel larger than stride");
    int64_t s2[] = {3};
    conv_case b = {"Conv", 2, 2, 2, 1, 1, {10}, {2}, s2, NULL, NULL, NULL, NULL, 0, NULL, 1, ALL};
    run_conv_case(&b, "conv1d stride larger than kernel (skipped inputs)");
    int64_t s3[] = {1, 2, 1}, p3[] = {1, 0, 0, 0, 1, 1};
    conv_case c3 = {"Conv", 2, 2, 2, 1, 3, {4, 3, 5}, {2, 2, 3}, s3, NULL, p3, NULL, NULL, 0, NULL, 1, ALL};
    run_conv_case(&c3, "conv3d");
    int64_t s4[] = {1, 2, 1, 1}, p4[] = {0, 1, 0, 0, 1, 0, 0, 1};
    conv_case c4 = {"Conv", 1, 2, 2, 1, 4, {3, 3, 3, 3}, {2, 1, 2, 2}, s4, NULL, p4, NULL, NULL, 0, NULL, 1, ALL};
    run_conv_case(&c4, "conv with 4 spatial dims");
}

Test(grad_conv, conv_auto_pad) {
    const char *modes[] = {"SAME_UPPER", "SAME_LOWER", "VALID"};
    int64_t s[] = {2, 3};
    for (int m = 0; m < 3; m++) {
        conv_case c = {"Conv", 2, 2, 3, 1, 2, {7, 8}, {3, 2}, s, NULL, NULL, NULL, NULL, 0, modes[m], 1, ALL};
        run_conv_case(&c, modes[m]);
    }
}

Test(grad_conv, conv_1x1) {
    conv_case direct = {"Conv", 2, 3, 4, 1, 2, {4, 5}, {1, 1}, NULL, NULL, NULL, NULL, NULL, 0, NULL, 1, ALL};
    run_conv_case(&direct, "1x1 conv (no im2col)");
    int64_t s[] = {2, 2};
    conv_case strided = {"Conv", 2, 3, 4, 1, 2, {5, 5}, {1, 1}, s, NULL, NULL, NULL, NULL, 0, NULL, 1, ALL};
    run_conv_case(&strided, "1x1 conv, stride 2");
}

Test(grad_conv, conv_some_inputs_only) {
    int64_t s[] = {2, 1}, p[] = {0, 1, 1, 0};
    /* the first layer of a network: X is data, only W and B train */
    conv_case w = {"Conv", 2, 2, 3, 1, 2, {5, 4}, {2, 2}, s, NULL, p, NULL, NULL, 0, NULL, 1, {false, true, true}};
    run_conv_case(&w, "dW and dB only");
    conv_case x = {"Conv", 2, 2, 3, 1, 2, {5, 4}, {2, 2}, s, NULL, p, NULL, NULL, 0, NULL, 1, {true, false, false}};
    run_conv_case(&x, "dX only");
    conv_case b = {"Conv", 2, 2, 3, 1, 2, {5, 4}, {2, 2}, s, NULL, p, NULL, NULL, 0, NULL, 1, {false, false, true}};
    run_conv_case(&b, "dB only");
    conv_case xb = {"Conv", 1, 2, 3, 1, 2, {5, 4}, {2, 2}, s, NULL, p, NULL, NULL, 0, NULL, 1, {true, false, true}};
    run_conv_case(&xb, "dX and dB");
}

Test(grad_conv, conv_transpose_2d) {
    int64_t s[] = {2, 3}, d[] = {1, 2}, p[] = {1, 0, 0, 1}, op[] = {1, 2};
    conv_case c = {"ConvTranspose", 2, 4, 6, 2, 2, {3, 4}, {3, 2}, s, d, p, op, NULL, 0, NULL, 1, ALL};
    run_conv_case(&c, "convT grouped, strided, dilated, output_padding");
    conv_case one = {"ConvTranspose", 1, 3, 2, 1, 2, {4, 3}, {2, 3}, NULL, NULL, NULL, NULL, NULL, 0, NULL, 1, ALL};
    run_conv_case(&one, "convT one image");
    conv_case w = {"ConvTranspose", 2, 4, 6, 2, 2, {3, 4}, {3, 2}, s, d, p, op, NULL, 0, NULL, 1, {false, true, false}};
    run_conv_case(&w, "convT dW only");
    conv_case x = {"ConvTranspose", 2, 4, 6, 2, 2, {3, 4}, {3, 2}, s, d, p, op, NULL, 0, NULL, 1, {true, false, false}};
    run_conv_case(&x, "convT dX only");
}

Test(grad_conv, conv_transpose_output_shape_auto_pad_1d_3d) {
    int64_t s[] = {2, 2}, os[] = {8, 7}, big[] = {10, 9};
    conv_case up = {"ConvTranspose", 2, 2, 3, 1, 2, {4, 3}, {3, 3}, s, NULL, NULL, NULL, os, 2, "SAME_UPPER", 1, ALL};
    run_conv_case(&up, "convT output_shape SAME_UPPER");
    conv_case lo = {"ConvTranspose", 2, 2, 3, 1, 2, {4, 3}, {3, 3}, s, NULL, NULL, NULL, NULL, 0, "SAME_LOWER", 1, ALL};
    run_conv_case(&lo, "convT SAME_LOWER");
    /* an output larger than the natural one: the last rows only see the bias */
    conv_case grow = {"ConvTranspose", 1, 2, 2, 1, 2, {4, 3}, {3, 3}, s, NULL, NULL, NULL, big, 2, NULL, 1, ALL};
    run_conv_case(&grow, "convT output_shape beyond the natural size");
    int64_t s1[] = {3}, p1[] = {1, 2};
    conv_case c1 = {"ConvTranspose", 3, 2, 2, 1, 1, {5}, {4}, s1, NULL, p1, NULL, NULL, 0, NULL, 1, ALL};
    run_conv_case(&c1, "convT 1d");
    int64_t s3[] = {2, 1, 2}, p3[] = {0, 1, 0, 1, 0, 0};
    conv_case c3 = {"ConvTranspose", 2, 2, 2, 2, 3, {2, 3, 2}, {2, 2, 3}, s3, NULL, p3, NULL, NULL, 0, NULL, 1, ALL};
    run_conv_case(&c3, "convT 3d grouped");
    conv_case direct = {"ConvTranspose", 2, 3, 2, 1, 2, {3, 4}, {1, 1}, NULL, NULL, NULL, NULL, NULL, 0, NULL, 1, ALL};
    run_conv_case(&direct, "convT 1x1");
    int64_t s2[] = {2, 3};
    conv_case gaps = {"ConvTranspose", 2, 3, 2, 1, 2, {3, 2}, {1, 1}, s2, NULL, NULL, NULL, NULL, 0, NULL, 1, ALL};
    run_conv_case(&gaps, "convT 1x1 strided (output with gaps)");
}

/* =========================================================================================== */
/* Pools through autodiff                                                                      */

typedef struct pool_case {
    const char *op;
    int64_t N, C;
    int nsp;
    int64_t in[4], k[4];
    const int64_t *strides, *dil, *pads;
    const char *auto_pad;
    int ceil_mode, count_pad, indices;
} pool_case;

static void run_pool_case(const pool_case *c, const char *what) {
    amp_test_node *t = tn_new(ctx, c->op);
    int nsp = c->nsp, global = strncmp(c->op, "Global", 6) == 0;
    if (!global) tn_ints(t, "kernel_shape", nsp, c->k);
    if (c->strides) tn_ints(t, "strides", nsp, c->strides);
    if (c->dil) tn_ints(t, "dilations", nsp, c->dil);
    if (c->pads) tn_ints(t, "pads", 2 * nsp, c->pads);
    if (c->auto_pad) tn_str(t, "auto_pad", c->auto_pad);
    if (c->ceil_mode) tn_int(t, "ceil_mode", 1);
    if (c->count_pad) tn_int(t, "count_include_pad", 1);
    int64_t xd[6] = {c->N, c->C};
    for (int i = 0; i < nsp; i++)
        xd[i + 2] = c->in[i];
    amp_tensor *in[1] = {distinct(AMP_F64, nsp + 2, xd, 0.1, 7)};
    bool wrt[1] = {true};
    check(t, 1, in, wrt, c->indices ? 2 : 1, what);
    free_all(in, 1);
    tn_free(t);
}

Test(grad_conv, max_pool_2d_overlapping_asymmetric_with_indices) {
    int64_t s[] = {2, 2}, p[] = {1, 0, 1, 1};
    pool_case c = {"MaxPool", 2, 3, 2, {7, 8}, {3, 3}, s, NULL, p, NULL, 0, 0, 1};
    run_pool_case(&c, "maxpool 3x3 stride 2 with Indices");
    pool_case lenet = {"MaxPool", 3, 2, 2, {6, 6}, {2, 2}, s, NULL, NULL, NULL, 0, 0, 0};
    run_pool_case(&lenet, "maxpool 2x2 stride 2");
    int64_t s1[] = {1, 2}, d[] = {2, 1};
    pool_case dil = {"MaxPool", 1, 2, 2, {7, 6}, {2, 3}, s1, d, NULL, NULL, 1, 0, 0};
    run_pool_case(&dil, "maxpool dilated, ceil_mode");
    int64_t s3[] = {3, 3}, p3[] = {0, 1, 1, 1};
    pool_case ceil = {"MaxPool", 2, 1, 2, {8, 7}, {2, 3}, s3, NULL, p3, NULL, 1, 0, 0};
    run_pool_case(&ceil, "maxpool ceil_mode, stride larger than kernel");
}

Test(grad_conv, max_pool_1d_3d_4d_auto_pad) {
    int64_t s1[] = {2}, p1[] = {1, 2};
    pool_case a = {"MaxPool", 2, 2, 1, {9}, {3}, s1, NULL, p1, NULL, 0, 0, 1};
    run_pool_case(&a, "maxpool 1d");
    int64_t s3[] = {1, 2, 2};
    pool_case b = {"MaxPool", 1, 2, 3, {3, 5, 4}, {2, 3, 2}, s3, NULL, NULL, "SAME_UPPER", 0, 0, 1};
    run_pool_case(&b, "maxpool 3d SAME_UPPER");
    int64_t s2[] = {2, 2};
    pool_case c = {"MaxPool", 2, 2, 2, {5, 6}, {3, 2}, s2, NULL, NULL, "SAME_LOWER", 0, 0, 0};
    run_pool_case(&c, "maxpool SAME_LOWER");
    int64_t s4[] = {1, 2, 1, 2};
    pool_case d = {"MaxPool", 1, 1, 4, {3, 3, 2, 4}, {2, 2, 2, 2}, s4, NULL, NULL, NULL, 0, 0, 0};
    run_pool_case(&d, "maxpool 4 spatial dims");
}

Test(grad_conv, average_pool_variants) {
    int64_t s[] = {2, 1}, p[] = {1, 0, 1, 1};
    for (int cp = 0; cp < 2; cp++) {
        pool_case c = {"AveragePool", 2, 2, 2, {7, 6}, {3, 2}, s, NULL, p, NULL, 1, cp, 0};
        run_pool_case(&c, cp ? "avgpool count_include_pad ceil_mode" : "avgpool pads ceil_mode");
    }
    int64_t s1[] = {3}, p1[] = {2, 1};
    pool_case a = {"AveragePool", 3, 2, 1, {10}, {4}, s1, NULL, p1, NULL, 0, 1, 0};
    run_pool_case(&a, "avgpool 1d");
    int64_t s3[] = {2, 1, 2};
    pool_case b = {"AveragePool", 1, 2, 3, {4, 3, 5}, {2, 2, 3}, s3, NULL, NULL, "SAME_LOWER", 0, 0, 0};
    run_pool_case(&b, "avgpool 3d SAME_LOWER");
    pool_case u = {"AveragePool", 1, 2, 3, {4, 3, 5}, {2, 2, 3}, s3, NULL, NULL, "SAME_UPPER", 0, 1, 0};
    run_pool_case(&u, "avgpool 3d SAME_UPPER count_include_pad");
    int64_t s2[] = {1, 1}, d2[] = {2, 1};
    pool_case d = {"AveragePool", 2, 1, 2, {6, 5}, {2, 2}, s2, d2, NULL, NULL, 0, 0, 0};
    run_pool_case(&d, "avgpool dilated");
}

Test(grad_conv, global_pools) {
    const char *ops[] = {"GlobalAveragePool", "GlobalMaxPool"};
    for (int o = 0; o < 2; o++) {
        pool_case a = {ops[o], 2, 3, 1, {7}, {0}, NULL, NULL, NULL, NULL, 0, 0, 0};
        run_pool_case(&a, ops[o]);
        pool_case b = {ops[o], 2, 2, 2, {4, 5}, {0}, NULL, NULL, NULL, NULL, 0, 0, 0};
        run_pool_case(&b, ops[o]);
        pool_case c = {ops[o], 1, 2, 3, {3, 2, 4}, {0}, NULL, NULL, NULL, NULL, 0, 0, 0};
        run_pool_case(&c, ops[o]);
    }
}

/* =========================================================================================== */
/* The training-domain kernels in every float dtype                                            */

/* A copy of src in dtype dt (rounded), and the f64 tensor of those rounded values. */
static void round_to(const amp_tensor *src, amp_dtype dt, amp_tensor **low, amp_tensor **ref) {
    double *v = malloc(sizeof(double) * (size_t)(src->numel ? src->numel : 1));
    for (int64_t i = 0; i < src->numel; i++)
        v[i] = tt_get(src, i);
    if (src->dtype == AMP_I64) {
        *low = tt_make(ctx, AMP_I64, src->rank, src->dims, v);
        *ref = tt_make(ctx, AMP_I64, src->rank, src->dims, v);
    } else {
        *low = tt_make(ctx, dt, src->rank, src->dims, v);
        for (int64_t i = 0; i < src->numel; i++)
            v[i] = tt_get(*low, i);
        *ref = tt_make(ctx, AMP_F64, src->rank, src->dims, v);
    }
    free(v);
}

static double tol16(amp_dtype dt) { return dt == AMP_F32 ? 1e-5 : dt == AMP_F16 ? 2e-3 : 1e-2; }

/* Run the node in f64 and in each lower dtype on the same values; every output must match the
 * f64 result by relative L2. */
static void compare_dtypes(amp_test_node *t, int nin, amp_tensor **in64, int nout, const char *what) {
    const amp_dtype dts[] = {AMP_F32, AMP_F16, AMP_BF16};
    for (int di = 0; di < 3; di++) {
        amp_dtype dt = dts[di];
        amp_tensor *low[4] = {0}, *ref[4] = {0}, *ylow[4] = {0}, *yref[4] = {0};
        for (int i = 0; i < nin; i++)
            round_to(in64[i], dt, &low[i], &ref[i]);
        cr_assert_eq(tn_run(t, nin, ref, nout, yref), AMP_OK, "%s f64: %s", what, amp_context_last_error(ctx));
        cr_assert_eq(tn_run(t, nin, low, nout, ylow), AMP_OK, "%s %s: %s", what, amp_dtype_name(dt),
                     amp_context_last_error(ctx));
        for (int k = 0; k < nout; k++) {
            cr_assert_eq(ylow[k]->dtype, dt, "%s: output %d dtype %s", what, k, amp_dtype_name(ylow[k]->dtype));
            double num = 0;
            for (int64_t e = 0; e < yref[k]->numel; e++)
                num += fabs(tt_get(yref[k], e));
            cr_assert(yref[k]->numel == 0 || num > 0, "%s: output %d is all zeros, a vacuous check", what, k);
            double rel = sqrt(tt_nse(ylow[k], yref[k]));
            cr_assert(rel <= tol16(dt), "%s %s output %d: relative L2 %g > %g", what, amp_dtype_name(dt), k, rel,
                      tol16(dt));
        }
        free_all(low, 4);
        free_all(ref, 4);
        free_all(ylow, 4);
        free_all(yref, 4);
    }
}

static void conv_grad_dtypes(const char *op, int64_t N, int64_t C, int64_t M, int64_t group, int nsp,
                             const int64_t *in, const int64_t *k, const int64_t *strides, const int64_t *pads,
                             const char *what) {
    int transpose = strcmp(op, "ConvTransposeGrad") == 0;
    amp_test_node *t = tn_train(ctx, op);
    if (group != 1) tn_int(t, "group", group);
    if (strides) tn_ints(t, "strides", nsp, strides);
    if (pads) tn_ints(t, "pads", 2 * nsp, pads);
    int64_t xd[6] = {N, C}, wd[6] = {transpose ? C : M, transpose ? M / group : C / group};
    for (int i = 0; i < nsp; i++) {
        xd[i + 2] = in[i];
        wd[i + 2] = k[i];
    }
    /* dY's shape from the forward op */
    amp_test_node *f = tn_new(ctx, transpose ? "ConvTranspose" : "Conv");
    if (group != 1) tn_int(f, "group", group);
    if (strides) tn_ints(f, "strides", nsp, strides);
    if (pads) tn_ints(f, "pads", 2 * nsp, pads);
    amp_tensor *x = tt_rand(ctx, AMP_F64, nsp + 2, xd, -1, 1, 21), *w = tt_rand(ctx, AMP_F64, nsp + 2, wd, -1, 1, 22);
    amp_tensor *fin[2] = {x, w}, *y[1] = {0};
    cr_assert_eq(tn_run(f, 2, fin, 1, y), AMP_OK, "%s forward: %s", what, amp_context_last_error(ctx));
    amp_tensor *in64[3] = {tt_rand(ctx, AMP_F64, y[0]->rank, y[0]->dims, -1, 1, 23), x, w};
    compare_dtypes(t, 3, in64, 3, what);
    free_all(in64, 3);
    free_all(y, 1);
    tn_free(f);
    tn_free(t);
}

Test(grad_conv, conv_grad_kernels_in_every_dtype) {
    int64_t in[] = {9, 8}, k[] = {3, 3}, s[] = {2, 1}, p[] = {1, 1, 0, 1};
    conv_grad_dtypes("ConvGrad", 4, 4, 6, 2, 2, in, k, s, p, "ConvGrad, items over threads");
    conv_grad_dtypes("ConvGrad", 1, 3, 5, 1, 2, in, k, s, p, "ConvGrad, one image");
    int64_t one[] = {1, 1};
    conv_grad_dtypes("ConvGrad", 3, 3, 4, 1, 2, in, one, NULL, NULL, "ConvGrad 1x1");
    int64_t in1[] = {13}, k1[] = {4}, s1[] = {3}, p1[] = {2, 0};
    conv_grad_dtypes("ConvGrad", 2, 2, 3, 1, 1, in1, k1, s1, p1, "ConvGrad 1d");
    int64_t tin[] = {4, 5}, tk[] = {3, 2}, ts[] = {2, 2}, tp[] = {1, 0, 0, 1};
    conv_grad_dtypes("ConvTransposeGrad", 3, 4, 4, 2, 2, tin, tk, ts, tp, "ConvTransposeGrad");
    conv_grad_dtypes("ConvTransposeGrad", 1, 2, 3, 1, 2, tin, tk, ts, tp, "ConvTransposeGrad one image");
    conv_grad_dtypes("ConvTransposeGrad", 2, 3, 2, 1, 2, tin, one, NULL, NULL, "ConvTransposeGrad 1x1");
}

static void pool_grad_dtypes(const char *op, int64_t N, int64_t C, int nsp, const int64_t *in, const int64_t *k,
                             const int64_t *strides, const int64_t *pads, int count_pad, int global,
                             const char *what) {
    int is_max = strcmp(op, "MaxPoolGrad") == 0;
    amp_test_node *t = tn_train(ctx, op);
    amp_test_node *f = tn_new(ctx, global ? (is_max ? "GlobalMaxPool" : "GlobalAveragePool")
                                          : (is_max ? "MaxPool" : "AveragePool"));
    amp_test_node *both[2] = {t, f};
    for (int b = 0; b < 2; b++) {
        if (k) tn_ints(both[b], "kernel_shape", nsp, k);
        if (strides) tn_ints(both[b], "strides", nsp, strides);
        if (pads) tn_ints(both[b], "pads", 2 * nsp, pads);
        if (count_pad) tn_int(both[b], "count_include_pad", 1);
    }
    if (global) tn_int(t, "global", 1);
    int64_t xd[6] = {N, C}, rk[1] = {nsp + 2};
    for (int i = 0; i < nsp; i++)
        xd[i + 2] = in[i];
    /* integers below 128: exact in bf16, so the 16-bit runs see no new ties */
    amp_tensor *x = distinct(AMP_F64, nsp + 2, xd, 1.0, 5), *fin[1] = {x}, *y[1] = {0};
    cr_assert(prod(nsp + 2, xd) <= 256);
    cr_assert_eq(tn_run(f, 1, fin, 1, y), AMP_OK, "%s forward: %s", what, amp_context_last_error(ctx));
    double shape[6];
    for (int i = 0; i < nsp + 2; i++)
        shape[i] = (double)xd[i];
    amp_tensor *in64[2] = {tt_rand(ctx, AMP_F64, y[0]->rank, y[0]->dims, -1, 1, 31),
                           is_max ? x : tt_make(ctx, AMP_I64, 1, rk, shape)};
    compare_dtypes(t, 2, in64, 1, what);
    if (!is_max) amp_tensor_destroy(x);
    free_all(in64, 2);
    free_all(y, 1);
    tn_free(f);
    tn_free(t);
}

Test(grad_conv, pool_grad_kernels_in_every_dtype) {
    int64_t in[] = {7, 6}, k[] = {3, 2}, s[] = {2, 1}, p[] = {1, 0, 1, 1};
    pool_grad_dtypes("MaxPoolGrad", 2, 3, 2, in, k, s, p, 0, 0, "MaxPoolGrad 2d");
    pool_grad_dtypes("AveragePoolGrad", 2, 3, 2, in, k, s, p, 0, 0, "AveragePoolGrad 2d");
    pool_grad_dtypes("AveragePoolGrad", 2, 3, 2, in, k, s, p, 1, 0, "AveragePoolGrad count_include_pad");
    int64_t in3[] = {3, 4, 5}, k3[] = {2, 2, 2};
    pool_grad_dtypes("MaxPoolGrad", 1, 2, 3, in3, k3, NULL, NULL, 0, 0, "MaxPoolGrad 3d");
    pool_grad_dtypes("MaxPoolGrad", 2, 3, 2, in, NULL, NULL, NULL, 0, 1, "MaxPoolGrad global");
    pool_grad_dtypes("AveragePoolGrad", 2, 3, 2, in, NULL, NULL, NULL, 0, 1, "AveragePoolGrad global");
}

/* A large ConvGrad in f32 computed with the work items spread over threads, in turn on one
 * thread, and in f64: the three must agree. */
Test(grad_conv, conv_grad_threads_agree) {
    amp_test_node *t = tn_train(ctx, "ConvGrad");
    int64_t s[] = {1, 1}, p[] = {1, 1, 1, 1};
    tn_ints(t, "strides", 2, s);
    tn_ints(t, "pads", 4, p);
    int64_t xd[] = {8, 16, 20, 20}, wd[] = {24, 16, 3, 3}, yd[] = {8, 24, 20, 20};
    amp_tensor *in64[3] = {tt_rand(ctx, AMP_F64, 4, yd, -1, 1, 41), tt_rand(ctx, AMP_F64, 4, xd, -1, 1, 42),
                           tt_rand(ctx, AMP_F64, 4, wd, -1, 1, 43)};
    amp_tensor *in32[3], *ref[3], *y64[3] = {0}, *y1[3] = {0}, *y4[3] = {0};
    for (int i = 0; i < 3; i++)
        round_to(in64[i], AMP_F32, &in32[i], &ref[i]);
    cr_assert_eq(tn_run(t, 3, ref, 3, y64), AMP_OK, "%s", amp_context_last_error(ctx));
    t->threads = 1;
    cr_assert_eq(tn_run(t, 3, in32, 3, y1), AMP_OK, "%s", amp_context_last_error(ctx));
    t->threads = 4;
    cr_assert_eq(tn_run(t, 3, in32, 3, y4), AMP_OK, "%s", amp_context_last_error(ctx));
    for (int k = 0; k < 3; k++) {
        cr_assert(tt_nse(y1[k], y64[k]) < 1e-10, "output %d, one thread: nse %g", k, tt_nse(y1[k], y64[k]));
        cr_assert(tt_nse(y4[k], y64[k]) < 1e-10, "output %d, four threads: nse %g", k, tt_nse(y4[k], y64[k]));
    }
    free_all(in64, 3);
    free_all(in32, 3);
    free_all(ref, 3);
    free_all(y64, 3);
    free_all(y1, 3);
    free_all(y4, 3);
    tn_free(t);
}

/* An empty batch: dX is empty, dW and dB are zero (not left as garbage). */
Test(grad_conv, conv_grad_empty_batch) {
    const amp_dtype dts[] = {AMP_F32, AMP_F16, AMP_BF16, AMP_F64};
    for (int di = 0; di < 4; di++) {
        amp_test_node *t = tn_train(ctx, "ConvGrad");
        int64_t xd[] = {0, 2, 5, 5}, wd[] = {3, 2, 3, 3}, yd[] = {0, 3, 3, 3};
        amp_tensor *in[3] = {tt_rand(ctx, dts[di], 4, yd, -1, 1, 1), tt_rand(ctx, dts[di], 4, xd, -1, 1, 2),
                             tt_rand(ctx, dts[di], 4, wd, -1, 1, 3)};
        amp_tensor *out[3] = {0};
        cr_assert_eq(tn_run(t, 3, in, 3, out), AMP_OK, "%s", amp_context_last_error(ctx));
        cr_assert_eq(out[0]->numel, 0);
        cr_assert_eq(out[1]->numel, 54);
        cr_assert_eq(out[2]->numel, 3);
        for (int k = 1; k < 3; k++)
            for (int64_t e = 0; e < out[k]->numel; e++)
                cr_assert_eq(tt_get(out[k], e), 0.0, "%s output %d element %lld", amp_dtype_name(dts[di]), k,
                             (long long)e);
        free_all(in, 3);
        free_all(out, 3);
        tn_free(t);
    }
}

/* Zero-size channels and spatial dims: outputs of the right shapes, zero where they are not
 * empty. */
Test(grad_conv, conv_grad_zero_sizes) {
    const char *ops[] = {"ConvGrad", "ConvTransposeGrad"};
    /* {X dims, W dims, dY dims}: no filters; no input channels; an empty spatial dim with pads */
    int64_t cases[3][3][4] = {{{2, 2, 5, 5}, {0, 2, 3, 3}, {2, 0, 3, 3}},
                              {{2, 0, 5, 5}, {3, 0, 3, 3}, {2, 3, 3, 3}},
                              {{2, 2, 0, 4}, {3, 2, 1, 3}, {2, 3, 2, 2}}};
    int64_t tcases[2][3][4] = {{{2, 2, 3, 3}, {2, 0, 2, 2}, {2, 0, 4, 4}}, {{2, 0, 3, 3}, {0, 3, 2, 2}, {2, 3, 4, 4}}};
    for (int o = 0; o < 2; o++) {
        int nc = o == 0 ? 3 : 2;
        for (int ci = 0; ci < nc; ci++) {
            const int64_t(*c)[4] = o == 0 ? cases[ci] : tcases[ci];
            amp_test_node *t = tn_train(ctx, ops[o]);
            if (o == 0 && ci == 2) {
                int64_t p[] = {1, 0, 1, 0};
                tn_ints(t, "pads", 4, p);
            }
            amp_tensor *in[3] = {tt_rand(ctx, AMP_F32, 4, c[2], -1, 1, 1), tt_rand(ctx, AMP_F32, 4, c[0], -1, 1, 2),
                                 tt_rand(ctx, AMP_F32, 4, c[1], -1, 1, 3)};
            amp_tensor *out[3] = {0};
            amp_status s = tn_run(t, 3, in, 3, out);
            cr_assert_eq(s, AMP_OK, "%s case %d: %s", ops[o], ci, amp_context_last_error(ctx));
            for (int k = 0; k < 2; k++)
                for (int d = 0; d < 4; d++)
                    cr_assert_eq(out[k]->dims[d], in[k + 1]->dims[d], "%s case %d output %d dim %d", ops[o], ci, k, d);
            /* every case leaves dX and dW without a single product term; dB sums dY as usual */
            for (int k = 0; k < 2; k++)
                for (int64_t e = 0; e < out[k]->numel; e++)
                    cr_assert_eq(tt_get(out[k], e), 0.0, "%s case %d output %d element %lld is not zero", ops[o], ci, k,
                                 (long long)e);
            double sum = 0;
            for (int64_t e = 0; e < in[0]->numel; e++)
                sum += tt_get(in[0], e);
            double got = 0;
            for (int64_t e = 0; e < out[2]->numel; e++)
                got += tt_get(out[2], e);
            cr_assert(fabs(got - sum) <= 1e-5 * (1 + fabs(sum)), "%s case %d: dB sums to %g, dY to %g", ops[o], ci,
                      got, sum);
            free_all(in, 3);
            free_all(out, 3);
            tn_free(t);
        }
    }
}

/* MaxPoolGrad must send each dY to the element the forward MaxPool names in Indices, also
 * where windows tie, hold NaN or hold only -inf: inputs are a few repeated integers with NaN
 * and -inf among them, dY small integers, so every sum is exact in every dtype. */
Test(grad_conv, max_pool_grad_follows_forward_indices) {
    const amp_dtype dts[] = {AMP_F64, AMP_F32, AMP_F16, AMP_BF16};
    struct {
        int nsp;
        int64_t in[3], k[3], s[3], pads[6];
        int ceil;
    } cs[] = {{2, {7, 6}, {3, 2}, {2, 1}, {1, 0, 1, 1}, 1},
              {1, {9}, {3}, {2}, {2, 1}, 0},
              {3, {3, 4, 3}, {2, 2, 2}, {1, 2, 1}, {1, 0, 0, 0, 1, 1}, 0}};
    for (int ci = 0; ci < 3; ci++)
        for (int di = 0; di < 4; di++) {
            amp_dtype dt = dts[di];
            int nsp = cs[ci].nsp;
            int64_t xd[5] = {2, 2};
            for (int i = 0; i < nsp; i++)
                xd[i + 2] = cs[ci].in[i];
            int64_t n = prod(nsp + 2, xd);
            double *xv = malloc(sizeof(double) * (size_t)n);
            for (int64_t i = 0; i < n; i++) {
                int64_t r = (i * 7 + 3) % 11;
                xv[i] = r == 9 ? NAN : r == 10 ? -INFINITY : (double)(r % 3);
            }
            /* one plane all -inf: every window of it holds nothing but -inf */
            int64_t plane = n / 4;
            for (int64_t i = 0; i < plane; i++)
                xv[i] = -INFINITY;
            amp_tensor *x = tt_make(ctx, dt, nsp + 2, xd, xv);
            free(xv);
            amp_test_node *f = tn_new(ctx, "MaxPool"), *t = tn_train(ctx, "MaxPoolGrad");
            amp_test_node *both[2] = {f, t};
            for (int b = 0; b < 2; b++) {
                tn_ints(both[b], "kernel_shape", nsp, cs[ci].k);
                tn_ints(both[b], "strides", nsp, cs[ci].s);
                tn_ints(both[b], "pads", 2 * nsp, cs[ci].pads);
                if (cs[ci].ceil) tn_int(both[b], "ceil_mode", 1);
            }
            amp_tensor *fin[1] = {x}, *fy[2] = {0};
            cr_assert_eq(tn_run(f, 1, fin, 2, fy), AMP_OK, "%s", amp_context_last_error(ctx));
            amp_tensor *dy = tt_rand(ctx, dt, fy[0]->rank, fy[0]->dims, -8, 8, 77);
            for (int64_t e = 0; e < dy->numel; e++)
                amp_st(dt, dy->data, e, floor(tt_get(dy, e)));
            double *want = calloc((size_t)n, sizeof(double));
            for (int64_t e = 0; e < dy->numel; e++) {
                int64_t at = ((const int64_t *)fy[1]->data)[e];
                cr_assert(at >= 0 && at < n, "index %lld out of range", (long long)at);
                want[at] += tt_get(dy, e);
            }
            amp_tensor *gin[2] = {dy, x}, *gx[1] = {0};
            cr_assert_eq(tn_run(t, 2, gin, 1, gx), AMP_OK, "%s", amp_context_last_error(ctx));
            for (int64_t e = 0; e < n; e++)
                cr_assert_eq(tt_get(gx[0], e), want[e], "case %d %s: dX[%lld] is %g, want %g", ci, amp_dtype_name(dt),
                             (long long)e, tt_get(gx[0], e), want[e]);
            free(want);
            amp_tensor_destroy(x);
            amp_tensor_destroy(dy);
            free_all(fy, 2);
            free_all(gx, 1);
            tn_free(f);
            tn_free(t);
        }
}

/* =========================================================================================== */
/* The backward graph asks only for what is needed                                             */

/* Graph X, W -> Conv -> Y; autodiff of Y (seeded by a graph input dY) with respect to the
 * inputs in wrt. Returns the ConvGrad node's output count and fills outs. */
static int conv_grad_outputs(const bool *wrt, int *outs) {
    amp_graph *g = NULL;
    cr_assert_eq(amp_graph_create(ctx, &g), AMP_OK);
    g->opset = 17;
    const char *names[] = {"X", "W", "B", "dY"};
    int64_t dims[4][4] = {{2, 3, 6, 6}, {4, 3, 3, 3}, {4}, {2, 4, 4, 4}};
    int ranks[4] = {4, 4, 1, 4}, ids[4];
    g->inputs = amp_calloc(ctx, 5, sizeof(int));
    for (int i = 0; i < 4; i++) {
        ids[i] = amp_graph_new_value(g, names[i]);
        amp_value *v = &g->values[ids[i]];
        v->dtype = AMP_F32;
        v->rank = ranks[i];
        for (int d = 0; d < ranks[i]; d++)
            v->dims[d] = (amp_dim){dims[i][d], -1};
        v->is_input = v->declared = true;
        g->inputs[g->n_inputs++] = ids[i];
    }
    amp_node n;
    memset(&n, 0, sizeof n);
    n.name = amp_strdup(ctx, "conv");
    n.op_type = amp_strdup(ctx, "Conv");
    n.domain = amp_strdup(ctx, "");
    n.op = AMP_OP_CONV;
    n.inputs = amp_alloc(ctx, sizeof(int) * 3);
    n.outputs = amp_alloc(ctx, sizeof(int));
    n.n_inputs = 3;
    n.n_outputs = 1;
    for (int i = 0; i < 3; i++)
        n.inputs[i] = ids[i];
    int y = amp_graph_new_value(g, "Y");
    g->values[y].dtype = AMP_F32;
    n.outputs[0] = y;
    cr_assert_eq(amp_graph_add_node(g, &n), AMP_OK);
    cr_assert_eq(amp_graph_link(g), AMP_OK, "%s", amp_context_last_error(ctx));
    int w_ids[3], grads[3], nw = 0;
    for (int i = 0; i < 3; i++)
        if (wrt[i]) w_ids[nw++] = ids[i];
    cr_assert_eq(amp_pass_autodiff(g, y, ids[3], nw, w_ids, grads), AMP_OK, "%s", amp_context_last_error(ctx));
    int found = -1;
    for (int i = 0; i < g->n_nodes; i++)
        if (g->nodes[i].op == AMP_OP_CONV_GRAD) {
            cr_assert_eq(found, -1, "more than one ConvGrad");
            found = i;
        }
    cr_assert_neq(found, -1, "no ConvGrad node");
    const amp_node *cg = &g->nodes[found];
    int cnt = cg->n_outputs;
    for (int k = 0; k < cnt; k++)
        outs[k] = cg->outputs[k];
    /* every gradient asked for is an output of ConvGrad at its own position */
    for (int i = 0, w = 0; i < 3; i++)
        if (wrt[i]) {
            cr_assert(i < cnt && cg->outputs[i] == grads[w], "gradient of input %d is not ConvGrad output %d", i, i);
            w++;
        }
    amp_graph_destroy(g);
    return cnt;
}

Test(grad_conv, only_requested_outputs_are_computed) {
    int outs[3];
    bool w_only[3] = {false, true, false};
    int n = conv_grad_outputs(w_only, outs);
    cr_assert_eq(n, 2, "dW only: %d outputs", n);
    cr_assert_eq(outs[0], -1, "dX is computed though X is not trained");
    bool x_only[3] = {true, false, false};
    n = conv_grad_outputs(x_only, outs);
    cr_assert_eq(n, 1, "dX only: %d outputs", n);
    cr_assert_neq(outs[0], -1);
    bool xb[3] = {true, false, true};
    n = conv_grad_outputs(xb, outs);
    cr_assert_eq(n, 3);
    cr_assert(outs[0] >= 0 && outs[1] == -1 && outs[2] >= 0, "dX and dB: outputs %d %d %d", outs[0], outs[1],
              outs[2]);
}

/* =========================================================================================== */
/* Bad input                                                                                   */

static void expect_fail(amp_test_node *t, int nin, amp_tensor **in, int nout, amp_status want, const char *what) {
    amp_tensor *out[4] = {0};
    amp_status s = tn_run(t, nin, in, nout, out);
    cr_assert_eq(s, want, "%s: got %s, want %s", what, amp_status_name(s), amp_status_name(want));
    cr_assert(strlen(amp_context_last_error(ctx)) > 0, "%s: no message", what);
    for (int k = 0; k < 4; k++)
        cr_assert_null(out[k]);
}

Test(grad_conv, bad_inputs) {
    int64_t xd[] = {2, 4, 6, 6}, wd[] = {6, 2, 3, 3}, yd[] = {2, 6, 4, 4}, bad_yd[] = {2, 6, 5, 4};
    amp_tensor *x = tt_rand(ctx, AMP_F32, 4, xd, -1, 1, 1), *w = tt_rand(ctx, AMP_F32, 4, wd, -1, 1, 2);
    amp_tensor *dy = tt_rand(ctx, AMP_F32, 4, yd, -1, 1, 3), *bad_dy = tt_rand(ctx, AMP_F32, 4, bad_yd, -1, 1, 4);
    amp_tensor *dy64 = tt_rand(ctx, AMP_F64, 4, yd, -1, 1, 5);

    amp_test_node *t = tn_train(ctx, "ConvGrad");
    tn_int(t, "group", 2);
    amp_tensor *ok[3] = {dy, x, w}, *wrong_shape[3] = {bad_dy, x, w}, *wrong_dt[3] = {dy64, x, w};
    amp_tensor *out[3] = {0};
    cr_assert_eq(tn_run(t, 3, ok, 3, out), AMP_OK, "%s", amp_context_last_error(ctx));
    free_all(out, 3);
    expect_fail(t, 3, wrong_shape, 3, AMP_ERR_SHAPE, "dY of the wrong shape");
    expect_fail(t, 3, wrong_dt, 3, AMP_ERR_SHAPE, "dY of another dtype");
    expect_fail(t, 2, ok, 3, AMP_ERR_INVALID_GRAPH, "W missing");
    tn_free(t);

    t = tn_train(ctx, "ConvGrad");
    tn_int(t, "group", 3); /* 4 channels */
    expect_fail(t, 3, ok, 3, AMP_ERR_SHAPE, "group that does not divide the channels");
    tn_free(t);
    t = tn_train(ctx, "ConvGrad");
    tn_str(t, "auto_pad", "SIDEWAYS");
    tn_int(t, "group", 2);
    expect_fail(t, 3, ok, 3, AMP_ERR_INVALID_GRAPH, "unknown auto_pad");
    tn_free(t);
    t = tn_train(ctx, "ConvGrad");
    int64_t zero_stride[] = {0, 1};
    tn_ints(t, "strides", 2, zero_stride);
    tn_int(t, "group", 2);
    expect_fail(t, 3, ok, 3, AMP_ERR_INVALID_GRAPH, "stride 0");
    tn_free(t);

    /* pools */
    int64_t pd[] = {2, 4, 3, 3}, k[] = {2, 2}, big_pads[] = {2, 0, 0, 0};
    amp_tensor *pdy = tt_rand(ctx, AMP_F32, 4, pd, -1, 1, 6);
    amp_tensor *mp[2] = {pdy, x};
    t = tn_train(ctx, "MaxPoolGrad");
    expect_fail(t, 2, mp, 1, AMP_ERR_INVALID_GRAPH, "MaxPoolGrad without kernel_shape");
    tn_free(t);
    t = tn_train(ctx, "MaxPoolGrad");
    tn_ints(t, "kernel_shape", 2, k);
    tn_ints(t, "pads", 4, big_pads);
    expect_fail(t, 2, mp, 1, AMP_ERR_INVALID_GRAPH, "pads as large as the kernel");
    tn_free(t);
    t = tn_train(ctx, "MaxPoolGrad");
    tn_ints(t, "kernel_shape", 2, k); /* dY should be 5x5 */
    expect_fail(t, 2, mp, 1, AMP_ERR_SHAPE, "MaxPoolGrad dY of the wrong shape");
    tn_free(t);

    double sh3[] = {2, 4, 6}, sh4[] = {2, 4, 6, 6}, shneg[] = {2, 4, -6, 6};
    int64_t r3[] = {3}, r4[] = {4};
    amp_tensor *s3 = tt_make(ctx, AMP_I64, 1, r3, sh3), *s4 = tt_make(ctx, AMP_I64, 1, r4, sh4),
               *sneg = tt_make(ctx, AMP_I64, 1, r4, shneg);
    int64_t k3[] = {4, 4};
    t = tn_train(ctx, "AveragePoolGrad");
    tn_ints(t, "kernel_shape", 2, k3);
    amp_tensor *ap_ok[2] = {pdy, s4}, *ap_rank[2] = {pdy, s3}, *ap_neg[2] = {pdy, sneg}, *ap_int[2] = {s4, s4};
    cr_assert_eq(tn_run(t, 2, ap_ok, 1, out), AMP_OK, "%s", amp_context_last_error(ctx));
    free_all(out, 1);
    expect_fail(t, 2, ap_rank, 1, AMP_ERR_SHAPE, "shape of the wrong rank");
    expect_fail(t, 2, ap_neg, 1, AMP_ERR_SHAPE, "negative dim in the shape");
    expect_fail(t, 2, ap_int, 1, AMP_ERR_UNSUPPORTED, "integer dY");
    tn_free(t);

    amp_tensor_destroy(s3);
    amp_tensor_destroy(s4);
    amp_tensor_destroy(sneg);
    amp_tensor_destroy(pdy);
    amp_tensor_destroy(x);
    amp_tensor_destroy(w);
    amp_tensor_destroy(dy);
    amp_tensor_destroy(bad_dy);
    amp_tensor_destroy(dy64);
}

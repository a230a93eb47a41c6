/* Gradients of the sample family (ir/ops/sample_grad.c, backends/cpu/sample_grad.c): GridSample
 * with respect to X and the grid, AffineGrid with respect to theta, RoiAlign with respect to X.
 *
 * Every case is a finite-difference check (tests/gradcheck.h) in f64 with eps 1e-6 on random data
 * (coordinates land on a kink of the piecewise interpolation with negligible probability), so the
 * analytic gradient must agree within a relative L2 error of 1e-5. The training-domain kernels
 * also run in f16, bf16 and f32 against their own f64 result on the same rounded inputs (relative
 * L2 under 1e-2, 1e-5 for f32); the omitted-output paths, rois (which get no gradient), and bad
 * shapes and indices are checked as well. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backends/cpu/cpu.h"
#include "gradcheck.h"
#include "ir/grad.h"
#include "testutil.h"

#define GC_TOL 1e-5
#define MAXIN 8

static amp_context *ctx;
static void setup(void) { cr_assert_eq(amp_context_create(NULL, &ctx), AMP_OK); }
static void teardown(void) { amp_context_destroy(ctx); }
TestSuite(grad_sample, .init = setup, .fini = teardown, .timeout = 60);

static uint64_t seed_next = 1;

static amp_tensor *rnd(int rank, const int64_t *dims, double lo, double hi) {
    amp_tensor *t = tt_rand(ctx, AMP_F64, rank, dims, lo, hi, seed_next++);
    cr_assert(t);
    return t;
}

static amp_tensor *ints(amp_dtype dt, int rank, const int64_t *dims, const int64_t *v) {
    amp_tensor *t;
    cr_assert_eq(amp_tensor_create(ctx, dt, rank, dims, &t), AMP_OK);
    for (int64_t i = 0; i < t->numel; i++) amp_sti(dt, t->data, i, v[i]);
    return t;
}

static amp_tensor *vals(amp_dtype dt, int rank, const int64_t *dims, const double *v) {
    amp_tensor *t = tt_make(ctx, dt, rank, dims, v);
    cr_assert(t);
    return t;
}

static void free_in(amp_tensor **in, int n) {
    for (int i = 0; i < n; i++) {
        amp_tensor_destroy(in[i]);
        in[i] = NULL;
    }
}

/* Finite-difference check of the inputs wrt marks (all float inputs when NULL); frees t and in. */
static void gc_ok(amp_test_node *t, int nin, amp_tensor **in, const bool *wrt, const char *what) {
    char msg[640];
    cr_assert(gc_passes(t, nin, in, wrt, 1, GC_TOL, msg, sizeof msg), "%s: %s", what, msg);
    free_in(in, nin);
    tn_free(t);
}

/* Some element of t is not zero: a gradient that is all zero proves little. */
static void not_all_zero(const amp_tensor *t, const char *what) {
    for (int64_t i = 0; i < t->numel; i++)
        if (tt_get(t, i) != 0) return;
    cr_assert_fail("%s: all zero", what);
}

/* Run t with the inputs marked in narrow[] in f16, bf16 and f32 and again in f64 on the same
 * rounded values: every output must agree within relative L2 1e-2 (16-bit) or 1e-5 (f32). */
static void cmp_narrow(amp_test_node *t, int nin, amp_tensor **in64, const bool *narrow, int nout, const char *what) {
    static const amp_dtype dts[3] = {AMP_F16, AMP_BF16, AMP_F32};
    static const double tols[3] = {1e-2, 1e-2, 1e-5};
    for (int k = 0; k < 3; k++) {
        amp_tensor *lo[MAXIN] = {0}, *hi[MAXIN] = {0}, *olo[2] = {0}, *ohi[2] = {0};
        for (int i = 0; i < nin; i++) {
            lo[i] = tt_convert(ctx, in64[i], narrow[i] ? dts[k] : in64[i]->dtype);
            hi[i] = tt_convert(ctx, lo[i], narrow[i] ? AMP_F64 : in64[i]->dtype);
        }
        cr_assert_eq(tn_run(t, nin, lo, nout, olo), AMP_OK, "%s (%s): %s", what, amp_dtype_name(dts[k]),
                     amp_context_last_error(ctx));
        cr_assert_eq(tn_run(t, nin, hi, nout, ohi), AMP_OK, "%s (f64): %s", what, amp_context_last_error(ctx));
        for (int o = 0; o < nout; o++) {
            double e = sqrt(tt_nse(olo[o], ohi[o]));
            cr_assert(e < tols[k], "%s (%s) output %d: rel L2 %g", what, amp_dtype_name(dts[k]), o, e);
        }
        free_in(lo, nin);
        free_in(hi, nin);
        free_in(olo, nout);
        free_in(ohi, nout);
    }
}

/* ---- GridSample ------------------------------------------------------------------------------ */

static const char *const pad_names[3] = {"zeros", "border", "reflection"};
static const char *const modes16[3] = {"nearest", "bilinear", "bicubic"};
static const char *const modes20[3] = {"nearest", "linear", "cubic"};

static amp_test_node *gs_node(int64_t opset, int m, int p, int a) {
    amp_test_node *t = tn_new(ctx, "GridSample");
    t->opset = opset;
    tn_str(t, "mode", (opset >= 20 ? modes20 : modes16)[m]);
    tn_str(t, "padding_mode", pad_names[p]);
    tn_int(t, "align_corners", a);
    return t;
}

static void gs_case(int64_t opset, int r, const int64_t *xd, const int64_t *gd, int m, int p, int a, double grange,
                    const bool *wrt) {
    char what[128];
    snprintf(what, sizeof what, "GridSample-%lld %d-D %s %s align %d%s", (long long)opset, r,
             (opset >= 20 ? modes20 : modes16)[m], pad_names[p], a, wrt ? (wrt[0] ? " (X only)" : " (grid only)") : "");
    amp_tensor *in[2] = {rnd(r + 2, xd, -1, 1), rnd(r + 2, gd, -grange, grange)};
    gc_ok(gs_node(opset, m, p, a), 2, in, wrt, what);
}

Test(grad_sample, grid_sample_2d_every_mode) {
    const int64_t xd[4] = {2, 2, 4, 5}, gd[4] = {2, 3, 2, 2};
    for (int m = 0; m < 3; m++)
        for (int p = 0; p < 3; p++)
            for (int a = 0; a < 2; a++) gs_case(m == 2 ? 20 : 16, 2, xd, gd, m, p, a, 1.3, NULL);
    /* far outside: many reflections, long clamps */
    for (int m = 1; m < 3; m++)
        for (int p = 0; p < 3; p++) gs_case(20, 2, xd, gd, m, p, 0, 4.0, NULL);
}

Test(grad_sample, grid_sample_volumetric_and_1d) {
    const int64_t x3[5] = {1, 2, 3, 4, 3}, g3[5] = {1, 2, 2, 2, 3}, x1[3] = {2, 2, 7}, g1[3] = {2, 5, 1};
    for (int m = 0; m < 3; m++)
        for (int p = 0; p < 3; p++) {
            gs_case(20, 3, x3, g3, m, p, p == 1, 1.3, NULL);
            gs_case(20, 1, x1, g1, m, p, p != 1, 1.5, NULL);
        }
}

Test(grad_sample, grid_sample_one_input_only) {
    /* GridSampleGrad with only dGrid (dX omitted in the middle of the outputs) or only dX */
    const int64_t xd[4] = {1, 3, 5, 4}, gd[4] = {1, 4, 3, 2};
    const bool grid_only[2] = {false, true}, x_only[2] = {true, false};
    gs_case(20, 2, xd, gd, 1, 0, 0, 1.2, grid_only);
    gs_case(16, 2, xd, gd, 2, 2, 1, 1.2, grid_only);
    gs_case(20, 2, xd, gd, 1, 1, 0, 1.2, x_only);
}

Test(grad_sample, grid_sample_grad_kernel) {
    /* nearest: dGrid is exactly 0 and dX counts the reads; 16-bit and f32 against f64 */
    const int64_t xd[4] = {2, 3, 6, 7}, gd[4] = {2, 9, 8, 2}, yd[4] = {2, 3, 9, 8};
    for (int m = 0; m < 3; m++)
        for (int p = 0; p < 3; p++) {
            amp_tensor *in[3] = {rnd(4, yd, -1, 1), rnd(4, xd, -1, 1), rnd(4, gd, -1.2, 1.2)}, *out[2] = {0};
            amp_test_node *t = tn_train(ctx, "GridSampleGrad");
            tn_str(t, "mode", modes20[m]);
            tn_str(t, "padding_mode", pad_names[p]);
            tn_int(t, "fwd_opset", 20);
            cr_assert_eq(tn_run(t, 3, in, 2, out), AMP_OK, "%s", amp_context_last_error(ctx));
            not_all_zero(out[0], "dX");
            if (m == 0)
                for (int64_t i = 0; i < out[1]->numel; i++) cr_assert_eq(tt_get(out[1], i), 0);
            else
                not_all_zero(out[1], "dGrid");
            free_in(out, 2);
            const bool narrow[3] = {true, true, false};
            char what[64];
            snprintf(what, sizeof what, "GridSampleGrad %s %s", modes20[m], pad_names[p]);
            cmp_narrow(t, 3, in, narrow, 2, what);
            tn_free(t);
            free_in(in, 3);
        }
}

Test(grad_sample, grid_sample_grad_bad_inputs) {
    const int64_t xd[4] = {1, 2, 4, 4}, gd[4] = {1, 3, 3, 2}, yd[4] = {1, 2, 3, 3}, ybad[4] = {1, 2, 3, 4};
    amp_tensor *dy = rnd(4, yd, -1, 1), *x = rnd(4, xd, -1, 1), *g = rnd(4, gd, -1, 1), *dyb = rnd(4, ybad, -1, 1);
    amp_tensor *x32 = tt_convert(ctx, x, AMP_F32), *out[2] = {0};
    amp_tensor *in[3] = {dy, x, g};
    amp_test_node *t = tn_train(ctx, "GridSampleGrad");
    tn_int(t, "fwd_opset", 16);
    cr_assert_eq(tn_run(t, 3, in, 2, out), AMP_OK, "%s", amp_context_last_error(ctx));
    free_in(out, 2);
    in[0] = dyb;
    cr_assert_eq(tn_run(t, 3, in, 2, out), AMP_ERR_SHAPE);
    in[0] = dy;
    in[1] = x32;
    cr_assert_eq(tn_run(t, 3, in, 2, out), AMP_ERR_SHAPE);
    tn_free(t);
    /* a forward opset GridSample does not have; the forward's checks apply */
    t = tn_train(ctx, "GridSampleGrad");
    tn_int(t, "fwd_opset", 15);
    in[1] = x;
    cr_assert_eq(tn_run(t, 3, in, 2, out), AMP_ERR_UNSUPPORTED);
    tn_free(t);
    t = tn_train(ctx, "GridSampleGrad");
    tn_int(t, "fwd_opset", 16);
    tn_str(t, "mode", "linear");
    cr_assert_eq(tn_run(t, 3, in, 2, out), AMP_ERR_INVALID_GRAPH);
    tn_free(t);
    cr_assert_null(out[0]);
    amp_tensor *all[] = {dy, x, g, dyb, x32};
    free_in(all, 5);
}

/* ---- AffineGrid ------------------------------------------------------------------------------ */

static void ag_case(const int64_t *size, int nsize, int align) {
    int k = nsize - 2;
    const int64_t td[3] = {size[0], k, k + 1}, sd[1] = {nsize};
    amp_test_node *t = tn_new(ctx, "AffineGrid");
    t->opset = 20;
    tn_int(t, "align_corners", align);
    amp_tensor *in[2] = {rnd(3, td, -1, 1), ints(AMP_I64, 1, sd, size)};
    char what[64];
    snprintf(what, sizeof what, "AffineGrid %d-D align %d", k, align);
    gc_ok(t, 2, in, NULL, what);
}

Test(grad_sample, affine_grid) {
    const int64_t s2[4] = {2, 3, 5, 7}, s3[5] = {2, 1, 3, 4, 5}, s1[4] = {1, 1, 1, 4};
    for (int a = 0; a < 2; a++) {
        ag_case(s2, 4, a);
        ag_case(s3, 5, a);
        ag_case(s1, 4, a);
    }
}

Test(grad_sample, affine_grid_grad_kernel) {
    /* a 2 x 2 grid, align_corners: base x = (-1, 1), y = (-1, 1), so dTheta sums dGrid * (x, y, 1) */
    const int64_t gd[4] = {1, 2, 2, 2}, sd[1] = {4}, size[4] = {1, 1, 2, 2};
    const double dg[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    /* positions (x, y): (-1,-1) (1,-1) (-1,1) (1,1); dGrid[..., i] */
    const double want[6] = {-1 + 3 - 5 + 7, -1 - 3 + 5 + 7, 1 + 3 + 5 + 7,
                            -2 + 4 - 6 + 8, -2 - 4 + 6 + 8, 2 + 4 + 6 + 8};
    amp_tensor *in[2] = {vals(AMP_F64, 4, gd, dg), ints(AMP_I64, 1, sd, size)}, *dth = NULL;
    amp_test_node *t = tn_train(ctx, "AffineGridGrad");
    tn_int(t, "align_corners", 1);
    cr_assert_eq(tn_run(t, 2, in, 1, &dth), AMP_OK, "%s", amp_context_last_error(ctx));
    cr_assert(dth->rank == 3 && dth->dims[1] == 2 && dth->dims[2] == 3);
    for (int i = 0; i < 6; i++) cr_assert_eq(tt_get(dth, i), want[i], "element %d: %g", i, tt_get(dth, i));
    amp_tensor_destroy(dth);
    free_in(in, 2);
    /* 16-bit and f32 against f64, 3-D */
    const int64_t g3[5] = {2, 9, 10, 11, 3}, s3d[1] = {5}, size3[5] = {2, 4, 9, 10, 11};
    in[0] = rnd(5, g3, -1, 1);
    in[1] = ints(AMP_I64, 1, s3d, size3);
    const bool narrow[2] = {true, false};
    cmp_narrow(t, 2, in, narrow, 1, "AffineGridGrad");
    /* dGrid of the wrong shape */
    const int64_t size_bad[5] = {2, 4, 9, 10, 12};
    amp_tensor_destroy(in[1]);
    in[1] = ints(AMP_I64, 1, s3d, size_bad);
    cr_assert_eq(tn_run(t, 2, in, 1, &dth), AMP_ERR_SHAPE);
    cr_assert_null(dth);
    tn_free(t);
    free_in(in, 2);
}

/* ---- RoiAlign --------------------------------------------------------------------------------- */

static const int64_t ra_xd[4] = {2, 3, 7, 8}, ra_rd[2] = {5, 4}, ra_bd[1] = {5}, ra_bv[5] = {0, 1, 1, 0, 1};
/* boxes at spatial_scale 0.5: inside, partly outside, inverted, larger than the map */
static const double ra_rv[20] = {2, 3, 12, 11, -5, -3, 6, 7, 9, 9, 4, 5, 1, 1, 3.5, 2.5, -12, -10, 30, 25};

static amp_test_node *ra_node(int64_t opset, const char *mode, const char *ctm, int64_t sr) {
    amp_test_node *t = tn_new(ctx, "RoiAlign");
    t->opset = opset;
    tn_str(t, "mode", mode);
    if (ctm) tn_str(t, "coordinate_transformation_mode", ctm);
    tn_int(t, "output_height", 3);
    tn_int(t, "output_width", 2);
    tn_int(t, "sampling_ratio", sr);
    tn_float(t, "spatial_scale", 0.5f);
    return t;
}

Test(grad_sample, roi_align) {
    static const char *const ctms[3] = {NULL, "half_pixel", "output_half_pixel"};
    const bool wrt[3] = {true, false, false};
    for (int m = 0; m < 2; m++)
        for (int k = 0; k < 4; k++)
            for (int64_t sr = 0; sr <= 2; sr += 2) {
                int64_t opset = k == 3 ? 10 : 16;
                const char *mode = m ? "max" : "avg";
                amp_tensor *in[3] = {rnd(4, ra_xd, -1, 1), vals(AMP_F64, 2, ra_rd, ra_rv),
                                     ints(AMP_I64, 1, ra_bd, ra_bv)};
                char what[96];
                snprintf(what, sizeof what, "RoiAlign-%lld %s %s sr %lld", (long long)opset, mode,
                         k == 3 ? "-" : ctms[k] ? ctms[k] : "default", (long long)sr);
                gc_ok(ra_node(opset, mode, k == 3 ? NULL : ctms[k], sr), 3, in, wrt, what);
            }
}

Test(grad_sample, roi_align_rois_get_no_gradient) {
    amp_tensor *in[3] = {rnd(4, ra_xd, -1, 1), vals(AMP_F64, 2, ra_rd, ra_rv), ints(AMP_I64, 1, ra_bd, ra_bv)};
    const bool wrt[3] = {false, true, false};
    gc_result r;
    amp_test_node *t = ra_node(16, "avg", NULL, 2);
    cr_assert_eq(gc_check(t, 3, in, wrt, 1, 1e-6, &r), AMP_ERR_INVALID_GRAPH);
    cr_assert(strstr(r.why, "no gradient reaches input 1"), "%s", r.why);
    tn_free(t);
    free_in(in, 3);
}

Test(grad_sample, roi_align_grad_kernel) {
    /* max routes dY to the winning corner term only: one sample per bin at (0.5, 0.5) of a 2 x 2
     * map reads all four pixels with weight 1/4 each; the largest pixel wins */
    const int64_t xd[4] = {1, 1, 2, 2}, rd[2] = {1, 4}, bd[1] = {1}, bv[1] = {0}, yd[4] = {1, 1, 1, 1}, sd[1] = {4};
    const double xv[4] = {1, 4, 3, 2}, rv[4] = {0, 0, 1, 1}, dyv[1] = {2};
    amp_tensor *in[5] = {vals(AMP_F64, 4, yd, dyv), ints(AMP_I64, 1, sd, xd), vals(AMP_F64, 2, rd, rv),
                         ints(AMP_I64, 1, bd, bv), vals(AMP_F64, 4, xd, xv)};
    amp_tensor *dx = NULL;
    amp_test_node *t = tn_train(ctx, "RoiAlignGrad");
    tn_str(t, "mode", "max");
    tn_int(t, "sampling_ratio", 1);
    tn_str(t, "coordinate_transformation_mode", "output_half_pixel");
    tn_int(t, "fwd_opset", 16);
    cr_assert_eq(tn_run(t, 5, in, 1, &dx), AMP_OK, "%s", amp_context_last_error(ctx));
    const double want_max[4] = {0, 0.5, 0, 0};
    for (int i = 0; i < 4; i++) cr_assert_eq(tt_get(dx, i), want_max[i], "max element %d: %g", i, tt_get(dx, i));
    amp_tensor_destroy(dx);
    /* max without X */
    cr_assert_eq(tn_run(t, 4, in, 1, &dx), AMP_ERR_INVALID_GRAPH);
    tn_free(t);
    /* avg: the same sample spreads dY / 4 over the four pixels */
    t = tn_train(ctx, "RoiAlignGrad");
    tn_int(t, "sampling_ratio", 1);
    tn_str(t, "coordinate_transformation_mode", "output_half_pixel");
    tn_int(t, "fwd_opset", 16);
    cr_assert_eq(tn_run(t, 4, in, 1, &dx), AMP_OK, "%s", amp_context_last_error(ctx));
    for (int i = 0; i < 4; i++) cr_assert_eq(tt_get(dx, i), 0.5, "avg element %d: %g", i, tt_get(dx, i));
    amp_tensor_destroy(dx);
    /* a batch index outside the batch; X of the wrong shape */
    const int64_t bad[1] = {1}, x3[3] = {1, 2, 2};
    amp_tensor_destroy(in[3]);
    in[3] = ints(AMP_I64, 1, bd, bad);
    cr_assert_eq(tn_run(t, 4, in, 1, &dx), AMP_ERR_INVALID_ARG);
    amp_tensor_destroy(in[3]);
    in[3] = ints(AMP_I64, 1, bd, bv);
    amp_tensor_destroy(in[1]);
    const int64_t s3[1] = {3};
    in[1] = ints(AMP_I64, 1, s3, x3);
    cr_assert_eq(tn_run(t, 4, in, 1, &dx), AMP_ERR_SHAPE);
    cr_assert_null(dx);
    tn_free(t);
    free_in(in, 5);
    /* 16-bit and f32 against f64: dY, rois and X narrowed together */
    static const char *const modes[2] = {"avg", "max"};
    const int64_t yd2[4] = {5, 3, 3, 2}, sd2[1] = {4};
    for (int m = 0; m < 2; m++) {
        amp_tensor *in2[5] = {rnd(4, yd2, -1, 1), ints(AMP_I64, 1, sd2, ra_xd), vals(AMP_F64, 2, ra_rd, ra_rv),
                              ints(AMP_I64, 1, ra_bd, ra_bv), rnd(4, ra_xd, -1, 1)};
        t = tn_train(ctx, "RoiAlignGrad");
        tn_str(t, "mode", modes[m]);
        tn_int(t, "output_height", 3);
        tn_int(t, "output_width", 2);
        tn_float(t, "spatial_scale", 0.5f);
        tn_int(t, "fwd_opset", 16);
        const bool narrow[5] = {true, false, true, false, true};
        cmp_narrow(t, m ? 5 : 4, in2, narrow, 1, modes[m]);
        tn_free(t);
        free_in(in2, 5);
    }
}

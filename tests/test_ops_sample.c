/* GridSample, AffineGrid and RoiAlign against reference loops written here, which follow ONNX's
 * reference implementation (one dimension at a time, iterative reflection, every RoiAlign sample
 * visited), with two documented choices: cubic sampling with border padding clamps only the
 * taps (PyTorch, onnxruntime), and AffineGrid puts a single pixel with align_corners at 0
 * (PyTorch). Every dtype each op takes, odd shapes, every attribute, both opsets, values from
 * the ONNX conformance data, and bad inputs that must fail with the right status. Floats compare
 * by normalised squared error; integer outputs and nearest sampling exactly. */
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
TestSuite(grid_sample, .init = setup, .fini = teardown, .timeout = 60);
TestSuite(affine_grid, .init = setup, .fini = teardown, .timeout = 60);
TestSuite(roi_align, .init = setup, .fini = teardown, .timeout = 60);

static const amp_dtype all_types[] = {AMP_F32, AMP_F16, AMP_BF16, AMP_F64, AMP_I64, AMP_I32, AMP_I16,
                                      AMP_I8,  AMP_U64, AMP_U32,  AMP_U16, AMP_U8,  AMP_BOOL};
#define N_ALL (sizeof all_types / sizeof all_types[0])
static const amp_dtype float_types[] = {AMP_F32, AMP_F16, AMP_BF16, AMP_F64};

static uint64_t seed_next = 1;

/* Random data of dtype dt, never all zero: small integers for integer types. */
static amp_tensor *rand_of(amp_dtype dt, int rank, const int64_t *dims, double lo, double hi) {
    amp_tensor *t;
    if (dt == AMP_BOOL) t = tt_rand(ctx, dt, rank, dims, 0, 2, seed_next++);
    else if (dt == AMP_U8 || dt == AMP_U16 || dt == AMP_U32 || dt == AMP_U64)
        t = tt_rand(ctx, dt, rank, dims, 1, 250, seed_next++);
    else if (amp_dtype_is_int(dt)) t = tt_rand(ctx, dt, rank, dims, -100, 100, seed_next++);
    else t = tt_rand(ctx, dt, rank, dims, lo, hi, seed_next++);
    cr_assert(t);
    return t;
}

static amp_tensor *new_t(amp_dtype dt, int rank, const int64_t *dims) {
    amp_tensor *t;
    cr_assert_eq(amp_tensor_create(ctx, dt, rank, dims, &t), AMP_OK);
    return t;
}

static amp_tensor *ints_of(amp_dtype dt, int rank, const int64_t *dims, const int64_t *v) {
    amp_tensor *t = new_t(dt, rank, dims);
    for (int64_t i = 0; i < t->numel; i++) amp_sti(dt, t->data, i, v[i]);
    return t;
}

static void destroy(int n, amp_tensor **t) {
    for (int i = 0; i < n; i++) amp_tensor_destroy(t[i]);
}

/* Float outputs: normalised squared error under the dtype's tolerance; others exactly. */
static void expect_close(const amp_tensor *y, const amp_tensor *ref, const char *what) {
    cr_assert_eq(y->dtype, ref->dtype, "%s: dtype", what);
    if (!amp_dtype_is_float(y->dtype)) {
        cr_assert(tt_equal(y, ref), "%s: integer outputs differ", what);
        return;
    }
    double tol = y->dtype == AMP_F64 ? 1e-22 : y->dtype == AMP_F32 ? 1e-11 : 1e-4;
    double e = tt_nse(y, ref);
    cr_assert(e <= tol, "%s: nse %g over %g", what, e, tol);
}

/* The rounding of integer outputs: half to even, saturated, NaN as 0. */
static void store_ref(amp_tensor *y, int64_t i, double v) {
    amp_dtype dt = y->dtype;
    if (amp_dtype_is_float(dt)) {
        amp_st(dt, y->data, i, v);
        return;
    }
    v = nearbyint(v);
    if (isnan(v)) v = 0;
    double lo = 0, hi = 0;
    switch (dt) {
    case AMP_BOOL: amp_sti(dt, y->data, i, v != 0); return;
    case AMP_I8: lo = -128, hi = 127; break;
    case AMP_U8: lo = 0, hi = 255; break;
    case AMP_I16: lo = -32768, hi = 32767; break;
    case AMP_U16: lo = 0, hi = 65535; break;
    case AMP_I32: lo = -2147483648.0, hi = 2147483647.0; break;
    case AMP_U32: lo = 0, hi = 4294967295.0; break;
    case AMP_I64: lo = -9.2e18, hi = 9.2e18; break;
    default: lo = 0, hi = 1.8e19; break;
    }
    v = v < lo ? lo : v > hi ? hi : v;
    if (dt == AMP_U64) ((uint64_t *)y->data)[i] = (uint64_t)v;
    else amp_sti(dt, y->data, i, (int64_t)v);
}

/* ---- GridSample reference --------------------------------------------------------------------- */

enum { M_NEAREST, M_LINEAR, M_CUBIC };
enum { P_ZEROS, P_BORDER, P_REFLECTION };
static const char *const pad_names[] = {"zeros", "border", "reflection"};
static const char *mode_name(int m, int64_t opset) {
    if (m == M_NEAREST) return "nearest";
    if (m == M_LINEAR) return opset >= 20 ? "linear" : "bilinear";
    return opset >= 20 ? "cubic" : "bicubic";
}

typedef struct gref {
    const amp_tensor *x;
    int r, mode, pad, align;
    int64_t sd[3], st[3];
    int64_t base;
} gref;

/* Reflection by repeated mirroring (the spec's description, not the kernel's closed form). */
static double ref_reflect(double v, double lo, double hi) {
    if (hi <= lo) return lo;
    for (int guard = 0; (v < lo || v > hi) && guard < 100000; guard++) v = v < lo ? 2 * lo - v : 2 * hi - v;
    return v;
}

static double border_lo(const gref *g, int d) {
    (void)d;
    return g->align ? 0 : -0.5;
}
static double border_hi(const gref *g, int d) { return g->align ? (double)g->sd[d] - 1 : (double)g->sd[d] - 0.5; }

/* The element of X an integer position reads after padding; -1 for a zero. */
static int64_t ref_off(const gref *g, const int64_t *ii) {
    int64_t off = g->base;
    for (int d = 0; d < g->r; d++) {
        int64_t i = ii[d], len = g->sd[d];
        if (i < 0 || i >= len) {
            if (g->pad == P_ZEROS) return -1;
            if (g->pad == P_BORDER) i = i < 0 ? 0 : len - 1;
            else i = (int64_t)ref_reflect((double)i, border_lo(g, d), border_hi(g, d));
        }
        off += i * g->st[d];
    }
    return off;
}

static double ref_at(const gref *g, const int64_t *ii) {
    int64_t off = ref_off(g, ii);
    return off < 0 ? 0 : amp_ld(g->x->dtype, g->x->data, off);
}

static void cubic_w(double t, double *c) {
    const double A = -0.75;
    double d[4] = {t + 1, t, 1 - t, 2 - t};
    for (int k = 0; k < 4; k++) {
        double a = d[k];
        c[k] = a <= 1 ? ((A + 2) * a - (A + 3)) * a * a + 1 : ((A * a - 5 * A) * a + 8 * A) * a - 4 * A;
    }
}

static double ref_interp(const gref *g, int d, const double *xs, int64_t *ii) {
    if (d == g->r) return ref_at(g, ii);
    double f = floor(xs[d]), t = xs[d] - f;
    int64_t i0 = (int64_t)f;
    if (g->mode == M_LINEAR) {
        ii[d] = i0;
        double a = ref_interp(g, d + 1, xs, ii);
        ii[d] = i0 + 1;
        double b = ref_interp(g, d + 1, xs, ii);
        return (1 - t) * a + t * b;
    }
    double c[4], s = 0;
    cubic_w(t, c);
    for (int k = 0; k < 4; k++) {
        ii[d] = i0 - 1 + k;
        s += c[k] * ref_interp(g, d + 1, xs, ii);
    }
    return s;
}

static amp_tensor *ref_grid_sample(const amp_tensor *x, const amp_tensor *grid, int mode, int pad, int align) {
    int r = x->rank - 2;
    int64_t yd[AMP_MAX_RANK] = {x->dims[0], x->dims[1]}, P = 1, S = 1;
    for (int d = 0; d < r; d++) {
        yd[2 + d] = grid->dims[1 + d];
        P *= grid->dims[1 + d];
        S *= x->dims[2 + d];
    }
    amp_tensor *y = new_t(x->dtype, x->rank, yd);
    gref g = {.x = x, .r = r, .mode = mode, .pad = pad, .align = align};
    for (int d = 0; d < r; d++) g.sd[d] = x->dims[2 + d];
    amp_strides(r, g.sd, g.st);
    bool wide = grid->dtype == AMP_F64;
    for (int64_t n = 0; n < x->dims[0]; n++)
        for (int64_t p = 0; p < P; p++) {
            double xs[3];
            for (int d = 0; d < r; d++) {
                /* grid's last dim lists the innermost spatial dim first */
                double v = tt_get(grid, (n * P + p) * r + (r - 1 - d));
                int64_t len = g.sd[d];
                double c = align ? (v + 1) / 2 * (double)(len - 1) : ((v + 1) * (double)len - 1) / 2;
                if (!wide) {
                    float vf = (float)v;
                    c = align ? (vf + 1.0f) / 2.0f * (float)(len - 1) : ((vf + 1.0f) * (float)len - 1.0f) / 2.0f;
                }
                if (mode == M_NEAREST) c = nearbyint(c);
                double lo = border_lo(&g, d), hi = border_hi(&g, d);
                if ((c < lo || c > hi) && !(mode == M_CUBIC && pad == P_BORDER)) {
                    if (pad == P_BORDER) c = c < 0 ? 0 : c > (double)len - 1 ? (double)len - 1 : c;
                    else if (pad == P_REFLECTION) c = ref_reflect(c, lo, hi);
                }
                xs[d] = wide ? c : (float)c;
            }
            for (int64_t ch = 0; ch < x->dims[1]; ch++) {
                g.base = (n * x->dims[1] + ch) * S;
                int64_t ii[3], out = (n * x->dims[1] + ch) * P + p;
                if (mode == M_NEAREST) {
                    for (int d = 0; d < r; d++) ii[d] = (int64_t)xs[d];
                    if (!amp_dtype_is_float(x->dtype)) {
                        /* an exact copy */
                        int64_t off = ref_off(&g, ii);
                        amp_sti(y->dtype, y->data, out, off < 0 ? 0 : amp_ldi(x->dtype, x->data, off));
                    } else {
                        store_ref(y, out, ref_at(&g, ii));
                    }
                } else {
                    store_ref(y, out, ref_interp(&g, 0, xs, ii));
                }
            }
        }
    return y;
}

/* ---- GridSample ------------------------------------------------------------------------------ */

typedef struct gs_spec {
    amp_dtype xt, gt;
    int64_t opset;
    int r;
    int64_t xd[5], gsp[3]; /* X dims; the grid's spatial dims */
    int mode, pad, align;
    double glo, ghi; /* range of grid values */
    int threads;
} gs_spec;

static amp_test_node *gs_node(const gs_spec *c) {
    amp_test_node *t = tn_new(ctx, "GridSample");
    t->opset = c->opset;
    t->threads = c->threads ? c->threads : 2;
    tn_str(t, "mode", mode_name(c->mode, c->opset));
    tn_str(t, "padding_mode", pad_names[c->pad]);
    tn_int(t, "align_corners", c->align);
    return t;
}

static void gs_check(const gs_spec *c, const char *what) {
    int64_t gd[AMP_MAX_RANK] = {c->xd[0]};
    for (int d = 0; d < c->r; d++) gd[1 + d] = c->gsp[d];
    gd[c->r + 1] = c->r;
    amp_tensor *x = rand_of(c->xt, c->r + 2, c->xd, -3, 3), *g = rand_of(c->gt, c->r + 2, gd, c->glo, c->ghi);
    amp_tensor *y = NULL, *in[2] = {x, g};
    amp_test_node *t = gs_node(c);
    cr_assert_eq(tn_run(t, 2, in, 1, &y), AMP_OK, "%s: %s", what, amp_context_last_error(ctx));
    amp_tensor *ref = ref_grid_sample(x, g, c->mode, c->pad, c->align);
    char msg[256];
    snprintf(msg, sizeof msg, "%s: %s x %s grid, %s %s align %d opset %lld", what, amp_dtype_name(c->xt),
             amp_dtype_name(c->gt), mode_name(c->mode, c->opset), pad_names[c->pad], c->align, (long long)c->opset);
    expect_close(y, ref, msg);
    tn_free(t);
    amp_tensor *all[] = {x, g, y, ref};
    destroy(4, all);
}

Test(grid_sample, every_mode_padding_and_align_2d) {
    for (int o = 0; o < 2; o++)
        for (int m = 0; m < 3; m++)
            for (int p = 0; p < 3; p++)
                for (int a = 0; a < 2; a++) {
                    gs_spec c = {AMP_F32, AMP_F32, o ? 20 : 16, 2, {2, 3, 5, 7}, {4, 3}, m, p, a, -1.3, 1.3, 0};
                    gs_check(&c, "2-D f32");
                    c.xt = c.gt = AMP_F64;
                    c.xd[2] = 1; /* a one-row image: align_corners maps everything onto it */
                    gs_check(&c, "2-D f64, one row");
                }
}

Test(grid_sample, volumetric_and_one_spatial_dim) {
    for (int m = 0; m < 3; m++)
        for (int p = 0; p < 3; p++)
            for (int a = 0; a < 2; a++) {
                gs_spec c3 = {AMP_F32, AMP_F32, 20, 3, {2, 2, 4, 5, 3}, {3, 2, 4}, m, p, a, -1.3, 1.3, 0};
                gs_check(&c3, "3-D");
                c3.xt = c3.gt = AMP_F64;
                gs_check(&c3, "3-D f64");
                gs_spec c1 = {AMP_F64, AMP_F64, 21, 1, {2, 3, 9}, {7}, m, p, a, -2.5, 2.5, 0};
                gs_check(&c1, "1-D");
            }
}

Test(grid_sample, every_dtype) {
    static const amp_dtype gts[4] = {AMP_F32, AMP_F16, AMP_BF16, AMP_F64};
    for (size_t i = 0; i < N_ALL; i++) {
        amp_dtype gt = gts[i % 4];
        gs_spec c = {all_types[i], gt, 20, 2, {1, 3, 4, 5}, {3, 5}, M_LINEAR, P_ZEROS, 0, -1.2, 1.2, 0};
        gs_check(&c, "linear zeros");
        c.mode = M_NEAREST;
        c.pad = P_REFLECTION;
        gs_check(&c, "nearest reflection");
        c.mode = M_CUBIC;
        c.pad = P_BORDER;
        c.align = 1;
        gs_check(&c, "cubic border");
        gs_spec c3 = {all_types[i], gts[(i + 1) % 4], 20, 3, {1, 2, 3, 4, 2}, {2, 3, 2}, M_LINEAR, P_BORDER, 1,
                      -1.2, 1.2, 0};
        gs_check(&c3, "3-D linear border");
    }
}

Test(grid_sample, far_outside_and_non_finite) {
    /* many periods of reflection, far clamps, far zeros */
    for (int m = 0; m < 3; m++)
        for (int p = 0; p < 3; p++)
            for (int a = 0; a < 2; a++) {
                gs_spec c = {AMP_F64, AMP_F64, 20, 2, {1, 2, 4, 3}, {5, 6}, m, p, a, -9, 9, 0};
                gs_check(&c, "far");
            }
    /* huge, infinite and NaN coordinates: zeros padding gives 0, border the edge pixel, reflection
     * some pixel; NaN reads nothing (0) in every mode */
    const int64_t xd[4] = {1, 1, 3, 4}, gd[4] = {1, 1, 5, 2};
    const double gv[10] = {1e30, 0, -1e30, 0, INFINITY, 0, -INFINITY, 0, NAN, 0};
    const double xv[12] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
    amp_tensor *x = tt_make(ctx, AMP_F32, 4, xd, xv), *g = tt_make(ctx, AMP_F32, 4, gd, gv);
    for (int m = 0; m < 3; m++)
        for (int p = 0; p < 3; p++) {
            gs_spec c = {AMP_F32, AMP_F32, 20, 2, {0}, {0}, m, p, 0, 0, 0, 1};
            amp_test_node *t = gs_node(&c);
            amp_tensor *y = NULL, *in[2] = {x, g};
            cr_assert_eq(tn_run(t, 2, in, 1, &y), AMP_OK, "%s", amp_context_last_error(ctx));
            for (int i = 0; i < 5; i++) {
                double v = tt_get(y, i);
                /* row 1 (y = 0 normalised) of the 3 x 4 image: 5 6 7 8 */
                if (i == 4 || p == P_ZEROS) cr_assert_eq(v, 0, "mode %d pad %d point %d: %g", m, p, i, v);
                else if (p == P_BORDER && m != M_CUBIC) cr_assert_eq(v, i % 2 ? 5 : 8, "border point %d: %g", i, v);
                else cr_assert(isfinite(v) && v >= 0 && v <= 13, "mode %d pad %d point %d: %g", m, p, i, v);
            }
            amp_tensor_destroy(y);
            tn_free(t);
        }
    amp_tensor_destroy(x);
    amp_tensor_destroy(g);
}

/* The ONNX conformance cases (node/test_gridsample_*): X = 0..5 as 1x1x3x2, grid 1x2x4x2. */
Test(grid_sample, conformance_values) {
    const int64_t xd[4] = {1, 1, 3, 2}, gd[4] = {1, 2, 4, 2};
    const double xv[6] = {0, 1, 2, 3, 4, 5};
    const double g1[16] = {-1, -1, -0.5, -0.5, -0.2, -0.2, 0, 0, 0, 0, -0.2, -0.2, 0.5, 0.5, 1, 1};
    const double g2[16] = {-10, -10, -5, -5, -0.2, -0.2, 10, 10, 10, 10, -0.2, -0.2, 5, 5, 10, 10};
    struct {
        const char *mode, *pad;
        int align;
        const double *g, want[8];
    } cases[] = {
        {"bilinear", "zeros", 0, g1, {0, 0.5, 1.7, 2.5, 2.5, 1.7, 4.5, 1.25}},
        {"nearest", "zeros", 0, g1, {0, 0, 2, 2, 2, 2, 5, 0}},
        {"bicubic", "zeros", 0, g1, {-0.1406, 0.3828, 1.7556, 2.9688, 2.9688, 1.7556, 5.1445, 1.3906}},
        {"bilinear", "border", 0, g2, {0, 0, 1.7, 5, 5, 1.7, 5, 5}},
        {"bilinear", "reflection", 0, g2, {2.5, 0, 1.7, 2.5, 2.5, 1.7, 5, 2.5}},
        {"bilinear", "zeros", 1, g1, {0, 1.25, 2, 2.5, 2.5, 2, 3.75, 5}},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        amp_tensor *x = tt_make(ctx, AMP_F32, 4, xd, xv), *g = tt_make(ctx, AMP_F32, 4, gd, cases[k].g), *y = NULL;
        amp_test_node *t = tn_new(ctx, "GridSample");
        t->opset = 16;
        tn_str(t, "mode", cases[k].mode);
        tn_str(t, "padding_mode", cases[k].pad);
        tn_int(t, "align_corners", cases[k].align);
        amp_tensor *in[2] = {x, g};
        cr_assert_eq(tn_run(t, 2, in, 1, &y), AMP_OK, "%s", amp_context_last_error(ctx));
        cr_assert(y->rank == 4 && y->dims[2] == 2 && y->dims[3] == 4);
        for (int i = 0; i < 8; i++)
            cr_assert(fabs(tt_get(y, i) - cases[k].want[i]) < 1e-4, "%s %s: element %d is %g, expected %g",
                      cases[k].mode, cases[k].pad, i, tt_get(y, i), cases[k].want[i]);
        tn_free(t);
        amp_tensor *all[] = {x, g, y};
        destroy(3, all);
    }
}

Test(grid_sample, defaults_threads_and_empty) {
    /* no attributes: bilinear (linear), zeros, align_corners 0 */
    const int64_t xd[4] = {2, 8, 33, 17}, gd[4] = {2, 40, 30, 2};
    amp_tensor *x = rand_of(AMP_F32, 4, xd, -1, 1), *g = rand_of(AMP_F32, 4, gd, -1.1, 1.1), *y1 = NULL, *y4 = NULL;
    amp_tensor *in[2] = {x, g};
    for (int64_t opset = 16; opset <= 20; opset += 4) {
        amp_test_node *t = tn_new(ctx, "GridSample");
        t->opset = opset;
        t->threads = 1;
        cr_assert_eq(tn_run(t, 2, in, 1, &y1), AMP_OK, "%s", amp_context_last_error(ctx));
        t->threads = 4;
        cr_assert_eq(tn_run(t, 2, in, 1, &y4), AMP_OK, "%s", amp_context_last_error(ctx));
        cr_assert(tt_equal(y1, y4), "thread counts disagree");
        amp_tensor *ref = ref_grid_sample(x, g, M_LINEAR, P_ZEROS, 0);
        expect_close(y1, ref, "defaults");
        amp_tensor *all[] = {y1, y4, ref};
        destroy(3, all);
        tn_free(t);
    }
    destroy(2, in);
    /* an empty image with zero padding samples zeros; an empty grid gives an empty output */
    const int64_t xe[4] = {1, 2, 0, 3}, ge[4] = {1, 2, 2, 2}, xn[4] = {1, 2, 3, 3}, gn[4] = {1, 0, 2, 2};
    x = rand_of(AMP_F32, 4, xe, -1, 1);
    g = rand_of(AMP_F32, 4, ge, -1, 1);
    amp_tensor *y = NULL, *in2[2] = {x, g};
    amp_test_node *t = tn_new(ctx, "GridSample");
    t->opset = 16;
    cr_assert_eq(tn_run(t, 2, in2, 1, &y), AMP_OK, "%s", amp_context_last_error(ctx));
    for (int64_t i = 0; i < y->numel; i++) cr_assert_eq(tt_get(y, i), 0);
    amp_tensor_destroy(y);
    tn_str(t, "padding_mode", "border");
    cr_assert_eq(tn_run(t, 2, in2, 1, &y), AMP_ERR_SHAPE);
    tn_free(t);
    destroy(2, in2);
    in2[0] = x = rand_of(AMP_F32, 4, xn, -1, 1);
    in2[1] = g = rand_of(AMP_F32, 4, gn, -1, 1);
    t = tn_new(ctx, "GridSample");
    t->opset = 16;
    cr_assert_eq(tn_run(t, 2, in2, 1, &y), AMP_OK, "%s", amp_context_last_error(ctx));
    cr_assert(y->numel == 0 && y->dims[2] == 0 && y->dims[3] == 2);
    amp_tensor_destroy(y);
    tn_free(t);
    destroy(2, in2);
}

static amp_status gs_status(amp_tensor *x, amp_tensor *g, int64_t opset, const char *mode, const char *pad,
                            int64_t align) {
    amp_test_node *t = tn_new(ctx, "GridSample");
    t->opset = opset;
    if (mode) tn_str(t, "mode", mode);
    if (pad) tn_str(t, "padding_mode", pad);
    if (align >= 0) tn_int(t, "align_corners", align);
    amp_tensor *y = NULL, *in[2] = {x, g};
    amp_status s = tn_run(t, 2, in, 1, &y);
    cr_assert(s != AMP_OK || y);
    cr_assert(s == AMP_OK || !y);
    amp_tensor_destroy(y);
    tn_free(t);
    return s;
}

Test(grid_sample, bad_inputs) {
    const int64_t x4[4] = {2, 3, 4, 5}, g4[4] = {2, 3, 3, 2}, x5[5] = {2, 3, 4, 5, 2}, g5[5] = {2, 3, 3, 2, 3};
    const int64_t gb[4] = {1, 3, 3, 2}, g43[4] = {2, 3, 3, 3}, x8[8] = {1, 1, 2, 2, 2, 2, 2, 2};
    const int64_t g8[8] = {1, 1, 1, 1, 1, 1, 1, 6};
    amp_tensor *x = rand_of(AMP_F32, 4, x4, -1, 1), *g = rand_of(AMP_F32, 4, g4, -1, 1);
    amp_tensor *xv = rand_of(AMP_F32, 5, x5, -1, 1), *gv = rand_of(AMP_F32, 5, g5, -1, 1);
    amp_tensor *gbatch = rand_of(AMP_F32, 4, gb, -1, 1), *glast = rand_of(AMP_F32, 4, g43, -1, 1);
    amp_tensor *gint = rand_of(AMP_I32, 4, g4, -1, 1), *x6 = rand_of(AMP_F32, 8, x8, -1, 1);
    amp_tensor *g6 = rand_of(AMP_F32, 8, g8, -1, 1);
    cr_assert_eq(gs_status(x, g, 16, NULL, NULL, -1), AMP_OK);
    /* 5-D before opset 20; a 6-spatial-dim input amprt does not sample */
    cr_assert_eq(gs_status(xv, gv, 16, NULL, NULL, -1), AMP_ERR_SHAPE);
    cr_assert_eq(gs_status(xv, gv, 20, NULL, NULL, -1), AMP_OK);
    cr_assert_eq(gs_status(x6, g6, 20, NULL, NULL, -1), AMP_ERR_UNSUPPORTED);
    /* grid: batch, last dim, rank, dtype */
    cr_assert_eq(gs_status(x, gbatch, 16, NULL, NULL, -1), AMP_ERR_SHAPE);
    cr_assert_eq(gs_status(x, glast, 16, NULL, NULL, -1), AMP_ERR_SHAPE);
    cr_assert_eq(gs_status(x, gv, 20, NULL, NULL, -1), AMP_ERR_SHAPE);
    cr_assert_eq(gs_status(x, gint, 16, NULL, NULL, -1), AMP_ERR_UNSUPPORTED);
    /* the mode names of each opset, padding modes, align_corners */
    cr_assert_eq(gs_status(x, g, 16, "linear", NULL, -1), AMP_ERR_INVALID_GRAPH);
    cr_assert(strstr(amp_context_last_error(ctx), "bilinear"), "%s", amp_context_last_error(ctx));
    cr_assert_eq(gs_status(x, g, 20, "bicubic", NULL, -1), AMP_ERR_INVALID_GRAPH);
    cr_assert_eq(gs_status(x, g, 20, "cubic", NULL, -1), AMP_OK);
    cr_assert_eq(gs_status(x, g, 20, "area", NULL, -1), AMP_ERR_INVALID_GRAPH);
    cr_assert_eq(gs_status(x, g, 20, NULL, "wrap", -1), AMP_ERR_INVALID_GRAPH);
    cr_assert_eq(gs_status(x, g, 20, NULL, NULL, 2), AMP_ERR_INVALID_GRAPH);
    /* input count */
    amp_test_node *t = tn_new(ctx, "GridSample");
    t->opset = 16;
    amp_tensor *y = NULL, *in[1] = {x};
    cr_assert_eq(tn_run(t, 1, in, 1, &y), AMP_ERR_INVALID_GRAPH);
    cr_assert_null(y);
    tn_free(t);
    amp_tensor *all[] = {x, g, xv, gv, gbatch, glast, gint, x6, g6};
    destroy(9, all);
}

/* ---- AffineGrid ------------------------------------------------------------------------------- */

/* np.arange(-1 + step / 2, 1, step) for step 2 / len, or -1 + i * 2 / (len - 1); one pixel with
 * align_corners at 0. */
static double ref_base(int64_t i, int64_t len, int align) {
    if (!align) {
        double step = 2.0 / (double)len;
        return -1.0 + step / 2 + (double)i * step;
    }
    return len == 1 ? 0.0 : -1.0 + (double)i * (2.0 / (double)(len - 1));
}

static amp_tensor *ref_affine_grid(const amp_tensor *th, const int64_t *size, int nsize, int align) {
    int k = nsize - 2;
    int64_t od[5] = {size[0]};
    for (int i = 0; i < k; i++) od[1 + i] = size[2 + i];
    od[1 + k] = k;
    amp_tensor *y = new_t(th->dtype, k + 2, od);
    int64_t D = k == 3 ? size[2] : 1, H = size[nsize - 2], W = size[nsize - 1], o = 0;
    for (int64_t n = 0; n < size[0]; n++)
        for (int64_t d = 0; d < D; d++)
            for (int64_t h = 0; h < H; h++)
                for (int64_t w = 0; w < W; w++) {
                    double b[4] = {ref_base(w, W, align), ref_base(h, H, align), k == 3 ? ref_base(d, D, align) : 1,
                                   1};
                    for (int i = 0; i < k; i++) {
                        double s = 0;
                        for (int j = 0; j <= k; j++) s += tt_get(th, (n * k + i) * (k + 1) + j) * b[j];
                        amp_st(y->dtype, y->data, o++, s);
                    }
                }
    return y;
}

static void ag_check(amp_dtype dt, const int64_t *size, int nsize, int align, const char *what) {
    int k = nsize - 2;
    const int64_t td[3] = {size[0], k, k + 1}, sd[1] = {nsize};
    amp_tensor *th = rand_of(dt, 3, td, -1, 1), *sz = ints_of(AMP_I64, 1, sd, size), *y = NULL;
    amp_test_node *t = tn_new(ctx, "AffineGrid");
    t->opset = 20;
    tn_int(t, "align_corners", align);
    amp_tensor *in[2] = {th, sz};
    cr_assert_eq(tn_run(t, 2, in, 1, &y), AMP_OK, "%s: %s", what, amp_context_last_error(ctx));
    amp_tensor *ref = ref_affine_grid(th, size, nsize, align);
    char msg[128];
    snprintf(msg, sizeof msg, "%s %s align %d", what, amp_dtype_name(dt), align);
    expect_close(y, ref, msg);
    tn_free(t);
    amp_tensor *all[] = {th, sz, y, ref};
    destroy(4, all);
}

Test(affine_grid, every_dtype_2d_3d_and_align) {
    const int64_t s2[4] = {2, 3, 5, 7}, s3[5] = {2, 1, 4, 3, 6}, s1[4] = {1, 2, 1, 3}, s31[5] = {3, 1, 1, 5, 1};
    for (int i = 0; i < 4; i++)
        for (int a = 0; a < 2; a++) {
            ag_check(float_types[i], s2, 4, a, "2-D");
            ag_check(float_types[i], s3, 5, a, "3-D");
            ag_check(float_types[i], s1, 4, a, "2-D, one row");
            ag_check(float_types[i], s31, 5, a, "3-D, one slice and column");
        }
    /* a large grid runs threaded */
    const int64_t big[4] = {3, 1, 130, 90};
    ag_check(AMP_F32, big, 4, 0, "2-D large");
}

Test(affine_grid, known_values_and_empty) {
    /* values onnxruntime gives for this theta on a 1 x 3 grid */
    const int64_t td[3] = {1, 2, 3}, sd[1] = {4}, size[4] = {1, 1, 1, 3};
    const double tv[6] = {1, 0.2, 0.1, 0.3, 1, 0.5};
    const double want[6] = {-0.5666667, 0.3, 0.1, 0.5, 0.7666667, 0.7};
    amp_tensor *th = tt_make(ctx, AMP_F32, 3, td, tv), *sz = ints_of(AMP_I64, 1, sd, size), *y = NULL;
    amp_test_node *t = tn_new(ctx, "AffineGrid");
    t->opset = 20;
    amp_tensor *in[2] = {th, sz};
    cr_assert_eq(tn_run(t, 2, in, 1, &y), AMP_OK, "%s", amp_context_last_error(ctx));
    cr_assert(y->rank == 4 && y->dims[1] == 1 && y->dims[2] == 3 && y->dims[3] == 2);
    for (int i = 0; i < 6; i++) cr_assert(fabs(tt_get(y, i) - want[i]) < 1e-6, "element %d: %g", i, tt_get(y, i));
    amp_tensor_destroy(y);
    amp_tensor_destroy(sz);
    /* an empty grid; int32 size */
    const int64_t se[4] = {1, 1, 0, 3};
    in[1] = sz = ints_of(AMP_I32, 1, sd, se);
    cr_assert_eq(tn_run(t, 2, in, 1, &y), AMP_OK, "%s", amp_context_last_error(ctx));
    cr_assert(y->numel == 0 && y->dims[1] == 0);
    tn_free(t);
    amp_tensor *all[] = {th, sz, y};
    destroy(3, all);
}

static amp_status ag_status(amp_tensor *th, amp_tensor *sz, int64_t align) {
    amp_test_node *t = tn_new(ctx, "AffineGrid");
    t->opset = 20;
    if (align >= 0) tn_int(t, "align_corners", align);
    amp_tensor *y = NULL, *in[2] = {th, sz};
    amp_status s = tn_run(t, 2, in, 1, &y);
    cr_assert(s == AMP_OK || !y);
    amp_tensor_destroy(y);
    tn_free(t);
    return s;
}

Test(affine_grid, bad_inputs) {
    const int64_t t2[3] = {2, 2, 3}, t3[3] = {2, 3, 4}, s4d[1] = {4}, s5d[1] = {5}, s3d[1] = {3};
    const int64_t ok4[4] = {2, 1, 3, 3}, ok5[5] = {2, 1, 2, 3, 3}, badn[4] = {3, 1, 3, 3}, neg[4] = {2, 1, -3, 3};
    amp_tensor *th2 = rand_of(AMP_F32, 3, t2, -1, 1), *th3 = rand_of(AMP_F32, 3, t3, -1, 1);
    amp_tensor *s4 = ints_of(AMP_I64, 1, s4d, ok4), *s5 = ints_of(AMP_I64, 1, s5d, ok5);
    amp_tensor *sn = ints_of(AMP_I64, 1, s4d, badn), *sneg = ints_of(AMP_I64, 1, s4d, neg);
    amp_tensor *s3 = ints_of(AMP_I64, 1, s3d, ok4), *sf = rand_of(AMP_F32, 1, s4d, 1, 3);
    amp_tensor *thi = rand_of(AMP_I32, 3, t2, -1, 1);
    cr_assert_eq(ag_status(th2, s4, -1), AMP_OK);
    cr_assert_eq(ag_status(th3, s5, 1), AMP_OK);
    cr_assert_eq(ag_status(th3, s4, -1), AMP_ERR_SHAPE);  /* 3-D theta for a 2-D size */
    cr_assert_eq(ag_status(th2, s5, -1), AMP_ERR_SHAPE);
    cr_assert_eq(ag_status(th2, sn, -1), AMP_ERR_SHAPE);  /* N differs */
    cr_assert_eq(ag_status(th2, sneg, -1), AMP_ERR_SHAPE);
    cr_assert_eq(ag_status(th2, s3, -1), AMP_ERR_SHAPE);
    cr_assert_eq(ag_status(th2, sf, -1), AMP_ERR_INVALID_GRAPH);
    cr_assert_eq(ag_status(thi, s4, -1), AMP_ERR_UNSUPPORTED);
    cr_assert_eq(ag_status(th2, s4, 3), AMP_ERR_INVALID_GRAPH);
    /* size not known while planning */
    amp_test_node *t = tn_new(ctx, "AffineGrid");
    int ids_in[2] = {0, 1}, ids_out[1] = {2};
    t->node.inputs = ids_in;
    t->node.n_inputs = 2;
    t->node.outputs = ids_out;
    t->node.n_outputs = 1;
    amp_tinfo ti[2] = {{.dtype = AMP_F32, .rank = 3, .dims = {2, 2, 3}}, {.dtype = AMP_I64, .rank = 1, .dims = {4}}};
    amp_tinfo to = {0};
    const amp_tinfo *pin[2] = {&ti[0], &ti[1]};
    amp_tinfo *pout[1] = {&to};
    amp_infer c = {.ctx = ctx, .n = &t->node, .opset = 20, .nin = 2, .nout = 1, .in = pin, .out = pout};
    cr_assert_eq(amp_infer_affine_grid(&c), AMP_ERR_UNSUPPORTED);
    cr_assert(strstr(amp_context_last_error(ctx), "data-dependent"), "%s", amp_context_last_error(ctx));
    tn_free(t);
    amp_tensor *all[] = {th2, th3, s4, s5, sn, sneg, s3, sf, thi};
    destroy(9, all);
}

/* ---- RoiAlign --------------------------------------------------------------------------------- */

typedef struct ra_spec {
    int64_t opset;
    const char *mode, *ctm; /* ctm NULL: attribute absent */
    int64_t oh, ow, sr;
    double scale;
} ra_spec;

/* The reference's loops: every sample of every bin, out-of-map samples as zero terms. */
static amp_tensor *ref_roi_align(const amp_tensor *x, const amp_tensor *rois, const amp_tensor *bi,
                                 const ra_spec *c) {
    int64_t R = rois->dims[0], C = x->dims[1], H = x->dims[2], W = x->dims[3];
    const int64_t yd[4] = {R, C, c->oh, c->ow};
    amp_tensor *y = new_t(x->dtype, 4, yd);
    bool half = c->opset >= 16 && (!c->ctm || !strcmp(c->ctm, "half_pixel")), is_max = !strcmp(c->mode, "max");
    double off = half ? 0.5 : 0;
    for (int64_t n = 0; n < R; n++) {
        double sw = tt_get(rois, n * 4) * c->scale - off, sh = tt_get(rois, n * 4 + 1) * c->scale - off;
        double rw = tt_get(rois, n * 4 + 2) * c->scale - off - sw, rh = tt_get(rois, n * 4 + 3) * c->scale - off - sh;
        if (!half) {
            rw = fmax(rw, 1);
            rh = fmax(rh, 1);
        }
        double bh = rh / (double)c->oh, bw = rw / (double)c->ow;
        int64_t gh = c->sr > 0 ? c->sr : (int64_t)ceil(rh / (double)c->oh);
        int64_t gw = c->sr > 0 ? c->sr : (int64_t)ceil(rw / (double)c->ow);
        double count = gh * gw > 1 ? (double)(gh * gw) : 1;
        int64_t b = amp_ldi(bi->dtype, bi->data, n);
        for (int64_t ch = 0; ch < C; ch++)
            for (int64_t ph = 0; ph < c->oh; ph++)
                for (int64_t pw = 0; pw < c->ow; pw++) {
                    double acc = 0;
                    bool first = true;
                    for (int64_t iy = 0; iy < gh; iy++)
                        for (int64_t ix = 0; ix < gw; ix++) {
                            double yy = sh + (double)ph * bh + ((double)iy + 0.5) * bh / (double)gh;
                            double xx = sw + (double)pw * bw + ((double)ix + 0.5) * bw / (double)gw;
                            double val;
                            if (yy < -1 || yy > (double)H || xx < -1 || xx > (double)W) {
                                val = 0;
                            } else {
                                yy = fmax(yy, 0);
                                xx = fmax(xx, 0);
                                int64_t yl = (int64_t)yy, xl = (int64_t)xx, yh, xh;
                                if (yl >= H - 1) yh = yl = H - 1, yy = (double)yl;
                                else yh = yl + 1;
                                if (xl >= W - 1) xh = xl = W - 1, xx = (double)xl;
                                else xh = xl + 1;
                                double ly = yy - (double)yl, lx = xx - (double)xl, hy = 1 - ly, hx = 1 - lx;
                                int64_t base = (b * C + ch) * H * W;
                                double t[4] = {hy * hx * tt_get(x, base + yl * W + xl),
                                               hy * lx * tt_get(x, base + yl * W + xh),
                                               ly * hx * tt_get(x, base + yh * W + xl),
                                               ly * lx * tt_get(x, base + yh * W + xh)};
                                if (!is_max) {
                                    val = t[0] + t[1] + t[2] + t[3];
                                } else {
                                    val = t[0];
                                    for (int j = 1; j < 4; j++) val = t[j] > val ? t[j] : val;
                                }
                            }
                            if (!is_max) acc += val;
                            else if (first || val > acc) acc = val;
                            first = false;
                        }
                    amp_st(y->dtype, y->data, ((n * C + ch) * c->oh + ph) * c->ow + pw, is_max ? acc : acc / count);
                }
    }
    return y;
}

static amp_test_node *ra_node(const ra_spec *c) {
    amp_test_node *t = tn_new(ctx, "RoiAlign");
    t->opset = c->opset;
    tn_str(t, "mode", c->mode);
    if (c->ctm) tn_str(t, "coordinate_transformation_mode", c->ctm);
    tn_int(t, "output_height", c->oh);
    tn_int(t, "output_width", c->ow);
    tn_int(t, "sampling_ratio", c->sr);
    tn_float(t, "spatial_scale", (float)c->scale);
    return t;
}

/* Boxes over a 9 x 11 map at spatial_scale 0.5: inside, partly and wholly outside, inverted,
 * tiny, and larger than the map. */
static amp_tensor *test_rois(amp_dtype dt) {
    const int64_t rd[2] = {8, 4};
    const double rv[32] = {2,  3,  15, 12, -6, -4,  8,  6,  18, 14, 30, 30, 5,  5, 4.2, 4.6,
                           10, 10, 10.4, 10.7, -30, -25, 60, 50, 1, 17, 21, 19, 0, 0, 22, 18};
    return tt_make(ctx, dt, 2, rd, rv);
}

static void ra_check_range(amp_dtype dt, amp_dtype it, const ra_spec *c, int threads, double lo, double hi,
                           const char *what) {
    const int64_t xd[4] = {2, 3, 9, 11}, bd[1] = {8}, bv[8] = {0, 1, 1, 0, 1, 0, 1, 0};
    amp_tensor *x = rand_of(dt, 4, xd, lo, hi), *rois = test_rois(dt), *bi = ints_of(it, 1, bd, bv), *y = NULL;
    amp_test_node *t = ra_node(c);
    t->threads = threads;
    amp_tensor *in[3] = {x, rois, bi};
    cr_assert_eq(tn_run(t, 3, in, 1, &y), AMP_OK, "%s: %s", what, amp_context_last_error(ctx));
    amp_tensor *ref = ref_roi_align(x, rois, bi, c);
    char msg[256];
    snprintf(msg, sizeof msg, "%s: %s opset %lld %s %s sr %lld scale %g", what, amp_dtype_name(dt),
             (long long)c->opset, c->mode, c->ctm ? c->ctm : "-", (long long)c->sr, c->scale);
    expect_close(y, ref, msg);
    tn_free(t);
    amp_tensor *all[] = {x, rois, bi, y, ref};
    destroy(5, all);
}

static void ra_check(amp_dtype dt, amp_dtype it, const ra_spec *c, int threads, const char *what) {
    ra_check_range(dt, it, c, threads, -1, 3, what);
    /* all negative: max bins with samples off the map come out 0 */
    if (!strcmp(c->mode, "max")) ra_check_range(dt, it, c, threads, -3, -1, what);
}

Test(roi_align, every_mode_and_coordinate_transform) {
    static const char *const modes[2] = {"avg", "max"};
    static const char *const ctms[3] = {NULL, "half_pixel", "output_half_pixel"};
    const int64_t srs[4] = {0, 1, 2, 3};
    for (int m = 0; m < 2; m++)
        for (int k = 0; k < 3; k++)
            for (int s = 0; s < 4; s++) {
                ra_spec c = {16, modes[m], ctms[k], 3, 4, srs[s], 0.5};
                ra_check(AMP_F64, AMP_I64, &c, 2, "opset 16");
                c.scale = 1;
                c.oh = 2;
                c.ow = 1;
                ra_check(AMP_F32, AMP_I32, &c, 1, "opset 16, scale 1");
                if (k == 0) {
                    ra_spec c10 = {10, modes[m], NULL, 3, 2, srs[s], 0.5};
                    ra_check(AMP_F32, AMP_I64, &c10, 2, "opset 10");
                }
            }
}

Test(roi_align, every_dtype_and_threads) {
    for (int i = 0; i < 4; i++) {
        ra_spec c = {16, "avg", NULL, 2, 3, 0, 0.5};
        ra_check(float_types[i], AMP_I64, &c, 2, "avg");
        c.mode = "max";
        ra_check(float_types[i], AMP_I32, &c, 2, "max");
    }
    /* many rois and channels: 1 and 4 threads agree exactly */
    const int64_t xd[4] = {2, 16, 20, 24}, rd[2] = {40, 4}, bd[1] = {40};
    amp_tensor *x = rand_of(AMP_F32, 4, xd, -1, 1), *rois = rand_of(AMP_F32, 2, rd, 0, 24);
    int64_t bv[40];
    for (int i = 0; i < 40; i++) bv[i] = i % 2;
    amp_tensor *bi = ints_of(AMP_I64, 1, bd, bv), *y1 = NULL, *y4 = NULL, *in[3] = {x, rois, bi};
    ra_spec c = {16, "avg", "output_half_pixel", 7, 7, 0, 1};
    amp_test_node *t = ra_node(&c);
    t->threads = 1;
    cr_assert_eq(tn_run(t, 3, in, 1, &y1), AMP_OK, "%s", amp_context_last_error(ctx));
    t->threads = 4;
    cr_assert_eq(tn_run(t, 3, in, 1, &y4), AMP_OK, "%s", amp_context_last_error(ctx));
    cr_assert(tt_equal(y1, y4));
    amp_tensor *ref = ref_roi_align(x, rois, bi, &c);
    expect_close(y1, ref, "many rois");
    tn_free(t);
    amp_tensor *all[] = {x, rois, bi, y1, y4, ref};
    destroy(6, all);
}

Test(roi_align, many_samples_per_bin) {
    /* past 64 samples a bin along an axis the kernel samples channel by channel: sampling_ratio
     * 70, and adaptive grids over a large map */
    ra_spec c = {16, "avg", NULL, 3, 2, 70, 0.5};
    ra_check(AMP_F32, AMP_I64, &c, 2, "sampling_ratio 70");
    c.mode = "max";
    ra_check(AMP_F64, AMP_I64, &c, 2, "sampling_ratio 70");
    const int64_t xd[4] = {1, 2, 40, 150}, rd[2] = {3, 4}, bd[1] = {3}, bv[3] = {0, 0, 0};
    const double rv[12] = {-10, -5, 160, 45, 0, 0, 150, 40, 20, 3, 100, 30};
    amp_tensor *x = rand_of(AMP_F32, 4, xd, -1, 1), *rois = tt_make(ctx, AMP_F32, 2, rd, rv);
    amp_tensor *bi = ints_of(AMP_I64, 1, bd, bv), *in[3] = {x, rois, bi};
    for (int m = 0; m < 2; m++) {
        ra_spec a = {16, m ? "max" : "avg", "output_half_pixel", 1, 2, 0, 1};
        amp_test_node *t = ra_node(&a);
        amp_tensor *y = NULL;
        cr_assert_eq(tn_run(t, 3, in, 1, &y), AMP_OK, "%s", amp_context_last_error(ctx));
        amp_tensor *ref = ref_roi_align(x, rois, bi, &a);
        expect_close(y, ref, a.mode);
        amp_tensor_destroy(y);
        amp_tensor_destroy(ref);
        tn_free(t);
    }
    destroy(3, in);
}

/* onnxruntime's (and ONNX's reference) values for arange(16) as 1x1x4x4, 2x2 bins, 2 samples. */
Test(roi_align, known_values) {
    const int64_t xd[4] = {1, 1, 4, 4}, rd[2] = {2, 4}, bd[1] = {2}, bv[2] = {0, 0};
    const double rv[8] = {0.5, 0.5, 2.5, 2.5, 1, 0, 4, 3.5};
    double xv[16];
    for (int i = 0; i < 16; i++) xv[i] = i;
    struct {
        const char *mode, *ctm;
        double want[8];
    } cases[] = {
        {"avg", "half_pixel", {2.5, 3.5, 6.5, 7.5, 2.875, 4.3125, 9.75, 11.1875}},
        {"avg", "output_half_pixel", {5, 6, 9, 10, 5.25, 6.4375, 12.125, 13.3125}},
        {"max", "half_pixel", {2.8125, 3.375, 5.0625, 5.625, 3.5546875, 5.6875, 6.3984375, 8.4375}},
        {"max", "output_half_pixel", {2.8125, 3.375, 5.0625, 5.625, 3.609375, 4.8125, 12.25, 15}},
    };
    amp_tensor *x = tt_make(ctx, AMP_F32, 4, xd, xv), *rois = tt_make(ctx, AMP_F32, 2, rd, rv);
    amp_tensor *bi = ints_of(AMP_I64, 1, bd, bv), *in[3] = {x, rois, bi};
    for (int k = 0; k < 4; k++) {
        ra_spec c = {16, cases[k].mode, cases[k].ctm, 2, 2, 2, 1};
        amp_test_node *t = ra_node(&c);
        amp_tensor *y = NULL;
        cr_assert_eq(tn_run(t, 3, in, 1, &y), AMP_OK, "%s", amp_context_last_error(ctx));
        for (int i = 0; i < 8; i++)
            cr_assert(fabs(tt_get(y, i) - cases[k].want[i]) < 1e-5, "%s %s element %d: %g, expected %g",
                      cases[k].mode, cases[k].ctm, i, tt_get(y, i), cases[k].want[i]);
        amp_tensor_destroy(y);
        tn_free(t);
    }
    destroy(3, in);
}

Test(roi_align, huge_and_non_finite_rois) {
    /* boxes a million and a trillion times the map finish at once (samples off the map are
     * skipped) and average the few on-map samples over a vast count; NaN boxes, and boxes whose
     * bins hold over 2^53 samples along an axis, give NaN */
    const int64_t xd[4] = {1, 2, 5, 6}, rd[2] = {5, 4}, bd[1] = {5}, bv[5] = {0, 0, 0, 0, 0};
    const double rv[20] = {-1e7, -1e7, 1e7, 1e7, -1e12, -3e12, 1e12, 2e12, NAN, 0, 3, 3,
                           -1e30, -1e30, 1e30, 1e30, 1, 1, 4, 4};
    amp_tensor *x = rand_of(AMP_F32, 4, xd, 0.5, 1), *rois = tt_make(ctx, AMP_F64, 2, rd, rv);
    amp_tensor *x64 = new_t(AMP_F64, 4, xd);
    for (int64_t i = 0; i < x->numel; i++) amp_st(AMP_F64, x64->data, i, tt_get(x, i));
    amp_tensor *bi = ints_of(AMP_I64, 1, bd, bv), *in[3] = {x64, rois, bi};
    for (int m = 0; m < 2; m++) {
        ra_spec c = {16, m ? "max" : "avg", NULL, 2, 2, 0, 1};
        amp_test_node *t = ra_node(&c);
        amp_tensor *y = NULL;
        cr_assert_eq(tn_run(t, 3, in, 1, &y), AMP_OK, "%s", amp_context_last_error(ctx));
        for (int i = 0; i < 8; i++) {
            for (int b = 0; b < 2; b++) {
                double v = tt_get(y, b * 8 + i);
                cr_assert(isfinite(v) && v >= 0 && v < (m ? 1.0 : 1e-6), "huge box %d element %d: %g", b, i, v);
            }
            cr_assert(isnan(tt_get(y, 16 + i)), "NaN box element %d: %g", i, tt_get(y, 16 + i));
            cr_assert(isnan(tt_get(y, 24 + i)), "absurd box element %d: %g", i, tt_get(y, 24 + i));
            cr_assert(tt_get(y, 32 + i) > 0, "ordinary box element %d", i);
        }
        amp_tensor_destroy(y);
        tn_free(t);
    }
    amp_tensor_destroy(x);
    destroy(3, in);
}

static amp_status ra_status(amp_tensor *x, amp_tensor *rois, amp_tensor *bi, const ra_spec *c) {
    amp_test_node *t = ra_node(c);
    amp_tensor *y = NULL, *in[3] = {x, rois, bi};
    amp_status s = tn_run(t, 3, in, 1, &y);
    cr_assert(s == AMP_OK || !y);
    amp_tensor_destroy(y);
    tn_free(t);
    return s;
}

Test(roi_align, bad_inputs) {
    const int64_t xd[4] = {2, 3, 9, 11}, bd[1] = {8}, bv[8] = {0, 1, 1, 0, 1, 0, 1, 0};
    const int64_t oob[8] = {0, 1, 2, 0, 1, 0, 1, 0}, negb[8] = {0, -1, 1, 0, 1, 0, 1, 0}, b7d[1] = {7};
    const int64_t r5[2] = {8, 5}, x3[3] = {2, 3, 9};
    amp_tensor *x = rand_of(AMP_F32, 4, xd, -1, 1), *rois = test_rois(AMP_F32), *bi = ints_of(AMP_I64, 1, bd, bv);
    amp_tensor *bo = ints_of(AMP_I64, 1, bd, oob), *bn = ints_of(AMP_I32, 1, bd, negb);
    amp_tensor *b7 = ints_of(AMP_I64, 1, b7d, bv);
    amp_tensor *rois64 = test_rois(AMP_F64), *rw = rand_of(AMP_F32, 2, r5, 0, 5), *xr3 = rand_of(AMP_F32, 3, x3, 0, 1);
    amp_tensor *xi = rand_of(AMP_I32, 4, xd, 0, 1), *bf = rand_of(AMP_F32, 1, bd, 0, 1);
    ra_spec ok = {16, "avg", NULL, 2, 2, 0, 1};
    cr_assert_eq(ra_status(x, rois, bi, &ok), AMP_OK);
    /* batch indices outside [0, N) are caught before reading */
    cr_assert_eq(ra_status(x, rois, bo, &ok), AMP_ERR_INVALID_ARG);
    cr_assert(strstr(amp_context_last_error(ctx), "batch_indices[2]"), "%s", amp_context_last_error(ctx));
    cr_assert_eq(ra_status(x, rois, bn, &ok), AMP_ERR_INVALID_ARG);
    /* shapes and dtypes */
    cr_assert_eq(ra_status(x, rois, b7, &ok), AMP_ERR_SHAPE);
    cr_assert_eq(ra_status(x, rw, bi, &ok), AMP_ERR_SHAPE);
    cr_assert_eq(ra_status(xr3, rois, bi, &ok), AMP_ERR_SHAPE);
    cr_assert_eq(ra_status(x, rois64, bi, &ok), AMP_ERR_SHAPE);
    cr_assert_eq(ra_status(xi, rois, bi, &ok), AMP_ERR_UNSUPPORTED);
    cr_assert_eq(ra_status(x, rois, bf, &ok), AMP_ERR_UNSUPPORTED);
    /* attributes */
    ra_spec c = ok;
    c.oh = 0;
    cr_assert_eq(ra_status(x, rois, bi, &c), AMP_ERR_INVALID_GRAPH);
    c = ok;
    c.sr = -1;
    cr_assert_eq(ra_status(x, rois, bi, &c), AMP_ERR_INVALID_GRAPH);
    c.sr = 1 << 20;
    cr_assert_eq(ra_status(x, rois, bi, &c), AMP_ERR_LIMIT);
    c = ok;
    c.mode = "sum";
    cr_assert_eq(ra_status(x, rois, bi, &c), AMP_ERR_INVALID_GRAPH);
    c = ok;
    c.ctm = "asymmetric";
    cr_assert_eq(ra_status(x, rois, bi, &c), AMP_ERR_INVALID_GRAPH);
    c.ctm = "half_pixel";
    c.opset = 10; /* the attribute arrived at opset 16 */
    cr_assert_eq(ra_status(x, rois, bi, &c), AMP_ERR_INVALID_GRAPH);
    c = ok;
    c.scale = INFINITY;
    cr_assert_eq(ra_status(x, rois, bi, &c), AMP_ERR_INVALID_GRAPH);
    amp_tensor *all[] = {x, rois, bi, bo, bn, b7, rois64, rw, xr3, xi, bf};
    destroy(11, all);
}

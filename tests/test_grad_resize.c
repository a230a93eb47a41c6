/* Gradients of Resize and Upsample (ir/ops/resize_grad.c, backends/cpu/resize_grad.c).
 *
 * Finite-difference checks (tests/gradcheck.h) in f64 with eps 1e-6 over every mode, coordinate
 * transform, exclude_outside, antialias, tf_crop_and_resize extrapolation, axes and the legacy
 * opsets; the analytic gradient must agree within a relative L2 error of 1e-5. Then ResizeGrad
 * itself: in f16, bf16 and f32 against its f64 result on the same rounded dY; the adjoint
 * identity <Resize(x), g> = <x, ResizeGrad(g)> on larger images across thread counts; and the
 * inputs it must refuse. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backends/cpu/cpu.h"
#include "gradcheck.h"
#include "ir/grad.h"
#include "testutil.h"

static amp_context *ctx;
static void setup(void) { cr_assert_eq(amp_context_create(NULL, &ctx), AMP_OK); }
static void teardown(void) { amp_context_destroy(ctx); }
TestSuite(grad_resize, .init = setup, .fini = teardown, .timeout = 60);

#define GC_TOL 1e-5

static uint64_t seed_next = 1;

static amp_tensor *vec_f32(int n, const double *v) {
    int64_t d[1] = {n};
    return tt_make(ctx, AMP_F32, 1, d, v);
}

static amp_tensor *vec_i64(int n, const int64_t *v) {
    int64_t d[1] = {n};
    amp_tensor *t;
    cr_assert_eq(amp_tensor_create(ctx, AMP_I64, 1, d, &t), AMP_OK);
    memcpy(t->data, v, sizeof(int64_t) * (size_t)n);
    return t;
}

/* A case: the forward node's opset and attributes, and its scales or sizes (and roi). */
typedef struct gcase {
    const char *op; /* NULL: Resize */
    int64_t opset;  /* 0: 19 */
    const char *mode, *ctm, *policy;
    int exclude, antialias;
    double cubic_a; /* 0: absent */
    int naxes;
    int64_t axes[AMP_MAX_RANK];
    int nscales;
    double scales[AMP_MAX_RANK];
    int nsizes;
    int64_t sizes[AMP_MAX_RANK];
    int nroi;
    double roi[2 * AMP_MAX_RANK];
} gcase;

#define SC(...) .nscales = sizeof((double[]){__VA_ARGS__}) / sizeof(double), .scales = {__VA_ARGS__}
#define SZ(...) .nsizes = sizeof((int64_t[]){__VA_ARGS__}) / sizeof(int64_t), .sizes = {__VA_ARGS__}
#define ROI(...) .nroi = sizeof((double[]){__VA_ARGS__}) / sizeof(double), .roi = {__VA_ARGS__}
#define AXES(...) .naxes = sizeof((int64_t[]){__VA_ARGS__}) / sizeof(int64_t), .axes = {__VA_ARGS__}

static bool is_upsample(const gcase *c) { return c->op && !strcmp(c->op, "Upsample"); }
static int64_t opset_of(const gcase *c) { return c->opset ? c->opset : 19; }

/* Attributes of c on t (a forward node, or a ResizeGrad carrying the forward's attributes). */
static void put_attrs(amp_test_node *t, const gcase *c) {
    if (c->mode) tn_str(t, "mode", c->mode);
    if (c->ctm) tn_str(t, "coordinate_transformation_mode", c->ctm);
    if (c->policy) tn_str(t, "keep_aspect_ratio_policy", c->policy);
    if (c->exclude) tn_int(t, "exclude_outside", 1);
    if (c->antialias) tn_int(t, "antialias", 1);
    if (c->cubic_a != 0) tn_float(t, "cubic_coeff_a", (float)c->cubic_a);
    if (c->ctm && !strcmp(c->ctm, "tf_crop_and_resize")) tn_float(t, "extrapolation_value", 1.5f);
    if (c->naxes) tn_ints(t, "axes", c->naxes, c->axes);
    if (is_upsample(c) && opset_of(c) < 9) {
        float fs[AMP_MAX_RANK];
        for (int i = 0; i < c->nscales; i++) fs[i] = (float)c->scales[i];
        tn_floats(t, "scales", c->nscales, fs);
    }
}

/* The forward node of c and its inputs after X (in[1..]); returns the input count. */
static int forward_inputs(const gcase *c, amp_tensor **in) {
    int64_t opset = opset_of(c);
    if (is_upsample(c) && opset < 9) return 1;
    if (is_upsample(c) || opset < 11) {
        in[1] = vec_f32(c->nscales, c->scales);
        return 2;
    }
    in[1] = c->nroi ? vec_f32(c->nroi, c->roi) : NULL;
    in[2] = c->nscales ? vec_f32(c->nscales, c->scales) : NULL;
    in[3] = c->nscales ? NULL : vec_i64(c->nsizes, c->sizes);
    return in[3] ? 4 : 3;
}

static amp_test_node *forward_node(const gcase *c) {
    amp_test_node *t = tn_new(ctx, is_upsample(c) ? "Upsample" : "Resize");
    t->opset = opset_of(c);
    put_attrs(t, c);
    return t;
}

static void gc_ok(const gcase *c, int rank, const int64_t *dims, const char *what) {
    amp_tensor *in[4] = {tt_rand(ctx, AMP_F64, rank, dims, -1, 1, seed_next++), NULL, NULL, NULL};
    int nin = forward_inputs(c, in);
    bool wrt[4] = {true, false, false, false};
    amp_test_node *t = forward_node(c);
    gc_result r;
    amp_status s = gc_check(t, nin, in, wrt, 1, 1e-6, &r);
    cr_assert_eq(s, AMP_OK, "%s: status %d: %s", what, s, r.why);
    cr_assert_eq(r.checked, 1, "%s: %d inputs checked", what, r.checked);
    cr_assert(r.max_rel < GC_TOL, "%s: max_rel %g", what, r.max_rel);
    tn_free(t);
    for (int i = 0; i < 4; i++) amp_tensor_destroy(in[i]);
}

static const char *const modes[3] = {"nearest", "linear", "cubic"};

Test(grad_resize, every_mode_and_coordinate_transform) {
    static const char *const ctms[] = {"half_pixel", "half_pixel_symmetric", "pytorch_half_pixel", "align_corners",
                                       "asymmetric"};
    const int64_t d4[4] = {1, 2, 5, 7};
    for (int m = 0; m < 3; m++)
        for (int ci = 0; ci < 5; ci++) {
            gcase a = {.mode = modes[m], .ctm = ctms[ci], SC(1, 1, 1.7, 0.6)};
            gcase b = {.mode = modes[m], .ctm = ctms[ci], SC(1, 1.5, 2, 0.5)};
            gcase c = {.mode = modes[m], .ctm = ctms[ci], SZ(1, 2, 3, 11)};
            char what[96];
            snprintf(what, sizeof what, "%s %s", modes[m], ctms[ci]);
            gc_ok(&a, 4, d4, what);
            gc_ok(&b, 4, d4, what);
            gc_ok(&c, 4, d4, what);
        }
}

Test(grad_resize, crop_exclude_antialias_axes) {
    const int64_t d4[4] = {1, 2, 6, 7};
    for (int m = 0; m < 3; m++) {
        gcase crop = {.mode = modes[m], .ctm = "tf_crop_and_resize", ROI(0, 0, 0.1, -0.3, 1, 1, 0.8, 1.2),
                      SZ(1, 2, 5, 9)};
        gc_ok(&crop, 4, d4, "tf_crop_and_resize");
        gcase ex = {.mode = modes[m], .exclude = 1, .cubic_a = -0.5, SC(1, 1, 1.6, 0.7)};
        gc_ok(&ex, 4, d4, "exclude_outside");
        gcase ax = {.mode = modes[m], AXES(-1, 2), SC(0.6, 1.4)};
        gc_ok(&ax, 4, d4, "axes");
        gcase pol = {.mode = modes[m], .policy = "not_smaller", AXES(2, 3), SZ(4, 4)};
        gc_ok(&pol, 4, d4, "not_smaller");
    }
    for (int m = 1; m < 3; m++) {
        gcase aa = {.mode = modes[m], .antialias = 1, SC(1, 1, 0.5, 0.3)};
        gcase ab = {.mode = modes[m], .antialias = 1, SZ(1, 2, 4, 3)};
        gc_ok(&aa, 4, d4, "antialias");
        gc_ok(&ab, 4, d4, "antialias sizes");
    }
}

Test(grad_resize, ranks_and_legacy_opsets) {
    const int64_t d1[1] = {7}, d3[3] = {2, 4, 5}, d5[5] = {1, 2, 3, 4, 3}, d4[4] = {1, 2, 4, 5};
    for (int m = 0; m < 3; m++) {
        gcase a = {.mode = modes[m], SC(2.2)};
        gcase b = {.mode = modes[m], SC(0.7, 1.5, 1.3)};
        gcase c = {.mode = modes[m], SC(1, 1, 1.5, 0.75, 2)};
        gc_ok(&a, 1, d1, "rank 1");
        gc_ok(&b, 3, d3, "rank 3");
        gc_ok(&c, 5, d5, "rank 5");
        gcase e = {.opset = 13, .mode = modes[m], SC(1, 1, 2, 0.6)};
        gc_ok(&e, 4, d4, "Resize-13");
    }
    for (int m = 0; m < 2; m++) {
        gcase r10 = {.opset = 10, .mode = modes[m], SC(1, 1, 0.6, 1.7)};
        gcase u7 = {.op = "Upsample", .opset = 7, .mode = modes[m], SC(1, 1, 2, 1.5)};
        gcase u9 = {.op = "Upsample", .opset = 9, .mode = modes[m], SC(1, 2, 1.5, 3)};
        gc_ok(&r10, 4, d4, "Resize-10");
        gc_ok(&u7, 4, d4, "Upsample-7");
        gc_ok(&u9, 4, d4, "Upsample-9");
    }
}

/* ---- ResizeGrad directly ------------------------------------------------------------------------ */

static amp_test_node *grad_node(const gcase *c) {
    amp_test_node *t = tn_new(ctx, "ResizeGrad");
    t->node.domain = AMP_TRAIN_DOMAIN;
    t->node.op = amp_op_lookup("ResizeGrad", AMP_TRAIN_DOMAIN);
    cr_assert_neq(t->node.op, AMP_OP_UNKNOWN);
    t->opset = 1;
    put_attrs(t, c);
    tn_str(t, "fwd_op", is_upsample(c) ? "Upsample" : "Resize");
    tn_int(t, "fwd_opset", opset_of(c));
    return t;
}

/* ResizeGrad's inputs for X of dims and dY g: (dY, shape, roi, scales, sizes). */
static int grad_inputs(const gcase *c, int rank, const int64_t *dims, amp_tensor *g, amp_tensor **in) {
    amp_tensor *fw[4] = {NULL, NULL, NULL, NULL};
    int n = forward_inputs(c, fw);
    in[0] = g;
    in[1] = vec_i64(rank, dims);
    in[2] = in[3] = in[4] = NULL;
    if (is_upsample(c) || opset_of(c) < 11) {
        in[3] = n > 1 ? fw[1] : NULL;
    } else {
        in[2] = fw[1];
        in[3] = fw[2];
        in[4] = fw[3];
    }
    return 5;
}

/* ResizeGrad of c in f16, bf16 and f32 against f64 on the same rounded dY. */
static void narrow_ok(const gcase *c, int rank, const int64_t *dims, const char *what) {
    amp_tensor *x = tt_rand(ctx, AMP_F64, rank, dims, -1, 1, seed_next++), *in[4] = {x, NULL, NULL, NULL}, *y = NULL;
    int nin = forward_inputs(c, in);
    amp_test_node *f = forward_node(c);
    cr_assert_eq(tn_run(f, nin, in, 1, &y), AMP_OK, "%s: %s", what, amp_context_last_error(ctx));
    tn_free(f);
    amp_tensor *g = tt_rand(ctx, AMP_F64, y->rank, y->dims, -1, 1, seed_next++);
    static const amp_dtype dts[3] = {AMP_F16, AMP_BF16, AMP_F32};
    static const double tols[3] = {1e-2, 1e-2, 1e-5};
    for (int k = 0; k < 3; k++) {
        amp_tensor *lo = tt_convert(ctx, g, dts[k]), *hi = tt_convert(ctx, lo, AMP_F64), *gin[5], *gout_lo = NULL, *gout_hi = NULL;
        amp_test_node *t = grad_node(c);
        grad_inputs(c, rank, dims, lo, gin);
        cr_assert_eq(tn_run(t, 5, gin, 1, &gout_lo), AMP_OK, "%s: %s", what, amp_context_last_error(ctx));
        cr_assert_eq(gout_lo->dtype, dts[k]);
        gin[0] = hi;
        cr_assert_eq(tn_run(t, 5, gin, 1, &gout_hi), AMP_OK, "%s: %s", what, amp_context_last_error(ctx));
        double e = sqrt(tt_nse(gout_lo, gout_hi));
        cr_assert(e < tols[k], "%s (%s): rel L2 %g", what, amp_dtype_name(dts[k]), e);
        for (int i = 1; i < 5; i++) amp_tensor_destroy(gin[i]);
        amp_tensor_destroy(lo);
        amp_tensor_destroy(hi);
        amp_tensor_destroy(gout_lo);
        amp_tensor_destroy(gout_hi);
        tn_free(t);
    }
    for (int i = 0; i < 4; i++) amp_tensor_destroy(in[i]);
    amp_tensor_destroy(y);
    amp_tensor_destroy(g);
}

Test(grad_resize, narrow_dtypes) {
    const int64_t d4[4] = {2, 3, 7, 9};
    for (int m = 0; m < 3; m++) {
        gcase a = {.mode = modes[m], SC(1, 1, 1.7, 0.6)};
        gcase b = {.mode = modes[m], SC(1, 2, 2, 2)};
        gcase c = {.mode = modes[m], .ctm = "tf_crop_and_resize", ROI(0.1, -0.2, 0.9, 1.1), AXES(2, 3), SZ(5, 11)};
        narrow_ok(&a, 4, d4, "half_pixel");
        narrow_ok(&b, 4, d4, "three axes");
        narrow_ok(&c, 4, d4, "tf_crop_and_resize");
    }
}

/* <Resize(x), g> = <x, ResizeGrad(g)>: the gradient is the adjoint, on images large enough for
 * the threaded scatter paths, with any thread count. */
Test(grad_resize, adjoint_on_images) {
    const int64_t d4[4] = {2, 5, 33, 47};
    const amp_dtype dts[2] = {AMP_F64, AMP_F32};
    const double tol[2] = {1e-12, 1e-5};
    for (int m = 0; m < 3; m++)
        for (int ti = 0; ti < 2; ti++)
            for (int th = 1; th <= 4; th += 3) {
                gcase c = {.mode = modes[m], SC(1, 1, 2, 1.7)};
                gcase e = {.mode = modes[m], .antialias = m > 0, SC(1, 1.4, 0.5, 0.45)};
                gcase *cs[2] = {&c, &e};
                for (int k = 0; k < 2; k++) {
                    amp_tensor *x = tt_rand(ctx, dts[ti], 4, d4, -1, 1, seed_next++), *in[4] = {x, NULL, NULL, NULL};
                    amp_tensor *y = NULL, *dx = NULL, *gin[5];
                    int nin = forward_inputs(cs[k], in);
                    amp_test_node *f = forward_node(cs[k]);
                    f->threads = th;
                    cr_assert_eq(tn_run(f, nin, in, 1, &y), AMP_OK, "%s", amp_context_last_error(ctx));
                    amp_tensor *g = tt_rand(ctx, dts[ti], y->rank, y->dims, -1, 1, seed_next++);
                    amp_test_node *t = grad_node(cs[k]);
                    t->threads = th;
                    grad_inputs(cs[k], 4, d4, g, gin);
                    cr_assert_eq(tn_run(t, 5, gin, 1, &dx), AMP_OK, "%s", amp_context_last_error(ctx));
                    double a = 0, b = 0, na = 0;
                    for (int64_t i = 0; i < y->numel; i++) {
                        a += tt_get(y, i) * tt_get(g, i);
                        na += fabs(tt_get(y, i) * tt_get(g, i));
                    }
                    for (int64_t i = 0; i < x->numel; i++) b += tt_get(x, i) * tt_get(dx, i);
                    cr_assert(fabs(a - b) <= tol[ti] * na, "%s %s threads %d: <Ax,g> %.12g, <x,A'g> %.12g", modes[m],
                              amp_dtype_name(dts[ti]), th, a, b);
                    for (int i = 1; i < 5; i++) amp_tensor_destroy(gin[i]);
                    for (int i = 0; i < 4; i++) amp_tensor_destroy(in[i]);
                    amp_tensor_destroy(y);
                    amp_tensor_destroy(g);
                    amp_tensor_destroy(dx);
                    tn_free(f);
                    tn_free(t);
                }
            }
}

Test(grad_resize, refused_inputs) {
    const int64_t d4[4] = {1, 2, 4, 5}, wrong[4] = {1, 2, 8, 9};
    gcase c = {.mode = "linear", SC(1, 1, 2, 2)};
    amp_tensor *g = tt_rand(ctx, AMP_F32, 4, wrong, -1, 1, 7), *gin[5], *dx = NULL;
    amp_test_node *t = grad_node(&c);
    grad_inputs(&c, 4, d4, g, gin);
    cr_assert_eq(tn_run(t, 5, gin, 1, &dx), AMP_ERR_SHAPE, "dY of the wrong shape: %s", amp_context_last_error(ctx));
    cr_assert_null(dx);
    tn_free(t);
    /* a forward op it does not know, an opset outside the forward's range, integer dY */
    t = tn_new(ctx, "ResizeGrad");
    t->node.domain = AMP_TRAIN_DOMAIN;
    t->node.op = amp_op_lookup("ResizeGrad", AMP_TRAIN_DOMAIN);
    t->opset = 1;
    tn_str(t, "mode", "linear");
    tn_str(t, "fwd_op", "Conv");
    tn_int(t, "fwd_opset", 19);
    cr_assert_eq(tn_run(t, 5, gin, 1, &dx), AMP_ERR_INVALID_GRAPH);
    tn_free(t);
    t = grad_node(&(gcase){.opset = 29, .mode = "linear"});
    cr_assert_eq(tn_run(t, 5, gin, 1, &dx), AMP_ERR_UNSUPPORTED);
    tn_free(t);
    amp_tensor *gi = tt_rand(ctx, AMP_I32, 4, wrong, -5, 5, 8);
    gin[0] = gi;
    t = grad_node(&c);
    cr_assert_eq(tn_run(t, 5, gin, 1, &dx), AMP_ERR_UNSUPPORTED);
    tn_free(t);
    cr_assert_null(dx);
    for (int i = 1; i < 5; i++) amp_tensor_destroy(gin[i]);
    amp_tensor_destroy(g);
    amp_tensor_destroy(gi);
}

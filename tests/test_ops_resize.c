/* Resize (opsets 10 to 19) and Upsample (7, 9) against a reference written here, element by
 * element and not separably: per output element and axis, the source coordinate, the neighbour
 * indices and coefficients follow the ONNX reference implementation's own conventions (ratio in
 * (0, 1], neighbours nearest to the coordinate, edge padding), and the N-D value is the sum over
 * every combination of taps of the product of the per-axis weights. Every dtype, every mode and
 * coordinate transform, nearest rounding, cubic coefficients, exclude_outside, tf_crop_and_resize
 * extrapolation, axes, keep_aspect_ratio_policy, antialias, scales and sizes, odd shapes, the
 * f32 fast paths and thread counts; then inputs that must be refused. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "backends/cpu/cpu.h"
#include "testutil.h"

static amp_context *ctx;
static void setup(void) { cr_assert_eq(amp_context_create(NULL, &ctx), AMP_OK); }
static void teardown(void) { amp_context_destroy(ctx); }
TestSuite(resize, .init = setup, .fini = teardown, .timeout = 60);
TestSuite(upsample, .init = setup, .fini = teardown, .timeout = 60);
TestSuite(resize_bad, .init = setup, .fini = teardown, .timeout = 60);

static const amp_dtype all_types[] = {AMP_F32, AMP_F16, AMP_BF16, AMP_F64, AMP_I64, AMP_I32, AMP_I8, AMP_U8, AMP_BOOL};
#define N_ALL (sizeof all_types / sizeof all_types[0])

/* Random data of dtype dt, never all zero. */
static amp_tensor *rand_of(amp_dtype dt, int rank, const int64_t *dims, uint64_t seed) {
    if (dt == AMP_BOOL) return tt_rand(ctx, dt, rank, dims, 0, 2, seed);
    if (dt == AMP_U8) return tt_rand(ctx, dt, rank, dims, 1, 250, seed);
    if (amp_dtype_is_int(dt)) return tt_rand(ctx, dt, rank, dims, -100, 100, seed);
    return tt_rand(ctx, dt, rank, dims, -5, 5, seed);
}

static amp_tensor *f32_vec(int n, const double *v) {
    int64_t d[1] = {n};
    return tt_make(ctx, AMP_F32, 1, d, v);
}

static amp_tensor *i64_vec(int n, const int64_t *v) {
    int64_t d[1] = {n};
    amp_tensor *t;
    cr_assert_eq(amp_tensor_create(ctx, AMP_I64, 1, d, &t), AMP_OK);
    if (n) memcpy(t->data, v, sizeof(int64_t) * (size_t)n);
    return t;
}

static amp_tensor *empty_f32(void) {
    int64_t d[1] = {0};
    amp_tensor *t;
    cr_assert_eq(amp_tensor_create(ctx, AMP_F32, 1, d, &t), AMP_OK);
    return t;
}

/* ---- the reference ------------------------------------------------------------------------------ */

/* One configuration: attributes as the node gets them (NULL: absent), and what the test wants. */
typedef struct cfg {
    const char *op; /* "Resize" (default) or "Upsample" */
    int64_t opset;  /* 0: 19 */
    const char *mode, *ctm, *nearest, *policy;
    double cubic_a; /* used when has_a */
    bool has_a;
    int exclude, antialias; /* 1: the attribute set to 1; 0: absent */
    double extrap;
    bool has_extrap;
    int naxes; /* 0: no axes attribute */
    int64_t axes[AMP_MAX_RANK];
    int nscales; /* scales given (per listed axis), else sizes */
    double scales[AMP_MAX_RANK];
    int nsizes;
    int64_t sizes[AMP_MAX_RANK];
    int nroi; /* tf_crop_and_resize roi values (2 per listed axis) */
    double roi[2 * AMP_MAX_RANK];
    int threads; /* 0: the default */
} cfg;

/* Per-axis resolved geometry of the reference. */
typedef struct geo {
    int rank;
    int64_t in[AMP_MAX_RANK], out[AMP_MAX_RANK];
    double scale[AMP_MAX_RANK], lo[AMP_MAX_RANK], hi[AMP_MAX_RANK];
} geo;

static int64_t cfg_opset(const cfg *c) { return c->opset ? c->opset : 19; }
static bool legacy(const cfg *c) { return (c->op && !strcmp(c->op, "Upsample")) || cfg_opset(c) < 11; }
static const char *cmode(const cfg *c) { return c->mode ? c->mode : "nearest"; }

static void resolve(const cfg *c, int rank, const int64_t *dims, geo *g) {
    g->rank = rank;
    int axes[AMP_MAX_RANK], na = c->naxes ? c->naxes : rank;
    for (int i = 0; i < na; i++) axes[i] = c->naxes ? (int)(c->axes[i] < 0 ? c->axes[i] + rank : c->axes[i]) : i;
    for (int d = 0; d < rank; d++) {
        g->in[d] = g->out[d] = dims[d];
        g->scale[d] = 1;
        g->lo[d] = 0;
        g->hi[d] = 1;
    }
    if (c->nscales) {
        for (int i = 0; i < na; i++) {
            /* the node holds the scale in f32 */
            double s = (float)c->scales[i];
            g->scale[axes[i]] = s;
            g->out[axes[i]] = (int64_t)floor((double)dims[axes[i]] * s);
        }
    } else if (!c->policy || !strcmp(c->policy, "stretch")) {
        for (int i = 0; i < na; i++) {
            g->out[axes[i]] = c->sizes[i];
            g->scale[axes[i]] = (double)c->sizes[i] / (double)dims[axes[i]];
        }
    } else {
        bool larger = !strcmp(c->policy, "not_smaller");
        double s = larger ? 0 : 1e300;
        for (int i = 0; i < na; i++) {
            double r = (double)c->sizes[i] / (double)dims[axes[i]];
            s = larger ? fmax(s, r) : fmin(s, r);
        }
        for (int i = 0; i < na; i++) {
            g->scale[axes[i]] = s;
            g->out[axes[i]] = (int64_t)(s * (double)dims[axes[i]] + 0.5);
        }
    }
    for (int i = 0; i < c->nroi / 2; i++) {
        g->lo[axes[i]] = (float)c->roi[i];
        g->hi[axes[i]] = (float)c->roi[c->nroi / 2 + i];
    }
}

static double cubic_of(double A, double x) {
    x = fabs(x);
    if (x <= 1) return (A + 2) * x * x * x - (A + 3) * x * x + 1;
    if (x < 2) return A * x * x * x - 5 * A * x * x + 8 * A * x - 4 * A;
    return 0;
}

/* Taps of output index j on axis d: *n indices (edge-clamped) and weights; *outside for
 * extrapolated tf_crop_and_resize positions. */
static void ref_axis(const cfg *c, const geo *g, int d, int64_t j, int64_t *idx, double *w, int *n, bool *outside) {
    double y = (double)j, in = (double)g->in[d], s = g->scale[d], ow = s * in, x;
    const char *ctm = legacy(c) ? "asymmetric" : c->ctm ? c->ctm : "half_pixel";
    if (!strcmp(ctm, "half_pixel")) x = (y + 0.5) / s - 0.5;
    else if (!strcmp(ctm, "half_pixel_symmetric")) x = in / 2 * (1 - (double)g->out[d] / ow) + (y + 0.5) / s - 0.5;
    else if (!strcmp(ctm, "pytorch_half_pixel")) x = g->out[d] > 1 ? (y + 0.5) / s - 0.5 : 0;
    else if (!strcmp(ctm, "align_corners")) x = ow == 1 ? 0 : y * (in - 1) / (ow - 1);
    else if (!strcmp(ctm, "asymmetric")) x = y / s;
    else if (!strcmp(ctm, "tf_half_pixel_for_nn")) x = (y + 0.5) / s;
    else x = ow == 1 ? (g->hi[d] - g->lo[d]) * (in - 1) / 2 + g->lo[d] * (in - 1)
                     : y * (g->hi[d] - g->lo[d]) * (in - 1) / (ow - 1) + g->lo[d] * (in - 1);
    *outside = !strcmp(ctm, "tf_crop_and_resize") && (x < 0 || x > in - 1);
    double xi = floor(x), r = x - xi;
    if (r == 0) { /* the reference prefers the pixel on the left: ratio in (0, 1] */
        r = 1;
        xi -= 1;
    }
    const char *mode = cmode(c);
    double A = c->has_a ? (float)c->cubic_a : -0.75; /* the attribute is an f32 */
    bool aa = c->antialias == 1;
    if (!strcmp(mode, "nearest")) {
        *n = 2;
        const char *nm = legacy(c) ? (s < 1 ? "ceil" : "floor") : c->nearest ? c->nearest : "round_prefer_floor";
        bool right;
        if (r == 1) right = true;
        else if (!strcmp(nm, "round_prefer_floor")) right = r > 0.5;
        else if (!strcmp(nm, "round_prefer_ceil")) right = r >= 0.5;
        else right = !strcmp(nm, "ceil");
        w[0] = right ? 0 : 1;
        w[1] = right ? 1 : 0;
    } else if (!aa) {
        if (!strcmp(mode, "linear")) {
            *n = 2;
            w[0] = 1 - r;
            w[1] = r;
        } else {
            *n = 4;
            w[0] = ((A * (r + 1) - 5 * A) * (r + 1) + 8 * A) * (r + 1) - 4 * A;
            w[1] = ((A + 2) * r - (A + 3)) * r * r + 1;
            w[2] = ((A + 2) * (1 - r) - (A + 3)) * (1 - r) * (1 - r) + 1;
            w[3] = ((A * ((1 - r) + 1) - 5 * A) * ((1 - r) + 1) + 8 * A) * ((1 - r) + 1) - 4 * A;
        }
    } else {
        double sa = fmin(s, 1), sum = 0;
        bool lin = !strcmp(mode, "linear");
        int start = (int)floor((lin ? -1 : -2) / sa) + 1;
        *n = 2 - 2 * start;
        for (int k = 0; k < *n; k++) {
            double t = sa * ((double)(start + k) - r);
            w[k] = lin ? fmax(0, fmin(1, 1 - fabs(t))) : cubic_of(A, t);
            sum += w[k];
        }
        for (int k = 0; k < *n; k++) w[k] /= sum;
    }
    int64_t first = (int64_t)xi + 1 - *n / 2;
    if (c->exclude == 1 && strcmp(mode, "nearest")) {
        double sum = 0;
        for (int k = 0; k < *n; k++) {
            if (first + k < 0 || first + k >= g->in[d]) w[k] = 0;
            sum += w[k];
        }
        for (int k = 0; k < *n && sum != 0; k++) w[k] /= sum;
    }
    for (int k = 0; k < *n; k++) {
        int64_t i = first + k;
        idx[k] = i < 0 ? 0 : i >= g->in[d] ? g->in[d] - 1 : i;
    }
}

#define MAXT 128

/* Y of the reference, in f64. */
static double *reference(const cfg *c, const geo *g, const amp_tensor *x, int64_t *numel) {
    int r = g->rank;
    int64_t n = 1;
    for (int d = 0; d < r; d++) n *= g->out[d];
    *numel = n;
    double *y = malloc(sizeof(double) * (size_t)(n + 1));
    int64_t xs[AMP_MAX_RANK];
    amp_strides(r, x->dims, xs);
    double ex = c->has_extrap ? c->extrap : 0;
    for (int64_t e = 0; e < n; e++) {
        int64_t oc[AMP_MAX_RANK], rem = e;
        for (int d = r - 1; d >= 0; d--) {
            oc[d] = rem % g->out[d];
            rem /= g->out[d];
        }
        int64_t idx[AMP_MAX_RANK][MAXT];
        double w[AMP_MAX_RANK][MAXT];
        int nt[AMP_MAX_RANK];
        bool out = false;
        for (int d = 0; d < r; d++) {
            bool o;
            ref_axis(c, g, d, oc[d], idx[d], w[d], &nt[d], &o);
            cr_assert(nt[d] <= MAXT);
            out |= o;
        }
        if (out) {
            y[e] = ex;
            continue;
        }
        int k[AMP_MAX_RANK] = {0};
        double acc = 0;
        for (;;) {
            double wp = 1;
            int64_t off = 0;
            for (int d = 0; d < r; d++) {
                wp *= w[d][k[d]];
                off += idx[d][k[d]] * xs[d];
            }
            acc += wp * tt_get(x, off);
            int d = r - 1;
            while (d >= 0 && ++k[d] == nt[d]) k[d--] = 0;
            if (d < 0) break;
        }
        y[e] = acc;
    }
    return y;
}

/* Build the node of c at its opset, run it on x and return Y (or the status). */
static amp_status run_cfg(const cfg *c, const amp_tensor *x, amp_tensor **y) {
    bool ups = c->op && !strcmp(c->op, "Upsample");
    int64_t opset = cfg_opset(c);
    amp_test_node *t = tn_new(ctx, ups ? "Upsample" : "Resize");
    t->opset = opset;
    if (c->threads) t->threads = c->threads;
    if (c->mode) tn_str(t, "mode", c->mode);
    if (c->ctm) tn_str(t, "coordinate_transformation_mode", c->ctm);
    if (c->nearest) tn_str(t, "nearest_mode", c->nearest);
    if (c->policy) tn_str(t, "keep_aspect_ratio_policy", c->policy);
    if (c->has_a) tn_float(t, "cubic_coeff_a", (float)c->cubic_a);
    if (c->exclude) tn_int(t, "exclude_outside", 1);
    if (c->antialias) tn_int(t, "antialias", 1);
    if (c->has_extrap) tn_float(t, "extrapolation_value", (float)c->extrap);
    if (c->naxes) tn_ints(t, "axes", c->naxes, c->axes);
    amp_tensor *in[4] = {(amp_tensor *)x, NULL, NULL, NULL};
    int nin;
    if (ups && opset < 9) {
        float fs[AMP_MAX_RANK];
        for (int i = 0; i < c->nscales; i++) fs[i] = (float)c->scales[i];
        tn_floats(t, "scales", c->nscales, fs);
        nin = 1;
    } else if (ups || opset < 11) {
        in[1] = f32_vec(c->nscales, c->scales);
        nin = 2;
    } else {
        /* opset 11 requires roi and scales; empty tensors stand for "not given" */
        in[1] = c->nroi ? f32_vec(c->nroi, c->roi) : opset < 13 ? empty_f32() : NULL;
        in[2] = c->nscales ? f32_vec(c->nscales, c->scales) : opset < 13 ? empty_f32() : NULL;
        in[3] = c->nscales ? NULL : i64_vec(c->nsizes, c->sizes);
        nin = in[3] ? 4 : 3;
    }
    amp_status s = tn_run(t, nin, in, 1, y);
    for (int i = 1; i < 4; i++) amp_tensor_destroy(in[i]);
    tn_free(t);
    return s;
}

/* Integers: the reference rounds half to even and saturates; a reference within 1e-9 of a tie
 * may round either way after a different order of summation. */
static bool int_ok(amp_dtype dt, double got, double ref) {
    double lo = dt == AMP_U8 || dt == AMP_BOOL ? 0 : dt == AMP_I8 ? -128 : dt == AMP_I32 ? -2147483648.0 : -9.3e18;
    double hi = dt == AMP_BOOL ? 1 : dt == AMP_U8 ? 255 : dt == AMP_I8 ? 127 : dt == AMP_I32 ? 2147483647.0 : 9.3e18;
    double e = fmin(fmax(nearbyint(ref), lo), hi);
    if (got == e) return true;
    double fr = ref - floor(ref);
    return fabs(fr - 0.5) < 1e-9 && fabs(got - ref) <= 0.5 + 1e-9 && got >= lo && got <= hi;
}

/* Run c on random X of dtype dt and dims; compare with the reference. */
static void check(const cfg *c, amp_dtype dt, int rank, const int64_t *dims, uint64_t seed, const char *what) {
    amp_tensor *x = rand_of(dt, rank, dims, seed), *y = NULL;
    amp_status s = run_cfg(c, x, &y);
    cr_assert_eq(s, AMP_OK, "%s %s: %s", what, amp_dtype_name(dt), amp_context_last_error(ctx));
    geo g;
    resolve(c, rank, dims, &g);
    cr_assert_eq(y->dtype, dt);
    cr_assert_eq(y->rank, rank);
    for (int d = 0; d < rank; d++)
        cr_assert_eq(y->dims[d], g.out[d], "%s %s: dim %d is %lld, expected %lld", what, amp_dtype_name(dt), d,
                     (long long)y->dims[d], (long long)g.out[d]);
    int64_t n;
    double *ref = reference(c, &g, x, &n);
    cr_assert_eq(y->numel, n);
    bool nearest = !strcmp(cmode(c), "nearest");
    if (amp_dtype_is_int(dt) || dt == AMP_BOOL) {
        for (int64_t i = 0; i < n; i++)
            cr_assert(int_ok(dt, tt_get(y, i), ref[i]), "%s %s: element %lld is %g, reference %g", what,
                      amp_dtype_name(dt), (long long)i, tt_get(y, i), ref[i]);
    } else if (nearest) {
        /* copies: exact, and the extrapolation value rounded to the dtype */
        for (int64_t i = 0; i < n; i++) {
            double want = ref[i];
            if (dt == AMP_F32) want = (float)want;
            else if (dt != AMP_F64) {
                uint64_t h[1] = {0}; /* room for any dtype */
                amp_st(dt, h, 0, want);
                want = amp_ld(dt, h, 0);
            }
            cr_assert(tt_get(y, i) == want, "%s %s: element %lld is %g, reference %g", what, amp_dtype_name(dt),
                      (long long)i, tt_get(y, i), want);
        }
    } else {
        double num = 0, den = 0;
        for (int64_t i = 0; i < n; i++) {
            double a = tt_get(y, i);
            cr_assert(isfinite(a), "%s %s: element %lld is not finite", what, amp_dtype_name(dt), (long long)i);
            num += (a - ref[i]) * (a - ref[i]);
            den += ref[i] * ref[i];
        }
        double tol = dt == AMP_F64 ? 1e-24 : dt == AMP_F32 ? 1e-11 : dt == AMP_F16 ? 1e-6 : 1e-4;
        cr_assert(n == 0 || den > 0, "%s: the reference is all zero", what);
        cr_assert(n == 0 || num / den < tol, "%s %s: normalised squared error %g", what, amp_dtype_name(dt), num / den);
    }
    free(ref);
    amp_tensor_destroy(x);
    amp_tensor_destroy(y);
}

#define SC(...) .nscales = sizeof((double[]){__VA_ARGS__}) / sizeof(double), .scales = {__VA_ARGS__}
#define SZ(...) .nsizes = sizeof((int64_t[]){__VA_ARGS__}) / sizeof(int64_t), .sizes = {__VA_ARGS__}
#define ROI(...) .nroi = sizeof((double[]){__VA_ARGS__}) / sizeof(double), .roi = {__VA_ARGS__}
#define AXES(...) .naxes = sizeof((int64_t[]){__VA_ARGS__}) / sizeof(int64_t), .axes = {__VA_ARGS__}

static const char *const modes[3] = {"nearest", "linear", "cubic"};

/* ---- forward semantics ----------------------------------------------------------------------- */

Test(resize, every_dtype_and_mode) {
    const int64_t d4[4] = {2, 3, 5, 7};
    uint64_t seed = 1;
    for (size_t ti = 0; ti < N_ALL; ti++)
        for (int m = 0; m < 3; m++) {
            cfg a = {.mode = modes[m], SC(1, 1, 1.7, 0.6)};
            check(&a, all_types[ti], 4, d4, seed++, "last two axes by scales");
            cfg b = {.mode = modes[m], SC(1, 1.5, 2, 0.5)};
            check(&b, all_types[ti], 4, d4, seed++, "three axes by scales");
            cfg c = {.mode = modes[m], SZ(2, 3, 4, 11)};
            check(&c, all_types[ti], 4, d4, seed++, "by sizes");
            cfg e = {.mode = modes[m], .ctm = "tf_crop_and_resize", ROI(0, 0, 0.1, -0.2, 1, 1, 0.8, 1.3),
                     .has_extrap = true, .extrap = 2.5, SZ(2, 3, 6, 9)};
            check(&e, all_types[ti], 4, d4, seed++, "tf_crop_and_resize");
        }
}

Test(resize, every_coordinate_transform) {
    static const char *const ctms[] = {"half_pixel", "half_pixel_symmetric", "pytorch_half_pixel", "align_corners",
                                       "asymmetric", "tf_crop_and_resize"};
    const int64_t d4[4] = {1, 2, 5, 7};
    const amp_dtype dts[2] = {AMP_F32, AMP_F64};
    uint64_t seed = 100;
    for (int ci = 0; ci < 6; ci++)
        for (int m = 0; m < 3; m++)
            for (int ti = 0; ti < 2; ti++) {
                bool crop = ci == 5;
                cfg a = {.mode = modes[m], .ctm = ctms[ci], SC(1, 1, 1.7, 0.6)};
                cfg b = {.mode = modes[m], .ctm = ctms[ci], SC(1, 1, 2, 0.5)};
                cfg c = {.mode = modes[m], .ctm = ctms[ci], SZ(1, 1, 4, 1)};
                cfg e = {.mode = modes[m], .ctm = ctms[ci], SZ(1, 1, 1, 9)};
                cfg f = {.mode = modes[m], .ctm = ctms[ci], SC(1, 1, 0.3, 2.9)};
                cfg *all[5] = {&a, &b, &c, &e, &f};
                for (int k = 0; k < 5; k++) {
                    if (crop) {
                        const double roi[8] = {0, 0, 0.2, -0.1, 1, 1, 0.9, 1.2};
                        all[k]->nroi = 8;
                        memcpy(all[k]->roi, roi, sizeof roi);
                        all[k]->has_extrap = true;
                        all[k]->extrap = -3.25;
                    }
                    check(all[k], dts[ti], 4, d4, seed++, ctms[ci]);
                }
            }
}

Test(resize, nearest_modes) {
    static const char *const nms[] = {"round_prefer_floor", "round_prefer_ceil", "floor", "ceil"};
    static const char *const ctms[] = {"half_pixel", "asymmetric", "align_corners", "pytorch_half_pixel"};
    const int64_t d3[3] = {2, 6, 9};
    uint64_t seed = 300;
    for (int ni = 0; ni < 4; ni++)
        for (int ci = 0; ci < 4; ci++) {
            cfg a = {.nearest = nms[ni], .ctm = ctms[ci], SC(1, 2.5, 1.7)};
            cfg b = {.nearest = nms[ni], .ctm = ctms[ci], SC(1, 0.6, 0.45)};
            cfg c = {.nearest = nms[ni], .ctm = ctms[ci], SZ(2, 8, 3)};
            check(&a, AMP_F32, 3, d3, seed++, nms[ni]);
            check(&b, AMP_I64, 3, d3, seed++, nms[ni]);
            check(&c, AMP_F16, 3, d3, seed++, nms[ni]);
        }
}

Test(resize, cubic_coefficient_and_exclude_outside) {
    const int64_t d4[4] = {2, 2, 6, 5};
    uint64_t seed = 400;
    const double as[3] = {-0.5, -0.75, -0.6};
    static const char *const ctms[] = {"half_pixel", "asymmetric", "align_corners"};
    for (int ai = 0; ai < 3; ai++)
        for (int ex = 0; ex < 2; ex++)
            for (int ci = 0; ci < 3; ci++) {
                cfg a = {.mode = "cubic", .ctm = ctms[ci], .has_a = true, .cubic_a = as[ai], .exclude = ex,
                         SC(1, 1, 1.8, 0.7)};
                cfg b = {.mode = "cubic", .ctm = ctms[ci], .has_a = true, .cubic_a = as[ai], .exclude = ex,
                         SC(1, 1, 0.5, 3)};
                cfg c = {.mode = "linear", .ctm = ctms[ci], .exclude = ex, SC(1, 1, 1.8, 0.7)};
                check(&a, AMP_F64, 4, d4, seed++, "cubic");
                check(&b, AMP_F32, 4, d4, seed++, "cubic");
                check(&c, AMP_F64, 4, d4, seed++, "linear exclude_outside");
            }
}

Test(resize, axes_and_aspect_ratio_policies) {
    const int64_t d4[4] = {2, 3, 6, 9};
    uint64_t seed = 500;
    static const char *const pols[3] = {"stretch", "not_larger", "not_smaller"};
    for (int m = 0; m < 3; m++) {
        cfg a = {.mode = modes[m], AXES(2, 3), SC(1.5, 0.7)};
        cfg b = {.mode = modes[m], AXES(-1, -2), SC(0.7, 1.5)};
        cfg c = {.mode = modes[m], AXES(1), SC(2.5)};
        cfg e = {.mode = modes[m], AXES(3, 1), SZ(4, 5)};
        check(&a, AMP_F32, 4, d4, seed++, "axes 2,3");
        check(&b, AMP_F64, 4, d4, seed++, "axes -1,-2");
        check(&c, AMP_F32, 4, d4, seed++, "axes 1");
        check(&e, AMP_I32, 4, d4, seed++, "axes 3,1 sizes");
        for (int p = 0; p < 3; p++) {
            cfg f = {.mode = modes[m], .policy = pols[p], AXES(2, 3), SZ(5, 5)};
            cfg g = {.mode = modes[m], .policy = pols[p], SZ(2, 3, 8, 5)};
            cfg h = {.mode = modes[m], .policy = pols[p], AXES(-1, 2), SZ(20, 13)};
            check(&f, AMP_F32, 4, d4, seed++, pols[p]);
            check(&g, AMP_F64, 4, d4, seed++, pols[p]);
            check(&h, AMP_F32, 4, d4, seed++, pols[p]);
        }
        cfg r = {.mode = modes[m], .ctm = "tf_crop_and_resize", AXES(3, 2), ROI(0.1, 0.3, 0.9, 1.1), SZ(7, 4),
                 .has_extrap = true, .extrap = 7};
        check(&r, AMP_F32, 4, d4, seed++, "roi with axes");
    }
}

Test(resize, antialias) {
    const int64_t d4[4] = {1, 2, 23, 17};
    uint64_t seed = 600;
    const double ss[5] = {0.5, 0.3, 0.6, 0.75, 1.5};
    const amp_dtype dts[4] = {AMP_F32, AMP_F64, AMP_F16, AMP_U8};
    for (int m = 1; m < 3; m++)
        for (int si = 0; si < 5; si++)
            for (int ti = 0; ti < 4; ti++) {
                cfg a = {.mode = modes[m], .antialias = 1, SC(1, 1, ss[si], ss[4 - si])};
                check(&a, dts[ti], 4, d4, seed++, "antialias by scales");
            }
    for (int m = 1; m < 3; m++) {
        cfg b = {.mode = modes[m], .antialias = 1, SZ(1, 2, 7, 4)};
        cfg c = {.mode = modes[m], .antialias = 1, .exclude = 1, SC(1, 1, 0.4, 0.45)};
        cfg e = {.mode = modes[m], .antialias = 1, .ctm = "align_corners", SC(1, 1, 0.35, 1)};
        cfg f = {.mode = modes[m], .antialias = 1, .ctm = "pytorch_half_pixel", AXES(2), SZ(1)};
        check(&b, AMP_F32, 4, d4, seed++, "antialias by sizes");
        check(&c, AMP_F64, 4, d4, seed++, "antialias exclude_outside");
        check(&e, AMP_F32, 4, d4, seed++, "antialias align_corners");
        check(&f, AMP_F64, 4, d4, seed++, "antialias to one");
    }
    /* nearest has no filter to widen */
    cfg n = {.antialias = 1, SC(1, 1, 0.5, 0.3)};
    check(&n, AMP_F32, 4, d4, seed++, "antialias nearest");
}

Test(resize, opsets_10_to_18) {
    const int64_t d4[4] = {2, 3, 5, 8};
    uint64_t seed = 700;
    for (size_t ti = 0; ti < N_ALL; ti++)
        for (int m = 0; m < 2; m++) {
            cfg a = {.opset = 10, .mode = modes[m], SC(1, 1, 0.6, 1.7)};
            cfg b = {.opset = 10, .mode = modes[m], SC(1, 2, 2, 3)};
            check(&a, all_types[ti], 4, d4, seed++, "Resize-10");
            check(&b, all_types[ti], 4, d4, seed++, "Resize-10");
        }
    for (int m = 0; m < 3; m++) {
        cfg a = {.opset = 11, .mode = modes[m], SZ(2, 3, 3, 5)};
        cfg b = {.opset = 11, .mode = modes[m], .ctm = "tf_half_pixel_for_nn", SC(1, 1, 0.75, 1.6)};
        cfg c = {.opset = 13, .mode = modes[m], .ctm = "pytorch_half_pixel", SC(1, 1, 1.3, 0.4)};
        cfg e = {.opset = 18, .mode = modes[m], .ctm = "align_corners", AXES(3), SC(0.55)};
        check(&a, AMP_F32, 4, d4, seed++, "Resize-11 sizes");
        check(&b, AMP_F32, 4, d4, seed++, "Resize-11 tf_half_pixel_for_nn");
        check(&c, AMP_BF16, 4, d4, seed++, "Resize-13");
        check(&e, AMP_F64, 4, d4, seed++, "Resize-18");
    }
}

Test(upsample, opsets_7_and_9) {
    const int64_t d4[4] = {2, 3, 5, 4};
    uint64_t seed = 800;
    for (size_t ti = 0; ti < N_ALL; ti++)
        for (int m = 0; m < 2; m++)
            for (int op = 7; op <= 9; op += 2) {
                cfg a = {.op = "Upsample", .opset = op, .mode = modes[m], SC(1, 1, 2, 3)};
                cfg b = {.op = "Upsample", .opset = op, .mode = modes[m], SC(1, 1.5, 1.7, 1)};
                check(&a, all_types[ti], 4, d4, seed++, "Upsample");
                check(&b, all_types[ti], 4, d4, seed++, "Upsample");
            }
    /* scales of 1: an exact copy */
    amp_tensor *x = rand_of(AMP_F32, 4, d4, seed), *y = NULL;
    cfg c = {.op = "Upsample", .opset = 9, .mode = "linear", SC(1, 1, 1, 1)};
    cr_assert_eq(run_cfg(&c, x, &y), AMP_OK);
    cr_assert(tt_equal(x, y));
    amp_tensor_destroy(x);
    amp_tensor_destroy(y);
}

Test(resize, ranks_and_empty_tensors) {
    uint64_t seed = 900;
    const int64_t d1[1] = {9}, d2[2] = {5, 3}, d3[3] = {4, 3, 5}, d5[5] = {2, 2, 3, 4, 3}, d6[6] = {2, 1, 3, 2, 2, 3};
    for (int m = 0; m < 3; m++) {
        cfg a = {.mode = modes[m], SC(2.3)};
        cfg b = {.mode = modes[m], SC(0.6, 2.1)};
        cfg c = {.mode = modes[m], SC(1.4, 0.9, 1.5)};
        cfg e = {.mode = modes[m], SC(1, 1, 1.5, 0.8, 2)};
        cfg f = {.mode = modes[m], SC(1, 2, 1, 1.5, 1, 0.7)};
        check(&a, AMP_F32, 1, d1, seed++, "rank 1");
        check(&b, AMP_F32, 2, d2, seed++, "rank 2");
        check(&c, AMP_F64, 3, d3, seed++, "rank 3");
        check(&e, AMP_F32, 5, d5, seed++, "rank 5 (trilinear, tricubic)");
        check(&f, AMP_F16, 6, d6, seed++, "rank 6");
        /* an output dim of 0, and an empty batch */
        const int64_t de[4] = {0, 2, 3, 3};
        cfg g = {.mode = modes[m], SC(1, 1, 0.2, 2)};
        cfg h = {.mode = modes[m], SC(1, 1, 2, 2)};
        amp_tensor *x = rand_of(AMP_F32, 4, (const int64_t[4]){1, 2, 3, 3}, seed++), *y = NULL;
        cr_assert_eq(run_cfg(&g, x, &y), AMP_OK, "%s", amp_context_last_error(ctx));
        cr_assert(y->dims[2] == 0 && y->dims[3] == 6 && y->numel == 0);
        amp_tensor_destroy(y);
        amp_tensor_destroy(x);
        x = rand_of(AMP_F32, 4, de, seed++);
        cr_assert_eq(run_cfg(&h, x, &y), AMP_OK, "%s", amp_context_last_error(ctx));
        cr_assert(y->dims[0] == 0 && y->dims[2] == 6 && y->dims[3] == 6);
        amp_tensor_destroy(y);
        amp_tensor_destroy(x);
    }
}

/* The f32 NCHW paths (direct bilinear/bicubic, nearest gather) at larger odd sizes, and the
 * result independent of the thread count. */
Test(resize, f32_images_and_threads) {
    const int64_t d4[4] = {2, 3, 33, 47};
    uint64_t seed = 1000;
    const double ss[4][2] = {{2, 2}, {0.5, 0.5}, {1.7, 1.7}, {1.7, 0.45}};
    for (int m = 0; m < 3; m++)
        for (int si = 0; si < 4; si++) {
            cfg a = {.mode = modes[m], SC(1, 1, ss[si][0], ss[si][1])};
            check(&a, AMP_F32, 4, d4, seed++, "image");
            cfg p = {.mode = modes[m], .ctm = "pytorch_half_pixel", SZ(2, 3, 65, 91)};
            check(&p, AMP_F32, 4, d4, seed++, "image by sizes");
            amp_tensor *x = rand_of(AMP_F32, 4, d4, seed++), *y1 = NULL, *y4 = NULL;
            a.threads = 1;
            cr_assert_eq(run_cfg(&a, x, &y1), AMP_OK);
            a.threads = 4;
            cr_assert_eq(run_cfg(&a, x, &y4), AMP_OK);
            cr_assert(tt_equal(y1, y4), "%s: thread counts disagree", modes[m]);
            amp_tensor_destroy(x);
            amp_tensor_destroy(y1);
            amp_tensor_destroy(y4);
        }
    /* wider than one block of output columns, and tf_crop_and_resize in the direct path */
    const int64_t wide[4] = {1, 2, 5, 600};
    for (int m = 1; m < 3; m++) {
        cfg a = {.mode = modes[m], SC(1, 1, 1.5, 2.1)};
        cfg b = {.mode = modes[m], SC(1, 1, 0.6, 1.9)};
        cfg c = {.mode = modes[m], .ctm = "tf_crop_and_resize", ROI(0, 0, -0.2, 0.1, 1, 1, 1.1, 0.95),
                 .has_extrap = true, .extrap = 4, SZ(1, 2, 7, 1500)};
        check(&a, AMP_F32, 4, wide, seed++, "wide image");
        check(&b, AMP_F32, 4, wide, seed++, "wide image");
        check(&c, AMP_F32, 4, wide, seed++, "wide crop");
    }
}

/* Random configurations (seeded): every accepted one must match the reference; none may crash
 * (the fuzzer feeds such models through inference and kernels). */
Test(resize, random_configurations) {
    static const char *const ctms[] = {"half_pixel", "half_pixel_symmetric", "pytorch_half_pixel", "align_corners",
                                       "asymmetric", "tf_crop_and_resize"};
    static const char *const nms[] = {"round_prefer_floor", "round_prefer_ceil", "floor", "ceil"};
    static const char *const pols[] = {"stretch", "not_larger", "not_smaller"};
    uint64_t st = 12345;
#define RND(n) ((int)((st = st * 6364136223846793005ull + 1442695040888963407ull) >> 33) % (n))
    int accepted = 0;
    for (int it = 0; it < 400; it++) {
        int rank = 1 + RND(4);
        int64_t dims[AMP_MAX_RANK];
        for (int d = 0; d < rank; d++) dims[d] = 1 + RND(6);
        cfg c = {.mode = modes[RND(3)], .ctm = ctms[RND(6)], .nearest = nms[RND(4)], .exclude = RND(2),
                 .antialias = RND(2), .has_a = RND(2) == 0, .cubic_a = -0.3 - 0.1 * RND(6), .has_extrap = true,
                 .extrap = 0.5 + RND(5)};
        int na = rank;
        if (RND(3) == 0) {
            na = 1 + RND(rank);
            c.naxes = na;
            /* distinct axes, some counted from the back */
            for (int i = 0; i < na; i++) c.axes[i] = (rank - 1 - i) - (RND(2) ? rank : 0);
        }
        if (RND(2)) {
            c.nscales = na;
            for (int i = 0; i < na; i++) c.scales[i] = RND(8) == 0 ? 1 : 0.05 + RND(70) / 20.0;
        } else {
            c.nsizes = na;
            for (int i = 0; i < na; i++) c.sizes[i] = RND(9);
            c.policy = pols[RND(3)];
        }
        if (!strcmp(c.ctm, "tf_crop_and_resize")) {
            c.nroi = 2 * na;
            for (int i = 0; i < 2 * na; i++) c.roi[i] = -0.5 + RND(21) / 10.0;
        }
        amp_dtype dt = RND(2) ? AMP_F32 : AMP_F64;
        amp_tensor *x = rand_of(dt, rank, dims, (uint64_t)it + 5000), *y = NULL;
        amp_status s = run_cfg(&c, x, &y);
        amp_tensor_destroy(y);
        amp_tensor_destroy(x);
        if (s != AMP_OK) {
            cr_assert(s == AMP_ERR_INVALID_GRAPH || s == AMP_ERR_SHAPE, "case %d: status %d: %s", it, s,
                      amp_context_last_error(ctx));
            continue;
        }
        accepted++;
        check(&c, dt, rank, dims, (uint64_t)it + 5000, "random configuration");
    }
#undef RND
    cr_assert(accepted > 200, "only %d of 400 configurations ran", accepted);
}

/* ---- refused inputs ------------------------------------------------------------------------------ */

/* Run a Resize (opset, attributes from t) with the given inputs, expecting status want and no
 * output. */
static void expect(amp_test_node *t, int nin, amp_tensor **in, amp_status want, const char *what) {
    amp_tensor *y = NULL;
    amp_status s = tn_run(t, nin, in, 1, &y);
    cr_assert_eq(s, want, "%s: status %d (%s), expected %d", what, s, amp_context_last_error(ctx), want);
    cr_assert_null(y);
    tn_free(t);
}

static amp_test_node *rz(int64_t opset, const char *mode) {
    amp_test_node *t = tn_new(ctx, "Resize");
    t->opset = opset;
    if (mode) tn_str(t, "mode", mode);
    return t;
}

Test(resize_bad, scales_and_sizes) {
    const int64_t d4[4] = {1, 2, 4, 4};
    amp_tensor *x = rand_of(AMP_F32, 4, d4, 1);
    amp_tensor *sc = f32_vec(4, (const double[]){1, 1, 2, 2}), *sz = i64_vec(4, (const int64_t[]){1, 2, 8, 8});
    amp_tensor *sc3 = f32_vec(3, (const double[]){1, 2, 2}), *sz3 = i64_vec(3, (const int64_t[]){2, 8, 8});
    amp_tensor *zero = f32_vec(4, (const double[]){1, 1, 0, 2}), *neg = f32_vec(4, (const double[]){1, 1, -1, 2});
    amp_tensor *nan = f32_vec(4, (const double[]){1, 1, NAN, 2});
    amp_tensor *inf = f32_vec(4, (const double[]){1, 1, INFINITY, 2});
    amp_tensor *huge = f32_vec(4, (const double[]){1, 1, 1e30, 2}), *big = f32_vec(4, (const double[]){1, 1, 1e9, 1e9});
    amp_tensor *nsz = i64_vec(4, (const int64_t[]){1, 2, -8, 8});
    amp_tensor *fsz = f32_vec(4, (const double[]){1, 2, 8, 8}), *isc = i64_vec(4, (const int64_t[]){1, 1, 2, 2});
    amp_tensor *in[4] = {x, NULL, sc, sz};
    expect(rz(19, NULL), 4, in, AMP_ERR_INVALID_GRAPH, "scales and sizes");
    in[2] = NULL, in[3] = NULL;
    expect(rz(19, NULL), 1, in, AMP_ERR_INVALID_GRAPH, "neither scales nor sizes");
    in[2] = sc3;
    expect(rz(19, NULL), 3, in, AMP_ERR_SHAPE, "three scales for rank 4");
    in[2] = NULL, in[3] = sz3;
    expect(rz(19, NULL), 4, in, AMP_ERR_SHAPE, "three sizes for rank 4");
    in[3] = nsz;
    expect(rz(19, NULL), 4, in, AMP_ERR_SHAPE, "negative size");
    in[3] = fsz;
    expect(rz(19, NULL), 4, in, AMP_ERR_INVALID_GRAPH, "float sizes");
    in[3] = NULL;
    amp_tensor *bad[4] = {zero, neg, nan, inf};
    for (int i = 0; i < 4; i++) {
        in[2] = bad[i];
        expect(rz(19, "linear"), 3, in, AMP_ERR_INVALID_GRAPH, "scale zero, negative or not finite");
    }
    in[2] = isc;
    expect(rz(19, NULL), 3, in, AMP_ERR_INVALID_GRAPH, "integer scales");
    in[2] = huge;
    expect(rz(19, NULL), 3, in, AMP_ERR_OVERFLOW, "output dim overflows");
    in[2] = big;
    expect(rz(19, NULL), 3, in, AMP_ERR_OVERFLOW, "output size overflows");
    /* input counts of each version */
    in[1] = sc;
    expect(rz(10, NULL), 1, in, AMP_ERR_INVALID_GRAPH, "Resize-10 without scales");
    amp_tensor *e = empty_f32();
    in[1] = e, in[2] = sc;
    expect(rz(11, NULL), 2, in, AMP_ERR_INVALID_GRAPH, "Resize-11 without scales");
    in[2] = e, in[3] = NULL;
    expect(rz(11, NULL), 3, in, AMP_ERR_INVALID_GRAPH, "Resize-11 with empty scales and no sizes");
    amp_test_node *u = tn_new(ctx, "Upsample");
    u->opset = 9;
    expect(u, 1, in, AMP_ERR_INVALID_GRAPH, "Upsample-9 without scales");
    u = tn_new(ctx, "Upsample");
    u->opset = 9;
    in[1] = f32_vec(4, (const double[]){1, 1, 0.5, 2});
    expect(u, 2, in, AMP_ERR_INVALID_GRAPH, "Upsample scale below 1");
    amp_tensor_destroy(in[1]);
    u = tn_new(ctx, "Upsample");
    u->opset = 7;
    expect(u, 1, in, AMP_ERR_INVALID_GRAPH, "Upsample-7 without its scales attribute");
    amp_tensor *all[] = {x, sc, sz, sc3, sz3, zero, neg, nan, inf, huge, big, nsz, fsz, isc, e};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) amp_tensor_destroy(all[i]);
}

Test(resize_bad, attributes) {
    const int64_t d4[4] = {1, 2, 4, 4};
    amp_tensor *x = rand_of(AMP_F32, 4, d4, 2);
    amp_tensor *sc = f32_vec(4, (const double[]){1, 1, 2, 2}), *sc2 = f32_vec(2, (const double[]){2, 2});
    amp_tensor *in[3] = {x, NULL, sc};
    expect(rz(19, "bicubic"), 3, in, AMP_ERR_INVALID_GRAPH, "unknown mode");
    amp_tensor *in10[2] = {x, sc};
    expect(rz(10, "cubic"), 2, in10, AMP_ERR_INVALID_GRAPH, "cubic at opset 10");
    amp_test_node *t = rz(18, NULL);
    tn_str(t, "coordinate_transformation_mode", "half_pixel_symmetric");
    expect(t, 3, in, AMP_ERR_INVALID_GRAPH, "half_pixel_symmetric at opset 18");
    t = rz(13, NULL);
    tn_str(t, "coordinate_transformation_mode", "tf_half_pixel_for_nn");
    expect(t, 3, in, AMP_ERR_INVALID_GRAPH, "tf_half_pixel_for_nn at opset 13");
    t = rz(19, NULL);
    tn_str(t, "coordinate_transformation_mode", "corners");
    expect(t, 3, in, AMP_ERR_INVALID_GRAPH, "unknown coordinate_transformation_mode");
    t = rz(19, NULL);
    tn_int(t, "coordinate_transformation_mode", 1);
    expect(t, 3, in, AMP_ERR_INVALID_GRAPH, "coordinate_transformation_mode of the wrong kind");
    t = rz(19, NULL);
    tn_str(t, "nearest_mode", "round");
    expect(t, 3, in, AMP_ERR_INVALID_GRAPH, "unknown nearest_mode");
    t = rz(13, "linear");
    tn_int(t, "antialias", 1);
    expect(t, 3, in, AMP_ERR_INVALID_GRAPH, "antialias at opset 13");
    t = rz(18, "linear");
    tn_int(t, "antialias", 2);
    expect(t, 3, in, AMP_ERR_INVALID_GRAPH, "antialias 2");
    t = rz(18, "cubic");
    tn_int(t, "exclude_outside", 3);
    expect(t, 3, in, AMP_ERR_INVALID_GRAPH, "exclude_outside 3");
    t = rz(18, "cubic");
    tn_float(t, "cubic_coeff_a", INFINITY);
    expect(t, 3, in, AMP_ERR_INVALID_GRAPH, "cubic_coeff_a not finite");
    t = rz(10, NULL);
    tn_str(t, "coordinate_transformation_mode", "asymmetric");
    expect(t, 2, in10, AMP_ERR_INVALID_GRAPH, "coordinate_transformation_mode at opset 10");
    in[2] = sc2;
    t = rz(18, NULL);
    tn_ints(t, "axes", 2, (const int64_t[]){2, -2});
    expect(t, 3, in, AMP_ERR_INVALID_GRAPH, "repeated axis");
    t = rz(18, NULL);
    tn_ints(t, "axes", 2, (const int64_t[]){2, 4});
    expect(t, 3, in, AMP_ERR_INVALID_GRAPH, "axis out of range");
    t = rz(18, NULL);
    tn_ints(t, "axes", 2, (const int64_t[]){2, 3});
    tn_str(t, "keep_aspect_ratio_policy", "fit");
    amp_tensor *sz2 = i64_vec(2, (const int64_t[]){5, 5});
    amp_tensor *in4[4] = {x, NULL, NULL, sz2};
    expect(t, 4, in4, AMP_ERR_INVALID_GRAPH, "unknown keep_aspect_ratio_policy");
    amp_tensor_destroy(x);
    amp_tensor_destroy(sc);
    amp_tensor_destroy(sc2);
    amp_tensor_destroy(sz2);
}

Test(resize_bad, roi_shapes_and_values) {
    const int64_t d4[4] = {1, 2, 4, 4};
    amp_tensor *x = rand_of(AMP_F32, 4, d4, 3);
    amp_tensor *sz = i64_vec(4, (const int64_t[]){1, 2, 3, 3});
    amp_tensor *roi6 = f32_vec(6, (const double[]){0, 0, 0, 1, 1, 1});
    amp_tensor *roinan = f32_vec(8, (const double[]){0, 0, NAN, 0, 1, 1, 1, 1});
    amp_tensor *in[4] = {x, NULL, NULL, sz};
    amp_test_node *t = rz(19, "linear");
    tn_str(t, "coordinate_transformation_mode", "tf_crop_and_resize");
    expect(t, 4, in, AMP_ERR_INVALID_GRAPH, "tf_crop_and_resize without roi");
    in[1] = roi6;
    t = rz(19, "linear");
    tn_str(t, "coordinate_transformation_mode", "tf_crop_and_resize");
    expect(t, 4, in, AMP_ERR_SHAPE, "roi of 6 values for rank 4");
    in[1] = roinan;
    t = rz(19, "linear");
    tn_str(t, "coordinate_transformation_mode", "tf_crop_and_resize");
    expect(t, 4, in, AMP_ERR_INVALID_ARG, "roi not finite");
    /* roi is ignored by the other transforms */
    in[1] = roi6;
    amp_tensor *y = NULL;
    amp_test_node *ok = rz(19, "linear");
    cr_assert_eq(tn_run(ok, 4, in, 1, &y), AMP_OK, "%s", amp_context_last_error(ctx));
    amp_tensor_destroy(y);
    tn_free(ok);
    /* X of rank 0, and an empty axis resized to a non-empty one */
    amp_tensor *s0 = rand_of(AMP_F32, 0, NULL, 4), *sc0 = empty_f32();
    amp_tensor *in0[3] = {s0, NULL, sc0};
    expect(rz(19, NULL), 3, in0, AMP_ERR_SHAPE, "rank 0");
    const int64_t de[4] = {1, 2, 0, 4};
    amp_tensor *xe = rand_of(AMP_F32, 4, de, 5);
    amp_tensor *ine[4] = {xe, NULL, NULL, sz};
    expect(rz(19, "linear"), 4, ine, AMP_ERR_SHAPE, "empty axis to size 3");
    amp_tensor *all[] = {x, sz, roi6, roinan, s0, sc0, xe};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) amp_tensor_destroy(all[i]);
}

/* scales and sizes decide the output shape: unknown while planning, they are refused; roi does
 * not, so tf_crop_and_resize plans with a roi only the kernel reads. */
Test(resize_bad, data_dependent_scales) {
    const int64_t d4[4] = {1, 2, 4, 4};
    amp_tensor *x = rand_of(AMP_F32, 4, d4, 6), *sc = f32_vec(4, (const double[]){1, 1, 2, 2});
    amp_tensor *roi = f32_vec(8, (const double[]){0, 0, 0, 0, 1, 1, 1, 1});
    amp_test_node *t = rz(19, "linear");
    tn_str(t, "coordinate_transformation_mode", "tf_crop_and_resize");
    amp_tinfo ti[3], to;
    memset(ti, 0, sizeof ti);
    memset(&to, 0, sizeof to);
    const amp_tensor *ts[3] = {x, roi, sc};
    const amp_tinfo *pin[3] = {&ti[0], &ti[1], &ti[2]};
    for (int i = 0; i < 3; i++) {
        ti[i].dtype = ts[i]->dtype;
        ti[i].rank = ts[i]->rank;
        memcpy(ti[i].dims, ts[i]->dims, sizeof ti[i].dims);
    }
    amp_tinfo *pout[1] = {&to};
    int ids_in[3] = {0, 1, 2}, ids_out[1] = {0};
    t->node.inputs = ids_in;
    t->node.n_inputs = 3;
    t->node.outputs = ids_out;
    t->node.n_outputs = 1;
    amp_infer c = {.ctx = ctx, .n = &t->node, .opset = 19, .nin = 3, .nout = 1, .in = pin, .out = pout};
    cr_assert_eq(amp_op_table[t->node.op].infer(&c), AMP_ERR_UNSUPPORTED);
    cr_assert(strstr(amp_context_last_error(ctx), "data-dependent"), "%s", amp_context_last_error(ctx));
    ti[2].value = sc;
    cr_assert_eq(amp_op_table[t->node.op].infer(&c), AMP_OK, "%s", amp_context_last_error(ctx));
    cr_assert_eq(to.dims[3], 8);
    tn_free(t);
    amp_tensor_destroy(x);
    amp_tensor_destroy(sc);
    amp_tensor_destroy(roi);
}

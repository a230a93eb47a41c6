/* backends/cpu/vmath.c: every function against double-precision libm over every 1024th float
 * bit pattern plus edge values, on every dispatch path the CPU has (forced in turn); the special
 * values against libm's f32 functions bit for bit; lengths and in-place runs. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "backends/cpu/vmath.h"
#include "backends/elementwise.h"

typedef void (*vfn)(const float *, float *, int64_t);

static double ref_sigmoid(double x) { return 1.0 / (1.0 + exp(-x)); }
static double ref_gelu(double x) { return 0.5 * x * erfc(-x * 0.70710678118654752); }
static double gelu_tanh_arg(double x) { return 1.5957691216057307 * (x + 0.044715 * x * x * x); }
/* 0.5 x (1 + tanh(v)) as x sigmoid(2 v): the same value without double's cancellation */
static double ref_gelu_tanh(double x) { return x * ref_sigmoid(gelu_tanh_arg(x)); }
static double ref_softplus(double x) { return (x > 0 ? x : 0) + log1p(exp(-fabs(x))); }
static double ref_mish(double x) { return x * tanh(ref_softplus(x)); }

typedef struct vcase {
    const char *name;
    vfn f;
    double (*ref)(double);
    float (*libm)(float); /* the special values must equal these */
    double max_ulp;
} vcase;

static float sigmoidf_libm(float x) { return 1.0f / (1.0f + expf(-x)); }
/* GELU has no libm function: its special values are those of the scalar forms the kernels used */
static float gelu_scalar(float x) { return amp_gelu_f(x); }
static float gelu_tanh_scalar(float x) { return amp_gelu_tanh_f(x); }
static float softplus_scalar(float x) { return amp_softplus_f(x); }
static float mish_scalar(float x) { return amp_mish_f(x); }

static const vcase cases[] = {
    {"exp", amp_vexpf, exp, expf, 4},
    {"log", amp_vlogf, log, logf, 4},
    {"tanh", amp_vtanhf, tanh, tanhf, 4},
    {"erf", amp_verff, erf, erff, 4},
    {"sigmoid", amp_vsigmoidf, ref_sigmoid, sigmoidf_libm, 4},
    /* eight: the tail x erfc(|x| / sqrt 2) / 2 is a product of five rounded parts */
    {"gelu", amp_vgeluf, ref_gelu, gelu_scalar, 8},
    /* plus the rounding of the tanh's cubic argument, below */
    {"gelu_tanh", amp_vgelu_tanhf, ref_gelu_tanh, gelu_tanh_scalar, 4},
    {"softplus", amp_vsoftplusf, ref_softplus, softplus_scalar, 4},
    /* six: tanh of the rounded softplus, times x */
    {"mish", amp_vmishf, ref_mish, mish_scalar, 6},
    {"expm1", amp_vexpm1f, expm1, expm1f, 4},
};

/* the last place of ref's f32 neighbourhood (2^-149 at least) */
static double ulp_of(double ref) {
    int e;
    frexp(ref, &e);
    if (e - 24 < -149) e = -149 + 24;
    return ldexp(1.0, e - 24);
}

/* |got - ref| in those units */
static double ulps(float got, double ref) {
    if (isnan(ref)) return isnan(got) ? 0 : INFINITY;
    if (isnan(got)) return INFINITY;
    if (isinf(got)) return (float)ref == got ? 0 : INFINITY;
    return fabs((double)got - ref) / ulp_of(ref);
}

static float from_bits(uint32_t u) {
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static uint32_t to_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static const float edges[] = {0.0f, -0.0f, INFINITY, -INFINITY, NAN, -NAN, 0x1p-149f, -0x1p-149f, 0x1p-127f,
                              -0x1p-127f, 0x1.fffffcp-127f, 0x1p-126f, 0x1.fffffep127f, -0x1.fffffep127f, 1.0f,
                              -1.0f, 0.5f, 2.0f, 88.72283f, 88.72284f, 88.7229f, 89.0f, -87.33654f, -87.5f,
                              -103.2789f, -103.9720f, -104.0f, -150.0f, 0.625f, 0.62499994f, 0.921875f,
                              0.92187494f, -1.3037269f, -1.303727f, 3.92f, 4.0f, 9.0f, 9.01f, 10.0f, 20.0f,
                              -20.0f, -20.000002f, 0x1p-20f, -0x1p-20f, 0.70710677f, 1.4142135f};
#define NEDGE ((int64_t)(sizeof edges / sizeof edges[0]))

/* every 1024th bit pattern, then the edges */
static float *sweep(int64_t *n) {
    const int64_t m = ((int64_t)1 << 22) + NEDGE;
    float *x = malloc(sizeof(float) * (size_t)m);
    cr_assert_not_null(x);
    for (int64_t i = 0; i < ((int64_t)1 << 22); i++) x[i] = from_bits((uint32_t)(i << 10) | (uint32_t)(i & 1023));
    memcpy(x + ((int64_t)1 << 22), edges, sizeof edges);
    *n = m;
    return x;
}

/* the paths this CPU runs; the portable one always */
static int paths(amp_vmath_isa *out) {
    int k = 0;
    for (int i = 0; i < AMP_VMATH_NISA; i++) {
        if (amp_vmath_force((amp_vmath_isa)i) == 0) out[k++] = (amp_vmath_isa)i;
        else cr_log_warn("vmath: this CPU has no %s path; not tested here", amp_vmath_isa_name((amp_vmath_isa)i));
    }
    amp_vmath_force(AMP_VMATH_AUTO);
    return k;
}

/* the special values as libm's f32 function gives them, bit for bit (NaN: any NaN) */
static void check_special(const vcase *c) {
    const float sp[] = {0.0f, -0.0f, INFINITY, -INFINITY, NAN, 0x1p-149f, -0x1p-149f, 88.7229f,
                        -104.0f, -150.0f, 1.0f, 20.0f, -20.0f};
    for (size_t i = 0; i < sizeof sp / sizeof sp[0]; i++) {
        float got;
        c->f(&sp[i], &got, 1);
        const float want = c->libm(sp[i]);
        if (isnan(want)) cr_assert(isnan(got), "%s(%a): %a, libm NaN", c->name, (double)sp[i], (double)got);
        else if (want == 0 || isinf(want) || fabsf(want) == 1.0f)
            cr_assert_eq(to_bits(got), to_bits(want), "%s(%a): %a, libm %a", c->name, (double)sp[i], (double)got,
                         (double)want);
    }
}

static void check_case(const vcase *c) {
    int64_t n;
    float *x = sweep(&n), *y = malloc(sizeof(float) * (size_t)n);
    cr_assert_not_null(y);
    amp_vmath_isa isa[AMP_VMATH_NISA];
    const int np = paths(isa);
    for (int p = 0; p < np; p++) {
        cr_assert_eq(amp_vmath_force(isa[p]), 0);
        cr_assert_eq(amp_vmath_active(), isa[p]);
        for (int64_t i = 0; i < n; i++) y[i] = -12345.0f; /* stale values must not survive */
        c->f(x, y, n);
        double worst = 0;
        float at = 0;
        int64_t finite = 0;
        for (int64_t i = 0; i < n; i++) {
            const double r = c->ref((double)x[i]);
            double bound = c->max_ulp;
            /* GeluTanh: the cubic's argument v carries about 3 roundings, each |v| ulp of the
             * result's relative error in the negative tail (d ln sigmoid(2v) / d ln v ~ 2|v|) */
            if (c->ref == ref_gelu_tanh && isfinite(x[i])) bound += 6.0 * fabs(gelu_tanh_arg(x[i]));
            /* Mish below x = -87.3: softplus(x) ~ e^x is a denormal there (as in the scalar form),
             * its absolute error up to 2^-150, times x */
            if (c->ref == ref_mish && isfinite(r) && r != 0) bound += fabs(x[i]) * 0x1p-150 / ulp_of(r);
            const double u = ulps(y[i], r);
            if (isfinite(r) && r != 0) finite++;
            if (u > bound)
                cr_assert_fail("%s (%s): x = %a gives %a, exact %.17g (%.2f ulp, bound %.2f)", c->name,
                               amp_vmath_isa_name(isa[p]), (double)x[i], (double)y[i], r, u, bound);
            if (u > worst && bound <= c->max_ulp + 1.0) { /* GeluTanh: where |v| <= 1/6 */
                worst = u;
                at = x[i];
            }
        }
        /* the sweep is not mostly zeros or saturated values */
        cr_assert_gt(finite, n / 4, "%s: only %lld finite nonzero results", c->name, (long long)finite);
        cr_log_info("vmath %s (%s): max %.3f ulp at %a", c->name, amp_vmath_isa_name(isa[p]), worst, (double)at);
        check_special(c);
    }
    amp_vmath_force(AMP_VMATH_AUTO);
    free(x);
    free(y);
}

Test(vmath, exp_every_path) { check_case(&cases[0]); }
Test(vmath, log_every_path) { check_case(&cases[1]); }
Test(vmath, tanh_every_path) { check_case(&cases[2]); }
Test(vmath, erf_every_path) { check_case(&cases[3]); }
Test(vmath, sigmoid_every_path) { check_case(&cases[4]); }
Test(vmath, gelu_every_path) { check_case(&cases[5]); }
Test(vmath, gelu_tanh_every_path) { check_case(&cases[6]); }
Test(vmath, softplus_every_path) { check_case(&cases[7]); }
Test(vmath, mish_every_path) { check_case(&cases[8]); }
Test(vmath, expm1_every_path) { check_case(&cases[9]); }

/* Each length gives, element for element, the bits of one long run (the vector body, its tail
 * and the remainder loop agree), in place as well; length 0 writes nothing. */
Test(vmath, lengths_and_in_place) {
    const int64_t big = 1000003, lens[] = {0, 1, 7, 17, 1000003};
    float *x = malloc(sizeof(float) * (size_t)big), *want = malloc(sizeof(float) * (size_t)big),
          *y = malloc(sizeof(float) * (size_t)(big + 1));
    cr_assert(x && want && y);
    /* a spread of magnitudes and both signs, none zero */
    for (int64_t i = 0; i < big; i++) x[i] = (float)((i % 2 ? -1.0 : 1.0) * (0.001 + fmod(i * 0.618034, 1.0) * 12.0));
    amp_vmath_isa isa[AMP_VMATH_NISA];
    const int np = paths(isa);
    for (int p = 0; p < np; p++) {
        amp_vmath_force(isa[p]);
        for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
            cases[c].f(x, want, big);
            for (size_t l = 0; l < sizeof lens / sizeof lens[0]; l++) {
                const int64_t n = lens[l];
                for (int64_t off = 0; off < 3 && off + n <= big; off++) {
                    y[n] = 7.0f;
                    cases[c].f(x + off, y, n);
                    cr_assert_eq(y[n], 7.0f, "%s wrote past %lld", cases[c].name, (long long)n);
                    cr_assert(!memcmp(y, want + off, sizeof(float) * (size_t)n), "%s: length %lld at %lld (%s)",
                              cases[c].name, (long long)n, (long long)off, amp_vmath_isa_name(isa[p]));
                    memcpy(y, x + off, sizeof(float) * (size_t)n);
                    cases[c].f(y, y, n);
                    cr_assert(!memcmp(y, want + off, sizeof(float) * (size_t)n), "%s in place: length %lld (%s)",
                              cases[c].name, (long long)n, amp_vmath_isa_name(isa[p]));
                }
            }
        }
    }
    amp_vmath_force(AMP_VMATH_AUTO);
    free(x);
    free(want);
    free(y);
}

/* e^(x - sub) with its sum, as softmax uses it: the values equal exp's on the differences and
 * the sum is theirs. */
Test(vmath, expsub_values_and_sum) {
    const int64_t n = 4099;
    float *x = malloc(sizeof(float) * n), *y = malloc(sizeof(float) * n), *d = malloc(sizeof(float) * n),
          *e = malloc(sizeof(float) * n);
    cr_assert(x && y && d && e);
    for (int64_t i = 0; i < n; i++) x[i] = (float)(sin(i * 0.37) * 30.0);
    float mx = -INFINITY;
    for (int64_t i = 0; i < n; i++) mx = x[i] > mx ? x[i] : mx;
    for (int64_t i = 0; i < n; i++) d[i] = x[i] - mx;
    amp_vmath_isa isa[AMP_VMATH_NISA];
    const int np = paths(isa);
    for (int p = 0; p < np; p++) {
        amp_vmath_force(isa[p]);
        const double s = amp_vexpsubf(x, mx, y, n);
        amp_vexpf(d, e, n);
        cr_assert(!memcmp(y, e, sizeof(float) * n));
        double ref = 0, sum = 0;
        for (int64_t i = 0; i < n; i++) {
            ref += exp((double)d[i]);
            sum += e[i];
        }
        cr_assert(ref > 1.0);
        cr_assert(fabs(s - ref) <= 1e-6 * ref, "sum %.17g, exact %.17g", s, ref);
        cr_assert(fabs(s - sum) <= 1e-12 * ref);
    }
    /* all -inf (a fully masked row): NaN, as exp(-inf - -inf) */
    const float ninf[3] = {-INFINITY, -INFINITY, -INFINITY};
    cr_assert(isnan(amp_vexpsubf(ninf, -INFINITY, y, 3)));
    amp_vmath_force(AMP_VMATH_AUTO);
    free(x);
    free(y);
    free(d);
    free(e);
}

Test(vmath, dispatch) {
    const amp_vmath_isa best = amp_vmath_active();
    cr_assert(best >= AMP_VMATH_SCALAR && best < AMP_VMATH_NISA);
    cr_assert_eq(amp_vmath_force(AMP_VMATH_SCALAR), 0);
    cr_assert_eq(amp_vmath_active(), AMP_VMATH_SCALAR);
    cr_assert_eq(amp_vmath_force(AMP_VMATH_NISA), -1);
    cr_assert_eq(amp_vmath_active(), AMP_VMATH_SCALAR);
    cr_assert_eq(amp_vmath_force(AMP_VMATH_AUTO), 0);
    cr_assert_eq(amp_vmath_active(), best);
    /* nothing above the best path is accepted */
    for (int i = best + 1; i < AMP_VMATH_NISA; i++) cr_assert_eq(amp_vmath_force((amp_vmath_isa)i), -1);
    cr_assert_eq(amp_vmath_active(), best);
}

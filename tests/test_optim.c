/* The optimizer and loss-scaling ops (UnscaleCheck, SGD, AdamW, LossScaleUpdate) against
 * references written here in double with torch's semantics (torch.optim.SGD, torch.optim.AdamW,
 * clip_grad_norm_, GradScaler). The references read the values the kernels see (16-bit
 * tensors are rounded on creation) and round their state to the stored dtype after every
 * step, as the kernels must; what is left is f32 versus double arithmetic inside a step, plus
 * the odd state element whose rounding falls the other way. */
#include <criterion/criterion.h>
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "backends/cpu/cpu.h"
#include "backends/cpu/kernels.h"
#include "testutil.h"

#define TRAIN_DOMAIN "ai.amprt.training"

static amp_context *ctx;
static void setup(void) { cr_assert_eq(amp_context_create(NULL, &ctx), AMP_OK); }
static void teardown(void) { amp_context_destroy(ctx); }
TestSuite(optim, .init = setup, .fini = teardown);

static amp_tensor *scalar(amp_dtype dt, double v) {
    const int64_t one = 1;
    return tt_make(ctx, dt, 1, &one, &v);
}

static amp_tensor *zeros(amp_dtype dt, int rank, const int64_t *dims) {
    int64_t n = 1;
    for (int i = 0; i < rank; i++) n *= dims[i];
    double *z = calloc((size_t)(n ? n : 1), sizeof(double));
    amp_tensor *t = tt_make(ctx, dt, rank, dims, z);
    free(z);
    return t;
}

static double *vals(const amp_tensor *t) {
    int64_t n = amp_tensor_numel(t);
    double *v = malloc(sizeof(double) * (size_t)(n ? n : 1));
    for (int64_t i = 0; i < n; i++) v[i] = tt_get(t, i);
    return v;
}

/* x as stored in dt (the kernels compute in f32 and round once on store) */
static double stored(amp_dtype dt, double x) {
    const float f = (float)x;
    switch (dt) {
    case AMP_F16: return amp_f16_to_f32(amp_f32_to_f16(f));
    case AMP_BF16: return amp_bf16_to_f32(amp_f32_to_bf16(f));
    case AMP_F64: return x;
    default: return f;
    }
}

static amp_tensor *clone(const amp_tensor *t) {
    amp_tensor *c = NULL;
    cr_assert_eq(amp_tensor_clone(ctx, t, &c), AMP_OK);
    return c;
}

static int same_bytes(const amp_tensor *a, const amp_tensor *b) {
    return a->dtype == b->dtype && a->nbytes == b->nbytes && memcmp(a->data, b->data, a->nbytes) == 0;
}

/* sum((got - base) - (ref - base))^2 / sum((ref - base)^2): the error of the change a run made,
 * relative to the change itself, so a small update is not hidden behind a large parameter */
static double delta_nse(const amp_tensor *got, const double *ref, const double *base) {
    double num = 0, den = 0;
    for (int64_t i = 0; i < got->numel; i++) {
        const double g = tt_get(got, i) - base[i], r = ref[i] - base[i];
        if (!isfinite(g)) return INFINITY;
        num += (g - r) * (g - r);
        den += r * r;
    }
    if (den == 0) return num == 0 ? 0 : INFINITY;
    return num / den;
}

static double nse(const amp_tensor *got, const double *ref) {
    double num = 0, den = 0;
    for (int64_t i = 0; i < got->numel; i++) {
        const double g = tt_get(got, i);
        if (!isfinite(g)) return INFINITY;
        num += (g - ref[i]) * (g - ref[i]);
        den += ref[i] * ref[i];
    }
    if (den == 0) return num == 0 ? 0 : INFINITY;
    return num / den;
}

/* =========================================================================================== */
/* the double-precision reference optimizer                                                    */

#define NP 3
static const int RANKS[NP] = {2, 1, 3};
static const int64_t DIMS[NP][3] = {{3, 5}, {7}, {2, 3, 4}};

typedef struct opt_case {
    const char *name;
    int adamw;
    int defaults; /* AdamW: set only n, so the attribute defaults apply */
    float lr, momentum, dampening, wd, max_norm, beta1, beta2, eps;
    int nesterov;
    amp_dtype wdt, gdt, mdt;
    float scale;      /* loss scale; 0: omit the found_inf and scale inputs */
    float start_step; /* > 0: resume with random moments */
    int steps;
    int skip_at;      /* 1-based step whose gradients hold an inf and found_inf is set; 0: none */
} opt_case;

typedef struct ref_state {
    int64_t numel[NP];
    double *w[NP], *m[NP], *v[NP];
    double step;
} ref_state;

static int n_state_of(const opt_case *c) { return c->adamw ? 2 : c->momentum != 0 ? 1 : 0; }

/* One step on the reference; g holds the stored (scaled) gradients. Returns the global norm of
 * the unscaled gradients. */
static double ref_step(const opt_case *c, ref_state *s, double *const *g, double scale) {
    const double inv = 1.0 / scale;
    double sq = 0;
    for (int p = 0; p < NP; p++)
        for (int64_t j = 0; j < s->numel[p]; j++) sq += (g[p][j] * inv) * (g[p][j] * inv);
    const double total = sqrt(sq);
    const double clip = c->max_norm > 0 ? fmin(1.0, (double)c->max_norm / (total + 1e-6)) : 1.0;
    const double lr = c->lr, wd = c->defaults ? 0.01f : c->wd;
    if (c->adamw) {
        const double b1 = c->defaults ? 0.9f : c->beta1, b2 = c->defaults ? 0.999f : c->beta2;
        const double eps = c->defaults ? 1e-8f : c->eps;
        s->step += 1;
        const double bc1 = 1 - pow(b1, s->step), bc2 = 1 - pow(b2, s->step);
        for (int p = 0; p < NP; p++)
            for (int64_t j = 0; j < s->numel[p]; j++) {
                const double gg = g[p][j] * inv * clip;
                double w = s->w[p][j] * (1 - lr * wd);
                const double m = b1 * s->m[p][j] + (1 - b1) * gg;
                const double v = b2 * s->v[p][j] + (1 - b2) * gg * gg;
                w -= lr / bc1 * m / (sqrt(v) / sqrt(bc2) + eps);
                s->w[p][j] = stored(c->wdt, w);
                s->m[p][j] = stored(c->mdt, m);
                s->v[p][j] = stored(c->mdt, v);
            }
    } else {
        const bool first = s->step == 0;
        for (int p = 0; p < NP; p++)
            for (int64_t j = 0; j < s->numel[p]; j++) {
                const double w = s->w[p][j];
                double d = g[p][j] * inv * clip + wd * w;
                if (c->momentum != 0) {
                    const double b = first ? d : c->momentum * s->m[p][j] + (1 - (double)c->dampening) * d;
                    s->m[p][j] = stored(c->mdt, b);
                    d = c->nesterov ? d + c->momentum * b : b;
                }
                s->w[p][j] = stored(c->wdt, w - lr * d);
            }
        s->step += 1;
    }
    return total;
}

static void set_attrs(amp_test_node *t, const opt_case *c) {
    tn_int(t, "n", NP);
    if (c->adamw) {
        if (c->defaults) return;
        tn_float(t, "beta1", c->beta1);
        tn_float(t, "beta2", c->beta2);
        tn_float(t, "epsilon", c->eps);
    } else {
        tn_float(t, "momentum", c->momentum);
        tn_float(t, "dampening", c->dampening);
        tn_int(t, "nesterov", c->nesterov);
    }
    tn_float(t, "weight_decay", c->wd);
    tn_float(t, "max_grad_norm", c->max_norm);
}

/* normalised squared error allowed for the change of W (and for M, V) stored in dt: state
 * differs from the reference only where f32 arithmetic rounds a stored value the other way (one
 * ulp of dt on a few elements; a flip feeds the next steps). f32: ~1e-7 relative on a change
 * of a few percent of W; 16-bit: one ulp (2^-11, 2^-8) on one element in ~50. */
static double tol(amp_dtype dt) { return dt == AMP_F32 ? 1e-9 : dt == AMP_F16 ? 1e-5 : 1e-3; }

/* 16-bit state must be the reference rounded to nearest even: at most one element, plus one
 * in 20, one ulp away (where f32 and double arithmetic straddle a rounding boundary), none further. A
 * store that truncated, or skipped the rounding, would miss on about half the elements. */
static void expect_16bit_rounding(const amp_tensor *got, const double *ref, const char *name, const char *what, int p) {
    if (got->dtype != AMP_F16 && got->dtype != AMP_BF16) return;
    int64_t off = 0;
    for (int64_t i = 0; i < got->numel; i++) {
        const uint16_t a = ((const uint16_t *)got->data)[i];
        const uint16_t b = got->dtype == AMP_F16 ? amp_f32_to_f16((float)ref[i]) : amp_f32_to_bf16((float)ref[i]);
        /* sign-magnitude to a monotonic integer line, so neighbours differ by 1 */
        const int32_t ia = (a & 0x8000) ? -(int32_t)(a & 0x7fff) : (int32_t)a;
        const int32_t ib = (b & 0x8000) ? -(int32_t)(b & 0x7fff) : (int32_t)b;
        const int32_t d = ia > ib ? ia - ib : ib - ia;
        cr_assert(d <= 1, "%s: %s%d[%lld] is %d ulps from the reference", name, what, p, (long long)i, d);
        off += d;
    }
    cr_assert(off <= 1 + got->numel / 20, "%s: %s%d has %lld of %lld elements one ulp off", name, what, p, (long long)off,
              (long long)got->numel);
}

static void run_case(const opt_case *c) {
    const int ns = n_state_of(c);
    const double gscale = c->scale > 0 ? c->scale : 1.0;
    uint64_t seed = 1000;
    amp_tensor *W[NP], *M[NP] = {0}, *V[NP] = {0};
    double *w0[NP];
    ref_state rs = {.step = c->start_step};
    for (int p = 0; p < NP; p++) {
        W[p] = tt_rand(ctx, c->wdt, RANKS[p], DIMS[p], -1, 1, seed++);
        rs.numel[p] = amp_tensor_numel(W[p]);
        if (ns >= 1) {
            /* SGD's first step must ignore whatever the buffer holds: give it noise */
            const bool noise = c->start_step > 0 || !c->adamw;
            M[p] = noise ? tt_rand(ctx, c->mdt, RANKS[p], DIMS[p], -0.5, 0.5, seed++) : zeros(c->mdt, RANKS[p], DIMS[p]);
        }
        if (ns >= 2)
            V[p] = c->start_step > 0 ? tt_rand(ctx, c->mdt, RANKS[p], DIMS[p], 0, 0.3, seed++)
                                     : zeros(c->mdt, RANKS[p], DIMS[p]);
        w0[p] = vals(W[p]);
        rs.w[p] = vals(W[p]);
        rs.m[p] = M[p] ? vals(M[p]) : NULL;
        rs.v[p] = V[p] ? vals(V[p]) : NULL;
    }
    amp_tensor *lr = scalar(AMP_F32, c->lr), *step = scalar(AMP_F32, c->start_step);
    amp_tensor *found = c->scale > 0 ? scalar(AMP_BOOL, 0) : NULL;
    amp_tensor *sc = c->scale > 0 ? scalar(AMP_F32, c->scale) : NULL;

    for (int st = 1; st <= c->steps; st++) {
        const bool skip = st == c->skip_at;
        amp_tensor *G[NP];
        double *gv[NP];
        for (int p = 0; p < NP; p++) {
            G[p] = tt_rand(ctx, c->gdt, RANKS[p], DIMS[p], -gscale, gscale, seed++);
            if (skip && p == 1) amp_st(c->gdt, G[p]->data, 3, INFINITY);
            gv[p] = vals(G[p]);
        }
        if (found) amp_st(AMP_BOOL, found->data, 0, skip ? 1 : 0);
        amp_tensor *before[1 + 3 * NP] = {0};
        if (skip) {
            before[0] = clone(step);
            for (int p = 0; p < NP; p++) {
                before[1 + p] = clone(W[p]);
                if (M[p]) before[1 + NP + p] = clone(M[p]);
                if (V[p]) before[1 + 2 * NP + p] = clone(V[p]);
            }
        }
        const double ref_norm = skip ? INFINITY : ref_step(c, &rs, gv, gscale);

        amp_tensor *in[4 + 4 * NP];
        int nin = 0;
        in[nin++] = lr;
        in[nin++] = step;
        in[nin++] = found;
        in[nin++] = sc;
        for (int p = 0; p < NP; p++) in[nin++] = W[p];
        for (int p = 0; p < NP; p++) in[nin++] = G[p];
        for (int p = 0; p < NP && ns >= 1; p++) in[nin++] = M[p];
        for (int p = 0; p < NP && ns >= 2; p++) in[nin++] = V[p];
        amp_test_node *t = tn_train(ctx, c->adamw ? "AdamW" : "SGD");
        set_attrs(t, c);
        amp_tensor *out = NULL;
        amp_status s = tn_run(t, nin, in, 1, &out);
        cr_assert_eq(s, AMP_OK, "%s step %d: %s", c->name, st, amp_context_last_error(ctx));
        cr_assert_eq(amp_tensor_dtype(out), AMP_F32);
        cr_assert_eq(amp_tensor_numel(out), 1);
        const double norm = tt_get(out, 0);
        if (skip) {
            cr_assert(isinf(norm) && norm > 0, "%s: a skipped step reports +inf, got %g", c->name, norm);
            cr_assert(same_bytes(step, before[0]), "%s: a skipped step changed the step count", c->name);
            for (int p = 0; p < NP; p++) {
                cr_assert(same_bytes(W[p], before[1 + p]), "%s: a skipped step changed W%d", c->name, p);
                if (M[p]) cr_assert(same_bytes(M[p], before[1 + NP + p]), "%s: a skipped step changed M%d", c->name, p);
                if (V[p])
                    cr_assert(same_bytes(V[p], before[1 + 2 * NP + p]), "%s: a skipped step changed V%d", c->name, p);
            }
        } else {
            cr_assert(fabs(norm - ref_norm) <= 1e-6 * ref_norm, "%s step %d: grad_norm %.9g, reference %.9g", c->name,
                      st, norm, ref_norm);
        }
        cr_assert_eq(tt_get(step, 0), rs.step, "%s step %d: step count %g, expected %g", c->name, st, tt_get(step, 0),
                     rs.step);
        for (int i = 0; i < 1 + 3 * NP; i++) amp_tensor_destroy(before[i]);
        amp_tensor_destroy(out);
        tn_free(t);
        for (int p = 0; p < NP; p++) {
            amp_tensor_destroy(G[p]);
            free(gv[p]);
        }
    }

    for (int p = 0; p < NP; p++) {
        const double e = delta_nse(W[p], rs.w[p], w0[p]);
        cr_assert(e <= tol(c->wdt), "%s: W%d change nse %g > %g", c->name, p, e, tol(c->wdt));
        expect_16bit_rounding(W[p], rs.w[p], c->name, "W", p);
        if (M[p]) expect_16bit_rounding(M[p], rs.m[p], c->name, "M", p);
        if (V[p]) expect_16bit_rounding(V[p], rs.v[p], c->name, "V", p);
        if (M[p]) {
            const double em = nse(M[p], rs.m[p]);
            cr_assert(em <= tol(c->mdt), "%s: M%d nse %g > %g", c->name, p, em, tol(c->mdt));
        }
        if (V[p]) {
            const double ev = nse(V[p], rs.v[p]);
            cr_assert(ev <= tol(c->mdt), "%s: V%d nse %g > %g", c->name, p, ev, tol(c->mdt));
        }
        amp_tensor_destroy(W[p]);
        amp_tensor_destroy(M[p]);
        amp_tensor_destroy(V[p]);
        free(w0[p]);
        free(rs.w[p]);
        free(rs.m[p]);
        free(rs.v[p]);
    }
    amp_tensor_destroy(lr);
    amp_tensor_destroy(step);
    amp_tensor_destroy(found);
    amp_tensor_destroy(sc);
}

/* =========================================================================================== */
/* SGD                                                                                         */

Test(optim, sgd_plain_and_weight_decay) {
    const opt_case cs[] = {
        {.name = "plain", .lr = 0.1f, .wdt = AMP_F32, .gdt = AMP_F32, .mdt = AMP_F32, .steps = 4},
        {.name = "weight decay", .lr = 0.1f, .wd = 0.05f, .wdt = AMP_F32, .gdt = AMP_F32, .mdt = AMP_F32,
         .scale = 1, .steps = 4},
    };
    for (size_t i = 0; i < sizeof cs / sizeof cs[0]; i++) run_case(&cs[i]);
}

Test(optim, sgd_momentum_first_step_and_resume) {
    const opt_case cs[] = {
        /* step 0: the buffer holds noise and must be replaced by the gradient */
        {.name = "momentum from step 0", .lr = 0.1f, .momentum = 0.9f, .wd = 0.01f, .wdt = AMP_F32, .gdt = AMP_F32,
         .mdt = AMP_F32, .steps = 5},
        /* dampening applies from the second step on, never to the first */
        {.name = "dampening from step 0", .lr = 0.1f, .momentum = 0.8f, .dampening = 0.3f, .wdt = AMP_F32,
         .gdt = AMP_F32, .mdt = AMP_F32, .steps = 4},
        {.name = "dampening resumed", .lr = 0.1f, .momentum = 0.8f, .dampening = 0.3f, .wdt = AMP_F32,
         .gdt = AMP_F32, .mdt = AMP_F32, .start_step = 7, .steps = 3},
        {.name = "nesterov", .lr = 0.05f, .momentum = 0.9f, .nesterov = 1, .wd = 0.02f, .wdt = AMP_F32,
         .gdt = AMP_F32, .mdt = AMP_F32, .steps = 5},
    };
    for (size_t i = 0; i < sizeof cs / sizeof cs[0]; i++) run_case(&cs[i]);
}

Test(optim, sgd_clipping_on_and_off) {
    /* 46 gradient elements uniform in [-1, 1): a norm near 4, so 0.5 clips and 1000 does not */
    const opt_case cs[] = {
        {.name = "clip active", .lr = 0.1f, .momentum = 0.9f, .nesterov = 1, .wd = 0.05f, .max_norm = 0.5f,
         .wdt = AMP_F32, .gdt = AMP_F32, .mdt = AMP_F32, .scale = 1, .steps = 4},
        {.name = "clip inactive", .lr = 0.1f, .momentum = 0.9f, .max_norm = 1000, .wdt = AMP_F32, .gdt = AMP_F32,
         .mdt = AMP_F32, .scale = 1, .steps = 4},
        {.name = "clip, no momentum", .lr = 0.1f, .max_norm = 1.0f, .wdt = AMP_F32, .gdt = AMP_F32, .mdt = AMP_F32,
         .steps = 3},
    };
    for (size_t i = 0; i < sizeof cs / sizeof cs[0]; i++) run_case(&cs[i]);
}

Test(optim, sgd_unscales_16bit_gradients) {
    /* the normal mixed-precision case: f32 master weights, 16-bit gradients of loss * scale */
    const opt_case cs[] = {
        {.name = "f16 grads, scale 1024", .lr = 0.1f, .momentum = 0.9f, .wd = 0.01f, .max_norm = 2.0f,
         .wdt = AMP_F32, .gdt = AMP_F16, .mdt = AMP_F32, .scale = 1024, .steps = 4},
        {.name = "bf16 grads, scale 65536", .lr = 0.1f, .momentum = 0.9f, .wdt = AMP_F32, .gdt = AMP_BF16,
         .mdt = AMP_F32, .scale = 65536, .steps = 3},
        {.name = "scale below 1", .lr = 0.1f, .wdt = AMP_F32, .gdt = AMP_F32, .mdt = AMP_F32, .scale = 0.125f,
         .steps = 2},
    };
    for (size_t i = 0; i < sizeof cs / sizeof cs[0]; i++) run_case(&cs[i]);
}

Test(optim, sgd_16bit_parameters) {
    const opt_case cs[] = {
        {.name = "pure f16", .lr = 0.2f, .momentum = 0.9f, .wd = 0.01f, .wdt = AMP_F16, .gdt = AMP_F16,
         .mdt = AMP_F16, .scale = 8, .steps = 4},
        {.name = "pure bf16", .lr = 0.2f, .momentum = 0.9f, .wdt = AMP_BF16, .gdt = AMP_BF16, .mdt = AMP_BF16,
         .steps = 4},
        {.name = "f16 W, f32 momentum", .lr = 0.2f, .momentum = 0.9f, .nesterov = 1, .wdt = AMP_F16,
         .gdt = AMP_F32, .mdt = AMP_F32, .steps = 4},
    };
    for (size_t i = 0; i < sizeof cs / sizeof cs[0]; i++) run_case(&cs[i]);
}

Test(optim, sgd_skipped_steps_leave_state_identical) {
    const opt_case cs[] = {
        /* skipped first step: the step count stays 0, so the next step still creates the buffer */
        {.name = "skip first", .lr = 0.1f, .momentum = 0.9f, .wd = 0.01f, .wdt = AMP_F32, .gdt = AMP_F16,
         .mdt = AMP_F32, .scale = 512, .steps = 3, .skip_at = 1},
        {.name = "skip middle", .lr = 0.1f, .momentum = 0.9f, .dampening = 0.1f, .max_norm = 1, .wdt = AMP_F32,
         .gdt = AMP_F32, .mdt = AMP_F32, .scale = 4, .steps = 4, .skip_at = 2},
        {.name = "skip pure f16", .lr = 0.1f, .momentum = 0.9f, .wdt = AMP_F16, .gdt = AMP_F16, .mdt = AMP_F16,
         .scale = 4, .steps = 3, .skip_at = 3},
    };
    for (size_t i = 0; i < sizeof cs / sizeof cs[0]; i++) run_case(&cs[i]);
}

/* =========================================================================================== */
/* AdamW                                                                                       */

Test(optim, adamw_several_steps) {
    const opt_case cs[] = {
        {.name = "adamw defaults", .adamw = 1, .defaults = 1, .lr = 0.01f, .wdt = AMP_F32, .gdt = AMP_F32,
         .mdt = AMP_F32, .steps = 6},
        {.name = "adamw no decay", .adamw = 1, .lr = 0.01f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f,
         .wdt = AMP_F32, .gdt = AMP_F32, .mdt = AMP_F32, .scale = 1, .steps = 5},
        {.name = "adamw resumed, clipped", .adamw = 1, .lr = 0.02f, .beta1 = 0.8f, .beta2 = 0.99f, .eps = 1e-6f,
         .wd = 0.1f, .max_norm = 0.7f, .wdt = AMP_F32, .gdt = AMP_F32, .mdt = AMP_F32, .scale = 2, .start_step = 10,
         .steps = 4},
        {.name = "adamw clip inactive", .adamw = 1, .lr = 0.01f, .beta1 = 0.9f, .beta2 = 0.95f, .eps = 1e-8f,
         .wd = 0.01f, .max_norm = 100, .wdt = AMP_F32, .gdt = AMP_F32, .mdt = AMP_F32, .steps = 3},
    };
    for (size_t i = 0; i < sizeof cs / sizeof cs[0]; i++) run_case(&cs[i]);
}

Test(optim, adamw_16bit_gradients_and_parameters) {
    const opt_case cs[] = {
        {.name = "adamw f16 grads", .adamw = 1, .lr = 0.01f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f,
         .wd = 0.01f, .max_norm = 1.5f, .wdt = AMP_F32, .gdt = AMP_F16, .mdt = AMP_F32, .scale = 4096, .steps = 4},
        {.name = "adamw bf16 grads", .adamw = 1, .lr = 0.01f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f,
         .wdt = AMP_F32, .gdt = AMP_BF16, .mdt = AMP_F32, .steps = 4},
        {.name = "adamw pure f16", .adamw = 1, .lr = 0.05f, .beta1 = 0.9f, .beta2 = 0.99f, .eps = 1e-4f,
         .wd = 0.01f, .wdt = AMP_F16, .gdt = AMP_F16, .mdt = AMP_F16, .scale = 16, .start_step = 3, .steps = 3},
        {.name = "adamw pure bf16", .adamw = 1, .lr = 0.05f, .beta1 = 0.9f, .beta2 = 0.99f, .eps = 1e-4f,
         .wdt = AMP_BF16, .gdt = AMP_BF16, .mdt = AMP_BF16, .start_step = 3, .steps = 3},
    };
    for (size_t i = 0; i < sizeof cs / sizeof cs[0]; i++) run_case(&cs[i]);
}

Test(optim, adamw_skipped_steps_leave_state_identical) {
    const opt_case cs[] = {
        /* a skipped first step keeps step at 0: the next bias correction is step 1's */
        {.name = "adamw skip first", .adamw = 1, .lr = 0.01f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f,
         .wd = 0.01f, .wdt = AMP_F32, .gdt = AMP_F16, .mdt = AMP_F32, .scale = 1024, .steps = 3, .skip_at = 1},
        {.name = "adamw skip later", .adamw = 1, .lr = 0.01f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f,
         .max_norm = 1, .wdt = AMP_F32, .gdt = AMP_F32, .mdt = AMP_F32, .scale = 8, .start_step = 5, .steps = 4,
         .skip_at = 3},
    };
    for (size_t i = 0; i < sizeof cs / sizeof cs[0]; i++) run_case(&cs[i]);
}

/* =========================================================================================== */
/* determinism, and the effect FP32 master weights exist for                                   */

/* One step over large parameters with the given thread count; returns the output norm and
 * leaves the updated state in W and M. */
static double big_step(const char *op, int threads, amp_tensor **W, amp_tensor **G, amp_tensor **M, amp_tensor **V,
                        amp_tensor *step) {
    amp_tensor *lr = scalar(AMP_F32, 0.01), *found = scalar(AMP_BOOL, 0), *sc = scalar(AMP_F32, 256);
    const bool adamw = strcmp(op, "AdamW") == 0;
    amp_tensor *in[4 + 4 * 2] = {lr, step, found, sc, W[0], W[1], G[0], G[1], M[0], M[1]};
    int nin = 10;
    if (adamw) {
        in[nin++] = V[0];
        in[nin++] = V[1];
    }
    amp_test_node *t = tn_train(ctx, op);
    t->threads = threads;
    tn_int(t, "n", 2);
    if (!adamw) tn_float(t, "momentum", 0.9f);
    tn_float(t, "weight_decay", 0.01f);
    tn_float(t, "max_grad_norm", 50.0f);
    amp_tensor *out = NULL;
    cr_assert_eq(tn_run(t, nin, in, 1, &out), AMP_OK, "%s", amp_context_last_error(ctx));
    const double norm = tt_get(out, 0);
    amp_tensor_destroy(out);
    tn_free(t);
    amp_tensor_destroy(lr);
    amp_tensor_destroy(found);
    amp_tensor_destroy(sc);
    return norm;
}

Test(optim, results_do_not_depend_on_thread_count) {
    /* sizes past the parallel threshold and not multiples of the chunk size */
    const int64_t d0[2] = {301, 257}, d1[1] = {40961};
    const char *ops[2] = {"SGD", "AdamW"};
    for (int o = 0; o < 2; o++) {
        amp_tensor *W[2][2], *M[2][2], *V[2][2], *G[2], *step[2];
        for (int k = 0; k < 2; k++) {
            W[k][0] = tt_rand(ctx, AMP_F32, 2, d0, -1, 1, 1);
            W[k][1] = tt_rand(ctx, AMP_F32, 1, d1, -1, 1, 2);
            M[k][0] = tt_rand(ctx, AMP_F32, 2, d0, -0.1, 0.1, 3);
            M[k][1] = tt_rand(ctx, AMP_F32, 1, d1, -0.1, 0.1, 4);
            V[k][0] = tt_rand(ctx, AMP_F32, 2, d0, 0, 0.1, 5);
            V[k][1] = tt_rand(ctx, AMP_F32, 1, d1, 0, 0.1, 6);
            step[k] = scalar(AMP_F32, 2);
        }
        G[0] = tt_rand(ctx, AMP_F16, 2, d0, -200, 200, 7);
        G[1] = tt_rand(ctx, AMP_F16, 1, d1, -200, 200, 8);
        const double n1 = big_step(ops[o], 1, W[0], G, M[0], V[0], step[0]);
        const double n2 = big_step(ops[o], 2, W[1], G, M[1], V[1], step[1]);
        /* the norm is ~sqrt(110k / 3) * 200 / 256 ~ 150: clipping to 50 is active */
        cr_assert(n1 > 50, "%s: norm %g should exceed max_grad_norm", ops[o], n1);
        cr_assert_eq(memcmp(&n1, &n2, sizeof n1), 0, "%s: norm %.17g with 1 thread, %.17g with 2", ops[o], n1, n2);
        for (int p = 0; p < 2; p++) {
            cr_assert(same_bytes(W[0][p], W[1][p]), "%s: W%d differs between thread counts", ops[o], p);
            cr_assert(same_bytes(M[0][p], M[1][p]), "%s: M%d differs between thread counts", ops[o], p);
            cr_assert(same_bytes(V[0][p], V[1][p]), "%s: V%d differs between thread counts", ops[o], p);
        }
        /* and the reference norm, in double */
        double sq = 0;
        for (int p = 0; p < 2; p++)
            for (int64_t j = 0; j < G[p]->numel; j++) sq += (tt_get(G[p], j) / 256) * (tt_get(G[p], j) / 256);
        cr_assert(fabs(n1 - sqrt(sq)) <= 1e-6 * sqrt(sq), "%s: norm %g, reference %g", ops[o], n1, sqrt(sq));
        for (int k = 0; k < 2; k++) {
            for (int p = 0; p < 2; p++) {
                amp_tensor_destroy(W[k][p]);
                amp_tensor_destroy(M[k][p]);
                amp_tensor_destroy(V[k][p]);
            }
            amp_tensor_destroy(step[k]);
        }
        amp_tensor_destroy(G[0]);
        amp_tensor_destroy(G[1]);
    }
}

Test(optim, zero_size_parameter) {
    /* an empty parameter takes no chunk and no time; the other one is updated as usual */
    const int64_t d0[2] = {0, 3}, d1[1] = {2};
    amp_tensor *W0 = zeros(AMP_F32, 2, d0), *G0 = zeros(AMP_F16, 2, d0), *M0 = zeros(AMP_F32, 2, d0);
    amp_tensor *W1 = tt_make(ctx, AMP_F32, 1, d1, (double[]){1, 2}), *G1 = tt_make(ctx, AMP_F16, 1, d1, (double[]){6, 8});
    amp_tensor *M1 = zeros(AMP_F32, 1, d1), *V0 = zeros(AMP_F32, 2, d0), *V1 = zeros(AMP_F32, 1, d1);
    amp_tensor *lr = scalar(AMP_F32, 0.5), *step = scalar(AMP_F32, 0), *sc = scalar(AMP_F32, 2);
    amp_tensor *in[12] = {lr, step, NULL, sc, W0, W1, G0, G1, M0, M1, V0, V1};
    amp_test_node *t = tn_train(ctx, "SGD");
    tn_int(t, "n", 2);
    amp_tensor *out = NULL;
    cr_assert_eq(tn_run(t, 8, in, 1, &out), AMP_OK, "%s", amp_context_last_error(ctx));
    cr_assert_eq(tt_get(out, 0), 5.0, "norm of (3, 4) is 5, got %g", tt_get(out, 0));
    cr_assert_eq(tt_get(W1, 0), 1 - 0.5 * 3);
    cr_assert_eq(tt_get(W1, 1), 2 - 0.5 * 4);
    amp_tensor_destroy(out);
    tn_free(t);
    t = tn_train(ctx, "AdamW");
    tn_int(t, "n", 2);
    cr_assert_eq(tn_run(t, 12, in, 1, &out), AMP_OK, "%s", amp_context_last_error(ctx));
    cr_assert_eq(tt_get(out, 0), 5.0);
    cr_assert_eq(tt_get(step, 0), 2, "one SGD and one AdamW step");
    amp_tensor_destroy(out);
    tn_free(t);
    amp_tensor *all[] = {W0, G0, M0, W1, G1, M1, V0, V1, lr, step, sc};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) amp_tensor_destroy(all[i]);
}

/* Run `steps` updates of one parameter of dtype wdt, every element 1.0, gradient g; return
 * the parameter's final value. */
static double ten_updates(const char *op, amp_dtype wdt, float lr, double g, int steps) {
    const int64_t d = 16;
    double ones[16], gs[16];
    for (int i = 0; i < 16; i++) ones[i] = 1.0, gs[i] = g;
    amp_tensor *W = tt_make(ctx, wdt, 1, &d, ones), *G = tt_make(ctx, AMP_F32, 1, &d, gs);
    amp_tensor *M = zeros(wdt, 1, &d), *V = zeros(wdt, 1, &d);
    amp_tensor *lrt = scalar(AMP_F32, lr), *step = scalar(AMP_F32, 0);
    const bool adamw = strcmp(op, "AdamW") == 0;
    for (int s = 0; s < steps; s++) {
        amp_tensor *in[8] = {lrt, step, NULL, NULL, W, G, M, V};
        amp_test_node *t = tn_train(ctx, op);
        tn_int(t, "n", 1);
        tn_float(t, "weight_decay", 0.0f);
        amp_tensor *out = NULL;
        cr_assert_eq(tn_run(t, adamw ? 8 : 6, in, 1, &out), AMP_OK, "%s", amp_context_last_error(ctx));
        amp_tensor_destroy(out);
        tn_free(t);
    }
    const double w = tt_get(W, 0);
    for (int i = 1; i < 16; i++) cr_assert_eq(tt_get(W, i), w);
    amp_tensor_destroy(W);
    amp_tensor_destroy(G);
    amp_tensor_destroy(M);
    amp_tensor_destroy(V);
    amp_tensor_destroy(lrt);
    amp_tensor_destroy(step);
    return w;
}

Test(optim, f16_parameters_lose_updates_below_half_an_ulp) {
    /* f16 has 10 fraction bits: just below 1.0 its values are 2^-11 apart, so an update of
     * 1e-4 (less than half of 2^-11) rounds back to 1.0 on every store and training stalls;
     * f32 master weights keep every update. This is why mixed precision keeps FP32 master
     * weights. */
    const double f16_w = ten_updates("SGD", AMP_F16, 1.0f, 1e-4, 10);
    cr_assert_eq(f16_w, 1.0, "f16 SGD: an update of 1e-4 should vanish, W became %.9g", f16_w);
    const double f32_w = ten_updates("SGD", AMP_F32, 1.0f, 1e-4, 10);
    cr_assert(fabs(f32_w - (1.0 - 10 * 1e-4)) <= 1e-6, "f32 SGD: W %.9g, expected 0.999", f32_w);
    /* an update above half the spacing does land in f16 (1 - 1e-3 rounds to 1 - 2 * 2^-11):
     * the stall above is the rounding, not a kernel that ignores 16-bit parameters */
    const double f16_big = ten_updates("SGD", AMP_F16, 1.0f, 1e-3, 1);
    cr_assert_eq(f16_big, 1.0 - 1.0 / 1024, "f16 SGD: an update of 1e-3 should move W by one ulp, W %.9g", f16_big);

    /* AdamW's step is ~lr whatever the gradient: lr 1e-4 vanishes in f16 too */
    const double a16 = ten_updates("AdamW", AMP_F16, 1e-4f, 0.5, 10);
    cr_assert_eq(a16, 1.0, "f16 AdamW: W became %.9g", a16);
    const double a32 = ten_updates("AdamW", AMP_F32, 1e-4f, 0.5, 10);
    cr_assert(fabs(a32 - (1.0 - 10 * 1e-4)) <= 1e-6, "f32 AdamW: W %.9g, expected ~0.999", a32);
}

/* =========================================================================================== */
/* UnscaleCheck                                                                                */

static int unscale_check(float scale, int n, amp_tensor **g) {
    amp_tensor *in[8];
    in[0] = scalar(AMP_F32, scale);
    for (int i = 0; i < n; i++) in[1 + i] = g[i];
    amp_test_node *t = tn_train(ctx, "UnscaleCheck");
    amp_tensor *out = NULL;
    cr_assert_eq(tn_run(t, 1 + n, in, 1, &out), AMP_OK, "%s", amp_context_last_error(ctx));
    cr_assert_eq(amp_tensor_dtype(out), AMP_BOOL);
    cr_assert_eq(amp_tensor_numel(out), 1);
    const uint8_t v = ((const uint8_t *)amp_tensor_data(out))[0];
    cr_assert(v == 0 || v == 1, "found_inf must be a clean bool, is %u", v);
    amp_tensor_destroy(out);
    amp_tensor_destroy(in[0]);
    tn_free(t);
    return v;
}

Test(optim, unscale_check_finds_inf_and_nan_in_every_dtype) {
    const amp_dtype dts[] = {AMP_F32, AMP_F16, AMP_BF16, AMP_F64};
    const int64_t d0[2] = {4, 5}, d1[1] = {9};
    for (int i = 0; i < 4; i++) {
        amp_tensor *g[2] = {tt_rand(ctx, dts[i], 2, d0, -1000, 1000, 1), tt_rand(ctx, dts[i], 1, d1, -1, 1, 2)};
        cr_assert_eq(unscale_check(1024, 2, g), 0, "%s: finite gradients flagged", amp_dtype_name(dts[i]));
        amp_st(dts[i], g[1]->data, 8, INFINITY);
        cr_assert_eq(unscale_check(1024, 2, g), 1, "%s: +inf missed", amp_dtype_name(dts[i]));
        amp_st(dts[i], g[1]->data, 8, -INFINITY);
        cr_assert_eq(unscale_check(1024, 2, g), 1, "%s: -inf missed", amp_dtype_name(dts[i]));
        amp_st(dts[i], g[1]->data, 8, 0.5);
        amp_st(dts[i], g[0]->data, 0, NAN);
        cr_assert_eq(unscale_check(1024, 2, g), 1, "%s: NaN missed", amp_dtype_name(dts[i]));
        amp_tensor_destroy(g[0]);
        amp_tensor_destroy(g[1]);
    }
}

Test(optim, unscale_check_flags_values_that_overflow_f32_once_unscaled) {
    const int64_t d = 3;
    /* finite in f64, infinite in the f32 the optimizers compute in */
    amp_tensor *g64 = tt_make(ctx, AMP_F64, 1, &d, (double[]){1, 1e300, 2});
    cr_assert_eq(unscale_check(1, 1, &g64), 1);
    amp_tensor_destroy(g64);
    /* a finite f32 gradient that overflows when multiplied by 1/scale = 4 */
    amp_tensor *g32 = tt_make(ctx, AMP_F32, 1, &d, (double[]){1, 1e38, 2});
    cr_assert_eq(unscale_check(1, 1, &g32), 0);
    cr_assert_eq(unscale_check(0.25f, 1, &g32), 1);
    amp_tensor_destroy(g32);
}

Test(optim, unscale_check_large_gradient) {
    /* past the parallel threshold; one NaN deep inside */
    const int64_t d = 200003;
    amp_tensor *g = tt_rand(ctx, AMP_F16, 1, &d, -60000, 60000, 9);
    cr_assert_eq(unscale_check(65536, 1, &g), 0);
    amp_st(AMP_F16, g->data, 123457, NAN);
    cr_assert_eq(unscale_check(65536, 1, &g), 1);
    amp_tensor_destroy(g);
}

/* =========================================================================================== */
/* LossScaleUpdate                                                                             */

typedef struct scaler {
    amp_tensor *scale, *tracker, *found;
    int64_t interval;
    float growth, backoff; /* 0: leave the attribute at its default */
} scaler;

static scaler scaler_new(double scale, double tracker) {
    scaler s = {scalar(AMP_F32, scale), scalar(AMP_F32, tracker), scalar(AMP_BOOL, 0), 0, 0, 0};
    return s;
}

static void scaler_free(scaler *s) {
    amp_tensor_destroy(s->scale);
    amp_tensor_destroy(s->tracker);
    amp_tensor_destroy(s->found);
}

/* one update; returns the op's output, which must equal the scale it left in place */
static double scaler_step(scaler *s, int found_inf) {
    amp_st(AMP_BOOL, s->found->data, 0, found_inf);
    amp_tensor *in[3] = {s->scale, s->tracker, s->found};
    amp_test_node *t = tn_train(ctx, "LossScaleUpdate");
    if (s->interval) tn_int(t, "growth_interval", s->interval);
    if (s->growth) tn_float(t, "growth_factor", s->growth);
    if (s->backoff) tn_float(t, "backoff_factor", s->backoff);
    amp_tensor *out = NULL;
    cr_assert_eq(tn_run(t, 3, in, 1, &out), AMP_OK, "%s", amp_context_last_error(ctx));
    const double v = tt_get(out, 0);
    cr_assert_eq(v, tt_get(s->scale, 0), "output %g differs from the stored scale %g", v, tt_get(s->scale, 0));
    amp_tensor_destroy(out);
    tn_free(t);
    return v;
}

Test(optim, loss_scale_inf_halves_and_resets) {
    scaler s = scaler_new(65536, 17);
    cr_assert_eq(scaler_step(&s, 1), 32768);
    cr_assert_eq(tt_get(s.tracker, 0), 0);
    cr_assert_eq(scaler_step(&s, 1), 16384);
    cr_assert_eq(tt_get(s.tracker, 0), 0);
    scaler_free(&s);
}

Test(optim, loss_scale_doubles_after_2000_clean_steps) {
    scaler s = scaler_new(65536, 0);
    for (int i = 1; i < 2000; i++) {
        cr_assert_eq(scaler_step(&s, 0), 65536, "grew early at step %d", i);
        cr_assert_eq(tt_get(s.tracker, 0), i);
    }
    cr_assert_eq(scaler_step(&s, 0), 131072);
    cr_assert_eq(tt_get(s.tracker, 0), 0);
    cr_assert_eq(scaler_step(&s, 0), 131072);
    cr_assert_eq(tt_get(s.tracker, 0), 1);
    scaler_free(&s);
}

Test(optim, loss_scale_near_flt_max_stays_finite) {
    const double big = (double)FLT_MAX * 0.75;
    scaler s = scaler_new(big, 1999);
    const double v = scaler_step(&s, 0);
    cr_assert(isfinite(v), "scale became %g", v);
    cr_assert_eq(v, (double)(float)big, "the scale must stay where it was, not %g", v);
    cr_assert_eq(tt_get(s.tracker, 0), 0, "the tracker resets even when growth is refused");
    scaler_free(&s);
}

Test(optim, loss_scale_tracker_counts_across_a_skip) {
    scaler s = scaler_new(1024, 0);
    s.interval = 4;
    s.growth = 4.0f;
    s.backoff = 0.25f;
    for (int i = 1; i <= 3; i++) {
        cr_assert_eq(scaler_step(&s, 0), 1024);
        cr_assert_eq(tt_get(s.tracker, 0), i);
    }
    cr_assert_eq(scaler_step(&s, 1), 256, "backoff_factor 0.25");
    cr_assert_eq(tt_get(s.tracker, 0), 0, "a skip restarts the count");
    for (int i = 1; i <= 3; i++) {
        cr_assert_eq(scaler_step(&s, 0), 256);
        cr_assert_eq(tt_get(s.tracker, 0), i);
    }
    cr_assert_eq(scaler_step(&s, 0), 1024, "growth_factor 4 after 4 clean steps");
    cr_assert_eq(tt_get(s.tracker, 0), 0);
    scaler_free(&s);
}

/* =========================================================================================== */
/* bad input                                                                                   */

/* Run op with the given inputs and expect status want and a message naming the node. */
static void expect_fail(amp_test_node *t, int nin, amp_tensor **in, amp_status want, const char *what) {
    amp_tensor *out = NULL;
    const amp_status s = tn_run(t, nin, in, 1, &out);
    cr_assert_eq(s, want, "%s: status %s, expected %s", what, amp_status_name(s), amp_status_name(want));
    cr_assert_null(out);
    const char *msg = amp_context_last_error(ctx);
    cr_assert(msg && strstr(msg, t->node.op_type), "%s: the message should name the op: %s", what, msg ? msg : "");
    tn_free(t);
}

Test(optim, bad_shapes_dtypes_and_attributes_are_errors) {
    const int64_t d34[2] = {3, 4}, d43[2] = {4, 3}, d2 = 2;
    amp_tensor *lr = scalar(AMP_F32, 0.1), *step = scalar(AMP_F32, 0), *found = scalar(AMP_BOOL, 0);
    amp_tensor *sc = scalar(AMP_F32, 1), *lr2 = tt_make(ctx, AMP_F32, 1, &d2, (double[]){0.1, 0.1});
    amp_tensor *found32 = scalar(AMP_F32, 0), *steph = scalar(AMP_F16, 0);
    amp_tensor *W = tt_rand(ctx, AMP_F32, 2, d34, -1, 1, 1), *G = tt_rand(ctx, AMP_F32, 2, d34, -1, 1, 2);
    amp_tensor *Gt = tt_rand(ctx, AMP_F32, 2, d43, -1, 1, 3), *M = zeros(AMP_F32, 2, d34);
    amp_tensor *Mt = zeros(AMP_F32, 2, d43), *M16 = zeros(AMP_F16, 2, d34), *V = zeros(AMP_F32, 2, d34);
    amp_tensor *Wi = tt_rand(ctx, AMP_I64, 2, d34, -5, 5, 4), *G64 = tt_rand(ctx, AMP_F64, 2, d34, -1, 1, 5);
    amp_tensor *Gi = tt_rand(ctx, AMP_I32, 2, d34, -5, 5, 6), *tracker = scalar(AMP_F32, 0);
    amp_tensor *tracker64 = scalar(AMP_I64, 0);
    amp_test_node *t;

    t = tn_train(ctx, "SGD");
    tn_int(t, "n", 1);
    expect_fail(t, 6, (amp_tensor *[]){lr, step, found, sc, W, Gt}, AMP_ERR_SHAPE, "G shaped unlike W");
    t = tn_train(ctx, "SGD");
    tn_int(t, "n", 1);
    expect_fail(t, 6, (amp_tensor *[]){lr, step, found32, sc, W, G}, AMP_ERR_SHAPE, "found_inf not bool");
    t = tn_train(ctx, "SGD");
    tn_int(t, "n", 1);
    expect_fail(t, 6, (amp_tensor *[]){lr2, step, found, sc, W, G}, AMP_ERR_SHAPE, "lr of two elements");
    t = tn_train(ctx, "SGD");
    tn_int(t, "n", 1);
    expect_fail(t, 6, (amp_tensor *[]){lr, steph, found, sc, W, G}, AMP_ERR_SHAPE, "f16 step");
    t = tn_train(ctx, "SGD");
    tn_int(t, "n", 1);
    expect_fail(t, 6, (amp_tensor *[]){lr, NULL, found, sc, W, G}, AMP_ERR_INVALID_GRAPH, "no step");
    t = tn_train(ctx, "SGD");
    tn_int(t, "n", 1);
    expect_fail(t, 6, (amp_tensor *[]){lr, step, found, sc, Wi, G}, AMP_ERR_UNSUPPORTED, "int64 parameter");
    t = tn_train(ctx, "SGD");
    tn_int(t, "n", 1);
    expect_fail(t, 6, (amp_tensor *[]){lr, step, found, sc, W, G64}, AMP_ERR_UNSUPPORTED, "f64 gradient");
    t = tn_train(ctx, "SGD");
    tn_int(t, "n", 1);
    tn_float(t, "momentum", 0.9f);
    expect_fail(t, 6, (amp_tensor *[]){lr, step, found, sc, W, G}, AMP_ERR_INVALID_GRAPH, "momentum without M");
    t = tn_train(ctx, "SGD");
    tn_int(t, "n", 1);
    expect_fail(t, 7, (amp_tensor *[]){lr, step, found, sc, W, G, M}, AMP_ERR_INVALID_GRAPH, "M without momentum");
    t = tn_train(ctx, "SGD");
    expect_fail(t, 6, (amp_tensor *[]){lr, step, found, sc, W, G}, AMP_ERR_INVALID_GRAPH, "no n");
    t = tn_train(ctx, "SGD");
    tn_int(t, "n", 2);
    expect_fail(t, 6, (amp_tensor *[]){lr, step, found, sc, W, G}, AMP_ERR_INVALID_GRAPH, "n too large");
    t = tn_train(ctx, "SGD");
    tn_int(t, "n", 1);
    tn_int(t, "nesterov", 1);
    expect_fail(t, 6, (amp_tensor *[]){lr, step, found, sc, W, G}, AMP_ERR_INVALID_GRAPH, "nesterov, no momentum");
    t = tn_train(ctx, "SGD");
    tn_int(t, "n", 1);
    tn_float(t, "momentum", 0.9f);
    tn_float(t, "dampening", 0.1f);
    tn_int(t, "nesterov", 1);
    expect_fail(t, 7, (amp_tensor *[]){lr, step, found, sc, W, G, M}, AMP_ERR_INVALID_GRAPH, "nesterov, dampening");
    t = tn_train(ctx, "SGD");
    tn_int(t, "n", 1);
    tn_float(t, "momentum", 0.9f);
    expect_fail(t, 7, (amp_tensor *[]){lr, step, found, sc, W, G, Mt}, AMP_ERR_SHAPE, "M shaped unlike W");
    t = tn_train(ctx, "SGD");
    tn_int(t, "n", 1);
    tn_float(t, "momentum", 0.9f);
    expect_fail(t, 7, (amp_tensor *[]){lr, step, found, sc, W, G, M16}, AMP_ERR_SHAPE, "f16 M for an f32 W");
    t = tn_train(ctx, "SGD");
    tn_int(t, "n", 1);
    tn_float(t, "max_grad_norm", -1.0f);
    expect_fail(t, 6, (amp_tensor *[]){lr, step, found, sc, W, G}, AMP_ERR_INVALID_GRAPH, "negative max_grad_norm");

    t = tn_train(ctx, "AdamW");
    tn_int(t, "n", 1);
    tn_float(t, "beta1", 1.0f);
    expect_fail(t, 8, (amp_tensor *[]){lr, step, found, sc, W, G, M, V}, AMP_ERR_INVALID_GRAPH, "beta1 = 1");
    t = tn_train(ctx, "AdamW");
    tn_int(t, "n", 1);
    expect_fail(t, 7, (amp_tensor *[]){lr, step, found, sc, W, G, M}, AMP_ERR_INVALID_GRAPH, "AdamW without V");
    t = tn_train(ctx, "AdamW");
    tn_int(t, "n", 1);
    expect_fail(t, 8, (amp_tensor *[]){lr, step, found, sc, W, G, M, Mt}, AMP_ERR_SHAPE, "V shaped unlike W");

    t = tn_train(ctx, "UnscaleCheck");
    expect_fail(t, 2, (amp_tensor *[]){sc, Gi}, AMP_ERR_UNSUPPORTED, "int gradient");
    t = tn_train(ctx, "UnscaleCheck");
    expect_fail(t, 1, (amp_tensor *[]){sc}, AMP_ERR_INVALID_GRAPH, "no gradient");
    t = tn_train(ctx, "UnscaleCheck");
    expect_fail(t, 2, (amp_tensor *[]){lr2, G}, AMP_ERR_SHAPE, "scale of two elements");

    t = tn_train(ctx, "LossScaleUpdate");
    expect_fail(t, 3, (amp_tensor *[]){sc, tracker64, found}, AMP_ERR_SHAPE, "int64 tracker");
    t = tn_train(ctx, "LossScaleUpdate");
    expect_fail(t, 3, (amp_tensor *[]){sc, tracker, NULL}, AMP_ERR_INVALID_GRAPH, "no found_inf");
    t = tn_train(ctx, "LossScaleUpdate");
    tn_float(t, "growth_factor", 0.5f);
    expect_fail(t, 3, (amp_tensor *[]){sc, tracker, found}, AMP_ERR_INVALID_GRAPH, "growth_factor below 1");
    t = tn_train(ctx, "LossScaleUpdate");
    tn_float(t, "backoff_factor", 1.5f);
    expect_fail(t, 3, (amp_tensor *[]){sc, tracker, found}, AMP_ERR_INVALID_GRAPH, "backoff_factor above 1");
    t = tn_train(ctx, "LossScaleUpdate");
    tn_int(t, "growth_interval", 0);
    expect_fail(t, 3, (amp_tensor *[]){sc, tracker, found}, AMP_ERR_INVALID_GRAPH, "growth_interval 0");

    amp_tensor *all[] = {lr, step, found, sc, lr2, found32, steph, W, G, Gt, M, Mt, M16, V, Wi, G64, Gi, tracker,
                         tracker64};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) amp_tensor_destroy(all[i]);
}

Test(optim, state_bound_twice_is_an_error) {
    /* inference straight from value ids: W used as its own momentum buffer would be updated
     * twice in place */
    amp_tinfo scal = {.dtype = AMP_F32, .rank = 1, .dims = {1}}, fl = {.dtype = AMP_BOOL, .rank = 1, .dims = {1}};
    amp_tinfo vec = {.dtype = AMP_F32, .rank = 1, .dims = {4}};
    const amp_tinfo *in[7] = {&scal, &scal, &fl, &scal, &vec, &vec, &vec};
    amp_tinfo o = {0};
    amp_tinfo *out[1] = {&o};
    int ids_ok[7] = {0, 1, 2, 3, 4, 5, 6}, ids_bad[7] = {0, 1, 2, 3, 4, 5, 4}, ids_step[7] = {0, 1, 2, 3, 1, 5, 6};
    int outs[1] = {7};
    amp_attr attrs[2] = {{.name = "n", .kind = AMP_ATTR_INT, .i = 1},
                         {.name = "momentum", .kind = AMP_ATTR_FLOAT, .f = 0.9f}};
    amp_node node = {.name = "opt", .op_type = "SGD", .domain = TRAIN_DOMAIN, .op = amp_op_lookup("SGD", TRAIN_DOMAIN),
                     .n_inputs = 7, .outputs = outs, .n_outputs = 1, .attrs = attrs, .n_attrs = 2};
    amp_infer c = {.ctx = ctx, .n = &node, .opset = 1, .nin = 7, .nout = 1, .in = in, .out = out};
    node.inputs = ids_ok;
    cr_assert_eq(amp_op_table[node.op].infer(&c), AMP_OK, "%s", amp_context_last_error(ctx));
    cr_assert_eq(o.dtype, AMP_F32);
    cr_assert_eq(o.rank, 1);
    cr_assert_eq(o.dims[0], 1);
    /* the CPU backend's workspace: one double per chunk of every parameter (4 elements: one) */
    amp_tensor views[7], *pv[7];
    for (int i = 0; i < 7; i++) {
        amp_tensor_view(&views[i], in[i]->dtype, in[i]->rank, in[i]->dims, NULL);
        pv[i] = &views[i];
    }
    amp_tensor ov, *po[1] = {&ov};
    amp_tensor_view(&ov, o.dtype, o.rank, o.dims, NULL);
    amp_kernel k = {.ctx = ctx, .n = &node, .opset = 1, .nin = 7, .nout = 1, .in = pv, .out = po, .threads = 1};
    size_t ws_bytes = 0;
    cr_assert_eq(amp_cpu_workspace(&k, &ws_bytes), AMP_OK, "%s", amp_context_last_error(ctx));
    cr_assert_eq(ws_bytes, sizeof(double), "the norm needs one double per chunk");
    node.inputs = ids_bad;
    cr_assert_eq(amp_op_table[node.op].infer(&c), AMP_ERR_INVALID_GRAPH, "W bound as M too");
    cr_assert(strstr(amp_context_last_error(ctx), "inputs 4 and 6"), "%s", amp_context_last_error(ctx));
    node.inputs = ids_step;
    cr_assert_eq(amp_op_table[node.op].infer(&c), AMP_ERR_INVALID_GRAPH, "step bound as W too");
    cr_assert(strstr(amp_context_last_error(ctx), "inputs 1 and 4"), "%s", amp_context_last_error(ctx));
}

/* CPU kernels of the norm family's gradient ops (ir/ops/norm_grad.def, built by ir/ops/norm_grad.c):
 * BatchNormalizationGrad, InstanceNormalizationGrad, LayerNormalizationGrad,
 * GroupNormalizationGrad, LRNGrad and MeanVarianceNormalizationGrad. Per-element formulas of the
 * first three live in backends/norm_grad.h.
 *
 * Each recomputes the forward statistics from X in double; sums and dot products accumulate in
 * double and every element is computed in double, then stored with the output dtype's
 * rounding, so one loop serves f32, f16, bf16 and f64 (16-bit backward runs with the same
 * accumulation; mixed dtypes too: autocast leaves normalisation parameters in f32 beside 16-bit
 * activations). Loop bodies are inlined twice, with plain float accesses when the big
 * tensors are f32 and with the per-dtype accessors otherwise. */
#include "backends/cpu/kernels.h"
#include "backends/cpu/norm.h"
#include "backends/cpu/par.h"
#include "backends/norm_grad.h"

/* Below this many elements the OpenMP fork costs more than it saves. */
#define GRAD_PAR_MIN 32768


static amp_tensor *out_opt(const amp_kernel *k, int i) { return i < k->nout ? k->out[i] : NULL; }

/* ---- GroupNormalizationGrad ------------------------------------------------------------------
 * Per group (n, g) of M elements, with xhat = (x - mean) * inv and dxhat = dy * scale:
 *   dx = inv * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat)),
 * and per channel c, summed over N: dbias = sum(dy), dscale = sum(dy * xhat) (opset 18 sums
 * each group's channels into its one parameter). Groups are independent (threads split them);
 * their per-channel sums go to the workspace and are added over N afterwards. */

typedef struct gng_args {
    const amp_tensor *dy, *x, *sc;
    amp_tensor *dx;
    double eps;
    int64_t ch, cpg, sp, groups;
    bool per_channel;
    double *sums; /* [N][C][2]: sum(dy), sum(dy * xhat) */
} gng_args;

AMP_CPU_INLINE void gng_block(bool f32, const gng_args *a, int64_t ng) {
    const int64_t len = a->cpg * a->sp, base = ng * len, g = ng % a->groups, n = ng / a->groups;
    const amp_tensor *dy = a->dy, *x = a->x, *sc = a->sc;
    const amp_dtype xt = x->dtype, dyt = dy->dtype;
    double sum = 0, sq = 0;
    for (int64_t i = 0; i < len; i++) sum += amp_ldf(f32, xt, x->data, base + i);
    const double mean = sum / (double)len;
    for (int64_t i = 0; i < len; i++) {
        const double d = amp_ldf(f32, xt, x->data, base + i) - mean;
        sq += d * d;
    }
    const double inv = 1.0 / sqrt(sq / (double)len + a->eps);
    double sg = 0, sgx = 0; /* sum(dxhat), sum(dxhat * xhat) over the group */
    for (int64_t j = 0; j < a->cpg; j++) {
        const int64_t c = g * a->cpg + j, row = base + j * a->sp;
        double s1 = 0, s2 = 0;
        for (int64_t i = 0; i < a->sp; i++) {
            const double gy = amp_ldf(f32, dyt, dy->data, row + i);
            s1 += gy;
            s2 += gy * (amp_ldf(f32, xt, x->data, row + i) - mean);
        }
        s2 *= inv;
        a->sums[(n * a->ch + c) * 2] = s1;
        a->sums[(n * a->ch + c) * 2 + 1] = s2;
        const double gam = amp_ldf(f32, sc->dtype, sc->data, a->per_channel ? c : g);
        sg += gam * s1;
        sgx += gam * s2;
    }
    sg /= (double)len;
    sgx /= (double)len;
    for (int64_t j = 0; j < a->cpg; j++) {
        const int64_t row = base + j * a->sp;
        const double gam = amp_ldf(f32, sc->dtype, sc->data, a->per_channel ? g * a->cpg + j : g);
        for (int64_t i = 0; i < a->sp; i++) {
            const double xh = (amp_ldf(f32, xt, x->data, row + i) - mean) * inv;
            const double gy = amp_ldf(f32, dyt, dy->data, row + i);
            amp_stf(f32, a->dx->dtype, a->dx->data, row + i, inv * (gam * gy - sg - xh * sgx));
        }
    }
}

/* GroupNormalizationGrad: the per-(n, channel) sums of dY and dY * xhat that dscale and dbias add
 * up over N, in double; none for an empty X. */
amp_status amp_cpu_ws_group_norm_grad(const amp_kernel *k, size_t *bytes) {
    const amp_tensor *x = k->in[1];
    *bytes = 0;
    if (x->numel == 0) return AMP_OK;
    int64_t n;
    if (__builtin_mul_overflow(x->dims[0], x->dims[1], &n) || __builtin_mul_overflow(n, 2, &n))
        return amp_kernel_fail(k, AMP_ERR_OVERFLOW, "workspace size overflows");
    return amp_cpu_ws_elems(k, n, sizeof(double), bytes);
}

amp_status amp_cpu_group_norm_grad(amp_kernel *k) {
    const amp_tensor *x = k->in[1];
    amp_tensor *dsc = k->nout > 1 ? k->out[1] : NULL, *dbi = k->nout > 2 ? k->out[2] : NULL;
    const int64_t groups = amp_attr_int(k->n, "num_groups", 0), n = x->dims[0], ch = x->dims[1];
    if (groups < 1 || ch % groups != 0)
        return amp_kernel_fail(k, AMP_ERR_INVALID_GRAPH, "num_groups %lld does not divide %lld channels",
                               (long long)groups, (long long)ch);
    gng_args a = {.dy = k->in[0], .x = x, .sc = k->in[2], .dx = k->out[0], .ch = ch, .groups = groups,
                  .cpg = ch / groups, .sp = 1, .eps = amp_attr_float(k->n, "epsilon", 1e-5f),
                  .per_channel = amp_attr_int(k->n, "fwd_opset", 21) >= 21, .sums = k->ws};
    const int64_t plen = a.per_channel ? ch : groups, per = a.per_channel ? 1 : a.cpg;
    if (x->numel == 0) {
        /* nothing to sum (and dims that may be huge, so no loop over them) */
        for (int64_t p = 0; p < plen; p++) {
            if (dsc) amp_st(dsc->dtype, dsc->data, p, 0.0);
            if (dbi) amp_st(dbi->dtype, dbi->data, p, 0.0);
        }
        return AMP_OK;
    }
    for (int d = 2; d < x->rank; d++) a.sp *= x->dims[d];
    if (!a.sums || k->ws_bytes < (size_t)(n * ch) * 2 * sizeof(double))
        return amp_kernel_fail(k, AMP_ERR_INTERNAL, "workspace too small");
    const bool f32 = x->dtype == AMP_F32 && a.dy->dtype == AMP_F32 && a.dx->dtype == AMP_F32 &&
                     a.sc->dtype == AMP_F32;
    const bool big = x->numel >= GRAD_PAR_MIN;
    AMP_PAR_FOR(big, num_threads(k->threads) schedule(static),
    for (int64_t ng = 0; ng < n * groups; ng++) {
        if (f32) gng_block(true, &a, ng);
        else gng_block(false, &a, ng);
    });
    /* parameter gradients: per channel (opset 21) or per group (18), summed over N */
    for (int64_t p = 0; p < plen; p++) {
        double s1 = 0, s2 = 0;
        for (int64_t i = 0; i < n; i++)
            for (int64_t j = 0; j < per; j++) {
                const int64_t c = p * per + j;
                s1 += a.sums[(i * ch + c) * 2];
                s2 += a.sums[(i * ch + c) * 2 + 1];
            }
        if (dsc) amp_st(dsc->dtype, dsc->data, p, s2);
        if (dbi) amp_st(dbi->dtype, dbi->data, p, s1);
    }
    return AMP_OK;
}

/* ---- LRNGrad -----------------------------------------------------------------------------------
 * With D_c = bias + (alpha/size) S_c and Y_c = X_c D_c^-beta, X_j enters its own Y and every
 * D_c whose window holds j, i.e. c in [j - ceil((size-1)/2), j + floor((size-1)/2)]:
 *   dX_j = dY_j D_j^-beta - 2 (alpha/size) beta X_j sum_c dY_c X_c D_c^(-beta-1).
 * The first pass stores w_c = dY_c X_c D_c^(-beta-1) per element in the workspace; the second
 * sums it over each element's transposed window. */

AMP_CPU_INLINE double lrn_pow(double d, double beta) {
    if (beta == 0.75) return 1.0 / (sqrt(d) * sqrt(sqrt(d)));
    if (beta == 0.5) return 1.0 / sqrt(d);
    if (beta == 1.0) return 1.0 / d;
    return pow(d, -beta);
}

typedef struct lrng_args {
    const amp_tensor *dy, *x;
    amp_tensor *dx;
    int64_t ch, sp, lo, hi;
    double bias, scale, beta;
    double *w;
} lrng_args;

/* D at element (row r = n*C + c, position s). */
AMP_CPU_INLINE double lrn_den(bool f32, const lrng_args *a, int64_t r, int64_t s) {
    const int64_t c = r % a->ch, nbase = (r - c) * a->sp;
    const int64_t i0 = c - a->lo > 0 ? c - a->lo : 0, i1 = c + a->hi < a->ch - 1 ? c + a->hi : a->ch - 1;
    double sq = 0;
    for (int64_t i = i0; i <= i1; i++) {
        const double v = amp_ldf(f32, a->x->dtype, a->x->data, nbase + i * a->sp + s);
        sq += v * v;
    }
    return a->bias + a->scale * sq;
}

AMP_CPU_INLINE void lrng_pass1(bool f32, const lrng_args *a, int64_t r) {
    for (int64_t s = 0; s < a->sp; s++) {
        const int64_t at = r * a->sp + s;
        const double d = lrn_den(f32, a, r, s);
        a->w[at] = amp_ldf(f32, a->dy->dtype, a->dy->data, at) * amp_ldf(f32, a->x->dtype, a->x->data, at) *
                   lrn_pow(d, a->beta) / d;
    }
}

AMP_CPU_INLINE void lrng_pass2(bool f32, const lrng_args *a, int64_t r) {
    const int64_t c = r % a->ch, nbase = (r - c) * a->sp;
    const int64_t i0 = c - a->hi > 0 ? c - a->hi : 0, i1 = c + a->lo < a->ch - 1 ? c + a->lo : a->ch - 1;
    const double k2 = 2.0 * a->scale * a->beta;
    for (int64_t s = 0; s < a->sp; s++) {
        const int64_t at = r * a->sp + s;
        double t = 0;
        for (int64_t i = i0; i <= i1; i++) t += a->w[nbase + i * a->sp + s];
        const double v = amp_ldf(f32, a->dy->dtype, a->dy->data, at) * lrn_pow(lrn_den(f32, a, r, s), a->beta) -
                         k2 * amp_ldf(f32, a->x->dtype, a->x->data, at) * t;
        amp_stf(f32, a->dx->dtype, a->dx->data, at, v);
    }
}

/* LRNGrad: dY * X * D^(-beta-1) per element (double), which every channel of the window reads
 * back. */
amp_status amp_cpu_ws_lrn_grad(const amp_kernel *k, size_t *bytes) {
    return amp_cpu_ws_elems(k, k->in[1]->numel, sizeof(double), bytes);
}

amp_status amp_cpu_lrn_grad(amp_kernel *k) {
    const amp_tensor *x = k->in[1];
    const int64_t size = amp_attr_int(k->n, "size", 0);
    if (size < 1) return amp_kernel_fail(k, AMP_ERR_INVALID_GRAPH, "size %lld must be >= 1", (long long)size);
    if (x->numel == 0) return AMP_OK;
    if (!k->ws || k->ws_bytes < (size_t)x->numel * sizeof(double))
        return amp_kernel_fail(k, AMP_ERR_INTERNAL, "workspace too small");
    lrng_args a = {.dy = k->in[0], .x = x, .dx = k->out[0], .ch = x->dims[1], .sp = 1, .lo = (size - 1) / 2,
                   .hi = size / 2, .bias = amp_attr_float(k->n, "bias", 1.0f),
                   .scale = amp_attr_float(k->n, "alpha", 1e-4f) / (double)size,
                   .beta = amp_attr_float(k->n, "beta", 0.75f), .w = k->ws};
    for (int d = 2; d < x->rank; d++) a.sp *= x->dims[d];
    const int64_t rows = x->dims[0] * a.ch;
    const bool f32 = x->dtype == AMP_F32 && a.dy->dtype == AMP_F32 && a.dx->dtype == AMP_F32;
    const bool big = x->numel >= GRAD_PAR_MIN;
    AMP_PAR_FOR(big, num_threads(k->threads) schedule(static),
    for (int64_t r = 0; r < rows; r++) {
        if (f32) lrng_pass1(true, &a, r);
        else lrng_pass1(false, &a, r);
    });
    AMP_PAR_FOR(big, num_threads(k->threads) schedule(static),
    for (int64_t r = 0; r < rows; r++) {
        if (f32) lrng_pass2(true, &a, r);
        else lrng_pass2(false, &a, r);
    });
    return AMP_OK;
}

/* ---- MeanVarianceNormalizationGrad ---------------------------------------------------------------
 * Per kept position, over its M reduced elements with d = x - mean, s = sqrt(mean(d^2)) and
 * D = s + 1e-9 (Y = d / D):
 *   dX = (dY - mean(dY)) / D - d * sum(dY * d) / (M s D^2),
 * the second term 0 where s = 0 (a constant slice: Y is 0 there whatever the perturbation
 * direction's sign, and the kink has no derivative). The geometry is the forward's
 * (backends/cpu/norm.c): kept and reduced dims, neighbours of one kind merged. */

AMP_CPU_INLINE void mvng_pos(bool f32, const amp_tensor *dy, const amp_tensor *x, amp_tensor *dx, const mvn_geom *gm,
                        int64_t p) {
    const int64_t base = mvn_kept_off(gm, p);
    const amp_dtype xt = x->dtype, dyt = dy->dtype;
    const double m = (double)gm->rcount;
    double sum = 0, sq = 0, sdy = 0, sdyd = 0;
    MVN_WALK(gm, base, off, sum += amp_ldf(f32, xt, x->data, off));
    const double mean = sum / m;
    MVN_WALK(gm, base, off, {
        const double d = amp_ldf(f32, xt, x->data, off) - mean, gy = amp_ldf(f32, dyt, dy->data, off);
        sq += d * d;
        sdy += gy;
        sdyd += gy * d;
    });
    const double s = sqrt(sq / m), den = s + 1e-9, inv = 1.0 / den, mdy = sdy / m;
    const double coef = s > 0 ? sdyd / (m * s * den * den) : 0.0;
    MVN_WALK(gm, base, off, {
        const double d = amp_ldf(f32, xt, x->data, off) - mean;
        amp_stf(f32, dx->dtype, dx->data, off, (amp_ldf(f32, dyt, dy->data, off) - mdy) * inv - d * coef);
    });
}

amp_status amp_cpu_mvn_grad(amp_kernel *k) {
    const amp_tensor *dy = k->in[0], *x = k->in[1];
    amp_tensor *dx = k->out[0];
    mvn_geom gm;
    if (x->numel == 0) return AMP_OK;
    amp_status s = amp_cpu_mvn_geom_init(k, x, &gm);
    if (s) return s;
    const bool f32 = x->dtype == AMP_F32 && dy->dtype == AMP_F32 && dx->dtype == AMP_F32;
    const bool big = x->numel >= GRAD_PAR_MIN;
    AMP_PAR_FOR(big, num_threads(k->threads) schedule(static),
    for (int64_t p = 0; p < gm.kcount; p++) {
        if (f32) mvng_pos(true, dy, x, dx, &gm, p);
        else mvng_pos(false, dy, x, dx, &gm, p);
    });
    return AMP_OK;
}

/* ---- BatchNormalizationGrad -----------------------------------------------------------------------
 * Per channel c over its n*sp elements. Training mode normalises with the batch statistics, so
 * dX carries their gradient (the amp_norm_dx formula), and the running and saved statistics
 * outputs, when their gradients flow, add theirs:
 *   running_mean = mean_in*mom + mean*(1-mom), running_var = var_in*mom + var*(1-mom),
 *   saved_mean = mean, saved_inv_std = inv.
 * Inference mode is an affine map per channel: y = (x - mean_in) * a + B, a = scale/sqrt(var_in+eps),
 * with gradients for every input. */

typedef struct bn_args {
    const amp_tensor *dy, *x, *sc, *mn, *vr, *grm, *grv, *gsm, *gsi;
    amp_tensor *dx, *dsc, *db, *dmn, *dvr;
    double eps, mom;
    bool training;
    int64_t n, ch, sp;
} bn_args;

AMP_CPU_INLINE void bn_channel(bool f32, const bn_args *a, int64_t c) {
    const amp_tensor *dy = a->dy, *x = a->x;
    const amp_dtype xt = x->dtype, gt = dy ? dy->dtype : xt, ot = a->dx->dtype;
    const int64_t n = a->n, ch = a->ch, sp = a->sp;
    const double cnt = (double)(n * sp);
    const double gamma = amp_ld(a->sc->dtype, a->sc->data, c);
    double mean, inv;
    if (a->training) {
        double sum = 0, sq = 0;
        for (int64_t i = 0; i < n; i++)
            for (int64_t s = 0; s < sp; s++) sum += amp_ldf(f32, xt, x->data, (i * ch + c) * sp + s);
        mean = cnt > 0 ? sum / cnt : 0.0;
        for (int64_t i = 0; i < n; i++)
            for (int64_t s = 0; s < sp; s++) {
                double dv = amp_ldf(f32, xt, x->data, (i * ch + c) * sp + s) - mean;
                sq += dv * dv;
            }
        inv = 1.0 / sqrt((cnt > 0 ? sq / cnt : 0.0) + a->eps);
    } else {
        mean = amp_ld(a->mn->dtype, a->mn->data, c);
        inv = 1.0 / sqrt(amp_ld(a->vr->dtype, a->vr->data, c) + a->eps);
    }
    /* sums of dy and dy * xhat */
    double sdy = 0, sdyx = 0;
    if (dy) {
        for (int64_t i = 0; i < n; i++)
            for (int64_t s = 0; s < sp; s++) {
                const int64_t at = (i * ch + c) * sp + s;
                const double g = amp_ldf(f32, gt, dy->data, at);
                sdy += g;
                sdyx += g * (amp_ldf(f32, xt, x->data, at) - mean);
            }
        sdyx *= inv;
    }
    const double mom = a->mom;
    if (a->training) {
        const double rm = a->grm ? amp_ld(a->grm->dtype, a->grm->data, c) : 0.0;
        const double rv = a->grv ? amp_ld(a->grv->dtype, a->grv->data, c) : 0.0;
        const double sm = a->gsm ? amp_ld(a->gsm->dtype, a->gsm->data, c) : 0.0;
        const double si = a->gsi ? amp_ld(a->gsi->dtype, a->gsi->data, c) : 0.0;
        /* the statistics outputs in terms of the group's mean and inv (var = inv^-2 - eps):
         * d var = -2 inv^-3 d inv, so a gradient rv of var is one of -2 rv / inv^3 of inv */
        const double gm = rm * (1 - mom) + sm;
        const double gi = si - 2.0 * rv * (1 - mom) / (inv * inv * inv);
        const double mg = cnt > 0 ? gamma * sdy / cnt : 0.0, mgx = cnt > 0 ? gamma * sdyx / cnt : 0.0;
        const amp_norm_coef kc = amp_norm_coef_d(inv, mg, mgx, gm, gi, cnt);
        for (int64_t i = 0; i < n; i++)
            for (int64_t s = 0; s < sp; s++) {
                const int64_t at = (i * ch + c) * sp + s;
                const double xhat = (amp_ldf(f32, xt, x->data, at) - mean) * inv;
                const double g = dy ? gamma * amp_ldf(f32, gt, dy->data, at) : 0.0;
                amp_stf(f32, ot, a->dx->data, at, amp_norm_dx_d(kc, g, xhat));
            }
        if (a->dmn) amp_st(a->dmn->dtype, a->dmn->data, c, rm * mom);
        if (a->dvr) amp_st(a->dvr->dtype, a->dvr->data, c, rv * mom);
    } else {
        const double sa = gamma * inv;
        for (int64_t i = 0; i < n; i++)
            for (int64_t s = 0; s < sp; s++) {
                const int64_t at = (i * ch + c) * sp + s;
                amp_stf(f32, ot, a->dx->data, at, dy ? sa * amp_ldf(f32, gt, dy->data, at) : 0.0);
            }
        if (a->dmn) amp_st(a->dmn->dtype, a->dmn->data, c, -sa * sdy);
        /* d a / d var_in = -gamma inv^3 / 2, and sum dy (x - mean_in) = sdyx / inv */
        if (a->dvr) amp_st(a->dvr->dtype, a->dvr->data, c, -0.5 * gamma * inv * inv * sdyx);
    }
    if (a->dsc) amp_st(a->dsc->dtype, a->dsc->data, c, sdyx);
    if (a->db) amp_st(a->db->dtype, a->db->data, c, sdy);
}

amp_status amp_cpu_batch_norm_grad(amp_kernel *k) {
    bn_args a = {.dy = k->in[0], .x = k->in[1], .sc = k->in[2], .mn = k->in[3], .vr = k->in[4],
                 .grm = in_opt(k, 5), .grv = in_opt(k, 6), .gsm = in_opt(k, 7), .gsi = in_opt(k, 8),
                 .dx = k->out[0], .dsc = out_opt(k, 1), .db = out_opt(k, 2), .dmn = out_opt(k, 3),
                 .dvr = out_opt(k, 4)};
    a.eps = amp_attr_float(k->n, "epsilon", 1e-5f);
    a.mom = amp_attr_float(k->n, "momentum", 0.9f);
    a.training = amp_attr_int(k->n, "training", 0) != 0;
    const amp_tensor *x = a.x;
    a.n = x->dims[0];
    a.sp = 1;
    if (a.sc->rank > 1) {
        a.ch = a.sc->numel;
    } else {
        a.ch = x->rank > 1 ? x->dims[1] : 1;
        for (int d = 2; d < x->rank; d++) a.sp *= x->dims[d];
    }
    const bool f32 = x->dtype == AMP_F32 && a.dx->dtype == AMP_F32 && (!a.dy || a.dy->dtype == AMP_F32);
    const bool big = x->numel >= GRAD_PAR_MIN;
    AMP_PAR_FOR(big, num_threads(k->threads),
    for (int64_t c = 0; c < a.ch; c++) {
        if (f32) bn_channel(true, &a, c);
        else bn_channel(false, &a, c);
    });
    return AMP_OK;
}

/* ---- InstanceNormalizationGrad ---------------------------------------------------------------------
 * Statistics per (n, c) row of sp elements; threads take channels so that dscale and dB (sums
 * over n) stay in one thread. */

AMP_CPU_INLINE void in_channel(bool f32, const amp_kernel *k, double eps, int64_t c) {
    const amp_tensor *dy = k->in[0], *x = k->in[1], *sc = k->in[2];
    amp_tensor *dx = k->out[0], *dsc = out_opt(k, 1), *db = out_opt(k, 2);
    const int64_t n = x->dims[0], ch = x->dims[1];
    int64_t sp = 1;
    for (int d = 2; d < x->rank; d++) sp *= x->dims[d];
    const amp_dtype xt = x->dtype, gt = dy->dtype, ot = dx->dtype;
    const double cnt = (double)sp, gamma = amp_ld(sc->dtype, sc->data, c);
    double tdy = 0, tdyx = 0;
    for (int64_t i = 0; i < n; i++) {
        const int64_t base = (i * ch + c) * sp;
        double sum = 0, sq = 0;
        for (int64_t s = 0; s < sp; s++) sum += amp_ldf(f32, xt, x->data, base + s);
        const double mean = sp > 0 ? sum / cnt : 0.0;
        for (int64_t s = 0; s < sp; s++) {
            double dv = amp_ldf(f32, xt, x->data, base + s) - mean;
            sq += dv * dv;
        }
        const double inv = 1.0 / sqrt((sp > 0 ? sq / cnt : 0.0) + eps);
        double sdy = 0, sdyx = 0;
        for (int64_t s = 0; s < sp; s++) {
            const double g = amp_ldf(f32, gt, dy->data, base + s);
            sdy += g;
            sdyx += g * (amp_ldf(f32, xt, x->data, base + s) - mean);
        }
        sdyx *= inv;
        const double mg = sp > 0 ? gamma * sdy / cnt : 0.0, mgx = sp > 0 ? gamma * sdyx / cnt : 0.0;
        const amp_norm_coef kc = amp_norm_coef_d(inv, mg, mgx, 0.0, 0.0, cnt);
        for (int64_t s = 0; s < sp; s++) {
            const double xhat = (amp_ldf(f32, xt, x->data, base + s) - mean) * inv;
            amp_stf(f32, ot, dx->data, base + s, amp_norm_dx_d(kc, gamma * amp_ldf(f32, gt, dy->data, base + s), xhat));
        }
        tdy += sdy;
        tdyx += sdyx;
    }
    if (dsc) amp_st(dsc->dtype, dsc->data, c, tdyx);
    if (db) amp_st(db->dtype, db->data, c, tdy);
}

amp_status amp_cpu_instance_norm_grad(amp_kernel *k) {
    const amp_tensor *dy = k->in[0], *x = k->in[1];
    const double eps = amp_attr_float(k->n, "epsilon", 1e-5f);
    const bool f32 = x->dtype == AMP_F32 && dy->dtype == AMP_F32 && k->out[0]->dtype == AMP_F32;
    const bool big = x->numel >= GRAD_PAR_MIN;
    AMP_PAR_FOR(big, num_threads(k->threads),
    for (int64_t c = 0; c < x->dims[1]; c++) {
        if (f32) in_channel(true, k, eps, c);
        else in_channel(false, k, eps, c);
    });
    return AMP_OK;
}

/* ---- LayerNormalizationGrad ------------------------------------------------------------------------
 * Rows of `cols` elements (the dims from axis on). dX per row in one pass over threads; then
 * dScale and dB, sums over rows: by column blocks when the parameter spans exactly the
 * normalised dims, otherwise (any other one-way broadcast) serially into the workspace. */

/* Where a parameter sits for an element of X: its stride along each X dim (0 when broadcast). */
typedef struct lparam {
    const amp_tensor *t;
    bool column; /* the parameter is indexed by the column alone */
    int64_t st[AMP_MAX_RANK];
} lparam;

static void lparam_init(lparam *p, const amp_tensor *t, const amp_tensor *x, int axis) {
    p->t = t;
    if (!t) return;
    int off = x->rank - t->rank;
    int64_t pst[AMP_MAX_RANK];
    amp_strides(t->rank, t->dims, pst);
    p->column = true;
    for (int d = 0; d < x->rank; d++) {
        int64_t pd = d >= off ? t->dims[d - off] : 1;
        p->st[d] = pd == 1 ? 0 : pst[d - off];
        if (d < axis ? pd != 1 : pd != x->dims[d]) p->column = false;
    }
}

static inline int64_t lparam_at(const lparam *p, const amp_tensor *x, int64_t flat, int64_t col) {
    if (p->column) return col;
    int64_t at = 0;
    for (int d = x->rank - 1; d >= 0; d--) {
        at += (flat % x->dims[d]) * p->st[d];
        flat /= x->dims[d];
    }
    return at;
}

#define LN_BLK 256

typedef struct ln_args {
    const amp_tensor *dy, *x, *smean, *sinv, *gmean, *ginv;
    amp_tensor *dx;
    lparam ps;
    double eps;
    int64_t rows, cols;
    double *stats; /* [rows][2]: mean, inv */
} ln_args;

/* The sums of one row: sum(g) and sum(g * (x - mean)) with g = dy * gamma; col_f32: gamma is
 * an f32 vector indexed by the column. */
AMP_CPU_INLINE void ln_row_sums(bool f32, bool col_f32, const ln_args *a, int64_t base, double mean, double *sg,
                           double *sgx) {
    const amp_tensor *dy = a->dy, *x = a->x, *sc = a->ps.t;
    const float *gp = sc->data;
    double s0 = 0, s1 = 0;
    for (int64_t j = 0; j < a->cols; j++) {
        const double gam = col_f32 ? (double)gp[j] : amp_ld(sc->dtype, sc->data, lparam_at(&a->ps, x, base + j, j));
        const double g = amp_ldf(f32, dy->dtype, dy->data, base + j) * gam;
        s0 += g;
        s1 += g * (amp_ldf(f32, x->dtype, x->data, base + j) - mean);
    }
    *sg = s0;
    *sgx = s1;
}

AMP_CPU_INLINE void ln_row_write(bool f32, bool col_f32, const ln_args *a, int64_t base, double mean, amp_norm_coef kc) {
    const amp_tensor *dy = a->dy, *x = a->x, *sc = a->ps.t;
    const float *gp = sc->data;
    for (int64_t j = 0; j < a->cols; j++) {
        const double xhat = (amp_ldf(f32, x->dtype, x->data, base + j) - mean) * kc.inv;
        double g = 0.0;
        if (dy) {
            const double gam = col_f32 ? (double)gp[j] : amp_ld(sc->dtype, sc->data, lparam_at(&a->ps, x, base + j, j));
            g = amp_ldf(f32, dy->dtype, dy->data, base + j) * gam;
        }
        amp_stf(f32, a->dx->dtype, a->dx->data, base + j, amp_norm_dx_d(kc, g, xhat));
    }
}

AMP_CPU_INLINE void ln_row(bool f32, const ln_args *a, int64_t r) {
    const amp_tensor *dy = a->dy, *x = a->x;
    const int64_t cols = a->cols, base = r * cols;
    const bool col_f32 = f32 && a->ps.t->dtype == AMP_F32 && a->ps.column;
    double mean, inv;
    if (a->smean && a->sinv) {
        mean = amp_ld(a->smean->dtype, a->smean->data, r);
        inv = amp_ld(a->sinv->dtype, a->sinv->data, r);
    } else {
        double sum = 0, sq = 0;
        for (int64_t j = 0; j < cols; j++) sum += amp_ldf(f32, x->dtype, x->data, base + j);
        mean = sum / (double)cols;
        for (int64_t j = 0; j < cols; j++) {
            double dv = amp_ldf(f32, x->dtype, x->data, base + j) - mean;
            sq += dv * dv;
        }
        inv = 1.0 / sqrt(sq / (double)cols + a->eps);
    }
    a->stats[2 * r] = mean;
    a->stats[2 * r + 1] = inv;
    double sg = 0, sgx = 0;
    if (dy) {
        if (col_f32) ln_row_sums(f32, true, a, base, mean, &sg, &sgx);
        else ln_row_sums(f32, false, a, base, mean, &sg, &sgx);
        sgx *= inv;
    }
    const double gm = a->gmean ? amp_ld(a->gmean->dtype, a->gmean->data, r) : 0.0;
    const double gi = a->ginv ? amp_ld(a->ginv->dtype, a->ginv->data, r) : 0.0;
    const amp_norm_coef kc = amp_norm_coef_d(inv, sg / (double)cols, sgx / (double)cols, gm, gi, (double)cols);
    if (col_f32) ln_row_write(f32, true, a, base, mean, kc);
    else ln_row_write(f32, false, a, base, mean, kc);
}

/* One block of columns of the per-column parameters' gradients, both in one sweep: sums over
 * rows of dy * xhat (Scale, when ds) and of dy (B, when db). */
AMP_CPU_INLINE void ln_param_block(bool f32, const ln_args *a, amp_tensor *ds, amp_tensor *db, int64_t b) {
    const amp_tensor *dy = a->dy, *x = a->x;
    const int64_t cols = a->cols, j0 = b * LN_BLK, j1 = j0 + LN_BLK < cols ? j0 + LN_BLK : cols;
    double s[LN_BLK], t[LN_BLK];
    for (int64_t j = j0; j < j1; j++) s[j - j0] = t[j - j0] = 0.0;
    for (int64_t r = 0; r < a->rows; r++) {
        const double mean = a->stats[2 * r], inv = a->stats[2 * r + 1];
        for (int64_t j = j0; j < j1; j++) {
            const int64_t at = r * cols + j;
            const double g = amp_ldf(f32, dy->dtype, dy->data, at);
            s[j - j0] += g * (amp_ldf(f32, x->dtype, x->data, at) - mean) * inv;
            t[j - j0] += g;
        }
    }
    for (int64_t j = j0; j < j1; j++) {
        if (ds) amp_st(ds->dtype, ds->data, j, s[j - j0]);
        if (db) amp_st(db->dtype, db->data, j, t[j - j0]);
    }
}

/* d(param) of a parameter broadcast any other way: sum over X of dy * (xhat for Scale, 1 for
 * B), accumulated serially into the workspace at the parameter's index. */
static void ln_param_general(const ln_args *a, const lparam *p, amp_tensor *out, bool scale, double *acc) {
    const amp_tensor *dy = a->dy, *x = a->x;
    for (int64_t j = 0; j < out->numel; j++) acc[j] = 0.0;
    for (int64_t r = 0; dy && r < a->rows; r++) {
        const double mean = a->stats[2 * r], inv = a->stats[2 * r + 1];
        for (int64_t j = 0; j < a->cols; j++) {
            const int64_t at = r * a->cols + j;
            const double g = amp_ld(dy->dtype, dy->data, at);
            acc[lparam_at(p, x, at, j)] += scale ? g * (amp_ld(x->dtype, x->data, at) - mean) * inv : g;
        }
    }
    for (int64_t j = 0; j < out->numel; j++) amp_st(out->dtype, out->data, j, acc[j]);
}

static void ln_param_grads(const amp_kernel *k, const ln_args *a, const lparam *pb, amp_tensor *ds, amp_tensor *db,
                           double *acc) {
    const amp_tensor *dy = a->dy, *x = a->x;
    amp_tensor *cs = a->ps.column && dy ? ds : NULL, *cb = db && pb->column && dy ? db : NULL;
    if (cs || cb) {
        const int64_t nblk = (a->cols + LN_BLK - 1) / LN_BLK;
        const bool f32 = x->dtype == AMP_F32 && dy->dtype == AMP_F32;
        const bool big = x->numel >= GRAD_PAR_MIN && nblk > 1;
        AMP_PAR_FOR(big, num_threads(k->threads),
        for (int64_t b = 0; b < nblk; b++) {
            if (f32) ln_param_block(true, a, cs, cb, b);
            else ln_param_block(false, a, cs, cb, b);
        });
    }
    if (!cs) ln_param_general(a, &a->ps, ds, true, acc);
    if (db && !cb) ln_param_general(a, pb, db, false, acc + a->ps.t->numel);
}

/* LayerNormalizationGrad: per row the mean and 1/stddev, then accumulators for a broadcast Scale
 * and B, all in double. */
amp_status amp_cpu_ws_layer_norm_grad(const amp_kernel *k, size_t *bytes) {
    const amp_tensor *x = k->in[1], *sc = k->in[2], *bi = k->nin > 3 ? k->in[3] : NULL;
    int64_t axis = amp_attr_int(k->n, "axis", -1);
    if (axis < 0) axis += x->rank;
    if (axis < 0 || axis >= x->rank) return amp_kernel_fail(k, AMP_ERR_INVALID_GRAPH, "axis out of range");
    int64_t rows = 1;
    for (int d = 0; d < axis; d++) rows *= x->dims[d];
    return amp_cpu_ws_elems(k, 2 * rows + sc->numel + (bi ? bi->numel : 0), sizeof(double), bytes);
}

amp_status amp_cpu_layer_norm_grad(amp_kernel *k) {
    ln_args a = {.dy = k->in[0], .x = k->in[1], .smean = in_opt(k, 4), .sinv = in_opt(k, 5), .gmean = in_opt(k, 6),
                 .ginv = in_opt(k, 7), .dx = k->out[0]};
    const amp_tensor *x = a.x, *sc = k->in[2], *bi = in_opt(k, 3);
    amp_tensor *db = out_opt(k, 2);
    a.eps = amp_attr_float(k->n, "epsilon", 1e-5f);
    int64_t axis = amp_attr_int(k->n, "axis", -1);
    if (axis < 0) axis += x->rank;
    if (axis < 0 || axis >= x->rank) return amp_kernel_fail(k, AMP_ERR_INVALID_GRAPH, "axis out of range");
    a.rows = 1;
    a.cols = 1;
    for (int d = 0; d < x->rank; d++) *(d < axis ? &a.rows : &a.cols) *= x->dims[d];
    const size_t need = sizeof(double) * (size_t)(2 * a.rows + sc->numel + (bi ? bi->numel : 0));
    if (k->ws_bytes < need || (need && !k->ws)) return amp_kernel_fail(k, AMP_ERR_INTERNAL, "workspace too small");
    a.stats = k->ws;
    double *acc = a.stats + 2 * a.rows;
    lparam pb;
    lparam_init(&a.ps, sc, x, (int)axis);
    lparam_init(&pb, bi, x, (int)axis);
    const bool f32 = x->dtype == AMP_F32 && a.dx->dtype == AMP_F32 && (!a.dy || a.dy->dtype == AMP_F32);
    const bool big = x->numel >= GRAD_PAR_MIN;
    AMP_PAR_FOR(big, num_threads(k->threads),
    for (int64_t r = 0; r < a.rows; r++) {
        if (f32) ln_row(true, &a, r);
        else ln_row(false, &a, r);
    });
    ln_param_grads(k, &a, &pb, k->out[1], db, acc);
    return AMP_OK;
}

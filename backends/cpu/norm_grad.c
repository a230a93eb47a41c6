/* CPU kernels of the norm family's gradient ops (ir/ops/norm_grad.def, built by ir/ops/norm_grad.c):
 * GroupNormalizationGrad, LRNGrad and MeanVarianceNormalizationGrad.
 *
 * Each recomputes the forward statistics from X in double; sums and dot products accumulate in
 * double and every element is computed in double, then stored with the output dtype's
 * rounding, so one loop serves f32, f16, bf16 and f64 (16-bit backward runs with the same
 * accumulation). Loop bodies are inlined twice, with plain float accesses when the big
 * tensors are f32 and with the per-dtype accessors otherwise. */
#include "backends/cpu/kernels.h"
#include "backends/cpu/norm.h"

/* Below this many elements the OpenMP fork costs more than it saves. */
#define GRAD_PAR_MIN 32768

#define GN_INLINE static inline __attribute__((always_inline))

GN_INLINE double ldf(bool f32, amp_dtype t, const void *p, int64_t i) {
    return f32 ? (double)((const float *)p)[i] : amp_ld(t, p, i);
}
GN_INLINE void stf(bool f32, amp_dtype t, void *p, int64_t i, double v) {
    if (f32) ((float *)p)[i] = (float)v;
    else amp_st(t, p, i, v);
}

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

GN_INLINE void gng_block(bool f32, const gng_args *a, int64_t ng) {
    const int64_t len = a->cpg * a->sp, base = ng * len, g = ng % a->groups, n = ng / a->groups;
    const amp_tensor *dy = a->dy, *x = a->x, *sc = a->sc;
    const amp_dtype xt = x->dtype, dyt = dy->dtype;
    double sum = 0, sq = 0;
    for (int64_t i = 0; i < len; i++) sum += ldf(f32, xt, x->data, base + i);
    const double mean = sum / (double)len;
    for (int64_t i = 0; i < len; i++) {
        const double d = ldf(f32, xt, x->data, base + i) - mean;
        sq += d * d;
    }
    const double inv = 1.0 / sqrt(sq / (double)len + a->eps);
    double sg = 0, sgx = 0; /* sum(dxhat), sum(dxhat * xhat) over the group */
    for (int64_t j = 0; j < a->cpg; j++) {
        const int64_t c = g * a->cpg + j, row = base + j * a->sp;
        double s1 = 0, s2 = 0;
        for (int64_t i = 0; i < a->sp; i++) {
            const double gy = ldf(f32, dyt, dy->data, row + i);
            s1 += gy;
            s2 += gy * (ldf(f32, xt, x->data, row + i) - mean);
        }
        s2 *= inv;
        a->sums[(n * a->ch + c) * 2] = s1;
        a->sums[(n * a->ch + c) * 2 + 1] = s2;
        const double gam = ldf(f32, sc->dtype, sc->data, a->per_channel ? c : g);
        sg += gam * s1;
        sgx += gam * s2;
    }
    sg /= (double)len;
    sgx /= (double)len;
    for (int64_t j = 0; j < a->cpg; j++) {
        const int64_t row = base + j * a->sp;
        const double gam = ldf(f32, sc->dtype, sc->data, a->per_channel ? g * a->cpg + j : g);
        for (int64_t i = 0; i < a->sp; i++) {
            const double xh = (ldf(f32, xt, x->data, row + i) - mean) * inv;
            const double gy = ldf(f32, dyt, dy->data, row + i);
            stf(f32, a->dx->dtype, a->dx->data, row + i, inv * (gam * gy - sg - xh * sgx));
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
#pragma omp parallel for num_threads(k->threads) if (big) schedule(static)
    for (int64_t ng = 0; ng < n * groups; ng++) {
        if (f32) gng_block(true, &a, ng);
        else gng_block(false, &a, ng);
    }
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

GN_INLINE double lrn_pow(double d, double beta) {
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
GN_INLINE double lrn_den(bool f32, const lrng_args *a, int64_t r, int64_t s) {
    const int64_t c = r % a->ch, nbase = (r - c) * a->sp;
    const int64_t i0 = c - a->lo > 0 ? c - a->lo : 0, i1 = c + a->hi < a->ch - 1 ? c + a->hi : a->ch - 1;
    double sq = 0;
    for (int64_t i = i0; i <= i1; i++) {
        const double v = ldf(f32, a->x->dtype, a->x->data, nbase + i * a->sp + s);
        sq += v * v;
    }
    return a->bias + a->scale * sq;
}

GN_INLINE void lrng_pass1(bool f32, const lrng_args *a, int64_t r) {
    for (int64_t s = 0; s < a->sp; s++) {
        const int64_t at = r * a->sp + s;
        const double d = lrn_den(f32, a, r, s);
        a->w[at] = ldf(f32, a->dy->dtype, a->dy->data, at) * ldf(f32, a->x->dtype, a->x->data, at) *
                   lrn_pow(d, a->beta) / d;
    }
}

GN_INLINE void lrng_pass2(bool f32, const lrng_args *a, int64_t r) {
    const int64_t c = r % a->ch, nbase = (r - c) * a->sp;
    const int64_t i0 = c - a->hi > 0 ? c - a->hi : 0, i1 = c + a->lo < a->ch - 1 ? c + a->lo : a->ch - 1;
    const double k2 = 2.0 * a->scale * a->beta;
    for (int64_t s = 0; s < a->sp; s++) {
        const int64_t at = r * a->sp + s;
        double t = 0;
        for (int64_t i = i0; i <= i1; i++) t += a->w[nbase + i * a->sp + s];
        const double v = ldf(f32, a->dy->dtype, a->dy->data, at) * lrn_pow(lrn_den(f32, a, r, s), a->beta) -
                         k2 * ldf(f32, a->x->dtype, a->x->data, at) * t;
        stf(f32, a->dx->dtype, a->dx->data, at, v);
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
#pragma omp parallel for num_threads(k->threads) if (big) schedule(static)
    for (int64_t r = 0; r < rows; r++) {
        if (f32) lrng_pass1(true, &a, r);
        else lrng_pass1(false, &a, r);
    }
#pragma omp parallel for num_threads(k->threads) if (big) schedule(static)
    for (int64_t r = 0; r < rows; r++) {
        if (f32) lrng_pass2(true, &a, r);
        else lrng_pass2(false, &a, r);
    }
    return AMP_OK;
}

/* ---- MeanVarianceNormalizationGrad ---------------------------------------------------------------
 * Per kept position, over its M reduced elements with d = x - mean, s = sqrt(mean(d^2)) and
 * D = s + 1e-9 (Y = d / D):
 *   dX = (dY - mean(dY)) / D - d * sum(dY * d) / (M s D^2),
 * the second term 0 where s = 0 (a constant slice: Y is 0 there whatever the perturbation
 * direction's sign, and the kink has no derivative). The geometry is the forward's
 * (backends/cpu/norm.c): kept and reduced dims, neighbours of one kind merged. */

GN_INLINE void mvng_pos(bool f32, const amp_tensor *dy, const amp_tensor *x, amp_tensor *dx, const mvn_geom *gm,
                        int64_t p) {
    const int64_t base = mvn_kept_off(gm, p);
    const amp_dtype xt = x->dtype, dyt = dy->dtype;
    const double m = (double)gm->rcount;
    double sum = 0, sq = 0, sdy = 0, sdyd = 0;
    MVN_WALK(gm, base, off, sum += ldf(f32, xt, x->data, off));
    const double mean = sum / m;
    MVN_WALK(gm, base, off, {
        const double d = ldf(f32, xt, x->data, off) - mean, gy = ldf(f32, dyt, dy->data, off);
        sq += d * d;
        sdy += gy;
        sdyd += gy * d;
    });
    const double s = sqrt(sq / m), den = s + 1e-9, inv = 1.0 / den, mdy = sdy / m;
    const double coef = s > 0 ? sdyd / (m * s * den * den) : 0.0;
    MVN_WALK(gm, base, off, {
        const double d = ldf(f32, xt, x->data, off) - mean;
        stf(f32, dx->dtype, dx->data, off, (ldf(f32, dyt, dy->data, off) - mdy) * inv - d * coef);
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
#pragma omp parallel for num_threads(k->threads) if (big) schedule(static)
    for (int64_t p = 0; p < gm.kcount; p++) {
        if (f32) mvng_pos(true, dy, x, dx, &gm, p);
        else mvng_pos(false, dy, x, dx, &gm, p);
    }
    return AMP_OK;
}

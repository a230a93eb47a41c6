/* CPU kernels: GroupNormalization, LRN and MeanVarianceNormalization (shape inference in
 * ir/ops/norm.c).
 *
 * Statistics accumulate in double. Through the per-dtype accessors every element is computed
 * in double and stored with the output dtype's rounding, so one loop serves f32, f16, bf16,
 * f64 and mixed parameter dtypes; f32 tensors take loops over plain floats (the same body
 * inlined with the accessors resolved, or a loop of its own where float arithmetic is enough:
 * GroupNormalization's normalising pass, LRN). */
#include "backends/cpu/norm.h"
#include "backends/cpu/par.h"

/* Below this many elements the OpenMP fork costs more than it saves. */
#define NORM_PAR_MIN 32768


/* ---- GroupNormalization ----------------------------------------------------------------------
 * With X laid out N x C x spatial, the channels of one group are consecutive, so group (n, g)
 * is one contiguous block of C/G x spatial elements starting at (n*G + g) times that size.
 * Each block is read once for its mean and variance and once more to normalise it with its
 * channels' scale and bias; blocks are independent, so threads split the N x G of them. */

#define GN_LANES 4

/* Mean and (population) variance of n > 0 contiguous floats in one read: double sums of the
 * deviations from the block's first element, over independent lanes the compiler can keep in
 * registers. The shift keeps E[d^2] - E[d]^2 free of cancellation unless that element lies
 * thousands of deviations from the mean (and even then the loss is ~1e-9 relative). */
static void stats_f32(const float *p, int64_t n, double *mean, double *var) {
    const double k0 = p[0];
    double s1[GN_LANES] = {0}, s2[GN_LANES] = {0};
    int64_t i = 0;
    for (; i + GN_LANES <= n; i += GN_LANES)
        for (int l = 0; l < GN_LANES; l++) {
            const double d = (double)p[i + l] - k0;
            s1[l] += d;
            s2[l] += d * d;
        }
    for (; i < n; i++) {
        const double d = (double)p[i] - k0;
        s1[0] += d;
        s2[0] += d * d;
    }
    double a = 0, b = 0;
    for (int l = 0; l < GN_LANES; l++) {
        a += s1[l];
        b += s2[l];
    }
    const double m = a / (double)n, v = b / (double)n - m * m;
    *mean = k0 + m;
    *var = v > 0 ? v : 0;
}

typedef struct gn_args {
    const amp_tensor *x, *sc, *bi;
    amp_tensor *y;
    double eps;
    int64_t cpg, sp, groups; /* channels per group, spatial size, G */
    bool per_channel;        /* opset 21: scale and bias per channel; 18: per group */
} gn_args;

AMP_CPU_INLINE void gn_block(bool f32, const gn_args *a, int64_t ng) {
    const int64_t len = a->cpg * a->sp, base = ng * len, g = ng % a->groups;
    const amp_tensor *x = a->x, *sc = a->sc, *bi = a->bi;
    amp_tensor *y = a->y;
    double mean, var;
    if (f32) {
        stats_f32((const float *)x->data + base, len, &mean, &var);
    } else {
        /* two passes through the accessors: exact enough for f64 inputs too */
        double sum = 0, sq = 0;
        for (int64_t i = 0; i < len; i++) sum += amp_ld(x->dtype, x->data, base + i);
        mean = sum / (double)len;
        for (int64_t i = 0; i < len; i++) {
            const double d = amp_ld(x->dtype, x->data, base + i) - mean;
            sq += d * d;
        }
        var = sq / (double)len;
    }
    const double inv = 1.0 / sqrt(var + a->eps);
    for (int64_t j = 0; j < a->cpg; j++) {
        const int64_t pi = a->per_channel ? g * a->cpg + j : g, row = base + j * a->sp;
        const double s = amp_ldf(f32, sc->dtype, sc->data, pi) * inv, b = amp_ldf(f32, bi->dtype, bi->data, pi);
        if (f32) {
            const float fm = (float)mean, fs = (float)s, fb = (float)b;
            const float *xr = (const float *)x->data + row;
            float *yr = (float *)y->data + row;
            for (int64_t i = 0; i < a->sp; i++) yr[i] = (xr[i] - fm) * fs + fb;
        } else {
            for (int64_t i = 0; i < a->sp; i++)
                amp_st(y->dtype, y->data, row + i, (amp_ld(x->dtype, x->data, row + i) - mean) * s + b);
        }
    }
}

amp_status amp_cpu_group_norm(amp_kernel *k) {
    const amp_tensor *x = k->in[0];
    const int64_t groups = amp_attr_int(k->n, "num_groups", 0), n = x->dims[0], ch = x->dims[1];
    if (groups < 1 || ch % groups != 0)
        return amp_kernel_fail(k, AMP_ERR_INVALID_GRAPH, "num_groups %lld does not divide %lld channels",
                               (long long)groups, (long long)ch);
    gn_args a = {.x = x, .sc = k->in[1], .bi = k->in[2], .y = k->out[0], .groups = groups, .cpg = ch / groups,
                 .eps = amp_attr_float(k->n, "epsilon", 1e-5f), .per_channel = k->opset >= 21, .sp = 1};
    if (x->numel == 0) return AMP_OK; /* before any product of dims, which may overflow then */
    for (int d = 2; d < x->rank; d++) a.sp *= x->dims[d];
    /* A double stash asks for the first stage in double: the accessor loop computes in double
     * throughout, the f32 loop normalises in float. */
    const bool stash64 = a.per_channel && amp_attr_int(k->n, "stash_type", AMP_F32) == AMP_F64;
    const bool f32 = !stash64 && x->dtype == AMP_F32 && a.y->dtype == AMP_F32 && a.sc->dtype == AMP_F32 &&
                     a.bi->dtype == AMP_F32;
    const bool big = x->numel >= NORM_PAR_MIN;
    AMP_PAR_FOR(big, num_threads(k->threads) schedule(static),
    for (int64_t ng = 0; ng < n * groups; ng++) {
        if (f32) gn_block(true, &a, ng);
        else gn_block(false, &a, ng);
    });
    return AMP_OK;
}

/* ---- LRN -------------------------------------------------------------------------------------
 * Y = X / (bias + alpha/size * S)^beta with S the sum of squares over the channel window
 * [c - floor((size-1)/2), c + ceil((size-1)/2)] clipped to [0, C). Rows (n, c) are
 * independent; each reads its window's rows along the spatial positions. */

/* d^-beta, without pow for the exponents models use (AlexNet's 0.75). */
AMP_CPU_INLINE double lrn_pow(double d, double beta) {
    if (beta == 0.75) return 1.0 / (sqrt(d) * sqrt(sqrt(d)));
    if (beta == 0.5) return 1.0 / sqrt(d);
    if (beta == 1.0) return 1.0 / d;
    return pow(d, -beta);
}

static void lrn_row(const amp_tensor *x, amp_tensor *y, int64_t r, int64_t ch, int64_t sp, int64_t lo, int64_t hi,
                    double bias, double scale, double beta) {
    const int64_t c = r % ch, nbase = (r - c) * sp;
    const int64_t i0 = c - lo > 0 ? c - lo : 0, i1 = c + hi < ch - 1 ? c + hi : ch - 1;
    for (int64_t s = 0; s < sp; s++) {
        double sq = 0;
        for (int64_t i = i0; i <= i1; i++) {
            const double v = amp_ld(x->dtype, x->data, nbase + i * sp + s);
            sq += v * v;
        }
        const int64_t at = r * sp + s;
        amp_st(y->dtype, y->data, at, amp_ld(x->dtype, x->data, at) * lrn_pow(bias + scale * sq, beta));
    }
}

/* f32: the window's squares are summed row by row into Y (size-many positive terms, so float
 * loses nothing that matters), then Y is overwritten with the result; both loops run along
 * contiguous rows, and the common exponent needs only float square roots. */
static void lrn_row_f32(const float *x, float *y, int64_t r, int64_t ch, int64_t sp, int64_t lo, int64_t hi,
                        double bias, double scale, double beta) {
    const int64_t c = r % ch, nbase = (r - c) * sp;
    const int64_t i0 = c - lo > 0 ? c - lo : 0, i1 = c + hi < ch - 1 ? c + hi : ch - 1;
    const float *xr = x + r * sp;
    float *yr = y + r * sp;
    for (int64_t s = 0; s < sp; s++) yr[s] = 0;
    for (int64_t i = i0; i <= i1; i++) {
        const float *xi = x + nbase + i * sp;
        for (int64_t s = 0; s < sp; s++) yr[s] += xi[s] * xi[s];
    }
    const float fb = (float)bias, fs = (float)scale;
    if (beta == 0.75) {
        for (int64_t s = 0; s < sp; s++) {
            const float d = fb + fs * yr[s];
            yr[s] = xr[s] / (sqrtf(d) * sqrtf(sqrtf(d)));
        }
    } else {
        for (int64_t s = 0; s < sp; s++) yr[s] = (float)(xr[s] * lrn_pow(bias + scale * yr[s], beta));
    }
}

amp_status amp_cpu_lrn(amp_kernel *k) {
    const amp_tensor *x = k->in[0];
    amp_tensor *y = k->out[0];
    const int64_t size = amp_attr_int(k->n, "size", 0);
    if (size < 1) return amp_kernel_fail(k, AMP_ERR_INVALID_GRAPH, "size %lld must be >= 1", (long long)size);
    const double alpha = amp_attr_float(k->n, "alpha", 1e-4f), beta = amp_attr_float(k->n, "beta", 0.75f);
    const double bias = amp_attr_float(k->n, "bias", 1.0f), scale = alpha / (double)size;
    /* an empty X may still have huge dims: no loop over them */
    if (x->numel == 0) return AMP_OK;
    const int64_t ch = x->dims[1], lo = (size - 1) / 2, hi = size / 2;
    int64_t sp = 1;
    for (int d = 2; d < x->rank; d++) sp *= x->dims[d];
    const int64_t rows = x->dims[0] * ch;
    const bool f32 = x->dtype == AMP_F32 && y->dtype == AMP_F32;
    const bool big = x->numel >= NORM_PAR_MIN;
    AMP_PAR_FOR(big, num_threads(k->threads) schedule(static),
    for (int64_t r = 0; r < rows; r++) {
        if (f32) lrn_row_f32(x->data, y->data, r, ch, sp, lo, hi, bias, scale, beta);
        else lrn_row(x, y, r, ch, sp, lo, hi, bias, scale, beta);
    });
    return AMP_OK;
}

/* ---- MeanVarianceNormalization ---------------------------------------------------------------
 * Y = (X - E[X]) / (sqrt(E[(X - E[X])^2]) + 1e-9) over the axes, which is the ONNX function's
 * (E[X^2] - E[X]^2 there, the same quantity without its cancellation). X's dims split into
 * kept and reduced ones; neighbours of one kind merge (size-1 dims dropped), so the walk over
 * one kept position's elements is an odometer over at most a few reduced dims whose innermost
 * is usually contiguous (axes 0, 2, 3 of N x C x H x W: N outer, H x W inner). */

amp_status amp_cpu_mvn_geom_init(amp_kernel *k, const amp_tensor *x, mvn_geom *gm) {
    static const int64_t def_axes[3] = {0, 2, 3};
    const int64_t *axes = def_axes;
    int n = amp_attr_ints(k->n, "axes", &axes);
    if (n < 0) {
        axes = def_axes;
        n = 3;
    }
    bool red[AMP_MAX_RANK] = {false};
    for (int d = 0; d < x->rank; d++) red[d] = n == 0; /* empty axes: every axis */
    for (int i = 0; i < n; i++) {
        if (axes[i] < -x->rank || axes[i] >= x->rank)
            return amp_kernel_fail(k, AMP_ERR_INVALID_GRAPH, "axis %lld out of range", (long long)axes[i]);
        red[axes[i] < 0 ? axes[i] + x->rank : axes[i]] = true;
    }
    int64_t st[AMP_MAX_RANK];
    amp_strides(x->rank, x->dims, st);
    memset(gm, 0, sizeof *gm);
    gm->kcount = gm->rcount = 1;
    int last = -1; /* kind of the previous dim kept: 0 kept, 1 reduced */
    for (int d = 0; d < x->rank; d++) {
        if (x->dims[d] == 1) continue;
        const int r = red[d];
        int64_t *len = r ? gm->rlen : gm->klen, *str = r ? gm->rst : gm->kst;
        int *cnt = r ? &gm->nr : &gm->nk;
        if (last == r) {
            /* adjacent (between them only size-1 dims): one dim of the product's length */
            len[*cnt - 1] *= x->dims[d];
            str[*cnt - 1] = st[d];
        } else {
            len[*cnt] = x->dims[d];
            str[*cnt] = st[d];
            (*cnt)++;
        }
        last = r;
        *(r ? &gm->rcount : &gm->kcount) *= x->dims[d];
    }
    if (gm->nr == 0) {
        gm->rlen[0] = 1;
        gm->nr = 1;
    }
    gm->inner = gm->rlen[gm->nr - 1];
    gm->istride = gm->rst[gm->nr - 1];
    return AMP_OK;
}

/* Sums over a contiguous f32 run on independent lanes (a single chain of double adds would
 * bound the loop by the add latency). */
static double sum_f32(const float *p, int64_t n) {
    double s[GN_LANES] = {0};
    int64_t i = 0;
    for (; i + GN_LANES <= n; i += GN_LANES)
        for (int l = 0; l < GN_LANES; l++) s[l] += p[i + l];
    for (; i < n; i++) s[0] += p[i];
    return (s[0] + s[1]) + (s[2] + s[3]);
}
static double sqdev_f32(const float *p, int64_t n, double mean) {
    double s[GN_LANES] = {0};
    int64_t i = 0;
    for (; i + GN_LANES <= n; i += GN_LANES)
        for (int l = 0; l < GN_LANES; l++) {
            const double d = p[i + l] - mean;
            s[l] += d * d;
        }
    for (; i < n; i++) s[0] += (p[i] - mean) * (p[i] - mean);
    return (s[0] + s[1]) + (s[2] + s[3]);
}

AMP_CPU_INLINE void mvn_pos(bool f32, const amp_tensor *x, amp_tensor *y, const mvn_geom *gm, int64_t p) {
    const int64_t base = mvn_kept_off(gm, p);
    const amp_dtype xt = x->dtype, yt = y->dtype;
    const bool runs = f32 && gm->istride == 1; /* contiguous innermost runs */
    double sum = 0, sq = 0;
    if (runs)
        for (int64_t o = 0; o < gm->rcount / gm->inner; o++)
            sum += sum_f32((const float *)x->data + base + mvn_outer_off(gm, o), gm->inner);
    else
        MVN_WALK(gm, base, off, sum += amp_ldf(f32, xt, x->data, off));
    const double mean = sum / (double)gm->rcount;
    if (runs)
        for (int64_t o = 0; o < gm->rcount / gm->inner; o++)
            sq += sqdev_f32((const float *)x->data + base + mvn_outer_off(gm, o), gm->inner, mean);
    else
        MVN_WALK(gm, base, off, {
            const double d = amp_ldf(f32, xt, x->data, off) - mean;
            sq += d * d;
        });
    const double inv = 1.0 / (sqrt(sq / (double)gm->rcount) + 1e-9);
    MVN_WALK(gm, base, off, amp_stf(f32, yt, y->data, off, (amp_ldf(f32, xt, x->data, off) - mean) * inv));
}

amp_status amp_cpu_mvn(amp_kernel *k) {
    const amp_tensor *x = k->in[0];
    amp_tensor *y = k->out[0];
    mvn_geom gm;
    if (x->numel == 0) return AMP_OK; /* before the dims' products, which may overflow then */
    amp_status s = amp_cpu_mvn_geom_init(k, x, &gm);
    if (s) return s;
    const bool f32 = x->dtype == AMP_F32 && y->dtype == AMP_F32;
    const bool big = x->numel >= NORM_PAR_MIN;
    AMP_PAR_FOR(big, num_threads(k->threads) schedule(static),
    for (int64_t p = 0; p < gm.kcount; p++) {
        if (f32) mvn_pos(true, x, y, &gm, p);
        else mvn_pos(false, x, y, &gm, p);
    });
    return AMP_OK;
}

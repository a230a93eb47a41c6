/* MaxPool, AveragePool, GlobalAveragePool and GlobalMaxPool on the CPU.
 *
 * One and two spatial dims (nearly every model) run through typed 2-D loops; three and more
 * go through a general N-D walk that loads through amp_ld. Planes (image, channel) are spread
 * over the threads. MaxPool copies the winning element itself, so 16-bit and integer inputs
 * come out bit-exact. */
#include <float.h>
#include <math.h>
#include <omp.h>
#include <string.h>

#include "backends/cpu/cpu.h"
#include "backends/cpu/par.h"

#include "ir/ops/conv.h"
/* -------------------------------------------------------------------------------------------- */

/* Below this many input elements a single thread is faster than waking the others. */
#define POOL_PAR_MIN 32768

typedef struct pool_job {
    amp_conv_geom g; /* one spatial dim is lifted to two (a leading dim of 1) for the 2-D loops */
    amp_dtype dt;
    int64_t planes, insz, outsz;
    int interior; /* 2-D: every window lies inside the input (no padding reached) */
    int count_pad, storage_order;
    const void *x;
    void *y;
    int64_t *ind;
} pool_job;

/* The kernel taps t in [0, k) whose index b + t*d lies in [0, n). */
static inline void taps(int64_t b, int64_t d, int64_t k, int64_t n, int64_t *lo, int64_t *hi) {
    if (b >= 0 && b + (k - 1) * d < n) { /* the interior: no division */
        *lo = 0;
        *hi = k;
        return;
    }
    int64_t l = b >= 0 ? 0 : (-b + d - 1) / d;
    int64_t h = n - b <= 0 ? 0 : (n - b + d - 1) / d;
    if (h > k) h = k;
    if (l > h) l = h;
    *lo = l;
    *hi = h;
}

/* Taps inside the padded extent [-pb, n + pe), for count_include_pad. */
static inline int64_t taps_padded(int64_t b, int64_t d, int64_t k, int64_t n, int64_t pb, int64_t pe) {
    int64_t lo, hi;
    taps(b + pb, d, k, n + pb + pe, &lo, &hi);
    return hi - lo;
}

static inline void copy_elem(void *dst, int64_t di, const void *src, int64_t si, size_t es) {
    memcpy((char *)dst + (size_t)di * es, (const char *)src + (size_t)si * es, es);
}

/* Lowest value of the dtype, the result of a window that holds no input element. */
static void store_lowest(amp_dtype dt, void *y, int64_t i) {
    if (dt == AMP_I8)
        ((int8_t *)y)[i] = INT8_MIN;
    else if (dt == AMP_U8)
        ((uint8_t *)y)[i] = 0;
    else
        amp_st(dt, y, i, -INFINITY);
}

#define LD_F32(p, i) (((const float *)(p))[i])
#define LD_F64(p, i) (((const double *)(p))[i])
#define LD_F16(p, i) amp_f16_to_f32(((const uint16_t *)(p))[i])
#define LD_BF16(p, i) amp_bf16_to_f32(((const uint16_t *)(p))[i])
#define LD_I8(p, i) ((float)((const int8_t *)(p))[i])
#define LD_U8(p, i) ((float)((const uint8_t *)(p))[i])
#define ST_F32(p, i, v) (((float *)(p))[i] = (v))
#define ST_F64(p, i, v) (((double *)(p))[i] = (v))
#define ST_F16(p, i, v) (((uint16_t *)(p))[i] = amp_f32_to_f16(v))
#define ST_BF16(p, i, v) (((uint16_t *)(p))[i] = amp_f32_to_bf16(v))

#define ST_I8(p, i, v) (((int8_t *)(p))[i] = (v) == -INFINITY ? INT8_MIN : (int8_t)(v))
#define ST_U8(p, i, v) (((uint8_t *)(p))[i] = (v) == -INFINITY ? 0 : (uint8_t)(v))

/* Output positions are done a row chunk at a time: for each window tap one pass over the chunk,
 * so the inner loop has no bounds checks and no data-dependent branches (which tap wins is
 * unpredictable on real data). An empty window leaves -inf, stored as the dtype's lowest. */
#define CHUNK 256

/* Windows wholly inside the input: per output, no bounds at all; the kernel width is made a
 * constant for the common 2 and 3 so the compiler unrolls the taps. */
#define DEFINE_POOL2D(SUF, T, ACC, LD, ST)                                                                             \
    static inline __attribute__((always_inline)) void rowmax_##SUF(const T *xr, T *yr, int64_t OW, int64_t sw,         \
                                                                   int64_t KH, int64_t KW, int64_t rs, int64_t dw) {   \
        for (int64_t ow = 0; ow < OW; ow++) {                                                                          \
            const T *p = xr + ow * sw;                                                                                 \
            ACC m = LD(p, 0);                                                                                          \
            int nan = 0;                                                                                               \
            for (int64_t kh = 0; kh < KH; kh++)                                                                        \
                for (int64_t kw = 0; kw < KW; kw++) {                                                                  \
                    ACC v = LD(p, kh * rs + kw * dw);                                                                  \
                    nan |= v != v;                                                                                     \
                    m = v > m ? v : m;                                                                                 \
                }                                                                                                      \
            ST(yr, ow, nan ? (ACC)NAN : m);                                                                            \
        }                                                                                                              \
    }                                                                                                                  \
    static void max2d_##SUF(const pool_job *j, int64_t plane) {                                                        \
        const amp_conv_geom *g = &j->g;                                                                                \
        int64_t H = g->in[0], W = g->in[1], OH = g->out[0], OW = g->out[1], sw = g->s[1];                              \
        const T *x = (const T *)j->x + plane * j->insz;                                                                \
        T *y = (T *)j->y + plane * j->outsz;                                                                           \
        if (j->interior) {                                                                                             \
            int64_t KH = g->k[0], KW = g->k[1], rs = g->d[0] * W, dw = g->d[1];                                        \
            for (int64_t oh = 0; oh < OH; oh++) {                                                                      \
                const T *xr = x + oh * g->s[0] * W;                                                                    \
                T *yr = y + oh * OW;                                                                                   \
                if (KW == 2)                                                                                           \
                    rowmax_##SUF(xr, yr, OW, sw, KH, 2, rs, dw);                                                       \
                else if (KW == 3)                                                                                      \
                    rowmax_##SUF(xr, yr, OW, sw, KH, 3, rs, dw);                                                       \
                else                                                                                                   \
                    rowmax_##SUF(xr, yr, OW, sw, KH, KW, rs, dw);                                                      \
            }                                                                                                          \
            return;                                                                                                    \
        }                                                                                                              \
        ACC acc[CHUNK];                                                                                                \
        for (int64_t oh = 0; oh < OH; oh++) {                                                                          \
            int64_t hb = oh * g->s[0] - g->pb[0], hlo, hhi;                                                            \
            taps(hb, g->d[0], g->k[0], H, &hlo, &hhi);                                                                 \
            for (int64_t c0 = 0; c0 < OW; c0 += CHUNK) {                                                               \
                int64_t n = OW - c0 < CHUNK ? OW - c0 : CHUNK;                                                         \
                for (int64_t i = 0; i < n; i++)                                                                        \
                    acc[i] = (ACC)-INFINITY;                                                                           \
                for (int64_t kh = hlo; kh < hhi; kh++) {                                                               \
                    const T *xr = x + (hb + kh * g->d[0]) * W;                                                         \
                    for (int64_t kw = 0; kw < g->k[1]; kw++) {                                                         \
                        int64_t base = kw * g->d[1] - g->pb[1], lo, hi;                                                \
                        taps(base, sw, OW, W, &lo, &hi);                                                               \
                        lo = lo > c0 ? lo - c0 : 0;                                                                    \
                        hi = hi - c0 < n ? hi - c0 : n;                                                                \
                        int64_t off0 = base + c0 * sw;                                                                 \
                        for (int64_t i = lo; i < hi; i++) {                                                            \
                            ACC v = LD(xr, off0 + i * sw);                                                             \
                            acc[i] = ((v > acc[i]) | (v != v)) ? v : acc[i];                                           \
                        }                                                                                              \
                    }                                                                                                  \
                }                                                                                                      \
                for (int64_t i = 0; i < n; i++)                                                                        \
                    ST(y, oh *OW + c0 + i, acc[i]);                                                                    \
            }                                                                                                          \
        }                                                                                                              \
    }                                                                                                                  \
                                                                                                                       \
    /* With Indices: per output, tracking the winner (the first of equals; a NaN wins). */                             \
    static void maxind2d_##SUF(const pool_job *j, int64_t plane) {                                                     \
        const amp_conv_geom *g = &j->g;                                                                                \
        int64_t H = g->in[0], W = g->in[1], OH = g->out[0], OW = g->out[1];                                            \
        int64_t xo = plane * j->insz, yo = plane * j->outsz, dh = g->d[0], dw = g->d[1];                               \
        const T *x = j->x;                                                                                             \
        T *y = j->y;                                                                                                   \
        for (int64_t oh = 0; oh < OH; oh++) {                                                                          \
            int64_t hb = oh * g->s[0] - g->pb[0], hlo, hhi;                                                            \
            taps(hb, dh, g->k[0], H, &hlo, &hhi);                                                                      \
            for (int64_t ow = 0; ow < OW; ow++) {                                                                      \
                int64_t wb = ow * g->s[1] - g->pb[1], wlo, whi;                                                        \
                taps(wb, dw, g->k[1], W, &wlo, &whi);                                                                  \
                int64_t yi = yo + oh * OW + ow;                                                                        \
                if (hlo >= hhi || wlo >= whi) {                                                                        \
                    store_lowest(j->dt, j->y, yi);                                                                     \
                    j->ind[yi] = xo;                                                                                   \
                    continue;                                                                                          \
                }                                                                                                      \
                int64_t bi = xo + (hb + hlo * dh) * W + wb + wlo * dw;                                                 \
                ACC best = LD(x, bi);                                                                                  \
                for (int64_t kh = hlo; kh < hhi; kh++) {                                                               \
                    int64_t r = xo + (hb + kh * dh) * W + wb;                                                          \
                    for (int64_t kw = wlo; kw < whi; kw++) {                                                           \
                        int64_t xi = r + kw * dw;                                                                      \
                        ACC v = LD(x, xi);                                                                             \
                        int take = (v > best) | ((v != v) & (best == best));                                           \
                        best = take ? v : best;                                                                        \
                        bi = take ? xi : bi;                                                                           \
                    }                                                                                                  \
                }                                                                                                      \
                y[yi] = x[bi];                                                                                         \
                int64_t l = bi - xo, h = l / W, w = l % W;                                                             \
                j->ind[yi] = xo + (j->storage_order ? h + w * H : h * W + w);                                          \
            }                                                                                                          \
        }                                                                                                              \
    }

DEFINE_POOL2D(f32, float, float, LD_F32, ST_F32)
DEFINE_POOL2D(f64, double, double, LD_F64, ST_F64)
DEFINE_POOL2D(f16, uint16_t, float, LD_F16, ST_F16)
DEFINE_POOL2D(bf16, uint16_t, float, LD_BF16, ST_BF16)
DEFINE_POOL2D(i8, int8_t, float, LD_I8, ST_I8)
DEFINE_POOL2D(u8, uint8_t, float, LD_U8, ST_U8)

#define DEFINE_AVG2D(SUF, T, ACC, LD, ST)                                                                              \
    static void avg2d_##SUF(const pool_job *j, int64_t plane) {                                                        \
        const amp_conv_geom *g = &j->g;                                                                                \
        int64_t H = g->in[0], W = g->in[1], OH = g->out[0], OW = g->out[1], sw = g->s[1];                              \
        const T *x = (const T *)j->x + plane * j->insz;                                                                \
        T *y = (T *)j->y + plane * j->outsz;                                                                           \
        ACC acc[CHUNK];                                                                                                \
        for (int64_t oh = 0; oh < OH; oh++) {                                                                          \
            int64_t hb = oh * g->s[0] - g->pb[0], hlo, hhi;                                                            \
            taps(hb, g->d[0], g->k[0], H, &hlo, &hhi);                                                                 \
            int64_t hn = j->count_pad ? taps_padded(hb, g->d[0], g->k[0], H, g->pb[0], g->pe[0]) : hhi - hlo;          \
            for (int64_t c0 = 0; c0 < OW; c0 += CHUNK) {                                                               \
                int64_t n = OW - c0 < CHUNK ? OW - c0 : CHUNK;                                                         \
                for (int64_t i = 0; i < n; i++)                                                                        \
                    acc[i] = 0;                                                                                        \
                for (int64_t kh = hlo; kh < hhi; kh++) {                                                               \
                    const T *xr = x + (hb + kh * g->d[0]) * W;                                                         \
                    for (int64_t kw = 0; kw < g->k[1]; kw++) {                                                         \
                        int64_t base = kw * g->d[1] - g->pb[1], lo, hi;                                                \
                        taps(base, sw, OW, W, &lo, &hi);                                                               \
                        lo = lo > c0 ? lo - c0 : 0;                                                                    \
                        hi = hi - c0 < n ? hi - c0 : n;                                                                \
                        int64_t off0 = base + c0 * sw;                                                                 \
                        for (int64_t i = lo; i < hi; i++)                                                              \
                            acc[i] += LD(xr, off0 + i * sw);                                                           \
                    }                                                                                                  \
                }                                                                                                      \
                for (int64_t i = 0; i < n; i++) {                                                                      \
                    int64_t wb = (c0 + i) * sw - g->pb[1], wlo, whi, wn;                                               \
                    taps(wb, g->d[1], g->k[1], W, &wlo, &whi);                                                         \
                    wn = j->count_pad ? taps_padded(wb, g->d[1], g->k[1], W, g->pb[1], g->pe[1]) : whi - wlo;          \
                    int64_t cnt = hn * wn;                                                                             \
                    ST(y, oh *OW + c0 + i, cnt > 0 ? acc[i] / (ACC)cnt : (ACC)NAN);                                    \
                }                                                                                                      \
            }                                                                                                          \
        }                                                                                                              \
    }

DEFINE_AVG2D(f32, float, float, LD_F32, ST_F32)
DEFINE_AVG2D(f64, double, double, LD_F64, ST_F64)
DEFINE_AVG2D(f16, uint16_t, float, LD_F16, ST_F16)
DEFINE_AVG2D(bf16, uint16_t, float, LD_BF16, ST_BF16)

/* Any number of spatial dims, any dtype: odometers over output positions and window taps. */
static void pool_nd(const pool_job *j, int64_t plane, int is_max) {
    const amp_conv_geom *g = &j->g;
    int nsp = g->nsp;
    int64_t xo = plane * j->insz, yo = plane * j->outsz;
    size_t es = amp_dtype_size(j->dt);
    int64_t o[AMP_MAX_RANK] = {0};
    for (int64_t p = 0; p < j->outsz; p++) {
        int64_t b[AMP_MAX_RANK], lo[AMP_MAX_RANK], hi[AMP_MAX_RANK], t[AMP_MAX_RANK], cnt = 1;
        int empty = 0;
        for (int i = 0; i < nsp; i++) {
            b[i] = o[i] * g->s[i] - g->pb[i];
            taps(b[i], g->d[i], g->k[i], g->in[i], &lo[i], &hi[i]);
            if (lo[i] >= hi[i]) empty = 1;
            t[i] = lo[i];
            cnt *= j->count_pad ? taps_padded(b[i], g->d[i], g->k[i], g->in[i], g->pb[i], g->pe[i]) : hi[i] - lo[i];
        }
        double best = 0, sum = 0;
        int64_t bi = -1;
        while (!empty) {
            int64_t off = 0;
            for (int i = 0; i < nsp; i++)
                off = off * g->in[i] + b[i] + t[i] * g->d[i];
            double v = amp_ld(j->dt, j->x, xo + off);
            sum += v;
            if (bi < 0 || v > best || (isnan(v) && !isnan(best))) {
                best = v;
                bi = off;
            }
            int i = nsp - 1;
            for (; i >= 0; i--) {
                if (++t[i] < hi[i]) break;
                t[i] = lo[i];
            }
            if (i < 0) break;
        }
        if (is_max) {
            if (bi >= 0)
                copy_elem(j->y, yo + p, j->x, xo + bi, es);
            else
                store_lowest(j->dt, j->y, yo + p);
            if (j->ind) {
                int64_t l = bi < 0 ? 0 : bi, idx = 0;
                if (j->storage_order) {
                    /* column-major over the spatial dims */
                    int64_t pos[AMP_MAX_RANK], mul = 1;
                    for (int i = nsp - 1; i >= 0; i--) {
                        pos[i] = l % g->in[i];
                        l /= g->in[i];
                    }
                    for (int i = 0; i < nsp; i++) {
                        idx += pos[i] * mul;
                        mul *= g->in[i];
                    }
                } else {
                    idx = l;
                }
                j->ind[yo + p] = xo + idx;
            }
        } else {
            amp_st(j->dt, j->y, yo + p, cnt > 0 ? sum / (double)cnt : NAN);
        }
        for (int i = nsp - 1; i >= 0; i--) {
            if (++o[i] < g->out[i]) break;
            o[i] = 0;
        }
    }
}

static amp_status run_pool(amp_kernel *k, int is_max) {
    char msg[256];
    amp_status s;
    const amp_tensor *X = k->in[0];
    pool_job j;
    memset(&j, 0, sizeof j);
    if ((s = amp_conv_geom_init(k->n, AMP_GEOM_POOL, X->rank, X->dims, NULL, &j.g, msg, sizeof msg)))
        return amp_kernel_fail(k, s, "%s", msg);
    j.dt = X->dtype;
    j.planes = X->dims[0] * X->dims[1];
    j.insz = j.outsz = 1;
    for (int i = 0; i < j.g.nsp; i++) {
        j.insz *= j.g.in[i];
        j.outsz *= j.g.out[i];
    }
    j.count_pad = !is_max && amp_attr_int(k->n, "count_include_pad", 0) != 0;
    j.storage_order = is_max && amp_attr_int(k->n, "storage_order", 0) != 0;
    j.x = X->data;
    j.y = k->out[0]->data;
    j.ind = is_max && k->nout > 1 && k->out[1] ? k->out[1]->data : NULL;
    if (j.planes * j.outsz == 0) return AMP_OK;
    if (j.g.nsp == 1) {
        /* lift to 2-D: a leading spatial dim of one with a kernel of one */
        amp_conv_geom *g = &j.g;
        g->in[1] = g->in[0], g->k[1] = g->k[0], g->s[1] = g->s[0], g->d[1] = g->d[0];
        g->pb[1] = g->pb[0], g->pe[1] = g->pe[0], g->out[1] = g->out[0];
        g->in[0] = g->k[0] = g->s[0] = g->d[0] = g->out[0] = 1;
        g->pb[0] = g->pe[0] = 0;
        g->nsp = 2;
    }
    j.interior = 1;
    for (int i = 0; i < j.g.nsp; i++)
        if (j.g.pb[i] != 0 || (j.g.out[i] - 1) * j.g.s[i] + (j.g.k[i] - 1) * j.g.d[i] + 1 > j.g.in[i]) j.interior = 0;
    void (*fn)(const pool_job *, int64_t) = NULL;
    if (j.g.nsp == 2) {
        switch (j.dt) {
        case AMP_F32: fn = !is_max ? avg2d_f32 : j.ind ? maxind2d_f32 : max2d_f32; break;
        case AMP_F64: fn = !is_max ? avg2d_f64 : j.ind ? maxind2d_f64 : max2d_f64; break;
        case AMP_F16: fn = !is_max ? avg2d_f16 : j.ind ? maxind2d_f16 : max2d_f16; break;
        case AMP_BF16: fn = !is_max ? avg2d_bf16 : j.ind ? maxind2d_bf16 : max2d_bf16; break;
        case AMP_I8: fn = !is_max ? NULL : j.ind ? maxind2d_i8 : max2d_i8; break;
        case AMP_U8: fn = !is_max ? NULL : j.ind ? maxind2d_u8 : max2d_u8; break;
        default: break;
        }
    }
    int par = k->threads > 1 && j.planes > 1 && j.planes * j.insz >= POOL_PAR_MIN;
    AMP_PAR_FOR(par, num_threads(k->threads > 1 ? k->threads : 1) schedule(static),
    for (int64_t p = 0; p < j.planes; p++) {
        if (fn)
            fn(&j, p);
        else
            pool_nd(&j, p, is_max);
    });
    return AMP_OK;
}

amp_status amp_cpu_max_pool(amp_kernel *k) { return run_pool(k, 1); }

amp_status amp_cpu_avg_pool(amp_kernel *k) { return run_pool(k, 0); }

amp_status amp_cpu_global_pool(amp_kernel *k) {
    const amp_tensor *X = k->in[0];
    amp_tensor *Y = k->out[0];
    int is_max = k->n->op == AMP_OP_GLOBAL_MAX_POOL;
    int64_t planes = X->rank >= 2 ? X->dims[0] * X->dims[1] : 0, sz = 1;
    for (int i = 2; i < X->rank; i++)
        sz *= X->dims[i];
    if (planes == 0) return AMP_OK;
    if (sz == 0 && is_max) return amp_kernel_fail(k, AMP_ERR_SHAPE, "GlobalMaxPool of an empty spatial dim");
    amp_dtype dt = X->dtype;
    size_t es = amp_dtype_size(dt);
    int par = k->threads > 1 && planes > 1 && planes * sz >= POOL_PAR_MIN;
    AMP_PAR_FOR(par, num_threads(k->threads > 1 ? k->threads : 1) schedule(static),
    for (int64_t p = 0; p < planes; p++) {
        int64_t xo = p * sz;
        if (is_max) {
            int64_t bi = xo;
            double best = amp_ld(dt, X->data, xo);
            for (int64_t i = 1; i < sz; i++) {
                double v = amp_ld(dt, X->data, xo + i);
                if (v > best || (isnan(v) && !isnan(best))) {
                    best = v;
                    bi = xo + i;
                }
            }
            copy_elem(Y->data, p, X->data, bi, es);
        } else if (dt == AMP_F32) {
            /* f32 sums in double: a plane can hold millions of values */
            const float *x = (const float *)X->data + xo;
            double sum = 0;
            for (int64_t i = 0; i < sz; i++)
                sum += x[i];
            ((float *)Y->data)[p] = sz ? (float)(sum / (double)sz) : NAN;
        } else {
            double sum = 0;
            for (int64_t i = 0; i < sz; i++)
                sum += amp_ld(dt, X->data, xo + i);
            amp_st(dt, Y->data, p, sz ? sum / (double)sz : NAN);
        }
    });
    return AMP_OK;
}

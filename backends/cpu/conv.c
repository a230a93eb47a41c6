/* Conv and ConvTranspose on the CPU: im2col / col2im around one BLAS GEMM per image and group.
 *
 * f32 and f64 run in place on the tensors; f16 and bf16 are widened to f32 in the workspace,
 * multiplied in f32 and rounded once on store. Work items (image, group) are spread over the
 * OpenMP threads with one workspace slot each and OpenBLAS held to one thread; when there are
 * fewer items than threads the items run one after another and each GEMM is cut into blocks
 * over the threads instead (amp_cpu_sgemm in gemm.c). */
#include <cblas.h>
#include <omp.h>
#include <string.h>

#include "backends/cpu/cpu.h"
#include "backends/cpu/gemm.h"
#include "backends/cpu/kernels.h"

#include "ir/ops/conv.h"

/* -------------------------------------------------------------------------------------------- */

/* OpenBLAS keeps one process-wide thread count; change it only when it differs, since the
 * call takes a lock inside OpenBLAS. The kernels keep it at one and thread with OpenMP. */
void amp_cpu_blas_threads(int n) {
    if (n < 1) n = 1;
    if (openblas_get_num_threads() != n) openblas_set_num_threads(n);
}

/* Workspace of one Conv/ConvTranspose run: shared elements plus one slot per concurrent item. */
typedef struct conv_ws {
    int64_t shared; /* elements of the compute type used by every work item */
    int64_t slot;   /* elements each concurrent work item needs */
    int64_t slots;  /* how many slots the workspace holds (amp_cpu_ws_slots) */
    size_t esize;   /* bytes of the compute type (float or double) */
} conv_ws;

static int64_t prod(int n, const int64_t *v) {
    int64_t p = 1;
    for (int i = 0; i < n; i++)
        p *= v[i];
    return p;
}

/* Workspace of Conv / ConvTranspose in elements of the compute type (float for f32/f16/bf16,
 * double for f64). Returns 0 when a size overflows. */
static int conv_ws_layout(const amp_node *n, amp_dtype dt, const int64_t *xdims, const int64_t *wdims,
                          const amp_conv_geom *g, conv_ws *w) {
    int64_t group = amp_attr_int(n, "group", 1);
    int64_t N = xdims[0], C = xdims[1];
    int nsp = g->nsp;
    int64_t ksz = prod(nsp, g->k), insz = prod(nsp, g->in), outsz = prod(nsp, g->out);
    int half = dt == AMP_F16 || dt == AMP_BF16;
    int64_t Cg = C / group;
    int64_t a, b, c, sum;
    memset(w, 0, sizeof *w);
    w->esize = dt == AMP_F64 ? sizeof(double) : sizeof(float);
    if (n->op == AMP_OP_CONV_TRANSPOSE) {
        int64_t Mg = wdims[1];
        /* col [Mg*ksz, insz]; 16-bit: X slice [Cg, insz] and Y slice [Mg, outsz] in f32 */
        if (__builtin_mul_overflow(Mg, ksz, &a) || __builtin_mul_overflow(a, insz, &a)) return 0;
        if (__builtin_mul_overflow(Cg, insz, &b) || __builtin_mul_overflow(Mg, outsz, &c)) return 0;
        if (__builtin_add_overflow(a, half ? b + c : 0, &sum)) return 0;
        w->slot = sum;
        if (half && __builtin_mul_overflow(wdims[0], Mg * ksz, &w->shared)) return 0;
    } else {
        int64_t M = wdims[0], Mg = M / group;
        int direct = 1;
        for (int i = 0; i < nsp; i++)
            if (g->k[i] != 1 || g->s[i] != 1 || g->pb[i] != 0 || g->pe[i] != 0) direct = 0;
        /* col [Cg*ksz, outsz] unless the 1x1 conv reads X as it is; 16-bit: X slice and Y slice */
        a = 0;
        if (!direct && (__builtin_mul_overflow(Cg, ksz, &a) || __builtin_mul_overflow(a, outsz, &a))) return 0;
        if (__builtin_mul_overflow(Cg, insz, &b) || __builtin_mul_overflow(Mg, outsz, &c)) return 0;
        if (__builtin_add_overflow(a, half ? b + c : 0, &sum)) return 0;
        w->slot = sum;
        if (half && (__builtin_mul_overflow(M, wdims[1], &a) || __builtin_mul_overflow(a, ksz, &w->shared))) return 0;
    }
    w->slots = w->slot ? amp_cpu_ws_slots(N * group, w->slot * (int64_t)w->esize) : 0;
    int64_t tot;
    if (__builtin_mul_overflow(w->slot, w->slots, &tot) || __builtin_add_overflow(tot, w->shared, &tot)) return 0;
    if (__builtin_mul_overflow(tot, (int64_t)w->esize, &tot) || tot > (int64_t)(SIZE_MAX / 2)) return 0;
    return 1;
}


amp_status amp_cpu_ws_conv(const amp_kernel *k, size_t *bytes) {
    char msg[256];
    amp_status s;
    const amp_tensor *X = k->in[0], *W = k->in[1];
    int transpose = k->n->op == AMP_OP_CONV_TRANSPOSE;
    amp_conv_geom g;
    conv_ws w;
    if ((s = amp_conv_geom_init(k->n, transpose ? AMP_GEOM_CONV_T : AMP_GEOM_CONV, X->rank, X->dims, W->dims, &g, msg,
                                sizeof msg)))
        return amp_kernel_fail(k, s, "%s", msg);
    if (!conv_ws_layout(k->n, X->dtype, X->dims, W->dims, &g, &w))
        return amp_kernel_fail(k, AMP_ERR_OVERFLOW, "workspace size overflows");
    *bytes = (size_t)(w.shared + w.slot * w.slots) * w.esize;
    return AMP_OK;
}

typedef struct conv_job {
    amp_conv_geom g;
    amp_dtype dt;
    int64_t N, C, M, group, Cg, Mg, ksz, insz, outsz;
    int direct; /* 1x1, stride 1, no pads: X is its own column matrix */
    int depthwise; /* 2-D, one input channel per group: a direct loop instead of im2col + GEMV */
    const void *x, *w, *b;
    void *y;
    void *wide_w; /* W widened to f32 (16-bit dtypes) */
} conv_job;


/* Odometer step over the first n dims of lim; returns 0 after the last index. */
static int next_index(int n, int64_t *idx, const int64_t *lim) {
    for (int i = n - 1; i >= 0; i--) {
        if (++idx[i] < lim[i]) return 1;
        idx[i] = 0;
    }
    return 0;
}

/* The output positions o along one dim whose input index o*s + base lies in [0, in). */
static void valid_range(int64_t base, int64_t s, int64_t in, int64_t nout, int64_t *lo, int64_t *hi) {
    int64_t l = base >= 0 ? 0 : (-base + s - 1) / s;
    int64_t h = in - base <= 0 ? 0 : (in - base + s - 1) / s;
    if (h > nout) h = nout;
    if (l > h) l = h;
    *lo = l;
    *hi = h;
}

/* im2col for one image and group: col[(c*ksz + kidx) * outsz + p] = x[c, p*s - pb + kk*d] or 0.
 * col2im is its adjoint: y[c, o*s - pb + kk*d] += col[...] for ConvTranspose. */
#define DEFINE_COL(T, SUF)                                                                                             \
    static void im2col_##SUF(const T *x, T *col, const amp_conv_geom *g, int64_t cg) {                                 \
        int nsp = g->nsp, last = nsp - 1;                                                                              \
        int64_t ksz = 1, insz = 1, outsz = 1;                                                                          \
        for (int i = 0; i < nsp; i++) {                                                                                \
            ksz *= g->k[i];                                                                                            \
            insz *= g->in[i];                                                                                          \
            outsz *= g->out[i];                                                                                        \
        }                                                                                                              \
        int64_t ow = g->out[last], iw = g->in[last], sw = g->s[last];                                                  \
        for (int64_t c = 0; c < cg; c++) {                                                                             \
            const T *xc = x + c * insz;                                                                                \
            int64_t kk[AMP_MAX_RANK] = {0};                                                                            \
            for (int64_t kidx = 0; kidx < ksz; kidx++, next_index(nsp, kk, g->k)) {                                    \
                T *row = col + (c * ksz + kidx) * outsz;                                                               \
                int64_t base = kk[last] * g->d[last] - g->pb[last], lo, hi;                                            \
                valid_range(base, sw, iw, ow, &lo, &hi);                                                               \
                int64_t o[AMP_MAX_RANK] = {0};                                                                         \
                do {                                                                                                   \
                    int64_t off = 0;                                                                                   \
                    int ok = 1;                                                                                        \
                    for (int i = 0; i < last; i++) {                                                                   \
                        int64_t ii = o[i] * g->s[i] - g->pb[i] + kk[i] * g->d[i];                                      \
                        if (ii < 0 || ii >= g->in[i]) ok = 0;                                                          \
                        off = off * g->in[i] + ii;                                                                     \
                    }                                                                                                  \
                    if (!ok || lo >= hi) {                                                                             \
                        memset(row, 0, sizeof(T) * (size_t)ow);                                                        \
                    } else {                                                                                           \
                        const T *src = xc + off * iw;                                                                  \
                        for (int64_t p = 0; p < lo; p++)                                                               \
                            row[p] = 0;                                                                                \
                        if (sw == 1)                                                                                   \
                            memcpy(row + lo, src + lo + base, sizeof(T) * (size_t)(hi - lo));                          \
                        else                                                                                           \
                            for (int64_t p = lo; p < hi; p++)                                                          \
                                row[p] = src[p * sw + base];                                                           \
                        for (int64_t p = hi; p < ow; p++)                                                              \
                            row[p] = 0;                                                                                \
                    }                                                                                                  \
                    row += ow;                                                                                         \
                } while (next_index(last, o, g->out));                                                                 \
            }                                                                                                          \
        }                                                                                                              \
    }                                                                                                                  \
    /* Here g->in holds ConvTranspose's input (the column positions) and g->out its output. */                         \
    static void col2im_##SUF(const T *col, T *y, const amp_conv_geom *g, int64_t mg) {                                 \
        int nsp = g->nsp, last = nsp - 1;                                                                              \
        int64_t ksz = 1, insz = 1, outsz = 1;                                                                          \
        for (int i = 0; i < nsp; i++) {                                                                                \
            ksz *= g->k[i];                                                                                            \
            insz *= g->in[i];                                                                                          \
            outsz *= g->out[i];                                                                                        \
        }                                                                                                              \
        int64_t iw = g->in[last], ow = g->out[last], sw = g->s[last];                                                  \
        for (int64_t m = 0; m < mg; m++) {                                                                             \
            T *ym = y + m * outsz;                                                                                     \
            int64_t kk[AMP_MAX_RANK] = {0};                                                                            \
            for (int64_t kidx = 0; kidx < ksz; kidx++, next_index(nsp, kk, g->k)) {                                    \
                const T *row = col + (m * ksz + kidx) * insz;                                                          \
                int64_t base = kk[last] * g->d[last] - g->pb[last], lo, hi;                                            \
                valid_range(base, sw, ow, iw, &lo, &hi);                                                               \
                int64_t i[AMP_MAX_RANK] = {0};                                                                         \
                do {                                                                                                   \
                    int64_t off = 0;                                                                                   \
                    int ok = 1;                                                                                        \
                    for (int e = 0; e < last; e++) {                                                                   \
                        int64_t oo = i[e] * g->s[e] - g->pb[e] + kk[e] * g->d[e];                                      \
                        if (oo < 0 || oo >= g->out[e]) ok = 0;                                                         \
                        off = off * g->out[e] + oo;                                                                    \
                    }                                                                                                  \
                    if (ok) {                                                                                          \
                        T *dst = ym + off * ow;                                                                        \
                        for (int64_t p = lo; p < hi; p++)                                                              \
                            dst[p * sw + base] += row[p];                                                              \
                    }                                                                                                  \
                    row += iw;                                                                                         \
                } while (next_index(last, i, g->in));                                                                  \
            }                                                                                                          \
        }                                                                                                              \
    }

DEFINE_COL(float, f32)
DEFINE_COL(double, f64)

static void fill_bias_f32(float *y, const conv_job *j, int64_t m0, int64_t mg, int64_t len) {
    for (int64_t m = 0; m < mg; m++) {
        float v = j->b ? (float)amp_ld(j->dt, j->b, m0 + m) : 0.0f;
        float *r = y + m * len;
        for (int64_t p = 0; p < len; p++)
            r[p] = v;
    }
}

static void fill_bias_f64(double *y, const conv_job *j, int64_t m0, int64_t mg, int64_t len) {
    for (int64_t m = 0; m < mg; m++) {
        double v = j->b ? ((const double *)j->b)[m0 + m] : 0.0;
        double *r = y + m * len;
        for (int64_t p = 0; p < len; p++)
            r[p] = v;
    }
}

/* One output plane of a depthwise 2-D convolution: y = bias + sum over taps of w * shifted x.
 * Each output row sums its valid kernel rows in one pass: the columns whose taps all fall inside
 * the input run through a loop with no bounds checks (unrolled for the common 3-wide kernel, so
 * it vectorises over the row), and only the few border columns check each tap. */
static void dw_plane_f32(const amp_conv_geom *g, const float *x, const float *w, float bias, float *y) {
    int64_t H = g->in[0], W = g->in[1], OH = g->out[0], OW = g->out[1], KH = g->k[0], KW = g->k[1];
    int64_t sh = g->s[0], sw = g->s[1], dh = g->d[0], dw = g->d[1], pw = g->pb[1];
    /* columns where every kw tap lies inside the row: ow*sw - pw >= 0 and ow*sw - pw + (KW-1)*dw < W */
    int64_t lo, hi, lo2, hi2;
    valid_range(-pw, sw, W, OW, &lo, &hi);
    valid_range((KW - 1) * dw - pw, sw, W, OW, &lo2, &hi2);
    if (lo2 > lo) lo = lo2;
    if (hi2 < hi) hi = hi2;
    if (hi < lo) hi = lo;
    for (int64_t oh = 0; oh < OH; oh++) {
        float *yr = y + oh * OW;
        for (int64_t ow = 0; ow < OW; ow++) yr[ow] = bias;
        for (int64_t kh = 0; kh < KH; kh++) {
            int64_t ih = oh * sh - g->pb[0] + kh * dh;
            if (ih < 0 || ih >= H) continue;
            const float *xr = x + ih * W;
            const float *wr = w + kh * KW;
            /* border columns: check each tap */
            for (int64_t ow = 0; ow < OW; ow++) {
                if (ow == lo) ow = hi;
                if (ow >= OW) break;
                float acc = 0.0f;
                for (int64_t kw = 0; kw < KW; kw++) {
                    int64_t iw = ow * sw - pw + kw * dw;
                    if (iw >= 0 && iw < W) acc += wr[kw] * xr[iw];
                }
                yr[ow] += acc;
            }
            if (KW == 3 && sw == 1) {
                float w0 = wr[0], w1 = wr[1], w2 = wr[2];
                for (int64_t ow = lo; ow < hi; ow++) {
                    int64_t b = ow - pw;
                    yr[ow] += w0 * xr[b] + w1 * xr[b + dw] + w2 * xr[b + 2 * dw];
                }
            } else if (KW == 3 && sw == 2) {
                float w0 = wr[0], w1 = wr[1], w2 = wr[2];
                for (int64_t ow = lo; ow < hi; ow++) {
                    int64_t b = 2 * ow - pw;
                    yr[ow] += w0 * xr[b] + w1 * xr[b + dw] + w2 * xr[b + 2 * dw];
                }
            } else {
                for (int64_t ow = lo; ow < hi; ow++) {
                    int64_t b = ow * sw - pw;
                    float acc = 0.0f;
                    for (int64_t kw = 0; kw < KW; kw++) acc += wr[kw] * xr[b + kw * dw];
                    yr[ow] += acc;
                }
            }
        }
    }
}

/* One image n and group gi of Conv in f32 (f32, f16, bf16). slot is this thread's scratch. */
static void conv_item_f32(const conv_job *j, int64_t n, int64_t gi, float *slot, int gt) {
    int half = j->dt != AMP_F32;
    int64_t K = j->Cg * j->ksz, P = j->outsz;
    int64_t xoff = (n * j->C + gi * j->Cg) * j->insz, yoff = (n * j->M + gi * j->Mg) * P;
    float *col = slot;
    const float *x;
    float *y;
    if (half) {
        float *xw = slot + (j->direct ? 0 : K * P);
        amp_widen16(j->dt, (const uint16_t *)j->x + xoff, xw, j->Cg * j->insz);
        x = xw;
        y = xw + j->Cg * j->insz;
    } else {
        x = (const float *)j->x + xoff;
        y = (float *)j->y + yoff;
    }
    const float *w = (half ? (const float *)j->wide_w : (const float *)j->w) + gi * j->Mg * K;
    if (j->depthwise) {
        for (int64_t m = 0; m < j->Mg; m++) {
            float bias = j->b ? (float)amp_ld(j->dt, j->b, gi * j->Mg + m) : 0.0f;
            dw_plane_f32(&j->g, x, w + m * K, bias, y + m * P);
        }
        if (half) amp_narrow16(j->dt, y, (uint16_t *)j->y + yoff, j->Mg * P);
        return;
    }
    if (j->direct)
        col = (float *)x;
    else
        im2col_f32(x, col, &j->g, j->Cg);
    if (j->b) fill_bias_f32(y, j, gi * j->Mg, j->Mg, P);
    if (K > 0)
        amp_cpu_sgemm(gt, 0, 0, j->Mg, P, K, 1.0f, w, K, col, P, j->b ? 1.0f : 0.0f, y, P);
    else if (!j->b)
        memset(y, 0, sizeof(float) * (size_t)(j->Mg * P));
    if (half) amp_narrow16(j->dt, y, (uint16_t *)j->y + yoff, j->Mg * P);
}

static void conv_item_f64(const conv_job *j, int64_t n, int64_t gi, double *slot, int gt) {
    int64_t K = j->Cg * j->ksz, P = j->outsz;
    const double *x = (const double *)j->x + (n * j->C + gi * j->Cg) * j->insz;
    double *y = (double *)j->y + (n * j->M + gi * j->Mg) * P;
    const double *col = x;
    if (!j->direct) {
        im2col_f64(x, slot, &j->g, j->Cg);
        col = slot;
    }
    const double *w = (const double *)j->w + gi * j->Mg * K;
    if (j->b) fill_bias_f64(y, j, gi * j->Mg, j->Mg, P);
    if (K > 0)
        amp_cpu_dgemm(gt, 0, 0, j->Mg, P, K, 1.0, w, K, col, P, j->b ? 1.0 : 0.0, y, P);
    else if (!j->b)
        memset(y, 0, sizeof(double) * (size_t)(j->Mg * P));
}

/* One image n and group gi of ConvTranspose: col = W_g^T x_g, then col2im into y. */
static void convt_item_f32(const conv_job *j, int64_t n, int64_t gi, float *slot, int gt) {
    int half = j->dt != AMP_F32;
    int64_t R = j->Mg * j->ksz, Pin = j->insz, Pout = j->outsz;
    int64_t xoff = (n * j->C + gi * j->Cg) * Pin, yoff = (n * j->M + gi * j->Mg) * Pout;
    float *col = slot;
    const float *x;
    float *y;
    if (half) {
        float *xw = slot + R * Pin;
        amp_widen16(j->dt, (const uint16_t *)j->x + xoff, xw, j->Cg * Pin);
        x = xw;
        y = xw + j->Cg * Pin;
    } else {
        x = (const float *)j->x + xoff;
        y = (float *)j->y + yoff;
    }
    const float *w = (half ? (const float *)j->wide_w : (const float *)j->w) + gi * j->Cg * R;
    fill_bias_f32(y, j, gi * j->Mg, j->Mg, Pout);
    if (R > 0 && Pin > 0) {
        if (j->Cg > 0)
            amp_cpu_sgemm(gt, 1, 0, R, Pin, j->Cg, 1.0f, w, R, x, Pin, 0.0f, col, Pin);
        else
            memset(col, 0, sizeof(float) * (size_t)(R * Pin));
        col2im_f32(col, y, &j->g, j->Mg);
    }
    if (half) amp_narrow16(j->dt, y, (uint16_t *)j->y + yoff, j->Mg * Pout);
}

static void convt_item_f64(const conv_job *j, int64_t n, int64_t gi, double *slot, int gt) {
    int64_t R = j->Mg * j->ksz, Pin = j->insz, Pout = j->outsz;
    const double *x = (const double *)j->x + (n * j->C + gi * j->Cg) * Pin;
    double *y = (double *)j->y + (n * j->M + gi * j->Mg) * Pout;
    const double *w = (const double *)j->w + gi * j->Cg * R;
    fill_bias_f64(y, j, gi * j->Mg, j->Mg, Pout);
    if (R > 0 && Pin > 0) {
        if (j->Cg > 0)
            amp_cpu_dgemm(gt, 1, 0, R, Pin, j->Cg, 1.0, w, R, x, Pin, 0.0, slot, Pin);
        else
            memset(slot, 0, sizeof(double) * (size_t)(R * Pin));
        col2im_f64(slot, y, &j->g, j->Mg);
    }
}

static amp_status run_conv(amp_kernel *k, int transpose) {
    char msg[256];
    amp_status s;
    const amp_tensor *X = k->in[0], *W = k->in[1], *B = k->nin > 2 ? k->in[2] : NULL;
    amp_tensor *Y = k->out[0];
    conv_job j;
    memset(&j, 0, sizeof j);
    if ((s = amp_conv_geom_init(k->n, transpose ? AMP_GEOM_CONV_T : AMP_GEOM_CONV, X->rank, X->dims, W->dims, &j.g, msg,
                                sizeof msg)))
        return amp_kernel_fail(k, s, "%s", msg);
    conv_ws wl;
    if (!conv_ws_layout(k->n, X->dtype, X->dims, W->dims, &j.g, &wl))
        return amp_kernel_fail(k, AMP_ERR_OVERFLOW, "workspace size overflows");
    j.dt = X->dtype;
    j.group = amp_attr_int(k->n, "group", 1);
    j.N = X->dims[0];
    j.C = X->dims[1];
    j.M = Y->dims[1];
    j.Cg = j.C / j.group;
    j.Mg = j.M / j.group;
    j.ksz = j.insz = j.outsz = 1;
    j.direct = !transpose;
    for (int i = 0; i < j.g.nsp; i++) {
        j.ksz *= j.g.k[i];
        j.insz *= j.g.in[i];
        j.outsz *= j.g.out[i];
        if (j.g.k[i] != 1 || j.g.s[i] != 1 || j.g.pb[i] != 0 || j.g.pe[i] != 0) j.direct = 0;
    }
    j.depthwise = !transpose && j.Cg == 1 && j.g.nsp == 2 && j.group > 1;
    j.x = X->data;
    j.w = W->data;
    j.b = B ? B->data : NULL;
    j.y = Y->data;
    if (Y->numel == 0) return AMP_OK;
    int64_t BIG = (int64_t)1 << 31;
    if (j.Mg * j.ksz >= BIG || j.Cg * j.ksz >= BIG || j.outsz >= BIG || j.insz >= BIG)
        return amp_kernel_fail(k, AMP_ERR_LIMIT, "matrix dims exceed the BLAS int range");

    int64_t slots = 0;
    if (wl.slot > 0) {
        size_t need = (size_t)(wl.shared + wl.slot) * wl.esize;
        if (k->ws_bytes < need || !k->ws) return amp_kernel_fail(k, AMP_ERR_INTERNAL, "workspace too small");
        slots = (int64_t)((k->ws_bytes / wl.esize - (size_t)wl.shared) / (size_t)wl.slot);
    }
    int half = j.dt == AMP_F16 || j.dt == AMP_BF16;
    if (half) {
        j.wide_w = k->ws;
        amp_widen16(j.dt, W->data, j.wide_w, W->numel);
    }
    int64_t items = j.N * j.group;
    int threads = k->threads < 1 ? 1 : k->threads;
    int nthr = threads;
    if (slots > 0 && nthr > slots) nthr = (int)slots;
    /* With at least one item per thread, whole items go to threads: that beats threading
     * each small GEMM. With fewer items, or workspace for under half the threads, the items
     * run in turn and each GEMM is split over the threads instead. */
    int par = nthr > 1 && 2 * nthr >= threads && items >= nthr;
    amp_cpu_blas_threads(1);
    if (par) {
        if (j.dt == AMP_F64) {
            double *base = k->ws ? (double *)k->ws + wl.shared : NULL; /* NULL: a 1x1 f32 conv needs none */
#pragma omp parallel for num_threads(nthr) schedule(static)
            for (int64_t it = 0; it < items; it++) {
                double *slot = base ? base + (int64_t)omp_get_thread_num() * wl.slot : NULL;
                if (transpose)
                    convt_item_f64(&j, it / j.group, it % j.group, slot, 1);
                else
                    conv_item_f64(&j, it / j.group, it % j.group, slot, 1);
            }
        } else {
            float *base = k->ws ? (float *)k->ws + wl.shared : NULL; /* NULL: a 1x1 f32 conv needs none */
#pragma omp parallel for num_threads(nthr) schedule(static)
            for (int64_t it = 0; it < items; it++) {
                float *slot = base ? base + (int64_t)omp_get_thread_num() * wl.slot : NULL;
                if (transpose)
                    convt_item_f32(&j, it / j.group, it % j.group, slot, 1);
                else
                    conv_item_f32(&j, it / j.group, it % j.group, slot, 1);
            }
        }
        return AMP_OK;
    }
    for (int64_t it = 0; it < items; it++) {
        if (j.dt == AMP_F64) {
            double *slot = k->ws ? (double *)k->ws + wl.shared : NULL;
            if (transpose)
                convt_item_f64(&j, it / j.group, it % j.group, slot, threads);
            else
                conv_item_f64(&j, it / j.group, it % j.group, slot, threads);
        } else {
            float *slot = k->ws ? (float *)k->ws + wl.shared : NULL;
            if (transpose)
                convt_item_f32(&j, it / j.group, it % j.group, slot, threads);
            else
                conv_item_f32(&j, it / j.group, it % j.group, slot, threads);
        }
    }
    return AMP_OK;
}

amp_status amp_cpu_conv(amp_kernel *k) { return run_conv(k, 0); }

amp_status amp_cpu_conv_transpose(amp_kernel *k) { return run_conv(k, 1); }

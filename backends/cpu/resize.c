/* CPU kernel of Resize and Upsample. The per-axis sampling tables (ir/ops/resize.h) are built in
 * the workspace once per run; then
 *  - nearest copies elements through them in one gather (exact in every dtype);
 *  - linear and cubic on f32 with only the last two axes resized (NCHW images: FPN, U-Net) run
 *    in one pass with no workspace buffer: source rows interpolated along the width are cached
 *    on the stack while consecutive output rows read them, then blended along the height;
 *  - everything else runs one pass per resized axis (separable), in f32 for f32/f16/bf16 and in
 *    f64 for f64 and the integer types, through the workspace's intermediate buffers. Integer
 *    outputs round half to even and saturate, as the reference implementation's cast does. */
#include <math.h>
#include <stdbool.h>
#include <string.h>

#include "backends/cpu/cpu.h"
#include "backends/cpu/kernels.h"
#include "backends/cpu/par.h"
#include "ir/ops/resize.h"

#define PAR_MIN_WORK (1 << 15)

/* Store the final value of an output element: integers round half to even and saturate. */
static inline void store_out(amp_dtype dt, void *p, int64_t i, double v) {
    double lo, hi;
    switch (dt) {
    case AMP_I64: lo = -9223372036854775808.0, hi = 9223372036854775807.0; break;
    case AMP_I32: lo = -2147483648.0, hi = 2147483647.0; break;
    case AMP_I8: lo = -128, hi = 127; break;
    case AMP_U8: lo = 0, hi = 255; break;
    case AMP_BOOL: lo = 0, hi = 1; break;
    default: amp_st(dt, p, i, v); return;
    }
    v = isnan(v) ? 0 : nearbyint(v);
    if (v <= lo) {
        amp_sti(dt, p, i, dt == AMP_I64 ? INT64_MIN : (int64_t)lo);
    } else if (v >= hi) {
        amp_sti(dt, p, i, dt == AMP_I64 ? INT64_MAX : (int64_t)hi);
    } else {
        amp_sti(dt, p, i, (int64_t)v);
    }
}

/* ---- nearest: one gather over every axis ------------------------------------------------------ */

#define ROWS_PER_TASK 64

/* Output rows (all dims but the last) in tasks of ROWS_PER_TASK; a row whose source row is the
 * previous row's (an upsampled axis) is a copy of that output row. */
static void nearest_gather(const amp_resize_geom *g, const amp_resize_tab *tab, const amp_tensor *x, amp_tensor *y,
                           int threads) {
    int r = g->rank, last = r - 1;
    size_t es = amp_dtype_size(x->dtype);
    int64_t xs[AMP_MAX_RANK];
    amp_strides(r, x->dims, xs);
    uint8_t ex[8] = {0};
    store_out(x->dtype, ex, 0, g->extrapolation);
    int64_t W = g->out[last], rows = y->numel / W, ntask = (rows + ROWS_PER_TASK - 1) / ROWS_PER_TASK;
    size_t rb = (size_t)W * es;
    const int64_t *il = tab[last].idx;
    const uint8_t *ol = tab[last].outside;
    const uint8_t *xd = x->data;
    uint8_t *yd = y->data;
    AMP_PAR_FOR(y->numel >= PAR_MIN_WORK && ntask > 1, num_threads(threads),
    for (int64_t task = 0; task < ntask; task++) {
        int64_t r0 = task * ROWS_PER_TASK, r1 = r0 + ROWS_PER_TASK < rows ? r0 + ROWS_PER_TASK : rows;
        int64_t c[AMP_MAX_RANK], rem = r0, prev_off = -1;
        for (int d = last - 1; d >= 0; d--) {
            c[d] = rem % g->out[d];
            rem /= g->out[d];
        }
        for (int64_t row = r0; row < r1; row++) {
            int64_t off = 0;
            bool out_row = false;
            for (int d = 0; d < last; d++) {
                if (g->identity[d]) {
                    off += c[d] * xs[d];
                } else {
                    off += tab[d].idx[c[d]] * xs[d];
                    if (tab[d].outside && tab[d].outside[c[d]]) out_row = true;
                }
            }
            for (int d = last - 1; d >= 0 && ++c[d] == g->out[d]; d--) c[d] = 0;
            uint8_t *dst = yd + (size_t)row * rb;
            if (out_row) {
                for (int64_t j = 0; j < W; j++) memcpy(dst + (size_t)j * es, ex, es);
                prev_off = -1;
                continue;
            }
            if (off == prev_off) {
                memcpy(dst, dst - rb, rb);
                continue;
            }
            prev_off = off;
            const uint8_t *src = xd + (size_t)off * es;
            if (g->identity[last]) {
                memcpy(dst, src, rb);
                continue;
            }
            switch (es) {
            case 1:
                for (int64_t j = 0; j < W; j++) dst[j] = src[il[j]];
                break;
            case 2:
                for (int64_t j = 0; j < W; j++) ((uint16_t *)dst)[j] = ((const uint16_t *)src)[il[j]];
                break;
            case 4:
                for (int64_t j = 0; j < W; j++) ((uint32_t *)dst)[j] = ((const uint32_t *)src)[il[j]];
                break;
            default:
                for (int64_t j = 0; j < W; j++) ((uint64_t *)dst)[j] = ((const uint64_t *)src)[il[j]];
                break;
            }
            if (ol)
                for (int64_t j = 0; j < W; j++)
                    if (ol[j]) memcpy(dst + (size_t)j * es, ex, es);
        }
    });
}

/* ---- f32, last two axes: direct ---------------------------------------------------------------- */

#define COLS 1024 /* output columns per task (8 cached rows of them: 32 KiB of stack) */
#define SLOTS 8  /* cached source rows, at least twice the taps of a row */

/* Each task is one plane and a block of COLS output columns. Going down the output rows, a
 * source row interpolated along the width is kept while later output rows still read it (an
 * upsampled height reads each source row for several output rows), so the gathers along the
 * width run once per source row and the blend along the height is a plain vector sum. */
static void direct2d_f32(const amp_resize_geom *g, const amp_resize_tab *tab, const float *xd, float *yd, int threads) {
    int r = g->rank;
    const amp_resize_tab *th = &tab[r - 2], *tw = &tab[r - 1];
    int64_t H = g->in[r - 2], W = g->in[r - 1], Ho = g->out[r - 2], Wo = g->out[r - 1];
    int64_t Kh = g->taps[r - 2], Kw = g->taps[r - 1];
    int64_t planes = 1;
    for (int d = 0; d < r - 2; d++) planes *= g->out[d];
    int64_t nb = (Wo + COLS - 1) / COLS;
    float ex = (float)g->extrapolation;
    AMP_PAR_FOR(planes * Ho * Wo >= PAR_MIN_WORK && planes * nb > 1, num_threads(threads),
    for (int64_t task = 0; task < planes * nb; task++) {
        int64_t p = task / nb, j0 = task % nb * COLS, n = Wo - j0 < COLS ? Wo - j0 : COLS;
        const float *src = xd + p * H * W;
        float cache[SLOTS][COLS];
        int64_t tag[SLOTS], used[SLOTS];
        for (int s = 0; s < SLOTS; s++) tag[s] = -1, used[s] = -1;
        for (int64_t yy = 0; yy < Ho; yy++) {
            float *dst = yd + (p * Ho + yy) * Wo + j0;
            if (th->outside && th->outside[yy]) {
                for (int64_t j = 0; j < n; j++) dst[j] = ex;
                continue;
            }
            const int64_t *ih = th->idx + yy * Kh;
            const float *wh = th->wf + yy * Kh;
            const float *rows[4];
            for (int64_t a = 0; a < Kh; a++) {
                int s = 0;
                while (s < SLOTS && tag[s] != ih[a]) s++;
                if (s == SLOTS) {
                    /* the least recently used slot; slots of this output row were used at yy */
                    s = 0;
                    for (int q = 1; q < SLOTS; q++)
                        if (used[q] < used[s]) s = q;
                    const float *row = src + ih[a] * W;
                    const int64_t *iw = tw->idx + j0 * Kw;
                    const float *ww = tw->wf + j0 * Kw;
                    float *h = cache[s];
                    if (Kw == 2) {
                        for (int64_t j = 0; j < n; j++)
                            h[j] = ww[2 * j] * row[iw[2 * j]] + ww[2 * j + 1] * row[iw[2 * j + 1]];
                    } else {
                        for (int64_t j = 0; j < n; j++) {
                            float acc = 0;
                            for (int64_t b = 0; b < Kw; b++) acc += ww[j * Kw + b] * row[iw[j * Kw + b]];
                            h[j] = acc;
                        }
                    }
                    tag[s] = ih[a];
                }
                used[s] = yy;
                rows[a] = cache[s];
            }
            if (Kh == 2) {
                float a0 = wh[0], a1 = wh[1];
                const float *h0 = rows[0], *h1 = rows[1];
                for (int64_t j = 0; j < n; j++) dst[j] = a0 * h0[j] + a1 * h1[j];
            } else {
                for (int64_t j = 0; j < n; j++) dst[j] = wh[0] * rows[0][j];
                for (int64_t a = 1; a < Kh; a++)
                    for (int64_t j = 0; j < n; j++) dst[j] += wh[a] * rows[a][j];
            }
            if (tw->outside)
                for (int64_t j = 0; j < n; j++)
                    if (tw->outside[j0 + j]) dst[j] = ex;
        }
    });
}

/* ---- separable passes ---------------------------------------------------------------------------- */

/* One pass along an axis of length lin -> lout, between outer and inner blocks:
 * dst[o, j, i] = sum_k w[j, k] * src[o, idx[j, k], i], or the extrapolation value. Typed
 * versions for f32 and f64 buffers; inner == 1 (the last axis) is a gather per output. */
#define DEFINE_PASS(NAME, T, W)                                                                                      \
    static void NAME(const amp_resize_tab *t, int64_t K, const T *src, T *dst, int64_t outer, int64_t lin,           \
                     int64_t lout, int64_t inner, T ex, int threads) {                                               \
        bool par = outer * lout * inner >= PAR_MIN_WORK;                                                             \
        if (inner == 1) {                                                                                            \
            _Pragma("omp parallel for num_threads(threads) if (par && outer > 1)")                                   \
            for (int64_t o = 0; o < outer; o++) {                                                                    \
                const T *s = src + o * lin;                                                                          \
                T *d = dst + o * lout;                                                                               \
                for (int64_t j = 0; j < lout; j++) {                                                                 \
                    const int64_t *ix = t->idx + j * K;                                                              \
                    const T *w = t->W + j * K;                                                                       \
                    T acc = 0;                                                                                       \
                    for (int64_t k = 0; k < K; k++) acc += w[k] * s[ix[k]];                                          \
                    d[j] = t->outside && t->outside[j] ? ex : acc;                                                   \
                }                                                                                                    \
            }                                                                                                        \
            return;                                                                                                  \
        }                                                                                                            \
        _Pragma("omp parallel for num_threads(threads) if (par && outer * lout > 1)")                                \
        for (int64_t oj = 0; oj < outer * lout; oj++) {                                                              \
            int64_t o = oj / lout, j = oj % lout;                                                                    \
            T *d = dst + oj * inner;                                                                                 \
            if (t->outside && t->outside[j]) {                                                                       \
                for (int64_t i = 0; i < inner; i++) d[i] = ex;                                                       \
                continue;                                                                                            \
            }                                                                                                        \
            const T *s = src + o * lin * inner;                                                                      \
            const int64_t *ix = t->idx + j * K;                                                                      \
            const T *w = t->W + j * K;                                                                               \
            const T *s0 = s + ix[0] * inner;                                                                         \
            T w0 = w[0];                                                                                             \
            for (int64_t i = 0; i < inner; i++) d[i] = w0 * s0[i];                                                   \
            for (int64_t k = 1; k < K; k++) {                                                                        \
                const T *sk = s + ix[k] * inner;                                                                     \
                T wk = w[k];                                                                                         \
                for (int64_t i = 0; i < inner; i++) d[i] += wk * sk[i];                                              \
            }                                                                                                        \
        }                                                                                                            \
    }

DEFINE_PASS(pass_f32, float, wf)
DEFINE_PASS(pass_f64, double, wd)

/* Any other pair of dtypes (reading f16/bf16/integer X, writing the final f16/bf16/integer Y):
 * per element, in f64. */
static void pass_any(const amp_resize_tab *t, int64_t K, const void *src, amp_dtype sdt, void *dst, amp_dtype ddt,
                     int64_t outer, int64_t lin, int64_t lout, int64_t inner, double ex, int threads) {
    bool par = outer * lout * inner >= PAR_MIN_WORK;
    AMP_PAR_FOR(par && outer * lout > 1, num_threads(threads),
    for (int64_t oj = 0; oj < outer * lout; oj++) {
        int64_t o = oj / lout, j = oj % lout;
        bool outside = t->outside && t->outside[j];
        const int64_t *ix = t->idx + j * K;
        const double *w = t->wd + j * K;
        for (int64_t i = 0; i < inner; i++) {
            double acc = 0;
            if (outside) {
                acc = ex;
            } else {
                for (int64_t k = 0; k < K; k++) acc += w[k] * amp_ld(sdt, src, (o * lin + ix[k]) * inner + i);
            }
            store_out(ddt, dst, oj * inner + i, acc);
        }
    });
}

static void run_pass(const amp_resize_tab *t, int64_t K, const void *src, amp_dtype sdt, void *dst, amp_dtype ddt,
                     int64_t outer, int64_t lin, int64_t lout, int64_t inner, double ex, int threads) {
    if (sdt == AMP_F32 && ddt == AMP_F32)
        pass_f32(t, K, src, dst, outer, lin, lout, inner, (float)ex, threads);
    else if (sdt == AMP_F64 && ddt == AMP_F64)
        pass_f64(t, K, src, dst, outer, lin, lout, inner, ex, threads);
    else
        pass_any(t, K, src, sdt, dst, ddt, outer, lin, lout, inner, ex, threads);
}

/* ---- the kernel ------------------------------------------------------------------------------- */

/* Resize and Upsample: the tables and intermediate buffers of amp_resize_plan_make. ResizeGrad
 * (backends/cpu/resize_grad.c, inputs dY, shape of X, roi, scales, sizes): the forward's, and dX
 * accumulated in the compute type when it is 16-bit; its geometry is over dX's dims. */
amp_status amp_cpu_ws_resize(const amp_kernel *k, size_t *bytes) {
    const bool grad = k->n->op == AMP_OP_RESIZE_GRAD;
    const amp_tensor *x = grad ? k->out[0] : k->in[0];
    amp_resize_slots sl;
    if (grad) {
        const char *op = amp_attr_str(k->n, "fwd_op", "");
        sl = (amp_resize_slots){.upsample = strcmp(op, "Upsample") == 0, .opset = amp_attr_int(k->n, "fwd_opset", 0),
                                .roi = 2, .scales = 3, .sizes = 4};
    } else {
        amp_resize_forward_slots(k->n, k->opset, &sl);
    }
    bool roi_p, sc_p, sz_p;
    const amp_tensor *roi = amp_resize_plan_input(k, sl.roi, &roi_p);
    const amp_tensor *scales = amp_resize_plan_input(k, sl.scales, &sc_p);
    const amp_tensor *sizes = amp_resize_plan_input(k, sl.sizes, &sz_p);
    if ((sc_p && !scales) || (sz_p && !sizes))
        return amp_kernel_fail(k, AMP_ERR_UNSUPPORTED, "data-dependent shape: %s must be known before running",
                               sc_p && !scales ? "scales" : "sizes");
    amp_resize_geom g;
    amp_resize_plan p;
    char why[256];
    amp_status s = amp_resize_geometry(k->n, &sl, x->rank, x->dims, roi, roi_p, scales, sizes, &g, why, sizeof why);
    if (!s) s = amp_resize_plan_make(&g, k->in[0]->dtype, grad, k->ctx->max_tensor_elements, &p, why, sizeof why);
    if (s) return amp_kernel_fail(k, s, "%s", why);
    *bytes = p.bytes;
    return AMP_OK;
}

amp_status amp_cpu_resize(amp_kernel *k) {
    const amp_tensor *x = k->in[0];
    amp_tensor *y = k->out[0];
    amp_resize_slots sl;
    amp_resize_forward_slots(k->n, k->opset, &sl);
    const amp_tensor *roi = amp_resize_kernel_input(k, sl.roi);
    amp_resize_geom g;
    amp_resize_plan p;
    char why[256];
    amp_status s = amp_resize_geometry(k->n, &sl, x->rank, x->dims, roi, roi != NULL, amp_resize_kernel_input(k, sl.scales),
                                       amp_resize_kernel_input(k, sl.sizes), &g, why, sizeof why);
    if (!s) s = amp_resize_plan_make(&g, x->dtype, false, k->ctx->max_tensor_elements, &p, why, sizeof why);
    if (s) return amp_kernel_fail(k, s, "%s", why);
    if (y->dtype != x->dtype || y->rank != x->rank || memcmp(y->dims, g.out, sizeof(int64_t) * (size_t)x->rank))
        return amp_kernel_fail(k, AMP_ERR_SHAPE, "output shape does not match");
    if (p.bytes > k->ws_bytes) return amp_kernel_fail(k, AMP_ERR_INTERNAL, "workspace too small");
    if (y->numel == 0) return AMP_OK;
    amp_resize_tab tab[AMP_MAX_RANK];
    amp_resize_tables(&g, &p, k->ws, tab);
    if (g.mode == AMP_RZ_NEAREST) {
        nearest_gather(&g, tab, x, y, k->threads);
        return AMP_OK;
    }
    if (p.npass == 0) {
        if (y->data != x->data) memcpy(y->data, x->data, x->nbytes);
        return AMP_OK;
    }
    if (p.direct2d) {
        direct2d_f32(&g, tab, x->data, y->data, k->threads);
        return AMP_OK;
    }
    int64_t cur[AMP_MAX_RANK];
    memcpy(cur, g.in, sizeof cur);
    const void *src = x->data;
    amp_dtype sdt = x->dtype;
    for (int i = 0; i < p.npass; i++) {
        int d = p.axes[i];
        int64_t outer = 1, inner = 1;
        for (int e = 0; e < d; e++) outer *= cur[e];
        for (int e = d + 1; e < g.rank; e++) inner *= cur[e];
        bool last = i == p.npass - 1;
        void *dst = last ? y->data : (char *)k->ws + p.buf[i % 2];
        amp_dtype ddt = last ? y->dtype : p.ct;
        run_pass(&tab[d], g.taps[d], src, sdt, dst, ddt, outer, g.in[d], g.out[d], inner, g.extrapolation, k->threads);
        cur[d] = g.out[d];
        src = dst;
        sdt = ddt;
    }
    return AMP_OK;
}

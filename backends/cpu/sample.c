/* CPU kernels of the sample family: GridSample, AffineGrid and RoiAlign, following ONNX's
 * reference implementation (onnx/reference/ops/op_grid_sample.py and friends) step for step,
 * since its order of rounding and padding is what the conformance data were made with. Two
 * places follow PyTorch and onnxruntime instead, where the reference has no sound answer or
 * disagrees with both: cubic sampling with border padding clamps the taps, not the coordinate,
 * and AffineGrid puts the one pixel of a length-1 dim with align_corners at 0.
 *
 * The sampling geometry lives here and is shared with the gradient kernels of
 * backends/cpu/sample_grad.c, which repeat the declarations of the amp_cpu_gs_* and
 * amp_cpu_roi_* functions below: GridSample's taps (per output point, the flat offsets into one
 * (n, c) plane of X with their weights and the weights' derivatives along each grid
 * coordinate), and RoiAlign's boxes and per-axis samples. */
#include <math.h>
#include <string.h>

#include "backends/cpu/sample.h"
#include "backends/cpu/par.h"

#define PAR_MIN_WORK ((int64_t)1 << 14)

/* ---- GridSample geometry ---------------------------------------------------------------------- */

enum { GS_NEAREST, GS_LINEAR, GS_CUBIC };
enum { GS_ZEROS, GS_BORDER, GS_REFLECTION };

amp_status amp_cpu_gs_config(amp_kernel *k, int64_t opset, int cfg[3]) {
    bool v20 = opset >= 20;
    const char *mode = amp_attr_str(k->n, "mode", v20 ? "linear" : "bilinear");
    const char *pad = amp_attr_str(k->n, "padding_mode", "zeros");
    if (!strcmp(mode, "nearest")) cfg[0] = GS_NEAREST;
    else if (!strcmp(mode, v20 ? "linear" : "bilinear")) cfg[0] = GS_LINEAR;
    else if (!strcmp(mode, v20 ? "cubic" : "bicubic")) cfg[0] = GS_CUBIC;
    else return amp_kernel_fail(k, AMP_ERR_INVALID_ARG, "unknown mode '%s'", mode);
    if (!strcmp(pad, "zeros")) cfg[1] = GS_ZEROS;
    else if (!strcmp(pad, "border")) cfg[1] = GS_BORDER;
    else if (!strcmp(pad, "reflection")) cfg[1] = GS_REFLECTION;
    else return amp_kernel_fail(k, AMP_ERR_INVALID_ARG, "unknown padding_mode '%s'", pad);
    cfg[2] = amp_attr_int(k->n, "align_corners", 0) != 0;
    return AMP_OK;
}

/* Reflect x into [lo, hi] by the nearer border until it lands inside; *sign is dx'/dx. A range of
 * one point (one pixel with align_corners) maps everything onto it, as PyTorch does (the
 * reference divides by zero there). */
static double gs_reflect(double x, double lo, double hi, double *sign) {
    double rng = hi - lo;
    *sign = 1;
    if (!(rng > 0)) {
        *sign = 0;
        return lo;
    }
    if (x < lo || x > hi) {
        double dx = x < lo ? lo - x : x - hi, q = floor(dx / rng), rem = dx - q * rng;
        bool even = fmod(q, 2.0) == 0;
        *sign = even ? -1 : 1;
        if (x < lo) x = even ? lo + rem : hi - rem;
        else x = even ? hi - rem : lo + rem;
    }
    /* far-away values lose the remainder's precision: stay inside whatever happens */
    return x < lo ? lo : x > hi ? hi : x;
}

/* The element a tap at integer position i reads, or -1 for zero padding outside. */
static int64_t gs_pixel(int pad, int64_t i, int64_t len, double lo, double hi) {
    if (i >= 0 && i < len) return i;
    if (pad == GS_ZEROS || len == 0) return -1;
    if (pad == GS_BORDER) return i < 0 ? 0 : len - 1;
    double sg;
    int64_t j = (int64_t)gs_reflect((double)i, lo, hi, &sg); /* truncated, as the reference does */
    return j < 0 ? 0 : j >= len ? len - 1 : j;
}

typedef struct gs_axis {
    int n;
    int64_t idx[4];
    double w[4], dw[4]; /* dw: d w / d (grid coordinate) */
} gs_axis;

/* Keys' cubic convolution weights (A = -0.75) of the taps at -1, 0, 1, 2 for a fraction t, and
 * their derivatives in t. */
static void cubic_coeffs(double t, double *c, double *dc) {
    const double A = -0.75;
    double u = t + 1, s = 1 - t, v = 2 - t;
    c[0] = ((A * u - 5 * A) * u + 8 * A) * u - 4 * A;
    c[1] = ((A + 2) * t - (A + 3)) * t * t + 1;
    c[2] = ((A + 2) * s - (A + 3)) * s * s + 1;
    c[3] = ((A * v - 5 * A) * v + 8 * A) * v - 4 * A;
    dc[0] = (3 * A * u - 10 * A) * u + 8 * A;
    dc[1] = (3 * (A + 2) * t - 2 * (A + 3)) * t;
    dc[2] = -(3 * (A + 2) * s - 2 * (A + 3)) * s;
    dc[3] = -((3 * A * v - 10 * A) * v + 8 * A);
}

static void gs_axis_taps(const int cfg[3], int64_t len, double gv, bool wide, gs_axis *t) {
    int mode = cfg[0], pad = cfg[1], align = cfg[2];
    double lo = align ? 0 : -0.5, hi = align ? (double)len - 1 : (double)len - 0.5;
    double dfac = align ? ((double)len - 1) / 2 : (double)len / 2; /* d x / d grid */
    double x;
    if (wide) {
        x = align ? (gv + 1) / 2 * (double)(len - 1) : ((gv + 1) * (double)len - 1) / 2;
    } else {
        float g = (float)gv;
        x = align ? (g + 1.0f) / 2.0f * (float)(len - 1) : ((g + 1.0f) * (float)len - 1.0f) / 2.0f;
    }
    /* nearest rounds halves to even before padding, as the reference (and PyTorch) do */
    if (mode == GS_NEAREST) x = wide ? nearbyint(x) : (double)nearbyintf((float)x);
    /* Cubic with border padding clamps only the taps, as PyTorch and onnxruntime do (ONNX's
     * reference clamps the coordinate first, which flattens the curve near the edge). Far out
     * every tap reads the edge pixel, so the coordinate may stop a few pixels out. */
    bool cubic_border = mode == GS_CUBIC && pad == GS_BORDER;
    if (cubic_border && (x < -4.0 || x > (double)len + 3.0)) {
        x = x < -4.0 ? -4.0 : (double)len + 3.0;
        dfac = 0;
    }
    if ((x < lo || x > hi) && !cubic_border) {
        if (pad == GS_BORDER) {
            x = x < 0 ? 0 : x > (double)len - 1 ? (double)len - 1 : x;
            dfac = 0;
        } else if (pad == GS_REFLECTION) {
            double sg;
            x = gs_reflect(x, lo, hi, &sg);
            dfac *= sg;
        }
    }
    if (!wide) x = (float)x;
    t->n = 0;
    /* NaN, and zero padding far outside: every tap reads zero */
    if (!(x > -8.0 && x < (double)len + 8.0) || len == 0) return;
    if (mode == GS_NEAREST) {
        t->n = 1;
        t->idx[0] = gs_pixel(pad, (int64_t)x, len, lo, hi);
        t->w[0] = 1;
        t->dw[0] = 0;
        return;
    }
    double f = floor(x), fr = x - f;
    int64_t i0 = (int64_t)f;
    if (mode == GS_LINEAR) {
        t->n = 2;
        t->idx[0] = gs_pixel(pad, i0, len, lo, hi);
        t->idx[1] = gs_pixel(pad, i0 + 1, len, lo, hi);
        t->w[0] = 1 - fr;
        t->w[1] = fr;
        t->dw[0] = -dfac;
        t->dw[1] = dfac;
        return;
    }
    double c[4], dc[4];
    cubic_coeffs(fr, c, dc);
    t->n = 4;
    for (int j = 0; j < 4; j++) {
        t->idx[j] = gs_pixel(pad, i0 - 1 + j, len, lo, hi);
        t->w[j] = c[j];
        t->dw[j] = dc[j] * dfac;
    }
}

int amp_cpu_gs_taps(const int cfg[3], int r, const int64_t *sdims, const double *coord, bool wide, int64_t *off,
                    double *w, double *dw) {
    gs_axis ax[3];
    int64_t st[3];
    int total = 1;
    amp_strides(r, sdims, st);
    for (int a = 0; a < r; a++) {
        gs_axis_taps(cfg, sdims[a], coord[r - 1 - a], wide, &ax[a]);
        if (ax[a].n == 0) return 0;
        total *= ax[a].n;
    }
    int cnt = 0;
    for (int j = 0; j < total; j++) {
        int kk[3], rem = j;
        int64_t o = 0;
        double ww = 1;
        bool zero = false;
        for (int a = r - 1; a >= 0; a--) {
            kk[a] = rem % ax[a].n;
            rem /= ax[a].n;
            int64_t i = ax[a].idx[kk[a]];
            if (i < 0) zero = true;
            o += i * st[a];
            ww *= ax[a].w[kk[a]];
        }
        if (zero) continue;
        off[cnt] = o;
        w[cnt] = ww;
        if (dw)
            for (int a = 0; a < r; a++) {
                double p = ax[a].dw[kk[a]];
                for (int b = 0; b < r; b++)
                    if (b != a) p *= ax[b].w[kk[b]];
                dw[cnt * r + (r - 1 - a)] = p;
            }
        cnt++;
    }
    return cnt;
}

/* Integer and bool outputs of linear and cubic sampling: rounded half to even, saturated to the
 * type's range (cubic overshoots), NaN as 0. */
static void store_rounded(amp_dtype dt, void *p, int64_t i, double v) {
    v = nearbyint(v);
    if (v != v) v = 0;
    if (dt == AMP_BOOL) {
        amp_sti(dt, p, i, v != 0);
        return;
    }
    if (dt == AMP_U64) {
        uint64_t u = v <= 0 ? 0 : v >= 18446744073709551616.0 ? UINT64_MAX : (uint64_t)v;
        ((uint64_t *)p)[i] = u;
        return;
    }
    double lo, hi;
    switch (dt) {
    case AMP_I8: lo = INT8_MIN, hi = INT8_MAX; break;
    case AMP_U8: lo = 0, hi = UINT8_MAX; break;
    case AMP_I16: lo = INT16_MIN, hi = INT16_MAX; break;
    case AMP_U16: lo = 0, hi = UINT16_MAX; break;
    case AMP_I32: lo = INT32_MIN, hi = INT32_MAX; break;
    case AMP_U32: lo = 0, hi = UINT32_MAX; break;
    default: lo = -9223372036854775808.0, hi = 9223372036854775807.0; break;
    }
    int64_t q = v <= lo ? (int64_t)lo : v >= hi ? (dt == AMP_I64 ? INT64_MAX : (int64_t)hi) : (int64_t)v;
    amp_sti(dt, p, i, q);
}

/* Y[n, :, p] from the taps of point p of batch n. */
static void gs_point(const amp_tensor *x, amp_tensor *y, int64_t n, int64_t p, int64_t C, int64_t S, int64_t P,
                     int cnt, const int64_t *off, const double *w, bool nearest) {
    amp_dtype dt = x->dtype;
    int64_t xb = n * C * S, yb = n * C * P + p;
    if (dt == AMP_F32) {
        const float *xd = (const float *)x->data + xb;
        float *yd = (float *)y->data + yb, wf[GS_MAX_TAPS];
        for (int j = 0; j < cnt; j++) wf[j] = (float)w[j];
        for (int64_t c = 0; c < C; c++, xd += S) {
            float acc = 0;
            for (int j = 0; j < cnt; j++) acc += wf[j] * xd[off[j]];
            yd[c * P] = acc;
        }
    } else if (dt == AMP_F64) {
        const double *xd = (const double *)x->data + xb;
        double *yd = (double *)y->data + yb;
        for (int64_t c = 0; c < C; c++, xd += S) {
            double acc = 0;
            for (int j = 0; j < cnt; j++) acc += w[j] * xd[off[j]];
            yd[c * P] = acc;
        }
    } else if (dt == AMP_F16 || dt == AMP_BF16) {
        for (int64_t c = 0; c < C; c++) {
            float acc = 0;
            for (int j = 0; j < cnt; j++) acc += (float)w[j] * (float)amp_ld(dt, x->data, xb + c * S + off[j]);
            amp_st(dt, y->data, yb + c * P, acc);
        }
    } else if (nearest) {
        /* a copy: exact for 64-bit integers too */
        for (int64_t c = 0; c < C; c++)
            amp_sti(dt, y->data, yb + c * P, cnt ? amp_ldi(dt, x->data, xb + c * S + off[0]) : 0);
    } else {
        for (int64_t c = 0; c < C; c++) {
            double acc = 0;
            for (int j = 0; j < cnt; j++) acc += w[j] * amp_ld(dt, x->data, xb + c * S + off[j]);
            store_rounded(dt, y->data, yb + c * P, acc);
        }
    }
}

amp_status amp_cpu_grid_sample(amp_kernel *k) {
    const amp_tensor *x = k->in[0], *g = k->in[1];
    amp_tensor *y = k->out[0];
    int cfg[3];
    amp_status s = amp_cpu_gs_config(k, k->opset, cfg);
    if (s) return s;
    int r = x->rank - 2;
    if (r < 1 || r > 3 || g->rank != x->rank || g->dims[r + 1] != r || g->dims[0] != x->dims[0] ||
        y->dtype != x->dtype || y->rank != x->rank)
        return amp_kernel_fail(k, AMP_ERR_SHAPE, "X, grid and Y do not fit together");
    int64_t N = x->dims[0], C = x->dims[1], S = 1, P = 1;
    for (int d = 0; d < r; d++) {
        S *= x->dims[2 + d];
        P *= g->dims[1 + d];
    }
    bool wide = g->dtype == AMP_F64;
    int64_t pts = N * P;
    if (y->numel == 0) return AMP_OK;
    AMP_PAR_FOR(pts * (C + 8) >= PAR_MIN_WORK && pts > 1, num_threads(amp_cpu_threads(k)) schedule(static),
    for (int64_t q = 0; q < pts; q++) {
        double coord[3];
        int64_t off[GS_MAX_TAPS];
        double w[GS_MAX_TAPS];
        for (int j = 0; j < r; j++) coord[j] = amp_ld(g->dtype, g->data, q * r + j);
        int cnt = amp_cpu_gs_taps(cfg, r, x->dims + 2, coord, wide, off, w, NULL);
        gs_point(x, y, q / P, q % P, C, S, P, cnt, off, w, cfg[0] == GS_NEAREST);
    });
    return AMP_OK;
}

/* ---- AffineGrid ------------------------------------------------------------------------------ */


double amp_cpu_affine_base(int64_t i, int64_t len, bool align) {
    if (align) return len > 1 ? -1.0 + 2.0 * (double)i / (double)(len - 1) : 0.0;
    return (2.0 * (double)i + 1.0) / (double)len - 1.0;
}

amp_status amp_cpu_affine_grid(amp_kernel *k) {
    const amp_tensor *th = k->in[0];
    amp_tensor *y = k->out[0];
    int sp = y->rank - 2; /* 2 or 3 spatial dims */
    if ((sp != 2 && sp != 3) || th->rank != 3 || th->dims[0] != y->dims[0] || th->dims[1] != sp ||
        th->dims[2] != sp + 1 || y->dims[y->rank - 1] != sp || y->dtype != th->dtype)
        return amp_kernel_fail(k, AMP_ERR_SHAPE, "theta and the grid do not fit together");
    bool align = amp_attr_int(k->n, "align_corners", 0) != 0;
    int64_t N = y->dims[0], P = 1;
    for (int d = 0; d < sp; d++) P *= y->dims[1 + d];
    int64_t W = y->dims[sp], H = y->dims[sp - 1], D = sp == 3 ? y->dims[1] : 1;
    amp_dtype dt = y->dtype;
    int64_t pts = N * P;
    AMP_PAR_FOR(pts >= PAR_MIN_WORK, num_threads(amp_cpu_threads(k)) schedule(static),
    for (int64_t q = 0; q < pts; q++) {
        int64_t n = q / P, p = q % P;
        /* homogeneous base position (x, y[, z], 1) */
        double b[4];
        b[0] = amp_cpu_affine_base(p % W, W, align);
        b[1] = amp_cpu_affine_base((p / W) % H, H, align);
        if (sp == 3) b[2] = amp_cpu_affine_base(p / (W * H), D, align);
        b[sp] = 1.0;
        const int64_t t0 = n * sp * (sp + 1);
        for (int i = 0; i < sp; i++) {
            double acc = 0;
            for (int j = 0; j <= sp; j++) acc += amp_ld(dt, th->data, t0 + i * (sp + 1) + j) * b[j];
            amp_st(dt, y->data, q * sp + i, acc);
        }
    });
    return AMP_OK;
}

/* ---- RoiAlign geometry ------------------------------------------------------------------------ */


void amp_cpu_roi_params(const amp_node *n, int64_t opset, double p[4]) {
    p[0] = amp_attr_float(n, "spatial_scale", 1.0f);
    /* RoiAlign-10 had only the output_half_pixel behaviour */
    const char *ctm = opset >= 16 ? amp_attr_str(n, "coordinate_transformation_mode", "half_pixel") : "";
    p[1] = strcmp(ctm, "half_pixel") == 0 ? 0.5 : 0.0;
    p[2] = (double)amp_attr_int(n, "sampling_ratio", 0);
    p[3] = strcmp(amp_attr_str(n, "mode", "avg"), "max") == 0;
}

bool amp_cpu_roi_box(const double p[4], const double roi[4], int64_t oh, int64_t ow, double b[7]) {
    double sw = roi[0] * p[0] - p[1], sh = roi[1] * p[0] - p[1];
    double ew = roi[2] * p[0] - p[1], eh = roi[3] * p[0] - p[1];
    double rw = ew - sw, rh = eh - sh;
    if (p[1] == 0) {
        /* output_half_pixel forces malformed rois to 1x1 */
        rw = fmax(rw, 1.0);
        rh = fmax(rh, 1.0);
    }
    b[0] = sh;
    b[1] = sw;
    b[2] = rh / (double)oh;
    b[3] = rw / (double)ow;
    b[4] = p[2] > 0 ? p[2] : ceil(rh / (double)oh);
    b[5] = p[2] > 0 ? p[2] : ceil(rw / (double)ow);
    b[6] = b[4] * b[5] > 1 ? b[4] * b[5] : 1;
    for (int i = 0; i < 7; i++)
        if (!isfinite(b[i])) return false;
    /* past 2^53 samples along an axis their positions cannot even be told apart */
    return b[4] <= 9007199254740992.0 && b[5] <= 9007199254740992.0;
}

void amp_cpu_roi_range(double start, double step, double grid, int64_t len, int64_t *lo, int64_t *hi) {
    if (!(grid >= 1)) {
        *lo = *hi = 0;
        return;
    }
    double l = 0, h = grid;
    if (step > 0) {
        /* sample i sits at start + (i + 0.5) * step; one sample of slack on each side for rounding */
        double a = floor((-1.0 - start) / step - 0.5) - 1, z = ceil(((double)len - start) / step - 0.5) + 2;
        if (a > l) l = a;
        if (z < h) h = z;
        /* at most (len + 1) / step + 1 samples land on the map (an adaptive step is over 1/2):
         * rounding far from the origin must not widen the loop */
        double most = ((double)len + 1.0) / step + 4;
        if (h - l > most) h = l + most;
        if (h < l) h = l;
    }
    /* an explicit sampling ratio is bounded by inference, the rest by the range above */
    *lo = (int64_t)l;
    *hi = (int64_t)h;
}

bool amp_cpu_roi_axis(double v, int64_t len, int64_t *ilo, int64_t *ihi, double *wlo, double *whi) {
    if (!(v >= -1.0 && v <= (double)len) || len == 0) return false;
    if (v < 0) v = 0;
    int64_t l = (int64_t)v, h;
    if (l >= len - 1) {
        h = l = len - 1;
        v = (double)l;
    } else {
        h = l + 1;
    }
    *ilo = l;
    *ihi = h;
    *whi = v - (double)l;
    *wlo = 1.0 - *whi;
    return true;
}

double amp_cpu_roi_bin(amp_dtype dt, const void *xd, int64_t xo, int64_t H, int64_t W, const double *b, int64_t ph,
                       int64_t pw, bool is_max, int64_t *arg, double *argw) {
    double sy = b[2] / b[4], sx = b[3] / b[5];
    double by = b[0] + (double)ph * b[2], bx = b[1] + (double)pw * b[3];
    int64_t ylo, yhi, xlo, xhi;
    amp_cpu_roi_range(by, sy, b[4], H, &ylo, &yhi);
    amp_cpu_roi_range(bx, sx, b[5], W, &xlo, &xhi);
    /* max: samples that read nothing count as 0, as in the reference */
    bool any_out = ylo > 0 || (double)yhi < b[4] || xlo > 0 || (double)xhi < b[5], have = false;
    double acc = 0, best = 0, best_w = 0;
    int64_t best_at = -1;
    for (int64_t iy = ylo; iy < yhi; iy++) {
        int64_t y0, y1;
        double wy0, wy1;
        if (!amp_cpu_roi_axis(by + ((double)iy + 0.5) * sy, H, &y0, &y1, &wy0, &wy1)) {
            any_out = true;
            continue;
        }
        for (int64_t ix = xlo; ix < xhi; ix++) {
            int64_t x0, x1;
            double wx0, wx1;
            if (!amp_cpu_roi_axis(bx + ((double)ix + 0.5) * sx, W, &x0, &x1, &wx0, &wx1)) {
                any_out = true;
                continue;
            }
            const int64_t at[4] = {y0 * W + x0, y0 * W + x1, y1 * W + x0, y1 * W + x1};
            const double w[4] = {wy0 * wx0, wy0 * wx1, wy1 * wx0, wy1 * wx1};
            double t[4];
            if (dt == AMP_F32) {
                const float *p = (const float *)xd + xo;
                for (int j = 0; j < 4; j++) t[j] = w[j] * p[at[j]];
            } else {
                for (int j = 0; j < 4; j++) t[j] = w[j] * amp_ld(dt, xd, xo + at[j]);
            }
            if (!is_max) {
                acc += t[0] + t[1] + t[2] + t[3];
                continue;
            }
            /* the max of the weighted corner terms (not of the interpolated value), as ONNX's
             * reference and onnxruntime take it; the first of equals wins */
            int m = 0;
            for (int j = 1; j < 4; j++)
                if (t[j] > t[m]) m = j;
            if (!have || t[m] > best) {
                best = t[m];
                best_at = at[m];
                best_w = w[m];
            }
            have = true;
        }
    }
    if (!is_max) return acc / b[6];
    if (any_out && (!have || best < 0)) {
        best = 0;
        best_at = -1;
    }
    if (arg) {
        *arg = best_at;
        *argw = best_w;
    }
    return best;
}

/* The samples of one bin along one axis that read the map, when there are at most ROI_TAB of
 * them to visit (sampling ratios up to 64, adaptive grids over maps up to about 30 pixels a
 * bin): tabulated once and used for every channel. */
#define ROI_TAB 64
typedef struct roi_tab {
    int n;
    int64_t lo[ROI_TAB], hi[ROI_TAB];
    double wlo[ROI_TAB], whi[ROI_TAB];
} roi_tab;

static bool roi_tabulate(double start, double step, double grid, int64_t len, roi_tab *t, bool *any_out) {
    int64_t a, z;
    amp_cpu_roi_range(start, step, grid, len, &a, &z);
    if (z - a > ROI_TAB) return false;
    if (a > 0 || (double)z < grid) *any_out = true;
    t->n = 0;
    for (int64_t i = a; i < z; i++) {
        int j = t->n;
        if (amp_cpu_roi_axis(start + ((double)i + 0.5) * step, len, &t->lo[j], &t->hi[j], &t->wlo[j], &t->whi[j]))
            t->n++;
        else
            *any_out = true;
    }
    return true;
}

static inline double roi_px(amp_dtype dt, const void *xd, int64_t i) {
    return dt == AMP_F32 ? ((const float *)xd)[i] : amp_ld(dt, xd, i);
}

/* Output (ph, pw) of every channel from the tables of the bin: the samples' weighted corner terms
 * summed (avg) or the largest of them taken (max), in the order of amp_cpu_roi_bin. */
static void roi_bin_channels(amp_dtype dt, const void *xd, int64_t xo, int64_t C, int64_t H, int64_t W,
                             const roi_tab *ty, const roi_tab *tx, bool any_out, double count, bool is_max,
                             amp_tensor *y, int64_t yo, int64_t ystride) {
    int64_t HW = H * W;
    for (int64_t c = 0; c < C; c++, xo += HW) {
        double acc = 0, best = 0;
        bool have = false;
        for (int a = 0; a < ty->n; a++) {
            const int64_t r0 = xo + ty->lo[a] * W, r1 = xo + ty->hi[a] * W;
            const double wy0 = ty->wlo[a], wy1 = ty->whi[a];
            for (int b = 0; b < tx->n; b++) {
                const int64_t x0 = tx->lo[b], x1 = tx->hi[b];
                const double wx0 = tx->wlo[b], wx1 = tx->whi[b];
                double t0 = wy0 * wx0 * roi_px(dt, xd, r0 + x0), t1 = wy0 * wx1 * roi_px(dt, xd, r0 + x1);
                double t2 = wy1 * wx0 * roi_px(dt, xd, r1 + x0), t3 = wy1 * wx1 * roi_px(dt, xd, r1 + x1);
                if (!is_max) {
                    acc += t0 + t1 + t2 + t3;
                    continue;
                }
                double m = t0;
                if (t1 > m) m = t1;
                if (t2 > m) m = t2;
                if (t3 > m) m = t3;
                if (!have || m > best) best = m;
                have = true;
            }
        }
        if (is_max && any_out && (!have || best < 0)) best = 0;
        amp_st(y->dtype, y->data, yo + c * ystride, is_max ? best : acc / count);
    }
}

amp_status amp_cpu_roi_align(amp_kernel *k) {
    const amp_tensor *x = k->in[0], *rois = k->in[1], *bi = k->in[2];
    amp_tensor *y = k->out[0];
    if (x->rank != 4 || rois->rank != 2 || rois->dims[1] != 4 || bi->numel != rois->dims[0] || y->rank != 4 ||
        y->dims[0] != rois->dims[0] || y->dims[1] != x->dims[1])
        return amp_kernel_fail(k, AMP_ERR_SHAPE, "X, rois, batch_indices and Y do not fit together");
    int64_t N = x->dims[0], C = x->dims[1], H = x->dims[2], W = x->dims[3];
    int64_t R = rois->dims[0], oh = y->dims[2], ow = y->dims[3];
    for (int64_t i = 0; i < R; i++) {
        int64_t b = amp_ldi(bi->dtype, bi->data, i);
        if (b < 0 || b >= N)
            return amp_kernel_fail(k, AMP_ERR_INVALID_ARG, "batch_indices[%lld] = %lld is outside [0, %lld)",
                                   (long long)i, (long long)b, (long long)N);
    }
    double prm[4];
    amp_cpu_roi_params(k->n, k->opset, prm);
    bool is_max = prm[3] != 0;
    amp_dtype dt = x->dtype;
    /* one bin of one roi per iteration, all its channels: the sampling geometry is worked out once */
    int64_t bins = R * oh * ow, plane = oh * ow;
    AMP_PAR_FOR(bins > 1 && y->numel * 4 >= PAR_MIN_WORK, num_threads(amp_cpu_threads(k)) schedule(dynamic, 4),
    for (int64_t it = 0; it < bins; it++) {
        int64_t i = it / plane, ph = (it / ow) % oh, pw = it % ow;
        double roi[4], b[7];
        for (int j = 0; j < 4; j++) roi[j] = amp_ld(rois->dtype, rois->data, i * 4 + j);
        int64_t xo = amp_ldi(bi->dtype, bi->data, i) * C * H * W, yo = i * C * plane + ph * ow + pw;
        if (!amp_cpu_roi_box(prm, roi, oh, ow, b)) {
            for (int64_t c = 0; c < C; c++) amp_st(y->dtype, y->data, yo + c * plane, NAN);
            continue;
        }
        roi_tab ty, tx;
        bool any_out = false;
        if (roi_tabulate(b[0] + (double)ph * b[2], b[2] / b[4], b[4], H, &ty, &any_out) &&
            roi_tabulate(b[1] + (double)pw * b[3], b[3] / b[5], b[5], W, &tx, &any_out)) {
            roi_bin_channels(dt, x->data, xo, C, H, W, &ty, &tx, any_out, b[6], is_max, y, yo, plane);
        } else {
            for (int64_t c = 0; c < C; c++)
                amp_st(y->dtype, y->data, yo + c * plane,
                       amp_cpu_roi_bin(dt, x->data, xo + c * H * W, H, W, b, ph, pw, is_max, NULL, NULL));
        }
    });
    return AMP_OK;
}

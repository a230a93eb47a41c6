/* CPU kernels of the sample family's training ops (ir/ops/sample_grad.def): GridSampleGrad,
 * AffineGridGrad and RoiAlignGrad. They walk the forward's sampling geometry, which
 * backends/cpu/sample.c defines (declarations repeated below). Every sum runs in a fixed order,
 * so results never depend on the thread count: GridSample's dX and RoiAlign's dX are split by
 * (n, c) plane or by channel, each written by one thread. 16-bit dX sums in f32 scratch. */
#include <math.h>
#include <string.h>

#include "backends/cpu/kernels.h"
#include "backends/cpu/sample.h"
#include "backends/cpu/par.h"

#define PAR_MIN_WORK ((int64_t)1 << 14)

/* Where 16-bit gradients sum: dX itself for f32 and f64, else f32 scratch. */
typedef struct acc_buf {
    amp_dtype dt; /* of dX */
    float *f;     /* f32 sums (f32 dX, or the scratch) */
    double *d;    /* f64 sums */
} acc_buf;

/* GridSampleGrad (when dX is wanted) and RoiAlignGrad: 16-bit dX sums in an f32 copy. */
amp_status amp_cpu_ws_sample_grad(const amp_kernel *k, size_t *bytes) {
    const bool grid = k->n->op == AMP_OP_GRID_SAMPLE_GRAD;
    const amp_dtype dt = k->in[grid ? 1 : 0]->dtype;
    const bool want_dx = k->nout > 0 && k->out[0] && (!k->n->outputs || k->n->outputs[0] >= 0);
    *bytes = 0;
    if ((dt != AMP_F16 && dt != AMP_BF16) || !want_dx) return AMP_OK;
    return amp_cpu_ws_elems(k, k->out[0]->numel, sizeof(float), bytes);
}

static amp_status acc_open(amp_kernel *k, amp_tensor *dx, acc_buf *a) {
    a->dt = dx->dtype;
    a->f = NULL;
    a->d = NULL;
    if (dx->dtype == AMP_F64) a->d = dx->data;
    else if (dx->dtype == AMP_F32) a->f = dx->data;
    else if (dx->dtype == AMP_F16 || dx->dtype == AMP_BF16) {
        if (!k->ws || k->ws_bytes < (size_t)dx->numel * sizeof(float))
            return amp_kernel_fail(k, AMP_ERR_INTERNAL, "workspace too small");
        a->f = k->ws;
    } else {
        return amp_kernel_fail(k, AMP_ERR_UNSUPPORTED, "dtype %s", amp_dtype_name(dx->dtype));
    }
    return AMP_OK;
}

static inline void acc_add(acc_buf *a, int64_t i, double v) {
    if (a->d) a->d[i] += v;
    else a->f[i] += (float)v;
}

static void acc_zero(acc_buf *a, int64_t from, int64_t n) {
    if (a->d) memset(a->d + from, 0, sizeof(double) * (size_t)n);
    else memset(a->f + from, 0, sizeof(float) * (size_t)n);
}

/* 16-bit dX: round the f32 sums of [from, from + n) once. */
static void acc_close(acc_buf *a, amp_tensor *dx, int64_t from, int64_t n) {
    if (a->dt == AMP_F16 || a->dt == AMP_BF16)
        amp_narrow16(a->dt, a->f + from, (uint16_t *)dx->data + from, n);
}

/* ---- GridSampleGrad ---------------------------------------------------------------------------- */

amp_status amp_cpu_grid_sample_grad(amp_kernel *k) {
    const amp_tensor *dy = k->in[0], *x = k->in[1], *g = k->in[2];
    amp_tensor *dx = k->nout > 0 ? k->out[0] : NULL, *dg = k->nout > 1 ? k->out[1] : NULL;
    int cfg[3];
    amp_status s = amp_cpu_gs_config(k, amp_attr_int(k->n, "fwd_opset", 20), cfg);
    if (s) return s;
    int r = x->rank - 2;
    if (r < 1 || r > 3 || g->rank != x->rank || g->dims[r + 1] != r || g->dims[0] != x->dims[0] ||
        dy->rank != x->rank || dy->dtype != x->dtype || (dx && dx->numel != x->numel) ||
        (dg && dg->numel != g->numel))
        return amp_kernel_fail(k, AMP_ERR_SHAPE, "dY, X, grid and the gradients do not fit together");
    int64_t N = x->dims[0], C = x->dims[1], S = 1, P = 1;
    for (int d = 0; d < r; d++) {
        S *= x->dims[2 + d];
        P *= g->dims[1 + d];
    }
    if (dy->numel != N * C * P) return amp_kernel_fail(k, AMP_ERR_SHAPE, "dY does not fit");
    bool wide = g->dtype == AMP_F64;
    amp_dtype dt = x->dtype;
    int64_t pts = N * P;
    /* dGrid: one point per iteration, its channels summed in order */
    if (dg) {
        AMP_PAR_FOR(pts * (C + 8) >= PAR_MIN_WORK && pts > 1, num_threads(amp_cpu_threads(k)) schedule(static),
        for (int64_t q = 0; q < pts; q++) {
            double coord[3], w[GS_MAX_TAPS], dw[GS_MAX_TAPS * 3], acc[3] = {0, 0, 0};
            int64_t off[GS_MAX_TAPS];
            for (int j = 0; j < r; j++) coord[j] = amp_ld(g->dtype, g->data, q * r + j);
            int cnt = cfg[0] == 0 ? 0 : amp_cpu_gs_taps(cfg, r, x->dims + 2, coord, wide, off, w, dw);
            int64_t n = q / P, p = q % P;
            for (int64_t c = 0; c < C && cnt; c++) {
                int64_t xb = (n * C + c) * S;
                double gy = amp_ld(dt, dy->data, (n * C + c) * P + p);
                for (int j = 0; j < cnt; j++) {
                    double v = gy * amp_ld(dt, x->data, xb + off[j]);
                    for (int e = 0; e < r; e++) acc[e] += v * dw[j * r + e];
                }
            }
            for (int e = 0; e < r; e++) amp_st(g->dtype, dg->data, q * r + e, acc[e]);
        });
    }
    /* dX: one (n, c) plane per iteration, so no two threads add into the same element */
    if (dx) {
        acc_buf a;
        if ((s = acc_open(k, dx, &a))) return s;
        int64_t planes = N * C;
        AMP_PAR_FOR(planes > 1 && planes * (P + S) >= PAR_MIN_WORK, num_threads(amp_cpu_threads(k)) schedule(static),
        for (int64_t it = 0; it < planes; it++) {
            int64_t n = it / C, xb = it * S;
            acc_zero(&a, xb, S);
            for (int64_t p = 0; p < P; p++) {
                double gy = amp_ld(dt, dy->data, it * P + p), coord[3], w[GS_MAX_TAPS];
                int64_t off[GS_MAX_TAPS];
                for (int j = 0; j < r; j++) coord[j] = amp_ld(g->dtype, g->data, (n * P + p) * r + j);
                int cnt = amp_cpu_gs_taps(cfg, r, x->dims + 2, coord, wide, off, w, NULL);
                for (int j = 0; j < cnt; j++) acc_add(&a, xb + off[j], w[j] * gy);
            }
            acc_close(&a, dx, xb, S);
        });
    }
    return AMP_OK;
}

/* ---- AffineGridGrad ---------------------------------------------------------------------------- */

amp_status amp_cpu_affine_grid_grad(amp_kernel *k) {
    const amp_tensor *dg = k->in[0];
    amp_tensor *dth = k->out[0];
    int sp = dg->rank - 2;
    if ((sp != 2 && sp != 3) || dth->rank != 3 || dth->dims[0] != dg->dims[0] || dth->dims[1] != sp ||
        dth->dims[2] != sp + 1 || dg->dims[dg->rank - 1] != sp || dth->dtype != dg->dtype)
        return amp_kernel_fail(k, AMP_ERR_SHAPE, "dGrid and dTheta do not fit together");
    bool align = amp_attr_int(k->n, "align_corners", 0) != 0;
    int64_t N = dg->dims[0], P = 1;
    for (int d = 0; d < sp; d++) P *= dg->dims[1 + d];
    int64_t W = dg->dims[sp], H = dg->dims[sp - 1], D = sp == 3 ? dg->dims[1] : 1;
    amp_dtype dt = dg->dtype;
    AMP_PAR_FOR(N > 1 && N * P >= PAR_MIN_WORK, num_threads(amp_cpu_threads(k)) schedule(static),
    for (int64_t n = 0; n < N; n++) {
        double acc[3][4];
        memset(acc, 0, sizeof acc);
        for (int64_t p = 0; p < P; p++) {
            double b[4];
            b[0] = amp_cpu_affine_base(p % W, W, align);
            b[1] = amp_cpu_affine_base((p / W) % H, H, align);
            if (sp == 3) b[2] = amp_cpu_affine_base(p / (W * H), D, align);
            b[sp] = 1.0;
            for (int i = 0; i < sp; i++) {
                double gv = amp_ld(dt, dg->data, (n * P + p) * sp + i);
                for (int j = 0; j <= sp; j++) acc[i][j] += gv * b[j];
            }
        }
        for (int i = 0; i < sp; i++)
            for (int j = 0; j <= sp; j++) amp_st(dt, dth->data, (n * sp + i) * (sp + 1) + j, acc[i][j]);
    });
    return AMP_OK;
}

/* ---- RoiAlignGrad ------------------------------------------------------------------------------ */

/* avg: dY of bin (ph, pw) spread over the bilinear corners of every sample, / the count. */
static void roi_avg_back(acc_buf *a, int64_t xo, int64_t H, int64_t W, const double *b, int64_t ph, int64_t pw,
                         double gy) {
    double sy = b[2] / b[4], sx = b[3] / b[5];
    double by = b[0] + (double)ph * b[2], bx = b[1] + (double)pw * b[3], gs = gy / b[6];
    int64_t ylo, yhi, xlo, xhi;
    amp_cpu_roi_range(by, sy, b[4], H, &ylo, &yhi);
    amp_cpu_roi_range(bx, sx, b[5], W, &xlo, &xhi);
    for (int64_t iy = ylo; iy < yhi; iy++) {
        int64_t y0, y1;
        double wy0, wy1;
        if (!amp_cpu_roi_axis(by + ((double)iy + 0.5) * sy, H, &y0, &y1, &wy0, &wy1)) continue;
        for (int64_t ix = xlo; ix < xhi; ix++) {
            int64_t x0, x1;
            double wx0, wx1;
            if (!amp_cpu_roi_axis(bx + ((double)ix + 0.5) * sx, W, &x0, &x1, &wx0, &wx1)) continue;
            acc_add(a, xo + y0 * W + x0, gs * wy0 * wx0);
            acc_add(a, xo + y0 * W + x1, gs * wy0 * wx1);
            acc_add(a, xo + y1 * W + x0, gs * wy1 * wx0);
            acc_add(a, xo + y1 * W + x1, gs * wy1 * wx1);
        }
    }
}

amp_status amp_cpu_roi_align_grad(amp_kernel *k) {
    const amp_tensor *dy = k->in[0], *rois = k->in[2], *bi = k->in[3], *x = k->nin > 4 ? k->in[4] : NULL;
    amp_tensor *dx = k->out[0];
    double prm[4];
    amp_cpu_roi_params(k->n, amp_attr_int(k->n, "fwd_opset", 16), prm);
    bool is_max = prm[3] != 0;
    if (dx->rank != 4 || dy->rank != 4 || rois->rank != 2 || rois->dims[1] != 4 || dy->dims[0] != rois->dims[0] ||
        bi->numel != rois->dims[0] || dy->dims[1] != dx->dims[1] || dy->dtype != dx->dtype ||
        (x && x->numel != dx->numel) || (is_max && !x))
        return amp_kernel_fail(k, AMP_ERR_SHAPE, "dY, rois, batch_indices and dX do not fit together");
    int64_t N = dx->dims[0], C = dx->dims[1], H = dx->dims[2], W = dx->dims[3];
    int64_t R = rois->dims[0], oh = dy->dims[2], ow = dy->dims[3];
    for (int64_t i = 0; i < R; i++) {
        int64_t b = amp_ldi(bi->dtype, bi->data, i);
        if (b < 0 || b >= N)
            return amp_kernel_fail(k, AMP_ERR_INVALID_ARG, "batch_indices[%lld] = %lld is outside [0, %lld)",
                                   (long long)i, (long long)b, (long long)N);
    }
    acc_buf a;
    amp_status s = acc_open(k, dx, &a);
    if (s) return s;
    amp_dtype dt = dy->dtype;
    /* by channel: rois of one image overlap, channels never do */
    AMP_PAR_FOR(C > 1 && dy->numel * 4 >= PAR_MIN_WORK, num_threads(amp_cpu_threads(k)) schedule(static),
    for (int64_t c = 0; c < C; c++) {
        for (int64_t n = 0; n < N; n++) acc_zero(&a, (n * C + c) * H * W, H * W);
        for (int64_t i = 0; i < R; i++) {
            double roi[4], box[7];
            for (int j = 0; j < 4; j++) roi[j] = amp_ld(rois->dtype, rois->data, i * 4 + j);
            if (!amp_cpu_roi_box(prm, roi, oh, ow, box)) continue;
            int64_t xo = (amp_ldi(bi->dtype, bi->data, i) * C + c) * H * W, yo = (i * C + c) * oh * ow;
            for (int64_t ph = 0; ph < oh; ph++)
                for (int64_t pw = 0; pw < ow; pw++) {
                    double gy = amp_ld(dt, dy->data, yo + ph * ow + pw);
                    if (!is_max) {
                        roi_avg_back(&a, xo, H, W, box, ph, pw, gy);
                        continue;
                    }
                    int64_t at;
                    double w;
                    amp_cpu_roi_bin(dt, x->data, xo, H, W, box, ph, pw, true, &at, &w);
                    if (at >= 0) acc_add(&a, xo + at, gy * w);
                }
        }
        for (int64_t n = 0; n < N; n++) acc_close(&a, dx, (n * C + c) * H * W, H * W);
    });
    return AMP_OK;
}

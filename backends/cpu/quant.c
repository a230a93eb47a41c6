/* CPU kernels of the quantization family: QuantizeLinear, DequantizeLinear, DynamicQuantizeLinear,
 * MatMulInteger, ConvInteger, QLinearMatMul and QLinearConv.
 *
 * Rounding is half to even (rint in the default rounding mode) and results saturate to the
 * output type; NaN saturates to the type's minimum, as onnxruntime's kernels do. QuantizeLinear
 * divides float inputs in f32, as onnxruntime does (the ONNX reference divides f16/bf16 inputs in
 * the 16-bit type, which rounds the quotient once more), and int32 inputs in double.
 * DequantizeLinear multiplies in f32 and rounds once to the output type. QLinearMatMul and
 * QLinearConv form the multiplier x_scale * w_scale / y_scale in f32 and apply it to the int32
 * sum in double, as the ONNX reference does (onnxruntime multiplies in f32, which can round an
 * exact tie the other way).
 *
 * The integer products run on int16 copies of the operands with their zero points taken off (an
 * 8-bit value less an 8-bit zero point fits; workspace sized below, amp_cpu_ws_*), so that the
 * dot products vectorise as 16-bit multiplies; sums wrap modulo 2^32, the accumulation overflow
 * the spec allows. The matmuls transpose B so that every dot product reads both operands in
 * order. The convolutions are direct loops over a table of kernel taps, with x copied channels
 * last and w as [M, taps, C/group], so that the innermost sum runs over contiguous channels;
 * windows that lie inside the input skip the bound checks. */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "backends/cpu/cpu.h"
#include "backends/cpu/kernels.h"
#include "backends/cpu/par.h"
#include "ir/ops/conv.h"
#include "ir/ops/quant.h"

#define PAR_MIN ((int64_t)1 << 15) /* below this much work, threads cost more than they save */

static void qrange(amp_dtype t, double *lo, double *hi) {
    switch (t) {
    case AMP_I8: *lo = -128, *hi = 127; break;
    case AMP_U16: *lo = 0, *hi = 65535; break;
    case AMP_I16: *lo = -32768, *hi = 32767; break;
    default: *lo = 0, *hi = 255; break; /* uint8 */
    }
}

/* An integral (or NaN, or infinite) value saturated to [lo, hi]. */
static inline int64_t sat(double v, double lo, double hi) {
    if (!(v >= lo)) return (int64_t)lo;
    return v > hi ? (int64_t)hi : (int64_t)v;
}

/* ---- QuantizeLinear, DequantizeLinear -------------------------------------------------------- */

/* Scale and zero point layout of a (De)QuantizeLinear node (see amp_quant_layout). */
static amp_status layout(amp_kernel *k, int64_t *q) {
    char msg[200];
    const amp_tensor *x = k->in[0], *s = k->in[1];
    amp_status st = amp_quant_layout(k->n, k->opset, x->rank, x->dims, s->rank, s->dims, q, msg, sizeof msg);
    return st ? amp_kernel_fail(k, st, "%s", msg) : AMP_OK;
}

/* The zero point at param index i: index 0 of a one-element zero point serves every element. */
static inline int64_t zp_at(const amp_tensor *zp, int64_t i) {
    if (!zp) return 0;
    return amp_ldi(zp->dtype, zp->data, zp->numel == 1 ? 0 : i);
}

/* round(x / s) + zp before saturation: f32 quotient for float inputs, double for int32. */
static inline double quant_one(bool dbl, double x, double s, int64_t zp) {
    double q = dbl ? rint(x / s) : (double)rintf((float)x / (float)s);
    return q + (double)zp;
}

amp_status amp_cpu_quantize_linear(amp_kernel *k) {
    const amp_tensor *x = k->in[0], *sc = k->in[1], *zp = k->nin > 2 ? k->in[2] : NULL;
    amp_tensor *y = k->out[0];
    int64_t q[7];
    amp_status st = layout(k, q);
    if (st) return st;
    double lo, hi;
    qrange(y->dtype, &lo, &hi);
    bool dbl = x->dtype == AMP_I32 || sc->dtype == AMP_I32;
    int nt = amp_cpu_threads(k);
    bool big = x->numel >= PAR_MIN && nt > 1;
    if (sc->numel == 1) {
        /* per tensor: one scale, one zero point; f32 into 8 bits is the common case */
        double s = amp_ld(sc->dtype, sc->data, 0);
        int64_t z = zp_at(zp, 0);
        if (x->dtype == AMP_F32 && !dbl && (y->dtype == AMP_U8 || y->dtype == AMP_I8)) {
            const float *xd = x->data;
            float fs = (float)s, fz = (float)z, flo = (float)lo, fhi = (float)hi;
            bool u8 = y->dtype == AMP_U8;
            AMP_PAR_FOR(big, num_threads(nt) schedule(static),
            for (int64_t i = 0; i < x->numel; i++) {
                float v = rintf(xd[i] / fs) + fz;
                v = !(v >= flo) ? flo : (v > fhi ? fhi : v);
                if (u8) ((uint8_t *)y->data)[i] = (uint8_t)v;
                else ((int8_t *)y->data)[i] = (int8_t)v;
            });
            return AMP_OK;
        }
        AMP_PAR_FOR(big, num_threads(nt) schedule(static),
        for (int64_t i = 0; i < x->numel; i++)
            amp_sti(y->dtype, y->data, i, sat(quant_one(dbl, amp_ld(x->dtype, x->data, i), s, z), lo, hi)););
        return AMP_OK;
    }
    int64_t rows = q[0] * q[1], inner = q[2];
    AMP_PAR_FOR(big && rows > 1, num_threads(nt) schedule(static),
    for (int64_t r = 0; r < rows; r++) {
        int64_t base = (r / q[1]) * q[4] + ((r % q[1]) / q[3]) * q[5];
        for (int64_t i = 0; i < inner; i++) {
            int64_t p = base + i * q[6], e = r * inner + i;
            double v = quant_one(dbl, amp_ld(x->dtype, x->data, e), amp_ld(sc->dtype, sc->data, p), zp_at(zp, p));
            amp_sti(y->dtype, y->data, e, sat(v, lo, hi));
        }
    });
    return AMP_OK;
}

amp_status amp_cpu_dequantize_linear(amp_kernel *k) {
    const amp_tensor *x = k->in[0], *sc = k->in[1], *zp = k->nin > 2 ? k->in[2] : NULL;
    amp_tensor *y = k->out[0];
    int64_t q[7];
    amp_status st = layout(k, q);
    if (st) return st;
    int nt = amp_cpu_threads(k);
    bool big = x->numel >= PAR_MIN && nt > 1;
    if (sc->numel == 1) {
        float s = (float)amp_ld(sc->dtype, sc->data, 0);
        int64_t z = zp_at(zp, 0);
        if (y->dtype == AMP_F32 && (x->dtype == AMP_U8 || x->dtype == AMP_I8)) {
            /* every (x - zp) of 8-bit operands is exact in f32: a table of the 256 results */
            float tab[256];
            bool u8 = x->dtype == AMP_U8;
            for (int v = 0; v < 256; v++) tab[v] = (float)((u8 ? v : (int8_t)(uint8_t)v) - z) * s;
            const uint8_t *xd = x->data;
            float *yd = y->data;
            AMP_PAR_FOR(big, num_threads(nt) schedule(static),
            for (int64_t i = 0; i < x->numel; i++) yd[i] = tab[xd[i]];);
            return AMP_OK;
        }
        AMP_PAR_FOR(big, num_threads(nt) schedule(static),
        for (int64_t i = 0; i < x->numel; i++)
            amp_st(y->dtype, y->data, i, (float)(amp_ldi(x->dtype, x->data, i) - z) * s););
        return AMP_OK;
    }
    int64_t rows = q[0] * q[1], inner = q[2];
    AMP_PAR_FOR(big && rows > 1, num_threads(nt) schedule(static),
    for (int64_t r = 0; r < rows; r++) {
        int64_t base = (r / q[1]) * q[4] + ((r % q[1]) / q[3]) * q[5];
        for (int64_t i = 0; i < inner; i++) {
            int64_t p = base + i * q[6], e = r * inner + i;
            float s = (float)amp_ld(sc->dtype, sc->data, p);
            amp_st(y->dtype, y->data, e, (float)(amp_ldi(x->dtype, x->data, e) - zp_at(zp, p)) * s);
        }
    });
    return AMP_OK;
}

/* ---- DynamicQuantizeLinear ------------------------------------------------------------------- */

/* uint8 with a range widened to hold 0; NaN elements are left out of the range. */
amp_status amp_cpu_dynamic_quantize_linear(amp_kernel *k) {
    const amp_tensor *x = k->in[0];
    const float *xd = x->data;
    int nt = amp_cpu_threads(k);
    bool big = x->numel >= PAR_MIN && nt > 1;
    float mx = 0.0f, mn = 0.0f;
    AMP_PAR_FOR(big, num_threads(nt) schedule(static) reduction(max : mx) reduction(min : mn),
    for (int64_t i = 0; i < x->numel; i++) {
        if (xd[i] > mx) mx = xd[i];
        if (xd[i] < mn) mn = xd[i];
    });
    float scale = (mx == mn ? 1.0f : mx - mn) / 255.0f;
    float zpf = 0.0f - mn / scale;
    zpf = rintf(!(zpf >= 0.0f) ? 0.0f : (zpf > 255.0f ? 255.0f : zpf)); /* NaN (infinite x) to 0 */
    if (k->out[0]) {
        uint8_t *yd = k->out[0]->data;
        AMP_PAR_FOR(big, num_threads(nt) schedule(static),
        for (int64_t i = 0; i < x->numel; i++) {
            float v = rintf(xd[i] / scale) + zpf;
            yd[i] = (uint8_t)(!(v >= 0.0f) ? 0.0f : (v > 255.0f ? 255.0f : v));
        });
    }
    if (k->nout > 1 && k->out[1]) *(float *)k->out[1]->data = scale;
    if (k->nout > 2 && k->out[2]) *(uint8_t *)k->out[2]->data = (uint8_t)zpf;
    return AMP_OK;
}

/* ---- MatMulInteger, QLinearMatMul ------------------------------------------------------------ */

/* Offset in a parameter (strides pst over the operand's dims) of the operand's flat element e. */
static int64_t param_off(const amp_tensor *op, const int64_t *pst, int64_t e) {
    int64_t off = 0;
    for (int d = op->rank - 1; d >= 0 && e > 0; d--) {
        off += (e % op->dims[d]) * pst[d];
        e /= op->dims[d];
    }
    return off;
}

/* op - zp as int16 into dst. A (side 0) keeps its layout; B (side 1) is written as [batch, N, K]
 * so that dot products read it in order. The zero point is constant along K on both sides. */
static void shift_operand(const amp_tensor *op, const amp_tensor *zp, int side, int16_t *dst, int nt) {
    int64_t pst[AMP_MAX_RANK];
    bool scalar = !zp || zp->numel == 1;
    int64_t z0 = zp_at(zp, 0);
    if (!scalar) amp_quant_mm_param(side, zp->rank, zp->dims, op->rank, op->dims, pst);
    int64_t K = side == 0 || op->rank == 1 ? op->dims[op->rank - 1] : op->dims[op->rank - 2];
    int64_t N = side == 0 || op->rank == 1 ? 1 : op->dims[op->rank - 1];
    /* A: rows of K; B: batch x column pairs, each a strided column of K */
    int64_t lines = K ? op->numel / K : 0;
    bool big = op->numel >= PAR_MIN && nt > 1;
    AMP_PAR_FOR(big, num_threads(nt) schedule(static),
    for (int64_t l = 0; l < lines; l++) {
        int64_t first = side == 0 ? l * K : (l / N) * K * N + l % N, step = side == 0 ? 1 : N;
        int64_t z = scalar ? z0 : amp_ldi(zp->dtype, zp->data, param_off(op, pst, first));
        int16_t *o = dst + l * K;
        for (int64_t kk = 0; kk < K; kk++) o[kk] = (int16_t)(amp_ldi(op->dtype, op->data, first + kk * step) - z);
    });
}

/* Dot product of n int16 terms, wrapping modulo 2^32 (unsigned, so the wrap is defined; the simd
 * pragma vectorises it at -O2). */
static inline uint32_t dot16(const int16_t *a, const int16_t *b, int64_t n) {
    uint32_t acc = 0;
#pragma omp simd reduction(+ : acc)
    for (int64_t i = 0; i < n; i++) acc += (uint32_t)(a[i] * b[i]);
    return acc;
}

/* Requantization of one QLinearMatMul/QLinearConv sum. */
typedef struct requant {
    double lo, hi;
    float y_scale;
    double zp;
} requant;

static void requant_init(requant *rq, const amp_tensor *ys, const amp_tensor *yzp, amp_dtype yt) {
    qrange(yt, &rq->lo, &rq->hi);
    rq->y_scale = (float)amp_ld(ys->dtype, ys->data, 0);
    rq->zp = (double)amp_ldi(yzp->dtype, yzp->data, 0);
}

/* The multiplier a_scale * b_scale / y_scale in f32, as the reference forms it. */
static inline float multiplier(const requant *rq, float sa, float sb) { return (sa * sb) / rq->y_scale; }

static inline int64_t requantize(const requant *rq, int32_t acc, float mult) {
    return sat(rint((double)acc * (double)mult) + rq->zp, rq->lo, rq->hi);
}

/* MatMulInteger and QLinearMatMul: both operands as int16 (zero points taken off, B transposed);
 * never empty, so the kernel's pointers are never offsets from NULL. */
amp_status amp_cpu_ws_matmul_integer(const amp_kernel *k, size_t *bytes) {
    const bool qlinear = k->n->op == AMP_OP_QLINEAR_MATMUL;
    const amp_tensor *A = k->in[0], *B = k->in[qlinear ? 3 : 1];
    int64_t n;
    if (__builtin_add_overflow(A->numel, B->numel + 4, &n))
        return amp_kernel_fail(k, AMP_ERR_OVERFLOW, "workspace size overflows");
    return amp_cpu_ws_elems(k, n, sizeof(int16_t), bytes);
}

static amp_status matmul_int(amp_kernel *k, bool qlinear) {
    const amp_tensor *A = k->in[0], *B = k->in[qlinear ? 3 : 1];
    const amp_tensor *azp = qlinear ? k->in[2] : (k->nin > 2 ? k->in[2] : NULL);
    const amp_tensor *bzp = qlinear ? k->in[5] : (k->nin > 3 ? k->in[3] : NULL);
    amp_tensor *Y = k->out[0];
    if (Y->numel == 0) return AMP_OK;
    int nt = amp_cpu_threads(k);
    int16_t *a16 = k->ws, *b16 = a16 + A->numel;
    shift_operand(A, azp, 0, a16, nt);
    shift_operand(B, bzp, 1, b16, nt);
    amp_mm_shape sh;
    amp_mm_shape_init(A, B, Y, &sh);
    int64_t M = sh.M, N = sh.N, K = sh.K, rows = sh.nb * M;
    requant rq;
    const amp_tensor *as = NULL, *bs = NULL;
    int64_t pa[AMP_MAX_RANK], pb[AMP_MAX_RANK], am = 0, bn = 0;
    if (qlinear) {
        as = k->in[1];
        bs = k->in[4];
        requant_init(&rq, k->in[6], k->in[7], Y->dtype);
        amp_quant_mm_param(0, as->rank, as->dims, A->rank, A->dims, pa);
        amp_quant_mm_param(1, bs->rank, bs->dims, B->rank, B->dims, pb);
        am = A->rank > 1 ? pa[A->rank - 2] : 0; /* along M */
        bn = B->rank > 1 ? pb[B->rank - 1] : 0; /* along N */
    }
    bool big = rows * N * (K + 1) >= PAR_MIN && nt > 1;
    AMP_PAR_FOR(big, num_threads(nt) schedule(static),
    for (int64_t r = 0; r < rows; r++) {
        int64_t b = r / M, i = r % M, oa, ob;
        amp_mm_offsets(&sh, b, &oa, &ob);
        const int16_t *ar = a16 + oa + i * K;
        if (!qlinear) {
            int32_t *yr = (int32_t *)Y->data + r * N;
            for (int64_t j = 0; j < N; j++) yr[j] = (int32_t)dot16(ar, b16 + ob + j * K, K);
            continue;
        }
        float sa = (float)amp_ld(as->dtype, as->data, param_off(A, pa, oa) + i * am);
        int64_t bbase = param_off(B, pb, ob);
        for (int64_t j = 0; j < N; j++) {
            float sb = (float)amp_ld(bs->dtype, bs->data, bbase + j * bn);
            int32_t acc = (int32_t)dot16(ar, b16 + ob + j * K, K);
            amp_sti(Y->dtype, Y->data, r * N + j, requantize(&rq, acc, multiplier(&rq, sa, sb)));
        }
    });
    return AMP_OK;
}

amp_status amp_cpu_matmul_integer(amp_kernel *k) { return matmul_int(k, false); }
amp_status amp_cpu_qlinear_matmul(amp_kernel *k) { return matmul_int(k, true); }

/* ---- ConvInteger, QLinearConv ---------------------------------------------------------------- */

typedef struct iconv {
    amp_conv_geom g;
    int64_t C, M, Cg, Mg, insz, outsz, ksz;
    int64_t istr[AMP_MAX_RANK]; /* strides of the spatial input dims */
    const int16_t *x, *w;       /* [N, insz, C] and [M, ksz, Cg], zero points taken off */
    const int64_t *toff, *tk;   /* per tap: flat input offset; offsets along each spatial dim */
} iconv;

/* Wrapping sum of filter m over the window at output coordinates o of image n. */
static int32_t iconv_point(const iconv *cv, int64_t n, int64_t m, const int64_t *o) {
    const amp_conv_geom *g = &cv->g;
    int nsp = g->nsp;
    int64_t start[AMP_MAX_RANK], base = 0;
    bool inside = true;
    for (int d = 0; d < nsp; d++) {
        start[d] = o[d] * g->s[d] - g->pb[d];
        base += start[d] * cv->istr[d];
        if (start[d] < 0 || start[d] + (g->k[d] - 1) * g->d[d] >= g->in[d]) inside = false;
    }
    const int16_t *xg = cv->x + n * cv->insz * cv->C + (m / cv->Mg) * cv->Cg, *wm = cv->w + m * cv->ksz * cv->Cg;
    uint32_t acc = 0;
    for (int64_t t = 0; t < cv->ksz; t++) {
        if (!inside) {
            const int64_t *tk = cv->tk + t * nsp;
            bool in = true;
            for (int d = 0; d < nsp && in; d++) {
                int64_t p = start[d] + tk[d];
                in = p >= 0 && p < g->in[d];
            }
            if (!in) continue; /* padding: x - x_zero_point is 0 there */
        }
        acc += dot16(xg + (base + cv->toff[t]) * cv->C, wm + t * cv->Cg, cv->Cg);
    }
    return (int32_t)acc;
}

/* ConvInteger and QLinearConv: x and w as int16 with their zero points taken off, then (8-byte
 * aligned) the flat input offset and per-dim offsets of every kernel tap. With channels and a
 * non-empty output the taps number at most w's elements; without channels every sum is empty
 * and no tap is read. */
amp_status amp_cpu_ws_conv_integer(const amp_kernel *k, size_t *bytes) {
    const bool qlinear = k->n->op == AMP_OP_QLINEAR_CONV;
    const amp_tensor *x = k->in[0], *w = k->in[qlinear ? 3 : 1];
    *bytes = 0;
    if (k->out[0]->numel == 0) return AMP_OK; /* nothing to compute; the kernel reads nothing */
    char msg[256];
    amp_conv_geom g;
    amp_status s = amp_conv_geom_init(k->n, AMP_GEOM_CONV, x->rank, x->dims, w->dims, &g, msg, sizeof msg);
    if (s) return amp_kernel_fail(k, s, "%s", msg);
    int64_t ksz = 0, n = x->numel + w->numel, b, tb;
    if (x->dims[1] > 0) {
        ksz = 1;
        for (int d = 0; d < g.nsp; d++) ksz *= g.k[d];
    }
    if (__builtin_mul_overflow(n, 2, &b) || __builtin_mul_overflow(ksz, (int64_t)(g.nsp + 1) * 8, &tb) ||
        __builtin_add_overflow(b, tb + 8, &b))
        return amp_kernel_fail(k, AMP_ERR_OVERFLOW, "workspace size overflows");
    return amp_cpu_ws_elems(k, b, 1, bytes);
}

static amp_status conv_int(amp_kernel *k, bool qlinear) {
    const amp_tensor *x = k->in[0], *w = k->in[qlinear ? 3 : 1];
    const amp_tensor *xzp = qlinear ? k->in[2] : (k->nin > 2 ? k->in[2] : NULL);
    const amp_tensor *wzp = qlinear ? k->in[5] : (k->nin > 3 ? k->in[3] : NULL);
    const amp_tensor *bias = qlinear && k->nin > 8 ? k->in[8] : NULL;
    amp_tensor *y = k->out[0];
    if (y->numel == 0) return AMP_OK;
    iconv cv;
    char msg[256];
    amp_status st = amp_conv_geom_init(k->n, AMP_GEOM_CONV, x->rank, x->dims, w->dims, &cv.g, msg, sizeof msg);
    if (st) return amp_kernel_fail(k, st, "%s", msg);
    int nsp = cv.g.nsp;
    int64_t N = x->dims[0], group = amp_attr_int(k->n, "group", 1);
    cv.C = x->dims[1];
    cv.M = w->dims[0];
    cv.Cg = w->dims[1];
    cv.Mg = cv.M / group;
    cv.insz = 1;
    cv.outsz = 1;
    for (int d = nsp - 1; d >= 0; d--) {
        cv.istr[d] = cv.insz;
        cv.insz *= cv.g.in[d];
        cv.outsz *= cv.g.out[d];
    }
    cv.ksz = 1;
    if (cv.C > 0)
        for (int d = 0; d < nsp; d++) cv.ksz *= cv.g.k[d];
    else
        cv.ksz = 0;
    int nt = amp_cpu_threads(k);

    /* workspace: x [N, insz, C] and w [M, ksz, Cg] as int16, then the tap table (8-byte aligned) */
    int16_t *x16 = k->ws, *w16 = x16 + x->numel;
    uintptr_t tp = (uintptr_t)(w16 + w->numel);
    int64_t *toff = (int64_t *)((tp + 7) & ~(uintptr_t)7), *tk = toff + cv.ksz;
    int64_t z = zp_at(xzp, 0), NC = N * cv.C, per_m = cv.Cg * cv.ksz;
    bool big = x->numel >= PAR_MIN && nt > 1;
    AMP_PAR_FOR(big, num_threads(nt) schedule(static),
    for (int64_t nc = 0; nc < NC; nc++) {
        int64_t n = nc / cv.C, c = nc % cv.C;
        int16_t *dst = x16 + n * cv.insz * cv.C + c;
        for (int64_t i = 0; i < cv.insz; i++)
            dst[i * cv.C] = (int16_t)(amp_ldi(x->dtype, x->data, nc * cv.insz + i) - z);
    });
    for (int64_t i = 0; i < w->numel; i++) {
        int64_t m = i / per_m, c = (i % per_m) / cv.ksz, t = i % cv.ksz;
        w16[(m * cv.ksz + t) * cv.Cg + c] = (int16_t)(amp_ldi(w->dtype, w->data, i) - zp_at(wzp, m));
    }
    for (int64_t t = 0; t < cv.ksz; t++) {
        int64_t rem = t, off = 0;
        for (int d = nsp - 1; d >= 0; d--) {
            int64_t kd = (rem % cv.g.k[d]) * cv.g.d[d];
            rem /= cv.g.k[d];
            tk[t * nsp + d] = kd;
            off += kd * cv.istr[d];
        }
        toff[t] = off;
    }
    cv.x = x16;
    cv.w = w16;
    cv.toff = toff;
    cv.tk = tk;

    requant rq;
    const amp_tensor *xs = NULL, *ws = NULL;
    if (qlinear) {
        xs = k->in[1];
        ws = k->in[4];
        requant_init(&rq, k->in[6], k->in[7], y->dtype);
    }
    int64_t items = N * cv.M;
    big = items > 1 && y->numel * (per_m + 1) >= PAR_MIN && nt > 1;
    AMP_PAR_FOR(big, num_threads(nt) schedule(dynamic),
    for (int64_t it = 0; it < items; it++) {
        int64_t n = it / cv.M, m = it % cv.M;
        int64_t o[AMP_MAX_RANK] = {0};
        float mult = 0.0f;
        uint32_t b = bias ? (uint32_t)amp_ldi(bias->dtype, bias->data, m) : 0;
        if (qlinear)
            mult = multiplier(&rq, (float)amp_ld(xs->dtype, xs->data, 0),
                              (float)amp_ld(ws->dtype, ws->data, ws->numel == 1 ? 0 : m));
        int64_t ybase = it * cv.outsz;
        for (int64_t p = 0; p < cv.outsz; p++) {
            int32_t acc = (int32_t)((uint32_t)iconv_point(&cv, n, m, o) + b);
            if (qlinear) amp_sti(y->dtype, y->data, ybase + p, requantize(&rq, acc, mult));
            else ((int32_t *)y->data)[ybase + p] = acc;
            for (int d = nsp - 1; d >= 0; d--) { /* next output coordinates */
                if (++o[d] < cv.g.out[d]) break;
                o[d] = 0;
            }
        }
    });
    return AMP_OK;
}

amp_status amp_cpu_conv_integer(amp_kernel *k) { return conv_int(k, false); }
amp_status amp_cpu_qlinear_conv(amp_kernel *k) { return conv_int(k, true); }

/* CPU kernels: Gather, GatherElements, ScatterElements, OneHot, Trilu, Range, Pad,
 * DepthToSpace/SpaceToDepth, EyeLike. Data movement copies raw elements, so every dtype is
 * handled alike; indices are checked before anything is read through them. */
#include <math.h>
#include <stdbool.h>
#include <string.h>

#include "backends/cpu/cpu.h"
#include "backends/cpu/par.h"

#define PAR_MIN_WORK (1 << 15)

static inline void copy_elem(void *dst, int64_t di, const void *src, int64_t si, size_t es) {
    switch (es) {
    case 1: ((uint8_t *)dst)[di] = ((const uint8_t *)src)[si]; break;
    case 2: ((uint16_t *)dst)[di] = ((const uint16_t *)src)[si]; break;
    case 4: ((uint32_t *)dst)[di] = ((const uint32_t *)src)[si]; break;
    default: ((uint64_t *)dst)[di] = ((const uint64_t *)src)[si]; break;
    }
}

static inline void set_elem(void *dst, int64_t di, const uint8_t *val, size_t es) {
    memcpy((uint8_t *)dst + (size_t)di * es, val, es);
}

static int64_t norm_axis(int64_t axis, int rank) { return axis < 0 ? axis + rank : axis; }


/* Check every index of ind against [-len, len); the message names the first bad one. */
amp_status amp_cpu_check_indices(amp_kernel *k, const amp_tensor *ind, int64_t len) {
    for (int64_t i = 0; i < ind->numel; i++) {
        int64_t v = amp_ldi(ind->dtype, ind->data, i);
        if (v < -len || v >= len)
            return amp_kernel_fail(k, AMP_ERR_INVALID_ARG, "index %lld at position %lld is out of range [%lld, %lld)",
                                   (long long)v, (long long)i, (long long)-len, (long long)len);
    }
    return AMP_OK;
}

amp_status amp_cpu_gather(amp_kernel *k) {
    const amp_tensor *x = k->in[0], *ind = k->in[1];
    amp_tensor *y = k->out[0];
    int64_t axis = amp_attr_int(k->n, "axis", 0);
    if (axis < -x->rank || axis >= x->rank)
        return amp_kernel_fail(k, AMP_ERR_INVALID_ARG, "axis %lld out of range for rank %d", (long long)axis, x->rank);
    axis = norm_axis(axis, x->rank);
    int64_t outer = 1, len = x->dims[axis], inner = 1, nidx = ind->numel;
    for (int d = 0; d < axis; d++) outer *= x->dims[d];
    for (int d = (int)axis + 1; d < x->rank; d++) inner *= x->dims[d];
    if (outer * nidx * inner != y->numel) return amp_kernel_fail(k, AMP_ERR_SHAPE, "output size does not match");
    amp_status s = amp_cpu_check_indices(k, ind, len);
    if (s) return s;
    size_t es = amp_dtype_size(x->dtype), chunk = (size_t)inner * es;
    const uint8_t *xd = x->data;
    uint8_t *yd = y->data;
    AMP_PAR_FOR(y->numel >= PAR_MIN_WORK && outer * nidx > 1, num_threads(k->threads),
    for (int64_t oj = 0; oj < outer * nidx; oj++) {
        int64_t o = oj / nidx, v = amp_ldi(ind->dtype, ind->data, oj % nidx);
        if (v < 0) v += len;
        memcpy(yd + (size_t)oj * chunk, xd + (size_t)(o * len + v) * chunk, chunk);
    });
    return AMP_OK;
}

/* Offset in data of the element that indices position p addresses (idx replaces the axis
 * coordinate). */
static int64_t elem_offset(const amp_tensor *ind, const int64_t *xst, int axis, int64_t p, int64_t idx) {
    int64_t off = 0;
    for (int d = ind->rank - 1; d >= 0; d--) {
        int64_t cd = p % ind->dims[d];
        p /= ind->dims[d];
        off += (d == axis ? idx : cd) * xst[d];
    }
    return off;
}

/* Common checks of GatherElements and ScatterElements: axis, ranks, dims, index values. */
static amp_status elem_setup(amp_kernel *k, const amp_tensor *x, const amp_tensor *ind, int *axis) {
    int64_t a = amp_attr_int(k->n, "axis", 0);
    if (a < -x->rank || a >= x->rank)
        return amp_kernel_fail(k, AMP_ERR_INVALID_ARG, "axis %lld out of range for rank %d", (long long)a, x->rank);
    *axis = (int)norm_axis(a, x->rank);
    if (ind->rank != x->rank) return amp_kernel_fail(k, AMP_ERR_SHAPE, "indices rank differs from data rank");
    for (int d = 0; d < x->rank; d++)
        if (d != *axis && ind->dims[d] > x->dims[d])
            return amp_kernel_fail(k, AMP_ERR_SHAPE, "indices dim %d exceeds data dim", d);
    return amp_cpu_check_indices(k, ind, x->dims[*axis]);
}

amp_status amp_cpu_gather_elements(amp_kernel *k) {
    const amp_tensor *x = k->in[0], *ind = k->in[1];
    amp_tensor *y = k->out[0];
    int axis;
    amp_status s = elem_setup(k, x, ind, &axis);
    if (s) return s;
    if (y->numel != ind->numel) return amp_kernel_fail(k, AMP_ERR_SHAPE, "output size does not match");
    int64_t xst[AMP_MAX_RANK];
    amp_strides(x->rank, x->dims, xst);
    size_t es = amp_dtype_size(x->dtype);
    int64_t len = x->dims[axis];
    AMP_PAR_FOR(ind->numel >= PAR_MIN_WORK, num_threads(k->threads),
    for (int64_t p = 0; p < ind->numel; p++) {
        int64_t v = amp_ldi(ind->dtype, ind->data, p);
        if (v < 0) v += len;
        copy_elem(y->data, p, x->data, elem_offset(ind, xst, axis, p, v), es);
    });
    return AMP_OK;
}

enum { RED_NONE, RED_ADD, RED_MUL, RED_MAX, RED_MIN };

amp_status amp_cpu_scatter_elements(amp_kernel *k) {
    const amp_tensor *x = k->in[0], *ind = k->in[1], *upd = k->in[2];
    amp_tensor *y = k->out[0];
    int axis;
    amp_status s = elem_setup(k, x, ind, &axis);
    if (s) return s;
    if (upd->numel != ind->numel || upd->dtype != x->dtype || y->numel != x->numel)
        return amp_kernel_fail(k, AMP_ERR_SHAPE, "updates or output do not match");
    const char *rs = amp_attr_str(k->n, "reduction", "none");
    int red = !strcmp(rs, "add") ? RED_ADD
              : !strcmp(rs, "mul") ? RED_MUL
              : !strcmp(rs, "max") ? RED_MAX
              : !strcmp(rs, "min") ? RED_MIN
              : !strcmp(rs, "none") ? RED_NONE
                                    : -1;
    if (red < 0) return amp_kernel_fail(k, AMP_ERR_INVALID_ARG, "unknown reduction '%s'", rs);
    if (y->data != x->data && x->nbytes) memcpy(y->data, x->data, x->nbytes);
    int64_t xst[AMP_MAX_RANK];
    amp_strides(x->rank, x->dims, xst);
    amp_dtype dt = x->dtype;
    size_t es = amp_dtype_size(dt);
    int64_t len = x->dims[axis];
    bool isf = amp_dtype_is_float(dt);
    /* in index order and on one thread: repeated indices then resolve as the spec orders them */
    for (int64_t p = 0; p < ind->numel; p++) {
        int64_t v = amp_ldi(ind->dtype, ind->data, p);
        if (v < 0) v += len;
        int64_t o = elem_offset(ind, xst, axis, p, v);
        if (red == RED_NONE) {
            copy_elem(y->data, o, upd->data, p, es);
        } else if (isf) {
            double a = amp_ld(dt, y->data, o), b = amp_ld(dt, upd->data, p), r;
            switch (red) {
            case RED_ADD: r = a + b; break;
            case RED_MUL: r = a * b; break;
            case RED_MAX: r = isnan(a) || isnan(b) ? NAN : (a > b ? a : b); break;
            default: r = isnan(a) || isnan(b) ? NAN : (a < b ? a : b); break;
            }
            amp_st(dt, y->data, o, r);
        } else {
            int64_t a = amp_ldi(dt, y->data, o), b = amp_ldi(dt, upd->data, p), r;
            switch (red) {
            case RED_ADD: r = (int64_t)((uint64_t)a + (uint64_t)b); break;
            case RED_MUL: r = (int64_t)((uint64_t)a * (uint64_t)b); break;
            case RED_MAX: r = a > b ? a : b; break;
            default: r = a < b ? a : b; break;
            }
            amp_sti(dt, y->data, o, r);
        }
    }
    return AMP_OK;
}

amp_status amp_cpu_one_hot(amp_kernel *k) {
    const amp_tensor *ind = k->in[0], *vals = k->in[2];
    amp_tensor *y = k->out[0];
    int64_t axis = amp_attr_int(k->n, "axis", -1);
    if (axis < -y->rank || axis >= y->rank)
        return amp_kernel_fail(k, AMP_ERR_INVALID_ARG, "axis %lld out of range", (long long)axis);
    axis = norm_axis(axis, y->rank);
    int64_t depth = y->dims[axis], outer = 1, inner = 1;
    for (int d = 0; d < axis; d++) outer *= ind->dims[d];
    for (int d = (int)axis; d < ind->rank; d++) inner *= ind->dims[d];
    if (vals->numel != 2 || vals->dtype != y->dtype || outer * inner != ind->numel || outer * depth * inner != y->numel)
        return amp_kernel_fail(k, AMP_ERR_SHAPE, "values or output do not match");
    size_t es = amp_dtype_size(y->dtype);
    bool isf = amp_dtype_is_float(ind->dtype);
    uint8_t off[8], on[8];
    memcpy(off, vals->data, es);
    memcpy(on, (const uint8_t *)vals->data + es, es);
    AMP_PAR_FOR(y->numel >= PAR_MIN_WORK && ind->numel > 1, num_threads(k->threads),
    for (int64_t p = 0; p < ind->numel; p++) {
        int64_t o = p / inner, i = p % inner, v;
        if (isf) {
            double dv = amp_ld(ind->dtype, ind->data, p);
            /* not a valid position: the whole column is off */
            v = isfinite(dv) && fabs(dv) < 9.0e18 ? (int64_t)dv : depth;
        } else {
            v = amp_ldi(ind->dtype, ind->data, p);
        }
        if (v < 0 && v >= -depth) v += depth;
        for (int64_t d = 0; d < depth; d++) set_elem(y->data, (o * depth + d) * inner + i, d == v ? on : off, es);
    });
    return AMP_OK;
}

amp_status amp_cpu_trilu(amp_kernel *k) {
    const amp_tensor *x = k->in[0], *kt = k->nin > 1 ? k->in[1] : NULL;
    amp_tensor *y = k->out[0];
    int64_t kk = 0;
    if (kt) {
        if (kt->numel != 1 || (kt->dtype != AMP_I64 && kt->dtype != AMP_I32))
            return amp_kernel_fail(k, AMP_ERR_INVALID_ARG, "k must be one int64 value");
        kk = amp_ldi(kt->dtype, kt->data, 0);
    }
    bool upper = amp_attr_int(k->n, "upper", 1) != 0;
    if (x->rank < 2 || y->numel != x->numel) return amp_kernel_fail(k, AMP_ERR_SHAPE, "input must have rank >= 2");
    int64_t M = x->dims[x->rank - 2], N = x->dims[x->rank - 1];
    if (x->numel == 0) return AMP_OK;
    /* beyond these bounds k changes nothing, and i + k below cannot overflow */
    if (kk > N + 1) kk = N + 1;
    if (kk < -M - 1) kk = -M - 1;
    size_t es = amp_dtype_size(x->dtype);
    int64_t rows = x->numel / N;
    const uint8_t *xd = x->data;
    uint8_t *yd = y->data;
    AMP_PAR_FOR(x->numel >= PAR_MIN_WORK && rows > 1, num_threads(k->threads),
    for (int64_t r = 0; r < rows; r++) {
        int64_t i = r % M;
        /* kept columns [lo, hi): upper keeps j >= i + k, lower keeps j <= i + k */
        int64_t lo = upper ? i + kk : 0, hi = upper ? N : i + kk + 1;
        if (lo < 0) lo = 0;
        if (hi > N) hi = N;
        if (hi < lo) hi = lo;
        if (lo > N) lo = hi = N;
        uint8_t *row = yd + (size_t)(r * N) * es;
        const uint8_t *src = xd + (size_t)(r * N) * es;
        memset(row, 0, (size_t)lo * es);
        memmove(row + (size_t)lo * es, src + (size_t)lo * es, (size_t)(hi - lo) * es);
        memset(row + (size_t)hi * es, 0, (size_t)(N - hi) * es);
    });
    return AMP_OK;
}

amp_status amp_cpu_range(amp_kernel *k) {
    const amp_tensor *st = k->in[0], *dl = k->in[2];
    amp_tensor *y = k->out[0];
    if (st->numel != 1 || dl->numel != 1 || k->in[1]->numel != 1)
        return amp_kernel_fail(k, AMP_ERR_INVALID_ARG, "start, limit and delta must be scalars");
    amp_dtype dt = y->dtype;
    int64_t n = y->numel;
    if (amp_dtype_is_float(dt)) {
        double a = amp_ld(dt, st->data, 0), d = amp_ld(dt, dl->data, 0);
        for (int64_t i = 0; i < n; i++) amp_st(dt, y->data, i, a + (double)i * d);
    } else {
        uint64_t a = (uint64_t)amp_ldi(dt, st->data, 0), d = (uint64_t)amp_ldi(dt, dl->data, 0);
        for (int64_t i = 0; i < n; i++) amp_sti(dt, y->data, i, (int64_t)(a + (uint64_t)i * d));
    }
    return AMP_OK;
}

enum { PAD_CONSTANT, PAD_REFLECT, PAD_EDGE, PAD_WRAP };

/* Input coordinate that output coordinate i (already shifted by the begin pad) reads, or -1
 * for the constant. */
static inline int64_t pad_map(int64_t i, int64_t n, int mode) {
    if (i >= 0 && i < n) return i;
    if (mode == PAD_CONSTANT || n == 0) return -1;
    if (mode == PAD_EDGE) return i < 0 ? 0 : n - 1;
    if (mode == PAD_WRAP) return ((i % n) + n) % n;
    if (n == 1) return 0;
    int64_t p = 2 * (n - 1), m = ((i % p) + p) % p;
    return m < n ? m : p - m;
}

amp_status amp_cpu_pad(amp_kernel *k) {
    const amp_tensor *x = k->in[0];
    amp_tensor *y = k->out[0];
    int r = x->rank;
    amp_dtype dt = x->dtype;
    size_t es = amp_dtype_size(dt);
    const char *ms = amp_attr_str(k->n, "mode", "constant");
    int mode = !strcmp(ms, "constant") ? PAD_CONSTANT
               : !strcmp(ms, "reflect") ? PAD_REFLECT
               : !strcmp(ms, "edge")    ? PAD_EDGE
               : !strcmp(ms, "wrap")    ? PAD_WRAP
                                        : -1;
    if (mode < 0) return amp_kernel_fail(k, AMP_ERR_INVALID_ARG, "unknown mode '%s'", ms);

    int64_t pads[4 * AMP_MAX_RANK];
    int np = 0, na = r;
    int axes[AMP_MAX_RANK];
    for (int d = 0; d < r; d++) axes[d] = d;
    uint8_t cval[8] = {0};
    if (k->opset < 11) {
        const int64_t *p = NULL;
        np = amp_attr_ints(k->n, "pads", &p);
        if (np < 0 || np > 4 * AMP_MAX_RANK) return amp_kernel_fail(k, AMP_ERR_INVALID_ARG, "bad pads attribute");
        memcpy(pads, p, sizeof(int64_t) * (size_t)np);
        amp_st(dt, cval, 0, amp_attr_float(k->n, "value", 0.0f));
    } else {
        const amp_tensor *pt = k->in[1];
        if (pt->numel > 4 * AMP_MAX_RANK || (pt->dtype != AMP_I64 && pt->dtype != AMP_I32))
            return amp_kernel_fail(k, AMP_ERR_INVALID_ARG, "pads must be at most %d int64 values", 4 * AMP_MAX_RANK);
        np = (int)pt->numel;
        for (int i = 0; i < np; i++) pads[i] = amp_ldi(pt->dtype, pt->data, i);
        const amp_tensor *cv = k->nin > 2 ? k->in[2] : NULL;
        if (cv && cv->numel >= 1 && cv->dtype == dt) memcpy(cval, cv->data, es);
        const amp_tensor *at = k->nin > 3 ? k->in[3] : NULL;
        if (at) {
            if (at->numel > r || (at->dtype != AMP_I64 && at->dtype != AMP_I32))
                return amp_kernel_fail(k, AMP_ERR_INVALID_ARG, "bad axes input");
            na = (int)at->numel;
            bool seen[AMP_MAX_RANK] = {false};
            for (int i = 0; i < na; i++) {
                int64_t a = amp_ldi(at->dtype, at->data, i);
                if (a < -r || a >= r || seen[norm_axis(a, r)])
                    return amp_kernel_fail(k, AMP_ERR_INVALID_ARG, "axis %lld is out of range or repeated", (long long)a);
                axes[i] = (int)norm_axis(a, r);
                seen[axes[i]] = true;
            }
        }
    }
    if (np != 2 * na) return amp_kernel_fail(k, AMP_ERR_INVALID_ARG, "pads has %d values, expected %d", np, 2 * na);
    int64_t pb[AMP_MAX_RANK] = {0}, pe[AMP_MAX_RANK] = {0};
    for (int i = 0; i < na; i++) {
        pb[axes[i]] = pads[i];
        pe[axes[i]] = pads[i + na];
    }
    if (y->rank != r) return amp_kernel_fail(k, AMP_ERR_SHAPE, "output rank does not match");
    for (int d = 0; d < r; d++) {
        int64_t want;
        if (__builtin_add_overflow(x->dims[d], pb[d], &want) || __builtin_add_overflow(want, pe[d], &want) ||
            y->dims[d] != want)
            return amp_kernel_fail(k, AMP_ERR_SHAPE, "output dim %d does not match the pads", d);
        if (mode != PAD_CONSTANT && x->dims[d] == 0 && y->dims[d] > 0)
            return amp_kernel_fail(k, AMP_ERR_INVALID_ARG, "cannot pad empty dim %d in %s mode", d, ms);
    }
    if (y->numel == 0) return AMP_OK;
    if (r == 0) {
        memcpy(y->data, x->data, es);
        return AMP_OK;
    }
    int L = r - 1;
    int64_t xst[AMP_MAX_RANK];
    amp_strides(r, x->dims, xst);
    int64_t olen = y->dims[L], nlen = x->dims[L], rows = y->numel / olen;
    /* the span of an output row that reads the input row in order */
    int64_t jlo = pb[L] > 0 ? pb[L] : 0, jhi = pb[L] + nlen < olen ? pb[L] + nlen : olen;
    if (jhi < jlo) jhi = jlo;
    const uint8_t *xd = x->data;
    uint8_t *yd = y->data;
    AMP_PAR_FOR(y->numel >= PAR_MIN_WORK && rows > 1, num_threads(k->threads),
    for (int64_t ro = 0; ro < rows; ro++) {
        int64_t rem = ro, xoff = 0;
        bool outside = false;
        for (int d = L - 1; d >= 0; d--) {
            int64_t c = rem % y->dims[d];
            rem /= y->dims[d];
            int64_t ic = pad_map(c - pb[d], x->dims[d], mode);
            if (ic < 0) outside = true;
            else xoff += ic * xst[d];
        }
        int64_t yoff = ro * olen;
        if (outside) {
            for (int64_t j = 0; j < olen; j++) set_elem(yd, yoff + j, cval, es);
            continue;
        }
        for (int64_t j = 0; j < jlo; j++) {
            int64_t ic = pad_map(j - pb[L], nlen, mode);
            if (ic < 0) set_elem(yd, yoff + j, cval, es);
            else copy_elem(yd, yoff + j, xd, xoff + ic, es);
        }
        if (jhi > jlo)
            memcpy(yd + (size_t)(yoff + jlo) * es, xd + (size_t)(xoff + jlo - pb[L]) * es, (size_t)(jhi - jlo) * es);
        for (int64_t j = jhi; j < olen; j++) {
            int64_t ic = pad_map(j - pb[L], nlen, mode);
            if (ic < 0) set_elem(yd, yoff + j, cval, es);
            else copy_elem(yd, yoff + j, xd, xoff + ic, es);
        }
    });
    return AMP_OK;
}

amp_status amp_cpu_depth_to_space(amp_kernel *k) {
    const amp_tensor *x = k->in[0];
    amp_tensor *y = k->out[0];
    int64_t b = amp_attr_int(k->n, "blocksize", 0);
    if (x->rank != 4 || y->rank != 4 || b < 1 || y->numel != x->numel)
        return amp_kernel_fail(k, AMP_ERR_SHAPE, "shapes or blocksize do not match");
    bool d2s = k->n->op == AMP_OP_DEPTH_TO_SPACE;
    bool crd = d2s && !strcmp(amp_attr_str(k->n, "mode", "DCR"), "CRD");
    int64_t C = x->dims[1], H = x->dims[2], W = x->dims[3];
    int64_t OC = y->dims[1], OH = y->dims[2], OW = y->dims[3];
    size_t es = amp_dtype_size(x->dtype);
    int64_t planes = y->dims[0] * OC;
    AMP_PAR_FOR(y->numel >= PAR_MIN_WORK && planes > 1, num_threads(k->threads),
    for (int64_t pl = 0; pl < planes; pl++) {
        int64_t n = pl / OC, oc = pl % OC;
        for (int64_t oh = 0; oh < OH; oh++) {
            for (int64_t ow = 0; ow < OW; ow++) {
                int64_t src;
                if (d2s) {
                    int64_t i = oh % b, j = ow % b;
                    int64_t ic = crd ? (oc * b + i) * b + j : (i * b + j) * OC + oc;
                    src = ((n * C + ic) * H + oh / b) * W + ow / b;
                } else {
                    /* output channel = (i * b + j) * C + c */
                    int64_t c = oc % C, j = (oc / C) % b, i = oc / (C * b);
                    src = ((n * C + c) * H + oh * b + i) * W + ow * b + j;
                }
                copy_elem(y->data, (pl * OH + oh) * OW + ow, x->data, src, es);
            }
        }
    });
    return AMP_OK;
}

amp_status amp_cpu_eye_like(amp_kernel *k) {
    amp_tensor *y = k->out[0];
    if (y->rank != 2) return amp_kernel_fail(k, AMP_ERR_SHAPE, "output must have rank 2");
    int64_t rows = y->dims[0], cols = y->dims[1], kk = amp_attr_int(k->n, "k", 0);
    if (y->nbytes) memset(y->data, 0, y->nbytes);
    if (kk >= cols || kk <= -rows) return AMP_OK;
    for (int64_t i = kk < 0 ? -kk : 0; i < rows && i + kk < cols; i++) amp_sti(y->dtype, y->data, i * cols + i + kk, 1);
    return AMP_OK;
}

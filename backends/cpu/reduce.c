/* CPU kernels: reductions, ArgMax/ArgMin, CumSum. Floats accumulate in double; integers
 * accumulate exactly in 64 bits (wrapping like the fixed-width types do). */
#include <float.h>
#include <math.h>
#include <stdbool.h>

#include "backends/cpu/cpu.h"
#include "backends/cpu/par.h"

/* Work (elements touched) below which threads cost more than they save. */
#define PAR_MIN_WORK (1 << 15)

/* A set of dimensions walked together: lengths and strides (elements) into the input. */
typedef struct loopdims {
    int n;
    int64_t len[AMP_MAX_RANK];
    int64_t st[AMP_MAX_RANK];
} loopdims;

/* Append a dimension, merging it into the previous one when the two are contiguous so that
 * inner loops run as long as possible. */
static void loop_push(loopdims *L, int64_t len, int64_t st) {
    if (len == 1) return;
    if (L->n > 0 && L->st[L->n - 1] == st * len) {
        L->len[L->n - 1] *= len;
        L->st[L->n - 1] = st;
        return;
    }
    L->len[L->n] = len;
    L->st[L->n] = st;
    L->n++;
}

/* Offset in the input of the o-th element (row-major) of the set L. */
static int64_t loop_offset(const loopdims *L, int64_t o) {
    int64_t off = 0;
    for (int d = L->n - 1; d >= 0; d--) {
        off += (o % L->len[d]) * L->st[d];
        o /= L->len[d];
    }
    return off;
}

/* Advance an odometer over L; off follows the input offset. */
static inline void loop_next(const loopdims *L, int64_t *idx, int64_t *off) {
    for (int d = L->n - 1; d >= 0; d--) {
        *off += L->st[d];
        if (++idx[d] < L->len[d]) return;
        *off -= L->st[d] * L->len[d];
        idx[d] = 0;
    }
}

/* Saturating double -> integer of dtype t (NaN gives 0), so that log(0) and friends stay
 * defined when an integer tensor is reduced with a float formula. */
static int64_t d2i(amp_dtype t, double v) {
    double lo, hi;
    switch (t) {
    case AMP_I32: lo = -2147483648.0, hi = 2147483647.0; break;
    case AMP_I8: lo = -128.0, hi = 127.0; break;
    case AMP_U8: lo = 0.0, hi = 255.0; break;
    case AMP_I16: lo = -32768.0, hi = 32767.0; break;
    case AMP_U16: lo = 0.0, hi = 65535.0; break;
    case AMP_U32: lo = 0.0, hi = 4294967295.0; break;
    default: lo = -9223372036854775808.0, hi = 9223372036854774784.0; break;
    }
    if (isnan(v)) return 0;
    if (v <= lo) return t == AMP_I64 ? INT64_MIN : (int64_t)lo;
    if (v >= hi) return t == AMP_I64 ? INT64_MAX : (int64_t)hi;
    return (int64_t)v;
}

static int64_t int_min_of(amp_dtype t) {
    switch (t) {
    case AMP_I32: return INT32_MIN;
    case AMP_I8: return INT8_MIN;
    case AMP_U8: case AMP_U16: case AMP_U32: case AMP_BOOL: return 0;
    case AMP_I16: return INT16_MIN;
    default: return INT64_MIN;
    }
}
static int64_t int_max_of(amp_dtype t) {
    switch (t) {
    case AMP_I32: return INT32_MAX;
    case AMP_I8: return INT8_MAX;
    case AMP_U8: return UINT8_MAX;
    case AMP_BOOL: return 1;
    case AMP_I16: return INT16_MAX;
    case AMP_U16: return UINT16_MAX;
    case AMP_U32: return UINT32_MAX;
    default: return INT64_MAX;
    }
}

static double reduce_float(amp_op op, amp_dtype dt, const void *x, int64_t base, const loopdims *R, int64_t count) {
    int64_t idx[AMP_MAX_RANK] = {0};
    int64_t off = base;
    double acc;
    switch (op) {
    case AMP_OP_REDUCE_PROD: acc = 1.0; break;
    case AMP_OP_REDUCE_MAX: acc = -INFINITY; break;
    case AMP_OP_REDUCE_MIN: acc = INFINITY; break;
    default: acc = 0.0; break;
    }
    if (op == AMP_OP_REDUCE_LOG_SUM_EXP) {
        /* shift by the maximum so that exp cannot overflow */
        double m = -INFINITY;
        for (int64_t t = 0; t < count; t++) {
            double v = amp_ld(dt, x, off);
            if (v > m || isnan(v)) m = v;
            loop_next(R, idx, &off);
        }
        if (isnan(m) || isinf(m)) return m;
        off = base;
        for (int64_t t = 0; t < count; t++) {
            acc += exp(amp_ld(dt, x, off) - m);
            loop_next(R, idx, &off);
        }
        return m + log(acc);
    }
    for (int64_t t = 0; t < count; t++) {
        double v = amp_ld(dt, x, off);
        switch (op) {
        case AMP_OP_REDUCE_PROD: acc *= v; break;
        case AMP_OP_REDUCE_MAX:
            if (v > acc || isnan(v)) acc = isnan(acc) ? acc : v;
            break;
        case AMP_OP_REDUCE_MIN:
            if (v < acc || isnan(v)) acc = isnan(acc) ? acc : v;
            break;
        case AMP_OP_REDUCE_L1: acc += fabs(v); break;
        case AMP_OP_REDUCE_L2:
        case AMP_OP_REDUCE_SUM_SQUARE: acc += v * v; break;
        default: acc += v; break; /* sum, mean, log-sum */
        }
        loop_next(R, idx, &off);
    }
    switch (op) {
    case AMP_OP_REDUCE_MEAN: return acc / (double)count; /* empty: NaN, like numpy */
    case AMP_OP_REDUCE_L2: return sqrt(acc);
    case AMP_OP_REDUCE_LOG_SUM: return log(acc);
    default: return acc;
    }
}

static int64_t reduce_int(amp_op op, amp_dtype dt, const void *x, int64_t base, const loopdims *R, int64_t count) {
    int64_t idx[AMP_MAX_RANK] = {0};
    int64_t off = base;
    if (op == AMP_OP_REDUCE_LOG_SUM_EXP) return d2i(dt, reduce_float(op, dt, x, base, R, count));
    if (op == AMP_OP_REDUCE_MAX || op == AMP_OP_REDUCE_MIN) {
        bool mx = op == AMP_OP_REDUCE_MAX;
        int64_t acc = mx ? int_min_of(dt) : int_max_of(dt);
        for (int64_t t = 0; t < count; t++) {
            int64_t v = amp_ldi(dt, x, off);
            if (mx ? v > acc : v < acc) acc = v;
            loop_next(R, idx, &off);
        }
        return acc;
    }
    /* unsigned arithmetic wraps where signed overflow would be undefined */
    uint64_t acc = op == AMP_OP_REDUCE_PROD ? 1u : 0u;
    for (int64_t t = 0; t < count; t++) {
        int64_t v = amp_ldi(dt, x, off);
        uint64_t u = (uint64_t)v;
        switch (op) {
        case AMP_OP_REDUCE_PROD: acc *= u; break;
        case AMP_OP_REDUCE_L1: acc += v < 0 ? 0u - u : u; break;
        case AMP_OP_REDUCE_L2:
        case AMP_OP_REDUCE_SUM_SQUARE: acc += u * u; break;
        default: acc += u; break;
        }
        loop_next(R, idx, &off);
    }
    int64_t s = (int64_t)acc;
    switch (op) {
    case AMP_OP_REDUCE_MEAN: return count ? s / count : 0;
    case AMP_OP_REDUCE_L2: return d2i(dt, sqrt((double)acc));
    case AMP_OP_REDUCE_LOG_SUM: return d2i(dt, log((double)s));
    default: return s;
    }
}

static bool axes_is_input(const amp_node *n, int64_t opset) {
    return n->op == AMP_OP_REDUCE_SUM ? opset >= 13 : opset >= 18;
}

amp_status amp_cpu_reduce_axes(amp_kernel *k, bool from_input, const amp_tensor *axes_in, int rank, bool *red,
                               bool *noop) {
    int64_t axes[2 * AMP_MAX_RANK];
    int naxes = 0;
    if (from_input) {
        const amp_tensor *a = axes_in;
        if (a) {
            if (a->dtype != AMP_I64 && a->dtype != AMP_I32)
                return amp_kernel_fail(k, AMP_ERR_INVALID_ARG, "axes must be int64 or int32");
            if (a->numel > 2 * AMP_MAX_RANK) return amp_kernel_fail(k, AMP_ERR_INVALID_ARG, "too many axes");
            naxes = (int)a->numel;
            for (int i = 0; i < naxes; i++) axes[i] = amp_ldi(a->dtype, a->data, i);
        }
    } else {
        const int64_t *a = NULL;
        int na = amp_attr_ints(k->n, "axes", &a);
        if (na > 2 * AMP_MAX_RANK) return amp_kernel_fail(k, AMP_ERR_INVALID_ARG, "too many axes");
        for (int i = 0; i < na; i++) axes[i] = a[i];
        naxes = na > 0 ? na : 0;
    }
    for (int d = 0; d < rank; d++) red[d] = naxes == 0;
    *noop = naxes == 0 && from_input && amp_attr_int(k->n, "noop_with_empty_axes", 0) != 0;
    bool seen[AMP_MAX_RANK] = {false};
    for (int i = 0; i < naxes; i++) {
        if (axes[i] < -rank || axes[i] >= rank)
            return amp_kernel_fail(k, AMP_ERR_INVALID_ARG, "axis %lld out of range for rank %d", (long long)axes[i],
                                   rank);
        int a = (int)(axes[i] < 0 ? axes[i] + rank : axes[i]);
        if (seen[a]) return amp_kernel_fail(k, AMP_ERR_INVALID_ARG, "axis %lld is repeated", (long long)axes[i]);
        seen[a] = red[a] = true;
    }
    return AMP_OK;
}

amp_status amp_cpu_reduce(amp_kernel *k) {
    const amp_tensor *x = k->in[0];
    amp_tensor *y = k->out[0];
    amp_op op = k->n->op;
    bool red[AMP_MAX_RANK], noop;
    /* re-read here because the output shape alone cannot tell which dims were reduced */
    amp_status s = amp_cpu_reduce_axes(k, axes_is_input(k->n, k->opset), k->nin > 1 ? k->in[1] : NULL, x->rank, red,
                                       &noop);
    if (s) return s;
    if (noop) {
        if (y->nbytes != x->nbytes) return amp_kernel_fail(k, AMP_ERR_SHAPE, "output size does not match input");
        if (y->data != x->data && x->nbytes) memcpy(y->data, x->data, x->nbytes);
        return AMP_OK;
    }
    int64_t st[AMP_MAX_RANK];
    amp_strides(x->rank, x->dims, st);
    loopdims K = {0}, R = {0};
    int64_t nout = 1, count = 1;
    for (int d = 0; d < x->rank; d++) {
        if (red[d]) {
            count *= x->dims[d];
        } else {
            nout *= x->dims[d];
        }
    }
    if (nout != y->numel) return amp_kernel_fail(k, AMP_ERR_SHAPE, "output has %lld elements, expected %lld",
                                                 (long long)y->numel, (long long)nout);
    /* with an empty input no offsets are read, so the merged strides do not matter */
    if (x->numel > 0)
        for (int d = 0; d < x->rank; d++) loop_push(red[d] ? &R : &K, x->dims[d], st[d]);
    amp_dtype dt = x->dtype;
    bool isf = amp_dtype_is_float(dt);
    const void *xd = x->data;
    void *yd = y->data;
    int64_t work = x->numel > nout ? x->numel : nout;
    AMP_PAR_FOR(work >= PAR_MIN_WORK && nout > 1, num_threads(k->threads),
    for (int64_t o = 0; o < nout; o++) {
        int64_t base = count > 0 ? loop_offset(&K, o) : 0;
        if (isf) amp_st(dt, yd, o, reduce_float(op, dt, xd, base, &R, count));
        else amp_sti(dt, yd, o, reduce_int(op, dt, xd, base, &R, count));
    });
    return AMP_OK;
}

amp_status amp_cpu_argminmax(amp_kernel *k) {
    const amp_tensor *x = k->in[0];
    amp_tensor *y = k->out[0];
    int64_t axis = amp_attr_int(k->n, "axis", 0);
    if (axis < -x->rank || axis >= x->rank)
        return amp_kernel_fail(k, AMP_ERR_INVALID_ARG, "axis %lld out of range for rank %d", (long long)axis, x->rank);
    if (axis < 0) axis += x->rank;
    int64_t outer = 1, len = x->dims[axis], inner = 1;
    for (int d = 0; d < axis; d++) outer *= x->dims[d];
    for (int d = (int)axis + 1; d < x->rank; d++) inner *= x->dims[d];
    if (outer * inner != y->numel) return amp_kernel_fail(k, AMP_ERR_SHAPE, "output size does not match");
    if (y->numel == 0) return AMP_OK;
    if (len == 0) return amp_kernel_fail(k, AMP_ERR_INVALID_ARG, "axis has no elements to choose from");
    bool mx = k->n->op == AMP_OP_ARG_MAX;
    bool last = amp_attr_int(k->n, "select_last_index", 0) != 0;
    bool isf = amp_dtype_is_float(x->dtype);
    amp_dtype dt = x->dtype;
    const void *xd = x->data;
    int64_t *yd = y->data;
    AMP_PAR_FOR(x->numel >= PAR_MIN_WORK && outer * inner > 1, num_threads(k->threads),
    for (int64_t oi = 0; oi < outer * inner; oi++) {
        int64_t o = oi / inner, i = oi % inner;
        int64_t base = o * len * inner + i;
        int64_t best_j = 0;
        if (isf) {
            double best = amp_ld(dt, xd, base);
            for (int64_t j = 1; j < len; j++) {
                double v = amp_ld(dt, xd, base + j * inner);
                /* NaN wins over numbers, as numpy's argmax/argmin have it */
                if (isnan(best) && !(last && isnan(v))) continue;
                bool take = isnan(v) || (mx ? v > best : v < best) || (last && v == best);
                if (take) {
                    best = v;
                    best_j = j;
                }
            }
        } else {
            int64_t best = amp_ldi(dt, xd, base);
            for (int64_t j = 1; j < len; j++) {
                int64_t v = amp_ldi(dt, xd, base + j * inner);
                if ((mx ? v > best : v < best) || (last && v == best)) {
                    best = v;
                    best_j = j;
                }
            }
        }
        yd[oi] = best_j;
    });
    return AMP_OK;
}

amp_status amp_cpu_cumsum(amp_kernel *k) {
    const amp_tensor *x = k->in[0], *ax = k->in[1];
    amp_tensor *y = k->out[0];
    if (ax->numel != 1 || (ax->dtype != AMP_I64 && ax->dtype != AMP_I32))
        return amp_kernel_fail(k, AMP_ERR_INVALID_ARG, "axis must be one int32 or int64 value");
    int64_t axis = amp_ldi(ax->dtype, ax->data, 0);
    if (axis < -x->rank || axis >= x->rank)
        return amp_kernel_fail(k, AMP_ERR_INVALID_ARG, "axis %lld out of range for rank %d", (long long)axis, x->rank);
    if (axis < 0) axis += x->rank;
    bool excl = amp_attr_int(k->n, "exclusive", 0) != 0;
    bool rev = amp_attr_int(k->n, "reverse", 0) != 0;
    int64_t outer = 1, len = x->dims[axis], inner = 1;
    for (int d = 0; d < axis; d++) outer *= x->dims[d];
    for (int d = (int)axis + 1; d < x->rank; d++) inner *= x->dims[d];
    amp_dtype dt = x->dtype;
    bool isf = amp_dtype_is_float(dt);
    const void *xd = x->data;
    void *yd = y->data;
    int64_t lines = outer * inner;
    AMP_PAR_FOR(x->numel >= PAR_MIN_WORK && lines > 1, num_threads(k->threads),
    for (int64_t li = 0; li < lines; li++) {
        int64_t base = (li / inner) * len * inner + li % inner;
        int64_t step = rev ? -inner : inner;
        int64_t p = rev ? base + (len - 1) * inner : base;
        if (isf) {
            double acc = 0.0;
            for (int64_t j = 0; j < len; j++, p += step) {
                double v = amp_ld(dt, xd, p);
                if (!excl) acc += v;
                amp_st(dt, yd, p, acc);
                if (excl) acc += v;
            }
        } else {
            uint64_t acc = 0;
            for (int64_t j = 0; j < len; j++, p += step) {
                uint64_t v = (uint64_t)amp_ldi(dt, xd, p);
                if (!excl) acc += v;
                amp_sti(dt, yd, p, (int64_t)acc);
                if (excl) acc += v;
            }
        }
    });
    return AMP_OK;
}

/* CPU kernels for Clip, Dropout, Cast and CastLike. */
#include <stdbool.h>

#include "backends/cpu/cpu.h"
#include "backends/cpu/random.h"
#include "backends/cpu/par.h"
#include "backends/elementwise.h"
#include "backends/elementwise_grad.h"

#define CHUNK ((int64_t)1 << 14)
#define PAR_MIN ((int64_t)1 << 15)

/* ---- Clip ----------------------------------------------------------------------------------- */

/* A bound given as an optional input (opset 11+); absent when omitted or empty. */
static const amp_tensor *bound_input(const amp_kernel *k, int i) {
    const amp_tensor *t = i < k->nin ? k->in[i] : NULL;
    return t && t->numel > 0 ? t : NULL;
}

amp_status amp_cpu_clip(amp_kernel *k) {
    const amp_tensor *x = k->in[0];
    amp_tensor *y = k->out[0];
    amp_dtype t = x->dtype;
    int64_t n = x->numel;
    if (y->dtype != t || y->numel != n) return amp_kernel_fail(k, AMP_ERR_SHAPE, "output differs from input");
    const amp_tensor *tlo = NULL, *thi = NULL;
    if (k->opset >= 11) {
        tlo = bound_input(k, 1);
        thi = bound_input(k, 2);
        if ((tlo && tlo->dtype != t) || (thi && thi->dtype != t))
            return amp_kernel_fail(k, AMP_ERR_SHAPE, "min and max must have the input's dtype");
    }
    bool big = n >= PAR_MIN && k->threads > 1;

    if (t == AMP_U64) {
        uint64_t lo = tlo ? ((const uint64_t *)tlo->data)[0] : 0, hi = thi ? ((const uint64_t *)thi->data)[0] : UINT64_MAX;
        const uint64_t *xp = x->data;
        uint64_t *yp = y->data;
        for (int64_t i = 0; i < n; i++) yp[i] = xp[i] < lo ? lo : xp[i] > hi ? hi : xp[i];
        return AMP_OK;
    }
    if (amp_dtype_is_int(t)) {
        int64_t lo = tlo ? amp_ldi(t, tlo->data, 0) : INT64_MIN;
        int64_t hi = thi ? amp_ldi(t, thi->data, 0) : INT64_MAX;
        AMP_PAR_FOR(big, num_threads(amp_cpu_threads(k)),
        for (int64_t i = 0; i < n; i++) {
            int64_t v = amp_ldi(t, x->data, i);
            v = v < lo ? lo : v;
            amp_sti(t, y->data, i, v > hi ? hi : v);
        });
        return AMP_OK;
    }
    if (!amp_dtype_is_float(t))
        return amp_kernel_fail(k, AMP_ERR_UNSUPPORTED, "dtype %s is not supported", amp_dtype_name(t));
    /* Before opset 11 the bounds were float attributes; absent, the dtype's whole range. */
    double lo = tlo ? amp_ld(t, tlo->data, 0) : k->opset < 11 ? amp_attr_float(k->n, "min", -INFINITY) : -INFINITY;
    double hi = thi ? amp_ld(t, thi->data, 0) : k->opset < 11 ? amp_attr_float(k->n, "max", INFINITY) : INFINITY;
    /* max(x, lo) then min(., hi): when lo > hi everything becomes hi, as the spec says; the
     * comparisons are false for NaN, which passes through. */
    if (t == AMP_F32) {
        const float *xp = x->data;
        float *yp = y->data, flo = (float)lo, fhi = (float)hi;
        AMP_PAR_FOR(big, num_threads(amp_cpu_threads(k)),
        for (int64_t i = 0; i < n; i++) {
            float v = xp[i];
            v = v < flo ? flo : v;
            yp[i] = v > fhi ? fhi : v;
        });
    } else {
        AMP_PAR_FOR(big, num_threads(amp_cpu_threads(k)),
        for (int64_t i = 0; i < n; i++) {
            double v = amp_ld(t, x->data, i);
            v = v < lo ? lo : v;
            amp_st(t, y->data, i, v > hi ? hi : v);
        });
    }
    return AMP_OK;
}

/* ---- Dropout -------------------------------------------------------------------------------- */

/* Without a `seed` attribute the stream comes from the input's contents (a sample of its bits
 * and its size): amprt keeps no state between runs, and a constant seed would drop the same
 * units in every training step. */
static uint64_t content_seed(const amp_tensor *x) {
    /* one definition with the gradient kernel, which must draw the same mask */
    return amp_dropout_content_seed(x->data, x->numel, amp_dtype_size(x->dtype));
}

amp_status amp_cpu_dropout(amp_kernel *k) {
    const amp_tensor *x = k->in[0];
    amp_tensor *y = k->out[0];
    amp_tensor *mask = k->nout > 1 ? k->out[1] : NULL;
    int64_t n = x->numel;
    if (y->dtype != x->dtype || y->numel != n || (mask && mask->numel != n))
        return amp_kernel_fail(k, AMP_ERR_SHAPE, "outputs differ from the input");
    bool training = false;
    double ratio = 0.5;
    if (k->opset >= 12) {
        const amp_tensor *r = k->nin > 1 ? k->in[1] : NULL;
        const amp_tensor *tm = k->nin > 2 ? k->in[2] : NULL;
        if (r && r->numel > 0) ratio = amp_ld(r->dtype, r->data, 0);
        if (tm && tm->numel > 0) training = amp_ld(tm->dtype, tm->data, 0) != 0.0;
    }
    /* Before opset 12 Dropout is an inference op: identity. */
    if (!training || ratio <= 0.0) {
        if (y->data != x->data) memmove(y->data, x->data, y->nbytes);
        if (mask) {
            for (int64_t i = 0; i < n; i++) amp_st(mask->dtype, mask->data, i, 1.0);
        }
        return AMP_OK;
    }
    if (!(ratio <= 1.0)) return amp_kernel_fail(k, AMP_ERR_INVALID_GRAPH, "ratio %g is not in [0, 1]", ratio);
    const amp_attr *sa = amp_node_attr_of(k->n, "seed", AMP_ATTR_INT);
    double scale = ratio < 1.0 ? 1.0 / (1.0 - ratio) : 0.0;
    amp_dtype t = x->dtype;
    if (sa && sa->kind == AMP_ATTR_INT) {
        /* An explicit seed draws the mask as numpy does (seed, then uniform doubles in element
         * order), so seeded models match the ONNX reference outputs. Sequential by nature. */
        amp_mt19937 rng;
        amp_mt_seed(&rng, (uint32_t)sa->i);
        for (int64_t i = 0; i < n; i++) {
            bool keep = amp_mt_double(&rng) >= ratio;
            amp_st(t, y->data, i, keep ? amp_ld(t, x->data, i) * scale : 0.0);
            if (mask) amp_st(mask->dtype, mask->data, i, keep ? 1.0 : 0.0);
        }
        return AMP_OK;
    }
    uint64_t seed = content_seed(x);
    float fr = (float)ratio;
    bool big = n >= PAR_MIN && k->threads > 1;
    AMP_PAR_FOR(big, num_threads(amp_cpu_threads(k)),
    for (int64_t i = 0; i < n; i++) {
        bool keep = amp_dropout_u01(seed, (uint64_t)i) >= fr;
        if (t == AMP_F32) ((float *)y->data)[i] = keep ? (float)(((const float *)x->data)[i] * scale) : 0.0f;
        else if (t == AMP_F64) ((double *)y->data)[i] = keep ? ((const double *)x->data)[i] * scale : 0.0;
        else amp_st(t, y->data, i, keep ? (float)amp_ld(t, x->data, i) * (float)scale : 0.0);
        if (mask) amp_st(mask->dtype, mask->data, i, keep ? 1.0 : 0.0);
    });
    return AMP_OK;
}

/* ---- Cast, CastLike ------------------------------------------------------------------------- */

/* Element i of a float source (exact as a double) into dst. */
static inline void cast_from_float(amp_dtype st, amp_dtype dt, const void *x, void *y, int64_t i) {
    double v = amp_ld(st, x, i);
    switch (dt) {
    case AMP_F32: ((float *)y)[i] = (float)v; break;
    case AMP_F64: ((double *)y)[i] = v; break;
    /* From f64 round once (round-to-odd then nearest even); other sources are exact in float. */
    case AMP_F16: ((uint16_t *)y)[i] = st == AMP_F64 ? amp_f64_to_f16(v) : amp_f32_to_f16((float)v); break;
    case AMP_BF16: ((uint16_t *)y)[i] = st == AMP_F64 ? amp_f64_to_bf16(v) : amp_f32_to_bf16((float)v); break;
    case AMP_BOOL: ((uint8_t *)y)[i] = v != 0.0; break; /* NaN is true, as in numpy */
    default: amp_sti(dt, y, i, amp_f2i_sat(v)); break;  /* toward zero, NaN -> 0, then wrap */
    }
}

/* Element i of an integer or bool source into dst. */
static inline void cast_from_int(amp_dtype st, amp_dtype dt, const void *x, void *y, int64_t i) {
    int64_t v = amp_ldi(st, x, i);
    if (st == AMP_U64 && v < 0 && amp_dtype_is_float(dt)) {
        /* uint64 above INT64_MAX: halve with the lost bit kept sticky, so the f32 round-to-odd
         * step stays exact for the final rounding, then double (exact) */
        uint64_t u = (uint64_t)v;
        float h = amp_i64_to_f32_odd((int64_t)((u >> 1) | (u & 1))) * 2.0f;
        switch (dt) {
        case AMP_F32: ((float *)y)[i] = (float)u; break;
        case AMP_F64: ((double *)y)[i] = (double)u; break;
        case AMP_F16: ((uint16_t *)y)[i] = amp_f32_to_f16(h); break;
        default: ((uint16_t *)y)[i] = amp_f32_to_bf16(h); break;
        }
        return;
    }
    switch (dt) {
    case AMP_F32: ((float *)y)[i] = (float)v; break;
    case AMP_F64: ((double *)y)[i] = (double)v; break;
    case AMP_F16: ((uint16_t *)y)[i] = amp_f32_to_f16(amp_i64_to_f32_odd(v)); break;
    case AMP_BF16: ((uint16_t *)y)[i] = amp_f32_to_bf16(amp_i64_to_f32_odd(v)); break;
    default: amp_sti(dt, y, i, v); break; /* wraps; bool is v != 0 */
    }
}

static void cast_range(amp_dtype st, amp_dtype dt, const void *x, void *y, int64_t lo, int64_t hi, bool rtz) {
    /* Truncation is amprt's own option (AMP_NODE_CAST_RTZ, set by autocast), from f32 only. */
    if (rtz && st == AMP_F32 && (dt == AMP_F16 || dt == AMP_BF16)) {
        for (int64_t i = lo; i < hi; i++) {
            float v = ((const float *)x)[i];
            ((uint16_t *)y)[i] = dt == AMP_F16 ? amp_f32_to_f16_mode(v, 1) : amp_f32_to_bf16_mode(v, 1);
        }
        return;
    }
    /* The conversions models are full of get their own loops. */
    if (st == AMP_F32 && dt == AMP_F16) {
        for (int64_t i = lo; i < hi; i++) ((uint16_t *)y)[i] = amp_f32_to_f16(((const float *)x)[i]);
    } else if (st == AMP_F16 && dt == AMP_F32) {
        for (int64_t i = lo; i < hi; i++) ((float *)y)[i] = amp_f16_to_f32(((const uint16_t *)x)[i]);
    } else if (st == AMP_F32 && dt == AMP_BF16) {
        for (int64_t i = lo; i < hi; i++) ((uint16_t *)y)[i] = amp_f32_to_bf16(((const float *)x)[i]);
    } else if (st == AMP_BF16 && dt == AMP_F32) {
        for (int64_t i = lo; i < hi; i++) ((float *)y)[i] = amp_bf16_to_f32(((const uint16_t *)x)[i]);
    } else if (amp_dtype_is_float(st)) {
        for (int64_t i = lo; i < hi; i++) cast_from_float(st, dt, x, y, i);
    } else {
        for (int64_t i = lo; i < hi; i++) cast_from_int(st, dt, x, y, i);
    }
}

amp_status amp_cpu_cast(amp_kernel *k) {
    const amp_tensor *x = k->in[0];
    amp_tensor *y = k->out[0];
    if (x->numel != y->numel) return amp_kernel_fail(k, AMP_ERR_SHAPE, "output size differs from input");
    if (amp_dtype_size(x->dtype) == 0 || amp_dtype_size(y->dtype) == 0)
        return amp_kernel_fail(k, AMP_ERR_UNSUPPORTED, "cast from %s to %s is not supported",
                               amp_dtype_name(x->dtype), amp_dtype_name(y->dtype));
    if (x->dtype == y->dtype) {
        if (x->data != y->data) memmove(y->data, x->data, y->nbytes);
        return AMP_OK;
    }
    int64_t n = x->numel, chunks = (n + CHUNK - 1) / CHUNK;
    bool big = n >= PAR_MIN && k->threads > 1;
    bool rtz = (k->n->flags & AMP_NODE_CAST_RTZ) != 0;
    AMP_PAR_FOR(big, num_threads(amp_cpu_threads(k)),
    for (int64_t c = 0; c < chunks; c++) {
        int64_t lo = c * CHUNK, hi = lo + CHUNK < n ? lo + CHUNK : n;
        cast_range(x->dtype, y->dtype, x->data, y->data, lo, hi, rtz);
    });
    return AMP_OK;
}

/* CPU kernels of the elementwise family's training ops (specified in ir/ops/elementwise_grad.def):
 * SumToShape, UnaryGrad, BinaryGrad, MinMaxGrad, ClipGrad, DropoutGrad.
 *
 * The per-element derivatives live in backends/elementwise_grad.h (shared with CUDA). f16 and
 * bf16 compute in f32 and round once on store; f64 computes in double; sums accumulate in
 * double. Ops that mix several inputs load blocks of each input into f32 or f64 scratch on the
 * stack, whatever its dtype, compute on the blocks, then store: one loop per dtype instead of
 * one per dtype combination, and a block is read whole before it is written, so running in
 * place (output over input 0) is safe. */
#include <stdbool.h>

#include "backends/cpu/cpu.h"
#include "backends/cpu/kernels.h"
#include "backends/cpu/random.h"
#include "backends/cpu/par.h"
#include "backends/elementwise_grad.h"

#define BLK 512                        /* elements per block of stack scratch */
#define PAR_MIN ((int64_t)1 << 15)     /* below this many elements, one thread */

/* ---- block loads and stores ------------------------------------------------------------------- */

/* n elements of p (dtype t) from element off, step s (0: one value repeated), into buf. */
static void load_f(amp_dtype t, const void *p, int64_t off, int64_t s, int64_t n, float *buf) {
    if (s == 0) {
        float v = (float)amp_ld(t, p, off);
        for (int64_t i = 0; i < n; i++) buf[i] = v;
        return;
    }
    if (s == 1) {
        switch (t) {
        case AMP_F32: memcpy(buf, (const float *)p + off, sizeof(float) * (size_t)n); return;
        case AMP_F16: amp_widen16(AMP_F16, (const uint16_t *)p + off, buf, n); return;
        case AMP_BF16: amp_widen16(AMP_BF16, (const uint16_t *)p + off, buf, n); return;
        default: break;
        }
    }
    for (int64_t i = 0; i < n; i++) buf[i] = (float)amp_ld(t, p, off + i * s);
}

static void load_d(amp_dtype t, const void *p, int64_t off, int64_t s, int64_t n, double *buf) {
    if (s == 0) {
        double v = amp_ld(t, p, off);
        for (int64_t i = 0; i < n; i++) buf[i] = v;
        return;
    }
    if (s == 1 && t == AMP_F64) {
        memcpy(buf, (const double *)p + off, sizeof(double) * (size_t)n);
        return;
    }
    for (int64_t i = 0; i < n; i++) buf[i] = amp_ld(t, p, off + i * s);
}

static void store_f(amp_dtype t, void *p, int64_t off, int64_t n, const float *buf) {
    switch (t) {
    case AMP_F32: memcpy((float *)p + off, buf, sizeof(float) * (size_t)n); break;
    case AMP_F16: amp_narrow16(AMP_F16, buf, (uint16_t *)p + off, n); break;
    case AMP_BF16: amp_narrow16(AMP_BF16, buf, (uint16_t *)p + off, n); break;
    default:
        for (int64_t i = 0; i < n; i++) amp_st(t, p, off + i, buf[i]);
        break;
    }
}

/* From double, 16-bit formats round once (through round-to-odd f32). */
static inline void st_d(amp_dtype t, void *p, int64_t i, double v) {
    switch (t) {
    case AMP_F64: ((double *)p)[i] = v; break;
    case AMP_F32: ((float *)p)[i] = (float)v; break;
    case AMP_F16: ((uint16_t *)p)[i] = amp_f64_to_f16(v); break;
    case AMP_BF16: ((uint16_t *)p)[i] = amp_f64_to_bf16(v); break;
    default: amp_st(t, p, i, v); break;
    }
}

static void store_d(amp_dtype t, void *p, int64_t off, int64_t n, const double *buf) {
    if (t == AMP_F64) {
        memcpy((double *)p + off, buf, sizeof(double) * (size_t)n);
        return;
    }
    for (int64_t i = 0; i < n; i++) st_d(t, p, off + i, buf[i]);
}

/* ---- SumToShape ------------------------------------------------------------------------------- */

/* acc[j] += g[off + j] */
static void seg_add(amp_dtype t, const void *g, int64_t off, int64_t n, double *acc) {
    switch (t) {
    case AMP_F32: {
        const float *p = (const float *)g + off;
        for (int64_t j = 0; j < n; j++) acc[j] += p[j];
        break;
    }
    case AMP_F64: {
        const double *p = (const double *)g + off;
        for (int64_t j = 0; j < n; j++) acc[j] += p[j];
        break;
    }
    case AMP_F16: {
        const uint16_t *p = (const uint16_t *)g + off;
        for (int64_t j = 0; j < n; j++) acc[j] += amp_f16_to_f32(p[j]);
        break;
    }
    default: {
        const uint16_t *p = (const uint16_t *)g + off;
        for (int64_t j = 0; j < n; j++) acc[j] += amp_bf16_to_f32(p[j]);
        break;
    }
    }
}

/* Four running sums so the adds do not wait on one another (no -ffast-math to reorder). */
#define SUM4(LD)                                                               \
    do {                                                                       \
        double s0 = 0, s1 = 0, s2 = 0, s3 = 0;                                 \
        int64_t j = 0;                                                         \
        for (; j + 4 <= n; j += 4) {                                           \
            s0 += LD(p[j]);                                                    \
            s1 += LD(p[j + 1]);                                                \
            s2 += LD(p[j + 2]);                                                \
            s3 += LD(p[j + 3]);                                                \
        }                                                                      \
        for (; j < n; j++) s0 += LD(p[j]);                                     \
        return (s0 + s1) + (s2 + s3);                                          \
    } while (0)
#define AS_D(v) ((double)(v))
#define F16_D(v) ((double)amp_f16_to_f32(v))
#define BF16_D(v) ((double)amp_bf16_to_f32(v))

static double seg_sum(amp_dtype t, const void *g, int64_t off, int64_t n) {
    switch (t) {
    case AMP_F32: {
        const float *p = (const float *)g + off;
        SUM4(AS_D);
    }
    case AMP_F64: {
        const double *p = (const double *)g + off;
        SUM4(AS_D);
    }
    case AMP_F16: {
        const uint16_t *p = (const uint16_t *)g + off;
        SUM4(F16_D);
    }
    default: {
        const uint16_t *p = (const uint16_t *)g + off;
        SUM4(BF16_D);
    }
    }
}

/* G's dims after dropping 1s and merging neighbours of the same kind: reduced (the target has
 * 1 there) or kept. The last dim is `inner`; the others are the outer dims. */
typedef struct s2s {
    int rank;
    int64_t dims[AMP_MAX_RANK], gst[AMP_MAX_RANK], ost[AMP_MAX_RANK]; /* ost 0 where reduced */
    bool red[AMP_MAX_RANK];
    /* outer dims split by kind, outermost first, with their strides in G */
    int nk, nr;
    int64_t kd[AMP_MAX_RANK], ks[AMP_MAX_RANK], rd[AMP_MAX_RANK], rs[AMP_MAX_RANK];
    int64_t mo, rn; /* products of the kept and reduced outer dims */
} s2s;

static void s2s_build(s2s *p, int rank, const int64_t *gd, const int64_t *td) {
    p->rank = 0;
    for (int d = 0; d < rank; d++) {
        if (gd[d] == 1) continue;
        bool r = td[d] == 1;
        if (p->rank > 0 && p->red[p->rank - 1] == r) {
            p->dims[p->rank - 1] *= gd[d];
        } else {
            p->dims[p->rank] = gd[d];
            p->red[p->rank++] = r;
        }
    }
    int64_t gs = 1, os = 1;
    for (int d = p->rank - 1; d >= 0; d--) {
        p->gst[d] = gs;
        gs *= p->dims[d];
        p->ost[d] = p->red[d] ? 0 : os;
        if (!p->red[d]) os *= p->dims[d];
    }
    p->nk = p->nr = 0;
    p->mo = p->rn = 1;
    for (int d = 0; d < p->rank - 1; d++) {
        if (p->red[d]) {
            p->rd[p->nr] = p->dims[d];
            p->rs[p->nr++] = p->gst[d];
            p->rn *= p->dims[d];
        } else {
            p->kd[p->nk] = p->dims[d];
            p->ks[p->nk++] = p->gst[d];
            p->mo *= p->dims[d];
        }
    }
}

/* Advance a row-major multi-index over dims d, keeping *off = sum idx * st. */
static inline void odo_next(int n, const int64_t *d, const int64_t *st, int64_t *idx, int64_t *off) {
    for (int k = n - 1; k >= 0; k--) {
        if (++idx[k] < d[k]) {
            *off += st[k];
            return;
        }
        *off -= (d[k] - 1) * st[k];
        idx[k] = 0;
    }
}

/* Offset in G of kept-outer combination mo. */
static int64_t kept_base(const s2s *p, int64_t mo) {
    int64_t off = 0;
    for (int k = p->nk - 1; k >= 0; k--) {
        off += (mo % p->kd[k]) * p->ks[k];
        mo /= p->kd[k];
    }
    return off;
}

/* Every output element summed by one work item over all of its reduced positions. */
static void s2s_direct(const s2s *p, amp_dtype t, const void *g, void *out, int threads, bool big) {
    int64_t inner = p->dims[p->rank - 1];
    bool inner_kept = !p->red[p->rank - 1];
    if (inner_kept) {
        int64_t nblk = (inner + BLK - 1) / BLK, items = p->mo * nblk;
        AMP_PAR_FOR(big, num_threads(threads) schedule(static),
        for (int64_t w = 0; w < items; w++) {
            int64_t mo = w / nblk, j0 = (w % nblk) * BLK, n = inner - j0 < BLK ? inner - j0 : BLK;
            double acc[BLK];
            for (int64_t j = 0; j < n; j++) acc[j] = 0;
            int64_t base = kept_base(p, mo) + j0, idx[AMP_MAX_RANK] = {0}, roff = 0;
            for (int64_t r = 0; r < p->rn; r++) {
                seg_add(t, g, base + roff, n, acc);
                odo_next(p->nr, p->rd, p->rs, idx, &roff);
            }
            store_d(t, out, mo * inner + j0, n, acc);
        });
    } else {
        int64_t items = (p->mo + BLK - 1) / BLK;
        AMP_PAR_FOR(big, num_threads(threads) schedule(static),
        for (int64_t w = 0; w < items; w++) {
            int64_t m0 = w * BLK, m1 = m0 + BLK < p->mo ? m0 + BLK : p->mo;
            for (int64_t mo = m0; mo < m1; mo++) {
                int64_t base = kept_base(p, mo), idx[AMP_MAX_RANK] = {0}, roff = 0;
                double acc = 0;
                for (int64_t r = 0; r < p->rn; r++) {
                    acc += seg_sum(t, g, base + roff, inner);
                    odo_next(p->nr, p->rd, p->rs, idx, &roff);
                }
                st_d(t, out, mo, acc);
            }
        });
    }
}

/* G's flat range cut into AMP_S2S_PARTS parts, each summed into its own row of ws[parts][m],
 * then the rows added in order. */
static void s2s_parts(const s2s *p, amp_dtype t, const void *g, int64_t n, void *out, int64_t m, double *ws,
                      int threads, bool big) {
    int64_t inner = p->dims[p->rank - 1];
    bool inner_kept = !p->red[p->rank - 1];
    int outer = p->rank - 1;
    AMP_PAR_FOR(big, num_threads(threads) schedule(static),
    for (int part = 0; part < AMP_S2S_PARTS; part++) {
        double *acc = ws + (size_t)part * (size_t)m;
        for (int64_t i = 0; i < m; i++) acc[i] = 0;
        int64_t lo = n * part / AMP_S2S_PARTS, hi = n * (part + 1) / AMP_S2S_PARTS;
        if (lo >= hi) continue;
        int64_t row = lo / inner, j = lo % inner, idx[AMP_MAX_RANK], obase = 0;
        for (int d = outer - 1; d >= 0; d--) {
            idx[d] = row % p->dims[d];
            row /= p->dims[d];
            obase += idx[d] * p->ost[d];
        }
        while (lo < hi) {
            int64_t len = inner - j < hi - lo ? inner - j : hi - lo;
            if (inner_kept) seg_add(t, g, lo, len, acc + obase + j);
            else acc[obase] += seg_sum(t, g, lo, len);
            lo += len;
            j = 0;
            odo_next(outer, p->dims, p->ost, idx, &obase);
        }
    });
    AMP_PAR_FOR(big, num_threads(threads) schedule(static),
    for (int64_t i = 0; i < m; i++) {
        double s = 0;
        for (int part = 0; part < AMP_S2S_PARTS; part++) s += ws[(size_t)part * (size_t)m + (size_t)i];
        st_d(t, out, i, s);
    });
}

/* SumToShape: one row of m doubles per fixed part when the reduction is split
 * (AMP_S2S_USE_PARTS); none otherwise. */
amp_status amp_cpu_ws_sum_to_shape(const amp_kernel *k, size_t *bytes) {
    const int64_t n = k->in[0]->numel, m = k->out[0]->numel;
    *bytes = 0;
    if (!AMP_S2S_USE_PARTS(n, m)) return AMP_OK;
    return amp_cpu_ws_elems(k, (int64_t)AMP_S2S_PARTS * m, sizeof(double), bytes);
}

amp_status amp_cpu_sum_to_shape(amp_kernel *k) {
    if (k->nin < 1 || !k->in[0]) return amp_kernel_fail(k, AMP_ERR_INVALID_GRAPH, "needs the gradient input");
    const amp_tensor *g = k->in[0];
    amp_tensor *r = k->out[0];
    amp_dtype t = g->dtype;
    if (r->dtype != t || !amp_dtype_is_float(t))
        return amp_kernel_fail(k, AMP_ERR_SHAPE, "input and output must share a float dtype");
    int off = g->rank - r->rank;
    const amp_attr *ax = amp_node_attr(k->n, "axis");
    if (ax && ax->kind == AMP_ATTR_INT) off = (int)(ax->i < 0 ? ax->i + g->rank : ax->i);
    if (off < 0 || off + r->rank > g->rank) return amp_kernel_fail(k, AMP_ERR_SHAPE, "target does not fit the input");
    int64_t td[AMP_MAX_RANK];
    for (int d = 0; d < g->rank; d++) td[d] = 1;
    for (int d = 0; d < r->rank; d++) td[off + d] = r->dims[d];
    for (int d = 0; d < g->rank; d++)
        if (td[d] != 1 && td[d] != g->dims[d])
            return amp_kernel_fail(k, AMP_ERR_SHAPE, "target dim %d does not broadcast to the input", d - off);
    int64_t n = g->numel, m = r->numel;
    if (m == 0) return AMP_OK;
    if (n == 0) { /* sums over nothing; all-zero bits are +0 in every float dtype */
        memset(r->data, 0, r->nbytes);
        return AMP_OK;
    }
    if (m == n) { /* nothing was broadcast */
        if (r->data != g->data) memmove(r->data, g->data, r->nbytes);
        return AMP_OK;
    }
    s2s p;
    s2s_build(&p, g->rank, g->dims, td);
    bool big = n >= PAR_MIN && k->threads > 1;
    if (AMP_S2S_USE_PARTS(n, m) && k->ws && k->ws_bytes >= (size_t)AMP_S2S_PARTS * (size_t)m * sizeof(double))
        s2s_parts(&p, t, g->data, n, r->data, m, k->ws, amp_cpu_threads(k), big);
    else
        s2s_direct(&p, t, g->data, r->data, amp_cpu_threads(k), big);
    return AMP_OK;
}

/* ---- UnaryGrad ------------------------------------------------------------------------------ */

typedef struct gattr {
    float alpha, beta, gamma, lambd;
    bool tanh_approx;
} gattr;

/* The forward's attributes with the forward kernel's defaults. */
static void read_gattrs(amp_op op, const amp_node *n, gattr *a) {
    a->alpha = a->beta = a->gamma = a->lambd = 0.0f;
    a->tanh_approx = false;
    switch (op) {
    case AMP_OP_LEAKY_RELU: a->alpha = amp_attr_float(n, "alpha", 0.01f); break;
    case AMP_OP_ELU: case AMP_OP_CELU: case AMP_OP_THRESHOLDED_RELU: a->alpha = amp_attr_float(n, "alpha", 1.0f); break;
    case AMP_OP_SELU:
        a->alpha = amp_attr_float(n, "alpha", (float)AMP_SELU_ALPHA);
        a->gamma = amp_attr_float(n, "gamma", (float)AMP_SELU_GAMMA);
        break;
    case AMP_OP_HARD_SIGMOID:
        a->alpha = amp_attr_float(n, "alpha", 0.2f);
        a->beta = amp_attr_float(n, "beta", 0.5f);
        break;
    case AMP_OP_SHRINK: a->lambd = amp_attr_float(n, "lambd", 0.5f); break;
    case AMP_OP_GELU: a->tanh_approx = amp_attr_str(n, "approximate", "none")[0] == 't'; break;
    default: break;
    }
}

#define GLOOP(CT, LD, ST, EXPR)          \
    for (int64_t i = 0; i < n; i++) {    \
        CT g = LD(dy[i]), v = LD(vv[i]); \
        o[i] = ST(EXPR);                 \
    }                                    \
    return true

/* One loop per op (the switch is outside the loops), for one storage type. */
#define UNARY_GRAD(NAME, T, LD, ST, CT, MS)                                                               \
    static bool NAME(amp_op op, const T *dy, const T *vv, T *o, int64_t n, const gattr *a) {              \
        const CT alpha = (CT)a->alpha, beta = (CT)a->beta, gamma = (CT)a->gamma, lambd = (CT)a->lambd;    \
        switch (op) {                                                                                     \
        case AMP_OP_RELU: GLOOP(CT, LD, ST, amp_relu_grad_##MS(g, v));                                                \
        case AMP_OP_SIGMOID: GLOOP(CT, LD, ST, amp_sigmoid_grad_##MS(g, v));                                          \
        case AMP_OP_TANH: GLOOP(CT, LD, ST, amp_tanh_grad_##MS(g, v));                                                \
        case AMP_OP_EXP: GLOOP(CT, LD, ST, amp_exp_grad_##MS(g, v));                                                  \
        case AMP_OP_SQRT: GLOOP(CT, LD, ST, amp_sqrt_grad_##MS(g, v));                                                \
        case AMP_OP_RECIPROCAL: GLOOP(CT, LD, ST, amp_reciprocal_grad_##MS(g, v));                                    \
        case AMP_OP_TAN: GLOOP(CT, LD, ST, amp_tan_grad_##MS(g, v));                                                  \
        case AMP_OP_LEAKY_RELU: GLOOP(CT, LD, ST, amp_leaky_relu_grad_##MS(g, v, alpha));                             \
        case AMP_OP_ERF: GLOOP(CT, LD, ST, amp_erf_grad_##MS(g, v));                                                  \
        case AMP_OP_GELU:                                                                                 \
            if (a->tanh_approx) {                                                                         \
                GLOOP(CT, LD, ST, amp_gelu_tanh_grad_##MS(g, v));                                                     \
            }                                                                                             \
            GLOOP(CT, LD, ST, amp_gelu_grad_##MS(g, v));                                                              \
        case AMP_OP_LOG: GLOOP(CT, LD, ST, amp_log_grad_##MS(g, v));                                                  \
        case AMP_OP_ABS: GLOOP(CT, LD, ST, amp_abs_grad_##MS(g, v));                                                  \
        case AMP_OP_SIN: GLOOP(CT, LD, ST, amp_sin_grad_##MS(g, v));                                                  \
        case AMP_OP_COS: GLOOP(CT, LD, ST, amp_cos_grad_##MS(g, v));                                                  \
        case AMP_OP_ASIN: GLOOP(CT, LD, ST, amp_asin_grad_##MS(g, v));                                                \
        case AMP_OP_ACOS: GLOOP(CT, LD, ST, amp_acos_grad_##MS(g, v));                                                \
        case AMP_OP_ATAN: GLOOP(CT, LD, ST, amp_atan_grad_##MS(g, v));                                                \
        case AMP_OP_SINH: GLOOP(CT, LD, ST, amp_sinh_grad_##MS(g, v));                                                \
        case AMP_OP_COSH: GLOOP(CT, LD, ST, amp_cosh_grad_##MS(g, v));                                                \
        case AMP_OP_ASINH: GLOOP(CT, LD, ST, amp_asinh_grad_##MS(g, v));                                              \
        case AMP_OP_ACOSH: GLOOP(CT, LD, ST, amp_acosh_grad_##MS(g, v));                                              \
        case AMP_OP_ATANH: GLOOP(CT, LD, ST, amp_atanh_grad_##MS(g, v));                                              \
        case AMP_OP_SOFTPLUS: GLOOP(CT, LD, ST, amp_softplus_grad_##MS(g, v));                                        \
        case AMP_OP_SOFTSIGN: GLOOP(CT, LD, ST, amp_softsign_grad_##MS(g, v));                                        \
        case AMP_OP_ELU: GLOOP(CT, LD, ST, amp_elu_grad_##MS(g, v, alpha));                                           \
        case AMP_OP_SELU: GLOOP(CT, LD, ST, amp_selu_grad_##MS(g, v, alpha, gamma));                                  \
        case AMP_OP_CELU: GLOOP(CT, LD, ST, amp_celu_grad_##MS(g, v, alpha));                                         \
        case AMP_OP_HARD_SIGMOID: GLOOP(CT, LD, ST, amp_hard_sigmoid_grad_##MS(g, v, alpha, beta));                   \
        case AMP_OP_HARD_SWISH: GLOOP(CT, LD, ST, amp_hard_swish_grad_##MS(g, v));                                    \
        case AMP_OP_THRESHOLDED_RELU: GLOOP(CT, LD, ST, amp_thresholded_relu_grad_##MS(g, v, alpha));                 \
        case AMP_OP_SHRINK: GLOOP(CT, LD, ST, amp_shrink_grad_##MS(g, v, lambd));                                     \
        case AMP_OP_MISH: GLOOP(CT, LD, ST, amp_mish_grad_##MS(g, v));                                                \
        default: return false;                                                                            \
        }                                                                                                 \
    }

#define ID(v) (v)
#define LD_F16(v) amp_f16_to_f32(v)
#define ST_F16(v) amp_f32_to_f16(v)
#define LD_BF16(v) amp_bf16_to_f32(v)
#define ST_BF16(v) amp_f32_to_bf16(v)

UNARY_GRAD(ug_f32, float, ID, ID, float, f)
UNARY_GRAD(ug_f64, double, ID, ID, double, d)
UNARY_GRAD(ug_f16, uint16_t, LD_F16, ST_F16, float, f)
UNARY_GRAD(ug_bf16, uint16_t, LD_BF16, ST_BF16, float, f)

static bool ug_range(amp_op op, amp_dtype t, const void *dy, const void *v, void *o, int64_t lo, int64_t n,
                     const gattr *a) {
    switch (t) {
    case AMP_F32: return ug_f32(op, (const float *)dy + lo, (const float *)v + lo, (float *)o + lo, n, a);
    case AMP_F64: return ug_f64(op, (const double *)dy + lo, (const double *)v + lo, (double *)o + lo, n, a);
    case AMP_F16: return ug_f16(op, (const uint16_t *)dy + lo, (const uint16_t *)v + lo, (uint16_t *)o + lo, n, a);
    case AMP_BF16: return ug_bf16(op, (const uint16_t *)dy + lo, (const uint16_t *)v + lo, (uint16_t *)o + lo, n, a);
    default: return false;
    }
}

amp_status amp_cpu_unary_grad(amp_kernel *k) {
    if (k->nin != 2 || !k->in[0] || !k->in[1])
        return amp_kernel_fail(k, AMP_ERR_INVALID_GRAPH, "needs dY and one forward value");
    const amp_tensor *dy = k->in[0], *v = k->in[1];
    amp_tensor *dx = k->out[0];
    if (v->dtype != dy->dtype || dx->dtype != dy->dtype || v->numel != dy->numel || dx->numel != dy->numel)
        return amp_kernel_fail(k, AMP_ERR_SHAPE, "inputs and output must share dtype and size");
    amp_op op = amp_op_lookup(amp_attr_str(k->n, "op", ""), "");
    gattr a;
    read_gattrs(op, k->n, &a);
    int64_t n = dy->numel;
    /* an empty run still rejects what a full one would */
    if (!ug_range(op, dy->dtype, dy->data, v->data, dx->data, 0, 0, &a))
        return amp_kernel_fail(k, AMP_ERR_UNSUPPORTED, "no gradient for op '%s' in %s", amp_attr_str(k->n, "op", ""),
                               amp_dtype_name(dy->dtype));
    int64_t chunk = (int64_t)1 << 14, chunks = (n + chunk - 1) / chunk;
    bool big = n >= PAR_MIN && k->threads > 1;
    AMP_PAR_FOR(big, num_threads(amp_cpu_threads(k)) schedule(static),
    for (int64_t c = 0; c < chunks; c++) {
        int64_t lo = c * chunk, len = n - lo < chunk ? n - lo : chunk;
        ug_range(op, dy->dtype, dy->data, v->data, dx->data, lo, len, &a);
    });
    return AMP_OK;
}

/* ---- broadcasting over several inputs ------------------------------------------------------- */

#define BC_MAXIN 32

typedef struct bc_plan {
    int rank; /* >= 1 */
    int64_t dims[AMP_MAX_RANK];
    int nin;
    int64_t st[BC_MAXIN][AMP_MAX_RANK]; /* element strides per input, 0 where broadcast */
} bc_plan;

/* A block of n output elements from flat offset o0; input i starts at element off[i] and steps
 * by s[i] (0 or 1). */
typedef void (*bc_fn)(const void *aux, int64_t o0, int64_t n, const int64_t *off, const int64_t *s);

/* ed[i]: input i's dims in the output's frame (1 where absent). Size-1 output dims are dropped
 * and neighbours that are contiguous in every input merged, as in backends/cpu/elementwise_binary.c. */
static void bc_build(bc_plan *pl, int orank, const int64_t *odims, int nin, int64_t (*ed)[AMP_MAX_RANK]) {
    pl->nin = nin;
    amp_bcast_collapse(orank, odims, nin, ed, &pl->rank, pl->dims, pl->st);
}

static void bc_run(const bc_plan *pl, bc_fn fn, const void *aux, int threads) {
    int64_t inner = pl->dims[pl->rank - 1], rows = 1;
    for (int d = 0; d < pl->rank - 1; d++) rows *= pl->dims[d];
    int64_t nblk = (inner + BLK - 1) / BLK, work = rows * nblk;
    bool big = rows * inner >= PAR_MIN && threads > 1;
    AMP_PAR_FOR(big, num_threads(threads) schedule(static),
    for (int64_t w = 0; w < work; w++) {
        int64_t row = w / nblk, j0 = (w % nblk) * BLK, n = inner - j0 < BLK ? inner - j0 : BLK;
        int64_t off[BC_MAXIN] = {0}, s[BC_MAXIN], rem = row;
        for (int d = pl->rank - 2; d >= 0; d--) {
            int64_t idx = rem % pl->dims[d];
            rem /= pl->dims[d];
            for (int i = 0; i < pl->nin; i++) off[i] += idx * pl->st[i][d];
        }
        for (int i = 0; i < pl->nin; i++) {
            s[i] = pl->st[i][pl->rank - 1];
            off[i] += j0 * s[i];
        }
        fn(aux, row * inner + j0, n, off, s);
    });
}

/* Input t's dims in a rank-r frame at offset off; false when they do not fit or broadcast. */
static bool frame(const amp_tensor *t, int r, const int64_t *odims, int off, int64_t *ed) {
    if (off < 0 || off + t->rank > r) return false;
    for (int d = 0; d < r; d++) ed[d] = 1;
    for (int d = 0; d < t->rank; d++) ed[off + d] = t->dims[d];
    for (int d = 0; d < r; d++)
        if (ed[d] != 1 && ed[d] != odims[d]) return false;
    return true;
}

/* ---- BinaryGrad ----------------------------------------------------------------------------- */

typedef struct bg_aux {
    const amp_tensor *dy, *a, *b;
    amp_tensor *out;
    bool pow, wrt_b, dbl;
} bg_aux;

static void bg_block(const void *vaux, int64_t o0, int64_t n, const int64_t *off, const int64_t *s) {
    const bg_aux *x = vaux;
    if (x->dbl) {
        double g[BLK], a[BLK], b[BLK];
        load_d(x->dy->dtype, x->dy->data, off[0], s[0], n, g);
        load_d(x->a->dtype, x->a->data, off[1], s[1], n, a);
        load_d(x->b->dtype, x->b->data, off[2], s[2], n, b);
        if (x->pow && x->wrt_b) for (int64_t i = 0; i < n; i++) g[i] = amp_pow_grad_exp_d(g[i], a[i], b[i]);
        else if (x->pow) for (int64_t i = 0; i < n; i++) g[i] = amp_pow_grad_base_d(g[i], a[i], b[i]);
        else if (x->wrt_b) for (int64_t i = 0; i < n; i++) g[i] = amp_prelu_grad_slope_d(g[i], a[i]);
        else for (int64_t i = 0; i < n; i++) g[i] = amp_prelu_grad_x_d(g[i], a[i], b[i]);
        store_d(x->out->dtype, x->out->data, o0, n, g);
    } else {
        float g[BLK], a[BLK], b[BLK];
        load_f(x->dy->dtype, x->dy->data, off[0], s[0], n, g);
        load_f(x->a->dtype, x->a->data, off[1], s[1], n, a);
        load_f(x->b->dtype, x->b->data, off[2], s[2], n, b);
        if (x->pow && x->wrt_b) for (int64_t i = 0; i < n; i++) g[i] = amp_pow_grad_exp_f(g[i], a[i], b[i]);
        else if (x->pow) for (int64_t i = 0; i < n; i++) g[i] = amp_pow_grad_base_f(g[i], a[i], b[i]);
        else if (x->wrt_b) for (int64_t i = 0; i < n; i++) g[i] = amp_prelu_grad_slope_f(g[i], a[i]);
        else for (int64_t i = 0; i < n; i++) g[i] = amp_prelu_grad_x_f(g[i], a[i], b[i]);
        store_f(x->out->dtype, x->out->data, o0, n, g);
    }
}

amp_status amp_cpu_binary_grad(amp_kernel *k) {
    if (k->nin != 3 || !k->in[0] || !k->in[1] || !k->in[2])
        return amp_kernel_fail(k, AMP_ERR_INVALID_GRAPH, "needs dY, A and B");
    const amp_tensor *dy = k->in[0], *a = k->in[1], *b = k->in[2];
    amp_tensor *out = k->out[0];
    const char *op = amp_attr_str(k->n, "op", "");
    bool prelu = strcmp(op, "PRelu") == 0, pw = strcmp(op, "Pow") == 0;
    int64_t wrt = amp_attr_int(k->n, "wrt", -1);
    if ((!prelu && !pw) || (wrt != 0 && wrt != 1))
        return amp_kernel_fail(k, AMP_ERR_INVALID_GRAPH, "bad op '%s' or wrt %lld", op, (long long)wrt);
    const amp_tensor *w = wrt ? b : a;
    if (!amp_dtype_is_float(dy->dtype) || !amp_dtype_is_float(w->dtype) || out->dtype != w->dtype ||
        out->rank != dy->rank || out->numel != dy->numel || amp_dtype_size(b->dtype) == 0 || b->dtype == AMP_BOOL)
        return amp_kernel_fail(k, AMP_ERR_SHAPE, "dtypes or shapes do not match the forward");
    if (out->numel == 0) return AMP_OK;
    int r = dy->rank;
    int64_t ed[3][AMP_MAX_RANK];
    int boff = amp_binary_grad_b_offset(amp_attr_int(k->n, "fwd_opset", 17), prelu,
                                        amp_attr_int(k->n, "broadcast", 0) != 0, amp_node_attr(k->n, "axis") != NULL,
                                        amp_attr_int(k->n, "axis", 0), r, a->rank, b->rank, b->rank > 0 ? b->dims[0] : 1,
                                        a->rank > 1 ? a->dims[1] : 1);
    if (!frame(dy, r, dy->dims, 0, ed[0]) || !frame(a, r, dy->dims, r - a->rank, ed[1]) ||
        !frame(b, r, dy->dims, boff, ed[2]))
        return amp_kernel_fail(k, AMP_ERR_SHAPE, "A or B does not broadcast to the gradient's shape");
    bc_plan pl;
    bc_build(&pl, r, dy->dims, 3, ed);
    bg_aux aux = {dy, a, b, out, pw, wrt == 1,
                  dy->dtype == AMP_F64 || a->dtype == AMP_F64 || b->dtype == AMP_F64 || amp_dtype_is_int(b->dtype)};
    bc_run(&pl, bg_block, &aux, amp_cpu_threads(k));
    return AMP_OK;
}

/* ---- MinMaxGrad ----------------------------------------------------------------------------- */

typedef struct mm_aux {
    amp_kernel *k;
    int index;
} mm_aux;

/* x counts as selected where it equals the output; a NaN output selects the NaN inputs. */
#define MM_BLOCK(CT, LOAD, STORE)                                                                  \
    do {                                                                                           \
        CT g[BLK], y[BLK], x[BLK], cnt[BLK], sel[BLK];                                             \
        LOAD(t, k->in[0]->data, off[0], s[0], n, g);                                               \
        LOAD(t, k->in[1]->data, off[1], s[1], n, y);                                               \
        for (int64_t i = 0; i < n; i++) cnt[i] = sel[i] = 0;                                       \
        for (int j = 2; j < k->nin; j++) {                                                         \
            LOAD(t, k->in[j]->data, off[j], s[j], n, x);                                           \
            for (int64_t i = 0; i < n; i++) {                                                      \
                CT e = (CT)(x[i] == y[i] || (y[i] != y[i] && x[i] != x[i]));                       \
                cnt[i] += e;                                                                       \
                if (j - 2 == m->index) sel[i] = e;                                                 \
            }                                                                                      \
        }                                                                                          \
        for (int64_t i = 0; i < n; i++) g[i] = sel[i] != 0 ? g[i] / cnt[i] : (CT)0;                \
        STORE(t, k->out[0]->data, o0, n, g);                                                       \
    } while (0)

static void mm_block(const void *vaux, int64_t o0, int64_t n, const int64_t *off, const int64_t *s) {
    const mm_aux *m = vaux;
    amp_kernel *k = m->k;
    amp_dtype t = k->in[0]->dtype;
    if (t == AMP_F64) MM_BLOCK(double, load_d, store_d);
    else MM_BLOCK(float, load_f, store_f);
}

amp_status amp_cpu_min_max_grad(amp_kernel *k) {
    if (k->nin < 3 || k->nin > BC_MAXIN)
        return amp_kernel_fail(k, AMP_ERR_INVALID_GRAPH, "needs dY, Y and 1 to 30 inputs");
    const amp_tensor *dy = k->in[0];
    int64_t index = amp_attr_int(k->n, "index", -1);
    if (index < 0 || index >= k->nin - 2) return amp_kernel_fail(k, AMP_ERR_INVALID_GRAPH, "index out of range");
    int r = dy->rank;
    int64_t ed[BC_MAXIN][AMP_MAX_RANK];
    for (int i = 0; i < k->nin; i++) {
        const amp_tensor *x = k->in[i];
        if (!x || x->dtype != dy->dtype || (i < 2 && x->rank != r) || !frame(x, r, dy->dims, r - x->rank, ed[i]))
            return amp_kernel_fail(k, AMP_ERR_SHAPE, "input %d is missing or does not match the gradient", i);
    }
    if (!amp_dtype_is_float(dy->dtype) || k->out[0]->dtype != dy->dtype || k->out[0]->numel != dy->numel)
        return amp_kernel_fail(k, AMP_ERR_SHAPE, "output must be a float tensor of the gradient's shape");
    if (dy->numel == 0) return AMP_OK;
    bc_plan pl;
    bc_build(&pl, r, dy->dims, k->nin, ed);
    mm_aux aux = {k, (int)index};
    bc_run(&pl, mm_block, &aux, amp_cpu_threads(k));
    return AMP_OK;
}

/* ---- ClipGrad ------------------------------------------------------------------------------- */

static const amp_tensor *bound(const amp_kernel *k, int i) {
    const amp_tensor *t = i < k->nin ? k->in[i] : NULL;
    return t && t->numel > 0 ? t : NULL;
}

amp_status amp_cpu_clip_grad(amp_kernel *k) {
    if (k->nin < 2 || !k->in[0] || !k->in[1]) return amp_kernel_fail(k, AMP_ERR_INVALID_GRAPH, "needs dY and X");
    const amp_tensor *dy = k->in[0], *x = k->in[1];
    amp_tensor *dx = k->out[0];
    amp_dtype t = dy->dtype;
    if (!amp_dtype_is_float(t) || x->dtype != t || dx->dtype != t || x->numel != dy->numel || dx->numel != dy->numel)
        return amp_kernel_fail(k, AMP_ERR_SHAPE, "dY, X and dX must share a float dtype and size");
    /* the bounds exactly as the forward kernel reads them */
    int64_t fo = amp_attr_int(k->n, "fwd_opset", 17);
    const amp_tensor *tlo = fo >= 11 ? bound(k, 2) : NULL, *thi = fo >= 11 ? bound(k, 3) : NULL;
    if ((tlo && tlo->dtype != t) || (thi && thi->dtype != t))
        return amp_kernel_fail(k, AMP_ERR_SHAPE, "min and max must have X's dtype");
    double lo = tlo ? amp_ld(t, tlo->data, 0) : fo < 11 ? amp_attr_float(k->n, "min", -INFINITY) : -INFINITY;
    double hi = thi ? amp_ld(t, thi->data, 0) : fo < 11 ? amp_attr_float(k->n, "max", INFINITY) : INFINITY;
    int64_t n = dy->numel, nblk = (n + BLK - 1) / BLK;
    bool big = n >= PAR_MIN && k->threads > 1;
    bool dbl = t == AMP_F64;
    float flo = (float)lo, fhi = (float)hi;
    AMP_PAR_FOR(big, num_threads(amp_cpu_threads(k)) schedule(static),
    for (int64_t w = 0; w < nblk; w++) {
        int64_t o0 = w * BLK, len = n - o0 < BLK ? n - o0 : BLK;
        if (dbl) {
            double g[BLK], v[BLK];
            load_d(t, dy->data, o0, 1, len, g);
            load_d(t, x->data, o0, 1, len, v);
            for (int64_t i = 0; i < len; i++) g[i] = v[i] >= lo && v[i] <= hi ? g[i] : 0.0;
            store_d(t, dx->data, o0, len, g);
        } else {
            /* f32, f16 and bf16 bounds are exact in float */
            float g[BLK], v[BLK];
            load_f(t, dy->data, o0, 1, len, g);
            load_f(t, x->data, o0, 1, len, v);
            for (int64_t i = 0; i < len; i++) g[i] = v[i] >= flo && v[i] <= fhi ? g[i] : 0.0f;
            store_f(t, dx->data, o0, len, g);
        }
    });
    return AMP_OK;
}

/* ---- DropoutGrad ---------------------------------------------------------------------------- */

/* dx[i] = keep ? dy[i] * scale : 0, rounded as the forward rounds x * scale. */
static inline void drop_one(amp_dtype t, const void *dy, void *dx, int64_t i, bool keep, double scale) {
    if (t == AMP_F32) ((float *)dx)[i] = keep ? (float)(((const float *)dy)[i] * scale) : 0.0f;
    else if (t == AMP_F64) ((double *)dx)[i] = keep ? ((const double *)dy)[i] * scale : 0.0;
    else amp_st(t, dx, i, keep ? (float)amp_ld(t, dy, i) * (float)scale : 0.0);
}

amp_status amp_cpu_dropout_grad(amp_kernel *k) {
    if (k->nin < 1 || !k->in[0]) return amp_kernel_fail(k, AMP_ERR_INVALID_GRAPH, "needs dY");
    const amp_tensor *dy = k->in[0];
    const amp_tensor *mask = k->nin > 1 ? k->in[1] : NULL, *x = k->nin > 2 ? k->in[2] : NULL;
    const amp_tensor *r = k->nin > 3 ? k->in[3] : NULL, *tm = k->nin > 4 ? k->in[4] : NULL;
    amp_tensor *dx = k->out[0];
    amp_dtype t = dy->dtype;
    int64_t n = dy->numel;
    if (!amp_dtype_is_float(t) || dx->dtype != t || dx->numel != n || (mask && mask->numel != n) ||
        (x && x->numel != n))
        return amp_kernel_fail(k, AMP_ERR_SHAPE, "inputs and output differ in size or dtype");
    /* the forward's reading of ratio and training_mode */
    double ratio = r && r->numel > 0 ? amp_ld(r->dtype, r->data, 0) : 0.5;
    bool training = tm && tm->numel > 0 && amp_ld(tm->dtype, tm->data, 0) != 0.0;
    if (!training || ratio <= 0.0) {
        if (dx->data != dy->data) memmove(dx->data, dy->data, dx->nbytes);
        return AMP_OK;
    }
    if (!(ratio <= 1.0)) return amp_kernel_fail(k, AMP_ERR_INVALID_GRAPH, "ratio %g is not in [0, 1]", ratio);
    double scale = ratio < 1.0 ? 1.0 / (1.0 - ratio) : 0.0;
    bool big = n >= PAR_MIN && k->threads > 1;
    if (mask) {
        amp_dtype mt = mask->dtype;
        AMP_PAR_FOR(big, num_threads(amp_cpu_threads(k)) schedule(static),
        for (int64_t i = 0; i < n; i++) drop_one(t, dy->data, dx->data, i, amp_ld(mt, mask->data, i) != 0.0, scale););
        return AMP_OK;
    }
    if (!x) return amp_kernel_fail(k, AMP_ERR_INVALID_GRAPH, "needs the mask or X to draw the mask again");
    const amp_attr *sa = amp_node_attr_of(k->n, "seed", AMP_ATTR_INT);
    if (sa && sa->kind == AMP_ATTR_INT) {
        /* the forward's numpy-compatible sequence, drawn in element order */
        amp_mt19937 rng;
        amp_mt_seed(&rng, (uint32_t)sa->i);
        for (int64_t i = 0; i < n; i++) drop_one(t, dy->data, dx->data, i, amp_mt_double(&rng) >= ratio, scale);
        return AMP_OK;
    }
    uint64_t seed = amp_dropout_content_seed(x->data, x->numel, amp_dtype_size(x->dtype));
    float fr = (float)ratio;
    AMP_PAR_FOR(big, num_threads(amp_cpu_threads(k)) schedule(static),
    for (int64_t i = 0; i < n; i++) drop_one(t, dy->data, dx->data, i, amp_dropout_u01(seed, (uint64_t)i) >= fr, scale););
    return AMP_OK;
}

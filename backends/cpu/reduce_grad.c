/* CPU kernel of the reduce family's gradient op ReduceGrad (ir/ops/reduce_grad.def, built by
 * ir/ops/reduce_grad.c). Statistics accumulate in double and every element is stored with the
 * output dtype's rounding; per-element formulas live in backends/reduce_grad.h. */
#include <math.h>
#include <string.h>

#include "backends/cpu/cpu.h"
#include "backends/cpu/kernels.h"
#include "backends/cpu/par.h"
#include "backends/reduce_grad.h"

/* Below this many elements the OpenMP fork costs more than it saves. */
#define GRAD_PAR_MIN 32768

/* ---- ReduceGrad ---------------------------------------------------------------------------------------
 * dX of every reduction. The statistics some need (the extreme and its tie count, the product
 * and the zero count, the norm, the sum, log-sum-exp) are recomputed from X in double, one
 * output element per thread iteration; then dX is written in X's order, chunks per thread, each
 * element finding its output element through per-dim output strides. */

static int reduce_mode(const char *op) {
    static const struct {
        const char *name;
        int mode;
    } m[] = {{"ReduceSum", AMP_RG_SUM},      {"ReduceMean", AMP_RG_MEAN},   {"ReduceSumSquare", AMP_RG_SUM_SQUARE},
             {"ReduceL1", AMP_RG_L1},        {"ReduceL2", AMP_RG_L2},       {"ReduceLogSum", AMP_RG_LOG_SUM},
             {"ReduceLogSumExp", AMP_RG_LSE}, {"ReduceMax", AMP_RG_MAX},    {"ReduceMin", AMP_RG_MIN},
             {"ReduceProd", AMP_RG_PROD}};
    for (size_t i = 0; i < sizeof m / sizeof m[0]; i++)
        if (strcmp(op, m[i].name) == 0) return m[i].mode;
    return -1;
}

/* Which dims are reduced, read the way the forward kernel reads them. */
static amp_status rg_axes(amp_kernel *k, const char *op, int rank, bool *red, bool *noop) {
    const int64_t opset = amp_attr_int(k->n, "fwd_opset", 18);
    const bool from_input = strcmp(op, "ReduceSum") == 0 ? opset >= 13 : opset >= 18;
    return amp_cpu_reduce_axes(k, from_input, in_opt(k, 2), rank, red, noop);
}

/* The statistics of output element o: its reduced elements are base + the offsets of the
 * odometer over the reduced dims (lengths rl, strides rs). */
static void rg_stats(int mode, amp_dtype xt, const void *x, int64_t base, int nr, const int64_t *rl, const int64_t *rs,
                     int64_t count, double *st) {
    int64_t idx[AMP_MAX_RANK] = {0}, off = base;
    double a = 0, b = 0;
    switch (mode) {
    case AMP_RG_MAX: a = -INFINITY; break;
    case AMP_RG_MIN: a = INFINITY; break;
    case AMP_RG_PROD: a = 1; break;
    case AMP_RG_LSE: a = -INFINITY; break;
    default: break;
    }
    /* two passes for max/min (find, then count ties) and log-sum-exp (max, then sum) */
    for (int pass = 0; pass < 2; pass++) {
        if (pass == 1 && mode != AMP_RG_MAX && mode != AMP_RG_MIN && mode != AMP_RG_LSE) break;
        for (int d = 0; d < nr; d++) idx[d] = 0;
        off = base;
        for (int64_t t = 0; t < count; t++) {
            const double v = amp_ld(xt, x, off);
            switch (mode) {
            case AMP_RG_MAX:
            case AMP_RG_MIN:
                if (pass == 0) {
                    if (isnan(v) || (!isnan(a) && (mode == AMP_RG_MAX ? v > a : v < a))) a = isnan(a) ? a : v;
                } else if (v == a || (isnan(v) && isnan(a))) {
                    b += 1;
                }
                break;
            case AMP_RG_PROD:
                if (v == 0) b += 1;
                else a *= v;
                break;
            case AMP_RG_L2:
            case AMP_RG_LOG_SUM: a += mode == AMP_RG_L2 ? v * v : v; break;
            case AMP_RG_LSE:
                if (pass == 0) {
                    if (v > a || isnan(v)) a = v;
                } else {
                    b += exp(v - a);
                }
                break;
            default: break;
            }
            for (int d = nr - 1; d >= 0; d--) {
                off += rs[d];
                if (++idx[d] < rl[d]) break;
                off -= rs[d] * rl[d];
                idx[d] = 0;
            }
        }
    }
    if (mode == AMP_RG_L2) a = sqrt(a);
    if (mode == AMP_RG_LSE) a = isinf(a) || isnan(a) ? a : a + log(b);
    st[0] = a;
    st[1] = b;
}

/* One row of X's innermost dim: output elements o0 + j * ol (ol is 0 when that dim is reduced,
 * 1 when it is kept). mode is a constant where this is inlined, so the formula is chosen once. */
AMP_CPU_INLINE void rg_row(bool f32, int mode, const amp_tensor *dy, const amp_tensor *x, amp_tensor *dx, const double *st,
                      int64_t e0, int64_t o0, int64_t ol, int64_t len, double cnt) {
    const bool stats = mode >= AMP_RG_L2;
    for (int64_t j = 0; j < len; j++) {
        const int64_t o = o0 + j * ol, e = e0 + j;
        const double g = amp_ldf(f32, dy->dtype, dy->data, o);
        const double xv = mode == AMP_RG_SUM || mode == AMP_RG_MEAN ? 0.0 : amp_ldf(f32, x->dtype, x->data, e);
        amp_stf(f32, dx->dtype, dx->data, e,
            amp_reduce_dx_d(mode, xv, g, stats ? st[2 * o] : 0.0, stats ? st[2 * o + 1] : 0.0, cnt));
    }
}

#define RG_MODE_CASE(F32, M)                                                                                           \
    case M: rg_row(F32, M, dy, x, dx, st, e0, o0, ol, len, cnt); break;
#define RG_ROW_SWITCH(F32)                                                                                             \
    switch (mode) {                                                                                                    \
        RG_MODE_CASE(F32, AMP_RG_SUM)                                                                                  \
        RG_MODE_CASE(F32, AMP_RG_MEAN)                                                                                 \
        RG_MODE_CASE(F32, AMP_RG_SUM_SQUARE)                                                                           \
        RG_MODE_CASE(F32, AMP_RG_L1)                                                                                   \
        RG_MODE_CASE(F32, AMP_RG_L2)                                                                                   \
        RG_MODE_CASE(F32, AMP_RG_LOG_SUM)                                                                              \
        RG_MODE_CASE(F32, AMP_RG_LSE)                                                                                  \
        RG_MODE_CASE(F32, AMP_RG_MAX)                                                                                  \
        RG_MODE_CASE(F32, AMP_RG_MIN)                                                                                  \
        RG_MODE_CASE(F32, AMP_RG_PROD)                                                                                 \
    default: break;                                                                                                    \
    }

/* ReduceGrad: two statistics per output element (in double) for the reductions that need them
 * (extreme and tie count, product and zero count, norm, sum, log-sum-exp). */
amp_status amp_cpu_ws_reduce_grad(const amp_kernel *k, size_t *bytes) {
    const char *op = amp_attr_str(k->n, "fwd_op", "");
    const bool stats = strcmp(op, "ReduceSum") != 0 && strcmp(op, "ReduceMean") != 0 &&
                       strcmp(op, "ReduceSumSquare") != 0 && strcmp(op, "ReduceL1") != 0;
    *bytes = 0;
    if (!stats) return AMP_OK;
    return amp_cpu_ws_elems(k, 2 * k->in[0]->numel, sizeof(double), bytes);
}

amp_status amp_cpu_reduce_grad(amp_kernel *k) {
    const amp_tensor *dy = k->in[0], *x = k->in[1];
    amp_tensor *dx = k->out[0];
    const char *op = amp_attr_str(k->n, "fwd_op", "");
    const int mode = reduce_mode(op);
    if (mode < 0) return amp_kernel_fail(k, AMP_ERR_INVALID_GRAPH, "fwd_op '%s' is not a reduction", op);
    bool red[AMP_MAX_RANK], noop;
    amp_status s = rg_axes(k, op, x->rank, red, &noop);
    if (s) return s;
    const amp_dtype xt = x->dtype, gt = dy->dtype, ot = dx->dtype;
    if (noop) {
        /* the forward copied X: the gradient passes through */
        if (dy->numel != x->numel) return amp_kernel_fail(k, AMP_ERR_SHAPE, "dY does not match X");
        for (int64_t i = 0; i < x->numel; i++) amp_st(ot, dx->data, i, amp_ld(gt, dy->data, i));
        return AMP_OK;
    }
    /* output strides per X dim (0 for reduced dims), reduced dims' lengths and strides */
    int64_t xst[AMP_MAX_RANK], ost[AMP_MAX_RANK], rl[AMP_MAX_RANK], rs[AMP_MAX_RANK], kl[AMP_MAX_RANK],
        ks[AMP_MAX_RANK];
    int nr = 0, nk = 0;
    amp_strides(x->rank, x->dims, xst);
    int64_t nout = 1, count = 1;
    for (int d = x->rank - 1; d >= 0; d--) {
        ost[d] = red[d] ? 0 : nout;
        if (red[d]) count *= x->dims[d];
        else nout *= x->dims[d];
    }
    for (int d = 0; d < x->rank; d++) {
        if (red[d]) {
            rl[nr] = x->dims[d];
            rs[nr++] = xst[d];
        } else {
            kl[nk] = x->dims[d];
            ks[nk++] = xst[d];
        }
    }
    if (dy->numel != nout)
        return amp_kernel_fail(k, AMP_ERR_SHAPE, "dY has %lld elements, the reduction gives %lld",
                               (long long)dy->numel, (long long)nout);
    if (x->numel == 0) return AMP_OK;
    const bool stats = mode >= AMP_RG_L2;
    double *st = k->ws;
    if (stats) {
        if (!st || k->ws_bytes < sizeof(double) * 2 * (size_t)nout)
            return amp_kernel_fail(k, AMP_ERR_INTERNAL, "workspace too small");
        AMP_PAR_FOR(x->numel >= GRAD_PAR_MIN && nout > 1, num_threads(k->threads),
        for (int64_t o = 0; o < nout; o++) {
            int64_t base = 0, q = o;
            for (int d = nk - 1; d >= 0; d--) {
                base += (q % kl[d]) * ks[d];
                q /= kl[d];
            }
            rg_stats(mode, xt, x->data, base, nr, rl, rs, count, &st[2 * o]);
        });
    }
    /* rows of the innermost dim (a scalar X is one row of one) */
    const int rank = x->rank;
    const int64_t len = rank > 0 ? x->dims[rank - 1] : 1, ol = rank > 0 ? ost[rank - 1] : 0;
    const int64_t nrows = x->numel / len;
    const double cnt = (double)count;
    const bool f32 = xt == AMP_F32 && gt == AMP_F32 && ot == AMP_F32;
    AMP_PAR_FOR(x->numel >= GRAD_PAR_MIN && nrows > 1, num_threads(k->threads),
    for (int64_t r = 0; r < nrows; r++) {
        int64_t o0 = 0, q = r;
        for (int d = rank - 2; d >= 0; d--) {
            o0 += (q % x->dims[d]) * ost[d];
            q /= x->dims[d];
        }
        const int64_t e0 = r * len;
        if (f32) {
            RG_ROW_SWITCH(true)
        } else {
            RG_ROW_SWITCH(false)
        }
    });
    return AMP_OK;
}

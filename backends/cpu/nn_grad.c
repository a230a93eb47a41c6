/* CPU kernels of the nn family's gradient ops (ir/ops/nn_grad.def, built by ir/ops/nn_grad.c);
 * those of BatchNormalization, InstanceNormalization and LayerNormalization are in
 * backends/cpu/norm_grad.c.
 *
 * Statistics, dot products and sums accumulate in double, and every element is computed in
 * double then stored with the output dtype's rounding, so one loop serves f32, f16, bf16 and
 * f64. Each loop body is written once and inlined twice inside the parallel loop:
 * with plain float accesses when the big tensors are all f32 (the common training case), and
 * with the per-dtype accessors otherwise. MatMul goes through BLAS; SoftmaxCrossEntropyLoss
 * on f32 [N, C] has its own loop. Per-element formulas live in backends/nn_grad.h. */
#include <cblas.h>
#include <string.h>

#include "backends/cpu/cpu.h"
#include "backends/cpu/gemm.h"
#include "backends/cpu/kernels.h"
#include "backends/nn_grad.h"

/* Below this many elements the OpenMP fork costs more than it saves. */
#define GRAD_PAR_MIN 32768

#define GN_INLINE static inline __attribute__((always_inline))


static int nthreads(const amp_kernel *k) { return k->threads < 1 ? 1 : k->threads; }

/* ---- GemmCGrad ----------------------------------------------------------------------------------
 * dC = beta * dY summed over the dims C broadcast along. dC is seen as [cr, cc] (cr is M or 1,
 * cc is N or 1); threads take (row, block of columns) pairs and walk dY row by row. */

#define GC_BLK 256

GN_INLINE void gc_block(bool f32, const amp_tensor *dy, amp_tensor *dc, double beta, int64_t cr, int64_t cc,
                        int64_t nblk, int64_t t) {
    const int64_t M = dy->dims[0], N = dy->dims[1];
    const int64_t i = t / nblk, j0 = (t % nblk) * GC_BLK, j1 = j0 + GC_BLK < cc ? j0 + GC_BLK : cc;
    const int64_t m0 = cr == 1 ? 0 : i, m1 = cr == 1 ? M : i + 1;
    double acc[GC_BLK];
    for (int64_t j = j0; j < j1; j++) acc[j - j0] = 0.0;
    for (int64_t m = m0; m < m1; m++) {
        if (cc == 1)
            for (int64_t n = 0; n < N; n++) acc[0] += amp_ldf(f32, dy->dtype, dy->data, m * N + n);
        else
            for (int64_t j = j0; j < j1; j++) acc[j - j0] += amp_ldf(f32, dy->dtype, dy->data, m * N + j);
    }
    for (int64_t j = j0; j < j1; j++) amp_st(dc->dtype, dc->data, i * cc + j, beta * acc[j - j0]);
}

amp_status amp_cpu_gemm_c_grad(amp_kernel *k) {
    const amp_tensor *dy = k->in[0], *C = k->in[1];
    amp_tensor *dc = k->out[0];
    const double beta = amp_attr_float(k->n, "beta", 1.0f);
    const int64_t cr = C->rank == 2 ? C->dims[0] : 1, cc = C->rank >= 1 ? C->dims[C->rank - 1] : 1;
    if (dc->numel == 0) return AMP_OK;
    const int64_t nblk = (cc + GC_BLK - 1) / GC_BLK;
    const bool f32 = dy->dtype == AMP_F32;
    const bool big = dy->numel >= GRAD_PAR_MIN && cr * nblk > 1;
#pragma omp parallel for num_threads(k->threads) if (big)
    for (int64_t t = 0; t < cr * nblk; t++) {
        if (f32) gc_block(true, dy, dc, beta, cr, cc, nblk, t);
        else gc_block(false, dy, dc, beta, cr, cc, nblk, t);
    }
    return AMP_OK;
}

/* ---- MatMulGrad ----------------------------------------------------------------------------------
 * dA[batch of A] += dY[b] B[b]^T and dB[batch of B] += A[b]^T dY[b] over the batches b of Y; a
 * 1-D A is a [1, K] row, a 1-D B a [K, 1] column. */

/* Below this many multiply-adds per product, independent batches run on separate threads. */
#define MMG_SMALL ((int64_t)1 << 21)

/* B is one matrix for every batch and A's matrices are stacked without broadcasting: then
 * dA = dY_flat B^T and dB = A_flat^T dY_flat are single products over [nb*M, ...]. */
static bool mmg_flat(const amp_mm_shape *s) {
    int64_t need = s->M * s->K;
    for (int i = s->rb - 1; i >= 0; i--) {
        if (s->ydims[i] == 1) continue;
        if (s->sb[i] != 0 || s->sa[i] != need) return false;
        need *= s->ydims[i];
    }
    return s->nb * s->M < ((int64_t)1 << 31);
}

/* Every batch of Y writes its own slice of the result (the operand is not broadcast). */
static bool mmg_disjoint(const amp_mm_shape *s, int wrt) {
    for (int i = 0; i < s->rb; i++)
        if (s->ydims[i] != 1 && (wrt ? s->sb[i] : s->sa[i]) == 0) return false;
    return true;
}

#define DEFINE_MMG(T, SUF, GEMM, PGEMM)                                                                                \
    static void mmg_##SUF(const amp_kernel *k, const amp_mm_shape *s, int wrt, const T *dy, const T *a, const T *b,      \
                          T *out, int64_t nout) {                                                                      \
        const int64_t M = s->M, N = s->N, K = s->K;                                                                    \
        const int thr = nthreads(k);                                                                                   \
        if (M == 0 || N == 0 || K == 0 || s->nb == 0) {                                                                \
            memset(out, 0, sizeof(T) * (size_t)nout);                                                                  \
            return;                                                                                                    \
        }                                                                                                              \
        if (mmg_flat(s)) {                                                                                             \
            if (wrt == 0) PGEMM(thr, 0, 1, s->nb * M, K, N, (T)1, dy, N, b, N, (T)0, out, K);                          \
            else PGEMM(thr, 1, 0, K, N, s->nb * M, (T)1, a, K, dy, N, (T)0, out, N);                                   \
            return;                                                                                                    \
        }                                                                                                              \
        memset(out, 0, sizeof(T) * (size_t)nout);                                                                      \
        int par = thr > 1 && s->nb > 1 && M * N * K < MMG_SMALL && mmg_disjoint(s, wrt);                               \
        if (par) amp_cpu_blas_threads(1);                                                                              \
        _Pragma("omp parallel for num_threads(thr) schedule(static) if (par)") for (int64_t i = 0; i < s->nb; i++) {   \
            int64_t oa, ob;                                                                                            \
            amp_mm_offsets(s, i, &oa, &ob);                                                                               \
            if (par) {                                                                                                 \
                if (wrt == 0)                                                                                          \
                    GEMM(CblasRowMajor, CblasNoTrans, CblasTrans, (int)M, (int)K, (int)N, (T)1, dy + i * M * N,        \
                         (int)N, b + ob, (int)N, (T)1, out + oa, (int)K);                                              \
                else                                                                                                   \
                    GEMM(CblasRowMajor, CblasTrans, CblasNoTrans, (int)K, (int)N, (int)M, (T)1, a + oa, (int)K,        \
                         dy + i * M * N, (int)N, (T)1, out + ob, (int)N);                                              \
            } else if (wrt == 0) {                                                                                     \
                PGEMM(thr, 0, 1, M, K, N, (T)1, dy + i * M * N, N, b + ob, N, (T)1, out + oa, K);                      \
            } else {                                                                                                   \
                PGEMM(thr, 1, 0, K, N, M, (T)1, a + oa, K, dy + i * M * N, N, (T)1, out + ob, N);                      \
            }                                                                                                          \
        }                                                                                                              \
    }

DEFINE_MMG(float, f32, cblas_sgemm, amp_cpu_sgemm)
DEFINE_MMG(double, f64, cblas_dgemm, amp_cpu_dgemm)

/* MatMulGrad, 16-bit: dY, the other operand and the result in f32. */
amp_status amp_cpu_ws_matmul_grad(const amp_kernel *k, size_t *bytes) {
    const amp_tensor *dy = k->in[0], *A = k->in[1], *B = k->in[2], *out = k->out[0];
    *bytes = 0;
    if (A->dtype != AMP_F16 && A->dtype != AMP_BF16) return AMP_OK;
    const amp_tensor *other = amp_attr_int(k->n, "wrt", 0) != 0 ? A : B;
    int64_t n;
    if (__builtin_add_overflow(dy->numel, other->numel, &n) || __builtin_add_overflow(n, out->numel, &n))
        return amp_kernel_fail(k, AMP_ERR_OVERFLOW, "workspace size overflows");
    return amp_cpu_ws_elems(k, n, sizeof(float), bytes);
}

amp_status amp_cpu_matmul_grad(amp_kernel *k) {
    const amp_tensor *dy = k->in[0], *A = k->in[1], *B = k->in[2];
    amp_tensor *out = k->out[0];
    const int wrt = amp_attr_int(k->n, "wrt", 0) != 0;
    amp_mm_shape s;
    amp_mm_shape_init(A, B, dy, &s);
    if (out->numel == 0) return AMP_OK;
    switch (A->dtype) {
    case AMP_F32: mmg_f32(k, &s, wrt, dy->data, A->data, B->data, out->data, out->numel); break;
    case AMP_F64: mmg_f64(k, &s, wrt, dy->data, A->data, B->data, out->data, out->numel); break;
    case AMP_F16:
    case AMP_BF16: {
        const amp_tensor *other = wrt ? A : B;
        size_t need = sizeof(float) * (size_t)(dy->numel + other->numel + out->numel);
        if (!k->ws || k->ws_bytes < need) return amp_kernel_fail(k, AMP_ERR_INTERNAL, "workspace too small");
        float *g = k->ws, *o = g + dy->numel, *r = o + other->numel;
        amp_widen16(dy->dtype, dy->data, g, dy->numel);
        amp_widen16(other->dtype, other->data, o, other->numel);
        mmg_f32(k, &s, wrt, g, wrt ? o : NULL, wrt ? NULL : o, r, out->numel);
        amp_narrow16(out->dtype, r, out->data, out->numel);
        break;
    }
    default: return amp_kernel_fail(k, AMP_ERR_UNSUPPORTED, "dtype %s is not supported", amp_dtype_name(A->dtype));
    }
    return AMP_OK;
}

/* ---- SoftmaxGrad, LogSoftmaxGrad ---------------------------------------------------------------------
 * Rows as the forward sees them: [outer, len, inner] reduced over len; from opset 13 len is the
 * dim at `axis`, before that the product of dims[axis:] (the 2-D coercion). */

GN_INLINE void softmax_row(bool f32, bool lg, const amp_tensor *dy, const amp_tensor *y, amp_tensor *dx, int64_t base,
                           int64_t len, int64_t inner) {
    const amp_dtype yt = y->dtype, gt = dy->dtype, ot = dx->dtype;
    double s = 0;
    for (int64_t j = 0; j < len; j++) {
        const int64_t at = base + j * inner;
        const double g = amp_ldf(f32, gt, dy->data, at);
        s += lg ? g : g * amp_ldf(f32, yt, y->data, at);
    }
    for (int64_t j = 0; j < len; j++) {
        const int64_t at = base + j * inner;
        const double yv = amp_ldf(f32, yt, y->data, at), g = amp_ldf(f32, gt, dy->data, at);
        amp_stf(f32, ot, dx->data, at, lg ? amp_log_softmax_dx_d(yv, g, s) : amp_softmax_dx_d(yv, g, s));
    }
}

amp_status amp_cpu_softmax_grad(amp_kernel *k) {
    const amp_tensor *dy = k->in[0], *y = k->in[1];
    amp_tensor *dx = k->out[0];
    const int64_t opset = amp_attr_int(k->n, "fwd_opset", 13);
    const int rank = y->rank;
    int64_t axis = amp_attr_int(k->n, "axis", opset >= 13 ? -1 : 1);
    if (axis < 0) axis += rank;
    if (axis < 0 || axis > rank || (opset >= 13 && axis == rank))
        return amp_kernel_fail(k, AMP_ERR_INVALID_GRAPH, "axis out of range");
    int64_t outer = 1, len = 1, inner = 1;
    for (int d = 0; d < rank; d++) {
        if (d < axis) outer *= y->dims[d];
        else if (d == axis || opset < 13) len *= y->dims[d];
        else inner *= y->dims[d];
    }
    const bool lg = k->n->op == AMP_OP_LOG_SOFTMAX_GRAD;
    const bool f32 = y->dtype == AMP_F32 && dy->dtype == AMP_F32 && dx->dtype == AMP_F32;
    const bool big = y->numel >= GRAD_PAR_MIN;
#pragma omp parallel for num_threads(k->threads) if (big)
    for (int64_t row = 0; row < outer * inner; row++) {
        const int64_t base = (row / inner) * len * inner + row % inner;
        if (f32) softmax_row(true, lg, dy, y, dx, base, len, inner);
        else softmax_row(false, lg, dy, y, dx, base, len, inner);
    }
    return AMP_OK;
}

/* ---- the loss gradients ------------------------------------------------------------------------------
 * Both see X as [N, C, D] (D = d1*d2*..., class stride D) and the target as [N, D], like the
 * forward kernels (backends/cpu/nn_loss.c). The incoming gradient per position: dY[r] for
 * reduction=none, dY for sum, dY / (sum of the weights of the non-ignored targets) for mean. */

enum { RED_NONE, RED_SUM, RED_MEAN };

typedef struct lossg {
    const amp_tensor *dy, *x, *t, *w;
    int64_t n, c, d;
    bool has_ii;
    int64_t ii;
    int red;
    double scale; /* dY for sum, dY / wsum for mean */
} lossg;

/* Read the attributes, check every target, and work out the scale of the reductions. */
static amp_status lossg_init(amp_kernel *k, lossg *a) {
    const amp_node *node = k->n;
    a->dy = k->in[0];
    a->x = k->in[1];
    a->t = k->in[2];
    a->w = in_opt(k, 3);
    const amp_attr *ii = amp_node_attr_of(node, "ignore_index", AMP_ATTR_INT);
    a->has_ii = ii && ii->kind == AMP_ATTR_INT;
    a->ii = a->has_ii ? ii->i : 0;
    const char *red = amp_attr_str(node, "reduction", "mean");
    a->red = strcmp(red, "none") == 0 ? RED_NONE : strcmp(red, "sum") == 0 ? RED_SUM : RED_MEAN;
    a->n = a->x->dims[0];
    a->c = a->x->dims[1];
    a->d = 1;
    for (int i = 2; i < a->x->rank; i++) a->d *= a->x->dims[i];
    const int64_t rows = a->n * a->d;
    double wsum = 0;
    int64_t bad = -1;
    for (int64_t r = 0; r < rows; r++) {
        const int64_t tg = amp_ldi(a->t->dtype, a->t->data, r);
        if (a->has_ii && tg == a->ii) continue;
        if (tg < 0 || tg >= a->c) {
            bad = r;
            break;
        }
        wsum += a->w ? amp_ld(a->w->dtype, a->w->data, tg) : 1.0;
    }
    if (bad >= 0)
        return amp_kernel_fail(k, AMP_ERR_INVALID_ARG, "target %lld at position %lld is outside [0, %lld)",
                               (long long)amp_ldi(a->t->dtype, a->t->data, bad), (long long)bad, (long long)a->c);
    a->scale = 0;
    if (a->dy && a->red != RED_NONE) {
        a->scale = amp_ld(a->dy->dtype, a->dy->data, 0);
        /* all ignored gives 0/0 = NaN, as the forward's loss */
        if (a->red == RED_MEAN) a->scale /= wsum;
    }
    return AMP_OK;
}

/* The factor of position r: weight of its target times the incoming gradient; 0 when ignored. */
static inline double lossg_coef(const lossg *a, int64_t r, int64_t *tg) {
    *tg = amp_ldi(a->t->dtype, a->t->data, r);
    if (!a->dy || (a->has_ii && *tg == a->ii)) {
        *tg = -1;
        return 0.0;
    }
    const double w = a->w ? amp_ld(a->w->dtype, a->w->data, *tg) : 1.0;
    return w * (a->red == RED_NONE ? amp_ld(a->dy->dtype, a->dy->data, r) : a->scale);
}

/* NLL: dX[n, t, d] = -w[t] g, every other element 0 (all-zero bits are 0.0 in every float dtype). */
amp_status amp_cpu_nll_loss_grad(amp_kernel *k) {
    lossg a;
    amp_status s = lossg_init(k, &a);
    if (s) return s;
    amp_tensor *dx = k->out[0];
    if (dx->nbytes) memset(dx->data, 0, dx->nbytes);
    const int64_t rows = a.n * a.d;
    const bool big = dx->numel >= GRAD_PAR_MIN;
#pragma omp parallel for num_threads(k->threads) if (big)
    for (int64_t r = 0; r < rows; r++) {
        int64_t tg;
        const double coef = lossg_coef(&a, r, &tg);
        if (tg >= 0) amp_st(dx->dtype, dx->data, (r / a.d) * a.c * a.d + tg * a.d + r % a.d, -coef);
    }
    return AMP_OK;
}

/* SCE on f32 [N, C] without a log_prob gradient, the training case: one exp per element,
 * stored in dX on the way and scaled in place. */
static void sce_rows_f32(const lossg *a, float *dx, int64_t r0, int64_t r1) {
    const float *xs = a->x->data;
    const int64_t C = a->c;
    for (int64_t r = r0; r < r1; r++) {
        const float *xr = xs + r * C;
        float *dr = dx + r * C;
        int64_t tg;
        const double coef = lossg_coef(a, r, &tg);
        if (coef == 0.0 && tg < 0) {
            memset(dr, 0, sizeof(float) * (size_t)C);
            continue;
        }
        float mx = -INFINITY;
        for (int64_t c = 0; c < C; c++)
            if (xr[c] > mx || isnan(xr[c])) mx = xr[c];
        /* rest: the classes other than the target, summed apart so that p_t - 1 keeps its digits */
        double sum = 0, rest = 0;
        for (int64_t c = 0; c < C; c++) {
            const float e = expf(xr[c] - mx);
            dr[c] = e;
            sum += e;
            rest += c == tg ? 0.0f : e;
        }
        const float f = (float)(coef / sum);
        for (int64_t c = 0; c < C; c++) dr[c] *= f;
        if (tg >= 0) dr[tg] = (float)amp_sce_target_dx_d(rest / sum, coef, 0.0, 0.0);
    }
}

amp_status amp_cpu_sce_loss_grad(amp_kernel *k) {
    lossg a;
    amp_status s = lossg_init(k, &a);
    if (s) return s;
    const amp_tensor *dl = in_opt(k, 4), *x = a.x;
    amp_tensor *dx = k->out[0];
    const int64_t rows = a.n * a.d, C = a.c, D = a.d;
    if (rows == 0 || C == 0) return AMP_OK;
    const bool big = dx->numel >= GRAD_PAR_MIN;
    if (x->dtype == AMP_F32 && dx->dtype == AMP_F32 && D == 1 && !dl) {
        const int nt = big ? nthreads(k) : 1;
        const int64_t per = (rows + nt - 1) / nt;
#pragma omp parallel for num_threads(nt) if (nt > 1)
        for (int t = 0; t < nt; t++) {
            const int64_t r0 = t * per, r1 = r0 + per < rows ? r0 + per : rows;
            if (r0 < r1) sce_rows_f32(&a, dx->data, r0, r1);
        }
        return AMP_OK;
    }
    const amp_dtype xt = x->dtype, ot = dx->dtype;
#pragma omp parallel for num_threads(k->threads) if (big)
    for (int64_t r = 0; r < rows; r++) {
        const int64_t base = (r / D) * C * D + r % D;
        int64_t tg;
        const double coef = lossg_coef(&a, r, &tg);
        double mx = -INFINITY;
        for (int64_t c = 0; c < C; c++) {
            const double v = amp_ld(xt, x->data, base + c * D);
            if (v > mx || isnan(v)) mx = v;
        }
        double sum = 0, rest = 0, sdl = 0;
        for (int64_t c = 0; c < C; c++) {
            const double e = exp(amp_ld(xt, x->data, base + c * D) - mx);
            sum += e;
            rest += c == tg ? 0.0 : e;
            if (dl) sdl += amp_ld(dl->dtype, dl->data, base + c * D);
        }
        const double lse = mx + log(sum);
        for (int64_t c = 0; c < C; c++) {
            const int64_t at = base + c * D;
            const double p = exp(amp_ld(xt, x->data, at) - lse);
            const double g = dl ? amp_ld(dl->dtype, dl->data, at) : 0.0;
            double v;
            if (c == tg) v = amp_sce_target_dx_d(rest / sum, coef, g, p * sdl);
            else v = amp_sce_dx_d(p, coef, g, p * sdl);
            amp_st(ot, dx->data, at, v);
        }
    }
    return AMP_OK;
}

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
GN_INLINE void rg_row(bool f32, int mode, const amp_tensor *dy, const amp_tensor *x, amp_tensor *dx, const double *st,
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
#pragma omp parallel for num_threads(k->threads) if (x->numel >= GRAD_PAR_MIN && nout > 1)
        for (int64_t o = 0; o < nout; o++) {
            int64_t base = 0, q = o;
            for (int d = nk - 1; d >= 0; d--) {
                base += (q % kl[d]) * ks[d];
                q /= kl[d];
            }
            rg_stats(mode, xt, x->data, base, nr, rl, rs, count, &st[2 * o]);
        }
    }
    /* rows of the innermost dim (a scalar X is one row of one) */
    const int rank = x->rank;
    const int64_t len = rank > 0 ? x->dims[rank - 1] : 1, ol = rank > 0 ? ost[rank - 1] : 0;
    const int64_t nrows = x->numel / len;
    const double cnt = (double)count;
    const bool f32 = xt == AMP_F32 && gt == AMP_F32 && ot == AMP_F32;
#pragma omp parallel for num_threads(k->threads) if (x->numel >= GRAD_PAR_MIN && nrows > 1)
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
    }
    return AMP_OK;
}

/* CPU kernels of the nn family's gradient ops (ir/ops/nn_grad.def, built by ir/ops/nn_grad.c).
 *
 * Statistics, dot products and sums accumulate in double, and every element is computed in
 * double then stored with the output dtype's rounding, so one loop serves f32, f16, bf16 and
 * f64 (mixed dtypes too: autocast leaves normalisation parameters in f32 beside 16-bit
 * activations). Each loop body is written once and inlined twice inside the parallel loop:
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

/* Element access, resolved at compile time where f32 is a constant. */
GN_INLINE double ldf(bool f32, amp_dtype t, const void *p, int64_t i) {
    return f32 ? (double)((const float *)p)[i] : amp_ld(t, p, i);
}
GN_INLINE void stf(bool f32, amp_dtype t, void *p, int64_t i, double v) {
    if (f32) ((float *)p)[i] = (float)v;
    else amp_st(t, p, i, v);
}

static int nthreads(const amp_kernel *k) { return k->threads < 1 ? 1 : k->threads; }
static const amp_tensor *in_opt(const amp_kernel *k, int i) { return i < k->nin ? k->in[i] : NULL; }
static amp_tensor *out_opt(const amp_kernel *k, int i) { return i < k->nout ? k->out[i] : NULL; }

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
            for (int64_t n = 0; n < N; n++) acc[0] += ldf(f32, dy->dtype, dy->data, m * N + n);
        else
            for (int64_t j = j0; j < j1; j++) acc[j - j0] += ldf(f32, dy->dtype, dy->data, m * N + j);
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

/* ---- BatchNormalizationGrad -----------------------------------------------------------------------
 * Per channel c over its n*sp elements. Training mode normalises with the batch statistics, so
 * dX carries their gradient (the amp_norm_dx formula), and the running and saved statistics
 * outputs, when their gradients flow, add theirs:
 *   running_mean = mean_in*mom + mean*(1-mom), running_var = var_in*mom + var*(1-mom),
 *   saved_mean = mean, saved_inv_std = inv.
 * Inference mode is an affine map per channel: y = (x - mean_in) * a + B, a = scale/sqrt(var_in+eps),
 * with gradients for every input. */

typedef struct bn_args {
    const amp_tensor *dy, *x, *sc, *mn, *vr, *grm, *grv, *gsm, *gsi;
    amp_tensor *dx, *dsc, *db, *dmn, *dvr;
    double eps, mom;
    bool training;
    int64_t n, ch, sp;
} bn_args;

GN_INLINE void bn_channel(bool f32, const bn_args *a, int64_t c) {
    const amp_tensor *dy = a->dy, *x = a->x;
    const amp_dtype xt = x->dtype, gt = dy ? dy->dtype : xt, ot = a->dx->dtype;
    const int64_t n = a->n, ch = a->ch, sp = a->sp;
    const double cnt = (double)(n * sp);
    const double gamma = amp_ld(a->sc->dtype, a->sc->data, c);
    double mean, inv;
    if (a->training) {
        double sum = 0, sq = 0;
        for (int64_t i = 0; i < n; i++)
            for (int64_t s = 0; s < sp; s++) sum += ldf(f32, xt, x->data, (i * ch + c) * sp + s);
        mean = cnt > 0 ? sum / cnt : 0.0;
        for (int64_t i = 0; i < n; i++)
            for (int64_t s = 0; s < sp; s++) {
                double dv = ldf(f32, xt, x->data, (i * ch + c) * sp + s) - mean;
                sq += dv * dv;
            }
        inv = 1.0 / sqrt((cnt > 0 ? sq / cnt : 0.0) + a->eps);
    } else {
        mean = amp_ld(a->mn->dtype, a->mn->data, c);
        inv = 1.0 / sqrt(amp_ld(a->vr->dtype, a->vr->data, c) + a->eps);
    }
    /* sums of dy and dy * xhat */
    double sdy = 0, sdyx = 0;
    if (dy) {
        for (int64_t i = 0; i < n; i++)
            for (int64_t s = 0; s < sp; s++) {
                const int64_t at = (i * ch + c) * sp + s;
                const double g = ldf(f32, gt, dy->data, at);
                sdy += g;
                sdyx += g * (ldf(f32, xt, x->data, at) - mean);
            }
        sdyx *= inv;
    }
    const double mom = a->mom;
    if (a->training) {
        const double rm = a->grm ? amp_ld(a->grm->dtype, a->grm->data, c) : 0.0;
        const double rv = a->grv ? amp_ld(a->grv->dtype, a->grv->data, c) : 0.0;
        const double sm = a->gsm ? amp_ld(a->gsm->dtype, a->gsm->data, c) : 0.0;
        const double si = a->gsi ? amp_ld(a->gsi->dtype, a->gsi->data, c) : 0.0;
        /* the statistics outputs in terms of the group's mean and inv (var = inv^-2 - eps):
         * d var = -2 inv^-3 d inv, so a gradient rv of var is one of -2 rv / inv^3 of inv */
        const double gm = rm * (1 - mom) + sm;
        const double gi = si - 2.0 * rv * (1 - mom) / (inv * inv * inv);
        const double mg = cnt > 0 ? gamma * sdy / cnt : 0.0, mgx = cnt > 0 ? gamma * sdyx / cnt : 0.0;
        const amp_norm_coef kc = amp_norm_coef_d(inv, mg, mgx, gm, gi, cnt);
        for (int64_t i = 0; i < n; i++)
            for (int64_t s = 0; s < sp; s++) {
                const int64_t at = (i * ch + c) * sp + s;
                const double xhat = (ldf(f32, xt, x->data, at) - mean) * inv;
                const double g = dy ? gamma * ldf(f32, gt, dy->data, at) : 0.0;
                stf(f32, ot, a->dx->data, at, amp_norm_dx_d(kc, g, xhat));
            }
        if (a->dmn) amp_st(a->dmn->dtype, a->dmn->data, c, rm * mom);
        if (a->dvr) amp_st(a->dvr->dtype, a->dvr->data, c, rv * mom);
    } else {
        const double sa = gamma * inv;
        for (int64_t i = 0; i < n; i++)
            for (int64_t s = 0; s < sp; s++) {
                const int64_t at = (i * ch + c) * sp + s;
                stf(f32, ot, a->dx->data, at, dy ? sa * ldf(f32, gt, dy->data, at) : 0.0);
            }
        if (a->dmn) amp_st(a->dmn->dtype, a->dmn->data, c, -sa * sdy);
        /* d a / d var_in = -gamma inv^3 / 2, and sum dy (x - mean_in) = sdyx / inv */
        if (a->dvr) amp_st(a->dvr->dtype, a->dvr->data, c, -0.5 * gamma * inv * inv * sdyx);
    }
    if (a->dsc) amp_st(a->dsc->dtype, a->dsc->data, c, sdyx);
    if (a->db) amp_st(a->db->dtype, a->db->data, c, sdy);
}

amp_status amp_cpu_batch_norm_grad(amp_kernel *k) {
    bn_args a = {.dy = k->in[0], .x = k->in[1], .sc = k->in[2], .mn = k->in[3], .vr = k->in[4],
                 .grm = in_opt(k, 5), .grv = in_opt(k, 6), .gsm = in_opt(k, 7), .gsi = in_opt(k, 8),
                 .dx = k->out[0], .dsc = out_opt(k, 1), .db = out_opt(k, 2), .dmn = out_opt(k, 3),
                 .dvr = out_opt(k, 4)};
    a.eps = amp_attr_float(k->n, "epsilon", 1e-5f);
    a.mom = amp_attr_float(k->n, "momentum", 0.9f);
    a.training = amp_attr_int(k->n, "training", 0) != 0;
    const amp_tensor *x = a.x;
    a.n = x->dims[0];
    a.sp = 1;
    if (a.sc->rank > 1) {
        a.ch = a.sc->numel;
    } else {
        a.ch = x->rank > 1 ? x->dims[1] : 1;
        for (int d = 2; d < x->rank; d++) a.sp *= x->dims[d];
    }
    const bool f32 = x->dtype == AMP_F32 && a.dx->dtype == AMP_F32 && (!a.dy || a.dy->dtype == AMP_F32);
    const bool big = x->numel >= GRAD_PAR_MIN;
#pragma omp parallel for num_threads(k->threads) if (big)
    for (int64_t c = 0; c < a.ch; c++) {
        if (f32) bn_channel(true, &a, c);
        else bn_channel(false, &a, c);
    }
    return AMP_OK;
}

/* ---- InstanceNormalizationGrad ---------------------------------------------------------------------
 * Statistics per (n, c) row of sp elements; threads take channels so that dscale and dB (sums
 * over n) stay in one thread. */

GN_INLINE void in_channel(bool f32, const amp_kernel *k, double eps, int64_t c) {
    const amp_tensor *dy = k->in[0], *x = k->in[1], *sc = k->in[2];
    amp_tensor *dx = k->out[0], *dsc = out_opt(k, 1), *db = out_opt(k, 2);
    const int64_t n = x->dims[0], ch = x->dims[1];
    int64_t sp = 1;
    for (int d = 2; d < x->rank; d++) sp *= x->dims[d];
    const amp_dtype xt = x->dtype, gt = dy->dtype, ot = dx->dtype;
    const double cnt = (double)sp, gamma = amp_ld(sc->dtype, sc->data, c);
    double tdy = 0, tdyx = 0;
    for (int64_t i = 0; i < n; i++) {
        const int64_t base = (i * ch + c) * sp;
        double sum = 0, sq = 0;
        for (int64_t s = 0; s < sp; s++) sum += ldf(f32, xt, x->data, base + s);
        const double mean = sp > 0 ? sum / cnt : 0.0;
        for (int64_t s = 0; s < sp; s++) {
            double dv = ldf(f32, xt, x->data, base + s) - mean;
            sq += dv * dv;
        }
        const double inv = 1.0 / sqrt((sp > 0 ? sq / cnt : 0.0) + eps);
        double sdy = 0, sdyx = 0;
        for (int64_t s = 0; s < sp; s++) {
            const double g = ldf(f32, gt, dy->data, base + s);
            sdy += g;
            sdyx += g * (ldf(f32, xt, x->data, base + s) - mean);
        }
        sdyx *= inv;
        const double mg = sp > 0 ? gamma * sdy / cnt : 0.0, mgx = sp > 0 ? gamma * sdyx / cnt : 0.0;
        const amp_norm_coef kc = amp_norm_coef_d(inv, mg, mgx, 0.0, 0.0, cnt);
        for (int64_t s = 0; s < sp; s++) {
            const double xhat = (ldf(f32, xt, x->data, base + s) - mean) * inv;
            stf(f32, ot, dx->data, base + s, amp_norm_dx_d(kc, gamma * ldf(f32, gt, dy->data, base + s), xhat));
        }
        tdy += sdy;
        tdyx += sdyx;
    }
    if (dsc) amp_st(dsc->dtype, dsc->data, c, tdyx);
    if (db) amp_st(db->dtype, db->data, c, tdy);
}

amp_status amp_cpu_instance_norm_grad(amp_kernel *k) {
    const amp_tensor *dy = k->in[0], *x = k->in[1];
    const double eps = amp_attr_float(k->n, "epsilon", 1e-5f);
    const bool f32 = x->dtype == AMP_F32 && dy->dtype == AMP_F32 && k->out[0]->dtype == AMP_F32;
    const bool big = x->numel >= GRAD_PAR_MIN;
#pragma omp parallel for num_threads(k->threads) if (big)
    for (int64_t c = 0; c < x->dims[1]; c++) {
        if (f32) in_channel(true, k, eps, c);
        else in_channel(false, k, eps, c);
    }
    return AMP_OK;
}

/* ---- LayerNormalizationGrad ------------------------------------------------------------------------
 * Rows of `cols` elements (the dims from axis on). dX per row in one pass over threads; then
 * dScale and dB, sums over rows: by column blocks when the parameter spans exactly the
 * normalised dims, otherwise (any other one-way broadcast) serially into the workspace. */

/* Where a parameter sits for an element of X: its stride along each X dim (0 when broadcast). */
typedef struct lparam {
    const amp_tensor *t;
    bool column; /* the parameter is indexed by the column alone */
    int64_t st[AMP_MAX_RANK];
} lparam;

static void lparam_init(lparam *p, const amp_tensor *t, const amp_tensor *x, int axis) {
    p->t = t;
    if (!t) return;
    int off = x->rank - t->rank;
    int64_t pst[AMP_MAX_RANK];
    amp_strides(t->rank, t->dims, pst);
    p->column = true;
    for (int d = 0; d < x->rank; d++) {
        int64_t pd = d >= off ? t->dims[d - off] : 1;
        p->st[d] = pd == 1 ? 0 : pst[d - off];
        if (d < axis ? pd != 1 : pd != x->dims[d]) p->column = false;
    }
}

static inline int64_t lparam_at(const lparam *p, const amp_tensor *x, int64_t flat, int64_t col) {
    if (p->column) return col;
    int64_t at = 0;
    for (int d = x->rank - 1; d >= 0; d--) {
        at += (flat % x->dims[d]) * p->st[d];
        flat /= x->dims[d];
    }
    return at;
}

#define LN_BLK 256

typedef struct ln_args {
    const amp_tensor *dy, *x, *smean, *sinv, *gmean, *ginv;
    amp_tensor *dx;
    lparam ps;
    double eps;
    int64_t rows, cols;
    double *stats; /* [rows][2]: mean, inv */
} ln_args;

/* The sums of one row: sum(g) and sum(g * (x - mean)) with g = dy * gamma; col_f32: gamma is
 * an f32 vector indexed by the column. */
GN_INLINE void ln_row_sums(bool f32, bool col_f32, const ln_args *a, int64_t base, double mean, double *sg,
                           double *sgx) {
    const amp_tensor *dy = a->dy, *x = a->x, *sc = a->ps.t;
    const float *gp = sc->data;
    double s0 = 0, s1 = 0;
    for (int64_t j = 0; j < a->cols; j++) {
        const double gam = col_f32 ? (double)gp[j] : amp_ld(sc->dtype, sc->data, lparam_at(&a->ps, x, base + j, j));
        const double g = ldf(f32, dy->dtype, dy->data, base + j) * gam;
        s0 += g;
        s1 += g * (ldf(f32, x->dtype, x->data, base + j) - mean);
    }
    *sg = s0;
    *sgx = s1;
}

GN_INLINE void ln_row_write(bool f32, bool col_f32, const ln_args *a, int64_t base, double mean, amp_norm_coef kc) {
    const amp_tensor *dy = a->dy, *x = a->x, *sc = a->ps.t;
    const float *gp = sc->data;
    for (int64_t j = 0; j < a->cols; j++) {
        const double xhat = (ldf(f32, x->dtype, x->data, base + j) - mean) * kc.inv;
        double g = 0.0;
        if (dy) {
            const double gam = col_f32 ? (double)gp[j] : amp_ld(sc->dtype, sc->data, lparam_at(&a->ps, x, base + j, j));
            g = ldf(f32, dy->dtype, dy->data, base + j) * gam;
        }
        stf(f32, a->dx->dtype, a->dx->data, base + j, amp_norm_dx_d(kc, g, xhat));
    }
}

GN_INLINE void ln_row(bool f32, const ln_args *a, int64_t r) {
    const amp_tensor *dy = a->dy, *x = a->x;
    const int64_t cols = a->cols, base = r * cols;
    const bool col_f32 = f32 && a->ps.t->dtype == AMP_F32 && a->ps.column;
    double mean, inv;
    if (a->smean && a->sinv) {
        mean = amp_ld(a->smean->dtype, a->smean->data, r);
        inv = amp_ld(a->sinv->dtype, a->sinv->data, r);
    } else {
        double sum = 0, sq = 0;
        for (int64_t j = 0; j < cols; j++) sum += ldf(f32, x->dtype, x->data, base + j);
        mean = sum / (double)cols;
        for (int64_t j = 0; j < cols; j++) {
            double dv = ldf(f32, x->dtype, x->data, base + j) - mean;
            sq += dv * dv;
        }
        inv = 1.0 / sqrt(sq / (double)cols + a->eps);
    }
    a->stats[2 * r] = mean;
    a->stats[2 * r + 1] = inv;
    double sg = 0, sgx = 0;
    if (dy) {
        if (col_f32) ln_row_sums(f32, true, a, base, mean, &sg, &sgx);
        else ln_row_sums(f32, false, a, base, mean, &sg, &sgx);
        sgx *= inv;
    }
    const double gm = a->gmean ? amp_ld(a->gmean->dtype, a->gmean->data, r) : 0.0;
    const double gi = a->ginv ? amp_ld(a->ginv->dtype, a->ginv->data, r) : 0.0;
    const amp_norm_coef kc = amp_norm_coef_d(inv, sg / (double)cols, sgx / (double)cols, gm, gi, (double)cols);
    if (col_f32) ln_row_write(f32, true, a, base, mean, kc);
    else ln_row_write(f32, false, a, base, mean, kc);
}

/* One block of columns of the per-column parameters' gradients, both in one sweep: sums over
 * rows of dy * xhat (Scale, when ds) and of dy (B, when db). */
GN_INLINE void ln_param_block(bool f32, const ln_args *a, amp_tensor *ds, amp_tensor *db, int64_t b) {
    const amp_tensor *dy = a->dy, *x = a->x;
    const int64_t cols = a->cols, j0 = b * LN_BLK, j1 = j0 + LN_BLK < cols ? j0 + LN_BLK : cols;
    double s[LN_BLK], t[LN_BLK];
    for (int64_t j = j0; j < j1; j++) s[j - j0] = t[j - j0] = 0.0;
    for (int64_t r = 0; r < a->rows; r++) {
        const double mean = a->stats[2 * r], inv = a->stats[2 * r + 1];
        for (int64_t j = j0; j < j1; j++) {
            const int64_t at = r * cols + j;
            const double g = ldf(f32, dy->dtype, dy->data, at);
            s[j - j0] += g * (ldf(f32, x->dtype, x->data, at) - mean) * inv;
            t[j - j0] += g;
        }
    }
    for (int64_t j = j0; j < j1; j++) {
        if (ds) amp_st(ds->dtype, ds->data, j, s[j - j0]);
        if (db) amp_st(db->dtype, db->data, j, t[j - j0]);
    }
}

/* d(param) of a parameter broadcast any other way: sum over X of dy * (xhat for Scale, 1 for
 * B), accumulated serially into the workspace at the parameter's index. */
static void ln_param_general(const ln_args *a, const lparam *p, amp_tensor *out, bool scale, double *acc) {
    const amp_tensor *dy = a->dy, *x = a->x;
    for (int64_t j = 0; j < out->numel; j++) acc[j] = 0.0;
    for (int64_t r = 0; dy && r < a->rows; r++) {
        const double mean = a->stats[2 * r], inv = a->stats[2 * r + 1];
        for (int64_t j = 0; j < a->cols; j++) {
            const int64_t at = r * a->cols + j;
            const double g = amp_ld(dy->dtype, dy->data, at);
            acc[lparam_at(p, x, at, j)] += scale ? g * (amp_ld(x->dtype, x->data, at) - mean) * inv : g;
        }
    }
    for (int64_t j = 0; j < out->numel; j++) amp_st(out->dtype, out->data, j, acc[j]);
}

static void ln_param_grads(const amp_kernel *k, const ln_args *a, const lparam *pb, amp_tensor *ds, amp_tensor *db,
                           double *acc) {
    const amp_tensor *dy = a->dy, *x = a->x;
    amp_tensor *cs = a->ps.column && dy ? ds : NULL, *cb = db && pb->column && dy ? db : NULL;
    if (cs || cb) {
        const int64_t nblk = (a->cols + LN_BLK - 1) / LN_BLK;
        const bool f32 = x->dtype == AMP_F32 && dy->dtype == AMP_F32;
        const bool big = x->numel >= GRAD_PAR_MIN && nblk > 1;
#pragma omp parallel for num_threads(k->threads) if (big)
        for (int64_t b = 0; b < nblk; b++) {
            if (f32) ln_param_block(true, a, cs, cb, b);
            else ln_param_block(false, a, cs, cb, b);
        }
    }
    if (!cs) ln_param_general(a, &a->ps, ds, true, acc);
    if (db && !cb) ln_param_general(a, pb, db, false, acc + a->ps.t->numel);
}

/* LayerNormalizationGrad: per row the mean and 1/stddev, then accumulators for a broadcast Scale
 * and B, all in double. */
amp_status amp_cpu_ws_layer_norm_grad(const amp_kernel *k, size_t *bytes) {
    const amp_tensor *x = k->in[1], *sc = k->in[2], *bi = k->nin > 3 ? k->in[3] : NULL;
    int64_t axis = amp_attr_int(k->n, "axis", -1);
    if (axis < 0) axis += x->rank;
    if (axis < 0 || axis >= x->rank) return amp_kernel_fail(k, AMP_ERR_INVALID_GRAPH, "axis out of range");
    int64_t rows = 1;
    for (int d = 0; d < axis; d++) rows *= x->dims[d];
    return amp_cpu_ws_elems(k, 2 * rows + sc->numel + (bi ? bi->numel : 0), sizeof(double), bytes);
}

amp_status amp_cpu_layer_norm_grad(amp_kernel *k) {
    ln_args a = {.dy = k->in[0], .x = k->in[1], .smean = in_opt(k, 4), .sinv = in_opt(k, 5), .gmean = in_opt(k, 6),
                 .ginv = in_opt(k, 7), .dx = k->out[0]};
    const amp_tensor *x = a.x, *sc = k->in[2], *bi = in_opt(k, 3);
    amp_tensor *db = out_opt(k, 2);
    a.eps = amp_attr_float(k->n, "epsilon", 1e-5f);
    int64_t axis = amp_attr_int(k->n, "axis", -1);
    if (axis < 0) axis += x->rank;
    if (axis < 0 || axis >= x->rank) return amp_kernel_fail(k, AMP_ERR_INVALID_GRAPH, "axis out of range");
    a.rows = 1;
    a.cols = 1;
    for (int d = 0; d < x->rank; d++) *(d < axis ? &a.rows : &a.cols) *= x->dims[d];
    const size_t need = sizeof(double) * (size_t)(2 * a.rows + sc->numel + (bi ? bi->numel : 0));
    if (k->ws_bytes < need || (need && !k->ws)) return amp_kernel_fail(k, AMP_ERR_INTERNAL, "workspace too small");
    a.stats = k->ws;
    double *acc = a.stats + 2 * a.rows;
    lparam pb;
    lparam_init(&a.ps, sc, x, (int)axis);
    lparam_init(&pb, bi, x, (int)axis);
    const bool f32 = x->dtype == AMP_F32 && a.dx->dtype == AMP_F32 && (!a.dy || a.dy->dtype == AMP_F32);
    const bool big = x->numel >= GRAD_PAR_MIN;
#pragma omp parallel for num_threads(k->threads) if (big)
    for (int64_t r = 0; r < a.rows; r++) {
        if (f32) ln_row(true, &a, r);
        else ln_row(false, &a, r);
    }
    ln_param_grads(k, &a, &pb, k->out[1], db, acc);
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
        const double g = ldf(f32, gt, dy->data, at);
        s += lg ? g : g * ldf(f32, yt, y->data, at);
    }
    for (int64_t j = 0; j < len; j++) {
        const int64_t at = base + j * inner;
        const double yv = ldf(f32, yt, y->data, at), g = ldf(f32, gt, dy->data, at);
        stf(f32, ot, dx->data, at, lg ? amp_log_softmax_dx_d(yv, g, s) : amp_softmax_dx_d(yv, g, s));
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
    const amp_attr *ii = amp_node_attr(node, "ignore_index");
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
        const double g = ldf(f32, dy->dtype, dy->data, o);
        const double xv = mode == AMP_RG_SUM || mode == AMP_RG_MEAN ? 0.0 : ldf(f32, x->dtype, x->data, e);
        stf(f32, dx->dtype, dx->data, e,
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

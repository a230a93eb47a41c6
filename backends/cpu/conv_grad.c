/* Gradients of Conv, ConvTranspose and the pools on the CPU (the ops are described in
 * backends/conv_grad.h).
 *
 * ConvGrad / ConvTransposeGrad work per image and group with im2col / col2im around BLAS
 * GEMMs, in the same two modes as the forward convolution: with at least one work item per
 * thread, whole items go to threads (OpenBLAS single-threaded, one workspace slot each, each
 * thread summing its own partial dW, added up at the end); with fewer items the items run in
 * turn and every GEMM is split over the threads. f16 and bf16 are widened to f32 in the
 * workspace, computed in f32 and rounded once on store; f64 runs in double.
 *
 * The pool gradients recompute each window from the forward attributes and accumulate into
 * dX plane by plane (planes spread over threads; 16-bit planes accumulate in f32). */
#include <math.h>
#include <omp.h>
#include <string.h>

#include "backends/cpu/cpu.h"
#include "backends/cpu/gemm.h"
#include "backends/cpu/kernels.h"
#include "backends/cpu/par.h"
#include "backends/conv_grad.h"

/* Below this many elements touched, one thread is faster than waking the others. */
#define PAR_MIN 32768

/* Odometer step over the first n dims of lim; returns 0 after the last index. */
static int next_index(int n, int64_t *idx, const int64_t *lim) {
    for (int i = n - 1; i >= 0; i--) {
        if (++idx[i] < lim[i]) return 1;
        idx[i] = 0;
    }
    return 0;
}

static void unflatten(int64_t flat, int n, const int64_t *lim, int64_t *idx) {
    for (int i = n - 1; i >= 0; i--) {
        idx[i] = flat % lim[i];
        flat /= lim[i];
    }
}

/* ---- workspace ------------------------------------------------------------------------------ */

/* Workspace of ConvGrad / ConvTransposeGrad in elements of the compute type (float for f32,
 * f16, bf16; double for f64): `shared` first (W widened to f32 for 16-bit dX), then `slots`
 * slots of `slot` elements, one per concurrent work item (image, group). Offsets inside a slot
 * are -1 for parts that the requested outputs do not need. */
typedef struct cg_ws {
    int64_t shared, slot, slots;
    int64_t col;  /* im2col matrix [R, P] (also the dcol of Conv's dX) */
    int64_t a, b; /* 16-bit: A and B slices widened, [ca, bigsz] and [cb, P] */
    int64_t dx;   /* 16-bit: the dX slice in f32 */
    int64_t dw;   /* this slot's partial dW [wnumel] */
    size_t esize;
} cg_ws;

static int mul_ok(int64_t a, int64_t b, int64_t *r) { return !__builtin_mul_overflow(a, b, r); }

/* The layout of w for the gradient d in dtype dt and the outputs wanted; 0 when a size overflows. */
static int cg_ws_layout(const amp_conv_grad_dims *d, amp_dtype dt, int want_dx, int want_dw, cg_ws *w) {
    const int transpose = d->transpose;
    memset(w, 0, sizeof *w);
    int half = dt == AMP_F16 || dt == AMP_BF16;
    int need_a = want_dw || (transpose && want_dx); /* A feeds the column matrix */
    int need_b = want_dw || (!transpose && want_dx);
    int need_col = (want_dw || want_dx) && !d->direct;
    int64_t t, off = 0;
    w->esize = dt == AMP_F64 ? sizeof(double) : sizeof(float);
    w->col = w->a = w->b = w->dx = w->dw = -1;
#define PART(field, cond, x, y)                                                                                        \
    do {                                                                                                               \
        if (cond) {                                                                                                    \
            if (!mul_ok(x, y, &t) || __builtin_add_overflow(off, t, &t))                                               \
                return 0;                                  \
            w->field = off;                                                                                            \
            off = t;                                                                                                   \
        }                                                                                                              \
    } while (0)
    PART(col, need_col, d->R, d->P);
    PART(a, half && need_a, d->ca, d->bigsz);
    PART(b, half && need_b, d->cb, d->P);
    PART(dx, half && want_dx, transpose ? d->cb : d->ca, transpose ? d->P : d->bigsz);
    PART(dw, want_dw, d->wnumel, 1);
#undef PART
    w->slot = off;
    w->shared = half && want_dx ? d->wnumel : 0;
    int64_t items, slot_bytes;
    if (!mul_ok(d->N, d->G, &items) || !mul_ok(w->slot, (int64_t)w->esize, &slot_bytes))
        return 0;
    w->slots = 0;
    if (w->slot) {
        w->slots = amp_cpu_ws_slots(items, slot_bytes);
        if (w->slots < 1) w->slots = 1;
    }
    if (!mul_ok(w->slot, w->slots, &t) || __builtin_add_overflow(t, w->shared, &t) ||
        !mul_ok(t, (int64_t)w->esize, &t) || t > (int64_t)(SIZE_MAX / 2))
        return 0;
    return 1;
}

/* The geometry and workspace layout of a convolution gradient; a message on the context on failure. */
static amp_status cg_plan(const amp_kernel *k, int want_dx, int want_dw, amp_conv_grad_dims *d, cg_ws *w) {
    char msg[256];
    const amp_tensor *X = k->in[1], *W = k->in[2];
    amp_status s = amp_conv_grad_dims_init(k->n, X->rank, X->dims, W->dims, d, msg, sizeof msg);
    if (s) return amp_kernel_fail(k, s, "%s", msg);
    if (!cg_ws_layout(d, X->dtype, want_dx, want_dw, w))
        return amp_kernel_fail(k, AMP_ERR_OVERFLOW, "workspace size overflows");
    return AMP_OK;
}

/* Whether output i of the node is wanted (autodiff omits the ones it does not need). */
static int out_wanted(const amp_kernel *k, int i) { return i < k->nout && k->n->outputs && k->n->outputs[i] >= 0; }

amp_status amp_cpu_ws_conv_grad(const amp_kernel *k, size_t *bytes) {
    if (k->nin < 3 || !k->in[0] || !k->in[1] || !k->in[2])
        return amp_kernel_fail(k, AMP_ERR_INVALID_GRAPH, "needs dY, X and W");
    amp_conv_grad_dims d;
    cg_ws w;
    amp_status s = cg_plan(k, out_wanted(k, 0), out_wanted(k, 1), &d, &w);
    if (s) return s;
    *bytes = (size_t)(w.shared + w.slot * w.slots) * w.esize;
    return AMP_OK;
}

/* The pool gradients: 16-bit planes are widened to f32 and accumulate in f32, one plane per slot
 * of amp_pool_grad_slot floats; other dtypes need none. */
amp_status amp_cpu_ws_pool_grad(const amp_kernel *k, size_t *bytes) {
    char msg[256];
    const amp_tensor *dX = k->out[0];
    if (k->nout < 1 || !dX) return amp_kernel_fail(k, AMP_ERR_INVALID_GRAPH, "needs dX");
    *bytes = 0;
    if (dX->dtype != AMP_F16 && dX->dtype != AMP_BF16) return AMP_OK;
    amp_conv_geom g;
    amp_status s = amp_pool_grad_geom(k->n, dX->rank, dX->dims, &g, msg, sizeof msg);
    if (s) return amp_kernel_fail(k, s, "%s", msg);
    int64_t insz = 1, outsz = 1, b;
    for (int i = 0; i < g.nsp; i++)
        if (__builtin_mul_overflow(insz, g.in[i], &insz) || __builtin_mul_overflow(outsz, g.out[i], &outsz))
            return amp_kernel_fail(k, AMP_ERR_OVERFLOW, "input size overflows");
    int is_max = k->n->op == AMP_OP_MAX_POOL_GRAD;
    if (insz > INT64_MAX / 4 || outsz > INT64_MAX / 4 ||
        !mul_ok(amp_pool_grad_slot(is_max, insz, outsz), (int64_t)sizeof(float), &b))
        return amp_kernel_fail(k, AMP_ERR_OVERFLOW, "workspace size overflows");
    int64_t slots = amp_cpu_ws_slots(dX->dims[0] * dX->dims[1], b);
    if (slots < 1) slots = 1;
    return amp_cpu_ws_elems(k, slots * amp_pool_grad_slot(is_max, insz, outsz), sizeof(float), bytes);
}

/* ---- convolution -------------------------------------------------------------------------- */

typedef struct cg_job {
    amp_conv_grad_dims d;
    cg_ws w;
    amp_dtype dt;
    int half;
    int64_t CA, CB;       /* channels of A and B in all groups */
    const void *a, *b;    /* A and B as stored */
    const void *wc;       /* W in the compute type (16-bit: the f32 copy in the workspace) */
    void *dx;             /* NULL when dX is not wanted */
    int want_dw;
} cg_job;

/* im2col of one group's channels of A: col[(c*ksz + kidx)*P + p] = A[c, p*s - pb + kk*d] or 0.
 * col2im is its adjoint (adds into A). Channels are independent, so they split over threads. */
#define DEFINE_COL(T, SUF)                                                                                             \
    static void im2col_##SUF(const T *a, T *col, const amp_conv_grad_dims *d, int64_t ch, int threads) {               \
        int nsp = d->nsp, last = nsp - 1;                                                                              \
        int64_t ksz = d->ksz, P = d->P, bigsz = d->bigsz;                                                              \
        int64_t sw = d->s[last], bw = d->big[last], ow = d->small[last];                                               \
        if (P == 0) return;                                                                                            \
        int par = threads > 1 && ch > 1 && ch * ksz * P >= PAR_MIN;                                                    \
        _Pragma("omp parallel for num_threads(threads > 1 ? threads : 1) schedule(static) if (par)")                   \
        for (int64_t c = 0; c < ch; c++) {                                                                             \
            const T *ac = a + c * bigsz;                                                                               \
            for (int64_t kidx = 0; kidx < ksz; kidx++) {                                                               \
                int64_t kk[AMP_MAX_RANK], o[AMP_MAX_RANK] = {0}, lo, hi;                                               \
                unflatten(kidx, nsp, d->k, kk);                                                                        \
                T *row = col + (c * ksz + kidx) * P;                                                                   \
                int64_t base = kk[last] * d->d[last] - d->pb[last];                                                    \
                amp_pool_taps(base, sw, ow, bw, &lo, &hi);                                                             \
                do {                                                                                                   \
                    int64_t off = 0;                                                                                   \
                    int ok = lo < hi;                                                                                  \
                    for (int i = 0; i < last; i++) {                                                                   \
                        int64_t ii = o[i] * d->s[i] - d->pb[i] + kk[i] * d->d[i];                                      \
                        if (ii < 0 || ii >= d->big[i]) ok = 0;                                                         \
                        off = off * d->big[i] + ii;                                                                    \
                    }                                                                                                  \
                    if (!ok) {                                                                                         \
                        memset(row, 0, sizeof(T) * (size_t)ow);                                                        \
                    } else {                                                                                           \
                        const T *src = ac + off * bw + base;                                                           \
                        for (int64_t p = 0; p < lo; p++)                                                               \
                            row[p] = 0;                                                                                \
                        if (sw == 1)                                                                                   \
                            memcpy(row + lo, src + lo, sizeof(T) * (size_t)(hi - lo));                                 \
                        else                                                                                           \
                            for (int64_t p = lo; p < hi; p++)                                                          \
                                row[p] = src[p * sw];                                                                  \
                        for (int64_t p = hi; p < ow; p++)                                                              \
                            row[p] = 0;                                                                                \
                    }                                                                                                  \
                    row += ow;                                                                                         \
                } while (next_index(last, o, d->small));                                                               \
            }                                                                                                          \
        }                                                                                                              \
    }                                                                                                                  \
    static void col2im_##SUF(const T *col, T *a, const amp_conv_grad_dims *d, int64_t ch, int threads) {               \
        int nsp = d->nsp, last = nsp - 1;                                                                              \
        int64_t ksz = d->ksz, P = d->P, bigsz = d->bigsz;                                                              \
        int64_t sw = d->s[last], bw = d->big[last], ow = d->small[last];                                               \
        if (P == 0) return;                                                                                            \
        int par = threads > 1 && ch > 1 && ch * ksz * P >= PAR_MIN;                                                    \
        _Pragma("omp parallel for num_threads(threads > 1 ? threads : 1) schedule(static) if (par)")                   \
        for (int64_t c = 0; c < ch; c++) {                                                                             \
            T *ac = a + c * bigsz;                                                                                     \
            for (int64_t kidx = 0; kidx < ksz; kidx++) {                                                               \
                int64_t kk[AMP_MAX_RANK], o[AMP_MAX_RANK] = {0}, lo, hi;                                               \
                unflatten(kidx, nsp, d->k, kk);                                                                        \
                const T *row = col + (c * ksz + kidx) * P;                                                             \
                int64_t base = kk[last] * d->d[last] - d->pb[last];                                                    \
                amp_pool_taps(base, sw, ow, bw, &lo, &hi);                                                             \
                do {                                                                                                   \
                    int64_t off = 0;                                                                                   \
                    int ok = lo < hi;                                                                                  \
                    for (int i = 0; i < last; i++) {                                                                   \
                        int64_t ii = o[i] * d->s[i] - d->pb[i] + kk[i] * d->d[i];                                      \
                        if (ii < 0 || ii >= d->big[i]) ok = 0;                                                         \
                        off = off * d->big[i] + ii;                                                                    \
                    }                                                                                                  \
                    if (ok) {                                                                                          \
                        T *dst = ac + off * bw + base;                                                                 \
                        for (int64_t p = lo; p < hi; p++)                                                              \
                            dst[p * sw] += row[p];                                                                     \
                    }                                                                                                  \
                    row += ow;                                                                                         \
                } while (next_index(last, o, d->small));                                                               \
            }                                                                                                          \
        }                                                                                                              \
    }

/* Two spatial dims, the common case, without the odometer: rows are short in the late layers
 * of a network (7 to 14 wide), so per-row overhead and library calls would dominate. */
#define DEFINE_COL2D(T, SUF)                                                                                           \
    static void im2col2d_##SUF(const T *a, T *col, const amp_conv_grad_dims *d, int64_t ch, int threads) {             \
        int64_t H = d->big[0], W = d->big[1], OH = d->small[0], OW = d->small[1], KH = d->k[0], KW = d->k[1];          \
        int64_t sh = d->s[0], sw = d->s[1], dh = d->d[0], dw = d->d[1], ph = d->pb[0], pw = d->pb[1];                  \
        if (d->P == 0) return;                                                                                         \
        int par = threads > 1 && ch > 1 && ch * d->ksz * d->P >= PAR_MIN;                                              \
        _Pragma("omp parallel for num_threads(threads > 1 ? threads : 1) schedule(static) if (par)")                   \
        for (int64_t c = 0; c < ch; c++) {                                                                             \
            const T *ac = a + c * H * W;                                                                               \
            T *row = col + c * KH * KW * OH * OW;                                                                      \
            for (int64_t kh = 0; kh < KH; kh++)                                                                        \
                for (int64_t kw = 0; kw < KW; kw++) {                                                                  \
                    int64_t base = kw * dw - pw, lo, hi;                                                               \
                    amp_pool_taps(base, sw, OW, W, &lo, &hi);                                                          \
                    for (int64_t oh = 0; oh < OH; oh++, row += OW) {                                                   \
                        int64_t ih = oh * sh - ph + kh * dh;                                                           \
                        if (ih < 0 || ih >= H || lo >= hi) {                                                           \
                            for (int64_t p = 0; p < OW; p++)                                                           \
                                row[p] = 0;                                                                            \
                            continue;                                                                                  \
                        }                                                                                              \
                        const T *src = ac + ih * W + base;                                                             \
                        for (int64_t p = 0; p < lo; p++)                                                               \
                            row[p] = 0;                                                                                \
                        if (sw == 1)                                                                                   \
                            for (int64_t p = lo; p < hi; p++)                                                          \
                                row[p] = src[p];                                                                       \
                        else                                                                                           \
                            for (int64_t p = lo; p < hi; p++)                                                          \
                                row[p] = src[p * sw];                                                                  \
                        for (int64_t p = hi; p < OW; p++)                                                              \
                            row[p] = 0;                                                                                \
                    }                                                                                                  \
                }                                                                                                      \
        }                                                                                                              \
    }                                                                                                                  \
    static void col2im2d_##SUF(const T *col, T *a, const amp_conv_grad_dims *d, int64_t ch, int threads) {             \
        int64_t H = d->big[0], W = d->big[1], OH = d->small[0], OW = d->small[1], KH = d->k[0], KW = d->k[1];          \
        int64_t sh = d->s[0], sw = d->s[1], dh = d->d[0], dw = d->d[1], ph = d->pb[0], pw = d->pb[1];                  \
        if (d->P == 0) return;                                                                                         \
        int par = threads > 1 && ch > 1 && ch * d->ksz * d->P >= PAR_MIN;                                              \
        _Pragma("omp parallel for num_threads(threads > 1 ? threads : 1) schedule(static) if (par)")                   \
        for (int64_t c = 0; c < ch; c++) {                                                                             \
            T *ac = a + c * H * W;                                                                                     \
            const T *row = col + c * KH * KW * OH * OW;                                                                \
            for (int64_t kh = 0; kh < KH; kh++)                                                                        \
                for (int64_t kw = 0; kw < KW; kw++) {                                                                  \
                    int64_t base = kw * dw - pw, lo, hi;                                                               \
                    amp_pool_taps(base, sw, OW, W, &lo, &hi);                                                          \
                    for (int64_t oh = 0; oh < OH; oh++, row += OW) {                                                   \
                        int64_t ih = oh * sh - ph + kh * dh;                                                           \
                        if (ih < 0 || ih >= H) continue;                                                               \
                        T *dst = ac + ih * W + base;                                                                   \
                        if (sw == 1)                                                                                   \
                            for (int64_t p = lo; p < hi; p++)                                                          \
                                dst[p] += row[p];                                                                      \
                        else                                                                                           \
                            for (int64_t p = lo; p < hi; p++)                                                          \
                                dst[p * sw] += row[p];                                                                 \
                    }                                                                                                  \
                }                                                                                                      \
        }                                                                                                              \
    }

DEFINE_COL(float, f32)
DEFINE_COL(double, f64)
DEFINE_COL2D(float, f32)
DEFINE_COL2D(double, f64)

/* GEMM that tolerates empty operands: an empty inner dimension gives zeros (or leaves C). */
#define DEFINE_GEMM(T, SUF, FN)                                                                                        \
    static void gemm_##SUF(int gt, int ta, int tb, int64_t M, int64_t N, int64_t K, const T *A, int64_t lda,           \
                           const T *B, int64_t ldb, T beta, T *C, int64_t ldc) {                                       \
        if (M <= 0 || N <= 0) return;                                                                                  \
        if (K <= 0) {                                                                                                  \
            if (beta == 0)                                                                                             \
                for (int64_t i = 0; i < M; i++)                                                                        \
                    memset(C + i * ldc, 0, sizeof(T) * (size_t)N);                                                     \
            return;                                                                                                    \
        }                                                                                                              \
        FN(gt, ta, tb, M, N, K, 1, A, lda, B, ldb, beta, C, ldc);                                                      \
    }

DEFINE_GEMM(float, f32, amp_cpu_sgemm)
DEFINE_GEMM(double, f64, amp_cpu_dgemm)

/* One image n and group gi. slot is this item's scratch, dwacc the dW accumulator it adds to,
 * gt the threads each GEMM and im2col may use. The 16-bit branches only run for T = float. */
#define DEFINE_ITEM(T, SUF)                                                                                            \
    static void item_##SUF(const cg_job *j, int64_t n, int64_t gi, T *slot, T *dwacc, int gt) {                        \
        const amp_conv_grad_dims *d = &j->d;                                                                           \
        int64_t aoff = (n * j->CA + gi * d->ca) * d->bigsz, boff = (n * j->CB + gi * d->cb) * d->P;                    \
        int64_t na = d->ca * d->bigsz, nb = d->cb * d->P;                                                              \
        const T *A, *B;                                                                                                \
        if (j->half) {                                                                                                 \
            A = j->w.a >= 0 ? slot + j->w.a : NULL;                                                                    \
            B = j->w.b >= 0 ? slot + j->w.b : NULL;                                                                    \
            if (A) amp_widen16(j->dt, (const uint16_t *)j->a + aoff, (float *)(void *)(slot + j->w.a), na);            \
            if (B) amp_widen16(j->dt, (const uint16_t *)j->b + boff, (float *)(void *)(slot + j->w.b), nb);            \
        } else {                                                                                                       \
            A = (const T *)j->a + aoff;                                                                                \
            B = (const T *)j->b + boff;                                                                                \
        }                                                                                                              \
        const T *W = (const T *)j->wc + gi * d->cb * d->R;                                                             \
        T *col = j->w.col >= 0 ? slot + j->w.col : NULL;                                                               \
        const T *colA = NULL;                                                                                          \
        if (j->want_dw || (d->transpose && j->dx)) {                                                                   \
            if (d->direct) {                                                                                           \
                colA = A;                                                                                              \
            } else {                                                                                                   \
                (d->nsp == 2 ? im2col2d_##SUF : im2col_##SUF)(A, col, d, d->ca, gt);                                  \
                colA = col;                                                                                            \
            }                                                                                                          \
        }                                                                                                              \
        /* dW_g [cb, R] += B_g [cb, P] colA^T [P, R] */                                                                \
        if (j->want_dw)                                                                                                \
            gemm_##SUF(gt, 0, 1, d->cb, d->R, d->P, B, d->P, colA, d->P, 1, dwacc + gi * d->cb * d->R, d->R);          \
        if (!j->dx) return;                                                                                            \
        if (!d->transpose) {                                                                                           \
            /* Conv: dcol [R, P] = W_g^T dY_g, then col2im into dX_g */                                                \
            T *dX = j->half ? slot + j->w.dx : (T *)j->dx + aoff;                                                      \
            if (d->direct) {                                                                                           \
                gemm_##SUF(gt, 1, 0, d->R, d->P, d->cb, W, d->R, B, d->P, 0, dX, d->P);                                \
            } else {                                                                                                   \
                gemm_##SUF(gt, 1, 0, d->R, d->P, d->cb, W, d->R, B, d->P, 0, col, d->P);                               \
                memset(dX, 0, sizeof(T) * (size_t)na);                                                                 \
                (d->nsp == 2 ? col2im2d_##SUF : col2im_##SUF)(col, dX, d, d->ca, gt);                                  \
            }                                                                                                          \
            if (j->half) amp_narrow16(j->dt, (const float *)(const void *)dX, (uint16_t *)j->dx + aoff, na);           \
        } else {                                                                                                       \
            /* ConvTranspose: dX_g [cb, P] = W_g [cb, R] col(dY_g) [R, P] */                                           \
            T *dX = j->half ? slot + j->w.dx : (T *)j->dx + boff;                                                      \
            gemm_##SUF(gt, 0, 0, d->cb, d->P, d->R, W, d->R, colA, d->P, 0, dX, d->P);                                 \
            if (j->half) amp_narrow16(j->dt, (const float *)(const void *)dX, (uint16_t *)j->dx + boff, nb);           \
        }                                                                                                              \
    }

DEFINE_ITEM(float, f32)
DEFINE_ITEM(double, f64)

/* Sum of n elements from offset off, in double. */
static double sum_run(amp_dtype dt, const void *p, int64_t off, int64_t n) {
    double s = 0;
    switch (dt) {
    case AMP_F32: {
        const float *x = (const float *)p + off;
        for (int64_t i = 0; i < n; i++)
            s += x[i];
        break;
    }
    case AMP_F64: {
        const double *x = (const double *)p + off;
        for (int64_t i = 0; i < n; i++)
            s += x[i];
        break;
    }
    case AMP_F16: {
        const uint16_t *x = (const uint16_t *)p + off;
        for (int64_t i = 0; i < n; i++)
            s += amp_f16_to_f32(x[i]);
        break;
    }
    default: {
        const uint16_t *x = (const uint16_t *)p + off;
        for (int64_t i = 0; i < n; i++)
            s += amp_bf16_to_f32(x[i]);
        break;
    }
    }
    return s;
}

/* dB[m] = sum of dY over images and positions. */
static void bias_grad(const amp_tensor *dY, amp_tensor *dB, int threads) {
    int64_t N = dY->dims[0], M = dY->dims[1], S = 1;
    for (int i = 2; i < dY->rank; i++)
        S *= dY->dims[i];
    int par = threads > 1 && M > 1 && dY->numel >= PAR_MIN;
    AMP_PAR_FOR(par, num_threads(threads > 1 ? threads : 1) schedule(static),
    for (int64_t m = 0; m < M; m++) {
        double acc = 0;
        for (int64_t n = 0; n < N; n++)
            acc += sum_run(dY->dtype, dY->data, (n * M + m) * S, S);
        amp_st(dY->dtype, dB->data, m, acc);
    });
}

amp_status amp_cpu_conv_grad(amp_kernel *k) {
    amp_status s;
    if (k->nin < 3 || !k->in[0] || !k->in[1] || !k->in[2])
        return amp_kernel_fail(k, AMP_ERR_INVALID_GRAPH, "needs dY, X and W");
    const amp_tensor *dY = k->in[0], *X = k->in[1], *W = k->in[2];
    amp_tensor *dX = k->nout > 0 ? k->out[0] : NULL, *dW = k->nout > 1 ? k->out[1] : NULL,
               *dB = k->nout > 2 ? k->out[2] : NULL;
    cg_job j;
    memset(&j, 0, sizeof j);
    if ((s = cg_plan(k, dX != NULL, dW != NULL, &j.d, &j.w))) return s;
    int threads = k->threads < 1 ? 1 : k->threads;
    if (dB) bias_grad(dY, dB, threads);
    if (!dX && !dW) return AMP_OK;

    const amp_conv_grad_dims *d = &j.d;
    j.dt = X->dtype;
    j.half = j.dt == AMP_F16 || j.dt == AMP_BF16;
    j.a = d->transpose ? dY->data : X->data;
    j.b = d->transpose ? X->data : dY->data;
    j.CA = d->transpose ? dY->dims[1] : X->dims[1];
    j.CB = d->transpose ? X->dims[1] : dY->dims[1];
    j.dx = dX ? dX->data : NULL;
    j.want_dw = dW != NULL;
    j.wc = W->data;

    int64_t slots = 0;
    size_t es = j.w.esize;
    if (j.w.slot > 0 || j.w.shared > 0) {
        size_t need = (size_t)(j.w.shared + j.w.slot) * es;
        if (!k->ws || k->ws_bytes < need) return amp_kernel_fail(k, AMP_ERR_INTERNAL, "workspace too small");
        if (j.w.slot > 0) slots = (int64_t)((k->ws_bytes / es - (size_t)j.w.shared) / (size_t)j.w.slot);
    }
    if (j.half && dX) {
        amp_widen16(j.dt, W->data, (float *)k->ws, W->numel);
        j.wc = k->ws;
    }
    char *base = k->ws ? (char *)k->ws + (size_t)j.w.shared * es : NULL;
    int64_t items = d->N * d->G, wn = d->wnumel;
    int nthr = threads;
    if (j.w.slot > 0 && nthr > slots) nthr = (int)slots; /* a 32-bit 1x1 dX needs no slot at all */
    /* As in the forward convolution: whole items per thread when there is an item for each and
     * workspace for at least half the threads; otherwise items in turn, GEMMs split. */
    int par = nthr > 1 && 2 * nthr >= threads && items >= nthr;
    if (par) {
        int team = 1;
#pragma omp parallel num_threads(nthr)
        {
            int t = omp_get_thread_num();
#pragma omp single
            team = omp_get_num_threads();
            char *slot = base ? base + (size_t)t * (size_t)j.w.slot * es : NULL;
            char *acc = dW ? slot + (size_t)j.w.dw * es : NULL;
            if (acc) memset(acc, 0, (size_t)wn * es);
#pragma omp for schedule(static)
            for (int64_t it = 0; it < items; it++) {
                if (j.dt == AMP_F64)
                    item_f64(&j, it / d->G, it % d->G, (double *)(void *)slot, (double *)(void *)acc, 1);
                else
                    item_f32(&j, it / d->G, it % d->G, (float *)(void *)slot, (float *)(void *)acc, 1);
            }
        }
        if (dW) {
            /* the partial sums, thread by thread */
            int rpar = threads > 1 && wn * team >= PAR_MIN;
            size_t stride = (size_t)j.w.slot;
            AMP_PAR_FOR(rpar, num_threads(threads) schedule(static),
            for (int64_t e = 0; e < wn; e++) {
                double sum = 0;
                if (j.dt == AMP_F64) {
                    const double *p = (const double *)(void *)base + j.w.dw + e;
                    for (int t = 0; t < team; t++)
                        sum += p[(size_t)t * stride];
                } else {
                    const float *p = (const float *)(void *)base + j.w.dw + e;
                    for (int t = 0; t < team; t++)
                        sum += p[(size_t)t * stride];
                }
                amp_st(j.dt, dW->data, e, sum);
            });
        }
        return AMP_OK;
    }
    /* in turn: 32-bit dW accumulates in place, 16-bit in the first slot's f32 partial */
    void *acc = NULL;
    if (dW) {
        acc = j.half ? (void *)(base + (size_t)j.w.dw * es) : dW->data;
        memset(acc, 0, (size_t)wn * es);
    }
    for (int64_t it = 0; it < items; it++) {
        if (j.dt == AMP_F64)
            item_f64(&j, it / d->G, it % d->G, (double *)(void *)base, acc, threads);
        else
            item_f32(&j, it / d->G, it % d->G, (float *)(void *)base, acc, threads);
    }
    if (dW && j.half) amp_narrow16(j.dt, acc, dW->data, wn);
    return AMP_OK;
}

/* ---- pooling -------------------------------------------------------------------------------- */

typedef struct pg_job {
    amp_conv_geom g;
    int64_t planes, insz, outsz;
    int64_t istr[AMP_MAX_RANK]; /* strides of the spatial dims in a plane */
    int count_pad;
    const void *dy, *x;
} pg_job;


/* Per plane: walk the output positions, find each window's taps per dim, and for MaxPool the
 * winner (taps in row-major order, amp_pool_max_takes_*), for AveragePool every tap. acc is
 * the plane of dX (zeroed by the caller) in the compute type. */
#define DEFINE_POOLG(SUF, T, TAKES)                                                                                    \
    static void maxg_##SUF(const pg_job *j, const T *x, const T *dy, T *acc) {                                         \
        const amp_conv_geom *g = &j->g;                                                                                \
        int nsp = g->nsp, last = nsp - 1;                                                                              \
        int64_t o[AMP_MAX_RANK] = {0}, dl = g->d[last];                                                                \
        for (int64_t p = 0; p < j->outsz; p++, next_index(nsp, o, g->out)) {                                           \
            int64_t b[AMP_MAX_RANK], lo[AMP_MAX_RANK], hi[AMP_MAX_RANK], t[AMP_MAX_RANK];                              \
            int empty = 0;                                                                                             \
            for (int i = 0; i < nsp; i++) {                                                                            \
                b[i] = o[i] * g->s[i] - g->pb[i];                                                                      \
                amp_pool_taps(b[i], g->d[i], g->k[i], g->in[i], &lo[i], &hi[i]);                                       \
                empty |= lo[i] >= hi[i];                                                                               \
                t[i] = lo[i];                                                                                          \
            }                                                                                                          \
            if (empty) continue;                                                                                       \
            int64_t bi = -1;                                                                                           \
            T best = 0;                                                                                                \
            for (;;) {                                                                                                 \
                int64_t row = b[last];                                                                                 \
                for (int i = 0; i < last; i++)                                                                         \
                    row += (b[i] + t[i] * g->d[i]) * j->istr[i];                                                       \
                for (int64_t tl = lo[last]; tl < hi[last]; tl++) {                                                     \
                    T v = x[row + tl * dl];                                                                            \
                    if (bi < 0 || TAKES(v, best)) {                                                                    \
                        best = v;                                                                                      \
                        bi = row + tl * dl;                                                                            \
                    }                                                                                                  \
                }                                                                                                      \
                int i = last - 1;                                                                                      \
                for (; i >= 0; i--) {                                                                                  \
                    if (++t[i] < hi[i]) break;                                                                         \
                    t[i] = lo[i];                                                                                      \
                }                                                                                                      \
                if (i < 0) break;                                                                                      \
            }                                                                                                          \
            acc[bi] += dy[p];                                                                                          \
        }                                                                                                              \
    }                                                                                                                  \
    static void avgg_##SUF(const pg_job *j, const T *x, const T *dy, T *acc) {                                         \
        const amp_conv_geom *g = &j->g;                                                                                \
        int nsp = g->nsp, last = nsp - 1;                                                                              \
        int64_t o[AMP_MAX_RANK] = {0}, dl = g->d[last];                                                                \
        for (int64_t p = 0; p < j->outsz; p++, next_index(nsp, o, g->out)) {                                           \
            int64_t b[AMP_MAX_RANK], lo[AMP_MAX_RANK], hi[AMP_MAX_RANK], t[AMP_MAX_RANK], cnt = 1;                     \
            int empty = 0;                                                                                             \
            for (int i = 0; i < nsp; i++) {                                                                            \
                b[i] = o[i] * g->s[i] - g->pb[i];                                                                      \
                amp_pool_taps(b[i], g->d[i], g->k[i], g->in[i], &lo[i], &hi[i]);                                       \
                empty |= lo[i] >= hi[i];                                                                               \
                t[i] = lo[i];                                                                                          \
                cnt *= j->count_pad ? amp_pool_taps_padded(b[i], g->d[i], g->k[i], g->in[i], g->pb[i], g->pe[i])       \
                                    : hi[i] - lo[i];                                                                   \
            }                                                                                                          \
            if (empty || cnt <= 0) continue;                                                                           \
            T gv = dy[p] / (T)cnt;                                                                                     \
            for (;;) {                                                                                                 \
                int64_t row = b[last];                                                                                 \
                for (int i = 0; i < last; i++)                                                                         \
                    row += (b[i] + t[i] * g->d[i]) * j->istr[i];                                                       \
                for (int64_t tl = lo[last]; tl < hi[last]; tl++)                                                       \
                    acc[row + tl * dl] += gv;                                                                          \
                int i = last - 1;                                                                                      \
                for (; i >= 0; i--) {                                                                                  \
                    if (++t[i] < hi[i]) break;                                                                         \
                    t[i] = lo[i];                                                                                      \
                }                                                                                                      \
                if (i < 0) break;                                                                                      \
            }                                                                                                          \
        }                                                                                                              \
    }

/* Two spatial dims (one is lifted to two): a row of outputs a chunk at a time, and for each
 * window tap one pass over the chunk, so the inner loops carry no bounds checks and no
 * data-dependent branches (which tap wins is unpredictable on real data). The taps of each
 * window are still visited in row-major order, so the winner is the same. */
#define CHUNK 256
#define DEFINE_POOLG2D(SUF, T, TAKES)                                                                                  \
    static void maxg2d_##SUF(const pg_job *j, const T *x, const T *dy, T *acc) {                                       \
        const amp_conv_geom *g = &j->g;                                                                                \
        int64_t H = g->in[0], W = g->in[1], OH = g->out[0], OW = g->out[1], dh = g->d[0], dw = g->d[1];                \
        int64_t sw = g->s[1];                                                                                          \
        T best[CHUNK];                                                                                                 \
        int32_t idx[CHUNK];                                                                                            \
        for (int64_t oh = 0; oh < OH; oh++) {                                                                          \
            int64_t hb = oh * g->s[0] - g->pb[0], hlo, hhi;                                                            \
            amp_pool_taps(hb, dh, g->k[0], H, &hlo, &hhi);                                                             \
            if (hlo >= hhi) continue;                                                                                  \
            for (int64_t c0 = 0; c0 < OW; c0 += CHUNK) {                                                               \
                int64_t n = OW - c0 < CHUNK ? OW - c0 : CHUNK;                                                         \
                /* Selects by mask, not branches (which tap wins is unpredictable); 32-bit offsets so                  \
                 * that values and offsets fill the same vector lanes. */                                              \
                for (int64_t i = 0; i < n; i++) {                                                                      \
                    best[i] = 0;                                                                                       \
                    idx[i] = -1;                                                                                       \
                }                                                                                                      \
                for (int64_t kh = hlo; kh < hhi; kh++) {                                                               \
                    int64_t rowoff = (hb + kh * dh) * W;                                                               \
                    for (int64_t kw = 0; kw < g->k[1]; kw++) {                                                         \
                        int64_t base = kw * dw - g->pb[1], lo, hi;                                                     \
                        amp_pool_taps(base, sw, OW, W, &lo, &hi);                                                      \
                        lo = lo > c0 ? lo - c0 : 0;                                                                    \
                        hi = hi - c0 < n ? hi - c0 : n;                                                                \
                        int32_t off0 = (int32_t)(rowoff + base + c0 * sw), s32 = (int32_t)sw;                          \
                        for (int64_t i = lo; i < hi; i++) {                                                            \
                            int32_t o = off0 + (int32_t)i * s32;                                                       \
                            T v = x[o], b = best[i];                                                                   \
                            int32_t m = -(int32_t)((idx[i] < 0) | TAKES(v, b));                                        \
                            best[i] = m ? v : b;                                                                       \
                            idx[i] = (o & m) | (idx[i] & ~m);                                                          \
                        }                                                                                              \
                    }                                                                                                  \
                }                                                                                                      \
                const T *dyr = dy + oh * OW + c0;                                                                      \
                for (int64_t i = 0; i < n; i++)                                                                        \
                    if (idx[i] >= 0) acc[idx[i]] += dyr[i];                                                            \
            }                                                                                                          \
        }                                                                                                              \
    }                                                                                                                  \
    static void avgg2d_##SUF(const pg_job *j, const T *x, const T *dy, T *acc) {                                       \
        const amp_conv_geom *g = &j->g;                                                                                \
        int64_t H = g->in[0], W = g->in[1], OH = g->out[0], OW = g->out[1], dh = g->d[0], dw = g->d[1];                \
        int64_t sw = g->s[1];                                                                                          \
        T gv[CHUNK];                                                                                                   \
        for (int64_t oh = 0; oh < OH; oh++) {                                                                          \
            int64_t hb = oh * g->s[0] - g->pb[0], hlo, hhi;                                                            \
            amp_pool_taps(hb, dh, g->k[0], H, &hlo, &hhi);                                                             \
            if (hlo >= hhi) continue;                                                                                  \
            int64_t hn = j->count_pad ? amp_pool_taps_padded(hb, dh, g->k[0], H, g->pb[0], g->pe[0]) : hhi - hlo;      \
            for (int64_t c0 = 0; c0 < OW; c0 += CHUNK) {                                                               \
                int64_t n = OW - c0 < CHUNK ? OW - c0 : CHUNK;                                                         \
                for (int64_t i = 0; i < n; i++) {                                                                      \
                    int64_t wb = (c0 + i) * sw - g->pb[1], wlo, whi;                                                   \
                    amp_pool_taps(wb, dw, g->k[1], W, &wlo, &whi);                                                     \
                    int64_t wn = j->count_pad ? amp_pool_taps_padded(wb, dw, g->k[1], W, g->pb[1], g->pe[1])           \
                                              : whi - wlo;                                                             \
                    /* a window that holds no input spreads nothing */                                                 \
                    gv[i] = wlo < whi ? dy[oh * OW + c0 + i] / (T)(hn * wn) : 0;                                       \
                }                                                                                                      \
                for (int64_t kh = hlo; kh < hhi; kh++) {                                                               \
                    T *r = acc + (hb + kh * dh) * W;                                                                   \
                    for (int64_t kw = 0; kw < g->k[1]; kw++) {                                                         \
                        int64_t base = kw * dw - g->pb[1], lo, hi;                                                     \
                        amp_pool_taps(base, sw, OW, W, &lo, &hi);                                                      \
                        lo = lo > c0 ? lo - c0 : 0;                                                                    \
                        hi = hi - c0 < n ? hi - c0 : n;                                                                \
                        T *rr = r + base + c0 * sw;                                                                    \
                        for (int64_t i = lo; i < hi; i++)                                                              \
                            rr[i * sw] += gv[i];                                                                       \
                    }                                                                                                  \
                }                                                                                                      \
            }                                                                                                          \
        }                                                                                                              \
    }

DEFINE_POOLG(f32, float, amp_pool_max_takes_f)
DEFINE_POOLG(f64, double, amp_pool_max_takes_d)
DEFINE_POOLG2D(f32, float, amp_pool_max_takes_f)
DEFINE_POOLG2D(f64, double, amp_pool_max_takes_d)

typedef void (*pool_fn_f32)(const pg_job *, const float *, const float *, float *);
typedef void (*pool_fn_f64)(const pg_job *, const double *, const double *, double *);

static amp_status run_pool_grad(amp_kernel *k, int is_max) {
    char msg[256];
    amp_status s;
    if (k->nin < 2 || !k->in[0] || !k->in[1] || k->nout < 1 || !k->out[0])
        return amp_kernel_fail(k, AMP_ERR_INVALID_GRAPH, "needs dY, %s and dX", is_max ? "X" : "the shape");
    const amp_tensor *dY = k->in[0];
    amp_tensor *dX = k->out[0];
    pg_job j;
    memset(&j, 0, sizeof j);
    if ((s = amp_pool_grad_geom(k->n, dX->rank, dX->dims, &j.g, msg, sizeof msg)))
        return amp_kernel_fail(k, s, "%s", msg);
    amp_dtype dt = dX->dtype;
    j.planes = dX->dims[0] * dX->dims[1];
    j.insz = j.outsz = 1;
    for (int i = j.g.nsp - 1; i >= 0; i--) {
        j.istr[i] = j.insz;
        j.insz *= j.g.in[i];
        j.outsz *= j.g.out[i];
    }
    if (dY->numel != j.planes * j.outsz) return amp_kernel_fail(k, AMP_ERR_SHAPE, "dY has the wrong size");
    if (j.insz > INT32_MAX) return amp_kernel_fail(k, AMP_ERR_LIMIT, "a plane is too large");
    j.count_pad = !is_max && amp_attr_int(k->n, "count_include_pad", 0) != 0;
    j.dy = dY->data;
    j.x = is_max ? k->in[1]->data : NULL;
    if (dX->numel == 0) return AMP_OK;
    if (j.g.nsp == 1) {
        /* lift to 2-D: a leading spatial dim of one with a kernel of one */
        amp_conv_geom *g = &j.g;
        g->in[1] = g->in[0], g->k[1] = g->k[0], g->s[1] = g->s[0], g->d[1] = g->d[0];
        g->pb[1] = g->pb[0], g->pe[1] = g->pe[0], g->out[1] = g->out[0];
        g->in[0] = g->k[0] = g->s[0] = g->d[0] = g->out[0] = 1;
        g->pb[0] = g->pe[0] = 0;
        g->nsp = 2;
    }
    int two = j.g.nsp == 2;
    pool_fn_f32 f32fn = NULL;
    pool_fn_f64 f64fn = NULL;
    if (dt == AMP_F64)
        f64fn = is_max ? (two ? maxg2d_f64 : maxg_f64) : (two ? avgg2d_f64 : avgg_f64);
    else
        f32fn = is_max ? (two ? maxg2d_f32 : maxg_f32) : (two ? avgg2d_f32 : avgg_f32);
    int half = dt == AMP_F16 || dt == AMP_BF16;
    int threads = k->threads < 1 ? 1 : k->threads, nthr = threads;
    int64_t slot = amp_pool_grad_slot(is_max, j.insz, j.outsz);
    float *slots = k->ws;
    if (half) {
        int64_t have = (int64_t)(k->ws_bytes / sizeof(float)) / slot;
        if (!slots || have < 1) return amp_kernel_fail(k, AMP_ERR_INTERNAL, "workspace too small");
        if (nthr > have) nthr = (int)have;
    }
    int par = nthr > 1 && j.planes > 1 && j.planes * (j.insz + j.outsz) >= PAR_MIN;
    AMP_PAR_FOR(par, num_threads(nthr) schedule(static),
    for (int64_t p = 0; p < j.planes; p++) {
        int64_t xo = p * j.insz, yo = p * j.outsz;
        if (f64fn) {
            double *acc = (double *)dX->data + xo;
            memset(acc, 0, sizeof(double) * (size_t)j.insz);
            f64fn(&j, is_max ? (const double *)j.x + xo : NULL, (const double *)j.dy + yo, acc);
        } else if (!half) {
            float *acc = (float *)dX->data + xo;
            memset(acc, 0, sizeof(float) * (size_t)j.insz);
            f32fn(&j, is_max ? (const float *)j.x + xo : NULL, (const float *)j.dy + yo, acc);
        } else {
            /* 16-bit planes are widened first, so the f32 loops run on them unchanged */
            float *acc = slots + (int64_t)omp_get_thread_num() * slot, *dyw = acc + j.insz, *xw = NULL;
            amp_widen16(dt, (const uint16_t *)j.dy + yo, dyw, j.outsz);
            if (is_max) {
                xw = dyw + j.outsz;
                amp_widen16(dt, (const uint16_t *)j.x + xo, xw, j.insz);
            }
            memset(acc, 0, sizeof(float) * (size_t)j.insz);
            f32fn(&j, xw, dyw, acc);
            amp_narrow16(dt, acc, (uint16_t *)dX->data + xo, j.insz);
        }
    });
    return AMP_OK;
}

amp_status amp_cpu_max_pool_grad(amp_kernel *k) { return run_pool_grad(k, 1); }

amp_status amp_cpu_avg_pool_grad(amp_kernel *k) { return run_pool_grad(k, 0); }

/* CPU kernels of the matmul family's gradient ops (ir/ops/matmul_grad.def, built by
 * ir/ops/matmul_grad.c): GemmCGrad sums dY back to C's broadcast shape, MatMulGrad runs the
 * operand products through BLAS (backends/cpu/gemm.c) and sums over broadcast batch dims. */
#include <cblas.h>
#include <string.h>

#include "backends/cpu/cpu.h"
#include "backends/cpu/gemm.h"
#include "backends/cpu/kernels.h"
#include "backends/cpu/par.h"

/* Below this many elements the OpenMP fork costs more than it saves. */
#define GRAD_PAR_MIN 32768

/* ---- GemmCGrad ----------------------------------------------------------------------------------
 * dC = beta * dY summed over the dims C broadcast along. dC is seen as [cr, cc] (cr is M or 1,
 * cc is N or 1); threads take (row, block of columns) pairs and walk dY row by row. */

#define GC_BLK 256

AMP_CPU_INLINE void gc_block(bool f32, const amp_tensor *dy, amp_tensor *dc, double beta, int64_t cr, int64_t cc,
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
    AMP_PAR_FOR(big, num_threads(k->threads),
    for (int64_t t = 0; t < cr * nblk; t++) {
        if (f32) gc_block(true, dy, dc, beta, cr, cc, nblk, t);
        else gc_block(false, dy, dc, beta, cr, cc, nblk, t);
    });
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
        const int thr = amp_cpu_threads(k);                                                                                   \
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

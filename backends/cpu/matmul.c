/* Gemm and MatMul on the CPU (ir/ops/matmul.def): OpenBLAS for f32 and f64 through the shared
 * GEMM of backends/cpu/gemm.c (16-bit widened to f32 in the workspace), plain loops for int32
 * and int64 (which wrap as two's complement, as the C++ runtimes do). */
#include <cblas.h>
#include <omp.h>
#include <string.h>

#include "backends/cpu/cpu.h"
#include "backends/cpu/gemm.h"
#include "backends/cpu/kernels.h"

/* Below this many multiply-adds per matrix, batches run on separate threads; above it each
 * product is split over the threads itself. */
#define MM_SMALL ((int64_t)1 << 21)
/* Integer loops: rows spread over threads above this many multiply-adds in all. */
#define INT_PAR_MIN ((int64_t)1 << 16)


/* ---- Gemm ----------------------------------------------------------------------------------- */

/* Strides that broadcast C (rank 0..2) over [M, N]. */
static void c_strides(const amp_tensor *C, int64_t *sr, int64_t *sc) {
    int64_t r = C->rank == 2 ? C->dims[0] : 1, c = C->rank >= 1 ? C->dims[C->rank - 1] : 1;
    *sr = r == 1 ? 0 : c;
    *sc = c == 1 ? 0 : 1;
}

#define DEFINE_GEMM_FLOAT(T, SUF, PGEMM)                                                                               \
    static void gemm_##SUF(const amp_kernel *k, const T *a, const T *b, T *y, int64_t M, int64_t N, int64_t K, int ta, \
                           int tb, double alpha, double beta) {                                                        \
        const amp_tensor *C = k->nin > 2 ? k->in[2] : NULL;                                                            \
        int use_c = C && beta != 0.0;                                                                                  \
        if (use_c) {                                                                                                   \
            int64_t sr, sc;                                                                                            \
            c_strides(C, &sr, &sc);                                                                                    \
            for (int64_t m = 0; m < M; m++)                                                                            \
                for (int64_t n = 0; n < N; n++)                                                                        \
                    y[m * N + n] = (T)(beta * amp_ld(C->dtype, C->data, m * sr + n * sc));                             \
        }                                                                                                              \
        if (K == 0) {                                                                                                  \
            if (!use_c) memset(y, 0, sizeof(T) * (size_t)(M * N));                                                     \
            return;                                                                                                    \
        }                                                                                                              \
        PGEMM(amp_cpu_threads(k), ta, tb, M, N, K, (T)alpha, a, ta ? M : K, b, tb ? K : N, use_c ? (T)1 : (T)0, y, N);      \
    }

DEFINE_GEMM_FLOAT(float, f32, amp_cpu_sgemm)
DEFINE_GEMM_FLOAT(double, f64, amp_cpu_dgemm)

#define DEFINE_GEMM_INT(T, SUF)                                                                                        \
    static void gemm_##SUF(const amp_kernel *k, const T *a, const T *b, T *y, int64_t M, int64_t N, int64_t K, int ta, \
                           int tb, double alpha, double beta) {                                                        \
        const amp_tensor *C = k->nin > 2 ? k->in[2] : NULL;                                                            \
        int64_t sr = 0, sc = 0;                                                                                        \
        if (C) c_strides(C, &sr, &sc);                                                                                 \
        int64_t sam = ta ? 1 : K, sak = ta ? M : 1, sbk = tb ? 1 : N, sbn = tb ? K : 1;                                \
        int par = amp_cpu_threads(k) > 1 && M > 1 && M * N * K >= INT_PAR_MIN;                                              \
        _Pragma("omp parallel for num_threads(amp_cpu_threads(k)) schedule(static) if (par)") for (int64_t m = 0; m < M;    \
                                                                                              m++) {                   \
            for (int64_t n = 0; n < N; n++) {                                                                          \
                uint64_t acc = 0;                                                                                      \
                for (int64_t i = 0; i < K; i++)                                                                        \
                    acc += (uint64_t)(int64_t)a[m * sam + i * sak] * (uint64_t)(int64_t)b[i * sbk + n * sbn];          \
                int64_t v = (int64_t)acc;                                                                              \
                if (alpha != 1.0) v = (int64_t)(alpha * (double)v);                                                    \
                if (C && beta != 0.0) {                                                                                \
                    int64_t cv = amp_ldi(C->dtype, C->data, m * sr + n * sc);                                          \
                    v = (int64_t)((uint64_t)v + (uint64_t)(beta == 1.0 ? cv : (int64_t)(beta * (double)cv)));          \
                }                                                                                                      \
                y[m * N + n] = (T)v;                                                                                   \
            }                                                                                                          \
        }                                                                                                              \
    }

DEFINE_GEMM_INT(int32_t, i32)
DEFINE_GEMM_INT(int64_t, i64)

/* 16-bit operands are widened to f32 in the workspace: A, B and the f32 result (Gemm and
 * MatMul alike). */
amp_status amp_cpu_ws_gemm(const amp_kernel *k, size_t *bytes) {
    const amp_tensor *A = k->in[0], *B = k->in[1], *Y = k->out[0];
    if (A->dtype != AMP_F16 && A->dtype != AMP_BF16) {
        *bytes = 0;
        return AMP_OK;
    }
    int64_t t;
    if (__builtin_add_overflow(A->numel, B->numel, &t) || __builtin_add_overflow(t, Y->numel, &t))
        return amp_kernel_fail(k, AMP_ERR_OVERFLOW, "workspace size overflows");
    return amp_cpu_ws_elems(k, t, sizeof(float), bytes);
}

amp_status amp_cpu_gemm(amp_kernel *k) {
    const amp_tensor *A = k->in[0], *B = k->in[1];
    amp_tensor *Y = k->out[0];
    int ta = amp_attr_int(k->n, "transA", 0) != 0, tb = amp_attr_int(k->n, "transB", 0) != 0;
    double alpha = amp_attr_float(k->n, "alpha", 1.0f), beta = amp_attr_float(k->n, "beta", 1.0f);
    int64_t M = Y->dims[0], N = Y->dims[1], K = A->dims[ta ? 0 : 1];
    if (M * N == 0) return AMP_OK;
    switch (A->dtype) {
    case AMP_F32: gemm_f32(k, A->data, B->data, Y->data, M, N, K, ta, tb, alpha, beta); break;
    case AMP_F64: gemm_f64(k, A->data, B->data, Y->data, M, N, K, ta, tb, alpha, beta); break;
    case AMP_I32: gemm_i32(k, A->data, B->data, Y->data, M, N, K, ta, tb, alpha, beta); break;
    case AMP_I64: gemm_i64(k, A->data, B->data, Y->data, M, N, K, ta, tb, alpha, beta); break;
    case AMP_F16:
    case AMP_BF16: {
        size_t need = sizeof(float) * (size_t)(A->numel + B->numel + Y->numel);
        if (!k->ws || k->ws_bytes < need) return amp_kernel_fail(k, AMP_ERR_INTERNAL, "workspace too small");
        float *a = k->ws, *b = a + A->numel, *y = b + B->numel;
        amp_widen16(A->dtype, A->data, a, A->numel);
        amp_widen16(A->dtype, B->data, b, B->numel);
        gemm_f32(k, a, b, y, M, N, K, ta, tb, alpha, beta);
        amp_narrow16(A->dtype, y, Y->data, Y->numel);
        break;
    }
    default: return amp_kernel_fail(k, AMP_ERR_UNSUPPORTED, "dtype %s is not supported", amp_dtype_name(A->dtype));
    }
    return AMP_OK;
}

/* ---- MatMul --------------------------------------------------------------------------------- */

/* A's matrices can be stacked into one [nb*M, K] operand when B is the same for every batch
 * and A is not broadcast. */
static int mm_flat(const amp_mm_shape *s) {
    int64_t need = s->M * s->K;
    for (int i = s->rb - 1; i >= 0; i--) {
        if (s->sb[i] != 0 && s->ydims[i] != 1) return 0;
        if (s->ydims[i] != 1 && s->sa[i] != need) return 0;
        need *= s->ydims[i];
    }
    return 1;
}

#define DEFINE_MM_FLOAT(T, SUF, GEMM, PGEMM)                                                                           \
    static void mm_##SUF(const amp_kernel *k, const amp_mm_shape *s, const T *a, const T *b, T *y) {                       \
        int64_t M = s->M, N = s->N, K = s->K;                                                                          \
        if (K == 0) {                                                                                                  \
            memset(y, 0, sizeof(T) * (size_t)(s->nb * M * N));                                                         \
            return;                                                                                                    \
        }                                                                                                              \
        if (mm_flat(s) && s->nb * M < (int64_t)1 << 31) {                                                              \
            PGEMM(amp_cpu_threads(k), 0, 0, s->nb *M, N, K, (T)1, a, K, b, N, (T)0, y, N);                                  \
            return;                                                                                                    \
        }                                                                                                              \
        int nthr = amp_cpu_threads(k);                                                                                      \
        if (nthr > s->nb) nthr = (int)s->nb;                                                                           \
        if (nthr < 2 || M * N * K >= MM_SMALL) {                                                                       \
            /* few or large products: each one is split over the threads */                                            \
            for (int64_t i = 0; i < s->nb; i++) {                                                                      \
                int64_t oa, ob;                                                                                        \
                amp_mm_offsets(s, i, &oa, &ob);                                                                            \
                PGEMM(amp_cpu_threads(k), 0, 0, M, N, K, (T)1, a + oa, K, b + ob, N, (T)0, y + i * M * N, N);               \
            }                                                                                                          \
            return;                                                                                                    \
        }                                                                                                              \
        amp_cpu_blas_threads(1);                                                                                       \
        _Pragma("omp parallel for num_threads(nthr) schedule(static)") for (int64_t i = 0; i < s->nb; i++) {           \
            int64_t oa, ob;                                                                                            \
            amp_mm_offsets(s, i, &oa, &ob);                                                                                \
            GEMM(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)M, (int)N, (int)K, (T)1, a + oa, (int)K, b + ob,      \
                 (int)N, (T)0, y + i * M * N, (int)N);                                                                 \
        }                                                                                                              \
    }

DEFINE_MM_FLOAT(float, f32, cblas_sgemm, amp_cpu_sgemm)
DEFINE_MM_FLOAT(double, f64, cblas_dgemm, amp_cpu_dgemm)

#define DEFINE_MM_INT(T, SUF)                                                                                          \
    static void mm_##SUF(const amp_kernel *k, const amp_mm_shape *s, const T *a, const T *b, T *y) {                       \
        int64_t M = s->M, N = s->N, K = s->K, rows = s->nb * M;                                                        \
        int par = amp_cpu_threads(k) > 1 && rows > 1 && rows * N * K >= INT_PAR_MIN;                                        \
        _Pragma("omp parallel for num_threads(amp_cpu_threads(k)) schedule(static) if (par)") for (int64_t r = 0; r < rows; \
                                                                                              r++) {                   \
            int64_t oa, ob, m = r % M;                                                                                 \
            amp_mm_offsets(s, r / M, &oa, &ob);                                                                            \
            const T *ar = a + oa + m * K;                                                                              \
            const T *bm = b + ob;                                                                                      \
            T *yr = y + r * N;                                                                                         \
            for (int64_t n = 0; n < N; n++) {                                                                          \
                uint64_t acc = 0;                                                                                      \
                for (int64_t i = 0; i < K; i++)                                                                        \
                    acc += (uint64_t)(int64_t)ar[i] * (uint64_t)(int64_t)bm[i * N + n];                                \
                yr[n] = (T)(int64_t)acc;                                                                               \
            }                                                                                                          \
        }                                                                                                              \
    }

DEFINE_MM_INT(int32_t, i32)
DEFINE_MM_INT(int64_t, i64)

amp_status amp_cpu_matmul(amp_kernel *k) {
    const amp_tensor *A = k->in[0], *B = k->in[1];
    amp_tensor *Y = k->out[0];
    amp_mm_shape s;
    amp_mm_shape_init(A, B, Y, &s);
    if (Y->numel == 0) return AMP_OK;
    switch (A->dtype) {
    case AMP_F32: mm_f32(k, &s, A->data, B->data, Y->data); break;
    case AMP_F64: mm_f64(k, &s, A->data, B->data, Y->data); break;
    case AMP_I32: mm_i32(k, &s, A->data, B->data, Y->data); break;
    case AMP_I64: mm_i64(k, &s, A->data, B->data, Y->data); break;
    case AMP_F16:
    case AMP_BF16: {
        size_t need = sizeof(float) * (size_t)(A->numel + B->numel + Y->numel);
        if (!k->ws || k->ws_bytes < need) return amp_kernel_fail(k, AMP_ERR_INTERNAL, "workspace too small");
        float *a = k->ws, *b = a + A->numel, *y = b + B->numel;
        amp_widen16(A->dtype, A->data, a, A->numel);
        amp_widen16(A->dtype, B->data, b, B->numel);
        mm_f32(k, &s, a, b, y);
        amp_narrow16(A->dtype, y, Y->data, Y->numel);
        break;
    }
    default: return amp_kernel_fail(k, AMP_ERR_UNSUPPORTED, "dtype %s is not supported", amp_dtype_name(A->dtype));
    }
    return AMP_OK;
}

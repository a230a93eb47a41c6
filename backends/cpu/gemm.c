/* The GEMM every CPU kernel shares (backends/cpu/gemm.h): one f32 or f64 product cut into
 * blocks over OpenMP threads, each block an OpenBLAS call held to one thread. The Gemm and
 * MatMul kernels over it are in backends/cpu/matmul.c. */
#include <cblas.h>
#include <omp.h>
#include <string.h>

#include "backends/cpu/cpu.h"
#include "backends/cpu/gemm.h"

/* OpenMP is the one thread pool: OpenBLAS runs single-threaded inside it, and a large product
 * is cut into column (or row) blocks, one per thread. Two pools on the same cores would spin
 * against each other between ops. */
#define GEMM_PAR_MIN ((int64_t)1 << 18)

#define DEFINE_PAR_GEMM(T, SUF, GEMM)                                                                                  \
    void amp_cpu_##SUF(int threads, int ta, int tb, int64_t M, int64_t N, int64_t K, T alpha, const T *A, int64_t lda, \
                       const T *B, int64_t ldb, T beta, T *C, int64_t ldc) {                                           \
        amp_cpu_blas_threads(1);                                                                                       \
        int64_t work = M * N * K;                                                                                      \
        int nt = threads < 1 ? 1 : threads;                                                                            \
        if (nt > 1 && work >= GEMM_PAR_MIN && (N >= 32 || M >= 32)) {                                                  \
            /* blocks along the longer side, whole multiples of 16 */                                                  \
            int by_cols = N >= M;                                                                                      \
            int64_t len = by_cols ? N : M, blk = (len + nt - 1) / nt;                                                  \
            blk = (blk + 15) / 16 * 16;                                                                                \
            int64_t nblk = (len + blk - 1) / blk;                                                                      \
            _Pragma("omp parallel for num_threads(nt) schedule(static)") for (int64_t b = 0; b < nblk; b++) {          \
                int64_t lo = b * blk, n = len - lo < blk ? len - lo : blk;                                             \
                if (by_cols)                                                                                           \
                    GEMM(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, (int)M,        \
                         (int)n, (int)K, alpha, A, (int)lda, B + (tb ? lo * ldb : lo), (int)ldb, beta, C + lo,         \
                         (int)ldc);                                                                                    \
                else                                                                                                   \
                    GEMM(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, (int)n,        \
                         (int)N, (int)K, alpha, A + (ta ? lo : lo * lda), (int)lda, B, (int)ldb, beta, C + lo * ldc,   \
                         (int)ldc);                                                                                    \
            }                                                                                                          \
            return;                                                                                                    \
        }                                                                                                              \
        GEMM(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, (int)M, (int)N, (int)K,    \
             alpha, A, (int)lda, B, (int)ldb, beta, C, (int)ldc);                                                      \
    }

DEFINE_PAR_GEMM(float, sgemm, cblas_sgemm)
DEFINE_PAR_GEMM(double, dgemm, cblas_dgemm)

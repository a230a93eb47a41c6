/* Matrix products of the CPU kernels (backends/cpu/gemm.c): one product split over threads with
 * OpenBLAS held to one thread; and the process-wide OpenBLAS thread count (backends/cpu/conv.c;
 * kept at one, the kernels thread with OpenMP). ta/tb: 1 when A/B are read transposed. */
#ifndef AMP_BACKENDS_CPU_GEMM_H
#define AMP_BACKENDS_CPU_GEMM_H

#include <stdint.h>

void amp_cpu_blas_threads(int n);
void amp_cpu_sgemm(int threads, int ta, int tb, int64_t M, int64_t N, int64_t K, float alpha, const float *A,
                   int64_t lda, const float *B, int64_t ldb, float beta, float *C, int64_t ldc);
void amp_cpu_dgemm(int threads, int ta, int tb, int64_t M, int64_t N, int64_t K, double alpha, const double *A,
                   int64_t lda, const double *B, int64_t ldb, double beta, double *C, int64_t ldc);

#endif

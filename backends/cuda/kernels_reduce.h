/* The Reduce family's C-callable launchers (k_reduce_ops.cu), for op_reduce.c. */
#ifndef AMP_BACKENDS_CUDA_KERNELS_REDUCE_H
#define AMP_BACKENDS_CUDA_KERNELS_REDUCE_H

#include "backends/cuda/kernels.h"

#ifdef __cplusplus
extern "C" {
#endif

/* y = (sum of x over the reduced dims of g) / div, each output element summed in double in a
 * fixed order and divided in double, rounded once on store (the CPU's ReduceSum with div 1 and
 * ReduceMean with div the count). The geometry is SumToShape's (amp_k_s2s_plan with the kept
 * shape); an element that sums nothing gives 0 / div (NaN for a mean, as the CPU). */
cudaError_t amp_k_reduce_sum(cudaStream_t stream, amp_k_dtype dt, const amp_k_s2s *g, const void *x, void *y,
                             double div);

#ifdef __cplusplus
}
#endif

#endif

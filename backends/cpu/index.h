/* Helpers of the index family's kernels (backends/cpu/index.c) shared with their gradient
 * kernels (backends/cpu/index_grad.c). */
#ifndef AMP_BACKENDS_CPU_INDEX_H
#define AMP_BACKENDS_CPU_INDEX_H

#include "backends/cpu/cpu.h"

/* GatherND/ScatterND geometry: checks ind against a tensor of dims[rank] with batch_dims, and
 * gives the tuple count and the slice size; the offset of tuple t's slice. */
amp_status amp_cpu_nd_check(amp_kernel *k, int rank, const int64_t *dims, const amp_tensor *ind, int64_t batch_dims,
                            int64_t *tuples, int64_t *slice);
int64_t amp_cpu_nd_offset(int rank, const int64_t *dims, const amp_tensor *ind, int64_t batch_dims, int64_t t);
/* The unpooled dims of X (or of I, which has X's shape) for MaxUnpool's attributes. */
amp_status amp_cpu_unpooled_dims(const amp_kernel *k, const amp_tensor *x, int64_t *dims);

#endif

/* amprt's own CUDA kernels as an op family (cuda_backend.h): Gather, Transpose, Slice, Concat, Split, Resize and the other data-movement ops.
 * Being written; the table is empty until its ops land. */
#include "backends/cuda/cuda_backend.h"

const amp_cuda_op amp_cuda_ops_data[] = {
    {AMP_OP_UNKNOWN, NULL, NULL, NULL, NULL},
};

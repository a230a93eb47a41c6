/* What the CUDA backend's parts share: the device state of one backend and the op families.
 *
 * backends/cuda/backend.c is the amp_backend (backends/backend.h); it owns one amp_cuda and asks
 * the families which ops they run. Each family is a table of amp_cuda_op entries in its own
 * file (op_gemm.c: cuBLASLt; op_conv.c: cuDNN's graph API; op_kernels.c, op_optim.c, op_ew.c,
 * op_norm.c, op_reduce.c, op_data.c, op_rnn.c: amprt's own kernels).
 * A family's prepare runs at plan time, once per step: it checks the node, builds what the step
 * needs (cuBLASLt descriptors and algorithm, a cuDNN execution plan, launch parameters) and
 * answers the workspace bytes, which the planner places in the arena. Its run enqueues the
 * step's work on cu->stream: no allocation, no synchronisation, no host read of device memory.
 *
 * Tensor views in run are device memory (the arena, the persistent region); at prepare time
 * their data is NULL except for inputs whose values are known while planning, which are host
 * memory then (a Reshape's shape, say): read what you need from them in prepare and keep it in
 * the step's state. */
#ifndef AMP_BACKENDS_CUDA_CUDA_BACKEND_H
#define AMP_BACKENDS_CUDA_CUDA_BACKEND_H

#include <cublasLt.h>
#include <cuda_runtime_api.h>
#include <cudnn.h>

#include "backends/backend.h"
#include "backends/cuda/cuda_status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct amp_cuda {
    amp_context *ctx;                 /* messages (the backend's) */
    int device;
    int cc_major, cc_minor;           /* compute capability */
    int sm_count;
    cudaStream_t stream;              /* every step's work goes here */
    cublasLtHandle_t lt;
    cudnnHandle_t dnn;
    cudnnBackendDescriptor_t devprop; /* device properties for cuDNN heuristics and plans */
    bool allow_tf32;                  /* FP32 GEMMs and convolutions may use TF32 (off unless asked) */
    struct amp_cuda_conv_plan *conv_plans; /* conv.c's plan cache (amp_cuda_conv_cache_free) */
} amp_cuda;

typedef struct amp_cuda_op {
    amp_op op;
    /* may this family run the node with these dtypes and attributes (views hold dtype and dims) */
    bool (*supports)(amp_cuda *cu, const amp_kernel *k);
    /* plan time; may be NULL (no state, no workspace) */
    amp_status (*prepare)(amp_cuda *cu, const amp_kernel *k, void **state, size_t *ws_bytes);
    /* frees what prepare built; may be NULL */
    void (*release)(amp_cuda *cu, void *state);
    amp_status (*run)(amp_cuda *cu, const amp_kernel *k, void *state);
} amp_cuda_op;

/* The families' tables, each ending with an entry whose run is NULL. */
extern const amp_cuda_op amp_cuda_ops_gemm[];    /* op_gemm.c */
extern const amp_cuda_op amp_cuda_ops_conv[];    /* op_conv.c */
extern const amp_cuda_op amp_cuda_ops_kernels[]; /* op_kernels.c: elementwise, pooling, shapes, loss */
extern const amp_cuda_op amp_cuda_ops_optim[];   /* op_optim.c: reductions, optimizers, loss scaling */
extern const amp_cuda_op amp_cuda_ops_ew[];      /* op_ew.c: more elementwise ops, Where, Sum, their gradients */
extern const amp_cuda_op amp_cuda_ops_norm[];    /* op_norm.c: Softmax, the normalizations, their gradients */
extern const amp_cuda_op amp_cuda_ops_reduce[];  /* op_reduce.c: Reduce*, average pooling, their gradients */
extern const amp_cuda_op amp_cuda_ops_data[];    /* op_data.c: Gather, Transpose, Slice, Concat, Split, Resize, ... */
extern const amp_cuda_op amp_cuda_ops_rnn[];     /* op_rnn.c: LSTM and its gradient */
extern const amp_cuda_op amp_cuda_ops_fused[];   /* op_fused.c: AddLayerNorm, CastMulti, Attention */

/* Device-side element types amprt's CUDA kernels and libraries take. */
static inline bool amp_cuda_float_dtype(amp_dtype t) { return t == AMP_F32 || t == AMP_F16 || t == AMP_BF16; }

#ifdef __cplusplus
}
#endif

#endif

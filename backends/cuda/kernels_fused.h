/* Launchers of the fused family's own CUDA kernels (backends/cuda/k_fused.cu), callable from C
 * (backends/cuda/op_fused.c): CastMulti's many casts in one launch, Attention's masked softmax
 * over the scores. AddLayerNorm needs no kernel of its own: op_fused.c launches the norm family's
 * amp_k_add_layer_norm (kernels_norm.h), or the broadcasting Add of kernels.h and then the
 * LayerNormalization kernel where R broadcasts otherwise.
 *
 * Every launcher enqueues its work on `stream` and returns the launch's cudaError_t; none
 * allocates, synchronises or reads device memory on the host. Pointers are device memory.
 * Semantics are the CPU kernels' (backends/cpu/fused.c). */
#ifndef AMP_BACKENDS_CUDA_KERNELS_FUSED_H
#define AMP_BACKENDS_CUDA_KERNELS_FUSED_H

#include <stdbool.h>
#include <stdint.h>

#include <cuda_runtime_api.h>

#include "backends/cuda/kernels.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- CastMulti -----------------------------------------------------------------------------------
 * Up to AMP_K_CAST_PAIRS pairs y[i] = cast(x[i]) of n[i] elements from src[i] to dst[i] in one
 * launch (a block row per pair); the conversions are Cast's (k_cast.cu: base/half.h, rtz from f32
 * only), a pair of equal dtypes is a bit copy. The struct travels by value, so the emulator's
 * device-pointer check does not see the pointers inside it. */
#define AMP_K_CAST_PAIRS 32
typedef struct amp_k_cast_multi {
    int pairs;
    bool rtz;
    const void *x[AMP_K_CAST_PAIRS];
    void *y[AMP_K_CAST_PAIRS];
    int64_t n[AMP_K_CAST_PAIRS];
    uint8_t src[AMP_K_CAST_PAIRS], dst[AMP_K_CAST_PAIRS]; /* amp_k_dtype */
} amp_k_cast_multi;

cudaError_t amp_k_cast_multi_run(cudaStream_t stream, const amp_k_cast_multi *p);

/* ---- Attention's masked softmax ------------------------------------------------------------------
 * rows = batch * sq rows of sk scores s (dtype t), in place: p = round_t(softmax(s + mask)) with
 * the row's maximum (a NaN wins), exp and sum in double, as the CPU's Attention. The mask (dtype
 * t, NULL: none) is read at moff(b) + i * ms_row + j * ms_col for row b * sq + i, moff(b) from b's
 * coordinates over the leading dims (lead[0..nlead), the last fastest) and their strides (0 where
 * the mask broadcasts). */
#define AMP_K_ATT_LEAD 6
typedef struct amp_k_att_softmax {
    int64_t rows, sq, sk;
    int nlead;
    int64_t lead[AMP_K_ATT_LEAD], ms_lead[AMP_K_ATT_LEAD];
    int64_t ms_row, ms_col;
    amp_k_dtype t;
} amp_k_att_softmax;

cudaError_t amp_k_att_softmax_run(cudaStream_t stream, const amp_k_att_softmax *p, void *s, const void *mask);

#ifdef __cplusplus
}
#endif

#endif

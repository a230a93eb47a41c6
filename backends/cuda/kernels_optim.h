/* Launchers of amprt's own reduction, optimizer and loss-scaling kernels (k_reduce.cu,
 * k_optim.cu), callable from C. Each enqueues its work on the stream it is given and returns the
 * launch's status; none allocates, none synchronises, none reads device memory on the host.
 * Every pointer is device memory. */
#ifndef AMP_BACKENDS_CUDA_KERNELS_OPTIM_H
#define AMP_BACKENDS_CUDA_KERNELS_OPTIM_H

#include <cuda_runtime_api.h>
#include <stdbool.h>
#include <stdint.h>

#include "base/base.h" /* amp_dtype, amp_tensor */

#ifdef __cplusplus
extern "C" {
#endif

/* Per-channel sums: y[c] = alpha * sum over (o, i) of x[o, c, i] + beta * y[c], for x of shape
 * [outer, channels, inner] (contiguous) and y of [channels]. x and y are f32, f16 or bf16 (they
 * may differ); the sums run in f32, in a fixed order (no atomics), so a launch gives the same
 * bits every time. beta 0: y is not read (it may hold anything, NaN included). An empty x
 * (outer or inner 0) gives y = beta * y. ConvGrad's bias gradient is (N, C, H*W); GemmCGrad's
 * bias is (rows, N, 1).
 * cudaErrorInvalidValue for another dtype, a negative size or more than 2^31-1 channels. */
cudaError_t amp_cuda_reduce_channels(cudaStream_t s, amp_dtype xt, const void *x, amp_dtype yt, void *y,
                                     int64_t outer, int64_t channels, int64_t inner, float alpha, float beta);

/* Test only. AMP_CUDA_REDUCE_PLANT_NO_BARRIER leaves out the barrier between the threads'
 * partial sums and the shared-memory tree that adds them (a planted bug the emulator must
 * expose); flags 0 is amp_cuda_reduce_channels. */
enum { AMP_CUDA_REDUCE_PLANT_NO_BARRIER = 1 };
cudaError_t amp_cuda_reduce_channels_flags(cudaStream_t s, amp_dtype xt, const void *x, amp_dtype yt, void *y,
                                           int64_t outer, int64_t channels, int64_t inner, float alpha, float beta,
                                           unsigned flags);

/* ---- UnscaleCheck, SGD, AdamW, LossScaleUpdate (ir/ops/optim.def), k_optim.cu --------------
 * Scalars live in device memory and are read there: lr, step, scale (f32 [1]), found_inf
 * (bool [1], one byte). Tensors come as arrays of views over device memory (a kernel's inputs,
 * as they lie in amp_kernel.in); the launchers read their dtypes, sizes and pointers on the host
 * and copy them into by-value kernel arguments, up to AMP_CUDA_OPTIM_BATCH tensors a launch. */

/* Tensors per launch of the multi-tensor kernels: the kernel argument struct holds this many
 * pointers and sizes (about 1 KiB, within the 4 KiB every CUDA version accepts). */
#define AMP_CUDA_OPTIM_BATCH 16

/* found_inf[0] = 1 when an element of a gradient g[0..n) (f32, f16, bf16 or f64) is inf or NaN,
 * or becomes so unscaled in f32 (amp_unscale_bad with 1/scale), else 0: a memset and one
 * launch per AMP_CUDA_OPTIM_BATCH non-empty gradients. */
cudaError_t amp_cuda_unscale_check(cudaStream_t s, const float *scale, int n, const amp_tensor *const *g,
                                   uint8_t *found_inf);

enum { AMP_CUDA_SGD, AMP_CUDA_ADAMW };

/* The node's attributes (ir/ops/optim.def), with their defaults applied. */
typedef struct amp_cuda_optim_attrs {
    int kind; /* AMP_CUDA_SGD or AMP_CUDA_ADAMW */
    float momentum, dampening, weight_decay;
    bool nesterov;
    float beta1, beta2, eps;
    float max_grad_norm; /* 0: no clipping */
} amp_cuda_optim_attrs;

/* The step's tensors, n of each: parameters W, gradients G, state M (SGD with momentum, AdamW;
 * else NULL) and V (AdamW; else NULL). */
typedef struct amp_cuda_optim_tensors {
    int n;
    const amp_tensor *const *w, *const *g, *const *m, *const *v;
} amp_cuda_optim_tensors;

/* Device workspace of one step: a control block and one double per chunk of AMP_OPTIM_CHUNK
 * elements of every gradient (the partial sums of the global norm). The sums start
 * AMP_CUDA_OPTIM_PART_OFFSET bytes in, parameter by parameter and chunk by chunk, as in the CPU
 * backend's workspace: tests compare the two bit for bit. */
#define AMP_CUDA_OPTIM_PART_OFFSET 256
size_t amp_cuda_optim_ws_bytes(const amp_cuda_optim_tensors *t);

/* One SGD or AdamW step on the device, ir/ops/optim.def's semantics with backends/optim.h's
 * per-element math: lr and step are read on the device, found_inf and scale too (either may
 * be NULL: false and 1). found_inf set: nothing is written but grad_norm[0] = +inf, and no
 * gradient is read. Else every parameter is updated, step[0] += 1 and grad_norm[0] is the
 * global norm of the unscaled gradients, summed in the CPU backend's order (the same bits). ws:
 * ws_bytes (at least amp_cuda_optim_ws_bytes) of device memory. cudaErrorInvalidValue for a
 * small workspace, a missing tensor or a dtype outside the optimizers' (W and G f32, f16 or
 * bf16, M and V W's dtype or f32); on the emulator, cudaErrorInvalidDevicePointer for a tensor
 * outside device memory. Every check comes before the first launch: a refused step writes
 * nothing. Launches: a one-thread prologue, one update launch per AMP_CUDA_OPTIM_BATCH
 * non-empty parameters (with clipping as many again for the norm, and one more thread), and a
 * one-thread end. */
cudaError_t amp_cuda_optim_step(cudaStream_t s, const amp_cuda_optim_attrs *a, const float *lr, float *step,
                                const uint8_t *found_inf, const float *scale, const amp_cuda_optim_tensors *t,
                                void *ws, size_t ws_bytes, float *grad_norm);

/* GradScaler's update (amp_loss_scale_step) of scale and tracker in place, on the device;
 * new_scale[0] receives the scale. */
cudaError_t amp_cuda_loss_scale_update(cudaStream_t s, float *scale, float *tracker, const uint8_t *found_inf,
                                       float growth_interval, float growth_factor, float backoff_factor,
                                       float *new_scale);

#ifdef __cplusplus
}
#endif

/* ---- device side: for the kernel files (nvcc, or the host compiler through the emulator) ---- */
#if defined(__CUDACC__) || defined(AMP_CUDA_EMU_H)
#include "base/half.h"

/* element i of an f32, f16 or bf16 array, in f32 */
static inline __device__ float amp_cuda_ldf(amp_dtype t, const void *p, int64_t i) {
  switch (t) {
    case AMP_F16: return amp_f16_to_f32(((const uint16_t *)p)[i]);
    case AMP_BF16: return amp_bf16_to_f32(((const uint16_t *)p)[i]);
    default: return ((const float *)p)[i];
  }
}

/* stores v, rounded to nearest even for f16 and bf16 */
static inline __device__ void amp_cuda_stf(amp_dtype t, void *p, int64_t i, float v) {
  switch (t) {
    case AMP_F16: ((uint16_t *)p)[i] = amp_f32_to_f16(v); break;
    case AMP_BF16: ((uint16_t *)p)[i] = amp_f32_to_bf16(v); break;
    default: ((float *)p)[i] = v; break;
  }
}
#endif

#endif

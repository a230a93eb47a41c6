/* What the op families of amprt's own kernels share (op_kernels.c, op_ew.c, op_norm.c, ...):
 * the kernels' dtype codes, optional inputs and outputs, launch statuses that name the node and
 * carry the emulator's detail, the per-step state, device-to-device copies. Include after
 * cuda_backend.h and kernels.h; everything is static inline. */
#ifndef AMP_BACKENDS_CUDA_OP_UTIL_H
#define AMP_BACKENDS_CUDA_OP_UTIL_H

#include <stdio.h>

#include "backends/cuda/cuda_backend.h"
#include "backends/cuda/kernels.h"

static inline bool kdtype(amp_dtype t, amp_k_dtype *out) {
    switch (t) {
    case AMP_F32: *out = AMP_K_F32; return true;
    case AMP_F16: *out = AMP_K_F16; return true;
    case AMP_BF16: *out = AMP_K_BF16; return true;
    default: return false;
    }
}

static inline const amp_tensor *in_opt(const amp_kernel *k, int i) { return i < k->nin ? k->in[i] : NULL; }
static inline amp_tensor *out_opt(const amp_kernel *k, int i) { return i < k->nout ? k->out[i] : NULL; }

static inline bool is_kfloat(const amp_tensor *t) {
    amp_k_dtype d;
    return t && kdtype(t->dtype, &d);
}

/* A launch's status; on failure the message also carries what the emulator saw (the barrier that
 * deadlocked, the wrong warp mask), and names the node. */
static inline amp_status launched(const amp_kernel *k, amp_status s) {
    if (!s) return AMP_OK;
    char msg[512];
    const char *detail = amp_k_launch_detail();
    snprintf(msg, sizeof msg, "%s%s%s", amp_context_last_error(k->ctx), detail[0] ? ": " : "", detail);
    return amp_kernel_fail(k, s, "%s", msg);
}
#define LAUNCH(k, call) launched((k), AMP_CUDA_RT((k)->ctx, call))

/* prepare's refusal: the op, why this family cannot run it, and the dtype of x (its main input) */
static inline amp_status refuse(const amp_kernel *k, const amp_tensor *x, const char *why) {
    return amp_kernel_fail(k, AMP_ERR_UNSUPPORTED, "%s on CUDA %s (input dtype %s)", k->n->op_type, why,
                           x ? amp_dtype_name(x->dtype) : "none");
}

static inline amp_status new_state(const amp_kernel *k, size_t bytes, void **state) {
    *state = amp_calloc(k->ctx, 1, bytes);
    return *state ? AMP_OK : amp_kernel_fail(k, AMP_ERR_NO_MEMORY, "no memory for the step's state");
}

static inline void release_state(amp_cuda *cu, void *state) { amp_free(cu->ctx, state); }

/* y = x when they are different buffers (the planner aliases them when the op is free). */
static inline amp_status copy_bytes(amp_cuda *cu, const amp_kernel *k, void *y, const void *x, size_t bytes) {
    if (y == x || bytes == 0) return AMP_OK;
    return AMP_CUDA_RT(k->ctx, cudaMemcpyAsync(y, x, bytes, cudaMemcpyDeviceToDevice, cu->stream));
}

#endif

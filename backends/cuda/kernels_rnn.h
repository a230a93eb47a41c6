/* Launchers of the LSTM kernels (k_rnn.cu), callable from C (backends/cuda/op_rnn.c).
 *
 * The GEMMs of an LSTM (X*W^T for every step, H*R^T per step) are cuBLASLt's (gemm.h); these
 * kernels are the rest: the initial state, the gate arithmetic of one step and the outputs after
 * the last. The state h, c and the products xw, hr are f32 (the CPU keeps them in f32 for f16
 * and bf16 too, rounding only what it stores in the outputs); tensors (X's dtype: bias, initial
 * state, peepholes, Y, Y_h, Y_c) are read and written in their own dtype, 16-bit rounded once on
 * store. Every launcher enqueues on `stream` and returns the launch's status; none allocates,
 * synchronises or reads device memory on the host. Pointers are device memory; optional ones
 * may be NULL. */
#ifndef AMP_BACKENDS_CUDA_KERNELS_RNN_H
#define AMP_BACKENDS_CUDA_KERNELS_RNN_H

#include <stdbool.h>
#include <stdint.h>

#include <cuda_runtime_api.h>

#include "backends/cuda/kernels.h"

#ifdef __cplusplus
extern "C" {
#endif

/* One direction of an LSTM: sizes, layout and the per-gate options (ONNX attributes). */
typedef struct amp_k_lstm_geom {
    int64_t S, B, H, D; /* steps, batch, hidden size, directions */
    int layout;         /* 0: [S, B, ...]; 1: [B, S, ...] */
    int d;              /* this direction (0 or 1) */
    bool fwd;           /* runs from time 0 upwards */
    bool coupled;       /* input_forget: f = 1 - i */
    bool has_clip;
    float clip;
    amp_k_dtype dt;     /* the tensors' dtype */
} amp_k_lstm_geom;

/* h, c [B, H] = initial_h, initial_c of direction g.d (zero where NULL). */
cudaError_t amp_k_lstm_init(cudaStream_t s, amp_k_lstm_geom g, const void *h0, const void *c0, float *h, float *c);

/* Step `step` of direction g.d: rows b with step < len_b (lens NULL: every row runs S steps) at
 * time t (step, or len_b-1-step backwards) take gates hr[b] (H*R^T of the state) + xw[row of
 * (t, b)] + Wb + Rb (bias [D, 8H] or NULL), peepholes p [D, 3H] (or NULL), update c and h and
 * write h into y (may be NULL). */
cudaError_t amp_k_lstm_step(cudaStream_t s, amp_k_lstm_geom g, int64_t step, const float *xw, const float *hr,
                            const void *bias, const void *p, const int32_t *lens, float *h, float *c, void *y);

/* After the last step of direction g.d: Y past each row's length is zero, Y_h / Y_c hold h / c
 * (zero for a row of length 0). Each of y, yh, yc may be NULL. */
cudaError_t amp_k_lstm_finish(cudaStream_t s, amp_k_lstm_geom g, const int32_t *lens, const float *h, const float *c,
                              void *y, void *yh, void *yc);

#ifdef __cplusplus
}
#endif

#endif

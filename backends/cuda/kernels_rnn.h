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
    int64_t I;          /* input size (the gradient's kernels) */
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

/* ---- LSTMGrad (backends/cpu/rnn_grad.c's order): steps are gathered in step order (row
 * step*B + b is row b's step `step`, time t as above), the forward pass is recomputed keeping
 * every state (hs, cs [(S+1)*B, H]) and gate value (gt [S*B, 4H]: i o f c), the steps run
 * backwards leaving the pre-activation gradients in da [S*B, 4H]. */

/* xs [S*B, I] = x (f32, X's layout) in step order, zero rows past a row's length. */
cudaError_t amp_k_lstm_gather(cudaStream_t s, amp_k_lstm_geom g, const float *x, const int32_t *lens, float *xs);
/* Forward step `step`: a (X*W^T in step order), hr (H*R^T of hs[step]) -> hs, cs [step+1], gt[step]. */
cudaError_t amp_k_lstm_fwd_step(cudaStream_t s, amp_k_lstm_geom g, int64_t step, const float *a, const float *hr,
                                const void *bias, const void *p, const int32_t *lens, float *hs, float *cs, float *gt);
/* dh, dc [B, H] = dY_h, dY_c of direction g.d (zero where NULL or for a row of length 0). */
cudaError_t amp_k_lstm_bwd_init(cudaStream_t s, amp_k_lstm_geom g, const int32_t *lens, const void *dyh,
                                const void *dyc, float *dh, float *dc);
/* Backward step `step`: da[step] and the new dc from dh (+ dY), gt, cs; pc [S*B, 3H] gets the
 * step's peephole products (zero for rows that do not run); dhp zero for those rows. */
cudaError_t amp_k_lstm_bwd_step(cudaStream_t s, amp_k_lstm_geom g, int64_t step, const float *gt, const float *cs,
                                const void *dy, const void *p, const int32_t *lens, float *dh, float *dc, float *da,
                                float *dhp, float *pc);
/* dh = dhp for the rows that ran step `step`. */
cudaError_t amp_k_lstm_bwd_commit(cudaStream_t s, amp_k_lstm_geom g, int64_t step, const int32_t *lens,
                                  const float *dhp, float *dh);
/* gx (X's layout, f32) += xs (step order) for the rows that ran. */
cudaError_t amp_k_lstm_scatter(cudaStream_t s, amp_k_lstm_geom g, const int32_t *lens, const float *xs, float *gx);
/* gb [8H] = column sums of da over rows 0..S*B-1 (twice: Wb and Rb), gp [3H] (may be NULL) =
 * sums of pc over steps S-1..0, rows 0..B-1: the CPU's order, in f32. */
cudaError_t amp_k_lstm_sums(cudaStream_t s, amp_k_lstm_geom g, const float *da, const float *pc, float *gb, float *gp);
/* dh0, dc0 (X's dtype, initial_h's layout; each may be NULL) = dh, dc. */
cudaError_t amp_k_lstm_put_state(cudaStream_t s, amp_k_lstm_geom g, const float *dh, const float *dc, void *dh0,
                                 void *dc0);

#ifdef __cplusplus
}
#endif

#endif

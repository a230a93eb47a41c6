/* Launchers of amprt's own CUDA kernels for the elementwise, pooling, shape and loss ops
 * (backends/cuda/k_*.cu), callable from C (backends/cuda/op_kernels.c).
 *
 * Every launcher enqueues its work on `stream` and returns the launch's cudaError_t; none
 * allocates, synchronises or reads device memory on the host, so a step made of them can be
 * captured in a CUDA graph. Sizes are element counts; n == 0 launches nothing and returns
 * cudaSuccess. Pointers are device memory. Element types are amp_k_dtype codes; 16-bit values
 * are computed in f32 and rounded once on store with base/half.h's conversions, so they are the
 * CPU backend's bit for bit wherever the formula is. */
#ifndef AMP_BACKENDS_CUDA_KERNELS_H
#define AMP_BACKENDS_CUDA_KERNELS_H

#include <stdbool.h>
#include <stdint.h>

#include <cuda_runtime_api.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The float element types the kernels take. */
typedef enum amp_k_dtype { AMP_K_F32 = 0, AMP_K_F16 = 1, AMP_K_BF16 = 2, AMP_K_DTYPE_COUNT } amp_k_dtype;

/* The message of the last failed launch beyond its cudaError_t (the emulator says which
 * barrier deadlocked or which warp mask was wrong); "" when there is none. */
const char *amp_k_launch_detail(void);

/* ---- Cast (k_cast.cu) ------------------------------------------------------------------------
 * y = x converted from src to dst (src != dst). rtz: round toward zero instead of to nearest
 * even, honoured (as on the CPU) only from f32 to f16 or bf16. */
cudaError_t amp_k_cast(cudaStream_t stream, amp_k_dtype src, amp_k_dtype dst, bool rtz, const void *x, void *y,
                       int64_t n);

/* ---- unary activations and their gradients (k_unary.cu) -------------------------------------- */

typedef enum amp_k_unary {
    AMP_K_RELU = 0,
    AMP_K_LEAKY_RELU, /* alpha */
    AMP_K_SIGMOID,
    AMP_K_TANH,
    AMP_K_GELU,
    AMP_K_GELU_TANH,  /* Gelu approximate="tanh" */
    AMP_K_ERF,
    AMP_K_SQRT,
    AMP_K_NEG,        /* forward only (its gradient is a Neg node) */
    AMP_K_EXP,
    AMP_K_LOG,
    AMP_K_ABS,
    AMP_K_RECIPROCAL,
    AMP_K_SOFTPLUS,
    AMP_K_ELU,        /* alpha */
    AMP_K_HARD_SWISH,
    AMP_K_HARD_SIGMOID, /* alpha, beta (amp_k_unary_fwd2, amp_k_unary_grad2) */
    AMP_K_UNARY_COUNT
} amp_k_unary;

/* y = f(x); in place (y == x) is allowed. */
cudaError_t amp_k_unary_fwd(cudaStream_t stream, amp_k_unary op, amp_k_dtype dt, float alpha, const void *x, void *y,
                            int64_t n);
/* dx = f'(.) dy, v the forward value the gradient reads (UnaryGrad: Y for Relu, Sigmoid, Tanh,
 * Sqrt, Exp and Reciprocal, X for the others); dx may alias dy. */
cudaError_t amp_k_unary_grad(cudaStream_t stream, amp_k_unary op, amp_k_dtype dt, float alpha, const void *dy,
                             const void *v, void *dx, int64_t n);
/* The same with a second attribute (HardSigmoid's beta; the others ignore it). */
cudaError_t amp_k_unary_fwd2(cudaStream_t stream, amp_k_unary op, amp_k_dtype dt, float alpha, float beta,
                             const void *x, void *y, int64_t n);
cudaError_t amp_k_unary_grad2(cudaStream_t stream, amp_k_unary op, amp_k_dtype dt, float alpha, float beta,
                              const void *dy, const void *v, void *dx, int64_t n);

/* ---- 2-D max pooling (k_pool.cu) ---------------------------------------------------------------
 * Planes of H x W in, OH x OW out (NCHW: planes = N * C); window kh x kw, strides, dilations and
 * the leading pads (the trailing pads and ceil_mode are in OH and OW already). */
typedef struct amp_k_pool2d {
    int64_t planes, h, w, oh, ow;
    int64_t kh, kw, sh, sw, dh, dw, ph, pw;
} amp_k_pool2d;

cudaError_t amp_k_max_pool2d(cudaStream_t stream, amp_k_dtype dt, const amp_k_pool2d *g, const void *x, void *y);
/* dx = dY routed to each window's winner (the first of equal values in row-major order; a NaN
 * wins over numbers), the contributions to one input element summed in f32 in output order. */
cudaError_t amp_k_max_pool2d_grad(cudaStream_t stream, amp_k_dtype dt, const amp_k_pool2d *g, const void *dy,
                                  const void *x, void *dx);

/* ---- Shape (k_shape.cu) ------------------------------------------------------------------------
 * y[0..n) = v[0..n), the values carried by the launch itself (n <= 8). */
cudaError_t amp_k_write_i64(cudaStream_t stream, int64_t *y, const int64_t *v, int n);

/* ---- SoftmaxCrossEntropyLoss (k_loss.cu) -------------------------------------------------------
 * Scores x [N, C, D] (class stride D), rows = N * D positions, targets [rows] (int64 or int32),
 * optional weights [C]. A target equal to ignore_index (when has_ii) weighs 0; a target outside
 * [0, C) gives NaN (the device cannot fail the step: the NaN reaches the loss, and the AMP
 * overflow check skips the step). */
typedef enum amp_k_reduction { AMP_K_RED_NONE = 0, AMP_K_RED_SUM, AMP_K_RED_MEAN } amp_k_reduction;

typedef struct amp_k_sce {
    int64_t rows, c, d;
    amp_k_dtype xt;          /* scores, log_prob, the loss, dX */
    bool t64;                /* targets are int64 (else int32) */
    bool has_weight;
    amp_k_dtype wt;
    bool has_ii;
    int64_t ii;
    amp_k_reduction red;
    /* gradient only */
    bool has_dy, has_dlogp;
    amp_k_dtype dyt, dlt;
} amp_k_sce;

/* Workspace bytes of the forward and of the gradient (multiples of 8). */
size_t amp_k_sce_ws(const amp_k_sce *p);
size_t amp_k_sce_grad_ws(const amp_k_sce *p);
/* loss: [rows] for reduction none, else one value (sum, or sum / sum of weights for mean,
 * summed in double in a fixed order: the same bits every run); logp: NULL or [N, C, D]. */
cudaError_t amp_k_sce_fwd(cudaStream_t stream, const amp_k_sce *p, const void *x, const void *t, const void *w,
                          void *loss, void *logp, void *ws);
/* dx [N, C, D] from dY (NULL when absent), x, t, w and dLogProb (NULL when absent). */
cudaError_t amp_k_sce_grad(cudaStream_t stream, const amp_k_sce *p, const void *dy, const void *x, const void *t,
                           const void *w, const void *dlogp, void *dx, void *ws);

/* ---- broadcasting binary arithmetic (k_binary.cu) ------------------------------------------------
 * y = a op b over the output's shape, numpy broadcasting, computed in f32 and rounded once on
 * store (the CPU kernels' formula, bit for bit: IEEE add, subtract, multiply and divide). The
 * geometry is collapsed on the host (amp_k_bcast_plan): adjacent dims that broadcast alike
 * merge, so most launches are flat (rank 1). In place (y == a or y == b, of the output's size)
 * is allowed. */
typedef enum amp_k_binop { AMP_K_ADD = 0, AMP_K_SUB, AMP_K_MUL, AMP_K_DIV, AMP_K_BINOP_COUNT } amp_k_binop;

#define AMP_K_BC_RANK 8
typedef struct amp_k_bcast {
    int rank;                      /* collapsed output rank, 1..AMP_K_BC_RANK (0: empty output) */
    int64_t n;                     /* output elements */
    int64_t dims[AMP_K_BC_RANK];   /* collapsed output dims */
    int64_t sa[AMP_K_BC_RANK];     /* a's element strides per collapsed dim (0: broadcast) */
    int64_t sb[AMP_K_BC_RANK];
    bool flat;                     /* a and b both have the output's shape */
} amp_k_bcast;

/* The collapsed geometry of y[out] = a[ad] op b[bd] (ranks right-aligned); false when a or b
 * does not broadcast to out. */
bool amp_k_bcast_plan(int out_rank, const int64_t *out, int a_rank, const int64_t *ad, int b_rank, const int64_t *bd,
                      amp_k_bcast *g);
cudaError_t amp_k_binary(cudaStream_t stream, amp_k_binop op, amp_k_dtype dt, const amp_k_bcast *g, const void *a,
                         const void *b, void *y);

/* ---- SumToShape (k_binary.cu): the gradient of a broadcast ----------------------------------------
 * r = x summed over the dims where the target is 1 (or missing); each output element summed in
 * double in a fixed order (the same bits every run), rounded once. */
typedef struct amp_k_s2s {
    int nk, nr;                    /* collapsed kept and reduced dims */
    int64_t kd[AMP_K_BC_RANK], ks[AMP_K_BC_RANK]; /* kept dims (the output's order) and x's strides */
    int64_t rd[AMP_K_BC_RANK], rs[AMP_K_BC_RANK]; /* reduced dims and x's strides */
    int64_t m, r;                  /* output elements; elements summed into each */
} amp_k_s2s;

/* The geometry of r = SumToShape(x): x of rank `rank` and dims xd, td the target's dims placed in
 * x's frame (1 where reduced); false when td does not broadcast to xd. */
bool amp_k_s2s_plan(int rank, const int64_t *xd, const int64_t *td, amp_k_s2s *g);
cudaError_t amp_k_sum_to_shape(cudaStream_t stream, amp_k_dtype dt, const amp_k_s2s *g, const void *x, void *r);

#ifdef __cplusplus
}
#endif

#endif

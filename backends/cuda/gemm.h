/* Planned GEMMs on cuBLASLt, in row-major terms (amprt's tensors are row-major).
 *
 *     D[m, n] = alpha * op(A)[m, k] op(B)[k, n] + beta * C[m, n] (+ bias[n] on every row)
 *
 * op(X) is X or X^T: A is stored [m, k] (or [k, m] with trans_a), B [k, n] (or [n, k] with
 * trans_b), C and D [m, n], all packed row-major. cuBLASLt is column-major: a row-major [r, c]
 * matrix is the column-major [c, r] one with the same bytes, so the plan asks cuBLASLt for
 * D^T = op(B)^T op(A)^T (its A is our B, its B our A, its m our n) and nothing is copied.
 *
 * Types: A, B, C, D and the bias share one dtype (amprt's autocast never mixes them). FP16 and
 * BF16 multiply with FP32 accumulation (CUBLAS_COMPUTE_32F, FP32 scale type: tensor cores on
 * Hopper); FP32 in full FP32 (CUBLAS_COMPUTE_32F), TF32 tensor cores only when cu->allow_tf32.
 *
 * Epilogue (applied in f32 to v = alpha op(A) op(B) + beta C + bias, rounded once into D):
 * `act` none, relu (max(v, 0), NaN passes) or gelu_tanh (cuBLASLt's GELU epilogue, the tanh
 * approximation: backends/elementwise.h's amp_gelu_tanh_f). With `aux`, the pre-activation
 * round(v) is also stored into an aux matrix of D's dtype and layout (GELU_AUX, GELU_AUX_BIAS):
 * gelu_tanh only (cuBLASLt's RELU_AUX stores a bit mask, not v), and cuBLASLt asks its leading
 * dimension (our n) and batch stride (stride_d) to be multiples of 8 elements; plan refuses the
 * rest with AMP_ERR_UNSUPPORTED and the reason.
 *
 * Batches: `batch` products with element strides between them; a stride of 0 repeats the
 * operand (broadcast; A, B and C only). The bias is the same vector for every batch.
 *
 * Plan time (amp_cuda_gemm_plan): the matmul descriptor, the four layouts and the preference are
 * built once, the heuristic chooses one algorithm under the workspace limit, and the plan keeps
 * it; *ws_bytes is what that algorithm needs, a buffer the planner places (arena buffers are
 * 256-byte aligned). Run time (amp_cuda_gemm_run): one cublasLtMatmul on cu->stream, nothing
 * allocated, nothing synchronised.
 *
 * Alignment: `align` is the byte alignment every pointer given to run has (and every batch
 * stride keeps), a power of two up to 256; the heuristic only picks algorithms that work with
 * it, and run refuses a pointer that breaks the promise (a GPU would fault or refuse). Arena
 * buffers are 256-byte aligned, the GEMM family counts on 16 for every tensor (op_gemm.c), and
 * an offset into one lowers it (amp_cuda_gemm_align). */
#ifndef AMP_BACKENDS_CUDA_GEMM_H
#define AMP_BACKENDS_CUDA_GEMM_H

#include "backends/cuda/cuda_backend.h"

#ifdef __cplusplus
extern "C" {
#endif

/* cuBLASLt's recommended workspace on Hopper; the heuristic's answer is usually smaller. */
#define AMP_CUDA_GEMM_WS_DEFAULT ((size_t)32 << 20)

/* The epilogue's activation (cuBLASLt: RELU*, GELU*). */
typedef enum amp_cuda_gemm_act {
    AMP_CUDA_GEMM_ACT_NONE = 0,
    AMP_CUDA_GEMM_ACT_RELU,
    AMP_CUDA_GEMM_ACT_GELU_TANH,
} amp_cuda_gemm_act;

/* What a plan computes; zero-initialised fields take the defaults named here. */
typedef struct amp_cuda_gemm_desc {
    amp_dtype dtype;       /* A, B, C, D and bias: AMP_F32, AMP_F16 or AMP_BF16 */
    int64_t m, n, k;       /* D is [m, n]; m, n, k >= 0 and below 2^31 */
    bool trans_a, trans_b; /* op(A) = A^T (A stored [k, m]); op(B) = B^T (B stored [n, k]) */
    float alpha, beta;     /* beta must be 0 without C */
    bool has_c;            /* C is read (beta != 0 needs it); run's c may equal d */
    bool bias;             /* add bias[n] to every row (CUBLASLT_EPILOGUE_BIAS) */
    amp_cuda_gemm_act act; /* activation of the epilogue; 0: none */
    bool aux;              /* also store the pre-activation into aux (needs act gelu_tanh) */
    int64_t batch;         /* products; 0 or 1: one */
    int64_t stride_a, stride_b, stride_c, stride_d; /* elements between batches (0: broadcast; not D) */
    size_t ws_limit;       /* largest workspace the algorithm may use; 0: AMP_CUDA_GEMM_WS_DEFAULT */
    unsigned align;        /* bytes every run pointer is aligned to (power of 2 <= 256); 0: 256 */
} amp_cuda_gemm_desc;

typedef struct amp_cuda_gemm amp_cuda_gemm;

/* Constructor: checks d, builds the descriptors and chooses the algorithm. *out (free with
 * amp_cuda_gemm_free) and *ws_bytes (the workspace run needs, 0 for none) are set on success
 * only; on failure cu->ctx holds the message (AMP_ERR_UNSUPPORTED when cuBLASLt has no
 * algorithm for it, AMP_ERR_INVALID_ARG for a desc that makes no sense). */
amp_status amp_cuda_gemm_plan(amp_cuda *cu, const amp_cuda_gemm_desc *d, amp_cuda_gemm **out, size_t *ws_bytes);
/* Method: enqueues D = act(alpha op(A) op(B) + beta C (+ bias)) on cu->stream (a plan without
 * aux; one with aux runs through amp_cuda_gemm_run_aux). a, b, c (when the plan has C), d, bias
 * (when it has one) are device memory; ws is the workspace of *ws_bytes (NULL when 0). An empty
 * product (m or n 0) enqueues nothing; k == 0 zeroes D (only without C and bias: plan refuses
 * the rest). The bias and aux pointers are written into the plan's matmul descriptor here, so
 * one plan runs on one thread at a time (as a session's steps do). */
amp_status amp_cuda_gemm_run(amp_cuda *cu, const amp_cuda_gemm *g, const void *a, const void *b, const void *c,
                             void *d, const void *bias, void *ws);
/* Method: amp_cuda_gemm_run with the aux matrix (device memory of D's dtype and layout, when the
 * plan has aux; NULL otherwise). aux must not overlap D; k == 0 zeroes it with D. */
amp_status amp_cuda_gemm_run_aux(amp_cuda *cu, const amp_cuda_gemm *g, const void *a, const void *b, const void *c,
                                 void *d, const void *bias, void *aux, void *ws);
/* Destructor; NULL is harmless. */
void amp_cuda_gemm_free(amp_cuda_gemm *g);

/* The largest power of two up to `align` dividing every one of the n byte offsets (a helper for
 * desc.align: offsets into 256-byte aligned buffers, batch strides in bytes). */
unsigned amp_cuda_gemm_align(unsigned align, int n, const int64_t *byte_offsets);

/* The GEMM family (op_gemm.c): NULL when amp_cuda_ops_gemm runs the node (Gemm, MatMul,
 * MatMulGrad, FusedGemm) with its dtypes, shapes and attributes, else why not, written into why (a
 * sentence naming the op and what is refused; the caller names the node). */
const char *amp_cuda_gemm_why(const amp_kernel *k, char *why, size_t why_len);

#ifdef __cplusplus
}
#endif

#endif

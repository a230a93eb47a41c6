/* Launchers of the CUDA kernels of the "more elementwise ops" family (backends/cuda/k_ew.cu),
 * callable from C (backends/cuda/op_ew.c): Pow, Clip and ClipGrad, Where, the variadic Sum,
 * Mean, Min and Max, BinaryGrad (Pow's) and ConstantOfShape's fill.
 *
 * Conventions are kernels.h's: every launcher enqueues on `stream` only (no allocation, no
 * synchronisation, no host read of device memory), n == 0 launches nothing, pointers are device
 * memory, float math in f32 rounded once on store, the CPU kernels' formulas bit for bit
 * wherever they are the same. */
#ifndef AMP_BACKENDS_CUDA_KERNELS_EW_H
#define AMP_BACKENDS_CUDA_KERNELS_EW_H

#include "backends/cuda/kernels.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- broadcasting over several inputs ------------------------------------------------------------
 * Like amp_k_bcast, for up to AMP_K_NBC_IN inputs: output dims of 1 dropped, neighbours that
 * broadcast alike in every input merged. */
#define AMP_K_NBC_IN 8
typedef struct amp_k_nbc {
    int rank;                                 /* collapsed rank, 1..AMP_K_BC_RANK (0: empty output) */
    int nin;
    int64_t n;                                /* output elements */
    int64_t dims[AMP_K_BC_RANK];
    int64_t st[AMP_K_NBC_IN][AMP_K_BC_RANK];  /* element strides per input and dim (0: broadcast) */
    bool flat;                                /* every input has the output's shape */
} amp_k_nbc;

/* The collapsed geometry of out[orank: out] from inputs i of rank ranks[i] and dims dims[i]
 * (right-aligned); false when an input does not broadcast or the collapsed rank exceeds
 * AMP_K_BC_RANK. */
bool amp_k_nbc_plan(int orank, const int64_t *out, int nin, const int *ranks, const int64_t *const *dims,
                    amp_k_nbc *g);

/* ---- Pow ------------------------------------------------------------------------------------------
 * y = a ^ b over g (2 inputs), a and b of dtype dt: powf in f32, and a * a where b is 2 (the CPU's x^2 shortcut,
 * the same correctly rounded value glibc's powf gives). */
cudaError_t amp_k_pow(cudaStream_t stream, amp_k_dtype dt, const amp_k_nbc *g, const void *a, const void *b,
                      void *y);

/* The element type of an exponent (or a slope) that may differ from the base's: a float type
 * or int32/int64. */
typedef enum amp_k_num {
    AMP_K_NUM_F32 = 0, AMP_K_NUM_F16, AMP_K_NUM_BF16, AMP_K_NUM_I32, AMP_K_NUM_I64, AMP_K_NUM_COUNT
} amp_k_num;

/* y = a ^ b, b of another type than a's dt (opset 12): pow in double, rounded once into dt (the
 * CPU's pow_mixed). */
cudaError_t amp_k_pow_mixed(cudaStream_t stream, amp_k_dtype dt, amp_k_num bt, const amp_k_nbc *g, const void *a,
                            const void *b, void *y);

/* ---- Clip, ClipGrad ----------------------------------------------------------------------------------
 * Bounds: lo_p/hi_p (element 0, dtype dt) when not NULL, else the values lo/hi (-inf/+inf for
 * none). y = min(max(x, lo), hi) (NaN passes; lo > hi gives hi). dx = dy where lo <= x <= hi,
 * else 0 (NaN x gives 0). */
cudaError_t amp_k_clip(cudaStream_t stream, amp_k_dtype dt, float lo, float hi, const void *lo_p, const void *hi_p,
                       const void *x, void *y, int64_t n);
cudaError_t amp_k_clip_grad(cudaStream_t stream, amp_k_dtype dt, float lo, float hi, const void *lo_p,
                            const void *hi_p, const void *dy, const void *x, void *dx, int64_t n);

/* ---- Where ----------------------------------------------------------------------------------------
 * y = c ? a : b over g (3 inputs: c bool bytes, a, b); es the element size of a, b, y (1, 2, 4
 * or 8: any dtype). */
cudaError_t amp_k_where(cudaStream_t stream, int es, const amp_k_nbc *g, const void *c, const void *a, const void *b,
                        void *y);

/* ---- Sum, Mean, Min, Max ---------------------------------------------------------------------------
 * y = in[0] op in[1] op ... in the CPU's order, in f32, Mean's sum times 1/nin, rounded once on
 * store; 2 <= nin <= AMP_K_VAR_MAX. Up to AMP_K_NBC_IN inputs go in one launch; beyond that
 * the running value is kept in f32 in acc (numel floats: amp_k_variadic_ws; for f32 y itself,
 * which needs none) and each later launch folds it with the next AMP_K_NBC_IN - 1 inputs.
 * amp_k_variadic_plan fills amp_k_variadic_launches(nin) geometries, one per launch (a later
 * launch's input 0 is the running value, of the output's shape). */
#define AMP_K_VAR_MAX 64
typedef enum amp_k_varop { AMP_K_VSUM = 0, AMP_K_VMEAN, AMP_K_VMIN, AMP_K_VMAX, AMP_K_VAROP_COUNT } amp_k_varop;
int amp_k_variadic_launches(int nin);
bool amp_k_variadic_plan(int orank, const int64_t *out, int nin, const int *ranks, const int64_t *const *dims,
                         amp_k_nbc *plans);
size_t amp_k_variadic_ws(amp_k_dtype dt, int nin, int64_t n);
cudaError_t amp_k_variadic(cudaStream_t stream, amp_k_varop op, amp_k_dtype dt, const amp_k_nbc *plans, int nin,
                           const void *const *in, void *acc, void *y);

/* ---- BinaryGrad ------------------------------------------------------------------------------------
 * out = dy * d(A op B)/dA or /dB at the output's shape, over g (3 inputs: dy, a, b, b placed
 * by the caller), each with its own float dtype, computed in f32 (backends/elementwise_grad.h);
 * an integer b computes in double and rounds once (the CPU's rule). */
typedef enum amp_k_bgop {
    AMP_K_POW_GRAD_BASE = 0, AMP_K_POW_GRAD_EXP, AMP_K_PRELU_GRAD_X, AMP_K_PRELU_GRAD_SLOPE, AMP_K_BGOP_COUNT
} amp_k_bgop;
cudaError_t amp_k_binary_grad(cudaStream_t stream, amp_k_bgop op, const amp_k_nbc *g, amp_k_dtype dyt,
                              amp_k_dtype at, amp_k_num bt, amp_k_dtype ot, const void *dy, const void *a,
                              const void *b, void *out);

/* ---- MinMaxGrad ------------------------------------------------------------------------------------
 * g = dy / (the number of inputs equal to y) where input `index` equals y (a NaN y: the NaN
 * inputs), else 0, at the output's shape. g's geometry: dy, y and the forward's inputs x_j,
 * at most AMP_K_NBC_IN - 2 of them, all of dtype dt. */
cudaError_t amp_k_min_max_grad(cudaStream_t stream, amp_k_dtype dt, const amp_k_nbc *g, int index,
                               const void *const *in, void *out);

/* ---- Dropout, DropoutGrad ---------------------------------------------------------------------------
 * y = keep ? x * scale : 0 (scale = 1 / (1 - ratio), 0 for ratio 1), the CPU kernels' masks:
 * - amp_k_dropout_mask: keep = mask_in[i] != 0 (a bool mask; DropoutGrad with the forward's mask);
 * - amp_k_dropout_counter: keep = amp_dropout_u01(seed, i) >= (float)ratio, the seed being
 *   amp_dropout_content_seed of src (src_n elements of src_es bytes: the forward's X), computed
 *   on the device into seed_ws (8 bytes of workspace);
 * - amp_k_dropout_mt: keep = the i-th double of MT19937 seeded with `seed` (numpy's sequence)
 *   >= ratio; one block walks the sequence (312 elements per generation of the state).
 * f32 rounds x * scale from double, 16-bit types from the f32 product (dbl16: from the double
 * product rounded to f32 first, as the seeded forward's amp_st does). mask_out: NULL or n bool bytes, the decision. */
cudaError_t amp_k_dropout_mask(cudaStream_t stream, amp_k_dtype dt, double scale, const uint8_t *mask_in,
                               const void *x, void *y, int64_t n);
cudaError_t amp_k_dropout_counter(cudaStream_t stream, amp_k_dtype dt, double ratio, double scale, const void *src,
                                  int src_es, int64_t src_n, uint64_t *seed_ws, const void *x, void *y,
                                  uint8_t *mask_out, int64_t n);
cudaError_t amp_k_dropout_mt(cudaStream_t stream, amp_k_dtype dt, bool dbl16, uint32_t seed, double ratio,
                             double scale, const void *x, void *y, uint8_t *mask_out, int64_t n);

/* ---- fill -------------------------------------------------------------------------------------------
 * y[0..n) = the es-byte element `pattern` (its low es bytes, little-endian), es 1, 2, 4 or 8. */
cudaError_t amp_k_fill(cudaStream_t stream, int es, uint64_t pattern, void *y, int64_t n);

#ifdef __cplusplus
}
#endif

#endif

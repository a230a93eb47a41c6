/* Unary activations and their gradients (kernels.h: amp_k_unary_fwd, amp_k_unary_grad): one
 * kernel template over the op and the dtype, with the per-element math of
 * backends/elementwise.h and backends/elementwise_grad.h, the functions the CPU kernels call. */
#include "backends/cuda/kernels_dev.h"
#include "backends/elementwise.h"
#include "backends/elementwise_grad.h"

template <int OP>
__device__ __forceinline__ float amp_k_act(float v, float alpha, float beta) {
    switch (OP) {
    case AMP_K_RELU: return amp_relu_f(v);
    case AMP_K_LEAKY_RELU: return amp_leaky_relu_f(v, alpha);
    case AMP_K_SIGMOID: return amp_sigmoid_f(v);
    case AMP_K_TANH: return tanhf(v);
    case AMP_K_GELU: return amp_gelu_f(v);
    case AMP_K_GELU_TANH: return amp_gelu_tanh_f(v);
    case AMP_K_ERF: return erff(v);
    case AMP_K_SQRT: return sqrtf(v);
    case AMP_K_NEG: return -v;
    case AMP_K_EXP: return expf(v);
    case AMP_K_LOG: return logf(v);
    case AMP_K_ABS: return fabsf(v);
    case AMP_K_RECIPROCAL: return amp_reciprocal_f(v);
    case AMP_K_SOFTPLUS: return amp_softplus_f(v);
    case AMP_K_ELU: return amp_elu_f(v, alpha);
    case AMP_K_HARD_SWISH: return amp_hard_swish_f(v);
    default: return amp_hard_sigmoid_f(v, alpha, beta);
    }
}

/* v is the forward value the derivative reads: Y for Relu, Sigmoid, Tanh, Sqrt, Exp and
 * Reciprocal; X for the others. Neg has no UnaryGrad (op_kernels.c refuses it). */
template <int OP>
__device__ __forceinline__ float amp_k_act_grad(float g, float v, float alpha, float beta) {
    switch (OP) {
    case AMP_K_RELU: return amp_relu_grad_f(g, v);
    case AMP_K_LEAKY_RELU: return amp_leaky_relu_grad_f(g, v, alpha);
    case AMP_K_SIGMOID: return amp_sigmoid_grad_f(g, v);
    case AMP_K_TANH: return amp_tanh_grad_f(g, v);
    case AMP_K_GELU: return amp_gelu_grad_f(g, v);
    case AMP_K_GELU_TANH: return amp_gelu_tanh_grad_f(g, v);
    case AMP_K_ERF: return amp_erf_grad_f(g, v);
    case AMP_K_SQRT: return amp_sqrt_grad_f(g, v);
    case AMP_K_NEG: return -g;
    case AMP_K_EXP: return amp_exp_grad_f(g, v);
    case AMP_K_LOG: return amp_log_grad_f(g, v);
    case AMP_K_ABS: return amp_abs_grad_f(g, v);
    case AMP_K_RECIPROCAL: return amp_reciprocal_grad_f(g, v);
    case AMP_K_SOFTPLUS: return amp_softplus_grad_f(g, v);
    case AMP_K_ELU: return amp_elu_grad_f(g, v, alpha);
    case AMP_K_HARD_SWISH: return amp_hard_swish_grad_f(g, v);
    default: return amp_hard_sigmoid_grad_f(g, v, alpha, beta);
    }
}

/* x and y may be the same buffer (each element is read before it is written), so no __restrict__. */
template <int OP, int T, bool VEC>
__global__ void amp_k_unary_kernel(const void *x, void *y, int64_t n, float alpha, float beta) {
    if (VEC) {
        AMP_K_FOR(q, n >> 2) {
            float v[4];
            amp_k_ld4(x, T, q, v);
            for (int j = 0; j < 4; j++) v[j] = amp_k_act<OP>(v[j], alpha, beta);
            amp_k_st4(y, T, q, v);
        }
        const int64_t i = amp_k_tail4(n);
        if (i < n) amp_k_st(y, T, i, amp_k_act<OP>(amp_k_ld(x, T, i), alpha, beta));
    } else {
        AMP_K_FOR(i, n) amp_k_st(y, T, i, amp_k_act<OP>(amp_k_ld(x, T, i), alpha, beta));
    }
}

template <int OP, int T, bool VEC>
__global__ void amp_k_unary_grad_kernel(const void *dy, const void *v, void *dx, int64_t n, float alpha, float beta) {
    if (VEC) {
        AMP_K_FOR(q, n >> 2) {
            float g[4], f[4];
            amp_k_ld4(dy, T, q, g);
            amp_k_ld4(v, T, q, f);
            for (int j = 0; j < 4; j++) g[j] = amp_k_act_grad<OP>(g[j], f[j], alpha, beta);
            amp_k_st4(dx, T, q, g);
        }
        const int64_t i = amp_k_tail4(n);
        if (i < n) amp_k_st(dx, T, i, amp_k_act_grad<OP>(amp_k_ld(dy, T, i), amp_k_ld(v, T, i), alpha, beta));
    } else {
        AMP_K_FOR(i, n) amp_k_st(dx, T, i, amp_k_act_grad<OP>(amp_k_ld(dy, T, i), amp_k_ld(v, T, i), alpha, beta));
    }
}

typedef void (*amp_k_fwd_fn)(const void *, void *, int64_t, float, float);
typedef void (*amp_k_grad_fn)(const void *, const void *, void *, int64_t, float, float);

/* [four at once][op][dtype] */
#define AMP_K_BY_DTYPE(K, OP, V) {K<OP, AMP_K_F32, V>, K<OP, AMP_K_F16, V>, K<OP, AMP_K_BF16, V>}
#define AMP_K_BY_OP(K, V)                                                                                   \
    {AMP_K_BY_DTYPE(K, AMP_K_RELU, V), AMP_K_BY_DTYPE(K, AMP_K_LEAKY_RELU, V), AMP_K_BY_DTYPE(K, AMP_K_SIGMOID, V), \
     AMP_K_BY_DTYPE(K, AMP_K_TANH, V), AMP_K_BY_DTYPE(K, AMP_K_GELU, V), AMP_K_BY_DTYPE(K, AMP_K_GELU_TANH, V), \
     AMP_K_BY_DTYPE(K, AMP_K_ERF, V), AMP_K_BY_DTYPE(K, AMP_K_SQRT, V), AMP_K_BY_DTYPE(K, AMP_K_NEG, V),           \
     AMP_K_BY_DTYPE(K, AMP_K_EXP, V), AMP_K_BY_DTYPE(K, AMP_K_LOG, V), AMP_K_BY_DTYPE(K, AMP_K_ABS, V),            \
     AMP_K_BY_DTYPE(K, AMP_K_RECIPROCAL, V), AMP_K_BY_DTYPE(K, AMP_K_SOFTPLUS, V), AMP_K_BY_DTYPE(K, AMP_K_ELU, V), \
     AMP_K_BY_DTYPE(K, AMP_K_HARD_SWISH, V), AMP_K_BY_DTYPE(K, AMP_K_HARD_SIGMOID, V)}

static const amp_k_fwd_fn amp_k_fwd_table[2][AMP_K_UNARY_COUNT][AMP_K_DTYPE_COUNT] = {
    AMP_K_BY_OP(amp_k_unary_kernel, false), AMP_K_BY_OP(amp_k_unary_kernel, true)};
static const amp_k_grad_fn amp_k_grad_table[2][AMP_K_UNARY_COUNT][AMP_K_DTYPE_COUNT] = {
    AMP_K_BY_OP(amp_k_unary_grad_kernel, false), AMP_K_BY_OP(amp_k_unary_grad_kernel, true)};

extern "C" cudaError_t amp_k_unary_fwd2(cudaStream_t stream, amp_k_unary op, amp_k_dtype dt, float alpha, float beta,
                                        const void *x, void *y, int64_t n) {
    if ((unsigned)op >= AMP_K_UNARY_COUNT || (unsigned)dt >= AMP_K_DTYPE_COUNT) return cudaErrorInvalidValue;
    if (n <= 0) return cudaSuccess;
    const bool vec = amp_k_aligned4(x, dt) && amp_k_aligned4(y, dt);
    return AMP_CUDA_LAUNCH_PLAIN(amp_k_fwd_table[vec][op][dt], amp_k_blocks4(n, vec), AMP_K_THREADS, 0, stream, x, y,
                                 n, alpha, beta);
}

extern "C" cudaError_t amp_k_unary_grad2(cudaStream_t stream, amp_k_unary op, amp_k_dtype dt, float alpha, float beta,
                                         const void *dy, const void *v, void *dx, int64_t n) {
    if ((unsigned)op >= AMP_K_UNARY_COUNT || (unsigned)dt >= AMP_K_DTYPE_COUNT) return cudaErrorInvalidValue;
    if (n <= 0) return cudaSuccess;
    const bool vec = amp_k_aligned4(dy, dt) && amp_k_aligned4(v, dt) && amp_k_aligned4(dx, dt);
    return AMP_CUDA_LAUNCH_PLAIN(amp_k_grad_table[vec][op][dt], amp_k_blocks4(n, vec), AMP_K_THREADS, 0, stream, dy, v,
                                 dx, n, alpha, beta);
}

extern "C" cudaError_t amp_k_unary_fwd(cudaStream_t stream, amp_k_unary op, amp_k_dtype dt, float alpha, const void *x,
                                       void *y, int64_t n) {
    return amp_k_unary_fwd2(stream, op, dt, alpha, 0.0f, x, y, n);
}

extern "C" cudaError_t amp_k_unary_grad(cudaStream_t stream, amp_k_unary op, amp_k_dtype dt, float alpha,
                                        const void *dy, const void *v, void *dx, int64_t n) {
    return amp_k_unary_grad2(stream, op, dt, alpha, 0.0f, dy, v, dx, n);
}

/* Per-element derivatives of the elementwise ops, shared by the CPU gradient kernels
 * (backends/cpu/elementwise_grad.c) and future CUDA device code. Each function returns the
 * input gradient from the output gradient g and one forward value: x (the forward input) or y
 * (the forward output) as its parameter name says. The float version (_f) serves f32, f16 and
 * bf16, which compute in f32; the double version (_d) serves f64.
 *
 * Points where the derivative jumps (ties) follow PyTorch's autograd, so models trained here and
 * there agree:
 *  - Relu: 0 at x = 0 (threshold_backward on the result: y <= 0 gives 0).
 *  - LeakyRelu: alpha at x = 0 (x > 0 ? 1 : alpha).
 *  - Abs: 0 at x = 0 (grad * sign(x)).
 *  - Elu, Selu, Celu: the left branch at x = 0 (x <= 0).
 *  - HardSigmoid: 0 on the edges of the linear part (open interval), HardSwish: x/3 + 1/2 on
 *    [-3, 3] (closed), 0 below, 1 above.
 *  - ThresholdedRelu and Shrink: 0 at the thresholds.
 *  - Clip: 1 on [min, max] including the bounds.
 * Formulas avoid overflow where the forward does (sigmoid of large |x|, softplus). */
#ifndef AMP_BACKENDS_GRAD_ELEMENTWISE_H
#define AMP_BACKENDS_GRAD_ELEMENTWISE_H

#include <math.h>
#include <stdint.h>

#include "backends/elementwise.h"
#include "ir/ops/elementwise.h" /* amp_binary_grad_b_offset */

#define AMP_GRAD_2_SQRTPI 1.12837916709551257390     /* 2 / sqrt(pi) */
#define AMP_GRAD_INV_SQRT2PI 0.39894228040143267794  /* 1 / sqrt(2 pi) */
#define AMP_GRAD_INV_SQRT2 0.70710678118654752440
#define AMP_GRAD_GELU_K 0.79788456080286535588       /* sqrt(2 / pi) */
#define AMP_GRAD_GELU_C 0.044715

/* ---- derivatives read from the forward output y ------------------------------------------ */

/* y <= 0 rather than y > 0: a NaN output lets the gradient through, as PyTorch does. */
AMP_HD float amp_relu_grad_f(float g, float y) { return y <= 0.0f ? 0.0f : g; }
AMP_HD double amp_relu_grad_d(double g, double y) { return y <= 0.0 ? 0.0 : g; }

AMP_HD float amp_sigmoid_grad_f(float g, float y) { return g * y * (1.0f - y); }
AMP_HD double amp_sigmoid_grad_d(double g, double y) { return g * y * (1.0 - y); }

AMP_HD float amp_tanh_grad_f(float g, float y) { return g * (1.0f - y * y); }
AMP_HD double amp_tanh_grad_d(double g, double y) { return g * (1.0 - y * y); }

AMP_HD float amp_exp_grad_f(float g, float y) { return g * y; }
AMP_HD double amp_exp_grad_d(double g, double y) { return g * y; }

AMP_HD float amp_sqrt_grad_f(float g, float y) { return g * 0.5f / y; }
AMP_HD double amp_sqrt_grad_d(double g, double y) { return g * 0.5 / y; }

/* d(1/x) = -1/x^2 = -y^2 */
AMP_HD float amp_reciprocal_grad_f(float g, float y) { return -g * (y * y); }
AMP_HD double amp_reciprocal_grad_d(double g, double y) { return -g * (y * y); }

/* d tan = 1 + tan^2 */
AMP_HD float amp_tan_grad_f(float g, float y) { return g * (1.0f + y * y); }
AMP_HD double amp_tan_grad_d(double g, double y) { return g * (1.0 + y * y); }

/* ---- derivatives read from the forward input x ------------------------------------------- */

AMP_HD float amp_leaky_relu_grad_f(float g, float x, float alpha) { return x > 0.0f ? g : g * alpha; }
AMP_HD double amp_leaky_relu_grad_d(double g, double x, double alpha) { return x > 0.0 ? g : g * alpha; }

AMP_HD float amp_erf_grad_f(float g, float x) { return g * (float)AMP_GRAD_2_SQRTPI * expf(-x * x); }
AMP_HD double amp_erf_grad_d(double g, double x) { return g * AMP_GRAD_2_SQRTPI * exp(-x * x); }

/* d/dx x Phi(x) = Phi(x) + x phi(x) */
AMP_HD float amp_gelu_grad_f(float g, float x) {
    float cdf = 0.5f * (1.0f + erff(x * (float)AMP_GRAD_INV_SQRT2));
    float pdf = (float)AMP_GRAD_INV_SQRT2PI * expf(-0.5f * x * x);
    return g * (cdf + x * pdf);
}
AMP_HD double amp_gelu_grad_d(double g, double x) {
    double cdf = 0.5 * (1.0 + erf(x * AMP_GRAD_INV_SQRT2));
    double pdf = AMP_GRAD_INV_SQRT2PI * exp(-0.5 * x * x);
    return g * (cdf + x * pdf);
}

/* y = x (1 + tanh u) / 2, u = k (x + c x^3): y' = (1 + t) / 2 + x (1 - t^2) k (1 + 3 c x^2) / 2 */
AMP_HD float amp_gelu_tanh_grad_f(float g, float x) {
    const float k = (float)AMP_GRAD_GELU_K, c = (float)AMP_GRAD_GELU_C;
    float x2 = x * x, t = tanhf(k * (x + c * x2 * x));
    return g * (0.5f * (1.0f + t) + 0.5f * x * (1.0f - t * t) * k * (1.0f + 3.0f * c * x2));
}
AMP_HD double amp_gelu_tanh_grad_d(double g, double x) {
    const double k = AMP_GRAD_GELU_K, c = AMP_GRAD_GELU_C;
    double x2 = x * x, t = tanh(k * (x + c * x2 * x));
    return g * (0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * k * (1.0 + 3.0 * c * x2));
}

AMP_HD float amp_log_grad_f(float g, float x) { return g / x; }
AMP_HD double amp_log_grad_d(double g, double x) { return g / x; }

/* grad * sign(x): 0 at x = 0 (PyTorch). */
AMP_HD float amp_abs_grad_f(float g, float x) { return g * amp_sign_f(x); }
AMP_HD double amp_abs_grad_d(double g, double x) { return g * amp_sign_d(x); }

AMP_HD float amp_sin_grad_f(float g, float x) { return g * cosf(x); }
AMP_HD double amp_sin_grad_d(double g, double x) { return g * cos(x); }
AMP_HD float amp_cos_grad_f(float g, float x) { return -g * sinf(x); }
AMP_HD double amp_cos_grad_d(double g, double x) { return -g * sin(x); }

/* (1 - x)(1 + x) keeps precision near |x| = 1, where 1 - x^2 cancels. */
AMP_HD float amp_asin_grad_f(float g, float x) { return g / sqrtf((1.0f - x) * (1.0f + x)); }
AMP_HD double amp_asin_grad_d(double g, double x) { return g / sqrt((1.0 - x) * (1.0 + x)); }
AMP_HD float amp_acos_grad_f(float g, float x) { return -g / sqrtf((1.0f - x) * (1.0f + x)); }
AMP_HD double amp_acos_grad_d(double g, double x) { return -g / sqrt((1.0 - x) * (1.0 + x)); }
AMP_HD float amp_atan_grad_f(float g, float x) { return g / (1.0f + x * x); }
AMP_HD double amp_atan_grad_d(double g, double x) { return g / (1.0 + x * x); }

AMP_HD float amp_sinh_grad_f(float g, float x) { return g * coshf(x); }
AMP_HD double amp_sinh_grad_d(double g, double x) { return g * cosh(x); }
AMP_HD float amp_cosh_grad_f(float g, float x) { return g * sinhf(x); }
AMP_HD double amp_cosh_grad_d(double g, double x) { return g * sinh(x); }

/* 1 / sqrt(x^2 + 1) as 1 / hypot(x, 1): no overflow of x^2 for large |x|. */
AMP_HD float amp_asinh_grad_f(float g, float x) { return g / hypotf(x, 1.0f); }
AMP_HD double amp_asinh_grad_d(double g, double x) { return g / hypot(x, 1.0); }
/* 1 / sqrt((x - 1)(x + 1)): no overflow and no cancellation near 1. */
AMP_HD float amp_acosh_grad_f(float g, float x) { return g / (sqrtf(x - 1.0f) * sqrtf(x + 1.0f)); }
AMP_HD double amp_acosh_grad_d(double g, double x) { return g / (sqrt(x - 1.0) * sqrt(x + 1.0)); }
AMP_HD float amp_atanh_grad_f(float g, float x) { return g / ((1.0f - x) * (1.0f + x)); }
AMP_HD double amp_atanh_grad_d(double g, double x) { return g / ((1.0 - x) * (1.0 + x)); }

/* d softplus = sigmoid */
AMP_HD float amp_softplus_grad_f(float g, float x) { return g * amp_sigmoid_f(x); }
AMP_HD double amp_softplus_grad_d(double g, double x) { return g * amp_sigmoid_d(x); }

AMP_HD float amp_softsign_grad_f(float g, float x) {
    float d = 1.0f + fabsf(x);
    return g / (d * d);
}
AMP_HD double amp_softsign_grad_d(double g, double x) {
    double d = 1.0 + fabs(x);
    return g / (d * d);
}

AMP_HD float amp_elu_grad_f(float g, float x, float alpha) { return x <= 0.0f ? g * alpha * expf(x) : g; }
AMP_HD double amp_elu_grad_d(double g, double x, double alpha) { return x <= 0.0 ? g * alpha * exp(x) : g; }

AMP_HD float amp_selu_grad_f(float g, float x, float alpha, float gamma) {
    return x <= 0.0f ? g * gamma * alpha * expf(x) : g * gamma;
}
AMP_HD double amp_selu_grad_d(double g, double x, double alpha, double gamma) {
    return x <= 0.0 ? g * gamma * alpha * exp(x) : g * gamma;
}

/* alpha (e^(x/alpha) - 1) has derivative e^(x/alpha) */
AMP_HD float amp_celu_grad_f(float g, float x, float alpha) { return x <= 0.0f ? g * expf(x / alpha) : g; }
AMP_HD double amp_celu_grad_d(double g, double x, double alpha) { return x <= 0.0 ? g * exp(x / alpha) : g; }

AMP_HD float amp_hard_sigmoid_grad_f(float g, float x, float alpha, float beta) {
    float v = alpha * x + beta;
    return v > 0.0f && v < 1.0f ? g * alpha : 0.0f;
}
AMP_HD double amp_hard_sigmoid_grad_d(double g, double x, double alpha, double beta) {
    double v = alpha * x + beta;
    return v > 0.0 && v < 1.0 ? g * alpha : 0.0;
}

AMP_HD float amp_hard_swish_grad_f(float g, float x) {
    return x < -3.0f ? 0.0f : (x <= 3.0f ? g * (x * (1.0f / 3.0f) + 0.5f) : g);
}
AMP_HD double amp_hard_swish_grad_d(double g, double x) {
    return x < -3.0 ? 0.0 : (x <= 3.0 ? g * (x * (1.0 / 3.0) + 0.5) : g);
}

AMP_HD float amp_thresholded_relu_grad_f(float g, float x, float alpha) { return x > alpha ? g : 0.0f; }
AMP_HD double amp_thresholded_relu_grad_d(double g, double x, double alpha) { return x > alpha ? g : 0.0; }

AMP_HD float amp_shrink_grad_f(float g, float x, float lambd) { return x < -lambd || x > lambd ? g : 0.0f; }
AMP_HD double amp_shrink_grad_d(double g, double x, double lambd) { return x < -lambd || x > lambd ? g : 0.0; }

/* mish = x tanh(sp(x)): mish' = tanh(sp) + x sigmoid(x) (1 - tanh(sp)^2) */
AMP_HD float amp_mish_grad_f(float g, float x) {
    float t = tanhf(amp_softplus_f(x));
    return g * (t + x * amp_sigmoid_f(x) * (1.0f - t * t));
}
AMP_HD double amp_mish_grad_d(double g, double x) {
    double t = tanh(amp_softplus_d(x));
    return g * (t + x * amp_sigmoid_d(x) * (1.0 - t * t));
}

/* ---- binary ops ---------------------------------------------------------------------------- */

/* d a^b / da = b a^(b-1); 0 where b = 0 (so 0^0 gives 0, not 0 * inf). */
AMP_HD float amp_pow_grad_base_f(float g, float a, float b) { return b == 0.0f ? 0.0f : g * b * powf(a, b - 1.0f); }
AMP_HD double amp_pow_grad_base_d(double g, double a, double b) { return b == 0.0 ? 0.0 : g * b * pow(a, b - 1.0); }

/* d a^b / db = a^b log a; 0 where a = 0 and b >= 0 (the limit; log 0 would give NaN). */
AMP_HD float amp_pow_grad_exp_f(float g, float a, float b) {
    return a == 0.0f && b >= 0.0f ? 0.0f : g * powf(a, b) * logf(a);
}
AMP_HD double amp_pow_grad_exp_d(double g, double a, double b) {
    return a == 0.0 && b >= 0.0 ? 0.0 : g * pow(a, b) * log(a);
}

/* PRelu: slope where x <= 0 (PyTorch: x > 0 ? grad : slope * grad). */
AMP_HD float amp_prelu_grad_x_f(float g, float x, float slope) { return x > 0.0f ? g : g * slope; }
AMP_HD double amp_prelu_grad_x_d(double g, double x, double slope) { return x > 0.0 ? g : g * slope; }
AMP_HD float amp_prelu_grad_slope_f(float g, float x) { return x > 0.0f ? 0.0f : g * x; }
AMP_HD double amp_prelu_grad_slope_d(double g, double x) { return x > 0.0 ? 0.0 : g * x; }

/* ---- dropout ------------------------------------------------------------------------------- */

/* The stream of a Dropout without a `seed` attribute: a hash of its input's size and of a
 * sample of its bytes (64 elements at most). It must stay identical to the forward kernel's
 * (backends/cpu/elementwise_cast.c), so that a gradient that recomputes the mask drops the same units. */
AMP_HD uint64_t amp_dropout_content_seed(const void *data, int64_t numel, size_t elem_size) {
    uint64_t h = 0xcbf29ce484222325ull ^ (uint64_t)numel;
    int64_t step = numel / 64 + 1;
    for (int64_t i = 0; i < numel; i += step) {
        const unsigned char *b = (const unsigned char *)data + (size_t)i * elem_size;
        for (size_t j = 0; j < elem_size; j++) h = (h ^ b[j]) * 0x100000001b3ull;
    }
    return h;
}

/* ---- decisions every backend's kernels share --------------------------------------------------- */

/* SumToShape splits the reduction into AMP_S2S_PARTS fixed parts, each summing into its own
 * workspace row, when the output is small and the input large (a bias gradient over a batch):
 * splitting over outputs alone would leave threads idle. The parts do not depend on the thread
 * count, so neither do the sums. The CPU backend sizes the workspace with the same test
 * (amp_cpu_ws_sum_to_shape). */
#define AMP_S2S_PARTS 16
#define AMP_S2S_SMALL_OUT 4096
#define AMP_S2S_PAR_MIN ((int64_t)1 << 15)
#define AMP_S2S_USE_PARTS(n, m) ((n) >= AMP_S2S_PAR_MIN && (m) > 0 && (m) <= AMP_S2S_SMALL_OUT && (m) < (n))

#endif

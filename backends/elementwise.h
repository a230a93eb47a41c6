/* Per-element math shared by the CPU kernels and CUDA device code, so both backends run the
 * same formulas and the CPU tests check what the GPU computes. Every function has a float
 * version (_f: used for f32, f16 and bf16, which compute in f32) and a double version (_d: f64).
 *
 * Conventions: NaN inputs give NaN outputs wherever the ONNX reference (numpy) does; formulas
 * are written to avoid overflow (softplus, sigmoid) and cancellation (expm1 in the ELU family). */
#ifndef AMP_BACKENDS_ELEMWISE_H
#define AMP_BACKENDS_ELEMWISE_H

#include <math.h>
#include <stdint.h>

#include "base/half.h"

/* ---- activations ------------------------------------------------------------------------- */

/* x < 0 rather than x > 0 so that NaN passes through, as numpy's maximum does. */
AMP_HD float amp_relu_f(float x) { return x < 0.0f ? 0.0f : x; }
AMP_HD double amp_relu_d(double x) { return x < 0.0 ? 0.0 : x; }

AMP_HD float amp_leaky_relu_f(float x, float alpha) { return x < 0.0f ? alpha * x : x; }
AMP_HD double amp_leaky_relu_d(double x, double alpha) { return x < 0.0 ? alpha * x : x; }

/* exp of a non-positive argument only, so large |x| neither overflows nor loses the tail. */
/* The sign only picks between two finished values (a select, not a branch): random signs would
 * otherwise mispredict half the time. */
AMP_HD float amp_sigmoid_f(float x) {
    float e = expf(-fabsf(x)), r = 1.0f / (1.0f + e);
    return x >= 0.0f ? r : e * r;
}
AMP_HD double amp_sigmoid_d(double x) {
    double e = exp(-fabs(x)), r = 1.0 / (1.0 + e);
    return x >= 0.0 ? r : e * r;
}

/* Exact GELU: x * Phi(x) = 0.5 x (1 + erf(x / sqrt 2)). */
AMP_HD float amp_gelu_f(float x) { return 0.5f * x * (1.0f + erff(x * 0.70710678118654752f)); }
AMP_HD double amp_gelu_d(double x) { return 0.5 * x * (1.0 + erf(x * 0.70710678118654752440)); }

/* GELU, tanh approximation (Gelu approximate="tanh"). */
AMP_HD float amp_gelu_tanh_f(float x) {
    return 0.5f * x * (1.0f + tanhf(0.79788456080286536f * (x + 0.044715f * x * x * x)));
}
AMP_HD double amp_gelu_tanh_d(double x) {
    return 0.5 * x * (1.0 + tanh(0.79788456080286535588 * (x + 0.044715 * x * x * x)));
}

/* log(1 + e^x) = max(x, 0) + log1p(e^-|x|): no overflow for large x, exact tail for small. */
AMP_HD float amp_softplus_f(float x) {
    if (x != x) return x;
    return (x > 0.0f ? x : 0.0f) + log1pf(expf(-fabsf(x)));
}
AMP_HD double amp_softplus_d(double x) {
    if (x != x) return x;
    return (x > 0.0 ? x : 0.0) + log1p(exp(-fabs(x)));
}

AMP_HD float amp_softsign_f(float x) { return x / (1.0f + fabsf(x)); }
AMP_HD double amp_softsign_d(double x) { return x / (1.0 + fabs(x)); }

AMP_HD float amp_elu_f(float x, float alpha) { return x < 0.0f ? alpha * expm1f(x) : x; }
AMP_HD double amp_elu_d(double x, double alpha) { return x < 0.0 ? alpha * expm1(x) : x; }

/* ONNX defaults of Selu: the constants of Klambauer et al. as float32. */
#define AMP_SELU_ALPHA 1.67326319217681884765625
#define AMP_SELU_GAMMA 1.05070102214813232421875
AMP_HD float amp_selu_f(float x, float alpha, float gamma) {
    return gamma * (x <= 0.0f ? alpha * expm1f(x) : x);
}
AMP_HD double amp_selu_d(double x, double alpha, double gamma) { return gamma * (x <= 0.0 ? alpha * expm1(x) : x); }

/* max(0, x) + min(0, alpha (e^(x/alpha) - 1)); alpha != 0 is checked by shape inference. */
AMP_HD float amp_celu_f(float x, float alpha) { return x < 0.0f ? alpha * expm1f(x / alpha) : x; }
AMP_HD double amp_celu_d(double x, double alpha) { return x < 0.0 ? alpha * expm1(x / alpha) : x; }

/* Clamp to [0, 1] keeping NaN (comparisons are false for NaN). */
AMP_HD float amp_unit_clamp_f(float v) { return v < 0.0f ? 0.0f : (v > 1.0f ? 1.0f : v); }
AMP_HD double amp_unit_clamp_d(double v) { return v < 0.0 ? 0.0 : (v > 1.0 ? 1.0 : v); }

AMP_HD float amp_hard_sigmoid_f(float x, float alpha, float beta) { return amp_unit_clamp_f(alpha * x + beta); }
AMP_HD double amp_hard_sigmoid_d(double x, double alpha, double beta) { return amp_unit_clamp_d(alpha * x + beta); }

/* HardSwish = x * HardSigmoid(x) with alpha = 1/6, beta = 0.5 (fixed by the spec). */
AMP_HD float amp_hard_swish_f(float x) { return x * amp_unit_clamp_f(x * (1.0f / 6.0f) + 0.5f); }
AMP_HD double amp_hard_swish_d(double x) { return x * amp_unit_clamp_d(x * (1.0 / 6.0) + 0.5); }

AMP_HD float amp_thresholded_relu_f(float x, float alpha) { return x > alpha ? x : (x != x ? x : 0.0f); }
AMP_HD double amp_thresholded_relu_d(double x, double alpha) { return x > alpha ? x : (x != x ? x : 0.0); }

AMP_HD float amp_shrink_f(float x, float lambd, float bias) {
    return x < -lambd ? x + bias : (x > lambd ? x - bias : (x != x ? x : 0.0f));
}
AMP_HD double amp_shrink_d(double x, double lambd, double bias) {
    return x < -lambd ? x + bias : (x > lambd ? x - bias : (x != x ? x : 0.0));
}

/* x * tanh(softplus(x)). */
AMP_HD float amp_mish_f(float x) { return x * tanhf(amp_softplus_f(x)); }
AMP_HD double amp_mish_d(double x) { return x * tanh(amp_softplus_d(x)); }

/* ---- simple math --------------------------------------------------------------------------- */

/* -1, 0 or 1; NaN stays NaN (numpy's sign). */
AMP_HD float amp_sign_f(float x) { return x > 0.0f ? 1.0f : (x < 0.0f ? -1.0f : x); }
AMP_HD double amp_sign_d(double x) { return x > 0.0 ? 1.0 : (x < 0.0 ? -1.0 : x); }

AMP_HD float amp_reciprocal_f(float x) { return 1.0f / x; }
AMP_HD double amp_reciprocal_d(double x) { return 1.0 / x; }

/* Round half to even (ONNX Round): rint in the default rounding mode. */
AMP_HD float amp_round_even_f(float x) { return rintf(x); }
AMP_HD double amp_round_even_d(double x) { return rint(x); }

/* Min/Max that propagate NaN from either side, like numpy.minimum/maximum. */
AMP_HD float amp_min_f(float x, float y) { return (x < y || x != x) ? x : y; }
AMP_HD double amp_min_d(double x, double y) { return (x < y || x != x) ? x : y; }
AMP_HD float amp_max_f(float x, float y) { return (x > y || x != x) ? x : y; }
AMP_HD double amp_max_d(double x, double y) { return (x > y || x != x) ? x : y; }

AMP_HD float amp_prelu_f(float x, float slope) { return x < 0.0f ? x * slope : x; }
AMP_HD double amp_prelu_d(double x, double slope) { return x < 0.0 ? x * slope : x; }

/* Floating-point Mod with fmod = 0 (opset 28): x - floor(x / y) * y, the sign of y, with the
 * spec's special cases (NaN for an infinite x or a zero y; x or y for an infinite y). */
AMP_HD double amp_floormod_d(double x, double y) {
    if (x != x || y != y || x - x != 0.0 || y == 0.0) return NAN; /* x - x is NaN for an infinite x */
    if (x == 0.0) return y < 0.0 ? -0.0 : 0.0;
    if (y - y != 0.0) return (x > 0.0) == (y > 0.0) ? x : y;
    double r = fmod(x, y);
    if (r != 0.0 && ((r < 0.0) != (y < 0.0))) r += y;
    if (r == 0.0) r = y < 0.0 ? -0.0 : 0.0;
    return r;
}
AMP_HD float amp_floormod_f(float x, float y) { return (float)amp_floormod_d(x, y); }

/* ---- integer arithmetic with ONNX semantics (never undefined behaviour in C) --------------- */

/* Wrapping add/sub/mul: two's complement like the hardware, without signed overflow UB. */
AMP_HD int64_t amp_iadd(int64_t x, int64_t y) { return (int64_t)((uint64_t)x + (uint64_t)y); }
AMP_HD int64_t amp_isub(int64_t x, int64_t y) { return (int64_t)((uint64_t)x - (uint64_t)y); }
AMP_HD int64_t amp_imul(int64_t x, int64_t y) { return (int64_t)((uint64_t)x * (uint64_t)y); }

/* Division truncates toward zero like C. Division by zero has no defined result in ONNX; we give
 * 0 rather than trap. INT64_MIN / -1 wraps. */
AMP_HD int64_t amp_idiv(int64_t x, int64_t y) {
    if (y == 0) return 0;
    if (y == -1) return amp_isub(0, x);
    return x / y;
}

/* fmod = 1: the remainder takes the sign of the dividend (C's %); fmod = 0: of the divisor
 * (Python's %). By zero: 0. */
AMP_HD int64_t amp_imod(int64_t x, int64_t y, int fmod_sign_of_dividend) {
    if (y == 0 || y == -1) return 0;
    int64_t r = x % y;
    if (!fmod_sign_of_dividend && r != 0 && ((r < 0) != (y < 0))) r += y;
    return r;
}

/* Exact integer power by squaring (wrapping). Negative exponents: 1/x^n truncated toward zero,
 * which is only non-zero for x = 1 or x = -1. */
AMP_HD int64_t amp_ipow(int64_t x, int64_t n) {
    if (n < 0) {
        if (x == 1) return 1;
        if (x == -1) return (n & 1) ? -1 : 1;
        return 0;
    }
    uint64_t r = 1, b = (uint64_t)x;
    while (n) {
        if (n & 1) r *= b;
        b *= b;
        n >>= 1;
    }
    return (int64_t)r;
}

/* Float to int64 toward zero; NaN gives 0 and out-of-range values saturate, so the conversion
 * is never undefined in C. Narrower integer types then wrap from the int64, as numpy does. */
AMP_HD int64_t amp_f2i_sat(double v) {
    if (v != v) return 0;
    if (v >= 9223372036854775807.0) return INT64_MAX;
    if (v <= -9223372036854775808.0) return INT64_MIN;
    return (int64_t)v;
}

/* ---- conversions to 16-bit floats without double rounding --------------------------------- */

/* double -> float rounded to odd: the sticky bit survives, so a later float -> 16-bit round to
 * nearest even gives the correctly rounded result (float keeps >= 2 extra bits at every
 * magnitude a 16-bit format can hold). */
AMP_HD float amp_f64_to_f32_odd(double d) {
    float f = (float)d;
    if ((double)f == d || f != f || d != d) return f;
    if (fabs((double)f) > fabs(d)) f = nextafterf(f, 0.0f);
    uint32_t u = amp_f32_bits(f) | 1u;
    return amp_bits_f32(u);
}

/* int64 -> float rounded to odd (see above). */
AMP_HD float amp_i64_to_f32_odd(int64_t v) {
    uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
    int shift = 0;
    while ((u >> shift) >= (1ull << 24)) shift++;
    uint64_t m = u >> shift;
    if (shift && (u & ((1ull << shift) - 1ull))) m |= 1u;
    float f = ldexpf((float)m, shift);
    return v < 0 ? -f : f;
}

AMP_HD uint16_t amp_f64_to_f16(double d) { return amp_f32_to_f16(amp_f64_to_f32_odd(d)); }
AMP_HD uint16_t amp_f64_to_bf16(double d) { return amp_f32_to_bf16(amp_f64_to_f32_odd(d)); }

/* ---- dropout --------------------------------------------------------------------------------- */

/* Counter-based uniform in [0, 1) for element i of a stream: no state between elements, so any
 * thread or GPU block can draw element i and the mask does not depend on the thread count. */
AMP_HD float amp_dropout_u01(uint64_t seed, uint64_t i) {
    uint64_t z = seed * 0x9e3779b97f4a7c15ull + (i + 1u) * 0xd1b54a32d192ed03ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    return (float)(z >> 40) * (1.0f / 16777216.0f);
}

#endif

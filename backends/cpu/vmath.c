/* Vectorised f32 exp, log, tanh, erf, sigmoid and GELU over arrays (see vmath.h).
 *
 * The element functions below are branch-free (selects on bit masks, no C conditional on a
 * computed value, which would keep GCC from vectorising while FP exceptions are honoured), so the
 * `omp simd` loops over them vectorise. This file includes itself three times with VM_TGT set to
 * no target, AVX2+FMA and AVX-512F; VM_FMA says whether fused multiply-adds may be used (C11
 * does not contract a * b + c by itself).
 *
 * The methods:
 *   exp   n = round(x / ln 2), r = x - n ln 2 (ln 2 in two parts), e^r by its degree-7 Taylor
 *         polynomial (|r| <= 0.35: truncation below 0.1 ulp), times 2^n as two powers of two so
 *         that the denormal results round once and the overflow gives inf.
 *   expm1 |x| > 0.5: e^x - 1; below: (u - 1) x / log(u) with u = e^x rounded (u - 1 is exact
 *         there, and the quotient cancels u's rounding error); x itself where u is 1.
 *   log   x = 2^k m with m in [sqrt(1/2), sqrt(2)), f = m - 1 (exact), s = f / (2 + f),
 *         log(1 + f) = f - f^2/2 + s (f^2/2 + R(s^2)), R the atanh series to s^10 (below 1e-10
 *         relative); denormals scaled by 2^23 first.
 *   tanh  |x| < 0.625: x + x Q(x^2), Q a relative-minimax fit of tanh(x)/x - 1 (degree 5);
 *         above: 1 - 2 / (e^2|x| + 1) with |x| capped at 10 (tanh rounds to 1 from 9.01 on).
 *   erf   |x| < 0.921875: x + x P(x^2), P a fit of erf(x)/x - 1 (degree 6); above:
 *         1 - e^-x^2 R(t), t = 1 / (1 + x/2), R a relative fit of erfc(x) e^x^2 on
 *         [0.921875, 10.1] in t (degree 10), |x| capped at 4 (erf rounds to 1 from 3.92 on).
 *   GELU  x >= -1.3: x (1 + erf(x / sqrt 2)) / 2; below: x erfc(|x| / sqrt 2) / 2 from the same
 *         R, with x^2 / 2 split exactly into two floats so the tail keeps its relative accuracy.
 *   sigmoid e = e^-|x|, 1 / (1 + e) or e / (1 + e): no overflow, the negative tail stays exact.
 *   softplus max(x, 0) + log1p(e^-|x|), log1p(u) = log(w) u / (w - 1) with w = 1 + u rounded
 *         (u itself where w is 1), which cancels w's rounding error; Mish x tanh(softplus(x)).
 * The fits are weighted least squares iterated to equal ripple (Lawson), in double. */
#ifndef VM_TGT

#include "backends/cpu/vmath.h"

#include <math.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <string.h>

typedef void (*vm_fn)(const float *, float *, int64_t);
typedef struct vm_table {
    vm_fn exp, expm1, log, tanh, erf, sigmoid, gelu, gelu_tanh, softplus, mish;
    double (*expsub)(const float *, float, float *, int64_t);
} vm_table;

#define VM_CAT2(a, b) a##b
#define VM_CAT(a, b) VM_CAT2(a, b)
#define VM(name) VM_CAT(name, VM_SFX)

#define VM_TGT
#define VM_SFX _scalar
#define VM_FMA 0
#include __FILE__

#if defined(__x86_64__) || defined(__i386__)
#define VM_X86 1
#define VM_TGT __attribute__((target("avx2,fma")))
#define VM_SFX _avx2
#define VM_FMA 1
#include __FILE__

#define VM_TGT __attribute__((target("avx512f,avx2,fma")))
#define VM_SFX _avx512
#define VM_FMA 1
#include __FILE__
#endif

#ifdef VM_X86
static const vm_table *const vm_tables[AMP_VMATH_NISA] = {&vm_table_scalar, &vm_table_avx2, &vm_table_avx512};
#else /* other CPUs: the portable path only (vm_supported refuses the others) */
static const vm_table *const vm_tables[AMP_VMATH_NISA] = {&vm_table_scalar, &vm_table_scalar, &vm_table_scalar};
#endif

static bool vm_supported(amp_vmath_isa isa) {
    switch (isa) {
    case AMP_VMATH_SCALAR: return true;
#ifdef VM_X86
    case AMP_VMATH_AVX2: return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    case AMP_VMATH_AVX512: return __builtin_cpu_supports("avx512f") && vm_supported(AMP_VMATH_AVX2);
#endif
    default: return false;
    }
}

static amp_vmath_isa vm_best(void) {
    for (int i = AMP_VMATH_NISA - 1; i > 0; i--)
        if (vm_supported((amp_vmath_isa)i)) return (amp_vmath_isa)i;
    return AMP_VMATH_SCALAR;
}

/* the path in use, AMP_VMATH_AUTO until the first call decides */
static _Atomic int vm_isa = AMP_VMATH_AUTO;

amp_vmath_isa amp_vmath_active(void) {
    int i = atomic_load_explicit(&vm_isa, memory_order_relaxed);
    if (i == AMP_VMATH_AUTO) {
        i = vm_best();
        atomic_store_explicit(&vm_isa, i, memory_order_relaxed);
    }
    return (amp_vmath_isa)i;
}

int amp_vmath_force(amp_vmath_isa isa) {
    if (isa == AMP_VMATH_AUTO) {
        atomic_store_explicit(&vm_isa, vm_best(), memory_order_relaxed);
        return 0;
    }
    if (isa < 0 || isa >= AMP_VMATH_NISA || !vm_supported(isa)) return -1;
    atomic_store_explicit(&vm_isa, isa, memory_order_relaxed);
    return 0;
}

const char *amp_vmath_isa_name(amp_vmath_isa isa) {
    switch (isa) {
    case AMP_VMATH_SCALAR: return "portable";
    case AMP_VMATH_AVX2: return "avx2";
    case AMP_VMATH_AVX512: return "avx512";
    default: return "auto";
    }
}

static const vm_table *vm_cur(void) { return vm_tables[amp_vmath_active()]; }

void amp_vexpf(const float *x, float *y, int64_t n) { vm_cur()->exp(x, y, n); }
void amp_vexpm1f(const float *x, float *y, int64_t n) { vm_cur()->expm1(x, y, n); }
void amp_vlogf(const float *x, float *y, int64_t n) { vm_cur()->log(x, y, n); }
void amp_vtanhf(const float *x, float *y, int64_t n) { vm_cur()->tanh(x, y, n); }
void amp_verff(const float *x, float *y, int64_t n) { vm_cur()->erf(x, y, n); }
void amp_vsigmoidf(const float *x, float *y, int64_t n) { vm_cur()->sigmoid(x, y, n); }
void amp_vgeluf(const float *x, float *y, int64_t n) { vm_cur()->gelu(x, y, n); }
void amp_vgelu_tanhf(const float *x, float *y, int64_t n) { vm_cur()->gelu_tanh(x, y, n); }
void amp_vsoftplusf(const float *x, float *y, int64_t n) { vm_cur()->softplus(x, y, n); }
void amp_vmishf(const float *x, float *y, int64_t n) { vm_cur()->mish(x, y, n); }
double amp_vexpsubf(const float *x, float sub, float *y, int64_t n) { return vm_cur()->expsub(x, sub, y, n); }

#else /* ---- the element functions and array loops, once per target ---------------------- */

#define VM_INL static inline VM_TGT

/* a * b + c, fused where the target has it */
VM_INL float VM(mad)(float a, float b, float c) {
#if VM_FMA
    return __builtin_fmaf(a, b, c);
#else
    return a * b + c;
#endif
}

VM_INL uint32_t VM(bits)(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

VM_INL float VM(flt)(uint32_t u) {
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* c ? a : b without a branch */
VM_INL float VM(sel)(bool c, float a, float b) {
    uint32_t m = 0u - (uint32_t)c;
    return VM(flt)((VM(bits)(a) & m) | (VM(bits)(b) & ~m));
}

/* |a| with the sign of s */
VM_INL float VM(signed_as)(float a, float s) {
    return VM(flt)((VM(bits)(a) & 0x7fffffffu) | (VM(bits)(s) & 0x80000000u));
}

/* the rounding error of a * a: a * a = hi + lo exactly (hi = a * a rounded) */
VM_INL float VM(sq_lo)(float a, float hi) {
#if VM_FMA
    return __builtin_fmaf(a, a, -hi);
#else
    /* Dekker: a split into 12 high and 12 low bits, whose products are exact */
    const float ah = VM(flt)(VM(bits)(a) & 0xfffff000u), al = a - ah;
    return ((ah * ah - hi) + 2.0f * ah * al) + al * al;
#endif
}

VM_INL float VM(exp1)(float x) {
    /* beyond [-104, 89] the result is 0 or inf either way; NaN passes the caps */
    float xc = VM(sel)(x < -104.0f, -104.0f, x);
    xc = VM(sel)(xc > 89.0f, 89.0f, xc);
    /* adding 1.5 * 2^23 rounds x log2(e) to the integer n, left in the low mantissa bits */
    const float tm = VM(mad)(xc, 1.44269504088896341f, 12582912.0f), n = tm - 12582912.0f;
    /* ln 2 = 0.693359375 - 2.12194440e-4: n * 0.693359375 is exact */
    const float r = VM(mad)(n, 2.12194440e-4f, VM(mad)(n, -0.693359375f, xc));
    float p = 1.0f / 5040;
    p = VM(mad)(p, r, 1.0f / 720);
    p = VM(mad)(p, r, 1.0f / 120);
    p = VM(mad)(p, r, 1.0f / 24);
    p = VM(mad)(p, r, 1.0f / 6);
    p = VM(mad)(p, r, 0.5f);
    p = VM(mad)(p, r, 1.0f);
    p = VM(mad)(p, r, 1.0f);
    /* 2^n as 2^n1 2^n2, both normal for n in [-150, 129]: p 2^n1 is exact, the last product
     * rounds once (into the denormals) or overflows */
    const int32_t ni = (int32_t)(VM(bits)(tm) - 0x4b400000u), n1 = ni >> 1, n2 = ni - n1;
    const float s1 = VM(flt)(((uint32_t)n1 + 127u) << 23), s2 = VM(flt)(((uint32_t)n2 + 127u) << 23);
    return (p * s1) * s2;
}

VM_INL float VM(log1)(float x) {
    const bool den = x < 0x1p-126f; /* also 0 and negatives, replaced at the end */
    const float xs = VM(sel)(den, x * 0x1p23f, x);
    /* k and m with xs = 2^k m, m in [sqrt(1/2), sqrt(2)) */
    const int32_t t = (int32_t)(VM(bits)(xs) - 0x3f3504f3u);
    const int32_t k = (t >> 23) - 23 * (int32_t)den;
    const float m = VM(flt)(((uint32_t)t & 0x007fffffu) + 0x3f3504f3u);
    const float f = m - 1.0f, s = f / (2.0f + f), z = s * s, hf = 0.5f * f * f;
    float rz = 2.0f / 11;
    rz = VM(mad)(rz, z, 2.0f / 9);
    rz = VM(mad)(rz, z, 2.0f / 7);
    rz = VM(mad)(rz, z, 2.0f / 5);
    rz = VM(mad)(rz, z, 2.0f / 3);
    rz *= z;
    const float kf = (float)k;
    const float lm = VM(mad)(s, hf + rz, f - hf);
    float y = VM(mad)(kf, 0.693359375f, VM(mad)(kf, -2.12194440e-4f, lm));
    y = VM(sel)(x == INFINITY, INFINITY, y);
    y = VM(sel)(x == 0.0f, -INFINITY, y);
    y = VM(sel)(x < 0.0f, NAN, y);
    return VM(sel)(x != x, x, y);
}

VM_INL float VM(expm1_1)(float x) {
    const float u = VM(exp1)(x), um = u - 1.0f;
    const float near = um * (x / VM(log1)(u));
    return VM(sel)(u == 1.0f, x, VM(sel)(fabsf(x) > 0.5f, um, near));
}

VM_INL float VM(tanh1)(float x) {
    const float ax = fabsf(x), x2 = x * x;
    float q = -0.00566032995f;
    q = VM(mad)(q, x2, 0.0205913559f);
    q = VM(mad)(q, x2, -0.0537212119f);
    q = VM(mad)(q, x2, 0.133311301f);
    q = VM(mad)(q, x2, -0.333332598f);
    q = VM(mad)(q, x2, -3.89139476e-09f);
    const float small = VM(signed_as)(VM(mad)(x, q, x), x); /* -0 stays -0 */
    const float e = VM(exp1)(2.0f * VM(sel)(ax > 10.0f, 10.0f, ax));
    const float big = 1.0f - 2.0f / (e + 1.0f);
    return VM(sel)(ax < 0.625f, small, VM(signed_as)(big, x));
}

/* erfc(z) e^(z^2) for z >= 0.921875 */
VM_INL float VM(erfc_r)(float z) {
    const float t = 1.0f / VM(mad)(0.5f, z, 1.0f);
    float r = -0.0463162065f;
    r = VM(mad)(r, t, 0.123396844f);
    r = VM(mad)(r, t, -0.0201209597f);
    r = VM(mad)(r, t, -0.208040804f);
    r = VM(mad)(r, t, 0.127046034f);
    r = VM(mad)(r, t, 0.020952519f);
    r = VM(mad)(r, t, 0.19522734f);
    r = VM(mad)(r, t, 0.243141979f);
    r = VM(mad)(r, t, 0.282548368f);
    r = VM(mad)(r, t, 0.282062829f);
    return VM(mad)(r, t, 9.83768814e-07f);
}

/* erf(x) - x for |x| < 0.921875, over x */
VM_INL float VM(erf_p)(float x2) {
    float p = 8.37041807e-05f;
    p = VM(mad)(p, x2, -0.000814279309f);
    p = VM(mad)(p, x2, 0.0052010417f);
    p = VM(mad)(p, x2, -0.0268594027f);
    p = VM(mad)(p, x2, 0.112836957f);
    p = VM(mad)(p, x2, -0.376126349f);
    return VM(mad)(p, x2, 0.128379166f);
}

VM_INL float VM(erf1)(float x) {
    const float ax = fabsf(x);
    const float small = VM(signed_as)(VM(mad)(x, VM(erf_p)(x * x), x), x);
    const float z = VM(sel)(ax > 4.0f, 4.0f, ax);
    const float big = 1.0f - VM(exp1)(-(z * z)) * VM(erfc_r)(z);
    return VM(sel)(ax < 0.921875f, small, VM(signed_as)(big, x));
}

VM_INL float VM(gelu1)(float x) {
    const float u = x * 0.707106781186547524f, au = fabsf(u);
    /* 1 + erf(u) for u > -0.921875 */
    const float erfs = VM(mad)(u, VM(erf_p)(u * u), u);
    const float zc = VM(sel)(au > 4.0f, 4.0f, au);
    const float erfb = VM(signed_as)(1.0f - VM(exp1)(-(zc * zc)) * VM(erfc_r)(zc), u);
    const float one_p = 1.0f + VM(sel)(au < 0.921875f, erfs, erfb);
    /* erfc(|u|) for u <= -0.921875: e^(-x^2/2) with x^2 = hi + lo exactly; below x = -20 the
     * result is below the denormals (and -inf gives NaN, as x (1 + erf(u)) / 2 does) */
    const float xt = VM(sel)(x < -20.0f, -20.0f, x), hi = xt * xt, lo = VM(sq_lo)(xt, hi);
    const float ec = VM(exp1)(-0.5f * hi) * VM(mad)(-0.5f, lo, 1.0f);
    const float tail = (0.5f * x * VM(erfc_r)(au)) * ec;
    return VM(sel)(u > -0.921875f || u != u, 0.5f * x * one_p, tail);
}

VM_INL float VM(sigmoid1)(float x) {
    const float e = VM(exp1)(-fabsf(x)), r = 1.0f / (1.0f + e);
    return VM(sel)(x >= 0.0f, r, VM(sel)(x != x, x, e * r));
}

#define VM_ARRAY(NAME, ELEM)                                                                  \
    static VM_TGT void VM(NAME)(const float *x, float *y, int64_t n) {                        \
        _Pragma("omp simd") for (int64_t i = 0; i < n; i++) y[i] = ELEM(x[i]);                \
    }
VM_ARRAY(vexp, VM(exp1))
VM_ARRAY(vexpm1, VM(expm1_1))
VM_ARRAY(vlog, VM(log1))
VM_ARRAY(vtanh, VM(tanh1))
VM_ARRAY(verf, VM(erf1))
VM_ARRAY(vsigmoid, VM(sigmoid1))
VM_ARRAY(vgelu, VM(gelu1))

VM_INL float VM(gelu_tanh1)(float x) {
    /* 0.5 (1 + tanh(v)) = sigmoid(2 v): no cancellation for negative x */
    const float v = 1.59576912160573071f * VM(mad)(0.044715f * x, x * x, x);
    return x * VM(sigmoid1)(v);
}
VM_ARRAY(vgelu_tanh, VM(gelu_tanh1))

VM_INL float VM(softplus1)(float x) {
    const float u = VM(exp1)(-fabsf(x)), w = 1.0f + u;
    const float l1p = VM(sel)(w == 1.0f, u, VM(log1)(w) * (u / (w - 1.0f)));
    return VM(sel)(x > 0.0f, x, 0.0f) + l1p;
}
VM_ARRAY(vsoftplus, VM(softplus1))

VM_INL float VM(mish1)(float x) { return x * VM(tanh1)(VM(softplus1)(x)); }
VM_ARRAY(vmish, VM(mish1))
#undef VM_ARRAY

static VM_TGT double VM(vexpsub)(const float *x, float sub, float *y, int64_t n) {
    double s = 0.0;
#pragma omp simd reduction(+ : s)
    for (int64_t i = 0; i < n; i++) {
        const float e = VM(exp1)(x[i] - sub);
        y[i] = e;
        s += (double)e;
    }
    return s;
}

static const vm_table VM(vm_table) = {VM(vexp), VM(vexpm1), VM(vlog), VM(vtanh), VM(verf), VM(vsigmoid),
                                      VM(vgelu), VM(vgelu_tanh), VM(vsoftplus), VM(vmish),
                                      VM(vexpsub)};

#undef VM_INL
#undef VM_TGT
#undef VM_SFX
#undef VM_FMA
#endif

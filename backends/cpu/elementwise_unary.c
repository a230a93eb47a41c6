/* CPU kernel for the unary elementwise ops (math, activations, IsNaN/IsInf, Not).
 *
 * The op is chosen once per call and each case runs its own loop, so the per-element work is a
 * call into backends/elementwise.h (shared with CUDA) that the compiler inlines; Exp, Log, Tanh,
 * Erf, Sigmoid, Gelu, Softplus, Mish, Elu, Selu and Celu in f32, f16 and bf16 run the array
 * functions of backends/cpu/vmath.c instead. f16/bf16 compute in f32 and round once on store; f64 computes in double. Every loop
 * reads element i before writing it, so in-place runs (out == in) are correct. */
#include <stdbool.h>
#include <string.h>

#include "backends/cpu/cpu.h"
#include "backends/cpu/par.h"
#include "backends/cpu/vmath.h"
#include "backends/elementwise.h"

#define CHUNK ((int64_t)1 << 14)       /* elements per work item */
#define PAR_MIN ((int64_t)1 << 15)     /* below this, one thread */

typedef struct uattr {
    float alpha, beta, gamma, lambd, bias;
    bool tanh_approx;
    bool pos, neg; /* IsInf */
} uattr;

static void read_attrs(const amp_node *n, uattr *a) {
    a->alpha = a->beta = a->gamma = a->lambd = a->bias = 0.0f;
    a->tanh_approx = false;
    a->pos = a->neg = true;
    switch (n->op) {
    case AMP_OP_LEAKY_RELU: a->alpha = amp_attr_float(n, "alpha", 0.01f); break;
    case AMP_OP_ELU: a->alpha = amp_attr_float(n, "alpha", 1.0f); break;
    case AMP_OP_CELU: a->alpha = amp_attr_float(n, "alpha", 1.0f); break;
    case AMP_OP_THRESHOLDED_RELU: a->alpha = amp_attr_float(n, "alpha", 1.0f); break;
    case AMP_OP_SELU:
        a->alpha = amp_attr_float(n, "alpha", (float)AMP_SELU_ALPHA);
        a->gamma = amp_attr_float(n, "gamma", (float)AMP_SELU_GAMMA);
        break;
    case AMP_OP_HARD_SIGMOID:
        a->alpha = amp_attr_float(n, "alpha", 0.2f);
        a->beta = amp_attr_float(n, "beta", 0.5f);
        break;
    case AMP_OP_SHRINK:
        a->lambd = amp_attr_float(n, "lambd", 0.5f);
        a->bias = amp_attr_float(n, "bias", 0.0f);
        break;
    case AMP_OP_GELU: {
        const char *ap = amp_attr_str(n, "approximate", "none");
        a->tanh_approx = ap[0] == 't';
        break;
    }
    case AMP_OP_IS_INF:
        a->pos = amp_attr_int(n, "detect_positive", 1) != 0;
        a->neg = amp_attr_int(n, "detect_negative", 1) != 0;
        break;
    default: break;
    }
}

/* The float ops, for one storage type. CT is the compute type and MS picks the float (f) or
 * double (d) helpers; the op is switched on outside the loops. Returns false for an op that has
 * no float form here. */
#define LOOP(CT, LD, ST, EXPR)                               \
    for (int64_t i = 0; i < n; i++) {              \
        CT v = LD(x[i]);                           \
        y[i] = ST(EXPR);                           \
    }                                              \
    return true

#define FLOAT_UNARY(NAME, T, LD, ST, CT, MS, SQRT, EXP, LOG, FLOOR, CEIL, ABS, TANH, ERF, SIN, COS, TAN, ASIN, \
                    ACOS, ATAN, SINH, COSH, ASINH, ACOSH, ATANH)                                            \
    static bool NAME(amp_op op, const T *x, T *y, int64_t n, const uattr *a) {                               \
        const CT alpha = (CT)a->alpha, beta = (CT)a->beta, gamma = (CT)a->gamma;                             \
        const CT lambd = (CT)a->lambd, bias = (CT)a->bias;                                                   \
        switch (op) {                                                                                        \
        case AMP_OP_RELU: LOOP(CT, LD, ST, amp_relu_##MS(v));                                                            \
        case AMP_OP_LEAKY_RELU: LOOP(CT, LD, ST, amp_leaky_relu_##MS(v, alpha));                                         \
        case AMP_OP_SIGMOID: LOOP(CT, LD, ST, amp_sigmoid_##MS(v));                                                      \
        case AMP_OP_TANH: LOOP(CT, LD, ST, TANH(v));                                                                     \
        case AMP_OP_ERF: LOOP(CT, LD, ST, ERF(v));                                                                       \
        case AMP_OP_GELU:                                                                                    \
            if (a->tanh_approx) {                                                                            \
                LOOP(CT, LD, ST, amp_gelu_tanh_##MS(v));                                                                 \
            }                                                                                                \
            LOOP(CT, LD, ST, amp_gelu_##MS(v));                                                                          \
        case AMP_OP_SQRT: LOOP(CT, LD, ST, SQRT(v));                                                                     \
        case AMP_OP_EXP: LOOP(CT, LD, ST, EXP(v));                                                                       \
        case AMP_OP_LOG: LOOP(CT, LD, ST, LOG(v));                                                                       \
        case AMP_OP_NEG: LOOP(CT, LD, ST, -v);                                                                           \
        case AMP_OP_ABS: LOOP(CT, LD, ST, ABS(v));                                                                       \
        case AMP_OP_RECIPROCAL: LOOP(CT, LD, ST, amp_reciprocal_##MS(v));                                                \
        case AMP_OP_FLOOR: LOOP(CT, LD, ST, FLOOR(v));                                                                   \
        case AMP_OP_CEIL: LOOP(CT, LD, ST, CEIL(v));                                                                     \
        case AMP_OP_ROUND: LOOP(CT, LD, ST, amp_round_even_##MS(v));                                                     \
        case AMP_OP_SIGN: LOOP(CT, LD, ST, amp_sign_##MS(v));                                                            \
        case AMP_OP_SIN: LOOP(CT, LD, ST, SIN(v));                                                                       \
        case AMP_OP_COS: LOOP(CT, LD, ST, COS(v));                                                                       \
        case AMP_OP_TAN: LOOP(CT, LD, ST, TAN(v));                                                                       \
        case AMP_OP_ASIN: LOOP(CT, LD, ST, ASIN(v));                                                                     \
        case AMP_OP_ACOS: LOOP(CT, LD, ST, ACOS(v));                                                                     \
        case AMP_OP_ATAN: LOOP(CT, LD, ST, ATAN(v));                                                                     \
        case AMP_OP_SINH: LOOP(CT, LD, ST, SINH(v));                                                                     \
        case AMP_OP_COSH: LOOP(CT, LD, ST, COSH(v));                                                                     \
        case AMP_OP_ASINH: LOOP(CT, LD, ST, ASINH(v));                                                                   \
        case AMP_OP_ACOSH: LOOP(CT, LD, ST, ACOSH(v));                                                                   \
        case AMP_OP_ATANH: LOOP(CT, LD, ST, ATANH(v));                                                                   \
        case AMP_OP_SOFTPLUS: LOOP(CT, LD, ST, amp_softplus_##MS(v));                                                    \
        case AMP_OP_SOFTSIGN: LOOP(CT, LD, ST, amp_softsign_##MS(v));                                                    \
        case AMP_OP_ELU: LOOP(CT, LD, ST, amp_elu_##MS(v, alpha));                                                       \
        case AMP_OP_SELU: LOOP(CT, LD, ST, amp_selu_##MS(v, alpha, gamma));                                              \
        case AMP_OP_CELU: LOOP(CT, LD, ST, amp_celu_##MS(v, alpha));                                                     \
        case AMP_OP_HARD_SIGMOID: LOOP(CT, LD, ST, amp_hard_sigmoid_##MS(v, alpha, beta));                               \
        case AMP_OP_HARD_SWISH: LOOP(CT, LD, ST, amp_hard_swish_##MS(v));                                                \
        case AMP_OP_THRESHOLDED_RELU: LOOP(CT, LD, ST, amp_thresholded_relu_##MS(v, alpha));                             \
        case AMP_OP_SHRINK: LOOP(CT, LD, ST, amp_shrink_##MS(v, lambd, bias));                                           \
        case AMP_OP_MISH: LOOP(CT, LD, ST, amp_mish_##MS(v));                                                            \
        default: return false;                                                                               \
        }                                                                                                    \
    }

#define ID(v) (v)
#define LD_F16(v) amp_f16_to_f32(v)
#define ST_F16(v) amp_f32_to_f16(v)
#define LD_BF16(v) amp_bf16_to_f32(v)
#define ST_BF16(v) amp_f32_to_bf16(v)

#define F_MATH sqrtf, expf, logf, floorf, ceilf, fabsf, tanhf, erff, sinf, cosf, tanf, asinf, acosf, atanf, sinhf, \
               coshf, asinhf, acoshf, atanhf
#define D_MATH sqrt, exp, log, floor, ceil, fabs, tanh, erf, sin, cos, tan, asin, acos, atan, sinh, cosh, asinh, \
               acosh, atanh

/* One level of indirection so F_MATH/D_MATH expand into separate arguments. */
#define FLOAT_UNARY_X(...) FLOAT_UNARY(__VA_ARGS__)
FLOAT_UNARY_X(un_f32, float, ID, ID, float, f, F_MATH)
FLOAT_UNARY_X(un_f64, double, ID, ID, double, d, D_MATH)
FLOAT_UNARY_X(un_f16, uint16_t, LD_F16, ST_F16, float, f, F_MATH)
FLOAT_UNARY_X(un_bf16, uint16_t, LD_BF16, ST_BF16, float, f, F_MATH)

/* Integer ops: exact in int64, stored back by truncation (Neg of the minimum wraps like C). */
static bool un_int(amp_op op, amp_dtype t, const void *x, void *y, int64_t lo, int64_t hi, const uattr *a) {
    /* unsigned values are never negative (uint64 above INT64_MAX reads back negative from amp_ldi) */
    bool uns = t == AMP_U8 || t == AMP_U16 || t == AMP_U32 || t == AMP_U64;
    for (int64_t i = lo; i < hi; i++) {
        int64_t v = amp_ldi(t, x, i), r;
        double dv = uns ? amp_ld(t, x, i) : (double)v;
        switch (op) {
        case AMP_OP_RELU: r = v < 0 ? 0 : v; break;
        case AMP_OP_NEG: r = amp_isub(0, v); break;
        case AMP_OP_ABS: r = v < 0 && !uns ? amp_isub(0, v) : v; break;
        case AMP_OP_SIGN: r = uns ? v != 0 : (v > 0) - (v < 0); break;
        /* Erf and Shrink of integers: the real result truncated toward zero. */
        case AMP_OP_ERF: r = amp_f2i_sat(erf(dv)); break;
        case AMP_OP_SHRINK: r = amp_f2i_sat(amp_shrink_d(dv, a->lambd, a->bias)); break;
        default: return false;
        }
        amp_sti(t, y, i, r);
    }
    return true;
}

/* IsNaN/IsInf on a float input, bool output. */
static void un_class(amp_op op, amp_dtype t, const void *x, uint8_t *y, int64_t lo, int64_t hi, const uattr *a) {
    for (int64_t i = lo; i < hi; i++) {
        double v = amp_ld(t, x, i);
        if (op == AMP_OP_IS_NAN) y[i] = v != v;
        else y[i] = (isinf(v) && ((v > 0 && a->pos) || (v < 0 && a->neg)));
    }
}

/* The ops with an array form in backends/cpu/vmath.c (vectorised, within 4 ulp of the exact
 * function; GELU 8, Mish 6), for f32 and, through f32 chunks on the stack, f16 and bf16. */
typedef void (*vec_fn)(const float *, float *, int64_t);

static vec_fn vec_of(amp_op op, const uattr *a) {
    switch (op) {
    case AMP_OP_EXP: return amp_vexpf;
    case AMP_OP_LOG: return amp_vlogf;
    case AMP_OP_TANH: return amp_vtanhf;
    case AMP_OP_ERF: return amp_verff;
    case AMP_OP_SIGMOID: return amp_vsigmoidf;
    case AMP_OP_GELU: return a->tanh_approx ? amp_vgelu_tanhf : amp_vgeluf;
    case AMP_OP_SOFTPLUS: return amp_vsoftplusf;
    case AMP_OP_MISH: return amp_vmishf;
    default: return NULL;
    }
}

#define VEC16_CHUNK 256

static void vec16(amp_dtype t, vec_fn f, const uint16_t *x, uint16_t *y, int64_t n) {
    float buf[VEC16_CHUNK];
    for (int64_t i = 0; i < n; i += VEC16_CHUNK) {
        const int64_t m = n - i < VEC16_CHUNK ? n - i : VEC16_CHUNK;
        amp_widen16(t, x + i, buf, m);
        f(buf, buf, m);
        amp_narrow16(t, buf, y + i, m);
    }
}

/* Elu, Selu and Celu (f32, f16, bf16): e^x - 1 of a chunk by amp_vexpm1f, then the select;
 * values as amp_elu_f, amp_selu_f and amp_celu_f give them with expm1f. x and y at element 0. */
static bool un_expm1(amp_op op, amp_dtype t, const void *x, void *y, int64_t n, const uattr *a) {
    if ((op != AMP_OP_ELU && op != AMP_OP_SELU && op != AMP_OP_CELU) || (t != AMP_F32 && t != AMP_F16 && t != AMP_BF16))
        return false;
    float v[VEC16_CHUNK], e[VEC16_CHUNK];
    for (int64_t i = 0; i < n; i += VEC16_CHUNK) {
        const int64_t m = n - i < VEC16_CHUNK ? n - i : VEC16_CHUNK;
        if (t == AMP_F32) memcpy(v, (const float *)x + i, sizeof(float) * (size_t)m);
        else amp_widen16(t, (const uint16_t *)x + i, v, m);
        if (op == AMP_OP_CELU)
            for (int64_t j = 0; j < m; j++) e[j] = v[j] / a->alpha;
        else memcpy(e, v, sizeof(float) * (size_t)m);
        amp_vexpm1f(e, e, m);
        if (op == AMP_OP_SELU)
            for (int64_t j = 0; j < m; j++) e[j] = a->gamma * (v[j] <= 0.0f ? a->alpha * e[j] : v[j]);
        else
            for (int64_t j = 0; j < m; j++) e[j] = v[j] < 0.0f ? a->alpha * e[j] : v[j];
        if (t == AMP_F32) memcpy((float *)y + i, e, sizeof(float) * (size_t)m);
        else amp_narrow16(t, e, (uint16_t *)y + i, m);
    }
    return true;
}

static bool run_chunk(amp_op op, amp_dtype t, amp_dtype to, const void *x, void *y, int64_t lo, int64_t hi,
                      const uattr *a) {
    int64_t n = hi - lo;
    if (op == AMP_OP_IS_NAN || op == AMP_OP_IS_INF) {
        un_class(op, t, x, y, lo, hi, a);
        return true;
    }
    if (op == AMP_OP_NOT) {
        if (t != AMP_BOOL || to != AMP_BOOL) return false;
        const uint8_t *xb = x;
        uint8_t *yb = y;
        for (int64_t i = lo; i < hi; i++) yb[i] = !xb[i];
        return true;
    }
    const vec_fn vf = vec_of(op, a);
    if (vf && t == AMP_F32) {
        vf((const float *)x + lo, (float *)y + lo, n);
        return true;
    }
    if (vf && (t == AMP_F16 || t == AMP_BF16)) {
        vec16(t, vf, (const uint16_t *)x + lo, (uint16_t *)y + lo, n);
        return true;
    }
    const size_t es = amp_dtype_size(t);
    if (un_expm1(op, t, (const char *)x + es * (size_t)lo, (char *)y + es * (size_t)lo, n, a)) return true;
    switch (t) {
    case AMP_F32: return un_f32(op, (const float *)x + lo, (float *)y + lo, n, a);
    case AMP_F64: return un_f64(op, (const double *)x + lo, (double *)y + lo, n, a);
    case AMP_F16: return un_f16(op, (const uint16_t *)x + lo, (uint16_t *)y + lo, n, a);
    case AMP_BF16: return un_bf16(op, (const uint16_t *)x + lo, (uint16_t *)y + lo, n, a);
    case AMP_I64: case AMP_I32: case AMP_I16: case AMP_I8:
    case AMP_U64: case AMP_U32: case AMP_U16: case AMP_U8: return un_int(op, t, x, y, lo, hi, a);
    default: return false;
    }
}

amp_status amp_cpu_unary(amp_kernel *k) {
    if (k->nin < 1 || !k->in[0]) return amp_kernel_fail(k, AMP_ERR_INVALID_GRAPH, "needs one input");
    const amp_tensor *x = k->in[0];
    amp_tensor *y = k->out[0];
    if (x->numel != y->numel) return amp_kernel_fail(k, AMP_ERR_SHAPE, "output size differs from input");
    uattr a;
    read_attrs(k->n, &a);
    amp_op op = k->n->op;
    int64_t n = x->numel;
    if (n == 0) {
        /* Still reject an op/dtype pair we cannot run, so that errors do not depend on size. */
        return run_chunk(op, x->dtype, y->dtype, x->data, y->data, 0, 0, &a)
                   ? AMP_OK
                   : amp_kernel_fail(k, AMP_ERR_UNSUPPORTED, "dtype %s is not supported", amp_dtype_name(x->dtype));
    }
    int64_t chunks = (n + CHUNK - 1) / CHUNK;
    int bad = 0;
    bool big = n >= PAR_MIN && k->threads > 1;
    AMP_PAR_FOR(big, num_threads(k->threads > 0 ? k->threads : 1) reduction(| : bad),
    for (int64_t c = 0; c < chunks; c++) {
        int64_t lo = c * CHUNK, hi = lo + CHUNK < n ? lo + CHUNK : n;
        if (!run_chunk(op, x->dtype, y->dtype, x->data, y->data, lo, hi, &a)) bad = 1;
    });
    if (bad) return amp_kernel_fail(k, AMP_ERR_UNSUPPORTED, "dtype %s is not supported", amp_dtype_name(x->dtype));
    return AMP_OK;
}

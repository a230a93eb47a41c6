/* Vectorised f32 math over arrays for the CPU kernels (backends/cpu/vmath.c): exp, expm1, log,
 * tanh, erf, sigmoid, GELU (both forms), softplus, Mish.
 *
 * Each function computes y[i] = f(x[i]) for i < n; y == x (in place) is allowed, other overlap
 * is not. Within 4 ulp of the exact function over the whole float range (GELU 8, Mish 6,
 * GeluTanh 4 plus the rounding of its cubic: see tests/test_vmath.c, which
 * measures every function against double-precision libm); ±0, denormals, ±inf and NaN give what
 * libm's f32 functions give (exp overflows to inf and underflows through the denormals to 0).
 *
 * One source, compiled three times: the portable path (whatever the build's baseline vectorises),
 * AVX2+FMA and AVX-512F, picked once at run time from the CPU's features; no global -march. */
#ifndef AMP_BACKENDS_CPU_VMATH_H
#define AMP_BACKENDS_CPU_VMATH_H

#include <stdint.h>

typedef enum amp_vmath_isa { AMP_VMATH_AUTO = -1, AMP_VMATH_SCALAR, AMP_VMATH_AVX2, AMP_VMATH_AVX512, AMP_VMATH_NISA } amp_vmath_isa;

void amp_vexpf(const float *x, float *y, int64_t n);
void amp_vexpm1f(const float *x, float *y, int64_t n); /* e^x - 1 */
void amp_vlogf(const float *x, float *y, int64_t n);
void amp_vtanhf(const float *x, float *y, int64_t n);
void amp_verff(const float *x, float *y, int64_t n);
void amp_vsigmoidf(const float *x, float *y, int64_t n);
/* GELU, x Phi(x) with Phi from erf (the exact form) */
void amp_vgeluf(const float *x, float *y, int64_t n);
/* GELU's tanh approximation 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) */
void amp_vgelu_tanhf(const float *x, float *y, int64_t n);
/* log(1 + e^x), and Mish x tanh(log(1 + e^x)) */
void amp_vsoftplusf(const float *x, float *y, int64_t n);
void amp_vmishf(const float *x, float *y, int64_t n);
/* y[i] = e^(x[i] - sub) (the difference rounded to f32 first); returns the sum of the y in double */
double amp_vexpsubf(const float *x, float sub, float *y, int64_t n);

/* The path the functions run: the best the CPU has, or the one forced with amp_vmath_force
 * (tests run every path that way). Forcing a path the CPU lacks returns -1 and changes nothing;
 * AMP_VMATH_AUTO goes back to the automatic choice. Not for use while kernels run. */
amp_vmath_isa amp_vmath_active(void);
int amp_vmath_force(amp_vmath_isa isa);
const char *amp_vmath_isa_name(amp_vmath_isa isa);

#endif

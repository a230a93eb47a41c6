/* Per-element formulas of the norm family's gradients, shared by the CPU kernels
 * (backends/cpu/norm_grad.c) and CUDA device code, so both backends run the same math. Each has
 * a float version (_f: f32, f16 and bf16 compute in f32) and a double version (_d: f64, and the
 * CPU's accumulating paths). */
#ifndef AMP_BACKENDS_NORM_GRAD_H
#define AMP_BACKENDS_NORM_GRAD_H

#include <math.h>

#include "base/half.h"

/* ---- normalisation ---------------------------------------------------------------------------
 * y = xhat * gamma + beta with xhat = (x - mean) * inv over a group of n elements, the
 * statistics taken from the group itself. With g = dy * gamma, mg = mean(g) and
 * mgx = mean(g * xhat) over the group:
 *   dx = inv * (g - mg - xhat * mgx).
 * Gradients gm of the group's mean and gi of its inv (= 1/sqrt(var + eps)), when those are
 * outputs too, add gm / n and -gi inv^2 xhat / n (d inv / dx = -inv^3 (x - mean) / n). All of it
 * is dx = inv * g + cx * xhat + c0 with two constants per group. */
typedef struct amp_norm_coef {
    double inv, cx, c0;
} amp_norm_coef;

AMP_HD amp_norm_coef amp_norm_coef_d(double inv, double mg, double mgx, double gm, double gi, double n) {
    amp_norm_coef k;
    k.inv = inv;
    k.cx = n > 0 ? -inv * mgx - gi * inv * inv / n : 0.0;
    k.c0 = n > 0 ? -inv * mg + gm / n : 0.0;
    return k;
}
AMP_HD double amp_norm_dx_d(amp_norm_coef k, double g, double xhat) { return k.inv * g + k.cx * xhat + k.c0; }
AMP_HD float amp_norm_dx_f(float inv, float cx, float c0, float g, float xhat) { return inv * g + cx * xhat + c0; }

#endif

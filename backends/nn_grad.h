/* Per-element formulas of the nn family's gradients, shared by the CPU kernels
 * (backends/cpu/nn_grad.c) and CUDA device code, so both backends run the same math. Each has
 * a float version (_f: f32, f16 and bf16 compute in f32) and a double version (_d: f64, and the
 * CPU's accumulating paths). */
#ifndef AMP_BACKENDS_GRAD_NN_H
#define AMP_BACKENDS_GRAD_NN_H

#include <math.h>

#include "base/half.h"

/* ---- softmax family ---------------------------------------------------------------------------
 * Softmax: dx = y (dy - s) with s = sum(dy * y) over the row.
 * LogSoftmax: dx = dy - exp(y) s with s = sum(dy) over the row. */
AMP_HD float amp_softmax_dx_f(float y, float dy, float s) { return y * (dy - s); }
AMP_HD double amp_softmax_dx_d(double y, double dy, double s) { return y * (dy - s); }
AMP_HD float amp_log_softmax_dx_f(float y, float dy, float s) { return dy - expf(y) * s; }
AMP_HD double amp_log_softmax_dx_d(double y, double dy, double s) { return dy - exp(y) * s; }

/* SoftmaxCrossEntropyLoss: the loss of one position is -w[t] log p[t], so its gradient on the
 * scores is coef (p - onehot(t)), coef = w[t] times the incoming gradient (and 1/sum(w) for
 * reduction=mean). A gradient dl of log_prob adds dl - p sum(dl). For the target class
 * p - 1 = -(sum of the other classes' exp) / sum, so rest = sum - e[t] avoids the cancellation. */
AMP_HD double amp_sce_dx_d(double p, double coef, double dl, double p_sdl) { return coef * p + dl - p_sdl; }
AMP_HD double amp_sce_target_dx_d(double rest_over_sum, double coef, double dl, double p_sdl) {
    return -coef * rest_over_sum + dl - p_sdl;
}

/* ---- reductions --------------------------------------------------------------------------------
 * dx of one element x of a reduced group, given the incoming gradient g of the group's output
 * and the group's statistics (see amp_reduce_grad_mode). */
enum {
    AMP_RG_SUM,
    AMP_RG_MEAN,
    AMP_RG_SUM_SQUARE,
    AMP_RG_L1,
    AMP_RG_L2,      /* st0: the norm */
    AMP_RG_LOG_SUM, /* st0: the sum */
    AMP_RG_LSE,     /* st0: log-sum-exp */
    AMP_RG_MAX,     /* st0: the maximum, st1: how many elements equal it */
    AMP_RG_MIN,     /* st0: the minimum, st1: how many elements equal it */
    AMP_RG_PROD     /* st0: product of the non-zero elements, st1: how many are zero */
};

AMP_HD double amp_reduce_dx_d(int mode, double x, double g, double st0, double st1, double count) {
    switch (mode) {
    case AMP_RG_SUM: return g;
    case AMP_RG_MEAN: return g / count;
    case AMP_RG_SUM_SQUARE: return 2.0 * x * g;
    /* the subgradient 0 at x == 0, as sign(0) = 0 */
    case AMP_RG_L1: return x > 0 ? g : x < 0 ? -g : 0.0;
    /* a zero norm has no direction: 0, like PyTorch's norm backward */
    case AMP_RG_L2: return st0 > 0 ? g * x / st0 : 0.0;
    case AMP_RG_LOG_SUM: return g / st0;
    case AMP_RG_LSE: return g * exp(x - st0);
    /* ties share the gradient evenly (PyTorch's amax/amin) */
    case AMP_RG_MAX:
    case AMP_RG_MIN: return (x == st0 || (isnan(x) && isnan(st0))) ? g / st1 : 0.0;
    /* with no zero, prod / x; with one zero only that element sees the other factors' product;
     * with two or more every partial product holds a zero */
    case AMP_RG_PROD: return st1 == 0 ? g * st0 / x : (st1 == 1 && x == 0) ? g * st0 : 0.0;
    default: return 0.0;
    }
}

#endif

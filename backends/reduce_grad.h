/* Per-element formulas of the reduce family's gradient, shared by the CPU kernel
 * (backends/cpu/reduce_grad.c) and CUDA device code, so both backends run the same math. */
#ifndef AMP_BACKENDS_REDUCE_GRAD_H
#define AMP_BACKENDS_REDUCE_GRAD_H

#include <math.h>

#include "base/half.h"

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

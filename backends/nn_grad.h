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

#endif

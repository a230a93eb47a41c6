/* Per-element math of the optimizer and loss-scaling ops (ir/ops/optim.def), shared by the
 * CPU kernels (backends/cpu/optim.c) and a CUDA backend: static inline, valid C and CUDA.
 *
 * Everything runs in f32, in the order torch.optim runs on f32 parameters, so an f32 run
 * tracks torch to rounding; 16-bit state is widened before and rounded once after. */
#ifndef AMP_BACKENDS_OPTIM_H
#define AMP_BACKENDS_OPTIM_H

#include <math.h>
#include <stdbool.h>

#include "base/half.h" /* AMP_HD */

/* Elements per chunk of the global gradient norm: each chunk's sum of squares is taken in
 * double, then the chunks are added in order, so the norm has the same bits for any thread
 * count. The CPU backend sizes the workspace with it (one double per chunk, amp_cpu_ws_optim). */
#define AMP_OPTIM_CHUNK 4096

/* the epsilon torch.nn.utils.clip_grad_norm_ adds to the norm */
#define AMP_CLIP_EPS 1e-6

typedef struct amp_sgd_hp {
    float lr, momentum, dampening, weight_decay;
    bool nesterov;
} amp_sgd_hp;

typedef struct amp_adamw_hp {
    float beta1, beta2, eps;
    float decay;     /* 1 - lr * weight_decay */
    float step_size; /* lr / (1 - beta1^step) */
    float bc2_sqrt;  /* sqrt(1 - beta2^step) */
} amp_adamw_hp;

/* A gradient element the optimizer must not consume: not finite as stored, or not finite
 * once unscaled in f32 (an f64 value beyond the f32 range, or an overflow when scale < 1). */
AMP_HD bool amp_unscale_bad(double g, float inv_scale) {
    const float u = (float)g * inv_scale;
    return !isfinite(g) || !isfinite(u);
}

/* clip_grad_norm_'s factor: 1 when clipping is off (max_norm 0) or the norm is within bounds. */
AMP_HD float amp_clip_coef(double total_norm, double max_norm) {
    if (max_norm <= 0.0) return 1.0f;
    const double c = max_norm / (total_norm + AMP_CLIP_EPS);
    return c < 1.0 ? (float)c : 1.0f;
}

/* One SGD step of one element: w the parameter, g the unscaled and clipped gradient, *m the
 * momentum buffer (untouched when momentum is 0). first: the buffer is created from this
 * gradient, undamped, as torch does on the first step. Returns the new parameter. */
AMP_HD float amp_sgd_elem(float w, float g, float *m, bool first, const amp_sgd_hp *h) {
    float d = g;
    if (h->weight_decay != 0.0f) d = d + h->weight_decay * w;
    if (h->momentum != 0.0f) {
        const float b = first ? d : h->momentum * *m + (1.0f - h->dampening) * d;
        *m = b;
        d = h->nesterov ? d + h->momentum * b : b;
    }
    return w - h->lr * d;
}

/* One AdamW step of one element (decoupled weight decay first, then the moments, then the
 * bias-corrected update). Returns the new parameter; *m and *v receive the new moments. */
AMP_HD float amp_adamw_elem(float w, float g, float *m, float *v, const amp_adamw_hp *h) {
    w = w * h->decay;
    const float mm = *m + (1.0f - h->beta1) * (g - *m); /* torch's lerp toward g */
    const float vv = h->beta2 * *v + (1.0f - h->beta2) * g * g;
    *m = mm;
    *v = vv;
    const float denom = sqrtf(vv) / h->bc2_sqrt + h->eps;
    return w - h->step_size * (mm / denom);
}

/* GradScaler's update of the loss scale and its growth tracker (both f32). */
AMP_HD void amp_loss_scale_step(float *scale, float *tracker, bool found_inf, float growth_interval,
                                float growth_factor, float backoff_factor) {
    if (found_inf) {
        *scale = *scale * backoff_factor;
        *tracker = 0.0f;
        return;
    }
    const float t = *tracker + 1.0f;
    if (t >= growth_interval) {
        const float grown = *scale * growth_factor;
        if (isfinite(grown)) *scale = grown;
        *tracker = 0.0f;
    } else {
        *tracker = t;
    }
}

#endif

/* CPU kernels of the nn family's gradient ops (ir/ops/nn_grad.def, built by ir/ops/nn_grad.c);
 * those of BatchNormalization, InstanceNormalization and LayerNormalization are in
 * backends/cpu/norm_grad.c.
 *
 * Statistics, dot products and sums accumulate in double, and every element is computed in
 * double then stored with the output dtype's rounding, so one loop serves f32, f16, bf16 and
 * f64. Each loop body is written once and inlined twice inside the parallel loop:
 * with plain float accesses when the big tensors are all f32 (the common training case), and
 * with the per-dtype accessors otherwise. SoftmaxCrossEntropyLoss on f32 [N, C] has its own
 * loop. Per-element formulas live in backends/nn_grad.h. */
#include <string.h>

#include "backends/cpu/cpu.h"
#include "backends/cpu/kernels.h"
#include "backends/cpu/par.h"
#include "backends/nn_grad.h"

/* Below this many elements the OpenMP fork costs more than it saves. */
#define GRAD_PAR_MIN 32768


/* ---- SoftmaxGrad, LogSoftmaxGrad ---------------------------------------------------------------------
 * Rows as the forward sees them: [outer, len, inner] reduced over len; from opset 13 len is the
 * dim at `axis`, before that the product of dims[axis:] (the 2-D coercion). */

AMP_CPU_INLINE void softmax_row(bool f32, bool lg, const amp_tensor *dy, const amp_tensor *y, amp_tensor *dx, int64_t base,
                           int64_t len, int64_t inner) {
    const amp_dtype yt = y->dtype, gt = dy->dtype, ot = dx->dtype;
    double s = 0;
    for (int64_t j = 0; j < len; j++) {
        const int64_t at = base + j * inner;
        const double g = amp_ldf(f32, gt, dy->data, at);
        s += lg ? g : g * amp_ldf(f32, yt, y->data, at);
    }
    for (int64_t j = 0; j < len; j++) {
        const int64_t at = base + j * inner;
        const double yv = amp_ldf(f32, yt, y->data, at), g = amp_ldf(f32, gt, dy->data, at);
        amp_stf(f32, ot, dx->data, at, lg ? amp_log_softmax_dx_d(yv, g, s) : amp_softmax_dx_d(yv, g, s));
    }
}

amp_status amp_cpu_softmax_grad(amp_kernel *k) {
    const amp_tensor *dy = k->in[0], *y = k->in[1];
    amp_tensor *dx = k->out[0];
    const int64_t opset = amp_attr_int(k->n, "fwd_opset", 13);
    const int rank = y->rank;
    int64_t axis = amp_attr_int(k->n, "axis", opset >= 13 ? -1 : 1);
    if (axis < 0) axis += rank;
    if (axis < 0 || axis > rank || (opset >= 13 && axis == rank))
        return amp_kernel_fail(k, AMP_ERR_INVALID_GRAPH, "axis out of range");
    int64_t outer = 1, len = 1, inner = 1;
    for (int d = 0; d < rank; d++) {
        if (d < axis) outer *= y->dims[d];
        else if (d == axis || opset < 13) len *= y->dims[d];
        else inner *= y->dims[d];
    }
    const bool lg = k->n->op == AMP_OP_LOG_SOFTMAX_GRAD;
    const bool f32 = y->dtype == AMP_F32 && dy->dtype == AMP_F32 && dx->dtype == AMP_F32;
    const bool big = y->numel >= GRAD_PAR_MIN;
    AMP_PAR_FOR(big, num_threads(k->threads),
    for (int64_t row = 0; row < outer * inner; row++) {
        const int64_t base = (row / inner) * len * inner + row % inner;
        if (f32) softmax_row(true, lg, dy, y, dx, base, len, inner);
        else softmax_row(false, lg, dy, y, dx, base, len, inner);
    });
    return AMP_OK;
}

/* ---- the loss gradients ------------------------------------------------------------------------------
 * Both see X as [N, C, D] (D = d1*d2*..., class stride D) and the target as [N, D], like the
 * forward kernels (backends/cpu/nn_loss.c). The incoming gradient per position: dY[r] for
 * reduction=none, dY for sum, dY / (sum of the weights of the non-ignored targets) for mean. */

enum { RED_NONE, RED_SUM, RED_MEAN };

typedef struct lossg {
    const amp_tensor *dy, *x, *t, *w;
    int64_t n, c, d;
    bool has_ii;
    int64_t ii;
    int red;
    double scale; /* dY for sum, dY / wsum for mean */
} lossg;

/* Read the attributes, check every target, and work out the scale of the reductions. */
static amp_status lossg_init(amp_kernel *k, lossg *a) {
    const amp_node *node = k->n;
    a->dy = k->in[0];
    a->x = k->in[1];
    a->t = k->in[2];
    a->w = in_opt(k, 3);
    const amp_attr *ii = amp_node_attr_of(node, "ignore_index", AMP_ATTR_INT);
    a->has_ii = ii && ii->kind == AMP_ATTR_INT;
    a->ii = a->has_ii ? ii->i : 0;
    const char *red = amp_attr_str(node, "reduction", "mean");
    a->red = strcmp(red, "none") == 0 ? RED_NONE : strcmp(red, "sum") == 0 ? RED_SUM : RED_MEAN;
    a->n = a->x->dims[0];
    a->c = a->x->dims[1];
    a->d = 1;
    for (int i = 2; i < a->x->rank; i++) a->d *= a->x->dims[i];
    const int64_t rows = a->n * a->d;
    double wsum = 0;
    int64_t bad = -1;
    for (int64_t r = 0; r < rows; r++) {
        const int64_t tg = amp_ldi(a->t->dtype, a->t->data, r);
        if (a->has_ii && tg == a->ii) continue;
        if (tg < 0 || tg >= a->c) {
            bad = r;
            break;
        }
        wsum += a->w ? amp_ld(a->w->dtype, a->w->data, tg) : 1.0;
    }
    if (bad >= 0)
        return amp_kernel_fail(k, AMP_ERR_INVALID_ARG, "target %lld at position %lld is outside [0, %lld)",
                               (long long)amp_ldi(a->t->dtype, a->t->data, bad), (long long)bad, (long long)a->c);
    a->scale = 0;
    if (a->dy && a->red != RED_NONE) {
        a->scale = amp_ld(a->dy->dtype, a->dy->data, 0);
        /* all ignored gives 0/0 = NaN, as the forward's loss */
        if (a->red == RED_MEAN) a->scale /= wsum;
    }
    return AMP_OK;
}

/* The factor of position r: weight of its target times the incoming gradient; 0 when ignored. */
static inline double lossg_coef(const lossg *a, int64_t r, int64_t *tg) {
    *tg = amp_ldi(a->t->dtype, a->t->data, r);
    if (!a->dy || (a->has_ii && *tg == a->ii)) {
        *tg = -1;
        return 0.0;
    }
    const double w = a->w ? amp_ld(a->w->dtype, a->w->data, *tg) : 1.0;
    return w * (a->red == RED_NONE ? amp_ld(a->dy->dtype, a->dy->data, r) : a->scale);
}

/* NLL: dX[n, t, d] = -w[t] g, every other element 0 (all-zero bits are 0.0 in every float dtype). */
amp_status amp_cpu_nll_loss_grad(amp_kernel *k) {
    lossg a;
    amp_status s = lossg_init(k, &a);
    if (s) return s;
    amp_tensor *dx = k->out[0];
    if (dx->nbytes) memset(dx->data, 0, dx->nbytes);
    const int64_t rows = a.n * a.d;
    const bool big = dx->numel >= GRAD_PAR_MIN;
    AMP_PAR_FOR(big, num_threads(k->threads),
    for (int64_t r = 0; r < rows; r++) {
        int64_t tg;
        const double coef = lossg_coef(&a, r, &tg);
        if (tg >= 0) amp_st(dx->dtype, dx->data, (r / a.d) * a.c * a.d + tg * a.d + r % a.d, -coef);
    });
    return AMP_OK;
}

/* SCE on f32 [N, C] without a log_prob gradient, the training case: one exp per element,
 * stored in dX on the way and scaled in place. */
static void sce_rows_f32(const lossg *a, float *dx, int64_t r0, int64_t r1) {
    const float *xs = a->x->data;
    const int64_t C = a->c;
    for (int64_t r = r0; r < r1; r++) {
        const float *xr = xs + r * C;
        float *dr = dx + r * C;
        int64_t tg;
        const double coef = lossg_coef(a, r, &tg);
        if (coef == 0.0 && tg < 0) {
            memset(dr, 0, sizeof(float) * (size_t)C);
            continue;
        }
        float mx = -INFINITY;
        for (int64_t c = 0; c < C; c++)
            if (xr[c] > mx || isnan(xr[c])) mx = xr[c];
        /* rest: the classes other than the target, summed apart so that p_t - 1 keeps its digits */
        double sum = 0, rest = 0;
        for (int64_t c = 0; c < C; c++) {
            const float e = expf(xr[c] - mx);
            dr[c] = e;
            sum += e;
            rest += c == tg ? 0.0f : e;
        }
        const float f = (float)(coef / sum);
        for (int64_t c = 0; c < C; c++) dr[c] *= f;
        if (tg >= 0) dr[tg] = (float)amp_sce_target_dx_d(rest / sum, coef, 0.0, 0.0);
    }
}

amp_status amp_cpu_sce_loss_grad(amp_kernel *k) {
    lossg a;
    amp_status s = lossg_init(k, &a);
    if (s) return s;
    const amp_tensor *dl = in_opt(k, 4), *x = a.x;
    amp_tensor *dx = k->out[0];
    const int64_t rows = a.n * a.d, C = a.c, D = a.d;
    if (rows == 0 || C == 0) return AMP_OK;
    const bool big = dx->numel >= GRAD_PAR_MIN;
    if (x->dtype == AMP_F32 && dx->dtype == AMP_F32 && D == 1 && !dl) {
        const int nt = big ? amp_cpu_threads(k) : 1;
        const int64_t per = (rows + nt - 1) / nt;
        AMP_PAR_FOR(nt > 1, num_threads(nt),
        for (int t = 0; t < nt; t++) {
            const int64_t r0 = t * per, r1 = r0 + per < rows ? r0 + per : rows;
            if (r0 < r1) sce_rows_f32(&a, dx->data, r0, r1);
        });
        return AMP_OK;
    }
    const amp_dtype xt = x->dtype, ot = dx->dtype;
    AMP_PAR_FOR(big, num_threads(k->threads),
    for (int64_t r = 0; r < rows; r++) {
        const int64_t base = (r / D) * C * D + r % D;
        int64_t tg;
        const double coef = lossg_coef(&a, r, &tg);
        double mx = -INFINITY;
        for (int64_t c = 0; c < C; c++) {
            const double v = amp_ld(xt, x->data, base + c * D);
            if (v > mx || isnan(v)) mx = v;
        }
        double sum = 0, rest = 0, sdl = 0;
        for (int64_t c = 0; c < C; c++) {
            const double e = exp(amp_ld(xt, x->data, base + c * D) - mx);
            sum += e;
            rest += c == tg ? 0.0 : e;
            if (dl) sdl += amp_ld(dl->dtype, dl->data, base + c * D);
        }
        const double lse = mx + log(sum);
        for (int64_t c = 0; c < C; c++) {
            const int64_t at = base + c * D;
            const double p = exp(amp_ld(xt, x->data, at) - lse);
            const double g = dl ? amp_ld(dl->dtype, dl->data, at) : 0.0;
            double v;
            if (c == tg) v = amp_sce_target_dx_d(rest / sum, coef, g, p * sdl);
            else v = amp_sce_dx_d(p, coef, g, p * sdl);
            amp_st(ot, dx->data, at, v);
        }
    });
    return AMP_OK;
}

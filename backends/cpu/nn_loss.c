/* CPU kernels: NegativeLogLikelihoodLoss and SoftmaxCrossEntropyLoss.
 *
 * Both see the input as [N, C, D] (D = d1*d2*..., 1 for N x C) and the target as [N, D].
 * Each position's loss is -w[t] * logp[n, t, d]; a target equal to ignore_index weighs 0.
 * reduction=mean divides the weighted sum by the sum of the weights of the non-ignored
 * targets (the count of them without weights), as the ONNX reference does; when that sum is
 * 0 (every target ignored, or no targets) the result is 0/0 = NaN there too, and here. */
#include <stdatomic.h>
#include <string.h>

#include "backends/cpu/cpu.h"
#include "backends/cpu/par.h"

#define LOSS_PAR_MIN 16384

enum { RED_NONE, RED_SUM, RED_MEAN };

typedef struct loss_args {
    const amp_tensor *x, *t, *w;
    amp_tensor *out, *logp;
    int64_t n, c, d;
    bool has_ii;
    int64_t ii;
    int red;
    bool softmax; /* SoftmaxCrossEntropyLoss: x holds scores, log-softmax over C first */
} loss_args;

static amp_status loss_run(amp_kernel *k, bool softmax) {
    loss_args a = {.x = k->in[0], .t = k->in[1], .w = k->nin > 2 ? k->in[2] : NULL, .out = k->out[0],
                   .logp = softmax && k->nout > 1 ? k->out[1] : NULL, .softmax = softmax};
    const amp_node *node = k->n;
    const amp_attr *ii = amp_node_attr_of(node, "ignore_index", AMP_ATTR_INT);
    a.has_ii = ii && ii->kind == AMP_ATTR_INT;
    a.ii = a.has_ii ? ii->i : 0;
    const char *red = amp_attr_str(node, "reduction", "mean");
    a.red = strcmp(red, "none") == 0 ? RED_NONE : strcmp(red, "sum") == 0 ? RED_SUM : RED_MEAN;
    a.n = a.x->dims[0];
    a.c = a.x->dims[1];
    a.d = 1;
    for (int i = 2; i < a.x->rank; i++) a.d *= a.x->dims[i];

    const amp_dtype xt = a.x->dtype;
    const int64_t rows = a.n * a.d;
    atomic_int_fast64_t bad_at = -1; /* a position whose target is out of range */
    int64_t bad_val = 0;
    double total = 0, wsum = 0;
    const bool big = a.x->numel >= LOSS_PAR_MIN;

    AMP_PAR_FOR(big, num_threads(k->threads) reduction(+ : total, wsum),
    for (int64_t r = 0; r < rows; r++) {
        const int64_t i = r / a.d, dd = r % a.d;
        const int64_t base = i * a.c * a.d + dd; /* element (i, 0, dd); class stride a.d */
        const int64_t tg = amp_ldi(a.t->dtype, a.t->data, r);
        /* log-softmax over the classes: max, then log-sum-exp in double */
        double mx = 0, lse = 0;
        if (a.softmax) {
            mx = -INFINITY;
            for (int64_t ci = 0; ci < a.c; ci++) {
                double v = amp_ld(xt, a.x->data, base + ci * a.d);
                if (v > mx || isnan(v)) mx = v;
            }
            double s = 0;
            for (int64_t ci = 0; ci < a.c; ci++) s += exp(amp_ld(xt, a.x->data, base + ci * a.d) - mx);
            lse = mx + log(s);
            if (a.logp)
                for (int64_t ci = 0; ci < a.c; ci++) {
                    const int64_t at = base + ci * a.d;
                    amp_st(a.logp->dtype, a.logp->data, at, amp_ld(xt, a.x->data, at) - lse);
                }
        }
        double loss = 0, w = 0;
        if (!(a.has_ii && tg == a.ii)) {
            if (tg < 0 || tg >= a.c) {
                int_fast64_t expect = -1;
                if (atomic_compare_exchange_strong(&bad_at, &expect, r)) bad_val = tg;
            } else {
                w = a.w ? amp_ld(a.w->dtype, a.w->data, tg) : 1.0;
                double lp = amp_ld(xt, a.x->data, base + tg * a.d);
                if (a.softmax) lp -= lse;
                loss = -lp * w;
            }
        }
        if (a.red == RED_NONE) amp_st(a.out->dtype, a.out->data, r, loss);
        total += loss;
        wsum += w;
    });
    if (bad_at >= 0)
        return amp_kernel_fail(k, AMP_ERR_INVALID_ARG, "target %lld at position %lld is outside [0, %lld)",
                               (long long)bad_val, (long long)bad_at, (long long)a.c);
    if (a.red == RED_SUM) amp_st(a.out->dtype, a.out->data, 0, total);
    else if (a.red == RED_MEAN) amp_st(a.out->dtype, a.out->data, 0, total / wsum);
    return AMP_OK;
}

amp_status amp_cpu_nll_loss(amp_kernel *k) { return loss_run(k, false); }

amp_status amp_cpu_sce_loss(amp_kernel *k) { return loss_run(k, true); }

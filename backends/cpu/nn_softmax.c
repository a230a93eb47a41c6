/* CPU kernel for Softmax, LogSoftmax and Hardmax.
 *
 * The input is seen as [outer, len, inner] with the reduction over len: from opset 13 len is
 * the one dim at `axis` (default -1); before 13 the input is coerced to 2-D at `axis`
 * (default 1), so len is the product of dims[axis:] and inner is 1.
 *
 * Softmax subtracts the row maximum before exp and sums in double; contiguous f32 rows (the
 * reduced dim innermost) take e^(x - max) from backends/cpu/vmath.c on the f32 difference,
 * others compute in double. A row that is entirely -inf gives NaN, as the ONNX reference
 * (numpy: exp(x - max) with max = -inf gives exp(-inf - -inf) = exp(nan)), onnxruntime and
 * PyTorch all do: there is no distribution to return, and a silent uniform or zero row would
 * hide the masking bug upstream. Rows masked with a large finite negative value (-1e9, -65504 in
 * f16) have a finite maximum somewhere and stay finite; a row of all -1e9 is uniform. A +inf
 * element likewise gives NaN (inf - inf). */
#include "backends/cpu/cpu.h"
#include "backends/cpu/par.h"
#include "backends/cpu/vmath.h"

#define SOFTMAX_PAR_MIN 16384
#define SOFTMAX_CHUNK 256 /* LogSoftmax's e^(x - max) scratch on the stack */

/* One contiguous f32 row: maximum (a NaN wins), then the vector exp; in place is fine. */
static void softmax_row_f32(amp_op op, const float *x, float *y, int64_t len) {
    float mx = -INFINITY;
    for (int64_t j = 0; j < len; j++)
        if (x[j] > mx || isnan(x[j])) mx = x[j]; /* after a NaN, only a NaN replaces it */
    if (op == AMP_OP_LOG_SOFTMAX) {
        /* the exps go to scratch: y may be x, and x is read again below */
        float e[SOFTMAX_CHUNK];
        double sum = 0;
        for (int64_t j = 0; j < len; j += SOFTMAX_CHUNK)
            sum += amp_vexpsubf(x + j, mx, e, len - j < SOFTMAX_CHUNK ? len - j : SOFTMAX_CHUNK);
        const double sub = (double)mx + log(sum);
        for (int64_t j = 0; j < len; j++) y[j] = (float)((double)x[j] - sub);
        return;
    }
    const double inv = 1.0 / amp_vexpsubf(x, mx, y, len);
    for (int64_t j = 0; j < len; j++) y[j] = (float)((double)y[j] * inv);
}

amp_status amp_cpu_softmax(amp_kernel *k) {
    const amp_tensor *x = k->in[0];
    amp_tensor *y = k->out[0];
    const int rank = x->rank;
    int64_t axis = amp_attr_int(k->n, "axis", k->opset >= 13 ? -1 : 1);
    if (axis < 0) axis += rank;
    if (axis < 0 || axis > rank || (k->opset >= 13 && axis == rank))
        return amp_kernel_fail(k, AMP_ERR_INVALID_GRAPH, "axis out of range");
    int64_t outer = 1, len = 1, inner = 1;
    for (int d = 0; d < rank; d++) {
        if (d < axis) outer *= x->dims[d];
        else if (d == axis || k->opset < 13) len *= x->dims[d];
        else inner *= x->dims[d];
    }
    const amp_op op = k->n->op;
    const amp_dtype xt = x->dtype, yt = y->dtype;
    const bool big = x->numel >= SOFTMAX_PAR_MIN;
    const bool rows_f32 = xt == AMP_F32 && yt == AMP_F32 && inner == 1;

    AMP_PAR_FOR(big, num_threads(k->threads),
    for (int64_t row = 0; row < outer * inner; row++) {
        const int64_t base = (row / inner) * len * inner + row % inner;
        if (len == 0) continue;
        if (op == AMP_OP_HARDMAX) {
            /* first maximum wins; a NaN counts as the maximum (numpy argmax, the reference) */
            int64_t best = 0;
            double bv = amp_ld(xt, x->data, base);
            for (int64_t j = 1; j < len && !isnan(bv); j++) {
                double v = amp_ld(xt, x->data, base + j * inner);
                if (v > bv || isnan(v)) {
                    bv = v;
                    best = j;
                }
            }
            for (int64_t j = 0; j < len; j++) amp_st(yt, y->data, base + j * inner, j == best ? 1.0 : 0.0);
            continue;
        }
        if (rows_f32) {
            softmax_row_f32(op, (const float *)x->data + base, (float *)y->data + base, len);
            continue;
        }
        double mx = -INFINITY;
        for (int64_t j = 0; j < len; j++) {
            double v = amp_ld(xt, x->data, base + j * inner);
            if (v > mx || isnan(v)) mx = v;
            if (isnan(mx)) break;
        }
        /* all -inf: keep mx at -inf so that x - mx is NaN, as documented above */
        double sum = 0;
        for (int64_t j = 0; j < len; j++) sum += exp(amp_ld(xt, x->data, base + j * inner) - mx);
        if (op == AMP_OP_LOG_SOFTMAX) {
            const double lse = log(sum);
            for (int64_t j = 0; j < len; j++) {
                const int64_t at = base + j * inner;
                amp_st(yt, y->data, at, amp_ld(xt, x->data, at) - mx - lse);
            }
        } else {
            const double inv = 1.0 / sum;
            for (int64_t j = 0; j < len; j++) {
                const int64_t at = base + j * inner;
                amp_st(yt, y->data, at, exp(amp_ld(xt, x->data, at) - mx) * inv);
            }
        }
    });
    return AMP_OK;
}

/* Shape inference of the ai.onnx.preview.training optimizers Adagrad, Adam and Momentum
 * (ir/ops/preview.def lists them; kernels in backends/cpu/preview.c).
 *
 * Every input is checked here so the kernels can trust counts, dtypes and shapes: R is an f32 or
 * f64 scalar, T an int64 scalar, and every X, G and state tensor has the dtype of X_1 (the
 * schema's one T3, f32 or f64) and the shape of its own X. The schema's pseudo code says
 * "numpy-style broadcasting", but its own inference gives X_new and the new state the shapes of
 * X and of the old state, which only agree with the arithmetic when the shapes are equal; a
 * tensor shaped otherwise is rejected. */
#include <math.h>
#include <string.h>

#include "ir/ir.h"

/* R or T: present, of one of the given dtypes, one element (rank 0 as the schema has it; a
 * one-element 1-D tensor is taken too). */
static amp_status check_scalar(amp_infer *c, int i, const char *what, const amp_dtype *allowed, amp_status bad_dt) {
    const amp_tinfo *t = c->in[i];
    if (!t) return amp_infer_fail(c, AMP_ERR_INVALID_GRAPH, "input %d (%s) is required", i, what);
    bool ok = false;
    for (const amp_dtype *a = allowed; *a != AMP_UNDEFINED; a++) ok = ok || t->dtype == *a;
    if (!ok) return amp_infer_fail(c, bad_dt, "input %d (%s) is %s", i, what, amp_dtype_name(t->dtype));
    if (t->rank > 1 || amp_tinfo_numel(t) != 1)
        return amp_infer_fail(c, AMP_ERR_SHAPE, "input %d (%s) must be a scalar", i, what);
    return AMP_OK;
}

/* A FLOAT attribute (an INT is an error, as onnxruntime has it). Absent: def, or
 * an error when required. NaN and infinities make every output NaN or inf, so they are errors. */
static amp_status float_attr(amp_infer *c, const char *name, bool required, float def, float *v) {
    const amp_attr *a = amp_node_attr(c->n, name);
    if (!a) {
        if (required) return amp_infer_fail(c, AMP_ERR_INVALID_GRAPH, "needs the float attribute %s", name);
        *v = def;
        return AMP_OK;
    }
    if (a->kind != AMP_ATTR_FLOAT)
        return amp_infer_fail(c, AMP_ERR_INVALID_GRAPH, "attribute %s must be a float", name);
    *v = a->f;
    if (!isfinite(*v))
        return amp_infer_fail(c, AMP_ERR_INVALID_GRAPH, "attribute %s must be finite, is %g", name, (double)*v);
    return AMP_OK;
}

/* What the three share. groups: inputs per optimized tensor (X, G and the state tensors);
 * the outputs are X_new and the new state, groups - 1 per tensor. */
static amp_status infer_optimizer(amp_infer *c, int groups) {
    static const amp_dtype r_types[] = {AMP_F32, AMP_F64, AMP_UNDEFINED};
    static const amp_dtype t_types[] = {AMP_I64, AMP_UNDEFINED};
    if (c->nin < 2 + groups || (c->nin - 2) % groups != 0)
        return amp_infer_fail(c, AMP_ERR_INVALID_GRAPH,
                              "has %d inputs; expects R, T and %d tensors per optimized tensor", c->nin, groups);
    const int n = (c->nin - 2) / groups;
    if (c->nout != (groups - 1) * n)
        return amp_infer_fail(c, AMP_ERR_INVALID_GRAPH, "has %d outputs; %d optimized tensors need %d", c->nout, n,
                              (groups - 1) * n);
    /* a learning rate of another type is outside the schema's T1 but harmless to reject as
       unsupported; a T that is not int64 contradicts the schema's only type for it */
    amp_status s = check_scalar(c, 0, "R", r_types, AMP_ERR_UNSUPPORTED);
    if (!s) s = check_scalar(c, 1, "T", t_types, AMP_ERR_SHAPE);
    if (s) return s;

    for (int g = 0; g < groups; g++)
        for (int i = 0; i < n; i++) {
            const int k = 2 + g * n + i;
            if (!c->in[k]) return amp_infer_fail(c, AMP_ERR_INVALID_GRAPH, "input %d is required", k);
        }
    const amp_dtype dt = c->in[2]->dtype;
    if (dt != AMP_F32 && dt != AMP_F64)
        return amp_infer_fail(c, AMP_ERR_UNSUPPORTED, "tensors are %s; the op takes f32 or f64", amp_dtype_name(dt));
    for (int i = 0; i < n; i++) {
        const amp_tinfo *x = c->in[2 + i];
        for (int g = 0; g < groups; g++) {
            const int k = 2 + g * n + i;
            const amp_tinfo *t = c->in[k];
            if (t->dtype != dt)
                return amp_infer_fail(c, AMP_ERR_SHAPE, "input %d is %s but input 2 is %s (one type for all tensors)",
                                      k, amp_dtype_name(t->dtype), amp_dtype_name(dt));
            if (!amp_tinfo_same_shape(t, x))
                return amp_infer_fail(c, AMP_ERR_SHAPE, "input %d does not have the shape of X_%d (input %d)", k,
                                      i + 1, 2 + i);
        }
    }
    /* output group 0 is X_new, group o >= 1 the new value of input group o + 1 */
    for (int o = 0; o < groups - 1; o++)
        for (int i = 0; i < n; i++) {
            const amp_tinfo *src = c->in[2 + (o == 0 ? 0 : o + 1) * n + i];
            amp_tinfo *out = c->out[o * n + i];
            out->dtype = dt;
            out->rank = src->rank;
            memset(out->dims, 0, sizeof out->dims);
            memcpy(out->dims, src->dims, sizeof(int64_t) * (size_t)src->rank);
            out->value = NULL;
        }
    return AMP_OK;
}

amp_status amp_infer_adagrad(amp_infer *c) {
    float v;
    amp_status s = float_attr(c, "decay_factor", false, 0.0f, &v);
    if (!s) s = float_attr(c, "epsilon", false, 1e-6f, &v);
    if (!s) s = float_attr(c, "norm_coefficient", false, 0.0f, &v);
    if (s) return s;
    return infer_optimizer(c, 3);
}

amp_status amp_infer_adam(amp_infer *c) {
    float v;
    amp_status s = float_attr(c, "alpha", false, 0.9f, &v);
    if (!s) s = float_attr(c, "beta", false, 0.999f, &v);
    if (!s) s = float_attr(c, "epsilon", false, 1e-6f, &v);
    if (!s) s = float_attr(c, "norm_coefficient", false, 0.0f, &v);
    if (!s) s = float_attr(c, "norm_coefficient_post", false, 0.0f, &v);
    if (s) return s;
    return infer_optimizer(c, 4);
}

amp_status amp_infer_momentum(amp_infer *c) {
    /* the schema makes all four attributes required */
    float v;
    amp_status s = float_attr(c, "alpha", true, 0.0f, &v);
    if (!s) s = float_attr(c, "beta", true, 0.0f, &v);
    if (!s) s = float_attr(c, "norm_coefficient", true, 0.0f, &v);
    if (s) return s;
    const amp_attr *mode = amp_node_attr(c->n, "mode");
    if (!mode) return amp_infer_fail(c, AMP_ERR_INVALID_GRAPH, "needs the string attribute mode");
    if (mode->kind != AMP_ATTR_STRING || !mode->s)
        return amp_infer_fail(c, AMP_ERR_INVALID_GRAPH, "attribute mode must be a string");
    /* compared with its length, so "standard" followed by a NUL and more bytes is no match */
    const bool standard = mode->slen == 8 && memcmp(mode->s, "standard", 8) == 0;
    const bool nesterov = mode->slen == 8 && memcmp(mode->s, "nesterov", 8) == 0;
    if (!standard && !nesterov)
        return amp_infer_fail(c, AMP_ERR_INVALID_GRAPH, "mode must be \"standard\" or \"nesterov\", is \"%.64s\"",
                              mode->s);
    return infer_optimizer(c, 3);
}

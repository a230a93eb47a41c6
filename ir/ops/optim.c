/* Shape inference of the optimizer and loss-scaling ops (ir/ops/optim.def documents their
 * inputs, attributes and semantics). Every input is checked here, so the kernels can trust
 * dtypes, shapes and counts. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ir/ir.h"

/* a parameter count beyond which the input count would overflow an int */
#define OPTIM_MAX_PARAMS (1 << 24)

static bool param_dtype(amp_dtype t) { return t == AMP_F32 || t == AMP_F16 || t == AMP_BF16; }

static void set_scalar_out(amp_infer *c, int i, amp_dtype dt) {
    amp_tinfo *o = c->out[i];
    o->dtype = dt;
    o->rank = 1;
    o->dims[0] = 1;
    o->value = NULL;
}

/* A one-element tensor of dtype dt: shape [1] (rank 0 accepted). Absent is an error unless
 * optional. */
static amp_status check_scalar(amp_infer *c, int i, const char *what, amp_dtype dt, bool optional) {
    const amp_tinfo *t = i < c->nin ? c->in[i] : NULL;
    if (!t) {
        if (optional) return AMP_OK;
        return amp_infer_fail(c, AMP_ERR_INVALID_GRAPH, "input %d (%s) is required", i, what);
    }
    if (t->dtype != dt)
        return amp_infer_fail(c, AMP_ERR_SHAPE, "input %d (%s) must be %s, is %s", i, what, amp_dtype_name(dt),
                              amp_dtype_name(t->dtype));
    if (t->rank > 1 || amp_tinfo_numel(t) != 1)
        return amp_infer_fail(c, AMP_ERR_SHAPE, "input %d (%s) must hold one element (shape [1])", i, what);
    return AMP_OK;
}

static amp_status check_one_output(amp_infer *c) {
    if (c->nout != 1) return amp_infer_fail(c, AMP_ERR_INVALID_GRAPH, "has %d outputs, expects 1", c->nout);
    return AMP_OK;
}

/* The optimizers' state inputs (step, W, M, V: every input but lr, found_inf, scale and the
 * gradients) are written in place: a value bound twice would be updated twice, and raced on,
 * so they must be distinct values. Sorted ids, so thousands of parameters stay cheap. */
static bool optim_state_input(int i, int n) { return i == 1 || (i >= 4 && i < 4 + n) || i >= 4 + 2 * n; }

static int cmp_int(const void *a, const void *b) {
    const int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

static amp_status check_distinct_state(amp_infer *c, int n) {
    const int *ids = c->n->inputs;
    if (!ids) return AMP_OK;
    int *v = amp_alloc(c->ctx, sizeof(int) * (size_t)c->nin);
    if (!v) return amp_infer_fail(c, AMP_ERR_NO_MEMORY, "out of memory");
    int k = 0;
    for (int i = 1; i < c->nin; i++)
        if (optim_state_input(i, n) && ids[i] >= 0) v[k++] = ids[i];
    qsort(v, (size_t)k, sizeof(int), cmp_int);
    int dup = -1;
    for (int i = 1; i < k && dup < 0; i++)
        if (v[i] == v[i - 1]) dup = v[i];
    amp_dealloc(c->ctx, v);
    if (dup < 0) return AMP_OK;
    int first = -1, second = -1;
    for (int i = 1; i < c->nin && second < 0; i++)
        if (optim_state_input(i, n) && ids[i] == dup) {
            if (first < 0) first = i;
            else second = i;
        }
    return amp_infer_fail(c, AMP_ERR_INVALID_GRAPH,
                          "inputs %d and %d are the same value; optimizer state is updated in place", first, second);
}

amp_status amp_infer_unscale_check(amp_infer *c) {
    if (c->nin < 2) return amp_infer_fail(c, AMP_ERR_INVALID_GRAPH, "expects scale and at least one gradient");
    amp_status s = check_one_output(c);
    if (!s) s = check_scalar(c, 0, "scale", AMP_F32, false);
    if (s) return s;
    for (int i = 1; i < c->nin; i++) {
        if (!c->in[i]) return amp_infer_fail(c, AMP_ERR_INVALID_GRAPH, "gradient input %d is missing", i);
        s = amp_infer_dtype_in(c, c->in[i]->dtype, amp_dt_float);
        if (s) return s;
    }
    set_scalar_out(c, 0, AMP_BOOL);
    return AMP_OK;
}

/* What SGD and AdamW share: lr, step, found_inf, scale, then n parameters W, n gradients G
 * and n_state groups of n state tensors (M, V) shaped like W. */
static amp_status infer_optim(amp_infer *c, int n_state) {
    const amp_attr *an = amp_node_attr(c->n, "n");
    if (!an || an->kind != AMP_ATTR_INT)
        return amp_infer_fail(c, AMP_ERR_INVALID_GRAPH, "needs the integer attribute n (number of parameters)");
    if (an->i < 1 || an->i > OPTIM_MAX_PARAMS)
        return amp_infer_fail(c, AMP_ERR_INVALID_GRAPH, "attribute n = %lld is out of range", (long long)an->i);
    const int n = (int)an->i;
    const int want = 4 + (2 + n_state) * n;
    if (c->nin != want)
        return amp_infer_fail(c, AMP_ERR_INVALID_GRAPH, "has %d inputs; n = %d%s needs %d", c->nin, n,
                              n_state == 0 ? " without momentum" : "", want);
    amp_status s = check_one_output(c);
    if (!s) s = check_scalar(c, 0, "lr", AMP_F32, false);
    if (!s) s = check_scalar(c, 1, "step", AMP_F32, false);
    if (!s) s = check_scalar(c, 2, "found_inf", AMP_BOOL, true);
    if (!s) s = check_scalar(c, 3, "scale", AMP_F32, true);
    if (s) return s;

    for (int i = 0; i < n; i++) {
        const int wi = 4 + i, gi = 4 + n + i;
        const amp_tinfo *w = c->in[wi], *g = c->in[gi];
        if (!w || !g)
            return amp_infer_fail(c, AMP_ERR_INVALID_GRAPH, "parameter %d: input %d is missing", i, !w ? wi : gi);
        if (!param_dtype(w->dtype))
            return amp_infer_fail(c, AMP_ERR_UNSUPPORTED, "parameter %d (input %d) is %s; expects f32, f16 or bf16",
                                  i, wi, amp_dtype_name(w->dtype));
        if (!param_dtype(g->dtype))
            return amp_infer_fail(c, AMP_ERR_UNSUPPORTED, "gradient %d (input %d) is %s; expects f32, f16 or bf16", i,
                                  gi, amp_dtype_name(g->dtype));
        if (!amp_tinfo_same_shape(w, g))
            return amp_infer_fail(c, AMP_ERR_SHAPE, "gradient %d (input %d) does not have the shape of its parameter",
                                  i, gi);
        for (int k = 0; k < n_state; k++) {
            const int mi = 4 + (2 + k) * n + i;
            const amp_tinfo *m = c->in[mi];
            if (!m) return amp_infer_fail(c, AMP_ERR_INVALID_GRAPH, "state input %d is missing", mi);
            if (m->dtype != w->dtype && m->dtype != AMP_F32)
                return amp_infer_fail(c, AMP_ERR_SHAPE, "state input %d is %s; expects f32 or its parameter's %s", mi,
                                      amp_dtype_name(m->dtype), amp_dtype_name(w->dtype));
            if (!amp_tinfo_same_shape(w, m))
                return amp_infer_fail(c, AMP_ERR_SHAPE, "state input %d does not have the shape of its parameter",
                                      mi);
        }
    }
    s = check_distinct_state(c, n);
    if (s) return s;

    const float mgn = amp_attr_float(c->n, "max_grad_norm", 0.0f);
    const float wd = amp_attr_float(c->n, "weight_decay", n_state == 2 ? 0.01f : 0.0f);
    if (!(mgn >= 0.0f) || isinf(mgn))
        return amp_infer_fail(c, AMP_ERR_INVALID_GRAPH, "max_grad_norm must be finite and >= 0, is %g", (double)mgn);
    if (!(wd >= 0.0f) || isinf(wd))
        return amp_infer_fail(c, AMP_ERR_INVALID_GRAPH, "weight_decay must be finite and >= 0, is %g", (double)wd);

    set_scalar_out(c, 0, AMP_F32);
    return AMP_OK;
}

amp_status amp_infer_optim_sgd(amp_infer *c) {
    const float momentum = amp_attr_float(c->n, "momentum", 0.0f);
    const float dampening = amp_attr_float(c->n, "dampening", 0.0f);
    const int64_t nesterov = amp_attr_int(c->n, "nesterov", 0);
    if (!(momentum >= 0.0f) || isinf(momentum))
        return amp_infer_fail(c, AMP_ERR_INVALID_GRAPH, "momentum must be finite and >= 0, is %g", (double)momentum);
    if (!isfinite(dampening))
        return amp_infer_fail(c, AMP_ERR_INVALID_GRAPH, "dampening must be finite, is %g", (double)dampening);
    if (nesterov != 0 && nesterov != 1)
        return amp_infer_fail(c, AMP_ERR_INVALID_GRAPH, "nesterov must be 0 or 1, is %lld", (long long)nesterov);
    if (nesterov && (momentum <= 0.0f || dampening != 0.0f))
        return amp_infer_fail(c, AMP_ERR_INVALID_GRAPH, "nesterov momentum needs momentum > 0 and dampening 0");
    return infer_optim(c, momentum != 0.0f ? 1 : 0);
}

amp_status amp_infer_optim_adamw(amp_infer *c) {
    const float b1 = amp_attr_float(c->n, "beta1", 0.9f);
    const float b2 = amp_attr_float(c->n, "beta2", 0.999f);
    const float eps = amp_attr_float(c->n, "epsilon", 1e-8f);
    if (!(b1 >= 0.0f && b1 < 1.0f))
        return amp_infer_fail(c, AMP_ERR_INVALID_GRAPH, "beta1 must be in [0, 1), is %g", (double)b1);
    if (!(b2 >= 0.0f && b2 < 1.0f))
        return amp_infer_fail(c, AMP_ERR_INVALID_GRAPH, "beta2 must be in [0, 1), is %g", (double)b2);
    if (!(eps >= 0.0f) || isinf(eps))
        return amp_infer_fail(c, AMP_ERR_INVALID_GRAPH, "epsilon must be finite and >= 0, is %g", (double)eps);
    return infer_optim(c, 2);
}

amp_status amp_infer_loss_scale_update(amp_infer *c) {
    amp_status s = amp_infer_need_inputs(c, 3, 4);
    if (!s) s = check_one_output(c);
    if (!s) s = check_scalar(c, 0, "scale", AMP_F32, false);
    if (!s) s = check_scalar(c, 1, "tracker", AMP_F32, false);
    if (!s) s = check_scalar(c, 2, "found_inf", AMP_BOOL, false);
    if (s) return s;
    if (c->n->inputs && c->n->inputs[0] >= 0 && c->n->inputs[0] == c->n->inputs[1])
        return amp_infer_fail(c, AMP_ERR_INVALID_GRAPH, "scale and tracker are the same value; both are updated in place");
    const int64_t interval = amp_attr_int(c->n, "growth_interval", 2000);
    const float growth = amp_attr_float(c->n, "growth_factor", 2.0f);
    const float backoff = amp_attr_float(c->n, "backoff_factor", 0.5f);
    /* the tracker is an f32 count: exact up to 2^24 */
    if (interval < 1 || interval > (1 << 24))
        return amp_infer_fail(c, AMP_ERR_INVALID_GRAPH, "growth_interval must be in [1, 2^24], is %lld",
                              (long long)interval);
    if (!(growth > 1.0f) || isinf(growth))
        return amp_infer_fail(c, AMP_ERR_INVALID_GRAPH, "growth_factor must be finite and > 1, is %g", (double)growth);
    if (!(backoff > 0.0f && backoff < 1.0f))
        return amp_infer_fail(c, AMP_ERR_INVALID_GRAPH, "backoff_factor must be in (0, 1), is %g", (double)backoff);
    set_scalar_out(c, 0, AMP_F32);
    return AMP_OK;
}

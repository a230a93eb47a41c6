/* Helpers for gradient builders (ir/grad.h). */
#include <stdio.h>
#include <string.h>

#include "ir/grad.h"
#include "base/half.h"

const amp_node *amp_grad_fwd(const amp_grad_ctx *c) { return &c->g->nodes[c->node]; }

int amp_grad_in(const amp_grad_ctx *c, int i) {
    const amp_node *n = amp_grad_fwd(c);
    return i >= 0 && i < n->n_inputs ? n->inputs[i] : -1;
}

int amp_grad_out(const amp_grad_ctx *c, int k) {
    const amp_node *n = amp_grad_fwd(c);
    return k >= 0 && k < n->n_outputs ? n->outputs[k] : -1;
}

int64_t amp_grad_opset(const amp_grad_ctx *c) { return amp_node_opset(c->g, amp_grad_fwd(c)); }

static amp_status oom(amp_grad_ctx *c) { return amp_seterr(c->ctx, AMP_ERR_NO_MEMORY, "out of memory in autodiff"); }

amp_status amp_grad_node(amp_grad_ctx *c, const char *op, const char *domain, int nin, const int *ins, int nout,
                         int *outs, amp_node **made) {
    amp_graph *g = c->g;
    amp_context *ctx = c->ctx;
    amp_node n;
    memset(&n, 0, sizeof n);
    const amp_node *f = amp_grad_fwd(c);
    char name[512];
    snprintf(name, sizeof name, "%s/grad/%s_%d", f->name && f->name[0] ? f->name : f->op_type, op, g->n_nodes);
    n.name = amp_strdup(ctx, name);
    n.op_type = amp_strdup(ctx, op);
    n.domain = amp_strdup(ctx, domain ? domain : "");
    n.inputs = amp_alloc(ctx, sizeof(int) * (size_t)(nin + 1));
    n.outputs = amp_alloc(ctx, sizeof(int) * (size_t)(nout + 1));
    if (!n.name || !n.op_type || !n.domain || !n.inputs || !n.outputs) {
        amp_node_free(ctx, &n);
        return oom(c);
    }
    n.op = amp_op_lookup(op, n.domain);
    if (n.op == AMP_OP_UNKNOWN) {
        amp_node_free(ctx, &n);
        return amp_seterr(ctx, AMP_ERR_INTERNAL, "gradient builder asked for unknown op %s%s%s", domain ? domain : "",
                          domain && domain[0] ? "." : "", op);
    }
    n.flags = AMP_NODE_INSERTED;
    n.n_inputs = nin;
    for (int i = 0; i < nin; i++) n.inputs[i] = ins[i];
    n.n_outputs = nout;
    for (int k = 0; k < nout; k++) {
        char vn[600];
        snprintf(vn, sizeof vn, "%s:%d", name, k);
        int v = amp_graph_new_value(g, vn);
        if (v < 0) {
            amp_node_free(ctx, &n);
            return oom(c);
        }
        n.outputs[k] = v;
        if (outs) outs[k] = v;
    }
    amp_status s = amp_graph_add_node(g, &n);
    if (s) {
        amp_node_free(ctx, &n);
        return s;
    }
    int id = g->n_nodes - 1;
    for (int k = 0; k < nout; k++) {
        g->values[n.outputs[k]].producer = id;
        g->values[n.outputs[k]].producer_slot = k;
    }
    if (made) *made = &g->nodes[id];
    return AMP_OK;
}

amp_status amp_grad_attr_int(amp_grad_ctx *c, amp_node *n, const char *name, int64_t v) {
    amp_attr *a = amp_node_attr_set(c->ctx, n, name);
    if (!a) return oom(c);
    a->kind = AMP_ATTR_INT;
    a->i = v;
    return AMP_OK;
}

amp_status amp_grad_attr_float(amp_grad_ctx *c, amp_node *n, const char *name, float v) {
    amp_attr *a = amp_node_attr_set(c->ctx, n, name);
    if (!a) return oom(c);
    a->kind = AMP_ATTR_FLOAT;
    a->f = v;
    return AMP_OK;
}

amp_status amp_grad_attr_ints(amp_grad_ctx *c, amp_node *n, const char *name, int count, const int64_t *v) {
    amp_attr *a = amp_node_attr_set(c->ctx, n, name);
    if (!a) return oom(c);
    a->kind = AMP_ATTR_INTS;
    a->ints = amp_alloc(c->ctx, sizeof(int64_t) * (size_t)(count + 1));
    if (!a->ints) return oom(c);
    if (count) memcpy(a->ints, v, sizeof(int64_t) * (size_t)count);
    a->n = count;
    return AMP_OK;
}

amp_status amp_grad_attr_str(amp_grad_ctx *c, amp_node *n, const char *name, const char *v) {
    amp_attr *a = amp_node_attr_set(c->ctx, n, name);
    if (!a) return oom(c);
    a->kind = AMP_ATTR_STRING;
    a->s = amp_strdup(c->ctx, v);
    if (!a->s) return oom(c);
    a->slen = strlen(v);
    return AMP_OK;
}

amp_status amp_grad_copy_attrs(amp_grad_ctx *c, amp_node *n) {
    /* n may move when attributes grow? no: only n->attrs is reallocated */
    const amp_node *f = amp_grad_fwd(c);
    for (int i = 0; i < f->n_attrs; i++) {
        const amp_attr *a = &f->attrs[i];
        amp_status s = AMP_OK;
        switch (a->kind) {
        case AMP_ATTR_INT: s = amp_grad_attr_int(c, n, a->name, a->i); break;
        case AMP_ATTR_FLOAT: s = amp_grad_attr_float(c, n, a->name, a->f); break;
        case AMP_ATTR_INTS: s = amp_grad_attr_ints(c, n, a->name, a->n, a->ints); break;
        case AMP_ATTR_STRING: s = amp_grad_attr_str(c, n, a->name, a->s ? a->s : ""); break;
        case AMP_ATTR_FLOATS: {
            amp_attr *d = amp_node_attr_set(c->ctx, n, a->name);
            if (!d) return oom(c);
            d->kind = AMP_ATTR_FLOATS;
            d->floats = amp_alloc(c->ctx, sizeof(float) * (size_t)(a->n + 1));
            if (!d->floats) return oom(c);
            if (a->n) memcpy(d->floats, a->floats, sizeof(float) * (size_t)a->n);
            d->n = a->n;
            break;
        }
        default: break; /* tensors and graphs: no backward op needs them */
        }
        if (s) return s;
    }
    return AMP_OK;
}

static int const_node(amp_grad_ctx *c, amp_tensor *t) {
    int out = -1;
    amp_node *n = NULL;
    if (amp_grad_node(c, "Constant", "", 0, NULL, 1, &out, &n)) {
        amp_tensor_destroy(t);
        return -1;
    }
    amp_attr *a = amp_node_attr_set(c->ctx, n, "value");
    if (!a) {
        amp_tensor_destroy(t);
        oom(c);
        return -1;
    }
    a->kind = AMP_ATTR_TENSOR;
    a->t = t;
    return out;
}

int amp_grad_const_scalar(amp_grad_ctx *c, amp_dtype dt, double v) {
    amp_tensor *t = NULL;
    if (amp_tensor_create(c->ctx, dt, 0, NULL, &t)) return -1;
    switch (dt) {
    case AMP_F32: *(float *)t->data = (float)v; break;
    case AMP_F64: *(double *)t->data = v; break;
    case AMP_F16: *(uint16_t *)t->data = amp_f32_to_f16((float)v); break;
    case AMP_BF16: *(uint16_t *)t->data = amp_f32_to_bf16((float)v); break;
    case AMP_I64: *(int64_t *)t->data = (int64_t)v; break;
    case AMP_I32: *(int32_t *)t->data = (int32_t)v; break;
    case AMP_BOOL: *(uint8_t *)t->data = v != 0.0; break;
    default:
        amp_tensor_destroy(t);
        amp_seterr(c->ctx, AMP_ERR_UNSUPPORTED, "no scalar constant of %s", amp_dtype_name(dt));
        return -1;
    }
    return const_node(c, t);
}

int amp_grad_const_ints(amp_grad_ctx *c, int n, const int64_t *v) {
    amp_tensor *t = NULL;
    int64_t dims[1] = {n};
    if (amp_tensor_create(c->ctx, AMP_I64, 1, dims, &t)) return -1;
    if (n) memcpy(t->data, v, sizeof(int64_t) * (size_t)n);
    return const_node(c, t);
}

amp_status amp_grad_sparse_node(amp_grad_ctx *c, const char *op, int nin, const int *ins, int nslots,
                                const bool *want, int *outs, amp_node **made) {
    int ids[16], cnt = 0, last = -1;
    if (nslots > 16) return amp_seterr(c->ctx, AMP_ERR_INTERNAL, "%s: %d output slots, at most 16", op, nslots);
    for (int k = 0; k < nslots; k++) {
        outs[k] = -1;
        if (want[k]) cnt++, last = k;
    }
    amp_node *n = NULL;
    amp_status s = amp_grad_node(c, op, AMP_TRAIN_DOMAIN, nin, ins, cnt, ids, &n);
    if (s) return s;
    int *o = amp_realloc(c->ctx, n->outputs, sizeof(int) * (size_t)(last + 2));
    if (!o) return amp_seterr(c->ctx, AMP_ERR_NO_MEMORY, "out of memory in autodiff");
    n->outputs = o;
    n->n_outputs = last + 1;
    for (int k = 0, j = 0; k <= last; k++) {
        o[k] = want[k] ? ids[j++] : -1;
        outs[k] = o[k];
        if (o[k] >= 0) c->g->values[o[k]].producer_slot = k;
    }
    *made = n;
    return AMP_OK;
}

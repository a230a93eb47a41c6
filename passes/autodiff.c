/* Reverse-mode autodiff over the IR: the backward nodes of every forward node between the
 * values to differentiate and the loss, built by the op families' gradient builders
 * (ir/grad.h). Gradients reaching one value from several consumers are summed. Integer, bool
 * and shape paths carry no gradient. */
#include <string.h>

#include "ir/grad.h"
#include "passes/passes.h"

typedef struct contrib {
    int value; /* gradient value */
    int next;  /* next contribution of the same forward value, -1 at the end */
} contrib;

typedef struct ad {
    amp_graph *g;
    amp_context *ctx;
    int nv0;
    int *head;      /* [nv0] first contribution, -1 */
    contrib *list;
    int n, cap;
} ad;

static amp_status add_contrib(ad *a, int v, int grad) {
    if (amp_grow(a->ctx, (void **)&a->list, &a->cap, a->n + 1, sizeof(contrib)))
        return amp_seterr(a->ctx, AMP_ERR_NO_MEMORY, "out of memory in autodiff");
    a->list[a->n] = (contrib){grad, a->head[v]};
    a->head[v] = a->n++;
    return AMP_OK;
}

/* The summed gradient of forward value v (-1 when none flows). */
static amp_status total_grad(ad *a, int v, int node_for_names, int *out) {
    int cnt = 0;
    for (int e = a->head[v]; e >= 0; e = a->list[e].next) cnt++;
    if (cnt == 0) {
        *out = -1;
        return AMP_OK;
    }
    if (cnt == 1) {
        *out = a->list[a->head[v]].value;
        return AMP_OK;
    }
    int ins[256];
    if (cnt > 256) return amp_seterr(a->ctx, AMP_ERR_LIMIT, "value '%s' has more than 256 gradient contributions",
                                     a->g->values[v].name);
    int k = 0;
    for (int e = a->head[v]; e >= 0; e = a->list[e].next) ins[k++] = a->list[e].value;
    amp_grad_ctx c = {.ctx = a->ctx, .g = a->g, .node = node_for_names};
    int sum = -1;
    amp_status s = amp_grad_node(&c, "Sum", "", cnt, ins, 1, &sum, NULL);
    if (s) return s;
    /* later reads see one contribution */
    a->list[a->head[v]].value = sum;
    a->list[a->head[v]].next = -1;
    *out = sum;
    return AMP_OK;
}

static const char *nlabel(const amp_node *n) { return n->name && n->name[0] ? n->name : n->op_type; }

amp_status amp_pass_autodiff(amp_graph *g, int loss, int seed, int n_wrt, const int *wrt, int *grads) {
    amp_context *ctx = g->ctx;
    amp_status s = amp_pass_typecheck(g, false);
    if (s) return s;
    ad a = {.g = g, .ctx = ctx, .nv0 = g->n_values};
    int n0 = g->n_nodes;
    bool *fwd = amp_calloc(ctx, (size_t)a.nv0 + 1, sizeof(bool));
    bool *bwd = amp_calloc(ctx, (size_t)a.nv0 + 1, sizeof(bool));
    a.head = amp_alloc(ctx, sizeof(int) * ((size_t)a.nv0 + 1));
    int dy[64], dx[64];
    bool need[64];
    if (!fwd || !bwd || !a.head) {
        s = amp_seterr(ctx, AMP_ERR_NO_MEMORY, "out of memory in autodiff");
        goto done;
    }
    for (int v = 0; v < a.nv0; v++) a.head[v] = -1;
    /* values that depend on what we differentiate, and values the loss depends on */
    for (int i = 0; i < n_wrt; i++) fwd[wrt[i]] = true;
    for (int ni = 0; ni < n0; ni++) {
        const amp_node *n = &g->nodes[ni];
        bool any = false;
        for (int k = 0; k < n->n_inputs; k++)
            if (n->inputs[k] >= 0 && fwd[n->inputs[k]]) any = true;
        for (int k = 0; any && k < n->n_outputs; k++)
            if (n->outputs[k] >= 0 && amp_dtype_is_float(g->values[n->outputs[k]].dtype)) fwd[n->outputs[k]] = true;
    }
    bwd[loss] = true;
    for (int ni = n0 - 1; ni >= 0; ni--) {
        const amp_node *n = &g->nodes[ni];
        bool any = false;
        for (int k = 0; k < n->n_outputs; k++)
            if (n->outputs[k] >= 0 && bwd[n->outputs[k]]) any = true;
        for (int k = 0; any && k < n->n_inputs; k++)
            if (n->inputs[k] >= 0) bwd[n->inputs[k]] = true;
    }
    if (!fwd[loss]) {
        s = amp_seterr(ctx, AMP_ERR_INVALID_ARG, "the loss '%s' does not depend on any trained value", g->values[loss].name);
        goto done;
    }
    s = add_contrib(&a, loss, seed);
    if (s) goto done;

    for (int ni = n0 - 1; ni >= 0; ni--) {
        const amp_node *n = &g->nodes[ni];
        if (n->n_inputs > 64 || n->n_outputs > 64) continue;
        bool relevant = false;
        for (int k = 0; k < n->n_outputs; k++) {
            int v = n->outputs[k];
            if (v >= 0 && v < a.nv0 && fwd[v] && bwd[v]) relevant = true;
        }
        if (!relevant) continue;
        bool any_dy = false;
        int nout = n->n_outputs, nin = n->n_inputs;
        for (int k = 0; k < nout; k++) {
            dy[k] = -1;
            int v = n->outputs[k];
            if (v < 0 || v >= a.nv0) continue;
            s = total_grad(&a, v, ni, &dy[k]);
            if (s) goto done;
            n = &g->nodes[ni];
            any_dy |= dy[k] >= 0;
        }
        if (!any_dy) continue;
        bool any_need = false;
        for (int i = 0; i < nin; i++) {
            int v = n->inputs[i];
            need[i] = v >= 0 && fwd[v] && amp_dtype_is_float(g->values[v].dtype);
            dx[i] = -1;
            any_need |= need[i];
        }
        if (!any_need) continue;
        if (n->op == AMP_OP_UNKNOWN || !amp_op_table[n->op].has_grad) {
            s = amp_seterr(ctx, AMP_ERR_UNSUPPORTED, "node '%s': %s has no gradient", nlabel(n), n->op_type);
            goto done;
        }
        amp_grad_ctx c = {.ctx = ctx, .g = g, .node = ni, .nin = nin, .nout = nout, .dy = dy, .dx = dx, .need = need};
        /* the builder the op table names for the op (ir/ops.def, GRAD) */
        s = amp_op_table[n->op].grad_builder(&c);
        n = &g->nodes[ni];
        if (s == AMP_ERR_NOT_FOUND) {
            /* the table names a family builder that does not handle the op: a table error */
            s = amp_seterr(ctx, AMP_ERR_INTERNAL, "node '%s': the gradient builder of %s does not handle it", nlabel(n),
                           n->op_type);
            goto done;
        }
        if (s) goto done;
        for (int i = 0; i < nin; i++) {
            if (!need[i] || dx[i] < 0) continue;
            s = add_contrib(&a, n->inputs[i], dx[i]);
            if (s) goto done;
        }
    }
    for (int i = 0; i < n_wrt; i++) {
        s = total_grad(&a, wrt[i], n0 > 0 ? n0 - 1 : 0, &grads[i]);
        if (s) goto done;
    }
    s = amp_graph_link(g);
done:
    amp_dealloc(ctx, fwd);
    amp_dealloc(ctx, bwd);
    amp_dealloc(ctx, a.head);
    amp_dealloc(ctx, a.list);
    return s;
}

#include "gradcheck.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backends/cpu/cpu.h"
#include "ir/grad.h"
#include "passes/passes.h"
#include "runtime/runtime.h"

static amp_status copy_attrs(amp_context *ctx, const amp_node *src, amp_node *dst) {
    dst->attrs = amp_calloc(ctx, (size_t)src->n_attrs + 1, sizeof(amp_attr));
    if (!dst->attrs) return AMP_ERR_NO_MEMORY;
    for (int i = 0; i < src->n_attrs; i++) {
        const amp_attr *a = &src->attrs[i];
        amp_attr *d = &dst->attrs[i];
        dst->n_attrs++;
        d->name = amp_strdup(ctx, a->name);
        d->kind = a->kind;
        d->i = a->i;
        d->f = a->f;
        d->n = a->n;
        if (a->s) {
            d->s = amp_strdup(ctx, a->s);
            d->slen = a->slen;
        }
        if (a->ints) {
            d->ints = amp_alloc(ctx, sizeof(int64_t) * (size_t)(a->n + 1));
            if (d->ints && a->n) memcpy(d->ints, a->ints, sizeof(int64_t) * (size_t)a->n);
        }
        if (a->floats) {
            d->floats = amp_alloc(ctx, sizeof(float) * (size_t)(a->n + 1));
            if (d->floats && a->n) memcpy(d->floats, a->floats, sizeof(float) * (size_t)a->n);
        }
        if (a->strings) {
            d->strings = amp_calloc(ctx, (size_t)a->n + 1, sizeof(char *));
            if (!d->strings) return AMP_ERR_NO_MEMORY;
            for (int k = 0; k < a->n; k++)
                if (a->strings[k] && !(d->strings[k] = amp_strdup(ctx, a->strings[k]))) return AMP_ERR_NO_MEMORY;
        }
        if (a->t && amp_tensor_clone(ctx, a->t, &d->t)) return AMP_ERR_NO_MEMORY;
    }
    return AMP_OK;
}

/* L = sum_k sum(Y_k * R_k), in double, from a forward run of the node alone. */
static amp_status loss_of(amp_test_node *t, int nin, amp_tensor *const *in, int nout, amp_tensor *const *r,
                          double *loss) {
    amp_tensor *y[16] = {0};
    amp_status s = tn_run(t, nin, in, t->node.n_outputs > nout ? t->node.n_outputs : nout, y);
    if (s) return s;
    double l = 0;
    for (int k = 0; k < nout; k++)
        if (r[k])
            for (int64_t e = 0; e < y[k]->numel; e++) l += amp_ld(y[k]->dtype, y[k]->data, e) * amp_ld(r[k]->dtype, r[k]->data, e);
    for (int k = 0; k < 16; k++) amp_tensor_destroy(y[k]);
    *loss = l;
    return AMP_OK;
}

amp_status gc_check(amp_test_node *t, int nin, amp_tensor *const *in, const bool *wrt, int nout, double eps,
                    gc_result *res) {
    amp_context *ctx = t->ctx;
    memset(res, 0, sizeof *res);
    amp_graph *g = NULL;
    amp_model *m = NULL;
    amp_session *sess = NULL;
    amp_tensor *y[16] = {0}, *r[16] = {0}, *grads_out[17] = {0};
    amp_status s;
    int total_out = t->node.n_outputs > nout ? t->node.n_outputs : nout;
    /* shapes of the outputs, and the weights R_k */
    s = tn_run(t, nin, in, total_out, y);
    if (s) {
        snprintf(res->why, sizeof res->why, "forward: %s", amp_context_last_error(ctx));
        return s;
    }
    for (int k = 0; k < nout; k++)
        if (amp_dtype_is_float(y[k]->dtype)) r[k] = tt_rand(ctx, y[k]->dtype, y[k]->rank, y[k]->dims, -1.0, 1.0, 1000 + (uint64_t)k);

    if ((s = amp_graph_create(ctx, &g))) goto done;
    g->opset = t->opset;
    int in_ids[16], out_ids[16];
    g->inputs = amp_calloc(ctx, (size_t)nin + 1, sizeof(int));
    for (int i = 0; i < nin; i++) {
        in_ids[i] = -1;
        if (!in[i]) continue;
        char nm[32];
        snprintf(nm, sizeof nm, "in%d", i);
        int v = amp_graph_new_value(g, nm);
        amp_value *val = &g->values[v];
        val->dtype = in[i]->dtype;
        val->rank = in[i]->rank;
        for (int d = 0; d < in[i]->rank; d++) val->dims[d] = (amp_dim){in[i]->dims[d], -1};
        val->is_input = val->declared = true;
        g->inputs[g->n_inputs++] = v;
        in_ids[i] = v;
    }
    amp_node n;
    memset(&n, 0, sizeof n);
    n.name = amp_strdup(ctx, "fwd");
    n.op_type = amp_strdup(ctx, t->node.op_type);
    n.domain = amp_strdup(ctx, t->node.domain);
    n.op = t->node.op;
    n.flags = t->node.flags;
    n.inputs = amp_alloc(ctx, sizeof(int) * (size_t)(nin + 1));
    n.outputs = amp_alloc(ctx, sizeof(int) * (size_t)(total_out + 1));
    n.n_inputs = nin;
    n.n_outputs = total_out;
    for (int i = 0; i < nin; i++) n.inputs[i] = in_ids[i];
    for (int k = 0; k < total_out; k++) {
        char nm[32];
        snprintf(nm, sizeof nm, "y%d", k);
        out_ids[k] = n.outputs[k] = amp_graph_new_value(g, nm);
        g->values[out_ids[k]].dtype = y[k]->dtype;
    }
    if ((s = copy_attrs(ctx, &t->node, &n)) || (s = amp_graph_add_node(g, &n))) goto done;
    if ((s = amp_graph_link(g))) goto done;
    /* the loss */
    amp_grad_ctx gc = {.ctx = ctx, .g = g, .node = 0};
    int terms[16], nterms = 0;
    for (int k = 0; k < nout; k++) {
        if (!r[k]) continue;
        char nm[32];
        snprintf(nm, sizeof nm, "r%d", k);
        int rv = amp_graph_new_value(g, nm);
        if ((s = amp_tensor_clone(ctx, r[k], &g->values[rv].init))) goto done;
        g->values[rv].dtype = r[k]->dtype;
        int prod, sum;
        int ins[2] = {out_ids[k], rv};
        if ((s = amp_grad_node(&gc, "Mul", "", 2, ins, 1, &prod, NULL))) goto done;
        amp_node *rs;
        if ((s = amp_grad_node(&gc, "ReduceSum", "", 1, &prod, 1, &sum, &rs))) goto done;
        if ((s = amp_grad_attr_int(&gc, rs, "keepdims", 0))) goto done;
        terms[nterms++] = sum;
    }
    if (nterms == 0) {
        snprintf(res->why, sizeof res->why, "no float output");
        s = AMP_ERR_INVALID_ARG;
        goto done;
    }
    int loss = terms[0];
    if (nterms > 1 && (s = amp_grad_node(&gc, "Sum", "", nterms, terms, 1, &loss, NULL))) goto done;
    int seed = amp_grad_const_scalar(&gc, y[0]->dtype, 1.0);
    for (int k = 0; k < nout; k++)
        if (r[k]) {
            seed = amp_grad_const_scalar(&gc, y[k]->dtype, 1.0);
            break;
        }
    if (seed < 0) {
        s = AMP_ERR_NO_MEMORY;
        goto done;
    }
    int wrt_ids[16], grad_ids[16], nw = 0, which[16];
    for (int i = 0; i < nin; i++)
        if (wrt[i] && in[i]) {
            which[nw] = i;
            wrt_ids[nw++] = in_ids[i];
        }
    if ((s = amp_graph_link(g))) goto done;
    s = amp_pass_autodiff(g, loss, seed, nw, wrt_ids, grad_ids);
    if (s) {
        snprintf(res->why, sizeof res->why, "autodiff: %s", amp_context_last_error(ctx));
        goto done;
    }
    g->outputs = amp_calloc(ctx, (size_t)nw + 1, sizeof(int));
    for (int i = 0; i < nw; i++) {
        if (grad_ids[i] < 0) {
            snprintf(res->why, sizeof res->why, "no gradient reaches input %d", which[i]);
            s = AMP_ERR_INVALID_GRAPH;
            goto done;
        }
        g->values[grad_ids[i]].is_output = true;
        g->outputs[g->n_outputs++] = grad_ids[i];
    }
    m = amp_calloc(ctx, 1, sizeof *m);
    m->ctx = ctx;
    m->g = g;
    m->hash = amp_graph_hash(g);
    g = NULL;
    amp_session_options so = {.struct_size = sizeof so, .backend = tu_backend(), .threads = 2};
    if ((s = amp_session_create(m, &so, &sess))) goto done;
    {
        const char *names[16], *onames[16];
        const amp_tensor *ins[16];
        int ng = 0;
        for (int i = 0; i < nin; i++)
            if (in[i]) {
                names[ng] = m->g->values[in_ids[i]].name;
                ins[ng++] = in[i];
            }
        for (int i = 0; i < nw; i++) onames[i] = m->g->values[grad_ids[i]].name;
        s = amp_session_run(sess, ng, names, ins, nw, onames, grads_out);
        if (s) {
            snprintf(res->why, sizeof res->why, "backward run: %s", amp_session_last_error(sess));
            goto done;
        }
    }
    /* central differences */
    for (int w = 0; w < nw; w++) {
        int i = which[w];
        amp_tensor *xs[16];
        for (int j = 0; j < nin; j++) xs[j] = in[j];
        amp_tensor *x = NULL;
        if ((s = amp_tensor_clone(ctx, in[i], &x))) goto done;
        xs[i] = x;
        double num = 0, den = 0;
        for (int64_t e = 0; e < x->numel; e++) {
            double v0 = amp_ld(x->dtype, in[i]->data, e), lp, lm;
            amp_st(x->dtype, x->data, e, v0 + eps);
            double hp = amp_ld(x->dtype, x->data, e) - v0; /* the step the dtype can hold */
            s = loss_of(t, nin, xs, nout, r, &lp);
            amp_st(x->dtype, x->data, e, v0 - eps);
            double hm = v0 - amp_ld(x->dtype, x->data, e);
            if (!s) s = loss_of(t, nin, xs, nout, r, &lm);
            amp_st(x->dtype, x->data, e, v0);
            if (s) {
                amp_tensor_destroy(x);
                snprintf(res->why, sizeof res->why, "finite differences: %s", amp_context_last_error(ctx));
                goto done;
            }
            double fd = (lp - lm) / (hp + hm);
            double an = amp_ld(grads_out[w]->dtype, grads_out[w]->data, e);
            num += (an - fd) * (an - fd);
            den += fd * fd;
        }
        amp_tensor_destroy(x);
        double rel = sqrt(num) / fmax(sqrt(den), 1e-12);
        if (rel > res->max_rel || res->checked == 0) {
            if (rel >= res->max_rel) res->worst_input = i;
            res->max_rel = fmax(res->max_rel, rel);
        }
        res->checked++;
    }
done:
    if (s && !res->why[0]) snprintf(res->why, sizeof res->why, "%s", amp_context_last_error(ctx));
    for (int k = 0; k < 16; k++) {
        amp_tensor_destroy(y[k]);
        amp_tensor_destroy(r[k]);
        amp_tensor_destroy(grads_out[k]);
    }
    amp_session_destroy(sess);
    amp_model_destroy(m);
    amp_graph_destroy(g);
    return s;
}

bool gc_passes(amp_test_node *t, int nin, amp_tensor *const *in, const bool *wrt, int nout, double tol, char *msg,
               size_t cap) {
    bool mark[64];
    int want = 0;
    if (nin > 64) {
        snprintf(msg, cap, "%d inputs, at most 64", nin);
        return false;
    }
    for (int i = 0; i < nin; i++) {
        mark[i] = wrt ? wrt[i] : in[i] && amp_dtype_is_float(in[i]->dtype);
        if (mark[i] && in[i]) want++;
    }
    gc_result r;
    amp_status s = gc_check(t, nin, in, mark, nout, 1e-6, &r);
    if (s != AMP_OK) snprintf(msg, cap, "status %d: %s", (int)s, r.why);
    else if (r.checked != want) snprintf(msg, cap, "%d inputs checked, expected %d", r.checked, want);
    else if (!(r.max_rel < tol)) snprintf(msg, cap, "max_rel %g at input %d", r.max_rel, r.worst_input);
    else return true;
    return false;
}

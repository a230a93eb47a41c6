/* Plan building for one binding of input shapes: shape and type inference over concrete dims
 * (ir/), constant folding (nodes whose inputs are all known run once here, on the host), the
 * backend's prepare for every step (algorithm, per-step state, workspace bytes), lifetimes,
 * in-place reuse, and offsets in one arena (passes/memplan.c). It lives in runtime/ because it
 * asks the backend. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/runtime.h"

#define AMP_ALIGN 256

static size_t align_up(size_t n) { return (n + AMP_ALIGN - 1) / AMP_ALIGN * AMP_ALIGN; }

void amp_plan_destroy(amp_backend *b, amp_context *ctx, amp_plan *p) {
    if (!p) return;
    for (int i = 0; i < p->nsteps && p->steps; i++) amp_backend_release(b, p->steps[i].state);
    if (p->dev_consts) b->i.mem_free(b, AMP_MEM_PERSISTENT, p->dev_consts);
    if (p->slots) {
        /* slots are sized by the graph; owned constants are freed through the list */
        for (int i = 0; p->slots[i].kind != (amp_slot_kind)-1; i++) amp_tensor_destroy(p->slots[i].owned);
    }
    for (int i = 0; i < p->nsteps; i++) {
        amp_dealloc(ctx, p->steps[i].views);
        amp_dealloc(ctx, p->steps[i].pin);
    }
    amp_dealloc(ctx, p->steps);
    amp_dealloc(ctx, p->slots);
    amp_dealloc(ctx, p->bufs);
    amp_dealloc(ctx, p->offsets);
    amp_dealloc(ctx, p->buf_bytes);
    amp_dealloc(ctx, p->key);
    amp_dealloc(ctx, p);
}

static const char *nname(const amp_node *n) { return n->name && n->name[0] ? n->name : "<unnamed>"; }

/* Backends with memory of their own: every constant a step reads gets its backend copy. The
 * model's initializers are in the session's persistent block already; the constants this plan
 * folded or was given by value go into one block of the plan's, uploaded now. */
static amp_status upload_consts(amp_session *sess, amp_plan *p) {
    amp_context *ctx = &sess->ctx;
    const amp_graph *g = sess->model->g;
    amp_backend *be = sess->be;
    int nv = g->n_values;
    /* the constants to copy, each once, with their offsets in the block */
    int *list = amp_alloc(ctx, sizeof(int) * ((size_t)nv + 1));
    size_t *offs = amp_alloc(ctx, sizeof(size_t) * ((size_t)nv + 1));
    bool *seen = amp_calloc(ctx, (size_t)nv + 1, sizeof(bool));
    amp_status s = AMP_OK;
    if (!list || !offs || !seen) {
        s = amp_seterr(ctx, AMP_ERR_NO_MEMORY, "out of memory planning");
        goto done;
    }
    int nl = 0;
    size_t total = 0;
    for (int si = 0; si < p->nsteps; si++) {
        const amp_node *n = &g->nodes[p->steps[si].node];
        for (int k = 0; k < n->n_inputs; k++) {
            int v = n->inputs[k];
            if (v < 0 || v >= nv || seen[v]) continue;
            amp_slot *sl = &p->slots[v];
            if (sl->kind != AMP_SLOT_CONST) continue;
            seen[v] = true;
            if (g->values[v].init && sess->dev[v]) {
                sl->dev = sess->dev[v];
                continue;
            }
            list[nl] = v;
            offs[nl++] = total;
            size_t nb = sl->ti.value->nbytes;
            total += align_up(nb ? nb : 1);
        }
    }
    if (!nl) goto done;
    s = be->i.mem_alloc(be, AMP_MEM_PERSISTENT, total, &p->dev_consts);
    if (s) {
        s = amp_seterr(ctx, s, "cannot allocate %zu bytes for the plan's constants: %s", total, ctx->err);
        goto done;
    }
    for (int i = 0; i < nl; i++) {
        amp_slot *sl = &p->slots[list[i]];
        sl->dev = (unsigned char *)p->dev_consts + offs[i];
        s = be->i.upload(be, sl->dev, sl->ti.value->data, sl->ti.value->nbytes);
        if (s) {
            s = amp_seterr(ctx, s, "cannot upload constant '%s': %s", g->values[list[i]].name, ctx->err);
            goto done;
        }
    }
done:
    amp_dealloc(ctx, list);
    amp_dealloc(ctx, offs);
    amp_dealloc(ctx, seen);
    return s;
}


/* Run a node now, at plan time, on known inputs; its outputs become constants. */
static amp_status fold_node(amp_backend *host, amp_context *ctx, const amp_node *n, int64_t opset, amp_slot *slots) {
    amp_status s = AMP_OK;
    int nout = n->n_outputs;
    amp_tensor *inv = amp_calloc(ctx, (size_t)n->n_inputs + 1, sizeof(amp_tensor));
    amp_tensor **pin = amp_calloc(ctx, (size_t)n->n_inputs + 1, sizeof(amp_tensor *));
    amp_tensor **pout = amp_calloc(ctx, (size_t)nout + 1, sizeof(amp_tensor *));
    if (!inv || !pin || !pout) {
        amp_dealloc(ctx, inv);
        amp_dealloc(ctx, pin);
        amp_dealloc(ctx, pout);
        return amp_seterr(ctx, AMP_ERR_NO_MEMORY, "out of memory folding node '%s'", nname(n));
    }
    for (int k = 0; k < n->n_inputs; k++) {
        pin[k] = NULL;
        if (n->inputs[k] < 0) continue;
        amp_slot *sl = &slots[n->inputs[k]];
        /* Shape and Size read only dims: give them a view without data */
        amp_tensor_view(&inv[k], sl->ti.dtype, sl->ti.rank, sl->ti.dims, sl->ti.value ? sl->ti.value->data : NULL);
        pin[k] = &inv[k];
    }
    for (int k = 0; k < nout; k++) {
        amp_slot *sl = n->outputs[k] >= 0 ? &slots[n->outputs[k]] : NULL;
        if (!sl) continue;
        s = amp_tensor_create(ctx, sl->ti.dtype, sl->ti.rank, sl->ti.dims, &pout[k]);
        if (s) goto fail;
    }
    /* omitted optional outputs stay NULL: kernels skip them */
    amp_kernel k = {.ctx = ctx, .n = n, .opset = opset, .nin = n->n_inputs, .nout = nout,
                    .in = pin, .out = pout, .threads = 1};
    s = amp_backend_run_once(host, &k);
    amp_status as = amp_node_attr_check(ctx, n);
    if (as) s = as;
    if (s) goto fail;
    for (int k2 = 0; k2 < nout; k2++) {
        if (n->outputs[k2] < 0) continue;
        amp_slot *sl = &slots[n->outputs[k2]];
        sl->kind = AMP_SLOT_CONST;
        sl->owned = pout[k2];
        sl->ti.value = pout[k2];
        pout[k2] = NULL;
    }
fail:
    for (int k2 = 0; k2 < nout; k2++) amp_tensor_destroy(pout[k2]);
    amp_dealloc(ctx, inv);
    amp_dealloc(ctx, pin);
    amp_dealloc(ctx, pout);
    return s;
}

/* "[2,3,?]" from concrete dims or declared ones (-1 and symbolic print as ?). */
static void format_dims(int rank, const int64_t *dims, const amp_dim *decl, char *buf, size_t cap) {
    size_t n = (size_t)snprintf(buf, cap, "[");
    for (int d = 0; d < rank && n < cap; d++) {
        int64_t x = dims ? dims[d] : decl[d].value;
        n += x >= 0 ? (size_t)snprintf(buf + n, cap - n, "%s%lld", d ? "," : "", (long long)x)
                    : (size_t)snprintf(buf + n, cap - n, "%s?", d ? "," : "");
    }
    if (n < cap) snprintf(buf + n, cap - n, "]");
}

/* What the file declares of a computed value (a graph output or a value_info entry) must be
 * what the graph computes: the element type exactly, each static dim exactly; symbolic and
 * unknown dims match any size. */
static amp_status check_declared(amp_context *ctx, const amp_graph *g, const amp_slot *slots) {
    for (int i = 0; i < g->n_values; i++) {
        const amp_value *v = &g->values[i];
        const amp_tinfo *t = &slots[i].ti;
        if (!v->declared || v->init || v->producer < 0 || slots[i].kind == AMP_SLOT_NONE) continue;
        const char *what = v->is_output ? "graph output" : "value";
        if ((v->dtype != AMP_UNDEFINED && v->dtype != t->dtype) || (v->dtype == AMP_UNDEFINED && v->elem_onnx_type))
            return amp_seterr(ctx, AMP_ERR_INVALID_GRAPH, "%s '%s' is declared %s but computes as %s", what, v->name,
                              v->dtype != AMP_UNDEFINED ? amp_dtype_name(v->dtype) : "an element type amprt does not hold",
                              amp_dtype_name(t->dtype));
        if (v->rank < 0) continue;
        bool same = v->rank == t->rank;
        for (int d = 0; same && d < v->rank; d++) same = v->dims[d].value < 0 || v->dims[d].value == t->dims[d];
        if (!same) {
            char decl[160], got[160];
            format_dims(v->rank, NULL, v->dims, decl, sizeof decl);
            format_dims(t->rank, t->dims, NULL, got, sizeof got);
            return amp_seterr(ctx, AMP_ERR_INVALID_GRAPH, "%s '%s' is declared with shape %s but computes as %s", what,
                              v->name, decl, got);
        }
    }
    return AMP_OK;
}

/* The arena (allocated by the session after this plan) and the constants folded here must fit
 * the context's memory limit; the message names the largest tensor, the usual culprit. */
static amp_status check_memory(amp_context *ctx, const amp_graph *g, const amp_plan *p) {
    uint64_t folded = 0, total;
    int big = -1;
    for (int i = 0; i < g->n_values; i++) {
        const amp_slot *sl = &p->slots[i];
        if (sl->kind == AMP_SLOT_CONST && sl->owned) folded += sl->owned->nbytes;
        if ((sl->kind == AMP_SLOT_ARENA || sl->owned) && (big < 0 || sl->nbytes > p->slots[big].nbytes)) big = i;
    }
    total = folded + p->stats.arena_bytes;
    if (total <= (uint64_t)ctx->max_memory_bytes) return AMP_OK;
    return amp_seterr(ctx, AMP_ERR_LIMIT,
                      "the plan needs %llu bytes (arena %llu, folded constants %llu), over the memory limit of %lld; "
                      "the largest tensor is '%s' (%zu bytes)",
                      (unsigned long long)total, (unsigned long long)p->stats.arena_bytes, (unsigned long long)folded,
                      (long long)ctx->max_memory_bytes, big >= 0 ? g->values[big].name : "?",
                      big >= 0 ? p->slots[big].nbytes : (size_t)0);
}

/* Dropout in training mode draws random numbers: never fold it. */
static bool foldable_op(const amp_node *n) {
    if (n->op == AMP_OP_DROPOUT) return amp_attr_int(n, "is_test", 1) != 0 && n->n_inputs < 3;
    return true;
}

bool amp_plan_always_folded(const amp_graph *g, bool *constant) {
    for (int v = 0; v < g->n_values; v++) constant[v] = g->values[v].init != NULL;
    for (int i = 0; i < g->n_inputs; i++) constant[g->inputs[i]] = false; /* an input may override */
    for (int ni = 0; ni < g->n_nodes; ni++) {
        const amp_node *n = &g->nodes[ni];
        bool all = foldable_op(n) && n->op != AMP_OP_UNKNOWN;
        for (int k = 0; all && k < n->n_inputs; k++)
            if (n->inputs[k] >= 0 && !constant[n->inputs[k]]) all = false;
        for (int k = 0; k < n->n_outputs; k++)
            if (n->outputs[k] >= 0) constant[n->outputs[k]] = all;
    }
    return true;
}

amp_status amp_plan_build(amp_session *sess, int nbind, const int *in_ids, const amp_tinfo *in_ti, amp_plan **out) {
    amp_context *ctx = &sess->ctx;
    const amp_graph *g = sess->model->g;
    amp_status s = AMP_OK;
    int nv = g->n_values;
    const amp_tinfo **tin = NULL;
    amp_tinfo **tout = NULL, *scratch = NULL;
    amp_plan *p = amp_calloc(ctx, 1, sizeof *p);
    if (!p) return amp_seterr(ctx, AMP_ERR_NO_MEMORY, "out of memory planning");
    static _Atomic uint64_t next_id = 1;
    p->id = next_id++;
    /* one extra slot marks the end of the array for amp_plan_destroy */
    p->slots = amp_calloc(ctx, (size_t)nv + 1, sizeof(amp_slot));
    p->steps = amp_calloc(ctx, (size_t)g->n_nodes + 1, sizeof(amp_step));
    if (!p->slots || !p->steps) {
        amp_dealloc(ctx, p->slots);
        p->slots = NULL;
        s = amp_seterr(ctx, AMP_ERR_NO_MEMORY, "out of memory planning");
        goto fail;
    }
    p->slots[nv].kind = (amp_slot_kind)-1;
    /* per-node scratch for inference, sized by the widest node (fused optimizers read every
     * parameter) */
    int maxio = 8; /* inference may write outputs the node omits: they get scratch slots */
    for (int ni = 0; ni < g->n_nodes; ni++) {
        if (g->nodes[ni].n_inputs > maxio) maxio = g->nodes[ni].n_inputs;
        if (g->nodes[ni].n_outputs > maxio) maxio = g->nodes[ni].n_outputs;
    }
    tin = amp_calloc(ctx, (size_t)maxio, sizeof *tin);
    tout = amp_calloc(ctx, (size_t)maxio, sizeof *tout);
    scratch = amp_calloc(ctx, (size_t)maxio, sizeof *scratch);
    if (!tin || !tout || !scratch) {
        s = amp_seterr(ctx, AMP_ERR_NO_MEMORY, "out of memory planning");
        goto fail;
    }
    for (int k = 0; k < maxio; k++) tout[k] = &scratch[k];
    for (int i = 0; i < nv; i++) {
        amp_slot *sl = &p->slots[i];
        const amp_value *v = &g->values[i];
        sl->buf = -1;
        sl->first_use = sl->last_use = -1;
        if (v->init) {
            sl->kind = AMP_SLOT_CONST;
            sl->ti.dtype = v->init->dtype;
            sl->ti.rank = v->init->rank;
            memcpy(sl->ti.dims, v->init->dims, sizeof sl->ti.dims);
            sl->ti.value = v->init;
        }
    }
    for (int i = 0; i < nbind; i++) {
        amp_slot *sl = &p->slots[in_ids[i]];
        sl->kind = in_ti[i].value ? AMP_SLOT_CONST : AMP_SLOT_INPUT;
        sl->ti = in_ti[i];
    }
    for (int i = 0; i < g->n_inputs; i++) {
        const amp_value *v = &g->values[g->inputs[i]];
        if (!v->init && p->slots[g->inputs[i]].kind == AMP_SLOT_NONE)
            { s = amp_seterr(ctx, AMP_ERR_INVALID_ARG, "graph input '%s' was not given", v->name); goto fail; }
    }

    /* inference and folding, in topological order */
    uint64_t folded_bytes = 0;
    for (int ni = 0; ni < g->n_nodes; ni++) {
        const amp_node *n = &g->nodes[ni];
        if (n->op == AMP_OP_UNKNOWN) {
            s = amp_seterr(ctx, AMP_ERR_UNSUPPORTED, "node '%s': unsupported op %s%s%s", nname(n),
                           n->domain && n->domain[0] ? n->domain : "", n->domain && n->domain[0] ? "." : "",
                           n->op_type);
            goto fail;
        }
        int64_t opset = amp_node_opset(g, n);
        const amp_op_info *oi = &amp_op_table[n->op];
        if (opset < oi->opset_lo || opset > oi->opset_hi) {
            s = amp_seterr(ctx, AMP_ERR_UNSUPPORTED, "node '%s': %s at opset %lld is not supported (opsets %d to %d)",
                           nname(n), n->op_type, (long long)opset, oi->opset_lo, oi->opset_hi);
            goto fail;
        }
        bool known = true;
        for (int k = 0; k < n->n_inputs; k++) {
            tin[k] = NULL;
            if (n->inputs[k] < 0) continue;
            amp_slot *sl = &p->slots[n->inputs[k]];
            if (sl->kind == AMP_SLOT_NONE) {
                s = amp_seterr(ctx, AMP_ERR_INVALID_GRAPH, "node '%s' reads '%s' before it is defined", nname(n),
                               g->values[n->inputs[k]].name);
                goto fail;
            }
            tin[k] = &sl->ti;
            if (!sl->ti.value) known = false;
        }
        if (n->n_outputs < 1) {
            s = amp_seterr(ctx, AMP_ERR_INVALID_GRAPH, "node '%s' (%s) has no outputs", nname(n), n->op_type);
            goto fail;
        }
        /* only this node's width: resetting all maxio entries per node is quadratic when one
         * node (a Sum or Concat of thousands) is wide; entries past it keep pointing at scratch */
        int width = n->n_inputs > n->n_outputs ? n->n_inputs : n->n_outputs;
        if (width < 8) width = 8;
        for (int k = 0; k < width; k++) {
            memset(&scratch[k], 0, sizeof scratch[k]);
            tout[k] = k < n->n_outputs && n->outputs[k] >= 0 ? &p->slots[n->outputs[k]].ti : &scratch[k];
            memset(tout[k], 0, sizeof *tout[k]);
        }
        amp_infer c = {.ctx = ctx, .g = g, .n = n, .opset = opset, .nin = n->n_inputs, .nout = n->n_outputs,
                       .in = tin, .out = tout};
        s = oi->infer(&c);
        /* an attribute of the wrong kind read as its default explains whatever inference made
         * of it, so it is the error reported */
        amp_status as = amp_node_attr_check(ctx, n);
        if (as) s = as;
        for (int k = 0; k < n->n_outputs; k++) tout[k] = &scratch[k];
        if (s) goto fail;
        for (int k = 0; k < n->n_outputs; k++) {
            if (n->outputs[k] < 0) continue;
            amp_slot *sl = &p->slots[n->outputs[k]];
            if (amp_dtype_size(sl->ti.dtype) == 0 || sl->ti.rank < 0 || sl->ti.rank > AMP_MAX_RANK) {
                s = amp_seterr(ctx, AMP_ERR_INTERNAL, "node '%s': inference gave output %d no type", nname(n), k);
                goto fail;
            }
            int64_t numel;
            amp_status e = amp_shape_numel(sl->ti.rank, sl->ti.dims, sl->ti.dtype, &numel, &sl->nbytes);
            if (e) {
                s = amp_seterr(ctx, e == AMP_ERR_OVERFLOW ? AMP_ERR_OVERFLOW : AMP_ERR_SHAPE,
                               "node '%s': output '%s' has an invalid or overflowing shape", nname(n),
                               g->values[n->outputs[k]].name);
                goto fail;
            }
            if (numel > ctx->max_tensor_elements) {
                s = amp_seterr(ctx, AMP_ERR_LIMIT, "node '%s': output '%s' has %lld elements, over the limit",
                               nname(n), g->values[n->outputs[k]].name, (long long)numel);
                goto fail;
            }
            if (sl->nbytes > (uint64_t)ctx->max_memory_bytes) {
                s = amp_seterr(ctx, AMP_ERR_LIMIT, "node '%s': output '%s' needs %zu bytes, over the memory limit of %lld",
                               nname(n), g->values[n->outputs[k]].name, sl->nbytes, (long long)ctx->max_memory_bytes);
                goto fail;
            }
        }
        bool fold = foldable_op(n) && (known || n->op == AMP_OP_SHAPE || n->op == AMP_OP_SIZE);
        if (fold) {
            /* folded constants live as long as the plan: their sum is bounded before each one is made */
            for (int k = 0; k < n->n_outputs; k++)
                if (n->outputs[k] >= 0) folded_bytes += p->slots[n->outputs[k]].nbytes;
            if (folded_bytes > (uint64_t)ctx->max_memory_bytes) {
                s = amp_seterr(ctx, AMP_ERR_LIMIT, "node '%s': constants folded so far need %llu bytes, over the memory limit of %lld",
                               nname(n), (unsigned long long)folded_bytes, (long long)ctx->max_memory_bytes);
                goto fail;
            }
            s = fold_node(sess->host, ctx, n, opset, p->slots);
            if (s) goto fail;
            p->stats.nodes_folded++;
            continue;
        }
        amp_step *st = &p->steps[p->nsteps];
        st->node = ni;
        st->opset = opset;
        st->nin = n->n_inputs;
        st->nout = n->n_outputs;
        st->ws_buf = -1;
        for (int k = 0; k < n->n_outputs; k++)
            if (n->outputs[k] >= 0) p->slots[n->outputs[k]].kind = AMP_SLOT_ARENA;
        p->nsteps++;
    }
    for (int i = 0; i < g->n_outputs; i++) {
        amp_slot *sl = &p->slots[g->outputs[i]];
        if (sl->kind == AMP_SLOT_NONE) {
            s = amp_seterr(ctx, AMP_ERR_INVALID_GRAPH, "graph output '%s' is never computed", g->values[g->outputs[i]].name);
            goto fail;
        }
    }
    if ((s = check_declared(ctx, g, p->slots))) goto fail;

    /* Backends with memory of their own: inputs that are not resident are staged, uploaded
     * into arena buffers live from the first step */
    bool device = !sess->be->i.host_memory;
    int ns = p->nsteps;
    if (device)
        for (int i = 0; i < nv; i++) {
            amp_slot *sl = &p->slots[i];
            if (sl->kind != AMP_SLOT_INPUT) continue;
            if (sess->res_host && sess->res_host[i]) {
                sl->dev = sess->dev[i];
            } else {
                sl->staged = true;
                sl->first_use = sl->last_use = 0;
                amp_status e = amp_shape_numel(sl->ti.rank, sl->ti.dims, sl->ti.dtype, &(int64_t){0}, &sl->nbytes);
                if (e) {
                    s = amp_seterr(ctx, e, "input '%s' has an invalid shape", g->values[i].name);
                    goto fail;
                }
            }
        }

    /* lifetimes over steps */
    for (int si = 0; si < ns; si++) {
        const amp_node *n = &g->nodes[p->steps[si].node];
        for (int k = 0; k < n->n_outputs; k++)
            if (n->outputs[k] >= 0) p->slots[n->outputs[k]].first_use = p->slots[n->outputs[k]].last_use = si;
        for (int k = 0; k < n->n_inputs; k++)
            if (n->inputs[k] >= 0 && (p->slots[n->inputs[k]].kind == AMP_SLOT_ARENA || p->slots[n->inputs[k]].staged))
                p->slots[n->inputs[k]].last_use = si;
    }
    for (int i = 0; i < g->n_outputs; i++) {
        amp_slot *sl = &p->slots[g->outputs[i]];
        if (sl->kind == AMP_SLOT_ARENA || sl->staged) sl->last_use = ns > 0 ? ns - 1 : 0;
    }

    /* views: dtype and dims fixed now, data pointers set before each run; the backend
     * prepares each step on them (known inputs carry their host data) and sizes its workspace */
    for (int si = 0; si < ns; si++) {
        amp_step *st = &p->steps[si];
        const amp_node *n = &g->nodes[st->node];
        int nt = st->nin + st->nout;
        st->views = amp_calloc(ctx, (size_t)nt + 1, sizeof(amp_tensor));
        st->pin = amp_calloc(ctx, (size_t)nt + 1, sizeof(amp_tensor *));
        if (!st->views || !st->pin) {
            s = amp_seterr(ctx, AMP_ERR_NO_MEMORY, "out of memory planning");
            goto fail;
        }
        st->pout = st->pin + st->nin;
        for (int k = 0; k < st->nin; k++) {
            if (n->inputs[k] < 0) continue;
            amp_slot *sl = &p->slots[n->inputs[k]];
            amp_tensor_view(&st->views[k], sl->ti.dtype, sl->ti.rank, sl->ti.dims,
                            sl->ti.value ? sl->ti.value->data : NULL);
            st->pin[k] = &st->views[k];
        }
        for (int k = 0; k < st->nout; k++) {
            if (n->outputs[k] < 0) continue;
            amp_slot *sl = &p->slots[n->outputs[k]];
            amp_tensor_view(&st->views[st->nin + k], sl->ti.dtype, sl->ti.rank, sl->ti.dims, NULL);
            st->pout[k] = &st->views[st->nin + k];
        }
        amp_kernel k = {.ctx = ctx, .n = n, .opset = st->opset, .nin = st->nin, .nout = st->nout,
                        .in = st->pin, .out = st->pout, .threads = sess->be->threads};
        if (!amp_backend_supports(sess->be, &k)) {
            s = amp_seterr(ctx, AMP_ERR_UNSUPPORTED, "node '%s': backend '%s' has no kernel for %s", nname(n),
                           sess->be->i.name, n->op_type);
            goto fail;
        }
        s = amp_backend_prepare(sess->be, &k, &st->state, &st->ws_bytes);
        amp_status as = amp_node_attr_check(ctx, n);
        if (as) s = as;
        if (s) goto fail;
    }

    /* buffers: one per arena value, merged for in-place outputs, plus workspaces */
    int maxbufs = nv + ns + 1;
    p->bufs = amp_calloc(ctx, (size_t)maxbufs, sizeof(amp_membuf));
    p->offsets = amp_calloc(ctx, (size_t)maxbufs, sizeof(size_t));
    p->buf_bytes = amp_calloc(ctx, (size_t)maxbufs, sizeof(size_t));
    if (!p->bufs || !p->offsets || !p->buf_bytes) {
        s = amp_seterr(ctx, AMP_ERR_NO_MEMORY, "out of memory planning");
        goto fail;
    }
    for (int i = 0; device && i < nv; i++) {
        amp_slot *sl = &p->slots[i];
        if (!sl->staged) continue;
        sl->buf = p->nbufs;
        p->bufs[p->nbufs].first = 0;
        p->bufs[p->nbufs].last = sl->last_use;
        p->bufs[p->nbufs].size = align_up(sl->nbytes);
        p->buf_bytes[p->nbufs] = sl->nbytes;
        p->nbufs++;
    }
    for (int si = 0; si < ns; si++) {
        amp_step *st = &p->steps[si];
        const amp_node *n = &g->nodes[st->node];
        for (int k = 0; k < n->n_outputs; k++) {
            int v = n->outputs[k];
            if (v < 0) continue;
            amp_slot *sl = &p->slots[v];
            /* in place: the op allows it, the input dies here, same bytes, not a graph output */
            if (k == 0 && amp_op_table[n->op].inplace && n->n_inputs > 0 && n->inputs[0] >= 0) {
                amp_slot *src = &p->slots[n->inputs[0]];
                bool input_used_once = true;
                for (int k2 = 1; k2 < n->n_inputs; k2++)
                    if (n->inputs[k2] == n->inputs[0]) input_used_once = false;
                if (src->kind == AMP_SLOT_ARENA && src->last_use == si && src->nbytes == sl->nbytes &&
                    !g->values[n->inputs[0]].is_output && input_used_once && src->buf >= 0) {
                    sl->buf = src->buf;
                    if (sl->last_use > p->bufs[sl->buf].last) p->bufs[sl->buf].last = sl->last_use;
                    p->stats.inplace++;
                    continue;
                }
            }
            sl->buf = p->nbufs;
            p->bufs[p->nbufs].first = sl->first_use;
            p->bufs[p->nbufs].last = sl->last_use;
            p->bufs[p->nbufs].size = align_up(sl->nbytes);
            p->buf_bytes[p->nbufs] = sl->nbytes;
            p->nbufs++;
        }
        if (st->ws_bytes) {
            st->ws_buf = p->nbufs;
            p->bufs[p->nbufs].first = p->bufs[p->nbufs].last = si;
            p->bufs[p->nbufs].size = align_up(st->ws_bytes);
            p->buf_bytes[p->nbufs] = st->ws_bytes;
            p->nbufs++;
            p->stats.workspace_bytes += st->ws_bytes;
        }
    }
    amp_memplan_result r;
    if (amp_memplan(p->bufs, p->nbufs, ns > 0 ? ns : 1, p->offsets, &r) != 0) {
        s = amp_seterr(ctx, AMP_ERR_NO_MEMORY, "out of memory in the memory planner");
        goto fail;
    }
    p->stats.arena_bytes = r.arena;
    p->stats.lower_bound_bytes = r.lower_bound;
    p->stats.naive_bytes = r.naive;
    p->stats.strategy = r.strategy;
    p->stats.nodes_run = ns;
    for (int i = 0; i < nv; i++) {
        amp_slot *sl = &p->slots[i];
        if (sl->kind == AMP_SLOT_CONST && (g->values[i].init || sl->owned)) p->stats.persistent_bytes += sl->ti.value->nbytes;
    }
    if ((s = check_memory(ctx, g, p))) goto fail;
    if (device && (s = upload_consts(sess, p))) goto fail;

    *out = p;
    amp_dealloc(ctx, tin);
    amp_dealloc(ctx, tout);
    amp_dealloc(ctx, scratch);
    return AMP_OK;
fail:
    amp_plan_destroy(sess->be, ctx, p);
    amp_dealloc(ctx, tin);
    amp_dealloc(ctx, tout);
    amp_dealloc(ctx, scratch);
    return s;
}

void amp_plan_dump(const amp_session *sess, const amp_plan *p, FILE *f) {
    const amp_graph *g = sess->model->g;
    for (int si = 0; si < p->nsteps; si++) {
        const amp_node *n = &g->nodes[p->steps[si].node];
        fprintf(f, "%4d %-20s %s\n", si, n->op_type, nname(n));
        for (int k = 0; k < n->n_outputs; k++) {
            if (n->outputs[k] < 0) continue;
            const amp_slot *sl = &p->slots[n->outputs[k]];
            fprintf(f, "       -> %s %s [", g->values[n->outputs[k]].name, amp_dtype_name(sl->ti.dtype));
            for (int d = 0; d < sl->ti.rank; d++) fprintf(f, "%s%lld", d ? "," : "", (long long)sl->ti.dims[d]);
            fprintf(f, "] @%zu live %d..%d\n", sl->buf >= 0 ? p->offsets[sl->buf] : 0, sl->first_use, sl->last_use);
        }
    }
}

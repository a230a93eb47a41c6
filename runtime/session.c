/* Sessions: a plan cache keyed by the full tuple of input dims (and the values of small
 * integer inputs, which may decide shapes), one arena sized for the largest plan, and the
 * executor, which allocates nothing while running. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "passes/passes.h"
#include "runtime/runtime.h"

#define AMP_SMALL_INT_INPUT 64

static amp_status mark_shape_inputs(amp_session *s);

static amp_status ensure_persistent(amp_session *s);

/* ---- fusion: the session's own graph when the backend asks for fused chains ------------------ */

/* The fused op each kind of chain makes (a backend without it gets no such fusion). */
static const struct {
    unsigned bit;
    amp_op op;
} fused_ops[] = {{AMP_FUSE_GELU, AMP_OP_GELU},           {AMP_FUSE_GEMM, AMP_OP_FUSED_GEMM},
                 {AMP_FUSE_CONV, AMP_OP_FUSED_CONV},     {AMP_FUSE_LAYERNORM, AMP_OP_ADD_LAYER_NORM},
                 {AMP_FUSE_ATTENTION, AMP_OP_ATTENTION}, {AMP_FUSE_CASTS, AMP_OP_CAST_MULTI}};

static void drop_fused(amp_session *s) {
    if (!s->fused) return;
    /* the initializers are the caller's model's */
    for (int i = 0; i < s->fused->g->n_values; i++) s->fused->g->values[i].init = NULL;
    amp_graph_destroy(s->fused->g);
    amp_dealloc(s->fused->ctx, s->fused);
    s->fused = NULL;
    s->model = s->user_model;
}

/* fusion: the session option (0: what the backend asks for; -1: none; 1: every kind). */
static amp_status apply_fusion(amp_session *s, int fusion) {
    amp_model *um = s->user_model;
    s->model = um;
    unsigned which = fusion < 0 ? 0 : fusion > 0 ? AMP_FUSE_ALL : s->be->i.fusions;
    for (size_t i = 0; i < sizeof fused_ops / sizeof fused_ops[0]; i++)
        if (!amp_backend_has_op(s->be, fused_ops[i].op)) which &= ~fused_ops[i].bit;
    if (!which) return AMP_OK;
    amp_graph *g;
    amp_status st = amp_graph_clone(um->g, &g);
    if (st) return amp_seterr(&s->ctx, st, "%s", um->ctx->err);
    /* borrow the caller's initializers instead of holding a second copy */
    for (int i = 0; i < g->n_values; i++)
        if (g->values[i].init) {
            amp_tensor_destroy(g->values[i].init);
            g->values[i].init = um->g->values[i].init;
        }
    amp_model *fm = amp_calloc(um->ctx, 1, sizeof *fm);
    if (!fm) {
        for (int i = 0; i < g->n_values; i++) g->values[i].init = NULL;
        amp_graph_destroy(g);
        return amp_seterr(&s->ctx, AMP_ERR_NO_MEMORY, "out of memory");
    }
    fm->ctx = um->ctx;
    fm->g = g;
    s->fused = fm;
    amp_fuse_report fr;
    st = amp_pass_fuse(g, which, &fr);
    if (st) {
        amp_seterr(&s->ctx, st, "fusion: %s", um->ctx->err);
        drop_fused(s);
        return st;
    }
    const amp_fuse_report *r = &fr;
    amp_log(&s->ctx, AMP_LOG_INFO, "fused for %s: %d GELU, %d GEMM, %d Conv, %d LayerNorm, %d attention, %d cast groups",
            s->be->i.name, r->gelu, r->gemm, r->conv, r->layernorm, r->attention, r->casts);
    if (r->gelu + r->gemm + r->conv + r->layernorm + r->attention + r->casts == 0) {
        drop_fused(s);
        return AMP_OK;
    }
    fm->hash = amp_graph_hash(g);
    s->model = fm;
    /* the per-value arrays follow the fused graph (the pass adds values) */
    const amp_tensor **bv = amp_calloc(&s->ctx, (size_t)g->n_values + 1, sizeof(amp_tensor *));
    if (!bv) return amp_seterr(&s->ctx, AMP_ERR_NO_MEMORY, "out of memory");
    amp_dealloc(&s->ctx, s->by_value);
    s->by_value = bv;
    return AMP_OK;
}

amp_status amp_session_create(amp_model *model, const amp_session_options *opts, amp_session **out) {
    return amp_session_create_ex(model, opts, true, out);
}

amp_status amp_session_create_ex(amp_model *model, const amp_session_options *opts, bool upload_now,
                                 amp_session **out) {
    if (!model || !out) return AMP_ERR_INVALID_ARG;
    amp_context *ctx = model->ctx;
    amp_session_options o;
    amp_copy_options(&o, sizeof o, opts);
    if (o.threads < 0) return amp_seterr(ctx, AMP_ERR_INVALID_ARG, "threads must be >= 0");
    if (o.fusion < -1 || o.fusion > 1)
        return amp_seterr(ctx, AMP_ERR_INVALID_ARG, "fusion must be 0 (the backend's choice), -1 (none) or 1 (all), is %d",
                          o.fusion);
    if (o.threads == 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        o.threads = n > 0 ? (int)n : 1;
    }
    /* every op of the graph must be known before anything is planned */
    for (int i = 0; i < model->g->n_nodes; i++) {
        const amp_node *n = &model->g->nodes[i];
        if (n->op == AMP_OP_UNKNOWN)
            return amp_seterr(ctx, AMP_ERR_UNSUPPORTED, "node '%s': unsupported op %s%s%s",
                              n->name && n->name[0] ? n->name : "<unnamed>", n->domain[0] ? n->domain : "",
                              n->domain[0] ? "." : "", n->op_type);
    }
    amp_status st = AMP_OK;
    amp_session *s = amp_calloc(ctx, 1, sizeof *s);
    if (!s) return amp_seterr(ctx, AMP_ERR_NO_MEMORY, "out of memory");
    int nin = amp_model_input_count(model);
    s->in_ids = amp_calloc(ctx, (size_t)nin + 1, sizeof(int));
    s->in_t = amp_calloc(ctx, (size_t)nin + 1, sizeof(amp_tensor *));
    s->shape_input = amp_calloc(ctx, (size_t)nin + 1, sizeof(bool));
    s->by_value = amp_calloc(ctx, (size_t)model->g->n_values + 1, sizeof(amp_tensor *));
    s->out_ids = amp_calloc(ctx, (size_t)model->g->n_outputs + 1, sizeof(int));
    s->out_made = amp_calloc(ctx, (size_t)model->g->n_outputs + 1, sizeof(amp_tensor *));
    if (!s->in_ids || !s->in_t || !s->shape_input || !s->by_value || !s->out_ids || !s->out_made) {
        amp_dealloc(ctx, s->in_ids);
        amp_dealloc(ctx, s->in_t);
        amp_dealloc(ctx, s->shape_input);
        amp_dealloc(ctx, s->by_value);
        amp_dealloc(ctx, s->out_ids);
        amp_dealloc(ctx, s->out_made);
        amp_dealloc(ctx, s);
        return amp_seterr(ctx, AMP_ERR_NO_MEMORY, "out of memory");
    }
    s->model = model;
    s->ctx = *ctx;
    s->ctx.err[0] = 0;
    s->opts = o;
    s->opts.backend = NULL; /* borrowed only during this call */
    bool is_auto = !o.backend || strcmp(o.backend, "auto") == 0;
    st = amp_backend_create_noted(&s->ctx, o.backend, o.threads, &s->be, s->backend_note, sizeof s->backend_note);
    if (st) {
        amp_seterr(ctx, st, "%s", s->ctx.err);
        amp_session_destroy(s);
        return st;
    }
    /* every op must have a kernel on the backend: named now, not at the first run; "auto"
     * settles on the CPU instead, and says why */
    bool *folded = amp_calloc(ctx, (size_t)model->g->n_values + 1, sizeof(bool));
    if (!folded) {
        amp_session_destroy(s);
        return amp_seterr(ctx, AMP_ERR_NO_MEMORY, "out of memory");
    }
    amp_plan_always_folded(model->g, folded);
    for (int i = 0; i < model->g->n_nodes; i++) {
        const amp_node *n = &model->g->nodes[i];
        bool all_folded = n->n_outputs > 0;
        for (int k = 0; k < n->n_outputs; k++)
            if (n->outputs[k] >= 0 && !folded[n->outputs[k]]) all_folded = false;
        if (all_folded || amp_backend_has_op(s->be, n->op)) continue;
        /* the other op types it lacks, each named once, so one refusal lists all of them */
        char more[256] = "";
        size_t mlen = 0;
        int nmore = 0;
        for (int j = i + 1; j < model->g->n_nodes; j++) {
            const amp_node *m = &model->g->nodes[j];
            if (m->op == n->op || amp_backend_has_op(s->be, m->op)) continue;
            bool seen = false, mf = m->n_outputs > 0;
            for (int k = 0; k < m->n_outputs; k++)
                if (m->outputs[k] >= 0 && !folded[m->outputs[k]]) mf = false;
            for (int q = i + 1; q < j && !seen; q++) seen = model->g->nodes[q].op == m->op && !amp_backend_has_op(s->be, m->op);
            if (mf || seen) continue;
            nmore++;
            if (mlen + strlen(m->op_type) + 3 < sizeof more)
                mlen += (size_t)snprintf(more + mlen, sizeof more - mlen, "%s%s", mlen ? ", " : "", m->op_type);
        }
        char tail[300] = "";
        if (nmore) snprintf(tail, sizeof tail, "; it also lacks %s", more);
        if (is_auto) {
            snprintf(s->backend_note, sizeof s->backend_note, "auto: the CPU, since %s has no kernel for %s (node '%s')%s",
                     s->be->i.name, n->op_type, n->name && n->name[0] ? n->name : "<unnamed>", tail);
            amp_log(ctx, AMP_LOG_INFO, "backend %s", s->backend_note);
            amp_backend_destroy(s->be);
            s->be = NULL;
            st = amp_backend_cpu_create(&s->ctx, o.threads, &s->be);
        } else {
            st = amp_seterr(&s->ctx, AMP_ERR_UNSUPPORTED, "node '%s': backend '%s' has no kernel for %s%s",
                            n->name && n->name[0] ? n->name : "<unnamed>", s->be->i.name, n->op_type, tail);
        }
        if (st) {
            amp_dealloc(ctx, folded);
            amp_seterr(ctx, st, "%s", s->ctx.err);
            amp_session_destroy(s);
            return st;
        }
        break;
    }
    amp_dealloc(ctx, folded);
    s->user_model = model;
    if ((st = apply_fusion(s, o.fusion))) {
        amp_seterr(ctx, st, "%s", s->ctx.err);
        amp_session_destroy(s);
        return st;
    }
    model = s->model;
    /* Backends with memory of their own: constants are folded on the CPU, and the session
     * keeps every value's backend copy */
    s->host = s->be;
    if (!s->be->i.host_memory) {
        st = amp_backend_cpu_create(&s->ctx, o.threads, &s->host);
        if (!st) {
            s->dev = amp_calloc(ctx, (size_t)model->g->n_values + 1, sizeof(void *));
            s->res_host = amp_calloc(ctx, (size_t)model->g->n_values + 1, sizeof(amp_tensor *));
            if (!s->dev || !s->res_host) st = amp_seterr(&s->ctx, AMP_ERR_NO_MEMORY, "out of memory");
        }
        if (st) {
            amp_seterr(ctx, st, "%s", s->ctx.err);
            amp_session_destroy(s);
            return st;
        }
    }
    for (int i = 0; i < nin; i++) s->in_ids[i] = amp_model_input_value(model, i);
    st = mark_shape_inputs(s);
    /* the weights go to the device now: a model too big for it fails here, not at a first run */
    if (!st && upload_now) st = ensure_persistent(s);
    if (st) {
        amp_seterr(ctx, st, "%s", s->ctx.err);
        amp_session_destroy(s);
        return st;
    }
    *out = s;
    return AMP_OK;
}

void amp_session_destroy(amp_session *s) {
    if (!s) return;
    amp_context *ctx = &s->ctx;
    for (int i = 0; i < s->n_plans; i++) amp_plan_destroy(s->be, ctx, s->plans[i]);
    amp_dealloc(ctx, s->plans);
    if (s->arena) s->be->i.mem_free(s->be, AMP_MEM_ARENA, s->arena);
    if (s->persist) s->be->i.mem_free(s->be, AMP_MEM_PERSISTENT, s->persist);
    if (s->host != s->be) amp_backend_destroy(s->host);
    amp_backend_destroy(s->be);
    amp_dealloc(ctx, s->dev);
    amp_dealloc(ctx, s->res_host);
    amp_dealloc(ctx, s->profile_ms);
    amp_dealloc(ctx, s->in_ids);
    amp_dealloc(ctx, s->in_t);
    amp_dealloc(ctx, s->shape_input);
    amp_dealloc(ctx, s->by_value);
    amp_dealloc(ctx, s->out_ids);
    amp_dealloc(ctx, s->out_made);
    drop_fused(s);
    amp_dealloc(s->model->ctx, s);
}

amp_status amp_session_profile(amp_session *s, bool on) {
    amp_dealloc(&s->ctx, s->profile_ms);
    s->profile_ms = NULL;
    if (!on) return AMP_OK;
    s->profile_ms = amp_calloc(&s->ctx, (size_t)s->model->g->n_nodes + 1, sizeof(double));
    return s->profile_ms ? AMP_OK : amp_seterr(&s->ctx, AMP_ERR_NO_MEMORY, "out of memory");
}

const char *amp_session_last_error(const amp_session *s) { return s ? s->ctx.err : ""; }

const char *amp_session_backend(const amp_session *s) { return s ? s->be->i.name : NULL; }

const char *amp_session_backend_note(const amp_session *s) { return s ? s->backend_note : ""; }

/* Inputs that may decide shapes (Reshape's shape, Range's limits, OneHot's depth, Resize's
 * scales) are known while planning: integer and float inputs up to AMP_SMALL_INT_INPUT
 * elements and scalars of any dtype. Their values join the plan key, so a new value gets a new
 * plan. */
static bool small_input(amp_dtype t, int64_t numel) {
    return ((amp_dtype_is_int(t) || amp_dtype_is_float(t)) && numel <= AMP_SMALL_INT_INPUT) || numel == 1;
}

/* Inputs whose values decide shapes: those reaching, through integer-valued nodes, an input
 * that shape inference reads by value (the op table's OP_VALUE_INPUTS: Reshape's shape, Slice's
 * starts, Range's limits, ...). Only these are planned by value; token ids feeding a Gather are
 * not. Ops outside the table may read anything. */
static bool value_slot(const amp_node *n, int k) {
    return n->op == AMP_OP_UNKNOWN || amp_op_value_input(n->op, k);
}

static amp_status mark_shape_inputs(amp_session *s) {
    const amp_graph *g = s->model->g;
    amp_context *ctx = &s->ctx;
    bool *need = amp_calloc(ctx, (size_t)g->n_values + 1, sizeof(bool));
    if (!need) return amp_seterr(ctx, AMP_ERR_NO_MEMORY, "out of memory");
    for (int ni = g->n_nodes - 1; ni >= 0; ni--) {
        const amp_node *n = &g->nodes[ni];
        bool out_needed = false;
        for (int k = 0; k < n->n_outputs; k++)
            if (n->outputs[k] >= 0 && need[n->outputs[k]]) out_needed = true;
        /* Shape, Size and EyeLike read dims only, never values */
        if (amp_op_dims_only(n->op)) continue;
        for (int k = 0; k < n->n_inputs; k++)
            if (n->inputs[k] >= 0 && (out_needed || value_slot(n, k))) need[n->inputs[k]] = true;
    }
    int nin = amp_model_input_count(s->model);
    for (int i = 0; i < nin; i++) s->shape_input[i] = need[amp_model_input_value(s->model, i)];
    amp_dealloc(ctx, need);
    return AMP_OK;
}

/* Append v to the key buffer. */
static amp_status key_push(amp_context *ctx, int64_t **key, int *len, int *cap, int64_t v) {
    if (amp_grow(ctx, (void **)key, cap, *len + 1, sizeof(int64_t))) return AMP_ERR_NO_MEMORY;
    (*key)[(*len)++] = v;
    return AMP_OK;
}

/* blocks in the persistent region start on the arena's alignment (cuBLASLt and vector loads
 * want 16 bytes; 256 is what cudaMalloc gives) */
#define PERSIST_ALIGN 256
static size_t persist_align(size_t n) { return (n + PERSIST_ALIGN - 1) / PERSIST_ALIGN * PERSIST_ALIGN; }

amp_status amp_session_set_resident(amp_session *s, int n, const char *const *names, amp_tensor *const *tensors) {
    if (!s || n < 0 || (n && (!names || !tensors))) return AMP_ERR_INVALID_ARG;
    if (s->be->i.host_memory) return AMP_OK;
    if (s->persist || s->n_plans)
        return amp_seterr(&s->ctx, AMP_ERR_INVALID_ARG, "resident inputs must be declared before the first plan");
    const amp_graph *g = s->model->g;
    for (int i = 0; i < n; i++) {
        int v = -1;
        for (int k = 0; k < g->n_inputs; k++)
            if (names[i] && strcmp(g->values[g->inputs[k]].name, names[i]) == 0) v = g->inputs[k];
        if (v < 0 || !tensors[i])
            return amp_seterr(&s->ctx, AMP_ERR_NOT_FOUND, "resident input '%s' is not an input of the graph",
                              names[i] ? names[i] : "(null)");
        if (!s->res_host[v]) s->n_resident++;
        s->res_host[v] = tensors[i];
    }
    return AMP_OK;
}

amp_status amp_session_upload_persistent(amp_session *s) { return s ? ensure_persistent(s) : AMP_ERR_INVALID_ARG; }

/* The persistent block of a backend with memory of its own: every initializer and resident
 * input, in one allocation, uploaded once (when the session is created, or for a session whose
 * resident inputs come later, when they have been declared; at the first plan at the latest). */
static amp_status ensure_persistent(amp_session *s) {
    if (s->be->i.host_memory || s->persist) return AMP_OK;
    const amp_graph *g = s->model->g;
    size_t total = 0;
    for (int v = 0; v < g->n_values; v++) {
        const amp_tensor *t = g->values[v].init ? g->values[v].init : s->res_host[v];
        if (t) total += persist_align(t->nbytes ? t->nbytes : 1);
    }
    if (!total) return AMP_OK;
    void *mem = NULL;
    amp_status st = s->be->i.mem_alloc(s->be, AMP_MEM_PERSISTENT, total, &mem);
    if (st) return amp_seterr(&s->ctx, st, "cannot allocate %zu bytes of weights and state: %s", total, s->ctx.err);
    size_t off = 0;
    for (int v = 0; v < g->n_values; v++) {
        const amp_tensor *t = g->values[v].init ? g->values[v].init : s->res_host[v];
        if (!t) continue;
        s->dev[v] = (unsigned char *)mem + off;
        off += persist_align(t->nbytes ? t->nbytes : 1);
        st = s->be->i.upload(s->be, s->dev[v], t->data, t->nbytes);
        if (st) {
            s->be->i.mem_free(s->be, AMP_MEM_PERSISTENT, mem);
            memset(s->dev, 0, sizeof(void *) * (size_t)g->n_values);
            return amp_seterr(&s->ctx, st, "cannot upload '%s': %s", g->values[v].name, s->ctx.err);
        }
    }
    s->persist = mem;
    s->persist_bytes = total;
    s->res_state = AMP_RESIDENT_SYNCED;
    return AMP_OK;
}

/* Copy every resident input one way: up (host to backend) or down. */
static amp_status move_resident(amp_session *s, bool up) {
    const amp_graph *g = s->model->g;
    amp_backend *be = s->be;
    for (int v = 0; v < g->n_values; v++) {
        amp_tensor *t = s->res_host[v];
        if (!t || !s->dev[v]) continue;
        /* downloads land together, at the one synchronize below */
        amp_status st = up ? be->i.upload(be, s->dev[v], t->data, t->nbytes)
                           : amp_backend_download_async(be, t->data, s->dev[v], t->nbytes);
        if (st) {
            if (!up) amp_backend_synchronize(be);
            return amp_seterr(&s->ctx, st, "cannot %s '%s': %s", up ? "upload" : "download", g->values[v].name,
                              s->ctx.err);
        }
    }
    amp_status st = up ? AMP_OK : amp_backend_synchronize(be);
    if (st) return amp_seterr(&s->ctx, st, "cannot download the resident inputs: %s", s->ctx.err);
    return AMP_OK;
}

amp_status amp_session_resident_sync(amp_session *s, bool host_will_write) {
    if (!s) return AMP_ERR_INVALID_ARG;
    if (s->be->i.host_memory || !s->persist || !s->n_resident) return AMP_OK;
    if (s->res_state == AMP_RESIDENT_DEVICE_NEWER) {
        amp_status st = amp_backend_synchronize(s->be);
        if (!st) st = move_resident(s, false);
        if (st) return st;
        s->res_state = AMP_RESIDENT_SYNCED;
    }
    if (host_will_write) s->res_state = AMP_RESIDENT_HOST_NEWER;
    return AMP_OK;
}

static amp_status ensure_arena(amp_session *s, size_t bytes) {
    if (bytes <= s->arena_bytes && s->arena) return AMP_OK;
    void *mem = NULL;
    amp_status st = s->be->i.mem_alloc(s->be, AMP_MEM_ARENA, bytes, &mem);
    if (st) return amp_seterr(&s->ctx, st, "cannot allocate an arena of %zu bytes: %s", bytes, s->ctx.err);
    if (s->arena) s->be->i.mem_free(s->be, AMP_MEM_ARENA, s->arena);
    s->arena = mem;
    s->arena_bytes = bytes;
    return AMP_OK;
}

/* Build the key and the per-input type info for a binding; validates it against the model. */
static amp_status bind_inputs(amp_session *s, int n, const char *const *names, const amp_tensor *const *inputs,
                              const int64_t *sym_values, int *ids, amp_tinfo *ti, int64_t **key, int *key_len) {
    amp_context *ctx = &s->ctx;
    const amp_graph *g = s->model->g;
    int nin = amp_model_input_count(s->model);
    int cap = 0;
    int64_t symv[256];
    /* the graph hash leads the key, so plans never cross models even if caches are shared */
    if (key_push(ctx, key, key_len, &cap, (int64_t)s->model->hash)) goto oom;
    for (int i = 0; i < 256; i++) symv[i] = -1;
    for (int i = 0; i < nin; i++) {
        int vid = amp_model_input_value(s->model, i);
        const amp_value *v = &g->values[vid];
        const amp_tensor *t = NULL;
        ids[i] = vid;
        memset(&ti[i], 0, sizeof ti[i]);
        if (inputs) {
            for (int j = 0; j < n; j++)
                if (names[j] && strcmp(names[j], v->name) == 0) t = inputs[j];
            if (!t) return amp_seterr(ctx, AMP_ERR_INVALID_ARG, "input '%s' was not given", v->name);
            if (v->dtype != AMP_UNDEFINED && t->dtype != v->dtype)
                return amp_seterr(ctx, AMP_ERR_SHAPE, "input '%s' must be %s, got %s", v->name, amp_dtype_name(v->dtype),
                                  amp_dtype_name(t->dtype));
            if (v->dtype == AMP_UNDEFINED && v->elem_onnx_type)
                return amp_seterr(ctx, AMP_ERR_UNSUPPORTED, "input '%s' has an element type amprt does not hold",
                                  v->name);
            if (v->rank >= 0 && t->rank != v->rank)
                return amp_seterr(ctx, AMP_ERR_SHAPE, "input '%s' must have rank %d, got %d", v->name, v->rank, t->rank);
            ti[i].dtype = t->dtype;
            ti[i].rank = t->rank;
            memcpy(ti[i].dims, t->dims, sizeof ti[i].dims);
        } else {
            if (v->dtype == AMP_UNDEFINED)
                return amp_seterr(ctx, AMP_ERR_UNSUPPORTED, "input '%s' has no element type amprt holds", v->name);
            if (v->rank < 0) return amp_seterr(ctx, AMP_ERR_INVALID_ARG, "input '%s' has no declared shape", v->name);
            ti[i].dtype = v->dtype;
            ti[i].rank = v->rank;
            for (int d = 0; d < v->rank; d++) {
                int64_t dv = v->dims[d].value;
                if (dv < 0 && v->dims[d].sym >= 0 && v->dims[d].sym < 256) dv = sym_values[v->dims[d].sym];
                if (dv < 0)
                    return amp_seterr(ctx, AMP_ERR_INVALID_ARG, "input '%s': dim %d (%s) needs a value", v->name, d,
                                      v->dims[d].sym >= 0 ? g->syms[v->dims[d].sym] : "unnamed");
                ti[i].dims[d] = dv;
            }
        }
        for (int d = 0; d < ti[i].rank && v->rank >= 0; d++) {
            if (v->dims[d].value >= 0 && ti[i].dims[d] != v->dims[d].value)
                return amp_seterr(ctx, AMP_ERR_SHAPE, "input '%s': dim %d must be %lld, got %lld", v->name, d,
                                  (long long)v->dims[d].value, (long long)ti[i].dims[d]);
            int sym = v->dims[d].sym;
            if (sym >= 0 && sym < 256) {
                if (symv[sym] >= 0 && symv[sym] != ti[i].dims[d])
                    return amp_seterr(ctx, AMP_ERR_SHAPE, "input '%s': dim %d (%s) is %lld, but %lld elsewhere", v->name,
                                      d, g->syms[sym], (long long)ti[i].dims[d], (long long)symv[sym]);
                symv[sym] = ti[i].dims[d];
            }
        }
        if (key_push(ctx, key, key_len, &cap, ti[i].dtype) || key_push(ctx, key, key_len, &cap, ti[i].rank))
            goto oom;
        for (int d = 0; d < ti[i].rank; d++)
            if (key_push(ctx, key, key_len, &cap, ti[i].dims[d])) goto oom;
        if (t && !v->dynamic && s->shape_input[i] && small_input(t->dtype, t->numel)) {
            ti[i].value = t;
            /* the key holds every element's bytes (8 per key word) */
            for (size_t off = 0; off < t->nbytes; off += sizeof(int64_t)) {
                int64_t kv = 0;
                size_t len = t->nbytes - off < sizeof kv ? t->nbytes - off : sizeof kv;
                memcpy(&kv, (const unsigned char *)t->data + off, len);
                if (key_push(ctx, key, key_len, &cap, kv)) goto oom;
            }
        }
    }
    return AMP_OK;
oom:
    amp_dealloc(ctx, *key);
    *key = NULL;
    return amp_seterr(ctx, AMP_ERR_NO_MEMORY, "out of memory");
}

static amp_plan *find_plan(amp_session *s, const int64_t *key, int len) {
    for (int i = 0; i < s->n_plans; i++) {
        amp_plan *p = s->plans[i];
        if (p->key_len == len && memcmp(p->key, key, sizeof(int64_t) * (size_t)len) == 0) return p;
    }
    return NULL;
}

static amp_status get_plan(amp_session *s, int n, const char *const *names, const amp_tensor *const *inputs,
                           const int64_t *symv, amp_plan **out) {
    amp_context *ctx = &s->ctx;
    int nin = amp_model_input_count(s->model);
    int *ids = amp_calloc(ctx, (size_t)nin + 1, sizeof(int));
    amp_tinfo *ti = amp_calloc(ctx, (size_t)nin + 1, sizeof(amp_tinfo));
    int64_t *key = NULL;
    int key_len = 0;
    amp_status st = AMP_OK;
    if (!ids || !ti) {
        st = amp_seterr(ctx, AMP_ERR_NO_MEMORY, "out of memory");
        goto done;
    }
    st = bind_inputs(s, n, names, inputs, symv, ids, ti, &key, &key_len);
    if (st) goto done;
    amp_plan *p = find_plan(s, key, key_len);
    if (!p) {
        if (amp_grow(ctx, (void **)&s->plans, &s->cap_plans, s->n_plans + 1, sizeof(amp_plan *))) {
            st = amp_seterr(ctx, AMP_ERR_NO_MEMORY, "out of memory");
            goto done;
        }
        st = ensure_persistent(s);
        if (st) goto done;
        st = amp_plan_build(s, nin, ids, ti, &p);
        if (st && st != AMP_ERR_NO_MEMORY && s->fused) {
            /* a fused node the shapes do not fit: the caller's graph, unfused, when it plans (not
             * when memory ran out, which the caller must hear of) */
            char why[sizeof ctx->err];
            memcpy(why, ctx->err, sizeof why);
            amp_model *fm = s->model;
            s->model = s->user_model;
            st = amp_plan_build(s, nin, ids, ti, &p);
            if (st) {
                s->model = fm;
                goto done;
            }
            amp_log(ctx, AMP_LOG_INFO, "the fused graph does not plan (%s): planning unfused", why);
            for (int i = 0; i < s->n_plans; i++) amp_plan_destroy(s->be, ctx, s->plans[i]);
            s->n_plans = 0;
            s->last = NULL;
            drop_fused(s);
        }
        if (st) goto done;
        st = ensure_arena(s, p->stats.arena_bytes);
        if (st) {
            amp_plan_destroy(s->be, ctx, p);
            goto done;
        }
        p->key = key;
        p->key_len = key_len;
        key = NULL;
        s->plans[s->n_plans++] = p;
    }
    *out = p;
done:
    amp_dealloc(ctx, key);
    amp_dealloc(ctx, ids);
    amp_dealloc(ctx, ti);
    return st;
}

amp_status amp_session_plan(amp_session *s, int n_bindings, const amp_dim_binding *bindings, amp_plan_stats *stats) {
    if (!s || (n_bindings && !bindings)) return AMP_ERR_INVALID_ARG;
    if (stats && amp_copy_output(&s->ctx, stats, NULL, 0, "amp_session_plan")) return AMP_ERR_INVALID_ARG;
    const amp_graph *g = s->model->g;
    int64_t symv[256];
    for (int i = 0; i < 256; i++) symv[i] = -1;
    for (int i = 0; i < n_bindings; i++) {
        int found = 0;
        for (int k = 0; k < g->n_syms && k < 256; k++)
            if (strcmp(g->syms[k], bindings[i].name) == 0) {
                symv[k] = bindings[i].value;
                found = 1;
            }
        if (!found) return amp_seterr(&s->ctx, AMP_ERR_NOT_FOUND, "the model has no dim named '%s'", bindings[i].name);
        if (bindings[i].value < 0) return amp_seterr(&s->ctx, AMP_ERR_INVALID_ARG, "dim '%s' must be >= 0", bindings[i].name);
    }
    amp_plan *p;
    amp_status st = get_plan(s, 0, NULL, NULL, symv, &p);
    if (st) return st;
    s->last = p;
    return stats ? amp_copy_output(&s->ctx, stats, &p->stats, sizeof p->stats, "amp_session_plan") : AMP_OK;
}

amp_status amp_session_last_plan(const amp_session *s, amp_plan_stats *stats) {
    if (!s || !stats) return AMP_ERR_INVALID_ARG;
    if (!s->last) return AMP_ERR_NOT_FOUND;
    /* the error buffer is the one part of a const session a call may write */
    return amp_copy_output((amp_context *)&s->ctx, stats, &s->last->stats, sizeof s->last->stats,
                           "amp_session_last_plan");
}

/* Where a step finds value vid: backend memory (host memory for host-memory backends). */
static void *slot_data(amp_session *s, const amp_plan *p, int vid) {
    const amp_slot *sl = &p->slots[vid];
    bool device = !s->be->i.host_memory;
    switch (sl->kind) {
    case AMP_SLOT_CONST: return device ? sl->dev : sl->ti.value->data;
    case AMP_SLOT_ARENA: return s->arena + p->offsets[sl->buf];
    case AMP_SLOT_INPUT:
        if (device) return sl->staged ? s->arena + p->offsets[sl->buf] : sl->dev;
        return s->by_value[vid] ? s->by_value[vid]->data : NULL;
    default: return NULL;
    }
}

/* Where the caller reads value vid after a run: a host copy when there is one (constants, the
 * caller's own inputs), else NULL (the value is downloaded from slot_data). */
static const void *slot_host_data(amp_session *s, const amp_plan *p, int vid) {
    const amp_slot *sl = &p->slots[vid];
    if (s->be->i.host_memory) return slot_data(s, p, vid);
    if (sl->kind == AMP_SLOT_CONST) return sl->ti.value->data;
    if (sl->kind == AMP_SLOT_INPUT && sl->staged) return s->by_value[vid] ? s->by_value[vid]->data : NULL;
    return NULL;
}

amp_status amp_session_run(amp_session *s, int n_inputs, const char *const *input_names,
                           const amp_tensor *const *inputs, int n_outputs, const char *const *output_names,
                           amp_tensor **outputs) {
    if (!s) return AMP_ERR_INVALID_ARG;
    amp_context *ctx = &s->ctx;
    if (n_inputs < 0 || n_outputs < 0 || (n_inputs && (!input_names || !inputs)) ||
        (n_outputs && (!output_names || !outputs)))
        return amp_seterr(ctx, AMP_ERR_INVALID_ARG, "bad arguments to amp_session_run");
    for (int i = 0; i < n_inputs; i++)
        if (!inputs[i] || !input_names[i]) return amp_seterr(ctx, AMP_ERR_INVALID_ARG, "input %d is NULL", i);
    const amp_graph *g = s->model->g;
    /* each requested output is one of the graph's, so more requests than outputs repeat one */
    if (n_outputs > g->n_outputs)
        return amp_seterr(ctx, AMP_ERR_INVALID_ARG, "%d outputs asked for, the model has %d", n_outputs, g->n_outputs);
    int *out_ids = s->out_ids;
    for (int i = 0; i < n_outputs; i++) {
        out_ids[i] = -1;
        for (int k = 0; k < g->n_outputs; k++)
            if (output_names[i] && strcmp(g->values[g->outputs[k]].name, output_names[i]) == 0) out_ids[i] = g->outputs[k];
        if (out_ids[i] < 0)
            return amp_seterr(ctx, AMP_ERR_NOT_FOUND, "the model has no output named '%s'",
                              output_names[i] ? output_names[i] : "(null)");
    }
    amp_plan *p;
    amp_status st = get_plan(s, n_inputs, input_names, inputs, NULL, &p);
    if (st) return st;
    s->last = p;
    /* planning may have dropped the fused graph for the caller's (same value ids) */
    g = s->model->g;

    /* map graph inputs to the caller's tensors (arrays made with the session) */
    int nin = amp_model_input_count(s->model);
    int *in_ids = s->in_ids;
    const amp_tensor **in_t = s->in_t;
    for (int i = 0; i < nin; i++) {
        in_t[i] = NULL;
        /* callers usually pass inputs in the graph's order: try the same position first */
        if (i < n_inputs && strcmp(input_names[i], g->values[in_ids[i]].name) == 0) in_t[i] = inputs[i];
        for (int j = 0; j < n_inputs && !in_t[i]; j++)
            if (strcmp(input_names[j], g->values[in_ids[i]].name) == 0) in_t[i] = inputs[j];
        s->by_value[in_ids[i]] = in_t[i];
    }
    /* check caller-provided outputs before running anything */
    for (int i = 0; i < n_outputs; i++) {
        if (!outputs[i]) continue;
        const amp_slot *sl = &p->slots[out_ids[i]];
        bool ok = outputs[i]->dtype == sl->ti.dtype && outputs[i]->rank == sl->ti.rank;
        for (int d = 0; ok && d < sl->ti.rank; d++) ok = outputs[i]->dims[d] == sl->ti.dims[d];
        if (!ok) return amp_seterr(ctx, AMP_ERR_SHAPE, "output tensor %d does not match output '%s'", i, output_names[i]);
    }

    amp_backend *be = s->be;
    bool device = !be->i.host_memory;
    if (device) {
        if (s->observe)
            return amp_seterr(ctx, AMP_ERR_UNSUPPORTED, "backend '%s': observing values needs host memory", be->i.name);
        /* resident inputs: the same tensors as declared; the host copies go up when the caller
         * may have written them */
        for (int i = 0; i < nin; i++)
            if (in_t[i] && s->res_host[in_ids[i]] && in_t[i] != s->res_host[in_ids[i]])
                return amp_seterr(ctx, AMP_ERR_INVALID_ARG, "input '%s' is resident: bind the tensor it was declared with",
                                  g->values[in_ids[i]].name);
        if (s->res_state == AMP_RESIDENT_HOST_NEWER) {
            st = move_resident(s, true);
            if (st) return st;
            s->res_state = AMP_RESIDENT_SYNCED;
        }
        /* staged inputs: the caller's tensors into their arena buffers */
        for (int i = 0; i < nin; i++) {
            const amp_slot *sl = &p->slots[in_ids[i]];
            if (!sl->staged || !in_t[i]) continue;
            st = be->i.upload(be, slot_data(s, p, in_ids[i]), in_t[i]->data, in_t[i]->nbytes);
            if (st) return amp_seterr(ctx, st, "cannot upload input '%s': %s", g->values[in_ids[i]].name, ctx->err);
        }
    }
    amp_backend_layout layout = {.arena = s->arena, .arena_bytes = p->stats.arena_bytes, .nbufs = p->nbufs,
                                 .bufs = p->bufs, .offsets = p->offsets, .bytes = p->buf_bytes};
    /* a backend may record the steps once and replay them (CUDA graphs); never while profiling
     * or observing, which need each step on its own */
    amp_backend_plan_run run = {.plan_id = p->id, .arena = s->arena, .nsteps = p->nsteps};
    bool bracket = !s->profile_ms && !s->observe, replay = false;
    if (bracket && (st = amp_backend_run_begin(be, &run, &replay))) return st;
    for (int si = 0; si < p->nsteps && !replay; si++) {
        amp_step *stp = &p->steps[si];
        const amp_node *n = &g->nodes[stp->node];
        for (int k = 0; k < stp->nin; k++)
            if (n->inputs[k] >= 0) stp->views[k].data = slot_data(s, p, n->inputs[k]);
        for (int k = 0; k < stp->nout; k++)
            if (n->outputs[k] >= 0) stp->views[stp->nin + k].data = slot_data(s, p, n->outputs[k]);
        amp_backend_step bs = {
            .k = {.ctx = ctx, .n = n, .opset = stp->opset, .nin = stp->nin, .nout = stp->nout,
                  .in = stp->pin, .out = stp->pout, .ws = stp->ws_buf >= 0 ? s->arena + p->offsets[stp->ws_buf] : NULL,
                  .ws_bytes = stp->ws_bytes, .threads = be->threads},
            .state = stp->state,
            .index = si,
            .layout = &layout};
        if (s->profile_ms) {
            struct timespec t0, t1;
            clock_gettime(CLOCK_MONOTONIC, &t0);
            st = amp_backend_run(be, &bs);
            if (!st) st = amp_backend_synchronize(be);
            clock_gettime(CLOCK_MONOTONIC, &t1);
            s->profile_ms[stp->node] += (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
        } else {
            st = amp_backend_run(be, &bs);
        }
        /* a kernel that read an attribute inference never looked at, with the wrong kind */
        if (n->attr_misread) st = amp_node_attr_check(ctx, n);
        if (st) {
            /* a recording in progress is dropped, and the message stays the step's */
            if (bracket) {
                run.aborted = true;
                char keep[sizeof ctx->err];
                memcpy(keep, ctx->err, sizeof keep);
                amp_backend_run_end(be, &run);
                memcpy(ctx->err, keep, sizeof keep);
            }
            return st;
        }
        if (s->observe)
            for (int o = 0; o < stp->nout; o++)
                if (n->outputs[o] >= 0) s->observe(s->observe_user, n->outputs[o], stp->pout[o]);
    }
    if (bracket && (st = amp_backend_run_end(be, &run))) return st;
    /* the outputs are enqueued behind the steps and land together at one synchronize, which
     * also reports what failed on the device */
    if (device && s->n_resident) s->res_state = AMP_RESIDENT_DEVICE_NEWER;
    /* results */
    amp_tensor **made = s->out_made;
    for (int i = 0; i < n_outputs; i++) made[i] = NULL;
    for (int i = 0; i < n_outputs; i++) {
        const amp_slot *sl = &p->slots[out_ids[i]];
        amp_tensor *dst = outputs[i];
        if (!dst) {
            st = amp_tensor_create(s->model->ctx, sl->ti.dtype, sl->ti.rank, sl->ti.dims, &made[i]);
            if (st) {
                amp_backend_synchronize(be); /* nothing may land in freed tensors */
                for (int j = 0; j < i; j++) amp_tensor_destroy(made[j]);
                return amp_seterr(ctx, st, "cannot allocate output '%s'", output_names[i]);
            }
            dst = made[i];
        }
        const void *src = slot_host_data(s, p, out_ids[i]);
        if (dst->nbytes && src) {
            memcpy(dst->data, src, dst->nbytes);
        } else if (dst->nbytes) {
            const void *from = slot_data(s, p, out_ids[i]);
            st = amp_backend_download_async(be, dst->data, from, dst->nbytes);
            if (st) {
                amp_backend_synchronize(be);
                for (int j = 0; j <= i; j++) amp_tensor_destroy(made[j]);
                return amp_seterr(ctx, st, "cannot download output '%s': %s", output_names[i], ctx->err);
            }
        }
    }
    if ((st = amp_backend_synchronize(be))) {
        for (int j = 0; j < n_outputs; j++) amp_tensor_destroy(made[j]);
        return amp_seterr(ctx, st, "the run failed on the %s backend: %s", be->i.name, ctx->err);
    }
    for (int i = 0; i < n_outputs; i++)
        if (made[i]) outputs[i] = made[i];
    return AMP_OK;
}

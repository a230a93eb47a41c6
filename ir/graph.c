/* Graph construction, linking (producers, topological order) and hashing. */
#include <stdio.h>
#include <string.h>

#include "ir/ir.h"

amp_status amp_graph_create(amp_context *ctx, amp_graph **out) {
    amp_graph *g = amp_calloc(ctx, 1, sizeof *g);
    if (!g) return amp_seterr(ctx, AMP_ERR_NO_MEMORY, "out of memory creating a graph");
    g->ctx = ctx;
    g->ir_version = 8;
    g->opset = 17;
    *out = g;
    return AMP_OK;
}

void amp_attr_free(amp_context *ctx, amp_attr *a) {
    amp_dealloc(ctx, a->name);
    amp_dealloc(ctx, a->s);
    amp_dealloc(ctx, a->floats);
    amp_dealloc(ctx, a->ints);
    amp_dealloc(ctx, a->ref_attr_name);
    amp_dealloc(ctx, a->doc);
    if (a->strings) {
        for (int i = 0; i < a->n; i++) amp_dealloc(ctx, a->strings[i]);
        amp_dealloc(ctx, a->strings);
    }
    amp_tensor_destroy(a->t);
    if (a->tensors) {
        for (int i = 0; i < a->n; i++) amp_tensor_destroy(a->tensors[i]);
        amp_dealloc(ctx, a->tensors);
    }
}

amp_attr *amp_node_attr_set(amp_context *ctx, amp_node *n, const char *name) {
    for (int i = 0; i < n->n_attrs; i++)
        if (strcmp(n->attrs[i].name, name) == 0) {
            amp_attr *a = &n->attrs[i];
            char *keep = a->name;
            a->name = NULL;
            amp_attr_free(ctx, a); /* the old payload */
            memset(a, 0, sizeof *a);
            a->name = keep;
            return a;
        }
    amp_attr *at = amp_realloc(ctx, n->attrs, sizeof(amp_attr) * (size_t)(n->n_attrs + 1));
    if (!at) return NULL;
    n->attrs = at;
    amp_attr *a = &at[n->n_attrs];
    memset(a, 0, sizeof *a);
    if (!(a->name = amp_strdup(ctx, name))) return NULL;
    n->n_attrs++;
    return a;
}

void amp_node_free(amp_context *ctx, amp_node *n) {
    amp_dealloc(ctx, n->name);
    amp_dealloc(ctx, n->op_type);
    amp_dealloc(ctx, n->domain);
    amp_dealloc(ctx, n->inputs);
    amp_dealloc(ctx, n->outputs);
    amp_dealloc(ctx, n->doc);
    for (int i = 0; i < n->n_attrs; i++) amp_attr_free(ctx, &n->attrs[i]);
    amp_dealloc(ctx, n->attrs);
}

void amp_graph_destroy(amp_graph *g) {
    if (!g) return;
    amp_context *ctx = g->ctx;
    for (int i = 0; i < g->n_values; i++) {
        amp_dealloc(ctx, g->values[i].name);
        amp_dealloc(ctx, g->values[i].doc);
        amp_tensor_destroy(g->values[i].init);
    }
    for (int i = 0; i < g->n_nodes; i++) amp_node_free(ctx, &g->nodes[i]);
    for (int i = 0; i < g->n_opsets; i++) amp_dealloc(ctx, g->opsets[i].domain);
    for (int i = 0; i < g->n_syms; i++) amp_dealloc(ctx, g->syms[i]);
    for (int i = 0; i < g->n_meta; i++) {
        amp_dealloc(ctx, g->meta_keys[i]);
        amp_dealloc(ctx, g->meta_values[i]);
    }
    amp_dealloc(ctx, g->meta_keys);
    amp_dealloc(ctx, g->meta_values);
    amp_dealloc(ctx, g->syms);
    amp_dealloc(ctx, g->opsets);
    amp_dealloc(ctx, g->values);
    amp_dealloc(ctx, g->nodes);
    amp_dealloc(ctx, g->inputs);
    amp_dealloc(ctx, g->outputs);
    amp_dealloc(ctx, g->inits);
    amp_dealloc(ctx, g->name);
    amp_dealloc(ctx, g->doc);
    amp_dealloc(ctx, g->producer_name);
    amp_dealloc(ctx, g->producer_version);
    amp_dealloc(ctx, g->model_domain);
    amp_dealloc(ctx, g);
}

/* Values are found by name through a linear scan for small graphs; importers that add many
 * values keep their own index (see onnx_import.c). */
int amp_graph_find_value(const amp_graph *g, const char *name) {
    for (int i = 0; i < g->n_values; i++)
        if (strcmp(g->values[i].name, name) == 0) return i;
    return -1;
}

int amp_graph_new_value(amp_graph *g, const char *name) {
    if (amp_grow(g->ctx, (void **)&g->values, &g->cap_values, g->n_values + 1, sizeof(amp_value))) return -1;
    amp_value *v = &g->values[g->n_values];
    memset(v, 0, sizeof *v);
    v->name = amp_strdup(g->ctx, name);
    if (!v->name) return -1;
    v->rank = -1;
    v->producer = -1;
    return g->n_values++;
}

int amp_graph_value(amp_graph *g, const char *name) {
    int id = amp_graph_find_value(g, name);
    return id >= 0 ? id : amp_graph_new_value(g, name);
}

int amp_graph_sym(amp_graph *g, const char *name) {
    for (int i = 0; i < g->n_syms; i++)
        if (strcmp(g->syms[i], name) == 0) return i;
    int cap = g->n_syms;
    if (amp_grow(g->ctx, (void **)&g->syms, &cap, g->n_syms + 1, sizeof(char *))) return -1;
    g->syms[g->n_syms] = amp_strdup(g->ctx, name);
    if (!g->syms[g->n_syms]) return -1;
    return g->n_syms++;
}

amp_status amp_graph_add_node(amp_graph *g, amp_node *node) {
    if (g->n_nodes >= g->ctx->max_nodes)
        return amp_seterr(g->ctx, AMP_ERR_LIMIT, "graph has more than %lld nodes", (long long)g->ctx->max_nodes);
    if (amp_grow(g->ctx, (void **)&g->nodes, &g->cap_nodes, g->n_nodes + 1, sizeof(amp_node)))
        return amp_seterr(g->ctx, AMP_ERR_NO_MEMORY, "out of memory adding a node");
    g->nodes[g->n_nodes++] = *node;
    return AMP_OK;
}

static const char *node_label(const amp_node *n) { return n->name && n->name[0] ? n->name : n->op_type; }

amp_status amp_graph_link(amp_graph *g) {
    amp_context *ctx = g->ctx;
    amp_status s = AMP_OK;
    int *indeg = NULL, *order = NULL, *queue = NULL;
    amp_node *sorted = NULL;
    for (int i = 0; i < g->n_values; i++) g->values[i].producer = -1;
    for (int ni = 0; ni < g->n_nodes; ni++) {
        amp_node *n = &g->nodes[ni];
        for (int k = 0; k < n->n_outputs; k++) {
            int v = n->outputs[k];
            if (v < 0) continue;
            amp_value *val = &g->values[v];
            if (val->producer >= 0 || val->init || val->is_input)
                return amp_seterr(ctx, AMP_ERR_INVALID_GRAPH, "value '%s' has more than one producer (node '%s')",
                                  val->name, node_label(n));
            val->producer = ni;
            val->producer_slot = k;
        }
    }
    for (int ni = 0; ni < g->n_nodes; ni++) {
        amp_node *n = &g->nodes[ni];
        for (int k = 0; k < n->n_inputs; k++) {
            int v = n->inputs[k];
            if (v < 0) continue;
            amp_value *val = &g->values[v];
            if (val->producer < 0 && !val->init && !val->is_input)
                return amp_seterr(ctx, AMP_ERR_INVALID_GRAPH, "node '%s' (%s) reads '%s', which nothing defines",
                                  node_label(n), n->op_type, val->name);
        }
    }
    for (int i = 0; i < g->n_outputs; i++) {
        amp_value *val = &g->values[g->outputs[i]];
        if (val->producer < 0 && !val->init && !val->is_input)
            return amp_seterr(ctx, AMP_ERR_INVALID_GRAPH, "graph output '%s' is not defined", val->name);
    }
    /* Kahn's algorithm, stable: keeps the file order when it is already topological. */
    int nn = g->n_nodes;
    if (nn == 0) return AMP_OK;
    indeg = amp_calloc(ctx, (size_t)nn, sizeof(int));
    order = amp_calloc(ctx, (size_t)nn, sizeof(int));
    queue = amp_calloc(ctx, (size_t)nn, sizeof(int));
    if (!indeg || !order || !queue) {
        s = amp_seterr(ctx, AMP_ERR_NO_MEMORY, "out of memory sorting the graph");
        goto done;
    }
    bool sorted_already = true;
    for (int ni = 0; ni < nn; ni++) {
        amp_node *n = &g->nodes[ni];
        for (int k = 0; k < n->n_inputs; k++) {
            int v = n->inputs[k];
            if (v < 0) continue;
            int p = g->values[v].producer;
            if (p >= 0) {
                indeg[ni]++;
                if (p >= ni) sorted_already = false;
            }
        }
    }
    if (sorted_already) goto done;
    /* consumers are found by scanning: O(n * edges) is fine only for modest graphs, so build a
     * CSR list of consumers per node */
    {
        int *cnt = amp_calloc(ctx, (size_t)nn + 1, sizeof(int));
        int total = 0;
        if (!cnt) {
            s = amp_seterr(ctx, AMP_ERR_NO_MEMORY, "out of memory sorting the graph");
            goto done;
        }
        for (int ni = 0; ni < nn; ni++)
            for (int k = 0; k < g->nodes[ni].n_inputs; k++) {
                int v = g->nodes[ni].inputs[k];
                if (v >= 0 && g->values[v].producer >= 0) {
                    cnt[g->values[v].producer + 1]++;
                    total++;
                }
            }
        for (int i = 0; i < nn; i++) cnt[i + 1] += cnt[i];
        int *adj = amp_calloc(ctx, (size_t)total + 1, sizeof(int));
        int *fill = amp_calloc(ctx, (size_t)nn, sizeof(int));
        if (!adj || !fill) {
            amp_dealloc(ctx, cnt);
            amp_dealloc(ctx, adj);
            amp_dealloc(ctx, fill);
            s = amp_seterr(ctx, AMP_ERR_NO_MEMORY, "out of memory sorting the graph");
            goto done;
        }
        for (int ni = 0; ni < nn; ni++)
            for (int k = 0; k < g->nodes[ni].n_inputs; k++) {
                int v = g->nodes[ni].inputs[k];
                if (v >= 0 && g->values[v].producer >= 0) {
                    int p = g->values[v].producer;
                    adj[cnt[p] + fill[p]++] = ni;
                }
            }
        int head = 0, tail = 0, no = 0;
        for (int ni = 0; ni < nn; ni++)
            if (indeg[ni] == 0) queue[tail++] = ni;
        while (head < tail) {
            int ni = queue[head++];
            order[no++] = ni;
            for (int e = cnt[ni]; e < cnt[ni + 1]; e++)
                if (--indeg[adj[e]] == 0) queue[tail++] = adj[e];
        }
        amp_dealloc(ctx, cnt);
        amp_dealloc(ctx, adj);
        amp_dealloc(ctx, fill);
        if (no != nn) {
            int bad = -1;
            for (int ni = 0; ni < nn && bad < 0; ni++)
                if (indeg[ni] > 0) bad = ni;
            s = amp_seterr(ctx, AMP_ERR_INVALID_GRAPH, "the graph has a cycle through node '%s' (%s)",
                           node_label(&g->nodes[bad]), g->nodes[bad].op_type);
            goto done;
        }
    }
    sorted = amp_calloc(ctx, (size_t)nn, sizeof(amp_node));
    if (!sorted) {
        s = amp_seterr(ctx, AMP_ERR_NO_MEMORY, "out of memory sorting the graph");
        goto done;
    }
    for (int i = 0; i < nn; i++) sorted[i] = g->nodes[order[i]];
    memcpy(g->nodes, sorted, sizeof(amp_node) * (size_t)nn);
    for (int ni = 0; ni < nn; ni++)
        for (int k = 0; k < g->nodes[ni].n_outputs; k++) {
            int v = g->nodes[ni].outputs[k];
            if (v >= 0) g->values[v].producer = ni;
        }
done:
    amp_dealloc(ctx, sorted);
    amp_dealloc(ctx, indeg);
    amp_dealloc(ctx, order);
    amp_dealloc(ctx, queue);
    return s;
}

/* FNV-1a, 64 bit */
static uint64_t h_bytes(uint64_t h, const void *p, size_t n) {
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) {
        h ^= b[i];
        h *= 0x100000001b3ull;
    }
    return h;
}
static uint64_t h_str(uint64_t h, const char *s) { return s ? h_bytes(h, s, strlen(s) + 1) : h_bytes(h, "", 1); }
static uint64_t h_i64(uint64_t h, int64_t v) { return h_bytes(h, &v, sizeof v); }

uint64_t amp_graph_hash(const amp_graph *g) {
    uint64_t h = 0xcbf29ce484222325ull;
    h = h_i64(h, g->opset);
    h = h_i64(h, g->n_values);
    for (int i = 0; i < g->n_values; i++) {
        const amp_value *v = &g->values[i];
        h = h_i64(h, v->dtype);
        h = h_i64(h, v->rank);
        h = h_i64(h, v->init ? (int64_t)v->init->nbytes : -1);
        h = h_i64(h, v->is_input * 2 + v->is_output);
    }
    for (int ni = 0; ni < g->n_nodes; ni++) {
        const amp_node *n = &g->nodes[ni];
        h = h_str(h, n->op_type);
        h = h_str(h, n->domain);
        h = h_i64(h, n->flags);
        for (int k = 0; k < n->n_inputs; k++) h = h_i64(h, n->inputs[k]);
        h = h_i64(h, -7);
        for (int k = 0; k < n->n_outputs; k++) h = h_i64(h, n->outputs[k]);
        for (int a = 0; a < n->n_attrs; a++) {
            const amp_attr *at = &n->attrs[a];
            h = h_str(h, at->name);
            h = h_i64(h, at->kind);
            h = h_i64(h, at->i);
            h = h_bytes(h, &at->f, sizeof at->f);
            if (at->s) h = h_str(h, at->s);
            if (at->ints) h = h_bytes(h, at->ints, sizeof(int64_t) * (size_t)at->n);
            if (at->floats) h = h_bytes(h, at->floats, sizeof(float) * (size_t)at->n);
        }
    }
    return h;
}

bool amp_domain_is_default(const char *domain) { return !domain || !domain[0] || strcmp(domain, "ai.onnx") == 0; }

int64_t amp_node_opset(const amp_graph *g, const amp_node *n) {
    if (amp_domain_is_default(n->domain)) return g->opset;
    for (int i = 0; i < g->n_opsets; i++)
        if (strcmp(g->opsets[i].domain, n->domain) == 0) return g->opsets[i].version;
    return 1;
}

/* ---- deep copy ------------------------------------------------------------------------------ */

/* A copy of n bytes at p (NULL stays NULL); *ok turns false when the allocation fails. */
static void *clone_mem(amp_context *ctx, const void *p, size_t n, bool *ok) {
    if (!p) return NULL;
    void *d = amp_alloc(ctx, n);
    if (!d) {
        *ok = false;
        return NULL;
    }
    if (n) memcpy(d, p, n);
    return d;
}

/* A copy of the NUL-terminated s (NULL stays NULL); *ok turns false when the allocation fails. */
static char *clone_str(amp_context *ctx, const char *s, bool *ok) {
    return s ? clone_mem(ctx, s, strlen(s) + 1, ok) : NULL;
}

/* Copy one attribute into a zeroed dst; on failure dst holds what was copied (free_attr frees
 * it). Graph, sparse and type-proto attributes are rejected by the importer, so only their kind
 * is ever held. */
static amp_status clone_attr(amp_context *ctx, const amp_attr *a, amp_attr *d) {
    bool ok = true;
    d->kind = a->kind;
    d->f = a->f;
    d->i = a->i;
    d->slen = a->slen;
    d->name = clone_str(ctx, a->name, &ok);
    d->ref_attr_name = clone_str(ctx, a->ref_attr_name, &ok);
    d->doc = clone_str(ctx, a->doc, &ok);
    /* STRING bytes may hold NULs (slen counts them) and builders may leave slen unset (strlen
     * counts then): copy the longer and the terminator */
    if (a->s) {
        size_t len = strlen(a->s);
        d->s = clone_mem(ctx, a->s, (a->slen > len ? a->slen : len) + 1, &ok);
    }
    size_t n = a->n > 0 ? (size_t)a->n : 0;
    d->floats = clone_mem(ctx, a->floats, sizeof(float) * n, &ok);
    d->ints = clone_mem(ctx, a->ints, sizeof(int64_t) * n, &ok);
    if (!ok) return AMP_ERR_NO_MEMORY;
    if (a->strings) {
        if (!(d->strings = amp_calloc(ctx, n + 1, sizeof(char *)))) return AMP_ERR_NO_MEMORY;
        d->n = a->n;
        for (size_t k = 0; k < n && ok; k++) d->strings[k] = clone_str(ctx, a->strings[k], &ok);
        if (!ok) return AMP_ERR_NO_MEMORY;
    }
    if (a->t && amp_tensor_clone(ctx, a->t, &d->t)) return AMP_ERR_NO_MEMORY;
    if (a->tensors) {
        if (!(d->tensors = amp_calloc(ctx, n + 1, sizeof(amp_tensor *)))) return AMP_ERR_NO_MEMORY;
        d->n = a->n;
        for (size_t k = 0; k < n; k++)
            if (a->tensors[k] && amp_tensor_clone(ctx, a->tensors[k], &d->tensors[k])) return AMP_ERR_NO_MEMORY;
    }
    d->n = a->n;
    return AMP_OK;
}

/* Copy one node into a zeroed dst; on failure dst holds what was copied (amp_node_free frees
 * it). */
static amp_status clone_node(amp_context *ctx, const amp_node *n, amp_node *d) {
    bool ok = true;
    d->op = n->op;
    d->flags = n->flags;
    d->attr_misread = n->attr_misread;
    d->attr_wanted = n->attr_wanted;
    d->name = clone_str(ctx, n->name, &ok);
    d->op_type = clone_str(ctx, n->op_type, &ok);
    d->domain = clone_str(ctx, n->domain, &ok);
    d->doc = clone_str(ctx, n->doc, &ok);
    d->inputs = clone_mem(ctx, n->inputs, sizeof(int) * (size_t)n->n_inputs, &ok);
    d->outputs = clone_mem(ctx, n->outputs, sizeof(int) * (size_t)n->n_outputs, &ok);
    if (!ok) return AMP_ERR_NO_MEMORY;
    d->n_inputs = n->n_inputs;
    d->n_outputs = n->n_outputs;
    if (n->n_attrs > 0) {
        if (!(d->attrs = amp_calloc(ctx, (size_t)n->n_attrs, sizeof(amp_attr)))) return AMP_ERR_NO_MEMORY;
        d->n_attrs = n->n_attrs;
        for (int i = 0; i < n->n_attrs; i++)
            if (clone_attr(ctx, &n->attrs[i], &d->attrs[i])) return AMP_ERR_NO_MEMORY;
    }
    return AMP_OK;
}

/* Every array is allocated zeroed and its count set before it is filled, so that on failure
 * amp_graph_destroy frees exactly what was copied. */
amp_status amp_graph_clone(const amp_graph *src, amp_graph **out) {
    if (!src || !out) return AMP_ERR_INVALID_ARG;
    amp_context *ctx = src->ctx;
    amp_graph *g = amp_calloc(ctx, 1, sizeof *g);
    if (!g) return amp_seterr(ctx, AMP_ERR_NO_MEMORY, "out of memory copying a graph");
    bool ok = true;
    g->ctx = ctx;
    g->ir_version = src->ir_version;
    g->model_version = src->model_version;
    g->opset = src->opset;
    g->name = clone_str(ctx, src->name, &ok);
    g->doc = clone_str(ctx, src->doc, &ok);
    g->producer_name = clone_str(ctx, src->producer_name, &ok);
    g->producer_version = clone_str(ctx, src->producer_version, &ok);
    g->model_domain = clone_str(ctx, src->model_domain, &ok);
    g->inputs = clone_mem(ctx, src->inputs, sizeof(int) * (size_t)src->n_inputs, &ok);
    g->outputs = clone_mem(ctx, src->outputs, sizeof(int) * (size_t)src->n_outputs, &ok);
    g->inits = clone_mem(ctx, src->inits, sizeof(int) * (size_t)src->n_inits, &ok);
    if (!ok) goto oom;
    g->n_inputs = src->n_inputs;
    g->n_outputs = src->n_outputs;
    g->n_inits = src->n_inits;

    if (src->n_opsets > 0) {
        if (!(g->opsets = amp_calloc(ctx, (size_t)src->n_opsets, sizeof(amp_opset)))) goto oom;
        g->n_opsets = src->n_opsets;
        for (int i = 0; i < src->n_opsets && ok; i++) {
            g->opsets[i].version = src->opsets[i].version;
            g->opsets[i].domain = clone_str(ctx, src->opsets[i].domain, &ok);
        }
        if (!ok) goto oom;
    }
    if (src->n_syms > 0) {
        if (!(g->syms = amp_calloc(ctx, (size_t)src->n_syms, sizeof(char *)))) goto oom;
        g->n_syms = src->n_syms;
        for (int i = 0; i < src->n_syms && ok; i++) g->syms[i] = clone_str(ctx, src->syms[i], &ok);
        if (!ok) goto oom;
    }
    if (src->n_meta > 0) {
        g->meta_keys = amp_calloc(ctx, (size_t)src->n_meta, sizeof(char *));
        g->meta_values = amp_calloc(ctx, (size_t)src->n_meta, sizeof(char *));
        if (!g->meta_keys || !g->meta_values) goto oom;
        g->n_meta = src->n_meta;
        for (int i = 0; i < src->n_meta && ok; i++) {
            g->meta_keys[i] = clone_str(ctx, src->meta_keys[i], &ok);
            g->meta_values[i] = clone_str(ctx, src->meta_values[i], &ok);
        }
        if (!ok) goto oom;
    }
    if (src->n_values > 0) {
        if (!(g->values = amp_calloc(ctx, (size_t)src->n_values, sizeof(amp_value)))) goto oom;
        g->n_values = g->cap_values = src->n_values;
        for (int i = 0; i < src->n_values; i++) {
            const amp_value *sv = &src->values[i];
            amp_value *v = &g->values[i];
            *v = *sv; /* dtype, shape, producer, flags */
            v->name = v->doc = NULL;
            v->init = NULL;
            v->name = clone_str(ctx, sv->name, &ok);
            v->doc = clone_str(ctx, sv->doc, &ok);
            if (!ok || (sv->init && amp_tensor_clone(ctx, sv->init, &v->init))) goto oom;
        }
    }
    if (src->n_nodes > 0) {
        if (!(g->nodes = amp_calloc(ctx, (size_t)src->n_nodes, sizeof(amp_node)))) goto oom;
        g->n_nodes = g->cap_nodes = src->n_nodes;
        for (int i = 0; i < src->n_nodes; i++)
            if (clone_node(ctx, &src->nodes[i], &g->nodes[i])) goto oom;
    }
    *out = g;
    return AMP_OK;
oom:
    amp_graph_destroy(g);
    return amp_seterr(ctx, AMP_ERR_NO_MEMORY, "out of memory copying a graph");
}

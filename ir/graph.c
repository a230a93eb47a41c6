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

static void free_attr(amp_context *ctx, amp_attr *a) {
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

void amp_node_free(amp_context *ctx, amp_node *n) {
    amp_dealloc(ctx, n->name);
    amp_dealloc(ctx, n->op_type);
    amp_dealloc(ctx, n->domain);
    amp_dealloc(ctx, n->inputs);
    amp_dealloc(ctx, n->outputs);
    amp_dealloc(ctx, n->doc);
    for (int i = 0; i < n->n_attrs; i++) free_attr(ctx, &n->attrs[i]);
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

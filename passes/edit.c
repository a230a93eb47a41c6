/* Small graph-editing helpers shared by the passes. */
#include <stdio.h>
#include <string.h>

#include "passes/passes.h"

int amp_edit_new_value(amp_graph *g, const char *base, const char *suffix) {
    char name[512];
    snprintf(name, sizeof name, "%s%s", base, suffix);
    for (int i = 1; amp_graph_find_value(g, name) >= 0; i++) {
        if (i > 1000000) return -1;
        snprintf(name, sizeof name, "%s%s_%d", base, suffix, i);
    }
    return amp_graph_new_value(g, name);
}

amp_status amp_edit_remove_nodes(amp_graph *g, const bool *dead) {
    int w = 0;
    for (int ni = 0; ni < g->n_nodes; ni++) {
        if (dead[ni]) {
            for (int k = 0; k < g->nodes[ni].n_outputs; k++)
                if (g->nodes[ni].outputs[k] >= 0) g->values[g->nodes[ni].outputs[k]].producer = -1;
            amp_node_free(g->ctx, &g->nodes[ni]);
            continue;
        }
        g->nodes[w++] = g->nodes[ni];
    }
    g->n_nodes = w;
    return amp_graph_link(g);
}

amp_status amp_edit_use_counts(amp_graph *g, int **out) {
    int *uses = amp_calloc(g->ctx, (size_t)g->n_values + 1, sizeof(int));
    if (!uses) return amp_seterr(g->ctx, AMP_ERR_NO_MEMORY, "out of memory");
    for (int ni = 0; ni < g->n_nodes; ni++)
        for (int k = 0; k < g->nodes[ni].n_inputs; k++)
            if (g->nodes[ni].inputs[k] >= 0) uses[g->nodes[ni].inputs[k]]++;
    for (int i = 0; i < g->n_outputs; i++) uses[g->outputs[i]]++;
    *out = uses;
    return AMP_OK;
}

const amp_tensor *amp_edit_const_tensor(const amp_graph *g, int v) {
    if (v < 0) return NULL;
    const amp_value *val = &g->values[v];
    if (val->init && !val->is_input) return val->init;
    if (val->producer >= 0 && g->nodes[val->producer].op == AMP_OP_CONSTANT)
        return amp_attr_tensor(&g->nodes[val->producer], "value");
    return NULL;
}

int amp_edit_other_input(const amp_node *n, int v) {
    if (n->n_inputs != 2) return -1;
    if (n->inputs[0] == v) return n->inputs[1];
    if (n->inputs[1] == v) return n->inputs[0];
    return -1;
}

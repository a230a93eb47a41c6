/* Node attribute lookups, typed: a present attribute of another kind is recorded on the node
 * and failed by amp_node_attr_check, never read as its default. */
#include <string.h>

#include "ir/ir.h"

const amp_attr *amp_node_attr(const amp_node *n, const char *name) {
    for (int i = 0; i < n->n_attrs; i++)
        if (strcmp(n->attrs[i].name, name) == 0) return &n->attrs[i];
    return NULL;
}

const char *amp_attr_kind_name(amp_attr_kind kind) {
    static const char *const names[] = {"UNDEFINED", "FLOAT",   "INT",           "STRING",         "TENSOR",
                                        "GRAPH",     "FLOATS",  "INTS",          "STRINGS",        "TENSORS",
                                        "GRAPHS",    "SPARSE_TENSOR", "SPARSE_TENSORS", "TYPE_PROTO", "TYPE_PROTOS"};
    return (unsigned)kind < sizeof names / sizeof names[0] ? names[kind] : "unknown";
}

const amp_attr *amp_node_attr_of(const amp_node *n, const char *name, amp_attr_kind kind) {
    const amp_attr *a = amp_node_attr(n, name);
    if (!a || a->kind == kind) return a;
    if (!n->attr_misread) {
        /* The graph is wrong: the one write a reader makes, so that plan building and the
         * executor fail the node instead of running it with a default. */
        amp_node *w = (amp_node *)n;
        w->attr_misread = (int)(a - n->attrs) + 1;
        w->attr_wanted = kind;
    }
    return NULL;
}

amp_status amp_node_attr_check(amp_context *ctx, const amp_node *n) {
    if (!n->attr_misread) return AMP_OK;
    const amp_attr *a = &n->attrs[n->attr_misread - 1];
    return amp_seterr(ctx, AMP_ERR_INVALID_GRAPH, "node '%s' (%s): attribute '%s' is %s, expected %s",
                      n->name && n->name[0] ? n->name : "<unnamed>", n->op_type, a->name, amp_attr_kind_name(a->kind),
                      amp_attr_kind_name(n->attr_wanted));
}

int64_t amp_attr_int(const amp_node *n, const char *name, int64_t def) {
    const amp_attr *a = amp_node_attr_of(n, name, AMP_ATTR_INT);
    return a ? a->i : def;
}

float amp_attr_float(const amp_node *n, const char *name, float def) {
    const amp_attr *a = amp_node_attr_of(n, name, AMP_ATTR_FLOAT);
    return a ? a->f : def;
}

const char *amp_attr_str(const amp_node *n, const char *name, const char *def) {
    const amp_attr *a = amp_node_attr_of(n, name, AMP_ATTR_STRING);
    return a ? a->s : def;
}

int amp_attr_ints(const amp_node *n, const char *name, const int64_t **v) {
    const amp_attr *a = amp_node_attr_of(n, name, AMP_ATTR_INTS);
    if (!a) return -1;
    *v = a->ints;
    return a->n;
}

int amp_attr_floats(const amp_node *n, const char *name, const float **v) {
    const amp_attr *a = amp_node_attr_of(n, name, AMP_ATTR_FLOATS);
    if (!a) return -1;
    *v = a->floats;
    return a->n;
}

const amp_tensor *amp_attr_tensor(const amp_node *n, const char *name) {
    const amp_attr *a = amp_node_attr_of(n, name, AMP_ATTR_TENSOR);
    return a ? a->t : NULL;
}

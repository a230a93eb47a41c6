/* Node attribute lookups. */
#include <string.h>

#include "ir/ir.h"

const amp_attr *amp_node_attr(const amp_node *n, const char *name) {
    for (int i = 0; i < n->n_attrs; i++)
        if (strcmp(n->attrs[i].name, name) == 0) return &n->attrs[i];
    return NULL;
}

int64_t amp_attr_int(const amp_node *n, const char *name, int64_t def) {
    const amp_attr *a = amp_node_attr(n, name);
    return a && a->kind == AMP_ATTR_INT ? a->i : def;
}

float amp_attr_float(const amp_node *n, const char *name, float def) {
    const amp_attr *a = amp_node_attr(n, name);
    if (a && a->kind == AMP_ATTR_FLOAT) return a->f;
    if (a && a->kind == AMP_ATTR_INT) return (float)a->i;
    return def;
}

const char *amp_attr_str(const amp_node *n, const char *name, const char *def) {
    const amp_attr *a = amp_node_attr(n, name);
    return a && a->kind == AMP_ATTR_STRING ? a->s : def;
}

int amp_attr_ints(const amp_node *n, const char *name, const int64_t **v) {
    const amp_attr *a = amp_node_attr(n, name);
    if (!a || a->kind != AMP_ATTR_INTS) return -1;
    *v = a->ints;
    return a->n;
}

int amp_attr_floats(const amp_node *n, const char *name, const float **v) {
    const amp_attr *a = amp_node_attr(n, name);
    if (!a || a->kind != AMP_ATTR_FLOATS) return -1;
    *v = a->floats;
    return a->n;
}

const amp_tensor *amp_attr_tensor(const amp_node *n, const char *name) {
    const amp_attr *a = amp_node_attr(n, name);
    return a && a->kind == AMP_ATTR_TENSOR ? a->t : NULL;
}

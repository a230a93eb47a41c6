/* Type constraints per op (the T of the ONNX schemas) and a dtype-only inference over the
 * graph. Shape inference needs concrete dims; this pass needs none, so it runs on models with
 * symbolic dims and on ops amprt cannot execute (the autocast pass converts models for other
 * runtimes too). */
#include <string.h>

#include "passes/passes.h"

/* Ops outside the op table that autocast still meets in files it converts for other runtimes
 * (tests/autocast: RandomNormalLike); amprt cannot run them, but their types must be right for
 * the casts around them. Ops of the table take their rule from it (ir/ops.def, TYPES). */
typedef struct outside_rule {
    const char *op;
    amp_type_rule rule;
    amp_types_fn fn; /* NULL: the rule as it stands */
} outside_rule;

static int attr_dtype(const amp_node *n, const char *name) {
    const amp_attr *a = amp_node_attr(n, name);
    return a && a->kind == AMP_ATTR_INT ? (int)a->i : 0;
}

/* RandomNormal, RandomUniform: no input, the output is dtype (float by default). */
static void types_random(const amp_node *n, int64_t opset, amp_type_rule *r) {
    (void)opset;
    int dt = attr_dtype(n, "dtype");
    r->out_rule[0] = dt ? dt : AMP_F32;
}

/* Multinomial: T input, output dtype (int32 by default). */
static void types_multinomial(const amp_node *n, int64_t opset, amp_type_rule *r) {
    (void)opset;
    int dt = attr_dtype(n, "dtype");
    r->out_rule[0] = dt ? dt : AMP_I32;
}

#define ALL_T {.known = true, .tin = AMP_TYPES_ALL, .tout = AMP_TYPES_ALL}
#define T0_ONLY {.known = true, .tin = 1, .tout = AMP_TYPES_ALL}
static const outside_rule outside[] = {
    {"LpNormalization", ALL_T, NULL},
    {"LpPool", ALL_T, NULL},
    {"GlobalLpPool", ALL_T, NULL},
    {"Swish", ALL_T, NULL},
    {"Compress", T0_ONLY, NULL},
    {"Col2Im", T0_ONLY, NULL},
    {"DFT", T0_ONLY, NULL},
    {"NonZero", {.known = true, .tin = 1, .out_rule = {AMP_I64}}, NULL},
    {"NonMaxSuppression", {.known = true, .tin = 3, .out_rule = {AMP_I64}}, NULL},
    {"RandomNormalLike", ALL_T, amp_types_like},
    {"RandomUniformLike", ALL_T, amp_types_like},
    {"Bernoulli", ALL_T, amp_types_like},
    {"RandomNormal", {.known = true}, types_random},
    {"RandomUniform", {.known = true}, types_random},
    {"Multinomial", {.known = true, .tin = 1}, types_multinomial},
};
#undef T0_ONLY
#undef ALL_T

void amp_node_type_rule(const amp_graph *g, const amp_node *n, amp_type_rule *r) {
    memset(r, 0, sizeof *r);
    amp_types_fn fn = NULL;
    if (n->op > AMP_OP_UNKNOWN && n->op < AMP_OP_COUNT) {
        *r = amp_op_table[n->op].types;
        fn = amp_op_table[n->op].types_fn;
    } else if (amp_domain_is_default(n->domain)) {
        for (size_t i = 0; i < sizeof outside / sizeof outside[0]; i++)
            if (strcmp(outside[i].op, n->op_type) == 0) {
                *r = outside[i].rule;
                fn = outside[i].fn;
                break;
            }
    }
    if (!r->known) return;
    if (fn) fn(n, amp_node_opset(g, n), r);
    if (!r->known) {
        memset(r, 0, sizeof *r);
        return;
    }
    uint32_t all_in = n->n_inputs >= 32 ? 0xffffffffu : (1u << n->n_inputs) - 1u;
    uint32_t all_out = n->n_outputs >= 32 ? 0xffffffffu : (1u << n->n_outputs) - 1u;
    r->tin &= all_in;
    r->tout &= all_out;
}

static const char *nlabel(const amp_node *n) { return n->name && n->name[0] ? n->name : n->op_type; }

amp_status amp_pass_typecheck(amp_graph *g, bool strict) {
    amp_context *ctx = g->ctx;
    for (int ni = 0; ni < g->n_nodes; ni++) {
        amp_node *n = &g->nodes[ni];
        amp_type_rule r;
        amp_node_type_rule(g, n, &r);
        if (!r.known) continue; /* outputs keep their declared dtypes */
        amp_dtype t = AMP_UNDEFINED;
        int first = -1;
        for (int k = 0; k < n->n_inputs && k < 32; k++) {
            if (!(r.tin >> k & 1) || n->inputs[k] < 0) continue;
            amp_dtype d = g->values[n->inputs[k]].dtype;
            if (d == AMP_UNDEFINED) continue;
            if (t == AMP_UNDEFINED) {
                t = d;
                first = k;
            } else if (d != t && strict) {
                return amp_seterr(ctx, AMP_ERR_SHAPE,
                                  "node '%s' (%s): input %d '%s' is %s but input %d '%s' is %s; they must agree",
                                  nlabel(n), n->op_type, first, g->values[n->inputs[first]].name, amp_dtype_name(t),
                                  k, g->values[n->inputs[k]].name, amp_dtype_name(d));
            }
        }
        for (int k = 0; k < n->n_outputs && k < 8; k++) {
            int v = n->outputs[k];
            if (v < 0) continue;
            amp_dtype d = AMP_UNDEFINED;
            if (r.tout >> k & 1) {
                d = t;
            } else if (r.out_rule[k] > 0) {
                d = (amp_dtype)r.out_rule[k];
            } else if (r.out_rule[k] < 0) {
                int src = -r.out_rule[k] - 1;
                if (src < n->n_inputs && n->inputs[src] >= 0) d = g->values[n->inputs[src]].dtype;
            }
            if (d == AMP_UNDEFINED) continue;
            amp_value *val = &g->values[v];
            if (val->dtype != AMP_UNDEFINED && val->dtype != d && strict)
                return amp_seterr(ctx, AMP_ERR_SHAPE, "node '%s' (%s): output '%s' computes as %s but is declared %s",
                                  nlabel(n), n->op_type, val->name, amp_dtype_name(d), amp_dtype_name(val->dtype));
            if (val->dtype == AMP_UNDEFINED) val->dtype = d;
        }
    }
    return AMP_OK;
}

amp_dtype amp_node_precision(const amp_graph *g, const amp_node *n) {
    amp_type_rule r;
    amp_node_type_rule(g, n, &r);
    for (int k = 0; k < n->n_inputs && k < 32; k++)
        if ((r.tin >> k & 1) && n->inputs[k] >= 0 && g->values[n->inputs[k]].dtype) return g->values[n->inputs[k]].dtype;
    for (int k = 0; k < n->n_outputs; k++)
        if (n->outputs[k] >= 0 && amp_dtype_is_float(g->values[n->outputs[k]].dtype)) return g->values[n->outputs[k]].dtype;
    return AMP_UNDEFINED;
}

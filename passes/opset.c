/* Opset conversion: raise the default domain's opset, rewriting the nodes whose signature
 * changed on the way so that every result stays the same (passes/passes.h). Every node is checked
 * first; only when all can be carried is any rewritten. */
#include <stdio.h>
#include <string.h>

#include "base/elem.h"
#include "passes/passes.h"

/* An attribute that became input `slot` at opset `at`; scalar: a 0-D tensor of the node's T
 * (Clip's bounds, Pad's value, for float16, bfloat16, float and double data; Dropout's ratio in
 * float32), else a 1-D int64 tensor. */
typedef struct moved_attr {
    const char *attr;
    int slot;
    bool scalar_t;
} moved_attr;

typedef struct op_change {
    amp_op op;
    int at;
    moved_attr moved[3];
    int n_moved;
} op_change;

static const op_change changes[] = {
    {AMP_OP_SLICE, 10, {{"starts", 1, false}, {"ends", 2, false}, {"axes", 3, false}}, 3},
    {AMP_OP_TOP_K, 10, {{"k", 1, false}}, 1},
    {AMP_OP_PAD, 11, {{"pads", 1, false}, {"value", 2, true}}, 2},
    {AMP_OP_CLIP, 11, {{"min", 1, true}, {"max", 2, true}}, 2},
    {AMP_OP_DROPOUT, 12, {{"ratio", 1, true}}, 1},
    {AMP_OP_SPLIT, 13, {{"split", 1, false}}, 1},
    {AMP_OP_SQUEEZE, 13, {{"axes", 1, false}}, 1},
    {AMP_OP_UNSQUEEZE, 13, {{"axes", 1, false}}, 1},
    {AMP_OP_REDUCE_SUM, 13, {{"axes", 1, false}}, 1},
    {AMP_OP_REDUCE_MEAN, 18, {{"axes", 1, false}}, 1},
    {AMP_OP_REDUCE_MAX, 18, {{"axes", 1, false}}, 1},
    {AMP_OP_REDUCE_MIN, 18, {{"axes", 1, false}}, 1},
    {AMP_OP_REDUCE_PROD, 18, {{"axes", 1, false}}, 1},
    {AMP_OP_REDUCE_L1, 18, {{"axes", 1, false}}, 1},
    {AMP_OP_REDUCE_L2, 18, {{"axes", 1, false}}, 1},
    {AMP_OP_REDUCE_LOG_SUM, 18, {{"axes", 1, false}}, 1},
    {AMP_OP_REDUCE_LOG_SUM_EXP, 18, {{"axes", 1, false}}, 1},
    {AMP_OP_REDUCE_SUM_SQUARE, 18, {{"axes", 1, false}}, 1},
};

/* The first IR version that carries an opset (onnx's version table); from IR 4 on, initializers
 * need not be graph inputs, which the attributes made initializers rely on. */
static int64_t ir_version_of(int opset) {
    static const struct { int opset, ir; } table[] = {{9, 4}, {10, 5}, {11, 6}, {12, 7}, {15, 8}, {19, 9}, {21, 10}, {23, 11}};
    int64_t ir = 4;
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
        if (opset >= table[i].opset) ir = table[i].ir;
    return ir;
}

int amp_opset_max(void) {
    int hi = 0;
    for (int i = 0; i < AMP_OP_COUNT; i++)
        if (amp_domain_is_default(amp_op_table[i].domain) && amp_op_table[i].opset_hi > hi) hi = amp_op_table[i].opset_hi;
    return hi;
}

static const op_change *change_of(const amp_node *n, int64_t from, int target) {
    for (size_t i = 0; i < sizeof changes / sizeof changes[0]; i++)
        if (changes[i].op == n->op && from < changes[i].at && target >= changes[i].at) return &changes[i];
    return NULL;
}

static bool crosses(int64_t from, int target, int at) { return from < at && target >= at; }

static const char *nname(const amp_node *n) { return n->name && n->name[0] ? n->name : "(unnamed)"; }

static bool value_used(const amp_graph *g, int v) {
    if (v < 0) return false;
    if (g->values[v].is_output) return true;
    for (int ni = 0; ni < g->n_nodes; ni++)
        for (int k = 0; k < g->nodes[ni].n_inputs; k++)
            if (g->nodes[ni].inputs[k] == v) return true;
    return false;
}

static amp_status refuse(const amp_graph *g, const amp_node *n, int64_t from, int target, const char *why) {
    return amp_seterr(g->ctx, AMP_ERR_UNSUPPORTED, "opset %lld -> %d: node '%s' (%s): %s", (long long)from, target,
                      nname(n), n->op_type, why);
}

/* Upsample (7 to 9) and Resize-10 sample asymmetrically; nearest rounds down when the axis grows
 * (ir/ops/resize.c), which Resize-11's asymmetric/floor writes out. A shrinking nearest axis
 * (rounded up) or unknown scales have no single equivalent. NULL when the node can be carried. */
static const char *legacy_resize_check(const amp_graph *g, const amp_node *n, int64_t from) {
    const char *mode = amp_attr_str(n, "mode", "nearest");
    if (strcmp(mode, "nearest") && strcmp(mode, "linear")) return "only modes nearest and linear are carried";
    if (!strcmp(mode, "linear")) return NULL;
    bool attr_scales = n->op == AMP_OP_UPSAMPLE && from < 9;
    const float *sc = NULL;
    int ns = 0;
    if (attr_scales) {
        ns = amp_attr_floats(n, "scales", &sc);
    } else {
        const amp_tensor *t = n->n_inputs > 1 ? amp_edit_const_tensor(g, n->inputs[1]) : NULL;
        if (!t || t->dtype != AMP_F32) return "nearest mode needs constant float32 scales to choose the rounding";
        ns = (int)t->numel;
        sc = (const float *)t->data;
    }
    if (ns <= 0) return "the scales are missing";
    for (int i = 0; i < ns; i++)
        if (sc[i] < 1.0f) return "a nearest axis that shrinks rounds up there, which Resize-11 cannot write";
    return NULL;
}

/* Can node n be carried from opset `from` to `target`? */
/* Scatter (opsets 9 and 10) is ScatterElements from 11 on: the same inputs, attribute and result
 * under the new name (11 adds negative indices, which Scatter never had). */
static bool scatter_renamed(const amp_node *n, int64_t from, int target) {
    return n->op == AMP_OP_SCATTER && crosses(from, target, 11);
}

static amp_status check_node(const amp_graph *g, const amp_node *n, int64_t from, int target) {
    if (!amp_domain_is_default(n->domain) || scatter_renamed(n, from, target)) return AMP_OK;
    if (n->op == AMP_OP_UNKNOWN) return refuse(g, n, from, target, "the op is not in amprt's op table");
    const amp_op_info *oi = &amp_op_table[n->op];
    if (target > oi->opset_hi && n->op != AMP_OP_UPSAMPLE) return refuse(g, n, from, target, "the op is not defined at the target opset");
    const op_change *c = change_of(n, from, target);
    if (c) {
        for (int i = 0; i < c->n_moved; i++) {
            const amp_attr *a = amp_node_attr(n, c->moved[i].attr);
            if (!a) continue;
            bool ok = c->moved[i].scalar_t ? a->kind == AMP_ATTR_FLOAT
                                           : (a->kind == AMP_ATTR_INTS || (n->op == AMP_OP_TOP_K && a->kind == AMP_ATTR_INT));
            if (!ok) return refuse(g, n, from, target, "an attribute that becomes an input has the wrong kind");
            if (n->n_inputs > c->moved[i].slot)
                return refuse(g, n, from, target, "an attribute that becomes an input is also given as an input");
            int x = n->inputs[0];
            if (c->moved[i].scalar_t && n->op != AMP_OP_DROPOUT && (x < 0 || !amp_dtype_is_float(g->values[x].dtype)))
                return refuse(g, n, from, target, "a scalar attribute becomes an input of the data's type, "
                                                  "which amprt writes for float data only");
        }
        if (n->op == AMP_OP_DROPOUT && n->n_outputs > 1 && from < 10 && value_used(g, n->outputs[1]))
            return refuse(g, n, from, target, "the mask output changes from T to bool at opset 10");
    }
    switch (n->op) {
    case AMP_OP_SOFTMAX:
    case AMP_OP_LOG_SOFTMAX:
    case AMP_OP_HARDMAX: {
        if (!crosses(from, target, 13)) break;
        /* the last axis keeps its meaning; any other is written out (Flatten, the op, Reshape) */
        if (n->inputs[0] < 0 || n->n_outputs < 1 || n->outputs[0] < 0)
            return refuse(g, n, from, target, "the node has no data input or output");
        break;
    }
    case AMP_OP_BATCH_NORM:
        if (crosses(from, target, 9) && amp_attr_int(n, "spatial", 1) != 1)
            return refuse(g, n, from, target, "spatial=0 has no equivalent from opset 9 on");
        if (crosses(from, target, 7) && amp_node_attr(n, "is_test") && amp_attr_int(n, "is_test", 0) == 0)
            return refuse(g, n, from, target, "is_test=0 (training) has no equivalent at the target");
        if (crosses(from, target, 14))
            for (int k = 1; k < n->n_outputs; k++)
                if (value_used(g, n->outputs[k]))
                    return refuse(g, n, from, target, "a training output (mean, var, saved_*) is read; from opset "
                                                      "14 those need training_mode=1, which changes the result");
        break;
    case AMP_OP_UPSAMPLE:
    case AMP_OP_RESIZE:
        if (n->op == AMP_OP_RESIZE && crosses(from, target, 13) &&
            !strcmp(amp_attr_str(n, "coordinate_transformation_mode", ""), "tf_half_pixel_for_nn"))
            return refuse(g, n, from, target, "coordinate_transformation_mode tf_half_pixel_for_nn left at opset 13");
        if (n->op == AMP_OP_UPSAMPLE ? crosses(from, target, 10) : crosses(from, target, 11)) {
            const char *why = legacy_resize_check(g, n, from);
            if (why) return refuse(g, n, from, target, why);
        }
        break;
    default:
        break;
    }
    return AMP_OK;
}

static int add_init(amp_graph *g, const amp_node *n, const char *suffix, amp_dtype dt, int rank, int64_t len,
                    const void *data, size_t bytes) {
    const char *base = n->name && n->name[0] ? n->name : (n->n_outputs > 0 && n->outputs[0] >= 0 ? g->values[n->outputs[0]].name : "opset");
    amp_tensor *t = NULL;
    if (amp_tensor_create(g->ctx, dt, rank, &len, &t)) return -1;
    if (bytes) memcpy(amp_tensor_data(t), data, bytes);
    int v = amp_edit_new_value(g, base, suffix);
    if (v < 0 || amp_grow(g->ctx, (void **)&g->inits, &(int){g->n_inits}, g->n_inits + 1, sizeof(int))) {
        amp_tensor_destroy(t);
        return -1;
    }
    amp_value *val = &g->values[v];
    val->init = t;
    val->dtype = dt;
    val->rank = rank;
    if (rank == 1) val->dims[0] = (amp_dim){.value = len, .sym = -1};
    g->inits[g->n_inits++] = v;
    return v;
}

static amp_status set_input(amp_graph *g, amp_node *n, int slot, int v) {
    if (slot >= n->n_inputs) {
        int *in = amp_calloc(g->ctx, (size_t)slot + 1, sizeof(int));
        if (!in) return amp_seterr(g->ctx, AMP_ERR_NO_MEMORY, "out of memory");
        for (int k = 0; k <= slot; k++) in[k] = k < n->n_inputs ? n->inputs[k] : -1;
        amp_dealloc(g->ctx, n->inputs);
        n->inputs = in;
        n->n_inputs = slot + 1;
    }
    n->inputs[slot] = v;
    return AMP_OK;
}

static void drop_attr(amp_graph *g, amp_node *n, const char *name) {
    for (int i = 0; i < n->n_attrs; i++)
        if (!strcmp(n->attrs[i].name, name)) {
            amp_attr_free(g->ctx, &n->attrs[i]);
            memmove(&n->attrs[i], &n->attrs[i + 1], (size_t)(n->n_attrs - i - 1) * sizeof(amp_attr));
            n->n_attrs--;
            return;
        }
}

static amp_status set_int_attr(amp_graph *g, amp_node *n, const char *name, int64_t v) {
    amp_attr *a = amp_node_attr_set(g->ctx, n, name);
    if (!a) return amp_seterr(g->ctx, AMP_ERR_NO_MEMORY, "out of memory");
    a->kind = AMP_ATTR_INT;
    a->i = v;
    return AMP_OK;
}

static amp_status set_str_attr(amp_graph *g, amp_node *n, const char *name, const char *v) {
    amp_attr *a = amp_node_attr_set(g->ctx, n, name);
    if (!a || !(a->s = amp_strdup(g->ctx, v))) return amp_seterr(g->ctx, AMP_ERR_NO_MEMORY, "out of memory");
    a->kind = AMP_ATTR_STRING;
    a->slen = strlen(v);
    return AMP_OK;
}

/* Upsample -> Resize (scales as an input from Upsample-7's attribute); then, at 11 and above, an
 * empty roi before the scales and the legacy sampling written out. */
static amp_status legacy_resize_rewrite(amp_graph *g, int ni, int64_t from, int target) {
    amp_node *n = &g->nodes[ni];
    amp_status s;
    if (n->op == AMP_OP_UPSAMPLE) {
        if (from < 9) {
            const float *sc = NULL;
            int ns = amp_attr_floats(n, "scales", &sc);
            int v = add_init(g, n, "_scales", AMP_F32, 1, ns, sc, (size_t)ns * sizeof(float));
            if (v < 0) return amp_seterr(g->ctx, AMP_ERR_NO_MEMORY, "out of memory");
            n = &g->nodes[ni];
            if ((s = set_input(g, n, 1, v))) return s;
            drop_attr(g, n, "scales");
        }
        char *op = amp_strdup(g->ctx, "Resize");
        if (!op) return amp_seterr(g->ctx, AMP_ERR_NO_MEMORY, "out of memory");
        amp_dealloc(g->ctx, n->op_type);
        n->op_type = op;
        n->op = AMP_OP_RESIZE;
    }
    if (target < 11) return AMP_OK;
    int roi = add_init(g, n, "_roi", AMP_F32, 1, 0, NULL, 0);
    if (roi < 0) return amp_seterr(g->ctx, AMP_ERR_NO_MEMORY, "out of memory");
    n = &g->nodes[ni];
    int scales = n->inputs[1];
    if ((s = set_input(g, n, 2, scales))) return s;
    n->inputs[1] = roi;
    if ((s = set_str_attr(g, n, "coordinate_transformation_mode", "asymmetric"))) return s;
    return set_str_attr(g, n, "nearest_mode", "floor");
}

/* A node op(in...) -> out appended to g (inputs: n_in value ids); *made its index. */
static amp_status append_node(amp_graph *g, const char *op, const char *name, const int *in, int n_in, int out) {
    amp_node nd;
    memset(&nd, 0, sizeof nd);
    nd.name = amp_strdup(g->ctx, name);
    nd.op_type = amp_strdup(g->ctx, op);
    nd.domain = amp_strdup(g->ctx, "");
    nd.inputs = amp_calloc(g->ctx, (size_t)n_in, sizeof(int));
    nd.outputs = amp_calloc(g->ctx, 1, sizeof(int));
    amp_status s = AMP_ERR_NO_MEMORY;
    if (nd.name && nd.op_type && nd.domain && nd.inputs && nd.outputs) {
        memcpy(nd.inputs, in, (size_t)n_in * sizeof(int));
        nd.n_inputs = n_in;
        nd.outputs[0] = out;
        nd.n_outputs = 1;
        nd.op = amp_op_lookup(op, "");
        s = amp_graph_add_node(g, &nd);
        if (!s) return AMP_OK;
    }
    amp_node_free(g->ctx, &nd);
    return s == AMP_ERR_NO_MEMORY ? amp_seterr(g->ctx, s, "out of memory") : s;
}

/* Softmax, LogSoftmax and Hardmax before 13 coerce the input to 2-D at `axis` (default 1). The
 * last axis means the same from 13 on (axis -1 written out); elsewhere, or at an unknown rank:
 * Flatten(axis) -> op(axis -1) -> Reshape to Shape(x), the old definition spelt out. */
static amp_status softmax_rewrite(amp_graph *g, int ni) {
    amp_node *n = &g->nodes[ni];
    int x = n->inputs[0], y = n->outputs[0];
    int rank = g->values[x].rank;
    int64_t axis = amp_attr_int(n, "axis", 1);
    if (rank > 0 && (axis == -1 || axis == rank - 1)) return set_int_attr(g, n, "axis", -1);
    char base[256];
    snprintf(base, sizeof base, "%s", g->values[y].name);
    int flat = amp_edit_new_value(g, base, "_2d_in");
    int res = amp_edit_new_value(g, base, "_2d");
    int shp = amp_edit_new_value(g, base, "_shape");
    if (flat < 0 || res < 0 || shp < 0) return amp_seterr(g->ctx, AMP_ERR_NO_MEMORY, "out of memory");
    amp_status s = append_node(g, "Flatten", g->values[flat].name, &x, 1, flat);
    if (!s) s = set_int_attr(g, &g->nodes[g->n_nodes - 1], "axis", axis);
    if (!s) s = append_node(g, "Shape", g->values[shp].name, &x, 1, shp);
    if (!s) s = append_node(g, "Reshape", base, (const int[]){res, shp}, 2, y);
    if (s) return s;
    n = &g->nodes[ni];
    n->inputs[0] = flat;
    n->outputs[0] = res;
    g->values[y].producer = -1;
    return set_int_attr(g, n, "axis", -1);
}

static amp_status rewrite_node(amp_graph *g, int ni, int64_t from, int target, bool *changed) {
    amp_node *n = &g->nodes[ni];
    if (!amp_domain_is_default(n->domain)) return AMP_OK;
    if (scatter_renamed(n, from, target)) {
        char *t = amp_strdup(g->ctx, "ScatterElements");
        if (!t) return amp_seterr(g->ctx, AMP_ERR_NO_MEMORY, "out of memory");
        amp_dealloc(g->ctx, n->op_type);
        n->op_type = t;
        n->op = amp_op_lookup("ScatterElements", "");
        *changed = true;
        return AMP_OK;
    }
    const op_change *c = change_of(n, from, target);
    if (c) {
        for (int i = 0; i < c->n_moved; i++) {
            const moved_attr *m = &c->moved[i];
            const amp_attr *a = amp_node_attr(n, m->attr);
            if (!a) continue;
            char suffix[64];
            snprintf(suffix, sizeof suffix, "_%s", m->attr);
            int v;
            if (m->scalar_t) {
                /* Clip's bounds and Pad's value take the data's type (float16, double, ...);
                 * Dropout's ratio stays float32 */
                int x = n->inputs[0];
                amp_dtype dt = n->op == AMP_OP_DROPOUT || x < 0 ? AMP_F32 : g->values[x].dtype;
                unsigned char buf[8];
                amp_st(dt, buf, 0, (double)a->f);
                v = add_init(g, n, suffix, dt, 0, 0, buf, amp_dtype_size(dt));
            } else if (a->kind == AMP_ATTR_INT) {
                int64_t k = a->i;
                v = add_init(g, n, suffix, AMP_I64, 1, 1, &k, sizeof k);
            } else {
                v = add_init(g, n, suffix, AMP_I64, 1, a->n, a->ints, (size_t)a->n * sizeof(int64_t));
            }
            if (v < 0) return amp_seterr(g->ctx, AMP_ERR_NO_MEMORY, "out of memory");
            n = &g->nodes[ni];
            amp_status s = set_input(g, n, m->slot, v);
            if (s) return s;
            drop_attr(g, n, m->attr);
            *changed = true;
        }
    }
    switch (n->op) {
    case AMP_OP_SOFTMAX:
    case AMP_OP_LOG_SOFTMAX:
    case AMP_OP_HARDMAX:
        if (crosses(from, target, 13)) {
            amp_status s = softmax_rewrite(g, ni);
            if (s) return s;
            *changed = true;
        }
        break;
    case AMP_OP_SPLIT:
        /* from 18 equal parts are asked for with num_outputs */
        if (crosses(from, target, 18) && (n->n_inputs < 2 || n->inputs[1] < 0) && !amp_node_attr(n, "num_outputs")) {
            amp_status s = set_int_attr(g, n, "num_outputs", n->n_outputs);
            if (s) return s;
            *changed = true;
        }
        break;
    case AMP_OP_UPSAMPLE:
    case AMP_OP_RESIZE:
        if (n->op == AMP_OP_UPSAMPLE ? crosses(from, target, 10) : crosses(from, target, 11)) {
            amp_status s = legacy_resize_rewrite(g, ni, from, target);
            if (s) return s;
            *changed = true;
        }
        break;
    case AMP_OP_BATCH_NORM:
        if (crosses(from, target, 9) && amp_node_attr(n, "spatial")) {
            drop_attr(g, n, "spatial");
            *changed = true;
        }
        if (crosses(from, target, 7) && amp_node_attr(n, "is_test")) {
            drop_attr(g, n, "is_test");
            *changed = true;
        }
        if (amp_node_attr(n, "consumed_inputs")) {
            drop_attr(g, n, "consumed_inputs");
            *changed = true;
        }
        if (crosses(from, target, 14) && n->n_outputs > 1) {
            for (int k = 1; k < n->n_outputs; k++)
                if (n->outputs[k] >= 0) g->values[n->outputs[k]].producer = -1;
            n->n_outputs = 1;
            *changed = true;
        }
        break;
    default:
        break;
    }
    return AMP_OK;
}

amp_status amp_pass_convert_opset(amp_graph *g, int target, int *rewritten) {
    if (rewritten) *rewritten = 0;
    int64_t from = g->opset;
    int hi = amp_opset_max();
    if (target < from)
        return amp_seterr(g->ctx, AMP_ERR_UNSUPPORTED,
                          "target opset %d is below the model's opset %lld: amprt converts opsets upward only", target,
                          (long long)from);
    if (target > hi)
        return amp_seterr(g->ctx, AMP_ERR_UNSUPPORTED, "target opset %d is above the highest opset amprt handles (%d)",
                          target, hi);
    if (target == from) return AMP_OK;
    /* the dtypes of values the file leaves undeclared (Clip's and Pad's scalars take T); put
     * back as they were when the conversion is refused */
    amp_dtype *dts = amp_calloc(g->ctx, (size_t)g->n_values + 1, sizeof(amp_dtype));
    if (!dts) return amp_seterr(g->ctx, AMP_ERR_NO_MEMORY, "out of memory");
    for (int v = 0; v < g->n_values; v++) dts[v] = g->values[v].dtype;
    amp_status cs = amp_pass_typecheck(g, false);
    for (int ni = 0; !cs && ni < g->n_nodes; ni++) cs = check_node(g, &g->nodes[ni], from, target);
    if (cs)
        for (int v = 0; v < g->n_values; v++) g->values[v].dtype = dts[v];
    amp_dealloc(g->ctx, dts);
    if (cs) return cs;
    int count = 0, nn = g->n_nodes;
    for (int ni = 0; ni < nn; ni++) {
        bool changed = false;
        amp_status s = rewrite_node(g, ni, from, target, &changed);
        if (s) return s;
        count += changed;
    }
    g->opset = target;
    if (g->ir_version < ir_version_of(target)) g->ir_version = ir_version_of(target);
    for (int i = 0; i < g->n_opsets; i++)
        if (amp_domain_is_default(g->opsets[i].domain)) g->opsets[i].version = target;
    if (rewritten) *rewritten = count;
    return amp_graph_link(g);
}

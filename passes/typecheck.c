/* Type constraints per op (the T of the ONNX schemas) and a dtype-only inference over the
 * graph. Shape inference needs concrete dims; this pass needs none, so it runs on models with
 * symbolic dims and on ops amprt cannot execute (the autocast pass converts models for other
 * runtimes too). */
#include <string.h>

#include "passes/passes.h"

static bool is(const amp_node *n, const char *op) { return strcmp(n->op_type, op) == 0; }

static bool is_any(const amp_node *n, const char *const *ops) {
    for (; *ops; ops++)
        if (is(n, *ops)) return true;
    return false;
}

/* Ops outside amprt's table whose constraints are "every input and output is T". */
static const char *const all_t_extra[] = {"Einsum", "GroupNormalization", "LpNormalization",
                                          "GlobalLpPool", "LpPool", "MeanVarianceNormalization",
                                          "LRN", "Det", "Swish", NULL};
/* Ops whose only T input is input 0; every output is T. */
static const char *const t0_only[] = {"Reshape", "Expand", "Tile", "Unsqueeze", "Squeeze", "Slice", "Gather",
                                      "GatherElements", "GatherND", "Split", "Trilu", "ReduceMean",
                                      "ReduceSum", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1",
                                      "ReduceL2", "ReduceLogSum", "ReduceLogSumExp", "ReduceSumSquare",
                                      "CumSum", "Compress", "Resize", "Upsample", "Pow", "ReverseSequence", "Col2Im",
                                      "AffineGrid", "GridSample", "DFT", "MaxUnpool", NULL};
static const char *const compare_ops[] = {"Equal", "Less", "Greater", "LessOrEqual", "GreaterOrEqual", NULL};
static const char *const like_ops[] = {"EyeLike", "RandomNormalLike", "RandomUniformLike", "Bernoulli", NULL};

static int attr_dtype(const amp_node *n, const char *name) {
    const amp_attr *a = amp_node_attr(n, name);
    return a && a->kind == AMP_ATTR_INT ? (int)a->i : 0;
}

void amp_node_type_rule(const amp_graph *g, const amp_node *n, amp_type_rule *r) {
    memset(r, 0, sizeof *r);
    uint32_t all_in = n->n_inputs >= 32 ? 0xffffffffu : (1u << n->n_inputs) - 1u;
    uint32_t all_out = n->n_outputs >= 32 ? 0xffffffffu : (1u << n->n_outputs) - 1u;
    bool def = !n->domain || !n->domain[0] || strcmp(n->domain, "ai.onnx") == 0;
    if (!def) return;
    int64_t opset = amp_node_opset(g, n);
    r->known = true;
    r->tin = all_in;
    r->tout = all_out;
    if (is(n, "Cast")) {
        r->tin = r->tout = 0;
        r->agnostic = 1;
        r->out_rule[0] = attr_dtype(n, "to");
    } else if (is(n, "CastLike")) {
        r->tin = r->tout = 0;
        r->agnostic = 1;
        r->out_rule[0] = -2;
    } else if (is(n, "Shape") || is(n, "Size")) {
        r->tin = r->tout = 0;
        r->agnostic = 1;
        r->out_rule[0] = AMP_I64;
    } else if (is(n, "Constant")) {
        r->tin = r->tout = 0;
        const amp_tensor *t = amp_attr_tensor(n, "value");
        if (t) r->out_rule[0] = t->dtype;
        else if (amp_node_attr(n, "value_float") || amp_node_attr(n, "value_floats")) r->out_rule[0] = AMP_F32;
        else if (amp_node_attr(n, "value_int") || amp_node_attr(n, "value_ints")) r->out_rule[0] = AMP_I64;
        else r->known = false;
    } else if (is(n, "ConstantOfShape")) {
        r->tin = r->tout = 0;
        const amp_tensor *t = amp_attr_tensor(n, "value");
        r->out_rule[0] = t ? (int)t->dtype : AMP_F32;
    } else if (is_any(n, like_ops)) {
        int dt = attr_dtype(n, "dtype");
        r->tin = 0;
        r->tout = 0;
        if (dt) {
            r->agnostic = 1;
            r->out_rule[0] = dt;
        } else {
            r->tin = 1; /* output follows the input's type */
            r->tout = 1;
        }
    } else if (is(n, "RandomNormal") || is(n, "RandomUniform")) {
        r->tin = r->tout = 0;
        int dt = attr_dtype(n, "dtype");
        r->out_rule[0] = dt ? dt : AMP_F32;
    } else if (is(n, "Multinomial")) {
        r->tin = 1;
        r->tout = 0;
        int dt = attr_dtype(n, "dtype");
        r->out_rule[0] = dt ? dt : AMP_I32;
    } else if (is(n, "ArgMax") || is(n, "ArgMin") || is(n, "NonZero")) {
        r->tin = 1;
        r->tout = 0;
        r->out_rule[0] = AMP_I64;
    } else if (is(n, "TopK")) {
        r->tin = 1;
        r->tout = 1;
        r->out_rule[1] = AMP_I64;
    } else if (is(n, "MaxPool")) {
        r->tin = 1;
        r->tout = 1;
        r->out_rule[1] = AMP_I64;
    } else if (is_any(n, compare_ops)) {
        r->tin = 3;
        r->tout = 0;
        r->out_rule[0] = AMP_BOOL;
    } else if (is(n, "IsNaN") || is(n, "IsInf")) {
        r->tin = 1;
        r->tout = 0;
        r->out_rule[0] = AMP_BOOL;
    } else if (is(n, "Where")) {
        r->tin = 6;
    } else if (is_any(n, t0_only)) {
        r->tin = 1;
    } else if (is(n, "ScatterElements") || is(n, "ScatterND") || is(n, "Scatter") || is(n, "Pad")) {
        r->tin = 5; /* data and updates (Pad: data and constant_value) */
    } else if (is(n, "Dropout")) {
        r->tin = 1;
        r->tout = 1;
        r->out_rule[1] = AMP_BOOL;
    } else if (is(n, "BatchNormalization")) {
        if (opset >= 15) {
            /* X: T; scale, B: T1; mean, var: T2; running mean/var outputs: T2 */
            r->tin = 1;
            r->tout = 1;
            r->out_rule[1] = -4;
            r->out_rule[2] = -5;
        }
    } else if (is(n, "LayerNormalization")) {
        r->tin = 7;
        r->tout = 1;
        /* Mean and InvStdDev have the stash type (float by default) */
        int64_t stash = amp_attr_int(n, "stash_type", 1);
        r->out_rule[1] = r->out_rule[2] = (int)stash;
    } else if (is(n, "NegativeLogLikelihoodLoss") || is(n, "SoftmaxCrossEntropyLoss")) {
        r->tin = 5; /* scores (or input) and weights; the labels are integers */
    } else if (is(n, "OneHot")) {
        r->tin = r->tout = 0;
        r->out_rule[0] = -3;
    } else if (is(n, "LSTM") || is(n, "GRU") || is(n, "RNN")) {
        r->tin = all_in & ~(1u << 4); /* sequence_lens is int32 */
    } else if (is(n, "RoiAlign")) {
        r->tin = 3;
    } else if (is(n, "NonMaxSuppression")) {
        r->tin = 3;
        r->tout = 0;
        r->out_rule[0] = AMP_I64;
    } else if (is(n, "QuantizeLinear")) {
        /* y takes the zero point's type, else output_dtype (21), else uint8 */
        r->tin = r->tout = 0;
        int od = attr_dtype(n, "output_dtype");
        r->out_rule[0] = n->n_inputs > 2 && n->inputs[2] >= 0 ? -3 : od ? od : AMP_U8;
    } else if (is(n, "DequantizeLinear")) {
        r->tin = 5; /* x and its zero point; y has the scale's type */
        r->tout = 0;
        r->out_rule[0] = -2;
    } else if (is(n, "DynamicQuantizeLinear")) {
        r->tin = r->tout = 0;
        r->out_rule[0] = AMP_U8;
        r->out_rule[1] = AMP_F32;
        r->out_rule[2] = AMP_U8;
    } else if (is(n, "MatMulInteger") || is(n, "ConvInteger")) {
        r->tin = r->tout = 0;
        r->out_rule[0] = AMP_I32;
    } else if (is(n, "QLinearMatMul") || is(n, "QLinearConv")) {
        r->tin = r->tout = 0;
        r->out_rule[0] = -8; /* y_zero_point, input 7 */
    } else if (is(n, "Range") || is(n, "And") || is(n, "Or") || is(n, "Xor") || is(n, "Not") ||
               is(n, "Identity") || is(n, "Mod") || is(n, "BitShift")) {
        /* every input and output T */
    } else if (is(n, "HannWindow") || is(n, "HammingWindow") || is(n, "BlackmanWindow")) {
        r->tin = r->tout = 0; /* integer size; the output type is output_datatype */
        int dt = attr_dtype(n, "output_datatype");
        r->out_rule[0] = dt ? dt : AMP_F32;
    } else if (n->op != AMP_OP_UNKNOWN || is_any(n, all_t_extra)) {
        /* amprt's other ops: every input and output shares T (Gemm, Conv, elementwise, ...) */
    } else {
        memset(r, 0, sizeof *r);
    }
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

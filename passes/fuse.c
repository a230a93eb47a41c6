/* Fusion for backends that ask for it (passes/passes.h, amp_pass_fuse): chains of nodes become
 * one node of the fused family (ir/ops/fused.def), so a GPU launches one kernel (or one library
 * call with an epilogue) where the graph had several, and the intermediate values need no memory.
 *
 * It runs on a session's own copy of the finished graph (an inference graph, or a training step
 * after autodiff and the optimizer), so a value inside a chain that other nodes read (the
 * pre-activation a Gelu's gradient needs, the probabilities SoftmaxGrad reads) either becomes an
 * output of the fused node, where the op has one for it, or stops the fusion. Every rule is
 * structural (op types, attributes, use counts, constants, the dims of parameters); what depends
 * on activation shapes is checked by the fused op's inference when the session plans, and a plan
 * that fails there is planned unfused instead (runtime/session.c).
 *
 * A fused node takes the place of the chain's first node, which is valid because every input
 * from outside the chain must be made before that node (checked); values the chain made for
 * others are then made no later than before.
 *
 * The chains, in the order they are tried:
 *   GELU     x * 0.5 * (1 + erf(x / sqrt 2)) written out (as exporters before opset 20 do)
 *            -> Gelu(x)
 *   GEMM     MatMul(A, B) [+ bias] or Gemm(A, B, [C]) (transA 0, beta 1), B and bias
 *            parameters of known dims, then Relu, Gelu or Gelu(tanh) -> FusedGemm
 *   CONV     Conv -> Relu -> FusedConv
 *   LAYERNORM Add(X, R) -> LayerNormalization -> AddLayerNorm
 *   ATTENTION [Mul(Q, a)], [Mul(Kt, b)] -> MatMul -> [Mul/Div by a scalar] -> [Add(mask)] ->
 *            Softmax(last axis) -> MatMul(., V) -> Attention
 *   CASTS    Casts of graph inputs and initializers to one dtype (a step's weights), and runs
 *            of Casts of computed values whose readers all come after the run (a step's
 *            gradients on their way to the optimizer) -> CastMulti */
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "base/elem.h"
#include "passes/passes.h"

#define FUSED_DOMAIN "ai.amprt.fused"

typedef struct fz {
    amp_graph *g;
    int *uses;  /* consumers per value (a graph output counts as one) */
    int *cons;  /* the one consumer node of a value used once, else -1 */
    int *cs, *cl; /* the consumers of value v: cl[cs[v] .. cs[v + 1]), in node order */
    bool *dead;
} fz;

static amp_status fz_index(fz *f) {
    amp_graph *g = f->g;
    amp_dealloc(g->ctx, f->uses);
    amp_dealloc(g->ctx, f->cons);
    amp_dealloc(g->ctx, f->dead);
    amp_dealloc(g->ctx, f->cs);
    amp_dealloc(g->ctx, f->cl);
    f->uses = f->cons = f->cs = f->cl = NULL;
    f->dead = NULL;
    amp_status s = amp_edit_use_counts(g, &f->uses);
    if (s) return s;
    size_t edges = 0;
    for (int ni = 0; ni < g->n_nodes; ni++) edges += (size_t)g->nodes[ni].n_inputs;
    f->cons = amp_alloc(g->ctx, sizeof(int) * ((size_t)g->n_values + 1));
    f->cs = amp_calloc(g->ctx, (size_t)g->n_values + 2, sizeof(int));
    f->cl = amp_alloc(g->ctx, sizeof(int) * (edges + 1));
    f->dead = amp_calloc(g->ctx, (size_t)g->n_nodes + 1, sizeof(bool));
    if (!f->cons || !f->cs || !f->cl || !f->dead) return amp_seterr(g->ctx, AMP_ERR_NO_MEMORY, "out of memory");
    for (int ni = 0; ni < g->n_nodes; ni++)
        for (int k = 0; k < g->nodes[ni].n_inputs; k++)
            if (g->nodes[ni].inputs[k] >= 0) f->cs[g->nodes[ni].inputs[k] + 1]++;
    for (int v = 0; v < g->n_values; v++) f->cs[v + 1] += f->cs[v];
    int *fill = amp_alloc(g->ctx, sizeof(int) * ((size_t)g->n_values + 1));
    if (!fill) return amp_seterr(g->ctx, AMP_ERR_NO_MEMORY, "out of memory");
    memcpy(fill, f->cs, sizeof(int) * (size_t)g->n_values);
    for (int ni = 0; ni < g->n_nodes; ni++)
        for (int k = 0; k < g->nodes[ni].n_inputs; k++) {
            int v = g->nodes[ni].inputs[k];
            /* a node reading v twice is listed twice; readers are in node order */
            if (v >= 0) f->cl[fill[v]++] = ni;
        }
    amp_dealloc(g->ctx, fill);
    for (int v = 0; v < g->n_values; v++) f->cons[v] = -1;
    for (int ni = 0; ni < g->n_nodes; ni++)
        for (int k = 0; k < g->nodes[ni].n_inputs; k++) {
            int v = g->nodes[ni].inputs[k];
            if (v >= 0 && f->uses[v] == 1 && !g->values[v].is_output) f->cons[v] = ni;
        }
    return AMP_OK;
}

static void fz_free(fz *f) {
    amp_dealloc(f->g->ctx, f->cs);
    amp_dealloc(f->g->ctx, f->cl);
    amp_dealloc(f->g->ctx, f->uses);
    amp_dealloc(f->g->ctx, f->cons);
    amp_dealloc(f->g->ctx, f->dead);
}

/* The one consumer of v, or -1 (none, several, or a graph output). */
static int only_user(const fz *f, int v) { return v >= 0 ? f->cons[v] : -1; }

/* Node ni is live, of op, with at least nin inputs present and a first output. */
static bool is_op(const fz *f, int ni, amp_op op, int nin) {
    if (ni < 0 || f->dead[ni]) return false;
    const amp_node *n = &f->g->nodes[ni];
    if (n->op != op || n->n_inputs < nin || n->n_outputs < 1 || n->outputs[0] < 0) return false;
    for (int k = 0; k < nin; k++)
        if (n->inputs[k] < 0) return false;
    return true;
}

static int out0(const fz *f, int ni) { return f->g->nodes[ni].outputs[0]; }

/* A constant of one element (any float dtype) read as double. */
static bool const_scalar(const amp_graph *g, int v, double *out) {
    const amp_tensor *t = amp_edit_const_tensor(g, v);
    if (!t || t->numel != 1) return false;
    if (t->dtype != AMP_F32 && t->dtype != AMP_F64 && t->dtype != AMP_F16 && t->dtype != AMP_BF16) return false;
    *out = amp_ld(t->dtype, t->data, 0);
    return true;
}

static bool near(double a, double b, double tol) { return fabs(a - b) <= tol * fabs(b); }

/* The dims of v when they do not depend on the inputs' shapes: an initializer's, a declared
 * concrete shape's (a parameter made an input by the trainer), or those of the input of a Cast
 * or Identity that made v. Its rank, or -1. */
static int fixed_dims(const amp_graph *g, int v, int64_t *dims) {
    for (int hops = 0; v >= 0 && hops < 8; hops++) {
        const amp_value *val = &g->values[v];
        if (val->init) {
            memcpy(dims, val->init->dims, sizeof(int64_t) * (size_t)val->init->rank);
            return val->init->rank;
        }
        if (val->producer < 0) {
            if (val->rank < 0) return -1;
            for (int d = 0; d < val->rank; d++) {
                if (val->dims[d].value < 0) return -1;
                dims[d] = val->dims[d].value;
            }
            return val->rank;
        }
        const amp_node *p = &g->nodes[val->producer];
        if ((p->op != AMP_OP_CAST && p->op != AMP_OP_IDENTITY) || p->n_inputs < 1) return -1;
        v = p->inputs[0];
    }
    return -1;
}

/* Every input of the chain nodes[0..n) that the chain does not make is made before the chain's
 * first node, or by a node without inputs (a Constant, which linking moves up): so the fused
 * node, standing where that first node stood, depends on nothing the chain makes. */
static bool inputs_before(const fz *f, const int *nodes, int n) {
    const amp_graph *g = f->g;
    int first = nodes[0];
    for (int i = 0; i < n; i++)
        if (nodes[i] < first) first = nodes[i];
    for (int i = 0; i < n; i++) {
        const amp_node *nd = &g->nodes[nodes[i]];
        for (int k = 0; k < nd->n_inputs; k++) {
            int v = nd->inputs[k];
            if (v < 0 || g->values[v].producer < 0) continue;
            bool inside = false;
            for (int j = 0; j < n; j++) inside |= g->values[v].producer == nodes[j];
            const amp_node *pn = &g->nodes[g->values[v].producer];
            if (!inside && g->values[v].producer >= first && pn->n_inputs > 0) return false;
        }
    }
    return true;
}

/* ---- building the fused node ---------------------------------------------------------------- */

static bool attr_int(amp_context *ctx, amp_node *n, const char *name, int64_t v) {
    amp_attr *a = amp_node_attr_set(ctx, n, name);
    if (!a) return false;
    a->kind = AMP_ATTR_INT;
    a->i = v;
    return true;
}

static bool attr_float(amp_context *ctx, amp_node *n, const char *name, double v) {
    amp_attr *a = amp_node_attr_set(ctx, n, name);
    if (!a) return false;
    a->kind = AMP_ATTR_FLOAT;
    a->f = (float)v;
    return true;
}

static bool attr_str(amp_context *ctx, amp_node *n, const char *name, const char *v) {
    amp_attr *a = amp_node_attr_set(ctx, n, name);
    if (!a) return false;
    a->kind = AMP_ATTR_STRING;
    a->s = amp_strdup(ctx, v);
    a->slen = strlen(v);
    return a->s != NULL;
}

/* Node `at` becomes op_type (of domain, "" the default) with the given inputs and outputs; the
 * attributes of node attrs_of (-1: none) move to it. Nodes dead[] are dropped by the caller. */
static amp_status become(fz *f, int at, const char *op_type, const char *domain, int nin, const int *ins, int nout,
                         const int *outs, int attrs_of) {
    amp_graph *g = f->g;
    amp_context *ctx = g->ctx;
    amp_node *n = &g->nodes[at];
    char *ot = amp_strdup(ctx, op_type), *dm = amp_strdup(ctx, domain);
    int *in = amp_alloc(ctx, sizeof(int) * (size_t)(nin + 1)), *out = amp_alloc(ctx, sizeof(int) * (size_t)(nout + 1));
    amp_op op = amp_op_lookup(op_type, domain);
    if (!ot || !dm || !in || !out || op == AMP_OP_UNKNOWN) {
        amp_dealloc(ctx, ot);
        amp_dealloc(ctx, dm);
        amp_dealloc(ctx, in);
        amp_dealloc(ctx, out);
        return op == AMP_OP_UNKNOWN ? amp_seterr(ctx, AMP_ERR_INTERNAL, "fusion made an unknown op %s", op_type)
                                    : amp_seterr(ctx, AMP_ERR_NO_MEMORY, "out of memory");
    }
    memcpy(in, ins, sizeof(int) * (size_t)nin);
    memcpy(out, outs, sizeof(int) * (size_t)nout);
    if (attrs_of != at) {
        amp_node own = {.attrs = n->attrs, .n_attrs = n->n_attrs};
        amp_node_free(ctx, &own); /* this node's own attributes go */
        n->attrs = NULL;
        n->n_attrs = 0;
        if (attrs_of >= 0) { /* and src's move here */
            amp_node *src = &g->nodes[attrs_of];
            n->attrs = src->attrs;
            n->n_attrs = src->n_attrs;
            src->attrs = NULL;
            src->n_attrs = 0;
        }
    }
    amp_dealloc(ctx, n->op_type);
    amp_dealloc(ctx, n->domain);
    amp_dealloc(ctx, n->inputs);
    amp_dealloc(ctx, n->outputs);
    n->op_type = ot;
    n->domain = dm;
    n->op = op;
    n->inputs = in;
    n->n_inputs = nin;
    n->outputs = out;
    n->n_outputs = nout;
    n->attr_misread = 0;
    return AMP_OK;
}

static amp_status oom(fz *f) { return amp_seterr(f->g->ctx, AMP_ERR_NO_MEMORY, "out of memory"); }

/* Cast node ni is groupable: one input, one output, a plain int `to`. */
static bool plain_cast(const fz *f, int ni) {
    if (!is_op(f, ni, AMP_OP_CAST, 1) || f->g->nodes[ni].n_outputs != 1 || f->g->nodes[ni].n_inputs != 1) return false;
    const amp_attr *a = amp_node_attr(&f->g->nodes[ni], "to");
    return a && a->kind == AMP_ATTR_INT && f->g->nodes[ni].n_attrs == 1;
}

/* ---- GELU ------------------------------------------------------------------------------------ */

/* x / sqrt(2) or x * (1 / sqrt(2)) at node ni: its x, else -1. */
static int gelu_scaled_input(const fz *f, int ni) {
    double c;
    if (is_op(f, ni, AMP_OP_DIV, 2) && const_scalar(f->g, f->g->nodes[ni].inputs[1], &c) && near(c, 1.4142135623730951, 1e-3))
        return f->g->nodes[ni].inputs[0];
    if (is_op(f, ni, AMP_OP_MUL, 2))
        for (int k = 0; k < 2; k++)
            if (const_scalar(f->g, f->g->nodes[ni].inputs[k], &c) && near(c, 0.7071067811865476, 1e-3))
                return f->g->nodes[ni].inputs[1 - k];
    return -1;
}

/* The other input of binary node ni beside v, or -1. */
static int other(const fz *f, int ni, int v) { return amp_edit_other_input(&f->g->nodes[ni], v); }

static bool is_const_near(const fz *f, int v, double want) {
    double c;
    return const_scalar(f->g, v, &c) && near(c, want, 1e-3);
}

static amp_status fuse_gelu(fz *f, int *count) {
    amp_graph *g = f->g;
    for (int d = 0; d < g->n_nodes; d++) {
        int x = gelu_scaled_input(f, d);
        if (x < 0) continue;
        int e = only_user(f, out0(f, d));
        if (!is_op(f, e, AMP_OP_ERF, 1)) continue;
        int a = only_user(f, out0(f, e));
        if (!is_op(f, a, AMP_OP_ADD, 2) || !is_const_near(f, other(f, a, out0(f, e)), 1.0)) continue;
        /* (x * (1 + erf)) * 0.5, or (x * 0.5) * (1 + erf) */
        int m1 = only_user(f, out0(f, a)), m2 = -1;
        if (!is_op(f, m1, AMP_OP_MUL, 2)) continue;
        int o = other(f, m1, out0(f, a));
        if (o == x) {
            m2 = only_user(f, out0(f, m1));
            if (!is_op(f, m2, AMP_OP_MUL, 2) || !is_const_near(f, other(f, m2, out0(f, m1)), 0.5)) continue;
        } else {
            int h = g->values[o >= 0 ? o : 0].producer;
            if (o < 0 || !is_op(f, h, AMP_OP_MUL, 2) || other(f, h, x) < 0 || !is_const_near(f, other(f, h, x), 0.5) ||
                only_user(f, o) != m1)
                continue;
            m2 = m1;
            m1 = h;
        }
        int chain[5] = {d, e, a, m1, m2};
        if (!inputs_before(f, chain, 5)) continue;
        int y = out0(f, m2);
        amp_status s = become(f, d, "Gelu", "", 1, &x, 1, &y, -1);
        if (s) return s;
        f->dead[e] = f->dead[a] = f->dead[m1] = f->dead[m2] = true;
        (*count)++;
    }
    return AMP_OK;
}

/* ---- GEMM + bias + activation ---------------------------------------------------------------- */

/* The activation node reading v alone, and its name for FusedGemm ("" none). */
static int activation_of(const fz *f, int v, const char **act) {
    int u = only_user(f, v);
    *act = "";
    if (is_op(f, u, AMP_OP_RELU, 1) && f->g->nodes[u].n_outputs == 1) {
        *act = "Relu";
        return u;
    }
    if (is_op(f, u, AMP_OP_GELU, 1) && f->g->nodes[u].n_outputs == 1) {
        const char *ap = amp_attr_str(&f->g->nodes[u], "approximate", "none");
        if (!strcmp(ap, "none")) *act = "Gelu";
        else if (!strcmp(ap, "tanh")) *act = "GeluTanh";
        else return -1;
        return u;
    }
    return -1;
}

/* Gelu's input read by the Gelu node and others (its gradient): the pre-activation. */
static int gelu_reader(const fz *f, int v) {
    const amp_graph *g = f->g;
    int found = -1;
    for (int i = f->cs[v]; i < f->cs[v + 1]; i++) {
        int ni = f->cl[i];
        if (f->dead[ni] || g->nodes[ni].op != AMP_OP_GELU || g->nodes[ni].n_inputs < 1 || g->nodes[ni].inputs[0] != v)
            continue;
        if (found >= 0 && found != ni) return -1;
        found = ni;
    }
    return found;
}

static amp_status fuse_gemm(fz *f, int *count) {
    amp_graph *g = f->g;
    for (int mi = 0; mi < g->n_nodes; mi++) {
        const amp_node *mm = &g->nodes[mi];
        bool is_gemm = is_op(f, mi, AMP_OP_GEMM, 2), is_matmul = is_op(f, mi, AMP_OP_MAT_MUL, 2);
        if (!is_gemm && !is_matmul) continue;
        int64_t bd[AMP_MAX_RANK], cd[AMP_MAX_RANK];
        int A = mm->inputs[0], B = mm->inputs[1], bias = -1, chain[3] = {mi, -1, -1}, n = 1;
        bool tb = false;
        double alpha = 1;
        if (fixed_dims(g, B, bd) != 2) continue;
        if (is_gemm) {
            if (amp_attr_int(mm, "transA", 0) != 0) continue;
            tb = amp_attr_int(mm, "transB", 0) != 0;
            alpha = amp_attr_float(mm, "alpha", 1.0f);
            if (mm->n_inputs > 2 && mm->inputs[2] >= 0) {
                if (amp_attr_float(mm, "beta", 1.0f) != 1.0f || fixed_dims(g, mm->inputs[2], cd) != 1 ||
                    cd[0] != bd[tb ? 0 : 1])
                    continue;
                bias = mm->inputs[2];
            }
        }
        const int64_t N = bd[tb ? 0 : 1];
        int z = out0(f, mi);
        /* a MatMul's bias: Add(product, bias[N]) reading the product alone */
        if (is_matmul) {
            int ad = only_user(f, z);
            if (is_op(f, ad, AMP_OP_ADD, 2) && g->nodes[ad].n_attrs == 0) {
                int b = other(f, ad, z);
                if (b >= 0 && fixed_dims(g, b, cd) == 1 && cd[0] == N) {
                    bias = b;
                    chain[n++] = ad;
                    z = out0(f, ad);
                }
            }
        }
        /* then an activation: one that reads Z alone, or a Gelu whose gradient reads Z too */
        const char *act = "";
        int an = activation_of(f, z, &act), zout = -1;
        if (an < 0 && f->uses[z] >= 2 && !g->values[z].is_output) {
            an = gelu_reader(f, z);
            if (an >= 0) {
                const char *ap = amp_attr_str(&g->nodes[an], "approximate", "none");
                act = !strcmp(ap, "none") ? "Gelu" : !strcmp(ap, "tanh") ? "GeluTanh" : "";
                if (!act[0]) an = -1;
                else zout = z;
            }
        }
        if (an >= 0) chain[n++] = an;
        if (bias < 0 && an < 0 && is_matmul) continue; /* a plain MatMul gains nothing */
        if (!inputs_before(f, chain, n)) continue;
        int ins[3] = {A, B, bias}, outs[2] = {an >= 0 ? out0(f, an) : z, zout};
        amp_status s = become(f, mi, "FusedGemm", FUSED_DOMAIN, bias >= 0 ? 3 : 2, ins, zout >= 0 ? 2 : 1, outs, -1);
        amp_node *fn = &g->nodes[mi];
        if (s) return s;
        if (!attr_int(g->ctx, fn, "trans_b", tb) || !attr_float(g->ctx, fn, "alpha", alpha) ||
            !attr_str(g->ctx, fn, "activation", act))
            return oom(f);
        for (int i = 1; i < n; i++) f->dead[chain[i]] = true;
        (*count)++;
    }
    return AMP_OK;
}

/* ---- Conv + Relu ----------------------------------------------------------------------------- */

static amp_status fuse_conv(fz *f, int *count) {
    amp_graph *g = f->g;
    for (int ci = 0; ci < g->n_nodes; ci++) {
        if (!is_op(f, ci, AMP_OP_CONV, 2) || g->nodes[ci].n_outputs != 1) continue;
        int r = only_user(f, out0(f, ci));
        if (!is_op(f, r, AMP_OP_RELU, 1) || g->nodes[r].n_outputs != 1) continue;
        int chain[2] = {ci, r};
        if (!inputs_before(f, chain, 2)) continue;
        amp_node *c = &g->nodes[ci];
        int ins[3], nin = c->n_inputs > 2 && c->inputs[2] >= 0 ? 3 : 2, y = out0(f, r);
        memcpy(ins, c->inputs, sizeof(int) * (size_t)nin);
        amp_status s = become(f, ci, "FusedConv", FUSED_DOMAIN, nin, ins, 1, &y, ci);
        if (s) return s;
        if (!attr_str(g->ctx, &g->nodes[ci], "activation", "Relu")) return oom(f);
        f->dead[r] = true;
        (*count)++;
    }
    return AMP_OK;
}

/* ---- Add + LayerNormalization ---------------------------------------------------------------- */

static amp_status fuse_layernorm(fz *f, int *count) {
    amp_graph *g = f->g;
    for (int li = 0; li < g->n_nodes; li++) {
        if (!is_op(f, li, AMP_OP_LAYER_NORM, 2)) continue;
        const amp_node *ln = &g->nodes[li];
        int s_val = ln->inputs[0], ai = g->values[s_val].producer;
        if (!is_op(f, ai, AMP_OP_ADD, 2) || g->nodes[ai].n_attrs || g->nodes[ai].n_inputs != 2) continue;
        int chain[2] = {ai, li};
        if (!inputs_before(f, chain, 2)) continue;
        /* S leaves the node when anything else reads it (the residual stream, LayerNorm's gradient) */
        bool s_out = f->uses[s_val] > 1 || g->values[s_val].is_output;
        int ins[4] = {g->nodes[ai].inputs[0], g->nodes[ai].inputs[1], ln->inputs[1],
                      ln->n_inputs > 2 ? ln->inputs[2] : -1};
        int nin = ins[3] >= 0 ? 4 : 3;
        int outs[4] = {ln->outputs[0], s_out ? s_val : -1, ln->n_outputs > 1 ? ln->outputs[1] : -1,
                       ln->n_outputs > 2 ? ln->outputs[2] : -1};
        int nout = outs[3] >= 0 ? 4 : outs[2] >= 0 ? 3 : s_out ? 2 : 1;
        amp_status s = become(f, ai, "AddLayerNorm", FUSED_DOMAIN, nin, ins, nout, outs, li);
        if (s) return s;
        f->dead[li] = true;
        (*count)++;
    }
    return AMP_OK;
}

/* ---- attention ------------------------------------------------------------------------------- */

/* v = Mul(x, c) with c a scalar constant and v read by `by` alone: x and c, else v itself. */
static int unscale(const fz *f, int v, int by, double *c, int *node) {
    int p = v >= 0 ? f->g->values[v].producer : -1;
    *c = 1;
    *node = -1;
    if (!is_op(f, p, AMP_OP_MUL, 2) || only_user(f, v) != by) return v;
    for (int k = 0; k < 2; k++)
        if (const_scalar(f->g, f->g->nodes[p].inputs[k], c)) {
            *node = p;
            return f->g->nodes[p].inputs[1 - k];
        }
    *c = 1;
    return v;
}

static amp_status fuse_attention(fz *f, int *count) {
    amp_graph *g = f->g;
    for (int m1 = 0; m1 < g->n_nodes; m1++) {
        if (!is_op(f, m1, AMP_OP_MAT_MUL, 2)) continue;
        int chain[9] = {m1}, n = 1, mask = -1, v = out0(f, m1), nx = only_user(f, v);
        double scale = 1, c;
        /* under autocast the softmax computes in FP32 between two Casts: the fused op rounds
         * its probabilities to the 16-bit type as the second Cast did */
        bool widened = false;
        if (plain_cast(f, nx) && amp_attr_int(&g->nodes[nx], "to", 0) == AMP_F32) {
            widened = true;
            chain[n++] = nx;
            v = out0(f, nx);
            nx = only_user(f, v);
        }
        /* the scores scaled by a scalar (Mul or Div), then masked by an Add */
        if ((is_op(f, nx, AMP_OP_MUL, 2) && const_scalar(g, other(f, nx, v), &c)) ||
            (is_op(f, nx, AMP_OP_DIV, 2) && g->nodes[nx].inputs[0] == v && const_scalar(g, g->nodes[nx].inputs[1], &c) &&
             c != 0 && (c = 1 / c, true))) {
            scale *= c;
            chain[n++] = nx;
            v = out0(f, nx);
            nx = only_user(f, v);
        }
        if (!widened && is_op(f, nx, AMP_OP_ADD, 2) && g->nodes[nx].n_attrs == 0 && other(f, nx, v) >= 0) {
            mask = other(f, nx, v);
            chain[n++] = nx;
            v = out0(f, nx);
            nx = only_user(f, v);
        }
        if (!is_op(f, nx, AMP_OP_SOFTMAX, 1) || g->nodes[nx].n_outputs != 1 || amp_node_opset(g, &g->nodes[nx]) < 13 ||
            amp_attr_int(&g->nodes[nx], "axis", -1) != -1)
            continue;
        chain[n++] = nx;
        int p = out0(f, nx), m2 = -1;
        if (widened) {
            int back = only_user(f, p);
            if (!plain_cast(f, back)) continue;
            chain[n++] = back;
            p = out0(f, back);
        }
        /* P feeds one MatMul(P, V) as its left operand; others may read P too (SoftmaxGrad) */
        int n_mm = 0; /* a node reading P twice is listed twice, side by side */
        for (int i = f->cs[p]; i < f->cs[p + 1]; i++) {
            int ni = f->cl[i];
            if (ni != m2 && is_op(f, ni, AMP_OP_MAT_MUL, 2) && g->nodes[ni].inputs[0] == p) {
                m2 = ni;
                n_mm++;
            }
        }
        if (n_mm != 1) continue;
        bool p_out = f->uses[p] > 1 || g->values[p].is_output;
        if (p_out && widened) continue;
        chain[n++] = m2;
        /* scalings of Q and K^T read by the product alone fold into the scale */
        double cq, ck;
        int qn, kn, q = unscale(f, g->nodes[m1].inputs[0], m1, &cq, &qn), k = unscale(f, g->nodes[m1].inputs[1], m1, &ck, &kn);
        if (qn >= 0) chain[n++] = qn;
        if (kn >= 0) chain[n++] = kn;
        /* the chain starts at its earliest node */
        int first = 0;
        for (int i = 1; i < n; i++)
            if (chain[i] < chain[first]) first = i;
        int t = chain[0];
        chain[0] = chain[first];
        chain[first] = t;
        if (!inputs_before(f, chain, n)) continue;
        scale *= cq * ck;
        int ins[4] = {q, k, g->nodes[m2].inputs[1], mask}, outs[2] = {out0(f, m2), p_out ? p : -1};
        amp_status s = become(f, chain[0], "Attention", FUSED_DOMAIN, mask >= 0 ? 4 : 3, ins, p_out ? 2 : 1, outs, -1);
        if (s) return s;
        if (!attr_float(g->ctx, &g->nodes[chain[0]], "scale", scale) || !attr_int(g->ctx, &g->nodes[chain[0]], "trans_k", 1))
            return oom(f);
        for (int i = 1; i < n; i++) f->dead[chain[i]] = true;
        (*count)++;
    }
    return AMP_OK;
}

/* ---- casts ----------------------------------------------------------------------------------- */

/* The casts in[0..n) (all plain, one `to` and flags) become one CastMulti at node in[0]. */
static amp_status cast_group(fz *f, const int *in, int n) {
    amp_graph *g = f->g;
    int *ins = amp_alloc(g->ctx, sizeof(int) * (size_t)n), *outs = amp_alloc(g->ctx, sizeof(int) * (size_t)n);
    if (!ins || !outs) {
        amp_dealloc(g->ctx, ins);
        amp_dealloc(g->ctx, outs);
        return oom(f);
    }
    for (int i = 0; i < n; i++) {
        ins[i] = g->nodes[in[i]].inputs[0];
        outs[i] = out0(f, in[i]);
    }
    amp_status s = become(f, in[0], "CastMulti", FUSED_DOMAIN, n, ins, n, outs, in[0]);
    amp_dealloc(g->ctx, ins);
    amp_dealloc(g->ctx, outs);
    if (s) return s;
    for (int i = 1; i < n; i++) f->dead[in[i]] = true;
    return AMP_OK;
}

/* The first live node (in order) that reads v; -1 when none or when v is a graph output. */
static int first_user(const fz *f, int v) {
    if (v < 0 || f->g->values[v].is_output) return -1;
    for (int i = f->cs[v]; i < f->cs[v + 1]; i++)
        if (!f->dead[f->cl[i]]) return f->cl[i];
    return -1;
}

static amp_status fuse_casts(fz *f, int *count) {
    amp_graph *g = f->g;
    int *grp = amp_alloc(g->ctx, sizeof(int) * ((size_t)g->n_nodes + 1));
    bool *taken = amp_calloc(g->ctx, (size_t)g->n_nodes + 1, sizeof(bool));
    if (!grp || !taken) {
        amp_dealloc(g->ctx, grp);
        amp_dealloc(g->ctx, taken);
        return oom(f);
    }
    amp_status s = AMP_OK;
    /* 1. casts of graph inputs and initializers (a step's weights): one group per dtype and
     * flags, where the first of them stood */
    for (int c0 = 0; c0 < g->n_nodes && !s; c0++) {
        if (taken[c0] || !plain_cast(f, c0) || g->values[g->nodes[c0].inputs[0]].producer >= 0) continue;
        const amp_node *a = &g->nodes[c0];
        int64_t to = amp_attr_int(a, "to", 0);
        int n = 0;
        for (int ci = c0; ci < g->n_nodes; ci++) {
            const amp_node *b = &g->nodes[ci];
            if (taken[ci] || !plain_cast(f, ci) || g->values[b->inputs[0]].producer >= 0) continue;
            if (amp_attr_int(b, "to", 0) == to && b->flags == a->flags) grp[n++] = ci;
        }
        for (int i = 0; i < n; i++) taken[grp[i]] = true;
        if (n >= 2 && !(s = cast_group(f, grp, n))) (*count)++;
    }
    /* 2. casts of computed values (a step's gradients, cast back for the optimizer), in order:
     * a cast joins the group unless it depends on what a member's readers make; the group
     * stands where its newest member stood (every member's input is made by then, and no
     * reader of a member is needed before it) */
    bool *below = amp_calloc(g->ctx, (size_t)g->n_nodes + 1, sizeof(bool));
    int *stack = amp_alloc(g->ctx, sizeof(int) * ((size_t)g->n_nodes + 1));
    if (!below || !stack) s = oom(f);
    for (int c0 = 0; c0 < g->n_nodes && !s; c0++) {
        if (taken[c0] || !plain_cast(f, c0) || first_user(f, out0(f, c0)) < 0) continue;
        const amp_node *a = &g->nodes[c0];
        int64_t to = amp_attr_int(a, "to", 0);
        int n = 0;
        memset(below, 0, sizeof(bool) * (size_t)g->n_nodes);
        for (int ci = c0; ci < g->n_nodes; ci++) {
            const amp_node *b = &g->nodes[ci];
            if (below[ci] || taken[ci] || !plain_cast(f, ci) || amp_attr_int(b, "to", 0) != to || b->flags != a->flags ||
                first_user(f, out0(f, ci)) < 0)
                continue;
            grp[n++] = ci;
            taken[ci] = true;
            /* everything downstream of this cast's readers may not join */
            int top = 0, v0 = out0(f, ci);
            for (int i = f->cs[v0]; i < f->cs[v0 + 1]; i++)
                if (!below[f->cl[i]]) {
                    below[f->cl[i]] = true;
                    stack[top++] = f->cl[i];
                }
            while (top > 0) {
                const amp_node *u = &g->nodes[stack[--top]];
                for (int o = 0; o < u->n_outputs; o++) {
                    int v = u->outputs[o];
                    for (int i = v >= 0 ? f->cs[v] : 0; v >= 0 && i < f->cs[v + 1]; i++)
                        if (!below[f->cl[i]]) {
                            below[f->cl[i]] = true;
                            stack[top++] = f->cl[i];
                        }
                }
            }
        }
        if (n < 2) continue;
        int t = grp[0];
        grp[0] = grp[n - 1];
        grp[n - 1] = t;
        if (!(s = cast_group(f, grp, n))) (*count)++;
    }
    amp_dealloc(g->ctx, below);
    amp_dealloc(g->ctx, stack);
    amp_dealloc(g->ctx, grp);
    amp_dealloc(g->ctx, taken);
    return s;
}

/* ---- the pass -------------------------------------------------------------------------------- */

typedef amp_status (*fuse_fn)(fz *f, int *count);

amp_status amp_pass_fuse(amp_graph *g, unsigned which, amp_fuse_report *r) {
    memset(r, 0, sizeof *r);
    static const struct {
        unsigned bit;
        fuse_fn fn;
        size_t at;
    } steps[] = {{AMP_FUSE_GELU, fuse_gelu, offsetof(amp_fuse_report, gelu)},
                 {AMP_FUSE_GEMM, fuse_gemm, offsetof(amp_fuse_report, gemm)},
                 {AMP_FUSE_CONV, fuse_conv, offsetof(amp_fuse_report, conv)},
                 {AMP_FUSE_LAYERNORM, fuse_layernorm, offsetof(amp_fuse_report, layernorm)},
                 {AMP_FUSE_ATTENTION, fuse_attention, offsetof(amp_fuse_report, attention)},
                 {AMP_FUSE_CASTS, fuse_casts, offsetof(amp_fuse_report, casts)}};
    fz f = {.g = g};
    amp_status s = AMP_OK;
    for (size_t i = 0; i < sizeof steps / sizeof steps[0] && !s; i++) {
        if (!(which & steps[i].bit)) continue;
        int *count = (int *)((char *)r + steps[i].at);
        if ((s = fz_index(&f))) break;
        s = steps[i].fn(&f, count);
        if (!s && *count) s = amp_edit_remove_nodes(g, f.dead);
    }
    fz_free(&f);
    return s;
}

/* Autocast: choose FP16/BF16 or FP32 for every node of an FP32 graph and insert the casts.
 *
 * Colouring follows TensorFlow's auto-mixed-precision over ONNX op classes (AUTOCAST.md):
 *  1. allow nodes (MatMul, Gemm, Conv, ...) are 16-bit; deny nodes (Exp, Softmax, Reduce*, ...)
 *     and nodes blocked by the caller or by calibration ranges are FP32 (a node named in
 *     allow_nodes is an allow node, whatever its class, its ranges checked);
 *  2. deny spreads forward through infer and clear nodes that lead to a deny or infer node;
 *  3. infer and clear nodes between two 16-bit nodes become 16-bit;
 *  4. an infer or clear node whose every float input comes from a 16-bit node (or a constant)
 *     becomes 16-bit, and 16-bit floods through connected clear nodes, until nothing changes;
 *  5. what is left is FP32.
 * Every node left in FP32 keeps the reason it got there (why[], with the value and the limit
 * that decided it), which the caller's explain callback receives once the casts are in.
 * Then every value gets one Cast per dtype its consumers need, placed right after its producer;
 * initializers and constants are converted offline (duplicated when consumers are mixed),
 * clamped to the 16-bit range without flushing tiny values to zero. Nodes outside the classes
 * (integer, bool, f64, shapes, unknown ops) see exactly the dtypes they saw before.
 *
 * This file is the colouring and the casts only: the type checks before and after, LayerNorm
 * fusion and cast cleanup run around it in the order passes/pipeline.c writes down. */
#include <math.h>
#include <string.h>

#include "base/half.h"
#include "passes/passes.h"

enum { K_NONE = 0, K_ALLOW, K_DENY, K_INFER, K_CLEAR };
enum { C_FIXED = 0, C_UNSET, C_16, C_32 };

/* Ops outside amprt's op table that the pass still classifies: it converts models for other
 * runtimes too (tests/autocast's dtype_attr_random holds a RandomNormalLike). Each with its
 * class and the first opset whose ONNX schema gives it a bfloat16 type (0: none yet), as the op
 * table holds them for its own ops (ir/ops.def). */
typedef struct outside_class {
    const char *op;
    int kind;
    int bf16_opset;
} outside_class;

static const outside_class outside[] = {
    {"LpNormalization", K_DENY, 22}, {"NonMaxSuppression", K_DENY, 0}, {"RandomNormal", K_DENY, 22},
    {"RandomUniform", K_DENY, 22},   {"RandomNormalLike", K_DENY, 22}, {"RandomUniformLike", K_DENY, 22},
    {"Multinomial", K_DENY, 22},     {"Bernoulli", K_DENY, 15},        {"DFT", K_DENY, 17},
    {"LpPool", K_DENY, 22},          {"GlobalLpPool", K_DENY, 22},     {"Compress", K_CLEAR, 28},
    {"Swish", K_INFER, 24},
};

static const outside_class *outside_op(const amp_node *n) {
    if (!amp_domain_is_default(n->domain) || n->op != AMP_OP_UNKNOWN) return NULL;
    for (size_t i = 0; i < sizeof outside / sizeof outside[0]; i++)
        if (strcmp(outside[i].op, n->op_type) == 0) return &outside[i];
    return NULL;
}

/* Can node n hold lo in a valid ONNX file at the graph's opset? */
static bool onnx_allows(const amp_graph *g, const amp_node *n, amp_dtype lo) {
    if (lo == AMP_F16) return true; /* float16 is in every float op's types */
    const outside_class *e = outside_op(n);
    int first = e ? e->bf16_opset : n->op != AMP_OP_UNKNOWN ? amp_op_table[n->op].bf16_opset : 0;
    return first > 0 && g->opset >= first;
}

static int op_kind(const amp_node *n) {
    if (!amp_domain_is_default(n->domain)) return K_NONE;
    if (n->op != AMP_OP_UNKNOWN) {
        switch (amp_op_table[n->op].cast_class) {
        case AMP_CLASS_ALLOW: return K_ALLOW;
        case AMP_CLASS_DENY: return K_DENY;
        case AMP_CLASS_INFER: return K_INFER;
        case AMP_CLASS_CLEAR: return K_CLEAR;
        /* the per-input rules live in the type rules (which inputs share T): BatchNormalization
         * at opset 15+ and Resize keep their statistics, roi and scales in FP32 */
        case AMP_CLASS_PERINPUT: return K_INFER;
        default: return K_NONE;
        }
    }
    const outside_class *e = outside_op(n);
    return e ? e->kind : K_NONE;
}

typedef struct ac {
    amp_graph *g;
    amp_context *ctx;
    amp_dtype lo;            /* the 16-bit type */
    int round;
    int nn, nv;
    amp_type_rule *rules;
    unsigned char *kind, *col;
    amp_dtype *orig;         /* dtype of each value before the pass */
    int *cons_off, *cons;    /* consumers per value (node ids, CSR) */
    unsigned char *tmp_a, *tmp_b;
    bool all16;              /* every float node in 16 bits (pure 16-bit training) */
    unsigned char *why;      /* per node coloured FP32: its amp_autocast_reason */
    double *why_value, *why_limit; /* per node: the decision's value and limit (0: none) */
} ac;

/* The node's T before the pass (dtype of its first T input), or undefined. */
static amp_dtype node_t(const ac *a, int ni) {
    const amp_node *n = &a->g->nodes[ni];
    for (int k = 0; k < n->n_inputs && k < 32; k++)
        if ((a->rules[ni].tin >> k & 1) && n->inputs[k] >= 0) return a->orig[n->inputs[k]];
    return AMP_UNDEFINED;
}

static bool is_const_value(const amp_graph *g, int v) {
    const amp_value *val = &g->values[v];
    if (val->init && !val->is_input) return true;
    return val->producer >= 0 && g->nodes[val->producer].op == AMP_OP_CONSTANT;
}

/* Producer node of v when v is one of its T outputs and the producer is coloured; else -1. */
static int t_producer(const ac *a, int v) {
    int p = a->g->values[v].producer;
    if (p < 0 || a->col[p] == C_FIXED) return -1;
    int slot = a->g->values[v].producer_slot;
    return (a->rules[p].tout >> slot & 1) ? p : -1;
}

/* Apply f to every coloured consumer c of a T output of node ni (through a T input of c). */
#define FOR_SUCC(a, ni, c, body)                                                                  \
    do {                                                                                          \
        const amp_node *n_ = &(a)->g->nodes[ni];                                                  \
        for (int ko_ = 0; ko_ < n_->n_outputs; ko_++) {                                           \
            int v_ = n_->outputs[ko_];                                                            \
            if (v_ < 0 || !((a)->rules[ni].tout >> ko_ & 1)) continue;                            \
            for (int e_ = (a)->cons_off[v_]; e_ < (a)->cons_off[v_ + 1]; e_++) {                  \
                int c = (a)->cons[e_];                                                            \
                if ((a)->col[c] == C_FIXED) continue;                                             \
                const amp_node *cn_ = &(a)->g->nodes[c];                                          \
                bool tin_ = false;                                                                \
                for (int ki_ = 0; ki_ < cn_->n_inputs && ki_ < 32; ki_++)                         \
                    if (cn_->inputs[ki_] == v_ && ((a)->rules[c].tin >> ki_ & 1)) tin_ = true;    \
                if (!tin_) continue;                                                              \
                body;                                                                             \
            }                                                                                     \
        }                                                                                         \
    } while (0)

#define FOR_PRED(a, ni, p, body)                                                                  \
    do {                                                                                          \
        const amp_node *n_ = &(a)->g->nodes[ni];                                                  \
        for (int ki_ = 0; ki_ < n_->n_inputs && ki_ < 32; ki_++) {                                \
            int v_ = n_->inputs[ki_];                                                             \
            if (v_ < 0 || !((a)->rules[ni].tin >> ki_ & 1)) continue;                             \
            int p = t_producer(a, v_);                                                            \
            if (p < 0) continue;                                                                  \
            body;                                                                                 \
        }                                                                                         \
    } while (0)

static bool in_list(const char *s, const char *const *list, int n) {
    for (int i = 0; s && i < n; i++)
        if (list[i] && strcmp(list[i], s) == 0) return true;
    return false;
}

/* The largest finite |x|, as calibration records it: +-inf and NaN are the same in 16 bits (a
 * -inf mask stays -inf), only finite values beyond the range change. */
static double f32_absmax(const amp_tensor *t) {
    double m = 0;
    const float *x = t->data;
    for (int64_t i = 0; i < t->numel; i++) {
        double v = fabs((double)x[i]);
        if (v > m && isfinite(v)) m = v;
    }
    return m;
}

/* ---- colouring ------------------------------------------------------------------------------ */

static void keep32(ac *a, int ni, amp_autocast_reason why, double value, double limit) {
    a->kind[ni] = K_DENY;
    a->why[ni] = (unsigned char)why;
    a->why_value[ni] = value;
    a->why_limit[ni] = limit;
}

/* The largest max |x| beyond limit among node ni's float inputs and outputs (calibration, and
 * constants it reads as T, which need no calibration); 0 when none exceeds it. */
static double over_range(const ac *a, int ni, const double *absmax, double limit) {
    const amp_graph *g = a->g;
    const amp_node *n = &g->nodes[ni];
    double seen = 0;
    for (int i = 0; i < n->n_inputs; i++) {
        int v = n->inputs[i];
        if (v < 0 || a->orig[v] != AMP_F32) continue;
        if (absmax && absmax[v] > limit && absmax[v] > seen) seen = absmax[v];
        /* constants are known without calibration: a node reading one beyond the limit (an
         * attention mask of -1e9, a large scale) stays FP32, as ModelOpt does */
        const amp_tensor *ct = amp_edit_const_tensor(g, v);
        if (ct && ct->dtype == AMP_F32 && (a->rules[ni].tin >> i & 1)) {
            double m = f32_absmax(ct);
            if (m > limit && m > seen) seen = m;
        }
    }
    for (int i = 0; absmax && i < n->n_outputs; i++) {
        int v = n->outputs[i];
        if (v >= 0 && a->orig[v] == AMP_F32 && absmax[v] > limit && absmax[v] > seen) seen = absmax[v];
    }
    return seen;
}

/* The smallest nonzero max |x| below limit among node ni's computed float inputs and outputs;
 * 0 when none. Zeros are exact in 16 bits; constants are left out: they are converted offline
 * without flushing (an eps of 1e-12 under Sqrt keeps its meaning), and a node that makes tiny
 * values out of them shows it in its output. */
static double under_range(const ac *a, int ni, const double *absmax, double limit) {
    const amp_graph *g = a->g;
    const amp_node *n = &g->nodes[ni];
    double seen = 0;
    for (int side = 0; side < 2; side++) {
        int nv = side ? n->n_outputs : n->n_inputs;
        const int *vs = side ? n->outputs : n->inputs;
        for (int i = 0; i < nv; i++) {
            int v = vs[i];
            if (v < 0 || a->orig[v] != AMP_F32 || (!side && is_const_value(g, v))) continue;
            double m = absmax[v];
            if (m > 0 && m < limit && (seen == 0 || m < seen)) seen = m;
        }
    }
    return seen;
}

static void colour(ac *a, const amp_autocast_options *o, const double *absmax, double limit, double ulimit,
                   amp_autocast_report *r) {
    amp_graph *g = a->g;
    int nn = a->nn;
    if (nn <= 0) return;
    for (int ni = 0; ni < nn; ni++) {
        amp_node *n = &g->nodes[ni];
        int k = op_kind(n);
        a->kind[ni] = (unsigned char)k;
        a->col[ni] = C_FIXED;
        if (k == K_NONE || !a->rules[ni].known || node_t(a, ni) != AMP_F32) continue;
        if (!o->allow_nonstandard_types && !onnx_allows(g, n, a->lo)) {
            /* the 16-bit type would not be valid ONNX here (a deny op is FP32 anyway) */
            keep32(a, ni, k == K_DENY ? AMP_REASON_DENY_CLASS : AMP_REASON_OPSET, 0, 0);
            if (k != K_DENY) r->nodes_opset_kept++;
        } else if (in_list(n->op_type, o->block_ops, o->n_block_ops) || in_list(n->name, o->block_nodes, o->n_block_nodes)) {
            keep32(a, ni, AMP_REASON_BLOCKED, 0, 0);
            r->nodes_blocked++;
        } else if (k == K_DENY && !in_list(n->name, o->allow_nodes, o->n_allow_nodes)) {
            keep32(a, ni, AMP_REASON_DENY_CLASS, 0, 0);
        } else {
            /* a node the caller allows is 16-bit, as an allow node, whatever its class and its
             * neighbours, unless its ranges say otherwise */
            if (k != K_ALLOW && in_list(n->name, o->allow_nodes, o->n_allow_nodes)) a->kind[ni] = K_ALLOW;
            double hot = over_range(a, ni, absmax, limit);
            double tiny = absmax && ulimit > 0 ? under_range(a, ni, absmax, ulimit) : 0;
            if (hot > 0) {
                keep32(a, ni, AMP_REASON_RANGE, hot, limit);
                r->nodes_range_kept++;
            } else if (tiny > 0) {
                keep32(a, ni, AMP_REASON_UNDERFLOW, tiny, ulimit);
                r->nodes_underflow_kept++;
            }
        }
        a->col[ni] = a->kind[ni] == K_ALLOW ? C_16 : a->kind[ni] == K_DENY ? C_32 : C_UNSET;
        if (a->all16) a->col[ni] = C_16;
    }
    unsigned char *fa = a->tmp_a, *fb = a->tmp_b;
#define FLOATING(x) (a->col[x] == C_UNSET && (a->kind[x] == K_INFER || a->kind[x] == K_CLEAR))

    /* 2. deny forward through infer/clear nodes that lead to a deny or infer node */
    memset(fb, 0, (size_t)nn);
    for (int ni = nn - 1; ni >= 0; ni--) {
        if (!FLOATING(ni)) continue;
        bool reach = false;
        FOR_SUCC(a, ni, c, {
            if (a->col[c] == C_32 || (FLOATING(c) && (a->kind[c] == K_INFER || fb[c]))) reach = true;
        });
        fb[ni] = reach;
    }
    memset(fa, 0, (size_t)nn);
    for (int ni = 0; ni < nn; ni++) {
        if (!FLOATING(ni)) continue;
        bool from_deny = false;
        FOR_PRED(a, ni, p, {
            if (a->col[p] == C_32 || fa[p]) from_deny = true;
        });
        fa[ni] = from_deny;
    }
    for (int ni = 0; ni < nn; ni++)
        if (FLOATING(ni) && fa[ni] && (a->kind[ni] == K_INFER || fb[ni])) {
            a->col[ni] = C_32;
            a->why[ni] = AMP_REASON_NEIGHBOURS;
        }

    /* 3. between two 16-bit nodes */
    memset(fa, 0, (size_t)nn);
    memset(fb, 0, (size_t)nn);
    for (int ni = 0; ni < nn; ni++) {
        if (!FLOATING(ni)) continue;
        FOR_PRED(a, ni, p, {
            if (a->col[p] == C_16 || (FLOATING(p) && fa[p])) fa[ni] = 1;
        });
    }
    for (int ni = nn - 1; ni >= 0; ni--) {
        if (!FLOATING(ni)) continue;
        FOR_SUCC(a, ni, c, {
            if (a->col[c] == C_16 || (FLOATING(c) && fb[c])) fb[ni] = 1;
        });
    }
    for (int ni = 0; ni < nn; ni++)
        if (FLOATING(ni) && fa[ni] && fb[ni]) a->col[ni] = C_16;

    /* 4. follow 16-bit producers; flood through clear nodes */
    for (bool changed = true; changed;) {
        changed = false;
        for (int ni = 0; ni < nn; ni++) {
            if (!FLOATING(ni)) continue;
            const amp_node *n = &g->nodes[ni];
            int n16 = 0, nother = 0;
            for (int k = 0; k < n->n_inputs && k < 32; k++) {
                int v = n->inputs[k];
                if (v < 0 || !(a->rules[ni].tin >> k & 1)) continue;
                int p = t_producer(a, v);
                if (p >= 0 && a->col[p] == C_16) n16++;
                else if (!is_const_value(g, v)) nother++;
            }
            bool go = n16 > 0 && nother == 0;
            if (!go && a->kind[ni] == K_CLEAR) {
                FOR_PRED(a, ni, p, {
                    if (a->col[p] == C_16) go = true;
                });
                FOR_SUCC(a, ni, c, {
                    if (a->col[c] == C_16) go = true;
                });
            }
            if (go) {
                a->col[ni] = C_16;
                changed = true;
            }
        }
    }
    /* no 16-bit producer or consumer reached them: they compute in the FP32 of their neighbours */
    for (int ni = 0; ni < nn; ni++)
        if (a->col[ni] == C_UNSET) {
            a->col[ni] = C_32;
            a->why[ni] = AMP_REASON_NEIGHBOURS;
        }
#undef FLOATING
}

/* ---- conversion of constants ---------------------------------------------------------------- */

/* Convert an f32 tensor to lo: clamp to the finite range, keep tiny nonzero values at the
 * smallest subnormal, keep inf and NaN. Counts clamped elements. */
static amp_status convert_tensor(ac *a, const amp_tensor *src, amp_tensor **out, int *clamped) {
    amp_tensor *t = NULL;
    amp_status s = amp_tensor_create(a->ctx, a->lo, src->rank, src->dims, &t);
    if (s) return s;
    const float *x = src->data;
    uint16_t *y = t->data;
    float maxf = a->lo == AMP_F16 ? 65504.0f : 3.3895313892515355e38f;
    float minsub = a->lo == AMP_F16 ? 5.9604644775390625e-8f : 9.183549615799121e-41f;
    for (int64_t i = 0; i < src->numel; i++) {
        float v = x[i];
        if (isfinite(v)) {
            if (v > maxf || v < -maxf) {
                v = v > 0 ? maxf : -maxf;
                (*clamped)++;
            } else if (v != 0.0f && fabsf(v) < minsub) {
                v = v > 0 ? minsub : -minsub;
                (*clamped)++;
            }
        }
        /* |v| in [minsub, maxf]: neither rounding mode can give zero or infinity */
        y[i] = a->lo == AMP_F16 ? amp_f32_to_f16_mode(v, a->round) : amp_f32_to_bf16_mode(v, a->round);
    }
    *out = t;
    return AMP_OK;
}

/* ---- cast insertion ------------------------------------------------------------------------- */

typedef struct pending_node {
    int after;       /* emit after this original node (-1: at the start) */
    amp_node node;
} pending_node;

typedef struct builder {
    pending_node *v;
    int n, cap;
} builder;

static amp_status add_attr_int(amp_context *ctx, amp_node *n, const char *name, int64_t v) {
    amp_attr *at = amp_realloc(ctx, n->attrs, sizeof(amp_attr) * (size_t)(n->n_attrs + 1));
    if (!at) return AMP_ERR_NO_MEMORY;
    n->attrs = at;
    amp_attr *x = &at[n->n_attrs];
    memset(x, 0, sizeof *x);
    x->name = amp_strdup(ctx, name);
    if (!x->name) return AMP_ERR_NO_MEMORY;
    x->kind = AMP_ATTR_INT;
    x->i = v;
    n->n_attrs++;
    return AMP_OK;
}

static amp_status new_node(ac *a, builder *b, int after, const char *op, const char *name, int in, int out,
                           amp_node **made) {
    amp_context *ctx = a->ctx;
    if (amp_grow(ctx, (void **)&b->v, &b->cap, b->n + 1, sizeof(pending_node))) return AMP_ERR_NO_MEMORY;
    pending_node *pn = &b->v[b->n];
    memset(pn, 0, sizeof *pn);
    pn->after = after;
    amp_node *n = &pn->node;
    n->name = amp_strdup(ctx, name);
    n->op_type = amp_strdup(ctx, op);
    n->domain = amp_strdup(ctx, "");
    n->inputs = amp_alloc(ctx, sizeof(int));
    n->outputs = amp_alloc(ctx, sizeof(int));
    if (!n->name || !n->op_type || !n->domain || !n->inputs || !n->outputs) {
        amp_node_free(ctx, n);
        return AMP_ERR_NO_MEMORY;
    }
    n->op = amp_op_lookup(op, "");
    n->n_inputs = in >= 0 ? 1 : 0;
    n->inputs[0] = in;
    n->n_outputs = 1;
    n->outputs[0] = out;
    n->flags = AMP_NODE_INSERTED;
    b->n++;
    *made = n;
    return AMP_OK;
}

static void copy_shape(amp_value *dst, const amp_value *src) {
    dst->rank = src->rank;
    memcpy(dst->dims, src->dims, sizeof dst->dims);
    dst->declared = src->declared;
}

/* What dtype consumer node c needs at input slot k, given the colouring. */
static amp_dtype need_at(const ac *a, int c, int k, amp_dtype have) {
    int v = a->g->nodes[c].inputs[k];
    if (a->col[c] != C_FIXED && (a->rules[c].tin >> k & 1)) return a->col[c] == C_16 ? a->lo : AMP_F32;
    if (a->col[c] == C_FIXED && k < 32 && (a->rules[c].agnostic >> k & 1)) return have;
    return a->orig[v];
}

static amp_status insert_casts(ac *a, const amp_autocast_options *o, amp_autocast_report *r) {
    amp_graph *g = a->g;
    amp_context *ctx = a->ctx;
    amp_status s = AMP_OK;
    builder b = {0};
    amp_node *nodes = NULL;
    int nv0 = g->n_values;
    const char *suffix16 = a->lo == AMP_F16 ? "_fp16" : "_bf16";

    /* dtypes produced by coloured nodes */
    for (int ni = 0; ni < a->nn; ni++) {
        if (a->col[ni] != C_16) continue;
        const amp_node *n = &g->nodes[ni];
        for (int k = 0; k < n->n_outputs; k++)
            if (n->outputs[k] >= 0 && (a->rules[ni].tout >> k & 1) && a->orig[n->outputs[k]] == AMP_F32)
                g->values[n->outputs[k]].dtype = a->lo;
    }
    /* graph inputs change type unless asked to keep them */
    if (o->io_16bit)
        for (int i = 0; i < g->n_inputs; i++) {
            amp_value *val = &g->values[g->inputs[i]];
            if (val->is_input && val->dtype == AMP_F32) {
                /* an input that is also an initializer keeps its default in FP32 storage only
                 * when it stays FP32 */
                if (val->init) continue;
                val->dtype = a->lo;
            }
        }

    for (int v = 0; v < nv0; v++) {
        amp_value *val = &g->values[v];
        if (a->orig[v] != AMP_F32) continue;
        amp_dtype have = val->dtype;
        bool out_v = val->is_output;
        amp_dtype out_need = AMP_UNDEFINED;
        /* an initializer or input that is also an output keeps its type */
        if (out_v && val->producer >= 0) out_need = o->io_16bit ? a->lo : AMP_F32;
        if (out_v && val->producer < 0) out_need = have;
        /* which dtypes do consumers need? */
        bool need16 = false, need32 = false;
        for (int e = a->cons_off[v]; e < a->cons_off[v + 1]; e++) {
            int c = a->cons[e];
            const amp_node *cn = &g->nodes[c];
            for (int k = 0; k < cn->n_inputs && k < 32; k++) {
                if (cn->inputs[k] != v) continue;
                amp_dtype d = need_at(a, c, k, have);
                if (d == a->lo) need16 = true;
                else if (d == AMP_F32) need32 = true;
            }
        }
        if (out_need == a->lo) need16 = true;
        if (out_need == AMP_F32) need32 = true;

        /* constants are converted offline instead of cast at run time */
        bool is_init = val->init && !val->is_input;
        int cnode = val->producer >= 0 && g->nodes[val->producer].op == AMP_OP_CONSTANT ? val->producer : -1;
        const amp_tensor *ct = NULL;
        if (cnode >= 0) ct = amp_attr_tensor(&g->nodes[cnode], "value");
        if ((is_init || (cnode >= 0 && ct && ct->dtype == AMP_F32)) && need16 && !out_v) {
            amp_tensor *conv = NULL;
            s = convert_tensor(a, is_init ? val->init : ct, &conv, &r->values_clamped);
            if (s) goto fail;
            if (!need32) {
                if (is_init) {
                    amp_tensor_destroy(val->init);
                    val->init = conv;
                    r->inits_converted++;
                } else {
                    amp_attr *at = (amp_attr *)amp_node_attr(&g->nodes[cnode], "value");
                    amp_tensor_destroy(at->t);
                    at->t = conv;
                }
                val->dtype = a->lo;
                continue;
            }
            int nvid = amp_edit_new_value(g, val->name, suffix16);
            if (nvid < 0) {
                amp_tensor_destroy(conv);
                s = AMP_ERR_NO_MEMORY;
                goto fail;
            }
            val = &g->values[v];
            amp_value *nval = &g->values[nvid];
            copy_shape(nval, val);
            nval->declared = false;
            nval->dtype = a->lo;
            if (is_init) {
                nval->init = conv;
                if (amp_grow(ctx, (void **)&g->inits, &(int){g->n_inits}, g->n_inits + 1, sizeof(int))) {
                    s = AMP_ERR_NO_MEMORY;
                    goto fail;
                }
                g->inits[g->n_inits++] = nvid;
                r->inits_duplicated++;
            } else {
                amp_node *cn;
                s = new_node(a, &b, cnode, "Constant", nval->name, -1, nvid, &cn);
                if (s) {
                    amp_tensor_destroy(conv);
                    goto fail;
                }
                cn->n_inputs = 0;
                amp_attr *at = amp_calloc(ctx, 1, sizeof(amp_attr));
                if (!at || !(at->name = amp_strdup(ctx, "value"))) {
                    amp_dealloc(ctx, at);
                    amp_tensor_destroy(conv);
                    s = AMP_ERR_NO_MEMORY;
                    goto fail;
                }
                at->kind = AMP_ATTR_TENSOR;
                at->t = conv;
                cn->attrs = at;
                cn->n_attrs = 1;
            }
            for (int e = a->cons_off[v]; e < a->cons_off[v + 1]; e++) {
                amp_node *cn = &g->nodes[a->cons[e]];
                for (int k = 0; k < cn->n_inputs && k < 32; k++)
                    if (cn->inputs[k] == v && need_at(a, a->cons[e], k, AMP_F32) == a->lo) cn->inputs[k] = nvid;
            }
            continue;
        }

        /* run-time casts: one per dtype that differs from what is produced */
        amp_dtype want[2] = {a->lo, AMP_F32};
        bool wanted[2] = {need16, need32};
        /* a graph output that must change type: the producer writes a renamed value and the
         * cast writes the output's name */
        int phys = v;
        if (out_v && out_need != have) {
            int nvid = amp_edit_new_value(g, val->name, have == a->lo ? suffix16 : "_fp32");
            if (nvid < 0) {
                s = AMP_ERR_NO_MEMORY;
                goto fail;
            }
            val = &g->values[v];
            amp_value *nval = &g->values[nvid];
            copy_shape(nval, val);
            nval->declared = false;
            nval->dtype = have;
            g->nodes[val->producer].outputs[val->producer_slot] = nvid;
            for (int e = a->cons_off[v]; e < a->cons_off[v + 1]; e++) {
                int c = a->cons[e];
                amp_node *cn = &g->nodes[c];
                for (int k = 0; k < cn->n_inputs && k < 32; k++)
                    if (cn->inputs[k] == v && need_at(a, c, k, have) != out_need) cn->inputs[k] = nvid;
            }
            amp_node *cn;
            s = new_node(a, &b, val->producer, "Cast", val->name, nvid, v, &cn);
            if (s) goto fail;
            s = add_attr_int(ctx, cn, "to", out_need);
            if (s) goto fail;
            if (a->round == AMP_ROUND_TOWARD_ZERO && out_need == a->lo) cn->flags |= AMP_NODE_CAST_RTZ;
            r->casts_inserted++;
            val->dtype = out_need;
            phys = nvid;
            for (int w = 0; w < 2; w++)
                if (want[w] == out_need) wanted[w] = false; /* consumers needing it read v */
        }
        for (int w = 0; w < 2; w++) {
            if (!wanted[w] || want[w] == have) continue;
            int nvid = amp_edit_new_value(g, g->values[v].name, want[w] == a->lo ? suffix16 : "_fp32");
            if (nvid < 0) {
                s = AMP_ERR_NO_MEMORY;
                goto fail;
            }
            val = &g->values[v];
            amp_value *nval = &g->values[nvid];
            copy_shape(nval, val);
            nval->dtype = want[w];
            amp_node *cn;
            s = new_node(a, &b, val->producer, "Cast", nval->name, phys, nvid, &cn);
            if (s) goto fail;
            s = add_attr_int(ctx, cn, "to", want[w]);
            if (s) goto fail;
            if (a->round == AMP_ROUND_TOWARD_ZERO && want[w] == a->lo) cn->flags |= AMP_NODE_CAST_RTZ;
            r->casts_inserted++;
            for (int e = a->cons_off[v]; e < a->cons_off[v + 1]; e++) {
                int c = a->cons[e];
                amp_node *cnn = &g->nodes[c];
                for (int k = 0; k < cnn->n_inputs && k < 32; k++) {
                    if (cnn->inputs[k] != v && cnn->inputs[k] != phys) continue;
                    if (need_at(a, c, k, have) == want[w]) cnn->inputs[k] = nvid;
                }
            }
        }
    }

    /* emit: pending nodes with after == -1, then each node followed by its pending nodes */
    {
        int total = a->nn + b.n;
        nodes = amp_calloc(ctx, (size_t)total, sizeof(amp_node));
        if (!nodes) {
            s = AMP_ERR_NO_MEMORY;
            goto fail;
        }
        int w = 0;
        for (int i = 0; i < b.n; i++)
            if (b.v[i].after < 0) nodes[w++] = b.v[i].node;
        for (int ni = 0; ni < a->nn; ni++) {
            nodes[w++] = g->nodes[ni];
            for (int i = 0; i < b.n; i++)
                if (b.v[i].after == ni) nodes[w++] = b.v[i].node;
        }
        amp_dealloc(ctx, g->nodes);
        g->nodes = nodes;
        g->n_nodes = total;
        g->cap_nodes = total;
        amp_dealloc(ctx, b.v);
        return amp_graph_link(g);
    }
fail:
    for (int i = 0; i < b.n; i++) amp_node_free(ctx, &b.v[i].node);
    amp_dealloc(ctx, b.v);
    if (s == AMP_ERR_NO_MEMORY) return amp_seterr(ctx, s, "out of memory in autocast");
    return s;
}

/* ---- the pass -------------------------------------------------------------------------------- */

/* Nodes computing in each precision (a node's precision is its T, or its first float output). */
void amp_autocast_census(const amp_graph *g, amp_dtype lo, amp_autocast_report *r) {
    r->nodes_16bit = r->nodes_fp32 = r->nodes_other = 0;
    for (int ni = 0; ni < g->n_nodes; ni++) {
        const amp_node *n = &g->nodes[ni];
        if (n->flags & AMP_NODE_INSERTED) continue;
        amp_dtype t = amp_node_precision(g, n);
        if (t == lo) r->nodes_16bit++;
        else if (t == AMP_F32) r->nodes_fp32++;
        else r->nodes_other++;
    }
}

static void ac_free(ac *a) {
    amp_dealloc(a->ctx, a->rules);
    amp_dealloc(a->ctx, a->kind);
    amp_dealloc(a->ctx, a->col);
    amp_dealloc(a->ctx, a->tmp_a);
    amp_dealloc(a->ctx, a->tmp_b);
    amp_dealloc(a->ctx, a->orig);
    amp_dealloc(a->ctx, a->cons_off);
    amp_dealloc(a->ctx, a->cons);
    amp_dealloc(a->ctx, a->why);
    amp_dealloc(a->ctx, a->why_value);
    amp_dealloc(a->ctx, a->why_limit);
}

amp_status amp_pass_autocast(amp_graph *g, const amp_autocast_options *o, const double *value_absmax,
                             amp_autocast_report *r) {
    return amp_pass_autocast_ex(g, o, value_absmax, false, r);
}

amp_status amp_autocast_check_options(amp_context *ctx, const amp_autocast_options *o, amp_dtype *lo) {
    amp_dtype t = o->dtype ? o->dtype : AMP_F16;
    if (t != AMP_F16 && t != AMP_BF16)
        return amp_seterr(ctx, AMP_ERR_INVALID_ARG, "autocast dtype must be float16 or bfloat16, not %s",
                          amp_dtype_name(t));
    if (o->round != AMP_ROUND_NEAREST_EVEN && o->round != AMP_ROUND_TOWARD_ZERO)
        return amp_seterr(ctx, AMP_ERR_INVALID_ARG, "unknown rounding mode %d", (int)o->round);
    *lo = t;
    return AMP_OK;
}

bool amp_autocast_has_fp32_compute(const amp_graph *g) {
    for (int ni = 0; ni < g->n_nodes; ni++) {
        const amp_node *n = &g->nodes[ni];
        if (op_kind(n) == K_NONE) continue;
        amp_type_rule rule;
        amp_node_type_rule(g, n, &rule);
        /* the node's T is the dtype of its first T input (node_t before the pass) */
        for (int k = 0; k < n->n_inputs && k < 32; k++)
            if ((rule.tin >> k & 1) && n->inputs[k] >= 0) {
                if (g->values[n->inputs[k]].dtype == AMP_F32) return true;
                break;
            }
    }
    return false;
}

amp_status amp_pass_autocast_ex(amp_graph *g, const amp_autocast_options *o, const double *value_absmax, bool all16,
                                amp_autocast_report *r) {
    amp_context *ctx = g->ctx;
    amp_dtype lo = AMP_F16;
    memset(r, 0, sizeof *r);
    amp_status s = amp_autocast_check_options(ctx, o, &lo);
    if (s) return s;

    ac a = {.g = g, .ctx = ctx, .lo = lo, .round = (int)o->round, .nn = g->n_nodes, .nv = g->n_values, .all16 = all16};
    const char **names = NULL, **ops = NULL; /* per node, for the explain callback */
    bool *uncoloured = NULL; /* per node: not coloured (C_FIXED), FP32 all the same */
    a.rules = amp_calloc(ctx, (size_t)a.nn + 1, sizeof(amp_type_rule));
    a.kind = amp_calloc(ctx, (size_t)a.nn + 1, 1);
    a.col = amp_calloc(ctx, (size_t)a.nn + 1, 1);
    a.tmp_a = amp_calloc(ctx, (size_t)a.nn + 1, 1);
    a.tmp_b = amp_calloc(ctx, (size_t)a.nn + 1, 1);
    a.orig = amp_calloc(ctx, (size_t)a.nv + 1, sizeof(amp_dtype));
    a.cons_off = amp_calloc(ctx, (size_t)a.nv + 2, sizeof(int));
    a.why = amp_calloc(ctx, (size_t)a.nn + 1, 1);
    a.why_value = amp_calloc(ctx, (size_t)a.nn + 1, sizeof(double));
    a.why_limit = amp_calloc(ctx, (size_t)a.nn + 1, sizeof(double));
    if (!a.rules || !a.kind || !a.col || !a.tmp_a || !a.tmp_b || !a.orig || !a.cons_off || !a.why || !a.why_value ||
        !a.why_limit) {
        s = amp_seterr(ctx, AMP_ERR_NO_MEMORY, "out of memory in autocast");
        goto done;
    }
    for (int v = 0; v < a.nv; v++) a.orig[v] = g->values[v].dtype;
    for (int ni = 0; ni < a.nn; ni++) amp_node_type_rule(g, &g->nodes[ni], &a.rules[ni]);

    /* consumers per value */
    {
        int total = 0;
        for (int ni = 0; ni < a.nn; ni++)
            for (int k = 0; k < g->nodes[ni].n_inputs; k++) {
                int v = g->nodes[ni].inputs[k];
                if (v < 0) continue;
                /* a node reading one value twice is listed once */
                bool dup = false;
                for (int j = 0; j < k; j++) dup |= g->nodes[ni].inputs[j] == v;
                if (!dup) {
                    a.cons_off[v + 1]++;
                    total++;
                }
            }
        for (int v = 0; v < a.nv; v++) a.cons_off[v + 1] += a.cons_off[v];
        a.cons = amp_calloc(ctx, (size_t)total + 1, sizeof(int));
        int *fill = amp_calloc(ctx, (size_t)a.nv + 1, sizeof(int));
        if (!a.cons || !fill) {
            amp_dealloc(ctx, fill);
            s = amp_seterr(ctx, AMP_ERR_NO_MEMORY, "out of memory in autocast");
            goto done;
        }
        for (int ni = 0; ni < a.nn; ni++)
            for (int k = 0; k < g->nodes[ni].n_inputs; k++) {
                int v = g->nodes[ni].inputs[k];
                if (v < 0) continue;
                bool dup = false;
                for (int j = 0; j < k; j++) dup |= g->nodes[ni].inputs[j] == v;
                if (!dup) a.cons[a.cons_off[v] + fill[v]++] = ni;
            }
        amp_dealloc(ctx, fill);
    }
    double maxfin = lo == AMP_F16 ? 65504.0 : 3.3895313892515355e38;
    double limit = o->range_limit > 0 ? o->range_limit : maxfin / 16.0;
    /* below the smallest normal value even a tensor's largest element is subnormal: its step,
     * 2^-24 for FP16, is then coarser than the type's own relative precision of max |x| */
    double minnorm = lo == AMP_F16 ? 6.103515625e-05 : 1.1754943508222875e-38;
    double ulimit = o->underflow_limit > 0 ? o->underflow_limit : o->underflow_limit < 0 ? 0 : minnorm;
    colour(&a, o, value_absmax, limit, ulimit, r);

    /* the author's Cast(to=FLOAT) feeding only 16-bit nodes is retargeted to the 16-bit type, so
     * no FP32 round trip is left between two 16-bit regions */
    for (int ni = 0; ni < a.nn; ni++) {
        amp_node *n = &g->nodes[ni];
        if (n->op != AMP_OP_CAST || n->n_inputs < 1 || n->n_outputs < 1 || n->outputs[0] < 0 || n->inputs[0] < 0)
            continue;
        int v = n->outputs[0];
        amp_dtype src = a.orig[n->inputs[0]];
        if (a.orig[v] != AMP_F32 || g->values[v].is_output) continue;
        if (src != AMP_F16 && src != AMP_BF16 && src != AMP_F32) continue;
        /* the author's narrowing-then-widening pair stays as written */
        int p = g->values[n->inputs[0]].producer;
        if (p >= 0 && g->nodes[p].op == AMP_OP_CAST) continue;
        bool every16 = a.cons_off[v + 1] > a.cons_off[v];
        for (int e = a.cons_off[v]; e < a.cons_off[v + 1] && every16; e++) {
            int c = a.cons[e];
            const amp_node *cn = &g->nodes[c];
            for (int k = 0; k < cn->n_inputs && k < 32; k++)
                if (cn->inputs[k] == v && !(a.col[c] == C_16 && (a.rules[c].tin >> k & 1))) every16 = false;
        }
        if (!every16) continue;
        /* a producer coloured 16-bit makes the Cast's input lo; from FP32 the retargeted cast
         * rounds once, exactly as the cast the pass would insert after it */
        for (int at = 0; at < n->n_attrs; at++)
            if (strcmp(n->attrs[at].name, "to") == 0) n->attrs[at].i = lo;
        n->flags |= AMP_NODE_INSERTED; /* now the pass's own cast: cleanup may merge it */
        a.orig[v] = lo; /* consumers now read a 16-bit value: no cast needed for them */
        g->values[v].dtype = lo;
    }

    /* the nodes keep their names and op types through insert_casts (moved, not copied), so the
     * reasons are told once the casts are in and the colouring can no longer fail */
    if (o->explain) {
        names = amp_calloc(ctx, (size_t)a.nn + 1, sizeof(char *));
        ops = amp_calloc(ctx, (size_t)a.nn + 1, sizeof(char *));
        uncoloured = amp_calloc(ctx, (size_t)a.nn + 1, sizeof(bool));
        if (!names || !ops || !uncoloured) {
            s = amp_seterr(ctx, AMP_ERR_NO_MEMORY, "out of memory in autocast");
            goto done;
        }
        for (int ni = 0; ni < a.nn; ni++) {
            names[ni] = g->nodes[ni].name;
            ops[ni] = g->nodes[ni].op_type;
            uncoloured[ni] = a.col[ni] == C_FIXED;
        }
    }
    s = insert_casts(&a, o, r);
    /* an uncoloured node is told only where its output is still FP32 after the casts (a Constant
     * may have become 16-bit), as the census counts it: found by its op_type string, which the
     * node keeps through insert_casts (the nodes keep their order, casts in between) */
    for (int ni = 0, j = 0; !s && o->explain && ni < a.nn; ni++) {
        if (!uncoloured[ni]) continue;
        int at = -1;
        for (int t = 0; t < g->n_nodes && at < 0; t++, j = (j + 1) % g->n_nodes)
            if (g->nodes[j].op_type == ops[ni]) at = j;
        uncoloured[ni] = at >= 0 && amp_node_precision(g, &g->nodes[at]) == AMP_F32;
    }
    for (int ni = 0; !s && o->explain && ni < a.nn; ni++) {
        if (a.col[ni] != C_32 && !uncoloured[ni]) continue;
        amp_autocast_decision d = {.node = names[ni] ? names[ni] : "",
                                   .op_type = ops[ni],
                                   .reason = uncoloured[ni] ? AMP_REASON_NOT_AUTOCAST : (amp_autocast_reason)a.why[ni],
                                   .value = a.why_value[ni],
                                   .limit = a.why_limit[ni]};
        o->explain(o->explain_user_data, &d);
    }
done:
    amp_dealloc(ctx, names);
    amp_dealloc(ctx, ops);
    amp_dealloc(ctx, uncoloured);
    ac_free(&a);
    return s;
}

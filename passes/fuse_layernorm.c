/* Fuse the decomposed layer normalization that exporters write before opset 17 into one
 * LayerNormalization node (opset 17 and later):
 *
 *   X -> ReduceMean -> Sub(X, mean) -> Pow(., 2) -> ReduceMean -> Add(., eps) -> Sqrt
 *        Sub -> Div(., sqrt) -> Mul(., scale) -> Add(., bias)
 *
 * The fused node computes the same function in one pass, in FP32 under autocast (it is a deny
 * op), and it keeps converted models away from a type error onnxruntime's own LayerNormFusion
 * makes when the pattern starts with a Cast from 16 bits. */
#include <math.h>
#include <string.h>

#include "passes/passes.h"

typedef struct fl {
    amp_graph *g;
    int *uses;
} fl;

/* The only consumer of value v, or -1 (graph outputs count as a use). */
static int sole_consumer(const fl *f, int v) {
    if (v < 0 || f->uses[v] != 1 || f->g->values[v].is_output) return -1;
    for (int ni = 0; ni < f->g->n_nodes; ni++)
        for (int k = 0; k < f->g->nodes[ni].n_inputs; k++)
            if (f->g->nodes[ni].inputs[k] == v) return ni;
    return -1;
}

static bool const_scalar(const amp_graph *g, int v, double *out) {
    const amp_tensor *t = amp_edit_const_tensor(g, v);
    if (!t || t->numel != 1) return false;
    if (t->dtype == AMP_F32) *out = ((const float *)t->data)[0];
    else if (t->dtype == AMP_F64) *out = ((const double *)t->data)[0];
    else return false;
    return true;
}

/* Node ni is op with exactly nin inputs and a first output: the pattern reads inputs[0..nin)
 * and outputs[0], and a malformed model may have omitted any of them. */
static bool shaped(const amp_graph *g, int ni, amp_op op, int nin) {
    if (ni < 0) return false;
    const amp_node *n = &g->nodes[ni];
    if (n->op != op || n->n_inputs != nin || n->n_outputs < 1 || n->outputs[0] < 0) return false;
    for (int k = 0; k < nin; k++)
        if (n->inputs[k] < 0) return false;
    return true;
}

/* ReduceMean over the last axis only, keepdims 1 (axes as attribute). */
static bool last_axis_mean(const amp_graph *g, int ni) {
    if (!shaped(g, ni, AMP_OP_REDUCE_MEAN, 1)) return false;
    const amp_node *n = &g->nodes[ni];
    if (amp_attr_int(n, "keepdims", 1) != 1) return false;
    const int64_t *axes;
    if (amp_attr_ints(n, "axes", &axes) != 1) return false;
    int rank = g->values[n->inputs[0]].rank;
    return axes[0] == -1 || (rank > 0 && axes[0] == rank - 1);
}


amp_status amp_pass_fuse_layernorm(amp_graph *g, int *fused) {
    amp_context *ctx = g->ctx;
    *fused = 0;
    if (g->opset < 17) return AMP_OK;
    fl f = {.g = g};
    bool *dead = NULL;
    amp_status s = amp_edit_use_counts(g, &f.uses);
    if (s) return s;
    dead = amp_calloc(ctx, (size_t)g->n_nodes + 1, sizeof(bool));
    if (!dead) {
        amp_dealloc(ctx, f.uses);
        return amp_seterr(ctx, AMP_ERR_NO_MEMORY, "out of memory");
    }
    for (int r1 = 0; r1 < g->n_nodes; r1++) {
        amp_node *n1 = &g->nodes[r1];
        if (dead[r1] || !last_axis_mean(g, r1)) continue;
        int x = n1->inputs[0];
        if (g->values[x].dtype != AMP_F32) continue;
        /* mean feeds one Sub(X, mean) */
        int sub = sole_consumer(&f, n1->outputs[0]);
        if (!shaped(g, sub, AMP_OP_SUB, 2) || g->nodes[sub].inputs[0] != x || g->nodes[sub].inputs[1] != n1->outputs[0])
            continue;
        /* the centred value feeds Pow(., 2) and Div(., std), nothing else */
        int d = g->nodes[sub].outputs[0];
        if (f.uses[d] != 2 || g->values[d].is_output) continue;
        int pw = -1, dv = -1;
        for (int ni = 0; ni < g->n_nodes; ni++)
            for (int k = 0; k < g->nodes[ni].n_inputs; k++)
                if (g->nodes[ni].inputs[k] == d) {
                    if (shaped(g, ni, AMP_OP_POW, 2) && k == 0) pw = ni;
                    else if (shaped(g, ni, AMP_OP_DIV, 2) && k == 0) dv = ni;
                }
        double two, eps;
        if (pw < 0 || dv < 0 || !const_scalar(g, g->nodes[pw].inputs[1], &two) || two != 2.0) continue;
        int r2 = sole_consumer(&f, g->nodes[pw].outputs[0]);
        if (!last_axis_mean(g, r2)) continue;
        int add = sole_consumer(&f, g->nodes[r2].outputs[0]);
        if (!shaped(g, add, AMP_OP_ADD, 2) || !const_scalar(g, amp_edit_other_input(&g->nodes[add], g->nodes[r2].outputs[0]), &eps))
            continue;
        int sq = sole_consumer(&f, g->nodes[add].outputs[0]);
        if (!shaped(g, sq, AMP_OP_SQRT, 1) || sole_consumer(&f, g->nodes[sq].outputs[0]) != dv ||
            g->nodes[dv].inputs[1] != g->nodes[sq].outputs[0])
            continue;
        int mul = sole_consumer(&f, g->nodes[dv].outputs[0]);
        if (!shaped(g, mul, AMP_OP_MUL, 2)) continue;
        int scale = amp_edit_other_input(&g->nodes[mul], g->nodes[dv].outputs[0]);
        int bias_add = sole_consumer(&f, g->nodes[mul].outputs[0]);
        if (!shaped(g, bias_add, AMP_OP_ADD, 2) || g->nodes[bias_add].n_attrs) continue;
        int bias = amp_edit_other_input(&g->nodes[bias_add], g->nodes[mul].outputs[0]);
        const amp_tensor *ts = amp_edit_const_tensor(g, scale), *tb = amp_edit_const_tensor(g, bias);
        if (!ts || !tb || ts->rank != 1 || tb->rank != 1 || ts->dims[0] != tb->dims[0] || ts->dtype != AMP_F32 ||
            tb->dtype != AMP_F32)
            continue;
        /* the bias Add becomes the LayerNormalization */
        amp_node *ln = &g->nodes[bias_add];
        char *op = amp_strdup(ctx, "LayerNormalization");
        int *ins = amp_alloc(ctx, 3 * sizeof(int));
        amp_attr *at = amp_calloc(ctx, 2, sizeof(amp_attr));
        char *a0 = amp_strdup(ctx, "axis"), *a1 = amp_strdup(ctx, "epsilon");
        if (!op || !ins || !at || !a0 || !a1) {
            amp_dealloc(ctx, op);
            amp_dealloc(ctx, ins);
            amp_dealloc(ctx, at);
            amp_dealloc(ctx, a0);
            amp_dealloc(ctx, a1);
            s = amp_seterr(ctx, AMP_ERR_NO_MEMORY, "out of memory");
            goto done;
        }
        at[0].name = a0;
        at[0].kind = AMP_ATTR_INT;
        at[0].i = -1;
        at[1].name = a1;
        at[1].kind = AMP_ATTR_FLOAT;
        at[1].f = (float)eps;
        ins[0] = x;
        ins[1] = scale;
        ins[2] = bias;
        amp_dealloc(ctx, ln->op_type);
        amp_dealloc(ctx, ln->inputs);
        amp_dealloc(ctx, ln->attrs); /* empty (checked above), but allocated */
        ln->op_type = op;
        ln->op = AMP_OP_LAYER_NORM;
        ln->inputs = ins;
        ln->n_inputs = 3;
        ln->attrs = at;
        ln->n_attrs = 2;
        dead[r1] = dead[sub] = dead[pw] = dead[r2] = dead[add] = dead[sq] = dead[dv] = dead[mul] = true;
        (*fused)++;
    }
    if (*fused) {
        s = amp_edit_remove_nodes(g, dead);
        if (s) goto done;
        /* constants only the fused nodes read (the 2 of Pow, eps) go with them */
        int removed;
        s = amp_pass_cast_cleanup(g, &removed);
    }
done:
    amp_dealloc(ctx, f.uses);
    amp_dealloc(ctx, dead);
    return s;
}

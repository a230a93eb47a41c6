/* Cast cleanup (AUTOCAST.md): remove what is redundant and nothing the model's author meant.
 *  - only casts the passes inserted (AMP_NODE_INSERTED) are merged or removed, apart from casts
 *    nothing reads any more;
 *  - a Cast whose input already has the target dtype goes;
 *  - of two chained casts the first goes only when it narrows nothing (the second then reads
 *    the original value: rounding once from an exact widening is the same as rounding after it);
 *    an author's narrowing-then-widening pair, which saturates and rounds on purpose, stays;
 *  - a Cast of a Constant between float types is folded into a new Constant;
 *  - Constant nodes left without consumers go. */
#include <string.h>

#include "base/half.h"
#include "passes/passes.h"

/* Does every value of `from` convert exactly to `to`? */
static bool exact_widening(amp_dtype from, amp_dtype to) {
    if (from == to) return true;
    switch (from) {
    case AMP_F16:
    case AMP_BF16: return to == AMP_F32 || to == AMP_F64;
    case AMP_F32: return to == AMP_F64;
    default: return false;
    }
}

static bool small_float(amp_dtype t) { return t == AMP_F32 || t == AMP_F16 || t == AMP_BF16; }

static float ld_small(amp_dtype t, const void *p, int64_t i) {
    switch (t) {
    case AMP_F16: return amp_f16_to_f32(((const uint16_t *)p)[i]);
    case AMP_BF16: return amp_bf16_to_f32(((const uint16_t *)p)[i]);
    default: return ((const float *)p)[i];
    }
}

static void st_small(amp_dtype t, void *p, int64_t i, float v, int mode) {
    switch (t) {
    case AMP_F16: ((uint16_t *)p)[i] = amp_f32_to_f16_mode(v, mode); break;
    case AMP_BF16: ((uint16_t *)p)[i] = amp_f32_to_bf16_mode(v, mode); break;
    default: ((float *)p)[i] = v; break;
    }
}

static void rewire(amp_graph *g, int from, int to) {
    for (int ni = 0; ni < g->n_nodes; ni++)
        for (int k = 0; k < g->nodes[ni].n_inputs; k++)
            if (g->nodes[ni].inputs[k] == from) g->nodes[ni].inputs[k] = to;
}

static int cast_to(const amp_node *n) { return (int)amp_attr_int(n, "to", 0); }

amp_status amp_pass_cast_cleanup(amp_graph *g, int *removed) {
    amp_context *ctx = g->ctx;
    amp_status s = AMP_OK;
    int *uses = NULL;
    bool *dead = NULL;
    *removed = 0;
    for (bool changed = true; changed;) {
        changed = false;
        amp_dealloc(ctx, uses);
        amp_dealloc(ctx, dead);
        uses = NULL;
        dead = amp_calloc(ctx, (size_t)g->n_nodes + 1, sizeof(bool));
        if (!dead) return amp_seterr(ctx, AMP_ERR_NO_MEMORY, "out of memory in cast cleanup");
        s = amp_edit_use_counts(g, &uses);
        if (s) goto done;
        for (int ni = 0; ni < g->n_nodes; ni++) {
            amp_node *n = &g->nodes[ni];
            if (n->op == AMP_OP_CONSTANT && n->n_outputs > 0 && n->outputs[0] >= 0 && uses[n->outputs[0]] == 0) {
                dead[ni] = true;
                changed = true;
                continue;
            }
            if (n->op != AMP_OP_CAST || n->n_inputs < 1 || n->n_outputs < 1 || n->inputs[0] < 0 || n->outputs[0] < 0)
                continue;
            int in = n->inputs[0], out = n->outputs[0];
            amp_value *vin = &g->values[in], *vout = &g->values[out];
            int to = cast_to(n);
            if (vout->is_output) continue;
            if (uses[out] == 0) {
                dead[ni] = true;
                (*removed)++;
                changed = true;
                continue;
            }
            /* only the pass's own casts are merged; the author's stay as written */
            bool ours = (n->flags & AMP_NODE_INSERTED) != 0;
            /* identity */
            if (ours && vin->dtype == (amp_dtype)to) {
                rewire(g, out, in);
                dead[ni] = true;
                (*removed)++;
                changed = true;
                break; /* use counts are stale now */
            }
            /* exact first cast of a chain: the second reads the original */
            int p = vin->producer;
            if (ours && p >= 0 && !dead[p] && g->nodes[p].op == AMP_OP_CAST && (g->nodes[p].flags & AMP_NODE_INSERTED) &&
                g->nodes[p].n_inputs > 0 && g->nodes[p].inputs[0] >= 0) {
                amp_dtype src = g->values[g->nodes[p].inputs[0]].dtype;
                if (exact_widening(src, vin->dtype)) {
                    n->inputs[0] = g->nodes[p].inputs[0];
                    changed = true;
                    break;
                }
            }
            /* Constant -> Cast between float types folds */
            if (p >= 0 && !dead[p] && g->nodes[p].op == AMP_OP_CONSTANT) {
                const amp_tensor *ct = amp_attr_tensor(&g->nodes[p], "value");
                if (!ct || !small_float(ct->dtype) || !small_float((amp_dtype)to)) continue;
                amp_tensor *nt = NULL;
                s = amp_tensor_create(ctx, (amp_dtype)to, ct->rank, ct->dims, &nt);
                if (s) goto done;
                int mode = (n->flags & AMP_NODE_CAST_RTZ) ? 1 : 0;
                for (int64_t i = 0; i < ct->numel; i++) st_small(nt->dtype, nt->data, i, ld_small(ct->dtype, ct->data, i), mode);
                /* the Cast node becomes the Constant; allocate everything before touching it */
                amp_attr *at = amp_calloc(ctx, 1, sizeof(amp_attr));
                char *an = amp_strdup(ctx, "value");
                char *op = amp_strdup(ctx, "Constant");
                char *dom = amp_strdup(ctx, "");
                char *nm = amp_strdup(ctx, vout->name);
                int *outs = amp_alloc(ctx, sizeof(int));
                if (!at || !an || !op || !dom || !nm || !outs) {
                    amp_dealloc(ctx, at);
                    amp_dealloc(ctx, an);
                    amp_dealloc(ctx, op);
                    amp_dealloc(ctx, dom);
                    amp_dealloc(ctx, nm);
                    amp_dealloc(ctx, outs);
                    amp_tensor_destroy(nt);
                    s = amp_seterr(ctx, AMP_ERR_NO_MEMORY, "out of memory in cast cleanup");
                    goto done;
                }
                at->name = an;
                at->kind = AMP_ATTR_TENSOR;
                at->t = nt;
                outs[0] = out;
                amp_node_free(ctx, n);
                memset(n, 0, sizeof *n);
                n->name = nm;
                n->op_type = op;
                n->domain = dom;
                n->op = AMP_OP_CONSTANT;
                n->outputs = outs;
                n->n_outputs = 1;
                n->attrs = at;
                n->n_attrs = 1;
                n->flags = AMP_NODE_INSERTED;
                (*removed)++;
                changed = true;
                break;
            }
        }
        bool any = false;
        for (int ni = 0; ni < g->n_nodes; ni++) any |= dead[ni];
        if (any) {
            s = amp_edit_remove_nodes(g, dead);
            if (s) goto done;
        } else if (changed) {
            s = amp_graph_link(g);
            if (s) goto done;
        }
    }
done:
    amp_dealloc(ctx, uses);
    amp_dealloc(ctx, dead);
    return s;
}

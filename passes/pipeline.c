/* The pass driver: the one place where the order of passes is written (ARCHITECTURE.md, "Data
 * flow", step 2). Each pass lives in its own file and calls no other pass; the sequences below
 * are the only callers that chain them.
 *
 * Inference: no pass rewrites the graph before planning. amp_plan_build (passes/compile.c)
 *   infers dtypes and shapes and folds constants for each binding of input dims, then plans
 *   memory. With --autocast (amprt run, check, inspect, bench) the session plans the graph that
 *   amp_passes_convert made.
 * Conversion: amp_passes_convert.
 * Training: amp_passes_training; the trainer's prediction graph is converted by
 *   amp_passes_convert_ex with the training graph's options. */
#include <stdio.h>
#include <string.h>

#include "passes/passes.h"

/* Is key among the graph's metadata entries? (amprt.autocast marks a graph amprt converted.) */
static bool has_meta(const amp_graph *g, const char *key) {
    for (int i = 0; i < g->n_meta; i++)
        if (strcmp(g->meta_keys[i], key) == 0) return true;
    return false;
}

/* Append one metadata entry; AMP_ERR_NO_MEMORY (no message) leaves the entries as they were. */
static amp_status set_meta(amp_graph *g, const char *key, const char *value) {
    amp_context *ctx = g->ctx;
    char **k = amp_realloc(ctx, g->meta_keys, sizeof(char *) * (size_t)(g->n_meta + 1));
    if (!k) return AMP_ERR_NO_MEMORY;
    g->meta_keys = k;
    char **v = amp_realloc(ctx, g->meta_values, sizeof(char *) * (size_t)(g->n_meta + 1));
    if (!v) return AMP_ERR_NO_MEMORY;
    g->meta_values = v;
    k[g->n_meta] = amp_strdup(ctx, key);
    v[g->n_meta] = amp_strdup(ctx, value);
    if (!k[g->n_meta] || !v[g->n_meta]) {
        amp_dealloc(ctx, k[g->n_meta]);
        amp_dealloc(ctx, v[g->n_meta]);
        return AMP_ERR_NO_MEMORY;
    }
    g->n_meta++;
    return AMP_OK;
}

/* Prefix the context's message with what failed, and return s. The message is copied first:
 * formatting ctx->err into itself would read what is being overwritten. */
static amp_status prefix_err(amp_context *ctx, amp_status s, const char *what) {
    char msg[sizeof ctx->err];
    snprintf(msg, sizeof msg, "%s", ctx->err);
    return amp_seterr(ctx, s, "%s: %s", what, msg);
}

/* The strict type check that starts a conversion, its failure named as such. */
static amp_status typecheck_before(amp_graph *g) {
    amp_status s = amp_pass_typecheck(g, true);
    return s ? prefix_err(g->ctx, s, "the model does not type-check before autocast") : AMP_OK;
}

amp_status amp_passes_convert(amp_graph *g, const amp_autocast_options *o, const double *value_absmax,
                              amp_autocast_report *r) {
    return amp_passes_convert_ex(g, o, value_absmax, false, r);
}

amp_status amp_passes_convert_ex(amp_graph *g, const amp_autocast_options *o, const double *value_absmax, bool all16,
                                 amp_autocast_report *r) {
    /* options first, so that a bad dtype fails before anything changes the graph */
    amp_dtype lo = AMP_F16;
    amp_status s = amp_autocast_check_options(g->ctx, o, &lo);
    if (s) return s;
    amp_context *ctx = g->ctx;
    memset(r, 0, sizeof *r);

    /* 1. every value's dtype, from the type rules */
    if ((s = typecheck_before(g))) return s;
    /* mixed or 16-bit already, or converted by amprt before: a second conversion is a no-op */
    if (!amp_autocast_has_fp32_compute(g) || has_meta(g, "amprt.autocast")) {
        r->already_16bit = 1;
        amp_autocast_census(g, lo, r);
        return AMP_OK;
    }
    /* 2. decomposed LayerNorm becomes one node before colouring, so it is coloured as the one
     * FP32 (deny) node it is, not as a chain of 16-bit-capable pieces; the fused values get
     * their dtypes from a new type check, until nothing more fuses */
    for (;;) {
        int fused = 0;
        if ((s = amp_pass_fuse_layernorm(g, &fused))) return s;
        if (!fused) break;
        if ((s = typecheck_before(g))) return s;
    }
    /* 3. colouring and casts */
    if ((s = amp_pass_autocast_ex(g, o, value_absmax, all16, r))) return s;
    /* 4. cleanup of the pass's own casts; the report counts the casts that are left */
    int removed = 0;
    if ((s = amp_pass_cast_cleanup(g, &removed))) return s;
    r->casts_removed = removed;
    r->casts_inserted = 0;
    for (int ni = 0; ni < g->n_nodes; ni++)
        if (g->nodes[ni].flags & AMP_NODE_INSERTED && g->nodes[ni].op == AMP_OP_CAST) r->casts_inserted++;
    /* 5. the result must type-check strictly; then the census and the metadata that make a
     * second conversion a no-op */
    if ((s = amp_pass_typecheck(g, true))) return prefix_err(ctx, s, "autocast produced a graph that does not type-check");
    amp_autocast_census(g, lo, r);
    if (set_meta(g, "amprt.autocast", lo == AMP_F16 ? "float16" : "bfloat16"))
        return amp_seterr(ctx, AMP_ERR_NO_MEMORY, "out of memory in autocast");
    return AMP_OK;
}

amp_status amp_passes_training(amp_graph *g, const amp_training_steps *st) {
    amp_context *ctx = g->ctx;
    int *params = NULL, *grads = NULL;
    /* 1. the forward graph and its loss */
    amp_status s = st->forward(st->user, g);
    if (s) return s;
    /* 1b. a written-out erf GELU becomes one Gelu: its gradient reads its input alone, where
     * the written-out form's backward keeps four intermediates alive and runs five ops (the
     * same function: the results differ by rounding only) */
    amp_fuse_report fr;
    if ((s = amp_pass_fuse(g, AMP_FUSE_GELU, &fr))) return prefix_err(ctx, s, "GELU in the training graph");
    /* 2. autocast, before autodiff */
    if (st->autocast) {
        amp_autocast_report r;
        if ((s = amp_passes_convert_ex(g, st->autocast, NULL, st->all16, &r)))
            return prefix_err(ctx, s, "autocast of the training graph");
    }
    /* 3. dtypes nothing declared (the loss's decides the seed's) */
    if ((s = amp_pass_typecheck(g, false))) return s;
    int loss = g->outputs[0], seed = -1;
    params = amp_calloc(ctx, (size_t)st->n_params + 1, sizeof(int));
    grads = amp_calloc(ctx, (size_t)st->n_params + 1, sizeof(int));
    if (!params || !grads) {
        s = amp_seterr(ctx, AMP_ERR_NO_MEMORY, "out of memory");
        goto done;
    }
    /* 4. the seed (loss scale or one) and the state inputs */
    if ((s = st->seed(st->user, g, loss, &seed, params)) || (s = amp_graph_link(g))) goto done;
    /* 5. backward */
    if ((s = amp_pass_autodiff(g, loss, seed, st->n_params, params, grads))) goto done;
    /* 6. updates and loss scaling, then the outputs of the step */
    if ((s = st->optimizer(st->user, g, loss, params, grads))) goto done;
    /* 7. verify: one producer per value, nothing undefined, no cycle, in topological order */
    s = amp_graph_link(g);
done:
    amp_dealloc(ctx, params);
    amp_dealloc(ctx, grads);
    return s;
}

/* amp_model_autocast: copy the model, gather value ranges from calibration runs of the FP32
 * graph when asked to, and convert the copy (amp_passes_convert, passes/pipeline.c). */
#include <math.h>
#include <string.h>

#include "passes/passes.h"
#include "runtime/runtime.h"

typedef struct calib {
    double *absmax; /* per value of the FP32 model */
} calib;

/* The largest finite |x|: an infinity or a NaN that FP32 computes (a -inf attention mask, say)
 * is the same value in 16 bits, so only finite values can overflow there. */
static double tensor_absmax(const amp_tensor *t) {
    double m = 0.0;
    if (!t || !t->data) return 0.0;
    if (t->dtype == AMP_F32) {
        const float *x = t->data;
        for (int64_t i = 0; i < t->numel; i++) {
            double v = fabs((double)x[i]);
            if (v > m && isfinite(v)) m = v;
        }
    } else if (t->dtype == AMP_F64) {
        const double *x = t->data;
        for (int64_t i = 0; i < t->numel; i++) {
            double v = fabs(x[i]);
            if (v > m && isfinite(v)) m = v;
        }
    }
    return m;
}

static void observe(void *user, int value, const amp_tensor *t) {
    calib *c = user;
    double m = tensor_absmax(t);
    if (m > c->absmax[value]) c->absmax[value] = m;
}

/* The calibration session: unfused, so that every value of the graph passes through a step (and
 * its range is seen), and the outputs kept are those of the graph's own nodes. */
static amp_status calib_session(const amp_model *model, int threads, calib *c, amp_session **s) {
    amp_session_options so = {.struct_size = sizeof so, .backend = "cpu", .threads = threads, .fusion = -1};
    amp_status st = amp_session_create((amp_model *)model, &so, s);
    if (st) return st;
    (*s)->observe = observe;
    (*s)->observe_user = c;
    return AMP_OK;
}

amp_status amp_autocast_calibrate(const amp_model *model, const amp_autocast_options *o, double *absmax,
                                  amp_calib_keep *keep) {
    amp_context *ctx = model->ctx;
    const amp_graph *g = model->g;
    amp_session *s = NULL;
    calib c = {.absmax = absmax};
    /* the search's pass starts on one thread and takes every core only for a large set */
    if (keep) keep->threads = 1;
    amp_status st = calib_session(model, keep ? 1 : 0, &c, &s);
    if (st) return st;
    for (int v = 0; v < g->n_values; v++)
        if (g->values[v].init) absmax[v] = tensor_absmax(g->values[v].init);
    for (int set = 0; set < o->n_calib; set++) {
        const amp_tensor *const *ins = o->calib_inputs + (size_t)set * (size_t)o->n_calib_names;
        for (int i = 0; i < o->n_calib_names; i++) {
            int v = amp_graph_find_value(g, o->calib_names[i]);
            if (v < 0) {
                st = amp_seterr(ctx, AMP_ERR_NOT_FOUND, "calibration input '%s' is not an input of the model",
                                o->calib_names[i]);
                goto done;
            }
            double m = tensor_absmax(ins[i]);
            if (m > absmax[v]) absmax[v] = m;
        }
        st = amp_session_run(s, o->n_calib_names, o->calib_names, ins, keep ? keep->nout : 0, keep ? keep->names : NULL,
                             keep ? keep->outputs + (size_t)set * (size_t)keep->nout : NULL);
        if (st) {
            st = amp_seterr(ctx, st, "calibration set %d: %s", set, amp_session_last_error(s));
            goto done;
        }
        /* values folded at plan time never pass through a step */
        const amp_plan *p = s->last;
        double set_flops = 0;
        for (int ni = 0; keep && ni < g->n_nodes; ni++) {
            double f = amp_node_flops(p, s->model->g, ni);
            set_flops += f;
            if (keep->node_flops) keep->node_flops[ni] += f;
        }
        for (int v = 0; v < g->n_values; v++)
            if (p->slots[v].kind == AMP_SLOT_CONST && p->slots[v].ti.value) {
                double m = tensor_absmax(p->slots[v].ti.value);
                if (m > absmax[v]) absmax[v] = m;
            }
        if (o->progress) o->progress(o->progress_user_data, set + 1, o->n_calib);
        if (keep && set == 0 && set_flops >= AMP_SEARCH_PARALLEL_FLOPS) {
            keep->threads = 0;
            if (o->n_calib > 1) {
                amp_session_destroy(s);
                s = NULL;
                if ((st = calib_session(model, 0, &c, &s))) goto done;
            }
        }
    }
done:
    amp_session_destroy(s);
    return st;
}

/* A converted copy of model's graph at opset target (amp_pass_convert_opset); *out untouched on
 * failure. */
static amp_status upgrade_graph(const amp_model *model, int target, amp_graph **out, int *rewritten) {
    amp_graph *g = NULL;
    amp_status s = amp_graph_clone(model->g, &g);
    if (s) return s;
    s = amp_pass_convert_opset(g, target, rewritten);
    if (s) {
        amp_graph_destroy(g);
        return s;
    }
    *out = g;
    return AMP_OK;
}

amp_status amp_model_convert_opset(const amp_model *model, int target, amp_model **out, int *rewritten) {
    if (!model || !out) return AMP_ERR_INVALID_ARG;
    amp_graph *g = NULL;
    int count = 0;
    amp_status s = upgrade_graph(model, target, &g, &count);
    if (!s && (s = amp_model_wrap(model->ctx, g, out))) amp_graph_destroy(g);
    if (!s && rewritten) *rewritten = count;
    return s;
}

amp_status amp_model_autocast(const amp_model *model, const amp_autocast_options *opts, amp_model **out,
                              amp_autocast_report *report) {
    if (!model || !out) return AMP_ERR_INVALID_ARG;
    amp_context *ctx = model->ctx;
    amp_autocast_options o;
    amp_copy_options(&o, sizeof o, opts);
    if (o.n_calib < 0 || o.n_calib_names < 0 || (o.n_calib > 0 && (!o.calib_names || !o.calib_inputs)) ||
        o.n_block_ops < 0 || o.n_block_nodes < 0 || (o.n_block_ops && !o.block_ops) ||
        (o.n_block_nodes && !o.block_nodes) || o.n_allow_nodes < 0 || (o.n_allow_nodes && !o.allow_nodes) ||
        o.range_limit < 0 || isnan(o.underflow_limit))
        return amp_seterr(ctx, AMP_ERR_INVALID_ARG, "bad autocast options");
    if (o.max_error < 0 || isnan(o.max_error) || isinf(o.max_error))
        return amp_seterr(ctx, AMP_ERR_INVALID_ARG, "max_error must be a finite number > 0 (0: no error target), not %g",
                          o.max_error);
    if (o.max_error > 0 && o.n_calib == 0)
        return amp_seterr(ctx, AMP_ERR_INVALID_ARG, "max_error needs calibration sets (n_calib > 0)");
    amp_status s = report ? amp_copy_output(ctx, report, NULL, 0, "amp_model_autocast report") : AMP_OK;
    if (s) return s;
    double *absmax = NULL;
    amp_graph *g = NULL;
    amp_autocast_report r;
    memset(&r, 0, sizeof r);
    r.struct_size = sizeof r;
    /* the opset conversion works on a copy that stands in for the model from here on:
     * calibration, the search and the colouring all see the converted graph */
    amp_model upgraded = {.ctx = ctx};
    int opset_from = (int)model->g->opset, rewritten = 0;
    if (o.target_opset < 0) return amp_seterr(ctx, AMP_ERR_INVALID_ARG, "target_opset must be >= 0, not %d", o.target_opset);
    if (o.target_opset > 0) {
        s = upgrade_graph(model, o.target_opset, &upgraded.g, &rewritten);
        if (s) return s;
        upgraded.hash = amp_graph_hash(upgraded.g);
        model = &upgraded;
    }

    /* the search calibrates itself: the same pass over the sets keeps its FP32 reference */
    if (o.n_calib > 0 && !(o.max_error > 0)) {
        absmax = amp_calloc(ctx, (size_t)model->g->n_values + 1, sizeof(double));
        if (!absmax) {
            s = amp_seterr(ctx, AMP_ERR_NO_MEMORY, "out of memory");
            goto done;
        }
        s = amp_autocast_calibrate(model, &o, absmax, NULL);
        if (s) goto done;
    }
    /* the copy keeps value ids, so the ranges gathered on the source apply as they are; dtypes
     * the source's values were given by an earlier type check stay, and the pass's own strict
     * check recomputes every one of them from the inputs anyway */
    if (o.max_error > 0) {
        s = amp_autocast_search(model, &o, &g, &r);
        if (s) goto done;
    } else {
        s = amp_graph_clone(model->g, &g);
        if (s) goto done;
        s = amp_passes_convert(g, &o, absmax, &r);
        if (s) goto done;
        r.error = -1;
        r.flops16_share = -1;
    }
    amp_model *m = NULL;
    if ((s = amp_model_wrap(ctx, g, &m))) goto done;
    g = NULL;
    *out = m;
    r.opset_from = opset_from;
    r.opset_to = (int)m->g->opset;
    r.nodes_opset_rewritten = rewritten;
    if (report) amp_copy_output(ctx, report, &r, sizeof r, "amp_model_autocast report"); /* size checked above */
done:
    amp_graph_destroy(g);
    amp_graph_destroy(upgraded.g);
    amp_dealloc(ctx, absmax);
    return s;
}

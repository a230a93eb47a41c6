/* The trainer: one graph for the whole step, planned and run like any model.
 *
 *   model copy --(trainable initializers become state inputs)--> + loss --> [autocast]
 *     --> autodiff --> [UnscaleCheck] --> SGD / AdamW --> [LossScaleUpdate]
 *
 * Parameters, optimizer moments, the step count, the loss scale and its tracker are tensors the
 * trainer owns and binds as graph inputs (marked dynamic: never planned by value); the optimizer
 * and loss-scale kernels update them in place (ir/ops/optim.def), so a step copies nothing and
 * reads nothing back but the loss. A second graph, the forward alone in the same precision,
 * serves predictions. */
#define _POSIX_C_SOURCE 200809L
#include <fnmatch.h>
#include <math.h>
#include <stdio.h>
#include <stddef.h>
#include <string.h>
#include <zlib.h>

#include "ir/grad.h"
#include "base/elem.h"
#include "base/half.h"
#include "passes/passes.h"
#include "runtime/runtime.h"

#define TR "ai.amprt.training"

struct amp_trainer {
    amp_context *ctx;
    amp_trainer_options o;
    amp_model *src;           /* copy of the model as given (export writes it with new weights) */
    amp_model *train, *eval;
    amp_session *ts, *es;
    int np;
    char **pnames;            /* parameter (initializer) names */
    amp_tensor **params;      /* FP32 master weights (16-bit in pure mode) */
    amp_tensor **mom1, **mom2;/* momentum / Adam moments (NULL when unused) */
    amp_tensor *lr, *step, *scale, *tracker; /* f32 [1] */
    bool per_param;           /* one update node per parameter (no loss scaling, no clipping) */
    int nnorms;               /* outputs 1..nnorms: gradient norms (one, or one per parameter) */
    amp_tensor **psteps;      /* their step counts (f32 [1] each) */
    amp_dtype in16;           /* pure mode: graph inputs are 16-bit */
    char *labels_name;
    /* per-step binding: model inputs, labels, then state */
    int nbind, nuser;
    const char **bnames;
    const amp_tensor **bvals;
    amp_tensor **conv;        /* pure mode: 16-bit copies of float inputs */
    const char **onames;
    amp_tensor **outs;        /* loss, grad norm[, found_inf, new scale], then BN statistics */
    int nouts, nfixed;
    /* BatchNormalization running statistics (opset >= 14): state updated from the step's
     * outputs; bn_out[j] is the training graph's value holding the new bnstate[j] */
    int nbn;
    char **bnnames;
    amp_tensor **bnstate;
    int *bn_out;
    amp_trainer_state st;
    char err[1024];
};

static amp_status terr(amp_trainer *t, amp_status s, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(t->err, sizeof t->err, fmt, ap);
    va_end(ap);
    amp_seterr(t->ctx, s, "%s", t->err);
    return s;
}

const char *amp_trainer_last_error(const amp_trainer *t) { return t ? t->err : ""; }

const char *amp_trainer_backend(const amp_trainer *t, const char **note) {
    if (note) *note = t ? amp_session_backend_note(t->ts) : "";
    return t ? amp_session_backend(t->ts) : NULL;
}

/* ---- graph building ------------------------------------------------------------------------ */

static bool frozen(const amp_trainer_options *o, const char *name) {
    for (int i = 0; i < o->n_freeze; i++)
        if (o->freeze[i] && fnmatch(o->freeze[i], name, 0) == 0) return true;
    return false;
}

/* Does a node read value v as a float tensor of its main type (a weight, not a shape)? */
static bool read_as_data(const amp_graph *g, int v) {
    for (int ni = 0; ni < g->n_nodes; ni++) {
        const amp_node *n = &g->nodes[ni];
        amp_type_rule r;
        amp_node_type_rule(g, n, &r);
        for (int k = 0; k < n->n_inputs && k < 32; k++) {
            /* BatchNormalization's running mean and variance are statistics, not weights */
            if (n->op == AMP_OP_BATCH_NORM && k >= 3) continue;
            if (n->inputs[k] == v && (r.tin >> k & 1)) return true;
        }
    }
    return false;
}

/* Turn initializer v into a dynamic graph input (its value goes to the trainer). */
static amp_status to_input(amp_graph *g, int v) {
    amp_value *val = &g->values[v];
    int *ins = amp_realloc(g->ctx, g->inputs, sizeof(int) * (size_t)(g->n_inputs + 1));
    if (!ins) return amp_seterr(g->ctx, AMP_ERR_NO_MEMORY, "out of memory");
    g->inputs = ins;
    g->inputs[g->n_inputs++] = v;
    val->is_input = true;
    val->declared = true;
    val->dynamic = true;
    val->dtype = val->init->dtype;
    val->rank = val->init->rank;
    for (int d = 0; d < val->rank; d++) val->dims[d] = (amp_dim){val->init->dims[d], -1};
    amp_tensor_destroy(val->init);
    val->init = NULL;
    int w = 0;
    for (int i = 0; i < g->n_inits; i++)
        if (g->inits[i] != v) g->inits[w++] = g->inits[i];
    g->n_inits = w;
    return AMP_OK;
}

static int new_input(amp_graph *g, const char *name, amp_dtype dt, int rank, const int64_t *dims) {
    int v = amp_graph_value(g, name);
    if (v < 0) return -1;
    int *ins = amp_realloc(g->ctx, g->inputs, sizeof(int) * (size_t)(g->n_inputs + 1));
    if (!ins) return -1;
    g->inputs = ins;
    g->inputs[g->n_inputs++] = v;
    amp_value *val = &g->values[v];
    val->is_input = val->declared = val->dynamic = true;
    val->dtype = dt;
    val->rank = rank;
    for (int d = 0; d < rank; d++) val->dims[d] = (amp_dim){dims ? dims[d] : -1, -1};
    return v;
}

static int find_output(const amp_graph *g, const char *name) {
    if (!name) return g->n_outputs > 0 ? g->outputs[0] : -1;
    for (int i = 0; i < g->n_outputs; i++)
        if (strcmp(g->values[g->outputs[i]].name, name) == 0) return g->outputs[i];
    return -1;
}

static amp_status set_outputs(amp_graph *g, int n, const int *ids) {
    for (int i = 0; i < g->n_outputs; i++) g->values[g->outputs[i]].is_output = false;
    int *outs = amp_realloc(g->ctx, g->outputs, sizeof(int) * (size_t)(n + 1));
    if (!outs) return amp_seterr(g->ctx, AMP_ERR_NO_MEMORY, "out of memory");
    g->outputs = outs;
    for (int i = 0; i < n; i++) {
        g->outputs[i] = ids[i];
        g->values[ids[i]].is_output = true;
    }
    g->n_outputs = n;
    return AMP_OK;
}

/* Parameters to inputs and autocast: shared by the training and the prediction graph. */
static amp_status prepare_forward(amp_trainer *t, amp_graph *g, bool training) {
    amp_status s;
    for (int i = 0; i < t->np; i++) {
        int v = amp_graph_find_value(g, t->pnames[i]);
        if (v < 0 || !g->values[v].init) return terr(t, AMP_ERR_INTERNAL, "parameter '%s' vanished", t->pnames[i]);
        if ((s = to_input(g, v))) return s;
    }
    for (int j = 0; j < t->nbn; j++) {
        int v = amp_graph_find_value(g, t->bnnames[j]);
        if (v < 0 || !g->values[v].init) return terr(t, AMP_ERR_INTERNAL, "statistic '%s' vanished", t->bnnames[j]);
        if ((s = to_input(g, v))) return s;
    }
    if (training) {
        /* Dropout draws masks while training (opset 12+: a training_mode input) */
        for (int ni = 0; ni < g->n_nodes; ni++) {
            if (g->nodes[ni].op != AMP_OP_DROPOUT || amp_node_opset(g, &g->nodes[ni]) < 12) continue;
            amp_grad_ctx gc = {.ctx = t->ctx, .g = g, .node = ni};
            int on = amp_grad_const_scalar(&gc, AMP_BOOL, 1.0);
            if (on < 0) return amp_seterr(t->ctx, AMP_ERR_NO_MEMORY, "out of memory");
            amp_node *n = &g->nodes[ni];
            if (n->n_inputs < 3) {
                int *ins = amp_realloc(t->ctx, n->inputs, sizeof(int) * 3);
                if (!ins) return amp_seterr(t->ctx, AMP_ERR_NO_MEMORY, "out of memory");
                n->inputs = ins;
                for (int k = n->n_inputs; k < 3; k++) ins[k] = -1;
                n->n_inputs = 3;
            }
            n->inputs[2] = on;
        }
        /* BatchNormalization in training mode: batch statistics, and the running ones as
         * outputs 1 and 2 (added when the exported model left them out) */
        for (int ni = 0; ni < g->n_nodes; ni++) {
            if (g->nodes[ni].op != AMP_OP_BATCH_NORM || amp_node_opset(g, &g->nodes[ni]) < 14) continue;
            amp_grad_ctx gc = {.ctx = t->ctx, .g = g, .node = ni};
            if ((s = amp_grad_attr_int(&gc, &g->nodes[ni], "training_mode", 1))) return s;
            amp_node *n = &g->nodes[ni];
            if (n->n_outputs < 3) {
                int *outs = amp_realloc(t->ctx, n->outputs, sizeof(int) * 3);
                if (!outs) return amp_seterr(t->ctx, AMP_ERR_NO_MEMORY, "out of memory");
                n->outputs = outs;
                for (int k = n->n_outputs; k < 3; k++) outs[k] = -1;
                n->n_outputs = 3;
            }
            for (int k = 1; k < 3; k++) {
                int stat = n->inputs[k + 2];
                int j = 0;
                while (j < t->nbn && strcmp(t->bnnames[j], g->values[stat].name) != 0) j++;
                if (j == t->nbn) continue;
                if (n->outputs[k] < 0) {
                    char nm[600];
                    snprintf(nm, sizeof nm, "%s.amp_new", t->bnnames[j]);
                    int v = amp_edit_new_value(g, nm, "");
                    if (v < 0) return amp_seterr(t->ctx, AMP_ERR_NO_MEMORY, "out of memory");
                    n = &g->nodes[ni];
                    n->outputs[k] = v;
                }
                t->bn_out[j] = n->outputs[k];
            }
        }
    }
    return amp_graph_link(g);
}

/* The autocast options of the trainer's graphs; false when training in FP32. */
static bool autocast_options(const amp_trainer *t, amp_autocast_options *ao) {
    if (t->o.precision == AMP_TRAIN_FP32) return false;
    *ao = (amp_autocast_options){.struct_size = sizeof *ao,
                                 .dtype = t->o.precision == AMP_TRAIN_BF16 ? AMP_BF16 : AMP_F16,
                                 .io_16bit = t->o.precision == AMP_TRAIN_FP16_PURE,
                                 .allow_nonstandard_types = 1};
    return true;
}

/* Autocast of the prediction graph, with the training graph's options. */
static amp_status autocast(amp_trainer *t, amp_graph *g) {
    amp_autocast_options ao;
    if (!autocast_options(t, &ao)) return AMP_OK;
    amp_autocast_report r = {.struct_size = sizeof r};
    amp_status s = amp_passes_convert_ex(g, &ao, NULL, t->o.precision == AMP_TRAIN_FP16_PURE, &r);
    if (s) return terr(t, s, "autocast of the training graph: %s", amp_context_last_error(t->ctx));
    return AMP_OK;
}

static amp_status add_node(amp_graph *g, const char *op, const char *domain, int nin, const int *ins, int nout,
                           int *outs, amp_node **made) {
    amp_grad_ctx c = {.ctx = g->ctx, .g = g, .node = g->n_nodes - 1};
    return amp_grad_node(&c, op, domain, nin, ins, nout, outs, made);
}

/* Move each parameter's update (the last np nodes, in parameter order) to right after the later
 * of its gradient's producer and the last other node reading the parameter. */
static amp_status schedule_updates(amp_graph *g, int np, const int *wrt, const int *grads) {
    amp_context *ctx = g->ctx;
    int nn = g->n_nodes, first_upd = nn - np;
    int *pos = amp_alloc(ctx, sizeof(int) * (size_t)np);
    amp_node *nodes = amp_calloc(ctx, (size_t)nn, sizeof(amp_node));
    if (!pos || !nodes) {
        amp_dealloc(ctx, pos);
        amp_dealloc(ctx, nodes);
        return amp_seterr(ctx, AMP_ERR_NO_MEMORY, "out of memory");
    }
    for (int i = 0; i < np; i++) {
        int p = g->values[grads[i]].producer;
        for (int ni = 0; ni < first_upd; ni++)
            for (int k = 0; k < g->nodes[ni].n_inputs; k++)
                if (g->nodes[ni].inputs[k] == wrt[i] && ni > p) p = ni;
        pos[i] = p;
    }
    int w = 0;
    for (int i = 0; i < np; i++)
        if (pos[i] < 0) nodes[w++] = g->nodes[first_upd + i];
    for (int ni = 0; ni < first_upd; ni++) {
        nodes[w++] = g->nodes[ni];
        for (int i = 0; i < np; i++)
            if (pos[i] == ni) nodes[w++] = g->nodes[first_upd + i];
    }
    memcpy(g->nodes, nodes, sizeof(amp_node) * (size_t)nn);
    amp_dealloc(ctx, nodes);
    amp_dealloc(ctx, pos);
    return amp_graph_link(g);
}

/* What the trainer's builders hand each other while amp_passes_training runs. */
typedef struct train_build {
    amp_trainer *t;
    int v_lr, v_step, v_scale, v_tracker; /* state inputs */
    bool scaling;                         /* dynamic loss scaling (FP16) */
    int v_psteps[4096];                   /* per-parameter step counters */
} train_build;

/* Parameters to inputs, training mode, and the loss as output 0. */
static amp_status train_forward(void *user, amp_graph *g) {
    amp_trainer *t = ((train_build *)user)->t;
    amp_context *ctx = t->ctx;
    amp_status s = prepare_forward(t, g, true);
    if (s) return s;
    amp_grad_ctx gc = {.ctx = ctx, .g = g, .node = g->n_nodes - 1};
    /* the loss */
    int y = find_output(g, t->o.output);
    if (y < 0) return terr(t, AMP_ERR_NOT_FOUND, "the model has no output named '%s'", t->o.output ? t->o.output : "");
    int loss = -1;
    amp_node *n;
    if (t->o.loss == AMP_LOSS_MODEL) {
        loss = y;
    } else if (t->o.loss == AMP_LOSS_CROSS_ENTROPY) {
        /* labels N for scores N x C, N x d1 x ... for scores N x C x d1 x ... (per position) */
        const amp_value *yv = &g->values[y];
        int lab = new_input(g, t->labels_name, AMP_I64, yv->rank > 2 ? yv->rank - 1 : 1, NULL);
        if (lab < 0) return amp_seterr(ctx, AMP_ERR_NO_MEMORY, "out of memory");
        int ins[2] = {y, lab};
        if ((s = add_node(g, "SoftmaxCrossEntropyLoss", "", 2, ins, 1, &loss, &n))) return s;
        if ((s = amp_grad_attr_str(&gc, n, "reduction", "mean"))) return s;
    } else {
        const amp_value *yv = &g->values[y];
        int64_t dims[AMP_MAX_RANK];
        for (int d = 0; d < yv->rank; d++) dims[d] = yv->dims[d].value;
        int lab = new_input(g, t->labels_name, yv->dtype ? yv->dtype : AMP_F32, yv->rank, yv->rank >= 0 ? dims : NULL);
        if (lab < 0) return amp_seterr(ctx, AMP_ERR_NO_MEMORY, "out of memory");
        int ins[2] = {y, lab}, d, sq;
        if ((s = add_node(g, "Sub", "", 2, ins, 1, &d, NULL))) return s;
        int ins2[2] = {d, d};
        if ((s = add_node(g, "Mul", "", 2, ins2, 1, &sq, NULL))) return s;
        if ((s = add_node(g, "ReduceMean", "", 1, &sq, 1, &loss, &n))) return s;
        if ((s = amp_grad_attr_int(&gc, n, "keepdims", 0))) return s;
    }
    if ((s = set_outputs(g, 1, &loss)) || (s = amp_graph_link(g))) return s;
    return AMP_OK;
}

/* State inputs, the seed of the backward pass, and the parameters' values. */
static amp_status train_seed(void *user, amp_graph *g, int loss, int *seed_out, int *wrt) {
    train_build *b = user;
    amp_trainer *t = b->t;
    amp_context *ctx = t->ctx;
    amp_status s = AMP_OK;
    amp_node *n;
    amp_grad_ctx gc = {.ctx = ctx, .g = g, .node = g->n_nodes - 1};
    amp_dtype ldt = g->values[loss].dtype ? g->values[loss].dtype : AMP_F32;

    /* state inputs */
    int64_t one[1] = {1};
    int v_lr = new_input(g, "amp.lr", AMP_F32, 1, one), v_step = new_input(g, "amp.step", AMP_F32, 1, one);
    int *v_psteps = b->v_psteps;
    if (t->per_param && t->np > 4096) t->per_param = false;
    for (int i = 0; t->per_param && i < t->np; i++) {
        char nm[600];
        snprintf(nm, sizeof nm, "amp.step.%s", t->pnames[i]);
        v_psteps[i] = new_input(g, nm, AMP_F32, 1, one);
        if (v_psteps[i] < 0) return amp_seterr(ctx, AMP_ERR_NO_MEMORY, "out of memory");
    }
    int v_scale = -1, v_tracker = -1;
    bool scaling = t->o.precision == AMP_TRAIN_FP16;
    if (scaling) {
        v_scale = new_input(g, "amp.loss_scale", AMP_F32, 1, one);
        v_tracker = new_input(g, "amp.scale_tracker", AMP_F32, 1, one);
    }
    if (v_lr < 0 || v_step < 0 || (scaling && (v_scale < 0 || v_tracker < 0)))
        return amp_seterr(ctx, AMP_ERR_NO_MEMORY, "out of memory");
    /* the seed: the loss scale (FP16) or one, as a scalar of the loss's dtype */
    int seed;
    gc.node = g->n_nodes - 1;
    if (scaling) {
        int shape = amp_grad_const_ints(&gc, 0, NULL);
        int ins[2] = {v_scale, shape}, sc;
        if (shape < 0 || (s = add_node(g, "Reshape", "", 2, ins, 1, &sc, NULL))) return s ? s : AMP_ERR_NO_MEMORY;
        seed = sc;
        if (ldt != AMP_F32) {
            if ((s = add_node(g, "Cast", "", 1, &sc, 1, &seed, &n)) || (s = amp_grad_attr_int(&gc, n, "to", ldt))) return s;
        }
    } else {
        seed = amp_grad_const_scalar(&gc, ldt, 1.0);
        if (seed < 0) return AMP_ERR_NO_MEMORY;
    }
    for (int i = 0; i < t->np; i++) wrt[i] = amp_graph_find_value(g, t->pnames[i]);
    /* v_psteps already lives in b */
    b->v_lr = v_lr;
    b->v_step = v_step;
    b->v_scale = v_scale;
    b->v_tracker = v_tracker;
    b->scaling = scaling;
    *seed_out = seed;
    return AMP_OK;
}

/* The updates (UnscaleCheck, SGD or AdamW, LossScaleUpdate) and the step's outputs. */
static amp_status train_optimizer(void *user, amp_graph *g, int loss, const int *wrt, const int *grads) {
    train_build *b = user;
    amp_trainer *t = b->t;
    amp_context *ctx = t->ctx;
    amp_status s = AMP_OK;
    amp_node *n;
    amp_grad_ctx gc = {.ctx = ctx, .g = g, .node = g->n_nodes - 1};
    int v_lr = b->v_lr, v_step = b->v_step, v_scale = b->v_scale, v_tracker = b->v_tracker;
    const int *v_psteps = b->v_psteps;
    bool scaling = b->scaling;
    for (int i = 0; i < t->np; i++)
        if (grads[i] < 0) {
            s = terr(t, AMP_ERR_INVALID_ARG, "the loss does not depend on parameter '%s'; freeze it", t->pnames[i]);
            goto done;
        }
    /* optimizer */
    {
        int found = -1;
        gc.node = g->n_nodes - 1;
        if (scaling) {
            int *ins = amp_alloc(ctx, sizeof(int) * (size_t)(t->np + 2));
            if (!ins) {
                s = amp_seterr(ctx, AMP_ERR_NO_MEMORY, "out of memory");
                goto done;
            }
            ins[0] = v_scale;
            for (int i = 0; i < t->np; i++) ins[1 + i] = grads[i];
            s = add_node(g, "UnscaleCheck", TR, t->np + 1, ins, 1, &found, NULL);
            amp_dealloc(ctx, ins);
            if (s) goto done;
        }
        bool adam = t->o.optimizer == AMP_OPTIM_ADAMW;
        bool mom = !adam && t->o.momentum != 0.0;
        /* moment inputs */
        int *m1 = amp_calloc(ctx, (size_t)t->np + 1, sizeof(int)), *m2 = amp_calloc(ctx, (size_t)t->np + 1, sizeof(int));
        int *norms = amp_calloc(ctx, (size_t)t->np + 1, sizeof(int));
        if (!m1 || !m2 || !norms) {
            amp_dealloc(ctx, m1);
            amp_dealloc(ctx, m2);
            amp_dealloc(ctx, norms);
            s = amp_seterr(ctx, AMP_ERR_NO_MEMORY, "out of memory");
            goto done;
        }
        for (int i = 0; i < t->np && (adam || mom) && !s; i++) {
            char nm[600];
            const amp_tensor *pt = t->params[i];
            snprintf(nm, sizeof nm, "amp.m1.%s", t->pnames[i]);
            m1[i] = new_input(g, nm, pt->dtype, pt->rank, pt->dims);
            if (adam) {
                snprintf(nm, sizeof nm, "amp.m2.%s", t->pnames[i]);
                m2[i] = new_input(g, nm, pt->dtype, pt->rank, pt->dims);
            }
            if (m1[i] < 0 || (adam && m2[i] < 0)) s = amp_seterr(ctx, AMP_ERR_NO_MEMORY, "out of memory");
        }
        /* Without loss scaling and clipping no update waits for every gradient: each parameter
         * gets its own update right after its gradient is complete and its last reader has run,
         * so gradients die early (PLANNER.md item 5). Otherwise one node updates all. */
        int groups = t->per_param ? t->np : 1;
        for (int gi = 0; gi < groups && !s; gi++) {
            int first = t->per_param ? gi : 0, cnt = t->per_param ? 1 : t->np;
            int nin = 4 + cnt * (adam ? 4 : mom ? 3 : 2);
            int *ins = amp_alloc(ctx, sizeof(int) * (size_t)nin);
            if (!ins) {
                s = amp_seterr(ctx, AMP_ERR_NO_MEMORY, "out of memory");
                break;
            }
            ins[0] = v_lr;
            ins[1] = t->per_param ? v_psteps[gi] : v_step;
            ins[2] = found;
            ins[3] = v_scale;
            for (int i = 0; i < cnt; i++) {
                ins[4 + i] = wrt[first + i];
                ins[4 + cnt + i] = grads[first + i];
                if (adam || mom) ins[4 + 2 * cnt + i] = m1[first + i];
                if (adam) ins[4 + 3 * cnt + i] = m2[first + i];
            }
            s = add_node(g, adam ? "AdamW" : "SGD", TR, nin, ins, 1, &norms[gi], &n);
            amp_dealloc(ctx, ins);
            if (s) break;
            gc.node = g->n_nodes - 1;
            if ((s = amp_grad_attr_int(&gc, n, "n", cnt)) ||
                (s = amp_grad_attr_float(&gc, n, "weight_decay", (float)t->o.weight_decay)) ||
                (s = amp_grad_attr_float(&gc, n, "max_grad_norm", (float)t->o.max_grad_norm)))
                break;
            if (adam) {
                if ((s = amp_grad_attr_float(&gc, n, "beta1", (float)t->o.beta1)) ||
                    (s = amp_grad_attr_float(&gc, n, "beta2", (float)t->o.beta2)) ||
                    (s = amp_grad_attr_float(&gc, n, "epsilon", (float)t->o.epsilon)))
                    break;
            } else if ((s = amp_grad_attr_float(&gc, n, "momentum", (float)t->o.momentum)) ||
                       (s = amp_grad_attr_int(&gc, n, "nesterov", t->o.nesterov ? 1 : 0))) {
                break;
            }
        }
        amp_dealloc(ctx, m1);
        amp_dealloc(ctx, m2);
        if (!s && t->per_param) s = schedule_updates(g, t->np, wrt, grads);
        if (s) {
            amp_dealloc(ctx, norms);
            goto done;
        }
        int norm = norms[0];
        int *outs = amp_alloc(ctx, sizeof(int) * (size_t)(4 + t->nbn + t->np)), nouts = 2;
        if (!outs) {
            amp_dealloc(ctx, norms);
            s = amp_seterr(ctx, AMP_ERR_NO_MEMORY, "out of memory");
            goto done;
        }
        outs[0] = loss;
        outs[1] = norm;
        for (int i = 1; i < groups; i++) outs[nouts++] = norms[i];
        amp_dealloc(ctx, norms);
        t->nnorms = nouts - 1;
        if (scaling) {
            int ins2[4] = {v_scale, v_tracker, found, norm}, ns;
            if ((s = add_node(g, "LossScaleUpdate", TR, 4, ins2, 1, &ns, &n)) ||
                (gc.node = g->n_nodes - 1, s = amp_grad_attr_int(&gc, n, "growth_interval", t->o.growth_interval))) {
                amp_dealloc(ctx, outs);
                goto done;
            }
            outs[nouts++] = found;
            outs[nouts++] = ns;
        }
        t->nfixed = nouts;
        for (int j = 0; j < t->nbn; j++)
            if (t->bn_out[j] >= 0) outs[nouts++] = t->bn_out[j];
        s = set_outputs(g, nouts, outs);
        amp_dealloc(ctx, outs);
        if (s || (s = amp_graph_link(g))) goto done;
        t->nouts = nouts;
    }
done:
    return s;
}

/* The training step's graph, in the order passes/pipeline.c writes down. */
static amp_status build_train(amp_trainer *t, amp_graph *g) {
    amp_autocast_options ao;
    train_build b = {.t = t, .v_scale = -1, .v_tracker = -1};
    amp_training_steps steps = {.user = &b,
                                .n_params = t->np,
                                .forward = train_forward,
                                .seed = train_seed,
                                .optimizer = train_optimizer,
                                .autocast = autocast_options(t, &ao) ? &ao : NULL,
                                .all16 = t->o.precision == AMP_TRAIN_FP16_PURE};
    return amp_passes_training(g, &steps);
}

/* ---- create / destroy ---------------------------------------------------------------------- */

static amp_status scalar(amp_context *ctx, float v, amp_tensor **out) {
    int64_t one[1] = {1};
    amp_status s = amp_tensor_create(ctx, AMP_F32, 1, one, out);
    if (!s) *(float *)(*out)->data = v;
    return s;
}

void amp_trainer_destroy(amp_trainer *t) {
    if (!t) return;
    amp_context *ctx = t->ctx;
    amp_session_destroy(t->ts);
    amp_session_destroy(t->es);
    amp_model_destroy(t->train);
    amp_model_destroy(t->eval);
    amp_model_destroy(t->src);
    for (int i = 0; i < t->np; i++) {
        if (t->pnames) amp_dealloc(ctx, t->pnames[i]);
        if (t->params) amp_tensor_destroy(t->params[i]);
        if (t->mom1) amp_tensor_destroy(t->mom1[i]);
        if (t->mom2) amp_tensor_destroy(t->mom2[i]);
        if (t->psteps) amp_tensor_destroy(t->psteps[i]);
    }
    amp_dealloc(ctx, t->psteps);
    amp_dealloc(ctx, t->pnames);
    amp_dealloc(ctx, t->params);
    amp_dealloc(ctx, t->mom1);
    amp_dealloc(ctx, t->mom2);
    amp_tensor_destroy(t->lr);
    amp_tensor_destroy(t->step);
    amp_tensor_destroy(t->scale);
    amp_tensor_destroy(t->tracker);
    if (t->conv)
        for (int i = 0; i < t->nuser; i++) amp_tensor_destroy(t->conv[i]);
    amp_dealloc(ctx, t->conv);
    for (int i = 0; t->outs && i < t->nouts; i++) amp_tensor_destroy(t->outs[i]);
    amp_dealloc(ctx, t->outs);
    amp_dealloc(ctx, t->onames);
    for (int j = 0; j < t->nbn; j++) {
        amp_dealloc(ctx, t->bnnames[j]);
        amp_tensor_destroy(t->bnstate[j]);
    }
    amp_dealloc(ctx, t->bnnames);
    amp_dealloc(ctx, t->bnstate);
    amp_dealloc(ctx, t->bn_out);
    amp_dealloc(ctx, t->bnames);
    amp_dealloc(ctx, t->bvals);
    amp_dealloc(ctx, t->labels_name);
    amp_dealloc(ctx, t);
}

static amp_status to16(amp_context *ctx, const amp_tensor *src, amp_dtype dt, amp_tensor **out) {
    amp_tensor *d = NULL;
    amp_status s = amp_tensor_create(ctx, dt, src->rank, src->dims, &d);
    if (s) return s;
    const float *x = src->data;
    uint16_t *y = d->data;
    for (int64_t i = 0; i < src->numel; i++) y[i] = dt == AMP_F16 ? amp_f32_to_f16(x[i]) : amp_f32_to_bf16(x[i]);
    *out = d;
    return AMP_OK;
}

amp_status amp_trainer_create(const amp_model *model, const amp_trainer_options *opts, amp_trainer **out) {
    if (!model || !out) return AMP_ERR_INVALID_ARG;
    amp_context *ctx = model->ctx;
    amp_trainer_options o;
    amp_copy_options(&o, sizeof o, opts);
    if (o.precision < AMP_TRAIN_FP32 || o.precision > AMP_TRAIN_FP16_PURE || o.optimizer < AMP_OPTIM_SGD ||
        o.optimizer > AMP_OPTIM_ADAMW || o.loss < AMP_LOSS_CROSS_ENTROPY || o.loss > AMP_LOSS_MODEL || o.lr < 0 ||
        o.threads < 0 || o.n_freeze < 0 || (o.n_freeze && !o.freeze) || o.schedule < AMP_LR_CONSTANT ||
        o.schedule > AMP_LR_COSINE || o.max_grad_norm < 0 || o.init_loss_scale < 0 || o.growth_interval < 0 ||
        o.momentum < 0 || o.weight_decay < 0 || o.epsilon < 0 || o.gamma < 0 || (o.set & ~AMP_TRAIN_SET_ALL) ||
        o.fusion < -1 || o.fusion > 1)
        return amp_seterr(ctx, AMP_ERR_INVALID_ARG, "bad trainer options");
    if (!(o.beta1 >= 0 && o.beta1 < 1 && o.beta2 >= 0 && o.beta2 < 1))
        return amp_seterr(ctx, AMP_ERR_INVALID_ARG, "AdamW's beta1 and beta2 must lie in [0, 1)");
    bool adam = o.optimizer == AMP_OPTIM_ADAMW;
    /* 0 is the default unless the caller's set bit says it means 0 */
#define AMP_DEFAULT_(field, bit, value) \
    if (o.field == 0 && !(o.set & (bit))) o.field = (value)
    AMP_DEFAULT_(lr, AMP_TRAIN_SET_LR, adam ? 1e-3 : 1e-2);
    AMP_DEFAULT_(weight_decay, AMP_TRAIN_SET_WEIGHT_DECAY, adam ? 0.01 : 0.0);
    AMP_DEFAULT_(beta1, AMP_TRAIN_SET_BETA1, 0.9);
    AMP_DEFAULT_(beta2, AMP_TRAIN_SET_BETA2, 0.999);
    AMP_DEFAULT_(epsilon, AMP_TRAIN_SET_EPSILON, 1e-8);
    AMP_DEFAULT_(gamma, AMP_TRAIN_SET_GAMMA, 0.1);
#undef AMP_DEFAULT_
    if (o.init_loss_scale == 0) o.init_loss_scale = 65536.0;
    if (o.growth_interval == 0) o.growth_interval = 2000;
    if (o.schedule == AMP_LR_STEP && o.step_size <= 0)
        return amp_seterr(ctx, AMP_ERR_INVALID_ARG, "the step schedule needs step_size > 0");
    if (o.schedule == AMP_LR_COSINE && o.total_steps <= 0)
        return amp_seterr(ctx, AMP_ERR_INVALID_ARG, "the cosine schedule needs total_steps > 0");

    amp_trainer *t = amp_calloc(ctx, 1, sizeof *t);
    if (!t) return amp_seterr(ctx, AMP_ERR_NO_MEMORY, "out of memory");
    t->ctx = ctx;
    t->o = o;
    t->o.output = NULL; /* borrowed strings are not kept */
    t->o.freeze = NULL;
    t->o.n_freeze = 0;
    t->in16 = o.precision == AMP_TRAIN_FP16_PURE ? AMP_F16 : AMP_UNDEFINED;
    amp_graph *g = NULL, *ge = NULL;
    amp_status s;
    t->labels_name = amp_strdup(ctx, "labels");
    if (!t->labels_name) {
        s = amp_seterr(ctx, AMP_ERR_NO_MEMORY, "out of memory");
        goto fail;
    }
    if ((s = amp_graph_clone(model->g, &g))) goto fail;
    if ((s = amp_model_wrap(ctx, g, &t->src))) {
        amp_graph_destroy(g);
        goto fail;
    }
    g = NULL;
    /* the parameters */
    {
        const amp_graph *sg = t->src->g;
        t->pnames = amp_calloc(ctx, (size_t)sg->n_inits + 1, sizeof(char *));
        t->params = amp_calloc(ctx, (size_t)sg->n_inits + 1, sizeof(amp_tensor *));
        if (!t->pnames || !t->params) {
            s = amp_seterr(ctx, AMP_ERR_NO_MEMORY, "out of memory");
            goto fail;
        }
        for (int i = 0; i < sg->n_inits; i++) {
            int v = sg->inits[i];
            const amp_value *val = &sg->values[v];
            if (val->is_input || val->init->dtype != AMP_F32 || frozen(&o, val->name) || !read_as_data(sg, v)) continue;
            t->pnames[t->np] = amp_strdup(ctx, val->name);
            if (!t->pnames[t->np]) {
                s = amp_seterr(ctx, AMP_ERR_NO_MEMORY, "out of memory");
                goto fail;
            }
            s = t->in16 ? to16(ctx, val->init, t->in16, &t->params[t->np]) : amp_tensor_clone(ctx, val->init, &t->params[t->np]);
            t->np++;
            if (s) goto fail;
        }
        if (t->np == 0) {
            s = terr(t, AMP_ERR_INVALID_ARG, "nothing to train: no FP32 initializer outside the frozen patterns");
            goto fail;
        }
    }
    /* running statistics of BatchNormalization (opset >= 14 trains with batch statistics) */
    {
        const amp_graph *sg = t->src->g;
        t->bnnames = amp_calloc(ctx, (size_t)sg->n_inits + 1, sizeof(char *));
        t->bnstate = amp_calloc(ctx, (size_t)sg->n_inits + 1, sizeof(amp_tensor *));
        t->bn_out = amp_calloc(ctx, (size_t)sg->n_inits + 1, sizeof(int));
        if (!t->bnnames || !t->bnstate || !t->bn_out) {
            s = amp_seterr(ctx, AMP_ERR_NO_MEMORY, "out of memory");
            goto fail;
        }
        for (int ni = 0; ni < sg->n_nodes; ni++) {
            const amp_node *n = &sg->nodes[ni];
            if (n->op != AMP_OP_BATCH_NORM || n->n_inputs < 5 || amp_node_opset(sg, n) < 14) continue;
            for (int k = 3; k < 5; k++) {
                int v = n->inputs[k];
                if (v < 0 || !sg->values[v].init || sg->values[v].is_input) continue;
                bool seen = false;
                for (int j = 0; j < t->nbn; j++) seen |= strcmp(t->bnnames[j], sg->values[v].name) == 0;
                if (seen) continue;
                t->bn_out[t->nbn] = -1;
                t->bnnames[t->nbn] = amp_strdup(ctx, sg->values[v].name);
                if (!t->bnnames[t->nbn]) {
                    s = amp_seterr(ctx, AMP_ERR_NO_MEMORY, "out of memory");
                    goto fail;
                }
                s = amp_tensor_clone(ctx, sg->values[v].init, &t->bnstate[t->nbn]);
                t->nbn++;
                if (s) goto fail;
            }
        }
    }
    if (adam || o.momentum != 0) {
        t->mom1 = amp_calloc(ctx, (size_t)t->np, sizeof(amp_tensor *));
        t->mom2 = adam ? amp_calloc(ctx, (size_t)t->np, sizeof(amp_tensor *)) : NULL;
        if (!t->mom1 || (adam && !t->mom2)) {
            s = amp_seterr(ctx, AMP_ERR_NO_MEMORY, "out of memory");
            goto fail;
        }
        for (int i = 0; i < t->np; i++) {
            const amp_tensor *p = t->params[i];
            if ((s = amp_tensor_create(ctx, p->dtype, p->rank, p->dims, &t->mom1[i]))) goto fail;
            if (adam && (s = amp_tensor_create(ctx, p->dtype, p->rank, p->dims, &t->mom2[i]))) goto fail;
        }
    }
    t->per_param = o.precision != AMP_TRAIN_FP16 && o.max_grad_norm == 0 && t->np <= 4096;
    if (t->per_param) {
        t->psteps = amp_calloc(ctx, (size_t)t->np, sizeof(amp_tensor *));
        if (!t->psteps) {
            s = amp_seterr(ctx, AMP_ERR_NO_MEMORY, "out of memory");
            goto fail;
        }
        for (int i = 0; i < t->np; i++)
            if ((s = scalar(ctx, 0.0f, &t->psteps[i]))) goto fail;
    }
    if ((s = scalar(ctx, (float)o.lr, &t->lr)) || (s = scalar(ctx, 0.0f, &t->step)) ||
        (s = scalar(ctx, (float)o.init_loss_scale, &t->scale)) || (s = scalar(ctx, 0.0f, &t->tracker)))
        goto fail;

    /* the graphs */
    if ((s = amp_graph_clone(t->src->g, &g))) goto fail;
    if (opts && opts->output) {
        /* the named output must exist before anything is built */
        if (find_output(g, opts->output) < 0) {
            s = terr(t, AMP_ERR_NOT_FOUND, "the model has no output named '%s'", opts->output);
            goto fail;
        }
        t->o.output = opts->output;
    }
    if (amp_graph_find_value(g, t->labels_name) >= 0) {
        s = terr(t, AMP_ERR_INVALID_ARG, "the model already has a value named 'labels'");
        goto fail;
    }
    if ((s = build_train(t, g))) goto fail;
    t->o.output = NULL;
    if ((s = amp_model_wrap(ctx, g, &t->train))) goto fail;
    g = NULL;
    if ((s = amp_graph_clone(t->src->g, &ge)) || (s = prepare_forward(t, ge, false)) || (s = autocast(t, ge))) goto fail;
    if ((s = amp_model_wrap(ctx, ge, &t->eval))) goto fail;
    ge = NULL;
    amp_session_options so = {.struct_size = sizeof so, .backend = o.backend, .threads = o.threads, .fusion = o.fusion};
    if ((s = amp_session_create_ex(t->train, &so, false, &t->ts))) goto fail;
    /* predictions run where the steps run: "auto" settles once, for the training step */
    so.backend = amp_session_backend(t->ts);
    if ((s = amp_session_create(t->eval, &so, &t->es))) goto fail;

    /* the binding of every step: user inputs first (filled per step), labels, then state */
    {
        int nuser = amp_model_input_count(t->src);
        int nstate = t->np * (2 + (t->mom1 ? 1 : 0) + (t->mom2 ? 1 : 0)) + t->nbn + 4;
        t->nuser = nuser;
        t->bnames = amp_calloc(ctx, (size_t)(nuser + 1 + nstate), sizeof(char *));
        t->bvals = amp_calloc(ctx, (size_t)(nuser + 1 + nstate), sizeof(amp_tensor *));
        t->conv = amp_calloc(ctx, (size_t)nuser + 1, sizeof(amp_tensor *));
        if (!t->bnames || !t->bvals || !t->conv) {
            s = amp_seterr(ctx, AMP_ERR_NO_MEMORY, "out of memory");
            goto fail;
        }
        const amp_graph *tg = t->train->g;
        int k = nuser + (o.loss == AMP_LOSS_MODEL ? 0 : 1);
        for (int i = 0; i < t->np; i++) {
            t->bnames[k] = t->pnames[i];
            t->bvals[k++] = t->params[i];
        }
        for (int i = 0; i < t->np && t->mom1; i++) {
            char nm[600];
            snprintf(nm, sizeof nm, "amp.m1.%s", t->pnames[i]);
            t->bnames[k] = tg->values[amp_graph_find_value(tg, nm)].name;
            t->bvals[k++] = t->mom1[i];
            if (t->mom2) {
                snprintf(nm, sizeof nm, "amp.m2.%s", t->pnames[i]);
                t->bnames[k] = tg->values[amp_graph_find_value(tg, nm)].name;
                t->bvals[k++] = t->mom2[i];
            }
        }
        for (int j = 0; j < t->nbn; j++) {
            t->bnames[k] = t->bnnames[j];
            t->bvals[k++] = t->bnstate[j];
        }
        for (int i = 0; t->per_param && i < t->np; i++) {
            char nm[600];
            snprintf(nm, sizeof nm, "amp.step.%s", t->pnames[i]);
            t->bnames[k] = tg->values[amp_graph_find_value(tg, nm)].name;
            t->bvals[k++] = t->psteps[i];
        }
        t->bnames[k] = "amp.lr";
        t->bvals[k++] = t->lr;
        t->bnames[k] = "amp.step";
        t->bvals[k++] = t->step;
        if (o.precision == AMP_TRAIN_FP16) {
            t->bnames[k] = "amp.loss_scale";
            t->bvals[k++] = t->scale;
            t->bnames[k] = "amp.scale_tracker";
            t->bvals[k++] = t->tracker;
        }
        t->nbind = k;
        /* the optimizer's state stays in the backend's memory between steps: everything bound
         * after the labels but the learning rate (written each step) and the normalisation
         * statistics (replaced from the step's outputs) */
        {
            int first = nuser + (o.loss == AMP_LOSS_MODEL ? 0 : 1), nres = 0;
            const char **rn = amp_calloc(ctx, (size_t)k + 1, sizeof(char *));
            amp_tensor **rt = amp_calloc(ctx, (size_t)k + 1, sizeof(amp_tensor *));
            if (!rn || !rt) s = amp_seterr(ctx, AMP_ERR_NO_MEMORY, "out of memory");
            for (int i = first; !s && i < k; i++) {
                bool bn = false;
                for (int j = 0; j < t->nbn; j++) bn = bn || t->bvals[i] == t->bnstate[j];
                if (bn || t->bvals[i] == t->lr) continue;
                rn[nres] = t->bnames[i];
                rt[nres++] = (amp_tensor *)t->bvals[i];
            }
            /* then the weights and the optimizer state go to the backend's memory, now: a
             * model that does not fit fails here, not at the first step */
            if (!s && ((s = amp_session_set_resident(t->ts, nres, rn, rt)) || (s = amp_session_upload_persistent(t->ts))))
                amp_seterr(ctx, s, "%s", amp_session_last_error(t->ts));
            amp_dealloc(ctx, rn);
            amp_dealloc(ctx, rt);
            if (s) goto fail;
        }
        t->onames = amp_calloc(ctx, (size_t)t->nouts + 1, sizeof(char *));
        t->outs = amp_calloc(ctx, (size_t)t->nouts + 1, sizeof(amp_tensor *));
        if (!t->onames || !t->outs) {
            s = amp_seterr(ctx, AMP_ERR_NO_MEMORY, "out of memory");
            goto fail;
        }
        for (int i = 0; i < t->nouts; i++) t->onames[i] = tg->values[tg->outputs[i]].name;
    }
    t->st.loss_scale = o.precision == AMP_TRAIN_FP16 ? o.init_loss_scale : 1.0;
    *out = t;
    return AMP_OK;
fail:
    amp_graph_destroy(g);
    amp_graph_destroy(ge);
    if (!t->err[0]) snprintf(t->err, sizeof t->err, "%s", amp_context_last_error(ctx));
    amp_seterr(ctx, s, "%s", t->err);
    amp_trainer_destroy(t);
    return s;
}

/* ---- steps ------------------------------------------------------------------------------------ */

static double schedule_lr(const amp_trainer_options *o, int64_t step) {
    double lr = o->lr;
    if (o->warmup_steps > 0 && step < o->warmup_steps) return lr * (double)(step + 1) / (double)o->warmup_steps;
    int64_t s = step - o->warmup_steps;
    switch (o->schedule) {
    case AMP_LR_STEP: return lr * pow(o->gamma, (double)(s / o->step_size));
    case AMP_LR_COSINE: {
        double p = s >= o->total_steps ? 1.0 : (double)s / (double)o->total_steps;
        return o->min_lr + 0.5 * (lr - o->min_lr) * (1.0 + cos(3.14159265358979323846 * p));
    }
    default: return lr;
    }
}

/* Bind the caller's inputs (16-bit copies in pure mode); 0 or a status. */
static amp_status bind_user(amp_trainer *t, const amp_model *m, int n, const char *const *names,
                            const amp_tensor *const *inputs) {
    for (int i = 0; i < t->nuser; i++) {
        amp_value_info vi = {.struct_size = sizeof vi};
        amp_model_input_info(t->src, i, &vi);
        const amp_tensor *x = NULL;
        for (int j = 0; j < n; j++)
            if (names[j] && strcmp(names[j], vi.name) == 0) x = inputs[j];
        if (!x) return terr(t, AMP_ERR_INVALID_ARG, "input '%s' was not given", vi.name);
        int v = amp_graph_find_value(m->g, vi.name);
        amp_dtype want = v >= 0 ? m->g->values[v].dtype : x->dtype;
        if (x->dtype == AMP_F32 && (want == AMP_F16 || want == AMP_BF16)) {
            amp_tensor *c = t->conv[i];
            if (!c || c->numel != x->numel || c->rank != x->rank || memcmp(c->dims, x->dims, sizeof c->dims) != 0) {
                amp_tensor_destroy(c);
                t->conv[i] = NULL;
                amp_status s = amp_tensor_create(t->ctx, want, x->rank, x->dims, &t->conv[i]);
                if (s) return s;
                c = t->conv[i];
            }
            const float *src = x->data;
            uint16_t *dst = c->data;
            for (int64_t e = 0; e < x->numel; e++) dst[e] = want == AMP_F16 ? amp_f32_to_f16(src[e]) : amp_f32_to_bf16(src[e]);
            x = c;
        }
        t->bnames[i] = m->g->values[v].name;
        t->bvals[i] = x;
    }
    return AMP_OK;
}

static double ld(const amp_tensor *x) {
    switch (x->dtype) {
    case AMP_F32: return *(const float *)x->data;
    case AMP_F64: return *(const double *)x->data;
    case AMP_F16: return amp_f16_to_f32(*(const uint16_t *)x->data);
    case AMP_BF16: return amp_bf16_to_f32(*(const uint16_t *)x->data);
    case AMP_BOOL: return *(const uint8_t *)x->data;
    default: return NAN;
    }
}

amp_status amp_trainer_step(amp_trainer *t, int n_inputs, const char *const *names, const amp_tensor *const *inputs,
                            const amp_tensor *labels, double *loss) {
    if (!t || n_inputs < 0 || (n_inputs && (!names || !inputs))) return AMP_ERR_INVALID_ARG;
    amp_status s = bind_user(t, t->train, n_inputs, names, inputs);
    if (s) return s;
    if (t->o.loss != AMP_LOSS_MODEL) {
        if (!labels) return terr(t, AMP_ERR_INVALID_ARG, "this loss needs labels");
        t->bnames[t->nuser] = t->labels_name;
        t->bvals[t->nuser] = labels;
    }
    double lr = schedule_lr(&t->o, t->st.steps);
    *(float *)t->lr->data = (float)lr;
    s = amp_session_run(t->ts, t->nbind, t->bnames, t->bvals, t->nouts, t->onames, t->outs);
    if (s) return terr(t, s, "training step: %s", amp_session_last_error(t->ts));
    t->st.steps++;
    t->st.lr = lr;
    t->st.last_loss = ld(t->outs[0]);
    double sq = 0;
    for (int i = 1; i <= t->nnorms; i++) sq += ld(t->outs[i]) * ld(t->outs[i]);
    t->st.last_grad_norm = sqrt(sq);
    /* with loss scaling the outputs after the norms are found_inf and the new scale */
    bool scaling = t->nfixed > 1 + t->nnorms;
    t->st.last_skipped = scaling && ld(t->outs[1 + t->nnorms]) != 0.0;
    if (t->st.last_skipped) t->st.steps_skipped++;
    if (scaling) t->st.loss_scale = ld(t->outs[2 + t->nnorms]);
    /* the new running statistics become the state the next step and predictions read */
    for (int j = 0, o = t->nfixed; j < t->nbn; j++) {
        if (t->bn_out[j] < 0) continue;
        const amp_tensor *src = t->outs[o++];
        if (src->nbytes == t->bnstate[j]->nbytes && src->dtype == t->bnstate[j]->dtype)
            memcpy(t->bnstate[j]->data, src->data, src->nbytes);
    }
    /* the loss was computed on the unscaled graph: only the seed carries the scale */
    if (loss) *loss = t->st.last_loss;
    return AMP_OK;
}

/* The host copies of the state, current (host_will_write: the caller may change them, so the
 * next step uploads them first). */
static amp_status sync_state(amp_trainer *t, bool host_will_write) {
    amp_status s = amp_session_resident_sync(t->ts, host_will_write);
    return s ? terr(t, s, "%s", amp_session_last_error(t->ts)) : AMP_OK;
}

amp_status amp_trainer_predict(amp_trainer *t, int n_inputs, const char *const *names, const amp_tensor *const *inputs,
                               const char *output_name, amp_tensor **output) {
    if (!t || !output) return AMP_ERR_INVALID_ARG;
    amp_status s = sync_state(t, false);
    if (s) return s;
    s = bind_user(t, t->eval, n_inputs, names, inputs);
    if (s) return s;
    int k = t->nuser;
    const char **nm = t->bnames;
    const amp_tensor **vals = t->bvals;
    /* parameters follow the user inputs in the eval binding too */
    const char *pn[4096];
    const amp_tensor *pv[4096];
    for (int i = 0; i < k; i++) {
        pn[i] = nm[i];
        pv[i] = vals[i];
    }
    if (k + t->np + t->nbn > 4096) return terr(t, AMP_ERR_LIMIT, "too many inputs");
    for (int i = 0; i < t->np; i++) {
        pn[k + i] = t->pnames[i];
        pv[k + i] = t->params[i];
    }
    for (int j = 0; j < t->nbn; j++) {
        pn[k + t->np + j] = t->bnnames[j];
        pv[k + t->np + j] = t->bnstate[j];
    }
    const char *on = output_name;
    if (!on) on = t->eval->g->values[t->eval->g->outputs[0]].name;
    s = amp_session_run(t->es, k + t->np + t->nbn, pn, pv, 1, &on, output);
    if (s) return terr(t, s, "prediction: %s", amp_session_last_error(t->es));
    return AMP_OK;
}

amp_status amp_trainer_get_state(const amp_trainer *t, amp_trainer_state *state) {
    if (!t || !state) return AMP_ERR_INVALID_ARG;
    /* the loss scale lives with the state (the error buffer and the host copies are what a
     * const trainer's call may write) */
    if (sync_state((amp_trainer *)t, false)) return AMP_ERR_BACKEND;
    amp_trainer_state st = t->st;
    st.struct_size = sizeof st;
    st.loss_scale = t->o.precision == AMP_TRAIN_FP16 ? (double)*(const float *)t->scale->data : 1.0;
    amp_status s = amp_copy_output(t->ctx, state, &st, sizeof st, "amp_trainer_get_state");
    /* the error buffer is the one part of a const trainer a call may write */
    if (s) terr((amp_trainer *)t, s, "%s", amp_context_last_error(t->ctx));
    return s;
}

int amp_trainer_param_count(const amp_trainer *t) { return t ? t->np : 0; }

amp_status amp_trainer_param(amp_trainer *t, int i, const char **name, amp_tensor **value) {
    if (!t || i < 0 || i >= t->np) return AMP_ERR_INVALID_ARG;
    /* the caller may write the tensor handed out: the next step uploads the state */
    if (value) {
        amp_status s = sync_state(t, true);
        if (s) return s;
    }
    if (name) *name = t->pnames[i];
    if (value) *value = t->params[i];
    return AMP_OK;
}

amp_status amp_trainer_last_plan(const amp_trainer *t, amp_plan_stats *stats) {
    if (!t) return AMP_ERR_INVALID_ARG;
    amp_status s = amp_session_last_plan(t->ts, stats);
    if (s == AMP_ERR_NOT_FOUND) terr((amp_trainer *)t, s, "no step has run yet");
    else if (s) terr((amp_trainer *)t, s, "%s", amp_session_last_error(t->ts));
    if (s) return s;
    if (stats->struct_size < offsetof(amp_plan_stats, persistent_bytes) + sizeof stats->persistent_bytes) return AMP_OK;
    /* The step's persistent memory is the graph's constants and the trainer's state, which the
     * step reads as inputs: on a device backend the session's one block holds both (aligned as
     * it is allocated); on the CPU the state is the trainer's own tensors, added here. */
    if (t->ts->persist_bytes) {
        stats->persistent_bytes = t->ts->persist_bytes;
        return AMP_OK;
    }
    size_t state = 0;
    for (int i = 0; i < t->np; i++) {
        state += t->params[i]->nbytes;
        if (t->mom1) state += t->mom1[i]->nbytes;
        if (t->mom2) state += t->mom2[i]->nbytes;
        if (t->psteps) state += t->psteps[i]->nbytes;
    }
    for (int j = 0; j < t->nbn; j++) state += t->bnstate[j]->nbytes;
    const amp_tensor *scalars[4] = {t->step, t->scale, t->tracker, t->lr};
    for (int i = 0; i < 4; i++)
        if (scalars[i]) state += scalars[i]->nbytes;
    stats->persistent_bytes += state;
    return AMP_OK;
}

/* ---- checkpoints ------------------------------------------------------------------------------ */

typedef struct ckpt_entry {
    char name[600];
    amp_tensor *t;
} ckpt_entry;

/* Every state tensor with its checkpoint name. */
static int ckpt_entries(amp_trainer *t, ckpt_entry *e, int cap) {
    int n = 0;
    for (int i = 0; i < t->np && n + 4 <= cap; i++) {
        snprintf(e[n].name, sizeof e[n].name, "param:%s", t->pnames[i]);
        e[n++].t = t->params[i];
        if (t->mom1) {
            snprintf(e[n].name, sizeof e[n].name, "m1:%s", t->pnames[i]);
            e[n++].t = t->mom1[i];
        }
        if (t->mom2) {
            snprintf(e[n].name, sizeof e[n].name, "m2:%s", t->pnames[i]);
            e[n++].t = t->mom2[i];
        }
        if (t->psteps && n < cap) {
            snprintf(e[n].name, sizeof e[n].name, "step:%s", t->pnames[i]);
            e[n++].t = t->psteps[i];
        }
    }
    for (int j = 0; j < t->nbn && n < cap; j++) {
        snprintf(e[n].name, sizeof e[n].name, "stat:%s", t->bnnames[j]);
        e[n++].t = t->bnstate[j];
    }
    const char *sn[4] = {"amp.step", "amp.loss_scale", "amp.scale_tracker", "amp.lr"};
    amp_tensor *st[4] = {t->step, t->scale, t->tracker, t->lr};
    for (int i = 0; i < 4 && n < cap; i++) {
        snprintf(e[n].name, sizeof e[n].name, "%s", sn[i]);
        e[n++].t = st[i];
    }
    return n;
}

#define CKPT_MAGIC "AMPCKPT1"

/* A diverged trainer (a weight inf or NaN) writes no checkpoint and no model: either would
 * carry the NaN on. Returns AMP_OK, or the error set on t naming the parameter. */
static amp_status check_finite(amp_trainer *t, const char *what) {
    for (int i = 0; i < t->np; i++) {
        const amp_tensor *w = t->params[i];
        if (!amp_dtype_is_float(w->dtype)) continue;
        for (int64_t e = 0; e < w->numel; e++) {
            double v = amp_ld(w->dtype, w->data, e);
            if (!isfinite(v))
                return terr(t, AMP_ERR_INVALID_ARG, "parameter '%s' element %lld is %g (training diverged); no %s written",
                            t->pnames[i], (long long)e, v, what);
        }
    }
    return AMP_OK;
}

static void put(unsigned char **p, const void *src, size_t n) {
    memcpy(*p, src, n);
    *p += n;
}

amp_status amp_trainer_save_checkpoint(amp_trainer *t, const char *path, int64_t user_a, int64_t user_b) {
    if (!t || !path) return AMP_ERR_INVALID_ARG;
    amp_status fs = sync_state(t, false);
    if (!fs) fs = check_finite(t, "checkpoint");
    if (fs) return fs;
    ckpt_entry *e = amp_calloc(t->ctx, (size_t)(t->np * 4 + t->nbn) + 8, sizeof *e);
    if (!e) return terr(t, AMP_ERR_NO_MEMORY, "out of memory");
    int n = ckpt_entries(t, e, t->np * 4 + t->nbn + 8);
    size_t size = 8 + 4 + 6 * 8;
    for (int i = 0; i < n; i++) size += 4 + strlen(e[i].name) + 8 + 8 * (size_t)e[i].t->rank + 8 + e[i].t->nbytes;
    size += 4;
    unsigned char *buf = amp_alloc(t->ctx, size), *p = buf;
    if (!buf) {
        amp_dealloc(t->ctx, e);
        return terr(t, AMP_ERR_NO_MEMORY, "out of memory writing a checkpoint");
    }
    put(&p, CKPT_MAGIC, 8);
    uint32_t cnt = (uint32_t)n;
    put(&p, &cnt, 4);
    int64_t meta[6] = {t->st.steps, t->st.steps_skipped, user_a, user_b, (int64_t)t->o.precision, (int64_t)t->o.optimizer};
    put(&p, meta, sizeof meta);
    for (int i = 0; i < n; i++) {
        uint32_t len = (uint32_t)strlen(e[i].name);
        put(&p, &len, 4);
        put(&p, e[i].name, len);
        int32_t dt = e[i].t->dtype, rank = e[i].t->rank;
        put(&p, &dt, 4);
        put(&p, &rank, 4);
        put(&p, e[i].t->dims, 8 * (size_t)rank);
        uint64_t nb = e[i].t->nbytes;
        put(&p, &nb, 8);
        put(&p, e[i].t->data, e[i].t->nbytes);
    }
    uint32_t crc = (uint32_t)crc32(0L, buf, (uInt)(p - buf));
    put(&p, &crc, 4);
    amp_status s = amp_write_file_atomic(t->ctx, path, buf, (size_t)(p - buf));
    amp_dealloc(t->ctx, buf);
    amp_dealloc(t->ctx, e);
    if (s) return terr(t, s, "%s", amp_context_last_error(t->ctx));
    return AMP_OK;
}

static bool get(const unsigned char **p, const unsigned char *end, void *dst, size_t n) {
    if ((size_t)(end - *p) < n) return false;
    memcpy(dst, *p, n);
    *p += n;
    return true;
}

amp_status amp_trainer_load_checkpoint(amp_trainer *t, const char *path, int64_t *user_a, int64_t *user_b) {
    if (!t || !path) return AMP_ERR_INVALID_ARG;
    void *data = NULL;
    size_t size = 0;
    /* the host copies become the state (the next step uploads them), current even when the
     * file is refused */
    amp_status s = sync_state(t, true);
    if (s) return s;
    s = amp_read_file(t->ctx, path, t->ctx->max_file_bytes, &data, &size);
    if (s) return terr(t, s, "%s", amp_context_last_error(t->ctx));
    const unsigned char *buf = data, *p = buf, *end = buf + size;
    ckpt_entry *e = amp_calloc(t->ctx, (size_t)(t->np * 4 + t->nbn) + 8, sizeof *e);
    const unsigned char **at = amp_calloc(t->ctx, (size_t)(t->np * 4 + t->nbn) + 8, sizeof *at);
    if (!e || !at) {
        s = terr(t, AMP_ERR_NO_MEMORY, "out of memory");
        goto done;
    }
    int n = ckpt_entries(t, e, t->np * 4 + t->nbn + 8);
    uint32_t crc, cnt;
    int64_t meta[6];
    if (size < 16 || memcmp(buf, CKPT_MAGIC, 8) != 0) {
        s = terr(t, AMP_ERR_PARSE, "'%s' is not an amprt checkpoint", path);
        goto done;
    }
    memcpy(&crc, end - 4, 4);
    if (crc != (uint32_t)crc32(0L, buf, (uInt)(size - 4))) {
        s = terr(t, AMP_ERR_PARSE, "'%s': checksum mismatch (truncated or damaged checkpoint)", path);
        goto done;
    }
    end -= 4;
    p += 8;
    if (!get(&p, end, &cnt, 4) || !get(&p, end, meta, sizeof meta)) goto bad;
    if (cnt != (uint32_t)n || meta[4] != (int64_t)t->o.precision || meta[5] != (int64_t)t->o.optimizer) {
        s = terr(t, AMP_ERR_SHAPE, "'%s' was written by a trainer with other parameters, precision or optimizer", path);
        goto done;
    }
    /* check everything before changing anything */
    for (int i = 0; i < n; i++) {
        uint32_t len;
        int32_t dt, rank;
        int64_t dims[AMP_MAX_RANK];
        uint64_t nb;
        if (!get(&p, end, &len, 4) || len >= sizeof e[i].name || (size_t)(end - p) < len) goto bad;
        bool same = len == strlen(e[i].name) && memcmp(p, e[i].name, len) == 0;
        p += len;
        if (!get(&p, end, &dt, 4) || !get(&p, end, &rank, 4) || rank < 0 || rank > AMP_MAX_RANK ||
            !get(&p, end, dims, 8 * (size_t)rank) || !get(&p, end, &nb, 8) || (size_t)(end - p) < nb)
            goto bad;
        const amp_tensor *x = e[i].t;
        if (!same || dt != (int32_t)x->dtype || rank != x->rank || memcmp(dims, x->dims, 8 * (size_t)rank) != 0 ||
            nb != x->nbytes) {
            s = terr(t, AMP_ERR_SHAPE, "'%s': entry %d does not match '%s' of this trainer", path, i, e[i].name);
            goto done;
        }
        at[i] = p;
        p += nb;
    }
    if (p != end) goto bad;
    for (int i = 0; i < n; i++) memcpy(e[i].t->data, at[i], e[i].t->nbytes);
    t->st.steps = meta[0];
    t->st.steps_skipped = meta[1];
    t->st.loss_scale = t->o.precision == AMP_TRAIN_FP16 ? (double)*(float *)t->scale->data : 1.0;
    if (user_a) *user_a = meta[2];
    if (user_b) *user_b = meta[3];
    s = AMP_OK;
    goto done;
bad:
    s = terr(t, AMP_ERR_PARSE, "'%s': malformed checkpoint", path);
done:
    amp_dealloc(t->ctx, e);
    amp_dealloc(t->ctx, at);
    amp_dealloc(t->ctx, data);
    return s;
}

/* ---- export ------------------------------------------------------------------------------------ */

amp_status amp_trainer_export(amp_trainer *t, const char *path, amp_dtype dtype) {
    if (!t || !path) return AMP_ERR_INVALID_ARG;
    if (dtype != AMP_F32 && dtype != AMP_F16 && dtype != AMP_BF16)
        return terr(t, AMP_ERR_INVALID_ARG, "export dtype must be float32, float16 or bfloat16");
    amp_status fs = sync_state(t, false);
    if (!fs) fs = check_finite(t, "model");
    if (fs) return fs;
    amp_graph *g = NULL;
    amp_model *m = NULL, *c = NULL;
    amp_status s = amp_graph_clone(t->src->g, &g);
    if (s) return terr(t, s, "%s", amp_context_last_error(t->ctx));
    for (int i = 0; i < t->np; i++) {
        int v = amp_graph_find_value(g, t->pnames[i]);
        amp_tensor *w = g->values[v].init;
        const amp_tensor *p = t->params[i];
        if (p->dtype == AMP_F32) memcpy(w->data, p->data, w->nbytes);
        else
            for (int64_t e = 0; e < w->numel; e++)
                ((float *)w->data)[e] = p->dtype == AMP_F16 ? amp_f16_to_f32(((const uint16_t *)p->data)[e])
                                                            : amp_bf16_to_f32(((const uint16_t *)p->data)[e]);
    }
    for (int j = 0; j < t->nbn; j++) {
        int v = amp_graph_find_value(g, t->bnnames[j]);
        if (v >= 0 && g->values[v].init && g->values[v].init->nbytes == t->bnstate[j]->nbytes)
            memcpy(g->values[v].init->data, t->bnstate[j]->data, t->bnstate[j]->nbytes);
    }
    if ((s = amp_model_wrap(t->ctx, g, &m))) {
        amp_graph_destroy(g);
        return s;
    }
    if (dtype != AMP_F32) {
        amp_autocast_options ao = {.struct_size = sizeof ao, .dtype = dtype};
        s = amp_model_autocast(m, &ao, &c, NULL);
        if (s) goto done;
    }
    s = amp_model_save(c ? c : m, path);
done:
    if (s) terr(t, s, "%s", amp_context_last_error(t->ctx));
    amp_model_destroy(c);
    amp_model_destroy(m);
    return s;
}

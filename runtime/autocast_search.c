/* The error-targeted conversion (amp_autocast_options.max_error): which nodes must stay FP32 so
 * that the converted model's outputs on the calibration sets stay within a relative L2 error of
 * the FP32 model's, measured by running candidate conversions through amprt's CPU backend.
 *
 * Candidates are the nodes the plain conversion puts in 16 bits, in node (topological) order.
 * 1. The plain conversion is measured; within the target it is the answer.
 * 2. Every candidate kept FP32 is measured; over the target no conversion meets it (what is left
 *    in 16 bits then is the graph's inputs and outputs, when io_16bit asks for 16-bit ones).
 * 3. Bisection over the candidate order: the shortest prefix kept FP32 that meets the target.
 *    Rounding errors enter early and grow through the later layers, so a prefix is the natural
 *    shape of a first answer; it costs log2(candidates) measurements.
 * 4. Group testing inside the prefix: a block of nodes goes back to 16 bits as a whole when the
 *    error stays within the target, else it is halved, down to single nodes. The MatMul, Gemm
 *    and Conv nodes go first (their FLOPs are the point), then the rest. A handful of sensitive
 *    nodes costs about 2 * sensitive * log2(prefix) measurements, not one per node.
 * 5. Each node left FP32 is measured once more with only it returned to 16 bits: its
 *    contribution, the error keeping it FP32 removes (when the pass budget allows; else the
 *    error seen when it was tested alone in step 4; -1 for a node the passes ran out before).
 * 6. Relax (unless keep_op_classes): the nodes the plain conversion keeps FP32 by their op class
 *    (deny ops: Softmax, LayerNormalization, Reduce*, ...) and by their FP32 neighbours (what
 *    hangs on them: a residual Add, a Gather of an FP32 table, Identity aliases), not those kept
 *    by ranges, the opset or the caller, are tried in 16 bits, all at once on top of the answer
 *    so far; within the target they all go, else the same group testing as step 4 finds those
 *    that must stay FP32. The first such trial, on top of the plain conversion, is measured
 *    before step 1's: within the target it is the answer (2 passes in all). Step 5 runs after
 *    this step, over both kinds of kept node.
 * Every measurement is one pass over the calibration sets; the first pass calibrates and keeps
 * the FP32 reference outputs at once, and all stay within AMP_SEARCH_PASSES. Decisions depend
 * only on measured errors, taken in node order: the same model, options and sets give the same
 * file.
 *
 * Nodes are named by block_nodes, so nodes without a name, or sharing one, get a unique working
 * name while the search runs; the result carries the file's names again. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/elem.h"
#include "passes/passes.h"
#include "runtime/runtime.h"

/* Passes over the calibration sets the whole conversion may spend, the calibration run (which
 * keeps the FP32 reference too) included. */
#define AMP_SEARCH_PASSES 100

typedef struct named {
    const char *name;
    int node;
} named;

typedef struct search {
    amp_context *ctx;
    const amp_model *src;
    const amp_autocast_options *o; /* the caller's options (copied by amp_model_autocast) */
    double *absmax;       /* per value: max |x| over the calibration sets */
    amp_dtype lo;
    amp_graph *base;      /* the source with unique node names */
    int nn;
    bool *renamed;        /* per node: its working name is not the file's */
    named *index;         /* base names, sorted */
    bool *user_blocked;   /* per node: named in the caller's block_nodes */
    const char **block;   /* block_nodes of one candidate conversion */
    const char **allow;   /* allow_nodes of one candidate conversion */
    unsigned char *reason; /* per node: its amp_autocast_reason in the plain conversion (0: 16-bit) */
    int *cand;            /* candidate nodes: the plain conversion's 16-bit ones in node order,
                             then the deny-class ones step 6 tries, in node order */
    double *cand_flops;
    int ncand;
    int n16;              /* cand[0, n16): the plain conversion's 16-bit nodes */
    bool *relax;          /* per candidate: a deny-class or neighbours node (keep: not allowed in
                             16 bits) */
    bool *keep;           /* per candidate: kept FP32 */
    double *contrib;      /* per candidate: the error with it returned to 16 bits (-1: none) */
    int nsets, nout;
    int *out_value;       /* float outputs (value ids) */
    const char **out_names;
    amp_tensor **ref;     /* FP32 outputs, set-major */
    int passes;
    int threads;          /* of the measuring sessions (amp_calib_keep.threads) */
    double target;
} search;

static int cmp_named(const void *a, const void *b) {
    const named *x = a, *y = b;
    int c = strcmp(x->name, y->name);
    return c ? c : (x->node > y->node) - (x->node < y->node);
}

static int find_named(const named *index, int n, const char *name) {
    int lo = 0, hi = n;
    while (lo < hi) {
        int mid = lo + (hi - lo) / 2;
        if (strcmp(index[mid].name, name) < 0) lo = mid + 1;
        else hi = mid;
    }
    return lo < n && strcmp(index[lo].name, name) == 0 ? index[lo].node : -1;
}

/* Unique working names on the base copy, and the sorted index over them. */
static amp_status name_nodes(search *S) {
    amp_context *ctx = S->ctx;
    amp_graph *g = S->base;
    int nn = S->nn;
    named *orig = amp_calloc(ctx, (size_t)nn + 1, sizeof *orig);
    if (!orig) return AMP_ERR_NO_MEMORY;
    int n = 0;
    for (int i = 0; i < nn; i++)
        if (g->nodes[i].name && g->nodes[i].name[0]) orig[n++] = (named){g->nodes[i].name, i};
    qsort(orig, (size_t)n, sizeof *orig, cmp_named);
    /* the first node of a name keeps it; later ones and unnamed ones are renamed */
    for (int k = 1; k < n; k++)
        if (strcmp(orig[k].name, orig[k - 1].name) == 0) S->renamed[orig[k].node] = true;
    for (int i = 0; i < nn; i++)
        if (!g->nodes[i].name || !g->nodes[i].name[0]) S->renamed[i] = true;
    amp_status s = AMP_OK;
    for (int i = 0; i < nn && !s; i++) {
        if (!S->renamed[i]) continue;
        char buf[96];
        int len = snprintf(buf, sizeof buf, "amprt_search_node_%d", i);
        while (find_named(orig, n, buf) >= 0 && len < (int)sizeof buf - 1) buf[len++] = '_', buf[len] = 0;
        char *nm = amp_strdup(ctx, buf);
        if (!nm) {
            s = AMP_ERR_NO_MEMORY;
            break;
        }
        amp_dealloc(ctx, g->nodes[i].name);
        g->nodes[i].name = nm;
    }
    amp_dealloc(ctx, orig);
    if (s) return s;
    for (int i = 0; i < nn; i++) S->index[i] = (named){g->nodes[i].name, i};
    qsort(S->index, (size_t)nn, sizeof *S->index, cmp_named);
    return AMP_OK;
}

/* The file's name of base node i ("" for none). */
static const char *file_name(const search *S, int i) {
    const char *nm = S->src->g->nodes[i].name;
    return nm ? nm : "";
}

/* Give the converted graph's nodes their file names back. */
static amp_status restore_names(const search *S, amp_graph *g) {
    for (int i = 0; i < g->n_nodes; i++) {
        amp_node *n = &g->nodes[i];
        if (n->flags & AMP_NODE_INSERTED || !n->name) continue;
        int b = find_named(S->index, S->nn, n->name);
        if (b < 0 || !S->renamed[b]) continue;
        const char *want = S->src->g->nodes[b].name;
        char *nm = want ? amp_strdup(S->ctx, want) : NULL;
        if (want && !nm) return AMP_ERR_NO_MEMORY;
        amp_dealloc(S->ctx, n->name);
        n->name = nm;
    }
    return AMP_OK;
}

/* ---- FLOPs ---------------------------------------------------------------------------------- */

double amp_node_flops(const amp_plan *p, const amp_graph *g, int node) {
    const amp_node *n = &g->nodes[node];
    if (n->n_inputs < 2 || n->n_outputs < 1 || n->inputs[0] < 0 || n->inputs[1] < 0 || n->outputs[0] < 0) return 0.0;
    const amp_tinfo *x = &p->slots[n->inputs[0]].ti, *w = &p->slots[n->inputs[1]].ti;
    const amp_tinfo *y = &p->slots[n->outputs[0]].ti;
    double out = 1.0;
    for (int d = 0; d < y->rank; d++) out *= (double)y->dims[d];
    switch (n->op) {
    case AMP_OP_MAT_MUL: return 2.0 * out * (double)(x->rank >= 1 ? x->dims[x->rank - 1] : 1);
    case AMP_OP_GEMM:
        return x->rank == 2 ? 2.0 * out * (double)(amp_attr_int(n, "transA", 0) ? x->dims[0] : x->dims[1]) : 0.0;
    case AMP_OP_CONV: {
        double k = 1.0;
        for (int d = 1; d < w->rank; d++) k *= (double)w->dims[d];
        return 2.0 * out * k;
    }
    case AMP_OP_CONV_TRANSPOSE: {
        double in = 1.0, k = 1.0;
        for (int d = 0; d < x->rank; d++) in *= (double)x->dims[d];
        for (int d = 1; d < w->rank; d++) k *= (double)w->dims[d];
        return 2.0 * in * k;
    }
    default: return 0.0;
    }
}

void amp_plan_flops(const amp_plan *p, const amp_graph *g, double *total, double *in16) {
    *total = *in16 = 0.0;
    if (!p) return;
    for (int ni = 0; ni < g->n_nodes; ni++) {
        double f = amp_node_flops(p, g, ni);
        if (f <= 0.0) continue;
        amp_dtype t = p->slots[g->nodes[ni].inputs[0]].ti.dtype;
        *total += f;
        if (t == AMP_F16 || t == AMP_BF16) *in16 += f;
    }
}

/* ---- measurement ---------------------------------------------------------------------------- */

static amp_status session_for(const search *S, amp_model *m, amp_session **s) {
    /* unfused, so plans and node ids are the graph's own */
    amp_session_options so = {.struct_size = sizeof so, .backend = "cpu", .threads = S->threads, .fusion = -1};
    return amp_session_create(m, &so, s);
}

/* Run set `set` on session s; the calibration inputs converted to the graph's input dtypes. */
static amp_status run_set(search *S, amp_session *s, const amp_graph *g, int set, amp_tensor **outs) {
    const amp_autocast_options *o = S->o;
    const amp_tensor *const *given = o->calib_inputs + (size_t)set * (size_t)o->n_calib_names;
    amp_tensor *conv[64] = {0};
    const amp_tensor *ins[64];
    amp_status st = AMP_OK;
    if (o->n_calib_names > 64) return amp_seterr(S->ctx, AMP_ERR_LIMIT, "max_error: more than 64 inputs");
    for (int i = 0; i < o->n_calib_names && !st; i++) {
        ins[i] = given[i];
        int v = amp_graph_find_value(g, o->calib_names[i]);
        amp_dtype want = v >= 0 ? g->values[v].dtype : AMP_UNDEFINED;
        if (given[i] && want != given[i]->dtype && amp_dtype_is_float(want) && amp_dtype_is_float(given[i]->dtype)) {
            st = amp_tensor_convert(S->ctx, given[i], want, &conv[i]);
            ins[i] = conv[i];
        }
    }
    if (!st) {
        st = amp_session_run(s, o->n_calib_names, o->calib_names, ins, S->nout, S->out_names, outs);
        if (st) st = amp_seterr(S->ctx, st, "max_error: calibration set %d: %s", set, amp_session_last_error(s));
    }
    for (int i = 0; i < o->n_calib_names; i++) amp_tensor_destroy(conv[i]);
    return st;
}

/* One conversion: the 16-bit candidates with keep[] set (and the caller's blocked nodes) stay
 * FP32; the deny-class candidates without it (and the caller's allowed nodes) go to 16 bits.
 * explain and report may be NULL. */
static amp_status convert(search *S, const bool *keep, void (*explain)(void *, const amp_autocast_decision *),
                          void *explain_user, amp_graph **out, amp_autocast_report *report) {
    int nb = 0, na = 0;
    for (int i = 0; i < S->nn; i++)
        if (S->user_blocked[i]) S->block[nb++] = S->base->nodes[i].name;
    for (int k = 0; k < S->o->n_allow_nodes; k++) S->allow[na++] = S->o->allow_nodes[k];
    for (int c = 0; c < S->ncand; c++) {
        const char *nm = S->base->nodes[S->cand[c]].name;
        if (keep[c] && !S->relax[c]) S->block[nb++] = nm;
        if (!keep[c] && S->relax[c]) S->allow[na++] = nm;
    }
    amp_autocast_options o = *S->o;
    o.block_nodes = S->block;
    o.n_block_nodes = nb;
    o.allow_nodes = S->allow;
    o.n_allow_nodes = na;
    o.explain = explain;
    o.explain_user_data = explain_user;
    o.max_error = 0;
    amp_autocast_report r;
    amp_graph *g = NULL;
    amp_status st = amp_graph_clone(S->base, &g);
    if (!st) st = amp_passes_convert(g, &o, S->absmax, &r);
    if (st) {
        amp_graph_destroy(g);
        return st;
    }
    if (report) *report = r;
    *out = g;
    return AMP_OK;
}

/* Add one output's squared differences to num/den; a non-finite value where FP32 gives a finite
 * one (or another non-finite one) makes *bad. */
static void accumulate(const amp_tensor *y, const amp_tensor *ref, double *num, double *den, bool *bad) {
    if (y->numel != ref->numel) {
        *bad = true;
        return;
    }
    for (int64_t i = 0; i < y->numel; i++) {
        double a = amp_ld(y->dtype, y->data, i), b = amp_ld(ref->dtype, ref->data, i);
        if (!isfinite(b)) {
            if (!(a == b || (isnan(a) && isnan(b)))) *bad = true;
            continue;
        }
        if (!isfinite(a)) {
            *bad = true;
            continue;
        }
        *num += (a - b) * (a - b);
        *den += b * b;
    }
}

/* Measure graph g (converted from the base copy): the error over every set and float output,
 * and the share of MatMul/Gemm/Conv FLOPs it computes in 16 bits. Consumes g. */
static amp_status measure(search *S, amp_graph *g, double *err, double *share) {
    amp_context *ctx = S->ctx;
    amp_model m = {.ctx = ctx, .g = g, .hash = amp_graph_hash(g)};
    amp_session *s = NULL;
    amp_tensor *outs[64];
    double *num = amp_calloc(ctx, (size_t)S->nout * 2 + 1, sizeof(double));
    double total = 0.0, in16 = 0.0;
    bool bad = false;
    amp_status st = num ? session_for(S, &m, &s) : amp_seterr(ctx, AMP_ERR_NO_MEMORY, "out of memory");
    for (int set = 0; set < S->nsets && !st; set++) {
        for (int k = 0; k < S->nout; k++) outs[k] = NULL;
        st = run_set(S, s, g, set, outs);
        if (st) break;
        for (int k = 0; k < S->nout; k++) {
            accumulate(outs[k], S->ref[(size_t)set * (size_t)S->nout + (size_t)k], &num[2 * k], &num[2 * k + 1], &bad);
            amp_tensor_destroy(outs[k]);
        }
        double t = 0.0, h = 0.0;
        amp_plan_flops(s->last, s->model->g, &t, &h);
        total += t;
        in16 += h;
    }
    amp_session_destroy(s);
    amp_graph_destroy(g);
    S->passes++;
    if (!st) {
        double e = 0.0;
        for (int k = 0; k < S->nout; k++) {
            double ek = num[2 * k + 1] > 0.0 ? sqrt(num[2 * k] / num[2 * k + 1]) : sqrt(num[2 * k]);
            if (!(ek <= e)) e = ek; /* NaN counts as the worst */
        }
        *err = bad || isnan(e) ? INFINITY : e;
        *share = total > 0.0 ? in16 / total : 0.0;
    }
    amp_dealloc(ctx, num);
    return st;
}

static amp_status try_config(search *S, const bool *keep, double *err, double *share) {
    amp_graph *g = NULL;
    amp_status st = convert(S, keep, NULL, NULL, &g, NULL);
    return st ? st : measure(S, g, err, share);
}

/* ---- the search ----------------------------------------------------------------------------- */

typedef struct best {
    double err, share;
} best;

/* Step 4 over ids[lo, hi) (candidate positions): return the block to 16 bits when the error
 * stays within the target, else halve it. fails: the block is known to fail, with error fail_err. */
static amp_status give_back(search *S, const int *ids, int lo, int hi, bool fails, double fail_err, best *b) {
    if (lo >= hi) return AMP_OK;
    if (!fails) {
        if (S->passes >= AMP_SEARCH_PASSES) return AMP_OK; /* out of passes: the rest stay FP32 */
        for (int k = lo; k < hi; k++) S->keep[ids[k]] = false;
        double e = 0, sh = 0;
        amp_status st = try_config(S, S->keep, &e, &sh);
        if (st) return st;
        if (e <= S->target) {
            b->err = e;
            b->share = sh;
            return AMP_OK;
        }
        for (int k = lo; k < hi; k++) S->keep[ids[k]] = true;
        fail_err = e;
    }
    if (hi - lo == 1) {
        S->contrib[ids[lo]] = fail_err;
        return AMP_OK;
    }
    int mid = lo + (hi - lo) / 2;
    amp_status st = give_back(S, ids, lo, mid, false, 0, b);
    return st ? st : give_back(S, ids, mid, hi, false, 0, b);
}

typedef struct explainer {
    const search *S;
    const amp_autocast_options *o;
    bool *seen;           /* per candidate */
    int *cand_of;         /* per base node: candidate position or -1 */
} explainer;

/* The caller's explain, with the file's names; the search's kept 16-bit candidates as
 * ERROR_TARGET, the relax candidates it kept with their reason and their measured error. */
static void explain_wrap(void *user, const amp_autocast_decision *d) {
    explainer *x = user;
    const search *S = x->S;
    amp_autocast_decision e = *d;
    int b = d->node ? find_named(S->index, S->nn, d->node) : -1;
    if (b >= 0) {
        e.node = file_name(S, b);
        int c = x->cand_of[b];
        if (c >= 0 && S->keep[c]) {
            if (!S->relax[c]) e.reason = AMP_REASON_ERROR_TARGET;
            e.value = S->contrib[c];
            e.limit = S->target;
            x->seen[c] = true;
        }
    }
    x->o->explain(x->o->explain_user_data, &e);
}

/* The plain conversion's reason for each FP32 node, by working name. */
static void collect_reason(void *user, const amp_autocast_decision *d) {
    search *S = user;
    int b = d->node ? find_named(S->index, S->nn, d->node) : -1;
    if (b >= 0) S->reason[b] = (unsigned char)d->reason;
}

/* Base nodes computing in the 16-bit type in converted graph g (is16, zeroed by the caller). */
static void mark_16bit(const search *S, const amp_graph *g, bool *is16) {
    for (int i = 0; i < g->n_nodes; i++) {
        const amp_node *n = &g->nodes[i];
        if (n->flags & AMP_NODE_INSERTED || !n->name || amp_node_precision(g, n) != S->lo) continue;
        int b = find_named(S->index, S->nn, n->name);
        if (b >= 0) is16[b] = true;
    }
}

/* Step 6's candidates: the deny-class and neighbours nodes of the plain conversion that go to
 * 16 bits when allowed, appended after the 16-bit ones, not kept (allowed). *trial: that
 * conversion, every one of them in 16 bits on top of keep[] (NULL when there is none). */
static amp_status relax_candidates(search *S, int *cand_of, bool *is16, amp_graph **trial) {
    *trial = NULL;
    int first = S->ncand;
    for (int i = 0; i < S->nn; i++)
        if ((S->reason[i] == AMP_REASON_DENY_CLASS || S->reason[i] == AMP_REASON_NEIGHBOURS) && !S->user_blocked[i]) {
            cand_of[i] = S->ncand;
            S->cand_flops[S->ncand] = 0;
            S->contrib[S->ncand] = -1;
            S->relax[S->ncand] = true;
            S->keep[S->ncand] = false;
            S->cand[S->ncand++] = i;
        }
    if (S->ncand == first) return AMP_OK;
    amp_graph *g = NULL;
    amp_status st = convert(S, S->keep, NULL, NULL, &g, NULL);
    if (st) return st;
    /* only those the trial put in 16 bits are candidates: the opset or a range keeps the others
     * FP32 whatever the measure (the same conversion with fewer names allowed is this one) */
    for (int i = 0; i < S->nn; i++) is16[i] = false;
    mark_16bit(S, g, is16);
    int n = first;
    for (int c = first; c < S->ncand; c++) {
        int i = S->cand[c];
        cand_of[i] = -1;
        if (!is16[i]) continue;
        cand_of[i] = n;
        S->cand[n++] = i;
    }
    S->ncand = n;
    for (int i = 0; i < S->nn; i++) is16[i] = false;
    if (n == first) amp_graph_destroy(g);
    else *trial = g;
    return AMP_OK;
}

/* Step 6 on top of the answer so far: every relax candidate (cand[n16, ncand)) in 16 bits at
 * once, measured unless known to fail with error fail_err (known_fail), then by halves. b: the
 * answer's measures, updated when a trial is kept. */
static amp_status relax(search *S, bool known_fail, double fail_err, int *ids, best *b) {
    int first = S->n16, n = S->ncand;
    for (int c = first; c < n; c++) {
        ids[c - first] = c;
        S->keep[c] = true;
    }
    return give_back(S, ids, 0, n - first, known_fail, fail_err, b);
}

amp_status amp_autocast_search(const amp_model *model, const amp_autocast_options *o, amp_graph **out,
                               amp_autocast_report *report) {
    amp_context *ctx = model->ctx;
    const amp_graph *sg = model->g;
    search S = {.ctx = ctx, .src = model, .o = o, .nn = sg->n_nodes, .nsets = o->n_calib, .target = o->max_error};
    amp_status st = amp_autocast_check_options(ctx, o, &S.lo);
    if (st) return st;
    double *node_flops = NULL;
    int *ids = NULL, *cand_of = NULL;
    bool *seen = NULL;
    amp_graph *result = NULL;
    int nn = S.nn;
    S.renamed = amp_calloc(ctx, (size_t)nn + 1, sizeof(bool));
    S.index = amp_calloc(ctx, (size_t)nn + 1, sizeof(named));
    S.user_blocked = amp_calloc(ctx, (size_t)nn + 1, sizeof(bool));
    S.block = amp_calloc(ctx, (size_t)nn + 1, sizeof(char *));
    S.allow = amp_calloc(ctx, (size_t)nn + (size_t)o->n_allow_nodes + 1, sizeof(char *));
    S.reason = amp_calloc(ctx, (size_t)nn + 1, 1);
    S.cand = amp_calloc(ctx, (size_t)nn + 1, sizeof(int));
    S.cand_flops = amp_calloc(ctx, (size_t)nn + 1, sizeof(double));
    S.relax = amp_calloc(ctx, (size_t)nn + 1, sizeof(bool));
    S.keep = amp_calloc(ctx, (size_t)nn + 1, sizeof(bool));
    S.contrib = amp_calloc(ctx, (size_t)nn + 1, sizeof(double));
    S.absmax = amp_calloc(ctx, (size_t)sg->n_values + 1, sizeof(double));
    node_flops = amp_calloc(ctx, (size_t)nn + 1, sizeof(double));
    ids = amp_calloc(ctx, (size_t)nn + 1, sizeof(int));
    cand_of = amp_calloc(ctx, (size_t)nn + 1, sizeof(int));
    seen = amp_calloc(ctx, (size_t)nn + 1, sizeof(bool));
    S.out_value = amp_calloc(ctx, (size_t)sg->n_outputs + 1, sizeof(int));
    S.out_names = amp_calloc(ctx, (size_t)sg->n_outputs + 1, sizeof(char *));
    if (!S.renamed || !S.index || !S.user_blocked || !S.block || !S.allow || !S.reason || !S.cand || !S.cand_flops ||
        !S.relax || !S.keep || !S.contrib || !S.absmax || !node_flops || !ids || !cand_of || !seen || !S.out_value ||
        !S.out_names) {
        st = amp_seterr(ctx, AMP_ERR_NO_MEMORY, "out of memory in the max_error search");
        goto done;
    }
    /* the dtypes of every value, outputs included, as the conversion will see them */
    if ((st = amp_graph_clone(sg, &S.base))) goto done;
    if ((st = amp_pass_typecheck(S.base, true))) goto done;
    /* float outputs only: an integer output (an arg-max, a shape) has no relative L2 */
    for (int k = 0; k < sg->n_outputs; k++) {
        const amp_value *v = &S.base->values[sg->outputs[k]];
        if (!amp_dtype_is_float(v->dtype)) continue;
        S.out_value[S.nout] = sg->outputs[k];
        S.out_names[S.nout++] = sg->values[sg->outputs[k]].name;
    }
    if (S.nout == 0) {
        st = amp_seterr(ctx, AMP_ERR_UNSUPPORTED, "max_error: the model has no float output to measure");
        goto done;
    }
    if (S.nout > 64) {
        st = amp_seterr(ctx, AMP_ERR_LIMIT, "max_error: more than 64 float outputs");
        goto done;
    }
    S.ref = amp_calloc(ctx, (size_t)S.nsets * (size_t)S.nout + 1, sizeof(amp_tensor *));
    if (!S.ref) {
        st = amp_seterr(ctx, AMP_ERR_NO_MEMORY, "out of memory in the max_error search");
        goto done;
    }
    if ((st = name_nodes(&S))) {
        st = amp_seterr(ctx, st, "out of memory in the max_error search");
        goto done;
    }
    for (int i = 0; i < nn; i++)
        for (int k = 0; k < o->n_block_nodes; k++)
            if (o->block_nodes[k] && sg->nodes[i].name && strcmp(o->block_nodes[k], sg->nodes[i].name) == 0)
                S.user_blocked[i] = true;
    /* one pass: the ranges, the FP32 reference outputs and each node's FLOPs at the sets' shapes */
    {
        amp_calib_keep keep = {.nout = S.nout, .names = S.out_names, .outputs = S.ref, .node_flops = node_flops};
        if ((st = amp_autocast_calibrate(model, o, S.absmax, &keep))) goto done;
        S.passes = 1;
        S.threads = keep.threads;
    }

    /* 1. the plain conversion; its 16-bit nodes are the candidates. Relaxing, the conversion
     * with every op-class candidate in 16 bits too is measured first: within the target it is
     * the answer, and the plain one needs no pass */
    amp_autocast_report r;
    double err = 0, share = 0, relax_err = 0;
    bool relax_failed = false, relaxed_all = false;
    {
        amp_graph *g = NULL, *trial = NULL;
        if ((st = convert(&S, S.keep, o->keep_op_classes ? NULL : collect_reason, &S, &g, &r))) goto done;
        bool *is16 = seen; /* scratch, per base node */
        mark_16bit(&S, g, is16);
        for (int i = 0; i < nn; i++) {
            cand_of[i] = -1;
            if (!is16[i]) continue;
            cand_of[i] = S.ncand;
            S.cand_flops[S.ncand] = node_flops[i];
            S.contrib[S.ncand] = -1;
            S.cand[S.ncand++] = i;
            is16[i] = false;
        }
        S.n16 = S.ncand;
        if (!o->keep_op_classes && (st = relax_candidates(&S, cand_of, is16, &trial))) {
            amp_graph_destroy(g);
            goto done;
        }
        if (trial) {
            double sh = 0;
            if ((st = measure(&S, trial, &relax_err, &sh))) {
                amp_graph_destroy(g);
                goto done;
            }
            relaxed_all = relax_err <= S.target;
            relax_failed = !relaxed_all;
            if (relaxed_all) {
                err = relax_err;
                share = sh;
            }
        }
        /* the relax candidates stay FP32 while the 16-bit ones are searched */
        for (int c = S.n16; c < S.ncand && !relaxed_all; c++) S.keep[c] = true;
        if (relaxed_all) amp_graph_destroy(g);
        else if ((st = measure(&S, g, &err, &share))) goto done;
    }
    best b = {err, share};
    if (err > S.target && S.n16 == 0) {
        st = amp_seterr(ctx, AMP_ERR_LIMIT, "max_error %g is out of reach: the conversion gives %g and has no 16-bit node to keep in FP32",
                        S.target, err);
        goto done;
    }
    if (err > S.target) {
        /* 2. everything FP32 */
        double e0 = err, eall = 0, shall = 0;
        relax_failed = false; /* its trial was on top of another set */
        for (int c = 0; c < S.n16; c++) S.keep[c] = true;
        if ((st = try_config(&S, S.keep, &eall, &shall))) goto done;
        if (!(eall <= S.target)) {
            st = amp_seterr(ctx, AMP_ERR_LIMIT,
                            "max_error %g is out of reach: the plain conversion gives %g, and keeping all %d of its "
                            "16-bit nodes in FP32 still gives %g%s",
                            S.target, e0, S.n16, eall,
                            o->io_16bit ? " (the graph's inputs and outputs are 16-bit; without io_16bit they stay FP32)" : "");
            goto done;
        }
        /* 3. bisection: the shortest prefix kept FP32 within the target */
        int lo = 0, hi = S.n16;
        b = (best){eall, shall};
        while (hi - lo > 1) {
            int mid = lo + (hi - lo) / 2;
            for (int c = 0; c < S.n16; c++) S.keep[c] = c < mid;
            double e = 0, sh = 0;
            if ((st = try_config(&S, S.keep, &e, &sh))) goto done;
            if (e <= S.target) {
                hi = mid;
                b = (best){e, sh};
            } else {
                lo = mid;
            }
        }
        for (int c = 0; c < S.n16; c++) S.keep[c] = c < hi;
        /* 4. back to 16 bits: the FLOP nodes of the prefix first, then the others */
        int nf = 0, nz = 0;
        for (int c = 0; c < hi; c++)
            if (S.cand_flops[c] > 0) ids[nf++] = c;
        for (int c = 0; c < hi; c++)
            if (!(S.cand_flops[c] > 0)) ids[nf + nz++] = c;
        /* returning the whole prefix is the plain conversion, measured in step 1 */
        if ((st = give_back(&S, ids, 0, nf, nz == 0, e0, &b))) goto done;
        if ((st = give_back(&S, ids, nf, nf + nz, nf == 0, e0, &b))) goto done;
    }
    /* 6. the op classes' FP32 nodes, measured */
    if (!relaxed_all && (st = relax(&S, relax_failed, relax_err, ids, &b))) goto done;
    /* 5. contributions, measured against the final set when the passes allow */
    {
        int kept = 0;
        for (int c = 0; c < S.ncand; c++) kept += S.keep[c];
        if (kept && S.passes + kept <= AMP_SEARCH_PASSES)
            for (int c = 0; c < S.ncand; c++) {
                if (!S.keep[c]) continue;
                S.keep[c] = false;
                double e = 0, sh = 0;
                st = try_config(&S, S.keep, &e, &sh);
                S.keep[c] = true;
                if (st) goto done;
                S.contrib[c] = e;
            }
    }

    /* the result: the final set converted once more, explained */
    explainer x = {.S = &S, .o = o, .seen = seen, .cand_of = cand_of};
    for (int i = 0; i < nn; i++) seen[i] = false;
    if ((st = convert(&S, S.keep, o->explain ? explain_wrap : NULL, &x, &result, &r))) goto done;
    if (o->explain)
        for (int c = 0; c < S.ncand; c++) /* the ones the pass did not report itself */
            if (S.keep[c] && !seen[c]) {
                int i = S.cand[c];
                amp_autocast_decision d = {.node = file_name(&S, i),
                                           .op_type = sg->nodes[i].op_type,
                                           .reason = S.relax[c] ? (amp_autocast_reason)S.reason[i] : AMP_REASON_ERROR_TARGET,
                                           .value = S.contrib[c],
                                           .limit = S.target};
                o->explain(o->explain_user_data, &d);
            }
    if ((st = restore_names(&S, result))) {
        st = amp_seterr(ctx, st, "out of memory in the max_error search");
        goto done;
    }
    r.nodes_error_kept = r.nodes_relaxed = 0;
    for (int c = 0; c < S.ncand; c++) {
        if (S.relax[c]) r.nodes_relaxed += !S.keep[c];
        else r.nodes_error_kept += S.keep[c];
    }
    r.nodes_blocked -= r.nodes_error_kept; /* the pass counted them as blocked by name */
    r.error = b.err;
    r.flops16_share = b.share;
    r.error_passes = S.passes;
    *report = r;
    *out = result;
    result = NULL;
done:
    amp_graph_destroy(result);
    if (S.ref)
        for (size_t k = 0; k < (size_t)S.nsets * (size_t)S.nout; k++) amp_tensor_destroy(S.ref[k]);
    amp_dealloc(ctx, S.ref);
    amp_graph_destroy(S.base);
    amp_dealloc(ctx, S.renamed);
    amp_dealloc(ctx, S.index);
    amp_dealloc(ctx, S.user_blocked);
    amp_dealloc(ctx, S.block);
    amp_dealloc(ctx, S.allow);
    amp_dealloc(ctx, S.reason);
    amp_dealloc(ctx, S.cand);
    amp_dealloc(ctx, S.cand_flops);
    amp_dealloc(ctx, S.relax);
    amp_dealloc(ctx, S.keep);
    amp_dealloc(ctx, S.contrib);
    amp_dealloc(ctx, S.absmax);
    amp_dealloc(ctx, S.out_value);
    amp_dealloc(ctx, S.out_names);
    amp_dealloc(ctx, node_flops);
    amp_dealloc(ctx, ids);
    amp_dealloc(ctx, cand_of);
    amp_dealloc(ctx, seen);
    return st;
}

/* Gradients of the elementwise ops (ir/ops/elementwise_grad.c) and their training-domain
 * kernels (backends/cpu/elementwise_grad.c).
 *
 * Correctness: every op, attribute and opset variant against central finite differences in f64
 * (gc_check, eps 1e-6), with inputs kept away from the points where the derivative jumps; the
 * largest relative L2 error max_rel must stay under 1e-5. Ties follow PyTorch and are checked
 * against values written from its rules. Each new kernel also runs in f16 and bf16 and is
 * compared with the f64 run on the same (rounded) inputs by relative L2 (under 1e-2). */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backends/cpu/cpu.h"
#include "backends/cpu/kernels.h"
#include "gradcheck.h"
#include "ir/grad.h"
#include "passes/passes.h"
#include "runtime/runtime.h"


static amp_context *ctx;
static void setup(void) { cr_assert_eq(amp_context_create(NULL, &ctx), AMP_OK); }
static void teardown(void) { amp_context_destroy(ctx); }
TestSuite(grad_elementwise, .init = setup, .fini = teardown);

#define GC_TOL 1e-5 /* max_rel of f64 central differences */
#define LP_TOL 1e-2 /* relative L2 of a 16-bit run against f64 */

static const amp_dtype half_types[] = {AMP_F16, AMP_BF16};

/* ---- helpers ----------------------------------------------------------------------------------- */

static uint64_t mix(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Uniform in [lo, hi), then nudged off the kinks: any value within 0.05 of one moves 0.1 up. */
static amp_tensor *rnd_k(amp_dtype dt, int rank, const int64_t *dims, double lo, double hi, uint64_t seed, int nk,
                         const double *kinks) {
    amp_tensor *t = tt_rand(ctx, dt, rank, dims, lo, hi, seed);
    cr_assert(t);
    for (int64_t i = 0; i < t->numel; i++) {
        double v = tt_get(t, i);
        for (int k = 0; k < nk; k++)
            if (fabs(v - kinks[k]) < 0.05) v = kinks[k] + 0.1;
        amp_st(dt, t->data, i, v);
    }
    return t;
}

static amp_tensor *rnd(amp_dtype dt, int rank, const int64_t *dims, double lo, double hi, uint64_t seed) {
    return rnd_k(dt, rank, dims, lo, hi, seed, 0, NULL);
}

/* |values| in [lo, hi) with random signs: away from zero. */
static amp_tensor *rnd_away(amp_dtype dt, int rank, const int64_t *dims, double lo, double hi, uint64_t seed) {
    amp_tensor *t = tt_rand(ctx, dt, rank, dims, lo, hi, seed);
    cr_assert(t);
    for (int64_t i = 0; i < t->numel; i++)
        if (mix(seed * 31 + (uint64_t)i) & 1) amp_st(dt, t->data, i, -tt_get(t, i));
    return t;
}

static amp_tensor *filled(amp_dtype dt, int rank, const int64_t *dims, double v) {
    amp_tensor *t;
    cr_assert_eq(amp_tensor_create(ctx, dt, rank, dims, &t), AMP_OK);
    for (int64_t i = 0; i < t->numel; i++) amp_st(dt, t->data, i, v);
    return t;
}

static amp_tensor *scalar(amp_dtype dt, double v) { return filled(dt, 0, NULL, v); }

/* The same values in another dtype (rounded once). */
static amp_tensor *as(const amp_tensor *src, amp_dtype dt) {
    amp_tensor *t;
    cr_assert_eq(amp_tensor_create(ctx, dt, src->rank, src->dims, &t), AMP_OK);
    for (int64_t i = 0; i < t->numel; i++) amp_st(dt, t->data, i, tt_get(src, i));
    return t;
}

static void free_all(amp_tensor **t, int n) {
    for (int i = 0; i < n; i++) {
        amp_tensor_destroy(t[i]);
        t[i] = NULL;
    }
}

static amp_status copy_attrs(const amp_node *src, amp_node *dst) {
    dst->attrs = amp_calloc(ctx, (size_t)src->n_attrs + 1, sizeof(amp_attr));
    if (!dst->attrs) return AMP_ERR_NO_MEMORY;
    for (int i = 0; i < src->n_attrs; i++) {
        const amp_attr *a = &src->attrs[i];
        amp_attr *d = &dst->attrs[dst->n_attrs++];
        d->name = amp_strdup(ctx, a->name);
        d->kind = a->kind;
        d->i = a->i;
        d->f = a->f;
        d->n = a->n;
        if (a->s) {
            d->s = amp_strdup(ctx, a->s);
            d->slen = a->slen;
        }
        if (a->ints) {
            d->ints = amp_alloc(ctx, sizeof(int64_t) * (size_t)(a->n + 1));
            if (d->ints && a->n) memcpy(d->ints, a->ints, sizeof(int64_t) * (size_t)a->n);
        }
        if (a->t && amp_tensor_clone(ctx, a->t, &d->t)) return AMP_ERR_NO_MEMORY;
    }
    return AMP_OK;
}

/* What autodiff built for a node of type op: -1 no such node, else whether input `input` is set. */
typedef struct probe {
    const char *op;
    int input;
    int found;
} probe;

/* Autodiff of one forward node (nout outputs) seeded with dy as the gradient of output 0, run on
 * the CPU; grads[i] receives input i's gradient for wrt[i] (NULL when none flows). With declare
 * false the inputs' shapes are left undeclared. Uses no ONNX op besides the node itself, so it
 * runs at any opset the node supports. */
static amp_status ad_run(amp_test_node *t, int nin, amp_tensor *const *in, const bool *wrt, int nout,
                         const amp_tensor *dy, bool declare, amp_tensor **grads, probe *pr) {
    amp_graph *g = NULL;
    amp_model *m = NULL;
    amp_session *sess = NULL;
    amp_tensor *y[8] = {0};
    int in_ids[16], out_ids[8], wrt_ids[16], grad_ids[16], which[16], nw = 0;
    for (int i = 0; i < nin; i++) grads[i] = NULL;
    amp_status s = tn_run(t, nin, in, nout, y);
    if (s) return s;
    if ((s = amp_graph_create(ctx, &g))) goto done;
    g->opset = t->opset;
    g->inputs = amp_calloc(ctx, (size_t)nin + 2, sizeof(int));
    for (int i = 0; i <= nin; i++) {
        const amp_tensor *src = i < nin ? in[i] : dy;
        if (i < nin) in_ids[i] = -1;
        if (!src) continue;
        char nm[16] = "dy";
        if (i < nin) snprintf(nm, sizeof nm, "x%d", i);
        int v = amp_graph_new_value(g, nm);
        amp_value *val = &g->values[v];
        val->dtype = src->dtype;
        val->rank = declare || i == nin ? src->rank : -1;
        for (int d = 0; d < val->rank; d++) val->dims[d] = (amp_dim){src->dims[d], -1};
        val->is_input = val->declared = true;
        g->inputs[g->n_inputs++] = v;
        if (i < nin) in_ids[i] = v;
    }
    int dyv = g->inputs[g->n_inputs - 1];
    amp_node n;
    memset(&n, 0, sizeof n);
    n.name = amp_strdup(ctx, "fwd");
    n.op_type = amp_strdup(ctx, t->node.op_type);
    n.domain = amp_strdup(ctx, t->node.domain);
    n.op = t->node.op;
    n.inputs = amp_alloc(ctx, sizeof(int) * (size_t)(nin + 1));
    n.outputs = amp_alloc(ctx, sizeof(int) * (size_t)(nout + 1));
    n.n_inputs = nin;
    n.n_outputs = nout;
    for (int i = 0; i < nin; i++) n.inputs[i] = in_ids[i];
    for (int k = 0; k < nout; k++) {
        char nm[16];
        snprintf(nm, sizeof nm, "y%d", k);
        out_ids[k] = n.outputs[k] = amp_graph_new_value(g, nm);
        g->values[out_ids[k]].dtype = y[k]->dtype;
    }
    if ((s = copy_attrs(&t->node, &n)) || (s = amp_graph_add_node(g, &n)) || (s = amp_graph_link(g))) goto done;
    for (int i = 0; i < nin; i++)
        if (wrt[i] && in[i]) {
            which[nw] = i;
            wrt_ids[nw++] = in_ids[i];
        }
    if ((s = amp_pass_autodiff(g, out_ids[0], dyv, nw, wrt_ids, grad_ids))) goto done;
    if (pr) {
        pr->found = -1;
        for (int ni = 0; ni < g->n_nodes; ni++)
            if (strcmp(g->nodes[ni].op_type, pr->op) == 0)
                pr->found = pr->input < g->nodes[ni].n_inputs && g->nodes[ni].inputs[pr->input] >= 0;
    }
    g->outputs = amp_calloc(ctx, (size_t)nw + 1, sizeof(int));
    const char *onames[16], *inames[17];
    const amp_tensor *ins[17];
    int no = 0, ni = 0;
    for (int w = 0; w < nw; w++)
        if (grad_ids[w] >= 0) {
            g->values[grad_ids[w]].is_output = true;
            g->outputs[g->n_outputs++] = grad_ids[w];
        }
    m = amp_calloc(ctx, 1, sizeof *m);
    m->ctx = ctx;
    m->g = g;
    m->hash = amp_graph_hash(g);
    g = NULL;
    amp_session_options so = {.struct_size = sizeof so, .backend = tu_backend(), .threads = 2};
    if ((s = amp_session_create(m, &so, &sess))) goto done;
    for (int i = 0; i < nin; i++)
        if (in[i]) {
            inames[ni] = m->g->values[in_ids[i]].name;
            ins[ni++] = in[i];
        }
    inames[ni] = "dy";
    ins[ni++] = dy;
    amp_tensor *outs[16] = {0};
    for (int w = 0; w < nw; w++)
        if (grad_ids[w] >= 0) onames[no++] = m->g->values[grad_ids[w]].name;
    s = amp_session_run(sess, ni, inames, ins, no, onames, outs);
    if (s) {
        amp_seterr(ctx, s, "%s", amp_session_last_error(sess));
        goto done;
    }
    no = 0;
    for (int w = 0; w < nw; w++)
        if (grad_ids[w] >= 0) grads[which[w]] = outs[no++];
done:
    free_all(y, 8);
    amp_session_destroy(sess);
    amp_model_destroy(m);
    amp_graph_destroy(g);
    return s;
}

/* A gradient has exactly its value's dtype and shape. */
static void expect_like(const amp_tensor *g, const amp_tensor *x, const char *label) {
    cr_assert_eq(g->dtype, x->dtype, "%s: gradient is %s, input %s", label, amp_dtype_name(g->dtype),
                 amp_dtype_name(x->dtype));
    cr_assert_eq(g->rank, x->rank, "%s: gradient rank %d, input rank %d", label, g->rank, x->rank);
    for (int d = 0; d < x->rank; d++)
        cr_assert_eq(g->dims[d], x->dims[d], "%s: gradient dim %d is %lld, input's %lld", label, d,
                     (long long)g->dims[d], (long long)x->dims[d]);
}

/* gc_check, asserting that it ran, checked every wrt input and met GC_TOL; and, since gc_check
 * compares values only, that every gradient has its input's dtype and shape. */
static void gc(amp_test_node *t, int nin, amp_tensor *const *in, const bool *wrt, int nout, const char *label) {
    gc_result r;
    amp_status s = gc_check(t, nin, in, wrt, nout, 1e-6, &r);
    cr_assert_eq(s, AMP_OK, "%s: %s", label, r.why);
    amp_tensor *y[8] = {0}, *g[16];
    cr_assert_eq(tn_run(t, nin, in, nout, y), AMP_OK);
    cr_assert_eq(ad_run(t, nin, in, wrt, nout, y[0], true, g, NULL), AMP_OK, "%s: %s", label, amp_context_last_error(ctx));
    for (int i = 0; i < nin; i++)
        if (wrt[i] && in[i]) expect_like(g[i], in[i], label);
    free_all(g, nin);
    free_all(y, 8);
    int want = 0;
    for (int i = 0; i < nin; i++) want += wrt[i] && in[i];
    cr_assert_eq(r.checked, want, "%s: checked %d inputs of %d", label, r.checked, want);
    cr_assert_lt(r.max_rel, GC_TOL, "%s: max_rel %g at input %d", label, r.max_rel, r.worst_input);
}

/* Relative L2 distance of a from ref, both read as doubles. */
static double rel_l2(const amp_tensor *a, const amp_tensor *ref) { return sqrt(tt_nse(a, ref)); }

/* The node run through autodiff in each 16-bit dtype and in f64 on the same rounded values;
 * every wrt gradient within LP_TOL of the f64 one. in[] are f64 masters. */
static void half_vs_f64(amp_test_node *t, int nin, amp_tensor *const *in, const bool *wrt, int nout, const char *label) {
    int64_t ydims[AMP_MAX_RANK];
    amp_tensor *y[8] = {0};
    cr_assert_eq(tn_run(t, nin, in, nout, y), AMP_OK, "%s: %s", label, amp_context_last_error(ctx));
    int yr = y[0]->rank;
    memcpy(ydims, y[0]->dims, sizeof ydims);
    free_all(y, 8);
    amp_tensor *dy64 = rnd(AMP_F64, yr, ydims, -1, 1, 99);
    for (int h = 0; h < 2; h++) {
        amp_dtype dt = half_types[h];
        amp_tensor *lo[16] = {0}, *hi[16] = {0}, *glo[16], *ghi[16];
        for (int i = 0; i < nin; i++) {
            if (!in[i]) continue;
            /* float inputs go 16-bit; others (bool conditions, integer exponents) stay */
            lo[i] = amp_dtype_is_float(in[i]->dtype) ? as(in[i], dt) : as(in[i], in[i]->dtype);
            hi[i] = amp_dtype_is_float(in[i]->dtype) ? as(lo[i], AMP_F64) : as(in[i], in[i]->dtype);
        }
        amp_tensor *dylo = as(dy64, dt), *dyhi = as(dylo, AMP_F64);
        amp_status s = ad_run(t, nin, lo, wrt, nout, dylo, true, glo, NULL);
        cr_assert_eq(s, AMP_OK, "%s %s: %s", label, amp_dtype_name(dt), amp_context_last_error(ctx));
        s = ad_run(t, nin, hi, wrt, nout, dyhi, true, ghi, NULL);
        cr_assert_eq(s, AMP_OK, "%s f64: %s", label, amp_context_last_error(ctx));
        for (int i = 0; i < nin; i++) {
            if (!wrt[i]) continue;
            cr_assert(glo[i] && ghi[i], "%s: no gradient for input %d", label, i);
            cr_assert_eq(glo[i]->dtype, dt, "%s: gradient %d is %s", label, i, amp_dtype_name(glo[i]->dtype));
            double e = rel_l2(glo[i], ghi[i]);
            cr_assert_lt(e, LP_TOL, "%s %s: input %d relative L2 %g", label, amp_dtype_name(dt), i, e);
        }
        free_all(glo, nin);
        free_all(ghi, nin);
        free_all(lo, nin);
        free_all(hi, nin);
        amp_tensor_destroy(dylo);
        amp_tensor_destroy(dyhi);
    }
    amp_tensor_destroy(dy64);
}

/* ---- binary arithmetic ------------------------------------------------------------------------- */

static const struct {
    int ra, rb;
    int64_t da[AMP_MAX_RANK], db[AMP_MAX_RANK];
} pairs[] = {
    {3, 3, {2, 3, 4}, {2, 3, 4}},    {3, 1, {2, 3, 4}, {4}},       {2, 2, {3, 1}, {1, 4}},
    {0, 2, {0}, {3, 2}},             {4, 3, {2, 3, 1, 5}, {3, 4, 1}}, {2, 1, {0, 3}, {3}},
    {1, 3, {1}, {2, 2, 3}},          {3, 3, {2, 1, 3}, {1, 1, 1}},
};
#define N_PAIRS ((int)(sizeof pairs / sizeof pairs[0]))

static void binary_operands(const char *op, int ra, const int64_t *da, int rb, const int64_t *db, uint64_t seed,
                            amp_tensor **a, amp_tensor **b) {
    if (!strcmp(op, "Pow")) {
        *a = rnd(AMP_F64, ra, da, 0.5, 2.0, seed);
        *b = rnd(AMP_F64, rb, db, -2.0, 2.0, seed + 1);
    } else if (!strcmp(op, "Div")) {
        *a = rnd(AMP_F64, ra, da, -2.0, 2.0, seed);
        *b = rnd_away(AMP_F64, rb, db, 0.5, 2.0, seed + 1);
    } else {
        *a = rnd(AMP_F64, ra, da, -2.0, 2.0, seed);
        *b = rnd(AMP_F64, rb, db, -2.0, 2.0, seed + 1);
    }
}

Test(grad_elementwise, binary_arith_broadcasting) {
    const char *ops[] = {"Add", "Sub", "Mul", "Div", "Pow"};
    for (int o = 0; o < 5; o++)
        for (int p = 0; p < N_PAIRS; p++)
            for (int flip = 0; flip < 2; flip++) {
                int ra = flip ? pairs[p].rb : pairs[p].ra, rb = flip ? pairs[p].ra : pairs[p].rb;
                const int64_t *da = flip ? pairs[p].db : pairs[p].da, *db = flip ? pairs[p].da : pairs[p].db;
                amp_tensor *in[2];
                binary_operands(ops[o], ra, da, rb, db, 10 + (uint64_t)p, &in[0], &in[1]);
                amp_test_node *t = tn_new(ctx, ops[o]);
                bool wrt[2] = {true, true};
                char label[64];
                snprintf(label, sizeof label, "%s pair %d%s", ops[o], p, flip ? " flipped" : "");
                gc(t, 2, in, wrt, 1, label);
                /* one input at a time: the builder must not need the other's gradient */
                for (int w = 0; w < 2; w++) {
                    bool one[2] = {w == 0, w == 1};
                    gc(t, 2, in, one, 1, label);
                }
                tn_free(t);
                free_all(in, 2);
            }
}

/* Before opset 7: B broadcasts onto A only with broadcast=1, at `axis` when given. */
Test(grad_elementwise, binary_arith_legacy_broadcast) {
    const char *ops[] = {"Add", "Sub", "Mul", "Div", "Pow"};
    const int64_t da[4] = {2, 3, 4, 5}, d34[2] = {3, 4}, d45[2] = {4, 5};
    for (int o = 0; o < 5; o++)
        for (int v = 0; v < 4; v++) {
            amp_tensor *in[2];
            const int64_t *db = v == 0 ? da : v == 3 ? d45 : d34;
            binary_operands(ops[o], 4, da, v == 0 ? 4 : 2, db, 40 + (uint64_t)v, &in[0], &in[1]);
            amp_test_node *t = tn_new(ctx, ops[o]);
            t->opset = 6;
            if (v > 0) tn_int(t, "broadcast", 1);
            if (v == 1) tn_int(t, "axis", 1);
            if (v == 2) tn_int(t, "axis", -3);
            bool wrt[2] = {true, true};
            char label[64];
            snprintf(label, sizeof label, "%s opset 6 variant %d", ops[o], v);
            gc(t, 2, in, wrt, 1, label);
            tn_free(t);
            free_all(in, 2);
        }
}

/* Pow's exponent may have its own dtype from opset 12: an integer exponent gets no gradient,
 * a float one of another width gets one in its own dtype. */
Test(grad_elementwise, pow_mixed_dtypes) {
    int64_t d[2] = {3, 4};
    amp_tensor *in[2] = {rnd(AMP_F64, 2, d, 0.5, 2, 1), tt_rand(ctx, AMP_I64, 1, &d[1], -2, 4, 2)};
    amp_test_node *t = tn_new(ctx, "Pow");
    bool wrt[2] = {true, false};
    gc(t, 2, in, wrt, 1, "Pow f64 ^ i64");
    amp_tensor_destroy(in[1]);
    in[1] = rnd(AMP_F32, 1, &d[1], -2, 2, 3);
    bool both[2] = {true, true};
    gc(t, 2, in, both, 1, "Pow f64 ^ f32");
    amp_tensor *g[2];
    amp_tensor *dy = rnd(AMP_F64, 2, d, -1, 1, 4);
    cr_assert_eq(ad_run(t, 2, in, both, 1, dy, true, g, NULL), AMP_OK, "%s", amp_context_last_error(ctx));
    cr_assert_eq(g[0]->dtype, AMP_F64);
    cr_assert_eq(g[1]->dtype, AMP_F32);
    cr_assert_eq(g[1]->rank, 1);
    cr_assert_eq(g[1]->dims[0], 4);
    free_all(g, 2);
    amp_tensor_destroy(dy);
    free_all(in, 2);
    tn_free(t);
}

Test(grad_elementwise, prelu_slopes) {
    const int64_t dx[4] = {2, 3, 4, 5};
    const struct {
        int rank;
        int64_t dims[4];
    } slopes[] = {{3, {3, 1, 1}}, {1, {5}}, {1, {1}}, {0, {0}}, {4, {2, 3, 4, 5}}, {2, {4, 1}}};
    for (int s = 0; s < 6; s++) {
        amp_tensor *in[2] = {rnd_away(AMP_F64, 4, dx, 0.1, 2, 50 + (uint64_t)s),
                             rnd(AMP_F64, slopes[s].rank, slopes[s].dims, -1, 1, 60 + (uint64_t)s)};
        amp_test_node *t = tn_new(ctx, "PRelu");
        bool wrt[2] = {true, true};
        char label[64];
        snprintf(label, sizeof label, "PRelu slope %d", s);
        gc(t, 2, in, wrt, 1, label);
        tn_free(t);
        free_all(in, 2);
    }
}

/* Before opset 7 a 1-D slope of C values follows axis 1; other slopes stay trailing. */
Test(grad_elementwise, prelu_legacy) {
    const int64_t dx[4] = {2, 3, 4, 5}, c[1] = {3}, w[1] = {5}, one[1] = {1};
    const int64_t *ds[3] = {c, w, one};
    for (int s = 0; s < 3; s++) {
        amp_tensor *in[2] = {rnd_away(AMP_F64, 4, dx, 0.1, 2, 70), rnd(AMP_F64, 1, ds[s], -1, 1, 71)};
        amp_test_node *t = tn_new(ctx, "PRelu");
        t->opset = 6;
        bool wrt[2] = {true, true};
        char label[64];
        snprintf(label, sizeof label, "PRelu opset 6 slope %lld", (long long)ds[s][0]);
        gc(t, 2, in, wrt, 1, label);
        tn_free(t);
        free_all(in, 2);
    }
}

/* The alignment of a legacy PRelu slope depends on shapes: without declared shapes autodiff
 * reports it instead of guessing. */
Test(grad_elementwise, prelu_legacy_needs_shapes) {
    const int64_t dx[4] = {2, 3, 4, 5}, c[1] = {3};
    amp_tensor *in[2] = {rnd_away(AMP_F64, 4, dx, 0.1, 2, 70), rnd(AMP_F64, 1, c, -1, 1, 71)};
    amp_tensor *dy = rnd(AMP_F64, 4, dx, -1, 1, 72), *g[2];
    amp_test_node *t = tn_new(ctx, "PRelu");
    t->opset = 6;
    bool wrt[2] = {true, true};
    amp_status s = ad_run(t, 2, in, wrt, 1, dy, false, g, NULL);
    cr_assert_eq(s, AMP_ERR_UNSUPPORTED, "status %d", s);
    cr_assert(strstr(amp_context_last_error(ctx), "PRelu"), "%s", amp_context_last_error(ctx));
    /* the X gradient alone needs no alignment */
    bool xonly[2] = {true, false};
    cr_assert_eq(ad_run(t, 2, in, xonly, 1, dy, false, g, NULL), AMP_OK, "%s", amp_context_last_error(ctx));
    cr_assert(g[0]);
    free_all(g, 2);
    amp_tensor_destroy(dy);
    free_all(in, 2);
    tn_free(t);
}

/* Shapes that every run binds equal (declared graph inputs) need no SumToShape; unknown shapes
 * get one, which is a copy when they turn out equal. */
Test(grad_elementwise, sum_to_shape_only_when_needed) {
    int64_t d[2] = {3, 4};
    amp_tensor *in[2] = {rnd(AMP_F64, 2, d, -1, 1, 1), rnd(AMP_F64, 2, d, -1, 1, 2)};
    amp_tensor *dy = rnd(AMP_F64, 2, d, -1, 1, 3), *g[2];
    bool wrt[2] = {true, true};
    amp_test_node *t = tn_new(ctx, "Mul");
    for (int declare = 0; declare < 2; declare++) {
        probe pr = {"SumToShape", 0, -2};
        cr_assert_eq(ad_run(t, 2, in, wrt, 1, dy, declare, g, &pr), AMP_OK, "%s", amp_context_last_error(ctx));
        cr_assert_eq(pr.found, declare ? -1 : 1, "declared %d: SumToShape probe %d", declare, pr.found);
        for (int64_t e = 0; e < 12; e++) {
            cr_assert_eq(tt_get(g[0], e), tt_get(dy, e) * tt_get(in[1], e));
            cr_assert_eq(tt_get(g[1], e), tt_get(dy, e) * tt_get(in[0], e));
        }
        free_all(g, 2);
    }
    tn_free(t);
    amp_tensor_destroy(dy);
    free_all(in, 2);
}

/* ---- variadic, Where ----------------------------------------------------------------------------- */

Test(grad_elementwise, variadic_broadcasting) {
    const char *ops[] = {"Sum", "Mean", "Min", "Max"};
    const struct {
        int n;
        int rank[3];
        int64_t dims[3][3];
    } cases[] = {
        {1, {2}, {{2, 3}}},
        {2, {2, 1}, {{2, 3}, {3}}},
        {2, {2, 2}, {{2, 3}, {2, 3}}},
        {3, {3, 2, 1}, {{2, 1, 4}, {3, 1}, {4}}},
        {3, {0, 2, 1}, {{0}, {2, 3}, {1}}},
    };
    for (int o = 0; o < 4; o++)
        for (int c = 0; c < 5; c++) {
            amp_tensor *in[3] = {0};
            bool wrt[3] = {0};
            for (int i = 0; i < cases[c].n; i++) {
                in[i] = rnd(AMP_F64, cases[c].rank[i], cases[c].dims[i], -2, 2, 100 + (uint64_t)(c * 3 + i));
                wrt[i] = true;
            }
            amp_test_node *t = tn_new(ctx, ops[o]);
            char label[64];
            snprintf(label, sizeof label, "%s case %d", ops[o], c);
            gc(t, cases[c].n, in, wrt, 1, label);
            tn_free(t);
            free_all(in, 3);
        }
}

/* Opset 6 Mean: the division by n needs the legacy broadcast flag. */
Test(grad_elementwise, mean_legacy) {
    int64_t d[2] = {2, 3};
    amp_tensor *in[3] = {rnd(AMP_F64, 2, d, -2, 2, 1), rnd(AMP_F64, 2, d, -2, 2, 2), rnd(AMP_F64, 2, d, -2, 2, 3)};
    bool wrt[3] = {true, true, true};
    amp_test_node *t = tn_new(ctx, "Mean");
    t->opset = 6;
    gc(t, 3, in, wrt, 1, "Mean opset 6");
    tn_free(t);
    free_all(in, 3);
}

Test(grad_elementwise, where_broadcasting) {
    const struct {
        int r[3];
        int64_t d[3][3];
    } cases[] = {
        {{2, 2, 2}, {{3, 4}, {3, 4}, {3, 4}}},
        {{3, 2, 2}, {{2, 3, 4}, {3, 1}, {1, 4}}},
        {{1, 3, 0}, {{4}, {2, 3, 1}, {0}}},
    };
    for (int c = 0; c < 3; c++) {
        amp_tensor *in[3] = {tt_rand(ctx, AMP_BOOL, cases[c].r[0], cases[c].d[0], 0, 2, 7),
                             rnd(AMP_F64, cases[c].r[1], cases[c].d[1], -2, 2, 8),
                             rnd(AMP_F64, cases[c].r[2], cases[c].d[2], -2, 2, 9)};
        bool wrt[3] = {false, true, true};
        amp_test_node *t = tn_new(ctx, "Where");
        char label[32];
        snprintf(label, sizeof label, "Where case %d", c);
        gc(t, 3, in, wrt, 1, label);
        tn_free(t);
        free_all(in, 3);
    }
}

/* ---- unary ------------------------------------------------------------------------------------- */

typedef struct ucase {
    const char *op;
    double lo, hi;
    bool away;       /* |x| in [lo, hi) with random signs */
    int nk;          /* kinks to stay clear of */
    double kinks[3];
    const char *a1;  /* up to two float attributes */
    float v1;
    const char *a2;
    float v2;
    const char *sattr, *sval; /* one string attribute */
} ucase;

static const ucase ucases[] = {
    {.op = "Relu", .lo = 0.1, .hi = 2, .away = true},
    {.op = "LeakyRelu", .lo = 0.1, .hi = 2, .away = true},
    {.op = "LeakyRelu", .lo = 0.1, .hi = 2, .away = true, .a1 = "alpha", .v1 = 0.3f},
    {.op = "Sigmoid", .lo = -4, .hi = 4},
    {.op = "Tanh", .lo = -3, .hi = 3},
    {.op = "Erf", .lo = -2, .hi = 2},
    {.op = "Gelu", .lo = -3, .hi = 3},
    {.op = "Gelu", .lo = -3, .hi = 3, .sattr = "approximate", .sval = "tanh"},
    {.op = "Gelu", .lo = -3, .hi = 3, .sattr = "approximate", .sval = "none"},
    {.op = "Sqrt", .lo = 0.3, .hi = 3},
    {.op = "Exp", .lo = -2, .hi = 2},
    {.op = "Log", .lo = 0.3, .hi = 3},
    {.op = "Neg", .lo = -2, .hi = 2},
    {.op = "Abs", .lo = 0.1, .hi = 2, .away = true},
    {.op = "Reciprocal", .lo = 0.3, .hi = 3, .away = true},
    {.op = "Sin", .lo = -3, .hi = 3},
    {.op = "Cos", .lo = -3, .hi = 3},
    {.op = "Tan", .lo = -1.2, .hi = 1.2},
    {.op = "Asin", .lo = -0.9, .hi = 0.9},
    {.op = "Acos", .lo = -0.9, .hi = 0.9},
    {.op = "Atan", .lo = -3, .hi = 3},
    {.op = "Sinh", .lo = -2, .hi = 2},
    {.op = "Cosh", .lo = -2, .hi = 2},
    {.op = "Asinh", .lo = -3, .hi = 3},
    {.op = "Acosh", .lo = 1.2, .hi = 3},
    {.op = "Atanh", .lo = -0.9, .hi = 0.9},
    {.op = "Softplus", .lo = -4, .hi = 4},
    {.op = "Softsign", .lo = 0.05, .hi = 3, .away = true},
    {.op = "Elu", .lo = 0.05, .hi = 2, .away = true},
    {.op = "Elu", .lo = 0.05, .hi = 2, .away = true, .a1 = "alpha", .v1 = 0.5f},
    {.op = "Selu", .lo = 0.05, .hi = 2, .away = true},
    {.op = "Selu", .lo = 0.05, .hi = 2, .away = true, .a1 = "alpha", .v1 = 1.5f, .a2 = "gamma", .v2 = 1.2f},
    {.op = "Celu", .lo = 0.05, .hi = 2, .away = true},
    {.op = "Celu", .lo = 0.05, .hi = 2, .away = true, .a1 = "alpha", .v1 = 2.0f},
    {.op = "HardSigmoid", .lo = -4, .hi = 4, .nk = 2, .kinks = {-2.5, 2.5}},
    {.op = "HardSigmoid", .lo = -4, .hi = 4, .nk = 2, .kinks = {-4.0 / 3.0, 2.0}, .a1 = "alpha", .v1 = 0.3f, .a2 = "beta", .v2 = 0.4f},
    {.op = "HardSwish", .lo = -5, .hi = 5, .nk = 2, .kinks = {-3, 3}},
    {.op = "ThresholdedRelu", .lo = -2, .hi = 3, .nk = 1, .kinks = {1}},
    {.op = "ThresholdedRelu", .lo = -2, .hi = 3, .nk = 1, .kinks = {0.5}, .a1 = "alpha", .v1 = 0.5f},
    {.op = "Shrink", .lo = -2, .hi = 2, .nk = 2, .kinks = {-0.5, 0.5}},
    {.op = "Shrink", .lo = -2, .hi = 2, .nk = 2, .kinks = {-0.3, 0.3}, .a1 = "lambd", .v1 = 0.3f, .a2 = "bias", .v2 = 0.1f},
    {.op = "Identity", .lo = -2, .hi = 2},
};
#define N_UCASES ((int)(sizeof ucases / sizeof ucases[0]))

static amp_test_node *unary_node(const ucase *u) {
    amp_test_node *t = tn_new(ctx, u->op);
    if (u->a1) tn_float(t, u->a1, u->v1);
    if (u->a2) tn_float(t, u->a2, u->v2);
    if (u->sattr) tn_str(t, u->sattr, u->sval);
    return t;
}

static amp_tensor *unary_input(const ucase *u, amp_dtype dt, int rank, const int64_t *dims, uint64_t seed) {
    return u->away ? rnd_away(dt, rank, dims, u->lo, u->hi, seed) : rnd_k(dt, rank, dims, u->lo, u->hi, seed, u->nk, u->kinks);
}

static void unary_label(const ucase *u, char *buf, size_t n) {
    snprintf(buf, n, "%s%s%s%s%s", u->op, u->a1 ? " " : "", u->a1 ? u->a1 : "", u->sattr ? " " : "",
             u->sval ? u->sval : "");
}

Test(grad_elementwise, unary_all_ops) {
    const int64_t d[3] = {3, 4, 5}, dz[2] = {0, 3};
    for (int c = 0; c < N_UCASES; c++) {
        const ucase *u = &ucases[c];
        char label[64];
        unary_label(u, label, sizeof label);
        amp_test_node *t = unary_node(u);
        amp_tensor *in[1] = {unary_input(u, AMP_F64, 3, d, 200 + (uint64_t)c)};
        bool wrt[1] = {true};
        gc(t, 1, in, wrt, 1, label);
        free_all(in, 1);
        /* zero-size tensors run the same path */
        in[0] = unary_input(u, AMP_F64, 2, dz, 1);
        gc(t, 1, in, wrt, 1, label);
        free_all(in, 1);
        /* rank 0 */
        in[0] = unary_input(u, AMP_F64, 0, NULL, 300 + (uint64_t)c);
        gc(t, 1, in, wrt, 1, label);
        free_all(in, 1);
        tn_free(t);
    }
}

Test(grad_elementwise, unary_all_ops_16bit) {
    const int64_t d[2] = {7, 33};
    for (int c = 0; c < N_UCASES; c++) {
        const ucase *u = &ucases[c];
        char label[64];
        unary_label(u, label, sizeof label);
        amp_test_node *t = unary_node(u);
        amp_tensor *in[1] = {unary_input(u, AMP_F64, 2, d, 400 + (uint64_t)c)};
        /* keep the 16-bit rounding of the input off the kinks too */
        amp_tensor *r = as(in[0], AMP_BF16);
        for (int64_t i = 0; i < r->numel; i++)
            for (int k = 0; k < u->nk; k++)
                if (fabs(tt_get(r, i) - u->kinks[k]) < 0.03) amp_st(AMP_F64, in[0]->data, i, u->kinks[k] + 0.1);
        amp_tensor_destroy(r);
        bool wrt[1] = {true};
        half_vs_f64(t, 1, in, wrt, 1, label);
        free_all(in, 1);
        tn_free(t);
    }
}

/* Mish exists at opset 18 only, past the opsets of the Mul and ReduceSum that gc_check's loss
 * uses; its gradient is checked here against central differences of the forward kernel, which
 * for an elementwise op can perturb every element at once. */
Test(grad_elementwise, mish) {
    const int64_t d[2] = {4, 25};
    amp_tensor *x = rnd(AMP_F64, 2, d, -5, 5, 5), *dy = rnd(AMP_F64, 2, d, -1, 1, 6), *g[1];
    amp_test_node *t = tn_new(ctx, "Mish");
    t->opset = 18;
    bool wrt[1] = {true};
    cr_assert_eq(ad_run(t, 1, &x, wrt, 1, dy, true, g, NULL), AMP_OK, "%s", amp_context_last_error(ctx));
    const double eps = 1e-6;
    amp_tensor *xp = as(x, AMP_F64), *xm = as(x, AMP_F64), *yp[1], *ym[1], *fd;
    for (int64_t i = 0; i < x->numel; i++) {
        amp_st(AMP_F64, xp->data, i, tt_get(x, i) + eps);
        amp_st(AMP_F64, xm->data, i, tt_get(x, i) - eps);
    }
    cr_assert_eq(tn_run(t, 1, &xp, 1, yp), AMP_OK);
    cr_assert_eq(tn_run(t, 1, &xm, 1, ym), AMP_OK);
    fd = as(x, AMP_F64);
    for (int64_t i = 0; i < x->numel; i++)
        amp_st(AMP_F64, fd->data, i, tt_get(dy, i) * (tt_get(yp[0], i) - tt_get(ym[0], i)) / (2 * eps));
    double e = rel_l2(g[0], fd);
    cr_assert_lt(e, GC_TOL, "Mish relative error %g", e);
    amp_tensor *all[8] = {x, dy, g[0], xp, xm, yp[0], ym[0], fd};
    free_all(all, 8);
    /* 16-bit */
    amp_tensor *in[1] = {rnd(AMP_F64, 2, d, -5, 5, 7)};
    half_vs_f64(t, 1, in, wrt, 1, "Mish");
    free_all(in, 1);
    tn_free(t);
}

/* ---- ties: PyTorch's conventions, written from its rules ---------------------------------------- */

/* dx for one unary node on x with dy = 1 everywhere. */
static amp_tensor *unary_grad_at(amp_test_node *t, int n, const double *xs) {
    int64_t d[1] = {n};
    amp_tensor *x = tt_make(ctx, AMP_F64, 1, d, xs), *dy = filled(AMP_F64, 1, d, 1.0), *g[1];
    bool wrt[1] = {true};
    cr_assert_eq(ad_run(t, 1, &x, wrt, 1, dy, true, g, NULL), AMP_OK, "%s", amp_context_last_error(ctx));
    amp_tensor_destroy(x);
    amp_tensor_destroy(dy);
    return g[0];
}

static void expect_values(const amp_tensor *g, int n, const double *want, const char *label) {
    cr_assert_eq(g->numel, n);
    for (int i = 0; i < n; i++)
        cr_assert(fabs(tt_get(g, i) - want[i]) <= 1e-12 * (1 + fabs(want[i])), "%s: element %d is %g, expected %g",
                  label, i, tt_get(g, i), want[i]);
}

Test(grad_elementwise, ties_unary) {
    const struct {
        const char *op;
        const char *attr;
        float v;
        int n;
        double x[4], want[4];
    } cases[] = {
        {"Relu", NULL, 0, 3, {0, -1, 2}, {0, 0, 1}},
        {"Abs", NULL, 0, 3, {0, -1, 2}, {0, -1, 1}},
        {"LeakyRelu", "alpha", 0.25f, 3, {0, -1, 2}, {0.25, 0.25, 1}},
        {"Elu", "alpha", 0.5f, 2, {0, 1}, {0.5, 1}},
        {"Celu", NULL, 0, 2, {0, 1}, {1, 1}},
        {"HardSwish", NULL, 0, 4, {-3, 3, -4, 4}, {-0.5, 1.5, 0, 1}},
        {"HardSigmoid", "alpha", 0.25f, 3, {-2, 2, 0}, {0, 0, 0.25}},
        {"ThresholdedRelu", NULL, 0, 2, {1, 1.5}, {0, 1}},
        {"Shrink", NULL, 0, 3, {0.5, -0.5, 0.7}, {0, 0, 1}},
    };
    for (int c = 0; c < 9; c++) {
        amp_test_node *t = tn_new(ctx, cases[c].op);
        if (cases[c].attr) tn_float(t, cases[c].attr, cases[c].v);
        amp_tensor *g = unary_grad_at(t, cases[c].n, cases[c].x);
        expect_values(g, cases[c].n, cases[c].want, cases[c].op);
        amp_tensor_destroy(g);
        tn_free(t);
    }
}

/* Clip passes the gradient on the bounds themselves (PyTorch's clamp). */
Test(grad_elementwise, ties_clip) {
    const double xs[5] = {-0.5, 0.7, -0.6, 0.8, 0.1}, want[5] = {1, 1, 0, 0, 1};
    amp_test_node *t = tn_new(ctx, "Clip");
    t->opset = 6;
    tn_float(t, "min", -0.5f);
    tn_float(t, "max", 0.7f);
    /* the bounds as floats, so x equals them exactly */
    double xf[5];
    for (int i = 0; i < 5; i++) xf[i] = (double)(float)xs[i];
    amp_tensor *g = unary_grad_at(t, 5, xf);
    expect_values(g, 5, want, "Clip");
    amp_tensor_destroy(g);
    tn_free(t);
}

/* Min and Max split the gradient evenly between inputs equal to the output. */
Test(grad_elementwise, ties_min_max) {
    int64_t d[1] = {4};
    const double a[4] = {1, 2, 3, 4}, b[4] = {1, 5, 3, 0}, c[4] = {1, 0, 3, 4};
    amp_tensor *in[3] = {tt_make(ctx, AMP_F64, 1, d, a), tt_make(ctx, AMP_F64, 1, d, b), tt_make(ctx, AMP_F64, 1, d, c)};
    amp_tensor *dy = rnd(AMP_F64, 1, d, 1, 2, 3), *g[3];
    bool wrt[3] = {true, true, true};
    /* Max: element 0 three-way tie, 1 b, 2 three-way, 3 a and c */
    double sel_max[3][4] = {{1, 0, 1, 1}, {1, 1, 1, 0}, {1, 0, 1, 1}}, cnt_max[4] = {3, 1, 3, 2};
    /* Min: element 0 three-way, 1 c, 2 three-way, 3 b */
    double sel_min[3][4] = {{1, 0, 1, 0}, {1, 0, 1, 1}, {1, 1, 1, 0}}, cnt_min[4] = {3, 1, 3, 1};
    for (int m = 0; m < 2; m++) {
        amp_test_node *t = tn_new(ctx, m ? "Min" : "Max");
        cr_assert_eq(ad_run(t, 3, in, wrt, 1, dy, true, g, NULL), AMP_OK, "%s", amp_context_last_error(ctx));
        for (int i = 0; i < 3; i++) {
            double want[4];
            for (int e = 0; e < 4; e++)
                want[e] = (m ? sel_min[i][e] / cnt_min[e] : sel_max[i][e] / cnt_max[e]) * tt_get(dy, e);
            expect_values(g[i], 4, want, m ? "Min" : "Max");
        }
        free_all(g, 3);
        tn_free(t);
    }
    amp_tensor_destroy(dy);
    free_all(in, 3);
}

/* ---- Clip ----------------------------------------------------------------------------------------- */

Test(grad_elementwise, clip_variants) {
    const int64_t d[2] = {4, 6};
    /* opset 6: bounds as attributes, one, both or none */
    for (int v = 0; v < 4; v++) {
        amp_test_node *t = tn_new(ctx, "Clip");
        t->opset = 6;
        if (v & 1) tn_float(t, "min", -0.5f);
        if (v & 2) tn_float(t, "max", 0.7f);
        double k[2] = {-0.5, 0.7};
        amp_tensor *in[1] = {rnd_k(AMP_F64, 2, d, -1, 1, 500 + (uint64_t)v, 2, k)};
        bool wrt[1] = {true};
        gc(t, 1, in, wrt, 1, "Clip opset 6");
        free_all(in, 1);
        tn_free(t);
    }
    /* opset 11 and 13: bounds as inputs, omitted or present, and min > max (all max: no gradient) */
    const double lo[4] = {-0.5, NAN, -0.5, 0.6}, hi[4] = {0.7, 0.7, NAN, -0.6};
    for (int opset = 11; opset <= 13; opset += 2)
        for (int v = 0; v < 4; v++) {
            amp_test_node *t = tn_new(ctx, "Clip");
            t->opset = opset;
            double k[2] = {-0.5, 0.7};
            amp_tensor *in[3] = {rnd_k(AMP_F64, 2, d, -1, 1, 520 + (uint64_t)v, 2, k),
                                 isnan(lo[v]) ? NULL : scalar(AMP_F64, lo[v]), isnan(hi[v]) ? NULL : scalar(AMP_F64, hi[v])};
            bool wrt[3] = {true, false, false};
            int nin = in[2] ? 3 : in[1] ? 2 : 1;
            gc(t, nin, in, wrt, 1, "Clip opset 11+");
            if (v == 3) {
                amp_tensor *dy = rnd(AMP_F64, 2, d, -1, 1, 3), *g[3] = {0};
                cr_assert_eq(ad_run(t, nin, in, wrt, 1, dy, true, g, NULL), AMP_OK);
                for (int64_t i = 0; i < g[0]->numel; i++) cr_assert_eq(tt_get(g[0], i), 0.0);
                free_all(g, 3);
                amp_tensor_destroy(dy);
            }
            free_all(in, 3);
            tn_free(t);
        }
    /* 16-bit */
    amp_test_node *t = tn_new(ctx, "Clip");
    double k[2] = {-0.5, 0.7};
    amp_tensor *in[3] = {rnd_k(AMP_F64, 2, d, -1, 1, 530, 2, k), scalar(AMP_F64, -0.5), scalar(AMP_F64, 0.7)};
    bool wrt[3] = {true, false, false};
    half_vs_f64(t, 3, in, wrt, 1, "Clip");
    free_all(in, 3);
    tn_free(t);
}

/* ---- Dropout ---------------------------------------------------------------------------------------- */

Test(grad_elementwise, dropout_inference_is_identity) {
    const int64_t d[2] = {5, 7};
    for (int v = 0; v < 4; v++) {
        amp_test_node *t = tn_new(ctx, "Dropout");
        amp_tensor *in[3] = {rnd(AMP_F64, 2, d, -2, 2, 600), NULL, NULL};
        int nin = 1;
        if (v == 0) {
            t->opset = 10;
            tn_float(t, "ratio", 0.3f);
        } else {
            t->opset = 13;
            if (v >= 2) {
                in[1] = scalar(AMP_F64, 0.3);
                nin = 2;
            }
            if (v == 3) { /* training off */
                in[2] = scalar(AMP_BOOL, 0);
                nin = 3;
            }
        }
        bool wrt[3] = {true, false, false};
        gc(t, nin, in, wrt, 1, "Dropout inference");
        free_all(in, 3);
        tn_free(t);
    }
}

/* Training with a seed: the mask does not depend on X, so finite differences see the same mask.
 * With one output DropoutGrad draws the mask again; with two it reads the forward's mask. */
Test(grad_elementwise, dropout_training_seeded) {
    const int64_t d[2] = {8, 9};
    for (int nout = 1; nout <= 2; nout++)
        for (int r = 0; r < 3; r++) {
            const double ratio[3] = {0.3, 0.0, 1.0};
            amp_test_node *t = tn_new(ctx, "Dropout");
            t->opset = 13;
            tn_int(t, "seed", 7);
            amp_tensor *in[3] = {rnd(AMP_F64, 2, d, -2, 2, 610), scalar(AMP_F64, ratio[r]), scalar(AMP_BOOL, 1)};
            bool wrt[3] = {true, false, false};
            gc(t, 3, in, wrt, nout, nout == 1 ? "Dropout seeded, mask drawn again" : "Dropout seeded, mask read");
            probe pr = {"DropoutGrad", 1, -2};
            amp_tensor *dy = rnd(AMP_F64, 2, d, -1, 1, 3), *g[3];
            cr_assert_eq(ad_run(t, 3, in, wrt, nout, dy, true, g, &pr), AMP_OK, "%s", amp_context_last_error(ctx));
            if (r == 0) cr_assert_eq(pr.found, nout == 2, "DropoutGrad mask input present %d, outputs %d", pr.found, nout);
            free_all(g, 3);
            amp_tensor_destroy(dy);
            free_all(in, 3);
            tn_free(t);
        }
    amp_test_node *t = tn_new(ctx, "Dropout");
    t->opset = 13;
    tn_int(t, "seed", 3);
    amp_tensor *in[3] = {rnd(AMP_F64, 2, d, -2, 2, 620), scalar(AMP_F64, 0.25), scalar(AMP_BOOL, 1)};
    bool wrt[3] = {true, false, false};
    half_vs_f64(t, 3, in, wrt, 1, "Dropout seeded");
    half_vs_f64(t, 3, in, wrt, 2, "Dropout seeded with mask");
    free_all(in, 3);
    tn_free(t);
}

/* Without a seed the forward draws from a hash of X: the gradient must drop exactly the units
 * the forward's mask output shows, whether it reads that mask or draws it again. */
Test(grad_elementwise, dropout_training_content_seed) {
    const int64_t d[2] = {6, 4000};
    amp_dtype dts[4] = {AMP_F32, AMP_F64, AMP_F16, AMP_BF16};
    for (int di = 0; di < 4; di++)
        for (int nout = 1; nout <= 2; nout++) {
            amp_dtype dt = dts[di];
            amp_test_node *t = tn_new(ctx, "Dropout");
            t->opset = 13;
            amp_tensor *in[3] = {rnd(dt, 2, d, -2, 2, 630), scalar(AMP_F32, 0.3), scalar(AMP_BOOL, 1)};
            amp_tensor *y[2], *dy = rnd(dt, 2, d, -1, 1, 631), *g[3];
            cr_assert_eq(tn_run(t, 3, in, 2, y), AMP_OK);
            bool wrt[3] = {true, false, false};
            cr_assert_eq(ad_run(t, 3, in, wrt, nout, dy, true, g, NULL), AMP_OK, "%s", amp_context_last_error(ctx));
            cr_assert_eq(g[0]->dtype, dt);
            int64_t kept = 0;
            double scale = 1.0 / (1.0 - (double)0.3f);
            for (int64_t i = 0; i < dy->numel; i++) {
                bool keep = tt_get(y[1], i) != 0;
                kept += keep;
                amp_tensor *want1;
                int64_t one[1] = {1};
                cr_assert_eq(amp_tensor_create(ctx, dt, 1, one, &want1), AMP_OK);
                /* rounded as the forward rounds x * scale */
                if (dt == AMP_F32 || dt == AMP_F64) amp_st(dt, want1->data, 0, keep ? tt_get(dy, i) * scale : 0.0);
                else amp_st(dt, want1->data, 0, keep ? (float)tt_get(dy, i) * (float)scale : 0.0f);
                double w = tt_get(want1, 0);
                amp_tensor_destroy(want1);
                cr_assert_eq(tt_get(g[0], i), w, "%s nout %d: element %lld is %g, expected %g", amp_dtype_name(dt), nout,
                             (long long)i, tt_get(g[0], i), w);
            }
            /* a real draw: neither all kept nor all dropped, near 70% kept */
            cr_assert(kept > dy->numel * 6 / 10 && kept < dy->numel * 8 / 10, "kept %lld of %lld", (long long)kept,
                      (long long)dy->numel);
            free_all(g, 3);
            free_all(y, 2);
            amp_tensor_destroy(dy);
            free_all(in, 3);
            tn_free(t);
        }
}

/* ---- Identity, Neg, Cast, CastLike ---------------------------------------------------------------- */

Test(grad_elementwise, cast_back_to_input_dtype) {
    const int64_t d[2] = {3, 5};
    /* f32 -> f64: the loss is linear in x, so differences are exact even with an f32 input */
    amp_tensor *x32 = rnd(AMP_F32, 2, d, -2, 2, 700);
    amp_test_node *t = tn_new(ctx, "Cast");
    tn_int(t, "to", AMP_F64);
    bool wrt[2] = {true, false};
    gc(t, 1, &x32, wrt, 1, "Cast f32 to f64");
    tn_free(t);
    amp_tensor *like[2] = {x32, filled(AMP_F64, 1, d, 0)};
    t = tn_new(ctx, "CastLike");
    gc(t, 2, like, wrt, 1, "CastLike f32 like f64");
    tn_free(t);
    amp_tensor_destroy(like[1]);
    amp_tensor_destroy(x32);
    /* f64 -> 16-bit or f32 and back: dX is dY widened, exactly */
    amp_dtype tos[3] = {AMP_F16, AMP_BF16, AMP_F32};
    for (int k = 0; k < 3; k++)
        for (int cl = 0; cl < 2; cl++) {
            amp_tensor *in[2] = {rnd(AMP_F64, 2, d, -2, 2, 710), filled(tos[k], 0, NULL, 0)};
            t = tn_new(ctx, cl ? "CastLike" : "Cast");
            if (!cl) tn_int(t, "to", tos[k]);
            amp_tensor *dy = rnd(tos[k], 2, d, -1, 1, 711), *g[2] = {0};
            cr_assert_eq(ad_run(t, cl ? 2 : 1, in, wrt, 1, dy, true, g, NULL), AMP_OK, "%s", amp_context_last_error(ctx));
            cr_assert_eq(g[0]->dtype, AMP_F64);
            for (int64_t i = 0; i < dy->numel; i++) cr_assert_eq(tt_get(g[0], i), tt_get(dy, i));
            free_all(g, 2);
            amp_tensor_destroy(dy);
            free_all(in, 2);
            tn_free(t);
        }
    /* same dtype: identity */
    amp_tensor *x = rnd(AMP_F64, 2, d, -2, 2, 720);
    t = tn_new(ctx, "Cast");
    tn_int(t, "to", AMP_F64);
    gc(t, 1, &x, wrt, 1, "Cast f64 to f64");
    tn_free(t);
    amp_tensor_destroy(x);
}

/* An FP32 master weight cast to 16-bit for the compute gets its gradient in FP32. */
Test(grad_elementwise, cast_master_weight_gets_f32_gradient) {
    const int64_t d[1] = {64};
    for (int h = 0; h < 2; h++) {
        amp_tensor *w = rnd(AMP_F32, 1, d, -2, 2, 730), *dy = rnd(half_types[h], 1, d, -1, 1, 731), *g[1];
        amp_test_node *t = tn_new(ctx, "Cast");
        tn_int(t, "to", half_types[h]);
        bool wrt[1] = {true};
        cr_assert_eq(ad_run(t, 1, &w, wrt, 1, dy, true, g, NULL), AMP_OK);
        cr_assert_eq(g[0]->dtype, AMP_F32);
        for (int64_t i = 0; i < 64; i++) cr_assert_eq(tt_get(g[0], i), tt_get(dy, i));
        amp_tensor_destroy(g[0]);
        amp_tensor_destroy(w);
        amp_tensor_destroy(dy);
        tn_free(t);
    }
}

/* ---- 16-bit runs of the broadcasting builders and kernels ---------------------------------------- */

Test(grad_elementwise, binary_16bit) {
    const int64_t da[3] = {4, 5, 6}, db[2] = {5, 1}, dc[4] = {2, 3, 4, 5}, ds[3] = {3, 1, 1};
    const char *ops[] = {"Add", "Sub", "Mul", "Div", "Pow"};
    for (int o = 0; o < 5; o++) {
        amp_tensor *in[2];
        binary_operands(ops[o], 3, da, 2, db, 800, &in[0], &in[1]);
        amp_test_node *t = tn_new(ctx, ops[o]);
        bool wrt[2] = {true, true};
        half_vs_f64(t, 2, in, wrt, 1, ops[o]);
        tn_free(t);
        free_all(in, 2);
    }
    amp_tensor *in[2] = {rnd_away(AMP_F64, 4, dc, 0.1, 2, 810), rnd(AMP_F64, 3, ds, -1, 1, 811)};
    amp_test_node *t = tn_new(ctx, "PRelu");
    bool wrt[2] = {true, true};
    half_vs_f64(t, 2, in, wrt, 1, "PRelu");
    tn_free(t);
    free_all(in, 2);
}

Test(grad_elementwise, variadic_where_16bit) {
    const int64_t d1[3] = {2, 3, 4}, d2[2] = {3, 1}, d3[1] = {4};
    const char *ops[] = {"Sum", "Mean", "Min", "Max"};
    for (int o = 0; o < 4; o++) {
        amp_tensor *in[3] = {rnd(AMP_F64, 3, d1, -2, 2, 820), rnd(AMP_F64, 2, d2, -2, 2, 821), rnd(AMP_F64, 1, d3, -2, 2, 822)};
        amp_test_node *t = tn_new(ctx, ops[o]);
        bool wrt[3] = {true, true, true};
        half_vs_f64(t, 3, in, wrt, 1, ops[o]);
        tn_free(t);
        free_all(in, 3);
    }
    amp_tensor *in[3] = {tt_rand(ctx, AMP_BOOL, 3, d1, 0, 2, 830), rnd(AMP_F64, 2, d2, -2, 2, 831), rnd(AMP_F64, 1, d3, -2, 2, 832)};
    amp_test_node *t = tn_new(ctx, "Where");
    bool wrt[3] = {false, true, true};
    half_vs_f64(t, 3, in, wrt, 1, "Where");
    tn_free(t);
    free_all(in, 3);
}

/* ---- SumToShape ----------------------------------------------------------------------------------- */

/* Reference: every element of g added into the target element it came from, in long double. */
static amp_tensor *sum_to_ref(const amp_tensor *g, int tr, const int64_t *tdims, int off) {
    amp_tensor *r;
    cr_assert_eq(amp_tensor_create(ctx, AMP_F64, tr, tdims, &r), AMP_OK);
    long double *acc = calloc((size_t)r->numel + 1, sizeof(long double));
    int64_t td[AMP_MAX_RANK], tst[AMP_MAX_RANK];
    for (int d = 0; d < g->rank; d++) td[d] = 1;
    for (int d = 0; d < tr; d++) td[off + d] = tdims[d];
    int64_t s = 1;
    for (int d = g->rank - 1; d >= 0; d--) {
        tst[d] = s;
        s *= td[d];
    }
    for (int64_t e = 0; e < g->numel; e++) {
        int64_t rem = e, ti = 0;
        for (int d = g->rank - 1; d >= 0; d--) {
            int64_t c = rem % g->dims[d];
            rem /= g->dims[d];
            if (td[d] != 1) ti += c * tst[d];
        }
        acc[ti] += tt_get(g, e);
    }
    for (int64_t i = 0; i < r->numel; i++) amp_st(AMP_F64, r->data, i, (double)acc[i]);
    free(acc);
    return r;
}

static amp_status sum_to(const amp_tensor *g, int tr, const int64_t *tdims, bool has_axis, int64_t axis, int threads,
                         amp_tensor **out) {
    amp_test_node *t = tn_train(ctx, "SumToShape");
    t->threads = threads;
    if (has_axis) tn_int(t, "axis", axis);
    int64_t n[1] = {tr};
    amp_tensor *shape;
    cr_assert_eq(amp_tensor_create(ctx, AMP_I64, 1, n, &shape), AMP_OK);
    for (int d = 0; d < tr; d++) ((int64_t *)shape->data)[d] = tdims[d];
    amp_tensor *in[2] = {(amp_tensor *)g, shape};
    amp_status s = tn_run(t, 2, in, 1, out);
    amp_tensor_destroy(shape);
    tn_free(t);
    return s;
}

static const struct {
    int gr, tr;
    int64_t gd[AMP_MAX_RANK], td[AMP_MAX_RANK];
    int axis; /* -100: none */
} s2s_cases[] = {
    {2, 1, {4, 5}, {5}, -100},
    {2, 2, {4, 5}, {4, 1}, -100},
    {2, 2, {4, 5}, {1, 1}, -100},
    {2, 0, {4, 5}, {0}, -100},
    {2, 2, {4, 5}, {4, 5}, -100},
    {3, 2, {2, 3, 4}, {3, 1}, -100},
    {3, 3, {2, 3, 4}, {2, 1, 4}, -100},
    {3, 3, {2, 3, 4}, {1, 3, 1}, -100},
    {4, 2, {2, 3, 4, 5}, {3, 4}, 1},
    {4, 2, {2, 3, 4, 5}, {3, 1}, -3},
    {8, 8, {2, 1, 3, 2, 1, 2, 3, 2}, {1, 1, 3, 1, 1, 2, 1, 2}, -100},
    {2, 1, {0, 3}, {3}, -100},
    {2, 2, {3, 0}, {3, 1}, -100},
    {2, 2, {2, 0}, {1, 0}, -100},
    {0, 0, {0}, {0}, -100},
    /* large: the split reduction (small outputs) and the per-output paths */
    {2, 1, {300, 257}, {257}, -100},
    {2, 2, {300, 257}, {300, 1}, -100},
    {2, 1, {300, 257}, {1}, -100},
    {2, 1, {64, 8192}, {8192}, -100},
    {2, 2, {8192, 64}, {8192, 1}, -100},
    {3, 2, {3, 5000, 7}, {5000, 1}, -100},
    {3, 3, {5000, 2, 7}, {5000, 1, 7}, -100},
    {4, 3, {16, 3, 40, 40}, {3, 1, 1}, -100},
};
#define N_S2S ((int)(sizeof s2s_cases / sizeof s2s_cases[0]))

Test(grad_elementwise, sum_to_shape_kernel) {
    amp_dtype dts[4] = {AMP_F64, AMP_F32, AMP_F16, AMP_BF16};
    for (int c = 0; c < N_S2S; c++) {
        int off = s2s_cases[c].axis == -100 ? s2s_cases[c].gr - s2s_cases[c].tr
                  : s2s_cases[c].axis < 0   ? s2s_cases[c].axis + s2s_cases[c].gr
                                            : s2s_cases[c].axis;
        amp_tensor *g64 = rnd(AMP_F64, s2s_cases[c].gr, s2s_cases[c].gd, -1, 1, 900 + (uint64_t)c);
        for (int k = 0; k < 4; k++) {
            amp_tensor *g = as(g64, dts[k]), *r[1], *r1[1];
            amp_tensor *ref = sum_to_ref(g, s2s_cases[c].tr, s2s_cases[c].td, off);
            bool ax = s2s_cases[c].axis != -100;
            amp_status s = sum_to(g, s2s_cases[c].tr, s2s_cases[c].td, ax, s2s_cases[c].axis, 2, r);
            cr_assert_eq(s, AMP_OK, "case %d %s: %s", c, amp_dtype_name(dts[k]), amp_context_last_error(ctx));
            cr_assert_eq(r[0]->dtype, dts[k]);
            cr_assert_eq(r[0]->rank, s2s_cases[c].tr);
            for (int d = 0; d < s2s_cases[c].tr; d++) cr_assert_eq(r[0]->dims[d], s2s_cases[c].td[d]);
            double e = tt_nse(r[0], ref);
            double tol = dts[k] == AMP_F64 ? 1e-26 : dts[k] == AMP_F32 ? 1e-12 : LP_TOL * LP_TOL;
            cr_assert_leq(e, tol, "case %d %s: nse %g", c, amp_dtype_name(dts[k]), e);
            /* the same bits with one thread: sums never depend on the thread count */
            cr_assert_eq(sum_to(g, s2s_cases[c].tr, s2s_cases[c].td, ax, s2s_cases[c].axis, 1, r1), AMP_OK);
            cr_assert(r[0]->nbytes == r1[0]->nbytes && !memcmp(r[0]->data, r1[0]->data, r[0]->nbytes),
                      "case %d %s differs between 1 and 2 threads", c, amp_dtype_name(dts[k]));
            amp_tensor *all[4] = {g, r[0], r1[0], ref};
            free_all(all, 4);
        }
        amp_tensor_destroy(g64);
    }
}

/* In place, as the planner runs it when the shapes are equal. */
Test(grad_elementwise, sum_to_shape_in_place_copy) {
    int64_t d[2] = {3, 4}, n[1] = {2};
    amp_tensor *g = rnd(AMP_F32, 2, d, -1, 1, 1), *keep = as(g, AMP_F32), *shape;
    cr_assert_eq(amp_tensor_create(ctx, AMP_I64, 1, n, &shape), AMP_OK);
    memcpy(shape->data, d, sizeof d);
    amp_test_node *t = tn_train(ctx, "SumToShape");
    amp_tensor *in[2] = {g, shape}, *out[1] = {g};
    amp_kernel k = {.ctx = ctx, .n = &t->node, .opset = 1, .nin = 2, .nout = 1, .in = in, .out = out, .threads = 2};
    cr_assert_eq(tn_run_kernel(&k), AMP_OK);
    cr_assert(tt_equal(g, keep));
    tn_free(t);
    amp_tensor *all[3] = {g, keep, shape};
    free_all(all, 3);
}

/* ---- bad attributes and shapes: an error status, never a crash ------------------------------------ */

Test(grad_elementwise, bad_sum_to_shape) {
    int64_t d[2] = {2, 3}, t4[1] = {4}, big[3] = {1, 2, 3}, ok[1] = {3};
    amp_tensor *g = rnd(AMP_F32, 2, d, -1, 1, 1), *r[1];
    cr_assert_eq(sum_to(g, 1, t4, false, 0, 2, r), AMP_ERR_SHAPE);
    cr_assert_eq(sum_to(g, 3, big, false, 0, 2, r), AMP_ERR_SHAPE);
    cr_assert_eq(sum_to(g, 1, ok, true, 5, 2, r), AMP_ERR_INVALID_GRAPH);
    cr_assert_eq(sum_to(g, 1, ok, true, 0, 2, r), AMP_ERR_SHAPE); /* [3] at dim 0 of [2, 3] */
    /* a float shape input */
    amp_test_node *t = tn_train(ctx, "SumToShape");
    amp_tensor *fs = rnd(AMP_F32, 1, ok, 1, 2, 2), *in[2] = {g, fs};
    cr_assert_neq(tn_run(t, 2, in, 1, r), AMP_OK);
    tn_free(t);
    /* the kernel alone, given an output that does not fit */
    t = tn_train(ctx, "SumToShape");
    amp_tensor *out, *shape;
    cr_assert_eq(amp_tensor_create(ctx, AMP_F32, 1, t4, &out), AMP_OK);
    cr_assert_eq(amp_tensor_create(ctx, AMP_I64, 1, (int64_t[]){1}, &shape), AMP_OK);
    ((int64_t *)shape->data)[0] = 4;
    amp_tensor *kin[2] = {g, shape}, *kout[1] = {out};
    amp_kernel k = {.ctx = ctx, .n = &t->node, .opset = 1, .nin = 2, .nout = 1, .in = kin, .out = kout, .threads = 2};
    cr_assert_eq(tn_run_kernel(&k), AMP_ERR_SHAPE);
    tn_free(t);
    amp_tensor *all[4] = {g, fs, out, shape};
    free_all(all, 4);
}

Test(grad_elementwise, bad_training_op_attributes) {
    int64_t d[2] = {2, 3}, e[2] = {3, 2};
    amp_tensor *a = rnd(AMP_F32, 2, d, 0.5, 1, 1), *b = rnd(AMP_F32, 2, d, 0.5, 1, 2), *c = rnd(AMP_F32, 2, e, 0.5, 1, 3);
    amp_tensor *r[1];
    /* UnaryGrad: an op without a gradient, none at all, a bad approximate, mismatched shapes */
    const char *ops[] = {"Floor", "NoSuchOp", ""};
    for (int i = 0; i < 3; i++) {
        amp_test_node *t = tn_train(ctx, "UnaryGrad");
        if (ops[i][0]) tn_str(t, "op", ops[i]);
        amp_tensor *in[2] = {a, b};
        cr_assert_eq(tn_run(t, 2, in, 1, r), AMP_ERR_INVALID_GRAPH, "op '%s'", ops[i]);
        tn_free(t);
    }
    amp_test_node *t = tn_train(ctx, "UnaryGrad");
    tn_str(t, "op", "Gelu");
    tn_str(t, "approximate", "fast");
    amp_tensor *in2[2] = {a, b};
    cr_assert_eq(tn_run(t, 2, in2, 1, r), AMP_ERR_INVALID_GRAPH);
    tn_free(t);
    t = tn_train(ctx, "UnaryGrad");
    tn_str(t, "op", "Tanh");
    amp_tensor *mis[2] = {a, c};
    cr_assert_eq(tn_run(t, 2, mis, 1, r), AMP_ERR_SHAPE);
    tn_free(t);
    /* BinaryGrad: bad wrt, bad op, B that does not broadcast */
    amp_tensor *in3[3] = {a, a, b};
    t = tn_train(ctx, "BinaryGrad");
    tn_str(t, "op", "Pow");
    tn_int(t, "wrt", 2);
    cr_assert_eq(tn_run(t, 3, in3, 1, r), AMP_ERR_INVALID_GRAPH);
    tn_free(t);
    t = tn_train(ctx, "BinaryGrad");
    tn_str(t, "op", "Add");
    tn_int(t, "wrt", 0);
    cr_assert_eq(tn_run(t, 3, in3, 1, r), AMP_ERR_INVALID_GRAPH);
    tn_free(t);
    t = tn_train(ctx, "BinaryGrad");
    tn_str(t, "op", "PRelu");
    tn_int(t, "wrt", 1);
    amp_tensor *in4[3] = {a, a, c};
    cr_assert_eq(tn_run(t, 3, in4, 1, r), AMP_ERR_SHAPE);
    tn_free(t);
    /* MinMaxGrad: index out of range */
    t = tn_train(ctx, "MinMaxGrad");
    tn_int(t, "index", 2);
    amp_tensor *in5[4] = {a, a, a, b};
    cr_assert_eq(tn_run(t, 4, in5, 1, r), AMP_ERR_INVALID_GRAPH);
    tn_free(t);
    /* DropoutGrad: neither the mask nor X */
    t = tn_train(ctx, "DropoutGrad");
    amp_tensor *in6[2] = {a, NULL};
    cr_assert_eq(tn_run(t, 2, in6, 1, r), AMP_ERR_INVALID_GRAPH);
    tn_free(t);
    /* ClipGrad: a bound that is not a scalar */
    t = tn_train(ctx, "ClipGrad");
    amp_tensor *in7[3] = {a, b, b};
    cr_assert_eq(tn_run(t, 3, in7, 1, r), AMP_ERR_SHAPE);
    tn_free(t);
    amp_tensor *all[3] = {a, b, c};
    free_all(all, 3);
}

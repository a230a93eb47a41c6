/* Gradients of the linalg family (ir/ops/linalg_grad.c, backends/cpu/linalg_grad.c): Einsum
 * (plain contractions, diagonals, subscripts summed inside one operand, broadcasting of
 * letters and of ellipses of different ranks) and Det (invertible, singular of rank n-1 and
 * n-2).
 *
 * Every case is a finite-difference check (tests/gradcheck.h) in f64 with eps 1e-6; the
 * analytic gradient must agree within a relative L2 error of 1e-5. DetGrad also runs in f16,
 * bf16 and f32 against its own f64 result on the same rounded inputs, and its cofactors are
 * compared with det(X) inv(X)^T computed here by Gauss-Jordan elimination. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backends/cpu/cpu.h"
#include "gradcheck.h"
#include "ir/grad.h"
#include "passes/passes.h"
#include "runtime/runtime.h"
#include "testutil.h"

static amp_context *ctx;
static void setup(void) { cr_assert_eq(amp_context_create(NULL, &ctx), AMP_OK); }
static void teardown(void) { amp_context_destroy(ctx); }
TestSuite(grad_linalg, .init = setup, .fini = teardown, .timeout = 60);

#define GC_TOL 1e-5
#define MAXIN 4

static uint64_t seed_next = 1;

static amp_tensor *rnd(int rank, const int64_t *dims, double lo, double hi) {
    return tt_rand(ctx, AMP_F64, rank, dims, lo, hi, seed_next++);
}

static void free_in(amp_tensor **in, int n) {
    for (int i = 0; i < n; i++) {
        amp_tensor_destroy(in[i]);
        in[i] = NULL;
    }
}

static void gc_ok(amp_test_node *t, int nin, amp_tensor **in, const char *what) {
    bool all[MAXIN];
    for (int i = 0; i < nin; i++) all[i] = true;
    char msg[640];
    cr_assert(gc_passes(t, nin, in, all, 1, GC_TOL, msg, sizeof msg), "%s: %s", what, msg);
}

/* ---- Einsum ------------------------------------------------------------------------------- */

typedef struct ein_case {
    const char *eq;
    int nin;
    int rank[MAXIN];
    int64_t dims[MAXIN][5];
} ein_case;

static const ein_case cases[] = {
    {"ij,jk->ik", 2, {2, 2}, {{3, 4}, {4, 5}}},
    {"ij,jk", 2, {2, 2}, {{3, 4}, {4, 2}}},
    {"bij,bkj->bki", 2, {3, 3}, {{2, 3, 4}, {2, 5, 4}}},
    {"ij->ji", 1, {2}, {{3, 4}}},
    {"ij->", 1, {2}, {{3, 4}}},
    {"ijk->j", 1, {3}, {{2, 3, 4}}},
    {"ii->i", 1, {2}, {{4, 4}}},
    {"ii", 1, {2}, {{4, 4}}},
    {"iij->j", 1, {3}, {{3, 3, 2}}},
    {"iii->i", 1, {3}, {{3, 3, 3}}},
    {"iji,j->ij", 2, {3, 1}, {{3, 2, 3}, {2}}},
    {"ii,ij->j", 2, {2, 2}, {{3, 3}, {3, 2}}},
    {"i,i", 2, {1, 1}, {{5}, {5}}},
    {"i,j->ij", 2, {1, 1}, {{3}, {4}}},
    {"ij,ij->ij", 2, {2, 2}, {{3, 4}, {3, 4}}},
    {"ij,jk,kl->il", 3, {2, 2, 2}, {{2, 3}, {3, 4}, {4, 2}}},
    {"bn,anm,bm->ba", 3, {2, 3, 2}, {{2, 3}, {2, 3, 4}, {2, 4}}},
    {"ijk,k->", 2, {3, 1}, {{2, 3, 4}, {4}}},
    {"ij,jk->ik", 2, {2, 2}, {{3, 1}, {4, 2}}},
    {"i,i->i", 2, {1, 1}, {{1}, {5}}},
    {"...ij,...jk->...ik", 2, {4, 3}, {{2, 1, 3, 4}, {5, 4, 2}}},
    {"...ij,...jk", 2, {3, 3}, {{2, 3, 4}, {2, 4, 5}}},
    {"i...j,j->...i", 2, {4, 1}, {{3, 2, 2, 4}, {4}}},
    {"i...j,...j->...i", 2, {4, 2}, {{3, 2, 1, 4}, {5, 4}}},
    {"...ii->...i", 1, {3}, {{2, 3, 3}}},
    {",ij->ij", 2, {0, 2}, {{0}, {3, 2}}},
    {"a,b,c,abc->", 4, {1, 1, 1, 3}, {{2}, {3}, {2}, {2, 3, 2}}},
    /* from random equations: ellipses anywhere, repeats, broadcasting both ways */
    {"...A,dcd...,...bdB,b...be->dcb...", 4, {2, 3, 5, 4}, {{1, 4}, {1, 1, 1}, {3, 1, 3, 1, 4}, {3, 1, 3, 2}}},
    {"B...c,BB...c,d...ae->B...cd", 3, {2, 5, 4}, {{2, 4}, {2, 2, 3, 1, 1}, {1, 1, 1, 4}}},
    {"AAe,cBb...,eBe...,...B", 4, {3, 4, 4, 3}, {{3, 3, 2}, {2, 2, 3, 2}, {2, 2, 2, 1}, {1, 2, 2}}},
    {"cc,bee,BBb,aee", 4, {2, 3, 3, 3}, {{1, 1}, {1, 2, 2}, {2, 2, 1}, {2, 2, 2}}},
    {"e,AAA", 2, {1, 3}, {{4}, {2, 2, 2}}},
};
#define N_CASES (sizeof cases / sizeof cases[0])

Test(grad_linalg, einsum_cases) {
    for (size_t ci = 0; ci < N_CASES; ci++) {
        const ein_case *c = &cases[ci];
        amp_tensor *in[MAXIN] = {0};
        for (int i = 0; i < c->nin; i++) in[i] = rnd(c->rank[i], c->dims[i], -1, 1);
        amp_test_node *t = tn_new(ctx, "Einsum");
        tn_str(t, "equation", c->eq);
        gc_ok(t, c->nin, in, c->eq);
        tn_free(t);
        free_in(in, c->nin);
    }
}

/* Gradients of L = sum(Einsum(in) * R) for every input, from a graph whose inputs have
 * symbolic dims (bound = false: the builder cannot rule out broadcasting, so it adds ones and
 * SumToShape wherever a dim might have been broadcast) or concrete ones. *n_sum: SumToShape
 * nodes in the backward graph. */
static void einsum_grads(const char *eq, int nin, amp_tensor **in, bool bound, amp_tensor **grads, int *n_sum) {
    amp_graph *g;
    cr_assert_eq(amp_graph_create(ctx, &g), AMP_OK);
    g->opset = 17;
    g->inputs = amp_calloc(ctx, (size_t)nin + 1, sizeof(int));
    int ids[MAXIN];
    for (int i = 0; i < nin; i++) {
        char nm[32];
        snprintf(nm, sizeof nm, "in%d", i);
        int v = amp_graph_new_value(g, nm);
        amp_value *val = &g->values[v];
        val->dtype = in[i]->dtype;
        val->rank = in[i]->rank;
        for (int d = 0; d < in[i]->rank; d++) {
            snprintf(nm, sizeof nm, "n%d_%d", i, d);
            val->dims[d] = bound ? (amp_dim){in[i]->dims[d], -1} : (amp_dim){-1, amp_graph_sym(g, nm)};
        }
        val->is_input = val->declared = true;
        g->inputs[g->n_inputs++] = ids[i] = v;
    }
    amp_node n;
    memset(&n, 0, sizeof n);
    n.name = amp_strdup(ctx, "fwd");
    n.op_type = amp_strdup(ctx, "Einsum");
    n.domain = amp_strdup(ctx, "");
    n.op = AMP_OP_EINSUM;
    n.inputs = amp_alloc(ctx, sizeof(int) * (size_t)nin);
    n.n_inputs = nin;
    for (int i = 0; i < nin; i++) n.inputs[i] = ids[i];
    n.outputs = amp_alloc(ctx, sizeof(int));
    n.n_outputs = 1;
    int y = n.outputs[0] = amp_graph_new_value(g, "y");
    g->values[y].dtype = AMP_F64;
    n.attrs = amp_calloc(ctx, 1, sizeof(amp_attr));
    n.n_attrs = 1;
    n.attrs[0].name = amp_strdup(ctx, "equation");
    n.attrs[0].kind = AMP_ATTR_STRING;
    n.attrs[0].s = amp_strdup(ctx, eq);
    n.attrs[0].slen = strlen(eq);
    cr_assert_eq(amp_graph_add_node(g, &n), AMP_OK);
    cr_assert_eq(amp_graph_link(g), AMP_OK);
    /* R: the forward output's shape from a run of the node alone */
    amp_tensor *y0 = NULL;
    amp_test_node *t = tn_new(ctx, "Einsum");
    tn_str(t, "equation", eq);
    cr_assert_eq(tn_run(t, nin, in, 1, &y0), AMP_OK, "%s", amp_context_last_error(ctx));
    tn_free(t);
    int rv = amp_graph_new_value(g, "r");
    g->values[rv].init = tt_rand(ctx, AMP_F64, y0->rank, y0->dims, -1, 1, 77);
    g->values[rv].dtype = AMP_F64;
    amp_tensor_destroy(y0);
    amp_grad_ctx gc = {.ctx = ctx, .g = g, .node = 0};
    int prod, loss, mi[2] = {y, rv};
    amp_node *rs;
    cr_assert_eq(amp_grad_node(&gc, "Mul", "", 2, mi, 1, &prod, NULL), AMP_OK);
    cr_assert_eq(amp_grad_node(&gc, "ReduceSum", "", 1, &prod, 1, &loss, &rs), AMP_OK);
    cr_assert_eq(amp_grad_attr_int(&gc, rs, "keepdims", 0), AMP_OK);
    int seed = amp_grad_const_scalar(&gc, AMP_F64, 1.0), gids[MAXIN];
    cr_assert_eq(amp_graph_link(g), AMP_OK);
    cr_assert_eq(amp_pass_autodiff(g, loss, seed, nin, ids, gids), AMP_OK, "%s", amp_context_last_error(ctx));
    *n_sum = 0;
    for (int k = 0; k < g->n_nodes; k++) *n_sum += strcmp(g->nodes[k].op_type, "SumToShape") == 0;
    g->outputs = amp_calloc(ctx, (size_t)nin, sizeof(int));
    for (int i = 0; i < nin; i++) {
        g->values[gids[i]].is_output = true;
        g->outputs[g->n_outputs++] = gids[i];
    }
    amp_model *m = amp_calloc(ctx, 1, sizeof *m);
    m->ctx = ctx;
    m->g = g;
    m->hash = amp_graph_hash(g);
    amp_session_options so = {.struct_size = sizeof so, .backend = tu_backend(), .threads = 2};
    amp_session *sess;
    cr_assert_eq(amp_session_create(m, &so, &sess), AMP_OK, "%s", amp_context_last_error(ctx));
    const char *names[MAXIN], *onames[MAXIN];
    const amp_tensor *ins[MAXIN];
    for (int i = 0; i < nin; i++) {
        names[i] = g->values[ids[i]].name;
        onames[i] = g->values[gids[i]].name;
        ins[i] = in[i];
        grads[i] = NULL;
    }
    cr_assert_eq(amp_session_run(sess, nin, names, ins, nin, onames, grads), AMP_OK, "%s: %s", eq,
                 amp_session_last_error(sess));
    amp_session_destroy(sess);
    amp_model_destroy(m);
}

/* In training graphs Einsum's operands are intermediate values whose dims the builder cannot
 * trust: the gradients must not change, only gain SumToShape nodes (copies when nothing was
 * broadcast). */
Test(grad_linalg, einsum_unknown_dims) {
    static const ein_case uc[] = {
        {"ij,jk->ik", 2, {2, 2}, {{3, 4}, {4, 5}}},
        {"ij,jk->ik", 2, {2, 2}, {{3, 1}, {4, 2}}},
        {"i,i->i", 2, {1, 1}, {{1}, {5}}},
        {"...ij,...jk->...ik", 2, {4, 3}, {{2, 1, 3, 4}, {5, 4, 2}}},
        {"i...j,...j->...i", 2, {4, 2}, {{3, 2, 1, 4}, {5, 4}}},
        {"iij,j->i", 2, {3, 1}, {{3, 3, 2}, {1}}},
    };
    for (size_t ci = 0; ci < sizeof uc / sizeof uc[0]; ci++) {
        const ein_case *c = &uc[ci];
        amp_tensor *in[MAXIN] = {0}, *gb[MAXIN] = {0}, *gu[MAXIN] = {0};
        for (int i = 0; i < c->nin; i++) in[i] = rnd(c->rank[i], c->dims[i], -1, 1);
        int sb, su;
        einsum_grads(c->eq, c->nin, in, true, gb, &sb);
        einsum_grads(c->eq, c->nin, in, false, gu, &su);
        cr_assert(su >= c->nin, "%s: %d SumToShape nodes with unknown dims", c->eq, su);
        for (int i = 0; i < c->nin; i++) {
            double e = tt_nse(gu[i], gb[i]);
            cr_assert(e < 1e-26, "%s: input %d differs (nse %g)", c->eq, i, e);
        }
        free_in(in, c->nin);
        free_in(gb, c->nin);
        free_in(gu, c->nin);
    }
}

/* The gradient graph runs in the forward's precision (Einsum nodes, identities and ones cast to
 * it). Einsum is linear in each operand, so central differences are exact for any step: a step
 * of 0.25 keeps them well above the rounding of 16-bit outputs. */
Test(grad_linalg, einsum_narrow_types) {
    static const char *const eqs[3] = {"ij,jk->ik", "iij->j", "...ij,...jk->...ik"};
    static const int64_t da[3][4] = {{3, 4}, {3, 3, 2}, {2, 1, 3, 4}}, db[3][3] = {{4, 5}, {0}, {5, 4, 2}};
    static const int ra[3] = {2, 3, 4}, rb[3] = {2, 0, 3}, nins[3] = {2, 1, 2};
    static const amp_dtype dts[3] = {AMP_F32, AMP_F16, AMP_BF16};
    static const double eps[3] = {1e-2, 0.25, 0.25}, tols[3] = {1e-4, 1e-2, 5e-2};
    for (int e = 0; e < 3; e++)
        for (int k = 0; k < 3; k++) {
            amp_tensor *in[2] = {0};
            for (int i = 0; i < nins[e]; i++) {
                amp_tensor *w = rnd(i ? rb[e] : ra[e], i ? db[e] : da[e], -1, 1);
                cr_assert_eq(amp_tensor_create(ctx, dts[k], w->rank, w->dims, &in[i]), AMP_OK);
                for (int64_t q = 0; q < w->numel; q++) amp_st(dts[k], in[i]->data, q, tt_get(w, q));
                amp_tensor_destroy(w);
            }
            amp_test_node *t = tn_new(ctx, "Einsum");
            tn_str(t, "equation", eqs[e]);
            gc_result r;
            bool wrt[2] = {true, true};
            amp_status s = gc_check(t, nins[e], in, wrt, 1, eps[k], &r);
            cr_assert_eq(s, AMP_OK, "%s %s: %s", eqs[e], amp_dtype_name(dts[k]), r.why);
            cr_assert_eq(r.checked, nins[e]);
            cr_assert(r.max_rel < tols[k], "%s %s: max_rel %g", eqs[e], amp_dtype_name(dts[k]), r.max_rel);
            tn_free(t);
            free_in(in, 2);
        }
}

Test(grad_linalg, einsum_integer_has_no_gradient) {
    const int64_t d[2] = {2, 2};
    amp_tensor *in[1] = {tt_rand(ctx, AMP_I64, 2, d, -3, 3, 1)};
    amp_test_node *t = tn_new(ctx, "Einsum");
    tn_str(t, "equation", "ij->ji");
    gc_result r;
    bool wrt[1] = {true};
    amp_status s = gc_check(t, 1, in, wrt, 1, 1e-6, &r);
    cr_assert_neq(s, AMP_OK, "an int64 Einsum must not get a gradient");
    tn_free(t);
    free_in(in, 1);
}

/* ---- Det ---------------------------------------------------------------------------------- */

Test(grad_linalg, det_invertible_batches) {
    const int64_t d1[2] = {1, 1}, d2[2] = {2, 2}, d3[2] = {3, 3}, b4[3] = {3, 4, 4}, b5[4] = {2, 2, 5, 5};
    const int64_t *ds[5] = {d1, d2, d3, b4, b5};
    const int rs[5] = {2, 2, 2, 3, 4};
    for (int k = 0; k < 5; k++) {
        amp_tensor *in[1] = {rnd(rs[k], ds[k], -1, 1)};
        amp_test_node *t = tn_new(ctx, "Det");
        char what[32];
        snprintf(what, sizeof what, "Det case %d", k);
        gc_ok(t, 1, in, what);
        tn_free(t);
        free_in(in, 1);
    }
}

/* Singular matrices: rank n-1 (the gradient is the nonzero adjugate, which det * inv^T cannot
 * give) and rank n-2 (the gradient is zero), built with exactly representable entries; also a
 * zero pivot in the first column, where LU pivots past a column of zeros. */
Test(grad_linalg, det_singular) {
    const int64_t d3[2] = {3, 3}, d4[2] = {4, 4};
    const double r2[9] = {1, 2, 3, 2, 4, 6, 0.5, -1, 2};                       /* rank 2 */
    const double zc[9] = {0, 1, 2, 0, 3, 4, 0, 5, 7};                          /* zero column: rank 2 */
    const double r2of4[16] = {1, 2, 0, 1, 2, 4, 0, 2, 0, 1, 1, 0, 0, 2, 2, 0}; /* rank 2 of 4 */
    const double r3of4[16] = {1, 2, 0, 1, 2, 4, 0, 2, 0, 1, 1, 0, 3, 0, 2, 1}; /* rank 3 of 4 */
    const double *vals[4] = {r2, zc, r2of4, r3of4};
    const int64_t *ds[4] = {d3, d3, d4, d4};
    for (int k = 0; k < 4; k++) {
        amp_tensor *in[1] = {tt_make(ctx, AMP_F64, 2, ds[k], vals[k])};
        amp_test_node *t = tn_new(ctx, "Det");
        char what[32];
        snprintf(what, sizeof what, "Det singular %d", k);
        gc_ok(t, 1, in, what);
        tn_free(t);
        free_in(in, 1);
    }
}

static amp_test_node *det_grad_node(void) {
    amp_test_node *t = tn_new(ctx, "DetGrad");
    t->node.domain = AMP_TRAIN_DOMAIN;
    t->node.op = amp_op_lookup("DetGrad", AMP_TRAIN_DOMAIN);
    cr_assert_neq(t->node.op, AMP_OP_UNKNOWN);
    t->opset = 1;
    return t;
}

/* Gauss-Jordan inverse with partial pivoting (n <= 8), returns det. */
static double gj_inverse(const double *a, int n, double *inv) {
    double m[8][16];
    for (int i = 0; i < n; i++)
        for (int j = 0; j < 2 * n; j++) m[i][j] = j < n ? a[i * n + j] : (j - n == i);
    double det = 1;
    for (int c = 0; c < n; c++) {
        int p = c;
        for (int r = c + 1; r < n; r++)
            if (fabs(m[r][c]) > fabs(m[p][c])) p = r;
        if (p != c) {
            for (int j = 0; j < 2 * n; j++) {
                double t = m[c][j];
                m[c][j] = m[p][j];
                m[p][j] = t;
            }
            det = -det;
        }
        double pv = m[c][c];
        det *= pv;
        for (int j = 0; j < 2 * n; j++) m[c][j] /= pv;
        for (int r = 0; r < n; r++)
            if (r != c) {
                double f = m[r][c];
                for (int j = 0; j < 2 * n; j++) m[r][j] -= f * m[c][j];
            }
    }
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) inv[i * n + j] = m[i][n + j];
    return det;
}

Test(grad_linalg, det_grad_is_det_times_inverse_transpose) {
    const int64_t bd[1] = {6}, xd[3] = {6, 7, 7};
    amp_tensor *dy = rnd(1, bd, 0.5, 2), *x = rnd(3, xd, -1, 1), *dx = NULL;
    amp_test_node *t = det_grad_node();
    amp_tensor *in[2] = {dy, x};
    cr_assert_eq(tn_run(t, 2, in, 1, &dx), AMP_OK, "%s", amp_context_last_error(ctx));
    amp_tensor *ref;
    cr_assert_eq(amp_tensor_create(ctx, AMP_F64, 3, xd, &ref), AMP_OK);
    for (int b = 0; b < 6; b++) {
        double a[49], inv[49];
        for (int i = 0; i < 49; i++) a[i] = tt_get(x, b * 49 + i);
        double det = gj_inverse(a, 7, inv);
        for (int i = 0; i < 7; i++)
            for (int j = 0; j < 7; j++)
                amp_st(AMP_F64, ref->data, b * 49 + i * 7 + j, tt_get(dy, b) * det * inv[j * 7 + i]);
    }
    double e = tt_nse(dx, ref);
    cr_assert(e < 1e-24, "nse %g", e);
    tn_free(t);
    amp_tensor_destroy(dy);
    amp_tensor_destroy(x);
    amp_tensor_destroy(dx);
    amp_tensor_destroy(ref);
}

Test(grad_linalg, det_grad_narrow_types_and_threads) {
    static const amp_dtype dts[3] = {AMP_F16, AMP_BF16, AMP_F32};
    static const double tols[3] = {1e-2, 3e-2, 1e-5};
    const int64_t bd[1] = {40}, xd[3] = {40, 6, 6};
    amp_tensor *dy = rnd(1, bd, -1, 1), *x = rnd(3, xd, -1, 1);
    for (int k = 0; k < 3; k++) {
        amp_tensor *lo[2], *hi[2], *olo = NULL, *ohi = NULL;
        amp_tensor *src[2] = {dy, x};
        for (int i = 0; i < 2; i++) {
            cr_assert_eq(amp_tensor_create(ctx, dts[k], src[i]->rank, src[i]->dims, &lo[i]), AMP_OK);
            cr_assert_eq(amp_tensor_create(ctx, AMP_F64, src[i]->rank, src[i]->dims, &hi[i]), AMP_OK);
            for (int64_t q = 0; q < src[i]->numel; q++) {
                amp_st(dts[k], lo[i]->data, q, tt_get(src[i], q));
                amp_st(AMP_F64, hi[i]->data, q, tt_get(lo[i], q));
            }
        }
        amp_test_node *t = det_grad_node();
        t->threads = 4;
        cr_assert_eq(tn_run(t, 2, lo, 1, &olo), AMP_OK, "%s", amp_context_last_error(ctx));
        t->threads = 1;
        cr_assert_eq(tn_run(t, 2, hi, 1, &ohi), AMP_OK, "%s", amp_context_last_error(ctx));
        cr_assert_eq(olo->dtype, dts[k]);
        double e = sqrt(tt_nse(olo, ohi));
        cr_assert(e < tols[k], "DetGrad %s: rel L2 %g", amp_dtype_name(dts[k]), e);
        tn_free(t);
        free_in(lo, 2);
        free_in(hi, 2);
        amp_tensor_destroy(olo);
        amp_tensor_destroy(ohi);
    }
    amp_tensor_destroy(dy);
    amp_tensor_destroy(x);
}

Test(grad_linalg, det_grad_bad_inputs) {
    const int64_t bd[1] = {3}, bd2[1] = {2}, xd[3] = {3, 4, 4}, xr[3] = {3, 4, 5};
    amp_tensor *dy = rnd(1, bd, -1, 1), *dy2 = rnd(1, bd2, -1, 1), *x = rnd(3, xd, -1, 1), *xrect = rnd(3, xr, -1, 1);
    amp_tensor *dyf;
    cr_assert_eq(amp_tensor_create(ctx, AMP_F32, 1, bd, &dyf), AMP_OK);
    for (int i = 0; i < 3; i++) ((float *)dyf->data)[i] = 1.0f;
    amp_tensor *c1[2] = {dy2, x}, *c2[2] = {dy, xrect}, *c3[2] = {dyf, x};
    amp_tensor **cs[3] = {c1, c2, c3};
    for (int k = 0; k < 3; k++) {
        amp_test_node *t = det_grad_node();
        amp_tensor *o = (amp_tensor *)1;
        amp_status s = tn_run(t, 2, cs[k], 1, &o);
        cr_assert_eq(s, AMP_ERR_SHAPE, "case %d: %d (%s)", k, s, amp_context_last_error(ctx));
        cr_assert_null(o);
        tn_free(t);
    }
    amp_tensor_destroy(dy);
    amp_tensor_destroy(dy2);
    amp_tensor_destroy(x);
    amp_tensor_destroy(xrect);
    amp_tensor_destroy(dyf);
}

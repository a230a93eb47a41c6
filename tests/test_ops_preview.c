/* Adagrad, Adam and Momentum (domain ai.onnx.preview.training) against reference loops written
 * here from the schemas' pseudo code: f32 and f64 tensors, f32 and f64 learning rates, one to
 * several optimized tensors of odd shapes, update counts T below, at and above 0, attributes
 * given and left to their defaults, omitted outputs, several threads; values taken from onnx's
 * own reference implementation so the pseudo code read here is checked too; and bad inputs that
 * must fail with the right status. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backends/cpu/cpu.h"
#include "backends/cpu/kernels.h"
#include "testutil.h"

#define PV_DOMAIN "ai.onnx.preview.training"

static amp_context *ctx;
static void setup(void) { cr_assert_eq(amp_context_create(NULL, &ctx), AMP_OK); }
static void teardown(void) { amp_context_destroy(ctx); }
TestSuite(adagrad, .init = setup, .fini = teardown, .timeout = 60);
TestSuite(adam, .init = setup, .fini = teardown, .timeout = 60);
TestSuite(momentum, .init = setup, .fini = teardown, .timeout = 60);
TestSuite(preview_bad, .init = setup, .fini = teardown, .timeout = 60);

enum { OP_ADAGRAD, OP_ADAM, OP_MOMENTUM };
static const char *const op_names[] = {"Adagrad", "Adam", "Momentum"};
/* inputs per optimized tensor: X, G and the state tensors */
static int groups_of(int op) { return op == OP_ADAM ? 4 : 3; }

static amp_test_node *pv_node(int op) {
    amp_test_node *t = tn_new(ctx, op_names[op]);
    t->node.domain = PV_DOMAIN;
    t->node.op = amp_op_lookup(op_names[op], PV_DOMAIN);
    t->opset = 1;
    cr_assert_neq(t->node.op, AMP_OP_UNKNOWN, "%s is not in the op table", op_names[op]);
    return t;
}


/* tn_run without its limit of 16 inputs, and with omitted outputs (omit[i], NULL for none):
 * infer, allocate the outputs that are not omitted (poisoned), run the kernel. On failure every
 * out[i] is NULL. */
static amp_status pv_run(amp_test_node *t, int nin, amp_tensor *const *in, int nout, amp_tensor **out,
                         const bool *omit) {
    amp_tinfo *ti = calloc((size_t)nin + 1, sizeof *ti), *to = calloc((size_t)nout + 1, sizeof *to);
    const amp_tinfo **pin = calloc((size_t)nin + 1, sizeof *pin);
    amp_tinfo **pout = calloc((size_t)nout + 1, sizeof *pout);
    int *ids_in = calloc((size_t)nin + 1, sizeof *ids_in), *ids_out = calloc((size_t)nout + 1, sizeof *ids_out);
    cr_assert(ti && to && pin && pout && ids_in && ids_out);
    for (int i = 0; i < nin; i++) {
        ids_in[i] = in[i] ? i : -1;
        if (!in[i]) continue;
        ti[i].dtype = in[i]->dtype;
        ti[i].rank = in[i]->rank;
        memcpy(ti[i].dims, in[i]->dims, sizeof ti[i].dims);
        ti[i].value = in[i];
        pin[i] = &ti[i];
    }
    for (int i = 0; i < nout; i++) {
        ids_out[i] = omit && omit[i] ? -1 : nin + i;
        pout[i] = &to[i];
        out[i] = NULL;
    }
    t->node.inputs = ids_in;
    t->node.n_inputs = nin;
    t->node.outputs = ids_out;
    t->node.n_outputs = nout;
    amp_infer c = {.ctx = ctx, .n = &t->node, .opset = t->opset, .nin = nin, .nout = nout, .in = pin, .out = pout};
    amp_status s = amp_op_table[t->node.op].infer(&c);
    for (int i = 0; !s && i < nout; i++) {
        if (ids_out[i] < 0) continue;
        s = amp_tensor_create(ctx, to[i].dtype, to[i].rank, to[i].dims, &out[i]);
        if (!s) memset(out[i]->data, 0x7f, out[i]->nbytes);
    }
    if (!s) {
        amp_kernel k = {.ctx = ctx, .n = &t->node, .opset = t->opset, .nin = nin, .nout = nout, .in = in,
                        .out = out, .ws = NULL, .ws_bytes = 0, .threads = t->threads};
        size_t ws_bytes = 1;
        cr_assert_eq(amp_cpu_workspace(&k, &ws_bytes), AMP_OK, "%s", amp_context_last_error(ctx));
        cr_assert_eq(ws_bytes, 0, "these ops need no workspace");
        s = tn_run_kernel(&k);
    }
    if (s)
        for (int i = 0; i < nout; i++) {
            amp_tensor_destroy(out[i]);
            out[i] = NULL;
        }
    t->node.inputs = NULL;
    t->node.outputs = NULL;
    free(ti);
    free(to);
    free(pin);
    free(pout);
    free(ids_in);
    free(ids_out);
    return s;
}

static void destroy(int n, amp_tensor **t) {
    for (int i = 0; i < n; i++) amp_tensor_destroy(t[i]);
}

static amp_tensor *scalar(amp_dtype dt, double v) {
    amp_tensor *t = tt_make(ctx, dt, 0, NULL, &v);
    cr_assert(t);
    return t;
}

static amp_tensor *t_of(int64_t v) {
    amp_tensor *t;
    cr_assert_eq(amp_tensor_create(ctx, AMP_I64, 0, NULL, &t), AMP_OK);
    ((int64_t *)t->data)[0] = v;
    return t;
}

/* ---- the reference, from the schemas' pseudo code --------------------------------------------- */

/* Attributes as the node carries them (f32); the reference reads them widened, as onnx does. */
typedef struct pv_attrs {
    bool defaults; /* Adagrad and Adam: leave every attribute out */
    float decay, eps, nc, ncp, alpha, beta;
    bool nesterov;
} pv_attrs;

static pv_attrs attrs_for(int op, bool defaults, bool nesterov) {
    pv_attrs a = {.defaults = defaults, .nesterov = nesterov};
    if (op == OP_ADAGRAD) {
        a.decay = defaults ? 0.0f : 0.25f;
        a.eps = defaults ? 1e-6f : 1e-3f;
        a.nc = defaults ? 0.0f : 0.01f;
    } else if (op == OP_ADAM) {
        a.alpha = defaults ? 0.9f : 0.8f;
        a.beta = defaults ? 0.999f : 0.95f;
        a.eps = defaults ? 1e-6f : 1e-4f;
        a.nc = defaults ? 0.0f : 0.02f;
        a.ncp = defaults ? 0.0f : 0.01f;
    } else {
        a.alpha = 0.9f;
        a.beta = 0.5f;
        a.nc = 0.03f;
    }
    return a;
}

static void set_attrs(amp_test_node *t, int op, const pv_attrs *a) {
    if (op == OP_MOMENTUM) {
        tn_float(t, "alpha", a->alpha);
        tn_float(t, "beta", a->beta);
        tn_float(t, "norm_coefficient", a->nc);
        tn_str(t, "mode", a->nesterov ? "nesterov" : "standard");
        return;
    }
    if (a->defaults) return;
    tn_float(t, "epsilon", a->eps);
    tn_float(t, "norm_coefficient", a->nc);
    if (op == OP_ADAGRAD) {
        tn_float(t, "decay_factor", a->decay);
    } else {
        tn_float(t, "alpha", a->alpha);
        tn_float(t, "beta", a->beta);
        tn_float(t, "norm_coefficient_post", a->ncp);
    }
}

/* Expected outputs (X_new, then the new state groups) of inputs in[] for n tensors. */
static void reference(int op, const pv_attrs *a, int n, amp_tensor *const *in, amp_tensor **want) {
    const double R = tt_get(in[0], 0);
    const int64_t T = ((const int64_t *)in[1]->data)[0];
    const double nc = a->nc, eps = a->eps, alpha = a->alpha, beta = a->beta, decay = a->decay, ncp = a->ncp;
    const int groups = groups_of(op);
    for (int i = 0; i < n; i++) {
        const amp_tensor *X = in[2 + i], *G = in[2 + n + i], *S1 = in[2 + 2 * n + i];
        const amp_tensor *S2 = groups == 4 ? in[2 + 3 * n + i] : NULL;
        const int64_t m = X->numel;
        double *xv = calloc((size_t)m + 1, sizeof(double)), *s1v = calloc((size_t)m + 1, sizeof(double));
        double *s2v = calloc((size_t)m + 1, sizeof(double));
        for (int64_t j = 0; j < m; j++) {
            const double x = tt_get(X, j), g = tt_get(G, j), s1 = tt_get(S1, j);
            const double g_reg = nc * x + g;
            if (op == OP_ADAGRAD) {
                const double r = R / (1 + (double)T * decay);
                const double h_new = s1 + g_reg * g_reg;
                const double h_adaptive = sqrt(h_new) + eps;
                xv[j] = x - r * g_reg / h_adaptive;
                s1v[j] = h_new;
            } else if (op == OP_ADAM) {
                const double h = tt_get(S2, j);
                const double v_new = alpha * s1 + (1 - alpha) * g_reg;
                const double h_new = beta * h + (1 - beta) * g_reg * g_reg;
                const double h_sqrt = sqrt(h_new) + eps;
                const double r_adj = T > 0 ? R * sqrt(1 - pow(beta, (double)T)) / (1 - pow(alpha, (double)T)) : R;
                const double x_new = x - r_adj * v_new / h_sqrt;
                xv[j] = (1 - ncp) * x_new;
                s1v[j] = v_new;
                s2v[j] = h_new;
            } else {
                const double beta_adj = T > 0 ? beta : 1;
                const double v_new = alpha * s1 + beta_adj * g_reg;
                xv[j] = a->nesterov ? x - R * (g_reg + alpha * v_new) : x - R * v_new;
                s1v[j] = v_new;
            }
        }
        want[i] = tt_make(ctx, X->dtype, X->rank, X->dims, xv);
        want[n + i] = tt_make(ctx, X->dtype, X->rank, X->dims, s1v);
        if (groups == 4) want[2 * n + i] = tt_make(ctx, X->dtype, X->rank, X->dims, s2v);
        free(xv);
        free(s1v);
        free(s2v);
    }
}

/* normalised squared error allowed: results are computed in double and rounded once */
static double tol_of(amp_dtype dt) { return dt == AMP_F64 ? 1e-26 : 1e-12; }

static void check_outputs(int nout, amp_tensor **got, amp_tensor **want, const bool *omit, const char *what) {
    for (int o = 0; o < nout; o++) {
        if (omit && omit[o]) {
            cr_assert_null(got[o], "%s: omitted output %d was made", what, o);
            continue;
        }
        cr_assert(got[o] && want[o]);
        cr_assert_eq(got[o]->dtype, want[o]->dtype, "%s: output %d dtype", what, o);
        double e = tt_nse(got[o], want[o]);
        cr_assert(e < tol_of(want[o]->dtype), "%s: output %d nse %g", what, o, e);
    }
}

/* ---- one case ------------------------------------------------------------------------------------ */

static const int shape_ranks[] = {0, 1, 1, 2, 3, 4};
static const int64_t shape_dims[][4] = {{0}, {1}, {7}, {3, 5}, {2, 3, 5}, {4, 1, 3, 2}};
#define N_SHAPES 6

typedef struct pv_case {
    int op;
    amp_dtype dt, rdt;
    int n;          /* optimized tensors */
    int shape0;     /* tensor i takes shape (shape0 + i) % N_SHAPES */
    int64_t T;
    double R;
    bool defaults, nesterov;
    const bool *omit; /* per output, or NULL */
    int threads;
} pv_case;

/* Random inputs for a case: X in [-2, 2), G and V in [-1, 1), H in [0.01, 2) (a sum of squares). */
static int make_inputs(const pv_case *pc, amp_tensor **in, uint64_t seed) {
    const int groups = groups_of(pc->op), n = pc->n;
    in[0] = scalar(pc->rdt, pc->R);
    in[1] = t_of(pc->T);
    for (int g = 0; g < groups; g++)
        for (int i = 0; i < n; i++) {
            const int sh = (pc->shape0 + i) % N_SHAPES;
            const bool is_h = (pc->op == OP_ADAGRAD && g == 2) || (pc->op == OP_ADAM && g == 3);
            const double lo = g == 0 ? -2 : is_h ? 0.01 : -1, hi = g == 0 ? 2 : is_h ? 2 : 1;
            in[2 + g * n + i] =
                tt_rand(ctx, pc->dt, shape_ranks[sh], shape_dims[sh], lo, hi, seed * 131 + (uint64_t)(g * 17 + i));
            cr_assert(in[2 + g * n + i]);
        }
    return 2 + groups * n;
}

static void run_case(const pv_case *pc, uint64_t seed) {
    const int n = pc->n, nout = (groups_of(pc->op) - 1) * n;
    amp_tensor *in[64] = {0}, *got[64] = {0}, *want[64] = {0};
    cr_assert(2 + groups_of(pc->op) * n <= 64);
    const int nin = make_inputs(pc, in, seed);
    pv_attrs a = attrs_for(pc->op, pc->defaults, pc->nesterov);
    amp_test_node *t = pv_node(pc->op);
    set_attrs(t, pc->op, &a);
    if (pc->threads) t->threads = pc->threads;
    amp_status s = pv_run(t, nin, in, nout, got, pc->omit);
    cr_assert_eq(s, AMP_OK, "%s: %s", op_names[pc->op], amp_context_last_error(ctx));
    reference(pc->op, &a, n, in, want);
    char what[160];
    snprintf(what, sizeof what, "%s %s R %s n=%d shape0=%d T=%lld defaults=%d nesterov=%d", op_names[pc->op],
             amp_dtype_name(pc->dt), amp_dtype_name(pc->rdt), n, pc->shape0, (long long)pc->T, pc->defaults,
             pc->nesterov);
    check_outputs(nout, got, want, pc->omit, what);
    destroy(nin, in);
    destroy(nout, got);
    destroy(nout, want);
    tn_free(t);
}

/* Every dtype pair, tensor count, T and attribute variant of one op. */
static void sweep(int op, const int64_t *ts, int nts, bool nesterov) {
    static const amp_dtype dts[] = {AMP_F32, AMP_F64};
    uint64_t seed = 1;
    for (int d = 0; d < 2; d++)
        for (int rd = 0; rd < 2; rd++)
            for (int n = 1; n <= 3; n++)
                for (int ti = 0; ti < nts; ti++)
                    for (int def = 0; def < (op == OP_MOMENTUM ? 1 : 2); def++) {
                        pv_case pc = {.op = op, .dt = dts[d], .rdt = dts[rd], .n = n, .shape0 = (int)(seed % N_SHAPES),
                                      .T = ts[ti], .R = 0.05 + 0.01 * (double)ti, .defaults = def == 1,
                                      .nesterov = nesterov};
                        run_case(&pc, seed++);
                    }
}

Test(adagrad, matches_reference) {
    const int64_t ts[] = {0, 1, 3, -1};
    sweep(OP_ADAGRAD, ts, 4, false);
}

Test(adam, matches_reference) {
    const int64_t ts[] = {0, 1, 7, -2};
    sweep(OP_ADAM, ts, 4, false);
}

Test(momentum, standard_matches_reference) {
    const int64_t ts[] = {0, 2, -1};
    sweep(OP_MOMENTUM, ts, 3, false);
}

Test(momentum, nesterov_matches_reference) {
    const int64_t ts[] = {0, 2, -1};
    sweep(OP_MOMENTUM, ts, 3, true);
}

/* A large tensor split over threads: the same bits as one thread, and right. */
static void threads_case(int op, amp_dtype dt) {
    const int groups = groups_of(op), nout = groups - 1;
    const int64_t dims[1] = {70001};
    amp_tensor *in[6] = {0}, *one[3] = {0}, *many[3] = {0}, *want[3] = {0};
    in[0] = scalar(AMP_F32, 0.1);
    in[1] = t_of(4);
    for (int g = 0; g < groups; g++) {
        in[2 + g] = tt_rand(ctx, dt, 1, dims, g == groups - 1 ? 0.01 : -1, 1, 77 + (uint64_t)g);
        cr_assert(in[2 + g]);
    }
    pv_attrs a = attrs_for(op, false, false);
    amp_test_node *t = pv_node(op);
    set_attrs(t, op, &a);
    t->threads = 1;
    cr_assert_eq(pv_run(t, 2 + groups, in, nout, one, NULL), AMP_OK, "%s", amp_context_last_error(ctx));
    t->threads = 4;
    cr_assert_eq(pv_run(t, 2 + groups, in, nout, many, NULL), AMP_OK, "%s", amp_context_last_error(ctx));
    reference(op, &a, 1, in, want);
    for (int o = 0; o < nout; o++) cr_assert(tt_equal(one[o], many[o]), "%s output %d differs", op_names[op], o);
    check_outputs(nout, many, want, NULL, op_names[op]);
    destroy(2 + groups, in);
    destroy(nout, one);
    destroy(nout, many);
    destroy(nout, want);
    tn_free(t);
}

Test(adagrad, threads) {
    threads_case(OP_ADAGRAD, AMP_F32);
    threads_case(OP_ADAGRAD, AMP_F64);
}
Test(adam, threads) {
    threads_case(OP_ADAM, AMP_F32);
    threads_case(OP_ADAM, AMP_F64);
}
Test(momentum, threads) {
    threads_case(OP_MOMENTUM, AMP_F32);
    threads_case(OP_MOMENTUM, AMP_F64);
}

/* Omitted outputs are not written; the others are still right (the generic element loop). */
static void omitted_case(int op) {
    for (int d = 0; d < 2; d++) {
        const amp_dtype dt = d ? AMP_F64 : AMP_F32;
        const int nout = (groups_of(op) - 1) * 2;
        for (int o = 0; o < nout; o++) {
            bool omit[6] = {false};
            omit[o] = true;
            if (o + 3 < nout) omit[o + 3] = true;
            pv_case pc = {.op = op, .dt = dt, .rdt = AMP_F32, .n = 2, .shape0 = 2, .T = 2, .R = 0.1,
                          .omit = omit, .nesterov = o % 2 == 1};
            run_case(&pc, 500 + (uint64_t)o);
        }
    }
}

Test(adagrad, omitted_outputs) { omitted_case(OP_ADAGRAD); }
Test(adam, omitted_outputs) { omitted_case(OP_ADAM); }
Test(momentum, omitted_outputs) { omitted_case(OP_MOMENTUM); }

/* More tensors than tn_run takes, and zero-size ones among them. */
Test(adam, many_tensors) {
    pv_case pc = {.op = OP_ADAM, .dt = AMP_F32, .rdt = AMP_F64, .n = 12, .shape0 = 0, .T = 5, .R = 0.01};
    run_case(&pc, 900);
    const int64_t zd[2] = {0, 3};
    amp_tensor *in[6] = {scalar(AMP_F32, 0.1), t_of(1)}, *out[3] = {0};
    for (int g = 0; g < 4; g++) cr_assert_eq(amp_tensor_create(ctx, AMP_F32, 2, zd, &in[2 + g]), AMP_OK);
    amp_test_node *t = pv_node(OP_ADAM);
    cr_assert_eq(pv_run(t, 6, in, 3, out, NULL), AMP_OK, "%s", amp_context_last_error(ctx));
    for (int o = 0; o < 3; o++) cr_assert(out[o]->rank == 2 && out[o]->dims[0] == 0 && out[o]->dims[1] == 3);
    destroy(6, in);
    destroy(3, out);
    tn_free(t);
}

Test(momentum, many_tensors) {
    pv_case pc = {.op = OP_MOMENTUM, .dt = AMP_F64, .rdt = AMP_F32, .n = 15, .shape0 = 1, .T = 3, .R = 0.2,
                  .nesterov = true};
    run_case(&pc, 901);
}

/* ---- values from onnx's reference implementation ----------------------------------------------- */

/* One tensor: inputs and onnx's outputs. The f32 cases are onnx's node tests (all at T = 0,
 * outputs as onnx stored them); the f64 cases are onnx's reference run in double at T = 3, with
 * attributes exact in f32 so the node's float attributes carry the same values. */
typedef struct known_case {
    int op;
    amp_dtype dt; /* of R and the tensors */
    int64_t m, T;
    double R;
    pv_attrs a;
    double x[3], g[3], s1[3], s2[3];
    double want[3][3];
} known_case;

static void run_known(const known_case *kc) {
    const int groups = groups_of(kc->op), nout = groups - 1;
    const double *src[4] = {kc->x, kc->g, kc->s1, kc->s2};
    const int64_t dims[1] = {kc->m};
    amp_tensor *in[6] = {scalar(kc->dt, kc->R), t_of(kc->T)}, *got[3] = {0};
    for (int g = 0; g < groups; g++) in[2 + g] = tt_make(ctx, kc->dt, 1, dims, src[g]);
    amp_test_node *t = pv_node(kc->op);
    set_attrs(t, kc->op, &kc->a);
    cr_assert_eq(pv_run(t, 2 + groups, in, nout, got, NULL), AMP_OK, "%s", amp_context_last_error(ctx));
    /* onnx computes f32 tensors in f32 (and printed them to 9 digits); amprt in double */
    const double tol = kc->dt == AMP_F64 ? 1e-14 : 1e-6;
    for (int o = 0; o < nout; o++)
        for (int64_t j = 0; j < kc->m; j++) {
            const double v = tt_get(got[o], j), w = kc->want[o][j];
            cr_assert(fabs(v - w) <= tol * fabs(w), "%s %s output %d[%lld]: %.17g, onnx %.17g", op_names[kc->op],
                      amp_dtype_name(kc->dt), o, (long long)j, v, w);
        }
    destroy(2 + groups, in);
    destroy(nout, got);
    tn_free(t);
}

Test(adagrad, onnx_values) {
    const known_case node = {.op = OP_ADAGRAD, .dt = AMP_F32, .m = 1, .T = 0, .R = 0.1,
                             .a = {.decay = 0.1f, .eps = 1e-5f, .nc = 0.001f},
                             .x = {1}, .g = {-1}, .s1 = {2}, .want = {{1.05769622}, {2.9980011}}};
    run_known(&node);
    const known_case t3 = {.op = OP_ADAGRAD, .dt = AMP_F64, .m = 3, .T = 3, .R = 0.1,
                           .a = {.decay = 0.125f, .eps = 0x1p-17f, .nc = 0x1p-10f},
                           .x = {1.2, -2.8, 0.5}, .g = {-0.94, 2.5, 0.3}, .s1 = {0.1, 2.0, 0.7},
                           .want = {{1.2689219266855996, -2.8632839923374083, 0.47541744668423114},
                                    {0.98139824829101541, 8.2363356018066405, 0.79029320716857909}}};
    run_known(&t3);
}

Test(adam, onnx_values) {
    const known_case node = {.op = OP_ADAM, .dt = AMP_F32, .m = 2, .T = 0, .R = 0.1,
                             .a = {.alpha = 0.95f, .beta = 0.1f, .eps = 1e-7f, .nc = 0.001f},
                             .x = {1.2, 2.8}, .g = {-0.94, -2.5}, .s1 = {1.7, 3.6}, .s2 = {0.1, 0.1},
                             .want = {{1.02503633, 2.66103268}, {1.56806004, 3.29513979}, {0.803210795, 5.62240696}}};
    run_known(&node);
    const known_case t3 = {.op = OP_ADAM, .dt = AMP_F64, .m = 3, .T = 3, .R = 0.1,
                           .a = {.alpha = 0.9375f, .beta = 0.875f, .eps = 0x1p-23f, .nc = 0x1p-10f, .ncp = 0.015625f},
                           .x = {1.2, -2.8, 0.5}, .g = {-0.94, 2.5, 0.3}, .s1 = {1.7, -3.6, 0.2},
                           .s2 = {0.1, 2.0, 0.7},
                           .want = {{0.071955186442708485, -2.1059961093530144, 0.40827363222825486},
                                    {1.5350732421875, -3.2189208984375002, 0.20628051757812499},
                                    {0.19767478103637692, 2.5295419502258301, 0.62378665089607233}}};
    run_known(&t3);
}

Test(momentum, onnx_values) {
    const known_case node = {.op = OP_MOMENTUM, .dt = AMP_F32, .m = 2, .T = 0, .R = 0.1,
                             .a = {.alpha = 0.95f, .beta = 0.1f, .nc = 0.001f},
                             .x = {1.2, 2.8}, .g = {-0.94, -2.5}, .s1 = {1.7, 3.6},
                             .want = {{1.13238001, 2.70772004}, {0.676200032, 0.922799826}}};
    run_known(&node);
    const known_case nest = {.op = OP_MOMENTUM, .dt = AMP_F32, .m = 2, .T = 0, .R = 0.1,
                             .a = {.alpha = 0.95f, .beta = 1.0f, .nc = 0.01f, .nesterov = true},
                             .x = {1.2, 2.8}, .g = {-0.94, -2.5}, .s1 = {1.7, 3.6},
                             .want = {{1.22753501, 2.95713997}, {0.687000036, 0.947999954}}};
    run_known(&nest);
    const known_case t3 = {.op = OP_MOMENTUM, .dt = AMP_F64, .m = 3, .T = 3, .R = 0.1,
                           .a = {.alpha = 0.9375f, .beta = 0.875f, .nc = 0x1p-10f},
                           .x = {1.2, -2.8, 0.5}, .g = {-0.94, 2.5, 0.3}, .s1 = {1.7, -3.6, 0.2},
                           .want = {{1.1227724609375, -2.6810107421874996, 0.45495727539062503},
                                    {0.77227539062500006, -1.1898925781250003, 0.45042724609375001}}};
    run_known(&t3);
    const known_case n3 = {.op = OP_MOMENTUM, .dt = AMP_F64, .m = 3, .T = 3, .R = 0.1,
                           .a = {.alpha = 0.9375f, .beta = 0.875f, .nc = 0x1p-7f, .nesterov = true},
                           .x = {1.2, -2.8, 0.5}, .g = {-0.94, 2.5, 0.3}, .s1 = {1.7, -3.6, 0.2},
                           .want = {{1.2199887695312499, -2.9346899414062499, 0.42710144042968751},
                                    {0.77945312500000008, -1.2066406249999999, 0.45341796875000001}}};
    run_known(&n3);
}

/* ---- bad inputs ------------------------------------------------------------------------------------ */

/* A valid node's inputs (n tensors of shape {4}), to be spoiled one at a time. */
static int good_inputs(int op, int n, amp_tensor **in) {
    pv_case pc = {.op = op, .dt = AMP_F32, .rdt = AMP_F32, .n = n, .shape0 = 2, .T = 1, .R = 0.1};
    return make_inputs(&pc, in, 3);
}

/* Run op with inputs in and nout outputs; expect status want and no outputs left behind. */
static void expect_fail(amp_test_node *t, int nin, amp_tensor **in, int nout, amp_status want, const char *what) {
    amp_tensor *out[64] = {0};
    amp_status s = pv_run(t, nin, in, nout, out, NULL);
    cr_assert_eq(s, want, "%s: got %s, want %s (%s)", what, amp_status_name(s), amp_status_name(want),
                 amp_context_last_error(ctx));
    for (int o = 0; o < nout; o++) cr_assert_null(out[o]);
    /* the message names the node */
    cr_assert(strstr(amp_context_last_error(ctx), "test") != NULL, "%s: %s", what, amp_context_last_error(ctx));
}

static amp_tensor *replace(amp_tensor **slot, amp_tensor *t) {
    amp_tensor *old = *slot;
    *slot = t;
    return old;
}

/* Swap input i for t, expect the status, put the original back. */
static void spoil_input(int op, int i, amp_tensor *t, amp_status want, const char *what) {
    amp_tensor *in[16] = {0};
    const int nin = good_inputs(op, 2, in);
    amp_tensor *old = replace(&in[i], t);
    amp_test_node *node = pv_node(op);
    pv_attrs a = attrs_for(op, false, false);
    set_attrs(node, op, &a);
    expect_fail(node, nin, in, (groups_of(op) - 1) * 2, want, what);
    in[i] = old;
    amp_tensor_destroy(t);
    destroy(nin, in);
    tn_free(node);
}

static amp_tensor *f32_of(int rank, const int64_t *dims) { return tt_rand(ctx, AMP_F32, rank, dims, -1, 1, 5); }

Test(preview_bad, input_and_output_counts) {
    for (int op = 0; op < 3; op++) {
        amp_tensor *in[16] = {0};
        const int nin = good_inputs(op, 2, in), groups = groups_of(op), nout = (groups - 1) * 2;
        pv_attrs a = attrs_for(op, false, false);
        amp_test_node *t = pv_node(op);
        set_attrs(t, op, &a);
        /* the good node runs, so each failure below is the spoiled count's */
        amp_tensor *out[6] = {0};
        cr_assert_eq(pv_run(t, nin, in, nout, out, NULL), AMP_OK, "%s", amp_context_last_error(ctx));
        destroy(nout, out);
        expect_fail(t, nin - 1, in, nout, AMP_ERR_INVALID_GRAPH, "one input short");
        expect_fail(t, 2, in, nout, AMP_ERR_INVALID_GRAPH, "R and T only");
        expect_fail(t, 1, in, nout, AMP_ERR_INVALID_GRAPH, "R only");
        expect_fail(t, 2 + groups - 1, in, groups - 1, AMP_ERR_INVALID_GRAPH, "no state");
        expect_fail(t, nin, in, nout - 1, AMP_ERR_INVALID_GRAPH, "one output short");
        expect_fail(t, nin, in, nout + 1, AMP_ERR_INVALID_GRAPH, "one output too many");
        expect_fail(t, nin, in, 2, AMP_ERR_INVALID_GRAPH, "outputs of one tensor");
        destroy(nin, in);
        tn_free(t);
    }
}

Test(preview_bad, r_and_t) {
    const int64_t two[1] = {2};
    for (int op = 0; op < 3; op++) {
        spoil_input(op, 0, NULL, AMP_ERR_INVALID_GRAPH, "R omitted");
        spoil_input(op, 1, NULL, AMP_ERR_INVALID_GRAPH, "T omitted");
        spoil_input(op, 0, t_of(1), AMP_ERR_UNSUPPORTED, "R int64");
        spoil_input(op, 0, tt_rand(ctx, AMP_F16, 0, NULL, 0.1, 0.2, 1), AMP_ERR_UNSUPPORTED, "R f16");
        spoil_input(op, 0, f32_of(1, two), AMP_ERR_SHAPE, "R of two elements");
        spoil_input(op, 1, scalar(AMP_F32, 1), AMP_ERR_SHAPE, "T f32");
        spoil_input(op, 1, scalar(AMP_I32, 1), AMP_ERR_SHAPE, "T int32");
        amp_tensor *t2;
        cr_assert_eq(amp_tensor_create(ctx, AMP_I64, 1, two, &t2), AMP_OK);
        memset(t2->data, 0, t2->nbytes);
        spoil_input(op, 1, t2, AMP_ERR_SHAPE, "T of two elements");
        const int64_t d11[2] = {1, 1};
        spoil_input(op, 0, f32_of(2, d11), AMP_ERR_SHAPE, "R of rank 2");
    }
}

Test(preview_bad, tensor_dtypes_and_shapes) {
    /* good_inputs gives tensor 0 shape {7} and tensor 1 shape {3, 5}; spoil tensor 0's inputs */
    const int64_t d1[1] = {1}, d5[1] = {5}, d7[1] = {7};
    for (int op = 0; op < 3; op++) {
        const int groups = groups_of(op);
        spoil_input(op, 2, tt_rand(ctx, AMP_F16, 1, d7, -1, 1, 1), AMP_ERR_UNSUPPORTED, "X f16");
        spoil_input(op, 2, tt_rand(ctx, AMP_BF16, 1, d7, -1, 1, 1), AMP_ERR_UNSUPPORTED, "X bf16");
        spoil_input(op, 2, tt_rand(ctx, AMP_I64, 1, d7, -9, 9, 1), AMP_ERR_UNSUPPORTED, "X int64");
        spoil_input(op, 3, tt_rand(ctx, AMP_F64, 2, (const int64_t[]){3, 5}, -1, 1, 1), AMP_ERR_SHAPE,
                    "X_2 f64 beside an f32 X_1");
        for (int g = 1; g < groups; g++) {
            const int i = 2 + g * 2;
            spoil_input(op, i, tt_rand(ctx, AMP_F64, 1, d7, 0.1, 1, 1), AMP_ERR_SHAPE, "f64 beside f32");
            spoil_input(op, i, f32_of(1, d1), AMP_ERR_SHAPE, "broadcastable shape {1}");
            spoil_input(op, i, f32_of(2, (const int64_t[]){7, 1}), AMP_ERR_SHAPE, "shape {7, 1}");
            spoil_input(op, i, f32_of(0, NULL), AMP_ERR_SHAPE, "scalar");
            spoil_input(op, i, NULL, AMP_ERR_INVALID_GRAPH, "omitted");
        }
        spoil_input(op, 2, NULL, AMP_ERR_INVALID_GRAPH, "X omitted");
        spoil_input(op, 2, f32_of(1, d5), AMP_ERR_SHAPE, "X of another shape than its G");
    }
}

/* Attribute problems on an otherwise good node. */
static void attr_case(int op, void (*spoil)(amp_test_node *), amp_status want, const char *what) {
    amp_tensor *in[16] = {0};
    const int nin = good_inputs(op, 1, in);
    amp_test_node *t = pv_node(op);
    spoil(t);
    expect_fail(t, nin, in, groups_of(op) - 1, want, what);
    destroy(nin, in);
    tn_free(t);
}

static void mom_base(amp_test_node *t, bool alpha, bool beta, bool nc, bool mode) {
    if (alpha) tn_float(t, "alpha", 0.9f);
    if (beta) tn_float(t, "beta", 0.5f);
    if (nc) tn_float(t, "norm_coefficient", 0.01f);
    if (mode) tn_str(t, "mode", "standard");
}
static void mom_no_alpha(amp_test_node *t) { mom_base(t, false, true, true, true); }
static void mom_no_beta(amp_test_node *t) { mom_base(t, true, false, true, true); }
static void mom_no_nc(amp_test_node *t) { mom_base(t, true, true, false, true); }
static void mom_no_mode(amp_test_node *t) { mom_base(t, true, true, true, false); }
static void mom_bad_mode(amp_test_node *t) {
    mom_base(t, true, true, true, false);
    tn_str(t, "mode", "Nesterov");
}
static void mom_mode_int(amp_test_node *t) {
    mom_base(t, true, true, true, false);
    tn_int(t, "mode", 1);
}
static void mom_mode_nul(amp_test_node *t) {
    mom_base(t, true, true, true, false);
    tn_str(t, "mode", "standard");
    /* "standard" followed by a NUL and more bytes, as a file may hold it */
    amp_attr *a = &t->attrs[t->node.n_attrs - 1];
    free(a->s);
    a->s = malloc(12);
    memcpy(a->s, "standard\0xy", 12);
    a->slen = 11;
}
static void mom_alpha_str(amp_test_node *t) {
    mom_base(t, false, true, true, true);
    tn_str(t, "alpha", "0.9");
}
static void mom_beta_nan(amp_test_node *t) {
    mom_base(t, true, false, true, true);
    tn_float(t, "beta", NAN);
}
static void adam_alpha_inf(amp_test_node *t) { tn_float(t, "alpha", INFINITY); }
static void adam_eps_nan(amp_test_node *t) { tn_float(t, "epsilon", NAN); }
static void adam_post_ints(amp_test_node *t) { tn_ints(t, "norm_coefficient_post", 1, (const int64_t[]){0}); }
static void adagrad_decay_str(amp_test_node *t) { tn_str(t, "decay_factor", "0.1"); }
static void adagrad_nc_inf(amp_test_node *t) { tn_float(t, "norm_coefficient", -INFINITY); }

Test(preview_bad, attributes) {
    attr_case(OP_MOMENTUM, mom_no_alpha, AMP_ERR_INVALID_GRAPH, "Momentum without alpha");
    attr_case(OP_MOMENTUM, mom_no_beta, AMP_ERR_INVALID_GRAPH, "Momentum without beta");
    attr_case(OP_MOMENTUM, mom_no_nc, AMP_ERR_INVALID_GRAPH, "Momentum without norm_coefficient");
    attr_case(OP_MOMENTUM, mom_no_mode, AMP_ERR_INVALID_GRAPH, "Momentum without mode");
    attr_case(OP_MOMENTUM, mom_bad_mode, AMP_ERR_INVALID_GRAPH, "Momentum mode Nesterov");
    attr_case(OP_MOMENTUM, mom_mode_int, AMP_ERR_INVALID_GRAPH, "Momentum mode as int");
    attr_case(OP_MOMENTUM, mom_mode_nul, AMP_ERR_INVALID_GRAPH, "Momentum mode with a NUL inside");
    attr_case(OP_MOMENTUM, mom_alpha_str, AMP_ERR_INVALID_GRAPH, "Momentum alpha as string");
    attr_case(OP_MOMENTUM, mom_beta_nan, AMP_ERR_INVALID_GRAPH, "Momentum beta NaN");
    attr_case(OP_ADAM, adam_alpha_inf, AMP_ERR_INVALID_GRAPH, "Adam alpha inf");
    attr_case(OP_ADAM, adam_eps_nan, AMP_ERR_INVALID_GRAPH, "Adam epsilon NaN");
    attr_case(OP_ADAM, adam_post_ints, AMP_ERR_INVALID_GRAPH, "Adam norm_coefficient_post as ints");
    attr_case(OP_ADAGRAD, adagrad_decay_str, AMP_ERR_INVALID_GRAPH, "Adagrad decay_factor as string");
    attr_case(OP_ADAGRAD, adagrad_nc_inf, AMP_ERR_INVALID_GRAPH, "Adagrad norm_coefficient -inf");
}

/* An int where the schema has a float is an error (onnx.checker and onnxruntime reject it too),
 * not its value. */
static void mom_int_beta(amp_test_node *t) {
    mom_base(t, true, false, true, true);
    tn_int(t, "beta", 1);
}
Test(momentum, int_attribute) {
    amp_tensor *in[16] = {0}, *got[2] = {0};
    const int nin = good_inputs(OP_MOMENTUM, 1, in);
    amp_test_node *t = pv_node(OP_MOMENTUM);
    mom_int_beta(t);
    amp_status st = pv_run(t, nin, in, 2, got, NULL);
    cr_assert_eq(st, AMP_ERR_INVALID_GRAPH, "%s: %s", amp_status_name(st), amp_context_last_error(ctx));
    cr_assert(strstr(amp_context_last_error(ctx), "beta must be a float") != NULL, "%s", amp_context_last_error(ctx));
    destroy(nin, in);
    destroy(2, got);
    tn_free(t);
}

/* The ops live in the preview domain only: the default domain does not have them. */
Test(preview_bad, domain) {
    for (int op = 0; op < 3; op++) {
        cr_assert_eq(amp_op_lookup(op_names[op], ""), AMP_OP_UNKNOWN);
        cr_assert_eq(amp_op_lookup(op_names[op], "ai.onnx"), AMP_OP_UNKNOWN);
        const amp_op id = amp_op_lookup(op_names[op], PV_DOMAIN);
        cr_assert_neq(id, AMP_OP_UNKNOWN);
        cr_assert_eq(amp_op_table[id].opset_lo, 1);
        cr_assert_eq(amp_op_table[id].opset_hi, 1);
    }
}

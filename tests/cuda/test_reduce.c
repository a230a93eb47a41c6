/* The Reduce family on CUDA (backends/cuda/op_reduce.c) against the CPU backend, one node at a
 * time (cuda_optest.h). */
#include <string.h>

#include "tests/cuda/cuda_optest.h"

/* ---- ReduceSum, ReduceMean -------------------------------------------------------------------- */

typedef struct red_case {
    int rank;
    int64_t x[5];
    int naxes; /* -1: no axes at all */
    int64_t axes[5];
    int keepdims; /* -1: the default */
    int noop;     /* noop_with_empty_axes */
} red_case;

static const red_case reds[] = {
    {2, {7, 33}, 1, {1}, -1, 0},             /* rows */
    {2, {7, 33}, 1, {-2}, 0, 0},             /* columns, negative axis */
    {4, {2, 6, 5, 5}, 2, {2, 3}, 1, 0},      /* spatial, the GlobalAveragePool shape */
    {4, {2, 6, 5, 5}, 2, {-1, 1}, 0, 0},     /* non-adjacent */
    {5, {2, 3, 4, 5, 3}, 3, {0, 2, 4}, 1, 0}, /* rank 5, three non-adjacent */
    {3, {4, 5, 7}, -1, {0}, -1, 0},          /* all axes */
    {3, {4, 5, 7}, -1, {0}, 0, 1},           /* no axes, noop: a copy (axes as input only) */
    {1, {1}, 1, {0}, 0, 0},                  /* one element */
    {1, {4133}, 1, {0}, 1, 0},               /* one long row: a block */
    {3, {3, 1000, 2}, 1, {1}, 1, 0},         /* strided long sums */
    {2, {0, 5}, 1, {0}, 1, 0},               /* empty, summed over nothing: 0 (sum) or NaN (mean) */
    {2, {5, 0}, 1, {0}, 1, 0},               /* empty output */
    {3, {2, 3, 4}, 1, {1}, 1, 0},            /* a reduced dim between kept ones */
};

/* Reduce node of one op at an opset; axes as the attribute or as an int64 input */
static void red_check(const char *op, int64_t opset, bool axes_input, const red_case *c, amp_dtype dt, uint64_t seed) {
    tnode t;
    tn_init(&t, op, false);
    t.opset = opset;
    if (c->keepdims >= 0) tn_i(&t, "keepdims", c->keepdims);
    if (c->noop) tn_i(&t, "noop_with_empty_axes", 1);
    const bool pos = strcmp(op, "ReduceLogSum") == 0;
    amp_tensor *in[2] = {rnd(dt, c->rank, c->x, seed, pos ? 0.1f : -2.0f, 2.0f), NULL};
    int nin = 1;
    if (axes_input && c->naxes >= 0) {
        in[1] = ints1(c->axes, c->naxes);
        nin = 2;
    } else if (!axes_input && c->naxes > 0) {
        tn_is(&t, "axes", c->naxes, c->axes);
    }
    /* both sides sum in double and divide in double, rounding once; the orders differ (a block's
     * tree), so f32 may differ in the last bit, 16-bit results hardly ever */
    CHECK_NODE(&t, nin, in, 1, false, dt == AMP_F32 ? 1e-7 : tol_of(dt), "%s opset %lld %s axes %s rank %d x0 %lld",
               op, (long long)opset, axes_input ? "input" : "attribute", amp_dtype_name(dt), c->rank, (long long)c->x[0]);
    free_all(in, nin);
}

static void t_reduce_sum_mean(void) {
    CT_CHECK(setup(), "setup");
    worst_reset();
    for (int d = 0; d < 3; d++)
        for (size_t c = 0; c < sizeof reds / sizeof reds[0]; c++) {
            const red_case *rc = &reds[c];
            /* ReduceSum: axes an input from opset 13; ReduceMean from 18 */
            red_check("ReduceSum", 17, true, rc, kfloats[d], 100 + c);
            red_check("ReduceMean", 18, true, rc, kfloats[d], 200 + c);
            if (rc->noop) continue; /* noop_with_empty_axes exists with the axes input only */
            red_check("ReduceSum", 11, false, rc, kfloats[d], 300 + c);
            red_check("ReduceMean", 17, false, rc, kfloats[d], 400 + c);
        }
    worst_print();
}

/* the other sum-like reductions; ReduceLogSum of positive data (log of a negative sum is NaN on
 * both sides, which checks little) */
static void t_reduce_norms(void) {
    CT_CHECK(setup(), "setup");
    worst_reset();
    const char *ops[] = {"ReduceL1", "ReduceSumSquare", "ReduceL2", "ReduceLogSum"};
    for (int d = 0; d < 3; d++)
        for (size_t o = 0; o < sizeof ops / sizeof ops[0]; o++)
            for (size_t c = 0; c < sizeof reds / sizeof reds[0]; c++) {
                red_check(ops[o], 18, true, &reds[c], kfloats[d], 500 + 20 * o + c);
                if (!reds[c].noop) red_check(ops[o], 13, false, &reds[c], kfloats[d], 600 + 20 * o + c);
            }
    worst_print();
}

/* ReduceMax, ReduceMin (exact: a value of X), ReduceProd and ReduceLogSumExp; NaN and infinity
 * placed in some groups for the extremes and log-sum-exp */
static void t_reduce_ext(void) {
    CT_CHECK(setup(), "setup");
    worst_reset();
    const char *ops[] = {"ReduceMax", "ReduceMin", "ReduceProd", "ReduceLogSumExp"};
    for (int d = 0; d < 3; d++)
        for (size_t o = 0; o < sizeof ops / sizeof ops[0]; o++)
            for (size_t c = 0; c < sizeof reds / sizeof reds[0]; c++)
                for (int sp = 0; sp < 2; sp++) {
                    const red_case *rc = &reds[c];
                    const bool exact = o < 2;
                    tnode t;
                    tn_init(&t, ops[o], false);
                    t.opset = 18;
                    if (rc->keepdims >= 0) tn_i(&t, "keepdims", rc->keepdims);
                    if (rc->noop) tn_i(&t, "noop_with_empty_axes", 1);
                    /* ReduceProd over many elements: values near 1 keep the product finite */
                    const bool prod = o == 2;
                    amp_tensor *in[2] = {rnd(kfloats[d], rc->rank, rc->x, 1000 + 20 * o + c, prod ? 0.9f : -2.0f,
                                             prod ? 1.1f : 2.0f),
                                         NULL};
                    if (sp && in[0]->numel > 2) {
                        amp_st(kfloats[d], in[0]->data, 0, NAN);
                        amp_st(kfloats[d], in[0]->data, in[0]->numel - 1, o == 1 ? -INFINITY : INFINITY);
                    }
                    int nin = 1;
                    if (rc->naxes >= 0) {
                        in[1] = ints1(rc->axes, rc->naxes);
                        nin = 2;
                    }
                    /* both in double; a product's order differs in a block (last bits of f32) */
                    CHECK_NODE(&t, nin, in, 1, exact, exact ? 0.0 : kfloats[d] == AMP_F32 ? 1e-7 : tol_of(kfloats[d]),
                               "%s %s case %zu specials %d", ops[o], amp_dtype_name(kfloats[d]), c, sp);
                    free_all(in, nin);
                }
    worst_print();
}

static void t_global_average_pool(void) {
    CT_CHECK(setup(), "setup");
    worst_reset();
    const int64_t shapes[][5] = {{2, 3, 5, 5}, {1, 7, 33}, {2, 4, 1, 1}, {1, 2, 70, 70}, {3, 5, 2, 3, 4}, {2, 3, 0, 4}};
    const int ranks[] = {4, 3, 4, 4, 5, 4};
    for (int d = 0; d < 3; d++)
        for (size_t c = 0; c < sizeof ranks / sizeof ranks[0]; c++) {
            tnode t;
            tn_init(&t, "GlobalAveragePool", false);
            amp_tensor *x = rnd(kfloats[d], ranks[c], shapes[c], 800 + c, -2.0f, 2.0f);
            CHECK_NODE(&t, 1, &x, 1, false, kfloats[d] == AMP_F32 ? 1e-7 : tol_of(kfloats[d]),
                       "GlobalAveragePool %s case %zu", amp_dtype_name(kfloats[d]), c);
            amp_tensor_destroy(x);
        }
    worst_print();
}

/* ReduceGrad (dY, X, axes?) of the forward fwd_op at fwd_opset; dY of the kept shape */
static void t_reduce_grad(void) {
    CT_CHECK(setup(), "setup");
    worst_reset();
    const char *ops[] = {"ReduceSum",    "ReduceMean",      "ReduceSumSquare", "ReduceL1",  "ReduceL2",
                         "ReduceLogSum", "ReduceLogSumExp", "ReduceMax",       "ReduceMin", "ReduceProd"};
    for (int d = 0; d < 3; d++)
        for (size_t o = 0; o < sizeof ops / sizeof ops[0]; o++)
            for (size_t c = 0; c < sizeof reds / sizeof reds[0]; c++)
                for (int axes_input = 0; axes_input < 2; axes_input++) {
                    /* ReduceSum's axes are an input from opset 13, the others' from 18 */
                    const red_case *rc = &reds[c];
                    if (rc->noop && !axes_input) continue;
                    tnode t;
                    tn_init(&t, "ReduceGrad", true);
                    tn_s(&t, "fwd_op", ops[o]);
                    tn_i(&t, "fwd_opset", axes_input ? 18 : 11);
                    if (rc->noop) tn_i(&t, "noop_with_empty_axes", 1);
                    int64_t yd[5];
                    for (int i = 0; i < rc->rank; i++) yd[i] = rc->noop ? rc->x[i] : rc->naxes < 0 ? 1 : rc->x[i];
                    for (int i = 0; i < rc->naxes; i++) yd[rc->axes[i] < 0 ? rc->axes[i] + rc->rank : rc->axes[i]] = 1;
                    /* LogSum: a positive sum; Prod: near 1 so long products stay finite; Max/Min:
                     * ties (a few levels) so the gradient is shared */
                    const bool pos = o == 5, prod = o == 9, ties = o == 7 || o == 8;
                    amp_tensor *in[3] = {rnd(kfloats[d], rc->rank, yd, 900 + c, -2.0f, 2.0f),
                                         rnd(kfloats[d], rc->rank, rc->x, 950 + c, pos ? 0.1f : prod ? 0.9f : -2.0f,
                                             prod ? 1.1f : 2.0f),
                                         NULL};
                    if (ties)
                        for (int64_t i = 0; i < in[1]->numel; i++)
                            amp_st(kfloats[d], in[1]->data, i, floor(amp_ld(kfloats[d], in[1]->data, i)));
                    if (prod && in[1]->numel > 3) amp_st(kfloats[d], in[1]->data, 1, 0.0); /* a zero factor */
                    int nin = 2;
                    if (axes_input && rc->naxes >= 0) {
                        in[2] = ints1(rc->axes, rc->naxes);
                        nin = 3;
                    } else if (!axes_input && rc->naxes > 0) {
                        tn_is(&t, "axes", rc->naxes, rc->axes);
                    }
                    /* the same formula in double, rounded once, and the statistics in the CPU's
                     * order: the CPU's bits */
                    CHECK_NODE(&t, nin, in, 1, true, 0.0, "ReduceGrad of %s %s case %zu axes %s", ops[o],
                               amp_dtype_name(kfloats[d]), c, axes_input ? "input" : "attribute");
                    free_all(in, nin);
                }
    worst_print();
}

/* GlobalMaxPool: the extreme is a value of X, NaN wins: bit-exact */
static void t_global_max_pool(void) {
    CT_CHECK(setup(), "setup");
    const int64_t shapes[][5] = {{2, 3, 5, 5}, {1, 7, 33}, {2, 4, 1, 1}, {1, 2, 70, 70}, {3, 5, 2, 3, 4}, {0, 3, 4, 4}};
    const int ranks[] = {4, 3, 4, 4, 5, 4};
    for (int d = 0; d < 3; d++)
        for (size_t c = 0; c < sizeof ranks / sizeof ranks[0]; c++)
            for (int sp = 0; sp < 2; sp++) {
                tnode t;
                tn_init(&t, "GlobalMaxPool", false);
                amp_tensor *x = rnd(kfloats[d], ranks[c], shapes[c], 1100 + c, -2.0f, 2.0f);
                if (sp && x->numel > 1) amp_st(kfloats[d], x->data, x->numel / 2, NAN);
                CHECK_NODE(&t, 1, &x, 1, true, 0.0, "GlobalMaxPool %s case %zu specials %d", amp_dtype_name(kfloats[d]),
                           c, sp);
                amp_tensor_destroy(x);
            }
}

/* ArgMax, ArgMin: every axis of a few shapes, keepdims, select_last_index, on data with ties
 * (a few levels) and with NaN */
static void t_argminmax(void) {
    CT_CHECK(setup(), "setup");
    const int64_t shapes[][4] = {{7}, {5, 33}, {2, 3, 4, 5}, {1, 300}, {3, 0, 2}};
    const int ranks[] = {1, 2, 4, 2, 3};
    for (int d = 0; d < 3; d++)
        for (int mx = 0; mx < 2; mx++)
            for (size_t c = 0; c < sizeof ranks / sizeof ranks[0]; c++)
                for (int ax = -ranks[c]; ax < ranks[c]; ax++)
                    for (int v = 0; v < 4; v++) {
                        if (shapes[c][ax < 0 ? ax + ranks[c] : ax] == 0) continue; /* refused on both sides */
                        tnode t;
                        tn_init(&t, mx ? "ArgMax" : "ArgMin", false);
                        tn_i(&t, "axis", ax);
                        tn_i(&t, "keepdims", v & 1);
                        tn_i(&t, "select_last_index", (v >> 1) & 1);
                        amp_tensor *x = rnd(kfloats[d], ranks[c], shapes[c], 1200 + c, -3.0f, 3.0f);
                        for (int64_t i = 0; i < x->numel; i++) {
                            amp_st(kfloats[d], x->data, i, floor(amp_ld(kfloats[d], x->data, i))); /* ties */
                            if (i % 11 == 5) amp_st(kfloats[d], x->data, i, NAN);
                        }
                        CHECK_NODE(&t, 1, &x, 1, true, 0.0, "%s %s case %zu axis %d variant %d", t.n.op_type,
                                   amp_dtype_name(kfloats[d]), c, ax, v);
                        amp_tensor_destroy(x);
                    }
}

/* ---- AveragePool, AveragePoolGrad ------------------------------------------------------------ */

typedef struct avg_case {
    int rank;
    int64_t dims[4];
    int64_t k[2], s[2], d[2], pads[4]; /* 1-D: k[0], s[0], d[0], pads[0] and pads[1] */
    int ceil;
} avg_case;

static const avg_case avgs[] = {
    {4, {3, 5, 7, 9}, {2, 2}, {2, 2}, {1, 1}, {0, 0, 0, 0}, 0},    /* odd planes */
    {4, {2, 3, 11, 13}, {3, 3}, {2, 2}, {1, 1}, {1, 0, 2, 1}, 1},  /* asymmetric pads, ceil_mode */
    {4, {1, 2, 9, 10}, {3, 2}, {1, 2}, {2, 1}, {2, 1, 2, 0}, 0},   /* dilation, overlapping rows */
    {4, {2, 1, 7, 7}, {2, 2}, {2, 2}, {1, 1}, {0, 0, 0, 0}, 1},    /* ceil_mode: a last window half out */
    {4, {1, 1, 1, 1}, {1, 1}, {1, 1}, {1, 1}, {0, 0, 0, 0}, 0},    /* one element */
    {3, {2, 3, 33, 0}, {3, 0}, {2, 0}, {1, 0}, {1, 1, 0, 0}, 0},   /* one spatial dim */
    {3, {1, 2, 700, 0}, {5, 0}, {1, 0}, {1, 0}, {2, 2, 0, 0}, 0},  /* 1-D, columns past one chunk of 256 */
    {4, {1, 4, 3, 600}, {3, 3}, {1, 1}, {1, 2}, {1, 2, 1, 2}, 0},  /* 2-D, dilated columns past a chunk */
    {4, {1, 33, 32, 33}, {3, 3}, {1, 1}, {1, 1}, {1, 1, 1, 1}, 0}, /* many overlapping windows */
    {4, {2, 6, 5, 5}, {5, 5}, {1, 1}, {1, 1}, {0, 0, 0, 0}, 0},    /* the whole plane */
    {4, {0, 3, 5, 5}, {2, 2}, {1, 1}, {1, 1}, {0, 0, 0, 0}, 0},    /* empty batch */
};

static void avg_attrs(tnode *t, const avg_case *p, int count_pad) {
    int nsp = p->rank - 2;
    tn_is(t, "kernel_shape", nsp, p->k);
    tn_is(t, "strides", nsp, p->s);
    tn_is(t, "dilations", nsp, p->d);
    tn_is(t, "pads", 2 * nsp, p->pads);
    if (p->ceil) tn_i(t, "ceil_mode", 1);
    if (count_pad) tn_i(t, "count_include_pad", 1);
}

static void t_average_pool(void) {
    CT_CHECK(setup(), "setup");
    worst_reset();
    for (size_t c = 0; c < sizeof avgs / sizeof avgs[0]; c++)
        for (int d = 0; d < 3; d++)
            for (int cp = 0; cp < 2; cp++) {
                tnode t;
                tn_init(&t, "AveragePool", false);
                avg_attrs(&t, &avgs[c], cp);
                amp_tensor *x = rnd(kfloats[d], avgs[c].rank, avgs[c].dims, 40 + c, -3.0f, 3.0f);
                /* f32 sums in the CPU's order, one division: bit-exact */
                CHECK_NODE(&t, 1, &x, 1, true, 0.0, "AveragePool case %zu %s count_include_pad %d", c,
                           amp_dtype_name(kfloats[d]), cp);
                amp_tensor_destroy(x);
            }
    worst_print();
}

/* AveragePoolGrad (dY, shape of X); dY of the forward's output shape */
static void t_average_pool_grad(void) {
    CT_CHECK(setup(), "setup");
    worst_reset();
    for (size_t c = 0; c < sizeof avgs / sizeof avgs[0]; c++)
        for (int d = 0; d < 3; d++)
            for (int cp = 0; cp < 2; cp++) {
                const avg_case *ac = &avgs[c];
                tnode f;
                tn_init(&f, "AveragePool", false);
                avg_attrs(&f, ac, cp);
                amp_tensor *x = rnd(kfloats[d], ac->rank, ac->dims, 60 + c, -3.0f, 3.0f), *y[1];
                amp_status s = infer_outputs(&f, 1, &x, 1, y);
                amp_tensor_destroy(x);
                CT_CHECK(s == AMP_OK, "AveragePool inference: %s", amp_context_last_error(ctx));
                amp_tensor *in[2] = {rnd(kfloats[d], y[0]->rank, y[0]->dims, 80 + c, -2.0f, 2.0f),
                                     ints1(ac->dims, ac->rank)};
                amp_tensor_destroy(y[0]);
                tnode t;
                tn_init(&t, "AveragePoolGrad", true);
                avg_attrs(&t, ac, cp);
                /* the contributions added in the CPU's order in f32: bit-exact, 16-bit too */
                CHECK_NODE(&t, 2, in, 1, true, 0.0, "AveragePoolGrad case %zu %s count_include_pad %d", c,
                           amp_dtype_name(kfloats[d]), cp);
                free_all(in, 2);
            }
    /* the global form (GlobalAveragePool's gradient), rank 3 to 5 */
    const int64_t gx[][5] = {{2, 3, 5, 5}, {1, 7, 33}, {2, 2, 3, 4, 5}, {1, 3, 1, 1}};
    const int gr[] = {4, 3, 5, 4};
    for (size_t c = 0; c < sizeof gr / sizeof gr[0]; c++)
        for (int d = 0; d < 3; d++) {
            int64_t yd[5] = {gx[c][0], gx[c][1], 1, 1, 1};
            amp_tensor *in[2] = {rnd(kfloats[d], gr[c], yd, 90 + c, -2.0f, 2.0f), ints1(gx[c], gr[c])};
            tnode t;
            tn_init(&t, "AveragePoolGrad", true);
            tn_i(&t, "global", 1);
            CHECK_NODE(&t, 2, in, 1, true, 0.0, "AveragePoolGrad global case %zu %s", c, amp_dtype_name(kfloats[d]));
            free_all(in, 2);
        }
    worst_print();
}

static void t_reduce_refused(void) {
    CT_CHECK(setup(), "setup");
    const int64_t dims[2] = {3, 4}, ax = 1;
    tnode t;
    tn_init(&t, "ReduceSum", false);
    amp_tensor *in[2] = {rnd(AMP_F64, 2, dims, 1, -1.0f, 1.0f), ints1(&ax, 1)};
    amp_tensor *ref[1] = {NULL}, *got[1] = {NULL};
    amp_status s = run_both(&t, 2, in, 1, ref, got);
    CT_CHECK(s == AMP_ERR_UNSUPPORTED, "f64 ReduceSum: %s", amp_status_name(s));
    /* prepare explains, naming the op and the dtype */
    amp_tensor *y = tens(AMP_F64, 2, dims);
    amp_kernel k = {.ctx = ctx, .n = &t.n, .opset = t.opset, .nin = 2, .nout = 1, .in = in, .out = &y, .threads = 1};
    void *state = NULL;
    size_t ws = 0;
    s = entry_of(t.n.op)->prepare(&cu, &k, &state, &ws);
    CT_CHECK(s == AMP_ERR_UNSUPPORTED && !state, "prepare: %s", amp_status_name(s));
    CT_CHECK(strstr(amp_context_last_error(ctx), "ReduceSum on CUDA runs f32, f16 and bf16") != NULL, "message: %s",
             amp_context_last_error(ctx));
    amp_tensor_destroy(y);
    free_all(in, 2);
}

static void t_no_leak(void) {
#ifndef AMP_CUDA_EMULATED
    CT_SKIP("device regions are counted by the emulator's runtime");
#else
    CT_CHECK(setup(), "setup");
    CT_CHECK(amp_emu_device_regions() == 0, "%zu device regions left by the cases", amp_emu_device_regions());
#endif
}

static const ct_case cases[] = {
    {"reduce_sum_mean", t_reduce_sum_mean},
    {"reduce_norms", t_reduce_norms},
    {"reduce_ext", t_reduce_ext},
    {"global_average_pool", t_global_average_pool},
    {"global_max_pool", t_global_max_pool},
    {"argminmax", t_argminmax},
    {"reduce_grad", t_reduce_grad},
    {"average_pool", t_average_pool},
    {"average_pool_grad", t_average_pool_grad},
    {"reduce_refused", t_reduce_refused},
    {"no_leak", t_no_leak},
    {NULL, NULL},
};

int main(int argc, char **argv) { return ot_main(argc, argv, cases); }

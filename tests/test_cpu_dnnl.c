/* The CPU backend's oneDNN path (backends/cpu/dnnl.c) against its reference kernels: every node
 * runs twice on the "cpu" backend, once with AMPRT_CPU_DNNL=0 (the reference kernels) and once
 * with oneDNN, which must have run (its execution count grows) and agree within relative L2
 * 1e-6 in f32 and 1e-2 in bf16. Shapes are odd on purpose (M, N, K and channels off multiples
 * of 16), convolutions cover 1x1, 3x3, strided, dilated, asymmetric pads, grouped, depthwise,
 * 1-D and 3-D, batch 1 and 8. Inputs are known at prepare in tn_run (the constant-weight
 * reorder); the dynamic tests prepare with no data, as a graph input or a trained weight is. */
#define _POSIX_C_SOURCE 200809L /* setenv, unsetenv */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backends/backend.h"
#include "backends/cpu/dnnl.h"
#include "testutil.h"

static amp_context *ctx;
static void setup(void) {
    cr_assert_eq(amp_context_create(NULL, &ctx), AMP_OK);
    unsetenv("AMPRT_CPU_DNNL");
}
static void teardown(void) { amp_context_destroy(ctx); }
TestSuite(dnnl, .init = setup, .fini = teardown, .timeout = 120);

#ifndef AMP_HAVE_DNNL
/* Built without oneDNN (AMP_DNNL off or libdnnl missing): nothing takes a node. */
Test(dnnl, built_without_onednn) {
    cr_assert(!amp_cpu_dnnl_wanted());
    cr_assert_eq(amp_cpu_dnnl_runs(), 0);
}
#else

static const amp_dtype types[] = {AMP_F32, AMP_BF16};
static uint64_t seed = 101;

static double tol_of(amp_dtype dt) { return dt == AMP_F32 ? 1e-6 : 1e-2; }

static amp_tensor *rnd(amp_dtype dt, int rank, const int64_t *dims) {
    amp_tensor *t = tt_rand(ctx, dt, rank, dims, -1.0, 1.0, seed++);
    cr_assert_not_null(t);
    return t;
}

static void free_all(int n, amp_tensor **t) {
    for (int i = 0; i < n; i++) amp_tensor_destroy(t[i]);
}

/* The node's output on the reference kernels and on oneDNN; oneDNN must have run exactly when
 * `taken`, and the two outputs agree within the dtype's tolerance. */
static void compare(amp_test_node *t, int nin, amp_tensor *const *in, bool taken, const char *what) {
    amp_tensor *ref = NULL, *got = NULL;
    setenv("AMPRT_CPU_DNNL", "0", 1);
    uint64_t r0 = amp_cpu_dnnl_runs();
    cr_assert_eq(tn_run(t, nin, in, 1, &ref), AMP_OK, "%s: reference: %s", what, amp_context_last_error(ctx));
    cr_assert_eq(amp_cpu_dnnl_runs(), r0, "%s: AMPRT_CPU_DNNL=0 still ran oneDNN", what);
    unsetenv("AMPRT_CPU_DNNL");
    cr_assert_eq(tn_run(t, nin, in, 1, &got), AMP_OK, "%s: oneDNN: %s", what, amp_context_last_error(ctx));
    uint64_t r1 = amp_cpu_dnnl_runs();
    if (taken) cr_assert_gt(r1, r0, "%s (%s): oneDNN did not take the node", what, amp_dtype_name(in[0]->dtype));
    else cr_assert_eq(r1, r0, "%s (%s): oneDNN took a node it should leave", what, amp_dtype_name(in[0]->dtype));
    cr_assert_eq(got->dtype, ref->dtype);
    double sum = 0;
    for (int64_t i = 0; i < ref->numel; i++) sum += fabs(tt_get(ref, i));
    cr_assert_gt(sum, 0.0, "%s: the reference output is all zeros", what);
    double e = sqrt(tt_nse(got, ref));
    cr_assert(e < tol_of(in[0]->dtype), "%s (%s): relative L2 %g over %g", what, amp_dtype_name(in[0]->dtype), e,
              tol_of(in[0]->dtype));
    amp_tensor_destroy(ref);
    amp_tensor_destroy(got);
}

/* ---- matrix products ------------------------------------------------------------------------ */

static void matmul_case(int ra, const int64_t *ad, int rb, const int64_t *bd) {
    for (size_t d = 0; d < sizeof types / sizeof *types; d++) {
        amp_test_node *t = tn_new(ctx, "MatMul");
        amp_tensor *in[2] = {rnd(types[d], ra, ad), rnd(types[d], rb, bd)};
        compare(t, 2, in, true, "MatMul");
        free_all(2, in);
        tn_free(t);
    }
}

Test(dnnl, matmul_2d_odd) {
    matmul_case(2, (int64_t[]){5, 7}, 2, (int64_t[]){7, 3});
    matmul_case(2, (int64_t[]){1, 33}, 2, (int64_t[]){33, 47});
    matmul_case(2, (int64_t[]){67, 129}, 2, (int64_t[]){129, 31});
}

Test(dnnl, matmul_batched_and_broadcast) {
    matmul_case(3, (int64_t[]){8, 13, 17}, 2, (int64_t[]){17, 19});
    matmul_case(4, (int64_t[]){2, 1, 5, 9}, 3, (int64_t[]){3, 9, 6});
    matmul_case(3, (int64_t[]){3, 4, 9}, 3, (int64_t[]){3, 9, 5});
    matmul_case(2, (int64_t[]){6, 9}, 3, (int64_t[]){4, 9, 5});
}

Test(dnnl, matmul_vectors) {
    matmul_case(1, (int64_t[]){9}, 3, (int64_t[]){2, 9, 4});
    matmul_case(3, (int64_t[]){2, 5, 9}, 1, (int64_t[]){9});
    matmul_case(1, (int64_t[]){23}, 1, (int64_t[]){23});
}

static void gemm_case(int64_t M, int64_t N, int64_t K, int ta, int tb, int crank, float alpha, float beta,
                      bool taken) {
    for (size_t d = 0; d < sizeof types / sizeof *types; d++) {
        amp_test_node *t = tn_new(ctx, "Gemm");
        tn_int(t, "transA", ta);
        tn_int(t, "transB", tb);
        tn_float(t, "alpha", alpha);
        tn_float(t, "beta", beta);
        int64_t a[2] = {ta ? K : M, ta ? M : K}, b[2] = {tb ? N : K, tb ? K : N};
        int64_t c2[2] = {M, N}, c1[1] = {N}, cm[2] = {M, 1};
        amp_tensor *in[3] = {rnd(types[d], 2, a), rnd(types[d], 2, b), NULL};
        if (crank == 2) in[2] = rnd(types[d], 2, c2);
        if (crank == 1) in[2] = rnd(types[d], 1, c1);
        if (crank == 3) in[2] = rnd(types[d], 2, cm); /* a column broadcast over N */
        if (crank == 0) in[2] = rnd(types[d], 0, NULL);
        char what[96];
        snprintf(what, sizeof what, "Gemm %lldx%lldx%lld ta%d tb%d C%d a%g b%g", (long long)M, (long long)N,
                 (long long)K, ta, tb, crank, alpha, beta);
        compare(t, in[2] ? 3 : 2, in, taken, what);
        free_all(3, in);
        tn_free(t);
    }
}

Test(dnnl, gemm_transposes_and_c) {
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++) gemm_case(13, 21, 35, ta, tb, 1, 1.0f, 1.0f, true);
    gemm_case(8, 1000, 129, 0, 1, 1, 1.0f, 1.0f, true);
    gemm_case(7, 9, 11, 0, 0, 2, 1.0f, 1.0f, true);
    gemm_case(7, 9, 11, 1, 0, 3, 1.0f, 1.0f, true);
    gemm_case(7, 9, 11, 0, 1, 0, 1.0f, 1.0f, true);
    gemm_case(7, 9, 11, 0, 0, -1, 0.5f, 1.0f, true); /* no C, alpha as oneDNN's output scale */
    gemm_case(7, 9, 11, 0, 0, 2, 0.25f, 0.0f, true); /* beta 0: C ignored */
}

Test(dnnl, gemm_scaled_c_falls_back) {
    /* alpha A B + beta C with beta not 1 has no oneDNN form here: the reference runs */
    gemm_case(7, 9, 11, 0, 0, 2, 1.0f, 0.5f, false);
    gemm_case(7, 9, 11, 0, 0, 1, 2.0f, 1.0f, false);
}

Test(dnnl, fused_gemm_activations) {
    const char *acts[] = {"", "Relu", "Gelu", "GeluTanh"};
    for (size_t d = 0; d < sizeof types / sizeof *types; d++)
        for (int a = 0; a < 4; a++)
            for (int tb = 0; tb < 2; tb++) {
                amp_test_node *t = tn_new(ctx, "FusedGemm");
                t->node.domain = "ai.amprt.fused";
                t->node.op = amp_op_lookup("FusedGemm", "ai.amprt.fused");
                t->opset = 1;
                tn_str(t, "activation", acts[a]);
                tn_int(t, "trans_b", tb);
                int64_t ad[3] = {2, 7, 37}, bd[2] = {tb ? 23 : 37, tb ? 37 : 23}, cd[1] = {23};
                amp_tensor *in[3] = {rnd(types[d], 3, ad), rnd(types[d], 2, bd), rnd(types[d], 1, cd)};
                compare(t, 3, in, true, acts[a][0] ? acts[a] : "FusedGemm");
                free_all(3, in);
                tn_free(t);
            }
}

/* ---- convolutions --------------------------------------------------------------------------- */

typedef struct conv_case {
    const char *what;
    int rank;
    int64_t x[5], w[5];
    int64_t group, s, d;
    int64_t pads[6];
    bool bias;
} conv_case;

static void conv_run(const conv_case *c, const char *op) {
    int nsp = c->rank - 2;
    for (size_t d = 0; d < sizeof types / sizeof *types; d++) {
        amp_test_node *t = tn_new(ctx, op);
        if (!strcmp(op, "FusedConv")) {
            t->node.domain = "ai.amprt.fused";
            t->node.op = amp_op_lookup(op, "ai.amprt.fused");
            t->opset = 1;
            tn_str(t, "activation", "Relu");
        }
        int64_t st[3] = {c->s, c->s, c->s}, dil[3] = {c->d, c->d, c->d};
        tn_ints(t, "strides", nsp, st);
        tn_ints(t, "dilations", nsp, dil);
        tn_ints(t, "pads", 2 * nsp, c->pads);
        tn_int(t, "group", c->group);
        int64_t bd[1] = {c->w[0]};
        amp_tensor *in[3] = {rnd(types[d], c->rank, c->x), rnd(types[d], c->rank, c->w),
                             c->bias ? rnd(types[d], 1, bd) : NULL};
        compare(t, c->bias ? 3 : 2, in, true, c->what);
        free_all(3, in);
        tn_free(t);
    }
}

static const conv_case convs[] = {
    {"1x1", 4, {1, 19, 7, 9}, {21, 19, 1, 1}, 1, 1, 1, {0}, true},
    {"1x1 batch 8", 4, {8, 24, 5, 5}, {40, 24, 1, 1}, 1, 1, 1, {0}, false},
    {"3x3 pad 1", 4, {1, 3, 17, 15}, {13, 3, 3, 3}, 1, 1, 1, {1, 1, 1, 1}, true},
    {"3x3 stride 2 batch 8", 4, {8, 17, 13, 11}, {23, 17, 3, 3}, 1, 2, 1, {1, 1, 1, 1}, true},
    {"3x3 dilated 2, asymmetric pads", 4, {2, 5, 14, 12}, {7, 5, 3, 3}, 1, 1, 2, {2, 0, 1, 3}, true},
    {"grouped 3", 4, {2, 12, 9, 9}, {15, 4, 3, 3}, 3, 1, 1, {1, 1, 1, 1}, true},
    {"depthwise", 4, {8, 32, 10, 10}, {32, 1, 3, 3}, 32, 1, 1, {1, 1, 1, 1}, true},
    {"depthwise stride 2", 4, {1, 24, 11, 13}, {24, 1, 3, 3}, 24, 2, 1, {1, 1, 1, 1}, false},
    {"7x7 stride 2 (a stem)", 4, {1, 3, 31, 29}, {16, 3, 7, 7}, 1, 2, 1, {3, 3, 3, 3}, false},
    {"1-D", 3, {4, 6, 29}, {9, 6, 5}, 1, 1, 1, {2, 2}, true},
    {"3-D", 5, {2, 3, 6, 7, 5}, {5, 3, 3, 3, 3}, 1, 1, 1, {1, 1, 1, 1, 1, 1}, true},
};

Test(dnnl, conv_shapes) {
    for (size_t i = 0; i < sizeof convs / sizeof *convs; i++) conv_run(&convs[i], "Conv");
}

Test(dnnl, fused_conv_relu) {
    for (size_t i = 0; i < sizeof convs / sizeof *convs; i += 2) conv_run(&convs[i], "FusedConv");
}

/* ---- what stays on the reference ------------------------------------------------------------ */

Test(dnnl, other_dtypes_fall_back) {
    amp_dtype others[] = {AMP_F64, AMP_F16};
    for (int d = 0; d < 2; d++) {
        amp_test_node *t = tn_new(ctx, "MatMul");
        amp_tensor *in[2] = {rnd(others[d], 2, (int64_t[]){5, 7}), rnd(others[d], 2, (int64_t[]){7, 3})};
        compare(t, 2, in, false, "MatMul in another dtype");
        free_all(2, in);
        tn_free(t);
    }
}

/* ---- inputs unknown at prepare ------------------------------------------------------------ */

/* Prepare the node with no input data (the planner's view of a graph input or a trained
 * weight), then run it on in; the output must match the reference's within tolerance. */
static void dynamic_case(amp_test_node *t, int nin, amp_tensor *const *in) {
    amp_tensor *ref = NULL;
    setenv("AMPRT_CPU_DNNL", "0", 1);
    cr_assert_eq(tn_run(t, nin, in, 1, &ref), AMP_OK, "%s", amp_context_last_error(ctx));
    unsetenv("AMPRT_CPU_DNNL");
    amp_tensor *y;
    cr_assert_eq(amp_tensor_create(ctx, ref->dtype, ref->rank, ref->dims, &y), AMP_OK);
    amp_tensor views[3], *pin[3], *pout[1] = {y};
    for (int i = 0; i < nin; i++) {
        views[i] = *in[i];
        views[i].data = NULL;
        pin[i] = &views[i];
    }
    void *ydata = y->data;
    y->data = NULL;
    amp_backend *b;
    cr_assert_eq(amp_backend_create(ctx, "cpu", 2, &b), AMP_OK);
    amp_kernel k = {.ctx = ctx, .n = &t->node, .opset = t->opset, .nin = nin, .nout = 1, .in = pin, .out = pout,
                    .threads = 2};
    void *state = NULL;
    size_t ws = 0;
    cr_assert_eq(amp_backend_prepare(b, &k, &state, &ws), AMP_OK, "%s", amp_context_last_error(ctx));
    cr_assert_not_null(state, "oneDNN did not take the node");
    void *w = ws ? malloc(ws) : NULL;
    for (int i = 0; i < nin; i++) views[i].data = in[i]->data;
    y->data = ydata;
    k.ws = w;
    k.ws_bytes = ws;
    /* twice: the second run must not depend on anything the first left in the workspace */
    for (int r = 0; r < 2; r++) {
        memset(y->data, 0xFF, (size_t)y->numel * amp_dtype_size(y->dtype));
        if (w) memset(w, 0xFF, ws);
        amp_backend_step st = {.k = k, .state = state, .index = 0, .layout = NULL};
        cr_assert_eq(amp_backend_run(b, &st), AMP_OK, "%s", amp_context_last_error(ctx));
        double e = sqrt(tt_nse(y, ref));
        cr_assert(e < tol_of(y->dtype), "run %d (%s): relative L2 %g", r, amp_dtype_name(y->dtype), e);
    }
    free(w);
    amp_backend_release(b, state);
    amp_backend_destroy(b);
    amp_tensor_destroy(y);
    amp_tensor_destroy(ref);
}

Test(dnnl, dynamic_weights) {
    for (size_t d = 0; d < sizeof types / sizeof *types; d++) {
        amp_test_node *t = tn_new(ctx, "MatMul");
        amp_tensor *in[2] = {rnd(types[d], 3, (int64_t[]){3, 11, 29}), rnd(types[d], 2, (int64_t[]){29, 17})};
        dynamic_case(t, 2, in);
        free_all(2, in);
        tn_free(t);

        t = tn_new(ctx, "Conv");
        tn_ints(t, "pads", 4, (int64_t[]){1, 1, 1, 1});
        tn_int(t, "group", 2);
        amp_tensor *cin[3] = {rnd(types[d], 4, (int64_t[]){8, 6, 9, 11}), rnd(types[d], 4, (int64_t[]){10, 3, 3, 3}),
                              rnd(types[d], 1, (int64_t[]){10})};
        dynamic_case(t, 3, cin);
        free_all(3, cin);
        tn_free(t);
    }
}

#endif

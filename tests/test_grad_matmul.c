/* Gradients of the matmul family (ir/ops/matmul_grad.c, backends/cpu/matmul_grad.c): Gemm with
 * every transposition and C shape, MatMul with every broadcasting form.
 *
 * Every case is a finite-difference check (tests/gradcheck.h) in f64 with eps 1e-6 and random
 * inputs; the analytic gradient must agree within a relative L2 error of 1e-5. GemmCGrad and
 * MatMulGrad also run in f16, bf16 and f32 against their own f64 result on the same (rounded)
 * inputs, within a relative L2 error of 1e-2 (1e-5 for f32). */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gradcheck.h"
#include "ir/grad.h"
#include "testutil.h"

static amp_context *ctx;
static void setup(void) { cr_assert_eq(amp_context_create(NULL, &ctx), AMP_OK); }
static void teardown(void) { amp_context_destroy(ctx); }
TestSuite(grad_matmul, .init = setup, .fini = teardown);

#include "nn_gradutil.h"

/* ---- Gemm ------------------------------------------------------------------------------------- */

Test(grad_matmul, gemm_every_transpose_and_c_shape) {
    const int64_t M = 3, K = 4, N = 5;
    /* C: none, scalar, [N], [1,N], [M,1], [M,N], [1], [1,1] */
    const int cr[8] = {-1, 0, 1, 2, 2, 2, 1, 2};
    const int64_t cd[8][2] = {{0, 0}, {0, 0}, {N, 0}, {1, N}, {M, 1}, {M, N}, {1, 0}, {1, 1}};
    const float ab[2][2] = {{1.0f, 1.0f}, {0.7f, -1.3f}};
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++)
            for (int ci = 0; ci < 8; ci++)
                for (int v = 0; v < 2; v++) {
                    int64_t ad[2] = {ta ? K : M, ta ? M : K}, bd[2] = {tb ? N : K, tb ? K : N};
                    amp_tensor *in[3] = {rnd(2, ad, -1, 1), rnd(2, bd, -1, 1),
                                         cr[ci] >= 0 ? rnd(cr[ci], cd[ci], -1, 1) : NULL};
                    amp_test_node *t = tn_new(ctx, "Gemm");
                    tn_int(t, "transA", ta);
                    tn_int(t, "transB", tb);
                    tn_float(t, "alpha", ab[v][0]);
                    tn_float(t, "beta", ab[v][1]);
                    char what[96];
                    snprintf(what, sizeof what, "Gemm transA=%d transB=%d C#%d alpha/beta#%d", ta, tb, ci, v);
                    gc_ok(t, cr[ci] >= 0 ? 3 : 2, in, NULL, 1, what);
                    tn_free(t);
                    free_in(in, 3);
                }
}

Test(grad_matmul, gemm_opset9_requires_c) {
    /* before opset 11 the backward Gemm nodes carry a zero C themselves */
    for (int ta = 0; ta < 2; ta++) {
        int64_t ad[2] = {ta ? 4 : 3, ta ? 3 : 4}, bd[2] = {5, 4}, cd[1] = {5};
        amp_tensor *in[3] = {rnd(2, ad, -1, 1), rnd(2, bd, -1, 1), rnd(1, cd, -1, 1)};
        amp_test_node *t = tn_new(ctx, "Gemm");
        t->opset = 9;
        tn_int(t, "transA", ta);
        tn_int(t, "transB", 1);
        tn_float(t, "alpha", 2.0f);
        gc_ok(t, 3, in, NULL, 1, "Gemm opset 9");
        tn_free(t);
        free_in(in, 3);
    }
}

Test(grad_matmul, gemm_c_grad_16bit) {
    const int64_t dyd[2] = {37, 300};
    const int cr[4] = {0, 1, 2, 2};
    const int64_t cd[4][2] = {{0, 0}, {300, 0}, {37, 1}, {37, 300}};
    for (int ci = 0; ci < 4; ci++) {
        amp_tensor *in[2] = {rnd(2, dyd, -1, 1), rnd(cr[ci], cd[ci], -1, 1)};
        amp_test_node *t = tn_train(ctx, "GemmCGrad");
        tn_float(t, "beta", 0.5f);
        cmp_narrow(t, 2, in, (const bool[]){true, true}, 1, "GemmCGrad");
        tn_free(t);
        free_in(in, 2);
    }
}

/* ---- MatMul ----------------------------------------------------------------------------------- */

typedef struct mm_case {
    int ra, rb;
    int64_t a[4], b[4];
} mm_case;

static const mm_case mm_cases[] = {
    {1, 1, {4}, {4}},                         /* dot product */
    {1, 2, {4}, {4, 3}},                      /* vector x matrix */
    {2, 1, {3, 4}, {4}},                      /* matrix x vector */
    {2, 2, {3, 4}, {4, 5}},                   /* plain */
    {3, 2, {2, 3, 4}, {4, 5}},                /* batched A, shared B: one flat product */
    {2, 3, {3, 4}, {2, 4, 5}},                /* shared A: dA summed over B's batch */
    {4, 3, {2, 1, 3, 4}, {3, 4, 5}},          /* both broadcast */
    {3, 3, {2, 3, 4}, {2, 4, 5}},             /* matching batches */
    {1, 3, {4}, {2, 4, 5}},                   /* vector x batch */
    {4, 1, {2, 2, 3, 4}, {4}},                /* batch x vector */
    {3, 3, {1, 3, 4}, {2, 4, 5}},             /* size-1 batch dim of A */
    {3, 3, {8, 16, 16}, {8, 16, 16}},         /* independent batches on threads */
    {2, 2, {0, 4}, {4, 3}},                   /* M = 0: dB is zero */
    {2, 2, {2, 0}, {0, 3}},                   /* K = 0 */
};

Test(grad_matmul, matmul_shapes_and_broadcasting) {
    for (size_t i = 0; i < sizeof mm_cases / sizeof mm_cases[0]; i++) {
        const mm_case *c = &mm_cases[i];
        amp_tensor *in[2] = {rnd(c->ra, c->a, -1, 1), rnd(c->rb, c->b, -1, 1)};
        amp_test_node *t = tn_new(ctx, "MatMul");
        char what[64];
        snprintf(what, sizeof what, "MatMul case %zu", i);
        gc_ok(t, 2, in, NULL, 1, what);
        tn_free(t);
        free_in(in, 2);
    }
}

Test(grad_matmul, matmul_grad_16bit) {
    for (size_t i = 0; i < sizeof mm_cases / sizeof mm_cases[0]; i++) {
        const mm_case *c = &mm_cases[i];
        amp_tensor *a = rnd(c->ra, c->a, -1, 1), *b = rnd(c->rb, c->b, -1, 1), *y[1];
        amp_test_node *f = tn_new(ctx, "MatMul");
        amp_tensor *ab[2] = {a, b};
        cr_assert_eq(tn_run(f, 2, ab, 1, y), AMP_OK);
        amp_tensor *dy = rnd(y[0]->rank, y[0]->dims, -1, 1);
        for (int wrt = 0; wrt < 2; wrt++) {
            amp_test_node *t = tn_train(ctx, "MatMulGrad");
            tn_int(t, "wrt", wrt);
            amp_tensor *in[3] = {dy, a, b};
            cmp_narrow(t, 3, in, (const bool[]){true, true, true}, 1, "MatMulGrad");
            tn_free(t);
        }
        tn_free(f);
        amp_tensor_destroy(y[0]);
        amp_tensor_destroy(dy);
        amp_tensor_destroy(a);
        amp_tensor_destroy(b);
    }
}

/* ---- zero-size dims ---------------------------------------------------------------------------- */

Test(grad_matmul, zero_size_dims) {
    {
        const int64_t ad[2] = {0, 4}, bd[2] = {4, 5}, cd[1] = {5};
        amp_tensor *in[3] = {rnd(2, ad, -1, 1), rnd(2, bd, -1, 1), rnd(1, cd, -1, 1)};
        amp_test_node *t = tn_new(ctx, "Gemm");
        gc_ok(t, 3, in, NULL, 1, "Gemm M=0");
        tn_free(t);
        free_in(in, 3);
    }
}

/* ---- bad input ------------------------------------------------------------------------------ */

Test(grad_matmul, bad_attributes_and_shapes_fail_cleanly) {
    const int64_t ad[2] = {3, 4}, bd[2] = {4, 5}, yd[2] = {3, 5}, wrong[2] = {3, 6};
    amp_tensor *a = rnd(2, ad, -1, 1), *b = rnd(2, bd, -1, 1), *dy = rnd(2, yd, -1, 1), *dyw = rnd(2, wrong, -1, 1);
    amp_tensor *out[1] = {0};

    amp_test_node *t = tn_train(ctx, "MatMulGrad");
    tn_int(t, "wrt", 7);
    cr_assert_eq(tn_run(t, 3, (amp_tensor *[]){dy, a, b}, 1, out), AMP_ERR_INVALID_GRAPH);
    cr_assert(strstr(amp_context_last_error(ctx), "wrt") != NULL, "message: %s", amp_context_last_error(ctx));
    tn_free(t);

    t = tn_train(ctx, "MatMulGrad");
    tn_int(t, "wrt", 0);
    cr_assert_eq(tn_run(t, 3, (amp_tensor *[]){dyw, a, b}, 1, out), AMP_ERR_SHAPE);
    cr_assert(strstr(amp_context_last_error(ctx), "shape of A x B") != NULL, "message: %s",
              amp_context_last_error(ctx));
    tn_free(t);

    /* C [3, 4] does not broadcast to dY's [3, 5] */
    t = tn_train(ctx, "GemmCGrad");
    cr_assert_eq(tn_run(t, 2, (amp_tensor *[]){dy, a}, 1, out), AMP_ERR_SHAPE);
    cr_assert(strstr(amp_context_last_error(ctx), "broadcast") != NULL, "message: %s", amp_context_last_error(ctx));
    tn_free(t);

    cr_assert_null(out[0]);
    amp_tensor *all[4] = {a, b, dy, dyw};
    free_in(all, 4);
}

/* Gemm and MatMul (ir/ops/matmul.c, backends/cpu/matmul.c) against direct loops written here in
 * double. 16-bit inputs are rounded on creation and the references read those rounded values,
 * so what is left is the kernel's f32 arithmetic and the one rounding on store. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

static amp_context *ctx;
static void setup(void) { cr_assert_eq(amp_context_create(NULL, &ctx), AMP_OK); }
static void teardown(void) { amp_context_destroy(ctx); }
TestSuite(matmul, .init = setup, .fini = teardown);

#include "conv_testutil.h"

/* =========================================================================================== */
/* Gemm                                                                                        */

static const amp_dtype MM_DTYPES[] = {AMP_F32, AMP_F16, AMP_BF16, AMP_F64, AMP_I32, AMP_I64};
#define N_MM 6

static void run_gemm(amp_dtype dt, int ta, int tb, float alpha, float beta, int crank, const int64_t *cdims,
                     const char *what) {
    int64_t M = 5, K = 7, N = 3;
    int64_t ad[2] = {ta ? K : M, ta ? M : K}, bd[2] = {tb ? N : K, tb ? K : N}, yd[2] = {M, N};
    int isint = amp_dtype_is_int(dt);
    double lo = isint ? -9 : -1, hi = isint ? 9 : 1;
    amp_tensor *in[3] = {tt_rand(ctx, dt, 2, ad, lo, hi, 51), tt_rand(ctx, dt, 2, bd, lo, hi, 52),
                         crank >= 0 ? tt_rand(ctx, dt, crank, cdims, lo, hi, 53) : NULL};
    amp_tensor *y[1];
    amp_test_node *t = tn_new(ctx, "Gemm");
    if (ta) tn_int(t, "transA", 1);
    if (tb) tn_int(t, "transB", 1);
    if (alpha != 1.0f) tn_float(t, "alpha", alpha);
    if (beta != 1.0f) tn_float(t, "beta", beta);
    amp_status s = tn_run(t, crank >= 0 ? 3 : 2, in, 1, y);
    cr_assert_eq(s, AMP_OK, "%s: %s", what, amp_context_last_error(ctx));
    double ref[15];
    for (int64_t m = 0; m < M; m++)
        for (int64_t n = 0; n < N; n++) {
            double acc = 0;
            for (int64_t k = 0; k < K; k++)
                acc += tt_get(in[0], ta ? k * M + m : m * K + k) * tt_get(in[1], tb ? n * K + k : k * N + n);
            acc *= alpha;
            if (in[2]) {
                int64_t r = crank == 2 && cdims[0] != 1 ? m : 0, c = crank >= 1 && cdims[crank - 1] != 1 ? n : 0;
                int64_t cw = crank >= 1 ? cdims[crank - 1] : 1;
                acc += beta * tt_get(in[2], r * cw + c);
            }
            ref[m * N + n] = acc;
        }
    expect_close(y[0], dt, 2, yd, ref, what);
    free_all(y, 1);
    free_all(in, 3);
    tn_free(t);
}

Test(matmul, gemm_transposes_bias_shapes_every_dtype) {
    static const int64_t cshape[6][2] = {{0}, {0}, {3}, {1, 3}, {5, 1}, {5, 3}};
    static const int cranks[6] = {-1, 0, 1, 2, 2, 2};
    for (int di = 0; di < N_MM; di++)
        for (int tr = 0; tr < 4; tr++)
            for (int c = 0; c < 6; c++) {
                int isint = amp_dtype_is_int(MM_DTYPES[di]);
                run_gemm(MM_DTYPES[di], tr & 1, tr >> 1, 1.0f, 1.0f, cranks[c], cshape[c], "gemm");
                if (!isint || c == 5)
                    run_gemm(MM_DTYPES[di], tr & 1, tr >> 1, isint ? 2.0f : 0.5f, isint ? 3.0f : -1.5f, cranks[c],
                             cshape[c], "gemm alpha beta");
            }
    int64_t one[1] = {1};
    run_gemm(AMP_F32, 0, 0, 1.0f, 0.0f, 1, one, "gemm beta 0");
}

static amp_status mm_status(const char *op, amp_dtype dt, int ra, const int64_t *a, int rb, const int64_t *b, int rc,
                            const int64_t *c) {
    amp_tensor *in[3] = {tt_rand(ctx, dt, ra, a, 0, 5, 1), tt_rand(ctx, dt, rb, b, 0, 5, 2),
                         c ? tt_rand(ctx, dt, rc, c, 0, 5, 3) : NULL};
    amp_tensor *y[1];
    amp_test_node *t = tn_new(ctx, op);
    amp_status s = tn_run(t, c ? 3 : 2, in, 1, y);
    if (s == AMP_OK) free_all(y, 1);
    free_all(in, 3);
    tn_free(t);
    return s;
}

Test(matmul, gemm_bad_inputs) {
    int64_t a[2] = {4, 3}, b[2] = {4, 5}, bok[2] = {3, 5}, c2[2] = {2, 5}, c3[3] = {1, 4, 5}, a3[3] = {1, 4, 3};
    cr_assert_eq(mm_status("Gemm", AMP_F32, 2, a, 2, b, 0, NULL), AMP_ERR_SHAPE, "inner dims");
    cr_assert_eq(mm_status("Gemm", AMP_F32, 2, a, 2, bok, 2, c2), AMP_ERR_SHAPE, "C rows");
    cr_assert_eq(mm_status("Gemm", AMP_F32, 2, a, 2, bok, 3, c3), AMP_ERR_SHAPE, "C rank 3");
    cr_assert_eq(mm_status("Gemm", AMP_F32, 3, a3, 2, bok, 0, NULL), AMP_ERR_SHAPE, "A rank 3");
    cr_assert_eq(mm_status("Gemm", AMP_U8, 2, a, 2, bok, 0, NULL), AMP_ERR_UNSUPPORTED, "uint8");
}

/* =========================================================================================== */
/* MatMul                                                                                      */

static void run_matmul(amp_dtype dt, int ra, const int64_t *ad, int rb, const int64_t *bd, int ry, const int64_t *yd,
                       int threads, const char *what) {
    int isint = amp_dtype_is_int(dt);
    double lo = isint ? -9 : -1, hi = isint ? 9 : 1;
    amp_tensor *in[2] = {tt_rand(ctx, dt, ra, ad, lo, hi, 61), tt_rand(ctx, dt, rb, bd, lo, hi, 62)}, *y[1];
    amp_test_node *t = tn_new(ctx, "MatMul");
    t->threads = threads;
    amp_status s = tn_run(t, 2, in, 1, y);
    cr_assert_eq(s, AMP_OK, "%s: %s", what, amp_context_last_error(ctx));
    /* numpy: a 1-D A is a row [1, K], a 1-D B a column [K, 1]; batch dims broadcast */
    int64_t M = ra == 1 ? 1 : ad[ra - 2], K = ad[ra - 1], N = rb == 1 ? 1 : bd[rb - 1];
    int nbr = ry - (ra > 1) - (rb > 1), nba = ra > 2 ? ra - 2 : 0, nbb = rb > 2 ? rb - 2 : 0;
    int64_t nb = prod(nbr, yd);
    double *ref = malloc(sizeof(double) * (size_t)(nb * M * N + 1));
    int64_t bi[8] = {0};
    for (int64_t q = 0; q < nb; q++, step(nbr, bi, yd)) {
        int64_t oa = 0, ob = 0;
        for (int i = 0; i < nba; i++)
            oa = oa * ad[i] + (ad[i] == 1 ? 0 : bi[nbr - nba + i]);
        for (int i = 0; i < nbb; i++)
            ob = ob * bd[i] + (bd[i] == 1 ? 0 : bi[nbr - nbb + i]);
        for (int64_t m = 0; m < M; m++)
            for (int64_t n = 0; n < N; n++) {
                double acc = 0;
                for (int64_t k = 0; k < K; k++)
                    acc += tt_get(in[0], (oa * M + m) * K + k) * tt_get(in[1], (ob * K + k) * N + n);
                ref[(q * M + m) * N + n] = acc;
            }
    }
    expect_close(y[0], dt, ry, yd, ref, what);
    free(ref);
    free_all(y, 1);
    free_all(in, 2);
    tn_free(t);
}

Test(matmul, matmul_shapes_every_dtype) {
    for (int di = 0; di < N_MM; di++) {
        amp_dtype dt = MM_DTYPES[di];
        int64_t a2[2] = {5, 7}, b2[2] = {7, 3}, y2[2] = {5, 3};
        run_matmul(dt, 2, a2, 2, b2, 2, y2, 2, "2-D");
        int64_t v7[1] = {7}, y3[1] = {3}, y5[1] = {5};
        run_matmul(dt, 1, v7, 2, b2, 1, y3, 2, "vector x matrix");
        run_matmul(dt, 2, a2, 1, v7, 1, y5, 2, "matrix x vector");
        run_matmul(dt, 1, v7, 1, v7, 0, NULL, 2, "dot product");
        int64_t a3[3] = {4, 5, 7}, y43[3] = {4, 5, 3};
        run_matmul(dt, 3, a3, 2, b2, 3, y43, 2, "batched A, shared B");
        int64_t b3[3] = {4, 7, 3};
        run_matmul(dt, 2, a2, 3, b3, 3, y43, 2, "shared A, batched B");
        run_matmul(dt, 3, a3, 3, b3, 3, y43, 2, "both batched");
        int64_t a4[4] = {2, 1, 5, 7}, b4[3] = {3, 7, 3}, y4[4] = {2, 3, 5, 3};
        run_matmul(dt, 4, a4, 3, b4, 4, y4, 2, "broadcast batch");
        run_matmul(dt, 4, a4, 3, b4, 4, y4, 1, "broadcast batch, one thread");
        int64_t b31[3] = {3, 7, 1}, y31[4] = {2, 3, 5, 1};
        run_matmul(dt, 4, a4, 3, b31, 4, y31, 2, "broadcast batch, N 1");
        int64_t a1b[3] = {3, 1, 7}, y3v[2] = {3, 1};
        run_matmul(dt, 3, a1b, 1, v7, 2, y3v, 2, "batched rows x vector");
        int64_t y3w[2] = {4, 3};
        run_matmul(dt, 1, v7, 3, b3, 2, y3w, 2, "vector x batched");
    }
}

Test(matmul, matmul_large_batch_and_zero_dims) {
    int64_t a[3] = {16, 9, 13}, b[3] = {16, 13, 11}, y[3] = {16, 9, 11};
    run_matmul(AMP_F32, 3, a, 3, b, 3, y, 4, "16 small batches, 4 threads");
    run_matmul(AMP_I64, 3, a, 3, b, 3, y, 4, "int64 batches, 4 threads");
    int64_t a0[2] = {4, 0}, b0[2] = {0, 3}, y0[2] = {4, 3};
    run_matmul(AMP_F32, 2, a0, 2, b0, 2, y0, 2, "K = 0");
    run_matmul(AMP_F16, 2, a0, 2, b0, 2, y0, 2, "K = 0");
    int64_t am[3] = {0, 4, 5}, bm[2] = {5, 3}, ym[3] = {0, 4, 3};
    run_matmul(AMP_F32, 3, am, 2, bm, 3, ym, 2, "empty batch");
}

Test(matmul, matmul_bad_inputs) {
    int64_t a[2] = {4, 3}, b[2] = {4, 5}, a3[3] = {2, 4, 3}, b3[3] = {3, 3, 5};
    cr_assert_eq(mm_status("MatMul", AMP_F32, 2, a, 2, b, 0, NULL), AMP_ERR_SHAPE, "inner dims");
    cr_assert_eq(mm_status("MatMul", AMP_F32, 3, a3, 3, b3, 0, NULL), AMP_ERR_SHAPE, "batch dims");
    cr_assert_eq(mm_status("MatMul", AMP_I8, 2, a, 2, a, 0, NULL), AMP_ERR_UNSUPPORTED, "int8");
    cr_assert_eq(mm_status("MatMul", AMP_BOOL, 2, a, 2, a, 0, NULL), AMP_ERR_UNSUPPORTED, "bool");
}

/* Products big enough to be cut into blocks over the threads, along columns and along rows,
 * with every transpose. */
Test(matmul, large_products_split_over_threads) {
    for (int tr = 0; tr < 4; tr++) {
        int ta = tr & 1, tb = tr >> 1;
        for (int shape = 0; shape < 2; shape++) {
            int64_t M = shape ? 300 : 40, N = shape ? 40 : 260, K = 50;
            int64_t ad[2] = {ta ? K : M, ta ? M : K}, bd[2] = {tb ? N : K, tb ? K : N}, cd[1] = {N}, yd[2] = {M, N};
            amp_tensor *in[3] = {tt_rand(ctx, AMP_F32, 2, ad, -1, 1, 71), tt_rand(ctx, AMP_F32, 2, bd, -1, 1, 72),
                                 tt_rand(ctx, AMP_F32, 1, cd, -1, 1, 73)};
            amp_tensor *y[1];
            amp_test_node *t = tn_new(ctx, "Gemm");
            t->threads = 3;
            tn_int(t, "transA", ta);
            tn_int(t, "transB", tb);
            tn_float(t, "alpha", 0.75f);
            cr_assert_eq(tn_run(t, 3, in, 1, y), AMP_OK, "%s", amp_context_last_error(ctx));
            double *ref = malloc(sizeof(double) * (size_t)(M * N));
            for (int64_t m = 0; m < M; m++)
                for (int64_t n = 0; n < N; n++) {
                    double acc = 0;
                    for (int64_t k = 0; k < K; k++)
                        acc += tt_get(in[0], ta ? k * M + m : m * K + k) * tt_get(in[1], tb ? n * K + k : k * N + n);
                    ref[m * N + n] = 0.75 * acc + tt_get(in[2], n);
                }
            expect_close(y[0], AMP_F32, 2, yd, ref, "large gemm");
            free(ref);
            free_all(y, 1);
            free_all(in, 3);
            tn_free(t);
        }
    }
    int64_t a[3] = {2, 300, 40}, b[2] = {40, 50}, y[3] = {2, 300, 50};
    run_matmul(AMP_F32, 3, a, 2, b, 3, y, 3, "large flat matmul");
    run_matmul(AMP_F64, 3, a, 2, b, 3, y, 3, "large flat matmul");
    int64_t a2[3] = {2, 128, 128}, b2[3] = {2, 128, 160}, y2[3] = {2, 128, 160};
    run_matmul(AMP_F32, 3, a2, 3, b2, 3, y2, 3, "large batched matmul");
}

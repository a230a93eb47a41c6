/* Gradients of the index family (ir/ops/index_grad.c, backends/cpu/index_grad.c): GatherND,
 * ScatterND, TopK, ReverseSequence and MaxUnpool.
 *
 * Every case is a finite-difference check (tests/gradcheck.h) in f64 with eps 1e-6: these ops are
 * linear in their float inputs (TopK piecewise, with random values far from ties), so the
 * analytic gradient must agree within a relative L2 error of 1e-5. The training-domain kernels
 * also run in f16, bf16 and f32 against their own f64 result on the same rounded inputs
 * (relative L2 under 1e-2, 1e-5 for f32); conventions differences cannot see (repeated indices,
 * overwritten MaxUnpool elements) are checked against values worked out here; bad shapes and
 * indices must fail with the right status. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backends/cpu/cpu.h"
#include "gradcheck.h"
#include "ir/grad.h"
#include "testutil.h"

#define GC_TOL 1e-5
#define MAXIN 8

static amp_context *ctx;
static void setup(void) { cr_assert_eq(amp_context_create(NULL, &ctx), AMP_OK); }
static void teardown(void) { amp_context_destroy(ctx); }
TestSuite(grad_index, .init = setup, .fini = teardown, .timeout = 60);

static uint64_t seed_next = 1;

static amp_tensor *rnd(int rank, const int64_t *dims) {
    amp_tensor *t = tt_rand(ctx, AMP_F64, rank, dims, -1, 1, seed_next++);
    cr_assert(t);
    return t;
}

static amp_tensor *ints(int rank, const int64_t *dims, const int64_t *v) {
    amp_tensor *t;
    cr_assert_eq(amp_tensor_create(ctx, AMP_I64, rank, dims, &t), AMP_OK);
    if (t->numel) memcpy(t->data, v, sizeof(int64_t) * (size_t)t->numel);
    return t;
}

static void free_in(amp_tensor **in, int n) {
    for (int i = 0; i < n; i++) {
        amp_tensor_destroy(in[i]);
        in[i] = NULL;
    }
}

static amp_test_node *node(const char *op, int64_t opset) {
    amp_test_node *t = tn_new(ctx, op);
    t->opset = opset;
    return t;
}

/* Finite-difference check of the float inputs (all of them unless wrt says otherwise); frees
 * t and in. */
static void gc_ok(amp_test_node *t, int nin, amp_tensor **in, const bool *wrt, int nout, const char *what) {
    char msg[640];
    cr_assert(gc_passes(t, nin, in, wrt, nout, GC_TOL, msg, sizeof msg), "%s: %s", what, msg);
    free_in(in, nin);
    tn_free(t);
}

/* Run t in f16, bf16 and f32 (input 0 converted) and in f64 on the same rounded values: the
 * outputs must agree within relative L2 1e-2 (16-bit) or 1e-5 (f32). */
static void cmp_narrow(amp_test_node *t, int nin, amp_tensor **in64, const char *what) {
    static const amp_dtype dts[3] = {AMP_F16, AMP_BF16, AMP_F32};
    static const double tols[3] = {1e-2, 1e-2, 1e-5};
    for (int k = 0; k < 3; k++) {
        amp_tensor *lo[MAXIN] = {0}, *hi[MAXIN] = {0}, *olo = NULL, *ohi = NULL;
        for (int i = 0; i < nin; i++) {
            lo[i] = tt_convert(ctx, in64[i], i == 0 ? dts[k] : in64[i]->dtype);
            hi[i] = tt_convert(ctx, lo[i], i == 0 ? AMP_F64 : in64[i]->dtype);
        }
        cr_assert_eq(tn_run(t, nin, lo, 1, &olo), AMP_OK, "%s (%s): %s", what, amp_dtype_name(dts[k]),
                     amp_context_last_error(ctx));
        cr_assert_eq(tn_run(t, nin, hi, 1, &ohi), AMP_OK, "%s (f64): %s", what, amp_context_last_error(ctx));
        cr_assert_eq(olo->dtype, dts[k]);
        double e = sqrt(tt_nse(olo, ohi));
        cr_assert(e < tols[k], "%s (%s): rel L2 %g", what, amp_dtype_name(dts[k]), e);
        free_in(lo, nin);
        free_in(hi, nin);
        amp_tensor_destroy(olo);
        amp_tensor_destroy(ohi);
    }
}

/* ---- GatherND ----------------------------------------------------------------------------------- */

static void gather_nd_case(int r, const int64_t *xd, int q, const int64_t *id, const int64_t *iv, int b,
                           const char *what) {
    amp_test_node *t = node("GatherND", b ? 13 : 11);
    if (b) tn_int(t, "batch_dims", b);
    amp_tensor *in[2] = {rnd(r, xd), ints(q, id, iv)};
    gc_ok(t, 2, in, NULL, 1, what);
}

Test(grad_index, gather_nd) {
    const int64_t x3[3] = {4, 5, 3};
    /* k = 1 with repeated and negative rows: the repeats add up */
    const int64_t i1[2] = {6, 1}, v1[6] = {0, 3, -1, 3, 0, 2};
    gather_nd_case(3, x3, 2, i1, v1, 0, "k 1, repeats");
    const int64_t i2[3] = {2, 2, 2}, v2[8] = {0, 1, 3, -1, 2, 2, -4, 0};
    gather_nd_case(3, x3, 3, i2, v2, 0, "k 2");
    const int64_t i3[2] = {3, 3}, v3[9] = {0, 1, 2, 3, 4, 0, 3, 4, 0};
    gather_nd_case(3, x3, 2, i3, v3, 0, "k 3, repeated tuple");
    const int64_t x4[4] = {2, 3, 4, 5}, ib1[3] = {2, 3, 1}, vb1[6] = {1, 0, 1, 2, 0, -1};
    gather_nd_case(4, x4, 3, ib1, vb1, 1, "batch_dims 1");
    const int64_t ib2[3] = {2, 3, 2}, vb2[12] = {0, 1, 3, 4, 2, 2, 1, 0, 0, 0, 3, -1};
    gather_nd_case(4, x4, 3, ib2, vb2, 2, "batch_dims 2");
}

Test(grad_index, gather_nd_grad_kernel) {
    /* repeats accumulate: dX[i] = sum of the dY rows that read row i */
    const int64_t xd[2] = {3, 2}, id[2] = {4, 1}, iv[4] = {2, 0, 2, -1}, yd[2] = {4, 2}, r2[1] = {2};
    const double dyv[8] = {1, 2, 3, 4, 5, 6, 7, 8}, want[6] = {3, 4, 0, 0, 1 + 5 + 7, 2 + 6 + 8};
    amp_tensor *in[3] = {tt_make(ctx, AMP_F64, 2, yd, dyv), ints(1, r2, xd), ints(2, id, iv)}, *dx = NULL;
    amp_test_node *t = tn_train(ctx, "GatherNDGrad");
    cr_assert_eq(tn_run(t, 3, in, 1, &dx), AMP_OK, "%s", amp_context_last_error(ctx));
    for (int i = 0; i < 6; i++) cr_assert_eq(tt_get(dx, i), want[i], "element %d", i);
    amp_tensor_destroy(dx);
    amp_tensor_destroy(in[0]);
    /* 16-bit and f32 against f64 on many repeats */
    const int64_t big[2] = {1000, 1}, bd[2] = {1000, 2};
    int64_t *bv = malloc(sizeof(int64_t) * 1000);
    for (int i = 0; i < 1000; i++) bv[i] = (i * 7) % 3 - (i & 1 ? 3 : 0);
    amp_tensor_destroy(in[2]);
    in[0] = rnd(2, bd);
    in[2] = ints(2, big, bv);
    cmp_narrow(t, 3, in, "GatherNDGrad narrow");
    tn_free(t);
    free(bv);
    free_in(in, 3);
}

Test(grad_index, gather_nd_grad_bad_inputs) {
    const int64_t xd[2] = {3, 2}, id[2] = {2, 1}, iv[2] = {0, 1}, bad_iv[2] = {0, 3}, r2[1] = {2}, yd[2] = {2, 3};
    amp_tensor *dy = rnd(2, yd), *shape = ints(1, r2, xd), *ind = ints(2, id, iv), *ib = ints(2, id, bad_iv);
    amp_tensor *dx = NULL;
    amp_tensor *in[3] = {dy, shape, ind};
    amp_test_node *t = tn_train(ctx, "GatherNDGrad");
    cr_assert_eq(tn_run(t, 3, in, 1, &dx), AMP_ERR_SHAPE); /* dY should be [2, 2] */
    const int64_t yd2[2] = {2, 2};
    amp_tensor *dy2 = rnd(2, yd2);
    in[0] = dy2;
    in[2] = ib;
    cr_assert_eq(tn_run(t, 3, in, 1, &dx), AMP_ERR_INVALID_ARG);
    tn_free(t);
    cr_assert_null(dx);
    amp_tensor *all[] = {dy, shape, ind, ib, dy2};
    free_in(all, 5);
}

/* ---- ScatterND ---------------------------------------------------------------------------------- */

Test(grad_index, scatter_nd) {
    const int64_t xd[3] = {4, 5, 3};
    {
        /* distinct tuples: dData zero where written, dUpdates read from dY */
        const int64_t id[2] = {3, 1}, iv[3] = {2, 0, -1}, ud[3] = {3, 5, 3};
        amp_test_node *t = node("ScatterND", 13);
        amp_tensor *in[3] = {rnd(3, xd), ints(2, id, iv), rnd(3, ud)};
        gc_ok(t, 3, in, NULL, 1, "none, k 1");
    }
    {
        const int64_t id[3] = {2, 2, 3}, iv[12] = {0, 1, 2, 3, 4, 0, -1, -1, -1, 1, 1, 1}, ud[2] = {2, 2};
        amp_test_node *t = node("ScatterND", 16);
        tn_str(t, "reduction", "none");
        amp_tensor *in[3] = {rnd(3, xd), ints(3, id, iv), rnd(2, ud)};
        gc_ok(t, 3, in, NULL, 1, "none, full tuples");
    }
    {
        /* add with repeats: every update reaches the output */
        const int64_t d1[1] = {6}, id[2] = {10, 1}, iv[10] = {0, 5, 0, 2, -1, 3, 3, 3, 1, 0}, ud[1] = {10};
        amp_test_node *t = node("ScatterND", 16);
        tn_str(t, "reduction", "add");
        amp_tensor *in[3] = {rnd(1, d1), ints(2, id, iv), rnd(1, ud)};
        gc_ok(t, 3, in, NULL, 1, "add, repeats");
    }
    {
        /* only the updates need a gradient */
        const int64_t id[2] = {2, 2}, iv[4] = {0, 1, 3, 4}, ud[2] = {2, 3};
        amp_test_node *t = node("ScatterND", 18);
        const bool wrt[3] = {false, false, true};
        amp_tensor *in[3] = {rnd(3, xd), ints(2, id, iv), rnd(2, ud)};
        gc_ok(t, 3, in, wrt, 1, "updates only");
    }
}

Test(grad_index, scatter_nd_unsupported_reductions) {
    const int64_t d1[1] = {4}, id[2] = {2, 1}, iv[2] = {0, 2}, ud[1] = {2};
    const char *reds[3] = {"mul", "max", "min"};
    for (int i = 0; i < 3; i++) {
        amp_test_node *t = node("ScatterND", 18);
        tn_str(t, "reduction", reds[i]);
        amp_tensor *in[3] = {rnd(1, d1), ints(2, id, iv), rnd(1, ud)};
        const bool wrt[3] = {true, false, true};
        gc_result r;
        cr_assert_eq(gc_check(t, 3, in, wrt, 1, 1e-6, &r), AMP_ERR_UNSUPPORTED, "%s", reds[i]);
        cr_assert(strstr(r.why, reds[i]), "%s", r.why);
        free_in(in, 3);
        tn_free(t);
    }
}

Test(grad_index, scatter_nd_data_grad_kernel) {
    const int64_t d[2] = {3, 4}, id[2] = {2, 1}, iv[2] = {2, -3};
    amp_tensor *in[2] = {rnd(2, d), ints(2, id, iv)}, *dx = NULL;
    amp_test_node *t = tn_train(ctx, "ScatterNDDataGrad");
    cr_assert_eq(tn_run(t, 2, in, 1, &dx), AMP_OK, "%s", amp_context_last_error(ctx));
    for (int64_t i = 0; i < 12; i++) {
        bool zero = i / 4 == 2 || i / 4 == 0;
        cr_assert_eq(tt_get(dx, i), zero ? 0.0 : tt_get(in[0], i), "element %lld", (long long)i);
    }
    amp_tensor_destroy(dx);
    dx = NULL;
    cmp_narrow(t, 2, in, "ScatterNDDataGrad narrow");
    /* out of range, tuples longer than the rank */
    const int64_t bad[2] = {3, 0}, id3[2] = {1, 3}, v3[3] = {0, 0, 0};
    amp_tensor *ib = ints(2, id, bad), *i3 = ints(2, id3, v3);
    amp_tensor *b1[2] = {in[0], ib}, *b2[2] = {in[0], i3};
    cr_assert_eq(tn_run(t, 2, b1, 1, &dx), AMP_ERR_INVALID_ARG);
    cr_assert_eq(tn_run(t, 2, b2, 1, &dx), AMP_ERR_SHAPE);
    cr_assert_null(dx);
    tn_free(t);
    amp_tensor_destroy(ib);
    amp_tensor_destroy(i3);
    free_in(in, 2);
}

/* ---- TopK --------------------------------------------------------------------------------------- */

static void top_k_case(int64_t opset, int axis, int64_t k, int largest) {
    const int64_t d[3] = {3, 7, 5}, one[1] = {1};
    amp_test_node *t = node("TopK", opset);
    if (axis != -1) tn_int(t, "axis", axis);
    if (opset >= 11) tn_int(t, "largest", largest);
    if (opset < 10) tn_int(t, "k", k);
    amp_tensor *in[2] = {rnd(3, d), opset >= 10 ? ints(1, one, &k) : NULL};
    char what[96];
    snprintf(what, sizeof what, "TopK opset %lld axis %d k %lld largest %d", (long long)opset, axis, (long long)k,
             largest);
    gc_ok(t, opset >= 10 ? 2 : 1, in, NULL, 2, what);
}

Test(grad_index, top_k) {
    for (int axis = -3; axis < 3; axis++) {
        int64_t n = (int64_t[]){3, 7, 5}[axis < 0 ? axis + 3 : axis];
        const int64_t ks[3] = {1, 2, n};
        for (int i = 0; i < 3; i++) {
            top_k_case(11, axis, ks[i], 1);
            top_k_case(11, axis, ks[i], 0);
        }
    }
    top_k_case(1, -1, 3, 1);
    top_k_case(10, 1, 4, 1);
    top_k_case(10, 0, 0, 1);
}

/* ---- ReverseSequence ---------------------------------------------------------------------------- */

Test(grad_index, reverse_sequence) {
    const int64_t d[3] = {5, 4, 3}, l4[1] = {4}, lv4[4] = {5, 0, 3, 1}, l5[1] = {5}, lv5[5] = {4, 1, 2, 0, 4};
    {
        amp_test_node *t = node("ReverseSequence", 10);
        amp_tensor *in[2] = {rnd(3, d), ints(1, l4, lv4)};
        gc_ok(t, 2, in, NULL, 1, "time 0, batch 1");
    }
    {
        amp_test_node *t = node("ReverseSequence", 10);
        tn_int(t, "batch_axis", 0);
        tn_int(t, "time_axis", 1);
        amp_tensor *in[2] = {rnd(3, d), ints(1, l5, lv5)};
        gc_ok(t, 2, in, NULL, 1, "time 1, batch 0");
    }
}

/* ---- MaxUnpool ---------------------------------------------------------------------------------- */

static void max_unpool_case(const int64_t *iv, const int64_t *os, const char *what) {
    const int64_t xd[4] = {1, 2, 2, 3}, k[2] = {2, 2}, s[2] = {2, 2}, r4[1] = {4};
    amp_test_node *t = node("MaxUnpool", 11);
    tn_ints(t, "kernel_shape", 2, k);
    tn_ints(t, "strides", 2, s);
    amp_tensor *in[3] = {rnd(4, xd), ints(4, xd, iv), os ? ints(1, r4, os) : NULL};
    gc_ok(t, os ? 3 : 2, in, NULL, 1, what);
}

Test(grad_index, max_unpool) {
    /* unpooled shape (1, 2, 4, 6): 48 positions */
    const int64_t distinct[12] = {0, 3, 5, 13, 16, 22, 24, 30, 33, 40, 43, 47};
    const int64_t repeats[12] = {0, 3, 0, 13, 16, 3, 24, 30, 24, 40, 47, 47};
    const int64_t bigger[4] = {1, 3, 5, 7};
    max_unpool_case(distinct, NULL, "distinct indices");
    max_unpool_case(repeats, NULL, "repeated indices (the last one counts)");
    max_unpool_case(distinct, bigger, "output_shape");
}

Test(grad_index, max_unpool_grad_kernel) {
    /* X position 0 and 2 share index 1: only the later one reads dY */
    const int64_t xd[3] = {1, 1, 3}, iv[3] = {1, 4, 1}, yd[3] = {1, 1, 6}, k[1] = {2}, s[1] = {2};
    const double dyv[6] = {1, 2, 3, 4, 5, 6};
    amp_tensor *in[2] = {tt_make(ctx, AMP_F64, 3, yd, dyv), ints(3, xd, iv)}, *dx = NULL;
    amp_test_node *t = tn_train(ctx, "MaxUnpoolGrad");
    tn_ints(t, "kernel_shape", 1, k);
    tn_ints(t, "strides", 1, s);
    cr_assert_eq(tn_run(t, 2, in, 1, &dx), AMP_OK, "%s", amp_context_last_error(ctx));
    cr_assert(tt_get(dx, 0) == 0 && tt_get(dx, 1) == 5 && tt_get(dx, 2) == 2);
    amp_tensor_destroy(dx);
    dx = NULL;
    amp_tensor_destroy(in[0]);
    /* dY larger than the unpooled (1, 1, 6): the unpooled part sits at its origin */
    const int64_t yd2[3] = {2, 1, 8};
    in[0] = rnd(3, yd2);
    cr_assert_eq(tn_run(t, 2, in, 1, &dx), AMP_OK, "%s", amp_context_last_error(ctx));
    cr_assert(tt_get(dx, 0) == 0 && tt_get(dx, 1) == tt_get(in[0], 4) && tt_get(dx, 2) == tt_get(in[0], 1));
    amp_tensor_destroy(dx);
    dx = NULL;
    cmp_narrow(t, 2, in, "MaxUnpoolGrad narrow");
    /* dY smaller than the unpooled shape; an index past it */
    const int64_t yd3[3] = {1, 1, 5}, bad[3] = {0, 6, 1};
    amp_tensor *dy3 = rnd(3, yd3), *ib = ints(3, xd, bad);
    amp_tensor *b1[2] = {dy3, in[1]}, *b2[2] = {in[0], ib};
    cr_assert_eq(tn_run(t, 2, b1, 1, &dx), AMP_ERR_SHAPE);
    cr_assert_eq(tn_run(t, 2, b2, 1, &dx), AMP_ERR_INVALID_ARG);
    cr_assert_null(dx);
    tn_free(t);
    amp_tensor_destroy(dy3);
    amp_tensor_destroy(ib);
    free_in(in, 2);
}

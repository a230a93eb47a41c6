/* Gather, GatherElements, ScatterElements, OneHot, Trilu, Range, Pad, DepthToSpace,
 * SpaceToDepth and EyeLike against reference loops written here. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "backends/cpu/cpu.h"
#include "testutil.h"

static amp_context *ctx;
static void setup(void) { cr_assert_eq(amp_context_create(NULL, &ctx), AMP_OK); }
static void teardown(void) { amp_context_destroy(ctx); }
TestSuite(gather, .init = setup, .fini = teardown);
TestSuite(gather_elements, .init = setup, .fini = teardown);
TestSuite(scatter_elements, .init = setup, .fini = teardown);
TestSuite(one_hot, .init = setup, .fini = teardown);
TestSuite(trilu, .init = setup, .fini = teardown);
TestSuite(range, .init = setup, .fini = teardown);
TestSuite(pad, .init = setup, .fini = teardown);
TestSuite(depth_to_space, .init = setup, .fini = teardown);
TestSuite(eye_like, .init = setup, .fini = teardown);

static const amp_dtype all_types[] = {AMP_F32, AMP_F16, AMP_BF16, AMP_F64, AMP_I64, AMP_I32, AMP_I8, AMP_U8, AMP_BOOL};
#define N_ALL (sizeof all_types / sizeof all_types[0])

/* Random data of dtype dt, never all zero: small integers for integer types. */
static amp_tensor *rand_of(amp_dtype dt, int rank, const int64_t *dims, uint64_t seed) {
    if (dt == AMP_BOOL) return tt_rand(ctx, dt, rank, dims, 0, 2, seed);
    if (dt == AMP_U8) return tt_rand(ctx, dt, rank, dims, 1, 250, seed);
    if (amp_dtype_is_int(dt)) return tt_rand(ctx, dt, rank, dims, -100, 100, seed);
    return tt_rand(ctx, dt, rank, dims, -5, 5, seed);
}

static amp_tensor *new_like(amp_dtype dt, int rank, const int64_t *dims) {
    amp_tensor *t;
    cr_assert_eq(amp_tensor_create(ctx, dt, rank, dims, &t), AMP_OK);
    return t;
}

static void cp(amp_tensor *dst, int64_t di, const amp_tensor *src, int64_t si) {
    size_t es = amp_dtype_size(src->dtype);
    memcpy((char *)dst->data + (size_t)di * es, (const char *)src->data + (size_t)si * es, es);
}

static amp_tensor *ints_of(amp_dtype dt, int rank, const int64_t *dims, const int64_t *v) {
    amp_tensor *t = new_like(dt, rank, dims);
    for (int64_t i = 0; i < t->numel; i++) amp_sti(dt, t->data, i, v[i]);
    return t;
}

static amp_tensor *i64_scalar(int64_t v) { return ints_of(AMP_I64, 0, NULL, &v); }

static void unravel(int rank, const int64_t *dims, int64_t i, int64_t *c) {
    for (int d = rank - 1; d >= 0; d--) {
        c[d] = dims[d] ? i % dims[d] : 0;
        i = dims[d] ? i / dims[d] : 0;
    }
}
static int64_t ravel(int rank, const int64_t *dims, const int64_t *c) {
    int64_t o = 0;
    for (int d = 0; d < rank; d++) o = o * dims[d] + c[d];
    return o;
}

/* ---- Gather ----------------------------------------------------------------------------------- */

static void check_gather(amp_dtype dt, amp_dtype it, int rank, const int64_t *dims, int axis, int irank,
                         const int64_t *idims, uint64_t seed) {
    amp_tensor *x = rand_of(dt, rank, dims, seed);
    int a = axis < 0 ? axis + rank : axis;
    int64_t n = 1;
    for (int d = 0; d < irank; d++) n *= idims[d];
    int64_t *iv = malloc(sizeof(int64_t) * (size_t)(n + 1));
    for (int64_t i = 0; i < n; i++) iv[i] = (int64_t)((i * 7 + seed) % (uint64_t)(2 * dims[a])) - dims[a];
    amp_tensor *ind = ints_of(it, irank, idims, iv), *y = NULL;
    amp_test_node *t = tn_new(ctx, "Gather");
    tn_int(t, "axis", axis);
    amp_tensor *in[2] = {x, ind};
    cr_assert_eq(tn_run(t, 2, in, 1, &y), AMP_OK, "%s", amp_context_last_error(ctx));
    cr_assert_eq(y->rank, rank + irank - 1);
    int64_t od[AMP_MAX_RANK];
    int r = 0;
    for (int d = 0; d < a; d++) od[r++] = dims[d];
    for (int d = 0; d < irank; d++) od[r++] = idims[d];
    for (int d = a + 1; d < rank; d++) od[r++] = dims[d];
    for (int d = 0; d < r; d++) cr_assert_eq(y->dims[d], od[d]);
    amp_tensor *ref = new_like(dt, r, od);
    for (int64_t o = 0; o < ref->numel; o++) {
        int64_t oc[AMP_MAX_RANK], xc[AMP_MAX_RANK];
        unravel(r, od, o, oc);
        int64_t ic[AMP_MAX_RANK];
        for (int d = 0; d < irank; d++) ic[d] = oc[a + d];
        int64_t v = iv[ravel(irank, idims, ic)];
        for (int d = 0; d < a; d++) xc[d] = oc[d];
        xc[a] = v < 0 ? v + dims[a] : v;
        for (int d = a + 1; d < rank; d++) xc[d] = oc[d + irank - 1];
        cp(ref, o, x, ravel(rank, dims, xc));
    }
    cr_assert(tt_equal(y, ref), "Gather %s axis %d irank %d", amp_dtype_name(dt), axis, irank);
    tn_free(t);
    free(iv);
    amp_tensor_destroy(x);
    amp_tensor_destroy(ind);
    amp_tensor_destroy(y);
    amp_tensor_destroy(ref);
}

Test(gather, every_dtype_axis_and_index_shape) {
    const int64_t d3[3] = {4, 5, 3}, i0[1] = {0}, i1[1] = {6}, i2[2] = {2, 3};
    uint64_t seed = 1;
    for (size_t ti = 0; ti < N_ALL; ti++)
        for (int axis = -3; axis < 3; axis++) {
            check_gather(all_types[ti], AMP_I64, 3, d3, axis, 0, i0, seed++);
            check_gather(all_types[ti], AMP_I32, 3, d3, axis, 1, i1, seed++);
            check_gather(all_types[ti], (axis & 1) ? AMP_I32 : AMP_I64, 3, d3, axis, 2, i2, seed++);
        }
    const int64_t d1[1] = {9}, d4[4] = {2, 3, 1, 4}, i3[3] = {2, 1, 2};
    check_gather(AMP_F32, AMP_I64, 1, d1, 0, 1, i1, seed++);
    check_gather(AMP_F32, AMP_I64, 1, d1, 0, 0, i0, seed++);
    check_gather(AMP_I8, AMP_I64, 4, d4, 2, 3, i3, seed++);
    check_gather(AMP_F16, AMP_I32, 4, d4, -1, 2, i2, seed++);
    const int64_t big[2] = {500, 130}, ib[1] = {300};
    check_gather(AMP_F32, AMP_I64, 2, big, 0, 1, ib, seed++);
    check_gather(AMP_BF16, AMP_I64, 2, big, 1, 1, ib, seed++);
    const int64_t empty[1] = {0};
    check_gather(AMP_F32, AMP_I64, 3, d3, 1, 1, empty, seed++);
}

Test(gather, bad_inputs) {
    const int64_t d[2] = {3, 4}, id[1] = {2};
    amp_tensor *x = rand_of(AMP_F32, 2, d, 1), *y = NULL;
    int64_t v_hi[2] = {0, 3}, v_lo[2] = {-4, 0};
    amp_tensor *ind = ints_of(AMP_I64, 1, id, v_hi);
    amp_tensor *in[2] = {x, ind};
    amp_test_node *t = tn_new(ctx, "Gather");
    cr_assert_eq(tn_run(t, 2, in, 1, &y), AMP_ERR_INVALID_ARG);
    amp_tensor_destroy(ind);
    in[1] = ind = ints_of(AMP_I32, 1, id, v_lo);
    cr_assert_eq(tn_run(t, 2, in, 1, &y), AMP_ERR_INVALID_ARG);
    tn_free(t);
    t = tn_new(ctx, "Gather");
    tn_int(t, "axis", 2);
    cr_assert_eq(tn_run(t, 2, in, 1, &y), AMP_ERR_INVALID_GRAPH);
    tn_free(t);
    amp_tensor_destroy(ind);
    in[1] = ind = rand_of(AMP_F32, 1, id, 2);
    t = tn_new(ctx, "Gather");
    cr_assert_eq(tn_run(t, 2, in, 1, &y), AMP_ERR_UNSUPPORTED);
    tn_free(t);
    amp_tensor_destroy(ind);
    amp_tensor_destroy(x);
    cr_assert_null(y);
}

/* ---- GatherElements / ScatterElements ------------------------------------------------------- */

static void check_gather_elements(amp_dtype dt, amp_dtype it, int rank, const int64_t *dims, const int64_t *idims,
                                  int axis, uint64_t seed) {
    amp_tensor *x = rand_of(dt, rank, dims, seed), *y = NULL;
    int a = axis < 0 ? axis + rank : axis;
    int64_t n = 1;
    for (int d = 0; d < rank; d++) n *= idims[d];
    int64_t *iv = malloc(sizeof(int64_t) * (size_t)(n + 1));
    for (int64_t i = 0; i < n; i++) iv[i] = (int64_t)((i * 5 + seed * 3) % (uint64_t)(2 * dims[a])) - dims[a];
    amp_tensor *ind = ints_of(it, rank, idims, iv);
    amp_test_node *t = tn_new(ctx, "GatherElements");
    if (axis) tn_int(t, "axis", axis);
    amp_tensor *in[2] = {x, ind};
    cr_assert_eq(tn_run(t, 2, in, 1, &y), AMP_OK, "%s", amp_context_last_error(ctx));
    amp_tensor *ref = new_like(dt, rank, idims);
    for (int64_t p = 0; p < n; p++) {
        int64_t c[AMP_MAX_RANK];
        unravel(rank, idims, p, c);
        c[a] = iv[p] < 0 ? iv[p] + dims[a] : iv[p];
        cp(ref, p, x, ravel(rank, dims, c));
    }
    cr_assert(tt_equal(y, ref), "GatherElements %s axis %d", amp_dtype_name(dt), axis);
    tn_free(t);
    free(iv);
    amp_tensor_destroy(x);
    amp_tensor_destroy(ind);
    amp_tensor_destroy(y);
    amp_tensor_destroy(ref);
}

Test(gather_elements, every_dtype_and_axis) {
    const int64_t d3[3] = {4, 5, 3}, i3[3] = {3, 7, 2}, i3b[3] = {4, 2, 3};
    const int64_t d1[1] = {7}, i1[1] = {10}, d2[2] = {3, 3}, i2[2] = {2, 3};
    uint64_t seed = 1;
    for (size_t ti = 0; ti < N_ALL; ti++) {
        check_gather_elements(all_types[ti], AMP_I64, 3, d3, i3, 1, seed++);
        check_gather_elements(all_types[ti], AMP_I32, 3, d3, i3b, -1, seed++);
        check_gather_elements(all_types[ti], AMP_I64, 1, d1, i1, 0, seed++);
        check_gather_elements(all_types[ti], AMP_I32, 2, d2, i2, 0, seed++);
    }
    const int64_t big[2] = {200, 300}, ib[2] = {200, 250};
    check_gather_elements(AMP_F32, AMP_I64, 2, big, ib, 1, seed++);
}

Test(gather_elements, bad_inputs) {
    const int64_t d[2] = {3, 4}, id[2] = {2, 2}, wide[2] = {2, 5}, one[1] = {2};
    amp_tensor *x = rand_of(AMP_F32, 2, d, 1), *y = NULL;
    int64_t v[5 * 2] = {0, 1, 2, 4};
    amp_tensor *ind = ints_of(AMP_I64, 2, id, v), *in[2] = {x, ind};
    amp_test_node *t = tn_new(ctx, "GatherElements");
    tn_int(t, "axis", 1);
    cr_assert_eq(tn_run(t, 2, in, 1, &y), AMP_ERR_INVALID_ARG);
    amp_tensor_destroy(ind);
    memset(v, 0, sizeof v);
    in[1] = ind = ints_of(AMP_I64, 2, wide, v); /* wider than data along a non-axis dim */
    tn_free(t);
    t = tn_new(ctx, "GatherElements");
    cr_assert_eq(tn_run(t, 2, in, 1, &y), AMP_ERR_SHAPE);
    amp_tensor_destroy(ind);
    in[1] = ind = ints_of(AMP_I64, 1, one, v);
    cr_assert_eq(tn_run(t, 2, in, 1, &y), AMP_ERR_SHAPE);
    tn_free(t);
    amp_tensor_destroy(ind);
    amp_tensor_destroy(x);
    cr_assert_null(y);
}

static const char *red_names[] = {"none", "add", "mul", "max", "min"};

static void check_scatter(amp_dtype dt, amp_dtype it, int rank, const int64_t *dims, const int64_t *idims, int axis,
                          int red, uint64_t seed) {
    amp_tensor *x = rand_of(dt, rank, dims, seed), *y = NULL;
    int a = axis < 0 ? axis + rank : axis;
    int64_t n = 1;
    for (int d = 0; d < rank; d++) n *= idims[d];
    amp_tensor *upd = rand_of(dt, rank, idims, seed + 1000);
    int64_t *iv = malloc(sizeof(int64_t) * (size_t)(n + 1));
    /* repeated positions on purpose: their order matters */
    for (int64_t i = 0; i < n; i++) iv[i] = (int64_t)((i * 3 + seed) % (uint64_t)(2 * dims[a])) - dims[a];
    amp_tensor *ind = ints_of(it, rank, idims, iv);
    amp_test_node *t = tn_new(ctx, "ScatterElements");
    t->opset = 16;
    if (axis) tn_int(t, "axis", axis);
    if (red) tn_str(t, "reduction", red_names[red]);
    amp_tensor *in[3] = {x, ind, upd};
    cr_assert_eq(tn_run(t, 3, in, 1, &y), AMP_OK, "%s", amp_context_last_error(ctx));
    amp_tensor *ref = new_like(dt, rank, dims);
    memcpy(ref->data, x->data, x->nbytes);
    bool isf = amp_dtype_is_float(dt);
    for (int64_t p = 0; p < n; p++) {
        int64_t c[AMP_MAX_RANK];
        unravel(rank, idims, p, c);
        c[a] = iv[p] < 0 ? iv[p] + dims[a] : iv[p];
        int64_t o = ravel(rank, dims, c);
        if (red == 0) {
            cp(ref, o, upd, p);
        } else if (isf) {
            double u = tt_get(ref, o), w = tt_get(upd, p);
            double r = red == 1 ? u + w : red == 2 ? u * w : red == 3 ? fmax(u, w) : fmin(u, w);
            amp_st(dt, ref->data, o, r);
        } else {
            int64_t u = amp_ldi(dt, ref->data, o), w = amp_ldi(dt, upd->data, p);
            int64_t r = red == 1 ? u + w : red == 2 ? u * w : red == 3 ? (u > w ? u : w) : (u < w ? u : w);
            amp_sti(dt, ref->data, o, r);
        }
    }
    cr_assert(tt_equal(y, ref), "ScatterElements %s axis %d reduction %s", amp_dtype_name(dt), axis, red_names[red]);
    tn_free(t);
    free(iv);
    amp_tensor_destroy(x);
    amp_tensor_destroy(ind);
    amp_tensor_destroy(upd);
    amp_tensor_destroy(y);
    amp_tensor_destroy(ref);
}

Test(scatter_elements, every_dtype_axis_and_reduction) {
    const int64_t d3[3] = {4, 5, 3}, i3[3] = {3, 7, 2}, d2[2] = {3, 3}, i2[2] = {1, 2}, d1[1] = {5}, i1[1] = {9};
    uint64_t seed = 1;
    for (size_t ti = 0; ti < N_ALL; ti++)
        for (int red = 0; red < 5; red++) {
            check_scatter(all_types[ti], AMP_I64, 3, d3, i3, 1, red, seed++);
            check_scatter(all_types[ti], AMP_I32, 2, d2, i2, -1, red, seed++);
            check_scatter(all_types[ti], AMP_I64, 1, d1, i1, 0, red, seed++);
        }
}

Test(scatter_elements, onnx_example_with_duplicates) {
    const int64_t dd[2] = {1, 5}, id[2] = {1, 2};
    double xv[5] = {1, 2, 3, 4, 5}, uv[2] = {1.1, 2.1};
    int64_t iv[2] = {1, 1};
    amp_tensor *x = tt_make(ctx, AMP_F32, 2, dd, xv), *u = tt_make(ctx, AMP_F32, 2, id, uv);
    amp_tensor *ind = ints_of(AMP_I64, 2, id, iv), *y = NULL, *in[3] = {x, ind, u};
    amp_test_node *t = tn_new(ctx, "ScatterElements");
    t->opset = 16;
    tn_int(t, "axis", 1);
    tn_str(t, "reduction", "add");
    cr_assert_eq(tn_run(t, 3, in, 1, &y), AMP_OK);
    double want[5] = {1, 5.2, 3, 4, 5};
    for (int i = 0; i < 5; i++) cr_assert_float_eq(tt_get(y, i), want[i], 1e-6);
    tn_free(t);
    amp_tensor_destroy(x);
    amp_tensor_destroy(u);
    amp_tensor_destroy(ind);
    amp_tensor_destroy(y);
}

Test(scatter_elements, bad_inputs) {
    const int64_t d[2] = {3, 4}, id[2] = {2, 2}, od[2] = {2, 3};
    amp_tensor *x = rand_of(AMP_F32, 2, d, 1), *u = rand_of(AMP_F32, 2, id, 2), *y = NULL;
    int64_t v[4] = {0, 1, 3, 0};
    amp_tensor *ind = ints_of(AMP_I64, 2, id, v), *in[3] = {x, ind, u};
    amp_test_node *t = tn_new(ctx, "ScatterElements");
    cr_assert_eq(tn_run(t, 3, in, 1, &y), AMP_ERR_INVALID_ARG); /* 3 is out of range on axis 0 */
    tn_free(t);
    t = tn_new(ctx, "ScatterElements");
    tn_str(t, "reduction", "sub");
    v[2] = 2;
    memcpy(ind->data, v, sizeof v);
    cr_assert_eq(tn_run(t, 3, in, 1, &y), AMP_ERR_INVALID_GRAPH);
    tn_free(t);
    amp_tensor_destroy(u);
    in[2] = u = rand_of(AMP_F32, 2, od, 3);
    t = tn_new(ctx, "ScatterElements");
    cr_assert_eq(tn_run(t, 3, in, 1, &y), AMP_ERR_SHAPE);
    tn_free(t);
    amp_tensor_destroy(u);
    in[2] = u = rand_of(AMP_F64, 2, id, 3);
    t = tn_new(ctx, "ScatterElements");
    cr_assert_eq(tn_run(t, 3, in, 1, &y), AMP_ERR_SHAPE);
    tn_free(t);
    amp_tensor_destroy(u);
    amp_tensor_destroy(x);
    amp_tensor_destroy(ind);
    cr_assert_null(y);
}

/* ---- OneHot ----------------------------------------------------------------------------------- */

static void check_one_hot(amp_dtype it, amp_dtype dpt, amp_dtype vt, int rank, const int64_t *dims, int64_t depth,
                          int axis, bool set_axis, uint64_t seed) {
    int64_t n = 1;
    for (int d = 0; d < rank; d++) n *= dims[d];
    amp_tensor *ind = new_like(it, rank, dims);
    int64_t *iv = malloc(sizeof(int64_t) * (size_t)(n + 1));
    for (int64_t i = 0; i < n; i++) {
        /* in range, negative, and out of range both ways */
        int64_t v = (int64_t)((i * 5 + seed) % (uint64_t)(2 * depth + 4)) - depth - 2;
        if (it == AMP_U8 && v < 0) v = -v;
        iv[i] = v;
        amp_sti(it, ind->data, i, v);
    }
    amp_tensor *dp = new_like(dpt, 0, NULL);
    amp_st(dpt, dp->data, 0, (double)depth);
    const int64_t two[1] = {2};
    double vv[2] = {vt == AMP_BOOL ? 0 : 3, vt == AMP_U8 ? 7 : vt == AMP_BOOL ? 1 : -2};
    amp_tensor *vals = tt_make(ctx, vt, 1, two, vv), *y = NULL;
    amp_test_node *t = tn_new(ctx, "OneHot");
    if (set_axis) tn_int(t, "axis", axis);
    amp_tensor *in[3] = {ind, dp, vals};
    cr_assert_eq(tn_run(t, 3, in, 1, &y), AMP_OK, "%s", amp_context_last_error(ctx));
    int a = axis < 0 ? axis + rank + 1 : axis;
    int64_t od[AMP_MAX_RANK];
    for (int d = 0, r = 0; d <= rank; d++) od[d] = d == a ? depth : dims[r++];
    cr_assert_eq(y->rank, rank + 1);
    for (int d = 0; d <= rank; d++) cr_assert_eq(y->dims[d], od[d]);
    amp_tensor *ref = new_like(vt, rank + 1, od);
    for (int64_t o = 0; o < ref->numel; o++) {
        int64_t c[AMP_MAX_RANK + 1], ic[AMP_MAX_RANK];
        unravel(rank + 1, od, o, c);
        for (int d = 0, r = 0; d <= rank; d++)
            if (d != a) ic[r++] = c[d];
        int64_t v = iv[ravel(rank, dims, ic)];
        if (v < 0) v += depth;
        cp(ref, o, vals, v == c[a] ? 1 : 0);
    }
    cr_assert(tt_equal(y, ref), "OneHot %s/%s/%s axis %d", amp_dtype_name(it), amp_dtype_name(dpt), amp_dtype_name(vt),
              axis);
    tn_free(t);
    free(iv);
    amp_tensor_destroy(ind);
    amp_tensor_destroy(dp);
    amp_tensor_destroy(vals);
    amp_tensor_destroy(y);
    amp_tensor_destroy(ref);
}

Test(one_hot, dtypes_axes_and_negative_indices) {
    const amp_dtype its[] = {AMP_I64, AMP_I32, AMP_I8, AMP_U8, AMP_F32, AMP_F64, AMP_F16, AMP_BF16};
    const int64_t d2[2] = {3, 4}, d1[1] = {6}, d3[3] = {2, 3, 2};
    uint64_t seed = 1;
    for (size_t i = 0; i < sizeof its / sizeof its[0]; i++)
        for (size_t v = 0; v < N_ALL; v++) {
            amp_dtype dpt = its[(i + v) % (sizeof its / sizeof its[0])];
            check_one_hot(its[i], dpt, all_types[v], 2, d2, 5, -1, v & 1, seed++);
            check_one_hot(its[i], dpt, all_types[v], 2, d2, 4, 0, true, seed++);
            check_one_hot(its[i], dpt, all_types[v], 1, d1, 7, -2, true, seed++);
        }
    for (int axis = -4; axis <= 3; axis++) check_one_hot(AMP_I64, AMP_I64, AMP_F32, 3, d3, 3, axis, true, seed++);
    check_one_hot(AMP_I64, AMP_F32, AMP_F32, 0, NULL, 10, 0, true, seed++);
    const int64_t big[2] = {100, 60};
    check_one_hot(AMP_I32, AMP_I64, AMP_F32, 2, big, 20, 1, true, seed++);
}

Test(one_hot, bad_inputs) {
    const int64_t d[1] = {3}, three[1] = {3}, two[1] = {2};
    int64_t iv[3] = {0, 1, 2};
    double vv[3] = {0, 1, 2};
    amp_tensor *ind = ints_of(AMP_I64, 1, d, iv), *dp = i64_scalar(0), *vals = tt_make(ctx, AMP_F32, 1, two, vv);
    amp_tensor *y = NULL, *in[3] = {ind, dp, vals};
    amp_test_node *t = tn_new(ctx, "OneHot");
    cr_assert_eq(tn_run(t, 3, in, 1, &y), AMP_ERR_SHAPE); /* depth 0 */
    *(int64_t *)dp->data = 3;
    tn_free(t);
    t = tn_new(ctx, "OneHot");
    tn_int(t, "axis", 2);
    cr_assert_eq(tn_run(t, 3, in, 1, &y), AMP_ERR_INVALID_GRAPH);
    tn_free(t);
    amp_tensor_destroy(vals);
    in[2] = vals = tt_make(ctx, AMP_F32, 1, three, vv);
    t = tn_new(ctx, "OneHot");
    cr_assert_eq(tn_run(t, 3, in, 1, &y), AMP_ERR_SHAPE);
    tn_free(t);
    amp_tensor_destroy(ind);
    amp_tensor_destroy(dp);
    amp_tensor_destroy(vals);
    cr_assert_null(y);
}

/* ---- Trilu ------------------------------------------------------------------------------------ */

static void check_trilu(amp_dtype dt, int rank, const int64_t *dims, int upper, bool has_k, int64_t k,
                        uint64_t seed) {
    amp_tensor *x = rand_of(dt, rank, dims, seed), *kt = has_k ? i64_scalar(k) : NULL, *y = NULL;
    amp_test_node *t = tn_new(ctx, "Trilu");
    t->opset = 14;
    if (upper >= 0) tn_int(t, "upper", upper);
    amp_tensor *in[2] = {x, kt};
    cr_assert_eq(tn_run(t, has_k ? 2 : 1, in, 1, &y), AMP_OK, "%s", amp_context_last_error(ctx));
    amp_tensor *ref = new_like(dt, rank, dims); /* zero-filled */
    if (!has_k) k = 0;
    for (int64_t p = 0; p < x->numel; p++) {
        int64_t c[AMP_MAX_RANK];
        unravel(rank, dims, p, c);
        int64_t i = c[rank - 2], j = c[rank - 1];
        bool keep = upper != 0 ? j - i >= k : j - i <= k;
        if (keep) cp(ref, p, x, p);
    }
    cr_assert(tt_equal(y, ref), "Trilu %s upper %d k %lld", amp_dtype_name(dt), upper, (long long)k);
    tn_free(t);
    amp_tensor_destroy(x);
    amp_tensor_destroy(kt);
    amp_tensor_destroy(y);
    amp_tensor_destroy(ref);
}

Test(trilu, every_dtype_k_and_shape) {
    const int64_t d2[2] = {4, 6}, d3[3] = {2, 5, 3}, d4[4] = {2, 1, 3, 3}, d0[3] = {2, 0, 3};
    uint64_t seed = 1;
    for (size_t ti = 0; ti < N_ALL; ti++)
        for (int up = 0; up <= 1; up++)
            for (int64_t k = -7; k <= 7; k++) {
                check_trilu(all_types[ti], 2, d2, up, true, k, seed++);
                check_trilu(all_types[ti], 3, d3, up, true, k, seed++);
            }
    check_trilu(AMP_F32, 4, d4, -1, false, 0, seed++);
    check_trilu(AMP_F32, 4, d4, 0, false, 0, seed++);
    check_trilu(AMP_I64, 2, d2, 1, true, INT64_MAX, seed++);
    check_trilu(AMP_I64, 2, d2, 0, true, INT64_MIN, seed++);
    check_trilu(AMP_F32, 3, d0, 1, true, 1, seed++);
    const int64_t big[3] = {3, 200, 190};
    check_trilu(AMP_F32, 3, big, 0, true, -3, seed++);
}

Test(trilu, bad_inputs) {
    const int64_t d[1] = {5};
    amp_tensor *x = rand_of(AMP_F32, 1, d, 1), *y = NULL;
    amp_test_node *t = tn_new(ctx, "Trilu");
    cr_assert_eq(tn_run(t, 1, &x, 1, &y), AMP_ERR_SHAPE);
    tn_free(t);
    amp_tensor_destroy(x);
    const int64_t d2[2] = {3, 3};
    x = rand_of(AMP_F32, 2, d2, 1);
    amp_tensor *kf = tt_rand(ctx, AMP_F32, 0, NULL, 1, 2, 3), *in[2] = {x, kf};
    t = tn_new(ctx, "Trilu");
    cr_assert_eq(tn_run(t, 2, in, 1, &y), AMP_ERR_UNSUPPORTED);
    tn_free(t);
    amp_tensor_destroy(kf);
    amp_tensor_destroy(x);
    cr_assert_null(y);
}

/* ---- Range ------------------------------------------------------------------------------------ */

static void check_range(amp_dtype dt, double start, double limit, double delta, int64_t want_n) {
    amp_tensor *a = tt_make(ctx, dt, 0, NULL, &start), *b = tt_make(ctx, dt, 0, NULL, &limit);
    amp_tensor *d = tt_make(ctx, dt, 0, NULL, &delta), *y = NULL, *in[3] = {a, b, d};
    amp_test_node *t = tn_new(ctx, "Range");
    cr_assert_eq(tn_run(t, 3, in, 1, &y), AMP_OK, "%s", amp_context_last_error(ctx));
    cr_assert_eq(y->dtype, dt);
    cr_assert_eq(y->rank, 1);
    cr_assert_eq(y->dims[0], want_n, "Range %s %g %g %g: %lld elements", amp_dtype_name(dt), start, limit, delta,
                 (long long)y->dims[0]);
    double s = tt_get(a, 0), st = tt_get(d, 0);
    for (int64_t i = 0; i < want_n; i++) {
        double v = s + (double)i * st;
        if (amp_dtype_is_float(dt)) cr_assert(fabs(tt_get(y, i) - v) <= 1e-5 * (1 + fabs(v)));
        else cr_assert_eq(amp_ldi(dt, y->data, i), (int64_t)v);
    }
    tn_free(t);
    amp_tensor_destroy(a);
    amp_tensor_destroy(b);
    amp_tensor_destroy(d);
    amp_tensor_destroy(y);
}

Test(range, every_dtype_and_direction) {
    const amp_dtype dts[] = {AMP_F32, AMP_F64, AMP_I64, AMP_I32};
    for (size_t i = 0; i < 4; i++) {
        check_range(dts[i], 3, 9, 3, 2);
        check_range(dts[i], 3, 10, 3, 3);
        check_range(dts[i], 10, 4, -2, 3);
        check_range(dts[i], 10, 3, -2, 4);
        check_range(dts[i], 1, 5, 2, 2);
        check_range(dts[i], 5, 1, 2, 0);
        check_range(dts[i], 1, 5, -1, 0);
        check_range(dts[i], -7, 7, 1, 14);
        check_range(dts[i], 4, 4, 1, 0);
    }
    check_range(AMP_F32, 0, 1, 0.1, 10);
    check_range(AMP_F64, 0.5, -2.25, -0.25, 11);
    check_range(AMP_I64, -(double)(1ll << 40), (double)(1ll << 40), (double)(1ll << 38), 8);
    check_range(AMP_I32, 0, 100000, 1, 100000);
}

Test(range, bad_inputs) {
    double z = 0, one = 1, five = 5;
    amp_tensor *a = tt_make(ctx, AMP_F32, 0, NULL, &one), *b = tt_make(ctx, AMP_F32, 0, NULL, &five);
    amp_tensor *d = tt_make(ctx, AMP_F32, 0, NULL, &z), *y = NULL, *in[3] = {a, b, d};
    amp_test_node *t = tn_new(ctx, "Range");
    cr_assert_eq(tn_run(t, 3, in, 1, &y), AMP_ERR_INVALID_ARG); /* delta 0 */
    amp_tensor_destroy(d);
    in[2] = d = tt_make(ctx, AMP_F64, 0, NULL, &one);
    cr_assert_eq(tn_run(t, 3, in, 1, &y), AMP_ERR_SHAPE); /* mixed dtypes */
    amp_tensor_destroy(a);
    amp_tensor_destroy(b);
    amp_tensor_destroy(d);
    in[0] = a = tt_make(ctx, AMP_F16, 0, NULL, &one);
    in[1] = b = tt_make(ctx, AMP_F16, 0, NULL, &five);
    in[2] = d = tt_make(ctx, AMP_F16, 0, NULL, &one);
    cr_assert_eq(tn_run(t, 3, in, 1, &y), AMP_ERR_UNSUPPORTED);
    amp_tensor_destroy(a);
    amp_tensor_destroy(b);
    amp_tensor_destroy(d);
    double big = 1e300;
    in[0] = a = tt_make(ctx, AMP_F64, 0, NULL, &z);
    in[1] = b = tt_make(ctx, AMP_F64, 0, NULL, &big);
    in[2] = d = tt_make(ctx, AMP_F64, 0, NULL, &one);
    cr_assert_eq(tn_run(t, 3, in, 1, &y), AMP_ERR_LIMIT);
    tn_free(t);
    amp_tensor_destroy(a);
    amp_tensor_destroy(b);
    amp_tensor_destroy(d);
    cr_assert_null(y);
}

Test(range, unknown_inputs_are_data_dependent) {
    double one = 1;
    amp_tensor *a = tt_make(ctx, AMP_F32, 0, NULL, &one);
    amp_tinfo ti = {.dtype = AMP_F32, .rank = 0, .value = a}, tu = {.dtype = AMP_F32, .rank = 0, .value = NULL}, to;
    const amp_tinfo *pin[3] = {&ti, &tu, &ti};
    amp_tinfo *pout[1] = {&to};
    amp_test_node *t = tn_new(ctx, "Range");
    amp_infer c = {.ctx = ctx, .n = &t->node, .opset = 17, .nin = 3, .nout = 1, .in = pin, .out = pout};
    cr_assert_eq(amp_infer_range(&c), AMP_ERR_UNSUPPORTED);
    cr_assert(strstr(amp_context_last_error(ctx), "data-dependent"));
    tn_free(t);
    amp_tensor_destroy(a);
}

/* ---- Pad -------------------------------------------------------------------------------------- */

/* Input coordinate read by shifted output coordinate i, or -1 for the constant; reflection
 * folds step by step the way numpy.pad does. */
static int64_t ref_pad_map(int64_t i, int64_t n, const char *mode) {
    if (i >= 0 && i < n) return i;
    if (!strcmp(mode, "constant")) return -1;
    if (!strcmp(mode, "edge")) return i < 0 ? 0 : n - 1;
    if (!strcmp(mode, "wrap")) {
        while (i < 0) i += n;
        while (i >= n) i -= n;
        return i;
    }
    if (n == 1) return 0;
    while (i < 0 || i >= n) {
        if (i < 0) i = -i;
        if (i >= n) i = 2 * (n - 1) - i;
    }
    return i;
}

/* opset < 11: attributes; otherwise inputs, with axes when naxes >= 0. */
static void check_pad(amp_dtype dt, int64_t opset, const char *mode, int rank, const int64_t *dims, int naxes,
                      const int64_t *axes, const int64_t *pads, bool has_cv, uint64_t seed) {
    amp_tensor *x = rand_of(dt, rank, dims, seed), *y = NULL, *pt = NULL, *cv = NULL, *at = NULL;
    int na = naxes >= 0 ? naxes : rank;
    double cval = dt == AMP_BOOL ? 1 : dt == AMP_U8 ? 9 : -3;
    amp_test_node *t = tn_new(ctx, "Pad");
    t->opset = opset;
    if (mode) tn_str(t, "mode", mode);
    else mode = "constant";
    amp_tensor *in[4] = {x, NULL, NULL, NULL};
    int nin = 1;
    if (opset < 11) {
        tn_ints(t, "pads", 2 * na, pads);
        if (has_cv) tn_float(t, "value", (float)cval);
    } else {
        const int64_t np[1] = {2 * na};
        in[1] = pt = ints_of(AMP_I64, 1, np, pads);
        nin = 2;
        if (has_cv) {
            in[2] = cv = tt_make(ctx, dt, 0, NULL, &cval);
            nin = 3;
        }
        if (naxes >= 0) {
            const int64_t nd[1] = {naxes};
            in[3] = at = ints_of(AMP_I64, 1, nd, axes);
            nin = 4;
        }
    }
    cr_assert_eq(tn_run(t, nin, in, 1, &y), AMP_OK, "%s", amp_context_last_error(ctx));
    int64_t pb[AMP_MAX_RANK] = {0}, od[AMP_MAX_RANK];
    for (int i = 0; i < na; i++) {
        int d = naxes >= 0 ? (int)(axes[i] < 0 ? axes[i] + rank : axes[i]) : i;
        pb[d] = pads[i];
        od[d] = pads[i] + pads[i + na];
    }
    for (int d = 0; d < rank; d++) {
        bool padded = false;
        for (int i = 0; i < na; i++) padded |= (naxes >= 0 ? (axes[i] < 0 ? axes[i] + rank : axes[i]) : i) == d;
        od[d] = dims[d] + (padded ? od[d] : 0);
        cr_assert_eq(y->dims[d], od[d], "Pad dim %d", d);
    }
    amp_tensor *ref = new_like(dt, rank, od);
    amp_tensor *cvt = tt_make(ctx, dt, 0, NULL, has_cv ? &cval : (double[]){0});
    for (int64_t o = 0; o < ref->numel; o++) {
        int64_t c[AMP_MAX_RANK];
        unravel(rank, od, o, c);
        bool inside = true;
        for (int d = 0; d < rank; d++) {
            c[d] = ref_pad_map(c[d] - pb[d], dims[d], mode);
            inside &= c[d] >= 0;
        }
        if (inside) cp(ref, o, x, ravel(rank, dims, c));
        else cp(ref, o, cvt, 0);
    }
    cr_assert(tt_equal(y, ref), "Pad %s opset %lld mode %s rank %d", amp_dtype_name(dt), (long long)opset, mode, rank);
    tn_free(t);
    amp_tensor_destroy(x);
    amp_tensor_destroy(y);
    amp_tensor_destroy(pt);
    amp_tensor_destroy(cv);
    amp_tensor_destroy(at);
    amp_tensor_destroy(ref);
    amp_tensor_destroy(cvt);
}

Test(pad, every_dtype_and_mode) {
    const char *modes[] = {"constant", "reflect", "edge", "wrap"};
    const int64_t d2[2] = {3, 4}, p2[4] = {1, 2, 2, 3}, pn[4] = {-1, 2, 0, -2};
    const int64_t d3[3] = {2, 3, 5}, p3[6] = {0, 1, 4, 1, 0, 3};
    uint64_t seed = 1;
    for (size_t ti = 0; ti < N_ALL; ti++)
        for (int m = 0; m < 4; m++) {
            check_pad(all_types[ti], 13, modes[m], 2, d2, -1, NULL, p2, true, seed++);
            check_pad(all_types[ti], 13, modes[m], 3, d3, -1, NULL, p3, false, seed++);
            check_pad(all_types[ti], 11, modes[m], 2, d2, -1, NULL, pn, true, seed++);
        }
}

Test(pad, opset_variants) {
    const int64_t d2[2] = {3, 4}, p2[4] = {1, 0, 2, 3}, d1[1] = {5}, p1[2] = {3, 2}, d4[4] = {2, 3, 1, 4};
    const int64_t ax1[1] = {-1}, pa1[2] = {2, 1}, ax2[2] = {2, 0}, pa2[4] = {1, 0, 2, 1};
    uint64_t seed = 50;
    /* attribute form: pads and value */
    check_pad(AMP_F32, 2, NULL, 2, d2, -1, NULL, p2, true, seed++);
    check_pad(AMP_F32, 2, NULL, 2, d2, -1, NULL, p2, false, seed++);
    check_pad(AMP_F16, 2, "edge", 2, d2, -1, NULL, p2, false, seed++);
    check_pad(AMP_F64, 10, "reflect", 1, d1, -1, NULL, p1, false, seed++);
    check_pad(AMP_I32, 2, "constant", 1, d1, -1, NULL, p1, true, seed++);
    /* axes input (opset 18) */
    check_pad(AMP_F32, 18, "constant", 4, d4, 1, ax1, pa1, true, seed++);
    check_pad(AMP_I8, 18, "reflect", 4, d4, 2, ax2, pa2, false, seed++);
    check_pad(AMP_BF16, 18, "edge", 4, d4, 2, ax2, pa2, true, seed++);
    check_pad(AMP_BOOL, 18, "wrap", 4, d4, 1, ax1, pa1, false, seed++);
    /* reflections longer than the dim, and single-element dims */
    const int64_t d5[2] = {1, 3}, p5[4] = {2, 7, 1, 6};
    check_pad(AMP_F32, 13, "reflect", 2, d5, -1, NULL, p5, false, seed++);
    check_pad(AMP_F32, 13, "wrap", 2, d5, -1, NULL, p5, false, seed++);
    /* empty input padded with a constant; rank 0 */
    const int64_t d0[2] = {0, 3}, p0[4] = {2, 1, 0, 0};
    check_pad(AMP_F32, 13, "constant", 2, d0, -1, NULL, p0, true, seed++);
    check_pad(AMP_F32, 13, "constant", 0, NULL, -1, NULL, NULL, true, seed++);
    /* large enough to run threaded */
    const int64_t db[3] = {4, 120, 130}, pb[6] = {0, 3, 2, 1, 4, 3};
    check_pad(AMP_F32, 13, "reflect", 3, db, -1, NULL, pb, false, seed++);
    check_pad(AMP_F32, 13, "constant", 3, db, -1, NULL, pb, true, seed++);
}

static amp_status run_pad(int64_t opset, const char *mode, const amp_tensor *x, int np, const int64_t *pads) {
    amp_test_node *t = tn_new(ctx, "Pad");
    t->opset = opset;
    if (mode) tn_str(t, "mode", mode);
    const int64_t n[1] = {np};
    amp_tensor *pt = ints_of(AMP_I64, 1, n, pads), *y = NULL, *in[2] = {(amp_tensor *)x, pt};
    amp_status s = tn_run(t, 2, in, 1, &y);
    if (s) cr_assert_null(y);
    amp_tensor_destroy(y);
    tn_free(t);
    amp_tensor_destroy(pt);
    return s;
}

Test(pad, bad_inputs) {
    const int64_t d[2] = {3, 4}, d0[2] = {0, 4};
    const int64_t p3[3] = {1, 1, 1}, pcut[4] = {-2, 0, -2, 0}, p4[4] = {1, 1, 1, 1};
    amp_tensor *x = rand_of(AMP_F32, 2, d, 1), *e = new_like(AMP_F32, 2, d0);
    cr_assert_eq(run_pad(13, NULL, x, 3, p3), AMP_ERR_INVALID_GRAPH);
    cr_assert_eq(run_pad(13, "mirror", x, 4, p4), AMP_ERR_INVALID_GRAPH);
    cr_assert_eq(run_pad(13, NULL, x, 4, pcut), AMP_ERR_SHAPE);
    cr_assert_eq(run_pad(13, "reflect", e, 4, p4), AMP_ERR_SHAPE);
    cr_assert_eq(run_pad(13, "edge", e, 4, p4), AMP_ERR_SHAPE);
    cr_assert_eq(run_pad(13, "constant", e, 4, p4), AMP_OK);
    amp_tensor_destroy(x);
    amp_tensor_destroy(e);
}

/* ---- DepthToSpace / SpaceToDepth ------------------------------------------------------------- */

static void check_d2s(amp_dtype dt, bool d2s, const char *mode, const int64_t *dims, int64_t b, uint64_t seed) {
    amp_tensor *x = rand_of(dt, 4, dims, seed), *y = NULL;
    amp_test_node *t = tn_new(ctx, d2s ? "DepthToSpace" : "SpaceToDepth");
    tn_int(t, "blocksize", b);
    if (mode) tn_str(t, "mode", mode);
    cr_assert_eq(tn_run(t, 1, &x, 1, &y), AMP_OK, "%s", amp_context_last_error(ctx));
    int64_t N = dims[0], C = dims[1], H = dims[2], W = dims[3];
    amp_tensor *ref;
    if (d2s) {
        /* reshape to 6-D and transpose, as the spec writes it */
        int64_t Cp = C / (b * b), od[4] = {N, Cp, H * b, W * b};
        ref = new_like(dt, 4, od);
        bool crd = mode && !strcmp(mode, "CRD");
        for (int64_t n = 0; n < N; n++)
            for (int64_t i = 0; i < b; i++)
                for (int64_t j = 0; j < b; j++)
                    for (int64_t c = 0; c < Cp; c++)
                        for (int64_t h = 0; h < H; h++)
                            for (int64_t w = 0; w < W; w++) {
                                int64_t ic = crd ? c * b * b + i * b + j : i * b * Cp + j * Cp + c;
                                int64_t src = ((n * C + ic) * H + h) * W + w;
                                int64_t dst = ((n * Cp + c) * H * b + h * b + i) * W * b + w * b + j;
                                cp(ref, dst, x, src);
                            }
    } else {
        int64_t od[4] = {N, C * b * b, H / b, W / b};
        ref = new_like(dt, 4, od);
        for (int64_t n = 0; n < N; n++)
            for (int64_t c = 0; c < C; c++)
                for (int64_t h = 0; h < H / b; h++)
                    for (int64_t i = 0; i < b; i++)
                        for (int64_t w = 0; w < W / b; w++)
                            for (int64_t j = 0; j < b; j++) {
                                int64_t src = ((n * C + c) * H + h * b + i) * W + w * b + j;
                                int64_t oc = (i * b + j) * C + c;
                                int64_t dst = ((n * C * b * b + oc) * (H / b) + h) * (W / b) + w;
                                cp(ref, dst, x, src);
                            }
    }
    cr_assert(tt_equal(y, ref), "%s %s mode %s b %lld", d2s ? "DepthToSpace" : "SpaceToDepth", amp_dtype_name(dt),
              mode ? mode : "-", (long long)b);
    tn_free(t);
    amp_tensor_destroy(x);
    amp_tensor_destroy(y);
    amp_tensor_destroy(ref);
}

Test(depth_to_space, every_dtype_and_mode) {
    const int64_t a[4] = {2, 8, 3, 5}, c[4] = {1, 27, 2, 3}, s1[4] = {2, 3, 4, 6}, s2[4] = {1, 2, 9, 6};
    uint64_t seed = 1;
    for (size_t ti = 0; ti < N_ALL; ti++) {
        check_d2s(all_types[ti], true, NULL, a, 2, seed++);
        check_d2s(all_types[ti], true, "DCR", c, 3, seed++);
        check_d2s(all_types[ti], true, "CRD", a, 2, seed++);
        check_d2s(all_types[ti], true, "CRD", c, 3, seed++);
        check_d2s(all_types[ti], false, NULL, s1, 2, seed++);
        check_d2s(all_types[ti], false, NULL, s2, 3, seed++);
    }
    check_d2s(AMP_F32, true, NULL, a, 1, seed++);
    const int64_t big[4] = {2, 64, 40, 30};
    check_d2s(AMP_F32, true, "CRD", big, 4, seed++);
    check_d2s(AMP_F32, false, NULL, big, 5, seed++);
}

Test(depth_to_space, bad_inputs) {
    const int64_t d[4] = {1, 6, 2, 3}, d3[3] = {4, 2, 2};
    amp_tensor *x = rand_of(AMP_F32, 4, d, 1), *x3 = rand_of(AMP_F32, 3, d3, 2), *y = NULL;
    amp_test_node *t = tn_new(ctx, "DepthToSpace");
    tn_int(t, "blocksize", 2);
    cr_assert_eq(tn_run(t, 1, &x, 1, &y), AMP_ERR_SHAPE); /* 6 channels, blocksize^2 = 4 */
    cr_assert_eq(tn_run(t, 1, &x3, 1, &y), AMP_ERR_SHAPE);
    tn_free(t);
    t = tn_new(ctx, "SpaceToDepth");
    tn_int(t, "blocksize", 2);
    cr_assert_eq(tn_run(t, 1, &x, 1, &y), AMP_ERR_SHAPE); /* width 3 */
    tn_free(t);
    t = tn_new(ctx, "SpaceToDepth");
    cr_assert_eq(tn_run(t, 1, &x, 1, &y), AMP_ERR_INVALID_GRAPH); /* no blocksize */
    tn_free(t);
    t = tn_new(ctx, "DepthToSpace");
    tn_int(t, "blocksize", 1);
    tn_str(t, "mode", "XYZ");
    cr_assert_eq(tn_run(t, 1, &x, 1, &y), AMP_ERR_INVALID_GRAPH);
    tn_free(t);
    amp_tensor_destroy(x);
    amp_tensor_destroy(x3);
    cr_assert_null(y);
}

/* ---- EyeLike ---------------------------------------------------------------------------------- */

static void check_eye(amp_dtype in_dt, int64_t out_dt, int64_t r, int64_t c, int64_t k, bool set_k) {
    const int64_t d[2] = {r, c};
    amp_tensor *x = rand_of(in_dt, 2, d, (uint64_t)(r * 31 + c)), *y = NULL;
    amp_test_node *t = tn_new(ctx, "EyeLike");
    if (out_dt) tn_int(t, "dtype", out_dt);
    if (set_k) tn_int(t, "k", k);
    cr_assert_eq(tn_run(t, 1, &x, 1, &y), AMP_OK, "%s", amp_context_last_error(ctx));
    amp_dtype want = out_dt ? (amp_dtype)out_dt : in_dt;
    cr_assert_eq(y->dtype, want);
    cr_assert_eq(y->dims[0], r);
    cr_assert_eq(y->dims[1], c);
    for (int64_t i = 0; i < r; i++)
        for (int64_t j = 0; j < c; j++)
            cr_assert_eq(tt_get(y, i * c + j), j - i == (set_k ? k : 0) ? 1.0 : 0.0, "EyeLike %s k %lld (%lld,%lld)",
                         amp_dtype_name(want), (long long)k, (long long)i, (long long)j);
    tn_free(t);
    amp_tensor_destroy(x);
    amp_tensor_destroy(y);
}

Test(eye_like, dtypes_shapes_and_k) {
    const amp_dtype dts[] = {AMP_F32, AMP_F16, AMP_F64, AMP_I64, AMP_I32, AMP_I8, AMP_U8, AMP_BOOL};
    for (size_t i = 0; i < sizeof dts / sizeof dts[0]; i++) {
        check_eye(dts[i], 0, 4, 4, 0, false);
        check_eye(AMP_F32, dts[i], 3, 5, 1, true);
        check_eye(dts[i], AMP_I64, 5, 3, -2, true);
        for (int64_t k = -6; k <= 6; k++) check_eye(dts[i], 0, 4, 5, k, true);
    }
    check_eye(AMP_F32, 0, 0, 3, 0, false);
    check_eye(AMP_F32, 0, 3, 3, INT64_MIN, true);
    check_eye(AMP_F32, 0, 3, 3, INT64_MAX, true);
}

Test(eye_like, bad_inputs) {
    const int64_t d3[3] = {2, 2, 2}, d2[2] = {3, 3};
    amp_tensor *x3 = rand_of(AMP_F32, 3, d3, 1), *x = rand_of(AMP_F32, 2, d2, 2), *y = NULL;
    amp_test_node *t = tn_new(ctx, "EyeLike");
    cr_assert_eq(tn_run(t, 1, &x3, 1, &y), AMP_ERR_SHAPE);
    tn_free(t);
    t = tn_new(ctx, "EyeLike");
    tn_int(t, "dtype", 8); /* string */
    cr_assert_eq(tn_run(t, 1, &x, 1, &y), AMP_ERR_UNSUPPORTED);
    tn_free(t);
    amp_tensor_destroy(x3);
    amp_tensor_destroy(x);
    cr_assert_null(y);
}
